/* st_transport.h — rift's reliable message transport as a pure state machine.
 *
 * One st_transport per local IPv4 address (one per rift-stackd, or per node in
 * the simulator). It listens on UDP ports and opens flows; each flow delivers
 * whole messages (up to cfg.max_msg_bytes, default 8 MiB) reliably and in order.
 *
 * Like the paxos core it never reads a clock, opens a socket, spawns a thread or
 * calls rand(): time (µs, non-decreasing) comes with every call, random numbers
 * (initial sequence numbers, flow id generations) from env->rng. Inputs are
 * st_transport_rx (a parsed packet), st_transport_tick (timers) and the app
 * calls below; outputs go through env callbacks: tx (a packet description: the
 * caller fills the Ethernet addresses and builds the frame with st_wire_build),
 * deliver (a complete message) and event (established, accepted, reset, closed).
 * Same inputs, same outputs.
 *
 * Mechanics (details in st_transport.c):
 *  - handshake SYN -> SYN|ACK -> ACK (or data); SYN and SYN|ACK retransmitted
 *    with the RTO; a SYN for a port nobody listens on, or any packet for an
 *    unknown flow, is answered with RST;
 *  - flow ids: each side picks its own (slot | generation << 16), never 0;
 *  - messages split into ST_WIRE_PAYLOAD_MAX fragments, one per packet; every
 *    packet (and the FIN) takes a sequence number; the receiver acks
 *    cumulatively plus a 64-bit SACK bitmap, every cfg.ack_every packets or
 *    after cfg.ack_delay_us, at once on reordering or duplicates;
 *  - loss: time-based detection (RACK, RFC 8985): a packet is lost once a
 *    packet sent after it was delivered and a reordering window has passed
 *    (0 while no reordering was seen and dupthresh packets are SACKed; else
 *    min_rtt / 4 or the reordering measured, up to srtt + 4 rttvar). It
 *    covers lost retransmissions too; dupthresh duplicate acks without SACK
 *    news still mark snd_una. RTO = max(srtt + 4 rttvar, rto_min), doubled per
 *    expiry after the first rto_linear ones, up to rto_max; any delivery
 *    (cumulative or SACK) ends the backoff, so the next RTO is recomputed
 *    from srtt/rttvar. Karn's rule for samples. After max_rto_failures
 *    consecutive expiries without any delivery the flow resets (event + RST
 *    to the peer);
 *  - spurious retransmissions are detected (the receiver reports a sequence
 *    it got twice — DSACK — in the msg_id of a packet without data; after an
 *    RTO, a packet sent before it is delivered without being resent); they
 *    widen the reordering window, time the original (Eifel) and undo the
 *    congestion response;
 *  - congestion window in packets: slow start, additive increase, halved once
 *    per loss episode but not below cwnd_min (random loss is not congestion on
 *    a LAN), 1 after an RTO; bounded by the peer's window and max_inflight.
 *    Mechanics and tuning: docs/transport.md;
 *  - close is graceful: everything queued is delivered, then a FIN; the peer
 *    sees ST_EV_CLOSED after the last message, lingers to re-ack a lost FIN,
 *    and drops whatever it had not yet sent. abort is immediate (RST).
 *  - everything is bounded: flows, listeners, queued messages and bytes per
 *    flow and in total, packets in flight, out-of-order packets (the receive
 *    window) and reassembly bytes (per flow: one message; in total: rx_mem_bytes).
 *    App calls refuse with an error code; a peer that exceeds a bound gets its
 *    packets dropped, and one that breaks the protocol gets its flow reset.
 *
 * Callbacks may call st_transport_send, _close and _abort (an echo server
 * replies from deliver), but never st_transport_free. */
#ifndef ST_TRANSPORT_H
#define ST_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/rift_rng.h"
#include "st_wire.h"

#define ST_TRANSPORT_MAX_LISTEN 64
#define ST_TRANSPORT_MAX_FLOWS 65535u

