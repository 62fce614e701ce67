/* npy.c — the .npy header parser and writer (npy.h). */
#include "runtime/npy.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/checked.h"

static const struct {
    const char *descr;
    size_t size;
} NPY_DTYPES[EB_NPY_DTYPE_COUNT] = {
    [EB_NPY_U8] = {"|u1", 1}, [EB_NPY_F32] = {"<f4", 4}, [EB_NPY_F64] = {"<f8", 8}, [EB_NPY_I64] = {"<i8", 8}};

const char *eb_npy_dtype_name(eb_npy_dtype t) { return t < EB_NPY_DTYPE_COUNT ? NPY_DTYPES[t].descr : "?"; }
size_t eb_npy_dtype_size(eb_npy_dtype t) { return t < EB_NPY_DTYPE_COUNT ? NPY_DTYPES[t].size : 0; }

/* The header dict: {'descr': '<i8', 'fortran_order': False, 'shape': (n,), } */
typedef struct {
    const char *p, *end;
} npy_lexer;

static void npy_space(npy_lexer *x) {
    while (x->p < x->end && (*x->p == ' ' || *x->p == '\t')) x->p++;
}

static int npy_char(npy_lexer *x, char c) {
    npy_space(x);
    if (x->p < x->end && *x->p == c) return x->p++, 1;
    return 0;
}

/* A quoted string into buf. */
static int npy_string(npy_lexer *x, char *buf, size_t size) {
    npy_space(x);
    if (x->p >= x->end || (*x->p != '\'' && *x->p != '"')) return 0;
    char q = *x->p++;
    size_t n = 0;
    while (x->p < x->end && *x->p != q) {
        if (n + 1 >= size) return 0;
        buf[n++] = *x->p++;
    }
    if (x->p >= x->end) return 0;
    x->p++;
    buf[n] = 0;
    return 1;
}

static int npy_word(npy_lexer *x, const char *w) {
    npy_space(x);
    size_t n = strlen(w);
    if ((size_t)(x->end - x->p) >= n && !strncmp(x->p, w, n)) return x->p += n, 1;
    return 0;
}

/* A non-negative decimal integer that ends inside the lexer's range. */
static int npy_int(npy_lexer *x, int64_t *v) {
    npy_space(x);
    int64_t n = 0;
    const char *start = x->p;
    while (x->p < x->end && *x->p >= '0' && *x->p <= '9') {
        if (__builtin_mul_overflow(n, 10, &n) || __builtin_add_overflow(n, *x->p - '0', &n)) return 0;
        x->p++;
    }
    *v = n;
    return x->p > start;
}

/* The shape tuple: (), (n,), (n, m), (n, m,) ... */
static eb_status npy_shape(npy_lexer *x, eb_npy_header *h, const char *name) {
    if (!npy_char(x, '(')) return eb_fail(EB_EINPUT, "%s: header 'shape' is not a tuple", name);
    h->rank = 0;
    int comma = 0;
    while (!npy_char(x, ')')) {
        if (h->rank == EB_NPY_MAX_RANK)
            return eb_fail(EB_EINPUT, "%s: shape has more than %d dimensions", name, EB_NPY_MAX_RANK);
        if (!npy_int(x, &h->shape[h->rank]))
            return eb_fail(EB_EINPUT, "%s: header 'shape' is not a tuple of non-negative integers", name);
        h->rank++;
        comma = npy_char(x, ',');
        if (!comma && !(npy_space(x), x->p < x->end && *x->p == ')'))
            return eb_fail(EB_EINPUT, "%s: header 'shape' is not a tuple of non-negative integers", name);
    }
    if (h->rank == 1 && !comma) return eb_fail(EB_EINPUT, "%s: header 'shape' is not a tuple", name); /* (6) is an int */
    return EB_OK;
}

