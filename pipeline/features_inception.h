/* pipeline/features_inception.h — the FID Inception network (analyze/inception.h) behind the
 * feature-extractor interface (pipeline/features.h), so the evaluation scores ImageNet samples
 * with the same code that scores Fashion-MNIST ones. */
#ifndef EB_PIPELINE_FEATURES_INCEPTION_H
#define EB_PIPELINE_FEATURES_INCEPTION_H

#include "analyze/inception.h"
#include "pipeline/features.h"

/* The Inception weights at `path` (.safetensors, docs/inception.md) on dev (NULL: the CPU) as an
 * extractor of RGB images of side×side pixels (any side in [1, EB_INCEPTION_MAX_SIDE]: the network
 * resizes to 299 itself): name "inception-v3-fid", dim 2048 (pool_3), classes 1008 when the weights
 * have fc.weight (0 otherwise), checksum the first 32 hex digits of the file's SHA-256. Pixels
 * x in [−1, 1] become the evaluator's values (x + 1)·127.5 (an image read from uint8 as
 * u/127.5 − 1 returns to u within 1e-5). EB_EINPUT for a bad file or side (named). */
eb_status eb_features_open_inception(eb_features **out, const char *path, int side, const eb_device *dev);

/* What extract gives plus the spatial features sFID needs: pool (N, 2048), spatial (N, 2023),
 * logits (N, 1008) of images (N, 3, side, side) in [−1, 1]; any output may be NULL (logits must
 * be NULL without an fc layer). fx must come from eb_features_open_inception. */
eb_status eb_features_inception_extract(eb_features *fx, float *pool, float *spatial, float *logits,
                                        const float *images, int N);

#endif
