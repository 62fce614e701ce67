/* cmd_grid.c — `ebcache grid`: a PNG of samples, one row per class. */
#include "cli/args.h"
#include "cli/commands.h"

#include "runtime/ebcache.h"
#include "runtime/h5io.h"
#include "analyze/png.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_grid(int argc, char **argv) {
    eb_opt opts[] = {
        {"samples", "S.h5", "file with images (N,C,H,W) and, for --by-class, labels y (N)", NULL},
        {"dataset", "NAME", "image dataset (default samples)", NULL},
        {"output", "OUT.png", "8-bit grayscale PNG (channel 0, [-1, 1] mapped to black..white)", NULL},
        {"cols", "N", "images per row (default 10)", NULL},
        {"by-class", NULL, "one row per label, in label order, up to --cols images each", NULL},
    };
    const int n = sizeof opts / sizeof opts[0];
    int rc = eb_args_parse(argc, argv, opts, n,
                           "usage: ebcache grid --samples S.h5 [--dataset NAME] [--cols N] [--by-class] --output OUT.png");
    if (rc) return rc < 0 ? 0 : rc;
    const char *in = eb_arg(opts, n, "samples"), *out = eb_arg(opts, n, "output"), *v;
    if (!in || !out) {
        fprintf(stderr, "ebcache grid: --samples and --output are required\n");
        return 2;
    }
    if ((rc = eb_output_check("grid", out, EB_INPUTS(in)))) return rc;
    long cols = 10;
    if ((v = eb_arg(opts, n, "cols")) && (rc = eb_arg_int("grid", "cols", v, 1, 1000, &cols))) return rc;
    const char *name = eb_arg(opts, n, "dataset") ? eb_arg(opts, n, "dataset") : "samples";
    eb_h5 *f = NULL;
    float *img = NULL, *tiles = NULL;
    int32_t *y = NULL;
    uint8_t *pixels = NULL;
    int64_t d[4], yd[1];
    eb_status st = eb_h5_open(&f, in);
    if (!st) st = eb_h5_read_f32(f, name, 4, NULL, &img, d, 0);
    int by_class = eb_arg(opts, n, "by-class") != NULL;
    if (!st && by_class) {
        int64_t want[1] = {d[0]};
        st = eb_h5_read_i32(f, "y", 1, want, &y, yd);
    }
    eb_h5_close(f);
    int N = st ? 0 : (int)d[0], C = (int)d[1], H = (int)d[2], W = (int)d[3], tiles_n = N;
    size_t per = (size_t)C * H * W;
    if (!st && by_class) {
        /* Row k holds the first `cols` samples of the k-th smallest label; gaps stay black. */
        int max_label = 0;
        for (int i = 0; i < N; i++) max_label = y[i] > max_label ? y[i] : max_label;
        tiles_n = (max_label + 1) * (int)cols;
        if (!(tiles = malloc((size_t)tiles_n * per * sizeof(float)))) st = eb_fail(EB_ERUNTIME, "out of memory");
        for (size_t i = 0; !st && i < (size_t)tiles_n * per; i++) tiles[i] = -INFINITY;
        int *used = st ? NULL : calloc(max_label + 1, sizeof(int));
        for (int i = 0; used && i < N; i++)
            if (y[i] >= 0 && used[y[i]] < cols)
                memcpy(tiles + ((size_t)y[i] * cols + used[y[i]]++) * per, img + i * per, per * sizeof(float));
        free(used);
    }
    if (!st && N == 0) st = eb_fail(EB_EINPUT, "%s: dataset '%s' holds no images", in, name);
    if (!st) {
        int gw, gh;
        eb_grid_dims(tiles_n, H, W, (int)cols, 2, &gw, &gh);
        if (!(pixels = malloc((size_t)gw * gh))) st = eb_fail(EB_ERUNTIME, "out of memory");
        if (!st) {
            eb_grid_render(pixels, tiles ? tiles : img, tiles_n, C, H, W, (int)cols, 2, -1.0f, 1.0f);
            st = eb_png_write_gray(out, pixels, gw, gh);
        }
        int rows = (tiles_n + (int)cols - 1) / (int)cols;
        if (!st)
            fprintf(stderr, "wrote %s: %d %s%s in %d %s of up to %ld, %dx%d pixels\n", out, N,
                    eb_plural(N, "image", "images"), by_class ? " by class" : "", rows, eb_plural(rows, "row", "rows"),
                    cols, gw, gh);
    }
    free(img), free(tiles), free(y), free(pixels);
    return eb_report("grid", st);
}
