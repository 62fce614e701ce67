/* comm.h — the processes of a distributed run, as the library sees them.
 *
 * The library never calls MPI: a command gets an eb_comm (the serial one
 * built in here, or the CLI's Open MPI one, cli/comm_mpi.c) and shards its
 * work by global index with eb_shard_range. Every rank computes its own
 * range; the collectives below are the only communication. Results must not
 * depend on the number of ranks: work is sharded in units whose arithmetic
 * does not change with the shard boundaries (a sample, a model batch), and
 * reductions run in index order (eb_comm_sum_items), never in rank order of
 * partial sums. docs/distributed.md describes the mapping.
 */
#ifndef EB_COMM_H
#define EB_COMM_H

#include <stddef.h>

#include "runtime/ebcache.h"

typedef struct eb_comm eb_comm;
struct eb_comm {
    int rank, size;             /* this process's index in [0, size)                 */
    int local_rank, local_size; /* among the ranks on this node: which GPU to take    */
    void *impl;                 /* the implementation's state                        */
    /* Every rank calls these in the same order. A transport failure is
     * EB_ERUNTIME with a message (Open MPI aborts the job on most). */
    /* buf (bytes) of rank `root` into buf on every rank. */
    eb_status (*broadcast)(const eb_comm *c, void *buf, size_t bytes, int root);
    /* Every rank's `bytes` of `mine`, concatenated in rank order into `all`
     * (size · bytes) on every rank. */
    eb_status (*allgather)(const eb_comm *c, const void *mine, size_t bytes, void *all);
    /* Returns once every rank has called it. */
    eb_status (*barrier)(const eb_comm *c);
};

/* The one-process communicator: rank 0 of 1; the collectives copy or do
 * nothing. Static: never freed. */
const eb_comm *eb_comm_serial(void);

/* Rank `rank` of `size` takes items [*lo, *hi) of n: contiguous ranges in
 * rank order covering 0..n-1 once, sizes differing by at most one (the first
 * n % size ranks take one more). A rank may get none (n < size). */
void eb_shard_range(long n, int rank, int size, long *lo, long *hi);

/* The rows [*lo, *hi) of n that rank `rank` of `size` takes in whole batches
 * of `batch` rows (batch k = rows k·batch … (k+1)·batch − 1, the last one
 * shorter): eb_shard_range over the ⌈n / batch⌉ batches. Each row then sees
 * the batch a single process gives it, whatever the number of ranks. */
void eb_shard_batches(long n, long batch, int rank, int size, long *lo, long *hi);

/* Every rank passes its own status (its message in eb_last_error()). Returns
 * the same on every rank: EB_OK when every rank passed EB_OK, else the
 * status of the lowest failing rank, with eb_last_error() set on every rank
 * to "rank R: its message" (with one rank: st and its message unchanged).
 * Call it before any step that needs every rank's work (a merge, a rename),
 * so that one rank's bad input fails the whole job, and every rank knows. */
eb_status eb_comm_agree(const eb_comm *c, eb_status st);

/* The sum over items 0..n-1, in index order, of per-item vectors of k
 * doubles: `mine` holds this rank's items [lo, hi) of eb_shard_range(n, …)
 * as (hi − lo, k) rows; *sum (k) gets the same bits on every rank and for
 * any number of ranks: ((0 + item 0) + item 1) + …, what one process adding
 * its items one after the other gets. A scan: rank r adds its items to the
 * running sum it receives from rank r − 1 and broadcasts it (size broadcasts
 * of k doubles, no buffer of n rows). */
eb_status eb_comm_sum_items(const eb_comm *c, long n, int k, const double *mine, double *sum);

/* Rows [lo, hi) of eb_shard_batches(n, batch, rank, size), row_bytes each,
 * from every rank into all (n rows, index order) on every rank; `mine` may
 * point at this rank's rows inside `all`. For small data: each rank receives
 * size · (rank 0's row count) rows. EB_ERUNTIME when out of memory. */
eb_status eb_comm_gather_batches(const eb_comm *c, long n, long batch, size_t row_bytes, const void *mine, void *all);

/* The largest of every rank's v, on every rank (e.g. the job's wall time). */
eb_status eb_comm_max(const eb_comm *c, double *v);

/* A progress line across ranks: "WHAT: D/T samples on R ranks, E s, ETA L s"
 * on rank 0's stderr when it is a terminal, D counting every rank's finished
 * rows. Callers show it with several ranks, where it replaces the samplers'
 * per-step line (which sees one batch of one rank). */
typedef struct {
    const eb_comm *c;
    const char *what;
    long total, done;
    int on;       /* 1 on every rank while rank 0 shows the line                     */
    double start; /* monotonic seconds at eb_comm_progress_begin                     */
} eb_comm_progress;

/* Collective: every rank calls it, failed or not, with the same `show`; the
 * line is on when show is set and rank 0's stderr is a terminal (one
 * broadcast of rank 0's answer). */
eb_status eb_comm_progress_begin(eb_comm_progress *p, const eb_comm *c, const char *what, long total, int show);
/* This rank finished n more rows: while the line is on, a collective (one
 * allgather of two numbers; call it after each batch, any number of times per
 * rank), and rank 0 redraws; else nothing. The results do not change. */
eb_status eb_comm_progress_add(eb_comm_progress *p, long n);
/* Collective: returns once every rank has called it, answering the add calls
 * of the ranks still working (a rank that failed calls it early, so nothing
 * waits for it); rank 0 ends its line. */
eb_status eb_comm_progress_end(eb_comm_progress *p);

#endif
