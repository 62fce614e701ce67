/* fit.c — recordings in, ε-scaling / two-phase noise scaling / TeaCache
 * polynomial fits out (fit.h, docs/search.md). GSL does the least squares. */
#include "search/fit.h"
#include "runtime/schedule.h"

#include <gsl/gsl_errno.h>
#include <gsl/gsl_fit.h>
#include <gsl/gsl_multifit.h>
#include <gsl/gsl_multifit_nlinear.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/h5io.h"

#define FIT_FORMAT "ebcache fit v1"

/* ------------------------------------------------------------------------ */
/* Recordings                                                                */

void eb_rec_data_free(eb_rec_data *r) {
    free(r->t), free(r->eps_norm), free(r->eps_norm_q), free(r->drift_attn), free(r->drift_mlp);
    free(r->drift_block0), free(r->drift_output);
    memset(r, 0, sizeof *r);
}

/* Every value of rows [row0, rows) of a (rows, cols) dataset is finite (and
 * positive when `positive`); names the first that is not. */
static eb_status check_values(const char *path, const char *name, const double *v, int rows, int cols, int row0,
                              int positive) {
    for (int i = row0; i < rows; i++)
        for (int j = 0; j < cols; j++) {
            double x = v[(size_t)i * cols + j];
            if (!isfinite(x) || (positive && x <= 0)) {
                char at[64];
                if (cols > 1) snprintf(at, sizeof at, "[%d, %d]", i, j);
                else snprintf(at, sizeof at, "[%d]", i);
                return eb_fail(EB_EINPUT, "%s: dataset '%s' %s is %g (%s)", path, name, at, x,
                               isfinite(x) ? "must be positive" : "not finite");
            }
        }
    return EB_OK;
}

/* /steps/t (stored as any number type): integer timesteps in [0, 1000), decreasing. */
static eb_status read_steps(eb_rec_data *r, eb_h5 *f) {
    const char *path = r->path;
    int64_t d[1];
    double *t;
    eb_status st = eb_h5_read_f64(f, "/steps/t", 1, NULL, &t, d, EB_H5_FINITE);
    if (st) return st;
    if (d[0] < 2 || d[0] > EB_DIFFUSION_STEPS)
        st = eb_fail(EB_EINPUT, "%s: dataset '/steps/t' holds %lld steps (2 to %d)", path, (long long)d[0],
                     EB_DIFFUSION_STEPS);
    const int S = r->S = (int)d[0];
    if (!st && !(r->t = malloc(S * sizeof *r->t))) st = eb_fail(EB_ERUNTIME, "out of memory");
    for (int i = 0; !st && i < S; i++) {
        if (t[i] != floor(t[i]) || t[i] < 0 || t[i] >= EB_DIFFUSION_STEPS)
            st = eb_fail(EB_EINPUT, "%s: dataset '/steps/t' [%d] = %g is not a timestep in [0, %d)", path, i, t[i],
                         EB_DIFFUSION_STEPS);
        else if (i && t[i] >= t[i - 1])
            st = eb_fail(EB_EINPUT, "%s: dataset '/steps/t' [%d] = %g after %g: timesteps must decrease in sampling order",
                         path, i, t[i], t[i - 1]);
        else r->t[i] = (int32_t)t[i];
    }
    free(t);
    return st;
}

/* "SAMPLER respacing=SPEC" from the root attributes record writes. */
static eb_status read_sampler(eb_rec_data *r, eb_h5 *f) {
    char *kind = NULL, *spacing = NULL;
    eb_status st = EB_OK;
    if (eb_h5_has_attr(f, NULL, "sampler")) st = eb_h5_attr_str(f, NULL, "sampler", &kind);
    if (!st && eb_h5_has_attr(f, NULL, "respacing")) st = eb_h5_attr_str(f, NULL, "respacing", &spacing);
    if (!st)
        snprintf(r->sampler, sizeof r->sampler, "%.48s%s%s%.48s", kind ? kind : "", kind && spacing ? " " : "",
                 spacing ? "respacing=" : "", spacing ? spacing : "");
    free(kind), free(spacing);
    return st;
}

