/* test_record.c — the recorder against the independent PyTorch computation
 * (tests/golden/record_goldens.h5, reference/record_ref.py), the nominal SNR
 * against the closed form, the drift reduction against plain loops, that
 * observing changes no result, feature dumps against the drift they imply,
 * the errors of bad options, and that forked ranks around a shared-memory
 * communicator return one process's recording bit for bit. `ebcache record` / `plot` end to end are in
 * the cli_record suite below. */
#include "runtime/backend.h"
#include "tests/cli_util.h"
#include "tests/golden.h"
#include "tests/slot_comm.h"
#include "runtime/h5io.h"
#include "analyze/record.h"
#include "runtime/schedule.h"
#include "analyze/sha256.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define GOLDEN "record_goldens.h5"

/* ------------------------------------------------------------------------ */
/* Golden cases                                                              */

typedef struct {
    eb_model *m;
    eb_schedule sched;
    eb_cache_schedule *table;
    eb_record_opts o;
    float *xT, *x0;
    int32_t *y;
    int N;
} golden_case;

static char *attr_str(eb_h5 *f, const char *group, const char *name) {
    char *s = NULL;
    cr_assert_eq(eb_h5_attr_str(f, group, name, &s), EB_OK, "%s", eb_last_error());
    return s;
}

static double attr_f64(eb_h5 *f, const char *group, const char *name) {
    double v;
    cr_assert_eq(eb_h5_attr_f64(f, group, name, &v), EB_OK, "%s", eb_last_error());
    return v;
}

/* Loads case `name` of the golden file: model, sampler, table, inputs. */
static void case_load(golden_case *g, const char *name) {
    memset(g, 0, sizeof *g);
    eb_h5 *f;
    char path[256], ds[128];
    snprintf(path, sizeof path, GOLDEN_DIR GOLDEN);
    cr_assert_eq(eb_h5_open(&f, path), EB_OK, "%s", eb_last_error());
    char *model = attr_str(f, name, "model"), *spacing = attr_str(f, name, "spacing");
    char *sampler = attr_str(f, name, "sampler"), *vt = attr_str(f, name, "var_type"), *text = attr_str(f, name, "table");
    g->m = golden_model(model, (int)attr_f64(f, name, "heads"));
    cr_assert_eq(eb_schedule_create(&g->sched, spacing), EB_OK, "%s", eb_last_error());
    if (*text) cr_assert_eq(eb_cache_schedule_parse(&g->table, text, name), EB_OK, "%s", eb_last_error());
    const eb_config *c = eb_model_config(g->m);
    g->o = (eb_record_opts){
        .sched = &g->sched,
        .so = {.kind = strcmp(sampler, "ddim") ? EB_SAMPLER_DDPM : EB_SAMPLER_DDIM,
               .var_type = !strcmp(vt, "learned_range") ? EB_VAR_LEARNED_RANGE
                           : !strcmp(vt, "fixed_small") ? EB_VAR_FIXED_SMALL : EB_VAR_FIXED_LARGE,
               .eta = (float)attr_f64(f, name, "eta"), .cfg_scale = (float)attr_f64(f, name, "cfg"),
               .guide_channels = eb_default_guide_channels(c), .seed = (uint64_t)attr_f64(f, name, "seed")},
        .cache = g->table,
        .start_step = (int)attr_f64(f, name, "start_step"),
        .eps_q = 1,
    };
    int64_t d[4];
    snprintf(ds, sizeof ds, "%s/xT", name);
    cr_assert_eq(eb_h5_read_f32(f, ds, 4, NULL, &g->xT, d, 0), EB_OK, "%s", eb_last_error());
    g->N = (int)d[0];
    snprintf(ds, sizeof ds, "%s/y", name);
    cr_assert_eq(eb_h5_read_i32(f, ds, 1, NULL, &g->y, d), EB_OK, "%s", eb_last_error());
    snprintf(ds, sizeof ds, "%s/x0", name);
    if (eb_h5_lookup(f, ds) == EB_H5_DATASET) {
        cr_assert_eq(eb_h5_read_f32(f, ds, 4, NULL, &g->x0, d, 0), EB_OK, "%s", eb_last_error());
        g->o.x0 = g->x0;
    }
    free(model), free(spacing), free(sampler), free(vt), free(text);
    eb_h5_close(f);
}

static void case_free(golden_case *g) {
    eb_model_free(g->m);
    eb_schedule_free(&g->sched);
    eb_cache_schedule_free(g->table);
    free(g->xT), free(g->x0), free(g->y);
}

/* got (n) against the golden dataset: the same NaN pattern (undefined rows),
 * |got − want| ≤ tol · max(|want|, floor) elsewhere. */
