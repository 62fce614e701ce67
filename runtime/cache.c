/* cache.c — executing a cache schedule: per block and step, compute, reuse
 * (the pre-gate output of the last compute, re-gated with the current step's
 * adaLN gate), Taylor forecast (TaylorSeer), recompute only ToCa's best-scored
 * tokens of the MLP (partial), or skip a run of blocks by its cached residual
 * (Δ-DiT); TeaCache and first-block cache decide skips at run time.
 * Semantics: docs/schedule.md; references: reference/cache_ref.py,
 * reference/toca_ref.py. */
#include "runtime/cache.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct eb_cache {
    eb_model *m;
    eb_cache_plan plan;
    eb_macs_parts parts;
    int capacity;        /* model-batch rows the buffers hold                        */
    int batch;           /* rows of this trajectory (set by step 0)                  */
    int next_step;
    size_t bytes;
    float **factors;     /* (L·2) per module: Taylor factors (cap, batch·T·D), or NULL */
    int *have;           /* (L·2) valid factors                                       */
    int *last_compute;   /* (L·2) step of the module's last compute                   */
    float **residual;    /* (nruns) (batch, T, D) output − input of each run         */
    float *probe_prev;   /* policy: last probe (TeaCache input / first-block residual) */
    float *probe_cur;    /* first-block cache: this step's first-block residual       */
    int have_probe;
    double accumulated;  /* TeaCache: rescaled relative L1 change since the last compute */
    uint8_t *policy_skip; /* (S) */
    float **colsum;      /* (L) ToCa: (batch, NH, T) column sums of the last attention map, or NULL */
    float **age;         /* (L) ToCa: (batch, T) partial MLP steps since each token's compute, or NULL */
    float *zeros;        /* ToCa: (batch, T) zeros that reset an age                 */
    int32_t *fresh;      /* ToCa: (batch, T) the tokens a partial MLP recomputes      */
    int skipped;
    double macs;
    struct {              /* eb_cache_save's copy                                     */
        float **factors;
        int *have, *last_compute, next_step, batch, skipped;
        double macs;
    } saved;
};

void eb_cache_free(eb_cache *c) {
    if (!c) return;
    const eb_backend *be = c->m->be;
    for (int i = 0; c->factors && i < c->plan.L * 2; i++) be->free(c->factors[i]);
    for (int i = 0; c->saved.factors && i < c->plan.L * 2; i++) be->free(c->saved.factors[i]);
    free(c->saved.factors), free(c->saved.have), free(c->saved.last_compute);
    for (int r = 0; c->residual && r < c->plan.nruns; r++) be->free(c->residual[r]);
    be->free(c->probe_prev);
    be->free(c->probe_cur);
    for (int l = 0; c->colsum && l < c->plan.L; l++) be->free(c->colsum[l]), be->free(c->age[l]);
    be->free(c->zeros), be->free(c->fresh);
    free(c->factors), free(c->have), free(c->last_compute), free(c->residual), free(c->policy_skip);
    free(c->colsum), free(c->age);
    eb_cache_plan_free(&c->plan);
    free(c);
}

/* A backend buffer of `n` floats, counted in c->bytes; NULL when out of memory. */
static float *cache_alloc(eb_cache *c, size_t n) {
    float *p = c->m->be->alloc(n * sizeof(float));
    if (p) c->bytes += n * sizeof(float);
    return p;
}

/* A table with partial actions needs the backend's ToCa ops and a square
 * token grid that ToCa's patches divide. */
static eb_status toca_check(const eb_cache *c, const eb_model *m) {
    const char *missing = eb_backend_missing_op(m->be, EB_BACKEND_TOCA_OPS);
    if (missing)
        return eb_fail(EB_ERUNTIME, "cache: the %s backend has no %s, which the table's partial (ToCa) MLPs need",
                       m->be->name, missing);
    const int grid = eb_grid(&m->cfg), g = c->plan.toca.grid;
    if (grid % g)
        return eb_fail(EB_EINPUT, "cache: ToCa's score patches of %dx%d tokens do not tile the model's %dx%d token grid",
                       g, g, grid, grid);
    return EB_OK;
}

