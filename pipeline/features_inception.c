/* pipeline/features_inception.c — the FID Inception network as an eb_features, and the .npz
 * activation loop of `ebcache features` and the ImageNet judge (features_inception.h). */
#include "pipeline/features_inception.h"

#include "analyze/sha256.h"
#include "pipeline/run.h"
#include "runtime/clock.h"
#include "runtime/h5io.h"
#include "runtime/npz.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GATHER_BYTES ((size_t)64 << 20) /* what one collective of the gather moves, at most */

typedef struct {
    eb_inception *net;
    float *pixels;    /* one chunk of images in the evaluator's [0, 255] */
} inception_impl;

eb_status eb_features_inception_extract(eb_features *fx, float *pool, float *spatial, float *logits,
                                        const float *images, int N) {
    inception_impl *im = fx->impl;
    const size_t per = (size_t)3 * fx->side * fx->side;
    for (int first = 0; first < N; first += EB_INCEPTION_CHUNK) {
        const int b = N - first < EB_INCEPTION_CHUNK ? N - first : EB_INCEPTION_CHUNK;
        for (size_t i = 0; i < (size_t)b * per; i++) im->pixels[i] = (images[first * per + i] + 1.0f) * 127.5f;
        eb_status st = eb_inception_forward(im->net, pool ? pool + (size_t)first * EB_INCEPTION_POOL : NULL,
                                            spatial ? spatial + (size_t)first * EB_INCEPTION_SPATIAL : NULL,
                                            logits ? logits + (size_t)first * EB_INCEPTION_CLASSES : NULL, im->pixels,
                                            b, fx->side, fx->side);
        if (st == EB_EINPUT && first) {
            char why[512];
            snprintf(why, sizeof why, "%s", eb_last_error());
            return eb_fail(st, "%s (in the chunk starting at image %d)", why, first);
        }
        if (st) return st;
    }
    return EB_OK;
}

static eb_status inception_extract(eb_features *fx, float *feat, float *logits, const float *images, int N) {
    return eb_features_inception_extract(fx, feat, NULL, logits, images, N);
}

static void inception_free(eb_features *fx) {
    inception_impl *im = fx->impl;
    eb_inception_free(im->net);
    free(im->pixels);
    free(im);
    free(fx);
}

eb_status eb_features_open_inception(eb_features **out, const char *path, int side, const eb_device *dev) {
    *out = NULL;
    if (side < 1 || side > EB_INCEPTION_MAX_SIDE)
        return eb_fail(EB_EINPUT, "%s: Inception features of %dx%d images (sides in [1, %d])", path, side, side,
                       EB_INCEPTION_MAX_SIDE);
    char hex[EB_SHA256_HEX];
    eb_status st = eb_sha256_file(path, hex);
    if (st) return st;
    eb_features *fx = calloc(1, sizeof *fx);
    inception_impl *im = calloc(1, sizeof *im);
    if (fx && im) im->pixels = malloc(sizeof(float) * EB_INCEPTION_CHUNK * 3 * side * side);
    if (!fx || !im || !im->pixels) {
        free(fx), free(im ? im->pixels : NULL), free(im);
        return eb_fail(EB_ERUNTIME, "out of memory for the Inception extractor");
    }
    if ((st = eb_inception_load_on(&im->net, path, dev))) {
        free(fx), free(im->pixels), free(im);
        return st;
    }
    *fx = (eb_features){.name = "inception-v3-fid", .channels = 3, .side = side, .dim = EB_INCEPTION_POOL,
                        .classes = eb_inception_has_logits(im->net) ? EB_INCEPTION_CLASSES : 0,
                        .extract = inception_extract, .free = inception_free, .impl = im};
    snprintf(fx->checksum, sizeof fx->checksum, "%.32s", hex);
    *out = fx;
    return EB_OK;
}

const eb_inception *eb_features_inception_network(const eb_features *fx) {
    return ((const inception_impl *)fx->impl)->net;
}

/* ------------------------------------------------------------------------ */
/* The images of .npz files                                                  */

/* The next file name of a comma-separated list into buf: *list advances past it. 0 at the end. */
static int next_path(const char **list, char *buf, size_t cap) {
    while (**list == ',') (*list)++;
    if (!**list) return 0;
    const size_t len = strcspn(*list, ",");
    snprintf(buf, cap, "%.*s", (int)(len < cap ? len : cap - 1), *list);
    *list += len;
    return 1;
}

