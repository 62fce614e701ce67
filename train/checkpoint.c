/* checkpoint.c — training checkpoints, the EMA export, and the training loop
 * that writes them (progress line, CSV log, stop on a signal). */
#include "train/trainer.h"
#include "runtime/clock.h"

#include "train/meta.h"

#include "runtime/check.h"
#include "runtime/safetensors.h"
#include "runtime/weights.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CKPT_FORMAT "ebcache-train-1"
#define KEY_LEN 96

/* The slabs a checkpoint holds, by tensor-name prefix. */
static const char *const slab_prefix[4] = {"params", "ema", "adam_m", "adam_v"};

static float *slab_of(const eb_trainer *tr, int s) {
    float *slabs[4] = {tr->model->slab, tr->ema, tr->adam_m, tr->adam_v};
    return slabs[s];
}

/* ------------------------------------------------------------------------ */
/* Metadata                                                                  */

/* A checkpoint's configuration keys. */
static const eb_meta_field config_keys[] = {
    EB_META_INT_FIELD(eb_config, input_size, 1, 4096),
    EB_META_INT_FIELD(eb_config, patch_size, 1, 64),
    EB_META_INT_FIELD(eb_config, in_channels, 1, 256),
    EB_META_INT_FIELD(eb_config, hidden_size, 1, 16384),
    EB_META_INT_FIELD(eb_config, depth, 1, 256),
    EB_META_INT_FIELD(eb_config, num_heads, 1, 1024),
    EB_META_INT_FIELD(eb_config, num_classes, 1, 1000000),
    EB_META_FIELD(eb_config, learn_sigma, EB_META_BOOL),
};

/* The recipe's keys (checkpoints and the EMA export). */
static const eb_meta_field recipe_keys[] = {
    EB_META_INT_FIELD(eb_recipe, batch, 1, 1 << 20),
    EB_META_INT_FIELD(eb_recipe, warmup_steps, 0, INT32_MAX),
    EB_META_FIELD(eb_recipe, lr, EB_META_DOUBLE),
    EB_META_FIELD(eb_recipe, weight_decay, EB_META_DOUBLE),
    EB_META_FIELD(eb_recipe, beta1, EB_META_DOUBLE),
    EB_META_FIELD(eb_recipe, beta2, EB_META_DOUBLE),
    EB_META_FIELD(eb_recipe, adam_eps, EB_META_DOUBLE),
    EB_META_FIELD(eb_recipe, grad_clip, EB_META_DOUBLE),
    EB_META_FIELD(eb_recipe, ema_decay, EB_META_DOUBLE),
    EB_META_FIELD(eb_recipe, class_dropout, EB_META_DOUBLE),
    EB_META_FIELD(eb_recipe, seed, EB_META_U64),
};

/* The recipe and progress keys (shared by checkpoints and the EMA export). */
static void meta_recipe(eb_meta_list *m, const eb_trainer *tr) {
    eb_meta_add(m, "step", "%" PRId64, tr->step);
    eb_meta_add(m, "data_n", "%d", tr->data_n);
    eb_meta_add_fields(m, &tr->recipe, recipe_keys, EB_META_COUNT(recipe_keys));
}

/* ------------------------------------------------------------------------ */
/* Save, load, export                                                        */

/* Tensors in a slab once the block stacks are split into official per-block keys. */
static int count_slices(const eb_config *c) {
    int n = 0;
    for (int i = 0; i < EB_NUM_PARAM_TENSORS; i++) n += eb_param_table[i].per_block ? c->depth : 1;
    return n;
}

/* The official key of tensor i's slice for block l, and its element count. */
static size_t slice_key(char key[KEY_LEN], int i, int l, const eb_config *c) {
    snprintf(key, KEY_LEN, eb_param_table[i].fmt, l);
    int64_t dims[4];
    int rank = eb_param_shape(i, c, dims);
    size_t n = 1;
    for (int r = 0; r < rank; r++) n *= (size_t)dims[r];
    return n;
}

