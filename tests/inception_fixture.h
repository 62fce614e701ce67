/* inception_fixture.h — the random-weight FID Inception of reference/inception_ref.py
 * (random_weights): tensor i of the layout drawn from the counter-based generator with
 * key(seed, i), so a test makes the network the goldens were computed with, without a 95 MB
 * file in the repository. Plain library code (no Criterion): tests/mpi's input writer uses it too. */
#ifndef EB_TEST_INCEPTION_FIXTURE_H
#define EB_TEST_INCEPTION_FIXTURE_H

#include "analyze/inception.h"

#include <stdint.h>

#define INCEPTION_FIXTURE_SEED 20261207 /* reference/inception_ref.py SEED (inception.h5's seed attribute) */

/* The table of m's layout (eb_inception_tensor_floats floats, malloc'd; NULL when out of
 * memory) from the formula of reference/inception_ref.py: conv weights z·sqrt(2/fan_in),
 * fc.weight z/sqrt(2048), bn.weight 1 + 0.1z, bn.running_var 0.75 + 0.25z², bn.bias and
 * bn.running_mean 0.1z. */
float *inception_formula_table(const eb_inception *m, uint64_t seed);

/* Writes that network (with the fc layer or not) to path as F32 .safetensors. */
eb_status inception_formula_write(const char *path, int with_fc, uint64_t seed);

#endif
