/* test_sim_packet.c — the simulator's packet model: replicas and client nodes
 * as hosts with NICs, messages over the real st_transport as st_wire frames,
 * the fault model keyed per host, flow resets and reconnects, and what tells a
 * crashed process (its stack lives on) from a dead machine. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chaos/sim.h"
#include "chaos/sim_client.h"

#define MS 1000ull
#define SEC 1000000ull

typedef struct harness {
    sim *s;
    sim_workload *w;
    uint64_t snap_installs[PX_MAX_REPLICAS];
    uint64_t ok, info, ok_after_mark, mark_us;
} harness;

static void on_event(void *ctx, const px_event *e)
{
    harness *h = ctx;
    if (e->kind == PX_EV_SNAP_INSTALL)
        h->snap_installs[e->replica]++;
}

static void on_hist(void *ctx, const sim_hist *r)
{
    harness *h = ctx;
    h->ok += r->type == SIM_HIST_OK;
    h->info += r->type == SIM_HIST_INFO;
    if (r->type == SIM_HIST_OK && r->time_us >= h->mark_us)
        h->ok_after_mark++;
}

static sim *new_sim(uint8_t n, uint64_t seed, uint8_t model)
{
    sim_config c;
    sim_config_default(&c);
    cr_assert_eq(c.net_model, SIM_NET_PACKET, "the packet model is the default");
    c.n_replicas = n;
    c.seed = seed;
    c.net_model = model;
    int err = 0;
    sim *s = sim_new(&c, &err);
    cr_assert_not_null(s, "sim_new: %d", err);
    return s;
}

/* keys: 0 = every client its own host; otherwise clients i share key keys[i]. */
static void harness_init(harness *h, uint8_t n, uint64_t seed, const sim_workload_config *wc,
                         const uint32_t *keys)
{
    memset(h, 0, sizeof(*h));
    h->s = new_sim(n, seed, SIM_NET_PACKET);
    sim_on_event(h->s, on_event, h);
    for (uint32_t i = 0; keys && i < wc->n_clients; i++)
        cr_assert_eq(sim_link_key(h->s, PX_CLIENT_BASE + i, keys[i]), 0);
    int err = 0;
    h->w = sim_workload_new(h->s, wc, &err);
    cr_assert_not_null(h->w, "sim_workload_new: %d", err);
    sim_workload_on_history(h->w, on_hist, h);
}

static void harness_fini(harness *h)
{
    sim_workload_free(h->w);
    sim_free(h->s);
}

static void run_for(harness *h, uint64_t dt)
{
    cr_assert_eq(sim_run_for(h->s, dt), 0);
}

static void mark(harness *h)
{
    h->mark_us = sim_now_us(h->s);
    h->ok_after_mark = 0;
}

static int wait_leader(harness *h)
{
    for (int i = 0; i < 300 && sim_leader(h->s) < 0; i++)
        run_for(h, 10 * MS);
    int l = sim_leader(h->s);
    cr_assert_geq(l, 0, "no leader");
    return l;
}

static sim_host_info host(harness *h, uint32_t addr)
{
    sim_host_info hi;
    cr_assert_eq(sim_host_info_get(h->s, addr, &hi), 0, "no host for %u", addr);
    return hi;
}

static px_status status(harness *h, int i)
{
    sim_replica_status st;
    cr_assert_eq(sim_status(h->s, i, &st), 0);
    return st.px;
}

static void assert_converged(harness *h)
{
    int l = sim_leader(h->s);
    cr_assert_geq(l, 0, "no leader");
    px_status ls = status(h, l);
    for (int i = 0; i < sim_n_replicas(h->s); i++) {
        px_status st = status(h, i);
        cr_assert_eq(st.last_executed, ls.last_executed, "r%d executed %llu, leader r%d %llu", i,
                     (unsigned long long)st.last_executed, l, (unsigned long long)ls.last_executed);
        cr_assert_eq(st.digest, ls.digest);
    }
}

/* ---- addressing ---- */

