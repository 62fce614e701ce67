/* pipeline/ablation_report.c — an ablation grid's reports (pipeline/ablation.h,
 * docs/ablation.md): the CSV, the Markdown curves with paired confidence
 * intervals over seeds under two judges, every curve read at EB-Cache's
 * speeds (linear in log speedup between the neighbouring points, per seed),
 * the claims, and the Pareto data and plot per sampler. */
#include "pipeline/ablation.h"
#include "runtime/atomic.h"
#include "pipeline/ablation_internal.h"

#include "analyze/gnuplot.h"
#include "analyze/metrics.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TIMING_SLACK 0.05 /* timer noise allowed before a measured speedup below 1 or above the FLOP one is flagged */
#define NSEEDS EB_ABLATION_MAX_LIST
#define CURVE_CAP EB_ABLATION_MAX_LIST /* points of one method on one sampler: one per speed target or native value */

/* ------------------------------------------------------------------------ */
/* Statistics                                                                */

eb_ablation_ci eb_ablation_ci_of(const double *v, int n) {
    double x[NSEEDS];
    int k = 0;
    for (int i = 0; i < n && k < NSEEDS; i++)
        if (isfinite(v[i])) x[k++] = v[i];
    eb_ablation_ci r = {NAN, NAN, k};
    if (k) eb_mean_ci95(&r.mean, &r.half, x, k);
    return r;
}

int eb_ablation_interpolate(double x, const double *xs, const double *const *y, int n, int n_seeds, double *per_seed,
                            int *lo, int *hi) {
    int a = -1, b = -1; /* the nearest points at or below x, at or above it */
    for (int j = 0; j < n; j++) {
        if (!(xs[j] > 0) || !isfinite(xs[j])) continue;
        if (xs[j] <= x && (a < 0 || xs[j] > xs[a])) a = j;
        if (xs[j] >= x && (b < 0 || xs[j] < xs[b])) b = j;
    }
    if (a < 0 || b < 0 || !(x > 0)) return 0;
    const double w = xs[a] == xs[b] ? 0 : (log(x) - log(xs[a])) / (log(xs[b]) - log(xs[a]));
    for (int s = 0; s < n_seeds; s++) per_seed[s] = w == 0 ? y[a][s] : (1 - w) * y[a][s] + w * y[b][s];
    if (lo) *lo = a;
    if (hi) *hi = b;
    return 1;
}

/* The per-seed values of one point, in the spec's seed order (NaN: missing). */
enum { F_FD, F_FD_MEAN, F_FD_COV, F_PX, F_PX_MEAN, F_PX_COV, F_ACC, F_PREC, F_REC, F_PSNR, F_SSIM, F_FLOP, F_SFID, F_IS,
       NFIELDS };
static const size_t FIELD_OFF[NFIELDS] = {
    offsetof(eb_ablation_row, fd),        offsetof(eb_ablation_row, fd_mean),       offsetof(eb_ablation_row, fd_cov),
    offsetof(eb_ablation_row, pixel_fd),  offsetof(eb_ablation_row, pixel_fd_mean), offsetof(eb_ablation_row, pixel_fd_cov),
    offsetof(eb_ablation_row, accuracy),  offsetof(eb_ablation_row, precision),     offsetof(eb_ablation_row, recall),
    offsetof(eb_ablation_row, psnr),      offsetof(eb_ablation_row, ssim),          offsetof(eb_ablation_row, flop_speedup),
    offsetof(eb_ablation_row, sfid),      offsetof(eb_ablation_row, inception_score)};

static double field_of(const eb_ablation_row *row, int field) {
    return *(const double *)((const char *)row + FIELD_OFF[field]);
}

/* What a judge's report shows: two distances, the first with its mean and
 * covariance terms (the claim rule needs both to agree), a third paired
 * quantity, and the per-image similarities to the uncached samples where
 * the judge has them. */
typedef struct {
    const char *first, *second;      /* "FD", "pixel FD": in the tables and sentences        */
    const char *first_header;        /* its curve-table column                               */
    int second_field, second_mean;   /* its field, its mean term's field (−1: none)          */
    const char *first_words, *second_words; /* the two judges in a disagreement              */
    const char *claim;               /* what "both judges agree: A has a lower … than B" says */
    int third;                       /* F_ACC, F_IS                                          */
    const char *third_name, *third_header, *third_fmt, *third_dfmt;
    int similarity;                  /* 1: PSNR and SSIM columns                             */
} judge_view;

static const judge_view JUDGE_FMNIST = {"FD", "pixel FD", "FD (mean + cov. term)", F_PX, F_PX_MEAN, "classifier features", "pixels", "FD",
                                        F_ACC, "class accuracy", "class acc.", "%.3f", "%+.3f", 1};
