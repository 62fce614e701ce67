/* pipeline/searching.h — `fit` and `search` as library calls: the fits of a
 * recording written to a fit file, and a cache schedule searched on a
 * recording (search/search.h) and written with its provenance. eb-cache's
 * calibration chains replay the recorded run (pipeline/replay.h). */
#ifndef EB_PIPELINE_SEARCHING_H
#define EB_PIPELINE_SEARCHING_H

#include "search/fit.h"
#include "search/search.h"

/* Fits recording `record` (eb_fit_recording) into *fit (may be NULL) and,
 * when output is not NULL, writes them there. rec (may be NULL) gets the
 * recording read, for a caller that shows it (eb_rec_data_free it). */
eb_status eb_fit_to_file(const char *record, const char *output, eb_fit *fit, eb_rec_data *rec);

/* "the two-phase fit is degenerate (what each flag found): THEN" into buf
 * when p is degenerate (p->flags), else ""; returns buf. */
const char *eb_fit_warning(char *buf, size_t cap, const eb_fit_two_phase *p, const char *then);

typedef struct {
    const char *record;   /* REC.h5 (required)                                                    */
    const char *fit;      /* FIT.h5 of this recording (NULL: fitted from the recording)          */
    const char *config;   /* the model the FLOPs are counted on: a DiT name ("XL/2"), or          */
    const char *model;    /*   a model file; both NULL: the configuration the recording stores    */
    eb_search_opts opts;  /* eb_search_defaults                                                   */
    int threads;          /* for eb-cache's calibration chains (0: all cores)                     */
    int progress;         /* 1: a chain/step progress line with ETA on stderr when it is a terminal */
    const char *output;   /* the table (required)                                                 */
} eb_search_params;

void eb_search_params_defaults(eb_search_params *p);

typedef struct {
    int met;              /* 0: the target is out of the method's reach: nothing written, see note */
    char note[512];
    double flops, deviation, param; /* predicted FLOP fraction, drift proxy, the parameter used  */
    int runs;             /* calibration chains run                                                */
    char method[64], params[256]; /* the table's method and parameters                            */
    char warning[1024];   /* a degenerate two-phase fit, and what the search did about it ("")    */
} eb_search_outcome;

/* Searches and writes p->output. A target out of reach is not an error:
 * EB_OK with out->met = 0 and nothing written. */
eb_status eb_search_to_file(const eb_search_params *p, eb_search_outcome *out);

#endif
