/* ch_sim_backend.c — run a scenario in the deterministic simulator.
 *
 * Node mapping: replica i is sim address i; logical client k is address
 * PX_CLIENT_BASE + k and lives on client node k % nodes. Impairments are keyed
 * by node (sim_link_key), so one rule covers every client of a client node. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ch_backend.h"
#include "ch_links.h"
#include "ch_timeline.h"
#include "sim.h"
#include "sim_client.h"

#define SAMPLE_EVERY_US 100000u
#define CLIENT_KEY_BASE 0x10000u /* impairment key of client node j: CLIENT_KEY_BASE + j */

typedef struct simrun {
    const ch_run_ctx *ctx;
    const ch_scenario *sc;
    sim *s;
    sim_workload *w;
    ch_topology topo;
    ch_timeline *tl;
    sim_timer *act_timer, *sample_timer;
    uint64_t ok_last_second, ok_total;
    int error;
    ch_error *err;
} simrun;

static uint32_t node_key(const simrun *r, int node)
{
    return node < r->topo.n_replicas ? (uint32_t)node : CLIENT_KEY_BASE + (uint32_t)(node - r->topo.n_replicas);
}

/* ---------- recording ---------- */

static void on_px_event(void *ctx, const px_event *e)
{
    simrun *r = ctx;
    ch_record_px_event(r->ctx->record, e);
}

static void on_history(void *ctx, const sim_hist *h)
{
    simrun *r = ctx;
    if (ch_record_wl_op(r->ctx->record, h) < 0)
        r->error = -ENOMEM;
    if (h->type == SIM_HIST_OK || h->type == SIM_HIST_FAIL)
        r->ok_last_second++;
}

static void take_samples(void *ctx, uint64_t now)
{
    simrun *r = ctx;
    for (int i = 0; i < r->topo.n_replicas; i++) {
        sim_replica_status st;
        if (sim_status(r->s, i, &st) == 0)
            ch_record_sample(r->ctx->record, now, i, &st.px, st.down, st.paused);
    }
    if (now % 1000000 < SAMPLE_EVERY_US && r->ctx->progress) {
        int active = ch_timeline_active_faults(r->tl);
        ch_progress p = {now, r->sc->duration_ms * 1000, (double)r->ok_last_second, sim_leader(r->s), active};
        r->ctx->progress(r->ctx->progress_ctx, &p);
        r->ok_last_second = 0;
    }
    sim_timer_set(r->sample_timer, now + SAMPLE_EVERY_US);
}

/* ---------- timeline primitives ---------- */

static int tl_leader(void *ctx) { return sim_leader(((simrun *)ctx)->s); }

static int tl_impair_add(void *ctx, int src, int dst, const st_impair_rule *proto)
{
    simrun *r = ctx;
    st_impair_rule rule = *proto;
    rule.src = node_key(r, src);
    rule.dst = node_key(r, dst);
    return sim_impair_add(r->s, &rule);
}

static int tl_impair_remove(void *ctx, int id) { return sim_impair_remove(((simrun *)ctx)->s, id); }

static void tl_impair_clear_link(void *ctx, int src, int dst)
{
    simrun *r = ctx;
    st_impair_remove_link(sim_impair(r->s), node_key(r, src), node_key(r, dst));
}

static bool tl_impair_alive(void *ctx, int id) { return st_impair_get(sim_impair(((simrun *)ctx)->s), id, NULL, NULL); }

static int tl_crash(void *ctx, int rep) { return sim_crash(((simrun *)ctx)->s, rep, false) == 0 ? 0 : -EALREADY; }

static int tl_restart(void *ctx, int rep) { return sim_restart(((simrun *)ctx)->s, rep) == 0 ? 0 : -EALREADY; }

static int tl_pause(void *ctx, int rep, bool pause)
{
    simrun *r = ctx;
    return (pause ? sim_pause(r->s, rep) : sim_resume(r->s, rep)) == 0 ? 0 : -EALREADY;
}

static int tl_set_param(void *ctx, int rep, const char *param, const char *value)
{
    return sim_set_param(((simrun *)ctx)->s, rep, param, value);
}

/* One virtual-time timer drives the whole timeline. */
static void fire_timeline(void *ctx, uint64_t now)
{
    simrun *r = ctx;
    int e = ch_timeline_fire(r->tl, now);
    if (e < 0 && !r->error)
        r->error = e;
    uint64_t next = ch_timeline_next_us(r->tl);
    if (next != UINT64_MAX)
        sim_timer_set(r->act_timer, next > now ? next : now);
}

/* ---------- setup ---------- */

