/* test_inception.c — the FID InceptionV3 against reference/inception_ref.py (random weights from
 * the counter-based generator, BatchNorm statistics included, so the folding is tested): pool,
 * spatial and logits of two 64×64 images (resized to 299) and one 299×299 image, the weights
 * through a .safetensors file (with and without the fc layer), the eb_features extractor and
 * `ebcache features` end to end, the loader's failures naming the key, non-finite input, and the
 * thread count.
 *
 * Tolerance: max |got − want| / max |want| ≤ 1e-4 (fp32; seen: ≤ 2e-6 on every output). */
#include "tests/cli_util.h"
#include "tests/golden.h"
#include "tests/inception_fixture.h"
#include "analyze/inception.h"
#include "runtime/backend.h"
#include "runtime/h5io.h"
#include "runtime/model.h"
#include "runtime/npz.h"
#include "runtime/safetensors.h"
#include "pipeline/features_inception.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TOL 1e-4
#define GOLD "inception.h5"

/* The golden's weights (reference/inception_ref.py random_weights): tensor i from key(seed, i). */
static float *formula_table(const eb_inception *m) {
    float *host = inception_formula_table(m, (uint64_t)golden_attr_f64(GOLD, "seed"));
    cr_assert(host);
    return host;
}

static eb_inception *formula_network(int with_fc, const eb_device *dev) {
    eb_inception *m;
    cr_assert_eq(eb_inception_create_on(&m, with_fc, dev), EB_OK, "%s", eb_last_error());
    float *host = formula_table(m);
    cr_assert_eq(eb_inception_set_tensors(m, host), EB_OK, "%s", eb_last_error());
    free(host);
    return m;
}

/* The golden images `name` (N, H, W, 3) as the network's float input (N, 3, H, W). */
static float *golden_images(const char *name, int64_t *dims) {
    int32_t *raw = golden_i32(GOLD, name, 4, dims);
    const size_t n = (size_t)dims[0] * dims[1] * dims[2] * 3;
    uint8_t *u8 = malloc(n);
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) u8[i] = (uint8_t)raw[i];
    eb_inception_images_from_u8(x, u8, (int)dims[0], (int)dims[1], (int)dims[2]);
    free(raw), free(u8);
    return x;
}

static void expect_close(const float *got, const char *want_name, size_t n) {
    float *want = golden_f32(GOLD, want_name, 2, NULL);
    double err = max_rel_err(got, want, n);
    cr_log_info("%s: rel err %.3g", want_name, err);
    cr_expect_leq(err, TOL, "%s: rel err %g", want_name, err);
    free(want);
}

/* Features of golden image set `tag` ("64", "299") through m, compared with the golden. */
static void expect_features_match(eb_inception *m, const char *tag) {
    int64_t d[4];
    char name[32];
    snprintf(name, sizeof name, "images%s", tag);
    float *x = golden_images(name, d);
    const int N = (int)d[0], fc = eb_inception_has_logits(m);
    float *pool = malloc(sizeof(float) * N * EB_INCEPTION_POOL), *spatial = malloc(sizeof(float) * N * EB_INCEPTION_SPATIAL);
    float *logits = fc ? malloc(sizeof(float) * N * EB_INCEPTION_CLASSES) : NULL;
    cr_assert_eq(eb_inception_forward(m, pool, spatial, logits, x, N, (int)d[1], (int)d[2]), EB_OK, "%s",
                 eb_last_error());
    snprintf(name, sizeof name, "pool%s", tag), expect_close(pool, name, (size_t)N * EB_INCEPTION_POOL);
    snprintf(name, sizeof name, "spatial%s", tag), expect_close(spatial, name, (size_t)N * EB_INCEPTION_SPATIAL);
    if (fc) snprintf(name, sizeof name, "logits%s", tag), expect_close(logits, name, (size_t)N * EB_INCEPTION_CLASSES);
    free(x), free(pool), free(spatial), free(logits);
}

