/* test_train.c — the trainer: gradients and AdamW against PyTorch, the forward
 * against inference, determinism, resume bit-identity, the stop signal. */
#include "tests/golden.h"
#include "train/backward.h"
#include "train/meta.h"
#include "runtime/safetensors.h"
#include "train/trainer.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define GOLDEN "train_step.h5"
#define GRAD_TOL 1e-5 /* max |Δ| / max |g| per gradient tensor */
/* t_embedder.mlp.0.weight's gradient multiplies the timestep features, which
 * match PyTorch only to ~6e-5 (an expf ulp times t ≤ 999, see test_model.c). */
#define TFREQ_GRAD_TOL 3e-5
#define LOSS_TOL 1e-5 /* relative, loss and per-sample terms     */

/* The golden's configuration (reference/train_ref.py CONFIG). */
static const eb_config tiny = {.input_size = 8, .patch_size = 2, .in_channels = 1, .hidden_size = 32, .depth = 2,
                               .num_heads = 2, .num_classes = 10, .learn_sigma = 1};

static eb_trainer *new_trainer(const eb_config *c, int batch, uint64_t seed, int data_n) {
    eb_recipe r = eb_recipe_default();
    r.batch = batch;
    r.seed = seed;
    r.lr = 1e-3; /* large enough that a few steps move every weight */
    eb_trainer *tr;
    eb_status st = eb_trainer_create(&tr, c, &r, data_n);
    cr_assert_eq(st, EB_OK, "%s", eb_last_error());
    return tr;
}

/* Every parameter N(0, 0.1²): with the official zero init the output would be 0. */
static void randomize(eb_trainer *tr, uint64_t seed) {
    eb_rng_fill_normal(tr->model->slab, tr->n_params, eb_rng_key(seed, 7));
    for (size_t i = 0; i < tr->n_params; i++) tr->model->slab[i] *= 0.1f;
    memcpy(tr->ema, tr->model->slab, tr->n_params * sizeof(float));
}

/* A dataset of n random 8-bit-like images (1, side, side) and labels. */
static eb_fmnist fake_data(int n, int side, uint64_t seed) {
    eb_fmnist d = {.n = n, .h = side, .w = side};
    d.images = malloc((size_t)n * side * side * sizeof(float));
    d.labels = malloc((size_t)n * sizeof(int32_t));
    uint64_t key = eb_rng_key(seed, 11);
    for (size_t i = 0; i < (size_t)n * side * side; i++) {
        int level = (int)((eb_rng_key(key, i) >> 32) % 256);
        d.images[i] = level / 127.5f - 1.0f;
    }
    for (int i = 0; i < n; i++) d.labels[i] = i % 10;
    return d;
}

/* Official-key slices of a slab, in slab order: calls f(key, slice, numel, ctx). */
typedef void slice_fn(const char *key, float *slice, size_t n, void *ctx);

static void for_each_slice(float *slab, const eb_config *c, slice_fn *f, void *ctx) {
    eb_params p;
    eb_params_point(&p, slab, c);
    for (int i = 0; i < EB_NUM_PARAM_TENSORS; i++) {
        int64_t dims[4];
        int rank = eb_param_shape(i, c, dims);
        size_t n = 1;
        for (int r = 0; r < rank; r++) n *= (size_t)dims[r];
        for (int l = 0; l < (eb_param_table[i].per_block ? c->depth : 1); l++) {
            char key[96];
            snprintf(key, sizeof key, eb_param_table[i].fmt, l);
            f(key, *eb_params_slot(&p, i) + l * n, n, ctx);
        }
    }
}

static void load_weight(const char *key, float *dst, size_t n, void *ctx) {
    char name[128];
    snprintf(name, sizeof name, "/weights/%s", key);
    int64_t dims[4];
    int rank = strstr(key, "x_embedder.proj.weight") ? 4 : (strstr(key, "weight") ? 2 : 1);
    float *w = golden_f32(GOLDEN, name, rank, dims);
    memcpy(dst, w, n * sizeof(float));
    free(w);
}

