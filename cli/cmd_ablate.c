/* cmd_ablate.c — `ebcache ablate SPEC`: a grid of samplers × caching methods ×
 * speed targets × seeds, each cell recorded, fitted, searched, sampled and
 * evaluated by the other commands (run in-process); then the cached and
 * uncached runs are timed interleaved in this process; then one CSV, a
 * Markdown table with paired confidence intervals over seeds under two judges
 * (classifier features, pixel principal components) and a Pareto plot per
 * sampler (docs/ablation.md). Cells are content-addressed by their inputs, so
 * an interrupted grid resumes and grids that share cells share the work; a
 * lock keeps two runs on one cells folder from computing the same cells. */
#include "cli/ablate_spec.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "cli/gnuplot.h"

#include "runtime/ebcache.h"
#include "runtime/h5io.h"
#include "analyze/metrics.h"
#include "analyze/sha256.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CMD "ablate"
#define KEY_HEX 16 /* cell names: the first 16 hex digits of a SHA-256 */
#define DIR_CAP (PATH_MAX - 64) /* a cell folder, leaving room for its file names */
#define TIMING_SLACK 0.05 /* timer noise allowed before a measured speedup below 1 or above the FLOP one is flagged */

/* One evaluated cell: a method at a target on one seed. */
typedef struct {
    int sampler, method, seed;
    double target; /* NaN for untargeted methods */
    int reached;   /* 0: the search could not reach the target */
    double flop_speedup, wall; /* wall: seconds the cell's `sample` took when it ran */
    double measured, cpu_measured, load; /* interleaved timing: wall and CPU speedups, load average */
    double fd, fd_mean, fd_cov;          /* classifier-feature FD and its two terms */
    double pixel_fd, pixel_fd_mean, pixel_fd_cov; /* the pixel-PCA judge */
    double precision, recall, accuracy, psnr, ssim;
} row;

/* ------------------------------------------------------------------------ */
/* Running the other commands                                                */

static const char *threads_opt; /* --threads, passed on */

enum { CALL_THREADED = 1, CALL_QUIET = 2 };

/* Runs command `fn` with the NULL-terminated arguments (and --threads with
 * CALL_THREADED), its stdout sent to stderr (both to /dev/null with
 * CALL_QUIET); returns its exit status. An optional last option is passed as
 * (cond ? "--name" : NULL, value). */
static int call(int flags, int (*fn)(int, char **), const char *name, ...) {
    char *argv[64];
    int argc = 0;
    argv[argc++] = (char *)name;
    va_list ap;
    va_start(ap, name);
    for (const char *a; (a = va_arg(ap, const char *)) && argc < 60;) argv[argc++] = (char *)a;
    va_end(ap);
    if ((flags & CALL_THREADED) && threads_opt) {
        argv[argc++] = "--threads";
        argv[argc++] = (char *)threads_opt;
    }
    argv[argc] = NULL;
    /* the commands' reports go to stderr with their progress: stdout is ablate's */
    fflush(stdout), fflush(stderr);
    int saved = dup(1), saved_err = (flags & CALL_QUIET) ? dup(2) : -1;
    int null = (flags & CALL_QUIET) ? open("/dev/null", O_WRONLY) : -1;
    if (null >= 0) dup2(null, 1), dup2(null, 2), close(null);
    else if (saved >= 0) dup2(2, 1);
    int rc = fn(argc, argv);
    fflush(stdout), fflush(stderr);
    if (saved_err >= 0) dup2(saved_err, 2), close(saved_err);
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
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", to, (int)getpid());
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

/* Takes CELLS/lock (flock, released when the process ends): a second ablate
 * on the same cells folder waits for the first, then reuses its cells
 * instead of computing them a second time alongside it. */
static eb_status lock_cells(const char *cells) {
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/lock", cells) >= (int)sizeof path)
        return eb_fail(EB_EINPUT, "%s: path too long", cells);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666); /* kept open: the lock lives as long as this process */
    if (fd < 0) return eb_fail(EB_ERUNTIME, "%s: cannot open: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) return EB_OK;
    if (errno != EWOULDBLOCK) return eb_fail(EB_ERUNTIME, "%s: cannot lock: %s", path, strerror(errno));
    fprintf(stderr, "ablate: another ablate is running on %s; waiting for it to finish, then reusing its cells\n",
            cells);
    return flock(fd, LOCK_EX) ? eb_fail(EB_ERUNTIME, "%s: cannot lock: %s", path, strerror(errno)) : EB_OK;
}

/* Whether a file in the cells is debris of a killed run: a temporary output
 * ("NAME.tmp.PID", renamed onto NAME when complete) or a timing run's samples. */
static int is_debris(const char *name) { return strstr(name, ".tmp.") || !strcmp(name, "timing.h5"); }

/* Removes the debris in `dir` and, `depth` levels down, in its subfolders (the
 * cells folder and its cell folders: depth 1); under the lock no other run is
 * writing there. Returns how many files went. */
static int remove_debris(const char *dir, int depth) {
    int removed = 0;
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        char path[PATH_MAX];
        struct stat st;
        if (e->d_name[0] == '.' || snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path) continue;
        if (is_debris(e->d_name)) removed += unlink(path) == 0;
        else if (depth > 0 && stat(path, &st) == 0 && S_ISDIR(st.st_mode)) removed += remove_debris(path, depth - 1);
    }
    if (d) closedir(d);
    return removed;
}

