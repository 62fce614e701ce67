/* cache.h — the cache engine: runs a cache schedule (schedule.h) on a model,
 * one sampling step at a time, on the backend's buffers.
 *
 * Every buffer is allocated by eb_cache_create for a model batch of up to
 * `capacity` rows (2N with guidance: the cache holds both halves); a step
 * allocates nothing. A cache serves one trajectory: steps 0, 1, … in order,
 * all with the same model batch size.
 */
#ifndef EB_CACHE_H
#define EB_CACHE_H

#include "runtime/model.h"
#include "runtime/schedule.h"

/* Validates `cs` against m and the sampler s (NULL: timesteps unchecked) and
 * allocates its caches for `capacity` model-batch rows. On failure *out is NULL. */
eb_status eb_cache_create(eb_cache **out, eb_model *m, const eb_cache_schedule *cs, const eb_schedule *s,
                          int capacity);
void eb_cache_free(eb_cache *c);

/* The forward of sampling step `step` on the B-row model batch already in
 * m->acts (as eb_forward_batch), with the schedule's actions: leaves the
 * output in m->acts.out. EB_EINPUT when the step is out of order or B differs
 * from the trajectory's batch. */
eb_status eb_cache_forward_batch(eb_cache *c, int step, int B);

/* Step-by-step control (the eb-cache search evaluates a step under several
 * actions from one chain state):
 * eb_cache_use_step copies step `step`'s actions and ε divisor from `from` (a
 * plan of the same S and L whose reused modules this cache keeps, e.g. every
 * module reused somewhere in the schedule it was made from). eb_cache_save
 * keeps the cache's state (every cached feature, the step counter and cost);
 * eb_cache_restore returns to it, so that the same step can run again. The
 * saved copy is allocated on the first save (EB_ERUNTIME when out of memory). */
eb_status eb_cache_use_step(eb_cache *c, int step, const eb_cache_plan *from);
eb_status eb_cache_save(eb_cache *c);
void eb_cache_restore(eb_cache *c);

/* The ε divisor of a step. */
float eb_cache_eps_scale(const eb_cache *c, int step);

/* Bytes of the cache buffers (every cached feature, Taylor factor, residual
 * and policy probe), all allocated by eb_cache_create. */
size_t eb_cache_bytes(const eb_cache *c);

/* Multiply-accumulates executed so far (all rows), steps served by the
 * dynamic policy so far, and whether step k was one of them. */
double eb_cache_macs(const eb_cache *c);
int eb_cache_steps_skipped(const eb_cache *c);
int eb_cache_policy_skipped(const eb_cache *c, int step);

#endif
