/* pipeline/run.h — one sampling run of a model, as the experiment layer's
 * calls take it: the model, the sampler, guidance, the starting noise and an
 * optional cache schedule, with defaults (eb_run_params_defaults) and the
 * name ⇄ enum functions of its settings. `sample` and `record` runs and
 * eb-cache's calibration replay all open their run here, and a run's
 * settings travel in an output file's root attributes (eb_run_attrs_write /
 * eb_run_params_from_file), so a recording can be replayed exactly.
 *
 * Library code: status codes and eb_fail messages, nothing printed (the
 * samplers' progress line on a terminal aside, when `progress` is set). */
#ifndef EB_PIPELINE_RUN_H
#define EB_PIPELINE_RUN_H

#include "runtime/ebcache.h"
#include "runtime/h5io.h"

#include <stddef.h>
#include <stdint.h>

/* The variance of a model without learn_sigma; a learn_sigma model always
 * uses its learned range. */
typedef enum { EB_VARIANCE_LARGE = 0, EB_VARIANCE_SMALL = 1 } eb_variance_choice;

/* "ddpm" / "ddim"; "large" / "small"; "learned_range" / "fixed_small" /
 * "fixed_large"; "none" / "teacache" / "fbcache". The parse functions return
 * EB_EINPUT naming the string and the accepted names. */
const char *eb_sampler_kind_name(eb_sampler_kind k);
eb_status eb_sampler_kind_parse(eb_sampler_kind *k, const char *name);
const char *eb_variance_choice_name(eb_variance_choice v);
eb_status eb_variance_choice_parse(eb_variance_choice *v, const char *name);
const char *eb_var_type_name(eb_var_type v);
eb_status eb_var_type_parse(eb_var_type *v, const char *name);
const char *eb_policy_kind_name(int policy_kind);

typedef struct {
    const char *model;        /* model file or diffusers folder (required)                        */
    int heads;                /* attention heads when neither the file nor the DiT table says (0) */
    eb_sampler_kind sampler;  /* EB_SAMPLER_DDPM                                                  */
    const char *respacing;    /* official respacing: "50", "a,b,c" or "ddimN" ("50")             */
    double eta;               /* DDIM η in [0, 1]; NaN: none given (η = 0); DDPM takes none (NaN) */
    eb_variance_choice variance; /* without learn_sigma (large)                                  */
    double cfg_scale;         /* ≥ 0; 1 = no guidance (1.5)                                       */
    const char *cfg_channels; /* "official", "eps", "all" or a count K ("official")              */
    uint64_t seed;            /* the per-step noise, and x_T unless `noise` (0)                  */
    const char *noise;        /* x_T from datasets noise (N,C,H,W) and y (N) of this file (NULL)  */
    const int32_t *labels;    /* one sample per label (NULL), else:                               */
    int n_labels;
    int n;                    /* n samples with labels 0, 1, … cycling over the classes          */
    int batch;                /* samples per model batch (32); fixed batch = same bits            */
    const char *schedule;     /* a cache schedule table file (NULL: uncached)                     */
    int threads;              /* 0: all cores. Many threads on busy cores want OMP_WAIT_POLICY=passive
                                 in the environment (runtime/cpu/kernels.h eb_cpu_reexec)         */
    eb_device device;         /* {NULL = cpu, fp32}                                               */
    int progress;             /* 1: the samplers' progress line on stderr when it is a terminal (0) */
} eb_run_params;

/* The defaults above. */
void eb_run_params_defaults(eb_run_params *p);

/* The model configuration a table or a FLOP count is for: `config` (a DiT
 * name, "XL/2" or "DiT-XL/2") or `model` (a model file, heads as
 * eb_model_load); label gets "DiT-XL/2" or the path. EB_EINPUT when both or
 * neither is given, or they name nothing. */
eb_status eb_config_resolve(eb_config *c, const char *config, const char *model, int heads, char *label, size_t cap);

