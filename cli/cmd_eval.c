/* cmd_eval.c — `ebcache eval`: sample quality through the Fashion-MNIST
 * classifier (docs/metrics.md): Fréchet distance and k-NN precision/recall of
 * its features against a real split (and its mean and covariance terms), the
 * same FD in the top principal components of the real pixels (a second judge
 * that needs no classifier), class accuracy of conditional samples,
 * PSNR/SSIM against reference (uncached) samples; `--floor` measures the
 * same numbers for real training images. */
#include "cli/args.h"
#include "cli/commands.h"

#include "train/classifier.h"
#include "runtime/ebcache.h"
#include "train/fmnist.h"
#include "runtime/h5io.h"
#include "analyze/metrics.h"

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CMD "eval"
#define CLASSIFIER_FILE "classifier.safetensors"
#define CACHE_MARK "ebcache_real_features"
#define DATA_RANGE 2.0 /* pixels in [−1, 1] */
#define PIXEL_PCA_K 32 /* principal components of the real pixels the second judge compares in */

/* --classifier, else $EBCACHE_CLASSIFIER, else data/classifier.safetensors
 * next to the executable, as the default model. */
static const char *default_classifier_path(void) {
    static char buf[PATH_MAX];
    const char *path = eb_data_file_path("EBCACHE_CLASSIFIER", CLASSIFIER_FILE, buf);
    if (!path)
        eb_fail(EB_EINPUT, "no --classifier given and no data/%s next to the binary; set EBCACHE_CLASSIFIER or pass "
                           "--classifier (make classifier trains it)", CLASSIFIER_FILE);
    return path;
}

/* What one evaluation measured; NaN marks a metric that was not computed. */
typedef struct {
    int n_samples, n_real, D;
    double fd, precision, recall;
    double fd_mean, fd_cov;  /* FD's terms: ‖μ1 − μ2‖² and the covariance part */
    int pixel_k;             /* the pixel judge's components                   */
    double pixel_fd, pixel_fd_mean, pixel_fd_cov; /* FD in them, and its terms */
    double accuracy;       /* of the samples' labels                       */
    double real_accuracy;  /* of the classifier on the real images          */
    double psnr, ssim;     /* means over the images, against the reference */
} eval_result;

/* ------------------------------------------------------------------------ */
/* Inputs                                                                    */

/* Images (N, 1, S, S) of dataset `name` in `path`: finite, one channel, square
 * with side ≥ S; a larger side is centre-cropped to S as eb_fmnist_load pads
 * (extra row/column at the bottom/right). *full keeps the uncropped array
 * (N, 1, H, H) when full is not NULL; dims receives its shape. */