static eb_status npy_dict(eb_npy_header *h, const char *text, size_t len, const char *name) {
    npy_lexer x = {text, text + len};
    int have_descr = 0, have_order = 0, have_shape = 0;
    eb_status st;
    if (!npy_char(&x, '{')) return eb_fail(EB_EINPUT, "%s: header is not a Python dict", name);
    while (!npy_char(&x, '}')) {
        char key[32], value[32];
        if (!npy_string(&x, key, sizeof key) || !npy_char(&x, ':'))
            return eb_fail(EB_EINPUT, "%s: malformed header dict near offset %td", name, x.p - text);
        if (!strcmp(key, "descr") && !have_descr++) {
            if (!npy_string(&x, value, sizeof value)) return eb_fail(EB_EINPUT, "%s: header 'descr' is not a string", name);
            int t = 0;
            while (t < EB_NPY_DTYPE_COUNT && strcmp(value, NPY_DTYPES[t].descr)) t++;
            if (t == EB_NPY_DTYPE_COUNT)
                return eb_fail(EB_EINPUT, "%s: dtype '%s' is not one of '|u1', '<f4', '<f8', '<i8'", name, value);
            h->dtype = (eb_npy_dtype)t;
        } else if (!strcmp(key, "fortran_order") && !have_order++) {
            if (npy_word(&x, "True")) return eb_fail(EB_EINPUT, "%s: fortran_order True, expected False", name);
            if (!npy_word(&x, "False")) return eb_fail(EB_EINPUT, "%s: header 'fortran_order' is not True/False", name);
        } else if (!strcmp(key, "shape") && !have_shape++) {
            if ((st = npy_shape(&x, h, name))) return st;
        } else {
            return eb_fail(EB_EINPUT, "%s: unexpected or repeated header key '%s'", name, key);
        }
        if (!npy_char(&x, ',') && !(npy_space(&x), x.p < x.end && *x.p == '}'))
            return eb_fail(EB_EINPUT, "%s: malformed header dict near offset %td", name, x.p - text);
    }
    npy_space(&x);
    if (x.p != x.end) return eb_fail(EB_EINPUT, "%s: junk after the header dict", name);
    if (!have_descr || !have_order || !have_shape)
        return eb_fail(EB_EINPUT, "%s: header lacks '%s'", name, !have_descr ? "descr" : !have_order ? "fortran_order" : "shape");
    return EB_OK;
}

eb_status eb_npy_parse_header(eb_npy_header *h, const unsigned char *buf, size_t size, const char *name) {
    memset(h, 0, sizeof *h);
    if (size < 10 || memcmp(buf, "\x93NUMPY", 6)) return eb_fail(EB_EINPUT, "%s: not a .npy file (bad magic)", name);
    if (buf[6] < 1 || buf[6] > 3 || buf[7] != 0)
        return eb_fail(EB_EINPUT, "%s: unsupported .npy version %d.%d", name, buf[6], buf[7]);
    size_t pre = buf[6] == 1 ? 10 : 12;
    if (size < pre) return eb_fail(EB_EINPUT, "%s: truncated header", name);
    size_t hlen = buf[6] == 1 ? (size_t)buf[8] | (size_t)buf[9] << 8
                              : (size_t)buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 | (size_t)buf[11] << 24;
    if (hlen > EB_NPY_MAX_HEADER) return eb_fail(EB_EINPUT, "%s: header of %zu bytes (limit %u)", name, hlen, EB_NPY_MAX_HEADER);
    if (hlen > size - pre) return eb_fail(EB_EINPUT, "%s: truncated header", name);
    if (hlen == 0 || buf[pre + hlen - 1] != '\n') return eb_fail(EB_EINPUT, "%s: header does not end with a newline", name);
    eb_status st = npy_dict(h, (const char *)buf + pre, hlen - 1, name);
    if (st) return st;
    h->count = eb_checked_count(h->shape, h->rank, INT64_MAX);
    if (h->count < 0) return eb_fail(EB_EINPUT, "%s: shape has more than 2^63 elements", name);
    if (eb_mul_overflows_u64((uint64_t)h->count, eb_npy_dtype_size(h->dtype), &h->data_bytes))
        return eb_fail(EB_EINPUT, "%s: shape holds more than 2^64 bytes of data", name);
    h->header_bytes = pre + hlen;
    return EB_OK;
}

size_t eb_npy_format_header(char *buf, size_t cap, eb_npy_dtype dtype, int rank, const int64_t *shape) {
    if (dtype >= EB_NPY_DTYPE_COUNT || rank < 0 || rank > EB_NPY_MAX_RANK) return 0;
    char dict[64 + 24 * EB_NPY_MAX_RANK];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (", NPY_DTYPES[dtype].descr);
    for (int d = 0; d < rank; d++) {
        if (shape[d] < 0) return 0;
        n += snprintf(dict + n, sizeof dict - (size_t)n, d ? ", %" PRId64 : "%" PRId64, shape[d]);
    }
    n += snprintf(dict + n, sizeof dict - (size_t)n, rank == 1 ? ",), }" : "), }");
    size_t pre = 10, len = (size_t)n + 1; /* + '\n' */
    size_t total = (pre + len + 63) / 64 * 64;
    if (total > cap) return 0;
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (char)((total - pre) & 0xff), buf[9] = (char)((total - pre) >> 8);
    memcpy(buf + pre, dict, (size_t)n);
    memset(buf + pre + n, ' ', total - pre - len);
    buf[total - 1] = '\n';
    return total;
}
