/* sim_nic.h — one simulated host's network side: a NIC, the real transport over
 * it, and the connection policy of a rift runtime.
 *
 * In the simulator's packet model (sim.h, SIM_NET_PACKET) every host — a
 * replica, or a client node carrying logical clients — owns one sim_nic:
 *  - an IPv4 address and a MAC derived from the host index (sim_nic_ip,
 *    sim_nic_mac); neighbours are static, so no ARP is simulated;
 *  - the real st_transport bound to that address, with its own PRNG stream;
 *  - frames: the transport's packets are built with st_wire_build, carried by
 *    sim_net between host indices (FIFO per directed link, then st_impair keyed
 *    by the hosts' impairment keys, latency, jitter) and parsed with
 *    st_wire_parse (MAC and IPv4 filter on) before st_transport_rx.
 *
 * Connection policy (what rift-replica and the workload do over rift_stack):
 *  - listening hosts (replicas) accept flows on SIM_NIC_PORT; client hosts only
 *    connect;
 *  - a message to a peer host goes on our own flow to it, else on the flow the
 *    peer opened to us, else on a new flow (only to a listening peer, and not
 *    before the reconnect backoff has passed). Without any, the message is lost
 *    (counted): Paxos and the clients retransmit, as they must over any network;
 *  - a flow that resets (max_rto_failures RTOs, an RST, a refused SYN) is
 *    forgotten together with whatever it still held; our next connect to that
 *    peer waits a backoff that doubles per failure (reconnect_min_us ..
 *    reconnect_max_us, jittered into [b/2, b]) and starts over once a flow is
 *    established; a second flow accepted from the same peer replaces (aborts)
 *    the first, which the peer has abandoned.
 *
 * The app (replica process) and the machine fail apart, as on the real backend
 * where rift-stackd outlives a killed rift-replica:
 *  - sim_nic_app_down: the process died; the stack aborts its flows (RST to the
 *    peers) and closes its port, so SYNs are refused; sim_nic_app_up reopens it;
 *  - sim_nic_power_off: the machine died; the transport vanishes without a word
 *    and the caller drops frames still in flight to it (sim_net_flush); the
 *    transport that sim_nic_power_on builds picks fresh flow ids, so stale
 *    packets of the old one are answered with RST.
 *
 * Time is the queue's now_us. The transport's timers are one event in that
 * queue per NIC. Whole messages come out through the deliver callback, called
 * from inside st_transport_rx: it must not call back into this NIC (the
 * simulator only queues the message there and processes it afterwards, as the
 * shared-memory channel to the app does). */
#ifndef SIM_NIC_H
#define SIM_NIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/rift_rng.h"
#include "../stack/st_transport.h"
#include "sim_net.h"
#include "sim_queue.h"

#define SIM_NIC_PORT 7000u
/* Host index i is 198.18.0.0 + 1 + i (RFC 2544's benchmarking range, /15). */
#define SIM_NIC_IP_BASE 0xc6120000u
#define SIM_NIC_MAX_HOSTS 65536u
/* Flow table sizes: a listening host may face every endpoint host the
 * simulator allows; a host that only connects needs one flow per replica. */
#define SIM_NIC_LISTEN_FLOWS 4160u
#define SIM_NIC_CLIENT_FLOWS 64u

typedef struct sim_nic sim_nic;

typedef struct sim_nic_config {
    st_config transport;
    uint64_t reconnect_min_us; /* first backoff after a flow failed */
    uint64_t reconnect_max_us; /* cap of the doubling */
} sim_nic_config;

typedef struct sim_nic_counters {
    uint64_t msgs_sent;      /* accepted by the transport */
    uint64_t msgs_no_flow;   /* lost: no flow, and none may be opened yet */
    uint64_t msgs_refused;   /* lost: the transport refused (queue bound, size, down) */
    uint64_t msgs_delivered; /* whole messages out of the transport */
    uint64_t connects, established, accepted, resets, closes;
    uint64_t frames_bad;     /* st_wire_parse or st_wire_build refused: a bug */
    uint64_t frames_nomem;   /* a frame could not be allocated: lost */
} sim_nic_counters;

