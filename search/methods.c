/* methods.c — the registry of caching methods and their generators (methods.h). */
#include "search/methods.h"
#include "search/search.h"
#include "search/toca.h"

#include <math.h>
#include <stdio.h>
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

/* SmoothCache's error curve of one module type at step k ≥ 1: the recorded
 * relative L1 change of its output from step k − 1, the mean over blocks. */
static double smoothcache_error(const eb_rec_data *rec, int mlp, int k) {
    const double *drift = (mlp ? rec->drift_mlp : rec->drift_attn) + (size_t)k * rec->L;
    double sum = 0;
    for (int l = 0; l < rec->L; l++) sum += drift[l];
    return sum / rec->L;
}

static double smoothcache_top(const eb_method_input *in) {
    double top = 0;
    for (int k = 1; k < in->rec->S; k++)
        for (int m = 0; m < 2; m++) top = fmax(top, smoothcache_error(in->rec, m, k));
    return top;
}

/* SmoothCache (Liu et al., 2024) with a lookahead of one step, the error
 * curves from the recording (docs/search.md): scanning the steps in order, a
 * computed step whose module output changes by at most α (its type's curve)
 * to the next step lets that next step reuse it, and the step after computes
 * again; the first and last steps compute. Attention and MLP have their own
 * curves and so their own reuse steps. */
eb_status eb_generate_smoothcache(eb_cache_schedule **out, const eb_method_input *in, double alpha) {
    const eb_rec_data *rec = in->rec;
    const int S = in->sched->S;
    if (!(alpha >= 0)) return eb_fail(EB_EINPUT, "smoothcache: the threshold α %g is not ≥ 0", alpha);
    char params[64];
    snprintf(params, sizeof params, "alpha=%.6g lookahead=1", alpha);
    eb_status st = eb_cache_schedule_new(out, in->sched, "smoothcache", params);
    int reused[2] = {0, 0};
    for (int k = 0; !st && k < S; k++) {
        eb_act act[2];
        for (int m = 0; m < 2; m++) {
            reused[m] = k > 0 && k < S - 1 && !reused[m] && smoothcache_error(rec, m, k) <= alpha;
            act[m] = (eb_act){reused[m] ? EB_ACT_REUSE : EB_ACT_COMPUTE, 0};
        }
        st = eb_cache_schedule_add(*out, in->sched, k, 0, -1, act[0], act[1], in->scale ? in->scale[k] : 1);
    }
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
