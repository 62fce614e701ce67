/* pipeline/sampling.h — `sample` as a library call: a run (pipeline/run.h)
 * sampled into an HDF5 file of samples (N,C,H,W), labels y (N) and the run's
 * attributes, with the schedule's cost and, on request, an interleaved
 * uncached baseline for the measured speedup. */
#ifndef EB_PIPELINE_SAMPLING_H
#define EB_PIPELINE_SAMPLING_H

#include "pipeline/run.h"
#include "runtime/comm.h"

typedef struct {
    eb_run_params run;
    const char *output;  /* OUT.h5; NULL: nothing written (timing runs)                       */
    int baseline;        /* 1 (with a schedule): also sample uncached, after, on a copy of x_T */
    const eb_comm *comm; /* NULL: one process; else this rank samples its share of the batches and
                            the ranks' parts are merged into output (docs/distributed.md)       */
} eb_sample_params;

/* eb_run_params_defaults, no output, no baseline. */
void eb_sample_params_defaults(eb_sample_params *p);

typedef struct {
    int N, steps;
    double wall;            /* seconds the (cached) sampling took                        */
    double baseline_wall;   /* seconds of the uncached baseline (0 without one)          */
    double flop_fraction;   /* executed / uncached MACs (1 uncached)                     */
    size_t cache_bytes;
    int steps_run;          /* sampling steps run over all batches (with a schedule)     */
    int steps_skipped;      /* of them, steps a dynamic policy served                    */
    int policy;             /* the table's eb_policy_kind (EB_POLICY_NONE without table)  */
    char warning[1024];     /* eb_run's warning                                          */
    double merge_seconds;   /* several ranks: rank 0's merge of the parts (0 elsewhere)  */
} eb_sample_result;

/* Opens the run, samples it and writes p->output atomically (attributes:
 * eb_run_attrs_write plus steps, wall_seconds, ranks and, with a schedule,
 * flop_fraction, cache_bytes, steps_skipped, and with the baseline
 * baseline_wall_seconds and measured_speedup). r may be NULL; on failure
 * only its warning is meaningful. With p->comm, every rank of it calls this
 * with the same p: each samples its share of whole batches
 * (eb_shard_batches), the statistics in r are the job's (on every rank), the
 * parts are merged into p->output (runtime/h5parts.h), and the status is
 * the same on every rank ("rank R: …" for a failure on rank R). */
eb_status eb_sample_to_file(const eb_sample_params *p, eb_sample_result *r);

#endif
