/* test_pipeline_ablation.c — pipeline/ablation.h called directly (no binary):
 * the cell keys of version 0.3.0 grids byte for byte (golden keys of the
 * default sweep's cells), spec sweeps and their errors, the plan, reading a
 * curve at a speedup (exact values, no extrapolation, the paired CI carried
 * through hand-made seeds), and one cell run on the shipped model. */
#include "tests/cli_util.h"

#include "analyze/inception.h"
#include "pipeline/ablation.h"
#include "pipeline/decoding.h"
#include "runtime/npz.h"
#include "runtime/readfile.h"
#include "runtime/safetensors.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TestSuite(pipeline_ablation, .init = cli_workdir_make, .fini = cli_workdir_remove);

/* workdir/g.spec holding text; returns its path in buf (≥ 512 bytes). */
static const char *spec_file(char *buf, const char *text) {
    FILE *f = fopen(in_workdir(buf, "g.spec"), "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    return buf;
}

/* The shipped model's SHA-256: the default sweep's cells are keyed by it. */
#define SHIPPED_SHA "4c2c52b83408b508cfc02745076da317948f64c581f0ce63b64b75e51dbbee19"

/* Keys of cells that the 0.3.0 binary computed for data/ablation/default.spec
 * (the folders of /work/sweep/cells): a grid computed before the library
 * moved is reused only while these texts stay byte-identical. */
Test(pipeline_ablation, golden_keys_of_the_default_sweep) {
    static eb_ablation_spec s;
    cr_assert_eq(eb_ablation_spec_read(&s, "data/ablation/default.spec"), EB_OK, "%s", eb_last_error());
    char rec[EB_ABLATION_KEY + 1], key[EB_ABLATION_KEY + 1];
    eb_ablation_record_key(rec, &s, 0, SHIPPED_SHA);
    cr_assert_str_eq(rec, "87f4d4fd0e2eadc1");
    const eb_ablation_point fora = {0, eb_method_index(eb_method_find("fora")), EB_SWEEP_SPEEDUP, 1.5};
    eb_ablation_table_key(key, rec, &fora, NULL);
    cr_assert_str_eq(key, "54a62a3c7b553c49");
    const eb_ablation_point eb = {0, eb_method_index(eb_method_find("eb-cache")), EB_SWEEP_SPEEDUP, 1.5};
    eb_ablation_table_key(key, rec, &eb, NULL);
    cr_assert_str_eq(key, "b75c51ef752b132a");
    const eb_ablation_point ns = {0, eb_method_index(eb_method_find("noise-scaling")), EB_SWEEP_NONE, NAN};
    eb_ablation_table_key(key, rec, &ns, NULL);
    cr_assert_str_eq(key, "3852525aafa4fc95");
    char uncached[EB_ABLATION_KEY + 1];
    eb_ablation_sample_key(uncached, &s, 0, SHIPPED_SHA, 7001, "none");
    cr_assert_str_eq(uncached, "459bc64c780fd8f5");
    eb_ablation_eval_key(key, uncached, "-", s.n_real);
    cr_assert_str_eq(key, "0821cc9fef28b352");
    /* a native point has a text of its own: "table|0.3.0|REC|fora|interval=3" */
    const eb_ablation_point native = {0, fora.method, EB_SWEEP_NATIVE, 3};
    eb_ablation_table_key(key, rec, &native, NULL);
    cr_assert_str_eq(key, "99ca8fed89c24797");
    eb_ablation_key(key, "table|0.3.0|87f4d4fd0e2eadc1|fora|1.5");
    cr_assert_str_eq(key, "54a62a3c7b553c49");
    /* a router changes l2c's tables only, and names its file's hash */
    eb_ablation_table_key(key, rec, &fora, "abc");
    cr_assert_str_eq(key, "54a62a3c7b553c49");
    const eb_ablation_point l2c = {0, eb_method_index(eb_method_find("l2c")), EB_SWEEP_SPEEDUP, 1.5};
    char routed[EB_ABLATION_KEY + 1], other[EB_ABLATION_KEY + 1];
    eb_ablation_table_key(routed, rec, &l2c, "abc");
    eb_ablation_key(key, "table|0.3.0|87f4d4fd0e2eadc1|l2c|1.5|router=abc");
    cr_assert_str_eq(routed, key);
    eb_ablation_table_key(other, rec, &l2c, "abd");
    cr_assert_str_neq(routed, other);
}

Test(pipeline_ablation, native_sweeps_and_the_plan) {
    static eb_ablation_spec s;
    char path[512];
    spec_file(path, "name = x\nsamplers = ddpm-50 ddim-8\nmethods = none fora teacache eb-cache noise-scaling fbcache\n"
                    "speedups = 1.5 2\nsweep.fora = 2, 4 8\nsweep.teacache = 0.1 0.25\nsweep.fbcache = 0.05\nseeds = 1\n");
    cr_assert_eq(eb_ablation_spec_read(&s, path), EB_OK, "%s", eb_last_error());
    const int fora = eb_method_index(eb_method_find("fora")), tea = eb_method_index(eb_method_find("teacache"));
    cr_assert_eq(s.n_native[fora], 3);
    cr_assert_eq(s.native[fora][2], 8);
    cr_assert_eq(s.n_native[tea], 2);
    cr_assert_eq(s.native[tea][1], 0.25);
    eb_ablation_point pts[64];
    /* per sampler: none, fora ×3, teacache ×2, eb-cache ×2 (speedups), noise-scaling, fbcache ×1 */
    cr_assert_eq(eb_ablation_plan(&s, pts, 64), 2 * 10);
    cr_assert_eq(eb_ablation_plan(&s, pts, 19), -1);
    cr_assert_eq(pts[0].sweep, EB_SWEEP_NONE);
    cr_assert(isnan(pts[0].value));
    cr_assert_eq(pts[1].method, fora);
    cr_assert_eq(pts[1].sweep, EB_SWEEP_NATIVE);
    cr_assert_eq(pts[3].value, 8);
    cr_assert_eq(pts[6].sweep, EB_SWEEP_SPEEDUP);
    cr_assert_eq(pts[7].value, 2);
    cr_assert_eq(pts[8].sweep, EB_SWEEP_NONE); /* noise-scaling: its fixed interval */
    cr_assert_eq(pts[10].sampler, 1);
    char label[64];
    cr_assert_str_eq(eb_ablation_point_label(&pts[2], label, sizeof label), " at interval 4");
    cr_assert_str_eq(eb_ablation_point_label(&pts[7], label, sizeof label), " at 2×");
}

/* A spec text and (part of) the message its reading must fail with. */
typedef struct {
    const char *text, *message;
} spec_error;

static void expect_spec_errors(const spec_error *cases, size_t n) {
    static eb_ablation_spec s;
    char path[512];
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(eb_ablation_spec_read(&s, spec_file(path, cases[i].text)), EB_EINPUT, "case %zu", i);
        cr_assert(strstr(eb_last_error(), cases[i].message), "case %zu: %s", i, eb_last_error());
    }
}