Test(sim_packet, hosts_have_addresses_and_client_nodes_share_one)
{
    sim_workload_config wc;
    sim_workload_config_default(&wc);
    wc.n_clients = 4;
    uint32_t keys[4] = {0x10000, 0x10001, 0x10000, 0x10001}; /* two client nodes */
    harness h;
    harness_init(&h, 3, 1, &wc, keys);
    for (uint32_t i = 0; i < 3; i++) {
        sim_host_info r = host(&h, i);
        cr_assert_eq(r.host, i);
        cr_assert_eq(r.ip, sim_nic_ip(i));
        cr_assert_eq(r.ip >> 16, (198u << 8) | 18u, "in 198.18.0.0/15");
        cr_assert_eq(r.key, i);
        cr_assert(r.powered && r.app_up);
        uint8_t want[6] = {0x02, 0x72, 0x66, 0, 0, (uint8_t)(i + 1)};
        cr_assert_eq(memcmp(r.mac, want, 6), 0);
    }
    sim_host_info c0 = host(&h, PX_CLIENT_BASE), c1 = host(&h, PX_CLIENT_BASE + 1);
    cr_assert_eq(host(&h, PX_CLIENT_BASE + 2).host, c0.host, "same key, same node");
    cr_assert_eq(host(&h, PX_CLIENT_BASE + 3).host, c1.host);
    cr_assert_neq(c0.host, c1.host);
    cr_assert_eq(c0.key, 0x10000);
    /* A placed endpoint cannot move; nobody lives on a replica's host. */
    cr_assert_eq(sim_link_key(h.s, PX_CLIENT_BASE + 2, 0x10001), -EBUSY);
    cr_assert_eq(sim_link_key(h.s, PX_CLIENT_BASE + 2, 0x10000), 0);
    cr_assert_eq(sim_link_key(h.s, PX_CLIENT_BASE + 9, 1), -EINVAL);
    sim_host_info none;
    cr_assert_eq(sim_host_info_get(h.s, PX_CLIENT_BASE + 9, &none), -ENOENT);
    harness_fini(&h);

    sim *m = new_sim(3, 1, SIM_NET_MESSAGE);
    cr_assert_eq(sim_host_info_get(m, 0, &none), -ENOTSUP);
    sim_free(m);
}

/* ---- messages ride the transport ---- */

Test(sim_packet, messages_travel_as_transport_frames)
{
    sim_workload_config wc;
    sim_workload_config_default(&wc);
    uint32_t keys[4] = {0x10000, 0x10000, 0x10000, 0x10000};
    harness h;
    harness_init(&h, 3, 3, &wc, keys);
    wait_leader(&h);
    cr_assert_eq(sim_workload_start(h.w), 0);
    run_for(&h, 1 * SEC);
    sim_counters c;
    sim_counters_get(h.s, &c);
    cr_assert_gt(h.ok, 500);
    cr_assert_eq(h.info, 0);
    cr_assert_eq(c.bad_frames, 0);
    /* data and acks: more frames than messages; every message was delivered
     * or is still in flight; one client node has one flow per replica. */
    cr_assert_gt(c.pkts_delivered, c.msgs_delivered);
    cr_assert_geq(c.msgs_sent, c.msgs_delivered);
    cr_assert_lt(c.msgs_sent - c.msgs_delivered, 100);
    cr_assert_eq(c.msgs_dropped, 0, "a healthy network loses no message");
    cr_assert_eq(c.flows_reset, 0);
    sim_host_info node = host(&h, PX_CLIENT_BASE);
    cr_assert_eq(node.transport.flows_opened, node.nic.connects);
    cr_assert_leq(node.nic.connects, 3, "one flow per replica, shared by the node's clients");
    cr_assert_gt(node.transport.msgs_delivered, 500);
    cr_assert_eq(node.transport.rx_bad_header, 0);
    harness_fini(&h);
}

/* Loss is the transport's to repair: the replicas see (almost) none of it. */
Test(sim_packet, the_transport_repairs_packet_loss)
{
    sim_workload_config wc;
    sim_workload_config_default(&wc);
    harness h;
    harness_init(&h, 3, 5, &wc, NULL);
    wait_leader(&h);
    cr_assert_eq(sim_workload_start(h.w), 0);
    run_for(&h, 200 * MS);
    st_impair_rule loss = {.src = ST_IMPAIR_ANY, .dst = ST_IMPAIR_ANY, .loss = 0.1};
    cr_assert_geq(sim_impair_add(h.s, &loss), 0);
    sim_counters a, b;
    sim_counters_get(h.s, &a);
    mark(&h);
    run_for(&h, 2 * SEC);
    sim_counters_get(h.s, &b);
    cr_assert_gt(b.pkts_dropped - a.pkts_dropped, 1000, "the rule drops frames");
    cr_assert_gt(b.retransmits - a.retransmits, 500, "the transport resends them");
    cr_assert_eq(b.msgs_dropped - a.msgs_dropped, 0, "no message is lost at 10%% loss");
    cr_assert_gt(h.ok_after_mark, 500);
    cr_assert_eq(h.info, 0, "no op times out");
    harness_fini(&h);
}

/* ---- large messages ---- */

