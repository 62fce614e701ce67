/* ablate_spec.h — the ablation spec file (docs/ablation.md) and the caching
 * methods an ablation grid can name. */
#ifndef EB_CLI_ABLATE_SPEC_H
#define EB_CLI_ABLATE_SPEC_H

#include "runtime/ebcache.h"
#include "search/methods.h"

#include <limits.h>

#define MAX_LIST 16 /* values of one list key */

/* A parsed spec: indices into eb_methods (search/methods.h), sampler kinds and step counts, lists and scalars. */
typedef struct {
    char path[PATH_MAX], name[64], model[PATH_MAX];
    struct {
        char kind[8];
        int steps;
    } samplers[MAX_LIST];
    int n_samplers, methods[MAX_LIST], n_methods, seeds[MAX_LIST], n_seeds;
    double speedups[MAX_LIST], cfg;
    int n_speedups, n, calib_n, calib_seed, n_real, batch;
    int timing_n, timing_rounds; /* images per timing run, rounds of interleaved runs */
} spec;

/* Reads and checks the spec file at path into *s (defaults for absent keys).
 * Returns EB_OK, or EB_EINPUT with a message naming the file, line and key. */
eb_status ablate_spec_read(spec *s, const char *path);

#endif
