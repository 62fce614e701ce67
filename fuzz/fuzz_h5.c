/* fuzz_h5.c — libFuzzer target for the HDF5 reader (runtime/h5io.c).
 *
 * Each input is written to a temporary file and read through every call the
 * commands make: the datasets they read by name, as float (with the finite
 * check) and as int, at the stored rank and at a wrong one, and the root
 * attributes they read. Any outcome but a crash or a sanitizer report is fine.
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined with runtime/h5io.c,
 * runtime/check.c and runtime/error.c (see fuzz/Makefile). libhdf5 itself is
 * the system's, not instrumented: crashes inside it show up, silent overreads
 * there do not.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "h5io.h"

/* Dataset and attribute names used by the CLI and the recorder. */
static const char *const datasets[] = {
    "x", "t", "y", "noise", "out", "samples", "x0", "xT",
    "/steps/t", "/steps/alpha_bar", "/snr/nominal", "/eps/norm", "/drift/attn", "/fixed_small/i49/mean",
};
static const char *const attributes[] = {"scale", "seed", "steps", "model", "schedule", "cfg_scale"};

/* One temporary file reused for every input, on tmpfs where there is one
 * (HDF5 needs a real path: it resolves it, so a memfd will not do). */
static char input_path[64];

static void remove_input(void) { unlink(input_path); }

static int input_file(void) {
    static int fd = -1;
    if (fd < 0) {
        snprintf(input_path, sizeof input_path, "%s/fuzz_h5.XXXXXX", access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm");
        fd = mkstemp(input_path);
        if (fd < 0) abort();
        atexit(remove_input);
    }
    return fd;
}

/* Reads up to EB_H5_MAX_ELEMS are legal and only cost memory (a few bytes of
 * a sparse chunked dataset can claim 2^31 elements): skip the large ones. */
#define FUZZ_MAX_ELEMS ((int64_t)1 << 22)

static void read_all_ways(eb_h5 *f, const char *name) {
    int rank;
    int64_t dims[EB_H5_MAX_RANK], n = 1;
    if (eb_h5_shape(f, name, &rank, dims)) rank = 1;
    else
        for (int d = 0; d < rank; d++) n = dims[d] && n > FUZZ_MAX_ELEMS / dims[d] ? FUZZ_MAX_ELEMS + 1 : n * dims[d];
    if (n > FUZZ_MAX_ELEMS) return;
    const eb_h5_type types[] = {EB_H5_F32, EB_H5_F64, EB_H5_I32, EB_H5_I64};
    for (int k = 0; k < 4; k++) {
        void *data = NULL;
        if (!eb_h5_read(f, name, types[k], rank, NULL, &data, dims, EB_H5_FINITE)) free(data);
    }
    int64_t want[4] = {EB_H5_ANY, 4, 8, 8}, got[4];
    void *data = NULL;
    if (!eb_h5_read(f, name, EB_H5_F32, 4, want, &data, got, EB_H5_FINITE)) free(data);
    if (!eb_h5_read(f, name, EB_H5_I32, 4, want, &data, got, 0)) free(data);
    for (size_t a = 0; a < sizeof attributes / sizeof *attributes; a++) {
        double d;
        int64_t i;
        char *s = NULL;
        eb_h5_attr_f64(f, name, attributes[a], &d);
        eb_h5_attr_i64(f, name, attributes[a], &i);
        if (!eb_h5_attr_str(f, name, attributes[a], &s)) free(s);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *bytes, size_t size) {
    int fd = input_file();
    if (ftruncate(fd, 0) || pwrite(fd, bytes, size, 0) != (ssize_t)size) abort();
    eb_h5 *f;
    if (eb_h5_open(&f, input_path)) return 0;
    for (size_t i = 0; i < sizeof datasets / sizeof *datasets; i++) {
        eb_h5_lookup(f, datasets[i]);
        read_all_ways(f, datasets[i]);
    }
    for (size_t a = 0; a < sizeof attributes / sizeof *attributes; a++) {
        double d;
        int64_t i;
        char *s = NULL;
        eb_h5_has_attr(f, NULL, attributes[a]);
        eb_h5_attr_f64(f, NULL, attributes[a], &d);
        eb_h5_attr_i64(f, NULL, attributes[a], &i);
        if (!eb_h5_attr_str(f, NULL, attributes[a], &s)) free(s);
    }
    eb_h5_close(f);
    return 0;
}