Test(inception, features_match_the_reference) {
    /* the CPU, and CUDA fp32 where a device runs */
    const eb_device cuda = {"cuda", EB_PRECISION_FP32};
    const eb_backend *be, *cond;
    const int devices = eb_backend_select(&cuda, &be, &cond) == EB_OK ? 2 : 1;
    for (int d = 0; d < devices; d++) {
        eb_inception *m = formula_network(1, d ? &cuda : NULL);
        cr_log_info("device %s", eb_inception_device(m));
        cr_expect_eq(eb_inception_tensor_floats(m), 23884384, "pytorch-fid's parameters and BN statistics, no fc bias");
        cr_expect_float_eq(eb_inception_macs(m), 5.71e9, 0.01e9, "5.71 GMAC per image");
        expect_features_match(m, "64");
        expect_features_match(m, "299");
        eb_inception_free(m);
    }
}

Test(inception, same_bits_at_any_thread_count) {
    eb_inception *m = formula_network(0, NULL);
    int64_t d[4];
    float *x = golden_images("images64", d);
    /* two images: with one, the CPU conv2d of a single im2col tile hands OpenBLAS an unthreaded call,
     * which it threads itself, and the 5×5 convolutions of Mixed_5b–d then differ in the last bits */
    float a[2 * EB_INCEPTION_POOL], b[2 * EB_INCEPTION_POOL];
    eb_set_threads(1);
    cr_assert_eq(eb_inception_forward(m, a, NULL, NULL, x, 2, 64, 64), EB_OK, "%s", eb_last_error());
    eb_set_threads(2);
    cr_assert_eq(eb_inception_forward(m, b, NULL, NULL, x, 2, 64, 64), EB_OK, "%s", eb_last_error());
    eb_set_threads(0);
    cr_expect_eq(memcmp(a, b, sizeof a), 0, "1 and 2 threads differ");
    free(x), eb_inception_free(m);
}

Test(inception, non_finite_input_is_named) {
    eb_inception *m; /* zero weights: the input is checked before any runs */
    cr_assert_eq(eb_inception_create_on(&m, 0, NULL), EB_OK, "%s", eb_last_error());
    float *x = calloc(2 * 3 * 16 * 16, sizeof *x), pool[2 * EB_INCEPTION_POOL];
    x[(1 * 3 + 2) * 256 + 3 * 16 + 4] = NAN;
    cr_expect_eq(eb_inception_forward(m, pool, NULL, NULL, x, 2, 16, 16), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "image 1 channel 2 pixel (3, 4) is nan"), "%s", eb_last_error());
    cr_expect_eq(eb_inception_forward(m, NULL, NULL, pool, x, 1, 16, 16), EB_EINPUT, "logits without fc");
    cr_expect_eq(eb_inception_forward(m, pool, NULL, NULL, x, 1, 0, 16), EB_EINPUT, "empty image");
    free(x), eb_inception_free(m);
}

/* ------------------------------------------------------------------------ */
/* Weight files                                                              */

/* workdir/name: the tensors of host (a table of m, which has fc.weight last) as F32 .safetensors,
 * without fc.weight unless with_fc, with a tensor `extra` (or none) added. */
static const char *write_table(char *path, const char *name, const eb_inception *m, const float *host, int with_fc,
                               const char *extra) {
    const int n = eb_inception_tensor_count(m) - !with_fc;
    static const float extra_data[4];
    eb_st_entry *e = calloc((size_t)n + 1, sizeof *e);
    for (int i = 0; i < n; i++) {
        const eb_inception_tensor *t = eb_inception_tensor_at(m, i);
        e[i] = (eb_st_entry){.name = t->name, .dtype = EB_DT_F32, .rank = t->rank, .data = host + t->offset};
        memcpy(e[i].shape, t->shape, sizeof t->shape);
    }
    if (extra) e[n] = (eb_st_entry){.name = extra, .dtype = EB_DT_F32, .rank = 1, .shape = {4}, .data = extra_data};
    cr_assert_eq(eb_st_write(in_workdir(path, name), e, n + (extra != NULL), NULL, 0), EB_OK, "%s", eb_last_error());
    free(e);
    return path;
}

/* The value at flat index 3 of tensor `key` of m's table host. */
static float *table_at(const eb_inception *m, float *host, const char *key) {
    for (int i = 0; i < eb_inception_tensor_count(m); i++)
        if (!strcmp(eb_inception_tensor_at(m, i)->name, key)) return host + eb_inception_tensor_at(m, i)->offset + 3;
    cr_assert_fail("no tensor %s", key);
    return NULL;
}

