/* kernels.c — the CPU kernels: OpenBLAS for the GEMMs, OpenMP loops for the rest.
 * Every output element is written by one thread with a fixed summation order,
 * so results do not depend on the thread count. Elementwise formulas follow
 * PyTorch's float32 CPU kernels (no FMA contraction: -std=c11 keeps it off). */
#include "runtime/cpu/kernels.h"
#include "runtime/cpu/vec8.h"
#include "runtime/parallel.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <omp.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

void eb_kernels_single_blas(void) {
    int threads = omp_get_max_threads();
    openblas_set_num_threads(1); /* OpenBLAS's OpenMP build sets OpenMP's thread count too: restore it */
    omp_set_num_threads(threads);
}

const char *eb_blas_better_core(void) {
    const char *core = openblas_get_corename();
    if (!core || strcasecmp(core, "Prescott")) return NULL; /* OpenBLAS knew the CPU */
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
    return NULL;
}

void eb_cpu_reexec(char **argv) {
    const char *core = getenv("OPENBLAS_CORETYPE") ? NULL : eb_blas_better_core();
    int set_core = core && !setenv("OPENBLAS_CORETYPE", core, 1);
    int set_wait = !getenv("OMP_WAIT_POLICY") && !setenv("OMP_WAIT_POLICY", "passive", 1);
    if (!set_core && !set_wait) return;
    execv("/proc/self/exe", argv);
    /* no exec: go on as loaded */
    if (set_core) unsetenv("OPENBLAS_CORETYPE");
    if (set_wait) unsetenv("OMP_WAIT_POLICY");
}

void eb_kernels_init(int threads) {
    eb_kernels_single_blas();
    omp_set_num_threads(threads > 0 ? threads : omp_get_num_procs());
}

float eb_fast_expf(float x) { return exp8(splat(x))[0]; }
float eb_fast_tanhf(float x) { return tanh8(splat(x))[0]; }

void linear_forward(float *out, const float *in, const float *w, const float *b, int BT, int IC, int OC) {
    /* Fixed tiles, each one single-threaded sgemm in an active parallel region, even for one tile:
     * OpenBLAS's own threading splits work by thread count and would change the bits with it
     * (runtime/parallel.h). Tiles are row chunks; a product of one chunk worth a team (ToCa's few
     * gathered tokens) splits its columns too, or it would run on one thread. */
    const int chunks = (BT + EB_GEMM_ROWS - 1) / EB_GEMM_ROWS, most = BT < EB_GEMM_ROWS ? BT : EB_GEMM_ROWS;
    const int col_blocks = chunks == 1 && (size_t)BT * IC * OC >= EB_PAR_MIN_MACS ? (OC + EB_GEMM_COLS - 1) / EB_GEMM_COLS : 1;
    const int width = col_blocks > 1 ? EB_GEMM_COLS : OC;
#pragma omp parallel for schedule(static) if (eb_gemm_loop_parallel((size_t)BT * IC * OC, (size_t)most * IC * width))
    for (int k = 0; k < chunks * col_blocks; k++) {
        const int r0 = k / col_blocks * EB_GEMM_ROWS, rows = BT - r0 < EB_GEMM_ROWS ? BT - r0 : EB_GEMM_ROWS;
        const int c0 = k % col_blocks * width, cols = OC - c0 < width ? OC - c0 : width;
        float *o = out + (size_t)r0 * OC + c0;
        if (b)
            for (int r = 0; r < rows; r++) memcpy(o + (size_t)r * OC, b + c0, sizeof(float) * cols);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, cols, IC, 1.0f, in + (size_t)r0 * IC, IC,
                    w + (size_t)c0 * IC, IC, b ? 1.0f : 0.0f, o, OC);
    }
}

/* Sum of the 8 lanes in one fixed order. */
static inline float lanes_sum(vf8 v) { return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7])); }

/* out[r][o] for R ≤ 4 rows and the C ≤ 4 columns from o: lane j of each sum
 * takes the k ≡ j (mod 8) terms in increasing k, whatever R and C are. */