static void compare_grad(const char *key, float *got, size_t n, void *ctx) {
    char name[128];
    snprintf(name, sizeof name, "/grads/%s", key);
    int rank = strstr(key, "x_embedder.proj.weight") ? 4 : (strstr(key, "weight") ? 2 : 1);
    float *want = golden_f32(GOLDEN, name, rank, NULL);
    double err = max_rel_err(got, want, n);
    double tol = strcmp(key, "t_embedder.mlp.0.weight") ? GRAD_TOL : TFREQ_GRAD_TOL;
    cr_expect_leq(err, tol, "gradient of %s: max |Δ| / max |g| = %g", key, err);
    free(want);
}

Test(train, gradients_match_pytorch) {
    int64_t xd[4], td[1];
    float *x0 = golden_f32(GOLDEN, "/x0", 4, xd), *noise = golden_f32(GOLDEN, "/noise", 4, NULL);
    int32_t *t = golden_i32(GOLDEN, "/t", 1, td), *y = golden_i32(GOLDEN, "/y", 1, NULL);
    float *mse = golden_f32(GOLDEN, "/mse", 1, NULL), *vb = golden_f32(GOLDEN, "/vb", 1, NULL);
    float *loss = golden_f32(GOLDEN, "/loss", 0, NULL);
    int B = (int)td[0];
    eb_trainer *tr = new_trainer(&tiny, B, 1, B);
    for_each_slice(tr->model->slab, &tiny, load_weight, NULL);
    eb_loss_terms terms;
    float mse_b[B], vb_b[B];
    cr_assert_eq(eb_train_loss_grad(tr, &terms, mse_b, vb_b, x0, noise, t, y), EB_OK, "%s", eb_last_error());
    cr_expect_leq(fabs(terms.loss - loss[0]) / loss[0], LOSS_TOL, "loss %.9g, PyTorch %.9g", terms.loss, loss[0]);
    for (int n = 0; n < B; n++) {
        cr_expect_leq(fabsf(mse_b[n] - mse[n]) / mse[n], LOSS_TOL, "mse[%d] %.9g vs %.9g", n, mse_b[n], mse[n]);
        cr_expect_leq(fabsf(vb_b[n] - vb[n]) / vb[n], LOSS_TOL, "vb[%d] (t=%d) %.9g vs %.9g", n, t[n], vb_b[n], vb[n]);
    }
    for_each_slice(tr->grads, &tiny, compare_grad, NULL);
    eb_trainer_free(tr);
    free(x0), free(noise), free(t), free(y), free(mse), free(vb), free(loss);
}

Test(train, adamw_matches_pytorch) {
    int64_t d[1];
    float *p = golden_f32(GOLDEN, "/adamw/p0", 1, d);
    size_t n = (size_t)d[0];
    eb_recipe r = eb_recipe_default();
    r.weight_decay = golden_attr_f64(GOLDEN, "adamw_weight_decay");
    r.beta1 = golden_attr_f64(GOLDEN, "adamw_beta1");
    r.beta2 = golden_attr_f64(GOLDEN, "adamw_beta2");
    r.adam_eps = golden_attr_f64(GOLDEN, "adamw_eps");
    double lr = golden_attr_f64(GOLDEN, "adamw_lr");
    float *m = calloc(n, sizeof(float)), *v = calloc(n, sizeof(float));
    for (int step = 1; step <= 3; step++) {
        char name[32];
        snprintf(name, sizeof name, "/adamw/g%d", step);
        float *g = golden_f32(GOLDEN, name, 1, NULL);
        eb_adamw_update(p, g, m, v, n, step, lr, &r);
        snprintf(name, sizeof name, "/adamw/p%d", step);
        float *want = golden_f32(GOLDEN, name, 1, NULL);
        /* The update is ~lr; a few float ulps of |p| ≈ 1 is the floor (torch may fuse multiply-adds). */
        double err = max_rel_err(p, want, n);
        cr_expect_leq(err, 1e-6, "AdamW step %d: rel err %g", step, err);
        free(g), free(want);
    }
    float *m3 = golden_f32(GOLDEN, "/adamw/m3", 1, NULL), *v3 = golden_f32(GOLDEN, "/adamw/v3", 1, NULL);
    cr_expect_leq(max_rel_err(m, m3, n), 1e-6, "exp_avg: rel err %g", max_rel_err(m, m3, n));
    cr_expect_leq(max_rel_err(v, v3, n), 1e-6, "exp_avg_sq: rel err %g", max_rel_err(v, v3, n));
    free(p), free(m), free(v), free(m3), free(v3);
}

