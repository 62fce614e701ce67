/* schedule.c — the cache schedule table: parse, write, validate against a
 * model and a sampler, FLOP accounting. Format: docs/schedule.md. */
#include "runtime/schedule.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/atomic.h"
#include "runtime/npy.h"
#include "runtime/readfile.h"

#define MAX_TABLE_BYTES (64 << 20)

/* "name:line: " for a source row, "name: step k: " for a generated one. */
static eb_status fail_at(const eb_cache_schedule *cs, int line, int step, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static eb_status fail_at(const eb_cache_schedule *cs, int line, int step, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (line > 0) return eb_fail(EB_EINPUT, "%s:%d: %s", cs->name, line, msg);
    if (step >= 0) return eb_fail(EB_EINPUT, "%s: step %d: %s", cs->name, step, msg);
    return eb_fail(EB_EINPUT, "%s: %s", cs->name, msg);
}

static eb_cache_schedule *schedule_alloc(const char *name) {
    eb_cache_schedule *cs = calloc(1, sizeof *cs);
    if (!cs) return NULL;
    snprintf(cs->name, sizeof cs->name, "%s", name);
    cs->flops = NAN;
    cs->steps = -1;
    eb_toca_score_defaults(&cs->toca);
    return cs;
}

void eb_cache_schedule_free(eb_cache_schedule *cs) {
    if (!cs) return;
    free(cs->rows);
    free(cs);
}

static eb_status push_row(eb_cache_schedule *cs, const eb_sched_row *r) {
    if (cs->nrows == cs->cap_rows) {
        int cap = cs->cap_rows ? 2 * cs->cap_rows : 64;
        eb_sched_row *rows = realloc(cs->rows, cap * sizeof *rows);
        if (!rows) return eb_fail(EB_ERUNTIME, "out of memory for the rows of %s", cs->name);
        cs->rows = rows, cs->cap_rows = cap;
    }
    cs->rows[cs->nrows++] = *r;
    return EB_OK;
}

/* ------------------------------------------------------------------------ */
/* Parsing                                                                   */

static int parse_long(const char *s, long min, long max, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) return 0;
    *out = v;
    return 1;
}

static int parse_double(const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v)) return 0;
    *out = v;
    return 1;
}

/* "C", "R", "S", "T1".."T4" or "P<ratio>" (ratio in [0, 1], into *ratio). */
static int parse_act(const char *s, eb_act *a, double *ratio) {
    if (s[0] == 'P') {
        if (!parse_double(s + 1, ratio) || *ratio < 0 || *ratio > 1) return 0;
        *a = (eb_act){EB_ACT_PARTIAL, 0};
    } else if (!strcmp(s, "C")) *a = (eb_act){EB_ACT_COMPUTE, 0};
    else if (!strcmp(s, "R")) *a = (eb_act){EB_ACT_REUSE, 0};
    else if (!strcmp(s, "S")) *a = (eb_act){EB_ACT_SKIP, 0};
    else if (s[0] == 'T' && s[1] >= '1' && s[1] <= '4' && !s[2]) *a = (eb_act){EB_ACT_FORECAST, (uint8_t)(s[1] - '0')};
    else return 0;
    return 1;
}

/* "*", "k" or "a-b" (inclusive). */
static int parse_blocks(const char *s, int *lo, int *hi) {
    if (!strcmp(s, "*")) return *lo = 0, *hi = -1, 1;
    char buf[64];
    snprintf(buf, sizeof buf, "%s", s);
    char *dash = strchr(buf, '-');
    long a, b;
    if (dash) {
        *dash = 0;
        if (!parse_long(buf, 0, 1 << 20, &a) || !parse_long(dash + 1, 0, 1 << 20, &b) || b < a) return 0;
    } else {
        if (!parse_long(buf, 0, 1 << 20, &a)) return 0;
        b = a;
    }
    *lo = (int)a, *hi = (int)b;
    return 1;
}

/* "teacache threshold=X [poly=a,b,...]", "fbcache threshold=X blocks=F" or "none". */
static eb_status parse_policy(eb_cache_schedule *cs, int line, char *value) {
    eb_policy *p = &cs->policy;
    char *save, *tok = strtok_r(value, " \t", &save);
    if (!tok) return fail_at(cs, line, -1, "policy: missing kind (teacache, fbcache or none)");
    if (!strcmp(tok, "none")) p->kind = EB_POLICY_NONE;
    else if (!strcmp(tok, "teacache")) p->kind = EB_POLICY_TEACACHE;
    else if (!strcmp(tok, "fbcache")) p->kind = EB_POLICY_FBCACHE;
    else return fail_at(cs, line, -1, "policy: unknown kind '%s' (teacache, fbcache or none)", tok);
    int have_threshold = 0;
    if (p->kind == EB_POLICY_TEACACHE) p->npoly = 2, p->poly[0] = 1, p->poly[1] = 0; /* identity */
    while ((tok = strtok_r(NULL, " \t", &save))) {
        char *eq = strchr(tok, '=');
        if (!eq) return fail_at(cs, line, -1, "policy: '%s' is not key=value", tok);
        *eq = 0;
        const char *key = tok, *v = eq + 1;
        long blocks;
        if (!strcmp(key, "threshold") && p->kind != EB_POLICY_NONE) {
            if (!parse_double(v, &p->threshold) || p->threshold <= 0)
                return fail_at(cs, line, -1, "policy: threshold '%s' is not a positive number", v);
            have_threshold = 1;
        } else if (!strcmp(key, "poly") && p->kind == EB_POLICY_TEACACHE) {
            char buf[512], *save2;
            snprintf(buf, sizeof buf, "%s", v);
            p->npoly = 0;
            for (char *c = strtok_r(buf, ",", &save2); c; c = strtok_r(NULL, ",", &save2)) {
                if (p->npoly == EB_POLY_MAX)
                    return fail_at(cs, line, -1, "policy: poly has more than %d coefficients", EB_POLY_MAX);
                if (!parse_double(c, &p->poly[p->npoly++]))
                    return fail_at(cs, line, -1, "policy: poly coefficient '%s' is not a finite number", c);
            }
            if (!p->npoly) return fail_at(cs, line, -1, "policy: poly is empty");
        } else if (!strcmp(key, "blocks") && p->kind == EB_POLICY_FBCACHE) {
            if (!parse_long(v, 1, 1 << 20, &blocks))
                return fail_at(cs, line, -1, "policy: blocks '%s' is not a positive integer", v);
            p->blocks = (int)blocks;
        } else {
            return fail_at(cs, line, -1, "policy: unknown key '%s' for %s", key,
                           p->kind == EB_POLICY_TEACACHE ? "teacache" : p->kind == EB_POLICY_FBCACHE ? "fbcache" : "none");
        }
    }
    if (p->kind != EB_POLICY_NONE && !have_threshold) return fail_at(cs, line, -1, "policy: threshold=X is required");
    if (p->kind == EB_POLICY_FBCACHE && !p->blocks) return fail_at(cs, line, -1, "policy: fbcache needs blocks=F");
    return EB_OK;
}

