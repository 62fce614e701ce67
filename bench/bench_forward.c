/* bench_forward.c — forward throughput of a named DiT with random weights.
 * usage: bench_forward CONFIG BATCH ITERS  → one line: images/s, ms, GFLOP/s, peak RSS,
 *        and the OpenBLAS core and OpenMP wait policy the forwards ran with;
 *        bench_forward --core  → the OpenBLAS core this program runs on here (after eb_cpu_reexec). */
#include "runtime/cpu/kernels.h"
#include "runtime/model.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

int main(int argc, char **argv) {
    eb_cpu_reexec(argv); /* OpenMP's wait policy, OpenBLAS's best kernels for this CPU (kernels.h) */
    if (argc == 2 && !strcmp(argv[1], "--core")) {
        printf("%s\n", openblas_get_corename());
        return 0;
    }
    if (argc < 4) {
        fprintf(stderr, "usage: bench_forward CONFIG BATCH ITERS | --core\n");
        return 2;
    }
    eb_config c;
    eb_model *m;
    if (eb_config_named(&c, argv[1]) || eb_model_create(&m, &c)) {
        fprintf(stderr, "bench_forward: %s\n", eb_last_error());
        return 2;
    }
    int B = atoi(argv[2]), iters = atoi(argv[3]);
    /* Small random weights keep activations finite; speed does not depend on the values. */
    eb_rng_fill_normal(m->slab, eb_param_count(&c), eb_rng_key(1, 0));
    for (size_t i = 0; i < eb_param_count(&c); i++) m->slab[i] *= 0.02f;
    size_t per = (size_t)c.in_channels * c.input_size * c.input_size;
    float *x = malloc(B * per * sizeof(float)), *out = malloc(B * per * 2 * sizeof(float));
    int32_t *t = malloc(B * sizeof(int32_t)), *y = malloc(B * sizeof(int32_t));
    eb_rng_fill_normal(x, B * per, eb_rng_key(2, 0));
    for (int i = 0; i < B; i++) t[i] = 999 - 37 * i % 1000, y[i] = i % c.num_classes;
    if (eb_forward(m, out, x, t, y, B)) { /* warm-up: allocates activations, spins up threads */
        fprintf(stderr, "bench_forward: %s\n", eb_last_error());
        return 1;
    }
    double t0 = now();
    for (int k = 0; k < iters; k++) eb_forward(m, out, x, t, y, B);
    double per_iter = (now() - t0) / iters;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    const char *wait = getenv("OMP_WAIT_POLICY");
    printf("%s batch %d: %.2f images/s, %.1f ms per forward, %.2f GFLOP/s, peak RSS %.0f MiB, "
           "OpenBLAS core %s, OMP_WAIT_POLICY %s\n", argv[1], B, B / per_iter, 1e3 * per_iter,
           2 * eb_forward_macs(&c) * B / per_iter * 1e-9, ru.ru_maxrss / 1024.0, openblas_get_corename(),
           wait ? wait : "unset");
    eb_model_free(m);
    free(x), free(out), free(t), free(y);
    return 0;
}
