/* experiment.c — one experiment through build/libebcache.so alone: record the shipped model's
 * sampler statistics, fit the exposure-bias model, search an EB-Cache schedule for 1.25× fewer
 * FLOPs, sample with it (and uncached, as the reference) and evaluate both with the classifier.
 * usage, from the repository root: build/examples/experiment DIR   (its files go into DIR).
 * On busy cores run it with OMP_WAIT_POLICY=passive (docs/library.md: ~10x faster there). */
#include "pipeline/evaluation.h"
#include "pipeline/recording.h"
#include "pipeline/sampling.h"
#include "pipeline/searching.h"
#include "search/methods.h"

#include <stdio.h>

#define N 8
#define REAL 200

static char paths[6][4096];
enum { REC, FIT, TABLE, CACHED, PLAIN, METRICS };

static int ok(const char *what, eb_status st) {
    if (st) fprintf(stderr, "experiment: %s: %s\n", what, eb_last_error());
    return st == EB_OK;
}

/* Samples run (with its schedule, if any) into `out`; fills *r. */
static int sample(const eb_run_params *run, const char *out, eb_sample_result *r) {
    eb_sample_params p;
    eb_sample_params_defaults(&p);
    p.run = *run;
    p.output = out;
    return ok("sample", eb_sample_to_file(&p, r));
}

/* Evaluates `samples` (PSNR/SSIM against `reference` when given); fills *r. */
static int evaluate(const char *samples, const char *reference, const char *out, eb_eval_result *r) {
    eb_eval_params p;
    eb_eval_params_defaults(&p);
    p.samples = samples, p.reference = reference, p.output = out;
    p.classifier = "data/classifier.safetensors", p.n_real = REAL;
    return ok("eval", eb_evaluate(&p, r));
}

int main(int argc, char **argv) {
    if (argc != 2) return fprintf(stderr, "usage: experiment DIR\n"), 2;
    const char *names[6] = {"rec.h5", "fit.h5", "ebcache.schedule", "cached.h5", "plain.h5", "metrics.h5"};
    for (int i = 0; i < 6; i++) snprintf(paths[i], sizeof paths[i], "%s/%s", argv[1], names[i]);
    eb_run_params run;
    eb_run_params_defaults(&run);
    run.model = "data/dit_fmnist.safetensors", run.sampler = EB_SAMPLER_DDIM, run.respacing = "ddim10";
    run.n = N, run.threads = 2;

    eb_record_params rec;
    eb_record_params_defaults(&rec);
    rec.run = run, rec.output = paths[REC];
    if (!ok("record", eb_record_to_file(&rec, NULL)) || !ok("fit", eb_fit_to_file(paths[REC], paths[FIT], NULL, NULL)))
        return 1;
    eb_search_params sp;
    eb_search_params_defaults(&sp);
    sp.record = paths[REC], sp.fit = paths[FIT], sp.output = paths[TABLE], sp.threads = 2;
    sp.opts.method = eb_method_find("eb-cache"), sp.opts.target = 1 / 1.25; /* 1.25× fewer FLOPs */
    eb_search_outcome found;
    if (!ok("search", eb_search_to_file(&sp, &found))) return 1;
    if (!found.met) return fprintf(stderr, "experiment: %s\n", found.note), 1;

    eb_sample_result plain, cached;
    eb_run_params with_table = run;
    with_table.schedule = paths[TABLE];
    eb_eval_result e_plain, e_cached;
    if (!sample(&run, paths[PLAIN], &plain) || !sample(&with_table, paths[CACHED], &cached) ||
        !evaluate(paths[PLAIN], NULL, NULL, &e_plain) || !evaluate(paths[CACHED], paths[PLAIN], paths[METRICS], &e_cached))
        return 1;
    printf("%s: %d samples, %s at %.3f of the FLOPs (predicted %.3f), wall-clock ratio %.2f (one run each)\n",
           run.model, N, found.method, cached.flop_fraction, found.flops, plain.wall / cached.wall);
    printf("FD %.3f uncached, %.3f cached; accuracy %.3f, %.3f; PSNR vs uncached %.2f dB\n", e_plain.fd, e_cached.fd,
           e_plain.accuracy, e_cached.accuracy, e_cached.psnr);
    return 0;
}
