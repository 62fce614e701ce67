/* test_fmnist.c — the Fashion-MNIST reader on the real Debian files and on
 * malformed files written here. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "train/fmnist.h"

static const char *real_dir(void) {
    const char *dir = getenv("EBCACHE_FMNIST_DIR");
    return dir && *dir ? dir : EB_FMNIST_DEFAULT_DIR;
}

static void skip_without_real_files(void) {
    char path[4096];
    snprintf(path, sizeof path, "%s/t10k-images-idx3-ubyte.gz", real_dir());
    if (access(path, R_OK) != 0) cr_skip_test("Fashion-MNIST not installed (%s)", path);
}

/* Sum of the original bytes, recovered exactly from x = v/127.5 − 1. */
static long long raw_byte_sum(const float *x, size_t n) {
    long long sum = 0;
    for (size_t i = 0; i < n; i++) sum += lrintf((x[i] + 1.0f) * 127.5f);
    return sum;
}

/* The expected values below were read from the files with Python's gzip. */
Test(fmnist, real_train) {
    skip_without_real_files();
    eb_fmnist d;
    cr_assert_eq(eb_fmnist_load(&d, real_dir(), "train", 0, 0), EB_OK, "%s", eb_last_error());
    cr_assert_eq(d.n, 60000);
    cr_assert_eq(d.h, 28);
    cr_assert_eq(d.w, 28);
    const int32_t first[10] = {9, 0, 0, 3, 0, 2, 7, 2, 5, 5}; /* label 9: ankle boot */
    for (int i = 0; i < 10; i++) cr_assert_eq(d.labels[i], first[i], "label %d", i);
    size_t n = (size_t)d.n * 28 * 28;
    float lo = 1, hi = -1;
    for (size_t i = 0; i < n; i++) {
        lo = fminf(lo, d.images[i]);
        hi = fmaxf(hi, d.images[i]);
    }
    cr_assert(lo == -1.0f && hi == 1.0f, "range [%g, %g]", lo, hi);
    cr_assert_eq(raw_byte_sum(d.images, 784), 76247);
    cr_assert_eq(raw_byte_sum(d.images, n), 3431114169LL);
    eb_fmnist_free(&d);
    cr_assert_null(d.images);
}

Test(fmnist, real_test_subset_and_padding) {
    skip_without_real_files();
    eb_fmnist full, sub;
    cr_assert_eq(eb_fmnist_load(&full, real_dir(), "t10k", 0, 0), EB_OK, "%s", eb_last_error());
    cr_assert_eq(full.n, 10000);
    const int32_t first[10] = {9, 2, 1, 1, 6, 1, 4, 6, 5, 7};
    for (int i = 0; i < 10; i++) cr_assert_eq(full.labels[i], first[i], "label %d", i);
    cr_assert_eq(raw_byte_sum(full.images, (size_t)full.n * 784), 573469082LL);
    cr_assert_eq(raw_byte_sum(full.images + (size_t)9999 * 784, 784), 24390);

    cr_assert_eq(eb_fmnist_load(&sub, real_dir(), "t10k", 5, 32), EB_OK, "%s", eb_last_error());
    cr_assert_eq(sub.n, 5);
    cr_assert(sub.h == 32 && sub.w == 32);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(sub.labels[i], full.labels[i]);
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 32; x++) {
                float got = sub.images[(i * 32 + y) * 32 + x];
                int inside = y >= 2 && y < 30 && x >= 2 && x < 30;
                float want = inside ? full.images[(i * 28 + y - 2) * 28 + x - 2] : -1.0f;
                cr_assert_eq(got, want, "image %d at (%d, %d)", i, y, x);
            }
    }
    eb_fmnist_free(&full);
    eb_fmnist_free(&sub);
}

/* ------------------------------------------------------------------------ */
/* Small files written by the tests                                          */

#define TINY_N 3
#define TINY_H 4
#define TINY_W 5

static char tmp_dir[64];

