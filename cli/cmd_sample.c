/* cmd_sample.c — `ebcache sample`: DDPM / DDIM sampling with guidance. */
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/common.h"

#include "runtime/ebcache.h"
#include "runtime/h5io.h"
#include "runtime/schedule.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Samples N rows in batches of `batch` (cs NULL: uncached); *wall gets the seconds taken. */
static eb_status sample_batches(eb_model *m, const eb_schedule *s, const eb_sampler_opts *so,
                                const eb_cache_schedule *cs, float *x, const int32_t *y, int N, int batch,
                                eb_cache_stats *stats, double *wall) {
    const eb_config *c = eb_model_config(m);
    size_t per = (size_t)c->in_channels * c->input_size * c->input_size;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    eb_status st = EB_OK;
    for (int first = 0; !st && first < N; first += batch) {
        int b = N - first < batch ? N - first : batch;
        st = eb_sample_cached(m, s, so, cs, x + first * per, y + first, b, first, stats);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    *wall = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
    return st;
}

/* What the schedule cost and saved: FLOP fraction and speedup, cache memory,
 * and with a baseline run the measured speedup. */
static void report_cache(const char *table, const eb_cache_schedule *cs, const eb_cache_stats *st, double base_wall,
                         double wall) {
    double fraction = st->macs / st->macs_uncached;
    fprintf(stderr, "schedule %s: executed %.1f%% of the uncached MACs (FLOP speedup %.2fx), cache %zu bytes", table,
            100 * fraction, 1 / fraction, st->cache_bytes);
    if (cs->policy.kind != EB_POLICY_NONE)
        fprintf(stderr, ", %d of %d steps served by the policy", st->steps_skipped, st->steps);
    if (base_wall > 0)
        fprintf(stderr, "\nwall %.2f s, uncached %.2f s: measured speedup %.2fx (%.2f of the FLOP speedup)\n", wall,
                base_wall, base_wall / wall, base_wall / wall * fraction);
    else
        fprintf(stderr, "\nwall %.2f s (--baseline also times the uncached run for the measured speedup)\n", wall);
}

static void write_cache_attrs(eb_h5w *w, const char *table, const eb_cache_schedule *cs, const eb_cache_stats *st,
                              double base_wall, double wall) {
    eb_h5w_attr_str(w, NULL, "schedule", table);
    if (cs->method[0]) eb_h5w_attr_str(w, NULL, "schedule_method", cs->method);
    eb_h5w_attr_f64(w, NULL, "flop_fraction", st->macs / st->macs_uncached);
    eb_h5w_attr_i64(w, NULL, "cache_bytes", (int64_t)st->cache_bytes);
    eb_h5w_attr_i64(w, NULL, "steps_skipped", st->steps_skipped);
    if (base_wall > 0) {
        eb_h5w_attr_f64(w, NULL, "baseline_wall_seconds", base_wall);
        eb_h5w_attr_f64(w, NULL, "measured_speedup", base_wall / wall);
    }
}

int cmd_sample(int argc, char **argv) {
    eb_opt opts[] = {
        EB_CLI_SAMPLER_OPTS,
        {"noise", "IN.h5", "start from datasets noise (N,C,H,W) = x_T and y (N)", NULL},
        {"seed", "K", "noise seed (default 0); x_T too unless --noise", NULL},
        {"labels", "L1,L2,...", "one sample per label", NULL},
        {"n", "N", "N samples with labels 0,1,2,... cycling over the classes", NULL},
        {"batch", "B", "samples per model batch (default 32); keep it fixed to reproduce bits", NULL},
        {"output", "OUT.h5", "gets samples (N,C,H,W), y (N) and the settings as attributes", NULL},
        {"threads", "N", "threads (default: all cores)", NULL},
        EB_CLI_DEVICE_OPTS,
        {"schedule", "TABLE", "run a cache schedule table (docs/schedule.md) and report its cost", NULL},
        {"baseline", NULL, "with --schedule: also sample uncached first and report the measured speedup", NULL},
    };
    const int n = sizeof opts / sizeof opts[0];
    int rc = eb_args_parse(argc, argv, opts, n,
                           "usage: ebcache sample [--model PATH] [--sampler ddpm|ddim] [--steps N | --respacing SPEC]\n"
                           "                      [--eta E] [--cfg-scale S] (--noise IN.h5 | [--seed K] (--labels L1,L2,... | "
                           "--n N))\n"
                           "                      [--batch B] [--schedule TABLE [--baseline]] --output OUT.h5");
    if (rc) return rc < 0 ? 0 : rc;
    const char *out_path = eb_arg(opts, n, "output");
    if (!out_path) {
        fprintf(stderr, "ebcache sample: --output is required (see --help)\n");
        return 2;
    }
    if ((rc = eb_output_check("sample", out_path, EB_INPUTS(eb_arg(opts, n, "noise"), eb_arg(opts, n, "schedule"),
                                                             eb_model_input(opts, n)))))
        return rc;
    const char *sampler = eb_arg(opts, n, "sampler"), *variance = eb_arg(opts, n, "variance");
    const char *table = eb_arg(opts, n, "schedule");
    if (eb_arg(opts, n, "baseline") && !table) {
        fprintf(stderr, "ebcache sample: --baseline needs --schedule TABLE\n");
        return 2;
    }
    if (sampler && strcmp(sampler, "ddpm") && strcmp(sampler, "ddim")) {
        fprintf(stderr, "ebcache sample: --sampler: '%s' is not ddpm or ddim\n", sampler);
        return 2;
    }
    if (variance && strcmp(variance, "small") && strcmp(variance, "large")) {
        fprintf(stderr, "ebcache sample: --variance: '%s' is not small or large\n", variance);
        return 2;
    }
    long steps = 50, batch = 32;
    double eta = 0.0;
    uint64_t seed = 0;
    const char *v;
    if ((v = eb_arg(opts, n, "steps")) && (rc = eb_arg_int("sample", "steps", v, 2, EB_DIFFUSION_STEPS, &steps))) return rc;
    if ((v = eb_arg(opts, n, "batch")) && (rc = eb_arg_int("sample", "batch", v, 1, 1 << 16, &batch))) return rc;
    if ((v = eb_arg(opts, n, "eta")) && (rc = eb_arg_float("sample", "eta", v, &eta))) return rc;
    if ((v = eb_arg(opts, n, "seed")) && (rc = eb_arg_u64("sample", "seed", v, &seed))) return rc;
    eb_arg_default(opts, n, "cfg-scale", "1.5");
    char respacing[32];
    snprintf(respacing, sizeof respacing, "%ld", steps);
    const char *spacing = eb_arg(opts, n, "respacing") ? eb_arg(opts, n, "respacing") : respacing;

    eb_model *m = NULL;
    eb_cli_run run;
    if ((rc = eb_cli_open_model("sample", opts, n, &m, &run))) return rc;
    const eb_config *c = eb_model_config(m);
    eb_schedule sched = {0};
    eb_sampler_opts so = {
        .kind = sampler && !strcmp(sampler, "ddim") ? EB_SAMPLER_DDIM : EB_SAMPLER_DDPM,
        .var_type = c->learn_sigma ? EB_VAR_LEARNED_RANGE
                    : variance && !strcmp(variance, "small") ? EB_VAR_FIXED_SMALL : EB_VAR_FIXED_LARGE,
        .eta = (float)eta, .cfg_scale = run.cfg_scale, .guide_channels = run.guide_channels, .seed = seed,
        .progress = 1,
    };
    float *x = NULL;
    int32_t *y = NULL;
    int N = 0;
    eb_cache_schedule *cs = NULL;
    eb_cache_stats stats = {0};
    double base_wall = 0, wall = 0;
    eb_status st = eb_schedule_create(&sched, spacing);
    if (!st && table) st = eb_cache_schedule_read(&cs, table);
    if (!st && cs) st = eb_cli_check_table("sample", table, cs, c, &sched, so.kind == EB_SAMPLER_DDIM ? "ddim" : "ddpm",
                                           spacing);
    if (!st && (rc = eb_cli_load_start("sample", opts, n, c, seed, &x, &y, &N))) goto done;
    size_t per = (size_t)c->in_channels * c->input_size * c->input_size;
    /* the baseline runs second, on a copy of x_T: warm-up costs fall on the cached run */
    float *copy = NULL;
    if (!st && eb_arg(opts, n, "baseline")) {
        if (!(copy = malloc((size_t)N * per * sizeof(float)))) st = eb_fail(EB_ERUNTIME, "out of memory");
        else memcpy(copy, x, (size_t)N * per * sizeof(float));
    }
    if (!st) st = sample_batches(m, &sched, &so, cs, x, y, N, (int)batch, &stats, &wall);
    if (!st && copy) st = sample_batches(m, &sched, &so, NULL, copy, y, N, (int)batch, NULL, &base_wall);
    free(copy);
    if (!st) {
        eb_h5w *w = NULL;
        int64_t xd[4] = {N, c->in_channels, c->input_size, c->input_size}, yd[1] = {N};
        st = eb_h5w_create(&w, out_path);
        if (!st) {
            eb_h5w_write(w, "samples", EB_H5_F32, x, 4, xd);
            eb_h5w_write(w, "y", EB_H5_I32, y, 1, yd);
            eb_cli_write_run_attrs(w, &run, m);
            eb_h5w_attr_str(w, NULL, "sampler", so.kind == EB_SAMPLER_DDIM ? "ddim" : "ddpm");
            eb_h5w_attr_str(w, NULL, "respacing", spacing);
            eb_h5w_attr_i64(w, NULL, "steps", sched.S);
            eb_h5w_attr_f64(w, NULL, "eta", so.eta);
            eb_h5w_attr_str(w, NULL, "variance", so.var_type == EB_VAR_LEARNED_RANGE ? "learned_range"
                                                 : so.var_type == EB_VAR_FIXED_SMALL ? "fixed_small" : "fixed_large");
            eb_h5w_attr_i64(w, NULL, "seed", (int64_t)seed);
            eb_h5w_attr_str(w, NULL, "start", eb_arg(opts, n, "noise") ? eb_arg(opts, n, "noise") : "seed");
            eb_h5w_attr_f64(w, NULL, "wall_seconds", wall);
            if (cs) write_cache_attrs(w, table, cs, &stats, base_wall, wall);
            st = eb_h5w_commit(w);
        }
        if (!st)
            fprintf(stderr, "sampled %d %s, %d steps, %.2f s (%.3f s per image)\n", N, eb_plural(N, "image", "images"),
                    sched.S, wall, wall / N);
        if (!st && cs) report_cache(table, cs, &stats, base_wall, wall);
    }
    rc = eb_report("sample", st);
done:
    free(x);
    free(y);
    eb_schedule_free(&sched);
    eb_cache_schedule_free(cs);
    eb_model_free(m);
    return rc;
}
