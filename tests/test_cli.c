/* test_cli.c — bin/ebcache end to end: results, exit codes, messages, and
 * that a failed command leaves no output behind. */
#include "tests/cli_util.h"
#include "tests/golden.h"
#include "runtime/h5io.h"
#include "runtime/cpu/kernels.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define MODEL GOLDEN_DIR "models/tiny_sigma.safetensors"

/* Only stderr.txt may be in the work dir besides what the test created. */
static int entries_in_workdir(void) {
    DIR *d = opendir(workdir);
    int count = 0;
    for (struct dirent *e; (e = readdir(d));) count += e->d_name[0] != '.';
    closedir(d);
    return count;
}

static float *read_out(const char *file, const char *name, size_t *n) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", workdir, file);
    eb_h5 *f;
    float *data = NULL;
    int64_t d[8];
    int rank;
    cr_assert_eq(eb_h5_open(&f, path), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_h5_shape(f, name, &rank, d), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_h5_read_f32(f, name, rank, NULL, &data, d, 0), EB_OK, "%s", eb_last_error());
    eb_h5_close(f);
    *n = 1;
    for (int i = 0; i < rank; i++) *n *= d[i];
    return data;
}

/* Writes x, t, y for tiny_sigma into workdir/name with one field spoiled. */
static void write_input(const char *name, int channels, int32_t t1, int32_t y1, float x_bad) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", workdir, name);
    int64_t xd[4] = {2, channels, 8, 8}, nd[1] = {2};
    float *x = calloc(2 * channels * 64, sizeof(float));
    x[1 * channels * 64 + 5] = x_bad;
    int32_t t[2] = {3, t1}, y[2] = {1, y1};
    eb_h5w *w;
    cr_assert_eq(eb_h5w_create(&w, path), EB_OK);
    eb_h5w_write(w, "x", EB_H5_F32, x, 4, xd);
    eb_h5w_write(w, "t", EB_H5_I32, t, 1, nd);
    eb_h5w_write(w, "y", EB_H5_I32, y, 1, nd);
    cr_assert_eq(eb_h5w_commit(w), EB_OK, "%s", eb_last_error());
    free(x);
}

TestSuite(cli, .init = cli_workdir_make, .fini = cli_workdir_remove);

/* Where OpenBLAS does not know the CPU (it then loads its generic "Prescott"
 * kernels), the CLI runs itself again with the kernels the CPU allows. */
Test(cli, computes_with_the_cpus_blas_kernels) {
    if (getenv("OPENBLAS_CORETYPE")) cr_skip_test("OPENBLAS_CORETYPE is set");
    const char *want = eb_blas_better_core(); /* for this process's CPU; NULL when OpenBLAS knew it */
    setenv("OPENBLAS_VERBOSE", "2", 1);       /* OpenBLAS then names its core on stderr at each load */
    cr_assert_eq(cli_run("--version"), 0);
    unsetenv("OPENBLAS_VERBOSE");
    const char *last = NULL;
    for (const char *p = strstr(err_text, "Core: "); p; p = strstr(p + 1, "Core: ")) last = p + 6;
    cr_assert(last, "OpenBLAS named no core: %s", err_text);
    char core[32] = "";
    sscanf(last, "%31s", core);
    if (want) cr_expect_str_eq(core, want, "stderr: %s", err_text);
    else cr_expect(strcasecmp(core, "Prescott") || !__builtin_cpu_supports("avx2"), "stderr: %s", err_text);
}

Test(cli, forward_matches_golden) {
    cr_assert_eq(cli_run("forward --model " MODEL " --input " GOLDEN_DIR "forward_sigma.h5 --output %s/o.h5", workdir),
                 0, "%s", err_text);
    size_t n;
    float *got = read_out("o.h5", "out", &n), *want = golden_f32("forward_sigma.h5", "out", 4, NULL);
    cr_expect_leq(max_rel_err(got, want, n), 1e-5);
    free(got), free(want);
    cr_assert_eq(cli_run("forward --model " MODEL " --input " GOLDEN_DIR "cfg.h5 --cfg-scale 1.5 --cfg-channels all "
                         "--output %s/g.h5", workdir), 0, "%s", err_text);
    got = read_out("g.h5", "out", &n), want = golden_f32("cfg.h5", "out_all", 4, NULL);
    cr_expect_leq(max_rel_err(got, want, n), 1e-5);
    free(got), free(want);
}

