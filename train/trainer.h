/* trainer.h — training a DiT in C: the official objective, AdamW, EMA, checkpoints.
 *
 * llm.c layout: the parameters are the eb_model's slab; gradients, AdamW
 * moments and the EMA are slabs of the same layout (eb_params_point over
 * them); the activations saved for the backward live in one slab described by
 * eb_train_acts. The training forward runs the kernels of runtime/cpu/kernels.h,
 * so its output equals eb_forward_batch's bit for bit.
 *
 * Randomness comes from the runtime's counter-based generator keyed by
 * (seed, step, sample): a run is the same for any thread count, and a resumed
 * run continues bit-identically (docs/training.md).
 */
#ifndef EB_TRAIN_TRAINER_H
#define EB_TRAIN_TRAINER_H

#include <signal.h>
#include <stdint.h>

#include "train/fmnist.h"
#include "runtime/model.h"

/* ------------------------------------------------------------------------ */
/* Diffusion losses (losses.c)                                               */

/* Coefficients of the 1000-step schedule per timestep, each rounded to float
 * as the official _extract_into_tensor does. */
typedef struct {
    float sqrt_ac[EB_DIFFUSION_STEPS];         /* sqrt(ᾱ_t)                        */
    float sqrt_1m_ac[EB_DIFFUSION_STEPS];      /* sqrt(1 − ᾱ_t)                    */
    float sqrt_recip_ac[EB_DIFFUSION_STEPS];   /* sqrt(1/ᾱ_t)                      */
    float sqrt_recipm1_ac[EB_DIFFUSION_STEPS]; /* sqrt(1/ᾱ_t − 1)                  */
    float coef1[EB_DIFFUSION_STEPS];           /* posterior mean coefficient of x0  */
    float coef2[EB_DIFFUSION_STEPS];           /* posterior mean coefficient of x_t */
    float log_var_clipped[EB_DIFFUSION_STEPS]; /* posterior log variance, clipped   */
    float log_beta[EB_DIFFUSION_STEPS];        /* log β_t: LEARNED_RANGE's maximum  */
} eb_loss_coefs;

/* Fills the table from eb_schedule_create("") (all 1000 steps). */
eb_status eb_loss_coefs_init(eb_loss_coefs *c);

/* x_t (B, per) = sqrt(ᾱ_t)·x0 + sqrt(1 − ᾱ_t)·noise; x0, noise (B, per); t (B). */
void eb_q_sample(float *x_t, const float *x0, const float *noise, const int32_t *t, const eb_loss_coefs *c, int B,
                 size_t per);

/* Batch means of the objective's terms. */
typedef struct {
    double loss, mse, vb;
} eb_loss_terms;

/* The official training_losses (loss type MSE) on a model output out
 * (B, C_out, HW): mse = mean_flat((noise − ε)²), plus, when learn_sigma, vb in
 * bits per dimension with the model mean detached (KL for t > 0, the
 * discretized decoder NLL for t = 0); loss = mean_b (mse + vb).
 * dout (B, C_out, HW) receives d loss / d out (overwritten). mse_b and vb_b
 * (B) receive the per-sample terms (vb 0 without learn_sigma). x0, x_t, noise (B, C, HW).
 * EB_ERUNTIME naming the sample when a term is not finite. */
eb_status eb_diffusion_loss(eb_loss_terms *terms, float *mse_b, float *vb_b, float *dout, const float *out,
                            const float *x0, const float *x_t, const float *noise, const int32_t *t,
                            const eb_loss_coefs *c, int B, int C, int HW, int learn_sigma);

/* ------------------------------------------------------------------------ */
/* Recipe and state                                                          */

typedef struct {
    int batch;              /* images per step                                      */
    double lr;              /* AdamW learning rate (official 1e-4)                  */
    double weight_decay;    /* decoupled weight decay (official 0)                  */
    double beta1, beta2;    /* 0.9, 0.999                                           */
    double adam_eps;        /* 1e-8                                                 */
    int warmup_steps;       /* linear lr warm-up over this many steps; 0: none      */
    double grad_clip;       /* clip the global gradient norm to this; 0: no clip    */
    double ema_decay;       /* EMA decay maximum (0.9999)                           */
    double class_dropout;   /* probability of the null label (0.1)                  */
    uint64_t seed;          /* keys init, data order, t, noise and label dropout    */
} eb_recipe;

/* The official recipe: lr 1e-4, no decay, no warm-up or clipping, EMA 0.9999, dropout 0.1. */
eb_recipe eb_recipe_default(void);

