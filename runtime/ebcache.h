/* ebcache.h — the public C interface of the ebcache runtime.
 *
 * A DiT (Peebles & Xie) inference engine whose numbers follow the official
 * facebookresearch/DiT code: model forward, classifier-free guidance and the
 * DDPM / DDIM samplers of its diffusion/ package.
 *
 * Conventions
 *   - Row-major PyTorch order everywhere: images (N, C, H, W), tokens (N, T, D).
 *   - Every function that can fail returns an eb_status; on failure a message
 *     naming the file, key, dataset or index is available from eb_last_error().
 *     Library code never exits and never prints except progress (stderr, tty).
 *   - EB_EINPUT (2) means bad usage or bad input, EB_ERUNTIME (1) a failure while
 *     running (out of memory, I/O error, non-finite values produced). The CLI
 *     returns these numbers as its exit status.
 */
#ifndef EBCACHE_H
#define EBCACHE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Ablation cells are keyed by this version: raise it when the same options give other numbers
 * (0.2.0: guidance follows the official forward_with_cfg on every channel count; 0.3.0: search
 * leaves ε unscaled after a degenerate two-phase fit). */
#define EBCACHE_VERSION "0.3.0"

typedef enum { EB_OK = 0, EB_ERUNTIME = 1, EB_EINPUT = 2 } eb_status;

