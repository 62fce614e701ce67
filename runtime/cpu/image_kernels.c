/* image_kernels.c — the CPU image operations of backend.h (NCHW float32):
 * convolution as tiled im2col + OpenBLAS sgemm, GroupNorm (+ SiLU), nearest
 * ×2 upsampling, pooling, the TF1 bilinear resize, ReLU and a batched
 * transpose. Every output element is written by one thread in a fixed order
 * and every split of the work is a constant of the shapes, so the results do
 * not depend on the thread count. */
#include "runtime/cpu/kernels.h"
#include "runtime/cpu/vec8.h"
#include "runtime/parallel.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Convolution                                                               */

/* The im2col tile: (K = IC·kh·kw) rows × P output pixels, P chosen so that the
 * tile holds about EB_CONV_TILE_BYTES (a multiple of 64, at least 64, at most
 * the image): 8 MiB is 448 pixels of a 512-channel 3×3 convolution. Larger
 * tiles amortise OpenBLAS's packing of the weights, which it repeats per call;
 * a full im2col of a 256²×256-channel image would be 600 MB. */
static int conv_tile_pixels(int K, int OHW) {
    size_t p = EB_CONV_TILE_BYTES / ((size_t)K * sizeof(float));
    p = p / 64 * 64;
    if (p < 64) p = 64;
    return p < (size_t)OHW ? (int)p : OHW;
}

/* *buf with room for `need` floats, grown on demand and kept (one decode allocates each buffer once per
 * thread); NULL when out of memory. */
static float *grow_scratch(float **buf, size_t *len, size_t need) {
    if (*len < need) {
        free(*buf);
        *buf = malloc(need * sizeof(float));
        *len = *buf ? need : 0;
    }
    return *buf;
}

/* Per-thread im2col tile. */
static _Thread_local float *col_scratch;
static _Thread_local size_t col_scratch_len;

/* col (K, P) ← the input patches of output pixels [p0, p0 + P) of image x (IC, H, W):
 * row k = (ic·kh + ky)·kw + kx holds x[ic, oh·sh − ph + ky, ow·sw − pw + kx] (0 outside the image),
 * with source rows and columns halved when the conv sees the ×2 upsampled input. */
static void im2col_tile(float *col, const float *x, const eb_conv_shape *s, int OW, int p0, int P) {
    const int Hin = eb_conv_in_h(s), Win = eb_conv_in_w(s), up = s->upsample2 ? 1 : 0;
    for (int ic = 0; ic < s->IC; ic++)
        for (int ky = 0; ky < s->kh; ky++)
            for (int kx = 0; kx < s->kw; kx++) {
                float *dst = col + ((size_t)(ic * s->kh + ky) * s->kw + kx) * P;
                const float *plane = x + (size_t)ic * s->H * s->W;
                for (int p = p0; p < p0 + P;) {
                    int oh = p / OW, ow0 = p % OW, ow1 = ow0 + (p0 + P - p) < OW ? ow0 + (p0 + P - p) : OW;
                    int ih = oh * s->sh - s->ph + ky;
                    float *d = dst + (p - p0) - ow0; /* d[ow] is the element of output column ow */
                    if (ih < 0 || ih >= Hin) {
                        memset(d + ow0, 0, sizeof(float) * (ow1 - ow0));
                    } else {
                        const float *row = plane + (size_t)(ih >> up) * s->W;
                        /* the columns whose source lies inside the row: iw = ow·sw − pw + kx in [0, Win) */
                        int lo = s->pw - kx > 0 ? (s->pw - kx + s->sw - 1) / s->sw : 0;
                        int hi = (Win - 1 + s->pw - kx) >= 0 ? (Win - 1 + s->pw - kx) / s->sw + 1 : 0;
                        lo = lo < ow0 ? ow0 : lo > ow1 ? ow1 : lo;
                        hi = hi > ow1 ? ow1 : hi < lo ? lo : hi;
                        memset(d + ow0, 0, sizeof(float) * (lo - ow0));
                        memset(d + hi, 0, sizeof(float) * (ow1 - hi));
                        int off = kx - s->pw;
                        if (s->sw == 1 && !up) memcpy(d + lo, row + lo + off, sizeof(float) * (hi - lo));
                        else if (s->sw == 1)
                            for (int ow = lo; ow < hi; ow++) d[ow] = row[(ow + off) >> 1];
                        else
                            for (int ow = lo; ow < hi; ow++) d[ow] = row[(ow * s->sw + off) >> up];
                    }
                    p += ow1 - ow0;
                }
            }
}

