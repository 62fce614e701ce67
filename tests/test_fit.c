/* test_fit.c — the fits of search/fit.h on synthetic data with known answers
 * (an exact line, noiseless two-phase b(τ), an exact quartic), recordings
 * written here with the documented dataset names, the fit file round trip,
 * malformed recordings, and `ebcache fit`. */
#include "tests/cli_util.h"
#include "search/fit.h"
#include "runtime/schedule.h"
#include "runtime/h5io.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

TestSuite(fit, .init = cli_workdir_make, .fini = cli_workdir_remove);

/* The timesteps of the 50-step respacing in sampling order (999, 978, …, 0). */
static void steps50(int32_t *t) {
    eb_schedule s;
    cr_assert_eq(eb_schedule_create(&s, "50"), EB_OK);
    for (int k = 0; k < 50; k++) t[k] = s.timestep[49 - k];
    eb_schedule_free(&s);
}

/* Writes recording r's datasets with the names docs/recording.md fixes
 * (shared with test_search.c). */
void test_write_recording(const char *path, const eb_rec_data *r) {
    eb_h5w *w;
    cr_assert_eq(eb_h5w_create(&w, path), EB_OK, "%s", eb_last_error());
    int64_t s[1] = {r->S}, sn[2] = {r->S, r->N}, sl[2] = {r->S, r->L};
    double alpha[r->S], t[r->S];
    for (int i = 0; i < r->S; i++) alpha[i] = 1 - r->t[i] / 1000.0, t[i] = r->t[i]; /* record stores t as double */
    eb_h5w_write(w, "/steps/t", EB_H5_F64, t, 1, s);
    eb_h5w_write(w, "/steps/alpha_bar", EB_H5_F64, alpha, 1, s);
    eb_h5w_write(w, "/eps/norm", EB_H5_F64, r->eps_norm, 2, sn);
    eb_h5w_write(w, "/eps/norm_q", EB_H5_F64, r->eps_norm_q, 2, sn);
    eb_h5w_write(w, "/drift/attn", EB_H5_F64, r->drift_attn, 2, sl);
    eb_h5w_write(w, "/drift/mlp", EB_H5_F64, r->drift_mlp, 2, sl);
    eb_h5w_write(w, "/drift/block0_input", EB_H5_F64, r->drift_block0, 1, s);
    eb_h5w_write(w, "/drift/output", EB_H5_F64, r->drift_output, 1, s);
    eb_h5w_attr_str(w, NULL, "sampler", "ddim");
    eb_h5w_attr_str(w, NULL, "respacing", "50");
    eb_h5w_attr_i64(w, NULL, "start_step", r->start);
    eb_h5w_attr_i64(w, NULL, "has_reference", r->cached);
    cr_assert_eq(eb_h5w_commit(w), EB_OK, "%s", eb_last_error());
}

static const eb_fit_two_phase TRUTH = {.b_h = 0.98, .b_l = 0.96, .t_thre = 0.37};
static const double QUARTIC[5] = {3.0, -2.0, 0.5, 1.2, 0.01};

/* A 50-step recording (N = 3, L = 2) whose chain norms are the q norms
 * divided by b(τ) of TRUTH and whose output drift is QUARTIC of the block-0 drift. */
static void synthetic(eb_rec_data *r) {
    memset(r, 0, sizeof *r);
    r->S = 50, r->N = 3, r->L = 2;
    r->t = malloc(50 * sizeof *r->t);
    steps50(r->t);
    r->eps_norm = malloc(150 * sizeof(double)), r->eps_norm_q = malloc(150 * sizeof(double));
    r->drift_attn = malloc(100 * sizeof(double)), r->drift_mlp = malloc(100 * sizeof(double));
    r->drift_block0 = malloc(50 * sizeof(double)), r->drift_output = malloc(50 * sizeof(double));
    for (int i = 0; i < 50; i++) {
        double b = eb_two_phase_b(&TRUTH, r->t[i] / 1000.0);
        for (int n = 0; n < 3; n++) {
            r->eps_norm_q[i * 3 + n] = 20 + n + 0.1 * i;
            r->eps_norm[i * 3 + n] = r->eps_norm_q[i * 3 + n] / b;
        }
        double x = 0.02 + 0.4 * fabs(sin(0.7 * i));
        r->drift_block0[i] = i ? x : NAN;
        r->drift_output[i] = i ? eb_poly_eval(QUARTIC, 5, x) : NAN;
        for (int l = 0; l < 2; l++) {
            r->drift_attn[i * 2 + l] = i ? 0.01 * (l + 1) : NAN;
            r->drift_mlp[i * 2 + l] = i ? 0.02 : NAN;
        }
    }
}

