/* pipeline/features_inception.h — the FID Inception network (analyze/inception.h) behind the
 * feature-extractor interface (pipeline/features.h), so the evaluation scores ImageNet samples
 * with the same code that scores Fashion-MNIST ones; and the one loop that turns the uint8
 * images of .npz files into its activations, shared by `ebcache features` and the ImageNet
 * judge (pipeline/evaluation.h), on one process or sharded over the ranks of a comm. */
#ifndef EB_PIPELINE_FEATURES_INCEPTION_H
#define EB_PIPELINE_FEATURES_INCEPTION_H

#include "analyze/inception.h"
#include "pipeline/features.h"
#include "runtime/comm.h"

/* The Inception weights at `path` (.safetensors, docs/inception.md) on dev (NULL: the CPU) as an
 * extractor of RGB images of side×side pixels (any side in [1, EB_INCEPTION_MAX_SIDE]: the network
 * resizes to 299 itself): name "inception-v3-fid", dim 2048 (pool_3), classes 1008 when the weights
 * have fc.weight (0 otherwise), checksum the first 32 hex digits of the file's SHA-256. Pixels
 * x in [−1, 1] become the evaluator's values (x + 1)·127.5 (an image read from uint8 as
 * u/127.5 − 1 returns to u within 1e-5). EB_EINPUT for a bad file or side (named). The .npz
 * calls below take images of any side from the same extractor. */
eb_status eb_features_open_inception(eb_features **out, const char *path, int side, const eb_device *dev);

/* What extract gives plus the spatial features sFID needs: pool (N, 2048), spatial (N, 2023),
 * logits (N, 1008) of images (N, 3, side, side) in [−1, 1]; any output may be NULL (logits must
 * be NULL without an fc layer). fx must come from eb_features_open_inception. */
eb_status eb_features_inception_extract(eb_features *fx, float *pool, float *spatial, float *logits,
                                        const float *images, int N);

/* The network inside fx (from eb_features_open_inception), borrowed: its device and cost. */
const eb_inception *eb_features_inception_network(const eb_features *fx);

/* ------------------------------------------------------------------------ */
/* The images of .npz files                                                  */

/* The image arrays of a list of .npz files ("a.npz" or "a.npz,b.npz,…", concatenated in order):
 * each file's arr_0 is (N ≥ 1, H, W, 3) uint8 RGB with the first file's H and W, sides in
 * [1, EB_INCEPTION_MAX_SIDE] (as DiT's sample_ddp.py and `ebcache decode` write them). */
typedef struct {
    long n;            /* images in all */
    int height, width;
    int files;
} eb_npz_images;

/* Reads every file's arr_0 header (not the data) into *info. EB_EINPUT naming the file and arr_0
 * for a missing member, another dtype, rank or channel count, an empty array, a side out of
 * range, or a side other than the first file's; naming the list when it names no file. */
eb_status eb_npz_images_check(const char *list, eb_npz_images *info);

/* How eb_inception_npz_activations runs. */
typedef struct {
    int batch;           /* images read and run at a time (EB_INCEPTION_CHUNK); rows k·batch…
                            (k+1)·batch − 1 of the list form batch k whatever the files and ranks */
    const eb_comm *comm; /* the ranks sharing the images (NULL: one process)                    */
    int progress;        /* 1: rank 0's progress line on stderr when it is a terminal (0)        */
    const char *label;   /* what the progress line calls the images ("images"; NULL: the same)   */
} eb_npz_act_params;

void eb_npz_act_params_defaults(eb_npz_act_params *p);

/* The activations of n images: pool (n, 2048), spatial (n, 2023), logits (n, 1008) or NULL
 * without an fc layer. */
typedef struct {
    float *pool, *spatial, *logits;
    long n;
    int height, width;
    double wall; /* seconds the features took (the slowest rank's) */
} eb_inception_acts;

void eb_inception_acts_free(eb_inception_acts *a);

/* The activations of every image of `list` (checked by eb_npz_images_check first) through the
 * network of fx, streamed p->batch images at a time (memory: one batch of pixels besides the
 * outputs). With several ranks each rank runs the whole batches eb_shard_batches gives it and
 * rank 0 gathers them in index order: every value has the bits of one process's, whatever the
 * number of ranks (the gather moves at most 64 MiB per collective). Collective: every rank
 * calls it and gets the same status (eb_comm_agree; a failure is "rank R: …" everywhere). On
 * success rank 0 holds every row in *out; the other ranks get n, height, width and wall with
 * NULL arrays. EB_EINPUT naming the file for bad input or a corrupt member (the CRC-32 is
 * checked once a file is read to its end). */
eb_status eb_inception_npz_activations(eb_features *fx, const char *list, const eb_npz_act_params *p,
                                       eb_inception_acts *out);

/* ------------------------------------------------------------------------ */
/* `ebcache features` as a library call                                      */

typedef struct {
    const char *inception; /* FID Inception weights (.safetensors)                                   */
    const char *images;    /* IMAGES.npz, or shards "a.npz,b.npz" concatenated in order              */
    const char *output;    /* F.h5: pool, spatial and (with fc) logits, float32; written once, by
                              rank 0, atomically (temporary file renamed)                           */
    int batch;             /* EB_INCEPTION_CHUNK                                                     */
    const eb_device *device; /* NULL: the CPU                                                        */
    const eb_comm *comm;   /* NULL: one process                                                      */
    int progress;          /* 1: the progress line on a terminal (0)                                 */
} eb_features_file_params;

void eb_features_file_params_defaults(eb_features_file_params *p);

/* What eb_features_file measured (the same on every rank). */
typedef struct {
    long n;
    int height, width;
    int logits;          /* 1 when the weights have the fc layer */
    double wall;         /* seconds of the features (the slowest rank's) */
    double macs;         /* multiply-accumulates per image */
    char device[32];     /* what the network ran on ("cpu", "cuda-fp32", …) */
} eb_features_file_result;

/* The activations of p->images into p->output (datasets pool, spatial, logits; attributes
 * inception, images, image_height, image_width, device, ranks, wall_seconds, ebcache_version).
 * The datasets are the same bytes for any number of ranks. Inputs are checked first; EB_EINPUT
 * naming the file (or the parameter), EB_ERUNTIME otherwise; nothing is written on failure.
 * Collective like eb_inception_npz_activations. */
eb_status eb_features_file(const eb_features_file_params *p, eb_features_file_result *r);

#endif
