/* px_replica.c — MultiPaxos replica core (see px_replica.h for the contract).
 *
 * Structure: handlers per message type at the bottom call small helpers above
 * them. Every handler follows the same order: update state, write acceptor state
 * to storage, flush (persist_before_send), then send. */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "px_replica.h"

enum slot_state { SLOT_EMPTY = 0, SLOT_IN_PROGRESS, SLOT_COMMITTED, SLOT_EXECUTED };

typedef struct slot {
    uint64_t ballot;
    uint8_t state;
    uint8_t *value;
    uint32_t len;
    uint16_t acks;     /* leader: replicas that accepted (ballot == r->ballot) */
    uint64_t sent_us;  /* leader: when the accept last went out */
} slot;

/* client id -> the node its requests came from, so the leader can reply. */
typedef struct route {
    uint64_t client_id;
    uint16_t node;
} route;

struct px_replica {
    px_config cfg;
    px_env env;
    uint8_t id;
    uint64_t now;

    px_role role;
    uint64_t ballot;         /* promised (and, as leader/candidate, our own) */
    int leader;              /* believed leader, -1 = unknown */

    /* Log: a ring of `cap` slots holding indices (base, base + cap]. */
    slot *slots;
    uint64_t cap;
    uint64_t base;           /* trimmed up to here */
    uint64_t end;            /* highest index held (>= base) */
    uint64_t last_executed;
    uint64_t gle;
    px_kv *kv;
    bool needs_snapshot;

    /* Durability of the state machine (docs/durability.md): the WAL is trimmed
     * to min(gle, ckpt_index), never past the newest checkpoint. */
    uint64_t ckpt_index;     /* newest checkpoint handed to storage */
    uint64_t ckpt_tried;     /* last_executed at the last attempt (failures back off) */
    uint64_t exec_bytes;     /* log bytes executed, in all */
    uint64_t ckpt_exec_bytes; /* exec_bytes when the newest image was taken */
    uint64_t wal_trimmed;    /* trim point handed to storage */

    /* failure detector */
    uint64_t heard_leader_us;
    uint64_t timeout_us;     /* current randomized election timeout */
    uint64_t election_started_us;
    uint32_t factor;         /* mpmc adaptive multiplier */
    uint64_t last_election_us;
    bool seen_election;

    /* candidate */
    uint16_t promised_by;
    uint64_t prepare_sent_us;

    /* leader */
    uint64_t next_index;
    uint64_t next_heartbeat_us;
    uint64_t peer_le[PX_MAX_REPLICAS];
    uint16_t peer_reported;
    uint64_t peer_heard_us[PX_MAX_REPLICAS];
    uint64_t snap_sent_us[PX_MAX_REPLICAS];
    uint64_t learn_sent_us[PX_MAX_REPLICAS];
    uint64_t learn_hi[PX_MAX_REPLICAS]; /* last index of the LEARN in flight */
    uint64_t snap_req_us;
    px_batch_builder batch;
    uint64_t batch_first_us;

    route *routes;
    uint64_t routes_cap, routes_len;

    bool dirty; /* storage written since the last flush */
};

/* ---------- small helpers ---------- */

static int majority(const px_replica *r) { return r->cfg.n_replicas / 2 + 1; }

static int popcount16(uint16_t x) { return __builtin_popcount(x); }

static void emit(px_replica *r, uint8_t kind, uint64_t index, uint64_t a, uint64_t b)
{
    if (!r->env.event)
        return;
    px_event e = {.kind = kind, .replica = r->id, .time_us = r->now, .ballot = r->ballot,
                  .index = index, .a = a, .b = b};
    r->env.event(r->env.ctx, &e);
}

static void send_msg(px_replica *r, px_msg *m, uint16_t to)
{
    m->from = r->id;
    m->to = to;
    r->env.send(r->env.ctx, m);
}

static void broadcast(px_replica *r, px_msg *m)
{
    for (uint8_t p = 0; p < r->cfg.n_replicas; p++)
        if (p != r->id)
            send_msg(r, m, p);
}

/* etcd raft's rule: acceptor state reaches storage before any reply that relies on it. */
static void persist_before_send(px_replica *r)
{
    if (r->dirty) {
        px_storage_flush(r->env.storage);
        r->dirty = false;
    }
}

static void store_promise(px_replica *r)
{
    px_storage_promise(r->env.storage, r->ballot);
    r->dirty = true;
}

/* quorum keeps the base interval: followers that saw no elections keep their
 * base patience, so a leader whose factor grew while it campaigned would miss
 * their timeouts between heartbeats and be deposed for nothing. Its adaptation
 * is patience only (election timeout, check-quorum window). */
static uint64_t heartbeat_us(const px_replica *r)
{
    uint64_t f = r->cfg.fd == PX_FD_QUORUM ? 1 : r->factor;
    return (uint64_t)r->cfg.heartbeat_us * f;
}

static void reset_timeout(px_replica *r)
{
    uint64_t lo = (uint64_t)r->cfg.election_timeout_min_us * r->factor;
    uint64_t hi = (uint64_t)r->cfg.election_timeout_max_us * r->factor;
    r->timeout_us = rift_rng_range(r->env.rng, lo, hi);
}

static uint64_t check_quorum_us(const px_replica *r)
{
    uint64_t t = r->cfg.check_quorum_us ? r->cfg.check_quorum_us : r->cfg.election_timeout_max_us;
    return t * r->factor;
}

/* ---------- the log ring ---------- */

static slot *slot_at(const px_replica *r, uint64_t index)
{
    if (index <= r->base || index > r->base + r->cap)
        return NULL;
    return &r->slots[index & (r->cap - 1)];
}

/* Bound on how far ahead of the trim point an index may be: a guard against a
 * corrupt or hostile index making the ring grow without limit. */
#define PX_LOG_WINDOW_MAX (1ull << 24)