/* "weight=λ fresh=N bonus=B grid=G", each optional (ToCa's defaults). */
static eb_status parse_toca(eb_cache_schedule *cs, int line, char *value) {
    eb_toca_score *p = &cs->toca;
    char *save;
    for (char *tok = strtok_r(value, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq) return fail_at(cs, line, -1, "toca: '%s' is not key=value", tok);
        *eq = 0;
        const char *key = tok, *v = eq + 1;
        long grid;
        if (!strcmp(key, "weight")) {
            if (!parse_double(v, &p->weight) || p->weight < 0)
                return fail_at(cs, line, -1, "toca: weight '%s' is not a number >= 0", v);
        } else if (!strcmp(key, "fresh")) {
            if (!parse_double(v, &p->fresh) || p->fresh <= 0)
                return fail_at(cs, line, -1, "toca: fresh '%s' is not a positive number", v);
        } else if (!strcmp(key, "bonus")) {
            if (!parse_double(v, &p->bonus) || p->bonus < 0)
                return fail_at(cs, line, -1, "toca: bonus '%s' is not a number >= 0", v);
        } else if (!strcmp(key, "grid")) {
            if (!parse_long(v, 1, 64, &grid)) return fail_at(cs, line, -1, "toca: grid '%s' is not an integer in [1, 64]", v);
            p->grid = (int)grid;
        } else {
            return fail_at(cs, line, -1, "toca: unknown key '%s' (weight, fresh, bonus, grid)", key);
        }
    }
    return EB_OK;
}

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) s[--n] = 0;
    return s;
}

static eb_status parse_directive(eb_cache_schedule *cs, int line, char *text) {
    char *colon = strchr(text, ':');
    if (!colon) return fail_at(cs, line, -1, "directive '%s' is not '## key: value'", text);
    *colon = 0;
    char *key = trim(text), *value = trim(colon + 1);
    struct { const char *key; char *dst; size_t size; } strings[] = {
        {"method", cs->method, sizeof cs->method}, {"params", cs->params, sizeof cs->params},
        {"model", cs->model, sizeof cs->model}, {"sampler", cs->sampler, sizeof cs->sampler}};
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++)
        if (!strcmp(key, strings[i].key)) {
            if (strings[i].dst[0]) return fail_at(cs, line, -1, "directive '%s' given twice", key);
            if (!*value) return fail_at(cs, line, -1, "directive '%s' is empty", key);
            if (strlen(value) >= strings[i].size)
                return fail_at(cs, line, -1, "directive '%s' is longer than %zu characters", key, strings[i].size - 1);
            strcpy(strings[i].dst, value);
            return EB_OK;
        }
    if (!strcmp(key, "steps")) {
        long v;
        if (cs->steps >= 0) return fail_at(cs, line, -1, "directive 'steps' given twice");
        if (!parse_long(value, 1, EB_DIFFUSION_STEPS, &v))
            return fail_at(cs, line, -1, "steps '%s' is not an integer in [1, %d]", value, EB_DIFFUSION_STEPS);
        cs->steps = (int)v, cs->steps_line = line;
        return EB_OK;
    }
    if (!strcmp(key, "flops")) {
        if (!isnan(cs->flops)) return fail_at(cs, line, -1, "directive 'flops' given twice");
        if (!parse_double(value, &cs->flops) || cs->flops < 0 || cs->flops > 1)
            return fail_at(cs, line, -1, "flops '%s' is not a fraction in [0, 1]", value);
        return EB_OK;
    }
    if (!strcmp(key, "policy")) {
        if (cs->policy_line) return fail_at(cs, line, -1, "directive 'policy' given twice");
        cs->policy_line = line;
        return parse_policy(cs, line, value);
    }
    if (!strcmp(key, "toca")) {
        if (cs->toca_line) return fail_at(cs, line, -1, "directive 'toca' given twice");
        cs->toca_line = line;
        return parse_toca(cs, line, value);
    }
    return fail_at(cs, line, -1, "unknown directive '%s' (method, params, model, sampler, steps, flops, policy, toca)", key);
}