Test(fit, exact_line_is_recovered) {
    double x[50], y[50], res[50];
    for (int i = 0; i < 50; i++) x[i] = i / 50.0, y[i] = 0.0123 * x[i] + 1.004;
    eb_fit_line l;
    cr_assert_eq(eb_fit_linear(x, y, 50, &l, res), EB_OK, "%s", eb_last_error());
    cr_expect(fabs(l.k - 0.0123) < 1e-12 && fabs(l.b - 1.004) < 1e-12, "k %.15g b %.15g", l.k, l.b);
    cr_expect(fabs(l.r2 - 1) < 1e-12 && l.rmse < 1e-14, "r2 %.15g rmse %g", l.r2, l.rmse);
    for (int i = 0; i < 50; i++) cr_expect(fabs(res[i]) < 1e-14);
    /* a noisy line: R² below 1, residuals are data − fit */
    y[7] += 0.01;
    cr_assert_eq(eb_fit_linear(x, y, 50, &l, res), EB_OK);
    cr_expect(l.r2 < 1 && l.r2 > 0.5, "r2 %g", l.r2);
    cr_expect(fabs(res[7] - (y[7] - (l.k * x[7] + l.b))) < 1e-15);
    for (int i = 0; i < 50; i++) x[i] = 0.3;
    cr_expect_eq(eb_fit_linear(x, y, 50, &l, NULL), EB_EINPUT);
    cr_expect_eq(eb_fit_linear(x, y, 1, &l, NULL), EB_EINPUT);
}

Test(fit, two_phase_parameters_recovered_from_noiseless_data) {
    const eb_fit_two_phase truths[] = {{.b_h = 0.98, .b_l = 0.96, .t_thre = 0.4},
                                       {.b_h = 0.98, .b_l = 0.96, .t_thre = 0.37},
                                       {.b_h = 0.95, .b_l = 1.01, .t_thre = 0.62}};
    int32_t t[50];
    steps50(t);
    for (size_t c = 0; c < sizeof truths / sizeof truths[0]; c++) {
        double tau[50], b[50], res[50];
        for (int i = 0; i < 50; i++) tau[i] = t[i] / 1000.0, b[i] = eb_two_phase_b(&truths[c], tau[i]);
        eb_fit_two_phase p;
        cr_assert_eq(eb_fit_two_phase_b(tau, b, 50, &p, res), EB_OK, "%s", eb_last_error());
        cr_expect(fabs(p.b_h - truths[c].b_h) < 1e-7 && fabs(p.b_l - truths[c].b_l) < 1e-7 &&
                      fabs(p.t_thre - truths[c].t_thre) < 1e-6,
                  "case %zu: b_h %.10g b_l %.10g t_thre %.10g", c, p.b_h, p.b_l, p.t_thre);
        cr_expect(p.rmse < 1e-9 && p.r2 > 1 - 1e-9, "case %zu: rmse %g r2 %.12g", c, p.rmse, p.r2);
        cr_expect_eq(p.flags, 0, "case %zu: a healthy fit is flagged %u", c, p.flags);
        cr_expect_eq(p.below + p.above, 50);
    }
    /* the closed form at its anchors: b(1) = 1, b(t_thre) = b_h */
    cr_expect(fabs(eb_two_phase_b(&truths[0], 1.0) - 1) < 1e-15);
    cr_expect(fabs(eb_two_phase_b(&truths[0], 0.4 - 1e-15) - 0.98) < 1e-12);
    double tau[2] = {0.1, 0.2}, b[2] = {1, 1};
    eb_fit_two_phase p;
    cr_expect_eq(eb_fit_two_phase_b(tau, b, 2, &p, NULL), EB_EINPUT);
}

