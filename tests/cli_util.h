/* cli_util.h — what the tests that run bin/ebcache share: a scratch folder
 * per test and a runner that captures stderr. */
#ifndef EB_TEST_CLI_UTIL_H
#define EB_TEST_CLI_UTIL_H

/* The current test's scratch folder (made by cli_workdir_make). */
extern char workdir[256];
/* stderr and stdout (its first 16 KiB) of the last cli_run. */
extern char err_text[8192];
extern char out_text[16384];

/* .init / .fini of a suite or test: a fresh /tmp folder, removed afterwards. */
void cli_workdir_make(void);
void cli_workdir_remove(void);
/* buf = workdir/name (buf holds ≥ 512 bytes); returns buf. */
const char *in_workdir(char *buf, const char *name);
/* Runs "$EBCACHE_BIN <args>" (default build/opt/ebcache) with stderr kept in
 * err_text and stdout in out_text; fails the test unless it exits normally; returns the exit status. */
int cli_run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
