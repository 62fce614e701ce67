/* pipeline/ablation.c — an ablation grid's cells, computed by the pipeline
 * calls, and the interleaved timing of its tables (pipeline/ablation.h,
 * docs/ablation.md). Cells are content-addressed folders of the cells folder:
 * rec-KEY (recording, fit), table-KEY (table or an `unreachable` marker),
 * sample-KEY (samples and their eval-KEY.h5), plus the real images' cache. */
#include "pipeline/ablation.h"
#include "runtime/readfile.h"
#include "runtime/clock.h"
#include "runtime/atomic.h"
#include "pipeline/ablation_internal.h"

#include "analyze/sha256.h"
#include "pipeline/decoding.h"
#include "pipeline/evaluation.h"
#include "pipeline/recording.h"
#include "pipeline/sampling.h"
#include "pipeline/searching.h"
#include "runtime/h5io.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DIR_CAP (PATH_MAX - 64) /* a cell folder, leaving room for its file names */

struct eb_ablation {
    const eb_ablation_spec *s;
    eb_ablation_params p;
    char model_sha[EB_SHA256_HEX], router_sha[EB_SHA256_HEX]; /* router: the spec's, "" without one */
    char vae_sha[EB_SHA256_HEX], inception_sha[EB_SHA256_HEX], reference_sha[EB_SHA256_HEX]; /* ImageNet judge */
    int lock_fd;
    eb_ablation_point *points; /* the plan */
    int n_points;
    int done, total; /* rows finished, rows in all */
    int reused;      /* rows finished from cells that were already there */
    int computed;    /* the current row computed something */
    double start;    /* monotonic seconds when the grid started */
};

void eb_ablation_params_defaults(eb_ablation_params *p) {
    *p = (eb_ablation_params){.cells = "build/ablate-cells", .results = "results"};
}

/* ------------------------------------------------------------------------ */
/* Keys                                                                      */

void eb_ablation_key(char key[EB_ABLATION_KEY + 1], const char *text) {
    char hex[EB_SHA256_HEX];
    eb_sha256_hex(text, strlen(text), hex);
    memcpy(key, hex, EB_ABLATION_KEY);
    key[EB_ABLATION_KEY] = 0;
}

/* Where the cells run, in key texts: "cpu", "cuda", "cuda|tf32" (a precision other than fp32). */
static const char *device_text(const eb_ablation_spec *s, char *buf, size_t cap) {
    if (strcmp(s->precision, "fp32")) snprintf(buf, cap, "%s|%s", s->device, s->precision);
    else snprintf(buf, cap, "%s", s->device);
    return buf;
}

/* "|DEVICE…" after the texts of a run off the CPU ("" on it: the 0.3.0 texts stay). */
static const char *device_suffix(const eb_ablation_spec *s, char *buf, size_t cap) {
    char dev[32];
    if (strcmp(s->device, "cpu")) snprintf(buf, cap, "|%s", device_text(s, dev, sizeof dev));
    else buf[0] = 0;
    return buf;
}

/* The spec's device and precision (checked by the spec reader). */
static eb_device device_of(const eb_ablation_spec *s) {
    eb_device d = {.device = s->device, .precision = EB_PRECISION_FP32};
    eb_precision_parse(s->precision, &d.precision);
    return d;
}

void eb_ablation_record_key(char key[EB_ABLATION_KEY + 1], const eb_ablation_spec *s, int i, const char *model_sha) {
    char text[512], dev[40];
    snprintf(text, sizeof text, "record|%s|%s|%s|%d|%.17g|%d|%d|%d%s", EBCACHE_VERSION, model_sha, s->samplers[i].kind,
             s->samplers[i].steps, s->cfg, s->calib_n, s->calib_seed, s->batch, device_suffix(s, dev, sizeof dev));
    eb_ablation_key(key, text);
}

void eb_ablation_table_key(char key[EB_ABLATION_KEY + 1], const char *rec_key, const eb_ablation_point *p,
                           const char *router_sha) {
    char text[600], value[64] = "-";
    if (p->sweep == EB_SWEEP_SPEEDUP) snprintf(value, sizeof value, "%.17g", p->value);
    else if (p->sweep == EB_SWEEP_NATIVE)
        snprintf(value, sizeof value, "%s=%.17g", eb_param_kind_name(eb_methods[p->method].param), p->value);
    int n = snprintf(text, sizeof text, "table|%s|%s|%s|%s", EBCACHE_VERSION, rec_key, eb_methods[p->method].name, value);
    if ((eb_methods[p->method].needs & EB_NEEDS_ROUTER) && n > 0 && (size_t)n < sizeof text)
        snprintf(text + n, sizeof text - (size_t)n, "|router=%s", router_sha ? router_sha : "-");
    eb_ablation_key(key, text);
}

void eb_ablation_sample_key(char key[EB_ABLATION_KEY + 1], const eb_ablation_spec *s, int i, const char *model_sha,
                            int seed, const char *table_sha) {
    char text[1024], dev[40];
    snprintf(text, sizeof text, "sample|%s|%s|%s|%d|%.17g|%d|%d|%d|%s%s", EBCACHE_VERSION, model_sha, s->samplers[i].kind,
             s->samplers[i].steps, s->cfg, s->n, seed, s->batch, table_sha, device_suffix(s, dev, sizeof dev));
    eb_ablation_key(key, text);
}

void eb_ablation_eval_key(char key[EB_ABLATION_KEY + 1], const char *sample_key, const char *ref_key, int n_real) {
    char text[256]; /* "judges": files from before the FD split and the pixel judge are recomputed */
    snprintf(text, sizeof text, "eval-judges|%s|%s|%s|%d", EBCACHE_VERSION, sample_key, ref_key, n_real);
    eb_ablation_key(key, text);
}

