/* eval_fixture.c — the tiny Fashion-MNIST, classifier and sample files of the eval tests. */
#include "tests/eval_fixture.h"

#include "runtime/h5io.h"
#include "train/classifier.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>

static void put_be32(unsigned char *p, uint32_t v) {
    p[0] = v >> 24, p[1] = v >> 16, p[2] = v >> 8, p[3] = v;
}

static void write_gz(const char *dir, const char *name, const unsigned char *bytes, size_t n) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    gzFile gz = gzopen(path, "wb");
    cr_assert_not_null(gz);
    cr_assert_eq(gzwrite(gz, bytes, (unsigned)n), (int)n);
    cr_assert_eq(gzclose(gz), Z_OK);
}

void eval_fixture_write(const char *dir) {
    const size_t pixels = (size_t)EVAL_FIXTURE_N * EVAL_FIXTURE_SIDE * EVAL_FIXTURE_SIDE;
    unsigned char *img = malloc(16 + pixels), lab[8 + EVAL_FIXTURE_N];
    cr_assert_not_null(img);
    put_be32(img, 0x803), put_be32(img + 4, EVAL_FIXTURE_N);
    put_be32(img + 8, EVAL_FIXTURE_SIDE), put_be32(img + 12, EVAL_FIXTURE_SIDE);
    put_be32(lab, 0x801), put_be32(lab + 4, EVAL_FIXTURE_N);
    uint64_t key = eb_rng_key(5, 5);
    for (size_t i = 0; i < pixels; i++) img[16 + i] = (unsigned char)(eb_rng_key(key, i) >> 56);
    for (int i = 0; i < EVAL_FIXTURE_N; i++) lab[8 + i] = (unsigned char)(i % 10);
    const char *split[2] = {"train", "t10k"};
    for (int s = 0; s < 2; s++) {
        char name[64];
        snprintf(name, sizeof name, "%s-images-idx3-ubyte.gz", split[s]);
        write_gz(dir, name, img, 16 + pixels);
        snprintf(name, sizeof name, "%s-labels-idx1-ubyte.gz", split[s]);
        write_gz(dir, name, lab, sizeof lab);
    }
    free(img);
    eb_clf_config c = {.side = EVAL_FIXTURE_SIDE, .patch = 4, .dim = 16, .depth = 1, .heads = 2, .classes = 10};
    eb_clf *m;
    char path[512];
    snprintf(path, sizeof path, "%s/clf.safetensors", dir);
    cr_assert_eq(eb_clf_create(&m, &c, 3), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_clf_save(m, path, 0, NULL, NULL, 0), EB_OK, "%s", eb_last_error());
    eb_clf_free(m);
}

double eval_fixture_accuracy(const char *dir, const eb_fmnist *images) {
    char path[512];
    snprintf(path, sizeof path, "%s/clf.safetensors", dir);
    eb_clf *m;
    double acc;
    cr_assert_eq(eb_clf_load(&m, path, NULL, NULL), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_clf_accuracy(m, &acc, images->images, images->labels, images->n), EB_OK, "%s", eb_last_error());
    eb_clf_free(m);
    return acc;
}

void eval_fixture_samples(const char *path, const char *name, const float *x, int N, int C, int side,
                          const int32_t *y) {
    eb_h5w *w;
    int64_t xd[4] = {N, C, side, side}, yd[1] = {N};
    cr_assert_eq(eb_h5w_create(&w, path), EB_OK, "%s", eb_last_error());
    eb_h5w_write(w, name, EB_H5_F32, x, 4, xd);
    if (y) eb_h5w_write(w, "y", EB_H5_I32, y, 1, yd);
    cr_assert_eq(eb_h5w_commit(w), EB_OK, "%s", eb_last_error());
}
