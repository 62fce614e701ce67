/* test_fuzz_regressions.c — every input that ever made a fuzz target (fuzz/,
 * docs/fuzzing.md) crash or report, rebuilt here, plus the checked size
 * arithmetic (runtime/checked.h) those fixes rest on. Under the ASan/UBSan
 * build (`make test-san`) the old code aborts on these; several also fail
 * the optimized build, where the old code returned a wrapped count. */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/check.h"
#include "runtime/checked.h"
#include "tests/cli_util.h"
#include "runtime/h5io.h"
#include "runtime/safetensors.h"
#include "runtime/schedule.h"

TestSuite(fuzz_regressions, .init = cli_workdir_make, .fini = cli_workdir_remove);

#define P2(k) ((int64_t)1 << (k))

Test(fuzz_regressions, checked_count_limits) {
    const int64_t wide[3] = {P2(59), P2(57), 0}, wraps[3] = {P2(32), P2(32), P2(32)}, fits[2] = {P2(31), P2(31)};
    const int64_t negative[2] = {-1, 0}, just[2] = {P2(31), 2};
    cr_expect_eq(eb_checked_count(wide, 3, INT64_MAX), 0, "a zero extent: empty, whatever the others");
    cr_expect_eq(eb_checked_count(wraps, 3, INT64_MAX), -1, "2^96 elements overflow int64");
    cr_expect_eq(eb_checked_count(fits, 2, INT64_MAX), P2(62));
    cr_expect_eq(eb_checked_count(fits, 2, P2(62) - 1), -1, "one past the limit");
    cr_expect_eq(eb_checked_count(just, 2, P2(32)), P2(32), "exactly the limit");
    cr_expect_eq(eb_checked_count(negative, 2, INT64_MAX), -1, "a negative extent, even beside a zero");
    cr_expect_eq(eb_checked_count(NULL, 0, INT64_MAX), 1, "a scalar");
    cr_expect_eq(eb_checked_bytes(P2(61), 8), SIZE_MAX, "2^64 bytes do not fit size_t");
    cr_expect_eq(eb_checked_bytes(-1, 4), SIZE_MAX);
    cr_expect_eq(eb_checked_bytes(P2(40), 4), (size_t)P2(42));
    uint64_t u;
    cr_expect(eb_mul_overflows_u64(UINT64_MAX / 3 + 1, 3, &u));
    cr_expect(!eb_mul_overflows_u64(UINT64_MAX / 3, 3, &u) && u == UINT64_MAX / 3 * 3);
}

/* fuzz_h5, 3 minutes: a dataset of extents [2^59, 2^57, 0] (no elements)
 * passed h5io's count, then check.c's own product overflowed a signed multiply. */
Test(fuzz_regressions, h5_empty_dataset_with_huge_extents) {
    char path[512];
    in_workdir(path, "wide.h5");
    const int64_t dims[3] = {P2(59), P2(57), 0};
    eb_h5w *w;
    cr_assert(!eb_h5w_create(&w, path), "%s", eb_last_error());
    eb_h5w_write(w, "x", EB_H5_F32, NULL, 3, dims);
    cr_assert(!eb_h5w_commit(w), "%s", eb_last_error());
    eb_h5 *f;
    cr_assert(!eb_h5_open(&f, path), "%s", eb_last_error());
    float *x;
    int64_t got[3];
    eb_status st = eb_h5_read_f32(f, "x", 3, NULL, &x, got, EB_H5_FINITE);
    cr_assert(!st, "%s", eb_last_error());
    cr_expect(got[0] == dims[0] && got[1] == dims[1] && got[2] == 0);
    free(x);
    eb_h5_close(f);
}

/* The same count in the finite check itself: an empty array of huge extents
 * is finite; extents whose product overflows describe no array and fail
 * (the old product wrapped to 0 and passed). */
Test(fuzz_regressions, finite_check_counts) {
    const int64_t empty[3] = {P2(59), P2(57), 0}, wraps[3] = {P2(32), P2(32), P2(32)};
    float one = 1;
    cr_expect(!eb_check_finite(&one, empty, 3, EB_EINPUT, "x"), "%s", eb_last_error());
    cr_expect(!eb_check_finite_f64((const double *)&one, empty, 3, EB_EINPUT, "x"));
    cr_expect_eq(eb_check_finite(&one, wraps, 3, EB_EINPUT, "x"), EB_ERUNTIME);
    cr_expect(strstr(eb_last_error(), "overflow"), "%s", eb_last_error());
}

/* An int64 .npy whose shape times 8 bytes wraps to the 8 bytes it holds: the
 * old reader accepted it and read 2^61 entries from that buffer. */
