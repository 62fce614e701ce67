/* safetensors.c — checked .safetensors reading (mmap) and atomic writing, and the
 * strict pull JSON reader they share with the diffusers config loader. */
#include "runtime/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/atomic.h"
#include "runtime/check.h"
#include "runtime/checked.h"

/* Tensor bytes are read and written in host order, which the format fixes as little-endian. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors I/O assumes a little-endian host");

/* ------------------------------------------------------------------------ */
/* dtypes and half-precision conversions                                     */

static const struct { const char *name; int size; } dtypes[EB_DT_COUNT] = {
    [EB_DT_F32] = {"F32", 4},       [EB_DT_F16] = {"F16", 2},   [EB_DT_BF16] = {"BF16", 2},
    [EB_DT_F64] = {"F64", 8},       [EB_DT_F8_E4M3] = {"F8_E4M3", 1}, [EB_DT_F8_E5M2] = {"F8_E5M2", 1},
    [EB_DT_I8] = {"I8", 1},         [EB_DT_U8] = {"U8", 1},     [EB_DT_I16] = {"I16", 2},
    [EB_DT_U16] = {"U16", 2},       [EB_DT_I32] = {"I32", 4},   [EB_DT_U32] = {"U32", 4},
    [EB_DT_I64] = {"I64", 8},       [EB_DT_U64] = {"U64", 8},   [EB_DT_BOOL] = {"BOOL", 1},
};

const char *eb_dtype_name(eb_dtype t) { return (unsigned)t < EB_DT_COUNT ? dtypes[t].name : "?"; }
int eb_dtype_size(eb_dtype t) { return (unsigned)t < EB_DT_COUNT ? dtypes[t].size : 0; }

static int dtype_from_name(const char *name) {
    for (int t = 0; t < EB_DT_COUNT; t++)
        if (strcmp(name, dtypes[t].name) == 0) return t;
    return -1;
}

static float bits_to_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t f32_to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

float eb_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f) return bits_to_f32(sign | 0x7f800000u | (man << 13)); /* inf, NaN (payload kept) */
    if (exp != 0) return bits_to_f32(sign | ((exp + 112) << 23) | (man << 13));
    /* zero or subnormal: man · 2^-24 is exact in float */
    float v = (float)man * 0x1p-24f;
    return sign ? -v : v;
}

float eb_bf16_to_f32(uint16_t h) { return bits_to_f32((uint32_t)h << 16); }

