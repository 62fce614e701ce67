/* pipeline/ablation_spec.c — the ablation spec file (pipeline/ablation.h, docs/ablation.md). */
#include "pipeline/ablation.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
    return s;
}

/* Splits a value list on spaces and commas into words (in place). */
static int split_words(char *v, char **words, int cap) {
    int n = 0;
    for (char *tok = strtok(v, " ,\t"); tok; tok = strtok(NULL, " ,\t")) {
        if (n == cap) return -1;
        words[n++] = tok;
    }
    return n;
}

static int parse_int(const char *w, long min, long max, int *out) {
    char *end;
    errno = 0;
    long v = strtol(w, &end, 10);
    if (errno || end == w || *end || v < min || v > max) return -1;
    *out = (int)v;
    return 0;
}

static int parse_double(const char *w, double min, double *out) {
    char *end;
    double v = strtod(w, &end);
    if (end == w || *end || !isfinite(v) || v < min) return -1;
    *out = v;
    return 0;
}

/* One "key = value" line into the spec; a message in why on failure. */
static int spec_set(eb_ablation_spec *s, const char *key, char *value, char *why, size_t cap) {
    char *w[EB_ABLATION_MAX_LIST];
    if (!strcmp(key, "name")) {
        for (const char *c = value; *c; c++)
            if (!isalnum((unsigned char)*c) && *c != '-' && *c != '_')
                return snprintf(why, cap, "name '%s': letters, digits, '-' and '_' only", value), -1;
        if (!*value || strlen(value) >= sizeof s->name) return snprintf(why, cap, "name: 1 to 63 characters"), -1;
        strcpy(s->name, value);
        return 0;
    }
    static const struct {
        const char *key;
        size_t offset;
    } paths[] = {{"model", offsetof(eb_ablation_spec, model)},
                 {"vae", offsetof(eb_ablation_spec, vae)},
                 {"inception", offsetof(eb_ablation_spec, inception)},
                 {"reference", offsetof(eb_ablation_spec, reference)},
                 {"router", offsetof(eb_ablation_spec, router)}};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        if (!strcmp(key, paths[i].key)) {
            if (!*value) return snprintf(why, cap, "%s: no value", key), -1;
            if (strlen(value) >= PATH_MAX) return snprintf(why, cap, "%s: path too long", key), -1;
            strcpy((char *)s + paths[i].offset, value);
            return 0;
        }
    if (!strcmp(key, "judge")) {
        if (eb_ablation_judge_parse(&s->judge, value)) return snprintf(why, cap, "judge: %s", eb_last_error()), -1;
        return 0;
    }
    if (!strcmp(key, "precision")) {
        eb_precision prec;
        if (eb_precision_parse(value, &prec) || strlen(value) >= sizeof s->precision)
            return snprintf(why, cap, "precision: '%s' is not fp32, tf32 or bf16", value), -1;
        strcpy(s->precision, value);
        return 0;
    }
    if (!strcmp(key, "device")) {
        if (strcmp(value, "cpu") && strcmp(value, "cuda"))
            return snprintf(why, cap, "device: '%s' is not cpu or cuda", value), -1;
        strcpy(s->device, value);
        return 0;
    }
    int n = split_words(value, w, EB_ABLATION_MAX_LIST);
    if (n < 0) return snprintf(why, cap, "%s: more than %d values", key, EB_ABLATION_MAX_LIST), -1;
    if (n == 0) return snprintf(why, cap, "%s: no value", key), -1;
    if (!strcmp(key, "samplers")) {
        for (int i = 0; i < n; i++) {
            char *dash = strchr(w[i], '-');
            if (!dash || (strncmp(w[i], "ddpm-", 5) && strncmp(w[i], "ddim-", 5)) ||
                parse_int(dash + 1, 2, EB_DIFFUSION_STEPS, &s->samplers[i].steps))
                return snprintf(why, cap, "samplers: '%s' is not ddpm-N or ddim-N (2 <= N <= 1000)", w[i]), -1;
            snprintf(s->samplers[i].kind, sizeof s->samplers[i].kind, "%.4s", w[i]);
        }
        s->n_samplers = n;
    } else if (!strcmp(key, "methods")) {
        for (int i = 0; i < n; i++) {
            const eb_method *m = eb_method_find(w[i]);
            if (!m) return snprintf(why, cap, "methods: unknown method '%s' (see docs/ablation.md)", w[i]), -1;
            s->methods[i] = eb_method_index(m);
        }
        s->n_methods = n;
    } else if (!strcmp(key, "speedups")) {
        for (int i = 0; i < n; i++)
            if (parse_double(w[i], 1.0, &s->speedups[i]) || s->speedups[i] <= 1.0)
                return snprintf(why, cap, "speedups: '%s' is not a number above 1", w[i]), -1;
        s->n_speedups = n;
    } else if (!strncmp(key, "sweep.", 6)) {
        const eb_method *m = eb_method_find(key + 6);
        if (!m) return snprintf(why, cap, "%s: unknown method '%s' (see docs/ablation.md)", key, key + 6), -1;
        if (!m->generate || isfinite(m->fixed))
            return snprintf(why, cap, "%s: %s has no parameter to sweep", key, m->name), -1;
        if (m->param == EB_PARAM_BUDGET)
            return snprintf(why, cap, "%s: the budget's parameter is the FLOP budget itself: sweep it with 'speedups'",
                            key), -1;
        const int mi = eb_method_index(m);
        if (s->n_native[mi]) return snprintf(why, cap, "'%s' is set twice", key), -1;
        for (int i = 0; i < n; i++) {
            int interval;
            double *v = &s->native[mi][i];
            if (m->param == EB_PARAM_INTERVAL ? parse_int(w[i], 1, EB_DIFFUSION_STEPS, &interval)
                                              : parse_double(w[i], 0.0, v) || !(*v > 0))
                return snprintf(why, cap, "%s: '%s' is not %s", key, w[i],
                                m->param == EB_PARAM_INTERVAL ? "an interval in [1, 1000] (steps)"
                                : m->param == EB_PARAM_THRESHOLD ? "a threshold above 0"
                                                                  : "a δ scale above 0"), -1;
            if (m->param == EB_PARAM_INTERVAL) *v = interval;
        }
        s->n_native[mi] = n;
    } else if (!strcmp(key, "seeds")) {
        for (int i = 0; i < n; i++)
            if (parse_int(w[i], 0, INT32_MAX, &s->seeds[i]))
                return snprintf(why, cap, "seeds: '%s' is not a non-negative integer", w[i]), -1;
        s->n_seeds = n;
    } else {
        static const struct {
            const char *key;
            long min, max;
            size_t offset;
        } ints[] = {{"n", 2, 1000000, offsetof(eb_ablation_spec, n)},
                    {"calibration", 2, 100000, offsetof(eb_ablation_spec, calib_n)},
                    {"calibration_seed", 0, INT32_MAX, offsetof(eb_ablation_spec, calib_seed)},
                    {"real", 4, 60000, offsetof(eb_ablation_spec, n_real)},
                    {"batch", 1, 65536, offsetof(eb_ablation_spec, batch)},
                    {"timing_n", 1, 65536, offsetof(eb_ablation_spec, timing_n)},
                    {"timing_rounds", 1, 100, offsetof(eb_ablation_spec, timing_rounds)},
                    {"decode_batch", 1, 65536, offsetof(eb_ablation_spec, decode_batch)}};
        if (n != 1) return snprintf(why, cap, "%s: one value expected", key), -1;
        if (!strcmp(key, "cfg")) {
            if (parse_double(w[0], 1.0, &s->cfg)) return snprintf(why, cap, "cfg: '%s' is not a number >= 1", w[0]), -1;
            return 0;
        }
        if (!strcmp(key, "scale_factor")) {
            if (parse_double(w[0], 0.0, &s->scale_factor) || !(s->scale_factor > 0))
                return snprintf(why, cap, "scale_factor: '%s' is not a number above 0", w[0]), -1;
            return 0;
        }
        for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
            if (!strcmp(key, ints[i].key)) {
                if (parse_int(w[0], ints[i].min, ints[i].max, (int *)((char *)s + ints[i].offset)))
                    return snprintf(why, cap, "%s: '%s' is not an integer in [%ld, %ld]", key, w[0], ints[i].min,
                                    ints[i].max), -1;
                return 0;
            }
        return snprintf(why, cap, "unknown key '%s' (see docs/ablation.md)", key), -1;
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(w[i], w[j])) return snprintf(why, cap, "%s: '%s' is listed twice", key, w[i]), -1;
    return 0;
}

