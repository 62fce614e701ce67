/* evaluation.c — `eval` as a library call (pipeline/evaluation.h,
 * docs/metrics.md). The network is reached only through eb_features; the
 * pixel judge and PSNR/SSIM need none. */
#include "pipeline/evaluation.h"

#include "analyze/inception.h"
#include "analyze/metrics.h"
#include "pipeline/evaluation_internal.h"
#include "runtime/h5io.h"
#include "train/fmnist.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CACHE_MARK "ebcache_real_features"
#define CHECKSUM_ATTR "classifier_checksum" /* the name caches and outputs have always used, for any extractor */
#define FMNIST_SIDE 28
#define DATA_RANGE 2.0 /* pixels in [−1, 1] */
#define PIXEL_PCA_K 32 /* principal components of the real pixels the second judge compares in */

void eb_eval_params_defaults(eb_eval_params *p) {
    *p = (eb_eval_params){.dataset = "samples", .real_split = "test", .n_real = 10000, .batch = EB_INCEPTION_CHUNK};
}

static const char *dataset_of(const eb_eval_params *p) { return p->dataset ? p->dataset : "samples"; }
static const char *split_of(const eb_eval_params *p) { return p->real_split ? p->real_split : "test"; }

static void clip_unit(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = x[i] < -1.0f ? -1.0f : x[i] > 1.0f ? 1.0f : x[i];
}

/* ------------------------------------------------------------------------ */
/* Inputs                                                                    */

/* Images (N, C, S, S) of dataset `name` in `path`: finite, C channels, square
 * with side ≥ S; a larger side is centre-cropped to S as eb_fmnist_load pads
 * (extra row/column at the bottom/right). *full keeps the uncropped array
 * (N, C, H, H) when full is not NULL; dims receives its shape. */
static eb_status read_images(const char *path, const char *name, int C, int S, float **crop, float **full,
                             int64_t dims[4]) {
    eb_h5 *f;
    float *x = NULL;
    *crop = NULL;
    eb_status st = eb_h5_open(&f, path);
    if (st) return st;
    int64_t want[4] = {EB_H5_ANY, C, EB_H5_ANY, EB_H5_ANY};
    st = eb_h5_read_f32(f, name, 4, want, &x, dims, EB_H5_FINITE);
    eb_h5_close(f);
    if (!st && (dims[2] != dims[3] || dims[2] < S))
        st = eb_fail(EB_EINPUT, "%s: dataset '%s' holds %lldx%lld images; the extractor needs square images of side "
                                ">= %d", path, name, (long long)dims[2], (long long)dims[3], S);
    if (!st && dims[0] > INT_MAX / 2) st = eb_fail(EB_EINPUT, "%s: dataset '%s' holds too many images", path, name);
    if (st) {
        free(x);
        return st;
    }
    const int N = (int)dims[0], H = (int)dims[2], m = (H - S) / 2;
    if (H == S) {
        *crop = x;
    } else if ((*crop = malloc((size_t)N * C * S * S * sizeof(float)))) {
        for (int n = 0; n < N * C; n++) /* each channel plane */
            for (int r = 0; r < S; r++)
                memcpy(*crop + ((size_t)n * S + r) * S, x + ((size_t)n * H + r + m) * H + m, S * sizeof(float));
    } else {
        free(x);
        return eb_fail(EB_ERUNTIME, "out of memory for %d images", N);
    }
    if (full) *full = x;
    else if (x != *crop) free(x);
    return EB_OK;
}

/* Labels (N) of dataset `name`, each a class in [0, K). */
static eb_status read_labels(const char *path, const char *name, int N, int K, int32_t **y) {
    eb_h5 *f;
    *y = NULL;
    eb_status st = eb_h5_open(&f, path);
    if (st) return st;
    int64_t want[1] = {N}, dims[1];
    st = eb_h5_read_i32(f, name, 1, want, y, dims);
    eb_h5_close(f);
    for (int i = 0; !st && i < N; i++)
        if ((*y)[i] < 0 || (*y)[i] >= K)
            st = eb_fail(EB_EINPUT, "%s: dataset '%s' [%d] = %d is not a class in [0, %d) (unconditional samples have "
                                    "no class: take labels dataset \"none\")", path, name, i, (*y)[i], K);
    if (st) {
        free(*y);
        *y = NULL;
    }
    return st;
}

