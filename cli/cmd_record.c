/* cmd_record.c — `ebcache record`: sampling with per-step statistics
 * (analyze/record.h) written to one HDF5 file (docs/recording.md). */
#include "cli/args.h"
#include "cli/comm_mpi.h"
#include "cli/commands.h"
#include "cli/common.h"

#include "pipeline/recording.h"

#include <stdio.h>
#include <stdlib.h>

#define CMD "record"

int cmd_record(int argc, char **argv) {
    eb_opt opts[] = {
        EB_CLI_SAMPLER_OPTS,
        {"noise", "IN.h5", "x_T (or the noise z with --data) from datasets noise (N,C,H,W) and y (N)", NULL},
        {"seed", "K", "noise seed (default 0); x_T too unless --noise", NULL},
        {"labels", "L1,L2,...", "one sample per label", NULL},
        {"n", "N", "N samples; labels from the data, else 0,1,2,... cycling over the classes", NULL},
        {"batch", "B", "samples per model batch (default 32); statistics are sums over all batches", NULL},
        {"output", "REC.h5", "the recording (docs/recording.md)", NULL},
        {"threads", "N", "threads (default: all cores)", NULL},
        EB_CLI_DEVICE_OPTS,
        {"schedule", "TABLE", "record a cached run; an uncached chain with the same noise runs alongside", NULL},
        {"data", "fmnist|X0.h5", "known x0: Fashion-MNIST test images, or dataset x0 (N,C,H,W) [and y]", NULL},
        {"start-step", "K", "with --data: chains start from q(x_t | x0) at step K (default 0)", NULL},
        {"dump-features", "STEPS:BLOCKS", "full pre-gate features of the first batch, e.g. 10,20:0,3 or all:0", NULL},
        {"no-eps-q", NULL, "skip the second pass for /eps/norm_q (one more forward per step)", NULL},
    };
    const int n = sizeof opts / sizeof opts[0];
    int rc = eb_args_parse(argc, argv, opts, n,
                           "usage: ebcache record [--model PATH] [--sampler ddpm|ddim] [--steps N] [--cfg-scale S]\n"
                           "                      (--noise IN.h5 | [--seed K] (--labels L1,L2,... | --n N))\n"
                           "                      [--schedule TABLE] [--data fmnist|X0.h5 [--start-step K]]\n"
                           "                      [--dump-features STEPS:BLOCKS] --output REC.h5");
    if (rc) return rc < 0 ? 0 : rc;
    eb_record_params p;
    eb_record_params_defaults(&p);
    const char *v;
    long start_step = 0;
    if (!(p.output = eb_arg(opts, n, "output"))) {
        fprintf(stderr, "ebcache " CMD ": --output is required (see --help)\n");
        return 2;
    }
    p.data = eb_arg(opts, n, "data");
    if ((rc = eb_output_check(CMD, p.output, EB_INPUTS(eb_arg(opts, n, "noise"), eb_arg(opts, n, "schedule"), p.data,
                                                        eb_model_input(opts, n)))))
        return rc;
    if ((v = eb_arg(opts, n, "start-step")) &&
        (rc = eb_arg_int(CMD, "start-step", v, 0, EB_DIFFUSION_STEPS - 1, &start_step)))
        return rc;
    eb_cli_run run;
    if ((rc = eb_cli_run_read(CMD, opts, n, &run))) return rc;
    p.run = run.p;
    p.start_step = (int)start_step;
    p.eps_q = !eb_arg(opts, n, "no-eps-q");
    p.dump_features = eb_arg(opts, n, "dump-features");
    p.fmnist_dir = getenv("EBCACHE_FMNIST_DIR");
    p.comm = eb_cli_comm();

    eb_record_result r; /* an interrupted run leaves no temporary file (main.c's signal handler) */
    eb_status st = eb_record_to_file(&p, &r);
    if (p.comm->rank == 0) eb_cli_warnings(CMD, r.warning);
    eb_cli_run_free(&run);
    if (p.comm->rank) return st; /* rank 0 speaks for the job */
    if (st) return eb_report(CMD, st);
    fprintf(stderr, "recorded %d sample%s, steps %d..%d of %d, %.2f s", r.N, r.N == 1 ? "" : "s", r.start_step, r.S - 1,
            r.S, r.wall);
    if (p.run.schedule) fprintf(stderr, ", schedule at %.1f%% of the uncached MACs", 100 * r.macs / r.macs_uncached);
    if (p.comm->size > 1) fprintf(stderr, ", on %d ranks", p.comm->size);
    fprintf(stderr, " -> %s\n", p.output);
    return 0;
}