Test(fuzz_regressions, npy_shape_that_wraps) {
    char path[512];
    FILE *f = fopen(in_workdir(path, "wrap.npy"), "wb");
    cr_assert(f);
    char head[118];
    int n = snprintf(head, sizeof head, "{'descr': '<i8', 'fortran_order': False, 'shape': (2305843009213693953,), }");
    memset(head + n, ' ', sizeof head - 1 - (size_t)n);
    head[sizeof head - 1] = '\n'; /* 10 + 118 bytes: the data starts 64-aligned */
    const unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, sizeof head, 0};
    const int64_t value = 0;
    fwrite(pre, 1, sizeof pre, f);
    fwrite(head, 1, sizeof head, f);
    fwrite(&value, 8, 1, f);
    fclose(f);
    int64_t *v = NULL, count = 0;
    cr_assert_eq(eb_npy_read_i64(path, &v, &count), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "wrap.npy") && strstr(eb_last_error(), "more than 2^64"), "%s", eb_last_error());
    cr_expect_null(v);
}

/* safetensors takes the same rule: a zero extent is an empty tensor, however
 * large the others; a product past int64 is refused. */
Test(fuzz_regressions, safetensors_zero_extent_beside_huge_ones) {
    static const char json[] = "{\"w\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776,0],\"data_offsets\":[0,0]}}";
    unsigned char buf[8 + sizeof json];
    uint64_t len = sizeof json - 1;
    memcpy(buf, &len, 8);
    memcpy(buf + 8, json, len);
    eb_st_file *f;
    cr_assert(!eb_st_open_memory(&f, buf, 8 + len, "wide.safetensors"), "%s", eb_last_error());
    cr_expect_eq(eb_st_find(f, "w")->numel, 0);
    eb_st_close(f);
}

/* Writes `path` with the root attribute `name` (a string or an int64) and
 * returns the file offset of its version-1 attribute message body (version
 * 1, reserved, name size, type size, shape size, then the name 8 bytes on). */
static long attribute_message(const char *path, const char *name, const char *string) {
    eb_h5w *w;
    cr_assert(!eb_h5w_create(&w, path), "%s", eb_last_error());
    if (string) eb_h5w_attr_str(w, NULL, name, string);
    else eb_h5w_attr_i64(w, NULL, name, 7);
    cr_assert(!eb_h5w_commit(w), "%s", eb_last_error());
    FILE *f = fopen(path, "rb");
    cr_assert(f);
    static unsigned char bytes[1 << 14];
    size_t n = fread(bytes, 1, sizeof bytes, f), len = strlen(name) + 1;
    fclose(f);
    for (size_t i = 0; i + 8 + len <= n; i++)
        if (bytes[i] == 1 && !bytes[i + 1] && bytes[i + 2] == len && !bytes[i + 3] && !memcmp(bytes + i + 8, name, len))
            return (long)i;
    cr_assert_fail("the attribute message of '%s' not found in %zu bytes", name, n);
    return -1;
}

/* Overwrites `n` bytes of `path` at offset `at`. */
static void patch(const char *path, long at, const unsigned char *bytes, size_t n) {
    FILE *f = fopen(path, "r+b");
    cr_assert(f && !fseek(f, at, SEEK_SET) && fwrite(bytes, 1, n, f) == n);
    fclose(f);
}

/* fuzz_h5, long run 1 (one byte of a recording's root object header): an
 * attribute message whose dataspace claims 2056 bytes of its 56 made libhdf5
 * 1.10 read past the header inside H5Aexists. Rebuilt here by patching that
 * field of a freshly written attribute "seed". */
Test(fuzz_regressions, h5_attribute_message_larger_than_itself) {
    char path[512];
    in_workdir(path, "attr.h5");
    long at = attribute_message(path, "seed", NULL);
    const unsigned char space_size[2] = {0x08, 0x08};
    patch(path, at + 6, space_size, 2);

    eb_h5 *h;
    cr_assert(!eb_h5_open(&h, path), "%s", eb_last_error());
    cr_expect(!eb_h5_has_attr(h, NULL, "seed"));
    int64_t v;
    cr_expect_eq(eb_h5_attr_i64(h, NULL, "seed", &v), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "attr.h5") && strstr(eb_last_error(), "corrupt HDF5 attribute message"), "%s",
              eb_last_error());
    eb_h5_close(h);
}

/* The file offset of the first stored element (length, heap address, index)
 * of the string attribute whose version-1 message starts at `at`. */
static long first_string_element(const char *path, long at) {
    unsigned char head[8];
    FILE *f = fopen(path, "rb");
    cr_assert(f && !fseek(f, at, SEEK_SET) && fread(head, 1, 8, f) == 8);
    fclose(f);
    size_t type = (size_t)(head[4] | head[5] << 8), space = (size_t)(head[6] | head[7] << 8);
    return at + 16 + (long)((type + 7) / 8 * 8 + (space + 7) / 8 * 8); /* header, padded name, type, space */
}

/* Reading the string attribute "format" of path fails as an input error naming
 * the file and saying `why`, and hands back no string. */
