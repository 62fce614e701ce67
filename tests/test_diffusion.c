/* test_diffusion.c — schedules, p_mean_variance and whole sampling loops
 * against the reference goldens; the noise generator. */
#include "runtime/diffusion.h"
#include "tests/golden.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOOP_TOL 1e-5 /* whole sampling loops, max |Δ| / max |want| */

Test(diffusion, respaced_schedules_match_reference) {
    struct { const char *group, *spec; } cases[] = {
        {"r1000", ""}, {"r250", "250"}, {"r50", "50"}, {"ddim50", "ddim50"}, {"ddim25", "ddim25"},
        {"r10_10_5", "10,10,5"}, {"r7", "7"}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        eb_schedule s;
        cr_assert_eq(eb_schedule_create(&s, cases[k].spec), EB_OK, "%s", eb_last_error());
        char name[128];
        int64_t d[1];
        snprintf(name, sizeof name, "/%s/timestep", cases[k].group);
        int32_t *ts = golden_i32("schedules.h5", name, 1, d);
        cr_assert_eq(d[0], s.S, "%s: %d steps, reference %lld", cases[k].group, s.S, (long long)d[0]);
        for (int i = 0; i < s.S; i++) cr_expect_eq(s.timestep[i], ts[i], "%s: timestep[%d]", cases[k].group, i);
        free(ts);
        struct { const char *name; const double *got; } arrays[] = {
            {"betas", s.betas}, {"alphas_cumprod", s.alphas_cumprod}, {"alphas_cumprod_prev", s.alphas_cumprod_prev},
            {"sqrt_recip_ac", s.sqrt_recip_ac}, {"sqrt_recipm1_ac", s.sqrt_recipm1_ac},
            {"posterior_variance", s.posterior_variance}, {"posterior_log_var_clipped", s.posterior_log_var_clipped},
            {"posterior_mean_coef1", s.posterior_mean_coef1}, {"posterior_mean_coef2", s.posterior_mean_coef2}};
        for (size_t a = 0; a < sizeof arrays / sizeof arrays[0]; a++) {
            snprintf(name, sizeof name, "/%s/%s", cases[k].group, arrays[a].name);
            double *want = golden_f64("schedules.h5", name, 1, d);
            double err = max_rel_err_f64(arrays[a].got, want, s.S);
            cr_expect_leq(err, 1e-12, "%s: rel err %g", name, err);
            free(want);
        }
        eb_schedule_free(&s);
    }
}

Test(diffusion, rejects_bad_respacing) {
    const char *bad[] = {"0", "abc", "10,", "2000", "ddim999", "ddim", "ddim1", "5,x", "-3"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        eb_schedule s;
        cr_expect_eq(eb_schedule_create(&s, bad[k]), EB_EINPUT, "'%s' accepted", bad[k]);
        cr_expect(strstr(eb_last_error(), bad[k]), "message names the spec: %s", eb_last_error());
    }
}

Test(diffusion, p_mean_variance_matches_reference) {
    eb_schedule s;
    cr_assert_eq(eb_schedule_create(&s, "50"), EB_OK);
    int64_t xd[4], md[4];
    float *x = golden_f32("pmv.h5", "x", 4, xd);
    float *mo = golden_f32("pmv.h5", "model_out", 4, md);
    int N = (int)xd[0], C = (int)xd[1], HW = (int)(xd[2] * xd[3]);
    size_t n = (size_t)N * C * HW;
    /* the fixed-variance goldens use the ε half of model_out as a C-channel output */
    float *eps_only = malloc(n * sizeof(float));
    for (int b = 0; b < N; b++) memcpy(eps_only + (size_t)b * C * HW, mo + (size_t)b * 2 * C * HW, C * HW * sizeof(float));
    float *got[3];
    for (int k = 0; k < 3; k++) got[k] = malloc(n * sizeof(float));
    const char *outs[3] = {"mean", "log_variance", "pred_xstart"};
    struct { const char *prefix; eb_var_type vt; const float *out; } kinds[] = {
        {"", EB_VAR_LEARNED_RANGE, mo}, {"/fixed_small", EB_VAR_FIXED_SMALL, eps_only},
        {"/fixed_large", EB_VAR_FIXED_LARGE, eps_only}};
    int indices[] = {49, 25, 1, 0};
    for (size_t k = 0; k < 3; k++)
        for (size_t j = 0; j < 4; j++) {
            int i = indices[j];
            eb_p_mean_variance(&s, kinds[k].vt, i, x, kinds[k].out, N, C, HW, got[0], got[1], got[2]);
            for (int o = 0; o < 3; o++) {
                char name[96];
                snprintf(name, sizeof name, "%s/i%d/%s", kinds[k].prefix, i, outs[o]);
                float *want = golden_f32("pmv.h5", name, 4, NULL);
                double err = max_rel_err(got[o], want, n);
                cr_expect_leq(err, 1e-6, "%s: rel err %g", name, err);
                free(want);
            }
        }
    for (int k = 0; k < 3; k++) free(got[k]);
    free(x), free(mo), free(eps_only);
    eb_schedule_free(&s);
}

