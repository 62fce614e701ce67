/* features.c — the feature-extractor interface (pipeline/features.h) and its
 * Fashion-MNIST classifier implementation. */
#include "pipeline/features.h"

#include "train/classifier.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* ------------------------------------------------------------------------ */
/* The interface                                                             */

/* The first non-finite value of rows (N, W) of `what` (features or logits), named by image and column. */
static eb_status check_finite(const eb_features *fx, const char *what, const float *rows, int N, int W) {
    for (size_t i = 0; i < (size_t)N * W; i++)
        if (!isfinite(rows[i]))
            return eb_fail(EB_ERUNTIME, "extractor %s: %s %zu of image %zu is %g", fx->name, what, i % W, i / W,
                           rows[i]);
    return EB_OK;
}

eb_status eb_features_extract(eb_features *fx, float *feat, float *logits, const float *images, int N) {
    if (N < 0) return eb_fail(EB_EINPUT, "extractor %s: %d images", fx->name, N);
    eb_status st = fx->extract(fx, feat, logits, images, N);
    if (!st && feat) st = check_finite(fx, "feature", feat, N, fx->dim);
    if (!st && logits) st = check_finite(fx, "logit", logits, N, fx->classes);
    return st;
}

void eb_features_free(eb_features *fx) {
    if (fx) fx->free(fx);
}

/* ------------------------------------------------------------------------ */
/* The Fashion-MNIST classifier (train/classifier.h)                         */

static eb_status fmnist_extract(eb_features *fx, float *feat, float *logits, const float *images, int N) {
    return eb_clf_features(fx->impl, feat, logits, images, N);
}

static void fmnist_free(eb_features *fx) {
    eb_clf_free(fx->impl);
    free(fx);
}

eb_status eb_features_open_fmnist(eb_features **out, const char *path) {
    eb_clf *m;
    *out = NULL;
    eb_status st = eb_clf_load(&m, path, NULL, NULL);
    if (st) return st;
    eb_features *fx = malloc(sizeof *fx);
    if (!fx) {
        eb_clf_free(m);
        return eb_fail(EB_ERUNTIME, "out of memory for the extractor of %s", path);
    }
    *fx = (eb_features){.name = "fmnist-classifier", .channels = 1, .side = m->cfg.side, .dim = m->cfg.dim,
                        .classes = m->cfg.classes, .extract = fmnist_extract, .free = fmnist_free, .impl = m};
    snprintf(fx->checksum, sizeof fx->checksum, "%016" PRIx64, eb_clf_checksum(m));
    *out = fx;
    return EB_OK;
}