/* A table row: step t blocks attn mlp scale. */
static eb_status parse_row(eb_cache_schedule *cs, int line, char *text) {
    char *tok[7], *save;
    int n = 0;
    for (char *t = strtok_r(text, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
        if (n == 7) break;
        tok[n++] = t;
    }
    if (n != 6) return fail_at(cs, line, -1, "expected 6 columns (step t blocks attn mlp scale), found %s%d", n == 7 ? "more than " : "", n == 7 ? 6 : n);
    if (cs->steps < 0) return fail_at(cs, line, -1, "rows must follow the '## steps: S' directive");
    eb_sched_row r = {.line = line};
    long step, t;
    if (!parse_long(tok[0], 0, cs->steps - 1, &step))
        return fail_at(cs, line, -1, "step '%s' is not an integer in [0, %d]", tok[0], cs->steps - 1);
    if (!parse_long(tok[1], 0, EB_DIFFUSION_STEPS - 1, &t))
        return fail_at(cs, line, -1, "t '%s' is not an integer in [0, %d]", tok[1], EB_DIFFUSION_STEPS - 1);
    r.step = (int)step, r.t = (int)t;
    if (!parse_blocks(tok[2], &r.lo, &r.hi))
        return fail_at(cs, line, -1, "blocks '%s' is not '*', an index or a range 'a-b'", tok[2]);
    double unused;
    if (!parse_act(tok[3], &r.attn, &unused))
        return fail_at(cs, line, -1, "unknown attn action '%s' (C, R, T1..T4, S)", tok[3]);
    if (r.attn.kind == EB_ACT_PARTIAL)
        return fail_at(cs, line, -1, "attn action '%s': partial compute is for the mlp column only (ToCa's DiT "
                                     "default reuses the attention on its partial steps)", tok[3]);
    if (!parse_act(tok[4], &r.mlp, &r.ratio))
        return fail_at(cs, line, -1, "unknown mlp action '%s' (C, R, T1..T4, S, P<ratio> with ratio in [0, 1])", tok[4]);
    if (!parse_double(tok[5], &r.scale) || r.scale <= 0)
        return fail_at(cs, line, -1, "scale '%s' is not a positive finite number", tok[5]);

    const eb_sched_row *prev = cs->nrows ? &cs->rows[cs->nrows - 1] : NULL;
    int prev_step = prev ? prev->step : -1;
    if (r.step < prev_step) return fail_at(cs, line, -1, "step %d after step %d: rows must be in step order", r.step, prev_step);
    if (r.step > prev_step) {
        if (r.step != prev_step + 1) return fail_at(cs, line, -1, "step %d has no row (rows jump from step %d to %d)", prev_step + 1, prev_step, r.step);
        if (r.hi != -1) return fail_at(cs, line, -1, "the first row of step %d must cover every block ('*')", r.step);
    } else {
        /* an override row: same step, t and scale as the step's "*" row */
        const eb_sched_row *base = prev;
        while (base > cs->rows && base->hi != -1) base--;
        if (r.hi == -1) return fail_at(cs, line, -1, "step %d has a second '*' row (line %d)", r.step, base->line);
        if (r.t != base->t) return fail_at(cs, line, -1, "t %d differs from step %d's t %d (line %d)", r.t, r.step, base->t, base->line);
        if (r.scale != base->scale)
            return fail_at(cs, line, -1, "scale %s differs from step %d's scale %g (line %d)", tok[5], r.step, base->scale, base->line);
    }
    return push_row(cs, &r);
}

eb_status eb_cache_schedule_parse(eb_cache_schedule **out, const char *text, const char *name) {
    *out = NULL;
    eb_cache_schedule *cs = schedule_alloc(name);
    char *copy = strdup(text);
    if (!cs || !copy) {
        free(copy);
        eb_cache_schedule_free(cs);
        return eb_fail(EB_ERUNTIME, "out of memory reading %s", name);
    }
    eb_status st = EB_OK;
    int line = 0;
    char *p = copy;
    for (char *l = p; !st && l; l = p) {
        char *nl = strchr(l, '\n');
        if (!nl && !*l && line) break; /* the end of a file whose last line ends with a newline */
        if (nl) *nl = 0;
        p = nl ? nl + 1 : NULL;
        line++;
        char *s = trim(l);
        if (line == 1) {
            if (strcmp(s, EB_SCHEDULE_VERSION_LINE)) {
                if (!strncmp(s, "# ebcache schedule ", 19))
                    st = fail_at(cs, 1, -1, "unsupported version '%s' (this ebcache reads v1)", s + 19);
                else
                    st = fail_at(cs, 1, -1, "not an ebcache schedule: line 1 must be '%s'", EB_SCHEDULE_VERSION_LINE);
            }
            continue;
        }
        if (!*s || (s[0] == '#' && s[1] != '#')) continue;
        if (s[0] == '#') {
            if (cs->nrows) st = fail_at(cs, line, -1, "directives belong in the header, before the first row");
            else st = parse_directive(cs, line, s + 2);
        } else {
            st = parse_row(cs, line, s);
        }
    }
    if (!st && line == 0) st = fail_at(cs, 1, -1, "empty file");
    if (!st && cs->steps < 0) st = fail_at(cs, line, -1, "no '## steps: S' directive");
    if (!st && (cs->nrows == 0 || cs->rows[cs->nrows - 1].step != cs->steps - 1)) {
        int last = cs->nrows ? cs->rows[cs->nrows - 1].step : -1;
        st = fail_at(cs, line, -1, "steps %d..%d have no row (## steps: %d at line %d)", last + 1, cs->steps - 1,
                     cs->steps, cs->steps_line);
    }
    free(copy);
    if (st) {
        eb_cache_schedule_free(cs);
        return st;
    }
    *out = cs;
    return EB_OK;
}

eb_status eb_cache_schedule_read(eb_cache_schedule **out, const char *path) {
    *out = NULL;
    char *text;
    size_t n;
    eb_status st = eb_read_file(path, MAX_TABLE_BYTES, &text, &n);
    if (st) return st;
    if (memchr(text, 0, n)) st = eb_fail(EB_EINPUT, "%s: holds a NUL byte, not a text table", path);
    else st = eb_cache_schedule_parse(out, text, path);
    free(text);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Writing                                                                   */

/* The shortest %g form that reads back to the same double. */
static void fmt_double(char *buf, size_t size, double v) {
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) return;
    }
}

/* An action as the table writes it; buf holds 32 characters. */
static void fmt_act(char *buf, eb_act a, double ratio) {
    static const char letter[] = {'C', 'R', 'T', 'S', 'P'};
    buf[0] = letter[a.kind];
    buf[1] = a.kind == EB_ACT_FORECAST ? (char)('0' + a.order) : 0;
    buf[2] = 0;
    if (a.kind == EB_ACT_PARTIAL) fmt_double(buf + 1, 31, ratio);
}

