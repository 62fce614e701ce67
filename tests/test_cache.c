/* test_cache.c — the cache engine against reference/cache_ref.py, bit-identity
 * of an all-compute schedule, exact memory accounting and its kernels. */
#include "runtime/cache.h"
#include "runtime/chain.h"
#include "tests/golden.h"
#include "runtime/h5io.h"
#include "runtime/cpu/kernels.h"

#include <criterion/criterion.h>
#include <malloc.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CACHE_TOL 1e-5 /* max |Δ| / max |want|, per step and for whole loops */

/* ------------------------------------------------------------------------ */
/* Kernels                                                                   */

Test(cache, taylor_kernels_match_the_series) {
    enum { n = 5 };
    /* a feature linear in the step, computed at steps 1 and 3: order 1 forecasts it exactly */
    float f[3][n], factors[2 * n] = {0}, feat[n], out[n];
    for (int i = 0; i < n; i++) f[0][i] = 0.5f * i - 1.0f, f[1][i] = 0.25f * i;
    for (int i = 0; i < n; i++) feat[i] = f[0][i] + f[1][i] * 1;
    taylor_update_forward(factors, 2, 0, feat, n, 7.0f); /* first compute: the distance is unused */
    for (int i = 0; i < n; i++) feat[i] = f[0][i] + f[1][i] * 3;
    taylor_update_forward(factors, 2, 1, feat, n, 2.0f);
    for (int i = 0; i < n; i++) cr_expect_float_eq(factors[n + i], f[1][i], 1e-6, "slope %d", i);
    taylor_forecast_forward(out, factors, 2, n, 3.0f); /* step 6 */
    for (int i = 0; i < n; i++) cr_expect_float_eq(out[i], f[0][i] + f[1][i] * 6, 1e-5, "forecast %d", i);
    /* order 0 is the cached feature bit for bit */
    taylor_forecast_forward(out, factors, 1, n, 3.0f);
    cr_expect_eq(memcmp(out, factors, sizeof out), 0);
    /* order 2 with the 1/2! coefficient: factors 1, 2, 4 at offset 3 → 1 + 6 + 18 */
    float q[3 * n];
    for (int i = 0; i < n; i++) q[i] = 1, q[n + i] = 2, q[2 * n + i] = 4;
    taylor_forecast_forward(out, q, 3, n, 3.0f);
    for (int i = 0; i < n; i++) cr_expect_eq(out[i], 25.0f);
}

Test(cache, rel_l1_and_residual_kernels) {
    enum { n = 100003 };
    float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float)), *r = malloc(n * sizeof(float));
    eb_rng_fill_normal(a, n, eb_rng_key(3, 0));
    eb_rng_fill_normal(b, n, eb_rng_key(3, 1));
    double num = 0, den = 0;
    for (int i = 0; i < n; i++) num += fabsf(a[i] - b[i]), den += fabsf(b[i]);
    eb_kernels_init(1);
    double one = rel_l1_forward(a, b, n);
    eb_kernels_init(2);
    double two = rel_l1_forward(a, b, n);
    cr_expect_eq(one, two, "the relative L1 depends on the thread count: %.17g vs %.17g", one, two);
    cr_expect_leq(fabs(one - num / den), 1e-12 * (num / den));
    add_scaled_forward(r, a, -1.0f, b, n); /* residual a − b, then applied back */
    add_scaled_forward(r, r, 1.0f, b, n);
    size_t same = 0;
    for (int i = 0; i < n; i++) same += fabsf(r[i] - a[i]) <= 1e-6f * (fabsf(a[i]) + fabsf(b[i]));
    cr_expect_eq(same, (size_t)n);
    free(a), free(b), free(r);
}

/* ------------------------------------------------------------------------ */
/* Golden runs                                                               */

typedef struct {
    eb_cache_schedule *table;
    eb_schedule sched;
    eb_sampler_opts opts;
    int guided;
} golden_case;

