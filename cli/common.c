/* common.c — model loading and run attributes shared by the commands. */
#include "cli/common.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void eb_cli_model_warning(const char *cmd, const eb_model *m) {
    if (*eb_model_warning(m)) fprintf(stderr, "ebcache %s: warning: %s\n", cmd, eb_model_warning(m));
}

int eb_cli_open_model(const char *cmd, const eb_opt *opts, int nopts, eb_model **m, eb_cli_run *run) {
    *m = NULL;
    *run = (eb_cli_run){.cfg_scale = 1.0f, .guidance = "official"};
    const char *v;
    long heads = 0, threads = 0, channels = 0;
    double scale = 1.0;
    eb_device dev = {.device = "cpu", .precision = EB_PRECISION_FP32};
    int rc = eb_arg_check_sampling(cmd, opts, nopts);
    for (int i = 0; i < nopts && !rc; i++) {
        if (!(v = opts[i].value)) continue;
        const char *name = opts[i].name;
        if (!strcmp(name, "device")) dev.device = v;
        else if (!strcmp(name, "precision")) rc = eb_precision_parse(v, &dev.precision) ? eb_report(cmd, EB_EINPUT) : 0;
        else if (!strcmp(name, "heads")) rc = eb_arg_int(cmd, name, v, 1, 1024, &heads);
        else if (!strcmp(name, "threads")) rc = eb_arg_int(cmd, name, v, 1, 1024, &threads);
        else if (!strcmp(name, "cfg-scale")) rc = eb_arg_float(cmd, name, v, &scale);
    }
    if (rc) return rc;
    const char *path = eb_model_input(opts, nopts);
    if (!path) return eb_report(cmd, EB_EINPUT);
    eb_set_threads((int)threads);
    eb_status st = eb_model_load_on(m, path, (int)heads, &dev);
    if (st) return eb_report(cmd, st);
    eb_cli_model_warning(cmd, *m);
    const eb_config *c = eb_model_config(*m);
    /* --cfg-channels: a rule name, or K = the first K output channels */
    const char *ch = eb_arg(opts, nopts, "cfg-channels"), *rule_name = "count";
    eb_guidance rule = EB_GUIDE_OFFICIAL;
    char *end = NULL;
    if (!ch || !eb_guidance_parse(&rule, ch)) {
        rule_name = eb_guidance_name(rule);
        channels = eb_guide_channels(c, rule);
    } else if ((channels = strtol(ch, &end, 10)) < 0 || channels > eb_out_channels(c) || end == ch || *end) {
        fprintf(stderr, "ebcache %s: --cfg-channels '%s': expected official, eps, all or a count in [0, %d] (the "
                        "model's output channels)\n", cmd, ch, eb_out_channels(c));
        eb_model_free(*m);
        *m = NULL;
        return 2;
    }
    *run = (eb_cli_run){.model_path = path, .cfg_scale = (float)scale, .guide_channels = (int)channels,
                        .guidance = rule_name, .threads = (int)threads};
    return 0;
}

int eb_cli_load_start(const char *cmd, const eb_opt *opts, int nopts, const eb_config *c, uint64_t seed, float **xT,
                      int32_t **y, int *N) {
    const char *noise = eb_arg(opts, nopts, "noise"), *labels = eb_arg(opts, nopts, "labels");
    const char *count = eb_arg(opts, nopts, "n");
    *xT = NULL, *y = NULL, *N = 0;
    if (!!noise + !!labels + !!count != 1) {
        fprintf(stderr, "ebcache %s: give exactly one of --noise, --labels, --n (see --help)\n", cmd);
        return 2;
    }
    const size_t per = (size_t)c->in_channels * c->input_size * c->input_size;
    eb_status st = EB_OK;
    int rc = 0;
    long count_v = 0;
    if (noise) {
        eb_h5 *f;
        int64_t xd[4], yd[1], want_x[4] = {EB_H5_ANY, c->in_channels, c->input_size, c->input_size};
        st = eb_h5_open(&f, noise);
        if (!st) st = eb_h5_read_f32(f, "noise", 4, want_x, xT, xd, EB_H5_FINITE);
        if (!st) {
            int64_t want_y[1] = {xd[0]};
            st = eb_h5_read_i32(f, "y", 1, want_y, y, yd);
        }
        eb_h5_close(f);
        if (!st && xd[0] == 0) st = eb_fail(EB_EINPUT, "%s: dataset 'noise' holds no rows", noise);
        for (int64_t i = 0; !st && i < xd[0]; i++)
            if ((*y)[i] < 0 || (*y)[i] > c->num_classes)
                st = eb_fail(EB_EINPUT, "%s: dataset 'y' [%lld] = %d outside [0, %d]", noise, (long long)i, (*y)[i],
                             c->num_classes);
        if (!st) *N = (int)xd[0];
    } else if (labels) {
        rc = eb_arg_int_list(cmd, "labels", labels, 0, c->num_classes, y, N);
    } else if (!(rc = eb_arg_int(cmd, "n", count, 1, 1 << 20, &count_v))) {
        *N = (int)count_v;
        if (!(*y = malloc(*N * sizeof(int32_t)))) st = eb_fail(EB_ERUNTIME, "out of memory");
        for (int i = 0; !st && i < *N; i++) (*y)[i] = c->num_classes ? i % c->num_classes : 0;
    }
    if (!rc && !st && !*xT) {
        if (!(*xT = malloc((size_t)*N * per * sizeof(float)))) st = eb_fail(EB_ERUNTIME, "out of memory");
        for (int i = 0; !st && i < *N; i++) eb_rng_fill_normal(*xT + i * per, per, eb_rng_key(seed, eb_stream_xT(i)));
    }
    if (rc || st) {
        free(*xT), free(*y);
        *xT = NULL, *y = NULL, *N = 0;
    }
    return rc ? rc : eb_report(cmd, st);
}

