/* toca.c — ToCa's DiT table (search/toca.h). The official code
 * (Shenyi-Z/ToCa, DiT-ToCa/cache_functions) decides per block in order, so a
 * refresh step can refresh its first block and then, with the period that
 * block set, leave the rest partial; the table keeps that. */
#include "search/toca.h"

#include <math.h>
#include <stdio.h>

/* fresh_ratio_scheduler 'ToCa' for the MLP: R · layer factor · step factor · module factor, in that order. */
static double mlp_ratio(double R, int l, int L, int i, int S) {
    const double step_w = 0.4, layer_w = 0.8, module_w = 2.5, module_time_w = 0.6;
    const double step_factor = 1 + step_w - 2 * step_w * i / S;
    const double layer_factor = 1 + layer_w - 2 * layer_w * l / (L > 1 ? L - 1 : 1);
    const double module_factor = 1 + module_time_w * module_w;
    const double r = R * layer_factor * step_factor * module_factor;
    return r < 1 ? r : 1;
}

/* force_scheduler: the refresh period a computing block at index i sets (float32 as its torch tensors). */
static int refresh_period(double R, int N, int i, int S) {
    const double w = R == 0 ? 0.0 : 0.4;
    const float step_factor = (float)(1 + w - 2 * w * i / S);
    int period = (int)rintf((float)N / step_factor);
    if (R == 0 && i >= 50 && i < 100) period = 2;
    return period;
}

eb_status eb_cache_schedule_toca(eb_cache_schedule **out, const eb_schedule *s, int depth, double ratio, int interval) {
    *out = NULL;
    if (!(ratio >= 0 && ratio <= 1)) return eb_fail(EB_EINPUT, "toca: fresh ratio %g outside [0, 1]", ratio);
    if (interval < 1) return eb_fail(EB_EINPUT, "toca: interval (fresh threshold) %d must be >= 1", interval);
    if (depth < 1) return eb_fail(EB_EINPUT, "toca: depth %d must be >= 1", depth);
    char params[96];
    snprintf(params, sizeof params, "ratio=%g interval=%d", ratio, interval);
    eb_status st = eb_cache_schedule_new(out, s, "toca", params);
    if (!st) (*out)->toca.fresh = interval; /* the age normalisation is N too (soft_step_score) */
    const int S = s->S;
    const eb_act C = {EB_ACT_COMPUTE, 0}, R = {EB_ACT_REUSE, 0};
    int period = 1;
    for (int k = 0; !st && k < S; k++) {
        const int i = S - 1 - k;
        int fresh0 = 0;
        for (int l = 0; !st && l < depth; l++) {
            const int fresh = k == 0 || i % period == 0;
            if (fresh) period = refresh_period(ratio, interval, i, S);
            if (l == 0) fresh0 = fresh;
            const int lo = l ? l : 0, hi = l ? l : -1; /* block 0's action is the step's "*" row */
            if (fresh && l && fresh0) continue;
            if (fresh) st = eb_cache_schedule_add(*out, s, k, lo, hi, C, C, 1.0);
            else st = eb_cache_schedule_add_partial(*out, s, k, lo, hi, R, mlp_ratio(ratio, l, depth, i, S), 1.0);
        }
    }
    if (st) eb_cache_schedule_free(*out), *out = NULL;
    return st;
}
