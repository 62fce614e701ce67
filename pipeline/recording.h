/* pipeline/recording.h — `record` as a library call: a run (pipeline/run.h)
 * with the per-step statistics of analyze/record.h, written to one HDF5 file
 * (docs/recording.md) with the run's attributes and its labels /y, so that
 * eb-cache's calibration chains can replay it (pipeline/replay.h). */
#ifndef EB_PIPELINE_RECORDING_H
#define EB_PIPELINE_RECORDING_H

#include "pipeline/run.h"
#include "runtime/comm.h"

typedef struct {
    eb_run_params run;
    const char *data;          /* x0 for /snr/data: "fmnist" (the test split) or a file with x0 (N,C,H,W) (NULL) */
    const char *fmnist_dir;    /* Fashion-MNIST files for data = "fmnist" (NULL: the default place)  */
    int start_step;            /* with data: chains start from q(x_t | x0) at this step (0)          */
    int eps_q;                 /* the second pass for /eps/norm_q (1)                                 */
    const char *dump_features; /* "STEPS:BLOCKS" (comma lists or "all") of features to dump (NULL)   */
    const char *output;        /* REC.h5 (required)                                                   */
    const eb_comm *comm;       /* NULL: one process; else this rank records its share of the batches */
} eb_record_params;

void eb_record_params_defaults(eb_record_params *p);

typedef struct {
    int N, S, start_step;
    double wall;
    double macs, macs_uncached;
    char warning[1024];       /* eb_run's warning; --data from step 0 (the chains cannot know x0) */
} eb_record_result;

/* Opens the run, records it and writes p->output atomically (root attribute
 * `ranks`: the processes that made it); an interrupted process leaves no
 * temporary file (the SIGINT/SIGTERM handler of eb_h5w_remove_temps is the
 * caller's: the CLI installs it). r may be NULL. With p->comm, every rank
 * calls this with the same p: each records its whole batches
 * (eb_record_run), the sums are added in batch order and the rows gathered,
 * rank 0 writes the file, whose datasets are a single process's bytes; the
 * status is the same on every rank ("rank R: …" for a failure on rank R),
 * and nothing is written when any rank fails. r->wall: the slowest rank's. */
eb_status eb_record_to_file(const eb_record_params *p, eb_record_result *r);

#endif
