/* backend.h — the thin compute interface the model code runs on (ggml style).
 *
 * The DiT forward (dit.c) only calls these operations on buffers the backend
 * allocated, so it does not care where it runs. The CPU backend (cpu/) is the
 * reference; a CUDA backend implements the same table. Shapes are in the
 * comments: B batch, T tokens, D hidden, C channels, H = W image side, p patch.
 * `mod_stride` is the row stride of an adaLN modulation tensor, so shift/scale/
 * gate can point into one (B, 6D) chunked buffer.
 */
#ifndef EB_BACKEND_H
#define EB_BACKEND_H

#include <stddef.h>
#include <stdint.h>

struct eb_conv_shape;

typedef struct eb_backend {
    const char *name;
    void *(*alloc)(size_t bytes);                 /* zeroed; NULL on failure */
    void (*free)(void *ptr);
    void (*upload)(void *dst, const void *src, size_t bytes);
    void (*download)(void *dst, const void *src, size_t bytes);

    /* out (BT, OC) = in (BT, IC) · w (OC, IC)ᵀ + b (OC); b may be NULL. */
    void (*linear)(float *out, const float *in, const float *w, const float *b, int BT, int IC, int OC);
    /* The same product for the few rows of the conditioning (timestep MLP, adaLN) and of a classifier
     * head, where the weights outweigh the rows: a row's result depends neither on how many rows come
     * with it nor on OC (recorder's 2D slice of the adaLN = the adaLN's first 2D columns). */
    void (*linear_rows)(float *out, const float *in, const float *w, const float *b, int B, int IC, int OC);
    /* Conv2d(k=p, s=p) patch embedding plus the fixed position embedding.
     * out (B, T, D); x (B, C, H, W); w (D, C*p*p); b (D); pos (T, D). */
    void (*patch_embed)(float *out, const float *x, const float *w, const float *b, const float *pos, int B, int C,
                        int H, int p, int D);
    /* Sinusoidal timestep features: out (B, 256) = [cos(t·f), sin(t·f)]. */
    void (*timestep_freq)(float *out, const int32_t *t, int B);
    /* out (n) = x · sigmoid(x). out may alias in. */
    void (*silu)(float *out, const float *in, size_t n);
    /* c (B, D) += table[y[b]] (rows of the label table (K+1, D)). */
    void (*label_add)(float *c, const float *table, const int32_t *y, int B, int D);
    /* LayerNorm (eps 1e-6, no affine) then modulate: out = ln(x)·(1 + scale) + shift.
     * out, x (B, T, D); shift, scale (B, ·) rows of stride mod_stride. */
    void (*ln_modulate)(float *out, const float *x, const float *shift, const float *scale, int B, int T, int D,
                        int mod_stride);
    /* Multi-head softmax attention. qkv (B, T, 3, NH, hd) as timm's reshape;
     * out (B, T, NH·hd) with heads concatenated. Scale hd^-0.5. */
    void (*attention)(float *out, const float *qkv, int B, int T, int NH, int hd);
    /* GELU, tanh approximation. out may alias in. */
    void (*gelu_tanh)(float *out, const float *in, size_t n);
    /* x (B, T, D) += gate (B, ·; stride mod_stride) ⊙ branch (B, T, D). */
    void (*gate_residual)(float *x, const float *gate, const float *branch, int B, int T, int D, int mod_stride);
    /* tokens (B, T, p*p*C) with channel innermost → out (B, C, H, W). */
    void (*unpatchify)(float *out, const float *tokens, int B, int C, int H, int p);
    /* Guidance: out (N, Co, H, W) from model output (2N, Co, H, W) whose rows
     * [0, N) are conditional and [N, 2N) unconditional; the first `guided`
     * channels become u + s(c − u), the rest are copied from c. */
    void (*cfg_combine)(float *out, const float *model_out, int N, int Co, int HW, int guided, float scale);

    /* ---- Cache and recorder operations (optional) -------------------------
     * On activations, for the cache engine (runtime/cache.c: block reuse,
     * TeaCache, first-block caching, TaylorSeer), the recorder's drift
     * (analyze/record.c) and the VAE's residual adds. A backend may leave any
     * of them NULL; uncached sampling needs none. Callers check the ops they
     * use with eb_backend_missing_op when they are created (eb_cache_create:
     * EB_BACKEND_CACHE_OPS, eb_record_run: EB_BACKEND_RECORDER_OPS) and fail
     * with EB_ERUNTIME naming the op and the backend. */
    /* dst (n) = src (n), both backend buffers. */
    void (*copy)(float *dst, const float *src, size_t n);
    /* out (n) = a (n) + s·b (n); out may alias a or b (s = −1 forms a residual, s = 1 applies one). */
    void (*add_scaled)(float *out, const float *a, float s, const float *b, size_t n);
    /* Σ|a − b| / Σ|b| over n elements (the relative L1 change of TeaCache and
     * first-block caching), summed in double in a fixed order. */
    double (*rel_l1)(const float *a, const float *b, size_t n);
    /* TaylorSeer's finite differences. factors (cap, n): factor k is the k-th
     * divided difference of a feature over its last computes, `have` of them
     * valid. Replaces them by feature (n) and the differences against the old
     * factors over a step distance `dist`; min(have + 1, cap) are valid after. */
    void (*taylor_update)(float *factors, int cap, int have, const float *feature, size_t n, float dist);
    /* out (n) = Σ_{k < orders} factors[k] · offset^k / k!  (the Taylor forecast). */
    void (*taylor_forecast)(float *out, const float *factors, int orders, size_t n, float offset);
    /* The recorder's reduction: how a feature moved since its previous value,
     * in one pass, then prev ← cur. sums (EB_DRIFT_SUMS): Σ|cur − prev|,
     * Σ|prev|, Σ cur·prev, Σ cur², Σ prev² over n elements, in double in a
     * fixed order; only these five numbers reach the host. */
    void (*feature_drift)(double *sums, float *prev, const float *cur, size_t n);
    /* ToCa's partial MLP (cache.c): attention as `attention` that also writes
     * colsum (B, NH, T), each head's softmax column sums Σ_q P[q, k] (the
     * attention a token receives), summed over the queries in order. */
    void (*attention_colsum)(float *out, float *colsum, const float *qkv, int B, int T, int NH, int hd);
    /* out (B, K, D) = x (B, T, D) at the tokens idx (B, K) (each in [0, T)). */
    void (*token_gather)(float *out, const float *x, const int32_t *idx, int B, int T, int K, int D);
    /* x (B, T, D) at the tokens idx (B, K) = src (B, K, D); idx distinct per row. */
    void (*token_scatter)(float *x, const float *src, const int32_t *idx, int B, int T, int K, int D);
    /* ToCa's token choice, per row b: score = colmean / ‖colmean‖₂ (colmean the
     * head mean of colsum (B, NH, T); norm floored at 1e-12) + weight · age / fresh;
     * in every grid×grid patch of the √T×√T token grid (row-major tokens) the
     * highest-scored token (the first in row-major patch order on a tie) gets
     * bonus × its score added; idx (B, K) = the K highest, descending (ties: the
     * lower index first); then age (B, T) += 1 and age[idx] = 0 (whole numbers
     * of partial steps since the token was last computed). In double.
     * Needs √T integral and divisible by grid. */
    void (*toca_select)(int32_t *idx, float *age, const float *colsum, int B, int NH, int T, int K, double weight,
                        double fresh, double bonus, int grid);

    /* ---- Image operations (optional) -------------------------------------
     * NCHW float32, for the image models (the VAE decoder, runtime/vae.c;
     * the Inception network). A backend may leave any of them NULL: callers
     * check with eb_backend_missing_op and fail naming the op. */
    /* out (B, OC, OH, OW) = x (B, IC, H, W) ⋆ w (OC, IC, kh, kw) + bias (OC) (NULL: none), cross-correlation
     * as torch's conv2d; geometry in *s (eb_conv_out_h/w give OH, OW). When s->upsample2 is set the input
     * is first upsampled nearest ×2 (the conv sees (2H, 2W)) without materialising it. Output channel oc of
     * image b lands at out + (b·s->out_ctot + oc)·OH·OW, so convolutions can write into slices of a
     * channel concatenation (out_ctot 0 means OC). out must not alias x. */
    void (*conv2d)(float *out, const float *x, const float *w, const float *bias, const struct eb_conv_shape *s);
    /* GroupNorm over G groups of C/G channels (biased variance, eps), then γ (C)·x̂ + β (C), then SiLU when
     * `silu`. out, x (B, C, HW); out may alias x. */
    void (*group_norm)(float *out, const float *x, const float *gamma, const float *beta, int B, int C, int HW,
                       int G, float eps, int silu);
    /* Nearest ×2: out (B, C, 2H, 2W) from x (B, C, H, W). */
    void (*upsample2x)(float *out, const float *x, int B, int C, int H, int W);
    /* Pooling with a k×k window, stride s, zero padding p on every side, floor rounding:
     * out (B, C, OH, OW), OH = (H + 2p − k)/s + 1. avg_pool2d divides by the window's in-image elements
     * (count_include_pad=False); max_pool2d ignores the padding. */
    void (*avg_pool2d)(float *out, const float *x, int B, int C, int H, int W, int k, int s, int p);
    void (*max_pool2d)(float *out, const float *x, int B, int C, int H, int W, int k, int s, int p);
    /* TF1 legacy bilinear resize (tf.image.resize_bilinear, align_corners=False, no half-pixel offset):
     * out (B, C, OH, OW) from x (B, C, H, W); source coordinate dst·in/out, lo = floor, hi = min(lo + 1,
     * in − 1). Equal sizes copy. */
    void (*resize_bilinear_tf1)(float *out, const float *x, int B, int C, int H, int W, int OH, int OW);
    /* out (n) = max(x, 0) (NaN stays NaN). out may alias in. */
    void (*relu)(float *out, const float *in, size_t n);
    /* out (B, N, M) = in (B, M, N) with the last two axes swapped: NCHW (B, C, HW) ↔ tokens (B, HW, C). */
    void (*transpose)(float *out, const float *in, int B, int M, int N);
} eb_backend;

