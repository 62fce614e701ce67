/* test_metrics.c — metrics against closed forms, hand-made cases, brute force
 * and the numpy reference (tests/golden/metrics.h5, reference/metrics_ref.py). */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/h5io.h"
#include "analyze/metrics.h"

#define GOLDEN "tests/golden/metrics.h5"

/* x (n) ~ N(0, 1) from the library's counter-based generator. */
static float *normal_floats(size_t n, uint64_t stream) {
    float *x = malloc(n * sizeof *x);
    cr_assert_not_null(x);
    eb_rng_fill_normal(x, n, eb_rng_key(12345, stream));
    return x;
}

static double trace(const double *m, int D) {
    double t = 0;
    for (int i = 0; i < D; i++) t += m[i * D + i];
    return t;
}

/* ------------------------------------------------------------------------ */
/* Feature statistics and Fréchet distance                                   */

Test(metrics, feature_stats_hand_case) {
    const float x[3 * 2] = {1, 2, 3, 6, 5, 10};
    double mean[2], cov[4];
    cr_assert_eq(eb_feature_stats(mean, cov, x, 3, 2), EB_OK, "%s", eb_last_error());
    const double want_mean[2] = {3, 6}, want_cov[4] = {4, 8, 8, 16};
    for (int i = 0; i < 2; i++) cr_assert_float_eq(mean[i], want_mean[i], 1e-14);
    for (int i = 0; i < 4; i++) cr_assert_float_eq(cov[i], want_cov[i], 1e-13);
}

/* More rows than one centring block, against a plain two-pass loop. */
Test(metrics, feature_stats_blocked_matches_naive) {
    enum { N = 700, D = 5 };
    float *x = normal_floats((size_t)N * D, 1);
    for (int i = 0; i < N; i++) x[i * D + 2] += 0.5f * x[i * D] + 3.0f; /* correlation and an offset */
    double mean[D], cov[D * D];
    cr_assert_eq(eb_feature_stats(mean, cov, x, N, D), EB_OK, "%s", eb_last_error());
    for (int a = 0; a < D; a++) {
        double m = 0;
        for (int i = 0; i < N; i++) m += x[i * D + a];
        m /= N;
        cr_assert_float_eq(mean[a], m, 1e-12);
    }
    for (int a = 0; a < D; a++)
        for (int b = 0; b < D; b++) {
            double s = 0;
            for (int i = 0; i < N; i++) s += (x[i * D + a] - mean[a]) * (x[i * D + b] - mean[b]);
            cr_assert_float_eq(cov[a * D + b], s / (N - 1), 1e-12, "cov[%d, %d]", a, b);
        }
    cr_assert(fabs(cov[0 * D + 2] - 0.5) < 0.15, "the planted correlation shows: %g", cov[2]);
    free(x);
}

Test(metrics, frechet_identical_sets_is_zero) {
    enum { N = 2000, D = 8 };
    float *x = normal_floats((size_t)N * D, 2);
    for (int i = 0; i < N; i++)
        for (int j = 1; j < D; j++) x[i * D + j] += 0.8f * x[i * D + j - 1];
    double mean[D], cov[D * D], fd;
    cr_assert_eq(eb_feature_stats(mean, cov, x, N, D), EB_OK);
    cr_assert_eq(eb_frechet_distance(&fd, mean, cov, mean, cov, D), EB_OK, "%s", eb_last_error());
    cr_assert(fabs(fd) <= 1e-9 * trace(cov, D), "fd %g, tr %g", fd, trace(cov, D));
    free(x);
}

/* ‖μ1 − μ2‖² + Σ (√a − √b)²: the FD of covariances sharing an eigenbasis. */
static double commuting_fd(const double *mu1, const double *a, const double *mu2, const double *b, int D) {
    double fd = 0;
    for (int i = 0; i < D; i++) {
        double dmu = mu1[i] - mu2[i], droot = sqrt(a[i]) - sqrt(b[i]);
        fd += dmu * dmu + droot * droot;
    }
    return fd;
}

/* out = Q diag(d) Qᵀ (D × D, row-major). */
static void rotate_diagonal(double *out, const double *q, const double *d, int D) {
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++) {
            double sum = 0;
            for (int k = 0; k < D; k++) sum += q[i * D + k] * d[k] * q[j * D + k];
            out[i * D + j] = sum;
        }
}

