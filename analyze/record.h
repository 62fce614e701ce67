/* record.h — the instrumented runner behind `ebcache record` (docs/recording.md).
 *
 * Runs sampling chains with an observer on the model (model.h eb_observer)
 * and reduces, per step, what a researcher needs to see caching and exposure
 * bias: the SNR of the sampled x̂_t against the schedule's, the variance of
 * x̂_t − √ᾱ x0 with known data, per-sample ε norms along the chain and on
 * training-like inputs q(x_t | x0), the drift of every block's pre-gate
 * attention / MLP output between steps, and with a cache schedule the
 * deviation from an uncached chain with the same noise.
 *
 * Steps are numbered in sampling order (step k at the sampler's respaced index
 * i = S−1−k). Every per-step array has S rows; rows before `start_step` and
 * rows without a defined value are NaN (docs/recording.md says which).
 * Statistics are sums over the whole run, so a run may be split into batches
 * of any size; memory for them is O(S·L·K + S·N) for K batches (each batch's
 * sums are kept until they are added in batch order). The working set besides holds
 * one previous feature per block and module (as much as a FORA cache) and the
 * current batch's chain x̂_t (S·B·C·H·W floats on the host).
 */
#ifndef EB_RECORD_H
#define EB_RECORD_H

#include <stdint.h>

#include "runtime/comm.h"
#include "runtime/ebcache.h"
#include "runtime/h5io.h"

/* Which features to dump in full (`--dump-features`): steps × blocks, from the
 * first batch of the recorded run, as /features/{attn,mlp}/step<k>/block<l>. */
typedef struct {
    int nsteps, nblocks;
    const int32_t *steps;   /* (nsteps) in [0, S)  */
    const int32_t *blocks;  /* (nblocks) in [0, L) */
} eb_record_dump;

typedef struct {
    const eb_schedule *sched;            /* the sampler's respaced steps                          */
    eb_sampler_opts so;                  /* sampler, guidance, seed (progress is honoured)        */
    const eb_cache_schedule *cache;      /* NULL: record an uncached run; else the cached run     */
                                         /* and, alongside, an uncached reference chain           */
    const float *x0;                     /* (N, C, H, W) data, or NULL                            */
    int start_step;                      /* with x0: chains start from q(x_t | x0) at this step   */
    int batch;                           /* samples per model batch (≤ 0: all N at once)          */
    int eps_q;                           /* 1: the second pass for /eps/norm_q                    */
    eb_record_dump dump;                 /* nsteps = 0: no feature dumps                          */
    int lags;                            /* drift against 1..lags steps back (/drift/attn_lag; 0: */
                                         /* EB_RECORD_LAGS, SmoothCache's lookahead; 1: only the  */
                                         /* previous step, no extra buffers)                      */
    const eb_comm *comm;                 /* NULL: one process; else this rank records its batches */
} eb_record_opts;

/* The default of eb_record_opts.lags: SmoothCache's default calibration lookahead. */
#define EB_RECORD_LAGS 3

/* The statistics of one chain set (the recorded run, or the uncached
 * reference of a cached one). Arrays are malloc'd, row-major, NaN-filled
 * where undefined. */
