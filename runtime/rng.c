/* rng.c — the counter-based normal generator of docs/rng.md.
 * Every element is a pure function of (seed, stream, index), so parallel
 * fills give the same bits at any thread count. */
#include "runtime/ebcache.h"
#include "runtime/parallel.h"

#include <math.h>

#define GOLDEN 0x9E3779B97F4A7C15ull

static uint64_t mix64(uint64_t z) {
    z ^= z >> 30;
    z *= 0xBF58476D1CE4E5B9ull;
    z ^= z >> 27;
    z *= 0x94D049BB133111EBull;
    z ^= z >> 31;
    return z;
}

uint64_t eb_rng_key(uint64_t seed, uint64_t stream) { return mix64(mix64(seed ^ 0x6A09E667F3BCC909ull) + stream * GOLDEN); }

static uint64_t draw(uint64_t key, uint64_t counter) { return mix64(key + (counter + 1) * GOLDEN); }

float eb_rng_normal(uint64_t key, uint64_t j) {
    const double two_pow_m53 = 1.0 / 9007199254740992.0;
    double u1 = (double)((draw(key, 2 * j) >> 11) + 1) * two_pow_m53; /* (0, 1]: log is finite */
    double u2 = (double)(draw(key, 2 * j + 1) >> 11) * two_pow_m53;   /* [0, 1) */
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

void eb_rng_fill_normal(float *out, size_t n, uint64_t key) {
#pragma omp parallel for schedule(static) if (n >= EB_PAR_MIN_ELEMS)
    for (size_t j = 0; j < n; j++) out[j] = eb_rng_normal(key, j);
}