static char *group_attr_str(const char *file, const char *group, const char *name) {
    char path[512], *v = NULL;
    snprintf(path, sizeof path, GOLDEN_DIR "%s", file);
    eb_h5 *f;
    eb_status st = eb_h5_open(&f, path);
    if (!st) st = eb_h5_attr_str(f, group, name, &v);
    eb_h5_close(f);
    cr_assert_eq(st, EB_OK, "%s", eb_last_error());
    return v;
}

static double group_attr_f64(const char *file, const char *group, const char *name) {
    char path[512];
    snprintf(path, sizeof path, GOLDEN_DIR "%s", file);
    eb_h5 *f;
    double v = NAN;
    eb_status st = eb_h5_open(&f, path);
    if (!st) st = eb_h5_attr_f64(f, group, name, &v);
    eb_h5_close(f);
    cr_assert_eq(st, EB_OK, "%s", eb_last_error());
    return v;
}

/* The table, sampler and options a golden group was made with. */
static golden_case load_case(const char *file, const char *group) {
    golden_case gc = {0};
    char *text = group_attr_str(file, group, "table"), *spacing = group_attr_str(file, group, "spacing");
    char *sampler = group_attr_str(file, group, "sampler"), *vt = group_attr_str(file, group, "var_type");
    char name[128];
    snprintf(name, sizeof name, "%s:%s", file, group);
    cr_assert_eq(eb_cache_schedule_parse(&gc.table, text, name), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_schedule_create(&gc.sched, spacing), EB_OK);
    float cfg = (float)group_attr_f64(file, group, "cfg");
    gc.opts = (eb_sampler_opts){
        .kind = strcmp(sampler, "ddim") ? EB_SAMPLER_DDPM : EB_SAMPLER_DDIM,
        .var_type = !strcmp(vt, "learned_range") ? EB_VAR_LEARNED_RANGE
                    : !strcmp(vt, "fixed_small") ? EB_VAR_FIXED_SMALL : EB_VAR_FIXED_LARGE,
        .eta = (float)group_attr_f64(file, group, "eta"), .cfg_scale = cfg, .guide_channels = 3,
        .seed = (uint64_t)group_attr_f64(file, group, "seed")};
    gc.guided = cfg != 1.0f;
    free(text), free(spacing), free(sampler), free(vt);
    return gc;
}

static void free_case(golden_case *gc) {
    eb_cache_schedule_free(gc->table);
    eb_schedule_free(&gc->sched);
}

/* Feeds the reference's per-step inputs through the cache (teacher forcing:
 * no drift between the trajectories), then runs the whole loop. */
