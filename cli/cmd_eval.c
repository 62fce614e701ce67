/* cmd_eval.c — `ebcache eval`: argv → eb_eval_params → eb_evaluate
 * (pipeline/evaluation.h, docs/metrics.md) → the table or --json. The
 * default classifier is found here: it lies next to the executable. */
#include "cli/args.h"
#include "cli/comm_mpi.h"
#include "cli/commands.h"

#include "analyze/metrics.h"
#include "pipeline/evaluation.h"
#include "runtime/ebcache.h"
#include "train/fmnist.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>

#define CMD "eval"
#define CLASSIFIER_FILE "classifier.safetensors"

/* --classifier, else $EBCACHE_CLASSIFIER, else data/classifier.safetensors
 * next to the executable, as the default model. */
static const char *default_classifier_path(void) {
    static char buf[PATH_MAX];
    const char *path = eb_data_file_path("EBCACHE_CLASSIFIER", CLASSIFIER_FILE, buf);
    if (!path)
        eb_fail(EB_EINPUT, "no --classifier given and no data/%s next to the binary; set EBCACHE_CLASSIFIER or pass "
                           "--classifier (make classifier trains it)", CLASSIFIER_FILE);
    return path;
}

/* ------------------------------------------------------------------------ */
/* Printing                                                                  */

/* A JSON string literal of s. */
static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
        else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
        else fputc(ch, f);
    }
    fputc('"', f);
}

/* The report's fields as one JSON object: numbers with 10 digits, null for
 * NaN (not computed) and ±inf (PSNR of identical images). */
static void print_json(const eb_eval_params *p, const eb_eval_result *r) {
    eb_eval_field fields[EB_EVAL_FIELDS];
    const int n = eb_eval_fields(p, r, fields);
    printf("{\n");
    for (int i = 0; i < n; i++) {
        const eb_eval_field *f = &fields[i];
        printf("  \"%s\": ", f->key);
        if (f->kind == EB_FIELD_TEXT) json_string(stdout, f->text);
        else if (f->kind == EB_FIELD_INT) printf("%d", (int)f->value);
        else if (isfinite(f->value)) printf("%.10g", f->value);
        else fputs("null", stdout);
        fputs(i + 1 < n ? ",\n" : "\n", stdout);
    }
    printf("}\n");
}

/* The ImageNet judge's table. */
static void print_table_imagenet(const eb_eval_params *p, const eb_eval_result *r) {
    printf("samples: %d %s of %s vs %d reference %s of %s (Inception %s)\n", r->n_samples,
           eb_plural(r->n_samples, "image", "images"), r->samples, r->n_real, eb_plural(r->n_real, "image", "images"),
           p->reference_batch, p->inception);
    printf("  %-18s %.4f\n", "FID", r->fd);
    printf("  %-18s %.4f\n", "sFID", r->sfid);
    if (isnan(r->inception_score)) printf("  %-18s - (the weights have no fc layer)\n", "Inception Score");
    else printf("  %-18s %.4f\n", "Inception Score", r->inception_score);
    printf("  %-18s %.4f\n", "precision (k=3)", r->precision);
    printf("  %-18s %.4f\n", "recall (k=3)", r->recall);
}

