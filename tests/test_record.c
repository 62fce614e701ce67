/* test_record.c — the recorder against the independent PyTorch computation
 * (tests/golden/record_goldens.h5, reference/record_ref.py), the nominal SNR
 * against the closed form, the drift reduction against plain loops, that
 * observing changes no result, feature dumps against the drift they imply,
 * and the errors of bad options. `ebcache record` / `plot` end to end are in
 * the cli_record suite below. */
#include "cli_util.h"
#include "golden.h"
#include "h5io.h"
#include "kernels.h"
#include "record.h"
#include "schedule.h"
#include "sha256.h"

#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define GOLDEN "record_goldens.h5"

/* ------------------------------------------------------------------------ */
/* Golden cases                                                              */

typedef struct {
    eb_model *m;
    eb_schedule sched;
    eb_cache_schedule *table;
    eb_record_opts o;
    float *xT, *x0;
    int32_t *y;
    int N;
} golden_case;

static char *attr_str(eb_h5 *f, const char *group, const char *name) {
    char *s = NULL;
    cr_assert_eq(eb_h5_attr_str(f, group, name, &s), EB_OK, "%s", eb_last_error());
    return s;
}

static double attr_f64(eb_h5 *f, const char *group, const char *name) {
    double v;
    cr_assert_eq(eb_h5_attr_f64(f, group, name, &v), EB_OK, "%s", eb_last_error());
    return v;
}

/* Loads case `name` of the golden file: model, sampler, table, inputs. */
static void case_load(golden_case *g, const char *name) {
    memset(g, 0, sizeof *g);
    eb_h5 *f;
    char path[256], ds[128];
    snprintf(path, sizeof path, GOLDEN_DIR GOLDEN);
    cr_assert_eq(eb_h5_open(&f, path), EB_OK, "%s", eb_last_error());
    char *model = attr_str(f, name, "model"), *spacing = attr_str(f, name, "spacing");
    char *sampler = attr_str(f, name, "sampler"), *vt = attr_str(f, name, "var_type"), *text = attr_str(f, name, "table");
    g->m = golden_model(model, (int)attr_f64(f, name, "heads"));
    cr_assert_eq(eb_schedule_create(&g->sched, spacing), EB_OK, "%s", eb_last_error());
    if (*text) cr_assert_eq(eb_cache_schedule_parse(&g->table, text, name), EB_OK, "%s", eb_last_error());
    const eb_config *c = eb_model_config(g->m);
    g->o = (eb_record_opts){
        .sched = &g->sched,
        .so = {.kind = strcmp(sampler, "ddim") ? EB_SAMPLER_DDPM : EB_SAMPLER_DDIM,
               .var_type = !strcmp(vt, "learned_range") ? EB_VAR_LEARNED_RANGE
                           : !strcmp(vt, "fixed_small") ? EB_VAR_FIXED_SMALL : EB_VAR_FIXED_LARGE,
               .eta = (float)attr_f64(f, name, "eta"), .cfg_scale = (float)attr_f64(f, name, "cfg"),
               .guide_channels = eb_default_guide_channels(c), .seed = (uint64_t)attr_f64(f, name, "seed")},
        .cache = g->table,
        .start_step = (int)attr_f64(f, name, "start_step"),
        .eps_q = 1,
    };
    int64_t d[4];
    snprintf(ds, sizeof ds, "%s/xT", name);
    cr_assert_eq(eb_h5_read_f32(f, ds, 4, NULL, &g->xT, d, 0), EB_OK, "%s", eb_last_error());
    g->N = (int)d[0];
    snprintf(ds, sizeof ds, "%s/y", name);
    cr_assert_eq(eb_h5_read_i32(f, ds, 1, NULL, &g->y, d), EB_OK, "%s", eb_last_error());
    snprintf(ds, sizeof ds, "%s/x0", name);
    if (eb_h5_lookup(f, ds) == EB_H5_DATASET) {
        cr_assert_eq(eb_h5_read_f32(f, ds, 4, NULL, &g->x0, d, 0), EB_OK, "%s", eb_last_error());
        g->o.x0 = g->x0;
    }
    free(model), free(spacing), free(sampler), free(vt), free(text);
    eb_h5_close(f);
}

static void case_free(golden_case *g) {
    eb_model_free(g->m);
    eb_schedule_free(&g->sched);
    eb_cache_schedule_free(g->table);
    free(g->xT), free(g->x0), free(g->y);
}

/* got (n) against the golden dataset: the same NaN pattern (undefined rows),
 * |got − want| ≤ tol · max(|want|, floor) elsewhere. Returns the worst ratio to tol. */
