/* attention.cu — multi-head softmax attention in one kernel, flash style: a
 * block owns a tile of BQ queries of one head and sample, keeps Q, one K/V
 * tile of ATTN_BK keys, the scores and the output accumulator in shared
 * memory, and sweeps the K/V tiles with an online softmax, so the T×T scores
 * never reach global memory.
 *
 * The two tile products (S = Q·Kᵀ, O += P·V) are the only precision-dependent
 * parts: fp32 computes float32 dot products on the CUDA cores; tf32 and bf16
 * run tensor cores through WMMA on operands stored in that type, with head
 * dimensions padded with zeros to a multiple of 16. The softmax statistics
 * (row max and sum), the rescaling and the accumulator are float32 always.
 */
#include "common.cuh"

#include <math.h>
#include <mma.h>

using namespace nvcuda;

#define ATTN_THREADS 256 /* 8 warps */
#define ATTN_BK 64       /* keys per tile: a multiple of 32 (one warp sweeps a score row in chunks of 32) */
#define ATTN_BQ 64       /* queries per block at most */

/* Operand storage per precision: fp32 keeps rows of hd floats at an odd
 * stride (conflict-free column walks); the tensor-core types pad hd to a
 * multiple of 16 and strides to WMMA's multiples (8 bf16, 4 floats). */
template <eb_precision P> struct attn_type {
    typedef float elem;
    static __host__ __device__ int width(int hd) { return hd; }
    static __host__ __device__ int stride(int hd) { return hd | 1; }
};
template <> struct attn_type<EB_PRECISION_TF32> {
    typedef float elem;
    static __host__ __device__ int width(int hd) { return (hd + 15) / 16 * 16; }
    static __host__ __device__ int stride(int hd) { return width(hd) + 4; }
};
template <> struct attn_type<EB_PRECISION_BF16> {
    typedef __nv_bfloat16 elem;
    static __host__ __device__ int width(int hd) { return (hd + 15) / 16 * 16; }
    static __host__ __device__ int stride(int hd) { return width(hd) + 8; }
};

__device__ inline float to_float(float v) { return v; }
__device__ inline float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename E> __device__ inline E from_float(float v);
template <> __device__ inline float from_float<float>(float v) { return v; }
template <> __device__ inline __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

/* The shared-memory plan of one launch (byte offsets, 128-byte aligned). */
typedef struct {
    int T, NH, hd, BQ;
    int width, ld, lds, ldo; /* operand width and stride, score stride, accumulator stride (elements) */
    unsigned q, k, v, s, o, m, l, bytes;
} attn_plan;

static unsigned align128(unsigned x) { return (x + 127) / 128 * 128; }

template <eb_precision P> static attn_plan plan_attention(int T, int NH, int hd, int BQ) {
    typedef attn_type<P> at;
    attn_plan a;
    a.T = T, a.NH = NH, a.hd = hd, a.BQ = BQ;
    a.width = at::width(hd), a.ld = at::stride(hd), a.lds = ATTN_BK + 4, a.ldo = at::width(hd) + 4;
    const unsigned es = sizeof(typename at::elem);
    a.q = 0;
    a.k = a.q + align128(BQ * a.ld * es);
    a.v = a.k + align128(ATTN_BK * a.ld * es);
    a.s = a.v + align128(ATTN_BK * a.ld * es);
    a.o = a.s + align128(BQ * a.lds * 4);
    a.m = a.o + align128(BQ * a.ldo * 4);
    a.l = a.m + align128(BQ * 4);
    a.bytes = a.l + align128(BQ * 4);
    return a;
}

/* dst (rows, width; stride ld) ← rows r0.. of a head's q, k or v (row stride
 * `stride` floats), zero beyond T and beyond hd. */
template <typename E>
__device__ void load_tile(E *dst, int ld, const float *src, int stride, int r0, int rows, int T, int hd, int width) {
    for (int i = threadIdx.x; i < rows * width; i += blockDim.x) {
        const int r = i / width, d = i % width, t = r0 + r;
        dst[r * ld + d] = from_float<E>(t < T && d < hd ? src[(size_t)t * stride + d] : 0.0f);
    }
}