/* Commuting covariances, diagonal and then both rotated by the same orthogonal
 * Q (a product of Givens rotations; Σ ← Q diag Qᵀ keeps the spectra paired).
 * A zero eigenvalue rotated comes back as δ ≈ ε‖Σ1 Σ2‖ of either sign, and
 * its root as √δ ≈ 1e-7: that case gets a √ε tolerance, the others 1e-11. */
Test(metrics, frechet_commuting_closed_form) {
    enum { D = 5 };
    const double a[D] = {1.0, 4.0, 0.25, 9.0, 2.0}, mu1[D] = {0, 1, 2, 3, 4}, mu2[D] = {0.5, 1, 1, 3, 6};
    const double spectra[2][D] = {{4.0, 1.0, 0.25, 0.5, 0.3}, {4.0, 1.0, 0.25, 0.5, 0.0}};
    double identity[D * D] = {0}, q[D * D] = {0}, s1[D * D], r1[D * D];
    for (int i = 0; i < D; i++) identity[i * D + i] = q[i * D + i] = 1;
    for (int p = 0; p + 1 < D; p++) {
        double c = cos(0.3 + p), s = sin(0.3 + p);
        for (int r = 0; r < D; r++) {
            double x = q[r * D + p], y = q[r * D + p + 1];
            q[r * D + p] = c * x - s * y, q[r * D + p + 1] = s * x + c * y;
        }
    }
    rotate_diagonal(s1, identity, a, D);
    rotate_diagonal(r1, q, a, D);
    for (int v = 0; v < 2; v++) {
        const double *b = spectra[v];
        const double want = commuting_fd(mu1, a, mu2, b, D), rotated_tol = v ? 1e-6 : 1e-11 * want;
        double s2[D * D], r2[D * D], fd;
        rotate_diagonal(s2, identity, b, D);
        cr_assert_eq(eb_frechet_distance(&fd, mu1, s1, mu2, s2, D), EB_OK, "%s", eb_last_error());
        cr_assert_float_eq(fd, want, 1e-12 * want, "diagonal %d: %.15g vs %.15g", v, fd, want);
        rotate_diagonal(r2, q, b, D);
        cr_assert_eq(eb_frechet_distance(&fd, mu1, r1, mu2, r2, D), EB_OK, "%s", eb_last_error());
        cr_assert_float_eq(fd, want, rotated_tol, "rotated %d: %.15g vs %.15g", v, fd, want);
    }
}

/* Non-commuting 2 × 2, by hand: for a 2 × 2 PSD M, tr √M = √(tr M + 2 √det M),
 * with tr M = tr(Σ1 Σ2) and det M = det Σ1 · det Σ2. */
Test(metrics, frechet_non_commuting_2x2) {
    const double s1[4] = {2, 1, 1, 2}, s2[4] = {1, 0, 0, 4}, mu[2] = {0, 0};
    /* Σ1 Σ2 = [[2, 4], [1, 8]] ≠ Σ2 Σ1; tr 10, det Σ1 det Σ2 = 12. */
    double want = 4 + 5 - 2 * sqrt(10 + 2 * sqrt(12.0)), fd;
    cr_assert_eq(eb_frechet_distance(&fd, mu, s1, mu, s2, 2), EB_OK, "%s", eb_last_error());
    cr_assert_float_eq(fd, want, 1e-13, "%.17g vs %.17g", fd, want);
}

/* The numpy value comes from the eigenvalues of the non-symmetric Σ1 Σ2. A
 * singular Σ1 limits any route to ~√ε relative (see metrics_ref.py). */
