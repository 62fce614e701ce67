/* test_schedule.c — the schedule table: parsing, validation errors that name
 * the line, writing, FLOP accounting, generators, the EB-Cache .npy reader
 * and the `ebcache schedule` / `sample --schedule` commands. */
#include "tests/cli_util.h"
#include "tests/golden.h"
#include "runtime/h5io.h"
#include "runtime/schedule.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    cr_assert(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

/* A 4-step table for the respacing "4" (t = 999, 666, 333, 0). */
#define HEAD "# ebcache schedule v1\n## method: test\n## steps: 4\n"
#define GOOD HEAD "0 999 * C C 1\n1 666 * R C 1\n1 666 0 C R 1\n2 333 * T2 T1 0.965\n3 0 * C C 1\n"

Test(schedule, parses_rows_overrides_and_header) {
    eb_cache_schedule *cs;
    cr_assert_eq(eb_cache_schedule_parse(&cs, GOOD "# a trailing comment\n\n", "good"), EB_OK, "%s", eb_last_error());
    cr_expect_str_eq(cs->method, "test");
    cr_expect_eq(cs->steps, 4);
    cr_assert_eq(cs->nrows, 5);
    eb_sched_row r = cs->rows[2];
    cr_expect(r.line == 6 && r.step == 1 && r.t == 666 && r.lo == 0 && r.hi == 0);
    cr_expect(r.attn.kind == EB_ACT_COMPUTE && r.mlp.kind == EB_ACT_REUSE);
    r = cs->rows[3];
    cr_expect(r.attn.kind == EB_ACT_FORECAST && r.attn.order == 2 && r.mlp.order == 1 && r.scale == 0.965);
    cr_expect(isnan(cs->flops) && cs->policy.kind == EB_POLICY_NONE);
    eb_cache_schedule_free(cs);

    cr_assert_eq(eb_cache_schedule_parse(&cs,
                                         "# ebcache schedule v1\n## steps: 2\n## policy: teacache threshold=0.25 "
                                         "poly=3,-2.5,1e-3\n0 999 * C C 1\n1 0 * C C 1\n",
                                         "policy"),
                 EB_OK, "%s", eb_last_error());
    cr_expect(cs->policy.kind == EB_POLICY_TEACACHE && cs->policy.threshold == 0.25 && cs->policy.npoly == 3);
    cr_expect(cs->policy.poly[0] == 3 && cs->policy.poly[1] == -2.5 && cs->policy.poly[2] == 1e-3);
    eb_cache_schedule_free(cs);
}

