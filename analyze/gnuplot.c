/* analyze/gnuplot.c — see gnuplot.h. */
#include "analyze/gnuplot.h"

#include "runtime/atomic.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

void eb_gp_quote(char *buf, size_t cap, const char *s) {
    size_t n = 0;
    for (; *s && n + 3 < cap; s++) {
        if (*s == '\'') buf[n++] = '\'';
        buf[n++] = *s;
    }
    buf[n] = 0;
}

/* Runs gnuplot on `script` with `vars`; stderr goes to `log`. */
static eb_status run_gnuplot(const char *script, const char *vars, const char *log) {
    pid_t pid = fork();
    if (pid < 0) return eb_fail(EB_ERUNTIME, "cannot start gnuplot: %s", strerror(errno));
    if (pid == 0) {
        int err = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600), null = open("/dev/null", O_WRONLY);
        if (err >= 0) dup2(err, 2);
        if (null >= 0) dup2(null, 1);
        execlp("gnuplot", "gnuplot", "-e", vars, script, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return EB_OK;
    char first[512] = "";
    FILE *f = fopen(log, "r");
    if (f) {
        size_t got = fread(first, 1, sizeof first - 1, f);
        first[got] = 0;
        fclose(f);
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
        return eb_fail(EB_ERUNTIME, "gnuplot not found (install gnuplot-nox)");
    return eb_fail(EB_ERUNTIME, "gnuplot failed on %s: %s", script, first);
}

/* EB_OK when png is a whole PNG file: the signature, and the IEND chunk at
 * the end. gnuplot exits 0 even when its writes failed (a full disk leaves a
 * truncated file), so its exit status alone does not say the figure is there. */
static eb_status check_png(const char *tmp, const char *png) {
    static const unsigned char signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    static const unsigned char iend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82};
    unsigned char head[8], tail[12];
    FILE *f = fopen(tmp, "rb");
    if (!f) return eb_fail(EB_ERUNTIME, "%s: gnuplot wrote no file: %s", png, strerror(errno));
    int whole = fread(head, 1, sizeof head, f) == sizeof head && !memcmp(head, signature, sizeof head) &&
                fseek(f, -(long)sizeof tail, SEEK_END) == 0 && fread(tail, 1, sizeof tail, f) == sizeof tail &&
                !memcmp(tail, iend, sizeof tail);
    long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    fclose(f);
    if (!whole)
        return eb_fail(EB_ERUNTIME, "%s: gnuplot left an incomplete PNG (%ld bytes): a full disk or a write error?",
                       png, size);
    return EB_OK;
}

eb_status eb_gp_render(const char *scripts_dir, const char *name, const char *vars, const char *png) {
    char script[PATH_MAX], log_path[PATH_MAX + 8];
    if (snprintf(script, sizeof script, "%s/%s.gp", scripts_dir, name) >= (int)sizeof script ||
        snprintf(log_path, sizeof log_path, "%s.log", png) >= (int)sizeof log_path)
        return eb_fail(EB_EINPUT, "%s: path too long", png);
    /* gnuplot writes the figure into the atomic writer's temporary by name and its stderr into a second
     * one, never committed: both registered, so an interrupted run leaves neither (runtime/atomic.h) */
    eb_atomic out, log;
    eb_status st = eb_atomic_open(&out, png);
    if (st) return st;
    if ((st = eb_atomic_open(&log, log_path))) {
        eb_atomic_abort(&out);
        return st;
    }
    char qtmp[2 * sizeof out.tmp];
    eb_gp_quote(qtmp, sizeof qtmp, out.tmp);
    size_t cap = strlen(vars) + strlen(qtmp) + 16;
    char *all = malloc(cap);
    if (!all) {
        st = eb_fail(EB_ERUNTIME, "out of memory");
    } else {
        snprintf(all, cap, "%s; out='%s'", vars, qtmp);
        st = run_gnuplot(script, all, log.tmp);
    }
    free(all);
    eb_atomic_abort(&log);
    if (!st) st = check_png(out.tmp, png);
    if (!st) st = eb_atomic_commit(&out);
    else eb_atomic_abort(&out);
    return st;
}
