/* test_imagenet_eval.c — the ImageNet judge (pipeline/evaluation_imagenet.c) against
 * reference/adm_ref.py (golden adm_eval.h5): eb_adm_scores on fixed random activations (both
 * Fréchet routes, given reference statistics), and eb_evaluate end to end on 32×32 images
 * through the random-weight Inception of tests/inception_fixture.c, against a reference batch
 * with and without mu/sigma; the reference-activation cache (a hit never reads the reference's
 * arr_0, a stale cache is recomputed, a corrupt or foreign one is named); bad inputs named;
 * `ebcache eval --json`'s keys.
 *
 * Tolerances: FID and sFID relative 1e-4 against the evaluator's values (scipy's sqrtm of the
 * singular products of tiny sets strays by up to ~2e-5) and 1e-9 against the exact ones (the nuclear
 * norm route of reference/adm_ref.py); Inception Score relative 1e-6; precision, recall and counts
 * exact. */
#include "analyze/adm_metrics.h"
#include "analyze/metrics.h"
#include "pipeline/evaluation.h"
#include "pipeline/features_inception.h"
#include "runtime/h5io.h"
#include "runtime/npz.h"
#include "tests/cli_util.h"
#include "tests/golden.h"
#include "tests/inception_fixture.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define GOLD "adm_eval.h5"
#define FD_TOL 1e-4
#define EXACT_TOL 1e-9
/* End to end the features are this build's: within 1e-6 of the ones the golden was computed from
 * (checked below), which moves a Fréchet distance of these tiny sets by up to ~1e-7 relative. */
#define E2E_EXACT_TOL 1e-5
#define IS_TOL 1e-6

static double golden_scalar(const char *name) {
    double *v = golden_f64(GOLD, name, 0, NULL), x = *v;
    free(v);
    return x;
}

static void expect_rel(double got, const char *name, double tol) {
    const double want = golden_scalar(name), err = fabs(got - want) / fabs(want);
    cr_log_info("%s: %.10g vs %.10g (rel %.2g)", name, got, want, err);
    cr_expect_leq(err, tol, "%s: %.12g vs %.12g (rel %g)", name, got, want, err);
}

/* A Fréchet distance against both golden values: the evaluator's (scipy's sqrtm) and the exact one. */
static void expect_fd_within(double got, const char *name, double exact_tol) {
    char exact[64];
    snprintf(exact, sizeof exact, "%s_exact", name);
    expect_rel(got, name, FD_TOL);
    expect_rel(got, exact, exact_tol);
}
static void expect_fd(double got, const char *name) { expect_fd_within(got, name, EXACT_TOL); }

static void expect_exact(double got, const char *name) {
    cr_expect_eq(got, golden_scalar(name), "%s: %.12g vs %.12g", name, got, golden_scalar(name));
}

/* ------------------------------------------------------------------------ */
/* From activations                                                          */