static void make_tmp_dir(void) {
    strcpy(tmp_dir, "/tmp/ebcache_fmnist_XXXXXX");
    cr_assert_not_null(mkdtemp(tmp_dir));
}

static void remove_tmp_dir(void) {
    const char *names[] = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"};
    char path[128];
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", tmp_dir, names[i]);
        unlink(path);
    }
    rmdir(tmp_dir);
}

TestSuite(fmnist, .init = make_tmp_dir, .fini = remove_tmp_dir);

static void put_be32(unsigned char *p, uint32_t v) {
    p[0] = v >> 24, p[1] = v >> 16, p[2] = v >> 8, p[3] = v;
}

/* Writes bytes to <tmp_dir>/<name>, gzip-compressed unless `plain`. */
static void write_file(const char *name, const unsigned char *bytes, size_t n, int plain) {
    char path[128];
    snprintf(path, sizeof path, "%s/%s", tmp_dir, name);
    if (plain) {
        FILE *f = fopen(path, "wb");
        cr_assert_not_null(f);
        cr_assert_eq(fwrite(bytes, 1, n, f), n);
        fclose(f);
        return;
    }
    gzFile gz = gzopen(path, "wb");
    cr_assert_not_null(gz);
    cr_assert_eq(gzwrite(gz, bytes, (unsigned)n), (int)n);
    cr_assert_eq(gzclose(gz), Z_OK);
}

/* An image file of `count` (header) images of TINY_H × TINY_W holding
 * `stored` images of data; pixel value (i·20 + j) mod 256. */
static void write_images(uint32_t magic, uint32_t count, int stored) {
    unsigned char buf[16 + 8 * TINY_H * TINY_W];
    put_be32(buf, magic);
    put_be32(buf + 4, count);
    put_be32(buf + 8, TINY_H);
    put_be32(buf + 12, TINY_W);
    for (int i = 0; i < stored; i++)
        for (int j = 0; j < TINY_H * TINY_W; j++) buf[16 + i * TINY_H * TINY_W + j] = (unsigned char)(i * 20 + j);
    write_file("train-images-idx3-ubyte.gz", buf, 16 + (size_t)stored * TINY_H * TINY_W, 0);
}

static void write_labels(uint32_t count, const unsigned char *labels, int stored, int plain) {
    unsigned char buf[64];
    put_be32(buf, 0x00000801);
    put_be32(buf + 4, count);
    memcpy(buf + 8, labels, (size_t)stored);
    write_file("train-labels-idx1-ubyte.gz", buf, 8 + (size_t)stored, plain);
}

static const unsigned char tiny_labels[TINY_N] = {7, 0, 9};

static void write_valid(void) {
    write_images(0x00000803, TINY_N, TINY_N);
    write_labels(TINY_N, tiny_labels, TINY_N, 0);
}

/* Loading must fail with EB_EINPUT, a message holding `file` and `what`, and
 * an empty result. */
static void expect_input_error(const char *file, const char *what) {
    eb_fmnist d;
    cr_assert_eq(eb_fmnist_load(&d, tmp_dir, "train", 0, 0), EB_EINPUT, "expected failure for %s", what);
    const char *msg = eb_last_error();
    cr_assert(strstr(msg, file), "message '%s' does not name %s", msg, file);
    cr_assert(strstr(msg, what), "message '%s' does not say '%s'", msg, what);
    cr_assert(d.images == NULL && d.labels == NULL && d.n == 0);
}

#define IMAGES "train-images-idx3-ubyte.gz"
#define LABELS "train-labels-idx1-ubyte.gz"

