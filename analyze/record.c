/* record.c — the instrumented runner: an observer on the model reduces every
 * step to a few sums (backend feature_drift for activations, host loops for
 * the sampler's x_t and ε), added over batches and divided at the end.
 * Definitions and units: docs/recording.md. */
#include "analyze/record.h"

#include "runtime/cache.h"
#include "runtime/check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Sums of one chain set, over one batch or (added in batch order) the run: views into a
 * batch_sums block. A quantity measured by no batch stays NaN. */
typedef struct {
    double *module;      /* (S, L, 2, EB_DRIFT_SUMS) attention / MLP pre-gate outputs    */
    double *module_seen; /* (S, L, 2) batches that measured it                           */
    double *block0;      /* (S, EB_DRIFT_SUMS) block 0's modulated input                 */
    double *output;      /* (S, EB_DRIFT_SUMS) model output                              */
    double *probe_seen;  /* (S, 2) block 0 input, output                                 */
    double *snr;         /* (S, 5): Σ ᾱ‖x̂0‖², Σ‖x̂t − √ᾱ x̂0‖², Σ ᾱ‖x0‖², Σ d, Σ d² (d = x̂t − √ᾱ x0) */
    double *elements;    /* (S) elements behind the SNR sums                             */
} run_sums;

/* Sums behind MagCache's magnitude ratios and SmoothCache's lagged drift (docs/recording.md):
 * views into a batch_sums block like run_sums. A quantity measured by no batch stays NaN. */
typedef struct {
    int lags;          /* K: lag 1 is the drift of run_sums, lags 2..K are here            */
    double *lag;       /* (S, L, 2, K − 1, 2): Σ|F_k − F_{k−j}|, Σ|F_{k−j}| for j = 2..K     */
    double *lag_seen;  /* (S, L, 2, K − 1) batches that measured it                        */
    double *mag;       /* (S, 2): Σ over the half's tokens of ‖r_k‖ / ‖r_prev‖              */
    double *mag_count; /* (S, 2): tokens behind it                                         */
} method_sums;

/* Every sum of one batch (or, added in batch order, of the run) in one block of `n` doubles, so
 * that the batches' blocks are added as vectors in batch order (eb_comm_sum_items): any split of
 * the batches over ranks gives the bits of one process. A new sum gets a row in block_view. */
typedef struct {
    double *base;
    size_t n;
    run_sums run, ref; /* the recorded run; the uncached reference of a cached one      */
    method_sums run_m, ref_m; /* their methods' sums                                    */
    double *dev;       /* (S, 4): Σ‖Δx‖², Σ‖x_ref‖², Σ‖Δε‖², Σ‖ε_ref‖²                   */
    double *cost;      /* (2): MACs executed, MACs uncached                              */
} batch_sums;

enum { SNR_OWN_SIGNAL, SNR_OWN_NOISE, SNR_DATA_SIGNAL, SNR_DATA_SUM, SNR_DATA_SQ, SNR_SUMS };


/* The observer's working set for them, for one chain at a time. */
typedef struct {
    float **hist;      /* (L·2·(K − 1)) backend: F_{k−2} … F_{k−K} of each module, newest first */
    int *nhist;        /* (L·2) valid entries of hist                                       */
    float *scratch;    /* backend (cap·T·D): a copy a lagged reduction may overwrite         */
    float *h0, *res;   /* backend (cap·T·D): tokens after the embedding; the blocks' residual */
    float *res_host;   /* host (cap·T·D)                                                    */
    double *norm_prev; /* host (cap·T): ‖r‖ per token at the chain's previous forward        */
    int have_norm;
} method_probe;

/* The observer's state for one chain at a time. */
typedef struct {
    eb_model *m;
    const eb_record_opts *o;
    int S, L, k0;          /* steps, blocks, start step                                   */
    int N, first, b;       /* all samples; this batch's first sample and size             */
    int step;              /* global step of the forward in flight                        */
    run_sums *sums;
    double *eps_norm;      /* (S, N) of the run being observed                            */
    float **prev;          /* (L·2) previous pre-gate feature, backend (cap·T·D)          */
    float *prev_block0, *probe, *mod0, *prev_out; /* backend                              */
    uint8_t *have;         /* (L·2 + 2) a previous value exists this chain                */
    float *xs;             /* (S − k0, b, C, H, W) the chain's x_t, host                  */
    float *eps;            /* (S − k0, b, C, H, W) its ε, or NULL when not kept           */
    const float *ref_xs, *ref_eps; /* the reference chain, for the deviation (or NULL)   */
    double *dev;           /* (S, 4) of batch_sums, or NULL without a reference          */
    eb_h5w *dump_to;       /* feature dumps of this chain (NULL: none)                    */
    float *dump_host;      /* (cap·T·D) download buffer                                   */
    eb_status error;       /* a hook's failure, reported at the next step                 */
    method_sums *msums;    /* MagCache's and SmoothCache's sums                           */
    method_probe probe_m;  /* their working set                                           */
} recorder;

static size_t feature_elems(const eb_config *c, int B) { return (size_t)B * eb_tokens(c) * c->hidden_size; }
static size_t image_elems(const eb_config *c) { return (size_t)c->in_channels * c->input_size * c->input_size; }

static void add_sums(double *acc, const double *s) {
    for (int j = 0; j < EB_DRIFT_SUMS; j++) acc[j] += s[j];
}

/* prev ← cur; when a previous value existed, its change is added to acc and counted. */
static void track(eb_model *m, float *prev, const float *cur, size_t n, uint8_t *have, double *acc, double *seen) {
    if (*have) {
        double s[EB_DRIFT_SUMS];
        m->be->feature_drift(s, prev, cur, n);
        add_sums(acc, s);
        (*seen)++;
    } else {
        m->be->copy(prev, cur, n);
        *have = 1;
    }
}

static int listed(const int32_t *v, int n, int x) {
    for (int i = 0; i < n; i++)
        if (v[i] == x) return 1;
    return 0;
}

/* Writes f (B, T, D) as /features/{attn,mlp}/step<k>/block<l>. */
static eb_status dump_feature(recorder *r, int l, int module, const float *f, int B) {
    const eb_config *c = &r->m->cfg;
    size_t n = feature_elems(c, B);
    char name[96];
    snprintf(name, sizeof name, "/features/%s/step%d/block%d", module ? "mlp" : "attn", r->step, l);
    r->m->be->download(r->dump_host, f, n * sizeof(float));
    int64_t dims[3] = {B, eb_tokens(c), c->hidden_size};
    return eb_h5w_write(r->dump_to, name, EB_H5_F32, r->dump_host, 3, dims);
}

