/* inception_fixture.c — the random-weight FID Inception of the goldens (inception_fixture.h). */
#include "tests/inception_fixture.h"

#include "runtime/safetensors.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

float *inception_formula_table(const eb_inception *m, uint64_t seed) {
    float *host = malloc(eb_inception_tensor_floats(m) * sizeof *host);
    for (int i = 0; host && i < eb_inception_tensor_count(m); i++) {
        const eb_inception_tensor *t = eb_inception_tensor_at(m, i);
        float *v = host + t->offset;
        eb_rng_fill_normal(v, t->numel, eb_rng_key(seed, (uint64_t)i));
        const char *leaf = strrchr(t->name, '.') + 1;
        const int conv = !strcmp(leaf, "weight") && t->rank > 1;
        const float amp = (float)sqrt((!strcmp(t->name, "fc.weight") ? 1.0 : 2.0) / (double)(t->numel / t->shape[0]));
        for (size_t k = 0; k < t->numel; k++) {
            const float z = v[k];
            v[k] = conv ? z * amp : !strcmp(leaf, "weight") ? 1.0f + 0.1f * z
                 : !strcmp(leaf, "running_var") ? 0.75f + 0.25f * z * z : 0.1f * z;
        }
    }
    return host;
}

eb_status inception_formula_write(const char *path, int with_fc, uint64_t seed) {
    eb_inception *m;
    eb_status st = eb_inception_create_on(&m, 1, NULL);
    if (st) return st;
    float *host = inception_formula_table(m, seed);
    const int n = eb_inception_tensor_count(m) - !with_fc; /* fc.weight is the layout's last tensor */
    eb_st_entry *e = calloc((size_t)n, sizeof *e);
    if (!host || !e) st = eb_fail(EB_ERUNTIME, "out of memory for the Inception weights");
    for (int i = 0; !st && i < n; i++) {
        const eb_inception_tensor *t = eb_inception_tensor_at(m, i);
        e[i] = (eb_st_entry){.name = t->name, .dtype = EB_DT_F32, .rank = t->rank, .data = host + t->offset};
        memcpy(e[i].shape, t->shape, sizeof t->shape);
    }
    if (!st) st = eb_st_write(path, e, n, NULL, 0);
    free(e), free(host);
    eb_inception_free(m);
    return st;
}
