/* sim_nic.c — a simulated host's NIC, transport and connection policy (see sim_nic.h). */
#include "sim_nic.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What this host knows about one peer host. */
typedef struct sim_conn {
    uint32_t out_flow;     /* the flow we opened (0 = none) */
    uint32_t in_flow;      /* the flow the peer opened to us (0 = none) */
    uint64_t retry_at_us;  /* no connect before this */
    uint64_t backoff_us;   /* the last backoff; 0 = none pending */
    uint64_t link_last_us; /* FIFO state of the directed link to the peer */
} sim_conn;

struct sim_nic {
    sim_net *net;
    sim_queue *q;
    const sim_nic_config *cfg;
    uint32_t host;
    uint32_t ip;
    uint8_t mac[ST_ETH_ADDR_LEN];
    bool listen;
    bool app_up;
    st_transport *t;        /* NULL while powered off */
    rift_rng rng;           /* the transport's stream; continues across power cycles */
    sim_qnode tick;         /* the transport's one pending timer */
    sim_conn *conns;        /* by peer host index */
    uint32_t n_conns;
    sim_nic_env env;
    bool stale;             /* the timer awaits sim_nic_sync */
    sim_nic_counters c;
    st_transport_stats past; /* retired transports' counters */
};

void sim_nic_mac(uint32_t host, uint8_t mac[ST_ETH_ADDR_LEN])
{
    uint32_t v = host + 1;
    mac[0] = 0x02;
    mac[1] = 0x72;
    mac[2] = 0x66;
    mac[3] = (uint8_t)(v >> 16);
    mac[4] = (uint8_t)(v >> 8);
    mac[5] = (uint8_t)v;
}

void sim_nic_config_default(sim_nic_config *c)
{
    memset(c, 0, sizeof(*c));
    st_config_default(&c->transport);
    c->transport.max_flows = SIM_NIC_LISTEN_FLOWS;
    c->reconnect_min_us = 10000;
    c->reconnect_max_us = 160000;
}

int sim_nic_config_check(const sim_nic_config *c, char *err, size_t errlen)
{
    int rc = st_config_check(&c->transport, err, errlen);
    if (rc < 0)
        return rc;
    if (c->reconnect_min_us < 1 || c->reconnect_max_us < c->reconnect_min_us) {
        if (err && errlen)
            snprintf(err, errlen, "reconnect_us: expected 1 <= min <= max");
        return -EINVAL;
    }
    return 0;
}

/* ---- the peer table ---- */

static sim_conn *conn_at(sim_nic *n, uint32_t peer)
{
    if (peer < n->n_conns)
        return &n->conns[peer];
    if (peer >= SIM_NIC_MAX_HOSTS)
        return NULL;
    uint32_t cap = n->n_conns ? n->n_conns : 8;
    while (cap <= peer)
        cap *= 2;
    sim_conn *c = realloc(n->conns, (size_t)cap * sizeof(*c));
    if (!c)
        return NULL;
    memset(c + n->n_conns, 0, (size_t)(cap - n->n_conns) * sizeof(*c));
    n->conns = c;
    n->n_conns = cap;
    return &c[peer];
}

static sim_conn *conn_of_ip(sim_nic *n, uint32_t ip)
{
    int64_t peer = sim_nic_host_of(ip);
    return peer < 0 ? NULL : conn_at(n, (uint32_t)peer);
}

/* Jittered into [b/2, b] so peers that failed together do not retry in step. */
static void conn_backoff(sim_nic *n, sim_conn *c)
{
    uint64_t b = c->backoff_us ? c->backoff_us * 2 : n->cfg->reconnect_min_us;
    if (b > n->cfg->reconnect_max_us)
        b = n->cfg->reconnect_max_us;
    c->backoff_us = b;
    c->retry_at_us = n->q->now_us + b / 2 + rift_rng_range(&n->rng, 0, b - b / 2);
}

/* ---- the transport's timer ---- */

