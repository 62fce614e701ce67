/* test_npz.c — the .npy header and the .npz container: files numpy wrote
 * (np.savez, np.savez_compressed: reference/npz_ref.py) read in chunks, the C
 * writer's bytes equal to the file numpy.load checked, round trips, and
 * every kind of damage refused with the file and member named. */
#include "tests/cli_util.h"
#include "tests/golden.h"
#include "runtime/npz.h"
#include "analyze/sha256.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* reference/npz_ref.py's pattern() */
static uint8_t image_at(int n, int h, int w, int c) { return (uint8_t)((n * 31 + h * 7 + w * 3 + c * 101) % 256); }
static double mu_at(int i) { return i * 0.25 - 0.3; }
static double sigma_at(int i, int j) { return 1.0 / (1.0 + i + j) + (i == j) * 0.5; }

static void pattern_images(uint8_t *x) { /* (3, 5, 4, 3) */
    for (int n = 0; n < 3; n++)
        for (int h = 0; h < 5; h++)
            for (int w = 0; w < 4; w++)
                for (int c = 0; c < 3; c++) x[((n * 5 + h) * 4 + w) * 3 + c] = image_at(n, h, w, c);
}

static void check_numpy_file(const char *file) {
    eb_npz *z;
    cr_assert_eq(eb_npz_open(&z, file), EB_OK, "%s", eb_last_error());
    cr_expect(eb_npz_has(z, "arr_0") && eb_npz_has(z, "mu") && !eb_npz_has(z, "notes") && !eb_npz_has(z, "arr"));
    eb_npz_member *m;
    eb_npy_header h;
    cr_assert_eq(eb_npz_member_open(&m, z, "arr_0", &h), EB_OK, "%s", eb_last_error());
    cr_expect(h.dtype == EB_NPY_U8 && h.rank == 4 && h.shape[0] == 3 && h.shape[1] == 5 && h.shape[2] == 4 &&
              h.shape[3] == 3);
    uint8_t want[180], row[60];
    pattern_images(want);
    for (int n = 0; n < 3; n++) { /* one image at a time */
        cr_assert_eq(eb_npz_member_read(m, row, sizeof row), EB_OK, "%s: %s", file, eb_last_error());
        cr_expect(!memcmp(row, want + 60 * n, sizeof row), "%s: image %d", file, n);
    }
    cr_expect_eq(eb_npz_member_read(m, row, 1), EB_EINPUT, "read past the end");
    eb_npz_member_close(m);
    double *v;
    cr_assert_eq(eb_npz_read_f64(z, "sigma", 100, &h, &v), EB_OK, "%s", eb_last_error());
    cr_expect(h.dtype == EB_NPY_F64 && h.rank == 2 && h.count == 16);
    for (int i = 0; i < 16; i++) cr_expect_eq(v[i], sigma_at(i / 4, i % 4), "%s: sigma[%d]", file, i);
    free(v);
    cr_assert_eq(eb_npz_read_f64(z, "mu", 100, &h, &v), EB_OK, "%s", eb_last_error());
    for (int i = 0; i < 4; i++) cr_expect_eq(v[i], mu_at(i));
    free(v);
    cr_assert_eq(eb_npz_read_f64(z, "feat", 100, &h, &v), EB_OK, "%s", eb_last_error());
    cr_expect(h.dtype == EB_NPY_F32 && v[0] == -2.0 && v[5] == 5.5);
    free(v);
    cr_assert_eq(eb_npz_read_f64(z, "labels", 100, &h, &v), EB_OK, "%s", eb_last_error());
    cr_expect(h.dtype == EB_NPY_I64 && v[0] == 7 && v[1] == -1 && v[2] == 999);
    free(v);
    cr_expect_eq(eb_npz_read_f64(z, "sigma", 15, &h, &v), EB_EINPUT, "the element limit holds");
    cr_expect_eq(eb_npz_member_open(&m, z, "nothere", &h), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), file) && strstr(eb_last_error(), "nothere.npy"), "%s", eb_last_error());
    eb_npz_close_reader(z);
}

Test(npz, reads_numpy_savez) { check_numpy_file(GOLDEN_DIR "npz_savez.npz"); }
Test(npz, reads_numpy_savez_compressed) { check_numpy_file(GOLDEN_DIR "npz_compressed.npz"); }

/* The three arrays npz_ref.py checks numpy.load reads from the C writer's file;
 * the images appended two rows, then one. */
