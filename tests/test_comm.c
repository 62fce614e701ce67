/* test_comm.c — the communicator without MPI: shard ranges, the serial
 * communicator, the collectives run on threads standing in for ranks (the
 * agreed status names the failing rank; sums do not depend on the rank
 * count), and the part merge against a direct write (HDF5: same datasets
 * and attributes; .npz: the same bytes). tests/mpi/run.sh runs the real
 * Open MPI ranks (make test-mpi). */
#include "tests/cli_util.h"
#include "tests/slot_comm.h"
#include "runtime/comm.h"
#include "runtime/h5io.h"
#include "runtime/h5parts.h"
#include "runtime/npz.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

Test(comm, shard_ranges_cover_each_index_once_in_order) {
    const long ns[] = {0, 1, 7, 100};
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++)
        for (int size = 1; size <= 5; size++) {
            long next = 0, smallest = ns[k], largest = 0;
            for (int r = 0; r < size; r++) {
                long lo, hi;
                eb_shard_range(ns[k], r, size, &lo, &hi);
                cr_expect_eq(lo, next, "N %ld, %d ranks: rank %d starts at %ld, not %ld", ns[k], size, r, lo, next);
                cr_expect_geq(hi, lo);
                smallest = hi - lo < smallest ? hi - lo : smallest;
                largest = hi - lo > largest ? hi - lo : largest;
                next = hi;
            }
            cr_expect_eq(next, ns[k], "N %ld, %d ranks: the last range ends at %ld", ns[k], size, next);
            cr_expect_leq(largest - smallest, 1, "N %ld, %d ranks: sizes %ld..%ld", ns[k], size, smallest, largest);
        }
}

Test(comm, batch_shards_are_whole_batches_covering_each_row_once) {
    const long ns[] = {0, 1, 7, 100}, batches[] = {1, 2, 4, 32};
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++)
        for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++)
            for (int size = 1; size <= 5; size++) {
                long next = 0;
                for (int r = 0; r < size; r++) {
                    long lo, hi;
                    eb_shard_batches(ns[k], batches[b], r, size, &lo, &hi);
                    cr_expect(lo == next && hi >= lo, "N %ld, batch %ld, %d ranks: rank %d has [%ld, %ld) after %ld",
                              ns[k], batches[b], size, r, lo, hi, next);
                    cr_expect(lo % batches[b] == 0 || lo == ns[k], "rank %d starts inside a batch at %ld", r, lo);
                    next = hi;
                }
                cr_expect_eq(next, ns[k], "N %ld, batch %ld, %d ranks: ends at %ld", ns[k], batches[b], size, next);
            }
}

Test(comm, serial_communicator) {
    const eb_comm *c = eb_comm_serial();
    cr_expect(c->rank == 0 && c->size == 1 && c->local_rank == 0 && c->local_size == 1);
    cr_expect_eq(eb_comm_agree(c, EB_OK), EB_OK);
    eb_fail(EB_EINPUT, "in.h5: bad");
    cr_expect_eq(eb_comm_agree(c, EB_EINPUT), EB_EINPUT);
    cr_expect_str_eq(eb_last_error(), "in.h5: bad", "one rank: the message unchanged");
    int mine = 7, all = 0;
    cr_expect_eq(c->allgather(c, &mine, sizeof mine, &all), EB_OK);
    cr_expect_eq(all, 7);
    double items[3] = {0.1, 0.2, 0.3}, sum, v = 2.5;
    cr_expect_eq(eb_comm_sum_items(c, 3, 1, items, &sum), EB_OK);
    cr_expect_eq(sum, (0.1 + 0.2) + 0.3);
    cr_expect_eq(eb_comm_max(c, &v), EB_OK);
    cr_expect_eq(v, 2.5);
}

/* ------------------------------------------------------------------------ */
/* Ranks as threads: the collectives over shared slots (tests/slot_comm.h).  */

#define MAX_RANKS 5

#define ITEMS 37
static double item_value(long i, int j) { return 1.0 / (i + 3) + j * 1e-3 * i; } /* sums that round */

#define GATHER_BATCH 4
typedef struct {
    eb_comm comm;
    eb_status agreed;
    char message[256];
    double sum[2];
    double gathered[ITEMS][2]; /* every rank's rows of eb_shard_batches(ITEMS, GATHER_BATCH) */
    long progress_done;        /* the progress line's count after it ended                   */
    int progress_on;
} rank_result;

