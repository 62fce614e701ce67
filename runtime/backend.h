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

typedef struct eb_backend {
    const char *name;
    void *(*alloc)(size_t bytes);                 /* zeroed; NULL on failure */
    void (*free)(void *ptr);
    void (*upload)(void *dst, const void *src, size_t bytes);
    void (*download)(void *dst, const void *src, size_t bytes);

    /* out (BT, OC) = in (BT, IC) · w (OC, IC)ᵀ + b (OC); b may be NULL. */
    void (*linear)(float *out, const float *in, const float *w, const float *b, int BT, int IC, int OC);
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

    /* The cache engine's operations on activations (runtime/cache.c). */
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

    /* The recorder's reduction (analyze/record.c): how a feature moved since
     * its previous value, in one pass, then prev ← cur. sums (EB_DRIFT_SUMS):
     * Σ|cur − prev|, Σ|prev|, Σ cur·prev, Σ cur², Σ prev² over n elements, in
     * double in a fixed order; only these five numbers reach the host. */
    void (*feature_drift)(double *sums, float *prev, const float *cur, size_t n);
} eb_backend;

enum { EB_DRIFT_L1, EB_DRIFT_BASE_L1, EB_DRIFT_DOT, EB_DRIFT_CUR2, EB_DRIFT_PREV2, EB_DRIFT_SUMS };

/* The CPU backend (OpenMP + OpenBLAS). */
extern const eb_backend eb_backend_cpu;

#endif
