/* cmd_features.c — `ebcache features`: the FID Inception features of an .npz of images (docs/inception.md). */
#include "cli/args.h"
#include "runtime/clock.h"
#include "cli/commands.h"

#include "analyze/inception.h"
#include "pipeline/run.h"
#include "runtime/ebcache.h"
#include "runtime/h5io.h"
#include "runtime/npz.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define CMD "features"

/* The features of the N images of member m (N, H, W, 3) uint8, read `batch` images at a time:
 * pool (N, 2048), spatial (N, 2023), logits (N, 1008) or NULL. */
static eb_status features_all(eb_inception *net, eb_npz_member *m, int N, int H, int W, int batch, float *pool,
                              float *spatial, float *logits, double *wall) {
    const size_t per = (size_t)H * W * 3;
    uint8_t *bytes = malloc((size_t)batch * per);
    float *x = malloc((size_t)batch * per * sizeof *x);
    const int show = isatty(2);
    const double t0 = eb_now_seconds();
    eb_status st = bytes && x ? EB_OK : eb_fail(EB_ERUNTIME, "out of memory for a batch of %d images of %dx%d", batch, H, W);
    for (int first = 0; !st && first < N; first += batch) {
        const int b = N - first < batch ? N - first : batch;
        if ((st = eb_npz_member_read(m, bytes, (size_t)b * per))) break;
        eb_inception_images_from_u8(x, bytes, b, H, W);
        st = eb_inception_forward(net, pool + (size_t)first * EB_INCEPTION_POOL,
                                  spatial + (size_t)first * EB_INCEPTION_SPATIAL,
                                  logits ? logits + (size_t)first * EB_INCEPTION_CLASSES : NULL, x, b, H, W);
        if (!st && show) {
            char eta[48];
            double t = eb_now_seconds() - t0;
            fprintf(stderr, "\rfeatures of %d/%d images, %.1f s%s   ", first + b, N, t,
                    eb_eta_text(eta, sizeof eta, t / (first + b) * (N - first - b)));
        }
    }
    if (show) fprintf(stderr, "\n");
    *wall = eb_now_seconds() - t0;
    free(bytes);
    free(x);
    return st;
}