/* Opens arr_0 of `path` and checks it is (N ≥ 1, H, W, 3) uint8 with sides in range. */
static eb_status open_images(const char *path, eb_npz **z, eb_npz_member **m, eb_npy_header *h) {
    *z = NULL, *m = NULL;
    eb_status st = eb_npz_open(z, path);
    if (!st) st = eb_npz_member_open(m, *z, "arr_0", h);
    if (!st && (h->dtype != EB_NPY_U8 || h->rank != 4 || h->shape[3] != 3 || h->shape[0] < 1 ||
                h->shape[0] > INT_MAX / 2 || h->shape[1] < 1 || h->shape[1] > EB_INCEPTION_MAX_SIDE ||
                h->shape[2] < 1 || h->shape[2] > EB_INCEPTION_MAX_SIDE)) {
        char shape[96] = "";
        for (int i = 0; i < h->rank && i < 4; i++)
            snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%s%lld", i ? ", " : "",
                     (long long)h->shape[i]);
        st = eb_fail(EB_EINPUT, "%s: arr_0 is %s (%s), expected images (N, H, W, 3) uint8 with N >= 1 and sides in "
                                "[1, %d]", path, eb_npy_dtype_name(h->dtype), shape, EB_INCEPTION_MAX_SIDE);
    }
    if (st) {
        eb_npz_member_close(*m);
        eb_npz_close_reader(*z);
        *z = NULL, *m = NULL;
    }
    return st;
}

eb_status eb_npz_images_check(const char *list, eb_npz_images *info) {
    *info = (eb_npz_images){0};
    char path[PATH_MAX];
    eb_status st = EB_OK;
    for (const char *rest = list; !st && next_path(&rest, path, sizeof path);) {
        eb_npz *z;
        eb_npz_member *m;
        eb_npy_header h;
        if ((st = open_images(path, &z, &m, &h))) break;
        if (info->files && (h.shape[1] != info->height || h.shape[2] != info->width))
            st = eb_fail(EB_EINPUT, "%s: arr_0 holds %lldx%lld images but the first file's are %dx%d", path,
                         (long long)h.shape[1], (long long)h.shape[2], info->height, info->width);
        if (!st && info->n + h.shape[0] > INT_MAX / 2) st = eb_fail(EB_EINPUT, "%s: too many images in all", list);
        if (!st) info->n += h.shape[0], info->height = (int)h.shape[1], info->width = (int)h.shape[2], info->files++;
        eb_npz_member_close(m);
        eb_npz_close_reader(z);
    }
    if (!st && !info->files) st = eb_fail(EB_EINPUT, "'%s' names no .npz file", list);
    return st;
}

/* The images of a list read front to back across its files, whole rows at a time. */
typedef struct {
    const char *rest; /* the files not opened yet */
    char path[PATH_MAX];
    eb_npz *z;
    eb_npz_member *m;
    long left;        /* rows of the open file not read yet */
    size_t row;       /* bytes per image */
} image_stream;

static void stream_close(image_stream *s) {
    eb_npz_member_close(s->m);
    eb_npz_close_reader(s->z);
    s->m = NULL, s->z = NULL, s->left = 0;
}

/* Reads the next `rows` images into dst (NULL: skips them). */
static eb_status stream_read(image_stream *s, uint8_t *dst, long rows, uint8_t *scratch, long scratch_rows) {
    while (rows > 0) {
        if (!s->left) {
            stream_close(s);
            eb_npy_header h;
            if (!next_path(&s->rest, s->path, sizeof s->path))
                return eb_fail(EB_EINPUT, "%s: the images end early", s->path);
            eb_status st = open_images(s->path, &s->z, &s->m, &h);
            if (st) return st;
            s->left = (long)h.shape[0];
        }
        long take = rows < s->left ? rows : s->left;
        if (!dst && take > scratch_rows) take = scratch_rows;
        eb_status st = eb_npz_member_read(s->m, dst ? dst : scratch, (size_t)take * s->row);
        if (st) return st;
        if (dst) dst += (size_t)take * s->row;
        rows -= take, s->left -= take;
    }
    return EB_OK;
}

void eb_npz_act_params_defaults(eb_npz_act_params *p) { *p = (eb_npz_act_params){.batch = EB_INCEPTION_CHUNK}; }

void eb_inception_acts_free(eb_inception_acts *a) {
    free(a->pool), free(a->spatial), free(a->logits);
    *a = (eb_inception_acts){0};
}

/* Rows [lo, hi) of the list's images through the network, `batch` at a time, into pool, spatial
 * and logits (row lo first). */
