/* check.c — finite-value checks (see check.h). */
#include "runtime/check.h"

#include "runtime/checked.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

char *eb_format_dims(char *buf, size_t cap, const int64_t *v, int rank) {
    size_t len = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < rank && len < cap; d++) {
        const char *sep = d ? ", " : "";
        if (v[d] < 0) len += (size_t)snprintf(buf + len, cap - len, "%s*", sep);
        else len += (size_t)snprintf(buf + len, cap - len, "%s%lld", sep, (long long)v[d]);
    }
    if (len < cap) snprintf(buf + len, cap - len, "]");
    return buf;
}

char *eb_format_index(char *buf, size_t cap, int64_t flat, const int64_t *dims, int rank) {
    int64_t idx[8];
    int r = rank < 8 ? rank : 8;
    for (int d = r - 1; d >= 0; d--) { /* peel the fastest-varying index first */
        idx[d] = dims[d] > 0 ? flat % dims[d] : 0;
        flat = dims[d] > 0 ? flat / dims[d] : 0;
    }
    return eb_format_dims(buf, cap, idx, r);
}

/* The scans OR a bit over blocks without branching so they vectorize; only a
 * block that holds a bad value is searched again for its first one. */
enum { SCAN_BLOCK = 1024 };

static int64_t first_nonfinite_f32(const float *a, int64_t n) {
    for (int64_t start = 0; start < n; start += SCAN_BLOCK) {
        int64_t end = n - start < SCAN_BLOCK ? n : start + SCAN_BLOCK;
        uint32_t bad = 0;
        for (int64_t i = start; i < end; i++) {
            uint32_t bits;
            memcpy(&bits, &a[i], sizeof bits);
            bad |= (bits & 0x7f800000u) == 0x7f800000u; /* exponent all ones: Inf or NaN */
        }
        if (bad)
            for (int64_t i = start; i < end; i++)
                if (!isfinite(a[i])) return i;
    }
    return -1;
}

static int64_t first_nonfinite_f64(const double *a, int64_t n) {
    for (int64_t start = 0; start < n; start += SCAN_BLOCK) {
        int64_t end = n - start < SCAN_BLOCK ? n : start + SCAN_BLOCK;
        uint64_t bad = 0;
        for (int64_t i = start; i < end; i++) {
            uint64_t bits;
            memcpy(&bits, &a[i], sizeof bits);
            bad |= (bits & 0x7ff0000000000000u) == 0x7ff0000000000000u;
        }
        if (bad)
            for (int64_t i = start; i < end; i++)
                if (!isfinite(a[i])) return i;
    }
    return -1;
}

static eb_status report(eb_status code, const char *what, double value, int64_t flat, const int64_t *dims, int rank) {
    char where[EB_INDEX_STR_MAX];
    const char *kind = isnan(value) ? "NaN" : value > 0 ? "Inf" : "-Inf";
    return eb_fail(code, "%s has %s at %s", what, kind, eb_format_index(where, sizeof where, flat, dims, rank));
}

/* The elements of dims (rank); no array in memory can have more than INT64_MAX. */
static eb_status count_of(const int64_t *dims, int rank, const char *what, int64_t *n) {
    char shape[EB_INDEX_STR_MAX];
    *n = eb_checked_count(dims, rank, INT64_MAX);
    if (*n >= 0) return EB_OK;
    return eb_fail(EB_ERUNTIME, "%s: dims %s are negative or overflow 64 bits", what,
                   eb_format_dims(shape, sizeof shape, dims, rank));
}

eb_status eb_check_finite(const float *a, const int64_t *dims, int rank, eb_status code, const char *what) {
    int64_t n, bad;
    eb_status st = count_of(dims, rank, what, &n);
    if (st || (bad = first_nonfinite_f32(a, n)) < 0) return st;
    return report(code, what, a[bad], bad, dims, rank);
}

eb_status eb_check_finite_f64(const double *a, const int64_t *dims, int rank, eb_status code, const char *what) {
    int64_t n, bad;
    eb_status st = count_of(dims, rank, what, &n);
    if (st || (bad = first_nonfinite_f64(a, n)) < 0) return st;
    return report(code, what, a[bad], bad, dims, rank);
}
