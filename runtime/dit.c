/* dit.c — the DiT forward pass (official facebookresearch/DiT models.py semantics)
 * written against the backend interface. */
#include "runtime/model.h"

#include "runtime/cpu/kernels.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

void eb_set_threads(int n) { eb_kernels_init(n); }

static void acts_free(eb_model *m) {
    eb_acts *a = &m->acts;
    void *bufs[] = {a->tokens, a->normed, a->qkv, a->attn, a->branch, a->hidden, a->tfreq, a->thidden,
                    a->cond, a->cond_silu, a->mod, a->final_out, a->out, a->guided, a->x_in, a->t_in, a->y_in};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) m->be->free(bufs[i]);
    memset(a, 0, sizeof *a);
}

eb_status eb_acts_reserve(eb_model *m, int B) {
    if (B <= m->acts.capacity) return EB_OK;
    acts_free(m);
    const eb_config *c = &m->cfg;
    size_t D = c->hidden_size, T = eb_tokens(c), BT = (size_t)B * T, HW = (size_t)c->input_size * c->input_size;
    eb_acts *a = &m->acts;
    struct { void **ptr; size_t bytes; } plan[] = {
        {(void **)&a->tokens, BT * D * 4}, {(void **)&a->normed, BT * D * 4}, {(void **)&a->qkv, BT * 3 * D * 4},
        {(void **)&a->attn, BT * D * 4}, {(void **)&a->branch, BT * D * 4},
        {(void **)&a->hidden, BT * EB_MLP_RATIO * D * 4}, {(void **)&a->tfreq, (size_t)B * EB_FREQ_DIM * 4},
        {(void **)&a->thidden, B * D * 4}, {(void **)&a->cond, B * D * 4}, {(void **)&a->cond_silu, B * D * 4},
        {(void **)&a->mod, B * 6 * D * 4},
        {(void **)&a->final_out, BT * c->patch_size * c->patch_size * eb_out_channels(c) * 4},
        {(void **)&a->out, B * eb_out_channels(c) * HW * 4}, {(void **)&a->guided, B * eb_out_channels(c) * HW * 2}, {(void **)&a->x_in, B * c->in_channels * HW * 4},
        {(void **)&a->t_in, B * sizeof(int32_t)}, {(void **)&a->y_in, B * sizeof(int32_t)},
    };
    for (size_t i = 0; i < sizeof plan / sizeof plan[0]; i++) {
        *plan[i].ptr = m->be->alloc(plan[i].bytes);
        if (!*plan[i].ptr) {
            acts_free(m);
            return eb_fail(EB_ERUNTIME, "out of memory for the activations of a batch of %d", B);
        }
    }
    a->capacity = B;
    return EB_OK;
}

eb_status eb_model_create_on(eb_model **out, const eb_config *c, const eb_device *dev) {
    *out = NULL;
    const eb_backend *be, *cond_be;
    eb_status st = eb_config_validate(c);
    if (!st) st = eb_backend_select(dev, &be, &cond_be);
    if (st) return st;
    eb_model *m = calloc(1, sizeof *m);
    if (!m) return eb_fail(EB_ERUNTIME, "out of memory");
    m->cfg = *c;
    m->be = be;
    m->cond_be = cond_be;
    eb_kernels_single_blas(); /* see EB_GEMM_ROWS */
    size_t T = eb_tokens(c), D = c->hidden_size;
    m->slab = m->be->alloc(eb_param_count(c) * sizeof(float));
    m->pos_embed = m->be->alloc(T * D * sizeof(float));
    float *pos_host = malloc(T * D * sizeof(float));
    if (!m->slab || !m->pos_embed || !pos_host) {
        free(pos_host);
        eb_model_free(m);
        return eb_fail(EB_ERUNTIME, "out of memory for a model of %zu parameters", eb_param_count(c));
    }
    eb_params_point(&m->p, m->slab, c);
    eb_pos_embed(pos_host, c->hidden_size, eb_grid(c));
    m->be->upload(m->pos_embed, pos_host, T * D * sizeof(float));
    free(pos_host);
    *out = m;
    return EB_OK;
}

eb_status eb_model_create(eb_model **out, const eb_config *c) { return eb_model_create_on(out, c, NULL); }

void eb_model_free(eb_model *m) {
    if (!m) return;
    if (m->be) {
        acts_free(m);
        m->be->free(m->slab);
        m->be->free(m->pos_embed);
    }
    free(m);
}

const eb_config *eb_model_config(const eb_model *m) { return &m->cfg; }
const char *eb_model_device(const eb_model *m) { return m->be->name; }
const char *eb_model_warning(const eb_model *m) { return m->warning; }

/* Block l's adaLN-Zero modulation of the conditioning: acts.mod (B, 6D). */
void eb_block_modulation(eb_model *m, int l, int B) {
    size_t D = m->cfg.hidden_size;
    m->cond_be->linear_rows(m->acts.mod, m->acts.cond_silu, m->p.adaln_w + l * 6 * D * D, m->p.adaln_b + l * 6 * D, B, D,
                       6 * D);
}