/* Whether `path` holds dataset `name` (a missing or unreadable file is reported later, by the reader). */
static int has_dataset(const char *path, const char *name) {
    eb_h5 *f;
    if (eb_h5_open(&f, path)) return 0;
    int yes = eb_h5_lookup(f, name) == EB_H5_DATASET;
    eb_h5_close(f);
    return yes;
}

/* The images (and labels) of a comma-separated list of files, concatenated
 * in order: shards sampled with different seeds count as one set. Every file
 * holds dataset `name` with the side of the first; with `labels` set, each
 * file's labels are read too. *crop (N, C, S, S), *full (N, C, H, H) when full
 * is not NULL, *y (N) when labels is not NULL; dims gets (N, C, H, H). */
static eb_status read_image_list(const char *list, const char *name, int C, int S, const char *labels, int K,
                                 float **crop, float **full, int32_t **y, int64_t dims[4]) {
    char *paths = strdup(list), *save = NULL;
    float *parts[2] = {NULL, NULL}; /* crop, full: grown file by file */
    int32_t *ys = NULL;
    int64_t total = 0;
    eb_status st = paths ? EB_OK : eb_fail(EB_ERUNTIME, "out of memory");
    for (char *path = paths ? strtok_r(paths, ",", &save) : NULL; !st && path; path = strtok_r(NULL, ",", &save)) {
        float *c = NULL, *f = NULL;
        int32_t *yf = NULL;
        int64_t fd[4];
        st = read_images(path, name, C, S, &c, full ? &f : NULL, fd);
        if (!st && total && fd[2] != dims[2])
            st = eb_fail(EB_EINPUT, "%s: dataset '%s' holds %lldx%lld images but the first file's are %lldx%lld", path,
                         name, (long long)fd[2], (long long)fd[3], (long long)dims[2], (long long)dims[3]);
        if (!st && total + fd[0] > INT_MAX / 2) st = eb_fail(EB_EINPUT, "%s: too many images in all", list);
        if (!st && labels) st = read_labels(path, labels, (int)fd[0], K, &yf);
        const int64_t side[2] = {S, fd[2]};
        float *src[2] = {c, f};
        for (int a = 0; !st && a < (full ? 2 : 1); a++) {
            const size_t per = (size_t)C * side[a] * side[a];
            float *grown = realloc(parts[a], (size_t)(total + fd[0]) * per * sizeof(float));
            if (!grown) st = eb_fail(EB_ERUNTIME, "out of memory for %lld images", (long long)(total + fd[0]));
            else memcpy((parts[a] = grown) + (size_t)total * per, src[a], (size_t)fd[0] * per * sizeof(float));
        }
        if (!st && labels) {
            int32_t *grown = realloc(ys, (size_t)(total + fd[0]) * sizeof(int32_t));
            if (!grown) st = eb_fail(EB_ERUNTIME, "out of memory for %lld labels", (long long)(total + fd[0]));
            else memcpy((ys = grown) + total, yf, (size_t)fd[0] * sizeof(int32_t));
        }
        if (!st) memcpy(dims, fd, sizeof fd), total += fd[0], dims[0] = total;
        if (f != c) free(f);
        free(c), free(yf);
    }
    if (!st && total == 0) st = eb_fail(EB_EINPUT, "'%s' names no file", list);
    if (!st && total < EB_PR_K + 1)
        st = eb_fail(EB_EINPUT, "%s: dataset '%s' holds %lld images; FD and precision/recall need at least %d", list,
                     name, (long long)total, EB_PR_K + 1);
    free(paths);
    if (st) {
        free(parts[0]), free(parts[1]), free(ys);
        return st;
    }
    *crop = parts[0];
    if (full) *full = parts[1];
    if (labels) *y = ys;
    return EB_OK;
}

/* Everything one evaluation reads, clipped to [−1, 1]. */
typedef struct {
    float *x;      /* (N, C, S, S) the samples, cropped to the extractor's side      */
    float *x_full; /* (N, C, H, H) uncropped, with a reference (may alias x), else NULL */
    float *ref;    /* (N, C, H, H) the reference, or NULL                            */
    int32_t *y;    /* (N) labels, or NULL                                            */
    int N, H;
    eb_fmnist real; /* the first n_real images of the real split                    */
} eval_inputs;

