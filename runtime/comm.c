/* comm.c — the serial communicator, shard arithmetic and the collectives
 * built on an eb_comm's primitives (comm.h). */
#include "runtime/comm.h"

#include "runtime/clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    eb_status st = EB_OK;
    for (int j = 0; j < k; j++) sum[j] = 0;
    for (int r = 0; !st && r < c->size; r++) { /* rank r continues the sum of ranks 0 … r − 1 */
        if (r == c->rank) {
            long lo, hi;
            eb_shard_range(n, r, c->size, &lo, &hi);
            for (long i = lo; i < hi; i++)
                for (int j = 0; j < k; j++) sum[j] += mine[(size_t)(i - lo) * k + j];
        }
        if (c->size > 1) st = c->broadcast(c, sum, (size_t)k * sizeof *sum, r);
    }
    return st;
}

eb_status eb_comm_gather_batches(const eb_comm *c, long n, long batch, size_t row_bytes, const void *mine, void *all) {
    long lo, hi, most_lo, most;
    eb_shard_batches(n, batch, c->rank, c->size, &lo, &hi);
    if (c->size == 1) {
        if (all != mine) memmove(all, mine, (size_t)n * row_bytes);
        return EB_OK;
    }
    eb_shard_batches(n, batch, 0, c->size, &most_lo, &most); /* rank 0 has the most rows (the first ranks get the extra batch) */
    const size_t slot = (size_t)(most - most_lo) * row_bytes;
    unsigned char *send = calloc(slot + 1, 1), *got = malloc(slot * c->size + 1);
    eb_status st = send && got ? EB_OK : eb_fail(EB_ERUNTIME, "out of memory gathering %ld rows of %zu bytes", n, row_bytes);
    if (!st) {
        memcpy(send, mine, (size_t)(hi - lo) * row_bytes);
        st = c->allgather(c, send, slot, got);
    }
    for (int r = 0; !st && r < c->size; r++) {
        eb_shard_batches(n, batch, r, c->size, &lo, &hi);
        memcpy((unsigned char *)all + (size_t)lo * row_bytes, got + (size_t)r * slot, (size_t)(hi - lo) * row_bytes);
    }
    free(send);
    free(got);
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

/* ------------------------------------------------------------------------ */
/* The progress line across ranks                                            */

static void progress_draw(const eb_comm_progress *p) {
    const double el = eb_now_seconds() - p->start;
    fprintf(stderr, "\r%s: %ld/%ld samples on %d rank%s, %.0f s", p->what, p->done, p->total, p->c->size,
            p->c->size == 1 ? "" : "s", el);
    if (p->done > 0 && p->done < p->total) fprintf(stderr, ", ETA %.0f s", el / p->done * (p->total - p->done));
    fprintf(stderr, "   ");
}

eb_status eb_comm_progress_begin(eb_comm_progress *p, const eb_comm *c, const char *what, long total, int show) {
    *p = (eb_comm_progress){.c = c, .what = what, .total = total, .start = eb_now_seconds()};
    int on = show && c->rank == 0 && isatty(2);
    eb_status st = c->size > 1 ? c->broadcast(c, &on, sizeof on, 0) : EB_OK;
    p->on = !st && on;
    if (p->on && c->rank == 0) progress_draw(p);
    return st;
}

/* One round: every rank's {rows finished since the last round, finished}; the count of unfinished ranks. */
static eb_status progress_round(eb_comm_progress *p, long n, long finished, int *working) {
    long mine[2] = {n, finished}, all[2 * p->c->size]; /* no allocation to fail between matched collectives */
    eb_status st = p->c->allgather(p->c, mine, sizeof mine, all);
    *working = 0;
    for (int r = 0; !st && r < p->c->size; r++) p->done += all[2 * r], *working += !all[2 * r + 1];
    if (!st && p->c->rank == 0) progress_draw(p);
    return st;
}

eb_status eb_comm_progress_add(eb_comm_progress *p, long n) {
    int working;
    return p->on ? progress_round(p, n, 0, &working) : EB_OK;
}

eb_status eb_comm_progress_end(eb_comm_progress *p) {
    eb_status st = EB_OK;
    for (int working = 1; p->on && !st && working;) st = progress_round(p, 0, 1, &working);
    if (p->on && p->c->rank == 0) fprintf(stderr, "\n");
    p->on = 0;
    return st;
}