Test(fit, exact_quartic_is_recovered) {
    double x[40], y[40], res[40];
    for (int i = 0; i < 40; i++) x[i] = 0.02 + 0.4 * fabs(sin(0.7 * (i + 1))), y[i] = eb_poly_eval(QUARTIC, 5, x[i]);
    eb_fit_poly p;
    cr_assert_eq(eb_fit_polynomial(x, y, 40, 4, &p, res), EB_OK, "%s", eb_last_error());
    cr_assert_eq(p.npoly, 5);
    for (int j = 0; j < 5; j++) cr_expect(fabs(p.poly[j] - QUARTIC[j]) < 1e-6, "c%d = %.12g", j, p.poly[j]);
    cr_expect(p.r2 > 1 - 1e-12 && p.rmse < 1e-10);
    cr_expect_eq(eb_fit_polynomial(x, y, 4, 4, &p, NULL), EB_EINPUT); /* 4 points, 5 coefficients */
    cr_expect_eq(eb_fit_polynomial(x, y, 40, 5, &p, NULL), EB_EINPUT);
}

Test(fit, recording_fits_and_fit_file_round_trip) {
    eb_rec_data syn, r;
    synthetic(&syn);
    char rec[300], out[300];
    snprintf(rec, sizeof rec, "%s/rec.h5", workdir);
    snprintf(out, sizeof out, "%s/fit.h5", workdir);
    test_write_recording(rec, &syn);
    cr_assert_eq(eb_rec_data_read(&r, rec), EB_OK, "%s", eb_last_error());
    cr_expect(r.S == 50 && r.N == 3 && r.L == 2 && r.t[0] == 999 && r.t[49] == 0);
    cr_expect_str_eq(r.sampler, "ddim respacing=50");
    cr_expect_eq(strlen(r.sha256), 64);
    eb_fit f, g;
    cr_assert_eq(eb_fit_recording(&f, &r), EB_OK, "%s", eb_last_error());
    for (int i = 0; i < 50; i++)
        cr_expect(fabs(f.ratio[i] - 1 / eb_two_phase_b(&TRUTH, r.t[i] / 1000.0)) < 1e-13, "ratio %d", i);
    cr_expect(fabs(f.two_phase.b_h - TRUTH.b_h) < 1e-7 && fabs(f.two_phase.b_l - TRUTH.b_l) < 1e-7 &&
              fabs(f.two_phase.t_thre - TRUTH.t_thre) < 1e-6);
    for (int j = 0; j < 5; j++) cr_expect(fabs(f.teacache.poly[j] - QUARTIC[j]) < 1e-6);
    cr_expect(f.linear.r2 < 1); /* λ is not a line here */
    cr_assert_eq(eb_fit_write(&f, out), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_fit_read(&g, out), EB_OK, "%s", eb_last_error());
    cr_expect_str_eq(g.recording, rec);
    cr_expect_str_eq(g.sha256, r.sha256);
    cr_expect(g.S == 50 && g.npoints == 49 && g.t[3] == r.t[3]);
    cr_expect(g.linear.k == f.linear.k && g.linear.b == f.linear.b && g.linear.r2 == f.linear.r2);
    cr_expect(g.two_phase.t_thre == f.two_phase.t_thre && g.two_phase.b_l == f.two_phase.b_l);
    cr_expect(!memcmp(g.teacache.poly, f.teacache.poly, sizeof g.teacache.poly) && g.teacache.npoly == 5);
    cr_expect(!memcmp(g.ratio, f.ratio, 50 * sizeof(double)) && !memcmp(g.tc_residual, f.tc_residual, 49 * sizeof(double)));
    eb_fit_free(&f), eb_fit_free(&g), eb_rec_data_free(&r), eb_rec_data_free(&syn);
}

