/* diffusion.c — linear-beta schedule, official space_timesteps respacing, and
 * the p_mean_variance / DDPM / DDIM updates of facebookresearch/DiT diffusion/. */
#include "runtime/diffusion.h"
#include "runtime/parallel.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Marks the kept timesteps of "N", "a,b,c" or "ddimN" in keep[0..T). */
static eb_status space_timesteps(unsigned char *keep, int T, const char *spec) {
    if (!spec || !*spec) {
        memset(keep, 1, T);
        return EB_OK;
    }
    char *end;
    if (strncmp(spec, "ddim", 4) == 0) {
        long want = strtol(spec + 4, &end, 10);
        if (end == spec + 4 || *end) return eb_fail(EB_EINPUT, "respacing '%s': expected ddimN", spec);
        for (int stride = 1; stride < T; stride++)
            if ((T + stride - 1) / stride == want) {
                for (int t = 0; t < T; t += stride) keep[t] = 1;
                return EB_OK;
            }
        return eb_fail(EB_EINPUT, "respacing '%s': no integer stride gives %ld steps of %d", spec, want, T);
    }
    long counts[64];
    int sections = 0;
    for (const char *p = spec;;) {
        if (sections == 64) return eb_fail(EB_EINPUT, "respacing '%s': more than 64 sections", spec);
        counts[sections] = strtol(p, &end, 10);
        if (end == p || counts[sections] < 1)
            return eb_fail(EB_EINPUT, "respacing '%s': section %d is not a positive integer", spec, sections);
        sections++;
        if (*end == 0) break;
        if (*end != ',') return eb_fail(EB_EINPUT, "respacing '%s': unexpected '%c'", spec, *end);
        p = end + 1;
    }
    int size_per = T / sections, extra = T % sections, start = 0;
    for (int s = 0; s < sections; s++) {
        int size = size_per + (s < extra);
        if (size < counts[s])
            return eb_fail(EB_EINPUT, "respacing '%s': cannot take %ld steps from a section of %d", spec, counts[s], size);
        double stride = counts[s] <= 1 ? 1.0 : (double)(size - 1) / (double)(counts[s] - 1);
        double cur = 0.0; /* accumulated like the official loop; nearbyint rounds half to even as Python */
        for (long k = 0; k < counts[s]; k++) {
            keep[start + (int)nearbyint(cur)] = 1;
            cur += stride;
        }
        start += size;
    }
    return EB_OK;
}

void eb_schedule_free(eb_schedule *s) {
    if (!s) return;
    free(s->timestep);
    free(s->betas); /* one block holds every double array */
    memset(s, 0, sizeof *s);
}

eb_status eb_schedule_create(eb_schedule *s, const char *respacing) {
    memset(s, 0, sizeof *s);
    const int T = EB_DIFFUSION_STEPS;
    unsigned char keep[EB_DIFFUSION_STEPS] = {0};
    eb_status st = space_timesteps(keep, T, respacing);
    if (st) return st;
    int S = 0;
    for (int t = 0; t < T; t++) S += keep[t];
    if (S < 2) return eb_fail(EB_EINPUT, "respacing '%s' keeps %d step; at least 2 are needed", respacing, S);
    s->timestep = malloc(S * sizeof(int));
    double *block = malloc(9 * (size_t)S * sizeof(double));
    if (!s->timestep || !block) {
        free(s->timestep);
        free(block);
        return eb_fail(EB_ERUNTIME, "out of memory");
    }
    s->S = S;
    double **arrays[] = {&s->betas, &s->alphas_cumprod, &s->alphas_cumprod_prev, &s->sqrt_recip_ac,
                         &s->sqrt_recipm1_ac, &s->posterior_variance, &s->posterior_log_var_clipped,
                         &s->posterior_mean_coef1, &s->posterior_mean_coef2};
    for (int a = 0; a < 9; a++) *arrays[a] = block + (size_t)a * S;

    /* numpy linspace(1e-4, 0.02, 1000): i·step + start, the last one exactly stop. */
    const double beta_start = 0.0001, beta_end = 0.02, step = (beta_end - beta_start) / (T - 1);
    double ac = 1.0, last = 1.0;
    for (int t = 0, i = 0; t < T; t++) {
        double beta = t == T - 1 ? beta_end : t * step + beta_start;
        ac *= 1.0 - beta;
        if (!keep[t]) continue;
        s->timestep[i] = t;
        s->betas[i] = 1.0 - ac / last;
        last = ac;
        i++;
    }
    double prod = 1.0;
    for (int i = 0; i < S; i++) {
        double b = s->betas[i], prev = prod;
        prod *= 1.0 - b;
        s->alphas_cumprod[i] = prod;
        s->alphas_cumprod_prev[i] = prev;
        s->sqrt_recip_ac[i] = sqrt(1.0 / prod);
        s->sqrt_recipm1_ac[i] = sqrt(1.0 / prod - 1.0);
        s->posterior_variance[i] = b * (1.0 - prev) / (1.0 - prod);
        s->posterior_mean_coef1[i] = b * sqrt(prev) / (1.0 - prod);
        s->posterior_mean_coef2[i] = (1.0 - prev) * sqrt(1.0 - b) / (1.0 - prod);
    }
    /* The first posterior variance is 0: the official code clips its log with the second. */
    for (int i = 0; i < S; i++) s->posterior_log_var_clipped[i] = log(s->posterior_variance[i ? i : 1]);
    return EB_OK;
}