static inline __attribute__((always_inline)) void rows_dot(float *out, const float *in, const float *w,
                                                           const float *b, int R, int C, int IC, int OC, int o) {
    vf8 acc[4][8];
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) acc[r][c] = splat(0.0f);
    int k = 0;
    for (; k + 8 <= IC; k += 8) {
        vf8 wk[8], x;
        for (int c = 0; c < C; c++) memcpy(&wk[c], w + (size_t)(o + c) * IC + k, sizeof wk[c]);
        for (int r = 0; r < R; r++) {
            memcpy(&x, in + (size_t)r * IC + k, sizeof x);
            for (int c = 0; c < C; c++) acc[r][c] += wk[c] * x;
        }
    }
    if (k < IC) /* the tail, zero-padded: +0 leaves a sum as it is */
        for (int r = 0; r < R; r++)
            for (int c = 0; c < C; c++) acc[r][c] += load8(w + (size_t)(o + c) * IC + k, IC - k) * load8(in + (size_t)r * IC + k, IC - k);
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++)
            out[(size_t)r * OC + o + c] = b ? lanes_sum(acc[r][c]) + b[o + c] : lanes_sum(acc[r][c]);
}

/* rows_dot with the row count R as a constant, so each body is unrolled. */
static inline __attribute__((always_inline)) void rows_dot_cols(float *out, const float *in, const float *w,
                                                                const float *b, int R, int IC, int OC, int o0, int o1) {
    int o = o0;
    if (R <= 2)
        for (; o + 8 <= o1; o += 8) rows_dot(out, in, w, b, R, 8, IC, OC, o);
    for (; o + 4 <= o1; o += 4) rows_dot(out, in, w, b, R, 4, IC, OC, o);
    for (; o < o1; o++) rows_dot(out, in, w, b, R, 1, IC, OC, o);
}

void linear_rows_forward(float *out, const float *in, const float *w, const float *b, int B, int IC, int OC) {
    enum { COLS = 32 }; /* columns per chunk: a fixed split, so threads never change a sum */
    const int chunks = (OC + COLS - 1) / COLS;
#pragma omp parallel for schedule(static) if ((size_t)B * IC * OC >= EB_PAR_MIN_MACS / 16)
    for (int k = 0; k < chunks; k++) {
        const int o0 = k * COLS, o1 = OC - o0 < COLS ? OC : o0 + COLS;
        for (int r = 0; r < B; r += 4) {
            const float *ir = in + (size_t)r * IC;
            float *orow = out + (size_t)r * OC;
            switch (B - r) { /* one body per row count, each unrolled */
            case 1: rows_dot_cols(orow, ir, w, b, 1, IC, OC, o0, o1); break;
            case 2: rows_dot_cols(orow, ir, w, b, 2, IC, OC, o0, o1); break;
            case 3: rows_dot_cols(orow, ir, w, b, 3, IC, OC, o0, o1); break;
            default: rows_dot_cols(orow, ir, w, b, 4, IC, OC, o0, o1);
            }
        }
    }
}

void patch_embed_forward(float *out, const float *x, const float *w, const float *b, const float *pos, int B, int C,
                         int H, int p, int D) {
    int grid = H / p, T = grid * grid, K = C * p * p;
    /* w transposed to (K, D), so the loop over d is contiguous; each output still sums its K terms
     * in w's (c, py, px) order, the order of the plain loop. */
    float *wt = malloc((size_t)K * D * sizeof(float));
    if (!wt) { /* out of memory: poison the output so the forward's finite check reports it */
        for (size_t i = 0; i < (size_t)B * T * D; i++) out[i] = NAN;
        return;
    }
    for (int d = 0; d < D; d++)
        for (int k = 0; k < K; k++) wt[(size_t)k * D + d] = w[(size_t)d * K + k];
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * T * D * K >= EB_PAR_MIN_MACS)
    for (int n = 0; n < B; n++)
        for (int tok = 0; tok < T; tok++) {
            int gy = tok / grid, gx = tok % grid;
            float *o = out + ((size_t)n * T + tok) * D;
            for (int d = 0; d < D; d++) o[d] = 0.0f;
            for (int c = 0; c < C; c++)
                for (int py = 0; py < p; py++) {
                    const float *xr = x + (((size_t)n * C + c) * H + gy * p + py) * H + gx * p;
                    for (int px = 0; px < p; px++) {
                        const float *wk = wt + (size_t)((c * p + py) * p + px) * D, xv = xr[px];
                        for (int d = 0; d < D; d++) o[d] += wk[d] * xv;
                    }
                }
            for (int d = 0; d < D; d++) o[d] = (o[d] + b[d]) + pos[(size_t)tok * D + d];
        }
    free(wt);
}

