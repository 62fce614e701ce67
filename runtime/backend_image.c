/* backend_image.c — which of the optional operations (the image ops, the cache and recorder ops) a backend has. */
#include "runtime/backend.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

const char *eb_backend_missing_op(const eb_backend *be, const char *ops) {
    static const struct { const char *name; size_t offset; } table[] = {
        {"copy", offsetof(eb_backend, copy)},
        {"add_scaled", offsetof(eb_backend, add_scaled)},
        {"rel_l1", offsetof(eb_backend, rel_l1)},
        {"taylor_update", offsetof(eb_backend, taylor_update)},
        {"taylor_forecast", offsetof(eb_backend, taylor_forecast)},
        {"feature_drift", offsetof(eb_backend, feature_drift)},
        {"attention_colsum", offsetof(eb_backend, attention_colsum)},
        {"token_gather", offsetof(eb_backend, token_gather)},
        {"token_scatter", offsetof(eb_backend, token_scatter)},
        {"toca_select", offsetof(eb_backend, toca_select)},
        {"conv2d", offsetof(eb_backend, conv2d)},
        {"group_norm", offsetof(eb_backend, group_norm)},
        {"upsample2x", offsetof(eb_backend, upsample2x)},
        {"avg_pool2d", offsetof(eb_backend, avg_pool2d)},
        {"max_pool2d", offsetof(eb_backend, max_pool2d)},
        {"resize_bilinear_tf1", offsetof(eb_backend, resize_bilinear_tf1)},
        {"relu", offsetof(eb_backend, relu)},
        {"transpose", offsetof(eb_backend, transpose)},
    };
    static _Thread_local char missing[32];
    for (const char *p = ops; *p;) {
        size_t len = strcspn(p, " ");
        int found = 0;
        for (size_t i = 0; i < sizeof table / sizeof table[0] && !found; i++)
            if (strlen(table[i].name) == len && !strncmp(table[i].name, p, len)) {
                void (*fn)(void);
                memcpy(&fn, (const char *)be + table[i].offset, sizeof fn);
                found = fn != NULL;
            }
        if (!found) {
            snprintf(missing, sizeof missing, "%.*s", (int)(len < sizeof missing ? len : sizeof missing - 1), p);
            return missing;
        }
        p += len;
        p += strspn(p, " ");
    }
    return NULL;
}