static void write_pattern(const char *path) {
    eb_npz_writer *w;
    cr_assert_eq(eb_npz_create(&w, path), EB_OK, "%s", eb_last_error());
    uint8_t images[180];
    pattern_images(images);
    const int64_t ishape[4] = {3, 5, 4, 3}, mshape[1] = {4}, sshape[2] = {4, 4};
    cr_assert_eq(eb_npz_begin(w, "arr_0", EB_NPY_U8, 4, ishape), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_npz_append(w, images, 120), EB_OK);
    cr_assert_eq(eb_npz_append(w, images + 120, 60), EB_OK);
    double mu[4], sigma[16];
    for (int i = 0; i < 4; i++) mu[i] = mu_at(i);
    for (int i = 0; i < 16; i++) sigma[i] = sigma_at(i / 4, i % 4);
    cr_assert_eq(eb_npz_write_array(w, "mu", EB_NPY_F64, 1, mshape, mu), EB_OK);
    cr_assert_eq(eb_npz_write_array(w, "sigma", EB_NPY_F64, 2, sshape, sigma), EB_OK);
    cr_assert_eq(eb_npz_close(w), EB_OK, "%s", eb_last_error());
}

static unsigned char *slurp(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    *size = (size_t)ftell(f);
    rewind(f);
    unsigned char *b = malloc(*size + 1);
    cr_assert(fread(b, 1, *size, f) == *size);
    fclose(f);
    return b;
}

Test(npz, c_writer_bytes_are_what_numpy_loaded) {
    mkdir("build", 0777);
    write_pattern("build/npz_c.npz"); /* left there for npz_ref.py */
    size_t n, m;
    unsigned char *got = slurp("build/npz_c.npz", &n), *want = slurp(GOLDEN_DIR "npz_c.npz", &m);
    cr_expect(n == m && !memcmp(got, want, n), "the writer's bytes changed: rerun reference/npz_ref.py on them");
    char hex[EB_SHA256_HEX], line[128] = "";
    eb_sha256_hex(want, m, hex);
    FILE *f = fopen(GOLDEN_DIR "npz_c_numpy.txt", "r");
    cr_assert(f && fgets(line, sizeof line, f));
    fclose(f);
    cr_expect(!strncmp(line, "sha256 ", 7) && !strncmp(line + 7, hex, 64), "numpy checked another file: %s", line);
    free(got), free(want);
    check_numpy_file(GOLDEN_DIR "npz_savez.npz"); /* the same reader on numpy's layout */
}

Test(npz, round_trip_and_reader_on_c_file, .init = cli_workdir_make, .fini = cli_workdir_remove) {
    char path[512];
    in_workdir(path, "rt.npz");
    write_pattern(path);
    eb_npz *z;
    cr_assert_eq(eb_npz_open(&z, path), EB_OK, "%s", eb_last_error());
    eb_npz_member *m;
    eb_npy_header h;
    cr_assert_eq(eb_npz_member_open(&m, z, "arr_0", &h), EB_OK, "%s", eb_last_error());
    uint8_t got[180], want[180];
    pattern_images(want);
    for (int k = 0; k < 180; k += 45) cr_assert_eq(eb_npz_member_read(m, got + k, 45), EB_OK, "%s", eb_last_error());
    cr_expect(!memcmp(got, want, 180));
    eb_npz_member_close(m);
    uint32_t crc;
    cr_expect_eq(eb_npz_member_crc(z, "arr_0", &crc), EB_OK);
    cr_expect_neq(crc, 0u);
    eb_npz_close_reader(z);
}

Test(npz, writer_refuses_misuse_and_leaves_nothing, .init = cli_workdir_make, .fini = cli_workdir_remove) {
    char path[512], tmp[600];
    in_workdir(path, "bad.npz");
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    const int64_t shape[1] = {4};
    const double v[5] = {0};
    struct stat sb;
    eb_npz_writer *w;
    /* too many bytes */
    cr_assert_eq(eb_npz_create(&w, path), EB_OK);
    cr_assert_eq(eb_npz_begin(w, "x", EB_NPY_F64, 1, shape), EB_OK);
    cr_expect_eq(eb_npz_append(w, v, 40), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "past the end of member x.npy"), "%s", eb_last_error());
    cr_expect_eq(eb_npz_close(w), EB_EINPUT, "the first failure is returned");
    cr_expect(stat(path, &sb) && stat(tmp, &sb), "no file, no temp file");
    /* too few bytes, a repeated name */
    cr_assert_eq(eb_npz_create(&w, path), EB_OK);
    cr_assert_eq(eb_npz_write_array(w, "x", EB_NPY_F64, 1, shape, v), EB_OK);
    cr_expect_eq(eb_npz_write_array(w, "x", EB_NPY_F64, 1, shape, v), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "written twice"), "%s", eb_last_error());
    cr_expect_eq(eb_npz_close(w), EB_EINPUT);
    cr_assert_eq(eb_npz_create(&w, path), EB_OK);
    cr_assert_eq(eb_npz_begin(w, "x", EB_NPY_F64, 1, shape), EB_OK);
    cr_assert_eq(eb_npz_append(w, v, 8), EB_OK);
    cr_expect_eq(eb_npz_close(w), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "lacks 24 data bytes"), "%s", eb_last_error());
    cr_expect(stat(path, &sb) && stat(tmp, &sb));
    /* abort */
    cr_assert_eq(eb_npz_create(&w, path), EB_OK);
    cr_assert_eq(eb_npz_write_array(w, "x", EB_NPY_F64, 1, shape, v), EB_OK);
    eb_npz_abort(w);
    cr_expect(stat(path, &sb) && stat(tmp, &sb));
    cr_expect_eq(eb_npz_create(&w, "/nonexistent-dir/x.npz"), EB_EINPUT);
}

