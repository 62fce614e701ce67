/* test_backend.c — choosing a backend by device name and precision, the clean
 * failures of a device that cannot run, the CLI's --device and --precision,
 * and, where a CUDA device runs (skipped elsewhere), every CUDA op and whole
 * forwards, samplings and cached samplings of random models against the CPU.
 *
 * Tolerances (max |Δ| / max |want|, docs/cuda.md): fp32 is the CPU's
 * arithmetic up to summation order and FMA contraction; tf32 and bf16 round
 * the GEMM and attention operands to 10 and 7 mantissa bits. */
#include "tests/cli_util.h"
#include "tests/golden.h"
#include "analyze/record.h"
#include "runtime/cache.h"
#include "runtime/cpu/kernels.h"
#include "runtime/model.h"
#include "runtime/schedule.h"
#include "runtime/weights.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TINY GOLDEN_DIR "models/tiny_sigma.safetensors"

/* err ≤ tol, and the error logged either way (bench/gpu.sh reports what was seen). */
#define expect_rel_err(err, tol, ...)       \
    do {                                    \
        cr_log_info(__VA_ARGS__);           \
        cr_expect_leq(err, tol, __VA_ARGS__); \
    } while (0)

/* Tolerances with the largest errors seen on an H200 (results/gpu-h200.md, docs/cuda.md), fp32 / tf32 / bf16. */
static const double tol_gemm[3] = {1e-5, 3e-3, 2e-2};    /* linear 3.7e-7, 3.6e-4, 2.7e-3; attention 1.6e-6, 9.7e-4, 1.1e-2 */
static const double tol_forward[3] = {2e-5, 1e-2, 5e-2}; /* random models, guided: 2.9e-6, 2.2e-3, 2.6e-2 */
#define TOL_ELEMENTWISE 1e-6                             /* every other op: 8.4e-8 */
#define TOL_LOOP 1e-4                                    /* fp32 sampling loops, cached or not: 1.1e-5 */

/* ------------------------------------------------------------------------ */
/* Selection and the errors (no GPU needed)                                  */

Test(backend, precision_names) {
    const char *names[] = {"fp32", "tf32", "bf16"};
    for (int p = 0; p < 3; p++) {
        eb_precision got = (eb_precision)-1;
        cr_expect_eq(eb_precision_parse(names[p], &got), EB_OK);
        cr_expect_eq((int)got, p, "%s", names[p]);
    }
    const char *bad[] = {"fp16", "BF16", "", "bf16 ", "tf3"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_expect_eq(eb_precision_parse(bad[i], &(eb_precision){0}), EB_EINPUT, "'%s'", bad[i]);
        char quoted[16];
        snprintf(quoted, sizeof quoted, "'%s'", bad[i]);
        cr_expect(strstr(eb_last_error(), quoted), "message names %s: %s", quoted, eb_last_error());
    }
    cr_expect_eq(eb_precision_parse(NULL, &(eb_precision){0}), EB_EINPUT);
}

Test(backend, select_by_name) {
    const eb_backend *be = NULL, *cond = NULL;
    cr_expect_eq(eb_backend_select(NULL, &be, &cond), EB_OK);
    cr_expect(be == &eb_backend_cpu && cond == &eb_backend_cpu);
    be = cond = NULL;
    cr_expect_eq(eb_backend_select(&(eb_device){"cpu", EB_PRECISION_FP32}, &be, &cond), EB_OK);
    cr_expect(be == &eb_backend_cpu && cond == &eb_backend_cpu);
    cr_expect_eq(eb_backend_select(&(eb_device){NULL, EB_PRECISION_FP32}, &be, &cond), EB_OK, "NULL device is cpu");

    cr_expect_eq(eb_backend_select(&(eb_device){"cpu", EB_PRECISION_BF16}, &be, &cond), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "fp32 only"), "%s", eb_last_error());
    cr_expect_eq(eb_backend_select(&(eb_device){"gpu", EB_PRECISION_FP32}, &be, &cond), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "'gpu'"), "%s", eb_last_error());
    cr_expect_eq(eb_backend_select(&(eb_device){"cuda", (eb_precision)7}, &be, &cond), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "precision 7"), "%s", eb_last_error());

    eb_model *m = NULL;
    cr_assert_eq(eb_model_load_on(&m, TINY, 0, &(eb_device){"cpu", EB_PRECISION_FP32}), EB_OK, "%s",
                 eb_last_error());
    cr_expect_str_eq(eb_model_device(m), "cpu");
    cr_expect(eb_model_on_host(m));
    eb_model_free(m);
}

/* A CUDA backend that runs here at precision p, or NULL. */
static const eb_backend *cuda_at(eb_precision p) {
    const eb_backend *be = NULL, *cond = NULL;
    return eb_backend_select(&(eb_device){"cuda", p}, &be, &cond) ? NULL : be;
}

/* Without CUDA in the build, or without an NVIDIA driver on the machine,
 * asking for cuda fails with EB_ERUNTIME and the reason, and leaves nothing. */
