/* reduce.cu — the sums that cross to the host: the relative L1 change of the
 * cache policies and the recorder's drift statistics. Each of a fixed number
 * of blocks sums a fixed slice in double and reduces it in a fixed tree; the
 * host adds the block sums in order. The result depends on n only, never on
 * timing (no atomics), and only REDUCE_BLOCKS × k doubles are copied back. */
#include "runtime/cuda/common.cuh"

#include <math.h>

#define REDUCE_BLOCKS 264 /* two per SM of an H100 SXM: enough to stream at full bandwidth */

/* Block-wide sums of v[0..K) (every thread's values) into out[0..K), in a fixed order. */
template <int K> __device__ void block_sums(double (&v)[K], double *out) {
    __shared__ double part[CUDA_THREADS / 32][K];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    for (int k = 0; k < K; k++) v[k] = warp_sum(v[k]);
    if (lane == 0)
        for (int k = 0; k < K; k++) part[warp][k] = v[k];
    __syncthreads();
    if (threadIdx.x < K) {
        double s = 0;
        for (int w = 0; w < CUDA_THREADS / 32; w++) s += part[w][threadIdx.x];
        out[threadIdx.x] = s;
    }
}

__global__ void rel_l1_kernel(double *partial, const float *a, const float *b, size_t n) {
    double v[2] = {0, 0};
    GRID_STRIDE(i, n) {
        v[0] += fabsf(a[i] - b[i]);
        v[1] += fabsf(b[i]);
    }
    block_sums<2>(v, partial + 2 * blockIdx.x);
}

/* Runs launch(partial), a kernel over REDUCE_BLOCKS blocks writing K sums
 * each, and adds them on the host into sums[0..K) (NaN after a failure). */
template <int K, typename Launch> static void reduce_to_host(double *sums, Launch launch) {
    double partial[REDUCE_BLOCKS * K];
    double *dev = (double *)cuda_scratch(CUDA_SCRATCH_REDUCE, sizeof partial);
    cudaError_t e = dev ? cudaSuccess : cudaErrorMemoryAllocation;
    if (dev) {
        launch(dev);
        e = cudaGetLastError();
        if (!e) e = cudaMemcpy(partial, dev, sizeof partial, cudaMemcpyDeviceToHost);
    }
    cuda_note(e, "reduction");
    const bool failed = cuda_failed();
    for (int k = 0; k < K; k++) sums[k] = failed ? NAN : 0;
    for (int blk = 0; !failed && blk < REDUCE_BLOCKS; blk++)
        for (int k = 0; k < K; k++) sums[k] += partial[blk * K + k];
}

double cuda_rel_l1(const float *a, const float *b, size_t n) {
    double sums[2];
    reduce_to_host<2>(sums, [&](double *dev) { rel_l1_kernel<<<REDUCE_BLOCKS, CUDA_THREADS>>>(dev, a, b, n); });
    return sums[0] / sums[1];
}

__global__ void feature_drift_kernel(double *partial, float *prev, const float *cur, size_t n) {
    double v[EB_DRIFT_SUMS] = {0, 0, 0, 0, 0};
    GRID_STRIDE(i, n) {
        const double c = cur[i], p = prev[i];
        v[EB_DRIFT_L1] += fabs(c - p);
        v[EB_DRIFT_BASE_L1] += fabs(p);
        v[EB_DRIFT_DOT] += c * p;
        v[EB_DRIFT_CUR2] += c * c;
        v[EB_DRIFT_PREV2] += p * p;
        prev[i] = cur[i];
    }
    block_sums<EB_DRIFT_SUMS>(v, partial + EB_DRIFT_SUMS * blockIdx.x);
}

void cuda_feature_drift(double *sums, float *prev, const float *cur, size_t n) {
    reduce_to_host<EB_DRIFT_SUMS>(
        sums, [&](double *dev) { feature_drift_kernel<<<REDUCE_BLOCKS, CUDA_THREADS>>>(dev, prev, cur, n); });
}