static void check_frechet_golden(const char *group, double rel_tol) {
    eb_h5 *f;
    cr_assert_eq(eb_h5_open(&f, GOLDEN), EB_OK, "%s", eb_last_error());
    char name[64];
    double *mu1, *mu2, *s1, *s2, *value;
    int64_t dims[2];
    const int64_t vec[1] = {6}, mat[2] = {6, 6};
    snprintf(name, sizeof name, "%s/mu1", group);
    cr_assert_eq(eb_h5_read_f64(f, name, 1, vec, &mu1, dims, EB_H5_FINITE), EB_OK, "%s", eb_last_error());
    snprintf(name, sizeof name, "%s/mu2", group);
    cr_assert_eq(eb_h5_read_f64(f, name, 1, vec, &mu2, dims, EB_H5_FINITE), EB_OK, "%s", eb_last_error());
    snprintf(name, sizeof name, "%s/cov1", group);
    cr_assert_eq(eb_h5_read_f64(f, name, 2, mat, &s1, dims, EB_H5_FINITE), EB_OK, "%s", eb_last_error());
    snprintf(name, sizeof name, "%s/cov2", group);
    cr_assert_eq(eb_h5_read_f64(f, name, 2, mat, &s2, dims, EB_H5_FINITE), EB_OK, "%s", eb_last_error());
    snprintf(name, sizeof name, "%s/value", group);
    cr_assert_eq(eb_h5_read_f64(f, name, 0, NULL, &value, dims, EB_H5_FINITE), EB_OK, "%s", eb_last_error());
    eb_h5_close(f);

    double fd12, fd21, scale = trace(s1, 6) + trace(s2, 6);
    cr_assert_eq(eb_frechet_distance(&fd12, mu1, s1, mu2, s2, 6), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_frechet_distance(&fd21, mu2, s2, mu1, s1, 6), EB_OK, "%s", eb_last_error());
    cr_assert(fabs(fd12 - *value) <= rel_tol * scale, "%s: %.15g vs numpy %.15g", group, fd12, *value);
    cr_assert(fabs(fd21 - *value) <= rel_tol * scale, "%s swapped: %.15g vs numpy %.15g", group, fd21, *value);
    /* the two terms, each against numpy's, and their sum is the distance */
    double mean_term, cov_term, *want_mean, *want_cov;
    cr_assert_eq(eb_h5_open(&f, GOLDEN), EB_OK, "%s", eb_last_error());
    snprintf(name, sizeof name, "%s/mean_term", group);
    cr_assert_eq(eb_h5_read_f64(f, name, 0, NULL, &want_mean, dims, EB_H5_FINITE), EB_OK, "%s", eb_last_error());
    snprintf(name, sizeof name, "%s/cov_term", group);
    cr_assert_eq(eb_h5_read_f64(f, name, 0, NULL, &want_cov, dims, EB_H5_FINITE), EB_OK, "%s", eb_last_error());
    eb_h5_close(f);
    cr_assert_eq(eb_frechet_terms(&mean_term, &cov_term, mu1, s1, mu2, s2, 6), EB_OK, "%s", eb_last_error());
    cr_assert(fabs(mean_term - *want_mean) <= 1e-12 * *want_mean, "%s mean term %.15g vs %.15g", group, mean_term,
              *want_mean);
    cr_assert(fabs(cov_term - *want_cov) <= rel_tol * scale, "%s cov term %.15g vs %.15g", group, cov_term, *want_cov);
    cr_assert_eq(mean_term + cov_term, fd12);
    cr_assert(*want_mean > 0.1 * *value && *want_cov > 0.1 * *value, "both terms matter: %g %g", *want_mean, *want_cov);
    free(mu1), free(mu2), free(s1), free(s2), free(value), free(want_mean), free(want_cov);
}

Test(metrics, frechet_golden_full_rank) { check_frechet_golden("fd/full", 1e-10); }
Test(metrics, frechet_golden_singular) { check_frechet_golden("fd/singular", 1e-6); }

