/* sim_queue.h — the simulator's event queue: a binary heap of intrusive nodes.
 *
 * Keyed by (time, sequence number): the sequence number is taken at every
 * (re)schedule, so two nodes due at the same µs fire in the order they were
 * scheduled and a seed replays exactly. Nodes are embedded in their owners
 * (frames, timers, replica ticks); the heap only holds pointers, and each node
 * knows its heap slot so it can be moved or cancelled in O(log n) — that is what
 * lets a replica keep exactly one pending tick. */
#ifndef SIM_QUEUE_H
#define SIM_QUEUE_H

#include <stdbool.h>
#include <stdint.h>

/* Hard bound on pending nodes: a runaway producer fails with -ENOSPC instead of
 * eating the machine. */
#define SIM_QUEUE_MAX (1u << 24)
#define SIM_QNODE_IDLE UINT32_MAX

typedef struct sim_qnode sim_qnode;
typedef void (*sim_fire_fn)(sim_qnode *n, uint64_t now_us);

struct sim_qnode {
    uint64_t at_us;
    uint64_t seq;
    uint32_t heap_idx; /* SIM_QNODE_IDLE when not queued */
    sim_fire_fn fire;
};

typedef struct sim_queue {
    sim_qnode **heap;
    uint32_t len, cap;
    uint64_t next_seq;
    uint64_t now_us;
} sim_queue;

static inline void sim_qnode_init(sim_qnode *n, sim_fire_fn fire)
{
    n->at_us = 0;
    n->seq = 0;
    n->heap_idx = SIM_QNODE_IDLE;
    n->fire = fire;
}

static inline bool sim_qnode_queued(const sim_qnode *n)
{
    return n->heap_idx != SIM_QNODE_IDLE;
}

int sim_queue_init(sim_queue *q);
void sim_queue_fini(sim_queue *q);

/* Schedule n at at_us (clamped to now), whether or not it is queued already.
 * -ENOSPC when the queue is full (n is then left unqueued). */
int sim_queue_set(sim_queue *q, sim_qnode *n, uint64_t at_us);
/* Unqueue n if queued. */
void sim_queue_cancel(sim_queue *q, sim_qnode *n);

/* Earliest due time, or UINT64_MAX when empty. */
static inline uint64_t sim_queue_peek_us(const sim_queue *q)
{
    return q->len ? q->heap[0]->at_us : UINT64_MAX;
}

/* Pop the earliest node if it is due at or before limit_us, advancing now_us to
 * its time; NULL otherwise (now_us untouched). The caller fires it. */
sim_qnode *sim_queue_pop(sim_queue *q, uint64_t limit_us);

#endif
