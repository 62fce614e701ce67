/* test_toca.c — ToCa's partial MLP: the cache engine against
 * reference/toca_ref.py (tests/golden/toca.h5, relative 1e-5 fp32, on the CPU
 * and on CUDA where a device runs), the generator against the reference's
 * decisions, the executed MACs against the formula, the token kernels, and
 * the table's partial action. */
#include "runtime/cache.h"
#include "runtime/cpu/kernels.h"
#include "runtime/h5io.h"
#include "runtime/model.h"
#include "search/toca.h"
#include "tests/golden.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TOCA_TOL 1e-5 /* max |Δ| / max |want|, per step and for whole loops */
#define FILE_ "toca.h5"

/* The golden's groups and what reference/toca_ref.py made them with (its `cases`). */
typedef struct {
    const char *group, *model, *spacing;
    int heads, depth;
    eb_sampler_opts opts;
    double ratio;
    int interval;
} toca_golden;

static const toca_golden SIGMA_CFG = {
    "sigma_cfg", "tiny_sigma.safetensors", "20", 0, 2,
    {.kind = EB_SAMPLER_DDPM, .var_type = EB_VAR_LEARNED_RANGE, .cfg_scale = 1.5f, .guide_channels = 3, .seed = 5},
    0.07, 4};
static const toca_golden NOSIGMA_DDIM = {
    "nosigma", "tiny_nosigma.safetensors", "ddim20", 3, 3,
    {.kind = EB_SAMPLER_DDIM, .var_type = EB_VAR_FIXED_SMALL, .cfg_scale = 1.0f, .seed = 6}, 0.15, 3};

typedef struct {
    eb_cache_schedule *table;
    eb_schedule sched;
    int guided;
} toca_case;

/* The group's table (its attribute) and sampler schedule. */
static toca_case load(const toca_golden *g) {
    toca_case tc = {.guided = g->opts.cfg_scale != 1.0f};
    eb_h5 *f;
    char *text = NULL;
    cr_assert_eq(eb_h5_open(&f, GOLDEN_DIR FILE_), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_h5_attr_str(f, g->group, "table", &text), EB_OK, "%s", eb_last_error());
    eb_h5_close(f);
    cr_assert_eq(eb_cache_schedule_parse(&tc.table, text, g->group), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_schedule_create(&tc.sched, g->spacing), EB_OK);
    free(text);
    return tc;
}

static float *data(const char *group, const char *what, int rank, int64_t *dims) {
    char name[128];
    snprintf(name, sizeof name, "%s/%s", group, what);
    return golden_f32(FILE_, name, rank, dims);
}

static int32_t *data_i32(const char *group, const char *what, int rank, int64_t *dims) {
    char name[128];
    snprintf(name, sizeof name, "%s/%s", group, what);
    return golden_i32(FILE_, name, rank, dims);
}

/* The MACs per row the reference's decisions cost (fresh (S, L), tokens (S, L)), counted here from the
 * model's shapes: every block's adaLN; a fresh block its attention with the column sums of its map and
 * its MLP; a partial block the MLP of its K tokens and the score. */
static double reference_macs(const eb_config *c, const int32_t *fresh, const int32_t *tokens, int S) {
    const double D = c->hidden_size, T = eb_tokens(c), NH = c->num_heads, L = c->depth;
    const double embed = T * D * c->in_channels * c->patch_size * c->patch_size + 256 * D + D * D;
    const double final = 2 * D * D + T * D * c->patch_size * c->patch_size * eb_out_channels(c);
    double macs = 0;
    for (int k = 0; k < S; k++) {
        macs += embed + final;
        for (int l = 0; l < L; l++) {
            const int i = k * c->depth + l;
            macs += 6 * D * D;
            if (fresh[i]) macs += 4 * T * D * D + 2 * T * T * D + NH * T * T + 8 * T * D * D;
            else macs += 8 * tokens[i] * D * D + NH * T;
        }
    }
    return macs;
}

