/* readfile.h — a whole small file into memory, held to a size limit.
 *
 * The one reader of every text or small binary input (schedule tables, .npy
 * tables, diffusers config.json): memory grows with what the file holds, not
 * with the limit, so a 400-byte table costs 400 bytes and a pipe works too.
 */
#ifndef EB_READFILE_H
#define EB_READFILE_H

#include <stddef.h>

#include "runtime/ebcache.h"

/* Reads `path` into *data (malloc'd, NUL-terminated after the *size bytes;
 * free() it). EB_EINPUT naming the file when it cannot be opened or read or
 * holds more than `limit` bytes; EB_ERUNTIME when memory runs out. *data is
 * NULL on failure. */
eb_status eb_read_file(const char *path, size_t limit, char **data, size_t *size);

/* 1 when `path` names a regular file (after symbolic links), else 0: how a
 * model or VAE folder's layout is told apart. */
int eb_is_regular_file(const char *path);

#endif
