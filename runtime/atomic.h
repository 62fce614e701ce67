/* atomic.h — writing a file so that no reader ever sees it half written and
 * a failure never destroys the file already there: the bytes go to
 * "<path>.tmp.<pid>" beside it (same directory, so the rename stays on one
 * file system); commit flushes them to disk, renames the temporary onto the
 * path and syncs the directory; abort, or a failed commit, removes the
 * temporary. The temporaries alive at once (the first EB_ATOMIC_TRACKED) are
 * registered, so that a signal handler can remove them all
 * (eb_atomic_remove_temps). Every writer of the library (HDF5, .npz,
 * schedules, PNG) goes through here. */
#ifndef EB_RUNTIME_ATOMIC_H
#define EB_RUNTIME_ATOMIC_H

#include <stdio.h>

#include "runtime/ebcache.h"

#define EB_ATOMIC_PATH_MAX 4096
#define EB_ATOMIC_TRACKED 32

/* One file being written. It must not move in memory between open and
 * commit/abort (the registry points into it); path and tmp stay readable
 * after both, for messages. */
typedef struct {
    char path[EB_ATOMIC_PATH_MAX];     /* the final path                        */
    char tmp[EB_ATOMIC_PATH_MAX + 32]; /* "<path>.tmp.<pid>"                    */
    FILE *f;                           /* the temporary, open "wb"; NULL after  */
    int slot;                          /* registry index, −1 when not registered */
} eb_atomic;

/* Creates the temporary of `path` (truncating a stale one) and opens it as
 * a->f. EB_EINPUT when path is empty, too long or a directory, or when its
 * directory is missing or not writable; EB_ERUNTIME on other failures. On
 * failure nothing is left on disk and a->f is NULL. Writers that open the
 * file by name themselves (HDF5) write to a->tmp and leave a->f unused. */
eb_status eb_atomic_open(eb_atomic *a, const char *path);

/* eb_atomic_open of dir/name (EB_EINPUT when the joined path is too long). */
eb_status eb_atomic_open_in(eb_atomic *a, const char *dir, const char *name);

/* Flushes a->f, fsyncs the temporary (all its data, whoever wrote it), closes
 * it and renames it onto a->path, replacing any file there; then syncs the
 * directory (best effort). EB_ERUNTIME naming the file on any failure, after
 * which the temporary is removed and the old file at a->path is untouched. */
eb_status eb_atomic_commit(eb_atomic *a);

/* Closes and removes the temporary; a no-op once committed or aborted. */
void eb_atomic_abort(eb_atomic *a);

/* Removes the temporary of every file opened and not yet committed or
 * aborted. Async-signal-safe: for a SIGINT / SIGTERM handler, so that an
 * interrupted run leaves nothing behind. */
void eb_atomic_remove_temps(void);

#endif
