/* cmd_decode.c — `ebcache decode`: latents from `ebcache sample` through the SD-VAE decoder (docs/vae.md). */
#include "cli/args.h"
#include "runtime/clock.h"
#include "cli/comm_mpi.h"
#include "cli/commands.h"

#include "runtime/ebcache.h"
#include "runtime/h5io.h"
#include "runtime/h5parts.h"
#include "runtime/npz.h"
#include "runtime/vae.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CMD "decode"

/* Where decoded images go: all of them into `images` (N, C, 8H, 8W) for the HDF5 output, or, for the
 * .npz output, batch by batch through `batch` into the writer's current member as uint8 NHWC. */
typedef struct {
    float *images, *batch;
    uint8_t *bytes;
    eb_npz_writer *npz;
} decode_sink;

/* DiT's sample_ddp.py: clamp(127.5·x + 128, 0, 255), NHWC, truncated to uint8 (float32 arithmetic). */
static void to_uint8_nhwc(uint8_t *dst, const float *x, int n, int C, int HW) {
    for (int i = 0; i < n; i++)
        for (int p = 0; p < HW; p++)
            for (int c = 0; c < C; c++) {
                float v = 127.5f * x[((size_t)i * C + c) * HW + p] + 128.0f;
                v = v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v;
                dst[((size_t)i * HW + p) * C + c] = (uint8_t)v;
            }
}

/* Decodes N latents z (N, C, H, W), already divided by the scale factor, in batches into the sink. */
static eb_status decode_all(eb_vae *v, decode_sink *sink, const float *z, int N, int H, int W, int batch,
                            double *wall) {
    const eb_vae_config *c = eb_vae_config_of(v);
    const int s = eb_vae_upscale(c), show = isatty(2), HW = H * s * W * s;
    const size_t zper = (size_t)c->latent_channels * H * W, iper = (size_t)c->out_channels * HW;
    const double t0 = eb_now_seconds();
    eb_status st = EB_OK;
    for (int first = 0; !st && first < N; first += batch) {
        int b = N - first < batch ? N - first : batch;
        float *out = sink->images ? sink->images + first * iper : sink->batch;
        st = eb_vae_decode(v, out, z + first * zper, b, H, W);
        if (!st && sink->npz) {
            to_uint8_nhwc(sink->bytes, out, b, c->out_channels, HW);
            st = eb_npz_append(sink->npz, sink->bytes, (size_t)b * iper);
        }
        if (!st && show) {
            double t = eb_now_seconds() - t0, eta = t / (first + b) * (N - first - b);
            fprintf(stderr, "\rdecoded %d/%d images, %.1f s, ETA %.0f s   ", first + b, N, t, eta);
        }
    }
    if (show) fprintf(stderr, "\n");
    *wall = eb_now_seconds() - t0;
    return st;
}

