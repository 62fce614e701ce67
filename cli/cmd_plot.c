/* cmd_plot.c — `ebcache plot REC.h5 --out DIR`: the recording's columns as
 * .dat text files and gnuplot PNGs from the scripts in plots/ (docs/recording.md). */
#include "args.h"
#include "commands.h"
#include "common.h"
#include "gnuplot.h"

#include "ebcache.h"
#include "h5io.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CMD "plot"

static const char *const scripts[] = {"snr", "exposure", "drift", "eps"};

/* What the plots read; optional arrays are NULL when the recording lacks them. */
typedef struct {
    int S, L, N;
    double *t, *nominal, *traj, *data, *var, *ref_traj, *ref_data, *ref_var;
    double *eps, *eps_q, *ref_eps; /* (S, N) */
    double *attn, *mlp;            /* (S, L) the uncached reference's when there is one */
    char title[512];
} recording;

static void recording_free(recording *r) {
    double *all[] = {r->t, r->nominal, r->traj, r->data, r->var, r->ref_traj, r->ref_data, r->ref_var,
                     r->eps, r->eps_q, r->ref_eps, r->attn, r->mlp};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
}

/* Dataset `name` with the expected extents (second one ignored for rank 1); optional ones may be absent. */
static eb_status read_set(eb_h5 *f, const char *name, int rank, int64_t d0, int64_t d1, int optional, double **out) {
    *out = NULL;
    if (optional && eb_h5_lookup(f, name) != EB_H5_DATASET) return EB_OK;
    int64_t want[2] = {d0, d1}, dims[2];
    return eb_h5_read_f64(f, name, rank, want, out, dims, 0);
}

static void title_of(eb_h5 *f, recording *r) {
    char *model = NULL, *sampler = NULL, *spacing = NULL, *method = NULL;
    double cfg = NAN;
    int64_t start = 0;
    if (eb_h5_has_attr(f, NULL, "model")) eb_h5_attr_str(f, NULL, "model", &model);
    if (eb_h5_has_attr(f, NULL, "sampler")) eb_h5_attr_str(f, NULL, "sampler", &sampler);
    if (eb_h5_has_attr(f, NULL, "respacing")) eb_h5_attr_str(f, NULL, "respacing", &spacing);
    if (eb_h5_has_attr(f, NULL, "schedule_method")) eb_h5_attr_str(f, NULL, "schedule_method", &method);
    if (eb_h5_has_attr(f, NULL, "cfg_scale")) eb_h5_attr_f64(f, NULL, "cfg_scale", &cfg);
    if (eb_h5_has_attr(f, NULL, "start_step")) eb_h5_attr_i64(f, NULL, "start_step", &start);
    const char *base = model ? strrchr(model, '/') : NULL;
    int len = snprintf(r->title, sizeof r->title, "%s  %s %s  cfg %g  %s%s  N = %d",
                       base ? base + 1 : model ? model : "?", sampler ? sampler : "", spacing ? spacing : "", cfg,
                       method ? "schedule " : "uncached", method ? method : "", r->N);
    if (start && len > 0 && len < (int)sizeof r->title)
        snprintf(r->title + len, sizeof r->title - len, "  chains from q(x_t | x0) at step %lld", (long long)start);
    free(model), free(sampler), free(spacing), free(method);
}

