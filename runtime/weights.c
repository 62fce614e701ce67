/* weights.c — loading DiT weights from official-key .safetensors files and
 * diffusers folders, and saving them with official keys (stable-diffusion.cpp
 * style: the model knows nothing about files).
 *
 * Both formats go through one path: a per-format table of key rules expands
 * into a plan (file key → slab slice), every tensor's presence, dtype and shape
 * is checked against the plan before the model is allocated, then each tensor
 * is converted straight into its slice and checked for non-finite values.
 * A model on a device is filled in a host staging copy and uploaded once;
 * saving such a model downloads its parameters first.
 */
#include "runtime/weights.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/checked.h"
#include "runtime/readfile.h"

#define KEY_MAX 128
#define MAX_CONFIG_BYTES (1 << 20) /* a diffusers config.json is a few hundred bytes */

/* A key format ("%d" = block index) and the parameter it fills. A tensor that is
 * one of `parts` row-slices of the parameter (diffusers' to_q/to_k/to_v of the
 * official qkv) says which part it is. */
typedef struct {
    const char *fmt;
    int param;
    int part, parts;
} key_rule;

/* Diffusers DiTTransformer2DModel names. The t/y embedders live in every block's
 * norm1.emb; official semantics share one, so block 0 fills it and the other
 * blocks' copies must be identical. */
static const key_rule diffusers_rules[] = {
    {"pos_embed.proj.weight", EB_P_X_EMBED_W, 0, 1},
    {"pos_embed.proj.bias", EB_P_X_EMBED_B, 0, 1},
    {"transformer_blocks.%d.norm1.emb.timestep_embedder.linear_1.weight", EB_P_T_FC1_W, 0, 1},
    {"transformer_blocks.%d.norm1.emb.timestep_embedder.linear_1.bias", EB_P_T_FC1_B, 0, 1},
    {"transformer_blocks.%d.norm1.emb.timestep_embedder.linear_2.weight", EB_P_T_FC2_W, 0, 1},
    {"transformer_blocks.%d.norm1.emb.timestep_embedder.linear_2.bias", EB_P_T_FC2_B, 0, 1},
    {"transformer_blocks.%d.norm1.emb.class_embedder.embedding_table.weight", EB_P_Y_TABLE, 0, 1},
    {"transformer_blocks.%d.norm1.linear.weight", EB_P_ADALN_W, 0, 1},
    {"transformer_blocks.%d.norm1.linear.bias", EB_P_ADALN_B, 0, 1},
    {"transformer_blocks.%d.attn1.to_q.weight", EB_P_QKV_W, 0, 3},
    {"transformer_blocks.%d.attn1.to_k.weight", EB_P_QKV_W, 1, 3},
    {"transformer_blocks.%d.attn1.to_v.weight", EB_P_QKV_W, 2, 3},
    {"transformer_blocks.%d.attn1.to_q.bias", EB_P_QKV_B, 0, 3},
    {"transformer_blocks.%d.attn1.to_k.bias", EB_P_QKV_B, 1, 3},
    {"transformer_blocks.%d.attn1.to_v.bias", EB_P_QKV_B, 2, 3},
    {"transformer_blocks.%d.attn1.to_out.0.weight", EB_P_PROJ_W, 0, 1},
    {"transformer_blocks.%d.attn1.to_out.0.bias", EB_P_PROJ_B, 0, 1},
    {"transformer_blocks.%d.ff.net.0.proj.weight", EB_P_FC1_W, 0, 1},
    {"transformer_blocks.%d.ff.net.0.proj.bias", EB_P_FC1_B, 0, 1},
    {"transformer_blocks.%d.ff.net.2.weight", EB_P_FC2_W, 0, 1},
    {"transformer_blocks.%d.ff.net.2.bias", EB_P_FC2_B, 0, 1},
    {"proj_out_1.weight", EB_P_FINAL_ADALN_W, 0, 1},
    {"proj_out_1.bias", EB_P_FINAL_ADALN_B, 0, 1},
    {"proj_out_2.weight", EB_P_FINAL_W, 0, 1},
    {"proj_out_2.bias", EB_P_FINAL_B, 0, 1},
};

/* One file tensor of the plan and the slab slice it fills. */
typedef struct {
    char key[KEY_MAX];
    int param, block, part, parts;
    int replica;                 /* 1: a copy of a shared tensor that must equal block 0's */
    const eb_st_tensor *tensor;
} plan_item;