static void inputs_free(eval_inputs *in) {
    if (in->x_full != in->x) free(in->x_full);
    free(in->x), free(in->ref), free(in->y);
    eb_fmnist_free(&in->real);
}

/* The first n (at most) images of a Fashion-MNIST split ("train" or "t10k"). */
static eb_status load_split(eb_fmnist *out, const char *dir, const char *split, int n) {
    eb_status st = eb_fmnist_load(out, dir, split, 0, 0);
    if (!st && out->n > n) out->n = n;
    return st;
}

/* The samples (or, for the floor, the training images), their labels, the
 * reference and the real split; r->samples and r->labels name them. */
static eb_status read_inputs(const eb_eval_params *p, const eb_features *fx, eval_inputs *in, eb_eval_result *r) {
    const char *dir = p->fmnist_dir ? p->fmnist_dir : getenv("EBCACHE_FMNIST_DIR"), *name = dataset_of(p);
    const int C = fx->channels, S = fx->side;
    int64_t dims[4];
    eb_status st;
    if (p->floor) {
        eb_fmnist train;
        if ((st = load_split(&train, dir, "train", p->n_real))) return st;
        in->x = train.images, in->y = train.labels, dims[0] = train.n, dims[2] = train.h;
        r->samples = "Fashion-MNIST train", r->labels = "train labels";
    } else {
        /* labels: labels_dataset, else y when the first file has it */
        char first[PATH_MAX];
        snprintf(first, sizeof first, "%.*s", (int)strcspn(p->samples, ","), p->samples);
        r->samples = p->samples;
        if (p->labels_dataset && strcmp(p->labels_dataset, "none")) r->labels = p->labels_dataset;
        else if (!p->labels_dataset && has_dataset(first, "y")) r->labels = "y";
        st = read_image_list(p->samples, name, C, S, r->labels, EB_FMNIST_CLASSES, &in->x,
                             p->reference ? &in->x_full : NULL, &in->y, dims);
        if (!st && p->reference) {
            int64_t rdims[4];
            float *ref_crop = NULL;
            st = read_image_list(p->reference, name, C, S, NULL, 0, &ref_crop, &in->ref, NULL, rdims);
            free(ref_crop);
            if (!st && memcmp(rdims, dims, sizeof rdims))
                st = eb_fail(EB_EINPUT, "%s: dataset '%s' has shape [%lld, %lld, %lld, %lld] but the samples have "
                                        "[%lld, %lld, %lld, %lld]: the reference must hold the same seeds",
                             p->reference, name, (long long)rdims[0], (long long)rdims[1], (long long)rdims[2],
                             (long long)rdims[3], (long long)dims[0], (long long)dims[1], (long long)dims[2],
                             (long long)dims[3]);
        }
        if (st) return st;
    }
    in->N = (int)dims[0], in->H = (int)dims[2];
    /* clipped once here: a sampler can overshoot, the data never does */
    clip_unit(in->x, (size_t)in->N * C * S * S);
    if (in->x_full && in->x_full != in->x) clip_unit(in->x_full, (size_t)in->N * C * in->H * in->H);
    if (in->ref) clip_unit(in->ref, (size_t)in->N * C * in->H * in->H);
    return load_split(&in->real, dir, strcmp(split_of(p), "test") ? "train" : "t10k", p->n_real);
}

/* ------------------------------------------------------------------------ */
/* Real features, cached                                                     */

/* What the real images give every evaluation against them: the extractor's
 * features and accuracy, and the pixel judge's principal components of the
 * real pixels with the real images' statistics in them. */
typedef struct {
    float *feat;    /* (n, D) features */
    double acc;     /* accuracy of the logits on the real images (NaN: no logits) */
    int K, P;       /* principal components kept; pixels per image */
    double *mean;   /* (P) pixel mean */
    double *comp;   /* (K, P) top principal components */
    double *mu;     /* (K) mean of the real projections */
    double *cov;    /* (K, K) covariance of the real projections */
} real_reference;

static void real_reference_free(real_reference *ref) {
    free(ref->feat), free(ref->mean), free(ref->comp), free(ref->mu), free(ref->cov);
    *ref = (real_reference){0};
}

