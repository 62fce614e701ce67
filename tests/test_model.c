/* test_model.c — the DiT forward against the PyTorch reference goldens. */
#include "tests/golden.h"
#include "runtime/h5io.h"
#include "runtime/cpu/kernels.h"
#include "runtime/model.h"
#include "analyze/sha256.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FWD_TOL 1e-5 /* max |Δ| / max |want| for every fp32 forward golden */

static size_t numel(const int64_t *d, int rank) {
    size_t n = 1;
    for (int i = 0; i < rank; i++) n *= (size_t)d[i];
    return n;
}

Test(model, timestep_frequencies) {
    int64_t td[1], od[2];
    int32_t *t = golden_i32("components.h5", "/tfreq/t", 1, td);
    float *want = golden_f32("components.h5", "/tfreq/out", 2, od);
    float *got = malloc(numel(od, 2) * sizeof(float));
    timestep_freq_forward(got, t, (int)td[0]);
    /* f_i is float32 as in PyTorch, whose expf may differ from glibc's by one ulp;
     * t·f_i with t up to 999 turns that ulp into ~6e-5 of the cos/sin argument. */
    double err = max_rel_err(got, want, numel(od, 2));
    cr_expect_leq(err, 1e-4, "timestep frequencies: rel err %g", err);
    free(t), free(want), free(got);
}

Test(model, pos_embed) {
    struct { const char *name; int D, grid; } cases[] = {
        {"/pos_embed/d64_g4", 64, 4}, {"/pos_embed/d48_g6", 48, 6}, {"/pos_embed/d1152_g16", 1152, 16}};
    for (size_t i = 0; i < 3; i++) {
        int64_t d[2];
        float *want = golden_f32("components.h5", cases[i].name, 2, d);
        cr_assert_eq(d[0], cases[i].grid * cases[i].grid);
        float *got = malloc(numel(d, 2) * sizeof(float));
        eb_pos_embed(got, cases[i].D, cases[i].grid);
        double err = max_rel_err(got, want, numel(d, 2));
        cr_expect_leq(err, 1e-6, "%s: rel err %g", cases[i].name, err);
        free(want), free(got);
    }
}

Test(model, patch_embed_and_unpatchify) {
    eb_model *m = golden_host_model("tiny_sigma.safetensors", 0);
    int64_t xd[4], td[3], ud[3], od[4];
    float *x = golden_f32("components.h5", "/patch/x", 4, xd);
    float *tokens = golden_f32("components.h5", "/patch/tokens", 3, td);
    int B = (int)xd[0];
    cr_assert_eq(eb_acts_reserve(m, B), EB_OK);
    memcpy(m->acts.x_in, x, numel(xd, 4) * sizeof(float));
    eb_embed(m, B);
    double err = max_rel_err(m->acts.tokens, tokens, numel(td, 3));
    cr_expect_leq(err, FWD_TOL, "patch embedding: rel err %g", err);

    float *ut = golden_f32("components.h5", "/unpatch/tokens", 3, ud);
    float *uo = golden_f32("components.h5", "/unpatch/out", 4, od);
    float *got = malloc(numel(od, 4) * sizeof(float));
    unpatchify_forward(got, ut, (int)od[0], (int)od[1], (int)od[2], m->cfg.patch_size);
    cr_expect_eq(memcmp(got, uo, numel(od, 4) * sizeof(float)), 0, "unpatchify is a permutation: must be exact");
    free(x), free(tokens), free(ut), free(uo), free(got);
    eb_model_free(m);
}

Test(model, one_block) {
    eb_model *m = golden_host_model("tiny_sigma.safetensors", 0);
    int64_t xd[3], cd[2];
    float *x = golden_f32("components.h5", "/block/x", 3, xd);
    float *c = golden_f32("components.h5", "/block/c", 2, cd);
    float *want = golden_f32("components.h5", "/block/out", 3, xd);
    int B = (int)xd[0];
    cr_assert_eq(eb_acts_reserve(m, B), EB_OK);
    memcpy(m->acts.tokens, x, numel(xd, 3) * sizeof(float));
    silu_forward(m->acts.cond_silu, c, numel(cd, 2));
    eb_block_forward(m, 0, B);
    double err = max_rel_err(m->acts.tokens, want, numel(xd, 3));
    cr_expect_leq(err, FWD_TOL, "block 0: rel err %g", err);
    free(x), free(c), free(want);
    eb_model_free(m);
}

