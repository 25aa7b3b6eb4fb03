/* sim.c — the simulator: replicas, hosts, ticks, endpoints, faults and the event loop. */
#include "sim.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SIM_SALT_NET 0x6e6574ULL        /* "net" */
#define SIM_SALT_REPLICA 0x7265706cULL  /* "repl" + id */
#define SIM_SALT_NIC 0x6e6963000000ULL  /* "nic" + host index */

/* A FIFO of message frames: a replica's receive queue (held while paused),
 * an endpoint host's inbox. */
typedef struct sim_fifo {
    sim_frame *head, *tail;
    uint32_t len;
} sim_fifo;

typedef struct sim_slot {
    sim *s;
    uint8_t id;
    px_replica *r;       /* NULL while down */
    px_storage *storage; /* survives crashes */
    px_config cfg;       /* what a restart uses */
    rift_rng rng;        /* continues across restarts */
    sim_qnode tick;      /* the one pending tick */
    bool paused;
    sim_fifo pq;         /* messages not yet taken (held while paused) */
    uint64_t restarts;
} sim_slot;

/* Packet model: one machine with a NIC — replica i is host i; endpoint hosts
 * follow in the order their keys first appear. */
typedef struct sim_host {
    uint32_t idx;
    uint32_t key;        /* impairment key */
    int replica;         /* replica id, or -1 for an endpoint host */
    sim_nic *nic;
    sim_fifo inbox;      /* endpoint hosts: messages not yet handed over */
} sim_host;

typedef struct sim_endpoint {
    sim_recv_fn fn;
    void *ctx;
} sim_endpoint;

struct sim_timer {
    sim_qnode q;
    sim *s;
    sim_timer_fn fn;
    void *ctx;
};

struct sim {
    sim_config cfg;
    sim_queue q;
    sim_net *net;
    sim_slot slots[PX_MAX_REPLICAS];
    sim_endpoint *endpoints; /* SIM_MAX_ENDPOINTS */
    /* packet model */
    sim_host **hosts;        /* SIM_MAX_HOSTS */
    uint32_t n_hosts;
    uint16_t *ep_host;       /* endpoint k -> host index + 1; 0 = not placed yet */
    uint32_t *ep_key;        /* endpoint k -> link key */
    uint32_t *stale;         /* hosts whose transport timer awaits sim_nic_sync */
    uint32_t n_stale;
    uint8_t *enc;            /* encode buffer */
    size_t enc_cap;
    uint64_t pm_sent, pm_delivered, pm_dropped, pm_bytes_sent, pm_bytes_delivered;
    sim_event_fn on_event;
    void *on_event_ctx;
    uint64_t hash;
    int error;       /* sticky: an allocation or queue failure inside a callback */
    bool running;
    int in_replica;  /* > 0 while a replica's code is on the stack */
    uint64_t bad_frames, ticks, events, crashes, restarts;
    uint64_t sent_by_type[PX_MSG_TYPE_MAX + 1];
    uint64_t msgs_sent; /* for the budget */
};

/* ---- small helpers ---- */

static inline void sim_fold(sim *s, uint64_t x)
{
    uint64_t h = (s->hash ^ x) * 0x9e3779b97f4a7c15ULL;
    s->hash = h ^ (h >> 29);
}

void sim_hash_fold(sim *s, uint64_t x)
{
    sim_fold(s, x);
}

static void sim_set_error(sim *s, int rc)
{
    if (rc < 0 && s->error == 0)
        s->error = rc;
}

static sim_slot *sim_slot_get(sim *s, int i)
{
    return i >= 0 && i < s->cfg.n_replicas ? &s->slots[i] : NULL;
}

static inline bool sim_packet(const sim *s)
{
    return s->cfg.net_model == SIM_NET_PACKET;
}

const char *sim_net_model_name(int m)
{
    return m == SIM_NET_MESSAGE ? "message" : m == SIM_NET_PACKET ? "packet" : "unknown";
}

int sim_net_model_parse(const char *str, uint8_t *out)
{
    for (uint8_t m = SIM_NET_MESSAGE; m <= SIM_NET_PACKET; m++) {
        if (strcmp(str, sim_net_model_name(m)) == 0) {
            *out = m;
            return 0;
        }
    }
    return -EINVAL;
}

void sim_config_default(sim_config *c)
{
    memset(c, 0, sizeof(*c));
    c->n_replicas = 3;
    c->seed = 1;
    px_config_default(&c->paxos);
    c->durability = PX_DURABILITY_FSYNC;
    sim_net_config_default(&c->net);
    c->net_model = SIM_NET_PACKET;
    sim_nic_config_default(&c->nic);
    c->pause_queue_max = SIM_PAUSE_QUEUE_MAX;
}

