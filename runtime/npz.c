/* npz.c — numpy's .npz container (npz.h, docs/npz.md). */
#include "runtime/npz.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "runtime/atomic.h"
#include "runtime/checked.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "npz.c hands .npy data through as little-endian bytes"
#endif

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_END 0x06054b50u
#define SIG_END64 0x06064b50u
#define SIG_LOCATOR64 0x07064b50u
#define ZIP64_VERSION 45     /* "version needed" for ZIP64 records       */
#define DOS_DATE_1980 0x0021 /* 1980-01-01: fixed, so archives are reproducible */
#define U32_MASK 0xffffffffu
#define MAX_NAME 1024
#define MAX_MEMBERS 65536
#define MAX_CENTRAL (64u << 20) /* bytes of central directory we read */
#define CHUNK (1u << 16)

static void put16(unsigned char *p, uint32_t v) { p[0] = (unsigned char)v, p[1] = (unsigned char)(v >> 8); }
static void put32(unsigned char *p, uint32_t v) { put16(p, v & 0xffff), put16(p + 2, v >> 16); }
static void put64(unsigned char *p, uint64_t v) { put32(p, (uint32_t)v), put32(p + 4, (uint32_t)(v >> 32)); }
static uint32_t get16(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t get32(const unsigned char *p) { return get16(p) | get16(p + 2) << 16; }
static uint64_t get64(const unsigned char *p) { return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32; }

/* ------------------------------------------------------------------------ */
/* Writing                                                                   */

typedef struct {
    char *name;      /* "arr_0.npy" */
    uint64_t offset; /* of the local header */
    uint64_t size;   /* .npy bytes: header + data */
    uint32_t crc;
} npz_entry;

struct eb_npz_writer {
    eb_atomic out;                /* out.f: the temporary being written  */
    npz_entry *entries;
    int n, cap;
    uint64_t pos;                 /* bytes written so far               */
    uint64_t member_left;         /* data bytes the open member still needs */
    eb_status failed;             /* first failure, kept for later calls */
    char *error;
};

/* Closes and removes the temporary file after the failure `st` (its message
 * already set), which later calls repeat. */
static eb_status writer_fail(eb_npz_writer *w, eb_status st) {
    if (w->failed) return st;
    w->failed = st;
    w->error = strdup(eb_last_error());
    eb_atomic_abort(&w->out);
    return st;
}

static eb_status writer_refail(eb_npz_writer *w) {
    return eb_fail(w->failed, "%s", w->error ? w->error : "npz writer failed earlier");
}

static eb_status writer_put(eb_npz_writer *w, const void *data, size_t bytes) {
    if (bytes && fwrite(data, 1, bytes, w->out.f) != bytes)
        return writer_fail(w, eb_fail(EB_ERUNTIME, "%s: write failed: %s", w->out.tmp, strerror(errno)));
    w->pos += bytes;
    return EB_OK;
}

static void writer_free(eb_npz_writer *w) {
    for (int i = 0; i < w->n; i++) free(w->entries[i].name);
    free(w->entries);
    free(w->error);
    free(w);
}

eb_status eb_npz_create(eb_npz_writer **out, const char *path) {
    *out = NULL;
    if (!path || !path[0]) return eb_fail(EB_EINPUT, "npz output: empty file name");
    eb_npz_writer *w = calloc(1, sizeof *w);
    if (!w) return eb_fail(EB_ERUNTIME, "%s: out of memory", path);
    eb_status st = eb_atomic_open(&w->out, path);
    if (st) {
        writer_free(w);
        return st;
    }
    *out = w;
    return EB_OK;
}

/* The local header of entry e (30 bytes + name + a 20-byte ZIP64 extra). */
static size_t local_header(unsigned char *p, const npz_entry *e) {
    size_t nlen = strlen(e->name);
    put32(p, SIG_LOCAL), put16(p + 4, ZIP64_VERSION), put16(p + 6, 0), put16(p + 8, 0); /* flags, STORED */
    put16(p + 10, 0), put16(p + 12, DOS_DATE_1980), put32(p + 14, e->crc);
    put32(p + 18, U32_MASK), put32(p + 22, U32_MASK); /* sizes: in the ZIP64 extra */
    put16(p + 26, (uint32_t)nlen), put16(p + 28, 20);
    memcpy(p + 30, e->name, nlen);
    unsigned char *x = p + 30 + nlen;
    put16(x, 1), put16(x + 2, 16), put64(x + 4, e->size), put64(x + 12, e->size);
    return 30 + nlen + 20;
}

/* Writes the open member's CRC into its local header. */
static eb_status finish_member(eb_npz_writer *w) {
    npz_entry *e = &w->entries[w->n - 1];
    unsigned char crc[4];
    put32(crc, e->crc);
    if (fseeko(w->out.f, (off_t)(e->offset + 14), SEEK_SET) || fwrite(crc, 1, 4, w->out.f) != 4 ||
        fseeko(w->out.f, (off_t)w->pos, SEEK_SET))
        return writer_fail(w, eb_fail(EB_ERUNTIME, "%s: write failed: %s", w->out.tmp, strerror(errno)));
    return EB_OK;
}

eb_status eb_npz_begin(eb_npz_writer *w, const char *name, eb_npy_dtype dtype, int rank, const int64_t *shape) {
    if (w->failed) return writer_refail(w);
    if (w->member_left)
        return writer_fail(w, eb_fail(EB_EINPUT, "%s: member %s lacks %llu data bytes", w->out.path,
                                      w->entries[w->n - 1].name, (unsigned long long)w->member_left));
    size_t nlen = name ? strlen(name) : 0;
    if (!nlen || nlen + 4 > MAX_NAME) return writer_fail(w, eb_fail(EB_EINPUT, "%s: bad member name", w->out.path));
    for (int i = 0; i < w->n; i++)
        if (!strncmp(w->entries[i].name, name, nlen) && !strcmp(w->entries[i].name + nlen, ".npy"))
            return writer_fail(w, eb_fail(EB_EINPUT, "%s: member %s written twice", w->out.path, name));
    char head[EB_NPY_HEADER_CAP];
    size_t hlen = eb_npy_format_header(head, sizeof head, dtype, rank, shape);
    int64_t count = eb_checked_count(shape, rank, INT64_MAX);
    uint64_t data_bytes;
    if (!hlen || count < 0 || eb_mul_overflows_u64((uint64_t)count, eb_npy_dtype_size(dtype), &data_bytes) ||
        data_bytes > UINT64_MAX - hlen)
        return writer_fail(w, eb_fail(EB_EINPUT, "%s: member %s: bad shape", w->out.path, name));
    if (w->n && finish_member(w)) return w->failed;
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 4;
        npz_entry *grown = realloc(w->entries, (size_t)cap * sizeof *grown);
        if (!grown) return writer_fail(w, eb_fail(EB_ERUNTIME, "%s: out of memory", w->out.path));
        w->entries = grown, w->cap = cap;
    }
    npz_entry *e = &w->entries[w->n];
    if (!(e->name = malloc(nlen + 5))) return writer_fail(w, eb_fail(EB_ERUNTIME, "%s: out of memory", w->out.path));
    memcpy(e->name, name, nlen), memcpy(e->name + nlen, ".npy", 5);
    e->offset = w->pos, e->size = hlen + data_bytes, e->crc = 0;
    w->n++;
    unsigned char local[30 + MAX_NAME + 20];
    eb_status st = writer_put(w, local, local_header(local, e));
    if (!st) st = writer_put(w, head, hlen);
    if (st) return st;
    e->crc = (uint32_t)crc32(0, (const unsigned char *)head, (uInt)hlen);
    w->member_left = data_bytes;
    return EB_OK;
}