/* Every malformed table fails with EB_EINPUT, naming the line. */
Test(schedule, syntax_errors_name_the_line) {
    struct { const char *text; int line; const char *phrase; } cases[] = {
        {"# ebcache schedule v2\n## steps: 1\n0 999 * C C 1\n", 1, "unsupported version 'v2'"},
        {"step t blocks\n", 1, "not an ebcache schedule"},
        {"", 1, "not an ebcache schedule"},
        {HEAD "## metod: x\n", 4, "unknown directive 'metod'"},
        {HEAD "## steps: 5\n", 4, "'steps' given twice"},
        {"# ebcache schedule v1\n0 999 * C C 1\n", 2, "rows must follow"},
        {HEAD "0 999 * C C\n", 4, "expected 6 columns"},
        {HEAD "0 999 * C C 1 extra\n", 4, "expected 6 columns"},
        {HEAD "0 999 * X C 1\n", 4, "unknown attn action 'X'"},
        {HEAD "0 999 * C T5 1\n", 4, "unknown mlp action 'T5'"},
        {HEAD "7 999 * C C 1\n", 4, "step '7' is not an integer in [0, 3]"},
        {HEAD "0 1000 * C C 1\n", 4, "t '1000'"},
        {HEAD "0 999 * C C 1\n2 333 * C C 1\n", 5, "step 1 has no row"},
        {HEAD "0 999 * C C 1\n1 666 0 C C 1\n", 5, "must cover every block"},
        {HEAD "0 999 * C C 1\n0 999 * R R 1\n", 5, "second '*' row"},
        {HEAD "0 999 * C C 1\n0 998 1 C C 1\n", 5, "t 998 differs"},
        {HEAD "0 999 * C C 1\n0 999 1 C C 0.5\n", 5, "scale 0.5 differs"},
        {HEAD "0 999 * C C 1\n1 666 * C C 1\n0 999 1 C C 1\n", 6, "rows must be in step order"},
        {HEAD "0 999 * C C 0\n", 4, "scale '0'"},
        {HEAD "0 999 * C C nan\n", 4, "scale 'nan'"},
        {HEAD "0 999 3-1 C C 1\n", 4, "blocks '3-1'"},
        {HEAD "0 999 * C C 1\n1 666 * C C 1\n", 5, "steps 2..3 have no row"},
        {HEAD "0 999 * C C 1\n## model: late\n", 5, "directives belong in the header"},
        {HEAD "## policy: foo threshold=1\n", 4, "unknown kind 'foo'"},
        {HEAD "## policy: teacache poly=1,0\n", 4, "threshold=X is required"},
        {HEAD "## policy: teacache threshold=0.1 poly=1,a\n", 4, "poly coefficient 'a'"},
        {HEAD "## policy: fbcache threshold=0.1\n", 4, "needs blocks=F"},
        {HEAD "## policy: fbcache threshold=0.1 blocks=1 poly=1\n", 4, "unknown key 'poly'"},
        {HEAD "## flops: 2\n", 4, "flops '2' is not a fraction"},
        {"# ebcache schedule v1\n## method: x\n", 2, "no '## steps: S' directive"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        eb_cache_schedule *cs = (eb_cache_schedule *)1;
        cr_expect_eq(eb_cache_schedule_parse(&cs, cases[i].text, "bad.tsv"), EB_EINPUT, "case %zu parsed", i);
        cr_expect_null(cs);
        char where[32];
        snprintf(where, sizeof where, "bad.tsv:%d: ", cases[i].line);
        cr_expect(strstr(eb_last_error(), where) && strstr(eb_last_error(), cases[i].phrase),
                  "case %zu: want '%s...%s', got '%s'", i, where, cases[i].phrase, eb_last_error());
    }
}

/* Tables that parse but do not fit the model (depth 2) or the sampler ("4"). */
Test(schedule, validation_errors_name_the_line) {
    /* sampler: the error is the sampler's, the table still fits the model (its FLOPs are defined) */
    struct { const char *text; const char *spacing; int line; const char *phrase; int sampler; } cases[] = {
        {GOOD, "5", 3, "the table has 4 steps but the sampler runs 5", 1},
        {HEAD "0 999 * C C 1\n1 700 * C C 1\n2 333 * C C 1\n3 0 * C C 1\n", "4", 5, "t = 700 but the sampler's step 1 runs t = 666", 1},
        {HEAD "0 999 * C C 1\n1 666 * C C 1\n1 666 5 R R 1\n2 333 * C C 1\n3 0 * C C 1\n", "4", 6, "block 5 outside the model's blocks [0, 2)", 0},
        {HEAD "0 999 * R C 1\n1 666 * C C 1\n2 333 * C C 1\n3 0 * C C 1\n", "4", 4, "block 0 attention: reuse with nothing cached yet", 0},
        {HEAD "0 999 * C C 1\n0 999 1 C T1 1\n1 666 * C C 1\n2 333 * C C 1\n3 0 * C C 1\n", "4", 5, "block 1 mlp: forecast with nothing cached", 0},
        {HEAD "0 999 * C C 1\n0 999 1 S S 1\n1 666 * C C 1\n2 333 * C C 1\n3 0 * C C 1\n", "4", 5, "blocks 1-1 skip with nothing cached yet", 0},
        {HEAD "0 999 * C C 1\n1 666 * C C 1\n1 666 1 S C 1\n2 333 * C C 1\n3 0 * C C 1\n", "4", 6, "S (skip) must be given for both", 0},
        {HEAD "## policy: teacache threshold=0.1\n0 999 * C C 1\n1 666 * R C 1\n2 333 * C C 1\n3 0 * C C 1\n", "4", 6, "dynamic policy (line 4) needs every action C", 0},
        {HEAD "## policy: fbcache threshold=0.1 blocks=2\n0 999 * C C 1\n1 666 * C C 1\n2 333 * C C 1\n3 0 * C C 1\n", "4", 4, "leaves no block to cache", 0},
    };
    eb_config c = {.input_size = 8, .patch_size = 2, .in_channels = 4, .hidden_size = 64, .depth = 2, .num_heads = 4,
                   .num_classes = 10, .learn_sigma = 1};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        eb_cache_schedule *cs;
        eb_schedule s;
        cr_assert_eq(eb_cache_schedule_parse(&cs, cases[i].text, "fit.tsv"), EB_OK, "case %zu: %s", i, eb_last_error());
        cr_assert_eq(eb_schedule_create(&s, cases[i].spacing), EB_OK);
        cr_expect_eq(eb_cache_schedule_check(cs, &c, &s), EB_EINPUT, "case %zu passed", i);
        char where[32];
        snprintf(where, sizeof where, "fit.tsv:%d: ", cases[i].line);
        cr_expect(strstr(eb_last_error(), where) && strstr(eb_last_error(), cases[i].phrase),
                  "case %zu: want '%s...%s', got '%s'", i, where, cases[i].phrase, eb_last_error());
        cr_expect(isnan(eb_cache_schedule_flops(cs, &c)) == !cases[i].sampler, "case %zu: flops", i);
        eb_cache_schedule_free(cs);
        eb_schedule_free(&s);
    }
}

