/* test_vae.c — the SD-VAE decoder against diffusers 0.31.0 (reference/vae_ref.py):
 * a small random decoder in each key layout and dtype, the real sd-vae
 * configuration with formula weights, the loader's failures naming the key,
 * and `ebcache decode` end to end.
 *
 * Tolerance: max |got − want| / max |want| ≤ 1e-4 on images (fp32; seen:
 * small decoder ≤ 1e-6 in every layout, sd-vae configuration 3e-6). */
#include "tests/cli_util.h"
#include "tests/golden.h"
#include "runtime/h5io.h"
#include "runtime/model.h"
#include "runtime/npz.h"
#include "runtime/safetensors.h"
#include "runtime/vae.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TOL 1e-4
#define SMALL GOLDEN_DIR "vae_small/"

/* Decodes the golden z with the decoder at `path` and compares with dataset `want` of `file`. */
static void expect_decode_matches(eb_vae *v, const char *file, const char *want_name) {
    int64_t zd[4], id[4];
    float *z = golden_f32(file, "z", 4, zd), *want = golden_f32(file, want_name, 4, id);
    const eb_vae_config *c = eb_vae_config_of(v);
    cr_assert_eq(id[2], zd[2] * eb_vae_upscale(c));
    size_t n = (size_t)id[0] * id[1] * id[2] * id[3];
    float *got = malloc(n * sizeof(float));
    cr_assert_eq(eb_vae_decode(v, got, z, (int)zd[0], (int)zd[2], (int)zd[3]), EB_OK, "%s", eb_last_error());
    double err = max_rel_err(got, want, n);
    cr_log_info("%s: rel err %.3g", want_name, err);
    cr_expect_leq(err, TOL, "%s: rel err %g", want_name, err);
    free(z), free(want), free(got);
}

Test(vae, small_decoder_matches_diffusers_in_every_layout) {
    const struct { const char *dir, *images, *layout; } cases[] = {
        {SMALL "diffusers", "images_diffusers", "diffusers"},
        {SMALL "legacy", "images_legacy", "diffusers-legacy"}, /* a pipeline folder holding vae/, F16 */
        {SMALL "ldm", "images_ldm", "ldm (first_stage_model.)"}, /* BF16, encoder and quant_conv skipped */
    };
    /* the CPU, and CUDA fp32 where a device runs */
    const eb_device cuda = {"cuda", EB_PRECISION_FP32};
    const eb_backend *be, *cond;
    const int devices = eb_backend_select(&cuda, &be, &cond) == EB_OK ? 2 : 1;
    for (int d = 0; d < devices; d++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            eb_vae *v;
            cr_assert_eq(eb_vae_load_on(&v, cases[i].dir, d ? &cuda : NULL), EB_OK, "%s: %s", cases[i].dir,
                         eb_last_error());
            const eb_vae_config *c = eb_vae_config_of(v);
            cr_expect_eq(c->n_blocks, 2, "config.json read");
            cr_expect_eq(c->block_out_channels[1], 32);
            cr_expect_eq(c->norm_num_groups, 8);
            cr_expect_str_eq(eb_vae_layout(v), cases[i].layout);
            expect_decode_matches(v, "vae_small.h5", cases[i].images);
            eb_vae_free(v);
        }
}

/* The weights reference/vae_ref.py's formula_tensor gives parameter `name`. */
static uint64_t fnv1a(const char *s) {
    uint64_t h = 0xCBF29CE484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001B3ull;
    return h;
}

static void formula_tensor(float *out, const eb_vae_param *p) {
    const uint64_t seed = fnv1a(p->name);
    const float amp = (float)sqrt(3.0 / (double)(p->numel / p->shape[0]));
    const int norm = strstr(p->name, "norm") != NULL, weight = strstr(p->name, ".weight") != NULL;
    for (size_t i = 0; i < p->numel; i++) {
        uint64_t z = seed + i * 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        float v = 2.0f * ((float)(z >> 40) * 0x1p-24f) - 1.0f;
        out[i] = p->rank > 1 ? v * amp : norm ? (weight ? 1.0f + 0.2f * v : 0.2f * v) : 0.1f * v;
    }
}

