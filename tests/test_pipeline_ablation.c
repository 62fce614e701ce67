/* test_pipeline_ablation.c — pipeline/ablation.h called directly (no binary):
 * the cell keys of version 0.3.0 grids byte for byte (golden keys of the
 * default sweep's cells), spec sweeps and their errors, the plan, reading a
 * curve at a speedup (exact values, no extrapolation, the paired CI carried
 * through hand-made seeds), and one cell run on the shipped model. */
#include "tests/cli_util.h"

#include "pipeline/ablation.h"

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
    eb_ablation_table_key(key, rec, &fora);
    cr_assert_str_eq(key, "54a62a3c7b553c49");
    const eb_ablation_point eb = {0, eb_method_index(eb_method_find("eb-cache")), EB_SWEEP_SPEEDUP, 1.5};
    eb_ablation_table_key(key, rec, &eb);
    cr_assert_str_eq(key, "b75c51ef752b132a");
    const eb_ablation_point ns = {0, eb_method_index(eb_method_find("noise-scaling")), EB_SWEEP_NONE, NAN};
    eb_ablation_table_key(key, rec, &ns);
    cr_assert_str_eq(key, "3852525aafa4fc95");
    char uncached[EB_ABLATION_KEY + 1];
    eb_ablation_sample_key(uncached, &s, 0, SHIPPED_SHA, 7001, "none");
    cr_assert_str_eq(uncached, "459bc64c780fd8f5");
    eb_ablation_eval_key(key, uncached, "-", s.n_real);
    cr_assert_str_eq(key, "0821cc9fef28b352");
    /* a native point has a text of its own: "table|0.3.0|REC|fora|interval=3" */
    const eb_ablation_point native = {0, fora.method, EB_SWEEP_NATIVE, 3};
    eb_ablation_table_key(key, rec, &native);
    cr_assert_str_eq(key, "99ca8fed89c24797");
    eb_ablation_key(key, "table|0.3.0|87f4d4fd0e2eadc1|fora|1.5");
    cr_assert_str_eq(key, "54a62a3c7b553c49");
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

/* Each bad sweep fails with a message naming the file, line and key. */
Test(pipeline_ablation, sweep_errors) {
    static const struct {
        const char *text, *message;
    } cases[] = {
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
    };
    static eb_ablation_spec s;
    char path[512];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_assert_eq(eb_ablation_spec_read(&s, spec_file(path, cases[i].text)), EB_EINPUT, "case %zu", i);
        cr_assert(strstr(eb_last_error(), cases[i].message), "case %zu: %s", i, eb_last_error());
    }
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
