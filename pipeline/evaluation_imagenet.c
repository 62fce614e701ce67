/* evaluation_imagenet.c — the ImageNet judge of `eval` (pipeline/evaluation.h, docs/metrics.md
 * "ImageNet"): the ADM evaluator's (openai/guided-diffusion evaluations/evaluator.py) FID, sFID,
 * Inception Score and precision/recall of .npz samples against a reference batch, the images
 * through the FID Inception network (pipeline/features_inception.h). */
#include "pipeline/evaluation_internal.h"

#include "analyze/adm_metrics.h"
#include "analyze/metrics.h"
#include "pipeline/features_inception.h"
#include "runtime/check.h"
#include "runtime/h5io.h"
#include "runtime/npz.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CACHE_MARK "ebcache_reference_activations"
#define CHECKSUM_ATTR "inception_checksum"

/* ------------------------------------------------------------------------ */
/* The numbers from activations                                              */

void eb_adm_stats_free(eb_adm_stats *s) {
    free(s->mu), free(s->sigma), free(s->mu_s), free(s->sigma_s);
    *s = (eb_adm_stats){0};
}

static eb_status stats_alloc(eb_adm_stats *s, int D, int Ds) {
    s->mu = malloc(D * sizeof(double)), s->sigma = malloc((size_t)D * D * sizeof(double));
    s->mu_s = malloc(Ds * sizeof(double)), s->sigma_s = malloc((size_t)Ds * Ds * sizeof(double));
    if (s->mu && s->sigma && s->mu_s && s->sigma_s) return EB_OK;
    eb_adm_stats_free(s);
    return eb_fail(EB_ERUNTIME, "out of memory for the statistics of %d and %d features", D, Ds);
}

/* Both statistics of a set of activations. */
static eb_status stats_of(eb_adm_stats *s, const eb_adm_activations *a) {
    eb_status st = stats_alloc(s, a->pool_dim, a->spatial_dim);
    if (!st) st = eb_feature_stats(s->mu, s->sigma, a->pool, a->n, a->pool_dim);
    if (!st) st = eb_feature_stats(s->mu_s, s->sigma_s, a->spatial, a->n, a->spatial_dim);
    if (st) eb_adm_stats_free(s);
    return st;
}

/* ref_stats: finite, of the activations' widths (their sizes are the caller's). */
static eb_status check_stats(const eb_adm_stats *s, int D, int Ds) {
    const int64_t v[1] = {D}, m[2] = {D, D}, vs[1] = {Ds}, ms[2] = {Ds, Ds};
    eb_status st;
    if ((st = eb_check_finite_f64(s->mu, v, 1, EB_EINPUT, "reference mu")) ||
        (st = eb_check_finite_f64(s->sigma, m, 2, EB_EINPUT, "reference sigma")) ||
        (st = eb_check_finite_f64(s->mu_s, vs, 1, EB_EINPUT, "reference mu_s")) ||
        (st = eb_check_finite_f64(s->sigma_s, ms, 2, EB_EINPUT, "reference sigma_s")))
        return st;
    return EB_OK;
}