/* The message of the last failure in this thread ("" when none). */
const char *eb_last_error(void);
/* Sets the message of the current failure and returns `code` (for `return eb_fail(...)`). */
eb_status eb_fail(eb_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ------------------------------------------------------------------------ */
/* Model configuration                                                       */

typedef struct {
    int input_size;   /* latent/image side H = W                                  */
    int patch_size;   /* p                                                        */
    int in_channels;  /* C                                                        */
    int hidden_size;  /* D                                                        */
    int depth;        /* L, number of DiT blocks                                  */
    int num_heads;    /* attention heads, D % num_heads == 0                      */
    int num_classes;  /* label table has num_classes + 1 rows (last = null class) */
    int learn_sigma;  /* 1: output 2C channels (ε and variance values)           */
} eb_config;

#define EB_MLP_RATIO 4
#define EB_FREQ_DIM 256 /* timestep embedding frequencies */

/* Derived sizes. */
static inline int eb_out_channels(const eb_config *c) { return c->learn_sigma ? 2 * c->in_channels : c->in_channels; }
static inline int eb_grid(const eb_config *c) { return c->input_size / c->patch_size; }
static inline int eb_tokens(const eb_config *c) { return eb_grid(c) * eb_grid(c); }
static inline int eb_patch_dim(const eb_config *c) { return c->in_channels * c->patch_size * c->patch_size; }

/* Checks a configuration for consistency; EB_EINPUT with a message naming the field. */
eb_status eb_config_validate(const eb_config *c);

/* Fills `c` with the named DiT architecture ("DiT-XL/2", "XL/2", "S/8", ...)
 * for ImageNet latents (input 32, 4 channels, 1000 classes, learn_sigma on).
 * Returns EB_EINPUT for an unknown name. */
eb_status eb_config_named(eb_config *c, const char *name);

/* Heads of the official DiT table for a hidden size (1152→16, 1024→16, 768→12,
 * 384→6), or 0 when the size is not in the table. */
int eb_heads_for_hidden(int hidden_size);

/* Trainable parameter count, and multiply-accumulates of one forward for one
 * sample (GEMMs and attention; the elementwise work is not counted). */
size_t eb_param_count(const eb_config *c);
double eb_forward_macs(const eb_config *c);

/* ------------------------------------------------------------------------ */
/* Model                                                                     */

typedef struct eb_model eb_model;

/* Loads a model from `path`: a .safetensors file with official DiT key names
 * (F32/F16/BF16), or a diffusers folder (the folder holding transformer/, or
 * transformer/ itself). `heads` overrides num_heads when > 0 (needed when the
 * file has no metadata and the hidden size is not in the DiT table).
 * On failure *out is NULL. */
eb_status eb_model_load(eb_model **out, const char *path, int heads);

/* What loading found questionable but not wrong ("" when nothing), for the
 * caller to show: a stored pos_embed that is not the 2D sin-cos table within
 * the file dtype's rounding. Like the official code, the model uses the
 * stored pos_embed whenever the file has one (rounded values of an F16/BF16
 * file included) and the computed table otherwise. */
const char *eb_model_warning(const eb_model *m);

/* Creates a model with the given configuration and every parameter zero
 * (callers fill the parameters; tests and the trainer use this). */
eb_status eb_model_create(eb_model **out, const eb_config *c);

void eb_model_free(eb_model *m);
const eb_config *eb_model_config(const eb_model *m);

/* Devices (docs/cuda.md). eb_model_load and eb_model_create run on the CPU;
 * the _on forms pick the device. On "cuda" (the first visible GPU, in a build
 * made with `make CUDA=1`) parameters, activations and caches live in device
 * memory, and `precision` sets the arithmetic of the token GEMMs and the
 * attention: fp32 (exact, the default), tf32 or bf16 tensor cores. The residual
 * stream, the conditioning path (timestep MLP, adaLN modulation), gates,
 * LayerNorm and softmax statistics stay fp32 at every precision. The CPU runs
 * fp32 only. */
typedef enum { EB_PRECISION_FP32 = 0, EB_PRECISION_TF32 = 1, EB_PRECISION_BF16 = 2 } eb_precision;

typedef struct {
    const char *device;     /* "cpu" or "cuda"; NULL means "cpu" */
    eb_precision precision;
} eb_device;

/* "fp32", "tf32" or "bf16" → *out; EB_EINPUT naming the string otherwise. */
eb_status eb_precision_parse(const char *name, eb_precision *out);
/* The devices this build can run on: "cpu" or "cpu cuda". */
const char *eb_devices_built(void);

/* eb_model_load / eb_model_create on `dev` (NULL: the CPU). EB_EINPUT for an
 * unknown device or a precision the device lacks; EB_ERUNTIME when the device
 * cannot run ("built without CUDA", "no CUDA device or driver: ..."). */
eb_status eb_model_load_on(eb_model **out, const char *path, int heads, const eb_device *dev);
eb_status eb_model_create_on(eb_model **out, const eb_config *c, const eb_device *dev);
/* What the model runs on: "cpu", "cuda-fp32", "cuda-tf32" or "cuda-bf16". */
const char *eb_model_device(const eb_model *m);

/* Runs the model on a batch. x (N, C, H, W), t (N) original timesteps in
 * [0, 1000), y (N) labels in [0, num_classes] (num_classes = null class);
 * out (N, C_out, H, W). Inputs are checked (ranges, finite values). */
eb_status eb_forward(eb_model *m, float *out, const float *x, const int32_t *t, const int32_t *y, int N);

/* Classifier-free guidance as the official forward_with_cfg, for N rows:
 * each row runs with its label and with the null class in one batch of 2N;
 * out = uncond + scale·(cond − uncond) on the first `guide_channels` output
 * channels (of C_out, ε first, then the learned variance values), the other
 * output channels from the conditional pass. eb_guide_channels gives the count
 * of each rule; the official one is eb_default_guide_channels. out (N, C_out, H, W). */
eb_status eb_forward_cfg(eb_model *m, float *out, const float *x, const int32_t *t, const int32_t *y, int N,
                         float cfg_scale, int guide_channels);

/* Which output channels guidance combines (docs/guidance.md). */
typedef enum {
    EB_GUIDE_OFFICIAL = 0, /* the first min(3, C_out), as forward_with_cfg's model_out[:, :3]: on a 1-channel
                              learn_sigma model ε and the variance channel; 3 of 4 ε on 4-channel latents */
    EB_GUIDE_EPS,          /* the C ε channels and no variance channel (the usual CFG, which the official
                              code's comment offers as the alternative)                                   */
    EB_GUIDE_ALL,          /* all C_out output channels                                                    */
    EB_GUIDE_NRULES
} eb_guidance;

/* "official", "eps", "all". */
const char *eb_guidance_name(eb_guidance g);
/* EB_EINPUT listing the names for an unknown one. */
eb_status eb_guidance_parse(eb_guidance *g, const char *name);
/* The number of leading output channels rule g guides on model c. */
int eb_guide_channels(const eb_config *c, eb_guidance g);
/* The official rule's count, min(3, C_out): the default everywhere. */
static inline int eb_default_guide_channels(const eb_config *c) { return eb_guide_channels(c, EB_GUIDE_OFFICIAL); }

/* ------------------------------------------------------------------------ */
/* Diffusion schedule and samplers                                          */

typedef enum { EB_SAMPLER_DDPM = 0, EB_SAMPLER_DDIM = 1 } eb_sampler_kind;
typedef enum { EB_VAR_LEARNED_RANGE = 0, EB_VAR_FIXED_SMALL = 1, EB_VAR_FIXED_LARGE = 2 } eb_var_type;

#define EB_DIFFUSION_STEPS 1000

/* The respaced linear-beta schedule (official create_diffusion), all in double.
 * Index i runs over the S kept timesteps in increasing order; the sampler visits
 * i = S-1 first. timestep[i] is the original timestep fed to the model. */
typedef struct {
    int S;
    int *timestep;                 /* (S) original timesteps, increasing          */
    double *betas;                 /* (S) respaced betas                          */
    double *alphas_cumprod;        /* (S)                                         */
    double *alphas_cumprod_prev;   /* (S)                                         */
    double *sqrt_recip_ac;         /* (S) sqrt(1/ᾱ)                               */
    double *sqrt_recipm1_ac;       /* (S) sqrt(1/ᾱ − 1)                           */
    double *posterior_variance;    /* (S)                                         */
    double *posterior_log_var_clipped; /* (S)                                     */
    double *posterior_mean_coef1;  /* (S)                                         */
    double *posterior_mean_coef2;  /* (S)                                         */
} eb_schedule;

/* Builds the schedule for a respacing string as official space_timesteps:
 * "N" or comma-separated section counts ("10,10,5"), or "ddimN". NULL or ""
 * means all 1000 steps. EB_EINPUT naming the string when it cannot be met. */
eb_status eb_schedule_create(eb_schedule *s, const char *respacing);
void eb_schedule_free(eb_schedule *s);

typedef struct {
    eb_sampler_kind kind;
    eb_var_type var_type;   /* LEARNED_RANGE when the model learns sigma          */
    float eta;              /* DDIM only                                           */
    float cfg_scale;        /* 1 = no guidance (a single conditional pass)         */
    int guide_channels;     /* leading output channels CFG guides (eb_guide_channels) */
    uint64_t seed;          /* seeds the per-step noise (docs/rng.md)              */
    int progress;           /* 1: progress line on stderr when it is a terminal    */
} eb_sampler_opts;

/* Runs the reverse process from x_T: x (N, C, H, W) holds x_T on entry and the
 * sample x_0 on return; y (N) labels. `first_index` is the index of sample 0 in
 * the noise streams (docs/rng.md), so a batch split gives the same bits. */
eb_status eb_sample(eb_model *m, const eb_schedule *s, const eb_sampler_opts *o, float *x, const int32_t *y, int N,
                    int first_index);

/* ------------------------------------------------------------------------ */
/* Cache schedules (docs/schedule.md)                                        */

/* A cache schedule table: per sampling step the action of every block's
 * attention and MLP (compute, reuse, Taylor forecast, skip by a cached
 * residual), an ε scale, and optionally a dynamic policy (TeaCache,
 * first-block cache) decided at run time. Generators: runtime/schedule.h. */
typedef struct eb_cache_schedule eb_cache_schedule;

/* Reads a table from a file / parses one from text (`name` names it in
 * messages). EB_EINPUT naming the file and line on any syntax error. */
eb_status eb_cache_schedule_read(eb_cache_schedule **out, const char *path);
eb_status eb_cache_schedule_parse(eb_cache_schedule **out, const char *text, const char *name);
/* Writes the table to `path` through a temporary file and a rename. */
eb_status eb_cache_schedule_write(const eb_cache_schedule *cs, const char *path);
void eb_cache_schedule_free(eb_cache_schedule *cs);

/* Validates the table against a model and a sampler: step count, timesteps,
 * block indices, that every reuse / forecast / skip has something cached by
 * an earlier step. `s` may be NULL (the timestep column is then unchecked).
 * EB_EINPUT naming the line. */
eb_status eb_cache_schedule_check(const eb_cache_schedule *cs, const eb_config *c, const eb_schedule *s);

/* Predicted fraction of the uncached multiply-accumulates the table executes
 * on model `c` (dynamic policies counted as computing every step); NaN when
 * the table does not fit the model (check it first). */
double eb_cache_schedule_flops(const eb_cache_schedule *cs, const eb_config *c);

/* What a cached run did; eb_sample_cached adds to it (so a caller can sum
 * batches) and keeps the largest cache size. */
typedef struct {
    double macs;           /* multiply-accumulates executed, all model-batch rows and steps */
    double macs_uncached;  /* what the same run costs without the schedule                  */
    size_t cache_bytes;    /* memory the cache held (allocated before the first step)       */
    int steps;             /* sampling steps run                                            */
    int steps_skipped;     /* steps a dynamic policy served from the cached residual        */
} eb_cache_stats;

/* eb_sample running the schedule `cs` (checked against m and s first; NULL
 * runs uncached, bit-identical to eb_sample). Caches for the whole model
 * batch (both guidance halves) are allocated before the first step. `stats`
 * may be NULL. */
eb_status eb_sample_cached(eb_model *m, const eb_schedule *s, const eb_sampler_opts *o, const eb_cache_schedule *cs,
                           float *x, const int32_t *y, int N, int first_index, eb_cache_stats *stats);

/* ------------------------------------------------------------------------ */
/* Noise (docs/rng.md): a counter-based generator; element j of stream
 * (seed, stream) is a pure function, so any thread count gives the same bits. */

uint64_t eb_rng_key(uint64_t seed, uint64_t stream);
float eb_rng_normal(uint64_t key, uint64_t j);
/* out[j] = eb_rng_normal(key, j) for j < n. */
void eb_rng_fill_normal(float *out, size_t n, uint64_t key);
/* Stream numbers: x_T of sample n, and the noise of sample n at sampler index i. */
static inline uint64_t eb_stream_xT(int n) { return (uint64_t)n << 20; }
static inline uint64_t eb_stream_step(int n, int i) { return ((uint64_t)n << 20) | (uint64_t)(i + 1); }

/* Threads used by every parallel section (OpenMP and BLAS); 0 = all cores. */
void eb_set_threads(int n);

#ifdef __cplusplus
}
#endif
#endif
