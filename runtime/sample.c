/* sample.c — the reverse-process loop (official p_sample_loop / ddim_sample_loop)
 * with guidance and ebcache's counter-based noise. */
#include "cache.h"
#include "diffusion.h"
#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

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

eb_status eb_sample_cached(eb_model *m, const eb_schedule *s, const eb_sampler_opts *o, const eb_cache_schedule *cs,
                           float *x, const int32_t *y, int N, int first_index, eb_cache_stats *stats) {
    const eb_config *c = &m->cfg;
    const int C = c->in_channels, HW = c->input_size * c->input_size, Co = eb_out_channels(c);
    if (o->var_type == EB_VAR_LEARNED_RANGE && !c->learn_sigma)
        return eb_fail(EB_EINPUT, "learned-range variance needs a model with learn_sigma");
    if (o->var_type != EB_VAR_LEARNED_RANGE && c->learn_sigma)
        return eb_fail(EB_EINPUT, "a learn_sigma model samples with its learned variance");
    if (o->kind == EB_SAMPLER_DDIM && !(o->eta >= 0.0f)) return eb_fail(EB_EINPUT, "eta %g must be >= 0", o->eta);
    if (N <= 0) return eb_fail(EB_EINPUT, "batch size %d must be positive", N);
    const size_t n = (size_t)N * C * HW;
    const int guided = o->cfg_scale != 1.0f, B = guided ? 2 * N : N;
    eb_cache *cache = NULL;
    eb_status st = cs ? eb_cache_create(&cache, m, cs, s, B) : EB_OK;
    if (st) return st;
    float *model_out = malloc((size_t)N * Co * HW * sizeof(float));
    float *pred_xstart = malloc(n * sizeof(float)), *mean = malloc(n * sizeof(float));
    float *log_var = malloc(n * sizeof(float)), *noise = malloc(n * sizeof(float));
    int32_t *t = malloc(N * sizeof(int32_t));
    if (!model_out || !pred_xstart || !mean || !log_var || !noise || !t) st = eb_fail(EB_ERUNTIME, "out of memory");
    if (!st) st = eb_acts_reserve(m, B); /* every buffer before the first step */
    const int show = o->progress && isatty(2);
    double start = now_seconds();
    for (int i = s->S - 1; i >= 0 && !st; i--) {
        const int step = s->S - 1 - i;
        for (int k = 0; k < N; k++) t[k] = s->timestep[i];
        st = eb_forward_run(m, cache, step, model_out, x, t, y, N, guided, o->cfg_scale, o->guide_channels);
        if (st) {
            /* x was checked on entry, so a bad x now means the chain diverged */
            if (st == EB_EINPUT && i < s->S - 1)
                st = eb_fail(EB_ERUNTIME, "sampling diverged before step %d (t = %d): %s", step, s->timestep[i],
                             eb_last_error());
            break;
        }
        if (cache) scale_eps(model_out, N, C, Co, HW, eb_cache_eps_scale(cache, step));
        if (m->obs && m->obs->step && (st = m->obs->step(m->obs->ctx, step, x, model_out, N))) break;
        eb_p_mean_variance(s, o->var_type, i, x, model_out, N, C, HW, mean, log_var, pred_xstart);
        int needs_noise = i > 0 && (o->kind == EB_SAMPLER_DDPM || o->eta != 0.0f);
        if (needs_noise) draw_step_noise(noise, (size_t)C * HW, N, o->seed, first_index, i);
        if (o->kind == EB_SAMPLER_DDPM)
            eb_ddpm_step(i, x, mean, log_var, noise, n);
        else
            eb_ddim_step(s, i, o->eta, x, pred_xstart, needs_noise ? noise : NULL, n);
        if (show) {
            int done = step + 1;
            double el = now_seconds() - start;
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
    eb_cache_free(cache);
    free(model_out);
    free(pred_xstart);
    free(mean);
    free(log_var);
    free(noise);
    free(t);
    return st;
}

eb_status eb_sample(eb_model *m, const eb_schedule *s, const eb_sampler_opts *o, float *x, const int32_t *y, int N,
                    int first_index) {
    return eb_sample_cached(m, s, o, NULL, x, y, N, first_index, NULL);
}
