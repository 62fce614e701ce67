/* test_kernels.c — the CPU kernels' own numerics (the goldens cover the rest). */
#include "runtime/cpu/kernels.h"

#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

static int64_t ulp_distance(float a, float b) {
    int32_t ia, ib;
    memcpy(&ia, &a, 4);
    memcpy(&ib, &b, 4);
    if (ia < 0) ia = INT32_MIN - ia;
    if (ib < 0) ib = INT32_MIN - ib;
    return llabs((int64_t)ia - ib);
}

Test(kernels, fast_exp_within_two_ulp) {
    int64_t worst = 0;
    float at = 0;
    for (float x = -87.0f; x <= 88.0f; x += 0.000731f) {
        int64_t d = ulp_distance(eb_fast_expf(x), (float)exp((double)x));
        if (d > worst) worst = d, at = x;
    }
    cr_expect_leq(worst, 2, "fast exp is %lld ulp off at %g", (long long)worst, at);
    cr_expect_eq(eb_fast_expf(0.0f), 1.0f);
    cr_expect(eb_fast_expf(-1e30f) < 1e-37f && eb_fast_expf(-1e30f) >= 0.0f, "large negative arguments underflow to ~0");
}

Test(kernels, fast_tanh_absolute_error) {
    double worst = 0;
    for (float x = -20.0f; x <= 20.0f; x += 0.0001f) worst = fmax(worst, fabs(eb_fast_tanhf(x) - tanh((double)x)));
    cr_expect_leq(worst, 2e-7, "fast tanh abs error %g", worst);
}

/* linear_forward against a double loop: 3 row chunks of EB_GEMM_ROWS plus a tail, and one chunk
 * large enough to be split into EB_GEMM_COLS column blocks (with a tail block); the bits the same at
 * one thread and at two. */
Test(kernels, linear_blocks_do_not_change_results) {
    const struct { int BT, IC, OC; } shapes[] = {{3 * EB_GEMM_ROWS + 5, 17, 9}, {17, 300, 2 * EB_GEMM_COLS + 40}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int BT = shapes[s].BT, IC = shapes[s].IC, OC = shapes[s].OC;
        float *in = malloc(sizeof(float) * BT * IC), *w = malloc(sizeof(float) * OC * IC), *b = malloc(sizeof(float) * OC);
        float *out = malloc(sizeof(float) * BT * OC), *again = malloc(sizeof(float) * BT * OC);
        for (int i = 0; i < BT * IC; i++) in[i] = sinf(i * 0.37f);
        for (int i = 0; i < OC * IC; i++) w[i] = cosf(i * 0.11f);
        for (int i = 0; i < OC; i++) b[i] = 0.1f * i;
        omp_set_num_threads(2);
        linear_forward(out, in, w, b, BT, IC, OC);
        double worst = 0;
        for (int r = 0; r < BT; r++)
            for (int o = 0; o < OC; o++) {
                double acc = b[o], mag = fabs(b[o]);
                for (int k = 0; k < IC; k++) acc += (double)in[r * IC + k] * w[o * IC + k], mag += fabs(in[r * IC + k] * w[o * IC + k]);
                worst = fmax(worst, fabs(acc - out[r * OC + o]) / mag);
            }
        cr_expect_leq(worst, 1e-6, "linear %dx%dx%d: error %g of the terms' magnitude", BT, IC, OC, worst);
        omp_set_num_threads(1);
        linear_forward(again, in, w, b, BT, IC, OC);
        cr_expect_eq(memcmp(out, again, sizeof(float) * BT * OC), 0, "linear %dx%dx%d: other bits at one thread", BT, IC, OC);
        free(in), free(w), free(b), free(out), free(again);
    }
}

/* linear_rows_forward against a double loop, on widths that leave a K tail (IC % 8) and column
 * tails (OC % 4, OC % 32); each row's bits the same alone, among B rows, in an OC slice and at
 * one thread or two, which is what lets the adaLN of a sample ignore its batch. */
Test(kernels, linear_rows_matches_and_ignores_batch_width_and_threads) {
    const struct { int IC, OC; } shapes[] = {{256, 128}, {13, 70}, {768, 4608}, {1152, 6912}};
    enum { B = 9 };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int IC = shapes[s].IC, OC = shapes[s].OC, part = OC / 3;
        float *in = malloc(sizeof(float) * B * IC), *w = malloc(sizeof(float) * (size_t)OC * IC);
        float *b = malloc(sizeof(float) * OC), *all = malloc(sizeof(float) * B * OC), *one = malloc(sizeof(float) * OC);
        for (int i = 0; i < B * IC; i++) in[i] = sinf(i * 0.37f);
        for (size_t i = 0; i < (size_t)OC * IC; i++) w[i] = 0.05f * cosf(i * 0.11f);
        for (int i = 0; i < OC; i++) b[i] = 0.1f * sinf(i);
        linear_rows_forward(all, in, w, b, B, IC, OC);
        double worst = 0;
        for (int r = 0; r < B; r++)
            for (int o = 0; o < OC; o++) {
                double acc = b[o], mag = fabs(b[o]);
                for (int k = 0; k < IC; k++)
                    acc += (double)in[r * IC + k] * w[(size_t)o * IC + k], mag += fabs((double)in[r * IC + k] * w[(size_t)o * IC + k]);
                worst = fmax(worst, fabs(acc - all[r * OC + o]) / mag);
            }
        cr_expect_leq(worst, 1e-6, "IC %d OC %d: error %g of the terms' magnitude", IC, OC, worst);
        for (int threads = 1; threads <= 2; threads++) {
            omp_set_num_threads(threads);
            for (int r = 0; r < B; r++) {
                linear_rows_forward(one, in + (size_t)r * IC, w, b, 1, IC, OC);
                cr_expect_eq(memcmp(one, all + (size_t)r * OC, sizeof(float) * OC), 0,
                             "IC %d OC %d row %d alone, %d threads: other bits", IC, OC, r, threads);
                linear_rows_forward(one, in + (size_t)r * IC, w, b, 1, IC, part);
                cr_expect_eq(memcmp(one, all + (size_t)r * OC, sizeof(float) * part), 0,
                             "IC %d OC %d row %d, the first %d columns: other bits", IC, OC, r, part);
            }
        }
        omp_set_num_threads(omp_get_num_procs());
        free(in), free(w), free(b), free(all), free(one);
    }
}
