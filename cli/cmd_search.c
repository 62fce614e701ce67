/* cmd_search.c — `ebcache search`: a cache schedule for a recording (search/search.h,
 * docs/search.md). eb-cache's calibration chains replay the recording's own
 * run (its model, sampler, noise and labels, from the file's attributes) step
 * by step through runtime/chain.h, each step evaluated in three states. */
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/common.h"

#include "runtime/chain.h"
#include "runtime/h5io.h"
#include "analyze/record.h"
#include "search/search.h"
#include "analyze/sha256.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CMD "search"

/* ------------------------------------------------------------------------ */
/* Replaying the recorded run for eb-cache's calibration chains              */

typedef struct {
    eb_model *m;
    eb_schedule sched;
    eb_record_opts o;
    float *x_T;  /* (N, C, H, W) */
    int32_t *y;  /* (N)          */
    int N;
    double start;      /* monotonic seconds at the first chain's first step, for the ETA */
    long steps_done;   /* chain steps evaluated so far                                  */
} replay;

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* "eb-cache search: chain 2/10, step 7/50 (ETA …)": the ETA extrapolates the
 * steps done to the planned chains' remaining steps (attempts that stop early
 * make it an upper bound). */
static void show_progress(replay *r, const eb_search_progress *pg, int k) {
    const int S = r->sched.S;
    if (!r->steps_done++) r->start = now_s();
    long left = (long)(pg->planned - pg->chain) * S + (S - 1 - k);
    char eta[48];
    eb_cli_eta_text(eta, sizeof eta, (now_s() - r->start) / r->steps_done * left);
    fprintf(stderr, "\r\033[Keb-cache search: chain %d/%d, step %d/%d%s", pg->chain, pg->planned, k + 1, S, eta);
}

static void replay_free(replay *r) {
    eb_model_free(r->m);
    eb_schedule_free(&r->sched);
    free(r->x_T), free(r->y);
    memset(r, 0, sizeof *r);
}

/* A string attribute into buf ("" when absent). */
static eb_status attr_text(eb_h5 *f, const char *name, char *buf, size_t size) {
    buf[0] = 0;
    if (!eb_h5_has_attr(f, NULL, name)) return EB_OK;
    char *s;
    eb_status st = eb_h5_attr_str(f, NULL, name, &s);
    if (!st) snprintf(buf, size, "%s", s), free(s);
    return st;
}

/* x_T and labels: from the noise file the recording started from, or from
 * the seed with the labels the recording stores (/y). */
static eb_status replay_start(replay *r, eb_h5 *f, const char *start, uint64_t seed) {
    const eb_config *c = eb_model_config(r->m);
    const char *path = eb_h5_path(f);
    size_t per = (size_t)c->in_channels * c->input_size * c->input_size;
    int64_t d[4], want_y[1] = {r->N};
    if (strcmp(start, "seed")) {
        eb_h5 *nf;
        int64_t want_x[4] = {r->N, c->in_channels, c->input_size, c->input_size};
        eb_status st = eb_h5_open(&nf, start);
        if (!st) st = eb_h5_read_f32(nf, "noise", 4, want_x, &r->x_T, d, EB_H5_FINITE);
        if (!st) st = eb_h5_read_i32(nf, "y", 1, want_y, &r->y, d);
        eb_h5_close(nf);
        return st;
    }
    if (eb_h5_lookup(f, "/y") != EB_H5_DATASET)
        return eb_fail(EB_EINPUT, "%s: the recording started from --seed but does not store its labels (/y); "
                                  "eb-cache's calibration chains need them: record with --noise IN.h5", path);
    eb_status st = eb_h5_read_i32(f, "/y", 1, want_y, &r->y, d);
    if (!st && !(r->x_T = malloc(r->N * per * sizeof *r->x_T))) st = eb_fail(EB_ERUNTIME, "out of memory");
    for (int i = 0; !st && i < r->N; i++) eb_rng_fill_normal(r->x_T + i * per, per, eb_rng_key(seed, eb_stream_xT(i)));
    return st;
}

