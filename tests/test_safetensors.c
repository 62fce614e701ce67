/* test_safetensors.c — the safetensors reader/writer, half conversions and the JSON reader. */
#include "runtime/safetensors.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* A fresh scratch folder per test (Criterion runs each test in its own process). */
static char scratch[64];

static void make_scratch(void) {
    snprintf(scratch, sizeof scratch, "/tmp/eb_st_XXXXXX");
    cr_assert_not_null(mkdtemp(scratch));
}

static void remove_scratch(void) {
    DIR *d = opendir(scratch);
    if (!d) return;
    struct dirent *e;
    char path[512];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(path, sizeof path, "%s/%s", scratch, e->d_name);
            if (unlink(path) != 0) rmdir(path);
        }
    closedir(d);
    rmdir(scratch);
}

static char *scratch_path(const char *name) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", scratch, name);
    return path;
}

static int entries_in_scratch(void) {
    DIR *d = opendir(scratch);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

static uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Writes a file: 8-byte length `declared` (the header's own length when 0), header, `data_len` bytes. */
static void write_raw(const char *path, const char *header, uint64_t declared, size_t data_len) {
    FILE *fp = fopen(path, "wb");
    cr_assert_not_null(fp);
    uint64_t n = declared ? declared : strlen(header);
    fwrite(&n, 8, 1, fp);
    fwrite(header, 1, strlen(header), fp);
    for (size_t i = 0; i < data_len; i++) fputc((int)(i * 7 + 1), fp);
    fclose(fp);
}

/* The raw data bytes of a written file (after the header). */
static unsigned char *data_bytes(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    cr_assert_not_null(fp);
    uint64_t n;
    cr_assert_eq(fread(&n, 8, 1, fp), 1);
    cr_assert_eq((8 + n) % 8, 0, "data buffer not 8-byte aligned (header %llu)", (unsigned long long)n);
    fseek(fp, 0, SEEK_END);
    *len = (size_t)ftell(fp) - 8 - n;
    fseek(fp, (long)(8 + n), SEEK_SET);
    unsigned char *buf = malloc(*len + 1);
    cr_assert_eq(fread(buf, 1, *len, fp), *len);
    fclose(fp);
    return buf;
}

TestSuite(safetensors, .init = make_scratch, .fini = remove_scratch);

Test(safetensors, f32_round_trip) {
    float a[6] = {1.5f, -2.25f, 0.0f, -0.0f, INFINITY, from_bits(0x7fc12345u)}, b[1] = {3.0f};
    eb_st_entry t[] = {
        {"blocks.0.attn.qkv.weight", EB_DT_F32, 2, {2, 3}, a},
        {"scalar", EB_DT_F32, 0, {0}, b},
        {"empty", EB_DT_F32, 3, {4, 0, 5}, NULL},
    };
    eb_st_meta meta[] = {{"step", "42"}, {"note", "quote \" backslash \\ newline \n tab \t é \x01"}};
    const char *path = scratch_path("m.safetensors");
    cr_assert_eq(eb_st_write(path, t, 3, meta, 2), EB_OK, "%s", eb_last_error());

    eb_st_file *f;
    cr_assert_eq(eb_st_open(&f, path), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_st_count(f), 3);
    cr_assert_str_eq(eb_st_metadata(f, "step"), "42");
    cr_assert_str_eq(eb_st_metadata(f, "note"), meta[1].value);
    cr_assert_null(eb_st_metadata(f, "missing"));
    cr_assert_null(eb_st_find(f, "blocks.0"));
    /* sorted by name */
    cr_assert_str_eq(eb_st_tensor_at(f, 0)->name, "blocks.0.attn.qkv.weight");
    cr_assert_str_eq(eb_st_tensor_at(f, 1)->name, "empty");
    cr_assert_str_eq(eb_st_tensor_at(f, 2)->name, "scalar");

    const eb_st_tensor *w = eb_st_find(f, "blocks.0.attn.qkv.weight");
    cr_assert_not_null(w);
    cr_assert_eq(w->dtype, EB_DT_F32);
    cr_assert_eq(w->rank, 2);
    cr_assert_eq(w->shape[0], 2);
    cr_assert_eq(w->shape[1], 3);
    cr_assert_eq(w->numel, 6);
    float got[6];
    cr_assert_eq(eb_st_read_f32(f, w, got, 6), EB_OK);
    for (int i = 0; i < 6; i++) cr_assert_eq(bits(got[i]), bits(a[i]), "element %d", i);
    cr_assert_eq(eb_st_read_f32(f, w, got, 5), EB_EINPUT, "a wrong buffer size must be refused");

    const eb_st_tensor *s = eb_st_find(f, "scalar"), *e = eb_st_find(f, "empty");
    cr_assert_eq(s->rank, 0);
    cr_assert_eq(s->numel, 1);
    cr_assert_eq(eb_st_read_f32(f, s, got, 1), EB_OK);
    cr_assert_eq(got[0], 3.0f);
    cr_assert_eq(e->numel, 0);
    cr_assert_eq(e->end - e->begin, 0);
    cr_assert_eq(eb_st_read_f32(f, e, got, 0), EB_OK);
    eb_st_close(f);
    cr_assert_eq(entries_in_scratch(), 1, "no temporary file may be left");
}

/* float input → expected F16 bits, covering ties, subnormals, overflow and signs. */
static const struct { uint32_t in; uint16_t want; } f16_cases[] = {
    {0x3f800000u, 0x3c00},                         /* 1 */
    {0xc0000000u, 0xc000},                         /* -2 */
    {0x80000000u, 0x8000},                         /* -0 */
    {0x477fe000u, 0x7bff},                         /* 65504, the largest half */
    {0x477fefffu, 0x7bff},                         /* just below the 65520 midpoint */
    {0x477ff000u, 0x7c00},                         /* 65520: tie, rounds to even = inf */
    {0x501502f9u, 0x7c00},                         /* 1e10 */
    {0xff800000u, 0xfc00},                         /* -inf */
    {0x7f800000u, 0x7c00},                         /* inf */
    {0x3f801000u, 0x3c00},                         /* 1 + 2^-11: tie, even is 1 */
    {0x3f803000u, 0x3c02},                         /* 1 + 3·2^-11: tie, even is 1 + 2^-9 */
    {0x3f801001u, 0x3c01},                         /* just above the tie */
    {0x38800000u, 0x0400},                         /* 2^-14, smallest normal */
    {0x33800000u, 0x0001},                         /* 2^-24, smallest subnormal */
    {0x33000000u, 0x0000},                         /* 2^-25: tie between 0 and 2^-24, even is 0 */
    {0x33000001u, 0x0001},                         /* just above it */
    {0x33c00000u, 0x0002},                         /* 1.5·2^-24: tie, even is 2 */
    {0x387fc000u, 0x03ff},                         /* 1023·2^-24, largest subnormal */
    {0x387fe000u, 0x0400},                         /* 1023.5·2^-24: tie, even is 1024 = smallest normal */
    {0xb3c00000u, 0x8002},                         /* negative subnormal tie */
    {0x2edbe6ffu, 0x0000},                         /* 1e-10 underflows */
    {0x00000001u, 0x0000},                         /* float subnormal */
};

/* float input → expected BF16 bits. */
static const struct { uint32_t in; uint16_t want; } bf16_cases[] = {
    {0x3f800000u, 0x3f80}, /* 1 */
    {0x3f808000u, 0x3f80}, /* 1 + 2^-8: tie, even is 1 */
    {0x3f818000u, 0x3f82}, /* 1 + 3·2^-8: tie, even is 1 + 2^-6 */
    {0x3f808001u, 0x3f81}, /* just above the tie */
    {0x7f7fffffu, 0x7f80}, /* FLT_MAX rounds up to inf */
    {0x7f7f7fffu, 0x7f7f}, /* just below the overflow midpoint */
    {0xff800000u, 0xff80}, /* -inf */
    {0x80000000u, 0x8000}, /* -0 */
    {0x00010000u, 0x0001}, /* subnormal, exact */
    {0x00008000u, 0x0000}, /* subnormal tie, even is 0 */
    {0x00018000u, 0x0002}, /* subnormal tie, even is 2 */
    {0x00008001u, 0x0001}, /* just above */
};

Test(safetensors, f16_rounding_exact) {
    for (size_t i = 0; i < sizeof f16_cases / sizeof f16_cases[0]; i++)
        cr_expect_eq(eb_f32_to_f16(from_bits(f16_cases[i].in)), f16_cases[i].want, "0x%08x → 0x%04x, want 0x%04x",
                     f16_cases[i].in, eb_f32_to_f16(from_bits(f16_cases[i].in)), f16_cases[i].want);
    /* NaN stays NaN (also one whose payload is only in the low float bits) with its sign */
    uint16_t n1 = eb_f32_to_f16(from_bits(0x7fc00000u)), n2 = eb_f32_to_f16(from_bits(0xff800001u));
    cr_assert((n1 & 0x7c00) == 0x7c00 && (n1 & 0x3ff) && !(n1 & 0x8000));
    cr_assert((n2 & 0x7c00) == 0x7c00 && (n2 & 0x3ff) && (n2 & 0x8000));
    /* decoding is exact: every non-NaN half survives half → float → half; spot values by bits */
    for (uint32_t h = 0; h < 65536; h++) {
        float f = eb_f16_to_f32((uint16_t)h);
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) cr_assert(isnan(f), "0x%04x", h);
        else cr_assert_eq(eb_f32_to_f16(f), h, "0x%04x → %a", h, (double)f);
    }
    cr_assert_eq(eb_f16_to_f32(0x0001), 0x1p-24f);
    cr_assert_eq(eb_f16_to_f32(0x83ff), -1023 * 0x1p-24f);
    cr_assert_eq(eb_f16_to_f32(0x7bff), 65504.0f);
    cr_assert_eq(eb_f16_to_f32(0xfc00), -INFINITY);
#ifdef __FLT16_MAX__
    /* the compiler's own float → _Float16 conversion rounds to nearest even too */
    uint32_t x = 12345;
    for (int i = 0; i < 200000; i++) {
        /* magnitudes 2^-27 .. 2^20 around the half range; every other one an exact tie */
        x = x * 1664525u + 1013904223u;
        uint32_t e = 100 + (x >> 8) % 48, m = (x = x * 1664525u + 1013904223u) & 0x807fffffu;
        if (i & 1) m = (m & ~0x1fffu) | 0x1000u;
        float f = from_bits(m | e << 23);
        _Float16 h16 = (_Float16)f;
        uint16_t want;
        memcpy(&want, &h16, 2);
        if (!isnan(f)) cr_assert_eq(eb_f32_to_f16(f), want, "%a", (double)f);
    }
#endif
}

Test(safetensors, bf16_rounding_exact) {
    for (size_t i = 0; i < sizeof bf16_cases / sizeof bf16_cases[0]; i++)
        cr_expect_eq(eb_f32_to_bf16(from_bits(bf16_cases[i].in)), bf16_cases[i].want, "0x%08x → 0x%04x, want 0x%04x",
                     bf16_cases[i].in, eb_f32_to_bf16(from_bits(bf16_cases[i].in)), bf16_cases[i].want);
    uint16_t n = eb_f32_to_bf16(from_bits(0x7f800001u)); /* truncation would turn this NaN into inf */
    cr_assert((n & 0x7f80) == 0x7f80 && (n & 0x7f));
    for (uint32_t h = 0; h < 65536; h++) {
        float f = eb_bf16_to_f32((uint16_t)h);
        cr_assert_eq(bits(f), h << 16);
        if (!isnan(f)) cr_assert_eq(eb_f32_to_bf16(f), h, "0x%04x", h);
    }
}

/* Writes the case table in `dtype`, checks the stored bits and the values read back. */
static void half_file_round_trip(eb_dtype dtype, const uint32_t *in, const uint16_t *want, int n) {
    float *x = malloc(n * sizeof *x), *got = malloc(n * sizeof *got);
    for (int i = 0; i < n; i++) x[i] = from_bits(in[i]);
    eb_st_entry t = {"t", dtype, 1, {n}, x};
    const char *path = scratch_path("half.safetensors");
    cr_assert_eq(eb_st_write(path, &t, 1, NULL, 0), EB_OK, "%s", eb_last_error());
    size_t len;
    unsigned char *raw = data_bytes(path, &len);
    cr_assert_eq(len, 2 * (size_t)n);
    eb_st_file *f;
    cr_assert_eq(eb_st_open(&f, path), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_st_find(f, "t")->dtype, dtype);
    cr_assert_eq(eb_st_read_f32(f, eb_st_find(f, "t"), got, n), EB_OK);
    for (int i = 0; i < n; i++) {
        uint16_t stored = (uint16_t)(raw[2 * i] | raw[2 * i + 1] << 8);
        cr_expect_eq(stored, want[i], "%s element %d: stored 0x%04x, want 0x%04x", eb_dtype_name(dtype), i, stored,
                     want[i]);
        float back = dtype == EB_DT_F16 ? eb_f16_to_f32(want[i]) : eb_bf16_to_f32(want[i]);
        cr_expect_eq(bits(got[i]), bits(back), "%s element %d read back", eb_dtype_name(dtype), i);
    }
    eb_st_close(f);
    free(raw), free(x), free(got);
}

Test(safetensors, f16_file_round_trip) {
    enum { N = sizeof f16_cases / sizeof f16_cases[0] };
    uint32_t in[N];
    uint16_t want[N];
    for (int i = 0; i < N; i++) in[i] = f16_cases[i].in, want[i] = f16_cases[i].want;
    half_file_round_trip(EB_DT_F16, in, want, N);
}

Test(safetensors, bf16_file_round_trip) {
    enum { N = sizeof bf16_cases / sizeof bf16_cases[0] };
    uint32_t in[N];
    uint16_t want[N];
    for (int i = 0; i < N; i++) in[i] = bf16_cases[i].in, want[i] = bf16_cases[i].want;
    half_file_round_trip(EB_DT_BF16, in, want, N);
}

Test(safetensors, non_float_dtype_is_recognised_but_not_converted) {
    const char *path = scratch_path("ints.safetensors");
    write_raw(path, "{\"ids\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}", 0, 16);
    eb_st_file *f;
    cr_assert_eq(eb_st_open(&f, path), EB_OK, "%s", eb_last_error());
    float got[2];
    cr_assert_eq(eb_st_find(f, "ids")->dtype, EB_DT_I64);
    cr_assert_eq(eb_st_read_f32(f, eb_st_find(f, "ids"), got, 2), EB_EINPUT);
    cr_assert(strstr(eb_last_error(), "'ids'") && strstr(eb_last_error(), "I64"), "%s", eb_last_error());
    eb_st_close(f);
}

Test(safetensors, memory_api_matches_file) {
    static const char header[] = "{\"__metadata__\":{\"k\":\"v\"},\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    unsigned char buf[8 + sizeof header - 1 + 4];
    uint64_t n = sizeof header - 1;
    float one = 1.0f, got;
    memcpy(buf, &n, 8);
    memcpy(buf + 8, header, n);
    memcpy(buf + 8 + n, &one, 4);
    eb_st_file *f;
    cr_assert_eq(eb_st_open_memory(&f, buf, sizeof buf, "buffer"), EB_OK, "%s", eb_last_error());
    cr_assert_str_eq(eb_st_metadata(f, "k"), "v");
    cr_assert_eq(eb_st_read_f32(f, eb_st_find(f, "w"), &got, 1), EB_OK);
    cr_assert_eq(got, 1.0f);
    eb_st_close(f);
    cr_assert_eq(eb_st_open_memory(&f, buf, sizeof buf - 1, "short buffer"), EB_EINPUT);
    cr_assert(strstr(eb_last_error(), "short buffer") && strstr(eb_last_error(), "'w'"), "%s", eb_last_error());
    cr_assert_null(f);
}

/* Each malformed file must be EB_EINPUT naming the file, the key (when there
 * is one) and the problem. */
static const struct {
    const char *what, *header;
    uint64_t declared; /* 0: the header's length */
    size_t data_len;
    const char *key, *problem;
} malformed[] = {
    {"header_length_beyond_file", "{}", 1000, 0, NULL, "beyond the file size"},
    {"header_length_huge", "{}", UINT64_MAX, 0, NULL, "beyond the file size"},
    {"empty_header", "", 0, 0, NULL, "expected '{'"},
    {"invalid_json", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]", 0, 4, "'w'", "expected ',' or '}'"},
    {"invalid_json_in_shape", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1,],\"data_offsets\":[0,4]}}", 0, 4, "'w'", "invalid JSON"},
    {"trailing_garbage", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}} x", 0, 4, NULL, "unexpected characters"},
    {"trailing_comma", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},}", 0, 4, NULL, "expected a string key"},
    {"not_an_object", "{\"w\":[1,2]}", 0, 0, "'w'", "expected '{'"},
    {"missing_data_offsets", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 0, 4, "'w'", "missing 'data_offsets'"},
    {"missing_dtype", "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 0, 4, "'w'", "missing 'dtype'"},
    {"offsets_out_of_range", "{\"w\":{\"dtype\":\"F32\",\"shape\":[100],\"data_offsets\":[0,400]}}", 0, 8, "'w'", "beyond the data buffer"},
    {"offsets_reversed", "{\"blocks.3.attn.qkv.weight\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[100,90]}}", 0, 200,
     "'blocks.3.attn.qkv.weight'", "data_offsets [100, 90] out of order"},
    {"offsets_negative", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 0, 4, "'w'", "negative"},
    {"offsets_three", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 0, 8, "'w'", "more than 2"},
    {"overlapping", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                    "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 0, 12, "'b'", "overlap tensor 'a'"},
    {"size_not_shape_times_dtype", "{\"w\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,8]}}", 0, 8, "'w'", "needs 6"},
    {"unknown_dtype", "{\"w\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 0, 4, "'w'", "unknown dtype 'F33'"},
    {"negative_dim", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,4]}}", 0, 4, "'w'", "negative dimension -1"},
    {"dim_beyond_int64", "{\"w\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,4]}}", 0, 4, "'w'", "out of the 64-bit range"},
    {"shape_product_overflow", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,4]}}",
     0, 4, "'w'", "overflows"},
    {"byte_size_overflow", "{\"w\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,8]}}", 0, 8, "'w'", "overflows"},
    {"fractional_dim", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 0, 4, "'w'", "expected an integer"},
    {"rank_above_8", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 0, 4, "'w'", "more than 8"},
    {"duplicate_key", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                      "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 0, 8, "'w'", "duplicate"},
    {"duplicate_field", "{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 0, 4, "'w'", "duplicate field 'dtype'"},
    {"unexpected_field", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"extra\":1}}", 0, 4, "'w'", "unexpected field 'extra'"},
    {"dtype_not_string", "{\"w\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", 0, 4, "'w'", "expected a string"},
    {"metadata_value_not_string", "{\"__metadata__\":{\"step\":42}}", 0, 0, "'step'", "expected a string"},
    {"bad_escape", "{\"w\\q\":{}}", 0, 0, NULL, "invalid escape"},
};

Test(safetensors, malformed_files_rejected) {
    for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
        char name[96];
        snprintf(name, sizeof name, "%s.safetensors", malformed[i].what);
        const char *path = scratch_path(name);
        write_raw(path, malformed[i].header, malformed[i].declared, malformed[i].data_len);
        eb_st_file *f = (eb_st_file *)1;
        eb_status st = eb_st_open(&f, path);
        const char *msg = eb_last_error();
        cr_expect_eq(st, EB_EINPUT, "%s: status %d (%s)", malformed[i].what, st, msg);
        cr_expect_null(f, "%s: handle must be NULL on failure", malformed[i].what);
        cr_expect(strstr(msg, name) != NULL, "%s: message lacks the file name: %s", malformed[i].what, msg);
        if (malformed[i].key)
            cr_expect(strstr(msg, malformed[i].key) != NULL, "%s: message lacks the key: %s", malformed[i].what, msg);
        cr_expect(strstr(msg, malformed[i].problem) != NULL, "%s: message lacks '%s': %s", malformed[i].what,
                  malformed[i].problem, msg);
    }
}