/* Runs the model on a golden file's x, t, y and compares with its out. */
static void check_forward(const char *model, int heads, const char *golden, double tol) {
    eb_model *m = golden_model(model, heads);
    int64_t xd[4], nd[1], od[4];
    float *x = golden_f32(golden, "x", 4, xd);
    int32_t *t = golden_i32(golden, "t", 1, nd), *y = golden_i32(golden, "y", 1, nd);
    float *want = golden_f32(golden, "out", 4, od);
    float *got = malloc(numel(od, 4) * sizeof(float));
    cr_assert_eq(eb_forward(m, got, x, t, y, (int)xd[0]), EB_OK, "%s", eb_last_error());
    double err = max_rel_err(got, want, numel(od, 4));
    cr_expect_leq(err, tol, "%s on %s: rel err %g", model, golden, err);
    free(x), free(t), free(y), free(want), free(got);
    eb_model_free(m);
}

Test(model, forward_learn_sigma) { check_forward("tiny_sigma.safetensors", 0, "forward_sigma.h5", FWD_TOL); }
Test(model, forward_fixed_sigma_no_metadata) { check_forward("tiny_nosigma.safetensors", 3, "forward_nosigma.h5", FWD_TOL); }
Test(model, forward_f16_weights) { check_forward("tiny_sigma_f16.safetensors", 0, "forward_f16.h5", FWD_TOL); }
Test(model, forward_bf16_weights) { check_forward("tiny_sigma_bf16.safetensors", 0, "forward_bf16.h5", FWD_TOL); }
Test(model, forward_diffusers_folder) { check_forward("tiny_diffusers", 0, "forward_sigma.h5", FWD_TOL); }

/* A guidance golden dataset and the rule it was made with. */
typedef struct {
    const char *name;
    eb_guidance rule;
} guided_out;

/* Guidance of `model` on golden x, t, y under each rule against its dataset. */
static void check_guidance(const char *model, const char *golden, const guided_out *outs, int n_outs) {
    eb_model *m = golden_model(model, 0);
    const eb_config *c = eb_model_config(m);
    int64_t xd[4], nd[1], od[4];
    float *x = golden_f32(golden, "x", 4, xd);
    int32_t *t = golden_i32(golden, "t", 1, nd), *y = golden_i32(golden, "y", 1, nd);
    float scale = (float)golden_attr_f64(golden, "scale");
    for (int k = 0; k < n_outs; k++) {
        float *want = golden_f32(golden, outs[k].name, 4, od);
        float *got = malloc(numel(od, 4) * sizeof(float));
        cr_assert_eq(eb_forward_cfg(m, got, x, t, y, (int)xd[0], scale, eb_guide_channels(c, outs[k].rule)), EB_OK,
                     "%s", eb_last_error());
        double err = max_rel_err(got, want, numel(od, 4));
        cr_expect_leq(err, FWD_TOL, "%s %s (%s): rel err %g", golden, outs[k].name, eb_guidance_name(outs[k].rule),
                      err);
        free(want), free(got);
    }
    free(x), free(t), free(y);
    eb_model_free(m);
}

Test(model, classifier_free_guidance) {
    const guided_out outs[] = {{"out", EB_GUIDE_OFFICIAL}, {"out_eps", EB_GUIDE_EPS}, {"out_all", EB_GUIDE_ALL}};
    check_guidance("tiny_sigma.safetensors", "cfg.h5", outs, 3);
}

/* The shipped model's kind: the official slice [:, :3] takes ε and the variance channel. */
Test(model, guidance_of_one_channel_learn_sigma_model) {
    const guided_out outs[] = {{"out", EB_GUIDE_OFFICIAL}, {"out_eps", EB_GUIDE_EPS}};
    check_guidance("tiny_sigma1.safetensors", "cfg_sigma1.h5", outs, 2);
    /* the two rules give different outputs here, so the comparison above tells them apart */
    int64_t od[4];
    float *official = golden_f32("cfg_sigma1.h5", "out", 4, od), *eps = golden_f32("cfg_sigma1.h5", "out_eps", 4, NULL);
    cr_expect_gt(max_rel_err(eps, official, numel(od, 4)), 1e-2);
    free(official), free(eps);
}