static void nic_resched(sim_nic *n, bool after_tick)
{
    uint64_t want = n->t ? st_transport_next_tick_us(n->t) : UINT64_MAX;
    if (want == UINT64_MAX) {
        sim_queue_cancel(n->q, &n->tick);
        return;
    }
    /* After a tick at least 1 µs later, so a timer due "now" cannot spin. */
    uint64_t floor = n->q->now_us + (after_tick ? 1 : 0);
    if (want < floor)
        want = floor;
    if (sim_qnode_queued(&n->tick) && n->tick.at_us == want)
        return;
    sim_queue_set(n->q, &n->tick, want); /* -ENOSPC: the transport retries on its next input */
}

static void nic_stale(sim_nic *n)
{
    if (n->stale)
        return;
    n->stale = true;
    n->env.stale(n->env.ctx, n->host);
}

void sim_nic_sync(sim_nic *n)
{
    if (!n->stale)
        return;
    n->stale = false;
    nic_resched(n, false);
}

static void nic_tick_fire(sim_qnode *qn, uint64_t now_us)
{
    sim_nic *n = (sim_nic *)((char *)qn - offsetof(sim_nic, tick));
    if (!n->t)
        return;
    st_transport_tick(n->t, now_us);
    nic_resched(n, true);
}

/* ---- transport environment ---- */

static void nic_tx(void *ctx, const st_pkt *pkt)
{
    sim_nic *n = ctx;
    int64_t peer = sim_nic_host_of(pkt->ip_dst);
    sim_conn *c = peer < 0 ? NULL : conn_at(n, (uint32_t)peer);
    if (!c) {
        n->c.frames_bad++; /* the transport only answers addresses we gave it */
        return;
    }
    st_pkt p = *pkt;
    memcpy(p.eth_src, n->mac, ST_ETH_ADDR_LEN);
    sim_nic_mac((uint32_t)peer, p.eth_dst);
    size_t need = ST_WIRE_HDRS_LEN + (size_t)p.payload_len;
    sim_frame *f = sim_net_frame_alloc(n->net, need < ST_WIRE_FRAME_MIN ? ST_WIRE_FRAME_MIN : need);
    if (!f) {
        n->c.frames_nomem++;
        return;
    }
    int len = st_wire_build(f->data, f->cap, &p);
    if (len < 0) {
        n->c.frames_bad++;
        sim_net_frame_free(n->net, f);
        return;
    }
    f->len = (uint32_t)len;
    /* -ENOMEM/-ENOSPC lose this frame only; the transport recovers it. */
    if (sim_net_send_link(n->net, f, n->host, (uint32_t)peer, &c->link_last_us) < 0)
        n->c.frames_nomem++;
}

static void nic_deliver(void *ctx, uint32_t flow, const uint8_t *msg, size_t len)
{
    sim_nic *n = ctx;
    st_flow_info fi;
    int64_t from = st_transport_flow_info(n->t, flow, &fi) == 0 ? sim_nic_host_of(fi.remote_ip) : -1;
    n->c.msgs_delivered++;
    n->env.deliver(n->env.ctx, n->host, msg, len, from < 0 ? UINT32_MAX : (uint32_t)from);
}

static void nic_flow_gone(sim_nic *n, const st_event *e)
{
    sim_conn *c = conn_of_ip(n, e->remote_ip);
    if (!c)
        return;
    if (c->out_flow == e->flow) {
        c->out_flow = 0;
        conn_backoff(n, c);
    }
    if (c->in_flow == e->flow)
        c->in_flow = 0;
}

static void nic_event(void *ctx, const st_event *e)
{
    sim_nic *n = ctx;
    sim_conn *c = conn_of_ip(n, e->remote_ip);
    switch (e->kind) {
    case ST_EV_ESTABLISHED:
        n->c.established++;
        if (c && c->out_flow == e->flow)
            c->backoff_us = 0;
        break;
    case ST_EV_ACCEPTED:
        n->c.accepted++;
        if (!n->app_up || !c) {
            st_transport_abort(n->t, e->flow, e->time_us); /* nobody to hand it to */
            break;
        }
        if (c->in_flow && c->in_flow != e->flow)
            st_transport_abort(n->t, c->in_flow, e->time_us); /* the peer abandoned it */
        c->in_flow = e->flow;
        break;
    case ST_EV_RESET:
        n->c.resets++;
        nic_flow_gone(n, e);
        break;
    case ST_EV_CLOSED:
        n->c.closes++;
        nic_flow_gone(n, e);
        break;
    default:
        break;
    }
}

