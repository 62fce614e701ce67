/* main.c — bin/ebcache: dispatches to the subcommands. */
#include "cli/commands.h"
#include "cli/comm_mpi.h"

#include "runtime/atomic.h"
#include "runtime/ebcache.h"
#include "runtime/cpu/kernels.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    int (*run)(int, char **);
    const char *summary;
} commands[] = {
    {"info", cmd_info, "print a model's configuration, parameter count and cost per forward"},
    {"forward", cmd_forward, "run the model on x, t, y from an HDF5 file"},
    {"sample", cmd_sample, "sample images with DDPM or DDIM, with classifier-free guidance"},
    {"train", cmd_train, "train a DiT on Fashion-MNIST (resumable, deterministic)"},
    {"grid", cmd_grid, "a PNG grid of samples, one row per class"},
    {"eval", cmd_eval, "sample quality: FD, precision/recall, class accuracy, PSNR/SSIM vs uncached samples"},
    {"train-classifier", cmd_train_classifier, "train the Fashion-MNIST classifier eval measures with"},
    {"schedule", cmd_schedule, "write or show cache schedule tables (FORA, Δ-DiT, TeaCache, TaylorSeer, EB-Cache)"},
    {"record", cmd_record, "sample with per-step SNR, exposure bias, ε norms and feature drift into HDF5"},
    {"plot", cmd_plot, "gnuplot figures of a recording: SNR, exposure bias, drift heat map, ε-norm ratio"},
    {"fit", cmd_fit, "fit ε-scaling, EB-Cache's two-phase noise scaling and TeaCache's polynomial on a recording"},
    {"search", cmd_search, "search a cache schedule: EB-Cache's Algorithm 1, the baselines, or a FLOP budget"},
    {"ablate", cmd_ablate, "a grid of samplers, caching methods, speed targets and seeds: CSV, table, Pareto plot"},
    {"decode", cmd_decode, "decode sampled latents with the SD-VAE decoder into images (HDF5)"},
    {"features", cmd_features, "FID Inception features (pool, spatial, logits) of an .npz of images into HDF5"},
};

/* SIGINT / SIGTERM: the temporaries of the files being written go (runtime/atomic.h: every writer
 * registers its own), then the default action ends the process. train and the ranks of an MPI run
 * install their own handlers. */
static void on_signal(int sig) {
    eb_atomic_remove_temps();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void usage(FILE *f) {
    fprintf(f, "ebcache %s — DiT feature caching toolkit\n\nusage: ebcache <command> [options]\n\ncommands:\n",
            EBCACHE_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-17s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "  %-17s %s\n\n'ebcache <command> --help' describes each command.\n"
               "Exit status: 0 success, 1 runtime failure, 2 usage or input error.\n",
            "help", "this text");
}

int main(int argc, char **argv) {
    eb_cpu_reexec(argv); /* OpenMP's wait policy, OpenBLAS's best kernels for this CPU (kernels.h) */
    struct sigaction sa = {.sa_handler = on_signal}; /* before the ranks' own (comm_mpi.c), which replaces it */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    eb_cli_comm_init(&argc, &argv); /* one rank of mpirun / srun, or one process (docs/distributed.md) */
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (!strcmp(name, "help") || !strcmp(name, "--help") || !strcmp(name, "-h")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(name, "--version")) {
        printf("ebcache %s\n", EBCACHE_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(name, commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "ebcache: unknown command '%s'\n\n", name);
    usage(stderr);
    return 2;
}