static void expect_close(const char *name, const char *ds, const double *got, size_t n, double tol, double floor) {
    char full[128];
    snprintf(full, sizeof full, "%s/%s", name, ds);
    int64_t d[EB_H5_MAX_RANK];
    int rank;
    eb_h5 *f;
    cr_assert_eq(eb_h5_open(&f, GOLDEN_DIR GOLDEN), EB_OK);
    cr_assert_eq(eb_h5_shape(f, full, &rank, d), EB_OK, "%s", eb_last_error());
    eb_h5_close(f);
    double *want = golden_f64(GOLDEN, full, rank, d);
    cr_assert_eq((size_t)(rank == 1 ? d[0] : d[0] * d[1]), n, "%s: size", full);
    cr_assert_not_null(got, "%s: recorded", full);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(isnan(got[i]), isnan(want[i]), "%s[%zu]: got %g, want %g", full, i, got[i], want[i]);
        if (isnan(want[i])) continue;
        cr_expect_leq(fabs(got[i] - want[i]), tol * fmax(fabs(want[i]), floor), "%s[%zu]: got %.9g, want %.9g", full,
                      i, got[i], want[i]);
    }
    free(want);
}

/* Every statistic of one chain set. Measured worst relative errors against the
 * reference: ε norms, cosines, data SNR and variance ratios ≤ 1e-6, drift ratios
 * ≤ 3e-6; the trajectory SNR ≤ 2.2e-5 (its last steps divide by ‖x̂_t − √ᾱ x̂_0‖²,
 * a difference of nearly equal chains). Tolerances leave about 5× margin. */
static void expect_stats(const char *name, const char *prefix, const eb_record_stats *s, const eb_recording *r) {
    char ds[96];
#define DS(x) (snprintf(ds, sizeof ds, "%s%s", prefix, x), ds)
    size_t S = r->S, SL = (size_t)r->S * r->L, SN = (size_t)r->S * r->N;
    expect_close(name, DS("snr/trajectory"), s->snr_trajectory, S, 1e-4, 0);
    expect_close(name, DS("eps/norm"), s->eps_norm, SN, 5e-6, 0);
    expect_close(name, DS("drift/attn"), s->drift_attn, SL, 2e-5, 1e-2);
    expect_close(name, DS("drift/mlp"), s->drift_mlp, SL, 2e-5, 1e-2);
    expect_close(name, DS("drift/attn_cos"), s->drift_attn_cos, SL, 5e-6, 1);
    expect_close(name, DS("drift/mlp_cos"), s->drift_mlp_cos, SL, 5e-6, 1);
    expect_close(name, DS("drift/block0_input"), s->drift_block0, S, 2e-5, 1e-2);
    expect_close(name, DS("drift/output"), s->drift_output, S, 2e-5, 1e-2);
    /* the normalised SNR: the reference divides by P·ᾱ/(1−ᾱ) literally, the C code uses the reduced form */
    expect_close(name, DS("exposure/snr_ratio"), s->snr_ratio, S, 1e-4, 0);
    expect_close(name, DS("signal_power"), &s->signal_power, 1, 1e-5, 0);
    if (s->snr_data) {
        expect_close(name, DS("snr/data"), s->snr_data, S, 5e-6, 0);
        expect_close(name, DS("exposure/var_ratio"), s->var_ratio, S, 5e-6, 0);
        expect_close(name, DS("exposure/snr_data_ratio"), s->snr_data_ratio, S, 5e-6, 0);
        expect_close(name, DS("data_power"), &s->data_power, 1, 1e-6, 0);
    }
#undef DS
}

static void check_case(const char *name, int batch) {
    golden_case g;
    case_load(&g, name);
    g.o.batch = batch;
    eb_recording r;
    cr_assert_eq(eb_record_run(g.m, &g.o, g.xT, g.y, g.N, &r, NULL), EB_OK, "%s", eb_last_error());
    expect_close(name, "steps/alpha_bar", r.alpha_bar, r.S, 1e-15, 0);
    expect_close(name, "snr/nominal", r.snr_nominal, r.S, 1e-13, 0);
    expect_stats(name, "", &r.run, &r);
    expect_close(name, "eps/norm_q", r.run.eps_norm_q, (size_t)r.S * r.N, 5e-6, 0);
    cr_assert_eq(!!g.table, r.has_reference);
    if (g.table) {
        expect_stats(name, "reference/", &r.reference, &r);
        expect_close(name, "deviation/x", r.deviation_x, r.S, 2e-5, 1e-2);
        expect_close(name, "deviation/eps", r.deviation_eps, r.S, 2e-5, 1e-2);
    }
    char ds[64];
    snprintf(ds, sizeof ds, "%s/samples", name);
    float *want = golden_f32(GOLDEN, ds, 4, NULL);
    cr_expect_leq(max_rel_err(r.samples, want, (size_t)g.N * r.C * r.H * r.H), 1e-4, "%s", ds);
    free(want);
    eb_recording_free(&r);
    case_free(&g);
}

TestSuite(record);

/* EB-Cache rows (reuse, per-block overrides, ε scale) from step 3 of data chains, guidance, batches of 1. */
Test(record, golden_cached_with_data_and_start_step) { check_case("cached", 1); }
/* Uncached, no guidance, ε_q from the run's own samples, batches of 2 + 1. */
Test(record, golden_plain) { check_case("plain", 2); }
/* Δ-DiT: skipped blocks leave NaN drift and the next step compares with the last feature seen. */
Test(record, golden_delta_dit) { check_case("delta", 0); }

