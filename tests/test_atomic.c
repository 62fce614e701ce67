/* test_atomic.c — the temporary-file-and-rename helper every writer uses:
 * commit replaces the old file, abort and every failure keep it and leave no
 * temporary, bad paths are input errors naming the path, and the signal
 * cleanup removes the temporaries of every kind of writer. */
#include "analyze/png.h"
#include "runtime/atomic.h"
#include "runtime/h5io.h"
#include "runtime/npz.h"
#include "runtime/schedule.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/eb_atomicXXXXXX";

static void make_dir(void) { cr_assert_not_null(mkdtemp(dir)); }
static void remove_dir(void) {
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}

static const char *in_dir(const char *name) {
    static char p[2][256];
    static int k;
    k ^= 1;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

/* Entries of the directory (the temporaries included). */
static int count_entries(void) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static void put_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

static void expect_text(const char *path, const char *want) {
    char got[64] = {0};
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s is missing", path);
    size_t n = fread(got, 1, sizeof got - 1, f);
    fclose(f);
    got[n] = 0;
    cr_expect_str_eq(got, want, "%s", path);
}

TestSuite(atomic, .init = make_dir, .fini = remove_dir);

Test(atomic, commit_replaces_and_abort_keeps_the_old_file) {
    const char *path = in_dir("out.txt");
    put_text(path, "old");
    eb_atomic a;
    cr_assert_eq(eb_atomic_open(&a, path), EB_OK, "%s", eb_last_error());
    cr_expect_eq(count_entries(), 2, "the temporary lies beside the target");
    fputs("half", a.f);
    eb_atomic_abort(&a);
    eb_atomic_abort(&a); /* a second abort is a no-op */
    expect_text(path, "old");
    cr_expect_eq(count_entries(), 1);

    cr_assert_eq(eb_atomic_open(&a, path), EB_OK);
    fputs("new", a.f);
    cr_assert_eq(eb_atomic_commit(&a), EB_OK, "%s", eb_last_error());
    expect_text(path, "new");
    cr_expect_eq(count_entries(), 1, "no temporary left");
    eb_atomic_abort(&a); /* after commit: nothing to remove, the new file stays */
    expect_text(path, "new");
}

Test(atomic, bad_paths_are_input_errors) {
    eb_atomic a;
    char missing[300];
    snprintf(missing, sizeof missing, "%s/no/such/dir/out.bin", dir);
    cr_expect_eq(eb_atomic_open(&a, missing), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), missing), "%s", eb_last_error());
    cr_expect_null(a.f);
    cr_expect_eq(eb_atomic_open(&a, dir), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "is a directory"), "%s", eb_last_error());
    cr_expect_eq(eb_atomic_open(&a, ""), EB_EINPUT);
    char *long_path = malloc(EB_ATOMIC_PATH_MAX + 8);
    memset(long_path, 'a', EB_ATOMIC_PATH_MAX + 7);
    long_path[EB_ATOMIC_PATH_MAX + 7] = 0;
    cr_expect_eq(eb_atomic_open(&a, long_path), EB_EINPUT);
    free(long_path);
    cr_expect_eq(count_entries(), 0);
}

Test(atomic, failed_rename_keeps_nothing) {
    const char *path = in_dir("target");
    eb_atomic a;
    cr_assert_eq(eb_atomic_open(&a, path), EB_OK);
    fputs("data", a.f);
    cr_assert_eq(mkdir(path, 0700), 0); /* the rename onto a directory fails */
    cr_expect_eq(eb_atomic_commit(&a), EB_ERUNTIME);
    cr_expect(strstr(eb_last_error(), "cannot move"), "%s", eb_last_error());
    cr_expect_eq(count_entries(), 1, "only the directory: the temporary is gone");
    rmdir(path);
}

Test(atomic, remove_temps_covers_every_writer) {
    eb_h5w *h;
    eb_npz_writer *z;
    eb_atomic a;
    cr_assert_eq(eb_h5w_create(&h, in_dir("a.h5")), EB_OK);
    cr_assert_eq(eb_npz_create(&z, in_dir("b.npz")), EB_OK);
    cr_assert_eq(eb_atomic_open(&a, in_dir("c.txt")), EB_OK);
    cr_expect_eq(count_entries(), 3);
    eb_atomic_remove_temps();
    cr_expect_eq(count_entries(), 0, "a signal handler leaves nothing behind");
    eb_h5w_abort(h);
    eb_npz_abort(z);
    eb_atomic_abort(&a);
    cr_expect_eq(count_entries(), 0);
}

Test(atomic, png_and_schedule_writers_replace_atomically) {
    const char *png = in_dir("g.png");
    put_text(png, "old");
    uint8_t px[4] = {0, 64, 128, 255};
    cr_assert_eq(eb_png_write_gray(png, px, 2, 2), EB_OK, "%s", eb_last_error());
    FILE *f = fopen(png, "rb");
    unsigned char sig[4] = {0};
    cr_assert_eq(fread(sig, 1, 4, f), 4);
    fclose(f);
    cr_expect_eq(memcmp(sig, "\x89PNG", 4), 0);
    cr_expect_eq(count_entries(), 1);
    char bad[300];
    snprintf(bad, sizeof bad, "%s/none/g.png", dir);
    cr_expect_eq(eb_png_write_gray(bad, px, 2, 2), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), bad), "%s", eb_last_error());

    eb_schedule s;
    eb_cache_schedule *cs;
    cr_assert_eq(eb_schedule_create(&s, "10"), EB_OK);
    cr_assert_eq(eb_cache_schedule_fora(&cs, &s, 2), EB_OK);
    const char *sched = in_dir("fora.schedule");
    put_text(sched, "old");
    cr_assert_eq(eb_cache_schedule_write(cs, sched), EB_OK, "%s", eb_last_error());
    eb_cache_schedule *back;
    cr_expect_eq(eb_cache_schedule_read(&back, sched), EB_OK, "%s", eb_last_error());
    eb_cache_schedule_free(back);
    cr_expect_eq(count_entries(), 2);
    cr_expect_eq(eb_cache_schedule_write(cs, dir), EB_EINPUT, "a directory is refused");
    eb_cache_schedule_free(cs);
    eb_schedule_free(&s);
}