Test(cli, forward_rejects_bad_input_and_leaves_nothing) {
    struct { int channels, t1, y1; float x_bad; const char *needle; } cases[] = {
        {4, 1000, 1, 0, "t[1] = 1000"}, {4, 5, 11, 0, "y[1] = 11"}, {4, 5, 1, NAN, "NaN at [1, 0, 0, 5]"},
        {3, 5, 1, 0, "'x'"}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        write_input("in.h5", cases[k].channels, cases[k].t1, cases[k].y1, cases[k].x_bad);
        int rc = cli_run("forward --model " MODEL " --input %s/in.h5 --output %s/o.h5", workdir, workdir);
        cr_expect_eq(rc, 2, "case %zu: exit %d (%s)", k, rc, err_text);
        cr_expect(strstr(err_text, cases[k].needle), "case %zu: message lacks '%s': %s", k, cases[k].needle, err_text);
        cr_expect_eq(entries_in_workdir(), 1, "case %zu: an output or temporary file was left", k);
    }
    cr_expect_eq(cli_run("forward --model %s/missing.safetensors --input x --output %s/o.h5", workdir, workdir), 2);
    cr_expect(strstr(err_text, "missing.safetensors"), "%s", err_text);
    cr_expect_eq(cli_run("forward --model " MODEL " --output %s/o.h5", workdir), 2);
    cr_expect_eq(cli_run("forward --bogus 1"), 2);
    cr_expect(strstr(err_text, "--bogus"), "%s", err_text);
}

Test(cli, truncated_model_is_an_input_error) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "head -c 3000 " MODEL " > %s/cut.safetensors", workdir);
    cr_assert_eq(system(cmd), 0);
    cr_expect_eq(cli_run("info --model %s/cut.safetensors", workdir), 2);
    cr_expect(strstr(err_text, "cut.safetensors"), "%s", err_text);
}

Test(cli, sample_is_reproducible_across_threads) {
    /* 16 samples: 32-row conditioning GEMMs (one chunk) that OpenBLAS would thread outside a parallel region */
    const char *common = "sample --model " MODEL " --sampler ddpm --steps 4 --cfg-scale 1.5 --seed 3 --n 16";
    cr_assert_eq(cli_run("%s --threads 1 --output %s/a.h5", common, workdir), 0, "%s", err_text);
    cr_assert_eq(cli_run("%s --threads 2 --output %s/b.h5", common, workdir), 0, "%s", err_text);
    size_t na, nb;
    float *a = read_out("a.h5", "samples", &na), *b = read_out("b.h5", "samples", &nb);
    cr_assert_eq(na, nb);
    cr_expect_eq(memcmp(a, b, na * sizeof(float)), 0, "same seed, other thread count: different bits");
    free(a), free(b);
    cr_expect_eq(cli_run("sample --model " MODEL " --sampler euler --steps 4 --n 1 --output %s/c.h5", workdir), 2);
    cr_expect_eq(cli_run("sample --model " MODEL " --steps 4 --labels 1,11 --output %s/c.h5", workdir), 2);
    cr_expect(strstr(err_text, "labels"), "%s", err_text);
    cr_expect_eq(cli_run("sample --model " MODEL " --steps 4 --output %s/c.h5", workdir), 2);
    cr_expect_eq(cli_run("sample --model " MODEL " --respacing ddim999 --n 1 --output %s/c.h5", workdir), 2);
    cr_expect(strstr(err_text, "ddim999"), "%s", err_text);
    char c_path[512];
    struct stat st;
    snprintf(c_path, sizeof c_path, "%s/c.h5", workdir);
    cr_expect_neq(stat(c_path, &st), 0, "a failed sample left c.h5");
}

Test(cli, info_help_and_unknown_command) {
    cr_expect_eq(cli_run("info --model " MODEL), 0, "%s", err_text);
    cr_expect_eq(cli_run("help"), 0);
    cr_expect_eq(cli_run("sample --help"), 0);
    cr_expect_eq(cli_run("frobnicate"), 2);
    cr_expect(strstr(err_text, "frobnicate"), "%s", err_text);
}

/* --cfg-channels: the official rule by default (ε and the variance channel on a
 * 1-channel learn_sigma model), eps, a count; recorded in the attributes. */
