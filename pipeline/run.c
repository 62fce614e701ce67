/* run.c — one sampling run: parameters, names of its settings, opening
 * (model, schedule, table, x_T and labels), sampling in batches, and the
 * root attributes that let a file's run be opened again. */
#include "pipeline/run.h"
#include "runtime/clock.h"

#include "analyze/sha256.h"
#include "runtime/readfile.h"
#include "runtime/schedule.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_TABLE_TEXT (16 << 20)

/* ------------------------------------------------------------------------ */
/* Names                                                                     */

static const char *const SAMPLER_NAMES[] = {"ddpm", "ddim"};
static const char *const VARIANCE_NAMES[] = {"large", "small"};
static const char *const VAR_TYPE_NAMES[] = {"learned_range", "fixed_small", "fixed_large"};
static const char *const POLICY_NAMES[] = {"none", "teacache", "fbcache"};
#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const char *name_of(const char *const *names, int n, int i) { return i >= 0 && i < n ? names[i] : "?"; }

/* The index of `name` in names, else EB_EINPUT "`field`: 'name' is not a, b or c". */
static eb_status index_of(const char *const *names, int n, const char *field, const char *name, int *out) {
    for (int i = 0; name && i < n; i++)
        if (!strcmp(name, names[i])) return *out = i, EB_OK;
    char list[256] = "";
    for (int i = 0, used = 0; i < n && used < (int)sizeof list; i++)
        used += snprintf(list + used, sizeof list - used, "%s%s", i ? (i == n - 1 ? " or " : ", ") : "", names[i]);
    return eb_fail(EB_EINPUT, "`%s`: '%s' is not %s", field, name ? name : "(null)", list);
}

const char *eb_sampler_kind_name(eb_sampler_kind k) { return name_of(SAMPLER_NAMES, COUNT(SAMPLER_NAMES), k); }
const char *eb_variance_choice_name(eb_variance_choice v) { return name_of(VARIANCE_NAMES, COUNT(VARIANCE_NAMES), v); }
const char *eb_var_type_name(eb_var_type v) { return name_of(VAR_TYPE_NAMES, COUNT(VAR_TYPE_NAMES), v); }
const char *eb_policy_kind_name(int policy_kind) { return name_of(POLICY_NAMES, COUNT(POLICY_NAMES), policy_kind); }

eb_status eb_sampler_kind_parse(eb_sampler_kind *k, const char *name) {
    int i;
    eb_status st = index_of(SAMPLER_NAMES, COUNT(SAMPLER_NAMES), "sampler", name, &i);
    if (!st) *k = (eb_sampler_kind)i;
    return st;
}

eb_status eb_variance_choice_parse(eb_variance_choice *v, const char *name) {
    int i;
    eb_status st = index_of(VARIANCE_NAMES, COUNT(VARIANCE_NAMES), "variance", name, &i);
    if (!st) *v = (eb_variance_choice)i;
    return st;
}

eb_status eb_var_type_parse(eb_var_type *v, const char *name) {
    int i;
    eb_status st = index_of(VAR_TYPE_NAMES, COUNT(VAR_TYPE_NAMES), "variance", name, &i);
    if (!st) *v = (eb_var_type)i;
    return st;
}

eb_status eb_int_list_parse(const char *field, const char *text, long min, long max, int32_t **out, int *n) {
    int cap = 1;
    for (const char *q = text; *q; q++) cap += *q == ',';
    *n = 0;
    if (!(*out = malloc((size_t)cap * sizeof **out))) return eb_fail(EB_ERUNTIME, "out of memory");
    for (const char *q = text;;) {
        char *end;
        errno = 0;
        long v = strtol(q, &end, 10);
        if (errno || end == q || v < min || v > max || (*end && *end != ',')) {
            free(*out), *out = NULL;
            eb_status st = eb_fail(EB_EINPUT, "`%s`: item %d of '%s' is not an integer in [%ld, %ld]", field, *n, text,
                                   min, max);
            *n = 0;
            return st;
        }
        (*out)[(*n)++] = (int32_t)v;
        if (!*end) return EB_OK;
        q = end + 1;
    }
}

