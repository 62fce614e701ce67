/* fuzz_npy.c — libFuzzer target for the .npy import (`schedule from-npy`,
 * runtime/schedule.c eb_npy_read_i64).
 *
 * Each input is read as an int64 .npy; a vector of a step count the sampler
 * can run (1..1000) then becomes the EB-Cache table for that sampler, which
 * must expand into a plan for a 28-block model. Any other outcome but a crash
 * or a sanitizer report is fine.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "fuzz/fuzz_input.h"
#include "runtime/schedule.h"

int LLVMFuzzerTestOneInput(const uint8_t *bytes, size_t size) {
    const char *path = fuzz_input_file("input.npy", bytes, size);
    int64_t *v, n;
    if (eb_npy_read_i64(path, &v, &n)) return 0;
    free(v);
    if (n > EB_DIFFUSION_STEPS) return 0;
    eb_schedule s;
    char respacing[16];
    snprintf(respacing, sizeof respacing, "%lld", (long long)n);
    if (eb_schedule_create(&s, respacing)) return 0;
    eb_cache_schedule *cs;
    if (!eb_cache_schedule_from_npy(&cs, path, &s, 1.05)) {
        eb_cache_plan p;
        if (eb_cache_plan_build(&p, cs, 28, &s)) abort(); /* a generated table is always valid */
        eb_cache_plan_free(&p);
        eb_cache_schedule_free(cs);
    }
    eb_schedule_free(&s);
    return 0;
}
