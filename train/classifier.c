/* classifier.c — the ViT classifier of classifier.h: parameters, forward with
 * saved activations, cross-entropy, backward, AdamW steps, files. */
#include "train/classifier.h"

#include "train/backward.h"
#include "train/meta.h"
#include "runtime/check.h"
#include "runtime/cpu/kernels.h"
#include "analyze/metrics.h"
#include "runtime/params.h"
#include "train/trainer.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Counter-RNG streams of the classifier (docs/rng.md keys them by seed). */
#define STREAM_INIT (0xC1F0ull << 48)
#define STREAM_AUG (0xC1F1ull << 48)

#define NAME_LEN 64

/* ------------------------------------------------------------------------ */
/* Configuration and parameter layout                                        */

eb_status eb_clf_config_validate(const eb_clf_config *c) {
    struct { const char *name; int v, min, max; } f[] = {
        {"side", c->side, 1, 1024}, {"patch", c->patch, 1, 64}, {"dim", c->dim, 4, 4096},
        {"depth", c->depth, 1, 64}, {"heads", c->heads, 1, 256}, {"classes", c->classes, 2, 100000},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i].v < f[i].min || f[i].v > f[i].max)
            return eb_fail(EB_EINPUT, "classifier config: %s = %d outside [%d, %d]", f[i].name, f[i].v, f[i].min,
                           f[i].max);
    if (c->side % c->patch) return eb_fail(EB_EINPUT, "classifier config: side %d is not a multiple of patch %d", c->side, c->patch);
    if (c->dim % 4) return eb_fail(EB_EINPUT, "classifier config: dim %d is not a multiple of 4 (sin-cos pos embed)", c->dim);
    if (c->dim % c->heads)
        return eb_fail(EB_EINPUT, "classifier config: dim %d is not a multiple of heads %d", c->dim, c->heads);
    return EB_OK;
}

static const struct {
    const char *fmt; /* key; "%d" is the block */
    int per_block;
    int decay;       /* AdamW weight decay applies (matrices) */
} tensor_info[EB_CLF_NUM_TENSORS] = {
    {"patch_embed.weight", 0, 1}, {"patch_embed.bias", 0, 0},
    {"blocks.%d.norm1.shift", 1, 0}, {"blocks.%d.norm1.scale", 1, 0},
    {"blocks.%d.attn.qkv.weight", 1, 1}, {"blocks.%d.attn.qkv.bias", 1, 0},
    {"blocks.%d.attn.proj.weight", 1, 1}, {"blocks.%d.attn.proj.bias", 1, 0},
    {"blocks.%d.gate1", 1, 0},
    {"blocks.%d.norm2.shift", 1, 0}, {"blocks.%d.norm2.scale", 1, 0},
    {"blocks.%d.mlp.fc1.weight", 1, 1}, {"blocks.%d.mlp.fc1.bias", 1, 0},
    {"blocks.%d.mlp.fc2.weight", 1, 1}, {"blocks.%d.mlp.fc2.bias", 1, 0},
    {"blocks.%d.gate2", 1, 0},
    {"norm.shift", 0, 0}, {"norm.scale", 0, 0},
    {"head.weight", 0, 1}, {"head.bias", 0, 0},
};

void eb_clf_tensor_name(char *buf, size_t cap, int i, int block) {
    if (tensor_info[i].per_block)
        snprintf(buf, cap, tensor_info[i].fmt, block);
    else
        snprintf(buf, cap, "%s", tensor_info[i].fmt);
}

int eb_clf_tensor_shape(int i, const eb_clf_config *c, int64_t dims[4]) {
    const int64_t D = c->dim, H = (int64_t)EB_CLF_MLP_RATIO * c->dim;
    switch (i) {
    case EB_CLF_PATCH_W: dims[0] = D, dims[1] = 1, dims[2] = dims[3] = c->patch; return 4;
    case EB_CLF_QKV_W: dims[0] = 3 * D, dims[1] = D; return 2;
    case EB_CLF_QKV_B: dims[0] = 3 * D; return 1;
    case EB_CLF_PROJ_W: dims[0] = D, dims[1] = D; return 2;
    case EB_CLF_FC1_W: dims[0] = H, dims[1] = D; return 2;
    case EB_CLF_FC1_B: dims[0] = H; return 1;
    case EB_CLF_FC2_W: dims[0] = D, dims[1] = H; return 2;
    case EB_CLF_HEAD_W: dims[0] = c->classes, dims[1] = D; return 2;
    case EB_CLF_HEAD_B: dims[0] = c->classes; return 1;
    default: dims[0] = D; return 1; /* biases, norms and gates of width D */
    }
}

/* Elements of one block's slice (or of the whole tensor). */
static size_t slice_size(int i, const eb_clf_config *c) {
    int64_t dims[4];
    int rank = eb_clf_tensor_shape(i, c, dims);
    size_t n = 1;
    for (int r = 0; r < rank; r++) n *= (size_t)dims[r];
    return n;
}

size_t eb_clf_tensor_size(int i, const eb_clf_config *c) {
    return slice_size(i, c) * (tensor_info[i].per_block ? (size_t)c->depth : 1);
}

size_t eb_clf_param_count(const eb_clf_config *c) {
    size_t n = 0;
    for (int i = 0; i < EB_CLF_NUM_TENSORS; i++) n += eb_clf_tensor_size(i, c);
    return n;
}

