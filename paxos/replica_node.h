/* replica_node.h — the rift-replica runtime: the pure px_replica inside a real process.
 *
 * The core (px_replica.h) never reads a clock or touches a socket; this module is
 * the caller it expects, mirroring what chaos/sim.c does in virtual time:
 *  - time: CLOCK_MONOTONIC in µs (rn_now_us), the clock the controller merges
 *    timelines with;
 *  - timers: the loop sleeps in ppoll() until px_replica_next_tick_us, then ticks;
 *  - storage: the file WAL (px_storage_file_open) with the configured durability,
 *    so a restart after SIGKILL recovers the acceptor state;
 *  - network: rift-stackd through rift_stack.h. The node listens on its own port
 *    and keeps one outgoing flow per peer (reconnecting with backoff after a reset
 *    or close); every px_msg is one transport message. A message to replica j
 *    leaves on the outgoing flow to j, and is dropped while that flow is not
 *    established (paxos retransmits). A message to a client leaves on the flow
 *    that client's last request arrived on. Sending never blocks: -EAGAIN from
 *    rs_send drops the message and counts it;
 *  - events: each px_event becomes one JSON line appended with write(2) (no stdio
 *    buffer, so a SIGKILL loses nothing already emitted);
 *  - control: a Unix socket speaking JSON lines (status, set, ping).
 *
 * If rift-stackd goes away the node keeps running (the core keeps its timers; its
 * sends are dropped and counted) and re-attaches with backoff. */
#ifndef REPLICA_NODE_H
#define REPLICA_NODE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "px_replica.h"
#include "replica_config.h"
#include "stack/rift_stack.h"

/* ---- event lines ----
 * {"t_us":T,"kind":"role","replica":0,"ballot":B,"index":I,"a":A,"b":B}
 * kind is px_event_kind_name(); t_us is CLOCK_MONOTONIC µs. Every other field is
 * a u64 written as a JSON integer; values above INT64_MAX (hashes, digests)
 * appear as their two's-complement negative, which is what jansson can hold:
 * read them back with (uint64_t)json_integer_value(). */
#define RN_EVENT_LINE_MAX 256
/* Format e as one line ending in '\n'. Returns its length, or -ENOSPC / -ENOMEM. */
int rn_event_format(const px_event *e, char *buf, size_t cap);
/* Parse one line (trailing newline optional) back into a px_event. 0 or -EINVAL. */
int rn_event_parse(const char *line, size_t len, px_event *out);

/* ---- counters (also in the status reply, under "net") ---- */
typedef struct rn_counters {
    uint64_t msgs_in, bytes_in, msgs_out, bytes_out;
    uint64_t drop_eagain;     /* rs_send said the channel is full */
    uint64_t drop_no_flow;    /* peer flow not established / client route unknown */
    uint64_t drop_detached;   /* no stack attached */
    uint64_t drop_oversize;   /* larger than the stack carries */
    uint64_t drop_error;      /* encode or other send error */
    uint64_t bad_msgs;        /* did not decode */
    uint64_t misrouted;       /* addressed to another node, or from an impossible sender */
    uint64_t connects, established, resets, accepted;
    uint64_t attaches, stack_losses;
    uint64_t events, event_write_errors;
    uint64_t ctl_lines, ctl_errors;
    uint64_t ticks;
} rn_counters;

typedef struct rn_node rn_node;

/* Build the node: open the WAL (recovering acceptor state into a new px_replica),
 * the event log and the control socket. Does not attach to the stack. NULL on
 * failure with err naming what failed (file and reason). */
rn_node *rn_node_new(const rn_config *cfg, uint64_t now_us, rn_error *err);
/* Flush the WAL, detach from the stack, close the control socket (and unlink it). */
void rn_node_free(rn_node *n);

/* One attach attempt: attach, listen on our port, start connecting to peers.
 * 0, or the negative errno of rs_attach / rs_listen (err says which). */
int rn_node_attach(rn_node *n, uint64_t now_us, rn_error *err);
/* Try rn_node_attach until it works or cfg.attach_timeout_ms passes (sleeping
 * between attempts; returns early if *stop becomes set). */
int rn_node_attach_wait(rn_node *n, volatile sig_atomic_t *stop, rn_error *err);

/* One loop round: wait at most max_wait_us (or less, for the next timer) for the
 * stack or control socket, handle what arrived, tick the core when due, retry
 * connections whose backoff elapsed. Returns 0 or a negative errno for a fatal error. */
int rn_node_step(rn_node *n, uint64_t max_wait_us);
/* rn_node_step until *stop is set. */
int rn_node_run(rn_node *n, volatile sig_atomic_t *stop);

/* Feed one stack event (what rn_node_step does with each rs_poll result). */
void rn_node_on_stack_event(rn_node *n, const rs_event *ev, uint64_t now_us);
/* Handle one control line; returns the reply line (no newline, heap: free it),
 * or NULL on allocation failure. Never fails on bad input: it answers
 * {"ok":false,"error":...}. */
char *rn_node_control(rn_node *n, const char *line, size_t len);

/* The flow a message addressed to `to` would leave on; 0 = none (it would be dropped). */
uint32_t rn_node_route(const rn_node *n, uint16_t to);
const rn_counters *rn_node_counters(const rn_node *n);
px_replica *rn_node_replica(rn_node *n);
/* Is the stack attached? */
bool rn_node_attached(const rn_node *n);

/* CLOCK_MONOTONIC in µs. */
uint64_t rn_now_us(void);

#endif
