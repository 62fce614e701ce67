/* fuzz_h5.c — libFuzzer target for the HDF5 files the commands read.
 *
 * Each input is written to a file and read through every path a command
 * takes: a recording (eb_rec_data_read: fit, search, plot), a fit
 * (eb_fit_read: search), and the datasets the CLI reads by name — noise and
 * y (sample, record, search), x0 (record), samples and features (eval), x, t
 * and y (forward) — as float (with the finite check) and as int, at the stored
 * rank and at rank 4 with fixed extents, plus the attributes of the root and
 * of those datasets as every type. Any outcome but a crash or a sanitizer
 * report is fine.
 * libhdf5 itself is the system's, not instrumented: crashes inside it show
 * up, silent overreads there do not.
 */
#include <stdint.h>
#include <stdlib.h>

#include "search/fit.h"
#include "fuzz/fuzz_input.h"
#include "runtime/h5io.h"

/* Known behaviour of libhdf5 1.10 on malformed files that is not ours to fix:
 * it leaks a few metadata-cache blocks when an object header fails to decode,
 * and it asks malloc for absurd sizes read from corrupt length fields (and
 * copes with NULL). Its endless loop on a zero-size free-space object in a
 * global heap is kept from it: h5io.c walks the heaps before the first
 * variable-length string read, so a -timeout report is a real hang. */
const char *__lsan_default_suppressions(void) { return "leak:libhdf5_serial.so\n"; }
const char *__asan_default_options(void) { return "allocator_may_return_null=1:max_allocation_size_mb=64"; }

/* Dataset and attribute names the commands read. */
static const char *const datasets[] = {
    "x", "t", "y", "noise", "samples", "x0", "features", "/steps/t", "/steps/alpha_bar", "/eps/norm",
    "/drift/attn", "/teacache/poly",
};
static const char *const attributes[] = {"format", "seed", "model", "sampler", "start_step", "cfg_scale",
                                         "recording_sha256", "n_real"};

/* The attributes of `obj` (NULL = root) as every type. */
static void read_attributes(eb_h5 *f, const char *obj) {
    for (size_t a = 0; a < sizeof attributes / sizeof *attributes; a++) {
        double d;
        int64_t i;
        char *s = NULL;
        eb_h5_has_attr(f, obj, attributes[a]);
        eb_h5_attr_f64(f, obj, attributes[a], &d);
        eb_h5_attr_i64(f, obj, attributes[a], &i);
        if (!eb_h5_attr_str(f, obj, attributes[a], &s)) free(s);
    }
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
    int64_t want[4] = {EB_H5_ANY, 1, 8, 8}, got[4];
    void *data = NULL;
    if (!eb_h5_read(f, name, EB_H5_F32, 4, want, &data, got, EB_H5_FINITE)) free(data);
    if (!eb_h5_read(f, name, EB_H5_I32, 4, want, &data, got, 0)) free(data);
    read_attributes(f, name);
}

int LLVMFuzzerTestOneInput(const uint8_t *bytes, size_t size) {
    const char *path = fuzz_input_file("input.h5", bytes, size);
    eb_h5 *f;
    if (eb_h5_open(&f, path)) return 0;
    for (size_t i = 0; i < sizeof datasets / sizeof *datasets; i++) {
        eb_h5_lookup(f, datasets[i]);
        read_all_ways(f, datasets[i]);
    }
    read_attributes(f, NULL);
    eb_h5_close(f);

    eb_rec_data r;
    if (!eb_rec_data_read(&r, path)) eb_rec_data_free(&r);
    eb_fit fit;
    if (!eb_fit_read(&fit, path)) eb_fit_free(&fit);
    return 0;
}
