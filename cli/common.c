/* common.c — the run options, warnings and text outputs the commands share. */
#include "cli/common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int eb_cli_run_read(const char *cmd, const eb_opt *opts, int nopts, eb_cli_run *run) {
    memset(run, 0, sizeof *run);
    eb_run_params *p = &run->p;
    eb_run_params_defaults(p);
    p->progress = 1;
    const char *v;
    long num;
    double x;
    int rc = 0;
    eb_status st = EB_OK;
    if (!(p->model = eb_model_input(opts, nopts))) return eb_report(cmd, EB_EINPUT);
    /* --NAME → an int field in [min, max] */
    struct { const char *name; int *field; long min, max; } ints[] = {
        {"heads", &p->heads, 1, 1024}, {"threads", &p->threads, 1, 1024}, {"n", &p->n, 1, 1 << 20},
        {"batch", &p->batch, 1, 1 << 16}};
    for (size_t k = 0; !rc && k < sizeof ints / sizeof ints[0]; k++)
        if ((v = eb_arg(opts, nopts, ints[k].name)) && !(rc = eb_arg_int(cmd, ints[k].name, v, ints[k].min, ints[k].max, &num)))
            *ints[k].field = (int)num;
    if (!rc && (v = eb_arg(opts, nopts, "steps")) && !(rc = eb_arg_int(cmd, "steps", v, 2, EB_DIFFUSION_STEPS, &num)))
        snprintf(run->respacing, sizeof run->respacing, "%ld", num), p->respacing = run->respacing;
    if (!rc && (v = eb_arg(opts, nopts, "eta")) && !(rc = eb_arg_float(cmd, "eta", v, &x))) p->eta = x;
    if (!rc && (v = eb_arg(opts, nopts, "cfg-scale")) && !(rc = eb_arg_float(cmd, "cfg-scale", v, &x))) p->cfg_scale = x;
    if (!rc && (v = eb_arg(opts, nopts, "seed"))) rc = eb_arg_u64(cmd, "seed", v, &p->seed);
    if (!rc && (v = eb_arg(opts, nopts, "labels")) &&
        !(rc = eb_report(cmd, eb_int_list_parse("labels", v, 0, INT32_MAX, &run->labels, &p->n_labels))))
        p->labels = run->labels;
    if (rc) {
        eb_cli_run_free(run);
        return rc;
    }
    if ((v = eb_arg(opts, nopts, "respacing"))) p->respacing = v;
    if ((v = eb_arg(opts, nopts, "cfg-channels"))) p->cfg_channels = v;
    p->noise = eb_arg(opts, nopts, "noise");
    p->schedule = eb_arg(opts, nopts, "schedule");
    p->device.device = eb_arg(opts, nopts, "device");
    if ((v = eb_arg(opts, nopts, "sampler"))) st = eb_sampler_kind_parse(&p->sampler, v);
    if (!st && (v = eb_arg(opts, nopts, "variance"))) st = eb_variance_choice_parse(&p->variance, v);
    if (!st && (v = eb_arg(opts, nopts, "precision"))) st = eb_precision_parse(v, &p->device.precision);
    if (st) eb_cli_run_free(run);
    return eb_report(cmd, st);
}

void eb_cli_run_free(eb_cli_run *run) {
    free(run->labels);
    run->labels = NULL;
    run->p.labels = NULL;
}

void eb_cli_warnings(const char *cmd, const char *text) {
    char line[2048];
    for (const char *at = text; *at;) {
        const char *end = strchr(at, '\n');
        size_t len = end ? (size_t)(end - at) : strlen(at);
        snprintf(line, sizeof line, "%.*s", (int)len, at);
        eb_print_line(cmd, "warning: ", line);
        at += len + !!end;
    }
}

void eb_cli_model_warning(const char *cmd, const eb_model *m) { eb_cli_warnings(cmd, eb_model_warning(m)); }

int eb_cli_target_model(const char *cmd, const eb_opt *opts, int n, const char *named, eb_config *c, char *label,
                        size_t size) {
    const char *path = eb_arg(opts, n, "model"), *name = eb_arg(opts, n, "config"), *v;
    long heads = 0;
    int rc;
    if (!path && !name && named && *named) {
        if (eb_config_named(c, named) == EB_OK) name = named;
        else if (access(named, R_OK) == 0) path = named;
    }
    if (!path && !name && !(path = eb_default_model_path())) return eb_report(cmd, EB_EINPUT);
    if ((v = eb_arg(opts, n, "heads")) && (rc = eb_arg_int(cmd, "heads", v, 1, 1024, &heads))) return rc;
    return eb_report(cmd, eb_config_resolve(c, name, path, (int)heads, label, size));
}

