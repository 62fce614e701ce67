/* h5io.c — HDF5 reading and atomic writing (see h5io.h). */
#include "runtime/h5io.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/atomic.h"
#include "runtime/check.h"
#include "runtime/checked.h"

/* ------------------------------------------------------------------------ */
/* Shared helpers                                                            */

static void close_id(hid_t id) {
    if (id < 0) return;
    switch (H5Iget_type(id)) {
    case H5I_DATASET: H5Dclose(id); break;
    case H5I_GROUP: H5Gclose(id); break;
    case H5I_DATATYPE: H5Tclose(id); break;
    case H5I_DATASPACE: H5Sclose(id); break;
    case H5I_ATTR: H5Aclose(id); break;
    case H5I_GENPROP_LST: H5Pclose(id); break;
    default: break;
    }
}

/* Only our messages reach the user; HDF5's stack is kept for hdf5_reason. */
static void silence_hdf5(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

static herr_t take_innermost(unsigned n, const H5E_error2_t *e, void *buf) {
    snprintf(buf, 256, "%s", e->desc ? e->desc : "");
    return 1; /* the first entry walking upward is the most specific one */
}

/* HDF5's most specific description of the error of the last API call. Call
 * it right after the failing call: any other API call clears the stack. */
static const char *hdf5_reason(void) {
    static _Thread_local char buf[256];
    buf[0] = 0;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, take_innermost, buf);
    if (!buf[0]) snprintf(buf, sizeof buf, "no detail");
    return buf;
}

/* Every traversal refuses external links, which would open other files. */
static herr_t refuse_external_link(const char *parent_file, const char *parent_group, const char *child_file,
                                   const char *child_object, unsigned *acc_flags, hid_t fapl, void *data) {
    return -1;
}

static hid_t link_access(void) {
    static hid_t lapl = H5I_INVALID_HID;
    if (lapl < 0 || H5Iis_valid(lapl) <= 0) { /* re-made if the library was closed and reopened */
        lapl = H5Pcreate(H5P_LINK_ACCESS);
        if (lapl >= 0) H5Pset_elink_cb(lapl, refuse_external_link, NULL);
    }
    return lapl;
}

static int is_root(const char *path) { return !path || !path[0] || !strcmp(path, "/"); }

/* Opens the object at `path` (NULL, "" or "/" = root). Negative when it does
 * not exist or cannot be reached. */
static hid_t open_object(hid_t file, const char *path) {
    if (is_root(path)) return H5Oopen(file, "/", H5P_DEFAULT);
    /* H5Lexists fails (negative) when an intermediate group is missing. */
    if (H5Lexists(file, path, link_access()) <= 0) return H5I_INVALID_HID;
    if (H5Oexists_by_name(file, path, link_access()) <= 0) return H5I_INVALID_HID;
    return H5Oopen(file, path, link_access());
}

static eb_h5_kind kind_of(hid_t file, const char *path) {
    hid_t obj = open_object(file, path);
    if (obj < 0) return EB_H5_NONE;
    H5I_type_t t = H5Iget_type(obj);
    close_id(obj);
    return t == H5I_DATASET ? EB_H5_DATASET : t == H5I_GROUP ? EB_H5_GROUP : EB_H5_NONE;
}

static const char *type_name(eb_h5_type t) {
    static const char *names[] = {"float32", "float64", "int32", "int64"};
    return names[t];
}

static size_t type_size(eb_h5_type t) { return t == EB_H5_F32 || t == EB_H5_I32 ? 4 : 8; }

/* A stored type in words: "float64", "uint8", "string", "compound", ... */
static const char *describe_type(hid_t type, char buf[32]) {
    size_t bits = 8 * H5Tget_size(type);
    switch (H5Tget_class(type)) {
    case H5T_INTEGER: snprintf(buf, 32, "%sint%zu", H5Tget_sign(type) == H5T_SGN_NONE ? "u" : "", bits); break;
    case H5T_FLOAT: snprintf(buf, 32, "float%zu", bits); break;
    case H5T_STRING: snprintf(buf, 32, "string"); break;
    case H5T_COMPOUND: snprintf(buf, 32, "compound"); break;
    case H5T_ENUM: snprintf(buf, 32, "enum"); break;
    case H5T_ARRAY: snprintf(buf, 32, "array"); break;
    case H5T_VLEN: snprintf(buf, 32, "variable-length"); break;
    case H5T_REFERENCE: snprintf(buf, 32, "reference"); break;
    case H5T_BITFIELD: snprintf(buf, 32, "bitfield"); break;
    default: snprintf(buf, 32, "opaque"); break;
    }
    return buf;
}

/* ------------------------------------------------------------------------ */
/* Reading                                                                   */

struct eb_h5 {
    hid_t file;
    char *path;
    int heaps_checked; /* check_global_heaps passed */
    long long base;    /* file offset of the signature: HDF5 addresses count from there */
};

/* HDF5's signature sits at offset 0, 512, 1024, 2048, ... (a user block may
 * precede it). Its offset, or -1 when there is none. */
static long long hdf5_signature_at(FILE *fp, long long size) {
    static const unsigned char sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    for (long long off = 0; off + 8 <= size; off = off ? 2 * off : 512) {
        unsigned char buf[8];
        if (fseeko(fp, off, SEEK_SET) || fread(buf, 1, 8, fp) != 8) return -1;
        if (!memcmp(buf, sig, 8)) return off;
    }
    return -1;
}

eb_status eb_h5_open(eb_h5 **out, const char *path) {
    *out = NULL;
    if (!path || !path[0]) return eb_fail(EB_EINPUT, "HDF5 input: empty file name");
    struct stat sb;
    if (stat(path, &sb)) return eb_fail(EB_EINPUT, "%s: cannot open: %s", path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) return eb_fail(EB_EINPUT, "%s: is a directory, expected an HDF5 file", path);
    FILE *fp = fopen(path, "rb");
    if (!fp) return eb_fail(EB_EINPUT, "%s: cannot open: %s", path, strerror(errno));
    long long base = hdf5_signature_at(fp, (long long)sb.st_size);
    fclose(fp);
    if (base < 0) return eb_fail(EB_EINPUT, "%s: not an HDF5 file (no HDF5 signature)", path);

    silence_hdf5();
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG); /* closing the file closes whatever is left open */
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    const char *why = file < 0 ? hdf5_reason() : "";
    H5Pclose(fapl);
    if (file < 0) return eb_fail(EB_EINPUT, "%s: truncated or corrupt HDF5 file (HDF5: %s)", path, why);

    eb_h5 *f = malloc(sizeof *f);
    char *copy = strdup(path);
    if (!f || !copy) {
        free(f);
        free(copy);
        H5Fclose(file);
        return eb_fail(EB_ERUNTIME, "%s: out of memory", path);
    }
    f->file = file;
    f->path = copy;
    f->heaps_checked = 0;
    f->base = base;
    *out = f;
    return EB_OK;
}

