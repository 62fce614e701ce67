/* test_search.c — schedule search on hand-made recordings with known answers:
 * TeaCache's simulated decisions, the drift proxy, Algorithm 1's states and
 * votes from a scripted candidate runner, the budget programme against
 * exhaustive enumeration, bisection for a FLOP target, provenance, and
 * `ebcache search`. */
#include "tests/cli_util.h"
#include "tests/golden.h"
#include "runtime/h5io.h"
#include "search/search.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* test_fit.c: writes a recording's datasets under their documented names. */
void test_write_recording(const char *path, const eb_rec_data *r);

TestSuite(search, .init = cli_workdir_make, .fini = cli_workdir_remove);

/* A small model for FLOP counts: 4 tokens of width 32. */
static eb_config small_config(int depth) {
    return (eb_config){.input_size = 4, .patch_size = 2, .in_channels = 4, .hidden_size = 32, .depth = depth,
                       .num_heads = 2, .num_classes = 10, .learn_sigma = 0};
}

static uint64_t lcg = 12345;
static double uniform(void) {
    lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
    return (lcg >> 11) * (1.0 / 9007199254740992.0);
}

/* An in-memory recording of S evenly spaced steps (t from 999 down), N
 * samples, L blocks, with random positive drifts and ε norms ratio 1. */
static void make_rec(eb_rec_data *r, int S, int N, int L) {
    memset(r, 0, sizeof *r);
    snprintf(r->path, sizeof r->path, "synthetic.h5");
    r->S = S, r->N = N, r->L = L;
    r->t = malloc(S * sizeof *r->t);
    r->eps_norm = malloc((size_t)S * N * sizeof(double)), r->eps_norm_q = malloc((size_t)S * N * sizeof(double));
    r->drift_attn = malloc((size_t)S * L * sizeof(double)), r->drift_mlp = malloc((size_t)S * L * sizeof(double));
    r->drift_block0 = malloc(S * sizeof(double)), r->drift_output = malloc(S * sizeof(double));
    for (int k = 0; k < S; k++) {
        r->t[k] = 999 - (int)((999.0 * k) / (S - 1) + 0.5);
        for (int n = 0; n < N; n++) r->eps_norm[k * N + n] = r->eps_norm_q[k * N + n] = 10 + n;
        for (int l = 0; l < L; l++) {
            r->drift_attn[k * L + l] = k ? 0.01 + 0.2 * uniform() : NAN;
            r->drift_mlp[k * L + l] = k ? 0.01 + 0.2 * uniform() : NAN;
        }
        r->drift_block0[k] = k ? 0.05 + 0.1 * uniform() : NAN;
        r->drift_output[k] = k ? 0.1 : NAN;
    }
}

static eb_schedule view_of(const eb_rec_data *r) {
    eb_schedule s = {.S = r->S, .timestep = malloc(r->S * sizeof(int))};
    for (int k = 0; k < r->S; k++) s.timestep[r->S - 1 - k] = r->t[k];
    return s;
}

/* The registry: names unique and found; a row without a generator is the
 * uncached run only; what a swept row bisects has a strategy; a row that is
 * not swept either has no table, a fixed parameter, or takes one by hand. */
Test(search, method_registry_rows) {
    for (int i = 0; i < EB_NMETHODS; i++) {
        const eb_method *m = &eb_methods[i];
        cr_expect_eq(eb_method_find(m->name), m, "%s", m->name);
        cr_expect(m->about && *m->about, "%s", m->name);
        cr_expect(m->param >= 0 && m->param < EB_NPARAMS, "%s", m->name);
        cr_expect(m->generate || (!m->sweeps && !strcmp(m->name, "none")), "%s", m->name);
        cr_expect(!(m->needs & EB_NEEDS_RUNNER) || m->param == EB_PARAM_DELTA_SCALE, "%s", m->name);
        cr_expect(m->scaling != EB_SCALING_DEFAULT, "%s", m->name);
        cr_expect(!m->sweeps || m->param != EB_PARAM_THRESHOLD || m->top, "%s: swept without a top", m->name);
    }
    cr_expect_null(eb_method_find("foura"));
    cr_expect_str_eq(eb_param_kind_name(EB_PARAM_DELTA_SCALE), "delta_scale");
}

/* SmoothCache with lookahead 1: a step reuses a module when the module's
 * block-mean recorded change to it is ≤ α and the step before computed; the
 * first and last steps compute; a FLOP target bisects α. */
Test(search, smoothcache_reuses_where_the_change_is_small) {
    eb_rec_data r;
    make_rec(&r, 8, 2, 2);
    const double attn[8] = {NAN, 0.05, 0.05, 0.5, 0.01, 0.01, 0.01, 0.01}, mlp[8] = {NAN, 0.5, 0.05, 0.05, 0.5, 0.01, 0.5, 0.01};
    for (int k = 1; k < 8; k++)
        for (int l = 0; l < 2; l++) r.drift_attn[k * 2 + l] = attn[k] + (l ? 0.01 : -0.01), r.drift_mlp[k * 2 + l] = mlp[k];
    eb_schedule s = view_of(&r);
    eb_config c = small_config(2);
    eb_search_opts o;
    eb_search_defaults(&o);
    const eb_method_input in = {.sched = &s, .c = &c, .o = &o, .rec = &r};
    eb_cache_schedule *cs;
    cr_assert_eq(eb_method_find("smoothcache")->generate(&cs, &in, 0.1), EB_OK);
    eb_cache_plan p;
    cr_assert_eq(eb_cache_plan_build(&p, cs, 2, &s), EB_OK);
    const int want_attn[8] = {0, 1, 0, 0, 1, 0, 1, 0}, want_mlp[8] = {0, 0, 1, 0, 0, 1, 0, 0}; /* 1: reuse */
    for (int k = 0; k < 8; k++)
        for (int l = 0; l < 2; l++) {
            cr_expect_eq(p.act[(k * 2 + l) * 2].kind == EB_ACT_REUSE, want_attn[k], "attn step %d block %d", k, l);
            cr_expect_eq(p.act[(k * 2 + l) * 2 + 1].kind == EB_ACT_REUSE, want_mlp[k], "mlp step %d block %d", k, l);
        }
    eb_cache_plan_free(&p);
    eb_cache_schedule_free(cs);
    eb_search_result res;
    o.method = eb_method_find("smoothcache"), o.target = 0.8;
    cr_assert_eq(eb_search(&res, &r, NULL, &c, &o, NULL), EB_OK);
    cr_expect(res.met && res.flops <= 0.8 && res.param > 0, "flops %g alpha %g", res.flops, res.param);
    cr_expect_str_eq(res.table->method, "smoothcache");
    eb_search_result_free(&res);
    o.target = 0.3; /* below what reusing every other step gives */
    cr_assert_eq(eb_search(&res, &r, NULL, &c, &o, NULL), EB_OK);
    cr_expect_eq(res.met, 0);
    cr_expect(strstr(res.note, "reusing all it can"), "%s", res.note);
    eb_search_result_free(&res);
    free(s.timestep);
    eb_rec_data_free(&r);
}