void eb_p_mean_variance(const eb_schedule *s, eb_var_type vt, int i, const float *x, const float *model_out, int N,
                        int C, int HW, float *mean, float *log_var, float *pred_xstart) {
    const int Co = vt == EB_VAR_LEARNED_RANGE ? 2 * C : C;
    const float sri = (float)s->sqrt_recip_ac[i], srm1 = (float)s->sqrt_recipm1_ac[i];
    const float c1 = (float)s->posterior_mean_coef1[i], c2 = (float)s->posterior_mean_coef2[i];
    const float min_log = (float)s->posterior_log_var_clipped[i], max_log = (float)log(s->betas[i]);
    /* FIXED_LARGE uses β_t, except the first step that takes the posterior variance. */
    const float fixed_log = vt == EB_VAR_FIXED_SMALL ? min_log
                            : i == 0                 ? (float)log(s->posterior_variance[1])
                                                     : max_log;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)N * C * HW >= EB_PAR_MIN_ELEMS)
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            size_t xo = ((size_t)n * C + c) * HW;
            const float *eps = model_out + ((size_t)n * Co + c) * HW;
            const float *var = model_out + ((size_t)n * Co + C + c) * HW;
            for (int k = 0; k < HW; k++) {
                float x0 = sri * x[xo + k] - srm1 * eps[k];
                if (pred_xstart) pred_xstart[xo + k] = x0;
                if (mean) mean[xo + k] = c1 * x0 + c2 * x[xo + k];
                if (log_var) {
                    if (vt == EB_VAR_LEARNED_RANGE) {
                        float frac = (var[k] + 1.0f) / 2.0f;
                        log_var[xo + k] = frac * max_log + (1.0f - frac) * min_log;
                    } else {
                        log_var[xo + k] = fixed_log;
                    }
                }
            }
        }
}

void eb_ddim_step(const eb_schedule *s, int i, float eta, float *x, const float *pred_xstart, const float *noise,
                  size_t n) {
    const float sri = (float)s->sqrt_recip_ac[i], srm1 = (float)s->sqrt_recipm1_ac[i];
    const float ab = (float)s->alphas_cumprod[i], abp = (float)s->alphas_cumprod_prev[i];
    const float sigma = eta * sqrtf((1.0f - abp) / (1.0f - ab)) * sqrtf(1.0f - ab / abp);
    const float sqrt_abp = sqrtf(abp), dir = sqrtf(1.0f - abp - sigma * sigma);
    const float noise_scale = i == 0 ? 0.0f : sigma;
#pragma omp parallel for schedule(static) if (n >= EB_PAR_MIN_ELEMS)
    for (size_t k = 0; k < n; k++) {
        float eps = (sri * x[k] - pred_xstart[k]) / srm1;
        float mean_pred = pred_xstart[k] * sqrt_abp + dir * eps;
        x[k] = noise && noise_scale != 0.0f ? mean_pred + noise_scale * noise[k] : mean_pred;
    }
}

void eb_ddpm_step(int i, float *x, const float *mean, const float *log_var, const float *noise, size_t n) {
#pragma omp parallel for schedule(static) if (n >= EB_PAR_MIN_ELEMS)
    for (size_t k = 0; k < n; k++) x[k] = i == 0 ? mean[k] : mean[k] + expf(0.5f * log_var[k]) * noise[k];
}
