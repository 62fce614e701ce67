/* test_pipeline_run.c — the experiment layer's run calls (pipeline/run.h,
 * sampling.h, recording.h, searching.h, replay.h) called directly, no
 * binary: sampling to a file gives the samples of eb_sample_cached bit for
 * bit, a file's attributes open the same run again, a recording of the
 * shipped model is searched by eb-cache's replay, and bad parameters are
 * refused naming the field. */
#include "pipeline/recording.h"
#include "pipeline/sampling.h"
#include "pipeline/searching.h"
#include "runtime/h5io.h"
#include "runtime/schedule.h"
#include "tests/cli_util.h"
#include "tests/golden.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TINY GOLDEN_DIR "models/tiny_sigma.safetensors"       /* 4 × 8 × 8, learn_sigma, 2 blocks */
#define TINY_NOSIGMA GOLDEN_DIR "models/tiny_nosigma.safetensors" /* 3 heads, fixed variance      */
#define SHIPPED "data/dit_fmnist.safetensors"

TestSuite(pipeline_run, .init = cli_workdir_make, .fini = cli_workdir_remove);

/* Dataset `name` (float32) of `path`, with its element count. */
static float *read_f32(const char *path, const char *name, size_t *count) {
    eb_h5 *f;
    cr_assert_eq(eb_h5_open(&f, path), EB_OK, "%s", eb_last_error());
    float *x;
    int64_t d[4];
    cr_assert_eq(eb_h5_read_f32(f, name, 4, NULL, &x, d, 0), EB_OK, "%s", eb_last_error());
    eb_h5_close(f);
    *count = (size_t)(d[0] * d[1] * d[2] * d[3]);
    return x;
}

/* eb_sample_to_file in batches of 2 holds the bits eb_sample_cached gives on
 * the same noise (x_T of the seed's streams, labels cycling) in one batch. */
Test(pipeline_run, sample_to_file_is_eb_sample_cached) {
    char out[512];
    eb_sample_params p;
    eb_sample_params_defaults(&p);
    p.run.model = TINY, p.run.respacing = "5", p.run.n = 3, p.run.batch = 2, p.run.seed = 5, p.run.threads = 1;
    p.output = in_workdir(out, "s.h5");
    eb_sample_result r;
    cr_assert_eq(eb_sample_to_file(&p, &r), EB_OK, "%s", eb_last_error());
    cr_expect_eq(r.N, 3);
    cr_expect_eq(r.steps, 5);
    cr_expect_eq(r.flop_fraction, 1);

    eb_model *m = golden_host_model("tiny_sigma.safetensors", 0);
    const eb_config *c = eb_model_config(m);
    const size_t per = (size_t)c->in_channels * c->input_size * c->input_size;
    eb_schedule s;
    cr_assert_eq(eb_schedule_create(&s, "5"), EB_OK);
    eb_sampler_opts so = {.kind = EB_SAMPLER_DDPM, .var_type = EB_VAR_LEARNED_RANGE, .cfg_scale = 1.5f,
                          .guide_channels = eb_default_guide_channels(c), .seed = 5};
    float x[3 * 256];
    int32_t y[3];
    cr_assert_eq(per, 256);
    for (int i = 0; i < 3; i++) {
        eb_rng_fill_normal(x + i * per, per, eb_rng_key(5, eb_stream_xT(i)));
        y[i] = i % c->num_classes;
    }
    for (int first = 0; first < 3; first += 2) /* the same batches: a batch split changes the GEMMs' last bits */
        cr_assert_eq(eb_sample_cached(m, &s, &so, NULL, x + first * per, y + first, first ? 1 : 2, first, NULL), EB_OK,
                     "%s", eb_last_error());
    size_t count;
    float *got = read_f32(out, "samples", &count);
    cr_assert_eq(count, 3 * per);
    cr_expect_eq(memcmp(got, x, sizeof x), 0, "the file's samples differ from eb_sample_cached's");
    free(got);
    eb_schedule_free(&s);
    eb_model_free(m);
}

/* What eb_run_attrs_write wrote opens the same run: every setting comes back
 * and sampling it again gives the same bits. */
