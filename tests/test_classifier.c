/* test_classifier.c — the eval classifier: gradients against PyTorch,
 * thread-count invariance, training progress, resume, augmentation, files. */
#include "train/classifier.h"
#include "train/trainer.h"
#include "tests/golden.h"
#include "runtime/safetensors.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GOLDEN "classifier_step.h5"
#define OUT_TOL 2e-6  /* features, logits, loss: max |Δ| / max |want| (measured 1.8e-7) */
#define GRAD_TOL 1e-5 /* per gradient tensor: max |Δ| / max |g| (measured ≤ 7e-7) */

/* A configuration the training tests can afford, on 28×28 images. */
static const eb_clf_config small = {.side = 28, .patch = 4, .dim = 16, .depth = 2, .heads = 2, .classes = 10};

static eb_clf *new_clf(const eb_clf_config *c, uint64_t seed) {
    eb_clf *m;
    cr_assert_eq(eb_clf_create(&m, c, seed), EB_OK, "%s", eb_last_error());
    return m;
}

/* n images of class i % 10: a bright 6×6 square at a class-specific place on
 * a dark background, plus noise: separable, so training must make progress. */
static eb_fmnist toy_data(int n, uint64_t seed) {
    eb_fmnist d = {.n = n, .h = 28, .w = 28};
    d.images = malloc((size_t)n * 784 * sizeof(float));
    d.labels = malloc((size_t)n * sizeof(int32_t));
    eb_rng_fill_normal(d.images, (size_t)n * 784, eb_rng_key(seed, 1));
    for (int i = 0; i < n; i++) {
        int k = i % 10, y0 = 3 + (k / 5) * 14, x0 = 2 + (k % 5) * 5;
        d.labels[i] = k;
        for (int p = 0; p < 784; p++) {
            int yy = p / 28, xx = p % 28, in = yy >= y0 && yy < y0 + 6 && xx >= x0 && xx < x0 + 6;
            float *v = &d.images[(size_t)i * 784 + p];
            *v = fminf(1.0f, fmaxf(-1.0f, (in ? 0.8f : -0.8f) + 0.2f * *v));
        }
    }
    return d;
}

/* A short run with flips and shifts on, so that they are covered too. */
static eb_clf_recipe quiet_recipe(int batch) {
    eb_clf_recipe r = eb_clf_recipe_default();
    r.batch = batch;
    r.warmup_steps = 2;
    r.lr = 3e-3;
    r.flip = 0.5, r.max_shift = 2;
    return r;
}

