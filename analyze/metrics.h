/* metrics.h — sample-quality metrics, all accumulated in double.
 *
 *   Feature statistics and the Fréchet distance (FID on a classifier's features)
 *   principal components (the pixel-space judge of docs/metrics.md)
 *   k-NN precision / recall (Kynkäänniemi et al. 2019)
 *   classification accuracy, PSNR and SSIM (Wang et al. 2004)
 *
 * Inputs are checked: sizes, ranges and finite values (EB_EINPUT naming the
 * argument and the index of the first bad element).
 */
#ifndef EB_METRICS_H
#define EB_METRICS_H

#include <stdint.h>

#include "runtime/ebcache.h"

#define EB_PR_K 3           /* neighbourhood size of the precision/recall manifold */
#define EB_SSIM_WIN 11      /* Gaussian window side                              */
#define EB_SSIM_SIGMA 1.5
#define EB_SSIM_K1 0.01
#define EB_SSIM_K2 0.03

/* mean (D) and unbiased covariance cov (D, D) (divisor N − 1) of the rows of
 * x (N, D); N ≥ 2. */
eb_status eb_feature_stats(double *mean, double *cov, const float *x, int N, int D);

/* Fréchet distance between N(mu1, cov1) and N(mu2, cov2); mu (D), cov (D, D):
 *   ‖μ1 − μ2‖² + tr Σ1 + tr Σ2 − 2 tr (Σ1^½ Σ2 Σ1^½)^½.
 * Only the symmetric part of each covariance is used. Round-off can leave a
 * result of either sign of order 1e-12 · (tr Σ1 + tr Σ2) for equal inputs. */
eb_status eb_frechet_distance(double *fd, const double *mu1, const double *cov1, const double *mu2,
                              const double *cov2, int D);

/* The two terms of that distance: mean_term = ‖μ1 − μ2‖² (where the centres
 * differ) and cov_term = tr Σ1 + tr Σ2 − 2 tr (Σ1^½ Σ2 Σ1^½)^½ (where the
 * spreads differ); eb_frechet_distance is their sum. Same checks. */
eb_status eb_frechet_terms(double *mean_term, double *cov_term, const double *mu1, const double *cov1,
                           const double *mu2, const double *cov2, int D);

/* eb_frechet_terms where side k may come with the rows xk (nk, D) its mean and covariance were
 * computed from (eb_feature_stats; NULL: none): when the side with fewer rows has at most D of
 * them, tr (Σ1^½ Σ2 Σ1^½)^½ comes from an nk × nk eigenproblem (exact, much cheaper than the
 * D × D one, and without its round-off on small sets); else eb_frechet_terms. */
eb_status eb_frechet_terms_rows(double *mean_term, double *cov_term, const float *x1, int n1, const double *mu1,
                                const double *cov1, const float *x2, int n2, const double *mu2, const double *cov2,
                                int D);

/* Principal components of the rows of x (N, D), N ≥ 2: mean (D) and the K
 * unit eigenvectors of the unbiased covariance with the largest eigenvalues,
 * as the rows of components (K, D), largest first, each signed so that its
 * largest-magnitude entry is positive. 1 ≤ K ≤ D. */
eb_status eb_pca_fit(double *mean, double *components, const float *x, int N, int D, int K);

/* out (N, K) = (x (N, D) − mean) · componentsᵀ, summed in double. */
eb_status eb_pca_project(float *out, const float *x, int N, int D, const double *mean, const double *components,
                         int K);

/* Improved precision and recall with the k-NN manifold: a sample's radius is
 * the distance to its k-th nearest neighbour in its own set (itself excluded);
 * precision = fraction of fake samples within (≤) the radius of some real
 * sample, recall = fraction of real samples within the radius of some fake
 * one. real (n_real, D), fake (n_fake, D); each set needs more than k rows.
 * Memory stays bounded (distance tiles), whatever the set sizes. */
eb_status eb_precision_recall(double *precision, double *recall, const float *real, int n_real, const float *fake,
                              int n_fake, int D, int k);

/* Fraction of rows whose argmax over logits (N, K) (first maximum on ties)
 * equals labels (N) in 0..K−1. */
eb_status eb_accuracy(double *accuracy, const float *logits, const int32_t *labels, int N, int K);

/* Per-image PSNR = 10 log10(L² / MSE) over all C·H·W values of a and b
 * (N, C, H, W), L = data_range > 0. Identical images give +INFINITY, and then
 * so does the mean. per_image (N) and mean may each be NULL. */
eb_status eb_psnr(double *per_image, double *mean, const float *a, const float *b, int N, int C, int H, int W,
                  double data_range);

/* Per-image SSIM of a and b (N, C, H, W) as Wang et al. 2004: a normalized
 * 11 × 11 Gaussian window (σ = 1.5), C1 = (K1·L)², C2 = (K2·L)², population
 * (weighted) moments, the SSIM map over the valid region (no padding)
 * averaged per channel, then over channels. A side shorter than 11 clips the
 * window to that side (a Gaussian of the same σ centred on the shorter
 * window), leaving one valid position along it. Symmetric in a and b.
 * per_image (N) and mean may each be NULL. */
eb_status eb_ssim(double *per_image, double *mean, const float *a, const float *b, int N, int C, int H, int W,
                  double data_range);

/* Mean of x (n ≥ 1) and the half-width of its two-sided 95% confidence
 * interval, t_{0.975, n−1} · s / √n with s the sample standard deviation
 * (Student's t; NaN for n = 1). Non-finite values are an input error. */
eb_status eb_mean_ci95(double *mean, double *half, const double *x, int n);

#endif