/* Elements of one block's slice of parameter i (the whole tensor when shared). */
static size_t slice_numel(int i, const eb_config *c) {
    int64_t dims[4];
    int rank = eb_param_shape(i, c, dims);
    return (size_t)eb_checked_count(dims, rank, INT64_MAX); /* a validated config: small extents */
}

static void format_dims(char *out, size_t cap, const int64_t *dims, int rank) {
    size_t k = (size_t)snprintf(out, cap, "[");
    for (int r = 0; r < rank && k < cap; r++)
        k += (size_t)snprintf(out + k, cap - k, "%s%lld", r ? ", " : "", (long long)dims[r]);
    if (k < cap) snprintf(out + k, cap - k, "]");
}

/* Expands the rules into *items: per-block rules once per block; a shared
 * parameter named with a block index becomes block 0's tensor plus replicas. */
static eb_status build_plan(plan_item **items, int *n, const key_rule *rules, int n_rules, const eb_config *c) {
    int cap = 0;
    for (int r = 0; r < n_rules; r++) cap += strstr(rules[r].fmt, "%d") ? c->depth : 1;
    *items = calloc((size_t)cap, sizeof **items);
    *n = 0;
    if (!*items) return eb_fail(EB_ERUNTIME, "out of memory for a plan of %d tensors", cap);
    for (int r = 0; r < n_rules; r++) {
        int blocks = strstr(rules[r].fmt, "%d") ? c->depth : 1, per_block = eb_param_table[rules[r].param].per_block;
        for (int l = 0; l < blocks; l++) {
            plan_item *it = &(*items)[(*n)++];
            snprintf(it->key, sizeof it->key, rules[r].fmt, l);
            it->param = rules[r].param;
            it->block = per_block ? l : 0;
            it->replica = !per_block && l > 0;
            it->part = rules[r].part;
            it->parts = rules[r].parts;
        }
    }
    return EB_OK;
}

/* Finds every planned tensor and checks its dtype and shape; rejects file
 * tensors outside the plan other than `pos_key`. */
static eb_status match_plan(const eb_st_file *f, plan_item *items, int n, const eb_config *c, const char *pos_key) {
    const char *label = eb_st_label(f);
    char *used = calloc((size_t)eb_st_count(f) + 1, 1);
    if (!used) return eb_fail(EB_ERUNTIME, "%s: out of memory", label);
    eb_status st = EB_OK;
    for (int k = 0; k < n && !st; k++) {
        plan_item *it = &items[k];
        const eb_st_tensor *t = it->tensor = eb_st_find(f, it->key);
        if (!t) {
            st = eb_fail(EB_EINPUT, "%s: missing tensor '%s'", label, it->key);
            break;
        }
        used[t - eb_st_tensor_at(f, 0)] = 1;
        int64_t dims[4];
        int rank = eb_param_shape(it->param, c, dims);
        dims[0] /= it->parts;
        int same = t->rank == rank;
        for (int r = 0; same && r < rank; r++) same = t->shape[r] == dims[r];
        if (t->dtype != EB_DT_F32 && t->dtype != EB_DT_F16 && t->dtype != EB_DT_BF16) {
            st = eb_fail(EB_EINPUT, "%s: tensor '%s': dtype %s, expected F32, F16 or BF16", label, it->key,
                         eb_dtype_name(t->dtype));
        } else if (!same) {
            char got[160], want[160];
            format_dims(got, sizeof got, t->shape, t->rank);
            format_dims(want, sizeof want, dims, rank);
            st = eb_fail(EB_EINPUT, "%s: tensor '%s': shape %s, expected %s", label, it->key, got, want);
        }
    }
    for (int i = 0; i < eb_st_count(f) && !st; i++) {
        const char *name = eb_st_tensor_at(f, i)->name;
        if (!used[i] && strcmp(name, pos_key) != 0)
            st = eb_fail(EB_EINPUT, "%s: unexpected tensor '%s' (not among the %s DiT keys)", label, name,
                         strcmp(pos_key, "pos_embed") == 0 ? "official" : "diffusers");
    }
    free(used);
    return st;
}