/* The shipped model under the default rule equals the official forward_with_cfg
 * (from the reference); the ε-only rule is the one that differs (3.4e-2 of the
 * full output at cfg 1.5, 0.18 at cfg 4, in the variance channel). */
Test(model, shipped_model_default_guidance_is_official) {
    const char *path = "data/dit_fmnist.safetensors";
    char sha[EB_SHA256_HEX], *want_sha = NULL;
    cr_assert_eq(eb_sha256_file(path, sha), EB_OK, "%s", eb_last_error());
    eb_h5 *f;
    cr_assert_eq(eb_h5_open(&f, GOLDEN_DIR "cfg_shipped.h5"), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_h5_attr_str(f, NULL, "model_sha256", &want_sha), EB_OK, "%s", eb_last_error());
    eb_h5_close(f);
    cr_assert_str_eq(sha, want_sha, "%s changed since cfg_shipped.h5 was made: rerun make goldens", path);
    free(want_sha);
    eb_model *m;
    cr_assert_eq(eb_model_load(&m, path, 0), EB_OK, "%s", eb_last_error());
    int64_t xd[4], nd[1], od[4];
    float *x = golden_f32("cfg_shipped.h5", "x", 4, xd);
    int32_t *t = golden_i32("cfg_shipped.h5", "t", 1, nd), *y = golden_i32("cfg_shipped.h5", "y", 1, nd);
    struct { const char *name; float scale; eb_guidance rule; } outs[] = {
        {"/cfg1.5/out", 1.5f, EB_GUIDE_OFFICIAL}, {"/cfg1.5/out_eps", 1.5f, EB_GUIDE_EPS},
        {"/cfg4/out", 4.0f, EB_GUIDE_OFFICIAL}, {"/cfg4/out_eps", 4.0f, EB_GUIDE_EPS}};
    for (size_t k = 0; k < sizeof outs / sizeof outs[0]; k++) {
        float *want = golden_f32("cfg_shipped.h5", outs[k].name, 4, od);
        float *got = malloc(numel(od, 4) * sizeof(float));
        int channels = outs[k].rule == EB_GUIDE_OFFICIAL ? eb_default_guide_channels(eb_model_config(m))
                                                         : eb_guide_channels(eb_model_config(m), outs[k].rule);
        cr_assert_eq(eb_forward_cfg(m, got, x, t, y, (int)xd[0], outs[k].scale, channels), EB_OK, "%s",
                     eb_last_error());
        double err = max_rel_err(got, want, numel(od, 4));
        cr_expect_leq(err, FWD_TOL, "%s: rel err %g", outs[k].name, err);
        free(want), free(got);
    }
    float *official = golden_f32("cfg_shipped.h5", "/cfg4/out", 4, od), *eps = golden_f32("cfg_shipped.h5", "/cfg4/out_eps", 4, NULL);
    cr_expect_gt(max_rel_err(eps, official, numel(od, 4)), 0.1, "the rules differ on the shipped model");
    free(official), free(eps), free(x), free(t), free(y);
    eb_model_free(m);
}

