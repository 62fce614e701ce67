/* clock.c — see clock.h. */
#include "runtime/clock.h"

double eb_clock_seconds(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return (double)t.tv_sec + 1e-9 * t.tv_nsec;
}

double eb_now_seconds(void) { return eb_clock_seconds(CLOCK_MONOTONIC); }