/* noise-scaling is FORA at its fixed interval 1 with the fitted scaling;
 * eb-cache-table is eb-cache without it. */
Test(search, method_rows_defaults) {
    const eb_method *ns = eb_method_find("noise-scaling"), *t = eb_method_find("eb-cache-table");
    cr_assert(ns && t);
    cr_expect_eq(ns->generate, eb_method_find("fora")->generate);
    cr_expect_eq(ns->fixed, 1);
    cr_expect_eq(ns->scaling, EB_SCALING_TWO_PHASE);
    cr_expect_eq(t->generate, eb_method_find("eb-cache")->generate);
    cr_expect_eq(t->scaling, EB_SCALING_NONE);
}


/* The table's flops and drift proxy on the recording. */
static void score(const eb_rec_data *r, const eb_cache_schedule *cs, const eb_config *c, double *flops, double *dev) {
    eb_cache_plan p;
    cr_assert_eq(eb_cache_plan_build(&p, cs, r->L, NULL), EB_OK, "%s", eb_last_error());
    *flops = eb_cache_schedule_flops(cs, c);
    *dev = eb_predicted_deviation(r, &p, NULL);
    eb_cache_plan_free(&p);
}

Test(search, teacache_simulation_follows_the_engine_rule) {
    /* identity polynomial: accumulate the drift until it reaches 0.25 */
    double drift[8] = {NAN, 0.1, 0.1, 0.1, 0.3, 0.05, 0.05, 0.9};
    eb_policy identity = {.kind = EB_POLICY_TEACACHE, .threshold = 0.25, .npoly = 2, .poly = {1, 0}};
    uint8_t skip[8];
    int n = eb_teacache_simulate(drift, 8, &identity, skip);
    const uint8_t want[8] = {0, 1, 1, 0, 0, 1, 1, 0}; /* 0.1, 0.2 skip; 0.3 computes; 0.3 computes; last computes */
    cr_expect_eq(n, 4);
    for (int k = 0; k < 8; k++) cr_expect_eq(skip[k], want[k], "step %d", k);
    eb_policy square = {.kind = EB_POLICY_TEACACHE, .threshold = 0.25, .npoly = 3, .poly = {1, 0, 0}};
    cr_expect_eq(eb_teacache_simulate(drift, 8, &square, skip), 6); /* x² stays below 0.25: every middle step skips */
}

Test(search, drift_proxy_of_a_hand_made_table) {
    eb_rec_data r;
    make_rec(&r, 4, 1, 1);
    double a[4] = {NAN, 0.1, 0.2, 0.4}, m[4] = {NAN, 0.3, 0.1, 0.1};
    memcpy(r.drift_attn, a, sizeof a), memcpy(r.drift_mlp, m, sizeof m);
    eb_schedule s = view_of(&r);
    eb_cache_schedule *cs;
    const eb_act C = {EB_ACT_COMPUTE, 0}, R = {EB_ACT_REUSE, 0};
    cr_assert_eq(eb_cache_schedule_new(&cs, &s, "test", ""), EB_OK);
    eb_cache_schedule_add(cs, &s, 0, 0, -1, C, C, 1);
    eb_cache_schedule_add(cs, &s, 1, 0, -1, R, C, 1); /* attention stale by 0.1     */
    eb_cache_schedule_add(cs, &s, 2, 0, -1, R, R, 1); /* 0.1 + 0.2, MLP 0.1         */
    eb_cache_schedule_add(cs, &s, 3, 0, -1, C, R, 1); /* MLP 0.1 + 0.1              */
    eb_cache_plan p;
    cr_assert_eq(eb_cache_plan_build(&p, cs, 1, &s), EB_OK, "%s", eb_last_error());
    double want = (0.1 + 0.3 + 0.1 + 0.2) / (4 * 2);
    cr_expect(fabs(eb_predicted_deviation(&r, &p, NULL) - want) < 1e-15);
    /* a policy serving step 2 makes both modules stale there */
    uint8_t served[4] = {0, 0, 1, 0};
    p.policy.kind = EB_POLICY_TEACACHE;
    cr_expect(fabs(eb_predicted_deviation(&r, &p, served) - want) < 1e-15);
    served[1] = 1; /* step 1 served too: the MLP goes stale from step 0 */
    cr_expect(fabs(eb_predicted_deviation(&r, &p, served) - (0.1 + 0.3 + 0.3 + 0.4 + 0.5) / 8) < 1e-15);
    eb_cache_plan_free(&p);
    eb_cache_schedule_free(cs);
    eb_schedule_free(&s);
    eb_rec_data_free(&r);
}

