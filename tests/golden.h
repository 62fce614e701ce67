/* golden.h — reading the reference goldens (tests/golden/) in the C tests. */
#ifndef EB_TEST_GOLDEN_H
#define EB_TEST_GOLDEN_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/ebcache.h"

#define GOLDEN_DIR "tests/golden/"

/* Reads dataset `name` of golden file `file` (relative to tests/golden/);
 * fails the test when it is missing. dims may be NULL; rank must match. */
float *golden_f32(const char *file, const char *name, int rank, int64_t *dims);
double *golden_f64(const char *file, const char *name, int rank, int64_t *dims);
int32_t *golden_i32(const char *file, const char *name, int rank, int64_t *dims);
double golden_attr_f64(const char *file, const char *name);

/* Loads a golden model (tests/golden/models/<name>) at fp32 on the device that
 * $EBCACHE_DEVICE names (the CPU when unset; bench/gpu.sh runs the golden
 * suites with cuda), or fails the test. */
eb_model *golden_model(const char *name, int heads);
/* The same, always on the CPU: for tests that reach into the host buffers. */
eb_model *golden_host_model(const char *name, int heads);
/* The same on `device` ("cpu", "cuda") at fp32, or fails the test. */
eb_model *golden_model_on(const char *name, int heads, const char *device);

/* max |got − want| / max |want| over n elements: the relative error every
 * golden comparison states its tolerance in. */
double max_rel_err(const float *got, const float *want, size_t n);
double max_rel_err_f64(const double *got, const double *want, size_t n);

#endif