/* Make room for index; false on allocation failure or an absurd index. */
static bool log_reserve(px_replica *r, uint64_t index)
{
    if (index <= r->base + r->cap)
        return true;
    if (index - r->base > PX_LOG_WINDOW_MAX)
        return false;
    uint64_t ncap = r->cap;
    while (index > r->base + ncap)
        ncap *= 2;
    slot *ns = calloc(ncap, sizeof(slot));
    if (!ns)
        return false;
    for (uint64_t i = r->base + 1; i <= r->end; i++)
        ns[i & (ncap - 1)] = r->slots[i & (r->cap - 1)];
    free(r->slots);
    r->slots = ns;
    r->cap = ncap;
    return true;
}

static void slot_clear(slot *s)
{
    free(s->value);
    memset(s, 0, sizeof(*s));
}

/* Put a value into the slot at index (copying it). NULL when out of memory. */
static slot *slot_set(px_replica *r, uint64_t index, uint64_t ballot, const uint8_t *v, uint32_t len, uint8_t state)
{
    if (index <= r->base || !log_reserve(r, index))
        return NULL;
    slot *s = slot_at(r, index);
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        return NULL;
    if (len)
        memcpy(copy, v, len);
    free(s->value);
    *s = (slot){.ballot = ballot, .state = state, .value = copy, .len = len};
    if (index > r->end)
        r->end = index;
    return s;
}

/* ---------- durability of the state machine ---------- */

/* Durability off keeps nothing, so there is no image to write or to wait for
 * before trimming (and encoding one would be wasted work). */
static bool keeps_nothing(const px_replica *r)
{
    return r->env.storage->policy == PX_DURABILITY_OFF;
}

/* Hand storage the image at index. A failure is not fatal: the WAL just keeps
 * everything above the previous checkpoint until a later attempt succeeds. */
static void store_checkpoint(px_replica *r, uint64_t index, const uint8_t *img, size_t len)
{
    if (keeps_nothing(r))
        return;
    r->ckpt_tried = index;
    if (px_storage_checkpoint(r->env.storage, index, img, len) < 0)
        return;
    r->ckpt_index = index;
    r->ckpt_exec_bytes = r->exec_bytes;
    r->dirty = true;
    emit(r, PX_EV_CHECKPOINT, index, len, 0);
}

/* Lightweight compaction trims to gle with no snapshots; what it gives up is
 * the state below gle, which lives only in memory. Write it out once gle is
 * checkpoint_entries past the last image (and checkpoint_bytes of log were
 * executed since): trims stay cheap (no image on most), the WAL stays short,
 * and a whole-cluster crash still recovers. */
static void maybe_checkpoint(px_replica *r, uint64_t upto)
{
    uint64_t every = r->cfg.checkpoint_entries;
    if (keeps_nothing(r) || upto < r->ckpt_index + every || r->last_executed < r->ckpt_tried + every)
        return;
    if (r->exec_bytes - r->ckpt_exec_bytes < r->cfg.checkpoint_bytes)
        return;
    /* An image that is not the state at last_executed would be a lie on disk. */
    if (px_kv_broken(r->kv) || px_kv_applied_index(r->kv) != r->last_executed)
        return;
    uint8_t *img;
    size_t len;
    if (px_kv_image_encode(r->kv, &img, &len) < 0)
        return;
    store_checkpoint(r, r->last_executed, img, len);
    free(img);
}

/* The WAL forgets only what the newest checkpoint covers. */
static void wal_trim(px_replica *r, uint64_t upto)
{
    if (upto > r->ckpt_index && !keeps_nothing(r))
        upto = r->ckpt_index;
    if (upto <= r->wal_trimmed)
        return;
    px_storage_trim(r->env.storage, upto);
    r->wal_trimmed = upto;
    r->dirty = true;
}

/* Forget everything at or below upto (executed everywhere); the WAL follows
 * as far as a checkpoint allows. */
static void log_trim(px_replica *r, uint64_t upto)
{
    if (upto > r->last_executed)
        upto = r->last_executed;
    if (upto <= r->base)
        return;
    for (uint64_t i = r->base + 1; i <= upto && i <= r->end; i++)
        slot_clear(slot_at(r, i));
    r->base = upto;
    if (r->end < upto)
        r->end = upto;
    maybe_checkpoint(r, upto);
    wal_trim(r, upto);
    emit(r, PX_EV_TRIM, upto, r->end - r->base, 0);
}

/* ---------- client routes ---------- */

static uint64_t route_hash(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    return x ^ (x >> 33);
}

static void route_put(px_replica *r, uint64_t client_id, uint16_t node)
{
    if ((r->routes_len + 1) * 2 > r->routes_cap) {
        uint64_t ncap = r->routes_cap ? r->routes_cap * 2 : 64;
        route *nr = calloc(ncap, sizeof(route));
        if (!nr)
            return; /* the client will retry and time out: no reply is not unsafe */
        for (uint64_t i = 0; i < r->routes_cap; i++) {
            if (!r->routes[i].client_id)
                continue;
            uint64_t h = route_hash(r->routes[i].client_id) & (ncap - 1);
            while (nr[h].client_id)
                h = (h + 1) & (ncap - 1);
            nr[h] = r->routes[i];
        }
        free(r->routes);
        r->routes = nr;
        r->routes_cap = ncap;
    }
    uint64_t h = route_hash(client_id) & (r->routes_cap - 1);
    while (r->routes[h].client_id && r->routes[h].client_id != client_id)
        h = (h + 1) & (r->routes_cap - 1);
    if (!r->routes[h].client_id)
        r->routes_len++;
    r->routes[h] = (route){client_id, node};
}

static int route_get(const px_replica *r, uint64_t client_id)
{
    if (!r->routes_cap)
        return -1;
    uint64_t h = route_hash(client_id) & (r->routes_cap - 1);
    while (r->routes[h].client_id) {
        if (r->routes[h].client_id == client_id)
            return r->routes[h].node;
        h = (h + 1) & (r->routes_cap - 1);
    }
    return -1;
}