static void print_table(const eb_eval_params *p, const eb_eval_result *r) {
    if (p->inception) {
        print_table_imagenet(p, r);
        return;
    }
    const char *dataset = p->floor ? NULL : p->dataset;
    printf("%s: %d %s of %s%s%s vs %d %s %s (classifier %s)\n", p->floor ? "floor" : "samples", r->n_samples,
           eb_plural(r->n_samples, "image", "images"), r->samples, dataset ? ":" : "", dataset ? dataset : "",
           r->n_real, p->real_split, eb_plural(r->n_real, "image", "images"), p->classifier);
    printf("  %-26s %.4f (mean term %.4f + covariance term %.4f)\n", "FD (classifier features)", r->fd, r->fd_mean,
           r->fd_cov);
    char pixel[40];
    snprintf(pixel, sizeof pixel, "FD (pixels, %d PCs)", r->pixel_k);
    printf("  %-26s %.4f (mean term %.4f + covariance term %.4f)\n", pixel, r->pixel_fd, r->pixel_fd_mean,
           r->pixel_fd_cov);
    printf("  %-26s %.4f\n", "precision (k=3)", r->precision);
    printf("  %-26s %.4f\n", "recall (k=3)", r->recall);
    if (!isnan(r->accuracy)) printf("  %-26s %.4f (labels %s)\n", "class accuracy", r->accuracy, r->labels);
    printf("  %-26s %.4f\n", "classifier acc. on real", r->real_accuracy);
    if (!isnan(r->psnr)) printf("  %-26s %.3f dB (vs %s)\n", "PSNR", r->psnr, p->reference);
    if (!isnan(r->ssim)) printf("  %-26s %.5f\n", "SSIM", r->ssim);
}

/* ------------------------------------------------------------------------ */
/* The command                                                               */

static const char *usage_text =
    "usage: ebcache eval --samples S.h5[,S2.h5,...] [--dataset samples] [--labels-dataset y|none]\n"
    "                    [--reference U.h5[,...]] [--classifier PATH] [--real test|train] [--n-real N]\n"
    "                    [--real-cache C.h5] [--output METRICS.h5] [--json]\n"
    "       ebcache eval --floor [--n-real N] [--output METRICS.h5] [--json]\n"
    "       ebcache eval --inception W.safetensors --samples S.npz[,S2.npz,...] --reference REF.npz\n"
    "                    [--cache C.h5] [--batch B] [--device cpu|cuda] [--precision P]\n"
    "                    [--output METRICS.h5] [--json]\n"
    "\n"
    "Samples are images (N,1,H,W) in [-1, 1] (clipped; a side above 28 is centre-cropped). FD and\n"
    "precision/recall (k=3) compare classifier features with a real split, and FD is split into its\n"
    "mean and covariance terms; a second judge, FD in the top 32 principal components of the real\n"
    "pixels, needs no classifier. Labels give the class accuracy; --reference (the same seeds\n"
    "without caching) gives PSNR/SSIM (data range 2).\n"
    "A comma-separated list of files (shards of one run) counts as one set of samples.\n"
    "--floor: 10k training images instead of samples, against the test set (the real-data floor).\n"
    "--inception: the ImageNet judge, the ADM evaluator's FID, sFID, Inception Score and precision/recall\n"
    "(k=3) of .npz samples (arr_0 (N,H,W,3) uint8) against --reference, an ADM reference batch (arr_0,\n"
    "and mu/sigma/mu_s/sigma_s when it has them: FID and sFID then use those); --cache keeps the\n"
    "reference's activations. Under mpirun every rank runs a share of the images; rank 0 reports.";

