/* bench_gpu.c — DiT on the CUDA backend (docs/cuda.md), random weights:
 *
 *  1. the forward with guidance at each precision and batch: ms per step,
 *     images/s, achieved TFLOP/s, and the rate cuBLAS reaches on the same
 *     GEMM shapes alone in this run (its "peak" for this forward), with the
 *     share of the step the GEMMs alone would take, and peak device memory;
 *  2. where one such forward's time goes at batch --breakdown N: CUDA events
 *     around every backend op, summed per kind;
 *  3. sampling under cache schedule tables (FORA, EB-Cache, ...) against the
 *     uncached sampler in the same run: measured speedup vs the FLOP ratio.
 *
 * usage: bench_gpu [--config XL/2] [--precisions fp32,tf32,bf16] [--batches 1,8,32,64] [--iters 3]
 *                  [--breakdown N] [--cache-precision bf16] [--cache-batch 32] [--steps S TABLE...]
 * Markdown on stdout. Tables must be made for S steps (ebcache schedule ... --steps S). */
#include "runtime/cuda/backend_cuda.h"
#include "runtime/model.h"
#include "runtime/schedule.h"

#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static void die(const char *what) {
    fprintf(stderr, "bench_gpu: %s: %s\n", what, eb_last_error());
    exit(1);
}

/* A model on cuda at precision p with small random weights: a block of
 * normals tiled over the slab (the values do not change the speed). */
static eb_model *random_model(const eb_config *c, eb_precision p) {
    eb_model *m;
    if (eb_model_create_on(&m, c, &(eb_device){"cuda", p})) die("model");
    enum { BLOCK = 1 << 20 };
    size_t n = eb_param_count(c);
    float *host = malloc(n * sizeof(float));
    if (!host) die("out of memory");
    eb_rng_fill_normal(host, n < BLOCK ? n : BLOCK, eb_rng_key(1, 0));
    for (size_t i = 0; i < (n < BLOCK ? n : BLOCK); i++) host[i] *= 0.02f;
    for (size_t i = BLOCK; i < n; i += BLOCK)
        memcpy(host + i, host, (n - i < BLOCK ? n - i : BLOCK) * sizeof(float));
    m->be->upload(m->slab, host, n * sizeof(float));
    free(host);
    return m;
}

/* The forward's GEMMs for a model batch of Bm rows: shape, count, and whether
 * it is a conditioning GEMM (always fp32; dit.c's cond_be). */
typedef struct {
    int rows, in, out, count, cond;
} gemm_shape;

static int forward_gemms(gemm_shape *g, const eb_config *c, int Bm) {
    const int D = c->hidden_size, T = eb_tokens(c), L = c->depth;
    const int K = c->patch_size * c->patch_size * eb_out_channels(c);
    gemm_shape list[] = {
        {Bm, EB_FREQ_DIM, D, 1, 1}, {Bm, D, D, 1, 1},         {Bm, D, 6 * D, L, 1},     {Bm * T, D, 3 * D, L, 0},
        {Bm * T, D, D, L, 0},       {Bm * T, D, 4 * D, L, 0}, {Bm * T, 4 * D, D, L, 0}, {Bm, D, 2 * D, 1, 1},
        {Bm * T, D, K, 1, 0},
    };
    memcpy(g, list, sizeof list);
    return (int)(sizeof list / sizeof list[0]);
}

/* Seconds the forward's GEMMs take alone at precision p (cuBLAS rate), and their FLOPs. */
static double gemm_seconds(const eb_config *c, int Bm, eb_precision p, int iters, double *flops) {
    gemm_shape g[16];
    int n = forward_gemms(g, c, Bm);
    double total = 0;
    *flops = 0;
    for (int i = 0; i < n; i++) {
        double s = eb_cuda_gemm_seconds(g[i].cond ? EB_PRECISION_FP32 : p, g[i].rows, g[i].in, g[i].out, iters);
        if (s < 0) die("timing a GEMM");
        total += s * g[i].count;
        *flops += 2.0 * g[i].rows * g[i].in * g[i].out * g[i].count;
    }
    return total;
}

static int parse_list(const char *s, int *out, int cap) {
    int n = 0;
    for (char *end; *s && n < cap; s = *end ? end + 1 : end) out[n++] = (int)strtol(s, &end, 10);
    return n;
}

