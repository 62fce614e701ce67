/* comm_mpi.h — bin/ebcache's communicator: Open MPI's MPI_COMM_WORLD as an
 * eb_comm (runtime/comm.h). */
#ifndef EB_CLI_COMM_MPI_H
#define EB_CLI_COMM_MPI_H

#include "runtime/comm.h"

/* Under a launcher (mpirun, srun: its environment says so) MPI_Init, with
 * MPI_Finalize at exit: the process is one rank of the job, and each rank of
 * a node sees one GPU (CUDA_VISIBLE_DEVICES by node-local rank). Started
 * alone it stays one process on eb_comm_serial() without starting MPI. With
 * several ranks, SIGTERM / SIGINT remove this rank's temporary and part
 * files before it dies (mpirun stops every rank when one fails), and a
 * command that is not distributed yet (any but sample, record, decode,
 * features, eval and ablate) exits 2, rank 0 saying so. Rank 0 writes its stderr to the
 * launcher's when that is a terminal (mpirun gives the ranks pipes), so
 * that progress lines show. Call once, first thing in main, before any
 * thread starts. */
void eb_cli_comm_init(int *argc, char ***argv);

/* The job's communicator (eb_comm_serial() before eb_cli_comm_init). */
const eb_comm *eb_cli_comm(void);

/* ", on R ranks (merge S s)" for a job of several ranks, "" for one: the
 * tail of a command's summary line. A static buffer. */
const char *eb_cli_ranks_note(const eb_comm *c, double merge_seconds);

#endif