eb_status eb_npz_append(eb_npz_writer *w, const void *data, size_t bytes) {
    if (w->failed) return writer_refail(w);
    if (!w->n || bytes > w->member_left)
        return writer_fail(w, eb_fail(EB_EINPUT, "%s: %zu bytes appended past the end of member %s", w->out.path, bytes,
                                      w->n ? w->entries[w->n - 1].name : "(none)"));
    npz_entry *e = &w->entries[w->n - 1];
    const unsigned char *p = data;
    for (size_t done = 0; done < bytes;) { /* crc32 takes a uInt length */
        size_t part = bytes - done < (1u << 30) ? bytes - done : (1u << 30);
        e->crc = (uint32_t)crc32(e->crc, p + done, (uInt)part);
        done += part;
    }
    eb_status st = writer_put(w, data, bytes);
    if (!st) w->member_left -= bytes;
    return st;
}

eb_status eb_npz_write_array(eb_npz_writer *w, const char *name, eb_npy_dtype dtype, int rank, const int64_t *shape,
                             const void *data) {
    eb_status st = eb_npz_begin(w, name, dtype, rank, shape);
    return st ? st : eb_npz_append(w, data, (size_t)w->member_left);
}

/* The central directory, the ZIP64 end record and locator, the end record. */
static eb_status write_directory(eb_npz_writer *w) {
    uint64_t start = w->pos;
    for (int i = 0; i < w->n; i++) {
        const npz_entry *e = &w->entries[i];
        size_t nlen = strlen(e->name);
        unsigned char p[46 + MAX_NAME + 28];
        put32(p, SIG_CENTRAL), put16(p + 4, 3u << 8 | ZIP64_VERSION), put16(p + 6, ZIP64_VERSION); /* made on Unix */
        put16(p + 8, 0), put16(p + 10, 0), put16(p + 12, 0), put16(p + 14, DOS_DATE_1980), put32(p + 16, e->crc);
        put32(p + 20, U32_MASK), put32(p + 24, U32_MASK);
        put16(p + 28, (uint32_t)nlen), put16(p + 30, 28), put16(p + 32, 0), put16(p + 34, 0), put16(p + 36, 0);
        put32(p + 38, 0100644u << 16), put32(p + 42, U32_MASK); /* a regular file rw-r--r--; offset in the extra */
        memcpy(p + 46, e->name, nlen);
        unsigned char *x = p + 46 + nlen;
        put16(x, 1), put16(x + 2, 24), put64(x + 4, e->size), put64(x + 12, e->size), put64(x + 20, e->offset);
        eb_status st = writer_put(w, p, 46 + nlen + 28);
        if (st) return st;
    }
    uint64_t cd_size = w->pos - start, end64 = w->pos;
    unsigned char p[56 + 20 + 22];
    put32(p, SIG_END64), put64(p + 4, 44), put16(p + 12, 3u << 8 | ZIP64_VERSION), put16(p + 14, ZIP64_VERSION);
    put32(p + 16, 0), put32(p + 20, 0), put64(p + 24, (uint64_t)w->n), put64(p + 32, (uint64_t)w->n);
    put64(p + 40, cd_size), put64(p + 48, start);
    unsigned char *l = p + 56;
    put32(l, SIG_LOCATOR64), put32(l + 4, 0), put64(l + 8, end64), put32(l + 16, 1);
    unsigned char *e = l + 20;
    uint32_t n16 = w->n < 0xffff ? (uint32_t)w->n : 0xffff;
    put32(e, SIG_END), put16(e + 4, 0), put16(e + 6, 0), put16(e + 8, n16), put16(e + 10, n16);
    put32(e + 12, U32_MASK), put32(e + 16, U32_MASK), put16(e + 20, 0);
    return writer_put(w, p, sizeof p);
}

