/* classifier.h — the Fashion-MNIST classifier behind `ebcache eval`.
 *
 * A small ViT made only of the DiT kernels (runtime/cpu/kernels.h) and their
 * backward (train/backward.h):
 *
 *   x (B, 1, S, S) → 4×4 patch embedding + fixed sin-cos pos embed → (B, T, D)
 *   L pre-LN blocks:  x += g1 ⊙ attn(LN1(x)),  x += g2 ⊙ mlp(LN2(x))
 *   final LN, mean over the T tokens → features (B, D) → linear head (B, K)
 *
 * Every LayerNorm affine is ln_modulate with one learned (shift, scale) vector
 * shared by the batch (mod_stride 0; the LN weight is 1 + scale), and the
 * residual gates g1, g2 are learned vectors (init 1). The features are the
 * "penultimate" representation the Fréchet distance and precision/recall use
 * (docs/metrics.md). Training: cross-entropy, AdamW (eb_adamw_update) with
 * linear warm-up and cosine decay, optional flips and shifts. Every result is
 * the same for any thread count, and a run resumed from a checkpoint continues
 * bit-identically.
 */
#ifndef EB_TRAIN_CLASSIFIER_H
#define EB_TRAIN_CLASSIFIER_H

#include <stdint.h>

#include "runtime/ebcache.h"
#include "train/fmnist.h"
#include "runtime/safetensors.h"

#define EB_CLF_MLP_RATIO 4
#define EB_CLF_CHUNK 64 /* rows per forward of eb_clf_features (bounds the activation memory) */
#define EB_CLF_FORMAT "ebcache-classifier-1"

typedef struct {
    int side;     /* image side S = H = W (Fashion-MNIST: 28)  */
    int patch;    /* p; T = (S/p)² tokens                      */
    int dim;      /* D, a multiple of 4 (pos embed) and heads  */
    int depth;    /* L blocks                                  */
    int heads;    /* NH                                        */
    int classes;  /* K                                         */
} eb_clf_config;

/* Checks the sizes; EB_EINPUT naming the field. */
eb_status eb_clf_config_validate(const eb_clf_config *c);

/* Parameter tensors in slab order; block tensors are stacked over the L blocks. */
enum {
    EB_CLF_PATCH_W,    /* (D, 1, p, p)  patch_embed.weight       */
    EB_CLF_PATCH_B,    /* (D)           patch_embed.bias         */
    EB_CLF_LN1_SHIFT,  /* (L, D)        blocks.N.norm1.shift     */
    EB_CLF_LN1_SCALE,  /* (L, D)        blocks.N.norm1.scale     */
    EB_CLF_QKV_W,      /* (L, 3D, D)    blocks.N.attn.qkv.weight */
    EB_CLF_QKV_B,      /* (L, 3D)                                */
    EB_CLF_PROJ_W,     /* (L, D, D)     blocks.N.attn.proj.weight */
    EB_CLF_PROJ_B,     /* (L, D)                                 */
    EB_CLF_GATE1,      /* (L, D)        blocks.N.gate1           */
    EB_CLF_LN2_SHIFT,  /* (L, D)        blocks.N.norm2.shift     */
    EB_CLF_LN2_SCALE,  /* (L, D)        blocks.N.norm2.scale     */
    EB_CLF_FC1_W,      /* (L, 4D, D)    blocks.N.mlp.fc1.weight  */
    EB_CLF_FC1_B,      /* (L, 4D)                                */
    EB_CLF_FC2_W,      /* (L, D, 4D)    blocks.N.mlp.fc2.weight  */
    EB_CLF_FC2_B,      /* (L, D)                                 */
    EB_CLF_GATE2,      /* (L, D)        blocks.N.gate2           */
    EB_CLF_NORM_SHIFT, /* (D)           norm.shift               */
    EB_CLF_NORM_SCALE, /* (D)           norm.scale               */
    EB_CLF_HEAD_W,     /* (K, D)        head.weight              */
    EB_CLF_HEAD_B,     /* (K)           head.bias                */
    EB_CLF_NUM_TENSORS
};

typedef struct {
    float *patch_w, *patch_b;
    float *ln1_shift, *ln1_scale;
    float *qkv_w, *qkv_b;
    float *proj_w, *proj_b;
    float *gate1;
    float *ln2_shift, *ln2_scale;
    float *fc1_w, *fc1_b;
    float *fc2_w, *fc2_b;
    float *gate2;
    float *norm_shift, *norm_scale;
    float *head_w, *head_b;
} eb_clf_params;

