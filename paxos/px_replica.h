/* px_replica.h — a MultiPaxos replica as a pure state machine (MultiPaxos Made Complete).
 *
 * Inputs: a message (px_replica_recv) or a timer tick (px_replica_tick), each with
 * the current time from the caller. Outputs: messages handed to env->send, events
 * handed to env->event, and acceptor state written through env->storage (flushed
 * before any reply that depends on it). The replica never reads a clock, opens a
 * socket, spawns a thread or calls rand(): time comes with every call and random
 * numbers from env->rng. Same inputs, same outputs.
 *
 * Protocol summary (details in px_replica.c):
 *  - ballot = round << 8 | id; a follower that hears nothing from a leader for an
 *    election timeout prepares with a higher ballot;
 *  - the new leader merges promises, re-proposes every in-progress entry under its
 *    ballot and fills gaps with no-ops, then serves client commands (batched,
 *    pipelined);
 *  - COMMIT doubles as the heartbeat, carrying the leader's last_executed and the
 *    global last executed (gle = min last_executed of all replicas, advanced only
 *    when every peer has reported); every replica trims its log to gle, and its
 *    WAL to min(gle, its last checkpoint): every checkpoint_entries entries it
 *    writes the KV image with sessions to storage, so a replica — or a whole
 *    cluster — restarts from its own checkpoint plus WAL;
 *  - a replica behind the trimmed point (or restarted without state) gets a state
 *    transfer: KV image + sessions;
 *  - failure detector policies: naive, mpmc (adaptive interval), quorum (mpmc +
 *    check-quorum + leader stickiness). */
#ifndef PX_REPLICA_H
#define PX_REPLICA_H

#include <stdbool.h>
#include <stdint.h>

#include "../common/rift_rng.h"
#include "px_kv.h"
#include "px_msg.h"
#include "px_storage.h"

/* ---- ballots ---- */
#define PX_BALLOT_ROUND(b) ((b) >> 8)
#define PX_BALLOT_ID(b) ((uint8_t)((b) & 0xff))
#define PX_BALLOT_MAKE(round, id) (((uint64_t)(round) << 8) | (uint8_t)(id))

/* ---- configuration ---- */
typedef enum px_fd_policy {
    PX_FD_NAIVE = 0, /* fixed heartbeat, randomized election timeout */
    PX_FD_MPMC,      /* + the paper's adaptive interval */
    PX_FD_QUORUM,    /* + check-quorum and leader stickiness */
} px_fd_policy;

typedef struct px_config {
    uint8_t n_replicas;              /* 1..PX_MAX_REPLICAS */
    px_fd_policy fd;
    uint32_t heartbeat_us;           /* commit interval */
    uint32_t election_timeout_min_us;
    uint32_t election_timeout_max_us;
    /* mpmc: elections seen within adapt_window_us of each other double the
     * factor (up to adapt_max_factor); adapt_calm_us without one resets it. */
    uint32_t adapt_window_us;
    uint32_t adapt_calm_us;
    uint32_t adapt_max_factor;
    /* quorum: a leader that hears from no majority for check_quorum_us steps
     * down; a replica that heard from a live leader within the election timeout
     * rejects prepares from others (stickiness). 0 = election_timeout_max_us. */
    uint32_t check_quorum_us;
    /* batching / pipelining */
    uint32_t batch_max_cmds;         /* commands per log entry */
    uint32_t batch_max_bytes;
    uint32_t batch_delay_us;         /* 0 = propose at once */
    uint32_t pipeline_max;           /* in-progress entries the leader keeps in flight */
    uint32_t retransmit_us;          /* resend accepts / prepares not answered */
    uint32_t learn_max_entries;      /* per LEARN message to a lagging follower */
    uint32_t client_queue_max;       /* pending client commands at the leader */
    /* Durability of the state machine: once gle is checkpoint_entries past the
     * last checkpoint and checkpoint_bytes of log were executed since, write
     * the KV image to storage; the WAL is never trimmed past it. Larger =
     * fewer images, longer WAL (docs/durability.md). */
    uint32_t checkpoint_entries;
    uint32_t checkpoint_bytes;
} px_config;

void px_config_default(px_config *c);
/* Check ranges; -EINVAL with a message naming the field. */
int px_config_check(const px_config *c, char *err, size_t errlen);
/* Set one parameter by name ("heartbeat_ms", "election_timeout_min_ms",
 * "election_timeout_max_ms", "fd", "batch_max_cmds", ...). Values in ms where the
 * name says so. -ENOENT for an unknown name, -EINVAL for a bad value. */