/* ------------------------------------------------------------------------ */
/* Closed forms, invariance, the reduction, dumps, bad options               */

/* ᾱ(t) = Π_{s ≤ t} (1 − β_s), β linear from 1e-4 to 0.02 over 1000 steps (DDPM's schedule), at the
 * respaced timesteps: SNR = ᾱ/(1 − ᾱ) for every respacing. */
Test(record, nominal_snr_is_the_closed_form) {
    eb_model *m = golden_model("tiny_nosigma.safetensors", 3);
    const char *spacings[] = {"50", "ddim25", "10,10,5", "7"};
    float xT[2 * 144];
    int32_t y = 1;
    eb_rng_fill_normal(xT, 2 * 144, eb_rng_key(3, 0));
    for (size_t k = 0; k < sizeof spacings / sizeof spacings[0]; k++) {
        eb_schedule s;
        cr_assert_eq(eb_schedule_create(&s, spacings[k]), EB_OK);
        eb_record_opts o = {.sched = &s, .so = {.kind = EB_SAMPLER_DDIM, .var_type = EB_VAR_FIXED_SMALL,
                                                .cfg_scale = 1.0f, .seed = 1}};
        eb_recording r;
        cr_assert_eq(eb_record_run(m, &o, xT, &y, 1, &r, NULL), EB_OK, "%s", eb_last_error());
        for (int i = 0; i < r.S; i++) {
            int t = r.t[i];
            cr_assert(i == 0 || t < r.t[i - 1], "%s: timesteps decrease along the steps", spacings[k]);
            double ab = 1;
            for (int u = 0; u <= t; u++) ab *= 1 - (1e-4 + (0.02 - 1e-4) * u / 999.0);
            cr_expect_float_eq(r.alpha_bar[i], ab, 1e-12 * ab, "%s: alpha_bar[%d]", spacings[k], i);
            cr_expect_float_eq(r.snr_nominal[i], ab / (1 - ab), 1e-10 * ab / (1 - ab), "%s: snr[%d] (t %d)",
                               spacings[k], i, t);
        }
        eb_recording_free(&r);
        eb_schedule_free(&s);
    }
    eb_model_free(m);
}

/* The observer changes no bit: recorded samples equal eb_sample_cached's, cached and not. */
Test(record, observing_changes_nothing) {
    const char *cases[] = {"plain", "delta"};
    for (int c = 0; c < 2; c++) {
        golden_case g;
        case_load(&g, cases[c]);
        eb_recording r;
        cr_assert_eq(eb_record_run(g.m, &g.o, g.xT, g.y, g.N, &r, NULL), EB_OK, "%s", eb_last_error());
        size_t n = (size_t)g.N * r.C * r.H * r.H;
        float *x = malloc(n * sizeof(float));
        memcpy(x, g.xT, n * sizeof(float));
        cr_assert_eq(eb_sample_cached(g.m, g.o.sched, &g.o.so, g.table, x, g.y, g.N, 0, NULL), EB_OK);
        cr_expect_arr_eq(x, r.samples, n * sizeof(float), "%s: samples differ", cases[c]);
        free(x);
        eb_recording_free(&r);
        case_free(&g);
    }
}

/* The backend reduction against plain double loops, and prev ← cur. */
Test(record, feature_drift_matches_loops) {
    enum { N = 1000003 };
    float *prev = malloc(N * sizeof(float)), *cur = malloc(N * sizeof(float));
    eb_rng_fill_normal(prev, N, eb_rng_key(5, 1));
    eb_rng_fill_normal(cur, N, eb_rng_key(5, 2));
    for (size_t i = 0; i < N; i++) cur[i] = 0.8f * prev[i] + 0.3f * cur[i] + 0.1f;
    double want[EB_DRIFT_SUMS] = {0}, got[EB_DRIFT_SUMS];
    for (size_t i = 0; i < N; i++) {
        double c = cur[i], p = prev[i];
        want[EB_DRIFT_L1] += fabs(c - p), want[EB_DRIFT_BASE_L1] += fabs(p), want[EB_DRIFT_DOT] += c * p;
        want[EB_DRIFT_CUR2] += c * c, want[EB_DRIFT_PREV2] += p * p;
    }
    eb_backend_cpu.feature_drift(got, prev, cur, N);
    for (int j = 0; j < EB_DRIFT_SUMS; j++) cr_expect_float_eq(got[j], want[j], 1e-12 * fabs(want[j]), "sum %d", j);
    cr_expect_arr_eq(prev, cur, N * sizeof(float), "prev holds cur afterwards");
    free(prev), free(cur);
}