static void expect_string_refused(const char *path, const char *file, const char *why) {
    eb_h5 *h;
    cr_assert(!eb_h5_open(&h, path), "%s", eb_last_error());
    char *s = NULL;
    cr_expect_eq(eb_h5_attr_str(h, NULL, "format", &s), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), file) && strstr(eb_last_error(), why), "%s", eb_last_error());
    cr_expect_null(s);
    eb_h5_close(h);
}

/* fuzz_h5, long run 2 (one integer of a recording's root attributes): a
 * variable-length string attribute naming an object its global heap does not
 * hold made libhdf5 1.10 read through a NULL pointer in H5Aread. Rebuilt
 * here by renumbering the heap object of a fresh string attribute "format". */
Test(fuzz_regressions, h5_string_attribute_of_a_missing_heap_object) {
    char path[512];
    in_workdir(path, "vlen.h5");
    long element = first_string_element(path, attribute_message(path, "format", "ebcache"));
    const unsigned char index[4] = {0x77, 0x77, 0, 0}; /* after the length (4) and the heap address (8) */
    patch(path, element + 12, index, 4);
    expect_string_refused(path, "vlen.h5", "global heap");
}

/* fuzz_h5, long run 3: an attribute type turned into an enum of 257 members
 * in 20 bytes made libhdf5 1.10 strdup() member names past the object header
 * inside H5Aexists. Rebuilt here on a fresh attribute "seed". */
Test(fuzz_regressions, h5_attribute_enum_with_more_members_than_bytes) {
    char path[512];
    in_workdir(path, "enum.h5");
    long at = attribute_message(path, "seed", NULL);
    const unsigned char enum_of_257[3] = {0x18, 0x01, 0x01}; /* version 1, class 8; 257 members */
    patch(path, at + 16, enum_of_257, 3);

    eb_h5 *h;
    cr_assert(!eb_h5_open(&h, path), "%s", eb_last_error());
    cr_expect(!eb_h5_has_attr(h, NULL, "seed"));
    double v;
    cr_expect_eq(eb_h5_attr_f64(h, NULL, "seed", &v), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "enum.h5") && strstr(eb_last_error(), "257 members"), "%s", eb_last_error());
    eb_h5_close(h);
}

/* fuzz_h5, long run 4: a variable-length string attribute announcing far more
 * characters than its global heap object holds made libhdf5 1.10 copy past
 * the object in H5HG_read. Rebuilt here by growing the length of a fresh
 * string attribute "format" (7 characters) to 0x7777. */
Test(fuzz_regressions, h5_string_attribute_longer_than_its_heap_object) {
    char path[512];
    in_workdir(path, "vlen_long.h5");
    long element = first_string_element(path, attribute_message(path, "format", "ebcache"));
    const unsigned char length[4] = {0x77, 0x77, 0, 0}; /* the element's first field */
    patch(path, element, length, 4);
    expect_string_refused(path, "vlen_long.h5", "not of its length");
}

/* fuzz_h5, long run 5: a variable-length string type whose element size says
 * 9 bytes (the file's elements take 16: length, heap address, index) made
 * libhdf5 1.10 read 16 bytes from its 9-byte copy of the data in H5A__read.
 * Rebuilt here on a fresh string attribute "format". */
Test(fuzz_regressions, h5_string_type_of_the_wrong_element_size) {
    char path[512];
    in_workdir(path, "vlen_size.h5");
    long at = attribute_message(path, "format", "ebcache");
    const unsigned char nine[4] = {9, 0, 0, 0}; /* the type's size field, after class+flags (4) */
    patch(path, at + 16 + 4, nine, 4);
    expect_string_refused(path, "vlen_size.h5", "says 9 bytes an element");
}

/* fuzz_h5, long run 6: an attribute whose type and shape need more bytes of
 * data than its message holds made libhdf5 1.10 copy past the object header
 * while decoding it in H5Aexists. Rebuilt here by growing the element size of
 * a fresh integer attribute "seed" from 8 to 0x4000 bytes. */
Test(fuzz_regressions, h5_attribute_data_larger_than_its_message) {
    char path[512];
    in_workdir(path, "data_size.h5");
    long at = attribute_message(path, "seed", NULL);
    const unsigned char size[4] = {0, 0x40, 0, 0}; /* the type's size field, after class+flags (4) */
    patch(path, at + 16 + 4, size, 4);

    eb_h5 *h;
    cr_assert(!eb_h5_open(&h, path), "%s", eb_last_error());
    cr_expect(!eb_h5_has_attr(h, NULL, "seed"));
    int64_t v;
    cr_expect_eq(eb_h5_attr_i64(h, NULL, "seed", &v), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "data_size.h5") && strstr(eb_last_error(), "need more data"), "%s",
              eb_last_error());
    eb_h5_close(h);
}
