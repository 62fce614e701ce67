/* bench_toca.c — where ToCa's time goes on one block: the full MLP against the
 * partial MLP of its K recomputed tokens (gather, the MLP on 2·K rows, scatter),
 * attention against attention with the column sums ToCa scores by, and the
 * token selection, with their FLOP fractions next to the time fractions.
 * usage: bench_toca [CONFIG [RATIO [ROUNDS]]]   (default B/2 0.07 7)
 * One sample with guidance (model batch 2), random weights, block 0, the CPU
 * backend at the default thread count; the two sides of each comparison
 * alternate, ROUNDS rounds of 10 calls each, the best round's time per call. */
#include "runtime/cpu/kernels.h"
#include "runtime/model.h"
#include "runtime/schedule.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { CALLS = 10 };

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

typedef struct {
    eb_model *m;
    int B, K;
    int32_t *idx;
    float *colsum, *age, *cached;
    eb_toca_score score;
} bench;

static void full_mlp(bench *b) { eb_block_mlp_branch(b->m, 0, b->B); }

static void partial_mlp(bench *b) {
    const eb_config *c = &b->m->cfg;
    eb_block_mlp_partial(b->m, 0, b->B, b->K, b->idx);
    b->m->be->token_scatter(b->cached, b->m->acts.branch, b->idx, b->B, eb_tokens(c), b->K, c->hidden_size);
}

static void attention(bench *b) { eb_block_attn_branch_colsum(b->m, 0, b->B, NULL); }
static void attention_colsum(bench *b) { eb_block_attn_branch_colsum(b->m, 0, b->B, b->colsum); }

static void select_tokens(bench *b) {
    const eb_config *c = &b->m->cfg;
    b->m->be->toca_select(b->idx, b->age, b->colsum, b->B, c->num_heads, eb_tokens(c), b->K, b->score.weight,
                          b->score.fresh, b->score.bonus, b->score.grid);
}

/* Seconds per call of f and g in their best round, alternating rounds of CALLS calls. */
static void time_pair(bench *b, void (*f)(bench *), void (*g)(bench *), int rounds, double *tf, double *tg) {
    f(b), g(b); /* warm */
    *tf = *tg = 1e30;
    for (int r = 0; r < rounds; r++) {
        double t0 = now();
        for (int i = 0; i < CALLS; i++) f(b);
        double t1 = now();
        for (int i = 0; i < CALLS; i++) g(b);
        double a = (t1 - t0) / CALLS, z = (now() - t1) / CALLS;
        if (a < *tf) *tf = a;
        if (z < *tg) *tg = z;
    }
}

int main(int argc, char **argv) {
    eb_cpu_reexec(argv);
    const char *name = argc > 1 ? argv[1] : "B/2";
    double ratio = argc > 2 ? atof(argv[2]) : 0.07;
    int rounds = argc > 3 ? atoi(argv[3]) : 7;
    if (rounds < 1 || !(ratio > 0 && ratio <= 1)) {
        fprintf(stderr, "usage: bench_toca [CONFIG [RATIO (0, 1] [ROUNDS >= 1]]]\n");
        return 2;
    }
    bench b = {.B = 2};
    eb_config c;
    if (eb_config_named(&c, name) || eb_model_create(&b.m, &c) || eb_acts_reserve(b.m, b.B)) {
        fprintf(stderr, "bench_toca: %s\n", eb_last_error());
        return 2;
    }
    const int T = eb_tokens(&c), D = c.hidden_size;
    b.K = eb_partial_tokens(ratio, T);
    b.idx = malloc((size_t)b.B * T * sizeof *b.idx);
    b.colsum = calloc((size_t)b.B * c.num_heads * T, sizeof *b.colsum);
    b.age = calloc((size_t)b.B * T, sizeof *b.age);
    b.cached = calloc((size_t)b.B * T * D, sizeof *b.cached);
    if (!b.idx || !b.colsum || !b.age || !b.cached || b.K < 1) {
        fprintf(stderr, "bench_toca: out of memory or no token at ratio %g\n", ratio);
        return 1;
    }
    eb_toca_score_defaults(&b.score);
    eb_embed(b.m, b.B);
    eb_block_modulation(b.m, 0, b.B);
    attention_colsum(&b);
    select_tokens(&b);
    double mlp, part, att, att_cs, sel, none;
    time_pair(&b, full_mlp, partial_mlp, rounds, &mlp, &part);
    time_pair(&b, attention, attention_colsum, rounds, &att, &att_cs);
    time_pair(&b, select_tokens, select_tokens, rounds, &sel, &none);
    printf("ToCa on one %s block, 1 sample with guidance (model batch 2), R = %g: K = %d of %d tokens, "
           "best of %d rounds of %d calls, %d threads (OpenMP)\n\n",
           name, ratio, b.K, T, rounds, CALLS, omp_get_max_threads());
    printf("| part | ms | time fraction | FLOP fraction |\n|---|---|---|---|\n");
    printf("| full MLP branch (LN, fc1, GELU, fc2; %d rows) | %.3f | 1 | 1 |\n", b.B * T, 1e3 * mlp);
    printf("| partial MLP (%d rows, gather + scatter) | %.3f | %.3f | %.3f |\n", b.B * b.K, 1e3 * part, part / mlp,
           (double)b.K / T);
    printf("| attention branch (LN, qkv, attention, proj) | %.3f | 1 | |\n", 1e3 * att);
    printf("| the same with the column sums | %.3f | %.3f | |\n", 1e3 * att_cs, att_cs / att);
    printf("| token selection | %.3f | %.4f of the full MLP | |\n", 1e3 * 0.5 * (sel + none), 0.5 * (sel + none) / mlp);
    free(b.idx), free(b.colsum), free(b.age), free(b.cached);
    eb_model_free(b.m);
    return 0;
}