Test(safetensors, short_and_special_files_rejected) {
    const char *path = scratch_path("truncated.safetensors");
    FILE *fp = fopen(path, "wb");
    fwrite("\x02\x00\x00", 1, 3, fp);
    fclose(fp);
    eb_st_file *f;
    cr_assert_eq(eb_st_open(&f, path), EB_EINPUT);
    cr_assert(strstr(eb_last_error(), "truncated.safetensors") && strstr(eb_last_error(), "too short"), "%s",
              eb_last_error());
    cr_assert_eq(eb_st_open(&f, scratch_path("absent.safetensors")), EB_EINPUT);
    cr_assert(strstr(eb_last_error(), "absent.safetensors"), "%s", eb_last_error());
    cr_assert_eq(eb_st_open(&f, scratch), EB_EINPUT);
    cr_assert(strstr(eb_last_error(), "not a regular file"), "%s", eb_last_error());
}

Test(safetensors, header_above_limit_rejected) {
    /* a sparse file: the length fits the file but exceeds the 100 MiB cap */
    const char *path = scratch_path("big.safetensors");
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    cr_assert_geq(fd, 0);
    uint64_t n = EB_ST_MAX_HEADER + 8;
    cr_assert_eq(write(fd, &n, 8), 8);
    cr_assert_eq(ftruncate(fd, (off_t)(n + 16)), 0);
    close(fd);
    eb_st_file *f;
    cr_assert_eq(eb_st_open(&f, path), EB_EINPUT);
    cr_assert(strstr(eb_last_error(), "big.safetensors") && strstr(eb_last_error(), "100 MiB"), "%s", eb_last_error());
}

