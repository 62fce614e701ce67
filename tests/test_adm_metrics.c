/* test_adm_metrics.c — FID, sFID, Inception Score and precision/recall as the
 * ADM evaluator defines them, against reference/adm_metrics_ref.py (a
 * NumPy/SciPy transcription of its formulas; tests/golden/adm_metrics.h5). */
#include "analyze/adm_metrics.h"
#include "tests/golden.h"
#include "analyze/metrics.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GOLDEN "adm_metrics.h5"

static double scalar(const char *name) {
    double *v = golden_f64(GOLDEN, name, 0, NULL);
    double x = v[0];
    free(v);
    return x;
}

/* FID of two golden feature sets through the library's one Fréchet distance. */
static void check_fid(const char *case_name, double tol) {
    char na[64], nb[64], nv[64];
    snprintf(na, sizeof na, "%s/a", case_name), snprintf(nb, sizeof nb, "%s/b", case_name);
    snprintf(nv, sizeof nv, "%s/value", case_name);
    int64_t da[2], db[2];
    float *a = golden_f32(GOLDEN, na, 2, da), *b = golden_f32(GOLDEN, nb, 2, db);
    int D = (int)da[1];
    double *mu1 = malloc(D * sizeof(double)), *mu2 = malloc(D * sizeof(double));
    double *s1 = malloc((size_t)D * D * sizeof(double)), *s2 = malloc((size_t)D * D * sizeof(double));
    cr_assert_eq(eb_feature_stats(mu1, s1, a, (int)da[0], D), EB_OK, "%s", eb_last_error());
    cr_assert_eq(eb_feature_stats(mu2, s2, b, (int)db[0], D), EB_OK, "%s", eb_last_error());
    double fid, want = scalar(nv);
    cr_assert_eq(eb_frechet_distance(&fid, mu1, s1, mu2, s2, D), EB_OK, "%s", eb_last_error());
    cr_expect_leq(fabs(fid - want) / want, tol, "%s: %.10g, the evaluator's formula gives %.10g", case_name, fid, want);
    free(a), free(b), free(mu1), free(mu2), free(s1), free(s2);
}

Test(adm_metrics, fid_pool_like) { check_fid("fid", 1e-9); }
/* 64 rows of 2023 features: rank-deficient, scipy's sqrtm of the singular product is the less exact side */
Test(adm_metrics, sfid_2023_wide, .timeout = 900) { check_fid("sfid", 1e-6); }

Test(adm_metrics, inception_score_splits) {
    int64_t d[2];
    float *logits = golden_f32(GOLDEN, "is/logits", 2, d);
    double is;
    cr_assert_eq(eb_adm_inception_score(&is, logits, (int)d[0], (int)d[1], EB_ADM_IS_SPLIT), EB_OK, "%s", eb_last_error());
    cr_expect_leq(fabs(is - scalar("is/value")), 1e-9 * is, "one split: %.12g vs %.12g", is, scalar("is/value"));
    double is300;
    cr_assert_eq(eb_adm_inception_score(&is300, logits, (int)d[0], (int)d[1], 300), EB_OK);
    cr_expect_leq(fabs(is300 - scalar("is/value_split300")), 1e-9 * is300, "splits 300, 300, 100: %.12g vs %.12g", is300,
                  scalar("is/value_split300"));
    cr_expect_gt(fabs(is300 - is), 1e-4, "the split changes the value");
    logits[5] = NAN;
    cr_expect_eq(eb_adm_inception_score(&is, logits, (int)d[0], (int)d[1], 300), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "logits"), "%s", eb_last_error());
    free(logits);
}

static void check_pr(const char *case_name, int batch) {
    int64_t dr[2], ds[2];
    float *ref = golden_f32(GOLDEN, "pr/ref", 2, dr), *sample = golden_f32(GOLDEN, "pr/sample", 2, ds);
    double p, r;
    cr_assert_eq(eb_adm_precision_recall(&p, &r, ref, (int)dr[0], sample, (int)ds[0], (int)dr[1], EB_ADM_PR_K, batch),
                 EB_OK, "%s", eb_last_error());
    char np_[64], nr[64];
    snprintf(np_, sizeof np_, "%s/precision", case_name), snprintf(nr, sizeof nr, "%s/recall", case_name);
    cr_expect_eq(p, scalar(np_), "%s precision %.6f vs %.6f", case_name, p, scalar(np_));
    cr_expect_eq(r, scalar(nr), "%s recall %.6f vs %.6f", case_name, r, scalar(nr));
    free(ref), free(sample);
}

Test(adm_metrics, precision_recall_blocks_of_128_with_fp32_fallback) {
    check_pr("pr", 128);
    /* the fp16 emulation matters on these features: float64 distances give another recall */
    cr_expect_neq(scalar("pr/recall"), scalar("pr/recall_exact"));
}
Test(adm_metrics, precision_recall_one_block) { check_pr("pr1", EB_ADM_PR_BATCH); }

Test(adm_metrics, precision_recall_refuses_bad_input) {
    float x[4 * 2] = {0};
    double p, r;
    cr_expect_eq(eb_adm_precision_recall(&p, &r, x, 3, x, 4, 2, 3, 128), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "more than 3"), "%s", eb_last_error());
    x[5] = INFINITY;
    cr_expect_eq(eb_adm_precision_recall(&p, &r, x, 4, x, 4, 2, 3, 128), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "reference features"), "%s", eb_last_error());
}
