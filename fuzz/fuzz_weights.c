/* fuzz_weights.c — libFuzzer target for model loading (runtime/weights.c).
 *
 * An input that starts with '{' (after white space) is a diffusers
 * transformer config.json: it goes into a folder beside a symlink to the
 * tiny diffusers weights of the golden tests, and the folder is loaded.
 * Any other input is an official-key .safetensors file and is loaded as one:
 * the configuration from __metadata__ or inferred from tensor shapes, the
 * plan of every tensor, the pos_embed check, the conversion and finite check.
 * Any outcome but a crash or a sanitizer report is fine.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz/fuzz_input.h"
#include "runtime/weights.h"

#ifndef EB_REPO_ROOT
#error "EB_REPO_ROOT: the repository's absolute path (fuzz/Makefile sets it)"
#endif
#define DIFFUSERS_WEIGHTS EB_REPO_ROOT "/tests/golden/models/tiny_diffusers/transformer/diffusion_pytorch_model.safetensors"

/* A legal configuration may still ask for more memory than a fuzzing process
 * has (a 4096² image of 1×1 patches has 16 M tokens): such allocations fail
 * cleanly, as they would on a small machine. */
const char *__asan_default_options(void) { return "allocator_may_return_null=1:max_allocation_size_mb=512"; }

/* The diffusers folder: transformer/config.json is the input. */
static const char *diffusers_folder(const uint8_t *bytes, size_t size) {
    static char folder[128];
    if (!folder[0]) {
        char sub[160], link[200];
        fuzz_input_path(folder, sizeof folder, "dit");
        snprintf(sub, sizeof sub, "%s/transformer", folder);
        snprintf(link, sizeof link, "%s/diffusion_pytorch_model.safetensors", sub);
        if (mkdir(folder, 0700) || mkdir(sub, 0700) || symlink(DIFFUSERS_WEIGHTS, link)) abort();
    }
    fuzz_input_file("dit/transformer/config.json", bytes, size);
    return folder;
}

int LLVMFuzzerTestOneInput(const uint8_t *bytes, size_t size) {
    size_t i = 0;
    while (i < size && (bytes[i] == ' ' || bytes[i] == '\t' || bytes[i] == '\n' || bytes[i] == '\r')) i++;
    int is_json = i < size && bytes[i] == '{';
    const char *path = is_json ? diffusers_folder(bytes, size) : fuzz_input_file("model.safetensors", bytes, size);
    eb_model *m;
    if (!eb_model_load(&m, path, 0)) eb_model_free(m);
    return 0;
}
