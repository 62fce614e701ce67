/* cmd_plot.c — `ebcache plot REC.h5 --out DIR`: the recording's columns as
 * .dat text files and gnuplot PNGs from the scripts in plots/ (analyze/plots.h,
 * docs/recording.md). */
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/gnuplot.h"

#include "analyze/plots.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#define CMD "plot"

int cmd_plot(int argc, char **argv) {
    eb_opt opts[] = {
        {"out", "DIR", "folder for the PNGs and their .dat columns (created if missing)", NULL},
        {"scripts", "DIR", "folder of the gnuplot scripts (default: $EBCACHE_PLOTS, else plots/ of the tree)", NULL},
    };
    const int n = sizeof opts / sizeof opts[0];
    const char *usage = "usage: ebcache plot REC.h5 --out DIR\n\n"
                        "Writes snr.png, exposure.png, drift.png, eps.png and, for a cached recording, caching.png\n"
                        "(and the .dat files they plot). A value that should be defined and is not (NaN, Inf)\n"
                        "is refused with its dataset and index (exit 2).";
    if (argc < 2 || argv[1][0] == '-') {
        if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
            printf("%s\n", usage);
            return 0;
        }
        fprintf(stderr, "ebcache " CMD ": give the recording first: ebcache plot REC.h5 --out DIR\n");
        return 2;
    }
    const char *path = argv[1];
    char *args[argc - 1];
    args[0] = (char *)CMD;
    memcpy(args + 1, argv + 2, (argc - 2) * sizeof *args);
    int rc = eb_args_parse(argc - 1, args, opts, n, usage);
    if (rc) return rc < 0 ? 0 : rc;
    const char *dir = eb_arg(opts, n, "out");
    if (!dir) {
        fprintf(stderr, "ebcache " CMD ": --out DIR is required\n");
        return 2;
    }
    if ((rc = eb_output_dir_check(CMD, dir, EB_INPUTS(path)))) return rc;
    char scripts_dir[PATH_MAX];
    int cached = 0;
    eb_status st = eb_gp_find_scripts(eb_arg(opts, n, "scripts"), scripts_dir, sizeof scripts_dir);
    if (!st) st = eb_plot_recording(path, dir, scripts_dir, &cached);
    if (!st) fprintf(stderr, "wrote %s/{snr,exposure,drift,eps%s}.png\n", dir, cached ? ",caching" : "");
    return eb_report(CMD, st);
}
