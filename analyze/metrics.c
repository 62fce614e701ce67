/* metrics.c — FID statistics, Fréchet distance (and its two terms), principal
 * components, k-NN precision/recall, accuracy, PSNR and SSIM. Everything accumulates in double; the O(N²)
 * and O(D³) parts run on OpenBLAS (dgemm/dsyrk) and GSL (symmetric eigen). */
#include "analyze/metrics.h"

#include <gsl/gsl_cblas.h> /* GSL's copy of the CBLAS declarations (it clashes with
                               OpenBLAS's cblas.h); OpenBLAS provides the symbols */
#include <gsl/gsl_cdf.h>
#include <gsl/gsl_eigen.h>
#include <gsl/gsl_errno.h>
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/check.h"

#define STATS_BLOCK 256 /* rows centred per dsyrk call                     */
#define DIST_BLOCK 512  /* rows (and columns) of one squared-distance tile */

/* ------------------------------------------------------------------------ */
/* Feature statistics                                                        */

eb_status eb_feature_stats(double *mean, double *cov, const float *x, int N, int D) {
    if (N < 2 || D < 1) return eb_fail(EB_EINPUT, "feature statistics: need N >= 2 and D >= 1, got N=%d D=%d", N, D);
    int64_t dims[2] = {N, D};
    eb_status st = eb_check_finite(x, dims, 2, EB_EINPUT, "features");
    if (st) return st;
    double *centred = malloc((size_t)STATS_BLOCK * D * sizeof *centred);
    if (!centred) return eb_fail(EB_ERUNTIME, "feature statistics: out of memory (D=%d)", D);

    for (int j = 0; j < D; j++) mean[j] = 0.0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < D; j++) mean[j] += x[(size_t)i * D + j];
    for (int j = 0; j < D; j++) mean[j] /= N;

    /* Centring first (two passes) avoids the cancellation of E[xxᵀ] − μμᵀ. */
    for (int i0 = 0; i0 < N; i0 += STATS_BLOCK) {
        int m = N - i0 < STATS_BLOCK ? N - i0 : STATS_BLOCK;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < D; j++) centred[(size_t)i * D + j] = x[(size_t)(i0 + i) * D + j] - mean[j];
        /* One thread: OpenBLAS's OpenMP build would thread a call made outside a parallel region, and
         * the summation order (the bits) would follow the thread count. */
#pragma omp parallel
#pragma omp single
        cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, D, m, 1.0, centred, D, i0 ? 1.0 : 0.0, cov, D);
    }
    for (int i = 0; i < D; i++)
        for (int j = 0; j <= i; j++) {
            double v = cov[(size_t)i * D + j] / (N - 1);
            cov[(size_t)i * D + j] = cov[(size_t)j * D + i] = v;
        }
    free(centred);
    return EB_OK;
}

/* ------------------------------------------------------------------------ */
/* Fréchet distance                                                          */

/* dst (D, D) = (src + srcᵀ) / 2 */
static void symmetrize(double *dst, const double *src, int D) {
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++) dst[(size_t)i * D + j] = 0.5 * (src[(size_t)i * D + j] + src[(size_t)j * D + i]);
}

/* Eigenvalues eval (D) of the symmetric a (D, D), and its eigenvectors as the
 * columns of evec (D, D) when evec is not NULL. a is destroyed. Returns a GSL
 * status (GSL_ENOMEM when the workspace cannot be allocated). */
static int sym_eigen(double *eval, double *evec, double *a, int D) {
    gsl_matrix_view A = gsl_matrix_view_array(a, D, D);
    gsl_vector_view L = gsl_vector_view_array(eval, D);
    int status;
    if (evec) {
        gsl_eigen_symmv_workspace *ws = gsl_eigen_symmv_alloc(D);
        if (!ws) return GSL_ENOMEM;
        gsl_matrix_view V = gsl_matrix_view_array(evec, D, D);
        status = gsl_eigen_symmv(&A.matrix, &L.vector, &V.matrix, ws);
        gsl_eigen_symmv_free(ws);
    } else {
        gsl_eigen_symm_workspace *ws = gsl_eigen_symm_alloc(D);
        if (!ws) return GSL_ENOMEM;
        status = gsl_eigen_symm(&A.matrix, &L.vector, ws);
        gsl_eigen_symm_free(ws);
    }
    return status;
}