void eb_h5_close(eb_h5 *f) {
    if (!f) return;
    H5Fclose(f->file);
    free(f->path);
    free(f);
}

const char *eb_h5_path(const eb_h5 *f) { return f->path; }

eb_h5_kind eb_h5_lookup(eb_h5 *f, const char *path) { return kind_of(f->file, path); }

/* Opens dataset `name`, or fails naming what is there instead. */
static eb_status open_dataset(eb_h5 *f, const char *name, hid_t *ds) {
    *ds = H5I_INVALID_HID;
    if (is_root(name)) return eb_fail(EB_EINPUT, "%s: dataset name is empty or '/'", f->path);
    hid_t obj = open_object(f->file, name);
    if (obj < 0) return eb_fail(EB_EINPUT, "%s: dataset '%s' not found", f->path, name);
    H5I_type_t t = H5Iget_type(obj);
    if (t != H5I_DATASET) {
        close_id(obj);
        return eb_fail(EB_EINPUT, "%s: '%s' is %s, expected a dataset", f->path, name,
                       t == H5I_GROUP ? "a group" : "a named datatype");
    }
    *ds = obj;
    return EB_OK;
}

/* Rank and extents of an open dataset; refuses null dataspaces and rank > 8. */
static eb_status dataset_shape(eb_h5 *f, const char *name, hid_t ds, int *rank, int64_t dims[EB_H5_MAX_RANK]) {
    hid_t space = H5Dget_space(ds);
    H5S_class_t cls = space < 0 ? H5S_NO_CLASS : H5Sget_simple_extent_type(space);
    int r = cls == H5S_SIMPLE || cls == H5S_SCALAR ? H5Sget_simple_extent_ndims(space) : -1;
    hsize_t h[H5S_MAX_RANK];
    eb_status st = EB_OK;
    if (cls == H5S_NULL)
        st = eb_fail(EB_EINPUT, "%s: dataset '%s' is empty (null dataspace)", f->path, name);
    else if (r < 0 || r > H5S_MAX_RANK || H5Sget_simple_extent_dims(space, h, NULL) < 0)
        st = eb_fail(EB_EINPUT, "%s: dataset '%s' has an unreadable shape (HDF5: %s)", f->path, name, hdf5_reason());
    else if (r > EB_H5_MAX_RANK)
        st = eb_fail(EB_EINPUT, "%s: dataset '%s' has rank %d, more than %d", f->path, name, r, EB_H5_MAX_RANK);
    else {
        for (int d = 0; d < r; d++) {
            if (h[d] > (hsize_t)INT64_MAX) {
                st = eb_fail(EB_EINPUT, "%s: dataset '%s' extent %d is too large", f->path, name, d);
                break;
            }
            dims[d] = (int64_t)h[d];
        }
        *rank = r;
    }
    close_id(space);
    return st;
}

eb_status eb_h5_shape(eb_h5 *f, const char *name, int *rank, int64_t dims[EB_H5_MAX_RANK]) {
    hid_t ds;
    eb_status st = open_dataset(f, name, &ds);
    if (!st) st = dataset_shape(f, name, ds, rank, dims);
    close_id(ds);
    return st;
}

/* Values read wide (double, int64, uint64) are range-checked and narrowed in
 * place; memcpy keeps the aliasing of the shared buffer well defined. */
enum wide_kind { WIDE_DOUBLE, WIDE_INT64, WIDE_UINT64 };

static eb_status narrow_in_place(eb_h5 *f, const char *name, unsigned char *buf, int64_t n, enum wide_kind wide,
                                 eb_h5_type type, const int64_t *dims, int rank) {
    const int64_t lo = type == EB_H5_I32 ? INT32_MIN : INT64_MIN;
    const int64_t hi = type == EB_H5_I32 ? INT32_MAX : INT64_MAX;
    size_t out_size = type_size(type);
    for (int64_t i = 0; i < n; i++) {
        const unsigned char *src = buf + 8 * i;
        unsigned char *dst = buf + out_size * i;
        int bad = 0;
        char value[32];
        if (wide == WIDE_DOUBLE) {
            double v;
            memcpy(&v, src, 8);
            float narrow = (float)v;
            bad = isfinite(v) && fabs(v) > FLT_MAX;
            if (bad) snprintf(value, sizeof value, "%g", v);
            else memcpy(dst, &narrow, 4);
        } else if (wide == WIDE_UINT64) {
            uint64_t v;
            memcpy(&v, src, 8);
            bad = v > (uint64_t)hi;
            if (bad) snprintf(value, sizeof value, "%llu", (unsigned long long)v);
            else if (type == EB_H5_I32) { int32_t x = (int32_t)v; memcpy(dst, &x, 4); }
            else { int64_t x = (int64_t)v; memcpy(dst, &x, 8); }
        } else {
            int64_t v;
            memcpy(&v, src, 8);
            bad = v < lo || v > hi;
            if (bad) snprintf(value, sizeof value, "%lld", (long long)v);
            else if (type == EB_H5_I32) { int32_t x = (int32_t)v; memcpy(dst, &x, 4); }
        }
        if (bad) {
            char where[EB_INDEX_STR_MAX];
            return eb_fail(EB_EINPUT, "%s: dataset '%s' value %s at %s does not fit %s", f->path, name, value,
                           eb_format_index(where, sizeof where, i, dims, rank), type_name(type));
        }
    }
    return EB_OK;
}

/* Refuses what libhdf5 would mishandle or what would read other files:
 * external raw-data files and virtual datasets (like external links), and
 * compact or contiguous storage smaller than the shape needs. libhdf5 1.10
 * trusts the size a layout message states, and a short compact dataset crashes
 * H5Dread (found by fuzz/fuzz_h5.c). Unallocated contiguous storage (0) reads
 * as fill values; chunked layouts are left to libhdf5 (sizing them walks
 * every chunk). */