Test(backend, cuda_that_cannot_run_fails_cleanly) {
    const int built = strstr(eb_devices_built(), "cuda") != NULL;
    if (built && access("/dev/nvidiactl", F_OK) == 0) cr_skip_test("an NVIDIA driver is present");
    const char *why = built ? "no CUDA device or driver" : "built without CUDA";
    const eb_device cuda = {"cuda", EB_PRECISION_BF16};
    eb_model *m = (eb_model *)&m;
    cr_expect_eq(eb_model_load_on(&m, TINY, 0, &cuda), EB_ERUNTIME);
    cr_expect(strstr(eb_last_error(), why), "want '%s': %s", why, eb_last_error());
    cr_expect_null(m);
    m = (eb_model *)&m;
    eb_config c;
    cr_assert_eq(eb_config_named(&c, "S/8"), EB_OK);
    cr_expect_eq(eb_model_create_on(&m, &c, &cuda), EB_ERUNTIME);
    cr_expect(strstr(eb_last_error(), why), "want '%s': %s", why, eb_last_error());
    cr_expect_null(m);
    /* the failure is remembered, not retried into a different state */
    cr_expect_eq(eb_model_create_on(&m, &c, &cuda), EB_ERUNTIME);
    cr_expect(strstr(eb_last_error(), why), "%s", eb_last_error());
}

/* Loading on the CPU by name is the same model as eb_model_load, bit for bit. */
Test(backend, cpu_by_name_is_bit_identical) {
    eb_model *a = golden_model("tiny_sigma.safetensors", 0), *b = NULL;
    cr_assert_eq(eb_model_load_on(&b, TINY, 0, &(eb_device){"cpu", EB_PRECISION_FP32}), EB_OK);
    const eb_config *c = eb_model_config(a);
    enum { N = 3 };
    size_t per = (size_t)c->in_channels * c->input_size * c->input_size, out_n = N * per * eb_out_channels(c);
    float *x = malloc(N * per * sizeof(float)), *oa = malloc(out_n * 4), *ob = malloc(out_n * 4);
    int32_t t[N] = {999, 500, 3}, y[N] = {0, 4, c->num_classes};
    eb_rng_fill_normal(x, N * per, eb_rng_key(3, 1));
    cr_assert_eq(eb_forward_cfg(a, oa, x, t, y, N, 2.5f, 3), EB_OK);
    cr_assert_eq(eb_forward_cfg(b, ob, x, t, y, N, 2.5f, 3), EB_OK);
    cr_expect_eq(memcmp(oa, ob, out_n * sizeof(float)), 0);
    eb_model_free(a), eb_model_free(b);
    free(x), free(oa), free(ob);
}

Test(backend, cli_device_and_precision, .init = cli_workdir_make, .fini = cli_workdir_remove) {
    const char *common = "forward --model " TINY " --input absent.h5 --output out.h5";
    cr_expect_eq(cli_run("%s --device tpu", common), 2);
    cr_expect(strstr(err_text, "unknown device 'tpu'"), "%s", err_text);
    cr_expect_eq(cli_run("%s --precision fp16", common), 2);
    cr_expect(strstr(err_text, "'fp16'"), "%s", err_text);
    cr_expect_eq(cli_run("%s --device cpu --precision bf16", common), 2);
    cr_expect(strstr(err_text, "fp32 only"), "%s", err_text);
    cr_expect_eq(cli_run("sample --model " TINY " --n 1 --steps 2 --output out.h5 --device npu"), 2);
    cr_expect(strstr(err_text, "unknown device 'npu'"), "%s", err_text);
    if (cuda_at(EB_PRECISION_FP32)) return; /* then cuda loads and the absent input fails instead */
    cr_expect_eq(cli_run("%s --device cuda --precision tf32", common), 1);
    cr_expect(strstr(err_text, "built without CUDA") || strstr(err_text, "no CUDA device or driver"), "%s", err_text);
}

/* ------------------------------------------------------------------------ */
/* CUDA against the CPU (skipped where no CUDA device runs)                  */

static const eb_backend *cuda_or_skip(eb_precision p) {
    const eb_backend *be = cuda_at(p);
    if (!be) cr_skip_test("no CUDA device runs here: %s", eb_last_error());
    return be;
}

static float *host_normal(size_t n, uint64_t seed, float scale) {
    float *h = malloc((n ? n : 1) * sizeof(float));
    eb_rng_fill_normal(h, n, eb_rng_key(seed, 11));
    for (size_t i = 0; i < n; i++) h[i] *= scale;
    return h;
}

static void *on_device(const eb_backend *be, const void *h, size_t bytes) {
    void *d = be->alloc(bytes);
    cr_assert_not_null(d);
    be->upload(d, h, bytes);
    return d;
}

/* max rel error of the device's n floats at d against the host's want. */
static double device_err(const eb_backend *be, const float *d, const float *want, size_t n) {
    float *got = malloc((n ? n : 1) * sizeof(float));
    be->download(got, d, n * sizeof(float));
    double e = max_rel_err(got, want, n);
    free(got);
    return e;
}