/* The trace term tr (Σ1^½ Σ2 Σ1^½)^½.
 *
 * tr √(Σ1 Σ2) has the same value, but Σ1 Σ2 is not symmetric: a general
 * matrix square root of it (scipy's sqrtm, as pytorch-fid uses) works on a
 * Schur form and round-off can give complex eigenvalues and a complex result
 * for nearly singular covariances. Σ1^½ Σ2 Σ1^½ is similar to Σ1 Σ2 (same
 * eigenvalues) and is symmetric positive semi-definite, so a symmetric
 * eigen-solver returns real eigenvalues and the trace of its square root is
 * Σ √max(λ, 0). Σ1^½ itself is the unique PSD root V √max(Λ, 0) Vᵀ; the clamp
 * removes the tiny negative eigenvalues round-off gives a singular Σ1.
 * s1, s2 (D, D) symmetric; s1 is destroyed; work holds 2·D² + D doubles. */
static int trace_sqrt_product(double *out, double *s1, const double *s2, int D, double *work) {
    double *vec = work, *tmp = work + (size_t)D * D, *eval = work + 2 * (size_t)D * D;
    int status = sym_eigen(eval, vec, s1, D);
    if (status) return status;
    for (int j = 0; j < D; j++) {
        double fourth_root = sqrt(sqrt(fmax(eval[j], 0.0)));
        for (int i = 0; i < D; i++) vec[(size_t)i * D + j] *= fourth_root;
    }
    double *root = s1; /* Σ1^½ = (V Λ^¼)(V Λ^¼)ᵀ, lower half from dsyrk, mirrored */
    cblas_dsyrk(CblasRowMajor, CblasLower, CblasNoTrans, D, D, 1.0, vec, D, 0.0, root, D);
    for (int i = 0; i < D; i++)
        for (int j = 0; j < i; j++) root[(size_t)j * D + i] = root[(size_t)i * D + j];
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, D, D, D, 1.0, root, D, s2, D, 0.0, tmp, D);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, D, D, D, 1.0, tmp, D, root, D, 0.0, vec, D);
    status = sym_eigen(eval, NULL, vec, D); /* reads the lower half of M */
    if (status) return status;
    double sum = 0.0;
    for (int j = 0; j < D; j++) sum += sqrt(fmax(eval[j], 0.0));
    *out = sum;
    return GSL_SUCCESS;
}

/* The two terms from tr (Σ1^½ Σ2 Σ1^½)^½: ‖μ1 − μ2‖² and tr Σ1 + tr Σ2 − 2·trace_sqrt. */
static eb_status frechet_finish(double *mean_term, double *cov_term, const double *mu1, const double *cov1,
                                const double *mu2, const double *cov2, int D, double trace_sqrt) {
    double mean = 0.0, trace1 = 0.0, trace2 = 0.0;
    for (int i = 0; i < D; i++) {
        double d = mu1[i] - mu2[i];
        mean += d * d;
        trace1 += cov1[(size_t)i * D + i];
        trace2 += cov2[(size_t)i * D + i];
    }
    *mean_term = mean;
    *cov_term = trace1 + trace2 - 2.0 * trace_sqrt;
    if (!isfinite(*mean_term + *cov_term)) return eb_fail(EB_ERUNTIME, "frechet distance: non-finite result (D=%d)", D);
    return EB_OK;
}

