/* toca_kernels.c — ToCa's token ops for the cache engine's partial MLP
 * (backend.h token_gather, token_scatter, toca_select). */
#include "runtime/cpu/kernels.h"
#include "runtime/parallel.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void token_gather_forward(float *out, const float *x, const int32_t *idx, int B, int T, int K, int D) {
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * K * D >= EB_PAR_MIN_ELEMS)
    for (int b = 0; b < B; b++)
        for (int k = 0; k < K; k++)
            memcpy(out + ((size_t)b * K + k) * D, x + ((size_t)b * T + idx[(size_t)b * K + k]) * D, D * sizeof(float));
}

void token_scatter_forward(float *x, const float *src, const int32_t *idx, int B, int T, int K, int D) {
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * K * D >= EB_PAR_MIN_ELEMS)
    for (int b = 0; b < B; b++)
        for (int k = 0; k < K; k++)
            memcpy(x + ((size_t)b * T + idx[(size_t)b * K + k]) * D, src + ((size_t)b * K + k) * D, D * sizeof(float));
}

typedef struct {
    double score;
    int32_t token;
} scored;

/* Highest score first; equal scores: the lower token first (a total order, so qsort is deterministic). */
static int by_score(const void *pa, const void *pb) {
    const scored *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    return (a->token > b->token) - (a->token < b->token);
}

void toca_select_forward(int32_t *idx, float *age, const float *colsum, int B, int NH, int T, int K, double weight,
                         double fresh, double bonus, int grid) {
    const int side = (int)lround(sqrt((double)T)), patches = side / grid;
#pragma omp parallel for schedule(static) if (B > 1 && (size_t)B * NH * T >= EB_PAR_MIN_ELEMS)
    for (int b = 0; b < B; b++) {
        scored *s = malloc(T * sizeof *s);
        if (!s) { /* out of memory: recompute the first K tokens; the outputs stay finite and defined */
            for (int k = 0; k < K; k++) idx[(size_t)b * K + k] = k;
            continue;
        }
        double norm2 = 0;
        for (int j = 0; j < T; j++) {
            double m = 0;
            for (int h = 0; h < NH; h++) m += colsum[((size_t)b * NH + h) * T + j];
            s[j].score = m / NH, s[j].token = j;
            norm2 += s[j].score * s[j].score;
        }
        const double norm = fmax(sqrt(norm2), 1e-12);
        float *a = age + (size_t)b * T;
        for (int j = 0; j < T; j++) s[j].score = s[j].score / norm + weight * a[j] / fresh;
        for (int pr = 0; pr < patches; pr++)
            for (int pc = 0; pc < patches; pc++) {
                int best = -1;
                for (int r = 0; r < grid; r++)
                    for (int c = 0; c < grid; c++) {
                        int j = (pr * grid + r) * side + pc * grid + c;
                        if (best < 0 || s[j].score > s[best].score) best = j;
                    }
                s[best].score += bonus * s[best].score;
            }
        qsort(s, T, sizeof *s, by_score);
        for (int j = 0; j < T; j++) a[j]++;
        for (int k = 0; k < K; k++) {
            idx[(size_t)b * K + k] = s[k].token;
            a[s[k].token] = 0;
        }
        free(s);
    }
}