Test(train, linear_backward_matches_double_sums) {
    /* BT = 700 takes the split weight-gradient path (8 partial products), IC·OC the chunked input gradient. */
    enum { BT = 700, IC = 24, OC = 40 };
    float *dout = malloc(sizeof(float) * BT * OC), *inp = malloc(sizeof(float) * BT * IC);
    float *w = malloc(sizeof(float) * OC * IC), *dinp = malloc(sizeof(float) * BT * IC);
    float *dw = malloc(sizeof(float) * OC * IC), db[OC];
    uint64_t key = eb_rng_key(8, 8);
    eb_rng_fill_normal(dout, BT * OC, eb_rng_key(key, 1));
    eb_rng_fill_normal(inp, BT * IC, eb_rng_key(key, 2));
    eb_rng_fill_normal(w, OC * IC, eb_rng_key(key, 3));
    for (int i = 0; i < BT * IC; i++) dinp[i] = 1.0f; /* outputs accumulate */
    for (int i = 0; i < OC * IC; i++) dw[i] = 1.0f;
    for (int o = 0; o < OC; o++) db[o] = 1.0f;
    linear_backward(dinp, dw, db, dout, inp, w, BT, IC, OC);
    double worst = 0.0;
    for (int o = 0; o < OC; o++) {
        double b = 1.0;
        for (int r = 0; r < BT; r++) b += dout[r * OC + o];
        worst = fmax(worst, fabs(db[o] - b) / sqrt((double)BT));
        for (int i = 0; i < IC; i++) {
            double g = 1.0;
            for (int r = 0; r < BT; r++) g += (double)dout[r * OC + o] * inp[r * IC + i];
            worst = fmax(worst, fabs(dw[o * IC + i] - g) / sqrt((double)BT));
        }
    }
    for (int r = 0; r < BT; r++)
        for (int i = 0; i < IC; i++) {
            double g = 1.0;
            for (int o = 0; o < OC; o++) g += (double)dout[r * OC + o] * w[o * IC + i];
            worst = fmax(worst, fabs(dinp[r * IC + i] - g) / sqrt((double)OC));
        }
    /* sums of n unit-variance products: float error ~1e-7·sqrt(n) per element */
    cr_expect_leq(worst, 1e-5, "max |Δ| / sqrt(terms) = %g", worst);
    free(dout), free(inp), free(w), free(dinp), free(dw);
}

Test(train, forward_equals_inference_bitwise) {
    const int B = 5;
    eb_trainer *tr = new_trainer(&tiny, B, 3, B);
    randomize(tr, 3);
    eb_model *m = tr->model;
    size_t per = 64;
    eb_rng_fill_normal(tr->a.x_t, B * per, eb_rng_key(3, 1));
    int32_t t[] = {0, 999, 17, 500, 250}, y[] = {0, 10, 3, 9, 10};
    memcpy(tr->a.t, t, sizeof t);
    memcpy(tr->a.y, y, sizeof y);
    eb_train_forward(tr);
    cr_assert_eq(eb_acts_reserve(m, B), EB_OK);
    memcpy(m->acts.x_in, tr->a.x_t, B * per * sizeof(float));
    memcpy(m->acts.t_in, t, sizeof t);
    memcpy(m->acts.y_in, y, sizeof y);
    eb_forward_batch(m, B);
    cr_expect_eq(memcmp(tr->a.out, m->acts.out, (size_t)B * 2 * per * sizeof(float)), 0,
                 "the training forward differs from eb_forward_batch");
    eb_trainer_free(tr);
}

