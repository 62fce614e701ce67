/* npy.h — the .npy array header: one parser and one writer for every caller
 * (the EB-Cache table reader in schedule.c, the .npz container in npz.c).
 *
 * Layout (numpy's format versions 1.0, 2.0, 3.0): the magic "\x93NUMPY", the
 * version bytes major, minor (0), the header length as little-endian u16
 * (v1) or u32 (v2, v3), then that many bytes of a Python dict literal
 *   {'descr': '<f8', 'fortran_order': False, 'shape': (N, D), }
 * padded with spaces and ending in '\n' (numpy pads the whole preamble to a
 * multiple of 64 bytes), then the array data in C order. Only the little-
 * endian dtypes below and fortran_order False are accepted.
 */
#ifndef EB_NPY_H
#define EB_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/ebcache.h"

#define EB_NPY_MAX_RANK 8
#define EB_NPY_HEADER_CAP 320 /* eb_npy_format_header's longest output */
#define EB_NPY_MAX_HEADER (1u << 20) /* header dict bytes we accept (numpy writes < 200) */

typedef enum { EB_NPY_U8, EB_NPY_F32, EB_NPY_F64, EB_NPY_I64, EB_NPY_DTYPE_COUNT } eb_npy_dtype;

/* The descr string ('|u1', '<f4', '<f8', '<i8') and the element size in bytes. */
const char *eb_npy_dtype_name(eb_npy_dtype t);
size_t eb_npy_dtype_size(eb_npy_dtype t);

typedef struct {
    eb_npy_dtype dtype;
    int rank;                         /* 0 for a scalar */
    int64_t shape[EB_NPY_MAX_RANK];
    int64_t count;                    /* product of shape (1 for a scalar) */
    uint64_t data_bytes;              /* count · element size */
    size_t header_bytes;              /* preamble + dict: where the data starts */
} eb_npy_header;

/* Parses the header at the start of buf (size bytes available; may be more
 * than the header). `name` (the file, or "file: member") starts every
 * message. EB_EINPUT for a bad magic, an unsupported version, dtype or
 * order, a malformed dict or shape, a size that does not fit 2^62 bytes, or a
 * header longer than size ("truncated header"). */
eb_status eb_npy_parse_header(eb_npy_header *h, const unsigned char *buf, size_t size, const char *name);

/* Writes the header numpy writes for (dtype, shape[rank]) into buf (cap bytes):
 * version 1.0, the dict numpy formats, the preamble padded with spaces to a
 * multiple of 64 bytes. Returns its length, or 0 when cap is too small, the
 * rank exceeds EB_NPY_MAX_RANK or an extent is negative. EB_NPY_HEADER_CAP
 * bytes always suffice. */
size_t eb_npy_format_header(char *buf, size_t cap, eb_npy_dtype dtype, int rank, const int64_t *shape);

#endif
