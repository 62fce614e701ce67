/* plots.c — a recording's columns as .dat files and its gnuplot PNGs (plots.h). */
#include "analyze/plots.h"
#include "analyze/gnuplot.h"

#include "runtime/atomic.h"
#include "runtime/h5io.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const scripts[] = {"snr", "exposure", "drift", "eps", "caching"};

/* What the plots read; optional arrays are NULL when the recording lacks them. */
typedef struct {
    int S, L, N, k0;                 /* steps, blocks, samples, start step                          */
    double *t, *nominal, *traj, *ratio, *data, *data_ratio, *var;
    double *ref_traj, *ref_ratio, *ref_data, *ref_data_ratio, *ref_var, *dev_x, *dev_eps;
    double *eps, *eps_q, *ref_eps;   /* (S, N)                                                      */
    double *attn, *mlp;              /* (S, L) the uncached reference's when there is one           */
    double *run_attn, *run_mlp;      /* (S, L) the cached run's (with a reference): 0 / NaN = reused */
    double power, data_power;        /* E[x̂0²] of the uncached chain's samples, E[x0²] (NaN: none)  */
    char title[512];
} recording;

static void recording_free(recording *r) {
    double *all[] = {r->t, r->nominal, r->traj, r->ratio, r->data, r->data_ratio, r->var, r->ref_traj, r->ref_ratio,
                     r->ref_data, r->ref_data_ratio, r->ref_var, r->dev_x, r->dev_eps, r->eps, r->eps_q, r->ref_eps,
                     r->attn, r->mlp, r->run_attn, r->run_mlp};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
}

/* Dataset `name` with the expected extents (second one ignored for rank 1); optional ones may be absent. */
static eb_status read_set(eb_h5 *f, const char *name, int rank, int64_t d0, int64_t d1, int optional, double **out) {
    *out = NULL;
    if (optional && eb_h5_lookup(f, name) != EB_H5_DATASET) return EB_OK;
    int64_t want[2] = {d0, d1}, dims[2];
    return eb_h5_read_f64(f, name, rank, want, out, dims, 0);
}

/* A plotted value must be defined from row `from` on (earlier rows are NaN by
 * design: before the start step, or a drift's first step); gnuplot would
 * silently leave it out. EB_EINPUT naming the file, dataset and index. */
static eb_status check_defined(const char *path, const char *name, const double *v, int S, int width, int from) {
    if (!v) return EB_OK;
    for (int k = from; k < S; k++)
        for (int j = 0; j < width; j++) {
            double x = v[(size_t)k * width + j];
            if (isfinite(x)) continue;
            const char *what = isnan(x) ? "NaN" : x > 0 ? "Inf" : "-Inf";
            if (width == 1)
                return eb_fail(EB_EINPUT, "%s: dataset '%s' has %s at [%d] (defined from step %d on)", path, name,
                               what, k, from);
            return eb_fail(EB_EINPUT, "%s: dataset '%s' has %s at [%d, %d] (defined from step %d on)", path, name,
                           what, k, j, from);
        }
    return EB_OK;
}

static double attr_or_nan(eb_h5 *f, const char *name) {
    double v = NAN;
    if (eb_h5_has_attr(f, NULL, name)) eb_h5_attr_f64(f, NULL, name, &v);
    return v;
}

static void title_of(eb_h5 *f, recording *r) {
    char *model = NULL, *sampler = NULL, *spacing = NULL, *method = NULL;
    double cfg = attr_or_nan(f, "cfg_scale");
    if (eb_h5_has_attr(f, NULL, "model")) eb_h5_attr_str(f, NULL, "model", &model);
    if (eb_h5_has_attr(f, NULL, "sampler")) eb_h5_attr_str(f, NULL, "sampler", &sampler);
    if (eb_h5_has_attr(f, NULL, "respacing")) eb_h5_attr_str(f, NULL, "respacing", &spacing);
    if (eb_h5_has_attr(f, NULL, "schedule_method")) eb_h5_attr_str(f, NULL, "schedule_method", &method);
    const char *base = model ? strrchr(model, '/') : NULL;
    int len = snprintf(r->title, sizeof r->title, "%s  %s %s  cfg %g  %s%s  N = %d",
                       base ? base + 1 : model ? model : "?", sampler ? sampler : "", spacing ? spacing : "", cfg,
                       method ? "schedule " : "uncached", method ? method : "", r->N);
    if (r->k0 && len > 0 && len < (int)sizeof r->title)
        snprintf(r->title + len, sizeof r->title - len, "  chains from q(x_t | x0) at step %d", r->k0);
    free(model), free(sampler), free(spacing), free(method);
}

