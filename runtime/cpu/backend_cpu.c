/* backend_cpu.c — the CPU backend table over kernels.c. */
#include "runtime/backend.h"
#include "runtime/cpu/kernels.h"

#include <stdlib.h>
#include <string.h>

static void *cpu_alloc(size_t bytes) { return calloc(1, bytes ? bytes : 1); }
static void cpu_copy(void *dst, const void *src, size_t bytes) { memcpy(dst, src, bytes); }

static void cpu_ln_modulate(float *out, const float *x, const float *shift, const float *scale, int B, int T, int D,
                            int mod_stride) {
    ln_modulate_forward(out, NULL, NULL, x, shift, scale, B, T, D, mod_stride);
}

static void cpu_attention(float *out, const float *qkv, int B, int T, int NH, int hd) {
    attention_forward(out, NULL, qkv, B, T, NH, hd);
}

const eb_backend eb_backend_cpu = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = free,
    .upload = cpu_copy,
    .download = cpu_copy,
    .linear = linear_forward,
    .linear_rows = linear_rows_forward,
    .patch_embed = patch_embed_forward,
    .timestep_freq = timestep_freq_forward,
    .silu = silu_forward,
    .label_add = label_add_forward,
    .ln_modulate = cpu_ln_modulate,
    .attention = cpu_attention,
    .gelu_tanh = gelu_tanh_forward,
    .gate_residual = gate_residual_forward,
    .unpatchify = unpatchify_forward,
    .cfg_combine = cfg_combine_forward,
    /* the optional blocks: the CPU backend, the reference, has every op */
    .copy = copy_forward,
    .add_scaled = add_scaled_forward,
    .rel_l1 = rel_l1_forward,
    .taylor_update = taylor_update_forward,
    .taylor_forecast = taylor_forecast_forward,
    .feature_drift = feature_drift_forward,
    .attention_colsum = attention_colsum_forward,
    .token_gather = token_gather_forward,
    .token_scatter = token_scatter_forward,
    .toca_select = toca_select_forward,
    .conv2d = conv2d_forward,
    .group_norm = group_norm_forward,
    .upsample2x = upsample2x_forward,
    .avg_pool2d = avg_pool2d_forward,
    .max_pool2d = max_pool2d_forward,
    .resize_bilinear_tf1 = resize_bilinear_tf1_forward,
    .relu = relu_forward,
    .transpose = transpose_forward,
};
