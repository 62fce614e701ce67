/* l2c.c — Learning-to-Cache (Ma et al., 2024) routers replayed as tables
 * (methods.h, docs/search.md). The scores file is tools/convert_l2c.py's. */
#include "search/methods.h"
#include "search/search.h"
#include "runtime/h5io.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
    int S, L;
    double *score; /* (S, L, 2) the router's sigmoid scores, step order, attention then MLP */
} l2c_router;

/* The router at o->router, for the sampler and model of `in`. */
static eb_status router_load(l2c_router *r, const eb_method_input *in) {
    const char *path = in->o->router;
    if (!path) return eb_fail(EB_EINPUT, "l2c: no router scores file given (tools/convert_l2c.py --scores)");
    eb_h5 *f;
    eb_status st = eb_h5_open(&f, path);
    if (st) return st;
    const int S = in->sched->S, L = in->c->depth;
    int64_t want[3] = {S, L, 2}, d[3];
    int32_t *t = NULL;
    r->S = S, r->L = L, r->score = NULL;
    st = eb_h5_read_f64(f, "/l2c/scores", 3, NULL, &r->score, d, EB_H5_FINITE);
    if (!st && (d[0] != want[0] || d[1] != want[1] || d[2] != 2))
        st = eb_fail(EB_EINPUT, "%s: /l2c/scores is (%lld, %lld, %lld): the router is for %lld steps and %lld blocks; "
                                "this sampler has %d steps, the model %d blocks", path, (long long)d[0], (long long)d[1],
                     (long long)d[2], (long long)d[0], (long long)d[1], S, L);
    if (!st) st = eb_h5_read_i32(f, "/l2c/t", 1, want, &t, d);
    for (int k = 0; !st && k < S; k++)
        if (t[k] != in->sched->timestep[S - 1 - k])
            st = eb_fail(EB_EINPUT, "%s: /l2c/t[%d] = %d, but the sampler's step %d runs t = %d (another respacing?)",
                         path, k, t[k], k, in->sched->timestep[S - 1 - k]);
    free(t);
    eb_h5_close(f);
    if (st) free(r->score), r->score = NULL;
    return st;
}

/* The official DiT router: at the sampler's odd indices i = S−1−k every
 * module computes (the features are refreshed); at even ones a module
 * computes when its score is above θ and reuses its previous output
 * otherwise. Step 0 has nothing to reuse. */
eb_status eb_generate_l2c(eb_cache_schedule **out, const eb_method_input *in, double threshold) {
    *out = NULL;
    l2c_router r;
    eb_status st = router_load(&r, in);
    if (st) return st;
    char params[96];
    snprintf(params, sizeof params, "threshold=%.6g", threshold);
    if (!(threshold >= 0)) st = eb_fail(EB_EINPUT, "l2c: the router threshold %g is not ≥ 0", threshold);
    if (!st) st = eb_cache_schedule_new(out, in->sched, "l2c", params);
    const eb_act C = {EB_ACT_COMPUTE, 0}, R = {EB_ACT_REUSE, 0};
    for (int k = 0; !st && k < r.S; k++) {
        const double scale = in->scale ? in->scale[k] : 1;
        st = eb_cache_schedule_add(*out, in->sched, k, 0, -1, C, C, scale);
        const int routed = k > 0 && (r.S - 1 - k) % 2 == 0;
        for (int l = 0; !st && routed && l < r.L; l++) {
            const double *s = r.score + ((size_t)k * r.L + l) * 2;
            if (s[0] > threshold && s[1] > threshold) continue;
            st = eb_cache_schedule_add(*out, in->sched, k, l, l, s[0] > threshold ? C : R, s[1] > threshold ? C : R,
                                       scale);
        }
    }
    free(r.score);
    if (st) eb_cache_schedule_free(*out), *out = NULL;
    return st;
}

double eb_l2c_top(const eb_method_input *in) {
    l2c_router r;
    if (router_load(&r, in)) return NAN;
    double top = 0;
    for (size_t i = 0; i < (size_t)r.S * r.L * 2; i++) top = fmax(top, r.score[i]);
    free(r.score);
    return top;
}
