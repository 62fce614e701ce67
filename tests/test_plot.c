/* test_plot.c — `ebcache plot` on the columns it writes: the cached ÷ uncached
 * ratios are what they claim (1 when the schedule reuses nothing), the drift
 * overlay marks exactly the features FORA-2 reuses, the second x axis labels
 * each step with its timestep, and a recording with a non-finite value where
 * one must be defined is refused with its file, dataset and index. */
#include "tests/cli_util.h"
#include "tests/golden.h"
#include "runtime/h5io.h"

#include <criterion/criterion.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MODEL GOLDEN_DIR "models/tiny_sigma.safetensors"

TestSuite(cli_plot, .init = cli_workdir_make, .fini = cli_workdir_remove);

/* Records `steps` steps of 3 samples under FORA with `interval` into rec and plots them into figs. */
static void record_and_plot(int interval, int steps, char *rec, char *figs) {
    char table[512];
    in_workdir(table, "fora.schedule"), in_workdir(rec, "rec.h5"), in_workdir(figs, "figs");
    cr_assert_eq(cli_run("schedule fora --interval %d --steps %d --output %s", interval, steps, table), 0, "%s",
                 err_text);
    cr_assert_eq(cli_run("record --model " MODEL " --steps %d --n 3 --schedule %s --output %s", steps, table, rec), 0,
                 "%s", err_text);
    cr_assert_eq(cli_run("plot %s --out %s", rec, figs), 0, "%s", err_text);
}

/* Rows of figs/name (S rows of `cols` numbers, "nan" allowed) into v (S, cols). */
static void read_dat(const char *figs, const char *name, int S, int cols, double *v) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s", figs, name);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    for (int i = 0; i < S * cols; i++) cr_assert_eq(fscanf(f, "%lf", &v[i]), 1, "%s: value %d", path, i);
    double extra;
    cr_expect_eq(fscanf(f, "%lf", &extra), EOF, "%s: exactly %d rows", path, S);
    fclose(f);
}

static double *read_rec(const char *rec, const char *name, int rank, int64_t d0, int64_t d1) {
    eb_h5 *f;
    double *v;
    int64_t want[2] = {d0, d1}, dims[2];
    cr_assert_eq(eb_h5_open(&f, rec), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_h5_read_f64(f, name, rank, want, &v, dims, 0), EB_OK, "%s", eb_last_error());
    eb_h5_close(f);
    return v;
}

/* A schedule that computes every step makes the cached run the uncached one: every ratio 1, deviations 0. */
Test(cli_plot, ratios_are_one_when_nothing_is_reused) {
    char rec[512], figs[512];
    const int S = 8;
    record_and_plot(1, S, rec, figs);
    double c[8 * 9], e[8 * 11];
    read_dat(figs, "caching.dat", S, 9, c);
    read_dat(figs, "eps.dat", S, 11, e);
    for (int k = 0; k < S; k++) {
        const double *r = c + 9 * k;
        cr_expect_eq(r[0], k);
        cr_expect(r[2] == 1 && r[4] == 1 && r[5] == 1 && r[6] == 1, "step %d: SNR %g, eps %g (%g..%g)", k, r[2], r[4],
                  r[5], r[6]);
        cr_expect(isnan(r[3]), "no data, no data-SNR ratio: %g", r[3]);
        cr_expect(r[7] == 0 && r[8] == 0, "step %d: deviations %g %g", k, r[7], r[8]);
        cr_expect(e[11 * k + 2] == e[11 * k + 8], "step %d: cached and uncached eps bands coincide", k);
    }
}

