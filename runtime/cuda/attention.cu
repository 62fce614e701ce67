/* attention.cu — multi-head softmax attention as two strided batches of
 * cuBLASLt GEMMs around a softmax kernel, for a chunk of samples at a time:
 *
 *   gather   qkv (B, T, 3, NH, hd) → Q, K, V (nb·NH, T, hdp) in the operand type, zero-padded to hdp
 *   scores   S (nb·NH, T, lds) = Q · Kᵀ                  float32 out, one GEMM batch over heads
 *   colsum   (attention_colsum only) Σ_q P[q, k] per head  row statistics, then a thread per key column,
 *            from the float32 scores before the softmax overwrites them
 *   softmax  P = softmax(S · hd^-0.5) by rows            a warp per row; P overwrites S in the operand type
 *   values   O (nb·NH, T, hdp) = P · V                   one GEMM batch over heads
 *   scatter  O → out (B, T, NH·hd)
 *
 * The scores make one round trip through global memory. At DiT's token counts
 * (T = 256 at 256², 1024 at 512²) that is a few hundred MB per layer, which
 * the tensor-core GEMMs more than pay for: the flash-style kernel this
 * replaced (online softmax in shared memory, WMMA tiles) reached about 11
 * TFLOP/s in bf16 on an H200 and took half of a DiT-XL/2 step. Chunking over
 * samples bounds the scores' scratch to ATTN_SCORE_BYTES (one sample at least).
 *
 * Precision: the GEMMs run at the model's precision (fp32: float32 FMAs;
 * tf32: tensor cores on floats; bf16: on bf16 Q, K, V and P); the scores,
 * the softmax statistics and O are float32 at every precision. The column sums
 * add, in query order as the CPU does, the float32 probabilities P is rounded
 * from (the same expression, softmax_exp, with the same row statistics), so
 * bf16's rounding of P does not reach them.
 */
#include "runtime/cuda/common.cuh"

#include <math.h>

#define ATTN_SCORE_BYTES ((size_t)256 << 20)

template <typename E> __device__ inline E from_float(float v);
template <> __device__ inline float from_float<float>(float v) { return v; }
template <> __device__ inline __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

/* q, k, v (heads, T, hdp) ← qkv (heads / NH, T, 3, NH, hd), zero for d ≥ hd; n = heads·T·hdp. */
template <typename E>
__global__ void gather_kernel(E *q, E *k, E *v, const float *qkv, int T, int NH, int hd, int hdp, size_t n) {
    GRID_STRIDE(i, n) {
        const int d = (int)(i % hdp);
        const size_t row = i / hdp;
        const int t = (int)(row % T), h = (int)(row / T % NH);
        const size_t b = row / T / NH;
        const float *src = qkv + (b * T + t) * 3 * NH * hd + (size_t)h * hd + d;
        const bool inside = d < hd;
        q[i] = from_float<E>(inside ? src[0] : 0.0f);
        k[i] = from_float<E>(inside ? src[(size_t)NH * hd] : 0.0f);
        v[i] = from_float<E>(inside ? src[(size_t)2 * NH * hd] : 0.0f);
    }
}

/* exp2 of score s in a row whose max · c is mx: the unnormalised probability (c = hd^-0.5·log2(e)).
 * One fused multiply-add, written out so the softmax and the column sums compute the same bits. */
__device__ inline float softmax_exp(float s, float c, float mx) { return exp2f(fmaf(s, c, -mx)); }

/* A warp's row of T scores: (max · c, 1 / Σ softmax_exp), the same in every lane. */
__device__ inline float2 row_stats(const float *s, int T, float c, int lane) {
    float mx = -INFINITY;
    for (int j = lane; j < T; j += 32) mx = fmaxf(mx, s[j]);
    mx = warp_max(mx) * c;
    float sum = 0.0f;
    for (int j = lane; j < T; j += 32) sum += softmax_exp(s[j], c, mx);
    return make_float2(mx, 1.0f / warp_sum(sum));
}