void timestep_freq_forward(float *out, const int32_t *t, int B) {
    const int half = EB_FREQ_HALF;
    const float neg_log_period = (float)(-log(10000.0));
    for (int n = 0; n < B; n++) {
        float tf = (float)t[n];
        for (int i = 0; i < half; i++) {
            float freq = expf(((float)i * neg_log_period) / (float)half);
            float arg = tf * freq;
            out[(size_t)n * 2 * half + i] = cosf(arg);
            out[(size_t)n * 2 * half + half + i] = sinf(arg);
        }
    }
}

void silu_forward(float *out, const float *in, size_t n) {
#pragma omp parallel for schedule(static) if (n >= EB_PAR_MIN_ELEMS)
    for (size_t i = 0; i < n; i++) out[i] = in[i] / (1.0f + expf(-in[i]));
}

void label_add_forward(float *c, const float *table, const int32_t *y, int B, int D) {
    for (int n = 0; n < B; n++) {
        const float *row = table + (size_t)y[n] * D;
        for (int d = 0; d < D; d++) c[(size_t)n * D + d] += row[d];
    }
}

void ln_modulate_forward(float *out, float *mean, float *rstd, const float *x, const float *shift, const float *scale,
                         int B, int T, int D, int mod_stride) {
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * T * D >= EB_PAR_MIN_ELEMS)
    for (int n = 0; n < B; n++)
        for (int tok = 0; tok < T; tok++) {
            const float *xr = x + ((size_t)n * T + tok) * D;
            float *o = out + ((size_t)n * T + tok) * D;
            const float *sh = shift + (size_t)n * mod_stride, *sc = scale + (size_t)n * mod_stride;
            double sum = 0.0, sq = 0.0;
            for (int d = 0; d < D; d++) sum += xr[d];
            float m = (float)(sum / D);
            for (int d = 0; d < D; d++) {
                double dev = (double)xr[d] - m;
                sq += dev * dev;
            }
            float s = (float)(1.0 / sqrt(sq / D + EB_LN_EPS));
            for (int d = 0; d < D; d++) o[d] = ((xr[d] - m) * s) * (1.0f + sc[d]) + sh[d];
            if (mean) mean[(size_t)n * T + tok] = m;
            if (rstd) rstd[(size_t)n * T + tok] = s;
        }
}

/* Per-thread scores buffer of the attention (T×T floats), grown on demand
 * and kept: repeated forwards of one model allocate nothing. */
static _Thread_local float *attn_scratch;
static _Thread_local size_t attn_scratch_len;

/* attention_forward, and when colsum is given the column sums of each head's
 * softmax map into colsum (B, NH, T), accumulated over the query rows in order. */
