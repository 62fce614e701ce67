/* adm_metrics.c — the ADM evaluator's Inception Score and precision/recall
 * (adm_metrics.h). */
#include "analyze/adm_metrics.h"

#include <gsl/gsl_cblas.h> /* GSL's copy of the CBLAS declarations; OpenBLAS provides the symbols */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/check.h"

/* ------------------------------------------------------------------------ */
/* Inception Score                                                           */

eb_status eb_adm_inception_score(double *is, const float *logits, int N, int K, int split) {
    if (N < 1 || K < 1 || split < 1) return eb_fail(EB_EINPUT, "inception score: bad N=%d K=%d split=%d", N, K, split);
    int64_t dims[2] = {N, K};
    eb_status st = eb_check_finite(logits, dims, 2, EB_EINPUT, "logits");
    if (st) return st;
    double *p = malloc((size_t)split * K * sizeof *p), *mean = malloc((size_t)K * sizeof *mean);
    if (!p || !mean) {
        free(p), free(mean);
        return eb_fail(EB_ERUNTIME, "inception score: out of memory (%d classes)", K);
    }
    double total = 0;
    int parts = 0;
    for (int i0 = 0; i0 < N; i0 += split, parts++) {
        int n = N - i0 < split ? N - i0 : split;
        memset(mean, 0, (size_t)K * sizeof *mean);
        for (int i = 0; i < n; i++) { /* p (n, K) = softmax rows, as float32 */
            const float *row = logits + (size_t)(i0 + i) * K;
            double *q = p + (size_t)i * K, top = row[0], sum = 0;
            for (int c = 1; c < K; c++) top = row[c] > top ? row[c] : top;
            for (int c = 0; c < K; c++) sum += q[c] = exp(row[c] - top);
            for (int c = 0; c < K; c++) mean[c] += q[c] = (float)(q[c] / sum);
        }
        for (int c = 0; c < K; c++) mean[c] /= n;
        double kl = 0;
        for (int i = 0; i < n; i++)
            for (int c = 0; c < K; c++) {
                double q = p[(size_t)i * K + c];
                if (q > 0) kl += q * (log(q) - log(mean[c]));
            }
        total += exp(kl / n);
    }
    free(p), free(mean);
    *is = total / parts;
    return EB_OK;
}

/* ------------------------------------------------------------------------ */
/* Distances in fp16, then fp32                                              */

/* x rounded to the nearest value of a float format with `bits` significant
 * bits and smallest normal exponent `emin` (ties to even; ±inf past `max`).
 * fp16: (11, -14, 65504); fp32: (24, -126, FLT_MAX). One rounding of the
 * double, as numpy's float64 → float16 cast. */
static double round_to(double x, int bits, int emin, double max) {
    if (!isfinite(x) || x == 0) return x;
    int e;
    frexp(x, &e); /* x = m·2^e, 0.5 ≤ |m| < 1 */
    if (e - 1 < emin) e = emin + 1;
    double quantum = ldexp(1.0, e - bits);
    double r = nearbyint(x / quantum) * quantum;
    return fabs(r) > max ? copysign(INFINITY, x) : r;
}

typedef struct {
    int bits, emin;
    double max;
} float_format;

static const float_format FP16 = {11, -14, 65504.0}, FP32 = {24, -126, 3.4028234663852886e38};

/* out (nu, nv) = the evaluator's squared distances between the rows of u (nu,
 * D) and v (nv, D) in format f: inputs, squares, norms, products and sums
 * rounded to f (products and norms summed in double first); 1 when all are
 * finite. a (nu, D), b (nv, D), na (nu), nb (nv) are scratch. */
static int distances_in(float *out, const float *u, int nu, const float *v, int nv, int D, float_format f, double *a,
                        double *b, double *na, double *nb) {
    for (int pass = 0; pass < 2; pass++) {
        const float *x = pass ? v : u;
        double *xr = pass ? b : a, *norm = pass ? nb : na;
        int n = pass ? nv : nu;
        for (int i = 0; i < n; i++) {
            double s = 0;
            for (int d = 0; d < D; d++) {
                double r = xr[(size_t)i * D + d] = round_to(x[(size_t)i * D + d], f.bits, f.emin, f.max);
                s += round_to(r * r, f.bits, f.emin, f.max);
            }
            norm[i] = round_to(s, f.bits, f.emin, f.max);
        }
    }
    double *dot = malloc((size_t)nu * nv * sizeof *dot);
    if (!dot) return -1;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nu, nv, D, 1.0, a, D, b, D, 0.0, dot, nv);
    int finite = 1;
    for (int i = 0; i < nu; i++)
        for (int j = 0; j < nv; j++) {
            double two = round_to(2.0 * round_to(dot[(size_t)i * nv + j], f.bits, f.emin, f.max), f.bits, f.emin, f.max);
            double s = round_to(round_to(na[i] - two, f.bits, f.emin, f.max) + nb[j], f.bits, f.emin, f.max);
            s = isnan(s) ? s : s > 0 ? s : 0; /* max(·, 0) keeps a NaN */
            finite &= isfinite(s) != 0;
            out[(size_t)i * nv + j] = (float)s;
        }
    free(dot);
    return finite;
}