eb_status eb_frechet_terms(double *mean_term, double *cov_term, const double *mu1, const double *cov1,
                           const double *mu2, const double *cov2, int D) {
    if (D < 1) return eb_fail(EB_EINPUT, "frechet distance: bad dimension D=%d", D);
    int64_t vdims[1] = {D}, mdims[2] = {D, D};
    eb_status st;
    if ((st = eb_check_finite_f64(mu1, vdims, 1, EB_EINPUT, "mu1")) ||
        (st = eb_check_finite_f64(mu2, vdims, 1, EB_EINPUT, "mu2")) ||
        (st = eb_check_finite_f64(cov1, mdims, 2, EB_EINPUT, "cov1")) ||
        (st = eb_check_finite_f64(cov2, mdims, 2, EB_EINPUT, "cov2")))
        return st;

    size_t DD = (size_t)D * D;
    double *buf = malloc((4 * DD + D) * sizeof *buf);
    if (!buf) return eb_fail(EB_ERUNTIME, "frechet distance: out of memory (D=%d)", D);
    double *s1 = buf, *s2 = buf + DD, trace_sqrt = 0.0;
    symmetrize(s1, cov1, D);
    symmetrize(s2, cov2, D);
    /* GSL aborts on errors by default; report them instead. (Process-wide
     * handler, restored before returning.) */
    gsl_error_handler_t *old_handler = gsl_set_error_handler_off();
    int status;
    /* One thread (the eigen-solver's BLAS calls included), as in eb_feature_stats. */
#pragma omp parallel
#pragma omp single
    status = trace_sqrt_product(&trace_sqrt, s1, s2, D, buf + 2 * DD);
    gsl_set_error_handler(old_handler);
    free(buf);
    if (status) return eb_fail(EB_ERUNTIME, "frechet distance: eigen-decomposition failed (D=%d): %s", D,
                               gsl_strerror(status));
    return frechet_finish(mean_term, cov_term, mu1, cov1, mu2, cov2, D, trace_sqrt);
}

/* tr (Σ_A^½ Σ Σ_A^½)^½ for Σ_A = Aᵀ·A, A (n, D) the rows x centred on mu over √(n − 1): the sum of
 * the square roots of the eigenvalues of the n × n matrix A·Σ·Aᵀ (the non-zero ones of the D × D
 * product), those within n·ε·λ_max of 0 (round-off, of either sign) taken as 0. Only the
 * symmetric part of Σ counts. One thread, as eb_feature_stats: the bits do not follow the thread
 * count. */
static eb_status low_rank_trace_sqrt(double *out, const float *x, int n, const double *mu, const double *sigma,
                                     int D) {
    double *a = malloc((size_t)n * D * sizeof *a), *t = malloc((size_t)n * D * sizeof *t);
    double *m = malloc((size_t)n * n * sizeof *m), *eval = malloc((size_t)n * sizeof *eval);
    gsl_eigen_symm_workspace *ws = gsl_eigen_symm_alloc(n);
    eb_status st = a && t && m && eval && ws ? EB_OK : eb_fail(EB_ERUNTIME, "out of memory for %dx%d features", n, D);
    if (!st) {
        const double scale = 1.0 / sqrt(n - 1.0);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < D; j++) a[(size_t)i * D + j] = (x[(size_t)i * D + j] - mu[j]) * scale;
        gsl_error_handler_t *old = gsl_set_error_handler_off();
        gsl_matrix_view M = gsl_matrix_view_array(m, n, n);
        gsl_vector_view L = gsl_vector_view_array(eval, n);
        int status;
        /* in a parallel region: OpenBLAS (GSL's eigen-solver calls it too) then runs on one thread */
#pragma omp parallel
#pragma omp single
        {
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, D, D, 1.0, a, D, sigma, D, 0.0, t, D);
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, D, 1.0, t, D, a, D, 0.0, m, n);
            for (int i = 0; i < n; i++)
                for (int j = 0; j < i; j++)
                    m[(size_t)i * n + j] = m[(size_t)j * n + i] = 0.5 * (m[(size_t)i * n + j] + m[(size_t)j * n + i]);
            status = gsl_eigen_symm(&M.matrix, &L.vector, ws);
        }
        gsl_set_error_handler(old);
        if (status)
            st = eb_fail(EB_ERUNTIME, "frechet distance: eigenvalues of %dx%d failed: %s", n, n, gsl_strerror(status));
        /* the centring leaves a null direction (rank n − 1): eigenvalues within the solver's round-off
         * of 0 are 0, not the square root of that round-off */
        double top = 0, sum = 0;
        for (int i = 0; i < n; i++) top = fmax(top, eval[i]);
        for (int i = 0; i < n; i++) sum += eval[i] > n * DBL_EPSILON * top ? sqrt(eval[i]) : 0.0;
        *out = sum;
    }
    if (ws) gsl_eigen_symm_free(ws);
    free(a), free(t), free(m), free(eval);
    return st;
}