static void *rank_main(void *arg) {
    rank_result *r = arg;
    const eb_comm *c = &r->comm;
    /* ranks 1 and 3 fail (when they exist): everyone hears of rank 1 */
    eb_status st = c->rank == 1 || c->rank == 3 ? eb_fail(EB_EINPUT, "shard %d: bad row", c->rank) : EB_OK;
    r->agreed = eb_comm_agree(c, st);
    snprintf(r->message, sizeof r->message, "%s", eb_last_error());
    long lo, hi;
    eb_shard_range(ITEMS, c->rank, c->size, &lo, &hi);
    double mine[ITEMS][2];
    for (long i = lo; i < hi; i++)
        for (int j = 0; j < 2; j++) mine[i - lo][j] = item_value(i, j);
    cr_expect_eq(eb_comm_sum_items(c, ITEMS, 2, &mine[0][0], r->sum), EB_OK);
    /* whole batches of rows gathered in index order; this rank's rows sit in place in `gathered` */
    eb_shard_batches(ITEMS, GATHER_BATCH, c->rank, c->size, &lo, &hi);
    for (long i = lo; i < hi; i++)
        for (int j = 0; j < 2; j++) r->gathered[i][j] = item_value(i, j);
    cr_expect_eq(eb_comm_gather_batches(c, ITEMS, GATHER_BATCH, sizeof r->gathered[0], r->gathered[lo], r->gathered), EB_OK);
    /* the progress line: ranks add their batches (a different number of calls each), then end */
    eb_comm_progress pg;
    cr_expect_eq(eb_comm_progress_begin(&pg, c, "test", ITEMS, 1), EB_OK);
    r->progress_on = pg.on;
    for (long i = lo; i < hi; i += GATHER_BATCH)
        cr_expect_eq(eb_comm_progress_add(&pg, hi - i < GATHER_BATCH ? hi - i : GATHER_BATCH), EB_OK);
    cr_expect_eq(eb_comm_progress_end(&pg), EB_OK);
    r->progress_done = pg.done;
    return NULL;
}

/* Collectives of 1 to 5 ranks: the agreement names the lowest failing rank; the sum in index order has the
 * serial bits; the batch gather puts every row in place; the progress line (on: stderr is a terminal here)
 * counts every rank's rows, though the ranks call it a different number of times, and ends on every rank. */
Test(comm, collectives_agree_on_the_lowest_failing_rank_and_sum_in_index_order) {
    int master = posix_openpt(O_RDWR | O_NOCTTY), saved = dup(2);
    cr_assert(master >= 0 && !grantpt(master) && !unlockpt(master), "no pseudo-terminal");
    int slave = open(ptsname(master), O_RDWR | O_NOCTTY);
    cr_assert_geq(slave, 0);
    fcntl(master, F_SETFL, O_NONBLOCK);
    dup2(slave, 2);
    double serial[2] = {0, 0};
    for (long i = 0; i < ITEMS; i++)
        for (int j = 0; j < 2; j++) serial[j] += item_value(i, j);
    for (int size = 1; size <= MAX_RANKS; size++) {
        slot_state *s = slot_state_new(size, 2048);
        rank_result ranks[MAX_RANKS];
        pthread_t threads[MAX_RANKS];
        for (int r = 0; r < size; r++) {
            ranks[r] = (rank_result){.comm = slot_comm(s, r)};
            pthread_create(&threads[r], NULL, rank_main, &ranks[r]);
        }
        for (int r = 0; r < size; r++) pthread_join(threads[r], NULL);
        slot_state_free(s);
        char line[4096] = "", want[64];
        for (ssize_t got, used = 0; (got = read(master, line + used, sizeof line - 1 - used)) > 0;) used += got;
        snprintf(want, sizeof want, "test: %d/%d samples on %d rank%s", ITEMS, ITEMS, size, size == 1 ? "" : "s");
        cr_expect(strstr(line, want), "%d ranks: the progress line lacks '%s': %s", size, want, line);
        for (int r = 0; r < size; r++) {
            cr_expect_eq(ranks[r].agreed, size > 1 ? EB_EINPUT : EB_OK, "%d ranks, rank %d", size, r);
            if (size > 1) cr_expect_str_eq(ranks[r].message, "rank 1: shard 1: bad row", "%d ranks, rank %d", size, r);
            for (int j = 0; j < 2; j++)
                cr_expect_eq(ranks[r].sum[j], serial[j], "%d ranks, rank %d: sum %d is %.17g, serially %.17g", size, r,
                             j, ranks[r].sum[j], serial[j]);
            for (long i = 0; i < ITEMS; i++)
                for (int j = 0; j < 2; j++)
                    cr_expect_eq(ranks[r].gathered[i][j], item_value(i, j), "%d ranks, rank %d: row %ld", size, r, i);
            cr_expect(ranks[r].progress_on && ranks[r].progress_done == ITEMS, "%d ranks, rank %d: on %d, done %ld",
                      size, r, ranks[r].progress_on, ranks[r].progress_done);
        }
    }
    dup2(saved, 2);
    close(saved), close(slave), close(master);
}

