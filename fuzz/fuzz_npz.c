/* fuzz_npz.c — libFuzzer target for the .npz reader (runtime/npz.c), which
 * `ebcache eval` and `ebcache features` feed sample and reference batches.
 *
 * Each input is opened as an archive; arr_0 is read to its end in chunks of
 * 4096 bytes (as the image loaders do, checking the CRC-32), mu and sigma
 * whole as float64. Any outcome but a crash or a sanitizer report is fine.
 */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz/fuzz_input.h"
#include "runtime/npz.h"

int LLVMFuzzerTestOneInput(const uint8_t *bytes, size_t size) {
    const char *path = fuzz_input_file("input.npz", bytes, size);
    eb_npz *z;
    if (eb_npz_open(&z, path)) return 0;
    eb_npz_member *m;
    eb_npy_header h;
    if (!eb_npz_member_open(&m, z, "arr_0", &h)) {
        static uint8_t chunk[4096];
        for (uint64_t left = h.data_bytes; left;) {
            size_t part = left < sizeof chunk ? (size_t)left : sizeof chunk;
            if (eb_npz_member_read(m, chunk, part)) break;
            left -= part;
        }
        eb_npz_member_close(m);
    }
    const char *stats[2] = {"mu", "sigma"};
    for (int i = 0; i < 2; i++) {
        double *v;
        if (!eb_npz_read_f64(z, stats[i], 1 << 20, &h, &v)) free(v);
    }
    uint32_t crc;
    eb_npz_member_crc(z, "arr_0", &crc);
    eb_npz_close_reader(z);
    return 0;
}