Test(classifier, gradients_match_pytorch) {
    eb_clf_config c = {
        .side = (int)golden_attr_f64(GOLDEN, "side"), .patch = (int)golden_attr_f64(GOLDEN, "patch"),
        .dim = (int)golden_attr_f64(GOLDEN, "dim"), .depth = (int)golden_attr_f64(GOLDEN, "depth"),
        .heads = (int)golden_attr_f64(GOLDEN, "heads"), .classes = (int)golden_attr_f64(GOLDEN, "classes"),
    };
    eb_clf *m = new_clf(&c, 0);
    for (int pass = 0; pass < 2; pass++) { /* 0: load the weights, 1: load x, y and compare */
        if (pass == 1) {
            int64_t xd[4];
            float *x = golden_f32(GOLDEN, "x", 4, xd);
            int32_t *y = golden_i32(GOLDEN, "y", 1, NULL);
            float *feat = golden_f32(GOLDEN, "features", 2, NULL), *logits = golden_f32(GOLDEN, "logits", 2, NULL);
            float *loss_want = golden_f32(GOLDEN, "loss", 0, NULL);
            double loss;
            cr_assert_eq(eb_clf_loss_grad(m, &loss, x, y, (int)xd[0]), EB_OK, "%s", eb_last_error());
            double e_feat = max_rel_err(m->a.feat, feat, xd[0] * c.dim);
            double e_logits = max_rel_err(m->a.logits, logits, xd[0] * c.classes);
            cr_expect_leq(e_feat, OUT_TOL, "features: %g", e_feat);
            cr_expect_leq(e_logits, OUT_TOL, "logits: %g", e_logits);
            cr_expect_leq(fabs(loss - *loss_want) / *loss_want, OUT_TOL, "loss %.9g vs %.9g", loss, *loss_want);
            free(x), free(y), free(feat), free(logits), free(loss_want);
        }
        float **slot = pass ? (float **)&m->g : (float **)&m->p;
        for (int i = 0; i < EB_CLF_NUM_TENSORS; i++) {
            int64_t dims[4];
            int rank = eb_clf_tensor_shape(i, &c, dims);
            size_t n = 1;
            for (int r = 0; r < rank; r++) n *= (size_t)dims[r];
            int blocks = (int)(eb_clf_tensor_size(i, &c) / n);
            for (int b = 0; b < blocks; b++) {
                char key[64], name[80];
                eb_clf_tensor_name(key, sizeof key, i, b);
                snprintf(name, sizeof name, "%s/%s", pass ? "grads" : "weights", key);
                float *w = golden_f32(GOLDEN, name, rank, NULL);
                if (pass == 0) {
                    memcpy(slot[i] + b * n, w, n * sizeof(float));
                } else {
                    double err = max_rel_err(slot[i] + b * n, w, n);
                    cr_expect_leq(err, GRAD_TOL, "gradient of %s: max |Δ| / max |g| = %g", key, err);
                }
                free(w);
            }
        }
    }
    eb_clf_free(m);
}

/* Two steps on one batch of 16 (16·49 rows: the split weight-gradient path). */
static eb_clf *train_two_steps(int threads) {
    eb_set_threads(threads);
    eb_fmnist d = toy_data(16, 4);
    eb_clf *m = new_clf(&small, 9);
    eb_clf_recipe r = quiet_recipe(16);
    for (int s = 0; s < 2; s++) {
        eb_clf_train_stats stats;
        cr_assert_eq(eb_clf_train_step(m, &r, d.images, d.labels, 16, 100, &stats), EB_OK, "%s", eb_last_error());
    }
    eb_fmnist_free(&d);
    return m;
}

Test(classifier, same_bits_for_one_and_two_threads) {
    eb_clf *a = train_two_steps(1), *b = train_two_steps(2);
    cr_assert_eq(a->step, 2);
    cr_expect_eq(memcmp(a->params, b->params, a->n_params * sizeof(float)), 0, "parameters differ");
    cr_expect_eq(memcmp(a->adam_v, b->adam_v, a->n_params * sizeof(float)), 0, "moments differ");
    eb_fmnist d = toy_data(70, 8); /* more than one EB_CLF_CHUNK */
    float *fa = malloc(70 * 16 * sizeof(float)), *fb = malloc(70 * 16 * sizeof(float));
    eb_set_threads(1);
    cr_assert_eq(eb_clf_features(a, fa, NULL, d.images, 70), EB_OK, "%s", eb_last_error());
    eb_set_threads(2);
    cr_assert_eq(eb_clf_features(b, fb, NULL, d.images, 70), EB_OK, "%s", eb_last_error());
    cr_expect_eq(memcmp(fa, fb, 70 * 16 * sizeof(float)), 0, "features differ");
    free(fa), free(fb);
    eb_fmnist_free(&d);
    eb_clf_free(a), eb_clf_free(b);
}

