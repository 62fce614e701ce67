/* test_methods_golden.c — MagCache, SmoothCache's lookahead and Learning-to-Cache
 * against reference/methods_ref.py (tests/golden/methods.h5, l2c_scores.h5): the
 * recorder's magnitude ratios and lagged drift, each generator's table from the
 * reference's calibration, the samples of the MagCache and L2C runs (CPU, fp32,
 * tolerance 1e-5 relative), and each method as a search target. */
#include "analyze/record.h"
#include "runtime/h5io.h"
#include "runtime/schedule.h"
#include "search/search.h"
#include "tests/cli_util.h"
#include "tests/golden.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define GOLDEN "methods.h5"
#define TOL 1e-5

TestSuite(methods, .init = cli_workdir_make, .fini = cli_workdir_remove);

static double attr_f64(const char *group, const char *name) {
    eb_h5 *f;
    double v = NAN;
    cr_assert_eq(eb_h5_open(&f, GOLDEN_DIR GOLDEN), EB_OK, "%s", eb_last_error());
    eb_status st = eb_h5_attr_f64(f, group, name, &v);
    eb_h5_close(f);
    cr_assert_eq(st, EB_OK, "%s", eb_last_error());
    return v;
}

static eb_cache_schedule *golden_table(const char *group) {
    eb_h5 *f;
    char *text = NULL;
    cr_assert_eq(eb_h5_open(&f, GOLDEN_DIR GOLDEN), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_h5_attr_str(f, group, "table", &text), EB_OK, "%s", eb_last_error());
    eb_h5_close(f);
    eb_cache_schedule *cs;
    cr_assert_eq(eb_cache_schedule_parse(&cs, text, group), EB_OK, "%s", eb_last_error());
    free(text);
    return cs;
}

/* The golden file read as the recording the generators take (its root holds
 * the calibration under the recording's dataset names). */
static void golden_rec(eb_rec_data *r) {
    memset(r, 0, sizeof *r);
    snprintf(r->path, sizeof r->path, GOLDEN_DIR GOLDEN);
    int64_t d[2];
    r->drift_attn = golden_f64(GOLDEN, "drift/attn", 2, d);
    r->drift_mlp = golden_f64(GOLDEN, "drift/mlp", 2, NULL);
    r->S = (int)d[0], r->L = (int)d[1], r->N = 2;
    double *t = golden_f64(GOLDEN, "steps/t", 1, NULL);
    r->t = malloc(r->S * sizeof *r->t);
    for (int k = 0; k < r->S; k++) r->t[k] = (int32_t)t[k];
    free(t);
    r->drift_block0 = calloc(r->S, sizeof(double)), r->drift_output = calloc(r->S, sizeof(double));
    r->eps_norm = calloc((size_t)r->S * r->N, sizeof(double));
}

/* Every action of two tables for L blocks agrees. */
static void expect_same_actions(const eb_cache_schedule *got, const eb_cache_schedule *want, int L, const eb_schedule *s,
                                const char *what) {
    eb_cache_plan a, b;
    cr_assert_eq(eb_cache_plan_build(&a, got, L, s), EB_OK, "%s: %s", what, eb_last_error());
    cr_assert_eq(eb_cache_plan_build(&b, want, L, s), EB_OK, "%s: %s", what, eb_last_error());
    for (int k = 0; k < a.S; k++)
        for (int i = 0; i < 2 * L; i++)
            cr_expect_eq(a.act[k * 2 * L + i].kind, b.act[k * 2 * L + i].kind, "%s: step %d block %d %s", what, k, i / 2,
                         i % 2 ? "mlp" : "attn");
    eb_cache_plan_free(&a), eb_cache_plan_free(&b);
}

/* tiny_sigma's configuration, for the tests that count FLOPs without running it. */
static eb_config tiny_sigma_config(void) {
    return (eb_config){.input_size = 8, .patch_size = 2, .in_channels = 4, .hidden_size = 64, .depth = 2,
                       .num_heads = 4, .num_classes = 10, .learn_sigma = 1};
}

