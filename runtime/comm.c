/* comm.c — the serial communicator, shard arithmetic and the collectives
 * built on an eb_comm's primitives (comm.h). */
#include "runtime/comm.h"

#include <stdlib.h>
#include <string.h>

static eb_status serial_broadcast(const eb_comm *c, void *buf, size_t bytes, int root) { return EB_OK; }

static eb_status serial_allgather(const eb_comm *c, const void *mine, size_t bytes, void *all) {
    if (all != mine) memmove(all, mine, bytes);
    return EB_OK;
}

static eb_status serial_barrier(const eb_comm *c) { return EB_OK; }

const eb_comm *eb_comm_serial(void) {
    static const eb_comm serial = {.rank = 0, .size = 1, .local_rank = 0, .local_size = 1,
                                   .broadcast = serial_broadcast, .allgather = serial_allgather,
                                   .barrier = serial_barrier};
    return &serial;
}

void eb_shard_range(long n, int rank, int size, long *lo, long *hi) {
    long base = n / size, extra = n % size;
    *lo = rank * base + (rank < extra ? rank : extra);
    *hi = *lo + base + (rank < extra);
}

void eb_shard_batches(long n, long batch, int rank, int size, long *lo, long *hi) {
    eb_shard_range((n + batch - 1) / batch, rank, size, lo, hi);
    *lo = *lo * batch < n ? *lo * batch : n;
    *hi = *hi * batch < n ? *hi * batch : n;
}

eb_status eb_comm_agree(const eb_comm *c, eb_status st) {
    if (c->size == 1) return st;
    int *all = malloc((size_t)c->size * sizeof *all), mine = st;
    if (!all) return eb_fail(EB_ERUNTIME, "rank %d: out of memory agreeing on the status", c->rank);
    eb_status t = c->allgather(c, &mine, sizeof mine, all);
    int failed = -1;
    for (int r = 0; !t && r < c->size && failed < 0; r++)
        if (all[r]) failed = r;
    eb_status agreed = failed < 0 ? EB_OK : (eb_status)all[failed];
    free(all);
    if (t) return t;
    if (failed < 0) return EB_OK;
    char message[1024] = "";
    if (c->rank == failed) strncpy(message, eb_last_error(), sizeof message - 1);
    if ((t = c->broadcast(c, message, sizeof message, failed))) return t;
    return eb_fail(agreed, "rank %d: %s", failed, message);
}

eb_status eb_comm_sum_items(const eb_comm *c, long n, int k, const double *mine, double *sum) {
    /* every rank sends the longest shard's worth of rows, so one fixed-size gather serves any n */
    const long most = (n + c->size - 1) / c->size;
    const size_t row = (size_t)k * sizeof(double), slot = (size_t)most * row;
    long lo, hi;
    eb_shard_range(n, c->rank, c->size, &lo, &hi);
    double *send = calloc(most ? (size_t)most * k : 1, sizeof(double));
    double *all = malloc(slot * c->size + 1);
    eb_status st = send && all ? EB_OK : eb_fail(EB_ERUNTIME, "out of memory summing %ld items of %d values", n, k);
    if (!st) {
        if (hi > lo) memcpy(send, mine, (size_t)(hi - lo) * row);
        st = c->allgather(c, send, slot, all);
    }
    for (int j = 0; !st && j < k; j++) sum[j] = 0;
    for (int r = 0; !st && r < c->size; r++) {
        eb_shard_range(n, r, c->size, &lo, &hi);
        for (long i = lo; i < hi; i++)
            for (int j = 0; j < k; j++) sum[j] += all[(size_t)r * most * k + (size_t)(i - lo) * k + j];
    }
    free(send);
    free(all);
    return st;
}

eb_status eb_comm_max(const eb_comm *c, double *v) {
    double *all = malloc((size_t)c->size * sizeof *all);
    if (!all) return eb_fail(EB_ERUNTIME, "out of memory");
    eb_status st = c->allgather(c, v, sizeof *v, all);
    for (int r = 0; !st && r < c->size; r++)
        if (all[r] > *v) *v = all[r];
    free(all);
    return st;
}
