/* params.h — DiT parameters in one slab with a struct of pointers (llm.c style).
 *
 * The same layout serves the inference model, the trainer's gradients and its
 * AdamW moments. Block tensors are stacked over the L blocks: qkv_w holds
 * block 0's (3D, D) matrix followed by block 1's, and so on. Linear weights
 * are (out_features, in_features) as in PyTorch; the patch embedding weight is
 * the Conv2d (D, C, p, p) kernel, i.e. (D, C·p·p) with input index c·p²+py·p+px.
 */
#ifndef EB_PARAMS_H
#define EB_PARAMS_H

#include "runtime/ebcache.h"

enum {
    EB_P_X_EMBED_W,   /* (D, C*p*p)           x_embedder.proj.weight               */
    EB_P_X_EMBED_B,   /* (D)                  x_embedder.proj.bias                 */
    EB_P_T_FC1_W,     /* (D, 256)             t_embedder.mlp.0.weight              */
    EB_P_T_FC1_B,     /* (D)                                                        */
    EB_P_T_FC2_W,     /* (D, D)               t_embedder.mlp.2.weight              */
    EB_P_T_FC2_B,     /* (D)                                                        */
    EB_P_Y_TABLE,     /* (num_classes+1, D)   y_embedder.embedding_table.weight    */
    EB_P_ADALN_W,     /* (L, 6D, D)           blocks.N.adaLN_modulation.1.weight   */
    EB_P_ADALN_B,     /* (L, 6D)                                                    */
    EB_P_QKV_W,       /* (L, 3D, D)           blocks.N.attn.qkv.weight             */
    EB_P_QKV_B,       /* (L, 3D)                                                    */
    EB_P_PROJ_W,      /* (L, D, D)            blocks.N.attn.proj.weight            */
    EB_P_PROJ_B,      /* (L, D)                                                     */
    EB_P_FC1_W,       /* (L, 4D, D)           blocks.N.mlp.fc1.weight              */
    EB_P_FC1_B,       /* (L, 4D)                                                    */
    EB_P_FC2_W,       /* (L, D, 4D)           blocks.N.mlp.fc2.weight              */
    EB_P_FC2_B,       /* (L, D)                                                     */
    EB_P_FINAL_ADALN_W, /* (2D, D)            final_layer.adaLN_modulation.1.weight */
    EB_P_FINAL_ADALN_B, /* (2D)                                                     */
    EB_P_FINAL_W,     /* (p*p*C_out, D)       final_layer.linear.weight            */
    EB_P_FINAL_B,     /* (p*p*C_out)                                                */
    EB_NUM_PARAM_TENSORS
};

typedef struct {
    float *x_embed_w, *x_embed_b;
    float *t_fc1_w, *t_fc1_b, *t_fc2_w, *t_fc2_b;
    float *y_table;
    float *adaln_w, *adaln_b;
    float *qkv_w, *qkv_b;
    float *proj_w, *proj_b;
    float *fc1_w, *fc1_b;
    float *fc2_w, *fc2_b;
    float *final_adaln_w, *final_adaln_b;
    float *final_w, *final_b;
} eb_params;

/* Element counts of each tensor (whole stack for block tensors). */
void eb_param_sizes(size_t sizes[EB_NUM_PARAM_TENSORS], const eb_config *c);

/* Points the struct's members into `slab` (eb_param_count(c) floats), in enum order. */
void eb_params_point(eb_params *p, float *slab, const eb_config *c);

/* The i-th tensor pointer of `p` in enum order (for generic loops over tensors). */
float **eb_params_slot(eb_params *p, int i);

/* Official names and shapes: name of tensor i for block `block` (ignored for
 * non-block tensors); rank and dims of one block's slice (or the whole tensor). */
typedef struct {
    const char *fmt;   /* official state_dict key, "%d" for the block index */
    int per_block;     /* 1: stacked over L blocks                           */
} eb_param_info;
extern const eb_param_info eb_param_table[EB_NUM_PARAM_TENSORS];
/* Shape of one (block's) tensor: returns rank, fills dims[0..rank). */
int eb_param_shape(int i, const eb_config *c, int64_t dims[4]);

/* The fixed 2D sin-cos position embedding, computed in double and rounded to
 * float as the official get_2d_sincos_pos_embed. out (T, D). */
void eb_pos_embed(float *out, int hidden_size, int grid);

#endif