static eb_status run_rows(eb_features *fx, const char *list, const eb_npz_images *info, long lo, long hi, int batch,
                          int show, const char *label, float *pool, float *spatial, float *logits) {
    inception_impl *im = fx->impl;
    const int H = info->height, W = info->width;
    const size_t row = (size_t)H * W * 3;
    image_stream s = {.rest = list, .row = row};
    uint8_t *bytes = malloc((size_t)batch * row);
    float *x = malloc((size_t)batch * row * sizeof *x);
    eb_status st = bytes && x ? EB_OK : eb_fail(EB_ERUNTIME, "out of memory for a batch of %d images of %dx%d",
                                                batch, H, W);
    if (!st) st = stream_read(&s, NULL, lo, bytes, batch); /* the rows of the ranks before */
    const double t0 = eb_now_seconds();
    for (long first = lo; !st && first < hi; first += batch) {
        const int b = (int)(hi - first < batch ? hi - first : batch);
        const size_t at = (size_t)(first - lo);
        if ((st = stream_read(&s, bytes, b, NULL, 0))) break;
        eb_inception_images_from_u8(x, bytes, b, H, W);
        st = eb_inception_forward(im->net, pool + at * EB_INCEPTION_POOL, spatial + at * EB_INCEPTION_SPATIAL,
                                  logits ? logits + at * EB_INCEPTION_CLASSES : NULL, x, b, H, W);
        if (st) {
            char why[1024];
            snprintf(why, sizeof why, "%s", eb_last_error());
            st = eb_fail(st, "%s: images %ld to %ld: %s", s.path, first, first + b - 1, why);
        }
        if (!st && show) {
            char eta[48];
            const double t = eb_now_seconds() - t0;
            const long done = first + b - lo;
            fprintf(stderr, "\rfeatures of %s: %ld/%ld images, %.1f s%s   ", label, done, hi - lo, t,
                    eb_eta_text(eta, sizeof eta, t / done * (hi - lo - done)));
        }
    }
    if (show && hi > lo) fprintf(stderr, "\n");
    /* a file read to its end has its CRC-32 checked: read the rest of the last one */
    if (!st && s.m && hi == info->n) st = stream_read(&s, NULL, s.left, bytes, batch);
    stream_close(&s);
    free(bytes), free(x);
    return st;
}

/* Rank 0 collects every rank's rows [lo_r, hi_r) of the three outputs (widths w[3], a width 0
 * absent) in rounds of at most GATHER_BYTES; mine[k] holds this rank's rows, all[k] (rank 0) all. */
static eb_status gather_rows(const eb_comm *c, long n, int batch, float *const mine[3], const int w[3],
                             float *const all[3]) {
    const size_t width = (size_t)w[0] + w[1] + w[2];
    long lo, hi, most = 0;
    for (int r = 0; r < c->size; r++) {
        eb_shard_batches(n, batch, r, c->size, &lo, &hi);
        most = hi - lo > most ? hi - lo : most;
    }
    long rows = (long)(GATHER_BYTES / ((size_t)c->size * width * sizeof(float)));
    rows = rows < 1 ? 1 : rows > most ? most : rows;
    float *send = malloc((size_t)rows * width * sizeof(float));
    float *recv = malloc((size_t)c->size * rows * width * sizeof(float));
    eb_status st = send && recv ? EB_OK : eb_fail(EB_ERUNTIME, "rank %d: out of memory for the gather", c->rank);
    st = eb_comm_agree(c, st);
    long mlo, mhi;
    eb_shard_batches(n, batch, c->rank, c->size, &mlo, &mhi);
    for (long first = 0; !st && first < most; first += rows) {
        const long mine_rows = mhi - mlo - first < rows ? mhi - mlo - first : rows;
        memset(send, 0, (size_t)rows * width * sizeof(float));
        for (long i = 0; i < mine_rows; i++)
            for (int k = 0, off = 0; k < 3; off += w[k], k++)
                if (w[k]) memcpy(send + i * width + off, mine[k] + (size_t)(first + i) * w[k], w[k] * sizeof(float));
        st = c->allgather(c, send, (size_t)rows * width * sizeof(float), recv);
        for (int r = 0; !st && c->rank == 0 && r < c->size; r++) {
            eb_shard_batches(n, batch, r, c->size, &lo, &hi);
            for (long i = 0; i < rows && first + i < hi - lo; i++)
                for (int k = 0, off = 0; k < 3; off += w[k], k++)
                    if (w[k])
                        memcpy(all[k] + (size_t)(lo + first + i) * w[k], recv + ((size_t)r * rows + i) * width + off,
                               w[k] * sizeof(float));
        }
    }
    free(send), free(recv);
    return st;
}

