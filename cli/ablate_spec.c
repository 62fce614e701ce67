/* ablate_spec.c — the ablation spec file (see ablate_spec.h, docs/ablation.md). */
#include "cli/ablate_spec.h"

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
static int spec_set(spec *s, const char *key, char *value, char *why, size_t cap) {
    char *w[MAX_LIST];
    if (!strcmp(key, "name")) {
        for (const char *c = value; *c; c++)
            if (!isalnum((unsigned char)*c) && *c != '-' && *c != '_')
                return snprintf(why, cap, "name '%s': letters, digits, '-' and '_' only", value), -1;
        if (!*value || strlen(value) >= sizeof s->name) return snprintf(why, cap, "name: 1 to 63 characters"), -1;
        strcpy(s->name, value);
        return 0;
    }
    if (!strcmp(key, "model")) {
        if (strlen(value) >= PATH_MAX) return snprintf(why, cap, "model: path too long"), -1;
        strcpy(s->model, value);
        return 0;
    }
    int n = split_words(value, w, MAX_LIST);
    if (n < 0) return snprintf(why, cap, "%s: more than %d values", key, MAX_LIST), -1;
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
            if (m->generate && !m->sweeps && !isfinite(m->fixed)) /* its one table needs a parameter */
                return snprintf(why, cap, "methods: %s takes no speed target and has no fixed parameter: a grid "
                                          "cannot run it", w[i]), -1;
            s->methods[i] = eb_method_index(m);
        }
        s->n_methods = n;
    } else if (!strcmp(key, "speedups")) {
        for (int i = 0; i < n; i++)
            if (parse_double(w[i], 1.0, &s->speedups[i]) || s->speedups[i] <= 1.0)
                return snprintf(why, cap, "speedups: '%s' is not a number above 1", w[i]), -1;
        s->n_speedups = n;
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
        } ints[] = {{"n", 2, 1000000, offsetof(spec, n)},
                    {"calibration", 2, 100000, offsetof(spec, calib_n)},
                    {"calibration_seed", 0, INT32_MAX, offsetof(spec, calib_seed)},
                    {"real", 4, 60000, offsetof(spec, n_real)},
                    {"batch", 1, 65536, offsetof(spec, batch)},
                    {"timing_n", 1, 65536, offsetof(spec, timing_n)},
                    {"timing_rounds", 1, 100, offsetof(spec, timing_rounds)}};
        if (n != 1) return snprintf(why, cap, "%s: one value expected", key), -1;
        if (!strcmp(key, "cfg")) {
            if (parse_double(w[0], 1.0, &s->cfg)) return snprintf(why, cap, "cfg: '%s' is not a number >= 1", w[0]), -1;
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

eb_status ablate_spec_read(spec *s, const char *path) {
    *s = (spec){.cfg = 1.5, .n = 1000, .calib_n = 32, .calib_seed = 1000, .n_real = 10000, .batch = 32,
               .timing_n = 8, .timing_rounds = 3};
    if (strlen(path) >= sizeof s->path) return eb_fail(EB_EINPUT, "%s: path too long", path);
    strcpy(s->path, path);
    FILE *f = fopen(path, "r");
    if (!f) return eb_fail(EB_EINPUT, "%s: cannot open: %s", path, strerror(errno));
    char line[4096], why[512];
    int lineno = 0;
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
        static const char *const keys[] = {"name", "model", "samplers", "methods", "speedups", "seeds",
                                           "n", "calibration", "calibration_seed", "real", "batch", "cfg",
                                           "timing_n", "timing_rounds"};
        for (unsigned i = 0; i < sizeof keys / sizeof keys[0]; i++)
            if (!strcmp(key, keys[i])) {
                if (seen & 1u << i) st = eb_fail(EB_EINPUT, "%s:%d: '%s' is set twice", path, lineno, key);
                seen |= 1u << i;
            }
        if (!st && spec_set(s, key, value, why, sizeof why))
            st = eb_fail(EB_EINPUT, "%s:%d: %s", path, lineno, why);
    }
    if (!st && ferror(f)) st = eb_fail(EB_EINPUT, "%s: read error", path);
    fclose(f);
    if (st) return st;
    const char *missing = !s->name[0] ? "name" : !s->n_samplers ? "samplers" : !s->n_methods ? "methods"
                        : !s->n_seeds ? "seeds" : NULL;
    if (missing) return eb_fail(EB_EINPUT, "%s: '%s' is required (see docs/ablation.md)", path, missing);
    int targeted = 0;
    for (int i = 0; i < s->n_methods; i++) targeted |= eb_methods[s->methods[i]].sweeps;
    if (targeted && !s->n_speedups) return eb_fail(EB_EINPUT, "%s: 'speedups' is required by the cached methods", path);
    return EB_OK;
}