/* Whether a table has a partial action (then it writes its ## toca: line). */
static int has_partial(const eb_cache_schedule *cs) {
    for (int i = 0; i < cs->nrows; i++)
        if (cs->rows[i].mlp.kind == EB_ACT_PARTIAL) return 1;
    return 0;
}

static void write_policy(FILE *f, const eb_policy *p) {
    char num[32];
    if (p->kind == EB_POLICY_NONE) return;
    fmt_double(num, sizeof num, p->threshold);
    fprintf(f, "## policy: %s threshold=%s", p->kind == EB_POLICY_TEACACHE ? "teacache" : "fbcache", num);
    if (p->kind == EB_POLICY_FBCACHE) fprintf(f, " blocks=%d", p->blocks);
    for (int k = 0; p->kind == EB_POLICY_TEACACHE && k < p->npoly; k++) {
        fmt_double(num, sizeof num, p->poly[k]);
        fprintf(f, "%s%s", k ? "," : " poly=", num);
    }
    fprintf(f, "\n");
}

void eb_cache_schedule_print(FILE *f, const eb_cache_schedule *cs) {
    char num[32];
    fprintf(f, "%s\n", EB_SCHEDULE_VERSION_LINE);
    if (cs->method[0]) fprintf(f, "## method: %s\n", cs->method);
    if (cs->params[0]) fprintf(f, "## params: %s\n", cs->params);
    if (cs->model[0]) fprintf(f, "## model: %s\n", cs->model);
    if (cs->sampler[0]) fprintf(f, "## sampler: %s\n", cs->sampler);
    fprintf(f, "## steps: %d\n", cs->steps);
    if (!isnan(cs->flops)) fprintf(f, "## flops: %.4f\n", cs->flops);
    write_policy(f, &cs->policy);
    if (cs->toca_line || has_partial(cs)) {
        char w[32], fr[32], b[32];
        fmt_double(w, sizeof w, cs->toca.weight), fmt_double(fr, sizeof fr, cs->toca.fresh);
        fmt_double(b, sizeof b, cs->toca.bonus);
        fprintf(f, "## toca: weight=%s fresh=%s bonus=%s grid=%d\n", w, fr, b, cs->toca.grid);
    }
    fprintf(f, "# step    t  blocks  attn  mlp  scale\n");
    for (int i = 0; i < cs->nrows; i++) {
        const eb_sched_row *r = &cs->rows[i];
        char blocks[32], attn[32], mlp[32];
        if (r->hi < 0) snprintf(blocks, sizeof blocks, "*");
        else if (r->lo == r->hi) snprintf(blocks, sizeof blocks, "%d", r->lo);
        else snprintf(blocks, sizeof blocks, "%d-%d", r->lo, r->hi);
        fmt_act(attn, r->attn, 0), fmt_act(mlp, r->mlp, r->ratio);
        fmt_double(num, sizeof num, r->scale);
        fprintf(f, "%6d %4d %7s %5s %4s  %s\n", r->step, r->t, blocks, attn, mlp, num);
    }
}

eb_status eb_cache_schedule_write(const eb_cache_schedule *cs, const char *path) {
    eb_atomic out;
    eb_status st = eb_atomic_open(&out, path);
    if (st) return st;
    eb_cache_schedule_print(out.f, cs);
    if (ferror(out.f)) {
        eb_atomic_abort(&out);
        return eb_fail(EB_ERUNTIME, "%s: write failed", out.tmp);
    }
    return eb_atomic_commit(&out);
}

/* ------------------------------------------------------------------------ */
/* Validation: the per-step plan                                             */

void eb_cache_plan_free(eb_cache_plan *p) {
    free(p->act), free(p->scale), free(p->runs), free(p->run_use), free(p->run_record), free(p->slot_cap);
    free(p->ratio), free(p->colsum);
    memset(p, 0, sizeof *p);
}

static int find_or_add_run(eb_cache_plan *p, int lo, int hi) {
    for (int r = 0; r < p->nruns; r++)
        if (p->runs[r].lo == lo && p->runs[r].hi == hi) return r;
    p->runs[p->nruns] = (eb_block_run){lo, hi};
    return p->nruns++;
}

static int skipped(const eb_cache_plan *p, int step, int block) {
    return p->act[((size_t)step * p->L + block) * 2].kind == EB_ACT_SKIP;
}

/* End of the maximal run of skipped blocks that starts at block lo of a step, or −1 when none starts there. */
static int skip_run_end(const eb_cache_plan *p, int step, int lo) {
    if (!skipped(p, step, lo) || (lo > 0 && skipped(p, step, lo - 1))) return -1;
    int e = lo;
    while (e < p->L && skipped(p, step, e)) e++;
    return e;
}

/* Whether a step runs every block of a run, so that it can store the run's residual. */
static int run_recordable(const eb_cache_plan *p, int step, const eb_block_run *r) {
    for (int b = r->lo; b < r->hi; b++)
        if (skipped(p, step, b)) return 0;
    return 1;
}

static const char *module_name(int m) { return m ? "mlp" : "attention"; }

/* Rows → per step and block actions; checks block indices and timesteps. line_of (S, L) gets each cell's row. */
static eb_status expand_rows(eb_cache_plan *p, const eb_cache_schedule *cs, const eb_schedule *s, int *line_of) {
    const int S = p->S, L = p->L;
    for (int i = 0; i < cs->nrows; i++) {
        const eb_sched_row *r = &cs->rows[i];
        int hi = r->hi < 0 ? L - 1 : r->hi;
        if (hi >= L) return fail_at(cs, r->line, r->step, "block %d outside the model's blocks [0, %d)", hi, L);
        if (s && r->t != s->timestep[S - 1 - r->step])
            return fail_at(cs, r->line, r->step, "t = %d but the sampler's step %d runs t = %d", r->t, r->step,
                           s->timestep[S - 1 - r->step]);
        for (int b = r->lo; b <= hi; b++) {
            eb_act *a = &p->act[((size_t)r->step * L + b) * 2];
            a[0] = r->attn, a[1] = r->mlp;
            p->ratio[(size_t)r->step * L + b] = r->mlp.kind == EB_ACT_PARTIAL ? r->ratio : 0;
            line_of[(size_t)r->step * L + b] = r->line;
        }
        p->scale[r->step] = (float)r->scale;
    }
    return EB_OK;
}