/* The golden case on model m (g's model on some device; freed here). */
static void check_case(const toca_golden *g, eb_model *m) {
    const char *group = g->group;
    toca_case tc = load(g);
    const eb_config *c = eb_model_config(m);
    int64_t xd[5], od[5], fd[2];
    float *xs = data(group, "x", 5, xd), *want = data(group, "out", 5, od);
    int32_t *y = data_i32(group, "y", 1, NULL), *fresh = data_i32(group, "fresh", 2, fd);
    int32_t *tokens = data_i32(group, "tokens", 2, NULL);
    const int S = tc.sched.S, N = (int)xd[1], B = tc.guided ? 2 * N : N;
    cr_assert_eq(xd[0], S);
    cr_assert_eq(fd[1], c->depth);
    const size_t per_x = (size_t)N * xd[2] * xd[3] * xd[4], per_out = (size_t)N * od[2] * od[3] * od[4];

    /* teacher forcing: the reference's input at every step */
    eb_cache *cache;
    cr_assert_eq(eb_cache_create(&cache, m, tc.table, &tc.sched, B), EB_OK, "%s", eb_last_error());
    float *out = malloc(per_out * sizeof(float));
    int32_t t[16];
    for (int k = 0; k < S; k++) {
        for (int i = 0; i < N; i++) t[i] = tc.sched.timestep[S - 1 - k];
        cr_assert_eq(eb_forward_run(m, cache, k, out, xs + k * per_x, t, y, N, tc.guided, g->opts.cfg_scale, 3), EB_OK,
                     "%s", eb_last_error());
        double err = max_rel_err(out, want + k * per_out, per_out);
        cr_expect_leq(err, TOCA_TOL, "%s step %d: rel err %g", group, k, err);
    }
    const double ref_macs = reference_macs(c, fresh, tokens, S);
    cr_expect_eq(eb_cache_macs(cache), B * ref_macs, "%s: executed %.17g MACs, the reference's decisions cost %.17g",
                 group, eb_cache_macs(cache), B * ref_macs);
    eb_cache_free(cache);

    /* the whole loop */
    float *x = data(group, "xT", 4, NULL), *samples = data(group, "samples", 4, NULL);
    eb_cache_stats stats = {0};
    cr_assert_eq(eb_sample_cached(m, &tc.sched, &g->opts, tc.table, x, y, N, 0, &stats), EB_OK, "%s", eb_last_error());
    double err = max_rel_err(x, samples, per_x);
    cr_expect_leq(err, TOCA_TOL, "%s whole loop: rel err %g", group, err);
    cr_expect_eq(stats.macs, B * ref_macs);
    cr_expect_leq(fabs(stats.macs / stats.macs_uncached - eb_cache_schedule_flops(tc.table, c)), 1e-12);
    free(xs), free(want), free(y), free(fresh), free(tokens), free(out), free(x), free(samples);
    eb_cache_schedule_free(tc.table);
    eb_schedule_free(&tc.sched);
    eb_model_free(m);
}

Test(toca, guided_ddpm_matches_reference) { check_case(&SIGMA_CFG, golden_model(SIGMA_CFG.model, SIGMA_CFG.heads)); }
Test(toca, ddim_three_blocks_matches_reference) {
    check_case(&NOSIGMA_DDIM, golden_model(NOSIGMA_DDIM.model, NOSIGMA_DDIM.heads));
}

/* The same goldens with the model on CUDA fp32 (its attention_colsum and toca_select; the tolerance the
 * cache goldens meet there), skipped where no CUDA device runs. */
static void check_case_on_cuda(const toca_golden *g) {
    const eb_backend *be, *cond;
    if (eb_backend_select(&(eb_device){"cuda", EB_PRECISION_FP32}, &be, &cond))
        cr_skip_test("no CUDA device runs here: %s", eb_last_error());
    check_case(g, golden_model_on(g->model, g->heads, "cuda"));
}
Test(toca, cuda_guided_ddpm_matches_reference) { check_case_on_cuda(&SIGMA_CFG); }
Test(toca, cuda_ddim_three_blocks_matches_reference) { check_case_on_cuda(&NOSIGMA_DDIM); }