Test(safetensors, failed_writes_leave_nothing) {
    float x[2] = {1, 2};
    eb_st_entry good = {"w", EB_DT_F32, 1, {2}, x};
    const char *path = scratch_path("keep.safetensors");
    cr_assert_eq(eb_st_write(path, &good, 1, NULL, 0), EB_OK, "%s", eb_last_error());
    struct stat before;
    cr_assert_eq(stat(path, &before), 0);

    eb_st_entry dup[2] = {good, good};
    cr_assert_eq(eb_st_write(path, dup, 2, NULL, 0), EB_EINPUT);
    cr_assert(strstr(eb_last_error(), "'w'") && strstr(eb_last_error(), "duplicate"), "%s", eb_last_error());
    eb_st_entry bad_dtype = {"w", EB_DT_I32, 1, {2}, x};
    cr_assert_eq(eb_st_write(path, &bad_dtype, 1, NULL, 0), EB_EINPUT);
    eb_st_entry neg = {"w", EB_DT_F32, 1, {-2}, x};
    cr_assert_eq(eb_st_write(path, &neg, 1, NULL, 0), EB_EINPUT);
    eb_st_meta meta[2] = {{"a", "1"}, {"a", "2"}};
    cr_assert_eq(eb_st_write(path, &good, 1, meta, 2), EB_EINPUT);
    struct stat after;
    cr_assert_eq(stat(path, &after), 0);
    cr_assert_eq(after.st_ino, before.st_ino, "a refused write must not replace the existing file");

    /* the output path a folder, or in a missing one: bad input (runtime/atomic.h), before any byte */
    const char *dir = scratch_path("folder");
    cr_assert_eq(mkdir(dir, 0755), 0);
    cr_assert_eq(eb_st_write(dir, &good, 1, NULL, 0), EB_EINPUT);
    cr_assert(strstr(eb_last_error(), "is a directory"), "%s", eb_last_error());
    cr_assert_eq(eb_st_write(scratch_path("no/such/dir.safetensors"), &good, 1, NULL, 0), EB_EINPUT);
    cr_assert(strstr(eb_last_error(), "no/such/dir.safetensors"), "%s", eb_last_error());

    /* a write that fails after the temporary has data (the file size limit: EFBIG): the temporary goes,
     * the existing file stays */
    static float big[4096];
    eb_st_entry large = {"w", EB_DT_F32, 1, {4096}, big};
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit small = {1024, 1024};
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &small), 0);
    path = scratch_path("keep.safetensors"); /* the static buffer held the missing folder's path */
    cr_assert_eq(eb_st_write(path, &large, 1, NULL, 0), EB_ERUNTIME, "%s", eb_last_error());
    cr_assert(strstr(eb_last_error(), "keep.safetensors") && strstr(eb_last_error(), "write failed"), "%s",
              eb_last_error());
    cr_assert_eq(stat(path, &after), 0);
    cr_assert_eq(after.st_ino, before.st_ino, "a failed write must not replace the existing file");
    cr_assert_eq(entries_in_scratch(), 2, "only keep.safetensors and folder/ may remain");
}