Test(imagenet_eval, scores_of_activations) {
    int64_t d[2], ds[2], dl[2], dr[2];
    float *pool = golden_f32(GOLD, "acts/sample_pool", 2, d), *spatial = golden_f32(GOLD, "acts/sample_spatial", 2, ds);
    float *logits = golden_f32(GOLD, "acts/sample_logits", 2, dl);
    float *rpool = golden_f32(GOLD, "acts/ref_pool", 2, dr), *rspatial = golden_f32(GOLD, "acts/ref_spatial", 2, NULL);
    const eb_adm_activations s = {(int)d[0], (int)d[1], (int)ds[1], (int)dl[1], pool, spatial, logits};
    const eb_adm_activations ref = {(int)dr[0], (int)d[1], (int)ds[1], 0, rpool, rspatial, NULL};
    eb_eval_result r = {0};
    eb_adm_stats mine;
    /* FID through the full covariances (30 rows > 24), sFID through the reference's 26 rows */
    cr_assert_eq(eb_adm_scores(&r, &mine, &s, &ref, NULL), EB_OK, "%s", eb_last_error());
    expect_fd(r.fd, "acts/rows_fid");
    expect_fd(r.sfid, "acts/rows_sfid");
    expect_rel(r.inception_score, "acts/is", IS_TOL);
    expect_exact(r.precision, "acts/precision");
    expect_exact(r.recall, "acts/recall");
    cr_expect(r.n_samples == 30 && r.n_real == 26 && r.D == 24 && r.k == EB_ADM_PR_K);
    cr_expect_eq(r.fd, r.fd_mean + r.fd_cov);
    /* the low-rank route gives eb_frechet_terms' number, but for the square roots of the D × D
     * route's round-off eigenvalues (seen 6e-9 relative; the low-rank one is within 2e-16 of the
     * exact value) */
    double *mu = malloc(40 * sizeof *mu), *sigma = malloc(40 * 40 * sizeof *sigma), mean, cov;
    cr_assert_eq(eb_feature_stats(mu, sigma, rspatial, 26, 40), EB_OK);
    cr_assert_eq(eb_frechet_terms(&mean, &cov, mine.mu_s, mine.sigma_s, mu, sigma, 40), EB_OK);
    cr_expect_leq(fabs(mean + cov - r.sfid), 1e-7 * fabs(r.sfid), "low rank %.15g vs full %.15g", r.sfid, mean + cov);
    free(mu), free(sigma);
    eb_adm_stats_free(&mine);

    /* against given statistics: sFID through the samples' 30 rows */
    eb_adm_stats given = {golden_f64(GOLD, "acts/ref_mu", 1, NULL), golden_f64(GOLD, "acts/ref_sigma", 2, NULL),
                          golden_f64(GOLD, "acts/ref_mu_s", 1, NULL), golden_f64(GOLD, "acts/ref_sigma_s", 2, NULL)};
    cr_assert_eq(eb_adm_scores(&r, NULL, &s, &ref, &given), EB_OK, "%s", eb_last_error());
    expect_fd(r.fd, "acts/stats_fid");
    expect_fd(r.sfid, "acts/stats_sfid");
    expect_exact(r.precision, "acts/precision");

    /* bad input: named */
    given.sigma_s[7] = NAN;
    cr_expect_eq(eb_adm_scores(&r, NULL, &s, &ref, &given), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "reference sigma_s"), "%s", eb_last_error());
    const eb_adm_activations narrow = {ref.n, ref.pool_dim - 1, ref.spatial_dim, 0, rpool, rspatial, NULL};
    cr_expect_eq(eb_adm_scores(&r, NULL, &s, &narrow, NULL), EB_EINPUT);
    const eb_adm_activations few = {3, s.pool_dim, s.spatial_dim, 0, pool, spatial, NULL};
    cr_expect_eq(eb_adm_scores(&r, NULL, &few, &ref, NULL), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "3 samples"), "%s", eb_last_error());
    /* no logits, no Inception Score */
    const eb_adm_activations no_fc = {s.n, s.pool_dim, s.spatial_dim, 0, pool, spatial, NULL};
    cr_assert_eq(eb_adm_scores(&r, NULL, &no_fc, &ref, NULL), EB_OK, "%s", eb_last_error());
    cr_expect(isnan(r.inception_score));
    eb_adm_stats_free(&given);
    free(pool), free(spatial), free(logits), free(rpool), free(rspatial);
}

/* ------------------------------------------------------------------------ */
/* End to end                                                                */

/* workdir/name: an .npz of arr_0 = images (n, h, w, c) u8 and, when mu is given, the four statistics. */
static const char *write_npz(char *path, const char *name, const uint8_t *images, const int64_t shape[4],
                             eb_npy_dtype dtype, const eb_adm_stats *stats) {
    eb_npz_writer *w;
    cr_assert_eq(eb_npz_create(&w, in_workdir(path, name)), EB_OK, "%s", eb_last_error());
    if (images) cr_assert_eq(eb_npz_write_array(w, "arr_0", dtype, 4, shape, images), EB_OK, "%s", eb_last_error());
    if (stats) {
        const int64_t v = EB_INCEPTION_POOL, m[2] = {v, v}, vs = EB_INCEPTION_SPATIAL, ms[2] = {vs, vs};
        cr_assert_eq(eb_npz_write_array(w, "mu", EB_NPY_F64, 1, &v, stats->mu), EB_OK);
        if (stats->sigma) cr_assert_eq(eb_npz_write_array(w, "sigma", EB_NPY_F64, 2, m, stats->sigma), EB_OK);
        if (stats->mu_s) cr_assert_eq(eb_npz_write_array(w, "mu_s", EB_NPY_F64, 1, &vs, stats->mu_s), EB_OK);
        if (stats->sigma_s) cr_assert_eq(eb_npz_write_array(w, "sigma_s", EB_NPY_F64, 2, ms, stats->sigma_s), EB_OK);
    }
    cr_assert_eq(eb_npz_close(w), EB_OK, "%s", eb_last_error());
    return path;
}