const char *eb_eta_text(char *buf, size_t cap, double left) {
    long s = lround(left);
    if (s >= 60) snprintf(buf, cap, " (ETA %ld min %02ld s)", s / 60, s % 60);
    else snprintf(buf, cap, " (ETA %ld s)", s);
    return buf;
}

/* ------------------------------------------------------------------------ */
/* Parameters                                                                */

void eb_run_params_defaults(eb_run_params *p) {
    *p = (eb_run_params){
        .sampler = EB_SAMPLER_DDPM, .respacing = "50", .eta = NAN, .variance = EB_VARIANCE_LARGE, .cfg_scale = 1.5,
        .cfg_channels = "official", .batch = 32, .device = {.device = NULL, .precision = EB_PRECISION_FP32},
    };
}

/* What can be checked before anything is loaded; messages name the field. */
static eb_status params_check(const eb_run_params *p, int sampling) {
    if (!p->model || !*p->model) return eb_fail(EB_EINPUT, "`model`: none given");
    if (p->heads < 0) return eb_fail(EB_EINPUT, "`heads`: %d is negative", p->heads);
    if (p->threads < 0) return eb_fail(EB_EINPUT, "`threads`: %d is negative", p->threads);
    if (!isfinite(p->cfg_scale)) return eb_fail(EB_EINPUT, "`cfg_scale`: %g is not a finite number", p->cfg_scale);
    if (p->cfg_scale < 0)
        return eb_fail(EB_EINPUT, "`cfg_scale`: %g is negative (0 = unconditional, 1 = no guidance)", p->cfg_scale);
    if (!sampling) return EB_OK;
    if (!isnan(p->eta) && p->sampler != EB_SAMPLER_DDIM)
        return eb_fail(EB_EINPUT, "`eta` is DDIM's; this run samples with %s (give `sampler` ddim)",
                       eb_sampler_kind_name(p->sampler));
    if (!isnan(p->eta) && !(p->eta >= 0 && p->eta <= 1))
        return eb_fail(EB_EINPUT, "`eta`: %g is outside [0, 1] (0 deterministic, 1 DDPM-like noise)", p->eta);
    if (p->sampler != EB_SAMPLER_DDPM && p->sampler != EB_SAMPLER_DDIM)
        return eb_fail(EB_EINPUT, "`sampler`: %d is not a sampler kind", (int)p->sampler);
    if (p->variance != EB_VARIANCE_LARGE && p->variance != EB_VARIANCE_SMALL)
        return eb_fail(EB_EINPUT, "`variance`: %d is not a variance choice", (int)p->variance);
    if (p->batch < 1) return eb_fail(EB_EINPUT, "`batch`: %d is not a positive count", p->batch);
    if (!!p->noise + !!p->labels + (p->n != 0) != 1)
        return eb_fail(EB_EINPUT, "give exactly one of `noise`, `labels`, `n` (the start of the run)");
    if (p->labels && p->n_labels < 1) return eb_fail(EB_EINPUT, "`labels`: `n_labels` %d is not a positive count", p->n_labels);
    if (p->n < 0 || p->n > (1 << 20)) return eb_fail(EB_EINPUT, "`n`: %d is not a count in [1, %d]", p->n, 1 << 20);
    return EB_OK;
}

/* ------------------------------------------------------------------------ */
/* Opening                                                                   */

void eb_run_close(eb_run *r) {
    eb_model_free(r->model);
    eb_schedule_free(&r->sched);
    eb_cache_schedule_free(r->table);
    free(r->table_text), free(r->x_T), free(r->y);
    memset(r, 0, sizeof *r);
}

/* Appends one line to r->warning. */
static void add_warning(eb_run *r, const char *text) {
    size_t used = strlen(r->warning);
    if (*text) snprintf(r->warning + used, sizeof r->warning - used, "%s%s", used ? "\n" : "", text);
}