Test(backend, linear_and_linear_rows_match_cpu) {
    const struct { int BT, IC, OC, bias_offset, w_offset; } cases[] = {
        {7, 13, 5, 0, 0}, {64, 256, 96, 0, 0}, {300, 72, 200, 1, 0}, {33, 40, 24, -1, 1}, {1, 256, 64, 0, 0},
    };
    for (int p = 0; p < 3; p++) {
        const eb_backend *be = cuda_or_skip((eb_precision)p);
        for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
            const int BT = cases[k].BT, IC = cases[k].IC, OC = cases[k].OC;
            /* offsets misalign the weight and bias pointers (−1: no bias) */
            size_t nw = (size_t)OC * IC + 1, nb = OC + 1;
            float *in = host_normal((size_t)BT * IC, 1 + k, 1.0f), *w = host_normal(nw, 2 + k, 0.2f);
            float *b = host_normal(nb, 3 + k, 1.0f), *want = malloc((size_t)BT * OC * sizeof(float));
            const float *wh = w + cases[k].w_offset, *bh = cases[k].bias_offset < 0 ? NULL : b + cases[k].bias_offset;
            linear_forward(want, in, wh, bh, BT, IC, OC);
            float *din = on_device(be, in, (size_t)BT * IC * 4), *dw = on_device(be, w, nw * 4);
            float *db = on_device(be, b, nb * 4), *dout = be->alloc((size_t)BT * OC * 4);
            be->linear(dout, din, dw + cases[k].w_offset, bh ? db + cases[k].bias_offset : NULL, BT, IC, OC);
            double err = device_err(be, dout, want, (size_t)BT * OC);
            expect_rel_err(err, tol_gemm[p], "%s linear %dx%dx%d: rel err %g", be->name, BT, IC, OC, err);
            /* new weights uploaded into the same memory are used (the bf16 copy is refreshed) */
            for (size_t i = 0; i < nw; i++) w[i] = -w[i];
            be->upload(dw, w, nw * 4);
            linear_forward(want, in, wh, bh, BT, IC, OC);
            be->linear(dout, din, dw + cases[k].w_offset, bh ? db + cases[k].bias_offset : NULL, BT, IC, OC);
            err = device_err(be, dout, want, (size_t)BT * OC);
            expect_rel_err(err, tol_gemm[p], "%s linear after re-upload: rel err %g", be->name, err);
            linear_rows_forward(want, in, wh, bh, BT, IC, OC);
            be->linear_rows(dout, din, dw + cases[k].w_offset, bh ? db + cases[k].bias_offset : NULL, BT, IC, OC);
            err = device_err(be, dout, want, (size_t)BT * OC);
            expect_rel_err(err, tol_gemm[p], "%s linear_rows %dx%dx%d: rel err %g", be->name, BT, IC, OC, err);
            be->free(din), be->free(dw), be->free(db), be->free(dout);
            free(in), free(w), free(b), free(want);
        }
    }
}

Test(backend, attention_matches_cpu) {
    /* rows that need padding (T 37, hd 12), DiT-XL's head size, and more samples than one chunk of scores holds */
    const struct { int B, T, NH, hd; } cases[] = {
        {2, 16, 4, 16}, {1, 37, 3, 12}, {1, 144, 2, 8}, {1, 256, 2, 72}, {3, 2048, 8, 8}};
    for (int p = 0; p < 3; p++) {
        const eb_backend *be = cuda_or_skip((eb_precision)p);
        for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
            const int B = cases[k].B, T = cases[k].T, NH = cases[k].NH, hd = cases[k].hd, D = NH * hd;
            size_t nqkv = (size_t)B * T * 3 * D, nout = (size_t)B * T * D;
            float *qkv = host_normal(nqkv, 20 + k, 1.0f), *want = malloc(nout * sizeof(float));
            attention_forward(want, NULL, qkv, B, T, NH, hd);
            float *dqkv = on_device(be, qkv, nqkv * 4), *dout = be->alloc(nout * 4);
            be->attention(dout, dqkv, B, T, NH, hd);
            double err = device_err(be, dout, want, nout);
            expect_rel_err(err, tol_gemm[p], "%s attention B%d T%d NH%d hd%d: rel err %g", be->name, B, T, NH, hd, err);
            be->free(dqkv), be->free(dout);
            free(qkv), free(want);
        }
    }
}

static uint64_t next_random(uint64_t *s) { /* xorshift64 */
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return *s;
}

/* attention_colsum: the output is `attention`'s, bit for bit, and the column sums of the softmax maps
 * (float32 at every precision) are the CPU's within the attention's tolerance. */
