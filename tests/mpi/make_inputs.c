/* make_inputs.c — the inputs of tests/mpi/imagenet.sh, written into the folder argv[1]:
 * inception.safetensors (the random-weight network of tests/inception_fixture.c, with the fc
 * layer), s1.npz (3 images), s2.npz (2) and ref.npz (4): 32×32 uint8 RGB gradients, each image
 * its own. Exit 0, or 1 with the message on stderr. */
#include "runtime/npz.h"
#include "tests/inception_fixture.h"

#include <stdio.h>
#include <stdlib.h>

#define SIDE 32

/* folder/name: n images, the first one number `first`. */
static eb_status write_images(const char *folder, const char *name, int first, int n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", folder, name);
    uint8_t *u8 = malloc((size_t)n * SIDE * SIDE * 3);
    if (!u8) return eb_fail(EB_ERUNTIME, "out of memory");
    for (int i = 0; i < n; i++)
        for (int y = 0; y < SIDE; y++)
            for (int x = 0; x < SIDE; x++)
                for (int c = 0; c < 3; c++) {
                    const int k = first + i;
                    u8[(((size_t)i * SIDE + y) * SIDE + x) * 3 + c] =
                        (uint8_t)(37 * k + (k + 1) * 5 * x + (3 + k) * (c + 1) * y);
                }
    eb_npz_writer *w;
    eb_status st = eb_npz_create(&w, path);
    if (!st) st = eb_npz_write_array(w, "arr_0", EB_NPY_U8, 4, (int64_t[]){n, SIDE, SIDE, 3}, u8);
    if (!st) st = eb_npz_close(w);
    else eb_npz_abort(w);
    free(u8);
    return st;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: make_inputs FOLDER\n");
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/inception.safetensors", argv[1]);
    eb_status st = inception_formula_write(path, 1, INCEPTION_FIXTURE_SEED);
    if (!st) st = write_images(argv[1], "s1.npz", 0, 3);
    if (!st) st = write_images(argv[1], "s2.npz", 3, 2);
    if (!st) st = write_images(argv[1], "ref.npz", 5, 4);
    if (st) fprintf(stderr, "make_inputs: %s\n", eb_last_error());
    return st ? 1 : 0;
}