/* The golden images `name` (n, 32, 32, 3) into workdir/file. */
static const char *golden_npz(char *path, const char *file, const char *name, int first, int count) {
    int64_t d[4];
    int32_t *raw = golden_i32(GOLD, name, 4, d);
    if (count < 0) count = (int)d[0] - first;
    const size_t per = (size_t)d[1] * d[2] * d[3];
    uint8_t *u8 = malloc((size_t)count * per);
    for (size_t i = 0; i < (size_t)count * per; i++) u8[i] = (uint8_t)raw[first * per + i];
    const int64_t shape[4] = {count, d[1], d[2], d[3]};
    write_npz(path, file, u8, shape, EB_NPY_U8, NULL);
    free(raw), free(u8);
    return path;
}

/* mu = mu_gen, sigma = G·Gᵀ + diag(d) (exact in float64), and the same for the spatial ones. */
static void golden_stats(eb_adm_stats *s) {
    const char *names[2][3] = {{"e2e/mu_gen", "e2e/G", "e2e/d"}, {"e2e/mu_s_gen", "e2e/G_s", "e2e/d_s"}};
    for (int k = 0; k < 2; k++) {
        int64_t dg[2];
        double *mu = golden_f64(GOLD, names[k][0], 1, NULL), *G = golden_f64(GOLD, names[k][1], 2, dg);
        double *diag = golden_f64(GOLD, names[k][2], 1, NULL);
        const int64_t D = dg[0];
        double *sigma = malloc((size_t)D * D * sizeof *sigma);
        for (int64_t i = 0; i < D; i++)
            for (int64_t j = 0; j < D; j++) {
                double v = i == j ? diag[i] : 0.0;
                for (int64_t c = 0; c < dg[1]; c++) v += G[i * dg[1] + c] * G[j * dg[1] + c];
                sigma[i * D + j] = v;
            }
        if (k == 0) s->mu = mu, s->sigma = sigma;
        else s->mu_s = mu, s->sigma_s = sigma;
        free(G), free(diag);
    }
}

/* A copy of `src` with a byte of arr_0's data changed and its recorded CRC-32 kept: readable
 * headers, but reading the data to its end fails the CRC check. */
static void corrupt_copy(const char *src, const char *dst) {
    FILE *f = fopen(src, "rb");
    cr_assert(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    rewind(f);
    unsigned char *b = malloc(size);
    cr_assert_eq(fread(b, 1, size, f), (size_t)size);
    fclose(f);
    long at = -1;
    for (long i = 0; i + 10 < size && at < 0; i++)
        if (!memcmp(b + i, "\x93NUMPY", 6)) at = i + 10 + (b[i + 8] | b[i + 9] << 8); /* arr_0 comes first */
    cr_assert_gt(at, 0);
    b[at + 100] ^= 0x5a;
    f = fopen(dst, "wb");
    cr_assert_eq(fwrite(b, 1, size, f), (size_t)size);
    fclose(f);
    free(b);
}

static ino_t inode_of(const char *path) {
    struct stat s;
    cr_assert_eq(stat(path, &s), 0, "%s", path);
    return s.st_ino;
}

static eb_eval_params imagenet_params(const char *weights, const char *samples, const char *ref, const char *cache) {
    eb_eval_params p;
    eb_eval_params_defaults(&p);
    p.inception = weights, p.samples = samples, p.reference_batch = ref, p.real_cache = cache;
    return p;
}

/* The numbers of `ebcache eval --json` in out_text: exactly the ImageNet keys. */
static double json_number(const char *key) {
    char k[64];
    snprintf(k, sizeof k, "\"%s\": ", key);
    const char *at = strstr(out_text, k);
    cr_assert(at, "no %s in %s", k, out_text);
    return strtod(at + strlen(k), NULL);
}

static void expect_imagenet_keys(void) {
    const char *keys[] = {"samples", "reference", "inception", "extractor", "n_samples", "n_reference", "fid", "sfid",
                          "inception_score", "precision", "recall"};
    int count = 0;
    for (const char *q = out_text; (q = strstr(q, "\": ")); q++) count++;
    cr_expect_eq(count, (int)(sizeof keys / sizeof keys[0]), "keys: %s", out_text);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char key[64];
        snprintf(key, sizeof key, "\"%s\": ", keys[i]);
        cr_expect(strstr(out_text, key), "no %s in %s", key, out_text);
    }
}