/* The recorded run's settings, model, noise and labels. */
static eb_status replay_open(replay *r, const eb_rec_data *rec) {
    memset(r, 0, sizeof *r);
    eb_h5 *f;
    eb_status st = eb_h5_open(&f, rec->path);
    if (st) return st;
    char model[1024], sha[EB_SHA256_HEX], want_sha[EB_SHA256_HEX], sampler[16], respacing[64], variance[32],
        start[1024], data[1024];
    double cfg_scale = 1, eta = 0;
    int64_t channels = 0, seed = 0, batch = 0, heads = 0;
    const char *missing = NULL;
    const char *need[] = {"model", "model_sha256", "sampler", "respacing", "cfg_scale", "cfg_channels", "seed", "start"};
    for (size_t k = 0; !missing && k < sizeof need / sizeof need[0]; k++)
        if (!eb_h5_has_attr(f, NULL, need[k])) missing = need[k];
    if (missing)
        st = eb_fail(EB_EINPUT, "%s: no root attribute '%s': eb-cache's calibration chains replay the recorded run "
                                "(record it with ebcache record)", rec->path, missing);
    if (!st) st = attr_text(f, "model", model, sizeof model);
    if (!st) st = attr_text(f, "model_sha256", want_sha, sizeof want_sha);
    if (!st) st = attr_text(f, "sampler", sampler, sizeof sampler);
    if (!st) st = attr_text(f, "respacing", respacing, sizeof respacing);
    if (!st) st = attr_text(f, "variance", variance, sizeof variance);
    if (!st) st = attr_text(f, "start", start, sizeof start);
    if (!st) st = attr_text(f, "data", data, sizeof data);
    if (!st) st = eb_h5_attr_f64(f, NULL, "cfg_scale", &cfg_scale);
    if (!st) st = eb_h5_attr_i64(f, NULL, "cfg_channels", &channels);
    if (!st) st = eb_h5_attr_i64(f, NULL, "seed", &seed);
    if (!st && eb_h5_has_attr(f, NULL, "eta")) st = eb_h5_attr_f64(f, NULL, "eta", &eta);
    if (!st && eb_h5_has_attr(f, NULL, "batch")) st = eb_h5_attr_i64(f, NULL, "batch", &batch);
    if (!st && eb_h5_has_attr(f, NULL, "num_heads")) st = eb_h5_attr_i64(f, NULL, "num_heads", &heads);
    if (!st && data[0])
        st = eb_fail(EB_EINPUT, "%s: recorded with --data %s: eb-cache's calibration chains replay only runs from noise", rec->path,
                     data);
    if (!st) st = eb_sha256_file(model, sha);
    if (!st && strcmp(sha, want_sha))
        st = eb_fail(EB_EINPUT, "%s: the model %s changed since the recording (SHA-256 %.12s…, recorded %.12s…)",
                     rec->path, model, sha, want_sha);
    if (!st) st = eb_model_load(&r->m, model, (int)heads);
    if (!st) st = eb_schedule_create(&r->sched, respacing);
    if (!st && r->sched.S != rec->S)
        st = eb_fail(EB_EINPUT, "%s: respacing '%s' runs %d steps, the recording holds %d", rec->path, respacing,
                     r->sched.S, rec->S);
    if (!st) {
        const eb_config *c = eb_model_config(r->m);
        r->N = rec->N;
        r->o = (eb_record_opts){
            .sched = &r->sched,
            .so = {.kind = !strcmp(sampler, "ddim") ? EB_SAMPLER_DDIM : EB_SAMPLER_DDPM,
                   .var_type = !strcmp(variance, "fixed_small")  ? EB_VAR_FIXED_SMALL
                               : !strcmp(variance, "fixed_large") ? EB_VAR_FIXED_LARGE
                                                                  : EB_VAR_LEARNED_RANGE,
                   .eta = (float)eta, .cfg_scale = (float)cfg_scale, .guide_channels = (int)channels,
                   .seed = (uint64_t)seed},
            .batch = (int)batch,
        };
        if (c->depth != rec->L)
            st = eb_fail(EB_EINPUT, "%s: %d %s recorded, the model %s has %d", rec->path, rec->L,
                         eb_plural(rec->L, "block", "blocks"), model, c->depth);
    }
    if (!st) st = replay_start(r, f, start, (uint64_t)seed);
    eb_h5_close(f);
    if (st) replay_free(r);
    return st;
}

/* The runner: the recorded run as one chain of all N samples, each step after
 * the first evaluated in the three candidate states from the same chain state
 * (cache.h: eb_cache_save / eb_cache_use_step / eb_cache_restore); the chain
 * goes on with the state decide picks. */
