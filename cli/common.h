/* common.h — what the model-running commands share: the run options read
 * into the experiment layer's parameters (pipeline/run.h), warnings, and
 * atomically written text outputs. */
#ifndef EB_CLI_COMMON_H
#define EB_CLI_COMMON_H

#include "cli/args.h"

#include "pipeline/run.h"

#include <limits.h>
#include <stdio.h>

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

/* The run options present in opts (--model or the shipped model, --heads,
 * --sampler, --steps / --respacing, --eta, --variance, --cfg-scale,
 * --cfg-channels, --seed, --noise, --labels, --n, --batch, --threads,
 * --device, --precision, --schedule) over eb_run_params_defaults, with the
 * samplers' progress line on. The library checks the values (eb_run_open).
 * Returns an exit status after printing any error as "ebcache CMD: ...". */
typedef struct {
    eb_run_params p;
    char respacing[32]; /* --steps N as a respacing */
    int32_t *labels;    /* --labels, malloc'd      */
} eb_cli_run;
int eb_cli_run_read(const char *cmd, const eb_opt *opts, int nopts, eb_cli_run *run);
void eb_cli_run_free(eb_cli_run *run);

/* Prints each line of `text` (a result's warning, "" for none) as
 * "ebcache CMD: warning: LINE", fields named as options (eb_print_line). */
void eb_cli_warnings(const char *cmd, const char *text);
/* The model's load warning (eb_model_warning), if any. */
void eb_cli_model_warning(const char *cmd, const eb_model *m);

/* The model a table is for (`schedule` and `schedule show`): --model PATH,
 * --config NAME (and --heads), else `named` (a table's `## model:`, a
 * configuration name or a model file) when it is one, else the shipped model.
 * label names it in the table's provenance. Returns an exit status after
 * printing any error. */
int eb_cli_target_model(const char *cmd, const eb_opt *opts, int n, const char *named, eb_config *c, char *label,
                        size_t size);

#endif