/* The geometry of a conv2d (backend.h conv2d). */
typedef struct eb_conv_shape {
    int B, IC, H, W;   /* input (B, IC, H, W), before any upsample       */
    int OC, kh, kw;    /* weights (OC, IC, kh, kw)                       */
    int sh, sw, ph, pw; /* stride and zero padding per side, rows / cols  */
    int upsample2;     /* 1: nearest ×2 of the input first (0: none)      */
    int out_ctot;      /* channels of the output buffer (0: OC)          */
} eb_conv_shape;

/* The input extents the convolution sees (after the optional upsample), and the output extents. */
static inline int eb_conv_in_h(const eb_conv_shape *s) { return s->upsample2 ? 2 * s->H : s->H; }
static inline int eb_conv_in_w(const eb_conv_shape *s) { return s->upsample2 ? 2 * s->W : s->W; }
static inline int eb_conv_out_h(const eb_conv_shape *s) { return (eb_conv_in_h(s) + 2 * s->ph - s->kh) / s->sh + 1; }
static inline int eb_conv_out_w(const eb_conv_shape *s) { return (eb_conv_in_w(s) + 2 * s->pw - s->kw) / s->sw + 1; }

/* The name of the first of the optional ops (the cache and recorder block, the image block) a caller
 * needs that backend `be` lacks, or NULL when it has them all: `ops` is a space-separated list of op
 * names ("conv2d group_norm"), an unknown name counts as missing. */
const char *eb_backend_missing_op(const eb_backend *be, const char *ops);

/* The optional ops the cache engine and the recorder run on. */
#define EB_BACKEND_CACHE_OPS "copy add_scaled rel_l1 taylor_update taylor_forecast"
#define EB_BACKEND_RECORDER_OPS "copy feature_drift"
/* The ones a table with partial (ToCa) actions needs besides. */
#define EB_BACKEND_TOCA_OPS "attention_colsum token_gather token_scatter toca_select"

enum { EB_DRIFT_L1, EB_DRIFT_BASE_L1, EB_DRIFT_DOT, EB_DRIFT_CUR2, EB_DRIFT_PREV2, EB_DRIFT_SUMS };

/* The CPU backend (OpenMP + OpenBLAS). */
extern const eb_backend eb_backend_cpu;

#endif