/* ------------------------------------------------------------------------ */
/* Algorithm 1 with a scripted runner                                        */

typedef struct {
    const eb_rec_data *rec;
    const double *dev_both, *dev_cand; /* (S, N) relative ε-norm change of each candidate state */
    double drift_per_reuse;            /* the uncached norm grows by this for each earlier reuse-both step */
    int runs;
    int early_mlp_ok;                  /* 1 while every single-module step reused the phase's module */
    int last_chain, last_planned;      /* the progress the last chain was given */
} script;

/* One calibration chain: at each step the uncached norm is the base norm
 * raised for every earlier reuse-both step (the chain the prefix produces);
 * the candidates change it by their scripted amounts. */
static eb_status scripted_run(void *ctx, eb_cache_schedule *const tables[3], eb_search_decide decide, void *dctx,
                              const eb_search_progress *progress) {
    script *sc = ctx;
    cr_expect(progress->chain == 1 || progress->chain == sc->last_chain + 1, "chain %d after %d", progress->chain,
              sc->last_chain);
    cr_expect_geq(progress->planned, progress->chain);
    sc->last_chain = progress->chain, sc->last_planned = progress->planned;
    const int S = sc->rec->S, N = sc->rec->N;
    eb_cache_plan p;
    eb_status st = eb_cache_plan_build(&p, tables[1], sc->rec->L, NULL);
    if (st) return st;
    for (int k = 1; k < S; k++) /* the single-module table reuses the MLP early, attention late */
        if ((p.act[(size_t)k * p.L * 2 + 1].kind == EB_ACT_REUSE) != (sc->rec->t[k] >= 400)) sc->early_mlp_ok = 0;
    eb_cache_plan_free(&p);
    int both_before = 0;
    double norms[3 * N];
    for (int k = 1; k < S; k++) {
        for (int n = 0; n < N; n++) {
            double base = sc->rec->eps_norm_q[k * N + n] * (1 + sc->drift_per_reuse * both_before);
            norms[n] = base;
            norms[N + n] = base * (1 + sc->dev_cand[k * N + n]);
            norms[2 * N + n] = base * (1 + sc->dev_both[k * N + n]);
        }
        int state = decide(dctx, k, norms);
        if (state < 0) break;
        both_before += state == 2;
    }
    sc->runs++;
    return EB_OK;
}

Test(search, algorithm1_picks_the_expected_states) {
    enum { S = 8, N = 3 };
    eb_rec_data r;
    make_rec(&r, S, N, 2);
    /* δ(τ) = 0.02·τ + 0.005, scaled ×1: ~0.025 at t = 999, 0.005 at t = 0 */
    double both[S * N], cand[S * N];
    /* per step: what each sample's candidates change (relative) */
    const double plan_both[S][N] = {{0, 0, 0},          {0.001, 0.002, 0.5}, {0.5, 0.5, 0.001}, {0.5, 0.5, 0.5},
                                    {0.002, 0.5, 0.5},  {0.5, 0.5, 0.5},     {0.001, 0.001, 0}, {0.5, 0.5, 0.5}};
    const double plan_cand[S][N] = {{0, 0, 0},          {0.5, 0.5, 0.5},     {0.001, 0.002, 0.5}, {0.5, 0.5, 0.5},
                                    {0.001, 0.001, 0.5}, {0.5, 0.001, 0.5},  {0.5, 0.5, 0.5},     {0.001, 0.001, 0.001}};
    /* expected: step 1 two of three accept both → 2; step 2 → 1 (two accept cand, one both: all reach 1);
     * step 3 → 0; step 4 → 1 (one votes both, one cand: two reach 1); step 5 → 0; step 6 → 2; step 7 → 1 */
    const int want[S] = {0, 2, 1, 0, 1, 0, 2, 1};
    memcpy(both, plan_both, sizeof both), memcpy(cand, plan_cand, sizeof cand);
    script sc = {.rec = &r, .dev_both = both, .dev_cand = cand, .drift_per_reuse = 0.05, .early_mlp_ok = 1};
    eb_search_runner runner = {&sc, scripted_run};
    eb_search_opts o;
    eb_search_defaults(&o);
    o.scaling = EB_SCALING_NONE;
    o.t_thre = 0.4;
    eb_config c = small_config(2);
    eb_search_result res;
    cr_assert_eq(eb_search(&res, &r, NULL, &c, &o, &runner), EB_OK, "%s", eb_last_error());
    cr_expect_eq(res.runs, 1, "one calibration chain");
    cr_expect_eq(sc.runs, res.runs);
    cr_expect(sc.early_mlp_ok, "single-module state: MLP reused while t >= t_thre, attention after");
    eb_cache_plan p;
    cr_assert_eq(eb_cache_plan_build(&p, res.table, 2, NULL), EB_OK);
    for (int k = 0; k < S; k++) {
        eb_act a = p.act[k * 4], m = p.act[k * 4 + 1];
        int state = a.kind == EB_ACT_REUSE && m.kind == EB_ACT_REUSE ? 2 : a.kind != m.kind ? 1 : 0;
        cr_expect_eq(state, want[k], "step %d (t = %d): state %d, expected %d", k, r.t[k], state, want[k]);
    }
    cr_expect_str_eq(res.table->method, "eb-cache");
    cr_expect(strstr(res.table->params, "t_thre=0.4"), "%s", res.table->params);
    eb_cache_plan_free(&p);
    eb_search_result_free(&res);

    /* noise scaling takes part: a both-candidate norm raised by exactly the step's divisor is accepted */
    for (int i = 0; i < S * N; i++) both[i] = 0.3, cand[i] = 0.5;
    for (int k = 0; k < S; k++)
        for (int n = 0; n < N; n++) r.eps_norm[k * N + n] = r.eps_norm_q[k * N + n] * 1.3; /* λ = 1.3 per step */
    o.scaling = EB_SCALING_PER_STEP;
    sc.drift_per_reuse = 0;
    cr_assert_eq(eb_search(&res, &r, NULL, &c, &o, &runner), EB_OK, "%s", eb_last_error());
    for (int k = 1; k < S; k++) cr_expect(fabs(res.table->rows[k].scale - 1.3) < 1e-12);
    cr_assert_eq(eb_cache_plan_build(&p, res.table, 2, NULL), EB_OK);
    for (int k = 1; k < S; k++) cr_expect(p.act[k * 4].kind == EB_ACT_REUSE && p.act[k * 4 + 1].kind == EB_ACT_REUSE);
    eb_cache_plan_free(&p);
    eb_search_result_free(&res);

    cr_expect_eq(eb_search(&res, &r, NULL, &c, &o, NULL), EB_EINPUT, "no runner");
    cr_expect(strstr(eb_last_error(), "runner"), "%s", eb_last_error());
    eb_rec_data_free(&r);
}

