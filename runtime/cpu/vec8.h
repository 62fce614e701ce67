/* vec8.h — 8-lane float vectors (GCC vector extensions) for the CPU kernels' hot loops: loads and
 * stores with a tail, exp and tanh that vectorise without -ffast-math. Internal to runtime/cpu/. */
#ifndef EB_CPU_VEC8_H
#define EB_CPU_VEC8_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* exp and tanh for the hot loops (softmax, GELU), written on 8-lane GCC vectors
 * so they vectorise without -ffast-math; a tail shorter than 8 runs in a padded
 * vector, so every element goes through the same operations. fast exp is within
 * 2 ulp of expf on [-87, 88] (tests/test_kernels.c): range reduction
 * x = n·ln2 + r, |r| ≤ ln2/2, a degree-7 Taylor polynomial (remainder < 6e-9
 * relative), and 2^n from the exponent bits. */
typedef float vf8 __attribute__((vector_size(32)));
typedef int32_t vi8 __attribute__((vector_size(32)));

static inline vf8 splat(float v) { return (vf8){v, v, v, v, v, v, v, v}; }
static inline vf8 select8(vi8 mask, vf8 a, vf8 b) { return (vf8)(((vi8)a & mask) | ((vi8)b & ~mask)); }

static inline vf8 exp8(vf8 x) {
    x = select8(x < splat(-87.0f), splat(-87.0f), x);
    x = select8(x > splat(88.0f), splat(88.0f), x);
    vf8 n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round to nearest */
    vf8 r = (x - n * 0.693145751953125f) - n * 1.428606765330187045e-06f;
    vf8 p = splat(1.0f / 5040.0f);
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    vi8 bits = (__builtin_convertvector(n, vi8) + 127) << 23;
    return p * (vf8)bits;
}

/* tanh = sign(x)·(1 − 2 / (e^{2|x|} + 1)): absolute error ≤ ~1e-7, which is what
 * GELU needs (it multiplies by x and adds 1). */
static inline vf8 tanh8(vf8 x) {
    vi8 sign = (vi8)x & (int32_t)0x80000000;
    vf8 e = exp8((vf8)((vi8)x & 0x7fffffff) * 2.0f);
    vf8 t = 1.0f - 2.0f / (e + 1.0f);
    return (vf8)((vi8)t | sign);
}

/* A full vector is one unaligned move; only a tail goes through a variable-length copy. */
static inline vf8 load8(const float *p, size_t n) {
    vf8 v = splat(0.0f);
    if (n >= 8) memcpy(&v, p, sizeof v);
    else memcpy(&v, p, n * sizeof(float));
    return v;
}
static inline void store8(float *p, vf8 v, size_t n) {
    if (n >= 8) memcpy(p, &v, sizeof v);
    else memcpy(p, &v, n * sizeof(float));
}

#endif