Test(backend, attention_colsum_matches_cpu) {
    /* padded rows (T 37, hd 12), T = 300 over 256-thread blocks, and 2 + 1 samples in chunks of scores */
    const struct { int B, T, NH, hd; } cases[] = {
        {2, 16, 4, 16}, {1, 37, 3, 12}, {2, 300, 2, 8}, {1, 256, 2, 72}, {3, 2048, 8, 8}};
    for (int p = 0; p < 3; p++) {
        const eb_backend *be = cuda_or_skip((eb_precision)p);
        for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
            const int B = cases[k].B, T = cases[k].T, NH = cases[k].NH, hd = cases[k].hd, D = NH * hd;
            const size_t nqkv = (size_t)B * T * 3 * D, nout = (size_t)B * T * D, ncs = (size_t)B * NH * T;
            float *qkv = host_normal(nqkv, 70 + k, 1.0f), *want = malloc(nout * 4), *want_cs = malloc(ncs * 4);
            attention_colsum_forward(want, want_cs, qkv, B, T, NH, hd);
            float *dqkv = on_device(be, qkv, nqkv * 4), *dout = be->alloc(nout * 4), *dcs = be->alloc(ncs * 4);
            float *dplain = be->alloc(nout * 4);
            be->attention_colsum(dout, dcs, dqkv, B, T, NH, hd);
            double err = device_err(be, dout, want, nout);
            expect_rel_err(err, tol_gemm[p], "%s attention_colsum B%d T%d NH%d hd%d: output rel err %g", be->name, B, T,
                           NH, hd, err);
            err = device_err(be, dcs, want_cs, ncs);
            expect_rel_err(err, tol_gemm[p], "%s attention_colsum B%d T%d NH%d hd%d: colsum rel err %g", be->name, B, T,
                           NH, hd, err);
            be->attention(dplain, dqkv, B, T, NH, hd);
            float *a = malloc(nout * 4), *b = malloc(nout * 4);
            be->download(a, dout, nout * 4), be->download(b, dplain, nout * 4);
            cr_expect_eq(memcmp(a, b, nout * 4), 0, "%s B%d T%d: attention_colsum's output differs from attention's",
                         be->name, B, T);
            be->free(dqkv), be->free(dout), be->free(dcs), be->free(dplain);
            free(qkv), free(want), free(want_cs), free(a), free(b);
        }
    }
}

/* toca_select picks the CPU's tokens in the CPU's order and leaves the CPU's ages, bit for bit, over three
 * rounds (the ages growing), and token_gather / token_scatter move the rows it picked as the CPU does.
 * Column sums from three values make ties in the scores; all-zero ones leave only the ages (the norm's
 * floor). Precision-independent: the fp32 table's ops. */
Test(backend, toca_select_and_token_ops_match_cpu) {
    enum { RANDOM, TIES, ZEROS };
    const struct { int B, NH, T, K, grid, kind; } cases[] = {
        {2, 3, 16, 5, 2, RANDOM}, {1, 2, 36, 0, 3, TIES}, {3, 1, 64, 64, 2, TIES}, {2, 4, 576, 40, 2, RANDOM},
        {2, 16, 1024, 71, 4, TIES}, {1, 1, 256, 17, 2, ZEROS}, {1, 2, 1, 1, 1, RANDOM}, {2, 2, 100, 99, 5, TIES}};
    const eb_backend *be = cuda_or_skip(EB_PRECISION_FP32);
    enum { D = 8 };
    uint64_t rs = 0x5851f42d4c957f2du;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int B = cases[c].B, NH = cases[c].NH, T = cases[c].T, K = cases[c].K, grid = cases[c].grid;
        const size_t ncs = (size_t)B * NH * T, nt = (size_t)B * T, nk = (size_t)B * K;
        float *colsum = host_normal(ncs, 80 + c, 1.0f), *age = malloc(nt * 4), *got_age = malloc(nt * 4);
        for (size_t i = 0; i < ncs; i++)
            colsum[i] = cases[c].kind == RANDOM ? fabsf(colsum[i])
                        : cases[c].kind == TIES ? 0.25f * (float)(next_random(&rs) % 3) : 0.0f;
        for (size_t i = 0; i < nt; i++) age[i] = (float)(next_random(&rs) % 5);
        int32_t *idx = malloc((nk ? nk : 1) * 4), *got_idx = malloc((nk ? nk : 1) * 4);
        float *dcs = on_device(be, colsum, ncs * 4), *dage = on_device(be, age, nt * 4);
        int32_t *didx = be->alloc(nk * 4);
        for (int round = 0; round < 3; round++) {
            toca_select_forward(idx, age, colsum, B, NH, T, K, 0.25, 4, 0.6, grid);
            be->toca_select(didx, dage, dcs, B, NH, T, K, 0.25, 4, 0.6, grid);
            be->download(got_idx, didx, nk * 4), be->download(got_age, dage, nt * 4);
            cr_expect_eq(memcmp(got_idx, idx, nk * 4), 0, "case %zu round %d: the chosen tokens differ", c, round);
            cr_expect_eq(memcmp(got_age, age, nt * 4), 0, "case %zu round %d: the ages differ", c, round);
        }
        float *x = host_normal(nt * D, 90 + c, 1.0f), *want = calloc(nt * D, 4), *got = malloc(nt * D * 4);
        float *dx = on_device(be, x, nt * D * 4), *dsub = be->alloc(nk * D * 4), *dfull = be->alloc(nt * D * 4);
        token_gather_forward(want, x, idx, B, T, K, D);
        be->token_gather(dsub, dx, didx, B, T, K, D);
        be->download(got, dsub, nk * D * 4);
        cr_expect_eq(memcmp(got, want, nk * D * 4), 0, "case %zu: token_gather", c);
        float *full = calloc(nt * D, 4);
        token_scatter_forward(full, want, idx, B, T, K, D);
        be->token_scatter(dfull, dsub, didx, B, T, K, D);
        be->download(got, dfull, nt * D * 4);
        cr_expect_eq(memcmp(got, full, nt * D * 4), 0, "case %zu: token_scatter", c);
        be->free(dcs), be->free(dage), be->free(didx), be->free(dx), be->free(dsub), be->free(dfull);
        free(colsum), free(age), free(got_age), free(idx), free(got_idx), free(x), free(want), free(got), free(full);
    }
}

