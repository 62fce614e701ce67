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

/* OpenBLAS (0.3, OpenMP build) threads one GEMM of more than 65536 × 4 multiply-adds itself
 * (SMP_THRESHOLD_MIN × GEMM_MULTITHREAD_THRESHOLD) when it is called outside an active parallel
 * region, and its split changes the last bits with the thread count. So a loop of GEMMs runs in an
 * active region (each GEMM on one thread) when its work is worth a team or any one GEMM is that large. */
#define EB_BLAS_OWN_THREADS_MACS ((size_t)65536 * 4)
static inline int eb_gemm_loop_parallel(size_t total_macs, size_t one_gemm_macs) {
    return total_macs >= EB_PAR_MIN_MACS || one_gemm_macs > EB_BLAS_OWN_THREADS_MACS;
}

#endif