Test(vae, sd_vae_configuration_matches_diffusers) {
    eb_vae_config c;
    eb_vae_config_sd(&c);
    eb_vae *v;
    cr_assert_eq(eb_vae_create_on(&v, &c, NULL), EB_OK, "%s", eb_last_error());
    size_t floats = eb_vae_param_floats(v);
    cr_expect_eq(floats, 49490179 + 20, "the decoder's parameters plus post_quant_conv's");
    float *host = malloc(floats * sizeof(float));
    for (int i = 0; i < eb_vae_param_count(v); i++) formula_tensor(host + eb_vae_param_at(v, i)->offset, eb_vae_param_at(v, i));
    eb_vae_set_params(v, host);
    free(host);
    expect_decode_matches(v, "vae_sd.h5", "images");
    cr_expect_float_eq(2 * eb_vae_decode_macs(&c, 32, 32), 622e9, 4e9, "~622 GFLOP per 256² image");
    eb_vae_free(v);
}

/* ------------------------------------------------------------------------ */
/* Bad files                                                                 */

/* A copy of the small diffusers decoder in workdir/name/ with tensor `drop` left out, tensor
 * `reshape` given shape `shape` (same element count), tensor `poison` holding a NaN, and
 * tensor `extra` added. Any may be NULL. */
static void write_variant(const char *name, const char *drop, const char *reshape, int rank, const int64_t *shape,
                          const char *poison, const char *extra) {
    char dir[512], path[600];
    in_workdir(dir, name);
    cr_assert_eq(mkdir(dir, 0755), 0);
    snprintf(path, sizeof path, "cp " SMALL "diffusers/config.json %s/", dir);
    cr_assert_eq(system(path), 0);
    eb_st_file *f;
    cr_assert_eq(eb_st_open(&f, SMALL "diffusers/diffusion_pytorch_model.safetensors"), EB_OK);
    int n = eb_st_count(f), k = 0;
    eb_st_entry *e = calloc((size_t)n + 1, sizeof *e);
    float **data = calloc((size_t)n + 1, sizeof *data);
    for (int i = 0; i < n; i++) {
        const eb_st_tensor *t = eb_st_tensor_at(f, i);
        if (drop && !strcmp(t->name, drop)) continue;
        data[k] = malloc(t->numel * sizeof(float));
        cr_assert_eq(eb_st_read_f32(f, t, data[k], t->numel), EB_OK);
        e[k] = (eb_st_entry){.name = t->name, .dtype = EB_DT_F32, .rank = t->rank, .data = data[k]};
        memcpy(e[k].shape, t->shape, sizeof t->shape);
        if (reshape && !strcmp(t->name, reshape)) e[k].rank = rank, memcpy(e[k].shape, shape, rank * sizeof *shape);
        if (poison && !strcmp(t->name, poison)) data[k][3] = NAN;
        k++;
    }
    static const float one = 1.0f;
    if (extra) e[k++] = (eb_st_entry){.name = extra, .dtype = EB_DT_F32, .rank = 1, .shape = {1}, .data = &one};
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", dir);
    cr_assert_eq(eb_st_write(path, e, k, NULL, 0), EB_OK, "%s", eb_last_error());
    for (int i = 0; i < n; i++) free(data[i]);
    free(data), free(e);
    eb_st_close(f);
}

static void expect_load_fails(const char *name, const char *needle) {
    char dir[512];
    eb_vae *v = (eb_vae *)1;
    cr_expect_eq(eb_vae_load_on(&v, in_workdir(dir, name), NULL), EB_EINPUT, "%s loads", name);
    cr_expect_null(v);
    cr_expect(strstr(eb_last_error(), needle), "%s: message '%s' lacks '%s'", name, eb_last_error(), needle);
}