Test(classifier, training_reduces_the_loss) {
    eb_set_threads(1); /* many small steps: thread barriers would cost more than they save */
    eb_fmnist d = toy_data(20, 1);
    eb_clf *m = new_clf(&small, 2);
    eb_clf_recipe r = quiet_recipe(20);
    r.lr = 2e-2, r.flip = 0, r.max_shift = 0; /* the class is the square's place: no flips or shifts */
    double first = 0, loss, acc;
    for (int s = 0; s < 20; s++) {
        eb_clf_train_stats stats;
        cr_assert_eq(eb_clf_train_step(m, &r, d.images, d.labels, 20, 20, &stats), EB_OK, "%s", eb_last_error());
        if (s == 0) first = stats.loss;
        cr_assert(isfinite(stats.grad_norm) && stats.grad_norm > 0);
    }
    /* measured: 2.56 → 1.23, accuracy 0.65 */
    cr_assert_eq(eb_clf_loss_grad(m, &loss, d.images, d.labels, 20), EB_OK, "%s", eb_last_error());
    cr_expect_lt(loss, 0.6 * first, "loss %g after 20 steps, %g at the first", loss, first);
    cr_assert_eq(eb_clf_accuracy(m, &acc, d.images, d.labels, 20), EB_OK, "%s", eb_last_error());
    cr_expect_geq(acc, 0.4, "training accuracy %g", acc);
    eb_clf_free(m);
    eb_fmnist_free(&d);
}

