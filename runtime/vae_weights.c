/* vae_weights.c — loading the VAE decoder (vae.h) from diffusers folders and
 * .safetensors files in three key layouts, kept apart from the model.
 *
 * The model's parameter table carries diffusers' current keys; a layout is a
 * rewrite of those keys into the file's (diffusers' legacy attention names,
 * or CompVis/ldm's, whose up blocks count the other way round and whose
 * attention projections are 1×1 convolutions). Every tensor's presence,
 * dtype and shape is checked before any is read; file keys of the decoder
 * that the table does not know are refused (they mean another architecture),
 * the rest of the file (encoder.*, quant_conv.*, a pipeline's other models)
 * is ignored.
 */
#include "runtime/vae.h"

#include "runtime/readfile.h"
#include "runtime/safetensors.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_CONFIG_BYTES (1 << 20)

typedef enum { LAYOUT_DIFFUSERS, LAYOUT_LEGACY, LAYOUT_LDM } key_layout;

/* Key prefixes renamed by a layout: diffusers' current → the file's. */
typedef struct { const char *from, *to; } key_rename;

static const key_rename legacy_renames[] = {
    {"decoder.mid_block.attentions.0.to_q.", "decoder.mid_block.attentions.0.query."},
    {"decoder.mid_block.attentions.0.to_k.", "decoder.mid_block.attentions.0.key."},
    {"decoder.mid_block.attentions.0.to_v.", "decoder.mid_block.attentions.0.value."},
    {"decoder.mid_block.attentions.0.to_out.0.", "decoder.mid_block.attentions.0.proj_attn."},
};

static const key_rename ldm_renames[] = {
    {"decoder.mid_block.resnets.0.", "decoder.mid.block_1."},
    {"decoder.mid_block.resnets.1.", "decoder.mid.block_2."},
    {"decoder.mid_block.attentions.0.group_norm.", "decoder.mid.attn_1.norm."},
    {"decoder.mid_block.attentions.0.to_q.", "decoder.mid.attn_1.q."},
    {"decoder.mid_block.attentions.0.to_k.", "decoder.mid.attn_1.k."},
    {"decoder.mid_block.attentions.0.to_v.", "decoder.mid.attn_1.v."},
    {"decoder.mid_block.attentions.0.to_out.0.", "decoder.mid.attn_1.proj_out."},
    {"decoder.conv_norm_out.", "decoder.norm_out."},
};

static int apply_renames(char *out, size_t cap, const char *name, const key_rename *r, int n) {
    for (int i = 0; i < n; i++) {
        size_t len = strlen(r[i].from);
        if (!strncmp(name, r[i].from, len)) {
            snprintf(out, cap, "%s%s", r[i].to, name + len);
            return 1;
        }
    }
    return 0;
}

/* The file key of table key `name` under `layout` and `prefix`. */
static void file_key(char *out, size_t cap, const char *name, key_layout layout, const char *prefix, int n_blocks) {
    char key[160];
    int i, j, len = 0;
    snprintf(key, sizeof key, "%s", name);
    if (layout == LAYOUT_LEGACY) {
        apply_renames(key, sizeof key, name, legacy_renames, sizeof legacy_renames / sizeof legacy_renames[0]);
    } else if (layout == LAYOUT_LDM && !apply_renames(key, sizeof key, name, ldm_renames,
                                                      sizeof ldm_renames / sizeof ldm_renames[0])) {
        if (sscanf(name, "decoder.up_blocks.%d.resnets.%d.%n", &i, &j, &len) == 2 && len) {
            const char *leaf = name + len;
            snprintf(key, sizeof key, "decoder.up.%d.block.%d.%s", n_blocks - 1 - i, j,
                     !strncmp(leaf, "conv_shortcut.", 14) ? "nin_shortcut." : leaf);
            if (!strncmp(leaf, "conv_shortcut.", 14)) strncat(key, leaf + 14, sizeof key - strlen(key) - 1);
        } else if ((len = 0, sscanf(name, "decoder.up_blocks.%d.upsamplers.0.conv.%n", &i, &len) == 1 && len)) {
            snprintf(key, sizeof key, "decoder.up.%d.upsample.conv.%s", n_blocks - 1 - i, name + len);
        }
    }
    snprintf(out, cap, "%s%s", prefix, key);
}