/* Damage at each place of a small archive: every one is EB_EINPUT naming the file. */
Test(npz, damaged_archives_are_refused, .init = cli_workdir_make, .fini = cli_workdir_remove) {
    char good[512], bad[512];
    write_pattern(in_workdir(good, "good.npz"));
    size_t n;
    unsigned char *bytes = slurp(good, &n);
    struct { const char *what; size_t at; int xor_byte; size_t truncate; const char *phrase; } cases[] = {
        {"data byte", 59 + 128 + 50, 1, 0, "CRC-32"},
        {"npy magic", 59 + 1, 0x40, 0, "bad magic"},
        {"local signature", 0, 0xff, 0, "local header"},
        {"end record gone", 0, 0, n - 10, "no ZIP end record"},
        {"half the file", 0, 0, n / 2, "no ZIP end record"},
        {"tiny", 0, 0, 5, "too short"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        in_workdir(bad, "bad.npz");
        FILE *f = fopen(bad, "wb");
        unsigned char *copy = malloc(n);
        memcpy(copy, bytes, n);
        if (cases[i].xor_byte) copy[cases[i].at] ^= (unsigned char)cases[i].xor_byte;
        fwrite(copy, 1, cases[i].truncate ? cases[i].truncate : n, f);
        fclose(f);
        free(copy);
        eb_npz *z;
        eb_status st = eb_npz_open(&z, bad);
        if (!st) {
            eb_npz_member *m;
            eb_npy_header h;
            st = eb_npz_member_open(&m, z, "arr_0", &h);
            uint8_t buf[180];
            if (!st) st = eb_npz_member_read(m, buf, sizeof buf), eb_npz_member_close(m);
            eb_npz_close_reader(z);
        }
        cr_expect_eq(st, EB_EINPUT, "%s: accepted", cases[i].what);
        cr_expect(strstr(eb_last_error(), "bad.npz") && strstr(eb_last_error(), cases[i].phrase), "%s: '%s'",
                  cases[i].what, eb_last_error());
    }
    free(bytes);
}

Test(npz, npy_header_format_and_parse) {
    char buf[EB_NPY_HEADER_CAP];
    const int64_t shape[4] = {50000, 256, 256, 3};
    size_t n = eb_npy_format_header(buf, sizeof buf, EB_NPY_U8, 4, shape);
    cr_assert_eq(n, 128u);
    cr_expect(strstr(buf + 10, "{'descr': '|u1', 'fortran_order': False, 'shape': (50000, 256, 256, 3), }") == buf + 10);
    cr_expect_eq(buf[n - 1], '\n');
    eb_npy_header h;
    cr_assert_eq(eb_npy_parse_header(&h, (const unsigned char *)buf, n, "x"), EB_OK, "%s", eb_last_error());
    cr_expect(h.rank == 4 && h.count == 50000LL * 256 * 256 * 3 && h.data_bytes == (uint64_t)h.count &&
              h.header_bytes == 128);
    const int64_t one[1] = {7};
    n = eb_npy_format_header(buf, sizeof buf, EB_NPY_F32, 1, one);
    cr_expect(strstr(buf + 10, "'shape': (7,), }"), "a 1-tuple keeps its comma");
    n = eb_npy_format_header(buf, sizeof buf, EB_NPY_F64, 0, NULL);
    cr_assert_eq(eb_npy_parse_header(&h, (const unsigned char *)buf, n, "x"), EB_OK);
    cr_expect(h.rank == 0 && h.count == 1 && h.data_bytes == 8);
    cr_expect_eq(eb_npy_format_header(buf, 64, EB_NPY_U8, 4, shape), 0u, "too small a buffer");
}