void eb_cli_write_run_attrs(eb_h5w *w, const eb_cli_run *run, const eb_model *m) {
    const eb_config *c = eb_model_config(m);
    eb_h5w_attr_str(w, NULL, "ebcache_version", EBCACHE_VERSION);
    eb_h5w_attr_str(w, NULL, "model", run->model_path);
    eb_h5w_attr_str(w, NULL, "device", eb_model_device(m));
    struct { const char *name; int value; } cfg[] = {
        {"input_size", c->input_size}, {"patch_size", c->patch_size}, {"in_channels", c->in_channels},
        {"hidden_size", c->hidden_size}, {"depth", c->depth}, {"num_heads", c->num_heads},
        {"num_classes", c->num_classes}, {"learn_sigma", c->learn_sigma},
    };
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++) eb_h5w_attr_i64(w, NULL, cfg[i].name, cfg[i].value);
    eb_h5w_attr_f64(w, NULL, "cfg_scale", run->cfg_scale);
    eb_h5w_attr_i64(w, NULL, "cfg_channels", run->guide_channels);
    eb_h5w_attr_str(w, NULL, "cfg_guidance", run->guidance);
}

eb_status eb_out_open(eb_out_file *o, const char *dir, const char *name) {
    if (snprintf(o->path, sizeof o->path, "%s/%s", dir, name) >= (int)sizeof o->path ||
        snprintf(o->tmp, sizeof o->tmp, "%s.tmp.%d", o->path, (int)getpid()) >= (int)sizeof o->tmp)
        return eb_fail(EB_EINPUT, "%s: path too long", dir);
    if (!(o->f = fopen(o->tmp, "w"))) return eb_fail(EB_EINPUT, "%s: cannot write: %s", o->tmp, strerror(errno));
    return EB_OK;
}

eb_status eb_out_close(eb_out_file *o) {
    int bad = ferror(o->f) | fclose(o->f);
    if (bad || rename(o->tmp, o->path) != 0) {
        unlink(o->tmp);
        return eb_fail(EB_ERUNTIME, "%s: write failed", o->path);
    }
    return EB_OK;
}

void eb_cli_fit_warning(const char *cmd, const eb_fit_two_phase *p, const char *then) {
    if (!p->flags) return;
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
    fprintf(stderr, "ebcache %s: warning: the two-phase fit is degenerate (%s): %s\n", cmd, why, then);
}

const char *eb_cli_eta_text(char *buf, size_t cap, double left) {
    long s = lround(left);
    if (s >= 60) snprintf(buf, cap, " (ETA %ld min %02ld s)", s / 60, s % 60);
    else snprintf(buf, cap, " (ETA %ld s)", s);
    return buf;
}

eb_status eb_cli_check_table(const char *cmd, const char *path, const eb_cache_schedule *cs, const eb_config *c,
                             const eb_schedule *s, const char *kind, const char *spacing) {
    /* "## sampler:" is "[ddpm|ddim] respacing=SPEC" as search and the generators write it */
    char table_kind[16] = "", table_spacing[64] = "";
    const char *r = strstr(cs->sampler, "respacing=");
    if (r) sscanf(r + strlen("respacing="), "%63s", table_spacing);
    sscanf(cs->sampler, "%15s", table_kind);
    if (strcmp(table_kind, "ddpm") && strcmp(table_kind, "ddim")) table_kind[0] = 0;
    eb_status st = eb_cache_schedule_check(cs, c, s);
    if (st && table_spacing[0] && strcmp(table_spacing, spacing)) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", eb_last_error());
        return eb_fail(st, "%s (the table was written for respacing %s, this run uses %s: give --respacing %s)", msg,
                       table_spacing, spacing, table_spacing);
    }
    if (!st && table_kind[0] && strcmp(table_kind, kind))
        fprintf(stderr, "ebcache %s: warning: %s was searched on a %s recording (## sampler: %s) and this run samples "
                        "with %s: its states and noise scaling were chosen for the other sampler\n",
                cmd, path, table_kind, cs->sampler, kind);
    return st;
}