/* SmoothCache's lags 2..K of module (l, module): its change against the
 * features it had 2..K forwards ago in this chain; then the history shifts
 * by one (prev, still F_{k−1}, becomes lag 2). Runs before track(). */
static void lag_track(recorder *r, eb_model *m, int l, int module, const float *f, size_t n) {
    const int K = r->msums->lags, slot = l * 2 + module;
    if (K < 2) return;
    method_probe *p = &r->probe_m;
    float **hist = p->hist + (size_t)slot * (K - 1);
    const size_t at = ((size_t)r->step * r->L + l) * 2 + module;
    for (int j = 0; j < p->nhist[slot]; j++) {
        double s[EB_DRIFT_SUMS], *acc = r->msums->lag + (at * (K - 1) + j) * 2;
        float *base = hist[j];
        if (j < K - 2) m->be->copy(base = p->scratch, hist[j], n); /* feature_drift overwrites what it compares */
        m->be->feature_drift(s, base, f, n);
        acc[0] += s[EB_DRIFT_L1], acc[1] += s[EB_DRIFT_BASE_L1];
        r->msums->lag_seen[at * (K - 1) + j]++;
    }
    if (!r->have[slot]) return;
    float *oldest = hist[K - 2];
    memmove(hist + 1, hist, (size_t)(K - 2) * sizeof *hist);
    hist[0] = oldest;
    m->be->copy(hist[0], r->prev[slot], n);
    if (p->nhist[slot] < K - 1) p->nhist[slot]++;
}

static void on_branch(void *ctx, eb_model *m, int l, int module, const float *f, int B) {
    recorder *r = ctx;
    size_t at = ((size_t)r->step * r->L + l) * 2 + module;
    lag_track(r, m, l, module, f, feature_elems(&m->cfg, B));
    track(m, r->prev[l * 2 + module], f, feature_elems(&m->cfg, B), &r->have[l * 2 + module],
          r->sums->module + at * EB_DRIFT_SUMS, &r->sums->module_seen[at]);
    const eb_record_dump *d = &r->o->dump;
    if (r->dump_to && !r->error && listed(d->steps, d->nsteps, r->step) && listed(d->blocks, d->nblocks, l))
        r->error = dump_feature(r, l, module, f, B);
}

/* TeaCache's indicator, whatever the cache does with block 0: LN(tokens)·(1 + scale_msa) + shift_msa. */
static void on_embedded(void *ctx, eb_model *m, int B) {
    recorder *r = ctx;
    const eb_config *c = &m->cfg;
    int D = c->hidden_size, T = eb_tokens(c);
    m->cond_be->linear_rows(r->mod0, m->acts.cond_silu, m->p.adaln_w, m->p.adaln_b, B, D, 2 * D); /* as the adaLN */
    m->be->ln_modulate(r->probe, m->acts.tokens, r->mod0, r->mod0 + D, B, T, D, 2 * D);
    m->be->copy(r->probe_m.h0, m->acts.tokens, feature_elems(c, B)); /* MagCache's residual starts here */
    track(m, r->prev_block0, r->probe, feature_elems(c, B), &r->have[2 * r->L], r->sums->block0 + r->step * EB_DRIFT_SUMS,
          &r->sums->probe_seen[r->step * 2]);
}

/* MagCache's calibration: r = tokens after the last block − tokens after the
 * embedding (the whole model batch), ‖r‖ per token over the hidden size; the
 * ratio to the previous forward's per token, summed per CFG half (rows
 * [0, B/2) conditional, [B/2, B) unconditional; all rows are conditional
 * without guidance). */
static void mag_track(recorder *r, eb_model *m, int B) {
    const eb_config *c = &m->cfg;
    const int T = eb_tokens(c), D = c->hidden_size, guided = B == 2 * r->b;
    const size_t n = feature_elems(c, B);
    method_probe *p = &r->probe_m;
    m->be->add_scaled(p->res, m->acts.tokens, -1, p->h0, n);
    m->be->download(p->res_host, p->res, n * sizeof(float));
    double *sum = r->msums->mag + (size_t)r->step * 2, *count = r->msums->mag_count + (size_t)r->step * 2;
    for (int b = 0; b < B; b++) {
        const int half = guided && b >= B / 2;
        for (int t = 0; t < T; t++) {
            const float *v = p->res_host + ((size_t)b * T + t) * D;
            double sq = 0;
            for (int d = 0; d < D; d++) sq += (double)v[d] * v[d];
            double norm = sqrt(sq), *prev = &p->norm_prev[(size_t)b * T + t];
            if (p->have_norm) sum[half] += norm / *prev, count[half]++;
            *prev = norm;
        }
    }
    p->have_norm = 1;
}

static void on_output(void *ctx, eb_model *m, int B) {
    recorder *r = ctx;
    const eb_config *c = &m->cfg;
    size_t n = (size_t)B * eb_out_channels(c) * c->input_size * c->input_size;
    mag_track(r, m, B);
    track(m, r->prev_out, m->acts.out, n, &r->have[2 * r->L + 1], r->sums->output + r->step * EB_DRIFT_SUMS,
          &r->sums->probe_seen[r->step * 2 + 1]);
}