/* With a target, the δ scale is bisected: the table meets it and a slightly smaller δ does not. */
Test(search, ebcache_target_by_bisection) {
    enum { S = 10, N = 2 };
    eb_rec_data r;
    make_rec(&r, S, N, 2);
    double both[S * N], cand[S * N];
    for (int k = 0; k < S; k++)
        for (int n = 0; n < N; n++) both[k * N + n] = 0.01 * (k + 1), cand[k * N + n] = 0.004 * (k + 1);
    script sc = {.rec = &r, .dev_both = both, .dev_cand = cand, .early_mlp_ok = 1};
    eb_search_runner runner = {&sc, scripted_run};
    eb_search_opts o;
    eb_search_defaults(&o);
    o.scaling = EB_SCALING_NONE;
    o.t_thre = 0.4;
    o.target = 0.7;
    eb_config c = small_config(2);
    eb_search_result res, smaller;
    cr_assert_eq(eb_search(&res, &r, NULL, &c, &o, &runner), EB_OK, "%s", eb_last_error());
    cr_expect(res.met && res.flops <= 0.7, "flops %g", res.flops);
    cr_expect(res.runs == sc.runs && res.runs < 20, "%d chains: one per bisection attempt", res.runs);
    cr_expect_eq(sc.last_planned, res.runs, "the progress total of the last chain is the number run");
    o.target = NAN;
    o.delta_a *= res.param * 0.99, o.delta_c *= res.param * 0.99;
    cr_assert_eq(eb_search(&smaller, &r, NULL, &c, &o, &runner), EB_OK);
    cr_expect(smaller.flops > 0.7, "δ 1%% below the bisection's must miss the target (flops %g)", smaller.flops);
    eb_search_result_free(&res), eb_search_result_free(&smaller);
    /* beyond reusing everything: cannot */
    eb_search_defaults(&o);
    o.scaling = EB_SCALING_NONE;
    o.target = 0.01;
    sc.runs = 0;
    cr_assert_eq(eb_search(&res, &r, NULL, &c, &o, &runner), EB_OK);
    cr_expect(!res.met && !res.table && strstr(res.note, "cannot"), "%s", res.note);
    cr_expect_eq(sc.runs, 0, "an unreachable target needs no runs");
    eb_rec_data_free(&r);
}

/* ------------------------------------------------------------------------ */
/* Budget                                                                    */

/* Every table of S = 4 steps and L = 2 blocks that computes or reuses each
 * module: the least drift proxy within each budget equals the programme's. */
Test(search, budget_is_optimal_on_exhaustive_cases) {
    enum { S = 4, L = 2, CELLS = (S - 1) * L * 2 };
    eb_config c = small_config(L);
    for (int trial = 0; trial < 3; trial++) {
        eb_rec_data r;
        make_rec(&r, S, 1, L);
        eb_schedule s = view_of(&r);
        static double flops[1 << CELLS], dev[1 << CELLS];
        for (int mask = 0; mask < 1 << CELLS; mask++) {
            eb_cache_schedule *cs;
            cr_assert_eq(eb_cache_schedule_new(&cs, &s, "x", ""), EB_OK);
            const eb_act C = {EB_ACT_COMPUTE, 0}, R = {EB_ACT_REUSE, 0};
            eb_cache_schedule_add(cs, &s, 0, 0, -1, C, C, 1);
            for (int k = 1; k < S; k++) {
                eb_cache_schedule_add(cs, &s, k, 0, -1, C, C, 1);
                for (int l = 0; l < L; l++) {
                    int bit = ((k - 1) * L + l) * 2;
                    eb_cache_schedule_add(cs, &s, k, l, l, mask >> bit & 1 ? R : C, mask >> (bit + 1) & 1 ? R : C, 1);
                }
            }
            score(&r, cs, &c, &flops[mask], &dev[mask]);
            eb_cache_schedule_free(cs);
        }
        /* budgets halfway between the distinct reachable fractions, and one below all */
        double sorted[1 << CELLS];
        memcpy(sorted, flops, sizeof sorted);
        int n = 1 << CELLS, distinct = 0;
        for (int i = 0; i < n; i++) {
            int seen = 0;
            for (int j = 0; j < distinct; j++) seen |= fabs(sorted[j] - flops[i]) < 1e-12;
            if (!seen) sorted[distinct++] = flops[i];
        }
        for (int i = 0; i < distinct; i++) {
            double next = 2;
            for (int j = 0; j < distinct; j++)
                if (sorted[j] > sorted[i] + 1e-12 && sorted[j] < next) next = sorted[j];
            double budget = next > 1.5 ? sorted[i] + 1e-6 : (sorted[i] + next) / 2;
            double best = INFINITY;
            for (int m = 0; m < n; m++)
                if (flops[m] <= budget && dev[m] < best) best = dev[m];
            eb_cache_schedule *cs;
            cr_assert_eq(eb_budget_table(&cs, &r, &c, budget, NULL), EB_OK, "%s", eb_last_error());
            double f, d;
            score(&r, cs, &c, &f, &d);
            cr_expect(f <= budget, "budget %.6f exceeded: %.6f", budget, f);
            cr_expect(fabs(d - best) < 1e-12, "trial %d budget %.6f: programme %.12g, exhaustive best %.12g", trial,
                      budget, d, best);
            eb_cache_schedule_free(cs);
        }
        double least = 1;
        for (int i = 0; i < distinct; i++) least = fmin(least, sorted[i]);
        eb_cache_schedule *cs;
        cr_expect_eq(eb_budget_table(&cs, &r, &c, least * 0.99, NULL), EB_EINPUT);
        cr_expect(strstr(eb_last_error(), "is below"), "%s", eb_last_error());
        eb_schedule_free(&s);
        eb_rec_data_free(&r);
    }
}

