/* test_image_ops.c — the image operations of backend.h against PyTorch
 * (reference/image_ops_ref.py → tests/golden/image_ops.h5) on every backend
 * that runs here: the CPU always, CUDA fp32 where a device runs and the
 * backend has the op. Plus what the goldens cannot show: the im2col tiling
 * and the thread count change no bits, the transpose, the missing-op check.
 *
 * Tolerance: max |got − want| / max |want| ≤ 1e-5 for every op (fp32; seen on
 * the CPU: conv ≤ 3e-7, group_norm ≤ 3e-7, pools, upsample, resize 0). */
#include "tests/golden.h"
#include "runtime/cpu/kernels.h"
#include "runtime/h5io.h"
#include "runtime/model.h"

#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FILE_ "image_ops.h5"
#define TOL 1e-5

/* The backends to check: the CPU, then CUDA fp32 when it runs. */
static int backends(const eb_backend *out[2]) {
    const eb_backend *be, *cond;
    out[0] = &eb_backend_cpu;
    if (eb_backend_select(&(eb_device){"cuda", EB_PRECISION_FP32}, &be, &cond) == EB_OK) {
        out[1] = be;
        return 2;
    }
    return 1;
}

/* A backend copy of n host floats (NULL stays NULL). */
static float *to_dev(const eb_backend *be, const float *host, size_t n) {
    if (!host) return NULL;
    float *d = be->alloc(n * sizeof(float));
    cr_assert(d, "%s: alloc of %zu floats", be->name, n);
    be->upload(d, host, n * sizeof(float));
    return d;
}

static size_t numel(const int64_t *dims, int rank) {
    size_t n = 1;
    for (int r = 0; r < rank; r++) n *= (size_t)dims[r];
    return n;
}

/* Downloads out (n) from the backend, frees it and compares with want. */
static void expect_close(const eb_backend *be, float *dev_out, const float *want, size_t n, const char *what) {
    float *got = malloc(n * sizeof(float));
    be->download(got, dev_out, n * sizeof(float));
    be->free(dev_out);
    double err = max_rel_err(got, want, n);
    cr_log_info("%s on %s: rel err %.3g", what, be->name, err);
    cr_expect_leq(err, TOL, "%s on %s: rel err %g", what, be->name, err);
    free(got);
}

/* One golden case: group/name/{geom, x, out}, plus the sizes. */
typedef struct {
    const char *group, *name;
    int32_t *geom;
    float *x, *want;
    size_t nx, nout;
} golden_case;

/* Dataset group/name/key of the golden: *data malloc'd, *n elements; 0 when the golden lacks it. */
static int read_key(const char *group, const char *name, const char *key, float **data, size_t *n) {
    char path[96];
    snprintf(path, sizeof path, "%s/%s/%s", group, name, key);
    eb_h5 *f;
    int rank;
    int64_t dims[EB_H5_MAX_RANK];
    cr_assert_eq(eb_h5_open(&f, GOLDEN_DIR FILE_), EB_OK, "%s", eb_last_error());
    int has = eb_h5_lookup(f, path) == EB_H5_DATASET;
    if (has) {
        cr_assert_eq(eb_h5_shape(f, path, &rank, dims), EB_OK);
        cr_assert_eq(eb_h5_read_f32(f, path, rank, NULL, data, dims, 0), EB_OK, "%s", eb_last_error());
        *n = numel(dims, rank);
    }
    eb_h5_close(f);
    return has;
}

static golden_case load_case(const char *group, const char *name) {
    char key[96];
    golden_case c = {.group = group, .name = name};
    snprintf(key, sizeof key, "%s/%s/geom", group, name);
    c.geom = golden_i32(FILE_, key, 1, NULL);
    cr_assert(read_key(group, name, "x", &c.x, &c.nx) && read_key(group, name, "out", &c.want, &c.nout), "%s", key);
    return c;
}

/* An op under test: out ← op(x) on backend be with the case's geometry and extra inputs (already on be,
 * NULL where the case has none); 0 when the backend lacks the op. */
typedef int (*image_op)(const eb_backend *be, float *out, float *x, const golden_case *c, float *const *extra);

/* Runs op on every backend that has it and compares with the golden output; `extras` names the
 * case's further inputs (NULL-terminated, at most 4). */
