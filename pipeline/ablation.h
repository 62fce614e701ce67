/* pipeline/ablation.h — ablation grids (docs/ablation.md) as library calls: a
 * spec names samplers × caching methods × sweep points × seeds; every cell is
 * recorded, fitted, searched, sampled and evaluated through the pipeline calls
 * (recording.h, searching.h, sampling.h, evaluation.h) into a content-addressed
 * cells folder (an interrupted grid resumes; grids that share cells share the
 * work); the tables are then timed interleaved against the uncached run; the
 * report gives per sampler one quality–speed curve per method, the Pareto
 * plot, and every curve interpolated at EB-Cache's measured speedups.
 *
 * Library code: status codes and eb_fail messages, nothing printed; progress
 * and warnings go to the caller's callback when it gives one. */
#ifndef EB_PIPELINE_ABLATION_H
#define EB_PIPELINE_ABLATION_H

#include "runtime/comm.h"
#include "runtime/ebcache.h"
#include "search/methods.h"

#include <limits.h>

#define EB_ABLATION_MAX_LIST 16 /* values of one list key */
#define EB_ABLATION_KEY 16      /* cell names: the first 16 hex digits of a SHA-256 */

/* ------------------------------------------------------------------------ */
/* The spec file                                                             */

/* What scores the samples: the Fashion-MNIST classifier's features and the
 * pixel PCA (the model's own images), or ImageNet's ADM evaluator (FID,
 * sFID, IS, precision/recall through the FID Inception network) on the
 * latents decoded by the SD-VAE. */
typedef enum { EB_JUDGE_FMNIST = 0, EB_JUDGE_IMAGENET = 1 } eb_ablation_judge;

/* "fmnist" / "imagenet"; the parse returns EB_EINPUT naming the string. */
const char *eb_ablation_judge_name(eb_ablation_judge j);
eb_status eb_ablation_judge_parse(eb_ablation_judge *j, const char *name);

/* A parsed spec: indices into eb_methods, sampler kinds and step counts, lists
 * and scalars. A method in `methods` runs once when untargeted, else at every
 * value of its native sweep (`sweep.NAME = …`, n_native[m] > 0) or, without
 * one, at every speed target of `speedups`. */
typedef struct {
    char path[PATH_MAX], name[64], model[PATH_MAX];
    struct {
        char kind[8]; /* "ddpm" / "ddim" */
        int steps;
    } samplers[EB_ABLATION_MAX_LIST];
    int n_samplers, methods[EB_ABLATION_MAX_LIST], n_methods, seeds[EB_ABLATION_MAX_LIST], n_seeds;
    double speedups[EB_ABLATION_MAX_LIST], cfg;
    double native[EB_NMETHODS][EB_ABLATION_MAX_LIST]; /* native parameter values, by eb_methods row */
    int n_native[EB_NMETHODS];
    int n_speedups, n, calib_n, calib_seed, n_real, batch;
    int timing_n, timing_rounds; /* images per timing run, rounds of interleaved runs */
    /* The ImageNet judge (judge = imagenet; docs/ablation.md): the decoder, the Inception weights and
       the ADM reference batch, all required then; the latents are divided by scale_factor and decoded
       decode_batch at a time. device: where sampling, decoding and Inception run ("cpu"), at
       precision ("fp32"; tf32 and bf16 on cuda). */
    eb_ablation_judge judge;
    char vae[PATH_MAX], inception[PATH_MAX], reference[PATH_MAX], device[16], precision[8];
    /* Learning-to-Cache's router scores (tools/train_l2c.py, tools/convert_l2c.py): required with l2c in
       `methods` and only then; its SHA-256 is part of l2c's table keys. */
    char router[PATH_MAX];
    double scale_factor;
    int decode_batch;
} eb_ablation_spec;

/* Reads and checks the spec file at path into *s (defaults for absent keys).
 * EB_EINPUT with a message naming the file, line and key. */
eb_status eb_ablation_spec_read(eb_ablation_spec *s, const char *path);

