/* sim.h — the deterministic simulator: N MultiPaxos replicas in one process.
 *
 * Virtual time in µs; one event queue (sim_queue.h) orders frame deliveries,
 * replica ticks, transport timers and user timers by (time, sequence number),
 * so a seed replays byte for byte. Each replica is the real px_replica over its
 * own in-memory storage (px_storage_mem) and its own PRNG stream forked from
 * the seed. Every message is encoded with px_msg_encode and decoded with
 * px_msg_decode at the receiver. Two network models carry it (net_model):
 *
 *  - SIM_NET_PACKET (the default): the real dataplane path. Every host — a
 *    replica, or the node an endpoint lives on — has a simulated NIC with an
 *    IPv4 address and a MAC and runs the real st_transport (sim_nic.h). A
 *    message goes on a reliable flow between the two hosts, is split into
 *    st_wire frames (st_wire_build), crosses the simulated link (FIFO per
 *    directed link, latency, jitter) and the shared fault model (st_impair,
 *    keyed per host as rift-stackd keys it per peer IPv4 address), and is
 *    parsed (st_wire_parse), acked, retransmitted and reassembled by the
 *    receiving transport. Flows that reset are reopened with backoff; messages
 *    lost meanwhile are Paxos's and the clients' to retransmit. A crash kills
 *    the replica process while its stack lives on (its flows are reset, SYNs
 *    refused); a power loss takes the stack too.
 *  - SIM_NET_MESSAGE: each message is one datagram through st_impair, latency
 *    and jitter (sim_net.h) — no transport, about 3x faster; for sweeps of
 *    the protocol alone (and, for now, scenario runs: see ch_sim_backend.c).
 *
 * Addresses: replicas 0..N-1; clients and other endpoints attach at
 * PX_CLIENT_BASE + i. Hosts in the packet model: replica i is host i; an
 * endpoint lives on the host of its link key (sim_link_key; by default its own
 * address), so every endpoint of one client node shares that node's NIC, IP
 * address and flows — exactly one impairment rule per directed host link.
 *
 * Callbacks (events, endpoint receive, timers) run inside sim_run_*. Fault
 * calls are fine from timers and endpoint callbacks; from inside a replica's own
 * callbacks (its events) they return -EBUSY — schedule them with a timer. */
#ifndef SIM_H
#define SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../paxos/px_replica.h"
#include "sim_net.h"
#include "sim_nic.h"

#define SIM_MAX_ENDPOINTS 4096u
#define SIM_MAX_HOSTS (PX_MAX_REPLICAS + SIM_MAX_ENDPOINTS)
#define SIM_PAUSE_QUEUE_MAX 10000u

typedef struct sim sim;

typedef enum sim_net_model {
    SIM_NET_MESSAGE = 0, /* one datagram per message (sim_net alone) */
    SIM_NET_PACKET,      /* messages over st_transport flows as st_wire frames */
} sim_net_model;
const char *sim_net_model_name(int m);       /* "message", "packet" */
int sim_net_model_parse(const char *s, uint8_t *out); /* -EINVAL if unknown */

typedef struct sim_config {
    uint8_t n_replicas;        /* 1..PX_MAX_REPLICAS; overrides paxos.n_replicas */
    uint64_t seed;
    px_config paxos;
    px_durability durability;
    sim_net_config net;
    uint8_t net_model;         /* sim_net_model */
    sim_nic_config nic;        /* packet model: transport config and reconnect backoff */
    uint32_t pause_queue_max;  /* messages a paused replica buffers; oldest dropped */
    /* Message budget: once more than this many messages were sent, sim_run_*
     * stop with -EOVERFLOW (a message storm ends the run, not the machine).
     * 0 = no budget. */
    uint64_t max_msgs;
} sim_config;

typedef struct sim_replica_status {
    px_status px;       /* all zero but id while down */
    bool down;          /* crashed, not restarted */
    bool paused;
    uint32_t queued;    /* frames waiting for a paused replica */
    uint64_t restarts;
} sim_replica_status;

/* Messages are px messages (sent: handed to the network by a replica or an
 * endpoint; delivered: handed to one). In the packet model a message is lost
 * (msgs_dropped) when no flow could take it, when its flow reset before the
 * peer had it all (not counted: the transport cannot tell), when it reaches a
 * dead or unknown receiver, or when a paused replica's queue overflows;
 * duplicates and tail drops happen to packets only. */
typedef struct sim_counters {
    uint64_t msgs_sent, msgs_delivered, msgs_dropped, msgs_duplicated;
    uint64_t msgs_overflow;  /* of the dropped: tail drops of a full network */
    uint64_t bytes_sent, bytes_delivered;
    uint64_t bad_frames;  /* frames that failed to parse or decode: always a bug */
    /* Frames on the wire (the message model's frames are its messages). */
    uint64_t pkts_sent, pkts_delivered, pkts_dropped, pkts_duplicated, pkts_overflow;
    /* Packet model, summed over every host's NIC and transport. */
    uint64_t msgs_no_flow;   /* of the dropped: no flow yet (reconnect backoff, handshake) */
    uint64_t flows_opened, flows_reset, retransmits, rtos;
    uint64_t ticks, events, crashes, restarts;
    uint64_t sent_by_type[PX_MSG_TYPE_MAX + 1]; /* messages handed to the net, by px_msg_type */
} sim_counters;

/* e->replica and e->time_us are the simulator's (replica id, virtual now). */
typedef void (*sim_event_fn)(void *ctx, const px_event *e);
/* m borrows the frame: valid only during the call. */
typedef void (*sim_recv_fn)(void *ctx, const px_msg *m, uint64_t now_us);
typedef void (*sim_timer_fn)(void *ctx, uint64_t now_us);

