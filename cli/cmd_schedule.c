/* cmd_schedule.c — `ebcache schedule`: write cache schedule tables for FORA,
 * Δ-DiT, TeaCache, first-block cache, TaylorSeer, ToCa, a Learning-to-Cache
 * router and the official EB-Cache cache_table.npy, and show a table. Format: docs/schedule.md. */
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/common.h"

#include "runtime/ebcache.h"
#include "pipeline/run.h"
#include "runtime/schedule.h"
#include "search/search.h"
#include "search/toca.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The sampler's respaced schedule from --steps S or --respacing SPEC. */
static int sampler_schedule(const char *cmd, const eb_opt *opts, int n, eb_schedule *s, char *spacing, size_t size) {
    const char *steps = eb_arg(opts, n, "steps"), *resp = eb_arg(opts, n, "respacing");
    if (!steps && !resp) {
        fprintf(stderr, "ebcache %s: --steps S (or --respacing SPEC) is required (see --help)\n", cmd);
        return 2;
    }
    long v;
    int rc;
    if (steps && (rc = eb_arg_int(cmd, "steps", steps, 1, EB_DIFFUSION_STEPS, &v))) return rc;
    if (resp) snprintf(spacing, size, "%s", resp);
    else snprintf(spacing, size, "%ld", v);
    eb_status st = eb_schedule_create(s, spacing);
    if (!st && steps && s->S != v) {
        st = eb_fail(EB_EINPUT, "--respacing '%s' gives %d steps, not --steps %ld", spacing, s->S, v);
        eb_schedule_free(s);
    }
    return st ? eb_report(cmd, st) : 0;
}

/* Options every generator takes. */
#define COMMON_OPTS                                                                                                  \
    {"steps", "S", "sampling steps (respacing \"S\", as `ebcache sample --steps S`)", NULL},                          \
    {"respacing", "SPEC", "the sampler's official respacing instead (\"ddim50\", \"10,10,5\")", NULL},               \
    {"output", "TABLE", "the schedule table to write", NULL},                                                      \
    {"config", "NAME", "model the FLOP prediction (and Δ-DiT's depth) is for (default: the shipped model)", NULL},   \
    {"model", "PATH", "a model file instead of --config", NULL},                                                   \
    {"heads", "N", "heads of --model when the file does not say", NULL}

/* A kind's options: the registry method's parameter and options (o, and
 * TeaCache's polynomial), or (from-npy) the table itself. Returns an exit status. */
typedef struct {
    const char *cmd;
    const eb_opt *opts;
    int n;
    const eb_config *c;
    const eb_schedule *s;
    eb_search_opts o;
    double param, poly[EB_POLY_MAX];
    int npoly;
    eb_cache_schedule *table; /* from-npy, toca */
} kind_args;
typedef int (*option_reader)(kind_args *a);

static int generate(int argc, char **argv, eb_opt *opts, int n, const char *usage, const char *method,
                    option_reader read) {
    char cmd[64];
    snprintf(cmd, sizeof cmd, "schedule %s", argv[0]);
    char *args[argc];
    memcpy(args, argv, argc * sizeof *args);
    args[0] = cmd;
    int rc = eb_args_parse(argc, args, opts, n, usage);
    if (rc) return rc < 0 ? 0 : rc;
    const char *out = eb_arg(opts, n, "output");
    if (!out) {
        fprintf(stderr, "ebcache %s: --output TABLE is required (see --help)\n", cmd);
        return 2;
    }
    if ((rc = eb_output_check(cmd, out, EB_INPUTS(eb_arg(opts, n, "input"), eb_arg(opts, n, "router"), eb_model_input(opts, n))))) return rc;
    eb_config c;
    char label[128], spacing[64];
    eb_schedule s;
    if ((rc = eb_cli_target_model(cmd, opts, n, NULL, &c, label, sizeof label))) return rc;
    if ((rc = sampler_schedule(cmd, opts, n, &s, spacing, sizeof spacing))) return rc;
    kind_args a = {.cmd = cmd, .opts = opts, .n = n, .c = &c, .s = &s, .poly = {1, 0}, .npoly = 2};
    eb_search_defaults(&a.o);
    eb_status st = EB_OK;
    eb_cache_schedule *cs = NULL;
    if (!(rc = read(&a)) && method) { /* the registry's generator (search/methods.h) */
        const eb_method_input in = {.sched = &s, .c = &c, .o = &a.o, .poly = a.poly, .npoly = a.npoly};
        st = eb_method_find(method)->generate(&cs, &in, a.param);
    } else {
        cs = a.table;
    }
    if (!rc && !st) {
        snprintf(cs->model, sizeof cs->model, "%s", label);
        snprintf(cs->sampler, sizeof cs->sampler, "respacing=%s", spacing);
        st = eb_cache_schedule_check(cs, &c, &s);
        if (!st) cs->flops = eb_cache_schedule_flops(cs, &c);
        if (!st) st = eb_cache_schedule_write(cs, out);
        if (!st)
            fprintf(stderr, "wrote %s: %s, %d steps, predicted %.1f%% of the uncached MACs on %s (%.2fx)%s\n", out,
                    cs->method, s.S, 100 * cs->flops, label, 1 / cs->flops,
                    cs->policy.kind != EB_POLICY_NONE ? "; the policy skips more at run time" : "");
    }
    if (!rc) rc = eb_report(cmd, st);
    eb_cache_schedule_free(cs);
    eb_schedule_free(&s);
    return rc;
}

