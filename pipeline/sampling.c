/* sampling.c — `sample` as a library call: a run sampled into an HDF5 file,
 * with the schedule's cost and an optional uncached baseline. */
#include "pipeline/sampling.h"

#include "runtime/schedule.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void eb_sample_params_defaults(eb_sample_params *p) {
    memset(p, 0, sizeof *p);
    eb_run_params_defaults(&p->run);
}

static eb_status write_samples(const eb_sample_params *p, const eb_run *r, const float *x, const eb_sample_result *res) {
    const eb_config *c = eb_model_config(r->model);
    eb_h5w *w = NULL;
    int64_t xd[4] = {r->N, c->in_channels, c->input_size, c->input_size}, yd[1] = {r->N};
    eb_status st = eb_h5w_create(&w, p->output);
    if (st) return st;
    eb_h5w_write(w, "samples", EB_H5_F32, x, 4, xd);
    eb_h5w_write(w, "y", EB_H5_I32, r->y, 1, yd);
    eb_run_attrs_write(w, r, &p->run);
    eb_h5w_attr_i64(w, NULL, "steps", r->sched.S);
    eb_h5w_attr_f64(w, NULL, "wall_seconds", res->wall);
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

eb_status eb_sample_to_file(const eb_sample_params *p, eb_sample_result *r) {
    eb_sample_result res = {.flop_fraction = 1, .policy = EB_POLICY_NONE};
    if (r) *r = res;
    if (p->baseline && !p->run.schedule)
        return eb_fail(EB_EINPUT, "`baseline` needs a `schedule` (the baseline is the uncached run of the same noise)");
    eb_run run;
    eb_status st = eb_run_open(&run, &p->run);
    if (st) return st;
    const eb_config *c = eb_model_config(run.model);
    const size_t bytes = (size_t)run.N * c->in_channels * c->input_size * c->input_size * sizeof(float);
    float *copy = NULL;
    eb_cache_stats stats = {0};
    if (p->baseline && !(copy = malloc(bytes))) st = eb_fail(EB_ERUNTIME, "out of memory");
    else if (copy) memcpy(copy, run.x_T, bytes);
    if (!st) st = eb_run_sample(&run, run.x_T, &stats, &res.wall);
    /* the baseline runs second, on the copy of x_T: warm-up costs fall on the cached run */
    if (!st && copy) {
        eb_cache_schedule *table = run.table;
        run.table = NULL;
        st = eb_run_sample(&run, copy, NULL, &res.baseline_wall);
        run.table = table;
    }
    free(copy);
    res.N = run.N, res.steps = run.sched.S;
    if (run.table) {
        res.flop_fraction = stats.macs / stats.macs_uncached;
        res.cache_bytes = stats.cache_bytes;
        res.steps_run = stats.steps;
        res.steps_skipped = stats.steps_skipped;
        res.policy = run.table->policy.kind;
    }
    snprintf(res.warning, sizeof res.warning, "%s", run.warning);
    if (!st && p->output) st = write_samples(p, &run, run.x_T, &res);
    eb_run_close(&run);
    if (r) *r = res;
    return st;
}
