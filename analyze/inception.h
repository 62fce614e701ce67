/* inception.h — the FID InceptionV3 (the TF 2015-12-05 graph of the ADM
 * evaluator, as pytorch-fid ports it), docs/inception.md.
 *
 * BasicConv = conv (no bias) + BatchNorm (eps 1e-3) + ReLU, folded at load
 * into one convolution with a bias. Stem, Mixed_5b–d (A), Mixed_6a (B),
 * Mixed_6b–e (C), Mixed_7a (D), Mixed_7b (E, average pool without the
 * padding count), Mixed_7c (E, max pool), the global mean, and the optional
 * fc layer (no aux head). The model (inception.c) owns a table of the file
 * tensors in the documented layout and runs on the backend's image ops;
 * inception_weights.c loads a .safetensors file of that layout.
 *
 * Input as the ADM evaluator feeds its TF graph: the uint8 RGB values as
 * floats, TF1 legacy bilinear resize to 299 (no half-pixel offset; 299² is
 * used as is), then (x − 128)/128.
 */
#ifndef EB_INCEPTION_H
#define EB_INCEPTION_H

#include "runtime/ebcache.h"

#include <stddef.h>
#include <stdint.h>

#define EB_INCEPTION_SIDE 299     /* the network's input side                                  */
#define EB_INCEPTION_POOL 2048    /* pool_3: the global mean of Mixed_7c                        */
#define EB_INCEPTION_SPATIAL 2023 /* mixed_6/conv[..., :7]: 17·17·7, NHWC order                 */
#define EB_INCEPTION_CLASSES 1008 /* fc outputs (the TF graph's softmax width)                  */
#define EB_INCEPTION_BN_EPS 1e-3
#define EB_INCEPTION_CHUNK 8      /* images per pass through the network: bounds the activations */
#define EB_INCEPTION_MAX_SIDE 4096

typedef struct eb_inception eb_inception;

/* One tensor of the file layout: its key, shape and place (in floats) in the host table. */
typedef struct {
    char name[48];
    int rank;
    int64_t shape[4];
    size_t offset, numel;
} eb_inception_tensor;

/* A network with every tensor zero (BN variances too: set the tensors before use) on dev (NULL:
 * the CPU); with_fc adds the fc layer and so the logits. EB_ERUNTIME when the device cannot run
 * or its backend lacks an image op the network needs (named). On failure *out is NULL. */
eb_status eb_inception_create_on(eb_inception **out, int with_fc, const eb_device *dev);
void eb_inception_free(eb_inception *m);

/* The layout's tensors in their fixed order (docs/inception.md); i in [0, eb_inception_tensor_count). */
int eb_inception_tensor_count(const eb_inception *m);
const eb_inception_tensor *eb_inception_tensor_at(const eb_inception *m, int i);
/* Total floats of the table. */
size_t eb_inception_tensor_floats(const eb_inception *m);
/* Replaces every tensor by host (eb_inception_tensor_floats, table offsets): folds each BatchNorm
 * into its convolution and uploads. EB_EINPUT naming the key and channel of a non-finite value or
 * of a running_var + eps that is not positive; the network is unchanged then. */
eb_status eb_inception_set_tensors(eb_inception *m, const float *host);

/* Loads `path` (.safetensors in the layout of docs/inception.md, F32/F16/BF16; fc.weight optional).
 * A missing, mis-shaped, non-float or non-finite tensor, or a key outside the layout, is EB_EINPUT
 * naming the file and key. On failure *out is NULL. */
eb_status eb_inception_load_on(eb_inception **out, const char *path, const eb_device *dev);

/* 1 when the network has the fc layer (logits). */
int eb_inception_has_logits(const eb_inception *m);
/* What it runs on: the backend's name ("cpu", "cuda-fp32", ...). */
const char *eb_inception_device(const eb_inception *m);
/* Multiply-accumulates of one image through the network (the convolutions and the fc layer). */
double eb_inception_macs(const eb_inception *m);

/* dst (N, 3, H, W) float = src (N, H, W, 3) uint8 RGB: the values the evaluator feeds its graph. */
void eb_inception_images_from_u8(float *dst, const uint8_t *src, int N, int H, int W);

/* Features of images (N, 3, H, W), host, RGB values in [0, 255] (eb_inception_images_from_u8):
 * pool (N, 2048), spatial (N, 2023) and logits (N, 1008) = pool · fc.weightᵀ without a bias (the
 * ADM evaluator's softmax input); any output may be NULL, logits must be NULL without the fc
 * layer. Runs EB_INCEPTION_CHUNK images at a time. EB_EINPUT naming the image, channel and pixel
 * of a non-finite value, or for sizes outside [1, EB_INCEPTION_MAX_SIDE]; EB_ERUNTIME for out of
 * memory or a non-finite output (named). */
eb_status eb_inception_forward(eb_inception *m, float *pool, float *spatial, float *logits, const float *images, int N,
                               int H, int W);

#endif