/* ---------- failure detector adaptation (mpmc) ---------- */

static void set_factor(px_replica *r, uint32_t f)
{
    if (f == r->factor)
        return;
    r->factor = f;
    emit(r, PX_EV_FD_ADAPT, 0, heartbeat_us(r), (uint64_t)r->cfg.election_timeout_max_us * f);
}

/* An election started here or was seen (a prepare with a new ballot; quorum
 * counts only its own, so the replica that reaches everyone does not grow
 * patient watching hopeless candidates). Repeated elections close together
 * double the interval (the paper's adaptive scheme). */
static void note_election(px_replica *r)
{
    if (r->cfg.fd != PX_FD_NAIVE && r->seen_election && r->now - r->last_election_us < r->cfg.adapt_window_us) {
        uint32_t f = r->factor * 2;
        set_factor(r, f > r->cfg.adapt_max_factor ? r->cfg.adapt_max_factor : f);
    }
    r->seen_election = true;
    r->last_election_us = r->now;
}

static void maybe_calm(px_replica *r)
{
    if (r->factor > 1 && r->now - r->last_election_us >= r->cfg.adapt_calm_us)
        set_factor(r, 1);
}

/* ---------- roles ---------- */

static void set_role(px_replica *r, px_role role)
{
    if (role == r->role)
        return;
    px_role old = r->role;
    r->role = role;
    emit(r, PX_EV_ROLE, 0, role, old);
}

static void set_ballot(px_replica *r, uint64_t b)
{
    assert(b >= r->ballot);
    if (b == r->ballot)
        return;
    r->ballot = b;
    store_promise(r);
    emit(r, PX_EV_BALLOT, 0, PX_BALLOT_ID(b), 0);
}

static void become_follower(px_replica *r, int leader, int reason)
{
    if (r->role == PX_LEADER || r->role == PX_CANDIDATE) {
        if (r->role == PX_CANDIDATE)
            emit(r, PX_EV_ELECTION_END, 0, 0, reason);
        emit(r, PX_EV_STEP_DOWN, 0, reason, 0);
        px_batch_builder_reset(&r->batch);
    }
    set_role(r, PX_FOLLOWER);
    r->leader = leader;
    r->heard_leader_us = r->now;
    reset_timeout(r);
}

/* A message with a higher ballot than ours means someone else leads or runs an
 * election: adopt it (and persist), stepping down if we led. */
static void observe_ballot(px_replica *r, uint64_t b, int leader)
{
    if (b <= r->ballot)
        return;
    set_ballot(r, b);
    if (r->role != PX_FOLLOWER)
        become_follower(r, leader, PX_STEP_HIGHER_BALLOT);
    else
        r->leader = leader;
}

/* ---------- execution ---------- */

static void on_result(void *ctx, const px_result *res)
{
    px_replica *r = ctx;
    if (r->role != PX_LEADER)
        return;
    int node = route_get(r, res->client_id);
    if (node < 0)
        return;
    px_msg m = {.type = PX_MSG_CLIENT_REPLY, .ballot = r->ballot};
    m.u.client_reply.client_id = res->client_id;
    m.u.client_reply.seq = res->seq;
    m.u.client_reply.status = res->status;
    m.u.client_reply.leader = r->id;
    m.u.client_reply.has_value = res->has_value;
    m.u.client_reply.value = res->value;
    send_msg(r, &m, (uint16_t)node);
}

static void execute_ready(px_replica *r)
{
    if (r->last_executed < r->base || r->needs_snapshot)
        return;
    for (;;) {
        slot *s = slot_at(r, r->last_executed + 1);
        if (!s || s->state < SLOT_COMMITTED)
            break;
        uint64_t index = r->last_executed + 1;
        px_kv_apply(r->kv, index, s->value, s->len, on_result, r);
        r->exec_bytes += s->len;
        s->state = SLOT_EXECUTED;
        r->last_executed = index;
        emit(r, PX_EV_EXECUTE, index, px_hash64(0, s->value, s->len), px_kv_digest(r->kv));
    }
}

static void mark_committed(px_replica *r, uint64_t index, slot *s)
{
    if (s->state >= SLOT_COMMITTED)
        return;
    s->state = SLOT_COMMITTED;
    emit(r, PX_EV_COMMIT, index, 0, 0);
}

/* Follower: entries up to the leader's last_executed that we accepted under the
 * leader's ballot hold the chosen value (a ballot proposes one value per index). */
static void commit_until(px_replica *r, uint64_t leader_le, uint64_t ballot)
{
    uint64_t from = r->last_executed > r->base ? r->last_executed : r->base;
    for (uint64_t i = from + 1; i <= leader_le && i <= r->end; i++) {
        slot *s = slot_at(r, i);
        if (s && s->state == SLOT_IN_PROGRESS && s->ballot == ballot)
            mark_committed(r, i, s);
    }
    execute_ready(r);
}

static void apply_gle(px_replica *r, uint64_t gle)
{
    if (gle > r->gle)
        r->gle = gle;
    log_trim(r, r->gle);
}

/* ---------- leader: proposing ---------- */

static void send_accept(px_replica *r, uint64_t index, slot *s, int to)
{
    px_msg m = {.type = PX_MSG_ACCEPT, .ballot = r->ballot};
    m.u.accept.entry = (px_entry){.index = index, .ballot = r->ballot, .value = {s->value, s->len}};
    m.u.accept.last_executed = r->last_executed;
    m.u.accept.gle = r->gle;
    s->sent_us = r->now;
    if (to >= 0)
        send_msg(r, &m, (uint16_t)to);
    else
        broadcast(r, &m);
}

/* Take `index` under our ballot: we accept it ourselves first (stored). */
static slot *propose_at(px_replica *r, uint64_t index, const uint8_t *v, uint32_t len)
{
    slot *s = slot_set(r, index, r->ballot, v, len, SLOT_IN_PROGRESS);
    if (!s)
        return NULL;
    s->acks = (uint16_t)(1u << r->id);
    px_storage_accept(r->env.storage, index, r->ballot, s->value, s->len); /* v may be the freed old value */
    r->dirty = true;
    if (popcount16(s->acks) >= majority(r))
        mark_committed(r, index, s); /* a cluster of one */
    return s;
}

