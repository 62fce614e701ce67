/* diffusion.h — the official GaussianDiffusion arithmetic on one respaced step. */
#ifndef EB_DIFFUSION_H
#define EB_DIFFUSION_H

#include "runtime/ebcache.h"

/* p_mean_variance at respaced index i with ε prediction and clip_denoised off.
 * x (N, C, H·W); model_out (N, C_out, H·W) with C_out = 2C for LEARNED_RANGE
 * (ε then variance values) and C_out = C otherwise. Outputs (N, C, H·W); any
 * of them may be NULL. Coefficients are rounded to float before they multiply,
 * as the official _extract_into_tensor does. */
void eb_p_mean_variance(const eb_schedule *s, eb_var_type vt, int i, const float *x, const float *model_out, int N,
                        int C, int HW, float *mean, float *log_var, float *pred_xstart);

/* One DDIM update x ← x_{prev} given pred_xstart at index i; noise (N·C·HW) may
 * be NULL when eta = 0. */
void eb_ddim_step(const eb_schedule *s, int i, float eta, float *x, const float *pred_xstart, const float *noise,
                  size_t n);

/* One DDPM update x ← mean + exp(½ log_var)·noise (no noise at i = 0). */
void eb_ddpm_step(int i, float *x, const float *mean, const float *log_var, const float *noise, size_t n);

#endif