/* S (BQ, BK) = Q (BQ, hd) · K (BK, hd)ᵀ in float32 on the CUDA cores. */
__device__ void simt_scores(float *S, const float *Q, const float *K, const attn_plan &a) {
    for (int i = threadIdx.x; i < a.BQ * ATTN_BK; i += blockDim.x) {
        const float *q = Q + (i / ATTN_BK) * a.ld, *k = K + (i % ATTN_BK) * a.ld;
        float acc = 0.0f;
        for (int d = 0; d < a.hd; d++) acc += q[d] * k[d];
        S[(i / ATTN_BK) * a.lds + i % ATTN_BK] = acc;
    }
}

/* O (BQ, hd) += P (BQ, BK) · V (BK, hd) in float32 on the CUDA cores. */
__device__ void simt_pv(float *O, const float *Pm, const float *V, const attn_plan &a) {
    for (int i = threadIdx.x; i < a.BQ * a.hd; i += blockDim.x) {
        const int r = i / a.hd, d = i % a.hd;
        const float *p = Pm + r * a.lds;
        float acc = 0.0f;
        for (int j = 0; j < ATTN_BK; j++) acc += p[j] * V[j * a.ld + d];
        O[r * a.ldo + d] += acc;
    }
}

/* The WMMA fragment types of a tensor-core precision: 16×16 tiles, k-step KS. */
template <eb_precision P> struct mma_type;
template <> struct mma_type<EB_PRECISION_TF32> {
    typedef wmma::precision::tf32 op;
    enum { KS = 8 };
};
template <> struct mma_type<EB_PRECISION_BF16> {
    typedef __nv_bfloat16 op;
    enum { KS = 16 };
};

/* tf32 fragments load floats that must be rounded to tf32; bf16 ones are ready. */
template <eb_precision P, typename Frag> __device__ inline void round_operand(Frag &f) {
    if constexpr (P == EB_PRECISION_TF32)
        for (int i = 0; i < f.num_elements; i++) f.x[i] = wmma::__float_to_tf32(f.x[i]);
}

/* S = Q·Kᵀ on tensor cores: each warp takes 16×16 score tiles in turn. */
template <eb_precision P, typename E> __device__ void mma_scores(float *S, const E *Q, const E *K, const attn_plan &a) {
    typedef typename mma_type<P>::op op;
    const int KS = mma_type<P>::KS, warp = threadIdx.x / 32, warps = blockDim.x / 32, tiles_c = ATTN_BK / 16;
    for (int t = warp; t < (a.BQ / 16) * tiles_c; t += warps) {
        const int tr = t / tiles_c, tc = t % tiles_c;
        wmma::fragment<wmma::accumulator, 16, 16, mma_type<P>::KS, float> acc;
        wmma::fill_fragment(acc, 0.0f);
        for (int k = 0; k < a.width; k += KS) {
            wmma::fragment<wmma::matrix_a, 16, 16, mma_type<P>::KS, op, wmma::row_major> qf;
            wmma::fragment<wmma::matrix_b, 16, 16, mma_type<P>::KS, op, wmma::col_major> kf;
            wmma::load_matrix_sync(qf, Q + tr * 16 * a.ld + k, a.ld);
            wmma::load_matrix_sync(kf, K + tc * 16 * a.ld + k, a.ld);
            round_operand<P>(qf);
            round_operand<P>(kf);
            wmma::mma_sync(acc, qf, kf, acc);
        }
        wmma::store_matrix_sync(S + tr * 16 * a.lds + tc * 16, acc, a.lds, wmma::mem_row_major);
    }
}