static uint64_t in_flight(const px_replica *r)
{
    return r->next_index > r->last_executed + 1 ? r->next_index - 1 - r->last_executed : 0;
}

/* Propose queued client commands as one entry when the pipeline has room. */
static void flush_batch(px_replica *r, bool force)
{
    if (r->role != PX_LEADER || r->batch.count == 0 || in_flight(r) >= r->cfg.pipeline_max)
        return;
    bool full = r->batch.count >= r->cfg.batch_max_cmds || r->batch.len >= r->cfg.batch_max_bytes;
    bool due = r->now >= r->batch_first_us + r->cfg.batch_delay_us;
    if (!force && !full && !due)
        return;
    uint8_t *value;
    size_t len;
    if (px_batch_finish(&r->batch, &value, &len) < 0)
        return;
    uint64_t index = r->next_index++;
    slot *s = propose_at(r, index, value, (uint32_t)len);
    free(value);
    if (!s)
        return;
    persist_before_send(r);
    send_accept(r, index, s, -1);
    execute_ready(r);
}

/* ---------- leader: heartbeats, gle, catch-up ---------- */

static void send_heartbeat(px_replica *r)
{
    px_msg m = {.type = PX_MSG_COMMIT, .ballot = r->ballot};
    m.u.commit.last_executed = r->last_executed;
    m.u.commit.gle = r->gle;
    broadcast(r, &m);
    r->next_heartbeat_us = r->now + heartbeat_us(r);
}

/* gle = min last_executed of every replica, computed only once all have reported. */
static void update_gle(px_replica *r)
{
    uint16_t all = (uint16_t)(((1u << r->cfg.n_replicas) - 1) & ~(1u << r->id));
    if ((r->peer_reported & all) != all)
        return;
    uint64_t g = r->last_executed;
    for (uint8_t p = 0; p < r->cfg.n_replicas; p++)
        if (p != r->id && r->peer_le[p] < g)
            g = r->peer_le[p];
    if (g > r->gle) {
        emit(r, PX_EV_GLE, g, 0, 0);
        apply_gle(r, g);
    }
}

static void send_snapshot(px_replica *r, uint16_t peer)
{
    if (peer >= PX_MAX_REPLICAS || r->needs_snapshot || px_kv_broken(r->kv))
        return;
    uint64_t gap = 10 * (uint64_t)r->cfg.retransmit_us; /* images are big: not on every reply */
    if (r->snap_sent_us[peer] && r->now < r->snap_sent_us[peer] + gap)
        return;
    uint8_t *img;
    size_t len;
    if (px_kv_image_encode(r->kv, &img, &len) < 0)
        return;
    px_msg m = {.type = PX_MSG_SNAP, .ballot = r->ballot};
    m.u.snap.index = r->last_executed;
    m.u.snap.image = (px_bytes){img, (uint32_t)len};
    send_msg(r, &m, peer);
    free(img);
    r->snap_sent_us[peer] = r->now;
    emit(r, PX_EV_SNAP_SEND, r->last_executed, peer, 0);
}

/* Send a lagging follower the chosen entries it misses, or an image if trimmed. */
static void catch_up(px_replica *r, uint16_t peer, uint64_t peer_le)
{
    if (peer_le >= r->last_executed)
        return;
    if (peer_le < r->base) {
        send_snapshot(r, peer);
        return;
    }
    /* One LEARN in flight per peer: the next goes when a reply shows the last one
     * applied, or after a retransmit interval. Without this every reply triggers
     * another LEARN, and duplicated packets multiply them into a storm. */
    bool applied = peer_le >= r->learn_hi[peer];
    if (!applied && r->now < r->learn_sent_us[peer] + r->cfg.retransmit_us)
        return;
    r->learn_sent_us[peer] = r->now;
    uint64_t hi = r->last_executed;
    if (hi - peer_le > r->cfg.learn_max_entries)
        hi = peer_le + r->cfg.learn_max_entries;
    px_entry *es = malloc((hi - peer_le) * sizeof(px_entry));
    if (!es)
        return;
    uint32_t n = 0;
    for (uint64_t i = peer_le + 1; i <= hi; i++) {
        slot *s = slot_at(r, i);
        if (s && s->state >= SLOT_COMMITTED)
            es[n++] = (px_entry){.index = i, .ballot = s->ballot, .committed = 1, .value = {s->value, s->len}};
    }
    px_msg m = {.type = PX_MSG_LEARN, .ballot = r->ballot};
    m.u.learn.n_entries = n;
    m.u.learn.entries = es;
    if (n)
        send_msg(r, &m, peer);
    r->learn_hi[peer] = hi;
    free(es);
}

static void retransmit_accepts(px_replica *r)
{
    for (uint64_t i = r->last_executed + 1; i < r->next_index; i++) {
        slot *s = slot_at(r, i);
        if (!s || s->state != SLOT_IN_PROGRESS || r->now < s->sent_us + r->cfg.retransmit_us)
            continue;
        for (uint8_t p = 0; p < r->cfg.n_replicas; p++)
            if (p != r->id && !(s->acks & (1u << p)))
                send_accept(r, i, s, p);
    }
}

/* quorum policy: a leader that hears from no majority steps down, so a partitioned
 * leader stops holding peers back (and stickiness cannot deadlock the cluster). */
static bool has_quorum_contact(const px_replica *r)
{
    int heard = 1;
    uint64_t window = check_quorum_us(r);
    for (uint8_t p = 0; p < r->cfg.n_replicas; p++)
        if (p != r->id && r->now < r->peer_heard_us[p] + window)
            heard++;
    return heard >= majority(r);
}

/* ---------- elections ---------- */