static eb_status read_datasets(eb_rec_data *r, eb_h5 *f) {
    const char *path = r->path;
    int64_t d[2], start = 0;
    eb_status st = read_steps(r, f);
    if (st) return st;
    const int S = r->S;
    if (eb_h5_has_attr(f, NULL, "start_step") && (st = eb_h5_attr_i64(f, NULL, "start_step", &start))) return st;
    if (start < 0 || start > S - 2)
        return eb_fail(EB_EINPUT, "%s: attribute start_step %lld outside [0, %d]", path, (long long)start, S - 2);
    const int s0 = r->start = (int)start;
    int64_t cached = 0;
    if (eb_h5_has_attr(f, NULL, "has_reference") && (st = eb_h5_attr_i64(f, NULL, "has_reference", &cached))) return st;
    r->cached = cached != 0;
    int64_t want_sn[2] = {S, EB_H5_ANY};
    if ((st = eb_h5_read_f64(f, "/eps/norm", 2, want_sn, &r->eps_norm, d, 0))) return st;
    r->N = (int)d[1];
    if (r->N < 1) return eb_fail(EB_EINPUT, "%s: dataset '/eps/norm' holds no samples", path);
    want_sn[1] = r->N;
    if (eb_h5_lookup(f, "/eps/norm_q") != EB_H5_NONE &&
        (st = eb_h5_read_f64(f, "/eps/norm_q", 2, want_sn, &r->eps_norm_q, d, 0)))
        return st;
    int64_t want_sl[2] = {S, EB_H5_ANY};
    if ((st = eb_h5_read_f64(f, "/drift/attn", 2, want_sl, &r->drift_attn, d, 0))) return st;
    r->L = (int)d[1];
    if (r->L < 1) return eb_fail(EB_EINPUT, "%s: dataset '/drift/attn' holds no blocks", path);
    want_sl[1] = r->L;
    if ((st = eb_h5_read_f64(f, "/drift/mlp", 2, want_sl, &r->drift_mlp, d, 0))) return st;
    int64_t want_s[1] = {S};
    if ((st = eb_h5_read_f64(f, "/drift/block0_input", 1, want_s, &r->drift_block0, d, 0))) return st;
    if ((st = eb_h5_read_f64(f, "/drift/output", 1, want_s, &r->drift_output, d, 0))) return st;
    /* drift rows start one step after the first: it has no previous step */
    if ((st = check_values(path, "/eps/norm", r->eps_norm, S, r->N, s0, 1)) ||
        (r->eps_norm_q && (st = check_values(path, "/eps/norm_q", r->eps_norm_q, S, r->N, s0, 1))) ||
        (st = check_values(path, "/drift/attn", r->drift_attn, S, r->L, s0 + 1, 0)) ||
        (st = check_values(path, "/drift/mlp", r->drift_mlp, S, r->L, s0 + 1, 0)) ||
        (st = check_values(path, "/drift/block0_input", r->drift_block0, S, 1, s0 + 1, 0)) ||
        (st = check_values(path, "/drift/output", r->drift_output, S, 1, s0 + 1, 0)))
        return st;
    return read_sampler(r, f);
}