static void check_case(const char *group, const char *name, image_op op, const char *const *extras) {
    golden_case c = load_case(group, name);
    const eb_backend *bes[2];
    int nb = backends(bes);
    for (int k = 0; k < nb; k++) {
        const eb_backend *be = bes[k];
        float *dev_extra[4] = {NULL, NULL, NULL, NULL}, *host;
        size_t n;
        for (int e = 0; extras && extras[e]; e++)
            if (read_key(group, name, extras[e], &host, &n)) {
                dev_extra[e] = to_dev(be, host, n);
                free(host);
            }
        float *dx = to_dev(be, c.x, c.nx), *dout = be->alloc(c.nout * sizeof(float));
        char what[128];
        snprintf(what, sizeof what, "%s/%s", group, name);
        if (op(be, dout, dx, &c, dev_extra)) expect_close(be, dout, c.want, c.nout, what);
        else be->free(dout);
        be->free(dx);
        for (int e = 0; e < 4; e++)
            if (dev_extra[e]) be->free(dev_extra[e]);
    }
    free(c.geom), free(c.x), free(c.want);
}

static int run_conv(const eb_backend *be, float *out, float *x, const golden_case *c, float *const *extra) {
    if (!be->conv2d) return 0;
    const int32_t *g = c->geom;
    eb_conv_shape s = {.B = g[0], .IC = g[1], .H = g[2], .W = g[3], .OC = g[4], .kh = g[5], .kw = g[6],
                       .sh = g[7], .sw = g[8], .ph = g[9], .pw = g[10], .upsample2 = g[11]};
    be->conv2d(out, x, extra[0], extra[1], &s);
    return 1;
}

/* GroupNorm out of place, or (as the decoder runs it) in place on a copy of x. */
static int group_norm_case(const eb_backend *be, float *out, float *x, const golden_case *c, float *const *extra,
                           int in_place) {
    if (!be->group_norm) return 0;
    const int32_t *g = c->geom;
    char path[96];
    snprintf(path, sizeof path, "group_norm/%s", c->name);
    eb_h5 *f;
    double eps = 0;
    cr_assert_eq(eb_h5_open(&f, GOLDEN_DIR FILE_), EB_OK);
    cr_assert_eq(eb_h5_attr_f64(f, path, "eps", &eps), EB_OK, "%s", eb_last_error());
    eb_h5_close(f);
    if (in_place) be->copy(out, x, c->nx);
    be->group_norm(out, in_place ? out : x, extra[0], extra[1], g[0], g[1], g[2] * g[3], g[4], (float)eps, g[5]);
    return 1;
}
static int run_group_norm(const eb_backend *be, float *out, float *x, const golden_case *c, float *const *extra) {
    return group_norm_case(be, out, x, c, extra, 0);
}
static int run_group_norm_in_place(const eb_backend *be, float *out, float *x, const golden_case *c,
                                   float *const *extra) {
    return group_norm_case(be, out, x, c, extra, 1);
}

static int run_upsample(const eb_backend *be, float *out, float *x, const golden_case *c, float *const *extra) {
    const int32_t *g = c->geom;
    if (!be->upsample2x) return 0;
    be->upsample2x(out, x, g[0], g[1], g[2], g[3]);
    return 1;
}

static int run_pool(const eb_backend *be, float *out, float *x, const golden_case *c, float *const *extra) {
    const int32_t *g = c->geom;
    void (*pool)(float *, const float *, int, int, int, int, int, int, int) = g[7] ? be->max_pool2d : be->avg_pool2d;
    if (!pool) return 0;
    pool(out, x, g[0], g[1], g[2], g[3], g[4], g[5], g[6]);
    return 1;
}

static int run_resize(const eb_backend *be, float *out, float *x, const golden_case *c, float *const *extra) {
    const int32_t *g = c->geom;
    if (!be->resize_bilinear_tf1) return 0;
    be->resize_bilinear_tf1(out, x, g[0], g[1], g[2], g[3], g[4], g[5]);
    return 1;
}

Test(image_ops, conv2d_matches_torch) {
    const char *cases[] = {"3x3_same", "3x3_s2_valid_odd", "3x3_s2_pad1", "1x7_pad03", "7x1_pad30", "1x1",
                           "1x1_s2",   "3x3_valid",        "5x5_pad2",    "up2_3x3",   "wide_3x3", "wino_odd",
                           "wino_up2"};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        check_case("conv", cases[c], run_conv, (const char *const[]){"w", "b", NULL});
}

Test(image_ops, group_norm_matches_torch) {
    const char *cases[] = {"silu", "plain", "one_group"};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int in_place = 0; in_place < 2; in_place++)
            check_case("group_norm", cases[c], in_place ? run_group_norm_in_place : run_group_norm,
                       (const char *const[]){"gamma", "beta", NULL});
}