static const judge_view JUDGE_IMAGENET = {"FID", "sFID", "FID (+ its terms)", F_SFID, -1, "FID", "sFID", "FID and sFID",
                                          F_IS, "IS", "IS", "%.4g", "%+.3g", 0};

static const judge_view *view_of(const eb_ablation_spec *s) {
    return s->judge == EB_JUDGE_IMAGENET ? &JUDGE_IMAGENET : &JUDGE_FMNIST;
}

typedef struct {
    double v[NFIELDS][NSEEDS];
} profile;

static profile profile_of(const eb_ablation_spec *s, const eb_ablation_results *r, int point) {
    profile p;
    for (int f = 0; f < NFIELDS; f++)
        for (int k = 0; k < NSEEDS; k++) p.v[f][k] = NAN;
    for (int j = 0; j < r->n_rows; j++) {
        const eb_ablation_row *row = &r->rows[j];
        if (row->point != point || !row->reached) continue;
        for (int k = 0; k < s->n_seeds; k++)
            if (s->seeds[k] == row->seed)
                for (int f = 0; f < NFIELDS; f++) p.v[f][k] = field_of(row, f);
    }
    return p;
}

/* a − b, seed by seed. */
static profile profile_minus(const profile *a, const profile *b) {
    profile d;
    for (int f = 0; f < NFIELDS; f++)
        for (int k = 0; k < NSEEDS; k++) d.v[f][k] = a->v[f][k] - b->v[f][k];
    return d;
}

static eb_ablation_ci ci(const eb_ablation_spec *s, const profile *p, int field) {
    return eb_ablation_ci_of(p->v[field], s->n_seeds);
}

/* The point of the uncached run on sampler i, or −1. */
static int uncached_point(const eb_ablation_results *r, int i) {
    for (int k = 0; k < r->n_points; k++)
        if (r->points[k].at.sampler == i && !eb_methods[r->points[k].at.method].generate) return k;
    return -1;
}

static const char *method_name(const eb_ablation_curve_point *c) { return eb_methods[c->at.method].name; }

/* The points of method m on sampler i, reached ones first, by FLOP speedup
 * (then by the swept value), into out; returns their count. */
static int curve_of(const eb_ablation_results *r, int i, int m, int *out) {
    int n = 0;
    for (int k = 0; k < r->n_points; k++)
        if (r->points[k].at.sampler == i && r->points[k].at.method == m) out[n++] = k;
    for (int a = 1; a < n; a++) /* insertion sort: a curve has few points */
        for (int b = a; b > 0; b--) {
            const eb_ablation_curve_point *x = &r->points[out[b - 1]], *y = &r->points[out[b]];
            int after = x->reached != y->reached ? !x->reached
                      : x->flop_speedup != y->flop_speedup ? x->flop_speedup > y->flop_speedup
                                                           : x->at.value > y->at.value;
            if (!after) break;
            int t = out[b - 1];
            out[b - 1] = out[b], out[b] = t;
        }
    return n;
}

/* ------------------------------------------------------------------------ */
/* Output files                                                              */

/* ------------------------------------------------------------------------ */
/* Timing warnings                                                           */

int eb_ablation_timing_warning(char *buf, size_t cap, const eb_ablation_spec *s, const eb_ablation_results *r,
                               const eb_ablation_curve_point *c) {
    if (!c->table[0]) return 0;
    const eb_ablation_timing *info = &r->timing[c->at.sampler];
    const char *what = c->wall < 1.0 - TIMING_SLACK ? "below 1, slower than uncached"
                     : c->wall > c->flop_speedup * (1.0 + TIMING_SLACK) ? "above the FLOP speedup"
                                                                          : NULL;
    if (!what) return 0;
    char sn[32], label[64];
    snprintf(buf, cap, "%s %s%s: measured %.2f× wall-clock (%.2f× CPU; rounds %.2f–%.2f×) against a FLOP "
                       "speedup of %.2f×: %s; load average %.2f → %.2f on %d cores, so this speedup is not to be trusted",
             eb_ablation_sampler_name(s, c->at.sampler, sn), method_name(c), eb_ablation_point_label(&c->at, label, sizeof label),
             c->wall, c->cpu, c->wall_lo, c->wall_hi, c->flop_speedup, what, info->load_before, info->load_after,
             r->cores);
    return 1;
}

/* ------------------------------------------------------------------------ */
/* CSV                                                                       */

/* The judge's CSV columns after the timing ones, NULL-terminated. */
typedef struct {
    const char *name;
    int field;
} csv_column;
static const csv_column CSV_FMNIST[] = {{"fd", F_FD}, {"fd_mean_term", F_FD_MEAN}, {"fd_cov_term", F_FD_COV}, {"pixel_fd", F_PX},
                  {"pixel_fd_mean_term", F_PX_MEAN}, {"pixel_fd_cov_term", F_PX_COV}, {"precision", F_PREC},
                  {"recall", F_REC}, {"accuracy", F_ACC}, {"psnr", F_PSNR}, {"ssim", F_SSIM}, {NULL, 0}},
  CSV_IMAGENET[] = {{"fid", F_FD}, {"fid_mean_term", F_FD_MEAN}, {"fid_cov_term", F_FD_COV}, {"sfid", F_SFID},
                    {"inception_score", F_IS}, {"precision", F_PREC}, {"recall", F_REC}, {NULL, 0}};