/* Safetensors key of tensor i for block `block` (ignored for non-block tensors)
 * into buf (cap bytes); shape of one block's slice (or the whole tensor):
 * returns the rank and fills dims. */
void eb_clf_tensor_name(char *buf, size_t cap, int i, int block);
int eb_clf_tensor_shape(int i, const eb_clf_config *c, int64_t dims[4]);
/* Whole-stack element count of tensor i, and the total over all tensors. */
size_t eb_clf_tensor_size(int i, const eb_clf_config *c);
size_t eb_clf_param_count(const eb_clf_config *c);

/* Activations of one forward for B ≤ capacity rows, saved for the backward,
 * and (when training) the gradient scratch of one layer at a time. */
typedef struct {
    int capacity, train;
    float *x;          /* (B, 1, S, S)       the input the forward runs on        */
    float *resid;      /* (2L+1, B, T, D)    block l's input at 2l, after its     */
                       /*                    attention at 2l+1, final at 2L       */
    float *ln1, *ln2;  /* (L, B, T, D)                                            */
    float *ln1_mean, *ln1_rstd, *ln2_mean, *ln2_rstd; /* (L, B, T)               */
    float *qkv;        /* (L, B, T, 3D)                                           */
    float *probs;      /* (L, B, NH, T, T)                                        */
    float *attn;       /* (L, B, T, D)       heads concatenated                   */
    float *attn_out;   /* (L, B, T, D)       after proj, before the gate          */
    float *fc1, *gelu; /* (L, B, T, 4D)                                           */
    float *mlp_out;    /* (L, B, T, D)       after fc2, before the gate           */
    float *lnf, *lnf_mean, *lnf_rstd; /* (B, T, D), (B, T), (B, T)              */
    float *feat;       /* (B, D)             mean of lnf over the tokens          */
    float *logits;     /* (B, K)                                                  */
    /* gradient scratch (train only) */
    float *d_logits;   /* (B, K)                                                  */
    float *d_feat;     /* (B, D)                                                  */
    float *d_resid, *d_ln, *d_branch, *d_attn; /* (B, T, D)                      */
    float *d_qkv;      /* (B, T, 3D)                                              */
    float *d_probs;    /* (B, NH, T, T)                                           */
    float *d_gelu, *d_fc1; /* (B, T, 4D)                                          */
    float *patches;    /* (B·T, p·p)         patch-embedding backward scratch     */
} eb_clf_acts;

typedef struct {
    eb_clf_config cfg;
    size_t n_params;
    float *params;          /* (n_params) eb_clf_params layout                    */
    float *grads;           /* (n_params) d loss / d params; NULL until training  */
    float *adam_m, *adam_v; /* (n_params) AdamW moments; NULL until training      */
    eb_clf_params p, g;     /* pointers into params and grads                     */
    float *pos_embed;       /* (T, D) fixed                                        */
    int64_t step;           /* optimizer steps done                               */
    eb_clf_acts a;
    float *act_slab;        /* one allocation behind every eb_clf_acts pointer    */
} eb_clf;

/* A classifier with fresh weights drawn from `seed`: Xavier-normal matrices,
 * zero biases and LayerNorm shift/scale, gates 1. *out is NULL on failure. */
eb_status eb_clf_create(eb_clf **out, const eb_clf_config *c, uint64_t seed);
void eb_clf_free(eb_clf *m);

/* FNV-1a 64 of the configuration and the parameter bits: names the weights
 * in feature caches. */
uint64_t eb_clf_checksum(const eb_clf *m);

/* ------------------------------------------------------------------------ */
/* Inference                                                                 */

/* Features and logits of N images x (N, 1, S, S), each value clipped to
 * [−1, 1] first, in chunks of EB_CLF_CHUNK rows. feat (N, D) and logits
 * (N, K) may each be NULL. EB_EINPUT naming the image and pixel of a
 * non-finite input; EB_ERUNTIME when a feature comes out non-finite. */
eb_status eb_clf_features(eb_clf *m, float *feat, float *logits, const float *x, int N);

/* Fraction of the N images x (N, 1, S, S) whose predicted class (first
 * maximum logit) equals y (N). Errors as eb_clf_features and eb_accuracy. */
