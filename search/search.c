/* search.c — schedule search: EB-Cache's Algorithm 1, the baselines through
 * the schedule generators, the FLOP-budget dynamic programme, bisection on a
 * method's parameter for a FLOP target, and provenance (search.h,
 * docs/search.md). */
#include "search/search.h"
#include "runtime/atomic.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void eb_search_defaults(eb_search_opts *o) {
    *o = (eb_search_opts){.method = eb_method_find("eb-cache"), .target = NAN, .scaling = EB_SCALING_DEFAULT,
                          .delta_a = 0.02, .delta_c = 0.005, .t_thre = NAN, .threshold = NAN, .interval = 0,
                          .blocks = 0, .boundary = -1, .order = 2, .warmup = 2};
}

void eb_search_result_free(eb_search_result *res) {
    eb_cache_schedule_free(res->table);
    memset(res, 0, sizeof *res);
}

static const eb_act ACT_C = {EB_ACT_COMPUTE, 0}, ACT_R = {EB_ACT_REUSE, 0};

/* ------------------------------------------------------------------------ */
/* Scoring: predicted FLOPs and the drift proxy                               */

int eb_teacache_simulate(const double *drift_block0, int S, const eb_policy *p, uint8_t *skip) {
    double accumulated = 0;
    int skipped = 0;
    for (int k = 0; k < S; k++) skipped += skip[k] = eb_teacache_skip(&accumulated, drift_block0[k], p, k == 0 || k == S - 1);
    return skipped;
}

double eb_predicted_deviation(const eb_rec_data *rec, const eb_cache_plan *p, const uint8_t *policy_skip) {
    const int S = p->S, L = p->L;
    double *stale = calloc((size_t)L * 2, sizeof *stale); /* drift accumulated since the module's last compute */
    if (!stale) return NAN;
    double total = 0;
    for (int k = 0; k < S; k++)
        for (int l = 0; l < L; l++) {
            int served = policy_skip && policy_skip[k] &&
                         (p->policy.kind == EB_POLICY_TEACACHE || l >= p->policy.blocks);
            for (int m = 0; m < 2; m++) {
                double *acc = &stale[l * 2 + m];
                if (!served && p->act[((size_t)k * L + l) * 2 + m].kind == EB_ACT_COMPUTE) {
                    *acc = 0;
                } else {
                    *acc += (m ? rec->drift_mlp : rec->drift_attn)[(size_t)k * L + l];
                    total += *acc;
                }
            }
        }
    free(stale);
    return total / ((double)S * 2 * L);
}

typedef struct {
    eb_method_input in;             /* what the method's generator reads; in.search = this   */
    const eb_rec_data *rec;
    const eb_fit *fit;              /* NULL when neither the method nor the scaling needs one */
    const eb_config *c;
    const eb_search_opts *o;
    const eb_search_runner *runner;
    eb_schedule s;                  /* the recording's timesteps (S and timestep only)         */
    double *scale;                  /* (S) ε divisor per step                                   */
    double t_thre;                  /* eb-cache phase split                                     */
    int runs;                       /* candidate runs made                                      */
    int planned;                    /* candidate runs expected in all, for the progress line    */
} search_ctx;

/* The sampler as the recording lists it: the generators and the validation
 * read only S and the increasing timesteps (step k runs timestep[S−1−k]). */
static eb_status sampler_view(eb_schedule *s, const eb_rec_data *rec) {
    memset(s, 0, sizeof *s);
    if (!(s->timestep = malloc(rec->S * sizeof *s->timestep))) return eb_fail(EB_ERUNTIME, "out of memory");
    s->S = rec->S;
    for (int k = 0; k < rec->S; k++) s->timestep[rec->S - 1 - k] = rec->t[k];
    return EB_OK;
}

/* Predicted FLOP fraction and deviation of a table on the recording. */
static eb_status evaluate(search_ctx *x, const eb_cache_schedule *cs, double *flops, double *deviation) {
    const int S = x->rec->S;
    eb_cache_plan p;
    eb_status st = eb_cache_plan_build(&p, cs, x->rec->L, &x->s);
    if (st) return st;
    uint8_t skip[S];
    const uint8_t *served = NULL;
    if (p.policy.kind == EB_POLICY_TEACACHE) {
        eb_teacache_simulate(x->rec->drift_block0, S, &p.policy, skip);
        served = skip;
    }
    eb_macs_parts mp;
    eb_macs_split(&mp, x->c);
    double macs = 0;
    for (int k = 0; k < S; k++) macs += eb_plan_step_macs(&p, &mp, k, served ? served[k] : 0);
    *flops = macs / (S * eb_forward_macs(x->c));
    *deviation = eb_predicted_deviation(x->rec, &p, served);
    eb_cache_plan_free(&p);
    return isnan(*deviation) ? eb_fail(EB_ERUNTIME, "out of memory") : EB_OK;
}

