/* toca.cu — ToCa's token gather and scatter (backend.h token_gather,
 * token_scatter). attention_colsum and toca_select have no CUDA kernels yet:
 * the table is left without them, so eb_cache_create refuses a table with
 * partial actions on this backend, naming the op. */
#include "runtime/cuda/common.cuh"

/* One thread per element of the (B, K, D) subset; to_subset: gather, else scatter. */
__global__ void token_move_kernel(float *tokens, float *subset, const int32_t *idx, int T, int K, int D, size_t n,
                                  bool to_subset) {
    GRID_STRIDE(i, n) {
        const size_t d = i % D, bk = i / D, b = bk / K;
        float *full = tokens + ((size_t)b * T + idx[bk]) * D + d;
        if (to_subset) subset[i] = *full;
        else *full = subset[i];
    }
}

void cuda_token_gather(float *out, const float *x, const int32_t *idx, int B, int T, int K, int D) {
    const size_t n = (size_t)B * K * D;
    if (!n) return;
    token_move_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(const_cast<float *>(x), out, idx, T, K, D, n, true);
    cuda_launched("token_gather");
}

void cuda_token_scatter(float *x, const float *src, const int32_t *idx, int B, int T, int K, int D) {
    const size_t n = (size_t)B * K * D;
    if (!n) return;
    token_move_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(x, const_cast<float *>(src), idx, T, K, D, n, false);
    cuda_launched("token_scatter");
}
