/* cmd_fit.c — `ebcache fit REC.h5 [--output FIT]`: the ε-scaling line, EB-Cache's
 * two-phase noise scaling and TeaCache's polynomial fitted on a recording,
 * shown with R² and residuals per step, and written to a fit file that
 * `ebcache search` reads (docs/search.md). */
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/common.h"

#include "pipeline/searching.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define CMD "fit"
#define USAGE "usage: ebcache fit REC.h5 [--output FIT.h5]"

static void print_fit(const eb_rec_data *r, const eb_fit *f) {
    printf("%s: %d steps (recorded from step %d), %d %s, %d %s (sha256 %.16s…)\n", r->path, r->S, r->start, r->N,
           eb_plural(r->N, "sample", "samples"), r->L, eb_plural(r->L, "block", "blocks"), r->sha256);
    printf("ε-scaling λ(τ) = k·τ + b, τ = t/1000:  k %.6g  b %.6g  R² %.4f  RMS residual %.3g\n", f->linear.k,
           f->linear.b, f->linear.r2, f->linear.rmse);
    printf("two-phase noise scaling b(τ) on 1/λ:    b_h %.6g  b_l %.6g  t_thre %.4g  R² %.4f  RMS residual %.3g\n",
           f->two_phase.b_h, f->two_phase.b_l, f->two_phase.t_thre, f->two_phase.r2, f->two_phase.rmse);
    printf("TeaCache polynomial (block-0 input drift → output drift), highest degree first:\n  ");
    for (int j = 0; j < f->teacache.npoly; j++) printf("%s%.6g", j ? "," : "", f->teacache.poly[j]);
    printf("  R² %.4f  RMS residual %.3g\n", f->teacache.r2, f->teacache.rmse);
    printf("%5s %4s %9s %10s %9s %10s %9s %9s %10s\n", "step", "t", "λ", "line res", "b(τ)", "2-ph res", "x drift",
           "y drift", "poly res");
    for (int i = 0; i < f->S; i++) {
        printf("%5d %4d %9.5f %10.2e %9.5f %10.2e", i, f->t[i], f->ratio[i], f->linear_residual[i],
               eb_two_phase_b(&f->two_phase, f->tau[i]), f->two_phase_residual[i]);
        int j = i - f->start - 1; /* TeaCache point of this step */
        if (j >= 0) printf(" %9.4g %9.4g %10.2e", f->tc_x[j], f->tc_y[j], f->tc_residual[j]);
        printf("\n");
    }
}

int cmd_fit(int argc, char **argv) {
    eb_opt opts[] = {{"output", "FIT.h5", "write the fits (read by `ebcache search --fit`)", NULL}};
    const int n = sizeof opts / sizeof opts[0];
    if (argc < 2 || argv[1][0] == '-') {
        if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
            printf("%s\n\nFits on a recording (ebcache record): ε-scaling λ(τ) = k·τ + b, EB-Cache's two-phase\n"
                   "b(τ), TeaCache's order-4 polynomial. Formulas and the file format: docs/search.md.\n",
                   USAGE);
            return 0;
        }
        fprintf(stderr, "ebcache %s: give the recording first (%s)\n", CMD, USAGE);
        return 2;
    }
    const char *path = argv[1];
    char *args[argc - 1];
    args[0] = (char *)CMD;
    memcpy(args + 1, argv + 2, (argc - 2) * sizeof *args);
    int rc = eb_args_parse(argc - 1, args, opts, n, USAGE);
    if (rc) return rc < 0 ? 0 : rc;
    if ((rc = eb_output_check(CMD, eb_arg(opts, n, "output"), EB_INPUTS(path)))) return rc;
    eb_rec_data r;
    eb_fit f;
    const char *out = eb_arg(opts, n, "output");
    eb_status st = eb_fit_to_file(path, out, &f, &r);
    if (st) return eb_report(CMD, st);
    print_fit(&r, &f);
    char warning[1024];
    eb_cli_warnings(CMD, eb_fit_warning(warning, sizeof warning, &f.two_phase, "ebcache search will not divide ε by its "
                                        "b(τ) (no noise scaling instead; docs/search.md)"));
    if (out) fprintf(stderr, "wrote %s\n", out);
    eb_fit_free(&f);
    eb_rec_data_free(&r);
    return 0;
}