static eb_status read_images(const char *path, const char *name, int S, float **crop, float **full, int64_t dims[4]) {
    eb_h5 *f;
    float *x = NULL;
    *crop = NULL;
    eb_status st = eb_h5_open(&f, path);
    if (st) return st;
    int64_t want[4] = {EB_H5_ANY, 1, EB_H5_ANY, EB_H5_ANY};
    st = eb_h5_read_f32(f, name, 4, want, &x, dims, EB_H5_FINITE);
    eb_h5_close(f);
    if (!st && (dims[2] != dims[3] || dims[2] < S))
        st = eb_fail(EB_EINPUT, "%s: dataset '%s' holds %lldx%lld images; the classifier needs square images of side "
                                ">= %d", path, name, (long long)dims[2], (long long)dims[3], S);
    if (!st && dims[0] > INT_MAX / 2) st = eb_fail(EB_EINPUT, "%s: dataset '%s' holds too many images", path, name);
    if (st) {
        free(x);
        return st;
    }
    const int N = (int)dims[0], H = (int)dims[2], m = (H - S) / 2;
    if (H == S) {
        *crop = x;
    } else if ((*crop = malloc((size_t)N * S * S * sizeof(float)))) {
        for (int n = 0; n < N; n++)
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
                                    "no class: pass --labels-dataset none)", path, name, i, (*y)[i], K);
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
 * file's labels are read too. *crop (N, 1, S, S), *full (N, 1, H, H) when full
 * is not NULL, *y (N) when labels is not NULL; dims gets (N, 1, H, H). */
static eb_status read_image_list(const char *list, const char *name, int S, const char *labels, int K, float **crop,
                                 float **full, int32_t **y, int64_t dims[4]) {
    char *paths = strdup(list), *save = NULL;
    float *parts[2] = {NULL, NULL}; /* crop, full: grown file by file */
    int32_t *ys = NULL;
    int64_t total = 0;
    eb_status st = paths ? EB_OK : eb_fail(EB_ERUNTIME, "out of memory");
    for (char *path = paths ? strtok_r(paths, ",", &save) : NULL; !st && path; path = strtok_r(NULL, ",", &save)) {
        float *c = NULL, *f = NULL;
        int32_t *yf = NULL;
        int64_t fd[4];
        st = read_images(path, name, S, &c, full ? &f : NULL, fd);
        if (!st && total && fd[2] != dims[2])
            st = eb_fail(EB_EINPUT, "%s: dataset '%s' holds %lldx%lld images but the first file's are %lldx%lld", path,
                         name, (long long)fd[2], (long long)fd[3], (long long)dims[2], (long long)dims[3]);
        if (!st && total + fd[0] > INT_MAX / 2) st = eb_fail(EB_EINPUT, "%s: too many images in all", list);
        if (!st && labels) st = read_labels(path, labels, (int)fd[0], K, &yf);
        const int64_t side[2] = {S, fd[2]};
        float *src[2] = {c, f};
        for (int a = 0; !st && a < (full ? 2 : 1); a++) {
            const size_t per = (size_t)side[a] * side[a];
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

/* ------------------------------------------------------------------------ */
/* Real features, cached                                                     */

/* What the real images give every evaluation against them: classifier
 * features and accuracy, and the pixel judge's principal components of the
 * real pixels with the real images' statistics in them. */
typedef struct {
    float *feat;    /* (n, D) classifier features */
    double acc;     /* classifier accuracy on the real images */
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

/* Reads a cache written for the same classifier, split and count into ref
 * (whose K and P are set); returns 1 on a hit, 0 on a miss (stale cache, a
 * cache of an older ebcache without the pixel judge, or no file), or −1 with a
 * message when `path` exists but is not a feature cache (it is then left alone). */
static int read_cache(const char *path, const char *sum, const char *split, int n, int D, real_reference *ref) {
    if (access(path, F_OK) != 0) return 0;
    eb_h5 *f = NULL;
    if (eb_h5_open(&f, path) || !eb_h5_has_attr(f, NULL, CACHE_MARK)) {
        if (f) eb_h5_close(f);
        eb_fail(EB_EINPUT, "--real-cache %s exists and is not an ebcache real-feature cache; remove it or pick another "
                           "path", path);
        return -1;
    }
    char *s1 = NULL, *s2 = NULL;
    int64_t count = -1, k = -1, dims[2];
    const int64_t K = ref->K, P = ref->P;
    int hit = !eb_h5_attr_str(f, NULL, "classifier_checksum", &s1) && !eb_h5_attr_str(f, NULL, "real_split", &s2) &&
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
        ref->K = keep_k, ref->P = keep_p;
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
    eb_h5w_attr_str(w, NULL, "classifier_checksum", sum);
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

/* The real reference of n real images of P pixels, from the cache when it
 * matches, else computed (and cached when asked). The pixel judge keeps at
 * most PIXEL_PCA_K components, fewer than n. */
static eb_status real_reference_get(real_reference *ref, eb_clf *m, const eb_fmnist *real, int P, const char *split,
                                    const char *cache) {
    char sum[24];
    snprintf(sum, sizeof sum, "%016" PRIx64, eb_clf_checksum(m));
    const int D = m->cfg.dim;
    *ref = (real_reference){.K = PIXEL_PCA_K < real->n - 1 ? PIXEL_PCA_K : real->n - 1, .P = P};
    if (cache) {
        int hit = read_cache(cache, sum, split, real->n, D, ref);
        if (hit < 0) return EB_EINPUT;
        if (hit) return EB_OK;
    }
    float *logits = malloc((size_t)real->n * m->cfg.classes * sizeof(float));
    ref->feat = malloc((size_t)real->n * D * sizeof(float));
    eb_status st = logits && ref->feat ? EB_OK : eb_fail(EB_ERUNTIME, "out of memory for %d real features", real->n);
    if (!st) st = eb_clf_features(m, ref->feat, logits, real->images, real->n);
    if (!st) st = eb_accuracy(&ref->acc, logits, real->labels, real->n, m->cfg.classes);
    if (!st) st = pixel_reference_fit(ref, real->images, real->n);
    if (!st && cache) st = write_cache(cache, sum, split, real->n, D, ref);
    free(logits);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Metrics and reports                                                       */

typedef struct {
    double *mu_fake, *cov_fake, *mu_real, *cov_real; /* (D), (D, D) */
    int32_t *predicted;                               /* (N)         */
    double *psnr, *ssim;                              /* (N) or NULL */
} eval_detail;

static void detail_free(eval_detail *d) {
    free(d->mu_fake), free(d->cov_fake), free(d->mu_real), free(d->cov_real);
    free(d->predicted), free(d->psnr), free(d->ssim);
}

static void clip_unit(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = x[i] < -1.0f ? -1.0f : x[i] > 1.0f ? 1.0f : x[i];
}

/* FD (and its terms) and precision/recall of fake (N, D) against real (n, D) features. */
static eb_status distribution_metrics(eval_result *r, eval_detail *d, const float *fake, int N, const float *real,
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

/* The second judge, independent of the classifier: FD of the pixels (clipped
 * to [−1, 1]) of fake (N, P) and the real images in the top principal
 * components of the real pixels (ref). */
static eb_status pixel_metrics(eval_result *r, const float *fake, int N, const real_reference *ref) {
    const int K = ref->K, P = ref->P;
    float *clipped = malloc((size_t)N * P * sizeof *clipped), *pf = malloc((size_t)N * K * sizeof *pf);
    double *stats = malloc((K + (size_t)K * K) * sizeof *stats);
    eb_status st = clipped && pf && stats ? EB_OK : eb_fail(EB_ERUNTIME, "out of memory for the pixel judge");
    double *mu_f = stats, *cov_f = mu_f + K;
    if (!st) {
        memcpy(clipped, fake, (size_t)N * P * sizeof *clipped);
        clip_unit(clipped, (size_t)N * P);
        st = eb_pca_project(pf, clipped, N, P, ref->mean, ref->comp, K);
    }
    if (!st) st = eb_feature_stats(mu_f, cov_f, pf, N, K);
    if (!st) st = eb_frechet_terms(&r->pixel_fd_mean, &r->pixel_fd_cov, mu_f, cov_f, ref->mu, ref->cov, K);
    r->pixel_k = K;
    r->pixel_fd = r->pixel_fd_mean + r->pixel_fd_cov;
    free(clipped), free(pf), free(stats);
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

/* A JSON string literal of s. */
static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
        else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
        else fputc(ch, f);
    }
    fputc('"', f);
}

/* A JSON number, or null for NaN (not computed) and ±inf (PSNR of identical images). */
static void json_number(FILE *f, const char *key, double v, int last) {
    fprintf(f, "  \"%s\": ", key);
    if (isfinite(v)) fprintf(f, "%.10g", v);
    else fputs("null", f);
    fputs(last ? "\n" : ",\n", f);
}

typedef struct {
    const char *mode, *samples, *dataset, *labels, *reference, *classifier, *split, *output;
} eval_context;

static void print_json(const eval_context *c, const eval_result *r) {
    const char *keys[] = {"mode", "samples", "dataset", "labels_dataset", "reference", "classifier", "real_split"};
    const char *vals[] = {c->mode, c->samples, c->dataset, c->labels, c->reference, c->classifier, c->split};
    printf("{\n");
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (!vals[i]) continue;
        printf("  \"%s\": ", keys[i]);
        json_string(stdout, vals[i]);
        printf(",\n");
    }
    printf("  \"n_samples\": %d,\n  \"n_real\": %d,\n  \"k\": %d,\n", r->n_samples, r->n_real, EB_PR_K);
    json_number(stdout, "fd", r->fd, 0);
    json_number(stdout, "fd_mean_term", r->fd_mean, 0);
    json_number(stdout, "fd_cov_term", r->fd_cov, 0);
    printf("  \"pixel_pca_k\": %d,\n", r->pixel_k);
    json_number(stdout, "pixel_fd", r->pixel_fd, 0);
    json_number(stdout, "pixel_fd_mean_term", r->pixel_fd_mean, 0);
    json_number(stdout, "pixel_fd_cov_term", r->pixel_fd_cov, 0);
    json_number(stdout, "precision", r->precision, 0);
    json_number(stdout, "recall", r->recall, 0);
    json_number(stdout, "accuracy", r->accuracy, 0);
    json_number(stdout, "classifier_real_accuracy", r->real_accuracy, 0);
    json_number(stdout, "psnr", r->psnr, 0);
    json_number(stdout, "ssim", r->ssim, 1);
    printf("}\n");
}

static void print_table(const eval_context *c, const eval_result *r) {
    printf("%s: %d %s of %s%s%s vs %d %s %s (classifier %s)\n", c->mode, r->n_samples,
           eb_plural(r->n_samples, "image", "images"), c->samples, c->dataset ? ":" : "", c->dataset ? c->dataset : "",
           r->n_real, c->split, eb_plural(r->n_real, "image", "images"), c->classifier);
    printf("  %-26s %.4f (mean term %.4f + covariance term %.4f)\n", "FD (classifier features)", r->fd, r->fd_mean,
           r->fd_cov);
    char pixel[40];
    snprintf(pixel, sizeof pixel, "FD (pixels, %d PCs)", r->pixel_k);
    printf("  %-26s %.4f (mean term %.4f + covariance term %.4f)\n", pixel, r->pixel_fd, r->pixel_fd_mean,
           r->pixel_fd_cov);
    printf("  %-26s %.4f\n", "precision (k=3)", r->precision);
    printf("  %-26s %.4f\n", "recall (k=3)", r->recall);
    if (!isnan(r->accuracy)) printf("  %-26s %.4f (labels %s)\n", "class accuracy", r->accuracy, c->labels);
    printf("  %-26s %.4f\n", "classifier acc. on real", r->real_accuracy);
    if (!isnan(r->psnr)) printf("  %-26s %.3f dB (vs %s)\n", "PSNR", r->psnr, c->reference);
    if (!isnan(r->ssim)) printf("  %-26s %.5f\n", "SSIM", r->ssim);
}

static eb_status write_output(const eval_context *c, const eval_result *r, const eval_detail *d, const float *fake,
                              uint64_t checksum) {
    eb_h5w *w;
    eb_status st = eb_h5w_create(&w, c->output);
    if (st) return st;
    const int N = r->n_samples, D = r->D;
    int64_t v[1] = {D}, mat[2] = {D, D}, rows[1] = {N}, feat[2] = {N, D};
    eb_h5w_write(w, "real/mu", EB_H5_F64, d->mu_real, 1, v);
    eb_h5w_write(w, "real/cov", EB_H5_F64, d->cov_real, 2, mat);
    eb_h5w_write(w, "samples/mu", EB_H5_F64, d->mu_fake, 1, v);
    eb_h5w_write(w, "samples/cov", EB_H5_F64, d->cov_fake, 2, mat);
    eb_h5w_write(w, "samples/features", EB_H5_F32, fake, 2, feat);
    eb_h5w_write(w, "samples/predicted", EB_H5_I32, d->predicted, 1, rows);
    if (d->psnr) eb_h5w_write(w, "per_image/psnr", EB_H5_F64, d->psnr, 1, rows);
    if (d->ssim) eb_h5w_write(w, "per_image/ssim", EB_H5_F64, d->ssim, 1, rows);
    const char *skeys[] = {"mode", "samples", "dataset", "labels_dataset", "reference", "classifier", "real_split"};
    const char *svals[] = {c->mode, c->samples, c->dataset, c->labels, c->reference, c->classifier, c->split};
    for (size_t i = 0; i < sizeof skeys / sizeof skeys[0]; i++)
        if (svals[i]) eb_h5w_attr_str(w, NULL, skeys[i], svals[i]);
    char sum[24];
    snprintf(sum, sizeof sum, "%016" PRIx64, checksum);
    eb_h5w_attr_str(w, NULL, "classifier_checksum", sum);
    eb_h5w_attr_str(w, NULL, "ebcache_version", EBCACHE_VERSION);
    eb_h5w_attr_i64(w, NULL, "n_samples", N);
    eb_h5w_attr_i64(w, NULL, "n_real", r->n_real);
    eb_h5w_attr_i64(w, NULL, "k", EB_PR_K);
    eb_h5w_attr_i64(w, NULL, "pixel_pca_k", r->pixel_k);
    const char *fkeys[] = {"fd", "fd_mean_term", "fd_cov_term", "pixel_fd", "pixel_fd_mean_term", "pixel_fd_cov_term",
                           "precision", "recall", "accuracy", "classifier_real_accuracy", "psnr", "ssim"};
    const double fvals[] = {r->fd, r->fd_mean, r->fd_cov, r->pixel_fd, r->pixel_fd_mean, r->pixel_fd_cov,
                            r->precision, r->recall, r->accuracy, r->real_accuracy, r->psnr, r->ssim};
    for (size_t i = 0; i < sizeof fkeys / sizeof fkeys[0]; i++)
        if (!isnan(fvals[i])) eb_h5w_attr_f64(w, NULL, fkeys[i], fvals[i]);
    return eb_h5w_commit(w);
}

/* ------------------------------------------------------------------------ */
/* The command                                                               */

static const char *usage_text =
    "usage: ebcache eval --samples S.h5[,S2.h5,...] [--dataset samples] [--labels-dataset y|none]\n"
    "                    [--reference U.h5[,...]] [--classifier PATH] [--real test|train] [--n-real N]\n"
    "                    [--real-cache C.h5] [--output METRICS.h5] [--json]\n"
    "       ebcache eval --floor [--n-real N] [--output METRICS.h5] [--json]\n"
    "\n"
    "Samples are images (N,1,H,W) in [-1, 1] (clipped; a side above 28 is centre-cropped). FD and\n"
    "precision/recall (k=3) compare classifier features with a real split, and FD is split into its\n"
    "mean and covariance terms; a second judge, FD in the top 32 principal components of the real\n"
    "pixels, needs no classifier. Labels give the class accuracy; --reference (the same seeds\n"
    "without caching) gives PSNR/SSIM (data range 2).\n"
    "A comma-separated list of files (shards of one run) counts as one set of samples.\n"
    "--floor: 10k training images instead of samples, against the test set (the real-data floor).";

int cmd_eval(int argc, char **argv) {
    eb_opt opts[] = {
        {"samples", "S.h5[,...]", "generated samples: a file, or shards concatenated in order", NULL},
        {"dataset", "NAME", "dataset of the samples, and of the reference (default samples)", NULL},
        {"labels-dataset", "NAME", "labels (N) of the samples (default y, when present; none: no accuracy)", NULL},
        {"reference", "U.h5[,...]", "uncached samples of the same seeds (and shards): PSNR and SSIM", NULL},
        {"classifier", "PATH", "classifier weights (default data/" CLASSIFIER_FILE " next to the binary)", NULL},
        {"real", "test|train", "real Fashion-MNIST split (default test)", NULL},
        {"n-real", "N", "real images: the first N of the split, up to all (default 10000)", NULL},
        {"real-cache", "C.h5", "cache of the real features, reused while classifier, split and N match", NULL},
        {"floor", NULL, "the real-data floor: the first N (--n-real) training images against the test set", NULL},
        {"output", "METRICS.h5", "numbers as attributes, feature statistics, per-image PSNR/SSIM", NULL},
        {"json", NULL, "print JSON instead of the table", NULL},
        {"data-dir", "DIR", "Fashion-MNIST files (default $EBCACHE_FMNIST_DIR or " EB_FMNIST_DEFAULT_DIR ")", NULL},
        {"threads", "N", "threads (default: all cores)", NULL},
    };
    const int n = sizeof opts / sizeof opts[0];
    int rc = eb_args_parse(argc, argv, opts, n, usage_text);
    if (rc) return rc < 0 ? 0 : rc;
    const int floor_mode = eb_arg(opts, n, "floor") != NULL;
    eval_context ctx = {
        .mode = floor_mode ? "floor" : "samples", .samples = eb_arg(opts, n, "samples"),
        .reference = eb_arg(opts, n, "reference"), .output = eb_arg(opts, n, "output"),
        .split = eb_arg(opts, n, "real") ? eb_arg(opts, n, "real") : "test",
    };
    const char *labels_opt = eb_arg(opts, n, "labels-dataset"), *v;
    if (floor_mode && (ctx.samples || ctx.reference || labels_opt || eb_arg(opts, n, "dataset") ||
                       strcmp(ctx.split, "test"))) {
        fprintf(stderr, "ebcache eval: --floor compares training images with the test set; it takes no --samples, "
                        "--reference, --dataset, --labels-dataset or --real\n");
        return 2;
    }
    if ((rc = eb_output_check(CMD, ctx.output, EB_INPUTS(ctx.samples, ctx.reference, eb_arg(opts, n, "classifier"), eb_arg(opts, n, "real-cache"))))) return rc;
    if (!floor_mode && !ctx.samples) {
        fprintf(stderr, "ebcache eval: give --samples S.h5 or --floor (see --help)\n");
        return 2;
    }
    if (strcmp(ctx.split, "test") && strcmp(ctx.split, "train")) {
        fprintf(stderr, "ebcache eval: --real: '%s' is not test or train\n", ctx.split);
        return 2;
    }
    long n_real = 10000, threads = 0;
    if ((v = eb_arg(opts, n, "n-real")) && (rc = eb_arg_int(CMD, "n-real", v, EB_PR_K + 1, 60000, &n_real))) return rc;
    if ((v = eb_arg(opts, n, "threads")) && (rc = eb_arg_int(CMD, "threads", v, 1, 1024, &threads))) return rc;
    eb_set_threads((int)threads);
    if (!floor_mode) ctx.dataset = eb_arg(opts, n, "dataset") ? eb_arg(opts, n, "dataset") : "samples";
    if (!(ctx.classifier = eb_arg(opts, n, "classifier")) && !(ctx.classifier = default_classifier_path()))
        return eb_report(CMD, EB_EINPUT);
    const char *dir = eb_arg(opts, n, "data-dir") ? eb_arg(opts, n, "data-dir") : getenv("EBCACHE_FMNIST_DIR");

    eb_clf *m = NULL;
    eb_fmnist real = {0}, train = {0};
    float *x = NULL, *x_full = NULL, *ref = NULL, *fake = NULL, *logits = NULL;
    real_reference real_ref = {0};
    int32_t *y = NULL;
    eval_result r = {.fd = NAN, .fd_mean = NAN, .fd_cov = NAN, .pixel_fd = NAN, .pixel_fd_mean = NAN,
                     .pixel_fd_cov = NAN, .precision = NAN, .recall = NAN, .accuracy = NAN, .real_accuracy = NAN,
                     .psnr = NAN, .ssim = NAN};
    eval_detail d = {0};
    int64_t dims[4];
    eb_status st = eb_clf_load(&m, ctx.classifier, NULL, NULL);
    if (st) goto done;
    const int S = m->cfg.side, K = m->cfg.classes, D = m->cfg.dim;
    if (S != 28 || K != EB_FMNIST_CLASSES) {
        st = eb_fail(EB_EINPUT, "%s: a classifier of %dx%d images and %d classes does not fit Fashion-MNIST",
                     ctx.classifier, S, S, K);
        goto done;
    }
    /* Inputs first: bad ones are reported before any long computation. */
    if (floor_mode) {
        st = eb_fmnist_load(&train, dir, "train", 0, 0);
        if (!st) {
            train.n = train.n < n_real ? train.n : (int)n_real;
            x = train.images, y = train.labels, dims[0] = train.n;
            ctx.samples = "Fashion-MNIST train", ctx.labels = "train labels";
        }
    } else {
        /* labels: --labels-dataset, else y when the first file has it */
        char first[PATH_MAX];
        snprintf(first, sizeof first, "%.*s", (int)strcspn(ctx.samples, ","), ctx.samples);
        if (labels_opt && strcmp(labels_opt, "none")) ctx.labels = labels_opt;
        else if (!labels_opt && has_dataset(first, "y")) ctx.labels = "y";
        st = read_image_list(ctx.samples, ctx.dataset, S, ctx.labels, K, &x, ctx.reference ? &x_full : NULL, &y,
                             dims);
        if (!st && ctx.reference) {
            int64_t rdims[4];
            float *ref_crop = NULL;
            st = read_image_list(ctx.reference, ctx.dataset, S, NULL, K, &ref_crop, &ref, NULL, rdims);
            free(ref_crop);
            if (!st && memcmp(rdims, dims, sizeof rdims))
                st = eb_fail(EB_EINPUT, "%s: dataset '%s' has shape [%lld, 1, %lld, %lld] but the samples have "
                                        "[%lld, 1, %lld, %lld]: the reference must hold the same seeds",
                             ctx.reference, ctx.dataset, (long long)rdims[0], (long long)rdims[2],
                             (long long)rdims[3], (long long)dims[0], (long long)dims[2], (long long)dims[3]);
        }
    }
    if (!st) st = eb_fmnist_load(&real, dir, strcmp(ctx.split, "test") ? "train" : "t10k", 0, 0);
    if (st) goto done;
    real.n = real.n < n_real ? real.n : (int)n_real; /* the first N */
    r.n_samples = (int)dims[0], r.n_real = real.n, r.D = D;
    const int N = r.n_samples;

    fake = malloc((size_t)N * D * sizeof(float));
    logits = malloc((size_t)N * K * sizeof(float));
    d.predicted = malloc((size_t)N * sizeof(int32_t));
    if (!fake || !logits || !d.predicted) {
        st = eb_fail(EB_ERUNTIME, "out of memory for the features of %d images", N);
        goto done;
    }
    st = eb_clf_features(m, fake, logits, x, N);
    if (st) { /* name the file the bad image came from */
        st = eb_fail(st, "%s: %s", ctx.samples, eb_last_error());
        goto done;
    }
    argmax_rows(d.predicted, logits, N, K);
    if (y) st = eb_accuracy(&r.accuracy, logits, y, N, K);
    if (!st) st = real_reference_get(&real_ref, m, &real, S * S, ctx.split, eb_arg(opts, n, "real-cache"));
    r.real_accuracy = real_ref.acc;
    if (!st) st = distribution_metrics(&r, &d, fake, N, real_ref.feat, real.n, D);
    if (!st) st = pixel_metrics(&r, x, N, &real_ref);
    if (!st && ctx.reference) {
        const int H = (int)dims[2];
        size_t count = (size_t)N * H * H;
        clip_unit(x_full, count);
        clip_unit(ref, count);
        d.psnr = malloc(N * sizeof(double)), d.ssim = malloc(N * sizeof(double));
        if (!d.psnr || !d.ssim) st = eb_fail(EB_ERUNTIME, "out of memory");
        if (!st) st = eb_psnr(d.psnr, &r.psnr, x_full, ref, N, 1, H, H, DATA_RANGE);
        if (!st) st = eb_ssim(d.ssim, &r.ssim, x_full, ref, N, 1, H, H, DATA_RANGE);
    }
    if (!st && ctx.output) st = write_output(&ctx, &r, &d, fake, eb_clf_checksum(m));
    if (!st) {
        if (eb_arg(opts, n, "json")) print_json(&ctx, &r);
        else print_table(&ctx, &r);
    }
done:
    rc = eb_report(CMD, st);
    if (!floor_mode) {
        if (x_full != x) free(x_full);
        free(x);
        free(y);
    }
    free(ref), free(fake), free(logits);
    real_reference_free(&real_ref);
    detail_free(&d);
    eb_fmnist_free(&real);
    eb_fmnist_free(&train);
    eb_clf_free(m);
    return rc;
}