/* Each bad sweep fails with a message naming the file, line and key. */
Test(pipeline_ablation, sweep_errors) {
    static const spec_error cases[] = {
        {"name = x\nsamplers = ddim-8\nmethods = fora\nsweep.foo = 1\nseeds = 0\n", "g.spec:4: sweep.foo: unknown method 'foo'"},
        {"name = x\nsamplers = ddim-8\nmethods = none\nsweep.none = 1\nseeds = 0\n", "g.spec:4: sweep.none: none has no parameter"},
        {"name = x\nsamplers = ddim-8\nmethods = fora\nsweep.noise-scaling = 2\nseeds = 0\n", "g.spec:4: sweep.noise-scaling: noise-scaling has no parameter"},
        {"name = x\nsamplers = ddim-8\nmethods = budget\nsweep.budget = 0.5\nseeds = 0\n", "g.spec:4: sweep.budget: the budget's parameter is the FLOP budget"},
        {"name = x\nsamplers = ddim-8\nmethods = fora\nsweep.fora = 2.5\nseeds = 0\n", "g.spec:4: sweep.fora: '2.5' is not an interval"},
        {"name = x\nsamplers = ddim-8\nmethods = teacache\nsweep.teacache = 0\nseeds = 0\n", "g.spec:4: sweep.teacache: '0' is not a threshold above 0"},
        {"name = x\nsamplers = ddim-8\nmethods = eb-cache\nsweep.eb-cache = -1\nseeds = 0\n", "g.spec:4: sweep.eb-cache: '-1' is not a δ scale above 0"},
        {"name = x\nsamplers = ddim-8\nmethods = fora\nsweep.fora = 2 2\nseeds = 0\n", "g.spec:4: sweep.fora: '2' is listed twice"},
        {"name = x\nsamplers = ddim-8\nmethods = fora\nsweep.fora = 2\nsweep.fora = 3\nseeds = 0\n", "g.spec:5: 'sweep.fora' is set twice"},
        {"name = x\nsamplers = ddim-8\nmethods = none\nseeds = 0\nsweep.fora = 2\n", "g.spec:5: sweep.fora: fora is not in 'methods'"},
        {"name = x\nsamplers = ddpm-50 ddim-8\nmethods = fora\nsweep.fora = 4 16\nseeds = 0\n", "g.spec:4: sweep.fora: interval 16 is above the 8 steps of ddim-8"},
        {"name = x\nsamplers = ddim-8\nmethods = none\nmethods = fbcache\nseeds = 0\n", "g.spec:4: 'methods' is set twice"},
        {"name = x\nsamplers = ddim-8\nmethods = none fbcache\nseeds = 0\n", "g.spec:3: methods: fbcache takes no speed target"},
        {"name = x\nsamplers = ddim-8\nmethods = fora teacache\nsweep.fora = 2\nseeds = 0\n", "'speedups' is required by the cached methods (or 'sweep.teacache')"},
        {"name = x\nsamplers = ddim-8\nmethods = none l2c\nspeedups = 2\nseeds = 0\n", "g.spec:3: methods: l2c needs 'router = SCORES.h5'"},
        {"name = x\nsamplers = ddim-8\nmethods = fora\nspeedups = 2\nrouter = r.h5\nseeds = 0\n", "g.spec:5: router: only with l2c in 'methods'"},
        {"name = x\nsamplers = ddim-8\nmethods = l2c\nspeedups = 2\nrouter =\nseeds = 0\n", "g.spec:5: router: no value"},
    };
    expect_spec_errors(cases, sizeof cases / sizeof cases[0]);
}

