/* cmd_info.c — `ebcache info`: configuration, parameter count, cost per forward. */
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/common.h"

#include "runtime/ebcache.h"

#include <stdio.h>

int cmd_info(int argc, char **argv) {
    eb_opt opts[] = {
        {"model", "PATH", "model (.safetensors or diffusers folder); default: the shipped model", NULL},
        {"heads", "N", "number of heads when the file does not say and D is not in the DiT table", NULL},
    };
    const int n = sizeof opts / sizeof opts[0];
    int rc = eb_args_parse(argc, argv, opts, n, "usage: ebcache info [--model PATH] [--heads N]");
    if (rc) return rc < 0 ? 0 : rc;
    long heads = 0;
    if (eb_arg(opts, n, "heads") && (rc = eb_arg_int("info", "heads", eb_arg(opts, n, "heads"), 1, 1024, &heads)))
        return rc;
    const char *path = eb_model_input(opts, n);
    if (!path) return eb_report("info", EB_EINPUT);
    eb_model *m;
    eb_status st = eb_model_load(&m, path, (int)heads);
    if (st) return eb_report("info", st);
    eb_cli_model_warning("info", m);
    const eb_config *c = eb_model_config(m);
    double macs = eb_forward_macs(c);
    printf("model        %s\n", path);
    printf("input        %d x %d x %d (C x H x W)\n", c->in_channels, c->input_size, c->input_size);
    printf("patch        %d  (%d tokens)\n", c->patch_size, eb_tokens(c));
    printf("hidden       %d\ndepth        %d\nheads        %d\n", c->hidden_size, c->depth, c->num_heads);
    printf("classes      %d (+1 null class)\n", c->num_classes);
    printf("learn_sigma  %s  (%d output channels)\n", c->learn_sigma ? "true" : "false", eb_out_channels(c));
    printf("parameters   %zu\n", eb_param_count(c));
    printf("cost         %.4g GMACs per sample per forward (%.4g GFLOPs); x2 with guidance\n", macs * 1e-9,
           2 * macs * 1e-9);
    eb_model_free(m);
    return 0;
}