Test(pipeline_run, params_from_file_round_trip) {
    static const int32_t labels[4] = {2, 0, 1, 3};
    char out[512], again[512], buf[4096];
    eb_sample_params p;
    eb_sample_params_defaults(&p);
    eb_run_params *w = &p.run;
    w->model = TINY_NOSIGMA, w->heads = 3, w->sampler = EB_SAMPLER_DDIM, w->respacing = "ddim6", w->eta = 0.25;
    w->variance = EB_VARIANCE_SMALL, w->cfg_scale = 2, w->cfg_channels = "eps", w->seed = 17, w->labels = labels;
    w->n_labels = 4, w->batch = 3, w->threads = 1;
    p.output = in_workdir(out, "s.h5");
    cr_assert_eq(eb_sample_to_file(&p, NULL), EB_OK, "%s", eb_last_error());

    eb_sample_params q;
    eb_sample_params_defaults(&q);
    int32_t *read_labels;
    cr_assert_eq(eb_run_params_from_file(&q.run, out, buf, sizeof buf, &read_labels), EB_OK, "%s", eb_last_error());
    const eb_run_params *r = &q.run;
    cr_expect_str_eq(r->model, w->model);
    cr_expect_eq(r->heads, 3);
    cr_expect_eq(r->sampler, EB_SAMPLER_DDIM);
    cr_expect_str_eq(r->respacing, "ddim6");
    cr_expect_eq(r->eta, 0.25);
    cr_expect_eq(r->variance, EB_VARIANCE_SMALL);
    cr_expect_eq(r->cfg_scale, 2);
    cr_expect_str_eq(r->cfg_channels, "eps");
    cr_expect_eq(r->seed, 17);
    cr_expect_eq(r->batch, 3);
    cr_expect(!r->noise && !r->schedule && r->n == 0);
    cr_assert_eq(r->n_labels, 4);
    cr_expect_eq(memcmp(r->labels, labels, sizeof labels), 0);

    q.run.threads = 1;
    q.output = in_workdir(again, "again.h5");
    cr_assert_eq(eb_sample_to_file(&q, NULL), EB_OK, "%s", eb_last_error());
    size_t n1, n2;
    float *a = read_f32(out, "samples", &n1), *b = read_f32(again, "samples", &n2);
    cr_assert_eq(n1, n2);
    cr_expect_eq(memcmp(a, b, n1 * sizeof *a), 0, "the run opened from the file samples other bits");
    free(a), free(b), free(read_labels);

    /* a file the runs did not write: refused, naming the file and the attribute */
    eb_h5w *h;
    char bare[512];
    int64_t d[1] = {1};
    int32_t one = 0;
    cr_assert_eq(eb_h5w_create(&h, in_workdir(bare, "bare.h5")), EB_OK);
    eb_h5w_write(h, "y", EB_H5_I32, &one, 1, d);
    cr_assert_eq(eb_h5w_commit(h), EB_OK);
    cr_expect_eq(eb_run_params_from_file(&q.run, bare, buf, sizeof buf, &read_labels), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "bare.h5") && strstr(eb_last_error(), "'model'"), "%s", eb_last_error());
    cr_expect_null(read_labels);
}

/* record → search (eb-cache, the replay runner) on the shipped model: a
 * reachable target gives a table with met = 1, one out of reach met = 0
 * and no file. */
Test(pipeline_run, record_then_ebcache_search) {
    char rec[512], table[512], none[512];
    eb_record_params p;
    eb_record_params_defaults(&p);
    p.run.model = SHIPPED, p.run.respacing = "ddim8", p.run.sampler = EB_SAMPLER_DDIM, p.run.n = 2, p.run.threads = 1;
    p.output = in_workdir(rec, "rec.h5");
    eb_record_result rr;
    cr_assert_eq(eb_record_to_file(&p, &rr), EB_OK, "%s", eb_last_error());
    cr_expect(rr.N == 2 && rr.S == 8 && rr.start_step == 0, "N %d S %d start %d", rr.N, rr.S, rr.start_step);
    cr_expect_str_eq(rr.warning, "");

    eb_search_params s;
    eb_search_params_defaults(&s);
    s.record = rec, s.opts.method = eb_method_find("eb-cache"), s.opts.target = 1 / 1.25, s.threads = 1;
    s.output = in_workdir(table, "e.schedule");
    eb_search_outcome out;
    cr_assert_eq(eb_search_to_file(&s, &out), EB_OK, "%s", eb_last_error());
    cr_expect_eq(out.met, 1, "%s", out.note);
    cr_expect(out.runs >= 1 && out.flops <= 1 / 1.25, "runs %d flops %g", out.runs, out.flops);
    cr_expect_str_eq(out.method, "eb-cache");
    eb_cache_schedule *cs;
    cr_assert_eq(eb_cache_schedule_read(&cs, table), EB_OK, "%s", eb_last_error());
    cr_expect(strstr(cs->model, "dit_fmnist.safetensors"), "model label '%s'", cs->model);
    cr_expect(fabs(cs->flops - out.flops) < 1e-3, "header %g, outcome %g", cs->flops, out.flops);
    eb_cache_schedule_free(cs);

    s.opts.target = 1 / 50.0;
    s.output = in_workdir(none, "none.schedule");
    cr_assert_eq(eb_search_to_file(&s, &out), EB_OK, "%s", eb_last_error());
    cr_expect_eq(out.met, 0);
    cr_expect(strstr(out.note, "cannot meet"), "%s", out.note);
    cr_expect_neq(access(none, F_OK), 0, "a table was written for an unreachable target");
}

/* The replay reopens a recording's run (one chain without a target) and
 * refuses it, naming the file, once the model changed (SHA-256). */
