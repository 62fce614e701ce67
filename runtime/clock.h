/* runtime/clock.h — the one clock reading behind every wall time, ETA and
 * CPU-time measurement. */
#ifndef EB_RUNTIME_CLOCK_H
#define EB_RUNTIME_CLOCK_H

#include <time.h>

/* Seconds on `clock`: CLOCK_MONOTONIC for intervals of wall time,
 * CLOCK_PROCESS_CPUTIME_ID for the process's CPU time (all threads). */
double eb_clock_seconds(clockid_t clock);

/* eb_clock_seconds(CLOCK_MONOTONIC). */
double eb_now_seconds(void);

#endif
