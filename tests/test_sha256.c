/* test_sha256.c — SHA-256 on the FIPS 180-2 example vectors, block-boundary
 * lengths against sha256sum, incremental = one-shot, files and folders. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "analyze/sha256.h"

static void check_hex(const char *msg, size_t n, const char *want) {
    char hex[EB_SHA256_HEX];
    eb_sha256_hex(msg, n, hex);
    cr_assert_str_eq(hex, want, "length %zu", n);
}

Test(sha256, fips_vectors) {
    check_hex("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    check_hex("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    check_hex(two_blocks, strlen(two_blocks), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

/* One million 'a' (FIPS 180-2 appendix B.3), fed in uneven pieces. */
Test(sha256, million_a_incremental) {
    enum { N = 1000000 };
    char *a = malloc(N);
    cr_assert_not_null(a);
    memset(a, 'a', N);
    eb_sha256_ctx ctx;
    uint8_t digest[32];
    eb_sha256_init(&ctx);
    for (size_t off = 0, piece = 1; off < N; off += piece, piece = piece * 7 % 1000 + 1)
        eb_sha256_update(&ctx, a + off, off + piece > N ? N - off : piece);
    eb_sha256_final(&ctx, digest);
    static const uint8_t want[32] = {0xcd, 0xc7, 0x6e, 0x5c, 0x99, 0x14, 0xfb, 0x92, 0x81, 0xa1, 0xc7,
                                     0xe2, 0x84, 0xd7, 0x3e, 0x67, 0xf1, 0x80, 0x9a, 0x48, 0xa4, 0x97,
                                     0x20, 0x0e, 0x04, 0x6d, 0x39, 0xcc, 0xc7, 0x11, 0x2c, 0xd0};
    cr_assert_arr_eq(digest, want, 32);
    char hex[EB_SHA256_HEX];
    eb_sha256_hex(a, N, hex);
    cr_assert_str_eq(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(a);
}

/* Lengths around the padding boundary (55, 56, 63, 64, 65 bytes), checked
 * against digests from coreutils sha256sum. */
Test(sha256, padding_boundaries) {
    static const struct { size_t n; const char *hex; } cases[] = {
        {55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
        {56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
        {63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
        {64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
        {65, "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0"},
    };
    char buf[65];
    memset(buf, 'a', sizeof buf);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_hex(buf, cases[i].n, cases[i].hex);
}

Test(sha256, file_and_folder) {
    char dir[] = "/tmp/eb_sha256_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/f.bin", dir);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    fputs("abc", f);
    fclose(f);
    char hex[EB_SHA256_HEX], folder_hex[EB_SHA256_HEX], again[EB_SHA256_HEX];
    cr_assert_eq(eb_sha256_file(path, hex), EB_OK, "%s", eb_last_error());
    cr_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");

    /* A folder hashes names and contents: renaming the file changes it. */
    cr_assert_eq(eb_sha256_file(dir, folder_hex), EB_OK, "%s", eb_last_error());
    cr_assert_str_neq(folder_hex, hex);
    char renamed[256];
    snprintf(renamed, sizeof renamed, "%s/g.bin", dir);
    cr_assert_eq(rename(path, renamed), 0);
    cr_assert_eq(eb_sha256_file(dir, again), EB_OK, "%s", eb_last_error());
    cr_assert_str_neq(again, folder_hex);

    unlink(renamed);
    rmdir(dir);
    cr_assert_eq(eb_sha256_file(path, hex), EB_EINPUT);
    cr_assert(strstr(eb_last_error(), "f.bin") != NULL, "message names the file: %s", eb_last_error());
}