static void check_case(const char *model, int heads, const char *file, const char *group) {
    eb_model *m = golden_model(model, heads);
    golden_case gc = load_case(file, group);
    const eb_config *c = eb_model_config(m);
    char name[128];
    int64_t xd[5], od[5], nd[1], sd[1];
    snprintf(name, sizeof name, "%s/x", group);
    float *xs = golden_f32(file, name, 5, xd);
    snprintf(name, sizeof name, "%s/out", group);
    float *want = golden_f32(file, name, 5, od);
    snprintf(name, sizeof name, "%s/y", group);
    int32_t *y = golden_i32(file, name, 1, nd);
    snprintf(name, sizeof name, "%s/skipped", group);
    int32_t *skipped = golden_i32(file, name, 1, sd);
    const int S = gc.sched.S, N = (int)xd[1];
    cr_assert_eq(xd[0], S);
    const size_t per_x = (size_t)N * xd[2] * xd[3] * xd[4], per_out = (size_t)N * od[2] * od[3] * od[4];

    eb_cache *cache;
    cr_assert_eq(eb_cache_create(&cache, m, gc.table, &gc.sched, gc.guided ? 2 * N : N), EB_OK, "%s", eb_last_error());
    float *out = malloc(per_out * sizeof(float));
    int32_t t[16];
    for (int k = 0; k < S; k++) {
        for (int i = 0; i < N; i++) t[i] = gc.sched.timestep[S - 1 - k];
        cr_assert_eq(eb_forward_run(m, cache, k, out, xs + k * per_x, t, y, N, gc.guided, gc.opts.cfg_scale, 3), EB_OK,
                     "%s", eb_last_error());
        double err = max_rel_err(out, want + k * per_out, per_out);
        cr_expect_leq(err, CACHE_TOL, "%s %s step %d: rel err %g", file, group, k, err);
        cr_expect_eq(eb_cache_policy_skipped(cache, k), skipped[k], "%s %s step %d: policy decision", file, group, k);
    }
    eb_cache_free(cache);

    snprintf(name, sizeof name, "%s/xT", group);
    float *x = golden_f32(file, name, 4, NULL);
    snprintf(name, sizeof name, "%s/samples", group);
    float *samples = golden_f32(file, name, 4, NULL);
    eb_cache_stats stats = {0};
    cr_assert_eq(eb_sample_cached(m, &gc.sched, &gc.opts, gc.table, x, y, N, 0, &stats), EB_OK, "%s", eb_last_error());
    double err = max_rel_err(x, samples, per_x);
    cr_expect_leq(err, CACHE_TOL, "%s %s whole loop: rel err %g", file, group, err);
    /* a static table executes what it predicts */
    if (gc.table->policy.kind == EB_POLICY_NONE) {
        double predicted = eb_cache_schedule_flops(gc.table, c);
        cr_expect_leq(fabs(stats.macs / stats.macs_uncached - predicted), 1e-12, "%s: executed %g, predicted %g", group,
                      stats.macs / stats.macs_uncached, predicted);
    }
    free(xs), free(want), free(y), free(skipped), free(out), free(x), free(samples);
    free_case(&gc);
    eb_model_free(m);
}

#define SIGMA "tiny_sigma.safetensors", 0, "cache_sigma.h5"
#define NOSIGMA "tiny_nosigma.safetensors", 3, "cache_nosigma.h5"

Test(cache, fora_interval2_with_guidance) { check_case(SIGMA, "fora2"); }
Test(cache, fora_interval3) { check_case(NOSIGMA, "fora3"); }
Test(cache, ebcache_reuse_modes_and_eps_scale) { check_case(SIGMA, "ebcache"); }
Test(cache, taylorseer_order2_with_guidance) { check_case(SIGMA, "taylor"); }
Test(cache, taylorseer_order4) { check_case(NOSIGMA, "taylor4"); }
Test(cache, delta_dit_block_residuals) { check_case(NOSIGMA, "delta"); }
Test(cache, mixed_forecast_reuse_and_skip_overrides) { check_case(NOSIGMA, "mixed"); }
Test(cache, teacache_policy) { check_case(SIGMA, "teacache"); }
Test(cache, first_block_cache_policy) { check_case(NOSIGMA, "fbcache"); }

/* The C generators write the tables the reference wrote independently. */
Test(cache, generators_match_reference_tables) {
    struct { const char *file, *group; int kind, a, b, c; } cases[] = {
        {"cache_sigma.h5", "fora2", 0, 2, 0, 0}, {"cache_nosigma.h5", "fora3", 0, 3, 0, 0},
        {"cache_sigma.h5", "taylor", 1, 3, 2, 2}, {"cache_nosigma.h5", "taylor4", 1, 2, 4, 2},
        {"cache_nosigma.h5", "delta", 2, 2, 2, 5}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        golden_case gc = load_case(cases[i].file, cases[i].group);
        eb_cache_schedule *gen = NULL;
        eb_status st = cases[i].kind == 0 ? eb_cache_schedule_fora(&gen, &gc.sched, cases[i].a)
                       : cases[i].kind == 1 ? eb_cache_schedule_taylorseer(&gen, &gc.sched, cases[i].a, cases[i].b, cases[i].c)
                                            : eb_cache_schedule_delta_dit(&gen, &gc.sched, 3, cases[i].a, cases[i].b, cases[i].c);
        cr_assert_eq(st, EB_OK, "%s", eb_last_error());
        cr_assert_eq(gen->nrows, gc.table->nrows, "%s: %d rows, reference %d", cases[i].group, gen->nrows, gc.table->nrows);
        for (int r = 0; r < gen->nrows; r++) {
            eb_sched_row a = gen->rows[r], b = gc.table->rows[r];
            a.line = b.line = 0;
            cr_expect_eq(memcmp(&a, &b, sizeof a), 0, "%s: row %d differs", cases[i].group, r);
        }
        eb_cache_schedule_free(gen);
        free_case(&gc);
    }
}