/* Samples from golden `start`/xT, `start`/y and compares with `group`/samples. */
static void check_loop(const char *model, int heads, const char *golden, const char *start, const char *group,
                       const char *spacing, eb_sampler_opts o) {
    eb_model *m = golden_model(model, heads);
    eb_schedule s;
    cr_assert_eq(eb_schedule_create(&s, spacing), EB_OK);
    char name[96];
    int64_t xd[4], nd[1];
    snprintf(name, sizeof name, "%s/xT", start);
    float *x = golden_f32(golden, name, 4, xd);
    snprintf(name, sizeof name, "%s/y", start);
    int32_t *y = golden_i32(golden, name, 1, nd);
    snprintf(name, sizeof name, "%s/samples", group);
    float *want = golden_f32(golden, name, 4, NULL);
    size_t n = (size_t)xd[0] * xd[1] * xd[2] * xd[3];
    cr_assert_eq(eb_sample(m, &s, &o, x, y, (int)xd[0], 0), EB_OK, "%s", eb_last_error());
    double err = max_rel_err(x, want, n);
    cr_expect_leq(err, LOOP_TOL, "%s %s: rel err %g", golden, group, err);
    free(x), free(y), free(want);
    eb_schedule_free(&s);
    eb_model_free(m);
}

Test(diffusion, ddim_loops) {
    eb_sampler_opts o = {.kind = EB_SAMPLER_DDIM, .var_type = EB_VAR_LEARNED_RANGE, .cfg_scale = 1.5f,
                         .guide_channels = 3, .seed = 11};
    check_loop("tiny_sigma.safetensors", 0, "loop_ddim.h5", "", "/eta0_cfg1.5", "ddim10", o);
    o.cfg_scale = 1.0f;
    check_loop("tiny_sigma.safetensors", 0, "loop_ddim.h5", "", "/eta0_cfg1", "ddim10", o);
    o.cfg_scale = 1.5f, o.eta = 0.5f;
    check_loop("tiny_sigma.safetensors", 0, "loop_ddim.h5", "", "/eta0.5_cfg1.5", "ddim10", o);
}

Test(diffusion, ddpm_loops) {
    eb_sampler_opts o = {.kind = EB_SAMPLER_DDPM, .var_type = EB_VAR_LEARNED_RANGE, .cfg_scale = 1.5f,
                         .guide_channels = 3, .seed = 5};
    check_loop("tiny_sigma.safetensors", 0, "loop_ddpm.h5", "", "", "10", o);
    o = (eb_sampler_opts){.kind = EB_SAMPLER_DDPM, .var_type = EB_VAR_FIXED_SMALL, .cfg_scale = 1.0f, .seed = 6};
    check_loop("tiny_nosigma.safetensors", 3, "loop_ddpm.h5", "/nosigma", "/nosigma", "10", o);
    o.var_type = EB_VAR_FIXED_LARGE;
    check_loop("tiny_nosigma.safetensors", 3, "loop_ddpm.h5", "/nosigma", "/nosigma_large", "10", o);
}