/* ------------------------------------------------------------------------ */
/* Table building                                                            */

static int same_act(eb_act a, eb_act b) { return a.kind == b.kind && a.order == b.order; }

/* Step k's rows from acts (L, 2): a "*" row with the most common (attention,
 * MLP) pair, then a row for each maximal run of blocks that differs. */
static eb_status add_step_rows(eb_cache_schedule *cs, const eb_schedule *s, int k, const eb_act *acts, int L,
                               double scale) {
    int common = 0, best = 0;
    for (int l = 0; l < L; l++) {
        int count = 0;
        for (int j = 0; j < L; j++) count += same_act(acts[2 * l], acts[2 * j]) && same_act(acts[2 * l + 1], acts[2 * j + 1]);
        if (count > best) best = count, common = l;
    }
    eb_act ca = acts[2 * common], cm = acts[2 * common + 1];
    eb_status st = eb_cache_schedule_add(cs, s, k, 0, -1, ca, cm, scale);
    for (int l = 0; !st && l < L;) {
        if (same_act(acts[2 * l], ca) && same_act(acts[2 * l + 1], cm)) {
            l++;
            continue;
        }
        int e = l + 1;
        while (e < L && same_act(acts[2 * e], acts[2 * l]) && same_act(acts[2 * e + 1], acts[2 * l + 1])) e++;
        st = eb_cache_schedule_add(cs, s, k, l, e - 1, acts[2 * l], acts[2 * l + 1], scale);
        l = e;
    }
    return st;
}

/* Frees a half-built table on failure. */
static eb_status finish(eb_cache_schedule **out, eb_status st) {
    if (st) {
        eb_cache_schedule_free(*out);
        *out = NULL;
    }
    return st;
}

/* ------------------------------------------------------------------------ */
/* EB-Cache, Algorithm 1                                                     */

/* States per step: 0 computes both modules, 1 reuses the phase's module (the
 * MLP while τ ≥ t_thre, the attention after), 2 reuses both. */
static eb_status states_table(search_ctx *x, const uint8_t *state, const char *params, eb_cache_schedule **out) {
    eb_status st = eb_cache_schedule_new(out, &x->s, "eb-cache", params);
    for (int k = 0; !st && k < x->rec->S; k++) {
        eb_act attn = ACT_C, mlp = ACT_C;
        int early = x->rec->t[k] / (double)EB_DIFFUSION_STEPS >= x->t_thre;
        if (state[k] == 2) attn = mlp = ACT_R;
        else if (state[k] == 1 && early) mlp = ACT_R;
        else if (state[k] == 1) attn = ACT_R;
        st = eb_cache_schedule_add(*out, &x->s, k, 0, -1, attn, mlp, x->scale[k]);
    }
    return finish(out, st);
}

/* The most-reusing state that more than half of the votes reach (a vote for
 * reusing both also reaches the single-module state). */
static int majority(const int votes[3], int N) {
    int reach = 0;
    for (int s = 2; s > 0; s--)
        if (2 * (reach += votes[s]) > N) return s;
    return 0;
}

/* Whether the states decided through step k miss the target even if every
 * later step reused both modules (*misses = 1): a bisection's failing
 * attempts then stop early. */
static eb_status prefix_misses(search_ctx *x, const uint8_t *state, int k, int *misses) {
    const int S = x->rec->S;
    uint8_t bound[S];
    memcpy(bound, state, k + 1);
    memset(bound + k + 1, 2, S - k - 1);
    eb_cache_schedule *cs;
    double flops, deviation;
    eb_status st = states_table(x, bound, "bound", &cs);
    if (!st) st = evaluate(x, cs, &flops, &deviation);
    eb_cache_schedule_free(cs);
    *misses = !st && flops > x->o->target * (1 + 1e-9);
    return st;
}

/* Algorithm 1's decision at one step: each sample votes for the most-reusing
 * state whose scaled ε norm stays within δ of the uncached one, relative; the
 * step takes the state a majority reaches. With a target, −1 (stop) once the
 * decided states miss it even if every later step reused both modules. */
typedef struct {
    search_ctx *x;
    uint8_t *state;
    double a, c;
    int gave_up;
    eb_status st;
} ebcache_attempt;

static int ebcache_decide(void *ctx, int k, const double *norms) {
    ebcache_attempt *at = ctx;
    search_ctx *x = at->x;
    const int S = x->rec->S, N = x->rec->N;
    const double delta = at->a * x->rec->t[k] / EB_DIFFUSION_STEPS + at->c, s = x->scale[k];
    const double *ori = norms, *cand = norms + N, *both = norms + 2 * N;
    int votes[3] = {0};
    for (int n = 0; n < N; n++) {
        if (!(ori[n] > 0) || !isfinite(ori[n]) || !isfinite(cand[n]) || !isfinite(both[n])) {
            at->st = eb_fail(EB_ERUNTIME, "eb-cache: a non-finite or zero ε norm of sample %d at step %d", n, k);
            return -1;
        }
        votes[fabs(both[n] / s - ori[n]) <= delta * ori[n] ? 2 : fabs(cand[n] / s - ori[n]) <= delta * ori[n] ? 1 : 0]++;
    }
    at->state[k] = (uint8_t)majority(votes, N);
    if (k < S - 1 && !isnan(x->o->target) && ((at->st = prefix_misses(x, at->state, k, &at->gave_up)) || at->gave_up))
        return -1;
    return at->state[k];
}