Test(cli, forward_cfg_channels_rules_and_attributes) {
    struct { const char *arg, *golden, *rule; int64_t channels; } cases[] = {
        {"", "out", "official", 2}, {"--cfg-channels official", "out", "official", 2},
        {"--cfg-channels eps", "out_eps", "eps", 1}, {"--cfg-channels 1", "out_eps", "count", 1}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        cr_assert_eq(cli_run("forward --model " GOLDEN_DIR "models/tiny_sigma1.safetensors --input " GOLDEN_DIR
                             "cfg_sigma1.h5 --cfg-scale 4 %s --output %s/g.h5", cases[k].arg, workdir),
                     0, "%s", err_text);
        size_t n;
        float *got = read_out("g.h5", "out", &n), *want = golden_f32("cfg_sigma1.h5", cases[k].golden, 4, NULL);
        cr_expect_leq(max_rel_err(got, want, n), 1e-5, "case '%s'", cases[k].arg);
        free(got), free(want);
        char path[512], *rule = NULL;
        snprintf(path, sizeof path, "%s/g.h5", workdir);
        eb_h5 *f;
        int64_t channels = -1;
        cr_assert_eq(eb_h5_open(&f, path), EB_OK, "%s", eb_last_error());
        cr_expect_eq(eb_h5_attr_i64(f, NULL, "cfg_channels", &channels), EB_OK, "%s", eb_last_error());
        cr_expect_eq(eb_h5_attr_str(f, NULL, "cfg_guidance", &rule), EB_OK, "%s", eb_last_error());
        eb_h5_close(f);
        cr_expect_eq(channels, cases[k].channels, "case '%s'", cases[k].arg);
        cr_expect_str_eq(rule ? rule : "", cases[k].rule, "case '%s'", cases[k].arg);
        free(rule);
    }
    const char *bad[] = {"3", "-1", "epsilon", ""};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        cr_expect_eq(cli_run("forward --model " GOLDEN_DIR "models/tiny_sigma1.safetensors --input " GOLDEN_DIR
                             "cfg_sigma1.h5 --cfg-scale 4 --cfg-channels '%s' --output %s/b.h5", bad[k], workdir),
                     2, "'%s' accepted", bad[k]);
        cr_expect(strstr(err_text, "[0, 2]"), "'%s': %s", bad[k], err_text);
    }
}

/* Every command that reads a file and writes one refuses an output that is
 * one of its inputs, however spelled (./, a hard link), and an existing
 * output that is not a regular file; the input is left as it was. */
Test(cli, an_output_never_replaces_an_input) {
    char in[512], linked[512], dot[512], dir[512], cmd[2048];
    in_workdir(in, "in.h5"), in_workdir(linked, "link.h5"), in_workdir(dir, "figs");
    snprintf(dot, sizeof dot, "%s/./in.h5", workdir);
    write_input("in.h5", 4, 5, 1, 0);
    cr_assert_eq(link(in, linked), 0);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s/in.copy'", in, workdir);
    cr_assert_eq(system(cmd), 0);
    struct { const char *args, *out; } cases[] = {
        {"forward --model " MODEL " --input %s --output %s", dot},
        {"sample --model " MODEL " --steps 4 --noise %s --output %s", linked},
        {"record --model " MODEL " --steps 4 --noise %s --output %s", in},
        {"fit %s --output %s", linked},
        {"search --method fora --interval 2 --record %s --output %s", dot},
        {"grid --samples %s --output %s", linked},
        {"eval --samples %s --output %s", dot},
        {"schedule from-npy --steps 4 --input %s --output %s", linked},
        {"train-classifier --checkpoint %s --output %s", dot},
        {"plot %s --out %s", in},
        {"train --resume %s --out %s", in},
        {"ablate %s --results %s", in},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char args[1024];
        snprintf(args, sizeof args, cases[k].args, in, cases[k].out);
        cr_expect_eq(cli_run("%s", args), 2, "%s: %s", args, err_text);
        int folder = strstr(args, "--out ") || strstr(args, "--results ");
        cr_expect(strstr(err_text, folder ? "not a folder" : "the same file"), "%s: %s", args, err_text);
    }
    snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s/in.copy'", in, workdir);
    cr_expect_eq(system(cmd), 0, "an input was changed");
    cr_expect_eq(cli_run("sample --model " MODEL " --steps 4 --n 1 --output /dev/full"), 2);
    cr_expect(strstr(err_text, "character device"), "%s", err_text);
    cr_assert_eq(mkdir(dir, 0700), 0);
    cr_expect_eq(cli_run("grid --samples %s --output %s", in, dir), 2);
    cr_expect(strstr(err_text, "a folder"), "%s", err_text);
    /* a path that only looks like the input is a new file, written as usual */
    cr_expect_eq(cli_run("forward --model " MODEL " --input %s --output %s/in2.h5", in, workdir), 0, "%s", err_text);
}