eb_status eb_trainer_save(const eb_trainer *tr, const char *path) {
    const eb_config *c = &tr->model->cfg;
    int per_slab = count_slices(c), n = 4 * per_slab;
    eb_st_entry *entries = calloc((size_t)n, sizeof *entries);
    char (*names)[KEY_LEN + 8] = calloc((size_t)n, KEY_LEN + 8);
    if (!entries || !names) {
        free(entries);
        free(names);
        return eb_fail(EB_ERUNTIME, "%s: out of memory", path);
    }
    int e = 0;
    for (int s = 0; s < 4; s++) {
        const float *at = slab_of(tr, s);
        for (int i = 0; i < EB_NUM_PARAM_TENSORS; i++)
            for (int l = 0; l < (eb_param_table[i].per_block ? c->depth : 1); l++, e++) {
                char key[KEY_LEN];
                size_t numel = slice_key(key, i, l, c);
                snprintf(names[e], KEY_LEN + 8, "%s.%s", slab_prefix[s], key);
                entries[e] = (eb_st_entry){.name = names[e], .dtype = EB_DT_F32, .data = at};
                entries[e].rank = eb_param_shape(i, c, entries[e].shape);
                at += numel;
            }
    }
    eb_meta_list m = {.n = 0};
    eb_meta_add(&m, "format", "%s", CKPT_FORMAT);
    eb_meta_add_fields(&m, c, config_keys, EB_META_COUNT(config_keys));
    meta_recipe(&m, tr);
    eb_status st = eb_meta_check(&m, path);
    if (!st) st = eb_st_write(path, entries, n, m.pairs, m.n);
    free(entries);
    free(names);
    return st;
}

/* Reads the configuration and recipe of an open checkpoint. */
static eb_status read_header(const eb_st_file *f, eb_config *c, eb_recipe *r, int *data_n, int64_t *step) {
    eb_status st = eb_meta_check_format(f, CKPT_FORMAT, "an ebcache training checkpoint");
    if (!st) st = eb_meta_read_fields(f, c, config_keys, EB_META_COUNT(config_keys));
    if (!st) st = eb_meta_read_fields(f, r, recipe_keys, EB_META_COUNT(recipe_keys));
    if (!st) st = eb_meta_int(f, "data_n", 1, INT32_MAX, data_n);
    if (!st) st = eb_meta_int64(f, "step", 0, INT64_MAX / 2, step);
    if (!st) st = eb_config_validate(c);
    return st;
}

eb_status eb_trainer_load(eb_trainer **out, const char *path) {
    *out = NULL;
    eb_st_file *f;
    eb_status st = eb_st_open(&f, path);
    if (st) return st;
    eb_config c;
    eb_recipe r;
    int data_n;
    int64_t step;
    eb_trainer *tr = NULL;
    st = read_header(f, &c, &r, &data_n, &step);
    if (!st) st = eb_trainer_create(&tr, &c, &r, data_n);
    for (int s = 0; s < 4 && !st; s++) {
        float *at = slab_of(tr, s);
        for (int i = 0; i < EB_NUM_PARAM_TENSORS && !st; i++)
            for (int l = 0; l < (eb_param_table[i].per_block ? c.depth : 1) && !st; l++) {
                char key[KEY_LEN], name[KEY_LEN + 8];
                size_t numel = slice_key(key, i, l, &c);
                snprintf(name, sizeof name, "%s.%s", slab_prefix[s], key);
                const eb_st_tensor *t = eb_st_find(f, name);
                int64_t dims[4];
                int rank = eb_param_shape(i, &c, dims);
                if (!t) {
                    st = eb_fail(EB_EINPUT, "%s: checkpoint lacks tensor '%s'", path, name);
                    break;
                }
                int same = t->rank == rank && t->dtype == EB_DT_F32;
                for (int k = 0; same && k < rank; k++) same = t->shape[k] == dims[k];
                if (!same) {
                    st = eb_fail(EB_EINPUT, "%s: tensor '%s' is not F32 of the configuration's shape", path, name);
                    break;
                }
                st = eb_st_read_f32(f, t, at, numel);
                if (!st) {
                    char what[KEY_LEN + 64];
                    snprintf(what, sizeof what, "%s: tensor '%s'", path, name);
                    st = eb_check_finite(at, dims, rank, EB_EINPUT, what);
                }
                at += numel;
            }
    }
    eb_st_close(f);
    if (st) {
        eb_trainer_free(tr);
        return st;
    }
    tr->step = step;
    *out = tr;
    return EB_OK;
}

eb_status eb_trainer_export_ema(const eb_trainer *tr, const char *path) {
    eb_meta_list m = {.n = 0};
    eb_meta_add(&m, "producer", "ebcache train (EMA weights)");
    meta_recipe(&m, tr);
    eb_status st = eb_meta_check(&m, path);
    return st ? st : eb_weights_save(&tr->model->cfg, tr->ema, path, m.pairs, m.n, EB_DT_F32);
}

/* ------------------------------------------------------------------------ */
/* The training loop                                                         */

/* Loss terms summed over the steps since the last log row. */
typedef struct {
    double loss, mse, vb, t0;
    int steps;
} log_window;