Test(image_ops, upsample_pools_and_tf1_resize_match) {
    check_case("", "upsample", run_upsample, NULL);
    const char *pools[] = {"avg3_s1_p1", "avg3_s2", "avg5_s3_p2", "max3_s2", "max3_s1_p1"};
    for (size_t c = 0; c < sizeof pools / sizeof pools[0]; c++) check_case("pool", pools[c], run_pool, NULL);
    const char *sizes[] = {"up", "down", "dit_ratio", "identity"};
    for (size_t c = 0; c < sizeof sizes / sizeof sizes[0]; c++) check_case("resize", sizes[c], run_resize, NULL);
}

/* x (n) with a fixed, irregular pattern. */
static float *pattern(size_t n, float freq) {
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = sinf((float)i * freq) + 0.25f * cosf((float)(i % 977) * 0.37f);
    return x;
}

/* out (B, OC, OH, OW) for output channels < oc_max by a plain double loop. */
static void conv_reference(float *out, const float *x, const float *w, const float *b, const eb_conv_shape *s,
                           int oc_max) {
    const int OH = eb_conv_out_h(s), OW = eb_conv_out_w(s), k = s->kh;
    for (int n = 0; n < s->B; n++)
        for (int oc = 0; oc < oc_max; oc++)
            for (int oy = 0; oy < OH; oy++)
                for (int ox = 0; ox < OW; ox++) {
                    double acc = b[oc];
                    for (int ic = 0; ic < s->IC; ic++)
                        for (int ky = 0; ky < k; ky++)
                            for (int kx = 0; kx < k; kx++) {
                                int iy = oy - s->ph + ky, ix = ox - s->pw + kx;
                                if (iy < 0 || iy >= s->H || ix < 0 || ix >= s->W) continue;
                                acc += (double)w[((size_t)oc * s->IC + ic) * k * k + ky * k + kx] *
                                       x[(((size_t)n * s->IC + ic) * s->H + iy) * s->W + ix];
                            }
                    out[(((size_t)n * oc_max + oc) * OH + oy) * OW + ox] = (float)acc;
                }
}

/* conv2d_forward on s against the double loop (output channels < oc_max), and the same bits with one
 * thread and with two. */
static void check_conv_splits(const eb_conv_shape *s, int oc_max) {
    const int OH = eb_conv_out_h(s), OW = eb_conv_out_w(s), K = s->IC * s->kh * s->kw;
    size_t nx = (size_t)s->B * s->IC * s->H * s->W, nw = (size_t)s->OC * K, no = (size_t)s->B * s->OC * OH * OW;
    size_t per = (size_t)OH * OW;
    float *x = pattern(nx, 0.013f), *w = pattern(nw, 0.29f), *b = pattern(s->OC, 1.1f);
    for (size_t i = 0; i < nw; i++) w[i] /= sqrtf((float)K);
    float *one = malloc(no * sizeof(float)), *two = malloc(no * sizeof(float));
    float *want = malloc((size_t)s->B * oc_max * per * sizeof(float)), *got = malloc((size_t)s->B * oc_max * per * sizeof(float));
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    conv2d_forward(one, x, w, b, s);
    omp_set_num_threads(2);
    conv2d_forward(two, x, w, b, s);
    omp_set_num_threads(threads);
    cr_expect(!memcmp(one, two, no * sizeof(float)), "conv2d: 1 and 2 threads differ");
    conv_reference(want, x, w, b, s, oc_max);
    for (int n = 0; n < s->B; n++)
        memcpy(got + (size_t)n * oc_max * per, one + (size_t)n * s->OC * per, (size_t)oc_max * per * sizeof(float));
    double err = max_rel_err(got, want, (size_t)s->B * oc_max * per);
    cr_log_info("conv %dx%d, IC %d: rel err %.3g vs the double loop", s->kh, s->kw, s->IC, err);
    cr_expect_leq(err, TOL, "conv2d vs double loop: rel err %g", err);
    free(x), free(w), free(b), free(one), free(two), free(want), free(got);
}

/* Several im2col tiles: a 256-channel valid 3×3 convolution over 40×36 output pixels (K = 2304, tiles of
 * 896 pixels). */
Test(image_ops, conv2d_im2col_tiles_and_threads_do_not_change_results) {
    eb_conv_shape s = {.B = 2, .IC = 256, .H = 42, .W = 38, .OC = 6, .kh = 3, .kw = 3, .sh = 1, .sw = 1};
    cr_assert_gt(eb_conv_out_h(&s) * eb_conv_out_w(&s), (int)(EB_CONV_TILE_BYTES / (2304 * sizeof(float))),
                 "the case must span several tiles");
    check_conv_splits(&s, s.OC);
}

