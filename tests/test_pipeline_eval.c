/* test_pipeline_eval.c — eb_evaluate called directly (no binary) on the tiny
 * Fashion-MNIST of tests/eval_fixture.c: the known answers of the CLI tests,
 * a fake extractor (a fixed linear map of the pixels) whose FD, precision,
 * recall and accuracy the test recomputes on its own, the real-feature cache
 * round trip, and bad input named. */
#include "analyze/metrics.h"
#include "pipeline/evaluation.h"
#include "runtime/h5io.h"
#include "tests/cli_util.h"
#include "tests/eval_fixture.h"
#include "train/classifier.h"
#include "train/fmnist.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N EVAL_FIXTURE_N
#define SIDE EVAL_FIXTURE_SIDE
#define PIXELS (SIDE * SIDE)

static eb_fmnist images; /* the tiny test split, as eb_fmnist_load reads it back */
static char clf_path[512];

static void setup(void) {
    cli_workdir_make();
    eval_fixture_write(workdir);
    in_workdir(clf_path, "clf.safetensors");
    cr_assert_eq(eb_fmnist_load(&images, workdir, "t10k", 0, 0), EB_OK, "%s", eb_last_error());
}

static void teardown(void) {
    eb_fmnist_free(&images);
    cli_workdir_remove();
}

TestSuite(pipeline_eval, .init = setup, .fini = teardown);

/* workdir/file holding images x (N, 1, SIDE, SIDE) as "samples", with labels y when given. */
static const char *samples_file(char *path, const char *file, const float *x, const int32_t *y) {
    eval_fixture_samples(in_workdir(path, file), "samples", x, N, 1, SIDE, y);
    return path;
}

/* Parameters for samples (and a reference) scored by the fixture's classifier on the fixture's splits. */
static eb_eval_params params(const char *samples, const char *reference) {
    eb_eval_params p;
    eb_eval_params_defaults(&p);
    p.samples = samples, p.reference = reference, p.classifier = clf_path, p.fmnist_dir = workdir;
    return p;
}

/* The CLI test's known answers (tests/test_eval.c), through the library call. */
Test(pipeline_eval, known_answers) {
    char s[512], a_path[512], b_path[512];
    samples_file(s, "s.h5", images.images, images.labels);
    eb_eval_params p = params(s, s);
    eb_eval_result r;
    cr_assert_eq(eb_evaluate(&p, &r), EB_OK, "%s", eb_last_error());
    cr_expect_leq(fabs(r.fd), 1e-6, "fd %g", r.fd);
    cr_expect_eq(r.fd_mean + r.fd_cov, r.fd);
    cr_expect_eq(r.pixel_k, 32);
    cr_expect_leq(fabs(r.pixel_fd), 1e-6, "pixel fd %g", r.pixel_fd);
    cr_expect_eq(r.precision, 1.0);
    cr_expect_eq(r.recall, 1.0);
    cr_expect(isinf(r.psnr) && r.psnr > 0, "psnr %g", r.psnr);
    cr_expect_leq(fabs(r.ssim - 1.0), 1e-12, "ssim %.17g", r.ssim);
    const double acc = eval_fixture_accuracy(workdir, &images);
    cr_expect_eq(r.accuracy, acc);
    cr_expect_eq(r.real_accuracy, acc);
    cr_expect_eq(r.n_samples, N);
    cr_expect_eq(r.n_real, N);
    cr_expect_eq(r.D, 16);
    cr_expect_eq(r.k, EB_PR_K);
    cr_expect_str_eq(r.samples, s);
    cr_expect_str_eq(r.labels, "y");
    cr_expect_str_eq(r.extractor, "fmnist-classifier");
    /* a constant offset of 1/8 (exact in float): PSNR = 10 log10(4 / (1/8)^2) = 24.08 dB */
    float *a = malloc(N * PIXELS * sizeof(float)), *b = malloc(N * PIXELS * sizeof(float));
    for (int i = 0; i < N * PIXELS; i++) a[i] = 0.5f * images.images[i], b[i] = a[i] + 0.125f;
    p = params(samples_file(a_path, "a.h5", a, NULL), samples_file(b_path, "b.h5", b, NULL));
    cr_assert_eq(eb_evaluate(&p, &r), EB_OK, "%s", eb_last_error());
    cr_expect_leq(fabs(r.psnr - 10.0 * log10(4.0 / (0.125 * 0.125))), 1e-9, "psnr %.12g", r.psnr);
    cr_expect(isnan(r.accuracy) && r.labels == NULL, "no labels, no accuracy");
    cr_expect_gt(r.fd, 1e-3);
    /* the floor of identical splits */
    eb_eval_params f = params(NULL, NULL);
    f.floor = 1, f.n_real = 20;
    cr_assert_eq(eb_evaluate(&f, &r), EB_OK, "%s", eb_last_error());
    cr_expect_leq(fabs(r.fd), 1e-6);
    cr_expect_eq(r.n_samples, 20);
    cr_expect_eq(r.n_real, 20);
    cr_expect_str_eq(r.samples, "Fashion-MNIST train");
    free(a), free(b);
}