static eb_status check_data(const eb_trainer *tr, const eb_fmnist *data) {
    const eb_config *c = &tr->model->cfg;
    if (data->n != tr->data_n)
        return eb_fail(EB_EINPUT, "the dataset has %d images but this run was set up for %d (data order)", data->n,
                       tr->data_n);
    if (c->in_channels != 1 || data->h != c->input_size || data->w != c->input_size)
        return eb_fail(EB_EINPUT, "images are 1x%dx%d but the model takes %dx%dx%d", data->h, data->w,
                       c->in_channels, c->input_size, c->input_size);
    for (int i = 0; i < data->n; i++)
        if (data->labels[i] < 0 || data->labels[i] >= c->num_classes)
            return eb_fail(EB_EINPUT, "label %d of image %d is outside the model's %d classes", data->labels[i], i,
                           c->num_classes);
    return EB_OK;
}

/* Opens the CSV log for appending, with its header when the file is new. */
static eb_status open_log(FILE **log, const char *path) {
    *log = fopen(path, "a");
    if (!*log) return eb_fail(EB_EINPUT, "%s: cannot open the training log: %s", path, strerror(errno));
    if (ftell(*log) == 0) fprintf(*log, "step,loss,mse,vb,lr,images_per_s\n");
    return EB_OK;
}

static void print_progress(const eb_trainer *tr, int64_t steps, double smooth_loss, double rate) {
    double eta = rate > 0 ? (double)(steps - tr->step) * tr->recipe.batch / rate : 0.0;
    fprintf(stderr, "\r\033[Kstep %" PRId64 "/%" PRId64 "  loss %.4f  %.1f img/s  ETA %dh%02dm", tr->step, steps,
            smooth_loss, rate, (int)(eta / 3600), (int)fmod(eta / 60, 60));
}

eb_status eb_train_run(eb_trainer *tr, const eb_fmnist *data, const eb_train_opts *o) {
    eb_status st = check_data(tr, data);
    if (st) return st;
    const int B = tr->recipe.batch, per = data->h * data->w;
    const int64_t batches_per_epoch = tr->data_n / B, first_step = tr->step;
    int *perm = malloc((size_t)tr->data_n * sizeof(int));
    if (!perm) return eb_fail(EB_ERUNTIME, "out of memory for the data order");
    FILE *log = NULL;
    if (o->log_path && (st = open_log(&log, o->log_path))) {
        free(perm);
        return st;
    }
    const int tty = o->progress && isatty(2);
    int64_t perm_epoch = -1;
    double smooth = NAN, t_start = eb_now_seconds(), t_print = 0.0;
    log_window w = {.t0 = t_start};
    eb_train_acts *a = &tr->a;
    while (tr->step < o->steps && !(o->stop && *o->stop)) {
        int64_t epoch = tr->step / batches_per_epoch, first = tr->step % batches_per_epoch * B;
        if (epoch != perm_epoch) {
            eb_train_permutation(perm, tr->data_n, tr->recipe.seed, epoch);
            perm_epoch = epoch;
        }
        for (int i = 0; i < B; i++) {
            int row = perm[first + i];
            memcpy(a->x0 + (size_t)i * per, data->images + (size_t)row * per, per * sizeof(float));
            a->labels[i] = data->labels[row];
        }
        eb_step_stats s;
        if ((st = eb_train_step(tr, a->x0, a->labels, &s))) break;
        smooth = isnan(smooth) ? s.terms.loss : 0.98 * smooth + 0.02 * s.terms.loss;
        w.loss += s.terms.loss;
        w.mse += s.terms.mse;
        w.vb += s.terms.vb;
        w.steps++;
        double t = eb_now_seconds();
        if (log && ((o->log_every > 0 && tr->step % o->log_every == 0) || tr->step == o->steps)) {
            fprintf(log, "%" PRId64 ",%.6f,%.6f,%.6f,%.6g,%.2f\n", tr->step, w.loss / w.steps, w.mse / w.steps,
                    w.vb / w.steps, s.lr, w.steps * B / (t - w.t0));
            fflush(log);
            w = (log_window){.t0 = t};
        }
        if (tty && t - t_print > 0.5) {
            print_progress(tr, o->steps, smooth, (tr->step - first_step) * B / (t - t_start));
            t_print = t;
        }
        if (o->ckpt_every > 0 && tr->step % o->ckpt_every == 0 && (st = eb_trainer_save(tr, o->ckpt_path))) break;
    }
    if (tty) fputc('\n', stderr);
    if (!st && o->ckpt_path) st = eb_trainer_save(tr, o->ckpt_path);
    if (log && fclose(log) && !st) st = eb_fail(EB_ERUNTIME, "%s: cannot write the training log", o->log_path);
    free(perm);
    return st;
}