static void put_csv(FILE *f, const eb_ablation_spec *s, const eb_ablation_results *r) {
    char sn[32];
    const csv_column *cols = s->judge == EB_JUDGE_IMAGENET ? CSV_IMAGENET : CSV_FMNIST;
    fprintf(f, "sampler,method,target,seed,n,reached,flop_speedup,wall_s,measured_speedup,cpu_speedup,load");
    for (int j = 0; cols[j].name; j++) fprintf(f, ",%s", cols[j].name);
    fprintf(f, ",sweep,value,params\n");
    for (int k = 0; k < r->n_rows; k++) {
        const eb_ablation_row *row = &r->rows[k];
        const eb_ablation_curve_point *c = &r->points[row->point];
        fprintf(f, "%s,%s,%.4g,%d,%d,%d", eb_ablation_sampler_name(s, c->at.sampler, sn), method_name(c),
                c->at.sweep == EB_SWEEP_SPEEDUP ? c->at.value : NAN, row->seed, s->n, row->reached);
        const double v[] = {row->flop_speedup, row->wall, row->measured, row->cpu_measured, row->load};
        for (size_t j = 0; j < sizeof v / sizeof v[0]; j++) fprintf(f, ",%.6g", v[j]);
        for (int j = 0; cols[j].name; j++) fprintf(f, ",%.6g", field_of(row, cols[j].field));
        fprintf(f, ",%s,%.4g,\"%s\"\n",
                c->at.sweep == EB_SWEEP_NATIVE ? eb_param_kind_name(eb_methods[c->at.method].param)
                                               : eb_sweep_kind_name(c->at.sweep),
                c->at.value, c->params);
    }
}

/* ------------------------------------------------------------------------ */
/* Markdown                                                                  */

/* " ± half" when the interval is beyond round-off, in two digits with `unit`. */
static void put_half(FILE *f, eb_ablation_ci c, const char *unit) {
    if (c.n > 1 && c.half > 1e-9 * fabs(c.mean)) fprintf(f, " ± %.2g%s", c.half, unit);
}

/* "mean ± half" as a table cell; "–" without values. */
static void put_stat(FILE *f, eb_ablation_ci c, const char *fmt, const char *unit) {
    if (!c.n) {
        fprintf(f, " – |");
        return;
    }
    fputc(' ', f);
    fprintf(f, fmt, c.mean);
    fprintf(f, "%s", unit);
    put_half(f, c, unit);
    fprintf(f, " |");
}

/* Where an interval lies: -1 below 0, +1 above, 0 containing it; 2 without one. */
static int side_of(eb_ablation_ci d) {
    if (d.n < 2 || !isfinite(d.half)) return 2;
    return d.mean + d.half < 0 ? -1 : d.mean - d.half > 0 ? 1 : 0;
}

static const char *side_word(int side) { return side < 0 ? "lower" : side > 0 ? "higher" : "not distinguishable"; }

/* The verdict of the claim rule on paired differences d: a claim only when
 * both judges' intervals lie on the same side of 0. Returns the side (−1, 1)
 * of a claim, 0 for none. */
static int verdict(FILE *f, const eb_ablation_spec *s, const profile *d, const char *a_name, const char *b_name) {
    const judge_view *j = view_of(s);
    int judge1 = side_of(ci(s, d, F_FD)), judge2 = side_of(ci(s, d, j->second_field));
    if (judge1 == 2 || judge2 == 2) fprintf(f, "no interval with one seed, so no claim");
    else if (judge1 == judge2 && judge1 != 0)
        fprintf(f, "**both judges agree: %s has a %s %s than %s**", a_name, side_word(judge1), j->claim, b_name);
    else if (judge1 == 0 && judge2 == 0) fprintf(f, "neither judge separates them (both intervals contain 0): no claim");
    else
        fprintf(f, "the judges do not agree (%s: %s, %s: %s), so no claim", j->first_words, side_word(judge1),
                j->second_words, side_word(judge2));
    return judge1 == judge2 && (judge1 == -1 || judge1 == 1) ? judge1 : 0;
}

/* The paired differences d (a − b, per seed) under both judges and in class
 * accuracy, then the verdict; returns it (verdict). */