/* ------------------------------------------------------------------------ */
/* A fake extractor                                                          */

#define FAKE_D 8
#define FAKE_K 10

/* Row j of the fake's fixed map: features are rows 0..D−1, logits rows D..D+K−1. */
static float fake_weight(int j, int pixel) { return (float)sin(0.37 * j + 0.011 * pixel + 0.5); }

/* out (n, rows) = the map's rows first..first+rows−1 applied to images x (n, 1, SIDE, SIDE). */
static void fake_map(float *out, const float *x, int n, int first, int rows) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < rows; j++) {
            double acc = 0;
            for (int q = 0; q < PIXELS; q++) acc += fake_weight(first + j, q) * x[(size_t)i * PIXELS + q];
            out[(size_t)i * rows + j] = (float)acc;
        }
}

typedef struct {
    long images_seen; /* images extracted so far */
    int nan_image;    /* this image's first feature comes out NaN (−1: none) */
    int freed;
} fake_state;

static eb_status fake_extract(eb_features *fx, float *feat, float *logits, const float *x, int n) {
    fake_state *s = fx->impl;
    s->images_seen += n;
    if (feat) fake_map(feat, x, n, 0, fx->dim);
    if (logits) fake_map(logits, x, n, fx->dim, fx->classes);
    if (feat && s->nan_image >= 0 && s->nan_image < n) feat[(size_t)s->nan_image * fx->dim] = NAN;
    return EB_OK;
}

static void fake_free(eb_features *fx) { ((fake_state *)fx->impl)->freed = 1; }

static eb_features fake_extractor(fake_state *s) {
    *s = (fake_state){.nan_image = -1};
    return (eb_features){.name = "fake-linear", .channels = 1, .side = SIDE, .dim = FAKE_D, .classes = FAKE_K,
                         .checksum = "fake-linear-1", .extract = fake_extract, .free = fake_free, .impl = s};
}

/* Samples unlike the real images: halved contrast, shifted, every 97th pixel
 * overshooting to 1.75 — or, with `clipped`, to 1, as the evaluation clips
 * them before the extractor sees them. */
static void shifted_pixels(float *a, int clipped) {
    for (int i = 0; i < N * PIXELS; i++) a[i] = i % 97 ? 0.5f * images.images[i] + 0.125f : clipped ? 1.0f : 1.75f;
}

/* workdir/shifted.h5: the shifted samples with labels y = 3i mod 10. */
static const char *shifted_samples(char *path, int32_t *y) {
    float *a = malloc(N * PIXELS * sizeof(float));
    shifted_pixels(a, 0);
    for (int i = 0; i < N; i++) y[i] = (3 * i) % 10;
    samples_file(path, "shifted.h5", a, y);
    free(a);
    return path;
}

/* The shifted samples (written to `samples`, labels y) scored by the fake extractor fx (state st). */
static eb_eval_params fake_params(char *samples, int32_t *y, fake_state *st, eb_features *fx) {
    shifted_samples(samples, y);
    *fx = fake_extractor(st);
    eb_eval_params p = params(samples, NULL);
    p.features = fx, p.classifier = NULL;
    return p;
}