Test(pipeline_run, replay_checks_the_recorded_run) {
    char model[512], rec[512], table[512], cmd[1200];
    snprintf(cmd, sizeof cmd, "cp " TINY " %s", in_workdir(model, "m.safetensors"));
    cr_assert_eq(system(cmd), 0);
    eb_record_params p;
    eb_record_params_defaults(&p);
    p.run.model = model, p.run.respacing = "6", p.run.n = 2, p.run.threads = 1;
    p.output = in_workdir(rec, "rec.h5");
    cr_assert_eq(eb_record_to_file(&p, NULL), EB_OK, "%s", eb_last_error());
    eb_search_params s;
    eb_search_params_defaults(&s);
    s.record = rec, s.threads = 1, s.output = in_workdir(table, "e.schedule");
    eb_search_outcome out;
    cr_assert_eq(eb_search_to_file(&s, &out), EB_OK, "%s", eb_last_error());
    cr_expect(out.met && out.runs == 1, "met %d runs %d", out.met, out.runs);
    /* the same configuration stored as f16: it loads, but it is not the recorded model */
    snprintf(cmd, sizeof cmd, "cp " GOLDEN_DIR "models/tiny_sigma_f16.safetensors %s", model);
    cr_assert_eq(system(cmd), 0);
    unlink(table);
    cr_expect_eq(eb_search_to_file(&s, &out), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "rec.h5") && strstr(eb_last_error(), "changed since the recording"), "%s",
              eb_last_error());
    cr_expect_neq(access(table, F_OK), 0, "a table was written for a changed model");
}

/* Bad parameters: EB_EINPUT naming the field, nothing written. */
Test(pipeline_run, bad_params_name_the_field) {
    char out[512];
    eb_sample_params base;
    eb_sample_params_defaults(&base);
    base.run.model = TINY, base.run.respacing = "4", base.run.n = 1, base.run.threads = 1;
    base.output = in_workdir(out, "o.h5");
    eb_sample_params p;
#define EXPECT_FIELD(change, field)                                                                                 \
    do {                                                                                                           \
        p = base;                                                                                                  \
        change;                                                                                                    \
        cr_expect_eq(eb_sample_to_file(&p, NULL), EB_EINPUT, #change);                                             \
        cr_expect(strstr(eb_last_error(), field), #change ": '%s' lacks %s", eb_last_error(), field);              \
        cr_expect_neq(access(out, F_OK), 0, #change " wrote");                                                     \
    } while (0)
    EXPECT_FIELD(p.run.cfg_scale = -1, "`cfg_scale`");
    EXPECT_FIELD(p.run.cfg_scale = NAN, "`cfg_scale`");
    EXPECT_FIELD(p.run.eta = 0, "`eta`");
    EXPECT_FIELD((p.run.sampler = EB_SAMPLER_DDIM, p.run.eta = 1.5), "`eta`");
    EXPECT_FIELD(p.run.batch = 0, "`batch`");
    EXPECT_FIELD(p.run.n = 0, "`noise`");
    EXPECT_FIELD(p.run.noise = "x.h5", "exactly one of");
    EXPECT_FIELD(p.run.model = NULL, "`model`");
    EXPECT_FIELD(p.run.cfg_channels = "9", "`cfg_channels`");
    EXPECT_FIELD((p.run.n = 0, p.run.labels = (const int32_t[]){11}, p.run.n_labels = 1), "`labels`");
    EXPECT_FIELD(p.baseline = 1, "`baseline`");
    EXPECT_FIELD(p.run.respacing = "ddim999", "ddim999");

    eb_record_params r;
    eb_record_params_defaults(&r);
    r.run = base.run;
    r.output = out;
    r.start_step = 3;
    cr_expect_eq(eb_record_to_file(&r, NULL), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "`start_step`"), "%s", eb_last_error());
    r.start_step = 0, r.dump_features = "1:7";
    cr_expect_eq(eb_record_to_file(&r, NULL), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "`dump_features`"), "%s", eb_last_error());
    cr_expect_neq(access(out, F_OK), 0, "a refused recording wrote");

    eb_search_params s;
    eb_search_params_defaults(&s);
    s.output = out;
    eb_search_outcome o;
    cr_expect_eq(eb_search_to_file(&s, &o), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "`record`"), "%s", eb_last_error());
    s.record = "x.h5", s.config = "XL/2", s.model = TINY;
    cr_expect_eq(eb_search_to_file(&s, &o), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "`model`") && strstr(eb_last_error(), "`config`"), "%s", eb_last_error());

    eb_sampler_kind k;
    eb_variance_choice v;
    eb_var_type t;
    cr_expect_eq(eb_sampler_kind_parse(&k, "euler"), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "`sampler`") && strstr(eb_last_error(), "euler"), "%s", eb_last_error());
    cr_expect_eq(eb_variance_choice_parse(&v, "mid"), EB_EINPUT);
    cr_expect_eq(eb_var_type_parse(&t, "fixed_small"), EB_OK);
    cr_expect_eq(t, EB_VAR_FIXED_SMALL);
    cr_expect_str_eq(eb_sampler_kind_name(EB_SAMPLER_DDIM), "ddim");
    cr_expect_str_eq(eb_var_type_name(EB_VAR_LEARNED_RANGE), "learned_range");
    cr_expect_str_eq(eb_policy_kind_name(EB_POLICY_FBCACHE), "fbcache");
}