eb_status eb_rec_data_read(eb_rec_data *r, const char *path) {
    memset(r, 0, sizeof *r);
    if (strlen(path) >= sizeof r->path) return eb_fail(EB_EINPUT, "%.64s...: path too long", path);
    snprintf(r->path, sizeof r->path, "%s", path);
    eb_h5 *f;
    eb_status st = eb_h5_open(&f, path);
    if (!st) {
        st = read_datasets(r, f);
        eb_h5_close(f);
    }
    if (!st) st = eb_sha256_file(path, r->sha256);
    if (st) eb_rec_data_free(r);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Fits on plain arrays                                                      */

/* R² and RMS of residuals res (n) of data y (n). */
static void goodness(const double *y, const double *res, int n, double *r2, double *rmse) {
    double mean = 0, ss_tot = 0, ss_res = 0;
    for (int i = 0; i < n; i++) mean += y[i];
    mean /= n;
    for (int i = 0; i < n; i++) ss_tot += (y[i] - mean) * (y[i] - mean), ss_res += res[i] * res[i];
    *r2 = ss_tot > 0 ? 1 - ss_res / ss_tot : NAN;
    *rmse = sqrt(ss_res / n);
}

eb_status eb_fit_linear(const double *x, const double *y, int n, eb_fit_line *out, double *residual) {
    if (n < 2) return eb_fail(EB_EINPUT, "linear fit: %d points, need at least 2", n);
    double c0, c1, cov00, cov01, cov11, sumsq;
    gsl_error_handler_t *old = gsl_set_error_handler_off();
    int gs = gsl_fit_linear(x, 1, y, 1, n, &c0, &c1, &cov00, &cov01, &cov11, &sumsq);
    gsl_set_error_handler(old);
    if (gs || !isfinite(c0) || !isfinite(c1))
        return eb_fail(EB_EINPUT, "linear fit: the %d points do not determine a line (x constant?)", n);
    double res[n];
    for (int i = 0; i < n; i++) res[i] = y[i] - (c1 * x[i] + c0);
    out->k = c1, out->b = c0;
    goodness(y, res, n, &out->r2, &out->rmse);
    if (residual) memcpy(residual, res, n * sizeof *res);
    return EB_OK;
}

double eb_two_phase_b(const eb_fit_two_phase *p, double tau) {
    double span = 1 - p->t_thre;
    if (tau >= p->t_thre) return p->b_h + (1 - p->b_h) * exp(-5 * (1 - tau) / span);
    return p->b_l + (p->b_h - p->b_l) * exp(5 * (tau - p->t_thre) / span);
}

typedef struct {
    const double *tau, *b;
    int n;
} two_phase_data;

/* Residuals b(τ_i) − b_i at parameters x = (b_h, b_l, t_thre). */
static int two_phase_f(const gsl_vector *x, void *params, gsl_vector *f) {
    const two_phase_data *d = params;
    eb_fit_two_phase p = {.b_h = gsl_vector_get(x, 0), .b_l = gsl_vector_get(x, 1), .t_thre = gsl_vector_get(x, 2)};
    if (!(p.t_thre > 0 && p.t_thre < 1)) return GSL_EDOM;
    for (int i = 0; i < d->n; i++) gsl_vector_set(f, i, eb_two_phase_b(&p, d->tau[i]) - d->b[i]);
    return GSL_SUCCESS;
}

/* The Jacobian (n, 3) of the residuals. */
static int two_phase_df(const gsl_vector *x, void *params, gsl_matrix *J) {
    const two_phase_data *d = params;
    double bh = gsl_vector_get(x, 0), bl = gsl_vector_get(x, 1), th = gsl_vector_get(x, 2);
    if (!(th > 0 && th < 1)) return GSL_EDOM;
    double span = 1 - th;
    for (int i = 0; i < d->n; i++) {
        double tau = d->tau[i], e;
        if (tau >= th) {
            e = exp(-5 * (1 - tau) / span);
            gsl_matrix_set(J, i, 0, 1 - e);
            gsl_matrix_set(J, i, 1, 0);
            gsl_matrix_set(J, i, 2, (1 - bh) * e * -5 * (1 - tau) / (span * span));
        } else {
            e = exp(5 * (tau - th) / span);
            gsl_matrix_set(J, i, 0, e);
            gsl_matrix_set(J, i, 1, 1 - e);
            gsl_matrix_set(J, i, 2, (bh - bl) * e * 5 * (tau - 1) / (span * span));
        }
    }
    return GSL_SUCCESS;
}

static double two_phase_ssr(const eb_fit_two_phase *p, const double *tau, const double *b, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) {
        double r = eb_two_phase_b(p, tau[i]) - b[i];
        s += r * r;
    }
    return s;
}

