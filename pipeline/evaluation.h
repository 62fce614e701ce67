/* pipeline/evaluation.h — `eval` as a library call (docs/metrics.md): sample
 * quality through a feature extractor (pipeline/features.h): Fréchet distance
 * (with its mean and covariance terms) and k-NN precision/recall against a
 * real split, the same FD in the top principal components of the real
 * pixels (a second judge that needs no network), class accuracy of
 * conditional samples, PSNR/SSIM against reference (uncached) samples; or
 * the real-data floor (training images against the test set). Or the
 * ImageNet judge: the ADM evaluator's FID, sFID, Inception Score and
 * precision/recall of .npz samples against a reference batch through the
 * FID Inception network (pipeline/features_inception.h), on one process or
 * sharded over the ranks of a comm (pipeline/evaluation_imagenet.c). */
#ifndef EB_PIPELINE_EVALUATION_H
#define EB_PIPELINE_EVALUATION_H

#include "pipeline/features.h"
#include "runtime/comm.h"

#include <stdint.h>

typedef struct {
    const char *samples;        /* S.h5, or shards "a.h5,b.h5" concatenated in order (required unless floor) */
    const char *dataset;        /* of the samples and the reference ("samples"; NULL: the same)               */
    const char *labels_dataset; /* labels of the samples: NULL = "y" when the first file has it; "none"      */
    const char *reference;      /* uncached samples of the same seeds (and shards) for PSNR/SSIM (NULL)      */
    const char *classifier;     /* Fashion-MNIST classifier weights (required unless features is given)      */
    eb_features *features;      /* the extractor to judge with (NULL: the classifier above, opened and freed
                                   by the call); borrowed, not freed. It must take 1×28×28 images and give
                                   0 or 10 logits (the real reference is Fashion-MNIST)                      */
    const char *real_split;     /* "test" or "train" ("test"; NULL: the same)                                */
    int n_real;                 /* the first n_real images of the split, at least EB_PR_K + 1 (10000)         */
    const char *real_cache;     /* cache of the real features and pixel judge, reused while extractor,
                                   split and n_real match (NULL: none)                                       */
    const char *fmnist_dir;     /* Fashion-MNIST files (NULL: $EBCACHE_FMNIST_DIR or the default place)      */
    int floor;                  /* 1: the first n_real training images against the test set (then samples,
                                   reference and labels_dataset must be NULL and real_split test)            */
    const char *output;         /* METRICS.h5: the numbers as attributes, feature statistics, per-image
                                   PSNR/SSIM (NULL: nothing written)                                         */
    /* The ImageNet judge (docs/metrics.md, "ImageNet"): the ADM evaluator's FID, sFID, IS and
       precision/recall. Selected by `inception`; then samples is an .npz (or shards "a.npz,b.npz"
       scored as one set) whose arr_0 is (N, H, W, 3) uint8 RGB as DiT's sample_ddp.py and
       `ebcache decode` write it, real_cache caches the reference batch's activations (keyed by
       the weights' checksum, the reference's arr_0 CRC-32 and its image shape), and dataset,
       labels_dataset, reference, classifier, features, real_split, n_real, fmnist_dir and floor
       must keep their defaults. The Fashion-MNIST judge runs as one process (comm of one rank). */
    const char *inception;       /* FID Inception weights (.safetensors, docs/inception.md) (NULL: Fashion-MNIST) */
    const char *reference_batch; /* the ADM reference .npz: arr_0 (uint8 images), and mu, sigma, mu_s, sigma_s
                                    when present (used for FID/sFID as the evaluator does)                       */
    int batch;                   /* images per Inception batch (EB_INCEPTION_CHUNK)                               */
    const eb_device *device;     /* where the Inception network runs (NULL: the CPU)                              */
    const eb_comm *comm;         /* the ranks sharing the images (NULL: one process); every rank gets the same
                                    result, rank 0 writes output and the cache                                    */
    int progress;                /* 1: the feature loops' progress line on stderr when it is a terminal (0)      */
} eb_eval_params;

/* The defaults in the comments above; every pointer not named there NULL. */
void eb_eval_params_defaults(eb_eval_params *p);

