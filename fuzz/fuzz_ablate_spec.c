/* fuzz_ablate_spec.c — libFuzzer target for ablation spec files
 * (pipeline/ablation_spec.c eb_ablation_spec_read, in the library).
 *
 * Each input is read as a spec; one that reads must name only known methods,
 * list sizes within their bounds and positive native sweep values, and plan
 * at least one point per sampler. Any other outcome but a crash or a
 * sanitizer report is fine.
 */
#include <stdint.h>
#include <stdlib.h>

#include "pipeline/ablation.h"
#include "fuzz/fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *bytes, size_t size) {
    static eb_ablation_spec s; /* two PATH_MAX paths: kept off the stack */
    if (eb_ablation_spec_read(&s, fuzz_input_file("input.spec", bytes, size))) return 0;
    if (s.n_methods < 1 || s.n_methods > EB_ABLATION_MAX_LIST || s.n_samplers < 1 || s.n_samplers > EB_ABLATION_MAX_LIST) abort();
    for (int i = 0; i < s.n_methods; i++)
        if (s.methods[i] < 0 || s.methods[i] >= EB_NMETHODS) abort();
    for (int m = 0; m < EB_NMETHODS; m++) /* a native sweep: of a listed method, positive values */
        for (int i = 0; i < s.n_native[m]; i++)
            if (s.n_native[m] > EB_ABLATION_MAX_LIST || !(s.native[m][i] > 0)) abort();
    static eb_ablation_point points[EB_ABLATION_MAX_LIST * EB_ABLATION_MAX_LIST * (EB_NMETHODS + 1)];
    if (eb_ablation_plan(&s, points, sizeof points / sizeof points[0]) < s.n_samplers) abort();
    return 0;
}