/* An op that cannot run (attention whose scores need 1 TiB of scratch) is
 * not silent: what the host reads back is NaN from then on, so the forward's
 * finite check fails with EB_ERUNTIME, and rel_l1 is NaN. */
Test(backend, cuda_failure_reaches_the_host_as_nan) {
    const eb_backend *be = cuda_or_skip(EB_PRECISION_FP32);
    enum { T = 1 << 19 }; /* one head of size 1: T² float scores */
    size_t nqkv = (size_t)T * 3;
    float *qkv = host_normal(nqkv, 60, 1.0f), *got = malloc(nqkv * sizeof(float));
    float *dqkv = on_device(be, qkv, nqkv * 4), *dout = be->alloc((size_t)T * 4);
    be->attention(dout, dqkv, 1, T, 1, 1);
    be->download(got, dout, (size_t)T * 4);
    for (size_t i = 0; i < (size_t)T; i++) cr_assert(isnan(got[i]), "element %zu: %g", i, got[i]);
    be->download(got, dqkv, nqkv * 4); /* later reads too, even of untouched memory */
    cr_expect(isnan(got[0]) && isnan(got[nqkv - 1]));
    cr_expect(isnan(be->rel_l1(dqkv, dqkv, nqkv)));
    be->free(dqkv), be->free(dout);
    free(qkv), free(got);
}