/* For a fixed split, b is linear in (b_h, b_l): solves the 2×2 normal
 * equations. Returns 0 when a side of the split has no point. */
static int two_phase_at(double th, const double *tau, const double *b, int n, eb_fit_two_phase *p) {
    double a11 = 0, a12 = 0, a22 = 0, r1 = 0, r2 = 0;
    int below = 0, above = 0;
    for (int i = 0; i < n; i++) {
        double u, v, target; /* b_i ≈ u·b_h + v·b_l + (target offset moved to the left side) */
        if (tau[i] >= th) {
            double e = exp(-5 * (1 - tau[i]) / (1 - th));
            u = 1 - e, v = 0, target = b[i] - e, above++;
        } else {
            double e = exp(5 * (tau[i] - th) / (1 - th));
            u = e, v = 1 - e, target = b[i], below++;
        }
        a11 += u * u, a12 += u * v, a22 += v * v, r1 += u * target, r2 += v * target;
    }
    double det = a11 * a22 - a12 * a12;
    if (!below || !above || !(fabs(det) > 1e-300)) return 0;
    *p = (eb_fit_two_phase){.b_h = (r1 * a22 - r2 * a12) / det, .b_l = (a11 * r2 - a12 * r1) / det, .t_thre = th};
    return 1;
}

/* Refines p with trust-region Levenberg–Marquardt; keeps p when that fails or leaves (0, 1). */
static void two_phase_refine(eb_fit_two_phase *p, const double *tau, const double *b, int n) {
    two_phase_data data = {tau, b, n};
    gsl_multifit_nlinear_fdf fdf = {.f = two_phase_f, .df = two_phase_df, .fvv = NULL, .n = n, .p = 3, .params = &data};
    gsl_multifit_nlinear_parameters params = gsl_multifit_nlinear_default_parameters();
    gsl_multifit_nlinear_workspace *w = gsl_multifit_nlinear_alloc(gsl_multifit_nlinear_trust, &params, n, 3);
    if (!w) return;
    double x0[3] = {p->b_h, p->b_l, p->t_thre};
    gsl_vector_view x = gsl_vector_view_array(x0, 3);
    int info;
    if (!gsl_multifit_nlinear_init(&x.vector, &fdf, w) &&
        !gsl_multifit_nlinear_driver(200, 1e-14, 1e-14, 1e-14, NULL, NULL, &info, w)) {
        const gsl_vector *r = gsl_multifit_nlinear_position(w);
        eb_fit_two_phase q = {.b_h = gsl_vector_get(r, 0), .b_l = gsl_vector_get(r, 1), .t_thre = gsl_vector_get(r, 2)};
        if (q.t_thre > 0 && q.t_thre < 1 && isfinite(q.b_h) && isfinite(q.b_l) &&
            two_phase_ssr(&q, tau, b, n) <= two_phase_ssr(p, tau, b, n))
            *p = q;
    }
    gsl_multifit_nlinear_free(w);
}

#define SPLIT_GRID 199 /* t_thre = 0.005, 0.010, …, 0.995 */

static const char *const FLAG_NAMES[EB_FIT_NFLAGS] = {"split-at-edge", "low-r2", "negative-b"};

const char *eb_fit_flag_name(eb_fit_flag f) {
    for (int i = 0; i < EB_FIT_NFLAGS; i++)
        if (f == 1u << i) return FLAG_NAMES[i];
    return "?";
}

const char *eb_fit_flags_list(unsigned flags, char *buf, size_t cap) {
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < EB_FIT_NFLAGS; i++)
        if (flags & 1u << i && used < cap)
            used += snprintf(buf + used, cap - used, "%s%s", used ? ", " : "", FLAG_NAMES[i]);
    return buf;
}

/* The phase counts and degeneracy flags of fitted p (r2 set) on tau (n). A
 * phase of a few steps lets one step's ratio set an extreme divisor. */
