/* sample.c — the reverse-process loop (official p_sample_loop / ddim_sample_loop)
 * with guidance and ebcache's counter-based noise. */
#include "runtime/cache.h"
#include "runtime/clock.h"
#include "runtime/chain.h"
#include "runtime/diffusion.h"
#include "runtime/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* Fills noise (N, per) with the step-i streams of samples first_index.. . */
static void draw_step_noise(float *noise, size_t per, int N, uint64_t seed, int first_index, int i) {
    for (int n = 0; n < N; n++)
        eb_rng_fill_normal(noise + (size_t)n * per, per, eb_rng_key(seed, eb_stream_step(first_index + n, i)));
}

/* ε (the first C of the Co channels of each row) divided by the step's scale, after guidance. */
static void scale_eps(float *model_out, int N, int C, int Co, int HW, float scale) {
    if (scale == 1.0f) return;
    for (int n = 0; n < N; n++)
        for (size_t j = 0; j < (size_t)C * HW; j++) model_out[(size_t)n * Co * HW + j] /= scale;
}

struct eb_chain {
    eb_model *m;
    const eb_schedule *s;
    eb_sampler_opts o;
    eb_cache *cache;
    int N, first_index, C, Co, HW;
    float *model_out, *pred_xstart, *mean, *log_var, *noise;
    int32_t *t;
};

void eb_chain_free(eb_chain *c) {
    if (!c) return;
    free(c->model_out), free(c->pred_xstart), free(c->mean), free(c->log_var), free(c->noise), free(c->t);
    free(c);
}

eb_status eb_chain_create(eb_chain **out, eb_model *m, const eb_schedule *s, const eb_sampler_opts *o,
                          eb_cache *cache, int N, int first_index) {
    *out = NULL;
    const eb_config *cfg = &m->cfg;
    if (o->var_type == EB_VAR_LEARNED_RANGE && !cfg->learn_sigma)
        return eb_fail(EB_EINPUT, "learned-range variance needs a model with learn_sigma");
    if (o->var_type != EB_VAR_LEARNED_RANGE && cfg->learn_sigma)
        return eb_fail(EB_EINPUT, "a learn_sigma model samples with its learned variance");
    if (o->kind == EB_SAMPLER_DDIM && !(o->eta >= 0.0f)) return eb_fail(EB_EINPUT, "eta %g must be >= 0", o->eta);
    if (N <= 0) return eb_fail(EB_EINPUT, "batch size %d must be positive", N);
    eb_chain *c = calloc(1, sizeof *c);
    if (!c) return eb_fail(EB_ERUNTIME, "out of memory");
    *c = (eb_chain){.m = m, .s = s, .o = *o, .cache = cache, .N = N, .first_index = first_index,
                    .C = cfg->in_channels, .Co = eb_out_channels(cfg), .HW = cfg->input_size * cfg->input_size};
    const size_t n = (size_t)N * c->C * c->HW;
    c->model_out = malloc((size_t)N * c->Co * c->HW * sizeof(float));
    c->pred_xstart = malloc(n * sizeof(float)), c->mean = malloc(n * sizeof(float));
    c->log_var = malloc(n * sizeof(float)), c->noise = malloc(n * sizeof(float));
    c->t = malloc(N * sizeof(int32_t));
    eb_status st = EB_OK;
    if (!c->model_out || !c->pred_xstart || !c->mean || !c->log_var || !c->noise || !c->t)
        st = eb_fail(EB_ERUNTIME, "out of memory");
    if (!st) st = eb_acts_reserve(m, o->cfg_scale != 1.0f ? 2 * N : N); /* every buffer before the first step */
    if (st) {
        eb_chain_free(c);
        return st;
    }
    *out = c;
    return EB_OK;
}

const float *eb_chain_output(const eb_chain *c) { return c->model_out; }

