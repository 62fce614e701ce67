/* test_weights.c — model save/load through official-key files and diffusers folders. */
#include "runtime/model.h"
#include "runtime/weights.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* hidden 32 is not in the DiT table, so heads come from metadata or the argument */
static const eb_config tiny = {.input_size = 8, .patch_size = 2, .in_channels = 4, .hidden_size = 32, .depth = 2,
                               .num_heads = 2, .num_classes = 10, .learn_sigma = 1};

static char scratch[64];

static void make_scratch(void) {
    snprintf(scratch, sizeof scratch, "/tmp/eb_w_XXXXXX");
    cr_assert_not_null(mkdtemp(scratch));
}

/* Removes the scratch tree (two levels: folder/transformer/files). */
static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    char path[512];
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (unlink(path) != 0) remove_tree(path);
    }
    closedir(d);
    rmdir(dir);
}

static void remove_scratch(void) { remove_tree(scratch); }

static char *spath(const char *name) {
    static char paths[4][512];
    static int k;
    char *p = paths[k++ % 4];
    snprintf(p, 512, "%s/%s", scratch, name);
    return p;
}

TestSuite(weights, .init = make_scratch, .fini = remove_scratch);

/* A model whose every parameter is a distinct pseudo-random value of varied magnitude. */
static eb_model *random_model(const eb_config *c, uint32_t seed) {
    eb_model *m;
    cr_assert_eq(eb_model_create(&m, c), EB_OK, "%s", eb_last_error());
    size_t n = eb_param_count(c);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        m->slab[i] = ((float)(seed >> 8) / 16777216.0f - 0.5f) * ldexpf(1.0f, (int)(seed % 13) - 8);
    }
    return m;
}

static void expect_status(eb_status st, eb_status want, const char *a, const char *b) {
    const char *msg = eb_last_error();
    cr_assert_eq(st, want, "status %d: %s", st, msg);
    cr_assert(strstr(msg, a), "message lacks '%s': %s", a, msg);
    if (b) cr_assert(strstr(msg, b), "message lacks '%s': %s", b, msg);
}

static void expect_same_config(const eb_config *a, const eb_config *b) {
    cr_assert(a->input_size == b->input_size && a->patch_size == b->patch_size && a->in_channels == b->in_channels &&
                  a->hidden_size == b->hidden_size && a->depth == b->depth && a->num_heads == b->num_heads &&
                  a->num_classes == b->num_classes && a->learn_sigma == b->learn_sigma,
              "configs differ: input %d/%d patch %d/%d C %d/%d D %d/%d L %d/%d heads %d/%d K %d/%d sigma %d/%d",
              a->input_size, b->input_size, a->patch_size, b->patch_size, a->in_channels, b->in_channels,
              a->hidden_size, b->hidden_size, a->depth, b->depth, a->num_heads, b->num_heads, a->num_classes,
              b->num_classes, a->learn_sigma, b->learn_sigma);
}

static void expect_same_params(const eb_model *a, const eb_model *b) {
    expect_same_config(eb_model_config(a), eb_model_config(b));
    size_t n = eb_param_count(eb_model_config(a));
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(memcmp(&a->slab[i], &b->slab[i], 4), 0, "parameter %zu: %a vs %a", i, (double)a->slab[i],
                     (double)b->slab[i]);
}

Test(weights, save_load_f32_bit_exact) {
    eb_model *m = random_model(&tiny, 1), *back;
    eb_st_meta extra[] = {{"recipe", "fmnist"}, {"step", "42"}};
    const char *path = spath("m.safetensors");
    cr_assert_eq(eb_model_save(m, path, extra, 2, EB_DT_F32), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_model_load(&back, path, 0), EB_OK, "%s", eb_last_error());
    expect_same_params(m, back);

    eb_st_file *f;
    cr_assert_eq(eb_st_open(&f, path), EB_OK);
    cr_assert_str_eq(eb_st_metadata(f, "recipe"), "fmnist");
    cr_assert_str_eq(eb_st_metadata(f, "step"), "42");
    cr_assert_str_eq(eb_st_metadata(f, "learn_sigma"), "true");
    cr_assert_str_eq(eb_st_metadata(f, "num_heads"), "2");
    cr_assert_not_null(eb_st_find(f, "pos_embed"), "official checkpoints carry pos_embed");
    cr_assert_not_null(eb_st_find(f, "blocks.1.attn.qkv.weight"));
    eb_st_close(f);

    eb_model *four;
    cr_assert_eq(eb_model_load(&four, path, 4), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_model_config(four)->num_heads, 4, "an explicit heads argument overrides the metadata");
    eb_st_meta clash = {"depth", "3"};
    expect_status(eb_model_save(m, path, &clash, 1, EB_DT_F32), EB_EINPUT, "'depth'", NULL);
    eb_model_free(four), eb_model_free(back), eb_model_free(m);
}