/* cfg_channels: a rule name, or K = the first K output channels. */
static eb_status open_guidance(eb_run *r, const char *ch) {
    const eb_config *c = eb_model_config(r->model);
    eb_guidance rule = EB_GUIDE_OFFICIAL;
    if (!ch || !eb_guidance_parse(&rule, ch)) {
        r->guidance = eb_guidance_name(rule);
        r->so.guide_channels = eb_guide_channels(c, rule);
        return EB_OK;
    }
    char *end = NULL;
    errno = 0;
    long k = strtol(ch, &end, 10);
    if (errno || end == ch || *end || k < 0 || k > eb_out_channels(c))
        return eb_fail(EB_EINPUT, "`cfg_channels` '%s': expected official, eps, all or a count in [0, %d] (the model's "
                                  "output channels)", ch, eb_out_channels(c));
    r->guidance = "count";
    r->so.guide_channels = (int)k;
    return EB_OK;
}

eb_status eb_run_open_model(eb_run *r, const eb_run_params *p) {
    memset(r, 0, sizeof *r);
    eb_status st = params_check(p, 0);
    if (st) return st;
    eb_set_threads(p->threads);
    st = eb_model_load_on(&r->model, p->model, p->heads, &p->device);
    if (!st) st = eb_sha256_file(p->model, r->model_sha256);
    if (!st) st = open_guidance(r, p->cfg_channels);
    if (st) {
        eb_run_close(r);
        return st;
    }
    r->so.cfg_scale = (float)p->cfg_scale;
    add_warning(r, eb_model_warning(r->model));
    return EB_OK;
}

/* Reads the table and checks it against the model and the respaced
 * schedule. A failure whose table names another respacing (its
 * "## sampler: [ddpm|ddim] respacing=SPEC") says which to give; a table
 * searched under the other sampler kind gets a warning. */
static eb_status open_table(eb_run *r, const char *path, const char *spacing) {
    size_t bytes;
    eb_status st = eb_read_file(path, MAX_TABLE_TEXT, &r->table_text, &bytes);
    if (!st && memchr(r->table_text, 0, bytes)) st = eb_fail(EB_EINPUT, "%s: holds a NUL byte, not a text table", path);
    if (!st) st = eb_cache_schedule_parse(&r->table, r->table_text, path);
    if (st) return st;
    const eb_cache_schedule *cs = r->table;
    char table_kind[16] = "", table_spacing[64] = "";
    const char *at = strstr(cs->sampler, "respacing=");
    if (at) sscanf(at + strlen("respacing="), "%63s", table_spacing);
    sscanf(cs->sampler, "%15s", table_kind);
    eb_sampler_kind kind;
    int known_kind = !eb_sampler_kind_parse(&kind, table_kind);
    st = eb_cache_schedule_check(cs, eb_model_config(r->model), &r->sched);
    if (!spacing) spacing = "";
    if (st && table_spacing[0] && strcmp(table_spacing, spacing)) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", eb_last_error());
        return eb_fail(st, "%s (the table was written for respacing %s, this run uses %s: give `respacing` %s)", msg,
                       table_spacing, spacing, table_spacing);
    }
    if (!st && known_kind && kind != r->so.kind) {
        char text[1024];
        snprintf(text, sizeof text, "%s was searched on a %s recording (## sampler: %s) and this run samples with %s: "
                 "its states and noise scaling were chosen for the other sampler", path, table_kind, cs->sampler,
                 eb_sampler_kind_name(r->so.kind));
        add_warning(r, text);
    }
    return st;
}

/* x_T and labels: datasets noise (N, C, H, W) and y (N) of a file, or x_T
 * drawn from the seed (docs/rng.md) with the given labels or n labels cycling
 * over the classes. */