/* A 1×1 stride-1 unpadded convolution reads its GEMM operand straight from the image. */
static int conv_is_pointwise(const eb_conv_shape *s) {
    return s->kh == 1 && s->kw == 1 && s->sh == 1 && s->sw == 1 && s->ph == 0 && s->pw == 0 && !s->upsample2;
}

/* ------------------------------------------------------------------------ */
/* 3×3 same convolutions: Winograd F(2×2, 3×3)                               */

/* Each 2×2 output tile is Aᵀ [Σ_ic (G g Gᵀ) ⊙ (Bᵀ d B)] A over the 4×4 input patch d at (2ty − 1, 2tx − 1):
 * 16 GEMMs M_ξ (OC, T) = U_ξ (OC, IC) · V_ξ (IC, T), one per patch position ξ, with 2.25× fewer
 * multiply-adds than the direct convolution. Tiles are processed in chunks of a fixed size (the
 * scratch U, V, M of a chunk holds about EB_WINO_CHUNK_FLOATS); every thread works on each chunk:
 * the transforms split over channels, the 16 GEMMs over ξ. Worth it when the channel counts make
 * the GEMMs dominate. */
#define EB_WINO_CHUNK_FLOATS ((size_t)16 << 20)
#define EB_WINO_MIN_CHANNELS 16

static int conv_takes_winograd(const eb_conv_shape *s) {
    return s->kh == 3 && s->kw == 3 && s->sh == 1 && s->sw == 1 && s->ph == 1 && s->pw == 1 &&
           s->IC >= EB_WINO_MIN_CHANNELS && s->OC >= EB_WINO_MIN_CHANNELS;
}

/* The caller's grow-only scratch of the Winograd path. */
static _Thread_local float *wino_scratch;
static _Thread_local size_t wino_scratch_len;

/* G of F(2×2, 3×3) (4×3); G ⊗ G (16×9) maps a kernel g (3×3) to G g Gᵀ (4×4). */
static const float wino_G[4][3] = {{1, 0, 0}, {0.5f, 0.5f, 0.5f}, {0.5f, -0.5f, 0.5f}, {0, 0, 1}};

/* V rows of tile row ty of one input plane (H, W), seen through the optional ×2 upsample: v_ξ[tx] (row
 * stride vs between ξ) = (Bᵀ d B)_ξ of the 4×4 patch at (2ty − 1, 2tx − 1), zero outside the image.
 * row (4 · (2TW + 2) floats) is workspace. */
static void wino_input_row(float *v, size_t vs, const float *plane, int H, int W, int up, int ty, int TW, float *row) {
    const int L = 2 * TW + 2, Hin = H << up, Win = W << up;
    float *r[4] = {row, row + L, row + 2 * L, row + 3 * L};
    for (int i = 0; i < 4; i++) {
        const int y = 2 * ty - 1 + i;
        for (int j = 0; j < L; j++) {
            const int xx = j - 1;
            r[i][j] = y >= 0 && y < Hin && xx >= 0 && xx < Win ? plane[(size_t)(y >> up) * W + (xx >> up)] : 0.0f;
        }
    }
    for (int j = 0; j < L; j++) { /* Bᵀ d, in place: the rows become t0..t3 */
        const float d0 = r[0][j], d1 = r[1][j], d2 = r[2][j], d3 = r[3][j];
        r[0][j] = d0 - d2, r[1][j] = d1 + d2, r[2][j] = d2 - d1, r[3][j] = d1 - d3;
    }
    for (int i = 0; i < 4; i++) { /* (Bᵀ d) B */
        const float *t = r[i];
        float *v0 = v + (size_t)(4 * i) * vs, *v1 = v0 + vs, *v2 = v1 + vs, *v3 = v2 + vs;
        for (int tx = 0; tx < TW; tx++) {
            const float a = t[2 * tx], b = t[2 * tx + 1], c = t[2 * tx + 2], d = t[2 * tx + 3];
            v0[tx] = a - c, v1[tx] = b + c, v2[tx] = c - b, v3[tx] = b - d;
        }
    }
}

