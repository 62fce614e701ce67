/* fuzz_safetensors.c — libFuzzer target for the safetensors reader (runtime/safetensors.c).
 *
 * Each input is opened as a .safetensors buffer through the memory API (the
 * file API only adds the mmap), then every tensor is looked up by name and
 * converted to float, and a few metadata keys are read. The same bytes also go
 * through the JSON reader as one value (the grammar of diffusers' config.json;
 * fuzz_weights.c reads its keys). Any outcome but a crash or a sanitizer
 * report is fine.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/safetensors.h"

/* Conversions are legal for any size the data buffer holds; cap the buffer we allocate. */
#define FUZZ_MAX_ELEMS ((uint64_t)1 << 22)

int LLVMFuzzerTestOneInput(const uint8_t *bytes, size_t size) {
    eb_json j;
    eb_json_init(&j, (const char *)bytes, size, "input.json");
    if (!eb_json_skip(&j)) eb_json_finish(&j);

    eb_st_file *f;
    if (eb_st_open_memory(&f, bytes, size, "input.safetensors")) return 0;
    for (int i = 0; i < eb_st_count(f); i++) {
        const eb_st_tensor *t = eb_st_tensor_at(f, i);
        if (eb_st_find(f, t->name) != t) abort(); /* names are unique: lookup finds this very entry */
        if (t->numel > FUZZ_MAX_ELEMS) continue;
        float *dst = malloc((size_t)t->numel * sizeof(float) + 1);
        if (!dst) abort();
        eb_st_read_f32(f, t, dst, (size_t)t->numel);
        free(dst);
    }
    const char *keys[] = {"input_size", "hidden_size", "learn_sigma", "format", ""};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        const char *v = eb_st_metadata(f, keys[k]);
        if (v && strlen(v) > size) abort(); /* a value is decoded from the input, never longer */
    }
    eb_st_close(f);
    return 0;
}