/* ------------------------------------------------------------------------ */
/* Identity, memory, allocation                                              */

static void bit_identical(const char *model, int heads, const char *spacing, eb_sampler_opts o) {
    eb_model *m = golden_model(model, heads);
    const eb_config *c = eb_model_config(m);
    eb_schedule s;
    cr_assert_eq(eb_schedule_create(&s, spacing), EB_OK);
    enum { N = 3 };
    size_t per = (size_t)c->in_channels * c->input_size * c->input_size;
    float *plain = malloc(N * per * sizeof(float)), *cached = malloc(N * per * sizeof(float));
    int32_t y[N] = {1, 4, 2};
    for (int n = 0; n < N; n++) eb_rng_fill_normal(plain + n * per, per, eb_rng_key(21, eb_stream_xT(n)));
    memcpy(cached, plain, N * per * sizeof(float));
    eb_cache_schedule *all;
    cr_assert_eq(eb_cache_schedule_fora(&all, &s, 1), EB_OK); /* interval 1: compute everything */
    eb_cache_stats stats = {0};
    cr_assert_eq(eb_sample(m, &s, &o, plain, y, N, 0), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_sample_cached(m, &s, &o, all, cached, y, N, 0, &stats), EB_OK, "%s", eb_last_error());
    cr_expect_eq(memcmp(plain, cached, N * per * sizeof(float)), 0, "%s: all-compute schedule changed the bits", model);
    cr_expect_eq(stats.cache_bytes, 0u, "nothing is reused, so nothing is cached");
    cr_expect_eq(stats.macs, stats.macs_uncached);
    free(plain), free(cached);
    eb_cache_schedule_free(all);
    eb_schedule_free(&s);
    eb_model_free(m);
}

Test(cache, all_compute_schedule_is_bit_identical) {
    bit_identical("tiny_sigma.safetensors", 0, "ddim10",
                  (eb_sampler_opts){.kind = EB_SAMPLER_DDIM, .var_type = EB_VAR_LEARNED_RANGE, .cfg_scale = 1.5f,
                                    .guide_channels = 3, .seed = 4});
    bit_identical("tiny_nosigma.safetensors", 3, "10",
                  (eb_sampler_opts){.kind = EB_SAMPLER_DDPM, .var_type = EB_VAR_FIXED_LARGE, .cfg_scale = 1.0f, .seed = 4});
}

/* Cache bytes for a table on tiny_sigma with a model batch of B rows. */
static size_t cache_bytes_of(eb_model *m, const eb_cache_schedule *cs, const eb_schedule *s, int B) {
    eb_cache *cache;
    cr_assert_eq(eb_cache_create(&cache, m, cs, s, B), EB_OK, "%s", eb_last_error());
    size_t bytes = eb_cache_bytes(cache);
    eb_cache_free(cache);
    return bytes;
}