/* Output rows 2ty and 2ty + 1 (those < OH) of one channel plane o (OH, OW) from m_ξ[tx] (row stride ms
 * between ξ): Aᵀ m A of each tile, plus the bias. */
static void wino_output_row(float *o, int OH, int OW, int ty, int TW, const float *m, size_t ms, float bias) {
    for (int i = 0; i < 2 && 2 * ty + i < OH; i++) {
        float *orow = o + (size_t)(2 * ty + i) * OW;
        for (int tx = 0; tx < TW; tx++) {
            float c[4]; /* row i of Aᵀ m, per column */
            for (int j = 0; j < 4; j++) {
                const float m0 = m[(size_t)j * ms + tx], m1 = m[(size_t)(4 + j) * ms + tx];
                const float m2 = m[(size_t)(8 + j) * ms + tx], m3 = m[(size_t)(12 + j) * ms + tx];
                c[j] = i ? m1 - m2 - m3 : m0 + m1 + m2;
            }
            orow[2 * tx] = (c[0] + c[1] + c[2]) + bias;
            if (2 * tx + 1 < OW) orow[2 * tx + 1] = (c[1] - c[2] - c[3]) + bias;
        }
    }
}

static void conv2d_winograd(float *out, const float *x, const float *w, const float *bias, const eb_conv_shape *s) {
    const int IC = s->IC, OC = s->OC, up = s->upsample2 ? 1 : 0;
    const int OH = eb_conv_out_h(s), OW = eb_conv_out_w(s), OHW = OH * OW, ctot = s->out_ctot ? s->out_ctot : OC;
    const int TH = (OH + 1) / 2, TW = (OW + 1) / 2;
    /* a chunk is whole tile rows */
    size_t fit = EB_WINO_CHUNK_FLOATS / (16 * (size_t)(IC + OC) * TW);
    const int rows = fit < 1 ? 1 : fit < (size_t)TH ? (int)fit : TH;
    const size_t nmax = (size_t)rows * TW, K = (size_t)OC * IC, nu = 16 * K;
    const size_t need = nu + 16 * (size_t)(IC + OC) * nmax;
    grow_scratch(&wino_scratch, &wino_scratch_len, need);
    float *rowbuf = malloc(sizeof(float) * 4 * (2 * (size_t)TW + 2) * (size_t)omp_get_max_threads());
    if (!wino_scratch || !rowbuf) { /* out of memory: NaN, for the caller's finite check */
        free(rowbuf);
        for (int b = 0; b < s->B; b++)
            for (size_t i = 0; i < (size_t)OC * OHW; i++) out[(size_t)b * ctot * OHW + i] = NAN;
        return;
    }
    float tm[16][9];
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++)
            for (int c = 0; c < 3; c++)
                for (int d = 0; d < 3; d++) tm[4 * a + b][3 * c + d] = wino_G[a][c] * wino_G[b][d];
    float *U = wino_scratch, *V = U + nu, *M = V + 16 * (size_t)IC * nmax;
    const int par = eb_gemm_loop_parallel((size_t)s->B * OHW * 9 * IC * OC, (size_t)IC * OC * nmax);
    enum { KERNEL_CHUNKS = 16 };
#pragma omp parallel if (par)
    {
        float *row = rowbuf + (size_t)omp_get_thread_num() * 4 * (2 * (size_t)TW + 2);
        /* U (16, OC·IC) = (G ⊗ G) (16, 9) · wᵀ, w (OC·IC, 9), in fixed column chunks */
#pragma omp for schedule(static)
        for (int c = 0; c < KERNEL_CHUNKS; c++) {
            size_t k0 = K * c / KERNEL_CHUNKS, k1 = K * (c + 1) / KERNEL_CHUNKS;
            if (k1 > k0)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, 16, (int)(k1 - k0), 9, 1.0f, &tm[0][0], 9,
                            w + k0 * 9, 9, 0.0f, U + k0, (int)K);
        }
        for (int b = 0; b < s->B; b++)
            for (int ty0 = 0; ty0 < TH; ty0 += rows) {
                const int nr = TH - ty0 < rows ? TH - ty0 : rows, n = nr * TW;
                const float *xb = x + (size_t)b * IC * s->H * s->W;
#pragma omp for schedule(static)
                for (int ic = 0; ic < IC; ic++)
                    for (int r = 0; r < nr; r++)
                        wino_input_row(V + (size_t)ic * n + (size_t)r * TW, (size_t)IC * n,
                                       xb + (size_t)ic * s->H * s->W, s->H, s->W, up, ty0 + r, TW, row);
#pragma omp for schedule(static)
                for (int xi = 0; xi < 16; xi++)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, OC, n, IC, 1.0f, U + (size_t)xi * K, IC,
                                V + (size_t)xi * IC * n, n, 0.0f, M + (size_t)xi * OC * n, n);
