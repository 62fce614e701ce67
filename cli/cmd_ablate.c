/* cmd_ablate.c — `ebcache ablate SPEC`: a grid of samplers × caching methods ×
 * speed targets × seeds, each cell recorded, fitted, searched, sampled and
 * evaluated by the other commands (run in-process), then one CSV, a Markdown
 * table with confidence intervals over seeds and a Pareto plot per sampler
 * (docs/ablation.md). Cells are content-addressed by their inputs, so an
 * interrupted grid resumes and grids that share cells share the work. */
#include "ablate_spec.h"
#include "args.h"
#include "commands.h"
#include "common.h"
#include "gnuplot.h"

#include "ebcache.h"
#include "h5io.h"
#include "metrics.h"
#include "sha256.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CMD "ablate"
#define KEY_HEX 16 /* cell names: the first 16 hex digits of a SHA-256 */
#define DIR_CAP (PATH_MAX - 64) /* a cell folder, leaving room for its file names */

/* One evaluated cell: a method at a target on one seed. */
typedef struct {
    int sampler, method, seed;
    double target; /* NaN for untargeted methods */
    int reached;   /* 0: the search could not reach the target */
    double flop_speedup, wall, measured, fd, precision, recall, accuracy, psnr, ssim;
} row;

/* ------------------------------------------------------------------------ */
/* Running the other commands                                                */

static const char *threads_opt; /* --threads, passed on */

/* Runs command `fn` with the NULL-terminated arguments (and --threads when
 * `threaded`), its stdout sent to stderr; returns its exit status. An
 * optional last option is passed as (cond ? "--name" : NULL, value). */
static int call(int threaded, int (*fn)(int, char **), const char *name, ...) {
    char *argv[64];
    int argc = 0;
    argv[argc++] = (char *)name;
    va_list ap;
    va_start(ap, name);
    for (const char *a; (a = va_arg(ap, const char *)) && argc < 60;) argv[argc++] = (char *)a;
    va_end(ap);
    if (threaded && threads_opt) {
        argv[argc++] = "--threads";
        argv[argc++] = (char *)threads_opt;
    }
    argv[argc] = NULL;
    /* the commands' reports go to stderr with their progress: stdout is ablate's */
    fflush(stdout);
    int saved = dup(1);
    if (saved >= 0) dup2(2, 1);
    int rc = fn(argc, argv);
    fflush(stdout);
    if (saved >= 0) dup2(saved, 1), close(saved);
    return rc;
}

static int exists(const char *path) { return access(path, F_OK) == 0; }

/* The first KEY_HEX hex digits of SHA-256(text). */
static void key_of(char key[KEY_HEX + 1], const char *text) {
    char hex[EB_SHA256_HEX];
    eb_sha256_hex(text, strlen(text), hex);
    memcpy(key, hex, KEY_HEX);
    key[KEY_HEX] = 0;
}

/* dir/<kind>-<key>, created. */
static eb_status cell_dir(char out[DIR_CAP], const char *cells, const char *kind, const char *key) {
    if (snprintf(out, DIR_CAP, "%s/%s-%s", cells, kind, key) >= DIR_CAP)
        return eb_fail(EB_EINPUT, "%s: path too long", cells);
    if (mkdir(out, 0777) != 0 && errno != EEXIST) return eb_fail(EB_ERUNTIME, "%s: cannot create: %s", out, strerror(errno));
    return EB_OK;
}

static eb_status make_dirs(const char *path) {
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return eb_fail(EB_EINPUT, "%s: path too long", path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || !*p) {
            char c = *p;
            *p = 0;
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return eb_fail(EB_ERUNTIME, "%s: cannot create: %s", buf, strerror(errno));
            if (!(*p = c)) break;
        }
    }
    return EB_OK;
}

static eb_status copy_file(const char *from, const char *to) {
    char tmp[PATH_MAX + 256];
    snprintf(tmp, sizeof tmp, "%s.tmp%d", to, (int)getpid());
    FILE *in = fopen(from, "rb"), *out = in ? fopen(tmp, "wb") : NULL;
    eb_status st = in && out ? EB_OK : eb_fail(EB_ERUNTIME, "cannot copy %s to %s: %s", from, to, strerror(errno));
    char buf[65536];
    size_t got;
    while (!st && (got = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, got, out) != got) st = eb_fail(EB_ERUNTIME, "%s: write error", tmp);
    if (in) fclose(in);
    if (out && fclose(out) && !st) st = eb_fail(EB_ERUNTIME, "%s: write error", tmp);
    if (!st && rename(tmp, to)) st = eb_fail(EB_ERUNTIME, "%s: cannot rename: %s", to, strerror(errno));
    if (st) unlink(tmp);
    return st;
}

