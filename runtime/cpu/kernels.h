/* kernels.h — CPU kernels (OpenMP + OpenBLAS), llm.c style free functions.
 *
 * The CPU backend's table points at these; the trainer calls them directly
 * and passes the optional statistic buffers (mean/rstd, attention probs)
 * that its backward pass needs. Shapes as in backend.h.
 */
#ifndef EB_CPU_KERNELS_H
#define EB_CPU_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#define EB_LN_EPS 1e-6
#define EB_FREQ_HALF 128 /* half of the 256 timestep frequencies */

/* Rows per sgemm call of linear_forward: a constant, so results do not depend
 * on the thread count. OpenBLAS must run single-threaded (eb_kernels_init). */
#ifndef EB_GEMM_ROWS
#define EB_GEMM_ROWS 64
#endif
/* Columns per sgemm call when a product has only one row chunk (linear_forward). */
#define EB_GEMM_COLS 256

/* The vectorisable exp and tanh of the softmax and GELU loops (≤ 2 ulp / ≤ 1e-7
 * absolute from libm; exposed for tests and the trainer's backward). */
float eb_fast_expf(float x);
float eb_fast_tanhf(float x);

/* OpenBLAS picks its kernels when it loads. A CPU it does not know (one newer
 * than the library, or a hypervisor that hides the model) gets its generic
 * "Prescott" kernels, 3-4x slower than what the CPU's instruction sets allow.
 * eb_blas_better_core: then the OPENBLAS_CORETYPE that suits the CPU
 * ("SkylakeX" with AVX-512, "Haswell" with AVX2 + FMA), else NULL. */
const char *eb_blas_better_core(void);

/* Both libraries read their settings from the environment when they load, so
 * a program that wants other ones runs itself again. eb_cpu_reexec sets what
 * is not already set (a value the user set is kept): OMP_WAIT_POLICY=passive
 * (an idle OpenMP thread sleeps instead of spinning for ~300k iterations: on
 * a machine whose cores are busy, spinning threads of a small loop wait whole
 * time slices for each other, 5-50x slower) and the OPENBLAS_CORETYPE of
 * eb_blas_better_core; then runs the program again (same argv, pid and
 * descriptors) when it set anything. Returns when nothing needs to change or
 * the exec fails. Call first thing in main(). */
void eb_cpu_reexec(char **argv);

/* Makes OpenBLAS single-threaded (the kernels parallelise over fixed chunks
 * themselves) and sets the OpenMP thread count (0 = all cores). */
void eb_kernels_init(int threads);
/* OpenBLAS single-threaded, OpenMP's thread count kept (model creation calls it). */
void eb_kernels_single_blas(void);

/* out (BT, OC) = in (BT, IC) · w (OC, IC)ᵀ + b (OC); b may be NULL. */
void linear_forward(float *out, const float *in, const float *w, const float *b, int BT, int IC, int OC);
/* linear_forward's product for few rows (backend.h linear_rows): each output is one 8-lane dot
 * product summed in a fixed order, the output columns split over the threads in fixed chunks, so
 * the bits depend on neither B, OC nor the thread count; w is streamed once per 4 rows (sgemm packs
 * all of w first, which costs more than the product when B is 2). */
void linear_rows_forward(float *out, const float *in, const float *w, const float *b, int B, int IC, int OC);
/* out (B, T, D) = conv_{p,p}(x (B, C, H, W); w (D, C*p*p), b (D)) + pos (T, D). */
void patch_embed_forward(float *out, const float *x, const float *w, const float *b, const float *pos, int B, int C,
                         int H, int p, int D);
/* out (B, 256): cos(t·f_i) for i < 128, then sin; f_i = exp(−ln(10000)·i/128), float32 as PyTorch. */
void timestep_freq_forward(float *out, const int32_t *t, int B);
void silu_forward(float *out, const float *in, size_t n);
/* c (B, D) += table[y[b]] */
void label_add_forward(float *c, const float *table, const int32_t *y, int B, int D);
/* out = LayerNorm(x)·(1 + scale) + shift; x, out (B, T, D); mean, rstd (B, T) or NULL. */
void ln_modulate_forward(float *out, float *mean, float *rstd, const float *x, const float *shift, const float *scale,
                         int B, int T, int D, int mod_stride);