eb_status eb_chain_eval(eb_chain *c, int step, const float *x, const int32_t *y) {
    const int i = c->s->S - 1 - step, guided = c->o.cfg_scale != 1.0f;
    for (int k = 0; k < c->N; k++) c->t[k] = c->s->timestep[i];
    eb_status st = eb_forward_run(c->m, c->cache, step, c->model_out, x, c->t, y, c->N, guided, c->o.cfg_scale,
                                  c->o.guide_channels);
    if (st) {
        /* x was checked at step 0, so a bad x later means the chain diverged */
        if (st == EB_EINPUT && step > 0)
            st = eb_fail(EB_ERUNTIME, "sampling diverged before step %d (t = %d): %s", step, c->s->timestep[i],
                         eb_last_error());
        return st;
    }
    if (c->cache) scale_eps(c->model_out, c->N, c->C, c->Co, c->HW, eb_cache_eps_scale(c->cache, step));
    return EB_OK;
}

void eb_chain_advance(eb_chain *c, int step, float *x) {
    const int i = c->s->S - 1 - step;
    const size_t n = (size_t)c->N * c->C * c->HW;
    eb_p_mean_variance(c->s, c->o.var_type, i, x, c->model_out, c->N, c->C, c->HW, c->mean, c->log_var,
                       c->pred_xstart);
    int needs_noise = i > 0 && (c->o.kind == EB_SAMPLER_DDPM || c->o.eta != 0.0f);
    if (needs_noise) draw_step_noise(c->noise, (size_t)c->C * c->HW, c->N, c->o.seed, c->first_index, i);
    if (c->o.kind == EB_SAMPLER_DDPM)
        eb_ddpm_step(i, x, c->mean, c->log_var, c->noise, n);
    else
        eb_ddim_step(c->s, i, c->o.eta, x, c->pred_xstart, needs_noise ? c->noise : NULL, n);
}

eb_status eb_sample_cached(eb_model *m, const eb_schedule *s, const eb_sampler_opts *o, const eb_cache_schedule *cs,
                           float *x, const int32_t *y, int N, int first_index, eb_cache_stats *stats) {
    const eb_config *c = &m->cfg;
    const int B = o->cfg_scale != 1.0f ? 2 * N : N;
    eb_cache *cache = NULL;
    eb_chain *chain = NULL;
    eb_status st = cs && N > 0 ? eb_cache_create(&cache, m, cs, s, B) : EB_OK;
    if (!st) st = eb_chain_create(&chain, m, s, o, cache, N, first_index);
    const int show = o->progress && isatty(2);
    double start = eb_now_seconds();
    for (int step = 0; step < s->S && !st; step++) {
        if ((st = eb_chain_eval(chain, step, x, y))) break;
        if (m->obs && m->obs->step && (st = m->obs->step(m->obs->ctx, step, x, chain->model_out, N))) break;
        eb_chain_advance(chain, step, x);
        if (show) {
            int done = step + 1;
            double el = eb_now_seconds() - start;
            fprintf(stderr, "\rsampling: step %d/%d  %.2f s/step  ETA %.0f s   ", done, s->S, el / done,
                    el / done * (s->S - done));
        }
    }
    if (show) fprintf(stderr, "\n");
    if (!st && stats) {
        double uncached = (double)s->S * B * eb_forward_macs(c);
        stats->macs += cache ? eb_cache_macs(cache) : uncached;
        stats->macs_uncached += uncached;
        if (cache && eb_cache_bytes(cache) > stats->cache_bytes) stats->cache_bytes = eb_cache_bytes(cache);
        stats->steps += s->S;
        stats->steps_skipped += cache ? eb_cache_steps_skipped(cache) : 0;
    }
    eb_chain_free(chain);
    eb_cache_free(cache);
    return st;
}

eb_status eb_sample(eb_model *m, const eb_schedule *s, const eb_sampler_opts *o, float *x, const int32_t *y, int N,
                    int first_index) {
    return eb_sample_cached(m, s, o, NULL, x, y, N, first_index, NULL);
}