/* Step by step: every reuse / forecast follows a compute of its module (sizing
 * its cache), skips come in pairs, a policy sees only computes; collects the
 * skipped runs. */
static eb_status check_actions(eb_cache_plan *p, const eb_cache_schedule *cs, const int *line_of) {
    const int S = p->S, L = p->L;
    int *computed = calloc((size_t)L * 2, sizeof *computed);
    if (!computed) return eb_fail(EB_ERUNTIME, "out of memory");
    eb_status st = EB_OK;
    for (int k = 0; !st && k < S; k++) {
        for (int b = 0; !st && b < L; b++) {
            const eb_act *a = &p->act[((size_t)k * L + b) * 2];
            int line = line_of[(size_t)k * L + b];
            if (cs->policy.kind != EB_POLICY_NONE && (a[0].kind != EB_ACT_COMPUTE || a[1].kind != EB_ACT_COMPUTE))
                st = fail_at(cs, line, k, "block %d: a dynamic policy (line %d) needs every action C", b, cs->policy_line);
            else if ((a[0].kind == EB_ACT_SKIP) != (a[1].kind == EB_ACT_SKIP))
                st = fail_at(cs, line, k, "block %d: S (skip) must be given for both attention and mlp", b);
            for (int m = 0; !st && m < 2 && a[m].kind != EB_ACT_SKIP; m++) {
                if (a[m].kind == EB_ACT_COMPUTE) continue;
                static const char *const what[] = {"", "reuse", "forecast", "", "partial compute"};
                if (!computed[b * 2 + m])
                    st = fail_at(cs, line, k, "block %d %s: %s with nothing cached yet (no earlier step computes it)", b,
                                 module_name(m), what[a[m].kind]);
                int cap = a[m].kind == EB_ACT_FORECAST ? a[m].order + 1 : 1;
                if (cap > p->slot_cap[b * 2 + m]) p->slot_cap[b * 2 + m] = cap;
                if (a[m].kind == EB_ACT_PARTIAL) p->colsum[b] = 1, p->partial = 1;
            }
        }
        for (int b = 0; !st && b < L; b++) {
            for (int m = 0; m < 2; m++)
                if (p->act[((size_t)k * L + b) * 2 + m].kind == EB_ACT_COMPUTE) computed[b * 2 + m] = 1;
            int e = skip_run_end(p, k, b);
            if (e > 0) find_or_add_run(p, b, e);
        }
    }
    free(computed);
    return st;
}

/* Which steps use each run, and which store its residual: the last step
 * before a use that runs all of its blocks. The policy's run (then the only
 * one) is stored at every step that computes. */
static eb_status place_runs(eb_cache_plan *p, const eb_cache_schedule *cs, const int *line_of) {
    const int S = p->S, L = p->L;
    size_t size = (size_t)S * (p->nruns ? p->nruns : 1);
    if (!(p->run_use = calloc(size, 1)) || !(p->run_record = calloc(size, 1))) return eb_fail(EB_ERUNTIME, "out of memory");
    for (int r = 0; r < p->nruns; r++) {
        const eb_block_run *run = &p->runs[r];
        int last = -1;
        for (int k = 0; k < S; k++) {
            if (cs->policy.kind != EB_POLICY_NONE) {
                p->run_record[(size_t)k * p->nruns + r] = 1;
            } else if (skip_run_end(p, k, run->lo) == run->hi) {
                if (last < 0)
                    return fail_at(cs, line_of[(size_t)k * L + run->lo], k,
                                   "blocks %d-%d skip with nothing cached yet (no earlier step runs all of them)",
                                   run->lo, run->hi - 1);
                p->run_use[(size_t)k * p->nruns + r] = 1;
                p->run_record[(size_t)last * p->nruns + r] = 1;
            } else if (run_recordable(p, k, run)) {
                last = k;
            }
        }
    }
    return EB_OK;
}

eb_status eb_cache_plan_build(eb_cache_plan *p, const eb_cache_schedule *cs, int depth, const eb_schedule *s) {
    memset(p, 0, sizeof *p);
    const int S = cs->steps, L = depth;
    if (s && s->S != S)
        return fail_at(cs, cs->steps_line, -1, "the table has %d steps but the sampler runs %d", S, s->S);
    const eb_policy *pol = &cs->policy;
    if (pol->kind == EB_POLICY_FBCACHE && pol->blocks >= L)
        return fail_at(cs, cs->policy_line, -1, "fbcache blocks=%d leaves no block to cache (the model has %d)",
                       pol->blocks, L);
    /* at most one run per two blocks per step, plus the policy's */
    size_t max_runs = (size_t)S * ((L + 1) / 2) + 1;
    p->S = S, p->L = L, p->policy = *pol;
    p->act = calloc((size_t)S * L * 2, sizeof *p->act);
    p->scale = malloc(S * sizeof *p->scale);
    p->runs = malloc(max_runs * sizeof *p->runs);
    p->slot_cap = calloc((size_t)L * 2, sizeof *p->slot_cap);
    p->ratio = calloc((size_t)S * L, sizeof *p->ratio);
    p->colsum = calloc(L, 1);
    p->toca = cs->toca;
    int *line_of = calloc((size_t)S * L, sizeof *line_of);
    eb_status st = EB_OK;
    if (!p->act || !p->scale || !p->runs || !p->slot_cap || !p->ratio || !p->colsum || !line_of)
        st = eb_fail(EB_ERUNTIME, "out of memory");
    if (!st) st = expand_rows(p, cs, s, line_of);
    if (!st) st = check_actions(p, cs, line_of);
    if (!st && pol->kind != EB_POLICY_NONE) find_or_add_run(p, pol->kind == EB_POLICY_FBCACHE ? pol->blocks : 0, L);
    if (!st) st = place_runs(p, cs, line_of);
    free(line_of);
    if (st) eb_cache_plan_free(p);
    return st;
}