/* Host side of step k: keeps x_t (and ε), per-sample ε norms, the deviation from the reference. */
static eb_status on_step(void *ctx, int k, const float *x, const float *eps, int N) {
    recorder *r = ctx;
    const eb_config *c = &r->m->cfg;
    const size_t per = image_elems(c), HW = (size_t)c->input_size * c->input_size;
    const int Co = eb_out_channels(c), local = r->step - r->k0;
    if (r->error) return r->error;
    if (k != local || N != r->b)
        return eb_fail(EB_ERUNTIME, "sampler step %d of %d rows, expected step %d of %d", k, N, local, r->b);
    float *xs = r->xs + (size_t)local * N * per;
    memcpy(xs, x, (size_t)N * per * sizeof(float));
    double *dev = r->dev ? r->dev + (size_t)r->step * 4 : NULL;
    for (int n = 0; n < N; n++) {
        const float *e = eps + (size_t)n * Co * HW;
        double sq = 0;
        for (size_t j = 0; j < per; j++) sq += (double)e[j] * e[j];
        r->eps_norm[(size_t)r->step * r->N + r->first + n] = sqrt(sq);
        if (r->eps) memcpy(r->eps + ((size_t)local * N + n) * per, e, per * sizeof(float));
        if (!dev) continue;
        const float *xr = r->ref_xs + ((size_t)local * N + n) * per, *er = r->ref_eps + ((size_t)local * N + n) * per;
        for (size_t j = 0; j < per; j++) {
            double dx = (double)xs[n * per + j] - xr[j], de = (double)e[j] - er[j];
            dev[0] += dx * dx, dev[1] += (double)xr[j] * xr[j], dev[2] += de * de, dev[3] += (double)er[j] * er[j];
        }
    }
    r->step++;
    return EB_OK;
}

/* After a chain: its x_t against its final sample and against the data. */
static void add_snr_sums(const recorder *r, const double *alpha_bar, const float *final, const float *x0) {
    const size_t per = image_elems(&r->m->cfg);
    for (int k = r->k0; k < r->S; k++) {
        double ab = alpha_bar[k], sa = sqrt(ab), *s = r->sums->snr + (size_t)k * SNR_SUMS;
        const float *xs = r->xs + (size_t)(k - r->k0) * r->b * per;
        for (size_t j = 0; j < (size_t)r->b * per; j++) {
            double own = xs[j] - sa * final[j];
            s[SNR_OWN_SIGNAL] += ab * (double)final[j] * final[j];
            s[SNR_OWN_NOISE] += own * own;
            if (!x0) continue;
            double d = xs[j] - sa * x0[j];
            s[SNR_DATA_SIGNAL] += ab * (double)x0[j] * x0[j];
            s[SNR_DATA_SUM] += d, s[SNR_DATA_SQ] += d * d;
        }
        r->sums->elements[k] += (double)r->b * per;
    }
}

/* Runs one chain from x (b rows, updated to the final sample) with the observer attached. */
static eb_status observed_chain(recorder *r, const eb_schedule *s, const eb_sampler_opts *so,
                                const eb_cache_schedule *cs, float *x, const int32_t *y, eb_cache_stats *stats) {
    eb_observer obs = {.ctx = r, .embedded = on_embedded, .branch = on_branch, .output = on_output, .step = on_step};
    memset(r->have, 0, (size_t)r->L * 2 + 2);
    memset(r->probe_m.nhist, 0, (size_t)r->L * 2 * sizeof *r->probe_m.nhist);
    r->probe_m.have_norm = 0;
    r->step = r->k0;
    r->error = EB_OK;
    r->m->obs = &obs;
    eb_status st = eb_sample_cached(r->m, s, so, cs, x, y, r->b, r->first, stats);
    r->m->obs = NULL;
    return st ? st : r->error;
}

/* /eps/norm_q: the guided ε on √ᾱ x0 + √(1−ᾱ) z (z from eb_stream_q) at every recorded step. */
static eb_status eps_q_pass(eb_model *m, const eb_record_opts *o, const eb_recording *rec, const float *x0,
                            const int32_t *y, int first, int b, double *norm_q, float *xq, float *out, int32_t *t) {
    const eb_config *c = &m->cfg;
    const size_t per = image_elems(c), HW = (size_t)c->input_size * c->input_size;
    const int guided = o->so.cfg_scale != 1.0f, Co = eb_out_channels(c);
    for (int k = rec->start_step; k < rec->S; k++) {
        const int i = rec->S - 1 - k;
        double sa = sqrt(rec->alpha_bar[k]), sb = sqrt(1 - rec->alpha_bar[k]);
        for (int n = 0; n < b; n++) {
            float *row = xq + (size_t)n * per;
            eb_rng_fill_normal(row, per, eb_rng_key(o->so.seed, eb_stream_q(first + n, i)));
            for (size_t j = 0; j < per; j++) row[j] = (float)(sa * x0[n * per + j] + sb * row[j]);
            t[n] = rec->t[k];
        }
        eb_status st = eb_forward_run(m, NULL, 0, out, xq, t, y, b, guided, o->so.cfg_scale, o->so.guide_channels);
        if (st) return eb_fail(st, "eps_q pass at step %d: %s", k, eb_last_error());
        for (int n = 0; n < b; n++) {
            double sq = 0;
            for (size_t j = 0; j < per; j++) sq += (double)out[n * Co * HW + j] * out[n * Co * HW + j];
            norm_q[(size_t)k * rec->N + first + n] = sqrt(sq);
        }
    }
    return EB_OK;
}

/* ------------------------------------------------------------------------ */
/* Allocation                                                                */

static double *nan_array(size_t n) {
    double *a = malloc((n ? n : 1) * sizeof *a);
    for (size_t i = 0; a && i < n; i++) a[i] = NAN;
    return a;
}

static void stats_free(eb_record_stats *s) {
    double **all[] = {&s->snr_trajectory, &s->snr_data, &s->var_ratio, &s->snr_ratio, &s->snr_data_ratio,
                      &s->eps_norm, &s->eps_norm_q,
                      &s->drift_attn, &s->drift_mlp, &s->drift_attn_cos, &s->drift_mlp_cos, &s->drift_block0,
                      &s->drift_output, &s->mag_ratio, &s->drift_attn_lag, &s->drift_mlp_lag};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(*all[i]), *all[i] = NULL;
}

static int stats_alloc(eb_record_stats *s, int S, int L, int N, int data, int eps_q) {
    s->snr_trajectory = nan_array(S), s->snr_ratio = nan_array(S);
    s->signal_power = s->data_power = NAN;
    s->eps_norm = nan_array((size_t)S * N);
    s->drift_attn = nan_array((size_t)S * L), s->drift_mlp = nan_array((size_t)S * L);
    s->drift_attn_cos = nan_array((size_t)S * L), s->drift_mlp_cos = nan_array((size_t)S * L);
    s->drift_block0 = nan_array(S), s->drift_output = nan_array(S);
    int ok = s->snr_trajectory && s->snr_ratio && s->eps_norm && s->drift_attn && s->drift_mlp && s->drift_attn_cos &&
             s->drift_mlp_cos && s->drift_block0 && s->drift_output;
    if (data) ok = ok && (s->snr_data = nan_array(S)) && (s->var_ratio = nan_array(S)) &&
                  (s->snr_data_ratio = nan_array(S));
    if (eps_q) ok = ok && (s->eps_norm_q = nan_array((size_t)S * N));
    return ok;
}

