/* fuzz_input.c — a libFuzzer input as a file (see fuzz_input.h). */
#define _XOPEN_SOURCE 700
#include "fuzz/fuzz_input.h"

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) { return remove(path); }

static void remove_dir(void) { nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS); }

static const char *input_dir(void) {
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "%s/ebcache-fuzz.XXXXXX", access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm");
        if (!mkdtemp(dir)) abort();
        atexit(remove_dir);
    }
    return dir;
}

void fuzz_input_path(char *buf, size_t cap, const char *rel) { snprintf(buf, cap, "%s/%s", input_dir(), rel); }

const char *fuzz_input_file(const char *name, const uint8_t *bytes, size_t size) {
    static char path[8][128];
    static const char *names[8];
    int slot = 0;
    while (slot < 8 && names[slot] && strcmp(names[slot], name)) slot++;
    if (slot == 8) abort(); /* a target uses a handful of names */
    names[slot] = name;
    fuzz_input_path(path[slot], sizeof path[slot], name);
    int fd = open(path[slot], O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, bytes, size) != (ssize_t)size) abort();
    close(fd);
    return path[slot];
}
