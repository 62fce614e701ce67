/* cmd_forward.c — `ebcache forward`: one model evaluation on x, t, y from HDF5. */
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/common.h"

#include "runtime/ebcache.h"
#include "runtime/h5io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_forward(int argc, char **argv) {
    eb_opt opts[] = {
        {"model", "PATH", "model (.safetensors or diffusers folder); default: the shipped model", NULL},
        {"heads", "N", "number of heads when the file does not say and D is not in the DiT table", NULL},
        {"input", "IN.h5", "datasets x (N,C,H,W) float, t (N) int in [0,1000), y (N) int in [0,num_classes]", NULL},
        {"output", "OUT.h5", "gets out (N,C_out,H,W)", NULL},
        {"cfg-scale", "S", "guidance scale; 1 (default) runs the plain conditional forward", NULL},
        EB_CLI_CFG_CHANNELS_OPT,
        {"threads", "N", "threads (default: all cores)", NULL},
        EB_CLI_DEVICE_OPTS,
    };
    const int n = sizeof opts / sizeof opts[0];
    int rc = eb_args_parse(argc, argv, opts, n,
                           "usage: ebcache forward [--model PATH] --input IN.h5 --output OUT.h5 [--cfg-scale S]");
    if (rc) return rc < 0 ? 0 : rc;
    const char *in_path = eb_arg(opts, n, "input"), *out_path = eb_arg(opts, n, "output");
    if (!in_path || !out_path) {
        fprintf(stderr, "ebcache forward: --input and --output are required (see --help)\n");
        return 2;
    }
    if ((rc = eb_output_check("forward", out_path, EB_INPUTS(in_path, eb_model_input(opts, n))))) return rc;
    eb_cli_run args;
    eb_run run;
    if ((rc = eb_cli_run_read("forward", opts, n, &args))) return rc;
    if (!eb_arg(opts, n, "cfg-scale")) args.p.cfg_scale = 1; /* the plain conditional forward */
    if ((rc = eb_report("forward", eb_run_open_model(&run, &args.p)))) return rc;
    eb_cli_warnings("forward", run.warning);
    eb_model *m = run.model;
    const eb_config *c = eb_model_config(m);

    float *x = NULL, *out = NULL;
    int32_t *t = NULL, *y = NULL;
    eb_h5 *in = NULL;
    int64_t xd[4], td[1], yd[1];
    eb_status st = eb_h5_open(&in, in_path);
    if (!st) {
        int64_t want_x[4] = {EB_H5_ANY, c->in_channels, c->input_size, c->input_size};
        st = eb_h5_read_f32(in, "x", 4, want_x, &x, xd, EB_H5_FINITE);
    }
    if (!st) {
        int64_t want_n[1] = {xd[0]};
        st = eb_h5_read_i32(in, "t", 1, want_n, &t, td);
        if (!st) st = eb_h5_read_i32(in, "y", 1, want_n, &y, yd);
    }
    eb_h5_close(in);
    int N = st ? 0 : (int)xd[0];
    if (!st && N == 0) st = eb_fail(EB_EINPUT, "%s: dataset 'x' holds no rows", in_path);
    size_t out_len = (size_t)N * eb_out_channels(c) * c->input_size * c->input_size;
    if (!st && !(out = malloc(out_len * sizeof(float)))) st = eb_fail(EB_ERUNTIME, "out of memory");
    if (!st) {
        st = run.so.cfg_scale != 1.0f ? eb_forward_cfg(m, out, x, t, y, N, run.so.cfg_scale, run.so.guide_channels)
                                   : eb_forward(m, out, x, t, y, N);
        if (st == EB_EINPUT) st = eb_fail(EB_EINPUT, "%s: %s", in_path, eb_last_error());
    }
    if (!st) {
        eb_h5w *w = NULL;
        int64_t od[4] = {N, eb_out_channels(c), c->input_size, c->input_size};
        st = eb_h5w_create(&w, out_path);
        if (!st) {
            eb_h5w_write(w, "out", EB_H5_F32, out, 4, od);
            eb_run_model_attrs_write(w, &run, &args.p);
            st = eb_h5w_commit(w);
        }
    }
    free(x);
    free(t);
    free(y);
    free(out);
    eb_run_close(&run);
    return eb_report("forward", st);
}