int cmd_decode(int argc, char **argv) {
    eb_opt opts[] = {
        {"vae", "PATH", "AutoencoderKL weights: diffusers folder (or a pipeline holding vae/) or .safetensors", NULL},
        {"samples", "S.h5", "latents: dataset samples (N, C, H, W) and y (N) as `ebcache sample` writes", NULL},
        {"output", "OUT.h5|OUT.npz", "OUT.h5 gets images (N, 3, 8H, 8W) float32, the raw decoder output, and y; OUT.npz "
                                     "gets arr_0 (N, 8H, 8W, 3) uint8 as DiT's sample_ddp.py writes it, streamed", NULL},
        {"scale-factor", "F", "the decoder sees samples / F (default 0.18215, DiT's and SD's)", NULL},
        {"batch", "B", "latents per decoder batch (default 1)", NULL},
        {"threads", "N", "threads (default: all cores)", NULL},
        {"device", "cpu|cuda", "where the decoder runs (default cpu; cuda needs a build made with make CUDA=1)", NULL},
        {"precision", "fp32|tf32|bf16", "arithmetic on cuda (default fp32)", NULL},
    };
    const int n = sizeof opts / sizeof opts[0];
    int rc = eb_args_parse(argc, argv, opts, n,
                           "usage: ebcache decode --vae PATH --samples S.h5 --output OUT.h5|OUT.npz [--scale-factor F]\n"
                           "                      [--batch B] [--threads N] [--device cpu|cuda]");
    if (rc) return rc < 0 ? 0 : rc;
    const char *vae_path = eb_arg(opts, n, "vae"), *in_path = eb_arg(opts, n, "samples");
    const char *out_path = eb_arg(opts, n, "output"), *v;
    if (!vae_path || !in_path || !out_path) {
        fprintf(stderr, "ebcache " CMD ": --vae, --samples and --output are required (see --help)\n");
        return 2;
    }
    if ((rc = eb_output_check(CMD, out_path, EB_INPUTS(in_path, vae_path)))) return rc;
    long batch = 1, threads = 0;
    double scale = 0.18215;
    eb_device dev = {.device = eb_arg(opts, n, "device") ? eb_arg(opts, n, "device") : "cpu"};
    if ((v = eb_arg(opts, n, "batch")) && (rc = eb_arg_int(CMD, "batch", v, 1, 1 << 16, &batch))) return rc;
    if ((v = eb_arg(opts, n, "threads")) && (rc = eb_arg_int(CMD, "threads", v, 1, 1024, &threads))) return rc;
    if ((v = eb_arg(opts, n, "scale-factor")) && (rc = eb_arg_float(CMD, "scale-factor", v, &scale))) return rc;
    if (!(scale > 0)) {
        fprintf(stderr, "ebcache " CMD ": --scale-factor: %g is not positive\n", scale);
        return 2;
    }
    if ((v = eb_arg(opts, n, "precision")) && eb_precision_parse(v, &dev.precision)) return eb_report(CMD, EB_EINPUT);
    eb_set_threads((int)threads);
    const eb_comm *comm = eb_cli_comm();

    eb_vae *vae = NULL;
    eb_h5 *in = NULL;
    float *z = NULL;
    int32_t *y = NULL;
    int64_t zd[EB_H5_MAX_RANK], yd[1];
    double wall = 0;
    eb_status st = eb_vae_load_on(&vae, vae_path, &dev);
    if (!st) st = eb_h5_open(&in, in_path);
    const eb_vae_config *c = st ? NULL : eb_vae_config_of(vae);
    if (!st) st = eb_h5_read_f32(in, "samples", 4, (int64_t[]){EB_H5_ANY, c->latent_channels, EB_H5_ANY, EB_H5_ANY},
                                 &z, zd, EB_H5_FINITE);
    if (!st && eb_h5_lookup(in, "y") == EB_H5_DATASET) st = eb_h5_read_i32(in, "y", 1, (int64_t[]){zd[0]}, &y, yd);
    const int N = st ? 0 : (int)zd[0], H = st ? 0 : (int)zd[2], W = st ? 0 : (int)zd[3];
    const int s = st ? 1 : eb_vae_upscale(c);
    if (!st && N == 0) st = eb_fail(EB_EINPUT, "%s: dataset 'samples' holds no latents", in_path);
    /* this rank's images [lo, hi): whole decoder batches, so each image sees the batch a single process gives it */
    long lo, hi;
    eb_shard_batches(N, batch, comm->rank, comm->size, &lo, &hi);
    const int mine = (int)(hi - lo);
    const size_t iper = st ? 0 : (size_t)c->out_channels * H * s * W * s;
    const size_t len = strlen(out_path);
    const int to_npz = len > 4 && !strcmp(out_path + len - 4, ".npz");
    decode_sink sink = {0};
    if (!st && to_npz && c->out_channels != 3)
        st = eb_fail(EB_EINPUT, "%s: the decoder makes %d channels; .npz output holds RGB images", vae_path,
                     c->out_channels);
    if (!st && to_npz) {
        sink.batch = malloc((size_t)batch * iper * sizeof(float));
        sink.bytes = malloc((size_t)batch * iper);
        if (!sink.batch || !sink.bytes) st = eb_fail(EB_ERUNTIME, "out of memory for a batch of %ld images", batch);
    } else if (!st && !(sink.images = malloc(((size_t)mine * iper + 1) * sizeof(float)))) {
        st = eb_fail(EB_ERUNTIME, "out of memory for %d decoded images (%zu floats each)", mine, iper);
    }
    const char *target = out_path; /* this rank's part file when there are several (runtime/h5parts.h) */
    if (!st) st = eb_parts_target(comm, out_path, &target);
    if (!st && to_npz && !(st = eb_npz_create(&sink.npz, target)))
        st = eb_npz_begin(sink.npz, "arr_0", EB_NPY_U8, 4, (int64_t[]){mine, (int64_t)H * s, (int64_t)W * s, 3});
    if (!st) {
        const size_t zper = (size_t)c->latent_channels * H * W;
        for (size_t i = lo * zper; i < hi * zper; i++) z[i] = (float)(z[i] / scale);
        st = decode_all(vae, &sink, z + lo * zper, mine, H, W, (int)batch, &wall);
    }
    if (sink.npz) {
        if (st) eb_npz_abort(sink.npz);
        else st = eb_npz_close(sink.npz);
    }
    eb_status t = eb_comm_max(comm, &wall); /* the job's wall time: the slowest rank's */
    if (!st) st = t;
    if (!st && !to_npz) {
        eb_h5w *w = NULL;
        int64_t id[4] = {mine, c->out_channels, (int64_t)H * s, (int64_t)W * s};
        if (!(st = eb_h5w_create(&w, target))) {
            eb_h5w_write(w, "images", EB_H5_F32, sink.images, 4, id);
            if (y) eb_h5w_write(w, "y", EB_H5_I32, y + lo, 1, (int64_t[]){mine});
            eb_h5w_attr_str(w, NULL, "vae", vae_path);
            eb_h5w_attr_str(w, NULL, "vae_layout", eb_vae_layout(vae));
            eb_h5w_attr_str(w, NULL, "samples", in_path);
            eb_h5w_attr_f64(w, NULL, "scale_factor", scale);
            eb_h5w_attr_str(w, NULL, "device", eb_vae_device(vae));
            eb_h5w_attr_str(w, NULL, "ebcache_version", EBCACHE_VERSION);
            eb_h5w_attr_f64(w, NULL, "wall_seconds", wall);
            eb_h5w_attr_i64(w, NULL, "ranks", comm->size);
            st = eb_h5w_commit(w);
        }
    }
    double merge = 0;
    st = eb_parts_finish(comm, out_path, (const char *const[]){"arr_0", NULL}, st, &merge);
    if (!st && comm->rank == 0)
        fprintf(stderr, "decoded %d images of %dx%d, %.2f s (%.3f s per image, %.1f GFLOP/s)%s\n", N, H * s, W * s,
                wall, wall / N, 2e-9 * eb_vae_decode_macs(c, H, W) * N / wall,
                eb_cli_ranks_note(comm, merge));
    rc = comm->rank == 0 ? eb_report(CMD, st) : (int)st;
    eb_h5_close(in);
    eb_vae_free(vae);
    free(z);
    free(y);
    free(sink.images);
    free(sink.batch);
    free(sink.bytes);
    return rc;
}
