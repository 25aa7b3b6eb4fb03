/* sim_queue.c — binary min-heap over (at_us, seq) with slot tracking. */
#include "sim_queue.h"

#include <errno.h>
#include <stdlib.h>

#define SIM_QUEUE_INIT_CAP 4096u

static inline bool sim_qnode_before(const sim_qnode *a, const sim_qnode *b)
{
    return a->at_us < b->at_us || (a->at_us == b->at_us && a->seq < b->seq);
}

static inline void sim_heap_put(sim_queue *q, uint32_t i, sim_qnode *n)
{
    q->heap[i] = n;
    n->heap_idx = i;
}

static void sim_sift_up(sim_queue *q, uint32_t i)
{
    sim_qnode *n = q->heap[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!sim_qnode_before(n, q->heap[parent]))
            break;
        sim_heap_put(q, i, q->heap[parent]);
        i = parent;
    }
    sim_heap_put(q, i, n);
}

static void sim_sift_down(sim_queue *q, uint32_t i)
{
    sim_qnode *n = q->heap[i];
    for (;;) {
        uint32_t child = 2 * i + 1;
        if (child >= q->len)
            break;
        if (child + 1 < q->len && sim_qnode_before(q->heap[child + 1], q->heap[child]))
            child++;
        if (!sim_qnode_before(q->heap[child], n))
            break;
        sim_heap_put(q, i, q->heap[child]);
        i = child;
    }
    sim_heap_put(q, i, n);
}

int sim_queue_init(sim_queue *q)
{
    q->heap = malloc(SIM_QUEUE_INIT_CAP * sizeof(*q->heap));
    if (!q->heap)
        return -ENOMEM;
    q->len = 0;
    q->cap = SIM_QUEUE_INIT_CAP;
    q->next_seq = 0;
    q->now_us = 0;
    return 0;
}

void sim_queue_fini(sim_queue *q)
{
    /* Nodes belong to their owners; only mark them unqueued. */
    for (uint32_t i = 0; i < q->len; i++)
        q->heap[i]->heap_idx = SIM_QNODE_IDLE;
    free(q->heap);
    q->heap = NULL;
    q->len = q->cap = 0;
}

static int sim_queue_grow(sim_queue *q)
{
    if (q->cap >= SIM_QUEUE_MAX)
        return -ENOSPC;
    uint32_t cap = q->cap * 2;
    sim_qnode **h = realloc(q->heap, (size_t)cap * sizeof(*h));
    if (!h)
        return -ENOMEM;
    q->heap = h;
    q->cap = cap;
    return 0;
}

int sim_queue_set(sim_queue *q, sim_qnode *n, uint64_t at_us)
{
    uint64_t old_at = n->at_us;
    n->at_us = at_us < q->now_us ? q->now_us : at_us;
    n->seq = q->next_seq++;
    if (sim_qnode_queued(n)) {
        /* A later (or equal) key only ever moves down, an earlier one up. */
        if (n->at_us < old_at)
            sim_sift_up(q, n->heap_idx);
        else
            sim_sift_down(q, n->heap_idx);
        return 0;
    }
    if (q->len == q->cap) {
        int rc = sim_queue_grow(q);
        if (rc < 0)
            return rc;
    }
    sim_heap_put(q, q->len++, n);
    sim_sift_up(q, n->heap_idx);
    return 0;
}

void sim_queue_cancel(sim_queue *q, sim_qnode *n)
{
    if (!sim_qnode_queued(n))
        return;
    uint32_t i = n->heap_idx;
    n->heap_idx = SIM_QNODE_IDLE;
    q->len--;
    if (i == q->len)
        return;
    sim_qnode *moved = q->heap[q->len];
    sim_heap_put(q, i, moved);
    sim_sift_up(q, i);
    sim_sift_down(q, moved->heap_idx);
}

sim_qnode *sim_queue_pop(sim_queue *q, uint64_t limit_us)
{
    if (q->len == 0 || q->heap[0]->at_us > limit_us)
        return NULL;
    sim_qnode *n = q->heap[0];
    q->len--;
    n->heap_idx = SIM_QNODE_IDLE;
    if (q->len > 0) {
        sim_heap_put(q, 0, q->heap[q->len]);
        sim_sift_down(q, 0);
    }
    q->now_us = n->at_us;
    return n;
}