#pragma omp for schedule(static)
                for (int oc = 0; oc < OC; oc++)
                    for (int r = 0; r < nr; r++)
                        wino_output_row(out + ((size_t)b * ctot + oc) * OHW, OH, OW, ty0 + r, TW,
                                        M + (size_t)oc * n + (size_t)r * TW, (size_t)OC * n, bias ? bias[oc] : 0.0f);
            }
    }
    free(rowbuf);
}

void conv2d_forward(float *out, const float *x, const float *w, const float *bias, const eb_conv_shape *s) {
    if (conv_takes_winograd(s)) {
        conv2d_winograd(out, x, w, bias, s);
        return;
    }
    const int OH = eb_conv_out_h(s), OW = eb_conv_out_w(s), OHW = OH * OW, K = s->IC * s->kh * s->kw;
    const int ctot = s->out_ctot ? s->out_ctot : s->OC, pointwise = conv_is_pointwise(s);
    const int P = conv_tile_pixels(K, OHW), tiles = (OHW + P - 1) / P, chunks = s->B * tiles;
    /* Each tile's GEMM on one thread in an active parallel region, even for one chunk
     * (runtime/parallel.h); the tiles are fixed by K and OHW alone. */
#pragma omp parallel for schedule(static) \
    if (eb_gemm_loop_parallel((size_t)s->B * OHW * K * s->OC, (size_t)(P < OHW ? P : OHW) * K * s->OC))
    for (int c = 0; c < chunks; c++) {
        int b = c / tiles, p0 = (c % tiles) * P, n = OHW - p0 < P ? OHW - p0 : P;
        const float *xb = x + (size_t)b * s->IC * s->H * s->W;
        float *o = out + (size_t)b * ctot * OHW + p0;
        const float *cols = xb + p0;
        int ldb = OHW;
        if (!pointwise) {
            float *col = grow_scratch(&col_scratch, &col_scratch_len, (size_t)K * P);
            if (!col) { /* out of memory: poison the tile so the caller's finite check reports it */
                for (int oc = 0; oc < s->OC; oc++)
                    for (int i = 0; i < n; i++) o[(size_t)oc * OHW + i] = NAN;
                continue;
            }
            im2col_tile(col, xb, s, OW, p0, n);
            cols = col, ldb = n;
        }
        if (bias)
            for (int oc = 0; oc < s->OC; oc++)
                for (int i = 0; i < n; i++) o[(size_t)oc * OHW + i] = bias[oc];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->OC, n, K, 1.0f, w, K, cols, ldb, bias ? 1.0f : 0.0f,
                    o, OHW);
    }
}

/* ------------------------------------------------------------------------ */
/* Normalisation and elementwise                                             */