eb_status eb_adm_scores(eb_eval_result *r, eb_adm_stats *sample_stats, const eb_adm_activations *s,
                        const eb_adm_activations *ref, const eb_adm_stats *ref_stats) {
    const int D = s->pool_dim, Ds = s->spatial_dim;
    if (sample_stats) *sample_stats = (eb_adm_stats){0};
    if (D < 1 || Ds < 1 || ref->pool_dim != D || ref->spatial_dim != Ds)
        return eb_fail(EB_EINPUT, "ADM scores: samples of %d pool and %d spatial features against a reference of %d "
                                  "and %d", D, Ds, ref->pool_dim, ref->spatial_dim);
    if (s->n <= EB_ADM_PR_K || ref->n <= EB_ADM_PR_K)
        return eb_fail(EB_EINPUT, "ADM scores: %d samples and %d reference images; precision/recall (k = %d) need "
                                  "more than %d of each", s->n, ref->n, EB_ADM_PR_K, EB_ADM_PR_K);
    if ((s->classes > 0) != (s->logits != NULL))
        return eb_fail(EB_EINPUT, "ADM scores: %d classes with%s logits", s->classes, s->logits ? "" : "out");
    eb_adm_stats mine = {0}, theirs = {0};
    eb_status st = ref_stats ? check_stats(ref_stats, D, Ds) : EB_OK;
    if (!st) st = stats_of(&mine, s);
    if (!st && !ref_stats) st = stats_of(&theirs, ref);
    const eb_adm_stats *rs = ref_stats ? ref_stats : &theirs;
    const float *rpool = ref_stats ? NULL : ref->pool, *rspatial = ref_stats ? NULL : ref->spatial;
    double mean_s, cov_s;
    if (!st)
        st = eb_frechet_terms_rows(&r->fd_mean, &r->fd_cov, s->pool, s->n, mine.mu, mine.sigma, rpool, ref->n, rs->mu,
                                   rs->sigma, D);
    if (!st)
        st = eb_frechet_terms_rows(&mean_s, &cov_s, s->spatial, s->n, mine.mu_s, mine.sigma_s, rspatial, ref->n,
                                   rs->mu_s, rs->sigma_s, Ds);
    if (!st) r->fd = r->fd_mean + r->fd_cov, r->sfid = mean_s + cov_s;
    r->inception_score = NAN;
    if (!st && s->logits)
        st = eb_adm_inception_score(&r->inception_score, s->logits, s->n, s->classes, EB_ADM_IS_SPLIT);
    if (!st) st = eb_adm_precision_recall(&r->precision, &r->recall, ref->pool, ref->n, s->pool, s->n, D, EB_ADM_PR_K,
                                          EB_ADM_PR_BATCH);
    r->n_samples = s->n, r->n_real = ref->n, r->D = D, r->k = EB_ADM_PR_K;
    eb_adm_stats_free(&theirs);
    if (!st && sample_stats) *sample_stats = mine;
    else eb_adm_stats_free(&mine);
    return st;
}

/* ------------------------------------------------------------------------ */
/* The reference batch                                                       */

static const char *const STAT_NAMES[4] = {"mu", "sigma", "mu_s", "sigma_s"};

/* The reference's arr_0 CRC-32 and, when it has them, its mu, sigma, mu_s and sigma_s (all four:
 * float64 of the network's widths, finite) into *s (*present 1), else *present 0. */
static eb_status read_reference(const char *path, uint32_t *crc, eb_adm_stats *s, int *present) {
    eb_npz *z;
    *present = 0;
    eb_status st = eb_npz_open(&z, path);
    if (st) return st;
    st = eb_npz_member_crc(z, "arr_0", crc);
    int have = 0;
    for (int i = 0; i < 4; i++) have += eb_npz_has(z, STAT_NAMES[i]);
    for (int i = 0; !st && have && have < 4; i++)
        if (!eb_npz_has(z, STAT_NAMES[i]))
            st = eb_fail(EB_EINPUT, "%s: has %d of the statistics mu, sigma, mu_s, sigma_s but no %s: a reference "
                                    "batch holds all four or none", path, have, STAT_NAMES[i]);
    double **dst[4] = {&s->mu, &s->sigma, &s->mu_s, &s->sigma_s};
    const int64_t width[4] = {EB_INCEPTION_POOL, EB_INCEPTION_POOL, EB_INCEPTION_SPATIAL, EB_INCEPTION_SPATIAL};
    for (int i = 0; !st && have == 4 && i < 4; i++) {
        eb_npy_header h;
        const int rank = i % 2 + 1;
        st = eb_npz_read_f64(z, STAT_NAMES[i], width[i] * width[i], &h, dst[i]);
        if (!st && (h.rank != rank || h.shape[0] != width[i] || (rank == 2 && h.shape[1] != width[i])))
            st = eb_fail(EB_EINPUT, "%s: %s has rank %d and %lld rows; expected %s of %lld", path, STAT_NAMES[i],
                         h.rank, h.rank ? (long long)h.shape[0] : 0LL, rank == 1 ? "a vector" : "a square matrix",
                         (long long)width[i]);
        if (!st) {
            char what[600];
            snprintf(what, sizeof what, "%s: %s", path, STAT_NAMES[i]);
            const int64_t dims[2] = {width[i], width[i]};
            st = eb_check_finite_f64(*dst[i], dims, rank, EB_EINPUT, what);
        }
    }
    eb_npz_close_reader(z);
    if (st) eb_adm_stats_free(s);
    else *present = have == 4;
    return st;
}

/* ------------------------------------------------------------------------ */
/* The reference activations, cached                                         */