/* EB_EINPUT naming the first non-finite value of x (n). */
static eb_status check_finite(const float *x, size_t n, const char *label, const char *key) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return eb_fail(EB_EINPUT, "%s: tensor '%s': non-finite value %g at flat index %zu", label, key, (double)x[i],
                           i);
    return EB_OK;
}

/* Reads every planned tensor into its slice of the model's slab (of a host
 * staging copy, uploaded at the end, when the model lives on a device). */
static eb_status fill_params(eb_model *m, const eb_st_file *f, const plan_item *items, int n) {
    const char *label = eb_st_label(f);
    const size_t count = eb_param_count(&m->cfg);
    size_t tmp_n = 0;
    for (int k = 0; k < n; k++)
        if (items[k].replica && items[k].tensor->numel > tmp_n) tmp_n = items[k].tensor->numel;
    float *tmp = malloc((tmp_n ? tmp_n : 1) * sizeof *tmp);
    float *host = eb_model_on_host(m) ? m->slab : calloc(count, sizeof *host);
    if (!tmp || !host) {
        free(tmp);
        if (host != m->slab) free(host);
        return eb_fail(EB_ERUNTIME, "%s: out of memory", label);
    }
    eb_params hp;
    eb_params_point(&hp, host, &m->cfg);
    eb_status st = EB_OK;
    for (int k = 0; k < n && !st; k++) {
        const plan_item *it = &items[k];
        size_t numel = slice_numel(it->param, &m->cfg) / it->parts;
        float *dst = *eb_params_slot(&hp, it->param) + (size_t)it->block * it->parts * numel + it->part * numel;
        float *into = it->replica ? tmp : dst;
        if ((st = eb_st_read_f32(f, it->tensor, into, numel)) || (st = check_finite(into, numel, label, it->key)))
            break;
        for (size_t i = 0; it->replica && i < numel && !st; i++)
            if (tmp[i] != dst[i])
                st = eb_fail(EB_EINPUT,
                             "%s: tensor '%s' differs from block 0's copy at flat index %zu (%g vs %g); "
                             "the official model shares one embedder across blocks",
                             label, it->key, i, (double)tmp[i], (double)dst[i]);
    }
    if (host != m->slab) {
        if (!st) m->be->upload(m->slab, host, count * sizeof *host);
        free(host);
    }
    free(tmp);
    return st;
}

/* The stored pos_embed (1, T, D) into *pos (malloc'd; NULL when the file has
 * none): the official code uses the stored buffer, rounded values included.
 * When it is not the 2D sin-cos table within 1e-5 plus the file dtype's
 * rounding (values in [-1, 1]: one unit in [0.5, 1)), `warning` says where. */
static eb_status read_pos_embed(const eb_st_file *f, const char *key, const eb_config *c, float **pos, char *warning,
                                size_t cap) {
    *pos = NULL;
    const eb_st_tensor *t = eb_st_find(f, key);
    if (!t) return EB_OK;
    const char *label = eb_st_label(f);
    int64_t T = eb_tokens(c), D = c->hidden_size;
    if (t->rank != 3 || t->shape[0] != 1 || t->shape[1] != T || t->shape[2] != D) {
        char got[160];
        format_dims(got, sizeof got, t->shape, t->rank);
        return eb_fail(EB_EINPUT, "%s: tensor '%s': shape %s, expected [1, %lld, %lld]", label, key, got,
                       (long long)T, (long long)D);
    }
    float *stored = malloc((size_t)(T * D) * sizeof(float)), *computed = malloc((size_t)(T * D) * sizeof(float));
    eb_status st = stored && computed ? eb_st_read_f32(f, t, stored, (size_t)(T * D))
                                      : eb_fail(EB_ERUNTIME, "%s: out of memory", label);
    if (!st) st = check_finite(stored, (size_t)(T * D), label, key);
    if (!st) {
        eb_pos_embed(computed, c->hidden_size, eb_grid(c));
        double tol = 1e-5 + (t->dtype == EB_DT_F16 ? 0x1p-11 : t->dtype == EB_DT_BF16 ? 0x1p-8 : 0), worst = 0;
        size_t at = 0;
        for (size_t i = 0; i < (size_t)(T * D); i++) {
            double diff = fabs((double)stored[i] - computed[i]);
            if (diff > worst) {
                worst = diff;
                at = i;
            }
        }
        if (worst > tol)
            snprintf(warning, cap,
                     "%s: tensor '%s' differs from the 2D sin-cos embedding (grid %d, hidden %d) by %g at flat index "
                     "%zu, more than %s rounding; the stored table is used, as the official code does",
                     label, key, eb_grid(c), c->hidden_size, worst, at, eb_dtype_name(t->dtype));
    }
    free(computed);
    if (st) free(stored);
    else *pos = stored;
    return st;
}