static void workload_config(const ch_scenario *sc, sim_workload_config *w)
{
    sim_workload_config_default(w);
    w->n_clients = sc->workload.clients;
    w->rate_ops_per_s = sc->workload.rate_ops_per_s;
    w->mix[PX_OP_GET] = sc->workload.mix.get;
    w->mix[PX_OP_PUT] = sc->workload.mix.put;
    w->mix[PX_OP_DEL] = sc->workload.mix.del;
    w->mix[PX_OP_APPEND] = sc->workload.mix.append;
    w->mix[PX_OP_CAS] = sc->workload.mix.cas;
    w->n_keys = sc->workload.keys;
    w->dist = sc->workload.distribution == CH_KEYS_ZIPF ? SIM_KEYS_ZIPF : SIM_KEYS_UNIFORM;
    w->zipf_theta = sc->workload.zipf_s;
    w->value_bytes = sc->workload.value_bytes;
    w->op_timeout_us = sc->workload.op_timeout_ms * 1000;
}

static int setup(simrun *r)
{
    const ch_scenario *sc = r->sc;
    sim_config c;
    sim_config_default(&c);
    /* Scenario runs go through the real transport (packet level), as on the
     * dpdk backend: the same in-order flows, retransmissions and head-of-line
     * blocking, so both backends agree (flaky-wan shows why it matters). */
    c.net_model = SIM_NET_PACKET;
    c.n_replicas = sc->replicas;
    c.seed = r->ctx->seed;
    c.paxos = sc->paxos;
    c.durability = sc->durability;
    int e = 0;
    r->s = sim_new(&c, &e);
    if (!r->s)
        return e;
    for (uint32_t k = 0; k < sc->workload.clients; k++)
        sim_link_key(r->s, PX_CLIENT_BASE + k, CLIENT_KEY_BASE + k % sc->workload.nodes);
    sim_workload_config wc;
    workload_config(sc, &wc);
    r->w = sim_workload_new(r->s, &wc, &e);
    if (!r->w)
        return e;
    sim_on_event(r->s, on_px_event, r);
    sim_workload_on_history(r->w, on_history, r);
    r->act_timer = sim_timer_new(r->s, fire_timeline, r);
    r->sample_timer = sim_timer_new(r->s, take_samples, r);
    if (!r->act_timer || !r->sample_timer)
        return -ENOMEM;
    uint64_t first = ch_timeline_next_us(r->tl);
    if (first != UINT64_MAX)
        sim_timer_set(r->act_timer, first);
    sim_timer_set(r->sample_timer, 0);
    return sim_workload_start(r->w);
}

static void teardown(simrun *r)
{
    sim_timer_free(r->act_timer);
    sim_timer_free(r->sample_timer);
    sim_workload_free(r->w);
    sim_free(r->s);
    ch_timeline_free(r->tl);
}

int ch_backend_sim_run(const ch_run_ctx *ctx, ch_error *err)
{
    const ch_scenario *sc = ctx->scenario;
    simrun r = {.ctx = ctx, .sc = sc, .err = err};
    r.topo = (ch_topology){sc->replicas, (int)sc->workload.nodes, -1};
    static const ch_timeline_ops ops = {
        .leader = tl_leader, .impair_add = tl_impair_add, .impair_remove = tl_impair_remove,
        .impair_clear_link = tl_impair_clear_link, .impair_alive = tl_impair_alive, .crash = tl_crash,
        .restart = tl_restart, .pause = tl_pause, .set_param = tl_set_param, .link_set = NULL};
    ch_timeline_ops o = ops;
    o.ctx = &r;
    int e = 0;
    r.tl = ch_timeline_new(ctx, &o, &e, err);
    if (e == 0 && (e = setup(&r)) < 0 && !err->msg[0])
        snprintf(err->msg, sizeof(err->msg), "simulator setup failed: %s", strerror(-e));
    uint64_t end = sc->duration_ms * 1000;
    /* Run in 10 ms slices so an interrupt stops a long run promptly. */
    for (uint64_t t = 0; e == 0 && t < end && !r.error;) {
        t = t + 10000 < end ? t + 10000 : end;
        e = sim_run_until(r.s, t);
        if (ctx->interrupted && *ctx->interrupted)
            break;
    }
    if (e == 0 && r.error)
        e = r.error;
    if (r.s) {
        uint64_t stop = sim_now_us(r.s);
        sim_workload_stop(r.w);
        /* Let ops in flight complete or time out, so few end as open invokes. */
        if (e == 0)
            e = sim_run_for(r.s, sc->workload.op_timeout_ms * 1000 + 1000);
        ch_record_end(ctx->record, stop);
    }
    teardown(&r);
    return e;
}