eb_status eb_cache_schedule_check(const eb_cache_schedule *cs, const eb_config *c, const eb_schedule *s) {
    eb_cache_plan p;
    eb_status st = eb_cache_plan_build(&p, cs, c->depth, s);
    if (st) return st;
    if (p.partial && eb_grid(c) % cs->toca.grid)
        st = fail_at(cs, cs->toca_line, -1, "ToCa's score patches of %dx%d tokens do not tile the model's %dx%d token "
                     "grid (## toca: grid=G with G dividing %d; grid=1: no spatial bonus)", cs->toca.grid, cs->toca.grid,
                     eb_grid(c), eb_grid(c), eb_grid(c));
    eb_cache_plan_free(&p);
    return st;
}

/* ------------------------------------------------------------------------ */
/* FLOP accounting                                                           */

void eb_macs_split(eb_macs_parts *mp, const eb_config *c) {
    double D = c->hidden_size, T = eb_tokens(c);
    mp->embed = T * D * eb_patch_dim(c) + EB_FREQ_DIM * D + D * D;
    mp->adaln = 6 * D * D;
    mp->attn = T * (3 * D * D + D * D) + 2 * T * T * D;
    mp->mlp = T * 2 * EB_MLP_RATIO * D * D;
    mp->final = 2 * D * D + T * D * c->patch_size * c->patch_size * eb_out_channels(c);
    mp->tokens = T;
    mp->colsum = (double)c->num_heads * T * T;
    mp->score = (double)c->num_heads * T;
}

int eb_partial_tokens(double ratio, int T) {
    int k = (int)(ratio * T);
    return k < T ? k : T;
}

void eb_toca_score_defaults(eb_toca_score *p) { *p = (eb_toca_score){.weight = 0.25, .fresh = 4, .bonus = 0.6, .grid = 2}; }

double eb_plan_step_macs(const eb_cache_plan *p, const eb_macs_parts *mp, int step, int policy_skip) {
    double macs = mp->embed + mp->final;
    if (policy_skip && p->policy.kind == EB_POLICY_TEACACHE) return macs + mp->adaln; /* block 0's probe */
    int last = policy_skip && p->policy.kind == EB_POLICY_FBCACHE ? p->policy.blocks : p->L;
    for (int b = 0; b < last; b++) {
        const eb_act *a = &p->act[((size_t)step * p->L + b) * 2];
        if (a[0].kind == EB_ACT_SKIP) continue;
        macs += mp->adaln;
        if (a[0].kind == EB_ACT_COMPUTE) macs += mp->attn + (p->colsum[b] ? mp->colsum : 0);
        if (a[1].kind == EB_ACT_COMPUTE) macs += mp->mlp;
        if (a[1].kind == EB_ACT_PARTIAL)
            macs += mp->mlp * eb_partial_tokens(p->ratio[(size_t)step * p->L + b], (int)mp->tokens) / mp->tokens + mp->score;
    }
    return macs;
}

double eb_cache_schedule_flops(const eb_cache_schedule *cs, const eb_config *c) {
    eb_cache_plan p;
    if (eb_cache_plan_build(&p, cs, c->depth, NULL)) return NAN;
    eb_macs_parts mp;
    eb_macs_split(&mp, c);
    double macs = 0;
    for (int k = 0; k < p.S; k++) macs += eb_plan_step_macs(&p, &mp, k, 0);
    double uncached = p.S * eb_forward_macs(c);
    eb_cache_plan_free(&p);
    return macs / uncached;
}

/* ------------------------------------------------------------------------ */
/* Generators                                                                */

eb_status eb_cache_schedule_new(eb_cache_schedule **out, const eb_schedule *s, const char *method,
                                const char *params) {
    char name[96];
    snprintf(name, sizeof name, "(%s table)", method);
    eb_cache_schedule *cs = schedule_alloc(name);
    *out = cs;
    if (!cs) return eb_fail(EB_ERUNTIME, "out of memory");
    snprintf(cs->method, sizeof cs->method, "%s", method);
    snprintf(cs->params, sizeof cs->params, "%s", params);
    cs->steps = s->S;
    return EB_OK;
}

eb_status eb_cache_schedule_add(eb_cache_schedule *cs, const eb_schedule *s, int step, int lo, int hi, eb_act attn,
                                eb_act mlp, double scale) {
    eb_sched_row r = {.step = step, .t = s->timestep[s->S - 1 - step], .lo = lo, .hi = hi, .attn = attn, .mlp = mlp,
                      .scale = scale};
    return push_row(cs, &r);
}

eb_status eb_cache_schedule_add_partial(eb_cache_schedule *cs, const eb_schedule *s, int step, int lo, int hi,
                                        eb_act attn, double ratio, double scale) {
    if (!(ratio >= 0 && ratio <= 1)) return eb_fail(EB_EINPUT, "%s: step %d: partial ratio %g outside [0, 1]", cs->name, step, ratio);
    eb_status st = eb_cache_schedule_add(cs, s, step, lo, hi, attn, (eb_act){EB_ACT_PARTIAL, 0}, scale);
    if (!st) cs->rows[cs->nrows - 1].ratio = ratio;
    return st;
}

static const eb_act ACT_C = {EB_ACT_COMPUTE, 0}, ACT_R = {EB_ACT_REUSE, 0}, ACT_S = {EB_ACT_SKIP, 0};

/* Frees a half-built table on failure. */
static eb_status finish(eb_cache_schedule **out, eb_status st) {
    if (st) {
        eb_cache_schedule_free(*out);
        *out = NULL;
    }
    return st;
}