/* DDPM on the shipped model's kind (1 channel, learn_sigma) at cfg 4: the
 * official rule guides the variance channel, so every step's variance differs
 * from the ε-only rule's (the goldens differ by 4e-3 relative). */
Test(diffusion, ddpm_loop_with_guided_variance) {
    eb_model *m = golden_model("tiny_sigma1.safetensors", 0);
    const eb_config *c = eb_model_config(m);
    eb_sampler_opts o = {.kind = EB_SAMPLER_DDPM, .var_type = EB_VAR_LEARNED_RANGE, .cfg_scale = 4.0f, .seed = 12};
    o.guide_channels = eb_default_guide_channels(c);
    cr_expect_eq(o.guide_channels, 2, "the official slice [:, :3] holds ε and the variance channel");
    check_loop("tiny_sigma1.safetensors", 0, "cfg_sigma1.h5", "/ddpm", "/ddpm/official", "10", o);
    o.guide_channels = eb_guide_channels(c, EB_GUIDE_EPS);
    check_loop("tiny_sigma1.safetensors", 0, "cfg_sigma1.h5", "/ddpm", "/ddpm/eps", "10", o);
    eb_model_free(m);
}

Test(diffusion, loop_same_bits_at_any_thread_count) {
    eb_model *m = golden_model("tiny_sigma.safetensors", 0);
    eb_schedule s;
    cr_assert_eq(eb_schedule_create(&s, "5"), EB_OK);
    eb_sampler_opts o = {.kind = EB_SAMPLER_DDPM, .var_type = EB_VAR_LEARNED_RANGE, .cfg_scale = 1.5f,
                         .guide_channels = 3, .seed = 9};
    enum { N = 3, PER = 4 * 8 * 8 };
    float one[N * PER], two[N * PER];
    int32_t y[N] = {1, 4, 7};
    for (int n = 0; n < N; n++) eb_rng_fill_normal(one + n * PER, PER, eb_rng_key(9, eb_stream_xT(n)));
    memcpy(two, one, sizeof one);
    eb_set_threads(1);
    cr_assert_eq(eb_sample(m, &s, &o, one, y, N, 0), EB_OK);
    eb_set_threads(2);
    cr_assert_eq(eb_sample(m, &s, &o, two, y, N, 0), EB_OK);
    cr_expect_eq(memcmp(one, two, sizeof one), 0, "1 and 2 threads give different samples");
    eb_schedule_free(&s);
    eb_model_free(m);
}

Test(diffusion, rng_matches_reference) {
    struct { const char *name; uint64_t seed, stream; } cases[] = {
        {"s0_stream0", 0, 0}, {"s42_stream_3_5", 42, (3u << 20) | 5}};
    for (size_t k = 0; k < 2; k++) {
        int64_t d[1];
        float *want = golden_f32("rng.h5", cases[k].name, 1, d);
        float *got = malloc(d[0] * sizeof(float));
        eb_rng_fill_normal(got, d[0], eb_rng_key(cases[k].seed, cases[k].stream));
        size_t same = 0;
        for (int64_t j = 0; j < d[0]; j++) same += got[j] == want[j];
        /* numpy's and glibc's double log/cos may differ in the last bit, rarely visible in float */
        cr_expect_geq(same, (size_t)d[0] - 1, "%s: %zu of %lld identical", cases[k].name, same, (long long)d[0]);
        cr_expect_leq(max_rel_err(got, want, d[0]), 1e-6);
        free(want), free(got);
    }
    /* Basic statistics of a long stream. */
    enum { M = 200000 };
    float *z = malloc(M * sizeof(float));
    eb_rng_fill_normal(z, M, eb_rng_key(123, 0));
    double mean = 0, var = 0;
    for (int j = 0; j < M; j++) mean += z[j];
    mean /= M;
    for (int j = 0; j < M; j++) var += (z[j] - mean) * (z[j] - mean);
    var /= M - 1;
    cr_expect(fabs(mean) < 0.01 && fabs(var - 1) < 0.015, "mean %g var %g", mean, var);
    free(z);
}