Test(schedule, write_read_round_trip, .init = cli_workdir_make, .fini = cli_workdir_remove) {
    eb_schedule s;
    cr_assert_eq(eb_schedule_create(&s, "ddim10"), EB_OK);
    eb_cache_schedule *a, *b;
    cr_assert_eq(eb_cache_schedule_delta_dit(&a, &s, 28, 3, 4, 6), EB_OK);
    a->policy = (eb_policy){0};
    cr_assert_eq(eb_cache_schedule_add(a, &s, 9, 2, 2, (eb_act){EB_ACT_FORECAST, 3}, (eb_act){EB_ACT_REUSE, 0}, 1),
                 EB_OK); /* an override of the last step */
    for (int i = 0; i < a->nrows; i++) a->rows[i].scale = 0.1 * (a->rows[i].step + 1) / 3; /* digits that need care */
    a->flops = 0.123456;
    snprintf(a->model, sizeof a->model, "DiT-XL/2");
    char path[512];
    cr_assert_eq(eb_cache_schedule_write(a, in_workdir(path, "t.tsv")), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_cache_schedule_read(&b, path), EB_OK, "%s", eb_last_error());
    cr_expect_str_eq(b->method, "delta-dit");
    cr_expect_str_eq(b->params, a->params);
    cr_expect_str_eq(b->model, "DiT-XL/2");
    cr_expect_eq(b->steps, 10);
    cr_expect_eq(b->flops, 0.1235, "flops are written with 4 decimals");
    cr_assert_eq(b->nrows, a->nrows);
    for (int i = 0; i < a->nrows; i++) {
        eb_sched_row x = a->rows[i], y = b->rows[i];
        x.line = y.line = 0;
        cr_expect_eq(memcmp(&x, &y, sizeof x), 0, "row %d differs after the round trip", i);
    }
    eb_cache_schedule_free(a);
    eb_cache_schedule_free(b);
    cr_expect_eq(eb_cache_schedule_read(&b, in_workdir(path, "missing.tsv")), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "missing.tsv"));
    eb_schedule_free(&s);
}