static eb_status replay_run(void *ctx, eb_cache_schedule *const tables[3], eb_search_decide decide, void *dctx,
                            const eb_search_progress *progress) {
    replay *r = ctx;
    const eb_config *c = eb_model_config(r->m);
    const int S = r->sched.S, N = r->N, guided = r->o.so.cfg_scale != 1.0f;
    const size_t HW = (size_t)c->input_size * c->input_size, per = c->in_channels * HW, out_per = eb_out_channels(c) * HW;
    eb_cache_plan plans[3] = {{0}};
    eb_cache *cache = NULL;
    eb_chain *chain = NULL;
    float *x = malloc((size_t)N * per * sizeof *x);
    double *norms = malloc(3 * (size_t)N * sizeof *norms);
    eb_status st = x && norms ? EB_OK : eb_fail(EB_ERUNTIME, "out of memory");
    for (int s = 0; !st && s < 3; s++) st = eb_cache_plan_build(&plans[s], tables[s], c->depth, &r->sched);
    /* the reuse-both table keeps every module, so any state can run on this cache */
    if (!st) st = eb_cache_create(&cache, r->m, tables[2], &r->sched, guided ? 2 * N : N);
    if (!st) st = eb_chain_create(&chain, r->m, &r->sched, &r->o.so, cache, N, 0);
    if (!st) memcpy(x, r->x_T, (size_t)N * per * sizeof *x);
    for (int k = 0; !st && k < S; k++) {
        int state = 0;
        if (k > 0) {
            if ((st = eb_cache_save(cache))) break;
            for (int s = 2; !st && s >= 0; s--) { /* reuse both (cheap), single module, compute: the usual pick last */
                eb_cache_restore(cache);
                if ((st = eb_cache_use_step(cache, k, &plans[s])) || (st = eb_chain_eval(chain, k, x, r->y))) break;
                const float *out = eb_chain_output(chain);
                for (int n = 0; n < N; n++) {
                    double sq = 0;
                    for (size_t j = 0; j < per; j++) sq += (double)out[n * out_per + j] * out[n * out_per + j];
                    norms[(size_t)s * N + n] = sqrt(sq) * plans[s].scale[k]; /* before the table's divisor */
                }
            }
            if (st || (state = decide(dctx, k, norms)) < 0) break;
            if (state != 0) { /* the chain goes on from the chosen state's evaluation */
                eb_cache_restore(cache);
                if ((st = eb_cache_use_step(cache, k, &plans[state])) || (st = eb_chain_eval(chain, k, x, r->y))) break;
            }
        } else if ((st = eb_chain_eval(chain, k, x, r->y))) {
            break;
        }
        eb_chain_advance(chain, k, x);
        if (isatty(2)) show_progress(r, progress, k);
    }
    eb_chain_free(chain);
    eb_cache_free(cache);
    for (int s = 0; s < 3; s++) eb_cache_plan_free(&plans[s]);
    free(x), free(norms);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Options                                                                   */

/* The model the FLOPs are counted on: --config / --model, else the
 * configuration the recording's attributes hold. label names it. */
static int flop_model(const eb_opt *opts, int n, const char *rec_path, eb_config *c, char *label, size_t size) {
    const char *path = eb_arg(opts, n, "model"), *name = eb_arg(opts, n, "config");
    if (path && name) {
        fprintf(stderr, "ebcache " CMD ": give --model or --config, not both\n");
        return 2;
    }
    if (name) {
        snprintf(label, size, "%s%s", strncmp(name, "DiT-", 4) ? "DiT-" : "", name);
        return eb_report(CMD, eb_config_named(c, name));
    }
    if (path) {
        eb_model *m;
        eb_status st = eb_model_load(&m, path, 0);
        if (st) return eb_report(CMD, st);
        *c = *eb_model_config(m);
        eb_model_free(m);
        snprintf(label, size, "%s", path);
        return 0;
    }
    eb_h5 *f;
    eb_status st = eb_h5_open(&f, rec_path);
    const char *keys[] = {"input_size", "patch_size", "in_channels", "hidden_size", "depth", "num_heads", "num_classes",
                          "learn_sigma"};
    int *fields[] = {&c->input_size, &c->patch_size, &c->in_channels, &c->hidden_size, &c->depth, &c->num_heads,
                     &c->num_classes, &c->learn_sigma};
    for (size_t k = 0; !st && k < sizeof keys / sizeof keys[0]; k++) {
        int64_t v;
        if (!eb_h5_has_attr(f, NULL, keys[k]))
            st = eb_fail(EB_EINPUT, "%s: no model configuration in the attributes ('%s'): give --config or --model",
                         rec_path, keys[k]);
        else if (!(st = eb_h5_attr_i64(f, NULL, keys[k], &v))) *fields[k] = (int)v;
    }
    char *model = NULL;
    if (!st && eb_h5_has_attr(f, NULL, "model") && !eb_h5_attr_str(f, NULL, "model", &model)) snprintf(label, size, "%s", model);
    free(model);
    eb_h5_close(f);
    if (!st) st = eb_config_validate(c);
    return eb_report(CMD, st);
}

/* "A,C" for eb-cache's δ(τ) = A·τ + C, one number for a threshold method. */
static int parse_threshold(const char *v, eb_search_opts *o) {
    if (o->method->param == EB_PARAM_THRESHOLD) return eb_arg_float(CMD, "threshold", v, &o->threshold);
    if (o->method->param != EB_PARAM_DELTA_SCALE) {
        fprintf(stderr, "ebcache " CMD ": --threshold is for eb-cache (A,C) and the threshold methods; %s takes --%s\n",
                o->method->name, eb_param_kind_name(o->method->param));
        return 2;
    }
    char a[64], *comma = strchr(v, ',');
    if (!comma || (size_t)(comma - v) >= sizeof a) {
        fprintf(stderr, "ebcache " CMD ": --threshold: '%s' is not A,C (δ(τ) = A·τ + C)\n", v);
        return 2;
    }
    snprintf(a, sizeof a, "%.*s", (int)(comma - v), v);
    int rc = eb_arg_float(CMD, "threshold", a, &o->delta_a);
    return rc ? rc : eb_arg_float(CMD, "threshold", comma + 1, &o->delta_c);
}

/* Reads the method's options into o. Returns an exit status. */
static int read_opts(const eb_opt *opts, int n, eb_search_opts *o) {
    const char *v;
    int rc = 0;
    long iv;
    double target;
    if ((v = eb_arg(opts, n, "target-speedup"))) {
        if ((rc = eb_arg_float(CMD, "target-speedup", v, &target))) return rc;
        if (!(target > 1)) {
            fprintf(stderr, "ebcache " CMD ": --target-speedup: %s is not above 1 (a speedup over the uncached run; "
                            "1 is no caching)\n", v);
            return 2;
        }
        o->target = 1 / target;
    }
    if ((v = eb_arg(opts, n, "threshold")) && (rc = parse_threshold(v, o))) return rc;
    struct {
        const char *name;
        int *field;
        long min;
    } ints[] = {{"interval", &o->interval, 1}, {"blocks", &o->blocks, 1}, {"boundary", &o->boundary, 0},
                {"order", &o->order, 1},       {"warmup", &o->warmup, 1}};
    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++) {
        if (!(v = eb_arg(opts, n, ints[k].name))) continue;
        if ((rc = eb_arg_int(CMD, ints[k].name, v, ints[k].min, EB_DIFFUSION_STEPS, &iv))) return rc;
        *ints[k].field = (int)iv;
    }
    if ((v = eb_arg(opts, n, "t-thre")) && (rc = eb_arg_float(CMD, "t-thre", v, &o->t_thre))) return rc;
    if ((v = eb_arg(opts, n, "noise-scaling")) && eb_scaling_parse(&o->scaling, v)) return eb_report(CMD, EB_EINPUT);
    if (!isnan(o->target) && (eb_arg(opts, n, "interval") || eb_arg(opts, n, "threshold")) &&
        o->method->param != EB_PARAM_DELTA_SCALE) {
        fprintf(stderr, "ebcache " CMD ": --target-speedup searches the %s; do not give it too\n",
                eb_param_kind_name(o->method->param));
        return 2;
    }
    return 0;
}