Test(train, loss_gradient_matches_finite_differences) {
    /* Independent of PyTorch: d loss / d out of every term, t = 0 (decoder NLL) included. */
    enum { B = 3, C = 1, HW = 16, CO = 2 };
    eb_loss_coefs *c = malloc(sizeof *c);
    cr_assert_eq(eb_loss_coefs_init(c), EB_OK);
    float x0[B * HW], noise[B * HW], x_t[B * HW], out[B * CO * HW], dout[B * CO * HW], mse[B], vb[B];
    int32_t t[B] = {0, 1, 600};
    uint64_t key = eb_rng_key(5, 5);
    for (int i = 0; i < B * HW; i++) {
        x0[i] = (float)((int)(eb_rng_key(key, i) >> 56) / 127.5 - 1.0);
        noise[i] = eb_rng_normal(key, i);
    }
    x0[0] = -1.0f, x0[1] = 1.0f; /* both edge bins of the decoder */
    for (int i = 0; i < B * CO * HW; i++) out[i] = 0.5f * eb_rng_normal(key, 1000 + i);
    eb_q_sample(x_t, x0, noise, t, c, B, HW);
    eb_loss_terms base;
    cr_assert_eq(eb_diffusion_loss(&base, mse, vb, dout, out, x0, x_t, noise, t, c, B, C, HW, 1), EB_OK);
    /* ε reaches vb only through the detached mean: its gradient is the MSE's alone. */
    float scratch[B * CO * HW];
    for (int i = 0; i < B * CO * HW; i += 3) {
        const float h = 1e-2f;
        const int var_channel = (i / HW) % CO == 1;
        double f[2];
        float keep = out[i];
        for (int s = 0; s < 2; s++) {
            eb_loss_terms lt;
            out[i] = keep + (s ? h : -h);
            cr_assert_eq(eb_diffusion_loss(&lt, mse, vb, scratch, out, x0, x_t, noise, t, c, B, C, HW, 1), EB_OK);
            f[s] = var_channel ? lt.loss : lt.mse;
        }
        out[i] = keep;
        double fd = (f[1] - f[0]) / (2 * h);
        cr_expect(fabs(fd - dout[i]) <= 2e-3 * fabs(dout[i]) + 1e-5, "d loss / d out[%d]: analytic %g, numeric %g", i,
                  dout[i], fd);
    }
    /* learn_sigma off: the MSE alone, no variance channels. */
    eb_loss_terms plain;
    cr_assert_eq(eb_diffusion_loss(&plain, mse, vb, dout, out, x0, x_t, noise, t, c, B, C, HW, 0), EB_OK);
    cr_expect_eq(plain.vb, 0.0);
    cr_expect_eq(plain.loss, plain.mse);
    free(c);
}

Test(train, non_finite_loss_names_the_row) {
    enum { B = 2, HW = 4 };
    eb_loss_coefs *c = malloc(sizeof *c);
    cr_assert_eq(eb_loss_coefs_init(c), EB_OK);
    float x0[B * HW] = {0}, noise[B * HW] = {0}, out[B * 2 * HW] = {0}, dout[B * 2 * HW], mse[B], vb[B];
    int32_t t[B] = {3, 7};
    out[2 * HW + 1] = NAN; /* row 1 */
    eb_loss_terms lt;
    cr_expect_eq(eb_diffusion_loss(&lt, mse, vb, dout, out, x0, x0, noise, t, c, B, 1, HW, 1), EB_ERUNTIME);
    cr_expect(strstr(eb_last_error(), "row 1 (t = 7)") != NULL, "%s", eb_last_error());
    free(c);
}