/* ldm stores the attention projections as 1×1 convolutions: (C, C, 1, 1) for diffusers' (C, C). */
static int ldm_conv_projection(const char *name, const eb_vae_param *p) {
    return p->rank == 2 && !strncmp(name, "decoder.mid_block.attentions.0.", 31);
}

static void format_dims(char *out, size_t cap, const int64_t *dims, int rank) {
    size_t k = (size_t)snprintf(out, cap, "[");
    for (int r = 0; r < rank && k < cap; r++)
        k += (size_t)snprintf(out + k, cap - k, "%s%lld", r ? ", " : "", (long long)dims[r]);
    if (k < cap) snprintf(out + k, cap - k, "]");
}

/* The layout and key prefix of a file, from the keys it has. */
static void detect_layout(const eb_st_file *f, key_layout *layout, const char **prefix) {
    *prefix = "";
    for (int i = 0; i < eb_st_count(f); i++)
        if (!strncmp(eb_st_tensor_at(f, i)->name, "first_stage_model.decoder.", 26)) *prefix = "first_stage_model.";
    char key[160];
    snprintf(key, sizeof key, "%sdecoder.mid.block_1.conv1.weight", *prefix);
    if (eb_st_find(f, key)) {
        *layout = LAYOUT_LDM;
        return;
    }
    snprintf(key, sizeof key, "%sdecoder.mid_block.attentions.0.query.weight", *prefix);
    *layout = eb_st_find(f, key) ? LAYOUT_LEGACY : LAYOUT_DIFFUSERS;
}

/* A file key the decoder would own: the decoder's and post_quant_conv's. */
static int decoder_key(const char *name, const char *prefix) {
    size_t n = strlen(prefix);
    if (strncmp(name, prefix, n)) return 0;
    return !strncmp(name + n, "decoder.", 8) || !strncmp(name + n, "post_quant_conv.", 16);
}