/* The evaluation reaches the network only through eb_features: FD,
 * precision/recall and accuracy equal those of the fake's features computed
 * here, and the network-free judges equal those of the classifier run. */
Test(pipeline_eval, fake_extractor_is_all_it_uses) {
    const int n_real = 30;
    char s[512], out[512];
    int32_t y[N];
    fake_state st;
    eb_features fx;
    eb_eval_params p = fake_params(s, y, &st, &fx);
    p.reference = s, p.n_real = n_real, p.output = in_workdir(out, "m.h5");
    eb_eval_result r, rc;
    cr_assert_eq(eb_evaluate(&p, &r), EB_OK, "%s", eb_last_error());
    cr_expect_eq(st.images_seen, N + n_real, "the samples and the first n_real real images, once each");
    cr_expect(!st.freed, "a borrowed extractor is not freed");
    cr_expect_str_eq(r.extractor, "fake-linear");
    cr_expect_eq(r.D, FAKE_D);

    float *fs = malloc(N * FAKE_D * sizeof(float)), *fr = malloc(n_real * FAKE_D * sizeof(float));
    float *ls = malloc(N * FAKE_K * sizeof(float)), *lr = malloc(n_real * FAKE_K * sizeof(float));
    float *a = malloc(N * PIXELS * sizeof(float));
    shifted_pixels(a, 1);
    fake_map(fs, a, N, 0, FAKE_D), fake_map(ls, a, N, FAKE_D, FAKE_K);
    fake_map(fr, images.images, n_real, 0, FAKE_D), fake_map(lr, images.images, n_real, FAKE_D, FAKE_K);
    double mu_s[FAKE_D], cov_s[FAKE_D * FAKE_D], mu_r[FAKE_D], cov_r[FAKE_D * FAKE_D], fd, prec, rec, acc, real_acc;
    cr_assert_eq(eb_feature_stats(mu_s, cov_s, fs, N, FAKE_D), EB_OK);
    cr_assert_eq(eb_feature_stats(mu_r, cov_r, fr, n_real, FAKE_D), EB_OK);
    cr_assert_eq(eb_frechet_distance(&fd, mu_s, cov_s, mu_r, cov_r, FAKE_D), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_precision_recall(&prec, &rec, fr, n_real, fs, N, FAKE_D, EB_PR_K), EB_OK);
    cr_assert_eq(eb_accuracy(&acc, ls, y, N, FAKE_K), EB_OK);
    cr_assert_eq(eb_accuracy(&real_acc, lr, images.labels, n_real, FAKE_K), EB_OK);
    cr_expect_gt(fd, 1e-3, "the shifted samples are away from the real ones: %g", fd);
    cr_expect_eq(r.fd, fd, "FD %.17g vs eb_frechet_distance %.17g", r.fd, fd);
    cr_expect_eq(r.precision, prec);
    cr_expect_eq(r.recall, rec);
    cr_expect_eq(r.accuracy, acc);
    cr_expect_eq(r.real_accuracy, real_acc);

    /* the output names the extractor and its checksum, and holds its features */
    eb_h5 *f;
    char *sum = NULL, *name = NULL;
    float *feat = NULL;
    int64_t dims[2];
    cr_assert_eq(eb_h5_open(&f, out), EB_OK, "%s", eb_last_error());
    cr_expect_eq(eb_h5_attr_str(f, NULL, "classifier_checksum", &sum), EB_OK);
    cr_expect_eq(eb_h5_attr_str(f, NULL, "classifier", &name), EB_OK);
    cr_expect_eq(eb_h5_read_f32(f, "samples/features", 2, (int64_t[]){N, FAKE_D}, &feat, dims, 0), EB_OK, "%s",
                 eb_last_error());
    eb_h5_close(f);
    cr_expect_str_eq(sum, "fake-linear-1");
    cr_expect_str_eq(name, "fake-linear");
    cr_expect_arr_eq(feat, fs, N * FAKE_D * sizeof(float));
    free(sum), free(name), free(feat);

    /* the pixel judge and PSNR/SSIM need no network: the classifier's run gives the same bits */
    eb_eval_params pc = params(s, s);
    pc.n_real = n_real;
    cr_assert_eq(eb_evaluate(&pc, &rc), EB_OK, "%s", eb_last_error());
    cr_expect_eq(rc.pixel_fd, r.pixel_fd);
    cr_expect_eq(rc.pixel_fd_mean, r.pixel_fd_mean);
    cr_expect_eq(rc.psnr, r.psnr);
    cr_expect_eq(rc.ssim, r.ssim);
    cr_expect_neq(rc.fd, r.fd);

    /* an extractor without logits: no accuracy, everything else alike */
    fx.classes = 0;
    cr_assert_eq(eb_evaluate(&p, &r), EB_OK, "%s", eb_last_error());
    cr_expect(isnan(r.accuracy) && isnan(r.real_accuracy), "accuracy %g, real %g", r.accuracy, r.real_accuracy);
    cr_expect_eq(r.fd, fd);
    cr_assert_eq(eb_h5_open(&f, out), EB_OK, "%s", eb_last_error());
    cr_expect_eq(eb_h5_lookup(f, "samples/predicted"), EB_H5_NONE);
    cr_expect(!eb_h5_has_attr(f, NULL, "accuracy"));
    eb_h5_close(f);
    free(fs), free(fr), free(ls), free(lr), free(a);
}