static double expect_close(const char *name, const char *ds, const double *got, size_t n, double tol, double floor) {
    char full[128];
    snprintf(full, sizeof full, "%s/%s", name, ds);
    int64_t d[EB_H5_MAX_RANK];
    int rank;
    eb_h5 *f;
    cr_assert_eq(eb_h5_open(&f, GOLDEN_DIR GOLDEN), EB_OK);
    cr_assert_eq(eb_h5_shape(f, full, &rank, d), EB_OK, "%s", eb_last_error());
    eb_h5_close(f);
    double *want = golden_f64(GOLDEN, full, rank, d);
    cr_assert_eq((size_t)(rank == 1 ? d[0] : d[0] * d[1]), n, "%s: size", full);
    cr_assert_not_null(got, "%s: recorded", full);
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(isnan(got[i]), isnan(want[i]), "%s[%zu]: got %g, want %g", full, i, got[i], want[i]);
        if (isnan(want[i])) continue;
        double err = fabs(got[i] - want[i]) / (tol * fmax(fabs(want[i]), floor));
        cr_expect_leq(err, 1.0, "%s[%zu]: got %.9g, want %.9g", full, i, got[i], want[i]);
        worst = fmax(worst, err);
    }
    free(want);
    return worst;
}

/* Every statistic of one chain set. Measured worst relative errors against the
 * reference: ε norms, cosines, data SNR and variance ratios ≤ 1e-6, drift ratios
 * ≤ 3e-6; the trajectory SNR ≤ 2.2e-5 (its last steps divide by ‖x̂_t − √ᾱ x̂_0‖²,
 * a difference of nearly equal chains). Tolerances leave about 5× margin. */
static void expect_stats(const char *name, const char *prefix, const eb_record_stats *s, const eb_recording *r) {
    char ds[96];
#define DS(x) (snprintf(ds, sizeof ds, "%s%s", prefix, x), ds)
    size_t S = r->S, SL = (size_t)r->S * r->L, SN = (size_t)r->S * r->N;
    expect_close(name, DS("snr/trajectory"), s->snr_trajectory, S, 1e-4, 0);
    expect_close(name, DS("eps/norm"), s->eps_norm, SN, 5e-6, 0);
    expect_close(name, DS("drift/attn"), s->drift_attn, SL, 2e-5, 1e-2);
    expect_close(name, DS("drift/mlp"), s->drift_mlp, SL, 2e-5, 1e-2);
    expect_close(name, DS("drift/attn_cos"), s->drift_attn_cos, SL, 5e-6, 1);
    expect_close(name, DS("drift/mlp_cos"), s->drift_mlp_cos, SL, 5e-6, 1);
    expect_close(name, DS("drift/block0_input"), s->drift_block0, S, 2e-5, 1e-2);
    expect_close(name, DS("drift/output"), s->drift_output, S, 2e-5, 1e-2);
    if (s->snr_data) {
        expect_close(name, DS("snr/data"), s->snr_data, S, 5e-6, 0);
        expect_close(name, DS("exposure/var_ratio"), s->var_ratio, S, 5e-6, 0);
    }
#undef DS
}

static void check_case(const char *name, int batch) {
    golden_case g;
    case_load(&g, name);
    g.o.batch = batch;
    eb_recording r;
    cr_assert_eq(eb_record_run(g.m, &g.o, g.xT, g.y, g.N, &r, NULL), EB_OK, "%s", eb_last_error());
    expect_close(name, "steps/alpha_bar", r.alpha_bar, r.S, 1e-15, 0);
    expect_close(name, "snr/nominal", r.snr_nominal, r.S, 1e-13, 0);
    expect_stats(name, "", &r.run, &r);
    expect_close(name, "eps/norm_q", r.run.eps_norm_q, (size_t)r.S * r.N, 5e-6, 0);
    cr_assert_eq(!!g.table, r.has_reference);
    if (g.table) {
        expect_stats(name, "reference/", &r.reference, &r);
        expect_close(name, "deviation/x", r.deviation_x, r.S, 2e-5, 1e-2);
        expect_close(name, "deviation/eps", r.deviation_eps, r.S, 2e-5, 1e-2);
    }
    char ds[64];
    snprintf(ds, sizeof ds, "%s/samples", name);
    float *want = golden_f32(GOLDEN, ds, 4, NULL);
    cr_expect_leq(max_rel_err(r.samples, want, (size_t)g.N * r.C * r.H * r.H), 1e-4, "%s", ds);
    free(want);
    eb_recording_free(&r);
    case_free(&g);
}

TestSuite(record);

/* EB-Cache rows (reuse, per-block overrides, ε scale) from step 3 of data chains, guidance, batches of 1. */
Test(record, golden_cached_with_data_and_start_step) { check_case("cached", 1); }
/* Uncached, no guidance, ε_q from the run's own samples, batches of 2 + 1. */
Test(record, golden_plain) { check_case("plain", 2); }
/* Δ-DiT: skipped blocks leave NaN drift and the next step compares with the last feature seen. */
Test(record, golden_delta_dit) { check_case("delta", 0); }
