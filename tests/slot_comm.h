/* slot_comm.h — ranks for the tests, without MPI: an eb_comm (runtime/comm.h)
 * over one shared block, a process-shared barrier and a slot per rank, for
 * threads or forked processes standing in for the ranks. */
#ifndef EB_TESTS_SLOT_COMM_H
#define EB_TESTS_SLOT_COMM_H

#include "runtime/comm.h"

typedef struct slot_state slot_state;

/* The block for `size` ranks and collectives of up to `slot` bytes per rank,
 * in shared anonymous memory, so that forked children share it too. */
slot_state *slot_state_new(int size, size_t slot);
void slot_state_free(slot_state *s);

/* Rank `rank`'s communicator over s (a collective of more than `slot` bytes
 * fails the test). */
eb_comm slot_comm(slot_state *s, int rank);

#endif
