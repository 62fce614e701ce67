/* fit.h — what a recording (docs/recording.md) says about exposure bias and
 * feature drift, fitted into the few numbers a schedule search needs
 * (docs/search.md):
 *
 *   - ε-scaling: per step the ratio λ_i of the ε norm along the sampling chain
 *     to the norm on training-like inputs, and the line λ(τ) = k·τ + b;
 *   - EB-Cache's two-phase noise scaling b(τ) (b_h, b_l, t_thre), fitted to
 *     1/λ_i by nonlinear least squares;
 *   - TeaCache's order-4 polynomial from block 0's input drift to the output drift.
 *
 * τ = t / 1000 is the model timestep normalised to [0, 1). Every fit keeps
 * its R² and per-point residuals (data − model).
 */
#ifndef EB_FIT_H
#define EB_FIT_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/ebcache.h"
#include "analyze/sha256.h"

/* ------------------------------------------------------------------------ */
/* Recordings                                                                */

/* The datasets of a recording the fits and the search read. Row i is
 * sampling step i (i = 0 the first, noisiest model call). Chains started at
 * `start` (record --start-step) leave rows before it NaN (drift rows up to
 * and including it). */
typedef struct {
    char path[1024];
    char sha256[EB_SHA256_HEX];
    char sampler[128];     /* "SAMPLER respacing=SPEC" from the root attributes ("" if none)     */
    int S, N, L;           /* steps, calibration samples, blocks                               */
    int start;             /* first recorded step (root attribute start_step, default 0)       */
    int cached;            /* 1: the chain ran a cache schedule (root attribute has_reference) */
    int32_t *t;            /* (S) model timesteps                                              */
    double *eps_norm;      /* (S, N) ‖ε‖ along the chain                                       */
    double *eps_norm_q;    /* (S, N) ‖ε‖ on inputs drawn from q(x_t | x0); NULL if not recorded */
    double *drift_attn;    /* (S, L) relative L1 change of each block's attention              */
    double *drift_mlp;     /* (S, L) the same for the MLP                                       */
    double *drift_block0;  /* (S) TeaCache's indicator (block 0's modulated input)              */
    double *drift_output;  /* (S) the model output's relative L1 change                         */
} eb_rec_data;

/* Reads the recording at `path` and hashes the file. Shapes must agree,
 * recorded values be finite and ε norms positive; EB_EINPUT naming the
 * file, dataset and index otherwise. On failure *r is empty. */
eb_status eb_rec_data_read(eb_rec_data *r, const char *path);
void eb_rec_data_free(eb_rec_data *r);

/* ------------------------------------------------------------------------ */
/* Fits on plain arrays                                                      */

typedef struct {
    double k, b;      /* y = k·x + b                       */
    double r2, rmse;  /* R² (NaN for constant data), RMS residual */
} eb_fit_line;

/* Least squares line through (x[i], y[i]), i < n (n ≥ 2, x not constant);
 * residual (n) may be NULL. EB_EINPUT when the data cannot determine a line. */
eb_status eb_fit_linear(const double *x, const double *y, int n, eb_fit_line *out, double *residual);

/* Why a two-phase fit is not to be trusted (bits of eb_fit_two_phase.flags;
 * 0: healthy). docs/search.md gives the rules and what search does then. */
typedef enum {
    EB_FIT_SPLIT_AT_EDGE = 1 << 0, /* fewer than EB_FIT_MIN_PHASE_STEPS(n) fitted steps on one side of t_thre */
    EB_FIT_LOW_R2 = 1 << 1,        /* R² below EB_FIT_MIN_R2, or NaN                                        */
    EB_FIT_NEGATIVE_B = 1 << 2,    /* b_h, b_l or b(τ) at a fitted step is not positive                     */
} eb_fit_flag;
#define EB_FIT_NFLAGS 3
#define EB_FIT_MIN_R2 0.5
#define EB_FIT_MIN_PHASE_STEPS(n) ((n) / 10 > 3 ? (n) / 10 : 3)

