/* test_pipeline_decode.c — pipeline/decoding.h called directly (no binary):
 * the small random VAE golden (reference/vae_ref.py, diffusers 0.31.0)
 * decoded through eb_decode_to_file into HDF5 and .npz, bad input naming
 * the field or file, the row-range read under it (eb_h5_read_rows), and a
 * rank that decodes its rows without reading the others (the others hold a
 * NaN it would refuse).
 *
 * Tolerance: max |got − want| / max |want| ≤ 1e-4 on images (fp32, as
 * test_vae.c; seen ≤ 1e-6). The .npz bytes are compared exactly with the
 * HDF5 images' conversion. */
#include "tests/cli_util.h"
#include "tests/golden.h"

#include "pipeline/decoding.h"
#include "runtime/h5io.h"
#include "runtime/npz.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TOL 1e-4
#define SMALL GOLDEN_DIR "vae_small/"

TestSuite(pipeline_decode, .init = cli_workdir_make, .fini = cli_workdir_remove);

/* workdir/name = `copies` copies of the golden z (2, 4, 8, 8) times the scale factor, as `ebcache sample`
 * writes latents, with labels 10, 11, …; latent element `poison` (flat, < 0: none) NaN. Returns the path. */
static const char *write_latents(char *path, const char *name, int copies, long poison) {
    int64_t zd[4];
    float *z = golden_f32("vae_small.h5", "z", 4, zd);
    const size_t per = (size_t)zd[0] * zd[1] * zd[2] * zd[3];
    float *all = malloc(per * copies * sizeof(float));
    int32_t y[64];
    for (int c = 0; c < copies; c++)
        for (size_t i = 0; i < per; i++) all[c * per + i] = z[i] * (float)EB_DECODE_SCALE_FACTOR;
    for (int i = 0; i < zd[0] * copies; i++) y[i] = 10 + i;
    if (poison >= 0) all[poison] = NAN;
    int64_t dims[4] = {zd[0] * copies, zd[1], zd[2], zd[3]};
    eb_h5w *w;
    cr_assert_eq(eb_h5w_create(&w, in_workdir(path, name)), EB_OK);
    eb_h5w_write(w, "samples", EB_H5_F32, all, 4, dims);
    eb_h5w_write(w, "y", EB_H5_I32, y, 1, dims);
    cr_assert_eq(eb_h5w_commit(w), EB_OK, "%s", eb_last_error());
    free(z), free(all);
    return path;
}

static void decode_params(eb_decode_params *p, const char *vae, const char *samples, const char *output) {
    eb_decode_params_defaults(p);
    p->vae = vae, p->samples = samples, p->output = output, p->threads = 2;
}

