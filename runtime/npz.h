/* npz.h — numpy's .npz container: a streaming writer and a chunked reader.
 *
 * An .npz is a ZIP archive of .npy members ("arr_0.npy", "mu.npy", ...).
 * The writer stores members uncompressed (STORED), always with ZIP64 size
 * fields as numpy's np.savez does (force_zip64), a CRC-32 per member, a
 * central directory and the ZIP64 end records; rows are appended in chunks,
 * so 50k 256² images never sit in memory, into "<path>.tmp.<pid>", renamed
 * onto path only when the archive is complete. The reader takes STORED and
 * DEFLATE members (np.savez_compressed), ZIP64 or not, and reads a member's
 * data front to back in chunks of any size, checking its CRC-32 at the end.
 * docs/npz.md describes the layout byte by byte.
 */
#ifndef EB_NPZ_H
#define EB_NPZ_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/ebcache.h"
#include "runtime/npy.h"

/* ------------------------------------------------------------------------ */
/* Writing                                                                   */

typedef struct eb_npz_writer eb_npz_writer;

/* Starts an archive at `path` (written to a temporary file beside it).
 * EB_EINPUT naming the path when it cannot be created. */
eb_status eb_npz_create(eb_npz_writer **out, const char *path);

/* Starts member `name` + ".npy" holding an array of dtype and shape[rank];
 * its data follows through eb_npz_append. The previous member must be
 * complete. EB_EINPUT for a repeated or empty name, a bad shape or an
 * incomplete previous member; EB_ERUNTIME for a write failure. */
eb_status eb_npz_begin(eb_npz_writer *w, const char *name, eb_npy_dtype dtype, int rank, const int64_t *shape);

/* Appends `bytes` bytes of the current member's data (C order, little-
 * endian): e.g. a chunk of rows. EB_EINPUT when the member would exceed the
 * size its shape gives. */
eb_status eb_npz_append(eb_npz_writer *w, const void *data, size_t bytes);

/* eb_npz_begin + one eb_npz_append of the whole array. */
eb_status eb_npz_write_array(eb_npz_writer *w, const char *name, eb_npy_dtype dtype, int rank, const int64_t *shape,
                             const void *data);

/* Completes the archive (every member must be complete), renames it onto the
 * path and frees w. On any failure, now or earlier, the temporary file is
 * removed, nothing is left at the path's place, and the first failure's
 * status and message are returned. */
eb_status eb_npz_close(eb_npz_writer *w);

/* Drops an unfinished archive: removes the temporary file and frees w.
 * NULL is a no-op. */
void eb_npz_abort(eb_npz_writer *w);

/* ------------------------------------------------------------------------ */
/* Reading                                                                   */

typedef struct eb_npz eb_npz;
typedef struct eb_npz_member eb_npz_member;

/* Opens `path` and reads its central directory. EB_EINPUT naming the file
 * when it is not a ZIP archive or a record is out of bounds. */
eb_status eb_npz_open(eb_npz **out, const char *path);
void eb_npz_close_reader(eb_npz *z);

/* 1 when the archive has member `name` + ".npy", else 0. */
int eb_npz_has(const eb_npz *z, const char *name);

/* CRC-32 of member `name` + ".npy" as its central directory records it (a
 * cheap fingerprint of its content); EB_EINPUT when absent. */
eb_status eb_npz_member_crc(const eb_npz *z, const char *name, uint32_t *crc);

/* Opens member `name` + ".npy" for reading and parses its .npy header into
 * *h. EB_EINPUT naming the file and member when it is absent, encrypted,
 * compressed other than by DEFLATE, or its header or size is bad. One
 * archive may have several members open at once. */
eb_status eb_npz_member_open(eb_npz_member **out, eb_npz *z, const char *name, eb_npy_header *h);

/* Reads the next `bytes` bytes of the member's data (after the header) into
 * dst: a member is read front to back, in chunks of any size. EB_EINPUT
 * naming the file and member when the data ends early, the DEFLATE stream is
 * corrupt, or — once the last byte is read — the CRC-32 does not match. */
eb_status eb_npz_member_read(eb_npz_member *m, void *dst, size_t bytes);
void eb_npz_member_close(eb_npz_member *m);

/* The whole of member `name` as float64 (any of the four dtypes converts),
 * at most `limit` elements: *data malloc'd, *h its header. */
eb_status eb_npz_read_f64(eb_npz *z, const char *name, int64_t limit, eb_npy_header *h, double **data);

#endif