static void two_phase_flags(eb_fit_two_phase *p, const double *tau, int n) {
    p->below = p->above = 0;
    int positive = p->b_h > 0 && p->b_l > 0;
    for (int i = 0; i < n; i++) {
        *(tau[i] < p->t_thre ? &p->below : &p->above) += 1;
        positive &= eb_two_phase_b(p, tau[i]) > 0;
    }
    int least = EB_FIT_MIN_PHASE_STEPS(n);
    p->flags = (p->below < least || p->above < least ? EB_FIT_SPLIT_AT_EDGE : 0) |
               (!(p->r2 >= EB_FIT_MIN_R2) ? EB_FIT_LOW_R2 : 0) | (!positive ? EB_FIT_NEGATIVE_B : 0);
}

eb_status eb_fit_two_phase_b(const double *tau, const double *b, int n, eb_fit_two_phase *out, double *residual) {
    if (n < 3) return eb_fail(EB_EINPUT, "two-phase fit: %d points, need at least 3", n);
    eb_fit_two_phase best = {0}, p;
    double best_ssr = INFINITY;
    for (int g = 1; g <= SPLIT_GRID; g++) {
        double ssr;
        if (two_phase_at(g / (SPLIT_GRID + 1.0), tau, b, n, &p) && (ssr = two_phase_ssr(&p, tau, b, n)) < best_ssr)
            best = p, best_ssr = ssr;
    }
    if (!isfinite(best_ssr))
        return eb_fail(EB_EINPUT, "two-phase fit: the %d points do not straddle any split in (0, 1)", n);
    gsl_error_handler_t *old = gsl_set_error_handler_off();
    two_phase_refine(&best, tau, b, n);
    gsl_set_error_handler(old);
    double res[n];
    for (int i = 0; i < n; i++) res[i] = b[i] - eb_two_phase_b(&best, tau[i]);
    *out = best;
    goodness(b, res, n, &out->r2, &out->rmse);
    two_phase_flags(out, tau, n);
    if (residual) memcpy(residual, res, n * sizeof *res);
    return EB_OK;
}


eb_status eb_fit_polynomial(const double *x, const double *y, int n, int order, eb_fit_poly *out, double *residual) {
    if (order < 1 || order > EB_TEACACHE_ORDER)
        return eb_fail(EB_EINPUT, "polynomial fit: order %d outside [1, %d]", order, EB_TEACACHE_ORDER);
    if (n <= order) return eb_fail(EB_EINPUT, "polynomial fit of order %d: %d points, need at least %d", order, n, order + 1);
    const int p = order + 1;
    gsl_matrix *X = gsl_matrix_alloc(n, p);
    gsl_vector *c = gsl_vector_alloc(p);
    gsl_matrix *cov = gsl_matrix_alloc(p, p);
    gsl_multifit_linear_workspace *w = gsl_multifit_linear_alloc(n, p);
    if (!X || !c || !cov || !w) {
        gsl_matrix_free(X), gsl_vector_free(c), gsl_matrix_free(cov), gsl_multifit_linear_free(w);
        return eb_fail(EB_ERUNTIME, "out of memory for a polynomial fit of %d points", n);
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < p; j++) gsl_matrix_set(X, i, j, pow(x[i], j));
    gsl_vector_const_view yv = gsl_vector_const_view_array(y, n);
    double chisq;
    gsl_error_handler_t *old = gsl_set_error_handler_off();
    int gs = gsl_multifit_linear(X, &yv.vector, c, cov, &chisq, w);
    gsl_set_error_handler(old);
    eb_status st = EB_OK;
    if (gs) st = eb_fail(EB_EINPUT, "polynomial fit of order %d: %s", order, gsl_strerror(gs));
    if (!st) {
        out->npoly = p;
        for (int j = 0; j < p; j++) out->poly[j] = gsl_vector_get(c, p - 1 - j); /* highest degree first */
        double res[n];
        for (int i = 0; i < n; i++) res[i] = y[i] - eb_poly_eval(out->poly, p, x[i]);
        goodness(y, res, n, &out->r2, &out->rmse);
        if (residual) memcpy(residual, res, n * sizeof *res);
    }
    gsl_matrix_free(X), gsl_vector_free(c), gsl_matrix_free(cov), gsl_multifit_linear_free(w);
    return st;
}