/* Dumped features of steps 4 and 5 give back /drift at step 5; shape (B, T, D), compressed. */
Test(record, dumps_match_the_drift) {
    golden_case g;
    case_load(&g, "plain");
    const int32_t steps[] = {4, 5}, blocks[] = {1, 2};
    g.o.dump = (eb_record_dump){.nsteps = 2, .nblocks = 2, .steps = steps, .blocks = blocks};
    char path[] = "/tmp/eb_record_dump_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    eb_h5w *w;
    eb_recording r;
    cr_assert_eq(eb_h5w_create(&w, path), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_record_run(g.m, &g.o, g.xT, g.y, g.N, &r, w), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_h5w_commit(w), EB_OK, "%s", eb_last_error());
    eb_h5 *f;
    cr_assert_eq(eb_h5_open(&f, path), EB_OK);
    const eb_config *c = eb_model_config(g.m);
    int64_t want[3] = {g.N, eb_tokens(c), c->hidden_size}, dims[3];
    for (int b = 0; b < 2; b++)
        for (int module = 0; module < 2; module++) {
            float *f4, *f5;
            char n4[64], n5[64];
            snprintf(n4, sizeof n4, "/features/%s/step4/block%d", module ? "mlp" : "attn", blocks[b]);
            snprintf(n5, sizeof n5, "/features/%s/step5/block%d", module ? "mlp" : "attn", blocks[b]);
            cr_assert_eq(eb_h5_read_f32(f, n4, 3, want, &f4, dims, EB_H5_FINITE), EB_OK, "%s", eb_last_error());
            cr_assert_eq(eb_h5_read_f32(f, n5, 3, want, &f5, dims, EB_H5_FINITE), EB_OK, "%s", eb_last_error());
            double diff = 0, base = 0;
            for (int64_t i = 0; i < want[0] * want[1] * want[2]; i++) diff += fabs((double)f5[i] - f4[i]), base += fabs(f4[i]);
            double drift = (module ? r.run.drift_mlp : r.run.drift_attn)[5 * r.L + blocks[b]];
            cr_expect_float_eq(diff / base, drift, 1e-12 * drift, "%s", n5);
            free(f4), free(f5);
        }
    cr_expect_eq(eb_h5_lookup(f, "/features/attn/step4/block0"), EB_H5_NONE, "only the asked blocks");
    eb_h5_close(f);
    unlink(path);
    eb_recording_free(&r);
    case_free(&g);
}

static void expect_rejected(eb_model *m, const eb_record_opts *o, const float *xT, const int32_t *y, int N,
                            const char *needle) {
    eb_recording r;
    cr_assert_eq(eb_record_run(m, o, xT, y, N, &r, NULL), EB_EINPUT, "'%s' accepted", needle);
    cr_expect(strstr(eb_last_error(), needle) != NULL, "message '%s' lacks '%s'", eb_last_error(), needle);
    cr_expect_null(r.t, "nothing left allocated");
}

/* ------------------------------------------------------------------------ */
/* Ranks: forked processes around a shared-memory communicator (slot_comm.h) */

#define FORK_RANKS 3
typedef struct {
    char sha[FORK_RANKS][EB_SHA256_HEX];
    eb_status st[FORK_RANKS];
} fork_results;

