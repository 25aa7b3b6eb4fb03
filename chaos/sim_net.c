/* sim_net.c — frames, impairment and latency over the simulator's event queue. */
#include "sim_net.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct sim_net {
    sim_queue *q;
    sim_net_config cfg;
    rift_rng rng;
    st_impair *impair;
    sim_net_deliver_fn deliver;
    void *ctx;
    sim_frame *free_list[2]; /* small, large */
    uint32_t n_free[2];
    uint64_t in_flight;
    sim_net_counters c;
    uint32_t epoch[SIM_NET_EPOCH_SLOTS];
    uint32_t key[SIM_NET_EPOCH_SLOTS]; /* impairment key per address */
    /* Every frame allocated, so sim_net_free can release queued ones too. */
    sim_frame **all;
    size_t n_all, cap_all;
};

void sim_net_config_default(sim_net_config *c)
{
    c->latency_us = 100;
    c->jitter_us = 20;
}

static void sim_net_fire(sim_qnode *n, uint64_t now_us);

sim_net *sim_net_new(sim_queue *q, const sim_net_config *c, const rift_rng *rng,
                     sim_net_deliver_fn deliver, void *ctx)
{
    sim_net *net = calloc(1, sizeof(*net));
    if (!net)
        return NULL;
    net->impair = st_impair_new();
    if (!net->impair) {
        free(net);
        return NULL;
    }
    net->q = q;
    net->cfg = *c;
    net->rng = *rng;
    net->deliver = deliver;
    net->ctx = ctx;
    for (uint32_t a = 0; a < SIM_NET_EPOCH_SLOTS; a++)
        net->key[a] = a;
    return net;
}

void sim_net_free(sim_net *net)
{
    if (!net)
        return;
    for (size_t i = 0; i < net->n_all; i++) {
        sim_queue_cancel(net->q, &net->all[i]->q);
        free(net->all[i]);
    }
    free(net->all);
    st_impair_free(net->impair);
    free(net);
}

/* Every allocated frame sits in `all` at f->slot, so teardown can free frames
 * that are still queued or parked in a paused node's receive queue. */
static int sim_net_track(sim_net *net, sim_frame *f)
{
    if (net->n_all == net->cap_all) {
        size_t cap = net->cap_all ? net->cap_all * 2 : 1024;
        sim_frame **a = realloc(net->all, cap * sizeof(*a));
        if (!a)
            return -ENOMEM;
        net->all = a;
        net->cap_all = cap;
    }
    f->slot = (uint32_t)net->n_all;
    net->all[net->n_all++] = f;
    return 0;
}

static void sim_net_untrack(sim_net *net, sim_frame *f)
{
    sim_frame *last = net->all[--net->n_all];
    net->all[f->slot] = last;
    last->slot = f->slot;
}

static int sim_net_class(size_t len)
{
    return len <= SIM_NET_CLASS_SMALL ? 0 : len <= SIM_NET_CLASS_LARGE ? 1 : -1;
}

static const uint32_t sim_net_class_cap[2] = {SIM_NET_CLASS_SMALL, SIM_NET_CLASS_LARGE};

sim_frame *sim_net_frame_alloc(sim_net *net, size_t len)
{
    if (len > UINT32_MAX - sizeof(sim_frame))
        return NULL;
    int k = sim_net_class(len);
    sim_frame *f = NULL;
    if (k >= 0 && net->free_list[k]) {
        f = net->free_list[k];
        net->free_list[k] = f->next;
        net->n_free[k]--;
    } else {
        uint32_t cap = k >= 0 ? sim_net_class_cap[k] : (uint32_t)len;
        f = malloc(sizeof(*f) + cap);
        if (!f)
            return NULL;
        if (sim_net_track(net, f) < 0) {
            free(f);
            return NULL;
        }
        f->cap = cap;
    }
    sim_qnode_init(&f->q, sim_net_fire);
    f->net = net;
    f->next = NULL;
    f->src = f->dst = 0;
    f->epoch = 0;
    f->len = (uint32_t)len;
    return f;
}

void sim_net_frame_free(sim_net *net, sim_frame *f)
{
    if (!f)
        return;
    sim_queue_cancel(net->q, &f->q);
    int k = sim_net_class(f->cap);
    if (k >= 0 && f->cap == sim_net_class_cap[k] && net->n_free[k] < SIM_NET_FREE_MAX) {
        f->next = net->free_list[k];
        net->free_list[k] = f;
        net->n_free[k]++;
        return;
    }
    sim_net_untrack(net, f);
    free(f);
}