/* gnuplot exits 0 when its writes fail (a full disk): plot checks the PNG
 * itself, fails naming it and leaves no PNG. A stand-in gnuplot on PATH
 * writes a PNG cut after its signature. */
Test(cli, plot_fails_on_an_incomplete_png) {
    char rec[512], figs[512], fake[512], path_env[4096];
    in_workdir(rec, "rec.h5"), in_workdir(figs, "figs"), in_workdir(fake, "gnuplot");
    cr_assert_eq(cli_run("record --model " MODEL " --steps 4 --n 1 --output %s", rec), 0, "%s", err_text);
    FILE *f = fopen(fake, "w");
    cr_assert_not_null(f);
    fprintf(f, "#!/bin/sh\nout=$(printf '%%s' \"$2\" | sed -n \"s/.*out='\\(.*\\)'$/\\1/p\")\n"
               "printf '\\211PNG\\r\\n\\032\\n' > \"$out\"\n");
    fclose(f);
    cr_assert_eq(chmod(fake, 0700), 0);
    const char *old_path = getenv("PATH");
    char *saved = strdup(old_path ? old_path : "/usr/bin:/bin");
    snprintf(path_env, sizeof path_env, "%s:%s", workdir, saved);
    setenv("PATH", path_env, 1);
    int rc = cli_run("plot %s --out %s", rec, figs);
    setenv("PATH", saved, 1);
    free(saved);
    cr_expect_eq(rc, 1, "%s", err_text);
    cr_expect(strstr(err_text, "snr.png") && strstr(err_text, "incomplete PNG"), "%s", err_text);
    DIR *d = opendir(figs);
    cr_assert_not_null(d);
    for (struct dirent *e; (e = readdir(d));)
        cr_expect(!strstr(e->d_name, ".png"), "%s was left behind", e->d_name);
    closedir(d);
}

/* ------------------------------------------------------------------------ */
/* issue 16: messages                                                        */

/* --eta outside [0, 1] or without DDIM and a negative --cfg-scale: exit 2
 * with a message, for every command that takes them, before any work. */
