/* trainer.c — state, initialisation, the training forward and backward, AdamW and EMA. */
#include "train/trainer.h"

#include "train/backward.h"
#include "runtime/check.h"
#include "runtime/cpu/kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Stream namespaces of the trainer's keys: the top two bits keep them apart
 * from each other and from the sampler's streams (n << 20 | i + 1, below 2^62). */
#define STREAM_INIT (1ull << 62)
#define STREAM_EPOCH (2ull << 62)
#define STREAM_STEP (3ull << 62)

/* Uniform draws on the runtime's mixer: eb_rng_key hashes (key, j) to 64 bits. */
static uint64_t draw_u64(uint64_t key, uint64_t j) { return eb_rng_key(key, j); }
static double draw_unit(uint64_t key, uint64_t j) { return (double)(draw_u64(key, j) >> 11) * 0x1p-53; }
/* In [0, n) by a multiply-shift (bias below 2^-32 for n < 2^32). */
static uint32_t draw_below(uint64_t key, uint64_t j, uint32_t n) {
    return (uint32_t)(((unsigned __int128)draw_u64(key, j) * n) >> 64);
}

eb_recipe eb_recipe_default(void) {
    return (eb_recipe){.batch = 256, .lr = 1e-4, .weight_decay = 0.0, .beta1 = 0.9, .beta2 = 0.999,
                       .adam_eps = 1e-8, .warmup_steps = 0, .grad_clip = 0.0, .ema_decay = 0.9999,
                       .class_dropout = 0.1, .seed = 0};
}

/* ------------------------------------------------------------------------ */
/* Initialisation                                                            */