/* "ddpm-50" for sampler i into buf (≥ 16 bytes); returns buf. */
const char *eb_ablation_sampler_name(const eb_ablation_spec *s, int i, char *buf);

/* ------------------------------------------------------------------------ */
/* Planning                                                                  */

/* What a point of a method's curve sweeps. */
typedef enum {
    EB_SWEEP_NONE = 0, /* untargeted: one table (or none), value NaN    */
    EB_SWEEP_SPEEDUP,  /* value: the FLOP speedup target the search meets */
    EB_SWEEP_NATIVE,   /* value: the method's native parameter (methods.h eb_param_kind) */
} eb_sweep_kind;

/* "none", "speedup", "native". */
const char *eb_sweep_kind_name(eb_sweep_kind k);

/* One point of one method's curve on one sampler (all seeds). */
typedef struct {
    int sampler, method; /* spec sampler index, eb_methods row */
    eb_sweep_kind sweep;
    double value;
} eb_ablation_point;

/* The points of the grid, in grid order (sampler, then spec method order,
 * then the sweep's order) into points (cap entries); returns their count, or
 * −1 when cap is too small. */
int eb_ablation_plan(const eb_ablation_spec *s, eb_ablation_point *points, int cap);

/* " at 1.5×", " at interval 3", "" (untargeted) into buf; returns buf. */
const char *eb_ablation_point_label(const eb_ablation_point *p, char *buf, size_t cap);

/* ------------------------------------------------------------------------ */
/* Cell keys: the first EB_ABLATION_KEY hex digits of the SHA-256 of a text
 * naming every input of the cell (docs/ablation.md). The texts of version
 * 0.3.0 grids are kept byte for byte, so their cells are reused.            */

void eb_ablation_key(char key[EB_ABLATION_KEY + 1], const char *text);
/* "record|VER|model_sha|kind|steps|cfg|calib_n|calib_seed|batch", then
 * "|DEVICE" when the spec's device is not the CPU and "|DEVICE|PRECISION"
 * when its precision is not fp32 either (as for sample keys) */
void eb_ablation_record_key(char key[EB_ABLATION_KEY + 1], const eb_ablation_spec *s, int sampler, const char *model_sha);
/* "table|VER|rec_key|method|target" (target "-" untargeted); native points
 * "table|VER|rec_key|method|PARAM=value" (PARAM: eb_param_kind_name); a method
 * that reads a router (l2c) appends "|router=SHA" with router_sha, which
 * every other method ignores (NULL is fine for them). */
void eb_ablation_table_key(char key[EB_ABLATION_KEY + 1], const char *rec_key, const eb_ablation_point *p,
                           const char *router_sha);
/* "sample|VER|model_sha|kind|steps|cfg|n|seed|batch|table_sha" ("none": uncached) */
void eb_ablation_sample_key(char key[EB_ABLATION_KEY + 1], const eb_ablation_spec *s, int sampler, const char *model_sha,
                            int seed, const char *table_sha);
/* "eval-judges|VER|sample_key|ref_key|n_real" (ref_key "-": the uncached samples themselves) */
void eb_ablation_eval_key(char key[EB_ABLATION_KEY + 1], const char *sample_key, const char *ref_key, int n_real);
/* The ImageNet judge's cells, inside the sample cell: its images
 * "decode|VER|sample_key|vae_sha|scale_factor|decode_batch|device" and their evaluation
 * "eval-imagenet|VER|decode_key|inception_sha|reference_sha|device"; the reference batch's
 * activations (in the cells folder) "real-imagenet|VER|inception_sha|reference_sha|device".
 * device: "cpu", "cuda", or "cuda|tf32" at a precision other than fp32. vae_sha:
 * eb_ablation_vae_sha of the decoder's files. */
void eb_ablation_decode_key(char key[EB_ABLATION_KEY + 1], const eb_ablation_spec *s, const char *sample_key,
                            const char *vae_sha);