uint16_t eb_f32_to_f16(float f) {
    uint32_t u = f32_to_bits(f), sign = (u >> 16) & 0x8000, abs = u & 0x7fffffffu;
    if (abs > 0x7f800000u) return (uint16_t)(sign | 0x7e00 | ((abs >> 13) & 0x3ff)); /* quiet NaN */
    if (abs >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* ≥ 65520 rounds to inf */
    if (abs < 0x38800000u) {
        /* below 2^-14: a subnormal half, mantissa = abs·2^24 (exact in float) rounded to nearest even */
        float scaled = bits_to_f32(abs) * 0x1p24f;
        uint32_t q = (uint32_t)scaled;
        float frac = scaled - (float)q;
        if (frac > 0.5f || (frac == 0.5f && (q & 1))) q++;
        return (uint16_t)(sign | q);
    }
    /* normal: rebias the exponent, round the 13 dropped mantissa bits to nearest even */
    uint32_t v = abs - (112u << 23);
    v += 0xfff + ((v >> 13) & 1);
    return (uint16_t)(sign | (v >> 13));
}

uint16_t eb_f32_to_bf16(float f) {
    uint32_t u = f32_to_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

/* ------------------------------------------------------------------------ */
/* JSON reader                                                               */

#define JSON_MAX_DEPTH 64

void eb_json_init(eb_json *j, const char *text, size_t len, const char *label) {
    j->text = j->pos = text;
    j->end = text + len;
    j->label = label;
    j->scope[0] = 0;
    j->depth = 0;
}

eb_status eb_json_fail(const eb_json *j, const char *fmt, ...) {
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return eb_fail(EB_EINPUT, "%s: %s%sinvalid JSON at byte %zu: %s", j->label, j->scope, j->scope[0] ? ": " : "",
                   (size_t)(j->pos - j->text), what);
}

char eb_json_peek(eb_json *j) {
    while (j->pos < j->end && (*j->pos == ' ' || *j->pos == '\t' || *j->pos == '\n' || *j->pos == '\r')) j->pos++;
    return j->pos < j->end ? *j->pos : 0;
}

eb_status eb_json_finish(eb_json *j) {
    eb_json_peek(j);
    return j->pos == j->end ? EB_OK : eb_json_fail(j, "unexpected characters after the value");
}

/* The separator before the next member/element: the opener on the first call,
 * then ',' or the closer; *ended = 1 when the container closed. */
static eb_status json_next(eb_json *j, int *count, char open, char close, int *ended) {
    char c = eb_json_peek(j);
    *ended = 0;
    if (*count == 0) {
        if (c != open) return eb_json_fail(j, "expected '%c'", open);
        j->pos++;
        if (eb_json_peek(j) == close) {
            j->pos++;
            *ended = 1;
        }
    } else if (c == close) {
        j->pos++;
        *ended = 1;
    } else if (c == ',') {
        j->pos++;
    } else {
        return eb_json_fail(j, "expected ',' or '%c'", close);
    }
    if (!*ended) (*count)++;
    return EB_OK;
}

eb_status eb_json_member(eb_json *j, int *count, char **key) {
    int ended;
    *key = NULL;
    eb_status st = json_next(j, count, '{', '}', &ended);
    if (st || ended) return st;
    if (eb_json_peek(j) != '"') return eb_json_fail(j, "expected a string key");
    if ((st = eb_json_string(j, key))) return st;
    if (eb_json_peek(j) != ':') {
        free(*key);
        *key = NULL;
        return eb_json_fail(j, "expected ':'");
    }
    j->pos++;
    return EB_OK;
}

eb_status eb_json_element(eb_json *j, int *count, int *more) {
    int ended;
    eb_status st = json_next(j, count, '[', ']', &ended);
    *more = !st && !ended;
    return st;
}

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The 4 hex digits of a \u escape at p, or -1. */
static long hex4(const char *p, const char *end) {
    if (end - p < 4) return -1;
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hex_value(p[i]);
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    return v;
}

/* Length of the valid UTF-8 sequence starting at p (lead byte ≥ 0x80), or 0. */
static int utf8_length(const unsigned char *p, const unsigned char *end) {
    int n = p[0] >= 0xc2 && p[0] <= 0xdf ? 2 : p[0] >= 0xe0 && p[0] <= 0xef ? 3 : p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : 0;
    if (n == 0 || end - p < n) return 0;
    for (int i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80) return 0;
    uint32_t cp = n == 2 ? (p[0] & 0x1fu) << 6 | (p[1] & 0x3f)
                : n == 3 ? (p[0] & 0x0fu) << 12 | (p[1] & 0x3fu) << 6 | (p[2] & 0x3f)
                         : (p[0] & 0x07u) << 18 | (p[1] & 0x3fu) << 12 | (p[2] & 0x3fu) << 6 | (p[3] & 0x3f);
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

static char *put_utf8(char *o, uint32_t cp) {
    if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xc0 | cp >> 6);
        *o++ = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xe0 | cp >> 12);
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
        *o++ = (char)(0x80 | (cp & 0x3f));
    } else {
        *o++ = (char)(0xf0 | cp >> 18);
        *o++ = (char)(0x80 | ((cp >> 12) & 0x3f));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
        *o++ = (char)(0x80 | (cp & 0x3f));
    }
    return o;
}