static const char *const precision_names[] = {"fp32", "tf32", "bf16"};

static eb_precision precision_arg(const char *s) {
    eb_precision p;
    if (eb_precision_parse(s, &p)) die("--precision");
    return p;
}

/* The inputs and output of one guided forward at batch N: fixed normal x, t = 500, labels cycling over the classes. */
typedef struct {
    int N;
    float *x, *out;
    int32_t *t, *y;
} guided_batch;

static guided_batch batch_make(const eb_config *c, int N) {
    const size_t per = (size_t)c->in_channels * c->input_size * c->input_size;
    guided_batch g = {N, malloc(N * per * sizeof(float)), malloc(N * per * 2 * sizeof(float)),
                      malloc(N * sizeof(int32_t)), malloc(N * sizeof(int32_t))};
    if (!g.x || !g.out || !g.t || !g.y) die("out of memory");
    eb_rng_fill_normal(g.x, N * per, eb_rng_key(2, N));
    for (int i = 0; i < N; i++) g.t[i] = 500, g.y[i] = i % c->num_classes;
    return g;
}

static void batch_forward(eb_model *m, const eb_config *c, const guided_batch *g) {
    if (eb_forward_cfg(m, g->out, g->x, g->t, g->y, g->N, 4.0f, eb_default_guide_channels(c))) die("forward");
}

static void batch_free(guided_batch *g) { free(g->x), free(g->out), free(g->t), free(g->y); }

static void bench_forward(const eb_config *c, const char *name, const eb_precision *precs, int nprec,
                          const int *batches, int nb, int iters) {
    printf("## Forward with guidance (%s, random weights)\n\n", name);
    printf("Model batch 2N (conditional + unconditional), one step = one guided forward (host transfers and checks "
           "included); best of %d after a warm-up. GEMM peak: the forward's GEMM shapes timed alone with cuBLASLt at "
           "the same precision (conditioning GEMMs at fp32, as the model runs them); GEMM share: their time over the "
           "step's.\n\n",
           iters);
    printf("| precision | N | ms/step | images/s | achieved TFLOP/s | GEMM peak TFLOP/s | achieved / peak | GEMM share "
           "| peak memory GiB |\n|---|---|---|---|---|---|---|---|---|\n");
    for (int k = 0; k < nprec; k++) {
        eb_model *m = random_model(c, precs[k]);
        for (int b = 0; b < nb; b++) {
            const int N = batches[b];
            guided_batch g = batch_make(c, N);
            eb_cuda_memory_reset_peak();
            batch_forward(m, c, &g); /* warm-up */
            double best = 1e30;
            for (int i = 0; i < iters; i++) {
                double t0 = now();
                batch_forward(m, c, &g);
                double dt = now() - t0;
                best = dt < best ? dt : best;
            }
            size_t mem_now, mem_peak;
            eb_cuda_memory(&mem_now, &mem_peak);
            double gflops, gsec = gemm_seconds(c, 2 * N, precs[k], iters, &gflops);
            double achieved = 2 * eb_forward_macs(c) * 2 * N / best, peak = gflops / gsec;
            printf("| %s | %d | %.2f | %.1f | %.1f | %.1f | %.2f | %.2f | %.2f |\n", precision_names[precs[k]], N,
                   1e3 * best, N / best, achieved * 1e-12, peak * 1e-12, achieved / peak, gsec / best,
                   mem_peak / 1073741824.0);
            fflush(stdout);
            batch_free(&g);
        }
        eb_model_free(m);
    }
    printf("\n");
}

/* The breakdown: the model's two backend tables are swapped for copies whose
 * ops are bracketed by CUDA events on the default stream (where every op
 * runs), each pair tagged with its kind. */
enum { OP_LINEAR, OP_LINEAR_COND, OP_ATTENTION, OP_LN_MODULATE, OP_GELU, OP_GATE_RESIDUAL, OP_TRANSFER, OP_OTHER, OP_KINDS };
static const char *const op_names[OP_KINDS] = {
    "token GEMMs (linear, bf16 input copies included)", "conditioning GEMMs (fp32)", "attention",
    "LayerNorm + modulate", "GELU", "gate + residual", "host transfers", "other ops (embeddings, unpatchify, guidance)"};