/* Points p's members (declared in enum order) into slab. */
static void point_params(eb_clf_params *p, float *slab, const eb_clf_config *c) {
    float **slot = (float **)p;
    for (int i = 0; i < EB_CLF_NUM_TENSORS; i++) {
        slot[i] = slab;
        slab += eb_clf_tensor_size(i, c);
    }
}

/* Offset of tensor i in the slab. */
static size_t tensor_offset(int i, const eb_clf_config *c) {
    size_t off = 0;
    for (int j = 0; j < i; j++) off += eb_clf_tensor_size(j, c);
    return off;
}

/* ------------------------------------------------------------------------ */
/* Creation                                                                  */

static int tokens(const eb_clf_config *c) { return (c->side / c->patch) * (c->side / c->patch); }

/* The model with every parameter zero and no training state. */
static eb_status alloc_model(eb_clf **out, const eb_clf_config *c) {
    *out = NULL;
    eb_status st = eb_clf_config_validate(c);
    if (st) return st;
    eb_clf *m = calloc(1, sizeof *m);
    if (!m) return eb_fail(EB_ERUNTIME, "classifier: out of memory");
    m->cfg = *c;
    m->n_params = eb_clf_param_count(c);
    m->params = calloc(m->n_params, sizeof(float));
    m->pos_embed = malloc((size_t)tokens(c) * c->dim * sizeof(float));
    if (!m->params || !m->pos_embed) {
        eb_clf_free(m);
        return eb_fail(EB_ERUNTIME, "classifier: out of memory for %zu parameters", m->n_params);
    }
    point_params(&m->p, m->params, c);
    eb_pos_embed(m->pos_embed, c->dim, c->side / c->patch);
    *out = m;
    return EB_OK;
}

eb_status eb_clf_create(eb_clf **out, const eb_clf_config *c, uint64_t seed) {
    eb_status st = alloc_model(out, c);
    if (st) return st;
    eb_clf *m = *out;
    float **slot = (float **)&m->p;
    for (int i = 0; i < EB_CLF_NUM_TENSORS; i++) {
        size_t n = eb_clf_tensor_size(i, c);
        if (i == EB_CLF_GATE1 || i == EB_CLF_GATE2) {
            for (size_t j = 0; j < n; j++) slot[i][j] = 1.0f;
        } else if (tensor_info[i].decay) { /* matrices: Xavier normal on the (out, in) view */
            int64_t dims[4];
            int rank = eb_clf_tensor_shape(i, c, dims);
            double fan_in = 1;
            for (int r = 1; r < rank; r++) fan_in *= (double)dims[r];
            float std = (float)sqrt(2.0 / (fan_in + (double)dims[0]));
            eb_rng_fill_normal(slot[i], n, eb_rng_key(seed, STREAM_INIT | (uint64_t)i));
            for (size_t j = 0; j < n; j++) slot[i][j] *= std;
        }
    }
    return EB_OK;
}

void eb_clf_free(eb_clf *m) {
    if (!m) return;
    free(m->params);
    free(m->grads);
    free(m->adam_m);
    free(m->adam_v);
    free(m->pos_embed);
    free(m->act_slab);
    free(m);
}

uint64_t eb_clf_checksum(const eb_clf *m) {
    uint64_t h = 0xcbf29ce484222325ull;
    const int cfg[6] = {m->cfg.side, m->cfg.patch, m->cfg.dim, m->cfg.depth, m->cfg.heads, m->cfg.classes};
    const unsigned char *parts[2] = {(const unsigned char *)cfg, (const unsigned char *)m->params};
    size_t lens[2] = {sizeof cfg, m->n_params * sizeof(float)};
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < lens[k]; i++) h = (h ^ parts[k][i]) * 0x100000001b3ull;
    return h;
}

/* Gradients and AdamW moments, zeroed, allocated on first use. */
static eb_status ensure_train_state(eb_clf *m) {
    if (m->grads) return EB_OK;
    m->grads = calloc(m->n_params, sizeof(float));
    if (!m->adam_m) m->adam_m = calloc(m->n_params, sizeof(float));
    if (!m->adam_v) m->adam_v = calloc(m->n_params, sizeof(float));
    if (!m->grads || !m->adam_m || !m->adam_v) return eb_fail(EB_ERUNTIME, "classifier: out of memory for the optimizer");
    point_params(&m->g, m->grads, &m->cfg);
    return EB_OK;
}

/* Makes the activation buffers hold B rows (and the gradient scratch when
 * `train`); buffers only grow. */