void eb_ablation_decode_key(char key[EB_ABLATION_KEY + 1], const eb_ablation_spec *s, const char *sample_key,
                            const char *vae_sha) {
    char text[512], dev[32];
    snprintf(text, sizeof text, "decode|%s|%s|%s|%.17g|%d|%s", EBCACHE_VERSION, sample_key, vae_sha, s->scale_factor,
             s->decode_batch, device_text(s, dev, sizeof dev));
    eb_ablation_key(key, text);
}

void eb_ablation_imagenet_eval_key(char key[EB_ABLATION_KEY + 1], const eb_ablation_spec *s, const char *decode_key,
                                   const char *inception_sha, const char *reference_sha) {
    char text[512], dev[32];
    snprintf(text, sizeof text, "eval-imagenet|%s|%s|%s|%s|%s", EBCACHE_VERSION, decode_key, inception_sha,
             reference_sha, device_text(s, dev, sizeof dev));
    eb_ablation_key(key, text);
}

void eb_ablation_imagenet_real_key(char key[EB_ABLATION_KEY + 1], const eb_ablation_spec *s, const char *inception_sha,
                                   const char *reference_sha) {
    char text[512], dev[32];
    snprintf(text, sizeof text, "real-imagenet|%s|%s|%s|%s", EBCACHE_VERSION, inception_sha, reference_sha,
             device_text(s, dev, sizeof dev));
    eb_ablation_key(key, text);
}

eb_status eb_ablation_vae_sha(const char *vae, char sha[EB_SHA256_HEX]) {
    struct stat sb;
    if (stat(vae, &sb) != 0) return eb_fail(EB_EINPUT, "%s: %s", vae, strerror(errno));
    if (!S_ISDIR(sb.st_mode)) return eb_sha256_file(vae, sha);
    /* every file a folder's decoder can be read from, the folder's and vae/'s: "NAME=SHA" lines */
    static const char *const names[] = {"config.json", "diffusion_pytorch_model.safetensors",
                                        "vae/config.json", "vae/diffusion_pytorch_model.safetensors"};
    char text[4 * (48 + EB_SHA256_HEX)] = "", path[PATH_MAX], one[EB_SHA256_HEX];
    int weights = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (snprintf(path, sizeof path, "%s/%s", vae, names[i]) >= (int)sizeof path)
            return eb_fail(EB_EINPUT, "%s: path too long", vae);
        if (!eb_is_regular_file(path)) continue;
        eb_status st = eb_sha256_file(path, one);
        if (st) return st;
        weights += strstr(names[i], ".safetensors") != NULL;
        snprintf(text + strlen(text), sizeof text - strlen(text), "%s=%s\n", names[i], one);
    }
    if (!weights)
        return eb_fail(EB_EINPUT, "%s: a folder without diffusion_pytorch_model.safetensors or "
                                  "vae/diffusion_pytorch_model.safetensors", vae);
    eb_sha256_hex(text, strlen(text), sha);
    return EB_OK;
}

/* ------------------------------------------------------------------------ */
/* Planning                                                                  */

const char *eb_sweep_kind_name(eb_sweep_kind k) {
    return k == EB_SWEEP_SPEEDUP ? "speedup" : k == EB_SWEEP_NATIVE ? "native" : "none";
}

int eb_ablation_plan(const eb_ablation_spec *s, eb_ablation_point *points, int cap) {
    int n = 0;
    for (int i = 0; i < s->n_samplers; i++)
        for (int k = 0; k < s->n_methods; k++) {
            const int m = s->methods[k];
            const eb_method *d = &eb_methods[m];
            const int native = s->n_native[m] > 0, swept = native || (d->generate && !isfinite(d->fixed) && d->sweeps);
            const int n_values = native ? s->n_native[m] : swept ? s->n_speedups : 1;
            for (int v = 0; v < n_values; v++) {
                if (n == cap) return -1;
                points[n++] = (eb_ablation_point){
                    .sampler = i, .method = m,
                    .sweep = native ? EB_SWEEP_NATIVE : swept ? EB_SWEEP_SPEEDUP : EB_SWEEP_NONE,
                    .value = native ? s->native[m][v] : swept ? s->speedups[v] : NAN};
            }
        }
    return n;
}

const char *eb_ablation_point_label(const eb_ablation_point *p, char *buf, size_t cap) {
    if (p->sweep == EB_SWEEP_SPEEDUP) snprintf(buf, cap, " at %.3g×", p->value);
    else if (p->sweep == EB_SWEEP_NATIVE)
        snprintf(buf, cap, " at %s %.3g", eb_param_kind_name(eb_methods[p->method].param), p->value);
    else buf[0] = 0;
    return buf;
}

/* "fora_1.5", "fora_interval3", "none": a point in file names and messages. */
static const char *point_word(const eb_ablation_point *p, char *buf, size_t cap) {
    const char *name = eb_methods[p->method].name;
    if (p->sweep == EB_SWEEP_SPEEDUP) snprintf(buf, cap, "%s_%.3g", name, p->value);
    else if (p->sweep == EB_SWEEP_NATIVE)
        snprintf(buf, cap, "%s_%s%.3g", name, eb_param_kind_name(eb_methods[p->method].param), p->value);
    else snprintf(buf, cap, "%s", name);
    return buf;
}

/* ------------------------------------------------------------------------ */
/* Files                                                                     */

static int exists(const char *path) { return access(path, F_OK) == 0; }

