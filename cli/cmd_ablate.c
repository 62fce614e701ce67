/* cmd_ablate.c — `ebcache ablate SPEC`: the ablation grid of SPEC
 * (docs/ablation.md) through pipeline/ablation.h, its progress and warnings
 * on stderr. */
#include "cli/args.h"
#include "cli/comm_mpi.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "cli/gnuplot.h"

#include "pipeline/ablation.h"
#include "pipeline/run.h"
#include "runtime/ebcache.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define CMD "ablate"

/* "ablate [done/total] TEXT (ETA …)", "ablate: TEXT", "ablate: warning: TEXT"; with several ranks
 * "ablate rank R [done/total] …", done/total counting that rank's rows. */
static void print_event(void *ctx, const eb_ablation_event *e) {
    const eb_comm *c = ctx;
    char eta[48] = "", who[32] = "";
    if (!isnan(e->eta)) eb_eta_text(eta, sizeof eta, e->eta); /* NaN: no ETA yet */
    if (c->size > 1) snprintf(who, sizeof who, " rank %d", c->rank);
    if (e->kind == EB_ABLATION_STEP) fprintf(stderr, "ablate%s [%d/%d] %s%s\n", who, e->done, e->total, e->text, eta);
    else fprintf(stderr, "ablate%s: %s%s%s\n", who, e->kind == EB_ABLATION_WARNING ? "warning: " : "", e->text, eta);
}

int cmd_ablate(int argc, char **argv) {
    eb_opt opts[] = {
        {"cells", "DIR", "where cells are computed and kept (default build/ablate-cells)", NULL},
        {"results", "DIR", "where NAME.csv, NAME.md, the Pareto plots and tables go (default results)", NULL},
        {"model", "PATH", "model instead of the spec's (default: the spec's, else the shipped model)", NULL},
        {"classifier", "PATH", "the evaluation's classifier (default: $EBCACHE_CLASSIFIER, else data/classifier.safetensors)", NULL},
        {"scripts", "DIR", "folder of the gnuplot scripts (default: $EBCACHE_PLOTS, else plots/ of the tree)", NULL},
        {"threads", "N", "threads (default: all cores)", NULL},
    };
    const int n = sizeof opts / sizeof opts[0];
    const char *usage = "usage: ebcache ablate SPEC [--cells DIR] [--results DIR] [--threads N]\n\n"
                        "Runs the grid of SPEC (docs/ablation.md): per sampler a calibration recording and fit, per\n"
                        "method and sweep point (speed target or native parameter) a searched table, per seed samples\n"
                        "and their evaluation, then the tables timed interleaved. Writes RESULTS/NAME.csv (one row per\n"
                        "cell and seed), RESULTS/NAME.md (one quality-speed curve per method, means ± 95% CI over\n"
                        "seeds, every curve read at EB-Cache's speeds, the claims), RESULTS/NAME_pareto_SAMPLER.png\n"
                        "and the tables in RESULTS/NAME_tables/. Finished cells are reused: an interrupted grid resumes.";
    if (argc < 2 || argv[1][0] == '-') {
        if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
            char *help[] = {(char *)CMD, (char *)"--help", NULL};
            return eb_args_parse(2, help, opts, n, usage) < 0 ? 0 : 2;
        }
        fprintf(stderr, "ebcache " CMD ": give the spec file first: ebcache ablate SPEC (see --help)\n");
        return 2;
    }
    char *args[argc];
    args[0] = (char *)CMD;
    memcpy(args + 1, argv + 2, (argc - 2) * sizeof *args);
    int rc = eb_args_parse(argc - 1, args, opts, n, usage);
    if (rc) return rc < 0 ? 0 : rc;
    if ((rc = eb_output_dir_check(CMD, eb_arg(opts, n, "results"), EB_INPUTS(argv[1], eb_arg(opts, n, "model")))))
        return rc;
    eb_ablation_params p;
    eb_ablation_params_defaults(&p);
    long threads = 0;
    const char *v;
    if ((v = eb_arg(opts, n, "threads")) && (rc = eb_arg_int(CMD, "threads", v, 1, 1024, &threads))) return rc;
    static eb_ablation_spec s; /* PATH_MAX paths and the sweep lists: kept off the stack */
    eb_status st = eb_ablation_spec_read(&s, argv[1]);
    if (st) return eb_report(CMD, st);
    char scripts[PATH_MAX], classifier[PATH_MAX];
    p.threads = (int)threads, p.progress = 1, p.on_event = print_event, p.comm = eb_cli_comm();
    p.ctx = (void *)p.comm;
    p.model = eb_arg(opts, n, "model") ? eb_arg(opts, n, "model") : s.model[0] ? s.model : eb_default_model_path();
    p.classifier = eb_arg(opts, n, "classifier") ? eb_arg(opts, n, "classifier")
                                                 : eb_data_file_path("EBCACHE_CLASSIFIER", "classifier.safetensors", classifier);
    if (!p.model || !p.classifier) return eb_report(CMD, EB_EINPUT);
    if ((v = eb_arg(opts, n, "cells"))) p.cells = v;
    if ((v = eb_arg(opts, n, "results"))) p.results = v;
    if ((st = eb_gp_find_scripts(eb_arg(opts, n, "scripts"), scripts, sizeof scripts))) return eb_report(CMD, st);
    p.scripts = scripts;
    eb_ablation *a;
    eb_ablation_results r = {0};
    if ((st = eb_ablation_open(&a, &s, &p))) return eb_report(CMD, st);
    st = eb_ablation_run(a, &r);
    eb_ablation_close(a);
    if (!st) { /* rank 0 writes the report, and with several ranks the others learn how that went */
        if (p.comm->rank == 0) st = eb_ablation_write_report(&s, &r, &p);
        st = eb_comm_agree(p.comm, st);
    }
    if (!st && p.comm->rank == 0) {
        fprintf(stderr, "ablate: %d of %d rows reused from %s; wrote %s/%s.csv, %s.md and %s_pareto_*.png", r.reused,
                r.n_rows, p.cells, p.results, s.name, s.name, s.name);
        if (p.comm->size > 1) fprintf(stderr, "; cells computed on %d ranks", p.comm->size);
        fprintf(stderr, "\n");
    }
    eb_ablation_results_free(&r);
    if (p.comm->rank) return st; /* rank 0 speaks for the job */
    return eb_report(CMD, st);
}