static double attr_or(eb_h5 *f, const char *name, double fallback) {
    double v;
    return eb_h5_has_attr(f, NULL, name) && !eb_h5_attr_f64(f, NULL, name, &v) ? v : fallback;
}

/* ------------------------------------------------------------------------ */
/* The grid                                                                  */

/* A searched table of the grid, timed against the uncached run. */
typedef struct {
    int sampler, method;
    double target, flop_speedup;
    char table[PATH_MAX];
    double wall, cpu, wall_lo, wall_hi; /* medians of the paired ratios; the range of the wall ones */
} timed_table;

/* What the timing of one sampler saw. */
typedef struct {
    double load_before, load_after; /* 1-minute load averages */
    double uncached_wall;           /* median seconds of one uncached timing run */
} timing_info;

typedef struct {
    const spec *s;
    const char *cells, *model;
    char model_sha[EB_SHA256_HEX];
    int done, total; /* rows finished, rows in all */
    int reused;      /* rows finished from cells that were already there */
    int computed;    /* the current row computed something */
    double start;    /* monotonic seconds when the grid started */
    timed_table *timed;
    int n_timed;
    timing_info timing[MAX_LIST]; /* per sampler */
    int cores;
} grid;

static double clock_s(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return (double)t.tv_sec + 1e-9 * t.tv_nsec;
}

static double load_now(void) {
    double load;
    return getloadavg(&load, 1) == 1 ? load : NAN;
}

/* "ablate [done/total] MESSAGE (ETA …)": the ETA extrapolates the rows this
 * run computed (rows found finished cost nothing). Marks the row as computing. */