/* A state transfer image of ~200 KiB crosses as ~150 fragments and is
 * reassembled by the receiving transport. */
Test(sim_packet, state_transfer_is_reassembled_from_many_fragments)
{
    sim_workload_config wc;
    sim_workload_config_default(&wc);
    memset(wc.mix, 0, sizeof(wc.mix));
    wc.mix[PX_OP_PUT] = 1;
    wc.n_keys = 64;
    wc.value_bytes = 4096;
    wc.rate_ops_per_s = 300; /* fills most keys before the crash, no more */
    harness h;
    harness_init(&h, 3, 7, &wc, NULL);
    int l = wait_leader(&h);
    cr_assert_eq(sim_workload_start(h.w), 0);
    run_for(&h, 500 * MS);
    int f = (l + 1) % 3;
    cr_assert_eq(sim_crash(h.s, f, true), 0);
    cr_assert(!host(&h, (uint32_t)f).powered, "power loss: the stack is gone");
    run_for(&h, 500 * MS);
    /* A leader reboot: f's entries above its checkpoint carry the old ballot,
     * so only an image can bring it past the new leader's trim point. */
    cr_assert_eq(sim_restart(h.s, l), 0);
    run_for(&h, 500 * MS);
    sim_host_info before = host(&h, (uint32_t)f);
    cr_assert_eq(sim_restart(h.s, f), 0);
    cr_assert(host(&h, (uint32_t)f).powered && host(&h, (uint32_t)f).app_up);
    l = wait_leader(&h);
    cr_assert_lt(status(&h, f).last_executed, status(&h, l).log_base, "restarted behind the leader's trim point");
    run_for(&h, 1 * SEC);
    cr_assert_gt(h.snap_installs[f], 0, "no state transfer");
    sim_host_info after = host(&h, (uint32_t)f);
    uint64_t frames = after.transport.rx_packets - before.transport.rx_packets;
    size_t keys = px_kv_key_count(sim_replica_kv(h.s, l));
    cr_assert_gt(keys, 32);
    cr_assert_gt(frames, keys * 4096 / ST_WIRE_PAYLOAD_MAX, "the image of %zu keys came in %llu frames", keys,
                 (unsigned long long)frames);
    sim_counters c;
    sim_counters_get(h.s, &c);
    cr_assert_gt(c.sent_by_type[PX_MSG_SNAP], 0);
    cr_assert_eq(c.bad_frames, 0);
    sim_workload_stop(h.w);
    run_for(&h, 1500 * MS);
    assert_converged(&h);
    harness_fini(&h);
}

/* ---- resets and reconnects ---- */

/* A follower cut off in both directions: the flows to it die of RTO failures,
 * messages meanwhile are lost, and after the heal the flows come back and it
 * catches up. */
Test(sim_packet, cut_flows_reset_and_reconnect_after_heal)
{
    sim_workload_config wc;
    sim_workload_config_default(&wc);
    harness h;
    harness_init(&h, 3, 11, &wc, NULL);
    int l = wait_leader(&h);
    int f = (l + 1) % 3;
    cr_assert_eq(sim_workload_start(h.w), 0);
    run_for(&h, 300 * MS);
    sim_counters a, b;
    sim_counters_get(h.s, &a);
    cr_assert_eq(a.flows_reset, 0);
    int r1 = sim_cut(h.s, (uint32_t)f, ST_IMPAIR_ANY);
    int r2 = sim_cut(h.s, ST_IMPAIR_ANY, (uint32_t)f);
    cr_assert(r1 >= 0 && r2 >= 0);
    mark(&h);
    run_for(&h, 2 * SEC);
    sim_counters_get(h.s, &b);
    cr_assert_gt(b.flows_reset, a.flows_reset, "RTO failures reset the flows");
    cr_assert_gt(b.msgs_no_flow, 0, "messages without a flow are lost");
    cr_assert_gt(b.rtos, a.rtos);
    cr_assert_gt(h.ok_after_mark, 1000, "the majority goes on");
    sim_host_info fh = host(&h, (uint32_t)f);
    cr_assert_gt(fh.nic.connects, 2, "the follower keeps trying, with backoff");
    cr_assert_lt(fh.nic.connects, 2 * 2 * SEC / 10000, "... not in a tight loop");
    sim_impair_clear(h.s);
    run_for(&h, 1 * SEC);
    sim_host_info fh2 = host(&h, (uint32_t)f);
    cr_assert_gt(fh2.nic.established + fh2.nic.accepted, fh.nic.established + fh.nic.accepted,
                 "flows are back after the heal");
    cr_assert_eq(status(&h, f).leader, sim_leader(h.s));
    sim_workload_stop(h.w);
    run_for(&h, 1500 * MS);
    assert_converged(&h);
    harness_fini(&h);
}