typedef struct st_config {
    uint32_t max_flows;          /* open flows, any state (default 256) */
    uint32_t max_msg_bytes;      /* largest message (default and cap: ST_WIRE_MSG_MAX) */
    uint32_t max_inflight;       /* packets sent and not acked per flow; caps cwnd */
    uint32_t rx_window;          /* packets; advertised; bounds out-of-order buffering */
    uint32_t tx_queue_msgs;      /* queued messages per flow (one slot kept for the FIN) */
    uint64_t tx_queue_bytes;     /* queued bytes per flow */
    uint64_t tx_mem_bytes;       /* queued bytes, all flows */
    uint64_t rx_mem_bytes;       /* reassembly + out-of-order bytes, all flows */
    uint32_t cwnd_init;          /* packets */
    uint32_t cwnd_min;           /* floor of ssthresh after a loss episode; 1..max_inflight */
    uint32_t rto_initial_us;     /* before the first RTT sample (and for the SYN) */
    uint32_t rto_min_us;
    uint32_t rto_max_us;
    uint32_t rto_linear;         /* expiries in a row at the base RTO before it doubles */
    uint32_t max_rto_failures;   /* consecutive expiries before the flow resets */
    uint32_t ack_delay_us;       /* delayed ack; must be below rto_min_us */
    uint32_t ack_every;          /* ack at once after this many in-order packets */
    uint32_t dupthresh;          /* SACKed-above count / duplicate acks for fast retransmit */
    uint32_t linger_us;          /* after the peer's FIN: re-ack it this long */
    uint16_t ephemeral_lo, ephemeral_hi; /* local ports for connect(local_port = 0) */
} st_config;

void st_config_default(st_config *c);
/* Check ranges; -EINVAL with a message naming the field. */
int st_config_check(const st_config *c, char *err, size_t errlen);

typedef enum st_event_kind {
    ST_EV_ESTABLISHED = 1, /* our connect completed */
    ST_EV_ACCEPTED,        /* a peer's connect to a listening port completed */
    ST_EV_RESET,           /* flow gone abnormally; reason: st_reset_reason */
    ST_EV_CLOSED,          /* flow gone gracefully; reason: st_close_reason */
} st_event_kind;
const char *st_event_kind_name(int k);

typedef enum st_reset_reason {
    ST_RESET_TIMEOUT = 1,  /* max_rto_failures consecutive RTOs (or handshake) */
    ST_RESET_PEER,         /* the peer sent RST */
    ST_RESET_REFUSED,      /* RST in answer to our SYN: nobody listens */
    ST_RESET_PROTOCOL,     /* the peer broke the protocol (bad ack, bad fragments) */
} st_reset_reason;
const char *st_reset_reason_name(int r);

typedef enum st_close_reason {
    ST_CLOSE_LOCAL = 1,    /* our close finished: the peer has everything */
    ST_CLOSE_PEER,         /* the peer closed; all its messages were delivered */
} st_close_reason;

typedef struct st_event {
    uint8_t kind;          /* st_event_kind */
    uint8_t reason;        /* st_reset_reason / st_close_reason, 0 otherwise */
    uint32_t flow;
    uint16_t local_port;
    uint32_t remote_ip;
    uint16_t remote_port;
    uint64_t time_us;
} st_event;

typedef struct st_env {
    void *ctx;
    /* One packet to send; p (and its payload) is valid only during the call.
     * Ethernet fields are zero: resolve the neighbour and st_wire_build. */
    void (*tx)(void *ctx, const st_pkt *p);
    /* One complete message, in order; msg is valid only during the call. */
    void (*deliver)(void *ctx, uint32_t flow, const uint8_t *msg, size_t len);
    void (*event)(void *ctx, const st_event *e);
    rift_rng *rng;         /* may be NULL: fixed ISNs and generations */
} st_env;

typedef enum st_flow_state {
    ST_FLOW_SYN_SENT = 1,
    ST_FLOW_SYN_RCVD,
    ST_FLOW_ESTABLISHED,
    ST_FLOW_LINGER,        /* peer closed; re-acking its FIN until linger_us */
} st_flow_state;

typedef struct st_flow_info {
    uint8_t state;         /* st_flow_state */
    bool closing;          /* our FIN is queued or in flight */
    uint16_t local_port, remote_port;
    uint32_t remote_ip, remote_flow;
    uint32_t cwnd, ssthresh, inflight, pipe, peer_window;
    uint64_t srtt_us, rttvar_us, rto_us;
    uint32_t rto_failures; /* consecutive */
    uint32_t tx_queued_msgs;
    uint64_t tx_queued_bytes;
    uint64_t rx_mem_bytes;
} st_flow_info;

