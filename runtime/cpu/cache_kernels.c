/* cache_kernels.c — the CPU kernels of the cache engine: copies, residuals,
 * the relative L1 change and TaylorSeer's finite differences and forecast;
 * and the recorder's drift reduction, which shares the fixed-chunk sums.
 * Elementwise float32 in the order PyTorch evaluates the same expressions,
 * so the reference (reference/cache_ref.py) matches to rounding. */
#include "runtime/cpu/kernels.h"
#include "runtime/parallel.h"

#include <math.h>
#include <stdint.h>
#include <omp.h>
#include <string.h>

void copy_forward(float *dst, const float *src, size_t n) { memcpy(dst, src, n * sizeof(float)); }

void add_scaled_forward(float *out, const float *a, float s, const float *b, size_t n) {
#pragma omp parallel for schedule(static) if (n >= EB_PAR_MIN_ELEMS)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + s * b[i];
}

/* Fixed chunks, each summed by one thread, then added in chunk order: the
 * result does not depend on the thread count. */
#define REL_L1_CHUNKS 64

double rel_l1_forward(const float *a, const float *b, size_t n) {
    double diff[REL_L1_CHUNKS], base[REL_L1_CHUNKS];
#pragma omp parallel for schedule(static) if (n >= EB_PAR_MIN_ELEMS)
    for (int k = 0; k < REL_L1_CHUNKS; k++) {
        size_t lo = n * k / REL_L1_CHUNKS, hi = n * (k + 1) / REL_L1_CHUNKS;
        double d = 0, s = 0;
        for (size_t i = lo; i < hi; i++) {
            d += __builtin_fabsf(a[i] - b[i]);
            s += __builtin_fabsf(b[i]);
        }
        diff[k] = d, base[k] = s;
    }
    double d = 0, s = 0;
    for (int k = 0; k < REL_L1_CHUNKS; k++) d += diff[k], s += base[k];
    return d / s;
}

typedef float vf4 __attribute__((vector_size(16)));
typedef double vd4 __attribute__((vector_size(32)));
typedef int64_t vl4 __attribute__((vector_size(32)));

static inline vd4 abs4(vd4 v) { return (vd4)((vl4)v & (vl4){INT64_MAX, INT64_MAX, INT64_MAX, INT64_MAX}); }

void feature_drift_forward(double *sums, float *prev, const float *cur, size_t n) {
    double part[REL_L1_CHUNKS][5];
#pragma omp parallel for schedule(static) if (n >= EB_PAR_MIN_ELEMS)
    for (int k = 0; k < REL_L1_CHUNKS; k++) {
        size_t lo = n * k / REL_L1_CHUNKS, hi = n * (k + 1) / REL_L1_CHUNKS;
        /* four double lanes per sum (elements i ≡ lane mod 4 of the chunk, the tail in lane 0),
         * added in lane order: fixed by n alone, like the chunks */
        vd4 l1 = {0}, base = {0}, dot = {0}, cc = {0}, pp = {0};
        size_t i = lo;
        for (; i + 4 <= hi; i += 4) {
            vf4 cf, pf;
            memcpy(&cf, cur + i, sizeof cf);
            memcpy(&pf, prev + i, sizeof pf);
            vd4 c = __builtin_convertvector(cf, vd4), p = __builtin_convertvector(pf, vd4);
            l1 += abs4(c - p), base += abs4(p), dot += c * p, cc += c * c, pp += p * p;
            memcpy(prev + i, &cf, sizeof cf);
        }
        for (; i < hi; i++) {
            double c = cur[i], p = prev[i];
            l1[0] += fabs(c - p), base[0] += fabs(p), dot[0] += c * p, cc[0] += c * c, pp[0] += p * p;
            prev[i] = cur[i];
        }
        const vd4 lanes[5] = {l1, base, dot, cc, pp};
        for (int j = 0; j < 5; j++) part[k][j] = ((lanes[j][0] + lanes[j][1]) + lanes[j][2]) + lanes[j][3];
    }
    for (int j = 0; j < 5; j++) sums[j] = 0;
    for (int k = 0; k < REL_L1_CHUNKS; k++)
        for (int j = 0; j < 5; j++) sums[j] += part[k][j];
}

void taylor_update_forward(float *factors, int cap, int have, const float *feature, size_t n, float dist) {
    int valid = have + 1 < cap ? have + 1 : cap;
#pragma omp parallel for schedule(static) if (n >= EB_PAR_MIN_ELEMS)
    for (size_t i = 0; i < n; i++) {
        float next = feature[i];
        for (int k = 0; k < valid; k++) {
            float old = factors[(size_t)k * n + i];
            factors[(size_t)k * n + i] = next;
            if (k + 1 < valid) next = (next - old) / dist;
        }
    }
}

void taylor_forecast_forward(float *out, const float *factors, int orders, size_t n, float offset) {
    float coef[EB_TAYLOR_MAX_ORDER + 1], power[EB_TAYLOR_MAX_ORDER + 1];
    double fact = 1, pw = 1;
    for (int k = 0; k < orders; k++) {
        if (k) fact *= k, pw *= offset;
        coef[k] = (float)(1.0 / fact), power[k] = (float)pw;
    }
#pragma omp parallel for schedule(static) if (n >= EB_PAR_MIN_ELEMS)
    for (size_t i = 0; i < n; i++) {
        float acc = coef[0] * factors[i] * power[0];
        for (int k = 1; k < orders; k++) acc += coef[k] * factors[(size_t)k * n + i] * power[k];
        out[i] = acc;
    }
}
