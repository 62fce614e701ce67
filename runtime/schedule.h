/* schedule.h — cache schedule tables (docs/schedule.md): the parsed table,
 * the validated per-step plan the cache engine runs, FLOP accounting, and the
 * generators for FORA, Δ-DiT, TeaCache, first-block cache, TaylorSeer and the
 * official EB-Cache cache_table.npy (ToCa's generator: search/toca.h).
 *
 * Steps are numbered in sampling order: step k = 0 is the first (noisiest)
 * model call, at the sampler's respaced index i = S−1−k and timestep
 * s->timestep[S−1−k].
 */
#ifndef EB_SCHEDULE_H
#define EB_SCHEDULE_H

#include "runtime/ebcache.h"

#include <stdio.h>

#define EB_SCHEDULE_VERSION_LINE "# ebcache schedule v1"

/* What one attention or MLP does at one step. */
typedef enum {
    EB_ACT_COMPUTE = 0, /* C: run it; refresh its cache if a later step needs one        */
    EB_ACT_REUSE,       /* R: the pre-gate output of its last compute, current gate      */
    EB_ACT_FORECAST,    /* Tk: Taylor forecast of order k from its last computes         */
    EB_ACT_SKIP,        /* S: the block is skipped; its run of S blocks adds the cached  */
                        /*    residual (output − input) of that run                      */
    EB_ACT_PARTIAL,     /* P<r> (MLP only, ToCa): recompute the ⌊r·T⌋ tokens of highest  */
                        /*    ToCa score, reuse the cached pre-gate output of the rest    */
} eb_act_kind;

typedef struct {
    uint8_t kind;  /* eb_act_kind                        */
    uint8_t order; /* Taylor order 1..4 of a forecast    */
} eb_act;

/* The tokens a partial action with ratio r recomputes out of T: ⌊r·T⌋ (r·T in
 * double, as ToCa's int(fresh_ratio · N)), at most T. */
int eb_partial_tokens(double ratio, int T);

/* ToCa's token score (docs/schedule.md, "ToCa"): per token, the L2-normalised
 * column sum of the head-mean attention map of the layer's last attention
 * compute, plus weight · (steps since the token's last MLP compute) / fresh;
 * then in every grid×grid patch of the token grid the best token gets
 * bonus × its score added. The ⌊r·T⌋ highest are recomputed. */
typedef struct {
    double weight; /* λ₃, soft_fresh_weight (ToCa's DiT default 0.25)   */
    double fresh;  /* N, fresh_threshold: the age normalisation (4)     */
    double bonus;  /* the spatial-uniformity bonus ratio (0.6)          */
    int grid;      /* its patch side in tokens (2)                      */
} eb_toca_score;

/* ToCa's DiT defaults: weight 0.25, fresh 4, bonus 0.6, grid 2. */
void eb_toca_score_defaults(eb_toca_score *p);

typedef enum { EB_POLICY_NONE = 0, EB_POLICY_TEACACHE, EB_POLICY_FBCACHE } eb_policy_kind;

#define EB_POLY_MAX 8

/* A dynamic policy: per step, computes or serves the whole model (TeaCache)
 * or the blocks after the first `blocks` (first-block cache) from the cached
 * residual, deciding from the relative L1 change of a probe tensor. */
typedef struct {
    eb_policy_kind kind;
    double threshold;
    int npoly;                 /* TeaCache rescale polynomial, highest degree first (np.poly1d) */
    double poly[EB_POLY_MAX];
    int blocks;                /* first-block cache: blocks always computed                     */
} eb_policy;

/* One table row: the actions of blocks [lo, hi] at one step (hi = −1: every block). */
typedef struct {
    int line;          /* 1-based line in the source, 0 for a generated row */
    int step, t;
    int lo, hi;
    eb_act attn, mlp;
    double scale;      /* ε is divided by it after guidance */
    double ratio;      /* a partial MLP: the fraction of tokens recomputed (else 0) */
} eb_sched_row;

struct eb_cache_schedule {
    char name[256];                          /* source file, for messages              */
    char method[64], params[256], model[128], sampler[128];
    int steps, steps_line;
    double flops;                            /* the predicted fraction the header claims (NaN: none) */
    eb_policy policy;
    int policy_line;
    eb_toca_score toca;                      /* the token score of partial actions (## toca:) */
    int toca_line;                           /* its directive's line (0: none, defaults)     */
    int nrows, cap_rows;
    eb_sched_row *rows;                      /* in step order, a step's "*" row first */
};

/* A contiguous run of blocks [lo, hi) served by one cached residual. */
typedef struct {
    int lo, hi;
} eb_block_run;

/* The table expanded for a model of L blocks and validated. */
typedef struct {
    int S, L;
    eb_act *act;          /* (S, L, 2): step, block, 0 = attention / 1 = MLP        */
    float *scale;         /* (S) ε divisor                                          */
    eb_policy policy;
    int nruns;
    eb_block_run *runs;   /* (nruns) every run a step skips (and the policy's run)  */
    uint8_t *run_use;     /* (S, nruns) 1: the step skips the run                   */
    uint8_t *run_record;  /* (S, nruns) 1: the step stores the run's residual       */
    int *slot_cap;        /* (L, 2) Taylor factors a module keeps (0: never reused) */
    double *ratio;        /* (S, L) a partial MLP's fraction of tokens (else 0)     */
    eb_toca_score toca;   /* the token score of partial actions                     */
    uint8_t *colsum;      /* (L) 1: the block's attention computes keep the column  */
                          /*     sums of its attention map (a later partial MLP)    */
    int partial;          /* 1: some action is partial                              */
} eb_cache_plan;