/* Principal components of rows with known axes: variances 9, 4, 1 along e2, e0, e1. */
Test(metrics, pca_known_axes) {
    enum { N = 4000, D = 3 };
    float *x = normal_floats((size_t)N * D, 7);
    const float scale[D] = {2, 1, 3};
    for (int i = 0; i < N; i++)
        for (int j = 0; j < D; j++) x[i * D + j] = scale[j] * x[i * D + j] + 5.0f;
    double mean[D], comp[2 * D];
    cr_assert_eq(eb_pca_fit(mean, comp, x, N, D, 2), EB_OK, "%s", eb_last_error());
    for (int j = 0; j < D; j++) cr_assert(fabs(mean[j] - 5.0) < 0.2, "mean[%d] %g", j, mean[j]);
    /* largest first, signed with the largest entry positive */
    cr_assert(comp[2] > 0.99 && fabs(comp[0]) < 0.05 && fabs(comp[1]) < 0.05, "first %g %g %g", comp[0], comp[1], comp[2]);
    cr_assert(comp[3] > 0.99 && fabs(comp[4]) < 0.05 && fabs(comp[5]) < 0.05, "second %g %g %g", comp[3], comp[4], comp[5]);
    float y[2 * 2];
    const float two_rows[2 * D] = {5, 5, 8, 7, 5, 5};
    cr_assert_eq(eb_pca_project(y, two_rows, 2, D, mean, comp, 2), EB_OK, "%s", eb_last_error());
    cr_assert(fabs(y[0] - 3.0) < 0.2 && fabs(y[3] - 2.0) < 0.2, "projections %g %g", y[0], y[3]);
    cr_assert_eq(eb_pca_fit(mean, comp, x, N, D, 4), EB_EINPUT);
    free(x);
}

/* The pixel judge end to end (fit on real, project both, FD and its terms) against numpy's SVD route. */
Test(metrics, pca_frechet_golden) {
    eb_h5 *f;
    cr_assert_eq(eb_h5_open(&f, GOLDEN), EB_OK, "%s", eb_last_error());
    float *real, *fake;
    double *value, *want_mean, *want_cov, *k_value;
    int64_t rd[2], fdims[2], d0[1];
    const int64_t any2[2] = {EB_H5_ANY, EB_H5_ANY};
    cr_assert_eq(eb_h5_read_f32(f, "pca_fd/real", 2, any2, &real, rd, EB_H5_FINITE), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_h5_read_f32(f, "pca_fd/fake", 2, any2, &fake, fdims, EB_H5_FINITE), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_h5_read_f64(f, "pca_fd/value", 0, NULL, &value, d0, EB_H5_FINITE), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_h5_read_f64(f, "pca_fd/mean_term", 0, NULL, &want_mean, d0, EB_H5_FINITE), EB_OK);
    cr_assert_eq(eb_h5_read_f64(f, "pca_fd/cov_term", 0, NULL, &want_cov, d0, EB_H5_FINITE), EB_OK);
    cr_assert_eq(eb_h5_read_f64(f, "pca_fd/k", 0, NULL, &k_value, d0, EB_H5_FINITE), EB_OK, "%s", eb_last_error());
    eb_h5_close(f);
    const int nr = (int)rd[0], nf = (int)fdims[0], D = (int)rd[1], K = (int)*k_value;
    double *mean = malloc(D * sizeof *mean), *comp = malloc((size_t)K * D * sizeof *comp);
    float *pr = malloc((size_t)nr * K * sizeof *pr), *pf = malloc((size_t)nf * K * sizeof *pf);
    double mr[16], cr_[256], mf[16], cf[256], mean_term, cov_term;
    cr_assert(K <= 16);
    cr_assert_eq(eb_pca_fit(mean, comp, real, nr, D, K), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_pca_project(pr, real, nr, D, mean, comp, K), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_pca_project(pf, fake, nf, D, mean, comp, K), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_feature_stats(mr, cr_, pr, nr, K), EB_OK);
    cr_assert_eq(eb_feature_stats(mf, cf, pf, nf, K), EB_OK);
    cr_assert_eq(eb_frechet_terms(&mean_term, &cov_term, mf, cf, mr, cr_, K), EB_OK, "%s", eb_last_error());
    /* float32 projections on both sides: the tolerance is fp32's */
    cr_assert(fabs(mean_term - *want_mean) <= 1e-5 * *value, "mean term %.10g vs numpy %.10g", mean_term, *want_mean);
    cr_assert(fabs(cov_term - *want_cov) <= 1e-5 * *value, "cov term %.10g vs numpy %.10g", cov_term, *want_cov);
    free(real), free(fake), free(value), free(want_mean), free(want_cov), free(k_value);
    free(mean), free(comp), free(pr), free(pf);
}

/* Statistics and FD are the same bits at one and two threads (OpenBLAS's
 * OpenMP build threads a call made outside a parallel region). */