eb_status eb_npz_close(eb_npz_writer *w) {
    eb_status st = w->failed ? writer_refail(w) : EB_OK;
    if (!st && w->member_left)
        st = writer_fail(w, eb_fail(EB_EINPUT, "%s: member %s lacks %llu data bytes", w->out.path,
                                    w->entries[w->n - 1].name, (unsigned long long)w->member_left));
    if (!st && w->n) st = finish_member(w);
    if (!st) st = write_directory(w);
    if (!st) st = eb_atomic_commit(&w->out);
    writer_free(w);
    return st;
}

void eb_npz_abort(eb_npz_writer *w) {
    if (!w) return;
    eb_atomic_abort(&w->out);
    writer_free(w);
}

/* ------------------------------------------------------------------------ */
/* Reading                                                                   */

typedef struct {
    char *name;
    uint64_t csize, usize, offset;
    uint32_t crc;
    int method, flags;
} zip_entry;

struct eb_npz {
    FILE *f;
    char *path;
    uint64_t file_size;
    zip_entry *entries;
    int n;
};

struct eb_npz_member {
    eb_npz *z;
    char label[MAX_NAME + 512]; /* "file: member", the start of every message */
    const zip_entry *e;
    uint64_t data_at;           /* file offset of the member's first stored byte */
    uint64_t read_in;           /* stored bytes consumed                          */
    uint64_t produced;          /* member bytes handed out (header included)      */
    uint32_t crc;
    int inflating;
    z_stream zs;
    unsigned char *in;
};

