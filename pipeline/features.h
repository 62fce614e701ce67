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
     * (already cropped to side). EB_EINPUT naming the image index for a non-finite pixel.
     * Call it through eb_features_extract, which checks what comes out. */
    eb_status (*extract)(eb_features *fx, float *feat, float *logits, const float *images, int N);
    void (*free)(eb_features *fx);
    void *impl;
};

/* The Fashion-MNIST classifier of `path` (.safetensors, eb_clf_load) as an
 * extractor "fmnist-classifier": single-channel images of its side (28),
 * its penultimate features (D = its width) and its K logits; checksum is
 * eb_clf_checksum as %016llx (the string real-feature caches have always
 * been keyed by). *out is NULL on failure (the message names the file). */
eb_status eb_features_open_fmnist(eb_features **out, const char *path);

/* fx->extract(fx, feat, logits, images, N) for N ≥ 0 images, then checks
 * that every feature and logit is finite: EB_ERUNTIME naming the extractor,
 * the image and the value otherwise. */
eb_status eb_features_extract(eb_features *fx, float *feat, float *logits, const float *images, int N);

/* fx->free(fx); NULL is fine. */
void eb_features_free(eb_features *fx);

#endif