/* Each of `rows` rows of T scores (row stride lds floats) becomes its softmax
 * with exp2 and c = hd^-0.5·log2(e), a warp per row. P, in the operand type,
 * overwrites the row in place from its start (row stride lds·4/sizeof(E)):
 * chunk j0 of P only covers scores of chunks ≤ j0, which the warp has read. */
template <typename E> __global__ void softmax_kernel(float *S, size_t rows, int T, int lds, float c) {
    const int lane = threadIdx.x % 32;
    const size_t warps = (size_t)gridDim.x * blockDim.x / 32;
    for (size_t r = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) / 32; r < rows; r += warps) {
        const float *s = S + r * lds;
        E *p = (E *)(S + r * lds);
        const float2 st = row_stats(s, T, c, lane);
        for (int j0 = 0; j0 < T; j0 += 32) {
            const int j = j0 + lane;
            const float e = j < T ? __fmul_rn(softmax_exp(s[j], c, st.x), st.y) : 0.0f;
            __syncwarp();
            if (j < T) p[j] = from_float<E>(e);
        }
    }
}

/* stats (rows) = row_stats of each of `rows` score rows (stride lds), a warp per row; S is not written. */
__global__ void row_stats_kernel(float2 *stats, const float *S, size_t rows, int T, int lds, float c) {
    const int lane = threadIdx.x % 32;
    const size_t warps = (size_t)gridDim.x * blockDim.x / 32;
    for (size_t r = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) / 32; r < rows; r += warps) {
        const float2 st = row_stats(S + r * lds, T, c, lane);
        if (lane == 0) stats[r] = st;
    }
}

/* colsum (heads, T) = each head's probabilities summed over its T query rows in order, a thread per
 * (head, key): S holds row (head·T + q) of the scores at (head·T + q)·lds, stats its statistics;
 * n = heads·T. Neighbouring threads read neighbouring keys of one row. */
__global__ void colsum_kernel(float *colsum, const float *S, const float2 *stats, int T, int lds, float c, size_t n) {
    GRID_STRIDE(i, n) {
        const size_t head = i / T;
        const int key = (int)(i % T);
        const float *s = S + head * T * lds + key;
        const float2 *st = stats + head * T;
        float sum = 0.0f;
        for (int q = 0; q < T; q++) sum += __fmul_rn(softmax_exp(s[(size_t)q * lds], c, st[q].x), st[q].y);
        colsum[i] = sum;
    }
}

/* out (heads / NH, T, NH·hd) ← O (heads, T, hdp); n = heads·T·hd. */
__global__ void scatter_kernel(float *out, const float *O, int T, int NH, int hd, int hdp, size_t n) {
    GRID_STRIDE(i, n) {
        const int d = (int)(i % hd);
        const size_t row = i / hd;
        const int h = (int)(row % NH), t = (int)(row / NH % T);
        const size_t b = row / NH / T;
        out[i] = O[((b * NH + h) * T + t) * hdp + d];
    }
}