eb_status eb_json_string(eb_json *j, char **out) {
    *out = NULL;
    if (eb_json_peek(j) != '"') return eb_json_fail(j, "expected a string");
    /* The decoded text is never longer than the raw text: size the buffer by the raw span. */
    const char *start = ++j->pos, *p = start;
    while (p < j->end && *p != '"') p += (*p == '\\' && p + 1 < j->end) ? 2 : 1;
    if (p >= j->end) {
        j->pos = start - 1;
        return eb_json_fail(j, "unterminated string");
    }
    char *buf = malloc((size_t)(p - start) + 1), *o = buf;
    if (!buf) return eb_fail(EB_ERUNTIME, "%s: out of memory reading a JSON string", j->label);
    const char *why = NULL;
    while (!why && *j->pos != '"') {
        unsigned char c = (unsigned char)*j->pos;
        if (c < 0x20) {
            why = "control character in a string";
        } else if (c >= 0x80) {
            int n = utf8_length((const unsigned char *)j->pos, (const unsigned char *)j->end);
            if (!n) why = "invalid UTF-8 in a string";
            else {
                memcpy(o, j->pos, n);
                o += n;
                j->pos += n;
            }
        } else if (c != '\\') {
            *o++ = (char)c;
            j->pos++;
        } else {
            char e = j->pos[1];
            const char *simple = strchr("\"\\/bfnrt", e);
            if (e && simple) {
                *o++ = "\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"];
                j->pos += 2;
                continue;
            }
            if (e != 'u') {
                why = "invalid escape in a string";
                continue;
            }
            long cp = hex4(j->pos + 2, j->end), lo;
            if (cp < 0) why = "invalid \\u escape";
            else if (cp == 0) why = "\\u0000 in a string";
            else if (cp >= 0xdc00 && cp <= 0xdfff) why = "unpaired surrogate in a string";
            else if (cp >= 0xd800 && cp <= 0xdbff) {
                if (j->end - j->pos < 12 || j->pos[6] != '\\' || j->pos[7] != 'u' ||
                    (lo = hex4(j->pos + 8, j->end)) < 0xdc00 || lo > 0xdfff)
                    why = "unpaired surrogate in a string";
                else {
                    o = put_utf8(o, 0x10000 + (((uint32_t)cp - 0xd800) << 10) + ((uint32_t)lo - 0xdc00));
                    j->pos += 12;
                }
            } else {
                o = put_utf8(o, (uint32_t)cp);
                j->pos += 6;
            }
        }
    }
    if (why) {
        free(buf);
        return eb_json_fail(j, "%s", why);
    }
    j->pos++; /* closing quote */
    *o = 0;
    *out = buf;
    return EB_OK;
}

/* Scans a number per the JSON grammar; *is_int when it has no fraction or exponent. */
static eb_status json_number(eb_json *j, int *is_int) {
    const char *p = j->pos, *e = j->end;
    if (p < e && *p == '-') p++;
    if (p >= e || *p < '0' || *p > '9') return eb_json_fail(j, "expected a number");
    if (*p == '0') p++;
    else
        while (p < e && *p >= '0' && *p <= '9') p++;
    *is_int = 1;
    if (p < e && *p == '.') {
        *is_int = 0;
        if (++p >= e || *p < '0' || *p > '9') return eb_json_fail(j, "digit expected after '.'");
        while (p < e && *p >= '0' && *p <= '9') p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        *is_int = 0;
        if (++p < e && (*p == '+' || *p == '-')) p++;
        if (p >= e || *p < '0' || *p > '9') return eb_json_fail(j, "digit expected in the exponent");
        while (p < e && *p >= '0' && *p <= '9') p++;
    }
    j->pos = p;
    return EB_OK;
}

eb_status eb_json_int(eb_json *j, int64_t *out) {
    eb_json_peek(j);
    const char *start = j->pos;
    int is_int;
    eb_status st = json_number(j, &is_int);
    if (st) return st;
    if (!is_int) {
        j->pos = start;
        return eb_json_fail(j, "expected an integer");
    }
    int neg = *start == '-';
    uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (const char *p = start + neg; p < j->pos; p++) {
        uint64_t d = (uint64_t)(*p - '0');
        if (v > (limit - d) / 10) {
            j->pos = start;
            return eb_json_fail(j, "integer out of the 64-bit range");
        }
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return EB_OK;
}

static eb_status json_literal(eb_json *j, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(j->end - j->pos) < n || memcmp(j->pos, word, n) != 0) return eb_json_fail(j, "unexpected character");
    j->pos += n;
    return EB_OK;
}

eb_status eb_json_skip(eb_json *j) {
    char c = eb_json_peek(j);
    eb_status st = EB_OK;
    if (c == '{' || c == '[') {
        if (j->depth >= JSON_MAX_DEPTH) return eb_json_fail(j, "nested deeper than %d", JSON_MAX_DEPTH);
        j->depth++;
        int count = 0, more = 1;
        char *key = NULL;
        while (!st) {
            if (c == '{') {
                if ((st = eb_json_member(j, &count, &key)) || !key) break;
                free(key);
            } else if ((st = eb_json_element(j, &count, &more)) || !more) {
                break;
            }
            st = eb_json_skip(j);
        }
        j->depth--;
        return st;
    }
    if (c == '"') {
        char *s;
        if (!(st = eb_json_string(j, &s))) free(s);
        return st;
    }
    if (c == 't') return json_literal(j, "true");
    if (c == 'f') return json_literal(j, "false");
    if (c == 'n') return json_literal(j, "null");
    if (c == 0) return eb_json_fail(j, "unexpected end of the text");
    int is_int;
    return json_number(j, &is_int);
}

