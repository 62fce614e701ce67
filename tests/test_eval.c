/* test_eval.c — `ebcache eval` end to end on a tiny Fashion-MNIST and a small
 * random classifier (tests/eval_fixture.c): known answers (identical sets, a known PSNR,
 * the floor of identical splits), the feature cache, and bad inputs. */
#include "train/classifier.h"
#include "train/fmnist.h"
#include "runtime/h5io.h"
#include "tests/eval_fixture.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define N_IMAGES EVAL_FIXTURE_N
#define SIDE EVAL_FIXTURE_SIDE

static char workdir[256];
static char err_text[8192], out_text[8192];
static eb_fmnist images; /* the tiny split, as eb_fmnist_load reads it back */

static void path_in(char *buf, size_t cap, const char *name) { snprintf(buf, cap, "%s/%s", workdir, name); }

static void setup(void) {
    snprintf(workdir, sizeof workdir, "/tmp/ebcache_eval_XXXXXX");
    cr_assert(mkdtemp(workdir), "mkdtemp");
    eval_fixture_write(workdir);
    cr_assert_eq(eb_fmnist_load(&images, workdir, "t10k", 0, 0), EB_OK, "%s", eb_last_error());
}

static void teardown(void) {
    eb_fmnist_free(&images);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", workdir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(eval, .init = setup, .fini = teardown);

/* Runs "$EBCACHE_BIN eval --classifier C --data-dir W <args>" in workdir with
 * stdout and stderr captured; returns the exit status. */
static int run_eval(const char *fmt, ...) {
    const char *bin = getenv("EBCACHE_BIN") ? getenv("EBCACHE_BIN") : "build/opt/ebcache";
    char args[2048], cmd[4096], out_path[300], err_path[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    path_in(out_path, sizeof out_path, "stdout.txt");
    path_in(err_path, sizeof err_path, "stderr.txt");
    char cwd[1024]; /* the command runs in workdir: a relative binary path starts here */
    cr_assert(getcwd(cwd, sizeof cwd));
    snprintf(cmd, sizeof cmd,
             "cd '%s' && '%s%s%s' eval --classifier clf.safetensors --data-dir . %s >stdout.txt 2>stderr.txt", workdir,
             bin[0] == '/' ? "" : cwd, bin[0] == '/' ? "" : "/", bin, args);
    int status = system(cmd);
    char *bufs[2] = {out_text, err_text};
    const char *paths[2] = {out_path, err_path};
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(paths[i], "r");
        size_t len = f ? fread(bufs[i], 1, sizeof out_text - 1, f) : 0;
        bufs[i][len] = 0;
        if (f) fclose(f);
        unlink(paths[i]);
    }
    cr_assert(WIFEXITED(status), "eval %s did not exit normally", args);
    return WEXITSTATUS(status);
}

/* Writes images (N, C, side, side) as dataset `name` (and labels y when given) to workdir/file. */
static void write_samples(const char *file, const char *name, const float *x, int N, int C, int side,
                          const int32_t *y) {
    char path[512];
    path_in(path, sizeof path, file);
    eval_fixture_samples(path, name, x, N, C, side, y);
}

static double attr(const char *file, const char *name) {
    char path[512];
    path_in(path, sizeof path, file);
    eb_h5 *f;
    double v = NAN;
    cr_assert_eq(eb_h5_open(&f, path), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_h5_attr_f64(f, NULL, name, &v), EB_OK, "%s", eb_last_error());
    eb_h5_close(f);
    return v;
}

static int exists(const char *file) {
    char path[512];
    path_in(path, sizeof path, file);
    return access(path, F_OK) == 0;
}

/* A bad input and a piece of the message that must name it. */
typedef struct {
    const char *args, *message;
} bad_case;

/* Each case: exit 2, the message, and no output file left behind. */
static void expect_rejected(const bad_case *cases, size_t n) {
    for (size_t i = 0; i < n; i++) {
        int rc = run_eval("%s --output out.h5", cases[i].args);
        cr_expect_eq(rc, 2, "'%s' exited %d: %s", cases[i].args, rc, err_text);
        cr_expect(strstr(err_text, cases[i].message), "'%s': message '%s' lacks '%s'", cases[i].args, err_text,
                  cases[i].message);
        cr_expect(!exists("out.h5"), "'%s' left an output", cases[i].args);
    }
}

/* The classifier's accuracy on the tiny set, computed in-process. */
static double direct_accuracy(void) { return eval_fixture_accuracy(workdir, &images); }

Test(eval, identical_sets_known_answers) {
    write_samples("s.h5", "samples", images.images, N_IMAGES, 1, SIDE, images.labels);
    cr_assert_eq(run_eval("--samples s.h5 --reference s.h5 --output m.h5"), 0, "%s", err_text);
    /* FD of a set with itself: 0 up to round-off of order 1e-12 · trace */
    cr_expect_leq(fabs(attr("m.h5", "fd")), 1e-6, "fd %g", attr("m.h5", "fd"));
    cr_expect_eq(attr("m.h5", "fd_mean_term") + attr("m.h5", "fd_cov_term"), attr("m.h5", "fd"));
    cr_expect_leq(fabs(attr("m.h5", "fd_mean_term")), 1e-12, "mean term %g", attr("m.h5", "fd_mean_term"));
    /* the pixel judge: 32 components of 40 real images, the same set in them */
    cr_expect_eq(attr("m.h5", "pixel_pca_k"), 32);
    cr_expect_leq(fabs(attr("m.h5", "pixel_fd")), 1e-6, "pixel fd %g", attr("m.h5", "pixel_fd"));
    cr_expect_eq(attr("m.h5", "pixel_fd_mean_term") + attr("m.h5", "pixel_fd_cov_term"), attr("m.h5", "pixel_fd"));
    cr_expect_eq(attr("m.h5", "precision"), 1.0);
    cr_expect_eq(attr("m.h5", "recall"), 1.0);
    cr_expect(isinf(attr("m.h5", "psnr")) && attr("m.h5", "psnr") > 0, "psnr %g", attr("m.h5", "psnr"));
    cr_expect_leq(fabs(attr("m.h5", "ssim") - 1.0), 1e-12, "ssim %.17g", attr("m.h5", "ssim"));
    double acc = direct_accuracy();
    cr_expect_eq(attr("m.h5", "accuracy"), acc, "accuracy %g vs %g", attr("m.h5", "accuracy"), acc);
    cr_expect_eq(attr("m.h5", "classifier_real_accuracy"), acc);
    cr_expect_eq(attr("m.h5", "n_samples"), N_IMAGES);
    cr_expect_eq(attr("m.h5", "n_real"), N_IMAGES);
    cr_expect(strstr(out_text, "FD"), "table: %s", out_text);
}

Test(eval, known_psnr_and_json) {
    size_t n = (size_t)N_IMAGES * SIDE * SIDE;
    float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) a[i] = 0.5f * images.images[i], b[i] = a[i] + 0.125f; /* exact in float */
    write_samples("a.h5", "samples", a, N_IMAGES, 1, SIDE, NULL);
    write_samples("b.h5", "samples", b, N_IMAGES, 1, SIDE, NULL);
    cr_assert_eq(run_eval("--samples a.h5 --reference b.h5 --output m.h5 --json"), 0, "%s", err_text);
    double want = 10.0 * log10(4.0 / (0.125 * 0.125)); /* MSE 1/64 over data range 2: 24.08 dB */
    cr_expect_leq(fabs(attr("m.h5", "psnr") - want), 1e-9, "psnr %.12g vs %.12g", attr("m.h5", "psnr"), want);
    cr_expect_lt(attr("m.h5", "ssim"), 1.0);
    cr_expect(strstr(out_text, "\"psnr\": 24.08"), "json: %s", out_text);
    cr_expect(strstr(out_text, "\"accuracy\": null"), "no labels, no accuracy: %s", out_text);
    cr_expect(strstr(out_text, "\"pixel_fd\": ") && strstr(out_text, "\"fd_mean_term\": "), "json: %s", out_text);
    /* a constant shift of every image moves the features: FD > 0 */
    cr_assert_eq(run_eval("--samples b.h5 --output m2.h5"), 0, "%s", err_text);
    cr_expect_gt(attr("m2.h5", "fd"), 1e-3);
    /* in pixels, halving the contrast and shifting moves both the centre and the spread */
    cr_expect_gt(attr("m2.h5", "pixel_fd_mean_term"), 1e-3, "%g", attr("m2.h5", "pixel_fd_mean_term"));
    cr_expect_gt(attr("m2.h5", "pixel_fd_cov_term"), 1e-3, "%g", attr("m2.h5", "pixel_fd_cov_term"));
    free(a);
    free(b);
}