/* O += P·V on tensor cores (P in E, stride ldp): each warp takes 16×16 output tiles in turn. */
template <eb_precision P, typename E>
__device__ void mma_pv(float *O, const E *Pm, int ldp, const E *V, const attn_plan &a) {
    typedef typename mma_type<P>::op op;
    const int KS = mma_type<P>::KS, warp = threadIdx.x / 32, warps = blockDim.x / 32, tiles_d = a.width / 16;
    for (int t = warp; t < (a.BQ / 16) * tiles_d; t += warps) {
        const int tr = t / tiles_d, td = t % tiles_d;
        wmma::fragment<wmma::accumulator, 16, 16, mma_type<P>::KS, float> acc;
        wmma::load_matrix_sync(acc, O + tr * 16 * a.ldo + td * 16, a.ldo, wmma::mem_row_major);
        for (int j = 0; j < ATTN_BK; j += KS) {
            wmma::fragment<wmma::matrix_a, 16, 16, mma_type<P>::KS, op, wmma::row_major> pf;
            wmma::fragment<wmma::matrix_b, 16, 16, mma_type<P>::KS, op, wmma::row_major> vf;
            wmma::load_matrix_sync(pf, Pm + tr * 16 * ldp + j, ldp);
            wmma::load_matrix_sync(vf, V + j * a.ld + td * 16, a.ld);
            round_operand<P>(pf);
            round_operand<P>(vf);
            wmma::mma_sync(acc, pf, vf, acc);
        }
        wmma::store_matrix_sync(O + tr * 16 * a.ldo + td * 16, acc, a.ldo, wmma::mem_row_major);
    }
}

/* One K/V tile's softmax step, a warp per query row: the new row max over the
 * tile's `valid` keys, P = exp(s·scale − max) written over S in the operand
 * type (zero for keys beyond T), the row sum and the accumulator rescaled by
 * exp(old max − new max). c = hd^-0.5 · log2(e), so exp2 serves. */
template <typename E>
__device__ void softmax_step(float *S, float *O, float *row_max, float *row_sum, const attn_plan &a, int valid,
                             float c) {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
    for (int r = warp; r < a.BQ; r += warps) {
        float *s = S + r * a.lds;
        E *p = (E *)s; /* P overwrites S in place: a bf16 row is half as long, so it only covers scores already read */
        float mx = -INFINITY;
        for (int j = lane; j < valid; j += 32) mx = fmaxf(mx, s[j]);
        const float m_old = row_max[r], m_new = fmaxf(m_old, warp_max(mx) * c);
        float sum = 0.0f;
        for (int j0 = 0; j0 < ATTN_BK; j0 += 32) {
            const int j = j0 + lane;
            const E e = from_float<E>(j < valid ? exp2f(s[j] * c - m_new) : 0.0f);
            __syncwarp();
            p[j] = e;
            sum += to_float(e); /* the sum of what multiplies V */
        }
        sum = warp_sum(sum);
        const float alpha = exp2f(m_old - m_new);
        for (int d = lane; d < a.width; d += 32) O[r * a.ldo + d] *= alpha;
        if (lane == 0) row_max[r] = m_new, row_sum[r] = row_sum[r] * alpha + sum;
    }
}