static void become_leader(px_replica *r)
{
    set_role(r, PX_LEADER);
    r->leader = r->id;
    emit(r, PX_EV_ELECTION_END, 0, 1, 0);
    /* Re-propose every in-progress entry under our ballot; fill gaps with no-ops
     * (leaving gaps would stall execution and trimming). */
    uint8_t noop[1] = {0};
    uint64_t from = r->last_executed > r->base ? r->last_executed : r->base;
    for (uint64_t i = from + 1; i <= r->end; i++) {
        slot *s = slot_at(r, i);
        if (s->state >= SLOT_COMMITTED)
            continue;
        if (s->state == SLOT_EMPTY)
            propose_at(r, i, noop, 1);
        else
            propose_at(r, i, s->value, s->len); /* copies before freeing the old value */
    }
    r->next_index = r->end + 1;
    memset(r->peer_le, 0, sizeof(r->peer_le));
    r->peer_reported = 0;
    for (uint8_t p = 0; p < r->cfg.n_replicas; p++)
        r->peer_heard_us[p] = r->now;
    persist_before_send(r);
    for (uint64_t i = from + 1; i < r->next_index; i++) {
        slot *s = slot_at(r, i);
        if (s->state == SLOT_IN_PROGRESS)
            send_accept(r, i, s, -1);
    }
    send_heartbeat(r);
    execute_ready(r);
}

static void send_prepare(px_replica *r, int to)
{
    px_msg m = {.type = PX_MSG_PREPARE, .ballot = r->ballot};
    m.u.prepare.from_index = r->last_executed + 1;
    r->prepare_sent_us = r->now;
    if (to >= 0)
        send_msg(r, &m, (uint16_t)to);
    else
        broadcast(r, &m);
}

static void start_election(px_replica *r)
{
    note_election(r);
    set_ballot(r, PX_BALLOT_MAKE(PX_BALLOT_ROUND(r->ballot) + 1, r->id));
    set_role(r, PX_CANDIDATE);
    r->leader = -1;
    r->promised_by = (uint16_t)(1u << r->id);
    r->election_started_us = r->now;
    reset_timeout(r);
    emit(r, PX_EV_ELECTION_START, 0, 0, 0);
    persist_before_send(r);
    if (popcount16(r->promised_by) >= majority(r)) {
        become_leader(r);
        return;
    }
    send_prepare(r, -1);
}

/* Merge one promised entry into our log: chosen values win, then higher ballots. */
static void merge_entry(px_replica *r, const px_entry *e)
{
    if (e->index <= r->last_executed || e->index <= r->base)
        return;
    slot *s = slot_at(r, e->index);
    if (s && s->state >= SLOT_COMMITTED)
        return;
    if (e->committed) {
        slot *ns = slot_set(r, e->index, e->ballot, e->value.data, e->value.len, SLOT_IN_PROGRESS);
        if (ns)
            mark_committed(r, e->index, ns);
        return;
    }
    if (!s || s->state == SLOT_EMPTY || s->ballot < e->ballot)
        slot_set(r, e->index, e->ballot, e->value.data, e->value.len, SLOT_IN_PROGRESS);
}

/* ---------- message handlers ---------- */

static void reply_promise(px_replica *r, uint16_t to, bool ok, uint64_t from_index)
{
    px_msg m = {.type = PX_MSG_PROMISE, .ballot = r->ballot};
    m.u.promise.ok = ok;
    m.u.promise.last_executed = r->last_executed;
    m.u.promise.log_base = r->base;
    px_entry *es = NULL;
    uint32_t n = 0;
    if (ok && r->end > r->base) {
        uint64_t lo = from_index > r->base + 1 ? from_index : r->base + 1;
        if (lo <= r->end && !(es = malloc((r->end - lo + 1) * sizeof(px_entry))))
            return; /* an ok promise without our entries would be a lie: stay silent */
        for (uint64_t i = lo; es && i <= r->end; i++) {
            slot *s = slot_at(r, i);
            if (s->state != SLOT_EMPTY)
                es[n++] = (px_entry){i, s->ballot, s->state >= SLOT_COMMITTED, {s->value, s->len}};
        }
    }
    m.u.promise.n_entries = n;
    m.u.promise.entries = es;
    persist_before_send(r);
    send_msg(r, &m, to);
    free(es);
}

/* quorum policy stickiness: while we hear a live leader (or are one, with a
 * quorum), an election by someone else is disruption, not recovery. */
static bool sticky(const px_replica *r, uint16_t from)
{
    if (r->cfg.fd != PX_FD_QUORUM)
        return false;
    if (r->role == PX_LEADER)
        return has_quorum_contact(r);
    return r->leader >= 0 && r->leader != from &&
           r->now < r->heard_leader_us + (uint64_t)r->cfg.election_timeout_min_us * r->factor;
}

static void on_prepare(px_replica *r, const px_msg *m)
{
    bool retransmit = m->ballot == r->ballot && PX_BALLOT_ID(m->ballot) == m->from;
    if (m->ballot < r->ballot || (m->ballot == r->ballot && !retransmit) || sticky(r, m->from)) {
        reply_promise(r, m->from, false, 0);
        return;
    }
    if (m->ballot > r->ballot) {
        bool q = r->cfg.fd == PX_FD_QUORUM;
        if (!q)
            note_election(r);
        observe_ballot(r, m->ballot, -1);
        r->leader = -1;
        /* naive/mpmc give the candidate a fresh timeout. quorum does not: a
         * stream of candidates that can never win (they reach only us) would
         * otherwise keep the one replica that reaches a majority from ever
         * campaigning (Omni-Paxos' quorum-loss case). A candidate that wins
         * resets our timer with its first commit, one round trip later. */
        if (!q) {
            r->heard_leader_us = r->now;
            reset_timeout(r);
        }
    }
    reply_promise(r, m->from, true, m->u.prepare.from_index);
}