Test(schedule, flop_accounting) {
    eb_config c;
    cr_assert_eq(eb_config_named(&c, "XL/2"), EB_OK);
    eb_macs_parts mp;
    eb_macs_split(&mp, &c);
    double sum = mp.embed + c.depth * (mp.adaln + mp.attn + mp.mlp) + mp.final;
    cr_expect_leq(fabs(sum - eb_forward_macs(&c)), 1e-9 * sum, "the parts add up to eb_forward_macs");
    eb_schedule s;
    cr_assert_eq(eb_schedule_create(&s, "10"), EB_OK);
    eb_cache_schedule *cs;
    cr_assert_eq(eb_cache_schedule_fora(&cs, &s, 1), EB_OK);
    cr_expect_eq(eb_cache_schedule_flops(cs, &c), 1.0);
    eb_cache_schedule_free(cs);
    cr_assert_eq(eb_cache_schedule_fora(&cs, &s, 2), EB_OK);
    double full = eb_forward_macs(&c), reuse = mp.embed + mp.final + c.depth * mp.adaln;
    cr_expect_leq(fabs(eb_cache_schedule_flops(cs, &c) - (5 * full + 5 * reuse) / (10 * full)), 1e-12);
    eb_cache_schedule_free(cs);
    /* Δ-DiT skips whole blocks (their adaLN too) */
    cr_assert_eq(eb_cache_schedule_delta_dit(&cs, &s, c.depth, 2, 7, 5), EB_OK);
    double skip = full - 7 * (mp.adaln + mp.attn + mp.mlp);
    cr_expect_leq(fabs(eb_cache_schedule_flops(cs, &c) - (5 * full + 5 * skip) / (10 * full)), 1e-12);
    eb_cache_schedule_free(cs);
    eb_schedule_free(&s);
}

Test(schedule, generators) {
    eb_schedule s;
    cr_assert_eq(eb_schedule_create(&s, "12"), EB_OK);
    eb_cache_schedule *cs;
    cr_assert_eq(eb_cache_schedule_fora(&cs, &s, 3), EB_OK);
    for (int k = 0; k < 12; k++) {
        cr_expect_eq(cs->rows[k].attn.kind, k % 3 ? EB_ACT_REUSE : EB_ACT_COMPUTE, "fora step %d", k);
        cr_expect_eq(cs->rows[k].t, s.timestep[11 - k], "steps run from the noisiest timestep");
    }
    eb_cache_schedule_free(cs);
    /* TaylorSeer (official cal_type, 2 warm-up steps): full at 0, 1, then every 4th: 5, 9 */
    cr_assert_eq(eb_cache_schedule_taylorseer(&cs, &s, 4, 3, 2), EB_OK);
    for (int k = 0; k < 12; k++) {
        int full = k == 0 || k == 1 || k == 5 || k == 9;
        cr_expect(full ? cs->rows[k].attn.kind == EB_ACT_COMPUTE
                       : cs->rows[k].attn.kind == EB_ACT_FORECAST && cs->rows[k].mlp.order == 3,
                  "taylorseer step %d", k);
    }
    eb_cache_schedule_free(cs);
    /* Δ-DiT: rear blocks before the boundary, front blocks from it */
    cr_assert_eq(eb_cache_schedule_delta_dit(&cs, &s, 28, 2, 4, 6), EB_OK);
    cr_assert_eq(cs->nrows, 12 + 6);
    cr_expect(cs->rows[2].step == 1 && cs->rows[2].lo == 24 && cs->rows[2].hi == 27 && cs->rows[2].attn.kind == EB_ACT_SKIP);
    cr_expect(cs->rows[cs->nrows - 1].step == 11 && cs->rows[cs->nrows - 1].lo == 0 && cs->rows[cs->nrows - 1].hi == 3);
    eb_cache_schedule_free(cs);
    double poly[3] = {2, 1, 0};
    cr_assert_eq(eb_cache_schedule_teacache(&cs, &s, 0.3, poly, 3), EB_OK);
    cr_expect(cs->policy.kind == EB_POLICY_TEACACHE && cs->policy.npoly == 3 && cs->policy.poly[0] == 2);
    eb_cache_schedule_free(cs);
    /* bad parameters */
    cr_expect_eq(eb_cache_schedule_fora(&cs, &s, 0), EB_EINPUT);
    cr_expect_eq(eb_cache_schedule_taylorseer(&cs, &s, 2, 5, 2), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "order 5"));
    cr_expect_eq(eb_cache_schedule_delta_dit(&cs, &s, 28, 2, 29, 6), EB_EINPUT);
    cr_expect_eq(eb_cache_schedule_teacache(&cs, &s, -1, poly, 3), EB_EINPUT);
    cr_expect_eq(eb_cache_schedule_fbcache(&cs, &s, 0.1, 0), EB_EINPUT);
    eb_schedule_free(&s);
}

