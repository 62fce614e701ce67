/* slot_comm.c — the tests' communicator over a shared block (slot_comm.h). */
#include "tests/slot_comm.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>

struct slot_state {
    pthread_barrier_t barrier;
    int size;
    size_t slot, bytes;
    unsigned char slots[];
};

slot_state *slot_state_new(int size, size_t slot) {
    const size_t bytes = sizeof(slot_state) + (size_t)size * slot;
    slot_state *s = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(s, MAP_FAILED);
    pthread_barrierattr_t attr;
    pthread_barrierattr_init(&attr);
    pthread_barrierattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_barrier_init(&s->barrier, &attr, size);
    pthread_barrierattr_destroy(&attr);
    s->size = size, s->slot = slot, s->bytes = bytes;
    return s;
}

void slot_state_free(slot_state *s) {
    pthread_barrier_destroy(&s->barrier);
    munmap(s, s->bytes);
}

static unsigned char *slot_of(slot_state *s, int rank, size_t bytes) {
    cr_assert_leq(bytes, s->slot, "a collective of %zu bytes, slots of %zu", bytes, s->slot);
    return s->slots + (size_t)rank * s->slot;
}

static eb_status slot_allgather(const eb_comm *c, const void *mine, size_t bytes, void *all) {
    slot_state *s = c->impl;
    memcpy(slot_of(s, c->rank, bytes), mine, bytes);
    pthread_barrier_wait(&s->barrier);
    for (int r = 0; r < c->size; r++) memcpy((unsigned char *)all + r * bytes, slot_of(s, r, bytes), bytes);
    pthread_barrier_wait(&s->barrier);
    return EB_OK;
}

static eb_status slot_broadcast(const eb_comm *c, void *buf, size_t bytes, int root) {
    slot_state *s = c->impl;
    if (c->rank == root) memcpy(slot_of(s, root, bytes), buf, bytes);
    pthread_barrier_wait(&s->barrier);
    if (c->rank != root) memcpy(buf, slot_of(s, root, bytes), bytes);
    pthread_barrier_wait(&s->barrier);
    return EB_OK;
}

static eb_status slot_barrier(const eb_comm *c) {
    pthread_barrier_wait(&((slot_state *)c->impl)->barrier);
    return EB_OK;
}

eb_comm slot_comm(slot_state *s, int rank) {
    return (eb_comm){.rank = rank, .size = s->size, .local_rank = rank, .local_size = s->size, .impl = s,
                     .broadcast = slot_broadcast, .allgather = slot_allgather, .barrier = slot_barrier};
}