Test(imagenet_eval, end_to_end_cache_and_cli, .init = cli_workdir_make, .fini = cli_workdir_remove, .timeout = 600) {
    char w[512], s1[512], s2[512], ref[512], ref_stats[512], bad[512], cache[512], out[512], samples[1100];
    cr_assert_eq(inception_formula_write(in_workdir(w, "inception.safetensors"), 1, INCEPTION_FIXTURE_SEED), EB_OK,
                 "%s", eb_last_error());
    cr_expect_eq(golden_attr_f64("inception.h5", "seed"), INCEPTION_FIXTURE_SEED);
    golden_npz(s1, "s1.npz", "e2e/s1", 0, -1), golden_npz(s2, "s2.npz", "e2e/s2", 0, -1);
    golden_npz(ref, "ref.npz", "e2e/ref", 0, -1);
    snprintf(samples, sizeof samples, "%s,%s", s1, s2);
    in_workdir(cache, "cache.h5"), in_workdir(out, "metrics.h5");
    int64_t dr[4];
    int32_t *raw = golden_i32(GOLD, "e2e/ref", 4, dr);
    const int n_ref = (int)dr[0];

    /* 1. against the reference's arr_0 (batches of 2: a batch spans the two sample files); the
     * cache is written */
    eb_eval_params p = imagenet_params(w, samples, ref, cache);
    p.output = out, p.batch = 2;
    eb_eval_result r;
    cr_assert_eq(eb_evaluate(&p, &r), EB_OK, "%s", eb_last_error());
    expect_fd_within(r.fd, "e2e/rows_fid", E2E_EXACT_TOL);
    expect_fd_within(r.sfid, "e2e/rows_sfid", E2E_EXACT_TOL);
    expect_rel(r.inception_score, "e2e/is", IS_TOL);
    expect_exact(r.precision, "e2e/precision");
    expect_exact(r.recall, "e2e/recall");
    cr_expect(r.n_samples == 5 && r.n_real == n_ref, "%d %d", r.n_samples, r.n_real);
    cr_expect_str_eq(r.extractor, "inception-v3-fid");
    /* the cached reference activations are the features the golden was computed from */
    eb_h5 *f;
    float *pool;
    int64_t d[2];
    cr_assert_eq(eb_h5_open(&f, cache), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_h5_read_f32(f, "pool", 2, (int64_t[]){n_ref, EB_INCEPTION_POOL}, &pool, d, 0), EB_OK);
    eb_h5_close(f);
    float *want = golden_f32(GOLD, "e2e/ref_pool", 2, NULL);
    const double feat_err = max_rel_err(pool, want, (size_t)n_ref * EB_INCEPTION_POOL);
    cr_expect_leq(feat_err, 1e-6, "features differ from the golden's: %g", feat_err);
    free(pool), free(want);
    double attr;
    cr_assert_eq(eb_h5_open(&f, out), EB_OK, "%s", eb_last_error());
    cr_expect_eq(eb_h5_attr_f64(f, NULL, "fid", &attr), EB_OK);
    cr_expect_eq(attr, r.fd);
    cr_expect_eq(eb_h5_lookup(f, "samples/sigma_s"), EB_H5_DATASET);
    eb_h5_close(f);

    /* 2. `ebcache eval --json` on a reference batch with mu/sigma whose arr_0 data is corrupt (its
     * CRC-32 as recorded): the cache hits, so arr_0 is never read (reading it to its end fails);
     * FID and sFID come from the statistics, precision/recall from the cached activations */
    eb_adm_stats st = {0};
    golden_stats(&st);
    uint8_t *u8 = malloc((size_t)dr[0] * dr[1] * dr[2] * dr[3]);
    for (int64_t i = 0; i < dr[0] * dr[1] * dr[2] * dr[3]; i++) u8[i] = (uint8_t)raw[i];
    write_npz(ref_stats, "ref_stats.npz", u8, dr, EB_NPY_U8, &st);
    corrupt_copy(ref_stats, in_workdir(bad, "ref_bad.npz"));
    const ino_t before = inode_of(cache);
    cr_assert_eq(cli_run("eval --inception %s --samples %s --reference %s --cache %s --json", w, samples, bad, cache),
                 0, "a cache hit reads no arr_0 data: %s", err_text);
    expect_imagenet_keys();
    expect_fd_within(json_number("fid"), "e2e/stats_fid", E2E_EXACT_TOL);
    expect_fd_within(json_number("sfid"), "e2e/stats_sfid", E2E_EXACT_TOL);
    expect_rel(json_number("inception_score"), "e2e/is", IS_TOL);
    expect_exact(json_number("precision"), "e2e/precision");
    expect_exact(json_number("recall"), "e2e/recall");
    cr_expect_eq(json_number("n_samples"), 5);
    cr_expect_eq(json_number("n_reference"), n_ref);
    cr_expect_eq(inode_of(cache), before, "a hit leaves the cache alone");
    /* without the cache the corruption is found (one batch: before any image runs) */
    p = imagenet_params(w, samples, bad, NULL);
    cr_expect_eq(eb_evaluate(&p, &r), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "ref_bad.npz") && strstr(eb_last_error(), "CRC"), "%s", eb_last_error());

    /* 3. a stale cache (another reference: the first 4 images) is recomputed and replaced before the
     * samples run (here corrupt ones, so that nothing more runs) */
    char ref4[512], bad_samples[512];
    golden_npz(ref4, "ref4.npz", "e2e/ref", 0, 4);
    corrupt_copy(ref, in_workdir(bad_samples, "bad_samples.npz"));
    p = imagenet_params(w, bad_samples, ref4, cache);
    cr_expect_eq(eb_evaluate(&p, &r), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "bad_samples.npz"), "%s", eb_last_error());
    int64_t cached = 0;
    cr_assert_eq(eb_h5_open(&f, cache), EB_OK, "%s", eb_last_error());
    cr_expect_eq(eb_h5_attr_i64(f, NULL, "n_reference", &cached), EB_OK);
    eb_h5_close(f);
    cr_expect_eq(cached, 4, "the stale cache was rewritten");

    /* 4. a file that is not such a cache is named and left alone; a corrupt cache is named */
    p = imagenet_params(w, samples, ref, s1);
    cr_expect_eq(eb_evaluate(&p, &r), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), s1) && strstr(eb_last_error(), "not an ebcache"), "%s", eb_last_error());
    eb_h5w *hw;
    char broken[512];
    cr_assert_eq(eb_h5w_create(&hw, in_workdir(broken, "broken.h5")), EB_OK);
    eb_h5w_attr_i64(hw, NULL, "ebcache_reference_activations", 1);
    cr_assert_eq(eb_h5w_commit(hw), EB_OK);
    p = imagenet_params(w, samples, ref, broken);
    cr_expect_eq(eb_evaluate(&p, &r), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "broken.h5") && strstr(eb_last_error(), "corrupt"), "%s", eb_last_error());
    eb_adm_stats_free(&st);
    free(raw), free(u8);
}

