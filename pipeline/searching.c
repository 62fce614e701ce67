/* searching.c — `fit` and `search` as library calls: fits written to a fit
 * file, and a searched table written with its model, FLOPs and provenance. */
#include "pipeline/searching.h"
#include "pipeline/run.h"

#include "pipeline/replay.h"
#include "runtime/h5io.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *eb_fit_warning(char *buf, size_t cap, const eb_fit_two_phase *p, const char *then) {
    buf[0] = 0;
    if (!p->flags) return buf;
    char why[512] = "";
    size_t used = 0;
    const int n = p->below + p->above, least = EB_FIT_MIN_PHASE_STEPS(n);
    if (p->flags & EB_FIT_SPLIT_AT_EDGE)
        used += snprintf(why + used, sizeof why - used, "%s: %d of %d steps below t_thre %.4g and %d above, fewer than %d "
                         "on one side", eb_fit_flag_name(EB_FIT_SPLIT_AT_EDGE), p->below, n, p->t_thre, p->above, least);
    if (p->flags & EB_FIT_LOW_R2 && used < sizeof why)
        used += snprintf(why + used, sizeof why - used, "%s%s: R² %.3g below %g", used ? "; " : "",
                         eb_fit_flag_name(EB_FIT_LOW_R2), p->r2, EB_FIT_MIN_R2);
    if (p->flags & EB_FIT_NEGATIVE_B && used < sizeof why)
        snprintf(why + used, sizeof why - used, "%s%s: b_h %.4g, b_l %.4g, b(τ) must stay positive", used ? "; " : "",
                 eb_fit_flag_name(EB_FIT_NEGATIVE_B), p->b_h, p->b_l);
    snprintf(buf, cap, "the two-phase fit is degenerate (%s): %s", why, then);
    return buf;
}

eb_status eb_fit_to_file(const char *record, const char *output, eb_fit *fit, eb_rec_data *rec) {
    eb_rec_data r;
    eb_fit f;
    eb_status st = eb_rec_data_read(&r, record);
    if (st) return st;
    st = eb_fit_recording(&f, &r);
    if (!st && output) st = eb_fit_write(&f, output);
    if (!st && fit) *fit = f;
    else if (!st) eb_fit_free(&f);
    if (!st && rec) *rec = r;
    else eb_rec_data_free(&r);
    return st;
}

void eb_search_params_defaults(eb_search_params *p) {
    memset(p, 0, sizeof *p);
    eb_search_defaults(&p->opts);
}

/* The model the FLOPs are counted on: p->config / p->model, else the
 * configuration the recording's attributes hold. label names it. */
static eb_status flop_model(const eb_search_params *p, eb_config *c, char *label, size_t size) {
    if (p->model || p->config) return eb_config_resolve(c, p->config, p->model, 0, label, size);
    eb_h5 *f;
    eb_status st = eb_h5_open(&f, p->record);
    const char *keys[] = {"input_size", "patch_size", "in_channels", "hidden_size", "depth", "num_heads", "num_classes",
                          "learn_sigma"};
    int *fields[] = {&c->input_size, &c->patch_size, &c->in_channels, &c->hidden_size, &c->depth, &c->num_heads,
                     &c->num_classes, &c->learn_sigma};
    for (size_t k = 0; !st && k < sizeof keys / sizeof keys[0]; k++) {
        int64_t v;
        if (!eb_h5_has_attr(f, NULL, keys[k]))
            st = eb_fail(EB_EINPUT, "%s: no model configuration in the attributes ('%s'): give `config` or `model`",
                         p->record, keys[k]);
        else if (!(st = eb_h5_attr_i64(f, NULL, keys[k], &v))) *fields[k] = (int)v;
    }
    char *model = NULL;
    if (!st && eb_h5_has_attr(f, NULL, "model") && !eb_h5_attr_str(f, NULL, "model", &model))
        snprintf(label, size, "%s", model);
    free(model);
    eb_h5_close(f);
    return st ? st : eb_config_validate(c);
}

eb_status eb_search_to_file(const eb_search_params *p, eb_search_outcome *out) {
    *out = (eb_search_outcome){0};
    if (!p->record) return eb_fail(EB_EINPUT, "`record`: none given");
    if (!p->output) return eb_fail(EB_EINPUT, "`output`: none given");
    eb_set_threads(p->threads);
    eb_config c;
    char label[1024] = "";
    eb_status st = flop_model(p, &c, label, sizeof label);
    if (st) return st;
    eb_rec_data rec;
    eb_fit fit = {0};
    eb_replay *replay = NULL;
    eb_search_runner runner = {0};
    eb_search_result res = {0};
    if ((st = eb_rec_data_read(&rec, p->record))) return st;
    if (p->fit) st = eb_fit_read(&fit, p->fit);
    const int chains = (p->opts.method->needs & EB_NEEDS_RUNNER) != 0;
    if (!st && chains) st = eb_replay_open(&replay, &rec, p->threads, p->progress, &runner);
    if (!st) st = eb_search(&res, &rec, p->fit ? &fit : NULL, &c, &p->opts, chains ? &runner : NULL);
    if (!st && res.runs && p->progress && isatty(2)) fprintf(stderr, "\n"); /* ends the replay's progress line */
    if (!st)
        eb_fit_warning(out->warning, sizeof out->warning, &res.two_phase,
                       res.scaling_fallback ? "the table does not scale ε (divisor 1 at every step) instead of dividing "
                                              "it by b(τ); docs/search.md"
                                            : "its t_thre still splits eb-cache's phases (`t_thre` sets another)");
    if (!st) {
        out->met = res.met, out->flops = res.flops, out->deviation = res.deviation, out->param = res.param;
        out->runs = res.runs;
        snprintf(out->note, sizeof out->note, "%s", res.note);
    }
    if (!st && res.met) {
        snprintf(res.table->model, sizeof res.table->model, "%.127s", label);
        res.table->flops = eb_cache_schedule_flops(res.table, &c);
        snprintf(out->method, sizeof out->method, "%s", res.table->method);
        snprintf(out->params, sizeof out->params, "%s", res.table->params);
        st = eb_search_write(&res, &rec, p->output);
    }
    eb_search_result_free(&res);
    eb_replay_free(replay);
    eb_fit_free(&fit);
    eb_rec_data_free(&rec);
    return st;
}
