/* checked.h — size arithmetic for numbers that come from a file or a flag.
 *
 * The rule (docs/fuzzing.md): an element count or a byte size derived from
 * input — extents read from a header, a length field, a count on the command
 * line — is formed with these functions and held to a named limit before it
 * sizes an allocation, a read or a loop. A bare `a * b` on such numbers can
 * wrap (or, signed, be undefined) and then size a buffer smaller than the
 * data that is copied into it. Every caller uses this one implementation.
 */
#ifndef EB_CHECKED_H
#define EB_CHECKED_H

#include <stddef.h>
#include <stdint.h>

/* *out = a·b; returns 1 when the exact product does not fit (then *out is the
 * wrapped value and must not be used), 0 when it does. */
static inline int eb_mul_overflows_u64(uint64_t a, uint64_t b, uint64_t *out) { return __builtin_mul_overflow(a, b, out); }

/* Elements of an array of extents dims (rank): their exact product when every
 * extent is ≥ 0 and the product is at most `limit` (≥ 0), else -1. A zero
 * extent gives 0 whatever the others are: zeros are found before any product
 * is formed, so extents like [2^59, 2^57, 0] neither wrap nor are refused. */
static inline int64_t eb_checked_count(const int64_t *dims, int rank, int64_t limit) {
    for (int d = 0; d < rank; d++) {
        if (dims[d] < 0) return -1;
        if (dims[d] == 0) return 0;
    }
    int64_t n = 1;
    for (int d = 0; d < rank; d++)
        if (__builtin_mul_overflow(n, dims[d], &n) || n > limit) return -1;
    return n;
}

/* count elements of elem_size bytes as a byte size, or SIZE_MAX when count is
 * negative or the product does not fit size_t (malloc(SIZE_MAX) fails). */
static inline size_t eb_checked_bytes(int64_t count, size_t elem_size) {
    size_t bytes;
    if (count < 0 || (uint64_t)count > SIZE_MAX || __builtin_mul_overflow((size_t)count, elem_size, &bytes))
        return SIZE_MAX;
    return bytes;
}

#endif