/* ------------------------------------------------------------------------ */
/* All fits of one recording                                                 */

void eb_fit_free(eb_fit *f) {
    free(f->t), free(f->tau), free(f->ratio), free(f->linear_residual), free(f->two_phase_residual);
    free(f->tc_x), free(f->tc_y), free(f->tc_residual);
    memset(f, 0, sizeof *f);
}

/* Allocates the per-step arrays for S steps. */
static eb_status fit_alloc(eb_fit *f, int S) {
    f->S = S;
    f->t = malloc(S * sizeof *f->t);
    f->tau = malloc(S * sizeof *f->tau), f->ratio = malloc(S * sizeof *f->ratio);
    f->linear_residual = malloc(S * sizeof(double)), f->two_phase_residual = malloc(S * sizeof(double));
    f->tc_x = malloc(S * sizeof(double)), f->tc_y = malloc(S * sizeof(double)), f->tc_residual = malloc(S * sizeof(double));
    if (!f->t || !f->tau || !f->ratio || !f->linear_residual || !f->two_phase_residual || !f->tc_x || !f->tc_y ||
        !f->tc_residual)
        return eb_fail(EB_ERUNTIME, "out of memory for the fits of %d steps", S);
    return EB_OK;
}

/* Prefixes the failure message of a fit with the recording's name. */
static eb_status named(eb_status st, const char *path) {
    if (st) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", eb_last_error());
        eb_fail(st, "%s: %s", path, msg);
    }
    return st;
}

eb_status eb_fit_recording(eb_fit *f, const eb_rec_data *r) {
    memset(f, 0, sizeof *f);
    const int S = r->S, s0 = r->start, n = S - s0;
    if (!r->eps_norm_q)
        return eb_fail(EB_EINPUT, "%s: no dataset '/eps/norm_q' (recorded with --no-eps-q): the ε-scaling fits need it",
                       r->path);
    if (n < EB_TEACACHE_ORDER + 2)
        return eb_fail(EB_EINPUT, "%s: %d recorded steps; the fits need at least %d (the polynomial needs %d drift points)",
                       r->path, n, EB_TEACACHE_ORDER + 2, EB_TEACACHE_ORDER + 1);
    eb_status st = fit_alloc(f, S);
    snprintf(f->recording, sizeof f->recording, "%s", r->path);
    snprintf(f->sha256, sizeof f->sha256, "%s", r->sha256);
    f->start = s0, f->npoints = n - 1;
    double inv[S];
    for (int i = 0; !st && i < S; i++) {
        double chain = 0, q = 0;
        for (int k = 0; k < r->N; k++) chain += r->eps_norm[(size_t)i * r->N + k], q += r->eps_norm_q[(size_t)i * r->N + k];
        f->t[i] = r->t[i];
        f->tau[i] = r->t[i] / (double)EB_DIFFUSION_STEPS;
        f->ratio[i] = i < s0 ? NAN : chain / q;
        inv[i] = q / chain; /* the multiplier b(τ) that brings the chain's norm to q's */
        f->linear_residual[i] = f->two_phase_residual[i] = NAN;
    }
    for (int i = s0 + 1; !st && i < S; i++) f->tc_x[i - s0 - 1] = r->drift_block0[i], f->tc_y[i - s0 - 1] = r->drift_output[i];
    if (!st) st = named(eb_fit_linear(f->tau + s0, f->ratio + s0, n, &f->linear, f->linear_residual + s0), r->path);
    if (!st) st = named(eb_fit_two_phase_b(f->tau + s0, inv + s0, n, &f->two_phase, f->two_phase_residual + s0), r->path);
    if (!st)
        st = named(eb_fit_polynomial(f->tc_x, f->tc_y, f->npoints, EB_TEACACHE_ORDER, &f->teacache, f->tc_residual),
                   r->path);
    if (st) eb_fit_free(f);
    return st;
}

