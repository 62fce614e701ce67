/* methods.c — the registry of caching methods and their generators (methods.h). */
#include "search/methods.h"
#include "search/search.h"
#include "analyze/record.h"
#include "runtime/h5io.h"
#include "search/toca.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double teacache_top(const eb_method_input *in);
static double smoothcache_top(const eb_method_input *in);

const eb_method eb_methods[EB_NMETHODS] = {
    {.name = "none", .param = EB_PARAM_INTERVAL, .fixed = NAN,
     .scaling = EB_SCALING_NONE,
     .about = "uncached: the reference every other row is compared with"},
    {.name = "noise-scaling", .generate = eb_generate_fora, .param = EB_PARAM_INTERVAL, .fixed = 1,
     .scaling = EB_SCALING_TWO_PHASE, .needs = EB_NEEDS_FIT,
     .about = "no caching, ε divided by the fitted two-phase b(τ)⁻¹ only"},
    {.name = "fora", .generate = eb_generate_fora, .param = EB_PARAM_INTERVAL, .fixed = NAN,
     .scaling = EB_SCALING_NONE, .sweeps = 1,
     .about = "FORA: reuse attention and MLP between refreshes every N steps"},
    {.name = "delta-dit", .generate = eb_generate_delta_dit, .param = EB_PARAM_INTERVAL, .fixed = NAN,
     .scaling = EB_SCALING_NONE, .sweeps = 1,
     .about = "Δ-DiT: reuse the residual of half the blocks"},
    {.name = "teacache", .generate = eb_generate_teacache, .param = EB_PARAM_THRESHOLD, .fixed = NAN,
     .scaling = EB_SCALING_NONE, .needs = EB_NEEDS_FIT | EB_NEEDS_RECORDING, .sweeps = 1, .top = teacache_top,
     .about = "TeaCache: skip steps by the fitted polynomial and a threshold"},
    {.name = "fbcache", .generate = eb_generate_fbcache, .param = EB_PARAM_THRESHOLD, .fixed = NAN,
     .scaling = EB_SCALING_NONE,
     .about = "first-block cache: skip the later blocks while the first blocks' residual is stable (at run time)"},
    {.name = "taylorseer", .generate = eb_generate_taylorseer, .param = EB_PARAM_INTERVAL, .fixed = NAN,
     .scaling = EB_SCALING_NONE, .sweeps = 1,
     .about = "TaylorSeer: order-2 forecasts between refreshes"},
    {.name = "eb-cache-table", .generate = eb_generate_ebcache, .param = EB_PARAM_DELTA_SCALE, .fixed = NAN,
     .scaling = EB_SCALING_NONE, .needs = EB_NEEDS_FIT | EB_NEEDS_RECORDING | EB_NEEDS_RUNNER, .sweeps = 1,
     .about = "EB-Cache's Algorithm 1 table without noise scaling"},
    {.name = "eb-cache", .generate = eb_generate_ebcache, .param = EB_PARAM_DELTA_SCALE, .fixed = NAN,
     .scaling = EB_SCALING_TWO_PHASE, .needs = EB_NEEDS_FIT | EB_NEEDS_RECORDING | EB_NEEDS_RUNNER, .sweeps = 1,
     .about = "EB-Cache: Algorithm 1 table with the fitted noise scaling"},
    {.name = "budget", .generate = eb_generate_budget, .param = EB_PARAM_BUDGET, .fixed = NAN,
     .scaling = EB_SCALING_NONE, .needs = EB_NEEDS_RECORDING, .sweeps = 1,
     .about = "ebcache's budget search: least measured drift under the FLOP budget"},
    {.name = "smoothcache", .generate = eb_generate_smoothcache, .param = EB_PARAM_THRESHOLD, .fixed = NAN,
     .scaling = EB_SCALING_NONE, .needs = EB_NEEDS_RECORDING, .sweeps = 1, .top = smoothcache_top,
     .about = "SmoothCache: reuse a module's output where its recorded change to the next step stays below α"},
    {.name = "magcache", .generate = eb_generate_magcache, .param = EB_PARAM_THRESHOLD, .fixed = NAN,
     .scaling = EB_SCALING_NONE, .needs = EB_NEEDS_RECORDING, .sweeps = 1, .top = eb_magcache_top,
     .about = "MagCache: skip steps by the cached residual while the recorded magnitude ratios' error stays below δ"},
    {.name = "l2c", .generate = eb_generate_l2c, .param = EB_PARAM_THRESHOLD, .fixed = NAN,
     .scaling = EB_SCALING_NONE, .needs = EB_NEEDS_RECORDING | EB_NEEDS_ROUTER, .sweeps = 1, .top = eb_l2c_top,
     .about = "Learning-to-Cache: a converted router's per-step, per-block reuse at its threshold"},
    {.name = "toca", .generate = eb_generate_toca, .param = EB_PARAM_INTERVAL, .fixed = NAN,
     .scaling = EB_SCALING_NONE, .sweeps = 1,
     .about = "ToCa: between refreshes every ~N steps, reuse attention and recompute the MLP of the best-scored tokens (R = 0.07)"},
};
_Static_assert(sizeof eb_methods / sizeof eb_methods[0] == EB_NMETHODS, "eb_methods and EB_NMETHODS");