/* Checks the config, plans and checks every tensor, then builds the model. */
static eb_status load_tensors(eb_model **out, const eb_st_file *f, const eb_config *c, const key_rule *rules,
                              int n_rules, const char *pos_key, const eb_device *dev) {
    const char *label = eb_st_label(f);
    eb_status st = eb_config_validate(c);
    if (st) {
        char why[512];
        snprintf(why, sizeof why, "%s", eb_last_error());
        return eb_fail(st, "%s: %s", label, why);
    }
    plan_item *items = NULL;
    int n = 0;
    eb_model *m = NULL;
    float *pos = NULL;
    char warning[sizeof m->warning] = "";
    if (!(st = build_plan(&items, &n, rules, n_rules, c)) && !(st = match_plan(f, items, n, c, pos_key)) &&
        !(st = read_pos_embed(f, pos_key, c, &pos, warning, sizeof warning)) && !(st = eb_model_create_on(&m, c, dev)))
        st = fill_params(m, f, items, n);
    if (!st && pos) {
        m->be->upload(m->pos_embed, pos, (size_t)eb_tokens(c) * c->hidden_size * sizeof(float));
        memcpy(m->warning, warning, sizeof warning);
    }
    free(pos);
    free(items);
    if (st) {
        eb_model_free(m);
        return st;
    }
    *out = m;
    return EB_OK;
}

/* ------------------------------------------------------------------------ */
/* Official files                                                            */

/* Rules of the official state_dict keys, from eb_param_table. */
static void official_rules(key_rule rules[EB_NUM_PARAM_TENSORS]) {
    for (int i = 0; i < EB_NUM_PARAM_TENSORS; i++) rules[i] = (key_rule){eb_param_table[i].fmt, i, 0, 1};
}

static const char *const config_keys[8] = {"input_size", "hidden_size", "patch_size", "in_channels",
                                           "depth",      "num_heads",   "num_classes", "learn_sigma"};

static int *config_field(eb_config *c, int k) {
    int *fields[8] = {&c->input_size, &c->hidden_size, &c->patch_size, &c->in_channels,
                      &c->depth,      &c->num_heads,   &c->num_classes, &c->learn_sigma};
    return fields[k];
}

/* A decimal int (or, for learn_sigma, true/false/1/0) from a metadata string. */
static eb_status parse_meta_int(const char *label, const char *key, const char *s, int *out) {
    if (strcmp(key, "learn_sigma") == 0) {
        if (!strcmp(s, "true") || !strcmp(s, "1")) return *out = 1, EB_OK;
        if (!strcmp(s, "false") || !strcmp(s, "0")) return *out = 0, EB_OK;
        return eb_fail(EB_EINPUT, "%s: __metadata__ '%s' = '%s', expected true, false, 1 or 0", label, key, s);
    }
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < INT_MIN || v > INT_MAX || (*s != '-' && (*s < '0' || *s > '9')))
        return eb_fail(EB_EINPUT, "%s: __metadata__ '%s' = '%s' is not an integer", label, key, s);
    *out = (int)v;
    return EB_OK;
}

/* An int64 dimension as an int, or -1 (rejected by eb_config_validate). */
static int dim_int(int64_t d) { return d >= 0 && d <= INT_MAX ? (int)d : -1; }