Test(train, official_initialisation) {
    eb_config c = tiny;
    c.hidden_size = 64;
    size_t n = eb_param_count(&c);
    float *slab = malloc(n * sizeof(float)), *again = malloc(n * sizeof(float));
    eb_init_params(slab, &c, 9);
    eb_init_params(again, &c, 9);
    cr_expect_eq(memcmp(slab, again, n * sizeof(float)), 0, "initialisation is not deterministic");
    eb_params p;
    eb_params_point(&p, slab, &c);
    size_t sizes[EB_NUM_PARAM_TENSORS];
    eb_param_sizes(sizes, &c);
    for (int i = 0; i < EB_NUM_PARAM_TENSORS; i++) {
        const float *w = *eb_params_slot(&p, i);
        double sq = 0.0, mx = 0.0;
        for (size_t j = 0; j < sizes[i]; j++) sq += (double)w[j] * w[j], mx = fmax(mx, fabs(w[j]));
        double rms = sqrt(sq / sizes[i]);
        int64_t dims[4];
        int rank = eb_param_shape(i, &c, dims);
        if (i == EB_P_X_EMBED_W || i == EB_P_QKV_W || i == EB_P_PROJ_W || i == EB_P_FC1_W || i == EB_P_FC2_W) {
            double fan_in = 1;
            for (int r = 1; r < rank; r++) fan_in *= dims[r];
            double bound = sqrt(6.0 / (fan_in + dims[0]));
            cr_expect(mx <= bound && mx > 0.95 * bound, "%s: max %g, xavier bound %g", eb_param_table[i].fmt, mx,
                      bound);
            cr_expect(fabs(rms - bound / sqrt(3.0)) < 0.1 * bound, "%s: rms %g", eb_param_table[i].fmt, rms);
        } else if (i == EB_P_Y_TABLE || i == EB_P_T_FC1_W || i == EB_P_T_FC2_W) {
            cr_expect(fabs(rms - 0.02) < 0.002, "%s: std %g, expected 0.02", eb_param_table[i].fmt, rms);
        } else {
            cr_expect_eq(mx, 0.0, "%s must start at 0", eb_param_table[i].fmt);
        }
    }
    free(slab), free(again);
}

Test(train, ema_with_warmup) {
    cr_expect_float_eq(eb_ema_decay(0, 0.9999), 0.1, 1e-15);
    cr_expect_float_eq(eb_ema_decay(90, 0.9999), 91.0 / 100.0, 1e-15);
    cr_expect_float_eq(eb_ema_decay(1000000, 0.9999), 0.9999, 1e-15);
    float ema[3] = {1.0f, -2.0f, 0.5f}, p[3] = {3.0f, 2.0f, 0.5f};
    eb_ema_update(ema, p, 3, 0.75);
    cr_expect_eq(ema[0], 1.5f);
    cr_expect_eq(ema[1], -1.0f);
    cr_expect_eq(ema[2], 0.5f);
}

Test(train, draws_and_data_order) {
    eb_recipe r = eb_recipe_default();
    r.seed = 4;
    int dropped = 0, hist[4] = {0};
    float noise[8], again[8];
    for (int n = 0; n < 4000; n++) {
        int32_t t;
        int drop;
        eb_train_draw(&r, 12, n, 8, &t, &drop, noise);
        cr_assert(t >= 0 && t < EB_DIFFUSION_STEPS);
        hist[t / 250]++;
        dropped += drop;
    }
    cr_expect(dropped > 320 && dropped < 480, "%d of 4000 labels dropped, expected about 400", dropped);
    for (int q = 0; q < 4; q++) cr_expect(hist[q] > 900 && hist[q] < 1100, "t quarter %d: %d of 4000", q, hist[q]);
    int32_t t1, t2;
    int d1, d2;
    eb_train_draw(&r, 5, 3, 8, &t1, &d1, noise);
    eb_train_draw(&r, 5, 3, 8, &t2, &d2, again);
    cr_expect(t1 == t2 && d1 == d2 && !memcmp(noise, again, sizeof noise), "draws are not a function of (step, row)");
    int perm[100], seen[100] = {0}, other[100];
    eb_train_permutation(perm, 100, 4, 0);
    eb_train_permutation(other, 100, 4, 1);
    for (int i = 0; i < 100; i++) seen[perm[i]]++;
    for (int i = 0; i < 100; i++) cr_expect_eq(seen[i], 1, "row %d appears %d times in the epoch", i, seen[i]);
    cr_expect_neq(memcmp(perm, other, sizeof perm), 0, "two epochs have the same order");
}

/* Trains `steps` steps of a fresh seeded trainer on `data` with `threads` threads. */
static eb_trainer *train_fresh(const eb_fmnist *data, int steps, int threads) {
    eb_set_threads(threads);
    eb_trainer *tr = new_trainer(&tiny, 32, 21, data->n); /* B·T = 512: the split weight-gradient GEMMs */
    randomize(tr, 21);
    eb_train_opts o = {.steps = steps};
    cr_assert_eq(eb_train_run(tr, data, &o), EB_OK, "%s", eb_last_error());
    return tr;
}

