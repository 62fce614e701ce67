/* sampling.c — `sample` as a library call: a run sampled into an HDF5 file,
 * with the schedule's cost and an optional uncached baseline. */
#include "pipeline/sampling.h"

#include "runtime/clock.h"
#include "runtime/h5parts.h"
#include "runtime/schedule.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void eb_sample_params_defaults(eb_sample_params *p) {
    memset(p, 0, sizeof *p);
    eb_run_params_defaults(&p->run);
}

/* Rows r->first_index.. of the run (all of them with one rank) into `path`, with the job's attributes. */
static eb_status write_samples(const eb_sample_params *p, const char *path, int ranks, const eb_run *r, const float *x,
                               const eb_sample_result *res) {
    const eb_config *c = eb_model_config(r->model);
    eb_h5w *w = NULL;
    int64_t xd[4] = {r->N, c->in_channels, c->input_size, c->input_size}, yd[1] = {r->N};
    eb_status st = eb_h5w_create(&w, path);
    if (st) return st;
    eb_h5w_write(w, "samples", EB_H5_F32, x, 4, xd);
    eb_h5w_write(w, "y", EB_H5_I32, r->y, 1, yd);
    eb_run_attrs_write(w, r, &p->run);
    eb_h5w_attr_i64(w, NULL, "steps", r->sched.S);
    eb_h5w_attr_f64(w, NULL, "wall_seconds", res->wall);
    eb_h5w_attr_i64(w, NULL, "ranks", ranks);
    if (r->table) {
        eb_h5w_attr_f64(w, NULL, "flop_fraction", res->flop_fraction);
        eb_h5w_attr_i64(w, NULL, "cache_bytes", (int64_t)res->cache_bytes);
        eb_h5w_attr_i64(w, NULL, "steps_skipped", res->steps_skipped);
    }
    if (res->baseline_wall > 0) {
        eb_h5w_attr_f64(w, NULL, "baseline_wall_seconds", res->baseline_wall);
        eb_h5w_attr_f64(w, NULL, "measured_speedup", res->baseline_wall / res->wall);
    }
    return eb_h5w_commit(w);
}

/* The job's cost from every rank's: MAC and step counts summed in rank order, the largest cache, the
 * slowest wall times. Every rank calls each collective, failed or not, so that they stay matched. */
static eb_status reduce_stats(const eb_comm *c, eb_cache_stats *s, eb_sample_result *res) {
    double mine[4] = {s->macs, s->macs_uncached, s->steps, s->steps_skipped}, sum[4] = {0};
    double cache = (double)s->cache_bytes;
    eb_status st[4] = {eb_comm_sum_items(c, c->size, 4, mine, sum), eb_comm_max(c, &cache),
                       eb_comm_max(c, &res->wall), eb_comm_max(c, &res->baseline_wall)};
    *s = (eb_cache_stats){.macs = sum[0], .macs_uncached = sum[1], .cache_bytes = (size_t)cache, .steps = (int)sum[2],
                          .steps_skipped = (int)sum[3]};
    return st[0] ? st[0] : st[1] ? st[1] : st[2] ? st[2] : st[3];
}

/* Several ranks, with progress: this rank's share batch by batch (the batches eb_run_sample takes), each
 * followed by the progress line's collective; every rank calls it, one whose run failed (st) with no batch. */
static eb_status sample_with_progress(const eb_comm *c, const eb_run *mine, long total, eb_status st,
                                      eb_cache_stats *stats, double *wall) {
    eb_comm_progress pg;
    eb_status t = eb_comm_progress_begin(&pg, c, "sample", total, 1);
    const double t0 = eb_now_seconds();
    const eb_config *cfg = st ? NULL : eb_model_config(mine->model);
    const size_t per = cfg ? (size_t)cfg->in_channels * cfg->input_size * cfg->input_size : 0;
    for (int first = 0; !st && !t && first < mine->N; first += mine->batch) {
        eb_run one = *mine;
        double seconds;
        one.N = mine->N - first < mine->batch ? mine->N - first : mine->batch;
        one.x_T += first * per, one.y += first, one.first_index += first;
        if (!(st = eb_run_sample(&one, one.x_T, stats, &seconds))) t = eb_comm_progress_add(&pg, one.N);
    }
    eb_status ended = eb_comm_progress_end(&pg);
    *wall = eb_now_seconds() - t0;
    return st ? st : t ? t : ended;
}

eb_status eb_sample_to_file(const eb_sample_params *p, eb_sample_result *r) {
    eb_sample_result res = {.flop_fraction = 1, .policy = EB_POLICY_NONE};
    if (r) *r = res;
    if (p->baseline && !p->run.schedule)
        return eb_fail(EB_EINPUT, "`baseline` needs a `schedule` (the baseline is the uncached run of the same noise)");
    const eb_comm *comm = p->comm ? p->comm : eb_comm_serial();
    eb_run run, mine;
    eb_status st = eb_run_open(&run, &p->run);
    if (st && comm->size == 1) return st; /* with several ranks a failure goes on to the agreement */
    size_t per = 0;
    mine = run;
    if (!st) { /* this rank's view: whole model batches, so each sample meets the batch one process gives it */
        const eb_config *c = eb_model_config(run.model);
        long lo, hi;
        eb_shard_batches(run.N, run.batch, comm->rank, comm->size, &lo, &hi);
        per = (size_t)c->in_channels * c->input_size * c->input_size;
        mine.x_T += lo * per, mine.y += lo, mine.N = (int)(hi - lo), mine.first_index = (int)lo;
    }
    const size_t bytes = (size_t)mine.N * per * sizeof(float);
    float *copy = NULL;
    eb_cache_stats stats = {0};
    if (!st && p->baseline && !(copy = malloc(bytes + 1))) st = eb_fail(EB_ERUNTIME, "out of memory");
    else if (copy) memcpy(copy, mine.x_T, bytes);
    if (comm->size > 1) mine.so.progress = 0; /* the line across ranks replaces the sampler's */
    if (comm->size == 1 || !p->run.progress) {
        if (!st) st = eb_run_sample(&mine, mine.x_T, &stats, &res.wall);
    } else {
        eb_status t = sample_with_progress(comm, &mine, run.N, st, &stats, &res.wall);
        if (!st) st = t;
    }
    /* the baseline runs second, on the copy of x_T: warm-up costs fall on the cached run */
    if (!st && copy) { /* the cached run sampled x_T in place: the baseline starts from the copy */
        eb_run base = mine;
        base.table = NULL, base.x_T = copy;
        st = eb_run_sample(&base, copy, NULL, &res.baseline_wall);
    }
    free(copy);
    if (comm->size > 1) {
        eb_status t = reduce_stats(comm, &stats, &res);
        if (!st) st = t;
    }
    res.N = run.N, res.steps = run.sched.S;
    if (run.table) {
        res.flop_fraction = stats.macs / stats.macs_uncached;
        res.cache_bytes = stats.cache_bytes;
        res.steps_run = stats.steps;
        res.steps_skipped = stats.steps_skipped;
        res.policy = run.table->policy.kind;
    }
    snprintf(res.warning, sizeof res.warning, "%s", run.warning);
    const char *target = p->output; /* this rank's part file when there are several (runtime/h5parts.h) */
    if (!st && p->output) st = eb_parts_target(comm, p->output, &target);
    if (!st && p->output) st = write_samples(p, target, comm->size, &mine, mine.x_T, &res);
    st = p->output ? eb_parts_finish(comm, p->output, NULL, st, &res.merge_seconds) : eb_comm_agree(comm, st);
    eb_run_close(&run);
    if (r) *r = res;
    return st;
}
