/* bench_vae.c — the SD-VAE decoder's speed on the CPU.
 *
 *   bench_vae conv ROUNDS    the 512-channel 3×3 convolution at 64² (GFLOP/s), and the ×2 upsample
 *                            fused into the following convolution against upsample2x + conv, alternated
 *                            ROUNDS times (best of each)
 *   bench_vae decode SIDE ITERS   decode of one SIDE×SIDE latent (32: a 256² image) with the sd-vae
 *                            configuration and random weights: one line "…: X images/s …, OpenBLAS core C"
 *                            after a warm-up
 * bench/bench_vae_ref.py is the diffusers side of the decode line (same threads). */
#include "runtime/cpu/kernels.h"
#include "runtime/vae.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static float *filled(size_t n, uint64_t seed, float scale) {
    float *x = malloc(n * sizeof(float));
    if (!x) exit(1);
    eb_rng_fill_normal(x, n, eb_rng_key(seed, 0));
    for (size_t i = 0; i < n; i++) x[i] *= scale;
    return x;
}

static int bench_conv(int rounds) {
    const int C = 512, S = 64;
    eb_conv_shape s = {.B = 1, .IC = C, .H = S, .W = S, .OC = C, .kh = 3, .kw = 3, .sh = 1, .sw = 1, .ph = 1, .pw = 1};
    float *x = filled((size_t)C * S * S, 1, 1.0f), *w = filled((size_t)C * C * 9, 2, 0.015f), *b = filled(C, 3, 0.1f);
    float *out = malloc(sizeof(float) * C * S * S), *up = malloc(sizeof(float) * C * S * S);
    const double flop = 2.0 * C * C * 9 * S * S;
    double best_conv = 1e30, best_fused = 1e30, best_split = 1e30;
    conv2d_forward(out, x, w, b, &s); /* warm-up: threads, im2col tiles */
    eb_conv_shape half = s;
    half.H = half.W = S / 2;
    for (int r = 0; r < rounds; r++) {
        double t0 = now();
        conv2d_forward(out, x, w, b, &s);
        double t1 = now();
        half.upsample2 = 1;
        conv2d_forward(out, x, w, b, &half); /* reads x's first 32² plane as the source of a 64² input */
        double t2 = now();
        upsample2x_forward(up, x, 1, C, S / 2, S / 2);
        conv2d_forward(out, up, w, b, &s);
        double t3 = now();
        best_conv = t1 - t0 < best_conv ? t1 - t0 : best_conv;
        best_fused = t2 - t1 < best_fused ? t2 - t1 : best_fused;
        best_split = t3 - t2 < best_split ? t3 - t2 : best_split;
    }
    printf("conv2d 512->512 3x3 at 64x64: %.1f ms, %.1f GFLOP/s of the direct convolution's flops (Winograd path)\n",
           1e3 * best_conv, 1e-9 * flop / best_conv);
    printf("upsample x2 + conv 512 at 32->64: fused %.1f ms, upsample2x then conv %.1f ms (fused/split %.3f)\n",
           1e3 * best_fused, 1e3 * best_split, best_fused / best_split);
    free(x), free(w), free(b), free(out), free(up);
    return 0;
}

static int bench_decode(int side, int iters) {
    eb_vae_config c;
    eb_vae_config_sd(&c);
    eb_vae *v;
    if (eb_vae_create_on(&v, &c, NULL)) {
        fprintf(stderr, "bench_vae: %s\n", eb_last_error());
        return 1;
    }
    /* N(0, 1/fan_in) weights, unit GroupNorm scales: activations stay O(1); speed does not depend on values */
    float *host = malloc(eb_vae_param_floats(v) * sizeof(float));
    for (int i = 0; i < eb_vae_param_count(v); i++) {
        const eb_vae_param *p = eb_vae_param_at(v, i);
        float *dst = host + p->offset;
        eb_rng_fill_normal(dst, p->numel, eb_rng_key(7, (uint64_t)i));
        float scale = p->rank > 1 ? 1.0f / sqrtf((float)(p->numel / p->shape[0])) : 0.1f;
        for (size_t k = 0; k < p->numel; k++) dst[k] = strstr(p->name, "norm") && strstr(p->name, "weight") ? 1.0f : dst[k] * scale;
    }
    eb_vae_set_params(v, host);
    free(host);
    const int s = eb_vae_upscale(&c);
    float *z = filled((size_t)c.latent_channels * side * side, 5, 1.0f);
    float *img = malloc(sizeof(float) * c.out_channels * side * s * side * s);
    if (eb_vae_decode(v, img, z, 1, side, side)) {
        fprintf(stderr, "bench_vae: %s\n", eb_last_error());
        return 1;
    }
    double t0 = now();
    for (int i = 0; i < iters; i++) eb_vae_decode(v, img, z, 1, side, side);
    double dt = (now() - t0) / iters;
    const char *wait = getenv("OMP_WAIT_POLICY");
    printf("ebcache decode %dx%d -> %dx%d: %.3f images/s (%.2f s per image, %.1f GFLOP/s), OpenBLAS core %s, "
           "OMP_WAIT_POLICY %s\n", side, side, side * s, side * s, 1 / dt, dt, 2e-9 * eb_vae_decode_macs(&c, side, side) / dt,
           openblas_get_corename(), wait ? wait : "unset");
    free(z), free(img);
    eb_vae_free(v);
    return 0;
}

int main(int argc, char **argv) {
    eb_cpu_reexec(argv);
    eb_kernels_init(0);
    if (argc == 3 && !strcmp(argv[1], "conv")) return bench_conv(atoi(argv[2]));
    if (argc == 4 && !strcmp(argv[1], "decode")) return bench_decode(atoi(argv[2]), atoi(argv[3]));
    fprintf(stderr, "usage: bench_vae conv ROUNDS | bench_vae decode SIDE ITERS\n");
    return 2;
}