Test(weights, save_load_half_rounds_to_nearest_even) {
    eb_model *m = random_model(&tiny, 2);
    eb_dtype types[2] = {EB_DT_F16, EB_DT_BF16};
    for (int k = 0; k < 2; k++) {
        eb_model *back;
        const char *path = spath(k ? "bf16.safetensors" : "f16.safetensors");
        cr_assert_eq(eb_model_save(m, path, NULL, 0, types[k]), EB_OK, "%s", eb_last_error());
        cr_assert_eq(eb_model_load(&back, path, 0), EB_OK, "%s", eb_last_error());
        size_t n = eb_param_count(&tiny), inexact = 0;
        for (size_t i = 0; i < n; i++) {
            float want = k ? eb_bf16_to_f32(eb_f32_to_bf16(m->slab[i])) : eb_f16_to_f32(eb_f32_to_f16(m->slab[i]));
            cr_assert_eq(back->slab[i], want, "%s parameter %zu", eb_dtype_name(types[k]), i);
            inexact += want != m->slab[i];
        }
        cr_assert_gt(inexact, n / 2, "the values must actually have been rounded");
        eb_model_free(back);
    }
    eb_model_free(m);
}

/* Rewrites official file `src` into `dst` through `edit` (which may drop,
 * rename, reshape or add tensors); metadata kept when keep_meta. */
typedef void (*edit_fn)(eb_st_entry *t, int *n, float **data);

static void rewrite(const char *src, const char *dst, edit_fn edit, int keep_meta) {
    eb_st_file *f;
    cr_assert_eq(eb_st_open(&f, src), EB_OK, "%s", eb_last_error());
    int n = eb_st_count(f);
    eb_st_entry *t = calloc(n + 1, sizeof *t);
    float **data = calloc(n + 1, sizeof *data);
    for (int i = 0; i < n; i++) {
        const eb_st_tensor *s = eb_st_tensor_at(f, i);
        data[i] = malloc((s->numel + 1) * sizeof(float));
        cr_assert_eq(eb_st_read_f32(f, s, data[i], s->numel), EB_OK);
        t[i] = (eb_st_entry){s->name, EB_DT_F32, s->rank, {0}, data[i]};
        memcpy(t[i].shape, s->shape, sizeof t[i].shape);
    }
    if (edit) edit(t, &n, data);
    static const char *keys[] = {"input_size", "patch_size", "in_channels", "hidden_size",
                                 "depth",      "num_heads",  "num_classes", "learn_sigma"};
    eb_st_meta meta[8];
    for (int k = 0; k < 8; k++) meta[k] = (eb_st_meta){keys[k], eb_st_metadata(f, keys[k])};
    cr_assert_eq(eb_st_write(dst, t, n, meta, keep_meta ? 8 : 0), EB_OK, "%s", eb_last_error());
    for (int i = 0; i < eb_st_count(f) + 1; i++) free(data[i]);
    free(data), free(t);
    eb_st_close(f);
}

static int find_entry(eb_st_entry *t, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(t[i].name, name)) return i;
    cr_assert_fail("no tensor %s", name);
    return -1;
}