eb_status eb_cache_create(eb_cache **out, eb_model *m, const eb_cache_schedule *cs, const eb_schedule *s,
                          int capacity) {
    *out = NULL;
    const char *missing = eb_backend_missing_op(m->be, EB_BACKEND_CACHE_OPS);
    if (missing) return eb_fail(EB_ERUNTIME, "cache: the %s backend has no %s, which the cache engine needs", m->be->name, missing);
    eb_cache *c = calloc(1, sizeof *c);
    if (!c) return eb_fail(EB_ERUNTIME, "out of memory");
    c->m = m;
    eb_status st = eb_cache_plan_build(&c->plan, cs, m->cfg.depth, s);
    if (st) {
        free(c);
        return st;
    }
    const eb_cache_plan *p = &c->plan;
    const int slots = p->L * 2, T = eb_tokens(&m->cfg);
    const size_t n = (size_t)capacity * T * m->cfg.hidden_size;
    if (p->partial && (st = toca_check(c, m))) {
        eb_cache_free(c);
        return st;
    }
    c->capacity = capacity;
    eb_macs_split(&c->parts, &m->cfg);
    c->factors = calloc(slots, sizeof *c->factors);
    c->have = calloc(slots, sizeof *c->have);
    c->last_compute = calloc(slots, sizeof *c->last_compute);
    c->residual = calloc(p->nruns ? p->nruns : 1, sizeof *c->residual);
    c->policy_skip = calloc(p->S, 1);
    int ok = c->factors && c->have && c->last_compute && c->residual && c->policy_skip;
    for (int i = 0; ok && i < slots; i++)
        if (p->slot_cap[i]) ok = !!(c->factors[i] = cache_alloc(c, p->slot_cap[i] * n));
    for (int r = 0; ok && r < p->nruns; r++) ok = !!(c->residual[r] = cache_alloc(c, n));
    if (ok && p->policy.kind != EB_POLICY_NONE) ok = !!(c->probe_prev = cache_alloc(c, n));
    if (ok && p->policy.kind == EB_POLICY_FBCACHE) ok = !!(c->probe_cur = cache_alloc(c, n));
    if (ok && p->partial) {
        const size_t bt = (size_t)capacity * T;
        ok = (c->colsum = calloc(p->L, sizeof *c->colsum)) && (c->age = calloc(p->L, sizeof *c->age)) &&
             (c->zeros = cache_alloc(c, bt)) && (c->fresh = (int32_t *)cache_alloc(c, bt));
        for (int l = 0; ok && l < p->L; l++)
            if (p->colsum[l])
                ok = (c->colsum[l] = cache_alloc(c, bt * m->cfg.num_heads)) && (c->age[l] = cache_alloc(c, bt));
    }
    if (!ok) {
        size_t bytes = c->bytes;
        eb_cache_free(c);
        return eb_fail(EB_ERUNTIME, "out of memory for the schedule's caches (%zu bytes allocated so far)", bytes);
    }
    *out = c;
    return EB_OK;
}

eb_status eb_cache_use_step(eb_cache *c, int step, const eb_cache_plan *from) {
    const eb_cache_plan *p = &c->plan;
    if (from->S != p->S || from->L != p->L || step < 0 || step >= p->S)
        return eb_fail(EB_EINPUT, "cache: step %d of a %d-step, %d-block plan for a %d-step, %d-block cache", step,
                       from->S, from->L, p->S, p->L);
    if (from->nruns || from->policy.kind != EB_POLICY_NONE || p->nruns || p->policy.kind != EB_POLICY_NONE ||
        from->partial || p->partial)
        return eb_fail(EB_EINPUT, "cache: step actions move between plans without block runs, policies or partial "
                                  "actions only");
    for (int i = 0; i < p->L * 2; i++) {
        eb_act a = from->act[(size_t)step * p->L * 2 + i];
        if (a.kind != EB_ACT_COMPUTE && (!p->slot_cap[i] || (a.kind == EB_ACT_FORECAST && a.order + 1 > p->slot_cap[i])))
            return eb_fail(EB_EINPUT, "cache: step %d reuses block %d's %s, which this cache does not keep", step, i / 2,
                           i % 2 ? "MLP" : "attention");
        p->act[(size_t)step * p->L * 2 + i] = a;
    }
    p->scale[step] = from->scale[step];
    return EB_OK;
}

eb_status eb_cache_save(eb_cache *c) {
    const eb_backend *be = c->m->be;
    if (c->plan.partial)
        return eb_fail(EB_EINPUT, "cache: saving the state of a table with partial (ToCa) actions is not supported");
    const int slots = c->plan.L * 2;
    const size_t n = (size_t)c->capacity * eb_tokens(&c->m->cfg) * c->m->cfg.hidden_size;
    if (!c->saved.factors) {
        c->saved.factors = calloc(slots, sizeof *c->saved.factors);
        c->saved.have = calloc(slots, sizeof *c->saved.have);
        c->saved.last_compute = calloc(slots, sizeof *c->saved.last_compute);
        int ok = c->saved.factors && c->saved.have && c->saved.last_compute;
        for (int i = 0; ok && i < slots; i++)
            if (c->plan.slot_cap[i]) ok = !!(c->saved.factors[i] = be->alloc(c->plan.slot_cap[i] * n * sizeof(float)));
        if (!ok) return eb_fail(EB_ERUNTIME, "cache: out of memory for a saved state");
    }
    for (int i = 0; i < slots; i++)
        if (c->plan.slot_cap[i]) be->copy(c->saved.factors[i], c->factors[i], c->plan.slot_cap[i] * n);
    memcpy(c->saved.have, c->have, slots * sizeof *c->have);
    memcpy(c->saved.last_compute, c->last_compute, slots * sizeof *c->last_compute);
    c->saved.next_step = c->next_step, c->saved.batch = c->batch, c->saved.skipped = c->skipped;
    c->saved.macs = c->macs;
    return EB_OK;
}

