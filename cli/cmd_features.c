/* cmd_features.c — `ebcache features`: argv → eb_features_file (pipeline/features_inception.h):
 * the FID Inception features of an .npz of images (docs/inception.md), sharded over the ranks
 * under mpirun. */
#include "cli/args.h"
#include "cli/comm_mpi.h"
#include "cli/commands.h"

#include "pipeline/features_inception.h"
#include "runtime/ebcache.h"

#include <stdio.h>

#define CMD "features"

int cmd_features(int argc, char **argv) {
    eb_opt opts[] = {
        {"inception", "W.safetensors", "FID Inception weights (docs/inception.md; tools/convert_inception.py)", NULL},
        {"images", "IMAGES.npz[,...]", "arr_0 (N, H, W, 3) uint8 RGB, as DiT's sample_ddp.py and `ebcache decode` "
                                       "write it; shards concatenated in order", NULL},
        {"output", "F.h5", "pool (N, 2048), spatial (N, 2023) and, with an fc layer, logits (N, 1008), float32", NULL},
        {"batch", "B", "images read and run at a time (default 8)", NULL},
        {"threads", "N", "threads (default: all cores)", NULL},
        {"device", "cpu|cuda", "where the network runs (default cpu; cuda needs a build made with make CUDA=1)", NULL},
        {"precision", "fp32|tf32|bf16", "arithmetic on cuda (default fp32)", NULL},
    };
    const int n = sizeof opts / sizeof opts[0];
    int rc = eb_args_parse(argc, argv, opts, n,
                           "usage: ebcache features --inception W.safetensors --images IMAGES.npz[,...] --output F.h5\n"
                           "                        [--batch B] [--threads N] [--device cpu|cuda]\n"
                           "\n"
                           "Under mpirun each rank runs a contiguous share of the batches and rank 0 writes F.h5:\n"
                           "the same datasets, byte for byte, as one process.");
    if (rc) return rc < 0 ? 0 : rc;
    eb_features_file_params p;
    eb_features_file_params_defaults(&p);
    p.inception = eb_arg(opts, n, "inception"), p.images = eb_arg(opts, n, "images");
    p.output = eb_arg(opts, n, "output");
    if (!p.inception || !p.images || !p.output) {
        fprintf(stderr, "ebcache " CMD ": --inception, --images and --output are required (see --help)\n");
        return 2;
    }
    if ((rc = eb_output_check(CMD, p.output, EB_INPUTS(p.images, p.inception)))) return rc;
    long batch = p.batch, threads = 0;
    eb_device dev = {.device = eb_arg(opts, n, "device") ? eb_arg(opts, n, "device") : "cpu"};
    const char *v;
    if ((v = eb_arg(opts, n, "batch")) && (rc = eb_arg_int(CMD, "batch", v, 1, 1 << 12, &batch))) return rc;
    if ((v = eb_arg(opts, n, "threads")) && (rc = eb_arg_int(CMD, "threads", v, 1, 1024, &threads))) return rc;
    if ((v = eb_arg(opts, n, "precision")) && eb_precision_parse(v, &dev.precision)) return eb_report(CMD, EB_EINPUT);
    eb_set_threads((int)threads);
    p.batch = (int)batch, p.device = &dev, p.comm = eb_cli_comm(), p.progress = 1;
    eb_features_file_result r;
    eb_status st = eb_features_file(&p, &r);
    if (p.comm->rank) return st; /* rank 0 speaks for the job */
    if (st) return eb_report(CMD, st);
    char ranks[32] = "";
    if (p.comm->size > 1) snprintf(ranks, sizeof ranks, ", on %d ranks", p.comm->size);
    fprintf(stderr, "features of %ld images of %dx%d, %.2f s (%.3f s per image, %.1f GFLOP/s)%s%s\n", r.n, r.height,
            r.width, r.wall, r.wall / r.n, 2e-9 * r.macs * r.n / r.wall, ranks,
            r.logits ? "" : "; no fc layer, so no logits");
    return 0;
}