int cmd_eval(int argc, char **argv) {
    eb_opt opts[] = {
        {"samples", "S.h5[,...]", "generated samples: a file, or shards concatenated in order (.npz with --inception)",
         NULL},
        {"dataset", "NAME", "dataset of the samples, and of the reference (default samples)", NULL},
        {"labels-dataset", "NAME", "labels (N) of the samples (default y, when present; none: no accuracy)", NULL},
        {"reference", "U.h5[,...]", "uncached samples of the same seeds (and shards): PSNR and SSIM; with "
                                    "--inception the reference batch REF.npz", NULL},
        {"classifier", "PATH", "classifier weights (default data/" CLASSIFIER_FILE " next to the binary)", NULL},
        {"real", "test|train", "real Fashion-MNIST split (default test)", NULL},
        {"n-real", "N", "real images: the first N of the split, up to all (default 10000)", NULL},
        {"real-cache", "C.h5", "cache of the real features, reused while classifier, split and N match", NULL},
        {"cache", "C.h5", "the same as --real-cache (with --inception: the reference batch's activations, reused "
                          "while the weights and the reference's arr_0 match)", NULL},
        {"floor", NULL, "the real-data floor: the first N (--n-real) training images against the test set", NULL},
        {"inception", "W.safetensors", "FID Inception weights: the ImageNet judge (docs/metrics.md, ImageNet)", NULL},
        {"batch", "B", "with --inception: images run at a time (default 8)", NULL},
        {"device", "cpu|cuda", "with --inception: where the network runs (default cpu)", NULL},
        {"precision", "fp32|tf32|bf16", "with --inception: arithmetic on cuda (default fp32)", NULL},
        {"output", "METRICS.h5", "numbers as attributes, feature statistics, per-image PSNR/SSIM", NULL},
        {"json", NULL, "print JSON instead of the table", NULL},
        {"data-dir", "DIR", "Fashion-MNIST files (default $EBCACHE_FMNIST_DIR or " EB_FMNIST_DEFAULT_DIR ")", NULL},
        {"threads", "N", "threads (default: all cores)", NULL},
    };
    const int n = sizeof opts / sizeof opts[0];
    int rc = eb_args_parse(argc, argv, opts, n, usage_text);
    if (rc) return rc < 0 ? 0 : rc;
    eb_eval_params p;
    eb_eval_params_defaults(&p);
    const char *v;
    p.inception = eb_arg(opts, n, "inception");
    p.floor = eb_arg(opts, n, "floor") != NULL;
    p.samples = eb_arg(opts, n, "samples");
    if (p.inception) p.reference_batch = eb_arg(opts, n, "reference");
    else p.reference = eb_arg(opts, n, "reference");
    p.labels_dataset = eb_arg(opts, n, "labels-dataset"), p.output = eb_arg(opts, n, "output");
    if (eb_arg(opts, n, "real-cache") && eb_arg(opts, n, "cache")) {
        fprintf(stderr, "ebcache eval: --cache and --real-cache name the same file: give one\n");
        return 2;
    }
    p.real_cache = eb_arg(opts, n, "cache") ? eb_arg(opts, n, "cache") : eb_arg(opts, n, "real-cache");
    if ((v = eb_arg(opts, n, "real"))) p.real_split = v;
    if ((v = eb_arg(opts, n, "dataset"))) p.dataset = v;
    if ((v = eb_arg(opts, n, "data-dir"))) p.fmnist_dir = v;
    if ((rc = eb_output_check(CMD, p.output, EB_INPUTS(p.samples, eb_arg(opts, n, "reference"),
                                                       eb_arg(opts, n, "classifier"), p.real_cache, p.inception))))
        return rc;
    long n_real = p.n_real, threads = 0, batch = p.batch;
    if ((v = eb_arg(opts, n, "n-real")) && (rc = eb_arg_int(CMD, "n-real", v, INT_MIN, INT_MAX, &n_real))) return rc;
    if ((v = eb_arg(opts, n, "threads")) && (rc = eb_arg_int(CMD, "threads", v, 1, 1024, &threads))) return rc;
    if ((v = eb_arg(opts, n, "batch")) && (rc = eb_arg_int(CMD, "batch", v, 1, 1 << 12, &batch))) return rc;
    eb_device dev = {.device = eb_arg(opts, n, "device") ? eb_arg(opts, n, "device") : "cpu"};
    if ((v = eb_arg(opts, n, "precision")) && eb_precision_parse(v, &dev.precision)) return eb_report(CMD, EB_EINPUT);
    eb_set_threads((int)threads);
    p.n_real = (int)n_real, p.batch = (int)batch;
    if (eb_arg(opts, n, "device") || eb_arg(opts, n, "precision")) p.device = &dev;
    p.comm = eb_cli_comm(), p.progress = 1;
    p.classifier = eb_arg(opts, n, "classifier");
    if (!p.inception && !p.classifier && !(p.classifier = default_classifier_path())) return eb_report(CMD, EB_EINPUT);
    eb_eval_result r;
    eb_status st = eb_evaluate(&p, &r);
    if (p.comm->rank) return st; /* rank 0 speaks for the job */
    if (!st && eb_arg(opts, n, "json")) print_json(&p, &r);
    else if (!st) print_table(&p, &r);
    return eb_report(CMD, st);
}
