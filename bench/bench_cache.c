/* bench_cache.c — does skipped work show up as time? Samples with a DiT of
 * random weights uncached and under FORA N=2, FORA N=3, an EB-Cache-style
 * table and ToCa (R = 0.07 at N = 4 and N = 8), and compares the measured
 * speedup with the FLOP-ratio speedup; then any schedule tables given (made by
 * `ebcache search` for this sampler from a recording of the model --write-model
 * writes, or from a router trained on it: bench/run.sh makes SmoothCache's,
 * MagCache's and Learning-to-Cache's).
 * usage: bench_cache [CONFIG [STEPS [ROUNDS [TABLE...]]]]   (default B/2 12 3)
 *        bench_cache --write-model PATH [CONFIG]   writes the random model the tables are timed on, for
 *        the tables a recording or a trained router makes (bench/run.sh: SmoothCache, MagCache, L2C)
 * One sample with guidance (model batch 2), DDIM; configurations interleaved
 * in rounds, best round of each. The machine is shared, so besides the wall
 * time the process CPU time is compared too: it counts only the time this
 * process ran, whatever else the cores were doing. */
#include "runtime/cpu/kernels.h"
#include "runtime/model.h"
#include "runtime/schedule.h"
#include "runtime/weights.h"
#include "search/toca.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double seconds(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* The released EB-Cache table's shape on S steps: compute the first 44% of
 * the steps, then alternate refreshes with reuse (attention only, then both),
 * ending on 2, 2, 0 (codes as cache_table.npy, in sampling order). */
static eb_status ebcache_style(eb_cache_schedule **out, const eb_schedule *s) {
    eb_status st = eb_cache_schedule_new(out, s, "eb-cache-style", "");
    const eb_act C = {EB_ACT_COMPUTE, 0}, R = {EB_ACT_REUSE, 0};
    int warm = (44 * s->S + 99) / 100;
    for (int k = 0; !st && k < s->S; k++) {
        int code = k < warm ? 0 : k == s->S - 1 ? 0 : k >= s->S - 3 ? 2 : (k - warm) % 3 == 0 ? 2 : (k - warm) % 3 == 1 ? 0 : 1;
        st = eb_cache_schedule_add(*out, s, k, 0, -1, code ? R : C, code == 2 ? R : C, 1.0);
    }
    return st;
}