/* The methods' statistics: MagCache's ratios (S, 2), the lagged drift (lags, S, L). */
static int method_stats_alloc(eb_record_stats *s, int S, int L, int lags) {
    return (s->mag_ratio = nan_array((size_t)S * 2)) && (s->drift_attn_lag = nan_array((size_t)lags * S * L)) &&
           (s->drift_mlp_lag = nan_array((size_t)lags * S * L));
}

/* Divides the methods' sums: lag 1 is the drift already in st (drift_attn, drift_mlp). */
static void finish_method_stats(eb_record_stats *st, const method_sums *u, const eb_recording *rec) {
    const int S = rec->S, L = rec->L, K = u->lags;
    for (int k = 0; k < S; k++) {
        for (int h = 0; h < 2; h++)
            if (u->mag_count[k * 2 + h] > 0) st->mag_ratio[k * 2 + h] = u->mag[k * 2 + h] / u->mag_count[k * 2 + h];
        for (int l = 0; l < L; l++) {
            const size_t at = (size_t)k * L + l;
            st->drift_attn_lag[at] = st->drift_attn[at], st->drift_mlp_lag[at] = st->drift_mlp[at];
            for (int j = 0; j + 1 < K; j++)
                for (int m = 0; m < 2; m++) {
                    const size_t i = ((at * 2 + m) * (K - 1) + j);
                    (m ? st->drift_mlp_lag : st->drift_attn_lag)[(size_t)(j + 1) * S * L + at] =
                        u->lag_seen[i] ? u->lag[2 * i] / u->lag[2 * i + 1] : NAN;
                }
        }
    }
}

/* The next n doubles of a block at base (NULL while only counting). */
static double *take(double *base, size_t *at, size_t n) {
    double *p = base ? base + *at : NULL;
    *at += n;
    return p;
}

/* Points b's fields into base (NULL: only counts) and returns the doubles they take; `lags`
 * steps back for the lagged drift. */
static size_t block_view(batch_sums *b, double *base, int S, int L, int lags) {
    run_sums *u[2] = {&b->run, &b->ref};
    method_sums *v[2] = {&b->run_m, &b->ref_m};
    const size_t lagged = (size_t)S * L * 2 * (lags > 1 ? lags - 1 : 1);
    size_t at = 0;
    for (int i = 0; i < 2; i++) {
        v[i]->lags = lags;
        v[i]->lag = take(base, &at, lagged * 2);
        v[i]->lag_seen = take(base, &at, lagged);
        v[i]->mag = take(base, &at, (size_t)S * 2);
        v[i]->mag_count = take(base, &at, (size_t)S * 2);
        u[i]->module = take(base, &at, (size_t)S * L * 2 * EB_DRIFT_SUMS);
        u[i]->module_seen = take(base, &at, (size_t)S * L * 2);
        u[i]->block0 = take(base, &at, (size_t)S * EB_DRIFT_SUMS);
        u[i]->output = take(base, &at, (size_t)S * EB_DRIFT_SUMS);
        u[i]->probe_seen = take(base, &at, (size_t)S * 2);
        u[i]->snr = take(base, &at, (size_t)S * SNR_SUMS);
        u[i]->elements = take(base, &at, (size_t)S);
    }
    b->dev = take(base, &at, (size_t)S * 4);
    b->cost = take(base, &at, 2);
    b->base = base, b->n = at;
    return at;
}

/* A zeroed block for S steps and L blocks; NULL base when out of memory. */
static void block_alloc(batch_sums *b, int S, int L, int lags) {
    block_view(b, calloc(block_view(b, NULL, S, L, lags), sizeof(double)), S, L, lags);
}

/* Relative L1 change and cosine of one sum set (NaN when nothing was measured). */
static double rel_l1_of(const double *s, double seen) { return seen ? s[EB_DRIFT_L1] / s[EB_DRIFT_BASE_L1] : NAN; }
static double cos_of(const double *s, double seen) {
    return seen ? s[EB_DRIFT_DOT] / sqrt(s[EB_DRIFT_CUR2] * s[EB_DRIFT_PREV2]) : NAN;
}

/* Divides the sums into the statistics. The SNR over the schedule's SNR for a
 * signal of the measured power P = Σ ᾱ‖x‖² / (ᾱ n) reduces to (1 − ᾱ) n / Σ‖x̂_t − √ᾱ x‖²:
 * the schedule's noise variance over the one the chain carries (1 = no exposure bias). */
static void finish_stats(eb_record_stats *st, const run_sums *u, const eb_recording *rec) {
    int S = rec->S, L = rec->L;
    for (int k = 0; k < S; k++) {
        for (int l = 0; l < L; l++) {
            size_t at = ((size_t)k * L + l) * 2;
            st->drift_attn[k * L + l] = rel_l1_of(u->module + at * EB_DRIFT_SUMS, u->module_seen[at]);
            st->drift_mlp[k * L + l] = rel_l1_of(u->module + (at + 1) * EB_DRIFT_SUMS, u->module_seen[at + 1]);
            st->drift_attn_cos[k * L + l] = cos_of(u->module + at * EB_DRIFT_SUMS, u->module_seen[at]);
            st->drift_mlp_cos[k * L + l] = cos_of(u->module + (at + 1) * EB_DRIFT_SUMS, u->module_seen[at + 1]);
        }
        st->drift_block0[k] = rel_l1_of(u->block0 + k * EB_DRIFT_SUMS, u->probe_seen[2 * k]);
        st->drift_output[k] = rel_l1_of(u->output + k * EB_DRIFT_SUMS, u->probe_seen[2 * k + 1]);
        if (k < rec->start_step) continue;
        const double *s = u->snr + (size_t)k * SNR_SUMS;
        const double ab = rec->alpha_bar[k], n = u->elements[k];
        st->snr_trajectory[k] = s[SNR_OWN_SIGNAL] / s[SNR_OWN_NOISE];
        st->snr_ratio[k] = (1 - ab) * n / s[SNR_OWN_NOISE];
        if (!st->snr_data) continue;
        double mean = s[SNR_DATA_SUM] / n;
        st->snr_data[k] = s[SNR_DATA_SIGNAL] / s[SNR_DATA_SQ];
        st->snr_data_ratio[k] = (1 - ab) * n / s[SNR_DATA_SQ];
        st->var_ratio[k] = (s[SNR_DATA_SQ] / n - mean * mean) / (1 - ab);
    }
    const double *last = u->snr + (size_t)(S - 1) * SNR_SUMS, ab = rec->alpha_bar[S - 1], n = u->elements[S - 1];
    st->signal_power = last[SNR_OWN_SIGNAL] / (ab * n);
    if (st->snr_data) st->data_power = last[SNR_DATA_SIGNAL] / (ab * n);
}

