/* pipeline/evaluation.h — `eval` as a library call (docs/metrics.md): sample
 * quality through a feature extractor (pipeline/features.h): Fréchet distance
 * (with its mean and covariance terms) and k-NN precision/recall against a
 * real split, the same FD in the top principal components of the real
 * pixels (a second judge that needs no network), class accuracy of
 * conditional samples, PSNR/SSIM against reference (uncached) samples; or
 * the real-data floor (training images against the test set). */
#ifndef EB_PIPELINE_EVALUATION_H
#define EB_PIPELINE_EVALUATION_H

#include "pipeline/features.h"

#include <stdint.h>

typedef struct {
    const char *samples;        /* S.h5, or shards "a.h5,b.h5" concatenated in order (required unless floor) */
    const char *dataset;        /* of the samples and the reference ("samples")                               */
    const char *labels_dataset; /* labels of the samples: NULL = "y" when the first file has it; "none"      */
    const char *reference;      /* uncached samples of the same seeds (and shards) for PSNR/SSIM (NULL)      */
    const char *classifier;     /* Fashion-MNIST classifier weights (required)                               */
    const char *real_split;     /* "test" or "train" ("test")                                                */
    int n_real;                 /* the first n_real images of the split (10000)                               */
    const char *real_cache;     /* cache of the real features and pixel judge, reused while extractor,
                                   split and n_real match (NULL: none)                                       */
    const char *fmnist_dir;     /* Fashion-MNIST files (NULL: $EBCACHE_FMNIST_DIR or the default place)      */
    int floor;                  /* 1: the first n_real training images against the test set                   */
    const char *output;         /* METRICS.h5: the numbers as attributes, feature statistics, per-image
                                   PSNR/SSIM (NULL: nothing written)                                         */
} eb_eval_params;

void eb_eval_params_defaults(eb_eval_params *p);

/* What one evaluation measured; NaN marks a metric that was not computed. */
typedef struct {
    int n_samples, n_real, D, k; /* k: the precision/recall neighbours (EB_PR_K)            */
    double fd, fd_mean, fd_cov;  /* FD of the features = ‖μ1 − μ2‖² term + covariance term  */
    int pixel_k;                 /* the pixel judge's principal components                  */
    double pixel_fd, pixel_fd_mean, pixel_fd_cov;
    double precision, recall;
    double accuracy;             /* of the samples' labels (NaN without labels)             */
    double real_accuracy;        /* of the classifier on the real images                    */
    double psnr, ssim;           /* means against the reference (NaN without one)           */
    char samples[512], labels[64], extractor[64]; /* what was evaluated: names for reports  */
} eb_eval_result;

/* Reads every input first (bad input is reported before any long
 * computation), then measures and writes p->output atomically. */
eb_status eb_evaluate(const eb_eval_params *p, eb_eval_result *r);

#endif
