/* pipeline/decoding.c — `decode` as a library call (pipeline/decoding.h, docs/vae.md). */
#include "pipeline/decoding.h"
#include "pipeline/run.h"

#include "runtime/clock.h"
#include "runtime/h5io.h"
#include "runtime/h5parts.h"
#include "runtime/npz.h"
#include "runtime/vae.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void eb_decode_params_defaults(eb_decode_params *p) {
    memset(p, 0, sizeof *p);
    p->scale_factor = EB_DECODE_SCALE_FACTOR;
    p->batch = 1;
    p->device.precision = EB_PRECISION_FP32;
}

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
static eb_status decode_all(eb_vae *v, decode_sink *sink, const float *z, int N, int H, int W, int batch, int progress,
                            double *wall) {
    const eb_vae_config *c = eb_vae_config_of(v);
    const int s = eb_vae_upscale(c), show = progress && isatty(2), HW = H * s * W * s;
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
            char eta[48];
            const double t = eb_now_seconds() - t0;
            fprintf(stderr, "\rdecoding: %d/%d images, %.1f s%s   ", first + b, N, t,
                    eb_eta_text(eta, sizeof eta, t / (first + b) * (N - first - b)));
        }
    }
    if (show && N) fprintf(stderr, "\n");
    *wall = eb_now_seconds() - t0;
    return st;
}

static eb_status check_params(const eb_decode_params *p) {
    if (!p->vae || !p->samples || !p->output) return eb_fail(EB_EINPUT, "`vae`, `samples` and `output` are required");
    if (!(p->scale_factor > 0) || !isfinite(p->scale_factor))
        return eb_fail(EB_EINPUT, "`scale_factor`: %g is not a positive number", p->scale_factor);
    if (p->batch < 1) return eb_fail(EB_EINPUT, "`batch`: %d is below 1", p->batch);
    return EB_OK;
}

/* The HDF5 output's part (all of it with one rank): this rank's images and labels, the job's attributes. */
static eb_status write_h5(const eb_decode_params *p, const char *target, const eb_vae *vae, const float *images,
                          const int32_t *y, int mine, const int64_t idims[4], double wall, int ranks) {
    eb_h5w *w = NULL;
    eb_status st = eb_h5w_create(&w, target);
    if (st) return st;
    int64_t id[4] = {mine, idims[1], idims[2], idims[3]};
    eb_h5w_write(w, "images", EB_H5_F32, images, 4, id);
    if (y) eb_h5w_write(w, "y", EB_H5_I32, y, 1, (int64_t[]){mine});
    eb_h5w_attr_str(w, NULL, "vae", p->vae);
    eb_h5w_attr_str(w, NULL, "vae_layout", eb_vae_layout(vae));
    eb_h5w_attr_str(w, NULL, "samples", p->samples);
    eb_h5w_attr_f64(w, NULL, "scale_factor", p->scale_factor);
    eb_h5w_attr_str(w, NULL, "device", eb_vae_device(vae));
    eb_h5w_attr_str(w, NULL, "ebcache_version", EBCACHE_VERSION);
    eb_h5w_attr_f64(w, NULL, "wall_seconds", wall);
    eb_h5w_attr_i64(w, NULL, "ranks", ranks);
    return eb_h5w_commit(w);
}