/* One image in one im2col tile (Inception's 5×5 at 35²): the GEMM must not be threaded by OpenBLAS,
 * whose split changes the last bits with the thread count. */
Test(image_ops, conv2d_single_tile_threads_do_not_change_results) {
    eb_conv_shape s = {.B = 1, .IC = 48, .H = 35, .W = 35, .OC = 64, .kh = 5, .kw = 5, .sh = 1, .sw = 1,
                       .ph = 2, .pw = 2};
    check_conv_splits(&s, 4);
}

/* Several Winograd chunks (1024 + 16 channels, 32 tiles a row: 31 tile rows a chunk of 40). */
Test(image_ops, conv2d_winograd_chunks_and_threads_do_not_change_results) {
    eb_conv_shape s = {.B = 1, .IC = 1024, .H = 80, .W = 63, .OC = 16, .kh = 3, .kw = 3, .sh = 1, .sw = 1,
                       .ph = 1, .pw = 1};
    check_conv_splits(&s, 3);
}

/* out_ctot: two convolutions write the channel slices [0, 3) and [3, 8) of one (B, 8, H, W) buffer. */
Test(image_ops, conv2d_writes_channel_slices) {
    eb_conv_shape a = {.B = 2, .IC = 4, .H = 5, .W = 5, .OC = 3, .kh = 1, .kw = 1, .sh = 1, .sw = 1, .out_ctot = 8};
    eb_conv_shape b = a;
    b.OC = 5, b.kh = b.kw = 3, b.ph = b.pw = 1;
    size_t hw = 25;
    float *x = pattern(2 * 4 * hw, 0.3f), *wa = pattern(3 * 4, 0.7f), *wb = pattern(5 * 4 * 9, 0.5f);
    float cat[2 * 8 * 25], sa[2 * 3 * 25], sb[2 * 5 * 25];
    conv2d_forward(cat, x, wa, NULL, &a);
    conv2d_forward(cat + 3 * hw, x, wb, NULL, &b);
    a.out_ctot = b.out_ctot = 0;
    conv2d_forward(sa, x, wa, NULL, &a);
    conv2d_forward(sb, x, wb, NULL, &b);
    for (int n = 0; n < 2; n++) {
        cr_expect(!memcmp(cat + n * 8 * hw, sa + n * 3 * hw, 3 * hw * sizeof(float)), "image %d, slice 0", n);
        cr_expect(!memcmp(cat + (n * 8 + 3) * hw, sb + n * 5 * hw, 5 * hw * sizeof(float)), "image %d, slice 1", n);
    }
    free(x), free(wa), free(wb);
}

Test(image_ops, transpose_and_relu) {
    enum { B = 2, M = 37, N = 70 };
    const eb_backend *bes[2];
    int nb = backends(bes);
    float *in = pattern(B * M * N, 0.41f), want[B * M * N], relu_want[B * M * N];
    for (int b = 0; b < B; b++)
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) want[(b * N + j) * M + i] = in[(b * M + i) * N + j];
    for (int i = 0; i < B * M * N; i++) relu_want[i] = in[i] > 0 ? in[i] : 0;
    for (int k = 0; k < nb; k++) {
        const eb_backend *be = bes[k];
        if (be->transpose) {
            float *din = to_dev(be, in, B * M * N), *dout = be->alloc(sizeof want);
            be->transpose(dout, din, B, M, N);
            expect_close(be, dout, want, B * M * N, "transpose");
            be->free(din);
        }
        if (be->relu) {
            float *din = to_dev(be, in, B * M * N);
            be->relu(din, din, B * M * N);
            expect_close(be, din, relu_want, B * M * N, "relu");
        }
    }
    float nan_in = NAN, nan_out = 0;
    relu_forward(&nan_out, &nan_in, 1);
    cr_expect(isnan(nan_out), "relu keeps NaN, as torch does");
    free(in);
}

Test(image_ops, missing_ops_are_named) {
    cr_expect_null(eb_backend_missing_op(&eb_backend_cpu, "conv2d group_norm upsample2x transpose"));
    eb_backend partial = eb_backend_cpu;
    partial.group_norm = NULL;
    const char *missing = eb_backend_missing_op(&partial, "conv2d group_norm");
    cr_assert_not_null(missing);
    cr_expect_str_eq(missing, "group_norm");
    cr_expect_str_eq(eb_backend_missing_op(&eb_backend_cpu, "conv3d"), "conv3d", "an unknown op is missing");
}