enum { MAX_EVENTS = 2048 };
static cudaEvent_t ev_start[MAX_EVENTS], ev_stop[MAX_EVENTS];
static int ev_kind[MAX_EVENTS], n_events;
static const eb_backend *orig_be, *orig_cond;
static eb_backend timed_be, timed_cond;

static void mark(int kind, int stop) {
    if (n_events >= MAX_EVENTS) return;
    cudaEventRecord(stop ? ev_stop[n_events] : ev_start[n_events], 0);
    if (stop) ev_kind[n_events++] = kind;
}
#define TIMED(kind, call) (mark(kind, 0), call, mark(kind, 1))

static void t_linear(float *out, const float *in, const float *w, const float *b, int BT, int IC, int OC) {
    TIMED(OP_LINEAR, orig_be->linear(out, in, w, b, BT, IC, OC));
}
static void t_linear_cond(float *out, const float *in, const float *w, const float *b, int BT, int IC, int OC) {
    TIMED(OP_LINEAR_COND, orig_cond->linear(out, in, w, b, BT, IC, OC));
}
static void t_attention(float *out, const float *qkv, int B, int T, int NH, int hd) {
    TIMED(OP_ATTENTION, orig_be->attention(out, qkv, B, T, NH, hd));
}
static void t_ln_modulate(float *out, const float *x, const float *shift, const float *scale, int B, int T, int D,
                          int mod_stride) {
    TIMED(OP_LN_MODULATE, orig_be->ln_modulate(out, x, shift, scale, B, T, D, mod_stride));
}
static void t_gelu(float *out, const float *in, size_t n) { TIMED(OP_GELU, orig_be->gelu_tanh(out, in, n)); }
static void t_gate_residual(float *x, const float *gate, const float *branch, int B, int T, int D, int mod_stride) {
    TIMED(OP_GATE_RESIDUAL, orig_be->gate_residual(x, gate, branch, B, T, D, mod_stride));
}
static void t_upload(void *dst, const void *src, size_t bytes) { TIMED(OP_TRANSFER, orig_be->upload(dst, src, bytes)); }
static void t_download(void *dst, const void *src, size_t bytes) {
    TIMED(OP_TRANSFER, orig_be->download(dst, src, bytes));
}
static void t_patch_embed(float *out, const float *x, const float *w, const float *b, const float *pos, int B, int C,
                          int H, int p, int D) {
    TIMED(OP_OTHER, orig_be->patch_embed(out, x, w, b, pos, B, C, H, p, D));
}
static void t_timestep_freq(float *out, const int32_t *t, int B) { TIMED(OP_OTHER, orig_be->timestep_freq(out, t, B)); }
static void t_silu(float *out, const float *in, size_t n) { TIMED(OP_OTHER, orig_be->silu(out, in, n)); }
static void t_label_add(float *c, const float *table, const int32_t *y, int B, int D) {
    TIMED(OP_OTHER, orig_be->label_add(c, table, y, B, D));
}
static void t_unpatchify(float *out, const float *tokens, int B, int C, int H, int p) {
    TIMED(OP_OTHER, orig_be->unpatchify(out, tokens, B, C, H, p));
}
static void t_cfg_combine(float *out, const float *model_out, int N, int Co, int HW, int guided, float scale) {
    TIMED(OP_OTHER, orig_be->cfg_combine(out, model_out, N, Co, HW, guided, scale));
}