static void expect_same_state(const eb_trainer *a, const eb_trainer *b, const char *what) {
    size_t bytes = a->n_params * sizeof(float);
    cr_expect_eq(a->step, b->step, "%s: step", what);
    cr_expect_eq(memcmp(a->model->slab, b->model->slab, bytes), 0, "%s: parameters differ", what);
    cr_expect_eq(memcmp(a->ema, b->ema, bytes), 0, "%s: EMA differs", what);
    cr_expect_eq(memcmp(a->adam_m, b->adam_m, bytes), 0, "%s: AdamW m differs", what);
    cr_expect_eq(memcmp(a->adam_v, b->adam_v, bytes), 0, "%s: AdamW v differs", what);
}

Test(train, same_bits_for_one_and_two_threads) {
    eb_fmnist data = fake_data(96, 8, 1);
    eb_trainer *one = train_fresh(&data, 3, 1), *two = train_fresh(&data, 3, 2);
    expect_same_state(one, two, "1 vs 2 threads");
    eb_trainer_free(one), eb_trainer_free(two);
    eb_fmnist_free(&data);
}

Test(train, resume_is_bit_identical) {
    char dir[] = "/tmp/eb_train_resumeXXXXXX", ckpt[64];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(ckpt, sizeof ckpt, "%s/ckpt.safetensors", dir);
    eb_fmnist data = fake_data(80, 8, 2); /* 2 batches of 32 per epoch: 5 steps cross two epochs */
    eb_trainer *straight = train_fresh(&data, 5, 2);

    eb_trainer *first = train_fresh(&data, 2, 2);
    cr_assert_eq(eb_trainer_save(first, ckpt), EB_OK, "%s", eb_last_error());
    eb_trainer *resumed;
    cr_assert_eq(eb_trainer_load(&resumed, ckpt), EB_OK, "%s", eb_last_error());
    expect_same_state(first, resumed, "checkpoint round trip");
    eb_train_opts o = {.steps = 5};
    cr_assert_eq(eb_train_run(resumed, &data, &o), EB_OK, "%s", eb_last_error());
    expect_same_state(straight, resumed, "5 steps vs 2 + resume + 3");

    /* The EMA export loads as an inference model holding the EMA weights. */
    char exported[80];
    snprintf(exported, sizeof exported, "%s/ema.safetensors", dir);
    cr_assert_eq(eb_trainer_export_ema(resumed, exported), EB_OK, "%s", eb_last_error());
    eb_model *m;
    cr_assert_eq(eb_model_load(&m, exported, 0), EB_OK, "%s", eb_last_error());
    cr_expect_eq(memcmp(m->slab, resumed->ema, resumed->n_params * sizeof(float)), 0, "exported EMA differs");
    eb_model_free(m);

    /* A checkpoint for another dataset size refuses to continue. */
    eb_fmnist other = fake_data(96, 8, 2);
    cr_expect_eq(eb_train_run(resumed, &other, &o), EB_EINPUT);
    eb_fmnist_free(&other);
    eb_trainer_free(straight), eb_trainer_free(first), eb_trainer_free(resumed);
    eb_fmnist_free(&data);
    remove(ckpt), remove(exported), rmdir(dir);
}

Test(train, load_rejects_non_checkpoints) {
    eb_trainer *tr;
    cr_expect_eq(eb_trainer_load(&tr, "tests/golden/models/tiny_sigma.safetensors"), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "not an ebcache training checkpoint") != NULL, "%s", eb_last_error());
    cr_expect_null(tr);
    cr_expect_eq(eb_trainer_load(&tr, "/nonexistent/ckpt.safetensors"), EB_EINPUT);
}