/* A known curve y = 10 + 4·log2(x) (linear in log speedup) at 1.5×, 2×, 4×,
 * given out of order: read exactly between and at its points, refused outside. */
Test(pipeline_ablation, interpolation_of_a_known_curve) {
    const double xs[] = {4, 1.5, 2};
    double y4[2] = {18, 28}, y15[2] = {10 + 4 * log2(1.5), 20 + 4 * log2(1.5)}, y2[2] = {14, 24};
    const double *y[] = {y4, y15, y2};
    double v[2];
    int lo, hi;
    cr_assert_eq(eb_ablation_interpolate(sqrt(8), xs, y, 3, 2, v, &lo, &hi), 1);
    cr_assert_eq(lo, 2);
    cr_assert_eq(hi, 0);
    cr_assert_float_eq(v[0], 16.0, 1e-12); /* 10 + 4·1.5 */
    cr_assert_float_eq(v[1], 26.0, 1e-12);
    cr_assert_eq(eb_ablation_interpolate(1.75, xs, y, 3, 2, v, &lo, &hi), 1);
    cr_assert_float_eq(v[0], 10 + 4 * log2(1.75), 1e-12);
    cr_assert_eq(eb_ablation_interpolate(2, xs, y, 3, 2, v, &lo, &hi), 1); /* at a point: its value */
    cr_assert_eq(lo, 2);
    cr_assert_eq(v[1], 24);
    cr_assert_eq(eb_ablation_interpolate(1.5, xs, y, 3, 2, v, NULL, NULL), 1);
    cr_assert_eq(v[0], y15[0]);
    cr_assert_eq(eb_ablation_interpolate(1.49, xs, y, 3, 2, v, NULL, NULL), 0, "below the curve: no extrapolation");
    cr_assert_eq(eb_ablation_interpolate(4.01, xs, y, 3, 2, v, NULL, NULL), 0, "above the curve");
    cr_assert_eq(eb_ablation_interpolate(2, xs, y, 0, 2, v, NULL, NULL), 0, "no points");
    /* a non-finite speedup (an untimed point) is no neighbour */
    const double holes[] = {NAN, 1.5, 2};
    cr_assert_eq(eb_ablation_interpolate(3, holes, y, 3, 2, v, NULL, NULL), 0);
}

/* The paired CI carried through: three seeds, EB-Cache's FD per seed against
 * a baseline read halfway (in log speedup) between its points at 1.5× and
 * 3×; the difference per seed, then Student's t over seeds by hand. */
Test(pipeline_ablation, paired_ci_through_the_interpolation) {
    const double xs[] = {1.5, 3};
    double at15[3] = {10, 12, 11}, at3[3] = {20, 18, 25};
    const double *y[] = {at15, at3};
    double base[3];
    cr_assert_eq(eb_ablation_interpolate(sqrt(4.5), xs, y, 2, 3, base, NULL, NULL), 1);
    const double want_base[3] = {15, 15, 18}, eb[3] = {14, 13.5, 17.5};
    double d[3];
    for (int k = 0; k < 3; k++) {
        cr_assert_float_eq(base[k], want_base[k], 1e-12, "seed %d", k);
        d[k] = eb[k] - base[k]; /* -1, -1.5, -0.5 */
    }
    eb_ablation_ci c = eb_ablation_ci_of(d, 3);
    cr_assert_eq(c.n, 3);
    cr_assert_float_eq(c.mean, -1.0, 1e-12);
    /* s = 0.5, t_{0.975, 2} = 4.302652729911275: half = 4.3027 · 0.5 / √3 */
    cr_assert_float_eq(c.half, 4.302652729911275 * 0.5 / sqrt(3.0), 1e-9);
    double with_hole[4] = {d[0], NAN, d[1], d[2]};
    eb_ablation_ci h = eb_ablation_ci_of(with_hole, 4); /* a seed missing: left out */
    cr_assert_eq(h.n, 3);
    cr_assert_float_eq(h.half, c.half, 1e-15);
}

static int steps_seen;
static void count_steps(void *ctx, const eb_ablation_event *e) {
    if (e->kind == EB_ABLATION_STEP) steps_seen++;
}

/* One cell through the library on the shipped model, tiny: eb-cache at 1.5×
 * on a 6-step DDIM sampler (the fits need 6) (recording, fit, search with the replay runner,
 * the uncached and cached samples, both evaluated); run again, nothing is
 * computed and the numbers are the same. */