static void drop_fc2_bias(eb_st_entry *t, int *n, float **data) {
    int i = find_entry(t, *n, "blocks.1.mlp.fc2.bias");
    t[i] = t[--*n];
}
static void shrink_proj(eb_st_entry *t, int *n, float **data) { t[find_entry(t, *n, "blocks.0.attn.proj.weight")].shape[1] = 16; }
static void add_extra(eb_st_entry *t, int *n, float **data) {
    t[*n] = t[find_entry(t, *n, "x_embedder.proj.bias")];
    t[(*n)++].name = "blocks.0.attn.extra";
}
static void nan_weight(eb_st_entry *t, int *n, float **data) { data[find_entry(t, *n, "t_embedder.mlp.2.weight")][7] = NAN; }
static void inf_weight(eb_st_entry *t, int *n, float **data) { data[find_entry(t, *n, "y_embedder.embedding_table.weight")][300] = -INFINITY; }
static void move_pos_embed(eb_st_entry *t, int *n, float **data) { data[find_entry(t, *n, "pos_embed")][5] += 1e-3f; }
static void nan_pos_embed(eb_st_entry *t, int *n, float **data) { data[find_entry(t, *n, "pos_embed")][9] = NAN; }
static void drop_pos_embed(eb_st_entry *t, int *n, float **data) {
    int i = find_entry(t, *n, "pos_embed");
    t[i] = t[--*n];
}

Test(weights, bad_official_files_rejected) {
    eb_model *m = random_model(&tiny, 3), *back = (eb_model *)1;
    const char *good = spath("good.safetensors"), *bad = spath("bad.safetensors");
    cr_assert_eq(eb_model_save(m, good, NULL, 0, EB_DT_F32), EB_OK, "%s", eb_last_error());
    const struct { edit_fn edit; const char *key, *problem; } cases[] = {
        {drop_fc2_bias, "'blocks.1.mlp.fc2.bias'", "missing"},
        {shrink_proj, "'blocks.0.attn.proj.weight'", "shape [32, 16], expected [32, 32]"},
        {add_extra, "'blocks.0.attn.extra'", "unexpected"},
        {nan_weight, "'t_embedder.mlp.2.weight'", "index 7"},
        {inf_weight, "'y_embedder.embedding_table.weight'", "index 300"},
        {nan_pos_embed, "'pos_embed'", "index 9"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rewrite(good, bad, cases[i].edit, 1);
        expect_status(eb_model_load(&back, bad, 0), EB_EINPUT, cases[i].key, cases[i].problem);
        cr_assert_null(back, "case %zu: no model on failure", i);
        cr_assert(strstr(eb_last_error(), "bad.safetensors"), "%s", eb_last_error());
    }
    expect_status(eb_model_load(&back, spath("absent.safetensors"), 0), EB_EINPUT, "absent.safetensors", NULL);
    eb_model_free(m);
}

/* The model uses a stored pos_embed as the official load_state_dict does (a
 * rounded one included), warns when it is not the sin-cos table within the
 * storage precision, and computes the table only when the file has none. */
Test(weights, stored_pos_embed_is_used) {
    const size_t TD = (size_t)eb_tokens(&tiny) * tiny.hidden_size;
    float *table = malloc(TD * sizeof(float));
    eb_pos_embed(table, tiny.hidden_size, eb_grid(&tiny));
    eb_model *m = random_model(&tiny, 6), *back;
    const char *good = spath("good.safetensors"), *moved = spath("moved.safetensors"),
               *resaved = spath("resaved.safetensors");
    cr_assert_eq(eb_model_save(m, good, NULL, 0, EB_DT_F32), EB_OK, "%s", eb_last_error());
    struct { edit_fn edit; float delta5; const char *warning; } cases[] = {
        {NULL, 0, ""}, {move_pos_embed, 1e-3f, "'pos_embed' differs"}, {drop_pos_embed, 0, ""}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        rewrite(good, moved, cases[k].edit, 1);
        cr_assert_eq(eb_model_load(&back, moved, 0), EB_OK, "case %zu: %s", k, eb_last_error());
        const char *w = eb_model_warning(back);
        if (*cases[k].warning) {
            cr_expect(strstr(w, cases[k].warning) && strstr(w, "flat index 5") && strstr(w, "moved.safetensors"),
                      "case %zu: %s", k, w);
        } else {
            cr_expect_str_eq(w, "", "case %zu", k);
        }
        for (size_t i = 0; i < TD; i++) {
            float want = i == 5 ? table[i] + cases[k].delta5 : table[i];
            cr_expect_eq(back->pos_embed[i], want, "case %zu: pos_embed[%zu] %g, want %g", k, i, back->pos_embed[i],
                         want);
        }
        /* saving keeps the model's own table: a round trip loses no stored edit */
        eb_model *again;
        cr_assert_eq(eb_model_save(back, resaved, NULL, 0, EB_DT_F32), EB_OK, "case %zu: %s", k, eb_last_error());
        cr_assert_eq(eb_model_load(&again, resaved, 0), EB_OK, "case %zu: %s", k, eb_last_error());
        cr_expect_arr_eq(again->pos_embed, back->pos_embed, TD * sizeof(float), "case %zu: saved pos_embed", k);
        cr_expect_eq(*eb_model_warning(again) != 0, *w != 0, "case %zu: the saved table warns as the loaded one", k);
        eb_model_free(again);
        eb_model_free(back);
    }
    eb_model_free(m);
    free(table);
    /* the golden F16 / BF16 files: their rounded tables, within the rounding, so no warning */
    const eb_config sigma = {.input_size = 8, .patch_size = 2, .in_channels = 4, .hidden_size = 64};
    const size_t n = (size_t)eb_tokens(&sigma) * sigma.hidden_size;
    table = malloc(n * sizeof(float));
    eb_pos_embed(table, sigma.hidden_size, eb_grid(&sigma));
    const char *files[] = {"tests/golden/models/tiny_sigma_f16.safetensors", "tests/golden/models/tiny_sigma_bf16.safetensors"};
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(eb_model_load(&back, files[k], 0), EB_OK, "%s", eb_last_error());
        cr_expect_str_eq(eb_model_warning(back), "", "%s", files[k]);
        size_t rounded = 0;
        for (size_t i = 0; i < n; i++) {
            float want = k ? eb_bf16_to_f32(eb_f32_to_bf16(table[i])) : eb_f16_to_f32(eb_f32_to_f16(table[i]));
            cr_expect_eq(back->pos_embed[i], want, "%s: pos_embed[%zu]", files[k], i);
            rounded += want != table[i];
        }
        cr_expect_gt(rounded, n / 2, "%s: the stored table is the rounded one", files[k]);
        eb_model_free(back);
    }
    free(table);
}