/* The precision-independent ops, each against its CPU kernel. */
Test(backend, elementwise_ops_match_cpu) {
    const eb_backend *be = cuda_or_skip(EB_PRECISION_FP32);
    enum { B = 3, C = 3, H = 8, p = 2, D = 40, T = (H / p) * (H / p), MS = 6 * D, K = 5 };
    const size_t nx = (size_t)B * C * H * H, nt = (size_t)B * T * D;
    double err;
#define EXPECT_CLOSE(d, want, n, what)                                                                             \
    err = device_err(be, d, want, n);                                                                              \
    expect_rel_err(err, TOL_ELEMENTWISE, "%s: rel err %g", what, err)

    float *x = host_normal(nx, 40, 1.0f), *w = host_normal((size_t)D * C * p * p, 41, 0.3f);
    float *b = host_normal(D, 42, 0.1f), *pos = host_normal((size_t)T * D, 43, 1.0f);
    float *want = malloc(nt * 4 * sizeof(float));
    float *dx = on_device(be, x, nx * 4), *dw = on_device(be, w, (size_t)D * C * p * p * 4);
    float *db = on_device(be, b, D * 4), *dpos = on_device(be, pos, (size_t)T * D * 4), *dout = be->alloc(nt * 16);
    patch_embed_forward(want, x, w, b, pos, B, C, H, p, D);
    be->patch_embed(dout, dx, dw, db, dpos, B, C, H, p, D);
    EXPECT_CLOSE(dout, want, nt, "patch_embed");

    int32_t t[B] = {0, 517, 999}, y[B] = {2, 0, K};
    int32_t *dt = on_device(be, t, sizeof t), *dy = on_device(be, y, sizeof y);
    timestep_freq_forward(want, t, B);
    be->timestep_freq(dout, dt, B);
    EXPECT_CLOSE(dout, want, (size_t)B * EB_FREQ_DIM, "timestep_freq");

    float *tokens = host_normal(nt, 44, 2.0f), *mod = host_normal((size_t)B * MS, 45, 0.5f);
    float *dtok = on_device(be, tokens, nt * 4), *dmod = on_device(be, mod, (size_t)B * MS * 4);
    for (size_t i = 0; i < nt; i++) tokens[i] += 3.0f; /* a row mean far from 0 tests the two-pass variance */
    be->upload(dtok, tokens, nt * 4);
    ln_modulate_forward(want, NULL, NULL, tokens, mod + D, mod + 2 * D, B, T, D, MS);
    be->ln_modulate(dout, dtok, dmod + D, dmod + 2 * D, B, T, D, MS);
    EXPECT_CLOSE(dout, want, nt, "ln_modulate");

    silu_forward(want, tokens, nt);
    be->silu(dout, dtok, nt);
    EXPECT_CLOSE(dout, want, nt, "silu");
    gelu_tanh_forward(want, tokens, nt);
    be->copy(dout, dtok, nt);
    be->gelu_tanh(dout, dout, nt); /* in place, as the MLP runs it */
    EXPECT_CLOSE(dout, want, nt, "gelu_tanh");

    float *table = host_normal((size_t)(K + 1) * D, 46, 1.0f), *dtable = on_device(be, table, (K + 1) * D * 4);
    memcpy(want, mod, (size_t)B * D * sizeof(float));
    label_add_forward(want, table, y, B, D);
    be->copy(dout, dmod, (size_t)B * D);
    be->label_add(dout, dtable, dy, B, D);
    EXPECT_CLOSE(dout, want, (size_t)B * D, "label_add");

    float *branch = host_normal(nt, 47, 1.0f), *dbranch = on_device(be, branch, nt * 4);
    memcpy(want, tokens, nt * sizeof(float));
    gate_residual_forward(want, mod + 5 * D, branch, B, T, D, MS);
    be->gate_residual(dtok, dmod + 5 * D, dbranch, B, T, D, MS);
    EXPECT_CLOSE(dtok, want, nt, "gate_residual");

    const int Co = 2 * C, Kp = p * p * Co;
    float *ptok = host_normal((size_t)B * T * Kp, 48, 1.0f), *dptok = on_device(be, ptok, (size_t)B * T * Kp * 4);
    unpatchify_forward(want, ptok, B, Co, H, p);
    be->unpatchify(dout, dptok, B, Co, H, p);
    EXPECT_CLOSE(dout, want, (size_t)B * Co * H * H, "unpatchify");
    /* guidance on rows [0, 1) + [1, 2) of the model output just made: 2 of 6 channels guided */
    cfg_combine_forward(want + (size_t)B * Co * H * H, ptok, 1, Co, H * H, 2, 1.7f);
    be->cfg_combine(dout, dptok, 1, Co, H * H, 2, 1.7f);
    EXPECT_CLOSE(dout, want + (size_t)B * Co * H * H, (size_t)Co * H * H, "cfg_combine");

    /* dtok holds tokens + gate ⊙ branch now: back to the tokens the CPU keeps */
    be->upload(dtok, tokens, nt * 4);
    memcpy(want, branch, nt * sizeof(float));
    add_scaled_forward(want, want, -0.75f, tokens, nt);
    be->add_scaled(dbranch, dbranch, -0.75f, dtok, nt); /* out aliases a, as the cache's residuals */
    EXPECT_CLOSE(dbranch, want, nt, "add_scaled");

    be->upload(dbranch, branch, nt * 4);
    double cpu = rel_l1_forward(branch, tokens, nt), gpu = be->rel_l1(dbranch, dtok, nt);
    cr_expect_leq(fabs(gpu - cpu), 1e-12 * fabs(cpu), "rel_l1 %.17g vs %.17g", gpu, cpu);

    /* drift: five sums in double, then prev ← cur */
    double sums_cpu[EB_DRIFT_SUMS], sums_gpu[EB_DRIFT_SUMS];
    float *prev = malloc(nt * sizeof(float));
    memcpy(prev, branch, nt * sizeof(float));
    feature_drift_forward(sums_cpu, prev, tokens, nt);
    be->feature_drift(sums_gpu, dbranch, dtok, nt);
    cr_expect_leq(max_rel_err_f64(sums_gpu, sums_cpu, EB_DRIFT_SUMS), 1e-12, "feature_drift sums");
    EXPECT_CLOSE(dbranch, tokens, nt, "feature_drift prev");

    /* Taylor factors: three computes at distances 2 and 3 into a cap of 3, then forecasts of orders 1..3 */
    float *factors = calloc(3 * nt, sizeof(float)), *dfac = be->alloc(3 * nt * 4);
    for (int have = 0; have < 3; have++) {
        float *feat = host_normal(nt, 50 + have, 1.0f), *dfeat = on_device(be, feat, nt * 4);
        taylor_update_forward(factors, 3, have, feat, nt, 2.0f + have);
        be->taylor_update(dfac, 3, have, dfeat, nt, 2.0f + have);
        be->free(dfeat), free(feat);
    }
    EXPECT_CLOSE(dfac, factors, 3 * nt, "taylor_update");
    for (int orders = 1; orders <= 3; orders++) {
        taylor_forecast_forward(want, factors, orders, nt, 1.5f);
        be->taylor_forecast(dout, dfac, orders, nt, 1.5f);
        EXPECT_CLOSE(dout, want, nt, "taylor_forecast");
    }
#undef EXPECT_CLOSE
    void *dev[] = {dx, dw, db, dpos, dout, dt, dy, dtok, dmod, dtable, dbranch, dptok, dfac};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++) be->free(dev[i]);
    free(x), free(w), free(b), free(pos), free(want), free(tokens), free(mod), free(table), free(branch), free(ptok);
    free(prev), free(factors);
}

/* ------------------------------------------------------------------------ */
/* Whole models: random configurations and schedules on both backends       */

#define PICK(s, arr) (arr)[next_random(s) % (sizeof(arr) / sizeof((arr)[0]))]

/* A small DiT drawn from sizes that exercise ragged attention tiles, token
 * counts above one key tile, both output kinds and odd channel counts. */
static eb_config random_config(uint64_t *s) {
    static const int inputs[] = {8, 12, 16, 24}, hds[] = {8, 16, 24, 32}, heads[] = {1, 2, 3, 4};
    eb_config c = {0};
    c.input_size = PICK(s, inputs);
    c.patch_size = c.input_size % 4 == 0 && next_random(s) % 2 ? 4 : 2;
    c.num_heads = PICK(s, heads);
    c.hidden_size = c.num_heads * PICK(s, hds);
    c.hidden_size += c.hidden_size % 4 ? 4 - c.hidden_size % 4 : 0; /* sin-cos position embedding: D % 4 = 0 */
    while (c.hidden_size % c.num_heads) c.num_heads--;
    c.in_channels = 1 + (int)(next_random(s) % 4);
    c.depth = 2 + (int)(next_random(s) % 2);
    c.num_classes = 2 + (int)(next_random(s) % 9);
    c.learn_sigma = (int)(next_random(s) % 2);
    return c;
}