static void attention_impl(float *out, float *probs, float *colsum, const float *qkv, int B, int T, int NH, int hd) {
    const int D = NH * hd, row = 3 * D;
    const float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for collapse(2) schedule(static) \
    if (eb_gemm_loop_parallel(2 * (size_t)B * NH * T * T * hd, (size_t)T * T * hd))
    for (int n = 0; n < B; n++)
        for (int h = 0; h < NH; h++) {
            size_t need = (size_t)T * T;
            float *att = probs ? probs + ((size_t)n * NH + h) * need : NULL;
            if (!att) {
                if (attn_scratch_len < need) {
                    free(attn_scratch);
                    attn_scratch = malloc(need * sizeof(float));
                    attn_scratch_len = attn_scratch ? need : 0;
                }
                att = attn_scratch;
            }
            if (!att) { /* out of memory: poison the output so the NaN check reports it */
                for (int i = 0; i < T; i++)
                    for (int d = 0; d < hd; d++) out[((size_t)n * T + i) * D + h * hd + d] = NAN;
                continue;
            }
            const float *q = qkv + (size_t)n * T * row + h * hd;
            const float *k = q + D, *v = q + 2 * D;
            /* scores (T, T) = scale · Q Kᵀ, then a row softmax, then out = P V. */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, scale, q, row, k, row, 0.0f, att, T);
            for (int i = 0; i < T; i++) {
                float *s = att + (size_t)i * T, mx = -INFINITY, sum = 0.0f;
                for (int j = 0; j < T; j++) mx = s[j] > mx ? s[j] : mx;
                for (int j = 0; j < T; j += 8) store8(s + j, exp8(load8(s + j, T - j) - mx), T - j);
                for (int j = 0; j < T; j++) sum += s[j];
                float inv = 1.0f / sum;
                for (int j = 0; j < T; j++) s[j] *= inv;
            }
            if (colsum) {
                float *cs = colsum + ((size_t)n * NH + h) * T;
                for (int j = 0; j < T; j++) cs[j] = 0.0f;
                for (int i = 0; i < T; i++)
                    for (int j = 0; j < T; j++) cs[j] += att[(size_t)i * T + j];
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, 1.0f, att, T, v, row, 0.0f,
                        out + (size_t)n * T * D + h * hd, D);
        }
}

void attention_forward(float *out, float *probs, const float *qkv, int B, int T, int NH, int hd) {
    attention_impl(out, probs, NULL, qkv, B, T, NH, hd);
}

void attention_colsum_forward(float *out, float *colsum, const float *qkv, int B, int T, int NH, int hd) {
    attention_impl(out, NULL, colsum, qkv, B, T, NH, hd);
}

void gelu_tanh_forward(float *out, const float *in, size_t n) {
    const float beta = (float)(M_SQRT2 * M_2_SQRTPI * 0.5), kappa = 0.044715f;
#pragma omp parallel for schedule(static) if (n >= EB_PAR_MIN_ELEMS)
    for (size_t i = 0; i < n; i += 8) {
        vf8 x = load8(in + i, n - i);
        vf8 inner = beta * (x + kappa * (x * x * x));
        store8(out + i, 0.5f * x * (1.0f + tanh8(inner)), n - i);
    }
}

void gate_residual_forward(float *x, const float *gate, const float *branch, int B, int T, int D, int mod_stride) {
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * T * D >= EB_PAR_MIN_ELEMS)
    for (int n = 0; n < B; n++)
        for (int tok = 0; tok < T; tok++) {
            float *xr = x + ((size_t)n * T + tok) * D;
            const float *br = branch + ((size_t)n * T + tok) * D, *g = gate + (size_t)n * mod_stride;
            for (int d = 0; d < D; d++) xr[d] = xr[d] + g[d] * br[d];
        }
}

void unpatchify_forward(float *out, const float *tokens, int B, int C, int H, int p) {
    int grid = H / p, T = grid * grid, K = p * p * C;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * C * H * H >= EB_PAR_MIN_ELEMS)
    for (int n = 0; n < B; n++)
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < H; x++) {
                    int tok = (y / p) * grid + x / p, inner = ((y % p) * p + x % p) * C + c;
                    out[(((size_t)n * C + c) * H + y) * H + x] = tokens[((size_t)n * T + tok) * K + inner];
                }
}

void cfg_combine_forward(float *out, const float *model_out, int N, int Co, int HW, int guided, float scale) {
    for (int n = 0; n < N; n++)
        for (int c = 0; c < Co; c++) {
            const float *cond = model_out + ((size_t)n * Co + c) * HW;
            const float *uncond = model_out + ((size_t)(N + n) * Co + c) * HW;
            float *o = out + ((size_t)n * Co + c) * HW;
            for (int i = 0; i < HW; i++) o[i] = c < guided ? uncond[i] + scale * (cond[i] - uncond[i]) : cond[i];
        }
}