static eb_status open_start(eb_run *r, const eb_run_params *p) {
    const eb_config *c = eb_model_config(r->model);
    const size_t per = (size_t)c->in_channels * c->input_size * c->input_size;
    eb_status st = EB_OK;
    if (p->noise) {
        eb_h5 *f;
        int64_t xd[4], yd[1], want_x[4] = {EB_H5_ANY, c->in_channels, c->input_size, c->input_size};
        st = eb_h5_open(&f, p->noise);
        if (!st) st = eb_h5_read_f32(f, "noise", 4, want_x, &r->x_T, xd, EB_H5_FINITE);
        if (!st) {
            int64_t want_y[1] = {xd[0]};
            st = eb_h5_read_i32(f, "y", 1, want_y, &r->y, yd);
        }
        eb_h5_close(f);
        if (!st && xd[0] == 0) st = eb_fail(EB_EINPUT, "%s: dataset 'noise' holds no rows", p->noise);
        for (int64_t i = 0; !st && i < xd[0]; i++)
            if (r->y[i] < 0 || r->y[i] > c->num_classes)
                st = eb_fail(EB_EINPUT, "%s: dataset 'y' [%lld] = %d outside [0, %d]", p->noise, (long long)i, r->y[i],
                             c->num_classes);
        if (!st) r->N = (int)xd[0];
        return st;
    }
    r->N = p->labels ? p->n_labels : p->n;
    if (!(r->y = malloc((size_t)r->N * sizeof *r->y)) || !(r->x_T = malloc((size_t)r->N * per * sizeof *r->x_T)))
        return eb_fail(EB_ERUNTIME, "out of memory");
    for (int i = 0; !st && i < r->N; i++) {
        r->y[i] = p->labels ? p->labels[i] : c->num_classes ? i % c->num_classes : 0;
        if (r->y[i] < 0 || r->y[i] > c->num_classes)
            st = eb_fail(EB_EINPUT, "`labels`: item %d = %d is outside [0, %d] (%d is the null class)", i, r->y[i],
                         c->num_classes, c->num_classes);
    }
    for (int i = 0; !st && i < r->N; i++) eb_rng_fill_normal(r->x_T + i * per, per, eb_rng_key(p->seed, eb_stream_xT(i)));
    return st;
}

eb_status eb_run_open(eb_run *r, const eb_run_params *p) {
    memset(r, 0, sizeof *r);
    eb_status st = params_check(p, 1);
    if (!st) st = eb_run_open_model(r, p);
    if (st) return st;
    const eb_config *c = eb_model_config(r->model);
    r->so.kind = p->sampler;
    r->so.var_type = c->learn_sigma ? EB_VAR_LEARNED_RANGE
                     : p->variance == EB_VARIANCE_SMALL ? EB_VAR_FIXED_SMALL : EB_VAR_FIXED_LARGE;
    r->so.eta = isnan(p->eta) ? 0.0f : (float)p->eta;
    r->so.seed = p->seed;
    r->so.progress = p->progress;
    r->batch = p->batch;
    st = eb_schedule_create(&r->sched, p->respacing);
    if (!st && p->schedule) st = open_table(r, p->schedule, p->respacing);
    if (!st) st = open_start(r, p);
    if (st) eb_run_close(r);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Sampling                                                                  */

eb_status eb_run_sample(const eb_run *r, float *x, eb_cache_stats *stats, double *wall) {
    const eb_config *c = eb_model_config(r->model);
    const size_t per = (size_t)c->in_channels * c->input_size * c->input_size;
    const double t0 = eb_now_seconds();
    if (x != r->x_T) memcpy(x, r->x_T, (size_t)r->N * per * sizeof *x);
    eb_status st = EB_OK;
    for (int first = 0; !st && first < r->N; first += r->batch) {
        int b = r->N - first < r->batch ? r->N - first : r->batch;
        st = eb_sample_cached(r->model, &r->sched, &r->so, r->table, x + first * per, r->y + first, b,
                              r->first_index + first, stats);
    }
    *wall = eb_now_seconds() - t0;
    return st;
}

/* ------------------------------------------------------------------------ */
/* Attributes                                                                */

eb_status eb_run_model_attrs_write(eb_h5w *w, const eb_run *r, const eb_run_params *p) {
    const eb_config *c = eb_model_config(r->model);
    eb_h5w_attr_str(w, NULL, "ebcache_version", EBCACHE_VERSION);
    eb_h5w_attr_str(w, NULL, "model", p->model);
    eb_h5w_attr_str(w, NULL, "model_sha256", r->model_sha256);
    eb_h5w_attr_str(w, NULL, "device", eb_model_device(r->model));
    struct { const char *name; int value; } cfg[] = {
        {"input_size", c->input_size}, {"patch_size", c->patch_size}, {"in_channels", c->in_channels},
        {"hidden_size", c->hidden_size}, {"depth", c->depth}, {"num_heads", c->num_heads},
        {"num_classes", c->num_classes}, {"learn_sigma", c->learn_sigma},
    };
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++) eb_h5w_attr_i64(w, NULL, cfg[i].name, cfg[i].value);
    eb_h5w_attr_f64(w, NULL, "cfg_scale", r->so.cfg_scale);
    eb_h5w_attr_i64(w, NULL, "cfg_channels", r->so.guide_channels);
    return eb_h5w_attr_str(w, NULL, "cfg_guidance", r->guidance);
}