/* The CPU model with random weights, saved to workdir/name. */
static eb_model *random_model(const eb_config *c, uint64_t seed, const char *path) {
    eb_model *m;
    cr_assert_eq(eb_model_create(&m, c), EB_OK, "%s", eb_last_error());
    size_t n = eb_param_count(c);
    eb_rng_fill_normal(m->slab, n, eb_rng_key(seed, 21));
    for (size_t i = 0; i < n; i++) m->slab[i] *= 0.15f;
    cr_assert_eq(eb_model_save(m, path, NULL, 0, EB_DT_F32), EB_OK, "%s", eb_last_error());
    return m;
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    rewind(f);
    char *buf = malloc(*len ? *len : 1);
    cr_assert_eq(fread(buf, 1, *len, f), *len);
    fclose(f);
    return buf;
}

static void describe(char *buf, size_t cap, const eb_config *c) {
    snprintf(buf, cap, "input %d patch %d C %d D %d heads %d depth %d classes %d sigma %d", c->input_size,
             c->patch_size, c->in_channels, c->hidden_size, c->num_heads, c->depth, c->num_classes, c->learn_sigma);
}

/* Uploading (staged loading) and downloading (saving) move the parameters bit for bit,
 * and single forwards, with and without guidance, agree at every precision. */
Test(backend, random_models_forward_like_cpu, .init = cli_workdir_make, .fini = cli_workdir_remove) {
    cuda_or_skip(EB_PRECISION_FP32);
    uint64_t rs = 0x9e3779b97f4a7c15u;
    char path[512], back[512], what[160];
    in_workdir(path, "model.safetensors"), in_workdir(back, "back.safetensors");
    for (int trial = 0; trial < 4; trial++) {
        eb_config c = random_config(&rs);
        describe(what, sizeof what, &c);
        eb_model *cpu = random_model(&c, 100 + trial, path);
        enum { N = 3 };
        size_t per = (size_t)c.in_channels * c.input_size * c.input_size;
        size_t out_n = N * per / c.in_channels * eb_out_channels(&c);
        float *x = host_normal(N * per, 200 + trial, 1.0f), *want = malloc(out_n * 4), *got = malloc(out_n * 4);
        int32_t t[N] = {999, (int32_t)(next_random(&rs) % 1000), 0}, y[N] = {0, c.num_classes, c.num_classes - 1};
        for (int p = 0; p < 3; p++) {
            eb_model *gpu = NULL;
            cr_assert_eq(eb_model_load_on(&gpu, path, 0, &(eb_device){"cuda", (eb_precision)p}), EB_OK, "%s",
                         eb_last_error());
            cr_expect(!eb_model_on_host(gpu));
            cr_assert_eq(eb_model_save(gpu, back, NULL, 0, EB_DT_F32), EB_OK, "%s", eb_last_error());
            size_t la, lb;
            char *fa = read_file(path, &la), *fb = read_file(back, &lb);
            cr_expect(la == lb && !memcmp(fa, fb, la), "%s: saved parameters differ after a round trip", what);
            free(fa), free(fb);
            for (int guided = 0; guided < 2; guided++) {
                eb_status sa = guided ? eb_forward_cfg(cpu, want, x, t, y, N, 3.0f, eb_default_guide_channels(&c))
                                      : eb_forward(cpu, want, x, t, y, N);
                eb_status sb = guided ? eb_forward_cfg(gpu, got, x, t, y, N, 3.0f, eb_default_guide_channels(&c))
                                      : eb_forward(gpu, got, x, t, y, N);
                cr_assert(!sa && !sb, "%s: %s", what, eb_last_error());
                double err = max_rel_err(got, want, out_n);
                expect_rel_err(err, tol_forward[p], "%s %s guided %d: rel err %g", eb_model_device(gpu), what, guided,
                              err);
            }
            eb_model_free(gpu);
        }
        eb_model_free(cpu);
        free(x), free(want), free(got);
    }
}

/* Whole fp32 sampling loops, uncached and under every kind of schedule, agree
 * with the CPU, and so do the caches' accounting and dynamic decisions. */
