/* fmnist.c — Fashion-MNIST IDX reader on zlib's gz* stream interface.
 *
 * IDX: a big-endian header (magic, then one uint32 per dimension) followed by
 * the unsigned bytes of the array. The whole file is always read, even for a
 * subset, so a truncated or over-long file is never accepted.
 */
#include "train/fmnist.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define IDX_MAGIC_IMAGES 0x00000803u /* ubyte, 3 dimensions */
#define IDX_MAGIC_LABELS 0x00000801u /* ubyte, 1 dimension  */
#define IDX_MAX_SIDE 4096            /* keeps n·h·w far from size_t overflow */
#define IDX_CHUNK (1u << 20)         /* bytes per gzread                       */

/* An open IDX file and where the reader stands in its decompressed bytes. */
typedef struct {
    gzFile gz;
    const char *path;
    uint64_t pos;   /* bytes consumed                               */
    uint64_t size;  /* bytes the header announces (header included) */
} idx_file;

static uint32_t be32(const unsigned char p[4]) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static eb_status idx_gz_error(idx_file *f) {
    int errnum = 0;
    const char *msg = gzerror(f->gz, &errnum);
    if (errnum == Z_ERRNO) return eb_fail(EB_ERUNTIME, "%s: read error: %s", f->path, strerror(errno));
    return eb_fail(EB_EINPUT, "%s: corrupt gzip data: %s", f->path, msg);
}

/* Opens `path`; zlib would pass a plain file through, so that is refused here. */
static eb_status idx_open(idx_file *f, const char *path, uint64_t header_bytes) {
    *f = (idx_file){.path = path, .size = header_bytes};
    errno = 0;
    f->gz = gzopen(path, "rb");
    if (!f->gz) return eb_fail(EB_EINPUT, "%s: cannot open: %s", path, errno ? strerror(errno) : "out of memory");
    if (gzdirect(f->gz)) {
        gzclose(f->gz);
        f->gz = NULL;
        return eb_fail(EB_EINPUT, "%s: not a gzip file", path);
    }
    return EB_OK;
}

static void idx_close(idx_file *f) {
    if (f->gz) gzclose(f->gz);
    f->gz = NULL;
}

/* Reads exactly n bytes into buf (n < 2^31: a chunk, never the whole file). */
static eb_status idx_read(idx_file *f, void *buf, size_t n) {
    size_t done = 0;
    while (done < n) {
        int got = gzread(f->gz, (unsigned char *)buf + done, (unsigned)(n - done));
        if (got < 0) return idx_gz_error(f);
        if (got == 0)
            return eb_fail(EB_EINPUT, "%s: truncated: data ends at byte %llu, the header announces %llu bytes",
                           f->path, (unsigned long long)(f->pos + done), (unsigned long long)f->size);
        done += (size_t)got;
    }
    f->pos += n;
    return EB_OK;
}

/* Fails when anything follows the announced data. */
static eb_status idx_expect_end(idx_file *f) {
    unsigned char extra;
    int got = gzread(f->gz, &extra, 1);
    if (got < 0) return idx_gz_error(f);
    if (got > 0)
        return eb_fail(EB_EINPUT, "%s: trailing data after the %llu bytes the header announces", f->path,
                       (unsigned long long)f->size);
    return EB_OK;
}

/* Reads the header (magic + rank dimensions) and sets f->size. */
static eb_status idx_header(idx_file *f, uint32_t magic, uint32_t *dims, int rank) {
    unsigned char head[16];
    eb_status st = idx_read(f, head, 4 + 4 * (size_t)rank);
    if (st) return st;
    uint32_t got = be32(head);
    if (got != magic) return eb_fail(EB_EINPUT, "%s: bad magic 0x%08x, expected 0x%08x", f->path, got, magic);
    uint64_t size = 1;
    for (int i = 0; i < rank; i++) {
        dims[i] = be32(head + 4 + 4 * i);
        size *= dims[i];
    }
    f->size += size;
    if (dims[0] == 0 || dims[0] > INT_MAX) return eb_fail(EB_EINPUT, "%s: bad item count %u", f->path, dims[0]);
    return EB_OK;
}

/* Reads and checks all labels; *labels (allocated here) gets the first `limit`
 * (0: all), *count the number in the file. */
static eb_status read_labels(int32_t **labels, int limit, int *count, const char *path) {
    idx_file f;
    eb_status st = idx_open(&f, path, 8);
    if (st) return st;
    uint32_t n = 0;
    st = idx_header(&f, IDX_MAGIC_LABELS, &n, 1);
    uint32_t keep = limit ? (uint32_t)limit : n;
    if (!st && keep > n) st = eb_fail(EB_EINPUT, "%s: asked for %d items, the file holds %u", path, limit, n);
    if (!st && !(*labels = malloc((size_t)keep * sizeof **labels)))
        st = eb_fail(EB_ERUNTIME, "%s: out of memory for %u labels", path, keep);
    unsigned char buf[4096];
    for (uint32_t i0 = 0; !st && i0 < n; i0 += sizeof buf) {
        uint32_t m = n - i0 < sizeof buf ? n - i0 : (uint32_t)sizeof buf;
        st = idx_read(&f, buf, m);
        for (uint32_t j = 0; !st && j < m; j++) {
            if (buf[j] >= EB_FMNIST_CLASSES)
                st = eb_fail(EB_EINPUT, "%s: label %u at index %u is outside 0..%d", path, buf[j], i0 + j,
                             EB_FMNIST_CLASSES - 1);
            else if (i0 + j < keep)
                (*labels)[i0 + j] = buf[j];
        }
    }
    if (!st) st = idx_expect_end(&f);
    idx_close(&f);
    *count = (int)n;
    return st;
}