/* ------------------------------------------------------------------------ */
/* The EB-Cache .npy                                                         */

/* Writes an .npy with header dict `dict`, format version `major`, then `n`
 * little-endian int64 values and `extra` trailing bytes. */
static void write_npy(const char *path, int major, const char *dict, const int64_t *v, int n, int extra) {
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    size_t pre = major == 1 ? 10 : 12, len = strlen(dict) + 1;
    size_t pad = (64 - (pre + len) % 64) % 64;
    fwrite("\x93NUMPY", 1, 6, f);
    fputc(major, f), fputc(0, f);
    size_t hlen = len + pad;
    for (size_t b = 0; b < pre - 8; b++) fputc((int)(hlen >> (8 * b)) & 0xff, f);
    fputs(dict, f);
    for (size_t i = 0; i < pad; i++) fputc(' ', f);
    fputc('\n', f);
    for (int i = 0; i < n; i++)
        for (int b = 0; b < 8; b++) fputc((int)((uint64_t)v[i] >> (8 * b)) & 0xff, f);
    for (int i = 0; i < extra; i++) fputc(0, f);
    fclose(f);
}

#define NPY_DICT "{'descr': '<i8', 'fortran_order': False, 'shape': (6,), }"

Test(schedule, ebcache_npy_table, .init = cli_workdir_make, .fini = cli_workdir_remove) {
    eb_schedule s;
    cr_assert_eq(eb_schedule_create(&s, "6"), EB_OK);
    /* indexed by the sampler's i: entry 5 is the first step */
    int64_t v[6] = {2, 1, 0, 2, 7, 0};
    char path[512];
    write_npy(in_workdir(path, "t.npy"), 1, NPY_DICT, v, 6, 0);
    eb_cache_schedule *cs;
    cr_assert_eq(eb_cache_schedule_from_npy(&cs, path, &s, 0.965), EB_OK, "%s", eb_last_error());
    const char *want[6] = {"CC", "RC", "RR", "CC", "RC", "RR"}; /* steps 0..5 = entries 5..0 */
    for (int k = 0; k < 6; k++) {
        char got[3] = {"CRTS"[cs->rows[k].attn.kind], "CRTS"[cs->rows[k].mlp.kind], 0};
        cr_expect_str_eq(got, want[k], "step %d (entry %d)", k, 5 - k);
        cr_expect_eq(cs->rows[k].scale, 0.965);
    }
    cr_expect_str_eq(cs->method, "eb-cache");
    cr_expect(strstr(cs->params, "delta=0.965"), "%s", cs->params);
    eb_cache_schedule_free(cs);
    write_npy(in_workdir(path, "v2.npy"), 2, NPY_DICT, v, 6, 0);
    cr_expect_eq(eb_cache_schedule_from_npy(&cs, path, &s, 1), EB_OK, "version 2 headers: %s", eb_last_error());
    eb_cache_schedule_free(cs);

    struct { const char *name, *dict; int n, extra; const char *phrase; } bad[] = {
        {"i4.npy", "{'descr': '<i4', 'fortran_order': False, 'shape': (6,), }", 6, 0, "dtype '<i4'"},
        {"be.npy", "{'descr': '>i8', 'fortran_order': False, 'shape': (6,), }", 6, 0, "dtype '>i8'"},
        {"fo.npy", "{'descr': '<i8', 'fortran_order': True, 'shape': (6,), }", 6, 0, "fortran_order True"},
        {"2d.npy", "{'descr': '<i8', 'fortran_order': False, 'shape': (2, 3), }", 6, 0, "1-D"},
        {"sc.npy", "{'descr': '<i8', 'fortran_order': False, 'shape': (), }", 1, 0, "1-D"},
        {"nokey.npy", "{'descr': '<i8', 'shape': (6,), }", 6, 0, "lacks 'fortran_order'"},
        {"extra.npy", "{'descr': '<i8', 'fortran_order': False, 'shape': (6,), 'x': 1}", 6, 0, "unexpected"},
        {"short.npy", NPY_DICT, 5, 0, "truncated"},
        {"long.npy", NPY_DICT, 6, 3, "trailing bytes"},
        {"steps.npy", "{'descr': '<i8', 'fortran_order': False, 'shape': (5,), }", 5, 0, "sampler runs 6 steps"},
        {"first.npy", NPY_DICT, 6, 0, "entry 5 (the first step) is 3"},
    };
    int64_t w[6] = {2, 1, 0, 2, 7, 3};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_npy(in_workdir(path, bad[i].name), 1, bad[i].dict, i + 1 == sizeof bad / sizeof bad[0] ? w : v, bad[i].n,
                  bad[i].extra);
        cr_expect_eq(eb_cache_schedule_from_npy(&cs, path, &s, 1), EB_EINPUT, "%s parsed", bad[i].name);
        cr_expect(strstr(eb_last_error(), bad[i].name) && strstr(eb_last_error(), bad[i].phrase),
                  "%s: want '%s', got '%s'", bad[i].name, bad[i].phrase, eb_last_error());
    }
    write_text(in_workdir(path, "magic.npy"), "not numpy at all\n");
    cr_expect_eq(eb_cache_schedule_from_npy(&cs, path, &s, 1), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "magic.npy: not a .npy file"), "%s", eb_last_error());
    eb_schedule_free(&s);
}