Test(vae, bad_files_name_the_key, .init = cli_workdir_make, .fini = cli_workdir_remove) {
    write_variant("missing", "decoder.up_blocks.1.resnets.0.conv_shortcut.weight", NULL, 0, NULL, NULL, NULL);
    expect_load_fails("missing", "missing tensor 'decoder.up_blocks.1.resnets.0.conv_shortcut.weight'");
    /* a 1×1-conv attention weight is ldm's shape, not the diffusers layout's */
    write_variant("misshaped", NULL, "decoder.mid_block.attentions.0.to_k.weight", 4, (int64_t[]){32, 32, 1, 1}, NULL,
                  NULL);
    expect_load_fails("misshaped", "tensor 'decoder.mid_block.attentions.0.to_k.weight': shape [32, 32, 1, 1], "
                                   "expected [32, 32]");
    write_variant("nan", NULL, NULL, 0, NULL, "decoder.conv_in.weight", NULL);
    expect_load_fails("nan", "tensor 'decoder.conv_in.weight': non-finite value nan at flat index 3");
    write_variant("extra", NULL, NULL, 0, NULL, NULL, "decoder.up_blocks.1.resnets.3.norm1.weight");
    expect_load_fails("extra", "unexpected tensor 'decoder.up_blocks.1.resnets.3.norm1.weight'");
    /* config.json disagreeing with the weights: the first mis-shaped key is named */
    char cmd[1200], dir[512];
    in_workdir(dir, "missing");
    snprintf(cmd, sizeof cmd, "sed -i 's/\"norm_num_groups\": 8/\"norm_num_groups\": 3/' %s/config.json", dir);
    cr_assert_eq(system(cmd), 0);
    expect_load_fails("missing", "block_out_channels[0] = 16 is not a multiple of norm_num_groups 3");
    expect_load_fails("absent", "No such file");
}

/* ------------------------------------------------------------------------ */
/* ebcache decode                                                            */

/* workdir/samples.h5 = the golden z times the scale factor, as `ebcache sample` writes latents. */
static void write_samples(const char *name, float scale, int channels) {
    int64_t zd[4];
    float *z = golden_f32("vae_small.h5", "z", 4, zd);
    size_t n = (size_t)zd[0] * zd[1] * zd[2] * zd[3];
    for (size_t i = 0; i < n; i++) z[i] *= scale;
    zd[1] = channels, zd[0] = (int64_t)(n / (channels * zd[2] * zd[3]));
    int32_t y[8] = {3, 5, 7, 9, 1, 2, 4, 6};
    char path[512];
    eb_h5w *w;
    cr_assert_eq(eb_h5w_create(&w, in_workdir(path, name)), EB_OK);
    eb_h5w_write(w, "samples", EB_H5_F32, z, 4, zd);
    eb_h5w_write(w, "y", EB_H5_I32, y, 1, zd);
    cr_assert_eq(eb_h5w_commit(w), EB_OK, "%s", eb_last_error());
    free(z);
}