static eb_status load(const char *path, recording *r) {
    memset(r, 0, sizeof *r);
    eb_h5 *f;
    int64_t dims[EB_H5_MAX_RANK];
    int rank;
    eb_status st = eb_h5_open(&f, path);
    if (st) return st;
    st = eb_h5_shape(f, "/drift/attn", &rank, dims);
    if (!st && rank != 2) st = eb_fail(EB_EINPUT, "%s: dataset '/drift/attn' has rank %d, not 2 (S, L)", path, rank);
    if (!st) r->S = (int)dims[0], r->L = (int)dims[1], st = eb_h5_shape(f, "/eps/norm", &rank, dims);
    if (!st && (rank != 2 || dims[0] != r->S))
        st = eb_fail(EB_EINPUT, "%s: dataset '/eps/norm' is not (%d, N)", path, r->S);
    if (!st) r->N = (int)dims[1];
    const int S = r->S, L = r->L, N = r->N;
    struct { const char *name; int rank; int64_t d1; int optional; double **out; } plan[] = {
        {"/steps/t", 1, 0, 0, &r->t}, {"/snr/nominal", 1, 0, 0, &r->nominal}, {"/snr/trajectory", 1, 0, 0, &r->traj},
        {"/snr/data", 1, 0, 1, &r->data}, {"/exposure/var_ratio", 1, 0, 1, &r->var},
        {"/reference/snr/trajectory", 1, 0, 1, &r->ref_traj}, {"/reference/snr/data", 1, 0, 1, &r->ref_data},
        {"/reference/exposure/var_ratio", 1, 0, 1, &r->ref_var}, {"/eps/norm", 2, N, 0, &r->eps},
        {"/eps/norm_q", 2, N, 1, &r->eps_q}, {"/reference/eps/norm", 2, N, 1, &r->ref_eps},
    };
    for (size_t i = 0; !st && i < sizeof plan / sizeof plan[0]; i++)
        st = read_set(f, plan[i].name, plan[i].rank, S, plan[i].d1, plan[i].optional, plan[i].out);
    /* which features are cheap to cache shows in the uncached chain; a cached one drifts 0 where it reuses */
    const char *prefix = r->ref_traj ? "/reference" : "";
    char attn[64], mlp[64];
    snprintf(attn, sizeof attn, "%s/drift/attn", prefix);
    snprintf(mlp, sizeof mlp, "%s/drift/mlp", prefix);
    if (!st) st = read_set(f, attn, 2, S, L, 0, &r->attn);
    if (!st) st = read_set(f, mlp, 2, S, L, 0, &r->mlp);
    if (!st) title_of(f, r);
    eb_h5_close(f);
    if (st) recording_free(r);
    return st;
}

static double at(const double *a, size_t i) { return a ? a[i] : NAN; }

static eb_status write_columns(const char *dir, const recording *r) {
    eb_out_file snr, expo, eps, mx;
    eb_status st = eb_out_open(&snr, dir, "snr.dat");
    if (st) return st;
    for (int k = 0; k < r->S; k++)
        fprintf(snr.f, "%d %.0f %.9g %.9g %.9g %.9g %.9g\n", k, r->t[k], r->nominal[k], r->traj[k], at(r->data, k),
                at(r->ref_traj, k), at(r->ref_data, k));
    if ((st = eb_out_close(&snr)) || (st = eb_out_open(&expo, dir, "exposure.dat"))) return st;
    for (int k = 0; k < r->S; k++) {
        double nom = r->nominal[k];
        fprintf(expo.f, "%d %.0f %.9g %.9g %.9g %.9g %.9g %.9g\n", k, r->t[k], r->traj[k] / nom, at(r->data, k) / nom,
                at(r->var, k), at(r->ref_traj, k) / nom, at(r->ref_data, k) / nom, at(r->ref_var, k));
    }
    if ((st = eb_out_close(&expo)) || (st = eb_out_open(&eps, dir, "eps.dat"))) return st;
    for (int k = 0; k < r->S; k++) {
        double sum = 0, lo = INFINITY, hi = -INFINITY, norm = 0, ref = 0, q = 0;
        for (int n = 0; n < r->N; n++) {
            size_t i = (size_t)k * r->N + n;
            double ratio = at(r->eps, i) / at(r->eps_q, i);
            sum += ratio, lo = fmin(lo, ratio), hi = fmax(hi, ratio);
            norm += r->eps[i], ref += at(r->ref_eps, i), q += at(r->eps_q, i);
        }
        if (!isfinite(sum)) lo = hi = NAN;
        fprintf(eps.f, "%d %.0f %.9g %.9g %.9g %.9g %.9g %.9g\n", k, r->t[k], sum / r->N, lo, hi, norm / r->N,
                ref / r->N, q / r->N);
    }
    if ((st = eb_out_close(&eps))) return st;
    const char *names[2] = {"drift_attn.dat", "drift_mlp.dat"};
    const double *maps[2] = {r->attn, r->mlp};
    double top = 0;
    for (int m = 0; m < 2; m++) {
        eb_out_file d;
        if ((st = eb_out_open(&d, dir, names[m]))) return st;
        for (int l = 0; l < r->L; l++)
            for (int k = 0; k < r->S; k++) {
                double v = maps[m][(size_t)k * r->L + l];
                if (isfinite(v)) top = fmax(top, v);
                fprintf(d.f, "%.9g%c", v, k + 1 < r->S ? ' ' : '\n');
            }
        if ((st = eb_out_close(&d))) return st;
    }
    if ((st = eb_out_open(&mx, dir, "drift_max.dat"))) return st;
    fprintf(mx.f, "%.9g\n", top);
    return eb_out_close(&mx);
}

