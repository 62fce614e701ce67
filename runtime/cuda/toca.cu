/* toca.cu — ToCa's token ops (backend.h token_gather, token_scatter,
 * toca_select); attention_colsum is the attention's (attention.cu).
 *
 * toca_select runs a block per sample with the T scores in shared memory, in
 * double and in the CPU's order of operations (toca_kernels.c; no fused
 * multiply-adds: the CPU build does not contract), so the scores are the
 * CPU's bits: the head mean, the norm as one thread's sum in token order, the
 * age term and the patch bonus. The K best are then ranked without a sort:
 * each token's rank is the number of tokens ahead of it in the CPU's order
 * (higher score, on a tie the lower index), T² comparisons of shared memory,
 * some microseconds at DiT's T ≤ 1024. Nothing reaches the host: no sync.
 */
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

#define TOCA_THREADS 512
#define TOCA_MAX_TOKENS 4096 /* a 64×64 token grid (DiT/2 at 1024²): 32 KiB of scores in shared memory */

/* Whether token i (score si) goes before token j (score sj): the higher score, on a tie the lower index
 * (toca_kernels.c by_score). A NaN, which the CPU's sort leaves undefined, goes after every number, so the
 * order is total and the ranks are 0 … T − 1, each once: idx is always written whole. */
__device__ inline bool ahead(double si, int i, double sj, int j) {
    if (si == sj) return i < j;
    const bool ni = isnan(si), nj = isnan(sj);
    if (ni || nj) return ni == nj ? i < j : nj;
    return si > sj;
}

/* Block b of toca_select: the scores of sample b, then idx (K) and age (T) of the sample. side is the
 * token grid's side, patches the number of grid×grid patches along it. */
__global__ void toca_select_kernel(int32_t *idx, float *age, const float *colsum, int NH, int T, int K,
                                   double weight, double fresh, double bonus, int grid, int side, int patches) {
    extern __shared__ double score[]; /* (T) */
    __shared__ double norm;
    const int b = blockIdx.x;
    const float *cs = colsum + (size_t)b * NH * T;
    float *a = age + (size_t)b * T;
    for (int j = threadIdx.x; j < T; j += blockDim.x) {
        double m = 0;
        for (int h = 0; h < NH; h++) m += cs[(size_t)h * T + j];
        score[j] = m / NH;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        double norm2 = 0;
        for (int j = 0; j < T; j++) norm2 = __dadd_rn(norm2, __dmul_rn(score[j], score[j]));
        norm = fmax(sqrt(norm2), 1e-12);
    }
    __syncthreads();
    for (int j = threadIdx.x; j < T; j += blockDim.x) score[j] = score[j] / norm + weight * a[j] / fresh;
    __syncthreads();
    /* a thread per patch: patches hold distinct tokens, so each reads and bumps only its own */
    for (int pi = threadIdx.x; pi < patches * patches; pi += blockDim.x) {
        const int pr = pi / patches, pc = pi % patches;
        int best = -1;
        for (int r = 0; r < grid; r++)
            for (int c = 0; c < grid; c++) {
                const int j = (pr * grid + r) * side + pc * grid + c;
                if (best < 0 || score[j] > score[best]) best = j;
            }
        score[best] = __dadd_rn(score[best], __dmul_rn(bonus, score[best]));
    }
    __syncthreads();
    for (int j = threadIdx.x; j < T; j += blockDim.x) {
        const double sj = score[j];
        int rank = 0;
        for (int i = 0; i < T; i++) rank += ahead(score[i], i, sj, j);
        if (rank < K) idx[(size_t)b * K + rank] = j;
        a[j] = rank < K ? 0.0f : a[j] + 1.0f;
    }
}

void cuda_toca_select(int32_t *idx, float *age, const float *colsum, int B, int NH, int T, int K, double weight,
                      double fresh, double bonus, int grid) {
    if (B <= 0 || T <= 0) return;
    if (T > TOCA_MAX_TOKENS) {
        cuda_note(cudaErrorInvalidValue, "toca_select: more than 4096 tokens per sample");
        return; /* idx keeps the indices it held, so later gathers stay inside the tokens */
    }
    const int side = (int)lround(sqrt((double)T));
    /* the contract's square grid that grid divides (eb_cache_create checks it); anything else: no bonus */
    const int patches = grid > 0 && side * side == T ? side / grid : 0;
    toca_select_kernel<<<B, TOCA_THREADS, (size_t)T * sizeof(double)>>>(idx, age, colsum, NH, T, K, weight, fresh,
                                                                         bonus, grid, side, patches);
    cuda_launched("toca_select");
}
