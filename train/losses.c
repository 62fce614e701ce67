/* losses.c — the official DiT training objective (gaussian_diffusion.py
 * training_losses, loss type MSE, LEARNED_RANGE variance) and its gradient.
 * Element formulas run in float in the official order of operations; the
 * per-sample means sum in double. */
#include "train/trainer.h"

#include <math.h>
#include <string.h>

eb_status eb_loss_coefs_init(eb_loss_coefs *c) {
    eb_schedule s;
    eb_status st = eb_schedule_create(&s, "");
    if (st) return st;
    for (int t = 0; t < EB_DIFFUSION_STEPS; t++) {
        double ac = s.alphas_cumprod[t];
        c->sqrt_ac[t] = (float)sqrt(ac);
        c->sqrt_1m_ac[t] = (float)sqrt(1.0 - ac);
        c->sqrt_recip_ac[t] = (float)s.sqrt_recip_ac[t];
        c->sqrt_recipm1_ac[t] = (float)s.sqrt_recipm1_ac[t];
        c->coef1[t] = (float)s.posterior_mean_coef1[t];
        c->coef2[t] = (float)s.posterior_mean_coef2[t];
        c->log_var_clipped[t] = (float)s.posterior_log_var_clipped[t];
        c->log_beta[t] = (float)log(s.betas[t]);
    }
    eb_schedule_free(&s);
    return EB_OK;
}

void eb_q_sample(float *x_t, const float *x0, const float *noise, const int32_t *t, const eb_loss_coefs *c, int B,
                 size_t per) {
    for (int n = 0; n < B; n++) {
        const float a = c->sqrt_ac[t[n]], b = c->sqrt_1m_ac[t[n]];
        for (size_t i = n * per; i < (n + 1) * per; i++) x_t[i] = a * x0[i] + b * noise[i];
    }
}

/* The official approx_standard_normal_cdf: ½(1 + tanh(sqrt(2/π)(u + 0.044715u³))),
 * and its derivative into *dcdf. */
static float approx_cdf(float u, float *dcdf) {
    const float k = (float)sqrt(2.0 / M_PI), kappa = 0.044715f;
    float th = tanhf(k * (u + kappa * (u * u * u)));
    *dcdf = 0.5f * (1.0f - th * th) * k * (1.0f + 3.0f * kappa * u * u);
    return 0.5f * (1.0f + th);
}

/* −log p of x0 under the discretized Gaussian decoder (official
 * discretized_gaussian_log_likelihood: bins of 1/255, edges at ±0.999, the
 * probabilities clamped at 1e-12), and d(−log p)/d log_var into *dlv. */
static float decoder_nll(float x0, float mean, float log_var, float *dlv) {
    float log_scale = 0.5f * log_var, inv_std = expf(-log_scale), centered = x0 - mean;
    float plus_in = inv_std * (centered + (float)(1.0 / 255.0)), dcdf_plus;
    float min_in = inv_std * (centered - (float)(1.0 / 255.0)), dcdf_min;
    float cdf_plus = approx_cdf(plus_in, &dcdf_plus), cdf_min = approx_cdf(min_in, &dcdf_min);
    /* d/d log_scale of plus_in and min_in is −plus_in and −min_in. */
    float logp, dlogp_dls;
    if (x0 < -0.999f) {
        logp = logf(fmaxf(cdf_plus, 1e-12f));
        dlogp_dls = cdf_plus > 1e-12f ? dcdf_plus * -plus_in / cdf_plus : 0.0f;
    } else if (x0 > 0.999f) {
        float tail = 1.0f - cdf_min;
        logp = logf(fmaxf(tail, 1e-12f));
        dlogp_dls = tail > 1e-12f ? -dcdf_min * -min_in / tail : 0.0f;
    } else {
        float delta = cdf_plus - cdf_min;
        logp = logf(fmaxf(delta, 1e-12f));
        dlogp_dls = delta > 1e-12f ? (dcdf_plus * -plus_in - dcdf_min * -min_in) / delta : 0.0f;
    }
    *dlv = -0.5f * dlogp_dls;
    return -logp;
}

