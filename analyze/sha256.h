/* sha256.h — SHA-256 (FIPS 180-4) of a buffer or a file, as lowercase hex.
 *
 * Recordings and search results name the model they came from by the digest
 * of its weights file, so a table is never applied to a different model.
 */
#ifndef EB_SHA256_H
#define EB_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/ebcache.h"

#define EB_SHA256_HEX 65 /* 64 hex digits and the terminating NUL */

typedef struct {
    uint32_t h[8];      /* chaining state                          */
    uint64_t length;    /* message bytes absorbed so far           */
    uint8_t block[64];  /* partial block                           */
    size_t fill;        /* bytes in block                          */
} eb_sha256_ctx;

/* Incremental interface: init, update any number of times, final. */
void eb_sha256_init(eb_sha256_ctx *ctx);
void eb_sha256_update(eb_sha256_ctx *ctx, const void *data, size_t n);
/* Writes the 32-byte digest; the context must be re-initialised to reuse it. */
void eb_sha256_final(eb_sha256_ctx *ctx, uint8_t digest[32]);

/* hex (65) = the digest of data (n bytes) in lowercase hex, NUL-terminated. */
void eb_sha256_hex(const void *data, size_t n, char hex[EB_SHA256_HEX]);

/* hex (65) = the digest of the file at `path`, or of every regular file under
 * it in name order when it is a directory (a diffusers model folder), each
 * file's relative path hashed before its bytes. EB_EINPUT naming the path when
 * it cannot be opened, EB_ERUNTIME on a read error. */
eb_status eb_sha256_file(const char *path, char hex[EB_SHA256_HEX]);

#endif
