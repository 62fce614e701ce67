/* elementwise.cu — the CUDA backend's memory-bound kernels: embeddings, SiLU,
 * LayerNorm + modulate, GELU, gate + residual, unpatchify, guidance, and the
 * cache engine's copies and Taylor steps. The formulas are runtime/cpu/'s in
 * float32 (LayerNorm statistics in double as there); results differ from the
 * CPU's by rounding only (FMA contraction, the device's libm). */
#include "runtime/cuda/common.cuh"

#include "runtime/cpu/kernels.h" /* EB_LN_EPS, EB_FREQ_HALF, EB_TAYLOR_MAX_ORDER */

#include <math.h>

__global__ void patch_embed_kernel(float *out, const float *x, const float *w, const float *b, const float *pos,
                                   int B, int C, int H, int p, int D) {
    const int grid = H / p, T = grid * grid, K = C * p * p;
    GRID_STRIDE(i, (size_t)B * T * D) {
        const int d = (int)(i % D), tok = (int)(i / D % T), n = (int)(i / ((size_t)D * T));
        const int gy = tok / grid, gx = tok % grid;
        const float *wd = w + (size_t)d * K;
        float acc = 0.0f;
        for (int c = 0; c < C; c++)
            for (int py = 0; py < p; py++) {
                const float *xr = x + (((size_t)n * C + c) * H + gy * p + py) * H + gx * p;
                const float *wr = wd + (c * p + py) * p;
                for (int px = 0; px < p; px++) acc += wr[px] * xr[px];
            }
        out[i] = (acc + b[d]) + pos[(size_t)tok * D + d];
    }
}

void cuda_patch_embed(float *out, const float *x, const float *w, const float *b, const float *pos, int B, int C,
                      int H, int p, int D) {
    size_t n = (size_t)B * (H / p) * (H / p) * D;
    patch_embed_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(out, x, w, b, pos, B, C, H, p, D);
    cuda_launched("patch_embed");
}

/* The 128 frequencies, computed on the host as kernels.c does, so the device
 * multiplies t by the very same floats. */
typedef struct {
    float f[EB_FREQ_HALF];
} freq_table;

__global__ void timestep_freq_kernel(float *out, const int32_t *t, int B, freq_table freq) {
    GRID_STRIDE(i, (size_t)B * EB_FREQ_HALF) {
        const int n = (int)(i / EB_FREQ_HALF), k = (int)(i % EB_FREQ_HALF);
        const float arg = (float)t[n] * freq.f[k];
        out[(size_t)n * 2 * EB_FREQ_HALF + k] = cosf(arg);
        out[(size_t)n * 2 * EB_FREQ_HALF + EB_FREQ_HALF + k] = sinf(arg);
    }
}

void cuda_timestep_freq(float *out, const int32_t *t, int B) {
    freq_table freq;
    const float neg_log_period = (float)(-log(10000.0));
    for (int k = 0; k < EB_FREQ_HALF; k++) freq.f[k] = expf(((float)k * neg_log_period) / (float)EB_FREQ_HALF);
    timestep_freq_kernel<<<cuda_blocks((size_t)B * EB_FREQ_HALF), CUDA_THREADS>>>(out, t, B, freq);
    cuda_launched("timestep_freq");
}

__global__ void silu_kernel(float *out, const float *in, size_t n) {
    GRID_STRIDE(i, n) out[i] = in[i] / (1.0f + expf(-in[i]));
}

void cuda_silu(float *out, const float *in, size_t n) {
    silu_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(out, in, n);
    cuda_launched("silu");
}

__global__ void label_add_kernel(float *c, const float *table, const int32_t *y, int B, int D) {
    GRID_STRIDE(i, (size_t)B * D) c[i] += table[(size_t)y[i / D] * D + i % D];
}

void cuda_label_add(float *c, const float *table, const int32_t *y, int B, int D) {
    label_add_kernel<<<cuda_blocks((size_t)B * D), CUDA_THREADS>>>(c, table, y, B, D);
    cuda_launched("label_add");
}

/* One warp per token row: mean and variance in double (two passes, as the
 * CPU), then the modulated row. */
__global__ void ln_modulate_kernel(float *out, const float *x, const float *shift, const float *scale, int rows,
                                   int T, int D, int mod_stride) {
    const int row = (int)((blockIdx.x * (size_t)blockDim.x + threadIdx.x) / 32), lane = threadIdx.x % 32;
    if (row >= rows) return;
    const float *xr = x + (size_t)row * D;
    const float *sh = shift + (size_t)(row / T) * mod_stride, *sc = scale + (size_t)(row / T) * mod_stride;
    float *o = out + (size_t)row * D;
    double sum = 0.0, sq = 0.0;
    for (int d = lane; d < D; d += 32) sum += xr[d];
    const float m = (float)(warp_sum(sum) / D);
    for (int d = lane; d < D; d += 32) {
        double dev = (double)xr[d] - m;
        sq += dev * dev;
    }
    const float s = (float)(1.0 / sqrt(warp_sum(sq) / D + EB_LN_EPS));
    for (int d = lane; d < D; d += 32) o[d] = ((xr[d] - m) * s) * (1.0f + sc[d]) + sh[d];
}

