/* bench_inception.c — the FID InceptionV3's speed on the CPU, for the ratio in `make bench`.
 *
 *   bench_inception SIDE BATCH ITERS   pool, spatial and logits of BATCH random SIDE×SIDE uint8 RGB
 *                                      images (the uint8 conversion, the resize to 299 and the network),
 *                                      random weights: one line "…: X images/s …, OpenBLAS core C" after
 *                                      a warm-up, ITERS batches timed
 * bench/bench_inception_ref.py is the PyTorch side (reference/inception_ref.py's network, same threads). */
#include "analyze/inception.h"
#include "runtime/cpu/kernels.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* Weights of the golden's formula (reference/inception_ref.py random_weights) with another seed:
 * activations stay O(1); the speed does not depend on the values. */
static eb_status random_network(eb_inception **out) {
    eb_status st = eb_inception_create_on(out, 1, NULL);
    if (st) return st;
    eb_inception *m = *out;
    float *host = malloc(eb_inception_tensor_floats(m) * sizeof *host);
    if (!host) return eb_fail(EB_ERUNTIME, "bench_inception: out of memory");
    for (int i = 0; i < eb_inception_tensor_count(m); i++) {
        const eb_inception_tensor *t = eb_inception_tensor_at(m, i);
        float *v = host + t->offset;
        eb_rng_fill_normal(v, t->numel, eb_rng_key(11, (uint64_t)i));
        const char *leaf = strrchr(t->name, '.') + 1;
        const int weight = !strcmp(leaf, "weight"), conv = weight && t->rank > 1;
        const float amp = sqrtf((!strcmp(t->name, "fc.weight") ? 1.0f : 2.0f) / (float)(t->numel / t->shape[0]));
        for (size_t k = 0; k < t->numel; k++)
            v[k] = conv ? v[k] * amp : weight ? 1.0f + 0.1f * v[k] : !strcmp(leaf, "running_var") ? 0.75f + 0.25f * v[k] * v[k] : 0.1f * v[k];
    }
    st = eb_inception_set_tensors(m, host);
    free(host);
    return st;
}

int main(int argc, char **argv) {
    eb_cpu_reexec(argv); /* OpenMP's wait policy, OpenBLAS's best kernels for this CPU (kernels.h) */
    eb_kernels_init(0);
    if (argc != 4) {
        fprintf(stderr, "usage: bench_inception SIDE BATCH ITERS\n");
        return 2;
    }
    const int side = atoi(argv[1]), B = atoi(argv[2]), iters = atoi(argv[3]);
    eb_inception *m;
    if (side < 1 || B < 1 || iters < 1 || random_network(&m)) {
        fprintf(stderr, "bench_inception: %s\n", side < 1 || B < 1 || iters < 1 ? "bad arguments" : eb_last_error());
        return 2;
    }
    const size_t px = (size_t)side * side * 3;
    uint8_t *u8 = malloc(B * px);
    float *x = malloc(B * px * sizeof(float)), *pool = malloc(sizeof(float) * B * EB_INCEPTION_POOL),
          *spatial = malloc(sizeof(float) * B * EB_INCEPTION_SPATIAL),
          *logits = malloc(sizeof(float) * B * EB_INCEPTION_CLASSES);
    if (!u8 || !x || !pool || !spatial || !logits) return 1;
    eb_rng_fill_normal(x, B * px, eb_rng_key(12, 0));
    for (size_t i = 0; i < B * px; i++) u8[i] = (uint8_t)((int)(64 * x[i] + 1e4f) & 255);
    double t0 = 0;
    for (int k = -1; k < iters; k++) { /* k = −1: the warm-up (activations, threads) */
        if (k == 0) t0 = now();
        eb_inception_images_from_u8(x, u8, B, side, side);
        if (eb_inception_forward(m, pool, spatial, logits, x, B, side, side)) {
            fprintf(stderr, "bench_inception: %s\n", eb_last_error());
            return 1;
        }
    }
    const double per = (now() - t0) / iters;
    const char *wait = getenv("OMP_WAIT_POLICY");
    printf("ebcache inception %dx%d batch %d: %.2f images/s, %.1f ms per batch, %.1f GFLOP/s, OpenBLAS core %s, "
           "OMP_WAIT_POLICY %s\n", side, side, B, B / per, 1e3 * per, 2e-9 * eb_inception_macs(m) * B / per,
           openblas_get_corename(), wait ? wait : "unset");
    free(u8), free(x), free(pool), free(spatial), free(logits);
    eb_inception_free(m);
    return 0;
}