/* What one evaluation measured; NaN marks a metric that was not computed. */
typedef struct {
    int n_samples, n_real, D, k; /* k: the precision/recall neighbours (EB_PR_K; EB_ADM_PR_K for
                                    ImageNet); n_real: the reference images (ImageNet: arr_0's N) */
    double fd, fd_mean, fd_cov;  /* FD of the features = ‖μ1 − μ2‖² term + covariance term
                                    (ImageNet: FID, from the pool features)                  */
    double sfid;                 /* ImageNet: FID of the spatial features (NaN otherwise)    */
    double inception_score;      /* ImageNet: IS (NaN without an fc layer, and otherwise)    */
    int pixel_k;                 /* the pixel judge's principal components                  */
    double pixel_fd, pixel_fd_mean, pixel_fd_cov;
    double precision, recall;
    double accuracy;             /* of the samples' labels (NaN without labels or logits)   */
    double real_accuracy;        /* of the extractor's logits on the real images (NaN: none) */
    double psnr, ssim;           /* means against the reference (NaN without one; PSNR of
                                    identical images is +inf)                               */
    /* What was evaluated, for reports: p->samples or "Fashion-MNIST train" (floor); the
     * labels dataset used ("y", p->labels_dataset, "train labels") or NULL for none;
     * valid while p's strings are. extractor: the extractor's name. */
    const char *samples, *labels;
    char extractor[64];
} eb_eval_result;

/* Reads every input first (bad input is reported before any long
 * computation), then measures and writes p->output atomically (a temporary
 * file renamed: nothing is left on failure). EB_EINPUT naming the file,
 * dataset and index (or the parameter) for bad input; EB_ERUNTIME otherwise.
 * Every sample pixel is clipped to [−1, 1] first. *r is filled on success. */
eb_status eb_evaluate(const eb_eval_params *p, eb_eval_result *r);

/* One named number or string of an evaluation's report. */
typedef enum { EB_FIELD_TEXT, EB_FIELD_INT, EB_FIELD_REAL } eb_eval_field_kind;
typedef struct {
    const char *key;         /* the name in metrics.h5's attributes and in `eval --json` */
    eb_eval_field_kind kind;
    const char *text;        /* EB_FIELD_TEXT                                           */
    double value;            /* EB_FIELD_INT (exact) and EB_FIELD_REAL (NaN: not computed) */
} eb_eval_field;

#define EB_EVAL_FIELDS 23

/* The report of evaluation (p, r) as fields in a fixed order (what was
 * evaluated, then the counts and the metrics), the strings that do not
 * apply (NULL) left out: the one list p->output's attributes and the CLI's
 * JSON are written from. Returns the count filled into out. */
int eb_eval_fields(const eb_eval_params *p, const eb_eval_result *r, eb_eval_field out[EB_EVAL_FIELDS]);

/* ------------------------------------------------------------------------ */
/* The ImageNet judge's numbers from activations                             */

/* The Inception activations of n images (any widths: the network gives 2048, 2023 and 1008). */
typedef struct {
    int n, pool_dim, spatial_dim, classes;
    const float *pool;    /* (n, pool_dim): FID's and precision/recall's features          */
    const float *spatial; /* (n, spatial_dim): sFID's                                       */
    const float *logits;  /* (n, classes): the Inception Score's softmax input, or NULL (0) */
} eb_adm_activations;

/* FID statistics as an ADM reference batch stores them (float64, malloc'd). */
typedef struct {
    double *mu, *sigma;     /* (pool_dim), (pool_dim, pool_dim)          */
    double *mu_s, *sigma_s; /* (spatial_dim), (spatial_dim, spatial_dim) */
} eb_adm_stats;

void eb_adm_stats_free(eb_adm_stats *s);

/* The ADM evaluator's numbers of samples against a reference batch, into r: fd = FID (with its
 * terms fd_mean, fd_cov) and sfid from the samples' statistics (eb_feature_stats: float64 mean,
 * covariance with n − 1) against ref_stats, or, when ref_stats is NULL, against the statistics of
 * ref's activations; inception_score (eb_adm_inception_score, splits of EB_ADM_IS_SPLIT) of the
 * samples' logits (NaN without); precision and recall (eb_adm_precision_recall, k = EB_ADM_PR_K)
 * of the pool activations of ref against the samples'; n_samples, n_real (ref->n), D, k. Every
 * other number of r is left alone. The Fréchet distances are eb_frechet_terms' exactly, but when
 * a side given by rows has no more rows than dimensions (a rank-deficient covariance A·Aᵀ, A the
 * centred rows over √(n − 1)), the trace of the root comes from the n × n matrix A·Σ·Aᵀ, whose
 * eigenvalues are the non-zero ones of Σ_A^½ Σ Σ_A^½ (those within round-off of 0 taken as 0): the
 * same number without a D × D eigensolver, and without the square roots of its round-off.
 * sample_stats (may be NULL) receives the samples' statistics (freed with eb_adm_stats_free).
 * EB_EINPUT for mismatched widths, too few rows (each set needs more than EB_ADM_PR_K) or
 * non-finite values, named. */
eb_status eb_adm_scores(eb_eval_result *r, eb_adm_stats *sample_stats, const eb_adm_activations *sample,
                        const eb_adm_activations *ref, const eb_adm_stats *ref_stats);

#endif