void sim_rng_fork(const sim *s, uint64_t salt, rift_rng *out)
{
    uint64_t x = s->cfg.seed ^ (salt * 0xd1342543de82ef95ULL);
    rift_rng_seed(out, rift_splitmix64(&x));
}

/* ---- message queues ---- */

/* A message that will not be handed over. The message model's frames are the
 * network's; the packet model's are copies out of a transport. */
static void sim_msg_drop(sim *s, sim_frame *f)
{
    if (sim_packet(s)) {
        s->pm_dropped++;
        sim_net_frame_free(s->net, f);
    } else {
        sim_net_drop(s->net, f);
    }
}

/* Bounded: a full queue drops its oldest message, as a socket buffer would. */
static void sim_fifo_push(sim *s, sim_fifo *q, sim_frame *f)
{
    if (q->len >= s->cfg.pause_queue_max) {
        sim_frame *old = q->head;
        q->head = old->next;
        if (!q->head)
            q->tail = NULL;
        q->len--;
        sim_msg_drop(s, old);
    }
    f->next = NULL;
    if (q->tail)
        q->tail->next = f;
    else
        q->head = f;
    q->tail = f;
    q->len++;
}

static sim_frame *sim_fifo_pop(sim_fifo *q)
{
    sim_frame *f = q->head;
    if (!f)
        return NULL;
    q->head = f->next;
    if (!q->head)
        q->tail = NULL;
    q->len--;
    return f;
}

static void sim_fifo_drop_all(sim *s, sim_fifo *q)
{
    sim_frame *f;
    while ((f = sim_fifo_pop(q)) != NULL)
        sim_msg_drop(s, f);
}

/* ---- hosts (packet model) ---- */

static void sim_host_deliver(void *ctx, uint32_t host, const uint8_t *msg, size_t len, uint32_t from);

static void sim_host_stale(void *ctx, uint32_t host)
{
    sim *s = ctx;
    s->stale[s->n_stale++] = host; /* at most once per host between syncs */
}

/* Before the queue pops again: every NIC touched since gets its timer right. */
static void sim_hosts_sync(sim *s)
{
    for (uint32_t i = 0; i < s->n_stale; i++)
        sim_nic_sync(s->hosts[s->stale[i]]->nic);
    s->n_stale = 0;
}

static int sim_host_new(sim *s, uint32_t key, int replica, sim_host **out)
{
    if (s->n_hosts >= SIM_MAX_HOSTS)
        return -ENOSPC;
    sim_host *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    h->idx = s->n_hosts;
    h->key = key;
    h->replica = replica;
    rift_rng rng;
    sim_rng_fork(s, SIM_SALT_NIC + h->idx, &rng);
    int err = 0;
    sim_nic_env env = {.ctx = s, .deliver = sim_host_deliver, .stale = sim_host_stale};
    h->nic = sim_nic_new(s->net, &s->q, h->idx, replica >= 0, &s->cfg.nic, &rng, &env, &err);
    if (!h->nic) {
        free(h);
        return err < 0 ? err : -ENOMEM;
    }
    sim_net_set_link_key(s->net, h->idx, key);
    s->hosts[s->n_hosts++] = h;
    *out = h;
    return 0;
}

/* The host addr lives on; an endpoint address is placed on the host of its
 * link key the first time (place), creating that host if needed. */
static int sim_host_of(sim *s, uint32_t addr, bool place, sim_host **out)
{
    *out = NULL;
    if (addr < s->cfg.n_replicas) {
        *out = s->hosts[addr];
        return 0;
    }
    if (addr < PX_CLIENT_BASE || addr - PX_CLIENT_BASE >= SIM_MAX_ENDPOINTS)
        return -EINVAL;
    uint32_t k = addr - PX_CLIENT_BASE;
    if (s->ep_host[k]) {
        *out = s->hosts[s->ep_host[k] - 1];
        return 0;
    }
    if (!place)
        return -ENOENT;
    for (uint32_t i = s->cfg.n_replicas; i < s->n_hosts; i++) {
        if (s->hosts[i]->key == s->ep_key[k]) {
            *out = s->hosts[i];
            break;
        }
    }
    if (!*out) {
        int rc = sim_host_new(s, s->ep_key[k], -1, out);
        if (rc < 0)
            return rc;
    }
    s->ep_host[k] = (uint16_t)((*out)->idx + 1);
    return 0;
}