/* The C generator makes the decisions the reference made: same actions and bit-equal ratios per step and block. */
Test(toca, generator_matches_reference_decisions) {
    const toca_golden *cases[] = {&SIGMA_CFG, &NOSIGMA_DDIM};
    for (size_t n = 0; n < sizeof cases / sizeof cases[0]; n++) {
        const toca_golden *g = cases[n];
        toca_case tc = load(g);
        eb_cache_schedule *gen;
        cr_assert_eq(eb_cache_schedule_toca(&gen, &tc.sched, g->depth, g->ratio, g->interval), EB_OK, "%s",
                     eb_last_error());
        eb_cache_plan a, b;
        cr_assert_eq(eb_cache_plan_build(&a, gen, g->depth, &tc.sched), EB_OK, "%s", eb_last_error());
        cr_assert_eq(eb_cache_plan_build(&b, tc.table, g->depth, &tc.sched), EB_OK, "%s", eb_last_error());
        for (int i = 0; i < a.S * a.L; i++) {
            cr_expect(a.act[2 * i].kind == b.act[2 * i].kind && a.act[2 * i + 1].kind == b.act[2 * i + 1].kind,
                      "%s: step %d block %d differs", g->group, i / a.L, i % a.L);
            cr_expect_eq(a.ratio[i], b.ratio[i], "%s: step %d block %d ratio %.17g, reference %.17g", g->group,
                         i / a.L, i % a.L, a.ratio[i], b.ratio[i]);
        }
        cr_expect(a.colsum[0] && a.partial);
        const eb_toca_score *x = &gen->toca, *y = &tc.table->toca;
        cr_expect(x->weight == y->weight && x->fresh == y->fresh && x->bonus == y->bonus && x->grid == y->grid,
                  "%s: score constants differ", g->group);
        eb_cache_plan_free(&a), eb_cache_plan_free(&b);
        eb_cache_schedule_free(gen);
        eb_cache_schedule_free(tc.table);
        eb_schedule_free(&tc.sched);
    }
}

/* ------------------------------------------------------------------------ */
/* Kernels                                                                   */

Test(toca, select_scores_bonus_ages_and_ties) {
    /* one row, 4x4 tokens, one head: colsum ∝ the token index except token 5, which ties token 6 */
    enum { T = 16, K = 5 };
    float colsum[T];
    for (int j = 0; j < T; j++) colsum[j] = (float)(j + 1);
    colsum[5] = colsum[6];
    float age[T] = {0};
    age[0] = 8; /* weight·8/4 = 2 lifts the lowest-attention token to the top */
    int32_t idx[K];
    toca_select_forward(idx, age, colsum, 1, 1, T, K, 0.25, 4, 0.6, 2);
    /* the expected choice in double: s_j = c_j / ‖c‖ (+ 2 for token 0), then ×1.6 for the best of each
     * 2x2 patch ({0,1,4,5}: 0, aged; {2,3,6,7}: 7; {8,9,12,13}: 13; {10,11,14,15}: 15), the top K */
    double norm = 0, s[T];
    for (int j = 0; j < T; j++) norm += (double)colsum[j] * colsum[j];
    for (int j = 0; j < T; j++) s[j] = colsum[j] / sqrt(norm) + (j == 0 ? 2.0 : 0.0);
    const int best[4] = {0, 7, 13, 15};
    for (int b = 0; b < 4; b++) s[best[b]] *= 1.6;
    int want[K], used[T] = {0};
    for (int k = 0; k < K; k++) {
        int top = -1;
        for (int j = 0; j < T; j++)
            if (!used[j] && (top < 0 || s[j] > s[top])) top = j;
        used[top] = 1, want[k] = top;
    }
    for (int k = 0; k < K; k++) cr_expect_eq(idx[k], want[k], "choice %d: token %d, want %d", k, idx[k], want[k]);
    for (int j = 0; j < T; j++) cr_expect_eq(age[j], used[j] ? 0.0f : (j == 0 ? 9.0f : 1.0f), "age %d", j);
    /* a tie: tokens 5 and 6 score the same with no bonus and no age; the lower index comes first */
    float flat[T] = {0};
    colsum[6] = colsum[5] = 100;
    toca_select_forward(idx, flat, colsum, 1, 1, T, 2, 0.25, 4, 0, 2);
    cr_expect(idx[0] == 5 && idx[1] == 6, "tie order %d %d", idx[0], idx[1]);
}