/* ------------------------------------------------------------------------ */
/* Reader                                                                    */

struct eb_st_file {
    char *label;
    const unsigned char *map;   /* whole file / buffer               */
    size_t map_size;
    int mapped;                 /* 1: munmap on close                */
    const unsigned char *data;  /* data buffer after the header      */
    uint64_t data_size;
    eb_st_tensor *tensors;      /* sorted by name                    */
    int n_tensors;
    eb_st_meta *meta;           /* __metadata__ pairs, owned strings */
    int n_meta;
};

const char *eb_st_label(const eb_st_file *f) { return f->label; }
int eb_st_count(const eb_st_file *f) { return f->n_tensors; }
const eb_st_tensor *eb_st_tensor_at(const eb_st_file *f, int i) {
    return i >= 0 && i < f->n_tensors ? &f->tensors[i] : NULL;
}

static int tensor_name_cmp(const void *a, const void *b) {
    return strcmp(((const eb_st_tensor *)a)->name, ((const eb_st_tensor *)b)->name);
}

const eb_st_tensor *eb_st_find(const eb_st_file *f, const char *name) {
    eb_st_tensor key = {.name = name};
    return f->n_tensors ? bsearch(&key, f->tensors, f->n_tensors, sizeof key, tensor_name_cmp) : NULL;
}

const char *eb_st_metadata(const eb_st_file *f, const char *key) {
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta[i].key, key) == 0) return f->meta[i].value;
    return NULL;
}

void eb_st_close(eb_st_file *f) {
    if (!f) return;
    for (int i = 0; i < f->n_tensors; i++) free((char *)f->tensors[i].name);
    for (int i = 0; i < f->n_meta; i++) {
        free((char *)f->meta[i].key);
        free((char *)f->meta[i].value);
    }
    free(f->tensors);
    free(f->meta);
    if (f->mapped) munmap((void *)f->map, f->map_size);
    free(f->label);
    free(f);
}

/* Grows *arr (elements of `size`) so that index n fits. */
static int grow(void **arr, int n, int *cap, size_t size) {
    if (n < *cap) return 1;
    int want = *cap ? 2 * *cap : 16;
    void *p = realloc(*arr, (size_t)want * size);
    if (!p) return 0;
    *arr = p;
    *cap = want;
    return 1;
}

/* A JSON array of integers into v (at most `max`); *n gets the count. */
static eb_status json_int_array(eb_json *j, int64_t *v, int max, int *n, const char *field) {
    int count = 0, more;
    *n = 0;
    eb_status st;
    while (!(st = eb_json_element(j, &count, &more)) && more) {
        if (count > max) return eb_json_fail(j, "'%s' has more than %d entries", field, max);
        if ((st = eb_json_int(j, &v[count - 1]))) return st;
    }
    *n = count;
    return st;
}