/* A linear λ(τ) in a recording comes back exactly. */
Test(fit, recording_with_linear_ratio) {
    eb_rec_data syn, r;
    synthetic(&syn);
    for (int i = 0; i < 50; i++)
        for (int n = 0; n < 3; n++) syn.eps_norm[i * 3 + n] = syn.eps_norm_q[i * 3 + n] * (1.002 + 0.015 * syn.t[i] / 1000.0);
    char rec[300];
    snprintf(rec, sizeof rec, "%s/lin.h5", workdir);
    test_write_recording(rec, &syn);
    cr_assert_eq(eb_rec_data_read(&r, rec), EB_OK, "%s", eb_last_error());
    eb_fit f;
    cr_assert_eq(eb_fit_recording(&f, &r), EB_OK, "%s", eb_last_error());
    cr_expect(fabs(f.linear.k - 0.015) < 1e-12 && fabs(f.linear.b - 1.002) < 1e-12 && fabs(f.linear.r2 - 1) < 1e-10,
              "k %.15g b %.15g r2 %.15g", f.linear.k, f.linear.b, f.linear.r2);
    eb_fit_free(&f), eb_rec_data_free(&r), eb_rec_data_free(&syn);
}

/* Chains started at step 5: earlier rows are NaN; the fits use the rest. */
Test(fit, recording_from_a_start_step) {
    eb_rec_data syn, r;
    synthetic(&syn);
    syn.start = 5;
    syn.cached = 1; /* a cached run: its fits are what EB-Cache's noise scaling corrects */
    for (int i = 0; i < 5; i++)
        for (int n = 0; n < 3; n++) syn.eps_norm[i * 3 + n] = syn.eps_norm_q[i * 3 + n] = NAN;
    for (int i = 0; i <= 5; i++) {
        syn.drift_block0[i] = syn.drift_output[i] = NAN;
        for (int l = 0; l < 2; l++) syn.drift_attn[i * 2 + l] = syn.drift_mlp[i * 2 + l] = NAN;
    }
    char rec[300], out[300];
    snprintf(rec, sizeof rec, "%s/start.h5", workdir);
    snprintf(out, sizeof out, "%s/start_fit.h5", workdir);
    test_write_recording(rec, &syn);
    cr_assert_eq(eb_rec_data_read(&r, rec), EB_OK, "%s", eb_last_error());
    cr_expect(r.start == 5 && r.cached == 1);
    eb_fit f, g;
    cr_assert_eq(eb_fit_recording(&f, &r), EB_OK, "%s", eb_last_error());
    cr_expect(isnan(f.ratio[4]) && f.npoints == 44);
    cr_expect(fabs(f.two_phase.t_thre - TRUTH.t_thre) < 1e-6 && fabs(f.two_phase.b_l - TRUTH.b_l) < 1e-7);
    for (int j = 0; j < 5; j++) cr_expect(fabs(f.teacache.poly[j] - QUARTIC[j]) < 1e-6);
    cr_assert_eq(eb_fit_write(&f, out), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_fit_read(&g, out), EB_OK, "%s", eb_last_error());
    cr_expect(g.start == 5 && g.npoints == 44 && isnan(g.ratio[0]) && g.ratio[5] == f.ratio[5]);
    eb_fit_free(&f), eb_fit_free(&g), eb_rec_data_free(&r);
    /* a NaN where the chains ran is still refused */
    syn.eps_norm[5 * 3] = NAN;
    test_write_recording(rec, &syn);
    cr_expect_eq(eb_rec_data_read(&r, rec), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "'/eps/norm' [5, 0]"), "%s", eb_last_error());
    eb_rec_data_free(&syn);
}