eb_status eb_frechet_terms_rows(double *mean_term, double *cov_term, const float *x1, int n1, const double *mu1,
                          const double *cov1, const float *x2, int n2, const double *mu2, const double *cov2, int D) {
    const int one = x1 && n1 <= D && (!x2 || n1 <= n2), two = !one && x2 && n2 <= D;
    if (!one && !two) return eb_frechet_terms(mean_term, cov_term, mu1, cov1, mu2, cov2, D);
    double root;
    eb_status st = one ? low_rank_trace_sqrt(&root, x1, n1, mu1, cov2, D)
                       : low_rank_trace_sqrt(&root, x2, n2, mu2, cov1, D);
    return st ? st : frechet_finish(mean_term, cov_term, mu1, cov1, mu2, cov2, D, root);
}


eb_status eb_frechet_distance(double *fd, const double *mu1, const double *cov1, const double *mu2,
                              const double *cov2, int D) {
    double mean_term, cov_term;
    eb_status st = eb_frechet_terms(&mean_term, &cov_term, mu1, cov1, mu2, cov2, D);
    if (!st) *fd = mean_term + cov_term;
    return st;
}

/* ------------------------------------------------------------------------ */
/* Principal components                                                      */

eb_status eb_pca_fit(double *mean, double *components, const float *x, int N, int D, int K) {
    if (K < 1 || K > D) return eb_fail(EB_EINPUT, "pca: %d components of %d dimensions", K, D);
    size_t DD = (size_t)D * D;
    double *cov = malloc(DD * sizeof *cov), *vec = malloc(DD * sizeof *vec), *eval = malloc(D * sizeof *eval);
    int *order = malloc(D * sizeof *order);
    eb_status st = cov && vec && eval && order ? EB_OK : eb_fail(EB_ERUNTIME, "pca: out of memory (D=%d)", D);
    if (!st) st = eb_feature_stats(mean, cov, x, N, D);
    if (!st) {
        gsl_error_handler_t *old_handler = gsl_set_error_handler_off();
        int status;
#pragma omp parallel
#pragma omp single
        status = sym_eigen(eval, vec, cov, D);
        gsl_set_error_handler(old_handler);
        if (status) st = eb_fail(EB_ERUNTIME, "pca: eigen-decomposition failed (D=%d): %s", D, gsl_strerror(status));
    }
    if (!st) {
        /* the K largest eigenvalues by selection (D is small enough; GSL returns them unordered) */
        for (int j = 0; j < D; j++) order[j] = j;
        for (int k = 0; k < K; k++) {
            int best = k;
            for (int j = k + 1; j < D; j++)
                if (eval[order[j]] > eval[order[best]]) best = j;
            int t = order[k];
            order[k] = order[best], order[best] = t;
            /* sign: the largest-magnitude entry positive, so the basis does not depend on the solver's choice */
            int c = order[k], big = 0;
            for (int i = 1; i < D; i++)
                if (fabs(vec[(size_t)i * D + c]) > fabs(vec[(size_t)big * D + c])) big = i;
            double sign = vec[(size_t)big * D + c] < 0 ? -1.0 : 1.0;
            for (int i = 0; i < D; i++) components[(size_t)k * D + i] = sign * vec[(size_t)i * D + c];
        }
    }
    free(cov), free(vec), free(eval), free(order);
    return st;
}

eb_status eb_pca_project(float *out, const float *x, int N, int D, const double *mean, const double *components,
                         int K) {
    if (N < 1 || D < 1 || K < 1 || K > D) return eb_fail(EB_EINPUT, "pca projection: bad sizes N=%d D=%d K=%d", N, D, K);
    int64_t dims[2] = {N, D};
    eb_status st = eb_check_finite(x, dims, 2, EB_EINPUT, "pca input");
    if (st) return st;
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) {
            double s = 0.0;
            for (int i = 0; i < D; i++) s += components[(size_t)k * D + i] * (x[(size_t)n * D + i] - mean[i]);
            out[(size_t)n * K + k] = (float)s;
        }
    return EB_OK;
}

