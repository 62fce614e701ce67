/* h5parts.c — per-rank part files and their merge in index order (h5parts.h). */
#include "runtime/h5parts.h"
#include "runtime/clock.h"

#include "runtime/npz.h"

#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MERGE_CHUNK_BYTES ((size_t)16 << 20) /* rows copied per read / write */

/* What eb_parts_remove_temps unlinks: written only outside signal handlers. */
static char own_part[4096], merge_temp[4096 + 32];

const char *eb_part_path(char *buf, size_t cap, const char *path, int rank, int size) {
    int len = snprintf(buf, cap, "%s.part-%d-of-%d", path, rank, size);
    return len >= 0 && (size_t)len < cap ? buf : NULL;
}

eb_status eb_parts_target(const eb_comm *c, const char *path, const char **target) {
    *target = path;
    if (c->size == 1) return EB_OK;
    if (!eb_part_path(own_part, sizeof own_part, path, c->rank, c->size)) {
        own_part[0] = 0;
        return eb_fail(EB_EINPUT, "%s: the name is too long for its part files", path);
    }
    *target = own_part;
    return EB_OK;
}

void eb_parts_remove_temps(void) {
    if (own_part[0]) unlink(own_part);
    if (merge_temp[0]) unlink(merge_temp);
}

/* ------------------------------------------------------------------------ */
/* HDF5                                                                      */

typedef struct {
    hid_t *src;                /* the parts, open read-only */
    hid_t dst;
    int n;
    const char *const *parts;
    eb_status st;
} h5_merge;

/* H5Aiterate2 callback: copies attribute `name` of `loc` onto the object `*op`, in the file's own type. */
static herr_t copy_attr(hid_t loc, const char *name, const H5A_info_t *info, void *op) {
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT), type = H5Aget_type(a), space = H5Aget_space(a), b = -1;
    hssize_t count = H5Sget_simple_extent_npoints(space);
    void *buf = count >= 0 ? calloc((size_t)count + 1, H5Tget_size(type)) : NULL;
    herr_t err = a < 0 || type < 0 || space < 0 || !buf || H5Aread(a, type, buf) < 0 ? -1 : 0;
    if (!err) b = H5Acreate2(*(hid_t *)op, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    if (!err && (b < 0 || H5Awrite(b, type, buf) < 0)) err = -1;
    if (buf && (H5Tdetect_class(type, H5T_VLEN) > 0 || H5Tis_variable_str(type) > 0))
        H5Dvlen_reclaim(type, space, H5P_DEFAULT, buf);
    free(buf);
    if (b >= 0) H5Aclose(b);
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    if (a >= 0) H5Aclose(a);
    return err;
}

static eb_status copy_attrs(h5_merge *m, hid_t from, hid_t to, const char *obj) {
    if (H5Aiterate2(from, H5_INDEX_NAME, H5_ITER_INC, NULL, copy_attr, &to) < 0)
        return eb_fail(EB_ERUNTIME, "%s: cannot copy the attributes of '%s'", m->parts[0], obj);
    return EB_OK;
}