Test(weights, config_inferred_without_metadata) {
    eb_config c = tiny;
    c.learn_sigma = 0;
    c.num_classes = 3;
    eb_model *m = random_model(&c, 4), *back;
    const char *good = spath("good.safetensors"), *bare = spath("bare.safetensors");
    cr_assert_eq(eb_model_save(m, good, NULL, 0, EB_DT_F32), EB_OK, "%s", eb_last_error());
    rewrite(good, bare, NULL, 0);
    cr_assert_eq(eb_model_load(&back, bare, 2), EB_OK, "%s", eb_last_error());
    expect_same_params(m, back);
    eb_model_free(back);
    /* hidden 32 is not in the DiT table: the heads must be given */
    expect_status(eb_model_load(&back, bare, 0), EB_EINPUT, "bare.safetensors", "heads");
    /* without pos_embed nothing tells the input size */
    rewrite(good, bare, drop_pos_embed, 0);
    expect_status(eb_model_load(&back, bare, 2), EB_EINPUT, "input_size", "__metadata__");
    eb_model_free(m);
}

Test(weights, heads_from_dit_table) {
    eb_config c = {.input_size = 4, .patch_size = 2, .in_channels = 1, .hidden_size = 384, .depth = 1,
                   .num_heads = 6, .num_classes = 2, .learn_sigma = 1};
    eb_model *m = random_model(&c, 5), *back;
    const char *good = spath("s.safetensors"), *bare = spath("bare.safetensors");
    cr_assert_eq(eb_model_save(m, good, NULL, 0, EB_DT_F32), EB_OK, "%s", eb_last_error());
    rewrite(good, bare, NULL, 0);
    cr_assert_eq(eb_model_load(&back, bare, 0), EB_OK, "%s", eb_last_error());
    expect_same_config(&c, eb_model_config(back));
    eb_model_free(back), eb_model_free(m);
}

/* ------------------------------------------------------------------------ */
/* Diffusers: the test converts an official model on its own (names written
 * out here, not taken from the loader's table). */

static void write_text(const char *path, const char *text) {
    FILE *fp = fopen(path, "w");
    cr_assert_not_null(fp);
    fputs(text, fp);
    fclose(fp);
}

typedef struct {
    eb_st_entry *t;
    char (*names)[128];
    int n;
} entry_list;