Test(pipeline_ablation, one_cell_on_the_shipped_model, .timeout = 300) {
    static eb_ablation_spec s;
    char path[512], cells[512], results[512];
    spec_file(path, "name = one\nmodel = data/dit_fmnist.safetensors\nsamplers = ddim-6\nmethods = none eb-cache\n"
                    "speedups = 1.5\nseeds = 3\nn = 6\ncalibration = 2\nreal = 40\nbatch = 8\n");
    cr_assert_eq(eb_ablation_spec_read(&s, path), EB_OK, "%s", eb_last_error());
    eb_ablation_params p;
    eb_ablation_params_defaults(&p);
    p.model = s.model, p.classifier = "data/classifier.safetensors", p.threads = 2;
    p.cells = in_workdir(cells, "cells"), p.results = in_workdir(results, "res"), p.on_event = count_steps;
    eb_ablation *a;
    cr_assert_eq(eb_ablation_open(&a, &s, &p), EB_OK, "%s", eb_last_error());
    const eb_ablation_point pt = {0, eb_method_index(eb_method_find("eb-cache")), EB_SWEEP_SPEEDUP, 1.5};
    eb_ablation_row row, again;
    steps_seen = 0;
    cr_assert_eq(eb_ablation_run_cell(a, &pt, 3, &row), EB_OK, "%s", eb_last_error());
    /* the recording (and fit), the uncached samples (its reference), the search, the samples, their evaluation */
    cr_assert_eq(steps_seen, 5);
    cr_assert_eq(row.point, 1);
    cr_assert_eq(row.seed, 3);
    cr_assert_eq(row.reached, 1);
    cr_assert_geq(row.flop_speedup, 1.5, "the search met its target: %g", row.flop_speedup);
    cr_assert(row.flop_speedup < 4, "%g", row.flop_speedup);
    cr_assert(isfinite(row.fd) && row.fd > 0 && isfinite(row.pixel_fd) && row.pixel_fd > 0, "fd %g pixel %g", row.fd, row.pixel_fd);
    cr_assert_float_eq(row.fd, row.fd_mean + row.fd_cov, 1e-9 * row.fd);
    cr_assert(isfinite(row.psnr) && isfinite(row.ssim), "against the uncached samples");
    cr_assert(row.accuracy >= 0 && row.accuracy <= 1);
    cr_assert(row.wall > 0);
    /* the cells are where the keys say */
    char rec[EB_ABLATION_KEY + 1], sha[65], dir[1024];
    FILE *f = popen("sha256sum data/dit_fmnist.safetensors", "r");
    cr_assert(f && fscanf(f, "%64s", sha) == 1);
    pclose(f);
    eb_ablation_record_key(rec, &s, 0, sha);
    snprintf(dir, sizeof dir, "%s/rec-%s/fit.h5", cells, rec);
    cr_assert_eq(access(dir, R_OK), 0, "%s", dir);
    steps_seen = 0;
    cr_assert_eq(eb_ablation_run_cell(a, &pt, 3, &again), EB_OK, "%s", eb_last_error());
    cr_assert_eq(steps_seen, 0, "a finished cell is reused");
    cr_assert_eq(again.fd, row.fd);
    cr_assert_eq(again.flop_speedup, row.flop_speedup);
    const eb_ablation_point other = {0, pt.method, EB_SWEEP_SPEEDUP, 3};
    cr_assert_eq(eb_ablation_run_cell(a, &other, 3, &again), EB_EINPUT, "a point the spec does not plan");
    eb_ablation_close(a);
}

/* An l2c cell searches the spec's router (the shipped model's, DDPM-50) to its target; its
 * table's cell is keyed by the router's hash; a router of another sampler fails naming its file. */
Test(pipeline_ablation, l2c_cells_read_the_router, .timeout = 300) {
    static eb_ablation_spec s;
    char path[512], cells[512], results[512];
    spec_file(path, "name = routed\nmodel = data/dit_fmnist.safetensors\nsamplers = ddpm-50 ddim-6\nmethods = l2c\n"
                    "router = data/l2c/dit_fmnist_ddpm50.h5\nspeedups = 1.5\nseeds = 3\nn = 4\ncalibration = 2\n"
                    "real = 40\nbatch = 8\n");
    cr_assert_eq(eb_ablation_spec_read(&s, path), EB_OK, "%s", eb_last_error());
    eb_ablation_params p;
    eb_ablation_params_defaults(&p);
    p.model = s.model, p.classifier = "data/classifier.safetensors", p.threads = 2;
    p.cells = in_workdir(cells, "cells"), p.results = in_workdir(results, "res");
    eb_ablation *a;
    cr_assert_eq(eb_ablation_open(&a, &s, &p), EB_OK, "%s", eb_last_error());
    const eb_ablation_point pt = {0, eb_method_index(eb_method_find("l2c")), EB_SWEEP_SPEEDUP, 1.5};
    eb_ablation_row row;
    cr_assert_eq(eb_ablation_run_cell(a, &pt, 3, &row), EB_OK, "%s", eb_last_error());
    cr_assert_eq(row.reached, 1);
    cr_assert(row.flop_speedup >= 1.5 && row.flop_speedup < 2.5, "the search met its target: %g", row.flop_speedup);
    cr_assert(isfinite(row.fd) && row.fd > 0);
    char rec[EB_ABLATION_KEY + 1], key[EB_ABLATION_KEY + 1], sha[65], model_sha[65], dir[1024];
    FILE *f = popen("sha256sum data/l2c/dit_fmnist_ddpm50.h5 data/dit_fmnist.safetensors", "r");
    cr_assert(f && fscanf(f, "%64s %*s %64s", sha, model_sha) == 2);
    pclose(f);
    eb_ablation_record_key(rec, &s, 0, model_sha);
    eb_ablation_table_key(key, rec, &pt, sha);
    snprintf(dir, sizeof dir, "%s/table-%s/table.txt", cells, key);
    cr_assert_eq(access(dir, R_OK), 0, "%s", dir);
    const eb_ablation_point ddim = {1, pt.method, EB_SWEEP_SPEEDUP, 1.5};
    cr_assert_eq(eb_ablation_run_cell(a, &ddim, 3, &row), EB_EINPUT);
    cr_assert(strstr(eb_last_error(), "dit_fmnist_ddpm50.h5"), "%s", eb_last_error());
    eb_ablation_close(a);
}