/* Two epochs straight, and one epoch, a checkpoint round trip, the second. */
Test(classifier, resume_is_bit_identical) {
    char dir[] = "/tmp/ebcache_clf_XXXXXX", path[64];
    cr_assert(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/ckpt.safetensors", dir);
    eb_set_threads(1);
    eb_fmnist d = toy_data(16, 6);
    eb_clf_recipe r = quiet_recipe(8);
    r.epochs = 2;
    eb_clf_train_stats stats;
    eb_clf *straight = new_clf(&small, 5), *resumed = new_clf(&small, 5), *loaded;
    for (int e = 0; e < 2; e++) cr_assert_eq(eb_clf_train_epoch(straight, &r, &d, 0, &stats), EB_OK, "%s", eb_last_error());
    cr_assert_eq(straight->step, 4);
    cr_assert_eq(eb_clf_train_epoch(straight, &r, &d, 0, &stats), EB_OK);
    cr_expect_eq(stats.steps, 0, "a finished run trains no more");
    cr_assert_eq(eb_clf_train_epoch(resumed, &r, &d, 0, &stats), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_clf_save(resumed, path, 1, &r, NULL, 0), EB_OK, "%s", eb_last_error());
    eb_clf_recipe back = eb_clf_recipe_default();
    int has_state = 0;
    cr_assert_eq(eb_clf_load(&loaded, path, &back, &has_state), EB_OK, "%s", eb_last_error());
    cr_expect(has_state);
    cr_expect_eq(loaded->step, 2);
    cr_expect(back.batch == r.batch && back.epochs == r.epochs && back.lr == r.lr &&
                  back.weight_decay == r.weight_decay && back.beta1 == r.beta1 && back.beta2 == r.beta2 &&
                  back.adam_eps == r.adam_eps && back.warmup_steps == r.warmup_steps && back.flip == r.flip &&
                  back.max_shift == r.max_shift && back.seed == r.seed,
              "the recipe does not read back exactly");
    cr_assert_eq(eb_clf_train_epoch(loaded, &back, &d, 0, &stats), EB_OK, "%s", eb_last_error());
    cr_expect_eq(stats.steps, 2);
    cr_expect_eq(memcmp(straight->params, loaded->params, straight->n_params * sizeof(float)), 0);
    cr_expect_eq(eb_clf_checksum(straight), eb_clf_checksum(loaded));
    cr_expect_neq(eb_clf_checksum(straight), eb_clf_checksum(resumed));
    eb_clf_free(straight), eb_clf_free(resumed), eb_clf_free(loaded);
    eb_fmnist_free(&d);
    unlink(path);
    rmdir(dir);
}

Test(classifier, augmentation) {
    const int S = 28, B = 64;
    eb_fmnist d = toy_data(B, 3);
    float *out = malloc((size_t)B * S * S * sizeof(float)), *again = malloc((size_t)B * S * S * sizeof(float));
    eb_clf_recipe r = eb_clf_recipe_default();
    r.flip = 1.0, r.max_shift = 0; /* every row mirrored */
    eb_clf_augment(out, d.images, B, S, &r, 0);
    for (int n = 0; n < B; n++)
        for (int p = 0; p < S * S; p++)
            cr_assert_eq(out[n * S * S + p], d.images[n * S * S + (p / S) * S + S - 1 - p % S]);
    r.flip = 0.0, r.max_shift = 2; /* each row some shift in [−2, 2]², background −1 shifted in */
    eb_clf_augment(out, d.images, B, S, &r, 7);
    int seen[5][5] = {{0}};
    for (int n = 0; n < B; n++) {
        int found = 0;
        for (int dy = -2; dy <= 2 && !found; dy++)
            for (int dx = -2; dx <= 2 && !found; dx++) {
                int ok = 1;
                for (int p = 0; p < S * S && ok; p++) {
                    int sy = p / S - dy, sx = p % S - dx;
                    float want = sy >= 0 && sy < S && sx >= 0 && sx < S ? d.images[n * S * S + sy * S + sx] : -1.0f;
                    ok = out[n * S * S + p] == want;
                }
                if (ok) found = 1, seen[dy + 2][dx + 2]++;
            }
        cr_assert(found, "row %d is no shift of its input", n);
    }
    int distinct = 0;
    for (int i = 0; i < 25; i++) distinct += seen[i / 5][i % 5] > 0;
    cr_expect_geq(distinct, 12, "only %d of 25 shifts in 64 rows", distinct);
    eb_clf_augment(again, d.images, B, S, &r, 7);
    cr_expect_eq(memcmp(out, again, (size_t)B * S * S * sizeof(float)), 0, "same step, same draws");
    eb_clf_augment(again, d.images, B, S, &r, 8);
    cr_expect_neq(memcmp(out, again, (size_t)B * S * S * sizeof(float)), 0, "another step, other draws");
    free(out), free(again);
    eb_fmnist_free(&d);
}

Test(classifier, learning_rate_schedule) {
    eb_clf_recipe r = eb_clf_recipe_default();
    r.lr = 1e-3, r.warmup_steps = 10;
    cr_expect_float_eq(eb_lr_at(r.lr, r.warmup_steps, 0, 110), 1e-4, 1e-15);
    cr_expect_float_eq(eb_lr_at(r.lr, r.warmup_steps, 9, 110), 1e-3, 1e-15);
    cr_expect_float_eq(eb_lr_at(r.lr, r.warmup_steps, 10, 110), 1e-3, 1e-15);
    cr_expect_float_eq(eb_lr_at(r.lr, r.warmup_steps, 60, 110), 0.5e-3, 1e-15);
    cr_expect_float_eq(eb_lr_at(r.lr, r.warmup_steps, 110, 110), 0.0, 1e-15);
}

Test(classifier, inputs_are_clipped_and_checked) {
    eb_clf *m = new_clf(&small, 1);
    eb_fmnist d = toy_data(4, 2);
    float *big = malloc(4 * 784 * sizeof(float)), f1[4 * 16], f2[4 * 16];
    for (int i = 0; i < 4 * 784; i++) big[i] = 3.0f * d.images[i];
    for (int i = 0; i < 4 * 784; i++) d.images[i] = fminf(1.0f, fmaxf(-1.0f, big[i]));
    cr_assert_eq(eb_clf_features(m, f1, NULL, big, 4), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_clf_features(m, f2, NULL, d.images, 4), EB_OK, "%s", eb_last_error());
    cr_expect_eq(memcmp(f1, f2, sizeof f1), 0, "values beyond [-1, 1] are clipped first");
    big[2 * 784 + 5 * 28 + 6] = INFINITY;
    cr_expect_eq(eb_clf_features(m, f1, NULL, big, 4), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "image 2 has Inf at pixel [0, 5, 6]"), "%s", eb_last_error());
    int32_t bad[4] = {0, 1, 10, 2};
    double loss;
    cr_expect_eq(eb_clf_loss_grad(m, &loss, d.images, bad, 4), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "label [2] = 10"), "%s", eb_last_error());
    free(big);
    eb_fmnist_free(&d);
    eb_clf_free(m);
}

