/* bench_record.c — what recording costs: plain sampling against eb_record_run
 * with every statistic (drift of every block and module, block-0 input, model
 * output, ε norms, SNR sums) but without the optional /eps/norm_q pass, which
 * is one extra forward per step by design.
 * usage: bench_record [ROUNDS]   (default 3)
 * Two models with random weights: the default Fashion-MNIST architecture
 * (28², p 4, D 128, 6 blocks; 16 samples, 20 steps) and DiT-S/2 (32²×4
 * latents; 2 samples, 10 steps); guidance 1.5, DDPM. Plain and recorded runs alternate;
 * the best round of each counts, by wall and by process CPU time (the
 * machine is shared). The budget: ratio ≤ 1.10. */
#include "runtime/cpu/kernels.h"
#include "runtime/model.h"
#include "analyze/record.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double seconds(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int bench(const char *label, const eb_config *c, int N, int steps, int rounds) {
    eb_model *m;
    eb_schedule s;
    char spacing[16];
    snprintf(spacing, sizeof spacing, "%d", steps);
    if (eb_model_create(&m, c) || eb_schedule_create(&s, spacing)) {
        fprintf(stderr, "bench_record: %s\n", eb_last_error());
        return 2;
    }
    /* small random weights keep activations finite; speed does not depend on the values */
    eb_rng_fill_normal(m->slab, eb_param_count(c), eb_rng_key(1, 0));
    for (size_t i = 0, n = eb_param_count(c); i < n; i++) m->slab[i] *= 0.02f;
    size_t per = (size_t)c->in_channels * c->input_size * c->input_size;
    float *xT = malloc(N * per * sizeof(float)), *x = malloc(N * per * sizeof(float));
    int32_t *y = malloc(N * sizeof(int32_t));
    for (int n = 0; n < N; n++) {
        eb_rng_fill_normal(xT + n * per, per, eb_rng_key(2, eb_stream_xT(n)));
        y[n] = n % c->num_classes;
    }
    eb_record_opts o = {
        .sched = &s,
        .so = {.kind = EB_SAMPLER_DDPM, .var_type = c->learn_sigma ? EB_VAR_LEARNED_RANGE : EB_VAR_FIXED_LARGE,
               .cfg_scale = 1.5f, .guide_channels = eb_default_guide_channels(c), .seed = 1},
        .batch = N,
    };
    double best[2] = {0}, best_cpu[2] = {0};
    for (int r = -1; r < rounds; r++) /* round −1 warms up threads and pages */
        for (int k = 0; k < 2; k++) {
            eb_recording rec;
            memcpy(x, xT, N * per * sizeof(float));
            double t0 = seconds(CLOCK_MONOTONIC), c0 = seconds(CLOCK_PROCESS_CPUTIME_ID);
            eb_status st = k ? eb_record_run(m, &o, xT, y, N, &rec, NULL) : eb_sample(m, &s, &o.so, x, y, N, 0);
            double t = seconds(CLOCK_MONOTONIC) - t0, cpu = seconds(CLOCK_PROCESS_CPUTIME_ID) - c0;
            if (st) {
                fprintf(stderr, "bench_record: %s\n", eb_last_error());
                return 1;
            }
            if (k) eb_recording_free(&rec);
            if (r < 0) continue;
            if (!best[k] || t < best[k]) best[k] = t;
            if (!best_cpu[k] || cpu < best_cpu[k]) best_cpu[k] = cpu;
        }
    printf("| %s | %d | %d | %.3f | %.3f | %.3f | %.3f |\n", label, N, steps, best[0], best[1], best[1] / best[0],
           best_cpu[1] / best_cpu[0]);
    free(xT), free(x), free(y);
    eb_schedule_free(&s);
    eb_model_free(m);
    return 0;
}

int main(int argc, char **argv) {
    eb_cpu_reexec(argv); /* OpenMP's wait policy, OpenBLAS's best kernels for this CPU (kernels.h) */
    int rounds = argc > 1 ? atoi(argv[1]) : 3;
    eb_config fmnist = {.input_size = 28, .patch_size = 4, .in_channels = 1, .hidden_size = 128, .depth = 6,
                        .num_heads = 4, .num_classes = 10, .learn_sigma = 0};
    eb_config s2;
    if (eb_config_named(&s2, "S/2")) {
        fprintf(stderr, "bench_record: %s\n", eb_last_error());
        return 2;
    }
    printf("Recording overhead (bench_record): DDPM, guidance 1.5, random weights, best of %d rounds; every statistic\n"
           "but the optional /eps/norm_q pass. Budget: ratio <= 1.10.\n\n", rounds);
    printf("| model | N | steps | plain s | recorded s | ratio (wall) | ratio (CPU) |\n|---|---|---|---|---|---|---|\n");
    return bench("default FMNIST arch (28², p4, D128, L6)", &fmnist, 16, 100, rounds) ||
           bench("DiT-S/2 (32²×4)", &s2, 2, 10, rounds);
}
