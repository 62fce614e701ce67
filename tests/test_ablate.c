/* test_ablate.c — `ebcache ablate` end to end on a small random 28×28 model:
 * the grid's rows, an out-of-reach target, the reports, resuming from finished
 * cells (and recomputing a removed one to the same numbers), and bad specs. */
#include "cli_util.h"
#include "params.h"
#include "weights.h"

#include "model.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TestSuite(ablate, .init = cli_workdir_make, .fini = cli_workdir_remove);

/* A random 1-channel 28×28 DiT (16 tokens of width 32) in workdir/m.safetensors. */
static void write_model(void) {
    eb_config c = {.input_size = 28, .patch_size = 7, .in_channels = 1, .hidden_size = 32, .depth = 2,
                   .num_heads = 2, .num_classes = 10, .learn_sigma = 1};
    eb_model *m;
    cr_assert_eq(eb_model_create(&m, &c), EB_OK, "%s", eb_last_error());
    size_t n = eb_param_count(&c);
    uint64_t key = eb_rng_key(7, 1);
    for (size_t i = 0; i < n; i++) m->slab[i] = 0.1f * eb_rng_normal(key, i);
    char path[512];
    cr_assert_eq(eb_model_save(m, in_workdir(path, "m.safetensors"), NULL, 0, EB_DT_F32), EB_OK, "%s", eb_last_error());
    eb_model_free(m);
}

static void write_text(const char *name, const char *text) {
    char path[512];
    FILE *f = fopen(in_workdir(path, name), "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

static char *read_text(const char *name) {
    char path[512];
    FILE *f = fopen(in_workdir(path, name), "r");
    cr_assert_not_null(f, "%s missing", name);
    char *buf = calloc(1, 1 << 16);
    fread(buf, 1, (1 << 16) - 1, f);
    fclose(f);
    return buf;
}

static int count_lines(const char *text, const char *needle) {
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p++) n++;
    return n;
}

/* The CSV without its wall-clock columns (7 wall_s, 8 measured_speedup), which vary from run to run. */
static void strip_timing(char *csv) {
    char *out = csv;
    for (char *line = csv; *line;) {
        char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        int col = 0;
        for (size_t i = 0; i < len; i++) {
            if (line[i] == ',') col++;
            if (col != 7 && col != 8) *out++ = line[i];
        }
        *out++ = '\n';
        line += len + (end != NULL);
    }
    *out = 0;
}

#define SPEC                                                                                                     \
    "# a small grid\n"                                                                                           \
    "name = t\n"                                                                                                 \
    "model = %s/m.safetensors\n"                                                                                 \
    "samplers = ddim-8\n"                                                                                        \
    "methods = none, fora eb-cache   # two cached methods\n"                                                    \
    "speedups = 1.5 100\n"                                                                                       \
    "n = 6\nseeds = 0 1\ncalibration = 4\nreal = 60\n"

static int run_grid(void) {
    return cli_run("ablate %s/g.spec --cells %s/cells --results %s/res --threads 2", workdir, workdir, workdir);
}

Test(ablate, grid_reports_and_resume) {
    write_model();
    char spec[1024];
    snprintf(spec, sizeof spec, SPEC, workdir);
    write_text("g.spec", spec);
    cr_assert_eq(run_grid(), 0, "%s", err_text);
    char *csv = read_text("res/t.csv");
    /* per seed: none, then fora and eb-cache at two targets */
    cr_assert_eq(count_lines(csv, "\n"), 1 + 2 * 5, "%s", csv);
    cr_assert_eq(count_lines(csv, "ddim-8,none,nan,"), 2);
    cr_assert_eq(count_lines(csv, "ddim-8,fora,1.5,"), 2);
    /* 100× is beyond any table of 8 steps: reported, not sampled */
    cr_assert_eq(count_lines(csv, "ddim-8,fora,100,0,6,0,"), 1, "%s", csv);
    cr_assert_eq(count_lines(csv, "ddim-8,eb-cache,100,1,6,0,"), 1, "%s", csv);
    cr_assert(strstr(csv, "ddim-8,eb-cache,1.5,0,6,1,"), "%s", csv);
    char *md = read_text("res/t.md");
    cr_assert(strstr(md, "| fora | 1.5× |"), "%s", md);
    cr_assert(strstr(md, "| fora | 100× | unreachable"), "%s", md);
    cr_assert(strstr(md, "EB-Cache at 1.5× FLOP target"), "%s", md);
    char path[512];
    cr_assert_eq(access(in_workdir(path, "res/t_pareto_ddim-8.png"), R_OK), 0);
    cr_assert_eq(access(in_workdir(path, "res/t_tables/ddim-8_fora_1.5.schedule"), R_OK), 0);
    cr_assert_eq(access(in_workdir(path, "res/t_tables/ddim-8_eb-cache_1.5.schedule"), R_OK), 0);

    /* a second run computes nothing */
    cr_assert_eq(run_grid(), 0, "%s", err_text);
    cr_assert_null(strstr(err_text, ": sample "), "%s", err_text);
    cr_assert_null(strstr(err_text, ": search "), "%s", err_text);

    /* a removed cell is recomputed alone, to the same numbers */
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm %s/cells/sample-*/samples.h5 2>/dev/null; true", workdir);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(run_grid(), 0, "%s", err_text);
    cr_assert_eq(count_lines(err_text, ": sample "), 6, "%s", err_text); /* 2 seeds × (none, fora, eb-cache) */
    char *again = read_text("res/t.csv");
    strip_timing(csv);
    strip_timing(again);
    cr_assert_str_eq(again, csv);
    free(csv), free(again), free(md);
}

/* Each bad spec exits 2 with a message naming the file and line. */
Test(ablate, bad_specs) {
    static const struct {
        const char *text, *message;
    } cases[] = {
        {"name = x\nsamplers = ddim-8\nmethods = none\nseeds = 0\nfoo = 1\n", "g.spec:5: unknown key 'foo'"},
        {"name = x\nsamplers = ddim-8\nmethods = none bogus\nseeds = 0\n", "g.spec:3: methods: unknown method 'bogus'"},
        {"name = x\nsamplers = plms-8\nmethods = none\nseeds = 0\n", "g.spec:2: samplers: 'plms-8' is not"},
        {"name = x\nsamplers = ddim-8\nmethods = fora\nspeedups = 0.9\nseeds = 0\n", "g.spec:4: speedups: '0.9'"},
        {"name = x\nsamplers = ddim-8\nmethods = fora\nseeds = 0\n", "'speedups' is required"},
        {"samplers = ddim-8\nmethods = none\nseeds = 0\n", "'name' is required"},
        {"name = x\nname = y\n", "g.spec:2: 'name' is set twice"},
        {"name = x\nseeds = 0 0\n", "g.spec:2: seeds: '0' is listed twice"},
        {"name = a/b\n", "g.spec:1: name 'a/b'"},
        {"name x\n", "g.spec:1: expected 'key = value'"},
        {"name = x\nn = 1\n", "g.spec:2: n: '1' is not an integer in [2,"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_text("g.spec", cases[i].text);
        cr_assert_eq(run_grid(), 2, "case %zu", i);
        cr_assert(strstr(err_text, cases[i].message), "case %zu: %s", i, err_text);
    }
    cr_assert_eq(cli_run("ablate %s/missing.spec", workdir), 2);
    cr_assert(strstr(err_text, "missing.spec: cannot open"), "%s", err_text);
}