/* ------------------------------------------------------------------------ */
/* gnuplot                                                                   */

static eb_status plot_all(const char *scripts_dir, const char *dir, const recording *r) {
    char qdir[PATH_MAX * 2], qtitle[1024];
    eb_gp_quote(qdir, sizeof qdir, dir);
    eb_gp_quote(qtitle, sizeof qtitle, r->title);
    eb_status st = EB_OK;
    for (size_t i = 0; !st && i < sizeof scripts / sizeof scripts[0]; i++) {
        char png[PATH_MAX], vars[4 * PATH_MAX];
        if (snprintf(png, sizeof png, "%s/%s.png", dir, scripts[i]) >= (int)sizeof png ||
            snprintf(vars, sizeof vars, "dat='%s/'; name='%s'; has_data=%d; has_ref=%d; has_q=%d", qdir, qtitle,
                     r->data != NULL, r->ref_traj != NULL, r->eps_q != NULL) >= (int)sizeof vars)
            return eb_fail(EB_EINPUT, "%s: path too long", dir);
        st = eb_gp_render(scripts_dir, scripts[i], vars, png);
    }
    return st;
}

int cmd_plot(int argc, char **argv) {
    eb_opt opts[] = {
        {"out", "DIR", "folder for the PNGs and their .dat columns (created if missing)", NULL},
        {"scripts", "DIR", "folder of the gnuplot scripts (default: $EBCACHE_PLOTS, else plots/ of the tree)", NULL},
    };
    const int n = sizeof opts / sizeof opts[0];
    const char *usage = "usage: ebcache plot REC.h5 --out DIR\n\n"
                        "Writes snr.png, exposure.png, drift.png and eps.png (and the .dat files they plot).";
    if (argc < 2 || argv[1][0] == '-') {
        if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
            printf("%s\n", usage);
            return 0;
        }
        fprintf(stderr, "ebcache " CMD ": give the recording first: ebcache plot REC.h5 --out DIR\n");
        return 2;
    }
    const char *path = argv[1];
    char *args[argc - 1];
    args[0] = (char *)CMD;
    memcpy(args + 1, argv + 2, (argc - 2) * sizeof *args);
    int rc = eb_args_parse(argc - 1, args, opts, n, usage);
    if (rc) return rc < 0 ? 0 : rc;
    const char *dir = eb_arg(opts, n, "out");
    if (!dir) {
        fprintf(stderr, "ebcache " CMD ": --out DIR is required\n");
        return 2;
    }
    if ((rc = eb_output_dir_check(CMD, dir, EB_INPUTS(path)))) return rc;
    char scripts_dir[PATH_MAX];
    recording r;
    eb_status st = eb_gp_find_scripts(eb_arg(opts, n, "scripts"), scripts_dir, sizeof scripts_dir);
    if (!st) st = load(path, &r);
    if (st) return eb_report(CMD, st);
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        st = eb_fail(EB_EINPUT, "%s: cannot create: %s", dir, strerror(errno));
    if (!st) st = write_columns(dir, &r);
    if (!st) st = plot_all(scripts_dir, dir, &r);
    if (!st) fprintf(stderr, "wrote %s/{snr,exposure,drift,eps}.png\n", dir);
    recording_free(&r);
    return eb_report(CMD, st);
}