/* ------------------------------------------------------------------------ */
/* The commands                                                              */

#define MODEL GOLDEN_DIR "models/tiny_sigma.safetensors"

Test(schedule, cli_generate_show_and_sample, .init = cli_workdir_make, .fini = cli_workdir_remove) {
    char table[512], out[512], npy[512];
    in_workdir(table, "fora.tsv"), in_workdir(out, "s.h5");
    cr_assert_eq(cli_run("schedule fora --interval 2 --steps 6 --model %s --output %s", MODEL, table), 0, "%s", err_text);
    eb_cache_schedule *cs;
    cr_assert_eq(eb_cache_schedule_read(&cs, table), EB_OK, "%s", eb_last_error());
    cr_expect_str_eq(cs->method, "fora");
    cr_expect_str_eq(cs->sampler, "respacing=6");
    double predicted = cs->flops;
    eb_cache_schedule_free(cs);
    cr_expect_eq(cli_run("schedule show %s --model %s", table, MODEL), 0, "%s", err_text);
    cr_assert_eq(cli_run("sample --model %s --steps 6 --sampler ddim --seed 1 --n 3 --batch 2 --schedule %s --baseline "
                     "--threads 2 --output %s",
                     MODEL, table, out),
                 0, "%s", err_text);
    cr_expect(strstr(err_text, "executed") && strstr(err_text, "cache") && strstr(err_text, "measured speedup"), "%s",
              err_text);
    eb_h5 *f;
    double fraction = NAN;
    int64_t bytes = 0;
    cr_assert_eq(eb_h5_open(&f, out), EB_OK);
    cr_expect_eq(eb_h5_attr_f64(f, NULL, "flop_fraction", &fraction), EB_OK);
    cr_expect_eq(eb_h5_attr_i64(f, NULL, "cache_bytes", &bytes), EB_OK);
    eb_h5_close(f);
    cr_expect_leq(fabs(fraction - predicted), 5e-5, "executed %g, the table predicts %.4f", fraction, predicted);
    cr_expect_eq(bytes, 2 * 2 * 4 * 16 * 64 * 4, "2 modules × 2 blocks × 4 rows × 16 tokens × 64 floats");

    /* the official format */
    int64_t v[6] = {2, 1, 0, 2, 1, 0};
    write_npy(in_workdir(npy, "cache_table.npy"), 1, NPY_DICT, v, 6, 0);
    in_workdir(table, "eb.tsv");
    cr_expect_eq(cli_run("schedule from-npy --input %s --steps 6 --delta 0.965 --output %s", npy, table), 0, "%s", err_text);
    cr_expect_eq(cli_run("schedule show %s", table), 0, "%s", err_text);
}