/* ------------------------------------------------------------------------ */
/* k-NN precision / recall                                                   */
/*
 * Distances come in tiles of DIST_BLOCK × DIST_BLOCK from one dgemm each.
 * Threads split the row blocks and each runs its own (serial) dgemm on its own
 * scratch: one parallel region per pass instead of one per tile, which keeps
 * busy or oversubscribed cores from stalling every tile on a barrier.
 */

/* One thread's scratch: a row block and a column block in double with their
 * squared norms, their tile of squared distances, and per-row state. */
typedef struct {
    double *a, *a_norm;  /* (DIST_BLOCK, D), (DIST_BLOCK) */
    double *b, *b_norm;  /* (DIST_BLOCK, D), (DIST_BLOCK) */
    double *tile;        /* (DIST_BLOCK, DIST_BLOCK)      */
    double *nearest;     /* (DIST_BLOCK, k) ascending     */
    char *covered;       /* (DIST_BLOCK) inside some ball */
} dist_work;

static void dist_work_free(dist_work *w, int threads) {
    for (int t = 0; w && t < threads; t++) {
        free(w[t].a), free(w[t].a_norm), free(w[t].b), free(w[t].b_norm);
        free(w[t].tile), free(w[t].nearest), free(w[t].covered);
    }
    free(w);
}

/* Scratch for `threads` threads; NULL when out of memory. */
static dist_work *dist_work_alloc(int threads, int D, int k) {
    dist_work *w = calloc((size_t)threads, sizeof *w);
    int ok = w != NULL;
    size_t rows = (size_t)DIST_BLOCK * D * sizeof(double), norms = DIST_BLOCK * sizeof(double);
    for (int t = 0; ok && t < threads; t++) {
        w[t] = (dist_work){
            .a = malloc(rows),
            .a_norm = malloc(norms),
            .b = malloc(rows),
            .b_norm = malloc(norms),
            .tile = malloc((size_t)DIST_BLOCK * DIST_BLOCK * sizeof(double)),
            .nearest = malloc((size_t)DIST_BLOCK * k * sizeof(double)),
            .covered = malloc(DIST_BLOCK),
        };
        ok = w[t].a && w[t].a_norm && w[t].b && w[t].b_norm && w[t].tile && w[t].nearest && w[t].covered;
    }
    if (!ok) dist_work_free(w, threads), w = NULL;
    return w;
}

/* dst (n, D) = rows [r0, r0 + n) of src (·, D) in double; norm (n) their ‖·‖². */
static void load_rows(double *dst, double *norm, const float *src, int r0, int n, int D) {
    for (int i = 0; i < n; i++) {
        double s = 0.0;
        for (int j = 0; j < D; j++) {
            double v = src[(size_t)(r0 + i) * D + j];
            dst[(size_t)i * D + j] = v;
            s += v * v;
        }
        norm[i] = s;
    }
}

/* Loads rows [j0, j0 + nb) of y as the column block and fills the tile
 * (na, nb) with ‖a_i − b_j‖² = ‖a_i‖² + ‖b_j‖² − 2 a_i·b_j, clamped at 0
 * (round-off can make the expansion slightly negative). */
static void sq_dist_tile(dist_work *w, int na, const float *y, int j0, int nb, int D) {
    load_rows(w->b, w->b_norm, y, j0, nb, D);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, na, nb, D, -2.0, w->a, D, w->b, D, 0.0, w->tile, nb);
    for (int i = 0; i < na; i++)
        for (int j = 0; j < nb; j++) {
            double d = w->tile[(size_t)i * nb + j] + w->a_norm[i] + w->b_norm[j];
            w->tile[(size_t)i * nb + j] = d > 0.0 ? d : 0.0;
        }
}

static int min_int(int a, int b) { return a < b ? a : b; }

/* radius2 (n) = squared distance from each row of x (n, D) to its k-th nearest
 * other row (n > k). */