void eb_recording_free(eb_recording *rec) {
    free(rec->t), free(rec->alpha_bar), free(rec->snr_nominal), free(rec->deviation_x), free(rec->deviation_eps);
    free(rec->samples);
    stats_free(&rec->run);
    stats_free(&rec->reference);
    memset(rec, 0, sizeof *rec);
}

/* The recorder's backend buffers for model batches of up to B rows, and host chains of b rows. */
static void recorder_free(recorder *r) {
    const eb_backend *be = r->m->be;
    for (int i = 0; r->prev && i < 2 * r->L; i++) be->free(r->prev[i]);
    be->free(r->prev_block0), be->free(r->probe), be->free(r->mod0), be->free(r->prev_out);
    free(r->prev), free(r->have), free(r->xs), free(r->eps), free(r->dump_host);
    method_probe *p = &r->probe_m;
    for (int i = 0; p->hist && i < 2 * r->L * (r->msums->lags - 1); i++) be->free(p->hist[i]);
    be->free(p->scratch), be->free(p->h0), be->free(p->res);
    free(p->hist), free(p->nhist), free(p->res_host), free(p->norm_prev);
}

/* The methods' working set for model batches of up to B rows (recorder_alloc first). */
static eb_status method_probe_alloc(recorder *r, int B) {
    const eb_config *c = &r->m->cfg;
    const eb_backend *be = r->m->be;
    const size_t n = feature_elems(c, B), nhist = (size_t)2 * r->L * (r->msums->lags - 1);
    method_probe *p = &r->probe_m;
    const char *missing = eb_backend_missing_op(be, "add_scaled");
    if (missing) return eb_fail(EB_ERUNTIME, "the %s backend has no %s, which the recorder needs", be->name, missing);
    p->hist = calloc(nhist ? nhist : 1, sizeof *p->hist);
    p->nhist = calloc(2 * r->L, sizeof *p->nhist);
    int ok = p->hist && p->nhist;
    for (size_t i = 0; ok && i < nhist; i++) ok = !!(p->hist[i] = be->alloc(n * sizeof(float)));
    ok = ok && (r->msums->lags < 3 || (p->scratch = be->alloc(n * sizeof(float)))) &&
         (p->h0 = be->alloc(n * sizeof(float))) && (p->res = be->alloc(n * sizeof(float))) &&
         (p->res_host = malloc(n * sizeof(float))) &&
         (p->norm_prev = malloc((size_t)B * eb_tokens(c) * sizeof(double)));
    return ok ? EB_OK : eb_fail(EB_ERUNTIME, "out of memory for MagCache's and SmoothCache's statistics (batch of %d)", B);
}

static eb_status recorder_alloc(recorder *r, eb_model *m, int B, int b, int steps, int keep_eps, int dump) {
    const eb_config *c = &m->cfg;
    const eb_backend *be = m->be;
    size_t n = feature_elems(c, B), out = (size_t)B * eb_out_channels(c) * c->input_size * c->input_size;
    size_t chain = (size_t)steps * b * image_elems(c);
    r->m = m;
    r->L = c->depth;
    r->prev = calloc(2 * r->L, sizeof *r->prev);
    r->have = calloc(2 * r->L + 2, 1);
    int ok = r->prev && r->have;
    for (int i = 0; ok && i < 2 * r->L; i++) ok = !!(r->prev[i] = be->alloc(n * sizeof(float)));
    ok = ok && (r->prev_block0 = be->alloc(n * sizeof(float))) && (r->probe = be->alloc(n * sizeof(float))) &&
         (r->mod0 = be->alloc((size_t)B * 2 * c->hidden_size * sizeof(float))) &&
         (r->prev_out = be->alloc(out * sizeof(float))) && (r->xs = malloc(chain * sizeof(float)));
    if (ok && keep_eps) ok = !!(r->eps = malloc(chain * sizeof(float)));
    if (ok && dump) ok = !!(r->dump_host = malloc(n * sizeof(float)));
    return ok ? EB_OK : eb_fail(EB_ERUNTIME, "out of memory for the statistics buffers (batch of %d)", b);
}

/* ------------------------------------------------------------------------ */
/* The run                                                                   */

static eb_status check_opts(const eb_model *m, const eb_record_opts *o, int N) {
    const int S = o->sched->S, L = m->cfg.depth;
    const char *missing = eb_backend_missing_op(m->be, EB_BACKEND_RECORDER_OPS);
    if (missing) return eb_fail(EB_ERUNTIME, "the %s backend has no %s, which the recorder needs", m->be->name, missing);
    if (N <= 0) return eb_fail(EB_EINPUT, "N = %d samples, needs at least 1", N);
    if (o->start_step < 0 || o->start_step >= S)
        return eb_fail(EB_EINPUT, "start step %d outside [0, %d)", o->start_step, S);
    if (o->lags < 0 || o->lags > S) return eb_fail(EB_EINPUT, "lags %d outside [0, %d] (0: %d)", o->lags, S, EB_RECORD_LAGS);
    if (o->start_step > 0 && !o->x0)
        return eb_fail(EB_EINPUT, "start step %d needs data: chains start from q(x_t | x0)", o->start_step);
    for (int i = 0; i < o->dump.nsteps; i++)
        if (o->dump.steps[i] < o->start_step || o->dump.steps[i] >= S)
            return eb_fail(EB_EINPUT, "dump step %d outside the recorded steps [%d, %d)", o->dump.steps[i],
                           o->start_step, S);
    for (int i = 0; i < o->dump.nblocks; i++)
        if (o->dump.blocks[i] < 0 || o->dump.blocks[i] >= L)
            return eb_fail(EB_EINPUT, "dump block %d outside [0, %d)", o->dump.blocks[i], L);
    if (o->dump.nsteps && !o->dump.nblocks)
        return eb_fail(EB_EINPUT, "feature dumps name steps but no blocks");
    if (o->x0) {
        int64_t dims[4] = {N, m->cfg.in_channels, m->cfg.input_size, m->cfg.input_size};
        eb_status st = eb_check_finite(o->x0, dims, 4, EB_EINPUT, "data x0");
        if (st) return st;
    }
    return o->cache ? eb_cache_schedule_check(o->cache, &m->cfg, o->sched) : EB_OK;
}

