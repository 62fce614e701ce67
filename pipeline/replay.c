/* replay.c — eb-cache's calibration runner: the recorded run (opened from
 * the recording's attributes, pipeline/run.h) replayed step by step through
 * runtime/chain.h, each step evaluated in the three candidate states. */
#include "pipeline/replay.h"
#include "runtime/clock.h"

#include "pipeline/run.h"
#include "runtime/chain.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct eb_replay {
    eb_run run;
    int progress;      /* 1: the progress line on a terminal                               */
    double start;      /* monotonic seconds at the first chain's first step, for the ETA   */
    long steps_done;   /* chain steps evaluated so far                                     */
};

/* "eb-cache search: chain 2/10, step 7/50 (ETA …)": the ETA extrapolates the
 * steps done to the planned chains' remaining steps (attempts that stop early
 * make it an upper bound). */
static void show_progress(eb_replay *r, const eb_search_progress *pg, int k) {
    const int S = r->run.sched.S;
    if (!r->steps_done++) r->start = eb_now_seconds();
    long left = (long)(pg->planned - pg->chain) * S + (S - 1 - k);
    char eta[48];
    eb_eta_text(eta, sizeof eta, (eb_now_seconds() - r->start) / r->steps_done * left);
    fprintf(stderr, "\r\033[Keb-cache search: chain %d/%d, step %d/%d%s", pg->chain, pg->planned, k + 1, S, eta);
}

/* The runner: the recorded run as one chain of all N samples, each step after
 * the first evaluated in the three candidate states from the same chain state
 * (cache.h: eb_cache_save / eb_cache_use_step / eb_cache_restore); the chain
 * goes on with the state decide picks. */
static eb_status replay_run(void *ctx, eb_cache_schedule *const tables[3], eb_search_decide decide, void *dctx,
                            const eb_search_progress *progress) {
    eb_replay *r = ctx;
    const eb_run *run = &r->run;
    const eb_config *c = eb_model_config(run->model);
    const int S = run->sched.S, N = run->N, guided = run->so.cfg_scale != 1.0f;
    const size_t HW = (size_t)c->input_size * c->input_size, per = c->in_channels * HW, out_per = eb_out_channels(c) * HW;
    eb_cache_plan plans[3] = {{0}};
    eb_cache *cache = NULL;
    eb_chain *chain = NULL;
    float *x = malloc((size_t)N * per * sizeof *x);
    double *norms = malloc(3 * (size_t)N * sizeof *norms);
    eb_status st = x && norms ? EB_OK : eb_fail(EB_ERUNTIME, "out of memory");
    for (int s = 0; !st && s < 3; s++) st = eb_cache_plan_build(&plans[s], tables[s], c->depth, &run->sched);
    /* the reuse-both table keeps every module, so any state can run on this cache */
    if (!st) st = eb_cache_create(&cache, run->model, tables[2], &run->sched, guided ? 2 * N : N);
    if (!st) st = eb_chain_create(&chain, run->model, &run->sched, &run->so, cache, N, 0);
    if (!st) memcpy(x, run->x_T, (size_t)N * per * sizeof *x);
    const int show = r->progress && isatty(2);
    for (int k = 0; !st && k < S; k++) {
        int state = 0;
        if (k > 0) {
            if ((st = eb_cache_save(cache))) break;
            for (int s = 2; !st && s >= 0; s--) { /* reuse both (cheap), single module, compute: the usual pick last */
                eb_cache_restore(cache);
                if ((st = eb_cache_use_step(cache, k, &plans[s])) || (st = eb_chain_eval(chain, k, x, run->y))) break;
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
                if ((st = eb_cache_use_step(cache, k, &plans[state])) || (st = eb_chain_eval(chain, k, x, run->y)))
                    break;
            }
        } else if ((st = eb_chain_eval(chain, k, x, run->y))) {
            break;
        }
        eb_chain_advance(chain, k, x);
        if (show) show_progress(r, progress, k);
    }
    eb_chain_free(chain);
    eb_cache_free(cache);
    for (int s = 0; s < 3; s++) eb_cache_plan_free(&plans[s]);
    free(x), free(norms);
    return st;
}

/* A string attribute of the recording ("" when absent). */
static eb_status attr_text(const char *path, const char *name, char *buf, size_t size) {
    eb_h5 *f;
    eb_status st = eb_h5_open(&f, path);
    buf[0] = 0;
    char *s = NULL;
    if (!st && eb_h5_has_attr(f, NULL, name) && !(st = eb_h5_attr_str(f, NULL, name, &s))) snprintf(buf, size, "%s", s);
    free(s);
    eb_h5_close(f);
    return st;
}

/* The recorded run, opened again and checked against the recording. */
static eb_status open_recorded(eb_replay *r, const eb_rec_data *rec, int threads) {
    char buf[8192], data[1024], want_sha[80];
    int32_t *labels = NULL;
    eb_run_params p;
    eb_status st = attr_text(rec->path, "data", data, sizeof data);
    if (!st && data[0])
        return eb_fail(EB_EINPUT, "%s: recorded with `data` %s: eb-cache's calibration chains replay only runs from "
                                  "noise", rec->path, data);
    if (!st) st = attr_text(rec->path, "model_sha256", want_sha, sizeof want_sha);
    if (!st && !want_sha[0])
        st = eb_fail(EB_EINPUT, "%s: no root attribute 'model_sha256': eb-cache's calibration chains replay the "
                                "recorded run (record it with ebcache record)", rec->path);
    if (!st) st = eb_run_params_from_file(&p, rec->path, buf, sizeof buf, &labels);
    if (st) return st;
    p.schedule = NULL; /* the runner runs the search's tables */
    p.threads = threads;
    st = eb_run_open(&r->run, &p);
    free(labels);
    if (st) return st;
    const eb_run *run = &r->run;
    if (strcmp(run->model_sha256, want_sha))
        return eb_fail(EB_EINPUT, "%s: the model %s changed since the recording (SHA-256 %.12s…, recorded %.12s…)",
                       rec->path, p.model, run->model_sha256, want_sha);
    if (run->sched.S != rec->S)
        return eb_fail(EB_EINPUT, "%s: respacing '%s' runs %d steps, the recording holds %d", rec->path, p.respacing,
                       run->sched.S, rec->S);
    if (eb_model_config(run->model)->depth != rec->L)
        return eb_fail(EB_EINPUT, "%s: %d block%s recorded, the model %s has %d", rec->path, rec->L,
                       rec->L == 1 ? "" : "s", p.model, eb_model_config(run->model)->depth);
    if (run->N != rec->N)
        return eb_fail(EB_EINPUT, "%s: the run starts %d sample%s, the recording holds %d", rec->path, run->N,
                       run->N == 1 ? "" : "s", rec->N);
    return EB_OK;
}

eb_status eb_replay_open(eb_replay **out, const eb_rec_data *rec, int threads, int progress, eb_search_runner *runner) {
    *out = NULL;
    eb_replay *r = calloc(1, sizeof *r);
    if (!r) return eb_fail(EB_ERUNTIME, "out of memory");
    eb_status st = open_recorded(r, rec, threads);
    if (st) {
        eb_replay_free(r);
        return st;
    }
    r->progress = progress;
    *runner = (eb_search_runner){r, replay_run};
    *out = r;
    return EB_OK;
}

void eb_replay_free(eb_replay *r) {
    if (!r) return;
    eb_run_close(&r->run);
    free(r);
}