Test(metrics, frechet_bits_do_not_depend_on_threads) {
    const int N = 3000, D = 128;
    float *x = normal_floats((size_t)N * D, 41), *y = normal_floats((size_t)N * D, 42);
    for (size_t i = 0; i < (size_t)N * D; i++) y[i] = 1.5f * y[i] + 0.25f * x[i];
    double fd[2], *mu = malloc(4 * D * sizeof *mu), *cov = malloc(4 * (size_t)D * D * sizeof *cov);
    cr_assert(mu && cov);
    const int saved = omp_get_max_threads();
    for (int t = 0; t < 2; t++) {
        omp_set_num_threads(t + 1);
        cr_assert_eq(eb_feature_stats(mu + 2 * t * D, cov + 2 * t * (size_t)D * D, x, N, D), EB_OK);
        cr_assert_eq(eb_feature_stats(mu + (2 * t + 1) * D, cov + (2 * t + 1) * (size_t)D * D, y, N, D), EB_OK);
        cr_assert_eq(eb_frechet_distance(&fd[t], mu + 2 * t * D, cov + 2 * t * (size_t)D * D, mu + (2 * t + 1) * D,
                                         cov + (2 * t + 1) * (size_t)D * D, D), EB_OK, "%s", eb_last_error());
    }
    omp_set_num_threads(saved);
    cr_expect_eq(memcmp(cov, cov + 2 * (size_t)D * D, 2 * (size_t)D * D * sizeof *cov), 0, "covariances differ");
    cr_expect_eq(fd[0], fd[1], "FD %.17g at 1 thread, %.17g at 2", fd[0], fd[1]);
    free(x), free(y), free(mu), free(cov);
}

Test(metrics, frechet_rejects_non_finite) {
    double s[4] = {1, 0, 0, 1}, bad[4] = {1, 0, 0, NAN}, mu[2] = {0, 0}, fd;
    cr_assert_eq(eb_frechet_distance(&fd, mu, s, mu, bad, 2), EB_EINPUT);
    cr_assert(strstr(eb_last_error(), "cov2") && strstr(eb_last_error(), "[1, 1]"), "%s", eb_last_error());
    float x[4] = {1, 2, INFINITY, 4};
    double m[2], c[4];
    cr_assert_eq(eb_feature_stats(m, c, x, 2, 2), EB_EINPUT);
    cr_assert(strstr(eb_last_error(), "[1, 0]"), "%s", eb_last_error());
    cr_assert_eq(eb_feature_stats(m, c, x, 1, 2), EB_EINPUT);
}

/* ------------------------------------------------------------------------ */
/* Precision / recall                                                        */

Test(metrics, precision_recall_identical_sets) {
    enum { N = 300, D = 4 };
    float *x = normal_floats((size_t)N * D, 3);
    double p, r;
    cr_assert_eq(eb_precision_recall(&p, &r, x, N, x, N, D, EB_PR_K), EB_OK, "%s", eb_last_error());
    cr_assert(p == 1.0 && r == 1.0, "p %g r %g", p, r);
    free(x);
}

Test(metrics, precision_recall_far_clusters) {
    enum { N = 200, D = 3 };
    float *real = normal_floats((size_t)N * D, 4), *fake = normal_floats((size_t)N * D, 5);
    for (int i = 0; i < N * D; i++) fake[i] += 1000.0f;
    double p, r;
    cr_assert_eq(eb_precision_recall(&p, &r, real, N, fake, N, D, EB_PR_K), EB_OK, "%s", eb_last_error());
    cr_assert(p == 0.0 && r == 0.0, "p %g r %g", p, r);
    free(real), free(fake);
}

/* 1-D, k = 3. Real {0, 1, 2, 3}: radii 3, 2, 2, 3 → balls cover [−3, 6].
 * Fake {5.5, 7, 8, 9.5}: radii 4, 2.5, 2.5, 4 → balls cover [1.5, 13.5].
 * Precision: only 5.5 (2.5 from 3) → 1/4. Recall: 2 and 3 → 2/4.
 * No point lies within 0.5 of a ball's edge. */