void eb_init_params(float *slab, const eb_config *c, uint64_t seed) {
    eb_params p;
    eb_params_point(&p, slab, c);
    memset(slab, 0, eb_param_count(c) * sizeof(float)); /* biases, adaLN and the final linear stay 0 */
    size_t sizes[EB_NUM_PARAM_TENSORS];
    eb_param_sizes(sizes, c);
    for (int i = 0; i < EB_NUM_PARAM_TENSORS; i++) {
        float *w = *eb_params_slot(&p, i);
        uint64_t key = eb_rng_key(seed, STREAM_INIT | (uint64_t)i);
        int64_t dims[4];
        int rank = eb_param_shape(i, c, dims);
        switch (i) {
        case EB_P_X_EMBED_W: case EB_P_QKV_W: case EB_P_PROJ_W: case EB_P_FC1_W: case EB_P_FC2_W: {
            /* xavier_uniform on the (out, in) view: U(±sqrt(6 / (fan_in + fan_out))) */
            double fan_in = 1;
            for (int r = 1; r < rank; r++) fan_in *= (double)dims[r];
            float bound = (float)sqrt(6.0 / (fan_in + (double)dims[0]));
            for (size_t j = 0; j < sizes[i]; j++) w[j] = (float)(2.0 * draw_unit(key, j) - 1.0) * bound;
            break;
        }
        case EB_P_Y_TABLE: case EB_P_T_FC1_W: case EB_P_T_FC2_W:
            for (size_t j = 0; j < sizes[i]; j++) w[j] = 0.02f * eb_rng_normal(key, j);
            break;
        default:
            break;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* State                                                                     */

/* Points every eb_train_acts member into slab (or, with slab NULL, only
 * counts); returns the floats needed. */
static size_t acts_layout(eb_train_acts *a, float *slab, const eb_config *c, int B) {
    size_t D = c->hidden_size, T = eb_tokens(c), L = c->depth, NH = c->num_heads, BT = (size_t)B * T;
    size_t HW = (size_t)c->input_size * c->input_size, img = (size_t)B * c->in_channels * HW;
    size_t out = (size_t)B * eb_out_channels(c) * HW, K = (size_t)c->patch_size * c->patch_size * eb_out_channels(c);
    struct { float **ptr; size_t n; } plan[] = {
        {&a->x_t, img}, {(float **)&a->t, B}, {(float **)&a->y, B}, {&a->tfreq, (size_t)B * EB_FREQ_DIM},
        {&a->t_pre, B * D}, {&a->t_act, B * D}, {&a->cond, B * D}, {&a->cond_silu, B * D},
        {&a->resid, (2 * L + 1) * BT * D}, {&a->mod, L * B * 6 * D}, {&a->ln1, L * BT * D}, {&a->ln2, L * BT * D},
        {&a->ln1_mean, L * BT}, {&a->ln1_rstd, L * BT}, {&a->ln2_mean, L * BT}, {&a->ln2_rstd, L * BT},
        {&a->qkv, L * BT * 3 * D}, {&a->probs, L * B * NH * T * T}, {&a->attn, L * BT * D},
        {&a->attn_out, L * BT * D}, {&a->fc1, L * BT * EB_MLP_RATIO * D}, {&a->gelu, L * BT * EB_MLP_RATIO * D},
        {&a->mlp_out, L * BT * D}, {&a->final_mod, B * 2 * D}, {&a->final_ln, BT * D}, {&a->final_mean, BT},
        {&a->final_rstd, BT}, {&a->final_out, BT * K}, {&a->out, out}, {&a->x0, img}, {&a->noise, img},
        {(float **)&a->labels, B}, {&a->mse_b, B}, {&a->vb_b, B},
        {&a->d_out, out}, {&a->d_final_out, BT * K}, {&a->d_resid, BT * D}, {&a->d_ln, BT * D},
        {&a->d_branch, BT * D}, {&a->d_attn, BT * D}, {&a->d_qkv, BT * 3 * D}, {&a->d_probs, B * NH * T * T},
        {&a->d_gelu, BT * EB_MLP_RATIO * D}, {&a->d_fc1, BT * EB_MLP_RATIO * D}, {&a->d_mod, B * 6 * D},
        {&a->d_cond_silu, B * D}, {&a->d_cond, B * D}, {&a->d_t_act, B * D}, {&a->d_t_pre, B * D},
        {&a->patches, BT * eb_patch_dim(c)},
    };
    size_t total = 0;
    for (size_t i = 0; i < sizeof plan / sizeof plan[0]; i++) {
        if (slab) *plan[i].ptr = slab + total;
        total += (plan[i].n + 15) & ~(size_t)15; /* 64-byte aligned members */
    }
    return total;
}

eb_status eb_trainer_create(eb_trainer **out, const eb_config *c, const eb_recipe *r, int data_n) {
    *out = NULL;
    if (r->batch < 1 || r->batch > 65536) return eb_fail(EB_EINPUT, "batch size %d outside [1, 65536]", r->batch);
    if (data_n < r->batch)
        return eb_fail(EB_EINPUT, "the dataset has %d images, fewer than one batch of %d", data_n, r->batch);
    if (!(r->lr >= 0) || !(r->weight_decay >= 0) || !(r->beta1 >= 0 && r->beta1 < 1) ||
        !(r->beta2 >= 0 && r->beta2 < 1) || !(r->adam_eps > 0) || !(r->grad_clip >= 0) ||
        !(r->ema_decay >= 0 && r->ema_decay <= 1) || !(r->class_dropout >= 0 && r->class_dropout <= 1) ||
        r->warmup_steps < 0)
        return eb_fail(EB_EINPUT, "recipe out of range: lr %g, weight decay %g, betas %g/%g, eps %g, clip %g, "
                                  "EMA %g, class dropout %g, warm-up %d", r->lr, r->weight_decay, r->beta1,
                       r->beta2, r->adam_eps, r->grad_clip, r->ema_decay, r->class_dropout, r->warmup_steps);
    if (c->num_classes < 1) return eb_fail(EB_EINPUT, "config: the trainer needs a class-conditional model");
    eb_trainer *tr = calloc(1, sizeof *tr);
    if (!tr) return eb_fail(EB_ERUNTIME, "out of memory");
    eb_status st = eb_model_create(&tr->model, c);
    if (!st) st = eb_loss_coefs_init(&tr->coefs);
    if (st) {
        eb_trainer_free(tr);
        return st;
    }
    tr->recipe = *r;
    tr->data_n = data_n;
    tr->n_params = eb_param_count(c);
    size_t n = tr->n_params, n_acts = acts_layout(&tr->a, NULL, c, r->batch);
    tr->grads = malloc(n * sizeof(float));
    tr->adam_m = calloc(n, sizeof(float));
    tr->adam_v = calloc(n, sizeof(float));
    tr->ema = malloc(n * sizeof(float));
    tr->act_slab = calloc(n_acts, sizeof(float));
    if (!tr->grads || !tr->adam_m || !tr->adam_v || !tr->ema || !tr->act_slab) {
        eb_trainer_free(tr);
        return eb_fail(EB_ERUNTIME, "out of memory for training %zu parameters with batch %d (%.1f GiB of "
                                    "activations)", n, r->batch, n_acts * 4.0 / (1 << 30));
    }
    acts_layout(&tr->a, tr->act_slab, c, r->batch);
    eb_params_point(&tr->g, tr->grads, c);
    eb_init_params(tr->model->slab, c, r->seed);
    memcpy(tr->ema, tr->model->slab, n * sizeof(float)); /* the official update_ema(decay=0) */
    *out = tr;
    return EB_OK;
}

void eb_trainer_free(eb_trainer *tr) {
    if (!tr) return;
    eb_model_free(tr->model);
    free(tr->grads);
    free(tr->adam_m);
    free(tr->adam_v);
    free(tr->ema);
    free(tr->act_slab);
    free(tr);
}

/* ------------------------------------------------------------------------ */
/* Forward and backward                                                      */

/* Sizes every pass uses. */
typedef struct {
    int B, C, H, p, D, T, BT, L, NH, hd, H4, Co, K;
    size_t BTD;
} step_dims;

static step_dims dims_of(const eb_trainer *tr) {
    const eb_config *c = &tr->model->cfg;
    step_dims d = {.B = tr->recipe.batch, .C = c->in_channels, .H = c->input_size, .p = c->patch_size,
              .D = c->hidden_size, .T = eb_tokens(c), .L = c->depth, .NH = c->num_heads,
              .hd = c->hidden_size / c->num_heads, .H4 = EB_MLP_RATIO * c->hidden_size, .Co = eb_out_channels(c)};
    d.BT = d.B * d.T;
    d.K = d.p * d.p * d.Co;
    d.BTD = (size_t)d.BT * d.D;
    return d;
}

void eb_train_forward(eb_trainer *tr) {
    const step_dims d = dims_of(tr);
    const eb_params *p = &tr->model->p;
    eb_train_acts *a = &tr->a;
    const size_t D = d.D, BT = d.BT, BTD = d.BTD;
    patch_embed_forward(a->resid, a->x_t, p->x_embed_w, p->x_embed_b, tr->model->pos_embed, d.B, d.C, d.H, d.p, d.D);
    timestep_freq_forward(a->tfreq, a->t, d.B);
    linear_rows_forward(a->t_pre, a->tfreq, p->t_fc1_w, p->t_fc1_b, d.B, EB_FREQ_DIM, d.D);
    silu_forward(a->t_act, a->t_pre, (size_t)d.B * D);
    linear_rows_forward(a->cond, a->t_act, p->t_fc2_w, p->t_fc2_b, d.B, d.D, d.D);
    label_add_forward(a->cond, p->y_table, a->y, d.B, d.D);
    silu_forward(a->cond_silu, a->cond, (size_t)d.B * D);
    for (int l = 0; l < d.L; l++) {
        float *x = a->resid + 2 * l * BTD, *x_mid = x + BTD, *x_out = x_mid + BTD;
        float *mod = a->mod + (size_t)l * d.B * 6 * D;
        float *ln1 = a->ln1 + l * BTD, *ln2 = a->ln2 + l * BTD, *attn = a->attn + l * BTD;
        float *attn_out = a->attn_out + l * BTD, *mlp_out = a->mlp_out + l * BTD;
        float *qkv = a->qkv + 3 * l * BTD, *fc1 = a->fc1 + EB_MLP_RATIO * l * BTD;
        float *gelu = a->gelu + EB_MLP_RATIO * l * BTD;
        float *probs = a->probs + (size_t)l * d.B * d.NH * d.T * d.T;
        linear_rows_forward(mod, a->cond_silu, p->adaln_w + l * 6 * D * D, p->adaln_b + l * 6 * D, d.B, d.D, 6 * d.D);
        ln_modulate_forward(ln1, a->ln1_mean + l * BT, a->ln1_rstd + l * BT, x, mod, mod + D, d.B, d.T, d.D, 6 * d.D);
        linear_forward(qkv, ln1, p->qkv_w + l * 3 * D * D, p->qkv_b + l * 3 * D, d.BT, d.D, 3 * d.D);
        attention_forward(attn, probs, qkv, d.B, d.T, d.NH, d.hd);
        linear_forward(attn_out, attn, p->proj_w + l * D * D, p->proj_b + l * D, d.BT, d.D, d.D);
        memcpy(x_mid, x, BTD * sizeof(float));
        gate_residual_forward(x_mid, mod + 2 * D, attn_out, d.B, d.T, d.D, 6 * d.D);
        ln_modulate_forward(ln2, a->ln2_mean + l * BT, a->ln2_rstd + l * BT, x_mid, mod + 3 * D, mod + 4 * D, d.B,
                            d.T, d.D, 6 * d.D);
        linear_forward(fc1, ln2, p->fc1_w + l * d.H4 * D, p->fc1_b + (size_t)l * d.H4, d.BT, d.D, d.H4);
        gelu_tanh_forward(gelu, fc1, BT * d.H4);
        linear_forward(mlp_out, gelu, p->fc2_w + l * D * d.H4, p->fc2_b + l * D, d.BT, d.H4, d.D);
        memcpy(x_out, x_mid, BTD * sizeof(float));
        gate_residual_forward(x_out, mod + 5 * D, mlp_out, d.B, d.T, d.D, 6 * d.D);
    }
    linear_rows_forward(a->final_mod, a->cond_silu, p->final_adaln_w, p->final_adaln_b, d.B, d.D, 2 * d.D);
    ln_modulate_forward(a->final_ln, a->final_mean, a->final_rstd, a->resid + 2 * d.L * BTD, a->final_mod,
                        a->final_mod + D, d.B, d.T, d.D, 2 * d.D);
    linear_forward(a->final_out, a->final_ln, p->final_w, p->final_b, d.BT, d.D, d.K);
    unpatchify_forward(a->out, a->final_out, d.B, d.Co, d.H, d.p);
}

static void zero(float *buf, size_t n) { memset(buf, 0, n * sizeof(float)); }

/* d loss / d params into tr->grads from a.d_out, in reverse order of eb_train_forward. */
static void train_backward(eb_trainer *tr) {
    const step_dims d = dims_of(tr);
    const eb_params *p = &tr->model->p, *g = &tr->g;
    eb_train_acts *a = &tr->a;
    const size_t D = d.D, BT = d.BT, BTD = d.BTD, H4 = d.H4;
    zero(tr->grads, tr->n_params);
    zero(a->d_final_out, BT * d.K);
    zero(a->d_ln, BTD);
    zero(a->d_resid, BTD);
    zero(a->d_mod, d.B * 2 * D);
    zero(a->d_cond_silu, d.B * D);
    /* final layer */
    unpatchify_backward(a->d_final_out, a->d_out, d.B, d.Co, d.H, d.p);
    linear_backward(a->d_ln, g->final_w, g->final_b, a->d_final_out, a->final_ln, p->final_w, d.BT, d.D, d.K);
    ln_modulate_backward(a->d_resid, a->d_mod, a->d_mod + D, a->d_ln, a->resid + 2 * d.L * BTD, a->final_mean,
                         a->final_rstd, a->final_mod + D, d.B, d.T, d.D, 2 * d.D);
    linear_backward(a->d_cond_silu, g->final_adaln_w, g->final_adaln_b, a->d_mod, a->cond_silu, p->final_adaln_w, d.B,
                    d.D, 2 * d.D);
    for (int l = d.L - 1; l >= 0; l--) {
        const float *x = a->resid + 2 * l * BTD, *x_mid = x + BTD;
        const float *mod = a->mod + (size_t)l * d.B * 6 * D;
        const float *probs = a->probs + (size_t)l * d.B * d.NH * d.T * d.T;
        const float *fc1 = a->fc1 + EB_MLP_RATIO * l * BTD, *gelu = a->gelu + EB_MLP_RATIO * l * BTD;
        /* block l's slice of the stacked (L, out, in) weights */
        const size_t w6 = (size_t)l * 6 * D * D, w4 = (size_t)l * H4 * D, w3 = (size_t)l * 3 * D * D;
        const size_t w1 = (size_t)l * D * D;
        zero(a->d_mod, d.B * 6 * D);
        /* MLP half: x_out = x_mid + gate_mlp ⊙ fc2(gelu(fc1(ln2(x_mid)))) */
        zero(a->d_branch, BTD);
        zero(a->d_gelu, BT * H4);
        zero(a->d_fc1, BT * H4);
        zero(a->d_ln, BTD);
        gate_residual_backward(a->d_mod + 5 * D, a->d_branch, a->d_resid, mod + 5 * D, a->mlp_out + l * BTD, d.B, d.T,
                               d.D, 6 * d.D);
        linear_backward(a->d_gelu, g->fc2_w + w4, g->fc2_b + l * D, a->d_branch, gelu, p->fc2_w + w4, d.BT, d.H4, d.D);
        gelu_tanh_backward(a->d_fc1, fc1, gelu, a->d_gelu, BT * H4);
        linear_backward(a->d_ln, g->fc1_w + w4, g->fc1_b + l * H4, a->d_fc1, a->ln2 + l * BTD, p->fc1_w + w4, d.BT,
                        d.D, d.H4);
        ln_modulate_backward(a->d_resid, a->d_mod + 3 * D, a->d_mod + 4 * D, a->d_ln, x_mid, a->ln2_mean + l * BT,
                             a->ln2_rstd + l * BT, mod + 4 * D, d.B, d.T, d.D, 6 * d.D);
        /* attention half: x_mid = x + gate_msa ⊙ proj(attention(qkv(ln1(x)))) */
        zero(a->d_branch, BTD);
        zero(a->d_attn, BTD);
        zero(a->d_qkv, 3 * BTD);
        zero(a->d_ln, BTD);
        gate_residual_backward(a->d_mod + 2 * D, a->d_branch, a->d_resid, mod + 2 * D, a->attn_out + l * BTD, d.B,
                               d.T, d.D, 6 * d.D);
        linear_backward(a->d_attn, g->proj_w + w1, g->proj_b + l * D, a->d_branch, a->attn + l * BTD, p->proj_w + w1,
                        d.BT, d.D, d.D);
        attention_backward(a->d_qkv, a->d_probs, a->d_attn, a->qkv + 3 * l * BTD, probs, d.B, d.T, d.NH, d.hd);
        linear_backward(a->d_ln, g->qkv_w + w3, g->qkv_b + l * 3 * D, a->d_qkv, a->ln1 + l * BTD, p->qkv_w + w3, d.BT,
                        d.D, 3 * d.D);
        ln_modulate_backward(a->d_resid, a->d_mod, a->d_mod + D, a->d_ln, x, a->ln1_mean + l * BT,
                             a->ln1_rstd + l * BT, mod + D, d.B, d.T, d.D, 6 * d.D);
        /* adaLN modulation of this block */
        linear_backward(a->d_cond_silu, g->adaln_w + w6, g->adaln_b + l * 6 * D, a->d_mod, a->cond_silu,
                        p->adaln_w + w6, d.B, d.D, 6 * d.D);
    }
    patch_embed_backward(g->x_embed_w, g->x_embed_b, a->patches, a->d_resid, a->x_t, d.B, d.C, d.H, d.p, d.D);
    /* conditioning: c = fc2(silu(fc1(tfreq))) + table[y] */
    zero(a->d_cond, d.B * D);
    zero(a->d_t_act, d.B * D);
    zero(a->d_t_pre, d.B * D);
    silu_backward(a->d_cond, a->cond, a->d_cond_silu, d.B * D);
    label_add_backward(g->y_table, a->d_cond, a->y, d.B, d.D);
    linear_backward(a->d_t_act, g->t_fc2_w, g->t_fc2_b, a->d_cond, a->t_act, p->t_fc2_w, d.B, d.D, d.D);
    silu_backward(a->d_t_pre, a->t_pre, a->d_t_act, d.B * D);
    linear_backward(NULL, g->t_fc1_w, g->t_fc1_b, a->d_t_pre, a->tfreq, p->t_fc1_w, d.B, EB_FREQ_DIM, d.D);
}

eb_status eb_train_loss_grad(eb_trainer *tr, eb_loss_terms *terms, float *mse_b, float *vb_b, const float *x0,
                             const float *noise, const int32_t *t, const int32_t *y) {
    const step_dims d = dims_of(tr);
    eb_train_acts *a = &tr->a;
    const int HW = d.H * d.H;
    for (int n = 0; n < d.B; n++) {
        if (t[n] < 0 || t[n] >= EB_DIFFUSION_STEPS)
            return eb_fail(EB_EINPUT, "t[%d] = %d outside [0, %d)", n, t[n], EB_DIFFUSION_STEPS);
        if (y[n] < 0 || y[n] > tr->model->cfg.num_classes)
            return eb_fail(EB_EINPUT, "y[%d] = %d outside [0, %d]", n, y[n], tr->model->cfg.num_classes);
    }
    memcpy(a->t, t, d.B * sizeof(int32_t));
    memcpy(a->y, y, d.B * sizeof(int32_t));
    eb_q_sample(a->x_t, x0, noise, t, &tr->coefs, d.B, (size_t)d.C * HW);
    eb_train_forward(tr);
    eb_status st = eb_diffusion_loss(terms, mse_b, vb_b, a->d_out, a->out, x0, a->x_t, noise, t, &tr->coefs, d.B, d.C,
                                     HW, tr->model->cfg.learn_sigma);
    if (st) return st;
    train_backward(tr);
    return EB_OK;
}

/* ------------------------------------------------------------------------ */
/* Randomness, data order, optimizer                                         */

void eb_train_draw(const eb_recipe *r, int64_t step, int n, size_t per, int32_t *t, int *drop, float *noise) {
    uint64_t key = eb_rng_key(eb_rng_key(r->seed, STREAM_STEP | (uint64_t)step), (uint64_t)n);
    *t = (int32_t)draw_below(key, 0, EB_DIFFUSION_STEPS);
    *drop = draw_unit(key, 1) < r->class_dropout;
    eb_rng_fill_normal(noise, per, key);
}

void eb_train_permutation(int *perm, int data_n, uint64_t seed, int64_t epoch) {
    uint64_t key = eb_rng_key(seed, STREAM_EPOCH | (uint64_t)epoch);
    for (int i = 0; i < data_n; i++) perm[i] = i;
    for (int i = data_n - 1; i > 0; i--) { /* Fisher–Yates */
        int j = (int)draw_below(key, (uint64_t)i, (uint32_t)i + 1), tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
}

double eb_lr_at(double peak, int warmup_steps, int64_t step, int64_t total) {
    if (step < warmup_steps) return peak * (double)(step + 1) / warmup_steps;
    if (total <= warmup_steps) return peak;
    double progress = (double)(step - warmup_steps) / (double)(total - warmup_steps);
    return progress >= 1.0 ? 0.0 : peak * 0.5 * (1.0 + cos(M_PI * progress));
}

void eb_adamw_update(float *p, const float *g, float *m, float *v, size_t n, int64_t t, double lr, const eb_recipe *r) {
    /* Scalars as torch computes them in double, rounded where they meet float tensors. */
    const float decay = (float)(1.0 - lr * r->weight_decay);
    const float b1 = (float)r->beta1, one_m_b1 = (float)(1.0 - r->beta1);
    const float b2 = (float)r->beta2, one_m_b2 = (float)(1.0 - r->beta2);
    const double bc1 = 1.0 - pow(r->beta1, (double)t), bc2 = 1.0 - pow(r->beta2, (double)t);
    const float neg_step = (float)(-(lr / bc1)), bc2_sqrt = (float)sqrt(bc2), eps = (float)r->adam_eps;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        p[i] = p[i] * decay;
        m[i] = m[i] * b1 + one_m_b1 * g[i];
        v[i] = v[i] * b2 + (one_m_b2 * g[i]) * g[i];
        float denom = sqrtf(v[i]) / bc2_sqrt + eps;
        p[i] = p[i] + neg_step * (m[i] / denom);
    }
}

double eb_ema_decay(int64_t step, double decay_max) {
    double warm = (1.0 + (double)step) / (10.0 + (double)step);
    return warm < decay_max ? warm : decay_max;
}

void eb_ema_update(float *ema, const float *p, size_t n, double decay) {
    const float keep = (float)decay, take = (float)(1.0 - decay);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) ema[i] = ema[i] * keep + take * p[i];
}

/* Names the first non-finite gradient: tensor key, block and index. */
static eb_status report_bad_gradient(const eb_trainer *tr) {
    const eb_config *c = &tr->model->cfg;
    eb_params g = tr->g;
    for (int i = 0; i < EB_NUM_PARAM_TENSORS; i++) {
        int64_t dims[4];
        int rank = eb_param_shape(i, c, dims);
        size_t per = 1;
        for (int r = 0; r < rank; r++) per *= (size_t)dims[r];
        int blocks = eb_param_table[i].per_block ? c->depth : 1;
        for (int b = 0; b < blocks; b++) {
            char what[160], key[96];
            snprintf(key, sizeof key, eb_param_table[i].fmt, b);
            snprintf(what, sizeof what, "step %lld: the gradient of %s", (long long)tr->step, key);
            eb_status st = eb_check_finite(*eb_params_slot(&g, i) + b * per, dims, rank, EB_ERUNTIME, what);
            if (st) return st;
        }
    }
    return eb_fail(EB_ERUNTIME, "step %lld: the gradient norm is not finite", (long long)tr->step);
}

eb_status eb_train_step(eb_trainer *tr, const float *x0, const int32_t *y, eb_step_stats *stats) {
    const step_dims d = dims_of(tr);
    const eb_recipe *r = &tr->recipe;
    eb_train_acts *a = &tr->a;
    const size_t per = (size_t)d.C * d.H * d.H;
    int32_t t[d.B], y_model[d.B];
    for (int n = 0; n < d.B; n++) {
        int drop;
        eb_train_draw(r, tr->step, n, per, &t[n], &drop, a->noise + n * per);
        y_model[n] = drop ? tr->model->cfg.num_classes : y[n];
    }
    eb_status st = eb_train_loss_grad(tr, &stats->terms, a->mse_b, a->vb_b, x0, a->noise, t, y_model);
    if (st) return st;
    double sq = 0.0;
    for (size_t i = 0; i < tr->n_params; i++) sq += (double)tr->grads[i] * tr->grads[i];
    stats->grad_norm = sqrt(sq);
    if (!isfinite(stats->grad_norm)) return report_bad_gradient(tr);
    if (r->grad_clip > 0 && stats->grad_norm > r->grad_clip) { /* torch clip_grad_norm_ */
        float coef = (float)(r->grad_clip / (stats->grad_norm + 1e-6));
        for (size_t i = 0; i < tr->n_params; i++) tr->grads[i] *= coef;
    }
    stats->lr = eb_lr_at(r->lr, r->warmup_steps, tr->step, 0);
    eb_adamw_update(tr->model->slab, tr->grads, tr->adam_m, tr->adam_v, tr->n_params, tr->step + 1, stats->lr, r);
    eb_ema_update(tr->ema, tr->model->slab, tr->n_params, eb_ema_decay(tr->step, r->ema_decay));
    tr->step++;
    return EB_OK;
}