/* Fills t from one tensor entry {"dtype", "shape", "data_offsets"} and checks it. */
static eb_status parse_tensor(eb_json *j, eb_st_file *f, eb_st_tensor *t) {
    int count = 0, have_dtype = 0, have_shape = 0, have_offsets = 0, n;
    int64_t offsets[2] = {0, 0};
    char *field;
    eb_status st;
    while (!(st = eb_json_member(j, &count, &field)) && field) {
        int *seen = strcmp(field, "dtype") == 0 ? &have_dtype
                  : strcmp(field, "shape") == 0 ? &have_shape
                  : strcmp(field, "data_offsets") == 0 ? &have_offsets : NULL;
        if (!seen || *seen) {
            st = eb_json_fail(j, "%s field '%s'", seen ? "duplicate" : "unexpected", field);
            free(field);
            return st;
        }
        *seen = 1;
        char *name = NULL;
        if (seen == &have_dtype) {
            if (!(st = eb_json_string(j, &name))) {
                int dt = dtype_from_name(name);
                if (dt < 0) st = eb_fail(EB_EINPUT, "%s: tensor '%s': unknown dtype '%s'", f->label, t->name, name);
                else t->dtype = (eb_dtype)dt;
            }
            free(name);
        } else if (seen == &have_shape) {
            st = json_int_array(j, t->shape, EB_ST_MAX_RANK, &t->rank, "shape");
        } else {
            if (!(st = json_int_array(j, offsets, 2, &n, "data_offsets")) && n != 2)
                st = eb_json_fail(j, "'data_offsets' needs 2 entries, has %d", n);
        }
        free(field);
        if (st) return st;
    }
    if (st) return st;
    const char *missing = !have_dtype ? "dtype" : !have_shape ? "shape" : !have_offsets ? "data_offsets" : NULL;
    if (missing) return eb_fail(EB_EINPUT, "%s: tensor '%s': missing '%s'", f->label, t->name, missing);

    for (int r = 0; r < t->rank; r++)
        if (t->shape[r] < 0)
            return eb_fail(EB_EINPUT, "%s: tensor '%s': negative dimension %lld at axis %d", f->label, t->name,
                           (long long)t->shape[r], r);
    int64_t numel = eb_checked_count(t->shape, t->rank, INT64_MAX);
    if (numel < 0) return eb_fail(EB_EINPUT, "%s: tensor '%s': shape overflows 64 bits", f->label, t->name);
    t->numel = (uint64_t)numel;
    int esize = eb_dtype_size(t->dtype);
    uint64_t nbytes;
    if (eb_mul_overflows_u64(t->numel, (uint64_t)esize, &nbytes))
        return eb_fail(EB_EINPUT, "%s: tensor '%s': byte size overflows 64 bits", f->label, t->name);
    if (offsets[0] < 0 || offsets[1] < 0)
        return eb_fail(EB_EINPUT, "%s: tensor '%s': negative data_offsets [%lld, %lld]", f->label, t->name,
                       (long long)offsets[0], (long long)offsets[1]);
    t->begin = (uint64_t)offsets[0];
    t->end = (uint64_t)offsets[1];
    if (t->end < t->begin)
        return eb_fail(EB_EINPUT, "%s: tensor '%s': data_offsets [%llu, %llu] out of order", f->label, t->name,
                       (unsigned long long)t->begin, (unsigned long long)t->end);
    if (t->end > f->data_size)
        return eb_fail(EB_EINPUT, "%s: tensor '%s': data_offsets [%llu, %llu] beyond the data buffer of %llu bytes",
                       f->label, t->name, (unsigned long long)t->begin, (unsigned long long)t->end,
                       (unsigned long long)f->data_size);
    if (t->end - t->begin != nbytes) {
        char shape[EB_INDEX_STR_MAX];
        eb_format_dims(shape, sizeof shape, t->shape, t->rank);
        return eb_fail(EB_EINPUT, "%s: tensor '%s': data_offsets [%llu, %llu] hold %llu bytes, shape %s of %s needs %llu",
                       f->label, t->name, (unsigned long long)t->begin, (unsigned long long)t->end,
                       (unsigned long long)(t->end - t->begin), shape, eb_dtype_name(t->dtype),
                       (unsigned long long)nbytes);
    }
    return EB_OK;
}

static eb_status parse_metadata(eb_json *j, eb_st_file *f) {
    int count = 0, cap = 0;
    char *key, *value;
    eb_status st;
    snprintf(j->scope, sizeof j->scope, "__metadata__");
    while (!(st = eb_json_member(j, &count, &key)) && key) {
        snprintf(j->scope, sizeof j->scope, "__metadata__ key '%.120s'", key);
        if (eb_st_metadata(f, key)) st = eb_json_fail(j, "duplicate key");
        else if (!(st = eb_json_string(j, &value))) {
            if (grow((void **)&f->meta, f->n_meta, &cap, sizeof *f->meta)) {
                f->meta[f->n_meta++] = (eb_st_meta){key, value};
                continue;
            }
            free(value);
            st = eb_fail(EB_ERUNTIME, "%s: out of memory reading __metadata__", f->label);
        }
        free(key);
        return st;
    }
    return st;
}

static int tensor_begin_cmp(const void *a, const void *b) {
    const eb_st_tensor *x = *(eb_st_tensor *const *)a, *y = *(eb_st_tensor *const *)b;
    return x->begin != y->begin ? (x->begin < y->begin ? -1 : 1) : (x->end > y->end) - (x->end < y->end);
}

