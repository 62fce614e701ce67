/* cmd_train.c — `ebcache train`: a class-conditional DiT on Fashion-MNIST, resumable. */
#include "cli/args.h"
#include "cli/commands.h"

#include "train/fmnist.h"
#include "train/trainer.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CMD "train"

/* The default model and recipe (docs/training.md "Default model"): 7×7 tokens
 * of 4×4 pixels, ~21 epochs in about 3 hours on 2 cores. */
#define DEFAULT_PATCH "4"
#define DEFAULT_HIDDEN "128"
#define DEFAULT_DEPTH "6"
#define DEFAULT_HEADS "4"
#define DEFAULT_BATCH "128"
#define DEFAULT_STEPS "15000"
#define DEFAULT_LR "3e-4"
#define DEFAULT_WARMUP "500"

static volatile sig_atomic_t stop_requested;

/* SIGINT / SIGTERM: finish the step, save, exit 0. A second signal kills (SA_RESETHAND). */
static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

static const char usage[] =
    "usage: ebcache train --out DIR [--config NAME | --input-size N --patch-size P --hidden D --depth L --heads H]\n"
    "                     [--batch B] [--lr X] [--steps N] [--seed K] [--resume CKPT] [--ckpt-every N]\n"
    "                     [--threads N] [--export-ema PATH] ...\n\n"
    "Trains a class-conditional DiT on the Fashion-MNIST training split with the official DiT\n"
    "objective (ε MSE + variational bound on the learned variance), AdamW and an EMA of the weights.\n"
    "Writes DIR/ckpt.safetensors (every --ckpt-every steps and at the end) and appends DIR/train_log.csv.\n"
    "--resume continues a checkpoint bit-identically; its model and recipe come from the checkpoint.\n"
    "SIGINT/SIGTERM finish the current step, save and exit 0.";

/* Model and recipe options: fixed by a checkpoint, refused with --resume. */
static const char *const setup_options[] = {"config", "input-size", "patch-size", "hidden", "depth", "heads",
                                            "learn-sigma", "batch", "lr", "weight-decay", "warmup", "grad-clip",
                                            "ema-decay", "class-dropout", "seed", "limit"};

/* Reads an integer option into *out when given; returns an exit status. */
static int opt_int(const eb_opt *opts, int n, const char *name, long min, long max, int *out) {
    const char *v = eb_arg(opts, n, name);
    long x;
    if (!v) return 0;
    int rc = eb_arg_int(CMD, name, v, min, max, &x);
    if (!rc) *out = (int)x;
    return rc;
}

static int opt_real(const eb_opt *opts, int n, const char *name, double min, double max, double *out) {
    const char *v = eb_arg(opts, n, name);
    if (!v) return 0;
    int rc = eb_arg_float(CMD, name, v, out);
    if (!rc && !(*out >= min && *out <= max)) {
        fprintf(stderr, "ebcache %s: --%s: %s is outside [%g, %g]\n", CMD, name, v, min, max);
        rc = 2;
    }
    return rc;
}

