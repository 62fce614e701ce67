/* recording.c — `record` as a library call: a run with the per-step
 * statistics of analyze/record.h, its attributes and labels, in one file. */
#include "pipeline/recording.h"
#include "runtime/clock.h"

#include "analyze/record.h"
#include "train/fmnist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void eb_record_params_defaults(eb_record_params *p) {
    memset(p, 0, sizeof *p);
    eb_run_params_defaults(&p->run);
    p->eps_q = 1;
}

/* The data x0 (n ≥ N rows, the first N kept) and its labels (NULL when the file has none). */
static eb_status load_data(const eb_record_params *p, const eb_config *c, int N, float **x0, int32_t **y0) {
    const char *spec = p->data;
    *x0 = NULL, *y0 = NULL;
    if (!strcmp(spec, "fmnist")) {
        if (c->in_channels != 1 || c->input_size < 28)
            return eb_fail(EB_EINPUT, "`data` fmnist needs a 1-channel model of side >= 28 (this one: %d channel%s, %d)",
                           c->in_channels, c->in_channels == 1 ? "" : "s", c->input_size);
        eb_fmnist d;
        eb_status st = eb_fmnist_load(&d, p->fmnist_dir, "t10k", N, c->input_size);
        if (st) return st;
        if (d.n < N) {
            eb_fmnist_free(&d);
            return eb_fail(EB_EINPUT, "`data` fmnist: the test split has %d image%s, %d asked for", d.n,
                           d.n == 1 ? "" : "s", N);
        }
        *x0 = d.images, *y0 = d.labels;
        return EB_OK;
    }
    eb_h5 *f;
    int64_t dims[4], want[4] = {EB_H5_ANY, c->in_channels, c->input_size, c->input_size};
    eb_status st = eb_h5_open(&f, spec);
    if (!st) st = eb_h5_read_f32(f, "x0", 4, want, x0, dims, EB_H5_FINITE);
    if (!st && dims[0] < N)
        st = eb_fail(EB_EINPUT, "%s: dataset 'x0' has %lld row%s, %d sample%s asked for", spec, (long long)dims[0],
                     dims[0] == 1 ? "" : "s", N, N == 1 ? "" : "s");
    if (!st && eb_h5_lookup(f, "y") == EB_H5_DATASET) {
        int64_t want_y[1] = {dims[0]}, yd[1];
        st = eb_h5_read_i32(f, "y", 1, want_y, y0, yd);
    }
    eb_h5_close(f);
    if (st) free(*x0), free(*y0), *x0 = NULL, *y0 = NULL;
    return st;
}

/* "all" or a comma list of integers in [0, limit) into *out (malloc'd, *n of them). */
static eb_status index_list(const char *spec, int limit, int32_t **out, int *n) {
    if (strcmp(spec, "all")) return eb_int_list_parse("dump_features", spec, 0, limit - 1, out, n);
    if (!(*out = malloc((size_t)limit * sizeof **out))) return eb_fail(EB_ERUNTIME, "out of memory");
    for (*n = 0; *n < limit; ++*n) (*out)[*n] = *n;
    return EB_OK;
}

/* "STEPS:BLOCKS", comma lists or "all", into d (steps and blocks malloc'd). */
static eb_status parse_dump(const char *v, int S, int L, int32_t **steps, int32_t **blocks, eb_record_dump *d) {
    const char *colon = strchr(v, ':');
    if (!colon || colon == v || !colon[1])
        return eb_fail(EB_EINPUT, "`dump_features`: '%s' is not STEPS:BLOCKS (e.g. 10,20:0,3)", v);
    char left[256];
    snprintf(left, sizeof left, "%.*s", (int)(colon - v), v);
    eb_status st = index_list(left, S, steps, &d->nsteps);
    if (!st) st = index_list(colon + 1, L, blocks, &d->nblocks);
    d->steps = *steps, d->blocks = *blocks;
    return st;
}

static eb_status params_check(const eb_record_params *p) {
    if (!p->output) return eb_fail(EB_EINPUT, "`output`: none given");
    if (p->start_step && !p->data)
        return eb_fail(EB_EINPUT, "`start_step` needs `data` (chains start from q(x_t | x0))");
    if (p->start_step < 0 || p->start_step >= EB_DIFFUSION_STEPS)
        return eb_fail(EB_EINPUT, "`start_step`: %d is outside [0, %d]", p->start_step, EB_DIFFUSION_STEPS - 1);
    return EB_OK;
}

