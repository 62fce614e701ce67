/* common.c — model loading and run attributes shared by the commands. */
#include "common.h"

#include <stdio.h>
#include <string.h>

int eb_cli_open_model(const char *cmd, const eb_opt *opts, int nopts, eb_model **m, eb_cli_run *run) {
    *m = NULL;
    *run = (eb_cli_run){.cfg_scale = 1.0f, .guide_channels = -1};
    const char *v;
    long heads = 0, threads = 0, channels = -1;
    double scale = 1.0;
    eb_device dev = {.device = "cpu", .precision = EB_PRECISION_FP32};
    int rc = 0;
    for (int i = 0; i < nopts && !rc; i++) {
        if (!(v = opts[i].value)) continue;
        const char *name = opts[i].name;
        if (!strcmp(name, "device")) dev.device = v;
        else if (!strcmp(name, "precision")) rc = eb_precision_parse(v, &dev.precision) ? eb_report(cmd, EB_EINPUT) : 0;
        else if (!strcmp(name, "heads")) rc = eb_arg_int(cmd, name, v, 1, 1024, &heads);
        else if (!strcmp(name, "threads")) rc = eb_arg_int(cmd, name, v, 1, 1024, &threads);
        else if (!strcmp(name, "cfg-scale")) rc = eb_arg_float(cmd, name, v, &scale);
        else if (!strcmp(name, "cfg-channels") && strcmp(v, "all")) rc = eb_arg_int(cmd, name, v, 0, 4096, &channels);
    }
    if (rc) return rc;
    const char *path = eb_arg(opts, nopts, "model");
    if (!path && !(path = eb_default_model_path())) return eb_report(cmd, EB_EINPUT);
    eb_set_threads((int)threads);
    eb_status st = eb_model_load_on(m, path, (int)heads, &dev);
    if (st) return eb_report(cmd, st);
    const eb_config *c = eb_model_config(*m);
    const char *ch = eb_arg(opts, nopts, "cfg-channels");
    if (ch && !strcmp(ch, "all")) channels = c->in_channels;
    if (channels < 0) channels = eb_default_guide_channels(c);
    if (channels > c->in_channels) {
        fprintf(stderr, "ebcache %s: --cfg-channels %ld exceeds the model's %d ε channels\n", cmd, channels,
                c->in_channels);
        eb_model_free(*m);
        *m = NULL;
        return 2;
    }
    *run = (eb_cli_run){.model_path = path, .cfg_scale = (float)scale, .guide_channels = (int)channels,
                        .threads = (int)threads};
    return 0;
}

void eb_cli_write_run_attrs(eb_h5w *w, const eb_cli_run *run, const eb_model *m) {
    const eb_config *c = eb_model_config(m);
    eb_h5w_attr_str(w, NULL, "ebcache_version", EBCACHE_VERSION);
    eb_h5w_attr_str(w, NULL, "model", run->model_path);
    eb_h5w_attr_str(w, NULL, "device", eb_model_device(m));
    struct { const char *name; int value; } cfg[] = {
        {"input_size", c->input_size}, {"patch_size", c->patch_size}, {"in_channels", c->in_channels},
        {"hidden_size", c->hidden_size}, {"depth", c->depth}, {"num_heads", c->num_heads},
        {"num_classes", c->num_classes}, {"learn_sigma", c->learn_sigma},
    };
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++) eb_h5w_attr_i64(w, NULL, cfg[i].name, cfg[i].value);
    eb_h5w_attr_f64(w, NULL, "cfg_scale", run->cfg_scale);
    eb_h5w_attr_i64(w, NULL, "cfg_channels", run->guide_channels);
}