Test(metrics, precision_recall_hand_case) {
    const float real[4] = {0, 1, 2, 3}, fake[4] = {5.5f, 7, 8, 9.5f};
    double p, r;
    cr_assert_eq(eb_precision_recall(&p, &r, real, 4, fake, 4, 1, 3), EB_OK, "%s", eb_last_error());
    cr_assert(p == 0.25 && r == 0.5, "p %g r %g", p, r);
}

/* ‖x − y‖² by direct differences; x, y (D). */
static double direct_sq_dist(const float *x, const float *y, int D) {
    double s = 0;
    for (int c = 0; c < D; c++) s += ((double)x[c] - y[c]) * ((double)x[c] - y[c]);
    return s;
}

/* Brute force: the k-th nearest distance by direct differences and a scan. */
static void brute_radii(double *r2, const float *x, int n, int D, int k) {
    double *d = malloc((size_t)n * sizeof *d);
    for (int i = 0; i < n; i++) {
        int m = 0;
        for (int j = 0; j < n; j++) {
            if (j != i) d[m++] = direct_sq_dist(x + i * D, x + j * D, D);
        }
        for (int t = 0; t < k; t++) /* partial selection sort: d[t] = t-th smallest */
            for (int j = t + 1; j < m; j++)
                if (d[j] < d[t]) {
                    double tmp = d[t];
                    d[t] = d[j], d[j] = tmp;
                }
        r2[i] = d[k - 1];
    }
    free(d);
}

static double brute_coverage(const float *q, int nq, const float *ref, const double *r2, int nref, int D) {
    int inside = 0;
    for (int i = 0; i < nq; i++)
        for (int j = 0; j < nref; j++)
            if (direct_sq_dist(q + i * D, ref + j * D, D) <= r2[j]) {
                inside++;
                break;
            }
    return (double)inside / nq;
}

/* Sets larger than one distance tile, of unequal sizes, partly overlapping. */
Test(metrics, precision_recall_matches_brute_force) {
    enum { NR = 1100, NF = 700, D = 5 };
    float *real = normal_floats((size_t)NR * D, 6), *fake = normal_floats((size_t)NF * D, 7);
    for (int i = 0; i < NF; i++) fake[i * D] = 1.5f * fake[i * D] + 1.0f;
    double p, r, real_r2[NR], fake_r2[NF];
    cr_assert_eq(eb_precision_recall(&p, &r, real, NR, fake, NF, D, EB_PR_K), EB_OK, "%s", eb_last_error());
    brute_radii(real_r2, real, NR, D, EB_PR_K);
    brute_radii(fake_r2, fake, NF, D, EB_PR_K);
    double bp = brute_coverage(fake, NF, real, real_r2, NR, D), br = brute_coverage(real, NR, fake, fake_r2, NF, D);
    cr_assert(bp > 0.2 && bp < 0.95 && br > 0.2 && br < 0.95, "case not discriminating: %g %g", bp, br);
    cr_assert(fabs(p - bp) < 0.5 / NF, "precision %g vs brute force %g", p, bp);
    cr_assert(fabs(r - br) < 0.5 / NR, "recall %g vs brute force %g", r, br);
    free(real), free(fake);
}

Test(metrics, precision_recall_rejects_bad_input) {
    float x[8] = {0, 1, 2, 3, 4, 5, 6, 7}, y[8] = {0, 1, 2, 3, 4, NAN, 6, 7};
    double p, r;
    cr_assert_eq(eb_precision_recall(&p, &r, x, 3, x, 8, 1, 3), EB_EINPUT); /* n_real ≤ k */
    cr_assert_eq(eb_precision_recall(&p, &r, x, 8, y, 8, 1, 3), EB_EINPUT);
    cr_assert(strstr(eb_last_error(), "fake") && strstr(eb_last_error(), "[5, 0]"), "%s", eb_last_error());
}

/* ------------------------------------------------------------------------ */
/* Accuracy                                                                  */

Test(metrics, accuracy) {
    const float logits[4 * 3] = {0.1f, 2, 1, /* → 1 */ 5, 5, 1, /* tie → 0 */ -1, -2, -0.5f, /* → 2 */ 0, 0, 1};
    const int32_t labels[4] = {1, 0, 0, 2};
    double acc;
    cr_assert_eq(eb_accuracy(&acc, logits, labels, 4, 3), EB_OK, "%s", eb_last_error());
    cr_assert_float_eq(acc, 0.75, 1e-15);
    const int32_t bad[4] = {1, 0, 3, 2};
    cr_assert_eq(eb_accuracy(&acc, logits, bad, 4, 3), EB_EINPUT);
    cr_assert(strstr(eb_last_error(), "labels[2]"), "%s", eb_last_error());
}