static int listed(const eb_ablation_spec *s, int method) {
    for (int i = 0; i < s->n_methods; i++)
        if (s->methods[i] == method) return 1;
    return 0;
}

/* What the lines cannot check alone: each native sweep is of a listed method
 * and its intervals fit every sampler; every listed method has something to
 * run at (no parameter, a fixed one, its sweep, or the speed targets). */
static eb_status check_sweeps(const eb_ablation_spec *s, int methods_line, const int *sweep_line) {
    const char *path = s->path;
    for (int m = 0; m < EB_NMETHODS; m++) {
        if (!s->n_native[m]) continue;
        if (!listed(s, m))
            return eb_fail(EB_EINPUT, "%s:%d: sweep.%s: %s is not in 'methods'", path, sweep_line[m], eb_methods[m].name,
                           eb_methods[m].name);
        for (int i = 0; eb_methods[m].param == EB_PARAM_INTERVAL && i < s->n_native[m]; i++)
            for (int k = 0; k < s->n_samplers; k++)
                if (s->native[m][i] > s->samplers[k].steps)
                    return eb_fail(EB_EINPUT, "%s:%d: sweep.%s: interval %g is above the %d steps of %s-%d", path,
                                   sweep_line[m], eb_methods[m].name, s->native[m][i], s->samplers[k].steps,
                                   s->samplers[k].kind, s->samplers[k].steps);
    }
    for (int i = 0; i < s->n_methods; i++) {
        const int m = s->methods[i];
        const eb_method *d = &eb_methods[m];
        if (!d->generate || isfinite(d->fixed) || s->n_native[m]) continue;
        if (!d->sweeps) /* its one table needs a parameter */
            return eb_fail(EB_EINPUT, "%s:%d: methods: %s takes no speed target and has no fixed parameter: give its "
                                      "values with 'sweep.%s = …'", path, methods_line, d->name, d->name);
        if (!s->n_speedups)
            return eb_fail(EB_EINPUT, "%s: 'speedups' is required by the cached methods (or 'sweep.%s')", path, d->name);
    }
    return EB_OK;
}

