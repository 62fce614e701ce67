/* png.c — 8-bit grayscale PNG: signature, IHDR, one zlib IDAT, IEND. */
#include "analyze/png.h"

#include "runtime/atomic.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static void put_u32(uint8_t *p, uint32_t v) {
    p[0] = v >> 24, p[1] = v >> 16, p[2] = v >> 8, p[3] = v;
}

/* One chunk: length, type, data, CRC over type and data. */
static int write_chunk(FILE *f, const char *type, const uint8_t *data, uint32_t len) {
    uint8_t head[8];
    put_u32(head, len);
    memcpy(head + 4, type, 4);
    uLong crc = crc32(crc32(0L, Z_NULL, 0), (const Bytef *)type, 4);
    if (len) crc = crc32(crc, data, len);
    uint8_t tail[4];
    put_u32(tail, (uint32_t)crc);
    return fwrite(head, 1, 8, f) == 8 && (len == 0 || fwrite(data, 1, len, f) == len) && fwrite(tail, 1, 4, f) == 4;
}

eb_status eb_png_write_gray(const char *path, const uint8_t *pixels, int width, int height) {
    if (width <= 0 || height <= 0) return eb_fail(EB_EINPUT, "%s: empty image %d x %d", path, width, height);
    size_t raw_len = (size_t)height * (width + 1); /* each row starts with filter byte 0 */
    uLongf packed_len = compressBound(raw_len);
    uint8_t *raw = malloc(raw_len), *packed = malloc(packed_len);
    eb_status st = EB_OK;
    if (!raw || !packed) st = eb_fail(EB_ERUNTIME, "out of memory");
    if (!st) {
        for (int y = 0; y < height; y++) {
            raw[(size_t)y * (width + 1)] = 0;
            memcpy(raw + (size_t)y * (width + 1) + 1, pixels + (size_t)y * width, width);
        }
        if (compress2(packed, &packed_len, raw, raw_len, 9) != Z_OK) st = eb_fail(EB_ERUNTIME, "%s: zlib failed", path);
    }
    eb_atomic out;
    if (!st) st = eb_atomic_open(&out, path);
    if (!st) {
        FILE *f = out.f;
        static const uint8_t signature[8] = {137, 'P', 'N', 'G', '\r', '\n', 26, '\n'};
        uint8_t ihdr[13] = {0};
        put_u32(ihdr, width);
        put_u32(ihdr + 4, height);
        ihdr[8] = 8; /* bit depth; colour type 0 (gray), deflate, filter 0, no interlace */
        int ok = fwrite(signature, 1, 8, f) == 8 && write_chunk(f, "IHDR", ihdr, 13) &&
                 write_chunk(f, "IDAT", packed, (uint32_t)packed_len) && write_chunk(f, "IEND", NULL, 0);
        if (ok) st = eb_atomic_commit(&out);
        else {
            st = eb_fail(EB_ERUNTIME, "%s: write failed: %m", out.tmp);
            eb_atomic_abort(&out);
        }
    }
    free(raw);
    free(packed);
    return st;
}

void eb_grid_dims(int N, int H, int W, int cols, int pad, int *grid_w, int *grid_h) {
    int rows = (N + cols - 1) / cols;
    *grid_w = cols * (W + pad) + pad;
    *grid_h = rows * (H + pad) + pad;
}

void eb_grid_render(uint8_t *out, const float *images, int N, int C, int H, int W, int cols, int pad, float lo,
                    float hi) {
    int gw, gh;
    eb_grid_dims(N, H, W, cols, pad, &gw, &gh);
    memset(out, 0, (size_t)gw * gh);
    for (int n = 0; n < N; n++) {
        int ox = pad + (n % cols) * (W + pad), oy = pad + (n / cols) * (H + pad);
        const float *img = images + (size_t)n * C * H * W;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                float v = (img[y * W + x] - lo) / (hi - lo);
                v = v < 0 ? 0 : v > 1 ? 1 : v; /* also maps NaN to 0 */
                out[(size_t)(oy + y) * gw + ox + x] = (uint8_t)(v * 255.0f + 0.5f);
            }
    }
}
