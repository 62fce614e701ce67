/* backward.c — the backward kernels: OpenBLAS for the GEMMs, OpenMP loops for
 * the rest, each output element summed by one thread in a fixed order. */
#include "train/backward.h"

#include "runtime/cpu/kernels.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* OpenBLAS runs single-threaded (kernels.h, EB_GEMM_ROWS), so the GEMMs here
 * are split into fixed pieces, one sgemm each: the work parallelises and the
 * bits do not depend on the thread count. A weight gradient sums over all BT
 * rows; it is split along those rows into WGRAD_SPLITS partial products, added
 * in split order. (Splitting its output rows instead would repack the input
 * once per piece.) */
#define WGRAD_SPLITS 8

/* Partial weight gradients, grown on demand and kept between calls. */
static _Thread_local float *wgrad_scratch;
static _Thread_local size_t wgrad_cap;

static float *wgrad_partials(size_t n) {
    if (wgrad_cap < n) {
        free(wgrad_scratch);
        wgrad_scratch = malloc(n * sizeof(float));
        wgrad_cap = wgrad_scratch ? n : 0;
    }
    return wgrad_scratch;
}

/* dst (C) += Σ_r src (R, C)[r], rows in order; columns split over threads. */
static void column_sums(float *restrict dst, const float *restrict src, int R, int C) {
#pragma omp parallel
    {
        int nt = omp_get_num_threads(), id = omp_get_thread_num();
        int c0 = (int)((long)C * id / nt), c1 = (int)((long)C * (id + 1) / nt);
        for (int r = 0; r < R; r++) {
            const float *row = src + (size_t)r * C;
            for (int c = c0; c < c1; c++) dst[c] += row[c];
        }
    }
}

void linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp, const float *w,
                     int BT, int IC, int OC) {
    if (dinp) {
        int chunks = (BT + EB_GEMM_ROWS - 1) / EB_GEMM_ROWS;
#pragma omp parallel for schedule(static) /* even one chunk: see linear_forward */
        for (int k = 0; k < chunks; k++) {
            int r0 = k * EB_GEMM_ROWS, rows = BT - r0 < EB_GEMM_ROWS ? BT - r0 : EB_GEMM_ROWS;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, IC, OC, 1.0f, dout + (size_t)r0 * OC, OC, w,
                        IC, 1.0f, dinp + (size_t)r0 * IC, IC);
        }
    }
    const size_t wn = (size_t)OC * IC;
    float *part = BT >= WGRAD_SPLITS * EB_GEMM_ROWS ? wgrad_partials(WGRAD_SPLITS * wn) : NULL;
    if (part) {
#pragma omp parallel for schedule(static)
        for (int k = 0; k < WGRAD_SPLITS; k++) {
            int r0 = (int)((long)BT * k / WGRAD_SPLITS), r1 = (int)((long)BT * (k + 1) / WGRAD_SPLITS);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, IC, r1 - r0, 1.0f, dout + (size_t)r0 * OC, OC,
                        inp + (size_t)r0 * IC, IC, 0.0f, part + k * wn, IC);
        }
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < wn; i++) {
            float acc = dweight[i];
            for (int k = 0; k < WGRAD_SPLITS; k++) acc += part[k * wn + i];
            dweight[i] = acc;
        }
    } else { /* a small batch (or no memory for the partials): one sgemm, single-threaded as in linear_forward */
#pragma omp parallel
#pragma omp single
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, IC, BT, 1.0f, dout, OC, inp, IC, 1.0f, dweight, IC);
    }
    column_sums(dbias, dout, BT, OC);
}

void ln_modulate_backward(float *dx, float *dshift, float *dscale, const float *dout, const float *x,
                          const float *mean, const float *rstd, const float *scale, int B, int T, int D,
                          int mod_stride) {
    /* One batch row per thread: its shift/scale gradients sum over its tokens in order. */
#pragma omp parallel for schedule(static)
    for (int n = 0; n < B; n++) {
        const float *sc = scale + (size_t)n * mod_stride;
        float *dsh = dshift + (size_t)n * mod_stride, *dsc = dscale + (size_t)n * mod_stride;
        for (int tok = 0; tok < T; tok++) {
            size_t row = (size_t)n * T + tok;
            const float *xr = x + row * D, *dy = dout + row * D;
            float *dxr = dx + row * D;
            const float m = mean[row], s = rstd[row];
            /* With x̂ = (x − m)·s and g = dy·(1 + scale):
             * dx = s·(g − mean(g) − x̂·mean(g·x̂)). */
            double sum_g = 0.0, sum_gx = 0.0;
            for (int d = 0; d < D; d++) {
                float xhat = (xr[d] - m) * s, g = dy[d] * (1.0f + sc[d]);
                dsh[d] += dy[d];
                dsc[d] += dy[d] * xhat;
                sum_g += g;
                sum_gx += (double)g * xhat;
            }
            const float mean_g = (float)(sum_g / D), mean_gx = (float)(sum_gx / D);
            for (int d = 0; d < D; d++) {
                float xhat = (xr[d] - m) * s, g = dy[d] * (1.0f + sc[d]);
                dxr[d] += s * (g - mean_g - xhat * mean_gx);
            }
        }
    }
}