/* Activations of one step for B rows, saved for the backward, and the
 * gradient scratch of one layer at a time. Shapes with L blocks, T tokens,
 * NH heads, K = p·p·C_out, Kp = C·p·p. */
typedef struct {
    float *x_t;        /* (B, C, H, W)   model input                               */
    int32_t *t, *y;    /* (B)            timesteps and labels after dropout        */
    float *tfreq;      /* (B, 256)                                                 */
    float *t_pre;      /* (B, D)         t-MLP fc1 output                          */
    float *t_act;      /* (B, D)         SiLU(t_pre)                               */
    float *cond;       /* (B, D)         c = t_emb + y_emb                         */
    float *cond_silu;  /* (B, D)                                                   */
    float *resid;      /* (2L+1, B, T, D) residual stream: block l's input at 2l,  */
                       /*                after its attention at 2l+1, final at 2L  */
    float *mod;        /* (L, B, 6D)     adaLN chunks                              */
    float *ln1, *ln2;  /* (L, B, T, D)   modulated LayerNorm outputs               */
    float *ln1_mean, *ln1_rstd, *ln2_mean, *ln2_rstd; /* (L, B, T)                 */
    float *qkv;        /* (L, B, T, 3D)                                            */
    float *probs;      /* (L, B, NH, T, T)                                         */
    float *attn;       /* (L, B, T, D)   heads concatenated                        */
    float *attn_out;   /* (L, B, T, D)   after proj, before the gate               */
    float *fc1;        /* (L, B, T, 4D)  before GELU                               */
    float *gelu;       /* (L, B, T, 4D)                                            */
    float *mlp_out;    /* (L, B, T, D)   after fc2, before the gate                */
    float *final_mod;  /* (B, 2D)                                                  */
    float *final_ln, *final_mean, *final_rstd; /* (B, T, D), (B, T), (B, T)       */
    float *final_out;  /* (B, T, K)                                                */
    float *out;        /* (B, C_out, H, W)                                         */
    float *x0, *noise; /* (B, C, H, W)   the batch and its noise                   */
    int32_t *labels;   /* (B)            dataset labels before dropout             */
    float *mse_b, *vb_b; /* (B)          per-sample loss terms                      */
    /* gradients, reused by every layer */
    float *d_out;      /* (B, C_out, H, W)                                         */
    float *d_final_out;/* (B, T, K)                                                */
    float *d_resid;    /* (B, T, D)                                                */
    float *d_ln;       /* (B, T, D)                                                */
    float *d_branch;   /* (B, T, D)                                                */
    float *d_attn;     /* (B, T, D)                                                */
    float *d_qkv;      /* (B, T, 3D)                                               */
    float *d_probs;    /* (B, NH, T, T)                                            */
    float *d_gelu, *d_fc1; /* (B, T, 4D)                                           */
    float *d_mod;      /* (B, 6D)                                                  */
    float *d_cond_silu, *d_cond, *d_t_act, *d_t_pre; /* (B, D)                    */
    float *patches;    /* (B·T, Kp)      patch-embedding backward scratch           */
} eb_train_acts;

typedef struct {
    eb_model *model;     /* parameters (model->slab) and the fixed pos_embed         */
    eb_recipe recipe;
    int data_n;          /* training images: fixes the epoch length and data order  */
    int64_t step;        /* optimizer steps done                                     */
    size_t n_params;
    float *grads;        /* (n_params) d loss / d params, eb_params layout           */
    float *adam_m, *adam_v; /* (n_params) AdamW moments                              */
    float *ema;          /* (n_params) EMA of the parameters                         */
    eb_params g;         /* pointers into grads                                      */
    eb_loss_coefs coefs;
    eb_train_acts a;
    float *act_slab;     /* one allocation behind every eb_train_acts pointer        */
} eb_trainer;

/* A trainer for configuration c with the official initialisation drawn from
 * recipe->seed; EMA = parameters, moments 0, step 0. data_n ≥ batch. */
eb_status eb_trainer_create(eb_trainer **out, const eb_config *c, const eb_recipe *recipe, int data_n);
void eb_trainer_free(eb_trainer *tr);

/* The official initialisation (models.py initialize_weights) into a slab of
 * layout c: xavier-uniform Linear weights (the patch kernel on its (D, C·p·p)
 * view) with zero biases, N(0, 0.02²) label table and t-MLP weights, zero
 * adaLN modulations and final linear. Deterministic in seed. */
void eb_init_params(float *slab, const eb_config *c, uint64_t seed);

/* ------------------------------------------------------------------------ */
/* One step                                                                  */