typedef struct sim_nic_env {
    void *ctx;
    /* One whole message from peer host `from` (valid during the call only). */
    void (*deliver)(void *ctx, uint32_t host, const uint8_t *msg, size_t len, uint32_t from);
    /* The transport's timer may have moved: call sim_nic_sync(host's NIC)
     * before the queue runs on. Called once until that sync (a NIC touched many
     * times in one event recomputes its timer once: that scan is O(flows)). */
    void (*stale)(void *ctx, uint32_t host);
} sim_nic_env;

static inline uint32_t sim_nic_ip(uint32_t host)
{
    return SIM_NIC_IP_BASE + 1 + host;
}

/* The host index of ip, or -1 when ip is no simulated host's. */
static inline int64_t sim_nic_host_of(uint32_t ip)
{
    uint32_t off = ip - SIM_NIC_IP_BASE - 1;
    return off < SIM_NIC_MAX_HOSTS ? (int64_t)off : -1;
}

/* 02:72:66:hh:hh:hh — locally administered, "rf", then host + 1. */
void sim_nic_mac(uint32_t host, uint8_t mac[ST_ETH_ADDR_LEN]);

/* The transport's defaults but max_flows (SIM_NIC_LISTEN_FLOWS); reconnect
 * backoff 10 ms doubling up to 160 ms. */
void sim_nic_config_default(sim_nic_config *c);
/* -EINVAL (with a message naming the field) for a bad transport config or backoff. */
int sim_nic_config_check(const sim_nic_config *c, char *err, size_t errlen);

/* A powered, app-up NIC for host index `host` (< SIM_NIC_MAX_HOSTS and below
 * SIM_NET_EPOCH_SLOTS). listen: accept flows on SIM_NIC_PORT. net, q and the
 * config outlive it. NULL and *err (-EINVAL, -ENOMEM) on failure. */
sim_nic *sim_nic_new(sim_net *net, sim_queue *q, uint32_t host, bool listen, const sim_nic_config *c,
                     const rift_rng *rng, const sim_nic_env *env, int *err);
void sim_nic_free(sim_nic *n);

/* Queue one message for peer host `peer` under the policy above. may_connect:
 * the peer listens (a replica). 0, -ENOTCONN (no flow yet: lost), -ENETDOWN
 * (app down or power off), or the transport's refusal (-ENOBUFS, -EMSGSIZE,
 * -ENOMEM); every failure loses the message and is counted. */
int sim_nic_send(sim_nic *n, uint32_t peer, bool may_connect, const void *msg, size_t len);
/* One frame off the wire (borrowed). Dropped while powered off. Like every
 * call here but sim_nic_sync, it leaves the timer stale (env->stale). */
void sim_nic_input(sim_nic *n, const sim_frame *f);

/* Reschedule the transport's timer after env->stale. */
void sim_nic_sync(sim_nic *n);

void sim_nic_app_down(sim_nic *n);
int sim_nic_app_up(sim_nic *n);
void sim_nic_power_off(sim_nic *n);
int sim_nic_power_on(sim_nic *n);
bool sim_nic_powered(const sim_nic *n);
bool sim_nic_app_running(const sim_nic *n);

uint32_t sim_nic_host(const sim_nic *n);
void sim_nic_counters_get(const sim_nic *n, sim_nic_counters *out);
/* Transport statistics summed over every power cycle (gauges: the live transport's). */
void sim_nic_transport_stats(const sim_nic *n, st_transport_stats *out);
/* Flows the policy currently uses toward peer (0 = none), for tests. */
void sim_nic_flows(const sim_nic *n, uint32_t peer, uint32_t *out_flow, uint32_t *in_flow);
/* The transport's view of the flow a message to peer would take now.
 * -ENOTCONN when there is none, -ENETDOWN while powered off. */
int sim_nic_flow_info(const sim_nic *n, uint32_t peer, st_flow_info *out);

#endif