/* The second call with the same cache reads the real features back (the
 * extractor sees only the samples) and gives the same numbers; another
 * checksum is a miss that replaces the cache. */
Test(pipeline_eval, real_cache_round_trip) {
    char s[512], cache[512];
    int32_t y[N];
    fake_state st;
    eb_features fx;
    eb_eval_params p = fake_params(s, y, &st, &fx);
    p.real_cache = in_workdir(cache, "real.h5");
    eb_eval_result r1, r2, r3;
    cr_assert_eq(eb_evaluate(&p, &r1), EB_OK, "%s", eb_last_error());
    cr_expect_eq(st.images_seen, 2 * N);
    cr_assert_eq(access(cache, F_OK), 0, "the cache was written");
    st.images_seen = 0;
    cr_assert_eq(eb_evaluate(&p, &r2), EB_OK, "%s", eb_last_error());
    cr_expect_eq(st.images_seen, N, "a hit extracts the samples only");
    cr_expect_eq(r1.fd, r2.fd);
    cr_expect_eq(r1.fd_mean, r2.fd_mean);
    cr_expect_eq(r1.pixel_fd, r2.pixel_fd);
    cr_expect_eq(r1.pixel_fd_cov, r2.pixel_fd_cov);
    cr_expect_eq(r1.precision, r2.precision);
    cr_expect_eq(r1.recall, r2.recall);
    cr_expect_eq(r1.accuracy, r2.accuracy);
    cr_expect_eq(r1.real_accuracy, r2.real_accuracy);
    /* other weights, other features: a miss */
    snprintf(fx.checksum, sizeof fx.checksum, "fake-linear-2");
    st.images_seen = 0;
    cr_assert_eq(eb_evaluate(&p, &r3), EB_OK, "%s", eb_last_error());
    cr_expect_eq(st.images_seen, 2 * N);
    cr_expect_eq(r3.fd, r1.fd);
    /* an extractor without logits caches no accuracy (NaN), and hits alike */
    snprintf(fx.checksum, sizeof fx.checksum, "fake-linear-3");
    fx.classes = 0;
    for (int call = 0; call < 2; call++) {
        st.images_seen = 0;
        cr_assert_eq(eb_evaluate(&p, &r3), EB_OK, "%s", eb_last_error());
        cr_expect_eq(st.images_seen, call ? N : 2 * N, "call %d", call);
        cr_expect(isnan(r3.real_accuracy) && r3.fd == r1.fd, "call %d: real accuracy %g", call, r3.real_accuracy);
    }
    /* the classifier's cache is keyed by %016llx of eb_clf_checksum, as it always was */
    eb_eval_params pc = params(s, NULL);
    pc.real_cache = cache;
    cr_assert_eq(eb_evaluate(&pc, &r3), EB_OK, "%s", eb_last_error());
    eb_clf *m;
    cr_assert_eq(eb_clf_load(&m, clf_path, NULL, NULL), EB_OK, "%s", eb_last_error());
    char want[24], *sum = NULL;
    snprintf(want, sizeof want, "%016llx", (unsigned long long)eb_clf_checksum(m));
    eb_clf_free(m);
    eb_h5 *f;
    cr_assert_eq(eb_h5_open(&f, cache), EB_OK, "%s", eb_last_error());
    cr_expect_eq(eb_h5_attr_str(f, NULL, "classifier_checksum", &sum), EB_OK);
    eb_h5_close(f);
    cr_expect_str_eq(sum, want);
    free(sum);
}