eb_status eb_diffusion_loss(eb_loss_terms *terms, float *mse_b, float *vb_b, float *dout, const float *out,
                            const float *x0, const float *x_t, const float *noise, const int32_t *t,
                            const eb_loss_coefs *c, int B, int C, int HW, int learn_sigma) {
    const int Co = learn_sigma ? 2 * C : C;
    const size_t per = (size_t)C * HW;
    const double inv_ln2 = 1.0 / M_LN2;
    /* d loss / d out of a per-element term: 1/B for the batch mean, 1/per for mean_flat. */
    const float mse_scale = (float)(2.0 / ((double)B * per)), vb_scale = (float)(inv_ln2 / ((double)B * per));
#pragma omp parallel for schedule(static)
    for (int n = 0; n < B; n++) {
        const int tn = t[n];
        const float *eps = out + (size_t)n * Co * HW, *var = eps + per;
        const float *x0n = x0 + n * per, *xtn = x_t + n * per, *nz = noise + n * per;
        float *deps = dout + (size_t)n * Co * HW, *dvar = deps + per;
        double mse = 0.0, vb = 0.0;
        for (size_t i = 0; i < per; i++) {
            float diff = nz[i] - eps[i];
            mse += (double)(diff * diff);
            deps[i] = mse_scale * -diff;
        }
        if (learn_sigma) {
            const float c1 = c->coef1[tn], c2 = c->coef2[tn], sri = c->sqrt_recip_ac[tn], srm1 = c->sqrt_recipm1_ac[tn];
            const float min_log = c->log_var_clipped[tn], max_log = c->log_beta[tn];
            /* log_var = frac·max + (1 − frac)·min with frac = (v + 1)/2 */
            const float dlv_dvar = 0.5f * (max_log - min_log);
            for (size_t i = 0; i < per; i++) {
                /* The model mean uses ε detached: only the variance channels get a gradient. */
                float pred_x0 = sri * xtn[i] - srm1 * eps[i];
                float model_mean = c1 * pred_x0 + c2 * xtn[i];
                float frac = (var[i] + 1.0f) / 2.0f;
                float lv = frac * max_log + (1.0f - frac) * min_log;
                float term, dlv;
                if (tn == 0) {
                    term = decoder_nll(x0n[i], model_mean, lv, &dlv);
                } else { /* normal_kl(true mean, true log var; model mean, model log var) */
                    float true_mean = c1 * x0n[i] + c2 * xtn[i], dm = true_mean - model_mean;
                    float ratio = expf(min_log - lv), sq_over_var = (dm * dm) * expf(-lv);
                    term = 0.5f * (((-1.0f + lv) - min_log) + ratio + sq_over_var);
                    dlv = 0.5f * (1.0f - ratio - sq_over_var);
                }
                vb += term;
                dvar[i] = vb_scale * dlv * dlv_dvar;
            }
        }
        mse_b[n] = (float)(mse / per);
        vb_b[n] = (float)(vb / per * inv_ln2);
    }
    /* Batch means in row order, so the logged loss does not depend on the thread count. */
    double sum_mse = 0.0, sum_vb = 0.0;
    for (int n = 0; n < B; n++) {
        if (!isfinite(mse_b[n]) || !isfinite(vb_b[n]))
            return eb_fail(EB_ERUNTIME, "training loss of batch row %d (t = %d) is %s: the model diverged", n, t[n],
                           isnan(mse_b[n] + vb_b[n]) ? "NaN" : "infinite");
        sum_mse += mse_b[n];
        sum_vb += vb_b[n];
    }
    terms->mse = sum_mse / B;
    terms->vb = sum_vb / B;
    terms->loss = terms->mse + terms->vb;
    return EB_OK;
}