/* SHA-256 of every array of a recording (the NaN patterns included: bytes, not values). */
static void recording_sha(const eb_recording *r, char hex[EB_SHA256_HEX]) {
    const size_t S = r->S, SN = S * r->N, SL = S * r->L;
    const eb_record_stats *st[2] = {&r->run, &r->reference};
    eb_sha256_ctx ctx;
    eb_sha256_init(&ctx);
    for (int k = 0; k < 1 + r->has_reference; k++) {
        const eb_record_stats *s = st[k];
        struct { const double *v; size_t n; } a[] = {
            {s->snr_trajectory, S}, {s->snr_data, S}, {s->var_ratio, S}, {s->snr_ratio, S}, {s->snr_data_ratio, S},
            {&s->signal_power, 1}, {&s->data_power, 1}, {s->eps_norm, SN}, {s->eps_norm_q, SN}, {s->drift_attn, SL},
            {s->drift_mlp, SL}, {s->drift_attn_cos, SL}, {s->drift_mlp_cos, SL}, {s->drift_block0, S},
            {s->drift_output, S}};
        for (size_t i = 0; i < sizeof a / sizeof a[0]; i++)
            if (a[i].v) eb_sha256_update(&ctx, a[i].v, a[i].n * sizeof(double));
    }
    if (r->has_reference) {
        eb_sha256_update(&ctx, r->deviation_x, S * sizeof(double));
        eb_sha256_update(&ctx, r->deviation_eps, S * sizeof(double));
    }
    eb_sha256_update(&ctx, r->samples, (size_t)r->N * r->C * r->H * r->H * sizeof(float));
    eb_sha256_update(&ctx, &r->macs, sizeof r->macs);
    eb_sha256_update(&ctx, &r->macs_uncached, sizeof r->macs_uncached);
    uint8_t d[32];
    eb_sha256_final(&ctx, d);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

/* Case `name` in batches of `batch` on 2 and 3 forked ranks: every rank returns the recording of one
 * process, bit for bit (its sums added in batch order, its rows gathered), a rank left without a batch
 * included. */
static void check_ranks(const char *name, int batch) {
    golden_case g;
    case_load(&g, name);
    g.o.batch = batch;
    eb_set_threads(1); /* forked children start no OpenMP team */
    eb_recording one;
    cr_assert_eq(eb_record_run(g.m, &g.o, g.xT, g.y, g.N, &one, NULL), EB_OK, "%s", eb_last_error());
    char want[EB_SHA256_HEX];
    recording_sha(&one, want);
    eb_recording_free(&one);
    fork_results *res = mmap(NULL, sizeof *res, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(res, MAP_FAILED);
    for (int size = 2; size <= FORK_RANKS; size++) {
        slot_state *s = slot_state_new(size, 1 << 20);
        pid_t pids[FORK_RANKS];
        for (int r = 0; r < size; r++)
            if ((pids[r] = fork()) == 0) {
                eb_comm c = slot_comm(s, r);
                eb_record_opts o = g.o;
                o.comm = &c;
                eb_recording rec;
                res->st[r] = eb_record_run(g.m, &o, g.xT, g.y, g.N, &rec, NULL);
                if (!res->st[r]) recording_sha(&rec, res->sha[r]);
                eb_recording_free(&rec);
                _exit(0);
            }
        for (int r = 0; r < size; r++) {
            int status;
            cr_assert_eq(waitpid(pids[r], &status, 0), pids[r]);
            cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s, %d ranks: rank %d died", name, size, r);
            cr_expect_eq(res->st[r], EB_OK, "%s, %d ranks: rank %d failed", name, size, r);
            cr_expect_str_eq(res->sha[r], want, "%s, %d ranks: rank %d's recording differs from one process's", name,
                             size, r);
        }
        slot_state_free(s);
    }
    munmap(res, sizeof *res);
    case_free(&g);
}

/* Cached from data at a start step, batches of 1 (N batches); plain, batches of 2 + 1 (3 ranks: one
 * without a batch). */
Test(record, ranks_give_one_process_bits) {
    check_ranks("cached", 1);
    check_ranks("plain", 2);
}

Test(record, bad_options) {
    golden_case g;
    case_load(&g, "cached");
    eb_record_opts o = g.o;
    o.x0 = NULL;
    expect_rejected(g.m, &o, g.xT, g.y, g.N, "start step 3 needs data");
    o = g.o, o.start_step = 10;
    expect_rejected(g.m, &o, g.xT, g.y, g.N, "start step 10 outside [0, 10)");
    const int32_t early[] = {2}, block9[] = {9}, block0[] = {0};
    o = g.o, o.dump = (eb_record_dump){.nsteps = 1, .nblocks = 1, .steps = early, .blocks = block0};
    expect_rejected(g.m, &o, g.xT, g.y, g.N, "dump step 2 outside the recorded steps [3, 10)");
    o.dump.steps = (const int32_t[]){4}, o.dump.blocks = block9;
    expect_rejected(g.m, &o, g.xT, g.y, g.N, "dump block 9 outside [0, 2)");
    /* the table's step 2 reuses attention computed at step 1: it cannot start at step 2 */
    o = g.o, o.start_step = 2;
    expect_rejected(g.m, &o, g.xT, g.y, g.N, "from step 2");
    o = g.o;
    float *bad = malloc(2 * 4 * 64 * sizeof(float));
    memcpy(bad, g.x0, 2 * 4 * 64 * sizeof(float));
    bad[4 * 64 + 70] = NAN;
    o.x0 = bad;
    expect_rejected(g.m, &o, g.xT, g.y, g.N, "data x0 has NaN at [1, 1, 0, 6]");
    free(bad);
    expect_rejected(g.m, &g.o, g.xT, g.y, 0, "N = 0");
    eb_schedule ten;
    cr_assert_eq(eb_schedule_create(&ten, "20"), EB_OK);
    o = g.o, o.sched = &ten;
    expect_rejected(g.m, &o, g.xT, g.y, g.N, "steps");
    eb_schedule_free(&ten);
    case_free(&g);
}

/* ------------------------------------------------------------------------ */
/* ebcache record / plot                                                     */

#define MODEL GOLDEN_DIR "models/tiny_sigma.safetensors"

/* workdir/x0.h5: x0 (rows, C, 8, 8) = 0.5·N(0, 1), optionally spoiled, and y. */
static void write_x0(const char *name, int rows, int channels, float spoil) {
    char path[512];
    size_t n = (size_t)rows * channels * 64;
    float *x0 = malloc(n * sizeof(float));
    int32_t y[16];
    eb_rng_fill_normal(x0, n, eb_rng_key(9, 0));
    for (size_t i = 0; i < n; i++) x0[i] *= 0.5f;
    x0[n - 1] += spoil;
    for (int i = 0; i < rows; i++) y[i] = i % 10;
    int64_t d[4] = {rows, channels, 8, 8}, yd[1] = {rows};
    eb_h5w *w;
    cr_assert_eq(eb_h5w_create(&w, in_workdir(path, name)), EB_OK);
    eb_h5w_write(w, "x0", EB_H5_F32, x0, 4, d);
    eb_h5w_write(w, "y", EB_H5_I32, y, 1, yd);
    cr_assert_eq(eb_h5w_commit(w), EB_OK, "%s", eb_last_error());
    free(x0);
}

/* Entries of a folder, dot files included. */
static int entries(const char *dir) {
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "%s", dir);
    int count = 0;
    for (struct dirent *e; (e = readdir(d));) count += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return count;
}

TestSuite(cli_record, .init = cli_workdir_make, .fini = cli_workdir_remove);

/* Every documented dataset and attribute of a cached data recording, shapes included. */
Test(cli_record, schema) {
    char x0[512], table[512], rec[512];
    write_x0("x0.h5", 3, 4, 0);
    in_workdir(x0, "x0.h5"), in_workdir(table, "fora.schedule"), in_workdir(rec, "rec.h5");
    cr_assert_eq(cli_run("schedule fora --interval 2 --steps 10 --output %s", table), 0, "%s", err_text);
    cr_assert_eq(cli_run("record --model " MODEL " --steps 10 --n 3 --batch 2 --schedule %s --data %s --start-step 2 "
                         "--dump-features 4:1 --output %s", table, x0, rec),
                 0, "%s", err_text);
    eb_h5 *f;
    cr_assert_eq(eb_h5_open(&f, rec), EB_OK, "%s", eb_last_error());
    const int S = 10, L = 2, N = 3;
    struct { const char *name; int rank; int64_t d0, d1; } sets[] = {
        {"/snr/trajectory", 1, S, 0}, {"/snr/data", 1, S, 0}, {"/exposure/var_ratio", 1, S, 0},
        {"/exposure/snr_ratio", 1, S, 0}, {"/exposure/snr_data_ratio", 1, S, 0},
        {"/reference/exposure/snr_ratio", 1, S, 0}, {"/reference/exposure/snr_data_ratio", 1, S, 0},
        {"/eps/norm", 2, S, N}, {"/eps/norm_q", 2, S, N}, {"/drift/attn", 2, S, L}, {"/drift/mlp", 2, S, L},
        {"/drift/attn_cos", 2, S, L}, {"/drift/mlp_cos", 2, S, L}, {"/drift/block0_input", 1, S, 0},
        {"/drift/output", 1, S, 0}, {"/deviation/x", 1, S, 0}, {"/deviation/eps", 1, S, 0},
        {"/reference/snr/trajectory", 1, S, 0}, {"/reference/snr/data", 1, S, 0},
        {"/reference/exposure/var_ratio", 1, S, 0}, {"/reference/eps/norm", 2, S, N},
        {"/reference/drift/attn", 2, S, L}, {"/reference/drift/mlp", 2, S, L},
        {"/reference/drift/attn_cos", 2, S, L}, {"/reference/drift/mlp_cos", 2, S, L},
        {"/reference/drift/block0_input", 1, S, 0}, {"/reference/drift/output", 1, S, 0},
    };
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
        double *v;
        int64_t want[2] = {sets[i].d0, sets[i].d1}, dims[2];
        cr_assert_eq(eb_h5_read_f64(f, sets[i].name, sets[i].rank, want, &v, dims, 0), EB_OK, "%s", eb_last_error());
        cr_expect(isnan(v[0]) && isnan(v[sets[i].rank == 2 ? sets[i].d1 : 1]), "%s: rows 0, 1 precede the start step",
                  sets[i].name);
        cr_expect(isfinite(v[(S - 1) * (sets[i].rank == 2 ? sets[i].d1 : 1)]), "%s: the last row is defined",
                  sets[i].name);
        free(v);
    }
    const char *always[] = {"/steps/t", "/steps/alpha_bar", "/snr/nominal"};
    for (int i = 0; i < 3; i++) {
        double *v;
        int64_t want[1] = {S}, dims[1];
        cr_assert_eq(eb_h5_read_f64(f, always[i], 1, want, &v, dims, EB_H5_FINITE), EB_OK, "%s", eb_last_error());
        free(v);
    }
    float *samples;
    int64_t sd[4] = {N, 4, 8, 8}, sgot[4];
    cr_expect_eq(eb_h5_read_f32(f, "/samples", 4, sd, &samples, sgot, EB_H5_FINITE), EB_OK, "%s", eb_last_error());
    free(samples);
    float *feat;
    int64_t fd[3] = {4, 16, 64}, got[3];
    cr_expect_eq(eb_h5_read_f32(f, "/features/attn/step4/block1", 3, fd, &feat, got, EB_H5_FINITE), EB_OK, "%s",
                 eb_last_error());
    free(feat);
    char sha[EB_SHA256_HEX], *s;
    cr_assert_eq(eb_sha256_file(MODEL, sha), EB_OK);
    cr_assert_eq(eb_h5_attr_str(f, NULL, "model_sha256", &s), EB_OK);
    cr_expect_str_eq(s, sha);
    free(s);
    cr_assert_eq(eb_h5_attr_str(f, NULL, "schedule_text", &s), EB_OK);
    cr_expect(strncmp(s, "# ebcache schedule v1\n## method: fora", 37) == 0, "schedule text: %.60s", s);
    free(s);
    const char *strings[] = {"ebcache_version", "model", "sampler", "respacing", "variance", "data", "schedule"};
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++) {
        cr_expect_eq(eb_h5_attr_str(f, NULL, strings[i], &s), EB_OK, "%s", eb_last_error());
        free(s);
    }
    struct { const char *name; double value; } nums[] = {
        {"N", 3}, {"steps", 10}, {"start_step", 2}, {"depth", 2}, {"has_data", 1}, {"has_reference", 1},
        {"cfg_scale", 1.5}, {"seed", 0}, {"input_size", 8}, {"hidden_size", 64}, {"num_heads", 4}};
    const char *powers[] = {"signal_power", "reference_signal_power", "data_power"};
    for (int i = 0; i < 3; i++) {
        double v;
        cr_assert_eq(eb_h5_attr_f64(f, NULL, powers[i], &v), EB_OK, "%s", eb_last_error());
        cr_expect(isfinite(v) && v > 0, "attribute %s = %g", powers[i], v);
    }
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        double v;
        cr_assert_eq(eb_h5_attr_f64(f, NULL, nums[i].name, &v), EB_OK, "%s", eb_last_error());
        cr_expect_eq(v, nums[i].value, "attribute %s = %g", nums[i].name, v);
    }
    double fraction;
    cr_assert_eq(eb_h5_attr_f64(f, NULL, "flop_fraction", &fraction), EB_OK);
    cr_expect(fraction > 0.4 && fraction < 0.8, "FORA-2 from step 2 executes about 60%%: %g", fraction);
    eb_h5_close(f);
}

