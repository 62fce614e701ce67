/* test_classifier.c — the eval classifier: gradients against PyTorch,
 * thread-count invariance, training progress, resume, augmentation, files. */
#include "classifier.h"
#include "golden.h"
#include "safetensors.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GOLDEN "classifier_step.h5"
#define OUT_TOL 2e-6  /* features, logits, loss: max |Δ| / max |want| (measured 1.8e-7) */
#define GRAD_TOL 1e-5 /* per gradient tensor: max |Δ| / max |g| (measured ≤ 7e-7) */

/* A configuration the training tests can afford, on 28×28 images. */
static const eb_clf_config small = {.side = 28, .patch = 4, .dim = 16, .depth = 2, .heads = 2, .classes = 10};

static eb_clf *new_clf(const eb_clf_config *c, uint64_t seed) {
    eb_clf *m;
    cr_assert_eq(eb_clf_create(&m, c, seed), EB_OK, "%s", eb_last_error());
    return m;
}

/* n images of class i % 10: a bright 6×6 square at a class-specific place on
 * a dark background, plus noise: separable, so training must make progress. */
static eb_fmnist toy_data(int n, uint64_t seed) {
    eb_fmnist d = {.n = n, .h = 28, .w = 28};
    d.images = malloc((size_t)n * 784 * sizeof(float));
    d.labels = malloc((size_t)n * sizeof(int32_t));
    eb_rng_fill_normal(d.images, (size_t)n * 784, eb_rng_key(seed, 1));
    for (int i = 0; i < n; i++) {
        int k = i % 10, y0 = 3 + (k / 5) * 14, x0 = 2 + (k % 5) * 5;
        d.labels[i] = k;
        for (int p = 0; p < 784; p++) {
            int yy = p / 28, xx = p % 28, in = yy >= y0 && yy < y0 + 6 && xx >= x0 && xx < x0 + 6;
            float *v = &d.images[(size_t)i * 784 + p];
            *v = fminf(1.0f, fmaxf(-1.0f, (in ? 0.8f : -0.8f) + 0.2f * *v));
        }
    }
    return d;
}

static eb_clf_recipe quiet_recipe(int batch) {
    eb_clf_recipe r = eb_clf_recipe_default();
    r.batch = batch;
    r.warmup_steps = 2;
    r.lr = 3e-3;
    return r;
}

Test(classifier, gradients_match_pytorch) {
    eb_clf_config c = {
        .side = (int)golden_attr_f64(GOLDEN, "side"), .patch = (int)golden_attr_f64(GOLDEN, "patch"),
        .dim = (int)golden_attr_f64(GOLDEN, "dim"), .depth = (int)golden_attr_f64(GOLDEN, "depth"),
        .heads = (int)golden_attr_f64(GOLDEN, "heads"), .classes = (int)golden_attr_f64(GOLDEN, "classes"),
    };
    eb_clf *m = new_clf(&c, 0);
    for (int pass = 0; pass < 2; pass++) { /* 0: load the weights, 1: load x, y and compare */
        if (pass == 1) {
            int64_t xd[4];
            float *x = golden_f32(GOLDEN, "x", 4, xd);
            int32_t *y = golden_i32(GOLDEN, "y", 1, NULL);
            float *feat = golden_f32(GOLDEN, "features", 2, NULL), *logits = golden_f32(GOLDEN, "logits", 2, NULL);
            float *loss_want = golden_f32(GOLDEN, "loss", 0, NULL);
            double loss;
            cr_assert_eq(eb_clf_loss_grad(m, &loss, x, y, (int)xd[0]), EB_OK, "%s", eb_last_error());
            double e_feat = max_rel_err(m->a.feat, feat, xd[0] * c.dim);
            double e_logits = max_rel_err(m->a.logits, logits, xd[0] * c.classes);
            cr_expect_leq(e_feat, OUT_TOL, "features: %g", e_feat);
            cr_expect_leq(e_logits, OUT_TOL, "logits: %g", e_logits);
            cr_expect_leq(fabs(loss - *loss_want) / *loss_want, OUT_TOL, "loss %.9g vs %.9g", loss, *loss_want);
            free(x), free(y), free(feat), free(logits), free(loss_want);
        }
        float **slot = pass ? (float **)&m->g : (float **)&m->p;
        for (int i = 0; i < EB_CLF_NUM_TENSORS; i++) {
            int64_t dims[4];
            int rank = eb_clf_tensor_shape(i, &c, dims);
            size_t n = 1;
            for (int r = 0; r < rank; r++) n *= (size_t)dims[r];
            int blocks = (int)(eb_clf_tensor_size(i, &c) / n);
            for (int b = 0; b < blocks; b++) {
                char key[64], name[80];
                eb_clf_tensor_name(key, sizeof key, i, b);
                snprintf(name, sizeof name, "%s/%s", pass ? "grads" : "weights", key);
                float *w = golden_f32(GOLDEN, name, rank, NULL);
                if (pass == 0) {
                    memcpy(slot[i] + b * n, w, n * sizeof(float));
                } else {
                    double err = max_rel_err(slot[i] + b * n, w, n);
                    cr_expect_leq(err, GRAD_TOL, "gradient of %s: max |Δ| / max |g| = %g", key, err);
                }
                free(w);
            }
        }
    }
    eb_clf_free(m);
}
