/* pipeline/features.h — the feature extractor behind every distribution
 * metric: images in, one feature vector (and optionally class logits) per
 * image out. The Fashion-MNIST classifier (train/classifier.h) is one
 * implementation; the FID Inception network is the next, behind the same
 * interface, so evaluation code never names a network. */
#ifndef EB_PIPELINE_FEATURES_H
#define EB_PIPELINE_FEATURES_H

#include "runtime/ebcache.h"

typedef struct eb_features eb_features;
struct eb_features {
    const char *name;   /* "fmnist-classifier", "inception-v3-fid", …                         */
    int channels, side; /* the images it takes: (N, channels, side', side') with side' ≥ side  */
                        /* (a larger side is centre-cropped to side, as eb_fmnist_load pads)  */
    int dim;            /* D, the features per image                                          */
    int classes;        /* K logits per image (0: none)                                       */
    char checksum[40];  /* identifies the weights: real-feature caches are keyed by it        */
    /* feat (N, D) and logits (N, K) (NULL: not wanted) of images (N, C, H, W) in [−1, 1]
     * (already cropped to side). EB_EINPUT naming the image index for a non-finite pixel. */
    eb_status (*extract)(eb_features *fx, float *feat, float *logits, const float *images, int N);
    void (*free)(eb_features *fx);
    void *impl;
};

/* The Fashion-MNIST classifier of `path` (.safetensors) as an extractor:
 * 28×28 single-channel images, its penultimate features and 10 logits. */
eb_status eb_features_open_fmnist(eb_features **out, const char *path);

/* fx->extract(...), then fx->free(fx) (NULL is fine). */
eb_status eb_features_extract(eb_features *fx, float *feat, float *logits, const float *images, int N);
void eb_features_free(eb_features *fx);

#endif