void sim_net_drop(sim_net *net, sim_frame *f)
{
    net->c.dropped++;
    sim_net_frame_free(net, f);
}

static uint64_t sim_net_latency(sim_net *net)
{
    uint64_t base = net->cfg.latency_us, j = net->cfg.jitter_us;
    if (j == 0)
        return base;
    uint64_t r = rift_rng_range(&net->rng, 0, 2 * j);
    return base + r >= j ? base + r - j : 0;
}

static int sim_net_schedule(sim_net *net, sim_frame *f, uint64_t extra_us, uint64_t *link_last_us)
{
    uint64_t now = net->q->now_us;
    if (net->in_flight >= SIM_NET_MAX_IN_FLIGHT) {
        net->c.overflow++;
        sim_net_drop(net, f);
        return 0;
    }
    uint64_t base = now + sim_net_latency(net);
    if (link_last_us) {
        if (base < *link_last_us)
            base = *link_last_us;
        *link_last_us = base;
    }
    int rc = sim_queue_set(net->q, &f->q, base + extra_us);
    if (rc < 0) {
        sim_net_drop(net, f);
        return rc;
    }
    net->in_flight++;
    return 0;
}

static inline uint32_t sim_net_key(const sim_net *net, uint32_t addr)
{
    return addr < SIM_NET_EPOCH_SLOTS ? net->key[addr] : addr;
}

int sim_net_send_link(sim_net *net, sim_frame *f, uint32_t src, uint32_t dst, uint64_t *link_last_us)
{
    f->src = src;
    f->dst = dst;
    f->epoch = dst < SIM_NET_EPOCH_SLOTS ? net->epoch[dst] : 0;
    net->c.sent++;
    net->c.bytes_sent += f->len;
    st_impair_verdict v;
    st_impair_decide(net->impair, sim_net_key(net, src), sim_net_key(net, dst), &net->rng, &v);
    if (v.n_copies == 0) {
        sim_net_drop(net, f);
        return 0;
    }
    for (uint8_t i = 1; i < v.n_copies && i < ST_IMPAIR_MAX_COPIES; i++) {
        sim_frame *dup = sim_net_frame_alloc(net, f->len);
        if (!dup)
            break; /* a lost duplicate is still a valid network behaviour */
        memcpy(dup->data, f->data, f->len);
        dup->src = src;
        dup->dst = dst;
        dup->epoch = f->epoch;
        net->c.duplicated++;
        if (sim_net_schedule(net, dup, v.delay_us[i], link_last_us) < 0)
            break;
    }
    return sim_net_schedule(net, f, v.delay_us[0], link_last_us);
}

int sim_net_send(sim_net *net, sim_frame *f, uint32_t src, uint32_t dst)
{
    return sim_net_send_link(net, f, src, dst, NULL);
}

int sim_net_send_bytes(sim_net *net, uint32_t src, uint32_t dst, const void *data, size_t len)
{
    sim_frame *f = sim_net_frame_alloc(net, len);
    if (!f)
        return -ENOMEM;
    memcpy(f->data, data, len);
    return sim_net_send(net, f, src, dst);
}

static void sim_net_fire(sim_qnode *n, uint64_t now_us)
{
    sim_frame *f = (sim_frame *)((char *)n - offsetof(sim_frame, q));
    sim_net *net = f->net;
    net->in_flight--;
    if (f->dst < SIM_NET_EPOCH_SLOTS && f->epoch != net->epoch[f->dst]) {
        sim_net_drop(net, f);
        return;
    }
    net->c.delivered++;
    net->c.bytes_delivered += f->len;
    net->deliver(net->ctx, f, now_us);
}

int sim_net_flush(sim_net *net, uint32_t addr)
{
    if (addr >= SIM_NET_EPOCH_SLOTS)
        return -EINVAL;
    net->epoch[addr]++;
    return 0;
}

int sim_net_set_link_key(sim_net *net, uint32_t addr, uint32_t key)
{
    if (addr >= SIM_NET_EPOCH_SLOTS)
        return -EINVAL;
    net->key[addr] = key;
    return 0;
}

st_impair *sim_net_impair(sim_net *net)
{
    return net->impair;
}

void sim_net_set_latency(sim_net *net, uint64_t latency_us, uint64_t jitter_us)
{
    net->cfg.latency_us = latency_us;
    net->cfg.jitter_us = jitter_us;
}

void sim_net_counters_get(const sim_net *net, sim_net_counters *out)
{
    *out = net->c;
}

uint64_t sim_net_in_flight(const sim_net *net)
{
    return net->in_flight;
}
