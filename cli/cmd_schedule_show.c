/* cmd_schedule_show.c — `ebcache schedule show TABLE`: a table as a picture
 * of every step's actions and MACs (eb_cache_schedule_describe). */
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/common.h"

#include "runtime/schedule.h"

#include <stdio.h>
#include <string.h>

int cmd_schedule_show(int argc, char **argv) {
    eb_opt opts[] = {
        {"config", "NAME", "model for the block count and FLOPs (default: the table's model, else the shipped one)", NULL},
        {"model", "PATH", "a model file instead of --config", NULL},
        {"heads", "N", "heads of --model when the file does not say", NULL},
    };
    const int n = sizeof opts / sizeof opts[0];
    const char *cmd = "schedule show";
    if (argc < 2 || argv[1][0] == '-') {
        if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
            printf("usage: ebcache schedule show TABLE [--config NAME | --model PATH]\n");
            return 0;
        }
        fprintf(stderr, "ebcache %s: give the table first: ebcache schedule show TABLE [--config NAME]\n", cmd);
        return 2;
    }
    const char *path = argv[1];
    char *args[argc - 1];
    args[0] = (char *)cmd;
    memcpy(args + 1, argv + 2, (argc - 2) * sizeof *args);
    int rc = eb_args_parse(argc - 1, args, opts, n, "usage: ebcache schedule show TABLE [--config NAME | --model PATH]");
    if (rc) return rc < 0 ? 0 : rc;
    eb_cache_schedule *cs;
    eb_status st = eb_cache_schedule_read(&cs, path);
    if (st) return eb_report(cmd, st);
    eb_config c;
    char label[128];
    if (!(rc = eb_cli_target_model(cmd, opts, n, cs->model, &c, label, sizeof label)))
        rc = eb_report(cmd, eb_cache_schedule_describe(stdout, cs, &c, path, label));
    eb_cache_schedule_free(cs);
    return rc;
}