static void on_promise(px_replica *r, const px_msg *m)
{
    if (m->from >= r->cfg.n_replicas)
        return;
    if (!m->u.promise.ok) {
        observe_ballot(r, m->ballot, -1);
        return;
    }
    if (r->role != PX_CANDIDATE || m->ballot != r->ballot)
        return;
    if (m->u.promise.log_base > r->last_executed) {
        /* Peers trimmed entries we never executed: we cannot lead without them. */
        become_follower(r, -1, PX_STEP_LAGGING);
        r->needs_snapshot = true;
        px_msg q = {.type = PX_MSG_SNAP_REQ, .ballot = r->ballot};
        q.u.snap_req.last_executed = r->last_executed;
        send_msg(r, &q, m->from);
        return;
    }
    for (uint32_t i = 0; i < m->u.promise.n_entries; i++)
        merge_entry(r, &m->u.promise.entries[i]);
    r->promised_by |= (uint16_t)(1u << m->from);
    if (popcount16(r->promised_by) >= majority(r))
        become_leader(r);
}

/* ACCEPT / COMMIT / LEARN / SNAP from a leader at or above our ballot. */
static void heard_from_leader(px_replica *r, const px_msg *m)
{
    observe_ballot(r, m->ballot, m->from);
    if (r->role != PX_FOLLOWER)
        become_follower(r, m->from, PX_STEP_HIGHER_BALLOT);
    r->leader = m->from;
    r->heard_leader_us = r->now;
}

static void on_accept(px_replica *r, const px_msg *m)
{
    px_msg rep = {.type = PX_MSG_ACCEPTED};
    const px_entry *e = &m->u.accept.entry;
    rep.u.accepted.index = e->index;
    if (m->ballot < r->ballot || (m->ballot == r->ballot && r->role != PX_FOLLOWER)) {
        rep.ballot = r->ballot;
        send_msg(r, &rep, m->from);
        return;
    }
    heard_from_leader(r, m);
    slot *s = slot_at(r, e->index);
    bool done = e->index <= r->last_executed || e->index <= r->base || (s && s->state >= SLOT_COMMITTED);
    if (!done) {
        if (!slot_set(r, e->index, m->ballot, e->value.data, e->value.len, SLOT_IN_PROGRESS))
            return; /* out of memory: no reply, the leader retransmits */
        px_storage_accept(r->env.storage, e->index, m->ballot, e->value.data, e->value.len);
        r->dirty = true;
    }
    commit_until(r, m->u.accept.last_executed, m->ballot);
    apply_gle(r, m->u.accept.gle);
    rep.ballot = r->ballot;
    rep.u.accepted.ok = 1;
    rep.u.accepted.last_executed = r->last_executed;
    persist_before_send(r);
    send_msg(r, &rep, m->from);
}

/* A peer refused our accept or commit: it promised a higher ballot. quorum: a
 * leader that still hears a majority takes a ballot above it at once. The peer
 * campaigned while cut off from us (it never won: the majority is sticky to
 * us); handing it leadership would cost a leader change and an election gap,
 * re-electing ourselves costs one round trip. Otherwise step down. */
static void on_refused(px_replica *r, uint64_t ballot)
{
    if (r->cfg.fd == PX_FD_QUORUM && r->role == PX_LEADER && ballot > r->ballot && has_quorum_contact(r)) {
        set_ballot(r, ballot);
        start_election(r);
        return;
    }
    observe_ballot(r, ballot, -1);
}

static void note_peer(px_replica *r, uint16_t peer, uint64_t le)
{
    r->peer_heard_us[peer] = r->now;
    r->peer_reported |= (uint16_t)(1u << peer);
    if (le > r->peer_le[peer])
        r->peer_le[peer] = le;
}

static void on_accepted(px_replica *r, const px_msg *m)
{
    if (m->from >= r->cfg.n_replicas)
        return;
    if (!m->u.accepted.ok) {
        on_refused(r, m->ballot);
        return;
    }
    if (r->role != PX_LEADER || m->ballot != r->ballot)
        return;
    r->peer_heard_us[m->from] = r->now;
    slot *s = slot_at(r, m->u.accepted.index);
    if (s && s->state == SLOT_IN_PROGRESS && s->ballot == r->ballot) {
        s->acks |= (uint16_t)(1u << m->from);
        if (popcount16(s->acks) >= majority(r))
            mark_committed(r, m->u.accepted.index, s);
    }
    execute_ready(r);
    flush_batch(r, false);
}

static void send_commit_reply(px_replica *r, uint16_t to, bool ok)
{
    px_msg rep = {.type = PX_MSG_COMMIT_REPLY, .ballot = r->ballot};
    rep.u.commit_reply.ok = ok;
    rep.u.commit_reply.last_executed = r->last_executed;
    persist_before_send(r);
    send_msg(r, &rep, to);
}

static void request_snapshot(px_replica *r, uint16_t from)
{
    if (r->snap_req_us && r->now < r->snap_req_us + 10 * (uint64_t)r->cfg.retransmit_us)
        return;
    r->snap_req_us = r->now;
    px_msg q = {.type = PX_MSG_SNAP_REQ, .ballot = r->ballot};
    q.u.snap_req.last_executed = r->last_executed;
    send_msg(r, &q, from);
}

static void on_commit(px_replica *r, const px_msg *m)
{
    if (m->ballot < r->ballot || (m->ballot == r->ballot && r->role != PX_FOLLOWER)) {
        send_commit_reply(r, m->from, false);
        return;
    }
    heard_from_leader(r, m);
    commit_until(r, m->u.commit.last_executed, m->ballot);
    apply_gle(r, m->u.commit.gle);
    if (r->needs_snapshot)
        request_snapshot(r, m->from);
    send_commit_reply(r, m->from, true);
}

static void on_commit_reply(px_replica *r, const px_msg *m)
{
    if (m->from >= r->cfg.n_replicas)
        return;
    if (!m->u.commit_reply.ok) {
        on_refused(r, m->ballot);
        return;
    }
    if (r->role != PX_LEADER || m->ballot != r->ballot)
        return;
    note_peer(r, m->from, m->u.commit_reply.last_executed);
    update_gle(r);
    catch_up(r, m->from, m->u.commit_reply.last_executed);
}