#define DIMS(...) ((const int64_t[]){__VA_ARGS__})

/* Appends tensor `fmt` (formatted with `block`) of the given shape. */
static void add(entry_list *e, const float *data, int rank, const int64_t *dims, const char *fmt, int block) {
    snprintf(e->names[e->n], 128, fmt, block);
    e->t[e->n] = (eb_st_entry){e->names[e->n], EB_DT_F32, rank, {0}, data};
    memcpy(e->t[e->n].shape, dims, rank * sizeof *dims);
    e->n++;
}

/* Writes folder/transformer/{config.json, diffusion_pytorch_model.safetensors}
 * for model m; when tamper_block > 0 that block's class table differs in one value. */
static void write_diffusers(const char *folder, const eb_model *m, int tamper_block) {
    const eb_config *c = eb_model_config(m);
    const eb_params *p = &m->p;
    size_t D = c->hidden_size, L = c->depth, out = (size_t)c->patch_size * c->patch_size * eb_out_channels(c);
    char dir[512], path[600], json[1024];
    cr_assert_eq(mkdir(folder, 0755), 0);
    snprintf(dir, sizeof dir, "%s/transformer", folder);
    cr_assert_eq(mkdir(dir, 0755), 0);
    snprintf(json, sizeof json,
             "{\"_class_name\": \"DiTTransformer2DModel\", \"activation_fn\": \"gelu-approximate\", "
             "\"attention_bias\": true, \"attention_head_dim\": %d, \"dropout\": 0.0, \"in_channels\": %d, "
             "\"norm_type\": \"ada_norm_zero\", \"num_attention_heads\": %d, \"num_embeds_ada_norm\": %d, "
             "\"num_layers\": %d, \"out_channels\": %d, \"patch_size\": %d, \"sample_size\": %d, "
             "\"cross_attention_dim\": null, \"upcast_attention\": false, \"nested\": {\"a\": [1, 2.5e-1]}}\n",
             c->hidden_size / c->num_heads, c->in_channels, c->num_heads, c->num_classes, c->depth,
             eb_out_channels(c), c->patch_size, c->input_size);
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_text(path, json);

    size_t cap = 6 + 19 * L; /* 6 shared tensors, 19 per block */
    entry_list e = {calloc(cap, sizeof(eb_st_entry)), calloc(cap, 128), 0};
    float *tampered = malloc((c->num_classes + 1) * D * sizeof(float));
    add(&e, p->x_embed_w, 4, DIMS(D, c->in_channels, c->patch_size, c->patch_size), "pos_embed.proj.weight", 0);
    add(&e, p->x_embed_b, 1, DIMS(D), "pos_embed.proj.bias", 0);
    for (int l = 0; l < (int)L; l++) {
        const float *table = p->y_table;
        if (l == tamper_block) {
            memcpy(tampered, p->y_table, (c->num_classes + 1) * D * sizeof(float));
            tampered[D + 3] += 1.0f;
            table = tampered;
        }
        add(&e, p->t_fc1_w, 2, DIMS(D, 256), "transformer_blocks.%d.norm1.emb.timestep_embedder.linear_1.weight", l);
        add(&e, p->t_fc1_b, 1, DIMS(D), "transformer_blocks.%d.norm1.emb.timestep_embedder.linear_1.bias", l);
        add(&e, p->t_fc2_w, 2, DIMS(D, D), "transformer_blocks.%d.norm1.emb.timestep_embedder.linear_2.weight", l);
        add(&e, p->t_fc2_b, 1, DIMS(D), "transformer_blocks.%d.norm1.emb.timestep_embedder.linear_2.bias", l);
        add(&e, table, 2, DIMS(c->num_classes + 1, D),
            "transformer_blocks.%d.norm1.emb.class_embedder.embedding_table.weight", l);
        add(&e, p->adaln_w + l * 6 * D * D, 2, DIMS(6 * D, D), "transformer_blocks.%d.norm1.linear.weight", l);
        add(&e, p->adaln_b + l * 6 * D, 1, DIMS(6 * D), "transformer_blocks.%d.norm1.linear.bias", l);
        /* official qkv rows: q, then k, then v */
        add(&e, p->qkv_w + (3 * l + 0) * D * D, 2, DIMS(D, D), "transformer_blocks.%d.attn1.to_q.weight", l);
        add(&e, p->qkv_w + (3 * l + 1) * D * D, 2, DIMS(D, D), "transformer_blocks.%d.attn1.to_k.weight", l);
        add(&e, p->qkv_w + (3 * l + 2) * D * D, 2, DIMS(D, D), "transformer_blocks.%d.attn1.to_v.weight", l);
        add(&e, p->qkv_b + (3 * l + 0) * D, 1, DIMS(D), "transformer_blocks.%d.attn1.to_q.bias", l);
        add(&e, p->qkv_b + (3 * l + 1) * D, 1, DIMS(D), "transformer_blocks.%d.attn1.to_k.bias", l);
        add(&e, p->qkv_b + (3 * l + 2) * D, 1, DIMS(D), "transformer_blocks.%d.attn1.to_v.bias", l);
        add(&e, p->proj_w + l * D * D, 2, DIMS(D, D), "transformer_blocks.%d.attn1.to_out.0.weight", l);
        add(&e, p->proj_b + l * D, 1, DIMS(D), "transformer_blocks.%d.attn1.to_out.0.bias", l);
        add(&e, p->fc1_w + l * 4 * D * D, 2, DIMS(4 * D, D), "transformer_blocks.%d.ff.net.0.proj.weight", l);
        add(&e, p->fc1_b + l * 4 * D, 1, DIMS(4 * D), "transformer_blocks.%d.ff.net.0.proj.bias", l);
        add(&e, p->fc2_w + l * 4 * D * D, 2, DIMS(D, 4 * D), "transformer_blocks.%d.ff.net.2.weight", l);
        add(&e, p->fc2_b + l * D, 1, DIMS(D), "transformer_blocks.%d.ff.net.2.bias", l);
    }
    add(&e, p->final_adaln_w, 2, DIMS(2 * D, D), "proj_out_1.weight", 0);
    add(&e, p->final_adaln_b, 1, DIMS(2 * D), "proj_out_1.bias", 0);
    add(&e, p->final_w, 2, DIMS(out, D), "proj_out_2.weight", 0);
    add(&e, p->final_b, 1, DIMS(out), "proj_out_2.bias", 0);
    cr_assert_eq((size_t)e.n, cap);
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", dir);
    cr_assert_eq(eb_st_write(path, e.t, e.n, NULL, 0), EB_OK, "%s", eb_last_error());
    free(e.t), free(e.names), free(tampered);
}

