/* sim_net.h — the simulated network: frames between 32-bit addresses in virtual time.
 *
 * This is the seam a simulated NIC (sim_nic.h) plugs into: it knows nothing about
 * Paxos or Ethernet, only opaque frames from one address to another. Every frame
 * goes through the shared fault model (stack/st_impair.h, decided per directed
 * link key(src) -> key(dst) with the net's own PRNG) and then a base one-way
 * latency with uniform jitter; the impairment's own delay adds on top. Delivery
 * is an event in the simulator's queue (sim_queue.h), so deliveries, ticks and
 * timers share one total order.
 *
 * Addresses are whatever the caller uses: px node addresses in the simulator's
 * message model, host indices in its packet model. sim_net_send_link keeps a
 * directed link FIFO (a cable does not reorder; jitter only stretches gaps),
 * while the impairment's delay may still reorder, as netem's does.
 *
 * Frames come from a free list (no malloc per message in steady state). A frame
 * handed to sim_net_send belongs to the net; a delivered frame belongs to the
 * deliver callback, which must give it back with sim_net_frame_free (or keep it,
 * e.g. in a paused node's receive queue, and free it later). */
#ifndef SIM_NET_H
#define SIM_NET_H

#include <stddef.h>
#include <stdint.h>

#include "../common/rift_rng.h"
#include "../stack/st_impair.h"
#include "sim_queue.h"

/* Addresses below this can be flushed (crash: drop what is in flight to it) and
 * re-keyed; it covers every px address the simulator hands out (replicas,
 * PX_CLIENT_BASE + 4096 endpoints) and every host index. */
#define SIM_NET_EPOCH_SLOTS 8192u
/* Frames are recycled in two size classes (most Paxos messages fit the small
 * one, a batched ACCEPT the large one); bigger frames (state transfers) go back
 * to malloc. Each free list keeps at most SIM_NET_FREE_MAX frames. */
#define SIM_NET_FREE_MAX 65536u
#define SIM_NET_CLASS_SMALL 256u
#define SIM_NET_CLASS_LARGE 4096u
/* Frames in flight at once; beyond this the net tail-drops, as a full switch
 * queue would, so a message storm costs drops instead of the host's memory. */
#define SIM_NET_MAX_IN_FLIGHT (1u << 20)

typedef struct sim_net sim_net;

typedef struct sim_frame {
    sim_qnode q;            /* the delivery event */
    sim_net *net;
    struct sim_frame *next; /* free list, or the owner's FIFO after delivery */
    uint32_t src, dst;
    uint32_t epoch;         /* dst's epoch at send: stale after a flush */
    uint32_t len, cap;
    uint32_t slot;          /* the net's bookkeeping */
    uint8_t data[];
} sim_frame;

typedef struct sim_net_config {
    uint64_t latency_us; /* base one-way latency */
    uint64_t jitter_us;  /* uniform +- around the base */
} sim_net_config;

typedef struct sim_net_counters {
    uint64_t sent;       /* frames handed to the net */
    uint64_t delivered;  /* frames handed to the deliver callback */
    uint64_t dropped;    /* impairment drops, flushed frames, sim_net_drop(), tail drops */
    uint64_t overflow;   /* of which tail drops (SIM_NET_MAX_IN_FLIGHT) */
    uint64_t duplicated; /* extra copies the impairment made */
    uint64_t bytes_sent, bytes_delivered;
} sim_net_counters;

typedef void (*sim_net_deliver_fn)(void *ctx, sim_frame *f, uint64_t now_us);

void sim_net_config_default(sim_net_config *c);

/* NULL on allocation failure. q must outlive the net. */
sim_net *sim_net_new(sim_queue *q, const sim_net_config *c, const rift_rng *rng,
                     sim_net_deliver_fn deliver, void *ctx);
/* Frames still queued must have been cancelled by tearing down the queue first
 * or are simply released here: the net owns every frame it allocated. */
void sim_net_free(sim_net *net);

/* A frame with room for len bytes (f->len = len); NULL on allocation failure. */
sim_frame *sim_net_frame_alloc(sim_net *net, size_t len);
void sim_net_frame_free(sim_net *net, sim_frame *f);
/* Release a frame that will not be delivered, counting it as dropped. */
void sim_net_drop(sim_net *net, sim_frame *f);

/* Send f (f->len bytes) from src to dst; the net takes f in every case.
 * Returns 0 (sent, delayed or dropped by the impairment) or -ENOMEM/-ENOSPC. */
int sim_net_send(sim_net *net, sim_frame *f, uint32_t src, uint32_t dst);
/* As sim_net_send, but the frame never arrives before the last frame sent with
 * the same *link_last_us (the link's latest base arrival time, updated here):
 * the base latency keeps the link FIFO; impairment delays come on top. */
int sim_net_send_link(sim_net *net, sim_frame *f, uint32_t src, uint32_t dst, uint64_t *link_last_us);
/* Copying convenience over sim_net_send. */
int sim_net_send_bytes(sim_net *net, uint32_t src, uint32_t dst, const void *data, size_t len);

/* Frames in flight to addr are dropped when they arrive (a crashed host's
 * packets die with its socket buffers). -EINVAL for addr >= SIM_NET_EPOCH_SLOTS. */
int sim_net_flush(sim_net *net, uint32_t addr);

/* Impairment rules see addr as key (default: the address itself), so one rule
 * can cover several addresses — e.g. every logical client on one client node.
 * -EINVAL for addr >= SIM_NET_EPOCH_SLOTS. */
int sim_net_set_link_key(sim_net *net, uint32_t addr, uint32_t key);

st_impair *sim_net_impair(sim_net *net);
void sim_net_set_latency(sim_net *net, uint64_t latency_us, uint64_t jitter_us);
void sim_net_counters_get(const sim_net *net, sim_net_counters *out);
/* Frames currently in flight (queued for delivery). */
uint64_t sim_net_in_flight(const sim_net *net);

#endif
