/* vae.c — the SD-VAE decoder on the backend's image operations (vae.h).
 *
 * diffusers' AutoencoderKL.decode: post_quant_conv (1×1), then Decoder:
 * conv_in 3×3 → mid block (ResNet, single-head self-attention over the H·W
 * tokens, ResNet) → up blocks in reversed channel order (layers + 1 ResNets,
 * the first one changing the channel count with a 1×1 shortcut; nearest ×2 +
 * conv 3×3 except in the last) → GroupNorm + SiLU → conv_out 3×3.
 * ResNet: GroupNorm+SiLU → conv 3×3 → GroupNorm+SiLU → conv 3×3, + skip.
 * Every GroupNorm has eps 1e-6 and norm_num_groups groups. The upsample is
 * fused into the following convolution (conv2d's upsample2), which reads the
 * source pixels and never materialises the ×2 image.
 */
#include "runtime/vae.h"

#include "runtime/backend.h"
#include "runtime/model.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { const float *w, *b; int oc, ic, k; } vae_conv;
typedef struct { const float *gamma, *beta; } vae_norm;
typedef struct {
    vae_norm norm1, norm2;
    vae_conv conv1, conv2, shortcut; /* shortcut.w NULL when the channels do not change */
} vae_resnet;
typedef struct {
    vae_norm norm;
    const float *wqkv, *bqkv; /* to_q, to_k, to_v stacked: (3C, C), (3C) */
    const float *wo, *bo;     /* to_out.0: (C, C), (C) */
    int c;
} vae_attn;
typedef struct {
    vae_resnet res[EB_VAE_MAX_LAYERS + 1];
    vae_conv upsample; /* w NULL in the last block */
} vae_up;

#define VAE_MAX_PARAMS (16 + 2 * 12 + EB_VAE_MAX_BLOCKS * ((EB_VAE_MAX_LAYERS + 1) * 12 + 2))

struct eb_vae {
    eb_vae_config cfg;
    const eb_backend *be;
    float *slab;
    size_t floats;
    eb_vae_param params[VAE_MAX_PARAMS];
    int n_params;
    vae_conv post_quant, conv_in, conv_out;
    vae_resnet mid1, mid2;
    vae_attn attn;
    vae_up up[EB_VAE_MAX_BLOCKS];
    vae_norm norm_out;
    char layout[48];
    /* activation buffers, grown to the largest decode seen */
    float *buf[3], *qkv;
    size_t buf_floats, qkv_floats;
};

void eb_vae_config_sd(eb_vae_config *c) {
    *c = (eb_vae_config){.latent_channels = 4, .out_channels = 3, .n_blocks = 4,
                         .block_out_channels = {128, 256, 512, 512}, .layers_per_block = 2, .norm_num_groups = 32,
                         .mid_attention = 1, .post_quant_conv = 1};
}

eb_status eb_vae_config_validate(const eb_vae_config *c) {
    if (c->n_blocks < 1 || c->n_blocks > EB_VAE_MAX_BLOCKS)
        return eb_fail(EB_EINPUT, "VAE config: %d blocks outside [1, %d]", c->n_blocks, EB_VAE_MAX_BLOCKS);
    if (c->layers_per_block < 0 || c->layers_per_block > EB_VAE_MAX_LAYERS)
        return eb_fail(EB_EINPUT, "VAE config: layers_per_block %d outside [0, %d]", c->layers_per_block,
                       EB_VAE_MAX_LAYERS);
    if (c->latent_channels < 1 || c->latent_channels > 64 || c->out_channels < 1 || c->out_channels > 64)
        return eb_fail(EB_EINPUT, "VAE config: latent_channels %d / out_channels %d outside [1, 64]",
                       c->latent_channels, c->out_channels);
    if (c->norm_num_groups < 1)
        return eb_fail(EB_EINPUT, "VAE config: norm_num_groups %d < 1", c->norm_num_groups);
    for (int i = 0; i < c->n_blocks; i++) {
        int ch = c->block_out_channels[i];
        if (ch < 1 || ch > 8192 || ch % c->norm_num_groups)
            return eb_fail(EB_EINPUT, "VAE config: block_out_channels[%d] = %d is not a multiple of norm_num_groups %d "
                                      "in [1, 8192]", i, ch, c->norm_num_groups);
    }
    return EB_OK;
}

