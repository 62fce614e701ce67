/* cmd_train_classifier.c — `ebcache train-classifier`: trains the Fashion-MNIST
 * classifier `ebcache eval` measures with (train/classifier.h), resumably. */
#include "cli/args.h"
#include "runtime/clock.h"
#include "cli/commands.h"

#include "train/classifier.h"
#include "runtime/ebcache.h"
#include "train/fmnist.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CMD "train-classifier"

/* Reads the configuration and recipe options over the defaults. */
static int read_options(const eb_opt *opts, int n, eb_clf_config *c, eb_clf_recipe *r) {
    struct { const char *name; int *field; long min, max; } ints[] = {
        {"dim", &c->dim, 4, 4096}, {"depth", &c->depth, 1, 64}, {"heads", &c->heads, 1, 256},
        {"patch", &c->patch, 1, 28}, {"batch", &r->batch, 1, 1 << 16}, {"epochs", &r->epochs, 1, 100000},
        {"warmup", &r->warmup_steps, 0, 1 << 30}, {"shift", &r->max_shift, 0, 64},
    };
    struct { const char *name; double *field; } reals[] = {
        {"lr", &r->lr}, {"weight-decay", &r->weight_decay}, {"flip", &r->flip},
    };
    int rc = 0;
    const char *v;
    for (size_t i = 0; !rc && i < sizeof ints / sizeof ints[0]; i++) {
        long x;
        if ((v = eb_arg(opts, n, ints[i].name)) && !(rc = eb_arg_int(CMD, ints[i].name, v, ints[i].min, ints[i].max, &x)))
            *ints[i].field = (int)x;
    }
    for (size_t i = 0; !rc && i < sizeof reals / sizeof reals[0]; i++)
        if ((v = eb_arg(opts, n, reals[i].name))) rc = eb_arg_float(CMD, reals[i].name, v, reals[i].field);
    if (!rc && (v = eb_arg(opts, n, "seed"))) rc = eb_arg_u64(CMD, "seed", v, &r->seed);
    if (rc) return rc;
    eb_status st = eb_clf_config_validate(c);
    if (!st) st = eb_clf_recipe_validate(r);
    return eb_report(CMD, st);
}

/* A resumed run must be the run the options describe: names the first field that differs. */
static eb_status same_run(const char *ckpt, const eb_clf_config *a, const eb_clf_config *b, const eb_clf_recipe *ra,
                          const eb_clf_recipe *rb) {
    struct { const char *name; double x, y; } f[] = {
        {"patch", a->patch, b->patch}, {"dim", a->dim, b->dim}, {"depth", a->depth, b->depth},
        {"heads", a->heads, b->heads}, {"batch", ra->batch, rb->batch}, {"epochs", ra->epochs, rb->epochs},
        {"lr", ra->lr, rb->lr}, {"weight-decay", ra->weight_decay, rb->weight_decay},
        {"warmup", ra->warmup_steps, rb->warmup_steps}, {"flip", ra->flip, rb->flip},
        {"shift", ra->max_shift, rb->max_shift}, {"seed", (double)ra->seed, (double)rb->seed},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i].x != f[i].y)
            return eb_fail(EB_EINPUT, "%s holds a run with --%s %.17g, not %.17g: pass the same options or remove it",
                           ckpt, f[i].name, f[i].x, f[i].y);
    return EB_OK;
}

