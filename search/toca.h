/* search/toca.h — ToCa's (token-wise caching, Zou et al. 2024) table for DiT,
 * as its DiT scripts configure it (docs/schedule.md, "ToCa"). */
#ifndef EB_SEARCH_TOCA_H
#define EB_SEARCH_TOCA_H

#include "runtime/schedule.h"

/* ToCa's DiT default fresh ratio R (sample.py --fresh-ratio). */
#define EB_TOCA_RATIO 0.07

/* ToCa for `depth` blocks and the sampler s with fresh ratio R = `ratio` ∈ [0, 1]
 * and fresh threshold N = `interval` ≥ 1, its 'ToCa' ratio schedule, global
 * force-fresh and attention scores: per step k (sampler index i = S−1−k) and
 * block l in order, a block computes (C C) at the first step or where i is a
 * multiple of the current refresh period, and each computing block sets the
 * period to round(N / (1.4 − 0.8·i/S)) (R = 0: N, and 2 for 50 ≤ i < 100);
 * every other block reuses its attention and recomputes the fraction
 * R·(1.8 − 1.6·l/(L−1))·(1.4 − 0.8·i/S)·2.5 (at most 1) of its MLP's tokens
 * (P). The score is ToCa's default with the ages normalised by N (fresh = N).
 * EB_EINPUT on bad arguments. */
eb_status eb_cache_schedule_toca(eb_cache_schedule **out, const eb_schedule *s, int depth, double ratio, int interval);

#endif