Test(safetensors, json_reader) {
    eb_json j;
    char *s;
    const char *text = "\"a\\\"b\\\\c\\/\\n\\u00e9\\ud83d\\ude00\"";
    eb_json_init(&j, text, strlen(text), "t.json");
    cr_assert_eq(eb_json_string(&j, &s), EB_OK, "%s", eb_last_error());
    cr_assert_str_eq(s, "a\"b\\c/\n\xc3\xa9\xf0\x9f\x98\x80");
    free(s);
    cr_assert_eq(eb_json_finish(&j), EB_OK);

    const char *bad[] = {"\"\\u0000\"", "\"\\ud800\"", "\"\\udc00x\"", "\"\xc3\"", "\"\xed\xa0\x80\"",
                         "\"tab\there\"", "\"open"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        eb_json_init(&j, bad[i], strlen(bad[i]), "t.json");
        cr_expect_eq(eb_json_string(&j, &s), EB_EINPUT, "string %zu accepted", i);
        cr_expect(strstr(eb_last_error(), "t.json"), "%s", eb_last_error());
    }

    int64_t v;
    const struct { const char *text; int ok; int64_t want; } ints[] = {
        {"0", 1, 0}, {"-12", 1, -12}, {"9223372036854775807", 1, INT64_MAX}, {"-9223372036854775808", 1, INT64_MIN},
        {"9223372036854775808", 0, 0}, {"01", 0, 0}, {"1e3", 0, 0}, {"-", 0, 0}, {"+1", 0, 0},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        eb_json_init(&j, ints[i].text, strlen(ints[i].text), "t.json");
        eb_status st = eb_json_int(&j, &v);
        if (!st) st = eb_json_finish(&j);
        cr_expect_eq(st == EB_OK, ints[i].ok, "'%s'", ints[i].text);
        if (ints[i].ok) cr_expect_eq(v, ints[i].want, "'%s'", ints[i].text);
    }

    const char *skip_ok = "{\"a\": [1, -2.5e-3, true, false, null, {\"b\": {}}, []], \"c\": \"d\"}";
    eb_json_init(&j, skip_ok, strlen(skip_ok), "t.json");
    cr_assert_eq(eb_json_skip(&j), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_json_finish(&j), EB_OK);
    char deep[200];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    eb_json_init(&j, deep, sizeof deep, "deep.json");
    cr_assert_eq(eb_json_skip(&j), EB_EINPUT);
    cr_assert(strstr(eb_last_error(), "nested"), "%s", eb_last_error());
    const char *bad_skip[] = {"[1,]", "{\"a\" 1}", "tru", "1.", "[1 2]", "{,}"};
    for (size_t i = 0; i < sizeof bad_skip / sizeof bad_skip[0]; i++) {
        eb_json_init(&j, bad_skip[i], strlen(bad_skip[i]), "t.json");
        cr_expect_eq(eb_json_skip(&j), EB_EINPUT, "'%s' accepted", bad_skip[i]);
    }
}