static void progress(grid *g, const char *fmt, ...) {
    char eta[48] = "";
    int worked = g->done - g->reused;
    if (worked > 0) eb_eta_text(eta, sizeof eta, (clock_s(CLOCK_MONOTONIC) - g->start) / worked * (g->total - g->done));
    g->computed = 1;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ablate [%d/%d] ", g->done, g->total);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "%s\n", eta);
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
        progress(g, "%s-%d: calibration recording, %d %s", s->samplers[i].kind, s->samplers[i].steps, s->calib_n,
                 eb_plural(s->calib_n, "sample", "samples"));
        rc = call(CALL_THREADED, cmd_record, "record", "--model", g->model, "--sampler", s->samplers[i].kind, "--steps", steps,
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
    const eb_method *d = &eb_methods[m];
    *reached = 1;
    table[0] = 0;
    if (!d->generate) return EB_OK;
    char text[512], key[KEY_HEX + 1], dir[DIR_CAP], target[32], marker[PATH_MAX + 16];
    snprintf(target, sizeof target, "%.17g", x);
    snprintf(text, sizeof text, "table|%s|%s|%s|%s", EBCACHE_VERSION, rec_key, d->name, d->sweeps ? target : "-");
    key_of(key, text);
    eb_status st = cell_dir(dir, g->cells, "table", key);
    if (st) return st;
    snprintf(table, PATH_MAX, "%s/table.txt", dir);
    snprintf(marker, sizeof marker, "%s/unreachable", dir);
    if (exists(marker)) *reached = 0;
    if (exists(table) || exists(marker)) return EB_OK;
    progress(g, "%s-%d: search %s%s%s", g->s->samplers[i].kind, g->s->samplers[i].steps, d->name,
             d->sweeps ? " at " : "", d->sweeps ? target : "");
    int rc = call(CALL_THREADED, cmd_search, "search", "--method", d->name, "--record", rec, "--fit", fit, "--output",
                  table, d->sweeps ? "--target-speedup" : NULL, target, NULL);
    if (rc == 2 && cmd_search_target_missed()) { /* the target is out of the method's reach: remembered, reported */
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
    progress(g, "%s-%d: sample %s, seed %d, %d %s", s->samplers[i].kind, s->samplers[i].steps, what, seed, s->n,
             eb_plural(s->n, "image", "images"));
    int rc = call(CALL_THREADED, cmd_sample, "sample", "--model", g->model, "--sampler", s->samplers[i].kind, "--steps", steps,
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
    /* "judges": files from before the FD split and the pixel judge are recomputed */
    snprintf(text, sizeof text, "eval-judges|%s|%s|%s|%s", EBCACHE_VERSION, key, reference ? ref_key : "-", n_real);
    key_of(ekey, text);
    const char *slash = strrchr(samples, '/');
    snprintf(out, sizeof out, "%.*s/eval-%s.h5", (int)(slash - samples), samples, ekey);
    snprintf(real_cache, sizeof real_cache, "%s/real-test-%s.h5", g->cells, n_real);
    int rc = 0;
    if (!exists(out)) {
        progress(g, "evaluate %s", samples);
        rc = call(CALL_THREADED, cmd_eval, "eval", "--samples", samples, "--n-real", n_real, "--real-cache", real_cache, "--output",
                  out, reference ? "--reference" : NULL, reference, NULL);
        if (rc) return eb_fail(rc, "%s: evaluation failed", samples);
    }
    eb_h5 *f;
    eb_status st = sample_costs(samples, &r->wall, &r->flop_speedup);
    if (st || (st = eb_h5_open(&f, out))) return st;
    r->fd = attr_or(f, "fd", NAN), r->fd_mean = attr_or(f, "fd_mean_term", NAN), r->fd_cov = attr_or(f, "fd_cov_term", NAN);
    r->pixel_fd = attr_or(f, "pixel_fd", NAN), r->pixel_fd_mean = attr_or(f, "pixel_fd_mean_term", NAN);
    r->pixel_fd_cov = attr_or(f, "pixel_fd_cov_term", NAN);
    r->precision = attr_or(f, "precision", NAN), r->recall = attr_or(f, "recall", NAN);
    r->accuracy = attr_or(f, "accuracy", NAN), r->psnr = attr_or(f, "psnr", NAN), r->ssim = attr_or(f, "ssim", NAN);
    eb_h5_close(f);
    return EB_OK;
}

/* ------------------------------------------------------------------------ */
/* Timing                                                                    */

/* Wall and process CPU seconds of one `sample` run of spec.timing_n images of
 * the first seed (uncached when table is ""), its output discarded. */
static eb_status time_sample(grid *g, int i, const char *table, double *wall, double *cpu) {
    const spec *s = g->s;
    char steps[16], n[16], seed[16], cfg[32], batch[16], out[PATH_MAX];
    snprintf(steps, sizeof steps, "%d", s->samplers[i].steps);
    snprintf(n, sizeof n, "%d", s->timing_n);
    snprintf(seed, sizeof seed, "%d", s->seeds[0]);
    snprintf(cfg, sizeof cfg, "%.17g", s->cfg);
    snprintf(batch, sizeof batch, "%d", s->batch < s->timing_n ? s->batch : s->timing_n);
    if (snprintf(out, sizeof out, "%s/timing.h5", g->cells) >= (int)sizeof out)
        return eb_fail(EB_EINPUT, "%s: path too long", g->cells);
    double w0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    int rc = call(CALL_THREADED | CALL_QUIET, cmd_sample, "sample", "--model", g->model, "--sampler",
                  s->samplers[i].kind, "--steps", steps, "--cfg-scale", cfg, "--seed", seed, "--n", n, "--batch", batch,
                  "--output", out, table[0] ? "--schedule" : NULL, table, NULL);
    *wall = clock_s(CLOCK_MONOTONIC) - w0;
    *cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
    unlink(out);
    return rc ? eb_fail(rc, "%s-%d: the timing run of %s failed: %s", s->samplers[i].kind, s->samplers[i].steps,
                        table[0] ? table : "the uncached sampler", eb_last_error())
              : EB_OK;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of v (n ≥ 1), which gets sorted. */
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Times sampler i's tables against the uncached sampler in one process,
 * interleaved: uncached runs U_0 … U_R bracket the cached runs of round r
 * (in reverse order every other round, so no table always follows the
 * uncached run), and a table's paired ratio in round r is
 * mean(U_r, U_{r+1}) / its run; its speedup is the median over rounds, for
 * wall and for process CPU time. Slow drift of the machine's load cancels in
 * each pair; the load average before and after is kept. */
static eb_status time_sampler(grid *g, int i) {
    const spec *s = g->s;
    const int R = s->timing_rounds;
    int first = 0, T = 0;
    while (first < g->n_timed && g->timed[first].sampler != i) first++;
    while (first + T < g->n_timed && g->timed[first + T].sampler == i) T++;
    timing_info *info = &g->timing[i];
    info->load_before = load_now();
    double *u_wall = malloc((R + 1) * sizeof(double)), *u_cpu = malloc((R + 1) * sizeof(double));
    double *c_wall = malloc(((size_t)T * R + 1) * sizeof(double)), *c_cpu = malloc(((size_t)T * R + 1) * sizeof(double));
    eb_status st = u_wall && u_cpu && c_wall && c_cpu ? EB_OK : eb_fail(EB_ERUNTIME, "out of memory");
    double t0 = clock_s(CLOCK_MONOTONIC);
    if (!st && T) st = time_sample(g, i, "", &u_wall[0], &u_cpu[0]);
    for (int r = 0; !st && T && r < R; r++) {
        char eta[48] = "";
        if (r) eb_eta_text(eta, sizeof eta, (clock_s(CLOCK_MONOTONIC) - t0) / r * (R - r));
        fprintf(stderr, "ablate timing %s-%d: round %d/%d, %d %s and the uncached run, %d %s each%s\n",
                s->samplers[i].kind, s->samplers[i].steps, r + 1, R, T, eb_plural(T, "table", "tables"), s->timing_n,
                eb_plural(s->timing_n, "image", "images"), eta);
        for (int k = 0; !st && k < T; k++) {
            int t = r % 2 ? T - 1 - k : k;
            st = time_sample(g, i, g->timed[first + t].table, &c_wall[(size_t)t * R + r], &c_cpu[(size_t)t * R + r]);
        }
        if (!st) st = time_sample(g, i, "", &u_wall[r + 1], &u_cpu[r + 1]);
    }
    for (int t = 0; !st && t < T; t++) {
        double wall[R], cpu[R];
        for (int r = 0; r < R; r++) {
            wall[r] = 0.5 * (u_wall[r] + u_wall[r + 1]) / c_wall[(size_t)t * R + r];
            cpu[r] = 0.5 * (u_cpu[r] + u_cpu[r + 1]) / c_cpu[(size_t)t * R + r];
        }
        timed_table *e = &g->timed[first + t];
        e->wall = median(wall, R), e->cpu = median(cpu, R), e->wall_lo = wall[0], e->wall_hi = wall[R - 1];
    }
    info->uncached_wall = !st && T ? median(u_wall, R + 1) : NAN;
    info->load_after = load_now();
    free(u_wall), free(u_cpu), free(c_wall), free(c_cpu);
    return st;
}

/* The timing of row r's table, or NULL (uncached, unreachable). */
static const timed_table *timed_of(const grid *g, const row *r) {
    for (int t = 0; t < g->n_timed; t++) {
        const timed_table *e = &g->timed[t];
        if (e->sampler == r->sampler && e->method == r->method &&
            (e->target == r->target || (isnan(e->target) && isnan(r->target))))
            return e;
    }
    return NULL;
}

/* A warning about e's measured speedup into buf (returns 0 and leaves buf
 * alone when there is none): below 1, or above its FLOP speedup, beyond
 * TIMING_SLACK. */
static int timing_warning(char *buf, size_t cap, const grid *g, const timed_table *e) {
    const spec *s = g->s;
    const timing_info *info = &g->timing[e->sampler];
    const char *what = e->wall < 1.0 - TIMING_SLACK ? "below 1, slower than uncached"
                     : e->wall > e->flop_speedup * (1.0 + TIMING_SLACK) ? "above the FLOP speedup"
                                                                          : NULL;
    if (!what) return 0;
    char target[32] = "";
    if (!isnan(e->target)) snprintf(target, sizeof target, " at %.3g×", e->target);
    snprintf(buf, cap, "%s-%d %s%s: measured %.2f× wall-clock (%.2f× CPU; rounds %.2f–%.2f×) against a FLOP "
                       "speedup of %.2f×: %s; load average %.2f → %.2f on %d cores, so this speedup is not to be trusted",
             s->samplers[e->sampler].kind, s->samplers[e->sampler].steps, eb_methods[e->method].name, target,
             e->wall, e->cpu, e->wall_lo, e->wall_hi, e->flop_speedup, what, info->load_before, info->load_after,
             g->cores);
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Reports                                                                   */

static const char *sampler_name(const spec *s, int i, char *buf) {
    sprintf(buf, "%s-%d", s->samplers[i].kind, s->samplers[i].steps);
    return buf;
}

/* Writes a report of the rows: body fills the file. */
typedef void report_body(FILE *f, const grid *g, const row *rows, int n_rows);

/* results/NAME.ext, written atomically (eb_out_open / eb_out_close). */
static eb_status write_report(const char *results, const char *ext, report_body *body, const grid *g,
                              const row *rows, int n_rows) {
    char name[96];
    snprintf(name, sizeof name, "%s.%s", g->s->name, ext);
    eb_out_file out;
    eb_status st = eb_out_open(&out, results, name);
    if (st) return st;
    body(out.f, g, rows, n_rows);
    return eb_out_close(&out);
}

/* One CSV line per (sampler, method, target, seed). */
static void put_csv(FILE *f, const grid *g, const row *rows, int n_rows) {
    const spec *s = g->s;
    char sn[32];
    fprintf(f, "sampler,method,target_speedup,seed,n,reached,flop_speedup,wall_s,measured_speedup,cpu_speedup,load,"
               "fd,fd_mean_term,fd_cov_term,pixel_fd,pixel_fd_mean_term,pixel_fd_cov_term,precision,recall,accuracy,"
               "psnr,ssim\n");
    for (int k = 0; k < n_rows; k++) {
        const row *r = &rows[k];
        fprintf(f, "%s,%s,%.4g,%d,%d,%d", sampler_name(s, r->sampler, sn), eb_methods[r->method].name, r->target,
                r->seed, s->n, r->reached);
        const double v[] = {r->flop_speedup, r->wall,          r->measured,      r->cpu_measured, r->load,
                            r->fd,           r->fd_mean,       r->fd_cov,        r->pixel_fd,     r->pixel_fd_mean,
                            r->pixel_fd_cov, r->precision,     r->recall,        r->accuracy,     r->psnr,
                            r->ssim};
        for (size_t j = 0; j < sizeof v / sizeof v[0]; j++) fprintf(f, ",%.6g", v[j]);
        fputc('\n', f);
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

/* " ± half" when s has an interval beyond round-off, in two digits with `unit`. */
static void put_half(FILE *f, ci_stat s, const char *unit) {
    if (s.n > 1 && s.half > 1e-9 * fabs(s.mean)) fprintf(f, " ± %.2g%s", s.half, unit);
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
    put_half(f, s, unit);
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

/* Where a paired interval lies: -1 below 0, +1 above, 0 containing it; 2 without an interval. */
static int side_of(ci_stat d) {
    if (d.n < 2 || !isfinite(d.half)) return 2;
    return d.mean + d.half < 0 ? -1 : d.mean - d.half > 0 ? 1 : 0;
}

static const char *side_word(int side) { return side < 0 ? "lower" : side > 0 ? "higher" : "not distinguishable"; }

/* The paired differences of cell a to cell b under both judges (FD of the
 * classifier's features with its two terms, FD of the pixels' principal
 * components) and in class accuracy, then the claim rule: a claim only when
 * both judges' intervals lie on the same side of 0, and a sentence saying
 * so when they do not. */
static void compare_cells(FILE *f, const row *rows, int n_rows, const row *a, const char *a_name, const row *b,
                          const char *b_name) {
    ci_stat fd = stat_of(rows, n_rows, a, FIELD(fd), b), fm = stat_of(rows, n_rows, a, FIELD(fd_mean), b),
            fc = stat_of(rows, n_rows, a, FIELD(fd_cov), b), px = stat_of(rows, n_rows, a, FIELD(pixel_fd), b),
            pm = stat_of(rows, n_rows, a, FIELD(pixel_fd_mean), b), acc = stat_of(rows, n_rows, a, FIELD(accuracy), b);
    fprintf(f, "ΔFD %+.3g", fd.mean);
    put_half(f, fd, "");
    fprintf(f, " (mean term %+.3g, covariance term %+.3g); Δpixel FD %+.3g", fm.mean, fc.mean, px.mean);
    put_half(f, px, "");
    fprintf(f, " (mean term %+.3g)", pm.mean);
    if (acc.n) {
        fprintf(f, "; Δclass accuracy %+.3f", acc.mean);
        put_half(f, acc, "");
    }
    fprintf(f, " (%d seed%s): ", fd.n, fd.n == 1 ? "" : "s");
    int judge1 = side_of(fd), judge2 = side_of(px), acc_side = side_of(acc);
    if (judge1 == 2 || judge2 == 2) fprintf(f, "no interval with one seed, so no claim");
    else if (judge1 == judge2 && judge1 != 0)
        fprintf(f, "**both judges agree: %s has a %s FD than %s**", a_name, side_word(judge1), b_name);
    else if (judge1 == 0 && judge2 == 0) fprintf(f, "neither judge separates them (both intervals contain 0): no claim");
    else
        fprintf(f, "the judges do not agree (classifier features: %s, pixels: %s), so no claim", side_word(judge1),
                side_word(judge2));
    if (acc_side == -1 || acc_side == 1) fprintf(f, "; class accuracy is %s", side_word(acc_side));
    fprintf(f, ".\n");
}

static int method_index(const char *name) {
    int m = 0;
    while (m < EB_NMETHODS && strcmp(eb_methods[m].name, name)) m++;
    return m;
}

/* The cell of method m at target x (NaN: untargeted) on sampler i, or NULL. */
static const row *find_cell(const row **cells, int n_cells, int i, int m, double x) {
    for (int c = 0; c < n_cells; c++)
        if (cells[c]->sampler == i && cells[c]->method == m &&
            (cells[c]->target == x || (isnan(cells[c]->target) && isnan(x))))
            return cells[c];
    return NULL;
}

/* The claims of sampler i: EB-Cache against the uncached run, against its
 * table without the noise scaling and against the baselines at each target;
 * noise scaling alone against the uncached run. */
static void write_claim(FILE *f, const row *rows, int n_rows, const row **cells, int n_cells, int i) {
    const int eb = method_index("eb-cache"), eb_table = method_index("eb-cache-table"),
              scaling = method_index("noise-scaling"), budget = method_index("budget");
    const row *none = find_cell(cells, n_cells, i, method_index("none"), NAN);
    for (int c = 0; c < n_cells; c++) {
        const row *e = cells[c];
        if (e->sampler != i || e->method != eb) continue;
        if (!e->reached) {
            fprintf(f, "- EB-Cache at %.3g×: the search cannot reach this target.\n", e->target);
            continue;
        }
        ci_stat fd = stat_of(rows, n_rows, e, FIELD(fd), NULL), px = stat_of(rows, n_rows, e, FIELD(pixel_fd), NULL);
        fprintf(f, "- EB-Cache at %.3g× FLOP target (measured %.2f× wall-clock, %.2f× CPU): FD %.4g, pixel FD %.4g.\n",
                e->target, e->measured, e->cpu_measured, fd.mean, px.mean);
        if (none) {
            fprintf(f, "  - vs uncached: ");
            compare_cells(f, rows, n_rows, e, "EB-Cache", none, "uncached");
        }
        for (int b = 0; b < n_cells; b++) {
            const row *o = cells[b];
            if (o->sampler != i || o->target != e->target || o->method == eb || o->method == budget ||
                !eb_methods[o->method].sweeps)
                continue;
            const char *name = eb_methods[o->method].name;
            if (!o->reached) {
                fprintf(f, "  - vs %s: unreachable at this target.\n", name);
                continue;
            }
            if (o->method == eb_table) fprintf(f, "  - vs eb-cache-table (what the noise scaling adds): ");
            else fprintf(f, "  - vs %s (measured %.2f×): ", name, o->measured);
            compare_cells(f, rows, n_rows, e, "EB-Cache", o, name);
        }
    }
    const row *ns = find_cell(cells, n_cells, i, scaling, NAN);
    if (ns && none) {
        fprintf(f, "- Noise scaling alone vs uncached: ");
        compare_cells(f, rows, n_rows, ns, "noise scaling", none, "uncached");
    }
}

/* How the speedups were timed on sampler i, and the warnings. */
static void put_timing(FILE *f, const grid *g, int i) {
    const spec *s = g->s;
    const timing_info *info = &g->timing[i];
    fprintf(f, "\nTiming: %d %s in this process; in each, one `sample` run of %d %s (seed %d) per table between "
               "two uncached runs (the tables in reverse order every other round). A table's measured speedup is "
               "the median over rounds of mean(uncached run before, after) / its run, for wall-clock and for the "
               "process's CPU time (all threads). One uncached run: %.3g s. Load average (1 min) %.2f before, %.2f "
               "after, on %d cores. ⚠ marks a speedup below 1 or above the FLOP speedup (beyond %.0f%%).\n",
            s->timing_rounds, eb_plural(s->timing_rounds, "round", "rounds"), s->timing_n,
            eb_plural(s->timing_n, "image", "images"), s->seeds[0], info->uncached_wall, info->load_before, info->load_after,
            g->cores, 100 * TIMING_SLACK);
    char warning[512];
    for (int t = 0; t < g->n_timed; t++)
        if (g->timed[t].sampler == i && timing_warning(warning, sizeof warning, g, &g->timed[t]))
            fprintf(f, "\n**Warning:** %s.\n", warning);
}

/* Per sampler: the table of means ± CIs, the timing, the claims; then the methods. */
static void put_markdown(FILE *f, const grid *g, const row *rows, int n_rows) {
    const spec *s = g->s;
    char sn[32];
    const row *cells[n_rows > 0 ? n_rows : 1];
    int n_cells = distinct_cells(rows, n_rows, cells);
    fprintf(f, "# Ablation `%s`\n\nSpec `%s`; %d %s per seed, seeds", s->name, s->path, s->n,
            eb_plural(s->n, "sample", "samples"));
    for (int k = 0; k < s->n_seeds; k++) fprintf(f, "%s%d", k ? ", " : " ", s->seeds[k]);
    fprintf(f, "; cfg %g; FD against %d test images; calibration: %d samples (seed %d).\n"
               "Values are means ± the 95%% confidence half-width over seeds (Student's t); every Δ is the paired "
               "difference to the uncached run of the same seed. Two judges: FD of the classifier's features (split "
               "into its mean term ‖μ1 − μ2‖² + covariance term) and pixel FD, the same distance in the top "
               "principal components of the real test images' pixels (docs/metrics.md). A claim is written only "
               "when both judges' intervals lie on the same side of 0. FLOP speedup: uncached MACs / executed MACs; "
               "measured: interleaved timing (below each table).\n",
            s->cfg, s->n_real, s->calib_n, s->calib_seed);
    for (int i = 0; i < s->n_samplers; i++) {
        fprintf(f, "\n## %s\n\n| method | target | FLOP speedup | measured wall (CPU) | FD (mean + cov. term) | ΔFD | "
                   "pixel FD | Δpixel FD | class acc. | Δclass acc. | precision | recall | PSNR (dB) | SSIM |\n"
                   "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
                sampler_name(s, i, sn));
        const row *none = find_cell(cells, n_cells, i, method_index("none"), NAN);
        for (int c = 0; c < n_cells; c++) {
            const row *r = cells[c];
            if (r->sampler != i) continue;
            fprintf(f, "| %s |", eb_methods[r->method].name);
            if (isnan(r->target)) fprintf(f, " – |");
            else fprintf(f, " %.3g× |", r->target);
            if (!r->reached) {
                fprintf(f, " unreachable | | | | | | | | | | | |\n");
                continue;
            }
            put_stat(f, stat_of(rows, n_rows, r, FIELD(flop_speedup), NULL), "%.2f", "×");
            char warning[512];
            const timed_table *e = timed_of(g, r);
            fprintf(f, " %.2f× (%.2f×)%s |", r->measured, r->cpu_measured,
                    e && timing_warning(warning, sizeof warning, g, e) ? " ⚠" : "");
            ci_stat fd = stat_of(rows, n_rows, r, FIELD(fd), NULL);
            if (fd.n) {
                fprintf(f, " %.4g", fd.mean);
                put_half(f, fd, "");
                fprintf(f, " (%.3g + %.3g) |", stat_of(rows, n_rows, r, FIELD(fd_mean), NULL).mean,
                        stat_of(rows, n_rows, r, FIELD(fd_cov), NULL).mean);
            } else fprintf(f, " – |");
            const int paired = none && r != none;
            if (paired) put_stat(f, stat_of(rows, n_rows, r, FIELD(fd), none), "%+.3g", "");
            else fprintf(f, " – |");
            put_stat(f, stat_of(rows, n_rows, r, FIELD(pixel_fd), NULL), "%.4g", "");
            if (paired) put_stat(f, stat_of(rows, n_rows, r, FIELD(pixel_fd), none), "%+.3g", "");
            else fprintf(f, " – |");
            put_stat(f, stat_of(rows, n_rows, r, FIELD(accuracy), NULL), "%.3f", "");
            if (paired) put_stat(f, stat_of(rows, n_rows, r, FIELD(accuracy), none), "%+.3f", "");
            else fprintf(f, " – |");
            put_stat(f, stat_of(rows, n_rows, r, FIELD(precision), NULL), "%.3f", "");
            put_stat(f, stat_of(rows, n_rows, r, FIELD(recall), NULL), "%.3f", "");
            put_stat(f, stat_of(rows, n_rows, r, FIELD(psnr), NULL), "%.2f", "");
            put_stat(f, stat_of(rows, n_rows, r, FIELD(ssim), NULL), "%.4f", "");
            fputc('\n', f);
        }
        put_timing(f, g, i);
        fprintf(f, "\n");
        write_claim(f, rows, n_rows, cells, n_cells, i);
    }
    fprintf(f, "\nMethods:\n\n");
    for (int m = 0; m < s->n_methods; m++)
        fprintf(f, "- `%s`: %s\n", eb_methods[s->methods[m]].name, eb_methods[s->methods[m]].about);
}

/* Paired ΔFD (both judges) against FLOP speedup and FD against measured
 * speedup, one curve per method (plots/pareto.gp). */
static eb_status write_pareto(const char *scripts, const char *results, const grid *g, int i, const row *rows,
                              int n_rows) {
    const spec *s = g->s;
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
    const row *none = find_cell(cells, n_cells, i, method_index("none"), NAN);
    fprintf(f, "# per method: measured speedup, FD, FD half-width, FLOP speedup, paired ΔFD and its half-width, "
               "paired Δpixel FD and its half-width (95%%, over seeds; NaN without an uncached run)\n");
    for (int m = 0; m < s->n_methods; m++) {
        int method = s->methods[m], any = 0;
        for (int c = 0; c < n_cells; c++) {
            const row *r = cells[c];
            if (r->sampler != i || r->method != method || !r->reached) continue;
            if (!any) fprintf(f, "%s\"%s\" \"\" \"\" \"\" \"\" \"\" \"\" \"\"\n", blocks ? "\n\n" : "",
                              eb_methods[method].name);
            any = 1;
            ci_stat fd = stat_of(rows, n_rows, r, FIELD(fd), NULL), fl = stat_of(rows, n_rows, r, FIELD(flop_speedup), NULL);
            ci_stat d = none ? stat_of(rows, n_rows, r, FIELD(fd), none) : (ci_stat){NAN, NAN, 0};
            ci_stat p = none ? stat_of(rows, n_rows, r, FIELD(pixel_fd), none) : (ci_stat){NAN, NAN, 0};
            const double v[] = {r->measured, fd.mean, fd.half, fl.mean, d.mean, d.half, p.mean, p.half};
            for (size_t j = 0; j < sizeof v / sizeof v[0]; j++) /* no interval (one seed): a bar of 0 */
                fprintf(f, "%s%.6g", j ? " " : "", isnan(v[j]) && (j == 2 || j == 5 || j == 7) ? 0 : v[j]);
            fputc('\n', f);
        }
        blocks += any;
    }
    if ((st = eb_out_close(&out))) return st;
    snprintf(title, sizeof title, "%s: %s, cfg %g, %d %s × %d %s", s->name, sn, s->cfg, s->n,
             eb_plural(s->n, "sample", "samples"), s->n_seeds, eb_plural(s->n_seeds, "seed", "seeds"));
    eb_gp_quote(qdat, sizeof qdat, out.path);
    eb_gp_quote(qtitle, sizeof qtitle, title);
    if (snprintf(vars, sizeof vars, "dat='%s'; name='%s'; blocks=%d", qdat, qtitle, blocks) >= (int)sizeof vars)
        return eb_fail(EB_EINPUT, "%s: path too long", out.path);
    return eb_gp_render(scripts, "pareto", vars, png);
}

/* ------------------------------------------------------------------------ */
/* The command                                                               */

/* A row is finished; it was reused when nothing was computed since the last one. */
static void row_done(grid *g) {
    g->reused += !g->computed;
    g->computed = 0;
    g->done++;
}

/* The interleaved speedups of sampler i into its rows (1 for the uncached
 * rows), with the load; each suspicious speedup is warned about on stderr. */
static void put_speedups(const grid *g, int i, row *rows, int n_rows) {
    const timing_info *info = &g->timing[i];
    for (int k = 0; k < n_rows; k++) {
        row *r = &rows[k];
        if (r->sampler != i || !r->reached) continue;
        r->load = fmax(info->load_before, info->load_after);
        const timed_table *e = timed_of(g, r);
        if (!eb_methods[r->method].generate) r->measured = r->cpu_measured = 1.0;
        else if (e) r->measured = e->wall, r->cpu_measured = e->cpu;
    }
    char warning[512];
    for (int t = 0; t < g->n_timed; t++)
        if (g->timed[t].sampler == i && timing_warning(warning, sizeof warning, g, &g->timed[t]))
            fprintf(stderr, "ablate: warning: %s\n", warning);
}

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
            if ((st = sample_cell(g, i, "", seed, "uncached", ref, ref_key))) break;
            for (int mi = 0; !st && mi < s->n_methods; mi++) {
                int m = s->methods[mi];
                int n_targets = eb_methods[m].sweeps ? s->n_speedups : 1;
                for (int x = 0; !st && x < n_targets; x++) {
                    row *r = &rows[(*n_rows)++];
                    *r = (row){.sampler = i, .method = m, .seed = seed,
                               .target = eb_methods[m].sweeps ? s->speedups[x] : NAN};
                    char table[PATH_MAX], samples[PATH_MAX], key[KEY_HEX + 1], what[96];
                    if ((st = search_table(g, i, m, r->target, rec, fit, rec_key, table, &r->reached))) break;
                    if (eb_methods[m].sweeps) snprintf(what, sizeof what, "%s_%.3g", eb_methods[m].name, r->target);
                    else snprintf(what, sizeof what, "%s", eb_methods[m].name);
                    if (r->reached && table[0] && seed_i == 0) { /* a copy for users, under a readable name */
                        char copy[PATH_MAX + 128];
                        snprintf(copy, sizeof copy, "%s/%s_tables/%s_%s.schedule", results, s->name, sn, what);
                        if ((st = copy_file(table, copy))) break;
                    }
                    if (!r->reached) {
                        row_done(g);
                        continue;
                    }
                    if (table[0]) st = sample_cell(g, i, table, seed, what, samples, key);
                    else memcpy(samples, ref, sizeof samples), memcpy(key, ref_key, sizeof key);
                    if (!st) st = eval_cell(g, samples, key, table[0] ? ref : NULL, ref_key, r);
                    if (!st && table[0] && seed_i == 0) { /* timed once all its seeds are done */
                        timed_table *e = &g->timed[g->n_timed++];
                        *e = (timed_table){.sampler = i, .method = m, .target = r->target,
                                           .flop_speedup = r->flop_speedup};
                        snprintf(e->table, sizeof e->table, "%s", table);
                    }
                    row_done(g);
                }
            }
        }
        if (!st) st = time_sampler(g, i);
        if (!st) put_speedups(g, i, rows, *n_rows);
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
    grid g = {.s = &s, .cells = cells, .model = model, .cores = (int)sysconf(_SC_NPROCESSORS_ONLN)};
    int per_seed = 0;
    for (int m = 0; m < s.n_methods; m++) per_seed += eb_methods[s.methods[m]].sweeps ? s.n_speedups : 1;
    g.total = s.n_samplers * s.n_seeds * per_seed;
    row *rows = calloc((size_t)g.total, sizeof *rows);
    g.timed = calloc((size_t)g.total, sizeof *g.timed);
    int n_rows = 0;
    if (!rows || !g.timed) {
        free(rows), free(g.timed);
        return eb_report(CMD, eb_fail(EB_ERUNTIME, "out of memory"));
    }
    st = eb_gp_find_scripts(eb_arg(opts, n, "scripts"), scripts, sizeof scripts);
    if (!st) st = eb_sha256_file(model, g.model_sha);
    if (!st) st = make_dirs(cells);
    if (!st) st = lock_cells(cells);
    int debris = st ? 0 : remove_debris(cells, 1);
    if (debris) fprintf(stderr, "ablate: removed %d temporary file%s of an interrupted run from %s\n", debris,
                        debris == 1 ? "" : "s", cells);
    if (!st && snprintf(tables, sizeof tables, "%s/%s_tables", results, s.name) >= (int)sizeof tables)
        st = eb_fail(EB_EINPUT, "%s: path too long", results);
    if (!st) st = make_dirs(tables);
    g.start = clock_s(CLOCK_MONOTONIC);
    if (!st) st = run_grid(&g, rows, &n_rows, results);
    if (!st) st = write_report(results, "csv", put_csv, &g, rows, n_rows);
    if (!st) st = write_report(results, "md", put_markdown, &g, rows, n_rows);
    for (int i = 0; !st && i < s.n_samplers; i++) st = write_pareto(scripts, results, &g, i, rows, n_rows);
    if (!st) fprintf(stderr, "ablate: wrote %s/%s.csv, %s.md and %s_pareto_*.png\n", results, s.name, s.name, s.name);
    free(rows), free(g.timed);
    return eb_report(CMD, st);
}
