/* test_ablate.c — `ebcache ablate` end to end on a small random 28×28 model:
 * the grid's rows (speed targets and a native sweep), an out-of-reach target,
 * the reports (curves by FLOP speedup, both judges, the claim rule, the
 * reading at EB-Cache's speed, the interleaved timing and its warnings),
 * resuming from finished cells (and recomputing a removed one to the same
 * numbers), the debris of a killed run, the lock against a second run on the
 * same cells, and bad specs. */
#include "tests/cli_util.h"
#include "runtime/params.h"
#include "runtime/weights.h"

#include "runtime/model.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <time.h>
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

/* The CSV without its timing columns (7 wall_s, 8 measured_speedup, 9 cpu_speedup, 10 load), which vary
 * from run to run. */
static void strip_timing(char *csv) {
    char *out = csv;
    for (char *line = csv; *line;) {
        char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        int col = 0;
        for (size_t i = 0; i < len; i++) {
            if (line[i] == ',') col++;
            if (col < 7 || col > 10) *out++ = line[i];
        }
        *out++ = '\n';
        line += len + (end != NULL);
    }
    *out = 0;
}

/* Each comparison line of the report ("ΔFD d ± h … Δpixel FD q ± k …") states
 * the verdict the claim rule gives its two intervals: a claim only when both
 * lie on the same side of 0. Returns how many lines were checked. */
static int check_claim_rule(const char *md) {
    int checked = 0;
    for (const char *p = md; (p = strstr(p, "ΔFD ")); p++) {
        const char *eol = strchr(p, '\n');
        char *line = strndup(p, eol ? (size_t)(eol - p) : strlen(p));
        const char *px = strstr(line, "Δpixel FD ");
        double d, dh, q, qh;
        if (px && sscanf(line, "ΔFD %lf ± %lf", &d, &dh) == 2 && sscanf(px, "Δpixel FD %lf ± %lf", &q, &qh) == 2 &&
            fabs(fabs(d) - dh) > 0.02 * dh && fabs(fabs(q) - qh) > 0.02 * qh) { /* not at a rounding edge */
            int j1 = d + dh < 0 ? -1 : d - dh > 0 ? 1 : 0, j2 = q + qh < 0 ? -1 : q - qh > 0 ? 1 : 0;
            const char *want = j1 == j2 && j1 ? "both judges agree" : !j1 && !j2 ? "neither judge separates them"
                                                                                 : "the judges do not agree";
            cr_assert(strstr(line, want), "expected '%s': %s", want, line);
            checked++;
        }
        free(line);
    }
    return checked;
}

/* Every table whose measured speedup (CSV) is below 1 or above its FLOP
 * speedup, beyond 5%, has a warning in the report, and no other. */