eb_status eb_inception_npz_activations(eb_features *fx, const char *list, const eb_npz_act_params *p,
                                       eb_inception_acts *out) {
    const eb_comm *c = p->comm ? p->comm : eb_comm_serial();
    *out = (eb_inception_acts){0};
    eb_npz_images info;
    eb_status st = p->batch >= 1 ? EB_OK : eb_fail(EB_EINPUT, "batch %d: at least 1 image", p->batch);
    if (!st) st = eb_npz_images_check(list, &info);
    const int fc = fx->classes > 0;
    const int w[3] = {EB_INCEPTION_POOL, EB_INCEPTION_SPATIAL, fc ? EB_INCEPTION_CLASSES : 0};
    long lo = 0, hi = 0;
    float *mine[3] = {NULL, NULL, NULL}, *all[3] = {NULL, NULL, NULL};
    if (!st) {
        eb_shard_batches(info.n, p->batch, c->rank, c->size, &lo, &hi);
        /* rank 0's rows go straight into the whole arrays */
        const long rows = c->rank == 0 ? info.n : hi - lo;
        for (int k = 0; k < 3; k++)
            if (w[k] && !(mine[k] = malloc((size_t)(rows > 0 ? rows : 1) * w[k] * sizeof(float))))
                st = eb_fail(EB_ERUNTIME, "out of memory for the activations of %ld images", rows);
    }
    const double t0 = eb_now_seconds();
    if (!st) st = run_rows(fx, list, &info, lo, hi, p->batch, p->progress && c->rank == 0 && isatty(2),
                           p->label ? p->label : "images", mine[0], mine[1], mine[2]);
    double wall = eb_now_seconds() - t0;
    st = eb_comm_agree(c, st);
    if (!st && c->size > 1) {
        for (int k = 0; k < 3; k++) all[k] = c->rank == 0 ? mine[k] : NULL;
        st = gather_rows(c, info.n, p->batch, mine, w, all);
        if (!st) st = eb_comm_max(c, &wall);
    }
    if (st || c->rank) {
        for (int k = 0; k < 3; k++) free(mine[k]);
        if (st) return st;
        mine[0] = mine[1] = mine[2] = NULL;
    }
    *out = (eb_inception_acts){.pool = mine[0], .spatial = mine[1], .logits = mine[2], .n = info.n,
                               .height = info.height, .width = info.width, .wall = wall};
    return EB_OK;
}

/* ------------------------------------------------------------------------ */
/* `ebcache features`                                                        */

void eb_features_file_params_defaults(eb_features_file_params *p) {
    *p = (eb_features_file_params){.batch = EB_INCEPTION_CHUNK};
}

static eb_status write_features(const eb_features_file_params *p, const eb_inception_acts *a, int ranks,
                                const char *device) {
    eb_h5w *w = NULL;
    eb_status st = eb_h5w_create(&w, p->output);
    if (st) return st;
    eb_h5w_write(w, "pool", EB_H5_F32, a->pool, 2, (int64_t[]){a->n, EB_INCEPTION_POOL});
    eb_h5w_write(w, "spatial", EB_H5_F32, a->spatial, 2, (int64_t[]){a->n, EB_INCEPTION_SPATIAL});
    if (a->logits) eb_h5w_write(w, "logits", EB_H5_F32, a->logits, 2, (int64_t[]){a->n, EB_INCEPTION_CLASSES});
    eb_h5w_attr_str(w, NULL, "inception", p->inception);
    eb_h5w_attr_str(w, NULL, "images", p->images);
    eb_h5w_attr_i64(w, NULL, "image_height", a->height);
    eb_h5w_attr_i64(w, NULL, "image_width", a->width);
    eb_h5w_attr_str(w, NULL, "device", device);
    eb_h5w_attr_i64(w, NULL, "ranks", ranks);
    eb_h5w_attr_str(w, NULL, "ebcache_version", EBCACHE_VERSION);
    eb_h5w_attr_f64(w, NULL, "wall_seconds", a->wall);
    return eb_h5w_commit(w);
}

eb_status eb_features_file(const eb_features_file_params *p, eb_features_file_result *r) {
    const eb_comm *c = p->comm ? p->comm : eb_comm_serial();
    eb_npz_images info;
    eb_features *fx = NULL;
    eb_inception_acts a = {0};
    eb_status st = !p->inception || !p->images || !p->output
                       ? eb_fail(EB_EINPUT, "features need the Inception weights, the images and an output")
                       : EB_OK;
    if (!st) st = eb_npz_images_check(p->images, &info);
    if (!st) st = eb_features_open_inception(&fx, p->inception, info.height, p->device);
    st = eb_comm_agree(c, st);
    eb_npz_act_params ap;
    eb_npz_act_params_defaults(&ap);
    ap.batch = p->batch, ap.comm = c, ap.progress = p->progress;
    if (!st) st = eb_inception_npz_activations(fx, p->images, &ap, &a);
    if (!st) {
        const eb_inception *net = eb_features_inception_network(fx);
        *r = (eb_features_file_result){.n = a.n, .height = a.height, .width = a.width, .logits = fx->classes > 0,
                                       .wall = a.wall, .macs = eb_inception_macs(net)};
        snprintf(r->device, sizeof r->device, "%s", eb_inception_device(net));
        if (c->rank == 0) st = write_features(p, &a, c->size, r->device);
        st = eb_comm_agree(c, st);
    }
    eb_inception_acts_free(&a);
    eb_features_free(fx);
    return st;
}