Test(cache, memory_exactly_accounted) {
    eb_model *m = golden_model("tiny_sigma.safetensors", 0);
    const eb_config *c = eb_model_config(m);
    eb_schedule s;
    cr_assert_eq(eb_schedule_create(&s, "10"), EB_OK);
    const int B = 4; /* two samples with guidance: both halves */
    const size_t feature = (size_t)B * eb_tokens(c) * c->hidden_size * sizeof(float), L = c->depth;
    eb_cache_schedule *cs;
    double poly[2] = {1, 0};
    cr_assert_eq(eb_cache_schedule_fora(&cs, &s, 2), EB_OK);
    cr_expect_eq(cache_bytes_of(m, cs, &s, B), 2 * L * feature, "FORA: one feature per attention and MLP");
    cr_expect_eq(cache_bytes_of(m, cs, &s, B / 2), L * feature, "half the rows, half the bytes");
    eb_cache_schedule_free(cs);
    cr_assert_eq(eb_cache_schedule_taylorseer(&cs, &s, 3, 2, 2), EB_OK);
    cr_expect_eq(cache_bytes_of(m, cs, &s, B), 3 * 2 * L * feature, "order 2: three factors per module");
    eb_cache_schedule_free(cs);
    cr_assert_eq(eb_cache_schedule_delta_dit(&cs, &s, (int)L, 2, 1, 5), EB_OK);
    cr_expect_eq(cache_bytes_of(m, cs, &s, B), 2 * feature, "Δ-DiT: one residual per block run (rear, front)");
    eb_cache_schedule_free(cs);
    cr_assert_eq(eb_cache_schedule_teacache(&cs, &s, 0.1, poly, 2), EB_OK);
    cr_expect_eq(cache_bytes_of(m, cs, &s, B), 2 * feature, "TeaCache: residual and probe");
    eb_cache_schedule_free(cs);
    cr_assert_eq(eb_cache_schedule_fbcache(&cs, &s, 0.1, 1), EB_OK);
    cr_expect_eq(cache_bytes_of(m, cs, &s, B), 3 * feature, "first-block cache: residual and two probes");
    eb_cache_schedule_free(cs);
    eb_schedule_free(&s);
    eb_model_free(m);
}

#if defined(__SANITIZE_ADDRESS__)
#define HEAP_COUNTS 0 /* ASan's allocator does not feed mallinfo2 */
#else
#define HEAP_COUNTS 1
#endif

/* What the heap holds after each step of the second of two TaylorSeer trajectories (the first warms up:
 * on first use the CUDA backend loads kernels lazily and builds a GEMM plan per shape, once per process,
 * in host memory). 0, or 1 with a message in r->msg. Runs in a child process: no Criterion calls. */
typedef struct {
    int failed;
    size_t in_use[10];
    char msg[512];
} heap_steps;

static void measure_heap_steps(heap_steps *r) {
    eb_model *m = golden_model("tiny_sigma.safetensors", 0); /* asserts only on a failure: see the caller */
    eb_schedule s;
    eb_cache_schedule *cs;
    if (eb_schedule_create(&s, "10") || eb_cache_schedule_taylorseer(&cs, &s, 2, 2, 2)) {
        r->failed = 1, snprintf(r->msg, sizeof r->msg, "%s", eb_last_error());
        return;
    }
    enum { N = 2, PER = 4 * 8 * 8 };
    float x[N * PER], out[N * 2 * PER];
    int32_t t[N], y[N] = {1, 2};
    eb_rng_fill_normal(x, N * PER, eb_rng_key(5, 0));
    for (int run = 0; run < 2 && !r->failed; run++) {
        eb_cache *cache;
        if (eb_cache_create(&cache, m, cs, &s, 2 * N)) {
            r->failed = 1, snprintf(r->msg, sizeof r->msg, "%s", eb_last_error());
            break;
        }
        for (int k = 0; k < 10 && !r->failed; k++) {
            t[0] = t[1] = s.timestep[9 - k];
            if (eb_forward_run(m, cache, k, out, x, t, y, N, 1, 1.5f, 3))
                r->failed = 1, snprintf(r->msg, sizeof r->msg, "step %d: %s", k, eb_last_error());
            r->in_use[k] = mallinfo2().uordblks;
        }
        eb_cache_free(cache);
    }
    eb_cache_schedule_free(cs);
    eb_schedule_free(&s);
    eb_model_free(m);
}

