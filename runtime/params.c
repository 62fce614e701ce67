/* params.c — the parameter slab layout, official key names and the fixed position embedding. */
#include "runtime/params.h"

#include <math.h>

#include "runtime/checked.h"

const eb_param_info eb_param_table[EB_NUM_PARAM_TENSORS] = {
    [EB_P_X_EMBED_W] = {"x_embedder.proj.weight", 0},
    [EB_P_X_EMBED_B] = {"x_embedder.proj.bias", 0},
    [EB_P_T_FC1_W] = {"t_embedder.mlp.0.weight", 0},
    [EB_P_T_FC1_B] = {"t_embedder.mlp.0.bias", 0},
    [EB_P_T_FC2_W] = {"t_embedder.mlp.2.weight", 0},
    [EB_P_T_FC2_B] = {"t_embedder.mlp.2.bias", 0},
    [EB_P_Y_TABLE] = {"y_embedder.embedding_table.weight", 0},
    [EB_P_ADALN_W] = {"blocks.%d.adaLN_modulation.1.weight", 1},
    [EB_P_ADALN_B] = {"blocks.%d.adaLN_modulation.1.bias", 1},
    [EB_P_QKV_W] = {"blocks.%d.attn.qkv.weight", 1},
    [EB_P_QKV_B] = {"blocks.%d.attn.qkv.bias", 1},
    [EB_P_PROJ_W] = {"blocks.%d.attn.proj.weight", 1},
    [EB_P_PROJ_B] = {"blocks.%d.attn.proj.bias", 1},
    [EB_P_FC1_W] = {"blocks.%d.mlp.fc1.weight", 1},
    [EB_P_FC1_B] = {"blocks.%d.mlp.fc1.bias", 1},
    [EB_P_FC2_W] = {"blocks.%d.mlp.fc2.weight", 1},
    [EB_P_FC2_B] = {"blocks.%d.mlp.fc2.bias", 1},
    [EB_P_FINAL_ADALN_W] = {"final_layer.adaLN_modulation.1.weight", 0},
    [EB_P_FINAL_ADALN_B] = {"final_layer.adaLN_modulation.1.bias", 0},
    [EB_P_FINAL_W] = {"final_layer.linear.weight", 0},
    [EB_P_FINAL_B] = {"final_layer.linear.bias", 0},
};

int eb_param_shape(int i, const eb_config *c, int64_t dims[4]) {
    int64_t D = c->hidden_size, p = c->patch_size, out = (int64_t)p * p * eb_out_channels(c);
    switch (i) {
    case EB_P_X_EMBED_W: dims[0] = D; dims[1] = c->in_channels; dims[2] = p; dims[3] = p; return 4;
    case EB_P_T_FC1_W: dims[0] = D; dims[1] = EB_FREQ_DIM; return 2;
    case EB_P_T_FC2_W: case EB_P_PROJ_W: dims[0] = D; dims[1] = D; return 2;
    case EB_P_Y_TABLE: dims[0] = c->num_classes + 1; dims[1] = D; return 2;
    case EB_P_ADALN_W: dims[0] = 6 * D; dims[1] = D; return 2;
    case EB_P_ADALN_B: dims[0] = 6 * D; return 1;
    case EB_P_QKV_W: dims[0] = 3 * D; dims[1] = D; return 2;
    case EB_P_QKV_B: dims[0] = 3 * D; return 1;
    case EB_P_FC1_W: dims[0] = EB_MLP_RATIO * D; dims[1] = D; return 2;
    case EB_P_FC1_B: dims[0] = EB_MLP_RATIO * D; return 1;
    case EB_P_FC2_W: dims[0] = D; dims[1] = EB_MLP_RATIO * D; return 2;
    case EB_P_FINAL_ADALN_W: dims[0] = 2 * D; dims[1] = D; return 2;
    case EB_P_FINAL_ADALN_B: dims[0] = 2 * D; return 1;
    case EB_P_FINAL_W: dims[0] = out; dims[1] = D; return 2;
    case EB_P_FINAL_B: dims[0] = out; return 1;
    default: dims[0] = D; return 1; /* the D-sized biases */
    }
}

void eb_param_sizes(size_t sizes[EB_NUM_PARAM_TENSORS], const eb_config *c) {
    for (int i = 0; i < EB_NUM_PARAM_TENSORS; i++) {
        int64_t dims[4];
        int rank = eb_param_shape(i, c, dims);
        size_t n = (size_t)eb_checked_count(dims, rank, INT64_MAX); /* a validated config: small extents */
        sizes[i] = n * (eb_param_table[i].per_block ? (size_t)c->depth : 1);
    }
}

float **eb_params_slot(eb_params *p, int i) {
    float **slots[EB_NUM_PARAM_TENSORS] = {
        &p->x_embed_w, &p->x_embed_b, &p->t_fc1_w, &p->t_fc1_b, &p->t_fc2_w, &p->t_fc2_b, &p->y_table,
        &p->adaln_w, &p->adaln_b, &p->qkv_w, &p->qkv_b, &p->proj_w, &p->proj_b, &p->fc1_w, &p->fc1_b,
        &p->fc2_w, &p->fc2_b, &p->final_adaln_w, &p->final_adaln_b, &p->final_w, &p->final_b,
    };
    return slots[i];
}

void eb_params_point(eb_params *p, float *slab, const eb_config *c) {
    size_t sizes[EB_NUM_PARAM_TENSORS];
    eb_param_sizes(sizes, c);
    for (int i = 0; i < EB_NUM_PARAM_TENSORS; i++) {
        *eb_params_slot(p, i) = slab;
        slab += sizes[i];
    }
}

/* One axis of the official sin-cos embedding: sin(pos·ω_k) for k < half, then cos. */
static void pos_embed_axis(float *out, int half, double pos) {
    for (int k = 0; k < half; k++) {
        double omega = 1.0 / pow(10000.0, (double)k / half);
        out[k] = (float)sin(pos * omega);
        out[k + half] = (float)cos(pos * omega);
    }
}

void eb_pos_embed(float *out, int hidden_size, int grid) {
    /* The first D/2 columns encode the grid column (w), the last D/2 the row (h):
     * the official code builds meshgrid(w, h) and embeds grid[0] first. */
    int half_axis = hidden_size / 4, D = hidden_size;
    for (int h = 0; h < grid; h++)
        for (int w = 0; w < grid; w++) {
            float *row = out + (size_t)(h * grid + w) * D;
            pos_embed_axis(row, half_axis, w);
            pos_embed_axis(row + D / 2, half_axis, h);
        }
}