eb_status eb_clf_accuracy(eb_clf *m, double *accuracy, const float *x, const int32_t *y, int N);

/* ------------------------------------------------------------------------ */
/* Training                                                                  */

typedef struct {
    int batch;            /* images per step                                     */
    int epochs;           /* passes over the data; fixes the cosine schedule     */
    double lr;            /* peak AdamW learning rate                            */
    double weight_decay;  /* decoupled decay of the weight matrices only         */
    double beta1, beta2, adam_eps;
    int warmup_steps;     /* linear warm-up, then cosine decay to 0 at the end   */
    double flip;          /* probability of a horizontal flip                    */
    int max_shift;        /* shifts drawn uniformly from [−s, s] px, both axes   */
    uint64_t seed;        /* keys init, data order and augmentation              */
} eb_clf_recipe;

/* The shipped recipe (results/classifier.md): batch 32, 15 epochs, lr 2e-3,
 * wd 0.05, betas 0.9/0.999, eps 1e-8, warm-up 500 steps, shifts of ±1 px and
 * no flips (the features should tell a mirrored sample from a real one), seed 0. */
eb_clf_recipe eb_clf_recipe_default(void);
/* Checks a recipe; EB_EINPUT naming the field. */
eb_status eb_clf_recipe_validate(const eb_clf_recipe *r);


/* The augmentation of step `step`: out (B, 1, S, S) is x (B, 1, S, S) with row
 * n flipped and shifted by draws keyed by (seed, step, n); pixels shifted in
 * are −1 (background). */
void eb_clf_augment(float *out, const float *x, int B, int side, const eb_clf_recipe *r, int64_t step);

/* Mean cross-entropy of x (B, 1, S, S) (clipped to [−1, 1]) with labels
 * y (B) in 0..K−1, and its gradient in m->grads (zeroed first). The logits
 * stay in m->a.logits. EB_EINPUT for a bad label, EB_ERUNTIME naming the row
 * of a non-finite loss. */
eb_status eb_clf_loss_grad(eb_clf *m, double *loss, const float *x, const int32_t *y, int B);

typedef struct {
    double loss;       /* mean over the steps run                          */
    double accuracy;   /* training accuracy on the augmented batches       */
    double grad_norm;  /* of the last step                                  */
    int steps;
} eb_clf_train_stats;

/* One AdamW step on batch x (B, 1, S, S) with labels y (B): the augmentation
 * of m->step, loss, gradients, the update at eb_lr_at(r->lr, r->warmup_steps, m->step, total);
 * step++. stats receives this step alone (steps = 1). */
eb_status eb_clf_train_step(eb_clf *m, const eb_clf_recipe *r, const float *x, const int32_t *y, int B, int64_t total,
                            eb_clf_train_stats *stats);

/* Steps per epoch on n images (incomplete batches dropped). */
static inline int64_t eb_clf_steps_per_epoch(const eb_clf_recipe *r, int n) { return n / r->batch; }

/* Trains from m->step to the end of its epoch on `data` (image side = the
 * model's): epoch e visits eb_train_permutation(data.n, seed, e) in batches.
 * `progress` shows a line on stderr when it is a terminal. */
eb_status eb_clf_train_epoch(eb_clf *m, const eb_clf_recipe *r, const eb_fmnist *data, int progress,
                             eb_clf_train_stats *stats);

/* ------------------------------------------------------------------------ */
/* Files                                                                     */

/* Writes the weights (F32, keys of the enum comments) to `path` atomically,
 * with metadata: format, the configuration, with a recipe `r` (may be NULL)
 * also the step and the recipe, then the extra pairs. With `with_state` (needs
 * r) also the AdamW moments (adam_m.*, adam_v.*): a training checkpoint. */
eb_status eb_clf_save(const eb_clf *m, const char *path, int with_state, const eb_clf_recipe *r,
                      const eb_st_meta *extra, int n_extra);

/* Loads a classifier file (weights checked: shapes, finite values). *r (may
 * be NULL) receives the recipe when the file records one (else it is left
 * alone); *has_state (may be NULL) is 1 when it is a checkpoint, whose moments
 * and step are then restored too. */
eb_status eb_clf_load(eb_clf **out, const char *path, eb_clf_recipe *r, int *has_state);

#endif