static eb_status read_at(eb_npz *z, uint64_t offset, void *dst, size_t bytes, const char *what) {
    if (offset > z->file_size || bytes > z->file_size - offset)
        return eb_fail(EB_EINPUT, "%s: %s at byte %llu runs past the end of the file", z->path, what,
                       (unsigned long long)offset);
    if (fseeko(z->f, (off_t)offset, SEEK_SET) || fread(dst, 1, bytes, z->f) != bytes)
        return eb_fail(EB_EINPUT, "%s: cannot read %s at byte %llu", z->path, what, (unsigned long long)offset);
    return EB_OK;
}

/* The end record (and the ZIP64 one): the central directory's place and size. */
static eb_status find_directory(eb_npz *z, uint64_t *count, uint64_t *cd_offset, uint64_t *cd_size) {
    size_t tail = z->file_size < 22 + 0xffff ? (size_t)z->file_size : 22 + 0xffff;
    unsigned char *buf = malloc(tail ? tail : 1);
    if (!buf) return eb_fail(EB_ERUNTIME, "%s: out of memory", z->path);
    eb_status st = tail < 22 ? eb_fail(EB_EINPUT, "%s: not an .npz file (too short for a ZIP archive)", z->path)
                             : read_at(z, z->file_size - tail, buf, tail, "the end record");
    long at = -1;
    for (long i = (long)tail - 22; !st && i >= 0 && at < 0; i--)
        if (get32(buf + i) == SIG_END && get16(buf + i + 20) == (uint32_t)(tail - 22 - (size_t)i)) at = i;
    if (!st && at < 0) st = eb_fail(EB_EINPUT, "%s: not an .npz file (no ZIP end record)", z->path);
    if (!st) {
        const unsigned char *e = buf + at;
        *count = get16(e + 10), *cd_size = get32(e + 12), *cd_offset = get32(e + 16);
        uint64_t end_at = z->file_size - tail + (uint64_t)at;
        unsigned char loc[20], rec[56];
        if (end_at >= 20 && !read_at(z, end_at - 20, loc, 20, "the ZIP64 locator") && get32(loc) == SIG_LOCATOR64) {
            st = read_at(z, get64(loc + 8), rec, 56, "the ZIP64 end record");
            if (!st && get32(rec) != SIG_END64) st = eb_fail(EB_EINPUT, "%s: bad ZIP64 end record signature", z->path);
            if (!st) *count = get64(rec + 32), *cd_size = get64(rec + 40), *cd_offset = get64(rec + 48);
        }
    }
    free(buf);
    if (!st && (*count > MAX_MEMBERS || *cd_size > MAX_CENTRAL))
        st = eb_fail(EB_EINPUT, "%s: central directory of %llu members, %llu bytes (limits %d, %u)", z->path,
                     (unsigned long long)*count, (unsigned long long)*cd_size, MAX_MEMBERS, MAX_CENTRAL);
    return st;
}

/* The ZIP64 extra field of a central record: the 64-bit values of the fields that hold 0xffffffff. */
static eb_status zip64_extra(eb_npz *z, zip_entry *e, const unsigned char *x, size_t len) {
    while (len >= 4) {
        uint32_t id = get16(x), size = get16(x + 2);
        if (size > len - 4) break;
        if (id == 1) {
            const unsigned char *v = x + 4;
            uint64_t *fields[3] = {&e->usize, &e->csize, &e->offset};
            for (int k = 0; k < 3; k++) {
                if (*fields[k] != U32_MASK) continue;
                if (v + 8 > x + 4 + size) return eb_fail(EB_EINPUT, "%s: member %s: short ZIP64 extra field", z->path, e->name);
                *fields[k] = get64(v), v += 8;
            }
            return EB_OK;
        }
        x += 4 + size, len -= 4 + size;
    }
    return EB_OK;
}

