/* common.h — what the model-running commands share: loading the model with
 * the common options and recording the run's settings as HDF5 attributes. */
#ifndef EB_CLI_COMMON_H
#define EB_CLI_COMMON_H

#include "args.h"

#include "ebcache.h"
#include "h5io.h"

typedef struct {
    const char *model_path;
    float cfg_scale;
    int guide_channels;
    int threads;
} eb_cli_run;

/* Reads --model, --heads, --cfg-scale, --cfg-channels and --threads (those
 * present in opts), sets the thread count and loads the model. Returns an exit
 * status (0, 1 or 2) after printing any error as "ebcache CMD: ...". */
int eb_cli_open_model(const char *cmd, const eb_opt *opts, int nopts, eb_model **m, eb_cli_run *run);

/* Root attributes every output file carries: model, configuration, guidance,
 * ebcache version. */
void eb_cli_write_run_attrs(eb_h5w *w, const eb_cli_run *run, const eb_model *m);

#endif