/* ------------------------------------------------------------------------ */
/* The ImageNet judge                                                        */

#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SHA_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define SHA_C "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

/* The ImageNet spec's keys: texts of their own, naming the decoder, the Inception weights and the
 * reference batch by SHA-256 (here stand-ins), and a device (and precision) off the CPU after the
 * run keys' 0.3.0 texts. The hex digits are Python hashlib's of the texts in the comments. */
Test(pipeline_ablation, imagenet_keys) {
    static eb_ablation_spec s;
    cr_assert_eq(eb_ablation_spec_read(&s, "data/ablation/imagenet-dit-xl2.spec"), EB_OK, "%s", eb_last_error());
    cr_assert_eq(s.judge, EB_JUDGE_IMAGENET);
    cr_assert_str_eq(s.device, "cuda");
    cr_assert_str_eq(s.precision, "tf32");
    cr_assert(s.n == 50000 && s.cfg == 1.5 && s.samplers[0].steps == 50 && s.n_methods == 3 && s.decode_batch == 8);
    char key[EB_ABLATION_KEY + 1], sample[EB_ABLATION_KEY + 1], decode[EB_ABLATION_KEY + 1];
    eb_ablation_record_key(key, &s, 0, SHIPPED_SHA); /* "record|0.3.0|SHIPPED|ddpm|50|1.5|32|1000|32|cuda|tf32" */
    cr_assert_str_eq(key, "868584bc6a393927");
    eb_ablation_sample_key(sample, &s, 0, SHIPPED_SHA, 0, "none"); /* "sample|…|50000|0|32|none|cuda|tf32" */
    cr_assert_str_eq(sample, "c05f65bc9927c2b6");
    /* "decode|0.3.0|c05f65bc9927c2b6|AAAA…|0.18215000000000001|8|cuda|tf32" */
    eb_ablation_decode_key(decode, &s, sample, SHA_A);
    cr_assert_str_eq(decode, "b75d2976831806bb");
    eb_ablation_imagenet_eval_key(key, &s, decode, SHA_B, SHA_C); /* "eval-imagenet|0.3.0|b75d29…|BBBB…|CCCC…|cuda|tf32" */
    cr_assert_str_eq(key, "94f9f2e471c4db9d");
    eb_ablation_imagenet_real_key(key, &s, SHA_B, SHA_C); /* "real-imagenet|0.3.0|BBBB…|CCCC…|cuda|tf32" */
    cr_assert_str_eq(key, "26fc99683db85bf8");
    eb_ablation_key(key, "real-imagenet|0.3.0|" SHA_B "|" SHA_C "|cuda|tf32");
    cr_assert_str_eq(key, "26fc99683db85bf8");
    cr_assert_str_eq(eb_ablation_judge_name(s.judge), "imagenet");
    eb_ablation_judge j;
    cr_assert_eq(eb_ablation_judge_parse(&j, "fmnist"), EB_OK);
    cr_assert_eq(j, EB_JUDGE_FMNIST);
    cr_assert_eq(eb_ablation_judge_parse(&j, "cifar"), EB_EINPUT);
}

/* The SHA-256 of `path`'s bytes, by sha256sum. */
static void sha_of(const char *path, char sha[65]) {
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "sha256sum '%s'", path);
    FILE *f = popen(cmd, "r");
    cr_assert(f && fscanf(f, "%64s", sha) == 1, "%s", cmd);
    pclose(f);
}