static eb_status read_directory(eb_npz *z) {
    uint64_t count = 0, cd_offset = 0, cd_size = 0;
    eb_status st = find_directory(z, &count, &cd_offset, &cd_size);
    if (st) return st;
    unsigned char *cd = malloc(cd_size ? (size_t)cd_size : 1);
    z->entries = calloc(count ? (size_t)count : 1, sizeof *z->entries);
    if (!cd || !z->entries) st = eb_fail(EB_ERUNTIME, "%s: out of memory", z->path);
    if (!st) st = read_at(z, cd_offset, cd, (size_t)cd_size, "the central directory");
    size_t at = 0;
    for (uint64_t i = 0; !st && i < count; i++) {
        if (cd_size - at < 46 || get32(cd + at) != SIG_CENTRAL) {
            st = eb_fail(EB_EINPUT, "%s: central directory record %llu is malformed", z->path, (unsigned long long)i);
            break;
        }
        const unsigned char *p = cd + at;
        size_t nlen = get16(p + 28), xlen = get16(p + 30), clen = get16(p + 32);
        if (cd_size - at - 46 < nlen + xlen + clen) {
            st = eb_fail(EB_EINPUT, "%s: central directory record %llu runs past the directory", z->path,
                         (unsigned long long)i);
            break;
        }
        zip_entry *e = &z->entries[z->n];
        if (!(e->name = malloc(nlen + 1))) {
            st = eb_fail(EB_ERUNTIME, "%s: out of memory", z->path);
            break;
        }
        z->n++;
        memcpy(e->name, p + 46, nlen), e->name[nlen] = 0;
        e->flags = (int)get16(p + 8), e->method = (int)get16(p + 10), e->crc = get32(p + 16);
        e->csize = get32(p + 20), e->usize = get32(p + 24), e->offset = get32(p + 42);
        st = zip64_extra(z, e, p + 46 + nlen, xlen);
        at += 46 + nlen + xlen + clen;
    }
    free(cd);
    return st;
}

eb_status eb_npz_open(eb_npz **out, const char *path) {
    *out = NULL;
    eb_npz *z = calloc(1, sizeof *z);
    if (!z || !(z->path = strdup(path))) {
        free(z);
        return eb_fail(EB_ERUNTIME, "%s: out of memory", path);
    }
    struct stat sb;
    eb_status st = EB_OK;
    if (!(z->f = fopen(path, "rb"))) st = eb_fail(EB_EINPUT, "%s: cannot open: %s", path, strerror(errno));
    else if (fstat(fileno(z->f), &sb) || !S_ISREG(sb.st_mode)) st = eb_fail(EB_EINPUT, "%s: not a regular file", path);
    else z->file_size = (uint64_t)sb.st_size;
    if (!st) st = read_directory(z);
    if (st) {
        eb_npz_close_reader(z);
        return st;
    }
    *out = z;
    return EB_OK;
}

void eb_npz_close_reader(eb_npz *z) {
    if (!z) return;
    if (z->f) fclose(z->f);
    for (int i = 0; i < z->n; i++) free(z->entries[i].name);
    free(z->entries);
    free(z->path);
    free(z);
}

static const zip_entry *find_entry(const eb_npz *z, const char *name) {
    size_t nlen = strlen(name);
    for (int i = 0; i < z->n; i++)
        if (!strncmp(z->entries[i].name, name, nlen) && !strcmp(z->entries[i].name + nlen, ".npy")) return &z->entries[i];
    return NULL;
}

int eb_npz_has(const eb_npz *z, const char *name) { return find_entry(z, name) != NULL; }

eb_status eb_npz_member_crc(const eb_npz *z, const char *name, uint32_t *crc) {
    const zip_entry *e = find_entry(z, name);
    if (!e) return eb_fail(EB_EINPUT, "%s: no member %s.npy", z->path, name);
    *crc = e->crc;
    return EB_OK;
}