static eb_status reserve(eb_clf *m, int B, int train) {
    eb_clf_acts *a = &m->a;
    if (B <= a->capacity && train <= a->train) return EB_OK;
    if (B < a->capacity) B = a->capacity;
    if (a->train) train = 1;
    const eb_clf_config *c = &m->cfg;
    const size_t L = c->depth, T = tokens(c), D = c->dim, NH = c->heads, K = c->classes;
    const size_t BT = (size_t)B * T, img = (size_t)B * c->side * c->side, pp = (size_t)c->patch * c->patch;
    struct { float **ptr; size_t n; int grad; } f[] = {
        {&a->x, img, 0}, {&a->resid, (2 * L + 1) * BT * D, 0},
        {&a->ln1, L * BT * D, 0}, {&a->ln2, L * BT * D, 0},
        {&a->ln1_mean, L * BT, 0}, {&a->ln1_rstd, L * BT, 0}, {&a->ln2_mean, L * BT, 0}, {&a->ln2_rstd, L * BT, 0},
        {&a->qkv, L * BT * 3 * D, 0}, {&a->probs, L * B * NH * T * T, 0},
        {&a->attn, L * BT * D, 0}, {&a->attn_out, L * BT * D, 0},
        {&a->fc1, L * BT * EB_CLF_MLP_RATIO * D, 0}, {&a->gelu, L * BT * EB_CLF_MLP_RATIO * D, 0},
        {&a->mlp_out, L * BT * D, 0}, {&a->lnf, BT * D, 0}, {&a->lnf_mean, BT, 0}, {&a->lnf_rstd, BT, 0},
        {&a->feat, (size_t)B * D, 0}, {&a->logits, (size_t)B * K, 0},
        {&a->d_logits, (size_t)B * K, 1}, {&a->d_feat, (size_t)B * D, 1},
        {&a->d_resid, BT * D, 1}, {&a->d_ln, BT * D, 1}, {&a->d_branch, BT * D, 1}, {&a->d_attn, BT * D, 1},
        {&a->d_qkv, BT * 3 * D, 1}, {&a->d_probs, (size_t)B * NH * T * T, 1},
        {&a->d_gelu, BT * EB_CLF_MLP_RATIO * D, 1}, {&a->d_fc1, BT * EB_CLF_MLP_RATIO * D, 1},
        {&a->patches, BT * pp, 1},
    };
    const int nf = sizeof f / sizeof f[0];
    size_t total = 0;
    for (int i = 0; i < nf; i++) total += f[i].grad && !train ? 0 : f[i].n;
    float *slab = malloc(total * sizeof(float));
    if (!slab) return eb_fail(EB_ERUNTIME, "classifier: out of memory for the activations of %d rows", B);
    free(m->act_slab);
    m->act_slab = slab;
    for (int i = 0; i < nf; i++) {
        if (f[i].grad && !train) {
            *f[i].ptr = NULL;
            continue;
        }
        *f[i].ptr = slab;
        slab += f[i].n;
    }
    a->capacity = B;
    a->train = train;
    return EB_OK;
}

/* ------------------------------------------------------------------------ */
/* Forward                                                                   */

/* The forward on a.x (B rows): every activation of classifier.h. */
static void forward(eb_clf *m, int B) {
    const eb_clf_config *c = &m->cfg;
    eb_clf_acts *a = &m->a;
    const eb_clf_params *p = &m->p;
    const int L = c->depth, T = tokens(c), D = c->dim, NH = c->heads, H4 = EB_CLF_MLP_RATIO * c->dim;
    const size_t BT = (size_t)B * T, BTD = BT * D;
    patch_embed_forward(a->resid, a->x, p->patch_w, p->patch_b, m->pos_embed, B, 1, c->side, c->patch, D);
    for (int l = 0; l < L; l++) {
        float *x_in = a->resid + 2 * l * BTD, *x_mid = x_in + BTD, *x_out = x_mid + BTD;
        float *ln1 = a->ln1 + l * BTD, *ln2 = a->ln2 + l * BTD, *qkv = a->qkv + l * BTD * 3;
        float *attn = a->attn + l * BTD, *attn_out = a->attn_out + l * BTD, *mlp_out = a->mlp_out + l * BTD;
        float *fc1 = a->fc1 + l * BT * H4, *gelu = a->gelu + l * BT * H4;
        ln_modulate_forward(ln1, a->ln1_mean + l * BT, a->ln1_rstd + l * BT, x_in, p->ln1_shift + l * D,
                            p->ln1_scale + l * D, B, T, D, 0);
        linear_forward(qkv, ln1, p->qkv_w + (size_t)l * 3 * D * D, p->qkv_b + l * 3 * D, (int)BT, D, 3 * D);
        attention_forward(attn, a->probs + (size_t)l * B * NH * T * T, qkv, B, T, NH, D / NH);
        linear_forward(attn_out, attn, p->proj_w + (size_t)l * D * D, p->proj_b + l * D, (int)BT, D, D);
        memcpy(x_mid, x_in, BTD * sizeof(float));
        gate_residual_forward(x_mid, p->gate1 + l * D, attn_out, B, T, D, 0);
        ln_modulate_forward(ln2, a->ln2_mean + l * BT, a->ln2_rstd + l * BT, x_mid, p->ln2_shift + l * D,
                            p->ln2_scale + l * D, B, T, D, 0);
        linear_forward(fc1, ln2, p->fc1_w + (size_t)l * H4 * D, p->fc1_b + (size_t)l * H4, (int)BT, D, H4);
        gelu_tanh_forward(gelu, fc1, BT * H4);
        linear_forward(mlp_out, gelu, p->fc2_w + (size_t)l * D * H4, p->fc2_b + l * D, (int)BT, H4, D);
        memcpy(x_out, x_mid, BTD * sizeof(float));
        gate_residual_forward(x_out, p->gate2 + l * D, mlp_out, B, T, D, 0);
    }
    ln_modulate_forward(a->lnf, a->lnf_mean, a->lnf_rstd, a->resid + 2 * L * BTD, p->norm_shift, p->norm_scale, B, T,
                        D, 0);
#pragma omp parallel for schedule(static)
    for (int n = 0; n < B; n++)
        for (int d = 0; d < D; d++) {
            float sum = 0.0f;
            for (int t = 0; t < T; t++) sum += a->lnf[((size_t)n * T + t) * D + d];
            a->feat[(size_t)n * D + d] = sum / (float)T;
        }
    linear_forward(a->logits, a->feat, p->head_w, p->head_b, B, D, c->classes);
}

