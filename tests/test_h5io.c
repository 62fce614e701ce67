/* test_h5io.c — HDF5 reader and atomic writer: round trips, atomicity, and
 * malformed inputs generated here (each must be EB_EINPUT naming file and dataset). */
#include <criterion/criterion.h>
#include <criterion/redirect.h>

#include <dirent.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/check.h"
#include "runtime/h5io.h"

static char dir[64];

static void make_dir(void) {
    snprintf(dir, sizeof dir, "/tmp/eb_h5io_XXXXXX");
    cr_assert(mkdtemp(dir), "mkdtemp");
}

static void remove_dir(void) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    closedir(d);
    rmdir(dir);
}

TestSuite(h5io, .init = make_dir, .fini = remove_dir);

static const char *in_dir(const char *name) {
    static char p[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

static int exists(const char *path) { return access(path, F_OK) == 0; }

static const char *temp_of(const char *path) {
    static char p[300];
    snprintf(p, sizeof p, "%s.tmp.%ld", path, (long)getpid());
    return p;
}

static int count_entries(void) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

/* Asserts `st` is EB_EINPUT and the message holds every given piece. */
static void expect_input_error(eb_status st, const char *const *pieces, int n) {
    cr_assert_eq(st, EB_EINPUT, "status %d, message: %s", st, eb_last_error());
    for (int i = 0; i < n; i++)
        cr_assert(strstr(eb_last_error(), pieces[i]), "message '%s' lacks '%s'", eb_last_error(), pieces[i]);
}
#define EXPECT_INPUT_ERROR(st, ...)                                                                               \
    do {                                                                                                          \
        const char *pieces_[] = {__VA_ARGS__};                                                                    \
        expect_input_error(st, pieces_, sizeof pieces_ / sizeof pieces_[0]);                                      \
    } while (0)

/* One dataset x of `type` with element i = base + i (1, 2, ...), shape dims (rank). */
static void write_one(const char *path, const char *name, eb_h5_type type, int rank, const int64_t *dims,
                      const void *data) {
    eb_h5w *w;
    cr_assert_eq(eb_h5w_create(&w, path), EB_OK, "%s", eb_last_error());
    eb_h5w_write(w, name, type, data, rank, dims);
    cr_assert_eq(eb_h5w_commit(w), EB_OK, "%s", eb_last_error());
}

/* The first `cap` bytes of a file, and a file of `n` bytes: for cutting and corrupting. */
static size_t read_bytes(const char *path, unsigned char *buf, size_t cap) {
    FILE *fp = fopen(path, "rb");
    cr_assert(fp, "%s", path);
    size_t n = fread(buf, 1, cap, fp);
    fclose(fp);
    return n;
}

static void write_bytes(const char *path, const unsigned char *buf, size_t n) {
    FILE *fp = fopen(path, "wb");
    cr_assert(fp && fwrite(buf, 1, n, fp) == n, "%s", path);
    fclose(fp);
}

/* Raw libhdf5 file for the shapes and types our writer never makes. */
static hid_t raw_create(const char *path) { return H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT); }

static void raw_dataset(hid_t file, const char *name, hid_t ftype, hid_t mtype, int rank, const hsize_t *dims,
                        const void *data) {
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t ds = H5Dcreate2(file, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert(ds >= 0);
    if (data) cr_assert(H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    H5Dclose(ds);
    H5Sclose(space);
}

/* ------------------------------------------------------------------------ */
/* Round trips                                                               */

Test(h5io, round_trip_every_type_and_rank) {
    const char *path = in_dir("all.h5");
    enum { MAXN = 1 << 8 }; /* 2^8 elements at rank 8 with extents 2 */
    float f32[MAXN];
    double f64[MAXN];
    int32_t i32[MAXN];
    int64_t i64[MAXN];
    for (int i = 0; i < MAXN; i++) {
        f32[i] = 0.5f * (float)i - 3.25f;
        f64[i] = 1.0 / 3.0 + i;
        i32[i] = i * 1000003 - 7;
        i64[i] = (int64_t)i * 3000000000LL - 11;
    }
    const void *src[4] = {f32, f64, i32, i64};
    const size_t size[4] = {4, 8, 4, 8};
    eb_h5w *w;
    cr_assert_eq(eb_h5w_create(&w, path), EB_OK);
    for (int t = 0; t < 4; t++)
        for (int rank = 0; rank <= EB_H5_MAX_RANK; rank++) {
            int64_t dims[EB_H5_MAX_RANK];
            for (int d = 0; d < rank; d++) dims[d] = d == 0 ? 3 - (rank == 8) : 2; /* uneven first extent */
            char name[64];
            snprintf(name, sizeof name, "/type%d/rank%d", t, rank);
            cr_assert_eq(eb_h5w_write(w, name, (eb_h5_type)t, src[t], rank, dims), EB_OK, "%s", eb_last_error());
        }
    cr_assert_eq(eb_h5w_commit(w), EB_OK, "%s", eb_last_error());
    cr_assert_eq(count_entries(), 1, "only the final file remains");

    eb_h5 *f;
    cr_assert_eq(eb_h5_open(&f, path), EB_OK, "%s", eb_last_error());
    for (int t = 0; t < 4; t++)
        for (int rank = 0; rank <= EB_H5_MAX_RANK; rank++) {
            char name[64];
            snprintf(name, sizeof name, "/type%d/rank%d", t, rank);
            int64_t dims[EB_H5_MAX_RANK], n = 1;
            void *data;
            cr_assert_eq(eb_h5_read(f, name, (eb_h5_type)t, rank, NULL, &data, dims, EB_H5_FINITE), EB_OK, "%s",
                         eb_last_error());
            for (int d = 0; d < rank; d++) {
                cr_assert_eq(dims[d], d == 0 ? 3 - (rank == 8) : 2);
                n *= dims[d];
            }
            cr_assert(!memcmp(data, src[t], (size_t)n * size[t]), "%s differs", name);
            free(data);
        }
    /* Conversions that cannot lose anything. */
    int64_t d2[2];
    double *wide;
    cr_assert_eq(eb_h5_read_f64(f, "/type0/rank2", 2, NULL, &wide, d2, 0), EB_OK);
    for (int i = 0; i < 6; i++) cr_assert_eq(wide[i], (double)f32[i]);
    free(wide);
    float *narrow;
    cr_assert_eq(eb_h5_read_f32(f, "/type1/rank2", 2, NULL, &narrow, d2, 0), EB_OK);
    for (int i = 0; i < 6; i++) cr_assert_eq(narrow[i], (float)f64[i]);
    free(narrow);
    void *ints;
    cr_assert_eq(eb_h5_read(f, "/type2/rank1", EB_H5_I64, 1, NULL, &ints, d2, 0), EB_OK);
    for (int i = 0; i < 3; i++) cr_assert_eq(((int64_t *)ints)[i], i32[i]);
    free(ints);
    eb_h5_close(f);
}

Test(h5io, int64_values_that_fit_read_as_int32) {
    const char *path = in_dir("fit.h5");
    int64_t v[4] = {INT32_MIN, -1, 0, INT32_MAX}, dims[1] = {4};
    write_one(path, "y", EB_H5_I64, 1, dims, v);
    eb_h5 *f;
    int32_t *y;
    cr_assert_eq(eb_h5_open(&f, path), EB_OK);
    cr_assert_eq(eb_h5_read_i32(f, "y", 1, (int64_t[]){4}, &y, dims), EB_OK, "%s", eb_last_error());
    for (int i = 0; i < 4; i++) cr_assert_eq(y[i], v[i]);
    free(y);
    eb_h5_close(f);
}

Test(h5io, stored_uint8_and_float16_convert) {
    const char *path = in_dir("small.h5");
    hid_t file = raw_create(path);
    uint8_t u8[3] = {0, 7, 255};
    hsize_t three = 3;
    raw_dataset(file, "u8", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, &three, u8);
    hid_t half = H5Tcopy(H5T_IEEE_F32LE); /* IEEE binary16: sign 15, exponent 10..14, mantissa 0..9 */
    H5Tset_fields(half, 15, 10, 5, 0, 10);
    H5Tset_size(half, 2);
    H5Tset_ebias(half, 15);
    float f[3] = {1.5f, -0.25f, 1024.0f};
    raw_dataset(file, "f16", half, H5T_NATIVE_FLOAT, 1, &three, f);
    H5Tclose(half);
    H5Fclose(file);

    eb_h5 *h;
    int64_t dims[1];
    int32_t *y;
    float *x;
    cr_assert_eq(eb_h5_open(&h, path), EB_OK);
    cr_assert_eq(eb_h5_read_i32(h, "u8", 1, NULL, &y, dims), EB_OK, "%s", eb_last_error());
    cr_assert(y[0] == 0 && y[1] == 7 && y[2] == 255);
    cr_assert_eq(eb_h5_read_f32(h, "f16", 1, NULL, &x, dims, EB_H5_FINITE), EB_OK, "%s", eb_last_error());
    for (int i = 0; i < 3; i++) cr_assert_eq(x[i], f[i]);
    free(y);
    free(x);
    eb_h5_close(h);
}

Test(h5io, groups_attributes_and_lookup) {
    const char *path = in_dir("attrs.h5");
    float v[6] = {1, 2, 3, 4, 5, 6};
    int64_t dims[2] = {2, 3};
    eb_h5w *w;
    cr_assert_eq(eb_h5w_create(&w, path), EB_OK);
    cr_assert_eq(eb_h5w_write(w, "/drift/attn", EB_H5_F32, v, 2, dims), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_h5w_group(w, "/a/b/c"), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_h5w_group(w, "/a/b"), EB_OK, "an existing group is fine");
    cr_assert_eq(eb_h5w_attr_f64(w, NULL, "scale", 1.5), EB_OK);
    cr_assert_eq(eb_h5w_attr_f64(w, "/", "scale", 2.5), EB_OK, "replaces the first one");
    cr_assert_eq(eb_h5w_attr_i64(w, "/", "seed", -9007199254740993LL), EB_OK);
    cr_assert_eq(eb_h5w_attr_str(w, NULL, "schedule", "step 0: compute\nstep 1: reuse — ε"), EB_OK);
    cr_assert_eq(eb_h5w_attr_str(w, NULL, "empty", ""), EB_OK);
    cr_assert_eq(eb_h5w_attr_str(w, "/drift/attn", "units", "relative L1"), EB_OK);
    cr_assert_eq(eb_h5w_attr_i64(w, "/a/b/c", "depth", 3), EB_OK);
    cr_assert_eq(eb_h5w_commit(w), EB_OK, "%s", eb_last_error());

    eb_h5 *f;
    cr_assert_eq(eb_h5_open(&f, path), EB_OK);
    cr_assert_eq(eb_h5_lookup(f, "/"), EB_H5_GROUP);
    cr_assert_eq(eb_h5_lookup(f, "drift"), EB_H5_GROUP);
    cr_assert_eq(eb_h5_lookup(f, "/drift/attn"), EB_H5_DATASET);
    cr_assert_eq(eb_h5_lookup(f, "drift/attn"), EB_H5_DATASET);
    cr_assert_eq(eb_h5_lookup(f, "/a/b/c"), EB_H5_GROUP);
    cr_assert_eq(eb_h5_lookup(f, "/drift/mlp"), EB_H5_NONE);
    cr_assert_eq(eb_h5_lookup(f, "/nothing/here/at/all"), EB_H5_NONE);
    int rank;
    int64_t shape[EB_H5_MAX_RANK];
    cr_assert_eq(eb_h5_shape(f, "/drift/attn", &rank, shape), EB_OK);
    cr_assert(rank == 2 && shape[0] == 2 && shape[1] == 3);

    double d;
    int64_t i;
    char *s;
    cr_assert_eq(eb_h5_attr_f64(f, NULL, "scale", &d), EB_OK);
    cr_assert_eq(d, 2.5);
    cr_assert_eq(eb_h5_attr_i64(f, "/", "seed", &i), EB_OK);
    cr_assert_eq(i, -9007199254740993LL, "int64 attributes keep every bit");
    cr_assert_eq(eb_h5_attr_f64(f, "/a/b/c", "depth", &d), EB_OK, "integers read as double");
    cr_assert_eq(d, 3.0);
    cr_assert_eq(eb_h5_attr_str(f, NULL, "schedule", &s), EB_OK);
    cr_assert_str_eq(s, "step 0: compute\nstep 1: reuse — ε");
    free(s);
    cr_assert_eq(eb_h5_attr_str(f, NULL, "empty", &s), EB_OK);
    cr_assert_str_eq(s, "");
    free(s);
    cr_assert_eq(eb_h5_attr_str(f, "/drift/attn", "units", &s), EB_OK);
    cr_assert_str_eq(s, "relative L1");
    free(s);
    cr_assert(eb_h5_has_attr(f, "/drift/attn", "units"));
    cr_assert(!eb_h5_has_attr(f, "/drift/attn", "scale"));
    cr_assert(!eb_h5_has_attr(f, "/missing", "units"));

    EXPECT_INPUT_ERROR(eb_h5_attr_f64(f, NULL, "nope", &d), path, "'nope'", "not found");
    EXPECT_INPUT_ERROR(eb_h5_attr_f64(f, NULL, "schedule", &d), path, "'schedule'", "string");
    EXPECT_INPUT_ERROR(eb_h5_attr_i64(f, NULL, "scale", &i), path, "'scale'", "float64");
    EXPECT_INPUT_ERROR(eb_h5_attr_str(f, "/a/b/c", "depth", &s), path, "'depth'", "'/a/b/c'", "int64");
    EXPECT_INPUT_ERROR(eb_h5_attr_str(f, "/zzz", "units", &s), path, "'/zzz'", "not found");
    cr_assert_null(s);
    eb_h5_close(f);
}

Test(h5io, fixed_string_and_non_scalar_attributes) {
    const char *path = in_dir("rawattr.h5");
    hid_t file = raw_create(path);
    hid_t root = H5Gopen2(file, "/", H5P_DEFAULT);
    hid_t str = H5Tcopy(H5T_C_S1);
    H5Tset_size(str, 5); /* exactly filled: no terminator stored */
    hid_t scalar = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(root, "fixed", str, scalar, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, str, "hello");
    H5Aclose(a);
    hsize_t three = 3;
    hid_t vec = H5Screate_simple(1, &three, NULL);
    double v[3] = {1, 2, 3};
    a = H5Acreate2(root, "vector", H5T_IEEE_F64LE, vec, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_DOUBLE, v);
    H5Aclose(a);
    uint64_t huge = UINT64_MAX;
    a = H5Acreate2(root, "huge", H5T_STD_U64LE, scalar, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_UINT64, &huge);
    H5Aclose(a);
    H5Sclose(vec);
    H5Sclose(scalar);
    H5Tclose(str);
    H5Gclose(root);
    H5Fclose(file);

    eb_h5 *f;
    char *s;
    double d;
    int64_t i;
    cr_assert_eq(eb_h5_open(&f, path), EB_OK);
    cr_assert_eq(eb_h5_attr_str(f, NULL, "fixed", &s), EB_OK, "%s", eb_last_error());
    cr_assert_str_eq(s, "hello");
    free(s);
    EXPECT_INPUT_ERROR(eb_h5_attr_f64(f, NULL, "vector", &d), path, "'vector'", "3 elements");
    EXPECT_INPUT_ERROR(eb_h5_attr_i64(f, NULL, "huge", &i), path, "'huge'", "18446744073709551615", "int64");
    eb_h5_close(f);
}

Test(h5io, deflate_compresses_large_datasets) {
    const char *path = in_dir("big.h5");
    enum { N = 3, C = 4, HW = 160 * 160 }; /* 307200 elements, above EB_H5_DEFLATE_MIN */
    float *x = malloc(sizeof(float) * N * C * HW);
    for (int i = 0; i < N * C * HW; i++) x[i] = (float)(i % 97); /* compressible */
    int64_t dims[4] = {N, C, 160, 160};
    eb_h5w *w;
    cr_assert_eq(eb_h5w_create(&w, path), EB_OK);
    eb_h5w_set_deflate(w, 4);
    cr_assert_eq(eb_h5w_write(w, "x", EB_H5_F32, x, 4, dims), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_h5w_commit(w), EB_OK);
    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0);
    cr_assert_lt(sb.st_size, (off_t)sizeof(float) * N * C * HW / 4, "file %lld bytes", (long long)sb.st_size);

    eb_h5 *f;
    float *y;
    int64_t got[4];
    cr_assert_eq(eb_h5_open(&f, path), EB_OK);
    cr_assert_eq(eb_h5_read_f32(f, "x", 4, dims, &y, got, EB_H5_FINITE), EB_OK, "%s", eb_last_error());
    cr_assert(!memcmp(x, y, sizeof(float) * N * C * HW));
    free(x);
    free(y);
    eb_h5_close(f);
}

/* ------------------------------------------------------------------------ */
/* Atomic writing                                                            */

Test(h5io, abort_leaves_nothing) {
    const char *path = in_dir("out.h5");
    float v[2] = {1, 2};
    eb_h5w *w;
    cr_assert_eq(eb_h5w_create(&w, path), EB_OK);
    cr_assert(exists(temp_of(path)), "writes next to the final path");
    cr_assert(!exists(path));
    cr_assert_eq(eb_h5w_write(w, "x", EB_H5_F32, v, 1, (int64_t[]){2}), EB_OK);
    eb_h5w_abort(w);
    cr_assert_eq(count_entries(), 0, "abort removes the temporary file");
}

Test(h5io, commit_replaces_an_existing_file_only_at_the_end) {
    const char *path = in_dir("out.h5");
    int32_t old = 1, new = 2;
    write_one(path, "v", EB_H5_I32, 0, NULL, &old);

    eb_h5w *w;
    cr_assert_eq(eb_h5w_create(&w, path), EB_OK);
    cr_assert_eq(eb_h5w_write(w, "v", EB_H5_I32, &new, 0, NULL), EB_OK);
    eb_h5 *f;
    int32_t *v;
    cr_assert_eq(eb_h5_open(&f, path), EB_OK, "the old file is intact while writing");
    cr_assert_eq(eb_h5_read_i32(f, "v", 0, NULL, &v, NULL), EB_OK, "%s", eb_last_error());
    cr_assert_eq(*v, 1);
    free(v);
    eb_h5_close(f);

    cr_assert_eq(eb_h5w_commit(w), EB_OK, "%s", eb_last_error());
    cr_assert_eq(count_entries(), 1, "no temporary file left");
    cr_assert_eq(eb_h5_open(&f, path), EB_OK);
    cr_assert_eq(eb_h5_read_i32(f, "v", 0, NULL, &v, NULL), EB_OK);
    cr_assert_eq(*v, 2);
    free(v);
    eb_h5_close(f);
}

Test(h5io, a_failure_removes_the_temp_file_and_sticks) {
    const char *path = in_dir("out.h5");
    float v[4] = {0};
    int64_t dims[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    eb_h5w *w;
    cr_assert_eq(eb_h5w_create(&w, path), EB_OK);
    cr_assert_eq(eb_h5w_write(w, "x", EB_H5_F32, v, 4, dims), EB_OK);
    EXPECT_INPUT_ERROR(eb_h5w_write(w, "x", EB_H5_F32, v, 4, dims), path, "'x'", "already exists");
    char first[1024];
    snprintf(first, sizeof first, "%s", eb_last_error());
    cr_assert(!exists(temp_of(path)), "the failure removed the temporary file at once");
    cr_assert_eq(eb_h5w_write(w, "z", EB_H5_F32, v, 1, dims), EB_EINPUT, "later calls fail the same way");
    cr_assert_eq(eb_h5w_attr_i64(w, NULL, "k", 1), EB_EINPUT);
    cr_assert_eq(eb_h5w_commit(w), EB_EINPUT);
    cr_assert_str_eq(eb_last_error(), first, "commit reports the first failure");
    cr_assert_eq(count_entries(), 0);
}

Test(h5io, writer_refuses_bad_arguments) {
    const char *path = in_dir("out.h5");
    float v[1] = {0};
    int64_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1}, neg[2] = {2, -1}, huge[2] = {1 << 16, 1 << 16};
    eb_h5w *w;
    cr_assert_eq(eb_h5w_create(&w, path), EB_OK);
    EXPECT_INPUT_ERROR(eb_h5w_write(w, "r9", EB_H5_F32, v, 9, nine), path, "'r9'", "rank 9");
    eb_h5w_abort(w);
    cr_assert_eq(eb_h5w_create(&w, path), EB_OK);
    EXPECT_INPUT_ERROR(eb_h5w_write(w, "neg", EB_H5_F32, v, 2, neg), path, "'neg'", "extent 1 is negative");
    eb_h5w_abort(w);
    cr_assert_eq(eb_h5w_create(&w, path), EB_OK);
    EXPECT_INPUT_ERROR(eb_h5w_write(w, "huge", EB_H5_F32, v, 2, huge), path, "'huge'", "[65536, 65536]");
    eb_h5w_abort(w);
    cr_assert_eq(eb_h5w_create(&w, path), EB_OK);
    cr_assert_eq(eb_h5w_write(w, "/a", EB_H5_F32, v, 1, nine), EB_OK);
    EXPECT_INPUT_ERROR(eb_h5w_group(w, "/a"), path, "'/a'", "dataset");
    eb_h5w_abort(w);
    cr_assert_eq(eb_h5w_create(&w, path), EB_OK);
    EXPECT_INPUT_ERROR(eb_h5w_attr_f64(w, "/nowhere", "k", 1.0), path, "'/nowhere'", "'k'");
    eb_h5w_abort(w);
    cr_assert_eq(count_entries(), 0);
}

Test(h5io, create_in_a_missing_directory_is_an_input_error) {
    char path[300];
    snprintf(path, sizeof path, "%s/no/such/dir/out.h5", dir);
    eb_h5w *w;
    EXPECT_INPUT_ERROR(eb_h5w_create(&w, path), path);
    cr_assert_null(w);
    EXPECT_INPUT_ERROR(eb_h5w_create(&w, dir), dir, "directory");
}

Test(h5io, remove_temps_for_signal_handlers) {
    const char *path = in_dir("out.h5");
    eb_h5w *w;
    cr_assert_eq(eb_h5w_create(&w, path), EB_OK);
    cr_assert(exists(temp_of(path)));
    eb_h5w_remove_temps();
    cr_assert(!exists(temp_of(path)));
    eb_h5w_abort(w);
    cr_assert_eq(count_entries(), 0);
}

/* ------------------------------------------------------------------------ */
/* Malformed inputs                                                          */

Test(h5io, missing_and_non_hdf5_files) {
    const char *path = in_dir("text.h5");
    eb_h5 *f;
    EXPECT_INPUT_ERROR(eb_h5_open(&f, path), path, "No such file");
    cr_assert_null(f);
    FILE *fp = fopen(path, "w");
    fputs("x,t,y\n1,2,3\n", fp);
    fclose(fp);
    EXPECT_INPUT_ERROR(eb_h5_open(&f, path), path, "not an HDF5 file");
    cr_assert_null(f);
    EXPECT_INPUT_ERROR(eb_h5_open(&f, dir), dir, "directory");
}

Test(h5io, truncated_files_are_refused, .init = cr_redirect_stderr) {
    const char *path = in_dir("full.h5"), *cut = in_dir("cut.h5");
    float x[2 * 3 * 4 * 5];
    for (int i = 0; i < 120; i++) x[i] = (float)i;
    int64_t dims[4] = {2, 3, 4, 5};
    write_one(path, "x", EB_H5_F32, 4, dims, x);
    static unsigned char bytes[1 << 16];
    size_t size = read_bytes(path, bytes, sizeof bytes);
    cr_assert(size > 1000 && size < sizeof bytes);

    size_t cuts[] = {0, 7, 8, 96, 512, 800, size / 2, size - 480, size - 100, size - 1};
    for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
        write_bytes(cut, bytes, cuts[k]);
        eb_h5 *f;
        float *y = NULL;
        int64_t got[4];
        eb_status st = eb_h5_open(&f, cut);
        if (st == EB_OK) {
            st = eb_h5_read_f32(f, "x", 4, dims, &y, got, 0);
            eb_h5_close(f);
            cr_assert_neq(st, EB_OK, "cut at %zu read back", cuts[k]);
            EXPECT_INPUT_ERROR(st, cut, "'x'");
        } else {
            EXPECT_INPUT_ERROR(st, cut);
        }
        cr_assert_null(y);
    }
    fflush(stderr);
    cr_assert_stderr_eq_str("", "HDF5 printed its own error stack");
}

/* A variable-length string attribute's text sits in a global heap collection;
 * libhdf5 itself loops forever on a free-space object of size 0 there. */
Test(h5io, corrupt_global_heaps_are_refused, .timeout = 30) {
    const char *path = in_dir("heap.h5"), *bad = in_dir("bad_heap.h5");
    int32_t decoy[4] = {0x4C4F4347}; /* "GCOL" then version 0: data that only looks like a collection */
    int64_t dims[1] = {4};
    eb_h5w *w;
    cr_assert_eq(eb_h5w_create(&w, path), EB_OK);
    eb_h5w_write(w, "decoy", EB_H5_I32, decoy, 1, dims);
    eb_h5w_attr_str(w, NULL, "schedule", "fora:3");
    cr_assert_eq(eb_h5w_commit(w), EB_OK, "%s", eb_last_error());
    static unsigned char bytes[1 << 16];
    size_t size = read_bytes(path, bytes, sizeof bytes);
    cr_assert(size < sizeof bytes);

    eb_h5 *f;
    char *s = NULL;
    cr_assert_eq(eb_h5_open(&f, path), EB_OK);
    cr_assert_eq(eb_h5_attr_str(f, NULL, "schedule", &s), EB_OK, "%s", eb_last_error());
    cr_assert_str_eq(s, "fora:3");
    free(s);
    eb_h5_close(f);

    /* The collection: "GCOL", version 1, 3 reserved, 8-byte size; then objects of
     * index (2), refcount (2), reserved (4), size (8), data padded to 8; the text
     * (object 1, 6 bytes → 8) is followed by the free-space object (index 0). */
    unsigned char *heap = memmem(bytes, size, "GCOL\1", 5);
    cr_assert(heap, "no global heap in the file");
    unsigned char *text = heap + 16, *free_space = text + 16 + 8;
    cr_assert_eq(text[0], 1);
    cr_assert_eq(text[8], 6);
    cr_assert_eq(free_space[0], 0);
    static unsigned char corrupt[sizeof bytes];
    struct {
        size_t size_field; /* offset of the 8-byte object size to overwrite */
        uint64_t value;
        const char *why;
    } cases[] = {{(size_t)(free_space - bytes) + 8, 0, "does not advance"},
                 {(size_t)(text - bytes) + 8, (uint64_t)1 << 40, "not of its length"}};
    for (int k = 0; k < 2; k++) {
        memcpy(corrupt, bytes, size);
        for (int b = 0; b < 8; b++) corrupt[cases[k].size_field + b] = (unsigned char)(cases[k].value >> 8 * b);
        write_bytes(bad, corrupt, size);
        cr_assert_eq(eb_h5_open(&f, bad), EB_OK);
        EXPECT_INPUT_ERROR(eb_h5_attr_str(f, NULL, "schedule", &s), bad, "global heap", cases[k].why);
        cr_assert_null(s);
        eb_h5_close(f);
    }
}

Test(h5io, missing_dataset_wrong_rank_and_dims) {
    const char *path = in_dir("in.h5");
    float x[24] = {0};
    write_one(path, "/g/x", EB_H5_F32, 3, (int64_t[]){2, 3, 4}, x);
    eb_h5 *f;
    float *y;
    int64_t got[4];
    cr_assert_eq(eb_h5_open(&f, path), EB_OK);
    EXPECT_INPUT_ERROR(eb_h5_read_f32(f, "x", 3, NULL, &y, got, 0), path, "dataset 'x' not found");
    EXPECT_INPUT_ERROR(eb_h5_read_f32(f, "/fixed_small/i49/mean", 3, NULL, &y, got, 0), path,
                       "'/fixed_small/i49/mean' not found");
    EXPECT_INPUT_ERROR(eb_h5_read_f32(f, "/g", 3, NULL, &y, got, 0), path, "'/g' is a group");
    EXPECT_INPUT_ERROR(eb_h5_read_f32(f, "/g/x", 4, NULL, &y, got, 0), path, "'/g/x'", "rank 3", "[2, 3, 4]",
                       "expected rank 4");
    EXPECT_INPUT_ERROR(eb_h5_read_f32(f, "/g/x", 3, (int64_t[]){2, EB_H5_ANY, 5}, &y, got, 0), path, "'/g/x'",
                       "[2, 3, 4]", "expected [2, *, 5]");
    cr_assert_null(y);
    cr_assert_eq(eb_h5_read_f32(f, "/g/x", 3, (int64_t[]){EB_H5_ANY, 3, EB_H5_ANY}, &y, got, 0), EB_OK);
    free(y);
    eb_h5_close(f);
}

Test(h5io, wrong_class_is_refused) {
    const char *path = in_dir("in.h5");
    hid_t file = raw_create(path);
    hid_t str = H5Tcopy(H5T_C_S1);
    H5Tset_size(str, 4);
    hsize_t two = 2;
    raw_dataset(file, "names", str, str, 1, &two, "abcdefgh");
    H5Tclose(str);
    int32_t t[2] = {1, 2};
    float x[2] = {1, 2};
    raw_dataset(file, "t", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, &two, t);
    raw_dataset(file, "x", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, &two, x);
    H5Fclose(file);

    eb_h5 *f;
    float *y;
    int32_t *i;
    int64_t got[1];
    cr_assert_eq(eb_h5_open(&f, path), EB_OK);
    EXPECT_INPUT_ERROR(eb_h5_read_f32(f, "names", 1, NULL, &y, got, 0), path, "'names'", "string", "float");
    EXPECT_INPUT_ERROR(eb_h5_read_f32(f, "t", 1, NULL, &y, got, 0), path, "'t'", "int32", "float");
    EXPECT_INPUT_ERROR(eb_h5_read_i32(f, "x", 1, NULL, &i, got), path, "'x'", "float32", "integer");
    EXPECT_INPUT_ERROR(eb_h5_read_i32(f, "names", 1, NULL, &i, got), path, "'names'", "string", "integer");
    eb_h5_close(f);
}

Test(h5io, nan_and_inf_are_located) {
    const char *path = in_dir("in.h5");
    float x[2 * 3 * 4 * 5] = {0};
    x[((1 * 3 + 0) * 4 + 3) * 5 + 2] = NAN;
    double z[3 * 4] = {0};
    z[0 * 4 + 2] = -INFINITY;
    z[2 * 4 + 3] = NAN;
    eb_h5w *w;
    cr_assert_eq(eb_h5w_create(&w, path), EB_OK);
    eb_h5w_write(w, "x", EB_H5_F32, x, 4, (int64_t[]){2, 3, 4, 5});
    eb_h5w_write(w, "/deep/z", EB_H5_F64, z, 2, (int64_t[]){3, 4});
    cr_assert_eq(eb_h5w_commit(w), EB_OK);

    eb_h5 *f;
    float *y;
    double *d;
    int64_t got[4];
    cr_assert_eq(eb_h5_open(&f, path), EB_OK);
    EXPECT_INPUT_ERROR(eb_h5_read_f32(f, "x", 4, NULL, &y, got, EB_H5_FINITE), path, "dataset 'x' has NaN at [1, 0, 3, 2]");
    cr_assert_null(y);
    EXPECT_INPUT_ERROR(eb_h5_read_f64(f, "/deep/z", 2, NULL, &d, got, EB_H5_FINITE), path,
                       "dataset '/deep/z' has -Inf at [0, 2]");
    EXPECT_INPUT_ERROR(eb_h5_read_f32(f, "/deep/z", 2, NULL, &y, got, EB_H5_FINITE), path, "-Inf at [0, 2]");
    cr_assert_eq(eb_h5_read_f32(f, "x", 4, NULL, &y, got, 0), EB_OK, "without the flag NaN is data");
    cr_assert(isnan(y[((1 * 3 + 0) * 4 + 3) * 5 + 2]));
    free(y);
    eb_h5_close(f);
}

Test(h5io, values_beyond_the_target_range) {
    const char *path = in_dir("in.h5");
    hid_t file = raw_create(path);
    int64_t big[2 * 3] = {0, 1, 2, 3, 4, 3000000000LL};
    uint64_t ubig[2] = {5, UINT64_MAX};
    double wide[2] = {1.0, -1e300};
    hsize_t d23[2] = {2, 3}, two = 2;
    raw_dataset(file, "t", H5T_STD_I64LE, H5T_NATIVE_INT64, 2, d23, big);
    raw_dataset(file, "u", H5T_STD_U64LE, H5T_NATIVE_UINT64, 1, &two, ubig);
    raw_dataset(file, "w", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, &two, wide);
    H5Fclose(file);

    eb_h5 *f;
    int32_t *t;
    void *v;
    float *x;
    int64_t got[2];
    cr_assert_eq(eb_h5_open(&f, path), EB_OK);
    EXPECT_INPUT_ERROR(eb_h5_read_i32(f, "t", 2, NULL, &t, got), path, "'t'", "3000000000", "[1, 2]", "int32");
    cr_assert_null(t);
    EXPECT_INPUT_ERROR(eb_h5_read(f, "u", EB_H5_I64, 1, NULL, &v, got, 0), path, "'u'", "18446744073709551615",
                       "[1]", "int64");
    EXPECT_INPUT_ERROR(eb_h5_read_f32(f, "w", 1, NULL, &x, got, 0), path, "'w'", "-1e+300", "[1]", "float32");
    cr_assert_eq(eb_h5_read(f, "t", EB_H5_I64, 2, NULL, &v, got, 0), EB_OK, "fits int64");
    cr_assert_eq(((int64_t *)v)[5], 3000000000LL);
    free(v);
    eb_h5_close(f);
}

Test(h5io, too_large_and_null_datasets) {
    const char *path = in_dir("in.h5");
    hid_t file = raw_create(path);
    hsize_t dims[2] = {1 << 16, 1 << 15 | 1}, chunk[2] = {64, 64}; /* 2^31 + 2^16 elements, never written */
    hid_t space = H5Screate_simple(2, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 2, chunk);
    hid_t ds = H5Dcreate2(file, "huge", H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    cr_assert(ds >= 0);
    H5Dclose(ds);
    H5Pclose(dcpl);
    H5Sclose(space);
    space = H5Screate(H5S_NULL);
    ds = H5Dcreate2(file, "null", H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dclose(ds);
    H5Sclose(space);
    H5Fclose(file);

    eb_h5 *f;
    float *x;
    int64_t got[2];
    cr_assert_eq(eb_h5_open(&f, path), EB_OK);
    EXPECT_INPUT_ERROR(eb_h5_read_f32(f, "huge", 2, NULL, &x, got, 0), path, "'huge'", "[65536, 32769]",
                       "2147483648");
    EXPECT_INPUT_ERROR(eb_h5_read_f32(f, "null", 1, NULL, &x, got, 0), path, "'null'", "null");
    eb_h5_close(f);
}

Test(h5io, external_links_are_not_followed) {
    const char *other = in_dir("other.h5"), *path = in_dir("in.h5");
    float x[2] = {1, 2};
    write_one(other, "x", EB_H5_F32, 1, (int64_t[]){2}, x);
    hid_t file = raw_create(path);
    cr_assert(H5Lcreate_external(other, "/x", file, "x", H5P_DEFAULT, H5P_DEFAULT) >= 0);
    H5Fclose(file);
    eb_h5 *f;
    float *y;
    int64_t got[1];
    cr_assert_eq(eb_h5_open(&f, path), EB_OK);
    cr_assert_eq(eb_h5_lookup(f, "x"), EB_H5_NONE);
    EXPECT_INPUT_ERROR(eb_h5_read_f32(f, "x", 1, NULL, &y, got, 0), path, "'x'", "not found");
    eb_h5_close(f);
}

Test(h5io, external_storage_and_virtual_datasets_are_refused) {
    const char *path = in_dir("in.h5"), *other = in_dir("other.h5");
    float x[4] = {1, 2, 3, 4};
    write_one(other, "x", EB_H5_F32, 1, (int64_t[]){4}, x);
    hid_t file = raw_create(path);
    hsize_t four = 4;
    hid_t space = H5Screate_simple(1, &four, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_external(dcpl, in_dir("raw.bin"), 0, sizeof x);
    hid_t ds = H5Dcreate2(file, "ext", H5T_NATIVE_FLOAT, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    cr_assert(ds >= 0 && H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) >= 0);
    H5Dclose(ds);
    H5Pclose(dcpl);
    dcpl = H5Pcreate(H5P_DATASET_CREATE);
    cr_assert(H5Pset_virtual(dcpl, space, other, "/x", space) >= 0);
    ds = H5Dcreate2(file, "virt", H5T_NATIVE_FLOAT, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    cr_assert(ds >= 0);
    H5Dclose(ds);
    H5Pclose(dcpl);
    H5Sclose(space);
    H5Fclose(file);

    eb_h5 *f;
    float *y;
    int64_t got[1];
    cr_assert_eq(eb_h5_open(&f, path), EB_OK);
    EXPECT_INPUT_ERROR(eb_h5_read_f32(f, "ext", 1, NULL, &y, got, 0), path, "'ext'", "external storage");
    EXPECT_INPUT_ERROR(eb_h5_read_f32(f, "virt", 1, NULL, &y, got, 0), path, "'virt'", "virtual dataset");
    eb_h5_close(f);
}

/* A compact dataset whose layout message claims no bytes (libhdf5 1.10 would
 * crash in H5Dread): found by the fuzzer, made here by patching the message. */
Test(h5io, short_compact_storage_is_refused) {
    const char *path = in_dir("in.h5");
    double v[10];
    for (int i = 0; i < 10; i++) v[i] = 1.0 + i / 1024.0;
    hid_t file = raw_create(path);
    hsize_t ten = 10;
    hid_t space = H5Screate_simple(1, &ten, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_layout(dcpl, H5D_COMPACT);
    hid_t ds = H5Dcreate2(file, "c", H5T_IEEE_F64LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    cr_assert(ds >= 0 && H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    H5Dclose(ds);
    H5Pclose(dcpl);
    H5Sclose(space);
    H5Fclose(file);

    /* Layout message v3, class compact: 03 00, size 80 (LE), then the data. */
    static unsigned char bytes[1 << 16];
    FILE *fp = fopen(path, "r+b");
    size_t size = fread(bytes, 1, sizeof bytes, fp);
    unsigned char pattern[4 + 8] = {3, 0, 80, 0};
    memcpy(pattern + 4, &v[0], 8);
    long at = -1;
    for (size_t i = 0; i + sizeof pattern <= size && at < 0; i++)
        if (!memcmp(bytes + i, pattern, sizeof pattern)) at = (long)i;
    cr_assert_geq(at, 0, "compact layout message not found");
    fseek(fp, at + 2, SEEK_SET);
    fputc(0, fp); /* the message now claims 0 bytes */
    fclose(fp);

    eb_h5 *f;
    double *y;
    int64_t got[1];
    cr_assert_eq(eb_h5_open(&f, path), EB_OK, "%s", eb_last_error());
    EXPECT_INPUT_ERROR(eb_h5_read_f64(f, "c", 1, NULL, &y, got, 0), path, "'c'", "corrupt", "holds 0 bytes",
                       "needs 80");
    eb_h5_close(f);
}

/* ------------------------------------------------------------------------ */
/* The shared finite check                                                   */

Test(h5io, check_finite_locates_the_first_bad_element) {
    enum { N = 5000 }; /* spans several scan blocks */
    float *a = calloc(N, sizeof(float));
    int64_t dims[3] = {5, 10, 100};
    cr_assert_eq(eb_check_finite(a, dims, 3, EB_ERUNTIME, "out"), EB_OK);
    a[4321] = INFINITY;
    a[4999] = NAN;
    cr_assert_eq(eb_check_finite(a, dims, 3, EB_ERUNTIME, "model output"), EB_ERUNTIME);
    cr_assert_str_eq(eb_last_error(), "model output has Inf at [4, 3, 21]");
    a[4321] = 0;
    cr_assert_eq(eb_check_finite(a, dims, 3, EB_EINPUT, "x"), EB_EINPUT);
    cr_assert_str_eq(eb_last_error(), "x has NaN at [4, 9, 99]");
    free(a);
    double s = -INFINITY;
    cr_assert_eq(eb_check_finite_f64(&s, NULL, 0, EB_EINPUT, "scalar"), EB_EINPUT);
    cr_assert_str_eq(eb_last_error(), "scalar has -Inf at []");
    char buf[EB_INDEX_STR_MAX];
    cr_assert_str_eq(eb_format_index(buf, sizeof buf, 7, (int64_t[]){2, 2, 2}, 3), "[1, 1, 1]");
}
