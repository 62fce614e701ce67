/* cmd_search.c — `ebcache search`: a cache schedule for a recording
 * (pipeline/searching.h, docs/search.md); eb-cache's calibration chains
 * replay the recorded run (pipeline/replay.h). */
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/common.h"

#include "pipeline/searching.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define CMD "search"

/* "A,C" for eb-cache's δ(τ) = A·τ + C, one number for a threshold method. */
static int parse_threshold(const char *v, eb_search_opts *o) {
    if (o->method->param == EB_PARAM_THRESHOLD) return eb_arg_float(CMD, "threshold", v, &o->threshold);
    if (o->method->param != EB_PARAM_DELTA_SCALE) {
        fprintf(stderr, "ebcache " CMD ": --threshold is for eb-cache (A,C) and the threshold methods; %s takes --%s\n",
                o->method->name, eb_param_kind_name(o->method->param));
        return 2;
    }
    char a[64], *comma = strchr(v, ',');
    if (!comma || (size_t)(comma - v) >= sizeof a) {
        fprintf(stderr, "ebcache " CMD ": --threshold: '%s' is not A,C (δ(τ) = A·τ + C)\n", v);
        return 2;
    }
    snprintf(a, sizeof a, "%.*s", (int)(comma - v), v);
    int rc = eb_arg_float(CMD, "threshold", a, &o->delta_a);
    return rc ? rc : eb_arg_float(CMD, "threshold", comma + 1, &o->delta_c);
}

/* Reads the method's options into o. Returns an exit status. */
static int read_opts(const eb_opt *opts, int n, eb_search_opts *o) {
    const char *v;
    int rc = 0;
    long iv;
    double target;
    if ((v = eb_arg(opts, n, "target-speedup"))) {
        if ((rc = eb_arg_float(CMD, "target-speedup", v, &target))) return rc;
        if (!(target > 1)) {
            fprintf(stderr, "ebcache " CMD ": --target-speedup: %s is not above 1 (a speedup over the uncached run; "
                            "1 is no caching)\n", v);
            return 2;
        }
        o->target = 1 / target;
    }
    if ((v = eb_arg(opts, n, "threshold")) && (rc = parse_threshold(v, o))) return rc;
    struct {
        const char *name;
        int *field;
        long min;
    } ints[] = {{"interval", &o->interval, 1}, {"blocks", &o->blocks, 1}, {"boundary", &o->boundary, 0},
                {"order", &o->order, 1},       {"warmup", &o->warmup, 1},
                {"lookahead", &o->lookahead, 1}, {"max-skips", &o->max_skips, 1}};
    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++) {
        if (!(v = eb_arg(opts, n, ints[k].name))) continue;
        if ((rc = eb_arg_int(CMD, ints[k].name, v, ints[k].min, EB_DIFFUSION_STEPS, &iv))) return rc;
        *ints[k].field = (int)iv;
    }
    if ((v = eb_arg(opts, n, "t-thre")) && (rc = eb_arg_float(CMD, "t-thre", v, &o->t_thre))) return rc;
    if ((v = eb_arg(opts, n, "retention")) && (rc = eb_arg_float(CMD, "retention", v, &o->retention))) return rc;
    o->router = eb_arg(opts, n, "router");
    if ((v = eb_arg(opts, n, "noise-scaling")) && eb_scaling_parse(&o->scaling, v)) return eb_report(CMD, EB_EINPUT);
    if (!isnan(o->target) && (eb_arg(opts, n, "interval") || eb_arg(opts, n, "threshold")) &&
        o->method->param != EB_PARAM_DELTA_SCALE) {
        fprintf(stderr, "ebcache " CMD ": --target-speedup searches the %s; do not give it too\n",
                eb_param_kind_name(o->method->param));
        return 2;
    }
    return 0;
}

/* "one of: none, noise-scaling, …" from the registry, so the help never lags behind it. */
static const char *method_help(void) {
    static char text[512];
    size_t used = (size_t)snprintf(text, sizeof text, "one of the registry (search/methods.h):");
    for (int i = 0; i < EB_NMETHODS && used < sizeof text; i++)
        used += (size_t)snprintf(text + used, sizeof text - used, " %s", eb_methods[i].name);
    return text;
}