static eb_status load(const char *path, recording *r) {
    memset(r, 0, sizeof *r);
    eb_h5 *f;
    int64_t dims[EB_H5_MAX_RANK], start = 0;
    int rank;
    eb_status st = eb_h5_open(&f, path);
    if (st) return st;
    st = eb_h5_shape(f, "/drift/attn", &rank, dims);
    if (!st && rank != 2) st = eb_fail(EB_EINPUT, "%s: dataset '/drift/attn' has rank %d, not 2 (S, L)", path, rank);
    if (!st) r->S = (int)dims[0], r->L = (int)dims[1], st = eb_h5_shape(f, "/eps/norm", &rank, dims);
    if (!st && (rank != 2 || dims[0] != r->S))
        st = eb_fail(EB_EINPUT, "%s: dataset '/eps/norm' is not (%d, N)", path, r->S);
    if (!st) r->N = (int)dims[1];
    if (!st && eb_h5_has_attr(f, NULL, "start_step")) st = eb_h5_attr_i64(f, NULL, "start_step", &start);
    if (!st && (start < 0 || start >= r->S))
        st = eb_fail(EB_EINPUT, "%s: attribute 'start_step' = %lld outside [0, %d)", path, (long long)start, r->S);
    r->k0 = (int)start;
    const int S = r->S, L = r->L, N = r->N, k0 = r->k0;
    const int has_ref = !st && eb_h5_lookup(f, "/reference/snr/trajectory") == EB_H5_DATASET;
    /* which features are cheap to cache shows in the uncached chain; a cached one drifts 0 where it reuses */
    struct { const char *name; int rank; int64_t d1; int optional, from; double **out; } plan[] = {
        {"/steps/t", 1, 0, 0, 0, &r->t}, {"/snr/nominal", 1, 0, 0, 0, &r->nominal},
        {"/snr/trajectory", 1, 0, 0, k0, &r->traj}, {"/exposure/snr_ratio", 1, 0, 0, k0, &r->ratio},
        {"/snr/data", 1, 0, 1, k0, &r->data}, {"/exposure/snr_data_ratio", 1, 0, 1, k0, &r->data_ratio},
        {"/exposure/var_ratio", 1, 0, 1, k0, &r->var},
        {"/reference/snr/trajectory", 1, 0, !has_ref, k0, &r->ref_traj},
        {"/reference/exposure/snr_ratio", 1, 0, !has_ref, k0, &r->ref_ratio},
        {"/reference/snr/data", 1, 0, 1, k0, &r->ref_data},
        {"/reference/exposure/snr_data_ratio", 1, 0, 1, k0, &r->ref_data_ratio},
        {"/reference/exposure/var_ratio", 1, 0, 1, k0, &r->ref_var},
        {"/deviation/x", 1, 0, !has_ref, k0, &r->dev_x}, {"/deviation/eps", 1, 0, !has_ref, k0, &r->dev_eps},
        {"/eps/norm", 2, N, 0, k0, &r->eps}, {"/eps/norm_q", 2, N, 1, k0, &r->eps_q},
        {"/reference/eps/norm", 2, N, !has_ref, k0, &r->ref_eps},
        {has_ref ? "/reference/drift/attn" : "/drift/attn", 2, L, 0, k0 + 1, &r->attn},
        {has_ref ? "/reference/drift/mlp" : "/drift/mlp", 2, L, 0, k0 + 1, &r->mlp},
    };
    for (size_t i = 0; !st && i < sizeof plan / sizeof plan[0]; i++) {
        st = read_set(f, plan[i].name, plan[i].rank, S, plan[i].d1, plan[i].optional, plan[i].out);
        if (!st) st = check_defined(path, plan[i].name, *plan[i].out, S, plan[i].rank == 2 ? (int)plan[i].d1 : 1,
                                    plan[i].from);
    }
    if (!st && has_ref) st = read_set(f, "/drift/attn", 2, S, L, 0, &r->run_attn);
    if (!st && has_ref) st = read_set(f, "/drift/mlp", 2, S, L, 0, &r->run_mlp);
    if (!st) {
        r->power = attr_or_nan(f, has_ref ? "reference_signal_power" : "signal_power");
        r->data_power = r->data ? attr_or_nan(f, "data_power") : NAN;
        title_of(f, r);
    }
    eb_h5_close(f);
    if (st) recording_free(r);
    return st;
}

