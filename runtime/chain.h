/* chain.h — one sampling chain, a step at a time: the reverse-process loop of
 * eb_sample_cached taken apart, so that a caller can evaluate a step under
 * several cache actions before it advances (the eb-cache search, cache.h's
 * eb_cache_use_step / eb_cache_save / eb_cache_restore).
 *
 *   for (step = 0; step < S; step++) { eb_chain_eval(...); eb_chain_advance(...); }
 *
 * is exactly eb_sample_cached. */
#ifndef EB_CHAIN_H
#define EB_CHAIN_H

#include "runtime/cache.h"
#include "runtime/ebcache.h"

typedef struct eb_chain eb_chain;

/* A chain of N samples (rows first_index.. of the run: their noise streams)
 * on schedule s with the sampler options o and, unless NULL, the cache (made
 * for 2N rows with guidance, N without). Checks the options; allocates every
 * buffer and the model's activations. */
eb_status eb_chain_create(eb_chain **out, eb_model *m, const eb_schedule *s, const eb_sampler_opts *o,
                          eb_cache *cache, int N, int first_index);
void eb_chain_free(eb_chain *c);

/* The model at sampling step `step` (0 = the noisiest) on x (N, C, H, W) with
 * labels y: the guided output, its ε divided by the cache's divisor for the
 * step; x is not changed. The result stays in the chain (eb_chain_output). */
eb_status eb_chain_eval(eb_chain *c, int step, const float *x, const int32_t *y);
/* (N, C_out, H, W): the last eb_chain_eval's output. */
const float *eb_chain_output(const eb_chain *c);

/* The reverse step `step` of x (N, C, H, W) in place with the last output:
 * DDPM or DDIM, with the step's noise streams. */
void eb_chain_advance(eb_chain *c, int step, float *x);

#endif