static void knn_radii(double *radius2, const float *x, int n, int D, int k, dist_work *work) {
#pragma omp parallel for schedule(dynamic, 1)
    for (int i0 = 0; i0 < n; i0 += DIST_BLOCK) {
        dist_work *w = &work[omp_get_thread_num()];
        int na = min_int(n - i0, DIST_BLOCK);
        load_rows(w->a, w->a_norm, x, i0, na, D);
        for (size_t i = 0; i < (size_t)na * k; i++) w->nearest[i] = INFINITY;
        for (int j0 = 0; j0 < n; j0 += DIST_BLOCK) {
            int nb = min_int(n - j0, DIST_BLOCK);
            sq_dist_tile(w, na, x, j0, nb, D);
            for (int i = 0; i < na; i++) {
                double *best = w->nearest + (size_t)i * k;
                for (int j = 0; j < nb; j++) {
                    double d = w->tile[(size_t)i * nb + j];
                    if (i0 + i == j0 + j || d >= best[k - 1]) continue;
                    int p = k - 1; /* insertion into the sorted k best */
                    for (; p > 0 && best[p - 1] > d; p--) best[p] = best[p - 1];
                    best[p] = d;
                }
            }
        }
        for (int i = 0; i < na; i++) radius2[i0 + i] = w->nearest[(size_t)i * k + k - 1];
    }
}

/* Fraction of the rows of q (nq, D) within (≤) the ball of some row of
 * ref (nref, D) whose squared radii are ref_radius2 (nref). */
static double coverage(const float *q, int nq, const float *ref, const double *ref_radius2, int nref, int D,
                       dist_work *work) {
    long inside = 0;
#pragma omp parallel for schedule(dynamic, 1) reduction(+ : inside)
    for (int i0 = 0; i0 < nq; i0 += DIST_BLOCK) {
        dist_work *w = &work[omp_get_thread_num()];
        int na = min_int(nq - i0, DIST_BLOCK);
        load_rows(w->a, w->a_norm, q, i0, na, D);
        memset(w->covered, 0, (size_t)na);
        int left = na;
        for (int j0 = 0; j0 < nref && left > 0; j0 += DIST_BLOCK) {
            int nb = min_int(nref - j0, DIST_BLOCK);
            sq_dist_tile(w, na, ref, j0, nb, D);
            for (int i = 0; i < na; i++) {
                if (w->covered[i]) continue;
                for (int j = 0; j < nb; j++)
                    if (w->tile[(size_t)i * nb + j] <= ref_radius2[j0 + j]) {
                        w->covered[i] = 1;
                        left--;
                        break;
                    }
            }
        }
        inside += na - left;
    }
    return (double)inside / nq;
}

