/* fuzz_ablate_spec.c — libFuzzer target for ablation spec files
 * (cli/ablate_spec.c ablate_spec_read, compiled into the target).
 *
 * Each input is read as a spec; one that reads must name only known methods
 * and list sizes within their bounds. Any other outcome but a crash or a
 * sanitizer report is fine.
 */
#include <stdint.h>
#include <stdlib.h>

#include "cli/ablate_spec.h"
#include "fuzz/fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *bytes, size_t size) {
    static spec s; /* two PATH_MAX paths: kept off the stack */
    if (ablate_spec_read(&s, fuzz_input_file("input.spec", bytes, size))) return 0;
    if (s.n_methods < 1 || s.n_methods > MAX_LIST || s.n_samplers < 1 || s.n_samplers > MAX_LIST) abort();
    for (int i = 0; i < s.n_methods; i++)
        if (s.methods[i] < 0 || s.methods[i] >= EB_NMETHODS) abort();
    return 0;
}
