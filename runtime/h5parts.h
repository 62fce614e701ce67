/* h5parts.h — one output written by many ranks: each rank writes its rows
 * (a contiguous shard of the indices, comm.h) into its own part file with
 * the usual writers (h5io.h, npz.h), then rank 0 merges the parts in rank
 * order, which is index order, into the output, streaming row ranges (never
 * a whole dataset in memory): HDF5 by hyperslab writes into datasets created
 * with the full shape, .npz through the npz writer's streaming API. The
 * merged file is written to "<path>.tmp.<pid>" and renamed when complete; the
 * parts are removed whatever happens.
 *
 * A part holds the output's datasets (npz members) with its rows along
 * axis 0; every other extent, the element type and the root attributes
 * come from part 0 (rank 0 writes the job's attributes: reduced statistics,
 * `ranks`). Datasets of rank 0 (scalars) are taken from part 0.
 * The parts sit next to the output, so the output's folder must be one that
 * every rank sees (a shared filesystem across nodes).
 */
#ifndef EB_H5PARTS_H
#define EB_H5PARTS_H

#include <stddef.h>

#include "runtime/comm.h"
#include "runtime/ebcache.h"

/* "<path>.part-R-of-S" into buf (cap bytes); NULL when it does not fit. */
const char *eb_part_path(char *buf, size_t cap, const char *path, int rank, int size);

/* Where this rank writes its rows of output `path`: *target = path itself
 * with one rank, else its part file, which it remembers (until
 * eb_parts_finish) for eb_parts_remove_temps. EB_EINPUT when the name is too
 * long. */
eb_status eb_parts_target(const eb_comm *c, const char *path, const char **target);

/* Collective: every rank passes its status so far (its part written when
 * EB_OK). With one rank: returns st. Otherwise the ranks agree on it
 * (eb_comm_agree: a failure anywhere is "rank R: message" everywhere); when
 * all succeeded, rank 0 merges the parts into `path` (.npz when the name
 * ends so: the members named in npz_members, NULL-terminated; otherwise
 * HDF5: every dataset) and the ranks agree on that. Every rank then removes
 * its part. Returns the same status on every rank; nothing is left at
 * `path`'s place on failure. *merge_seconds (may be NULL) gets the merge's
 * wall time on rank 0, 0 elsewhere. */
eb_status eb_parts_finish(const eb_comm *c, const char *path, const char *const *npz_members, eb_status st,
                          double *merge_seconds);

/* The merges eb_parts_finish runs on rank 0: parts[0..n) concatenated along
 * axis 0 into `path` (temporary name, then rename). EB_EINPUT naming the
 * part and the dataset (member) when a part is unreadable or its type or
 * other extents differ from part 0's; EB_ERUNTIME for a write failure. */
eb_status eb_h5_merge_parts(const char *path, const char *const *parts, int n);
eb_status eb_npz_merge_parts(const char *path, const char *const *parts, int n, const char *const *members);

/* Removes this process's part file and a merge's temporary file in
 * progress. Async-signal-safe: for the SIGTERM handler of a rank that
 * mpirun stops because another rank died. */
void eb_parts_remove_temps(void);

#endif