/* The configuration from tensor shapes (no metadata). */
static eb_status infer_config(const eb_st_file *f, int heads, eb_config *c) {
    const char *label = eb_st_label(f);
    const char *need[] = {"x_embedder.proj.weight", "y_embedder.embedding_table.weight", "final_layer.linear.weight"};
    const int rank[] = {4, 2, 2};
    const eb_st_tensor *t[3];
    for (int k = 0; k < 3; k++) {
        if (!(t[k] = eb_st_find(f, need[k])))
            return eb_fail(EB_EINPUT, "%s: missing tensor '%s', needed to infer the configuration without "
                                      "__metadata__", label, need[k]);
        if (t[k]->rank != rank[k])
            return eb_fail(EB_EINPUT, "%s: tensor '%s': rank %d, expected %d", label, need[k], t[k]->rank, rank[k]);
    }
    const int64_t *xw = t[0]->shape;
    if (xw[2] != xw[3])
        return eb_fail(EB_EINPUT, "%s: tensor 'x_embedder.proj.weight': patch kernel %lldx%lld is not square", label,
                       (long long)xw[2], (long long)xw[3]);
    c->hidden_size = dim_int(xw[0]);
    c->in_channels = dim_int(xw[1]);
    c->patch_size = dim_int(xw[2]);
    c->num_classes = dim_int(t[1]->shape[0] - 1);

    int64_t p2 = xw[2] * xw[2], rows = t[2]->shape[0];
    if (p2 == 0 || rows % p2 || (rows / p2 != xw[1] && rows / p2 != 2 * xw[1]))
        return eb_fail(EB_EINPUT, "%s: tensor 'final_layer.linear.weight': %lld rows, expected p²·C or p²·2C (p %lld, C %lld)",
                       label, (long long)rows, (long long)xw[2], (long long)xw[1]);
    c->learn_sigma = rows / p2 == 2 * xw[1];

    c->depth = 0;
    for (int i = 0; i < eb_st_count(f); i++) {
        const char *name = eb_st_tensor_at(f, i)->name;
        char *end;
        if (strncmp(name, "blocks.", 7) || name[7] < '0' || name[7] > '9') continue;
        long l = strtol(name + 7, &end, 10);
        if (*end == '.' && l < 100000 && l + 1 > c->depth) c->depth = (int)l + 1;
    }

    const eb_st_tensor *pos = eb_st_find(f, "pos_embed");
    if (!pos)
        return eb_fail(EB_EINPUT, "%s: no __metadata__ and no pos_embed: cannot infer input_size (add __metadata__ "
                                  "input_size)", label);
    int64_t T = pos->rank == 3 ? pos->shape[1] : -1, grid = (int64_t)llround(sqrt((double)(T > 0 ? T : 0)));
    if (pos->rank != 3 || grid * grid != T || grid == 0)
        return eb_fail(EB_EINPUT, "%s: tensor 'pos_embed': expected (1, grid², D) to infer input_size", label);
    c->input_size = dim_int(grid * xw[2]);

    c->num_heads = heads > 0 ? heads : eb_heads_for_hidden(c->hidden_size);
    if (!c->num_heads)
        return eb_fail(EB_EINPUT, "%s: hidden size %d is not in the DiT table: pass the number of heads or add "
                                  "__metadata__ num_heads", label, c->hidden_size);
    return EB_OK;
}

/* The configuration of an official file: __metadata__ when it has config keys,
 * else inferred from shapes. An explicit `heads` > 0 overrides num_heads. */
static eb_status official_config(const eb_st_file *f, int heads, eb_config *c) {
    int any = 0;
    for (int k = 0; k < 8; k++) any |= eb_st_metadata(f, config_keys[k]) != NULL;
    if (!any) return infer_config(f, heads, c);
    for (int k = 0; k < 8; k++) {
        const char *v = eb_st_metadata(f, config_keys[k]);
        if (!v && !(heads > 0 && config_field(c, k) == &c->num_heads))
            return eb_fail(EB_EINPUT, "%s: __metadata__ has configuration keys but lacks '%s'", eb_st_label(f),
                           config_keys[k]);
        eb_status st = v ? parse_meta_int(eb_st_label(f), config_keys[k], v, config_field(c, k)) : EB_OK;
        if (st) return st;
    }
    if (heads > 0) c->num_heads = heads;
    return EB_OK;
}