eb_status eb_ablation_make_dirs(const char *path) {
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

/* dir/<kind>-<key>, created. */
static eb_status cell_dir(char out[DIR_CAP], const char *cells, const char *kind, const char *key) {
    if (snprintf(out, DIR_CAP, "%s/%s-%s", cells, kind, key) >= DIR_CAP)
        return eb_fail(EB_EINPUT, "%s: path too long", cells);
    if (mkdir(out, 0777) != 0 && errno != EEXIST) return eb_fail(EB_ERUNTIME, "%s: cannot create: %s", out, strerror(errno));
    return EB_OK;
}

static eb_status copy_file(const char *from, const char *to) {
    eb_atomic out;
    FILE *in = fopen(from, "rb");
    if (!in) return eb_fail(EB_ERUNTIME, "cannot copy %s to %s: %s", from, to, strerror(errno));
    eb_status st = eb_atomic_open(&out, to);
    char buf[65536];
    size_t got;
    while (!st && (got = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, got, out.f) != got) st = eb_fail(EB_ERUNTIME, "%s: write error", out.tmp);
    fclose(in);
    if (st) eb_atomic_abort(&out);
    return st ? st : eb_atomic_commit(&out);
}

/* The "## params:" line of a table file into buf ("" without one). */
static void table_params(const char *table, char *buf, size_t cap) {
    buf[0] = 0;
    FILE *f = fopen(table, "r");
    char line[512];
    while (f && fgets(line, sizeof line, f) && line[0] == '#')
        if (!strncmp(line, "## params: ", 11)) {
            size_t n = strcspn(line + 11, "\n");
            n = n < cap ? n : cap - 1;
            memcpy(buf, line + 11, n);
            buf[n] = 0;
            break;
        }
    if (f) fclose(f);
}

static double attr_or(eb_h5 *f, const char *name, double fallback) {
    double v;
    return eb_h5_has_attr(f, NULL, name) && !eb_h5_attr_f64(f, NULL, name, &v) ? v : fallback;
}

/* Whether a file in the cells is debris of a killed run: a temporary output
 * ("NAME.tmp.PID", renamed onto NAME when complete) or the samples of a
 * timing run of versions that wrote them. */
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

/* ------------------------------------------------------------------------ */
/* Events                                                                    */

static void emitv(const eb_ablation *a, eb_ablation_event_kind kind, double eta, const char *fmt, va_list ap) {
    if (!a->p.on_event) return;
    char text[1024];
    vsnprintf(text, sizeof text, fmt, ap);
    const eb_ablation_event e = {.kind = kind, .text = text, .done = a->done, .total = a->total, .eta = eta};
    a->p.on_event(a->p.ctx, &e);
}

static void emit(const eb_ablation *a, eb_ablation_event_kind kind, double eta, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void emit(const eb_ablation *a, eb_ablation_event_kind kind, double eta, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    emitv(a, kind, eta, fmt, ap);
    va_end(ap);
}

/* A cell starts computing: marks the row as computing; the ETA extrapolates
 * the rows this run computed (rows found finished cost nothing). */
static void step(eb_ablation *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void step(eb_ablation *a, const char *fmt, ...) {
    const int worked = a->done - a->reused;
    a->computed = 1;
    va_list ap;
    va_start(ap, fmt);
    emitv(a, EB_ABLATION_STEP, worked > 0 ? (eb_clock_seconds(CLOCK_MONOTONIC) - a->start) / worked * (a->total - a->done) : NAN,
          fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------------ */
/* Opening                                                                   */

/* Takes CELLS/lock (flock, released by eb_ablation_close): a second grid on
 * the same cells folder waits for the first, then reuses its cells instead of
 * computing them a second time alongside it. */
static eb_status lock_cells(eb_ablation *a) {
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/lock", a->p.cells) >= (int)sizeof path)
        return eb_fail(EB_EINPUT, "%s: path too long", a->p.cells);
    if ((a->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666)) < 0)
        return eb_fail(EB_ERUNTIME, "%s: cannot open: %s", path, strerror(errno));
    if (flock(a->lock_fd, LOCK_EX | LOCK_NB) == 0) return EB_OK;
    if (errno != EWOULDBLOCK) return eb_fail(EB_ERUNTIME, "%s: cannot lock: %s", path, strerror(errno));
    emit(a, EB_ABLATION_NOTE, NAN, "another ablate is running on %s; waiting for it to finish, then reusing its cells",
         a->p.cells);
    return flock(a->lock_fd, LOCK_EX) ? eb_fail(EB_ERUNTIME, "%s: cannot lock: %s", path, strerror(errno)) : EB_OK;
}

eb_status eb_ablation_open(eb_ablation **out, const eb_ablation_spec *s, const eb_ablation_params *p) {
    *out = NULL;
    if (!p->model || !p->cells || !p->results || (!p->classifier && s->judge == EB_JUDGE_FMNIST))
        return eb_fail(EB_EINPUT, "ablation: `model`, `cells`, `results` and (for the Fashion-MNIST judge) `classifier` "
                                  "are required");
    eb_ablation *a = calloc(1, sizeof *a);
    int cap = 1;
    for (int m = 0; m < EB_NMETHODS; m++) cap += s->n_native[m];
    cap = s->n_samplers * s->n_methods * (cap + s->n_speedups);
    if (a) a->points = malloc((size_t)cap * sizeof *a->points);
    if (!a || !a->points) {
        if (a) free(a);
        return eb_fail(EB_ERUNTIME, "out of memory");
    }
    a->s = s, a->p = *p, a->lock_fd = -1;
    a->n_points = eb_ablation_plan(s, a->points, cap);
    int per_sampler = a->n_points / (s->n_samplers ? s->n_samplers : 1);
    a->total = s->n_samplers * s->n_seeds * per_sampler;
    const eb_comm *c = p->comm ? p->comm : eb_comm_serial();
    eb_status st = eb_sha256_file(p->model, a->model_sha);
    if (!st && s->router[0]) st = eb_sha256_file(s->router, a->router_sha);
    if (!st && s->judge == EB_JUDGE_IMAGENET) { /* the judge's files, named in its cells' keys */
        if (!(st = eb_ablation_vae_sha(s->vae, a->vae_sha)) && !(st = eb_sha256_file(s->inception, a->inception_sha)))
            st = eb_sha256_file(s->reference, a->reference_sha);
    }
    if (!st) st = eb_ablation_make_dirs(p->cells);
    if (!st && c->rank == 0) st = lock_cells(a); /* one lock holder per job: the others wait in the agreement */
    int debris = st || c->rank ? 0 : remove_debris(p->cells, 1);
    if (debris)
        emit(a, EB_ABLATION_NOTE, NAN, "removed %d temporary file%s of an interrupted run from %s", debris,
             debris == 1 ? "" : "s", p->cells);
    st = eb_comm_agree(c, st); /* no rank writes into the cells before rank 0 has cleaned them */
    if (st) {
        eb_ablation_close(a);
        return st;
    }
    a->start = eb_clock_seconds(CLOCK_MONOTONIC);
    *out = a;
    return EB_OK;
}

void eb_ablation_close(eb_ablation *a) {
    if (!a) return;
    if (a->lock_fd >= 0) close(a->lock_fd);
    free(a->points);
    free(a);
}

/* ------------------------------------------------------------------------ */
/* The cells                                                                 */

/* The run settings every sample and recording of sampler i shares. */
static eb_status run_params(const eb_ablation *a, int i, eb_run_params *r, char *respacing, size_t cap) {
    const eb_ablation_spec *s = a->s;
    eb_status st = eb_sampler_kind_parse(&r->sampler, s->samplers[i].kind);
    snprintf(respacing, cap, "%d", s->samplers[i].steps);
    r->model = a->p.model, r->respacing = respacing, r->cfg_scale = s->cfg, r->batch = s->batch;
    r->threads = a->p.threads, r->progress = a->p.progress, r->device = device_of(s);
    return st;
}

/* The calibration recording and its fit for sampler i: cells/rec-KEY/{rec,fit}.h5. */
static eb_status calibrate(eb_ablation *a, int i, char rec[PATH_MAX], char fit[PATH_MAX], char key[EB_ABLATION_KEY + 1]) {
    const eb_ablation_spec *s = a->s;
    char dir[DIR_CAP], respacing[16], sn[32];
    eb_ablation_record_key(key, s, i, a->model_sha);
    eb_status st = cell_dir(dir, a->p.cells, "rec", key);
    if (st) return st;
    snprintf(rec, PATH_MAX, "%s/rec.h5", dir);
    snprintf(fit, PATH_MAX, "%s/fit.h5", dir);
    eb_ablation_sampler_name(s, i, sn);
    if (!exists(rec)) {
        step(a, "%s: calibration recording, %d %s", sn, s->calib_n, s->calib_n == 1 ? "sample" : "samples");
        eb_record_params rp;
        eb_record_params_defaults(&rp);
        if ((st = run_params(a, i, &rp.run, respacing, sizeof respacing))) return st;
        rp.run.seed = (uint64_t)s->calib_seed, rp.run.n = s->calib_n, rp.output = rec;
        if ((st = eb_record_to_file(&rp, NULL))) return eb_fail(st, "%s: the calibration recording failed: %s", sn, eb_last_error());
    }
    if (!exists(fit) && (st = eb_fit_to_file(rec, fit, NULL, NULL))) return st; /* its message names the recording */
    return EB_OK;
}

/* The table of point pt into table[] ("" for none); *reached = 0 when the
 * search says its target cannot be met. */
static eb_status search_table(eb_ablation *a, const eb_ablation_point *pt, const char *rec, const char *fit,
                              const char *rec_key, char table[PATH_MAX], int *reached) {
    const eb_method *d = &eb_methods[pt->method];
    *reached = 1;
    table[0] = 0;
    if (!d->generate) return EB_OK;
    char key[EB_ABLATION_KEY + 1], dir[DIR_CAP], marker[PATH_MAX + 16], label[64], sn[32];
    eb_ablation_table_key(key, rec_key, pt, a->router_sha);
    eb_status st = cell_dir(dir, a->p.cells, "table", key);
    if (st) return st;
    snprintf(table, PATH_MAX, "%s/table.txt", dir);
    snprintf(marker, sizeof marker, "%s/unreachable", dir);
    if (exists(marker)) *reached = 0;
    if (exists(table) || exists(marker)) return EB_OK;
    step(a, "%s: search %s%s", eb_ablation_sampler_name(a->s, pt->sampler, sn), d->name,
         eb_ablation_point_label(pt, label, sizeof label));
    eb_search_params sp;
    eb_search_params_defaults(&sp);
    sp.record = rec, sp.fit = fit, sp.output = table, sp.threads = a->p.threads, sp.progress = a->p.progress;
    sp.opts.method = d, sp.opts.router = a->s->router[0] ? a->s->router : NULL;
    if (pt->sweep == EB_SWEEP_SPEEDUP) sp.opts.target = 1 / pt->value;
    else if (pt->sweep == EB_SWEEP_NATIVE && d->param == EB_PARAM_INTERVAL) sp.opts.interval = (int)pt->value;
    else if (pt->sweep == EB_SWEEP_NATIVE && d->param == EB_PARAM_THRESHOLD) sp.opts.threshold = pt->value;
    else if (pt->sweep == EB_SWEEP_NATIVE) sp.opts.delta_a *= pt->value, sp.opts.delta_c *= pt->value; /* δ scale */
    eb_search_outcome out;
    if ((st = eb_search_to_file(&sp, &out))) return eb_fail(st, "search %s%s failed: %s", d->name, label, eb_last_error());
    if (!out.met) { /* the target is out of the method's reach: remembered, reported */
        FILE *f = fopen(marker, "w");
        if (!f || fclose(f)) return eb_fail(EB_ERUNTIME, "%s: cannot write", marker);
        table[0] = 0;
        *reached = 0;
    }
    return EB_OK;
}

/* Samples of (sampler i, table or uncached, seed) into cells/sample-KEY/samples.h5. */
static eb_status sample_cell(eb_ablation *a, int i, const char *table, int seed, const char *what,
                             char samples[PATH_MAX], char key[EB_ABLATION_KEY + 1]) {
    const eb_ablation_spec *s = a->s;
    char table_sha[EB_SHA256_HEX] = "none", dir[DIR_CAP], respacing[16], sn[32];
    eb_status st = table[0] ? eb_sha256_file(table, table_sha) : EB_OK;
    if (st) return st;
    eb_ablation_sample_key(key, s, i, a->model_sha, seed, table_sha);
    if ((st = cell_dir(dir, a->p.cells, "sample", key))) return st;
    snprintf(samples, PATH_MAX, "%s/samples.h5", dir);
    if (exists(samples)) return EB_OK;
    eb_ablation_sampler_name(s, i, sn);
    step(a, "%s: sample %s, seed %d, %d %s", sn, what, seed, s->n, s->n == 1 ? "image" : "images");
    eb_sample_params sp;
    eb_sample_params_defaults(&sp);
    if ((st = run_params(a, i, &sp.run, respacing, sizeof respacing))) return st;
    sp.run.seed = (uint64_t)seed, sp.run.n = s->n, sp.run.schedule = table[0] ? table : NULL, sp.output = samples;
    if ((st = eb_sample_to_file(&sp, NULL)))
        return eb_fail(st, "%s: sampling %s, seed %d failed: %s", sn, what, seed, eb_last_error());
    return EB_OK;
}

/* The ImageNet judge on the samples of cell `key`: their latents decoded into
 * images-DKEY.npz beside them and evaluated against the reference batch (its
 * activations cached in CELLS/real-imagenet-RKEY.h5) into out = eval-EKEY.h5
 * beside them. */
static eb_status imagenet_eval(eb_ablation *a, const char *samples, const char *key, char out[PATH_MAX + 32]) {
    const eb_ablation_spec *s = a->s;
    char dkey[EB_ABLATION_KEY + 1], ekey[EB_ABLATION_KEY + 1], rkey[EB_ABLATION_KEY + 1];
    char images[PATH_MAX + 32], real_cache[PATH_MAX];
    const int dir = (int)(strrchr(samples, '/') - samples);
    eb_ablation_decode_key(dkey, s, key, a->vae_sha);
    eb_ablation_imagenet_eval_key(ekey, s, dkey, a->inception_sha, a->reference_sha);
    eb_ablation_imagenet_real_key(rkey, s, a->inception_sha, a->reference_sha);
    snprintf(images, PATH_MAX + 32, "%.*s/images-%s.npz", dir, samples, dkey);
    snprintf(out, PATH_MAX + 32, "%.*s/eval-%s.h5", dir, samples, ekey);
    if (snprintf(real_cache, sizeof real_cache, "%s/real-imagenet-%s.h5", a->p.cells, rkey) >= (int)sizeof real_cache)
        return eb_fail(EB_EINPUT, "%s: path too long", a->p.cells);
    const eb_device dev = device_of(s);
    eb_status st = EB_OK;
    if (!exists(out) && !exists(images)) {
        step(a, "decode %s", samples);
        eb_decode_params dp;
        eb_decode_params_defaults(&dp);
        dp.vae = s->vae, dp.samples = samples, dp.output = images, dp.scale_factor = s->scale_factor;
        dp.batch = s->decode_batch, dp.threads = a->p.threads, dp.device = dev, dp.progress = a->p.progress;
        if ((st = eb_decode_to_file(&dp, NULL))) return eb_fail(st, "%s: decoding failed: %s", samples, eb_last_error());
    }
    if (!exists(out)) {
        step(a, "evaluate %s", images);
        eb_eval_params ep;
        eb_eval_result res;
        eb_eval_params_defaults(&ep);
        ep.samples = images, ep.inception = s->inception, ep.reference_batch = s->reference, ep.device = &dev;
        ep.real_cache = real_cache, ep.output = out;
        if ((st = eb_evaluate(&ep, &res))) return eb_fail(st, "%s: evaluation failed: %s", images, eb_last_error());
    }
    return EB_OK;
}

/* The Fashion-MNIST judges on samples (against the uncached reference unless
 * they are it) into out = eval-EKEY.h5 beside them. */
static eb_status fmnist_eval(eb_ablation *a, const char *samples, const char *key, const char *reference,
                             const char *ref_key, char out[PATH_MAX + 32]) {
    char ekey[EB_ABLATION_KEY + 1], real_cache[PATH_MAX];
    eb_ablation_eval_key(ekey, key, reference ? ref_key : "-", a->s->n_real);
    const char *slash = strrchr(samples, '/');
    snprintf(out, PATH_MAX + 32, "%.*s/eval-%s.h5", (int)(slash - samples), samples, ekey);
    snprintf(real_cache, sizeof real_cache, "%s/real-test-%d.h5", a->p.cells, a->s->n_real);
    eb_status st = EB_OK;
    if (!exists(out)) {
        step(a, "evaluate %s", samples);
        eb_eval_params ep;
        eb_eval_result res;
        eb_eval_params_defaults(&ep);
        ep.samples = samples, ep.reference = reference, ep.classifier = a->p.classifier, ep.n_real = a->s->n_real;
        ep.real_cache = real_cache, ep.fmnist_dir = a->p.fmnist_dir, ep.output = out;
        if ((st = eb_evaluate(&ep, &res))) return eb_fail(st, "%s: evaluation failed: %s", samples, eb_last_error());
    }
    return EB_OK;
}

/* Evaluates the samples of cell `key` under the spec's judge and fills r from
 * the evaluation's file (a metric it lacks is NaN) and the samples'
 * attributes. */
static eb_status eval_cell(eb_ablation *a, const char *samples, const char *key, const char *reference,
                           const char *ref_key, eb_ablation_row *r) {
    char out[PATH_MAX + 32];
    eb_status st = a->s->judge == EB_JUDGE_IMAGENET ? imagenet_eval(a, samples, key, out)
                                                     : fmnist_eval(a, samples, key, reference, ref_key, out);
    if (st) return st;
    eb_h5 *f;
    if ((st = eb_h5_open(&f, samples))) return st;
    r->wall = attr_or(f, "wall_seconds", NAN);
    r->flop_speedup = 1.0 / attr_or(f, "flop_fraction", 1.0);
    eb_h5_close(f);
    if ((st = eb_h5_open(&f, out))) return st;
    r->fd = attr_or(f, "fid", attr_or(f, "fd", NAN)); /* the ImageNet judge names its FD fid */
    r->fd_mean = attr_or(f, "fd_mean_term", NAN), r->fd_cov = attr_or(f, "fd_cov_term", NAN);
    r->pixel_fd = attr_or(f, "pixel_fd", NAN), r->pixel_fd_mean = attr_or(f, "pixel_fd_mean_term", NAN);
    r->pixel_fd_cov = attr_or(f, "pixel_fd_cov_term", NAN);
    r->sfid = attr_or(f, "sfid", NAN), r->inception_score = attr_or(f, "inception_score", NAN);
    r->precision = attr_or(f, "precision", NAN), r->recall = attr_or(f, "recall", NAN);
    r->accuracy = attr_or(f, "accuracy", NAN), r->psnr = attr_or(f, "psnr", NAN), r->ssim = attr_or(f, "ssim", NAN);
    eb_h5_close(f);
    return EB_OK;
}

/* The cell of pt on seed, its table into table[] (for the caller's copy and timing). */
static eb_status run_cell(eb_ablation *a, const eb_ablation_point *pt, int seed, eb_ablation_row *row,
                          char table[PATH_MAX]) {
    char rec[PATH_MAX], fit[PATH_MAX], rec_key[EB_ABLATION_KEY + 1], ref[PATH_MAX], ref_key[EB_ABLATION_KEY + 1];
    char samples[PATH_MAX], key[EB_ABLATION_KEY + 1], what[96];
    row->seed = seed;
    eb_status st = calibrate(a, pt->sampler, rec, fit, rec_key);
    if (!st) st = sample_cell(a, pt->sampler, "", seed, "uncached", ref, ref_key);
    if (!st) st = search_table(a, pt, rec, fit, rec_key, table, &row->reached);
    if (st || !row->reached) return st;
    point_word(pt, what, sizeof what);
    if (!table[0]) return eval_cell(a, ref, ref_key, NULL, ref_key, row);
    if (!(st = sample_cell(a, pt->sampler, table, seed, what, samples, key)))
        st = eval_cell(a, samples, key, ref, ref_key, row);
    return st;
}

eb_status eb_ablation_run_cell(eb_ablation *a, const eb_ablation_point *pt, int seed, eb_ablation_row *row) {
    char table[PATH_MAX];
    *row = (eb_ablation_row){.point = -1};
    for (int k = 0; k < a->n_points && row->point < 0; k++) {
        const eb_ablation_point *q = &a->points[k];
        if (q->sampler == pt->sampler && q->method == pt->method && q->sweep == pt->sweep &&
            (q->value == pt->value || (isnan(q->value) && isnan(pt->value))))
            row->point = k;
    }
    if (row->point < 0) return eb_fail(EB_EINPUT, "ablation: the point is not one of the spec's");
    return run_cell(a, pt, seed, row, table);
}

/* ------------------------------------------------------------------------ */
/* Timing                                                                    */

/* Wall and process CPU seconds of one in-memory sampling run of
 * spec.timing_n images of the first seed (uncached when table is ""). */
static eb_status time_sample(eb_ablation *a, int i, const char *table, double *wall, double *cpu) {
    const eb_ablation_spec *s = a->s;
    char respacing[16], sn[32];
    eb_sample_params sp;
    eb_sample_params_defaults(&sp);
    eb_status st = run_params(a, i, &sp.run, respacing, sizeof respacing);
    sp.run.seed = (uint64_t)s->seeds[0], sp.run.n = s->timing_n, sp.run.progress = 0;
    sp.run.batch = s->batch < s->timing_n ? s->batch : s->timing_n, sp.run.schedule = table[0] ? table : NULL;
    double w0 = eb_clock_seconds(CLOCK_MONOTONIC), c0 = eb_clock_seconds(CLOCK_PROCESS_CPUTIME_ID);
    if (!st) st = eb_sample_to_file(&sp, NULL);
    *wall = eb_clock_seconds(CLOCK_MONOTONIC) - w0;
    *cpu = eb_clock_seconds(CLOCK_PROCESS_CPUTIME_ID) - c0;
    return st ? eb_fail(st, "%s: the timing run of %s failed: %s", eb_ablation_sampler_name(s, i, sn),
                        table[0] ? table : "the uncached sampler", eb_last_error())
              : EB_OK;
}

static int cmp_double(const void *x, const void *y) {
    double u = *(const double *)x, v = *(const double *)y;
    return (u > v) - (u < v);
}

/* Median of v (n ≥ 1), which gets sorted. */
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static double load_now(void) {
    double load;
    return getloadavg(&load, 1) == 1 ? load : NAN;
}

/* Times sampler i's tables against the uncached sampler in one process,
 * interleaved: uncached runs U_0 … U_R bracket the cached runs of round r
 * (in reverse order every other round, so no table always follows the
 * uncached run), and a table's paired ratio in round r is
 * mean(U_r, U_{r+1}) / its run; its speedup is the median over rounds, for
 * wall and for process CPU time. Slow drift of the machine's load cancels in
 * each pair; the load average before and after is kept. */
static eb_status time_sampler(eb_ablation *a, int i, eb_ablation_results *res) {
    const eb_ablation_spec *s = a->s;
    const int R = s->timing_rounds;
    int T = 0;
    eb_ablation_curve_point **timed = malloc(((size_t)res->n_points + 1) * sizeof *timed);
    for (int k = 0; timed && k < res->n_points; k++)
        if (res->points[k].at.sampler == i && res->points[k].table[0]) timed[T++] = &res->points[k];
    eb_ablation_timing *info = &res->timing[i];
    info->load_before = load_now();
    double *u_wall = malloc((R + 1) * sizeof(double)), *u_cpu = malloc((R + 1) * sizeof(double));
    double *c_wall = malloc(((size_t)T * R + 1) * sizeof(double)), *c_cpu = malloc(((size_t)T * R + 1) * sizeof(double));
    eb_status st = timed && u_wall && u_cpu && c_wall && c_cpu ? EB_OK : eb_fail(EB_ERUNTIME, "out of memory");
    char sn[32];
    eb_ablation_sampler_name(s, i, sn);
    double t0 = eb_clock_seconds(CLOCK_MONOTONIC);
    if (!st && T) st = time_sample(a, i, "", &u_wall[0], &u_cpu[0]);
    for (int r = 0; !st && T && r < R; r++) {
        emit(a, EB_ABLATION_NOTE, r ? (eb_clock_seconds(CLOCK_MONOTONIC) - t0) / r * (R - r) : NAN,
             "timing %s: round %d/%d, %d %s and the uncached run, %d %s each", sn, r + 1, R, T,
             T == 1 ? "table" : "tables", s->timing_n, s->timing_n == 1 ? "image" : "images");
        for (int k = 0; !st && k < T; k++) {
            int t = r % 2 ? T - 1 - k : k;
            st = time_sample(a, i, timed[t]->table, &c_wall[(size_t)t * R + r], &c_cpu[(size_t)t * R + r]);
        }
        if (!st) st = time_sample(a, i, "", &u_wall[r + 1], &u_cpu[r + 1]);
    }
    for (int t = 0; !st && t < T; t++) {
        double wall[R], cpu[R];
        for (int r = 0; r < R; r++) {
            wall[r] = 0.5 * (u_wall[r] + u_wall[r + 1]) / c_wall[(size_t)t * R + r];
            cpu[r] = 0.5 * (u_cpu[r] + u_cpu[r + 1]) / c_cpu[(size_t)t * R + r];
        }
        eb_ablation_curve_point *e = timed[t];
        e->wall = median(wall, R), e->cpu = median(cpu, R), e->wall_lo = wall[0], e->wall_hi = wall[R - 1];
    }
    info->uncached_wall = !st && T ? median(u_wall, R + 1) : NAN;
    info->load_after = load_now();
    free(timed), free(u_wall), free(u_cpu), free(c_wall), free(c_cpu);
    return st;
}

/* The interleaved speedups of sampler i into its rows (1 for the uncached
 * ones), with the load; each suspicious speedup is a WARNING. */
static void put_speedups(const eb_ablation *a, int i, eb_ablation_results *res) {
    const eb_ablation_timing *info = &res->timing[i];
    for (int k = 0; k < res->n_rows; k++) {
        eb_ablation_row *r = &res->rows[k];
        const eb_ablation_curve_point *c = &res->points[r->point];
        if (c->at.sampler != i || !r->reached) continue;
        r->load = fmax(info->load_before, info->load_after);
        if (!eb_methods[c->at.method].generate) r->measured = r->cpu_measured = 1.0;
        else r->measured = c->wall, r->cpu_measured = c->cpu;
    }
    char warning[1024];
    for (int k = 0; k < res->n_points; k++)
        if (res->points[k].at.sampler == i && eb_ablation_timing_warning(warning, sizeof warning, a->s, res, &res->points[k]))
            emit(a, EB_ABLATION_WARNING, NAN, "%s", warning);
}

/* ------------------------------------------------------------------------ */
/* The grid                                                                  */

void eb_ablation_results_free(eb_ablation_results *r) {
    free(r->points), free(r->rows);
    memset(r, 0, sizeof *r);
}

/* ------------------------------------------------------------------------ */
/* Several ranks                                                             */

/* Whether item `item` of a round (counted in grid order) is this rank's: round-robin. */
static int is_mine(const eb_comm *c, int item) { return item % c->size == c->rank; }

/* Round 2's items, in grid order: the points' tables, then every sampler's uncached samples per seed.
 * computed[item] = 1 when this rank computed it. */
static eb_status tables_and_references(eb_ablation *a, const eb_comm *c, double *computed) {
    const eb_ablation_spec *s = a->s;
    char rec[PATH_MAX], fit[PATH_MAX], rec_key[EB_ABLATION_KEY + 1], out[PATH_MAX], key[EB_ABLATION_KEY + 1];
    eb_status st = EB_OK;
    for (int k = 0; !st && k < a->n_points; k++) {
        const eb_ablation_point *pt = &a->points[k];
        int reached;
        if (!is_mine(c, k)) continue;
        a->computed = 0;
        if (!(st = calibrate(a, pt->sampler, rec, fit, rec_key))) st = search_table(a, pt, rec, fit, rec_key, out, &reached);
        computed[k] = a->computed;
    }
    for (int i = 0, item = a->n_points; i < s->n_samplers; i++)
        for (int z = 0; !st && z < s->n_seeds; z++, item++) {
            if (!is_mine(c, item)) continue;
            a->computed = 0;
            st = sample_cell(a, i, "", s->seeds[z], "uncached", out, key);
            computed[item] = a->computed;
        }
    return st;
}

/* Several ranks compute the grid's cells before rank 0 reads them, in three rounds spread over the ranks
 * round-robin and each closed by an agreement (a failure anywhere stops every rank there): the samplers'
 * calibrations; the points' tables and the seeds' uncached samples; the rows (their cached samples and
 * evaluations) in grid order. A round needs only the rounds before it, so no cell is computed by two ranks
 * (the evaluation's cache of the real images aside: written atomically by whichever rank needs it first).
 * *reused gets the rows of all ranks for which nothing was computed, a shared cell (calibration, table,
 * uncached samples) counting against the first row that needs it, as in one process. */
static eb_status distribute(eb_ablation *a, const eb_comm *c, int *reused) {
    const eb_ablation_spec *s = a->s;
    const int I = s->n_samplers, round2 = a->n_points + I * s->n_seeds, grid_rows = a->total;
    double *computed = calloc((size_t)I + round2 + 1, sizeof *computed), *any = calloc((size_t)I + round2 + 1, sizeof *any);
    char rec[PATH_MAX], fit[PATH_MAX], key[EB_ABLATION_KEY + 1], table[PATH_MAX];
    eb_status st = computed && any ? EB_OK : eb_fail(EB_ERUNTIME, "out of memory");
    a->done = 0, a->total = grid_rows / c->size + (c->rank < grid_rows % c->size); /* this rank's rows: its events count them */
    for (int i = 0; !st && i < I; i++) {
        if (!is_mine(c, i)) continue;
        a->computed = 0;
        st = calibrate(a, i, rec, fit, key);
        computed[i] = a->computed;
    }
    st = eb_comm_agree(c, st);
    if (!st) st = eb_comm_agree(c, tables_and_references(a, c, computed + I));
    if (!st) st = eb_comm_sum_items(c, c->size, I + round2, computed, any); /* one item per rank: 0/1 counts, exact */
    int mine_reused = 0;
    if (!st) {
        eb_status cell = EB_OK;
        for (int i = 0, item = 0; !cell && i < I; i++)
            for (int z = 0; !cell && z < s->n_seeds; z++)
                for (int k = 0; !cell && k < a->n_points; k++) {
                    const eb_ablation_point *pt = &a->points[k];
                    if (pt->sampler != i || !is_mine(c, item++)) continue;
                    eb_ablation_row row = {.point = k};
                    a->computed = 0;
                    cell = run_cell(a, pt, s->seeds[z], &row, table);
                    /* as in one process: a shared cell computed counts against the first row that needs it */
                    const int first_of_sampler = k == 0 || a->points[k - 1].sampler != i;
                    mine_reused += !a->computed && !(any[i] && z == 0 && first_of_sampler) && !(any[I + k] && z == 0) &&
                                   !(any[I + a->n_points + i * s->n_seeds + z] && first_of_sampler);
                    a->done++;
                }
        st = eb_comm_agree(c, cell);
    }
    double r = mine_reused, sum = 0;
    if (!st) st = eb_comm_sum_items(c, c->size, 1, &r, &sum);
    *reused = (int)sum;
    a->total = grid_rows;
    free(computed), free(any);
    return st;
}

/* The grid on one process, or rank 0 reading the cells the ranks computed: the rows in grid order, the
 * tables copied, the timing. */
static eb_status grid(eb_ablation *a, eb_ablation_results *res) {
    const eb_ablation_spec *s = a->s;
    res->cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
    res->points = calloc((size_t)a->n_points + 1, sizeof *res->points);
    res->rows = calloc((size_t)a->total + 1, sizeof *res->rows);
    char tables[PATH_MAX];
    eb_status st = res->points && res->rows ? EB_OK : eb_fail(EB_ERUNTIME, "out of memory");
    if (!st && snprintf(tables, sizeof tables, "%s/%s_tables", a->p.results, s->name) >= (int)sizeof tables)
        st = eb_fail(EB_EINPUT, "%s: path too long", a->p.results);
    if (!st) st = eb_ablation_make_dirs(tables);
    res->n_points = st ? 0 : a->n_points;
    for (int k = 0; k < res->n_points; k++) res->points[k].at = a->points[k];
    a->done = a->reused = 0;
    for (int i = 0; !st && i < s->n_samplers; i++) {
        char sn[32];
        eb_ablation_sampler_name(s, i, sn);
        for (int seed_i = 0; !st && seed_i < s->n_seeds; seed_i++)
            for (int k = 0; !st && k < res->n_points; k++) {
                eb_ablation_curve_point *c = &res->points[k];
                if (c->at.sampler != i) continue;
                eb_ablation_row *r = &res->rows[res->n_rows++];
                char table[PATH_MAX], what[96], copy[PATH_MAX];
                *r = (eb_ablation_row){.point = k};
                if ((st = run_cell(a, &c->at, s->seeds[seed_i], r, table))) break;
                if (seed_i == 0) { /* the point's table: kept for timing, copied for users under a readable name */
                    c->reached = r->reached;
                    snprintf(c->table, sizeof c->table, "%s", r->reached ? table : "");
                    table_params(c->table, c->params, sizeof c->params);
                    if (snprintf(copy, sizeof copy, "%s/%s_%s.schedule", tables, sn,
                                 point_word(&c->at, what, sizeof what)) >= (int)sizeof copy)
                        st = eb_fail(EB_EINPUT, "%s: path too long", tables);
                    else if (c->table[0]) st = copy_file(c->table, copy);
                }
                a->reused += !a->computed; /* nothing was computed for this row: it was there */
                a->computed = 0;
                a->done++;
            }
        for (int k = 0; k < res->n_points; k++) { /* FLOP speedups: means over seeds (dynamic policies vary) */
            double sum = 0;
            int n = 0;
            for (int j = 0; j < res->n_rows; j++)
                if (res->rows[j].point == k && res->rows[j].reached) sum += res->rows[j].flop_speedup, n++;
            if (res->points[k].at.sampler == i) res->points[k].flop_speedup = n ? sum / n : NAN;
        }
        if (!st) st = time_sampler(a, i, res);
        if (!st) put_speedups(a, i, res);
    }
    res->reused = a->reused;
    if (st) eb_ablation_results_free(res);
    return st;
}

eb_status eb_ablation_run(eb_ablation *a, eb_ablation_results *res) {
    const eb_comm *c = a->p.comm ? a->p.comm : eb_comm_serial();
    memset(res, 0, sizeof *res);
    if (c->size == 1) return grid(a, res);
    int reused = 0;
    eb_status st = distribute(a, c, &reused);
    if (st) return st;
    if (c->rank == 0) st = grid(a, res); /* the others wait, asleep (cli/comm_mpi.c), while rank 0 times the tables */
    st = eb_comm_agree(c, st);
    if (st) eb_ablation_results_free(res);
    else res->reused = reused;
    return st;
}