static double attr_or(eb_h5 *f, const char *name, double fallback) {
    double v;
    return eb_h5_has_attr(f, NULL, name) && !eb_h5_attr_f64(f, NULL, name, &v) ? v : fallback;
}

/* ------------------------------------------------------------------------ */
/* The grid                                                                  */

typedef struct {
    const spec *s;
    const char *cells, *model;
    char model_sha[EB_SHA256_HEX];
    int done, total;
} grid;

static void progress(grid *g, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ablate [%d/%d] ", g->done, g->total);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* The calibration recording and its fit for sampler i: cells/rec-KEY/{rec,fit}.h5. */
static eb_status calibrate(grid *g, int i, char rec[PATH_MAX], char fit[PATH_MAX], char key[KEY_HEX + 1]) {
    const spec *s = g->s;
    char text[PATH_MAX + 512], dir[DIR_CAP], steps[16], n[16], seed[16], cfg[32], batch[16];
    snprintf(steps, sizeof steps, "%d", s->samplers[i].steps);
    snprintf(n, sizeof n, "%d", s->calib_n);
    snprintf(seed, sizeof seed, "%d", s->calib_seed);
    snprintf(cfg, sizeof cfg, "%.17g", s->cfg);
    snprintf(batch, sizeof batch, "%d", s->batch);
    snprintf(text, sizeof text, "record|%s|%s|%s|%s|%s|%s|%s|%s", EBCACHE_VERSION, g->model_sha,
             s->samplers[i].kind, steps, cfg, n, seed, batch);
    key_of(key, text);
    eb_status st = cell_dir(dir, g->cells, "rec", key);
    if (st) return st;
    snprintf(rec, PATH_MAX, "%s/rec.h5", dir);
    snprintf(fit, PATH_MAX, "%s/fit.h5", dir);
    int rc = 0;
    if (!exists(rec)) {
        progress(g, "%s-%d: calibration recording, %d samples", s->samplers[i].kind, s->samplers[i].steps, s->calib_n);
        rc = call(1, cmd_record, "record", "--model", g->model, "--sampler", s->samplers[i].kind, "--steps", steps,
                  "--cfg-scale", cfg, "--seed", seed, "--n", n, "--batch", batch, "--output", rec, NULL);
        if (rc) return eb_fail(rc, "%s-%d: the calibration recording failed", s->samplers[i].kind, s->samplers[i].steps);
    }
    if (!exists(fit) && (rc = call(0, cmd_fit, "fit", rec, "--output", fit, NULL)))
        return eb_fail(rc, "%s: the fit failed", rec);
    return EB_OK;
}

/* The table of method m at target x (NaN: untargeted) into table[] ("" for
 * none); *reached = 0 when the search says the target cannot be met. */
static eb_status search_table(grid *g, int i, int m, double x, const char *rec, const char *fit, const char *rec_key,
                              char table[PATH_MAX], int *reached) {
    const method_def *d = &ablate_methods[m];
    *reached = 1;
    table[0] = 0;
    if (!d->search) return EB_OK;
    char text[512], key[KEY_HEX + 1], dir[DIR_CAP], target[32], marker[PATH_MAX + 16];
    snprintf(target, sizeof target, "%.17g", x);
    snprintf(text, sizeof text, "table|%s|%s|%s|%s", EBCACHE_VERSION, rec_key, d->name, d->targeted ? target : "-");
    key_of(key, text);
    eb_status st = cell_dir(dir, g->cells, "table", key);
    if (st) return st;
    snprintf(table, PATH_MAX, "%s/table.txt", dir);
    snprintf(marker, sizeof marker, "%s/unreachable", dir);
    if (exists(marker)) *reached = 0;
    if (exists(table) || exists(marker)) return EB_OK;
    progress(g, "%s-%d: search %s%s%s", g->s->samplers[i].kind, g->s->samplers[i].steps, d->name,
             d->targeted ? " at " : "", d->targeted ? target : "");
    int rc = call(1, cmd_search, "search", "--method", d->search, "--record", rec, "--fit", fit, "--noise-scaling",
                  d->scaling, "--output", table, d->targeted ? "--target-speedup" : "--interval",
                  d->targeted ? target : "1", NULL);
    if (rc == 2 && eb_search_target_missed) { /* the target is out of the method's reach: remembered, reported */
        FILE *f = fopen(marker, "w");
        if (!f || fclose(f)) return eb_fail(EB_ERUNTIME, "%s: cannot write", marker);
        *reached = 0;
        return EB_OK;
    }
    return rc ? eb_fail(rc, "%s: search %s failed", rec, d->name) : EB_OK;
}

/* Samples of (sampler i, table or uncached, seed) into cells/sample-KEY/samples.h5. */
static eb_status sample_cell(grid *g, int i, const char *table, int seed, const char *what, char samples[PATH_MAX],
                             char key[KEY_HEX + 1]) {
    const spec *s = g->s;
    char table_sha[EB_SHA256_HEX] = "none", text[1024], dir[DIR_CAP], steps[16], n[16], seed_s[16], cfg[32],
         batch[16];
    eb_status st = table[0] ? eb_sha256_file(table, table_sha) : EB_OK;
    if (st) return st;
    snprintf(steps, sizeof steps, "%d", s->samplers[i].steps);
    snprintf(n, sizeof n, "%d", s->n);
    snprintf(seed_s, sizeof seed_s, "%d", seed);
    snprintf(cfg, sizeof cfg, "%.17g", s->cfg);
    snprintf(batch, sizeof batch, "%d", s->batch);
    snprintf(text, sizeof text, "sample|%s|%s|%s|%s|%s|%s|%s|%s|%s", EBCACHE_VERSION, g->model_sha,
             s->samplers[i].kind, steps, cfg, n, seed_s, batch, table_sha);
    key_of(key, text);
    if ((st = cell_dir(dir, g->cells, "sample", key))) return st;
    snprintf(samples, PATH_MAX, "%s/samples.h5", dir);
    if (exists(samples)) return EB_OK;
    progress(g, "%s-%d: sample %s, seed %d, %d images", s->samplers[i].kind, s->samplers[i].steps, what, seed, s->n);
    int rc = call(1, cmd_sample, "sample", "--model", g->model, "--sampler", s->samplers[i].kind, "--steps", steps,
                  "--cfg-scale", cfg, "--seed", seed_s, "--n", n, "--batch", batch, "--output", samples,
                  table[0] ? "--schedule" : NULL, table, NULL);
    return rc ? eb_fail(rc, "%s-%d: sampling %s, seed %d failed", s->samplers[i].kind, s->samplers[i].steps, what, seed)
              : EB_OK;
}

/* The wall time and FLOP speedup `sample` recorded in a samples file. */
static eb_status sample_costs(const char *samples, double *wall, double *flop_speedup) {
    eb_h5 *f;
    eb_status st = eb_h5_open(&f, samples);
    if (st) return st;
    *wall = attr_or(f, "wall_seconds", NAN);
    *flop_speedup = 1.0 / attr_or(f, "flop_fraction", 1.0);
    eb_h5_close(f);
    return EB_OK;
}

/* Evaluates samples (against the uncached reference unless it is one) and fills r. */
static eb_status eval_cell(grid *g, const char *samples, const char *key, const char *reference, const char *ref_key,
                           row *r) {
    char text[256], ekey[KEY_HEX + 1], out[PATH_MAX + 32], real_cache[PATH_MAX], n_real[16];
    snprintf(n_real, sizeof n_real, "%d", g->s->n_real);
    snprintf(text, sizeof text, "eval|%s|%s|%s|%s", EBCACHE_VERSION, key, reference ? ref_key : "-", n_real);
    key_of(ekey, text);
    const char *slash = strrchr(samples, '/');
    snprintf(out, sizeof out, "%.*s/eval-%s.h5", (int)(slash - samples), samples, ekey);
    snprintf(real_cache, sizeof real_cache, "%s/real-test-%s.h5", g->cells, n_real);
    int rc = 0;
    if (!exists(out)) {
        progress(g, "evaluate %s", samples);
        rc = call(1, cmd_eval, "eval", "--samples", samples, "--n-real", n_real, "--real-cache", real_cache, "--output",
                  out, reference ? "--reference" : NULL, reference, NULL);
        if (rc) return eb_fail(rc, "%s: evaluation failed", samples);
    }
    eb_h5 *f;
    eb_status st = sample_costs(samples, &r->wall, &r->flop_speedup);
    if (st || (st = eb_h5_open(&f, out))) return st;
    r->fd = attr_or(f, "fd", NAN), r->precision = attr_or(f, "precision", NAN), r->recall = attr_or(f, "recall", NAN);
    r->accuracy = attr_or(f, "accuracy", NAN), r->psnr = attr_or(f, "psnr", NAN), r->ssim = attr_or(f, "ssim", NAN);
    eb_h5_close(f);
    return EB_OK;
}

/* ------------------------------------------------------------------------ */
/* Reports                                                                   */

static const char *sampler_name(const spec *s, int i, char *buf) {
    sprintf(buf, "%s-%d", s->samplers[i].kind, s->samplers[i].steps);
    return buf;
}

/* Writes a report of the rows: body fills the file. */
typedef void report_body(FILE *f, const spec *s, const row *rows, int n_rows);

/* results/NAME.ext, written atomically (eb_out_open / eb_out_close). */
static eb_status write_report(const char *results, const char *ext, report_body *body, const spec *s,
                              const row *rows, int n_rows) {
    char name[96];
    snprintf(name, sizeof name, "%s.%s", s->name, ext);
    eb_out_file out;
    eb_status st = eb_out_open(&out, results, name);
    if (st) return st;
    body(out.f, s, rows, n_rows);
    return eb_out_close(&out);
}

/* One CSV line per (sampler, method, target, seed). */
static void put_csv(FILE *f, const spec *s, const row *rows, int n_rows) {
    char sn[32];
    fprintf(f, "sampler,method,target_speedup,seed,n,reached,flop_speedup,wall_s,measured_speedup,fd,precision,recall,"
               "accuracy,psnr,ssim\n");
    for (int k = 0; k < n_rows; k++) {
        const row *r = &rows[k];
        fprintf(f, "%s,%s,%.4g,%d,%d,%d,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g\n",
                sampler_name(s, r->sampler, sn), ablate_methods[r->method].name, r->target, r->seed, s->n, r->reached,
                r->flop_speedup, r->wall, r->measured, r->fd, r->precision, r->recall, r->accuracy, r->psnr, r->ssim);
    }
}

/* Mean and 95% half-width of field `off` over the rows of one (sampler, method, target). */
typedef struct {
    double mean, half;
    int n;
} ci_stat;

static int same_cell(const row *a, const row *b) {
    return a->sampler == b->sampler && a->method == b->method &&
           (a->target == b->target || (isnan(a->target) && isnan(b->target)));
}

static ci_stat stat_of(const row *rows, int n_rows, const row *cell, size_t off, const row *paired_with) {
    double v[MAX_LIST];
    int n = 0;
    for (int k = 0; k < n_rows; k++) {
        if (!same_cell(&rows[k], cell) || !rows[k].reached) continue;
        double x = *(const double *)((const char *)&rows[k] + off);
        if (paired_with) { /* the difference to the paired cell's value on the same seed */
            const row *p = NULL;
            for (int j = 0; j < n_rows && !p; j++)
                if (same_cell(&rows[j], paired_with) && rows[j].seed == rows[k].seed) p = &rows[j];
            if (!p || !p->reached) continue;
            x -= *(const double *)((const char *)p + off);
        }
        if (isfinite(x)) v[n++] = x;
    }
    ci_stat r = {NAN, NAN, n};
    if (n) eb_mean_ci95(&r.mean, &r.half, v, n);
    return r;
}

/* "mean ± half" as a table cell: the mean in fmt, the half-width in two digits
 * with `unit`; the ± part only over several seeds that differ beyond round-off. */
static void put_stat(FILE *f, ci_stat s, const char *fmt, const char *unit) {
    if (!s.n) {
        fprintf(f, " – |");
        return;
    }
    fputc(' ', f);
    fprintf(f, fmt, s.mean);
    fprintf(f, "%s", unit);
    if (s.n > 1 && s.half > 1e-9 * fabs(s.mean)) fprintf(f, " ± %.2g%s", s.half, unit); /* not round-off */
    fprintf(f, " |");
}

/* The distinct (sampler, method, target) cells in grid order: one representative row each. */
static int distinct_cells(const row *rows, int n_rows, const row **out) {
    int n = 0;
    for (int k = 0; k < n_rows; k++) {
        int seen = 0;
        for (int j = 0; j < n && !seen; j++) seen = same_cell(out[j], &rows[k]);
        if (!seen) out[n++] = &rows[k];
    }
    return n;
}

#define FIELD(name) offsetof(row, name)

static void write_claim(FILE *f, const spec *s, const row *rows, int n_rows, const row **cells, int n_cells, int i) {
    const row *none = NULL;
    for (int c = 0; c < n_cells; c++)
        if (cells[c]->sampler == i && !ablate_methods[cells[c]->method].search) none = cells[c];
    int eb = 0;
    while (eb < N_METHODS && strcmp(ablate_methods[eb].name, "eb-cache")) eb++;
    for (int c = 0; c < n_cells; c++) {
        const row *e = cells[c];
        if (e->sampler != i || e->method != eb) continue;
        if (!e->reached) {
            fprintf(f, "- EB-Cache at %.3g×: the search cannot reach this target.\n", e->target);
            continue;
        }
        ci_stat fd = stat_of(rows, n_rows, e, FIELD(fd), NULL), sp = stat_of(rows, n_rows, e, FIELD(measured), NULL);
        fprintf(f, "- EB-Cache at %.3g× FLOP target (measured %.2f× wall-clock), FD %.4g", e->target, sp.mean, fd.mean);
        if (none) {
            ci_stat d = stat_of(rows, n_rows, e, FIELD(fd), none);
            fprintf(f, "; ΔFD vs uncached %+.4g", d.mean);
            if (d.n > 1) fprintf(f, " ± %.3g (95%% CI over %d seeds): %s", d.half, d.n,
                                 d.mean + d.half < 0   ? "**below the uncached FD**"
                                 : d.mean - d.half > 0 ? "above the uncached FD"
                                                       : "not distinguishable from the uncached FD");
        }
        fprintf(f, ".\n");
        for (int b = 0; b < n_cells; b++) {
            const row *o = cells[b];
            if (o->sampler != i || o->target != e->target || o->method == eb || !ablate_methods[o->method].targeted ||
                !strcmp(ablate_methods[o->method].name, "eb-cache-table") || !strcmp(ablate_methods[o->method].name, "budget"))
                continue;
            if (!o->reached) {
                fprintf(f, "  - vs %s: unreachable at this target.\n", ablate_methods[o->method].name);
                continue;
            }
            ci_stat d = stat_of(rows, n_rows, e, FIELD(fd), o), osp = stat_of(rows, n_rows, o, FIELD(measured), NULL);
            fprintf(f, "  - vs %s (measured %.2f×): ΔFD %+.4g", ablate_methods[o->method].name, osp.mean, d.mean);
            if (d.n > 1) fprintf(f, " ± %.3g: %s", d.half, d.mean + d.half < 0 ? "EB-Cache better"
                                                     : d.mean - d.half > 0 ? "EB-Cache worse" : "not distinguishable");
            fprintf(f, ".\n");
        }
    }
    (void)s;
}

/* Per sampler: the table of means ± CIs and the EB-Cache claim; then the methods. */
static void put_markdown(FILE *f, const spec *s, const row *rows, int n_rows) {
    char sn[32];
    const row *cells[n_rows > 0 ? n_rows : 1];
    int n_cells = distinct_cells(rows, n_rows, cells);
    fprintf(f, "# Ablation `%s`\n\nSpec `%s`; %d samples per seed, seeds", s->name, s->path, s->n);
    for (int k = 0; k < s->n_seeds; k++) fprintf(f, "%s%d", k ? ", " : " ", s->seeds[k]);
    fprintf(f, "; cfg %g; FD against %d test images; calibration: %d samples (seed %d).\n"
               "Values are means ± the 95%% confidence half-width over seeds (Student's t); ΔFD is the paired "
               "difference to the uncached run of the same seed. FLOP speedup: uncached MACs / executed MACs; measured: "
               "uncached wall time / cached wall time, same seed.\n",
            s->cfg, s->n_real, s->calib_n, s->calib_seed);
    for (int i = 0; i < s->n_samplers; i++) {
        fprintf(f, "\n## %s\n\n| method | target | FLOP speedup | measured speedup | FD | ΔFD vs uncached | class acc. | "
                   "precision | recall | PSNR (dB) | SSIM |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
                sampler_name(s, i, sn));
        const row *none = NULL;
        for (int c = 0; c < n_cells; c++)
            if (cells[c]->sampler == i && !ablate_methods[cells[c]->method].search) none = cells[c];
        for (int c = 0; c < n_cells; c++) {
            const row *r = cells[c];
            if (r->sampler != i) continue;
            fprintf(f, "| %s |", ablate_methods[r->method].name);
            if (isnan(r->target)) fprintf(f, " – |");
            else fprintf(f, " %.3g× |", r->target);
            if (!r->reached) {
                fprintf(f, " unreachable | | | | | | | | |\n");
                continue;
            }
            put_stat(f, stat_of(rows, n_rows, r, FIELD(flop_speedup), NULL), "%.2f", "×");
            put_stat(f, stat_of(rows, n_rows, r, FIELD(measured), NULL), "%.2f", "×");
            put_stat(f, stat_of(rows, n_rows, r, FIELD(fd), NULL), "%.4g", "");
            if (none && r != none) put_stat(f, stat_of(rows, n_rows, r, FIELD(fd), none), "%+.3g", "");
            else fprintf(f, " – |");
            put_stat(f, stat_of(rows, n_rows, r, FIELD(accuracy), NULL), "%.3f", "");
            put_stat(f, stat_of(rows, n_rows, r, FIELD(precision), NULL), "%.3f", "");
            put_stat(f, stat_of(rows, n_rows, r, FIELD(recall), NULL), "%.3f", "");
            put_stat(f, stat_of(rows, n_rows, r, FIELD(psnr), NULL), "%.2f", "");
            put_stat(f, stat_of(rows, n_rows, r, FIELD(ssim), NULL), "%.4f", "");
            fputc('\n', f);
        }
        fprintf(f, "\n");
        write_claim(f, s, rows, n_rows, cells, n_cells, i);
    }
    fprintf(f, "\nMethods:\n\n");
    for (int m = 0; m < s->n_methods; m++)
        fprintf(f, "- `%s`: %s\n", ablate_methods[s->methods[m]].name, ablate_methods[s->methods[m]].about);
}

/* FD against measured speedup, one curve per method (plots/pareto.gp). */
static eb_status write_pareto(const char *scripts, const char *results, const spec *s, int i, const row *rows,
                              int n_rows) {
    char sn[32], name[128], png[PATH_MAX], qdat[2 * PATH_MAX], vars[4 * PATH_MAX], title[256], qtitle[512];
    sampler_name(s, i, sn);
    snprintf(name, sizeof name, "%s_pareto_%s.dat", s->name, sn);
    if (snprintf(png, sizeof png, "%s/%s_pareto_%s.png", results, s->name, sn) >= (int)sizeof png)
        return eb_fail(EB_EINPUT, "%s: path too long", results);
    eb_out_file out;
    eb_status st = eb_out_open(&out, results, name);
    if (st) return st;
    FILE *f = out.f;
    const row *cells[n_rows > 0 ? n_rows : 1];
    int n_cells = distinct_cells(rows, n_rows, cells), blocks = 0;
    fprintf(f, "# per method: measured speedup, FD, their 95%% half-widths, FLOP speedup\n");
    for (int m = 0; m < s->n_methods; m++) {
        int method = s->methods[m], any = 0;
        for (int c = 0; c < n_cells; c++) {
            const row *r = cells[c];
            if (r->sampler != i || r->method != method || !r->reached) continue;
            if (!any) fprintf(f, "%s\"%s\" \"\" \"\" \"\" \"\"\n", blocks ? "\n\n" : "", ablate_methods[method].name);
            any = 1;
            ci_stat sp = stat_of(rows, n_rows, r, FIELD(measured), NULL), fd = stat_of(rows, n_rows, r, FIELD(fd), NULL),
                 fl = stat_of(rows, n_rows, r, FIELD(flop_speedup), NULL);
            fprintf(f, "%.6g %.6g %.6g %.6g %.6g\n", sp.mean, fd.mean, isnan(sp.half) ? 0 : sp.half,
                    isnan(fd.half) ? 0 : fd.half, fl.mean);
        }
        blocks += any;
    }
    if ((st = eb_out_close(&out))) return st;
    snprintf(title, sizeof title, "%s: %s, cfg %g, %d samples × %d seeds", s->name, sn, s->cfg, s->n, s->n_seeds);
    eb_gp_quote(qdat, sizeof qdat, out.path);
    eb_gp_quote(qtitle, sizeof qtitle, title);
    if (snprintf(vars, sizeof vars, "dat='%s'; name='%s'; blocks=%d", qdat, qtitle, blocks) >= (int)sizeof vars)
        return eb_fail(EB_EINPUT, "%s: path too long", out.path);
    return eb_gp_render(scripts, "pareto", vars, png);
}

/* ------------------------------------------------------------------------ */
/* The command                                                               */

static eb_status run_grid(grid *g, row *rows, int *n_rows, const char *results) {
    const spec *s = g->s;
    eb_status st = EB_OK;
    for (int i = 0; !st && i < s->n_samplers; i++) {
        char rec[PATH_MAX], fit[PATH_MAX], rec_key[KEY_HEX + 1], sn[32];
        if ((st = calibrate(g, i, rec, fit, rec_key))) break;
        sampler_name(s, i, sn);
        for (int seed_i = 0; !st && seed_i < s->n_seeds; seed_i++) {
            int seed = s->seeds[seed_i];
            char ref[PATH_MAX], ref_key[KEY_HEX + 1];
            double base_wall, base_flops;
            if ((st = sample_cell(g, i, "", seed, "uncached", ref, ref_key)) ||
                (st = sample_costs(ref, &base_wall, &base_flops)))
                break;
            for (int mi = 0; !st && mi < s->n_methods; mi++) {
                int m = s->methods[mi];
                int n_targets = ablate_methods[m].targeted ? s->n_speedups : 1;
                for (int x = 0; !st && x < n_targets; x++) {
                    row *r = &rows[(*n_rows)++];
                    *r = (row){.sampler = i, .method = m, .seed = seed,
                               .target = ablate_methods[m].targeted ? s->speedups[x] : NAN};
                    char table[PATH_MAX], samples[PATH_MAX], key[KEY_HEX + 1], what[96];
                    if ((st = search_table(g, i, m, r->target, rec, fit, rec_key, table, &r->reached))) break;
                    if (ablate_methods[m].targeted) snprintf(what, sizeof what, "%s_%.3g", ablate_methods[m].name, r->target);
                    else snprintf(what, sizeof what, "%s", ablate_methods[m].name);
                    if (r->reached && table[0] && seed_i == 0) { /* a copy for users, under a readable name */
                        char copy[PATH_MAX + 128];
                        snprintf(copy, sizeof copy, "%s/%s_tables/%s_%s.schedule", results, s->name, sn, what);
                        if ((st = copy_file(table, copy))) break;
                    }
                    if (!r->reached) {
                        g->done++;
                        continue;
                    }
                    if (table[0]) st = sample_cell(g, i, table, seed, what, samples, key);
                    else memcpy(samples, ref, sizeof samples), memcpy(key, ref_key, sizeof key);
                    if (!st) st = eval_cell(g, samples, key, table[0] ? ref : NULL, ref_key, r);
                    g->done++;
                }
            }
            /* measured speedup: wall time of this seed's uncached run over the cell's */
            for (int k = 0; !st && k < *n_rows; k++)
                if (rows[k].sampler == i && rows[k].seed == seed)
                    rows[k].measured = base_wall / rows[k].wall;
        }
    }
    return st;
}

int cmd_ablate(int argc, char **argv) {
    eb_opt opts[] = {
        {"cells", "DIR", "where cells are computed and kept (default build/ablate-cells)", NULL},
        {"results", "DIR", "where NAME.csv, NAME.md, the Pareto plots and tables go (default results)", NULL},
        {"model", "PATH", "model instead of the spec's (default: the spec's, else the shipped model)", NULL},
        {"scripts", "DIR", "folder of the gnuplot scripts (default: $EBCACHE_PLOTS, else plots/ of the tree)", NULL},
        {"threads", "N", "threads (default: all cores)", NULL},
    };
    const int n = sizeof opts / sizeof opts[0];
    const char *usage = "usage: ebcache ablate SPEC [--cells DIR] [--results DIR] [--threads N]\n\n"
                        "Runs the grid of SPEC (docs/ablation.md): per sampler a calibration recording and fit, per\n"
                        "method and speed target a searched table, per seed samples and their evaluation. Writes\n"
                        "RESULTS/NAME.csv (one row per cell and seed), RESULTS/NAME.md (means ± 95% CI over seeds,\n"
                        "the EB-Cache claim), RESULTS/NAME_pareto_SAMPLER.png and the tables in RESULTS/NAME_tables/.\n"
                        "Finished cells are reused: an interrupted grid resumes.";
    if (argc < 2 || argv[1][0] == '-') {
        if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
            char *help[] = {(char *)CMD, (char *)"--help", NULL};
            return eb_args_parse(2, help, opts, n, usage) < 0 ? 0 : 2;
        }
        fprintf(stderr, "ebcache " CMD ": give the spec file first: ebcache ablate SPEC (see --help)\n");
        return 2;
    }
    char *args[argc];
    args[0] = (char *)CMD;
    memcpy(args + 1, argv + 2, (argc - 2) * sizeof *args);
    int rc = eb_args_parse(argc - 1, args, opts, n, usage);
    if (rc) return rc < 0 ? 0 : rc;
    if ((rc = eb_output_dir_check(CMD, eb_arg(opts, n, "results"), EB_INPUTS(argv[1], eb_arg(opts, n, "model"))))) return rc;
    threads_opt = eb_arg(opts, n, "threads");
    long threads;
    if (threads_opt && (rc = eb_arg_int(CMD, "threads", threads_opt, 1, 1024, &threads))) return rc;
    spec s;
    eb_status st = ablate_spec_read(&s, argv[1]);
    if (st) return eb_report(CMD, st);
    const char *model = eb_arg(opts, n, "model") ? eb_arg(opts, n, "model") : s.model[0] ? s.model : NULL;
    if (!model && !(model = eb_default_model_path())) return eb_report(CMD, EB_EINPUT);
    const char *cells = eb_arg(opts, n, "cells") ? eb_arg(opts, n, "cells") : "build/ablate-cells";
    const char *results = eb_arg(opts, n, "results") ? eb_arg(opts, n, "results") : "results";
    char scripts[PATH_MAX], tables[PATH_MAX];
    grid g = {.s = &s, .cells = cells, .model = model};
    int per_seed = 0;
    for (int m = 0; m < s.n_methods; m++) per_seed += ablate_methods[s.methods[m]].targeted ? s.n_speedups : 1;
    g.total = s.n_samplers * s.n_seeds * per_seed;
    row *rows = calloc((size_t)g.total, sizeof *rows);
    int n_rows = 0;
    if (!rows) return eb_report(CMD, eb_fail(EB_ERUNTIME, "out of memory"));
    st = eb_gp_find_scripts(eb_arg(opts, n, "scripts"), scripts, sizeof scripts);
    if (!st) st = eb_sha256_file(model, g.model_sha);
    if (!st) st = make_dirs(cells);
    if (!st && snprintf(tables, sizeof tables, "%s/%s_tables", results, s.name) >= (int)sizeof tables)
        st = eb_fail(EB_EINPUT, "%s: path too long", results);
    if (!st) st = make_dirs(tables);
    if (!st) st = run_grid(&g, rows, &n_rows, results);
    if (!st) st = write_report(results, "csv", put_csv, &s, rows, n_rows);
    if (!st) st = write_report(results, "md", put_markdown, &s, rows, n_rows);
    for (int i = 0; !st && i < s.n_samplers; i++) st = write_pareto(scripts, results, &s, i, rows, n_rows);
    if (!st) fprintf(stderr, "ablate: wrote %s/%s.csv, %s.md and %s_pareto_*.png\n", results, s.name, s.name, s.name);
    free(rows);
    return eb_report(CMD, st);
}