/* The golden model, the sampler of `spacing` and default search options. */
static eb_model *setup(eb_schedule *s, const char *spacing, eb_search_opts *o) {
    cr_assert_eq(eb_schedule_create(s, spacing), EB_OK);
    eb_search_defaults(o);
    return golden_model("tiny_sigma.safetensors", 0);
}

static eb_sampler_opts sampler(const eb_model *m, eb_sampler_kind kind, uint64_t seed) {
    return (eb_sampler_opts){.kind = kind, .var_type = EB_VAR_LEARNED_RANGE, .cfg_scale = 1.5f,
                             .guide_channels = eb_default_guide_channels(eb_model_config(m)), .seed = seed};
}

/* Samples of `cs` from the golden x_T (group/xT or calib/xT) against group/samples. */
static void expect_samples(eb_model *m, const eb_schedule *s, const eb_sampler_opts *so, const eb_cache_schedule *cs,
                           const char *inputs, const char *group) {
    char name[64];
    int64_t d[4];
    snprintf(name, sizeof name, "%s/xT", inputs);
    float *x = golden_f32(GOLDEN, name, 4, d);
    snprintf(name, sizeof name, "%s/y", inputs);
    int32_t *y = golden_i32(GOLDEN, name, 1, NULL);
    snprintf(name, sizeof name, "%s/samples", group);
    float *want = golden_f32(GOLDEN, name, 4, NULL);
    const int N = (int)d[0];
    eb_cache_stats stats = {0};
    cr_assert_eq(eb_sample_cached(m, s, so, cs, x, y, N, 0, &stats), EB_OK, "%s", eb_last_error());
    double err = max_rel_err(x, want, (size_t)N * d[1] * d[2] * d[3]);
    cr_expect_leq(err, TOL, "%s samples: rel err %g", group, err);
    cr_expect_lt(stats.macs, stats.macs_uncached, "%s: the table saves work", group);
    free(x), free(y), free(want);
}

/* The recorder's /magcache/ratio and /drift/{attn,mlp}_lag on the reference's
 * calibration run: same NaN pattern, 1e-5 relative elsewhere. */
Test(methods, recorder_matches_the_reference) {
    eb_model *m = golden_model("tiny_sigma.safetensors", 0);
    eb_schedule s;
    cr_assert_eq(eb_schedule_create(&s, "10"), EB_OK);
    int64_t d[4];
    float *xT = golden_f32(GOLDEN, "calib/xT", 4, d);
    int32_t *y = golden_i32(GOLDEN, "calib/y", 1, NULL);
    eb_record_opts o = {.sched = &s, .so = sampler(m, EB_SAMPLER_DDPM, (uint64_t)attr_f64("calib", "seed")),
                        .lags = (int)attr_f64("calib", "lags")};
    eb_recording rec;
    cr_assert_eq(eb_record_run(m, &o, xT, y, (int)d[0], &rec, NULL), EB_OK, "%s", eb_last_error());
    cr_assert_eq(rec.lags, 3);
    const struct { const char *name; const double *got; size_t n; } sets[] = {
        {"magcache/ratio", rec.run.mag_ratio, (size_t)rec.S * 2},
        {"drift/attn_lag", rec.run.drift_attn_lag, (size_t)3 * rec.S * rec.L},
        {"drift/mlp_lag", rec.run.drift_mlp_lag, (size_t)3 * rec.S * rec.L},
    };
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
        int64_t dims[3];
        double *want = golden_f64(GOLDEN, sets[i].name, i ? 3 : 2, dims);
        for (size_t j = 0; j < sets[i].n; j++) {
            cr_assert_eq(isnan(sets[i].got[j]), isnan(want[j]), "%s[%zu]: got %g want %g", sets[i].name, j,
                         sets[i].got[j], want[j]);
            if (!isnan(want[j]))
                cr_expect_leq(fabs(sets[i].got[j] - want[j]), TOL * fabs(want[j]), "%s[%zu]: got %.9g want %.9g",
                              sets[i].name, j, sets[i].got[j], want[j]);
        }
        free(want);
    }
    /* lag 1 is the drift itself */
    cr_expect_eq(memcmp(rec.run.drift_attn_lag, rec.run.drift_attn, (size_t)rec.S * rec.L * sizeof(double)), 0);
    eb_recording_free(&rec);
    o.lags = 1; /* no lagged buffers: one row */
    cr_assert_eq(eb_record_run(m, &o, xT, y, (int)d[0], &rec, NULL), EB_OK, "%s", eb_last_error());
    cr_expect_eq(rec.lags, 1);
    eb_recording_free(&rec);
    o.lags = 11;
    cr_expect_eq(eb_record_run(m, &o, xT, y, (int)d[0], &rec, NULL), EB_EINPUT);
    free(xT), free(y);
    eb_schedule_free(&s);
    eb_model_free(m);
}