eb_status eb_run_attrs_write(eb_h5w *w, const eb_run *r, const eb_run_params *p) {
    eb_run_model_attrs_write(w, r, p);
    eb_h5w_attr_str(w, NULL, "sampler", eb_sampler_kind_name(r->so.kind));
    eb_h5w_attr_str(w, NULL, "respacing", p->respacing ? p->respacing : "");
    eb_h5w_attr_f64(w, NULL, "eta", r->so.eta);
    eb_h5w_attr_str(w, NULL, "variance", eb_var_type_name(r->so.var_type));
    eb_h5w_attr_i64(w, NULL, "seed", (int64_t)r->so.seed);
    eb_h5w_attr_str(w, NULL, "start", p->noise ? p->noise : "seed");
    eb_h5w_attr_i64(w, NULL, "batch", r->batch);
    eb_h5w_attr_str(w, NULL, "schedule", r->table ? p->schedule : "");
    eb_h5w_attr_str(w, NULL, "schedule_text", r->table_text ? r->table_text : "");
    if (r->table && r->table->method[0]) return eb_h5w_attr_str(w, NULL, "schedule_method", r->table->method);
    return EB_OK;
}

/* ------------------------------------------------------------------------ */
/* The run that wrote a file                                                 */

/* A copy of s in buf's free space (*used bytes taken), or NULL when it is full. */
static const char *keep(char *buf, size_t cap, size_t *used, const char *s) {
    size_t n = strlen(s) + 1;
    if (*used + n > cap) return NULL;
    char *at = memcpy(buf + *used, s, n);
    *used += n;
    return at;
}

/* String attribute `name` kept in buf (*out NULL when absent and optional). */
static eb_status text_attr(eb_h5 *f, const char *name, int required, char *buf, size_t cap, size_t *used,
                           const char **out) {
    *out = NULL;
    if (!eb_h5_has_attr(f, NULL, name))
        return required ? eb_fail(EB_EINPUT, "%s: no root attribute '%s': not a file an ebcache run wrote (sample, "
                                             "record)", eb_h5_path(f), name)
                        : EB_OK;
    char *s;
    eb_status st = eb_h5_attr_str(f, NULL, name, &s);
    if (st) return st;
    if (!(*out = keep(buf, cap, used, s))) st = eb_fail(EB_EINPUT, "%s: attribute '%s' does not fit in %zu bytes",
                                                       eb_h5_path(f), name, cap);
    free(s);
    return st;
}

static eb_status number_attr(eb_h5 *f, const char *name, double *v) {
    if (!eb_h5_has_attr(f, NULL, name))
        return eb_fail(EB_EINPUT, "%s: no root attribute '%s': not a file an ebcache run wrote (sample, record)",
                       eb_h5_path(f), name);
    return eb_h5_attr_f64(f, NULL, name, v);
}