/* Reads a cache written for the same extractor checksum, split and count into
 * ref (whose K and P are set); returns 1 on a hit, 0 on a miss (stale cache, a
 * cache of an older ebcache without the pixel judge, or no file), or −1 with a
 * message when `path` exists but is not a feature cache (it is then left alone). */
static int read_cache(const char *path, const char *sum, const char *split, int n, int D, real_reference *ref) {
    if (access(path, F_OK) != 0) return 0;
    eb_h5 *f = NULL;
    if (eb_h5_open(&f, path) || !eb_h5_has_attr(f, NULL, CACHE_MARK)) {
        if (f) eb_h5_close(f);
        eb_fail(EB_EINPUT, "real-feature cache %s exists and is not an ebcache real-feature cache; remove it or pick "
                           "another path", path);
        return -1;
    }
    char *s1 = NULL, *s2 = NULL;
    int64_t count = -1, k = -1, dims[2];
    const int64_t K = ref->K, P = ref->P;
    int hit = !eb_h5_attr_str(f, NULL, CHECKSUM_ATTR, &s1) && !eb_h5_attr_str(f, NULL, "real_split", &s2) &&
              !eb_h5_attr_i64(f, NULL, "n_real", &count) && !eb_h5_attr_f64(f, NULL, "real_accuracy", &ref->acc) &&
              eb_h5_has_attr(f, NULL, "pixel_pca_k") && !eb_h5_attr_i64(f, NULL, "pixel_pca_k", &k) &&
              !strcmp(s1, sum) && !strcmp(s2, split) && count == n && k == K &&
              !eb_h5_read_f32(f, "features", 2, (int64_t[]){n, D}, &ref->feat, dims, EB_H5_FINITE) &&
              !eb_h5_read_f64(f, "pixel_mean", 1, &P, &ref->mean, dims, EB_H5_FINITE) &&
              !eb_h5_read_f64(f, "pixel_components", 2, (int64_t[]){K, P}, &ref->comp, dims, EB_H5_FINITE) &&
              !eb_h5_read_f64(f, "pixel_mu", 1, &K, &ref->mu, dims, EB_H5_FINITE) &&
              !eb_h5_read_f64(f, "pixel_cov", 2, (int64_t[]){K, K}, &ref->cov, dims, EB_H5_FINITE);
    free(s1);
    free(s2);
    eb_h5_close(f);
    if (!hit) { /* a miss recomputes everything */
        int keep_k = ref->K, keep_p = ref->P;
        real_reference_free(ref);
        ref->K = keep_k, ref->P = keep_p, ref->acc = NAN;
    }
    return hit;
}

static eb_status write_cache(const char *path, const char *sum, const char *split, int n, int D,
                             const real_reference *ref) {
    eb_h5w *w;
    const int64_t K = ref->K, P = ref->P;
    eb_status st = eb_h5w_create(&w, path);
    if (st) return st;
    eb_h5w_write(w, "features", EB_H5_F32, ref->feat, 2, (int64_t[]){n, D});
    eb_h5w_write(w, "pixel_mean", EB_H5_F64, ref->mean, 1, &P);
    eb_h5w_write(w, "pixel_components", EB_H5_F64, ref->comp, 2, (int64_t[]){K, P});
    eb_h5w_write(w, "pixel_mu", EB_H5_F64, ref->mu, 1, &K);
    eb_h5w_write(w, "pixel_cov", EB_H5_F64, ref->cov, 2, (int64_t[]){K, K});
    eb_h5w_attr_i64(w, NULL, CACHE_MARK, 1);
    eb_h5w_attr_str(w, NULL, CHECKSUM_ATTR, sum);
    eb_h5w_attr_str(w, NULL, "real_split", split);
    eb_h5w_attr_i64(w, NULL, "n_real", n);
    eb_h5w_attr_f64(w, NULL, "real_accuracy", ref->acc);
    eb_h5w_attr_i64(w, NULL, "pixel_pca_k", K);
    return eb_h5w_commit(w);
}

/* The pixel judge's reference: the top K principal components of the real
 * pixels (n, P) and the statistics of the real images projected on them. */
