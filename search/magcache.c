/* magcache.c — MagCache (Ma et al., 2025) as a static table from the
 * recorded magnitude ratios (methods.h, docs/search.md). */
#include "search/methods.h"
#include "search/search.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* One CFG half's MagCache state, as its official code keeps it per half. */
typedef struct {
    double ratio, err;
    int steps;
} mag_state;

typedef struct {
    int S, halves;   /* steps; 2 with guidance (column 1 of the ratios recorded), else 1 */
    double *ratio;   /* (S, 2) the recording's /magcache/ratio                         */
    int K, first;    /* consecutive skips at most; the first step a rule may skip      */
} mag_input;

static eb_status mag_load(mag_input *mi, const eb_method_input *in) {
    const eb_search_opts *o = in->o;
    const int S = in->rec->S;
    const int64_t want[2] = {S, 2};
    eb_status st = eb_rec_read_extra(in->rec, "/magcache/ratio", 2, want, &mi->ratio, NULL);
    if (st) return st;
    mi->S = S, mi->halves = !isnan(mi->ratio[2 * (S - 1) + 1]) ? 2 : 1;
    mi->K = o->max_skips > 0 ? o->max_skips : EB_MAGCACHE_K;
    const double r = o->retention == 0 ? EB_MAGCACHE_RETENTION : o->retention < 0 ? 0 : o->retention;
    if (!(r <= 1)) st = eb_fail(EB_EINPUT, "magcache: retention ratio %g above 1", r);
    /* model call c = halves·k + h is kept while c < ⌊halves·S·r⌋ (the official count of calls) */
    mi->first = (int)floor(mi->halves * S * r);
    for (int k = 1; !st && k < S; k++)
        for (int h = 0; h < mi->halves; h++)
            if (!(mi->ratio[2 * k + h] > 0) || !isfinite(mi->ratio[2 * k + h]))
                st = eb_fail(EB_EINPUT, "%s: /magcache/ratio[%d][%d] = %g is not a positive number", in->rec->path, k,
                             h, mi->ratio[2 * k + h]);
    if (st) free(mi->ratio), mi->ratio = NULL;
    return st;
}

/* Half h's rule at step k (MagCache's): the ratio accumulates into the product,
 * |1 − product| into the error, and the half skips while the error is below
 * delta and it has skipped at most K steps in a row. */
static int mag_rule(mag_state *s, double ratio, double delta, int K) {
    s->ratio *= ratio;
    s->steps++;
    s->err += fabs(1 - s->ratio);
    return s->err < delta && s->steps <= K;
}

/* The steps skipped at delta: skip (S). A step computes unless every half's
 * rule skips it (the engine runs both halves as one batch); a computed step
 * refreshes the residual of both, so both states restart. */
static void mag_decide(const mag_input *mi, double delta, uint8_t *skip) {
    mag_state s[2] = {{1, 0, 0}, {1, 0, 0}};
    for (int k = 0; k < mi->S; k++) {
        int all = k > 0;
        for (int h = 0; h < mi->halves; h++) {
            int eligible = mi->halves * k + h >= mi->first;
            all = all && eligible && mag_rule(&s[h], mi->ratio[2 * k + h], delta, mi->K);
        }
        skip[k] = (uint8_t)all;
        if (!all)
            for (int h = 0; h < 2; h++) s[h] = (mag_state){1, 0, 0};
    }
}

eb_status eb_generate_magcache(eb_cache_schedule **out, const eb_method_input *in, double delta) {
    *out = NULL;
    mag_input mi;
    eb_status st = mag_load(&mi, in);
    if (st) return st;
    if (!(delta >= 0)) {
        free(mi.ratio);
        return eb_fail(EB_EINPUT, "magcache: the threshold δ %g is not ≥ 0", delta);
    }
    uint8_t skip[mi.S];
    mag_decide(&mi, delta, skip);
    char params[96];
    snprintf(params, sizeof params, "delta=%.6g K=%d first_call=%d", delta, mi.K, mi.first);
    st = eb_cache_schedule_new(out, in->sched, "magcache", params);
    const eb_act C = {EB_ACT_COMPUTE, 0}, S = {EB_ACT_SKIP, 0};
    for (int k = 0; !st && k < mi.S; k++)
        st = eb_cache_schedule_add(*out, in->sched, k, 0, -1, skip[k] ? S : C, skip[k] ? S : C,
                                   in->scale ? in->scale[k] : 1);
    free(mi.ratio);
    if (st) eb_cache_schedule_free(*out), *out = NULL;
    return st;
}

/* Above the largest error any half can accumulate over K steps from any
 * start, every rule skips all it may. */
double eb_magcache_top(const eb_method_input *in) {
    mag_input mi;
    if (mag_load(&mi, in)) return NAN;
    double top = 0;
    for (int h = 0; h < mi.halves; h++)
        for (int k = 1; k < mi.S; k++) {
            mag_state s = {1, 0, 0};
            for (int j = k; j < mi.S && j < k + mi.K; j++) mag_rule(&s, mi.ratio[2 * j + h], INFINITY, mi.K), top = fmax(top, s.err);
        }
    free(mi.ratio);
    return 2 * top + 1e-9;
}