int cmd_features(int argc, char **argv) {
    eb_opt opts[] = {
        {"inception", "W.safetensors", "FID Inception weights (docs/inception.md; tools/convert_inception.py)", NULL},
        {"images", "IMAGES.npz", "arr_0 (N, H, W, 3) uint8 RGB, as DiT's sample_ddp.py and `ebcache decode` write it", NULL},
        {"output", "F.h5", "pool (N, 2048), spatial (N, 2023) and, with an fc layer, logits (N, 1008), float32", NULL},
        {"batch", "B", "images read and run at a time (default 8)", NULL},
        {"threads", "N", "threads (default: all cores)", NULL},
        {"device", "cpu|cuda", "where the network runs (default cpu; cuda needs a build made with make CUDA=1)", NULL},
        {"precision", "fp32|tf32|bf16", "arithmetic on cuda (default fp32)", NULL},
    };
    const int n = sizeof opts / sizeof opts[0];
    int rc = eb_args_parse(argc, argv, opts, n,
                           "usage: ebcache features --inception W.safetensors --images IMAGES.npz --output F.h5\n"
                           "                        [--batch B] [--threads N] [--device cpu|cuda]");
    if (rc) return rc < 0 ? 0 : rc;
    const char *w_path = eb_arg(opts, n, "inception"), *in_path = eb_arg(opts, n, "images");
    const char *out_path = eb_arg(opts, n, "output"), *v;
    if (!w_path || !in_path || !out_path) {
        fprintf(stderr, "ebcache " CMD ": --inception, --images and --output are required (see --help)\n");
        return 2;
    }
    if ((rc = eb_output_check(CMD, out_path, EB_INPUTS(in_path, w_path)))) return rc;
    long batch = EB_INCEPTION_CHUNK, threads = 0;
    eb_device dev = {.device = eb_arg(opts, n, "device") ? eb_arg(opts, n, "device") : "cpu"};
    if ((v = eb_arg(opts, n, "batch")) && (rc = eb_arg_int(CMD, "batch", v, 1, 1 << 12, &batch))) return rc;
    if ((v = eb_arg(opts, n, "threads")) && (rc = eb_arg_int(CMD, "threads", v, 1, 1024, &threads))) return rc;
    if ((v = eb_arg(opts, n, "precision")) && eb_precision_parse(v, &dev.precision)) return eb_report(CMD, EB_EINPUT);
    eb_set_threads((int)threads);

    eb_inception *net = NULL;
    eb_npz *z = NULL;
    eb_npz_member *m = NULL;
    eb_npy_header h;
    float *pool = NULL, *spatial = NULL, *logits = NULL;
    double wall = 0;
    eb_status st = eb_inception_load_on(&net, w_path, &dev);
    if (!st) st = eb_npz_open(&z, in_path);
    if (!st) st = eb_npz_member_open(&m, z, "arr_0", &h);
    if (!st && (h.dtype != EB_NPY_U8 || h.rank != 4 || h.shape[3] != 3 || h.shape[0] < 1 || h.shape[0] > (1 << 30) ||
                h.shape[1] < 1 || h.shape[1] > EB_INCEPTION_MAX_SIDE || h.shape[2] < 1 ||
                h.shape[2] > EB_INCEPTION_MAX_SIDE))
        st = eb_fail(EB_EINPUT, "%s: arr_0 is %s of rank %d, expected (N, H, W, 3) uint8 with N >= 1 and sides in "
                                "[1, %d]", in_path, eb_npy_dtype_name(h.dtype), h.rank, EB_INCEPTION_MAX_SIDE);
    const int N = st ? 0 : (int)h.shape[0], H = st ? 0 : (int)h.shape[1], W = st ? 0 : (int)h.shape[2];
    const int fc = st ? 0 : eb_inception_has_logits(net);
    if (!st) {
        pool = malloc(sizeof(float) * N * EB_INCEPTION_POOL);
        spatial = malloc(sizeof(float) * N * EB_INCEPTION_SPATIAL);
        logits = fc ? malloc(sizeof(float) * N * EB_INCEPTION_CLASSES) : NULL;
        if (!pool || !spatial || (fc && !logits)) st = eb_fail(EB_ERUNTIME, "out of memory for the features of %d images", N);
    }
    if (!st) st = features_all(net, m, N, H, W, (int)batch, pool, spatial, logits, &wall);
    if (!st) {
        eb_h5w *w = NULL;
        if (!(st = eb_h5w_create(&w, out_path))) {
            eb_h5w_write(w, "pool", EB_H5_F32, pool, 2, (int64_t[]){N, EB_INCEPTION_POOL});
            eb_h5w_write(w, "spatial", EB_H5_F32, spatial, 2, (int64_t[]){N, EB_INCEPTION_SPATIAL});
            if (fc) eb_h5w_write(w, "logits", EB_H5_F32, logits, 2, (int64_t[]){N, EB_INCEPTION_CLASSES});
            eb_h5w_attr_str(w, NULL, "inception", w_path);
            eb_h5w_attr_str(w, NULL, "images", in_path);
            eb_h5w_attr_i64(w, NULL, "image_height", H);
            eb_h5w_attr_i64(w, NULL, "image_width", W);
            eb_h5w_attr_str(w, NULL, "device", eb_inception_device(net));
            eb_h5w_attr_str(w, NULL, "ebcache_version", EBCACHE_VERSION);
            eb_h5w_attr_f64(w, NULL, "wall_seconds", wall);
            st = eb_h5w_commit(w);
        }
    }
    if (!st)
        fprintf(stderr, "features of %d images of %dx%d, %.2f s (%.3f s per image, %.1f GFLOP/s)%s\n", N, H, W, wall,
                wall / N, 2e-9 * eb_inception_macs(net) * N / wall, fc ? "" : "; no fc layer, so no logits");
    rc = eb_report(CMD, st);
    eb_npz_member_close(m);
    eb_npz_close_reader(z);
    eb_inception_free(net);
    free(pool);
    free(spatial);
    free(logits);
    return rc;
}