void group_norm_forward(float *out, const float *x, const float *gamma, const float *beta, int B, int C, int HW, int G,
                        float eps, int silu) {
    const int cg = C / G;
    const size_t group = (size_t)cg * HW;
    /* Statistics in double, two vectorized passes, one thread per (image, group); then each (image, channel)
     * plane. */
    double *stats = malloc(sizeof(double) * 2 * (size_t)B * G);
    if (!stats) {
        for (size_t i = 0; i < (size_t)B * C * HW; i++) out[i] = NAN;
        return;
    }
#pragma omp parallel for schedule(static) if ((size_t)B * C * HW >= EB_PAR_MIN_ELEMS)
    for (int bg = 0; bg < B * G; bg++) {
        const float *xg = x + (size_t)bg * group;
        double sum = 0.0, sq = 0.0;
#pragma omp simd reduction(+ : sum)
        for (size_t i = 0; i < group; i++) sum += xg[i];
        double mean = sum / (double)group;
#pragma omp simd reduction(+ : sq)
        for (size_t i = 0; i < group; i++) {
            double d = (double)xg[i] - mean;
            sq += d * d;
        }
        stats[2 * bg] = mean;
        stats[2 * bg + 1] = 1.0 / sqrt(sq / (double)group + eps);
    }
#pragma omp parallel for schedule(static) if ((size_t)B * C * HW >= EB_PAR_MIN_ELEMS)
    for (int bc = 0; bc < B * C; bc++) {
        int b = bc / C, ch = bc % C, bg = b * G + ch / cg;
        const float m = (float)stats[2 * bg], r = (float)stats[2 * bg + 1];
        const float scale = gamma ? gamma[ch] : 1.0f, shift = beta ? beta[ch] : 0.0f;
        const float *xp = x + (size_t)bc * HW;
        float *op = out + (size_t)bc * HW;
        for (int i = 0; i < HW; i += 8) { /* SiLU with the vectorised exp (vec8.h, ≤ 2 ulp from expf) */
            vf8 v = ((load8(xp + i, HW - i) - m) * r) * scale + shift;
            store8(op + i, silu ? v / (1.0f + exp8(-v)) : v, HW - i);
        }
    }
    free(stats);
}

void upsample2x_forward(float *out, const float *x, int B, int C, int H, int W) {
    const int OW = 2 * W;
#pragma omp parallel for schedule(static) if ((size_t)B * C * H * W * 4 >= EB_PAR_MIN_ELEMS)
    for (int bc = 0; bc < B * C; bc++)
        for (int y = 0; y < H; y++) {
            const float *src = x + ((size_t)bc * H + y) * W;
            float *d0 = out + ((size_t)bc * 2 * H + 2 * y) * OW;
            for (int i = 0; i < W; i++) d0[2 * i] = d0[2 * i + 1] = src[i];
            memcpy(d0 + OW, d0, sizeof(float) * OW);
        }
}

void relu_forward(float *out, const float *in, size_t n) {
#pragma omp parallel for schedule(static) if (n >= EB_PAR_MIN_ELEMS)
    for (size_t i = 0; i < n; i++) out[i] = in[i] < 0.0f ? 0.0f : in[i];
}

void transpose_forward(float *out, const float *in, int B, int M, int N) {
    enum { TILE = 32 }; /* square tiles keep both sides' cache lines in use */
    const int tm = (M + TILE - 1) / TILE, tn = (N + TILE - 1) / TILE;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * M * N >= EB_PAR_MIN_ELEMS)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < tm * tn; t++) {
            int m0 = t / tn * TILE, n0 = t % tn * TILE;
            int m1 = m0 + TILE < M ? m0 + TILE : M, n1 = n0 + TILE < N ? n0 + TILE : N;
            const float *src = in + (size_t)b * M * N;
            float *dst = out + (size_t)b * M * N;
            for (int i = m0; i < m1; i++)
                for (int j = n0; j < n1; j++) dst[(size_t)j * M + i] = src[(size_t)i * N + j];
        }
}

/* ------------------------------------------------------------------------ */
/* Pooling and resizing                                                      */

/* Per-thread row of pool_forward: the window rows of one output row, reduced. */
static _Thread_local float *pool_scratch;
static _Thread_local size_t pool_scratch_len;

/* The running maximum that keeps a NaN once it has seen one. */
static inline float max_keep_nan(float acc, float v) { return v > acc || v != v ? v : acc; }

/* One pooling kernel for both: the window's in-image elements, averaged or their maximum. Each
 * output row reduces its window's rows into one row first (vectorized over the columns), then
 * slides the window along that row. */