static int sim_hosts_init(sim *s)
{
    s->hosts = calloc(SIM_MAX_HOSTS, sizeof(*s->hosts));
    s->ep_host = calloc(SIM_MAX_ENDPOINTS, sizeof(*s->ep_host));
    s->ep_key = calloc(SIM_MAX_ENDPOINTS, sizeof(*s->ep_key));
    s->stale = calloc(SIM_MAX_HOSTS, sizeof(*s->stale));
    if (!s->hosts || !s->ep_host || !s->ep_key || !s->stale)
        return -ENOMEM;
    for (uint32_t k = 0; k < SIM_MAX_ENDPOINTS; k++)
        s->ep_key[k] = PX_CLIENT_BASE + k;
    for (uint8_t i = 0; i < s->cfg.n_replicas; i++) {
        sim_host *h;
        int rc = sim_host_new(s, i, i, &h);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static void sim_hosts_free(sim *s)
{
    for (uint32_t i = 0; s->hosts && i < s->n_hosts; i++) {
        sim_nic_free(s->hosts[i]->nic);
        free(s->hosts[i]);
    }
    free(s->hosts);
    free(s->ep_host);
    free(s->ep_key);
    free(s->stale);
    free(s->enc);
}

/* Packet model: encode once, hand the bytes to the sender's NIC. A message
 * that finds no flow is lost here, as it would be over rift_stack. */
static int sim_send_packet(sim *s, uint32_t src, const px_msg *m, size_t need)
{
    sim_host *from, *to;
    int rc = sim_host_of(s, src, true, &from);
    if (rc < 0)
        return rc;
    if (need > s->enc_cap) {
        uint8_t *b = realloc(s->enc, need);
        if (!b)
            return -ENOMEM;
        s->enc = b;
        s->enc_cap = need;
    }
    size_t len = 0;
    rc = px_msg_encode(m, s->enc, s->enc_cap, &len);
    if (rc < 0)
        return rc;
    s->sent_by_type[m->type <= PX_MSG_TYPE_MAX ? m->type : 0]++;
    if (s->cfg.max_msgs && ++s->msgs_sent > s->cfg.max_msgs)
        sim_set_error(s, -EOVERFLOW);
    s->pm_sent++;
    s->pm_bytes_sent += len;
    if (sim_host_of(s, m->to, false, &to) < 0 || to == from) {
        s->pm_dropped++; /* nobody there */
        return 0;
    }
    rc = sim_nic_send(from->nic, to->idx, to->replica >= 0, s->enc, len);
    if (rc < 0)
        s->pm_dropped++;
    return rc == -ENOMEM ? rc : 0;
}

/* ---- replica environment ---- */

static int sim_send_from(sim *s, uint32_t src, const px_msg *m)
{
    size_t need = px_msg_encoded_size(m);
    if (sim_packet(s))
        return sim_send_packet(s, src, m, need);
    sim_frame *f = sim_net_frame_alloc(s->net, need);
    if (!f)
        return -ENOMEM;
    size_t len = 0;
    int rc = px_msg_encode(m, f->data, f->cap, &len);
    if (rc < 0) {
        sim_net_frame_free(s->net, f);
        return rc;
    }
    f->len = (uint32_t)len;
    s->sent_by_type[m->type <= PX_MSG_TYPE_MAX ? m->type : 0]++;
    if (s->cfg.max_msgs && ++s->msgs_sent > s->cfg.max_msgs)
        sim_set_error(s, -EOVERFLOW);
    return sim_net_send(s->net, f, src, m->to);
}

static void sim_env_send(void *ctx, const px_msg *m)
{
    sim_slot *slot = ctx;
    sim_set_error(slot->s, sim_send_from(slot->s, slot->id, m));
}

static void sim_env_event(void *ctx, const px_event *e)
{
    sim_slot *slot = ctx;
    sim *s = slot->s;
    px_event ev = *e;
    ev.replica = slot->id;
    ev.time_us = s->q.now_us;
    s->events++;
    sim_fold(s, ((uint64_t)ev.kind << 8) | ev.replica);
    sim_fold(s, ev.time_us);
    sim_fold(s, ev.ballot);
    sim_fold(s, ev.index);
    sim_fold(s, ev.a);
    sim_fold(s, ev.b);
    if (s->on_event)
        s->on_event(s->on_event_ctx, &ev);
}

/* Keep exactly one pending tick, at the time the replica asks for. After a
 * tick, at least 1 µs later so a replica that wants "now" cannot spin. */
static void sim_slot_resched(sim_slot *slot, bool after_tick)
{
    sim *s = slot->s;
    if (!slot->r || slot->paused) {
        sim_queue_cancel(&s->q, &slot->tick);
        return;
    }
    uint64_t want = px_replica_next_tick_us(slot->r);
    uint64_t floor = s->q.now_us + (after_tick ? 1 : 0);
    if (want == UINT64_MAX) {
        sim_queue_cancel(&s->q, &slot->tick);
        return;
    }
    if (want < floor)
        want = floor;
    if (sim_qnode_queued(&slot->tick) && slot->tick.at_us == want)
        return;
    sim_set_error(s, sim_queue_set(&s->q, &slot->tick, want));
}

static void sim_tick_fire(sim_qnode *n, uint64_t now_us)
{
    sim_slot *slot = (sim_slot *)((char *)n - offsetof(sim_slot, tick));
    sim *s = slot->s;
    s->ticks++;
    s->in_replica++;
    px_replica_tick(slot->r, now_us);
    s->in_replica--;
    sim_slot_resched(slot, true);
}

static void sim_slot_recv(sim_slot *slot, sim_frame *f)
{
    sim *s = slot->s;
    px_msg m;
    if (px_msg_decode(f->data, f->len, &m) < 0) {
        s->bad_frames++;
        sim_msg_drop(s, f);
        return;
    }
    s->pm_delivered++;
    s->pm_bytes_delivered += f->len;
    s->in_replica++;
    px_replica_recv(slot->r, &m, s->q.now_us);
    s->in_replica--;
    px_msg_release(&m);
    sim_net_frame_free(s->net, f);
    sim_slot_resched(slot, false);
}

/* Hand queued messages over in arrival order while the replica runs. */
static void sim_slot_drain(sim_slot *slot)
{
    while (slot->pq.head && slot->r && !slot->paused)
        sim_slot_recv(slot, sim_fifo_pop(&slot->pq));
}

/* ---- deliveries ---- */

static void sim_deliver_endpoint(sim *s, sim_frame *f)
{
    uint32_t k = f->dst - PX_CLIENT_BASE;
    sim_endpoint *ep = &s->endpoints[k];
    px_msg m;
    if (!ep->fn) {
        sim_net_drop(s->net, f);
        return;
    }
    if (px_msg_decode(f->data, f->len, &m) < 0) {
        s->bad_frames++;
        sim_net_drop(s->net, f);
        return;
    }
    ep->fn(ep->ctx, &m, s->q.now_us);
    px_msg_release(&m);
    sim_net_frame_free(s->net, f);
}

/* Packet model: a message that reached endpoint host h; px addressing picks
 * the endpoint, which must live on h. */
static void sim_host_endpoint(sim *s, sim_host *h, sim_frame *f)
{
    px_msg m;
    if (px_msg_decode(f->data, f->len, &m) < 0) {
        s->bad_frames++;
        sim_msg_drop(s, f);
        return;
    }
    uint32_t k = (uint32_t)m.to - PX_CLIENT_BASE;
    sim_endpoint *ep = k < SIM_MAX_ENDPOINTS && s->ep_host[k] == h->idx + 1 ? &s->endpoints[k] : NULL;
    if (!ep || !ep->fn) {
        px_msg_release(&m);
        sim_msg_drop(s, f);
        return;
    }
    s->pm_delivered++;
    s->pm_bytes_delivered += f->len;
    ep->fn(ep->ctx, &m, s->q.now_us);
    px_msg_release(&m);
    sim_net_frame_free(s->net, f);
}

/* Packet model: a whole message out of host's transport (inside its rx). It
 * only queues — the app's channel — so nothing re-enters the transport. */
static void sim_host_deliver(void *ctx, uint32_t host, const uint8_t *msg, size_t len, uint32_t from)
{
    sim *s = ctx;
    sim_host *h = s->hosts[host];
    sim_frame *f = sim_net_frame_alloc(s->net, len);
    if (!f) {
        s->pm_dropped++;
        sim_set_error(s, -ENOMEM);
        return;
    }
    memcpy(f->data, msg, len);
    f->src = from;
    f->dst = host;
    if (h->replica < 0) {
        sim_fifo_push(s, &h->inbox, f);
        return;
    }
    sim_slot *slot = &s->slots[h->replica];
    if (!slot->r)
        sim_msg_drop(s, f);
    else
        sim_fifo_push(s, &slot->pq, f);
}

static void sim_host_drain(sim *s, sim_host *h)
{
    if (h->replica >= 0) {
        sim_slot_drain(&s->slots[h->replica]);
        return;
    }
    sim_frame *f;
    while ((f = sim_fifo_pop(&h->inbox)) != NULL)
        sim_host_endpoint(s, h, f);
}

static void sim_deliver_packet(sim *s, sim_frame *f)
{
    sim_host *h = f->dst < s->n_hosts ? s->hosts[f->dst] : NULL;
    if (!h || !sim_nic_powered(h->nic)) {
        sim_net_drop(s->net, f);
        return;
    }
    sim_nic_input(h->nic, f);
    sim_net_frame_free(s->net, f);
    sim_host_drain(s, h);
}

static void sim_deliver(void *ctx, sim_frame *f, uint64_t now_us)
{
    sim *s = ctx;
    sim_fold(s, now_us);
    sim_fold(s, ((uint64_t)f->src << 32) | f->dst);
    sim_fold(s, f->len);
    if (sim_packet(s)) {
        sim_deliver_packet(s, f);
        return;
    }
    if (f->dst < s->cfg.n_replicas) {
        sim_slot *slot = &s->slots[f->dst];
        if (!slot->r)
            sim_net_drop(s->net, f);
        else if (slot->paused)
            sim_fifo_push(s, &slot->pq, f);
        else
            sim_slot_recv(slot, f);
        return;
    }
    if (f->dst >= PX_CLIENT_BASE && f->dst - PX_CLIENT_BASE < SIM_MAX_ENDPOINTS) {
        sim_deliver_endpoint(s, f);
        return;
    }
    sim_net_drop(s->net, f);
}

/* ---- life cycle ---- */

static int sim_slot_start(sim *s, sim_slot *slot)
{
    px_env env = {
        .ctx = slot,
        .send = sim_env_send,
        .event = sim_env_event,
        .storage = slot->storage,
        .rng = &slot->rng,
    };
    int err = 0;
    s->in_replica++;
    slot->r = px_replica_new(&slot->cfg, slot->id, &env, s->q.now_us, &err);
    s->in_replica--;
    if (!slot->r)
        return err < 0 ? err : -ENOMEM;
    sim_slot_resched(slot, false);
    return 0;
}

static int sim_slot_init(sim *s, uint8_t id)
{
    sim_slot *slot = &s->slots[id];
    slot->s = s;
    slot->id = id;
    slot->cfg = s->cfg.paxos;
    sim_rng_fork(s, SIM_SALT_REPLICA + id, &slot->rng);
    sim_qnode_init(&slot->tick, sim_tick_fire);
    slot->storage = px_storage_mem_new(s->cfg.durability);
    if (!slot->storage)
        return -ENOMEM;
    return sim_slot_start(s, slot);
}

static int sim_config_validate(sim_config *c)
{
    if (c->n_replicas < 1 || c->n_replicas > PX_MAX_REPLICAS)
        return -EINVAL;
    if (c->net_model > SIM_NET_PACKET)
        return -EINVAL;
    if (c->net_model == SIM_NET_PACKET && sim_nic_config_check(&c->nic, NULL, 0) < 0)
        return -EINVAL;
    if (c->pause_queue_max == 0)
        c->pause_queue_max = SIM_PAUSE_QUEUE_MAX;
    c->paxos.n_replicas = c->n_replicas;
    return px_config_check(&c->paxos, NULL, 0);
}

sim *sim_new(const sim_config *c, int *err)
{
    int rc = -ENOMEM;
    sim *s = calloc(1, sizeof(*s));
    if (!s)
        goto fail;
    s->cfg = *c;
    rc = sim_config_validate(&s->cfg);
    if (rc < 0)
        goto fail_free;
    rc = -ENOMEM;
    s->endpoints = calloc(SIM_MAX_ENDPOINTS, sizeof(*s->endpoints));
    if (!s->endpoints || sim_queue_init(&s->q) < 0)
        goto fail_free;
    rift_rng net_rng;
    sim_rng_fork(s, SIM_SALT_NET, &net_rng);
    s->net = sim_net_new(&s->q, &s->cfg.net, &net_rng, sim_deliver, s);
    if (!s->net)
        goto fail_free;
    if (sim_packet(s) && (rc = sim_hosts_init(s)) < 0)
        goto fail_free;
    for (uint8_t i = 0; i < s->cfg.n_replicas; i++) {
        rc = sim_slot_init(s, i);
        if (rc < 0)
            goto fail_free;
    }
    return s;
fail_free:
    sim_free(s);
    s = NULL;
fail:
    if (err)
        *err = rc;
    return NULL;
}

void sim_free(sim *s)
{
    if (!s)
        return;
    for (int i = 0; i < PX_MAX_REPLICAS; i++) {
        sim_slot *slot = &s->slots[i];
        if (slot->r)
            px_replica_free(slot->r);
        px_storage_close(slot->storage);
    }
    sim_hosts_free(s);
    if (s->q.heap)
        sim_queue_fini(&s->q);
    sim_net_free(s->net); /* owns every frame, queued or parked */
    free(s->endpoints);
    free(s);
}

/* ---- time ---- */

int sim_run_until(sim *s, uint64_t t_us)
{
    if (s->running)
        return -EBUSY;
    s->running = true;
    sim_qnode *n;
    sim_hosts_sync(s); /* sends from outside the loop (sim_send, faults) */
    while (s->error == 0 && (n = sim_queue_pop(&s->q, t_us)) != NULL) {
        n->fire(n, s->q.now_us);
        sim_hosts_sync(s);
    }
    if (s->error == 0 && s->q.now_us < t_us)
        s->q.now_us = t_us;
    s->running = false;
    return s->error;
}

int sim_run_for(sim *s, uint64_t dt_us)
{
    return sim_run_until(s, s->q.now_us + dt_us);
}

uint64_t sim_now_us(const sim *s)
{
    return s->q.now_us;
}

uint8_t sim_n_replicas(const sim *s)
{
    return s->cfg.n_replicas;
}

/* ---- faults ---- */

int sim_impair_add(sim *s, const st_impair_rule *r)
{
    sim_fold(s, 0xfa01);
    return st_impair_add(sim_net_impair(s->net), r);
}

int sim_impair_remove(sim *s, int id)
{
    sim_fold(s, 0xfa02);
    return st_impair_remove(sim_net_impair(s->net), id);
}

void sim_impair_clear(sim *s)
{
    sim_fold(s, 0xfa03);
    st_impair_clear(sim_net_impair(s->net));
}

st_impair *sim_impair(sim *s)
{
    return sim_net_impair(s->net);
}

int sim_cut(sim *s, uint32_t src, uint32_t dst)
{
    st_impair_rule r = {.src = src, .dst = dst, .cut = true};
    return sim_impair_add(s, &r);
}

int sim_partition(sim *s, const uint8_t *group)
{
    int added = 0;
    for (int a = 0; a < s->cfg.n_replicas; a++) {
        for (int b = 0; b < s->cfg.n_replicas; b++) {
            if (group[a] == group[b])
                continue;
            int rc = sim_cut(s, (uint32_t)a, (uint32_t)b);
            if (rc < 0)
                return rc;
            added++;
        }
    }
    return added;
}

void sim_set_latency(sim *s, uint64_t latency_us, uint64_t jitter_us)
{
    sim_net_set_latency(s->net, latency_us, jitter_us);
}

int sim_link_key(sim *s, uint32_t addr, uint32_t key)
{
    if (!sim_packet(s))
        return sim_net_set_link_key(s->net, addr, key);
    if (addr < s->cfg.n_replicas) {
        s->hosts[addr]->key = key;
        return sim_net_set_link_key(s->net, addr, key);
    }
    if (addr < PX_CLIENT_BASE || addr - PX_CLIENT_BASE >= SIM_MAX_ENDPOINTS || key < s->cfg.n_replicas)
        return -EINVAL;
    uint32_t k = addr - PX_CLIENT_BASE;
    if (s->ep_host[k])
        return s->ep_key[k] == key ? 0 : -EBUSY; /* it lives on its host now */
    s->ep_key[k] = key;
    return 0;
}

int sim_crash(sim *s, int i, bool power_loss)
{
    sim_slot *slot = sim_slot_get(s, i);
    if (!slot)
        return -EINVAL;
    if (s->in_replica)
        return -EBUSY;
    if (!slot->r)
        return -EALREADY;
    sim_fold(s, 0xc0000 | ((uint64_t)i << 1) | power_loss);
    px_replica_free(slot->r);
    slot->r = NULL;
    px_storage_mem_crash(slot->storage, power_loss);
    if (!sim_packet(s)) {
        sim_net_flush(s->net, (uint32_t)i);
    } else if (power_loss) {
        sim_nic_power_off(s->hosts[i]->nic);
        sim_net_flush(s->net, (uint32_t)i); /* host i: its frames die with the machine */
    } else {
        sim_nic_app_down(s->hosts[i]->nic); /* the stack lives on and resets the flows */
    }
    sim_queue_cancel(&s->q, &slot->tick);
    sim_fifo_drop_all(s, &slot->pq);
    slot->paused = false;
    s->crashes++;
    return 0;
}

/* Packet model: the machine boots (after a power loss) and the stack opens the
 * replica's port again before the process starts. */
static int sim_host_boot(sim *s, int i)
{
    if (!sim_packet(s))
        return 0;
    sim_nic *nic = s->hosts[i]->nic;
    int rc = sim_nic_power_on(nic);
    return rc < 0 ? rc : sim_nic_app_up(nic);
}

int sim_restart(sim *s, int i)
{
    sim_slot *slot = sim_slot_get(s, i);
    if (!slot)
        return -EINVAL;
    if (s->in_replica)
        return -EBUSY;
    if (slot->r) {
        int rc = sim_crash(s, i, false);
        if (rc < 0)
            return rc;
    }
    sim_fold(s, 0x5000 | (uint64_t)i);
    int rc = sim_host_boot(s, i);
    if (rc == 0)
        rc = sim_slot_start(s, slot);
    if (rc < 0)
        return rc;
    slot->restarts++;
    s->restarts++;
    return 0;
}

int sim_pause(sim *s, int i)
{
    sim_slot *slot = sim_slot_get(s, i);
    if (!slot)
        return -EINVAL;
    if (s->in_replica)
        return -EBUSY;
    if (!slot->r)
        return -ESRCH;
    sim_fold(s, 0x9000 | (uint64_t)i);
    slot->paused = true;
    sim_queue_cancel(&s->q, &slot->tick);
    return 0;
}

/* Hand the buffered messages over in arrival order, as a resumed process
 * drains its socket buffer; then its overdue timers fire at once. (Packet
 * model: the stack kept acking meanwhile — only the process stopped.) */
int sim_resume(sim *s, int i)
{
    sim_slot *slot = sim_slot_get(s, i);
    if (!slot)
        return -EINVAL;
    if (s->in_replica)
        return -EBUSY;
    if (!slot->r)
        return -ESRCH;
    if (!slot->paused)
        return 0;
    sim_fold(s, 0x9100 | (uint64_t)i);
    slot->paused = false;
    sim_slot_drain(slot);
    sim_slot_resched(slot, false);
    return 0;
}

int sim_set_param(sim *s, int i, const char *name, const char *value)
{
    sim_slot *slot = sim_slot_get(s, i);
    if (!slot)
        return -EINVAL;
    if (s->in_replica)
        return -EBUSY;
    px_config next = slot->cfg;
    int rc = px_config_set(&next, name, value);
    if (rc < 0)
        return rc;
    if (slot->r) {
        s->in_replica++;
        rc = px_replica_set_param(slot->r, name, value);
        s->in_replica--;
        if (rc < 0)
            return rc;
        sim_slot_resched(slot, false);
    }
    slot->cfg = next;
    return 0;
}

/* ---- observation ---- */

void sim_on_event(sim *s, sim_event_fn fn, void *ctx)
{
    s->on_event = fn;
    s->on_event_ctx = ctx;
}

int sim_status(const sim *s, int i, sim_replica_status *out)
{
    if (i < 0 || i >= s->cfg.n_replicas)
        return -EINVAL;
    const sim_slot *slot = &s->slots[i];
    memset(out, 0, sizeof(*out));
    out->px.id = (uint8_t)i;
    out->px.leader = -1;
    out->down = slot->r == NULL;
    out->paused = slot->paused;
    out->queued = slot->pq.len;
    out->restarts = slot->restarts;
    if (slot->r)
        px_replica_status(slot->r, &out->px);
    return 0;
}

int sim_leader(const sim *s)
{
    int best = -1;
    uint64_t best_ballot = 0;
    for (int i = 0; i < s->cfg.n_replicas; i++) {
        const sim_slot *slot = &s->slots[i];
        if (!slot->r || slot->paused)
            continue;
        px_status st;
        px_replica_status(slot->r, &st);
        if (st.role == PX_LEADER && (best < 0 || st.ballot > best_ballot)) {
            best = i;
            best_ballot = st.ballot;
        }
    }
    return best;
}

const px_kv *sim_replica_kv(const sim *s, int i)
{
    if (i < 0 || i >= s->cfg.n_replicas || !s->slots[i].r)
        return NULL;
    return px_replica_kv(s->slots[i].r);
}

size_t sim_storage_records(const sim *s, int i)
{
    if (i < 0 || i >= s->cfg.n_replicas)
        return 0;
    return px_storage_mem_record_count(s->slots[i].storage);
}

static void sim_counters_hosts(const sim *s, sim_counters *out)
{
    for (uint32_t i = 0; i < s->n_hosts; i++) {
        sim_nic_counters nc;
        st_transport_stats ts;
        sim_nic_counters_get(s->hosts[i]->nic, &nc);
        sim_nic_transport_stats(s->hosts[i]->nic, &ts);
        out->msgs_no_flow += nc.msgs_no_flow;
        out->bad_frames += nc.frames_bad;
        out->flows_opened += ts.flows_opened;
        out->flows_reset += ts.flows_reset;
        out->retransmits += ts.tx_retransmits;
        out->rtos += ts.rtos;
    }
}

void sim_counters_get(const sim *s, sim_counters *out)
{
    sim_net_counters nc;
    sim_net_counters_get(s->net, &nc);
    memset(out, 0, sizeof(*out));
    out->pkts_sent = nc.sent;
    out->pkts_delivered = nc.delivered;
    out->pkts_dropped = nc.dropped;
    out->pkts_duplicated = nc.duplicated;
    out->pkts_overflow = nc.overflow;
    if (sim_packet(s)) {
        out->msgs_sent = s->pm_sent;
        out->msgs_delivered = s->pm_delivered;
        out->msgs_dropped = s->pm_dropped;
        out->bytes_sent = s->pm_bytes_sent;
        out->bytes_delivered = s->pm_bytes_delivered;
        sim_counters_hosts(s, out);
    } else {
        out->msgs_sent = nc.sent;
        out->msgs_delivered = nc.delivered;
        out->msgs_dropped = nc.dropped;
        out->msgs_duplicated = nc.duplicated;
        out->msgs_overflow = nc.overflow;
        out->bytes_sent = nc.bytes_sent;
        out->bytes_delivered = nc.bytes_delivered;
    }
    out->bad_frames += s->bad_frames;
    out->ticks = s->ticks;
    out->events = s->events;
    out->crashes = s->crashes;
    out->restarts = s->restarts;
    memcpy(out->sent_by_type, s->sent_by_type, sizeof(out->sent_by_type));
}

int sim_host_info_get(const sim *s, uint32_t addr, sim_host_info *out)
{
    if (!sim_packet(s))
        return -ENOTSUP;
    sim_host *h;
    int rc = sim_host_of((sim *)s, addr, false, &h);
    if (rc < 0)
        return rc == -EINVAL ? -ENOENT : rc;
    memset(out, 0, sizeof(*out));
    out->host = h->idx;
    out->ip = sim_nic_ip(h->idx);
    sim_nic_mac(h->idx, out->mac);
    out->key = h->key;
    out->powered = sim_nic_powered(h->nic);
    out->app_up = sim_nic_app_running(h->nic);
    sim_nic_counters_get(h->nic, &out->nic);
    sim_nic_transport_stats(h->nic, &out->transport);
    return 0;
}

int sim_flow_info(const sim *s, uint32_t addr, uint32_t peer_addr, st_flow_info *out)
{
    if (!sim_packet(s))
        return -ENOTSUP;
    sim_host *h, *peer;
    if (sim_host_of((sim *)s, addr, false, &h) < 0 || sim_host_of((sim *)s, peer_addr, false, &peer) < 0)
        return -ENOENT;
    return sim_nic_flow_info(h->nic, peer->idx, out);
}

uint64_t sim_hash(const sim *s)
{
    return s->hash;
}

/* ---- endpoints, timers ---- */

int sim_attach(sim *s, uint32_t addr, sim_recv_fn fn, void *ctx)
{
    if (addr < PX_CLIENT_BASE || addr - PX_CLIENT_BASE >= SIM_MAX_ENDPOINTS || !fn)
        return -EINVAL;
    sim_endpoint *ep = &s->endpoints[addr - PX_CLIENT_BASE];
    if (ep->fn)
        return -EADDRINUSE;
    if (sim_packet(s)) {
        sim_host *h;
        int rc = sim_host_of(s, addr, true, &h);
        if (rc < 0)
            return rc;
    }
    ep->fn = fn;
    ep->ctx = ctx;
    return 0;
}

void sim_detach(sim *s, uint32_t addr)
{
    if (addr >= PX_CLIENT_BASE && addr - PX_CLIENT_BASE < SIM_MAX_ENDPOINTS)
        s->endpoints[addr - PX_CLIENT_BASE] = (sim_endpoint){0};
}

int sim_send(sim *s, const px_msg *m)
{
    int rc = sim_send_from(s, m->from, m);
    sim_set_error(s, rc == -ENOMEM || rc == -ENOSPC ? rc : 0);
    return rc;
}

static void sim_timer_fire(sim_qnode *n, uint64_t now_us)
{
    sim_timer *t = (sim_timer *)((char *)n - offsetof(sim_timer, q));
    t->fn(t->ctx, now_us);
}

sim_timer *sim_timer_new(sim *s, sim_timer_fn fn, void *ctx)
{
    sim_timer *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    sim_qnode_init(&t->q, sim_timer_fire);
    t->s = s;
    t->fn = fn;
    t->ctx = ctx;
    return t;
}

int sim_timer_set(sim_timer *t, uint64_t at_us)
{
    return sim_queue_set(&t->s->q, &t->q, at_us);
}

void sim_timer_cancel(sim_timer *t)
{
    sim_queue_cancel(&t->s->q, &t->q);
}

bool sim_timer_armed(const sim_timer *t)
{
    return sim_qnode_queued(&t->q);
}

void sim_timer_free(sim_timer *t)
{
    if (!t)
        return;
    sim_timer_cancel(t);
    free(t);
}
