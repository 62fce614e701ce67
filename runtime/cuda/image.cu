/* image.cu — the CUDA backend's image operations (backend.h, image block):
 * convolution as tiled im2col + a cuBLASLt GEMM at the table's precision,
 * GroupNorm (+ SiLU) with double statistics, one block per (image, group),
 * and grid-stride kernels for upsampling, pooling, the TF1 resize, ReLU and
 * the transpose. The formulas are runtime/cpu/image_kernels.c's; results
 * differ from the CPU's by rounding only. */
#include "runtime/cuda/common.cuh"

#include <math.h>

/* im2col tiles hold at most this many elements (256 MB in fp32). */
#define CONV_TILE_ELEMS ((size_t)64 << 20)

/* col (K, P) of output pixels [p0, p0 + P) of image x (IC, H, W), as image_kernels.c's im2col_tile. */
template <typename T>
__global__ void im2col_kernel(T *col, const float *x, eb_conv_shape s, int OW, int p0, int P) {
    const int Hin = s.upsample2 ? 2 * s.H : s.H, Win = s.upsample2 ? 2 * s.W : s.W, up = s.upsample2 ? 1 : 0;
    const size_t n = (size_t)s.IC * s.kh * s.kw * P;
    GRID_STRIDE(i, n) {
        const int p = (int)(i % P), k = (int)(i / P);
        const int kx = k % s.kw, ky = k / s.kw % s.kh, ic = k / (s.kw * s.kh);
        const int oh = (p0 + p) / OW, ow = (p0 + p) % OW;
        const int ih = oh * s.sh - s.ph + ky, iw = ow * s.sw - s.pw + kx;
        float v = 0.0f;
        if (ih >= 0 && ih < Hin && iw >= 0 && iw < Win) v = x[((size_t)ic * s.H + (ih >> up)) * s.W + (iw >> up)];
        col[i] = (T)v;
    }
}

__global__ void conv_bias_kernel(float *out, const float *b, int OC, int P, int OHW) {
    GRID_STRIDE(i, (size_t)OC * P) out[i / P * OHW + i % P] += b[i / P];
}

/* outᵀ (P × OC, ld OHW) = col (P × K, column-major) · w (K × OC, column-major), per image and tile. */
void cuda_conv2d(eb_precision prec, float *out, const float *x, const float *w, const float *bias,
                 const eb_conv_shape *s) {
    const int OH = eb_conv_out_h(s), OW = eb_conv_out_w(s), OHW = OH * OW, K = s->IC * s->kh * s->kw;
    const int ctot = s->out_ctot ? s->out_ctot : s->OC;
    const int pointwise = s->kh == 1 && s->kw == 1 && s->sh == 1 && s->sw == 1 && s->ph == 0 && s->pw == 0 &&
                          !s->upsample2 && prec != EB_PRECISION_BF16;
    size_t tile = CONV_TILE_ELEMS / K / 128 * 128;
    const int P = (int)(tile < 128 ? 128 : tile < (size_t)OHW ? tile : OHW);
    const size_t es = prec == EB_PRECISION_BF16 ? 2 : 4;
    void *col = pointwise ? NULL : cuda_scratch(CUDA_SCRATCH_IM2COL, (size_t)K * P * es);
    const void *wa = prec == EB_PRECISION_BF16 ? (const void *)cuda_bf16_copy_of(w, (size_t)s->OC * K) : w;
    for (int b = 0; b < s->B; b++)
        for (int p0 = 0; p0 < OHW; p0 += P) {
            const int n = OHW - p0 < P ? OHW - p0 : P;
            const float *xb = x + (size_t)b * s->IC * s->H * s->W;
            float *o = out + (size_t)b * ctot * OHW + p0;
            const void *a = xb + p0;
            int lda = OHW;
            if (!pointwise) {
                if (!col || !wa) { /* noted by the scratch / copy: the output reads NaN */
                    cuda_poison(o, (size_t)(s->OC - 1) * OHW + n);
                    continue;
                }
                const size_t cn = (size_t)K * n;
                if (prec == EB_PRECISION_BF16)
                    im2col_kernel<__nv_bfloat16><<<cuda_blocks(cn), CUDA_THREADS>>>((__nv_bfloat16 *)col, xb, *s, OW,
                                                                                      p0, n);
                else
                    im2col_kernel<float><<<cuda_blocks(cn), CUDA_THREADS>>>((float *)col, xb, *s, OW, p0, n);
                cuda_launched("im2col");
                a = col, lda = n;
            }
            cuda_gemm_shape sh = {};
            sh.m = n, sh.n = s->OC, sh.k = K, sh.trans_a = 0, sh.lda = lda, sh.ldb = K, sh.ldd = OHW, sh.batch = 1;
            cuda_gemm(prec, &sh, a, wa, o);
            if (bias) {
                conv_bias_kernel<<<cuda_blocks((size_t)s->OC * n), CUDA_THREADS>>>(o, bias, s->OC, n, OHW);
                cuda_launched("conv bias");
            }
        }
}