/* MagCache's table from the reference's ratios is the reference's, and its
 * run (whole-model residual skips under guidance) gives the reference's samples. */
Test(methods, magcache_table_and_samples) {
    eb_schedule s;
    eb_search_opts o;
    eb_model *m = setup(&s, "10", &o);
    eb_rec_data r;
    golden_rec(&r);
    o.max_skips = (int)attr_f64("magcache", "max_skips"), o.retention = attr_f64("magcache", "retention");
    const eb_method_input in = {.sched = &s, .c = eb_model_config(m), .o = &o, .rec = &r};
    eb_cache_schedule *cs, *want = golden_table("magcache");
    cr_assert_eq(eb_method_find("magcache")->generate(&cs, &in, attr_f64("magcache", "delta")), EB_OK, "%s",
                 eb_last_error());
    expect_same_actions(cs, want, r.L, &s, "magcache");
    eb_sampler_opts so = sampler(m, EB_SAMPLER_DDPM, (uint64_t)attr_f64("calib", "seed"));
    expect_samples(m, &s, &so, cs, "calib", "magcache");
    /* δ = 0 skips nothing; the top skips at least as much as the golden δ */
    eb_cache_schedule *none, *most;
    cr_assert_eq(eb_generate_magcache(&none, &in, 0), EB_OK);
    cr_assert_eq(eb_generate_magcache(&most, &in, eb_magcache_top(&in)), EB_OK);
    const eb_config *c = eb_model_config(m);
    cr_expect_eq(eb_cache_schedule_flops(none, c), 1);
    cr_expect_leq(eb_cache_schedule_flops(most, c), eb_cache_schedule_flops(cs, c));
    eb_cache_schedule_free(none), eb_cache_schedule_free(most);
    eb_cache_schedule_free(cs), eb_cache_schedule_free(want);
    eb_rec_data_free(&r);
    eb_schedule_free(&s);
    eb_model_free(m);
}

/* SmoothCache with lookahead 3 on the reference's lagged errors gives the
 * reference's scan; asking more lags than recorded is refused by name. */