static eb_status pixel_reference_fit(real_reference *ref, const float *real, int n) {
    const int K = ref->K, P = ref->P;
    ref->mean = malloc(P * sizeof(double)), ref->comp = malloc((size_t)K * P * sizeof(double));
    ref->mu = malloc(K * sizeof(double)), ref->cov = malloc((size_t)K * K * sizeof(double));
    float *projected = malloc((size_t)n * K * sizeof *projected);
    eb_status st = ref->mean && ref->comp && ref->mu && ref->cov && projected
                       ? EB_OK : eb_fail(EB_ERUNTIME, "out of memory for the pixel judge (%d images)", n);
    if (!st) st = eb_pca_fit(ref->mean, ref->comp, real, n, P, K);
    if (!st) st = eb_pca_project(projected, real, n, P, ref->mean, ref->comp, K);
    if (!st) st = eb_feature_stats(ref->mu, ref->cov, projected, n, K);
    free(projected);
    return st;
}

/* The real reference of the real images (P pixels each), from the cache when
 * it matches, else computed (and cached when asked). The pixel judge keeps at
 * most PIXEL_PCA_K components, fewer than n. */
static eb_status real_reference_get(real_reference *ref, eb_features *fx, const eb_fmnist *real, int P,
                                    const char *split, const char *cache) {
    const int D = fx->dim, K = fx->classes;
    *ref = (real_reference){.acc = NAN, .K = PIXEL_PCA_K < real->n - 1 ? PIXEL_PCA_K : real->n - 1, .P = P};
    if (cache) {
        int hit = read_cache(cache, fx->checksum, split, real->n, D, ref);
        if (hit < 0) return EB_EINPUT;
        if (hit) return EB_OK;
    }
    float *logits = K ? malloc((size_t)real->n * K * sizeof(float)) : NULL;
    ref->feat = malloc((size_t)real->n * D * sizeof(float));
    eb_status st = (logits || !K) && ref->feat ? EB_OK
                                               : eb_fail(EB_ERUNTIME, "out of memory for %d real features", real->n);
    if (!st) st = eb_features_extract(fx, ref->feat, logits, real->images, real->n);
    if (!st && K) st = eb_accuracy(&ref->acc, logits, real->labels, real->n, K);
    if (!st) st = pixel_reference_fit(ref, real->images, real->n);
    if (!st && cache) st = write_cache(cache, fx->checksum, split, real->n, D, ref);
    free(logits);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Metrics                                                                   */

typedef struct {
    float *feat, *logits;                             /* (N, D), (N, K) or NULL */
    double *mu_fake, *cov_fake, *mu_real, *cov_real; /* (D), (D, D)            */
    int32_t *predicted;                               /* (N) or NULL            */
    double *psnr, *ssim;                              /* (N) or NULL            */
} eval_detail;

static void detail_free(eval_detail *d) {
    free(d->feat), free(d->logits);
    free(d->mu_fake), free(d->cov_fake), free(d->mu_real), free(d->cov_real);
    free(d->predicted), free(d->psnr), free(d->ssim);
}

/* FD (and its terms) and precision/recall of fake (N, D) against real (n, D) features. */
static eb_status distribution_metrics(eb_eval_result *r, eval_detail *d, const float *fake, int N, const float *real,
                                      int n, int D) {
    d->mu_fake = malloc(D * sizeof(double)), d->cov_fake = malloc((size_t)D * D * sizeof(double));
    d->mu_real = malloc(D * sizeof(double)), d->cov_real = malloc((size_t)D * D * sizeof(double));
    if (!d->mu_fake || !d->cov_fake || !d->mu_real || !d->cov_real)
        return eb_fail(EB_ERUNTIME, "out of memory for %dx%d covariances", D, D);
    eb_status st = eb_feature_stats(d->mu_fake, d->cov_fake, fake, N, D);
    if (!st) st = eb_feature_stats(d->mu_real, d->cov_real, real, n, D);
    if (!st) st = eb_frechet_terms(&r->fd_mean, &r->fd_cov, d->mu_fake, d->cov_fake, d->mu_real, d->cov_real, D);
    r->fd = r->fd_mean + r->fd_cov;
    if (!st) st = eb_precision_recall(&r->precision, &r->recall, real, n, fake, N, D, EB_PR_K);
    return st;
}

/* The second judge, independent of the extractor: FD of the (clipped) pixels
 * of fake (N, P) and the real images in the top principal components of the
 * real pixels (ref). */
static eb_status pixel_metrics(eb_eval_result *r, const float *fake, int N, const real_reference *ref) {
    const int K = ref->K, P = ref->P;
    float *pf = malloc((size_t)N * K * sizeof *pf);
    double *stats = malloc((K + (size_t)K * K) * sizeof *stats);
    eb_status st = pf && stats ? EB_OK : eb_fail(EB_ERUNTIME, "out of memory for the pixel judge");
    double *mu_f = stats, *cov_f = mu_f + K;
    if (!st) st = eb_pca_project(pf, fake, N, P, ref->mean, ref->comp, K);
    if (!st) st = eb_feature_stats(mu_f, cov_f, pf, N, K);
    if (!st) st = eb_frechet_terms(&r->pixel_fd_mean, &r->pixel_fd_cov, mu_f, cov_f, ref->mu, ref->cov, K);
    r->pixel_k = K;
    r->pixel_fd = r->pixel_fd_mean + r->pixel_fd_cov;
    free(pf), free(stats);
    return st;
}

/* Predicted class (first maximum) of each row of logits (N, K). */
static void argmax_rows(int32_t *out, const float *logits, int N, int K) {
    for (int i = 0; i < N; i++) {
        const float *z = logits + (size_t)i * K;
        int best = 0;
        for (int k = 1; k < K; k++) best = z[k] > z[best] ? k : best;
        out[i] = best;
    }
}

/* Features, logits and predicted classes of the samples; the message of a failure names the samples. */
static eb_status sample_features(eval_detail *d, eb_features *fx, const eval_inputs *in, const char *samples) {
    const int N = in->N, D = fx->dim, K = fx->classes;
    d->feat = malloc((size_t)N * D * sizeof(float));
    if (K) d->logits = malloc((size_t)N * K * sizeof(float)), d->predicted = malloc((size_t)N * sizeof(int32_t));
    if (!d->feat || (K && (!d->logits || !d->predicted)))
        return eb_fail(EB_ERUNTIME, "out of memory for the features of %d images", N);
    eb_status st = eb_features_extract(fx, d->feat, d->logits, in->x, N);
    if (st) return eb_fail(st, "%s: %s", samples, eb_last_error());
    if (K) argmax_rows(d->predicted, d->logits, N, K);
    return EB_OK;
}

/* PSNR and SSIM of the (clipped) samples against the reference, per image and their means. */
static eb_status reference_metrics(eb_eval_result *r, eval_detail *d, const eval_inputs *in, int C) {
    const int N = in->N, H = in->H;
    d->psnr = malloc(N * sizeof(double)), d->ssim = malloc(N * sizeof(double));
    if (!d->psnr || !d->ssim) return eb_fail(EB_ERUNTIME, "out of memory");
    eb_status st = eb_psnr(d->psnr, &r->psnr, in->x_full, in->ref, N, C, H, H, DATA_RANGE);
    if (!st) st = eb_ssim(d->ssim, &r->ssim, in->x_full, in->ref, N, C, H, H, DATA_RANGE);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Output                                                                    */

int eb_eval_fields(const eb_eval_params *p, const eb_eval_result *r, eb_eval_field out[EB_EVAL_FIELDS]) {
    if (p->inception) return eb_eval_fields_imagenet(p, r, out);
    const eb_eval_field all[] = {
        {"mode", EB_FIELD_TEXT, p->floor ? "floor" : "samples", 0},
        {"samples", EB_FIELD_TEXT, r->samples, 0},
        {"dataset", EB_FIELD_TEXT, p->floor ? NULL : dataset_of(p), 0},
        {"labels_dataset", EB_FIELD_TEXT, r->labels, 0},
        {"reference", EB_FIELD_TEXT, p->reference, 0},
        {"classifier", EB_FIELD_TEXT, p->features ? r->extractor : p->classifier, 0},
        {"real_split", EB_FIELD_TEXT, split_of(p), 0},
        {"n_samples", EB_FIELD_INT, NULL, r->n_samples},
        {"n_real", EB_FIELD_INT, NULL, r->n_real},
        {"k", EB_FIELD_INT, NULL, r->k},
        {"fd", EB_FIELD_REAL, NULL, r->fd},
        {"fd_mean_term", EB_FIELD_REAL, NULL, r->fd_mean},
        {"fd_cov_term", EB_FIELD_REAL, NULL, r->fd_cov},
        {"pixel_pca_k", EB_FIELD_INT, NULL, r->pixel_k},
        {"pixel_fd", EB_FIELD_REAL, NULL, r->pixel_fd},
        {"pixel_fd_mean_term", EB_FIELD_REAL, NULL, r->pixel_fd_mean},
        {"pixel_fd_cov_term", EB_FIELD_REAL, NULL, r->pixel_fd_cov},
        {"precision", EB_FIELD_REAL, NULL, r->precision},
        {"recall", EB_FIELD_REAL, NULL, r->recall},
        {"accuracy", EB_FIELD_REAL, NULL, r->accuracy},
        {"classifier_real_accuracy", EB_FIELD_REAL, NULL, r->real_accuracy},
        {"psnr", EB_FIELD_REAL, NULL, r->psnr},
        {"ssim", EB_FIELD_REAL, NULL, r->ssim},
    };
    _Static_assert(sizeof all / sizeof all[0] == EB_EVAL_FIELDS, "EB_EVAL_FIELDS counts the fields");
    int n = 0;
    for (int i = 0; i < EB_EVAL_FIELDS; i++)
        if (all[i].kind != EB_FIELD_TEXT || all[i].text) out[n++] = all[i];
    return n;
}

void eb_eval_write_fields(eb_h5w *w, const eb_eval_params *p, const eb_eval_result *r) {
    eb_eval_field fields[EB_EVAL_FIELDS];
    const int n = eb_eval_fields(p, r, fields);
    for (int i = 0; i < n; i++) {
        const eb_eval_field *f = &fields[i];
        if (f->kind == EB_FIELD_TEXT) eb_h5w_attr_str(w, NULL, f->key, f->text);
        else if (f->kind == EB_FIELD_INT) eb_h5w_attr_i64(w, NULL, f->key, (int64_t)f->value);
        else if (!isnan(f->value)) eb_h5w_attr_f64(w, NULL, f->key, f->value);
    }
}

static eb_status write_output(const eb_eval_params *p, const eb_features *fx, const eb_eval_result *r,
                              const eval_detail *d) {
    eb_h5w *w;
    eb_status st = eb_h5w_create(&w, p->output);
    if (st) return st;
    const int N = r->n_samples, D = r->D;
    int64_t v[1] = {D}, mat[2] = {D, D}, rows[1] = {N}, feat[2] = {N, D};
    eb_h5w_write(w, "real/mu", EB_H5_F64, d->mu_real, 1, v);
    eb_h5w_write(w, "real/cov", EB_H5_F64, d->cov_real, 2, mat);
    eb_h5w_write(w, "samples/mu", EB_H5_F64, d->mu_fake, 1, v);
    eb_h5w_write(w, "samples/cov", EB_H5_F64, d->cov_fake, 2, mat);
    eb_h5w_write(w, "samples/features", EB_H5_F32, d->feat, 2, feat);
    if (d->predicted) eb_h5w_write(w, "samples/predicted", EB_H5_I32, d->predicted, 1, rows);
    if (d->psnr) eb_h5w_write(w, "per_image/psnr", EB_H5_F64, d->psnr, 1, rows);
    if (d->ssim) eb_h5w_write(w, "per_image/ssim", EB_H5_F64, d->ssim, 1, rows);
    eb_eval_write_fields(w, p, r);
    eb_h5w_attr_str(w, NULL, CHECKSUM_ATTR, fx->checksum);
    eb_h5w_attr_str(w, NULL, "ebcache_version", EBCACHE_VERSION);
    return eb_h5w_commit(w);
}

/* ------------------------------------------------------------------------ */
/* The call                                                                  */

static eb_status check_params(const eb_eval_params *p) {
    const char *split = split_of(p);
    if (p->comm && p->comm->size > 1)
        return eb_fail(EB_EINPUT, "the Fashion-MNIST judge runs as one process, not on %d ranks", p->comm->size);
    if (p->floor && (p->samples || p->reference || p->labels_dataset || strcmp(dataset_of(p), "samples") ||
                     strcmp(split, "test")))
        return eb_fail(EB_EINPUT, "the floor compares training images with the test set: it takes no samples, "
                                  "reference, dataset, labels dataset or real split");
    if (!p->floor && !p->samples) return eb_fail(EB_EINPUT, "no samples to evaluate (and not the floor)");
    if (p->reference_batch || p->device || p->batch != EB_INCEPTION_CHUNK)
        return eb_fail(EB_EINPUT, "a reference batch, a device and a batch size are for the ImageNet judge: give the "
                                  "Inception weights too");
    if (strcmp(split, "test") && strcmp(split, "train"))
        return eb_fail(EB_EINPUT, "real split '%s' is not test or train", split);
    if (p->n_real < EB_PR_K + 1)
        return eb_fail(EB_EINPUT, "n_real = %d: FD and precision/recall need at least %d real images", p->n_real,
                       EB_PR_K + 1);
    if (!p->features && !p->classifier) return eb_fail(EB_EINPUT, "no classifier and no feature extractor given");
    return EB_OK;
}

/* The real reference is Fashion-MNIST: one 28×28 channel, 10 classes. */
static eb_status check_extractor(const eb_features *fx, const char *source) {
    if (fx->channels == 1 && fx->side == FMNIST_SIDE && (fx->classes == 0 || fx->classes == EB_FMNIST_CLASSES) &&
        fx->dim > 0)
        return EB_OK;
    return eb_fail(EB_EINPUT, "%s: extractor %s takes %d-channel %dx%d images and gives %d features and %d classes; "
                              "the Fashion-MNIST reference needs 1-channel %dx%d images, features and %d classes or "
                              "none", source, fx->name, fx->channels, fx->side, fx->side, fx->dim, fx->classes,
                   FMNIST_SIDE, FMNIST_SIDE, EB_FMNIST_CLASSES);
}

eb_status eb_evaluate(const eb_eval_params *p, eb_eval_result *r) {
    if (p->inception) return eb_evaluate_imagenet(p, r);
    eb_eval_result res = {.k = EB_PR_K, .fd = NAN, .fd_mean = NAN, .fd_cov = NAN, .sfid = NAN,
                          .inception_score = NAN, .pixel_fd = NAN,
                          .pixel_fd_mean = NAN, .pixel_fd_cov = NAN, .precision = NAN, .recall = NAN,
                          .accuracy = NAN, .real_accuracy = NAN, .psnr = NAN, .ssim = NAN};
    eb_features *opened = NULL, *fx = p->features;
    eval_inputs in = {0};
    eval_detail d = {0};
    real_reference real_ref = {0};
    eb_status st = check_params(p);
    if (!st && !fx) {
        st = eb_features_open_fmnist(&opened, p->classifier);
        fx = opened;
    }
    if (!st) st = check_extractor(fx, p->features ? "the given extractor" : p->classifier);
    /* inputs first: bad ones are reported before any long computation */
    if (!st) st = read_inputs(p, fx, &in, &res);
    if (st) goto done;
    snprintf(res.extractor, sizeof res.extractor, "%s", fx->name);
    res.n_samples = in.N, res.n_real = in.real.n, res.D = fx->dim;
    const int P = fx->channels * fx->side * fx->side;
    st = sample_features(&d, fx, &in, res.samples);
    if (!st && in.y && d.logits) st = eb_accuracy(&res.accuracy, d.logits, in.y, in.N, fx->classes);
    if (!st) st = real_reference_get(&real_ref, fx, &in.real, P, split_of(p), p->real_cache);
    res.real_accuracy = real_ref.acc;
    if (!st) st = distribution_metrics(&res, &d, d.feat, in.N, real_ref.feat, in.real.n, fx->dim);
    if (!st) st = pixel_metrics(&res, in.x, in.N, &real_ref);
    if (!st && in.ref) st = reference_metrics(&res, &d, &in, fx->channels);
    if (!st && p->output) st = write_output(p, fx, &res, &d);
    if (!st) *r = res;
done:
    inputs_free(&in);
    detail_free(&d);
    real_reference_free(&real_ref);
    eb_features_free(opened);
    return st;
}