Test(toca, gather_scatter_and_column_sums) {
    enum { B = 2, T = 16, D = 3, K = 4, NH = 2, hd = 4 };
    float x[B * T * D], g[B * K * D], y[B * T * D] = {0};
    for (int i = 0; i < B * T * D; i++) x[i] = (float)i;
    const int32_t idx[B * K] = {3, 0, 15, 7, 1, 2, 9, 4};
    token_gather_forward(g, x, idx, B, T, K, D);
    for (int b = 0; b < B; b++)
        for (int k = 0; k < K; k++)
            for (int d = 0; d < D; d++) cr_expect_eq(g[(b * K + k) * D + d], x[(b * T + idx[b * K + k]) * D + d]);
    token_scatter_forward(y, g, idx, B, T, K, D);
    int moved = 0;
    for (int i = 0; i < B * T * D; i++) moved += y[i] != 0;
    cr_expect_eq(moved, B * K * D - 1, "only the gathered rows (x[0] = 0) land"); /* token 0 of row 0 holds 0,1,2 */
    /* the column sums equal those of attention_forward's probabilities, and the output is the same */
    const int Dm = NH * hd;
    float qkv[B * T * 3 * Dm], o1[B * T * Dm], o2[B * T * Dm], probs[B * NH * T * T], cs[B * NH * T];
    eb_rng_fill_normal(qkv, sizeof qkv / sizeof qkv[0], eb_rng_key(7, 0));
    attention_forward(o1, probs, qkv, B, T, NH, hd);
    attention_colsum_forward(o2, cs, qkv, B, T, NH, hd);
    cr_expect_eq(memcmp(o1, o2, sizeof o1), 0);
    for (int bh = 0; bh < B * NH; bh++)
        for (int j = 0; j < T; j++) {
            double sum = 0;
            for (int i = 0; i < T; i++) sum += probs[((size_t)bh * T + i) * T + j];
            cr_expect_leq(fabs(cs[bh * T + j] - sum), 1e-6 * sum + 1e-7, "head-row %d token %d", bh, j);
        }
}

/* ------------------------------------------------------------------------ */
/* The table                                                                 */

static eb_status parse(const char *rows, eb_cache_schedule **cs) {
    char text[1024];
    snprintf(text, sizeof text, "# ebcache schedule v1\n## steps: 2\n%s", rows);
    return eb_cache_schedule_parse(cs, text, "t");
}