Test(methods, smoothcache_lookahead_table) {
    eb_schedule s;
    cr_assert_eq(eb_schedule_create(&s, "10"), EB_OK);
    eb_rec_data r;
    golden_rec(&r);
    const eb_config c = tiny_sigma_config();
    eb_search_opts o;
    eb_search_defaults(&o);
    o.lookahead = (int)attr_f64("smoothcache", "lookahead");
    const eb_method_input in = {.sched = &s, .c = &c, .o = &o, .rec = &r};
    eb_cache_schedule *cs, *want = golden_table("smoothcache");
    const double alpha = attr_f64("smoothcache", "alpha");
    cr_assert_eq(eb_generate_smoothcache(&cs, &in, alpha), EB_OK, "%s", eb_last_error());
    expect_same_actions(cs, want, r.L, &s, "smoothcache");
    cr_expect(strstr(cs->params, "lookahead=3"), "%s", cs->params);
    eb_cache_schedule_free(cs);
    o.lookahead = 4;
    cr_expect_eq(eb_generate_smoothcache(&cs, &in, alpha), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "drift/attn_lag") || strstr(eb_last_error(), "lookahead 4"), "%s", eb_last_error());
    /* a target bisects α at lookahead 3 too */
    o.lookahead = 3, o.method = eb_method_find("smoothcache"), o.target = 0.9;
    eb_search_result res;
    cr_assert_eq(eb_search(&res, &r, NULL, &c, &o, NULL), EB_OK, "%s", eb_last_error());
    cr_expect(res.met && res.flops <= 0.9, "flops %g", res.flops);
    eb_search_result_free(&res);
    eb_cache_schedule_free(want);
    eb_rec_data_free(&r);
    eb_schedule_free(&s);
}

/* The synthetic router converted by tools/convert_l2c.py, replayed at the
 * reference's threshold, samples what the reference's own implementation of
 * the official router forward samples. */
Test(methods, l2c_replay_samples) {
    eb_schedule s;
    eb_search_opts o;
    eb_model *m = setup(&s, "ddim10", &o);
    o.router = GOLDEN_DIR "l2c_scores.h5";
    const eb_method_input in = {.sched = &s, .c = eb_model_config(m), .o = &o};
    eb_cache_schedule *cs;
    cr_assert_eq(eb_generate_l2c(&cs, &in, attr_f64("l2c", "threshold")), EB_OK, "%s", eb_last_error());
    eb_sampler_opts so = sampler(m, EB_SAMPLER_DDIM, (uint64_t)attr_f64("l2c", "seed"));
    expect_samples(m, &s, &so, cs, "l2c", "l2c");
    eb_cache_schedule_free(cs);
    /* another respacing is refused, naming the file */
    eb_schedule other;
    cr_assert_eq(eb_schedule_create(&other, "10"), EB_OK);
    const eb_method_input bad = {.sched = &other, .c = eb_model_config(m), .o = &o};
    cr_expect_eq(eb_generate_l2c(&cs, &bad, 0.5), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "l2c_scores.h5"), "%s", eb_last_error());
    eb_schedule_free(&other);
    eb_schedule_free(&s);
    eb_model_free(m);
}

/* MagCache and L2C as search targets: a FLOP target bisects δ / θ; one
 * beyond reach says what the method reaches at best. */
Test(methods, magcache_and_l2c_search_targets) {
    eb_rec_data r;
    golden_rec(&r);
    const eb_config c = tiny_sigma_config();
    eb_search_opts o;
    eb_search_defaults(&o);
    o.method = eb_method_find("magcache"), o.target = 0.8;
    eb_search_result res;
    cr_assert_eq(eb_search(&res, &r, NULL, &c, &o, NULL), EB_OK, "%s", eb_last_error());
    cr_expect(res.met && res.flops <= 0.8 && res.param > 0, "flops %g δ %g", res.flops, res.param);
    cr_expect_str_eq(res.table->method, "magcache");
    eb_search_result_free(&res);
    o.target = 0.2;
    cr_assert_eq(eb_search(&res, &r, NULL, &c, &o, NULL), EB_OK);
    cr_expect_eq(res.met, 0);
    cr_expect(strstr(res.note, "reusing all it can"), "%s", res.note);
    eb_search_result_free(&res);
    eb_rec_data_free(&r);
    /* l2c on a recording of its own sampler (ddim10): the same calibration file serves, its t replaced */
    golden_rec(&r);
    eb_schedule s;
    cr_assert_eq(eb_schedule_create(&s, "ddim10"), EB_OK);
    for (int k = 0; k < r.S; k++) r.t[k] = s.timestep[r.S - 1 - k];
    o.method = eb_method_find("l2c"), o.router = GOLDEN_DIR "l2c_scores.h5", o.target = 0.9;
    cr_assert_eq(eb_search(&res, &r, NULL, &c, &o, NULL), EB_OK, "%s", eb_last_error());
    cr_expect(res.met && res.flops <= 0.9, "flops %g θ %g", res.flops, res.param);
    eb_search_result_free(&res);
    o.router = NULL;
    cr_expect_eq(eb_search(&res, &r, NULL, &c, &o, NULL), EB_EINPUT);
    eb_schedule_free(&s);
    eb_rec_data_free(&r);
}