/* A killed process: its stack resets the flows at once (RST) and refuses new
 * ones until the process is back. A dead machine says nothing. */
Test(sim_packet, process_crash_resets_power_loss_is_silent)
{
    sim_workload_config wc;
    sim_workload_config_default(&wc);
    harness h;
    harness_init(&h, 3, 13, &wc, NULL);
    int l = wait_leader(&h);
    int f = (l + 1) % 3;
    cr_assert_eq(sim_workload_start(h.w), 0);
    run_for(&h, 300 * MS);
    sim_host_info lh0 = host(&h, (uint32_t)l);
    cr_assert_eq(sim_crash(h.s, f, false), 0);
    sim_host_info fh = host(&h, (uint32_t)f);
    cr_assert(fh.powered && !fh.app_up, "the stack outlives the process");
    run_for(&h, 5 * MS);
    sim_host_info lh1 = host(&h, (uint32_t)l);
    cr_assert_gt(lh1.nic.resets, lh0.nic.resets, "the leader saw the RST within 5 ms");
    run_for(&h, 500 * MS);
    fh = host(&h, (uint32_t)f);
    cr_assert_gt(fh.transport.rx_no_listener, 0, "SYNs to the dead process are refused");
    cr_assert_eq(sim_restart(h.s, f), 0);
    run_for(&h, 1 * SEC);

    /* Power loss: no RST; the peers find out by timeouts. */
    sim_host_info lh2 = host(&h, (uint32_t)l);
    sim_counters a;
    sim_counters_get(h.s, &a);
    cr_assert_eq(sim_crash(h.s, f, true), 0);
    run_for(&h, 5 * MS);
    sim_host_info lh3 = host(&h, (uint32_t)l);
    cr_assert_eq(lh3.nic.resets, lh2.nic.resets, "nobody told the leader");
    run_for(&h, 1 * SEC);
    sim_counters b;
    sim_counters_get(h.s, &b);
    cr_assert_gt(b.rtos, a.rtos);
    cr_assert_gt(host(&h, (uint32_t)l).nic.resets, lh2.nic.resets, "... until its RTOs gave up");
    cr_assert_eq(sim_restart(h.s, f), 0);
    run_for(&h, 1 * SEC);
    sim_workload_stop(h.w);
    run_for(&h, 1500 * MS);
    assert_converged(&h);
    harness_fini(&h);
}

/* A paused process: its stack keeps acking, so nobody's flows reset; the
 * messages wait and are taken on resume. */
Test(sim_packet, a_paused_replica_keeps_its_flows)
{
    sim_workload_config wc;
    sim_workload_config_default(&wc);
    harness h;
    harness_init(&h, 3, 17, &wc, NULL);
    int l = wait_leader(&h);
    int f = (l + 1) % 3;
    cr_assert_eq(sim_workload_start(h.w), 0);
    run_for(&h, 300 * MS);
    sim_counters a, b;
    sim_counters_get(h.s, &a);
    cr_assert_eq(sim_pause(h.s, f), 0);
    run_for(&h, 1500 * MS);
    sim_replica_status st;
    cr_assert_eq(sim_status(h.s, f, &st), 0);
    cr_assert_gt(st.queued, 100, "messages wait for the paused process");
    sim_counters_get(h.s, &b);
    cr_assert_eq(b.flows_reset, a.flows_reset, "its stack acked them all along");
    cr_assert_eq(sim_resume(h.s, f), 0);
    cr_assert_eq(sim_status(h.s, f, &st), 0);
    cr_assert_eq(st.queued, 0);
    sim_workload_stop(h.w);
    run_for(&h, 1500 * MS);
    assert_converged(&h);
    harness_fini(&h);
}

/* ---- the fault model per host ---- */