/* The cache's key: the weights, the reference's arr_0 and its shape. */
typedef struct {
    const char *checksum;
    uint32_t crc;
    long n;
    int height, width;
} cache_key;

/* Reads the reference activations of a cache with this key into pool and spatial: 1 on a hit, 0
 * on a miss (no file, or a cache of other weights or another reference: stale, recomputed), −1
 * with a message naming the file when it is not such a cache (left alone) or is corrupt. */
static int read_cache(const char *path, const cache_key *k, float **pool, float **spatial) {
    if (access(path, F_OK) != 0) return 0;
    eb_h5 *f = NULL;
    if (eb_h5_open(&f, path) || !eb_h5_has_attr(f, NULL, CACHE_MARK)) {
        char why[1024] = "";
        if (!f) snprintf(why, sizeof why, " (%s)", eb_last_error());
        if (f) eb_h5_close(f);
        eb_fail(EB_EINPUT, "reference-activation cache %s exists and is not an ebcache reference-activation cache%s; "
                           "remove it or pick another path", path, why);
        return -1;
    }
    char *sum = NULL;
    int64_t crc = -1, n = -1, h = -1, w = -1, dims[2];
    int hit = -1;
    if (eb_h5_attr_str(f, NULL, CHECKSUM_ATTR, &sum) || eb_h5_attr_i64(f, NULL, "reference_crc32", &crc) ||
        eb_h5_attr_i64(f, NULL, "n_reference", &n) || eb_h5_attr_i64(f, NULL, "image_height", &h) ||
        eb_h5_attr_i64(f, NULL, "image_width", &w)) {
        char why[1024];
        snprintf(why, sizeof why, "%s", eb_last_error());
        eb_fail(EB_EINPUT, "reference-activation cache %s is corrupt (remove it): %s", path, why);
    } else if (strcmp(sum, k->checksum) || crc != k->crc || n != k->n || h != k->height || w != k->width) {
        hit = 0;
    } else if (!eb_h5_read_f32(f, "pool", 2, (int64_t[]){n, EB_INCEPTION_POOL}, pool, dims, EB_H5_FINITE) &&
               !eb_h5_read_f32(f, "spatial", 2, (int64_t[]){n, EB_INCEPTION_SPATIAL}, spatial, dims, EB_H5_FINITE)) {
        hit = 1;
    } else {
        char why[1024];
        snprintf(why, sizeof why, "%s", eb_last_error());
        eb_fail(EB_EINPUT, "reference-activation cache %s is corrupt (remove it): %s", path, why);
    }
    if (hit != 1) {
        free(*pool), free(*spatial);
        *pool = *spatial = NULL;
    }
    free(sum);
    eb_h5_close(f);
    return hit;
}

static eb_status write_cache(const char *path, const cache_key *k, const float *pool, const float *spatial) {
    eb_h5w *w;
    eb_status st = eb_h5w_create(&w, path);
    if (st) return st;
    eb_h5w_write(w, "pool", EB_H5_F32, pool, 2, (int64_t[]){k->n, EB_INCEPTION_POOL});
    eb_h5w_write(w, "spatial", EB_H5_F32, spatial, 2, (int64_t[]){k->n, EB_INCEPTION_SPATIAL});
    eb_h5w_attr_i64(w, NULL, CACHE_MARK, 1);
    eb_h5w_attr_str(w, NULL, CHECKSUM_ATTR, k->checksum);
    eb_h5w_attr_i64(w, NULL, "reference_crc32", k->crc);
    eb_h5w_attr_i64(w, NULL, "n_reference", k->n);
    eb_h5w_attr_i64(w, NULL, "image_height", k->height);
    eb_h5w_attr_i64(w, NULL, "image_width", k->width);
    eb_h5w_attr_str(w, NULL, "ebcache_version", EBCACHE_VERSION);
    return eb_h5w_commit(w);
}

/* ------------------------------------------------------------------------ */
/* Output                                                                    */