/* On a larger recording, every budget holds, and more budget never costs more drift. */
Test(search, budget_never_exceeds_its_budget) {
    eb_rec_data r;
    make_rec(&r, 30, 1, 6);
    eb_config c = small_config(6);
    double last = INFINITY;
    for (double budget = 0.3; budget <= 1.0001; budget += 0.1) {
        eb_search_opts o;
        eb_search_defaults(&o);
        o.method = eb_method_find("budget");
        o.target = budget;
        eb_search_result res;
        cr_assert_eq(eb_search(&res, &r, NULL, &c, &o, NULL), EB_OK, "%s", eb_last_error());
        cr_assert(res.met, "%s", res.note);
        double f = eb_cache_schedule_flops(res.table, &c);
        cr_expect(f <= budget && fabs(f - res.flops) < 1e-12, "budget %.2f: flops %.6f", budget, f);
        cr_expect(res.deviation <= last + 1e-15, "budget %.2f: deviation %g after %g", budget, res.deviation, last);
        last = res.deviation;
        /* a per-block table: some step must treat blocks differently */
        int overrides = 0;
        for (int i = 0; i < res.table->nrows; i++) overrides += res.table->rows[i].hi >= 0;
        if (budget < 0.95) cr_expect(overrides > 0, "budget %.2f: no per-block rows", budget);
        eb_search_result_free(&res);
    }
    /* below every module computing only at step 0 (0.176 here): cannot, no table */
    eb_search_opts o;
    eb_search_defaults(&o);
    o.method = eb_method_find("budget");
    o.target = 0.15;
    eb_search_result res;
    cr_assert_eq(eb_search(&res, &r, NULL, &c, &o, NULL), EB_OK, "%s", eb_last_error());
    cr_expect(!res.met && !res.table && res.flops > 0.15 && strstr(res.note, "cannot"), "%s", res.note);
    eb_rec_data_free(&r);
}

/* ------------------------------------------------------------------------ */
/* Baselines and bisection                                                   */

Test(search, baselines_meet_targets_by_bisection) {
    eb_rec_data r;
    make_rec(&r, 20, 2, 4);
    eb_config c = small_config(4);
    const eb_method *methods[] = {eb_method_find("fora"), eb_method_find("delta-dit"), eb_method_find("taylorseer")};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        eb_search_opts o;
        eb_search_defaults(&o);
        o.method = methods[i];
        o.target = 0.6;
        eb_search_result res, below;
        cr_assert_eq(eb_search(&res, &r, NULL, &c, &o, NULL), EB_OK, "%s", eb_last_error());
        cr_expect(res.met && res.flops <= 0.6, "%s: flops %g", methods[i]->name, res.flops);
        cr_expect_str_eq(res.table->method, methods[i]->name);
        /* the least interval that meets it: one less does not */
        o.target = NAN;
        o.interval = (int)res.param - 1;
        cr_assert_eq(eb_search(&below, &r, NULL, &c, &o, NULL), EB_OK, "%s", eb_last_error());
        cr_expect(below.flops > 0.6, "%s: interval %d also meets", methods[i]->name, o.interval);
        eb_search_result_free(&res), eb_search_result_free(&below);
    }
    /* fora's reuse-everything limit cannot reach 1% */
    eb_search_opts o;
    eb_search_defaults(&o);
    o.method = eb_method_find("fora");
    o.target = 0.01;
    eb_search_result res;
    cr_assert_eq(eb_search(&res, &r, NULL, &c, &o, NULL), EB_OK);
    cr_expect(!res.met && !res.table && strstr(res.note, "interval 20"), "%s", res.note);
    o.target = NAN;
    cr_expect_eq(eb_search(&res, &r, NULL, &c, &o, NULL), EB_EINPUT, "no interval, no target");
    eb_rec_data_free(&r);
}

Test(search, teacache_threshold_from_the_fitted_polynomial) {
    eb_rec_data r;
    make_rec(&r, 30, 2, 3);
    eb_config c = small_config(3);
    eb_search_opts o;
    eb_search_defaults(&o);
    o.method = eb_method_find("teacache");
    o.target = 0.5;
    eb_search_result res;
    cr_assert_eq(eb_search(&res, &r, NULL, &c, &o, NULL), EB_OK, "%s", eb_last_error());
    cr_expect(res.met && res.flops <= 0.5, "flops %g", res.flops);
    const eb_policy *p = &res.table->policy;
    cr_expect(p->kind == EB_POLICY_TEACACHE && p->npoly == 5 && fabs(p->threshold - res.param) < 1e-15);
    /* the predicted fraction is the simulated policy's */
    uint8_t skip[30];
    int skipped = eb_teacache_simulate(r.drift_block0, 30, p, skip);
    eb_macs_parts mp;
    eb_macs_split(&mp, &c);
    double per = eb_forward_macs(&c);
    cr_expect(fabs(res.flops - ((30 - skipped) * per + skipped * (mp.embed + mp.final + mp.adaln)) / (30 * per)) < 1e-12);
    /* a slightly lower threshold misses the target */
    eb_search_result lower;
    o.target = NAN;
    o.threshold = res.param * (1 - 1e-4);
    cr_assert_eq(eb_search(&lower, &r, NULL, &c, &o, NULL), EB_OK);
    cr_expect(lower.flops > 0.5);
    eb_search_result_free(&res), eb_search_result_free(&lower);
    eb_rec_data_free(&r);
}