static int compare(FILE *f, const eb_ablation_spec *s, const profile *d, const char *a_name, const char *b_name) {
    const judge_view *j = view_of(s);
    eb_ablation_ci fd = ci(s, d, F_FD), px = ci(s, d, j->second_field), acc = ci(s, d, j->third);
    fprintf(f, "Δ%s %+.3g", j->first, fd.mean);
    put_half(f, fd, "");
    if (ci(s, d, F_FD_MEAN).n) /* the terms, where the judge gives them */
        fprintf(f, " (mean term %+.3g, covariance term %+.3g)", ci(s, d, F_FD_MEAN).mean, ci(s, d, F_FD_COV).mean);
    fprintf(f, "; Δ%s %+.3g", j->second, px.mean);
    put_half(f, px, "");
    if (j->second_mean >= 0) fprintf(f, " (mean term %+.3g)", ci(s, d, j->second_mean).mean);
    if (acc.n) {
        fprintf(f, "; Δ%s ", j->third_name);
        fprintf(f, j->third_dfmt, acc.mean);
        put_half(f, acc, "");
    }
    fprintf(f, " (%d seed%s): ", fd.n, fd.n == 1 ? "" : "s");
    int v = verdict(f, s, d, a_name, b_name), acc_side = side_of(acc);
    if (acc_side == -1 || acc_side == 1) fprintf(f, "; %s is %s", j->third_name, side_word(acc_side));
    fprintf(f, ".\n");
    return v;
}

/* The curves of sampler i: per method its points by FLOP speedup. */
static void put_curves(FILE *f, const eb_ablation_spec *s, const eb_ablation_results *r, int i) {
    const judge_view *jv = view_of(s);
    const int columns = jv->similarity ? 15 : 13;
    fprintf(f, "| method | target | parameters | FLOP speedup | measured wall (CPU) | %s | Δ%s | "
               "%s | Δ%s | %s | Δ%s | precision | recall |%s\n|",
            jv->first_header, jv->first, jv->second, jv->second, jv->third_header, jv->third_header,
            jv->similarity ? " PSNR (dB) | SSIM |" : "");
    for (int c = 0; c < columns; c++) fprintf(f, "---|");
    fputc('\n', f);
    const int none = uncached_point(r, i);
    const profile base = none >= 0 ? profile_of(s, r, none) : (profile){{{0}}};
    int order[CURVE_CAP];
    for (int mi = 0; mi < s->n_methods; mi++) {
        const int n = curve_of(r, i, s->methods[mi], order);
        for (int j = 0; j < n; j++) {
            const eb_ablation_curve_point *c = &r->points[order[j]];
            fprintf(f, "| %s |", method_name(c));
            if (c->at.sweep == EB_SWEEP_SPEEDUP) fprintf(f, " %.3g× |", c->at.value);
            else fprintf(f, " – |");
            if (!c->reached) {
                fprintf(f, " unreachable |");
                for (int k = 3; k < columns; k++) fprintf(f, " |");
                fputc('\n', f);
                continue;
            }
            fprintf(f, " %s |", c->params[0] ? c->params : "–");
            const profile p = profile_of(s, r, order[j]);
            const int paired = none >= 0 && order[j] != none;
            const profile d = profile_minus(&p, &base);
            char warning[8];
            put_stat(f, ci(s, &p, F_FLOP), "%.2f", "×");
            fprintf(f, " %.2f× (%.2f×)%s |", c->table[0] ? c->wall : 1.0, c->table[0] ? c->cpu : 1.0,
                    eb_ablation_timing_warning(warning, sizeof warning, s, r, c) ? " ⚠" : "");
            eb_ablation_ci fd = ci(s, &p, F_FD);
            if (fd.n) {
                fprintf(f, " %.4g", fd.mean);
                put_half(f, fd, "");
                if (ci(s, &p, F_FD_MEAN).n)
                    fprintf(f, " (%.3g + %.3g)", ci(s, &p, F_FD_MEAN).mean, ci(s, &p, F_FD_COV).mean);
                fprintf(f, " |");
            } else fprintf(f, " – |");
            if (paired) put_stat(f, ci(s, &d, F_FD), "%+.3g", "");
            else fprintf(f, " – |");
            put_stat(f, ci(s, &p, jv->second_field), "%.4g", "");
            if (paired) put_stat(f, ci(s, &d, jv->second_field), "%+.3g", "");
            else fprintf(f, " – |");
            put_stat(f, ci(s, &p, jv->third), jv->third_fmt, "");
            if (paired) put_stat(f, ci(s, &d, jv->third), jv->third_dfmt, "");
            else fprintf(f, " – |");
            put_stat(f, ci(s, &p, F_PREC), "%.3f", "");
            put_stat(f, ci(s, &p, F_REC), "%.3f", "");
            if (jv->similarity) {
                put_stat(f, ci(s, &p, F_PSNR), "%.2f", "");
                put_stat(f, ci(s, &p, F_SSIM), "%.4f", "");
            }
            fputc('\n', f);
        }
    }
}

