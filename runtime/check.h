/* check.h — finite-value checks with the location of the first bad element.
 *
 * One implementation for every caller: the HDF5 readers check what they load,
 * the forward pass checks its inputs and outputs. Locations are row-major
 * multi-indices, e.g. "x.h5: dataset 'x' has NaN at [1, 0, 3, 7]".
 */
#ifndef EB_CHECK_H
#define EB_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/ebcache.h"

/* Room for any index or shape of rank ≤ 8 written by the two formatters. */
#define EB_INDEX_STR_MAX 192

/* Writes v (rank) as "[2, 3, 4]" into buf (cap bytes, truncated to fit; "[]"
 * for rank 0); a negative entry is written "*" (any extent). Returns buf. */
char *eb_format_dims(char *buf, size_t cap, const int64_t *v, int rank);

/* Writes the row-major multi-index of flat element `flat` of an array of
 * shape dims (rank ≤ 8) as "[i, j, k]". Returns buf. */
char *eb_format_index(char *buf, size_t cap, int64_t flat, const int64_t *dims, int rank);

/* Checks that every element of a (dims[0], ..., dims[rank-1]) array is finite.
 * Returns EB_OK, or `code` (the caller decides: EB_EINPUT for data it was
 * given, EB_ERUNTIME for values it produced) with the message
 * "<what> has NaN at [i, j, ...]" (or Inf, -Inf) for the first bad element in
 * row-major order. Extents that are negative or whose product overflows
 * int64 (no array has that many elements) are EB_ERUNTIME; a zero extent
 * makes an empty array, whatever the others are. */
eb_status eb_check_finite(const float *a, const int64_t *dims, int rank, eb_status code, const char *what);
eb_status eb_check_finite_f64(const double *a, const int64_t *dims, int rank, eb_status code, const char *what);

#endif