static eb_status fill_from_file(eb_vae *v, const eb_st_file *f) {
    const char *label = eb_st_label(f), *prefix;
    key_layout layout;
    detect_layout(f, &layout, &prefix);
    const int n = eb_vae_param_count(v), nb = eb_vae_config_of(v)->n_blocks;
    const eb_st_tensor **tensors = calloc((size_t)n, sizeof *tensors);
    char *used = calloc((size_t)eb_st_count(f) + 1, 1);
    float *host = malloc((eb_vae_param_floats(v) ? eb_vae_param_floats(v) : 1) * sizeof *host);
    eb_status st = tensors && used && host ? EB_OK : eb_fail(EB_ERUNTIME, "%s: out of memory", label);
    char key[192];
    for (int i = 0; i < n && !st; i++) {
        const eb_vae_param *p = eb_vae_param_at(v, i);
        file_key(key, sizeof key, p->name, layout, prefix, nb);
        const eb_st_tensor *t = tensors[i] = eb_st_find(f, key);
        if (!t) {
            st = eb_fail(EB_EINPUT, "%s: missing tensor '%s' (%s layout)", label, key,
                         layout == LAYOUT_LDM ? "CompVis/ldm" : layout == LAYOUT_LEGACY ? "diffusers legacy" : "diffusers");
            break;
        }
        used[t - eb_st_tensor_at(f, 0)] = 1;
        int64_t want[4] = {p->shape[0], p->shape[1], p->shape[2], p->shape[3]};
        int rank = p->rank;
        if (layout == LAYOUT_LDM && ldm_conv_projection(p->name, p)) want[2] = want[3] = 1, rank = 4;
        int same = t->rank == rank;
        for (int r = 0; same && r < rank; r++) same = t->shape[r] == want[r];
        if (t->dtype != EB_DT_F32 && t->dtype != EB_DT_F16 && t->dtype != EB_DT_BF16) {
            st = eb_fail(EB_EINPUT, "%s: tensor '%s': dtype %s, expected F32, F16 or BF16", label, key,
                         eb_dtype_name(t->dtype));
        } else if (!same) {
            char got[160], exp[160];
            format_dims(got, sizeof got, t->shape, t->rank);
            format_dims(exp, sizeof exp, want, rank);
            st = eb_fail(EB_EINPUT, "%s: tensor '%s': shape %s, expected %s", label, key, got, exp);
        }
    }
    for (int i = 0; i < eb_st_count(f) && !st; i++) {
        const char *name = eb_st_tensor_at(f, i)->name;
        if (!used[i] && decoder_key(name, prefix))
            st = eb_fail(EB_EINPUT, "%s: unexpected tensor '%s' (not a key of the configured decoder: check config.json)",
                         label, name);
    }
    for (int i = 0; i < n && !st; i++) {
        const eb_vae_param *p = eb_vae_param_at(v, i);
        float *dst = host + p->offset;
        if ((st = eb_st_read_f32(f, tensors[i], dst, p->numel))) break;
        for (size_t k = 0; k < p->numel && !st; k++)
            if (!isfinite(dst[k])) {
                file_key(key, sizeof key, p->name, layout, prefix, nb);
                st = eb_fail(EB_EINPUT, "%s: tensor '%s': non-finite value %g at flat index %zu", label, key,
                             (double)dst[k], k);
            }
    }
    if (!st) {
        eb_vae_set_params(v, host);
        char note[48];
        snprintf(note, sizeof note, "%s%s", layout == LAYOUT_LDM ? "ldm" : layout == LAYOUT_LEGACY ? "diffusers-legacy" : "diffusers",
                 *prefix ? " (first_stage_model.)" : "");
        eb_vae_set_layout(v, note);
    }
    free(tensors);
    free(used);
    free(host);
    return st;
}

/* ------------------------------------------------------------------------ */
/* config.json                                                               */

static eb_status json_small_int(eb_json *j, int *out) {
    int64_t x;
    eb_status st = eb_json_int(j, &x);
    if (st) return st;
    if (x < 0 || x > INT_MAX) return eb_json_fail(j, "%lld out of range", (long long)x);
    *out = (int)x;
    return EB_OK;
}

/* true / false (the reader has no booleans: the first letter decides, skip validates). */
static eb_status json_bool(eb_json *j, int *out) {
    char c = eb_json_peek(j);
    if (c != 't' && c != 'f') return eb_json_fail(j, "expected true or false");
    *out = c == 't';
    return eb_json_skip(j);
}

/* Elements of an array of ints (into out, at most cap) or, when strings, counted and checked to
 * equal `must` (NULL: any). */
static eb_status json_array(eb_json *j, int *out, int cap, int *n, const char *must) {
    int count = 0, more = 0;
    eb_status st;
    *n = 0;
    while (!(st = eb_json_element(j, &count, &more)) && more) {
        if (*n == cap) return eb_json_fail(j, "more than %d elements", cap);
        if (out) {
            if ((st = json_small_int(j, &out[*n]))) return st;
        } else {
            char *s;
            if ((st = eb_json_string(j, &s))) return st;
            int ok = !must || !strcmp(s, must);
            free(s);
            if (!ok) return eb_json_fail(j, "element %d is not \"%s\" (the only block type of this decoder)", *n, must);
        }
        (*n)++;
    }
    return st;
}