/* Duplicate names (adjacent once sorted) and overlapping byte ranges. */
static eb_status check_layout(eb_st_file *f) {
    for (int i = 1; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i - 1].name, f->tensors[i].name) == 0)
            return eb_fail(EB_EINPUT, "%s: tensor '%s': duplicate key", f->label, f->tensors[i].name);
    eb_st_tensor **by_begin = malloc((size_t)(f->n_tensors ? f->n_tensors : 1) * sizeof *by_begin);
    if (!by_begin) return eb_fail(EB_ERUNTIME, "%s: out of memory", f->label);
    int n = 0;
    for (int i = 0; i < f->n_tensors; i++)
        if (f->tensors[i].end > f->tensors[i].begin) by_begin[n++] = &f->tensors[i]; /* empty ones hold no bytes */
    qsort(by_begin, n, sizeof *by_begin, tensor_begin_cmp);
    eb_status st = EB_OK;
    for (int i = 1; i < n && !st; i++) {
        const eb_st_tensor *a = by_begin[i - 1], *b = by_begin[i];
        if (b->begin < a->end)
            st = eb_fail(EB_EINPUT, "%s: tensor '%s': data_offsets [%llu, %llu] overlap tensor '%s' [%llu, %llu]",
                         f->label, b->name, (unsigned long long)b->begin, (unsigned long long)b->end, a->name,
                         (unsigned long long)a->begin, (unsigned long long)a->end);
    }
    free(by_begin);
    return st;
}

static eb_status parse_header(eb_st_file *f, const char *json, size_t len) {
    eb_json j;
    eb_json_init(&j, json, len, f->label);
    int count = 0, cap = 0, have_meta = 0;
    char *key;
    eb_status st;
    while (!(st = eb_json_member(&j, &count, &key)) && key) {
        if (strcmp(key, "__metadata__") == 0) {
            free(key);
            if (have_meta++) return eb_fail(EB_EINPUT, "%s: duplicate key '__metadata__'", f->label);
            if ((st = parse_metadata(&j, f))) return st;
        } else {
            if (!grow((void **)&f->tensors, f->n_tensors, &cap, sizeof *f->tensors)) {
                free(key);
                return eb_fail(EB_ERUNTIME, "%s: out of memory reading the header", f->label);
            }
            eb_st_tensor *t = &f->tensors[f->n_tensors++];
            memset(t, 0, sizeof *t);
            t->name = key;
            snprintf(j.scope, sizeof j.scope, "tensor '%.120s'", key);
            if ((st = parse_tensor(&j, f, t))) return st;
        }
        j.scope[0] = 0;
    }
    if (st || (st = eb_json_finish(&j))) return st;
    qsort(f->tensors, f->n_tensors, sizeof *f->tensors, tensor_name_cmp);
    return check_layout(f);
}

/* Validates the 8-byte length and the header of the bytes already in f->map. */
static eb_status parse_file(eb_st_file *f) {
    if (f->map_size < 8)
        return eb_fail(EB_EINPUT, "%s: %zu bytes, too short for the 8-byte header length", f->label, f->map_size);
    uint64_t n;
    memcpy(&n, f->map, 8);
    if (n > f->map_size - 8)
        return eb_fail(EB_EINPUT, "%s: header length %llu beyond the file size %zu", f->label, (unsigned long long)n,
                       f->map_size);
    if (n > EB_ST_MAX_HEADER)
        return eb_fail(EB_EINPUT, "%s: header length %llu above the %u MiB limit", f->label, (unsigned long long)n,
                       EB_ST_MAX_HEADER >> 20);
    f->data = f->map + 8 + n;
    f->data_size = f->map_size - 8 - n;
    return parse_header(f, (const char *)f->map + 8, (size_t)n);
}

static eb_status open_common(eb_st_file **out, eb_st_file *f) {
    eb_status st = parse_file(f);
    if (st) {
        eb_st_close(f);
        return st;
    }
    *out = f;
    return EB_OK;
}

static eb_st_file *file_new(const char *label) {
    eb_st_file *f = calloc(1, sizeof *f);
    if (f && !(f->label = strdup(label))) {
        free(f);
        f = NULL;
    }
    return f;
}

eb_status eb_st_open_memory(eb_st_file **out, const void *data, size_t size, const char *label) {
    *out = NULL;
    eb_st_file *f = file_new(label);
    if (!f) return eb_fail(EB_ERUNTIME, "%s: out of memory", label);
    f->map = data;
    f->map_size = size;
    return open_common(out, f);
}

eb_status eb_st_open(eb_st_file **out, const char *path) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return eb_fail(errno == ENOENT ? EB_EINPUT : EB_ERUNTIME, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int err = errno;
        close(fd);
        return eb_fail(EB_ERUNTIME, "%s: %s", path, strerror(err));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return eb_fail(EB_EINPUT, "%s: not a regular file", path);
    }
    eb_st_file *f = file_new(path);
    if (!f) {
        close(fd);
        return eb_fail(EB_ERUNTIME, "%s: out of memory", path);
    }
    f->map_size = (size_t)sb.st_size;
    if (f->map_size >= 8) {
        void *map = mmap(NULL, f->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int err = errno;
            close(fd);
            eb_st_close(f);
            return eb_fail(EB_ERUNTIME, "%s: cannot map %zu bytes: %s", path, (size_t)sb.st_size, strerror(err));
        }
        f->map = map;
        f->mapped = 1;
    }
    close(fd);
    return open_common(out, f);
}

