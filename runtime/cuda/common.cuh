/* common.cuh — what the CUDA backend's files share: failure recording, launch
 * shapes, warp reductions, the device memory registry and the ops each file
 * implements for the backend table (backend_cuda.cu).
 *
 * Everything runs on the legacy default stream, so kernels, cuBLASLt calls and
 * copies are ordered without events; download is the host's sync point.
 */
#ifndef EB_CUDA_COMMON_CUH
#define EB_CUDA_COMMON_CUH

#include "runtime/cuda/backend_cuda.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <cublasLt.h>
#include <stddef.h>
#include <stdint.h>

/* Backend ops return nothing, so the first CUDA failure is kept: download then
 * fills what it returns with NaN, which the forward's finite check reports as
 * EB_ERUNTIME, and rel_l1 returns NaN. `what` names the operation. */
void cuda_note(cudaError_t e, const char *what);
void cuda_note_blas(cublasStatus_t s, const char *what);
/* Whether a failure was noted (then every result the host reads is NaN). */
bool cuda_failed(void);
/* Notes a failed kernel launch (bad configuration) right after it. */
static inline void cuda_launched(const char *what) { cuda_note(cudaGetLastError(), what); }
/* out (n) ← NaN: the result of an op that could not run. */
void cuda_poison(float *out, size_t n);

/* Grid-stride loops: blocks of CUDA_THREADS threads, at most CUDA_MAX_BLOCKS. */
#define CUDA_THREADS 256
#define CUDA_MAX_BLOCKS 65536
static inline unsigned cuda_blocks(size_t n) {
    size_t b = (n + CUDA_THREADS - 1) / CUDA_THREADS;
    return (unsigned)(b < 1 ? 1 : b > CUDA_MAX_BLOCKS ? CUDA_MAX_BLOCKS : b);
}
#define GRID_STRIDE(i, n) \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

template <typename T> __device__ inline T warp_sum(T v) {
    for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ inline float warp_max(float v) {
    for (int o = 16; o > 0; o /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* The device, its properties and the cuBLASLt handle and workspace (set up by eb_cuda_backend). */
const cudaDeviceProp *cuda_props(void);
cublasLtHandle_t cuda_lt(void);
void *cuda_workspace(size_t *bytes);

/* Registered device memory (backend_cuda.cu): zeroed, counted in eb_cuda_memory. */
void *cuda_alloc(size_t bytes);
void cuda_free(void *ptr);
/* A bf16 copy of the allocation that holds w (n floats), made on first use
 * and dropped when the host uploads into that allocation or frees it; the
 * pointer returned corresponds to w. NULL (noted) when w is not registered
 * memory or the copy does not fit. Weights change only through upload. */
const __nv_bfloat16 *cuda_bf16_copy_of(const float *w, size_t n);
/* A grow-only device buffer of at least `bytes` for slot k (contents undefined). */
enum {
    CUDA_SCRATCH_BF16_IN,
    CUDA_SCRATCH_REDUCE,
    CUDA_SCRATCH_ATTN_QKV, /* the attention's per-head Q, K, V */
    CUDA_SCRATCH_ATTN_S,   /* its scores, then probabilities */
    CUDA_SCRATCH_ATTN_O,   /* its per-head output */
    CUDA_SCRATCH_ATTN_STATS, /* its softmax row statistics, for attention_colsum */
    CUDA_SCRATCH_IM2COL,   /* conv2d's im2col tile (image.cu) */
    CUDA_SCRATCH_SLOTS
};
void *cuda_scratch(int slot, size_t bytes);
/* dst (n) = bf16(src (n)), round to nearest even. */
void cuda_to_bf16(__nv_bfloat16 *dst, const float *src, size_t n);

/* The ops of the backend table, one file each (backend.h has the contracts). */
void cuda_linear(eb_precision p, float *out, const float *in, const float *w, const float *b, int BT, int IC, int OC);
void cuda_attention(eb_precision p, float *out, const float *qkv, int B, int T, int NH, int hd);
void cuda_attention_colsum(eb_precision p, float *out, float *colsum, const float *qkv, int B, int T, int NH, int hd);

/* A strided batch of column-major GEMMs D (m × n, float32) = op(A) (m × k) · B (k × n),
 * op(A) = Aᵀ (A stored k × m) when trans_a; matrix i of each operand starts stride_*
 * elements after matrix i − 1. */
typedef struct {
    int m, n, k, trans_a, lda, ldb, ldd, batch;
    long long stride_a, stride_b, stride_d;
} cuda_gemm_shape;
/* Runs it at precision p: A and B in the precision's operand type (float for
 * fp32 and tf32, bf16 for bf16), accumulating in float32. On failure (noted)
 * D is NaN. */
void cuda_gemm(eb_precision p, const cuda_gemm_shape *shape, const void *a, const void *b, float *d);

void cuda_patch_embed(float *out, const float *x, const float *w, const float *b, const float *pos, int B, int C,
                      int H, int p, int D);
void cuda_timestep_freq(float *out, const int32_t *t, int B);
void cuda_silu(float *out, const float *in, size_t n);
void cuda_label_add(float *c, const float *table, const int32_t *y, int B, int D);
void cuda_ln_modulate(float *out, const float *x, const float *shift, const float *scale, int B, int T, int D,
                      int mod_stride);
void cuda_gelu_tanh(float *out, const float *in, size_t n);
void cuda_gate_residual(float *x, const float *gate, const float *branch, int B, int T, int D, int mod_stride);
void cuda_unpatchify(float *out, const float *tokens, int B, int C, int H, int p);
void cuda_cfg_combine(float *out, const float *model_out, int N, int Co, int HW, int guided, float scale);
void cuda_copy(float *dst, const float *src, size_t n);
void cuda_add_scaled(float *out, const float *a, float s, const float *b, size_t n);
void cuda_taylor_update(float *factors, int cap, int have, const float *feature, size_t n, float dist);
void cuda_taylor_forecast(float *out, const float *factors, int orders, size_t n, float offset);
double cuda_rel_l1(const float *a, const float *b, size_t n);
void cuda_feature_drift(double *sums, float *prev, const float *cur, size_t n);

/* ToCa's token ops (toca.cu). */
void cuda_token_gather(float *out, const float *x, const int32_t *idx, int B, int T, int K, int D);
void cuda_token_scatter(float *x, const float *src, const int32_t *idx, int B, int T, int K, int D);
void cuda_toca_select(int32_t *idx, float *age, const float *colsum, int B, int NH, int T, int K, double weight,
                      double fresh, double bonus, int grid);

/* The image operations (image.cu). */
void cuda_conv2d(eb_precision p, float *out, const float *x, const float *w, const float *bias, const eb_conv_shape *s);
void cuda_group_norm(float *out, const float *x, const float *gamma, const float *beta, int B, int C, int HW, int G,
                     float eps, int silu);
void cuda_upsample2x(float *out, const float *x, int B, int C, int H, int W);
void cuda_avg_pool2d(float *out, const float *x, int B, int C, int H, int W, int k, int s, int p);
void cuda_max_pool2d(float *out, const float *x, int B, int C, int H, int W, int k, int s, int p);
void cuda_resize_bilinear_tf1(float *out, const float *x, int B, int C, int H, int W, int OH, int OW);
void cuda_relu(float *out, const float *in, size_t n);
void cuda_transpose(float *out, const float *in, int B, int M, int N);

#endif