static void pool_forward(float *out, const float *x, int B, int C, int H, int W, int k, int s, int p, int take_max) {
    const int OH = (H + 2 * p - k) / s + 1, OW = (W + 2 * p - k) / s + 1;
#pragma omp parallel for schedule(static) if ((size_t)B * C * OH * OW * k * k >= EB_PAR_MIN_ELEMS)
    for (int bc = 0; bc < B * C; bc++) {
        const float *plane = x + (size_t)bc * H * W;
        float *o = out + (size_t)bc * OH * OW, *row = grow_scratch(&pool_scratch, &pool_scratch_len, (size_t)W);
        if (!row) { /* out of memory: poison the plane so the caller's finite check reports it */
            for (int i = 0; i < OH * OW; i++) o[i] = NAN;
            continue;
        }
        for (int oy = 0; oy < OH; oy++) {
            int y0 = oy * s - p, y1 = y0 + k;
            y0 = y0 < 0 ? 0 : y0, y1 = y1 > H ? H : y1;
            memcpy(row, plane + (size_t)y0 * W, sizeof(float) * W);
            for (int y = y0 + 1; y < y1; y++) {
                const float *r = plane + (size_t)y * W;
                if (take_max)
#pragma omp simd
                    for (int i = 0; i < W; i++) row[i] = max_keep_nan(row[i], r[i]);
                else
#pragma omp simd
                    for (int i = 0; i < W; i++) row[i] += r[i];
            }
            for (int ox = 0; ox < OW; ox++) {
                int x0 = ox * s - p, x1 = x0 + k;
                x0 = x0 < 0 ? 0 : x0, x1 = x1 > W ? W : x1;
                float acc = row[x0];
                for (int i = x0 + 1; i < x1; i++) acc = take_max ? max_keep_nan(acc, row[i]) : acc + row[i];
                o[(size_t)oy * OW + ox] = take_max ? acc : acc / (float)((y1 - y0) * (x1 - x0));
            }
        }
    }
}

void avg_pool2d_forward(float *out, const float *x, int B, int C, int H, int W, int k, int s, int p) {
    pool_forward(out, x, B, C, H, W, k, s, p, 0);
}

void max_pool2d_forward(float *out, const float *x, int B, int C, int H, int W, int k, int s, int p) {
    pool_forward(out, x, B, C, H, W, k, s, p, 1);
}

/* The source index pair and weight of each destination index: float arithmetic as TF1's legacy
 * resize (scale = in/out in float, source = dst·scale, lerp = source − floor). */
static void tf1_axis(int in, int outn, int *lo, int *hi, float *lerp) {
    const float scale = (float)in / (float)outn;
    for (int d = 0; d < outn; d++) {
        float src = (float)d * scale;
        int l = (int)floorf(src);
        l = l > in - 1 ? in - 1 : l;
        lo[d] = l;
        hi[d] = l + 1 < in - 1 ? l + 1 : in - 1;
        lerp[d] = src - (float)l;
    }
}

void resize_bilinear_tf1_forward(float *out, const float *x, int B, int C, int H, int W, int OH, int OW) {
    if (H == OH && W == OW) {
        memcpy(out, x, sizeof(float) * (size_t)B * C * H * W);
        return;
    }
    int *ylo = malloc(sizeof(int) * 2 * ((size_t)OH + OW)), *yhi = ylo + OH, *xlo = yhi + OH, *xhi = xlo + OW;
    float *ly = malloc(sizeof(float) * ((size_t)OH + OW)), *lx = ly + OH;
    if (!ylo || !ly) {
        for (size_t i = 0; i < (size_t)B * C * OH * OW; i++) out[i] = NAN;
        free(ylo);
        free(ly);
        return;
    }
    tf1_axis(H, OH, ylo, yhi, ly);
    tf1_axis(W, OW, xlo, xhi, lx);
#pragma omp parallel for schedule(static) if ((size_t)B * C * OH * OW >= EB_PAR_MIN_ELEMS)
    for (int bc = 0; bc < B * C; bc++) {
        const float *plane = x + (size_t)bc * H * W;
        float *o = out + (size_t)bc * OH * OW;
        for (int oy = 0; oy < OH; oy++) {
            const float *r0 = plane + (size_t)ylo[oy] * W, *r1 = plane + (size_t)yhi[oy] * W;
            for (int ox = 0; ox < OW; ox++) {
                float tl = r0[xlo[ox]], tr = r0[xhi[ox]], bl = r1[xlo[ox]], br = r1[xhi[ox]];
                float top = tl + (tr - tl) * lx[ox], bottom = bl + (br - bl) * lx[ox];
                o[(size_t)oy * OW + ox] = top + (bottom - top) * ly[oy];
            }
        }
    }
    free(ylo);
    free(ly);
}