/* Uncached without data: no reference, deviation or data sets; --no-eps-q drops norm_q. */
Test(cli_record, uncached_has_no_reference) {
    char rec[512];
    cr_assert_eq(cli_run("record --model " MODEL " --steps 5 --labels 1,2 --cfg-scale 1 --no-eps-q --output %s",
                         in_workdir(rec, "u.h5")), 0, "%s", err_text);
    eb_h5 *f;
    cr_assert_eq(eb_h5_open(&f, rec), EB_OK);
    const char *absent[] = {"/reference", "/deviation/x", "/snr/data", "/exposure/var_ratio", "/eps/norm_q",
                            "/features"};
    for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++)
        cr_expect_eq(eb_h5_lookup(f, absent[i]), EB_H5_NONE, "%s", absent[i]);
    cr_expect_eq(eb_h5_lookup(f, "/drift/attn"), EB_H5_DATASET);
    eb_h5_close(f);
}

/* Malformed options and files: exit 2, a message naming the culprit, no output file. */
Test(cli_record, rejects_bad_input_and_leaves_nothing) {
    char x0[512], bad[512], nan_x0[512], table[512], short_table[512];
    write_x0("x0.h5", 2, 4, 0);
    write_x0("x0_3ch.h5", 2, 3, 0);
    write_x0("x0_nan.h5", 2, 4, NAN);
    in_workdir(x0, "x0.h5"), in_workdir(bad, "x0_3ch.h5"), in_workdir(nan_x0, "x0_nan.h5");
    cr_assert_eq(cli_run("schedule fora --interval 2 --steps 20 --output %s", in_workdir(table, "t20.schedule")), 0);
    FILE *t = fopen(in_workdir(short_table, "junk.schedule"), "w");
    fputs("# ebcache schedule v1\n## steps: 10\n0 999 * Q C 1\n", t);
    fclose(t);
    struct { const char *args, *needle; } cases[] = {
        {"--n 2 --start-step 3", "--start-step needs --data"},
        {"--n 2 --data /nonexistent/x.h5", "/nonexistent/x.h5"},
        {"--n 2 --data %s", "x0_3ch.h5"},
        {"--n 5 --data %s", "has 2 rows, 5 samples asked for"},
        {"--n 2 --data %s", "NaN at [1, 3, 7, 7]"},
        {"--n 2 --data fmnist", "1-channel"},
        {"--n 2 --schedule %s", "junk.schedule:3"},
        {"--n 2 --schedule %s", "20"},
        {"--n 2 --dump-features 3", "STEPS:BLOCKS"},
        {"--n 2 --dump-features 3:7", "--dump-features"},
        {"--n 2 --data %s --start-step 4 --dump-features 1:0", "dump step 1"},
        {"--n 2 --data %s --start-step 10", "start step 10 outside"},
        {"--n 2 --sampler euler", "--sampler"},
        {"--n 2 --steps 1", "--steps"},
        {"--noise %s", "'noise'"},
        {"--n 2 --labels 1", "exactly one of"},
    };
    const char *files[] = {NULL, NULL, bad, x0, nan_x0, NULL, short_table, table, NULL, NULL, x0, x0, NULL, NULL,
                           x0, NULL};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char args[1024], out[512];
        snprintf(args, sizeof args, cases[k].args, files[k]);
        int rc = cli_run("record --model " MODEL " --steps 10 %s --output %s", args, in_workdir(out, "o.h5"));
        cr_expect_eq(rc, 2, "%s: exit %d (%s)", args, rc, err_text);
        cr_expect(strstr(err_text, cases[k].needle) != NULL, "%s: '%s' lacks '%s'", args, err_text, cases[k].needle);
        cr_expect_neq(access(out, F_OK), 0, "%s left an output", args);
    }
    cr_expect_eq(entries(workdir), 5, "only the inputs remain");
}