void eb_ablation_imagenet_eval_key(char key[EB_ABLATION_KEY + 1], const eb_ablation_spec *s, const char *decode_key,
                                   const char *inception_sha, const char *reference_sha);
void eb_ablation_imagenet_real_key(char key[EB_ABLATION_KEY + 1], const eb_ablation_spec *s, const char *inception_sha,
                                   const char *reference_sha);
/* The SHA-256 (hex) naming a decoder: of a .safetensors file its own; of a
 * folder the SHA-256 of the lines "NAME=SHA\n" of each of config.json,
 * diffusion_pytorch_model.safetensors, vae/config.json and
 * vae/diffusion_pytorch_model.safetensors that it holds (every file a
 * decoder can be read from there). EB_EINPUT naming the path when it is
 * missing or a folder without weights. */
eb_status eb_ablation_vae_sha(const char *vae, char sha[65]);

/* ------------------------------------------------------------------------ */
/* Running                                                                   */

typedef enum {
    EB_ABLATION_STEP = 0, /* a cell starts computing: done/total rows, eta seconds (NaN: unknown) */
    EB_ABLATION_NOTE,     /* waiting for the lock, debris removed, a timing round              */
    EB_ABLATION_WARNING,  /* a measured speedup not to be trusted                              */
} eb_ablation_event_kind;

typedef struct {
    eb_ablation_event_kind kind;
    const char *text;
    int done, total;
    double eta;
} eb_ablation_event;

typedef struct {
    const char *cells;      /* the cells folder, created ("build/ablate-cells")                  */
    const char *model;      /* the model (required: the spec's or the caller's choice)           */
    const char *classifier; /* the evaluation's classifier (required by the Fashion-MNIST judge)  */
    const char *fmnist_dir; /* Fashion-MNIST files (NULL: the default place)                      */
    const char *results;    /* NAME.csv, NAME.md, plots and NAME_tables/ go here ("results")      */
    const char *scripts;    /* gnuplot scripts (pareto.gp); NULL: the .dat files without the PNGs */
    int threads;            /* 0: all cores                                                        */
    int progress;           /* 1: the pipeline calls' own progress lines on a terminal (0)         */
    void (*on_event)(void *ctx, const eb_ablation_event *e); /* NULL: silent                       */
    void *ctx;
    const eb_comm *comm;    /* NULL: one process; else the cells are spread over the ranks          */
} eb_ablation_params;

void eb_ablation_params_defaults(eb_ablation_params *p);

/* One evaluated cell: a point of a curve on one seed. */
typedef struct {
    int point, seed;   /* index into eb_ablation_results.points */
    int reached;       /* 0: the search could not reach the target (not sampled) */
    double flop_speedup, wall; /* uncached MACs / executed; seconds its sampling took when it ran */
    double measured, cpu_measured, load; /* interleaved timing of its table: wall and CPU speedups, load average */
    double fd, fd_mean, fd_cov;                   /* classifier-feature FD and its two terms */
    double pixel_fd, pixel_fd_mean, pixel_fd_cov; /* the pixel-PCA judge */
    double precision, recall, accuracy, psnr, ssim;
    double sfid, inception_score; /* the ImageNet judge (NaN otherwise); its FID is fd (with its terms) */
} eb_ablation_row;

/* A point's table and its interleaved timing. */
typedef struct {
    eb_ablation_point at;
    int reached;
    char table[PATH_MAX];  /* "" untargeted without a table, or unreachable */
    char params[128];      /* the table's "## params:" (e.g. "interval=3"), "" without */
    double flop_speedup;   /* mean over seeds */
    double wall, cpu, wall_lo, wall_hi; /* medians of the paired ratios; the first and last round's wall ratio */
} eb_ablation_curve_point;

/* What the timing of one sampler saw. */
typedef struct {
    double load_before, load_after; /* 1-minute load averages */
    double uncached_wall;           /* median seconds of one uncached timing run */
} eb_ablation_timing;