/* --name into *out (def when absent; a def below min makes it required). */
static int int_opt(const kind_args *a, const char *name, long def, long min, long max, int *out) {
    const char *v = eb_arg(a->opts, a->n, name);
    long got = def;
    if (!v && def < min) {
        fprintf(stderr, "ebcache %s: --%s is required (see --help)\n", a->cmd, name);
        return 2;
    }
    int rc = v ? eb_arg_int(a->cmd, name, v, min, max, &got) : 0;
    if (!rc) *out = (int)got;
    return rc;
}

/* --name into *out (def when absent; a NaN def makes it required). */
static int float_opt(const kind_args *a, const char *name, double def, double *out) {
    const char *v = eb_arg(a->opts, a->n, name);
    *out = def;
    if (!v && isnan(def)) {
        fprintf(stderr, "ebcache %s: --%s is required (see --help)\n", a->cmd, name);
        return 2;
    }
    return v ? eb_arg_float(a->cmd, name, v, out) : 0;
}

static int interval_opt(kind_args *a) {
    int interval = 0, rc = int_opt(a, "interval", -1, 1, EB_DIFFUSION_STEPS, &interval);
    a->param = interval;
    return rc;
}

static int read_delta(kind_args *a) {
    int rc = interval_opt(a);
    if (!rc) rc = int_opt(a, "blocks", -1, 1, a->c->depth, &a->o.blocks);
    if (!rc) rc = int_opt(a, "boundary", a->s->S / 2, 0, a->s->S, &a->o.boundary);
    return rc;
}

static int read_teacache(kind_args *a) {
    int rc = float_opt(a, "threshold", NAN, &a->param);
    const char *v = eb_arg(a->opts, a->n, "poly");
    if (rc || !v) return rc;
    char buf[512], *save;
    snprintf(buf, sizeof buf, "%s", v);
    a->npoly = 0;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (a->npoly == EB_POLY_MAX) {
            fprintf(stderr, "ebcache %s: --poly: more than %d coefficients\n", a->cmd, EB_POLY_MAX);
            return 2;
        }
        if ((rc = eb_arg_float(a->cmd, "poly", tok, &a->poly[a->npoly++]))) return rc;
    }
    return 0;
}

static int read_fbcache(kind_args *a) {
    int rc = float_opt(a, "threshold", NAN, &a->param);
    return rc ? rc : int_opt(a, "blocks", 1, 1, a->c->depth - 1, &a->o.blocks);
}

static int read_taylorseer(kind_args *a) {
    int rc = interval_opt(a);
    if (!rc) rc = int_opt(a, "order", -1, 1, 4, &a->o.order);
    if (!rc) rc = int_opt(a, "warmup", 2, 1, EB_DIFFUSION_STEPS, &a->o.warmup);
    return rc;
}

/* l2c: the converted router's scores at a threshold. */
static int read_l2c(kind_args *a) {
    if (!(a->o.router = eb_arg(a->opts, a->n, "router"))) {
        fprintf(stderr, "ebcache %s: --router SCORES.h5 is required (see --help)\n", a->cmd);
        return 2;
    }
    return float_opt(a, "threshold", NAN, &a->param);
}

/* ToCa with its fresh ratio and score patch too (the registry's row keeps R = 0.07, 2x2). */
static int read_toca(kind_args *a) {
    int interval = 0, grid = 2, rc = int_opt(a, "interval", -1, 1, EB_DIFFUSION_STEPS, &interval);
    double ratio;
    if (!rc) rc = float_opt(a, "ratio", EB_TOCA_RATIO, &ratio);
    if (!rc) rc = int_opt(a, "grid", 2, 1, 64, &grid);
    if (!rc) rc = eb_report(a->cmd, eb_cache_schedule_toca(&a->table, a->s, a->c->depth, ratio, interval));
    if (!rc) a->table->toca.grid = grid;
    return rc;
}