static const char *const PARAM_NAMES[] = {"interval", "threshold", "delta_scale", "budget"};
_Static_assert(sizeof PARAM_NAMES / sizeof PARAM_NAMES[0] == EB_NPARAMS, "PARAM_NAMES and eb_param_kind");

static const char *const SCALING_NAMES[] = {"default", "none", "two-phase", "linear", "per-step"};
#define NSCALINGS ((int)(sizeof SCALING_NAMES / sizeof SCALING_NAMES[0]))
_Static_assert(NSCALINGS == EB_SCALING_PER_STEP + 1, "SCALING_NAMES and eb_scaling");

const char *eb_param_kind_name(eb_param_kind k) { return k >= 0 && k < EB_NPARAMS ? PARAM_NAMES[k] : "?"; }

const char *eb_scaling_name(eb_scaling s) { return s >= 0 && (int)s < NSCALINGS ? SCALING_NAMES[s] : "?"; }

eb_status eb_scaling_parse(eb_scaling *s, const char *name) {
    for (int i = 0; i < NSCALINGS; i++)
        if (!strcmp(name, SCALING_NAMES[i])) return *s = (eb_scaling)i, EB_OK;
    return eb_fail(EB_EINPUT, "unknown noise scaling '%s' (none, two-phase, linear, per-step)", name);
}

const eb_method *eb_method_find(const char *name) {
    for (int i = 0; i < EB_NMETHODS; i++)
        if (!strcmp(name, eb_methods[i].name)) return &eb_methods[i];
    return NULL;
}

eb_status eb_method_parse(const eb_method **m, const char *name) {
    if ((*m = eb_method_find(name))) return EB_OK;
    char list[512];
    size_t used = 0;
    for (int i = 0; i < EB_NMETHODS && used < sizeof list; i++)
        used += snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", eb_methods[i].name);
    return eb_fail(EB_EINPUT, "unknown method '%s' (%s)", name, list);
}

int eb_method_index(const eb_method *m) { return (int)(m - eb_methods); }