Test(pipeline_decode, the_small_vae_golden_into_h5_and_npz) {
    char in[512], out[512], npz[512], want_npz[512];
    write_latents(in, "z.h5", 1, -1);
    eb_decode_params p;
    eb_decode_result r;
    decode_params(&p, SMALL "ldm", in, in_workdir(out, "images.h5"));
    cr_assert_eq(p.scale_factor, 0.18215);
    cr_assert_eq(p.batch, 1);
    cr_assert_eq(eb_decode_to_file(&p, &r), EB_OK, "%s", eb_last_error());
    cr_expect(r.N == 2 && r.height == 16 && r.width == 16, "%d images of %dx%d", r.N, r.height, r.width);
    cr_expect_str_eq(r.device, "cpu");
    cr_expect(r.wall > 0 && r.flop > 0);
    eb_h5 *f;
    float *got;
    int32_t *y;
    int64_t id[4], yd[1];
    double scale;
    char *layout = NULL;
    cr_assert_eq(eb_h5_open(&f, out), EB_OK);
    cr_assert_eq(eb_h5_read_f32(f, "images", 4, (int64_t[]){2, 3, 16, 16}, &got, id, 0), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_h5_read_i32(f, "y", 1, (int64_t[]){2}, &y, yd), EB_OK);
    cr_expect_eq(eb_h5_attr_str(f, NULL, "vae_layout", &layout), EB_OK);
    cr_expect_eq(eb_h5_attr_f64(f, NULL, "scale_factor", &scale), EB_OK);
    eb_h5_close(f);
    cr_expect_str_eq(layout, "ldm (first_stage_model.)");
    cr_expect_eq(scale, 0.18215);
    cr_expect(y[0] == 10 && y[1] == 11, "y copied");
    float *want = golden_f32("vae_small.h5", "images_ldm", 4, NULL);
    double err = max_rel_err(got, want, 2 * 3 * 16 * 16);
    cr_expect_leq(err, TOL, "decode of samples / 0.18215: rel err %g", err);
    free(y), free(want), free(layout);

    /* the .npz of the same latents in a batch of 2: the file numpy's savez would write of the HDF5 images'
     * conversion clamp(127.5·x + 128, 0, 255) truncated, NHWC, byte for byte */
    p.output = in_workdir(npz, "images.npz"), p.batch = 2;
    cr_assert_eq(eb_decode_to_file(&p, &r), EB_OK, "%s", eb_last_error());
    uint8_t bytes[2 * 16 * 16 * 3];
    for (int n = 0; n < 2; n++)
        for (int q = 0; q < 256; q++)
            for (int c = 0; c < 3; c++) {
                float v = 127.5f * got[(n * 3 + c) * 256 + q] + 128.0f;
                bytes[(n * 256 + q) * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    eb_npz_writer *w;
    cr_assert_eq(eb_npz_create(&w, in_workdir(want_npz, "want.npz")), EB_OK);
    cr_assert_eq(eb_npz_write_array(w, "arr_0", EB_NPY_U8, 4, (int64_t[]){2, 16, 16, 3}, bytes), EB_OK);
    cr_assert_eq(eb_npz_close(w), EB_OK, "%s", eb_last_error());
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", npz, want_npz);
    cr_expect_eq(system(cmd), 0, "the decoded .npz differs from the conversion of the HDF5 images");
    free(got);
}

/* Bad input: EB_EINPUT naming the field, file or dataset, and nothing at the output. */
Test(pipeline_decode, bad_input_names_what_is_wrong) {
    char in[512], out[512], eight[512], nan[512], missing[512];
    write_latents(in, "z.h5", 1, -1);
    write_latents(nan, "nan.h5", 1, 4 * 64 + 5); /* image 1, channel 0, pixel (0, 5) */
    in_workdir(out, "out.h5"), in_workdir(missing, "nothing");
    /* 8 channels where the decoder takes 4: the same floats as (1, 8, 8, 8) */
    int64_t zd[4];
    float *z = golden_f32("vae_small.h5", "z", 4, zd);
    eb_h5w *w;
    cr_assert_eq(eb_h5w_create(&w, in_workdir(eight, "eight.h5")), EB_OK);
    eb_h5w_write(w, "samples", EB_H5_F32, z, 4, (int64_t[]){1, 8, 8, 8});
    cr_assert_eq(eb_h5w_commit(w), EB_OK);
    free(z);
    const struct {
        const char *vae, *samples, *output;
        double scale;
        int batch;
        const char *message;
    } cases[] = {
        {SMALL "ldm", in, out, -1, 1, "`scale_factor`: -1 is not a positive number"},
        {SMALL "ldm", in, out, 0.18215, 0, "`batch`: 0 is below 1"},
        {NULL, in, out, 0.18215, 1, "`vae`, `samples` and `output` are required"},
        {SMALL "ldm", in, NULL, 0.18215, 1, "`vae`, `samples` and `output` are required"},
        {missing, in, out, 0.18215, 1, "nothing"},
        {SMALL "ldm", missing, out, 0.18215, 1, "nothing"},
        {SMALL "diffusers", eight, out, 0.18215, 1, "eight.h5: dataset 'samples' has dims [1, 8, 8, 8], expected [*, 4, *, *]"},
        {SMALL "diffusers", nan, out, 0.18215, 1, "nan.h5: dataset 'samples' has NaN at [1, 0, 0, 5]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        eb_decode_params p;
        decode_params(&p, cases[i].vae, cases[i].samples, cases[i].output);
        p.scale_factor = cases[i].scale, p.batch = cases[i].batch;
        cr_expect_eq(eb_decode_to_file(&p, NULL), EB_EINPUT, "case %zu succeeded", i);
        cr_expect(strstr(eb_last_error(), cases[i].message), "case %zu: '%s' lacks '%s'", i, eb_last_error(),
                  cases[i].message);
        cr_expect_eq(access(out, F_OK), -1, "case %zu left an output", i);
    }
}

/* eb_h5_read_rows: rows [1, 3) of a (4, 3) dataset, the whole extents in dims; no rows; rows past the end. */
Test(pipeline_decode, a_row_range_read_is_a_hyperslab) {
    char path[512];
    const double v[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    eb_h5w *w;
    cr_assert_eq(eb_h5w_create(&w, in_workdir(path, "rows.h5")), EB_OK);
    eb_h5w_write(w, "x", EB_H5_F64, v, 2, (int64_t[]){4, 3});
    cr_assert_eq(eb_h5w_commit(w), EB_OK);
    eb_h5 *f;
    void *data;
    int64_t dims[2];
    cr_assert_eq(eb_h5_open(&f, path), EB_OK);
    cr_assert_eq(eb_h5_read_rows(f, "x", EB_H5_F32, 2, (int64_t[]){EB_H5_ANY, 3}, 1, 2, &data, dims, EB_H5_FINITE),
                 EB_OK, "%s", eb_last_error());
    cr_expect(dims[0] == 4 && dims[1] == 3, "the whole dataset's extents");
    for (int i = 0; i < 6; i++) cr_expect_eq(((float *)data)[i], 3 + i, "element %d", i);
    free(data);
    cr_assert_eq(eb_h5_read_rows(f, "x", EB_H5_F64, 2, NULL, 4, 0, &data, dims, 0), EB_OK, "%s", eb_last_error());
    free(data);
    cr_expect_eq(eb_h5_read_rows(f, "x", EB_H5_F32, 2, NULL, 3, 2, &data, dims, 0), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "rows.h5: dataset 'x' has 4 rows, rows 3 to 4 were asked for"), "%s",
              eb_last_error());
    cr_expect_null(data);
    cr_expect_eq(eb_h5_read_rows(f, "x", EB_H5_F32, 2, (int64_t[]){EB_H5_ANY, 2}, 0, 1, &data, dims, 0), EB_EINPUT,
                 "the extents are checked");
    eb_h5_close(f);
}

/* One rank of two, alone: the collectives see only it (the other rank "succeeds"). */
static eb_status lone_allgather(const eb_comm *c, const void *mine, size_t bytes, void *all) {
    memset(all, 0, bytes * c->size);
    memcpy((char *)all + bytes * c->rank, mine, bytes);
    return EB_OK;
}
static eb_status lone_broadcast(const eb_comm *c, void *buf, size_t bytes, int root) { return EB_OK; }
static eb_status lone_barrier(const eb_comm *c) { return EB_OK; }

/* 3 images in batches of 2 over 2 ranks: rank 0 has images 0, 1 and rank 1 image 2. Image 0 holds a
 * NaN: one process and rank 0 refuse it, rank 1 never reads it. */
Test(pipeline_decode, a_rank_reads_only_its_rows) {
    char in[512], out[512];
    write_latents(in, "z.h5", 2, 7); /* 4 images; use 3 by reading a copy of 3 rows */
    eb_h5 *f;
    void *z, *y;
    int64_t zd[4], yd[1];
    cr_assert_eq(eb_h5_open(&f, in), EB_OK);
    cr_assert_eq(eb_h5_read_rows(f, "samples", EB_H5_F32, 4, NULL, 0, 3, &z, zd, 0), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_h5_read_rows(f, "y", EB_H5_I32, 1, NULL, 0, 3, &y, yd, 0), EB_OK);
    eb_h5_close(f);
    eb_h5w *w;
    cr_assert_eq(eb_h5w_create(&w, in_workdir(in, "three.h5")), EB_OK);
    eb_h5w_write(w, "samples", EB_H5_F32, z, 4, (int64_t[]){3, 4, 8, 8});
    eb_h5w_write(w, "y", EB_H5_I32, y, 1, (int64_t[]){3});
    cr_assert_eq(eb_h5w_commit(w), EB_OK);
    free(z), free(y);
    eb_decode_params p;
    decode_params(&p, SMALL "ldm", in, in_workdir(out, "images.h5"));
    p.batch = 2;
    cr_expect_eq(eb_decode_to_file(&p, NULL), EB_EINPUT, "one process reads image 0");
    cr_expect(strstr(eb_last_error(), "has NaN at [0, 0, 0, 7]"), "%s", eb_last_error());
    for (int rank = 0; rank < 2; rank++) {
        const eb_comm lone = {.rank = rank, .size = 2, .local_rank = rank, .local_size = 2,
                              .broadcast = lone_broadcast, .allgather = lone_allgather, .barrier = lone_barrier};
        p.comm = &lone;
        eb_status st = eb_decode_to_file(&p, NULL);
        if (rank == 0) {
            cr_expect_eq(st, EB_EINPUT, "rank 0 decodes image 0");
            cr_expect(strstr(eb_last_error(), "has NaN at [0, 0, 0, 7]"), "%s", eb_last_error());
        } else {
            cr_expect_eq(st, EB_OK, "rank 1 read image 0: %s", eb_last_error());
        }
        char part[600];
        snprintf(part, sizeof part, "%s.part-%d-of-2", out, rank);
        cr_expect_eq(access(part, F_OK), -1, "rank %d left its part", rank);
    }
    cr_expect_eq(access(out, F_OK), -1, "no rank 0 merged anything");
}