/* One rule on a client node's key covers every client on it, and only them. */
Test(sim_packet, a_rule_on_a_client_node_covers_its_clients)
{
    sim_workload_config wc;
    sim_workload_config_default(&wc);
    wc.op_timeout_us = 300 * MS;
    uint32_t keys[4] = {0x10000, 0x10001, 0x10000, 0x10001};
    harness h;
    harness_init(&h, 3, 19, &wc, keys);
    wait_leader(&h);
    cr_assert_eq(sim_workload_start(h.w), 0);
    run_for(&h, 300 * MS);
    cr_assert_geq(sim_cut(h.s, 0x10000, ST_IMPAIR_ANY), 0);
    cr_assert_geq(sim_cut(h.s, ST_IMPAIR_ANY, 0x10000), 0);
    run_for(&h, 5 * MS); /* frames already past the fault stage still land */
    sim_host_info n0a = host(&h, PX_CLIENT_BASE), n1a = host(&h, PX_CLIENT_BASE + 1);
    run_for(&h, 1 * SEC);
    sim_host_info n0b = host(&h, PX_CLIENT_BASE), n1b = host(&h, PX_CLIENT_BASE + 1);
    cr_assert_eq(n0b.nic.msgs_delivered, n0a.nic.msgs_delivered, "the cut node hears nothing");
    cr_assert_gt(n1b.nic.msgs_delivered - n1a.nic.msgs_delivered, 300, "the other node is untouched");
    cr_assert_gt(h.info, 0, "the cut node's ops time out");
    sim_impair_clear(h.s);
    mark(&h);
    run_for(&h, 1 * SEC);
    sim_host_info n0c = host(&h, PX_CLIENT_BASE);
    cr_assert_gt(n0c.nic.msgs_delivered - n0b.nic.msgs_delivered, 100, "the node reconnects after the heal");
    harness_fini(&h);
}

/* ---- determinism ---- */

static uint64_t faulty_hash(uint64_t seed, uint8_t model)
{
    harness h;
    memset(&h, 0, sizeof(h));
    h.s = new_sim(3, seed, model);
    sim_workload_config wc;
    sim_workload_config_default(&wc);
    int err;
    h.w = sim_workload_new(h.s, &wc, &err);
    cr_assert_not_null(h.w);
    sim_workload_on_history(h.w, on_hist, &h);
    cr_assert_eq(sim_workload_start(h.w), 0);
    run_for(&h, 600 * MS);
    int l = sim_leader(h.s);
    cr_assert_geq(l, 0);
    st_impair_rule r = {.src = ST_IMPAIR_ANY, .dst = ST_IMPAIR_ANY, .loss = 0.05, .duplicate = 0.05,
                        .reorder = 0.1, .delay_us = 200, .jitter_us = 150};
    cr_assert_geq(sim_impair_add(h.s, &r), 0);
    cr_assert_eq(sim_crash(h.s, l, false), 0);
    run_for(&h, 400 * MS);
    cr_assert_eq(sim_restart(h.s, l), 0);
    cr_assert_eq(sim_crash(h.s, (l + 1) % 3, true), 0);
    run_for(&h, 400 * MS);
    cr_assert_eq(sim_restart(h.s, (l + 1) % 3), 0);
    run_for(&h, 400 * MS);
    sim_counters c;
    sim_counters_get(h.s, &c);
    cr_assert_eq(c.bad_frames, 0);
    cr_assert_gt(h.ok, 300);
    uint64_t x = sim_hash(h.s) ^ px_hash64(1, &c, sizeof(c));
    harness_fini(&h);
    return x;
}

Test(sim_packet, same_seed_same_run_in_both_models)
{
    cr_assert_eq(faulty_hash(21, SIM_NET_PACKET), faulty_hash(21, SIM_NET_PACKET));
    cr_assert_neq(faulty_hash(21, SIM_NET_PACKET), faulty_hash(22, SIM_NET_PACKET));
    cr_assert_eq(faulty_hash(21, SIM_NET_MESSAGE), faulty_hash(21, SIM_NET_MESSAGE));
    cr_assert_neq(faulty_hash(21, SIM_NET_MESSAGE), faulty_hash(21, SIM_NET_PACKET));
}

Test(sim_packet, bad_network_config_is_refused)
{
    sim_config c;
    sim_config_default(&c);
    c.net_model = 7;
    int err = 0;
    cr_assert_null(sim_new(&c, &err));
    cr_assert_eq(err, -EINVAL);
    sim_config_default(&c);
    c.nic.transport.ack_delay_us = c.nic.transport.rto_min_us; /* st_config_check refuses */
    cr_assert_null(sim_new(&c, &err));
    sim_config_default(&c);
    c.nic.reconnect_max_us = c.nic.reconnect_min_us - 1;
    cr_assert_null(sim_new(&c, &err));
    uint8_t m;
    cr_assert_eq(sim_net_model_parse("packet", &m), 0);
    cr_assert_eq(m, SIM_NET_PACKET);
    cr_assert_eq(sim_net_model_parse("message", &m), 0);
    cr_assert_eq(m, SIM_NET_MESSAGE);
    cr_assert_eq(sim_net_model_parse("frames", &m), -EINVAL);
}
