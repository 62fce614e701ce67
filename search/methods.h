/* search/methods.h — the caching methods ebcache knows, one descriptor each
 * in one table (eb_methods): its name, the generator that builds its table at
 * a value of its native parameter, which parameter a speed target bisects,
 * its default noise scaling, what it needs (a fit, a recording, calibration
 * chains) and the line reports print. `search`, `schedule` and the ablation
 * all read this table: a new method is one row plus its generator. */
#ifndef EB_SEARCH_METHODS_H
#define EB_SEARCH_METHODS_H

#include "runtime/schedule.h"
#include "search/fit.h"

/* The native parameter of a method, and how a speed target finds it. */
typedef enum {
    EB_PARAM_INTERVAL = 0, /* an integer refresh interval in [1, S]: the largest caches the most       */
    EB_PARAM_THRESHOLD,    /* a real threshold ≥ 0: larger reuses more; bisected on (0, top]           */
    EB_PARAM_DELTA_SCALE,  /* eb-cache: the scale of δ(τ), bracketed ×4 from 1 and bisected geometrically */
    EB_PARAM_BUDGET,       /* the FLOP budget itself                                                   */
    EB_NPARAMS
} eb_param_kind;

/* "interval", "threshold", "delta_scale", "budget" (the provenance key). */
const char *eb_param_kind_name(eb_param_kind k);

/* The ε divisor each step of a searched table carries (fit.h). */
typedef enum {
    EB_SCALING_DEFAULT = 0, /* the method's own (eb_method.scaling)        */
    EB_SCALING_NONE,        /* 1                                            */
    EB_SCALING_TWO_PHASE,   /* 1 / b(τ): EB-Cache's noise scaling            */
    EB_SCALING_LINEAR,      /* λ(τ) = k·τ + b: ε-scaling                     */
    EB_SCALING_PER_STEP,    /* the measured ratio λ_i of each step           */
} eb_scaling;

eb_status eb_scaling_parse(eb_scaling *s, const char *name);
const char *eb_scaling_name(eb_scaling s);

typedef struct eb_search_opts eb_search_opts;

/* What a generator reads besides its parameter. */
typedef struct {
    const eb_schedule *sched;   /* the sampler's steps (S and the timesteps)                     */
    const eb_config *c;         /* the model: depth (Δ-DiT, budget), the FLOPs (budget)          */
    const eb_search_opts *o;    /* the method's other options (search.h)                         */
    const eb_rec_data *rec;     /* the recording (methods with needs & EB_NEEDS_RECORDING)       */
    const double *poly;         /* TeaCache's rescaling polynomial (npoly coefficients, np.poly1d order) */
    int npoly;
    const double *scale;        /* (S) the ε divisor of each step (NULL: 1)                      */
    void *search;               /* the search's state (methods with needs & EB_NEEDS_RUNNER)      */
} eb_method_input;

/* The table at parameter value p into *out; *out = NULL (EB_OK) when the
 * method gives up at p (a target that cannot be met there). */
typedef eb_status (*eb_method_generate)(eb_cache_schedule **out, const eb_method_input *in, double p);

enum { EB_NEEDS_FIT = 1, EB_NEEDS_RECORDING = 2, EB_NEEDS_RUNNER = 4, EB_NEEDS_ROUTER = 8 /* o->router */ };

typedef struct {
    const char *name;            /* as named in search --method, specs and reports                        */
    eb_method_generate generate; /* NULL: no table (the uncached run)                                     */
    eb_param_kind param;         /* the native parameter                                                  */
    double fixed;                /* the parameter when the method has one value (noise-scaling: interval 1); NaN */
    eb_scaling scaling;          /* the default ε divisor (EB_SCALING_NONE or a fitted one)               */
    unsigned needs;              /* EB_NEEDS_*                                                            */
    int sweeps;                  /* 1: ablations sweep it over speed targets; 0: one table                */
    const char *about;           /* one line for reports                                                  */
    /* threshold methods: a threshold at which the method reuses all it can, the upper end a speed
     * target bisects below; NULL: its FLOPs cannot be predicted on a recording, so no target */
    double (*top)(const eb_method_input *in);
} eb_method;

/* The registry, in report order. */
enum { EB_NMETHODS = 14 };
extern const eb_method eb_methods[EB_NMETHODS];

/* The method called `name`, or NULL. */
const eb_method *eb_method_find(const char *name);
/* eb_method_find, or EB_EINPUT listing the methods. */
eb_status eb_method_parse(const eb_method **m, const char *name);
/* Its row number in eb_methods. */
int eb_method_index(const eb_method *m);

/* The generators of the rows (methods.c; eb-cache's in search.c, which runs
 * its calibration chains). */
eb_status eb_generate_fora(eb_cache_schedule **out, const eb_method_input *in, double interval);
eb_status eb_generate_delta_dit(eb_cache_schedule **out, const eb_method_input *in, double interval);
eb_status eb_generate_teacache(eb_cache_schedule **out, const eb_method_input *in, double threshold);
eb_status eb_generate_fbcache(eb_cache_schedule **out, const eb_method_input *in, double threshold);
eb_status eb_generate_taylorseer(eb_cache_schedule **out, const eb_method_input *in, double interval);
eb_status eb_generate_budget(eb_cache_schedule **out, const eb_method_input *in, double budget);
eb_status eb_generate_smoothcache(eb_cache_schedule **out, const eb_method_input *in, double alpha);
eb_status eb_generate_ebcache(eb_cache_schedule **out, const eb_method_input *in, double delta_scale);
eb_status eb_generate_toca(eb_cache_schedule **out, const eb_method_input *in, double interval);
/* MagCache (search/magcache.c): skips every block by the cached residual while
 * the accumulated error of the recorded magnitude ratios stays below delta. */
eb_status eb_generate_magcache(eb_cache_schedule **out, const eb_method_input *in, double delta);
/* Learning-to-Cache (search/l2c.c): the router scores of o->router at threshold θ. */
eb_status eb_generate_l2c(eb_cache_schedule **out, const eb_method_input *in, double threshold);

/* Their threshold methods' upper ends (eb_method.top): MagCache's δ above any
 * accumulated error, the largest router score. NaN when the input cannot be read. */
double eb_magcache_top(const eb_method_input *in);
double eb_l2c_top(const eb_method_input *in);

/* MagCache's defaults (its Wan 2.1 script): at most K = 2 consecutive skips, the first 20 % of the model
 * calls kept. */
#define EB_MAGCACHE_K 2
#define EB_MAGCACHE_RETENTION 0.2

/* Dataset `name` of the recording's file (rec->path) as float64, checked
 * against want (rank extents, EB_H5_ANY for any; NULL: any shape): the datasets beyond eb_rec_data that some methods read
 * (/magcache/ratio, /drift/attn_lag, …). EB_EINPUT naming the file and the
 * dataset, and the `ebcache record` that writes it, when missing. */
eb_status eb_rec_read_extra(const eb_rec_data *rec, const char *name, int rank, const int64_t *want, double **v,
                            int64_t *dims);

#endif