void attention_backward(float *dqkv, float *dprobs, const float *dout, const float *qkv, const float *probs, int B,
                        int T, int NH, int hd) {
    const int D = NH * hd, row = 3 * D;
    const float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < B; n++)
        for (int h = 0; h < NH; h++) {
            size_t hoff = ((size_t)n * NH + h) * T * T;
            const float *P = probs + hoff;
            float *dS = dprobs + hoff;
            const float *q = qkv + (size_t)n * T * row + h * hd, *k = q + D, *v = q + 2 * D;
            float *dq = dqkv + (size_t)n * T * row + h * hd, *dk = dq + D, *dv = dq + 2 * D;
            const float *dO = dout + (size_t)n * T * D + h * hd;
            /* out = P·V:  dP (T, T) = dO·Vᵀ,  dV += Pᵀ·dO. */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, 1.0f, dO, D, v, row, 0.0f, dS, T);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, 1.0f, P, T, dO, D, 1.0f, dv, row);
            /* Softmax rows: dS = P ⊙ (dP − Σ_j dP·P). */
            for (int i = 0; i < T; i++) {
                const float *p = P + (size_t)i * T;
                float *ds = dS + (size_t)i * T, dot = 0.0f;
                for (int j = 0; j < T; j++) dot += ds[j] * p[j];
                for (int j = 0; j < T; j++) ds[j] = p[j] * (ds[j] - dot);
            }
            /* S = scale·Q·Kᵀ:  dQ += scale·dS·K,  dK += scale·dSᵀ·Q. */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, scale, dS, T, k, row, 1.0f, dq, row);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, scale, dS, T, q, row, 1.0f, dk, row);
        }
}

void gelu_tanh_backward(float *dinp, const float *inp, const float *out, const float *dout, size_t n) {
    const float beta = (float)(M_SQRT2 * M_2_SQRTPI * 0.5), kappa = 0.044715f;
#pragma omp parallel for simd schedule(static) if (n > 16384)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i], x2 = x * x;
        /* tanh u from the forward's output gelu = ½x(1 + tanh u): no second tanh;
         * near 0, tanh u ≈ u = βx to float precision. */
        float th = fabsf(x) > 1e-6f ? 2.0f * out[i] / x - 1.0f : beta * x;
        /* d/dx ½x(1 + tanh u) = ½(1 + tanh u) + ½x(1 − tanh²u)·β(1 + 3κx²) */
        float grad = 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * (beta * (1.0f + 3.0f * kappa * x2));
        dinp[i] += dout[i] * grad;
    }
}

void silu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
#pragma omp parallel for schedule(static) if (n > 16384)
    for (size_t i = 0; i < n; i++) {
        float sig = 1.0f / (1.0f + eb_fast_expf(-inp[i]));
        dinp[i] += dout[i] * (sig * (1.0f + inp[i] * (1.0f - sig)));
    }
}

void gate_residual_backward(float *dgate, float *dbranch, const float *dout, const float *gate, const float *branch,
                            int B, int T, int D, int mod_stride) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < B; n++) {
        const float *g = gate + (size_t)n * mod_stride;
        float *dg = dgate + (size_t)n * mod_stride;
        for (int tok = 0; tok < T; tok++) {
            size_t off = ((size_t)n * T + tok) * D;
            for (int d = 0; d < D; d++) {
                dg[d] += dout[off + d] * branch[off + d];
                dbranch[off + d] += dout[off + d] * g[d];
            }
        }
    }
}

void patch_embed_backward(float *dw, float *db, float *patches, const float *dout, const float *x, int B, int C,
                          int H, int p, int D) {
    int grid = H / p, T = grid * grid, K = C * p * p;
#pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < B; n++)
        for (int tok = 0; tok < T; tok++) {
            int gy = tok / grid, gx = tok % grid;
            float *dst = patches + ((size_t)n * T + tok) * K;
            for (int c = 0; c < C; c++)
                for (int py = 0; py < p; py++)
                    memcpy(dst + (c * p + py) * p, x + (((size_t)n * C + c) * H + gy * p + py) * H + gx * p,
                           sizeof(float) * p);
        }
    /* The convolution is a linear map of the patches; the input needs no gradient. */
    linear_backward(NULL, dw, db, dout, patches, NULL, B * T, K, D);
}

void label_add_backward(float *dtable, const float *dc, const int32_t *y, int B, int D) {
    for (int n = 0; n < B; n++) {
        float *row = dtable + (size_t)y[n] * D;
        for (int d = 0; d < D; d++) row[d] += dc[(size_t)n * D + d];
    }
}

void unpatchify_backward(float *dtokens, const float *dout, int B, int C, int H, int p) {
    int grid = H / p, T = grid * grid, K = p * p * C;
#pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < B; n++)
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < H; x++) {
                    int tok = (y / p) * grid + x / p, inner = ((y % p) * p + x % p) * C + c;
                    dtokens[((size_t)n * T + tok) * K + inner] += dout[(((size_t)n * C + c) * H + y) * H + x];
                }
}