/* The next `bytes` bytes of the member's content (the .npy file). */
static eb_status member_raw(eb_npz_member *m, unsigned char *dst, size_t bytes) {
    const zip_entry *e = m->e;
    if (bytes > e->usize - m->produced)
        return eb_fail(EB_EINPUT, "%s: data ends at byte %llu, %zu more bytes wanted", m->label,
                       (unsigned long long)e->usize, bytes);
    if (!m->inflating) {
        eb_status st = read_at(m->z, m->data_at + m->read_in, dst, bytes, m->label);
        if (st) return st;
        m->read_in += bytes;
    } else {
        m->zs.next_out = dst;
        size_t left = bytes;
        while (left) {
            if (m->zs.avail_in == 0 && m->read_in < e->csize) {
                size_t part = e->csize - m->read_in < CHUNK ? (size_t)(e->csize - m->read_in) : CHUNK;
                eb_status st = read_at(m->z, m->data_at + m->read_in, m->in, part, m->label);
                if (st) return st;
                m->read_in += part;
                m->zs.next_in = m->in, m->zs.avail_in = (uInt)part;
            }
            uInt want = left < (1u << 30) ? (uInt)left : (1u << 30);
            m->zs.avail_out = want;
            int r = inflate(&m->zs, Z_NO_FLUSH);
            left -= want - m->zs.avail_out;
            if (r == Z_STREAM_END && left) return eb_fail(EB_EINPUT, "%s: DEFLATE stream ends early", m->label);
            if (r == Z_BUF_ERROR && m->zs.avail_in == 0 && m->read_in >= e->csize)
                return eb_fail(EB_EINPUT, "%s: DEFLATE stream is truncated", m->label);
            if (r != Z_OK && r != Z_STREAM_END && r != Z_BUF_ERROR)
                return eb_fail(EB_EINPUT, "%s: corrupt DEFLATE stream (zlib: %s)", m->label, m->zs.msg ? m->zs.msg : "error");
        }
    }
    for (size_t done = 0; done < bytes;) {
        size_t part = bytes - done < (1u << 30) ? bytes - done : (1u << 30);
        m->crc = (uint32_t)crc32(m->crc, dst + done, (uInt)part);
        done += part;
    }
    m->produced += bytes;
    if (m->produced == e->usize && m->crc != e->crc)
        return eb_fail(EB_EINPUT, "%s: CRC-32 %08x, the directory says %08x (corrupt data)", m->label, m->crc, e->crc);
    return EB_OK;
}

/* The .npy header at the member's start. */
static eb_status member_header(eb_npz_member *m, eb_npy_header *h) {
    unsigned char pre[12];
    size_t first = m->e->usize < sizeof pre ? (size_t)m->e->usize : sizeof pre;
    eb_status st = member_raw(m, pre, first);
    if (st) return st;
    size_t hlen = 0;
    if (first == sizeof pre)
        hlen = pre[6] == 1 ? 10 + get16(pre + 8) : get32(pre + 8) <= EB_NPY_MAX_HEADER ? 12 + get32(pre + 8) : 0;
    if (hlen < first || hlen > m->e->usize) return eb_npy_parse_header(h, pre, first, m->label); /* names the fault */
    unsigned char *buf = malloc(hlen);
    if (!buf) return eb_fail(EB_ERUNTIME, "%s: out of memory", m->label);
    memcpy(buf, pre, first);
    st = member_raw(m, buf + first, hlen - first);
    if (!st) st = eb_npy_parse_header(h, buf, hlen, m->label);
    free(buf);
    if (!st && (h->data_bytes > m->e->usize || h->header_bytes != m->e->usize - h->data_bytes))
        st = eb_fail(EB_EINPUT, "%s: holds %llu bytes, its header and shape give %llu", m->label,
                     (unsigned long long)m->e->usize, (unsigned long long)(h->header_bytes + h->data_bytes));
    return st;
}

