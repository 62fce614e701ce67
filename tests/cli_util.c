/* cli_util.c — scratch folders and the CLI runner for the tests. */
#include "tests/cli_util.h"

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

char workdir[256];
char err_text[8192];
char out_text[16384];

void cli_workdir_make(void) {
    snprintf(workdir, sizeof workdir, "/tmp/ebcache_test_XXXXXX");
    cr_assert(mkdtemp(workdir), "mkdtemp");
}

void cli_workdir_remove(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", workdir);
    cr_assert_eq(system(cmd), 0);
}

const char *in_workdir(char *buf, const char *name) {
    snprintf(buf, 512, "%s/%s", workdir, name);
    return buf;
}

int cli_run(const char *fmt, ...) {
    const char *bin = getenv("EBCACHE_BIN") ? getenv("EBCACHE_BIN") : "build/opt/ebcache";
    char args[2048], cmd[4096], err_path[512], out_path[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "%s %s >'%s' 2>'%s'", bin, args, in_workdir(out_path, "stdout.txt"),
             in_workdir(err_path, "stderr.txt"));
    int status = system(cmd);
    const char *paths[2] = {err_path, out_path};
    char *texts[2] = {err_text, out_text};
    const size_t caps[2] = {sizeof err_text, sizeof out_text};
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(paths[i], "r");
        size_t len = f ? fread(texts[i], 1, caps[i] - 1, f) : 0;
        texts[i][len] = 0;
        if (f) fclose(f);
        unlink(paths[i]);
    }
    cr_assert(WIFEXITED(status), "%s did not exit normally", args);
    return WEXITSTATUS(status);
}
