/* readfile.c — a whole small file into memory (see readfile.h). */
#include "runtime/readfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

eb_status eb_read_file(const char *path, size_t limit, char **data, size_t *size) {
    *data = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return eb_fail(EB_EINPUT, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 0, n = 0;
    char *buf = NULL;
    eb_status st = EB_OK;
    for (;;) {
        if (n == cap) { /* room for one byte past the limit, to see that it is exceeded, and the NUL */
            size_t grown = cap ? (cap > limit / 2 ? limit + 1 : 2 * cap) : (limit < 4096 ? limit + 1 : 4096);
            char *p = grown > cap ? realloc(buf, grown + 1) : NULL;
            if (!p) {
                st = grown > cap ? eb_fail(EB_ERUNTIME, "%s: out of memory", path)
                                 : eb_fail(EB_EINPUT, "%s: larger than %zu bytes", path, limit);
                break;
            }
            buf = p, cap = grown;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) st = eb_fail(EB_EINPUT, "%s: read error", path);
            break;
        }
    }
    fclose(f);
    if (st) {
        free(buf);
        return st;
    }
    if (!buf && !(buf = malloc(1))) return eb_fail(EB_ERUNTIME, "%s: out of memory", path);
    buf[n] = 0;
    *data = buf;
    *size = n;
    return EB_OK;
}

int eb_is_regular_file(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}
