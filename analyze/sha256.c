/* sha256.c — SHA-256 per FIPS 180-4, written from the standard's text. */
#include "analyze/sha256.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* First 32 bits of the fractional parts of the cube roots of the first 64 primes (§4.2.2). */
static const uint32_t round_constants[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static inline uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

/* One 64-byte block into the chaining state (§6.2.2). */
static void compress(uint32_t h[8], const uint8_t block[64]) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)block[4 * i] << 24 | (uint32_t)block[4 * i + 1] << 16 | (uint32_t)block[4 * i + 2] << 8 |
               block[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = k + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + round_constants[i] + w[i];
        uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        k = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += k;
}

void eb_sha256_init(eb_sha256_ctx *ctx) {
    /* First 32 bits of the fractional parts of the square roots of the first 8 primes (§5.3.3). */
    static const uint32_t initial[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                        0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(ctx->h, initial, sizeof initial);
    ctx->length = 0;
    ctx->fill = 0;
}

void eb_sha256_update(eb_sha256_ctx *ctx, const void *data, size_t n) {
    const uint8_t *p = data;
    ctx->length += n;
    while (n > 0) {
        size_t take = 64 - ctx->fill < n ? 64 - ctx->fill : n;
        memcpy(ctx->block + ctx->fill, p, take);
        ctx->fill += take, p += take, n -= take;
        if (ctx->fill == 64) {
            compress(ctx->h, ctx->block);
            ctx->fill = 0;
        }
    }
}

/* Padding (§5.1.1): a 1 bit, zeros up to 56 mod 64 bytes, then the bit length big-endian. */
void eb_sha256_final(eb_sha256_ctx *ctx, uint8_t digest[32]) {
    uint64_t bits = ctx->length * 8;
    uint8_t pad[72] = {0x80};
    size_t pad_len = (ctx->fill < 56 ? 56 : 120) - ctx->fill;
    for (int i = 0; i < 8; i++) pad[pad_len + i] = (uint8_t)(bits >> (56 - 8 * i));
    eb_sha256_update(ctx, pad, pad_len + 8);
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 4; j++) digest[4 * i + j] = (uint8_t)(ctx->h[i] >> (24 - 8 * j));
}

static void to_hex(const uint8_t digest[32], char hex[EB_SHA256_HEX]) {
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15];
    }
    hex[64] = '\0';
}

void eb_sha256_hex(const void *data, size_t n, char hex[EB_SHA256_HEX]) {
    eb_sha256_ctx ctx;
    uint8_t digest[32];
    eb_sha256_init(&ctx);
    eb_sha256_update(&ctx, data, n);
    eb_sha256_final(&ctx, digest);
    to_hex(digest, hex);
}

static eb_status hash_regular_file(eb_sha256_ctx *ctx, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return eb_fail(EB_EINPUT, "%s: cannot open: %s", path, strerror(errno));
    uint8_t buf[1 << 16];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0) eb_sha256_update(ctx, buf, got);
    int bad = ferror(f);
    fclose(f);
    return bad ? eb_fail(EB_ERUNTIME, "%s: read error", path) : EB_OK;
}

/* Regular files under `dir` in name order, each as its path relative to the
 * hashed root (`rel`, with its NUL) followed by its bytes. */
static eb_status hash_tree(eb_sha256_ctx *ctx, const char *dir, const char *rel) {
    struct dirent **entries;
    int n = scandir(dir, &entries, NULL, alphasort);
    if (n < 0) return eb_fail(EB_EINPUT, "%s: cannot list: %s", dir, strerror(errno));
    eb_status st = EB_OK;
    for (int i = 0; i < n; i++) {
        const char *name = entries[i]->d_name;
        if (st == EB_OK && strcmp(name, ".") != 0 && strcmp(name, "..") != 0) {
            char path[4096], sub[4096];
            struct stat sb;
            if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path ||
                snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", name) >= (int)sizeof sub)
                st = eb_fail(EB_EINPUT, "%s/%s: path too long", dir, name);
            else if (stat(path, &sb) != 0)
                st = eb_fail(EB_EINPUT, "%s: cannot stat: %s", path, strerror(errno));
            else if (S_ISDIR(sb.st_mode))
                st = hash_tree(ctx, path, sub);
            else if (S_ISREG(sb.st_mode)) {
                eb_sha256_update(ctx, sub, strlen(sub) + 1);
                st = hash_regular_file(ctx, path);
            }
        }
        free(entries[i]);
    }
    free(entries);
    return st;
}

eb_status eb_sha256_file(const char *path, char hex[EB_SHA256_HEX]) {
    struct stat sb;
    if (stat(path, &sb) != 0) return eb_fail(EB_EINPUT, "%s: cannot open: %s", path, strerror(errno));
    eb_sha256_ctx ctx;
    uint8_t digest[32];
    eb_sha256_init(&ctx);
    eb_status st = S_ISDIR(sb.st_mode) ? hash_tree(&ctx, path, "") : hash_regular_file(&ctx, path);
    if (st != EB_OK) return st;
    eb_sha256_final(&ctx, digest);
    to_hex(digest, hex);
    return EB_OK;
}