/* Softmax attention; qkv (B, T, 3, NH, hd); out (B, T, NH*hd); probs (B, NH, T, T) or NULL. */
void attention_forward(float *out, float *probs, const float *qkv, int B, int T, int NH, int hd);
/* attention_forward without probs, plus colsum (B, NH, T): each head's softmax column sums Σ_q P[q, ·]. */
void attention_colsum_forward(float *out, float *colsum, const float *qkv, int B, int T, int NH, int hd);
void gelu_tanh_forward(float *out, const float *in, size_t n);
/* x (B, T, D) += gate (row stride mod_stride) ⊙ branch (B, T, D). */
void gate_residual_forward(float *x, const float *gate, const float *branch, int B, int T, int D, int mod_stride);
/* tokens (B, T, p*p*C) → out (B, C, H, W). */
void unpatchify_forward(float *out, const float *tokens, int B, int C, int H, int p);
/* See backend.h cfg_combine. */
void cfg_combine_forward(float *out, const float *model_out, int N, int Co, int HW, int guided, float scale);

/* The cache engine's kernels (cache_kernels.c); see backend.h for each contract. */
#define EB_TAYLOR_MAX_ORDER 4
void copy_forward(float *dst, const float *src, size_t n);
/* out (n) = a (n) + s·b (n); out may alias a or b. */
void add_scaled_forward(float *out, const float *a, float s, const float *b, size_t n);
/* Σ|a − b| / Σ|b| over n elements, in double, thread-count independent. */
double rel_l1_forward(const float *a, const float *b, size_t n);
/* factors (cap, n) ← feature (n) and its divided differences against the old factors (have valid). */
void taylor_update_forward(float *factors, int cap, int have, const float *feature, size_t n, float dist);
/* out (n) = Σ_{k < orders ≤ EB_TAYLOR_MAX_ORDER + 1} factors[k] (·, n) · offset^k / k! */
void taylor_forecast_forward(float *out, const float *factors, int orders, size_t n, float offset);
/* sums (5) = Σ|cur − prev|, Σ|prev|, Σ cur·prev, Σ cur², Σ prev² over n elements, then prev (n) ← cur (n);
 * in double, thread-count independent. */
void feature_drift_forward(double *sums, float *prev, const float *cur, size_t n);

/* ToCa's token ops (toca_kernels.c); see backend.h for each contract. */
void token_gather_forward(float *out, const float *x, const int32_t *idx, int B, int T, int K, int D);
void token_scatter_forward(float *x, const float *src, const int32_t *idx, int B, int T, int K, int D);
void toca_select_forward(int32_t *idx, float *age, const float *colsum, int B, int NH, int T, int K, double weight,
                         double fresh, double bonus, int grid);

/* The image operations (image_kernels.c); see backend.h for each contract. */
#include "runtime/backend.h"
/* Bytes of the per-thread im2col tile of conv2d_forward (image_kernels.c says how it is cut). */
#ifndef EB_CONV_TILE_BYTES
#define EB_CONV_TILE_BYTES ((size_t)8 << 20)
#endif
void conv2d_forward(float *out, const float *x, const float *w, const float *bias, const eb_conv_shape *s);
void group_norm_forward(float *out, const float *x, const float *gamma, const float *beta, int B, int C, int HW, int G,
                        float eps, int silu);
void upsample2x_forward(float *out, const float *x, int B, int C, int H, int W);
void avg_pool2d_forward(float *out, const float *x, int B, int C, int H, int W, int k, int s, int p);
void max_pool2d_forward(float *out, const float *x, int B, int C, int H, int W, int k, int s, int p);
void resize_bilinear_tf1_forward(float *out, const float *x, int B, int C, int H, int W, int OH, int OW);
void relu_forward(float *out, const float *in, size_t n);
void transpose_forward(float *out, const float *in, int B, int M, int N);

#endif
