/* comm_mpi.c — the Open MPI communicator of bin/ebcache (comm_mpi.h). The
 * library stays MPI-free: only this file includes mpi.h. */
#include "cli/comm_mpi.h"

#include "runtime/h5io.h"
#include "runtime/h5parts.h"

#include <fcntl.h>
#include <limits.h>
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static eb_comm world;

static eb_status mpi_status(int rc, const char *what) {
    if (rc == MPI_SUCCESS) return EB_OK;
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, text, &len);
    return eb_fail(EB_ERUNTIME, "MPI_%s failed: %.*s", what, len, text);
}

static eb_status too_large(size_t bytes) {
    return eb_fail(EB_ERUNTIME, "%zu bytes in one collective (at most %d)", bytes, INT_MAX);
}

/* Waits for a nonblocking collective without keeping a core busy: a rank that waits for the others (a
 * slower shard, rank 0 timing an ablation's tables, the ranks of a scan before it) sleeps 0.2 ms between
 * tests instead of spinning, which on a shared or oversubscribed machine would slow the ranks that work. */
static eb_status wait_for(int rc, MPI_Request *req, const char *what) {
    int done = 0;
    while (rc == MPI_SUCCESS && (rc = MPI_Test(req, &done, MPI_STATUS_IGNORE)) == MPI_SUCCESS && !done)
        nanosleep(&(struct timespec){.tv_nsec = 200000}, NULL);
    return mpi_status(rc, what);
}

static eb_status mpi_broadcast(const eb_comm *c, void *buf, size_t bytes, int root) {
    if (bytes > INT_MAX) return too_large(bytes);
    MPI_Request req;
    return wait_for(MPI_Ibcast(buf, (int)bytes, MPI_BYTE, root, MPI_COMM_WORLD, &req), &req, "Ibcast");
}

static eb_status mpi_allgather(const eb_comm *c, const void *mine, size_t bytes, void *all) {
    if (bytes > INT_MAX) return too_large(bytes);
    MPI_Request req;
    return wait_for(MPI_Iallgather(mine, (int)bytes, MPI_BYTE, all, (int)bytes, MPI_BYTE, MPI_COMM_WORLD, &req), &req,
                    "Iallgather");
}

static eb_status mpi_barrier(const eb_comm *c) {
    MPI_Request req;
    return wait_for(MPI_Ibarrier(MPI_COMM_WORLD, &req), &req, "Ibarrier");
}

static void finalize(void) { MPI_Finalize(); }

static void on_signal(int sig) {
    eb_h5w_remove_temps();
    eb_parts_remove_temps();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Each rank of a node takes its own GPU, before the CUDA runtime starts (the backend uses the first visible
 * one): the local_rank-th of CUDA_VISIBLE_DEVICES's list, or GPU local_rank when the variable is unset. A
 * launcher's binding of one GPU per rank (a one-entry list) is kept. A rank beyond the GPUs sees none, so
 * --device cuda fails on it with the backend's "no CUDA device" message. */
static void pick_gpu(const eb_comm *c) {
    const char *visible = getenv("CUDA_VISIBLE_DEVICES");
    if (c->local_size < 2 || (visible && !strchr(visible, ','))) return;
    char id[256] = "";
    if (!visible) {
        snprintf(id, sizeof id, "%d", c->local_rank);
    } else {
        const char *p = visible;
        for (int k = 0; p && k < c->local_rank; k++) p = (p = strchr(p, ',')) ? p + 1 : NULL;
        if (p) snprintf(id, sizeof id, "%.*s", (int)strcspn(p, ","), p);
    }
    setenv("CUDA_VISIBLE_DEVICES", id, 1);
}

/* mpirun hands every rank a pipe for stderr, so a progress line (shown only on a terminal) would never show:
 * when rank 0's parent, the launcher that started it, writes its stderr to a terminal, rank 0 writes there
 * directly. srun's ranks are started by slurmstepd, whose stderr is no terminal: nothing changes. */
static void launcher_terminal(void) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/fd/2", (long)getppid());
    int fd = isatty(2) ? -1 : open(path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
    if (fd >= 0 && isatty(fd)) dup2(fd, 2);
    if (fd >= 0) close(fd);
}

void eb_cli_comm_init(int *argc, char ***argv) {
    /* Not started by a launcher (mpirun, srun, hydra): one process, the serial communicator, no MPI_Init.
     * An Open MPI singleton would give the same one rank for 0.4-0.6 s per start (24-150 ms isolated). */
    if (!getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMIX_RANK") && !getenv("PMI_RANK")) return;
    MPI_Init(argc, argv);
    atexit(finalize);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN); /* failures come back as eb_status */
    MPI_Comm local;
    world = (eb_comm){.broadcast = mpi_broadcast, .allgather = mpi_allgather, .barrier = mpi_barrier};
    MPI_Comm_rank(MPI_COMM_WORLD, &world.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world.size);
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, world.rank, MPI_INFO_NULL, &local);
    MPI_Comm_rank(local, &world.local_rank);
    MPI_Comm_size(local, &world.local_size);
    MPI_Comm_free(&local);
    pick_gpu(&world);
    /* a command that is not sharded yet would run whole on every rank, each rank writing the same output */
    const char *cmd = *argc > 1 ? (*argv)[1] : "";
    const char *const distributed[] = {"sample", "decode", "record", "features", "eval", "ablate"};
    int known = 0;
    for (size_t k = 0; k < sizeof distributed / sizeof distributed[0]; k++) known |= !strcmp(cmd, distributed[k]);
    if (world.size > 1 && !known) {
        if (world.rank == 0)
            fprintf(stderr, "ebcache %s: not distributed yet: run it as one process (under mpirun only sample, record, "
                            "decode, features, eval and ablate; docs/distributed.md)\n", cmd);
        exit(2);
    }
    if (world.rank == 0) launcher_terminal();
    if (world.size > 1) {
        struct sigaction sa = {.sa_handler = on_signal};
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
    }
}

const eb_comm *eb_cli_comm(void) { return world.size ? &world : eb_comm_serial(); }

const char *eb_cli_ranks_note(const eb_comm *c, double merge_seconds) {
    static char note[64];
    note[0] = 0;
    if (c->size > 1) snprintf(note, sizeof note, ", on %d ranks (merge %.3f s)", c->size, merge_seconds);
    return note;
}
