/* meta.c — the metadata pairs of train/'s files (meta.h). */
#include "train/meta.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void eb_meta_add(eb_meta_list *l, const char *key, const char *fmt, ...) {
    if (l->n == EB_META_MAX) {
        l->overflow++;
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->values[l->n], EB_META_VALUE_LEN, fmt, ap);
    va_end(ap);
    l->pairs[l->n] = (eb_st_meta){key, l->values[l->n]};
    l->n++;
}

void eb_meta_append(eb_meta_list *l, const eb_st_meta *pairs, int n) {
    for (int i = 0; i < n; i++) {
        if (l->n == EB_META_MAX) l->overflow++;
        else l->pairs[l->n++] = pairs[i];
    }
}

eb_status eb_meta_check(const eb_meta_list *l, const char *path) {
    if (l->overflow)
        return eb_fail(EB_EINPUT, "%s: %d metadata entries, at most %d fit", path, l->n + l->overflow, EB_META_MAX);
    return EB_OK;
}

eb_status eb_meta_check_format(const eb_st_file *f, const char *format, const char *what) {
    const char *got = eb_st_metadata(f, "format");
    if (!got || strcmp(got, format))
        return eb_fail(EB_EINPUT, "%s: not %s (metadata 'format' is %s%s%s, expected '%s')", eb_st_label(f), what,
                       got ? "'" : "", got ? got : "missing", got ? "'" : "", format);
    return EB_OK;
}

eb_status eb_meta_string(const eb_st_file *f, const char *key, const char **out) {
    *out = eb_st_metadata(f, key);
    if (!*out) return eb_fail(EB_EINPUT, "%s: metadata '%s' is missing", eb_st_label(f), key);
    return EB_OK;
}

typedef union {
    int64_t i;
    uint64_t u;
    double d;
} number;

/* Metadata `key` of f as a number of `type`: EB_META_INT an int64 in
 * [min, max], EB_META_U64 without a sign, EB_META_DOUBLE finite; the whole
 * string must convert. */
static eb_status read_number(const eb_st_file *f, const char *key, eb_meta_type type, int64_t min, int64_t max,
                             number *out) {
    const char *s;
    eb_status st = eb_meta_string(f, key, &s);
    if (st) return st;
    char *end, expected[80];
    int ok;
    errno = 0;
    if (type == EB_META_DOUBLE) {
        out->d = strtod(s, &end);
        ok = isfinite(out->d);
        snprintf(expected, sizeof expected, "a finite number");
    } else if (type == EB_META_U64) {
        out->u = strtoull(s, &end, 10);
        ok = *s != '-';
        snprintf(expected, sizeof expected, "an unsigned integer");
    } else {
        long long v = strtoll(s, &end, 10);
        out->i = v;
        ok = v >= min && v <= max;
        snprintf(expected, sizeof expected, "an integer in [%" PRId64 ", %" PRId64 "]", min, max);
    }
    if (end == s || *end || errno || !ok)
        return eb_fail(EB_EINPUT, "%s: metadata '%s' = '%s' is not %s", eb_st_label(f), key, s, expected);
    return EB_OK;
}

eb_status eb_meta_int64(const eb_st_file *f, const char *key, int64_t min, int64_t max, int64_t *out) {
    number v;
    eb_status st = read_number(f, key, EB_META_INT, min, max, &v);
    if (!st) *out = v.i;
    return st;
}

eb_status eb_meta_int(const eb_st_file *f, const char *key, int min, int max, int *out) {
    number v;
    eb_status st = read_number(f, key, EB_META_INT, min, max, &v);
    if (!st) *out = (int)v.i;
    return st;
}

eb_status eb_meta_double(const eb_st_file *f, const char *key, double *out) {
    number v;
    eb_status st = read_number(f, key, EB_META_DOUBLE, 0, 0, &v);
    if (!st) *out = v.d;
    return st;
}

eb_status eb_meta_u64(const eb_st_file *f, const char *key, uint64_t *out) {
    number v;
    eb_status st = read_number(f, key, EB_META_U64, 0, 0, &v);
    if (!st) *out = v.u;
    return st;
}

eb_status eb_meta_bool(const eb_st_file *f, const char *key, int *out) {
    const char *s;
    eb_status st = eb_meta_string(f, key, &s);
    if (st) return st;
    if (strcmp(s, "true") && strcmp(s, "false"))
        return eb_fail(EB_EINPUT, "%s: metadata '%s' = '%s', expected true or false", eb_st_label(f), key, s);
    *out = !strcmp(s, "true");
    return EB_OK;
}

void eb_meta_add_fields(eb_meta_list *l, const void *base, const eb_meta_field *fields, int n) {
    for (int i = 0; i < n; i++) {
        const char *at = (const char *)base + fields[i].offset;
        const char *key = fields[i].key;
        switch (fields[i].type) {
        case EB_META_INT: eb_meta_add(l, key, "%d", *(const int *)at); break;
        case EB_META_BOOL: eb_meta_add(l, key, "%s", *(const int *)at ? "true" : "false"); break;
        case EB_META_DOUBLE: eb_meta_add(l, key, "%.17g", *(const double *)at); break;
        case EB_META_U64: eb_meta_add(l, key, "%" PRIu64, *(const uint64_t *)at); break;
        }
    }
}

eb_status eb_meta_read_fields(const eb_st_file *f, void *base, const eb_meta_field *fields, int n) {
    eb_status st = EB_OK;
    for (int i = 0; i < n && !st; i++) {
        char *at = (char *)base + fields[i].offset;
        const char *key = fields[i].key;
        switch (fields[i].type) {
        case EB_META_INT: st = eb_meta_int(f, key, fields[i].min, fields[i].max, (int *)at); break;
        case EB_META_BOOL: st = eb_meta_bool(f, key, (int *)at); break;
        case EB_META_DOUBLE: st = eb_meta_double(f, key, (double *)at); break;
        case EB_META_U64: st = eb_meta_u64(f, key, (uint64_t *)at); break;
        }
    }
    return st;
}