eb_status eb_npz_member_open(eb_npz_member **out, eb_npz *z, const char *name, eb_npy_header *h) {
    *out = NULL;
    const zip_entry *e = find_entry(z, name);
    if (!e) return eb_fail(EB_EINPUT, "%s: no member %s.npy", z->path, name);
    eb_npz_member *m = calloc(1, sizeof *m);
    if (!m) return eb_fail(EB_ERUNTIME, "%s: out of memory", z->path);
    m->z = z, m->e = e;
    snprintf(m->label, sizeof m->label, "%s: member %s", z->path, e->name);
    unsigned char local[30];
    eb_status st = EB_OK;
    if (e->flags & 1) st = eb_fail(EB_EINPUT, "%s is encrypted", m->label);
    else if (e->method != 0 && e->method != 8)
        st = eb_fail(EB_EINPUT, "%s: compression method %d (only STORED and DEFLATE)", m->label, e->method);
    else if (e->method == 0 && e->csize != e->usize)
        st = eb_fail(EB_EINPUT, "%s: STORED with %llu stored bytes for %llu", m->label, (unsigned long long)e->csize,
                     (unsigned long long)e->usize);
    if (!st) st = read_at(z, e->offset, local, sizeof local, m->label);
    if (!st && get32(local) != SIG_LOCAL) st = eb_fail(EB_EINPUT, "%s: bad local header signature", m->label);
    if (!st) {
        m->data_at = e->offset + 30 + get16(local + 26) + get16(local + 28);
        if (m->data_at > z->file_size || e->csize > z->file_size - m->data_at)
            st = eb_fail(EB_EINPUT, "%s: %llu stored bytes run past the end of the file", m->label,
                         (unsigned long long)e->csize);
    }
    if (!st && e->method == 8) {
        if (!(m->in = malloc(CHUNK))) st = eb_fail(EB_ERUNTIME, "%s: out of memory", m->label);
        else if (inflateInit2(&m->zs, -MAX_WBITS) != Z_OK) st = eb_fail(EB_ERUNTIME, "%s: zlib init failed", m->label);
        else m->inflating = 1;
    }
    if (!st) st = member_header(m, h);
    if (st) {
        eb_npz_member_close(m);
        return st;
    }
    *out = m;
    return EB_OK;
}

eb_status eb_npz_member_read(eb_npz_member *m, void *dst, size_t bytes) { return member_raw(m, dst, bytes); }

void eb_npz_member_close(eb_npz_member *m) {
    if (!m) return;
    if (m->inflating) inflateEnd(&m->zs);
    free(m->in);
    free(m);
}

eb_status eb_npz_read_f64(eb_npz *z, const char *name, int64_t limit, eb_npy_header *h, double **data) {
    *data = NULL;
    eb_npz_member *m;
    eb_status st = eb_npz_member_open(&m, z, name, h);
    if (st) return st;
    if (h->count > limit)
        st = eb_fail(EB_EINPUT, "%s: member %s.npy has %lld elements (limit %lld)", z->path, name, (long long)h->count,
                     (long long)limit);
    size_t es = eb_npy_dtype_size(h->dtype);
    unsigned char *raw = st ? NULL : malloc(h->data_bytes ? (size_t)h->data_bytes : 1);
    double *out = st ? NULL : malloc(eb_checked_bytes(h->count ? h->count : 1, sizeof(double)));
    if (!st && (!raw || !out)) st = eb_fail(EB_ERUNTIME, "%s: out of memory reading %s.npy", z->path, name);
    if (!st) st = eb_npz_member_read(m, raw, (size_t)h->data_bytes);
    for (int64_t i = 0; !st && i < h->count; i++) {
        const unsigned char *p = raw + (size_t)i * es;
        float f;
        double d;
        int64_t v;
        switch (h->dtype) {
        case EB_NPY_U8: out[i] = p[0]; break;
        case EB_NPY_F32: memcpy(&f, p, 4), out[i] = f; break;
        case EB_NPY_F64: memcpy(&d, p, 8), out[i] = d; break;
        default: memcpy(&v, p, 8), out[i] = (double)v; break;
        }
    }
    free(raw);
    eb_npz_member_close(m);
    if (st) free(out);
    else *data = out;
    return st;
}