/* A decoder's name: a file's SHA-256; a folder's, of its "NAME=SHA" lines (sha256sum of the text). */
Test(pipeline_ablation, the_decoders_sha) {
    char sha[65], want[65], config[65], weights[65], text[512], path[512];
    cr_assert_eq(eb_ablation_vae_sha("tests/golden/vae_small/diffusers/diffusion_pytorch_model.safetensors", sha), EB_OK);
    sha_of("tests/golden/vae_small/diffusers/diffusion_pytorch_model.safetensors", want);
    cr_expect_str_eq(sha, want);
    sha_of("tests/golden/vae_small/diffusers/config.json", config);
    sha_of("tests/golden/vae_small/diffusers/diffusion_pytorch_model.safetensors", weights);
    snprintf(text, sizeof text, "config.json=%s\ndiffusion_pytorch_model.safetensors=%s\n", config, weights);
    FILE *f = fopen(in_workdir(path, "lines.txt"), "w");
    fputs(text, f);
    fclose(f);
    sha_of(path, want);
    cr_assert_eq(eb_ablation_vae_sha("tests/golden/vae_small/diffusers", sha), EB_OK, "%s", eb_last_error());
    cr_expect_str_eq(sha, want);
    cr_assert_eq(eb_ablation_vae_sha("tests/golden/vae_small/legacy", sha), EB_OK, "a pipeline folder: %s", eb_last_error());
    cr_expect_str_neq(sha, want);
    cr_expect_eq(eb_ablation_vae_sha("tests/golden/models", sha), EB_EINPUT, "a folder without weights");
    cr_expect(strstr(eb_last_error(), "tests/golden/models: a folder without"), "%s", eb_last_error());
}

/* The judge's keys: each error names the file, line and key. */
Test(pipeline_ablation, imagenet_spec_errors) {
    static const spec_error cases[] = {
        {"name = x\nsamplers = ddim-8\nmethods = none\nseeds = 0\njudge = cifar\n", "g.spec:5: judge: 'cifar' is not a judge"},
        {"name = x\nsamplers = ddim-8\nmethods = none\nseeds = 0\nvae = v\n", "g.spec:5: vae: only with judge = imagenet"},
        {"name = x\nsamplers = ddim-8\nmethods = none\nseeds = 0\ndecode_batch = 2\n", "g.spec:5: decode_batch: only with judge = imagenet"},
        {"name = x\nsamplers = ddim-8\nmethods = none\nseeds = 0\njudge = imagenet\nvae = v\ninception = i\n",
         "judge = imagenet: 'reference' is required"},
        {"name = x\nsamplers = ddim-8\nmethods = none\nseeds = 0\njudge = imagenet\nvae = v\ninception = i\n"
         "reference = r\nreal = 100\n", "g.spec:9: real: the ImageNet judge compares with the whole reference batch"},
        {"name = x\nsamplers = ddim-8\nmethods = none\nseeds = 0\njudge = imagenet\nscale_factor = 0\n",
         "g.spec:6: scale_factor: '0' is not a number above 0"},
        {"name = x\nsamplers = ddim-8\nmethods = none\nseeds = 0\ndevice = tpu\n", "g.spec:5: device: 'tpu' is not cpu or cuda"},
        {"name = x\nsamplers = ddim-8\nmethods = none\nseeds = 0\nprecision = fp16\n", "g.spec:5: precision: 'fp16' is not fp32"},
        {"name = x\nsamplers = ddim-8\nmethods = none\nseeds = 0\nprecision = bf16\n", "g.spec:5: precision: bf16 needs device = cuda"},
        {"name = x\nsamplers = ddim-8\nmethods = none\nseeds = 0\njudge = imagenet\njudge = fmnist\n", "g.spec:6: 'judge' is set twice"},
    };
    expect_spec_errors(cases, sizeof cases / sizeof cases[0]);
}

/* workdir/inception.safetensors: the FID Inception network (with fc) with random weights (He-scaled
 * normal convolutions, unit BatchNorm scales and variances, small shifts), as tests/test_inception.c's
 * networks; workdir/ref.npz: a reference batch of 12 random 16×16 RGB images. */
static void write_judge_files(char *inception, char *reference) {
    eb_inception *m;
    cr_assert_eq(eb_inception_create_on(&m, 1, NULL), EB_OK, "%s", eb_last_error());
    const int n = eb_inception_tensor_count(m);
    float *host = malloc(eb_inception_tensor_floats(m) * sizeof *host);
    eb_st_entry *e = calloc((size_t)n, sizeof *e);
    for (int i = 0; i < n; i++) {
        const eb_inception_tensor *t = eb_inception_tensor_at(m, i);
        float *v = host + t->offset;
        const char *leaf = strrchr(t->name, '.') + 1;
        eb_rng_fill_normal(v, t->numel, eb_rng_key(77, (uint64_t)i));
        const float amp = (float)sqrt(2.0 / (double)(t->numel / t->shape[0]));
        for (size_t k = 0; k < t->numel; k++)
            v[k] = t->rank > 1 ? v[k] * amp : !strcmp(leaf, "weight") || !strcmp(leaf, "running_var") ? 1.0f : 0.1f * v[k];
        e[i] = (eb_st_entry){.name = t->name, .dtype = EB_DT_F32, .rank = t->rank, .data = v};
        memcpy(e[i].shape, t->shape, sizeof t->shape);
    }
    cr_assert_eq(eb_st_write(in_workdir(inception, "inception.safetensors"), e, n, NULL, 0), EB_OK, "%s", eb_last_error());
    free(e), free(host);
    eb_inception_free(m);
    uint8_t images[12 * 16 * 16 * 3];
    uint64_t z = 12345;
    for (size_t i = 0; i < sizeof images; i++) z = z * 6364136223846793005ull + 1442695040888963407ull, images[i] = z >> 56;
    eb_npz_writer *w;
    cr_assert_eq(eb_npz_create(&w, in_workdir(reference, "ref.npz")), EB_OK);
    cr_assert_eq(eb_npz_write_array(w, "arr_0", EB_NPY_U8, 4, (int64_t[]){12, 16, 16, 3}, images), EB_OK);
    cr_assert_eq(eb_npz_close(w), EB_OK, "%s", eb_last_error());
}