/* Algorithm 1 with δ(τ) = scale·(a·τ + c) on one calibration chain: at each
 * step the candidates are evaluated on the chain the decided prefix produced
 * (docs/search.md). With a target, *out is NULL when the decided states
 * already miss it. */
static eb_status ebcache_build(search_ctx *x, double dscale, eb_cache_schedule **out) {
    const int S = x->rec->S;
    ebcache_attempt at = {.x = x, .state = calloc(S, 1), .a = dscale * x->o->delta_a, .c = dscale * x->o->delta_c};
    eb_cache_schedule *tables[3] = {NULL, NULL, NULL};
    uint8_t fill[S];
    eb_status st = at.state ? EB_OK : eb_fail(EB_ERUNTIME, "out of memory");
    for (int s = 0; !st && s < 3; s++) {
        memset(fill, s, S);
        fill[0] = 0;
        st = states_table(x, fill, "candidates", &tables[s]);
    }
    eb_search_progress progress = {x->runs + 1, x->planned > x->runs ? x->planned : x->runs + 1};
    if (!st) st = x->runner->run(x->runner->ctx, tables, ebcache_decide, &at, &progress);
    if (!st) st = at.st;
    x->runs++;
    char params[256];
    snprintf(params, sizeof params, "delta=%.6g*tau+%.6g t_thre=%.4g", at.a, at.c, x->t_thre);
    *out = NULL;
    if (!st && !at.gave_up) st = states_table(x, at.state, params, out);
    for (int s = 0; s < 3; s++) eb_cache_schedule_free(tables[s]);
    free(at.state);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Budget: dynamic programming                                               */

#define BUDGET_MAX_STEPS 256 /* the per-module programme is cubic in S */

/* Drift accumulated by a module reusing from step j through steps j+1 … e−1:
 * Σ_i (cum[i] − cum[j]), with cum2 the prefix sums of cum. */
static double segment(const double *cum, const double *cum2, int j, int e) {
    return (cum2[e - 1] - cum2[j]) - (e - 1 - j) * cum[j];
}

/* F (S+1, S): F[n][j] the least drift of steps 0 … j with n computes, the
 * last at j (step 0 always computes); cost (S+1): cost[n] with n computes
 * over all S steps (cost[0] = ∞). */
static void module_dp(const double *cum, const double *cum2, int S, double *F, double *cost) {
    for (int i = 0; i < (S + 1) * S; i++) F[i] = INFINITY;
    F[1 * S + 0] = 0;
    cost[0] = INFINITY;
    for (int n = 1; n <= S; n++) {
        double *row = F + (size_t)n * S;
        if (n > 1)
            for (int j = n - 1; j < S; j++)
                for (int i = n - 2; i < j; i++) {
                    double v = F[(size_t)(n - 1) * S + i] + segment(cum, cum2, i, j);
                    if (v < row[j]) row[j] = v;
                }
        cost[n] = INFINITY;
        for (int j = n - 1; j < S; j++)
            if (row[j] + segment(cum, cum2, j, S) < cost[n]) cost[n] = row[j] + segment(cum, cum2, j, S);
    }
}

/* Marks the compute steps (S) of the best n-compute solution of F. */
static void module_steps(const double *F, const double *cum, const double *cum2, int S, int n, const double *cost,
                         uint8_t *computes) {
    memset(computes, 0, S);
    int j = n - 1;
    while (F[(size_t)n * S + j] + segment(cum, cum2, j, S) != cost[n]) j++;
    for (int m = n; m > 1; m--) {
        computes[j] = 1;
        int i = m - 2;
        while (F[(size_t)(m - 1) * S + i] + segment(cum, cum2, i, j) != F[(size_t)m * S + j]) i++;
        j = i;
    }
    computes[j] = 1; /* j = 0 */
}

/* cum (S), cum2 (S) of block l's module m. */
static void module_drift(const eb_rec_data *rec, int l, int m, double *cum, double *cum2) {
    const double *d = m ? rec->drift_mlp : rec->drift_attn;
    cum[0] = cum2[0] = 0;
    for (int k = 1; k < rec->S; k++) {
        cum[k] = cum[k - 1] + d[(size_t)k * rec->L + l];
        cum2[k] = cum2[k - 1] + cum[k];
    }
}

typedef struct {
    double *G;   /* (L+1, L·S+1) least drift of blocks < l with n computes in all */
    int *choice; /* (L, L·S+1)   computes of block l in that optimum              */
} module_plan;

/* The per-block costs of module m combined over blocks (min-plus convolution). */
static eb_status plan_module(const eb_rec_data *rec, int m, module_plan *mp, double *F) {
    const int S = rec->S, L = rec->L, W = L * S + 1;
    mp->G = malloc((size_t)(L + 1) * W * sizeof *mp->G);
    mp->choice = malloc((size_t)L * W * sizeof *mp->choice);
    double *cost = malloc((S + 1) * sizeof *cost), *cum = malloc(S * sizeof *cum), *cum2 = malloc(S * sizeof *cum2);
    eb_status st = mp->G && mp->choice && cost && cum && cum2 ? EB_OK : eb_fail(EB_ERUNTIME, "out of memory");
    for (int i = 0; !st && i < W; i++) mp->G[i] = i ? INFINITY : 0;
    for (int l = 0; !st && l < L; l++) {
        module_drift(rec, l, m, cum, cum2);
        module_dp(cum, cum2, S, F, cost);
        const double *prev = mp->G + (size_t)l * W;
        double *next = mp->G + (size_t)(l + 1) * W;
        int *ch = mp->choice + (size_t)l * W;
        for (int n = 0; n < W; n++) {
            next[n] = INFINITY, ch[n] = 0;
            for (int c = 1; c <= S && c <= n; c++)
                if (prev[n - c] + cost[c] < next[n]) next[n] = prev[n - c] + cost[c], ch[n] = c;
        }
    }
    free(cost), free(cum), free(cum2);
    return st;
}

/* Fills acts (S, L, 2) for module m with `total` computes spread as planned. */
static eb_status place_module(const eb_rec_data *rec, int m, const module_plan *mp, int total, double *F,
                              eb_act *acts) {
    const int S = rec->S, L = rec->L, W = L * S + 1;
    double *cost = malloc((S + 1) * sizeof *cost), *cum = malloc(S * sizeof *cum), *cum2 = malloc(S * sizeof *cum2);
    uint8_t *computes = malloc(S);
    eb_status st = cost && cum && cum2 && computes ? EB_OK : eb_fail(EB_ERUNTIME, "out of memory");
    for (int l = L - 1; !st && l >= 0; l--) {
        int n = mp->choice[(size_t)l * W + total];
        total -= n;
        module_drift(rec, l, m, cum, cum2);
        module_dp(cum, cum2, S, F, cost);
        module_steps(F, cum, cum2, S, n, cost, computes);
        for (int k = 0; k < S; k++) acts[((size_t)k * L + l) * 2 + m] = computes[k] ? ACT_C : ACT_R;
    }
    free(cost), free(cum), free(cum2), free(computes);
    return st;
}

/* The least predicted FLOP fraction of any table of S steps: every module computes only at step 0. */
static double budget_least(int S, const eb_config *c) {
    eb_macs_parts mp;
    eb_macs_split(&mp, c);
    return (S * (mp.embed + mp.final + c->depth * mp.adaln) + c->depth * (mp.attn + mp.mlp)) / (S * eb_forward_macs(c));
}

eb_status eb_budget_table(eb_cache_schedule **out, const eb_rec_data *rec, const eb_config *c, double budget,
                          const double *scale) {
    *out = NULL;
    const int S = rec->S, L = rec->L, W = L * S + 1;
    if (c->depth != L) return eb_fail(EB_EINPUT, "%s: %d blocks recorded, the model has %d", rec->path, L, c->depth);
    if (S > BUDGET_MAX_STEPS)
        return eb_fail(EB_EINPUT, "%s: %d steps; the budget search handles up to %d (its programme is cubic in S)",
                       rec->path, S, BUDGET_MAX_STEPS);
    if (!(budget > 0) || !isfinite(budget)) return eb_fail(EB_EINPUT, "budget: FLOP fraction %g must be positive", budget);
    eb_macs_parts mp;
    eb_macs_split(&mp, c);
    double full = S * eb_forward_macs(c), fixed = S * (mp.embed + mp.final + L * mp.adaln);
    double avail = budget * full * (1 - 1e-12) - fixed; /* the slack keeps rounding below the budget */
    if (avail < L * (mp.attn + mp.mlp))
        return eb_fail(EB_EINPUT, "budget %.4f is below %.4f, the least any table reaches (every module computing only "
                                  "at step 0)", budget, budget_least(S, c));
    module_plan plans[2] = {{0}};
    double *F = malloc((size_t)(S + 1) * S * sizeof *F);
    eb_act *acts = malloc((size_t)S * L * 2 * sizeof *acts);
    eb_schedule s = {0};
    eb_status st = F && acts ? sampler_view(&s, rec) : eb_fail(EB_ERUNTIME, "out of memory");
    if (!st) st = plan_module(rec, 0, &plans[0], F);
    if (!st) st = plan_module(rec, 1, &plans[1], F);
    int best_a = -1, best_m = -1;
    if (!st) {
        const double *GA = plans[0].G + (size_t)L * W, *GM = plans[1].G + (size_t)L * W;
        double best = INFINITY;
        int *prefix = malloc(W * sizeof *prefix); /* prefix[n]: the n' ≤ n of least GM */
        if (!prefix) st = eb_fail(EB_ERUNTIME, "out of memory");
        for (int n = 0; !st && n < W; n++) prefix[n] = n && GM[prefix[n - 1]] <= GM[n] ? prefix[n - 1] : n;
        for (int na = L; !st && na < W; na++) {
            double left = avail - na * mp.attn;
            if (left < L * mp.mlp) break;
            int cap = left / mp.mlp >= W - 1 ? W - 1 : (int)(left / mp.mlp);
            int nm = prefix[cap];
            if (GA[na] + GM[nm] < best) best = GA[na] + GM[nm], best_a = na, best_m = nm;
        }
        free(prefix);
    }
    if (!st) st = place_module(rec, 0, &plans[0], best_a, F, acts);
    if (!st) st = place_module(rec, 1, &plans[1], best_m, F, acts);
    char params[64];
    snprintf(params, sizeof params, "budget=%.6g", budget);
    if (!st) st = eb_cache_schedule_new(out, &s, "budget", params);
    for (int k = 0; !st && k < S; k++) st = add_step_rows(*out, &s, k, acts + (size_t)k * L * 2, L, scale ? scale[k] : 1);
    for (int m = 0; m < 2; m++) free(plans[m].G), free(plans[m].choice);
    free(F), free(acts);
    eb_schedule_free(&s);
    return finish(out, st);
}

/* ------------------------------------------------------------------------ */
/* Methods: a table for one parameter value                                  */

eb_status eb_generate_ebcache(eb_cache_schedule **out, const eb_method_input *in, double delta_scale) {
    return ebcache_build(in->search, delta_scale, out);
}

/* EB-Cache's most reusing table (state 2 after the first step); p unused. */
static eb_status all_reuse(eb_cache_schedule **out, const eb_method_input *in, double p) {
    search_ctx *x = in->search;
    uint8_t state[x->rec->S];
    memset(state, 2, sizeof state);
    state[0] = 0;
    return states_table(x, state, "all reuse", out);
}

/* Builds the table at `param`, gives every step its ε scale and scores it into r. */
static eb_status attempt(search_ctx *x, eb_method_generate build, double param, eb_search_result *r) {
    eb_cache_schedule *cs;
    eb_status st = build(&cs, &x->in, param);
    if (st) return st;
    if (!cs) { /* the builder gave up: the target cannot be met at this parameter */
        r->flops = INFINITY;
        return EB_OK;
    }
    for (int i = 0; i < cs->nrows; i++) cs->rows[i].scale = x->scale[cs->rows[i].step];
    double flops, deviation;
    if ((st = evaluate(x, cs, &flops, &deviation))) {
        eb_cache_schedule_free(cs);
        return st;
    }
    eb_cache_schedule_free(r->table);
    r->table = cs, r->flops = flops, r->deviation = deviation, r->param = param;
    return EB_OK;
}

/* Builds and scores the table at `param`; when it meets the target it
 * replaces res's table (*meets = 1). */
static eb_status try_param(search_ctx *x, eb_method_generate build, double param, eb_search_result *res, int *meets) {
    eb_search_result trial = {0};
    eb_status st = attempt(x, build, param, &trial);
    *meets = !st && trial.flops <= x->o->target;
    if (*meets) {
        eb_cache_schedule *t = res->table;
        res->table = trial.table, res->flops = trial.flops, res->deviation = trial.deviation, res->param = param;
        trial.table = t;
    }
    eb_cache_schedule_free(trial.table);
    return st;
}

typedef enum { STEP_INTEGER, STEP_LINEAR, STEP_GEOMETRIC } bisection;

/* Bisection goes on while (lo, hi] is wider than its stopping gap: one for
 * integers, rel_tol relative for reals. */
static int bisect_continues(double lo, double hi, bisection kind, double rel_tol) {
    return kind == STEP_INTEGER ? hi - lo > 1 : hi - lo > rel_tol * hi;
}

/* The next parameter tried: geometric midpoints once lo > 0. */
static double bisect_mid(double lo, double hi, bisection kind) {
    return kind == STEP_INTEGER ? floor((lo + hi) / 2) : kind == STEP_GEOMETRIC && lo > 0 ? sqrt(lo * hi) : (lo + hi) / 2;
}

/* The attempts bisect will make on (lo, hi], counted as if every attempt
 * missed (exact for geometric steps from lo > 0, whose gap shrinks the same
 * way whichever half is kept; finite from lo = 0 too). */
static int bisect_attempts(double lo, double hi, bisection kind, double rel_tol) {
    int n = 0;
    for (; bisect_continues(lo, hi, kind, rel_tol); n++) lo = bisect_mid(lo, hi, kind);
    return n;
}

/* Narrows (lo, hi] to the least parameter whose table meets the target: hi's
 * table (already in res) meets it, lo's does not. */
static eb_status bisect(search_ctx *x, eb_method_generate build, double lo, double hi, bisection kind, double rel_tol,
                        eb_search_result *res) {
    eb_status st = EB_OK;
    while (!st && bisect_continues(lo, hi, kind, rel_tol)) {
        double mid = bisect_mid(lo, hi, kind);
        int meets;
        st = try_param(x, build, mid, res, &meets);
        if (meets) hi = mid;
        else lo = mid;
    }
    return st;
}

/* The target is out of reach: res keeps the closest prediction, not its table. */
static void cannot(eb_search_result *res, const search_ctx *x, const char *what) {
    eb_cache_schedule_free(res->table);
    res->table = NULL;
    res->met = 0;
    snprintf(res->note, sizeof res->note,
             "%s: cannot meet the target %.4f of the uncached MACs (%.2fx): %s predicts %.4f (%.2fx) at best",
             x->o->method->name, x->o->target, 1 / x->o->target, what, res->flops, 1 / res->flops);
}

/* An integer parameter (interval) in [1, S]: the largest caches the most. */
static eb_status search_interval(search_ctx *x, eb_method_generate build, eb_search_result *res) {
    const int S = x->rec->S;
    if (isnan(x->o->target)) {
        const double interval = x->o->interval >= 1 ? x->o->interval : x->o->method->fixed;
        if (!(interval >= 1))
            return eb_fail(EB_EINPUT, "%s: give the interval or a target speedup", x->o->method->name);
        return attempt(x, build, interval, res);
    }
    eb_status st = attempt(x, build, S, res);
    if (st) return st;
    if (res->flops > x->o->target) {
        char what[64];
        snprintf(what, sizeof what, "interval %d (the largest)", S);
        return cannot(res, x, what), EB_OK;
    }
    return bisect(x, build, 0, S, STEP_INTEGER, 0, res);
}

/* A threshold: TeaCache's skips are simulated on the recording, so a target
 * bisects it; a method whose skips are decided only at run time takes one. */
static eb_status search_threshold(search_ctx *x, eb_method_generate build, eb_search_result *res) {
    const char *name = x->o->method->name;
    if (isnan(x->o->target)) {
        if (!(x->o->threshold > 0)) return eb_fail(EB_EINPUT, "%s: give the threshold or a target speedup", name);
        return attempt(x, build, x->o->threshold, res);
    }
    if (!x->o->method->top)
        return eb_fail(EB_EINPUT, "%s: its skips are decided at run time, so the recording cannot predict its FLOPs "
                                  "for a target speedup: give the threshold", name);
    const double top = x->o->method->top(&x->in);
    eb_status st = attempt(x, build, top, res);
    if (st) return st;
    if (res->flops > x->o->target) {
        char what[96];
        snprintf(what, sizeof what, "threshold %.4g (reusing all it can)", top);
        return cannot(res, x, what), EB_OK;
    }
    return bisect(x, build, 0, top, STEP_LINEAR, 1e-6, res);
}

#define DELTA_STEPS 40 /* ×4 steps from δ scale 1 that bracket the target */
#define DELTA_TOL 1e-2 /* the δ scale's relative bisection gap */

static eb_status search_ebcache(search_ctx *x, eb_method_generate build_ebcache, eb_search_result *res) {
    if (!x->runner) return eb_fail(EB_EINPUT, "eb-cache: the search needs candidate runs of the model (a runner), and none was given");
    for (int k = 0; k < x->rec->S; k++)
        if (!(x->o->delta_a * x->rec->t[k] / EB_DIFFUSION_STEPS + x->o->delta_c > 0))
            return eb_fail(EB_EINPUT, "eb-cache: δ(τ) = %g·τ + %g is not positive at step %d (t = %d)", x->o->delta_a,
                           x->o->delta_c, k, x->rec->t[k]);
    x->planned = 1;
    if (isnan(x->o->target)) return attempt(x, build_ebcache, 1, res);
    /* reusing both modules at every step but the first bounds what any δ reaches; it needs no runs */
    eb_status st = attempt(x, all_reuse, NAN, res);
    if (st) return st;
    if (res->flops > x->o->target) return cannot(res, x, "reusing both modules at every step but the first"), EB_OK;
    /* bracket by factors of 4 from δ scale 1, then bisect geometrically to 1%;
     * until the bracket closes, expect the bisection after this attempt (after
     * the next one too at δ scale 1, which cannot close it) */
    const int after_bracket = bisect_attempts(1, 4, STEP_GEOMETRIC, DELTA_TOL);
    double lo = 0, hi = 1;
    int meets;
    x->planned = x->runs + 2 + after_bracket;
    st = try_param(x, build_ebcache, hi, res, &meets);
    for (int g = 0; !st && meets && g < DELTA_STEPS; g++) {
        double down = hi / 4;
        x->planned = x->runs + 1 + after_bracket;
        if (!(st = try_param(x, build_ebcache, down, res, &meets))) *(meets ? &hi : &lo) = down;
    }
    for (int g = 0; !st && lo == 0 && !meets && g < DELTA_STEPS; g++) {
        lo = hi, hi *= 4;
        x->planned = x->runs + 1 + after_bracket;
        st = try_param(x, build_ebcache, hi, res, &meets);
    }
    if (st) return st;
    if (isnan(res->param)) return cannot(res, x, "the largest δ tried"), EB_OK;
    x->planned = x->runs + bisect_attempts(lo, hi, STEP_GEOMETRIC, DELTA_TOL);
    return bisect(x, build_ebcache, lo, hi, STEP_GEOMETRIC, DELTA_TOL, res);
}

static eb_status search_budget(search_ctx *x, eb_method_generate build, eb_search_result *res) {
    if (isnan(x->o->target)) return eb_fail(EB_EINPUT, "%s: give a target speedup (the FLOP budget)", x->o->method->name);
    if (x->o->target < (res->flops = budget_least(x->rec->S, x->c)))
        return cannot(res, x, "computing every module only at step 0"), EB_OK;
    return attempt(x, build, x->o->target, res);
}

/* ------------------------------------------------------------------------ */
/* The search                                                                */

/* ε divisors per step for the scaling. */
static eb_status step_scales(double *scale, const eb_fit *fit, eb_scaling sc, int S) {
    for (int k = 0; k < S; k++) {
        double v = 1;
        if (sc == EB_SCALING_TWO_PHASE) v = 1 / eb_two_phase_b(&fit->two_phase, fit->tau[k]);
        else if (sc == EB_SCALING_LINEAR) v = fit->linear.k * fit->tau[k] + fit->linear.b;
        else if (sc == EB_SCALING_PER_STEP) v = fit->ratio[k];
        if (!(v > 0) || !isfinite(v))
            return eb_fail(EB_EINPUT, "noise scaling %s gives step %d the ε divisor %g (must be positive)",
                           eb_scaling_name(sc), k, v);
        scale[k] = v;
    }
    return EB_OK;
}

/* The fit must describe the recording's steps. */
static eb_status fit_matches(const eb_fit *f, const eb_rec_data *rec) {
    if (f->S != rec->S)
        return eb_fail(EB_EINPUT, "the fit (of %s) has %d steps, the recording %s %d", f->recording, f->S, rec->path, rec->S);
    for (int k = 0; k < rec->S; k++)
        if (f->t[k] != rec->t[k])
            return eb_fail(EB_EINPUT, "the fit (of %s) has t = %d at step %d, the recording %s t = %d", f->recording, f->t[k],
                           k, rec->path, rec->t[k]);
    return EB_OK;
}

static eb_status check_opts(const eb_search_opts *o, const eb_rec_data *rec, const eb_config *c) {
    if (!o->method) return eb_fail(EB_EINPUT, "no search method given");
    if (!o->method->generate) return eb_fail(EB_EINPUT, "%s: the uncached run has no table to search", o->method->name);
    if (c->depth != rec->L)
        return eb_fail(EB_EINPUT, "%s: %d blocks recorded, but the model the FLOPs are counted on has %d", rec->path,
                       rec->L, c->depth);
    if (rec->start)
        return eb_fail(EB_EINPUT, "%s: its chains start at step %d (record --start-step); the search needs whole chains",
                       rec->path, rec->start);
    if (rec->cached)
        return eb_fail(EB_EINPUT, "%s: its chain ran a cache schedule; the search scores drift on an uncached "
                                  "recording (a fit of this one may still be given as the fit file)", rec->path);
    if (!isnan(o->target) && !(o->target > 0 && isfinite(o->target)))
        return eb_fail(EB_EINPUT, "target FLOP fraction %g must be positive", o->target);
    if (o->method->param == EB_PARAM_DELTA_SCALE && !isnan(o->t_thre) && !(o->t_thre > 0 && o->t_thre < 1))
        return eb_fail(EB_EINPUT, "%s: t_thre %g outside (0, 1)", o->method->name, o->t_thre);
    if (o->blocks < 0 || o->blocks > rec->L)
        return eb_fail(EB_EINPUT, "%s: blocks %d outside [1, %d]", o->method->name, o->blocks, rec->L);
    if (o->interval < 0 || o->interval > rec->S)
        return eb_fail(EB_EINPUT, "interval %d outside [1, %d]", o->interval, rec->S);
    return EB_OK;
}

eb_status eb_search(eb_search_result *res, const eb_rec_data *rec, const eb_fit *fit, const eb_config *c,
                    const eb_search_opts *o, const eb_search_runner *runner) {
    memset(res, 0, sizeof *res);
    res->met = 1;
    eb_status st = check_opts(o, rec, c);
    if (st) return st;
    eb_search_opts opts = *o;
    const eb_method *m = opts.method;
    if (opts.scaling == EB_SCALING_DEFAULT) opts.scaling = m->scaling;
    int need_fit = (m->needs & EB_NEEDS_FIT) || opts.scaling != EB_SCALING_NONE;
    eb_fit own = {0};
    if (need_fit && !fit) {
        if ((st = eb_fit_recording(&own, rec))) return st;
        fit = &own;
    }
    search_ctx x = {.rec = rec, .fit = need_fit ? fit : NULL, .c = c, .o = &opts, .runner = runner};
    x.in = (eb_method_input){.sched = &x.s, .c = c, .o = &opts, .rec = rec, .search = &x};
    if (need_fit) x.in.poly = fit->teacache.poly, x.in.npoly = fit->teacache.npoly;
    if (need_fit) st = fit_matches(fit, rec);
    if (!st) st = sampler_view(&x.s, rec);
    if (!st && !(x.scale = malloc(rec->S * sizeof *x.scale))) st = eb_fail(EB_ERUNTIME, "out of memory");
    /* a degenerate two-phase fit still splits eb-cache's phases but scales no step */
    int uses_split = m->param == EB_PARAM_DELTA_SCALE && isnan(opts.t_thre);
    if (!st && (uses_split || opts.scaling == EB_SCALING_TWO_PHASE)) res->two_phase = fit->two_phase;
    if (!st && opts.scaling == EB_SCALING_TWO_PHASE && fit->two_phase.flags)
        opts.scaling = EB_SCALING_NONE, res->scaling_fallback = 1;
    res->scaling = opts.scaling;
    if (!st) st = step_scales(x.scale, fit, opts.scaling, rec->S);
    x.in.scale = x.scale;
    if (!st && m->param == EB_PARAM_DELTA_SCALE) x.t_thre = uses_split ? fit->two_phase.t_thre : opts.t_thre;
    if (!st) {
        static eb_status (*const strategy[EB_NPARAMS])(search_ctx *, eb_method_generate, eb_search_result *) = {
            [EB_PARAM_INTERVAL] = search_interval, [EB_PARAM_THRESHOLD] = search_threshold,
            [EB_PARAM_DELTA_SCALE] = search_ebcache, [EB_PARAM_BUDGET] = search_budget};
        st = strategy[m->param](&x, m->generate, res);
    }
    res->runs = x.runs;
    if (!st && res->table && opts.scaling != EB_SCALING_NONE) {
        eb_cache_schedule *t = res->table;
        size_t n = strlen(t->params);
        snprintf(t->params + n, sizeof t->params - n, " scaling=%s", eb_scaling_name(opts.scaling));
    }
    if (!st && res->table && rec->sampler[0]) snprintf(res->table->sampler, sizeof res->table->sampler, "%s", rec->sampler);
    if (st) eb_search_result_free(res);
    eb_fit_free(&own);
    eb_schedule_free(&x.s);
    free(x.scale);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Writing                                                                   */

eb_status eb_search_write(const eb_search_result *res, const eb_rec_data *rec, const char *path) {
    if (!res->table) return eb_fail(EB_EINPUT, "%s: no table to write", path);
    eb_atomic out;
    eb_status st = eb_atomic_open(&out, path);
    if (st) return st;
    FILE *f = out.f;
    eb_cache_schedule_print(f, res->table);
    fprintf(f, "# provenance of this search (ebcache %s)\n", EBCACHE_VERSION);
    fprintf(f, "# recording: %s\n# recording_sha256: %s\n", rec->path, rec->sha256);
    fprintf(f, "# predicted_flops: %.6f (%.3fx)%s\n", res->flops, 1 / res->flops,
            res->table->policy.kind == EB_POLICY_TEACACHE ? " with the policy's skips simulated on the recording" : "");
    fprintf(f, "# predicted_deviation: %.6g (drift proxy, docs/search.md)\n", res->deviation);
    const eb_method *m = eb_method_find(res->table->method);
    if (m) fprintf(f, "# %s: %.6g\n", eb_param_kind_name(m->param), res->param);
    if (res->runs) fprintf(f, "# calibration_chains: %d\n", res->runs);
    char flags[64];
    if (res->two_phase.flags)
        fprintf(f, "# two_phase_fit: degenerate (%s)%s\n", eb_fit_flags_list(res->two_phase.flags, flags, sizeof flags),
                res->scaling_fallback ? ": noise scaling none instead of two-phase (docs/search.md)" : "");
    return eb_atomic_commit(&out);
}