typedef struct {
    eb_ablation_curve_point *points;
    int n_points;
    eb_ablation_row *rows; /* per sampler, per seed, per point of the sampler */
    int n_rows;
    eb_ablation_timing timing[EB_ABLATION_MAX_LIST]; /* per sampler */
    int cores;
    int reused;            /* rows finished from cells that were already there */
} eb_ablation_results;

typedef struct eb_ablation eb_ablation;

/* Prepares spec s (kept by pointer) with p: hashes the model, creates the
 * cells folder, takes its lock (flock on CELLS/lock, held until
 * eb_ablation_close: a second grid on the same cells waits, with a NOTE, and
 * then reuses the first one's cells) and removes the debris of killed runs
 * there (NOTE). With p->comm of several ranks it is collective: rank 0 alone
 * takes the lock (one holder per job) and removes the debris, then the ranks
 * agree on the status (eb_comm_agree). */
eb_status eb_ablation_open(eb_ablation **out, const eb_ablation_spec *s, const eb_ablation_params *p);
void eb_ablation_close(eb_ablation *a);

/* Runs the cell of point pt on seed into *row (measured speedups still 0):
 * the sampler's calibration recording and fit, the point's table, the
 * seed's uncached samples and this cell's samples, each evaluated — every
 * step reused when its cell exists. pt must be one of the plan's points. */
eb_status eb_ablation_run_cell(eb_ablation *a, const eb_ablation_point *pt, int seed, eb_ablation_row *row);

/* Runs every cell of the grid, copies each table to RESULTS/NAME_tables/,
 * then times each sampler's tables interleaved against the uncached run
 * (docs/ablation.md, Timing) into *r (eb_ablation_results_free). With
 * p->comm of several ranks it is collective: the ranks compute the cells,
 * each cell on one rank (docs/distributed.md), then rank 0 alone reads them
 * into *r and times the tables while the others wait; the other ranks' *r
 * stays empty (rank 0 writes the report), the status is the same on every
 * rank ("rank R: …"), and r->reused counts the rows of every rank. */
eb_status eb_ablation_run(eb_ablation *a, eb_ablation_results *r);
void eb_ablation_results_free(eb_ablation_results *r);

/* ------------------------------------------------------------------------ */
/* Reports (pipeline/ablation_report.c)                                      */

/* Writes RESULTS/NAME.csv (one row per cell), NAME.md (per sampler the
 * curves, the timing, the comparison at matched speed and the claims) and per
 * sampler NAME_pareto_SAMPLER.dat and, with p->scripts, its PNG; each
 * atomically. */
eb_status eb_ablation_write_report(const eb_ablation_spec *s, const eb_ablation_results *r, const eb_ablation_params *p);

/* A timing warning of curve point c (its measured speedup below 1, or above
 * its FLOP speedup, beyond 5%) into buf; 0 when there is none. */
int eb_ablation_timing_warning(char *buf, size_t cap, const eb_ablation_spec *s, const eb_ablation_results *r,
                               const eb_ablation_curve_point *c);

/* Mean and 95% half-width (Student's t over seeds) of a quantity. */
typedef struct {
    double mean, half;
    int n;
} eb_ablation_ci;

/* A curve read at speedup x (linear in log speedup between the two
 * neighbouring points, no extrapolation): the n points (xs[j], y[j][·]) with
 * y[j] holding the n_seeds per-seed values of point j (NaN: missing), sorted
 * or not. Sets per_seed[s] to each seed's interpolated value (NaN where a
 * neighbour lacks that seed) and returns 1, or returns 0 when x lies outside
 * [min xs, max xs] or fewer than one point is finite there. lo/hi (may be
 * NULL) get the neighbours' indices. */
int eb_ablation_interpolate(double x, const double *xs, const double *const *y, int n, int n_seeds, double *per_seed,
                            int *lo, int *hi);

/* The mean and CI over the finite values of v (n). */
eb_ablation_ci eb_ablation_ci_of(const double *v, int n);

#endif