Test(cli, sampling_options_are_validated) {
    struct { const char *args, *needle; } cases[] = {
        {"sample --n 1 --eta 0.5", "--eta is DDIM's"},
        {"sample --n 1 --sampler ddpm --eta 0", "--eta is DDIM's"},
        {"sample --n 1 --sampler ddim --eta 1.5", "outside [0, 1]"},
        {"sample --n 1 --sampler ddim --eta -0.1", "outside [0, 1]"},
        {"sample --n 1 --cfg-scale -1", "--cfg-scale: -1 is negative"},
        {"record --n 1 --eta 0.2", "--eta is DDIM's"},
        {"record --n 1 --sampler ddim --eta 2", "outside [0, 1]"},
        {"record --n 1 --cfg-scale -0.5", "is negative"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        cr_expect_eq(cli_run("%s --model " MODEL " --steps 4 --output %s/o.h5", cases[k].args, workdir), 2, "%s: %s",
                     cases[k].args, err_text);
        cr_expect(strstr(err_text, cases[k].needle), "%s: %s", cases[k].args, err_text);
    }
    cr_expect_eq(cli_run("forward --model " MODEL " --input " GOLDEN_DIR "cfg.h5 --cfg-scale -2 --output %s/f.h5", workdir),
                 2, "%s", err_text);
    cr_expect(strstr(err_text, "is negative"), "%s", err_text);
    char o[512], f[512];
    cr_expect(access(in_workdir(o, "o.h5"), F_OK) && access(in_workdir(f, "f.h5"), F_OK), "a refused command wrote");
    cr_expect_eq(cli_run("sample --model " MODEL " --steps 4 --n 1 --sampler ddim --eta 1 --cfg-scale 0 --output %s/o.h5",
                         workdir), 0, "%s", err_text);
    cr_expect(strstr(err_text, "sampled 1 image,"), "singular: %s", err_text);
    cr_expect_eq(cli_run("sample --model " MODEL " --steps 4 --n 2 --output %s/o2.h5", workdir), 0, "%s", err_text);
    cr_expect(strstr(err_text, "sampled 2 images,"), "plural: %s", err_text);
    cr_expect_eq(cli_run("grid --samples %s/o.h5 --output %s/g.png", workdir, workdir), 0, "%s", err_text);
    cr_expect(strstr(err_text, "/g.png: 1 image in 1 row of up to 10,"), "grid says what it wrote: %s", err_text);
    cr_expect_eq(cli_run("grid --samples %s/o2.h5 --cols 1 --output %s/g2.png", workdir, workdir), 0, "%s", err_text);
    cr_expect(strstr(err_text, "2 images in 2 rows of up to 1, "), "%s", err_text);
}

/* A table written for another respacing says which to give; a table
 * searched under DDPM and run under DDIM gets a warning. */
Test(cli, tables_name_their_sampler) {
    char table[512], ddpm[512], cmd[2048];
    in_workdir(table, "ddim4.schedule"), in_workdir(ddpm, "ddpm.schedule");
    cr_assert_eq(cli_run("schedule fora --interval 2 --respacing ddim4 --model " MODEL " --output %s", table), 0, "%s",
                 err_text);
    cr_expect_eq(cli_run("sample --model " MODEL " --sampler ddim --steps 4 --n 1 --schedule %s --output %s/o.h5", table,
                         workdir), 2, "%s", err_text);
    cr_expect(strstr(err_text, "give --respacing ddim4"), "%s", err_text);
    cr_expect_eq(cli_run("sample --model " MODEL " --sampler ddim --respacing ddim4 --n 1 --schedule %s --output %s/o.h5",
                         table, workdir), 0, "%s", err_text);
    /* the shipped DDIM-50 tables under --steps 50 */
    cr_expect_eq(cli_run("sample --model " MODEL " --sampler ddim --steps 50 --n 1 --schedule data/schedules/"
                         "fora3_ddim50.schedule --output %s/o.h5", workdir), 2, "%s", err_text);
    cr_expect(strstr(err_text, "t = 980") && strstr(err_text, "give --respacing ddim50"), "%s", err_text);
    cr_assert_eq(cli_run("schedule fora --interval 2 --steps 4 --model " MODEL " --output %s", table), 0, "%s", err_text);
    snprintf(cmd, sizeof cmd, "sed 's/^## sampler: respacing=4$/## sampler: ddpm respacing=4/' '%s' > '%s'", table, ddpm);
    cr_assert_eq(system(cmd), 0);
    cr_expect_eq(cli_run("sample --model " MODEL " --sampler ddim --steps 4 --n 1 --schedule %s --output %s/o.h5", ddpm,
                         workdir), 0, "%s", err_text);
    cr_expect(strstr(err_text, "warning:") && strstr(err_text, "searched on a ddpm recording"), "%s", err_text);
    cr_expect_eq(cli_run("sample --model " MODEL " --steps 4 --n 1 --schedule %s --output %s/o.h5", ddpm, workdir), 0,
                 "%s", err_text);
    cr_expect(!strstr(err_text, "warning"), "same sampler: %s", err_text);
    /* record checks its table the same way */
    cr_expect_eq(cli_run("record --model " MODEL " --sampler ddim --steps 4 --n 1 --schedule %s --output %s/r.h5", ddpm,
                         workdir), 0, "%s", err_text);
    cr_expect(strstr(err_text, "ebcache record: warning:") && strstr(err_text, "searched on a ddpm recording"), "%s",
              err_text);
    cr_expect_eq(cli_run("record --model " MODEL " --sampler ddim --steps 50 --n 1 --schedule data/schedules/"
                         "fora3_ddim50.schedule --output %s/r.h5", workdir), 2, "%s", err_text);
    cr_expect(strstr(err_text, "give --respacing ddim50"), "%s", err_text);
}

/* Usage lines mark defaulted options as optional. */
Test(cli, usage_lines_show_optional_options) {
    struct { const char *cmd, *want; } cases[] = {
        {"sample --help", "[--steps N | --respacing SPEC]"}, {"sample --help", "[--cfg-scale S]"},
        {"sample --help", "[--seed K]"},                     {"grid --help", "[--cols N]"},
        {"search --help", "[--target-speedup X |"},          {"fit --help", "[--output FIT.h5]"},
        {"schedule --help", "[--config NAME | --model PATH]"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        cr_expect_eq(cli_run("%s", cases[k].cmd), 0);
        cr_expect(strstr(out_text, cases[k].want), "%s lacks '%s':\n%s", cases[k].cmd, cases[k].want, out_text);
    }
    cr_expect_eq(cli_run("sample --help"), 0);
    cr_expect(!strstr(out_text, " --steps N [--eta"), "a defaulted option shown as required:\n%s", out_text);
}