/* Expands and validates `cs` for `depth` blocks and the sampler `s` (NULL:
 * timesteps unchecked). EB_EINPUT naming the line. */
eb_status eb_cache_plan_build(eb_cache_plan *p, const eb_cache_schedule *cs, int depth, const eb_schedule *s);
void eb_cache_plan_free(eb_cache_plan *p);

/* Multiply-accumulates of one forward for one row, by part; embed, adaln,
 * attn, mlp and final add up to eb_forward_macs(c); tokens, colsum and score
 * price ToCa's partial MLPs. */
typedef struct {
    double embed;  /* patch and condition embeddings    */
    double adaln;  /* one block's modulation            */
    double attn;   /* one block's attention             */
    double mlp;    /* one block's MLP                   */
    double final;  /* final layer                       */
    double tokens; /* T: a partial MLP costs mlp·K/T    */
    double colsum; /* an attention compute's column sums of its map (NH·T², one add each) */
    double score;  /* a partial MLP's token score (NH·T: the head mean; the sort is not counted) */
} eb_macs_parts;
void eb_macs_split(eb_macs_parts *mp, const eb_config *c);

/* MACs per row of `step` under plan p; policy_skip: the dynamic policy
 * serves this step from its residual. A partial MLP of K tokens costs
 * mlp·K/T + score, an attention compute that keeps its column sums attn + colsum. */
double eb_plan_step_macs(const eb_cache_plan *p, const eb_macs_parts *mp, int step, int policy_skip);

/* The table in its file format (docs/schedule.md) to f; eb_cache_schedule_write
 * writes it to a path atomically. */
void eb_cache_schedule_print(FILE *f, const eb_cache_schedule *cs);

/* Writes the table as a picture to f: its method, sampler and policy, then per
 * step the timestep, ε scale, one character per block for attention and MLP
 * (C compute, R reuse, 1–4 Taylor forecast, - skipped by the cached residual)
 * and the step's share of the uncached MACs on model c (label names it), and
 * the predicted total. `path` names the table. EB_EINPUT when the table does
 * not fit c. */
eb_status eb_cache_schedule_describe(FILE *f, const eb_cache_schedule *cs, const eb_config *c, const char *path,
                                     const char *label);

/* ------------------------------------------------------------------------ */
/* Generators: a table for the sampler `s` (its steps and timesteps).        */

/* An empty table of s->S steps with provenance; rows are added with eb_cache_schedule_add. */
eb_status eb_cache_schedule_new(eb_cache_schedule **out, const eb_schedule *s, const char *method,
                                const char *params);
/* Appends a row (blocks [lo, hi], hi = −1 for all) at `step` with timestep from s. */
eb_status eb_cache_schedule_add(eb_cache_schedule *cs, const eb_schedule *s, int step, int lo, int hi, eb_act attn,
                                eb_act mlp, double scale);
/* The same with a partial MLP (P) recomputing the fraction `ratio` ∈ [0, 1] of its tokens. */
eb_status eb_cache_schedule_add_partial(eb_cache_schedule *cs, const eb_schedule *s, int step, int lo, int hi,
                                        eb_act attn, double ratio, double scale);

/* FORA: compute every block at steps k ≡ 0 (mod interval), reuse attention and MLP between. */
eb_status eb_cache_schedule_fora(eb_cache_schedule **out, const eb_schedule *s, int interval);
/* Δ-DiT: every step k ≢ 0 (mod interval) skips `blocks` blocks by their cached
 * residual: the rear ones for k < boundary, the front ones from step `boundary` on. */
eb_status eb_cache_schedule_delta_dit(eb_cache_schedule **out, const eb_schedule *s, int depth, int interval,
                                      int blocks, int boundary);
/* TeaCache: all rows compute, the policy skips whole-model forwards at run time. */
eb_status eb_cache_schedule_teacache(eb_cache_schedule **out, const eb_schedule *s, double threshold,
                                     const double *poly, int npoly);
/* First-block cache: blocks [0, blocks) always run; the rest reuse their residual
 * while the first blocks' residual changes by less than `threshold`. */
eb_status eb_cache_schedule_fbcache(eb_cache_schedule **out, const eb_schedule *s, double threshold, int blocks);
/* TaylorSeer: compute the first `warmup` steps and every `interval`-th after
 * the last of them; forecast with order `order` (1..4) between. */
eb_status eb_cache_schedule_taylorseer(eb_cache_schedule **out, const eb_schedule *s, int interval, int order,
                                       int warmup);
/* The official EB-Cache table: an int64 .npy of length S indexed by the
 * sampler's index i (entry S−1 is the first step); 0 = compute both, 2 = reuse
 * both, other values reuse attention and compute the MLP; every step's ε is
 * divided by `delta`. EB_EINPUT naming the file. */
eb_status eb_cache_schedule_from_npy(eb_cache_schedule **out, const char *path, const eb_schedule *s, double delta);

/* Reads a strict .npy of int64 ('<i8', C order, 1-D): *data malloc'd. */
eb_status eb_npy_read_i64(const char *path, int64_t **data, int64_t *n);

/* p(x) for coefficients poly (npoly), highest degree first (np.poly1d). */
double eb_poly_eval(const double *poly, int npoly, double x);

/* The TeaCache rule, one step: a step that must compute (the first, the last,
 * or one without a previous probe) resets the sum; otherwise the rescaled
 * change poly(change) accumulates and the step reuses the cached residual
 * while the sum stays below the threshold (reaching it computes and resets).
 * Returns 1 to reuse. The engine and the schedule search share it. */
int eb_teacache_skip(double *accumulated, double change, const eb_policy *p, int must_compute);

#endif