eb_status eb_decode_to_file(const eb_decode_params *p, eb_decode_result *r) {
    const eb_comm *comm = p->comm ? p->comm : eb_comm_serial();
    eb_decode_result res = {0};
    eb_vae *vae = NULL;
    eb_h5 *in = NULL;
    void *zbuf = NULL, *ybuf = NULL; /* this rank's latents (float) and labels (int32) */
    int64_t zd[EB_H5_MAX_RANK] = {0}, yd[1];
    int zrank = 0;
    double wall = 0;
    eb_status st = check_params(p);
    if (!st) eb_set_threads(p->threads);
    if (!st) st = eb_vae_load_on(&vae, p->vae, &p->device);
    if (!st) st = eb_h5_open(&in, p->samples);
    if (!st) st = eb_h5_shape(in, "samples", &zrank, zd);
    const eb_vae_config *c = st ? NULL : eb_vae_config_of(vae);
    const long N = st || zrank < 1 ? 0 : (long)zd[0];
    /* this rank's images [lo, hi): whole decoder batches, so each image sees the batch a single process gives it */
    long lo = 0, hi = 0;
    if (!st) eb_shard_batches(N, p->batch, comm->rank, comm->size, &lo, &hi);
    const int mine = (int)(hi - lo);
    if (!st) /* only this rank's rows are read */
        st = eb_h5_read_rows(in, "samples", EB_H5_F32, 4,
                             (int64_t[]){EB_H5_ANY, c->latent_channels, EB_H5_ANY, EB_H5_ANY}, lo, mine,
                             &zbuf, zd, EB_H5_FINITE);
    if (!st && N == 0) st = eb_fail(EB_EINPUT, "%s: dataset 'samples' holds no latents", p->samples);
    if (!st && eb_h5_lookup(in, "y") == EB_H5_DATASET)
        st = eb_h5_read_rows(in, "y", EB_H5_I32, 1, (int64_t[]){N}, lo, mine, &ybuf, yd, 0);
    float *z = zbuf;
    const int32_t *y = ybuf;
    const int H = st ? 0 : (int)zd[2], W = st ? 0 : (int)zd[3], s = st ? 1 : eb_vae_upscale(c);
    const int64_t idims[4] = {N, st ? 0 : c->out_channels, (int64_t)H * s, (int64_t)W * s};
    const size_t iper = (size_t)idims[1] * idims[2] * idims[3];
    const size_t len = strlen(p->output ? p->output : "");
    const int to_npz = len > 4 && !strcmp(p->output + len - 4, ".npz");
    decode_sink sink = {0};
    if (!st && to_npz && c->out_channels != 3)
        st = eb_fail(EB_EINPUT, "%s: the decoder makes %d channels; .npz output holds RGB images", p->vae,
                     c->out_channels);
    if (!st && to_npz) {
        sink.batch = malloc((size_t)p->batch * iper * sizeof(float));
        sink.bytes = malloc((size_t)p->batch * iper);
        if (!sink.batch || !sink.bytes) st = eb_fail(EB_ERUNTIME, "out of memory for a batch of %d images", p->batch);
    } else if (!st && !(sink.images = malloc(((size_t)mine * iper + 1) * sizeof(float)))) {
        st = eb_fail(EB_ERUNTIME, "out of memory for %d decoded images (%zu floats each)", mine, iper);
    }
    const char *target = p->output; /* this rank's part file when there are several (runtime/h5parts.h) */
    if (!st) st = eb_parts_target(comm, p->output, &target);
    if (!st && to_npz && !(st = eb_npz_create(&sink.npz, target)))
        st = eb_npz_begin(sink.npz, "arr_0", EB_NPY_U8, 4, (int64_t[]){mine, idims[2], idims[3], 3});
    if (!st) {
        const size_t n = (size_t)mine * c->latent_channels * H * W;
        for (size_t i = 0; i < n; i++) z[i] = (float)(z[i] / p->scale_factor);
        st = decode_all(vae, &sink, z, mine, H, W, p->batch, p->progress, &wall);
    }
    if (sink.npz) {
        if (st) eb_npz_abort(sink.npz);
        else st = eb_npz_close(sink.npz);
    }
    eb_status t = eb_comm_max(comm, &wall); /* the job's wall time: the slowest rank's */
    if (!st) st = t;
    if (!st && !to_npz) st = write_h5(p, target, vae, sink.images, y, mine, idims, wall, comm->size);
    st = p->output ? eb_parts_finish(comm, p->output, (const char *const[]){"arr_0", NULL}, st, &res.merge)
                   : eb_comm_agree(comm, st);
    if (!st) {
        res.N = (int)N, res.height = (int)idims[2], res.width = (int)idims[3], res.wall = wall;
        res.flop = 2.0 * eb_vae_decode_macs(c, H, W) * (double)N;
        snprintf(res.device, sizeof res.device, "%s", eb_vae_device(vae));
        if (r) *r = res;
    }
    eb_h5_close(in);
    eb_vae_free(vae);
    free(zbuf);
    free(ybuf);
    free(sink.images);
    free(sink.batch);
    free(sink.bytes);
    return st;
}