/* from-npy is no method: it converts the official table. */
static int read_npy(kind_args *a) {
    const char *input = eb_arg(a->opts, a->n, "input");
    double delta;
    if (!input) {
        fprintf(stderr, "ebcache %s: --input cache_table.npy is required (see --help)\n", a->cmd);
        return 2;
    }
    int rc = float_opt(a, "delta", 1.0, &delta);
    return rc ? rc : eb_report(a->cmd, eb_cache_schedule_from_npy(&a->table, input, a->s, delta));
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: ebcache schedule KIND [options] (--steps S | --respacing SPEC) [--config NAME | --model PATH] "
            "--output TABLE\n"
            "       ebcache schedule show TABLE [--config NAME | --model PATH]\n\n"
            "kinds:\n"
            "  fora        --interval N                       reuse attention and MLP between refreshes every N steps\n"
            "  delta-dit   --interval N --blocks K [--boundary I]  skip K rear blocks before step I, front blocks after\n"
            "  teacache    --threshold X [--poly c,...]       skip whole steps while the rescaled input change stays small\n"
            "  fbcache     --threshold X [--blocks F]         skip blocks F.. while the first blocks' residual is stable\n"
            "  taylorseer  --interval N --order O [--warmup W]  Taylor forecasts between refreshes every N steps\n"
            "  l2c         --router SCORES.h5 --threshold X   a Learning-to-Cache router (tools/convert_l2c.py)\n"
            "  toca        --interval N [--ratio R] [--grid G]  refresh about every N steps; between, reuse attention and\n"
            "                                                  recompute the MLP of ToCa's best-scored tokens (R 0.07)\n"
            "  from-npy    --input cache_table.npy [--delta D]  the official EB-Cache table (0 compute, 2 reuse both,\n"
            "                                                  else reuse attention) with ε divided by D\n\n"
            "'ebcache schedule KIND --help' lists every option. Format: docs/schedule.md.\n");
}

int cmd_schedule(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *kind = argv[1];
    if (!strcmp(kind, "show")) return cmd_schedule_show(argc - 1, argv + 1);
    struct {
        const char *name;
        option_reader read;
        eb_opt extra[3];
        const char *usage;
    } kinds[] = { /* a registry method each (search/methods.h) but from-npy */
        {"fora", interval_opt, {{"interval", "N", "refresh every N steps (1 = no caching)", NULL}},
         "usage: ebcache schedule fora --interval N --steps S --output TABLE"},
        {"delta-dit", read_delta,
         {{"interval", "N", "refresh every N steps", NULL}, {"blocks", "K", "blocks skipped by their residual", NULL},
          {"boundary", "I", "first step that skips the front blocks (default S/2)", NULL}},
         "usage: ebcache schedule delta-dit --interval N --blocks K [--boundary I] --steps S --output TABLE"},
        {"teacache", read_teacache,
         {{"threshold", "X", "accumulated rescaled change that forces a compute", NULL},
          {"poly", "c,...", "rescale polynomial, highest degree first as np.poly1d (default 1,0: none)", NULL}},
         "usage: ebcache schedule teacache --threshold X [--poly c,...] --steps S --output TABLE"},
        {"fbcache", read_fbcache,
         {{"threshold", "X", "relative L1 change of the first blocks' residual below which the rest is reused", NULL},
          {"blocks", "F", "blocks always computed (default 1)", NULL}},
         "usage: ebcache schedule fbcache --threshold X [--blocks F] --steps S --output TABLE"},
        {"taylorseer", read_taylorseer,
         {{"interval", "N", "refresh every N steps", NULL}, {"order", "O", "Taylor order 1..4", NULL},
          {"warmup", "W", "first steps always computed (default 2, as the official code)", NULL}},
         "usage: ebcache schedule taylorseer --interval N --order O [--warmup W] --steps S --output TABLE"},
        {"l2c", read_l2c,
         {{"router", "SCORES.h5", "the router scores written by tools/convert_l2c.py --scores", NULL},
          {"threshold", "X", "a module computes where its score is above X (the official --thres, 0.1)", NULL}},
         "usage: ebcache schedule l2c --router SCORES.h5 --threshold X --respacing ddim50 --output TABLE"},
        {"toca", read_toca,
         {{"interval", "N", "ToCa's fresh threshold N: refresh about every N steps", NULL},
          {"ratio", "R", "ToCa's fresh ratio R in [0, 1] (default 0.07, its DiT default)", NULL},
          {"grid", "G", "side of the score's uniformity patches in tokens (default 2; 1: no spatial bonus)", NULL}},
         "usage: ebcache schedule toca --interval N [--ratio R] [--grid G] --steps S --output TABLE"},
        {"from-npy", read_npy,
         {{"input", "NPY", "cache_table.npy: int64 (S,), entry S-1 = the first step", NULL},
          {"delta", "D", "ε is divided by D at every step (default 1; the released code uses 0.965)", NULL}},
         "usage: ebcache schedule from-npy --input cache_table.npy --steps S [--delta D] --output TABLE"},
    };
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        if (strcmp(kind, kinds[k].name)) continue;
        eb_opt opts[] = {kinds[k].extra[0], kinds[k].extra[1], kinds[k].extra[2], COMMON_OPTS};
        int n = sizeof opts / sizeof opts[0];
        /* drop the unused extra slots */
        int used = 0;
        for (int i = 0; i < n; i++)
            if (opts[i].name) opts[used++] = opts[i];
        return generate(argc - 1, argv + 1, opts, used, kinds[k].usage,
                        kinds[k].read == read_npy || kinds[k].read == read_toca ? NULL : kinds[k].name, kinds[k].read);
    }
    fprintf(stderr, "ebcache schedule: unknown kind '%s'\n\n", kind);
    usage(stderr);
    return 2;
}