int cmd_train_classifier(int argc, char **argv) {
    eb_opt opts[] = {
        {"output", "OUT.safetensors", "the trained weights, with the recipe and test accuracy as metadata", NULL},
        {"checkpoint", "CKPT.safetensors", "saved after every epoch; an existing one is resumed", NULL},
        {"dim", "D", "hidden size (default 64)", NULL},
        {"depth", "L", "transformer blocks (default 3)", NULL},
        {"heads", "NH", "attention heads (default 4)", NULL},
        {"patch", "P", "patch side (default 4: 49 tokens)", NULL},
        {"batch", "B", "images per step (default 32)", NULL},
        {"epochs", "E", "passes over the training set (default 15)", NULL},
        {"lr", "LR", "peak AdamW learning rate (default 2e-3)", NULL},
        {"weight-decay", "WD", "decay of the weight matrices (default 0.05)", NULL},
        {"warmup", "N", "linear warm-up steps before the cosine decay (default 500)", NULL},
        {"flip", "P", "horizontal flip probability (default 0)", NULL},
        {"shift", "S", "random shifts of up to S pixels (default 1)", NULL},
        {"seed", "K", "initialisation, data order and augmentation (default 0)", NULL},
        {"limit", "N", "train on the first N training images only (default all 60000)", NULL},
        {"data-dir", "DIR", "Fashion-MNIST files (default $EBCACHE_FMNIST_DIR or " EB_FMNIST_DEFAULT_DIR ")", NULL},
        {"threads", "N", "threads (default: all cores; the result does not depend on it)", NULL},
    };
    const int n = sizeof opts / sizeof opts[0];
    int rc = eb_args_parse(argc, argv, opts, n,
                           "usage: ebcache train-classifier --output OUT.safetensors [--checkpoint CKPT.safetensors]\n"
                           "                                [--dim D --depth L --heads NH --epochs E ...]");
    if (rc) return rc < 0 ? 0 : rc;
    const char *out_path = eb_arg(opts, n, "output"), *ckpt = eb_arg(opts, n, "checkpoint"), *v;
    if (!out_path) {
        fprintf(stderr, "ebcache %s: --output is required (see --help)\n", CMD);
        return 2;
    }
    if ((rc = eb_output_check(CMD, out_path, EB_INPUTS(ckpt)))) return rc;
    eb_clf_config c = {.side = 28, .patch = 4, .dim = 64, .depth = 3, .heads = 4, .classes = EB_FMNIST_CLASSES};
    eb_clf_recipe r = eb_clf_recipe_default();
    long limit = 0, threads = 0;
    if ((rc = read_options(opts, n, &c, &r))) return rc;
    if ((v = eb_arg(opts, n, "limit")) && (rc = eb_arg_int(CMD, "limit", v, 1, 1 << 30, &limit))) return rc;
    if ((v = eb_arg(opts, n, "threads")) && (rc = eb_arg_int(CMD, "threads", v, 1, 1024, &threads))) return rc;
    eb_set_threads((int)threads);
    const char *dir = eb_arg(opts, n, "data-dir") ? eb_arg(opts, n, "data-dir") : getenv("EBCACHE_FMNIST_DIR");

    eb_fmnist train = {0}, test = {0};
    eb_clf *m = NULL;
    eb_status st = eb_fmnist_load(&train, dir, "train", (int)limit, 0);
    if (!st) st = eb_fmnist_load(&test, dir, "t10k", 0, 0);
    if (!st && ckpt && access(ckpt, F_OK) == 0) {
        eb_clf_recipe saved = r;
        int has_state;
        st = eb_clf_load(&m, ckpt, &saved, &has_state);
        if (!st && !has_state) st = eb_fail(EB_EINPUT, "%s: not a training checkpoint (no optimizer state)", ckpt);
        if (!st) st = same_run(ckpt, &m->cfg, &c, &saved, &r);
        if (!st) fprintf(stderr, "resuming %s at step %" PRId64 "\n", ckpt, m->step);
    } else if (!st) {
        st = eb_clf_create(&m, &c, r.seed);
    }
    if (st) goto done;

    const int64_t spe = eb_clf_steps_per_epoch(&r, train.n), total = spe * r.epochs;
    if (spe < 1) {
        st = eb_fail(EB_EINPUT, "%d training images make no batch of %d", train.n, r.batch);
        goto done;
    }
    printf("classifier: D=%d L=%d heads=%d patch=%d, %zu parameters; %d images, batch %d, %" PRId64
           " steps per epoch, %d epochs\n",
           c.dim, c.depth, c.heads, c.patch, m->n_params, train.n, r.batch, spe, r.epochs);
    printf("%6s %8s %10s %10s %10s %9s\n", "epoch", "step", "loss", "train_acc", "test_acc", "seconds");
    double accuracy = NAN;
    while (!st && m->step < total) {
        double t0 = eb_now_seconds();
        eb_clf_train_stats stats;
        st = eb_clf_train_epoch(m, &r, &train, 1, &stats);
        double seconds = eb_now_seconds() - t0;
        if (!st) st = eb_clf_accuracy(m, &accuracy, test.images, test.labels, test.n);
        if (!st) {
            printf("%6" PRId64 " %8" PRId64 " %10.4f %10.4f %10.4f %9.1f\n", m->step / spe, m->step,
                   stats.loss, stats.accuracy, accuracy, seconds);
            fflush(stdout);
        }
        if (!st && ckpt) st = eb_clf_save(m, ckpt, 1, &r, NULL, 0);
    }
    if (!st && isnan(accuracy)) st = eb_clf_accuracy(m, &accuracy, test.images, test.labels, test.n);
    if (!st) {
        char acc_s[32], epochs_s[16], images_s[16], test_s[16];
        snprintf(acc_s, sizeof acc_s, "%.4f", accuracy);
        snprintf(epochs_s, sizeof epochs_s, "%d", r.epochs);
        snprintf(images_s, sizeof images_s, "%d", train.n);
        snprintf(test_s, sizeof test_s, "%d", test.n);
        eb_st_meta extra[] = {
            {"producer", "ebcache train-classifier " EBCACHE_VERSION}, {"test_accuracy", acc_s},
            {"trained_epochs", epochs_s}, {"train_images", images_s}, {"test_images", test_s},
        };
        st = eb_clf_save(m, out_path, 0, &r, extra, sizeof extra / sizeof extra[0]);
        if (!st) printf("test accuracy %.4f; wrote %s\n", accuracy, out_path);
    }
done:
    rc = eb_report(CMD, st);
    eb_clf_free(m);
    eb_fmnist_free(&train);
    eb_fmnist_free(&test);
    return rc;
}
