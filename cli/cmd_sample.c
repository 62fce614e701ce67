/* cmd_sample.c — `ebcache sample`: DDPM / DDIM sampling with guidance. */
#include "cli/args.h"
#include "cli/comm_mpi.h"
#include "cli/commands.h"
#include "cli/common.h"

#include "pipeline/sampling.h"
#include "runtime/schedule.h"

#include <stdio.h>

/* What the schedule cost and saved: FLOP fraction and speedup, cache memory,
 * and with a baseline run the measured speedup. */
static void report_cache(const char *table, const eb_sample_result *r) {
    fprintf(stderr, "schedule %s: executed %.1f%% of the uncached MACs (FLOP speedup %.2fx), cache %zu bytes", table,
            100 * r->flop_fraction, 1 / r->flop_fraction, r->cache_bytes);
    if (r->policy != EB_POLICY_NONE)
        fprintf(stderr, ", %d of %d steps served by the policy", r->steps_skipped, r->steps_run);
    if (r->baseline_wall > 0)
        fprintf(stderr, "\nwall %.2f s, uncached %.2f s: measured speedup %.2fx (%.2f of the FLOP speedup)\n", r->wall,
                r->baseline_wall, r->baseline_wall / r->wall, r->baseline_wall / r->wall * r->flop_fraction);
    else
        fprintf(stderr, "\nwall %.2f s (--baseline also times the uncached run for the measured speedup)\n", r->wall);
}

int cmd_sample(int argc, char **argv) {
    eb_opt opts[] = {
        EB_CLI_SAMPLER_OPTS,
        {"noise", "IN.h5", "start from datasets noise (N,C,H,W) = x_T and y (N)", NULL},
        {"seed", "K", "noise seed (default 0); x_T too unless --noise", NULL},
        {"labels", "L1,L2,...", "one sample per label", NULL},
        {"n", "N", "N samples with labels 0,1,2,... cycling over the classes", NULL},
        {"batch", "B", "samples per model batch (default 32); keep it fixed to reproduce bits", NULL},
        {"output", "OUT.h5", "gets samples (N,C,H,W), y (N) and the settings as attributes", NULL},
        {"threads", "N", "threads (default: all cores)", NULL},
        EB_CLI_DEVICE_OPTS,
        {"schedule", "TABLE", "run a cache schedule table (docs/schedule.md) and report its cost", NULL},
        {"baseline", NULL, "with --schedule: also sample uncached first and report the measured speedup", NULL},
    };
    const int n = sizeof opts / sizeof opts[0];
    int rc = eb_args_parse(argc, argv, opts, n,
                           "usage: ebcache sample [--model PATH] [--sampler ddpm|ddim] [--steps N | --respacing SPEC]\n"
                           "                      [--eta E] [--cfg-scale S] (--noise IN.h5 | [--seed K] (--labels L1,L2,... | "
                           "--n N))\n"
                           "                      [--batch B] [--schedule TABLE [--baseline]] --output OUT.h5");
    if (rc) return rc < 0 ? 0 : rc;
    eb_sample_params p;
    eb_sample_params_defaults(&p);
    if (!(p.output = eb_arg(opts, n, "output"))) {
        fprintf(stderr, "ebcache sample: --output is required (see --help)\n");
        return 2;
    }
    if ((rc = eb_output_check("sample", p.output, EB_INPUTS(eb_arg(opts, n, "noise"), eb_arg(opts, n, "schedule"),
                                                             eb_model_input(opts, n)))))
        return rc;
    eb_cli_run run;
    if ((rc = eb_cli_run_read("sample", opts, n, &run))) return rc;
    p.run = run.p;
    p.baseline = !!eb_arg(opts, n, "baseline");
    p.comm = eb_cli_comm();
    eb_sample_result r;
    eb_status st = eb_sample_to_file(&p, &r);
    if (p.comm->rank == 0) eb_cli_warnings("sample", r.warning);
    eb_cli_run_free(&run);
    if (p.comm->rank) return st; /* rank 0 speaks for the job */
    if (st) return eb_report("sample", st);
    fprintf(stderr, "sampled %d %s, %d steps, %.2f s (%.3f s per image)%s\n", r.N, eb_plural(r.N, "image", "images"),
            r.steps, r.wall, r.wall / r.N, eb_cli_ranks_note(p.comm, r.merge_seconds));
    if (p.run.schedule) report_cache(p.run.schedule, &r);
    return 0;
}