/* ---- life cycle ---- */

static int nic_transport_start(sim_nic *n)
{
    st_env env = {.ctx = n, .tx = nic_tx, .deliver = nic_deliver, .event = nic_event, .rng = &n->rng};
    st_config tc = n->cfg->transport;
    /* A host that only connects needs a flow per replica, not a listener's table. */
    if (!n->listen && tc.max_flows > SIM_NIC_CLIENT_FLOWS)
        tc.max_flows = SIM_NIC_CLIENT_FLOWS;
    int err = 0;
    n->t = st_transport_new(&tc, &env, n->ip, &err);
    if (!n->t)
        return err < 0 ? err : -ENOMEM;
    if (n->listen && n->app_up)
        return st_transport_listen(n->t, SIM_NIC_PORT);
    return 0;
}

sim_nic *sim_nic_new(sim_net *net, sim_queue *q, uint32_t host, bool listen, const sim_nic_config *c,
                     const rift_rng *rng, const sim_nic_env *env, int *err)
{
    int rc = -EINVAL;
    sim_nic *n = NULL;
    if (host >= SIM_NIC_MAX_HOSTS || host >= SIM_NET_EPOCH_SLOTS || !env->deliver || !env->stale ||
        sim_nic_config_check(c, NULL, 0) < 0)
        goto fail;
    rc = -ENOMEM;
    n = calloc(1, sizeof(*n));
    if (!n)
        goto fail;
    n->net = net;
    n->q = q;
    n->cfg = c;
    n->host = host;
    n->ip = sim_nic_ip(host);
    sim_nic_mac(host, n->mac);
    n->listen = listen;
    n->app_up = true;
    n->rng = *rng;
    n->env = *env;
    sim_qnode_init(&n->tick, nic_tick_fire);
    rc = nic_transport_start(n);
    if (rc < 0)
        goto fail;
    return n;
fail:
    sim_nic_free(n);
    if (err)
        *err = rc;
    return NULL;
}

/* Fold a retiring transport's counters into `past` (every field is a u64). */
static void nic_retire_stats(sim_nic *n)
{
    _Static_assert(sizeof(st_transport_stats) % sizeof(uint64_t) == 0, "st_transport_stats: u64 fields");
    st_transport_stats now;
    st_transport_get_stats(n->t, &now);
    now.flows_active = now.tx_mem_bytes = now.rx_mem_bytes = 0; /* gauges do not add up */
    uint64_t *dst = (uint64_t *)&n->past;
    const uint64_t *src = (const uint64_t *)&now;
    for (size_t i = 0; i < sizeof(now) / sizeof(uint64_t); i++)
        dst[i] += src[i];
}

void sim_nic_free(sim_nic *n)
{
    if (!n)
        return;
    sim_queue_cancel(n->q, &n->tick);
    st_transport_free(n->t);
    free(n->conns);
    free(n);
}

int sim_nic_send(sim_nic *n, uint32_t peer, bool may_connect, const void *msg, size_t len)
{
    if (!n->t || !n->app_up) {
        n->c.msgs_refused++;
        return -ENETDOWN;
    }
    sim_conn *c = conn_at(n, peer);
    if (!c || peer == n->host) {
        n->c.msgs_refused++;
        return c ? -EINVAL : -ENOMEM;
    }
    uint64_t now = n->q->now_us;
    uint32_t flow = c->out_flow ? c->out_flow : c->in_flow;
    int rc = 0;
    if (!flow) {
        if (!may_connect || now < c->retry_at_us) {
            n->c.msgs_no_flow++;
            return -ENOTCONN;
        }
        rc = st_transport_connect(n->t, sim_nic_ip(peer), SIM_NIC_PORT, 0, now, &flow);
        if (rc == 0) {
            n->c.connects++;
            c->out_flow = flow;
        }
    }
    if (rc == 0)
        rc = st_transport_send(n->t, flow, msg, len, now);
    if (rc == 0)
        n->c.msgs_sent++;
    else
        n->c.msgs_refused++;
    nic_stale(n);
    return rc;
}

