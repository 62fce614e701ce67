/* png.h — a minimal PNG writer (8-bit grayscale) for sample grids. */
#ifndef EB_PNG_H
#define EB_PNG_H

#include "runtime/ebcache.h"

#include <stdint.h>

/* Writes pixels (height, width) row-major, 0 = black, 255 = white, as an
 * 8-bit grayscale PNG at `path` (temporary file + rename). */
eb_status eb_png_write_gray(const char *path, const uint8_t *pixels, int width, int height);

/* Size of a grid of N images (H, W) in `cols` columns with `pad`-pixel borders. */
void eb_grid_dims(int N, int H, int W, int cols, int pad, int *grid_w, int *grid_h);
/* Tiles images (N, C, H, W), channel 0, mapping [lo, hi] to black..white, into
 * out (grid_h, grid_w) as sized by eb_grid_dims; borders are black. */
void eb_grid_render(uint8_t *out, const float *images, int N, int C, int H, int W, int cols, int pad, float lo,
                    float hi);

#endif