const char *eb_ablation_judge_name(eb_ablation_judge j) { return j == EB_JUDGE_IMAGENET ? "imagenet" : "fmnist"; }

eb_status eb_ablation_judge_parse(eb_ablation_judge *j, const char *name) {
    if (!strcmp(name, "fmnist")) *j = EB_JUDGE_FMNIST;
    else if (!strcmp(name, "imagenet")) *j = EB_JUDGE_IMAGENET;
    else return eb_fail(EB_EINPUT, "'%s' is not a judge (fmnist, imagenet)", name);
    return EB_OK;
}

const char *eb_ablation_sampler_name(const eb_ablation_spec *s, int i, char *buf) {
    sprintf(buf, "%s-%d", s->samplers[i].kind, s->samplers[i].steps);
    return buf;
}

eb_status eb_ablation_spec_read(eb_ablation_spec *s, const char *path) {
    *s = (eb_ablation_spec){.cfg = 1.5, .n = 1000, .calib_n = 32, .calib_seed = 1000, .n_real = 10000, .batch = 32,
               .timing_n = 8, .timing_rounds = 3, .device = "cpu", .precision = "fp32", .scale_factor = 0.18215, .decode_batch = 1};
    if (strlen(path) >= sizeof s->path) return eb_fail(EB_EINPUT, "%s: path too long", path);
    strcpy(s->path, path);
    FILE *f = fopen(path, "r");
    if (!f) return eb_fail(EB_EINPUT, "%s: cannot open: %s", path, strerror(errno));
    char line[4096], why[512];
    static const char *const keys[] = {"name", "model", "samplers", "methods", "speedups", "seeds",
                                       "n", "calibration", "calibration_seed", "real", "batch", "cfg",
                                       "timing_n", "timing_rounds", "judge", "vae", "inception", "reference",
                                       "scale_factor", "decode_batch", "device", "precision", "router"};
    enum { NKEYS = sizeof keys / sizeof keys[0], K_REAL = 9, K_IMAGENET = 15, K_PRECISION = 21, K_ROUTER = 22 }; /* keys[15..19]: the ImageNet judge's */
    int lineno = 0, methods_line = 0, sweep_line[EB_NMETHODS] = {0}, key_line[NKEYS] = {0};
    eb_status st = EB_OK;
    unsigned seen = 0;
    while (!st && fgets(line, sizeof line, f)) {
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            st = eb_fail(EB_EINPUT, "%s:%d: line longer than %zu bytes", path, lineno, sizeof line - 2);
            break;
        }
        char *hash = strchr(line, '#');
        if (hash) *hash = 0;
        char *text = trim(line);
        if (!*text) continue;
        char *eq = strchr(text, '=');
        if (!eq) {
            st = eb_fail(EB_EINPUT, "%s:%d: expected 'key = value', got '%s'", path, lineno, text);
            break;
        }
        *eq = 0;
        char *key = trim(text), *value = trim(eq + 1);
        for (unsigned i = 0; i < NKEYS; i++)
            if (!strcmp(key, keys[i])) {
                if (seen & 1u << i) st = eb_fail(EB_EINPUT, "%s:%d: '%s' is set twice", path, lineno, key);
                seen |= 1u << i;
                key_line[i] = lineno;
            }
        if (!st && spec_set(s, key, value, why, sizeof why))
            st = eb_fail(EB_EINPUT, "%s:%d: %s", path, lineno, why);
        if (!strcmp(key, "methods")) methods_line = lineno;
        else if (!strncmp(key, "sweep.", 6) && eb_method_find(key + 6))
            sweep_line[eb_method_index(eb_method_find(key + 6))] = lineno;
    }
    if (!st && ferror(f)) st = eb_fail(EB_EINPUT, "%s: read error", path);
    fclose(f);
    if (st) return st;
    const char *missing = !s->name[0] ? "name" : !s->n_samplers ? "samplers" : !s->n_methods ? "methods"
                        : !s->n_seeds ? "seeds" : NULL;
    if (missing) return eb_fail(EB_EINPUT, "%s: '%s' is required (see docs/ablation.md)", path, missing);
    /* the judge's keys: the ImageNet judge needs its three files and compares with the whole reference batch */
    const int imagenet = s->judge == EB_JUDGE_IMAGENET;
    for (int i = K_IMAGENET; !imagenet && i < K_IMAGENET + 5; i++)
        if (key_line[i])
            return eb_fail(EB_EINPUT, "%s:%d: %s: only with judge = imagenet", path, key_line[i], keys[i]);
    if (strcmp(s->precision, "fp32") && strcmp(s->device, "cuda"))
        return eb_fail(EB_EINPUT, "%s:%d: precision: %s needs device = cuda", path, key_line[K_PRECISION], s->precision);
    if (imagenet && key_line[K_REAL])
        return eb_fail(EB_EINPUT, "%s:%d: real: the ImageNet judge compares with the whole reference batch", path,
                       key_line[K_REAL]);
    missing = !imagenet ? NULL : !s->vae[0] ? "vae" : !s->inception[0] ? "inception" : !s->reference[0] ? "reference"
                                                                                                     : NULL;
    if (missing) return eb_fail(EB_EINPUT, "%s: judge = imagenet: '%s' is required (see docs/ablation.md)", path, missing);
    int routed = 0; /* a method that reads the router */
    for (int i = 0; i < s->n_methods; i++)
        if (eb_methods[s->methods[i]].needs & EB_NEEDS_ROUTER) routed = i + 1;
    if (routed && !s->router[0])
        return eb_fail(EB_EINPUT, "%s:%d: methods: %s needs 'router = SCORES.h5' (tools/train_l2c.py --scores, "
                       "tools/convert_l2c.py --scores)", path, methods_line, eb_methods[s->methods[routed - 1]].name);
    if (!routed && s->router[0])
        return eb_fail(EB_EINPUT, "%s:%d: router: only with l2c in 'methods'", path, key_line[K_ROUTER]);
    return check_sweeps(s, methods_line, sweep_line);
}