/* Bad recordings: EB_EINPUT naming the dataset and the index. */
Test(fit, malformed_recordings_are_named) {
    char rec[300];
    snprintf(rec, sizeof rec, "%s/bad.h5", workdir);
    eb_rec_data syn, r;
    synthetic(&syn);
    syn.eps_norm[3 * 3 + 1] = NAN;
    test_write_recording(rec, &syn);
    cr_expect_eq(eb_rec_data_read(&r, rec), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "'/eps/norm' [3, 1]") && strstr(eb_last_error(), rec), "%s", eb_last_error());
    syn.eps_norm[3 * 3 + 1] = 1;
    syn.eps_norm_q[0] = 0;
    test_write_recording(rec, &syn);
    cr_expect_eq(eb_rec_data_read(&r, rec), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "'/eps/norm_q' [0, 0]") && strstr(eb_last_error(), "positive"), "%s", eb_last_error());
    syn.eps_norm_q[0] = 1;
    syn.drift_mlp[5 * 2 + 1] = INFINITY;
    test_write_recording(rec, &syn);
    cr_expect_eq(eb_rec_data_read(&r, rec), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "'/drift/mlp' [5, 1]"), "%s", eb_last_error());
    syn.drift_mlp[5 * 2 + 1] = 0.02;
    syn.t[10] = syn.t[9];
    test_write_recording(rec, &syn);
    cr_expect_eq(eb_rec_data_read(&r, rec), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "'/steps/t' [10]"), "%s", eb_last_error());
    eb_rec_data_free(&syn);

    /* a dataset missing; a file that is not HDF5 */
    eb_h5w *w;
    cr_assert_eq(eb_h5w_create(&w, rec), EB_OK);
    double t[3] = {900, 500, 100};
    int64_t d[1] = {3};
    eb_h5w_write(w, "/steps/t", EB_H5_F64, t, 1, d);
    cr_assert_eq(eb_h5w_commit(w), EB_OK);
    cr_expect_eq(eb_rec_data_read(&r, rec), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "eps/norm"), "%s", eb_last_error());
    FILE *f = fopen(rec, "w");
    fputs("not hdf5", f);
    fclose(f);
    cr_expect_eq(eb_rec_data_read(&r, rec), EB_EINPUT);
    eb_fit fit;
    cr_expect_eq(eb_fit_read(&fit, rec), EB_EINPUT);
}

/* Runs "$EBCACHE_BIN <args>" with stderr and stdout to files; returns the exit status. */
static int run_cli(const char *fmt, ...) {
    const char *bin = getenv("EBCACHE_BIN") ? getenv("EBCACHE_BIN") : "build/opt/ebcache";
    char args[1024], cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "%s %s >%s/out.txt 2>%s/err.txt", bin, args, workdir, workdir);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static int file_has(const char *name, const char *phrase) {
    char path[300], buf[8192];
    snprintf(path, sizeof path, "%s/%s", workdir, name);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return strstr(buf, phrase) != NULL;
}

Test(fit, cli_fit_reports_and_writes) {
    eb_rec_data syn;
    synthetic(&syn);
    char rec[300];
    snprintf(rec, sizeof rec, "%s/rec.h5", workdir);
    test_write_recording(rec, &syn);
    eb_rec_data_free(&syn);
    cr_assert_eq(run_cli("fit %s --output %s/fit.h5", rec, workdir), 0);
    cr_expect(file_has("out.txt", "t_thre 0.37"), "two-phase split in the report");
    eb_fit f;
    char out[300];
    snprintf(out, sizeof out, "%s/fit.h5", workdir);
    cr_assert_eq(eb_fit_read(&f, out), EB_OK, "%s", eb_last_error());
    eb_fit_free(&f);
    cr_expect_eq(run_cli("fit %s/missing.h5", workdir), 2);
    cr_expect(file_has("err.txt", "missing.h5"));
    cr_expect_eq(run_cli("fit"), 2);
    cr_expect_eq(run_cli("fit %s --bogus 1", rec), 2);
    cr_expect_eq(run_cli("fit --help"), 0);
}

/* ------------------------------------------------------------------------ */
/* Degenerate two-phase fits (issue 16)                                      */

/* b_k at tau (50) for degenerate case c (shared with test_search.c):
 * 0 the split at the edge (a two-phase curve with t_thre 0.03: 2 steps below
 * it), 1 structureless noise (low R²), 2 a drop steeper than the model can
 * follow (b_l < 0 although every b_k > 0), 3 healthy (TRUTH). */
void test_degenerate_b(int c, const double *tau, double *b) {
    const eb_fit_two_phase edge = {.b_h = 0.99, .b_l = 0.9, .t_thre = 0.03};
    for (int k = 0; k < 50; k++)
        b[k] = c == 0 ? eb_two_phase_b(&edge, tau[k])
               : c == 1 ? 1 + 0.01 * sin(k * 12.9898) * cos(k * 78.233)
               : c == 2 ? (tau[k] > 0.3 ? 1.0 : 0.05)
                        : eb_two_phase_b(&TRUTH, tau[k]);
}