/* The configuration and recipe of a new run from the options. */
static int setup_new(const eb_opt *opts, int n, eb_config *c, eb_recipe *r, int *limit) {
    *c = (eb_config){.input_size = 28, .in_channels = 1, .num_classes = EB_FMNIST_CLASSES, .learn_sigma = 1};
    c->patch_size = atoi(DEFAULT_PATCH);
    c->hidden_size = atoi(DEFAULT_HIDDEN);
    c->depth = atoi(DEFAULT_DEPTH);
    c->num_heads = atoi(DEFAULT_HEADS);
    const char *named = eb_arg(opts, n, "config");
    if (named) { /* a DiT size ("S", or with its patch "S/4") on Fashion-MNIST's input */
        char full[64];
        eb_config table;
        snprintf(full, sizeof full, strchr(named, '/') ? "%s" : "%s/2", named);
        if (eb_config_named(&table, full)) return eb_report(CMD, EB_EINPUT);
        if (strchr(named, '/')) c->patch_size = table.patch_size;
        c->hidden_size = table.hidden_size;
        c->depth = table.depth;
        c->num_heads = table.num_heads;
    }
    *r = eb_recipe_default();
    r->batch = atoi(DEFAULT_BATCH);
    r->lr = atof(DEFAULT_LR);
    r->warmup_steps = atoi(DEFAULT_WARMUP);
    int rc = 0;
    struct { const char *name; long min, max; int *field; } ints[] = {
        {"input-size", 28, 256, &c->input_size}, {"patch-size", 1, 28, &c->patch_size},
        {"hidden", 4, 4096, &c->hidden_size}, {"depth", 1, 64, &c->depth}, {"heads", 1, 256, &c->num_heads},
        {"learn-sigma", 0, 1, &c->learn_sigma}, {"batch", 1, 65536, &r->batch},
        {"warmup", 0, 100000000, &r->warmup_steps}, {"limit", 0, 60000, limit},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0] && !rc; i++)
        rc = opt_int(opts, n, ints[i].name, ints[i].min, ints[i].max, ints[i].field);
    struct { const char *name; double min, max; double *field; } reals[] = {
        {"lr", 0, 1, &r->lr}, {"weight-decay", 0, 10, &r->weight_decay}, {"grad-clip", 0, 1e9, &r->grad_clip},
        {"ema-decay", 0, 1, &r->ema_decay}, {"class-dropout", 0, 1, &r->class_dropout},
    };
    for (size_t i = 0; i < sizeof reals / sizeof reals[0] && !rc; i++)
        rc = opt_real(opts, n, reals[i].name, reals[i].min, reals[i].max, reals[i].field);
    if (!rc && eb_arg(opts, n, "seed")) rc = eb_arg_u64(CMD, "seed", eb_arg(opts, n, "seed"), &r->seed);
    if (!rc && eb_config_validate(c)) rc = eb_report(CMD, EB_EINPUT);
    return rc;
}

/* Creates DIR when it does not exist (its parent must). */
static int make_out_dir(const char *dir) {
    struct stat sb;
    if (stat(dir, &sb) == 0) {
        if (S_ISDIR(sb.st_mode)) return 0;
        fprintf(stderr, "ebcache %s: --out %s exists and is not a directory\n", CMD, dir);
        return 2;
    }
    if (mkdir(dir, 0777) != 0) {
        fprintf(stderr, "ebcache %s: --out %s: cannot create the directory: %s\n", CMD, dir, strerror(errno));
        return 2;
    }
    return 0;
}