/* The heap is counted in a child process: Criterion's worker runs a thread of its own (its message
 * transport), whose mallocs and frees land in mallinfo2 whenever the scheduler runs it, on a loaded
 * machine between two steps. fork copies only the calling thread; nothing has started OpenMP in this
 * process yet (libgomp's team would not survive the fork), so the child's heap moves with the
 * library's work alone. alarm: a child that hangs (a failed assertion in golden_model) fails the test. */
Test(cache, steps_allocate_nothing) {
    if (HEAP_COUNTS) {
        int fds[2];
        cr_assert_eq(pipe(fds), 0);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
            close(fds[0]);
            alarm(300);
            heap_steps r = {0};
            measure_heap_steps(&r);
            _exit(write(fds[1], &r, sizeof r) == (ssize_t)sizeof r ? 0 : 1);
        }
        close(fds[1]);
        heap_steps r = {0};
        ssize_t got = read(fds[0], &r, sizeof r);
        close(fds[0]);
        int status;
        waitpid(pid, &status, 0);
        cr_assert(got == (ssize_t)sizeof r && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "the measuring child failed (status %d)", status);
        cr_assert(!r.failed, "%s", r.msg);
        for (int k = 2; k < 10; k++)
            cr_expect_eq(r.in_use[k], r.in_use[1], "step %d: heap in use %zu, after step 1 %zu", k, r.in_use[k],
                         r.in_use[1]);
    }
    /* steps out of order or with another batch are refused */
    eb_model *m = golden_model("tiny_sigma.safetensors", 0);
    eb_schedule s;
    cr_assert_eq(eb_schedule_create(&s, "10"), EB_OK);
    eb_cache_schedule *cs;
    cr_assert_eq(eb_cache_schedule_taylorseer(&cs, &s, 2, 2, 2), EB_OK);
    enum { N = 2, PER = 4 * 8 * 8 };
    float x[N * PER], out[N * 2 * PER];
    int32_t t[N] = {s.timestep[9], s.timestep[9]}, y[N] = {1, 2};
    eb_rng_fill_normal(x, N * PER, eb_rng_key(5, 0));
    eb_cache *cache;
    cr_assert_eq(eb_cache_create(&cache, m, cs, &s, 2 * N), EB_OK);
    cr_expect_eq(eb_forward_run(m, cache, 0, out, x, t, y, N, 1, 1.5f, 3), EB_OK, "%s", eb_last_error());
    cr_expect_eq(eb_forward_run(m, cache, 3, out, x, t, y, N, 1, 1.5f, 3), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "out of order"), "%s", eb_last_error());
    eb_cache_free(cache);
    cr_assert_eq(eb_cache_create(&cache, m, cs, &s, 2 * N), EB_OK);
    cr_expect_eq(eb_forward_run(m, cache, 0, out, x, t, y, N, 0, 1.0f, 3), EB_OK);
    cr_expect_eq(eb_forward_run(m, cache, 1, out, x, t, y, N, 1, 1.5f, 3), EB_EINPUT, "batch changed mid-trajectory");
    eb_cache_free(cache);
    eb_cache_schedule_free(cs);
    eb_schedule_free(&s);
    eb_model_free(m);
}

/* A chain driven step by step (chain.h) — each step evaluated first under the
 * other states from a saved cache state, then under the chosen one — gives the
 * bits of eb_sample_cached with the table of the chosen states. */