static eb_status check_layout(eb_h5 *f, const char *name, hid_t ds, uint64_t need) {
    hid_t dcpl = H5Dget_create_plist(ds);
    H5D_layout_t layout = dcpl < 0 ? H5D_LAYOUT_ERROR : H5Pget_layout(dcpl);
    int external = dcpl >= 0 && H5Pget_external_count(dcpl) > 0;
    close_id(dcpl);
    if (external || layout == H5D_VIRTUAL)
        return eb_fail(EB_EINPUT, "%s: dataset '%s' keeps its data in other files (%s), which are not read", f->path,
                       name, external ? "external storage" : "virtual dataset");
    if (layout != H5D_COMPACT && layout != H5D_CONTIGUOUS) return EB_OK;
    uint64_t have = H5Dget_storage_size(ds);
    if (have == need || (layout == H5D_CONTIGUOUS && (have == 0 || have > need))) return EB_OK;
    return eb_fail(EB_EINPUT, "%s: dataset '%s' is corrupt: its %s storage holds %llu bytes, its shape needs %llu",
                   f->path, name, layout == H5D_COMPACT ? "compact" : "contiguous", (unsigned long long)have,
                   (unsigned long long)need);
}

/* eb_h5_read and eb_h5_read_rows: rows [row0, row0 + nrows) along axis 0, or every row when nrows < 0. */
static eb_status read_rows(eb_h5 *f, const char *name, eb_h5_type type, int rank, const int64_t *want, int64_t row0,
                           int64_t nrows, void **data, int64_t *dims, int flags) {
    *data = NULL;
    if (rank < 0 || rank > EB_H5_MAX_RANK)
        return eb_fail(EB_EINPUT, "%s: dataset '%s': expected rank %d is not in 0..%d", f->path, name, rank,
                       EB_H5_MAX_RANK);
    if (nrows >= 0 && (rank < 1 || row0 < 0))
        return eb_fail(EB_EINPUT, "%s: dataset '%s': rows from %lld of a rank-%d dataset", f->path, name,
                       (long long)row0, rank);
    hid_t ds, ftype = H5I_INVALID_HID, fspace = H5I_INVALID_HID, mspace = H5I_INVALID_HID;
    unsigned char *buf = NULL;
    eb_status st = open_dataset(f, name, &ds);
    if (st) return st;

    int found_rank;
    int64_t found[EB_H5_MAX_RANK];
    char a[EB_INDEX_STR_MAX], b[EB_INDEX_STR_MAX], tname[32];
    if ((st = dataset_shape(f, name, ds, &found_rank, found))) goto done;
    if (found_rank != rank) {
        st = eb_fail(EB_EINPUT, "%s: dataset '%s' has rank %d (dims %s), expected rank %d", f->path, name, found_rank,
                     eb_format_dims(a, sizeof a, found, found_rank), rank);
        goto done;
    }
    for (int d = 0; want && d < rank; d++)
        if (want[d] >= 0 && want[d] != found[d]) {
            st = eb_fail(EB_EINPUT, "%s: dataset '%s' has dims %s, expected %s", f->path, name,
                         eb_format_dims(a, sizeof a, found, rank), eb_format_dims(b, sizeof b, want, rank));
            goto done;
        }
    /* part: the extents read (found, or nrows rows of it) */
    int64_t part[EB_H5_MAX_RANK];
    if (rank) memcpy(part, found, sizeof(int64_t) * (size_t)rank);
    if (nrows >= 0) {
        if (nrows > found[0] - row0) {
            st = eb_fail(EB_EINPUT, "%s: dataset '%s' has %lld rows, rows %lld to %lld were asked for", f->path, name,
                         (long long)found[0], (long long)row0, (long long)(row0 + nrows - 1));
            goto done;
        }
        part[0] = nrows;
    }
    int64_t n = eb_checked_count(part, rank, EB_H5_MAX_ELEMS), total = eb_checked_count(found, rank, INT64_MAX / 16);
    if (n < 0 || total < 0) {
        st = eb_fail(EB_EINPUT, "%s: dataset '%s' has dims %s, more than %lld elements%s", f->path, name,
                     eb_format_dims(a, sizeof a, found, rank), (long long)EB_H5_MAX_ELEMS,
                     nrows >= 0 ? " in the rows asked for" : "");
        goto done;
    }

    ftype = H5Dget_type(ds);
    H5T_class_t cls = ftype < 0 ? H5T_NO_CLASS : H5Tget_class(ftype);
    int want_float = type == EB_H5_F32 || type == EB_H5_F64;
    if (cls != (want_float ? H5T_FLOAT : H5T_INTEGER) || H5Tget_size(ftype) > 8) {
        st = eb_fail(EB_EINPUT, "%s: dataset '%s' has type %s, expected %s data (read as %s)", f->path, name,
                     ftype < 0 ? "unknown" : describe_type(ftype, tname), want_float ? "float" : "integer",
                     type_name(type));
        goto done;
    }
    /* Read exactly as asked when no narrowing can lose values, else wide and check. */
    enum wide_kind wide = WIDE_INT64;
    hid_t mem;
    int narrow;
    if (want_float) {
        narrow = type == EB_H5_F32 && H5Tget_size(ftype) > 4;
        wide = WIDE_DOUBLE;
        mem = type == EB_H5_F32 && !narrow ? H5T_NATIVE_FLOAT : H5T_NATIVE_DOUBLE;
    } else {
        /* HDF5 would clamp out-of-range integers silently: read 64-bit and check. */
        int u64 = H5Tget_sign(ftype) == H5T_SGN_NONE && H5Tget_size(ftype) >= 8;
        narrow = type == EB_H5_I32 || u64;
        wide = u64 ? WIDE_UINT64 : WIDE_INT64;
        mem = u64 ? H5T_NATIVE_UINT64 : H5T_NATIVE_INT64;
    }
    if ((st = check_layout(f, name, ds, (uint64_t)total * H5Tget_size(ftype)))) goto done;
    size_t read_size = narrow ? 8 : type_size(type);
    buf = malloc((size_t)(n ? n : 1) * read_size);
    if (!buf) {
        st = eb_fail(EB_ERUNTIME, "%s: dataset '%s': out of memory for %lld elements", f->path, name, (long long)n);
        goto done;
    }
    if (n && nrows >= 0 && n < total) { /* a hyperslab of whole rows: the others stay on disk */
        hsize_t start[EB_H5_MAX_RANK] = {(hsize_t)row0}, count[EB_H5_MAX_RANK];
        for (int d = 0; d < rank; d++) count[d] = (hsize_t)part[d];
        fspace = H5Dget_space(ds);
        mspace = H5Screate_simple(rank, count, NULL);
        if (fspace < 0 || mspace < 0 || H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) < 0) {
            st = eb_fail(EB_ERUNTIME, "%s: dataset '%s': cannot select rows %lld to %lld (HDF5: %s)", f->path, name,
                         (long long)row0, (long long)(row0 + nrows - 1), hdf5_reason());
            goto done;
        }
    }
    if (n && H5Dread(ds, mem, mspace < 0 ? H5S_ALL : mspace, fspace < 0 ? H5S_ALL : fspace, H5P_DEFAULT, buf) < 0) {
        st = eb_fail(EB_EINPUT, "%s: dataset '%s' cannot be read, file truncated or corrupt (HDF5: %s)", f->path, name,
                     hdf5_reason());
        goto done;
    }
    if (narrow) {
        if ((st = narrow_in_place(f, name, buf, n, wide, type, part, rank))) goto done;
        unsigned char *shrunk = realloc(buf, (size_t)(n ? n : 1) * type_size(type));
        if (shrunk) buf = shrunk;
    }
    if (flags & EB_H5_FINITE && want_float) {
        char what[640];
        if (!rank || part[0] == found[0]) snprintf(what, sizeof what, "%s: dataset '%s'", f->path, name);
        else /* the index is within the rows read */
            snprintf(what, sizeof what, "%s: dataset '%s', of its rows %lld to %lld,", f->path, name,
                     (long long)row0, (long long)(row0 + nrows - 1));
        st = type == EB_H5_F32 ? eb_check_finite((const float *)buf, part, rank, EB_EINPUT, what)
                               : eb_check_finite_f64((const double *)buf, part, rank, EB_EINPUT, what);
        if (st) goto done;
    }
    if (rank) memcpy(dims, found, sizeof(int64_t) * (size_t)rank);
    *data = buf;
    buf = NULL;
