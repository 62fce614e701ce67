/* common.h — what the model-running commands share: loading the model with
 * the common options and recording the run's settings as HDF5 attributes. */
#ifndef EB_CLI_COMMON_H
#define EB_CLI_COMMON_H

#include "cli/args.h"

#include "runtime/ebcache.h"
#include "search/fit.h"
#include "runtime/h5io.h"
#include "runtime/schedule.h"

#include <limits.h>
#include <stdio.h>

typedef struct {
    const char *model_path;
    float cfg_scale;
    int guide_channels; /* leading output channels guided                      */
    const char *guidance; /* the rule that gave them: eb_guidance_name or "count" */
    int threads;
} eb_cli_run;

/* Which output channels guidance combines (eb_guidance, docs/guidance.md). */
#define EB_CLI_CFG_CHANNELS_OPT                                                                                    \
    {"cfg-channels", "official|eps|all|K",                                                                         \
     "output channels guidance combines: official = the first min(3, C_out) as forward_with_cfg (default; ε and "  \
     "the variance on a 1-channel learn_sigma model), eps = the C ε channels only, all = every output channel, "   \
     "K = the first K", NULL}

/* The model and sampler options `sample` and `record` share, in help order. */
#define EB_CLI_SAMPLER_OPTS                                                                                        \
    {"model", "PATH", "model (.safetensors or diffusers folder); default: the shipped model", NULL},              \
    {"heads", "N", "number of heads when the file does not say and D is not in the DiT table", NULL},             \
    {"sampler", "ddpm|ddim", "reverse process (default ddpm)", NULL},                                             \
    {"steps", "N", "sampling steps: respacing \"N\" of the 1000 training steps (default 50)", NULL},              \
    {"respacing", "SPEC", "explicit official respacing instead: \"N\", \"a,b,c\" or \"ddimN\"", NULL},            \
    {"eta", "E", "DDIM eta (default 0, deterministic)", NULL},                                                    \
    {"variance", "small|large", "fixed variance of a model without learn_sigma (default large)", NULL},           \
    {"cfg-scale", "S", "classifier-free guidance scale (default 1.5; 1 = no guidance)", NULL},                    \
    EB_CLI_CFG_CHANNELS_OPT

/* The device options every model-running command lists in its opts. */
#define EB_CLI_DEVICE_OPTS                                                                                         \
    {"device", "cpu|cuda", "where the model runs (default cpu; cuda needs a build made with make CUDA=1)", NULL},  \
    {"precision", "fp32|tf32|bf16", "GEMM and attention arithmetic on cuda (default fp32, exact)", NULL}

/* Prints the model's load warning (eb_model_warning), if any, as "ebcache CMD: warning: ...". */
void eb_cli_model_warning(const char *cmd, const eb_model *m);

/* Reads --model, --heads, --cfg-scale, --cfg-channels, --threads, --device and
 * --precision (those present in opts), sets the thread count and loads the
 * model on its device. Returns an exit status (0, 1 or 2) after printing any
 * error as "ebcache CMD: ...". */
int eb_cli_open_model(const char *cmd, const eb_opt *opts, int nopts, eb_model **m, eb_cli_run *run);

/* The starting point of sampling-like commands: --noise IN.h5 (datasets noise
 * (N,C,H,W) = x_T and y (N)), or x_T drawn from `seed` (docs/rng.md) with
 * --labels L1,L2,… or --n N (labels cycling over the classes). *xT and *y are
 * malloc'd. Returns an exit status after printing any error. */
int eb_cli_load_start(const char *cmd, const eb_opt *opts, int nopts, const eb_config *c, uint64_t seed, float **xT,
                      int32_t **y, int *N);

/* Root attributes every output file carries: model, configuration, guidance,
 * device, ebcache version. */
void eb_cli_write_run_attrs(eb_h5w *w, const eb_cli_run *run, const eb_model *m);

/* Checks table cs (read from `path`) against the model c and the run's
 * sampler s, which runs `kind` ("ddpm" or "ddim") on respacing `spacing`. A
 * failure whose table names another respacing (its `## sampler:`) says which
 * to give; a table searched under the other sampler kind gets a warning on
 * stderr. */
eb_status eb_cli_check_table(const char *cmd, const char *path, const eb_cache_schedule *cs, const eb_config *c,
                             const eb_schedule *s, const char *kind, const char *spacing);

/* When p is degenerate (p->flags), prints "ebcache CMD: warning: the
 * two-phase fit is degenerate (what each flag found): THEN". */
void eb_cli_fit_warning(const char *cmd, const eb_fit_two_phase *p, const char *then);

/* " (ETA 3 min 20 s)" for `left` seconds into buf; returns buf. The one ETA
 * format of the commands' progress lines. */
const char *eb_cli_eta_text(char *buf, size_t cap, double left);

/* A text output written under a temporary name and renamed into dir/name by
 * eb_out_close (removed instead when anything failed). */
typedef struct {
    FILE *f;
    char tmp[PATH_MAX], path[PATH_MAX];
} eb_out_file;
eb_status eb_out_open(eb_out_file *o, const char *dir, const char *name);
eb_status eb_out_close(eb_out_file *o);

#endif