/* ------------------------------------------------------------------------ */
/* Bad inputs                                                                */

static void expect_fails(eb_eval_params p, const char *needle1, const char *needle2) {
    eb_eval_result r;
    cr_expect_eq(eb_evaluate(&p, &r), EB_EINPUT, "accepted (%s)", needle1);
    cr_expect(strstr(eb_last_error(), needle1) && (!needle2 || strstr(eb_last_error(), needle2)),
              "message '%s' lacks '%s' / '%s'", eb_last_error(), needle1, needle2 ? needle2 : "");
}

Test(imagenet_eval, bad_inputs_are_named, .init = cli_workdir_make, .fini = cli_workdir_remove) {
    char good[512], ref[512], path[512], out[512];
    const int64_t shape[4] = {5, 8, 8, 3};
    uint8_t *u8 = calloc(5 * 8 * 8 * 4 * 8, 1);
    write_npz(good, "good.npz", u8, shape, EB_NPY_U8, NULL);
    write_npz(ref, "ref.npz", u8, shape, EB_NPY_U8, NULL);
    const char *w = "no-weights.safetensors"; /* every input is checked before the weights are read */
    in_workdir(out, "out.h5");
    eb_eval_params p = imagenet_params(w, good, ref, NULL);
    p.output = out;

    write_npz(path, "f32.npz", u8, shape, EB_NPY_F32, NULL);
    p.samples = path, expect_fails(p, "f32.npz", "arr_0");
    eb_npz_writer *zw;
    cr_assert_eq(eb_npz_create(&zw, in_workdir(path, "r3.npz")), EB_OK);
    cr_assert_eq(eb_npz_write_array(zw, "arr_0", EB_NPY_U8, 3, (int64_t[]){5, 8, 24}, u8), EB_OK);
    cr_assert_eq(eb_npz_close(zw), EB_OK);
    p.samples = path, expect_fails(p, "r3.npz", "arr_0");
    write_npz(path, "rgba.npz", u8, (int64_t[]){5, 8, 8, 4}, EB_NPY_U8, NULL);
    p.samples = path, expect_fails(p, "rgba.npz", "(5, 8, 8, 4)");
    cr_assert_eq(eb_npz_create(&zw, in_workdir(path, "noarr.npz")), EB_OK);
    cr_assert_eq(eb_npz_write_array(zw, "images", EB_NPY_U8, 4, shape, u8), EB_OK);
    cr_assert_eq(eb_npz_close(zw), EB_OK);
    p.samples = good, p.reference_batch = path, expect_fails(p, "noarr.npz", "arr_0");
    char wide[512], list[1100];
    write_npz(wide, "wide.npz", u8, (int64_t[]){5, 8, 16, 3}, EB_NPY_U8, NULL);
    snprintf(list, sizeof list, "%s,%s", good, wide);
    p.samples = list, p.reference_batch = ref, expect_fails(p, "wide.npz", "8x16");
    write_npz(path, "three.npz", u8, (int64_t[]){3, 8, 8, 3}, EB_NPY_U8, NULL);
    p.samples = path, expect_fails(p, "three.npz", "more than 3");
    p.samples = good;

    /* the reference's statistics: all four or none, of the network's widths, finite */
    eb_adm_stats st = {calloc(EB_INCEPTION_POOL, sizeof(double)),
                       calloc((size_t)EB_INCEPTION_POOL * EB_INCEPTION_POOL, sizeof(double)),
                       calloc(EB_INCEPTION_SPATIAL, sizeof(double)),
                       calloc((size_t)EB_INCEPTION_SPATIAL * EB_INCEPTION_SPATIAL, sizeof(double))};
    st.sigma_s[5 * EB_INCEPTION_SPATIAL + 9] = NAN;
    p.reference_batch = write_npz(path, "nan.npz", u8, shape, EB_NPY_U8, &st);
    expect_fails(p, "nan.npz", "sigma_s has NaN at [5, 9]");
    double *keep[2] = {st.mu_s, st.sigma_s};
    st.mu_s = NULL, st.sigma_s = NULL;
    p.reference_batch = write_npz(path, "partial.npz", u8, shape, EB_NPY_U8, &st);
    expect_fails(p, "partial.npz", "no mu_s");
    st.mu_s = keep[0], st.sigma_s = keep[1];
    eb_npz_writer *sw;
    cr_assert_eq(eb_npz_create(&sw, in_workdir(path, "short_mu.npz")), EB_OK);
    cr_assert_eq(eb_npz_write_array(sw, "arr_0", EB_NPY_U8, 4, shape, u8), EB_OK);
    cr_assert_eq(eb_npz_write_array(sw, "mu", EB_NPY_F64, 1, (int64_t[]){2047}, st.mu), EB_OK);
    cr_assert_eq(eb_npz_write_array(sw, "sigma", EB_NPY_F64, 2, (int64_t[]){2048, 2048}, st.sigma), EB_OK);
    cr_assert_eq(eb_npz_write_array(sw, "mu_s", EB_NPY_F64, 1, (int64_t[]){2023}, st.mu_s), EB_OK);
    cr_assert_eq(eb_npz_write_array(sw, "sigma_s", EB_NPY_F64, 2, (int64_t[]){2023, 2023}, st.sigma), EB_OK);
    cr_assert_eq(eb_npz_close(sw), EB_OK);
    p.reference_batch = path, expect_fails(p, "short_mu.npz", "mu has rank 1 and 2047 rows");
    p.reference_batch = ref;

    /* options of the Fashion-MNIST judge, and the other way round */
    p.classifier = "clf.safetensors", expect_fails(p, "ImageNet judge", NULL);
    p.classifier = NULL, p.n_real = 20, expect_fails(p, "ImageNet judge", NULL);
    p.n_real = 10000, p.reference_batch = NULL, expect_fails(p, "reference batch", NULL);
    eb_eval_params f;
    eb_eval_params_defaults(&f);
    f.samples = "s.h5", f.classifier = "c.safetensors", f.reference_batch = ref;
    expect_fails(f, "Inception weights", NULL);
    p.reference_batch = ref, p.inception = good, expect_fails(p, "good.npz", NULL); /* not weights */
    cr_expect_eq(access(out, F_OK), -1, "no output after a failure");
    eb_adm_stats_free(&st);
    free(u8);
}