/* a.x (n values) = src clipped to [−1, 1]; EB_EINPUT naming the image
 * `first` + i and its pixel of a non-finite value. */
static eb_status load_input(eb_clf *m, const float *src, int B, int first) {
    const int S = m->cfg.side;
    const size_t per = (size_t)S * S, n = per * B;
    for (size_t i = 0; i < n; i++) {
        float v = src[i];
        if (!isfinite(v))
            return eb_fail(EB_EINPUT, "classifier input: image %d has %s at pixel [0, %d, %d]", first + (int)(i / per),
                           isnan(v) ? "NaN" : v > 0 ? "Inf" : "-Inf", (int)(i % per) / S, (int)(i % per) % S);
        m->a.x[i] = v < -1.0f ? -1.0f : v > 1.0f ? 1.0f : v;
    }
    return EB_OK;
}

eb_status eb_clf_features(eb_clf *m, float *feat, float *logits, const float *x, int N) {
    const int D = m->cfg.dim, K = m->cfg.classes;
    const size_t per = (size_t)m->cfg.side * m->cfg.side;
    eb_status st = reserve(m, N < EB_CLF_CHUNK ? N : EB_CLF_CHUNK, 0);
    for (int first = 0; !st && first < N; first += EB_CLF_CHUNK) {
        int B = N - first < EB_CLF_CHUNK ? N - first : EB_CLF_CHUNK;
        if ((st = load_input(m, x + first * per, B, first))) break;
        forward(m, B);
        for (size_t i = 0; i < (size_t)B * D; i++)
            if (!isfinite(m->a.feat[i]))
                return eb_fail(EB_ERUNTIME, "classifier: the features of image %d are not finite (feature %d)",
                               first + (int)(i / D), (int)(i % D));
        if (feat) memcpy(feat + (size_t)first * D, m->a.feat, (size_t)B * D * sizeof(float));
        if (logits) memcpy(logits + (size_t)first * K, m->a.logits, (size_t)B * K * sizeof(float));
    }
    return st;
}