Test(vae, cli_decode_round_trip, .init = cli_workdir_make, .fini = cli_workdir_remove) {
    char in[512], out[512];
    write_samples("samples.h5", 0.18215f, 4);
    in_workdir(in, "samples.h5"), in_workdir(out, "images.h5");
    cr_assert_eq(cli_run("decode --vae " SMALL "ldm --samples %s --output %s --batch 1 --threads 2", in, out), 0, "%s",
                 err_text);
    eb_h5 *f;
    float *got;
    int32_t *y;
    int64_t id[4], yd[1];
    cr_assert_eq(eb_h5_open(&f, out), EB_OK);
    cr_assert_eq(eb_h5_read_f32(f, "images", 4, (int64_t[]){2, 3, 16, 16}, &got, id, 0), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_h5_read_i32(f, "y", 1, (int64_t[]){2}, &y, yd), EB_OK);
    char *layout = NULL;
    cr_expect_eq(eb_h5_attr_str(f, NULL, "vae_layout", &layout), EB_OK);
    eb_h5_close(f);
    cr_expect_str_eq(layout, "ldm (first_stage_model.)");
    cr_expect(y[0] == 3 && y[1] == 5, "y copied");
    float *want = golden_f32("vae_small.h5", "images_ldm", 4, NULL);
    double err = max_rel_err(got, want, 2 * 3 * 16 * 16);
    cr_expect_leq(err, TOL, "decode of samples / 0.18215: rel err %g", err);
    free(got), free(y), free(want), free(layout);

    /* .npz: arr_0 (N, 16, 16, 3) uint8 = clamp(127.5·x + 128, 0, 255) truncated, NHWC, of the same images */
    char npz[512], h5[512];
    in_workdir(npz, "images.npz"), in_workdir(h5, "images.h5");
    cr_assert_eq(cli_run("decode --vae " SMALL "ldm --samples %s --output %s --batch 2", in, npz), 0, "%s", err_text);
    cr_assert_eq(eb_h5_open(&f, h5), EB_OK);
    cr_assert_eq(eb_h5_read_f32(f, "images", 4, (int64_t[]){2, 3, 16, 16}, &got, id, 0), EB_OK);
    eb_h5_close(f);
    eb_npz *z;
    eb_npz_member *m;
    eb_npy_header h;
    uint8_t bytes[2 * 16 * 16 * 3];
    cr_assert_eq(eb_npz_open(&z, npz), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_npz_member_open(&m, z, "arr_0", &h), EB_OK, "%s", eb_last_error());
    cr_expect(h.dtype == EB_NPY_U8 && h.rank == 4 && h.shape[0] == 2 && h.shape[1] == 16 && h.shape[2] == 16 &&
              h.shape[3] == 3, "arr_0 is (2, 16, 16, 3) uint8");
    cr_assert_eq(eb_npz_member_read(m, bytes, sizeof bytes), EB_OK, "%s", eb_last_error());
    eb_npz_member_close(m);
    eb_npz_close_reader(z);
    int wrong = 0, spread = 0;
    for (int n = 0; n < 2; n++)
        for (int p = 0; p < 256; p++)
            for (int c = 0; c < 3; c++) {
                float v = 127.5f * got[(n * 3 + c) * 256 + p] + 128.0f;
                uint8_t want_b = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
                wrong += bytes[(n * 256 + p) * 3 + c] != want_b;
                spread |= want_b != bytes[0];
            }
    cr_expect_eq(wrong, 0, "%d bytes differ from the HDF5 images' conversion", wrong);
    cr_expect(spread, "the images are not constant");
    free(got);

    /* a wrong scale factor gives other images; bad input exits 2 naming what is wrong, and no output */
    cr_assert_eq(cli_run("decode --vae " SMALL "ldm --samples %s --output %s --scale-factor 1", in, out), 0);
    write_samples("eight.h5", 1.0f, 8);
    in_workdir(in, "eight.h5"), in_workdir(out, "bad.h5");
    cr_expect_eq(cli_run("decode --vae " SMALL "diffusers --samples %s --output %s", in, out), 2);
    cr_expect(strstr(err_text, "samples"), "names the dataset: %s", err_text);
    cr_expect_eq(cli_run("decode --vae %s --samples %s --output %s", in_workdir((char[512]){0}, "nothing"), in, out), 2);
    cr_expect_eq(cli_run("decode --samples %s --output %s", in, out), 2);
    cr_expect_eq(cli_run("decode --vae " SMALL "diffusers --samples %s --output %s --scale-factor -1", in, out), 2);
    cr_expect_eq(access(out, F_OK), -1, "no output after a failure");
}