/* SIGINT mid-run: the temporary file is gone and no output appears. */
Test(cli_record, interrupted_run_leaves_nothing) {
    const char *bin = getenv("EBCACHE_BIN") ? getenv("EBCACHE_BIN") : "build/opt/ebcache";
    char out[512], dir[300];
    in_workdir(out, "int.h5");
    snprintf(dir, sizeof dir, "%s", workdir);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        freopen("/dev/null", "w", stderr);
        execl(bin, bin, "record", "--model", GOLDEN_DIR "models/tiny_nosigma.safetensors", "--heads", "3", "--steps",
              "1000", "--n", "64", "--threads", "1", "--output", out, (char *)NULL);
        _exit(127);
    }
    int seen = 0;
    for (int tries = 0; tries < 6000 && !seen; tries++) { /* up to a minute for the temporary file */
        seen = entries(dir) > 0;
        if (!seen) usleep(10000);
    }
    cr_assert(seen, "the run never created its temporary file");
    kill(pid, SIGINT);
    int status;
    waitpid(pid, &status, 0);
    cr_expect(WIFSIGNALED(status) && WTERMSIG(status) == SIGINT, "ended by the signal (status %d)", status);
    cr_expect_eq(entries(dir), 0, "nothing left in %s", dir);
}

/* Four PNGs (and their columns) from a recording; a file that is not one is refused. */
Test(cli_record, plot) {
    char rec[512], figs[512], x0[512];
    write_x0("x0.h5", 2, 4, 0);
    in_workdir(x0, "x0.h5"), in_workdir(rec, "rec.h5"), in_workdir(figs, "figs");
    cr_assert_eq(cli_run("record --model " MODEL " --steps 8 --n 2 --data %s --start-step 1 --output %s", x0, rec), 0,
                 "%s", err_text);
    cr_assert_eq(cli_run("plot %s --out %s", rec, figs), 0, "%s", err_text);
    const char *pngs[] = {"snr.png", "exposure.png", "drift.png", "eps.png"};
    for (int i = 0; i < 4; i++) {
        char path[600];
        unsigned char head[8] = {0};
        snprintf(path, sizeof path, "%s/%s", figs, pngs[i]);
        FILE *f = fopen(path, "rb");
        cr_assert_not_null(f, "%s", path);
        cr_expect_eq(fread(head, 1, 8, f), 8);
        fclose(f);
        cr_expect_arr_eq(head, "\x89PNG\r\n\x1a\n", 8, "%s is a PNG", path);
    }
    cr_expect_eq(entries(figs), 11, "4 PNGs (no caching.png uncached), 6 column files, t_axis.gp, no temporary file");
    cr_expect_eq(cli_run("plot %s --out %s", x0, figs), 2);
    cr_expect(strstr(err_text, "/drift/attn") != NULL, "names the missing dataset: %s", err_text);
    cr_expect_eq(cli_run("plot --out %s", figs), 2);
}

