/* golden.c — golden file access for the tests. */
#include "tests/golden.h"

#include "runtime/h5io.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static void *read_golden(const char *file, const char *name, eb_h5_type type, int rank, int64_t *dims) {
    char path[512];
    snprintf(path, sizeof path, GOLDEN_DIR "%s", file);
    eb_h5 *f;
    void *data = NULL;
    int64_t local[EB_H5_MAX_RANK];
    eb_status st = eb_h5_open(&f, path);
    if (!st) st = eb_h5_read(f, name, type, rank, NULL, &data, dims ? dims : local, 0);
    eb_h5_close(f);
    cr_assert_eq(st, EB_OK, "golden %s:%s: %s", file, name, eb_last_error());
    return data;
}

float *golden_f32(const char *file, const char *name, int rank, int64_t *dims) {
    return read_golden(file, name, EB_H5_F32, rank, dims);
}
double *golden_f64(const char *file, const char *name, int rank, int64_t *dims) {
    return read_golden(file, name, EB_H5_F64, rank, dims);
}
int32_t *golden_i32(const char *file, const char *name, int rank, int64_t *dims) {
    return read_golden(file, name, EB_H5_I32, rank, dims);
}

double golden_attr_f64(const char *file, const char *name) {
    char path[512];
    snprintf(path, sizeof path, GOLDEN_DIR "%s", file);
    eb_h5 *f;
    double v = NAN;
    eb_status st = eb_h5_open(&f, path);
    if (!st) st = eb_h5_attr_f64(f, NULL, name, &v);
    eb_h5_close(f);
    cr_assert_eq(st, EB_OK, "golden %s@%s: %s", file, name, eb_last_error());
    return v;
}

eb_model *golden_model_on(const char *name, int heads, const char *device) {
    char path[512];
    snprintf(path, sizeof path, GOLDEN_DIR "models/%s", name);
    eb_model *m;
    eb_status st = eb_model_load_on(&m, path, heads, &(eb_device){device, EB_PRECISION_FP32});
    cr_assert_eq(st, EB_OK, "loading %s on %s: %s", path, device, eb_last_error());
    return m;
}

eb_model *golden_model(const char *name, int heads) {
    const char *device = getenv("EBCACHE_DEVICE");
    return golden_model_on(name, heads, device && *device ? device : "cpu");
}

eb_model *golden_host_model(const char *name, int heads) { return golden_model_on(name, heads, "cpu"); }

double max_rel_err(const float *got, const float *want, size_t n) {
    double diff = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= diff)) diff = d; /* NaN propagates */
        scale = fmax(scale, fabs(want[i]));
    }
    return diff / (scale > 0 ? scale : 1);
}

double max_rel_err_f64(const double *got, const double *want, size_t n) {
    double diff = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(got[i] - want[i]);
        if (!(d <= diff)) diff = d;
        scale = fmax(scale, fabs(want[i]));
    }
    return diff / (scale > 0 ? scale : 1);
}