int eb_eval_fields_imagenet(const eb_eval_params *p, const eb_eval_result *r, eb_eval_field out[EB_EVAL_FIELDS]) {
    const eb_eval_field all[] = {
        {"samples", EB_FIELD_TEXT, r->samples, 0},
        {"reference", EB_FIELD_TEXT, p->reference_batch, 0},
        {"inception", EB_FIELD_TEXT, p->inception, 0},
        {"extractor", EB_FIELD_TEXT, r->extractor, 0},
        {"n_samples", EB_FIELD_INT, NULL, r->n_samples},
        {"n_reference", EB_FIELD_INT, NULL, r->n_real},
        {"fid", EB_FIELD_REAL, NULL, r->fd},
        {"sfid", EB_FIELD_REAL, NULL, r->sfid},
        {"inception_score", EB_FIELD_REAL, NULL, r->inception_score},
        {"precision", EB_FIELD_REAL, NULL, r->precision},
        {"recall", EB_FIELD_REAL, NULL, r->recall},
    };
    const int count = (int)(sizeof all / sizeof all[0]);
    _Static_assert(sizeof all / sizeof all[0] <= EB_EVAL_FIELDS, "EB_EVAL_FIELDS bounds the fields");
    int n = 0;
    for (int i = 0; i < count; i++)
        if (all[i].kind != EB_FIELD_TEXT || all[i].text) out[n++] = all[i];
    return n;
}

static eb_status write_output(const eb_eval_params *p, const eb_eval_result *r, const eb_adm_stats *s,
                              const char *checksum, int ref_stats_from_file) {
    eb_h5w *w;
    eb_status st = eb_h5w_create(&w, p->output);
    if (st) return st;
    const int64_t v[1] = {EB_INCEPTION_POOL}, m[2] = {EB_INCEPTION_POOL, EB_INCEPTION_POOL};
    const int64_t vs[1] = {EB_INCEPTION_SPATIAL}, ms[2] = {EB_INCEPTION_SPATIAL, EB_INCEPTION_SPATIAL};
    /* the samples' statistics as a reference batch stores them: a later run can compare against them */
    eb_h5w_write(w, "samples/mu", EB_H5_F64, s->mu, 1, v);
    eb_h5w_write(w, "samples/sigma", EB_H5_F64, s->sigma, 2, m);
    eb_h5w_write(w, "samples/mu_s", EB_H5_F64, s->mu_s, 1, vs);
    eb_h5w_write(w, "samples/sigma_s", EB_H5_F64, s->sigma_s, 2, ms);
    eb_eval_write_fields(w, p, r);
    eb_h5w_attr_str(w, NULL, "reference_statistics", ref_stats_from_file ? "file" : "arr_0");
    eb_h5w_attr_str(w, NULL, CHECKSUM_ATTR, checksum);
    eb_h5w_attr_str(w, NULL, "ebcache_version", EBCACHE_VERSION);
    return eb_h5w_commit(w);
}

/* ------------------------------------------------------------------------ */
/* The call                                                                  */

static eb_status check_params(const eb_eval_params *p) {
    if (!p->samples) return eb_fail(EB_EINPUT, "no samples to evaluate");
    if (!p->reference_batch) return eb_fail(EB_EINPUT, "the ImageNet judge needs a reference batch (.npz)");
    if ((p->dataset && strcmp(p->dataset, "samples")) || p->labels_dataset || p->reference || p->classifier ||
        p->features || (p->real_split && strcmp(p->real_split, "test")) || p->n_real != 10000 || p->fmnist_dir ||
        p->floor)
        return eb_fail(EB_EINPUT, "the ImageNet judge (Inception weights given) takes no dataset, labels dataset, "
                                  "PSNR reference, classifier, extractor, real split, real count, Fashion-MNIST "
                                  "folder or floor");
    if (p->batch < 1) return eb_fail(EB_EINPUT, "batch %d: at least 1 image", p->batch);
    return EB_OK;
}

/* The numbers of r that rank 0 computed, on every rank. */
static eb_status share_result(const eb_comm *c, eb_eval_result *r) {
    double v[10] = {r->fd, r->fd_mean, r->fd_cov, r->sfid, r->inception_score, r->precision, r->recall,
                    r->n_samples, r->n_real, r->D};
    eb_status st = c->size > 1 ? c->broadcast(c, v, sizeof v, 0) : EB_OK;
    r->fd = v[0], r->fd_mean = v[1], r->fd_cov = v[2], r->sfid = v[3], r->inception_score = v[4];
    r->precision = v[5], r->recall = v[6], r->n_samples = (int)v[7], r->n_real = (int)v[8], r->D = (int)v[9];
    return st;
}