static eb_status load_official(eb_model **out, const char *path, int heads, const eb_device *dev) {
    eb_st_file *f;
    eb_status st = eb_st_open(&f, path);
    if (st) return st;
    eb_config c = {0};
    key_rule rules[EB_NUM_PARAM_TENSORS];
    official_rules(rules);
    if (!(st = official_config(f, heads, &c)))
        st = load_tensors(out, f, &c, rules, EB_NUM_PARAM_TENSORS, "pos_embed", dev);
    eb_st_close(f);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Diffusers folders                                                         */

/* The DiT configuration from a diffusers transformer config.json. */
static eb_status diffusers_config(const char *path, int heads, eb_config *c) {
    static const char *const keys[] = {"sample_size", "patch_size",         "in_channels",        "out_channels",
                                       "num_layers",  "num_attention_heads", "attention_head_dim", "num_embeds_ada_norm"};
    enum { N_KEYS = sizeof keys / sizeof keys[0] };
    int64_t v[N_KEYS];
    int have[N_KEYS] = {0};
    char *text, *key;
    size_t len = 0;
    eb_status st = eb_read_file(path, MAX_CONFIG_BYTES, &text, &len);
    if (st) return st;
    eb_json j;
    eb_json_init(&j, text, len, path);
    int count = 0;
    while (!(st = eb_json_member(&j, &count, &key)) && key) {
        int k = 0;
        while (k < N_KEYS && strcmp(key, keys[k])) k++;
        snprintf(j.scope, sizeof j.scope, "key '%.100s'", key);
        free(key);
        if (k < N_KEYS && eb_json_peek(&j) != 'n') { /* null counts as absent */
            if ((st = eb_json_int(&j, &v[k]))) break;
            have[k] = 1;
        } else if ((st = eb_json_skip(&j))) {
            break;
        }
        j.scope[0] = 0;
    }
    if (!st) st = eb_json_finish(&j);
    free(text);
    if (st) return st;
    if (!have[3]) { /* diffusers: out_channels defaults to in_channels */
        v[3] = v[2];
        have[3] = have[2];
    }
    for (int k = 0; k < N_KEYS; k++) {
        if (!have[k]) return eb_fail(EB_EINPUT, "%s: missing '%s'", path, keys[k]);
        if (v[k] < 0 || v[k] > INT_MAX) return eb_fail(EB_EINPUT, "%s: '%s' = %lld out of range", path, keys[k], (long long)v[k]);
    }
    if (v[3] != v[2] && v[3] != 2 * v[2])
        return eb_fail(EB_EINPUT, "%s: out_channels %lld must be in_channels (%lld) or twice it", path,
                       (long long)v[3], (long long)v[2]);
    *c = (eb_config){.input_size = (int)v[0], .patch_size = (int)v[1], .in_channels = (int)v[2],
                     .learn_sigma = v[3] == 2 * v[2], .depth = (int)v[4], .num_heads = (int)v[5],
                     .hidden_size = dim_int(v[5] * v[6]), .num_classes = (int)v[7]};
    if (heads > 0) c->num_heads = heads;
    return EB_OK;
}

/* `dir` holds transformer/ or is the transformer folder itself. */
static eb_status load_diffusers(eb_model **out, const char *dir, int heads, const eb_device *dev) {
    size_t n = strlen(dir) + 64;
    char *config = malloc(n), *weights = malloc(n);
    eb_status st = config && weights ? EB_OK : eb_fail(EB_ERUNTIME, "%s: out of memory", dir);
    if (!st) {
        snprintf(config, n, "%s/transformer/config.json", dir);
        const char *sub = eb_is_regular_file(config) ? "/transformer" : "";
        snprintf(config, n, "%s%s/config.json", dir, sub);
        snprintf(weights, n, "%s%s/diffusion_pytorch_model.safetensors", dir, sub);
        if (!eb_is_regular_file(config))
            st = eb_fail(EB_EINPUT, "%s: a folder without transformer/config.json or config.json", dir);
    }
    eb_config c;
    eb_st_file *f = NULL;
    if (!st && !(st = diffusers_config(config, heads, &c)) && !(st = eb_st_open(&f, weights)))
        st = load_tensors(out, f, &c, diffusers_rules, sizeof diffusers_rules / sizeof diffusers_rules[0],
                          "pos_embed.pos_embed", dev);
    eb_st_close(f);
    free(config);
    free(weights);
    return st;
}

eb_status eb_model_load_on(eb_model **out, const char *path, int heads, const eb_device *dev) {
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0) return eb_fail(EB_EINPUT, "%s: %s", path, strerror(errno));
    return S_ISDIR(sb.st_mode) ? load_diffusers(out, path, heads, dev) : load_official(out, path, heads, dev);
}

eb_status eb_model_load(eb_model **out, const char *path, int heads) {
    return eb_model_load_on(out, path, heads, NULL);
}

/* ------------------------------------------------------------------------ */
/* Saving                                                                    */