void eb_cache_restore(eb_cache *c) {
    const int slots = c->plan.L * 2;
    const size_t n = (size_t)c->capacity * eb_tokens(&c->m->cfg) * c->m->cfg.hidden_size;
    if (!c->saved.factors) return;
    for (int i = 0; i < slots; i++)
        if (c->plan.slot_cap[i]) c->m->be->copy(c->factors[i], c->saved.factors[i], c->plan.slot_cap[i] * n);
    memcpy(c->have, c->saved.have, slots * sizeof *c->have);
    memcpy(c->last_compute, c->saved.last_compute, slots * sizeof *c->last_compute);
    c->next_step = c->saved.next_step, c->batch = c->saved.batch, c->skipped = c->saved.skipped;
    c->macs = c->saved.macs;
}

float eb_cache_eps_scale(const eb_cache *c, int step) { return c->plan.scale[step]; }
size_t eb_cache_bytes(const eb_cache *c) { return c->bytes; }
double eb_cache_macs(const eb_cache *c) { return c->macs; }
int eb_cache_steps_skipped(const eb_cache *c) { return c->skipped; }
int eb_cache_policy_skipped(const eb_cache *c, int step) { return c->policy_skip[step]; }

/* TeaCache: probe = block 0's modulated input; the rescaled relative L1 change
 * accumulates until it reaches the threshold; first and last steps compute. */
static int teacache_skips(eb_cache *c, int step, int B, size_t n) {
    eb_model *m = c->m;
    eb_acts *a = &m->acts;
    int D = m->cfg.hidden_size, T = eb_tokens(&m->cfg);
    eb_block_modulation(m, 0, B); /* block 0 below reuses this modulation */
    m->be->ln_modulate(a->normed, a->tokens, a->mod, a->mod + D, B, T, D, 6 * D);
    int must = step == 0 || step == c->plan.S - 1 || !c->have_probe;
    double change = must ? 0 : m->be->rel_l1(a->normed, c->probe_prev, n);
    int skip = eb_teacache_skip(&c->accumulated, change, &c->plan.policy, must);
    m->be->copy(c->probe_prev, a->normed, n);
    c->have_probe = 1;
    return skip;
}

/* First-block cache, after the first F blocks: probe_cur holds the tokens
 * before block 0; turn it into the first blocks' residual and compare it with
 * the one of the last computed step (kept only when this step computes). */
static int fbcache_skips(eb_cache *c, size_t n) {
    const eb_backend *be = c->m->be;
    be->add_scaled(c->probe_cur, c->m->acts.tokens, -1.0f, c->probe_cur, n);
    int skip = c->have_probe && be->rel_l1(c->probe_cur, c->probe_prev, n) < c->plan.policy.threshold;
    if (!skip) {
        float *t = c->probe_prev;
        c->probe_prev = c->probe_cur, c->probe_cur = t;
        c->have_probe = 1;
    }
    return skip;
}

/* ToCa's partial MLP of block l: score the tokens (the layer's last attention
 * map and their ages), recompute the best K and scatter their pre-gate
 * outputs into the cached MLP output (factor 0 of its slot). */
static void partial_mlp(eb_cache *c, int step, int l, int B) {
    eb_model *m = c->m;
    const eb_backend *be = m->be;
    const eb_cache_plan *p = &c->plan;
    const int T = eb_tokens(&m->cfg), D = m->cfg.hidden_size;
    const int K = eb_partial_tokens(p->ratio[(size_t)step * p->L + l], T);
    be->toca_select(c->fresh, c->age[l], c->colsum[l], B, m->cfg.num_heads, T, K, p->toca.weight, p->toca.fresh,
                    p->toca.bonus, p->toca.grid);
    if (!K) return;
    eb_block_mlp_partial(m, l, B, K, c->fresh);
    be->token_scatter(c->factors[l * 2 + 1], m->acts.branch, c->fresh, B, T, K, D);
}