int eb_vae_upscale(const eb_vae_config *c) { return 1 << (c->n_blocks - 1); }

/* Channels into and out of decoder up block i (reversed encoder order). */
static int up_in_channels(const eb_vae_config *c, int i) { return c->block_out_channels[c->n_blocks - (i ? i : 1)]; }
static int up_out_channels(const eb_vae_config *c, int i) { return c->block_out_channels[c->n_blocks - 1 - i]; }

double eb_vae_decode_macs(const eb_vae_config *c, int H, int W) {
    double hw = (double)H * W, top = c->block_out_channels[c->n_blocks - 1], macs = 0;
    if (c->post_quant_conv) macs += hw * c->latent_channels * c->latent_channels;
    macs += hw * 9 * c->latent_channels * top;
    macs += 2 * 2 * hw * 9 * top * top;                                  /* mid resnets */
    if (c->mid_attention) macs += hw * 4 * top * top + 2 * hw * hw * top; /* q, k, v, out; QKᵀ and PV */
    for (int i = 0; i < c->n_blocks; i++) {
        double cin = up_in_channels(c, i), cout = up_out_channels(c, i);
        for (int j = 0; j <= c->layers_per_block; j++, cin = cout)
            macs += hw * 9 * (cin * cout + cout * cout) + (cin != cout ? hw * cin * cout : 0);
        if (i < c->n_blocks - 1) {
            hw *= 4;
            macs += hw * 9 * cout * cout;
        }
    }
    return macs + hw * 9 * up_out_channels(c, c->n_blocks - 1) * c->out_channels;
}

/* ------------------------------------------------------------------------ */
/* The parameter table                                                       */