/* Copies rows [0, rows) of dataset `from` (extents dims[rank]) into rows [at, at + rows) of `to`. */
static eb_status copy_rows(hid_t from, hid_t to, hid_t type, int rank, const hsize_t *dims, hsize_t rows, hsize_t at,
                           hsize_t total, void *buf, hsize_t chunk_rows) {
    hsize_t start[H5S_MAX_RANK] = {0}, count[H5S_MAX_RANK], full[H5S_MAX_RANK];
    memcpy(count, dims, rank * sizeof *dims);
    memcpy(full, dims, rank * sizeof *dims);
    full[0] = total;
    hid_t fs = H5Dget_space(from), ts = H5Screate_simple(rank, full, NULL);
    eb_status st = fs < 0 || ts < 0 ? EB_ERUNTIME : EB_OK;
    for (hsize_t r = 0; !st && r < rows; r += chunk_rows) {
        count[0] = rows - r < chunk_rows ? rows - r : chunk_rows;
        hid_t ms = H5Screate_simple(rank, count, NULL);
        start[0] = r;
        if (ms < 0 || H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
            H5Dread(from, type, ms, fs, H5P_DEFAULT, buf) < 0)
            st = EB_EINPUT;
        start[0] = at + r;
        if (!st && (H5Sselect_hyperslab(ts, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
                    H5Dwrite(to, type, ms, ts, H5P_DEFAULT, buf) < 0))
            st = EB_ERUNTIME;
        if (ms >= 0) H5Sclose(ms);
    }
    if (fs >= 0) H5Sclose(fs);
    if (ts >= 0) H5Sclose(ts);
    return st;
}

/* Dataset `name`: the parts' rows concatenated; a scalar copied from part 0. */
static eb_status merge_dataset(h5_merge *m, const char *name) {
    hid_t *d = calloc(m->n, sizeof *d), type = -1, dcpl = -1, out = -1;
    hsize_t *rows = calloc(m->n, sizeof *rows), dims[H5S_MAX_RANK], total = 0;
    void *buf = NULL;
    int rank = -1;
    eb_status st = d && rows ? EB_OK : eb_fail(EB_ERUNTIME, "out of memory merging '%s'", name);
    for (int p = 0; !st && p < m->n; p++) {
        hsize_t e[H5S_MAX_RANK];
        hid_t t = -1, s = -1;
        int r = (d[p] = H5Dopen2(m->src[p], name, H5P_DEFAULT)) < 0 ? -1
                : (t = H5Dget_type(d[p])) < 0 || (s = H5Dget_space(d[p])) < 0 ? -1
                                                                               : H5Sget_simple_extent_ndims(s);
        if (r >= 0 && r <= H5S_MAX_RANK) H5Sget_simple_extent_dims(s, e, NULL);
        if (p == 0 && r >= 0) {
            rank = r;
            memcpy(dims, e, r * sizeof *e);
            type = H5Tcopy(t);
        }
        int same = r == rank && (p == 0 || H5Tequal(t, type) > 0);
        for (int k = 1; same && k < r; k++) same = e[k] == dims[k];
        if (r < 0 || !same)
            st = eb_fail(EB_EINPUT, "%s: dataset '%s' %s part 0's", m->parts[p], name,
                         r < 0 ? "is missing or unreadable, unlike" : "differs in type or shape from");
        rows[p] = r > 0 ? e[0] : 0;
        total += rows[p];
        if (t >= 0) H5Tclose(t);
        if (s >= 0) H5Sclose(s);
    }
    if (!st && rank == 0 && H5Ocopy(m->src[0], name, m->dst, name, H5P_DEFAULT, H5P_DEFAULT) < 0)
        st = eb_fail(EB_ERUNTIME, "cannot copy scalar dataset '%s'", name);
    if (!st && rank > 0) {
        hsize_t full[H5S_MAX_RANK], row_bytes = H5Tget_size(type);
        memcpy(full, dims, rank * sizeof *dims);
        full[0] = total;
        for (int k = 1; k < rank; k++) row_bytes *= dims[k];
        hsize_t chunk_rows = row_bytes && MERGE_CHUNK_BYTES / row_bytes ? MERGE_CHUNK_BYTES / row_bytes : 1;
        hid_t space = H5Screate_simple(rank, full, NULL);
        dcpl = H5Dget_create_plist(d[0]); /* part 0's layout and filters */
        if (space >= 0 && dcpl >= 0) out = H5Dcreate2(m->dst, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
        if (space >= 0) H5Sclose(space);
        if (out < 0) st = eb_fail(EB_ERUNTIME, "cannot create dataset '%s' of %llu rows", name, (unsigned long long)total);
        if (!st) st = copy_attrs(m, d[0], out, name);
        if (!st && !(buf = malloc(chunk_rows * row_bytes + 1)))
            st = eb_fail(EB_ERUNTIME, "out of memory for %llu rows of '%s'", (unsigned long long)chunk_rows, name);
        hsize_t at = 0;
        for (int p = 0; !st && p < m->n; p++) {
            dims[0] = rows[p];
            if ((st = copy_rows(d[p], out, type, rank, dims, rows[p], at, total, buf, chunk_rows)))
                st = eb_fail(st, "%s: cannot %s rows of dataset '%s'", st == EB_EINPUT ? m->parts[p] : "merge",
                             st == EB_EINPUT ? "read the" : "write the", name);
            at += rows[p];
        }
    }
    free(buf);
    if (out >= 0) H5Dclose(out);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (type >= 0) H5Tclose(type);
    for (int p = 0; d && p < m->n; p++)
        if (d[p] > 0) H5Dclose(d[p]);
    free(d);
    free(rows);
    return st;
}

/* H5Lvisit callback over part 0 (parents before children): groups made, datasets merged. */
static herr_t merge_object(hid_t root, const char *name, const H5L_info_t *info, void *op) {
    h5_merge *m = op;
    hid_t obj = H5Oopen(root, name, H5P_DEFAULT);
    H5I_type_t kind = obj < 0 ? H5I_BADID : H5Iget_type(obj);
    if (kind == H5I_GROUP) {
        hid_t g = H5Gcreate2(m->dst, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        m->st = g < 0 ? eb_fail(EB_ERUNTIME, "cannot create group '%s'", name) : copy_attrs(m, obj, g, name);
        if (g >= 0) H5Gclose(g);
    } else if (kind == H5I_DATASET) {
        m->st = merge_dataset(m, name);
    } else {
        m->st = eb_fail(EB_EINPUT, "%s: '%s' is neither a group nor a dataset", m->parts[0], name);
    }
    if (obj >= 0) H5Oclose(obj);
    return m->st ? -1 : 0;
}

eb_status eb_h5_merge_parts(const char *path, const char *const *parts, int n) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    h5_merge m = {.src = calloc(n, sizeof(hid_t)), .n = n, .parts = parts, .dst = -1};
    if (!m.src) return eb_fail(EB_ERUNTIME, "out of memory merging %d parts", n);
    for (int p = 0; !m.st && p < n; p++)
        if ((m.src[p] = H5Fopen(parts[p], H5F_ACC_RDONLY, H5P_DEFAULT)) < 0)
            m.st = eb_fail(EB_EINPUT, "%s: cannot open the part file (missing or not HDF5)", parts[p]);
    snprintf(merge_temp, sizeof merge_temp, "%s.tmp.%ld", path, (long)getpid());
    if (!m.st && (m.dst = H5Fcreate(merge_temp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT)) < 0)
        m.st = eb_fail(EB_EINPUT, "%s: cannot create the file", merge_temp);
    if (!m.st) m.st = copy_attrs(&m, m.src[0], m.dst, "/");
    if (!m.st && H5Lvisit(m.src[0], H5_INDEX_NAME, H5_ITER_INC, merge_object, &m) < 0 && !m.st)
        m.st = eb_fail(EB_EINPUT, "%s: cannot list its objects", parts[0]);
    if (m.dst >= 0 && H5Fclose(m.dst) < 0 && !m.st) m.st = eb_fail(EB_ERUNTIME, "%s: cannot close the file", merge_temp);
    for (int p = 0; p < n; p++)
        if (m.src[p] > 0) H5Fclose(m.src[p]);
    free(m.src);
    if (!m.st && rename(merge_temp, path)) m.st = eb_fail(EB_ERUNTIME, "%s: cannot rename the merged file", path);
    if (m.st) unlink(merge_temp);
    merge_temp[0] = 0;
    return m.st;
}

/* ------------------------------------------------------------------------ */
/* .npz                                                                      */

/* Member `name`: the parts' rows concatenated through w's current member (a scalar from part 0). */
static eb_status merge_member(eb_npz_writer *w, eb_npz **z, const char *const *parts, int n, const char *name,
                              void *buf) {
    eb_npz_member **mem = calloc(n, sizeof *mem);
    eb_npy_header *h = calloc(n, sizeof *h);
    eb_status st = mem && h ? EB_OK : eb_fail(EB_ERUNTIME, "out of memory merging member '%s'", name);
    int64_t shape[EB_NPY_MAX_RANK];
    for (int p = 0; !st && p < n; p++) {
        if ((st = eb_npz_member_open(&mem[p], z[p], name, &h[p]))) break;
        int same = h[p].dtype == h[0].dtype && h[p].rank == h[0].rank;
        for (int k = 1; same && k < h[0].rank; k++) same = h[p].shape[k] == h[0].shape[k];
        if (!same) st = eb_fail(EB_EINPUT, "%s: member '%s' differs in dtype or shape from part 0's", parts[p], name);
        if (p == 0) memcpy(shape, h[0].shape, sizeof shape);
        else if (h[0].rank > 0) shape[0] += h[p].shape[0];
    }
    if (!st) st = eb_npz_begin(w, name, h[0].dtype, h[0].rank, shape);
    for (int p = 0; !st && p < (h[0].rank ? n : 1); p++)
        for (uint64_t done = 0; !st && done < h[p].data_bytes; done += MERGE_CHUNK_BYTES) {
            size_t bytes = h[p].data_bytes - done < MERGE_CHUNK_BYTES ? h[p].data_bytes - done : MERGE_CHUNK_BYTES;
            if (!(st = eb_npz_member_read(mem[p], buf, bytes))) st = eb_npz_append(w, buf, bytes);
        }
    for (int p = 0; mem && p < n; p++) eb_npz_member_close(mem[p]);
    free(mem);
    free(h);
    return st;
}

eb_status eb_npz_merge_parts(const char *path, const char *const *parts, int n, const char *const *members) {
    eb_npz **z = calloc(n, sizeof *z);
    void *buf = malloc(MERGE_CHUNK_BYTES);
    eb_npz_writer *w = NULL;
    eb_status st = z && buf ? EB_OK : eb_fail(EB_ERUNTIME, "out of memory merging %d parts", n);
    for (int p = 0; !st && p < n; p++) st = eb_npz_open(&z[p], parts[p]);
    if (!st) st = eb_npz_create(&w, path);
    for (int k = 0; !st && members[k]; k++) st = merge_member(w, z, parts, n, members[k], buf);
    if (w && st) eb_npz_abort(w);
    else if (w) st = eb_npz_close(w);
    for (int p = 0; z && p < n; p++)
        if (z[p]) eb_npz_close_reader(z[p]);
    free(z);
    free(buf);
    return st;
}

/* ------------------------------------------------------------------------ */
/* The collective finish                                                     */

static eb_status merge_on_root(const eb_comm *c, const char *path, const char *const *npz_members) {
    char **parts = calloc(c->size, sizeof *parts);
    eb_status st = parts ? EB_OK : eb_fail(EB_ERUNTIME, "out of memory naming %d parts", c->size);
    const size_t cap = strlen(path) + 32;
    for (int r = 0; !st && r < c->size; r++)
        if (!(parts[r] = malloc(cap)) || !eb_part_path(parts[r], cap, path, r, c->size))
            st = eb_fail(EB_ERUNTIME, "out of memory naming part %d", r);
    const size_t len = strlen(path);
    if (!st)
        st = len > 4 && !strcmp(path + len - 4, ".npz")
                 ? eb_npz_merge_parts(path, (const char *const *)parts, c->size, npz_members)
                 : eb_h5_merge_parts(path, (const char *const *)parts, c->size);
    for (int r = 0; parts && r < c->size; r++) free(parts[r]);
    free(parts);
    return st;
}

eb_status eb_parts_finish(const eb_comm *c, const char *path, const char *const *npz_members, eb_status st,
                          double *merge_seconds) {
    if (merge_seconds) *merge_seconds = 0;
    if (c->size == 1) return st;
    if (!(st = eb_comm_agree(c, st))) {
        if (c->rank == 0) {
            double t0 = eb_now_seconds();
            st = merge_on_root(c, path, npz_members);
            if (merge_seconds) *merge_seconds = eb_now_seconds() - t0;
        }
        st = eb_comm_agree(c, st);
    }
    eb_parts_remove_temps();
    own_part[0] = 0;
    return st;
}