/* Attention (module 0) or MLP (1) of block l at `step`: compute, reuse,
 * forecast or (MLP) partially compute its pre-gate output, then add it
 * through the current gate. */
static void run_module(eb_cache *c, int step, int l, int module, int B, size_t n) {
    eb_model *m = c->m;
    const eb_backend *be = m->be;
    eb_acts *a = &m->acts;
    int slot = l * 2 + module;
    eb_act act = c->plan.act[((size_t)step * c->plan.L + l) * 2 + module];
    const float *branch = a->branch;
    if (act.kind == EB_ACT_COMPUTE) {
        if (module) eb_block_mlp_branch(m, l, B);
        else eb_block_attn_branch_colsum(m, l, B, c->colsum ? c->colsum[l] : NULL);
        if (module && c->age && c->age[l]) be->copy(c->age[l], c->zeros, (size_t)B * eb_tokens(&m->cfg));
        int cap = c->plan.slot_cap[slot];
        if (cap) {
            be->taylor_update(c->factors[slot], cap, c->have[slot], a->branch, n, (float)(step - c->last_compute[slot]));
            c->have[slot] = c->have[slot] < cap ? c->have[slot] + 1 : cap;
            c->last_compute[slot] = step;
        }
    } else if (act.kind == EB_ACT_REUSE) {
        branch = c->factors[slot];
    } else if (act.kind == EB_ACT_PARTIAL) {
        partial_mlp(c, step, l, B);
        branch = c->factors[slot];
    } else {
        int orders = act.order + 1 < c->have[slot] ? act.order + 1 : c->have[slot];
        be->taylor_forecast(a->branch, c->factors[slot], orders, n, (float)(step - c->last_compute[slot]));
    }
    eb_block_add_branch(m, l, module, branch, B);
}

eb_status eb_cache_forward_batch(eb_cache *c, int step, int B) {
    const eb_cache_plan *p = &c->plan;
    if (step != c->next_step)
        return eb_fail(EB_EINPUT, "cache: step %d run out of order (expected step %d of %d)", step, c->next_step, p->S);
    if (step == 0) {
        if (B > c->capacity) return eb_fail(EB_EINPUT, "cache: model batch %d exceeds its capacity %d", B, c->capacity);
        c->batch = B;
    } else if (B != c->batch) {
        return eb_fail(EB_EINPUT, "cache: step %d has a model batch of %d rows, the trajectory %d", step, B, c->batch);
    }
    c->next_step++;
    eb_model *m = c->m;
    const eb_backend *be = m->be;
    eb_acts *a = &m->acts;
    const size_t n = (size_t)B * eb_tokens(&m->cfg) * m->cfg.hidden_size;
    const eb_policy_kind policy = p->policy.kind;

    eb_embed(m, B);
    int skip = policy == EB_POLICY_TEACACHE && teacache_skips(c, step, B, n);
    if (policy == EB_POLICY_FBCACHE) be->copy(c->probe_cur, a->tokens, n);
    for (int l = 0; l < p->L && !skip; l++) {
        if (policy == EB_POLICY_FBCACHE && l == p->policy.blocks && (skip = fbcache_skips(c, n))) break;
        int jump_to = -1;
        for (int r = 0; r < p->nruns; r++) {
            if (p->runs[r].lo != l) continue;
            if (p->run_use[(size_t)step * p->nruns + r]) {
                be->add_scaled(a->tokens, a->tokens, 1.0f, c->residual[r], n);
                jump_to = p->runs[r].hi;
            } else if (p->run_record[(size_t)step * p->nruns + r]) {
                be->copy(c->residual[r], a->tokens, n); /* the run's input, until its end */
            }
        }
        if (jump_to >= 0) {
            l = jump_to - 1;
            continue;
        }
        if (!(policy == EB_POLICY_TEACACHE && l == 0)) eb_block_modulation(m, l, B);
        run_module(c, step, l, 0, B, n);
        run_module(c, step, l, 1, B, n);
        for (int r = 0; r < p->nruns; r++)
            if (p->runs[r].hi == l + 1 && p->run_record[(size_t)step * p->nruns + r])
                be->add_scaled(c->residual[r], a->tokens, -1.0f, c->residual[r], n);
    }
    if (skip) {
        /* the policy's run is the only one: TeaCache all blocks, first-block cache the rest */
        be->add_scaled(a->tokens, a->tokens, 1.0f, c->residual[0], n);
        c->policy_skip[step] = 1;
        c->skipped++;
    }
    eb_final_layer(m, B);
    c->macs += B * eb_plan_step_macs(p, &c->parts, step, skip);
    return EB_OK;
}