/* The table from step k0 on, renumbered from 0 for the truncated sampler s (S − k0 steps). */
static eb_status slice_table(eb_cache_schedule **out, const eb_cache_schedule *cs, const eb_schedule *s, int k0,
                             const eb_config *c) {
    eb_status st = eb_cache_schedule_new(out, s, cs->method, cs->params);
    if (st) return st;
    snprintf((*out)->name, sizeof (*out)->name, "%.200s from step %d (renumbered from 0)", cs->name, k0);
    (*out)->policy = cs->policy;
    for (int r = 0; !st && r < cs->nrows; r++) {
        const eb_sched_row *row = &cs->rows[r];
        if (row->step >= k0)
            st = eb_cache_schedule_add(*out, s, row->step - k0, row->lo, row->hi, row->attn, row->mlp, row->scale);
    }
    return st ? st : eb_cache_schedule_check(*out, c, s);
}

static eb_status recording_alloc(eb_recording *rec, const eb_record_opts *o, const eb_config *c, int N) {
    const eb_schedule *s = o->sched;
    const int S = s->S, L = c->depth, data = o->x0 != NULL, cached = o->cache != NULL;
    *rec = (eb_recording){.S = S, .L = c->depth, .N = N, .C = c->in_channels, .H = c->input_size,
                          .start_step = o->start_step, .has_reference = cached};
    rec->t = malloc(S * sizeof *rec->t);
    rec->alpha_bar = malloc(S * sizeof *rec->alpha_bar);
    rec->snr_nominal = malloc(S * sizeof *rec->snr_nominal);
    int ok = rec->t && rec->alpha_bar && rec->snr_nominal && stats_alloc(&rec->run, S, L, N, data, o->eps_q);
    if (ok && cached) ok = stats_alloc(&rec->reference, S, L, N, data, 0) && (rec->deviation_x = nan_array(S)) &&
                           (rec->deviation_eps = nan_array(S));
    if (!ok) return eb_fail(EB_ERUNTIME, "out of memory for the statistics of %d steps", S);
    for (int k = 0; k < S; k++) {
        int i = S - 1 - k;
        rec->t[k] = s->timestep[i];
        rec->alpha_bar[k] = s->alphas_cumprod[i];
        rec->snr_nominal[k] = s->alphas_cumprod[i] / (1 - s->alphas_cumprod[i]);
    }
    return EB_OK;
}

/* An (S, N) array whose columns [lo, hi) are this rank's (eb_shard_batches): every rank's columns, on every rank. */
static eb_status gather_columns(const eb_comm *c, double *a, int S, int N, int batch) {
    if (!a || c->size == 1) return EB_OK;
    long lo, hi;
    eb_shard_batches(N, batch, c->rank, c->size, &lo, &hi);
    double *rows = malloc(((size_t)N * S + 1) * sizeof *rows); /* (N, S): a sample's values are one row */
    if (!rows) return eb_fail(EB_ERUNTIME, "out of memory gathering %d x %d values", S, N);
    for (long n = lo; n < hi; n++)
        for (int k = 0; k < S; k++) rows[n * S + k] = a[(size_t)k * N + n];
    eb_status st = eb_comm_gather_batches(c, N, batch, (size_t)S * sizeof *rows, rows + lo * S, rows);
    for (long n = 0; !st && n < N; n++)
        for (int k = 0; k < S; k++) a[(size_t)k * N + n] = rows[n * S + k];
    free(rows);
    return st;
}

/* The run's totals from every rank's batch blocks (added in batch order) and its per-sample rows. */
static eb_status reduce_run(const eb_comm *c, eb_recording *rec, const double *store, batch_sums *total, int batch) {
    const int N = rec->N, S = rec->S;
    const size_t per = (size_t)rec->C * rec->H * rec->H;
    long lo, hi;
    eb_shard_batches(N, batch, c->rank, c->size, &lo, &hi);
    eb_status st = eb_comm_sum_items(c, (N + batch - 1) / batch, (int)total->n, store, total->base);
    if (!st) st = gather_columns(c, rec->run.eps_norm, S, N, batch);
    if (!st) st = gather_columns(c, rec->run.eps_norm_q, S, N, batch);
    if (!st) st = gather_columns(c, rec->reference.eps_norm, S, N, batch);
    if (!st) st = eb_comm_gather_batches(c, N, batch, per * sizeof(float), rec->samples + lo * per, rec->samples);
    return st;
}

