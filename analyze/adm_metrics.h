/* adm_metrics.h — the metrics of the ADM evaluator (openai/guided-diffusion
 * evaluations/evaluator.py), the numbers the DiT/ImageNet-256 literature
 * reports, with that evaluator's definitions:
 *
 *   FID, sFID   eb_feature_stats + eb_frechet_distance (metrics.h) on the pool
 *               (2048) and spatial (2023) features: float64 mean, covariance
 *               with N − 1, the symmetric square root. (The evaluator's float32
 *               mean and scipy's sqrtm of Σ1Σ2 agree to ~1e-7 relative.)
 *   IS          eb_adm_inception_score
 *   precision, recall   eb_adm_precision_recall (k = 3, fp16 distances first)
 *
 * Library code: no printing; inputs checked, EB_EINPUT naming the argument.
 */
#ifndef EB_ADM_METRICS_H
#define EB_ADM_METRICS_H

#include "runtime/ebcache.h"

#define EB_ADM_IS_SPLIT 5000  /* rows per Inception Score split          */
#define EB_ADM_PR_K 3         /* neighbourhood size of the manifolds     */
#define EB_ADM_PR_BATCH 10000 /* row and column batch of the distances   */

/* Inception Score of logits (N, K) (pool features · the softmax weights, no
 * bias): p = softmax of each row (rounded to float32, as the evaluator's
 * preds are); the rows split into consecutive parts of `split` rows, the last
 * one shorter when N is not a multiple; per part exp(mean_i KL(p_i ‖ mean p)),
 * with 0·log 0 = 0; *is = the plain mean over the parts. N ≥ 1, split ≥ 1. */
eb_status eb_adm_inception_score(double *is, const float *logits, int N, int K, int split);

/* Improved precision and recall as the evaluator's ManifoldEstimator computes
 * them: squared Euclidean distances max(‖u‖² − 2u·v + ‖v‖², 0) in blocks of
 * `batch` rows × `batch` columns (EB_ADM_PR_BATCH: its default); each block
 * first in fp16 (inputs, squares, norms, products and every sum rounded to
 * half; products accumulated in double before that rounding), and again in
 * fp32 when any of its entries is not finite. A row's radius is the
 * (k+1)-th smallest distance of its row in its own set, its own entry
 * included (so normally the k-th neighbour). precision = fraction of sample
 * rows within (≤) the radius of some reference row; recall = fraction of
 * reference rows within the radius of some sample row. ref (n_ref, D),
 * sample (n_sample, D), each with more than k rows. Memory: two blocks of
 * batch × D doubles and one of batch² floats (0.8 GB at the default). */
eb_status eb_adm_precision_recall(double *precision, double *recall, const float *ref, int n_ref, const float *sample,
                                  int n_sample, int D, int k, int batch);

#endif