/* GPU milliseconds per op kind (ms[OP_KINDS]) and the wall milliseconds of one guided forward at batch N. */
static double timed_forward(eb_model *m, const eb_config *c, int N, double *ms) {
    guided_batch g = batch_make(c, N);
    batch_forward(m, c, &g); /* warm-up */
    orig_be = m->be, orig_cond = m->cond_be;
    timed_be = *orig_be, timed_cond = *orig_cond;
    timed_be.linear = t_linear, timed_cond.linear = t_linear_cond, timed_be.attention = t_attention;
    timed_be.ln_modulate = t_ln_modulate, timed_be.gelu_tanh = t_gelu, timed_be.gate_residual = t_gate_residual;
    timed_be.upload = t_upload, timed_be.download = t_download, timed_be.patch_embed = t_patch_embed;
    timed_be.timestep_freq = t_timestep_freq, timed_be.silu = t_silu, timed_be.label_add = t_label_add;
    timed_be.unpatchify = t_unpatchify, timed_be.cfg_combine = t_cfg_combine;
    m->be = &timed_be, m->cond_be = &timed_cond;
    n_events = 0;
    double t0 = now();
    batch_forward(m, c, &g);
    double wall = 1e3 * (now() - t0);
    m->be = orig_be, m->cond_be = orig_cond;
    if (cudaDeviceSynchronize()) die("timed forward");
    if (n_events == MAX_EVENTS) die("timed forward: more ops than MAX_EVENTS event pairs");
    for (int k = 0; k < OP_KINDS; k++) ms[k] = 0;
    for (int i = 0; i < n_events; i++) {
        float e = 0;
        cudaEventElapsedTime(&e, ev_start[i], ev_stop[i]);
        ms[ev_kind[i]] += e;
    }
    batch_free(&g);
    return wall;
}

static void bench_breakdown(const eb_config *c, const char *name, const eb_precision *precs, int nprec, int N) {
    for (int i = 0; i < MAX_EVENTS; i++)
        if (cudaEventCreate(&ev_start[i]) || cudaEventCreate(&ev_stop[i])) die("CUDA events");
    double ms[3][OP_KINDS], wall[3];
    for (int k = 0; k < nprec; k++) {
        eb_model *m = random_model(c, precs[k]);
        wall[k] = timed_forward(m, c, N, ms[k]);
        eb_model_free(m);
    }
    printf("## Where a step's time goes (%s, N = %d with guidance)\n\n", name, N);
    printf("GPU time per op kind in one guided forward (CUDA events around every backend op), in ms and as a share "
           "of the forward's wall time (which the events slow a little); the last row is the wall time outside "
           "the ops (launch and host work).\n\n| op |");
    for (int k = 0; k < nprec; k++) printf(" %s ms | share |", precision_names[precs[k]]);
    printf("\n|---|");
    for (int k = 0; k < nprec; k++) printf("---|---|");
    printf("\n");
    for (int op = 0; op <= OP_KINDS; op++) {
        printf("| %s |", op < OP_KINDS ? op_names[op] : "outside the ops");
        for (int k = 0; k < nprec; k++) {
            double v = wall[k];
            if (op < OP_KINDS) v = ms[k][op];
            else
                for (int j = 0; j < OP_KINDS; j++) v -= ms[k][j];
            printf(" %.2f | %.0f%% |", v, 100 * v / wall[k]);
        }
        printf("\n");
    }
    printf("| wall time of the forward |");
    for (int k = 0; k < nprec; k++) printf(" %.2f | |", wall[k]);
    printf("\n\n");
    for (int i = 0; i < MAX_EVENTS; i++) cudaEventDestroy(ev_start[i]), cudaEventDestroy(ev_stop[i]);
}