eb_status eb_st_read_f32(const eb_st_file *f, const eb_st_tensor *t, float *dst, size_t n) {
    if (t < f->tensors || t >= f->tensors + f->n_tensors)
        return eb_fail(EB_EINPUT, "%s: tensor '%s' does not belong to this file", f->label, t->name);
    if (n != t->numel)
        return eb_fail(EB_EINPUT, "%s: tensor '%s': has %llu elements, the buffer %zu", f->label, t->name,
                       (unsigned long long)t->numel, n);
    const unsigned char *src = f->data + t->begin;
    if (t->dtype == EB_DT_F32) {
        if (n) memcpy(dst, src, n * 4);
        return EB_OK;
    }
    if (t->dtype != EB_DT_F16 && t->dtype != EB_DT_BF16)
        return eb_fail(EB_EINPUT, "%s: tensor '%s': dtype %s does not convert to float (F32, F16, BF16 do)", f->label,
                       t->name, eb_dtype_name(t->dtype));
    float (*convert)(uint16_t) = t->dtype == EB_DT_F16 ? eb_f16_to_f32 : eb_bf16_to_f32;
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, src + 2 * i, 2);
        dst[i] = convert(h);
    }
    return EB_OK;
}

/* ------------------------------------------------------------------------ */
/* Writer                                                                    */

typedef struct {
    char *s;
    size_t len, cap;
    int oom;
} strbuf;

static void sb_put(strbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t want = b->cap ? b->cap : 256;
        while (want < b->len + n + 1) want *= 2;
        char *p = realloc(b->s, want);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->s = p;
        b->cap = want;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

static void sb_puts(strbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(strbuf *b, const char *fmt, ...) {
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    sb_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void sb_json_string(strbuf *b, const char *s) {
    sb_puts(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            sb_put(b, esc, 2);
        } else if (c < 0x20) {
            sb_printf(b, "\\u%04x", c);
        } else {
            sb_put(b, (const char *)&c, 1);
        }
    }
    sb_puts(b, "\"");
}

/* Checks the entries and metadata; fills bytes[i] with each tensor's size. */
static eb_status check_entries(const char *path, const eb_st_entry *t, int n, const eb_st_meta *meta, int n_meta,
                               uint64_t *bytes) {
    for (int i = 0; i < n; i++) {
        const char *name = t[i].name;
        if (!name || !*name || strcmp(name, "__metadata__") == 0)
            return eb_fail(EB_EINPUT, "%s: tensor %d: invalid name '%s'", path, i, name ? name : "(null)");
        if (t[i].dtype != EB_DT_F32 && t[i].dtype != EB_DT_F16 && t[i].dtype != EB_DT_BF16)
            return eb_fail(EB_EINPUT, "%s: tensor '%s': the writer takes F32, F16 or BF16, not %s", path, name,
                           eb_dtype_name(t[i].dtype));
        if (t[i].rank < 0 || t[i].rank > EB_ST_MAX_RANK)
            return eb_fail(EB_EINPUT, "%s: tensor '%s': rank %d outside [0, %d]", path, name, t[i].rank,
                           EB_ST_MAX_RANK);
        int64_t numel = eb_checked_count(t[i].shape, t[i].rank, INT64_MAX / 8); /* its bytes fit int64 */
        if (numel < 0) {
            char shape[EB_INDEX_STR_MAX];
            return eb_fail(EB_EINPUT, "%s: tensor '%s': shape %s is negative or too large", path, name,
                           eb_format_dims(shape, sizeof shape, t[i].shape, t[i].rank));
        }
        if (numel && !t[i].data) return eb_fail(EB_EINPUT, "%s: tensor '%s': no data", path, name);
        bytes[i] = (uint64_t)numel * (uint64_t)eb_dtype_size(t[i].dtype);
        for (int k = 0; k < i; k++)
            if (strcmp(t[k].name, name) == 0) return eb_fail(EB_EINPUT, "%s: tensor '%s': duplicate name", path, name);
    }
    for (int i = 0; i < n_meta; i++) {
        if (!meta[i].key || !meta[i].value)
            return eb_fail(EB_EINPUT, "%s: metadata pair %d has a NULL key or value", path, i);
        for (int k = 0; k < i; k++)
            if (strcmp(meta[k].key, meta[i].key) == 0)
                return eb_fail(EB_EINPUT, "%s: metadata key '%s' given twice", path, meta[i].key);
    }
    return EB_OK;
}

/* The header JSON, padded with spaces so the data buffer starts 8-byte aligned. */
static eb_status build_header(strbuf *b, const char *path, const eb_st_entry *t, int n, const eb_st_meta *meta,
                              int n_meta, const uint64_t *bytes) {
    sb_puts(b, "{");
    if (n_meta) {
        sb_puts(b, "\"__metadata__\":{");
        for (int i = 0; i < n_meta; i++) {
            if (i) sb_puts(b, ",");
            sb_json_string(b, meta[i].key);
            sb_puts(b, ":");
            sb_json_string(b, meta[i].value);
        }
        sb_puts(b, "}");
    }
    uint64_t offset = 0;
    for (int i = 0; i < n; i++) {
        if (i || n_meta) sb_puts(b, ",");
        sb_json_string(b, t[i].name);
        sb_printf(b, ":{\"dtype\":\"%s\",\"shape\":[", eb_dtype_name(t[i].dtype));
        for (int r = 0; r < t[i].rank; r++) sb_printf(b, "%s%lld", r ? "," : "", (long long)t[i].shape[r]);
        sb_printf(b, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)offset,
                  (unsigned long long)(offset + bytes[i]));
        offset += bytes[i];
    }
    sb_puts(b, "}");
    while ((8 + b->len) % 8) sb_puts(b, " ");
    if (b->oom) return eb_fail(EB_ERUNTIME, "%s: out of memory building the header", path);
    if (b->len > EB_ST_MAX_HEADER)
        return eb_fail(EB_EINPUT, "%s: header of %zu bytes above the %u MiB limit", path, b->len,
                       EB_ST_MAX_HEADER >> 20);
    return EB_OK;
}

static int write_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return 0;
        p += k;
        n -= (size_t)k;
    }
    return 1;
}

