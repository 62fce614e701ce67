/* cmd_record.c — `ebcache record`: sampling with per-step statistics
 * (analyze/record.h) written to one HDF5 file (docs/recording.md). */
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/common.h"

#include "runtime/ebcache.h"
#include "train/fmnist.h"
#include "runtime/h5io.h"
#include "runtime/readfile.h"
#include "analyze/record.h"
#include "runtime/schedule.h"
#include "analyze/sha256.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CMD "record"
#define MAX_TABLE_TEXT (16 << 20)

/* An interrupted run leaves no temporary file; the default action then ends the process. */
static void on_signal(int sig) {
    eb_h5w_remove_temps();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* The data x0 (n ≥ N rows kept: the first N) and its labels (NULL when the file has none). */
static eb_status load_data(const char *spec, const eb_config *c, int N, float **x0, int32_t **y0) {
    *x0 = NULL, *y0 = NULL;
    if (!strcmp(spec, "fmnist")) {
        if (c->in_channels != 1 || c->input_size < 28)
            return eb_fail(EB_EINPUT, "--data fmnist needs a 1-channel model of side >= 28 (this one: %d channel%s, %d)",
                           c->in_channels, c->in_channels == 1 ? "" : "s", c->input_size);
        eb_fmnist d;
        eb_status st = eb_fmnist_load(&d, getenv("EBCACHE_FMNIST_DIR"), "t10k", N, c->input_size);
        if (st) return st;
        if (d.n < N) {
            eb_fmnist_free(&d);
            return eb_fail(EB_EINPUT, "--data fmnist: the test split has %d image%s, %d asked for", d.n,
                           d.n == 1 ? "" : "s", N);
        }
        *x0 = d.images, *y0 = d.labels;
        return EB_OK;
    }
    eb_h5 *f;
    int64_t dims[4], want[4] = {EB_H5_ANY, c->in_channels, c->input_size, c->input_size};
    eb_status st = eb_h5_open(&f, spec);
    if (!st) st = eb_h5_read_f32(f, "x0", 4, want, x0, dims, EB_H5_FINITE);
    if (!st && dims[0] < N)
        st = eb_fail(EB_EINPUT, "%s: dataset 'x0' has %lld row%s, %d sample%s asked for", spec, (long long)dims[0],
                     dims[0] == 1 ? "" : "s", N, N == 1 ? "" : "s");
    if (!st && eb_h5_lookup(f, "y") == EB_H5_DATASET) {
        int64_t want_y[1] = {dims[0]}, yd[1];
        st = eb_h5_read_i32(f, "y", 1, want_y, y0, yd);
    }
    eb_h5_close(f);
    if (st) free(*x0), free(*y0), *x0 = NULL, *y0 = NULL;
    return st;
}

/* "STEPS:BLOCKS", comma lists; "all" for every step or block. Returns an exit status. */
static int parse_dump(const char *v, int S, int L, int32_t **steps, int32_t **blocks, eb_record_dump *d) {
    const char *colon = strchr(v, ':');
    if (!colon || colon == v || !colon[1]) {
        fprintf(stderr, "ebcache " CMD ": --dump-features: '%s' is not STEPS:BLOCKS (e.g. 10,20:0,3)\n", v);
        return 2;
    }
    char left[256];
    snprintf(left, sizeof left, "%.*s", (int)(colon - v), v);
    const char *parts[2] = {left, colon + 1};
    int32_t **out[2] = {steps, blocks};
    int *count[2] = {&d->nsteps, &d->nblocks}, limit[2] = {S, L};
    for (int k = 0; k < 2; k++) {
        if (!strcmp(parts[k], "all")) {
            if (!(*out[k] = malloc(limit[k] * sizeof(int32_t)))) return 1;
            for (int i = 0; i < limit[k]; i++) (*out[k])[i] = i;
            *count[k] = limit[k];
        } else {
            int rc = eb_arg_int_list(CMD, "dump-features", parts[k], 0, limit[k] - 1, out[k], count[k]);
            if (rc) return rc;
        }
    }
    d->steps = *steps, d->blocks = *blocks;
    return 0;
}

static void write_attrs(eb_h5w *w, const eb_opt *opts, int n, const eb_cli_run *run, const eb_model *m,
                        const eb_record_opts *o, const char *spacing, const char *sha, const char *table_text,
                        double wall) {
    const char *data = eb_arg(opts, n, "data"), *table = eb_arg(opts, n, "schedule");
    eb_cli_write_run_attrs(w, run, m);
    eb_h5w_attr_str(w, NULL, "model_sha256", sha);
    eb_h5w_attr_str(w, NULL, "sampler", o->so.kind == EB_SAMPLER_DDIM ? "ddim" : "ddpm");
    eb_h5w_attr_str(w, NULL, "respacing", spacing);
    eb_h5w_attr_f64(w, NULL, "eta", o->so.eta);
    eb_h5w_attr_str(w, NULL, "variance", o->so.var_type == EB_VAR_LEARNED_RANGE ? "learned_range"
                                         : o->so.var_type == EB_VAR_FIXED_SMALL ? "fixed_small" : "fixed_large");
    eb_h5w_attr_i64(w, NULL, "seed", (int64_t)o->so.seed);
    eb_h5w_attr_str(w, NULL, "start", eb_arg(opts, n, "noise") ? eb_arg(opts, n, "noise") : "seed");
    eb_h5w_attr_str(w, NULL, "data", data ? data : "");
    eb_h5w_attr_str(w, NULL, "schedule", table ? table : "");
    eb_h5w_attr_str(w, NULL, "schedule_text", table_text ? table_text : "");
    if (o->cache && o->cache->method[0]) eb_h5w_attr_str(w, NULL, "schedule_method", o->cache->method);
    eb_h5w_attr_i64(w, NULL, "batch", o->batch);
    eb_h5w_attr_f64(w, NULL, "wall_seconds", wall);
}

int cmd_record(int argc, char **argv) {
    eb_opt opts[] = {
        EB_CLI_SAMPLER_OPTS,
        {"noise", "IN.h5", "x_T (or the noise z with --data) from datasets noise (N,C,H,W) and y (N)", NULL},
        {"seed", "K", "noise seed (default 0); x_T too unless --noise", NULL},
        {"labels", "L1,L2,...", "one sample per label", NULL},
        {"n", "N", "N samples; labels from the data, else 0,1,2,... cycling over the classes", NULL},
        {"batch", "B", "samples per model batch (default 32); statistics are sums over all batches", NULL},
        {"output", "REC.h5", "the recording (docs/recording.md)", NULL},
        {"threads", "N", "threads (default: all cores)", NULL},
        EB_CLI_DEVICE_OPTS,
        {"schedule", "TABLE", "record a cached run; an uncached chain with the same noise runs alongside", NULL},
        {"data", "fmnist|X0.h5", "known x0: Fashion-MNIST test images, or dataset x0 (N,C,H,W) [and y]", NULL},
        {"start-step", "K", "with --data: chains start from q(x_t | x0) at step K (default 0)", NULL},
        {"dump-features", "STEPS:BLOCKS", "full pre-gate features of the first batch, e.g. 10,20:0,3 or all:0", NULL},
        {"no-eps-q", NULL, "skip the second pass for /eps/norm_q (one more forward per step)", NULL},
    };
    const int n = sizeof opts / sizeof opts[0];
    int rc = eb_args_parse(argc, argv, opts, n,
                           "usage: ebcache record [--model PATH] [--sampler ddpm|ddim] [--steps N] [--cfg-scale S]\n"
                           "                      (--noise IN.h5 | [--seed K] (--labels L1,L2,... | --n N))\n"
                           "                      [--schedule TABLE] [--data fmnist|X0.h5 [--start-step K]]\n"
                           "                      [--dump-features STEPS:BLOCKS] --output REC.h5");
    if (rc) return rc < 0 ? 0 : rc;
    const char *out_path = eb_arg(opts, n, "output"), *sampler = eb_arg(opts, n, "sampler");
    const char *variance = eb_arg(opts, n, "variance"), *table = eb_arg(opts, n, "schedule");
    const char *data = eb_arg(opts, n, "data"), *v;
    if (!out_path) {
        fprintf(stderr, "ebcache " CMD ": --output is required (see --help)\n");
        return 2;
    }
    if ((rc = eb_output_check(CMD, out_path, EB_INPUTS(eb_arg(opts, n, "noise"), table, data, eb_model_input(opts, n))))) return rc;
    if (sampler && strcmp(sampler, "ddpm") && strcmp(sampler, "ddim")) {
        fprintf(stderr, "ebcache " CMD ": --sampler: '%s' is not ddpm or ddim\n", sampler);
        return 2;
    }
    if (variance && strcmp(variance, "small") && strcmp(variance, "large")) {
        fprintf(stderr, "ebcache " CMD ": --variance: '%s' is not small or large\n", variance);
        return 2;
    }
    if (eb_arg(opts, n, "start-step") && !data) {
        fprintf(stderr, "ebcache " CMD ": --start-step needs --data (chains start from q(x_t | x0))\n");
        return 2;
    }
    long steps = 50, batch = 32, start_step = 0;
    double eta = 0.0;
    uint64_t seed = 0;
    if ((v = eb_arg(opts, n, "steps")) && (rc = eb_arg_int(CMD, "steps", v, 2, EB_DIFFUSION_STEPS, &steps))) return rc;
    if ((v = eb_arg(opts, n, "batch")) && (rc = eb_arg_int(CMD, "batch", v, 1, 1 << 16, &batch))) return rc;
    if ((v = eb_arg(opts, n, "eta")) && (rc = eb_arg_float(CMD, "eta", v, &eta))) return rc;
    if ((v = eb_arg(opts, n, "seed")) && (rc = eb_arg_u64(CMD, "seed", v, &seed))) return rc;
    if ((v = eb_arg(opts, n, "start-step")) &&
        (rc = eb_arg_int(CMD, "start-step", v, 0, EB_DIFFUSION_STEPS - 1, &start_step)))
        return rc;
    if (data && start_step == 0) /* x̂_T = √ᾱ_T x0 + ... keeps almost nothing of x0 (ᾱ_T ≈ 4e-5 on the linear schedule) */
        fprintf(stderr, "ebcache " CMD ": warning: --data from step 0: the chains start from almost pure noise, so "
                        "/snr/data and /exposure/var_ratio compare them with an x0 they cannot know; "
                        "--start-step K > 0 starts them from noised data (docs/recording.md)\n");
    eb_arg_default(opts, n, "cfg-scale", "1.5");
    char respacing[32];
    snprintf(respacing, sizeof respacing, "%ld", steps);
    const char *spacing = eb_arg(opts, n, "respacing") ? eb_arg(opts, n, "respacing") : respacing;

    eb_model *m = NULL;
    eb_cli_run run;
    if ((rc = eb_cli_open_model(CMD, opts, n, &m, &run))) return rc;
    const eb_config *c = eb_model_config(m);
    eb_schedule sched = {0};
    eb_cache_schedule *cs = NULL;
    float *xT = NULL, *x0 = NULL;
    int32_t *y = NULL, *dump_steps = NULL, *dump_blocks = NULL;
    char *table_text = NULL, sha[EB_SHA256_HEX];
    int N = 0;
    eb_record_opts o = {
        .sched = &sched,
        .so = {.kind = sampler && !strcmp(sampler, "ddim") ? EB_SAMPLER_DDIM : EB_SAMPLER_DDPM,
               .var_type = c->learn_sigma ? EB_VAR_LEARNED_RANGE
                           : variance && !strcmp(variance, "small") ? EB_VAR_FIXED_SMALL : EB_VAR_FIXED_LARGE,
               .eta = (float)eta, .cfg_scale = run.cfg_scale, .guide_channels = run.guide_channels, .seed = seed,
               .progress = 1},
        .start_step = (int)start_step,
        .batch = (int)batch,
        .eps_q = !eb_arg(opts, n, "no-eps-q"),
    };
    eb_status st = eb_schedule_create(&sched, spacing);
    if (!st) st = eb_sha256_file(run.model_path, sha);
    if (!st && table) st = eb_cache_schedule_read(&cs, table);
    if (!st && cs) st = eb_cli_check_table("record", table, cs, c, &sched, o.so.kind == EB_SAMPLER_DDIM ? "ddim" : "ddpm",
                                           spacing);
    size_t table_bytes;
    if (!st && table) st = eb_read_file(table, MAX_TABLE_TEXT, &table_text, &table_bytes); /* for the attribute */
    o.cache = cs;
    if (st) goto report;
    if ((v = eb_arg(opts, n, "dump-features")) &&
        (rc = parse_dump(v, sched.S, c->depth, &dump_steps, &dump_blocks, &o.dump)))
        goto done;
    if ((rc = eb_cli_load_start(CMD, opts, n, c, seed, &xT, &y, &N))) goto done;
    if (data) { /* data labels replace the cycling default of --n */
        int32_t *y0 = NULL;
        if ((st = load_data(data, c, N, &x0, &y0))) goto report;
        if (y0 && eb_arg(opts, n, "n")) memcpy(y, y0, N * sizeof(int32_t));
        free(y0);
    }
    o.x0 = x0;

    struct sigaction sa = {.sa_handler = on_signal}, old_int, old_term;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    eb_h5w *w = NULL;
    eb_recording rec = {0};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    st = eb_h5w_create(&w, out_path);
    if (!st) st = eb_record_run(m, &o, xT, y, N, &rec, w);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double wall = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
    if (!st) {
        st = eb_recording_write(&rec, w);
        int64_t yd[1] = {N}; /* the labels, so `search` can replay the run */
        if (!st) st = eb_h5w_write(w, "/y", EB_H5_I32, y, 1, yd);
        write_attrs(w, opts, n, &run, m, &o, spacing, sha, table_text, wall);
        st = st ? (eb_h5w_abort(w), st) : eb_h5w_commit(w);
    } else {
        eb_h5w_abort(w);
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (!st) {
        fprintf(stderr, "recorded %d sample%s, steps %d..%d of %d, %.2f s", N, N == 1 ? "" : "s", rec.start_step,
                rec.S - 1, rec.S, wall);
        if (cs) fprintf(stderr, ", schedule at %.1f%% of the uncached MACs", 100 * rec.macs / rec.macs_uncached);
        fprintf(stderr, " -> %s\n", out_path);
    }
    eb_recording_free(&rec);
report:
    rc = eb_report(CMD, st);
done:
    free(xT), free(x0), free(y), free(dump_steps), free(dump_blocks), free(table_text);
    eb_schedule_free(&sched);
    eb_cache_schedule_free(cs);
    eb_model_free(m);
    return rc;
}