Test(toca, partial_action_parse_print_and_checks) {
    eb_cache_schedule *cs;
    cr_assert_eq(parse("## toca: weight=0.5 grid=1\n0 999 * C C 1\n1 499 * R P0.3 1\n1 499 0 R P1 1\n", &cs), EB_OK,
                 "%s", eb_last_error());
    cr_expect(cs->rows[1].mlp.kind == EB_ACT_PARTIAL && cs->rows[1].ratio == 0.3 && cs->rows[2].ratio == 1);
    cr_expect(cs->toca.weight == 0.5 && cs->toca.grid == 1 && cs->toca.fresh == 4 && cs->toca.bonus == 0.6);
    char *buf;
    size_t len;
    FILE *f = open_memstream(&buf, &len);
    eb_cache_schedule_print(f, cs);
    fclose(f);
    eb_cache_schedule *back;
    cr_assert_eq(eb_cache_schedule_parse(&back, buf, "back"), EB_OK, "%s", eb_last_error());
    cr_expect(back->nrows == 3 && back->rows[1].ratio == 0.3 && back->toca.weight == 0.5 && back->toca.grid == 1);
    free(buf);
    eb_cache_schedule_free(back);
    /* MACs: a partial MLP of ⌊0.3·T⌋ tokens on 2 blocks */
    eb_config c = {.input_size = 8, .patch_size = 2, .in_channels = 4, .hidden_size = 64, .depth = 2, .num_heads = 4,
                   .num_classes = 10, .learn_sigma = 1};
    eb_cache_plan p;
    cr_assert_eq(eb_cache_plan_build(&p, cs, 2, NULL), EB_OK, "%s", eb_last_error());
    eb_macs_parts mp;
    eb_macs_split(&mp, &c);
    const double T = 16, D = 64;
    double want = mp.embed + mp.final + 2 * mp.adaln + (8 * 4 * D * D + 4 * T) + (8 * 16 * D * D + 4 * T);
    cr_expect_eq(eb_plan_step_macs(&p, &mp, 1, 0), want, "%.17g vs %.17g", eb_plan_step_macs(&p, &mp, 1, 0), want);
    cr_expect_eq(eb_plan_step_macs(&p, &mp, 0, 0), eb_forward_macs(&c) + 2 * 4 * T * T);
    eb_cache_plan_free(&p);
    eb_cache_schedule_free(cs);

    const char *bad[][2] = {
        {"0 999 * C C 1\n1 499 * P0.3 C 1\n", "partial compute is for the mlp column only"},
        {"0 999 * C C 1\n1 499 * R P1.5 1\n", "unknown mlp action 'P1.5'"},
        {"0 999 * C C 1\n1 499 * R Px 1\n", "unknown mlp action 'Px'"},
        {"## toca: grid=0\n0 999 * C C 1\n1 499 * R P0.1 1\n", "grid '0'"},
        {"## toca: fresh=-1\n0 999 * C C 1\n1 499 * R P0.1 1\n", "fresh '-1'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_expect_eq(parse(bad[i][0], &cs), EB_EINPUT, "case %zu parsed", i);
        cr_expect(strstr(eb_last_error(), bad[i][1]), "case %zu: %s", i, eb_last_error());
    }
}

/* A backend without ToCa's selection refuses the table at create time, naming the op. */
Test(toca, backend_without_the_ops_refuses) {
    eb_model *m = golden_host_model("tiny_sigma.safetensors", 0);
    eb_schedule s;
    cr_assert_eq(eb_schedule_create(&s, "10"), EB_OK);
    eb_cache_schedule *cs;
    cr_assert_eq(eb_cache_schedule_toca(&cs, &s, 2, 0.2, 3), EB_OK, "%s", eb_last_error());
    eb_backend limited = eb_backend_cpu;
    limited.toca_select = NULL;
    const eb_backend *orig = m->be;
    m->be = &limited;
    eb_cache *cache;
    cr_expect_eq(eb_cache_create(&cache, m, cs, &s, 2), EB_ERUNTIME);
    cr_expect(strstr(eb_last_error(), "has no toca_select"), "%s", eb_last_error());
    cr_expect_null(cache);
    m->be = orig;
    /* a grid the score patches do not tile: a 3x3-token patch on a 4x4 grid */
    cs->toca.grid = 3;
    cr_expect_eq(eb_cache_create(&cache, m, cs, &s, 2), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "do not tile"), "%s", eb_last_error());
    eb_cache_schedule_free(cs);
    eb_schedule_free(&s);
    eb_model_free(m);
}

/* Same seed, same bits at any thread count: the score, selection, gather and scatter included. */
Test(toca, bits_independent_of_threads) {
    eb_model *m = golden_host_model("tiny_nosigma.safetensors", 3);
    const eb_config *c = eb_model_config(m);
    eb_schedule s;
    cr_assert_eq(eb_schedule_create(&s, "12"), EB_OK);
    eb_cache_schedule *cs;
    cr_assert_eq(eb_cache_schedule_toca(&cs, &s, c->depth, 0.3, 3), EB_OK, "%s", eb_last_error());
    enum { N = 3 };
    const size_t per = (size_t)c->in_channels * c->input_size * c->input_size;
    float *x[2];
    int32_t y[N] = {1, 4, 2};
    const eb_sampler_opts o = {.kind = EB_SAMPLER_DDPM, .var_type = EB_VAR_FIXED_LARGE, .cfg_scale = 2.0f,
                               .guide_channels = 2, .seed = 9};
    for (int r = 0; r < 2; r++) {
        x[r] = malloc(N * per * sizeof(float));
        for (int n = 0; n < N; n++) eb_rng_fill_normal(x[r] + n * per, per, eb_rng_key(21, eb_stream_xT(n)));
        eb_set_threads(r + 1);
        cr_assert_eq(eb_sample_cached(m, &s, &o, cs, x[r], y, N, 0, NULL), EB_OK, "%s", eb_last_error());
    }
    eb_set_threads(0);
    cr_expect_eq(memcmp(x[0], x[1], N * per * sizeof(float)), 0, "1 and 2 threads differ");
    free(x[0]), free(x[1]);
    eb_cache_schedule_free(cs);
    eb_schedule_free(&s);
    eb_model_free(m);
}