/* How the speedups were timed on sampler i, and the warnings. */
static void put_timing(FILE *f, const eb_ablation_spec *s, const eb_ablation_results *r, int i) {
    const eb_ablation_timing *info = &r->timing[i];
    fprintf(f, "\nTiming: %d round%s in this process; in each, one in-memory sampling run of %d image%s (seed %d) per "
               "table between two uncached runs (the tables in reverse order every other round). A table's measured "
               "speedup is the median over rounds of mean(uncached run before, after) / its run, for wall-clock and "
               "for the process's CPU time (all threads). One uncached run: %.3g s. Load average (1 min) %.2f before, "
               "%.2f after, on %d cores. ⚠ marks a speedup below 1 or above the FLOP speedup (beyond %.0f%%).\n",
            s->timing_rounds, s->timing_rounds == 1 ? "" : "s", s->timing_n, s->timing_n == 1 ? "" : "s", s->seeds[0],
            info->uncached_wall, info->load_before, info->load_after, r->cores, 100 * TIMING_SLACK);
    char warning[1024];
    for (int k = 0; k < r->n_points; k++)
        if (r->points[k].at.sampler == i && eb_ablation_timing_warning(warning, sizeof warning, s, r, &r->points[k]))
            fprintf(f, "\n**Warning:** %s.\n", warning);
}

/* A method's reached points with a table on one sampler, by FLOP speedup: their
 * speedups on the two axes (0: measured wall-clock, 1: FLOP) and per-seed values. */
typedef struct {
    int n, idx[CURVE_CAP];
    double xs[2][CURVE_CAP];
    profile p[CURVE_CAP];
} curve;

static void curve_load(curve *c, const eb_ablation_spec *s, const eb_ablation_results *r, int i, int m) {
    int order[CURVE_CAP];
    const int n = curve_of(r, i, m, order);
    c->n = 0;
    for (int j = 0; j < n && c->n < CURVE_CAP; j++) {
        const eb_ablation_curve_point *q = &r->points[order[j]];
        if (!q->reached || !q->table[0]) continue;
        c->idx[c->n] = order[j], c->xs[0][c->n] = q->wall, c->xs[1][c->n] = q->flop_speedup;
        c->p[c->n++] = profile_of(s, r, order[j]);
    }
}

/* The curve read at speedup x on one axis (eb_ablation_interpolate, every
 * field) into *out; 0 outside its range. */
static int curve_at(const curve *c, int axis, double x, int n_seeds, profile *out, int *lo, int *hi) {
    for (int f = 0; f < NFIELDS; f++) {
        const double *y[CURVE_CAP];
        for (int j = 0; j < c->n; j++) y[j] = c->p[j].v[f];
        for (int k = 0; k < NSEEDS; k++) out->v[f][k] = NAN;
        if (!eb_ablation_interpolate(x, c->xs[axis], y, c->n, n_seeds, out->v[f], lo, hi)) return 0;
    }
    return 1;
}

/* "1.33–1.62×" (or "1.5×" at a point): the neighbours of a reading. */
static const char *span(char *buf, size_t cap, const curve *c, int axis, int lo, int hi) {
    if (lo == hi) snprintf(buf, cap, "%.3g×", c->xs[axis][lo]);
    else snprintf(buf, cap, "%.3g–%.3g×", c->xs[axis][lo], c->xs[axis][hi]);
    return buf;
}

/* "outside its range (1.6–2.4×)": the lowest and highest speedup on the axis. */
static const char *outside(char *buf, size_t cap, const curve *c, int axis) {
    double lo = INFINITY, hi = -INFINITY;
    for (int j = 0; j < c->n; j++) lo = fmin(lo, c->xs[axis][j]), hi = fmax(hi, c->xs[axis][j]);
    if (lo == hi) snprintf(buf, cap, "outside its range (its one point at %.3g×)", lo);
    else snprintf(buf, cap, "outside its range (%.3g–%.3g×)", lo, hi);
    return buf;
}

/* The methods EB-Cache is compared with: a curve (no fixed parameter), not
 * EB-Cache itself nor ebcache's own budget search. */

static int is_baseline(int m) {
    const char *name = eb_methods[m].name;
    return eb_methods[m].generate && !isfinite(eb_methods[m].fixed) && strcmp(name, "eb-cache") && strcmp(name, "budget");
}

/* The comparison at EB-Cache's speeds on sampler i: each method's curve read
 * at each EB-Cache point's measured (and FLOP) speedup, a table and the claims. */