Test(search, provenance_is_written_and_the_table_reads_back) {
    eb_rec_data r;
    make_rec(&r, 12, 1, 2);
    snprintf(r.sha256, sizeof r.sha256, "%064d", 7);
    eb_config c = small_config(2);
    eb_search_opts o;
    eb_search_defaults(&o);
    o.method = eb_method_find("fora");
    o.interval = 3;
    o.scaling = EB_SCALING_LINEAR;
    eb_search_result res;
    cr_assert_eq(eb_search(&res, &r, NULL, &c, &o, NULL), EB_OK, "%s", eb_last_error());
    char path[300];
    snprintf(path, sizeof path, "%s/t.schedule", workdir);
    cr_assert_eq(eb_search_write(&res, &r, path), EB_OK, "%s", eb_last_error());
    eb_cache_schedule *cs;
    cr_assert_eq(eb_cache_schedule_read(&cs, path), EB_OK, "%s", eb_last_error());
    cr_expect_str_eq(cs->method, "fora");
    cr_expect(strstr(cs->params, "interval=3") && strstr(cs->params, "scaling=linear"), "%s", cs->params);
    cr_expect_eq(cs->nrows, 12);
    eb_cache_schedule_free(cs);
    char text[8192];
    FILE *f = fopen(path, "r");
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    cr_expect(strstr(text, "# recording: synthetic.h5\n"), "%s", text);
    cr_expect(strstr(text, "# recording_sha256: 0000000000000000000000000000000000000000000000000000000000000007\n"));
    cr_expect(strstr(text, "# predicted_flops: ") && strstr(text, "# predicted_deviation: "));
    snprintf(path, sizeof path, "%s/no/such/dir/t.schedule", workdir);
    cr_expect_neq(eb_search_write(&res, &r, path), EB_OK);
    eb_search_result_free(&res);
    eb_rec_data_free(&r);
}

Test(search, bad_options_are_refused) {
    eb_rec_data r;
    make_rec(&r, 12, 1, 2);
    eb_config c = small_config(3);
    eb_search_opts o;
    eb_search_defaults(&o);
    o.method = eb_method_find("fora");
    o.interval = 2;
    eb_search_result res;
    cr_expect_eq(eb_search(&res, &r, NULL, &c, &o, NULL), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "2 blocks recorded"), "%s", eb_last_error());
    c = small_config(2);
    r.cached = 1;
    cr_expect_eq(eb_search(&res, &r, NULL, &c, &o, NULL), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "cache schedule"), "%s", eb_last_error());
    r.cached = 0;
    o.target = -1;
    cr_expect_eq(eb_search(&res, &r, NULL, &c, &o, NULL), EB_EINPUT);
    o.target = NAN;
    o.method = eb_method_find("budget");
    cr_expect_eq(eb_search(&res, &r, NULL, &c, &o, NULL), EB_EINPUT);
    const eb_method *m;
    cr_expect_eq(eb_method_parse(&m, "eb-cache"), EB_OK);
    cr_expect_eq(m, &eb_methods[eb_method_index(m)]);
    cr_expect_str_eq(m->name, "eb-cache");
    cr_expect_eq(eb_method_parse(&m, "foura"), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "fora, delta-dit"), "%s", eb_last_error());
    o.method = eb_method_find("none");
    cr_expect_eq(eb_search(&res, &r, NULL, &c, &o, NULL), EB_EINPUT);
    o.method = eb_method_find("fbcache"), o.target = 0.5;
    cr_expect_eq(eb_search(&res, &r, NULL, &c, &o, NULL), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "decided at run time"), "%s", eb_last_error());
    eb_scaling sc;
    cr_expect_eq(eb_scaling_parse(&sc, "two-phase"), EB_OK);
    cr_expect_eq(sc, EB_SCALING_TWO_PHASE);
    eb_rec_data_free(&r);
}

/* ------------------------------------------------------------------------ */
/* The commands, end to end on the tiny golden model                         */

#define MODEL GOLDEN_DIR "models/tiny_sigma.safetensors"

/* Runs "$EBCACHE_BIN <args>" with stdout and stderr to files; returns the exit status. */
static int run_cli(const char *fmt, ...) {
    const char *bin = getenv("EBCACHE_BIN") ? getenv("EBCACHE_BIN") : "build/opt/ebcache";
    char args[2048], cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "%s %s >%s/out.txt 2>%s/err.txt", bin, args, workdir, workdir);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* The text of a file in the work directory ("" when missing). */
static const char *slurp(const char *name) {
    static char buf[16384];
    char path[300];
    snprintf(path, sizeof path, "%s/%s", workdir, name);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = 0;
    return buf;
}

