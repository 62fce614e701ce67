/* parallel.h — when a CPU loop is worth a thread team.
 *
 * Waking the OpenMP team costs microseconds on an idle machine and up to a
 * scheduler time slice on a busy one (the woken thread waits for a core), so
 * small loops run on the calling thread. Every split of the work is a fixed
 * set of chunks, so the choice never changes the results. */
#ifndef EB_PARALLEL_H
#define EB_PARALLEL_H

#include <stddef.h>

/* Elements of an elementwise loop (a few flops each) below which one thread runs it. */
#define EB_PAR_MIN_ELEMS ((size_t)1 << 15)
/* Multiply-adds of a matrix-product loop below which one thread runs it (~0.2 ms on one core). */
#define EB_PAR_MIN_MACS ((size_t)1 << 22)

#endif