static void on_learn(px_replica *r, const px_msg *m)
{
    if (m->ballot < r->ballot)
        return;
    heard_from_leader(r, m);
    for (uint32_t i = 0; i < m->u.learn.n_entries; i++) {
        const px_entry *e = &m->u.learn.entries[i];
        if (!e->committed || e->index <= r->last_executed || e->index <= r->base)
            continue;
        slot *s = slot_at(r, e->index);
        if (s && s->state >= SLOT_COMMITTED)
            continue;
        slot *ns = slot_set(r, e->index, e->ballot, e->value.data, e->value.len, SLOT_IN_PROGRESS);
        if (ns)
            mark_committed(r, e->index, ns);
    }
    execute_ready(r);
    send_commit_reply(r, m->from, true);
}

static void on_snap_req(px_replica *r, const px_msg *m)
{
    if (m->from < r->cfg.n_replicas && m->u.snap_req.last_executed < r->last_executed)
        send_snapshot(r, m->from);
}

/* Any replica's image is a chosen prefix, whatever its ballot. The log is trimmed
 * to the image's index: safe because promises carry log_base, and a candidate
 * behind a peer's log_base abandons its election (on_promise). */
static void on_snap(px_replica *r, const px_msg *m)
{
    /* An image older than our own trim point would leave a hole we can never fill. */
    if (r->role == PX_LEADER || m->u.snap.index <= r->last_executed || m->u.snap.index < r->base)
        return;
    if (px_kv_image_install(r->kv, m->u.snap.image.data, m->u.snap.image.len) < 0)
        return;
    r->last_executed = m->u.snap.index;
    r->needs_snapshot = false;
    /* The image is in hand: keep it, or a crash would need another transfer. */
    store_checkpoint(r, r->last_executed, m->u.snap.image.data, m->u.snap.image.len);
    log_trim(r, r->last_executed);
    emit(r, PX_EV_SNAP_INSTALL, r->last_executed, m->from, px_kv_digest(r->kv));
    execute_ready(r);
    if (m->ballot >= r->ballot && r->role == PX_FOLLOWER && PX_BALLOT_ID(m->ballot) == m->from)
        send_commit_reply(r, m->from, true);
}

static void reply_client(px_replica *r, uint16_t to, const px_cmd *c, uint8_t status, int leader)
{
    px_msg m = {.type = PX_MSG_CLIENT_REPLY, .ballot = r->ballot};
    m.u.client_reply.client_id = c ? c->client_id : 0;
    m.u.client_reply.seq = c ? c->seq : 0;
    m.u.client_reply.status = status;
    m.u.client_reply.leader = leader >= 0 ? (uint16_t)leader : PX_NO_NODE;
    send_msg(r, &m, to);
}

static void on_client_req(px_replica *r, const px_msg *m)
{
    px_cmd c;
    if (px_cmd_decode(m->u.client_req.cmd.data, m->u.client_req.cmd.len, &c) < 0) {
        reply_client(r, m->from, NULL, PX_REPLY_BAD_REQUEST, -1);
        return;
    }
    if (r->role != PX_LEADER) {
        reply_client(r, m->from, &c, PX_REPLY_REDIRECT, r->role == PX_FOLLOWER ? r->leader : -1);
        return;
    }
    if (r->batch.count >= r->cfg.client_queue_max)
        return; /* overloaded: the client times out and retries */
    route_put(r, c.client_id, m->from);
    if (r->batch.count == 0)
        r->batch_first_us = r->now;
    if (px_batch_add(&r->batch, m->u.client_req.cmd.data, m->u.client_req.cmd.len) < 0)
        return;
    flush_batch(r, false);
}

/* ---------- public API ---------- */

/* Resume execution from the checkpoint when it reaches the WAL's trim point (a
 * checkpoint older than that — its successor was torn — leaves a gap). false:
 * no usable checkpoint, the KV is empty. */
static bool install_checkpoint(px_replica *r, const px_storage_state *st)
{
    if (!st->ckpt_image || st->ckpt_index < st->trimmed)
        return false;
    if (px_kv_image_install(r->kv, st->ckpt_image, st->ckpt_len) < 0)
        return false;
    if (px_kv_applied_index(r->kv) != st->ckpt_index) {
        /* Storage and image disagree on the index: trust neither. */
        px_kv *fresh = px_kv_new();
        if (fresh) {
            px_kv_free(r->kv);
            r->kv = fresh;
        }
        return false;
    }
    r->ckpt_index = r->ckpt_tried = st->ckpt_index;
    r->last_executed = st->ckpt_index;
    return true;
}

static bool load_storage(px_replica *r)
{
    px_storage_state st = {0};
    if (px_storage_load(r->env.storage, &st) < 0)
        return true; /* unreadable storage = amnesia; the run shows what it costs */
    r->ballot = st.promised;
    r->gle = r->wal_trimmed = st.trimmed;
    r->last_executed = 0;
    bool resumed = install_checkpoint(r, &st);
    r->base = r->end = resumed ? st.ckpt_index : st.trimmed;
    /* Without an image the KV below the trim point is gone: a peer must send it. */
    r->needs_snapshot = r->base > r->last_executed;
    bool ok = true;
    for (size_t i = 0; i < st.n_entries && ok; i++) {
        const px_stored_entry *e = &st.entries[i];
        if (e->index > r->base) /* at or below: inside the checkpoint */
            ok = slot_set(r, e->index, e->ballot, e->value, e->len, SLOT_IN_PROGRESS) != NULL;
    }
    px_storage_state_release(&st);
    return ok;
}