/* Data from step 0 are pure noise to the chain: a warning says so; from a later step none. Counts agree in number. */
Test(cli_record, data_from_step_0_warns_and_counts_agree) {
    char x0[512], rec[512];
    write_x0("x0.h5", 2, 4, 0);
    in_workdir(x0, "x0.h5"), in_workdir(rec, "rec.h5");
    cr_assert_eq(cli_run("record --model " MODEL " --steps 4 --n 1 --no-eps-q --data %s --output %s", x0, rec), 0,
                 "%s", err_text);
    cr_expect(strstr(err_text, "warning: --data from step 0") != NULL, "%s", err_text);
    cr_expect(strstr(err_text, "recorded 1 sample,") != NULL, "%s", err_text);
    cr_assert_eq(cli_run("record --model " MODEL " --steps 4 --n 2 --no-eps-q --data %s --start-step 1 --output %s",
                         x0, rec), 0, "%s", err_text);
    cr_expect(strstr(err_text, "warning") == NULL, "%s", err_text);
    cr_expect(strstr(err_text, "recorded 2 samples,") != NULL, "%s", err_text);
    cr_expect_eq(cli_run("record --model " MODEL " --steps 4 --n 2 --data %s --output %s", x0, rec), 0);
    cr_expect_eq(cli_run("record --model " MODEL " --steps 4 --n 3 --data %s --output %s", x0, rec), 2);
    cr_expect(strstr(err_text, "has 2 rows, 3 samples asked for") != NULL, "%s", err_text);
}