void sim_nic_input(sim_nic *n, const sim_frame *f)
{
    if (!n->t)
        return;
    st_wire_local local = {.ip = n->ip};
    memcpy(local.mac, n->mac, ST_ETH_ADDR_LEN);
    st_pkt p;
    if (st_wire_parse(f->data, f->len, &local, &p) != ST_WIRE_OK || p.ethertype != ST_ETHERTYPE_IPV4) {
        n->c.frames_bad++;
        return;
    }
    st_transport_rx(n->t, &p, n->q->now_us);
    nic_stale(n);
}

/* The stack frees a dead app's flows: RST to every peer, port closed. */
void sim_nic_app_down(sim_nic *n)
{
    if (!n->app_up)
        return;
    n->app_up = false;
    if (n->t) {
        uint64_t now = n->q->now_us;
        for (uint32_t i = 0; i < n->n_conns; i++) {
            sim_conn *c = &n->conns[i];
            if (c->out_flow)
                st_transport_abort(n->t, c->out_flow, now);
            if (c->in_flow)
                st_transport_abort(n->t, c->in_flow, now);
        }
        if (n->listen)
            st_transport_unlisten(n->t, SIM_NIC_PORT);
    }
    for (uint32_t i = 0; i < n->n_conns; i++)
        n->conns[i] = (sim_conn){.link_last_us = n->conns[i].link_last_us};
    nic_stale(n);
}

int sim_nic_app_up(sim_nic *n)
{
    if (n->app_up)
        return 0;
    n->app_up = true;
    if (n->t && n->listen)
        return st_transport_listen(n->t, SIM_NIC_PORT);
    return 0;
}

void sim_nic_power_off(sim_nic *n)
{
    if (!n->t)
        return;
    nic_retire_stats(n);
    st_transport_free(n->t);
    n->t = NULL;
    n->app_up = false;
    for (uint32_t i = 0; i < n->n_conns; i++)
        n->conns[i] = (sim_conn){.link_last_us = n->conns[i].link_last_us};
    sim_queue_cancel(n->q, &n->tick);
}

/* The machine boots with the stack up and the app not yet started. */
int sim_nic_power_on(sim_nic *n)
{
    if (n->t)
        return 0;
    n->app_up = false;
    return nic_transport_start(n);
}

bool sim_nic_powered(const sim_nic *n)
{
    return n->t != NULL;
}

bool sim_nic_app_running(const sim_nic *n)
{
    return n->t && n->app_up;
}

uint32_t sim_nic_host(const sim_nic *n)
{
    return n->host;
}

void sim_nic_counters_get(const sim_nic *n, sim_nic_counters *out)
{
    *out = n->c;
}

void sim_nic_transport_stats(const sim_nic *n, st_transport_stats *out)
{
    *out = n->past;
    if (!n->t)
        return;
    st_transport_stats now;
    st_transport_get_stats(n->t, &now);
    uint64_t *dst = (uint64_t *)out;
    const uint64_t *src = (const uint64_t *)&now;
    for (size_t i = 0; i < sizeof(now) / sizeof(uint64_t); i++)
        dst[i] += src[i];
}

void sim_nic_flows(const sim_nic *n, uint32_t peer, uint32_t *out_flow, uint32_t *in_flow)
{
    const sim_conn *c = peer < n->n_conns ? &n->conns[peer] : NULL;
    *out_flow = c ? c->out_flow : 0;
    *in_flow = c ? c->in_flow : 0;
}

int sim_nic_flow_info(const sim_nic *n, uint32_t peer, st_flow_info *out)
{
    if (!n->t)
        return -ENETDOWN;
    uint32_t out_flow, in_flow;
    sim_nic_flows(n, peer, &out_flow, &in_flow);
    uint32_t flow = out_flow ? out_flow : in_flow;
    return flow ? st_transport_flow_info(n->t, flow, out) : -ENOTCONN;
}