/* ------------------------------------------------------------------------ */
/* The fit file                                                              */

static void write_1d(eb_h5w *w, const char *name, eb_h5_type type, const void *data, int n) {
    int64_t d[1] = {n};
    eb_h5w_write(w, name, type, data, 1, d);
}

eb_status eb_fit_write(const eb_fit *f, const char *path) {
    eb_h5w *w;
    eb_status st = eb_h5w_create(&w, path);
    if (st) return st;
    /* a failed write makes every later call and the commit fail with its message */
    eb_h5w_attr_str(w, NULL, "format", FIT_FORMAT);
    eb_h5w_attr_str(w, NULL, "ebcache_version", EBCACHE_VERSION);
    eb_h5w_attr_str(w, NULL, "recording", f->recording);
    eb_h5w_attr_str(w, NULL, "recording_sha256", f->sha256);
    eb_h5w_attr_i64(w, NULL, "start_step", f->start);
    write_1d(w, "/steps/t", EB_H5_I32, f->t, f->S);
    write_1d(w, "/steps/tau", EB_H5_F64, f->tau, f->S);
    write_1d(w, "/eps_scaling/ratio", EB_H5_F64, f->ratio, f->S);
    write_1d(w, "/eps_scaling/linear/residual", EB_H5_F64, f->linear_residual, f->S);
    const char *g = "/eps_scaling/linear";
    eb_h5w_attr_f64(w, g, "k", f->linear.k), eb_h5w_attr_f64(w, g, "b", f->linear.b);
    eb_h5w_attr_f64(w, g, "r2", f->linear.r2), eb_h5w_attr_f64(w, g, "rmse", f->linear.rmse);
    write_1d(w, "/eps_scaling/two_phase/residual", EB_H5_F64, f->two_phase_residual, f->S);
    g = "/eps_scaling/two_phase";
    eb_h5w_attr_f64(w, g, "b_h", f->two_phase.b_h), eb_h5w_attr_f64(w, g, "b_l", f->two_phase.b_l);
    eb_h5w_attr_f64(w, g, "t_thre", f->two_phase.t_thre);
    eb_h5w_attr_f64(w, g, "r2", f->two_phase.r2), eb_h5w_attr_f64(w, g, "rmse", f->two_phase.rmse);
    write_1d(w, "/teacache/x", EB_H5_F64, f->tc_x, f->npoints);
    write_1d(w, "/teacache/y", EB_H5_F64, f->tc_y, f->npoints);
    write_1d(w, "/teacache/residual", EB_H5_F64, f->tc_residual, f->npoints);
    write_1d(w, "/teacache/poly", EB_H5_F64, f->teacache.poly, f->teacache.npoly);
    g = "/teacache";
    eb_h5w_attr_f64(w, g, "r2", f->teacache.r2), eb_h5w_attr_f64(w, g, "rmse", f->teacache.rmse);
    return eb_h5w_commit(w);
}

/* Reads the attributes `names` of group g into v (in order). */
static eb_status read_attrs(eb_h5 *h, const char *g, const char *const *names, double *const *v, int n) {
    eb_status st = EB_OK;
    for (int i = 0; !st && i < n; i++) st = eb_h5_attr_f64(h, g, names[i], v[i]);
    return st;
}