/* "split-at-edge", "low-r2", "negative-b"; "?" for anything but one flag. */
const char *eb_fit_flag_name(eb_fit_flag f);
/* The names of the bits set in flags, comma-separated, into buf; returns buf. */
const char *eb_fit_flags_list(unsigned flags, char *buf, size_t cap);

typedef struct {
    double b_h, b_l, t_thre; /* high- and low-noise levels and the phase split (τ) */
    double r2, rmse;
    int below, above;        /* fitted steps with τ < t_thre, τ ≥ t_thre          */
    unsigned flags;          /* eb_fit_flag bits                                   */
} eb_fit_two_phase;

/* EB-Cache's noise scaling at τ ∈ [0, 1]:
 *   τ ≥ t_thre: b_h + (1 − b_h)·exp(−5(1 − τ)/(1 − t_thre))
 *   τ < t_thre: b_l + (b_h − b_l)·exp(5(τ − t_thre)/(1 − t_thre)) */
double eb_two_phase_b(const eb_fit_two_phase *p, double tau);

/* Fits b(τ) to (tau[i], b[i]), i < n (n ≥ 3, at least one point each side of
 * some split in (0, 1)): a grid over t_thre with (b_h, b_l) by linear least
 * squares, refined by gsl_multifit_nlinear. residual (n) may be NULL. A
 * degenerate fit is returned as such (EB_OK, out->flags set). */
eb_status eb_fit_two_phase_b(const double *tau, const double *b, int n, eb_fit_two_phase *out, double *residual);

#define EB_TEACACHE_ORDER 4

typedef struct {
    int npoly;                          /* order + 1                              */
    double poly[EB_TEACACHE_ORDER + 1]; /* highest degree first, as np.polyfit    */
    double r2, rmse;
} eb_fit_poly;

/* Least squares polynomial of `order` (1..EB_TEACACHE_ORDER) through
 * (x[i], y[i]), i < n (n > order); residual (n) may be NULL. */
eb_status eb_fit_polynomial(const double *x, const double *y, int n, int order, eb_fit_poly *out, double *residual);


/* ------------------------------------------------------------------------ */
/* All fits of one recording, and the fit file                              */

typedef struct {
    char recording[1024];
    char sha256[EB_SHA256_HEX];
    int S, start;               /* steps; the first recorded (earlier rows are NaN)     */
    int32_t *t;                 /* (S) model timesteps, sampling order                 */
    double *tau;                /* (S) t / 1000                                         */
    double *ratio;              /* (S) λ_i = Σ_n ‖ε‖ / Σ_n ‖ε_q‖                        */
    eb_fit_line linear;         /* λ(τ) = k·τ + b                                       */
    double *linear_residual;    /* (S)                                                  */
    eb_fit_two_phase two_phase; /* b(τ) fitted to 1/λ_i                                 */
    double *two_phase_residual; /* (S) 1/λ_i − b(τ_i)                                   */
    int npoints;                /* TeaCache points: steps start+1 … S−1                  */
    double *tc_x, *tc_y;        /* (npoints) block-0 input drift, output drift           */
    eb_fit_poly teacache;
    double *tc_residual;        /* (npoints)                                             */
} eb_fit;

/* Every fit of recording r: it needs /eps/norm_q and 6 recorded steps (the
 * polynomial needs 5 drift points). two_phase.flags says whether the
 * two-phase fit is degenerate (eb_fit_read recomputes them). */
eb_status eb_fit_recording(eb_fit *f, const eb_rec_data *r);
/* The fit file (HDF5, docs/search.md), written atomically. */
eb_status eb_fit_write(const eb_fit *f, const char *path);
eb_status eb_fit_read(eb_fit *f, const char *path);
void eb_fit_free(eb_fit *f);

#endif