/* ------------------------------------------------------------------------ */
/* PSNR and SSIM                                                             */

Test(metrics, psnr_identical_and_constant_offset) {
    enum { N = 2, C = 3, H = 5, W = 7, SZ = C * H * W };
    float a[N * SZ], b[N * SZ];
    for (int i = 0; i < N * SZ; i++) a[i] = (float)((i * 37 % 64) - 32) / 64.0f; /* exact in float */
    for (int i = 0; i < SZ; i++) b[i] = a[i];                                      /* image 0 identical */
    for (int i = SZ; i < N * SZ; i++) b[i] = a[i] + 0.125f;                        /* image 1 offset, exact */
    double per[N], mean;
    cr_assert_eq(eb_psnr(per, &mean, a, b, N, C, H, W, 2.0), EB_OK, "%s", eb_last_error());
    double want = 10 * log10(4.0 / (0.125 * 0.125));
    cr_assert(isinf(per[0]) && per[0] > 0, "identical: %g", per[0]);
    cr_assert_float_eq(per[1], want, 1e-12, "%.15g vs %.15g", per[1], want);
    cr_assert(isinf(mean) && mean > 0);
    cr_assert_eq(eb_psnr(NULL, &mean, a + SZ, b + SZ, 1, C, H, W, 2.0), EB_OK);
    cr_assert_float_eq(mean, want, 1e-12);
}

Test(metrics, ssim_identical_is_one) {
    enum { N = 2, C = 2, H = 14, W = 12 };
    float *a = normal_floats((size_t)N * C * H * W, 8);
    double per[N], mean;
    cr_assert_eq(eb_ssim(per, &mean, a, a, N, C, H, W, 2.0), EB_OK, "%s", eb_last_error());
    for (int n = 0; n < N; n++) cr_assert_float_eq(per[n], 1.0, 1e-12, "image %d: %.17g", n, per[n]);
    cr_assert_float_eq(mean, 1.0, 1e-12);
    free(a);
}

/* Constant images c and c + δ: every window has equal (zero) variances, so
 * SSIM is the luminance term (2c(c+δ) + C1) / (c² + (c+δ)² + C1). */
Test(metrics, ssim_constant_images_closed_form) {
    enum { H = 12, W = 15 };
    float a[H * W], b[H * W];
    for (int i = 0; i < H * W; i++) a[i] = 0.25f, b[i] = 0.5f;
    double c1 = 0.01 * 0.01, want = (2 * 0.25 * 0.5 + c1) / (0.0625 + 0.25 + c1), got;
    cr_assert_eq(eb_ssim(&got, NULL, a, b, 1, 1, H, W, 1.0), EB_OK, "%s", eb_last_error());
    cr_assert_float_eq(got, want, 1e-12, "%.15g vs %.15g", got, want);
}