static eb_status read_fit(eb_fit *f, eb_h5 *h, const char *path) {
    char *s = NULL;
    eb_status st = eb_h5_attr_str(h, NULL, "format", &s);
    if (!st && strcmp(s, FIT_FORMAT)) st = eb_fail(EB_EINPUT, "%s: format '%s', expected '%s'", path, s, FIT_FORMAT);
    free(s), s = NULL;
    if (!st && !(st = eb_h5_attr_str(h, NULL, "recording", &s))) snprintf(f->recording, sizeof f->recording, "%s", s);
    free(s), s = NULL;
    if (!st && !(st = eb_h5_attr_str(h, NULL, "recording_sha256", &s))) snprintf(f->sha256, sizeof f->sha256, "%s", s);
    free(s);
    int64_t d[1], start = 0;
    if (!st) st = eb_h5_attr_i64(h, NULL, "start_step", &start);
    if (!st) st = eb_h5_read_i32(h, "/steps/t", 1, NULL, &f->t, d);
    if (st) return st;
    const int S = f->S = (int)d[0];
    if (start < 0 || S - start < EB_TEACACHE_ORDER + 2)
        return eb_fail(EB_EINPUT, "%s: %d steps from start_step %lld: too few for the fits", path, S, (long long)start);
    const int s0 = f->start = (int)start;
    int64_t want[1] = {S};
    /* rows before the start are NaN */
    const char *rows[4] = {"/steps/tau", "/eps_scaling/ratio", "/eps_scaling/linear/residual",
                           "/eps_scaling/two_phase/residual"};
    double **dst[4] = {&f->tau, &f->ratio, &f->linear_residual, &f->two_phase_residual};
    for (int k = 0; !st && k < 4; k++) {
        st = eb_h5_read_f64(h, rows[k], 1, want, dst[k], d, 0);
        if (!st) st = check_values(path, rows[k], *dst[k], S, 1, k ? s0 : 0, 0);
    }
    if (st) return st;
    f->npoints = S - s0 - 1;
    want[0] = f->npoints;
    if ((st = eb_h5_read_f64(h, "/teacache/x", 1, want, &f->tc_x, d, EB_H5_FINITE)) ||
        (st = eb_h5_read_f64(h, "/teacache/y", 1, want, &f->tc_y, d, EB_H5_FINITE)) ||
        (st = eb_h5_read_f64(h, "/teacache/residual", 1, want, &f->tc_residual, d, EB_H5_FINITE)))
        return st;
    double *poly;
    want[0] = EB_TEACACHE_ORDER + 1;
    if ((st = eb_h5_read_f64(h, "/teacache/poly", 1, want, &poly, d, EB_H5_FINITE))) return st;
    f->teacache.npoly = EB_TEACACHE_ORDER + 1;
    memcpy(f->teacache.poly, poly, sizeof f->teacache.poly);
    free(poly);
    eb_fit_line *l = &f->linear;
    eb_fit_two_phase *p = &f->two_phase;
    if ((st = read_attrs(h, "/eps_scaling/linear", (const char *const[]){"k", "b", "r2", "rmse"},
                         (double *const[]){&l->k, &l->b, &l->r2, &l->rmse}, 4)) ||
        (st = read_attrs(h, "/eps_scaling/two_phase", (const char *const[]){"b_h", "b_l", "t_thre", "r2", "rmse"},
                         (double *const[]){&p->b_h, &p->b_l, &p->t_thre, &p->r2, &p->rmse}, 5)) ||
        (st = read_attrs(h, "/teacache", (const char *const[]){"r2", "rmse"},
                         (double *const[]){&f->teacache.r2, &f->teacache.rmse}, 2)))
        return st;
    if (!(p->t_thre > 0 && p->t_thre < 1) || !isfinite(p->b_h) || !isfinite(p->b_l) || !isfinite(l->k) || !isfinite(l->b))
        return eb_fail(EB_EINPUT, "%s: fitted parameters out of range (t_thre %g, b_h %g, b_l %g, k %g, b %g)", path,
                       p->t_thre, p->b_h, p->b_l, l->k, l->b);
    two_phase_flags(p, f->tau + s0, S - s0);
    return EB_OK;
}

eb_status eb_fit_read(eb_fit *f, const char *path) {
    memset(f, 0, sizeof *f);
    eb_h5 *h;
    eb_status st = eb_h5_open(&h, path);
    if (st) return st;
    st = read_fit(f, h, path);
    eb_h5_close(h);
    if (st) eb_fit_free(f);
    return st;
}