Test(train, stop_flag_saves_and_returns_ok) {
    char dir[] = "/tmp/eb_train_stopXXXXXX", ckpt[64];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(ckpt, sizeof ckpt, "%s/ckpt.safetensors", dir);
    eb_fmnist data = fake_data(16, 8, 3);
    eb_trainer *tr = new_trainer(&tiny, 8, 5, data.n);
    volatile sig_atomic_t stop = 1; /* as if SIGINT had arrived */
    eb_train_opts o = {.steps = 100, .ckpt_path = ckpt, .stop = &stop};
    cr_assert_eq(eb_train_run(tr, &data, &o), EB_OK, "%s", eb_last_error());
    eb_trainer *saved;
    cr_assert_eq(eb_trainer_load(&saved, ckpt), EB_OK, "%s", eb_last_error());
    cr_expect_eq(saved->step, tr->step);
    cr_expect_lt(saved->step, 100);
    eb_trainer_free(saved), eb_trainer_free(tr);
    eb_fmnist_free(&data);
    remove(ckpt), rmdir(dir);
}

/* ------------------------------------------------------------------------ */
/* The CLI ($EBCACHE_BIN)                                                    */

static const char *ebcache_bin(void) { return getenv("EBCACHE_BIN") ? getenv("EBCACHE_BIN") : "build/opt/ebcache"; }

/* Starts `ebcache train ARGS...` with its output discarded; returns the pid. */
static pid_t spawn_train(char *const args[]) {
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1), dup2(null, 2);
        execv(ebcache_bin(), args);
        _exit(127);
    }
    return pid;
}

static int exit_status(pid_t pid) {
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status), "ebcache train did not exit normally (status %#x)", status);
    return WEXITSTATUS(status);
}

/* The step of the last row of a training log (0 when it has none yet). */
static long last_logged_step(const char *path) {
    FILE *f = fopen(path, "r");
    long step = 0, s;
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "%ld,", &s) == 1) step = s;
    if (f) fclose(f);
    return step;
}

Test(train, cli_sigint_finishes_the_step_saves_and_exits_0) {
    char dir[] = "/tmp/eb_train_cliXXXXXX", log[64], ckpt[64];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(log, sizeof log, "%s/train_log.csv", dir);
    snprintf(ckpt, sizeof ckpt, "%s/ckpt.safetensors", dir);
    char *args[] = {(char *)ebcache_bin(), "train", "--out", dir, "--limit", "64", "--batch", "8", "--hidden", "16",
                    "--depth", "1", "--heads", "2", "--steps", "1000000", "--log-every", "1", "--threads", "1", NULL};
    pid_t pid = spawn_train(args);
    /* Wait (bounded) until a few steps are done, then interrupt. */
    for (int i = 0; i < 1200 && last_logged_step(log) < 3; i++) usleep(50000);
    cr_assert_geq(last_logged_step(log), 3, "no training progress within 60 s");
    kill(pid, SIGINT);
    cr_expect_eq(exit_status(pid), 0);
    eb_trainer *tr;
    cr_assert_eq(eb_trainer_load(&tr, ckpt), EB_OK, "%s", eb_last_error());
    cr_expect_eq(tr->step, last_logged_step(log), "the checkpoint holds the last finished (logged) step");
    cr_expect_lt(tr->step, 1000000);
    eb_trainer_free(tr);
    remove(log), remove(ckpt), rmdir(dir);
}

Test(train, cli_usage_errors_exit_2) {
    char *no_out[] = {(char *)ebcache_bin(), "train", "--steps", "1", NULL};
    char *resume_and_model[] = {(char *)ebcache_bin(), "train", "--out", "/tmp", "--resume", "x.safetensors",
                                "--hidden", "64", NULL};
    char *bad_number[] = {(char *)ebcache_bin(), "train", "--out", "/tmp", "--lr", "fast", NULL};
    char *bad_config[] = {(char *)ebcache_bin(), "train", "--out", "/tmp", "--hidden", "30", "--heads", "4", NULL};
    char *missing_ckpt[] = {(char *)ebcache_bin(), "train", "--out", "/tmp", "--resume", "/nonexistent.safetensors",
                            NULL};
    char *help[] = {(char *)ebcache_bin(), "train", "--help", NULL};
    cr_expect_eq(exit_status(spawn_train(no_out)), 2);
    cr_expect_eq(exit_status(spawn_train(resume_and_model)), 2);
    cr_expect_eq(exit_status(spawn_train(bad_number)), 2);
    cr_expect_eq(exit_status(spawn_train(bad_config)), 2);
    cr_expect_eq(exit_status(spawn_train(missing_ckpt)), 2);
    cr_expect_eq(exit_status(spawn_train(help)), 0);
}