/* Under FORA-2 the columns are the recording's own quotients, and the overlay is the odd steps, every block. */
Test(cli_plot, columns_overlay_and_timestep_axis) {
    char rec[512], figs[512];
    const int S = 10, N = 3, L = 2;
    record_and_plot(2, S, rec, figs);
    double *traj = read_rec(rec, "/snr/trajectory", 1, S, 0), *ref = read_rec(rec, "/reference/snr/trajectory", 1, S, 0);
    double *eps = read_rec(rec, "/eps/norm", 2, S, N), *ref_eps = read_rec(rec, "/reference/eps/norm", 2, S, N);
    double *dev = read_rec(rec, "/deviation/x", 1, S, 0), *ratio = read_rec(rec, "/exposure/snr_ratio", 1, S, 0);
    double *t = read_rec(rec, "/steps/t", 1, S, 0);
    double c[10 * 9], x[10 * 8];
    read_dat(figs, "caching.dat", S, 9, c);
    read_dat(figs, "exposure.dat", S, 8, x);
    int moved = 0;
    for (int k = 0; k < S; k++) {
        double mean = 0;
        for (int n = 0; n < N; n++) mean += eps[k * N + n] / ref_eps[k * N + n] / N;
        cr_expect_float_eq(c[9 * k + 2], traj[k] / ref[k], 1e-8 * traj[k] / ref[k], "step %d SNR ratio", k);
        cr_expect_float_eq(c[9 * k + 4], mean, 1e-8, "step %d eps ratio", k);
        cr_expect_float_eq(c[9 * k + 7], dev[k], 1e-8 * dev[k] + 1e-300, "step %d deviation", k);
        cr_expect_float_eq(x[8 * k + 2], ratio[k], 1e-8 * ratio[k], "step %d normalised SNR", k);
        cr_expect_float_eq(c[9 * k + 1], t[k], 0, "step %d timestep", k);
        moved += fabs(c[9 * k + 4] - 1) > 1e-3;
    }
    cr_expect_gt(moved, 0, "FORA-2 changes eps somewhere");
    const char *maps[] = {"reuse_attn.dat", "reuse_mlp.dat"};
    for (int m = 0; m < 2; m++) {
        char path[600];
        snprintf(path, sizeof path, "%s/%s", figs, maps[m]);
        FILE *f = fopen(path, "r");
        cr_assert_not_null(f, "%s", path);
        int k, l, seen[10][2] = {{0}}, lines = 0;
        while (fscanf(f, "%d %d", &k, &l) == 2) {
            cr_assert(k >= 0 && k < S && l >= 0 && l < L, "%s: cell (%d, %d)", path, k, l);
            seen[k][l]++, lines++;
        }
        fclose(f);
        for (k = 0; k < S; k++)
            for (l = 0; l < L; l++)
                cr_expect_eq(seen[k][l], k % 2, "%s: step %d block %d is %s by FORA-2", path, k, l,
                             k % 2 ? "reused" : "computed");
        cr_expect_eq(lines, (S / 2) * L);
    }
    /* t_axis.gp: set x2tics ("t" k, ...), every label the timestep of its step, first and last step labelled */
    char path[600], line[4096], tics_line[4096], *tics = NULL;
    snprintf(path, sizeof path, "%s/t_axis.gp", figs);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "set x2tics (", 12)) tics = strcpy(tics_line, line) + 12;
    fclose(f);
    cr_assert_not_null(tics, "t_axis.gp sets the x2 tics");
    int labels = 0, first = 0, last = 0;
    for (char *p = tics; *p == '"';) {
        double label;
        int k, used;
        cr_assert_eq(sscanf(p, "\"%lf\" %d%n", &label, &k, &used), 2, "tic at '%.20s'", p);
        cr_assert(k >= 0 && k < S);
        cr_expect_eq(label, t[k], "step %d is labelled t = %g, recorded t = %g", k, label, t[k]);
        first |= k == 0, last |= k == S - 1, labels++;
        p += used;
        p += strspn(p, ", ");
    }
    cr_expect(labels >= 5 && first && last, "%d labels, first %d, last %d", labels, first, last);
    free(traj), free(ref), free(eps), free(ref_eps), free(dev), free(ratio), free(t);
}

/* Overwrites element `at` of dataset `name` in the file with v (HDF5 in place). */
static void spoil(const char *rec, const char *name, size_t n, size_t at, double v) {
    hid_t f = H5Fopen(rec, H5F_ACC_RDWR, H5P_DEFAULT), d = H5Dopen2(f, name, H5P_DEFAULT);
    cr_assert(f >= 0 && d >= 0, "%s in %s", name, rec);
    double *a = malloc(n * sizeof *a);
    cr_assert_geq(H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, a), 0);
    a[at] = v;
    cr_assert_geq(H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, a), 0);
    free(a);
    H5Dclose(d), H5Fclose(f);
}

/* A NaN or Inf where a value must be defined: exit 2 naming file, dataset and index, no figure. */
Test(cli_plot, refuses_non_finite_values) {
    char rec[512], figs[512], out[512];
    const int S = 10, L = 2, N = 3;
    record_and_plot(2, S, rec, figs);
    struct { const char *name; size_t n, at; double v; const char *index; } cases[] = {
        {"/snr/trajectory", S, 5, NAN, "NaN at [5]"},
        {"/exposure/snr_ratio", S, 0, INFINITY, "Inf at [0]"},
        {"/reference/drift/attn", (size_t)S * L, 3 * L + 1, -INFINITY, "-Inf at [3, 1]"},
        {"/eps/norm", (size_t)S * N, 9 * N + 2, NAN, "NaN at [9, 2]"},
        {"/deviation/eps", S, 9, NAN, "NaN at [9]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char bad[512], name[32];
        snprintf(name, sizeof name, "bad%zu.h5", i);
        in_workdir(bad, name);
        char cmd[1200];
        snprintf(cmd, sizeof cmd, "cp '%s' '%s'", rec, bad);
        cr_assert_eq(system(cmd), 0);
        spoil(bad, cases[i].name, cases[i].n, cases[i].at, cases[i].v);
        snprintf(name, sizeof name, "out%zu", i);
        int rc = cli_run("plot %s --out %s", bad, in_workdir(out, name));
        cr_expect_eq(rc, 2, "%s: exit %d (%s)", cases[i].name, rc, err_text);
        char want[1024];
        snprintf(want, sizeof want, "%s: dataset '%s' has %s", bad, cases[i].name, cases[i].index);
        cr_expect(strstr(err_text, want) != NULL, "'%s' lacks '%s'", err_text, want);
        cr_expect_neq(access(out, F_OK), 0, "%s: no figures", cases[i].name);
    }
    /* a NaN of a cached run's drift is a skipped block, not an error: the overlay takes it */
    spoil(rec, "/drift/attn", (size_t)S * L, 4 * L, NAN);
    cr_expect_eq(cli_run("plot %s --out %s", rec, in_workdir(out, "skip")), 0, "%s", err_text);
}