/* The block's distances in fp16, or in fp32 where fp16 gave a non-finite entry. */
static eb_status distance_block(float *out, const float *u, int nu, const float *v, int nv, int D, double *a, double *b,
                                double *na, double *nb) {
    int r = distances_in(out, u, nu, v, nv, D, FP16, a, b, na, nb);
    if (r == 0) r = distances_in(out, u, nu, v, nv, D, FP32, a, b, na, nb);
    return r < 0 ? eb_fail(EB_ERUNTIME, "precision/recall: out of memory (%d×%d distances)", nu, nv) : EB_OK;
}

typedef struct {
    double *a, *b, *na, *nb;
    float *block;
} pr_work;

/* radii (n) = the (k+1)-th smallest distance in each row of x (n, D) to all rows of x. */
static eb_status manifold_radii(float *radii, const float *x, int n, int D, int k, int batch, pr_work *w) {
    float *best = malloc((size_t)batch * (k + 1) * sizeof *best); /* per row, the k+1 smallest, ascending */
    if (!best) return eb_fail(EB_ERUNTIME, "precision/recall: out of memory");
    eb_status st = EB_OK;
    for (int r0 = 0; !st && r0 < n; r0 += batch) {
        int nr = n - r0 < batch ? n - r0 : batch;
        for (size_t i = 0; i < (size_t)nr * (k + 1); i++) best[i] = INFINITY;
        for (int c0 = 0; !st && c0 < n; c0 += batch) {
            int nc = n - c0 < batch ? n - c0 : batch;
            st = distance_block(w->block, x + (size_t)r0 * D, nr, x + (size_t)c0 * D, nc, D, w->a, w->b, w->na, w->nb);
            for (int i = 0; !st && i < nr; i++) {
                float *top = best + (size_t)i * (k + 1);
                for (int j = 0; j < nc; j++) {
                    float d = w->block[(size_t)i * nc + j];
                    if (!(d < top[k])) continue;
                    int p = k;
                    while (p > 0 && top[p - 1] > d) top[p] = top[p - 1], p--;
                    top[p] = d;
                }
            }
        }
        for (int i = 0; i < nr; i++) radii[r0 + i] = best[(size_t)i * (k + 1) + k];
    }
    free(best);
    return st;
}

eb_status eb_adm_precision_recall(double *precision, double *recall, const float *ref, int n_ref, const float *sample,
                                  int n_sample, int D, int k, int batch) {
    if (D < 1 || k < 1 || batch < 1) return eb_fail(EB_EINPUT, "precision/recall: bad D=%d, k=%d or batch=%d", D, k, batch);
    if (n_ref <= k || n_sample <= k)
        return eb_fail(EB_EINPUT, "precision/recall: k=%d needs more than %d reference and sample rows, got %d and %d",
                       k, k, n_ref, n_sample);
    int64_t rdims[2] = {n_ref, D}, sdims[2] = {n_sample, D};
    eb_status st;
    if ((st = eb_check_finite(ref, rdims, 2, EB_EINPUT, "reference features")) ||
        (st = eb_check_finite(sample, sdims, 2, EB_EINPUT, "sample features")))
        return st;
    int bmax = batch < (n_ref > n_sample ? n_ref : n_sample) ? batch : (n_ref > n_sample ? n_ref : n_sample);
    pr_work w = {malloc((size_t)bmax * D * sizeof(double)), malloc((size_t)bmax * D * sizeof(double)),
                 malloc((size_t)bmax * sizeof(double)), malloc((size_t)bmax * sizeof(double)),
                 malloc((size_t)bmax * bmax * sizeof(float))};
    float *r_ref = malloc((size_t)n_ref * sizeof *r_ref), *r_sample = malloc((size_t)n_sample * sizeof *r_sample);
    unsigned char *ref_in = calloc((size_t)n_ref, 1), *sample_in = calloc((size_t)n_sample, 1);
    if (!w.a || !w.b || !w.na || !w.nb || !w.block || !r_ref || !r_sample || !ref_in || !sample_in)
        st = eb_fail(EB_ERUNTIME, "precision/recall: out of memory (D=%d, batch %d)", D, bmax);
    if (!st) st = manifold_radii(r_ref, ref, n_ref, D, k, bmax, &w);
    if (!st) st = manifold_radii(r_sample, sample, n_sample, D, k, bmax, &w);
    for (int r0 = 0; !st && r0 < n_ref; r0 += bmax) {
        int nr = n_ref - r0 < bmax ? n_ref - r0 : bmax;
        for (int c0 = 0; !st && c0 < n_sample; c0 += bmax) {
            int nc = n_sample - c0 < bmax ? n_sample - c0 : bmax;
            st = distance_block(w.block, ref + (size_t)r0 * D, nr, sample + (size_t)c0 * D, nc, D, w.a, w.b, w.na, w.nb);
            for (int i = 0; !st && i < nr; i++)
                for (int j = 0; j < nc; j++) {
                    float d = w.block[(size_t)i * nc + j];
                    ref_in[r0 + i] |= d <= r_sample[c0 + j];
                    sample_in[c0 + j] |= d <= r_ref[r0 + i];
                }
        }
    }
    if (!st) {
        long nin = 0;
        for (int j = 0; j < n_sample; j++) nin += sample_in[j];
        *precision = (double)nin / n_sample;
        nin = 0;
        for (int i = 0; i < n_ref; i++) nin += ref_in[i];
        *recall = (double)nin / n_ref;
    }
    free(w.a), free(w.b), free(w.na), free(w.nb), free(w.block);
    free(r_ref), free(r_sample), free(ref_in), free(sample_in);
    return st;
}