done:
    free(buf);
    close_id(mspace);
    close_id(fspace);
    close_id(ftype);
    close_id(ds);
    return st;
}

eb_status eb_h5_read(eb_h5 *f, const char *name, eb_h5_type type, int rank, const int64_t *want, void **data,
                     int64_t *dims, int flags) {
    return read_rows(f, name, type, rank, want, 0, -1, data, dims, flags);
}

eb_status eb_h5_read_rows(eb_h5 *f, const char *name, eb_h5_type type, int rank, const int64_t *want, int64_t row0,
                          int64_t nrows, void **data, int64_t *dims, int flags) {
    if (nrows < 0) return eb_fail(EB_EINPUT, "%s: dataset '%s': %lld rows asked for", f->path, name, (long long)nrows);
    return read_rows(f, name, type, rank, want, row0, nrows, data, dims, flags);
}

/* ------------------------------------------------------------------------ */
/* Attribute reading                                                         */

/* Little-endian unsigned of `n` bytes; UINT64_MAX when it does not fit. */
static uint64_t decode_length(const unsigned char *p, size_t n) {
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;) {
        if (i >= 8 && p[i]) return UINT64_MAX;
        if (i < 8) v = v << 8 | p[i];
    }
    return v;
}

/* The superblock's sizes of addresses and lengths (8 unless it says otherwise). */
static void field_sizes(eb_h5 *f, size_t *addr_bytes, size_t *len_bytes) {
    *addr_bytes = *len_bytes = 8;
    hid_t fcpl = H5Fget_create_plist(f->file);
    if (fcpl >= 0) H5Pget_sizes(fcpl, addr_bytes, len_bytes);
    close_id(fcpl);
}

/* The file's bytes, mapped read-only (*bytes NULL for an empty file); munmap them. */
static eb_status map_file(eb_h5 *f, const unsigned char **bytes, size_t *size) {
    int fd = open(f->path, O_RDONLY);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb)) {
        eb_status st = eb_fail(EB_EINPUT, "%s: cannot open: %s", f->path, strerror(errno));
        if (fd >= 0) close(fd);
        return st;
    }
    *size = (size_t)sb.st_size;
    void *p = *size ? mmap(NULL, *size, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
    close(fd);
    if (p == MAP_FAILED) return eb_fail(EB_ERUNTIME, "%s: cannot map: %s", f->path, strerror(errno));
    *bytes = p;
    return EB_OK;
}

static size_t pad8(size_t n) { return (n + 7) & ~(size_t)7; }

/* One object of a global heap collection ("GCOL") whose `col_size` bytes
 * start at `col`: its header at offset p (index (2), references (2), reserved,
 * size), and the bytes it spans to the next one (header and data padded to 8;
 * a free-space object, index 0, spans its size; UINT64_MAX when the size runs
 * past the collection). 0 when no header fits at p. The one walker of both
 * heap checks below, which must step through a collection as libhdf5 does. */
typedef struct { unsigned index; uint64_t size, span; } gcol_object;
static int gcol_object_at(const unsigned char *col, uint64_t col_size, uint64_t p, size_t len_bytes, gcol_object *o) {
    const size_t header = 8 + len_bytes;
    if (p > col_size || col_size - p < header) return 0;
    o->index = col[p] | col[p + 1] << 8;
    o->size = decode_length(col + p + 8, len_bytes);
    o->span = o->size > col_size - p ? UINT64_MAX : o->index ? header + ((o->size + 7) & ~(uint64_t)7) : o->size;
    return 1;
}

/* The size of object `index` of the global heap collection at file offset
 * `at`, or UINT64_MAX when the collection holds no such object (libhdf5 1.10
 * reads a missing one from a NULL pointer, and copies a string's announced
 * length even when the object is shorter). */
static uint64_t global_heap_object_size(const unsigned char *bytes, size_t size, uint64_t at, size_t len_bytes,
                                        uint64_t index) {
    const size_t header = 8 + len_bytes; /* "GCOL", version, reserved, collection size; then the objects */
    if (!index || at > size || size - at < header || memcmp(bytes + at, "GCOL", 4)) return UINT64_MAX;
    uint64_t end = decode_length(bytes + at + 8, len_bytes);
    end = end > size - at ? size - at : end;
    gcol_object o;
    for (uint64_t p = header; gcol_object_at(bytes + at, end, p, len_bytes, &o); p += o.span) {
        if (o.index == index) return o.size; /* whether it fits its collection is check_global_heaps' to judge */
        if (!o.index || o.span == UINT64_MAX) return UINT64_MAX; /* free space ends the objects */
    }
    return UINT64_MAX;
}

/* The bytes an attribute's stored data takes: its dataspace message's element
 * count times its datatype's element size; UINT64_MAX when the dataspace
 * cannot be read or the product overflows. libhdf5 1.10 copies that many
 * bytes out of the message without checking that the message holds them. */
static uint64_t attr_data_bytes(const unsigned char *dt, const unsigned char *space, size_t space_size, size_t len_bytes) {
    if (space_size < 8) return UINT64_MAX;
    unsigned version = space[0], rank = space[1];
    if (version == 2 && space[3] == 2) return 0; /* the null dataspace: no elements */
    size_t dims_at = version == 1 ? 8 : 4;
    if (rank > 32 || dims_at + (size_t)rank * len_bytes > space_size) return UINT64_MAX;
    uint64_t bytes = decode_length(dt + 4, 4);
    for (unsigned d = 0; d < rank; d++)
        if (eb_mul_overflows_u64(bytes, decode_length(space + dims_at + d * len_bytes, len_bytes), &bytes))
            return UINT64_MAX;
    return bytes;
}