/* One block per (image, group): mean and variance in double (two passes), then the affine map and SiLU. */
__global__ void group_norm_kernel(float *out, const float *x, const float *gamma, const float *beta, int C, int HW,
                                  int G, float eps, int silu) {
    __shared__ double partial[CUDA_THREADS / 32];
    __shared__ double stat;
    const int bg = blockIdx.x, cg = C / G, lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const size_t group = (size_t)cg * HW, base = (size_t)bg * group;
    double mean = 0.0;
    for (int pass = 0; pass < 2; pass++) {
        double acc = 0.0;
        for (size_t i = threadIdx.x; i < group; i += blockDim.x) {
            double v = x[base + i];
            acc += pass ? (v - mean) * (v - mean) : v;
        }
        acc = warp_sum(acc);
        if (lane == 0) partial[warp] = acc;
        __syncthreads();
        if (threadIdx.x == 0) {
            double total = 0.0;
            for (int k = 0; k < CUDA_THREADS / 32; k++) total += partial[k];
            stat = total / (double)group;
        }
        __syncthreads();
        if (!pass) mean = stat;
        __syncthreads();
    }
    const float m = (float)mean, r = (float)(1.0 / sqrt(stat + eps));
    const int c0 = (bg % G) * cg;
    for (size_t i = threadIdx.x; i < group; i += blockDim.x) {
        const int ch = c0 + (int)(i / HW);
        float v = ((x[base + i] - m) * r) * (gamma ? gamma[ch] : 1.0f) + (beta ? beta[ch] : 0.0f);
        out[base + i] = silu ? v / (1.0f + expf(-v)) : v;
    }
}

void cuda_group_norm(float *out, const float *x, const float *gamma, const float *beta, int B, int C, int HW, int G,
                     float eps, int silu) {
    group_norm_kernel<<<B * G, CUDA_THREADS>>>(out, x, gamma, beta, C, HW, G, eps, silu);
    cuda_launched("group_norm");
}

__global__ void upsample2x_kernel(float *out, const float *x, int H, int W, size_t n) {
    GRID_STRIDE(i, n) {
        const size_t ox = i % (2 * W), oy = i / (2 * W) % (2 * H), bc = i / ((size_t)4 * H * W);
        out[i] = x[(bc * H + oy / 2) * W + ox / 2];
    }
}

void cuda_upsample2x(float *out, const float *x, int B, int C, int H, int W) {
    const size_t n = (size_t)B * C * 4 * H * W;
    upsample2x_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(out, x, H, W, n);
    cuda_launched("upsample2x");
}

__global__ void pool_kernel(float *out, const float *x, int H, int W, int k, int s, int p, int OH, int OW,
                            int take_max, size_t n) {
    GRID_STRIDE(i, n) {
        const int ox = (int)(i % OW), oy = (int)(i / OW % OH);
        const float *plane = x + i / ((size_t)OH * OW) * H * W;
        int y0 = oy * s - p, y1 = y0 + k, x0 = ox * s - p, x1 = x0 + k;
        y0 = y0 < 0 ? 0 : y0, y1 = y1 > H ? H : y1, x0 = x0 < 0 ? 0 : x0, x1 = x1 > W ? W : x1;
        float acc = take_max ? -INFINITY : 0.0f;
        for (int y = y0; y < y1; y++)
            for (int xx = x0; xx < x1; xx++) {
                const float v = plane[(size_t)y * W + xx];
                acc = take_max ? (v > acc || v != v ? v : acc) : acc + v;
            }
        out[i] = take_max ? acc : acc / (float)((y1 - y0) * (x1 - x0));
    }
}