Test(search, cli_records_fits_searches_and_samples) {
    /* x_T and labels for 3 samples of the tiny model (4 × 8 × 8) */
    char path[300];
    float x[3 * 256];
    int32_t y[3] = {1, 4, 7};
    eb_rng_fill_normal(x, 3 * 256, eb_rng_key(11, 0));
    eb_h5w *w;
    snprintf(path, sizeof path, "%s/noise.h5", workdir);
    cr_assert_eq(eb_h5w_create(&w, path), EB_OK);
    int64_t dx[4] = {3, 4, 8, 8}, dy[1] = {3};
    eb_h5w_write(w, "noise", EB_H5_F32, x, 4, dx);
    eb_h5w_write(w, "y", EB_H5_I32, y, 1, dy);
    cr_assert_eq(eb_h5w_commit(w), EB_OK, "%s", eb_last_error());
    const char *d = workdir;
    cr_assert_eq(run_cli("record --model " MODEL " --sampler ddim --steps 8 --noise %s/noise.h5 --threads 1 --output "
                         "%s/rec.h5", d, d), 0, "%s", slurp("err.txt"));
    cr_assert_eq(run_cli("fit %s/rec.h5 --output %s/fit.h5", d, d), 0, "%s", slurp("err.txt"));

    /* Algorithm 1 replays the recorded run as one chain */
    cr_assert_eq(run_cli("search --method eb-cache --record %s/rec.h5 --fit %s/fit.h5 --threads 1 --output %s/e.schedule",
                         d, d, d), 0, "%s", slurp("err.txt"));
    const char *text = slurp("e.schedule");
    char sha[EB_SHA256_HEX], line[128];
    snprintf(path, sizeof path, "%s/rec.h5", workdir);
    cr_assert_eq(eb_sha256_file(path, sha), EB_OK);
    snprintf(line, sizeof line, "# recording_sha256: %s\n", sha);
    cr_expect(strstr(text, line), "%s", text);
    cr_expect(strstr(text, "## method: eb-cache\n") && strstr(text, "## sampler: ddim respacing=8\n"), "%s", text);
    cr_expect(strstr(text, "# calibration_chains: 1\n"), "one chain without a target: %s", text);

    /* every method's table runs in the sampler it was searched for */
    eb_cache_schedule *cs;
    const char *searches[] = {"--method eb-cache --threads 1 --target-speedup 1.3", "--method fora --interval 2",
                              "--method delta-dit --target-speedup 1.2", "--method teacache --target-speedup 1.5",
                              "--method taylorseer --interval 3 --noise-scaling linear",
                              "--method budget --target-speedup 1.5"};
    eb_model *m = golden_model("tiny_sigma.safetensors", 0);
    for (size_t i = 0; i < sizeof searches / sizeof searches[0]; i++) {
        cr_assert_eq(run_cli("search %s --record %s/rec.h5 --output %s/t.schedule", searches[i], d, d), 0, "%s: %s",
                     searches[i], slurp("err.txt"));
        snprintf(path, sizeof path, "%s/t.schedule", workdir);
        cr_assert_eq(eb_cache_schedule_read(&cs, path), EB_OK, "%s", eb_last_error());
        if (strstr(searches[i], "target-speedup 1.5") && cs->policy.kind == EB_POLICY_NONE)
            cr_expect(eb_cache_schedule_flops(cs, eb_model_config(m)) <= 1 / 1.5, "%s", searches[i]);
        eb_cache_schedule_free(cs);
        cr_expect_eq(run_cli("sample --model " MODEL " --sampler ddim --steps 8 --n 2 --threads 1 --schedule %s/t.schedule "
                             "--output %s/s.h5", d, d), 0, "%s: %s", searches[i], slurp("err.txt"));
    }
    eb_model_free(m);

    /* usage and unreachable targets: exit 2, a message, nothing written */
    unlink(path);
    cr_expect_eq(run_cli("search --method fora --record %s/rec.h5 --target-speedup 100 --output %s/t.schedule", d, d), 2);
    cr_expect(strstr(slurp("err.txt"), "cannot meet"), "%s", slurp("err.txt"));
    cr_expect(access(path, F_OK) != 0, "a table was written for an unreachable target");
    cr_expect_eq(run_cli("search --method foura --record %s/rec.h5 --interval 2 --output %s/t.schedule", d, d), 2);
    cr_expect_eq(run_cli("search --method fora --record %s/rec.h5 --output %s/t.schedule", d, d), 2);
    cr_expect_eq(run_cli("search --method fora --interval 2 --output %s/t.schedule", d), 2);
    cr_expect_eq(run_cli("search --method fora --record %s/rec.h5 --interval 2 --threshold 0.1 --output %s/t.schedule", d,
                         d), 2);
    cr_expect_eq(run_cli("search --method eb-cache --record %s/rec.h5 --threshold 0.1 --output %s/t.schedule", d, d), 2);
    cr_expect_eq(run_cli("search --method fora --record %s/missing.h5 --interval 2 --output %s/t.schedule", d, d), 2);
    cr_expect(strstr(slurp("err.txt"), "missing.h5"), "%s", slurp("err.txt"));
    cr_expect_eq(run_cli("search --help"), 0);
}

/* ------------------------------------------------------------------------ */
/* Degenerate fits and progress (issue 16)                                   */

/* test_fit.c: b_k of degenerate case c (0 split at the edge, 1 low R², 2 b_l < 0, 3 healthy). */
void test_degenerate_b(int c, const double *tau, double *b);

/* A 50-step recording (N = 2, L = 2) whose chain norms are the q norms divided by case c's b. */
static void degenerate_rec(eb_rec_data *r, int c) {
    make_rec(r, 50, 2, 2);
    double tau[50], b[50];
    for (int k = 0; k < 50; k++) tau[k] = r->t[k] / 1000.0;
    test_degenerate_b(c, tau, b);
    for (int k = 0; k < 50; k++)
        for (int n = 0; n < 2; n++) r->eps_norm[k * 2 + n] = r->eps_norm_q[k * 2 + n] / b[k];
}

/* Two-phase scaling from a degenerate fit falls back to no scaling (every
 * divisor 1) and says why; a healthy fit scales. */