eb_status eb_run_params_from_file(eb_run_params *p, const char *path, char *buf, size_t cap, int32_t **labels) {
    eb_run_params_defaults(p);
    *labels = NULL;
    eb_h5 *f;
    eb_status st = eb_h5_open(&f, path);
    if (st) return st;
    size_t used = 0;
    const char *sampler = NULL, *variance = NULL, *start = NULL, *guidance = NULL;
    double cfg_scale = 0, channels = 0, seed = 0, eta = 0, batch = 0, heads = 0;
    st = text_attr(f, "model", 1, buf, cap, &used, &p->model);
    if (!st) st = text_attr(f, "sampler", 1, buf, cap, &used, &sampler);
    if (!st) st = text_attr(f, "respacing", 1, buf, cap, &used, &p->respacing);
    if (!st) st = text_attr(f, "variance", 0, buf, cap, &used, &variance);
    if (!st) st = text_attr(f, "start", 1, buf, cap, &used, &start);
    if (!st) st = text_attr(f, "cfg_guidance", 0, buf, cap, &used, &guidance);
    if (!st) st = text_attr(f, "schedule", 0, buf, cap, &used, &p->schedule);
    if (!st) st = number_attr(f, "cfg_scale", &cfg_scale);
    if (!st) st = number_attr(f, "cfg_channels", &channels);
    if (!st) st = number_attr(f, "seed", &seed);
    if (!st && eb_h5_has_attr(f, NULL, "batch")) st = number_attr(f, "batch", &batch);
    if (!st && eb_h5_has_attr(f, NULL, "num_heads")) st = number_attr(f, "num_heads", &heads);
    if (!st) st = eb_sampler_kind_parse(&p->sampler, sampler);
    if (!st && p->sampler == EB_SAMPLER_DDIM && eb_h5_has_attr(f, NULL, "eta")) st = number_attr(f, "eta", &eta);
    if (st) goto done;
    p->eta = p->sampler == EB_SAMPLER_DDIM ? eta : NAN;
    p->variance = variance && !strcmp(variance, eb_var_type_name(EB_VAR_FIXED_SMALL)) ? EB_VARIANCE_SMALL
                                                                                      : EB_VARIANCE_LARGE;
    p->cfg_scale = cfg_scale;
    p->seed = (uint64_t)seed;
    if (batch >= 1) p->batch = (int)batch;
    p->heads = (int)heads;
    if (p->schedule && !*p->schedule) p->schedule = NULL;
    /* the guidance rule when the file names one, so the run writes the same attributes again */
    char count[32];
    snprintf(count, sizeof count, "%lld", (long long)channels);
    p->cfg_channels = keep(buf, cap, &used, guidance && strcmp(guidance, "count") ? guidance : count);
    if (!p->cfg_channels) st = eb_fail(EB_EINPUT, "%s: the attributes do not fit in %zu bytes", path, cap);
    if (!st && strcmp(start, "seed")) {
        p->noise = start;
    } else if (!st && eb_h5_lookup(f, "/y") != EB_H5_DATASET) {
        st = eb_fail(EB_EINPUT, "%s: the run started from the seed but the file does not store its labels (/y)", path);
    } else if (!st) {
        int64_t d[1];
        if (!(st = eb_h5_read_i32(f, "/y", 1, NULL, labels, d))) p->labels = *labels, p->n_labels = (int)d[0];
    }
done:
    eb_h5_close(f);
    if (st) free(*labels), *labels = NULL;
    return st;
}

eb_status eb_config_resolve(eb_config *c, const char *config, const char *model, int heads, char *label, size_t cap) {
    if (model && config) return eb_fail(EB_EINPUT, "give `model` or `config`, not both");
    if (config) {
        snprintf(label, cap, "%s%s", strncmp(config, "DiT-", 4) ? "DiT-" : "", config);
        return eb_config_named(c, config);
    }
    if (!model) return eb_fail(EB_EINPUT, "give `model` or `config`");
    eb_model *m;
    eb_status st = eb_model_load(&m, model, heads);
    if (st) return st;
    *c = *eb_model_config(m);
    eb_model_free(m);
    snprintf(label, cap, "%s", model);
    return EB_OK;
}