/* Forward with saved activations on a.x_t, a.t, a.y (B rows); leaves the
 * output (B, C_out, H, W) in a.out. */
void eb_train_forward(eb_trainer *tr);

/* Loss and gradients for explicit inputs: x0, noise (B, C, H, W), t (B), y (B)
 * labels as the model sees them (null class for dropped ones). Zeroes and then
 * fills tr->grads. mse_b, vb_b (B) receive the per-sample terms. */
eb_status eb_train_loss_grad(eb_trainer *tr, eb_loss_terms *terms, float *mse_b, float *vb_b, const float *x0,
                             const float *noise, const int32_t *t, const int32_t *y);

/* Draws of step `step` for batch row n, each a pure function of (seed, step, n):
 * t ~ U{0..999}, *drop = 1 with probability class_dropout (the row then gets
 * the null label), noise (per) ~ N(0, 1). */
void eb_train_draw(const eb_recipe *r, int64_t step, int n, size_t per, int32_t *t, int *drop, float *noise);

/* The data order of epoch `epoch`: perm (data_n) a permutation of 0..data_n−1
 * keyed by (seed, epoch). Step s takes rows [k·B, (k+1)·B) of the permutation
 * of epoch s / (data_n / B), k = s mod (data_n / B) (incomplete batches dropped). */
void eb_train_permutation(int *perm, int data_n, uint64_t seed, int64_t epoch);

/* The learning rate of step `step` (0-based), for the DiT trainer and the
 * classifier alike: linear warm-up over `warmup_steps` steps to `peak`
 * (peak·(step+1)/warmup_steps), then `peak`; when total > warmup_steps, cosine
 * decay after the warm-up that reaches 0 at step `total` (total 0: no decay). */
double eb_lr_at(double peak, int warmup_steps, int64_t step, int64_t total);

/* AdamW as torch.optim.AdamW (single-tensor path) on n values, at 1-based
 * step `t`: p ← p(1 − lr·wd), m ← β1m + (1−β1)g, v ← β2v + (1−β2)g²,
 * p ← p − lr/(1−β1ᵗ) · m / (sqrt(v)/sqrt(1−β2ᵗ) + eps). */
void eb_adamw_update(float *p, const float *g, float *m, float *v, size_t n, int64_t t, double lr, const eb_recipe *r);

/* EMA decay after `step` steps: min(decay_max, (1 + step) / (10 + step)). */
double eb_ema_decay(int64_t step, double decay_max);
/* ema (n) ← ema·decay + p·(1 − decay) (official update_ema). */
void eb_ema_update(float *ema, const float *p, size_t n, double decay);

typedef struct {
    eb_loss_terms terms;
    double lr;
    double grad_norm;    /* before clipping */
} eb_step_stats;

/* One optimizer step on batch x0 (B, C, H, W) with dataset labels y (B): the
 * draws of tr->step, loss and gradients, optional clipping, AdamW, EMA, step++. */
eb_status eb_train_step(eb_trainer *tr, const float *x0, const int32_t *y, eb_step_stats *stats);

/* ------------------------------------------------------------------------ */
/* Checkpoints and the training loop                                         */

/* One safetensors file: tensors params.*, ema.*, adam_m.*, adam_v.* (official
 * keys) and metadata with the config, recipe, data_n and step. Atomic. */
eb_status eb_trainer_save(const eb_trainer *tr, const char *path);
/* A trainer restored from a checkpoint, ready to continue bit-identically. */
eb_status eb_trainer_load(eb_trainer **out, const char *path);

/* The EMA weights as an inference file (eb_weights_save, F32) with the
 * config, the recipe and the step in its metadata. */
eb_status eb_trainer_export_ema(const eb_trainer *tr, const char *path);

typedef struct {
    int64_t steps;          /* train until tr->step reaches this                 */
    const char *ckpt_path;  /* checkpoint (saved every ckpt_every and at the end) */
    int ckpt_every;         /* 0: only at the end                                */
    const char *log_path;   /* CSV log, appended; NULL: none                     */
    int log_every;          /* steps between log rows                            */
    int progress;           /* 1: progress line on stderr when it is a terminal  */
    volatile sig_atomic_t *stop; /* set (by a signal handler) to stop after the current step; may be NULL */
} eb_train_opts;

/* Trains on data (images (n, C, H, W) matching the model, labels) from
 * tr->step to o->steps, then saves. Returns EB_OK also when stopped early by
 * *o->stop (the checkpoint then holds the last finished step). */
eb_status eb_train_run(eb_trainer *tr, const eb_fmnist *data, const eb_train_opts *o);

#endif
