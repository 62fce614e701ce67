/* error.c — the per-thread message of the last failure. */
#include "runtime/ebcache.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last_error[1024];

const char *eb_last_error(void) { return last_error; }

/* Formats into a local buffer first, so a message may quote eb_last_error()
 * ("%s: %s", path, eb_last_error()) to add context. */
eb_status eb_fail(eb_status code, const char *fmt, ...) {
    char message[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    memcpy(last_error, message, sizeof message);
    return code;
}