eb_status eb_precision_recall(double *precision, double *recall, const float *real, int n_real, const float *fake,
                              int n_fake, int D, int k) {
    if (D < 1 || k < 1) return eb_fail(EB_EINPUT, "precision/recall: bad D=%d or k=%d", D, k);
    if (n_real <= k || n_fake <= k)
        return eb_fail(EB_EINPUT, "precision/recall: k=%d needs more than %d real and fake samples, got %d and %d", k,
                       k, n_real, n_fake);
    int64_t rdims[2] = {n_real, D}, fdims[2] = {n_fake, D};
    eb_status st;
    if ((st = eb_check_finite(real, rdims, 2, EB_EINPUT, "real features")) ||
        (st = eb_check_finite(fake, fdims, 2, EB_EINPUT, "fake features")))
        return st;

    int threads = omp_get_max_threads();
    dist_work *work = dist_work_alloc(threads, D, k);
    double *real_r2 = malloc((size_t)n_real * sizeof *real_r2);
    double *fake_r2 = malloc((size_t)n_fake * sizeof *fake_r2);
    if (work && real_r2 && fake_r2) {
        knn_radii(real_r2, real, n_real, D, k, work);
        knn_radii(fake_r2, fake, n_fake, D, k, work);
        *precision = coverage(fake, n_fake, real, real_r2, n_real, D, work);
        *recall = coverage(real, n_real, fake, fake_r2, n_fake, D, work);
    } else {
        st = eb_fail(EB_ERUNTIME, "precision/recall: out of memory (D=%d, %d real, %d fake)", D, n_real, n_fake);
    }
    dist_work_free(work, threads);
    free(real_r2), free(fake_r2);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Accuracy                                                                  */

eb_status eb_accuracy(double *accuracy, const float *logits, const int32_t *labels, int N, int K) {
    if (N < 1 || K < 1) return eb_fail(EB_EINPUT, "accuracy: bad sizes N=%d K=%d", N, K);
    int64_t dims[2] = {N, K};
    eb_status st = eb_check_finite(logits, dims, 2, EB_EINPUT, "logits");
    if (st) return st;
    long correct = 0;
    for (int i = 0; i < N; i++) {
        if (labels[i] < 0 || labels[i] >= K)
            return eb_fail(EB_EINPUT, "accuracy: labels[%d] = %d is outside 0..%d", i, labels[i], K - 1);
        const float *row = logits + (size_t)i * K;
        int best = 0;
        for (int c = 1; c < K; c++)
            if (row[c] > row[best]) best = c;
        correct += best == labels[i];
    }
    *accuracy = (double)correct / N;
    return EB_OK;
}

/* ------------------------------------------------------------------------ */
/* PSNR and SSIM                                                             */

/* Checks the shared arguments of the image metrics. */
static eb_status check_image_pair(const char *metric, const float *a, const float *b, int N, int C, int H, int W,
                                  double data_range) {
    if (N < 1 || C < 1 || H < 1 || W < 1)
        return eb_fail(EB_EINPUT, "%s: bad shape (%d, %d, %d, %d)", metric, N, C, H, W);
    if (!(data_range > 0.0) || !isfinite(data_range))
        return eb_fail(EB_EINPUT, "%s: data range %g must be positive and finite", metric, data_range);
    int64_t dims[4] = {N, C, H, W};
    eb_status st = eb_check_finite(a, dims, 4, EB_EINPUT, "a");
    return st ? st : eb_check_finite(b, dims, 4, EB_EINPUT, "b");
}

/* Writes per_image and mean when they are not NULL. */
static void report(double *per_image, double *mean, const double *values, int N) {
    double sum = 0.0;
    for (int i = 0; i < N; i++) sum += values[i];
    if (per_image) memcpy(per_image, values, (size_t)N * sizeof *values);
    if (mean) *mean = sum / N;
}

eb_status eb_psnr(double *per_image, double *mean, const float *a, const float *b, int N, int C, int H, int W,
                  double data_range) {
    eb_status st = check_image_pair("psnr", a, b, N, C, H, W, data_range);
    if (st) return st;
    double *psnr = malloc((size_t)N * sizeof *psnr);
    if (!psnr) return eb_fail(EB_ERUNTIME, "psnr: out of memory (N=%d)", N);
    size_t size = (size_t)C * H * W;
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        double sum = 0.0;
        for (size_t i = 0; i < size; i++) {
            double d = (double)a[n * size + i] - b[n * size + i];
            sum += d * d;
        }
        double mse = sum / size;
        psnr[n] = mse > 0.0 ? 10.0 * log10(data_range * data_range / mse) : INFINITY;
    }
    report(per_image, mean, psnr, N);
    free(psnr);
    return EB_OK;
}

/* w (n) = Gaussian taps of standard deviation EB_SSIM_SIGMA centred on the
 * window, summing to 1. For n = 11 this is the window of Wang et al.; for a
 * shorter (clipped) window the same Gaussian is centred on it. */
static void gaussian_taps(double *w, int n) {
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        double t = i - 0.5 * (n - 1);
        sum += w[i] = exp(-t * t / (2.0 * EB_SSIM_SIGMA * EB_SSIM_SIGMA));
    }
    for (int i = 0; i < n; i++) w[i] /= sum;
}

/* Mean SSIM over the valid region of one channel a, b (H, W). The separable
 * window wy (wh) ⊗ wx (ww) filters a, b, a², b², ab: a horizontal pass into
 * scratch (5, H, W − ww + 1), then a vertical pass per output pixel. */