Test(model, guidance_rules) {
    struct { eb_config c; int official, eps, all; } cases[] = {
        {{.in_channels = 4, .learn_sigma = 1}, 3, 4, 8}, /* DiT-XL/2 latents: 3 of the 4 ε channels */
        {{.in_channels = 1, .learn_sigma = 1}, 2, 1, 2}, /* the shipped model: ε and the variance  */
        {{.in_channels = 2, .learn_sigma = 1}, 3, 2, 4},
        {{.in_channels = 1, .learn_sigma = 0}, 1, 1, 1},
        {{.in_channels = 4, .learn_sigma = 0}, 3, 4, 4},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const eb_config *c = &cases[k].c;
        cr_expect_eq(eb_default_guide_channels(c), cases[k].official, "case %zu", k);
        cr_expect_eq(eb_guide_channels(c, EB_GUIDE_OFFICIAL), cases[k].official, "case %zu", k);
        cr_expect_eq(eb_guide_channels(c, EB_GUIDE_EPS), cases[k].eps, "case %zu", k);
        cr_expect_eq(eb_guide_channels(c, EB_GUIDE_ALL), cases[k].all, "case %zu", k);
    }
    for (int g = 0; g < EB_GUIDE_NRULES; g++) {
        eb_guidance back;
        cr_expect_eq(eb_guidance_parse(&back, eb_guidance_name((eb_guidance)g)), EB_OK);
        cr_expect_eq(back, g);
    }
    eb_guidance g;
    cr_expect_eq(eb_guidance_parse(&g, "3"), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "'3'"), "%s", eb_last_error());
}

Test(model, same_bits_at_any_thread_count) {
    eb_model *m = golden_model("tiny_sigma.safetensors", 0);
    int64_t xd[4], nd[1];
    float *x = golden_f32("forward_sigma.h5", "x", 4, xd);
    int32_t *t = golden_i32("forward_sigma.h5", "t", 1, nd), *y = golden_i32("forward_sigma.h5", "y", 1, nd);
    size_t n = (size_t)xd[0] * 8 * 64;
    float *one = malloc(n * sizeof(float)), *two = malloc(n * sizeof(float));
    eb_set_threads(1);
    cr_assert_eq(eb_forward(m, one, x, t, y, (int)xd[0]), EB_OK);
    eb_set_threads(2);
    cr_assert_eq(eb_forward(m, two, x, t, y, (int)xd[0]), EB_OK);
    cr_expect_eq(memcmp(one, two, n * sizeof(float)), 0, "1 and 2 threads differ");
    free(x), free(t), free(y), free(one), free(two);
    eb_model_free(m);
}

Test(model, rejects_bad_inputs) {
    eb_model *m = golden_model("tiny_sigma.safetensors", 0);
    float x[2 * 4 * 8 * 8] = {0}, out[2 * 8 * 8 * 8];
    int32_t t[2] = {10, 1000}, y[2] = {1, 2};
    cr_expect_eq(eb_forward(m, out, x, t, y, 2), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "t[1] = 1000"), "message: %s", eb_last_error());
    t[1] = 5, y[0] = 11;
    cr_expect_eq(eb_forward(m, out, x, t, y, 2), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "y[0] = 11"), "message: %s", eb_last_error());
    y[0] = 10; /* the null class is a valid label */
    cr_expect_eq(eb_forward(m, out, x, t, y, 2), EB_OK, "%s", eb_last_error());
    x[1 * 256 + 2 * 64 + 3 * 8 + 4] = NAN;
    cr_expect_eq(eb_forward(m, out, x, t, y, 2), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "[1, 2, 3, 4]"), "message: %s", eb_last_error());
    eb_model_free(m);
}

Test(model, named_configs_and_cost) {
    eb_config c;
    cr_assert_eq(eb_config_named(&c, "DiT-XL/2"), EB_OK);
    cr_expect_eq(c.hidden_size, 1152);
    cr_expect_eq(c.depth, 28);
    cr_expect_eq(c.num_heads, 16);
    /* The DiT paper's 118.6 "Gflops" for XL/2 are multiply-accumulates; its parameter count is 675M. */
    cr_expect(fabs(eb_forward_macs(&c) * 1e-9 - 118.6) < 0.1, "XL/2 GMACs %g", eb_forward_macs(&c) * 1e-9);
    cr_expect(fabs(eb_param_count(&c) * 1e-6 - 675.1) < 0.5, "XL/2 params %zu", eb_param_count(&c));
    cr_assert_eq(eb_config_named(&c, "S/8"), EB_OK);
    cr_expect_eq(c.patch_size, 8);
    cr_expect_eq(eb_config_named(&c, "XL/3"), EB_EINPUT);
    cr_expect_eq(eb_config_named(&c, "M/2"), EB_EINPUT);
    c.num_heads = 7;
    cr_expect_eq(eb_config_validate(&c), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "num_heads"), "%s", eb_last_error());
}
