/* atomic.c — temporary file + rename for every writer (atomic.h). */
#include "runtime/atomic.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The temporaries of open files, read by eb_atomic_remove_temps from a signal
 * handler: a slot is set only once its string is complete, cleared before the
 * string can change. */
static char *volatile live_temps[EB_ATOMIC_TRACKED];

void eb_atomic_remove_temps(void) {
    for (int i = 0; i < EB_ATOMIC_TRACKED; i++) {
        char *p = live_temps[i];
        if (p) unlink(p);
    }
}

static void forget(eb_atomic *a) {
    if (a->slot >= 0) live_temps[a->slot] = NULL;
    a->slot = -1;
}

eb_status eb_atomic_open(eb_atomic *a, const char *path) {
    a->f = NULL;
    a->slot = -1;
    a->path[0] = a->tmp[0] = 0;
    if (!path || !path[0]) return eb_fail(EB_EINPUT, "output: empty file name");
    if (strlen(path) >= EB_ATOMIC_PATH_MAX)
        return eb_fail(EB_EINPUT, "%.64s...: output path longer than %d bytes", path, EB_ATOMIC_PATH_MAX - 1);
    struct stat sb;
    if (!stat(path, &sb) && S_ISDIR(sb.st_mode)) return eb_fail(EB_EINPUT, "%s: is a directory", path);
    snprintf(a->path, sizeof a->path, "%s", path);
    snprintf(a->tmp, sizeof a->tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(a->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd >= 0 && !(a->f = fdopen(fd, "wb"))) {
        int e = errno;
        close(fd);
        unlink(a->tmp);
        return eb_fail(EB_ERUNTIME, "%s: cannot open %s: %s", path, a->tmp, strerror(e));
    }
    if (fd < 0) {
        int e = errno;
        eb_status code = e == ENOENT || e == ENOTDIR || e == EACCES || e == EROFS || e == EISDIR ? EB_EINPUT
                                                                                                  : EB_ERUNTIME;
        return eb_fail(code, "%s: cannot create %s: %s", path, a->tmp, strerror(e));
    }
    for (int i = 0; i < EB_ATOMIC_TRACKED; i++)
        if (!live_temps[i]) {
            live_temps[i] = a->tmp;
            a->slot = i;
            break;
        }
    return EB_OK;
}

/* fsync of the directory holding `path`, so that the rename itself is durable (best effort). */
static void sync_dir(const char *path) {
    char dir[EB_ATOMIC_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir) slash[1] = 0; /* a file in "/" */
    else if (slash) slash[0] = 0;
    int fd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

eb_status eb_atomic_commit(eb_atomic *a) {
    if (!a->f) return eb_fail(EB_ERUNTIME, "%s: committed after the file was closed", a->path);
    int bad = fflush(a->f) != 0 || fsync(fileno(a->f)) != 0, e = errno;
    if (fclose(a->f) && !bad) bad = 1, e = errno;
    a->f = NULL;
    eb_status st = EB_OK;
    if (bad) st = eb_fail(EB_ERUNTIME, "%s: write failed: %s", a->tmp, strerror(e));
    else if (rename(a->tmp, a->path))
        st = eb_fail(EB_ERUNTIME, "%s: cannot move %s into place: %s", a->path, a->tmp, strerror(errno));
    if (st) unlink(a->tmp);
    else sync_dir(a->path);
    forget(a);
    return st;
}

void eb_atomic_abort(eb_atomic *a) {
    if (!a->f) return;
    fclose(a->f);
    a->f = NULL;
    unlink(a->tmp);
    forget(a);
}

eb_status eb_atomic_open_in(eb_atomic *a, const char *dir, const char *name) {
    char path[EB_ATOMIC_PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) {
        a->f = NULL, a->slot = -1, a->path[0] = a->tmp[0] = 0;
        return eb_fail(EB_EINPUT, "%s: path too long", dir);
    }
    return eb_atomic_open(a, path);
}
