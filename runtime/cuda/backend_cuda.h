/* backend_cuda.h — the CUDA backend's entry points (runtime/cuda/, docs/cuda.md).
 *
 * Only a build made with `make CUDA=1` has them; backend_select.c is the one
 * caller in the library, the GPU benchmark (bench/bench_gpu.c) the other.
 */
#ifndef EB_BACKEND_CUDA_H
#define EB_BACKEND_CUDA_H

#include "runtime/backend.h"
#include "runtime/ebcache.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The CUDA backend computing at `precision` on the current device, which is
 * initialised on the first call. EB_ERUNTIME "no CUDA device or driver: ..."
 * when the CUDA runtime finds none, or naming the device when this build has
 * no code for it; the same failure again on every later call. */
eb_status eb_cuda_backend(eb_precision precision, const eb_backend **out);

/* The device's name and compute capability, e.g. "NVIDIA H100 80GB HBM3 (sm_90)";
 * "" before a successful eb_cuda_backend. */
const char *eb_cuda_device_name(void);

/* Device memory the backend holds now, and the most it held since the last
 * reset: allocations, bf16 weight copies, scratch and the GEMM workspace. */
void eb_cuda_memory(size_t *now, size_t *peak);
void eb_cuda_memory_reset_peak(void);

/* Seconds per call of the GEMM the backend's linear runs at `precision` for
 * out (BT, OC) = in (BT, IC) · w (OC, IC)ᵀ + b, with its operands already in
 * the GEMM's input type (so bf16 skips the conversions linear does): the
 * cuBLAS rate a forward's GEMMs could reach. Mean over `iters` calls after
 * one warm-up; a negative value when the GEMM could not run. */
double eb_cuda_gemm_seconds(eb_precision precision, int BT, int IC, int OC, int iters);

#ifdef __cplusplus
}
#endif
#endif
