/* pipeline/features_inception.c — the FID Inception network as an eb_features (features_inception.h). */
#include "pipeline/features_inception.h"

#include "analyze/sha256.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    eb_inception *net;
    float *pixels;    /* one chunk of images in the evaluator's [0, 255] */
} inception_impl;

eb_status eb_features_inception_extract(eb_features *fx, float *pool, float *spatial, float *logits,
                                        const float *images, int N) {
    inception_impl *im = fx->impl;
    const size_t per = (size_t)3 * fx->side * fx->side;
    for (int first = 0; first < N; first += EB_INCEPTION_CHUNK) {
        const int b = N - first < EB_INCEPTION_CHUNK ? N - first : EB_INCEPTION_CHUNK;
        for (size_t i = 0; i < (size_t)b * per; i++) im->pixels[i] = (images[first * per + i] + 1.0f) * 127.5f;
        eb_status st = eb_inception_forward(im->net, pool ? pool + (size_t)first * EB_INCEPTION_POOL : NULL,
                                            spatial ? spatial + (size_t)first * EB_INCEPTION_SPATIAL : NULL,
                                            logits ? logits + (size_t)first * EB_INCEPTION_CLASSES : NULL, im->pixels,
                                            b, fx->side, fx->side);
        if (st == EB_EINPUT && first) {
            char why[512];
            snprintf(why, sizeof why, "%s", eb_last_error());
            return eb_fail(st, "%s (in the chunk starting at image %d)", why, first);
        }
        if (st) return st;
    }
    return EB_OK;
}

static eb_status inception_extract(eb_features *fx, float *feat, float *logits, const float *images, int N) {
    return eb_features_inception_extract(fx, feat, NULL, logits, images, N);
}

static void inception_free(eb_features *fx) {
    inception_impl *im = fx->impl;
    eb_inception_free(im->net);
    free(im->pixels);
    free(im);
    free(fx);
}

eb_status eb_features_open_inception(eb_features **out, const char *path, int side, const eb_device *dev) {
    *out = NULL;
    if (side < 1 || side > EB_INCEPTION_MAX_SIDE)
        return eb_fail(EB_EINPUT, "%s: Inception features of %dx%d images (sides in [1, %d])", path, side, side,
                       EB_INCEPTION_MAX_SIDE);
    char hex[EB_SHA256_HEX];
    eb_status st = eb_sha256_file(path, hex);
    if (st) return st;
    eb_features *fx = calloc(1, sizeof *fx);
    inception_impl *im = calloc(1, sizeof *im);
    if (fx && im) im->pixels = malloc(sizeof(float) * EB_INCEPTION_CHUNK * 3 * side * side);
    if (!fx || !im || !im->pixels) {
        free(fx), free(im ? im->pixels : NULL), free(im);
        return eb_fail(EB_ERUNTIME, "out of memory for the Inception extractor");
    }
    if ((st = eb_inception_load_on(&im->net, path, dev))) {
        free(fx), free(im->pixels), free(im);
        return st;
    }
    *fx = (eb_features){.name = "inception-v3-fid", .channels = 3, .side = side, .dim = EB_INCEPTION_POOL,
                        .classes = eb_inception_has_logits(im->net) ? EB_INCEPTION_CLASSES : 0,
                        .extract = inception_extract, .free = inception_free, .impl = im};
    snprintf(fx->checksum, sizeof fx->checksum, "%.32s", hex);
    *out = fx;
    return EB_OK;
}
