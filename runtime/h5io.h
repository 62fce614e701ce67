/* h5io.h — HDF5 reading and atomic writing for every ebcache command.
 *
 * Reading: eb_h5_open a file, then read datasets by path ("x",
 * "/fixed_small/i49/mean") converted to the element type the caller asks for,
 * with rank and extents checked against what the caller expects.
 * Writing: eb_h5w_create writes "<path>.tmp.<pid>" next to the final path and
 * eb_h5w_commit renames it into place, so a reader never sees a half-written
 * file and a failed or aborted write leaves nothing behind.
 *
 * HDF5's own error printing is silenced: every failure is an eb_status whose
 * message names the file and the dataset or attribute (plus HDF5's innermost
 * reason where it has one). Bad or corrupt files are EB_EINPUT. A file never
 * makes us open another: external links, external raw-data storage and
 * virtual datasets are refused. Where libhdf5 1.10 trusts a size the file
 * states (global heap objects, compact storage, attribute messages), h5io.c
 * checks it in the file's bytes first (each such check answers a fuzz_h5
 * finding: docs/fuzzing.md).
 * Serial libhdf5 is not thread-safe: use these functions from one thread.
 */
#ifndef EB_H5IO_H
#define EB_H5IO_H

#include <stdint.h>

#include "runtime/ebcache.h"

typedef enum { EB_H5_F32, EB_H5_F64, EB_H5_I32, EB_H5_I64 } eb_h5_type;

#define EB_H5_MAX_RANK 8
#define EB_H5_MAX_ELEMS ((int64_t)1 << 31) /* larger datasets are refused          */
#define EB_H5_ANY (-1)                     /* in expected extents: any size matches */
#define EB_H5_FINITE 1                     /* read flag: refuse NaN / Inf           */

/* ------------------------------------------------------------------------ */
/* Reading                                                                   */

typedef struct eb_h5 eb_h5;

/* Opens an HDF5 file for reading. EB_EINPUT naming the file when it is
 * missing, unreadable, not HDF5, or truncated / corrupt. *out is NULL on failure. */
eb_status eb_h5_open(eb_h5 **out, const char *path);
void eb_h5_close(eb_h5 *f);
/* The path the file was opened with (for the caller's own messages). */
const char *eb_h5_path(const eb_h5 *f);

typedef enum { EB_H5_NONE = 0, EB_H5_DATASET = 1, EB_H5_GROUP = 2 } eb_h5_kind;

/* What `path` names: a dataset, a group ("/" is the root group) or nothing. */
eb_h5_kind eb_h5_lookup(eb_h5 *f, const char *path);

/* Rank and extents of dataset `name` without reading it; dims needs
 * EB_H5_MAX_RANK entries. EB_EINPUT when it is missing or not an array. */
eb_status eb_h5_shape(eb_h5 *f, const char *name, int *rank, int64_t dims[EB_H5_MAX_RANK]);

/* Reads dataset `name` as `type` into a malloc'd buffer *data (free() it).
 * Float types accept stored floats of any precision (values beyond float32's
 * range are refused when reading EB_H5_F32); integer types accept any stored
 * integer type whose values fit. The dataset must have rank `rank`; when
 * `want` (rank) is not NULL, each want[d] ≥ 0 must equal extent d
 * (EB_H5_ANY matches any). dims (rank) receives the extents (NULL is fine
 * for rank 0). flags: EB_H5_FINITE refuses a NaN / Inf (float types), naming
 * its multi-index.
 * A dataset of more than EB_H5_MAX_ELEMS elements is refused. Mismatches are
 * EB_EINPUT naming the file, the dataset, what was expected and what was
 * found. *data is NULL on failure. */
eb_status eb_h5_read(eb_h5 *f, const char *name, eb_h5_type type, int rank, const int64_t *want, void **data,
                     int64_t *dims, int flags);

/* eb_h5_read of rows [row0, row0 + nrows) along axis 0 only (rank ≥ 1): an
 * HDF5 hyperslab read, so the other rows are never read (one rank's share
 * of a dataset). want and flags as eb_h5_read; dims (rank) receives the
 * whole dataset's extents, and *data holds nrows·dims[1]·…·dims[rank−1]
 * elements (nrows may be 0); EB_H5_MAX_ELEMS limits the rows read. Rows
 * past dims[0] are EB_EINPUT naming them; a non-finite value is named by
 * its index within the rows read. */
eb_status eb_h5_read_rows(eb_h5 *f, const char *name, eb_h5_type type, int rank, const int64_t *want, int64_t row0,
                          int64_t nrows, void **data, int64_t *dims, int flags);