int eb_search_target_missed;

int cmd_search(int argc, char **argv) {
    eb_opt opts[] = {
        {"method", "M", "eb-cache, fora, delta-dit, teacache, taylorseer or budget", NULL},
        {"record", "REC.h5", "the recording (ebcache record) the search scores tables on", NULL},
        {"fit", "FIT.h5", "fits (ebcache fit) of this recording's sampler; default: fitted from REC.h5", NULL},
        {"target-speedup", "X", "find the parameter whose table predicts 1/X of the uncached MACs (budget: the budget)", NULL},
        {"threshold", "V", "eb-cache: A,C for δ(τ) = A·τ + C (default 0.02,0.005); teacache: the threshold", NULL},
        {"interval", "N", "fora, delta-dit, taylorseer: refresh every N steps", NULL},
        {"blocks", "K", "delta-dit: blocks skipped (default half the depth)", NULL},
        {"boundary", "I", "delta-dit: first step that skips the front blocks (default S/2)", NULL},
        {"order", "O", "taylorseer: Taylor order 1..4 (default 2)", NULL},
        {"warmup", "W", "taylorseer: first steps always computed (default 2)", NULL},
        {"t-thre", "T", "eb-cache: phase split in t/1000 (default: the fit's t_thre)", NULL},
        {"noise-scaling", "KIND", "ε divisor per step: none, two-phase, linear, per-step (default: two-phase for "
                                  "eb-cache, none otherwise)", NULL},
        {"config", "NAME", "model the FLOPs are counted on (default: the recording's)", NULL},
        {"model", "PATH", "a model file instead of --config", NULL},
        {"threads", "N", "threads for eb-cache's calibration chains (default: all cores)", NULL},
        {"output", "TABLE", "the schedule table to write (docs/schedule.md), with its provenance", NULL},
    };
    const int n = sizeof opts / sizeof opts[0];
    int rc = eb_args_parse(argc, argv, opts, n,
                           "usage: ebcache search --method M --record REC.h5 [--fit FIT.h5]\n"
                           "                      [--target-speedup X | --threshold V | --interval N] [method options] "
                           "--output TABLE\n"
                           "(fora, delta-dit, taylorseer need --interval or --target-speedup; teacache --threshold or "
                           "--target-speedup; budget --target-speedup)\n"
                           "Formulas, the methods and the provenance lines: docs/search.md.");
    if (rc) return rc < 0 ? 0 : rc;
    const char *method = eb_arg(opts, n, "method"), *rec_path = eb_arg(opts, n, "record");
    const char *out = eb_arg(opts, n, "output"), *fit_path = eb_arg(opts, n, "fit"), *v;
    if (!method || !rec_path || !out) {
        fprintf(stderr, "ebcache " CMD ": --method, --record and --output are required (see --help)\n");
        return 2;
    }
    if ((rc = eb_output_check(CMD, out, EB_INPUTS(rec_path, fit_path, eb_arg(opts, n, "model"))))) return rc;
    eb_search_opts o;
    eb_search_defaults(&o);
    if (eb_method_parse(&o.method, method)) return eb_report(CMD, EB_EINPUT);
    if ((rc = read_opts(opts, n, &o))) return rc;
    long threads = 0;
    if ((v = eb_arg(opts, n, "threads")) && (rc = eb_arg_int(CMD, "threads", v, 1, 1024, &threads))) return rc;
    eb_set_threads((int)threads);
    eb_config c;
    char label[1024] = "";
    if ((rc = flop_model(opts, n, rec_path, &c, label, sizeof label))) return rc;

    eb_rec_data rec;
    eb_fit fit = {0};
    replay rp = {0};
    eb_search_result res = {0};
    eb_search_runner runner = {&rp, replay_run};
    eb_status st = eb_rec_data_read(&rec, rec_path);
    if (st) return eb_report(CMD, st);
    if (fit_path) st = eb_fit_read(&fit, fit_path);
    const int chains = (o.method->needs & EB_NEEDS_RUNNER) != 0;
    if (!st && chains) st = replay_open(&rp, &rec);
    if (!st) st = eb_search(&res, &rec, fit_path ? &fit : NULL, &c, &o, chains ? &runner : NULL);
    if (!st && res.runs && isatty(2)) fprintf(stderr, "\n");
    if (!st)
        eb_cli_fit_warning(CMD, &res.two_phase, res.scaling_fallback
                                                     ? "the table does not scale ε (divisor 1 at every step) instead of "
                                                       "dividing it by b(τ); docs/search.md"
                                                     : "its t_thre still splits eb-cache's phases (--t-thre sets another)");
    eb_search_target_missed = !st && !res.met;
    if (!st && !res.met) {
        fprintf(stderr, "ebcache " CMD ": %s; nothing written\n", res.note);
        rc = 2;
    } else if (!st) {
        snprintf(res.table->model, sizeof res.table->model, "%.127s", label);
        res.table->flops = eb_cache_schedule_flops(res.table, &c);
        if (!(st = eb_search_write(&res, &rec, out)))
            fprintf(stderr, "wrote %s: %s (%s), predicted %.1f%% of the uncached MACs (%.2fx), deviation %.4g\n", out,
                    res.table->method, res.table->params, 100 * res.flops, 1 / res.flops, res.deviation);
    }
    if (st) rc = eb_report(CMD, st);
    eb_search_result_free(&res);
    replay_free(&rp);
    eb_fit_free(&fit);
    eb_rec_data_free(&rec);
    return rc;
}