template <eb_precision P>
__global__ void __launch_bounds__(ATTN_THREADS) attention_kernel(float *out, const float *qkv, attn_plan a) {
    typedef typename attn_type<P>::elem E;
    extern __shared__ __align__(128) unsigned char smem[];
    E *Q = (E *)(smem + a.q), *K = (E *)(smem + a.k), *V = (E *)(smem + a.v);
    float *S = (float *)(smem + a.s), *O = (float *)(smem + a.o);
    const E *Pm = (const E *)S; /* P replaces S in place, in the operand type */
    float *row_max = (float *)(smem + a.m), *row_sum = (float *)(smem + a.l);
    const int q0 = blockIdx.x * a.BQ, h = blockIdx.y, n = blockIdx.z, D = a.NH * a.hd, stride = 3 * D;
    const float *q = qkv + (size_t)n * a.T * stride + h * a.hd, *k = q + D, *v = q + 2 * D;
    const float c = 1.0f / sqrtf((float)a.hd) * 1.4426950408889634f; /* scale · log2(e) */

    load_tile(Q, a.ld, q, stride, q0, a.BQ, a.T, a.hd, a.width);
    for (int i = threadIdx.x; i < a.BQ * a.ldo; i += blockDim.x) O[i] = 0.0f;
    for (int r = threadIdx.x; r < a.BQ; r += blockDim.x) row_max[r] = -INFINITY, row_sum[r] = 0.0f;
    for (int k0 = 0; k0 < a.T; k0 += ATTN_BK) {
        __syncthreads(); /* the previous tile's P·V is done with K, V and P */
        load_tile(K, a.ld, k, stride, k0, ATTN_BK, a.T, a.hd, a.width);
        load_tile(V, a.ld, v, stride, k0, ATTN_BK, a.T, a.hd, a.width);
        __syncthreads();
        if constexpr (P == EB_PRECISION_FP32) simt_scores(S, Q, K, a);
        else mma_scores<P>(S, Q, K, a);
        __syncthreads();
        softmax_step<E>(S, O, row_max, row_sum, a, min(ATTN_BK, a.T - k0), c);
        __syncthreads();
        if constexpr (P == EB_PRECISION_FP32) simt_pv(O, Pm, V, a);
        else mma_pv<P>(O, Pm, a.lds * (int)(sizeof(float) / sizeof(E)), V, a);
    }
    __syncthreads();
    float *o = out + (size_t)n * a.T * D + h * a.hd;
    for (int i = threadIdx.x; i < a.BQ * a.hd; i += blockDim.x) {
        const int r = i / a.hd, d = i % a.hd;
        if (q0 + r < a.T) o[(size_t)(q0 + r) * D + d] = O[r * a.ldo + d] / row_sum[r];
    }
}

/* The precisions' kernels, indexed by eb_precision. */
static void (*const kernels[])(float *, const float *, attn_plan) = {
    attention_kernel<EB_PRECISION_FP32>, attention_kernel<EB_PRECISION_TF32>, attention_kernel<EB_PRECISION_BF16>};

cudaError_t cuda_attention_init(void) {
    const int limit = (int)cuda_props()->sharedMemPerBlockOptin;
    cudaError_t e = cudaSuccess;
    for (size_t i = 0; i < sizeof kernels / sizeof kernels[0] && !e; i++)
        e = cudaFuncSetAttribute(kernels[i], cudaFuncAttributeMaxDynamicSharedMemorySize, limit);
    return e;
}

template <eb_precision P> static void launch(float *out, const float *qkv, int B, int T, int NH, int hd) {
    /* the largest query tile (a multiple of 16, no larger than T needs) whose plan fits the shared memory */
    int BQ = (T + 15) / 16 * 16;
    if (BQ > ATTN_BQ) BQ = ATTN_BQ;
    attn_plan a = plan_attention<P>(T, NH, hd, BQ);
    while (a.bytes > cuda_props()->sharedMemPerBlockOptin && BQ > 16) a = plan_attention<P>(T, NH, hd, BQ /= 2);
    if (a.bytes > cuda_props()->sharedMemPerBlockOptin) {
        cuda_note(cudaErrorInvalidConfiguration, "attention: head dimension too large for shared memory");
        cuda_poison(out, (size_t)B * T * NH * hd);
        return;
    }
    dim3 grid((T + BQ - 1) / BQ, NH, B);
    attention_kernel<P><<<grid, ATTN_THREADS, a.bytes>>>(out, qkv, a);
    cuda_launched("attention");
}

void cuda_attention(eb_precision p, float *out, const float *qkv, int B, int T, int NH, int hd) {
    if (p == EB_PRECISION_BF16) launch<EB_PRECISION_BF16>(out, qkv, B, T, NH, hd);
    else if (p == EB_PRECISION_TF32) launch<EB_PRECISION_TF32>(out, qkv, B, T, NH, hd);
    else launch<EB_PRECISION_FP32>(out, qkv, B, T, NH, hd);
}