Test(cache, stepwise_candidates_equal_the_table) {
    eb_model *m = golden_model("tiny_sigma.safetensors", 0);
    eb_schedule s;
    cr_assert_eq(eb_schedule_create(&s, "10"), EB_OK);
    const eb_sampler_opts o = {.kind = EB_SAMPLER_DDPM, .var_type = EB_VAR_LEARNED_RANGE, .cfg_scale = 1.5f,
                               .guide_channels = 3, .seed = 9};
    enum { N = 2 };
    const int S = s.S, chosen[10] = {0, 2, 0, 1, 1, 2, 0, 2, 1, 0};
    const eb_act C = {EB_ACT_COMPUTE, 0}, R = {EB_ACT_REUSE, 0};
    eb_cache_schedule *tables[3], *want;
    eb_cache_plan plans[3];
    for (int t = 0; t < 3; t++) { /* state t at every step but the first; 1 reuses the MLP */
        cr_assert_eq(eb_cache_schedule_new(&tables[t], &s, "test", ""), EB_OK);
        for (int k = 0; k < S; k++)
            cr_assert_eq(eb_cache_schedule_add(tables[t], &s, k, 0, -1, k && t == 2 ? R : C, k && t ? R : C,
                                               1.0f + 0.01f * t * k), EB_OK, "%s", eb_last_error());
        cr_assert_eq(eb_cache_plan_build(&plans[t], tables[t], m->cfg.depth, &s), EB_OK, "%s", eb_last_error());
    }
    cr_assert_eq(eb_cache_schedule_new(&want, &s, "test", ""), EB_OK);
    for (int k = 0; k < S; k++) {
        int t = chosen[k];
        eb_cache_schedule_add(want, &s, k, 0, -1, t == 2 ? R : C, t ? R : C, 1.0f + 0.01f * t * k);
    }
    size_t per = (size_t)m->cfg.in_channels * m->cfg.input_size * m->cfg.input_size;
    float *x = malloc(N * per * sizeof *x), *x_table = malloc(N * per * sizeof *x);
    int32_t y[N] = {3, 7};
    eb_rng_fill_normal(x, N * per, eb_rng_key(9, 1));
    memcpy(x_table, x, N * per * sizeof *x);
    cr_assert_eq(eb_sample_cached(m, &s, &o, want, x_table, y, N, 0, NULL), EB_OK, "%s", eb_last_error());

    eb_cache *cache;
    eb_chain *chain;
    cr_assert_eq(eb_cache_create(&cache, m, tables[2], &s, 2 * N), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_chain_create(&chain, m, &s, &o, cache, N, 0), EB_OK, "%s", eb_last_error());
    for (int k = 0; k < S; k++) {
        cr_assert_eq(eb_cache_save(cache), EB_OK);
        for (int t = 0; t < 3; t++) { /* the other states first, from the saved state */
            eb_cache_restore(cache);
            cr_assert_eq(eb_cache_use_step(cache, k, &plans[t]), EB_OK, "%s", eb_last_error());
            cr_assert_eq(eb_chain_eval(chain, k, x, y), EB_OK, "%s", eb_last_error());
        }
        eb_cache_restore(cache);
        cr_assert_eq(eb_cache_use_step(cache, k, &plans[chosen[k]]), EB_OK);
        cr_assert_eq(eb_chain_eval(chain, k, x, y), EB_OK);
        eb_chain_advance(chain, k, x);
    }
    cr_expect_arr_eq(x, x_table, N * per * sizeof *x, "the stepwise chain differs from the table's");
    free(x), free(x_table);
    /* a plan of another length is refused */
    eb_schedule s8;
    cr_assert_eq(eb_schedule_create(&s8, "8"), EB_OK);
    eb_cache_plan other;
    cr_assert_eq(eb_cache_plan_build(&other, tables[0], m->cfg.depth, NULL), EB_OK);
    other.S = 8;
    cr_expect_eq(eb_cache_use_step(cache, 1, &other), EB_EINPUT);
    other.S = S;
    eb_cache_plan_free(&other);
    eb_schedule_free(&s8);
    eb_chain_free(chain);
    eb_cache_free(cache);
    for (int t = 0; t < 3; t++) eb_cache_plan_free(&plans[t]), eb_cache_schedule_free(tables[t]);
    eb_cache_schedule_free(want);
    eb_schedule_free(&s);
    eb_model_free(m);
}