/* An opened run: everything the samplers need, allocated. */
typedef struct {
    eb_model *model;
    eb_schedule sched;
    eb_sampler_opts so;
    eb_cache_schedule *table;  /* NULL: uncached */
    float *x_T;                /* (N, C, H, W) */
    int32_t *y;                /* (N)          */
    int N, batch;
    int first_index;           /* the global index of row 0 (0; a rank's share of the run starts later) */
    char *table_text;          /* the table file's text (NULL: uncached), for the attributes        */
    const char *guidance;      /* the rule that gave so.guide_channels: eb_guidance_name or "count" */
    char model_sha256[65];
    char warning[1024];        /* what the caller should show, one warning a line ("" when nothing):
                                  the model's load warning, a table searched under the other sampler kind */
} eb_run;

/* The experiment layer's messages name a parameter by its field in
 * backquotes ("`cfg_scale`: -1 is negative", "`eta` is DDIM's; ..."), so
 * that a front end can show its own spelling of it (the CLI: --cfg-scale). */

/* Checks p (EB_EINPUT naming the field: cfg_scale < 0, η outside [0, 1] or
 * with DDPM, batch < 1, none or several of noise / labels / n, labels outside
 * the classes, …), sets the
 * thread count, loads the model on its device, builds the respaced schedule,
 * reads and checks the table against both (a table made for another
 * respacing says which to give), and draws or reads x_T and the labels.
 * On failure *r is left empty. */
eb_status eb_run_open(eb_run *r, const eb_run_params *p);
void eb_run_close(eb_run *r);

/* The model part of eb_run_open, for a caller that evaluates the model
 * without sampling (`forward`): checks model, heads, cfg_scale and
 * cfg_channels, sets the thread count, loads the model and sets r->model,
 * r->so.cfg_scale, r->so.guide_channels, r->guidance, r->model_sha256 and
 * r->warning; the rest of *r is empty. eb_run_close frees it. */
eb_status eb_run_open_model(eb_run *r, const eb_run_params *p);

/* Samples the run in batches of r->batch from its x_T into x (N, C, H, W)
 * (x may be r->x_T). stats (may be NULL) sums the cache's cost; *wall gets
 * the seconds taken. */
eb_status eb_run_sample(const eb_run *r, float *x, eb_cache_stats *stats, double *wall);

/* Root attributes of a file the run wrote (docs/recording.md): model, its
 * SHA-256, the model configuration, sampler, respacing, η, variance,
 * cfg_scale, cfg_channels and the guidance rule, seed, start (the noise file
 * or "seed"), batch, device, ebcache version; schedule and schedule_text (""
 * uncached) and the schedule's method when it names one. */
eb_status eb_run_attrs_write(eb_h5w *w, const eb_run *r, const eb_run_params *p);
/* The model part of them (version, model and its SHA-256, configuration,
 * guidance, device): what eb_run_open_model's output carries. */
eb_status eb_run_model_attrs_write(eb_h5w *w, const eb_run *r, const eb_run_params *p);

/* The run that wrote `path` (eb_run_attrs_write), to run it again: p gets
 * the file's settings over eb_run_params_defaults (threads, device and
 * progress stay the defaults; η NaN unless DDIM); strings point into `buf`
 * (cap bytes). A run started from a noise file gets p->noise; one started
 * from the seed gets the file's /y as its labels (read into *labels,
 * malloc'd; NULL otherwise). EB_EINPUT naming the file and the missing
 * attribute, or a seed-started run whose file stores no /y. */
eb_status eb_run_params_from_file(eb_run_params *p, const char *path, char *buf, size_t cap, int32_t **labels);

/* Comma-separated integers in [min, max] (labels, feature dump steps) into
 * *out (malloc'd, *n of them); EB_EINPUT "`field`: item I of 'TEXT' is not
 * an integer in [min, max]". */
eb_status eb_int_list_parse(const char *field, const char *text, long min, long max, int32_t **out, int *n);

/* " (ETA 3 min 20 s)" for `left` seconds into buf; returns buf. The one ETA
 * format of the progress lines (the library's and the CLI's). */
const char *eb_eta_text(char *buf, size_t cap, double left);

#endif
