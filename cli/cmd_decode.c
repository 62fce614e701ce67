/* cmd_decode.c — `ebcache decode`: latents from `ebcache sample` through the SD-VAE decoder (docs/vae.md), a thin
 * front end of eb_decode_to_file (pipeline/decoding.h). */
#include "cli/args.h"
#include "cli/comm_mpi.h"
#include "cli/commands.h"

#include "pipeline/decoding.h"
#include "runtime/ebcache.h"

#include <stdio.h>

#define CMD "decode"

int cmd_decode(int argc, char **argv) {
    eb_opt opts[] = {
        {"vae", "PATH", "AutoencoderKL weights: diffusers folder (or a pipeline holding vae/) or .safetensors", NULL},
        {"samples", "S.h5", "latents: dataset samples (N, C, H, W) and y (N) as `ebcache sample` writes", NULL},
        {"output", "OUT.h5|OUT.npz", "OUT.h5 gets images (N, 3, 8H, 8W) float32, the raw decoder output, and y; OUT.npz "
                                     "gets arr_0 (N, 8H, 8W, 3) uint8 as DiT's sample_ddp.py writes it, streamed", NULL},
        {"scale-factor", "F", "the decoder sees samples / F (default 0.18215, DiT's and SD's)", NULL},
        {"batch", "B", "latents per decoder batch (default 1)", NULL},
        {"threads", "N", "threads (default: all cores)", NULL},
        {"device", "cpu|cuda", "where the decoder runs (default cpu; cuda needs a build made with make CUDA=1)", NULL},
        {"precision", "fp32|tf32|bf16", "arithmetic on cuda (default fp32)", NULL},
    };
    const int n = sizeof opts / sizeof opts[0];
    int rc = eb_args_parse(argc, argv, opts, n,
                           "usage: ebcache decode --vae PATH --samples S.h5 --output OUT.h5|OUT.npz [--scale-factor F]\n"
                           "                      [--batch B] [--threads N] [--device cpu|cuda]");
    if (rc) return rc < 0 ? 0 : rc;
    const char *vae_path = eb_arg(opts, n, "vae"), *in_path = eb_arg(opts, n, "samples");
    const char *out_path = eb_arg(opts, n, "output"), *v;
    if (!vae_path || !in_path || !out_path) {
        fprintf(stderr, "ebcache " CMD ": --vae, --samples and --output are required (see --help)\n");
        return 2;
    }
    if ((rc = eb_output_check(CMD, out_path, EB_INPUTS(in_path, vae_path)))) return rc;
    eb_decode_params p;
    eb_decode_params_defaults(&p);
    long batch = 1, threads = 0;
    p.vae = vae_path, p.samples = in_path, p.output = out_path, p.progress = 1, p.comm = eb_cli_comm();
    p.device.device = eb_arg(opts, n, "device") ? eb_arg(opts, n, "device") : "cpu";
    if ((v = eb_arg(opts, n, "batch")) && (rc = eb_arg_int(CMD, "batch", v, 1, 1 << 16, &batch))) return rc;
    if ((v = eb_arg(opts, n, "threads")) && (rc = eb_arg_int(CMD, "threads", v, 1, 1024, &threads))) return rc;
    if ((v = eb_arg(opts, n, "scale-factor")) && (rc = eb_arg_float(CMD, "scale-factor", v, &p.scale_factor))) return rc;
    if ((v = eb_arg(opts, n, "precision")) && eb_precision_parse(v, &p.device.precision)) return eb_report(CMD, EB_EINPUT);
    p.batch = (int)batch, p.threads = (int)threads;
    eb_decode_result r;
    eb_status st = eb_decode_to_file(&p, &r);
    if (!st && p.comm->rank == 0)
        fprintf(stderr, "decoded %d images of %dx%d, %.2f s (%.3f s per image, %.1f GFLOP/s)%s\n", r.N, r.height,
                r.width, r.wall, r.wall / r.N, 1e-9 * r.flop / r.wall, eb_cli_ranks_note(p.comm, r.merge));
    return p.comm->rank == 0 ? eb_report(CMD, st) : (int)st;
}
