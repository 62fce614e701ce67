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

eb_status eb_meta_int64(const eb_st_file *f, const char *key, int64_t min, int64_t max, int64_t *out) {
    const char *s;
    eb_status st = eb_meta_string(f, key, &s);
    if (st) return st;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || errno || v < min || v > max)
        return eb_fail(EB_EINPUT, "%s: metadata '%s' = '%s' is not an integer in [%" PRId64 ", %" PRId64 "]",
                       eb_st_label(f), key, s, min, max);
    *out = v;
    return EB_OK;
}

eb_status eb_meta_int(const eb_st_file *f, const char *key, int min, int max, int *out) {
    int64_t v;
    eb_status st = eb_meta_int64(f, key, min, max, &v);
    if (!st) *out = (int)v;
    return st;
}

eb_status eb_meta_double(const eb_st_file *f, const char *key, double *out) {
    const char *s;
    eb_status st = eb_meta_string(f, key, &s);
    if (st) return st;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(v))
        return eb_fail(EB_EINPUT, "%s: metadata '%s' = '%s' is not a finite number", eb_st_label(f), key, s);
    *out = v;
    return EB_OK;
}

eb_status eb_meta_u64(const eb_st_file *f, const char *key, uint64_t *out) {
    const char *s;
    eb_status st = eb_meta_string(f, key, &s);
    if (st) return st;
    char *end;
    errno = 0;
    uint64_t v = strtoull(s, &end, 10);
    if (end == s || *end || errno || *s == '-')
        return eb_fail(EB_EINPUT, "%s: metadata '%s' = '%s' is not an unsigned integer", eb_st_label(f), key, s);
    *out = v;
    return EB_OK;
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