static void write_attrs(eb_h5w *w, const eb_record_params *p, const eb_run *r, double wall, int ranks) {
    eb_run_attrs_write(w, r, &p->run);
    eb_h5w_attr_str(w, NULL, "data", p->data ? p->data : "");
    eb_h5w_attr_f64(w, NULL, "wall_seconds", wall);
    eb_h5w_attr_i64(w, NULL, "ranks", ranks);
}

/* Rank 0's part of the job: the recording into w, committed (aborted on failure). */
static eb_status write_recording(eb_h5w *w, const eb_record_params *p, const eb_run *r, const eb_recording *rec,
                                 double wall, int ranks) {
    eb_status st = eb_recording_write(rec, w);
    int64_t yd[1] = {r->N}; /* the labels, so that the run can be replayed */
    if (!st) st = eb_h5w_write(w, "/y", EB_H5_I32, r->y, 1, yd);
    write_attrs(w, p, r, wall, ranks);
    return st ? (eb_h5w_abort(w), st) : eb_h5w_commit(w);
}

eb_status eb_record_to_file(const eb_record_params *p, eb_record_result *res) {
    eb_record_result out = {0};
    if (res) *res = out;
    eb_status st = params_check(p); /* the same on every rank */
    if (st) return st;
    const eb_comm *comm = p->comm ? p->comm : eb_comm_serial();
    eb_run r;
    st = eb_run_open(&r, &p->run);
    if (!st) snprintf(out.warning, sizeof out.warning, "%s", r.warning);
    if (!st && p->data && p->start_step == 0) { /* x̂_T = √ᾱ_T x0 + … keeps almost nothing of x0 (ᾱ_T ≈ 4e-5 on the linear schedule) */
        size_t used = strlen(out.warning);
        snprintf(out.warning + used, sizeof out.warning - used, "%s`data` from step 0: the chains start from almost "
                 "pure noise, so /snr/data and /exposure/var_ratio compare them with an x0 they cannot know; "
                 "`start_step` K > 0 starts them from noised data (docs/recording.md)", used ? "\n" : "");
    }
    int32_t *dump_steps = NULL, *dump_blocks = NULL, *y0 = NULL;
    float *x0 = NULL;
    eb_record_opts o = {.comm = comm};
    if (!st) {
        const eb_config *c = eb_model_config(r.model);
        o = (eb_record_opts){.sched = &r.sched, .so = r.so, .cache = r.table, .start_step = p->start_step,
                             .batch = r.batch, .eps_q = p->eps_q, .comm = comm};
        if (p->dump_features) st = parse_dump(p->dump_features, r.sched.S, c->depth, &dump_steps, &dump_blocks, &o.dump);
        if (!st && p->data) st = load_data(p, c, r.N, &x0, &y0);
    }
    /* data labels replace the cycling default of n */
    if (!st && y0 && p->run.n) memcpy(r.y, y0, (size_t)r.N * sizeof *r.y);
    o.x0 = x0;
    eb_h5w *w = NULL; /* rank 0 writes the file (and the first batch's feature dumps into it) */
    eb_recording rec = {0};
    const double t0 = eb_now_seconds();
    if (!st && comm->rank == 0) st = eb_h5w_create(&w, p->output);
    /* a rank whose preparation failed takes eb_record_run's first collective, the agreement, in its place */
    st = st ? eb_comm_agree(comm, st) : eb_record_run(r.model, &o, r.x_T, r.y, r.N, &rec, w);
    double wall = eb_now_seconds() - t0;
    if (!st) st = eb_comm_max(comm, &wall);
    if (!st) { /* every rank holds the recording; rank 0 writes it, and the ranks learn how that went */
        if (comm->rank == 0) st = write_recording(w, p, &r, &rec, wall, comm->size);
        st = eb_comm_agree(comm, st);
    } else if (w) {
        eb_h5w_abort(w);
    }
    if (!st)
        out.N = r.N, out.S = rec.S, out.start_step = rec.start_step, out.wall = wall, out.macs = rec.macs,
        out.macs_uncached = rec.macs_uncached;
    eb_recording_free(&rec);
    free(dump_steps), free(dump_blocks), free(x0), free(y0);
    eb_run_close(&r);
    if (res) *res = out;
    return st;
}