/* workdir/name holding the one tensor `key` of the given shape. */
static void write_one(const char *name, const char *key, int rank, const int64_t *shape) {
    static float zeros[32 * 3 * 3 * 3];
    eb_st_entry e = {.name = key, .dtype = EB_DT_F32, .rank = rank, .data = zeros};
    memcpy(e.shape, shape, sizeof(int64_t) * rank);
    char path[512];
    cr_assert_eq(eb_st_write(in_workdir(path, name), &e, 1, NULL, 0), EB_OK, "%s", eb_last_error());
}

static void expect_load_fails(const char *name, const char *needle) {
    char path[512];
    eb_inception *m = (eb_inception *)1;
    cr_expect_eq(eb_inception_load_on(&m, in_workdir(path, name), NULL), EB_EINPUT, "%s loads", name);
    cr_expect_null(m);
    cr_expect(strstr(eb_last_error(), needle), "%s: message '%s' lacks '%s'", name, eb_last_error(), needle);
    cr_expect(strstr(eb_last_error(), path), "%s: message '%s' does not name the file", name, eb_last_error());
}

Test(inception, bad_files_name_the_key, .init = cli_workdir_make, .fini = cli_workdir_remove) {
    char path[512];
    write_one("empty.safetensors", "something.else", 1, (int64_t[]){4});
    expect_load_fails("empty.safetensors", "missing tensor 'Conv2d_1a_3x3.conv.weight'");
    write_one("shape.safetensors", "Conv2d_1a_3x3.conv.weight", 4, (int64_t[]){32, 3, 1, 9});
    expect_load_fails("shape.safetensors", "tensor 'Conv2d_1a_3x3.conv.weight': shape [32, 3, 1, 9], expected [32, 3, 3, 3]");
    eb_inception *m;
    cr_assert_eq(eb_inception_create_on(&m, 1, NULL), EB_OK);
    float *host = formula_table(m);
    write_table(path, "extra.safetensors", m, host, 1, "AuxLogits.fc.bias");
    expect_load_fails("extra.safetensors", "unexpected tensor 'AuxLogits.fc.bias'");
    /* a variance below −eps is refused by name before anything changes */
    float *var = table_at(m, host, "Mixed_7c.branch_pool.bn.running_var"), keep = *var;
    *var = -0.5f;
    cr_expect_eq(eb_inception_set_tensors(m, host), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "tensor 'Mixed_7c.branch_pool.bn.running_var': channel 3: running_var -0.5"),
              "%s", eb_last_error());
    *var = keep;
    *table_at(m, host, "Mixed_6d.branch1x1.bn.bias") = NAN;
    write_table(path, "nan.safetensors", m, host, 1, NULL);
    expect_load_fails("nan.safetensors", "tensor 'Mixed_6d.branch1x1.bn.bias': non-finite value nan at flat index 3");
    free(host), eb_inception_free(m);
    m = (eb_inception *)1;
    cr_expect_eq(eb_inception_load_on(&m, in_workdir(path, "absent.safetensors"), NULL), EB_EINPUT);
    cr_expect_null(m);
}

/* ------------------------------------------------------------------------ */
/* Through files: the loader, the extractor interface and `ebcache features`  */

/* max rel err of dataset `name` of the features file at path against golden `want`. */
static void expect_dataset_matches(const char *path, const char *name, int64_t cols, const char *want) {
    eb_h5 *f;
    float *got;
    int64_t d[2];
    cr_assert_eq(eb_h5_open(&f, path), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_h5_read_f32(f, name, 2, (int64_t[]){2, cols}, &got, d, 0), EB_OK, "%s", eb_last_error());
    eb_h5_close(f);
    expect_close(got, want, (size_t)2 * cols);
    free(got);
}