/* ------------------------------------------------------------------------ */
/* The part merge                                                            */

#define ROWS 7
static const int cuts[] = {0, 3, 5, 5, 7}; /* four parts, the third empty */
#define PARTS 4

static void pattern(float x[ROWS][3], int32_t y[ROWS], double g[ROWS][2]) {
    for (int i = 0; i < ROWS; i++) {
        for (int j = 0; j < 3; j++) x[i][j] = 0.25f * i - j;
        y[i] = 10 * i;
        for (int j = 0; j < 2; j++) g[i][j] = 1.0 / (i + j + 1);
    }
}

/* Rows [lo, hi) of the pattern as an output file: x (rows, 3) f32, y (rows) i32, /g/z (rows, 2) f64, big
 * (rows, BIG) f32 (chunked and compressed where a part is large enough), scalar s, the root attributes
 * part 0 carries. */
#define BIG 30000
static void write_rows(const char *path, int lo, int hi) {
    float x[ROWS][3];
    int32_t y[ROWS];
    double g[ROWS][2], s = 4.5;
    pattern(x, y, g);
    float *big = malloc(sizeof(float) * ROWS * BIG);
    for (int i = 0; i < ROWS * BIG; i++) big[i] = (float)(i % 1000) - 0.5f;
    eb_h5w *w;
    cr_assert_eq(eb_h5w_create(&w, path), EB_OK, "%s", eb_last_error());
    eb_h5w_set_deflate(w, 1);
    eb_h5w_write(w, "big", EB_H5_F32, big + (size_t)lo * BIG, 2, (int64_t[]){hi - lo, BIG});
    free(big);
    eb_h5w_write(w, "x", EB_H5_F32, x[lo], 2, (int64_t[]){hi - lo, 3});
    eb_h5w_write(w, "y", EB_H5_I32, y + lo, 1, (int64_t[]){hi - lo});
    eb_h5w_write(w, "g/z", EB_H5_F64, g[lo], 2, (int64_t[]){hi - lo, 2});
    eb_h5w_write(w, "s", EB_H5_F64, &s, 0, NULL);
    eb_h5w_attr_str(w, NULL, "model", lo == 0 ? "tiny.safetensors" : "part");
    eb_h5w_attr_f64(w, NULL, "wall_seconds", lo == 0 ? 1.5 : 9);
    eb_h5w_attr_i64(w, "g", "k", 3);
    cr_assert_eq(eb_h5w_commit(w), EB_OK, "%s", eb_last_error());
}

static void part_names(char names[PARTS][512], const char *out) {
    for (int p = 0; p < PARTS; p++) cr_assert(eb_part_path(names[p], sizeof names[p], out, p, PARTS));
}