/* tools/convert_l2c.py on the golden router gives the golden scores, and its
 * table at a threshold is `ebcache schedule l2c`'s. Needs Debian's python3
 * with torch and h5py (skipped without: the C replay above needs neither). */
Test(methods, convert_l2c_matches_schedule_l2c) {
    if (system("/usr/bin/python3 -c 'import torch, h5py' 2>/dev/null"))
        cr_skip_test("no /usr/bin/python3 with torch and h5py: the converter is not tested");
    char scores[512], table[512], c_table[512], cmd[2048];
    in_workdir(scores, "scores.h5"), in_workdir(table, "py.schedule"), in_workdir(c_table, "c.schedule");
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 tools/convert_l2c.py " GOLDEN_DIR "l2c_router.pt --respacing ddim10 --scores %s "
             "--threshold 0.5 --output %s 2>/dev/null", scores, table);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    eb_h5 *a5, *b5;
    cr_assert_eq(eb_h5_open(&a5, scores), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_h5_open(&b5, GOLDEN_DIR "l2c_scores.h5"), EB_OK, "%s", eb_last_error());
    double *x, *y;
    int32_t *tx, *ty;
    int64_t dx[3], dy[3];
    cr_assert_eq(eb_h5_read_f64(a5, "/l2c/scores", 3, NULL, &x, dx, 0), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_h5_read_f64(b5, "/l2c/scores", 3, NULL, &y, dy, 0), EB_OK, "%s", eb_last_error());
    cr_assert(dx[0] == dy[0] && dx[1] == dy[1] && dx[2] == dy[2]);
    cr_expect_eq(memcmp(x, y, (size_t)dx[0] * dx[1] * dx[2] * sizeof *x), 0, "/l2c/scores differs from the golden");
    cr_assert_eq(eb_h5_read_i32(a5, "/l2c/t", 1, dy, &tx, dx), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_h5_read_i32(b5, "/l2c/t", 1, dy, &ty, dx), EB_OK, "%s", eb_last_error());
    cr_expect_eq(memcmp(tx, ty, (size_t)dy[0] * sizeof *tx), 0, "/l2c/t differs from the golden");
    free(x), free(y), free(tx), free(ty);
    eb_h5_close(a5), eb_h5_close(b5);
    cr_assert_eq(cli_run("schedule l2c --router " GOLDEN_DIR "l2c_scores.h5 --threshold 0.5 --respacing ddim10 "
                         "--model " GOLDEN_DIR "models/tiny_sigma.safetensors --output %s", c_table), 0, "%s", err_text);
    eb_cache_schedule *a, *b;
    cr_assert_eq(eb_cache_schedule_read(&a, table), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_cache_schedule_read(&b, c_table), EB_OK, "%s", eb_last_error());
    eb_schedule s;
    cr_assert_eq(eb_schedule_create(&s, "ddim10"), EB_OK);
    expect_same_actions(a, b, 2, &s, "convert_l2c vs schedule l2c");
    eb_cache_schedule_free(a), eb_cache_schedule_free(b);
    eb_schedule_free(&s);
    /* a router for another step count is refused, exit 2 */
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tools/convert_l2c.py " GOLDEN_DIR "l2c_router.pt --respacing ddim20 "
             "--scores %s 2>/dev/null", scores);
    int rc = system(cmd);
    cr_expect(WIFEXITED(rc) && WEXITSTATUS(rc) == 2, "exit %d", rc);
}