/* Shards listed with commas are one set: the same numbers as the whole file. */
Test(eval, shards_are_one_set) {
    const int first = 25, rest = N_IMAGES - first;
    const size_t per = SIDE * SIDE;
    write_samples("s.h5", "samples", images.images, N_IMAGES, 1, SIDE, images.labels);
    write_samples("s1.h5", "samples", images.images, first, 1, SIDE, images.labels);
    write_samples("s2.h5", "samples", images.images + first * per, rest, 1, SIDE, images.labels + first);
    cr_assert_eq(run_eval("--samples s.h5 --output whole.h5"), 0, "%s", err_text);
    cr_assert_eq(run_eval("--samples s1.h5,s2.h5 --reference s1.h5,s2.h5 --output shards.h5"), 0, "%s", err_text);
    const char *keys[] = {"fd", "precision", "recall", "accuracy", "n_samples"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        cr_expect_eq(attr("shards.h5", keys[i]), attr("whole.h5", keys[i]), "%s", keys[i]);
    cr_expect(isinf(attr("shards.h5", "psnr")), "each shard matched with its own reference");
    /* the order counts: swapped shards give other labels to the images */
    cr_assert_eq(run_eval("--samples s2.h5,s1.h5 --labels-dataset none --output swapped.h5"), 0, "%s", err_text);
    cr_expect_leq(fabs(attr("swapped.h5", "fd") - attr("whole.h5", "fd")), 1e-9,
                  "FD ignores the order up to round-off: %.17g vs %.17g", attr("swapped.h5", "fd"),
                  attr("whole.h5", "fd"));
    /* a shard without labels, of another side, or a reference of other shards: named */
    write_samples("nolabels.h5", "samples", images.images, rest, 1, SIDE, NULL);
    eb_fmnist padded;
    cr_assert_eq(eb_fmnist_load(&padded, workdir, "t10k", 0, 32), EB_OK, "%s", eb_last_error());
    write_samples("wide.h5", "samples", padded.images, rest, 1, 32, padded.labels);
    eb_fmnist_free(&padded);
    bad_case cases[] = {
        {"--samples s1.h5,nolabels.h5", "nolabels.h5"},
        {"--samples s1.h5,wide.h5", "wide.h5"},
        {"--samples s1.h5,s2.h5 --reference s.h5,s2.h5", "same seeds"},
        {"--samples s1.h5,missing.h5", "missing.h5"},
        {"--samples ,", "names no file"},
    };
    expect_rejected(cases, sizeof cases / sizeof cases[0]);
}

Test(eval, padded_samples_are_cropped) {
    eb_fmnist padded;
    cr_assert_eq(eb_fmnist_load(&padded, workdir, "t10k", 0, 32), EB_OK, "%s", eb_last_error());
    write_samples("p.h5", "x", padded.images, N_IMAGES, 1, 32, padded.labels);
    cr_assert_eq(run_eval("--samples p.h5 --dataset x --output m.h5"), 0, "%s", err_text);
    cr_expect_leq(fabs(attr("m.h5", "fd")), 1e-6);
    cr_expect_eq(attr("m.h5", "accuracy"), direct_accuracy());
    eb_fmnist_free(&padded);
}

Test(eval, floor_of_identical_splits) {
    cr_assert_eq(run_eval("--floor --output f.h5"), 0, "%s", err_text);
    cr_expect_leq(fabs(attr("f.h5", "fd")), 1e-6);
    cr_expect_eq(attr("f.h5", "precision"), 1.0);
    cr_expect_eq(attr("f.h5", "recall"), 1.0);
    cr_expect_eq(attr("f.h5", "accuracy"), direct_accuracy());
    cr_assert_eq(run_eval("--floor --n-real 20 --output f.h5"), 0, "%s", err_text);
    cr_expect_eq(attr("f.h5", "n_real"), 20);
    cr_expect_eq(attr("f.h5", "n_samples"), 20);
}

Test(eval, real_feature_cache) {
    write_samples("s.h5", "samples", images.images, N_IMAGES, 1, SIDE, images.labels);
    cr_assert_eq(run_eval("--samples s.h5 --real-cache c.h5 --output m1.h5"), 0, "%s", err_text);
    cr_assert(exists("c.h5"));
    cr_assert_eq(run_eval("--samples s.h5 --real-cache c.h5 --output m2.h5"), 0, "%s", err_text);
    cr_expect_eq(attr("m1.h5", "fd"), attr("m2.h5", "fd"));
    cr_expect_eq(attr("m1.h5", "recall"), attr("m2.h5", "recall"));
    cr_expect_eq(attr("m1.h5", "pixel_fd"), attr("m2.h5", "pixel_fd"), "the cached pixel components judge alike");
    cr_expect_eq(attr("c.h5", "pixel_pca_k"), attr("m1.h5", "pixel_pca_k"));
    /* a cache of an older ebcache (features only, no pixel judge) is a miss: rewritten whole */
    char cpath[512], opath[512];
    path_in(cpath, sizeof cpath, "c.h5"), path_in(opath, sizeof opath, "old.h5");
    eb_h5 *f;
    float *feat;
    int64_t dims[2];
    char *sum;
    double acc;
    cr_assert_eq(eb_h5_open(&f, cpath), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_h5_read_f32(f, "features", 2, (int64_t[]){-1, -1}, &feat, dims, 0), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_h5_attr_str(f, NULL, "classifier_checksum", &sum), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_h5_attr_f64(f, NULL, "real_accuracy", &acc), EB_OK, "%s", eb_last_error());
    eb_h5_close(f);
    eb_h5w *w;
    cr_assert_eq(eb_h5w_create(&w, opath), EB_OK, "%s", eb_last_error());
    eb_h5w_write(w, "features", EB_H5_F32, feat, 2, dims);
    eb_h5w_attr_i64(w, NULL, "ebcache_real_features", 1);
    eb_h5w_attr_str(w, NULL, "classifier_checksum", sum);
    eb_h5w_attr_str(w, NULL, "real_split", "test");
    eb_h5w_attr_i64(w, NULL, "n_real", dims[0]);
    eb_h5w_attr_f64(w, NULL, "real_accuracy", acc);
    cr_assert_eq(eb_h5w_commit(w), EB_OK, "%s", eb_last_error());
    free(feat), free(sum);
    cr_assert_eq(run_eval("--samples s.h5 --real-cache old.h5 --output m5.h5"), 0, "%s", err_text);
    cr_expect_eq(attr("old.h5", "pixel_pca_k"), attr("m1.h5", "pixel_pca_k"), "the old cache was rewritten");
    cr_expect_eq(attr("m5.h5", "pixel_fd"), attr("m1.h5", "pixel_fd"));
    /* a different real count makes the cache stale: recomputed, not reused */
    cr_assert_eq(run_eval("--samples s.h5 --real-cache c.h5 --n-real 30 --output m3.h5"), 0, "%s", err_text);
    cr_expect_eq(attr("m3.h5", "n_real"), 30);
    cr_expect_eq(attr("c.h5", "n_real"), 30);
    /* a file that is not a cache is never overwritten */
    cr_expect_eq(run_eval("--samples s.h5 --real-cache s.h5"), 2);
    cr_expect(strstr(err_text, "not an ebcache real-feature cache"), "%s", err_text);
    cr_assert_eq(run_eval("--samples s.h5 --output m4.h5"), 0, "s.h5 still intact: %s", err_text);
    cr_expect_eq(attr("m4.h5", "pixel_fd"), attr("m1.h5", "pixel_fd"), "uncached and cached pixel judges agree");
}

/* Every bad input: exit 2, a message naming the culprit, no output file. */
Test(eval, bad_inputs) {
    size_t n = (size_t)N_IMAGES * SIDE * SIDE;
    float *x = malloc(n * sizeof(float));
    memcpy(x, images.images, n * sizeof(float));
    int32_t *y = malloc(N_IMAGES * sizeof(int32_t));
    memcpy(y, images.labels, N_IMAGES * sizeof(int32_t));
    write_samples("good.h5", "samples", x, N_IMAGES, 1, SIDE, y);
    write_samples("small.h5", "samples", x, N_IMAGES, 1, 20, NULL);
    write_samples("rgb.h5", "samples", x, 13, 3, SIDE, NULL);
    write_samples("few.h5", "samples", x, 3, 1, SIDE, NULL);
    write_samples("ref_short.h5", "samples", x, N_IMAGES - 1, 1, SIDE, NULL);
    x[5 * 784 + 3 * 28 + 7] = NAN;
    write_samples("nan.h5", "samples", x, N_IMAGES, 1, SIDE, NULL);
    y[7] = 10;
    write_samples("badlabel.h5", "samples", images.images, N_IMAGES, 1, SIDE, y);
    bad_case cases[] = {
        {"--samples missing.h5", "missing.h5"},
        {"--samples good.h5 --dataset nope", "nope"},
        {"--samples small.h5", "side >= 28"},
        {"--samples rgb.h5", "rgb.h5"},
        {"--samples few.h5", "at least 4"},
        {"--samples nan.h5", "[5, 0, 3, 7]"},
        {"--samples badlabel.h5", "[7] = 10"},
        {"--samples good.h5 --labels-dataset labels", "labels"},
        {"--samples good.h5 --reference ref_short.h5", "same seeds"},
        {"--samples good.h5 --reference missing.h5", "missing.h5"},
        {"--samples good.h5 --real valid", "'valid' is not test or train"},
        {"--samples good.h5 --n-real 2", "n_real = 2"},
        {"--floor --samples good.h5", "the floor compares"},
        {"", "no samples to evaluate"},
        {"--samples good.h5 --classifier good.h5", "good.h5"},
    };
    expect_rejected(cases, sizeof cases / sizeof cases[0]);
    cr_expect_eq(run_eval("--samples badlabel.h5 --labels-dataset none --output out.h5"), 0, "%s", err_text);
    free(x);
    free(y);
}