typedef struct st_transport_stats {
    uint64_t rx_packets, tx_packets;
    uint64_t tx_data, tx_retransmits, tx_fast_retransmits, tx_acks, tx_rsts;
    uint64_t rtos;
    uint64_t spurious_rtos;     /* RTOs found spurious (cwnd restored) */
    uint64_t spurious_retransmits; /* retransmissions whose original arrived */
    uint64_t undos;             /* loss episodes undone as spurious */
    uint64_t rx_bad_header;     /* fields st_wire would reject */
    uint64_t rx_not_local;      /* IP destination is not ours */
    uint64_t rx_no_flow;        /* unknown flow id (answered with RST) */
    uint64_t rx_no_listener;    /* SYN for a closed port (answered with RST) */
    uint64_t rx_wrong_peer;     /* flow id known, address or peer id wrong */
    uint64_t rx_bad_state;      /* packet makes no sense in the flow's state */
    uint64_t rx_duplicate;
    uint64_t rx_out_of_window;
    uint64_t rx_no_mem;         /* dropped: rx_mem_bytes or malloc */
    uint64_t rx_syn_no_room;    /* SYN refused: max_flows */
    uint64_t msgs_sent;         /* fully acked by the peer */
    uint64_t msgs_delivered;
    uint64_t flows_opened, flows_reset, flows_closed;
    uint64_t protocol_errors;
    uint64_t flows_active;
    uint64_t tx_mem_bytes, rx_mem_bytes;
} st_transport_stats;

typedef struct st_transport st_transport;

/* NULL on allocation failure or bad config/env (*err = -ENOMEM / -EINVAL).
 * cfg and env are copied; env->rng must outlive the transport. */
st_transport *st_transport_new(const st_config *cfg, const st_env *env, uint32_t local_ip, int *err);
void st_transport_free(st_transport *t);

/* Accept flows on port. -EINVAL (port 0), -EADDRINUSE, -ENOSPC (too many). */
int st_transport_listen(st_transport *t, uint16_t port);
/* Stop accepting; existing flows stay. -ENOENT if not listening. */
int st_transport_unlisten(st_transport *t, uint16_t port);

/* Open a flow to ip:port from local_port (0 = next ephemeral port; a caller
 * that steers RSS picks its own). *flow is valid at once: send may queue before
 * ST_EV_ESTABLISHED. -EINVAL, -ENOSPC (max_flows), -ENOMEM. */
int st_transport_connect(st_transport *t, uint32_t ip, uint16_t port, uint16_t local_port,
                         uint64_t now_us, uint32_t *flow);
/* Queue one message (copied). -ENOENT unknown flow, -EPIPE after close,
 * -ENOTCONN peer closed, -EMSGSIZE above max_msg_bytes, -ENOBUFS a queue bound,
 * -ENOMEM. */
int st_transport_send(st_transport *t, uint32_t flow, const void *msg, size_t len, uint64_t now_us);
/* Graceful close: queued messages go first, then FIN; ST_EV_CLOSED when the
 * peer has it all. -ENOENT, -EPIPE when already closing. */
int st_transport_close(st_transport *t, uint32_t flow, uint64_t now_us);
/* Drop the flow now and RST the peer; no event. -ENOENT. */
int st_transport_abort(st_transport *t, uint32_t flow, uint64_t now_us);

/* One packet from the wire (normally st_wire_parse output; fields are checked
 * again, so any st_pkt is safe). */
void st_transport_rx(st_transport *t, const st_pkt *p, uint64_t now_us);
/* Run timers due at now_us. */
void st_transport_tick(st_transport *t, uint64_t now_us);
/* The earliest time a timer is due (UINT64_MAX: none); ticking earlier is harmless. */
uint64_t st_transport_next_tick_us(const st_transport *t);

/* -ENOENT for an unknown flow. */
int st_transport_flow_info(const st_transport *t, uint32_t flow, st_flow_info *out);
void st_transport_get_stats(const st_transport *t, st_transport_stats *out);

#endif