/* Whether a variable-length string element (length, heap address, object
 * index) names an object of its global heap of exactly its length (libhdf5 copies
 * the whole object into a buffer of the announced length). */
static int heap_string_fits(const unsigned char *bytes, size_t size, uint64_t base, const unsigned char *element,
                            size_t addr_bytes, size_t len_bytes) {
    uint64_t length = decode_length(element, 4);
    uint64_t object = global_heap_object_size(bytes, size, base + decode_length(element + 4, addr_bytes), len_bytes,
                                              decode_length(element + 4 + addr_bytes, 4));
    return !length || length == object; /* libhdf5 writes a string as an object of exactly its length */
}

/* libhdf5 1.10 decodes an attribute message without checking that the name,
 * datatype and dataspace it announces fit in the message: a dataspace size of
 * 2056 in a 56-byte message reads past the object header (found by
 * fuzz/fuzz_h5.c). Version 1 object headers carry no checksum, so before any
 * attribute call on an object its attribute messages are checked here in the
 * file's bytes, following continuation chunks (at most MAX_CHUNKS, which also
 * ends a cycle of them). A variable-length string attribute's first element
 * must name an object its global heap collection holds, at least as long as
 * the string (libhdf5 reads a missing one through a NULL pointer: the second
 * finding; and copies the announced length past a shorter one: the fourth), and a name must
 * end in its NUL and a compound or enum type must have room for the member
 * names it counts (libhdf5 copies names with strdup: the third finding).
 * Version 2 headers
 * are checksummed: libhdf5 refuses a changed one before decoding it. */
#define MAX_CHUNKS 64
static eb_status check_attr_messages(eb_h5 *f, hid_t obj, const char *obj_name) {
    H5O_info_t info;
    if (H5Oget_info2(obj, &info, H5O_INFO_BASIC | H5O_INFO_HDR) < 0 || info.hdr.version != 1) return EB_OK;
    size_t addr_bytes, len_bytes, size;
    field_sizes(f, &addr_bytes, &len_bytes);
    const unsigned char *bytes;
    eb_status st = map_file(f, &bytes, &size);
    if (st) return st;
    uint64_t chunk[MAX_CHUNKS][2]; /* file offset, length */
    int nchunks = 0;
    uint64_t at = (uint64_t)f->base + info.addr;
    if (at <= size && size - at >= 16) { /* version, reserved, messages, references, chunk size, padding */
        chunk[0][0] = at + 16;
        chunk[0][1] = decode_length(bytes + at + 8, 4);
        nchunks = 1;
    }
    for (int c = 0; !st && c < nchunks; c++) {
        uint64_t p = chunk[c][0], end = chunk[c][0] + chunk[c][1];
        if (end > size || end < p) end = size;
        while (!st && p <= end && end - p >= 8) { /* type (2), size (2), flags, reserved (3), body */
            unsigned type = bytes[p] | bytes[p + 1] << 8, msize = bytes[p + 2] | bytes[p + 3] << 8;
            int shared = bytes[p + 4] & 2;
            const unsigned char *body = bytes + p + 8;
            p += 8;
            if (msize > end - p) break; /* libhdf5 refuses a message past its chunk */
            if (type == 0x0c && !shared && msize >= 8) { /* attribute */
                size_t name = body[2] | body[3] << 8, dtype = body[4] | body[5] << 8, space = body[6] | body[7] << 8;
                size_t need = body[0] == 1 ? 8 + pad8(name) + pad8(dtype) + pad8(space)
                                           : (body[0] == 3 ? 9 : 8) + name + dtype + space;
                if (need > msize)
                    st = eb_fail(EB_EINPUT,
                                 "%s: corrupt HDF5 attribute message of '%s' at byte %llu: its name, type and shape "
                                 "take %zu bytes of its %u",
                                 f->path, obj_name, (unsigned long long)(p - 8), need, msize);
                else if (!name || body[(body[0] == 3 ? 9 : 8) + name - 1]) /* libhdf5 strdup()s the name */
                    st = eb_fail(EB_EINPUT, "%s: corrupt HDF5 attribute message of '%s' at byte %llu: its name is "
                                 "not terminated", f->path, obj_name, (unsigned long long)(p - 8));
                const unsigned char *dt = body + (body[0] == 1 ? 8 + pad8(name) : need - dtype - space);
                if (!st && dtype >= 8 && ((dt[0] & 15) == 6 || (dt[0] & 15) == 8)) { /* compound, enum */
                    size_t members = dt[1] | dt[2] << 8, nuls = 0; /* each has a NUL-ended name (8+ bytes in v1, v2) */
                    for (size_t k = 8; k < dtype; k++) nuls += !dt[k];
                    if (members * ((dt[0] >> 4) < 3 ? 8 : 1) > dtype - 8 || nuls < members)
                        st = eb_fail(EB_EINPUT, "%s: corrupt HDF5 attribute message of '%s' at byte %llu: its type "
                                     "names %zu members in %zu bytes", f->path, obj_name,
                                     (unsigned long long)(p - 8), members, dtype);
                }
                const unsigned char *data = body + need; /* the first element: length, heap address, index */
                if (!st && dtype >= 8 && attr_data_bytes(dt, dt + (body[0] == 1 ? pad8(dtype) : dtype), space,
                                                         len_bytes) > msize - need)
                    st = eb_fail(EB_EINPUT,
                                 "%s: corrupt HDF5 attribute message of '%s' at byte %llu: its shape and type need "
                                 "more data than the %zu bytes it holds",
                                 f->path, obj_name, (unsigned long long)(p - 8), (size_t)(msize - need));
                if (!st && dtype >= 8 && (dt[0] & 15) == 9 && decode_length(dt + 4, 4) != 8 + addr_bytes)
                    st = eb_fail(EB_EINPUT, /* libhdf5 sizes the stored elements by it, then reads 8 + addr_bytes each */
                                 "%s: corrupt HDF5 attribute message of '%s' at byte %llu: its variable-length type "
                                 "says %llu bytes an element, not %zu",
                                 f->path, obj_name, (unsigned long long)(p - 8),
                                 (unsigned long long)decode_length(dt + 4, 4), 8 + addr_bytes);
                if (!st && dtype >= 8 && (dt[0] & 15) == 9 && (dt[1] & 15) == 1 && msize - need >= 8 + addr_bytes &&
                    !heap_string_fits(bytes, size, (uint64_t)f->base, data, addr_bytes, len_bytes))
                    st = eb_fail(EB_EINPUT,
                                 "%s: corrupt HDF5 attribute message of '%s' at byte %llu: its variable-length "
                                 "string does not match the global heap object it names (missing, or not of its length)",
                                 f->path, obj_name, (unsigned long long)(p - 8));
            } else if (type == 0x10 && msize >= addr_bytes + len_bytes && nchunks < MAX_CHUNKS) { /* continuation */
                chunk[nchunks][0] = (uint64_t)f->base + decode_length(body, addr_bytes);
                chunk[nchunks][1] = decode_length(body + addr_bytes, len_bytes);
                nchunks++;
            }
            p += msize;
        }
    }
    if (bytes) munmap((void *)bytes, size);
    return st;
}

