/* backend_select.c — a backend by device name and precision (docs/cuda.md).
 * The CUDA backend exists only in a build made with `make CUDA=1`, which
 * compiles this file with EB_WITH_CUDA; any other build names the rebuild. */
#include "runtime/model.h"

#ifdef EB_WITH_CUDA
#include "runtime/cuda/backend_cuda.h"
#endif

#include <string.h>

static const char *const precision_names[] = {"fp32", "tf32", "bf16"};
#define NUM_PRECISIONS ((int)(sizeof precision_names / sizeof precision_names[0]))

eb_status eb_precision_parse(const char *name, eb_precision *out) {
    for (int p = 0; name && p < NUM_PRECISIONS; p++)
        if (!strcmp(name, precision_names[p])) {
            *out = (eb_precision)p;
            return EB_OK;
        }
    return eb_fail(EB_EINPUT, "precision '%s' is not fp32, tf32 or bf16", name ? name : "(null)");
}

const char *eb_devices_built(void) {
#ifdef EB_WITH_CUDA
    return "cpu cuda";
#else
    return "cpu";
#endif
}

eb_status eb_backend_select(const eb_device *dev, const eb_backend **be, const eb_backend **cond_be) {
    const char *name = dev && dev->device ? dev->device : "cpu";
    eb_precision p = dev ? dev->precision : EB_PRECISION_FP32;
    if ((int)p < 0 || (int)p >= NUM_PRECISIONS)
        return eb_fail(EB_EINPUT, "device %s: precision %d unknown", name, (int)p);
    if (!strcmp(name, "cpu")) {
        if (p != EB_PRECISION_FP32)
            return eb_fail(EB_EINPUT, "device cpu runs fp32 only (precision %s needs device cuda)", precision_names[p]);
        *be = *cond_be = &eb_backend_cpu;
        return EB_OK;
    }
    if (strcmp(name, "cuda")) return eb_fail(EB_EINPUT, "unknown device '%s' (cpu or cuda)", name);
#ifdef EB_WITH_CUDA
    eb_status st = eb_cuda_backend(p, be);
    return st ? st : eb_cuda_backend(EB_PRECISION_FP32, cond_be);
#else
    return eb_fail(EB_ERUNTIME, "device cuda: built without CUDA (rebuild with make CUDA=1)");
#endif
}
