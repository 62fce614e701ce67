/* model.h — the eb_model internals shared by the runtime's files. */
#ifndef EB_MODEL_H
#define EB_MODEL_H

#include "runtime/backend.h"
#include "runtime/params.h"

/* Activation buffers of one forward pass for a batch of up to `capacity`
 * rows (model batch, i.e. 2N with guidance). Allocated once and grown only
 * when a larger batch arrives, never inside the sampling loop. */
typedef struct {
    int capacity;
    float *tokens;    /* (B, T, D)      residual stream                       */
    float *normed;    /* (B, T, D)      ln_modulate output                    */
    float *qkv;       /* (B, T, 3D)                                           */
    float *attn;      /* (B, T, D)      heads concatenated, before proj       */
    float *branch;    /* (B, T, D)      pre-gate attention / MLP output       */
    float *hidden;    /* (B, T, 4D)     MLP hidden                            */
    float *tfreq;     /* (B, 256)                                             */
    float *thidden;   /* (B, D)                                               */
    float *cond;      /* (B, D)         c = t_emb + y_emb                     */
    float *cond_silu; /* (B, D)         SiLU(c), input of every adaLN         */
    float *mod;       /* (B, 6D)        one block's adaLN chunks              */
    float *final_out; /* (B, T, p*p*C_out)                                    */
    float *out;       /* (B, C_out, H, W)                                     */
    float *guided;    /* (B/2, C_out, H, W) guidance result                   */
    float *x_in;      /* (B, C, H, W)   the model batch (CFG doubles it)      */
    int32_t *t_in;    /* (B)                                                  */
    int32_t *y_in;    /* (B)                                                  */
} eb_acts;

/* Watches the forward and the sampler without changing a result
 * (analyze/record.c). The forward calls the model hooks on the backend's
 * buffers, for every forward, cached or not; the sampler calls `step` on the
 * host after each model call. Any hook may be NULL. */
typedef struct eb_observer {
    void *ctx;
    /* after eb_embed: acts.tokens (B, T, D) and acts.cond_silu (B, D) hold the batch's embedding */
    void (*embedded)(void *ctx, eb_model *m, int B);
    /* the pre-gate output f (B, T, D) that block l's attention (module 0) or MLP (1)
     * adds this forward, whether computed, reused or forecast (skipped blocks add none) */
    void (*branch)(void *ctx, eb_model *m, int l, int module, const float *f, int B);
    /* after eb_final_layer: acts.out (B, C_out, H, W) */
    void (*output)(void *ctx, eb_model *m, int B);
    /* sampler step k (index i = S−1−k of the schedule it runs): x (N, C, H, W) the
     * chain's input x_t, eps (N, C_out, H, W) the model output after guidance and the
     * cache's ε scale. A failure stops the sampler with that status. */
    eb_status (*step)(void *ctx, int k, const float *x, const float *eps, int N);
} eb_observer;

struct eb_model {
    eb_config cfg;
    const eb_backend *be;      /* token GEMMs and attention at the chosen precision        */
    const eb_backend *cond_be; /* the same device at fp32: the conditioning GEMMs (timestep
                                  MLP, adaLN); the CPU's two are one table                 */
    const eb_observer *obs; /* NULL: none                                            */
    float *slab;          /* eb_param_count(cfg) floats, backend memory          */
    eb_params p;          /* pointers into slab                                  */
    float *pos_embed;     /* (T, D): the file's stored table, else the computed one */
    char warning[512];    /* eb_model_warning                                    */
    eb_acts acts;
};

/* The backends of a device (backend_select.c): *be at dev's precision, *cond_be
 * the same device at fp32. dev NULL means the CPU. Errors as eb_model_create_on. */
eb_status eb_backend_select(const eb_device *dev, const eb_backend **be, const eb_backend **cond_be);

/* 1 when the model's parameters and activations are host memory (the CPU
 * backend): host code may then read and write m->slab and m->acts directly;
 * otherwise only through m->be->upload / download. */
static inline int eb_model_on_host(const eb_model *m) { return m->be == &eb_backend_cpu; }

/* Makes sure the activation buffers hold a model batch of B rows. */
eb_status eb_acts_reserve(eb_model *m, int B);

/* The pieces of the forward, in order; each works on m->acts for a model batch of B rows.
 * eb_embed: x_in, t_in, y_in → tokens (patch + pos embedding), cond, cond_silu.
 * eb_block_modulation: mod = adaLN_l(SiLU(c)) (B, 6D).
 * eb_block_attn_branch / eb_block_mlp_branch: the pre-gate branch output into branch.
 * eb_block_forward: one whole block on tokens. eb_final_layer: tokens → out.
 * The observer (m->obs) sees eb_embed's and eb_final_layer's results. */
void eb_embed(eb_model *m, int B);
void eb_block_modulation(eb_model *m, int l, int B);
void eb_block_attn_branch(eb_model *m, int l, int B);
void eb_block_mlp_branch(eb_model *m, int l, int B);
/* eb_block_attn_branch that also writes each head's attention-map column sums
 * into colsum (B, NH, T) (backend attention_colsum; NULL: none, plain attention). */
void eb_block_attn_branch_colsum(eb_model *m, int l, int B, float *colsum);
/* Block l's MLP on the K tokens idx (B, K) of each row only (ToCa): gathers
 * them from tokens and leaves their pre-gate outputs (B, K, D) in branch. */
void eb_block_mlp_partial(eb_model *m, int l, int B, int K, const int32_t *idx);
void eb_block_forward(eb_model *m, int l, int B);
void eb_final_layer(eb_model *m, int B);
/* tokens += gate ⊙ f: block l's attention (module 0) or MLP (1) output f (B, T, D),
 * pre-gate, through the gate in acts.mod (shown to the observer first). */
void eb_block_add_branch(eb_model *m, int l, int module, const float *f, int B);

/* The forward pass on the model batch already in m->acts.x_in/t_in/y_in:
 * leaves the output (B, C_out, H, W) in m->acts.out. No checks, no allocation. */
void eb_forward_batch(eb_model *m, int B);

/* A cache executing a schedule (cache.h). */
typedef struct eb_cache eb_cache;

/* The checked forward behind eb_forward (guided = 0) and eb_forward_cfg
 * (guided = 1): x, t, y (N rows) → out (N, C_out, H, W). With a cache it runs
 * sampling step `step` of the cache's schedule instead of the plain forward. */
eb_status eb_forward_run(eb_model *m, eb_cache *cache, int step, float *out, const float *x, const int32_t *t,
                         const int32_t *y, int N, int guided, float cfg_scale, int guide_channels);

#endif