Test(backend, random_models_sample_like_cpu, .init = cli_workdir_make, .fini = cli_workdir_remove) {
    cuda_or_skip(EB_PRECISION_FP32);
    uint64_t rs = 0x2545f4914f6cdd1du;
    char path[512], what[160];
    in_workdir(path, "model.safetensors");
    eb_schedule s;
    cr_assert_eq(eb_schedule_create(&s, "6"), EB_OK);
    for (int trial = 0; trial < 2; trial++) {
        eb_config c = random_config(&rs);
        describe(what, sizeof what, &c);
        eb_model *cpu = random_model(&c, 300 + trial, path), *gpu = NULL;
        cr_assert_eq(eb_model_load_on(&gpu, path, 0, &(eb_device){"cuda", EB_PRECISION_FP32}), EB_OK, "%s",
                     eb_last_error());
        eb_cache_schedule *tables[6] = {NULL};
        const double teacache_poly[2] = {1, 0};
        cr_assert(!eb_cache_schedule_fora(&tables[1], &s, 2) &&
                  !eb_cache_schedule_taylorseer(&tables[2], &s, 2, 2, 1) &&
                  !eb_cache_schedule_delta_dit(&tables[3], &s, c.depth, 2, 1, 3) &&
                  !eb_cache_schedule_teacache(&tables[4], &s, 0.3, teacache_poly, 2) &&
                  !eb_cache_schedule_fbcache(&tables[5], &s, 0.2, 1), "%s", eb_last_error());
        enum { N = 2 };
        size_t n = (size_t)N * c.in_channels * c.input_size * c.input_size;
        int32_t y[N] = {1, c.num_classes};
        for (int k = 0; k < 6; k++) {
            eb_sampler_opts o = {.kind = k % 2 ? EB_SAMPLER_DDIM : EB_SAMPLER_DDPM,
                                 .var_type = c.learn_sigma ? EB_VAR_LEARNED_RANGE : EB_VAR_FIXED_SMALL,
                                 .eta = 0.5f, .cfg_scale = 1.5f, .guide_channels = eb_default_guide_channels(&c),
                                 .seed = 7 + k};
            float *xa = host_normal(n, 400 + k, 1.0f), *xb = malloc(n * sizeof(float));
            memcpy(xb, xa, n * sizeof(float));
            eb_cache_stats sa = {0}, sb = {0};
            cr_assert_eq(eb_sample_cached(cpu, &s, &o, tables[k], xa, y, N, 0, &sa), EB_OK, "%s", eb_last_error());
            cr_assert_eq(eb_sample_cached(gpu, &s, &o, tables[k], xb, y, N, 0, &sb), EB_OK, "%s", eb_last_error());
            double err = max_rel_err(xb, xa, n);
            expect_rel_err(err, TOL_LOOP, "%s schedule %d: rel err %g", what, k, err);
            cr_expect_eq(sb.steps_skipped, sa.steps_skipped, "%s schedule %d: dynamic skips differ", what, k);
            cr_expect_eq(sb.macs, sa.macs, "%s schedule %d", what, k);
            cr_expect_eq(sb.cache_bytes, sa.cache_bytes, "%s schedule %d", what, k);
            free(xa), free(xb);
        }
        for (int k = 1; k < 6; k++) eb_cache_schedule_free(tables[k]);
        eb_model_free(cpu), eb_model_free(gpu);
    }
    eb_schedule_free(&s);
}

/* The cache and recorder ops are an optional block: a backend without one makes the cache engine and the
 * recorder fail when they start, naming the op and the backend, instead of calling NULL later. */
Test(backend, optional_cache_and_recorder_ops_are_checked) {
    cr_expect_null(eb_backend_missing_op(&eb_backend_cpu, EB_BACKEND_CACHE_OPS " " EB_BACKEND_RECORDER_OPS));
    eb_model *m = golden_model("tiny_nosigma.safetensors", 3);
    const eb_backend *full = m->be;
    eb_backend partial = eb_backend_cpu;
    partial.name = "partial";
    partial.rel_l1 = NULL;
    partial.feature_drift = NULL;
    m->be = &partial;
    eb_schedule s;
    cr_assert_eq(eb_schedule_create(&s, "10"), EB_OK);
    eb_cache_schedule *cs;
    cr_assert_eq(eb_cache_schedule_fora(&cs, &s, 2), EB_OK);
    eb_cache *cache = NULL;
    cr_expect_eq(eb_cache_create(&cache, m, cs, &s, 2), EB_ERUNTIME);
    cr_expect(strstr(eb_last_error(), "partial backend has no rel_l1"), "%s", eb_last_error());
    cr_expect_null(cache);

    float xT[2 * 12 * 12]; /* tiny_nosigma: (1, 2, 12, 12) */
    int32_t y = 1;
    eb_rng_fill_normal(xT, sizeof xT / sizeof xT[0], eb_rng_key(3, 0));
    eb_record_opts o = {.sched = &s, .so = {.kind = EB_SAMPLER_DDIM, .var_type = EB_VAR_FIXED_SMALL, .cfg_scale = 1.0f}};
    eb_recording r;
    cr_expect_eq(eb_record_run(m, &o, xT, &y, 1, &r, NULL), EB_ERUNTIME);
    cr_expect(strstr(eb_last_error(), "partial backend has no feature_drift"), "%s", eb_last_error());

    /* Uncached sampling needs none of them. */
    float x[sizeof xT / sizeof xT[0]];
    memcpy(x, xT, sizeof x);
    cr_expect_eq(eb_sample(m, &s, &o.so, x, &y, 1, 0), EB_OK, "%s", eb_last_error());
    m->be = full;
    eb_cache_schedule_free(cs);
    eb_schedule_free(&s);
    eb_model_free(m);
}