/* Opens the object at `obj` for its attribute `name`, its attribute messages checked. */
static eb_status open_attr_owner(eb_h5 *f, const char *obj, const char *name, hid_t *o) {
    *o = open_object(f->file, obj);
    if (*o < 0)
        return eb_fail(EB_EINPUT, "%s: attribute '%s': object '%s' not found", f->path, name, is_root(obj) ? "/" : obj);
    eb_status st = check_attr_messages(f, *o, is_root(obj) ? "/" : obj);
    if (st) {
        close_id(*o);
        *o = H5I_INVALID_HID;
    }
    return st;
}

static const char *object_name(const char *obj) { return is_root(obj) ? "/" : obj; }

int eb_h5_has_attr(eb_h5 *f, const char *obj, const char *name) {
    hid_t o = H5I_INVALID_HID;
    int found = name && !open_attr_owner(f, obj, name, &o) && H5Aexists(o, name) > 0;
    close_id(o);
    return found;
}

/* Opens a one-element attribute and its stored type. */
static eb_status open_attr(eb_h5 *f, const char *obj, const char *name, hid_t *attr, hid_t *ftype) {
    *attr = *ftype = H5I_INVALID_HID;
    if (!name) return eb_fail(EB_EINPUT, "%s: attribute name is NULL", f->path);
    hid_t o;
    eb_status st = open_attr_owner(f, obj, name, &o);
    if (st) return st;
    if (H5Aexists(o, name) <= 0) {
        close_id(o);
        return eb_fail(EB_EINPUT, "%s: attribute '%s' of '%s' not found", f->path, name, object_name(obj));
    }
    *attr = H5Aopen(o, name, H5P_DEFAULT);
    hid_t space = H5I_INVALID_HID;
    hssize_t npoints = -1;
    if (*attr >= 0 && (space = H5Aget_space(*attr)) >= 0) npoints = H5Sget_simple_extent_npoints(space);
    if (npoints >= 0) *ftype = H5Aget_type(*attr);
    const char *why = *ftype < 0 ? hdf5_reason() : "";
    close_id(space);
    close_id(o);
    if (*ftype < 0)
        return eb_fail(EB_EINPUT, "%s: attribute '%s' of '%s' cannot be read (HDF5: %s)", f->path, name,
                       object_name(obj), why);
    if (npoints != 1)
        return eb_fail(EB_EINPUT, "%s: attribute '%s' of '%s' has %lld elements, expected a scalar", f->path, name,
                       object_name(obj), (long long)npoints);
    return EB_OK;
}

static eb_status attr_fail_type(eb_h5 *f, const char *obj, const char *name, hid_t ftype, const char *expected) {
    char tname[32];
    return eb_fail(EB_EINPUT, "%s: attribute '%s' of '%s' has type %s, expected %s", f->path, name, object_name(obj),
                   describe_type(ftype, tname), expected);
}

static eb_status attr_read(eb_h5 *f, const char *obj, const char *name, hid_t attr, hid_t mem, void *v) {
    if (H5Aread(attr, mem, v) >= 0) return EB_OK;
    return eb_fail(EB_EINPUT, "%s: attribute '%s' of '%s' cannot be read (HDF5: %s)", f->path, name,
                   object_name(obj), hdf5_reason());
}

/* Reads an integer attribute as int64, range-checked (unsigned 64-bit values may not fit). */
static eb_status attr_int(eb_h5 *f, const char *obj, const char *name, hid_t attr, hid_t ftype, int64_t *v) {
    if (H5Tget_sign(ftype) == H5T_SGN_NONE && H5Tget_size(ftype) >= 8) {
        uint64_t u;
        eb_status st = attr_read(f, obj, name, attr, H5T_NATIVE_UINT64, &u);
        if (st) return st;
        if (u > (uint64_t)INT64_MAX)
            return eb_fail(EB_EINPUT, "%s: attribute '%s' of '%s' value %llu does not fit int64", f->path, name,
                           object_name(obj), (unsigned long long)u);
        *v = (int64_t)u;
        return EB_OK;
    }
    return attr_read(f, obj, name, attr, H5T_NATIVE_INT64, v);
}

eb_status eb_h5_attr_f64(eb_h5 *f, const char *obj, const char *name, double *v) {
    hid_t attr, ftype;
    eb_status st = open_attr(f, obj, name, &attr, &ftype);
    if (!st) {
        H5T_class_t cls = H5Tget_class(ftype);
        int64_t i;
        if (cls == H5T_FLOAT) st = attr_read(f, obj, name, attr, H5T_NATIVE_DOUBLE, v);
        else if (cls == H5T_INTEGER) {
            if (!(st = attr_int(f, obj, name, attr, ftype, &i))) *v = (double)i;
        } else st = attr_fail_type(f, obj, name, ftype, "a number");
    }
    close_id(ftype);
    close_id(attr);
    return st;
}

eb_status eb_h5_attr_i64(eb_h5 *f, const char *obj, const char *name, int64_t *v) {
    hid_t attr, ftype;
    eb_status st = open_attr(f, obj, name, &attr, &ftype);
    if (!st) {
        if (H5Tget_class(ftype) == H5T_INTEGER) st = attr_int(f, obj, name, attr, ftype, v);
        else st = attr_fail_type(f, obj, name, ftype, "an integer");
    }
    close_id(ftype);
    close_id(attr);
    return st;
}

/* Variable-length strings live in global heap collections ("GCOL"), which
 * libhdf5 1.10 decodes object by object: a free-space object of size 0 makes it
 * loop forever, and it does not check that an object ends inside its
 * collection. So before the first such read every collection in the file is
 * walked the same way, and one that would not advance or runs past its end is
 * refused. Byte runs that only look like a signature (wrong version, nonzero
 * reserved bytes, a size past the end of the file) are not collections libhdf5
 * could load: they are skipped. */