/* ------------------------------------------------------------------------ */
/* Bad input                                                                 */

/* eb_evaluate(p) fails with `code`, a message holding `what`, and no output file. */
static void expect_failure(eb_eval_params p, eb_status code, const char *what) {
    char out[512];
    p.output = in_workdir(out, "bad-out.h5");
    eb_eval_result r;
    eb_status st = eb_evaluate(&p, &r);
    cr_expect_eq(st, code, "'%s': status %d (%s)", what, st, eb_last_error());
    cr_expect(strstr(eb_last_error(), what), "message '%s' lacks '%s'", eb_last_error(), what);
    cr_expect_neq(access(out, F_OK), 0, "'%s' left an output", what);
}

Test(pipeline_eval, bad_input_is_named) {
    char good[512], nan_file[512], labels_file[512], list[1100], not_cache[512];
    float *x = malloc(N * PIXELS * sizeof(float));
    int32_t y[N];
    memcpy(x, images.images, N * PIXELS * sizeof(float));
    memcpy(y, images.labels, sizeof y);
    samples_file(good, "good.h5", x, y);
    x[5 * PIXELS + 3 * SIDE + 7] = NAN;
    samples_file(nan_file, "nan.h5", x, NULL);
    y[7] = 10;
    samples_file(labels_file, "badlabel.h5", images.images, y);
    free(x);

    expect_failure(params(in_workdir(list, "missing.h5"), NULL), EB_EINPUT, "missing.h5");
    eb_eval_params p = params(good, NULL);
    p.dataset = "nope";
    expect_failure(p, EB_EINPUT, "nope");
    expect_failure(params(nan_file, NULL), EB_EINPUT, "[5, 0, 3, 7]");
    expect_failure(params(labels_file, NULL), EB_EINPUT, "[7] = 10");
    snprintf(list, sizeof list, "%s,%s/gone.h5", good, workdir);
    expect_failure(params(list, NULL), EB_EINPUT, "gone.h5");
    expect_failure(params(good, list), EB_EINPUT, "gone.h5");
    /* a file that is not a cache is named and left alone */
    p = params(good, NULL);
    p.real_cache = samples_file(not_cache, "not_cache.h5", images.images, NULL);
    expect_failure(p, EB_EINPUT, "not an ebcache real-feature cache");
    eb_eval_result r;
    p = params(not_cache, NULL);
    cr_expect_eq(eb_evaluate(&p, &r), EB_OK, "not_cache.h5 is intact: %s", eb_last_error());
    /* parameters */
    p = params(good, NULL);
    p.n_real = EB_PR_K;
    expect_failure(p, EB_EINPUT, "n_real");
    p = params(good, NULL);
    p.real_split = "valid";
    expect_failure(p, EB_EINPUT, "valid");
    p = params(good, NULL);
    p.floor = 1;
    expect_failure(p, EB_EINPUT, "floor");
    expect_failure(params(NULL, NULL), EB_EINPUT, "no samples");
    p = params(good, NULL);
    p.classifier = good;
    expect_failure(p, EB_EINPUT, "good.h5");
    /* an extractor that does not fit, or whose features come out non-finite */
    fake_state st;
    eb_features fx = fake_extractor(&st);
    fx.side = 32;
    p = params(good, NULL);
    p.features = &fx;
    expect_failure(p, EB_EINPUT, "fake-linear takes 1-channel 32x32");
    fx.side = SIDE, st.nan_image = 3;
    expect_failure(p, EB_ERUNTIME, "good.h5: extractor fake-linear: feature 0 of image 3 is nan");
}