static void check_image_golden(const char *group) {
    eb_h5 *f;
    cr_assert_eq(eb_h5_open(&f, GOLDEN), EB_OK, "%s", eb_last_error());
    char name[64];
    float *a, *b;
    double *ssim_ref, *psnr_ref, *range;
    int64_t dims[4], d1[1], d0[1];
    snprintf(name, sizeof name, "%s/a", group);
    cr_assert_eq(eb_h5_read_f32(f, name, 4, NULL, &a, dims, EB_H5_FINITE), EB_OK, "%s", eb_last_error());
    snprintf(name, sizeof name, "%s/b", group);
    cr_assert_eq(eb_h5_read_f32(f, name, 4, dims, &b, dims, EB_H5_FINITE), EB_OK, "%s", eb_last_error());
    snprintf(name, sizeof name, "%s/ssim", group);
    cr_assert_eq(eb_h5_read_f64(f, name, 1, dims, &ssim_ref, d1, EB_H5_FINITE), EB_OK, "%s", eb_last_error());
    snprintf(name, sizeof name, "%s/psnr", group);
    cr_assert_eq(eb_h5_read_f64(f, name, 1, dims, &psnr_ref, d1, EB_H5_FINITE), EB_OK, "%s", eb_last_error());
    snprintf(name, sizeof name, "%s/data_range", group);
    cr_assert_eq(eb_h5_read_f64(f, name, 0, NULL, &range, d0, EB_H5_FINITE), EB_OK, "%s", eb_last_error());
    eb_h5_close(f);

    int N = (int)dims[0], C = (int)dims[1], H = (int)dims[2], W = (int)dims[3];
    double *ab = malloc(N * sizeof *ab), *ba = malloc(N * sizeof *ba), *psnr = malloc(N * sizeof *psnr), mean;
    cr_assert_eq(eb_ssim(ab, &mean, a, b, N, C, H, W, *range), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_ssim(ba, NULL, b, a, N, C, H, W, *range), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_psnr(psnr, NULL, a, b, N, C, H, W, *range), EB_OK, "%s", eb_last_error());
    double sum = 0;
    for (int n = 0; n < N; n++) {
        cr_assert(ssim_ref[n] > 0.2 && ssim_ref[n] < 0.95, "golden not discriminating: %g", ssim_ref[n]);
        cr_assert_float_eq(ab[n], ssim_ref[n], 1e-10, "%s image %d: %.15g vs numpy %.15g", group, n, ab[n],
                           ssim_ref[n]);
        cr_assert_float_eq(ba[n], ab[n], 1e-14, "%s image %d not symmetric", group, n);
        cr_assert_float_eq(psnr[n], psnr_ref[n], 1e-10, "%s psnr %d", group, n);
        sum += ab[n];
    }
    cr_assert_float_eq(mean, sum / N, 1e-15);
    free(a), free(b), free(ssim_ref), free(psnr_ref), free(range), free(ab), free(ba), free(psnr);
}

Test(metrics, ssim_psnr_golden) { check_image_golden("ssim/full"); }
/* 6 × 9 images: the window is clipped to 6 × 9, one valid position. */
Test(metrics, ssim_psnr_golden_clipped_window) { check_image_golden("ssim/clipped"); }

Test(metrics, image_metrics_reject_bad_input) {
    float a[4] = {0, 0, 0, 0}, b[4] = {0, 0, NAN, 0};
    double v;
    cr_assert_eq(eb_ssim(&v, NULL, a, a, 1, 1, 2, 2, 0.0), EB_EINPUT);
    cr_assert_eq(eb_psnr(&v, NULL, a, a, 1, 1, 2, 2, -1.0), EB_EINPUT);
    cr_assert_eq(eb_ssim(&v, NULL, a, b, 1, 1, 2, 2, 1.0), EB_EINPUT);
    cr_assert(strstr(eb_last_error(), "b has NaN at [0, 0, 1, 0]"), "%s", eb_last_error());
}

/* Student's t interval by hand: s = √2.5, t(0.975, 4) = 2.776445105, half = t·s/√5. */
Test(metrics, mean_ci95_known_values) {
    const double x[5] = {1, 2, 3, 4, 5};
    double mean, half;
    cr_assert_eq(eb_mean_ci95(&mean, &half, x, 5), EB_OK);
    cr_assert_float_eq(mean, 3.0, 1e-15);
    cr_assert_float_eq(half, 2.776445105 * sqrt(2.5) / sqrt(5.0), 1e-8);
    const double two[2] = {1, 3}; /* t(0.975, 1) = 12.70620474, s = √2 */
    cr_assert_eq(eb_mean_ci95(&mean, &half, two, 2), EB_OK);
    cr_assert_float_eq(half, 12.70620474 * sqrt(2.0) / sqrt(2.0), 1e-6);
    cr_assert_eq(eb_mean_ci95(&mean, &half, x, 1), EB_OK);
    cr_assert(isnan(half));
    const double bad[2] = {1, NAN};
    cr_assert_eq(eb_mean_ci95(&mean, &half, bad, 2), EB_EINPUT);
    cr_assert(strstr(eb_last_error(), "value 1"));
    cr_assert_eq(eb_mean_ci95(&mean, &half, x, 0), EB_EINPUT);
}