int main(int argc, char **argv) {
    eb_cpu_reexec(argv); /* OpenMP's wait policy, OpenBLAS's best kernels for this CPU (kernels.h) */
    const char *write_model = argc > 2 && !strcmp(argv[1], "--write-model") ? argv[2] : NULL;
    if (write_model) argc -= 2, argv += 2;
    const char *name = argc > 1 ? argv[1] : "B/2";
    int steps = argc > 2 ? atoi(argv[2]) : 12, rounds = argc > 3 ? atoi(argv[3]) : 3;
    eb_config c;
    eb_model *m;
    eb_schedule s;
    char spacing[32];
    snprintf(spacing, sizeof spacing, "%d", steps);
    if (eb_config_named(&c, name) || eb_model_create(&m, &c) || eb_schedule_create(&s, spacing)) {
        fprintf(stderr, "bench_cache: %s\n", eb_last_error());
        return 2;
    }
    /* small random weights keep activations finite; speed does not depend on the values */
    eb_rng_fill_normal(m->slab, eb_param_count(&c), eb_rng_key(1, 0));
    for (size_t i = 0; i < eb_param_count(&c); i++) m->slab[i] *= 0.02f;
    if (write_model) {
        eb_status st = eb_model_save(m, write_model, NULL, 0, EB_DT_F32);
        if (st) fprintf(stderr, "bench_cache: %s\n", eb_last_error());
        eb_model_free(m);
        eb_schedule_free(&s);
        return st ? 1 : 0;
    }
    enum { BUILT_IN = 6, MAX_TABLES = 16 };
    const int NT = BUILT_IN + (argc > 4 ? argc - 4 : 0);
    if (NT > MAX_TABLES) {
        fprintf(stderr, "bench_cache: at most %d tables besides the built-in ones\n", MAX_TABLES - BUILT_IN);
        return 2;
    }
    eb_cache_schedule *tables[MAX_TABLES] = {NULL};
    char labels[MAX_TABLES][sizeof tables[0]->method + sizeof tables[0]->params + 2] = {"uncached", "FORA N=2", "FORA N=3", "EB-Cache style", "ToCa N=4 R=0.07",
                                    "ToCa N=8 R=0.07"};
    eb_status bad = eb_cache_schedule_fora(&tables[1], &s, 2) || eb_cache_schedule_fora(&tables[2], &s, 3) ||
                    ebcache_style(&tables[3], &s) || eb_cache_schedule_toca(&tables[4], &s, c.depth, EB_TOCA_RATIO, 4) ||
                    eb_cache_schedule_toca(&tables[5], &s, c.depth, EB_TOCA_RATIO, 8);
    for (int k = BUILT_IN; !bad && k < NT; k++)
        if (!(bad = eb_cache_schedule_read(&tables[k], argv[k - BUILT_IN + 4])))
            snprintf(labels[k], sizeof labels[k], "%s %s", tables[k]->method, tables[k]->params);
    if (bad) {
        fprintf(stderr, "bench_cache: %s\n", eb_last_error());
        return 2;
    }
    size_t per = (size_t)c.in_channels * c.input_size * c.input_size;
    float *x0 = malloc(per * sizeof(float)), *x = malloc(per * sizeof(float));
    int32_t y = 207;
    eb_rng_fill_normal(x0, per, eb_rng_key(2, 0));
    eb_sampler_opts o = {.kind = EB_SAMPLER_DDIM, .var_type = EB_VAR_LEARNED_RANGE, .cfg_scale = 1.5f,
                         .guide_channels = 3, .seed = 1};
    double best[MAX_TABLES] = {0}, best_cpu[MAX_TABLES] = {0}, fraction[MAX_TABLES];
    size_t bytes[MAX_TABLES];
    for (int r = -1; r < rounds; r++) /* round −1: one cheap untimed run warms up threads and pages */
        for (int k = r < 0 ? 2 : 0; k < (r < 0 ? 3 : NT); k++) {
            eb_cache_stats st = {0};
            memcpy(x, x0, per * sizeof(float));
            double t0 = seconds(CLOCK_MONOTONIC), c0 = seconds(CLOCK_PROCESS_CPUTIME_ID);
            if (eb_sample_cached(m, &s, &o, tables[k], x, &y, 1, 0, &st)) {
                fprintf(stderr, "bench_cache: %s\n", eb_last_error());
                return 1;
            }
            double t = seconds(CLOCK_MONOTONIC) - t0, cpu = seconds(CLOCK_PROCESS_CPUTIME_ID) - c0;
            if (r < 0) continue;
            if (!best[k] || t < best[k]) best[k] = t;
            if (!best_cpu[k] || cpu < best_cpu[k]) best_cpu[k] = cpu;
            fraction[k] = st.macs / st.macs_uncached, bytes[k] = st.cache_bytes;
        }
    printf("DiT-%s, random weights, 1 sample with guidance (model batch 2), DDIM %d steps, best of %d rounds\n\n",
           name, steps, rounds);
    printf("| schedule | MAC fraction | FLOP speedup | wall s | wall speedup | / FLOP | CPU s | CPU speedup | / FLOP "
           "| cache MiB |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|\n");
    for (int k = 0; k < NT; k++) {
        double flop = 1 / fraction[k], wall = best[0] / best[k], cpu = best_cpu[0] / best_cpu[k];
        printf("| %s | %.3f | %.2fx | %.2f | %.2fx | %.2f | %.2f | %.2fx | %.2f | %.1f |\n", labels[k], fraction[k], flop,
               best[k], wall, wall / flop, best_cpu[k], cpu, cpu / flop, bytes[k] / 1048576.0);
    }
    for (int k = 1; k < NT; k++) eb_cache_schedule_free(tables[k]);
    eb_schedule_free(&s);
    eb_model_free(m);
    free(x0), free(x);
    return 0;
}