static void pool(float *out, const float *x, int B, int C, int H, int W, int k, int s, int p, int take_max) {
    const int OH = (H + 2 * p - k) / s + 1, OW = (W + 2 * p - k) / s + 1;
    const size_t n = (size_t)B * C * OH * OW;
    pool_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(out, x, H, W, k, s, p, OH, OW, take_max, n);
    cuda_launched(take_max ? "max_pool2d" : "avg_pool2d");
}

void cuda_avg_pool2d(float *out, const float *x, int B, int C, int H, int W, int k, int s, int p) {
    pool(out, x, B, C, H, W, k, s, p, 0);
}

void cuda_max_pool2d(float *out, const float *x, int B, int C, int H, int W, int k, int s, int p) {
    pool(out, x, B, C, H, W, k, s, p, 1);
}

/* The source pair and weight of destination index d, as image_kernels.c's tf1_axis. */
__device__ inline void tf1_source(int d, int in, float scale, int *lo, int *hi, float *lerp) {
    const float src = (float)d * scale;
    int l = (int)floorf(src);
    l = l > in - 1 ? in - 1 : l;
    *lo = l, *hi = l + 1 < in - 1 ? l + 1 : in - 1, *lerp = src - (float)l;
}

__global__ void resize_tf1_kernel(float *out, const float *x, int H, int W, int OH, int OW, float sy, float sx,
                                  size_t n) {
    GRID_STRIDE(i, n) {
        const int ox = (int)(i % OW), oy = (int)(i / OW % OH);
        const float *plane = x + i / ((size_t)OH * OW) * H * W;
        int y0, y1, x0, x1;
        float ly, lx;
        tf1_source(oy, H, sy, &y0, &y1, &ly);
        tf1_source(ox, W, sx, &x0, &x1, &lx);
        const float tl = plane[(size_t)y0 * W + x0], tr = plane[(size_t)y0 * W + x1];
        const float bl = plane[(size_t)y1 * W + x0], br = plane[(size_t)y1 * W + x1];
        const float top = tl + (tr - tl) * lx, bottom = bl + (br - bl) * lx;
        out[i] = top + (bottom - top) * ly;
    }
}

void cuda_resize_bilinear_tf1(float *out, const float *x, int B, int C, int H, int W, int OH, int OW) {
    const size_t n = (size_t)B * C * OH * OW;
    if (H == OH && W == OW) {
        cuda_note(cudaMemcpy(out, x, n * sizeof(float), cudaMemcpyDeviceToDevice), "resize copy");
        return;
    }
    /* the scales as the CPU computes them, in float on the host */
    resize_tf1_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(out, x, H, W, OH, OW, (float)H / (float)OH,
                                                        (float)W / (float)OW, n);
    cuda_launched("resize_bilinear_tf1");
}

__global__ void relu_kernel(float *out, const float *in, size_t n) {
    GRID_STRIDE(i, n) out[i] = in[i] < 0.0f ? 0.0f : in[i];
}

void cuda_relu(float *out, const float *in, size_t n) {
    relu_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(out, in, n);
    cuda_launched("relu");
}

__global__ void transpose_kernel(float *out, const float *in, int M, int N, size_t n) {
    GRID_STRIDE(i, n) {
        const size_t b = i / ((size_t)M * N), r = i % ((size_t)M * N), j = r / M, k = r % M;
        out[i] = in[(b * M + k) * N + j];
    }
}

void cuda_transpose(float *out, const float *in, int B, int M, int N) {
    const size_t n = (size_t)B * M * N;
    transpose_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(out, in, M, N, n);
    cuda_launched("transpose");
}