eb_status eb_clf_accuracy(eb_clf *m, double *accuracy, const float *x, const int32_t *y, int N) {
    float *logits = malloc((size_t)N * m->cfg.classes * sizeof(float));
    if (!logits) return eb_fail(EB_ERUNTIME, "classifier: out of memory for the logits of %d images", N);
    eb_status st = eb_clf_features(m, NULL, logits, x, N);
    if (!st) st = eb_accuracy(accuracy, logits, y, N, m->cfg.classes);
    free(logits);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Loss and backward                                                         */

/* Mean cross-entropy of a.logits against y and d loss / d logits into a.d_logits. */
static eb_status cross_entropy(eb_clf *m, double *loss, const int32_t *y, int B) {
    const int K = m->cfg.classes;
    double total = 0.0;
    for (int n = 0; n < B; n++) {
        const float *z = m->a.logits + (size_t)n * K;
        float *dz = m->a.d_logits + (size_t)n * K;
        double mx = z[0], sum = 0.0;
        for (int k = 1; k < K; k++) mx = z[k] > mx ? z[k] : mx;
        for (int k = 0; k < K; k++) sum += exp(z[k] - mx);
        double lse = mx + log(sum), row = lse - z[y[n]];
        if (!isfinite(row)) return eb_fail(EB_ERUNTIME, "classifier: the loss of batch row %d is not finite", n);
        total += row;
        for (int k = 0; k < K; k++) dz[k] = (float)((exp(z[k] - lse) - (k == y[n])) / B);
    }
    *loss = total / B;
    return EB_OK;
}

/* Gradients of every parameter into m->g (zeroed here) from a.d_logits,
 * through the activations the forward saved. */
static void backward(eb_clf *m, int B) {
    const eb_clf_config *c = &m->cfg;
    eb_clf_acts *a = &m->a;
    const eb_clf_params *p = &m->p, *g = &m->g;
    const int L = c->depth, T = tokens(c), D = c->dim, NH = c->heads, H4 = EB_CLF_MLP_RATIO * c->dim;
    const size_t BT = (size_t)B * T, BTD = BT * D;
    /* The stride-0 LayerNorm and gate vectors are shared by the whole batch,
     * but the backward kernels parallelise over batch rows, each adding into
     * its own row's vector: seen as one row of B·T tokens, every shared
     * gradient is summed by one thread in a fixed order. */
    const int rows = 1, toks = (int)BT;
    memset(m->grads, 0, m->n_params * sizeof(float));
    memset(a->d_feat, 0, (size_t)B * D * sizeof(float));
    linear_backward(a->d_feat, g->head_w, g->head_b, a->d_logits, a->feat, p->head_w, B, D, c->classes);
#pragma omp parallel for schedule(static)
    for (int n = 0; n < B; n++)
        for (int t = 0; t < T; t++)
            for (int d = 0; d < D; d++) a->d_ln[((size_t)n * T + t) * D + d] = a->d_feat[(size_t)n * D + d] / (float)T;
    memset(a->d_resid, 0, BTD * sizeof(float));
    ln_modulate_backward(a->d_resid, g->norm_shift, g->norm_scale, a->d_ln, a->resid + 2 * L * BTD, a->lnf_mean,
                         a->lnf_rstd, p->norm_scale, rows, toks, D, 0);
    for (int l = L - 1; l >= 0; l--) {
        const float *x_in = a->resid + 2 * l * BTD, *x_mid = x_in + BTD;
        const float *fc1 = a->fc1 + l * BT * H4, *gelu = a->gelu + l * BT * H4;
        /* x_out = x_mid + g2 ⊙ mlp(LN2(x_mid)) */
        memset(a->d_branch, 0, BTD * sizeof(float));
        gate_residual_backward(g->gate2 + l * D, a->d_branch, a->d_resid, p->gate2 + l * D, a->mlp_out + l * BTD, rows,
                               toks, D, 0);
        memset(a->d_gelu, 0, BT * H4 * sizeof(float));
        linear_backward(a->d_gelu, g->fc2_w + (size_t)l * D * H4, g->fc2_b + l * D, a->d_branch, gelu,
                        p->fc2_w + (size_t)l * D * H4, (int)BT, H4, D);
        memset(a->d_fc1, 0, BT * H4 * sizeof(float));
        gelu_tanh_backward(a->d_fc1, fc1, gelu, a->d_gelu, BT * H4);
        memset(a->d_ln, 0, BTD * sizeof(float));
        linear_backward(a->d_ln, g->fc1_w + (size_t)l * H4 * D, g->fc1_b + (size_t)l * H4, a->d_fc1, a->ln2 + l * BTD,
                        p->fc1_w + (size_t)l * H4 * D, (int)BT, D, H4);
        ln_modulate_backward(a->d_resid, g->ln2_shift + l * D, g->ln2_scale + l * D, a->d_ln, x_mid,
                             a->ln2_mean + l * BT, a->ln2_rstd + l * BT, p->ln2_scale + l * D, rows, toks, D, 0);
        /* x_mid = x_in + g1 ⊙ attn(LN1(x_in)) */
        memset(a->d_branch, 0, BTD * sizeof(float));
        gate_residual_backward(g->gate1 + l * D, a->d_branch, a->d_resid, p->gate1 + l * D, a->attn_out + l * BTD,
                               rows, toks, D, 0);
        memset(a->d_attn, 0, BTD * sizeof(float));
        linear_backward(a->d_attn, g->proj_w + (size_t)l * D * D, g->proj_b + l * D, a->d_branch, a->attn + l * BTD,
                        p->proj_w + (size_t)l * D * D, (int)BT, D, D);
        memset(a->d_qkv, 0, BTD * 3 * sizeof(float));
        attention_backward(a->d_qkv, a->d_probs, a->d_attn, a->qkv + l * BTD * 3,
                           a->probs + (size_t)l * B * NH * T * T, B, T, NH, D / NH);
        memset(a->d_ln, 0, BTD * sizeof(float));
        linear_backward(a->d_ln, g->qkv_w + (size_t)l * 3 * D * D, g->qkv_b + l * 3 * D, a->d_qkv, a->ln1 + l * BTD,
                        p->qkv_w + (size_t)l * 3 * D * D, (int)BT, D, 3 * D);
        ln_modulate_backward(a->d_resid, g->ln1_shift + l * D, g->ln1_scale + l * D, a->d_ln, x_in,
                             a->ln1_mean + l * BT, a->ln1_rstd + l * BT, p->ln1_scale + l * D, rows, toks, D, 0);
    }
    patch_embed_backward(g->patch_w, g->patch_b, a->patches, a->d_resid, a->x, B, 1, c->side, c->patch, D);
}

static eb_status check_labels(const eb_clf *m, const int32_t *y, int B) {
    for (int n = 0; n < B; n++)
        if (y[n] < 0 || y[n] >= m->cfg.classes)
            return eb_fail(EB_EINPUT, "classifier: label [%d] = %d outside [0, %d)", n, y[n], m->cfg.classes);
    return EB_OK;
}

/* Forward on a.x, loss and gradients. */
static eb_status loss_grad_on_input(eb_clf *m, double *loss, const int32_t *y, int B) {
    forward(m, B);
    eb_status st = cross_entropy(m, loss, y, B);
    if (!st) backward(m, B);
    return st;
}

eb_status eb_clf_loss_grad(eb_clf *m, double *loss, const float *x, const int32_t *y, int B) {
    eb_status st = check_labels(m, y, B);
    if (!st) st = ensure_train_state(m);
    if (!st) st = reserve(m, B, 1);
    if (!st) st = load_input(m, x, B, 0);
    if (!st) st = loss_grad_on_input(m, loss, y, B);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Training                                                                  */

eb_clf_recipe eb_clf_recipe_default(void) {
    return (eb_clf_recipe){.batch = 32, .epochs = 15, .lr = 2e-3, .weight_decay = 0.05, .beta1 = 0.9, .beta2 = 0.999,
                           .adam_eps = 1e-8, .warmup_steps = 500, .flip = 0.0, .max_shift = 1, .seed = 0};
}

eb_status eb_clf_recipe_validate(const eb_clf_recipe *r) {
    if (r->batch < 1 || r->batch > (1 << 16)) return eb_fail(EB_EINPUT, "classifier recipe: batch %d outside [1, 65536]", r->batch);
    if (r->epochs < 1 || r->epochs > 100000) return eb_fail(EB_EINPUT, "classifier recipe: epochs %d outside [1, 100000]", r->epochs);
    if (!(r->lr > 0 && r->lr < 10)) return eb_fail(EB_EINPUT, "classifier recipe: lr %g outside (0, 10)", r->lr);
    if (!(r->weight_decay >= 0 && r->weight_decay < 10))
        return eb_fail(EB_EINPUT, "classifier recipe: weight decay %g outside [0, 10)", r->weight_decay);
    if (!(r->beta1 >= 0 && r->beta1 < 1) || !(r->beta2 >= 0 && r->beta2 < 1))
        return eb_fail(EB_EINPUT, "classifier recipe: betas %g, %g outside [0, 1)", r->beta1, r->beta2);
    if (!(r->adam_eps > 0 && r->adam_eps < 1)) return eb_fail(EB_EINPUT, "classifier recipe: eps %g outside (0, 1)", r->adam_eps);
    if (r->warmup_steps < 0) return eb_fail(EB_EINPUT, "classifier recipe: warmup %d is negative", r->warmup_steps);
    if (!(r->flip >= 0 && r->flip <= 1)) return eb_fail(EB_EINPUT, "classifier recipe: flip %g outside [0, 1]", r->flip);
    if (r->max_shift < 0 || r->max_shift > 64)
        return eb_fail(EB_EINPUT, "classifier recipe: shift %d outside [0, 64]", r->max_shift);
    return EB_OK;
}

void eb_clf_augment(float *out, const float *x, int B, int side, const eb_clf_recipe *r, int64_t step) {
    const uint64_t key = eb_rng_key(r->seed, STREAM_AUG | (uint64_t)step);
    const int S = side, span = 2 * r->max_shift + 1;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < B; n++) {
        /* eb_rng_key is a 64-bit mix: three uniform words per row. */
        uint64_t u0 = eb_rng_key(key, 3 * (uint64_t)n), u1 = eb_rng_key(key, 3 * (uint64_t)n + 1),
                 u2 = eb_rng_key(key, 3 * (uint64_t)n + 2);
        int flip = (double)(u0 >> 11) * 0x1p-53 < r->flip;
        int dx = (int)(u1 % (uint64_t)span) - r->max_shift, dy = (int)(u2 % (uint64_t)span) - r->max_shift;
        const float *src = x + (size_t)n * S * S;
        float *dst = out + (size_t)n * S * S;
        for (int yy = 0; yy < S; yy++)
            for (int xx = 0; xx < S; xx++) {
                int sy = yy - dy, sx = xx - dx;
                if (flip) sx = S - 1 - sx;
                dst[yy * S + xx] = sy >= 0 && sy < S && sx >= 0 && sx < S ? src[sy * S + sx] : -1.0f;
            }
    }
}

/* Names the first non-finite gradient: tensor key (block) and index. */
static eb_status report_bad_gradient(const eb_clf *m) {
    float *const *slot = (float *const *)&m->g;
    for (int i = 0; i < EB_CLF_NUM_TENSORS; i++) {
        int64_t dims[4];
        int rank = eb_clf_tensor_shape(i, &m->cfg, dims);
        size_t per = slice_size(i, &m->cfg);
        for (int b = 0; b < (tensor_info[i].per_block ? m->cfg.depth : 1); b++) {
            char name[NAME_LEN], what[NAME_LEN + 64];
            eb_clf_tensor_name(name, sizeof name, i, b);
            snprintf(what, sizeof what, "classifier step %" PRId64 ": the gradient of %s", m->step, name);
            eb_status st = eb_check_finite(slot[i] + b * per, dims, rank, EB_ERUNTIME, what);
            if (st) return st;
        }
    }
    return eb_fail(EB_ERUNTIME, "classifier step %" PRId64 ": the gradient norm is not finite", m->step);
}

eb_status eb_clf_train_step(eb_clf *m, const eb_clf_recipe *r, const float *x, const int32_t *y, int B, int64_t total,
                            eb_clf_train_stats *stats) {
    eb_status st = check_labels(m, y, B);
    if (!st) st = ensure_train_state(m);
    if (!st) st = reserve(m, B, 1);
    if (st) return st;
    eb_clf_augment(m->a.x, x, B, m->cfg.side, r, m->step);
    double loss;
    if ((st = loss_grad_on_input(m, &loss, y, B))) return st;
    double sq = 0.0;
    for (size_t i = 0; i < m->n_params; i++) sq += (double)m->grads[i] * m->grads[i];
    if (!isfinite(sq)) return report_bad_gradient(m);
    int correct = 0;
    for (int n = 0; n < B; n++) {
        const float *z = m->a.logits + (size_t)n * m->cfg.classes;
        int best = 0;
        for (int k = 1; k < m->cfg.classes; k++) best = z[k] > z[best] ? k : best;
        correct += best == y[n];
    }
    /* AdamW as the trainer's, without decay on biases, norms and gates. */
    const double lr = eb_lr_at(r->lr, r->warmup_steps, m->step, total);
    eb_recipe opt = {.lr = r->lr, .beta1 = r->beta1, .beta2 = r->beta2, .adam_eps = r->adam_eps};
    for (int i = 0; i < EB_CLF_NUM_TENSORS; i++) {
        size_t off = tensor_offset(i, &m->cfg);
        opt.weight_decay = tensor_info[i].decay ? r->weight_decay : 0.0;
        eb_adamw_update(m->params + off, m->grads + off, m->adam_m + off, m->adam_v + off,
                        eb_clf_tensor_size(i, &m->cfg), m->step + 1, lr, &opt);
    }
    m->step++;
    *stats = (eb_clf_train_stats){.loss = loss, .accuracy = (double)correct / B, .grad_norm = sqrt(sq), .steps = 1};
    return EB_OK;
}

eb_status eb_clf_train_epoch(eb_clf *m, const eb_clf_recipe *r, const eb_fmnist *data, int progress,
                             eb_clf_train_stats *stats) {
    *stats = (eb_clf_train_stats){0};
    const int S = m->cfg.side, B = r->batch;
    if (data->h != S || data->w != S)
        return eb_fail(EB_EINPUT, "classifier training: images are %dx%d but the classifier takes %dx%d", data->h,
                       data->w, S, S);
    const int64_t spe = eb_clf_steps_per_epoch(r, data->n), total = spe * r->epochs;
    if (spe < 1) return eb_fail(EB_EINPUT, "classifier training: %d images make no batch of %d", data->n, B);
    if (m->step >= total) return EB_OK;
    const size_t per = (size_t)S * S;
    int *perm = malloc((size_t)data->n * sizeof(int));
    float *xb = malloc((size_t)B * per * sizeof(float));
    int32_t *yb = malloc((size_t)B * sizeof(int32_t));
    eb_status st = perm && xb && yb ? EB_OK : eb_fail(EB_ERUNTIME, "classifier training: out of memory");
    const int64_t epoch = m->step / spe;
    if (!st) eb_train_permutation(perm, data->n, r->seed, epoch);
    progress = progress && isatty(STDERR_FILENO);
    for (int64_t k = m->step % spe; !st && k < spe; k++) {
        for (int n = 0; n < B; n++) {
            int idx = perm[k * B + n];
            memcpy(xb + n * per, data->images + (size_t)idx * per, per * sizeof(float));
            yb[n] = data->labels[idx];
        }
        eb_clf_train_stats one;
        if ((st = eb_clf_train_step(m, r, xb, yb, B, total, &one))) break;
        stats->loss += one.loss;
        stats->accuracy += one.accuracy;
        stats->grad_norm = one.grad_norm;
        stats->steps++;
        if (progress)
            fprintf(stderr, "\rclassifier epoch %" PRId64 " step %" PRId64 "/%" PRId64 "  loss %.4f  ", epoch + 1, k + 1,
                    spe, stats->loss / stats->steps);
    }
    if (progress) fprintf(stderr, "\r%60s\r", "");
    if (stats->steps) {
        stats->loss /= stats->steps;
        stats->accuracy /= stats->steps;
    }
    free(perm);
    free(xb);
    free(yb);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Files                                                                     */

/* A classifier file's configuration keys (eb_clf_config_validate checks the values). */
static const eb_meta_field config_keys[] = {
    EB_META_INT_FIELD(eb_clf_config, side, 1, 1 << 20),
    EB_META_INT_FIELD(eb_clf_config, patch, 1, 1 << 20),
    EB_META_INT_FIELD(eb_clf_config, dim, 1, 1 << 20),
    EB_META_INT_FIELD(eb_clf_config, depth, 1, 1 << 20),
    EB_META_INT_FIELD(eb_clf_config, heads, 1, 1 << 20),
    EB_META_INT_FIELD(eb_clf_config, classes, 1, 1 << 20),
};

/* The recipe's keys, in training checkpoints and in files saved with their recipe. */
static const eb_meta_field recipe_keys[] = {
    EB_META_INT_FIELD(eb_clf_recipe, batch, 1, 1 << 16),
    EB_META_INT_FIELD(eb_clf_recipe, epochs, 1, 100000),
    EB_META_FIELD(eb_clf_recipe, lr, EB_META_DOUBLE),
    EB_META_FIELD(eb_clf_recipe, weight_decay, EB_META_DOUBLE),
    EB_META_FIELD(eb_clf_recipe, beta1, EB_META_DOUBLE),
    EB_META_FIELD(eb_clf_recipe, beta2, EB_META_DOUBLE),
    EB_META_FIELD(eb_clf_recipe, adam_eps, EB_META_DOUBLE),
    EB_META_INT_FIELD(eb_clf_recipe, warmup_steps, 0, INT32_MAX),
    EB_META_FIELD(eb_clf_recipe, flip, EB_META_DOUBLE),
    EB_META_INT_FIELD(eb_clf_recipe, max_shift, 0, 64),
    EB_META_FIELD(eb_clf_recipe, seed, EB_META_U64),
};

eb_status eb_clf_save(const eb_clf *m, const char *path, int with_state, const eb_clf_recipe *r,
                      const eb_st_meta *extra, int n_extra) {
    if (with_state && (!m->adam_m || !r))
        return eb_fail(EB_EINPUT, "%s: a classifier checkpoint needs the optimizer state and the recipe", path);
    const eb_clf_config *c = &m->cfg;
    eb_meta_list l = {.n = 0};
    eb_meta_add(&l, "format", "%s", EB_CLF_FORMAT);
    eb_meta_add_fields(&l, c, config_keys, EB_META_COUNT(config_keys));
    if (r) {
        eb_meta_add(&l, "step", "%" PRId64, m->step);
        eb_meta_add_fields(&l, r, recipe_keys, EB_META_COUNT(recipe_keys));
    }
    eb_meta_append(&l, extra, n_extra);
    eb_status st = eb_meta_check(&l, path);
    if (st) return st;

    const int slabs = with_state ? 3 : 1;
    const float *slab[3] = {m->params, m->adam_m, m->adam_v};
    const char *prefix[3] = {"", "adam_m.", "adam_v."};
    int n_entries = 0;
    for (int i = 0; i < EB_CLF_NUM_TENSORS; i++) n_entries += tensor_info[i].per_block ? c->depth : 1;
    n_entries *= slabs;
    eb_st_entry *e = calloc(n_entries, sizeof *e);
    char *names = malloc((size_t)n_entries * NAME_LEN);
    if (!e || !names) {
        free(e);
        free(names);
        return eb_fail(EB_ERUNTIME, "%s: out of memory", path);
    }
    int k = 0;
    for (int s = 0; s < slabs; s++)
        for (int i = 0; i < EB_CLF_NUM_TENSORS; i++) {
            size_t per = slice_size(i, c), off = tensor_offset(i, c);
            for (int b = 0; b < (tensor_info[i].per_block ? c->depth : 1); b++, k++) {
                char *name = names + (size_t)k * NAME_LEN, key[NAME_LEN];
                eb_clf_tensor_name(key, sizeof key, i, b);
                snprintf(name, NAME_LEN, "%s%s", prefix[s], key);
                e[k] = (eb_st_entry){.name = name, .dtype = EB_DT_F32, .data = slab[s] + off + b * per};
                e[k].rank = eb_clf_tensor_shape(i, c, e[k].shape);
            }
        }
    st = eb_st_write(path, e, n_entries, l.pairs, l.n);
    free(e);
    free(names);
    return st;
}

static eb_status read_recipe(const eb_st_file *f, eb_clf_recipe *r) {
    eb_status st = eb_meta_read_fields(f, r, recipe_keys, EB_META_COUNT(recipe_keys));
    if (!st && (st = eb_clf_recipe_validate(r))) st = eb_fail(EB_EINPUT, "%s: %s", eb_st_label(f), eb_last_error());
    return st;
}

/* Reads every tensor of one slab (prefix "" or "adam_m." ...) into dst. */
static eb_status read_slab(const eb_st_file *f, const eb_clf_config *c, const char *prefix, float *dst) {
    for (int i = 0; i < EB_CLF_NUM_TENSORS; i++) {
        int64_t dims[4];
        int rank = eb_clf_tensor_shape(i, c, dims);
        size_t per = slice_size(i, c);
        float *base = dst + tensor_offset(i, c);
        for (int b = 0; b < (tensor_info[i].per_block ? c->depth : 1); b++) {
            char key[NAME_LEN], name[NAME_LEN + 16];
            eb_clf_tensor_name(key, sizeof key, i, b);
            snprintf(name, sizeof name, "%s%s", prefix, key);
            const eb_st_tensor *t = eb_st_find(f, name);
            if (!t) return eb_fail(EB_EINPUT, "%s: tensor '%s' is missing", eb_st_label(f), name);
            int same = t->rank == rank;
            for (int r = 0; same && r < rank; r++) same = t->shape[r] == dims[r];
            if (!same) {
                char want[EB_INDEX_STR_MAX], got[EB_INDEX_STR_MAX];
                return eb_fail(EB_EINPUT, "%s: tensor '%s' has shape %s, expected %s", eb_st_label(f), name,
                               eb_format_dims(got, sizeof got, t->shape, t->rank),
                               eb_format_dims(want, sizeof want, dims, rank));
            }
            eb_status st = eb_st_read_f32(f, t, base + b * per, per);
            char what[NAME_LEN + 300];
            snprintf(what, sizeof what, "%s: tensor '%s'", eb_st_label(f), name);
            if (!st) st = eb_check_finite(base + b * per, dims, rank, EB_EINPUT, what);
            if (st) return st;
        }
    }
    return EB_OK;
}

eb_status eb_clf_load(eb_clf **out, const char *path, eb_clf_recipe *r, int *has_state) {
    *out = NULL;
    if (has_state) *has_state = 0;
    eb_st_file *f;
    eb_status st = eb_st_open(&f, path);
    if (st) return st;
    eb_clf_config c;
    st = eb_meta_check_format(f, EB_CLF_FORMAT, "an ebcache classifier");
    if (!st) st = eb_meta_read_fields(f, &c, config_keys, EB_META_COUNT(config_keys));
    if (!st && (st = eb_clf_config_validate(&c))) st = eb_fail(EB_EINPUT, "%s: %s", path, eb_last_error());
    eb_clf *m = NULL;
    if (!st) st = alloc_model(&m, &c);
    if (!st) st = read_slab(f, &c, "", m->params);
    eb_clf_recipe rr;
    int with_recipe = eb_st_metadata(f, "step") != NULL;
    if (!st && with_recipe) st = eb_meta_int64(f, "step", 0, INT64_MAX / 2, &m->step);
    if (!st && with_recipe) st = read_recipe(f, &rr);
    if (!st && eb_st_find(f, "adam_m.patch_embed.weight")) { /* a training checkpoint */
        if (!with_recipe) st = eb_fail(EB_EINPUT, "%s: optimizer state without the step and recipe metadata", path);
        if (!st) st = ensure_train_state(m);
        if (!st) st = read_slab(f, &c, "adam_m.", m->adam_m);
        if (!st) st = read_slab(f, &c, "adam_v.", m->adam_v);
        if (!st && has_state) *has_state = 1;
    }
    if (!st && with_recipe && r) *r = rr;
    eb_st_close(f);
    if (st) {
        eb_clf_free(m);
        return st;
    }
    *out = m;
    return EB_OK;
}