eb_status eb_cache_schedule_fora(eb_cache_schedule **out, const eb_schedule *s, int interval) {
    if (interval < 1) return eb_fail(EB_EINPUT, "fora: interval %d must be >= 1", interval);
    char params[64];
    snprintf(params, sizeof params, "interval=%d", interval);
    eb_status st = eb_cache_schedule_new(out, s, "fora", params);
    for (int k = 0; !st && k < s->S; k++) {
        eb_act a = k % interval ? ACT_R : ACT_C;
        st = eb_cache_schedule_add(*out, s, k, 0, -1, a, a, 1.0);
    }
    return finish(out, st);
}

eb_status eb_cache_schedule_delta_dit(eb_cache_schedule **out, const eb_schedule *s, int depth, int interval,
                                      int blocks, int boundary) {
    if (interval < 1) return eb_fail(EB_EINPUT, "delta-dit: interval %d must be >= 1", interval);
    if (blocks < 1 || blocks > depth) return eb_fail(EB_EINPUT, "delta-dit: blocks %d outside [1, %d]", blocks, depth);
    if (boundary < 0 || boundary > s->S)
        return eb_fail(EB_EINPUT, "delta-dit: boundary step %d outside [0, %d]", boundary, s->S);
    char params[96];
    snprintf(params, sizeof params, "interval=%d blocks=%d boundary=%d depth=%d", interval, blocks, boundary, depth);
    eb_status st = eb_cache_schedule_new(out, s, "delta-dit", params);
    for (int k = 0; !st && k < s->S; k++) {
        st = eb_cache_schedule_add(*out, s, k, 0, -1, ACT_C, ACT_C, 1.0);
        if (st || k % interval == 0) continue;
        int lo = k < boundary ? depth - blocks : 0; /* rear blocks early, front blocks late */
        st = eb_cache_schedule_add(*out, s, k, lo, lo + blocks - 1, ACT_S, ACT_S, 1.0);
    }
    return finish(out, st);
}

static eb_status all_compute(eb_cache_schedule *cs, const eb_schedule *s) {
    eb_status st = EB_OK;
    for (int k = 0; !st && k < s->S; k++) st = eb_cache_schedule_add(cs, s, k, 0, -1, ACT_C, ACT_C, 1.0);
    return st;
}

eb_status eb_cache_schedule_teacache(eb_cache_schedule **out, const eb_schedule *s, double threshold,
                                     const double *poly, int npoly) {
    if (!(threshold > 0) || !isfinite(threshold))
        return eb_fail(EB_EINPUT, "teacache: threshold %g must be a positive number", threshold);
    if (npoly < 1 || npoly > EB_POLY_MAX)
        return eb_fail(EB_EINPUT, "teacache: %d polynomial coefficients (1 to %d)", npoly, EB_POLY_MAX);
    char params[64];
    snprintf(params, sizeof params, "threshold=%g", threshold);
    eb_status st = eb_cache_schedule_new(out, s, "teacache", params);
    if (!st) {
        eb_policy *p = &(*out)->policy;
        *p = (eb_policy){.kind = EB_POLICY_TEACACHE, .threshold = threshold, .npoly = npoly};
        memcpy(p->poly, poly, npoly * sizeof *poly);
        st = all_compute(*out, s);
    }
    return finish(out, st);
}

eb_status eb_cache_schedule_fbcache(eb_cache_schedule **out, const eb_schedule *s, double threshold, int blocks) {
    if (!(threshold > 0) || !isfinite(threshold))
        return eb_fail(EB_EINPUT, "fbcache: threshold %g must be a positive number", threshold);
    if (blocks < 1) return eb_fail(EB_EINPUT, "fbcache: blocks %d must be >= 1", blocks);
    char params[64];
    snprintf(params, sizeof params, "threshold=%g blocks=%d", threshold, blocks);
    eb_status st = eb_cache_schedule_new(out, s, "fbcache", params);
    if (!st) {
        (*out)->policy = (eb_policy){.kind = EB_POLICY_FBCACHE, .threshold = threshold, .blocks = blocks};
        st = all_compute(*out, s);
    }
    return finish(out, st);
}

eb_status eb_cache_schedule_taylorseer(eb_cache_schedule **out, const eb_schedule *s, int interval, int order,
                                       int warmup) {
    if (interval < 1) return eb_fail(EB_EINPUT, "taylorseer: interval %d must be >= 1", interval);
    if (order < 1 || order > 4) return eb_fail(EB_EINPUT, "taylorseer: order %d outside [1, 4]", order);
    if (warmup < 1) return eb_fail(EB_EINPUT, "taylorseer: warmup %d must be >= 1", warmup);
    char params[64];
    snprintf(params, sizeof params, "interval=%d order=%d warmup=%d", interval, order, warmup);
    eb_status st = eb_cache_schedule_new(out, s, "taylorseer", params);
    eb_act forecast = {EB_ACT_FORECAST, (uint8_t)order};
    for (int k = 0; !st && k < s->S; k++) {
        /* as the official cal_type: full for the warm-up, then every interval-th step */
        int full = k < warmup || (k - (warmup - 1)) % interval == 0;
        st = eb_cache_schedule_add(*out, s, k, 0, -1, full ? ACT_C : forecast, full ? ACT_C : forecast, 1.0);
    }
    return finish(out, st);
}

eb_status eb_cache_schedule_from_npy(eb_cache_schedule **out, const char *path, const eb_schedule *s, double delta) {
    *out = NULL;
    if (!(delta > 0) || !isfinite(delta)) return eb_fail(EB_EINPUT, "from-npy: delta %g must be a positive number", delta);
    int64_t *v, n;
    eb_status st = eb_npy_read_i64(path, &v, &n);
    if (st) return st;
    if (n != s->S) st = eb_fail(EB_EINPUT, "%s: holds %lld entries but the sampler runs %d steps", path, (long long)n, s->S);
    else if (v[n - 1] != 0)
        st = eb_fail(EB_EINPUT, "%s: entry %lld (the first step) is %lld: it reuses with nothing cached yet (must be 0)",
                     path, (long long)(n - 1), (long long)v[n - 1]);
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    char params[256], num[32];
    fmt_double(num, sizeof num, delta);
    snprintf(params, sizeof params, "table=%s delta=%s", base, num);
    if (!st) st = eb_cache_schedule_new(out, s, "eb-cache", params);
    for (int k = 0; !st && k < s->S; k++) {
        int64_t code = v[s->S - 1 - k]; /* indexed by the sampler's i, which runs S−1 → 0 */
        eb_act attn = code == 0 ? ACT_C : ACT_R, mlp = code == 2 ? ACT_R : ACT_C;
        st = eb_cache_schedule_add(*out, s, k, 0, -1, attn, mlp, delta);
    }
    free(v);
    return finish(out, st);
}