/* Writes one tensor's values in its dtype, converting through a bounded buffer. */
static int write_tensor(int fd, const eb_st_entry *t, uint64_t bytes) {
    if (t->dtype == EB_DT_F32) return write_all(fd, t->data, bytes);
    uint16_t (*convert)(float) = t->dtype == EB_DT_F16 ? eb_f32_to_f16 : eb_f32_to_bf16;
    enum { CHUNK = 1 << 15 };
    uint16_t buf[CHUNK];
    uint64_t numel = bytes / 2;
    for (uint64_t i = 0; i < numel; i += CHUNK) {
        size_t k = numel - i < CHUNK ? (size_t)(numel - i) : CHUNK;
        for (size_t e = 0; e < k; e++) buf[e] = convert(t->data[i + e]);
        if (!write_all(fd, buf, 2 * k)) return 0;
    }
    return 1;
}

eb_status eb_st_write(const char *path, const eb_st_entry *tensors, int n_tensors, const eb_st_meta *meta,
                      int n_meta) {
    if (n_tensors < 0 || n_meta < 0) return eb_fail(EB_EINPUT, "%s: negative tensor or metadata count", path);
    uint64_t *bytes = calloc((size_t)n_tensors + 1, sizeof *bytes);
    strbuf header = {0};
    eb_status st = EB_OK;
    if (!bytes) st = eb_fail(EB_ERUNTIME, "%s: out of memory", path);
    if (!st) st = check_entries(path, tensors, n_tensors, meta, n_meta, bytes);
    if (!st) st = build_header(&header, path, tensors, n_tensors, meta, n_meta, bytes);
    eb_atomic out;
    if (!st) st = eb_atomic_open(&out, path);
    if (!st) {
        /* unbuffered writes on the temporary's descriptor: the commit's fflush has nothing to flush */
        const int fd = fileno(out.f);
        uint64_t n = header.len;
        int ok = write_all(fd, &n, 8) && write_all(fd, header.s, header.len);
        for (int i = 0; ok && i < n_tensors; i++) ok = write_tensor(fd, &tensors[i], bytes[i]);
        if (!ok) {
            st = eb_fail(EB_ERUNTIME, "%s: write failed: %s", path, strerror(errno));
            eb_atomic_abort(&out);
        } else {
            st = eb_atomic_commit(&out);
        }
    }
    free(header.s);
    free(bytes);
    return st;
}
