/* fuzz_schedule.c — libFuzzer target for cache schedule tables (runtime/schedule.c).
 *
 * Each input is read as a table file (eb_cache_schedule_read, the path every
 * command takes), then expanded into the per-step plan for models of 1, 4 and
 * 28 blocks, with no sampler and with the sampler of its step count, and
 * costed step by step. A table that reads is written back and must read back
 * to the same rows (the writer and the parser agree). Any other outcome but a
 * crash or a sanitizer report is fine.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz_input.h"
#include "runtime/schedule.h"

static void plan_all_ways(const eb_cache_schedule *cs, const eb_schedule *s) {
    static const int depths[] = {1, 4, 28};
    eb_config c;
    if (eb_config_named(&c, "XL/2")) abort();
    for (int k = 0; k < 3; k++) {
        eb_cache_plan p;
        c.depth = depths[k];
        eb_macs_parts mp;
        eb_macs_split(&mp, &c);
        if (eb_cache_plan_build(&p, cs, depths[k], s)) continue;
        for (int step = 0; step < p.S; step++) eb_plan_step_macs(&p, &mp, step, step & 1);
        eb_cache_plan_free(&p);
    }
}

static int same_rows(const eb_cache_schedule *a, const eb_cache_schedule *b) {
    if (a->steps != b->steps || a->nrows != b->nrows || a->policy.kind != b->policy.kind) return 0;
    for (int i = 0; i < a->nrows; i++) {
        const eb_sched_row *x = &a->rows[i], *y = &b->rows[i];
        if (x->step != y->step || x->t != y->t || x->lo != y->lo || x->hi != y->hi || x->scale != y->scale ||
            memcmp(&x->attn, &y->attn, sizeof x->attn) || memcmp(&x->mlp, &y->mlp, sizeof x->mlp))
            return 0;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *bytes, size_t size) {
    eb_cache_schedule *cs, *again;
    if (eb_cache_schedule_read(&cs, fuzz_input_file("input.schedule", bytes, size))) return 0;
    plan_all_ways(cs, NULL);
    eb_schedule s;
    char respacing[16];
    snprintf(respacing, sizeof respacing, "%d", cs->steps);
    if (!eb_schedule_create(&s, respacing)) {
        plan_all_ways(cs, &s);
        eb_schedule_free(&s);
    }
    char out[128];
    fuzz_input_path(out, sizeof out, "written.schedule");
    if (eb_cache_schedule_write(cs, out) || eb_cache_schedule_read(&again, out)) abort();
    if (!same_rows(cs, again)) abort(); /* the writer and the parser disagree */
    eb_cache_schedule_free(again);
    eb_cache_schedule_free(cs);
    return 0;
}