static double ssim_plane(const float *a, const float *b, int H, int W, const double *wy, int wh, const double *wx,
                         int ww, double c1, double c2, double *scratch) {
    int oh = H - wh + 1, ow = W - ww + 1;
    size_t plane = (size_t)H * ow;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < ow; x++) {
            double s[5] = {0};
            for (int i = 0; i < ww; i++) {
                double va = a[(size_t)y * W + x + i], vb = b[(size_t)y * W + x + i];
                s[0] += wx[i] * va;
                s[1] += wx[i] * vb;
                s[2] += wx[i] * va * va;
                s[3] += wx[i] * vb * vb;
                s[4] += wx[i] * va * vb;
            }
            for (int q = 0; q < 5; q++) scratch[q * plane + (size_t)y * ow + x] = s[q];
        }
    double total = 0.0;
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++) {
            double m[5] = {0};
            for (int j = 0; j < wh; j++)
                for (int q = 0; q < 5; q++) m[q] += wy[j] * scratch[q * plane + (size_t)(y + j) * ow + x];
            double mu_a = m[0], mu_b = m[1];
            double var_a = m[2] - mu_a * mu_a, var_b = m[3] - mu_b * mu_b, cov = m[4] - mu_a * mu_b;
            total += (2.0 * mu_a * mu_b + c1) * (2.0 * cov + c2) /
                     ((mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2));
        }
    return total / ((double)oh * ow);
}

eb_status eb_ssim(double *per_image, double *mean, const float *a, const float *b, int N, int C, int H, int W,
                  double data_range) {
    eb_status st = check_image_pair("ssim", a, b, N, C, H, W, data_range);
    if (st) return st;
    int wh = H < EB_SSIM_WIN ? H : EB_SSIM_WIN, ww = W < EB_SSIM_WIN ? W : EB_SSIM_WIN;
    double wy[EB_SSIM_WIN], wx[EB_SSIM_WIN];
    gaussian_taps(wy, wh);
    gaussian_taps(wx, ww);
    double c1 = (EB_SSIM_K1 * data_range) * (EB_SSIM_K1 * data_range);
    double c2 = (EB_SSIM_K2 * data_range) * (EB_SSIM_K2 * data_range);

    int threads = omp_get_max_threads();
    size_t scratch_size = 5 * (size_t)H * (W - ww + 1);
    double *scratch = malloc((size_t)threads * scratch_size * sizeof *scratch);
    double *plane_ssim = malloc((size_t)N * C * sizeof *plane_ssim);
    double *ssim = malloc((size_t)N * sizeof *ssim);
    if (!scratch || !plane_ssim || !ssim) {
        free(scratch), free(plane_ssim), free(ssim);
        return eb_fail(EB_ERUNTIME, "ssim: out of memory for (%d, %d, %d, %d)", N, C, H, W);
    }
    size_t hw = (size_t)H * W;
#pragma omp parallel for num_threads(threads)
    for (long p = 0; p < (long)N * C; p++)
        plane_ssim[p] = ssim_plane(a + p * hw, b + p * hw, H, W, wy, wh, wx, ww, c1, c2,
                                   scratch + (size_t)omp_get_thread_num() * scratch_size);
    for (int n = 0; n < N; n++) {
        double sum = 0.0;
        for (int c = 0; c < C; c++) sum += plane_ssim[(size_t)n * C + c];
        ssim[n] = sum / C;
    }
    report(per_image, mean, ssim, N);
    free(scratch), free(plane_ssim), free(ssim);
    return EB_OK;
}

eb_status eb_mean_ci95(double *mean, double *half, const double *x, int n) {
    if (n < 1) return eb_fail(EB_EINPUT, "mean_ci95: n = %d values", n);
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(x[i])) return eb_fail(EB_EINPUT, "mean_ci95: value %d is %g", i, x[i]);
        sum += x[i];
    }
    *mean = sum / n;
    if (n < 2) {
        *half = NAN;
        return EB_OK;
    }
    double ss = 0.0;
    for (int i = 0; i < n; i++) ss += (x[i] - *mean) * (x[i] - *mean);
    *half = gsl_cdf_tdist_Pinv(0.975, n - 1) * sqrt(ss / (n - 1) / n);
    return EB_OK;
}