/* The decoder configuration of an AutoencoderKL config.json; absent keys keep their sd-vae values. */
static eb_status read_config(const char *path, eb_vae_config *c) {
    char *text, *key;
    size_t len = 0;
    eb_status st = eb_read_file(path, MAX_CONFIG_BYTES, &text, &len);
    if (st) return st;
    eb_vae_config_sd(c);
    int up_types = -1;
    eb_json j;
    eb_json_init(&j, text, len, path);
    int count = 0;
    while (!(st = eb_json_member(&j, &count, &key)) && key) {
        snprintf(j.scope, sizeof j.scope, "key '%.100s'", key);
        if (eb_json_peek(&j) == 'n') st = eb_json_skip(&j); /* null counts as absent */
        else if (!strcmp(key, "latent_channels")) st = json_small_int(&j, &c->latent_channels);
        else if (!strcmp(key, "out_channels")) st = json_small_int(&j, &c->out_channels);
        else if (!strcmp(key, "layers_per_block")) st = json_small_int(&j, &c->layers_per_block);
        else if (!strcmp(key, "norm_num_groups")) st = json_small_int(&j, &c->norm_num_groups);
        else if (!strcmp(key, "mid_block_add_attention")) st = json_bool(&j, &c->mid_attention);
        else if (!strcmp(key, "use_post_quant_conv")) st = json_bool(&j, &c->post_quant_conv);
        else if (!strcmp(key, "block_out_channels"))
            st = json_array(&j, c->block_out_channels, EB_VAE_MAX_BLOCKS, &c->n_blocks, NULL);
        else if (!strcmp(key, "up_block_types"))
            st = json_array(&j, NULL, EB_VAE_MAX_BLOCKS, &up_types, "UpDecoderBlock2D");
        else if (!strcmp(key, "act_fn")) {
            char *s = NULL;
            if (!(st = eb_json_string(&j, &s)) && strcmp(s, "silu"))
                st = eb_json_fail(&j, "act_fn \"%s\": only silu is supported", s);
            free(s);
        } else st = eb_json_skip(&j);
        free(key);
        if (st) break;
        j.scope[0] = 0;
    }
    if (!st) st = eb_json_finish(&j);
    free(text);
    if (st) return st;
    if (up_types >= 0 && up_types != c->n_blocks)
        return eb_fail(EB_EINPUT, "%s: %d up_block_types for %d block_out_channels", path, up_types, c->n_blocks);
    if ((st = eb_vae_config_validate(c))) {
        char why[512];
        snprintf(why, sizeof why, "%s", eb_last_error());
        return eb_fail(st, "%s: %s", path, why);
    }
    return EB_OK;
}

eb_status eb_vae_load_on(eb_vae **out, const char *path, const eb_device *dev) {
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0) return eb_fail(EB_EINPUT, "%s: %s", path, strerror(errno));
    size_t n = strlen(path) + 64;
    char *config = malloc(n), *weights = malloc(n);
    eb_status st = config && weights ? EB_OK : eb_fail(EB_ERUNTIME, "%s: out of memory", path);
    eb_vae_config c;
    eb_vae_config_sd(&c);
    if (!st && S_ISDIR(sb.st_mode)) {
        snprintf(config, n, "%s/vae/diffusion_pytorch_model.safetensors", path);
        const char *sub = eb_is_regular_file(config) ? "/vae" : "";
        snprintf(config, n, "%s%s/config.json", path, sub);
        snprintf(weights, n, "%s%s/diffusion_pytorch_model.safetensors", path, sub);
        if (!eb_is_regular_file(weights))
            st = eb_fail(EB_EINPUT, "%s: a folder without diffusion_pytorch_model.safetensors or "
                                    "vae/diffusion_pytorch_model.safetensors", path);
        else if (eb_is_regular_file(config))
            st = read_config(config, &c);
    } else if (!st) {
        snprintf(weights, n, "%s", path);
    }
    eb_st_file *f = NULL;
    eb_vae *v = NULL;
    if (!st && !(st = eb_st_open(&f, weights)) && !(st = eb_vae_create_on(&v, &c, dev))) st = fill_from_file(v, f);
    eb_st_close(f);
    free(config);
    free(weights);
    if (st) {
        eb_vae_free(v);
        return st;
    }
    *out = v;
    return EB_OK;
}