void cuda_ln_modulate(float *out, const float *x, const float *shift, const float *scale, int B, int T, int D,
                      int mod_stride) {
    const int rows = B * T, per_block = CUDA_THREADS / 32;
    ln_modulate_kernel<<<(rows + per_block - 1) / per_block, CUDA_THREADS>>>(out, x, shift, scale, rows, T, D,
                                                                             mod_stride);
    cuda_launched("ln_modulate");
}

__global__ void gelu_tanh_kernel(float *out, const float *in, size_t n) {
    const float beta = (float)(M_SQRT2 * M_2_SQRTPI * 0.5), kappa = 0.044715f;
    GRID_STRIDE(i, n) {
        const float x = in[i];
        out[i] = 0.5f * x * (1.0f + tanhf(beta * (x + kappa * (x * x * x))));
    }
}

void cuda_gelu_tanh(float *out, const float *in, size_t n) {
    gelu_tanh_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(out, in, n);
    cuda_launched("gelu_tanh");
}

__global__ void gate_residual_kernel(float *x, const float *gate, const float *branch, int T, int D, int mod_stride,
                                     size_t n) {
    GRID_STRIDE(i, n) x[i] = x[i] + gate[i / ((size_t)T * D) * mod_stride + i % D] * branch[i];
}

void cuda_gate_residual(float *x, const float *gate, const float *branch, int B, int T, int D, int mod_stride) {
    size_t n = (size_t)B * T * D;
    gate_residual_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(x, gate, branch, T, D, mod_stride, n);
    cuda_launched("gate_residual");
}

__global__ void unpatchify_kernel(float *out, const float *tokens, int B, int C, int H, int p) {
    const int grid = H / p, T = grid * grid, K = p * p * C;
    GRID_STRIDE(i, (size_t)B * C * H * H) {
        const int x = (int)(i % H), y = (int)(i / H % H), c = (int)(i / ((size_t)H * H) % C);
        const size_t n = i / ((size_t)H * H * C);
        const int tok = (y / p) * grid + x / p, inner = ((y % p) * p + x % p) * C + c;
        out[i] = tokens[(n * T + tok) * K + inner];
    }
}

void cuda_unpatchify(float *out, const float *tokens, int B, int C, int H, int p) {
    unpatchify_kernel<<<cuda_blocks((size_t)B * C * H * H), CUDA_THREADS>>>(out, tokens, B, C, H, p);
    cuda_launched("unpatchify");
}

/* Row n's conditional output sits at the same offset as the output, the
 * unconditional one N rows later. */
__global__ void cfg_combine_kernel(float *out, const float *model_out, int Co, int HW, int guided, float scale,
                                   size_t n) {
    GRID_STRIDE(i, n) {
        const float cond = model_out[i], uncond = model_out[n + i];
        out[i] = (int)(i / HW % Co) < guided ? uncond + scale * (cond - uncond) : cond;
    }
}

void cuda_cfg_combine(float *out, const float *model_out, int N, int Co, int HW, int guided, float scale) {
    size_t n = (size_t)N * Co * HW;
    cfg_combine_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(out, model_out, Co, HW, guided, scale, n);
    cuda_launched("cfg_combine");
}

void cuda_copy(float *dst, const float *src, size_t n) {
    cuda_note(cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDeviceToDevice, 0), "copy");
}

__global__ void add_scaled_kernel(float *out, const float *a, float s, const float *b, size_t n) {
    GRID_STRIDE(i, n) out[i] = a[i] + s * b[i];
}

void cuda_add_scaled(float *out, const float *a, float s, const float *b, size_t n) {
    add_scaled_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(out, a, s, b, n);
    cuda_launched("add_scaled");
}

__global__ void taylor_update_kernel(float *factors, int valid, const float *feature, size_t n, float dist) {
    GRID_STRIDE(i, n) {
        float next = feature[i];
        for (int k = 0; k < valid; k++) {
            const float old = factors[(size_t)k * n + i];
            factors[(size_t)k * n + i] = next;
            if (k + 1 < valid) next = (next - old) / dist;
        }
    }
}

void cuda_taylor_update(float *factors, int cap, int have, const float *feature, size_t n, float dist) {
    const int valid = have + 1 < cap ? have + 1 : cap;
    taylor_update_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(factors, valid, feature, n, dist);
    cuda_launched("taylor_update");
}

/* coef[k] = 1/k!, power[k] = offset^k, rounded from double as cache_kernels.c does. */
typedef struct {
    float coef[EB_TAYLOR_MAX_ORDER + 1], power[EB_TAYLOR_MAX_ORDER + 1];
} taylor_terms;

__global__ void taylor_forecast_kernel(float *out, const float *factors, int orders, size_t n, taylor_terms tt) {
    GRID_STRIDE(i, n) {
        float acc = tt.coef[0] * factors[i] * tt.power[0];
        for (int k = 1; k < orders; k++) acc += tt.coef[k] * factors[(size_t)k * n + i] * tt.power[k];
        out[i] = acc;
    }
}

void cuda_taylor_forecast(float *out, const float *factors, int orders, size_t n, float offset) {
    taylor_terms tt;
    double fact = 1, pw = 1;
    for (int k = 0; k < orders; k++) {
        if (k) fact *= k, pw *= offset;
        tt.coef[k] = (float)(1.0 / fact), tt.power[k] = (float)pw;
    }
    taylor_forecast_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(out, factors, orders, n, tt);
    cuda_launched("taylor_forecast");
}
