/* forward.c — the checked public forward and classifier-free guidance. */
#include "runtime/cache.h"
#include "runtime/check.h"
#include "runtime/model.h"

#include <math.h>
#include <string.h>

/* Validates a batch before it reaches the model: t, y ranges and finite x. */
static eb_status check_inputs(const eb_model *m, const float *x, const int32_t *t, const int32_t *y, int N) {
    const eb_config *c = &m->cfg;
    if (N <= 0) return eb_fail(EB_EINPUT, "batch size %d must be positive", N);
    for (int n = 0; n < N; n++) {
        if (t[n] < 0 || t[n] >= EB_DIFFUSION_STEPS)
            return eb_fail(EB_EINPUT, "t[%d] = %d outside [0, %d)", n, t[n], EB_DIFFUSION_STEPS);
        if (y[n] < 0 || y[n] > c->num_classes)
            return eb_fail(EB_EINPUT, "y[%d] = %d outside [0, %d] (%d is the null class)", n, y[n], c->num_classes,
                           c->num_classes);
    }
    int64_t dims[4] = {N, c->in_channels, c->input_size, c->input_size};
    return eb_check_finite(x, dims, 4, EB_EINPUT, "x");
}

/* Fails when the model produced a non-finite value (diverged weights or inputs). */
static eb_status check_output(const eb_model *m, const float *out, int N) {
    const eb_config *c = &m->cfg;
    int64_t dims[4] = {N, eb_out_channels(c), c->input_size, c->input_size};
    return eb_check_finite(out, dims, 4, EB_ERUNTIME, "model output");
}

/* Loads x, t, y (N rows) as the model batch; with_null appends the same rows
 * with the null class (the unconditional half of guidance). */
static void load_batch(eb_model *m, const float *x, const int32_t *t, const int32_t *y, int N, int with_null) {
    const eb_config *c = &m->cfg;
    size_t xs = (size_t)N * c->in_channels * c->input_size * c->input_size * sizeof(float);
    const eb_backend *be = m->be;
    be->upload(m->acts.x_in, x, xs);
    be->upload(m->acts.t_in, t, N * sizeof(int32_t));
    be->upload(m->acts.y_in, y, N * sizeof(int32_t));
    if (with_null) {
        int32_t null_y[N];
        for (int n = 0; n < N; n++) null_y[n] = c->num_classes;
        be->upload((char *)m->acts.x_in + xs, x, xs);
        be->upload(m->acts.t_in + N, t, N * sizeof(int32_t));
        be->upload(m->acts.y_in + N, null_y, N * sizeof(int32_t));
    }
}

eb_status eb_forward_run(eb_model *m, eb_cache *cache, int step, float *out, const float *x, const int32_t *t,
                         const int32_t *y, int N, int guided, float cfg_scale, int guide_channels) {
    const eb_config *c = &m->cfg;
    if (guided) {
        if (c->num_classes == 0) return eb_fail(EB_EINPUT, "guidance needs a class-conditional model");
        if (guide_channels < 0 || guide_channels > eb_out_channels(c))
            return eb_fail(EB_EINPUT, "guide_channels %d outside [0, %d]", guide_channels, eb_out_channels(c));
        if (!isfinite(cfg_scale)) return eb_fail(EB_EINPUT, "cfg scale is not finite");
    }
    int B = guided ? 2 * N : N;
    eb_status st = check_inputs(m, x, t, y, N);
    if (!st) st = eb_acts_reserve(m, B);
    if (st) return st;
    load_batch(m, x, t, y, N, guided);
    if (cache) {
        if ((st = eb_cache_forward_batch(cache, step, B))) return st;
    } else {
        eb_forward_batch(m, B);
    }
    int HW = c->input_size * c->input_size;
    const float *result = m->acts.out;
    if (guided) {
        m->be->cfg_combine(m->acts.guided, m->acts.out, N, eb_out_channels(c), HW, guide_channels, cfg_scale);
        result = m->acts.guided;
    }
    m->be->download(out, result, (size_t)N * eb_out_channels(c) * HW * sizeof(float));
    return check_output(m, out, N);
}

eb_status eb_forward(eb_model *m, float *out, const float *x, const int32_t *t, const int32_t *y, int N) {
    return eb_forward_run(m, NULL, 0, out, x, t, y, N, 0, 1.0f, 0);
}

eb_status eb_forward_cfg(eb_model *m, float *out, const float *x, const int32_t *t, const int32_t *y, int N,
                         float cfg_scale, int guide_channels) {
    return eb_forward_run(m, NULL, 0, out, x, t, y, N, 1, cfg_scale, guide_channels);
}

static const char *const GUIDANCE_NAMES[EB_GUIDE_NRULES] = {"official", "eps", "all"};

const char *eb_guidance_name(eb_guidance g) { return g >= 0 && g < EB_GUIDE_NRULES ? GUIDANCE_NAMES[g] : "?"; }

eb_status eb_guidance_parse(eb_guidance *g, const char *name) {
    for (int i = 0; i < EB_GUIDE_NRULES; i++)
        if (!strcmp(name, GUIDANCE_NAMES[i])) return *g = (eb_guidance)i, EB_OK;
    return eb_fail(EB_EINPUT, "unknown guidance rule '%s' (official, eps, all)", name);
}

int eb_guide_channels(const eb_config *c, eb_guidance g) {
    const int Co = eb_out_channels(c);
    switch (g) {
    case EB_GUIDE_EPS: return c->in_channels;
    case EB_GUIDE_ALL: return Co;
    default: return Co < 3 ? Co : 3; /* the official slice model_out[:, :3] */
    }
}