/* Reads all images (n, h, w) and writes the first d->n, padded, into d->images.
 * `expect` is the label count the image count must equal. */
static eb_status read_images(eb_fmnist *d, int pad_to, const char *path, int expect, const char *labels_path) {
    idx_file f;
    eb_status st = idx_open(&f, path, 16);
    if (st) return st;
    uint32_t dims[3];
    unsigned char *buf = NULL;
    st = idx_header(&f, IDX_MAGIC_IMAGES, dims, 3);
    if (st) goto done;
    if ((int64_t)dims[0] != expect) {
        st = eb_fail(EB_EINPUT, "%s: %u images, but %s holds %d labels", path, dims[0], labels_path, expect);
        goto done;
    }
    int n = (int)dims[0], h = (int)dims[1], w = (int)dims[2];
    if (dims[1] == 0 || dims[2] == 0 || dims[1] > IDX_MAX_SIDE || dims[2] > IDX_MAX_SIDE) {
        st = eb_fail(EB_EINPUT, "%s: bad image size %u x %u", path, dims[1], dims[2]);
        goto done;
    }
    d->h = pad_to ? pad_to : h;
    d->w = pad_to ? pad_to : w;
    if (d->h < h || d->w < w) {
        st = eb_fail(EB_EINPUT, "%s: cannot pad %d x %d images to %d", path, h, w, pad_to);
        goto done;
    }
    size_t hw = (size_t)h * w, out_hw = (size_t)d->h * d->w;
    int top = (d->h - h) / 2, left = (d->w - w) / 2;
    int per_chunk = hw >= IDX_CHUNK ? 1 : (int)(IDX_CHUNK / hw);
    buf = malloc(per_chunk * hw);
    d->images = malloc(d->n * out_hw * sizeof *d->images);
    if (!buf || !d->images) {
        st = eb_fail(EB_ERUNTIME, "%s: out of memory for %d images of %d x %d", path, d->n, d->h, d->w);
        goto done;
    }
    for (int i0 = 0; i0 < n; i0 += per_chunk) {
        int m = n - i0 < per_chunk ? n - i0 : per_chunk;
        if ((st = idx_read(&f, buf, m * hw))) goto done;
        for (int i = i0; i < i0 + m && i < d->n; i++) {
            float *img = d->images + i * out_hw;
            const unsigned char *src = buf + (size_t)(i - i0) * hw;
            for (size_t j = 0; j < out_hw; j++) img[j] = -1.0f;
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) img[(size_t)(y + top) * d->w + x + left] = src[y * w + x] / 127.5f - 1.0f;
        }
    }
    st = idx_expect_end(&f);
done:
    free(buf);
    idx_close(&f);
    return st;
}

eb_status eb_fmnist_load(eb_fmnist *out, const char *dir, const char *split, int limit, int pad_to) {
    *out = (eb_fmnist){0};
    if (!split || (strcmp(split, "train") && strcmp(split, "t10k")))
        return eb_fail(EB_EINPUT, "fmnist: split '%s' is neither 'train' nor 't10k'", split ? split : "(null)");
    if (limit < 0 || pad_to < 0 || pad_to > IDX_MAX_SIDE)
        return eb_fail(EB_EINPUT, "fmnist: bad limit %d or pad size %d", limit, pad_to);
    if (!dir) dir = EB_FMNIST_DEFAULT_DIR;
    char images_path[PATH_MAX], labels_path[PATH_MAX];
    if (snprintf(images_path, sizeof images_path, "%s/%s-images-idx3-ubyte.gz", dir, split) >= PATH_MAX ||
        snprintf(labels_path, sizeof labels_path, "%s/%s-labels-idx1-ubyte.gz", dir, split) >= PATH_MAX)
        return eb_fail(EB_EINPUT, "fmnist: directory name too long: %s", dir);

    /* The label file is small: read it first so the image count is known
     * before the large allocation. */
    eb_fmnist d = {0};
    int count = 0;
    eb_status st = read_labels(&d.labels, limit, &count, labels_path);
    d.n = limit ? limit : count;
    if (!st) st = read_images(&d, pad_to, images_path, count, labels_path);
    if (st) {
        eb_fmnist_free(&d);
        return st;
    }
    *out = d;
    return EB_OK;
}

void eb_fmnist_free(eb_fmnist *d) {
    free(d->images);
    free(d->labels);
    *d = (eb_fmnist){0};
}