/* Typed forms of eb_h5_read. */
static inline eb_status eb_h5_read_f32(eb_h5 *f, const char *name, int rank, const int64_t *want, float **data,
                                       int64_t *dims, int flags) {
    void *p;
    eb_status st = eb_h5_read(f, name, EB_H5_F32, rank, want, &p, dims, flags);
    *data = p;
    return st;
}
static inline eb_status eb_h5_read_f64(eb_h5 *f, const char *name, int rank, const int64_t *want, double **data,
                                       int64_t *dims, int flags) {
    void *p;
    eb_status st = eb_h5_read(f, name, EB_H5_F64, rank, want, &p, dims, flags);
    *data = p;
    return st;
}
static inline eb_status eb_h5_read_i32(eb_h5 *f, const char *name, int rank, const int64_t *want, int32_t **data,
                                       int64_t *dims) {
    void *p;
    eb_status st = eb_h5_read(f, name, EB_H5_I32, rank, want, &p, dims, 0);
    *data = p;
    return st;
}

/* Scalar attributes (a scalar or one-element attribute) of the object at
 * `obj` — a dataset or group path, NULL or "/" for the root. The double form
 * accepts stored floats and integers, the int64 form integers that fit, the
 * string form fixed or variable-length strings (*s is malloc'd, free() it).
 * EB_EINPUT naming file, object and attribute when missing or of another type. */
int eb_h5_has_attr(eb_h5 *f, const char *obj, const char *name);
eb_status eb_h5_attr_f64(eb_h5 *f, const char *obj, const char *name, double *v);
eb_status eb_h5_attr_i64(eb_h5 *f, const char *obj, const char *name, int64_t *v);
eb_status eb_h5_attr_str(eb_h5 *f, const char *obj, const char *name, char **s);

/* ------------------------------------------------------------------------ */
/* Atomic writing                                                            */

typedef struct eb_h5w eb_h5w;

/* Starts writing `path`: creates "<path>.tmp.<pid>" in the same directory.
 * EB_EINPUT when the directory is missing or not writable or `path` is a
 * directory. An existing file at `path` is untouched until commit. */
eb_status eb_h5w_create(eb_h5w **out, const char *path);

/* Deflate level (1..9, 0 = off, the default) for the datasets written next;
 * only those of at least EB_H5_DEFLATE_MIN elements are chunked (about 1 MiB
 * chunks) and compressed, with the byte shuffle filter. */
#define EB_H5_DEFLATE_MIN ((int64_t)1 << 16)
void eb_h5w_set_deflate(eb_h5w *w, int level);

/* Writes dataset `name` (rank ≤ EB_H5_MAX_RANK, dims (rank), rank 0 = scalar)
 * from data (dims[0]·…·dims[rank-1] elements of `type`, row-major; may be NULL
 * when that is 0). Missing groups on the path ("/drift/attn") are created.
 * EB_EINPUT when the dataset already exists or the arguments are bad. */
eb_status eb_h5w_write(eb_h5w *w, const char *name, eb_h5_type type, const void *data, int rank,
                       const int64_t *dims);

/* Creates group `path` and any missing parents; OK when it already exists. */
eb_status eb_h5w_group(eb_h5w *w, const char *path);

/* Sets a scalar attribute of the dataset or group `obj` (NULL or "/" for the
 * root), replacing one of the same name. Strings are stored as variable-length
 * UTF-8 (h5py reads them as str). */
eb_status eb_h5w_attr_f64(eb_h5w *w, const char *obj, const char *name, double v);
eb_status eb_h5w_attr_i64(eb_h5w *w, const char *obj, const char *name, int64_t v);
eb_status eb_h5w_attr_str(eb_h5w *w, const char *obj, const char *name, const char *s);

/* Closes and flushes the file, then renames it onto `path`, replacing any
 * file there. Frees w whatever the outcome.
 * Any failure of a writer function (there or earlier) closes and removes the
 * temporary file at once; later calls then return the same status and
 * message, so a caller may check only commit's result. */
eb_status eb_h5w_commit(eb_h5w *w);

/* Closes and removes the temporary file and frees w (NULL is a no-op). */
void eb_h5w_abort(eb_h5w *w);

/* eb_atomic_remove_temps (runtime/atomic.h): removes the temporary files of
 * every writer not yet committed or aborted, HDF5 or other. Async-signal-safe:
 * for a SIGINT / SIGTERM handler, so that an interrupted run leaves nothing
 * behind. The writers must still be aborted or abandoned. */
void eb_h5w_remove_temps(void);

#endif