Test(fmnist, tiny_valid_non_square_and_padded) {
    write_valid();
    eb_fmnist d;
    cr_assert_eq(eb_fmnist_load(&d, tmp_dir, "train", 0, 0), EB_OK, "%s", eb_last_error());
    cr_assert(d.n == TINY_N && d.h == TINY_H && d.w == TINY_W);
    for (int i = 0; i < TINY_N; i++) {
        cr_assert_eq(d.labels[i], tiny_labels[i]);
        for (int j = 0; j < TINY_H * TINY_W; j++)
            cr_assert_float_eq(d.images[i * TINY_H * TINY_W + j], (i * 20 + j) / 127.5f - 1.0f, 1e-7f);
    }
    eb_fmnist_free(&d);

    /* 4 × 5 in 7 × 7: margins 1 top / 2 bottom, 1 left / 1 right. */
    cr_assert_eq(eb_fmnist_load(&d, tmp_dir, "train", 2, 7), EB_OK, "%s", eb_last_error());
    cr_assert(d.n == 2 && d.h == 7 && d.w == 7);
    for (int i = 0; i < 2; i++)
        for (int y = 0; y < 7; y++)
            for (int x = 0; x < 7; x++) {
                int inside = y >= 1 && y < 1 + TINY_H && x >= 1 && x < 1 + TINY_W;
                float want = inside ? (i * 20 + (y - 1) * TINY_W + x - 1) / 127.5f - 1.0f : -1.0f;
                cr_assert_float_eq(d.images[(i * 7 + y) * 7 + x], want, 1e-7f, "image %d (%d, %d)", i, y, x);
            }
    eb_fmnist_free(&d);
}

Test(fmnist, bad_magic) {
    write_valid();
    write_images(0x00000000, TINY_N, TINY_N);
    expect_input_error(IMAGES, "bad magic 0x00000000, expected 0x00000803");
}

Test(fmnist, truncated_images) {
    write_valid();
    write_images(0x00000803, TINY_N, TINY_N - 1);
    expect_input_error(IMAGES, "truncated");
}

Test(fmnist, trailing_data) {
    write_valid();
    write_labels(TINY_N - 1, tiny_labels, TINY_N, 0);
    expect_input_error(LABELS, "trailing data");
}

Test(fmnist, count_mismatch) {
    write_valid();
    write_labels(TINY_N - 1, tiny_labels, TINY_N - 1, 0);
    expect_input_error(IMAGES, LABELS);
}

Test(fmnist, label_out_of_range) {
    write_valid();
    const unsigned char bad[TINY_N] = {1, 10, 2};
    write_labels(TINY_N, bad, TINY_N, 0);
    expect_input_error(LABELS, "label 10 at index 1");
}

Test(fmnist, not_gzip) {
    write_valid();
    write_labels(TINY_N, tiny_labels, TINY_N, 1);
    expect_input_error(LABELS, "not a gzip file");
}

Test(fmnist, corrupt_gzip_stream) {
    write_valid();
    char path[128];
    snprintf(path, sizeof path, "%s/%s", tmp_dir, IMAGES);
    FILE *f = fopen(path, "r+b");
    cr_assert_not_null(f);
    unsigned char byte;
    cr_assert_eq(fseek(f, 12, SEEK_SET), 0); /* inside the deflate data */
    cr_assert_eq(fread(&byte, 1, 1, f), 1);
    byte ^= 0xff;
    cr_assert_eq(fseek(f, 12, SEEK_SET), 0);
    cr_assert_eq(fwrite(&byte, 1, 1, f), 1);
    fclose(f);
    expect_input_error(IMAGES, "");
}

Test(fmnist, missing_file) {
    write_images(0x00000803, TINY_N, TINY_N);
    expect_input_error(LABELS, "cannot open");
}

Test(fmnist, bad_arguments) {
    write_valid();
    eb_fmnist d;
    cr_assert_eq(eb_fmnist_load(&d, tmp_dir, "train", TINY_N + 1, 0), EB_EINPUT);
    cr_assert(strstr(eb_last_error(), LABELS), "%s", eb_last_error());
    cr_assert_eq(eb_fmnist_load(&d, tmp_dir, "train", 0, TINY_W - 1), EB_EINPUT);
    cr_assert(strstr(eb_last_error(), "cannot pad"), "%s", eb_last_error());
    cr_assert_eq(eb_fmnist_load(&d, tmp_dir, "valid", 0, 0), EB_EINPUT);
    cr_assert_null(d.images);
}