Test(schedule, cli_errors_exit_2_and_leave_nothing, .init = cli_workdir_make, .fini = cli_workdir_remove) {
    char table[512], out[512], npy[512];
    in_workdir(table, "bad.tsv"), in_workdir(out, "s.h5");
    write_text(table, HEAD "0 999 * C C 1\n1 666 * R Q 1\n");
    cr_expect_eq(cli_run("sample --model %s --steps 4 --seed 1 --n 1 --schedule %s --output %s", MODEL, table, out), 2);
    cr_expect(strstr(err_text, "bad.tsv:5:") && strstr(err_text, "unknown mlp action 'Q'"), "%s", err_text);
    cr_expect_eq(access(out, F_OK), -1, "a failed sample left %s", out);
    write_text(table, GOOD);
    cr_expect_eq(cli_run("sample --model %s --steps 5 --seed 1 --n 1 --schedule %s --output %s", MODEL, table, out), 2);
    cr_expect(strstr(err_text, "bad.tsv:3:") && strstr(err_text, "sampler runs 5"), "%s", err_text);
    cr_expect_eq(cli_run("sample --model %s --steps 4 --seed 1 --n 1 --baseline --output %s", MODEL, out), 2);
    cr_expect_eq(access(out, F_OK), -1);

    in_workdir(table, "t.tsv");
    cr_expect_eq(cli_run("schedule fora --steps 4 --output %s", table), 2, "--interval is required");
    cr_expect_eq(cli_run("schedule taylorseer --interval 2 --order 9 --steps 4 --output %s", table), 2);
    cr_expect_eq(cli_run("schedule nonsense --steps 4 --output %s", table), 2);
    write_text(in_workdir(npy, "x.npy"), "garbage");
    cr_expect_eq(cli_run("schedule from-npy --input %s --steps 4 --output %s", npy, table), 2);
    cr_expect(strstr(err_text, "x.npy"), "%s", err_text);
    cr_expect_eq(access(table, F_OK), -1, "a failed command left %s", table);
}

/* FLOPs are counted on the shipped model unless a model is given, and
 * `schedule show` uses the model the table names (a file or a name). */
Test(schedule, cli_counts_flops_on_the_tables_model, .init = cli_workdir_make, .fini = cli_workdir_remove) {
    char table[512], named[512];
    in_workdir(table, "fora.tsv"), in_workdir(named, "named.tsv");
    cr_assert_eq(cli_run("schedule fora --interval 2 --steps 6 --output %s", table), 0, "%s", err_text);
    eb_cache_schedule *cs;
    cr_assert_eq(eb_cache_schedule_read(&cs, table), EB_OK, "%s", eb_last_error());
    cr_expect(strstr(cs->model, "dit_fmnist.safetensors"), "default model '%s', not the shipped one", cs->model);
    eb_cache_schedule_free(cs);
    cr_expect(strstr(err_text, "dit_fmnist.safetensors"), "%s", err_text);
    /* a table naming the tiny model (2 blocks) is shown with 2 block columns and its FLOPs */
    cr_assert_eq(cli_run("schedule fora --interval 2 --steps 6 --model %s --output %s", MODEL, named), 0, "%s", err_text);
    cr_assert_eq(cli_run("schedule show %s", named), 0, "%s", err_text);
    cr_expect(strstr(out_text, "on " MODEL " ("), "%s", out_text);
    cr_expect(strstr(out_text, "  CC         CC  ") || strstr(out_text, " CC        "), "2 block columns:\n%s", out_text);
    cr_expect(!strstr(out_text, "CCCC"), "more block columns than the table's model has:\n%s", out_text);
    /* a table naming a configuration uses it */
    cr_assert_eq(cli_run("schedule fora --interval 2 --steps 6 --config XL/2 --output %s", named), 0, "%s", err_text);
    cr_assert_eq(cli_run("schedule show %s", named), 0, "%s", err_text);
    cr_expect(strstr(out_text, "on DiT-XL/2 ("), "%s", out_text);
}