void eb_block_attn_branch_colsum(eb_model *m, int l, int B, float *colsum) {
    const eb_config *c = &m->cfg;
    const eb_backend *be = m->be;
    eb_acts *a = &m->acts;
    int D = c->hidden_size, T = eb_tokens(c), BT = B * T, hd = D / c->num_heads;
    be->ln_modulate(a->normed, a->tokens, a->mod + 0 * D, a->mod + 1 * D, B, T, D, 6 * D);
    be->linear(a->qkv, a->normed, m->p.qkv_w + (size_t)l * 3 * D * D, m->p.qkv_b + (size_t)l * 3 * D, BT, D, 3 * D);
    if (colsum) be->attention_colsum(a->attn, colsum, a->qkv, B, T, c->num_heads, hd);
    else be->attention(a->attn, a->qkv, B, T, c->num_heads, hd);
    be->linear(a->branch, a->attn, m->p.proj_w + (size_t)l * D * D, m->p.proj_b + (size_t)l * D, BT, D, D);
}

void eb_block_attn_branch(eb_model *m, int l, int B) { eb_block_attn_branch_colsum(m, l, B, NULL); }

/* Block l's MLP on T' tokens per row: in (B, T', D) (tokens or a gathered
 * subset; ln_modulate is per token) → pre-gate output in acts.branch. */
static void mlp_rows(eb_model *m, int l, const float *in, int B, int Tr) {
    const eb_config *c = &m->cfg;
    const eb_backend *be = m->be;
    eb_acts *a = &m->acts;
    int D = c->hidden_size, BT = B * Tr, H4 = EB_MLP_RATIO * D;
    be->ln_modulate(a->normed, in, a->mod + 3 * D, a->mod + 4 * D, B, Tr, D, 6 * D);
    be->linear(a->hidden, a->normed, m->p.fc1_w + (size_t)l * H4 * D, m->p.fc1_b + (size_t)l * H4, BT, D, H4);
    be->gelu_tanh(a->hidden, a->hidden, (size_t)BT * H4);
    be->linear(a->branch, a->hidden, m->p.fc2_w + (size_t)l * D * H4, m->p.fc2_b + (size_t)l * D, BT, H4, D);
}

void eb_block_mlp_branch(eb_model *m, int l, int B) { mlp_rows(m, l, m->acts.tokens, B, eb_tokens(&m->cfg)); }

void eb_block_mlp_partial(eb_model *m, int l, int B, int K, const int32_t *idx) {
    const eb_config *c = &m->cfg;
    m->be->token_gather(m->acts.branch, m->acts.tokens, idx, B, eb_tokens(c), K, c->hidden_size);
    mlp_rows(m, l, m->acts.branch, B, K);
}

void eb_block_add_branch(eb_model *m, int l, int module, const float *f, int B) {
    int D = m->cfg.hidden_size, T = eb_tokens(&m->cfg);
    if (m->obs && m->obs->branch) m->obs->branch(m->obs->ctx, m, l, module, f, B);
    m->be->gate_residual(m->acts.tokens, m->acts.mod + (module ? 5 : 2) * D, f, B, T, D, 6 * D);
}

void eb_block_forward(eb_model *m, int l, int B) {
    eb_block_modulation(m, l, B);
    eb_block_attn_branch(m, l, B);
    eb_block_add_branch(m, l, 0, m->acts.branch, B);
    eb_block_mlp_branch(m, l, B);
    eb_block_add_branch(m, l, 1, m->acts.branch, B);
}

void eb_embed(eb_model *m, int B) {
    const eb_config *c = &m->cfg;
    const eb_backend *be = m->be;
    eb_acts *a = &m->acts;
    int D = c->hidden_size;
    be->patch_embed(a->tokens, a->x_in, m->p.x_embed_w, m->p.x_embed_b, m->pos_embed, B, c->in_channels,
                    c->input_size, c->patch_size, D);
    be->timestep_freq(a->tfreq, a->t_in, B);
    m->cond_be->linear_rows(a->thidden, a->tfreq, m->p.t_fc1_w, m->p.t_fc1_b, B, EB_FREQ_DIM, D);
    be->silu(a->thidden, a->thidden, (size_t)B * D);
    m->cond_be->linear_rows(a->cond, a->thidden, m->p.t_fc2_w, m->p.t_fc2_b, B, D, D);
    be->label_add(a->cond, m->p.y_table, a->y_in, B, D);
    be->silu(a->cond_silu, a->cond, (size_t)B * D);
    if (m->obs && m->obs->embedded) m->obs->embedded(m->obs->ctx, m, B);
}

void eb_final_layer(eb_model *m, int B) {
    const eb_config *c = &m->cfg;
    const eb_backend *be = m->be;
    eb_acts *a = &m->acts;
    int D = c->hidden_size, T = eb_tokens(c), Co = eb_out_channels(c), K = c->patch_size * c->patch_size * Co;
    m->cond_be->linear_rows(a->mod, a->cond_silu, m->p.final_adaln_w, m->p.final_adaln_b, B, D, 2 * D);
    be->ln_modulate(a->normed, a->tokens, a->mod, a->mod + D, B, T, D, 2 * D);
    be->linear(a->final_out, a->normed, m->p.final_w, m->p.final_b, B * T, D, K);
    be->unpatchify(a->out, a->final_out, B, Co, c->input_size, c->patch_size);
    if (m->obs && m->obs->output) m->obs->output(m->obs->ctx, m, B);
}

void eb_forward_batch(eb_model *m, int B) {
    eb_embed(m, B);
    for (int l = 0; l < m->cfg.depth; l++) eb_block_forward(m, l, B);
    eb_final_layer(m, B);
}