Test(weights, diffusers_folder_matches_official) {
    eb_model *m = random_model(&tiny, 6), *back;
    const char *folder = spath("pipeline");
    write_diffusers(folder, m, -1);
    cr_assert_eq(eb_model_load(&back, folder, 0), EB_OK, "%s", eb_last_error());
    expect_same_params(m, back);
    eb_model_free(back);
    char transformer[600];
    snprintf(transformer, sizeof transformer, "%s/transformer", folder);
    cr_assert_eq(eb_model_load(&back, transformer, 0), EB_OK, "%s", eb_last_error());
    expect_same_params(m, back);
    eb_model_free(back);

    const char *bad = spath("tampered");
    write_diffusers(bad, m, 1);
    expect_status(eb_model_load(&back, bad, 0), EB_EINPUT,
                  "'transformer_blocks.1.norm1.emb.class_embedder.embedding_table.weight'", "differs");
    cr_assert_null(back);
    expect_status(eb_model_load(&back, scratch, 0), EB_EINPUT, "config.json", NULL);
    eb_model_free(m);
}

/* The reference helper's conversion, when its goldens exist: every parameter
 * of the diffusers folder equals the official file's. */
Test(weights, golden_diffusers_matches_official) {
    struct stat sb;
    if (stat("tests/golden/models/tiny_diffusers", &sb) != 0 || stat("tests/golden/models/tiny_sigma.safetensors", &sb))
        cr_skip_test("tests/golden/models/tiny_diffusers not generated yet (make goldens)");
    eb_model *a, *b;
    cr_assert_eq(eb_model_load(&a, "tests/golden/models/tiny_sigma.safetensors", 0), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_model_load(&b, "tests/golden/models/tiny_diffusers", 0), EB_OK, "%s", eb_last_error());
    expect_same_params(a, b);
    eb_model_free(a), eb_model_free(b);
}