/* Appends a tensor of the given shape named printf-style; returns its offset. */
static size_t add_param(eb_vae *v, int rank, const int64_t *shape, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static size_t add_param(eb_vae *v, int rank, const int64_t *shape, const char *fmt, ...) {
    eb_vae_param *p = &v->params[v->n_params++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->name, sizeof p->name, fmt, ap);
    va_end(ap);
    p->rank = rank;
    p->numel = 1;
    for (int r = 0; r < rank; r++) p->numel *= (size_t)(p->shape[r] = shape[r]);
    p->offset = v->floats;
    v->floats += p->numel;
    return p->offset;
}

/* The offsets are filled in the first pass (slab NULL) and turned into pointers in the second. */
#define AT(off) (v->slab ? v->slab + (off) : NULL)

static vae_conv plan_conv(eb_vae *v, const char *name, int ic, int oc, int k) {
    size_t w = add_param(v, 4, (int64_t[]){oc, ic, k, k}, "%s.weight", name);
    size_t b = add_param(v, 1, (int64_t[]){oc}, "%s.bias", name);
    return (vae_conv){AT(w), AT(b), oc, ic, k};
}

static vae_norm plan_norm(eb_vae *v, const char *name, int c) {
    size_t g = add_param(v, 1, (int64_t[]){c}, "%s.weight", name);
    size_t b = add_param(v, 1, (int64_t[]){c}, "%s.bias", name);
    return (vae_norm){AT(g), AT(b)};
}

static vae_resnet plan_resnet(eb_vae *v, const char *name, int cin, int cout) {
    char key[96];
    vae_resnet r = {0};
    snprintf(key, sizeof key, "%s.norm1", name), r.norm1 = plan_norm(v, key, cin);
    snprintf(key, sizeof key, "%s.conv1", name), r.conv1 = plan_conv(v, key, cin, cout, 3);
    snprintf(key, sizeof key, "%s.norm2", name), r.norm2 = plan_norm(v, key, cout);
    snprintf(key, sizeof key, "%s.conv2", name), r.conv2 = plan_conv(v, key, cout, cout, 3);
    if (cin != cout) snprintf(key, sizeof key, "%s.conv_shortcut", name), r.shortcut = plan_conv(v, key, cin, cout, 1);
    return r;
}

static vae_attn plan_attn(eb_vae *v, const char *name, int c) {
    vae_attn a = {.c = c};
    char key[96];
    snprintf(key, sizeof key, "%s.group_norm", name), a.norm = plan_norm(v, key, c);
    /* q, k, v weights and then their biases back to back: one (3C, C) GEMM makes the packed qkv */
    const char *proj[3] = {"to_q", "to_k", "to_v"};
    size_t w = 0, b = 0;
    for (int i = 0; i < 3; i++) {
        size_t off = add_param(v, 2, (int64_t[]){c, c}, "%s.%s.weight", name, proj[i]);
        if (i == 0) w = off;
    }
    for (int i = 0; i < 3; i++) {
        size_t off = add_param(v, 1, (int64_t[]){c}, "%s.%s.bias", name, proj[i]);
        if (i == 0) b = off;
    }
    a.wqkv = AT(w), a.bqkv = AT(b);
    size_t wo = add_param(v, 2, (int64_t[]){c, c}, "%s.to_out.0.weight", name);
    size_t bo = add_param(v, 1, (int64_t[]){c}, "%s.to_out.0.bias", name);
    a.wo = AT(wo), a.bo = AT(bo);
    return a;
}

/* Builds the table (and, when v->slab is set, the layer pointers) in diffusers' module order. */
static void plan_model(eb_vae *v) {
    const eb_vae_config *c = &v->cfg;
    const int top = c->block_out_channels[c->n_blocks - 1];
    char key[96];
    v->n_params = 0, v->floats = 0;
    if (c->post_quant_conv) v->post_quant = plan_conv(v, "post_quant_conv", c->latent_channels, c->latent_channels, 1);
    v->conv_in = plan_conv(v, "decoder.conv_in", c->latent_channels, top, 3);
    v->mid1 = plan_resnet(v, "decoder.mid_block.resnets.0", top, top);
    if (c->mid_attention) v->attn = plan_attn(v, "decoder.mid_block.attentions.0", top);
    v->mid2 = plan_resnet(v, "decoder.mid_block.resnets.1", top, top);
    for (int i = 0; i < c->n_blocks; i++) {
        int cin = up_in_channels(c, i), cout = up_out_channels(c, i);
        for (int j = 0; j <= c->layers_per_block; j++, cin = cout) {
            snprintf(key, sizeof key, "decoder.up_blocks.%d.resnets.%d", i, j);
            v->up[i].res[j] = plan_resnet(v, key, cin, cout);
        }
        if (i < c->n_blocks - 1) {
            snprintf(key, sizeof key, "decoder.up_blocks.%d.upsamplers.0.conv", i);
            v->up[i].upsample = plan_conv(v, key, cout, cout, 3);
        }
    }
    v->norm_out = plan_norm(v, "decoder.conv_norm_out", up_out_channels(c, c->n_blocks - 1));
    v->conv_out = plan_conv(v, "decoder.conv_out", up_out_channels(c, c->n_blocks - 1), c->out_channels, 3);
}

eb_status eb_vae_create_on(eb_vae **out, const eb_vae_config *c, const eb_device *dev) {
    *out = NULL;
    eb_status st = eb_vae_config_validate(c);
    if (st) return st;
    const eb_backend *be, *cond_be;
    if ((st = eb_backend_select(dev, &be, &cond_be))) return st;
    const char *missing = eb_backend_missing_op(be, "conv2d group_norm transpose add_scaled");
    if (missing)
        return eb_fail(EB_ERUNTIME, "device %s: the backend has no %s, which the VAE decoder needs", be->name, missing);
    eb_vae *v = calloc(1, sizeof *v);
    if (!v) return eb_fail(EB_ERUNTIME, "out of memory for the VAE decoder");
    v->cfg = *c;
    v->be = be;
    snprintf(v->layout, sizeof v->layout, "none (created)");
    plan_model(v);
    if (!(v->slab = be->alloc(v->floats * sizeof(float)))) {
        size_t floats = v->floats;
        free(v);
        return eb_fail(EB_ERUNTIME, "out of memory for %zu VAE parameters on %s", floats, be->name);
    }
    plan_model(v);
    *out = v;
    return EB_OK;
}

void eb_vae_free(eb_vae *v) {
    if (!v) return;
    for (int i = 0; i < 3; i++) v->be->free(v->buf[i]);
    v->be->free(v->qkv);
    v->be->free(v->slab);
    free(v);
}

const eb_vae_config *eb_vae_config_of(const eb_vae *v) { return &v->cfg; }
const char *eb_vae_device(const eb_vae *v) { return v->be->name; }
int eb_vae_param_count(const eb_vae *v) { return v->n_params; }
const eb_vae_param *eb_vae_param_at(const eb_vae *v, int i) { return &v->params[i]; }
size_t eb_vae_param_floats(const eb_vae *v) { return v->floats; }
void eb_vae_set_params(eb_vae *v, const float *host) { v->be->upload(v->slab, host, v->floats * sizeof(float)); }
const char *eb_vae_layout(const eb_vae *v) { return v->layout; }
void eb_vae_set_layout(eb_vae *v, const char *layout) { snprintf(v->layout, sizeof v->layout, "%s", layout); }

/* ------------------------------------------------------------------------ */
/* Forward                                                                   */

/* out (B, oc, ·) = conv(x (B, ic, H, W)), same padding; `up` reads x upsampled nearest ×2. */
static void run_conv(const eb_vae *v, float *out, const float *x, const vae_conv *cv, int B, int H, int W, int up) {
    eb_conv_shape s = {.B = B, .IC = cv->ic, .H = H, .W = W, .OC = cv->oc, .kh = cv->k, .kw = cv->k, .sh = 1,
                       .sw = 1, .ph = cv->k / 2, .pw = cv->k / 2, .upsample2 = up};
    v->be->conv2d(out, x, cv->w, cv->b, &s);
}

static void run_norm(const eb_vae *v, float *out, const float *x, const vae_norm *n, int B, int C, int HW, int silu) {
    v->be->group_norm(out, x, n->gamma, n->beta, B, C, HW, v->cfg.norm_num_groups, EB_VAE_NORM_EPS, silu);
}

/* *x (B, cin, H, W) → resnet(*x) (B, cout, H, W); the three buffers rotate. */
static void run_resnet(const eb_vae *v, float **x, float **t1, float **t2, const vae_resnet *r, int B, int H, int W) {
    const int cin = r->conv1.ic, cout = r->conv1.oc, HW = H * W;
    run_norm(v, *t1, *x, &r->norm1, B, cin, HW, 1);
    run_conv(v, *t2, *t1, &r->conv1, B, H, W, 0);
    run_norm(v, *t2, *t2, &r->norm2, B, cout, HW, 1);
    run_conv(v, *t1, *t2, &r->conv2, B, H, W, 0);
    const float *skip = *x;
    if (r->shortcut.w) {
        run_conv(v, *t2, *x, &r->shortcut, B, H, W, 0);
        skip = *t2;
    }
    v->be->add_scaled(*t1, *t1, 1.0f, skip, (size_t)B * cout * HW);
    float *swap = *x;
    *x = *t1, *t1 = swap;
}

/* x (B, C, HW) += attention(x): GroupNorm, tokens, q/k/v, softmax(QKᵀ/√C) V, out projection. */
static void run_attention(eb_vae *v, float *x, float *t1, float *t2, int B, int HW) {
    const vae_attn *a = &v->attn;
    const int C = a->c;
    run_norm(v, t1, x, &a->norm, B, C, HW, 0);
    v->be->transpose(t2, t1, B, C, HW);                               /* (B, HW, C) */
    v->be->linear(v->qkv, t2, a->wqkv, a->bqkv, B * HW, C, 3 * C);     /* (B, HW, 3, 1, C) */
    v->be->attention(t1, v->qkv, B, HW, 1, C);                        /* (B, HW, C) */
    v->be->linear(t2, t1, a->wo, a->bo, B * HW, C, C);
    v->be->transpose(t1, t2, B, HW, C);                               /* (B, C, HW) */
    v->be->add_scaled(x, x, 1.0f, t1, (size_t)B * C * HW);
}

/* Floats of the largest activation of a decode of B latents of H×W, and of the attention's qkv. */
static void activation_sizes(const eb_vae_config *c, int B, int H, int W, size_t *act, size_t *qkv) {
    size_t hw = (size_t)H * W, top = c->block_out_channels[c->n_blocks - 1];
    size_t most = hw * (top > (size_t)c->latent_channels ? top : (size_t)c->latent_channels);
    for (int i = 0; i < c->n_blocks; i++) {
        size_t cin = up_in_channels(c, i), cout = up_out_channels(c, i);
        most = hw * cin > most ? hw * cin : most;
        most = hw * cout > most ? hw * cout : most;
        if (i < c->n_blocks - 1) hw *= 4;
        most = hw * cout > most ? hw * cout : most;
    }
    *act = (size_t)B * most;
    *qkv = c->mid_attention ? (size_t)B * 3 * top * H * W : 1;
}

static eb_status reserve(eb_vae *v, int B, int H, int W) {
    size_t act, qkv;
    activation_sizes(&v->cfg, B, H, W, &act, &qkv);
    if (act > v->buf_floats) {
        for (int i = 0; i < 3; i++) {
            v->be->free(v->buf[i]);
            v->buf[i] = v->be->alloc(act * sizeof(float));
        }
        v->buf_floats = v->buf[0] && v->buf[1] && v->buf[2] ? act : 0;
    }
    if (qkv > v->qkv_floats) {
        v->be->free(v->qkv);
        v->qkv_floats = (v->qkv = v->be->alloc(qkv * sizeof(float))) ? qkv : 0;
    }
    if (v->buf_floats < act || v->qkv_floats < qkv)
        return eb_fail(EB_ERUNTIME, "out of memory for the VAE activations (%d latents of %dx%d: 3 x %zu floats on %s)",
                       B, H, W, act, v->be->name);
    return EB_OK;
}

eb_status eb_vae_decode(eb_vae *v, float *out, const float *z, int N, int H, int W) {
    const eb_vae_config *c = &v->cfg;
    if (N < 1 || H < 1 || W < 1 || (size_t)H * W > ((size_t)1 << 20))
        return eb_fail(EB_EINPUT, "VAE decode: %d latents of %dx%d (need N, H, W >= 1, H·W <= 2^20)", N, H, W);
    const size_t zn = (size_t)N * c->latent_channels * H * W;
    for (size_t i = 0; i < zn; i++)
        if (!isfinite(z[i])) {
            size_t hw = (size_t)H * W;
            return eb_fail(EB_EINPUT, "VAE decode: latent %zu channel %zu pixel (%zu, %zu) is %g", i / (hw * c->latent_channels),
                           i / hw % c->latent_channels, i % hw / W, i % W, (double)z[i]);
        }
    eb_status st = reserve(v, N, H, W);
    if (st) return st;
    float *x = v->buf[0], *t1 = v->buf[1], *t2 = v->buf[2];
    v->be->upload(t1, z, zn * sizeof(float));
    if (c->post_quant_conv) run_conv(v, t2, t1, &v->post_quant, N, H, W, 0);
    run_conv(v, x, c->post_quant_conv ? t2 : t1, &v->conv_in, N, H, W, 0);
    run_resnet(v, &x, &t1, &t2, &v->mid1, N, H, W);
    if (c->mid_attention) run_attention(v, x, t1, t2, N, H * W);
    run_resnet(v, &x, &t1, &t2, &v->mid2, N, H, W);
    int h = H, w = W;
    for (int i = 0; i < c->n_blocks; i++) {
        for (int j = 0; j <= c->layers_per_block; j++) run_resnet(v, &x, &t1, &t2, &v->up[i].res[j], N, h, w);
        if (v->up[i].upsample.w) {
            run_conv(v, t1, x, &v->up[i].upsample, N, h, w, 1);
            float *swap = x;
            x = t1, t1 = swap;
            h *= 2, w *= 2;
        }
    }
    const int cl = up_out_channels(c, c->n_blocks - 1);
    run_norm(v, t1, x, &v->norm_out, N, cl, h * w, 1);
    run_conv(v, t2, t1, &v->conv_out, N, h, w, 0);
    const size_t on = (size_t)N * c->out_channels * h * w;
    v->be->download(out, t2, on * sizeof(float));
    for (size_t i = 0; i < on; i++)
        if (!isfinite(out[i])) {
            size_t hw = (size_t)h * w;
            return eb_fail(EB_ERUNTIME, "VAE decode: output image %zu channel %zu pixel (%zu, %zu) is %g",
                           i / (hw * c->out_channels), i / hw % c->out_channels, i % hw / w, i % w, (double)out[i]);
        }
    return EB_OK;
}