/* A file's bytes (malloc'd, NUL-terminated; free() them), *size of them. */
static char *file_bytes(const char *path, size_t *size) {
    char *data;
    cr_assert_eq(eb_read_file(path, (size_t)1 << 24, &data, size), EB_OK, "%s", eb_last_error());
    return data;
}

/* The ImageNet cell path on tiny files: the tiny random DiT (4×8×8 latents), the small random VAE
 * (×2: 16×16 images), a random Inception and a random reference batch. The uncached cell and a FORA
 * cell (interval 2) of one seed: recording and fit, search, samples, their decoding into the sample
 * cell's images-KEY.npz (byte for byte what eb_decode_to_file writes from the cell's samples), and
 * the evaluation through eb_evaluate(inception = …): FID, sFID, IS, precision and recall finite
 * (on 4 samples against 12 random references: numbers that test the plumbing, not a model), and a
 * rerun computes nothing. */
Test(pipeline_ablation, imagenet_cells_on_tiny_models, .timeout = 600) {
    static eb_ablation_spec s;
    char path[512], cells[512], results[512], inception[512], reference[512], text[2048];
    write_judge_files(inception, reference);
    snprintf(text, sizeof text,
             "name = inet\njudge = imagenet\nmodel = tests/golden/models/tiny_sigma.safetensors\n"
             "vae = tests/golden/vae_small/ldm\ninception = %s\nreference = %s\nsamplers = ddim-6\n"
             "methods = none fora\nsweep.fora = 2\nseeds = 3\nn = 4\nbatch = 2\ncalibration = 2\ndecode_batch = 2\n",
             inception, reference);
    cr_assert_eq(eb_ablation_spec_read(&s, spec_file(path, text)), EB_OK, "%s", eb_last_error());
    eb_ablation_params p;
    eb_ablation_params_defaults(&p);
    p.model = s.model, p.threads = 2, p.classifier = NULL; /* the ImageNet judge needs none */
    p.cells = in_workdir(cells, "cells"), p.results = in_workdir(results, "res"), p.on_event = count_steps;
    eb_ablation *a;
    cr_assert_eq(eb_ablation_open(&a, &s, &p), EB_OK, "%s", eb_last_error());
    const eb_ablation_point none = {0, eb_method_index(eb_method_find("none")), EB_SWEEP_NONE, NAN};
    const eb_ablation_point fora = {0, eb_method_index(eb_method_find("fora")), EB_SWEEP_NATIVE, 2};
    char model_sha[65], vae_sha[65], skey[EB_ABLATION_KEY + 1], dkey[EB_ABLATION_KEY + 1], npz[1024], direct[512];
    sha_of(s.model, model_sha);
    cr_assert_eq(eb_ablation_vae_sha(s.vae, vae_sha), EB_OK);
    eb_ablation_sample_key(skey, &s, 0, model_sha, 3, "none");
    eb_ablation_decode_key(dkey, &s, skey, vae_sha);
    snprintf(npz, sizeof npz, "%s/sample-%s/images-%s.npz", cells, skey, dkey);
    eb_ablation_row row;
    steps_seen = 0;
    eb_status st = eb_ablation_run_cell(a, &none, 3, &row);
    /* the recording (and fit), the uncached samples, their decoding, their evaluation */
    cr_expect_eq(steps_seen, 4);
    cr_assert_eq(access(npz, R_OK), 0, "the decoded images are in the sample cell: %s", npz);
    /* the cell's images are the library call's on the cell's samples */
    eb_decode_params dp;
    eb_decode_params_defaults(&dp);
    snprintf(text, sizeof text, "%s/sample-%s/samples.h5", cells, skey);
    dp.vae = s.vae, dp.samples = text, dp.output = in_workdir(direct, "direct.npz"), dp.batch = 2, dp.threads = 2;
    cr_assert_eq(eb_decode_to_file(&dp, NULL), EB_OK, "%s", eb_last_error());
    size_t n_got, n_want;
    char *got = file_bytes(npz, &n_got), *want = file_bytes(direct, &n_want);
    cr_expect(n_got == n_want && n_got > 4 * 16 * 16 * 3 && !memcmp(got, want, n_got), "%zu and %zu bytes", n_got, n_want);
    free(got), free(want);
    cr_assert_eq(st, EB_OK, "%s", eb_last_error());
    cr_log_info("uncached cell: FID %g, sFID %g, IS %g, precision %g, recall %g", row.fd, row.sfid, row.inception_score,
                row.precision, row.recall);
    cr_expect(isfinite(row.fd) && isfinite(row.sfid) && isfinite(row.inception_score) && isfinite(row.precision) &&
              isfinite(row.recall), "FID %g sFID %g IS %g P %g R %g", row.fd, row.sfid, row.inception_score,
              row.precision, row.recall);
    cr_expect(isnan(row.pixel_fd) && isnan(row.psnr), "the Fashion-MNIST judges do not run");
    steps_seen = 0;
    cr_assert_eq(eb_ablation_run_cell(a, &fora, 3, &row), EB_OK, "%s", eb_last_error());
    cr_expect_eq(steps_seen, 4, "the search, the FORA samples, their decoding and evaluation");
    cr_expect(row.flop_speedup > 1.2 && isfinite(row.fd) && isfinite(row.sfid), "FORA at interval 2: %gx, FID %g",
              row.flop_speedup, row.fd);
    cr_log_info("FORA cell (%.2fx FLOP): FID %g, sFID %g, IS %g", row.flop_speedup, row.fd, row.sfid, row.inception_score);
    eb_ablation_row again;
    steps_seen = 0;
    cr_assert_eq(eb_ablation_run_cell(a, &fora, 3, &again), EB_OK, "%s", eb_last_error());
    cr_expect_eq(steps_seen, 0, "a finished cell is reused");
    cr_expect_eq(again.fd, row.fd);
    cr_expect_eq(again.sfid, row.sfid);
    eb_ablation_close(a);
}