eb_status eb_rec_read_extra(const eb_rec_data *rec, const char *name, int rank, const int64_t *want, double **v,
                            int64_t *dims) {
    *v = NULL;
    eb_h5 *f;
    eb_status st = eb_h5_open(&f, rec->path);
    if (st) return st;
    if (eb_h5_lookup(f, name) != EB_H5_DATASET)
        st = eb_fail(EB_EINPUT, "%s: no dataset %s (recorded by ebcache record from this version on: record again)",
                     rec->path, name);
    else
        st = eb_h5_read_f64(f, name, rank, want, v, dims ? dims : (int64_t[EB_H5_MAX_RANK]){0}, 0);
    eb_h5_close(f);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Generators                                                                */

eb_status eb_generate_fora(eb_cache_schedule **out, const eb_method_input *in, double interval) {
    return eb_cache_schedule_fora(out, in->sched, (int)interval);
}

/* Δ-DiT skips o->blocks (0: half the depth, rounded up) from step o->boundary (−1: S/2). */
eb_status eb_generate_delta_dit(eb_cache_schedule **out, const eb_method_input *in, double interval) {
    const int L = in->c->depth, S = in->sched->S;
    const int blocks = in->o->blocks ? in->o->blocks : (L + 1) / 2, boundary = in->o->boundary < 0 ? S / 2 : in->o->boundary;
    return eb_cache_schedule_delta_dit(out, in->sched, L, (int)interval, blocks, boundary);
}

eb_status eb_generate_teacache(eb_cache_schedule **out, const eb_method_input *in, double threshold) {
    return eb_cache_schedule_teacache(out, in->sched, threshold, in->poly, in->npoly);
}

eb_status eb_generate_fbcache(eb_cache_schedule **out, const eb_method_input *in, double threshold) {
    return eb_cache_schedule_fbcache(out, in->sched, threshold, in->o->blocks ? in->o->blocks : 1);
}

eb_status eb_generate_taylorseer(eb_cache_schedule **out, const eb_method_input *in, double interval) {
    return eb_cache_schedule_taylorseer(out, in->sched, (int)interval, in->o->order, in->o->warmup);
}

eb_status eb_generate_budget(eb_cache_schedule **out, const eb_method_input *in, double budget) {
    return eb_budget_table(out, in->rec, in->c, budget, in->scale);
}

/* Above the sum of every step's |rescaled change| nothing but the first and
 * last steps computes. */
static double teacache_top(const eb_method_input *in) {
    double top = 1;
    for (int k = 1; k < in->rec->S - 1; k++) top += fabs(eb_poly_eval(in->poly, in->npoly, in->rec->drift_block0[k]));
    return top;
}

/* SmoothCache's error curves: err[(j·2 + m)·S + k] for lag j + 1 (j < K),
 * module m (0 attention, 1 MLP) and step k ≥ j + 1, the recorded relative L1
 * change of its output from step k − j − 1 to step k, the mean over blocks.
 * Lag 1 is the recording's drift; longer lags come from /drift/{attn,mlp}_lag. */
static eb_status smoothcache_errors(double **err, const eb_method_input *in, int K) {
    const eb_rec_data *rec = in->rec;
    const int S = rec->S, L = rec->L;
    double *lagged[2] = {NULL, NULL};
    int64_t d[3];
    eb_status st = EB_OK;
    for (int m = 0; K > 1 && !st && m < 2; m++) {
        const int64_t want[3] = {EB_H5_ANY, S, L};
        st = eb_rec_read_extra(rec, m ? "/drift/mlp_lag" : "/drift/attn_lag", 3, want, &lagged[m], d);
        if (!st && d[0] < K)
            st = eb_fail(EB_EINPUT, "%s: lookahead %d needs the drift over %d steps; it has %lld (ebcache record "
                                    "keeps %d: eb_record_opts.lags)", rec->path, K, K, (long long)d[0], EB_RECORD_LAGS);
    }
    if (!st && !(*err = malloc((size_t)K * 2 * S * sizeof **err))) st = eb_fail(EB_ERUNTIME, "out of memory");
    for (int j = 0; !st && j < K; j++)
        for (int m = 0; m < 2; m++)
            for (int k = 0; k < S; k++) {
                const double *row = j ? lagged[m] + ((size_t)j * S + k) * L : (m ? rec->drift_mlp : rec->drift_attn) + (size_t)k * L;
                double sum = 0;
                for (int l = 0; l < L; l++) sum += row[l];
                (*err)[((size_t)j * 2 + m) * S + k] = k > j ? sum / L : NAN;
            }
    free(lagged[0]), free(lagged[1]);
    return st;
}

static int smoothcache_lookahead(const eb_method_input *in) { return in->o->lookahead > 0 ? in->o->lookahead : 1; }

static double smoothcache_top(const eb_method_input *in) {
    const int K = smoothcache_lookahead(in), S = in->rec->S;
    double *err, top = 0;
    if (smoothcache_errors(&err, in, K)) return NAN;
    for (int i = 0; i < K * 2 * S; i++)
        if (!isnan(err[i])) top = fmax(top, err[i]);
    free(err);
    return top;
}

/* SmoothCache (Liu et al., 2024) with lookahead K, the error curves from the
 * recording (docs/search.md), each module type on its own: scanning from step
 * i = 0, the longest lag j + 1 ≤ K whose error from step i to step i + j + 1
 * is at most α lets steps i + 1 … i + j + 1 reuse step i's output and the
 * scan goes on at i + j + 2; with none, step i computes and the scan goes on
 * at i + 1. The first and last steps compute. */
eb_status eb_generate_smoothcache(eb_cache_schedule **out, const eb_method_input *in, double alpha) {
    const int S = in->sched->S, K = smoothcache_lookahead(in);
    *out = NULL;
    if (!(alpha >= 0)) return eb_fail(EB_EINPUT, "smoothcache: the threshold α %g is not ≥ 0", alpha);
    if (K > S - 1) return eb_fail(EB_EINPUT, "smoothcache: lookahead %d outside [1, %d]", K, S - 1);
    double *err;
    eb_status st = smoothcache_errors(&err, in, K);
    if (st) return st;
    uint8_t reuse[2][S];
    memset(reuse, 0, sizeof reuse);
    for (int m = 0; m < 2; m++)
        for (int i = 0; i < S;) {
            int j = K - 1;
            while (j >= 0 && !(i + j + 1 < S && err[((size_t)j * 2 + m) * S + i + j + 1] <= alpha)) j--;
            for (int s = 1; s <= j + 1; s++) reuse[m][i + s] = 1;
            i += j + 2;
        }
    char params[64];
    snprintf(params, sizeof params, "alpha=%.6g lookahead=%d", alpha, K);
    st = eb_cache_schedule_new(out, in->sched, "smoothcache", params);
    for (int k = 0; !st && k < S; k++) {
        eb_act act[2];
        for (int m = 0; m < 2; m++)
            act[m] = (eb_act){reuse[m][k] && k < S - 1 ? EB_ACT_REUSE : EB_ACT_COMPUTE, 0};
        st = eb_cache_schedule_add(*out, in->sched, k, 0, -1, act[0], act[1], in->scale ? in->scale[k] : 1);
    }
    free(err);
    if (st) eb_cache_schedule_free(*out), *out = NULL;
    return st;
}

/* ToCa at its DiT default fresh ratio; the search bisects the fresh threshold N.
 * On a token grid its 2x2 uniformity patches do not tile (the shipped model's
 * 7x7) the table has none (grid 1), where ToCa's own code stops. */
eb_status eb_generate_toca(eb_cache_schedule **out, const eb_method_input *in, double interval) {
    eb_status st = eb_cache_schedule_toca(out, in->sched, in->c->depth, EB_TOCA_RATIO, (int)interval);
    if (!st && eb_grid(in->c) % (*out)->toca.grid) (*out)->toca.grid = 1;
    return st;
}