/* The attention, and when colsum is not NULL its column sums (B, NH, T) (backend.h attention_colsum). */
template <typename E>
static void attend(eb_precision p, float *out, float *colsum, const float *qkv, int B, int T, int NH, int hd) {
    /* head rows padded to 8 operands and score rows to 8 floats: 16-byte aligned rows for cuBLASLt */
    const int hdp = (hd + 7) / 8 * 8, lds = (T + 7) / 8 * 8, ldp = lds * (int)(sizeof(float) / sizeof(E));
    const size_t scores_per_sample = (size_t)NH * T * lds * sizeof(float), tile = (size_t)T * hdp;
    const size_t fit = ATTN_SCORE_BYTES / scores_per_sample; /* samples per chunk */
    const int nb = fit < 1 ? 1 : fit < (size_t)B ? (int)fit : B;
    E *q = (E *)cuda_scratch(CUDA_SCRATCH_ATTN_QKV, 3 * (size_t)nb * NH * tile * sizeof(E));
    float *S = (float *)cuda_scratch(CUDA_SCRATCH_ATTN_S, (size_t)nb * scores_per_sample);
    float *O = (float *)cuda_scratch(CUDA_SCRATCH_ATTN_O, (size_t)nb * NH * tile * sizeof(float));
    float2 *stats = colsum ? (float2 *)cuda_scratch(CUDA_SCRATCH_ATTN_STATS, (size_t)nb * NH * T * sizeof(float2))
                           : NULL;
    if (!q || !S || !O || (colsum && !stats)) {
        cuda_poison(out, (size_t)B * T * NH * hd);
        if (colsum) cuda_poison(colsum, (size_t)B * NH * T);
        return;
    }
    E *k = q + (size_t)nb * NH * tile, *v = k + (size_t)nb * NH * tile;
    const float c = 1.0f / sqrtf((float)hd) * 1.4426950408889634f; /* scale · log2(e) */
    for (int b0 = 0; b0 < B; b0 += nb) {
        const int heads = (B - b0 < nb ? B - b0 : nb) * NH;
        size_t n = (size_t)heads * tile;
        gather_kernel<E><<<cuda_blocks(n), CUDA_THREADS>>>(q, k, v, qkv + (size_t)b0 * T * 3 * NH * hd, T, NH, hd,
                                                            hdp, n);
        cuda_launched("attention gather");
        cuda_gemm_shape scores = {};
        scores.m = T, scores.n = T, scores.k = hdp, scores.trans_a = 1; /* Sᵀ (keys × queries) = K · Qᵀ */
        scores.lda = hdp, scores.ldb = hdp, scores.ldd = lds, scores.batch = heads;
        scores.stride_a = (long long)tile, scores.stride_b = (long long)tile, scores.stride_d = (long long)T * lds;
        cuda_gemm(p, &scores, k, q, S);
        const size_t rows = (size_t)heads * T;
        if (colsum) { /* before the softmax overwrites the scores */
            row_stats_kernel<<<cuda_blocks(rows * 32), CUDA_THREADS>>>(stats, S, rows, T, lds, c);
            cuda_launched("attention row statistics");
            colsum_kernel<<<cuda_blocks(rows), CUDA_THREADS>>>(colsum + (size_t)b0 * NH * T, S, stats, T, lds, c,
                                                               rows);
            cuda_launched("attention column sums");
        }
        softmax_kernel<E><<<cuda_blocks(rows * 32), CUDA_THREADS>>>(S, rows, T, lds, c);
        cuda_launched("attention softmax");
        cuda_gemm_shape values = {};
        values.m = hdp, values.n = T, values.k = T, values.trans_a = 0; /* Oᵀ (hdp × queries) = Vᵀ · Pᵀ */
        values.lda = hdp, values.ldb = ldp, values.ldd = hdp, values.batch = heads;
        values.stride_a = (long long)tile, values.stride_b = (long long)T * ldp, values.stride_d = (long long)tile;
        cuda_gemm(p, &values, v, S, O);
        n = (size_t)heads * T * hd;
        scatter_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(out + (size_t)b0 * T * NH * hd, O, T, NH, hd, hdp, n);
        cuda_launched("attention scatter");
    }
}

void cuda_attention(eb_precision p, float *out, const float *qkv, int B, int T, int NH, int hd) {
    cuda_attention_colsum(p, out, NULL, qkv, B, T, NH, hd);
}

void cuda_attention_colsum(eb_precision p, float *out, float *colsum, const float *qkv, int B, int T, int NH, int hd) {
    if (p == EB_PRECISION_BF16) attend<__nv_bfloat16>(p, out, colsum, qkv, B, T, NH, hd);
    else attend<float>(p, out, colsum, qkv, B, T, NH, hd);
}