/* The ImageNet report from hand-made rows (3 seeds, uncached and FORA at interval 2, FID +1 and
 * sFID +2 on every seed): the CSV's columns, the curve table's, the paired ΔFID and the claim. */
Test(pipeline_ablation, imagenet_report_columns) {
    static eb_ablation_spec s;
    char path[600], results[512], csv[600], md[600];
    spec_file(path, "name = inet\njudge = imagenet\nvae = v\ninception = i\nreference = r\nsamplers = ddpm-50\n"
                    "methods = none fora\nsweep.fora = 2\nseeds = 1 2 3\nn = 8\n");
    cr_assert_eq(eb_ablation_spec_read(&s, path), EB_OK, "%s", eb_last_error());
    eb_ablation_point pts[4];
    cr_assert_eq(eb_ablation_plan(&s, pts, 4), 2);
    eb_ablation_curve_point points[2] = {{.at = pts[0], .reached = 1, .flop_speedup = 1, .wall = 1, .cpu = 1},
                                         {.at = pts[1], .reached = 1, .table = "t", .params = "interval=2",
                                          .flop_speedup = 2, .wall = 1.8, .cpu = 1.9, .wall_lo = 1.7, .wall_hi = 1.9}};
    eb_ablation_row rows[6];
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < 3; j++)
            rows[3 * k + j] = (eb_ablation_row){.point = k, .seed = j + 1, .reached = 1, .flop_speedup = 1 + k,
                                                .fd = 5 + j + k, .fd_mean = 1, .fd_cov = 4 + j + k, .sfid = 9 + j + 2 * k,
                                                .inception_score = 100 - j, .precision = 0.7, .recall = 0.5,
                                                .pixel_fd = NAN, .psnr = NAN, .accuracy = NAN};
    eb_ablation_results r = {.points = points, .n_points = 2, .rows = rows, .n_rows = 6, .cores = 2};
    eb_ablation_params p;
    eb_ablation_params_defaults(&p);
    p.results = in_workdir(results, "res"), p.scripts = NULL;
    cr_assert_eq(eb_ablation_write_report(&s, &r, &p), EB_OK, "%s", eb_last_error());
    size_t size;
    snprintf(csv, sizeof csv, "%s/inet.csv", results);
    char *text = file_bytes(csv, &size);
    static const char head[] = "sampler,method,target,seed,n,reached,flop_speedup,wall_s,measured_speedup,cpu_speedup,"
                               "load,fid,fid_mean_term,fid_cov_term,sfid,inception_score,precision,recall,sweep,value,"
                               "params\n";
    cr_expect(!strncmp(text, head, strlen(head)), "%.200s", text);
    cr_expect(strstr(text, "\nddpm-50,fora,nan,2,8,1,2,0,0,0,0,7,1,6,12,99,0.7,0.5,interval,2,\"interval=2\"\n"),
              "%s", text);
    free(text);
    snprintf(md, sizeof md, "%s/inet.md", results);
    text = file_bytes(md, &size);
    cr_expect(strstr(text, "| FID (+ its terms) | ΔFID | sFID | ΔsFID | IS | ΔIS | precision | recall |\n"
                                   "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"), "%s", text);
    cr_expect(!strstr(text, "PSNR") && !strstr(text, "pixel FD"), "no Fashion-MNIST judge");
    cr_expect(strstr(text, "| fora | – | interval=2 | 2.00× | 1.80× (1.90×) | 7 ± 2.5 (1 + 6) | +1 | 12 ± 2.5 | +2 |"),
              "%s", text);
    snprintf(path, sizeof path, "%s/inet_pareto_ddpm-50.dat", results);
    cr_expect_eq(access(path, R_OK), 0, "the Pareto data");
    free(text);
}