static void bench_cache(const eb_config *c, const char *name, eb_precision p, int N, int steps, char **paths,
                        int ntables) {
    eb_schedule s;
    char spacing[32];
    snprintf(spacing, sizeof spacing, "%d", steps);
    if (eb_schedule_create(&s, spacing)) die("schedule");
    eb_cache_schedule *tables[16] = {NULL};
    if (ntables > 15) ntables = 15;
    for (int k = 1; k <= ntables; k++)
        if (eb_cache_schedule_read(&tables[k], paths[k - 1])) die(paths[k - 1]);
    eb_model *m = random_model(c, p);
    const size_t n = (size_t)N * c->in_channels * c->input_size * c->input_size;
    float *x0 = malloc(n * sizeof(float)), *x = malloc(n * sizeof(float));
    int32_t *y = malloc(N * sizeof(int32_t));
    eb_rng_fill_normal(x0, n, eb_rng_key(3, 0));
    for (int i = 0; i < N; i++) y[i] = i % c->num_classes;
    eb_sampler_opts o = {.kind = EB_SAMPLER_DDIM,
                         .var_type = c->learn_sigma ? EB_VAR_LEARNED_RANGE : EB_VAR_FIXED_SMALL,
                         .cfg_scale = 4.0f,
                         .guide_channels = eb_default_guide_channels(c),
                         .seed = 1};
    double best[16], fraction[16];
    size_t bytes[16];
    for (int r = -1; r < 2; r++) /* round −1 warms up; then the best of two rounds, tables interleaved */
        for (int k = 0; k <= ntables; k++) {
            eb_cache_stats st = {0};
            memcpy(x, x0, n * sizeof(float));
            double t0 = now();
            if (eb_sample_cached(m, &s, &o, tables[k], x, y, N, 0, &st)) die("sampling");
            double dt = now() - t0;
            if (r < 0) continue;
            if (r == 0 || dt < best[k]) best[k] = dt;
            fraction[k] = st.macs / st.macs_uncached, bytes[k] = st.cache_bytes;
        }
    printf("## Cache schedules (%s, %s, N = %d with guidance, DDIM %d steps)\n\n", name, precision_names[p], N, steps);
    printf("| schedule | MAC fraction | FLOP speedup | s per sampling run | measured speedup | measured / FLOP | cache "
           "MiB |\n|---|---|---|---|---|---|---|\n");
    for (int k = 0; k <= ntables; k++) {
        double flop = 1 / fraction[k], measured = best[0] / best[k];
        const char *label = k ? strrchr(paths[k - 1], '/') ? strrchr(paths[k - 1], '/') + 1 : paths[k - 1] : "uncached";
        printf("| %s | %.3f | %.2fx | %.3f | %.2fx | %.2f | %.0f |\n", label, fraction[k], flop, best[k], measured,
               measured / flop, bytes[k] / 1048576.0);
    }
    printf("\n");
    for (int k = 1; k <= ntables; k++) eb_cache_schedule_free(tables[k]);
    eb_model_free(m);
    eb_schedule_free(&s);
    free(x0), free(x), free(y);
}

int main(int argc, char **argv) {
    const char *name = "XL/2";
    int batches[8] = {1, 8, 32, 64}, nb = 4, iters = 3, cache_batch = 32, steps = 0, breakdown = 0;
    eb_precision precs[3] = {EB_PRECISION_FP32, EB_PRECISION_TF32, EB_PRECISION_BF16}, cache_p = EB_PRECISION_BF16;
    int nprec = 3, first_table = argc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) break;
        if (!strcmp(a, "--config")) name = v;
        else if (!strcmp(a, "--batches")) nb = parse_list(v, batches, 8);
        else if (!strcmp(a, "--iters")) iters = atoi(v);
        else if (!strcmp(a, "--cache-batch")) cache_batch = atoi(v);
        else if (!strcmp(a, "--breakdown")) breakdown = atoi(v);
        else if (!strcmp(a, "--cache-precision")) cache_p = precision_arg(v);
        else if (!strcmp(a, "--precisions")) {
            char buf[64];
            snprintf(buf, sizeof buf, "%s", v);
            nprec = 0;
            for (char *tok = strtok(buf, ","); tok && nprec < 3; tok = strtok(NULL, ","))
                precs[nprec++] = precision_arg(tok);
        } else if (!strcmp(a, "--steps")) {
            steps = atoi(v);
            first_table = i + 2;
            break;
        } else {
            fprintf(stderr, "bench_gpu: unknown option %s (see the comment at the top of bench/bench_gpu.c)\n", a);
            return 2;
        }
        i++;
    }
    eb_config c;
    if (eb_config_named(&c, name)) die("--config");
    const eb_backend *be;
    if (eb_cuda_backend(EB_PRECISION_FP32, &be)) die("CUDA");
    char when[32];
    time_t tt = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", gmtime(&tt));
    printf("# ebcache on %s — %s\n\n", eb_cuda_device_name(), when);
    printf("DiT-%s, %d tokens, %.1f GFLOP per image forward (2 × MACs of GEMMs and attention).\n\n", name,
           eb_tokens(&c), 2e-9 * eb_forward_macs(&c));
    bench_forward(&c, name, precs, nprec, batches, nb, iters);
    if (breakdown > 0) bench_breakdown(&c, name, precs, nprec, breakdown);
    if (steps > 0 && first_table < argc)
        bench_cache(&c, name, cache_p, cache_batch, steps, argv + first_table, argc - first_table);
    return 0;
}