px_replica *px_replica_new(const px_config *cfg, uint8_t id, const px_env *env, uint64_t now_us, int *err)
{
    int e = -EINVAL;
    px_replica *r = NULL;
    if (px_config_check(cfg, NULL, 0) < 0 || id >= cfg->n_replicas || !env || !env->send || !env->storage ||
        !env->rng)
        goto fail;
    e = -ENOMEM;
    r = calloc(1, sizeof(*r));
    if (!r)
        goto fail;
    r->cfg = *cfg;
    r->env = *env;
    r->id = id;
    r->now = now_us;
    r->leader = -1;
    r->factor = 1;
    r->cap = 1024;
    r->slots = calloc(r->cap, sizeof(slot));
    r->kv = px_kv_new();
    if (!r->slots || !r->kv || !load_storage(r))
        goto fail;
    r->heard_leader_us = now_us;
    reset_timeout(r);
    return r;
fail:
    px_replica_free(r);
    if (err)
        *err = e;
    return NULL;
}

void px_replica_free(px_replica *r)
{
    if (!r)
        return;
    if (r->slots)
        for (uint64_t i = r->base + 1; i <= r->end; i++)
            free(slot_at(r, i)->value);
    free(r->slots);
    px_kv_free(r->kv);
    px_batch_builder_reset(&r->batch);
    free(r->routes);
    free(r);
}

void px_replica_recv(px_replica *r, const px_msg *m, uint64_t now_us)
{
    if (now_us > r->now)
        r->now = now_us;
    bool from_replica = m->from < r->cfg.n_replicas && m->from != r->id;
    if (m->type != PX_MSG_CLIENT_REQ && !from_replica)
        return;
    switch (m->type) {
    case PX_MSG_PREPARE: on_prepare(r, m); break;
    case PX_MSG_PROMISE: on_promise(r, m); break;
    case PX_MSG_ACCEPT: on_accept(r, m); break;
    case PX_MSG_ACCEPTED: on_accepted(r, m); break;
    case PX_MSG_COMMIT: on_commit(r, m); break;
    case PX_MSG_COMMIT_REPLY: on_commit_reply(r, m); break;
    case PX_MSG_LEARN: on_learn(r, m); break;
    case PX_MSG_SNAP_REQ: on_snap_req(r, m); break;
    case PX_MSG_SNAP: on_snap(r, m); break;
    case PX_MSG_CLIENT_REQ: on_client_req(r, m); break;
    default: break; /* client replies are not for replicas */
    }
    persist_before_send(r); /* trims and promises not followed by a send */
}

static void tick_leader(px_replica *r)
{
    if (r->cfg.fd == PX_FD_QUORUM && !has_quorum_contact(r)) {
        become_follower(r, -1, PX_STEP_NO_QUORUM);
        return;
    }
    if (r->now >= r->next_heartbeat_us)
        send_heartbeat(r);
    retransmit_accepts(r);
    flush_batch(r, false);
}

void px_replica_tick(px_replica *r, uint64_t now_us)
{
    if (now_us > r->now)
        r->now = now_us;
    maybe_calm(r);
    switch (r->role) {
    case PX_LEADER:
        tick_leader(r);
        break;
    case PX_CANDIDATE:
        if (r->now >= r->election_started_us + r->timeout_us)
            start_election(r);
        else if (r->now >= r->prepare_sent_us + r->cfg.retransmit_us)
            for (uint8_t p = 0; p < r->cfg.n_replicas; p++)
                if (p != r->id && !(r->promised_by & (1u << p)))
                    send_prepare(r, p);
        break;
    case PX_FOLLOWER:
        if (r->now < r->heard_leader_us + r->timeout_us)
            break;
        if (!r->needs_snapshot) {
            start_election(r);
        } else {
            /* Cannot lead without state: ask a peer, and wait for a leader. */
            r->heard_leader_us = r->now;
            reset_timeout(r);
            if (r->cfg.n_replicas > 1) {
                uint64_t p = rift_rng_range(r->env.rng, 0, r->cfg.n_replicas - 2);
                request_snapshot(r, (uint16_t)(p >= r->id ? p + 1 : p));
            }
        }
        break;
    }
    persist_before_send(r);
}

uint64_t px_replica_next_tick_us(const px_replica *r)
{
    uint64_t t;
    switch (r->role) {
    case PX_LEADER:
        t = r->next_heartbeat_us;
        if (in_flight(r) > 0 && r->now + r->cfg.retransmit_us < t)
            t = r->now + r->cfg.retransmit_us;
        if (r->batch.count && r->batch_first_us + r->cfg.batch_delay_us < t)
            t = r->batch_first_us + r->cfg.batch_delay_us;
        break;
    case PX_CANDIDATE:
        t = r->election_started_us + r->timeout_us;
        if (r->prepare_sent_us + r->cfg.retransmit_us < t)
            t = r->prepare_sent_us + r->cfg.retransmit_us;
        break;
    default:
        t = r->heard_leader_us + r->timeout_us;
        break;
    }
    return t > r->now ? t : r->now + 1;
}

void px_replica_status(const px_replica *r, px_status *out)
{
    memset(out, 0, sizeof(*out));
    out->id = r->id;
    out->role = r->role;
    out->ballot = r->ballot;
    out->leader = r->leader;
    out->last_executed = r->last_executed;
    out->gle = r->gle;
    out->log_base = r->base;
    out->log_entries = r->end - r->base;
    out->digest = px_kv_digest(r->kv);
    out->heartbeat_us = (uint32_t)heartbeat_us(r);
    out->election_timeout_us = (uint32_t)r->timeout_us;
    out->needs_snapshot = r->needs_snapshot;
    out->checkpoint_index = r->ckpt_index;
    out->pending_cmds = r->batch.count;
}

const px_kv *px_replica_kv(const px_replica *r) { return r->kv; }

int px_replica_set_param(px_replica *r, const char *name, const char *value)
{
    px_config c = r->cfg;
    int e = px_config_set(&c, name, value);
    if (e < 0)
        return e;
    if (c.n_replicas != r->cfg.n_replicas || px_config_check(&c, NULL, 0) < 0)
        return -EINVAL;
    r->cfg = c;
    return 0;
}