Test(inception, weights_file_extractor_and_cli, .init = cli_workdir_make, .fini = cli_workdir_remove) {
    char full[512], nofc[512], npz[512], out[512];
    eb_inception *m;
    cr_assert_eq(eb_inception_create_on(&m, 1, NULL), EB_OK);
    float *host = formula_table(m);
    write_table(full, "full.safetensors", m, host, 1, NULL);
    write_table(nofc, "nofc.safetensors", m, host, 0, NULL);
    free(host), eb_inception_free(m);

    cr_assert_eq(eb_inception_load_on(&m, nofc, NULL), EB_OK, "%s", eb_last_error());
    cr_expect(!eb_inception_has_logits(m), "no fc.weight, no logits");
    cr_expect_eq(eb_inception_tensor_floats(m), 21820000);
    eb_inception_free(m);

    /* the extractor interface on [−1, 1] pixels u/127.5 − 1 */
    eb_features *fx;
    cr_assert_eq(eb_features_open_inception(&fx, full, 64, NULL), EB_OK, "%s", eb_last_error());
    cr_expect_str_eq(fx->name, "inception-v3-fid");
    cr_expect(fx->dim == EB_INCEPTION_POOL && fx->classes == EB_INCEPTION_CLASSES && fx->channels == 3 && fx->side == 64);
    cr_expect_eq(strlen(fx->checksum), 32);
    int64_t d[4];
    float *x = golden_images("images64", d), pool[2 * EB_INCEPTION_POOL], logits[2 * EB_INCEPTION_CLASSES];
    for (size_t i = 0; i < (size_t)2 * 3 * 64 * 64; i++) x[i] = x[i] / 127.5f - 1.0f;
    cr_assert_eq(eb_features_extract(fx, pool, logits, x, 2), EB_OK, "%s", eb_last_error());
    expect_close(pool, "pool64", 2 * EB_INCEPTION_POOL);
    expect_close(logits, "logits64", 2 * EB_INCEPTION_CLASSES);
    eb_features_free(fx);
    free(x);
    fx = (eb_features *)1;
    cr_expect_eq(eb_features_open_inception(&fx, full, 0, NULL), EB_EINPUT, "side 0");
    cr_expect_null(fx);

    /* ebcache features on an .npz of the golden images, one image per batch */
    int32_t *raw = golden_i32(GOLD, "images64", 4, d);
    uint8_t u8[2 * 64 * 64 * 3];
    for (size_t i = 0; i < sizeof u8; i++) u8[i] = (uint8_t)raw[i];
    free(raw);
    eb_npz_writer *w;
    cr_assert_eq(eb_npz_create(&w, in_workdir(npz, "images.npz")), EB_OK);
    cr_assert_eq(eb_npz_write_array(w, "arr_0", EB_NPY_U8, 4, (int64_t[]){2, 64, 64, 3}, u8), EB_OK);
    cr_assert_eq(eb_npz_close(w), EB_OK, "%s", eb_last_error());
    in_workdir(out, "features.h5");
    cr_assert_eq(cli_run("features --inception %s --images %s --output %s --batch 1 --threads 2", full, npz, out), 0,
                 "%s", err_text);
    expect_dataset_matches(out, "pool", EB_INCEPTION_POOL, "pool64");
    expect_dataset_matches(out, "spatial", EB_INCEPTION_SPATIAL, "spatial64");
    expect_dataset_matches(out, "logits", EB_INCEPTION_CLASSES, "logits64");

    /* bad input: exit 2 naming what is wrong, and no output */
    char bad[512], out2[512];
    float fl[2 * 4 * 4 * 3] = {0};
    cr_assert_eq(eb_npz_create(&w, in_workdir(bad, "floats.npz")), EB_OK);
    cr_assert_eq(eb_npz_write_array(w, "arr_0", EB_NPY_F32, 4, (int64_t[]){2, 4, 4, 3}, fl), EB_OK);
    cr_assert_eq(eb_npz_close(w), EB_OK);
    in_workdir(out2, "bad.h5");
    cr_expect_eq(cli_run("features --inception %s --images %s --output %s", full, bad, out2), 2);
    cr_expect(strstr(err_text, "arr_0") && strstr(err_text, "floats.npz"), "names the member: %s", err_text);
    cr_expect_eq(cli_run("features --inception %s --images %s --output %s", npz, npz, out2), 2, "not weights");
    cr_expect_eq(cli_run("features --images %s --output %s", npz, out2), 2);
    cr_expect_eq(access(out2, F_OK), -1, "no output after a failure");
}