typedef struct {
    double *snr_trajectory;  /* (S)    Σ ᾱ‖x̂_0‖² / Σ ‖x̂_t − √ᾱ x̂_0‖²                    */
    double *snr_data;        /* (S)    the same against the data x0 (NULL without data)   */
    double *var_ratio;       /* (S)    Var(x̂_t − √ᾱ x0) / (1 − ᾱ) (NULL without data)     */
    double *snr_ratio;       /* (S)    snr_trajectory / (P·ᾱ/(1 − ᾱ)), P = mean x̂_0² of this   */
                             /*        chain's final samples: 1 = the schedule's noise level */
    double *snr_data_ratio;  /* (S)    snr_data / (P0·ᾱ/(1 − ᾱ)), P0 = mean x0² (NULL w/o data) */
    double signal_power;     /* P: mean x̂_0² over the chain's final samples (all elements)  */
    double data_power;       /* P0: mean x0² of the data (NaN without data)               */
    double *eps_norm;        /* (S, N) ‖ε‖ per sample along the chain (after the ε scale)  */
    double *eps_norm_q;      /* (S, N) ‖ε‖ on q(x_t | x0) inputs (NULL without the pass)  */
    double *drift_attn;      /* (S, L) Σ|F_k − F_prev| / Σ|F_prev|, attention pre-gate    */
    double *drift_mlp;       /* (S, L) the same for the MLP                               */
    double *drift_attn_cos;  /* (S, L) cosine similarity of F_k and F_prev                */
    double *drift_mlp_cos;   /* (S, L)                                                    */
    double *drift_block0;    /* (S)    relative L1 change of block 0's modulated input    */
    double *drift_output;    /* (S)    relative L1 change of the model output             */
    /* MagCache's calibration and SmoothCache's lookahead (docs/recording.md) */
    double *mag_ratio;       /* (S, 2) mean over tokens of ‖r_k‖ / ‖r_prev‖ per token, r the  */
                             /*        blocks' total residual, column 0 the conditional half, */
                             /*        1 the unconditional one (NaN without guidance)         */
    double *drift_attn_lag;  /* (lags, S, L) Σ|F_k − F_{k−j}| / Σ|F_{k−j}|, row j−1 = lag j  */
    double *drift_mlp_lag;   /* (lags, S, L) the same for the MLP (row 0 = drift_mlp)        */
} eb_record_stats;

typedef struct {
    int S, L, N, start_step;
    int lags;                /* rows of drift_*_lag                                       */
    int C, H;                /* image channels and side                                   */
    int32_t *t;              /* (S) model timesteps, step order                           */
    double *alpha_bar;       /* (S) ᾱ of each step                                        */
    double *snr_nominal;     /* (S) ᾱ / (1 − ᾱ)                                           */
    eb_record_stats run;     /* the recorded (cached, with a schedule) run                */
    int has_reference;       /* 1 with a cache schedule                                   */
    eb_record_stats reference; /* the uncached chain with the same noise (eps_norm_q NULL) */
    double *deviation_x;     /* (S) ‖x̂_cached − x̂_uncached‖ / ‖x̂_uncached‖ (NULL uncached) */
    double *deviation_eps;   /* (S) the same for the guided ε                             */
    float *samples;          /* (N, C, H, W) the recorded run's final samples             */
    double macs, macs_uncached; /* the recorded run's cost (eb_cache_stats)                */
} eb_recording;

/* Records sampling chains from x_T (N, C, H, W) with labels y (N). With o->x0
 * the chains start instead from √ᾱ x0 + √(1−ᾱ) x_T at o->start_step (x_T is
 * the noise z). Feature dumps go to `dump_to` (may be NULL when no dump is
 * asked for). *rec is zeroed first and holds malloc'd arrays on success
 * (eb_recording_free); on failure it is freed. EB_EINPUT for bad options
 * (naming them), EB_ERUNTIME when the run fails or produces non-finite values.
 *
 * Every sum is taken per model batch (from zero) and the batches' sums are
 * added in batch order, so any number of ranks gives the bits of one process.
 * With o->comm of several ranks it is collective: every rank passes the whole
 * run (x_T, y, x0 of all N) and records the whole batches eb_shard_batches
 * gives it; the sums are reduced in batch order (eb_comm_sum_items) and the
 * per-sample rows gathered, so every rank returns the whole recording. Its
 * first collective is eb_comm_agree on its own preparation: a rank that
 * cannot call it (its own preparation failed) calls eb_comm_agree(comm, its
 * status) instead, and every rank then fails with that rank's message. The
 * first batch, whose features are dumped, is rank 0's. With several ranks the
 * progress line is the one across ranks (comm.h), not the sampler's. */
eb_status eb_record_run(eb_model *m, const eb_record_opts *o, const float *x_T, const int32_t *y, int N,
                        eb_recording *rec, eb_h5w *dump_to);

void eb_recording_free(eb_recording *rec);

/* Writes every dataset of the recording (names in docs/recording.md) and the
 * attributes it knows (steps, N, start_step, data, MACs) into w. */
eb_status eb_recording_write(const eb_recording *rec, eb_h5w *w);

/* The q(x_t | x0) noise of sample n at respaced index i (docs/recording.md):
 * a stream of its own, disjoint from x_T's and the sampler's. */
static inline uint64_t eb_stream_q(int n, int i) { return ((uint64_t)n << 20) | ((uint64_t)1 << 19) | (uint64_t)i; }

#endif