static void put_matched(FILE *f, const eb_ablation_spec *s, const eb_ablation_results *r, int i) {
    const eb_method *ebm = eb_method_find("eb-cache");
    const judge_view *jv = view_of(s);
    const int eb = eb_method_index(ebm), none = uncached_point(r, i);
    const profile base = none >= 0 ? profile_of(s, r, none) : (profile){{{0}}};
    curve *curves = malloc((size_t)s->n_methods * sizeof *curves), ebc;
    if (!curves) return;
    curve_load(&ebc, s, r, i, eb);
    for (int mi = 0; mi < s->n_methods; mi++) curve_load(&curves[mi], s, r, i, s->methods[mi]);
    if (ebc.n) {
        fprintf(f, "\n### At EB-Cache's speed\n\nEach method's curve is read at each EB-Cache point's measured "
                   "wall-clock speedup: linear in log speedup between the two neighbouring points of the curve (sorted "
                   "by that speedup), with no extrapolation (\"outside its range\"). Each seed's value is interpolated "
                   "with the same weights, so the paired differences and their 95%% intervals over seeds carry "
                   "through. The FLOP-speedup reading (deterministic, where the measured one is noisy) follows each "
                   "claim. Δ: EB-Cache − the method, paired by seed.\n");
    }
    for (int e = 0; e < ebc.n; e++) {
        const eb_ablation_curve_point *ep = &r->points[ebc.idx[e]];
        char label[64], buf[96];
        const profile *pe = &ebc.p[e];
        fprintf(f, "\n**EB-Cache%s** (measured %.2f× wall-clock, %.2f× CPU; FLOP %.2f×):\n\n"
                   "| method | read between (wall) | its Δ%s vs uncached | EB-Cache − it: Δ%s | Δ%s | "
                   "read between (FLOP) | Δ%s | Δ%s |\n|---|---|---|---|---|---|---|---|\n",
                eb_ablation_point_label(&ep->at, label, sizeof label), ep->wall, ep->cpu, ep->flop_speedup, jv->first,
                jv->first, jv->second, jv->first, jv->second);
        for (int mi = 0; mi < s->n_methods; mi++) {
            const int m = s->methods[mi];
            if (!is_baseline(m) || !curves[mi].n) continue;
            fprintf(f, "| %s |", eb_methods[m].name);
            for (int axis = 0; axis < 2; axis++) {
                const double x = axis ? ep->flop_speedup : ep->wall;
                profile at;
                int lo, hi;
                if (!curve_at(&curves[mi], axis, x, s->n_seeds, &at, &lo, &hi)) {
                    fprintf(f, " %s |%s | |", outside(buf, sizeof buf, &curves[mi], axis), axis ? "" : " |");
                    continue;
                }
                fprintf(f, " %s |", span(buf, sizeof buf, &curves[mi], axis, lo, hi));
                if (!axis) {
                    profile dn = profile_minus(&at, &base);
                    if (none >= 0) put_stat(f, ci(s, &dn, F_FD), "%+.3g", "");
                    else fprintf(f, " – |");
                }
                profile d = profile_minus(pe, &at);
                put_stat(f, ci(s, &d, F_FD), "%+.3g", "");
                put_stat(f, ci(s, &d, jv->second_field), "%+.3g", "");
            }
            fputc('\n', f);
        }
    }
    free(curves);
}

/* The claims of sampler i: EB-Cache against the uncached run and against each
 * baseline read at its speed (wall-clock, then FLOP); noise scaling alone
 * against the uncached run. */
static void put_claims(FILE *f, const eb_ablation_spec *s, const eb_ablation_results *r, int i) {
    const int eb = eb_method_index(eb_method_find("eb-cache")), none = uncached_point(r, i);
    const profile base = none >= 0 ? profile_of(s, r, none) : (profile){{{0}}};
    int order[CURVE_CAP];
    const int n_eb = curve_of(r, i, eb, order);
    fprintf(f, "\n");
    for (int e = 0; e < n_eb; e++) {
        const eb_ablation_curve_point *ep = &r->points[order[e]];
        char label[64], buf[96], name[96];
        eb_ablation_point_label(&ep->at, label, sizeof label);
        if (!ep->reached) {
            fprintf(f, "- EB-Cache%s: the search cannot reach this target.\n", label);
            continue;
        }
        const profile pe = profile_of(s, r, order[e]);
        fprintf(f, "- EB-Cache%s (measured %.2f× wall-clock, %.2f× CPU, FLOP %.2f×): %s %.4g, %s %.4g.\n", label,
                ep->wall, ep->cpu, ep->flop_speedup, view_of(s)->first, ci(s, &pe, F_FD).mean, view_of(s)->second,
                ci(s, &pe, view_of(s)->second_field).mean);
        if (none >= 0) {
            profile d = profile_minus(&pe, &base);
            fprintf(f, "  - vs uncached: ");
            compare(f, s, &d, "EB-Cache", "uncached");
        }
        for (int mi = 0; mi < s->n_methods; mi++) {
            const int m = s->methods[mi];
            if (!is_baseline(m)) continue;
            curve c;
            curve_load(&c, s, r, i, m);
            if (!c.n) {
                fprintf(f, "  - vs %s: no reached point.\n", eb_methods[m].name);
                continue;
            }
            snprintf(name, sizeof name, "%s", eb_methods[m].name);
            int side[2] = {0, 0}, read[2];
            for (int axis = 0; axis < 2; axis++) {
                const double x = axis ? ep->flop_speedup : ep->wall;
                const char *how = axis ? "FLOP" : "measured wall-clock";
                profile at;
                int lo, hi;
                fprintf(f, "%s", axis ? "    - " : "  - ");
                if (!(read[axis] = curve_at(&c, axis, x, s->n_seeds, &at, &lo, &hi))) {
                    fprintf(f, "vs %s at the %s speedup %.2f×: %s, no comparison.\n", name, how, x,
                            outside(buf, sizeof buf, &c, axis));
                    continue;
                }
                fprintf(f, "vs %s%s at the %s speedup %.2f× (read %s %s): ", name,
                        !strcmp(name, "eb-cache-table") ? " (what the noise scaling adds)" : "", how, x,
                        lo == hi ? "at" : "between", span(buf, sizeof buf, &c, axis, lo, hi));
                profile d = profile_minus(&pe, &at);
                side[axis] = compare(f, s, &d, "EB-Cache", name);
            }
            if (read[0] && read[1] && side[0] != side[1])
                fprintf(f, "    - the wall-clock and the FLOP readings disagree (the measured speedups are noisy; the FLOP "
                           "count leaves out every overhead): neither alone settles this comparison.\n");
        }
    }
    const eb_method *ns = eb_method_find("noise-scaling");
    for (int k = 0; ns && none >= 0 && k < r->n_points; k++)
        if (r->points[k].at.sampler == i && r->points[k].at.method == eb_method_index(ns) && r->points[k].reached) {
            profile p = profile_of(s, r, k), d = profile_minus(&p, &base);
            fprintf(f, "- Noise scaling alone vs uncached: ");
            compare(f, s, &d, "noise scaling", "uncached");
        }
}