static double at(const double *a, size_t i) { return a ? a[i] : NAN; }

/* Mean, min and max over the samples of num[k, n] / den[k, n] (NaN without den). */
static void sample_ratio(const double *num, const double *den, int k, int N, double out[3]) {
    double sum = 0, lo = INFINITY, hi = -INFINITY;
    for (int n = 0; n < N; n++) {
        double v = at(num, (size_t)k * N + n) / at(den, (size_t)k * N + n);
        sum += v, lo = fmin(lo, v), hi = fmax(hi, v);
    }
    if (!isfinite(sum)) sum = lo = hi = NAN;
    out[0] = sum / N, out[1] = lo, out[2] = hi;
}

static double sample_mean(const double *v, int k, int N) {
    double sum = 0;
    for (int n = 0; n < N; n++) sum += at(v, (size_t)k * N + n);
    return sum / N;
}

/* t_axis.gp: the timestep t of every few steps as tics of the second x axis (linked to the step axis). */
static eb_status write_t_axis(const char *dir, const recording *r) {
    eb_atomic g;
    eb_status st = eb_atomic_open_in(&g, dir, "t_axis.gp");
    if (st) return st;
    const int stride = r->S > 10 ? (r->S + 9) / 10 : 1;
    fprintf(g.f, "set link x2\nset x2label \"timestep t\"\nset x2tics (");
    for (int k = 0; k < r->S; k++)
        if (k % stride == 0 || k == r->S - 1)
            fprintf(g.f, "%s\"%.0f\" %d", k ? ", " : "", r->t[k], k);
    fprintf(g.f, ")\nset xtics nomirror\n");
    return eb_atomic_commit(&g);
}

/* reuse_{attn,mlp}.dat: "step block" of every feature the cached run took from its cache — drift
 * exactly 0 (reused) or undefined (skipped) where the uncached reference computed one. */
static eb_status write_reuse(const char *dir, const char *name, const double *run, const double *ref,
                             const recording *r) {
    eb_atomic d;
    eb_status st = eb_atomic_open_in(&d, dir, name);
    if (st) return st;
    for (int k = r->k0 + 1; k < r->S; k++)
        for (int l = 0; l < r->L; l++) {
            double v = run[(size_t)k * r->L + l];
            if ((v == 0 || isnan(v)) && isfinite(ref[(size_t)k * r->L + l])) fprintf(d.f, "%d %d\n", k, l);
        }
    return eb_atomic_commit(&d);
}