/* pos_embed (T, D) is the table to store, or NULL for the computed sin-cos one. */
static eb_status weights_save(const eb_config *c, const float *slab, const float *pos_embed, const char *path,
                              const eb_st_meta *extra, int n_extra, eb_dtype dtype) {
    eb_status st = eb_config_validate(c);
    if (st) return st;
    if (n_extra < 0) return eb_fail(EB_EINPUT, "%s: negative metadata count", path);
    for (int i = 0; i < n_extra; i++)
        for (int k = 0; k < 8; k++)
            if (extra[i].key && strcmp(extra[i].key, config_keys[k]) == 0)
                return eb_fail(EB_EINPUT, "%s: extra metadata key '%s' is a configuration key", path, extra[i].key);

    int n = 1;
    for (int i = 0; i < EB_NUM_PARAM_TENSORS; i++) n += eb_param_table[i].per_block ? c->depth : 1;
    size_t T = eb_tokens(c), D = c->hidden_size;
    eb_st_entry *entries = calloc((size_t)n, sizeof *entries);
    char (*names)[KEY_MAX] = calloc((size_t)n, KEY_MAX);
    eb_st_meta *meta = calloc((size_t)(8 + n_extra), sizeof *meta);
    float *pos = malloc(T * D * sizeof *pos);
    char values[8][16];
    if (!entries || !names || !meta || !pos) {
        st = eb_fail(EB_ERUNTIME, "%s: out of memory", path);
        goto done;
    }
    /* pos_embed first, as in the official state_dict, which load_state_dict needs */
    if (pos_embed) memcpy(pos, pos_embed, T * D * sizeof *pos);
    else eb_pos_embed(pos, c->hidden_size, eb_grid(c));
    entries[0] = (eb_st_entry){"pos_embed", dtype, 3, {1, (int64_t)T, (int64_t)D}, pos};
    int e = 1;
    const float *at = slab;
    for (int i = 0; i < EB_NUM_PARAM_TENSORS; i++) {
        size_t numel = slice_numel(i, c);
        int blocks = eb_param_table[i].per_block ? c->depth : 1;
        for (int l = 0; l < blocks; l++, e++, at += numel) {
            snprintf(names[e], KEY_MAX, eb_param_table[i].fmt, l);
            entries[e] = (eb_st_entry){.name = names[e], .dtype = dtype, .data = at};
            entries[e].rank = eb_param_shape(i, c, entries[e].shape);
        }
    }
    eb_config copy = *c;
    for (int k = 0; k < 8; k++) {
        int v = *config_field(&copy, k);
        if (config_field(&copy, k) == &copy.learn_sigma) snprintf(values[k], sizeof values[k], v ? "true" : "false");
        else snprintf(values[k], sizeof values[k], "%d", v);
        meta[k] = (eb_st_meta){config_keys[k], values[k]};
    }
    for (int i = 0; i < n_extra; i++) meta[8 + i] = extra[i];
    st = eb_st_write(path, entries, n, meta, 8 + n_extra);
done:
    free(entries);
    free(names);
    free(meta);
    free(pos);
    return st;
}

eb_status eb_weights_save(const eb_config *c, const float *slab, const char *path, const eb_st_meta *extra,
                          int n_extra, eb_dtype dtype) {
    return weights_save(c, slab, NULL, path, extra, n_extra, dtype);
}

eb_status eb_model_save(const eb_model *m, const char *path, const eb_st_meta *extra, int n_extra, eb_dtype dtype) {
    /* the model's own pos_embed (a stored one may differ from the sin-cos table), as load_state_dict would */
    size_t param_bytes = eb_model_on_host(m) ? 0 : eb_param_count(&m->cfg) * sizeof(float);
    size_t pos_bytes = (size_t)eb_tokens(&m->cfg) * m->cfg.hidden_size * sizeof(float);
    float *host = malloc(param_bytes + pos_bytes);
    if (!host) return eb_fail(EB_ERUNTIME, "%s: out of memory for a host copy of the parameters", path);
    float *pos = host + param_bytes / sizeof(float);
    m->be->download(pos, m->pos_embed, pos_bytes);
    if (param_bytes) m->be->download(host, m->slab, param_bytes);
    eb_status st = weights_save(&m->cfg, param_bytes ? host : m->slab, pos, path, extra, n_extra, dtype);
    free(host);
    return st;
}