static void put_markdown(FILE *f, const eb_ablation_spec *s, const eb_ablation_results *r) {
    char sn[32];
    fprintf(f, "# Ablation `%s`\n\nSpec `%s`; %d sample%s per seed, seeds", s->name, s->path, s->n, s->n == 1 ? "" : "s");
    for (int k = 0; k < s->n_seeds; k++) fprintf(f, "%s%d", k ? ", " : " ", s->seeds[k]);
    if (s->judge == EB_JUDGE_IMAGENET)
        fprintf(f, "; cfg %g; the ImageNet judge: latents decoded by `%s` (scale factor %g) and scored against the "
                   "reference batch `%s` through the FID Inception network `%s`; calibration: %d samples (seed %d).\n"
                   "Values are means ± the 95%% confidence half-width over seeds (Student's t); every Δ is the paired "
                   "difference to the uncached run of the same seed. The ADM evaluator's metrics (docs/metrics.md, "
                   "ImageNet): FID of the pool features (with its mean term ‖μ1 − μ2‖² + covariance term in parentheses where "
                   "the evaluation gives them), "
                   "sFID of the spatial features, Inception Score, and k-NN precision/recall. Two judges for claims: "
                   "FID and sFID; a claim is written only when both intervals lie on the same side of 0. Each method "
                   "is one curve, its points sorted by the FLOP speedup they ran at (uncached MACs / executed MACs); "
                   "`target` is the speed target the search was given, not a speed reached; measured: interleaved "
                   "timing (below each table).\n",
                s->cfg, s->vae, s->scale_factor, s->reference, s->inception, s->calib_n, s->calib_seed);
    else
        fprintf(f, "; cfg %g; FD against %d test images; calibration: %d samples (seed %d).\n"
                   "Values are means ± the 95%% confidence half-width over seeds (Student's t); every Δ is the paired "
                   "difference to the uncached run of the same seed. Two judges: FD of the classifier's features (split "
                   "into its mean term ‖μ1 − μ2‖² + covariance term) and pixel FD, the same distance in the top "
                   "principal components of the real test images' pixels (docs/metrics.md). A claim is written only "
                   "when both judges' intervals lie on the same side of 0. Each method is one curve, its points sorted "
                   "by the FLOP speedup they ran at (uncached MACs / executed MACs); `target` is the speed target the "
                   "search was given, not a speed reached; measured: interleaved timing (below each table).\n",
                s->cfg, s->n_real, s->calib_n, s->calib_seed);
    for (int i = 0; i < s->n_samplers; i++) {
        fprintf(f, "\n## %s\n\n", eb_ablation_sampler_name(s, i, sn));
        put_curves(f, s, r, i);
        put_timing(f, s, r, i);
        put_matched(f, s, r, i);
        put_claims(f, s, r, i);
    }
    fprintf(f, "\nMethods:\n\n");
    for (int m = 0; m < s->n_methods; m++)
        fprintf(f, "- `%s`: %s\n", eb_methods[s->methods[m]].name, eb_methods[s->methods[m]].about);
}