/* ------------------------------------------------------------------------ */
/* A strict .npy reader for int64 vectors (the header: npy.c).              */

#define NPY_MAX_BYTES (64 << 20)

eb_status eb_npy_read_i64(const char *path, int64_t **data, int64_t *n) {
    *data = NULL;
    char *text;
    size_t size;
    eb_status st = eb_read_file(path, NPY_MAX_BYTES, &text, &size);
    if (st) return st;
    const unsigned char *buf = (const unsigned char *)text;
    eb_npy_header h;
    st = eb_npy_parse_header(&h, buf, size, path);
    if (!st && h.dtype != EB_NPY_I64)
        st = eb_fail(EB_EINPUT, "%s: dtype '%s', expected '<i8' (little-endian int64)", path, eb_npy_dtype_name(h.dtype));
    if (!st && h.rank != 1) st = eb_fail(EB_EINPUT, "%s: shape must be (n,): a 1-D table", path);
    size_t body = st ? 0 : size - h.header_bytes;
    if (!st && body != h.data_bytes)
        st = eb_fail(EB_EINPUT, "%s: %zu data bytes for shape (%lld,), expected %llu (%s)", path, body, (long long)h.count,
                     (unsigned long long)h.data_bytes, body < h.data_bytes ? "truncated" : "trailing bytes");
    if (!st && h.count == 0) st = eb_fail(EB_EINPUT, "%s: the table is empty", path);
    if (!st && !(*data = malloc(h.data_bytes))) st = eb_fail(EB_ERUNTIME, "out of memory reading %s", path);
    if (!st) {
        const unsigned char *p = buf + h.header_bytes;
        for (int64_t i = 0; i < h.count; i++) {
            uint64_t u = 0;
            for (int b = 7; b >= 0; b--) u = u << 8 | p[i * 8 + b];
            (*data)[i] = (int64_t)u;
        }
        *n = h.count;
    }
    free(text);
    return st;
}

double eb_poly_eval(const double *poly, int npoly, double x) {
    double y = 0;
    for (int k = 0; k < npoly; k++) y = y * x + poly[k];
    return y;
}

int eb_teacache_skip(double *accumulated, double change, const eb_policy *p, int must_compute) {
    if (must_compute) {
        *accumulated = 0;
        return 0;
    }
    *accumulated += eb_poly_eval(p->poly, p->npoly, change);
    if (*accumulated < p->threshold) return 1;
    *accumulated = 0;
    return 0;
}

/* A module's action in the picture. */
static char act_char(eb_act a) {
    switch (a.kind) {
    case EB_ACT_COMPUTE: return 'C';
    case EB_ACT_REUSE: return 'R';
    case EB_ACT_FORECAST: return (char)('0' + a.order);
    case EB_ACT_PARTIAL: return 'P';
    default: return '-';
    }
}

eb_status eb_cache_schedule_describe(FILE *f, const eb_cache_schedule *cs, const eb_config *c, const char *path,
                                     const char *label) {
    eb_cache_plan p;
    eb_status st = eb_cache_plan_build(&p, cs, c->depth, NULL);
    if (st) return st;
    double flops = eb_cache_schedule_flops(cs, c);
    fprintf(f, "%s: %s%s%s%s, %d steps\n", path, cs->method[0] ? cs->method : "(no method)", cs->params[0] ? " (" : "",
            cs->params, cs->params[0] ? ")" : "", cs->steps);
    if (cs->sampler[0]) fprintf(f, "sampler: %s\n", cs->sampler);
    if (p.policy.kind == EB_POLICY_TEACACHE)
        fprintf(f, "policy: TeaCache, threshold %g: at run time whole steps may reuse the model's residual\n",
                p.policy.threshold);
    if (p.policy.kind == EB_POLICY_FBCACHE)
        fprintf(f, "policy: first-block cache, threshold %g: blocks %d.. may reuse their residual at run time\n",
                p.policy.threshold, p.policy.blocks);
    fprintf(f, "legend: C compute, R reuse, 1-4 Taylor forecast of that order, - skipped (cached residual)%s\n",
            p.partial ? ", P partial (ToCa: the best-scored tokens recomputed)" : "");
    const int L = c->depth, width = L > 9 ? L : 9; /* room for the "attention" heading */
    fprintf(f, "%5s %4s %8s  %-*s  %-*s  %s\n", "step", "t", "scale", width, "attention", width, "mlp", "MACs");
    eb_macs_parts mp;
    eb_macs_split(&mp, c);
    char attn[L + 1], mlp[L + 1];
    for (int k = 0, r = 0; k < p.S; k++) {
        while (cs->rows[r].step < k) r++; /* the step's first row */
        for (int b = 0; b < L; b++) {
            attn[b] = act_char(p.act[((size_t)k * L + b) * 2]);
            mlp[b] = act_char(p.act[((size_t)k * L + b) * 2 + 1]);
        }
        attn[L] = mlp[L] = 0;
        fprintf(f, "%5d %4d %8g  %-*s  %-*s  %5.1f%%\n", k, cs->rows[r].t, p.scale[k], width, attn, width, mlp,
                100 * eb_plan_step_macs(&p, &mp, k, 0) / eb_forward_macs(c));
    }
    fprintf(f, "predicted: %.1f%% of the uncached MACs on %s (%.2fx)%s\n", 100 * flops, label, 1 / flops,
            p.policy.kind != EB_POLICY_NONE ? ", before the policy's skips" : "");
    eb_cache_plan_free(&p);
    return EB_OK;
}