Test(train, learning_rate_warms_up_then_stays) {
    /* The DiT trainer's schedule: total 0, no decay after the warm-up. */
    cr_expect_float_eq(eb_lr_at(1e-4, 4, 0, 0), 0.25e-4, 1e-18);
    cr_expect_float_eq(eb_lr_at(1e-4, 4, 3, 0), 1e-4, 1e-18);
    cr_expect_float_eq(eb_lr_at(1e-4, 4, 1000000, 0), 1e-4, 1e-18);
    cr_expect_float_eq(eb_lr_at(1e-4, 0, 0, 0), 1e-4, 1e-18);
}

Test(train, metadata_round_trips_and_names_the_bad_key) {
    char path[] = "/tmp/eb_metaXXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    eb_meta_list l = {.n = 0};
    eb_meta_add(&l, "format", "%s", "test-1");
    eb_meta_add(&l, "count", "%d", -7);
    eb_meta_add(&l, "rate", "%.17g", 0.1);
    eb_meta_add(&l, "seed", "%llu", 18446744073709551615ull);
    eb_meta_add(&l, "flag", "%s", "true");
    eb_meta_add(&l, "bad", "%s", "12x");
    const eb_st_meta extra[] = {{"note", "kept"}};
    eb_meta_append(&l, extra, 1);
    cr_assert_eq(eb_meta_check(&l, path), EB_OK);
    float one = 1.0f;
    eb_st_entry e = {.name = "x", .dtype = EB_DT_F32, .data = &one, .rank = 1, .shape = {1}};
    cr_assert_eq(eb_st_write(path, &e, 1, l.pairs, l.n), EB_OK, "%s", eb_last_error());

    eb_st_file *f;
    cr_assert_eq(eb_st_open(&f, path), EB_OK);
    int count, flag;
    double rate;
    uint64_t seed;
    const char *note;
    cr_expect_eq(eb_meta_check_format(f, "test-1", "a test file"), EB_OK);
    cr_expect_eq(eb_meta_int(f, "count", -10, 10, &count), EB_OK);
    cr_expect_eq(count, -7);
    cr_expect_eq(eb_meta_double(f, "rate", &rate), EB_OK);
    cr_expect_eq(rate, 0.1, "%%.17g reads back exactly");
    cr_expect_eq(eb_meta_u64(f, "seed", &seed), EB_OK);
    cr_expect_eq(seed, UINT64_MAX);
    cr_expect_eq(eb_meta_bool(f, "flag", &flag), EB_OK);
    cr_expect_eq(flag, 1);
    cr_expect_eq(eb_meta_string(f, "note", &note), EB_OK);
    cr_expect_str_eq(note, "kept");

    cr_expect_eq(eb_meta_check_format(f, "test-2", "a test file"), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "not a test file (metadata 'format' is 'test-1', expected 'test-2')"), "%s",
              eb_last_error());
    cr_expect_eq(eb_meta_int(f, "count", 0, 10, &count), EB_EINPUT, "below the range");
    cr_expect_eq(eb_meta_int(f, "bad", 0, 100, &count), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "metadata 'bad' = '12x'"), "%s", eb_last_error());
    cr_expect_eq(eb_meta_u64(f, "count", &seed), EB_EINPUT, "a negative seed");
    cr_expect_eq(eb_meta_bool(f, "count", &flag), EB_EINPUT);
    cr_expect_eq(eb_meta_double(f, "missing", &rate), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "metadata 'missing' is missing"), "%s", eb_last_error());
    eb_st_close(f);
    remove(path);

    /* A full list refuses to be written rather than dropping pairs silently. */
    for (int i = 0; i < EB_META_MAX; i++) eb_meta_add(&l, "k", "%d", i);
    cr_expect_eq(l.n, EB_META_MAX);
    cr_expect_eq(eb_meta_check(&l, path), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "at most 32 fit"), "%s", eb_last_error());
}