/* ------------------------------------------------------------------------ */
/* Pareto                                                                    */

/* Per method, points by FLOP speedup: measured speedup, FD and its half-width,
 * FLOP speedup, paired ΔFD and Δpixel FD with their half-widths (plots/pareto.gp). */
static eb_status write_pareto(const eb_ablation_spec *s, const eb_ablation_results *r, const eb_ablation_params *p,
                              int i) {
    char sn[32], name[128], png[PATH_MAX], qdat[2 * PATH_MAX], vars[4 * PATH_MAX], title[256], qtitle[512];
    eb_ablation_sampler_name(s, i, sn);
    snprintf(name, sizeof name, "%s_pareto_%s.dat", s->name, sn);
    if (snprintf(png, sizeof png, "%s/%s_pareto_%s.png", p->results, s->name, sn) >= (int)sizeof png)
        return eb_fail(EB_EINPUT, "%s: path too long", p->results);
    eb_atomic out;
    eb_status st = eb_atomic_open_in(&out, p->results, name);
    if (st) return st;
    FILE *f = out.f;
    const int none = uncached_point(r, i);
    const profile base = none >= 0 ? profile_of(s, r, none) : (profile){{{0}}};
    int order[CURVE_CAP], blocks = 0;
    const judge_view *jv = view_of(s);
    fprintf(f, "# per method, by FLOP speedup: measured speedup, %s, %s half-width, FLOP speedup, paired Δ%s and its "
               "half-width, paired Δ%s and its half-width (95%%, over seeds; NaN without an uncached run)\n",
            jv->first, jv->first, jv->first, jv->second);
    for (int mi = 0; mi < s->n_methods; mi++) {
        const int m = s->methods[mi], n = curve_of(r, i, m, order);
        int any = 0;
        for (int j = 0; j < n; j++) {
            const eb_ablation_curve_point *c = &r->points[order[j]];
            if (!c->reached) continue;
            if (!any) fprintf(f, "%s\"%s\" \"\" \"\" \"\" \"\" \"\" \"\" \"\"\n", blocks ? "\n\n" : "", eb_methods[m].name);
            any = 1;
            const profile q = profile_of(s, r, order[j]), d = profile_minus(&q, &base);
            eb_ablation_ci fd = ci(s, &q, F_FD), dfd = none >= 0 ? ci(s, &d, F_FD) : (eb_ablation_ci){NAN, NAN, 0},
                           dpx = none >= 0 ? ci(s, &d, jv->second_field) : (eb_ablation_ci){NAN, NAN, 0};
            const double v[] = {c->table[0] ? c->wall : 1.0, fd.mean, fd.half, c->flop_speedup,
                                dfd.mean, dfd.half, dpx.mean, dpx.half};
            for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) /* no interval (one seed): a bar of 0 */
                fprintf(f, "%s%.6g", k ? " " : "", isnan(v[k]) && (k == 2 || k == 5 || k == 7) ? 0 : v[k]);
            fputc('\n', f);
        }
        blocks += any;
    }
    /* plots/pareto.gp labels its axes with the Fashion-MNIST judges: the ImageNet grid keeps the data only */
    if ((st = eb_atomic_commit(&out)) || !p->scripts || s->judge == EB_JUDGE_IMAGENET) return st;
    snprintf(title, sizeof title, "%s: %s, cfg %g, %d sample%s × %d seed%s", s->name, sn, s->cfg, s->n,
             s->n == 1 ? "" : "s", s->n_seeds, s->n_seeds == 1 ? "" : "s");
    eb_gp_quote(qdat, sizeof qdat, out.path);
    eb_gp_quote(qtitle, sizeof qtitle, title);
    if (snprintf(vars, sizeof vars, "dat='%s'; name='%s'; blocks=%d", qdat, qtitle, blocks) >= (int)sizeof vars)
        return eb_fail(EB_EINPUT, "%s: path too long", out.path);
    return eb_gp_render(p->scripts, "pareto", vars, png);
}

/* ------------------------------------------------------------------------ */

eb_status eb_ablation_write_report(const eb_ablation_spec *s, const eb_ablation_results *r, const eb_ablation_params *p) {
    char name[96];
    eb_atomic out;
    eb_status st = eb_ablation_make_dirs(p->results);
    snprintf(name, sizeof name, "%s.csv", s->name);
    if (!st && !(st = eb_atomic_open_in(&out, p->results, name))) {
        put_csv(out.f, s, r);
        st = eb_atomic_commit(&out);
    }
    snprintf(name, sizeof name, "%s.md", s->name);
    if (!st && !(st = eb_atomic_open_in(&out, p->results, name))) {
        put_markdown(out.f, s, r);
        st = eb_atomic_commit(&out);
    }
    for (int i = 0; !st && i < s->n_samplers; i++) st = write_pareto(s, r, p, i);
    return st;
}