Test(comm, hdf5_part_merge_equals_a_direct_write, .init = cli_workdir_make, .fini = cli_workdir_remove) {
    char direct[512], out[512], names[PARTS][512];
    in_workdir(direct, "direct.h5");
    in_workdir(out, "merged.h5");
    part_names(names, out);
    cr_expect_str_eq(strrchr(names[2], '/'), "/merged.h5.part-2-of-4");
    write_rows(direct, 0, ROWS);
    for (int p = 0; p < PARTS; p++) write_rows(names[p], cuts[p], cuts[p + 1]);
    const char *parts[PARTS] = {names[0], names[1], names[2], names[3]};
    cr_assert_eq(eb_h5_merge_parts(out, parts, PARTS), EB_OK, "%s", eb_last_error());
    eb_h5 *a, *b;
    cr_assert_eq(eb_h5_open(&a, direct), EB_OK);
    cr_assert_eq(eb_h5_open(&b, out), EB_OK, "%s", eb_last_error());
    const struct { const char *name; eb_h5_type type; int rank; size_t bytes; } sets[] = {
        {"x", EB_H5_F32, 2, ROWS * 3 * 4}, {"y", EB_H5_I32, 1, ROWS * 4}, {"g/z", EB_H5_F64, 2, ROWS * 2 * 8},
        {"s", EB_H5_F64, 0, 8}, {"big", EB_H5_F32, 2, ROWS * BIG * 4}};
    for (size_t k = 0; k < sizeof sets / sizeof sets[0]; k++) {
        void *da, *db;
        int64_t ea[2], eb[2];
        cr_assert_eq(eb_h5_read(a, sets[k].name, sets[k].type, sets[k].rank, NULL, &da, ea, 0), EB_OK);
        cr_assert_eq(eb_h5_read(b, sets[k].name, sets[k].type, sets[k].rank, NULL, &db, eb, 0), EB_OK, "%s: %s",
                     sets[k].name, eb_last_error());
        for (int d = 0; d < sets[k].rank; d++) cr_expect_eq(ea[d], eb[d], "%s: extent %d", sets[k].name, d);
        cr_expect_eq(memcmp(da, db, sets[k].bytes), 0, "%s: the merged rows differ", sets[k].name);
        free(da), free(db);
    }
    char *model;
    double wall;
    int64_t kk;
    cr_expect_eq(eb_h5_attr_str(b, NULL, "model", &model), EB_OK);
    cr_expect_str_eq(model, "tiny.safetensors", "the root attributes are part 0's");
    cr_expect_eq(eb_h5_attr_f64(b, NULL, "wall_seconds", &wall), EB_OK);
    cr_expect_eq(wall, 1.5);
    cr_expect_eq(eb_h5_attr_i64(b, "g", "k", &kk), EB_OK, "a group's attributes");
    cr_expect_eq(kk, 3);
    free(model);
    eb_h5_close(a);
    eb_h5_close(b);

    /* a part whose rows have another width: refused, naming it; nothing at the output's place */
    unlink(out);
    eb_h5w *w;
    cr_assert_eq(eb_h5w_create(&w, names[1]), EB_OK);
    float *row = calloc(BIG, sizeof(float));
    eb_h5w_write(w, "big", EB_H5_F32, row, 2, (int64_t[]){1, BIG});
    free(row);
    eb_h5w_write(w, "g/z", EB_H5_F64, (double[3]){0}, 2, (int64_t[]){1, 3});
    cr_assert_eq(eb_h5w_commit(w), EB_OK);
    cr_expect_eq(eb_h5_merge_parts(out, parts, PARTS), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "merged.h5.part-1-of-4: dataset 'g/z' differs in type or shape"), "%s",
              eb_last_error());
    cr_expect_neq(access(out, F_OK), 0, "no merged file");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "ls %s | grep -c tmp >/dev/null", workdir);
    cr_expect_neq(system(cmd), 0, "no temporary file left");
}

static void write_npz_rows(const char *path, int lo, int hi) {
    uint8_t img[ROWS][2][3];
    for (int i = 0; i < ROWS; i++)
        for (int j = 0; j < 6; j++) img[i][j / 3][j % 3] = (uint8_t)(i * 37 + j);
    eb_npz_writer *w;
    cr_assert_eq(eb_npz_create(&w, path), EB_OK);
    cr_assert_eq(eb_npz_write_array(w, "arr_0", EB_NPY_U8, 3, (int64_t[]){hi - lo, 2, 3}, img[lo]), EB_OK);
    cr_assert_eq(eb_npz_close(w), EB_OK, "%s", eb_last_error());
}

Test(comm, npz_part_merge_gives_the_direct_bytes, .init = cli_workdir_make, .fini = cli_workdir_remove) {
    char direct[512], out[512], names[PARTS][512], cmd[2048];
    in_workdir(direct, "direct.npz");
    in_workdir(out, "merged.npz");
    part_names(names, out);
    write_npz_rows(direct, 0, ROWS);
    for (int p = 0; p < PARTS; p++) write_npz_rows(names[p], cuts[p], cuts[p + 1]);
    const char *parts[PARTS] = {names[0], names[1], names[2], names[3]};
    cr_assert_eq(eb_npz_merge_parts(out, parts, PARTS, (const char *[]){"arr_0", NULL}), EB_OK, "%s",
                 eb_last_error());
    snprintf(cmd, sizeof cmd, "cmp -s %s %s", direct, out);
    cr_expect_eq(system(cmd), 0, "the merged archive differs from the direct one");
    unlink(out);
    cr_expect_eq(eb_npz_merge_parts(out, parts, PARTS, (const char *[]){"mu", NULL}), EB_EINPUT);
    cr_expect(strstr(eb_last_error(), "mu"), "%s", eb_last_error());
    cr_expect_neq(access(out, F_OK), 0, "no merged file");
}

Test(comm, one_rank_writes_the_output_itself) {
    const char *target;
    cr_expect_eq(eb_parts_target(eb_comm_serial(), "out.h5", &target), EB_OK);
    cr_expect_str_eq(target, "out.h5");
    cr_expect_eq(eb_parts_finish(eb_comm_serial(), "out.h5", NULL, EB_EINPUT, NULL), EB_EINPUT);
}