int cmd_search(int argc, char **argv) {
    eb_opt opts[] = {
        {"method", "M", method_help(), NULL},
        {"record", "REC.h5", "the recording (ebcache record) the search scores tables on", NULL},
        {"fit", "FIT.h5", "fits (ebcache fit) of this recording's sampler; default: fitted from REC.h5", NULL},
        {"target-speedup", "X", "find the parameter whose table predicts 1/X of the uncached MACs (budget: the budget)", NULL},
        {"threshold", "V", "eb-cache: A,C for δ(τ) = A·τ + C (default 0.02,0.005); teacache: the threshold", NULL},
        {"interval", "N", "fora, delta-dit, taylorseer: refresh every N steps", NULL},
        {"blocks", "K", "delta-dit: blocks skipped (default half the depth)", NULL},
        {"boundary", "I", "delta-dit: first step that skips the front blocks (default S/2)", NULL},
        {"order", "O", "taylorseer: Taylor order 1..4 (default 2)", NULL},
        {"warmup", "W", "taylorseer: first steps always computed (default 2)", NULL},
        {"t-thre", "T", "eb-cache: phase split in t/1000 (default: the fit's t_thre)", NULL},
        {"lookahead", "K", "smoothcache: steps one compute may serve (default 1; up to the recording's lags)", NULL},
        {"max-skips", "K", "magcache: consecutive skipped steps at most (default 2)", NULL},
        {"retention", "R", "magcache: the first fraction of the model calls never skipped (default 0.2; negative: none)",
         NULL},
        {"router", "SCORES.h5", "l2c: the router scores (tools/convert_l2c.py --scores)", NULL},
        {"noise-scaling", "KIND", "ε divisor per step: none, two-phase, linear, per-step (default: two-phase for "
                                  "eb-cache, none otherwise)", NULL},
        {"config", "NAME", "model the FLOPs are counted on (default: the recording's)", NULL},
        {"model", "PATH", "a model file instead of --config", NULL},
        {"threads", "N", "threads for eb-cache's calibration chains (default: all cores)", NULL},
        {"output", "TABLE", "the schedule table to write (docs/schedule.md), with its provenance", NULL},
    };
    const int n = sizeof opts / sizeof opts[0];
    int rc = eb_args_parse(argc, argv, opts, n,
                           "usage: ebcache search --method M --record REC.h5 [--fit FIT.h5]\n"
                           "                      [--target-speedup X | --threshold V | --interval N] [method options] "
                           "--output TABLE\n"
                           "(fora, delta-dit, taylorseer need --interval or --target-speedup; teacache --threshold or "
                           "--target-speedup; budget --target-speedup)\n"
                           "Formulas, the methods and the provenance lines: docs/search.md.");
    if (rc) return rc < 0 ? 0 : rc;
    eb_search_params p;
    eb_search_params_defaults(&p);
    const char *method = eb_arg(opts, n, "method"), *v;
    p.record = eb_arg(opts, n, "record"), p.output = eb_arg(opts, n, "output"), p.fit = eb_arg(opts, n, "fit");
    p.config = eb_arg(opts, n, "config"), p.model = eb_arg(opts, n, "model");
    if (!method || !p.record || !p.output) {
        fprintf(stderr, "ebcache " CMD ": --method, --record and --output are required (see --help)\n");
        return 2;
    }
    if ((rc = eb_output_check(CMD, p.output, EB_INPUTS(p.record, p.fit, p.model, eb_arg(opts, n, "router"))))) return rc;
    if (eb_method_parse(&p.opts.method, method)) return eb_report(CMD, EB_EINPUT);
    if ((rc = read_opts(opts, n, &p.opts))) return rc;
    long threads = 0;
    if ((v = eb_arg(opts, n, "threads")) && (rc = eb_arg_int(CMD, "threads", v, 1, 1024, &threads))) return rc;
    p.threads = (int)threads;
    p.progress = 1;
    eb_search_outcome out;
    eb_status st = eb_search_to_file(&p, &out);
    if (st) return eb_report(CMD, st);
    eb_cli_warnings(CMD, out.warning);
    if (!out.met) {
        fprintf(stderr, "ebcache " CMD ": %s; nothing written\n", out.note);
        return 2;
    }
    fprintf(stderr, "wrote %s: %s (%s), predicted %.1f%% of the uncached MACs (%.2fx), deviation %.4g\n", p.output,
            out.method, out.params, 100 * out.flops, 1 / out.flops, out.deviation);
    return 0;
}