int cmd_train(int argc, char **argv) {
    eb_opt opts[] = {
        {"out", "DIR", "output folder: ckpt.safetensors and train_log.csv (required)", NULL},
        {"config", "NAME", "a DiT size (S, B, L, XL; S/4 also sets the patch) for hidden, depth and heads", NULL},
        {"input-size", "N", "image side, Fashion-MNIST padded to N (default 28)", NULL},
        {"patch-size", "P", "patch side (default " DEFAULT_PATCH ")", NULL},
        {"hidden", "D", "hidden size (default " DEFAULT_HIDDEN ")", NULL},
        {"depth", "L", "DiT blocks (default " DEFAULT_DEPTH ")", NULL},
        {"heads", "H", "attention heads (default " DEFAULT_HEADS ")", NULL},
        {"learn-sigma", "0|1", "learn the variance with the VB term (default 1)", NULL},
        {"batch", "B", "images per step (default " DEFAULT_BATCH ")", NULL},
        {"lr", "X", "AdamW learning rate (default " DEFAULT_LR "; the official recipe: 1e-4)", NULL},
        {"weight-decay", "X", "AdamW decoupled weight decay (default 0)", NULL},
        {"warmup", "N", "linear learning-rate warm-up steps (default " DEFAULT_WARMUP "; official: 0)", NULL},
        {"grad-clip", "X", "clip the global gradient norm to X (default 0: off)", NULL},
        {"ema-decay", "X", "EMA decay maximum (default 0.9999; warm-up (1+s)/(10+s))", NULL},
        {"class-dropout", "X", "probability of the null label (default 0.1)", NULL},
        {"seed", "K", "seeds initialisation, data order and noise (default 0)", NULL},
        {"steps", "N", "train until this many steps in total (default " DEFAULT_STEPS ")", NULL},
        {"resume", "CKPT", "continue a checkpoint (model and recipe come from it)", NULL},
        {"ckpt-every", "N", "save the checkpoint every N steps (default 1000; 0: only at the end)", NULL},
        {"log-every", "N", "steps per row of train_log.csv (default 100)", NULL},
        {"threads", "N", "threads (default: all cores)", NULL},
        {"export-ema", "PATH", "at the end, write the EMA weights as an inference .safetensors", NULL},
        {"data", "DIR", "Fashion-MNIST folder (default $EBCACHE_FMNIST_DIR or " EB_FMNIST_DEFAULT_DIR ")", NULL},
        {"limit", "N", "train on the first N images only (default: all 60000)", NULL},
    };
    const int n = sizeof opts / sizeof opts[0];
    int rc = eb_args_parse(argc, argv, opts, n, usage);
    if (rc) return rc < 0 ? 0 : rc;
    const char *out_dir = eb_arg(opts, n, "out"), *resume = eb_arg(opts, n, "resume");
    if (!out_dir) {
        fprintf(stderr, "ebcache %s: --out DIR is required (see --help)\n", CMD);
        return 2;
    }
    char ckpt_path[4096], log_path[4096];
    snprintf(ckpt_path, sizeof ckpt_path, "%s/ckpt.safetensors", out_dir);
    if ((rc = eb_output_dir_check(CMD, out_dir, EB_INPUTS(resume))) ||
        (rc = eb_output_check(CMD, eb_arg(opts, n, "export-ema"), EB_INPUTS(resume, ckpt_path))))
        return rc;
    snprintf(log_path, sizeof log_path, "%s/train_log.csv", out_dir);
    if (resume)
        for (size_t i = 0; i < sizeof setup_options / sizeof setup_options[0]; i++)
            if (eb_arg(opts, n, setup_options[i])) {
                fprintf(stderr, "ebcache %s: --%s cannot be combined with --resume: the checkpoint fixes the model "
                                "and the recipe\n", CMD, setup_options[i]);
                return 2;
            }
    long steps, ckpt_every = 1000, log_every = 100, threads = 0;
    if ((rc = eb_arg_int(CMD, "steps", eb_arg(opts, n, "steps") ? eb_arg(opts, n, "steps") : DEFAULT_STEPS, 0,
                         1L << 40, &steps)))
        return rc;
    if (eb_arg(opts, n, "ckpt-every") &&
        (rc = eb_arg_int(CMD, "ckpt-every", eb_arg(opts, n, "ckpt-every"), 0, 2147483647, &ckpt_every)))
        return rc;
    if (eb_arg(opts, n, "log-every") &&
        (rc = eb_arg_int(CMD, "log-every", eb_arg(opts, n, "log-every"), 1, 2147483647, &log_every)))
        return rc;
    if (eb_arg(opts, n, "threads") && (rc = eb_arg_int(CMD, "threads", eb_arg(opts, n, "threads"), 1, 1024, &threads)))
        return rc;
    eb_config cfg;
    eb_recipe recipe;
    int limit = 0;
    if (!resume && (rc = setup_new(opts, n, &cfg, &recipe, &limit))) return rc;
    if ((rc = make_out_dir(out_dir))) return rc;
    eb_set_threads((int)threads);

    eb_trainer *tr = NULL;
    eb_fmnist data = {0};
    eb_status st = EB_OK;
    if (resume) {
        st = eb_trainer_load(&tr, resume);
        /* The checkpoint's data_n is the image count it trained on (all, or a --limit). */
        if (!st) limit = tr->data_n == 60000 ? 0 : tr->data_n;
    }
    const eb_config *c = tr ? &tr->model->cfg : &cfg;
    const char *data_dir = eb_arg(opts, n, "data") ? eb_arg(opts, n, "data") : getenv("EBCACHE_FMNIST_DIR");
    if (!st) st = eb_fmnist_load(&data, data_dir, "train", limit, c->input_size > 28 ? c->input_size : 0);
    if (!st && !tr) st = eb_trainer_create(&tr, &cfg, &recipe, data.n);
    if (st) {
        eb_fmnist_free(&data);
        eb_trainer_free(tr);
        return eb_report(CMD, st);
    }
    struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESETHAND}, old_int, old_term;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    eb_train_opts o = {.steps = steps, .ckpt_path = ckpt_path, .ckpt_every = (int)ckpt_every, .log_path = log_path,
                       .log_every = (int)log_every, .progress = 1, .stop = &stop_requested};
    st = eb_train_run(tr, &data, &o);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    const char *export_path = eb_arg(opts, n, "export-ema");
    if (!st && export_path) st = eb_trainer_export_ema(tr, export_path);
    if (!st && stop_requested) fprintf(stderr, "ebcache %s: stopped at step %lld, saved %s\n", CMD,
                                       (long long)tr->step, ckpt_path);
    eb_fmnist_free(&data);
    eb_trainer_free(tr);
    return st ? eb_report(CMD, st) : 0;
}