/* 3 replicas, quorum fd, fsync, 100 µs ± 20 µs, seed 1, packet model with
 * sim_nic_config_default. */
void sim_config_default(sim_config *c);

/* Start the cluster at t = 0. NULL on a bad config (-EINVAL) or allocation
 * failure (-ENOMEM), *err set. Free timers and workloads before the sim. */
sim *sim_new(const sim_config *c, int *err);
void sim_free(sim *s);

/* ---- time ---- */
/* Process every event due at or before t_us, then set now = t_us. Returns 0, a
 * sticky error (-ENOMEM, -ENOSPC, -EOVERFLOW: message budget spent; now stays
 * where it stopped), or -EBUSY when called re-entrantly. */
int sim_run_until(sim *s, uint64_t t_us);
int sim_run_for(sim *s, uint64_t dt_us);
uint64_t sim_now_us(const sim *s);
uint8_t sim_n_replicas(const sim *s);

/* ---- faults ---- */
/* Impairment rules over addresses (replica ids, client addresses); see st_impair.h. */
int sim_impair_add(sim *s, const st_impair_rule *r);
int sim_impair_remove(sim *s, int id);
void sim_impair_clear(sim *s);
st_impair *sim_impair(sim *s);
/* Convenience: cut src -> dst (one direction); returns the rule id. */
int sim_cut(sim *s, uint32_t src, uint32_t dst);
/* Cut every link between replicas in different groups (group[i] for replica i,
 * both directions). Returns the number of rules added or a negative errno. */
int sim_partition(sim *s, const uint8_t *group);
void sim_set_latency(sim *s, uint64_t latency_us, uint64_t jitter_us);
/* Rules match addr under key instead: map every client of a client node to one
 * key so a rule on that node covers them all. In the packet model the key also
 * names the endpoint's host (endpoints with one key share a NIC), so set it
 * before the endpoint attaches or sends (-EBUSY after), and never to a replica
 * id (-EINVAL). A replica's key re-keys its host. */
int sim_link_key(sim *s, uint32_t addr, uint32_t key);

/* Crash replica i: the process dies (power_loss: the machine too — only what
 * was fsynced survives); messages in flight to it are lost (packet model: its
 * stack resets its flows; with power_loss the stack dies silently and frames
 * in flight to it are lost). -EALREADY if down. */
int sim_crash(sim *s, int i, bool power_loss);
/* Start a crashed replica from its storage; a running one is rebooted (process
 * crash, then start). */
int sim_restart(sim *s, int i);
/* A paused replica neither ticks nor receives; frames arriving meanwhile wait
 * (bounded, oldest dropped) and are processed on resume. -ESRCH if down. */
int sim_pause(sim *s, int i);
int sim_resume(sim *s, int i);
/* px_config_set on the live replica, and on the config it restarts with. */
int sim_set_param(sim *s, int i, const char *name, const char *value);

/* ---- observation ---- */
void sim_on_event(sim *s, sim_event_fn fn, void *ctx);
int sim_status(const sim *s, int i, sim_replica_status *out);
/* The live, unpaused replica in the leader role with the highest ballot; -1. */
int sim_leader(const sim *s);
/* The replica's KV (NULL while down); valid until the replica next runs. */
const px_kv *sim_replica_kv(const sim *s, int i);
size_t sim_storage_records(const sim *s, int i);
void sim_counters_get(const sim *s, sim_counters *out);

/* Packet model: the host addr lives on. */
typedef struct sim_host_info {
    uint32_t host;        /* index: replica i is host i */
    uint32_t ip;          /* host byte order */
    uint8_t mac[ST_ETH_ADDR_LEN];
    uint32_t key;         /* impairment key */
    bool powered, app_up;
    sim_nic_counters nic;
    st_transport_stats transport; /* summed over power cycles */
} sim_host_info;
/* -ENOTSUP in the message model, -ENOENT when addr is on no host (yet). */
int sim_host_info_get(const sim *s, uint32_t addr, sim_host_info *out);
/* Packet model: the flow a message from addr to peer_addr would take now (cwnd,
 * RTT, RTO, queue). -ENOTCONN when there is none; errors as above. */
int sim_flow_info(const sim *s, uint32_t addr, uint32_t peer_addr, st_flow_info *out);
/* Hash folded over every event, delivery, fault and history record. */
uint64_t sim_hash(const sim *s);
void sim_hash_fold(sim *s, uint64_t x);

/* ---- endpoints (clients), timers, randomness ---- */
/* Receive messages addressed to addr (PX_CLIENT_BASE <= addr < +SIM_MAX_ENDPOINTS). */
int sim_attach(sim *s, uint32_t addr, sim_recv_fn fn, void *ctx);
void sim_detach(sim *s, uint32_t addr);
/* Encode m and send it from m->from to m->to. Packet model: 0 also when the
 * message was lost for want of a flow (counted); -ENOMEM, -EINVAL (m->from is
 * no endpoint address, or does not encode). */
int sim_send(sim *s, const px_msg *m);

typedef struct sim_timer sim_timer;
sim_timer *sim_timer_new(sim *s, sim_timer_fn fn, void *ctx);
/* (Re)arm to fire once at at_us (clamped to now). */
int sim_timer_set(sim_timer *t, uint64_t at_us);
void sim_timer_cancel(sim_timer *t);
bool sim_timer_armed(const sim_timer *t);
void sim_timer_free(sim_timer *t);

/* A PRNG stream derived from the seed and salt alone (not from call order). */
void sim_rng_fork(const sim *s, uint64_t salt, rift_rng *out);

#endif