eb_status eb_record_run(eb_model *m, const eb_record_opts *o, const float *x_T, const int32_t *y, int N,
                        eb_recording *rec, eb_h5w *dump_to) {
    memset(rec, 0, sizeof *rec);
    const eb_comm *comm = o->comm ? o->comm : eb_comm_serial();
    eb_status st = check_opts(m, o, N);
    if (st) return eb_comm_agree(comm, st);
    const eb_config *c = &m->cfg;
    const int S = o->sched->S, k0 = o->start_step, steps = S - k0, cached = o->cache != NULL;
    const int batch = o->batch > 0 && o->batch < N ? o->batch : N, B = o->so.cfg_scale != 1.0f ? 2 * batch : batch;
    const size_t per = image_elems(c);
    eb_schedule tail = *o->sched; /* steps k0.. are the first S − k0 indices: same arrays, same noise streams */
    tail.S = steps;
    eb_cache_schedule *table = NULL;
    if (cached && k0 > 0) st = slice_table(&table, o->cache, &tail, k0, c);
    const eb_cache_schedule *cs = k0 > 0 ? table : o->cache;
    long lo, hi; /* this rank's samples: whole batches */
    eb_shard_batches(N, batch, comm->rank, comm->size, &lo, &hi);
    const int lags = o->lags ? o->lags : EB_RECORD_LAGS < S ? EB_RECORD_LAGS : S;
    batch_sums cur = {0}, total = {0};
    block_alloc(&cur, S, c->depth, lags);
    block_alloc(&total, S, c->depth, lags);
    double *store = malloc(((size_t)(hi - lo + batch - 1) / batch * cur.n + 1) * sizeof *store); /* its batches' blocks */
    eb_sampler_opts so = o->so; /* several ranks: the progress line across ranks instead of the sampler's */
    so.progress = o->so.progress && comm->size == 1;
    recorder run = {.o = o, .S = S, .k0 = k0, .N = N, .sums = &cur.run, .msums = &cur.run_m}, ref = run;
    ref.sums = &cur.ref, ref.msums = &cur.ref_m;
    float *x = malloc((size_t)batch * per * sizeof(float));
    float *out = malloc((size_t)batch * eb_out_channels(c) * c->input_size * c->input_size * sizeof(float));
    int32_t *t = malloc(batch * sizeof(int32_t));
    if (!st && (!x || !out || !t || !cur.base || !total.base || !store)) st = eb_fail(EB_ERUNTIME, "out of memory");
    if (!st) st = recording_alloc(rec, o, c, N);
    if (!st && (!method_stats_alloc(&rec->run, S, c->depth, lags) ||
                (cached && !method_stats_alloc(&rec->reference, S, c->depth, lags))))
        st = eb_fail(EB_ERUNTIME, "out of memory for the statistics of %d steps", S);
    rec->lags = lags;
    if (!st) st = recorder_alloc(&run, m, B, batch, steps, 0, o->dump.nsteps > 0 && dump_to);
    if (!st) st = method_probe_alloc(&run, B);
    if (!st && cached) st = recorder_alloc(&ref, m, B, batch, steps, 1, 0);
    if (!st && cached) st = method_probe_alloc(&ref, B);
    if (!st && !(rec->samples = malloc((size_t)N * per * sizeof(float))))
        st = eb_fail(EB_ERUNTIME, "out of memory for %d samples", N);
    if (!st && o->dump.nsteps && dump_to) eb_h5w_set_deflate(dump_to, 4);
    st = eb_comm_agree(comm, st);
    eb_comm_progress pg = {0};
    if (!st) st = eb_comm_progress_begin(&pg, comm, "record", N, o->so.progress && comm->size > 1);
    for (int first = (int)lo; !st && first < hi; first += batch) {
        const int b = N - first < batch ? N - first : batch;
        const float *x0 = o->x0 ? o->x0 + (size_t)first * per : NULL;
        const int32_t *yb = y + first;
        const double sa = sqrt(rec->alpha_bar[k0]), sb = sqrt(1 - rec->alpha_bar[k0]);
        for (size_t j = 0; j < (size_t)b * per; j++)
            x[j] = x0 ? (float)(sa * x0[j] + sb * x_T[first * per + j]) : x_T[first * per + j];
        memset(cur.base, 0, cur.n * sizeof *cur.base); /* this batch's sums, from zero */
        run.first = ref.first = first, run.b = ref.b = b;
        run.eps_norm = rec->run.eps_norm, ref.eps_norm = rec->reference.eps_norm;
        run.dump_to = first == 0 ? dump_to : NULL;
        if (cached) {
            float *xr = rec->samples + (size_t)first * per; /* the reference's final sample lands here first */
            memcpy(xr, x, (size_t)b * per * sizeof(float));
            st = observed_chain(&ref, &tail, &so, NULL, xr, yb, NULL);
            if (!st) add_snr_sums(&ref, rec->alpha_bar, xr, x0);
            run.ref_xs = ref.xs, run.ref_eps = ref.eps, run.dev = cur.dev;
        }
        eb_cache_stats cost = {0};
        if (!st) st = observed_chain(&run, &tail, &so, cs, x, yb, &cost);
        if (st) break;
        add_snr_sums(&run, rec->alpha_bar, x, x0);
        cur.cost[0] = cost.macs, cur.cost[1] = cost.macs_uncached;
        memcpy(store + (size_t)(first - lo) / batch * cur.n, cur.base, cur.n * sizeof *cur.base);
        memcpy(rec->samples + (size_t)first * per, x, (size_t)b * per * sizeof(float));
        if (o->eps_q)
            st = eps_q_pass(m, o, rec, x0 ? x0 : rec->samples + (size_t)first * per, yb, first, b,
                            rec->run.eps_norm_q, x, out, t);
        if (!st) st = eb_comm_progress_add(&pg, b);
    }
    if (pg.c) { /* the line was begun: every rank ends it, failed or not */
        eb_status ended = eb_comm_progress_end(&pg);
        if (!st) st = ended;
        st = eb_comm_agree(comm, st);
    }
    if (!st) st = reduce_run(comm, rec, store, &total, batch);
    if (!st) {
        finish_stats(&rec->run, &total.run, rec);
        if (cached) finish_stats(&rec->reference, &total.ref, rec);
        finish_method_stats(&rec->run, &total.run_m, rec);
        if (cached) finish_method_stats(&rec->reference, &total.ref_m, rec);
        for (int k = k0; cached && k < S; k++) {
            rec->deviation_x[k] = sqrt(total.dev[4 * k] / total.dev[4 * k + 1]);
            rec->deviation_eps[k] = sqrt(total.dev[4 * k + 2] / total.dev[4 * k + 3]);
        }
        rec->macs = total.cost[0], rec->macs_uncached = total.cost[1];
    }
    free(x), free(out), free(t), free(store), free(cur.base), free(total.base);
    if (run.m) recorder_free(&run);
    if (ref.m) recorder_free(&ref);
    eb_cache_schedule_free(table);
    if (st) eb_recording_free(rec);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Writing                                                                   */

static eb_status put(eb_h5w *w, const char *prefix, const char *name, const double *v, int rank, int64_t d0,
                     int64_t d1, const char *what) {
    if (!v) return EB_OK;
    char path[128];
    snprintf(path, sizeof path, "%s%s", prefix, name);
    int64_t dims[2] = {d0, d1};
    eb_status st = eb_h5w_write(w, path, EB_H5_F64, v, rank, dims);
    return st ? st : eb_h5w_attr_str(w, path, "description", what);
}

/* /drift/attn_lag and /drift/mlp_lag (lags, S, L). */
static eb_status write_lagged(eb_h5w *w, const char *prefix, const eb_record_stats *s, const eb_recording *r) {
    const int64_t dims[3] = {r->lags, r->S, r->L};
    const char *names[2] = {"/drift/attn_lag", "/drift/mlp_lag"};
    const double *v[2] = {s->drift_attn_lag, s->drift_mlp_lag};
    eb_status st = EB_OK;
    for (int m = 0; !st && m < 2; m++) {
        char path[128];
        snprintf(path, sizeof path, "%s%s", prefix, names[m]);
        st = eb_h5w_write(w, path, EB_H5_F64, v[m], 3, dims);
        if (!st) st = eb_h5w_attr_str(w, path, "description",
                                      "row j-1: sum|F_k - F_{k-j}| / sum|F_{k-j}| of the pre-gate output, F_{k-j} the "
                                      "module's output j forwards earlier in the chain (row 0 = the drift)");
    }
    return st;
}

static eb_status write_stats(eb_h5w *w, const char *prefix, const eb_record_stats *s, const eb_recording *r) {
    const int64_t S = r->S, L = r->L, N = r->N;
    struct { const char *name; const double *v; int rank; int64_t d1; const char *what; } sets[] = {
        {"/snr/trajectory", s->snr_trajectory, 1, 0, "sum abar*|x0hat|^2 / sum |xt - sqrt(abar)*x0hat|^2 over the batch"},
        {"/snr/data", s->snr_data, 1, 0, "sum abar*|x0|^2 / sum |xt - sqrt(abar)*x0|^2 against the data x0"},
        {"/exposure/var_ratio", s->var_ratio, 1, 0, "Var(xt - sqrt(abar)*x0) / (1 - abar)"},
        {"/exposure/snr_ratio", s->snr_ratio, 1, 0,
         "snr/trajectory / (P*abar/(1-abar)), P = mean x0hat^2 of the chain's final samples; 1 = no exposure bias"},
        {"/exposure/snr_data_ratio", s->snr_data_ratio, 1, 0,
         "snr/data / (P0*abar/(1-abar)), P0 = mean x0^2 of the data; 1 = no exposure bias"},
        {"/eps/norm", s->eps_norm, 2, N, "per-sample L2 norm of the guided eps along the chain (after the eps scale)"},
        {"/eps/norm_q", s->eps_norm_q, 2, N, "per-sample L2 norm of the guided eps on q(x_t | x0) inputs"},
        {"/drift/attn", s->drift_attn, 2, L, "sum|F_k - F_prev| / sum|F_prev| of the pre-gate attention output"},
        {"/drift/mlp", s->drift_mlp, 2, L, "sum|F_k - F_prev| / sum|F_prev| of the pre-gate MLP output"},
        {"/drift/attn_cos", s->drift_attn_cos, 2, L, "cosine similarity of the pre-gate attention output to F_prev"},
        {"/drift/mlp_cos", s->drift_mlp_cos, 2, L, "cosine similarity of the pre-gate MLP output to F_prev"},
        {"/drift/block0_input", s->drift_block0, 1, 0, "relative L1 change of block 0's modulated input (TeaCache)"},
        {"/drift/output", s->drift_output, 1, 0, "relative L1 change of the model output (both CFG halves)"},
        {"/magcache/ratio", s->mag_ratio, 2, 2,
         "MagCache: mean over tokens of |r_k| / |r_prev| per token, r = tokens after the last block - tokens after "
         "the embedding; column 0 conditional, 1 unconditional half"},
    };
    eb_status st = EB_OK;
    for (size_t i = 0; !st && i < sizeof sets / sizeof sets[0]; i++)
        st = put(w, prefix, sets[i].name, sets[i].v, sets[i].rank, S, sets[i].d1, sets[i].what);
    if (!st) st = write_lagged(w, prefix, s, r);
    if (!st) st = eb_h5w_attr_f64(w, NULL, *prefix ? "reference_signal_power" : "signal_power", s->signal_power);
    if (!st && s->snr_data && !*prefix) st = eb_h5w_attr_f64(w, NULL, "data_power", s->data_power);
    return st;
}

eb_status eb_recording_write(const eb_recording *rec, eb_h5w *w) {
    const int64_t S = rec->S;
    double *t = malloc(S * sizeof *t);
    if (!t) return eb_fail(EB_ERUNTIME, "out of memory");
    for (int k = 0; k < S; k++) t[k] = rec->t[k];
    eb_status st = put(w, "", "/steps/t", t, 1, S, 0, "model timestep of step k (sampler index S-1-k)");
    free(t);
    if (!st) st = put(w, "", "/steps/alpha_bar", rec->alpha_bar, 1, S, 0, "alpha_bar of step k");
    if (!st) st = put(w, "", "/snr/nominal", rec->snr_nominal, 1, S, 0, "abar / (1 - abar)");
    if (!st) st = write_stats(w, "", &rec->run, rec);
    if (!st && rec->has_reference) {
        st = write_stats(w, "/reference", &rec->reference, rec);
        if (!st) st = put(w, "", "/deviation/x", rec->deviation_x, 1, S, 0, "|x_cached - x_uncached| / |x_uncached|");
        if (!st) st = put(w, "", "/deviation/eps", rec->deviation_eps, 1, S, 0,
                          "|eps_cached - eps_uncached| / |eps_uncached| (guided eps, after the eps scale)");
    }
    int64_t sd[4] = {rec->N, rec->C, rec->H, rec->H};
    if (!st) st = eb_h5w_write(w, "/samples", EB_H5_F32, rec->samples, 4, sd);
    if (!st) st = eb_h5w_attr_i64(w, NULL, "N", rec->N);
    if (!st) st = eb_h5w_attr_i64(w, NULL, "steps", rec->S);
    if (!st) st = eb_h5w_attr_i64(w, NULL, "start_step", rec->start_step);
    if (!st) st = eb_h5w_attr_i64(w, NULL, "depth", rec->L);
    if (!st) st = eb_h5w_attr_i64(w, NULL, "has_data", rec->run.snr_data != NULL);
    if (!st) st = eb_h5w_attr_i64(w, NULL, "has_reference", rec->has_reference);
    if (!st && rec->macs_uncached > 0) st = eb_h5w_attr_f64(w, NULL, "flop_fraction", rec->macs / rec->macs_uncached);
    return st;
}