eb_status eb_evaluate_imagenet(const eb_eval_params *p, eb_eval_result *r) {
    const eb_comm *c = p->comm ? p->comm : eb_comm_serial();
    eb_eval_result res = {.k = EB_ADM_PR_K, .fd = NAN, .fd_mean = NAN, .fd_cov = NAN, .sfid = NAN,
                          .inception_score = NAN, .pixel_fd = NAN, .pixel_fd_mean = NAN, .pixel_fd_cov = NAN,
                          .precision = NAN, .recall = NAN, .accuracy = NAN, .real_accuracy = NAN, .psnr = NAN,
                          .ssim = NAN, .samples = p->samples};
    eb_npz_images si, ri;
    eb_adm_stats ref_stats = {0}, sample_stats = {0};
    int from_file = 0;
    uint32_t crc = 0;
    eb_features *fx = NULL;
    eb_inception_acts ref = {0}, smp = {0};
    /* inputs first: bad ones are reported before any long computation */
    eb_status st = check_params(p);
    if (!st) st = eb_npz_images_check(p->samples, &si);
    if (!st) st = eb_npz_images_check(p->reference_batch, &ri);
    if (!st) st = read_reference(p->reference_batch, &crc, &ref_stats, &from_file);
    if (!st && (si.n <= EB_ADM_PR_K || ri.n <= EB_ADM_PR_K))
        st = eb_fail(EB_EINPUT, "%s: %ld images; FID and precision/recall (k = %d) need more than %d",
                     si.n <= EB_ADM_PR_K ? p->samples : p->reference_batch, si.n <= EB_ADM_PR_K ? si.n : ri.n,
                     EB_ADM_PR_K, EB_ADM_PR_K);
    if (!st) st = eb_features_open_inception(&fx, p->inception, si.height, p->device);
    if (!st) snprintf(res.extractor, sizeof res.extractor, "%s", fx->name);
    /* the reference activations from the cache (rank 0 reads it and says whether it matched) */
    int hit = 0;
    cache_key key = {.checksum = fx ? fx->checksum : "", .crc = crc, .n = ri.n, .height = ri.height,
                     .width = ri.width};
    if (!st && p->real_cache && c->rank == 0) {
        hit = read_cache(p->real_cache, &key, &ref.pool, &ref.spatial);
        if (hit < 0) st = EB_EINPUT;
    }
    st = eb_comm_agree(c, st);
    if (!st && c->size > 1) st = c->broadcast(c, &hit, sizeof hit, 0);
    eb_npz_act_params ap;
    eb_npz_act_params_defaults(&ap);
    ap.batch = p->batch, ap.comm = c, ap.progress = p->progress;
    if (!st && !hit) {
        ap.label = "the reference";
        st = eb_inception_npz_activations(fx, p->reference_batch, &ap, &ref);
        if (!st) { /* the ranks agreed on the activations; now on rank 0's cache */
            if (p->real_cache && c->rank == 0) st = write_cache(p->real_cache, &key, ref.pool, ref.spatial);
            st = eb_comm_agree(c, st);
        }
    }
    if (!st) {
        ap.label = "the samples";
        st = eb_inception_npz_activations(fx, p->samples, &ap, &smp);
    }
    if (!st) { /* rank 0's numbers and output */
        if (c->rank == 0) {
            const eb_adm_activations sa = {.n = (int)smp.n, .pool_dim = EB_INCEPTION_POOL,
                                           .spatial_dim = EB_INCEPTION_SPATIAL, .classes = fx->classes,
                                           .pool = smp.pool, .spatial = smp.spatial, .logits = smp.logits};
            const eb_adm_activations ra = {.n = (int)ri.n, .pool_dim = EB_INCEPTION_POOL,
                                           .spatial_dim = EB_INCEPTION_SPATIAL, .pool = ref.pool,
                                           .spatial = ref.spatial};
            st = eb_adm_scores(&res, p->output ? &sample_stats : NULL, &sa, &ra, from_file ? &ref_stats : NULL);
            if (!st && p->output) st = write_output(p, &res, &sample_stats, fx->checksum, from_file);
        }
        st = eb_comm_agree(c, st);
    }
    if (!st) st = share_result(c, &res);
    if (!st) *r = res;
    eb_inception_acts_free(&ref), eb_inception_acts_free(&smp);
    eb_adm_stats_free(&ref_stats), eb_adm_stats_free(&sample_stats);
    eb_features_free(fx);
    return st;
}