Test(search, degenerate_fit_falls_back_to_no_noise_scaling) {
    eb_config c = small_config(2);
    for (int k = 0; k < 4; k++) {
        eb_rec_data r;
        degenerate_rec(&r, k);
        eb_search_opts o;
        eb_search_defaults(&o);
        o.method = eb_method_find("fora");
        o.interval = 2;
        o.scaling = EB_SCALING_TWO_PHASE;
        eb_search_result res;
        cr_assert_eq(eb_search(&res, &r, NULL, &c, &o, NULL), EB_OK, "%s", eb_last_error());
        int ones = 0;
        for (int i = 0; i < res.table->nrows; i++) ones += res.table->rows[i].scale == 1;
        if (k < 3) {
            cr_expect(res.two_phase.flags && res.scaling_fallback && res.scaling == EB_SCALING_NONE,
                      "case %d: flags %u fallback %d", k, res.two_phase.flags, res.scaling_fallback);
            cr_expect_eq(ones, res.table->nrows, "case %d: a scaled step despite the fallback", k);
            cr_expect(!strstr(res.table->params, "scaling="), "%s", res.table->params);
        } else {
            cr_expect(!res.two_phase.flags && !res.scaling_fallback && res.scaling == EB_SCALING_TWO_PHASE);
            cr_expect_lt(ones, res.table->nrows / 2, "healthy fit: the steps are scaled");
        }
        char path[300], text[16384];
        snprintf(path, sizeof path, "%s/t.schedule", workdir);
        cr_assert_eq(eb_search_write(&res, &r, path), EB_OK, "%s", eb_last_error());
        FILE *f = fopen(path, "r");
        text[fread(text, 1, sizeof text - 1, f)] = 0;
        fclose(f);
        cr_expect_eq(!!strstr(text, "# two_phase_fit: degenerate ("), k < 3, "case %d provenance", k);
        eb_search_result_free(&res);
        /* the other scalings do not use the two-phase fit: no flags, no fallback */
        o.scaling = EB_SCALING_PER_STEP;
        cr_assert_eq(eb_search(&res, &r, NULL, &c, &o, NULL), EB_OK, "%s", eb_last_error());
        cr_expect(!res.two_phase.flags && !res.scaling_fallback && res.scaling == EB_SCALING_PER_STEP);
        eb_search_result_free(&res);
        eb_rec_data_free(&r);
    }
}

/* `ebcache search` prints the warning on stderr and writes the fallback table. */
Test(search, cli_search_warns_and_falls_back) {
    for (int k = 0; k < 4; k++) {
        eb_rec_data r;
        degenerate_rec(&r, k);
        char rec[300];
        snprintf(rec, sizeof rec, "%s/rec.h5", workdir);
        test_write_recording(rec, &r);
        eb_rec_data_free(&r);
        cr_assert_eq(run_cli("search --method fora --interval 2 --noise-scaling two-phase --model " MODEL
                             " --record %s --output %s/t.schedule", rec, workdir), 0, "%s", slurp("err.txt"));
        const char *err = slurp("err.txt");
        int warned = strstr(err, "warning: the two-phase fit is degenerate") != NULL;
        cr_expect_eq(warned, k < 3, "case %d: %s", k, err);
        if (k < 3) cr_expect(strstr(err, "does not scale ε (divisor 1 at every step)"), "%s", err);
        char path[300];
        snprintf(path, sizeof path, "%s/t.schedule", workdir);
        eb_cache_schedule *cs;
        cr_assert_eq(eb_cache_schedule_read(&cs, path), EB_OK, "%s", eb_last_error());
        int ones = 0;
        for (int i = 0; i < cs->nrows; i++) ones += cs->rows[i].scale == 1;
        cr_expect_eq(ones == cs->nrows, k < 3, "case %d: %d of %d rows unscaled", k, ones, cs->nrows);
        eb_cache_schedule_free(cs);
    }
}

/* eb-cache's calibration chains show a progress line with the planned total
 * and an ETA on a terminal (a pty from script(1)), nothing otherwise;
 * a target speedup must exceed 1. */
Test(search, cli_ebcache_progress_and_target_check) {
    if (system("command -v script >/dev/null 2>&1")) cr_skip_test("no script(1) for a terminal");
    const char *d = workdir;
    cr_assert_eq(run_cli("record --model " MODEL " --sampler ddim --steps 8 --n 2 --threads 1 --output %s/rec.h5", d), 0,
                 "%s", slurp("err.txt"));
    /* a recording from --seed stores its labels: eb-cache can replay it */
    const char *bin = getenv("EBCACHE_BIN") ? getenv("EBCACHE_BIN") : "build/opt/ebcache";
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "script -qec '%s search --method eb-cache --record %s/rec.h5 --threads 1 --target-speedup 1.3 --output "
             "%s/e.schedule' /dev/null > %s/tty.txt 2>&1", bin, d, d, d);
    cr_assert_eq(system(cmd), 0, "%s", slurp("tty.txt"));
    const char *tty = slurp("tty.txt");
    cr_expect(strstr(tty, "eb-cache search: chain 1/") && strstr(tty, "step 8/8") && strstr(tty, "(ETA "), "%s", tty);
    cr_assert_eq(run_cli("search --method eb-cache --record %s/rec.h5 --threads 1 --output %s/e.schedule", d, d), 0,
                 "%s", slurp("err.txt"));
    cr_expect(!strstr(slurp("err.txt"), "chain 1/"), "progress on a file: %s", slurp("err.txt"));
    const char *bad[] = {"1", "0.5", "-2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_expect_eq(run_cli("search --method eb-cache --record %s/rec.h5 --target-speedup %s --output %s/x.schedule", d,
                             bad[i], d), 2, "--target-speedup %s", bad[i]);
        cr_expect(strstr(slurp("err.txt"), "not above 1"), "%s", slurp("err.txt"));
    }
}