static eb_status check_global_heaps(eb_h5 *f) {
    if (f->heaps_checked) return EB_OK;
    size_t addr_bytes, len_bytes;
    field_sizes(f, &addr_bytes, &len_bytes);
    const size_t header = 8 + len_bytes; /* signature, version, reserved, collection size */
    const unsigned char *bytes;
    size_t file_size;
    eb_status st = map_file(f, &bytes, &file_size);
    if (st) return st;
    const unsigned char *at = bytes, *file_end = bytes + file_size;
    while (!st && (size_t)(file_end - at) >= header) {
        at = memmem(at, (size_t)(file_end - at) - header + 4, "GCOL", 4);
        if (!at) break;
        uint64_t size = decode_length(at + 8, len_bytes);
        int plausible = at[4] == 1 && !at[5] && !at[6] && !at[7] && size >= header &&
                        size <= (uint64_t)(file_end - at);
        gcol_object o; /* a tail too short for an object header is free space */
        for (uint64_t p = header; plausible && !st && gcol_object_at(at, size, p, len_bytes, &o); p += o.span)
            if (o.span == 0 || o.span > size - p)
                st = eb_fail(EB_EINPUT,
                             "%s: corrupt HDF5 global heap (variable-length data) at byte %zu: object %u of "
                             "size %llu %s",
                             f->path, (size_t)(at - bytes) + (size_t)p, o.index, (unsigned long long)o.size,
                             o.span == 0 ? "does not advance" : "runs past its collection");
        at += 4;
    }
    if (bytes) munmap((void *)bytes, file_size);
    f->heaps_checked = !st;
    return st;
}

