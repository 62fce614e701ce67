/* test_cli_signal.c — SIGTERM while `ebcache` writes: the temporaries of the
 * atomic writers (runtime/atomic.h) go with the process (cli/main.c's handler),
 * the output never appears, and the process ends by the signal. */
#include "tests/cli_util.h"
#include "tests/golden.h"
#include "runtime/ebcache.h"
#include "runtime/h5io.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

TestSuite(cli_signal, .init = cli_workdir_make, .fini = cli_workdir_remove);

/* Entries of dir whose name contains `part` (NULL: any). */
static int entries_with(const char *dir, const char *part) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && (!part || strstr(e->d_name, part));
    closedir(d);
    return n;
}

/* Starts `ebcache ARGS…` (argv NULL-terminated, stderr to /dev/null, PATH from path_env when not NULL) in
 * a process group of its own, waits (up to a minute) until dir holds an entry containing `part`, then
 * sends SIGTERM to the group and returns the wait status of ebcache. */
static int term_when_seen(char *const *args, const char *path_env, const char *dir, const char *part) {
    const char *bin = getenv("EBCACHE_BIN") ? getenv("EBCACHE_BIN") : "build/opt/ebcache";
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        setpgid(0, 0);
        if (!freopen("/dev/null", "w", stderr)) _exit(126);
        if (path_env) setenv("PATH", path_env, 1);
        char *argv[32] = {(char *)bin};
        for (int i = 0; args[i] && i < 30; i++) argv[i + 1] = args[i];
        execv(bin, argv);
        _exit(127);
    }
    setpgid(pid, pid); /* both sides, so the group exists before the kill whoever runs first */
    int seen = 0;
    for (int tries = 0; tries < 6000 && !seen; tries++) {
        seen = entries_with(dir, part) > 0;
        if (!seen) usleep(10000);
    }
    kill(-pid, SIGTERM);
    int status;
    waitpid(pid, &status, 0);
    cr_assert(seen, "the run never created a file containing '%s' in %s", part, dir);
    return status;
}

/* decode to .npz streams every batch into the writer's temporary: 64 latents of 64² through the small
 * test VAE, one per batch, take long enough to be interrupted mid-file. */
Test(cli_signal, decode_to_npz_leaves_no_temporary) {
    enum { N = 64, C = 4, S = 64 };
    float *z = malloc(sizeof(float) * N * C * S * S);
    cr_assert_not_null(z);
    eb_rng_fill_normal(z, (size_t)N * C * S * S, eb_rng_key(3, 0));
    int32_t y[N] = {0};
    char in[512], out[512];
    eb_h5w *w;
    cr_assert_eq(eb_h5w_create(&w, in_workdir(in, "samples.h5")), EB_OK);
    eb_h5w_write(w, "samples", EB_H5_F32, z, 4, (int64_t[]){N, C, S, S});
    eb_h5w_write(w, "y", EB_H5_I32, y, 1, (int64_t[]){N});
    cr_assert_eq(eb_h5w_commit(w), EB_OK, "%s", eb_last_error());
    free(z);
    in_workdir(out, "images.npz");
    char *args[] = {"decode", "--vae", GOLDEN_DIR "vae_small/ldm", "--samples", in, "--output", out, "--batch", "1",
                    "--threads", "1", NULL};
    int status = term_when_seen(args, NULL, workdir, "images.npz.tmp.");
    cr_expect(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM, "ended by the signal (status %d)", status);
    cr_expect_eq(entries_with(workdir, "images.npz"), 0, "no output and no temporary is left");
}

/* plot: gnuplot draws into the PNG writer's temporary and logs into a second one, both made before it
 * starts; a stand-in that only waits keeps them there. Both go. */
Test(cli_signal, plot_leaves_no_temporary) {
    char rec[512], figs[512], fake[512], path_env[4096];
    in_workdir(rec, "rec.h5"), in_workdir(figs, "figs");
    cr_assert_eq(cli_run("record --model " GOLDEN_DIR "models/tiny_sigma.safetensors --steps 4 --n 1 --output %s", rec),
                 0, "%s", err_text);
    FILE *f = fopen(in_workdir(fake, "gnuplot"), "w");
    cr_assert(f && fputs("#!/bin/sh\nexec sleep 60\n", f) >= 0 && !fclose(f) && !chmod(fake, 0700));
    snprintf(path_env, sizeof path_env, "%s:%s", workdir, getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
    char *args[] = {"plot", rec, "--out", figs, NULL};
    int status = term_when_seen(args, path_env, figs, ".png.log.tmp.");
    cr_expect(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM, "ended by the signal (status %d)", status);
    cr_expect_eq(entries_with(figs, ".tmp."), 0, "no temporary is left in %s", figs);
    cr_expect_eq(entries_with(figs, ".png"), 0, "no PNG appeared in %s", figs);
}