static void check_timing_warnings(const char *csv, const char *md) {
    int rows = 0;
    for (const char *line = strchr(csv, '\n') + 1; *line; line = strchr(line, '\n') + 1) {
        char sampler[32], method[32], target[32], sweep[32];
        int seed, n, reached;
        double flop, wall, measured, cpu, load, value;
        cr_assert_eq(sscanf(line, "%31[^,],%31[^,],%31[^,],%d,%d,%d,%lf,%lf,%lf,%lf,%lf", sampler, method, target,
                            &seed, &n, &reached, &flop, &wall, &measured, &cpu, &load), 11, "%s", line);
        const char *tail = line; /* the last columns: sweep, value, "params" */
        for (int commas = 0; commas < 22; tail++) commas += *tail == ',';
        cr_assert_eq(sscanf(tail, "%31[^,],%lf", sweep, &value), 2, "%s", line);
        if (!reached) continue;
        cr_assert(isfinite(measured) && measured > 0 && isfinite(cpu) && cpu > 0 && isfinite(load), "%s", line);
        if (!strcmp(method, "none")) {
            cr_assert_eq(measured, 1.0);
            continue;
        }
        if (seed != 0) continue;
        char heading[128];
        if (!strcmp(sweep, "speedup")) snprintf(heading, sizeof heading, "**Warning:** %s %s at %s×", sampler, method, target);
        else snprintf(heading, sizeof heading, "**Warning:** %s %s at %s %g:", sampler, method, sweep, value);
        int want = measured < 0.95 || measured > 1.05 * flop;
        cr_assert_eq(strstr(md, heading) != NULL, want, "%s (measured %g, FLOP %g)", heading, measured, flop);
        rows++;
    }
    cr_assert_eq(rows, 4, "fora at intervals 1, 2, 3 and eb-cache at 1.5x on seed 0");
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

#define SPEC                                                                                                     \
    "# a small grid\n"                                                                                           \
    "name = t\n"                                                                                                 \
    "model = %s/m.safetensors\n"                                                                                 \
    "samplers = ddim-8\n"                                                                                        \
    "methods = none, fora eb-cache   # two cached methods\n"                                                    \
    "speedups = 1.5 100\n"                                                                                       \
    "sweep.fora = 1 2 3   # fora over its interval instead\n"                                                    \
    "n = 6\nseeds = 0 1\ncalibration = 4\nreal = 60\ntiming_n = 2\ntiming_rounds = 2\n"

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
    /* per seed: none, fora at three intervals, eb-cache at two targets */
    cr_assert_eq(count_lines(csv, "\n"), 1 + 2 * 6, "%s", csv);
    cr_assert_eq(count_lines(csv, "ddim-8,none,nan,"), 2);
    cr_assert_eq(count_lines(csv, "ddim-8,fora,nan,"), 6, "a native point has no target: %s", csv);
    cr_assert_eq(count_lines(csv, ",interval,2,\"interval=2\"\n"), 2, "%s", csv);
    /* 100× is beyond any table of 8 steps: reported, not sampled */
    cr_assert_eq(count_lines(csv, "ddim-8,eb-cache,100,1,6,0,"), 1, "%s", csv);
    cr_assert(strstr(csv, "ddim-8,eb-cache,1.5,0,6,1,"), "%s", csv);
    char *md = read_text("res/t.md");
    cr_assert(strstr(md, "| fora | – | interval=1 | 1.00× |"), "%s", md);
    cr_assert(strstr(md, "| eb-cache | 100× | unreachable"), "%s", md);
    /* the curve by FLOP speedup: interval 1, 2, 3 in that order */
    const char *i1 = strstr(md, "| interval=1 |"), *i2 = strstr(md, "| interval=2 |"), *i3 = strstr(md, "| interval=3 |");
    cr_assert(i1 && i2 && i3 && i1 < i2 && i2 < i3, "%s", md);
    cr_assert(strstr(md, "- EB-Cache at 1.5× (measured "), "%s", md);
    cr_assert(strstr(md, "Timing: 2 rounds in this process; in each, one in-memory sampling run of 2 images"), "%s", md);
    cr_assert(strstr(md, "  - vs uncached: ΔFD "), "%s", md);
    cr_assert(strstr(md, "linear in log speedup between the two neighbouring points"), "%s", md);
    /* fora's curve spans FLOP 1× to 2.67×: EB-Cache's FLOP speedup lies inside it */
    cr_assert(strstr(md, "    - vs fora at the FLOP speedup "), "%s", md);
    cr_assert(strstr(md, "vs fora at the measured wall-clock speedup "), "%s", md);
    cr_assert_geq(check_claim_rule(md), 2, "%s", md);
    check_timing_warnings(csv, md);
    cr_assert(strstr(csv, ",fd,fd_mean_term,fd_cov_term,pixel_fd,pixel_fd_mean_term,pixel_fd_cov_term,"), "%s", csv);
    char path[512];
    cr_assert_eq(access(in_workdir(path, "res/t_pareto_ddim-8.png"), R_OK), 0);
    cr_assert_eq(access(in_workdir(path, "res/t_tables/ddim-8_fora_interval2.schedule"), R_OK), 0);
    cr_assert_eq(access(in_workdir(path, "res/t_tables/ddim-8_eb-cache_1.5.schedule"), R_OK), 0);

    /* the debris of a killed run (temporary outputs, a timing run's samples) goes on the next run */
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cd %s/cells && touch timing.h5 real-test-60.h5.tmp.99999 && for d in sample-*; do "
                              "touch $d/samples.h5.tmp.99999; done", workdir);
    cr_assert_eq(system(cmd), 0);
    /* a second ablate on the same cells waits for the lock of the first (here a child holding it 2 s) */
    int ready[2];
    cr_assert_eq(pipe(ready), 0);
    pid_t holder = fork();
    if (holder == 0) {
        int fd = open(in_workdir(path, "cells/lock"), O_RDWR | O_CREAT, 0666);
        if (fd < 0 || flock(fd, LOCK_EX) || write(ready[1], "x", 1) != 1) _exit(1);
        sleep(2);
        _exit(0);
    }
    char byte;
    cr_assert_eq(read(ready[0], &byte, 1), 1, "the lock holder failed");
    double t0 = now_s();
    cr_assert_eq(run_grid(), 0, "%s", err_text);
    double waited = now_s() - t0;
    int status;
    cr_assert_eq(waitpid(holder, &status, 0), holder);
    cr_assert(strstr(err_text, "another ablate is running on"), "%s", err_text);
    cr_assert_gt(waited, 1.5, "ran %g s while the lock was held", waited);
    /* 10 sample cells (2 seeds × none, fora ×3, eb-cache) + the real features' + timing.h5 */
    cr_assert(strstr(err_text, "removed 12 temporary files of an interrupted run"), "%s", err_text);
    snprintf(cmd, sizeof cmd, "test -z \"$(find %s/cells -name '*.tmp.*' -o -name timing.h5)\"", workdir);
    cr_assert_eq(system(cmd), 0, "debris left");
    /* and computes nothing */
    cr_assert(strstr(err_text, "12 of 12 rows reused"), "%s", err_text);
    cr_assert_null(strstr(err_text, ": sample "), "%s", err_text);
    cr_assert_null(strstr(err_text, ": search "), "%s", err_text);

    /* a removed cell is recomputed alone, to the same numbers */
    snprintf(cmd, sizeof cmd, "rm %s/cells/sample-*/samples.h5 2>/dev/null; true", workdir);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(run_grid(), 0, "%s", err_text);
    cr_assert_eq(count_lines(err_text, ": sample "), 10, "%s", err_text); /* 2 seeds × (none, fora ×3, eb-cache) */
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
        {"name = x\nsamplers = ddim-8\nmethods = fora\nsweep.fora = 0\nseeds = 0\n", "g.spec:4: sweep.fora: '0' is not an interval"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_text("g.spec", cases[i].text);
        cr_assert_eq(run_grid(), 2, "case %zu", i);
        cr_assert(strstr(err_text, cases[i].message), "case %zu: %s", i, err_text);
    }
    cr_assert_eq(cli_run("ablate %s/missing.spec", workdir), 2);
    cr_assert(strstr(err_text, "missing.spec: cannot open"), "%s", err_text);
}
