/* search.h — cache schedule search (docs/search.md): turns a recording and its
 * fits into a schedule table for EB-Cache's Algorithm 1, the baselines (FORA,
 * Δ-DiT, TeaCache, TaylorSeer, through runtime/schedule.h's generators) and
 * our FLOP-budgeted search, optionally finding the parameter that meets a
 * FLOP target by bisection.
 *
 * Every table is scored the same way on the recording: its predicted FLOP
 * fraction (a TeaCache policy's skips simulated on the recorded block-0
 * drift) and its predicted deviation, the drift proxy: the mean over steps,
 * blocks and modules of the relative L1 change a stale feature has
 * accumulated since its module last computed (0 for a computed one).
 */
#ifndef EB_SEARCH_H
#define EB_SEARCH_H

#include "runtime/schedule.h"
#include "search/fit.h"
#include "search/methods.h"

/* Candidate evaluations for eb-cache, from one chain per attempt: the
 * recording's calibration batch (its model, sampler, noise and N samples) runs
 * step by step. tables[s] (s = 0 compute, 1 the phase's single-module state,
 * 2 reuse both) holds state s at every step but step 0, which computes. At
 * each step k ≥ 1 the runner evaluates the three tables' step k from the
 * chain's current state and calls decide(dctx, k, norms) with norms (3, N):
 * the L2 norms of the guided ε of state 0, 1, 2 before the tables' ε divisor;
 * the chain continues with the state decide returns, or stops when it returns
 * −1. Step 0 computes. *evaluations counts the model evaluations made. */
typedef int (*eb_search_decide)(void *dctx, int k, const double *norms);
/* For the runner's progress line: this chain's number (1, 2, …) and the
 * chains the search expects to run in all (bracketing the δ scale may add
 * some: the total grows by one per extra bracket step). */
typedef struct {
    int chain, planned;
} eb_search_progress;
typedef struct {
    void *ctx;
    eb_status (*run)(void *ctx, eb_cache_schedule *const tables[3], eb_search_decide decide, void *dctx,
                     const eb_search_progress *progress);
} eb_search_runner;

struct eb_search_opts {
    const eb_method *method; /* a row of eb_methods (search/methods.h)                                         */
    double target;          /* FLOP fraction to reach (1 / speedup); NaN: use the parameters as given      */
    eb_scaling scaling;
    double delta_a, delta_c;/* eb-cache δ(τ) = a·τ + c on the relative ε-norm deviation; a target scales both */
    double t_thre;          /* eb-cache phase split in τ; NaN: the fit's                                      */
    double threshold;       /* teacache                                                                       */
    int interval;           /* fora, delta-dit, taylorseer                                                    */
    int blocks, boundary;   /* delta-dit: blocks skipped (0: half the depth); first front step (−1: S/2)       */
    int order, warmup;      /* taylorseer                                                                     */
    int lookahead;          /* smoothcache: steps a compute may serve, 1..the recording's lags (0: 1)         */
    int max_skips;          /* magcache: K, consecutive skipped steps at most (0: EB_MAGCACHE_K)              */
    double retention;       /* magcache: the first fraction of the model calls never skipped                  */
                            /* (0: EB_MAGCACHE_RETENTION; negative: none)                                     */
    const char *router;     /* l2c: the router scores file of tools/convert_l2c.py                            */
};

/* Defaults: eb-cache, no target, default scaling, δ = 0.02·τ + 0.005, the fit's split,
 * Δ-DiT half the blocks from S/2, TaylorSeer order 2 with 2 warm-up steps;
 * threshold and interval unset (NaN, 0): required without a target. */
void eb_search_defaults(eb_search_opts *o);

typedef struct {
    eb_cache_schedule *table;
    double flops;      /* predicted fraction of the uncached MACs                               */
    double deviation;  /* predicted deviation (the drift proxy)                                 */
    double param;      /* the parameter used: interval, threshold, δ scale (eb-cache), budget */
    int met;           /* 1: the target is met (or there is none); 0: it cannot be (no table)   */
    int runs;          /* calibration chains run (eb-cache: one per attempt)                    */
    char note[512];    /* with met = 0: why, and the best fraction the method reaches             */
    eb_scaling scaling;   /* the ε divisor the table carries                                      */
    eb_fit_two_phase two_phase; /* the two-phase fit when the search used it (else zero); its flags */
    int scaling_fallback; /* 1: two-phase scaling asked for, fit degenerate: no scaling instead    */
} eb_search_result;

/* Searches a table for the recording. `fit` may be NULL (computed from the
 * recording when the method or the scaling needs one); `c` is the model the
 * FLOPs are counted on (its depth must be the recording's); `runner` is
 * needed by eb-cache only (NULL: EB_EINPUT saying so). When a target cannot
 * be met: met = 0, no table, and the note says what the method reaches at
 * best (flops holds that fraction). A degenerate two-phase fit is used for
 * eb-cache's phase split but not for noise scaling: the table then divides
 * ε by 1 (scaling = none, scaling_fallback = 1); two_phase.flags says why. */
eb_status eb_search(eb_search_result *res, const eb_rec_data *rec, const eb_fit *fit, const eb_config *c,
                    const eb_search_opts *o, const eb_search_runner *runner);
void eb_search_result_free(eb_search_result *res);

/* Writes the table with its provenance (recording, its SHA-256, predicted
 * FLOP fraction and deviation, the search's outcome, a degenerate fit and
 * its fallback) as comment lines, atomically. */
eb_status eb_search_write(const eb_search_result *res, const eb_rec_data *rec, const char *path);

/* ------------------------------------------------------------------------ */
/* The pieces, for tests and tools                                           */

/* The drift proxy of plan p (S = rec->S, L = rec->L) on the recording;
 * policy_skip (S) marks the steps a dynamic policy serves (NULL: none). */
double eb_predicted_deviation(const eb_rec_data *rec, const eb_cache_plan *p, const uint8_t *policy_skip);

/* TeaCache's decisions (eb_teacache_skip, the engine's rule) on the recorded
 * block-0 drift (S; row 0 unused) with policy p's polynomial and threshold:
 * skip (S) gets 1 where a step is served from the residual. Returns the
 * number of skipped steps. */
int eb_teacache_simulate(const double *drift_block0, int S, const eb_policy *p, uint8_t *skip);

/* Budget: the table that reuses per step, block and module so as to
 * minimise the drift proxy with a predicted FLOP fraction ≤ budget (exact
 * for the proxy: dynamic programming over steps, then over modules). ε is
 * divided by scale[k] (S) at step k (NULL: 1). EB_EINPUT naming the least
 * reachable fraction when the budget is below it. */
eb_status eb_budget_table(eb_cache_schedule **out, const eb_rec_data *rec, const eb_config *c, double budget,
                          const double *scale);

#endif