static eb_status write_columns(const char *dir, const recording *r) {
    eb_atomic snr, expo, eps, rng;
    eb_status st = eb_atomic_open_in(&snr, dir, "snr.dat");
    if (st) return st;
    for (int k = 0; k < r->S; k++)
        fprintf(snr.f, "%d %.0f %.9g %.9g %.9g %.9g %.9g %.9g %.9g %.9g\n", k, r->t[k], r->nominal[k],
                r->power * r->nominal[k], r->traj[k], at(r->data, k), at(r->ref_traj, k), at(r->ref_data, k),
                r->data_power * r->nominal[k], r->power);
    if ((st = eb_atomic_commit(&snr)) || (st = eb_atomic_open_in(&expo, dir, "exposure.dat"))) return st;
    for (int k = 0; k < r->S; k++)
        fprintf(expo.f, "%d %.0f %.9g %.9g %.9g %.9g %.9g %.9g\n", k, r->t[k], r->ratio[k], at(r->data_ratio, k),
                at(r->var, k), at(r->ref_ratio, k), at(r->ref_data_ratio, k), at(r->ref_var, k));
    if ((st = eb_atomic_commit(&expo)) || (st = eb_atomic_open_in(&eps, dir, "eps.dat"))) return st;
    for (int k = 0; k < r->S; k++) {
        double run[3], ref[3];
        sample_ratio(r->eps, r->eps_q, k, r->N, run);
        sample_ratio(r->ref_eps, r->eps_q, k, r->N, ref);
        fprintf(eps.f, "%d %.0f %.9g %.9g %.9g %.9g %.9g %.9g %.9g %.9g %.9g\n", k, r->t[k], run[0], run[1], run[2],
                sample_mean(r->eps, k, r->N), sample_mean(r->ref_eps, k, r->N), sample_mean(r->eps_q, k, r->N),
                ref[0], ref[1], ref[2]);
    }
    if ((st = eb_atomic_commit(&eps))) return st;
    if (r->ref_traj) {
        eb_atomic cache;
        if ((st = eb_atomic_open_in(&cache, dir, "caching.dat"))) return st;
        for (int k = 0; k < r->S; k++) {
            double e[3];
            sample_ratio(r->eps, r->ref_eps, k, r->N, e);
            fprintf(cache.f, "%d %.0f %.9g %.9g %.9g %.9g %.9g %.9g %.9g\n", k, r->t[k], r->traj[k] / r->ref_traj[k],
                    at(r->data, k) / at(r->ref_data, k), e[0], e[1], e[2], r->dev_x[k], r->dev_eps[k]);
        }
        if ((st = eb_atomic_commit(&cache)) || (st = write_reuse(dir, "reuse_attn.dat", r->run_attn, r->attn, r)) ||
            (st = write_reuse(dir, "reuse_mlp.dat", r->run_mlp, r->mlp, r)))
            return st;
    }
    const char *names[2] = {"drift_attn.dat", "drift_mlp.dat"};
    const double *maps[2] = {r->attn, r->mlp};
    double lo = INFINITY, hi = 0;
    for (int m = 0; m < 2; m++) {
        eb_atomic d;
        if ((st = eb_atomic_open_in(&d, dir, names[m]))) return st;
        for (int l = 0; l < r->L; l++)
            for (int k = 0; k < r->S; k++) {
                double v = maps[m][(size_t)k * r->L + l];
                if (isfinite(v) && v > 0) lo = fmin(lo, v), hi = fmax(hi, v);
                fprintf(d.f, "%.9g%c", v, k + 1 < r->S ? ' ' : '\n');
            }
        if ((st = eb_atomic_commit(&d))) return st;
    }
    if (!(hi > 0)) lo = 1e-3, hi = 1; /* nothing moved: any range shows it */
    if ((st = eb_atomic_open_in(&rng, dir, "drift_range.dat"))) return st;
    fprintf(rng.f, "%.9g %.9g\n", lo, hi > lo ? hi : 10 * lo);
    if ((st = eb_atomic_commit(&rng))) return st;
    return write_t_axis(dir, r);
}

/* ------------------------------------------------------------------------ */
/* gnuplot                                                                   */

static eb_status plot_all(const char *scripts_dir, const char *dir, const recording *r) {
    char qdir[PATH_MAX * 2], qtitle[1024];
    eb_gp_quote(qdir, sizeof qdir, dir);
    eb_gp_quote(qtitle, sizeof qtitle, r->title);
    eb_status st = EB_OK;
    for (size_t i = 0; !st && i < sizeof scripts / sizeof scripts[0]; i++) {
        if (!strcmp(scripts[i], "caching") && !r->ref_traj) continue; /* needs the uncached reference */
        char png[PATH_MAX], vars[4 * PATH_MAX];
        if (snprintf(png, sizeof png, "%s/%s.png", dir, scripts[i]) >= (int)sizeof png ||
            snprintf(vars, sizeof vars, "dat='%s/'; name='%s'; has_data=%d; has_ref=%d; has_q=%d; k0=%d", qdir,
                     qtitle, r->data != NULL, r->ref_traj != NULL, r->eps_q != NULL, r->k0) >= (int)sizeof vars)
            return eb_fail(EB_EINPUT, "%s: path too long", dir);
        st = eb_gp_render(scripts_dir, scripts[i], vars, png);
    }
    return st;
}

eb_status eb_plot_recording(const char *path, const char *dir, const char *scripts_dir, int *cached) {
    recording r;
    eb_status st = load(path, &r);
    if (st) return st;
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) st = eb_fail(EB_EINPUT, "%s: cannot create: %s", dir, strerror(errno));
    if (!st) st = write_columns(dir, &r);
    if (!st) st = plot_all(scripts_dir, dir, &r);
    if (cached) *cached = r.ref_traj != NULL;
    recording_free(&r);
    return st;
}