static const unsigned DEGENERATE_FLAG[3] = {EB_FIT_SPLIT_AT_EDGE, EB_FIT_LOW_R2, EB_FIT_NEGATIVE_B};

Test(fit, degenerate_two_phase_fits_are_flagged) {
    int32_t t[50];
    steps50(t);
    double tau[50], b[50];
    for (int k = 0; k < 50; k++) tau[k] = t[k] / 1000.0;
    for (int c = 0; c < 4; c++) {
        test_degenerate_b(c, tau, b);
        eb_fit_two_phase p;
        cr_assert_eq(eb_fit_two_phase_b(tau, b, 50, &p, NULL), EB_OK, "%s", eb_last_error());
        if (c == 3) cr_expect_eq(p.flags, 0, "healthy: flags %u", p.flags);
        else cr_expect(p.flags & DEGENERATE_FLAG[c], "case %d: flags %u lack %s", c, p.flags,
                       eb_fit_flag_name(DEGENERATE_FLAG[c]));
        if (c == 0) cr_expect(p.flags == EB_FIT_SPLIT_AT_EDGE && p.below == 2 && p.above == 48,
                              "edge: flags %u, %d below, %d above, t_thre %g", p.flags, p.below, p.above, p.t_thre);
        if (c == 2) cr_expect(p.b_l < 0, "b_l %g", p.b_l);
    }
    cr_expect_str_eq(eb_fit_flag_name(EB_FIT_LOW_R2), "low-r2");
    cr_expect_str_eq(eb_fit_flag_name(EB_FIT_SPLIT_AT_EDGE | EB_FIT_LOW_R2), "?");
    char list[64];
    cr_expect_str_eq(eb_fit_flags_list(EB_FIT_SPLIT_AT_EDGE | EB_FIT_NEGATIVE_B, list, sizeof list),
                     "split-at-edge, negative-b");
}

/* `ebcache fit` warns on stderr for each degenerate case and not for a
 * healthy fit; the fit file gives the flags back. */
Test(fit, cli_fit_warns_on_a_degenerate_fit) {
    const char *needle[4] = {"split-at-edge: 2 of 50 steps below t_thre 0.03", "low-r2: R²", "negative-b: b_h", NULL};
    for (int c = 0; c < 4; c++) {
        eb_rec_data syn;
        synthetic(&syn);
        double tau[50], b[50];
        for (int k = 0; k < 50; k++) tau[k] = syn.t[k] / 1000.0;
        test_degenerate_b(c, tau, b);
        for (int k = 0; k < 50; k++)
            for (int n = 0; n < 3; n++) syn.eps_norm[k * 3 + n] = syn.eps_norm_q[k * 3 + n] / b[k];
        char rec[300], out[300];
        snprintf(rec, sizeof rec, "%s/rec%d.h5", workdir, c);
        snprintf(out, sizeof out, "%s/fit%d.h5", workdir, c);
        test_write_recording(rec, &syn);
        eb_rec_data_free(&syn);
        cr_assert_eq(run_cli("fit %s --output %s", rec, out), 0, "case %d", c);
        int warned = file_has("err.txt", "warning: the two-phase fit is degenerate");
        if (needle[c]) {
            cr_expect(warned && file_has("err.txt", needle[c]) && file_has("err.txt", "no noise scaling"),
                      "case %d: no warning naming '%s'", c, needle[c]);
        } else {
            cr_expect(!warned && !file_has("err.txt", "warning"), "healthy fit warned");
        }
        eb_fit f;
        cr_assert_eq(eb_fit_read(&f, out), EB_OK, "%s", eb_last_error());
        cr_expect_eq(!!(f.two_phase.flags & (c < 3 ? DEGENERATE_FLAG[c] : ~0u)), c < 3, "case %d: read flags %u", c,
                     f.two_phase.flags);
        eb_fit_free(&f);
    }
}
