/* model.h — the eb_model internals shared by the runtime's files. */
#ifndef EB_MODEL_H
#define EB_MODEL_H

#include "backend.h"
#include "params.h"

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

struct eb_model {
    eb_config cfg;
    const eb_backend *be;
    float *slab;          /* eb_param_count(cfg) floats                          */
    eb_params p;          /* pointers into slab                                  */
    float *pos_embed;     /* (T, D) fixed                                        */
    eb_acts acts;
};

/* Makes sure the activation buffers hold a model batch of B rows. */
eb_status eb_acts_reserve(eb_model *m, int B);

/* The pieces of the forward, in order; each works on m->acts for a model batch of B rows.
 * eb_embed: x_in, t_in, y_in → tokens (patch + pos embedding), cond, cond_silu.
 * eb_block_modulation: mod = adaLN_l(SiLU(c)) (B, 6D).
 * eb_block_attn_branch / eb_block_mlp_branch: the pre-gate branch output into branch.
 * eb_block_forward: one whole block on tokens. eb_final_layer: tokens → out. */
void eb_embed(eb_model *m, int B);
void eb_block_modulation(eb_model *m, int l, int B);
void eb_block_attn_branch(eb_model *m, int l, int B);
void eb_block_mlp_branch(eb_model *m, int l, int B);
void eb_block_forward(eb_model *m, int l, int B);
void eb_final_layer(eb_model *m, int B);

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