eb_status eb_h5_attr_str(eb_h5 *f, const char *obj, const char *name, char **s) {
    *s = NULL;
    hid_t attr, ftype, mem = H5I_INVALID_HID;
    eb_status st = open_attr(f, obj, name, &attr, &ftype);
    if (!st && H5Tget_class(ftype) != H5T_STRING) st = attr_fail_type(f, obj, name, ftype, "a string");
    if (!st && H5Tis_variable_str(ftype) > 0 && !(st = check_global_heaps(f))) {
        char *p = NULL;
        mem = H5Tcopy(H5T_C_S1);
        H5Tset_size(mem, H5T_VARIABLE);
        H5Tset_cset(mem, H5Tget_cset(ftype));
        if (!(st = attr_read(f, obj, name, attr, mem, &p))) {
            *s = strdup(p ? p : "");
            H5free_memory(p);
        }
    } else if (!st) {
        size_t size = H5Tget_size(ftype);
        char *p = calloc(size + 1, 1); /* fixed-length strings need not be terminated */
        if (p && !(st = attr_read(f, obj, name, attr, ftype, p))) *s = p;
        else free(p);
    }
    if (!st && !*s) st = eb_fail(EB_ERUNTIME, "%s: attribute '%s' of '%s': out of memory", f->path, name,
                                 object_name(obj));
    close_id(mem);
    close_id(ftype);
    close_id(attr);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Atomic writing                                                            */

struct eb_h5w {
    hid_t file;
    eb_atomic out;   /* HDF5 writes out.tmp by name; renamed onto out.path at commit */
    int deflate;     /* 0 = contiguous datasets                      */
    eb_status failed;
    char *error;     /* message of the first failure                 */
};

void eb_h5w_remove_temps(void) { eb_atomic_remove_temps(); }

/* Closes and removes the temporary file after a failure; the message of the
 * failure (already set) is kept for later calls. Returns the status. */
static eb_status poison(eb_h5w *w, eb_status st) {
    if (w->failed) return st;
    w->failed = st;
    w->error = strdup(eb_last_error());
    if (w->file >= 0) H5Fclose(w->file);
    w->file = H5I_INVALID_HID;
    eb_atomic_abort(&w->out);
    return st;
}

/* The status of an earlier failure, re-raised with its message. */
static eb_status refail(eb_h5w *w) {
    return eb_fail(w->failed, "%s", w->error ? w->error : "HDF5 writer failed earlier");
}

static void free_writer(eb_h5w *w) {
    free(w->error);
    free(w);
}

eb_status eb_h5w_create(eb_h5w **out, const char *path) {
    *out = NULL;
    if (!path || !path[0]) return eb_fail(EB_EINPUT, "HDF5 output: empty file name");
    eb_h5w *w = calloc(1, sizeof *w);
    if (!w) return eb_fail(EB_ERUNTIME, "%s: out of memory", path);
    w->file = H5I_INVALID_HID;
    eb_status st = eb_atomic_open(&w->out, path);
    if (st) {
        free_writer(w);
        return st;
    }
    silence_hdf5();
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
    w->file = H5Fcreate(w->out.tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    const char *why = w->file < 0 ? hdf5_reason() : "";
    H5Pclose(fapl);
    if (w->file < 0) {
        st = eb_fail(EB_ERUNTIME, "%s: cannot create HDF5 file %s (HDF5: %s)", path, w->out.tmp, why);
        eb_atomic_abort(&w->out);
        free_writer(w);
        return st;
    }
    *out = w;
    return EB_OK;
}

void eb_h5w_set_deflate(eb_h5w *w, int level) { w->deflate = level < 0 ? 0 : level > 9 ? 9 : level; }

/* Chunks of about 2^18 elements that keep the trailing extents whole where
 * they fit: chunk (rank). */
static void choose_chunk(hsize_t *chunk, const int64_t *dims, int rank) {
    const int64_t target = (int64_t)1 << 18;
    int64_t inner = 1; /* elements of one chunk below dimension d */
    for (int d = rank - 1; d >= 0; d--) {
        int64_t fit = target / inner;
        chunk[d] = (hsize_t)(fit < 1 ? 1 : dims[d] < fit ? dims[d] : fit);
        inner *= (int64_t)chunk[d];
    }
}

/* Files are always little-endian IEEE / two's complement, whatever the host. */
static hid_t file_type(eb_h5_type t) {
    return t == EB_H5_F32 ? H5T_IEEE_F32LE : t == EB_H5_F64 ? H5T_IEEE_F64LE
                         : t == EB_H5_I32 ? H5T_STD_I32LE : H5T_STD_I64LE;
}

static hid_t mem_type(eb_h5_type t) {
    return t == EB_H5_F32 ? H5T_NATIVE_FLOAT : t == EB_H5_F64 ? H5T_NATIVE_DOUBLE
                         : t == EB_H5_I32 ? H5T_NATIVE_INT32 : H5T_NATIVE_INT64;
}

/* Link creation that makes missing parent groups. */
static hid_t make_parents(void) {
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    return lcpl;
}

eb_status eb_h5w_write(eb_h5w *w, const char *name, eb_h5_type type, const void *data, int rank,
                       const int64_t *dims) {
    if (w->failed) return refail(w);
    char shape[EB_INDEX_STR_MAX];
    if (is_root(name)) return poison(w, eb_fail(EB_EINPUT, "%s: dataset name is empty or '/'", w->out.path));
    if ((unsigned)type > EB_H5_I64 || rank < 0 || rank > EB_H5_MAX_RANK || (rank && !dims))
        return poison(w, eb_fail(EB_EINPUT, "%s: dataset '%s': bad type or rank %d", w->out.path, name, rank));
    for (int d = 0; d < rank; d++)
        if (dims[d] < 0)
            return poison(w, eb_fail(EB_EINPUT, "%s: dataset '%s': extent %d is negative (%lld)", w->out.path, name, d,
                                     (long long)dims[d]));
    int64_t n = eb_checked_count(dims, rank, EB_H5_MAX_ELEMS);
    if (n < 0)
        return poison(w, eb_fail(EB_EINPUT, "%s: dataset '%s': dims %s exceed %lld elements", w->out.path, name,
                                 eb_format_dims(shape, sizeof shape, dims, rank), (long long)EB_H5_MAX_ELEMS));
    if (n && !data) return poison(w, eb_fail(EB_EINPUT, "%s: dataset '%s': no data", w->out.path, name));
    if (kind_of(w->file, name) != EB_H5_NONE)
        return poison(w, eb_fail(EB_EINPUT, "%s: dataset '%s' already exists", w->out.path, name));

    hsize_t h[EB_H5_MAX_RANK], chunk[EB_H5_MAX_RANK];
    for (int d = 0; d < rank; d++) h[d] = (hsize_t)dims[d];
    hid_t space = rank ? H5Screate_simple(rank, h, NULL) : H5Screate(H5S_SCALAR);
    hid_t lcpl = make_parents(), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (w->deflate && rank && n >= EB_H5_DEFLATE_MIN) {
        choose_chunk(chunk, dims, rank);
        H5Pset_chunk(dcpl, rank, chunk);
        H5Pset_shuffle(dcpl);
        H5Pset_deflate(dcpl, (unsigned)w->deflate);
    }
    eb_status st = EB_OK;
    hid_t ds = H5Dcreate2(w->file, name, file_type(type), space, lcpl, dcpl, H5P_DEFAULT);
    if (ds < 0)
        st = eb_fail(EB_ERUNTIME, "%s: cannot create dataset '%s' (HDF5: %s)", w->out.path, name, hdf5_reason());
    else if (n && H5Dwrite(ds, mem_type(type), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        st = eb_fail(EB_ERUNTIME, "%s: cannot write dataset '%s' (HDF5: %s)", w->out.path, name, hdf5_reason());
    close_id(ds);
    close_id(dcpl);
    close_id(lcpl);
    close_id(space);
    return st ? poison(w, st) : EB_OK;
}

eb_status eb_h5w_group(eb_h5w *w, const char *path) {
    if (w->failed) return refail(w);
    eb_h5_kind kind = kind_of(w->file, path);
    if (kind == EB_H5_GROUP) return EB_OK;
    if (kind == EB_H5_DATASET)
        return poison(w, eb_fail(EB_EINPUT, "%s: group '%s' is already a dataset", w->out.path, path));
    hid_t lcpl = make_parents();
    hid_t g = H5Gcreate2(w->file, path, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    eb_status st = g < 0 ? eb_fail(EB_ERUNTIME, "%s: cannot create group '%s' (HDF5: %s)", w->out.path, path,
                                   hdf5_reason())
                         : EB_OK;
    close_id(g);
    close_id(lcpl);
    return st ? poison(w, st) : EB_OK;
}

/* Writes a scalar attribute of file type ftype from v (memory type mem). */
static eb_status write_attr(eb_h5w *w, const char *obj, const char *name, hid_t ftype, hid_t mem, const void *v) {
    if (w->failed) return refail(w);
    if (!name || !name[0]) return poison(w, eb_fail(EB_EINPUT, "%s: attribute name is empty", w->out.path));
    hid_t o = open_object(w->file, obj);
    if (o < 0)
        return poison(w, eb_fail(EB_EINPUT, "%s: attribute '%s': object '%s' not found", w->out.path, name,
                                 object_name(obj)));
    eb_status st = EB_OK;
    if (H5Aexists(o, name) > 0 && H5Adelete(o, name) < 0)
        st = eb_fail(EB_ERUNTIME, "%s: cannot replace attribute '%s' of '%s' (HDF5: %s)", w->out.path, name,
                     object_name(obj), hdf5_reason());
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = st ? H5I_INVALID_HID : H5Acreate2(o, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
    if (!st && (attr < 0 || H5Awrite(attr, mem, v) < 0))
        st = eb_fail(EB_ERUNTIME, "%s: cannot write attribute '%s' of '%s' (HDF5: %s)", w->out.path, name,
                     object_name(obj), hdf5_reason());
    close_id(attr);
    close_id(space);
    close_id(o);
    return st ? poison(w, st) : EB_OK;
}

eb_status eb_h5w_attr_f64(eb_h5w *w, const char *obj, const char *name, double v) {
    return write_attr(w, obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v);
}

eb_status eb_h5w_attr_i64(eb_h5w *w, const char *obj, const char *name, int64_t v) {
    return write_attr(w, obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v);
}

eb_status eb_h5w_attr_str(eb_h5w *w, const char *obj, const char *name, const char *s) {
    if (w->failed) return refail(w);
    if (!s) return poison(w, eb_fail(EB_EINPUT, "%s: attribute '%s': NULL string", w->out.path, name ? name : ""));
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    H5Tset_cset(type, H5T_CSET_UTF8);
    eb_status st = write_attr(w, obj, name, type, type, &s);
    close_id(type);
    return st;
}

eb_status eb_h5w_commit(eb_h5w *w) {
    eb_status st = EB_OK;
    if (w->failed) st = refail(w);
    else if (H5Fflush(w->file, H5F_SCOPE_GLOBAL) < 0 || H5Fclose(w->file) < 0)
        st = poison(w, eb_fail(EB_ERUNTIME, "%s: cannot finish writing %s (HDF5: %s)", w->out.path, w->out.tmp,
                               hdf5_reason()));
    else {
        w->file = H5I_INVALID_HID;
        st = eb_atomic_commit(&w->out);
    }
    free_writer(w);
    return st;
}

void eb_h5w_abort(eb_h5w *w) {
    if (!w) return;
    if (w->file >= 0) H5Fclose(w->file);
    eb_atomic_abort(&w->out);
    free_writer(w);
}