int px_config_set(px_config *c, const char *name, const char *value);
/* Every parameter as (name, value) strings that px_config_set accepts back:
 * how a config crosses a process boundary (rift-replica's config file). */
void px_config_foreach(const px_config *c, void (*fn)(void *ctx, const char *name, const char *value), void *ctx);
const char *px_fd_policy_name(px_fd_policy p);
int px_fd_policy_parse(const char *s, px_fd_policy *out);

/* ---- events ---- */
typedef enum px_role { PX_FOLLOWER = 0, PX_CANDIDATE, PX_LEADER } px_role;
const char *px_role_name(px_role r);

typedef enum px_event_kind {
    PX_EV_ROLE = 1,          /* a = new role, b = old role */
    PX_EV_BALLOT,            /* ballot = new promised ballot */
    PX_EV_ELECTION_START,    /* ballot = proposed ballot */
    PX_EV_ELECTION_END,      /* ballot; a = 1 won, 0 lost/abandoned */
    PX_EV_COMMIT,            /* index committed (chosen) here */
    PX_EV_EXECUTE,           /* index; a = hash of the entry's bytes; b = rolling digest */
    PX_EV_TRIM,              /* index = new log base; a = entries left */
    PX_EV_SNAP_SEND,         /* index; a = peer */
    PX_EV_SNAP_INSTALL,      /* index; a = from */
    PX_EV_STEP_DOWN,         /* a = px_step_down_reason */
    PX_EV_FD_ADAPT,          /* a = new heartbeat µs, b = new election timeout max µs */
    PX_EV_GLE,               /* index = new gle */
    PX_EV_CHECKPOINT,        /* index = checkpoint written to storage; a = image bytes */
    PX_EV_KIND_MAX = PX_EV_CHECKPOINT
} px_event_kind;
const char *px_event_kind_name(int k);

typedef enum px_step_down_reason {
    PX_STEP_HIGHER_BALLOT = 1, /* saw a higher ballot (prepare, reject) */
    PX_STEP_NO_QUORUM,         /* check-quorum: no majority heard */
    PX_STEP_LAGGING,           /* candidate must catch up (state transfer) first */
} px_step_down_reason;
const char *px_step_down_reason_name(int r);

typedef struct px_event {
    uint8_t kind;
    uint8_t replica;
    uint64_t time_us;
    uint64_t ballot;
    uint64_t index;
    uint64_t a, b;
} px_event;

/* ---- the replica ---- */
typedef struct px_env {
    void *ctx;
    /* m is valid only during the call: copy or encode it. */
    void (*send)(void *ctx, const px_msg *m);
    void (*event)(void *ctx, const px_event *e);
    px_storage *storage;
    rift_rng *rng;
} px_env;

typedef struct px_status {
    uint8_t id;
    px_role role;
    uint64_t ballot;          /* promised */
    int leader;               /* believed leader id, -1 if none */
    uint64_t last_executed;
    uint64_t gle;
    uint64_t log_base;        /* trimmed up to here */
    uint64_t log_entries;     /* entries held above log_base */
    uint64_t digest;
    uint32_t heartbeat_us;    /* current (adapted) commit interval */
    uint32_t election_timeout_us;
    bool needs_snapshot;      /* behind the trimmed point, or restarted without a usable checkpoint */
    uint64_t checkpoint_index; /* newest checkpoint written or recovered (0: none) */
    uint64_t pending_cmds;    /* leader: client commands not yet proposed */
} px_status;

typedef struct px_replica px_replica;

/* Create replica `id`, recovering acceptor state from env->storage. The env is
 * copied; storage and rng must outlive the replica. NULL on allocation failure
 * or bad config (*err set to a negative errno). */
px_replica *px_replica_new(const px_config *cfg, uint8_t id, const px_env *env, uint64_t now_us, int *err);
void px_replica_free(px_replica *r);

void px_replica_recv(px_replica *r, const px_msg *m, uint64_t now_us);
void px_replica_tick(px_replica *r, uint64_t now_us);
/* The latest time the next tick is useful (timers); ticking earlier is harmless. */
uint64_t px_replica_next_tick_us(const px_replica *r);

void px_replica_status(const px_replica *r, px_status *out);
const px_kv *px_replica_kv(const px_replica *r);
/* Change a parameter on the live replica (px_config_set names). */
int px_replica_set_param(px_replica *r, const char *name, const char *value);

#endif