/* Writes the classifier with tensor `spoil` changed by f, for the loader tests. */
static void write_spoiled(const char *path, const eb_clf *m, const char *spoil, int drop, float value) {
    const eb_clf_config *c = &m->cfg;
    eb_st_entry e[64];
    char names[64][64];
    float *copy = malloc(m->n_params * sizeof(float));
    memcpy(copy, m->params, m->n_params * sizeof(float));
    int k = 0;
    size_t off = 0;
    for (int i = 0; i < EB_CLF_NUM_TENSORS; i++) {
        int64_t dims[4];
        int rank = eb_clf_tensor_shape(i, c, dims);
        size_t per = 1;
        for (int r = 0; r < rank; r++) per *= (size_t)dims[r];
        for (size_t b = 0; b < eb_clf_tensor_size(i, c) / per; b++, off += per) {
            eb_clf_tensor_name(names[k], sizeof names[k], i, (int)b);
            if (!strcmp(names[k], spoil) && drop) continue;
            if (!strcmp(names[k], spoil)) copy[off + 1] = value;
            e[k] = (eb_st_entry){.name = names[k], .dtype = EB_DT_F32, .rank = rank, .data = copy + off};
            memcpy(e[k].shape, dims, sizeof dims);
            k++;
        }
    }
    char sd[8][16];
    const char *keys[] = {"format", "side", "patch", "dim", "depth", "heads", "classes"};
    int vals[] = {0, c->side, c->patch, c->dim, c->depth, c->heads, c->classes};
    eb_st_meta meta[7];
    for (int i = 0; i < 7; i++) {
        snprintf(sd[i], sizeof sd[i], "%d", vals[i]);
        meta[i] = (eb_st_meta){keys[i], i ? sd[i] : EB_CLF_FORMAT};
    }
    cr_assert_eq(eb_st_write(path, e, k, meta, 7), EB_OK, "%s", eb_last_error());
    free(copy);
}

Test(classifier, files_round_trip_and_bad_files) {
    char dir[] = "/tmp/ebcache_clf_XXXXXX", path[64];
    cr_assert(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/c.safetensors", dir);
    eb_clf *m = new_clf(&small, 11), *back;
    eb_st_meta extra[] = {{"test_accuracy", "0.9123"}};
    cr_assert_eq(eb_clf_save(m, path, 0, NULL, extra, 1), EB_OK, "%s", eb_last_error());
    eb_st_file *f;
    cr_assert_eq(eb_st_open(&f, path), EB_OK);
    cr_expect_str_eq(eb_st_metadata(f, "test_accuracy"), "0.9123");
    cr_expect_str_eq(eb_st_metadata(f, "dim"), "16");
    cr_expect_null(eb_st_find(f, "adam_m.head.weight"), "weights only");
    eb_st_close(f);
    int has_state = 1;
    cr_assert_eq(eb_clf_load(&back, path, NULL, &has_state), EB_OK, "%s", eb_last_error());
    cr_expect_eq(has_state, 0);
    cr_expect_eq(eb_clf_checksum(back), eb_clf_checksum(m));
    eb_clf_free(back);

    write_spoiled(path, m, "blocks.1.mlp.fc1.weight", 0, NAN);
    cr_expect_eq(eb_clf_load(&back, path, NULL, NULL), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "blocks.1.mlp.fc1.weight' has NaN at [0, 1]"), "%s", eb_last_error());
    cr_expect_null(back);
    write_spoiled(path, m, "norm.scale", 1, 0);
    cr_expect_eq(eb_clf_load(&back, path, NULL, NULL), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "tensor 'norm.scale' is missing"), "%s", eb_last_error());
    cr_expect_eq(eb_clf_load(&back, GOLDEN_DIR "models/tiny_sigma.safetensors", NULL, NULL), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "not an ebcache classifier"), "%s", eb_last_error());
    eb_clf_free(m);
    unlink(path);
    rmdir(dir);
}
