/* test_sim.c — the deterministic simulator: queue order, determinism, and the
 * cluster behaviours a partition lab relies on (election, crash, pause, cuts,
 * partitions, state transfer). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chaos/sim.h"
#include "chaos/sim_client.h"
#include "chaos/sim_queue.h"

#define MS 1000ull
#define SEC 1000000ull

/* ---- harness: a sim, a workload, and what they reported ---- */

typedef struct rec {
    uint64_t process, time_us, value_hash;
    uint8_t type, f;
    char key[16];
} rec;

typedef struct harness {
    sim *s;
    sim_workload *w;
    rec *hist;
    size_t n_hist, cap_hist;
    uint64_t kinds[PX_MAX_REPLICAS][PX_EV_KIND_MAX + 1];
    uint64_t last_snap_index[PX_MAX_REPLICAS];
    uint64_t ok_after_mark; /* ok completions since mark_us */
    uint64_t mark_us;
} harness;

static void on_event(void *ctx, const px_event *e)
{
    harness *h = ctx;
    cr_assert_lt(e->replica, PX_MAX_REPLICAS);
    cr_assert_leq(e->kind, PX_EV_KIND_MAX);
    h->kinds[e->replica][e->kind]++;
    if (e->kind == PX_EV_SNAP_INSTALL)
        h->last_snap_index[e->replica] = e->index;
}

static void on_hist(void *ctx, const sim_hist *r)
{
    harness *h = ctx;
    if (h->n_hist == h->cap_hist) {
        h->cap_hist = h->cap_hist ? h->cap_hist * 2 : 1024;
        h->hist = realloc(h->hist, h->cap_hist * sizeof(*h->hist));
        cr_assert_not_null(h->hist);
    }
    rec *x = &h->hist[h->n_hist++];
    memset(x, 0, sizeof(*x));
    x->process = r->process;
    x->time_us = r->time_us;
    x->type = r->type;
    x->f = r->f;
    x->value_hash = r->value ? px_hash64(1, r->value, r->value_len) : 0;
    snprintf(x->key, sizeof(x->key), "%s", r->key);
    if (r->type == SIM_HIST_OK && r->time_us >= h->mark_us)
        h->ok_after_mark++;
}

static void harness_init(harness *h, uint8_t n, uint64_t seed, px_durability d)
{
    memset(h, 0, sizeof(*h));
    sim_config c;
    sim_config_default(&c);
    c.n_replicas = n;
    c.seed = seed;
    c.durability = d;
    int err = 0;
    h->s = sim_new(&c, &err);
    cr_assert_not_null(h->s, "sim_new: %d", err);
    sim_on_event(h->s, on_event, h);
    sim_workload_config wc;
    sim_workload_config_default(&wc);
    h->w = sim_workload_new(h->s, &wc, &err);
    cr_assert_not_null(h->w, "sim_workload_new: %d", err);
    sim_workload_on_history(h->w, on_hist, h);
}

static void harness_fini(harness *h)
{
    sim_workload_free(h->w);
    sim_free(h->s);
    free(h->hist);
}

static void run_until(harness *h, uint64_t t)
{
    cr_assert_eq(sim_run_until(h->s, t), 0);
}

static void mark(harness *h)
{
    h->mark_us = sim_now_us(h->s);
    h->ok_after_mark = 0;
}

static int wait_leader(harness *h, uint64_t until_us)
{
    while (sim_now_us(h->s) < until_us) {
        int l = sim_leader(h->s);
        if (l >= 0)
            return l;
        run_until(h, sim_now_us(h->s) + 10 * MS);
    }
    return sim_leader(h->s);
}

static px_status status(harness *h, int i)
{
    sim_replica_status st;
    cr_assert_eq(sim_status(h->s, i, &st), 0);
    return st.px;
}

/* Every live replica reaches the leader's last_executed and digest. */
static void assert_converged(harness *h)
{
    int l = sim_leader(h->s);
    cr_assert_geq(l, 0, "no leader");
    px_status ls = status(h, l);
    for (int i = 0; i < sim_n_replicas(h->s); i++) {
        px_status st = status(h, i);
        cr_assert_eq(st.last_executed, ls.last_executed, "r%d executed %llu, leader r%d %llu", i,
                     (unsigned long long)st.last_executed, l, (unsigned long long)ls.last_executed);
        cr_assert_eq(st.digest, ls.digest, "r%d digest differs from the leader's", i);
    }
}

/* ---- the event queue ---- */

typedef struct qprobe {
    sim_qnode n;
    int id;
    int *order;
    int *k;
} qprobe;

static void qprobe_fire(sim_qnode *n, uint64_t now_us)
{
    qprobe *p = (qprobe *)n;
    (void)now_us;
    p->order[(*p->k)++] = p->id;
}

Test(sim_queue, orders_by_time_then_schedule_order)
{
    sim_queue q;
    cr_assert_eq(sim_queue_init(&q), 0);
    int order[8], k = 0;
    qprobe p[6];
    uint64_t at[6] = {50, 10, 50, 10, 30, 99};
    for (int i = 0; i < 6; i++) {
        p[i] = (qprobe){.id = i, .order = order, .k = &k};
        sim_qnode_init(&p[i].n, qprobe_fire);
        cr_assert_eq(sim_queue_set(&q, &p[i].n, at[i]), 0);
    }
    sim_queue_cancel(&q, &p[5].n);          /* cancelled: never fires */
    cr_assert_eq(sim_queue_set(&q, &p[1].n, 50), 0); /* moved later: after 0 and 2 */
    sim_qnode *n;
    while ((n = sim_queue_pop(&q, 1000)) != NULL)
        n->fire(n, q.now_us);
    int want[5] = {3, 4, 0, 2, 1};
    cr_assert_eq(k, 5);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(order[i], want[i], "position %d: %d, want %d", i, order[i], want[i]);
    cr_assert_eq(q.now_us, 50);
    sim_queue_fini(&q);
}

Test(sim_queue, many_nodes_pop_sorted)
{
    sim_queue q;
    cr_assert_eq(sim_queue_init(&q), 0);
    enum { N = 10000 };
    sim_qnode *nodes = calloc(N, sizeof(*nodes));
    cr_assert_not_null(nodes);
    rift_rng rng;
    rift_rng_seed(&rng, 3);
    for (int i = 0; i < N; i++) {
        sim_qnode_init(&nodes[i], NULL);
        cr_assert_eq(sim_queue_set(&q, &nodes[i], rift_rng_range(&rng, 0, 5000)), 0);
    }
    for (int i = 0; i < N; i += 3)
        sim_queue_cancel(&q, &nodes[i]);
    uint64_t last_at = 0, last_seq = 0, popped = 0;
    sim_qnode *n;
    while ((n = sim_queue_pop(&q, UINT64_MAX)) != NULL) {
        cr_assert(n->at_us > last_at || (n->at_us == last_at && n->seq > last_seq) || popped == 0);
        last_at = n->at_us;
        last_seq = n->seq;
        popped++;
    }
    cr_assert_eq(popped, N - (N + 2) / 3);
    sim_queue_fini(&q);
    free(nodes);
}

/* ---- the network ---- */

typedef struct netprobe {
    sim_net *net;
    int got;
    uint64_t last_us;
} netprobe;

static void netprobe_deliver(void *ctx, sim_frame *f, uint64_t now_us)
{
    netprobe *p = ctx;
    p->got++;
    p->last_us = now_us;
    cr_assert_eq(f->len, 5);
    cr_assert_eq(memcmp(f->data, "hello", 5), 0);
    sim_net_frame_free(p->net, f);
}

Test(sim_net, latency_loss_duplicate_and_flush)
{
    sim_queue q;
    cr_assert_eq(sim_queue_init(&q), 0);
    rift_rng rng;
    rift_rng_seed(&rng, 9);
    sim_net_config c = {.latency_us = 100, .jitter_us = 0};
    netprobe p = {0};
    p.net = sim_net_new(&q, &c, &rng, netprobe_deliver, &p);
    cr_assert_not_null(p.net);
    cr_assert_eq(sim_net_send_bytes(p.net, 1, 2, "hello", 5), 0);
    sim_qnode *n;
    while ((n = sim_queue_pop(&q, UINT64_MAX)) != NULL)
        n->fire(n, q.now_us);
    cr_assert_eq(p.got, 1);
    cr_assert_eq(p.last_us, 100);

    /* A cut drops, a duplicate doubles, a flush kills what is in flight. */
    st_impair_rule cut = {.src = 1, .dst = 2, .cut = true};
    int id = st_impair_add(sim_net_impair(p.net), &cut);
    cr_assert_geq(id, 0);
    cr_assert_eq(sim_net_send_bytes(p.net, 1, 2, "hello", 5), 0);
    cr_assert_eq(sim_net_send_bytes(p.net, 2, 1, "hello", 5), 0); /* other direction passes */
    st_impair_remove(sim_net_impair(p.net), id);
    st_impair_rule dup = {.src = ST_IMPAIR_ANY, .dst = ST_IMPAIR_ANY, .duplicate = 1.0};
    cr_assert_geq(st_impair_add(sim_net_impair(p.net), &dup), 0);
    cr_assert_eq(sim_net_send_bytes(p.net, 1, 3, "hello", 5), 0);
    cr_assert_eq(sim_net_send_bytes(p.net, 1, 4, "hello", 5), 0);
    cr_assert_eq(sim_net_flush(p.net, 4), 0);
    while ((n = sim_queue_pop(&q, UINT64_MAX)) != NULL)
        n->fire(n, q.now_us);
    sim_net_counters nc;
    sim_net_counters_get(p.net, &nc);
    cr_assert_eq(p.got, 1 + 1 + 2, "got %d", p.got);
    cr_assert_eq(nc.duplicated, 2);
    cr_assert_eq(nc.dropped, 1 + 2);
    cr_assert_eq(sim_net_in_flight(p.net), 0);
    sim_net_free(p.net);
    sim_queue_fini(&q);
}

/* ---- the API's edges ---- */

Test(sim, rejects_bad_config_and_bad_calls)
{
    sim_config c;
    sim_config_default(&c);
    c.n_replicas = 0;
    int err = 0;
    cr_assert_null(sim_new(&c, &err));
    cr_assert_eq(err, -EINVAL);
    c.n_replicas = PX_MAX_REPLICAS + 1;
    cr_assert_null(sim_new(&c, &err));

    harness h;
    harness_init(&h, 3, 1, PX_DURABILITY_FSYNC);
    cr_assert_eq(sim_crash(h.s, 3, false), -EINVAL);
    cr_assert_eq(sim_crash(h.s, 1, false), 0);
    cr_assert_eq(sim_crash(h.s, 1, false), -EALREADY);
    cr_assert_eq(sim_pause(h.s, 1), -ESRCH);
    cr_assert_eq(sim_set_param(h.s, 0, "no_such_param", "1"), -ENOENT);
    cr_assert_eq(sim_set_param(h.s, 0, "heartbeat_ms", "20"), 0);
    cr_assert_eq(sim_attach(h.s, 5, NULL, NULL), -EINVAL);
    sim_replica_status st;
    cr_assert_eq(sim_status(h.s, 1, &st), 0);
    cr_assert(st.down);
    cr_assert_eq(sim_restart(h.s, 1), 0);
    cr_assert_eq(sim_status(h.s, 1, &st), 0);
    cr_assert(!st.down);
    harness_fini(&h);

    sim_workload_config wc;
    sim_workload_config_default(&wc);
    wc.n_keys = 0;
    harness_init(&h, 3, 1, PX_DURABILITY_FSYNC);
    cr_assert_null(sim_workload_new(h.s, &wc, &err));
    cr_assert_eq(err, -EINVAL);
    sim_workload_config_default(&wc); /* the harness's clients hold these addresses */
    cr_assert_null(sim_workload_new(h.s, &wc, &err));
    cr_assert_eq(err, -EADDRINUSE);
    harness_fini(&h);
}

/* ---- determinism ---- */

/* A busy run with faults: crash and restart, loss, a pause. */
static void faulty_run(harness *h, uint64_t seed)
{
    harness_init(h, 3, seed, PX_DURABILITY_FSYNC);
    cr_assert_eq(sim_workload_start(h->w), 0);
    run_until(h, 1 * SEC);
    int l = sim_leader(h->s);
    cr_assert_geq(l, 0);
    cr_assert_eq(sim_crash(h->s, l, false), 0);
    st_impair_rule loss = {.src = ST_IMPAIR_ANY, .dst = ST_IMPAIR_ANY, .loss = 0.1,
                           .delay_us = 300, .jitter_us = 200};
    cr_assert_geq(sim_impair_add(h->s, &loss), 0);
    run_until(h, 1500 * MS);
    cr_assert_eq(sim_pause(h->s, (l + 1) % 3), 0);
    run_until(h, 1800 * MS);
    cr_assert_eq(sim_resume(h->s, (l + 1) % 3), 0);
    cr_assert_eq(sim_restart(h->s, l), 0);
    run_until(h, 2500 * MS);
    sim_impair_clear(h->s);
    run_until(h, 3 * SEC);
}

Test(sim, same_seed_same_run)
{
    harness a, b, c;
    faulty_run(&a, 42);
    faulty_run(&b, 42);
    faulty_run(&c, 43);
    cr_assert_gt(a.n_hist, 100, "the workload ran (%zu records)", a.n_hist);
    cr_assert_eq(sim_hash(a.s), sim_hash(b.s));
    cr_assert_eq(a.n_hist, b.n_hist);
    cr_assert_eq(memcmp(a.hist, b.hist, a.n_hist * sizeof(rec)), 0, "histories differ");
    sim_counters ca, cb;
    sim_counters_get(a.s, &ca);
    sim_counters_get(b.s, &cb);
    cr_assert_eq(memcmp(&ca, &cb, sizeof(ca)), 0);
    cr_assert_neq(sim_hash(a.s), sim_hash(c.s), "another seed, another run");
    cr_assert_eq(ca.bad_frames, 0);
    harness_fini(&a);
    harness_fini(&b);
    harness_fini(&c);
}

/* ---- healthy cluster ---- */

Test(sim, leader_emerges_and_commands_complete)
{
    harness h;
    harness_init(&h, 3, 7, PX_DURABILITY_FSYNC);
    int l = wait_leader(&h, 2 * SEC);
    cr_assert_geq(l, 0, "no leader within 2 s");
    run_until(&h, sim_now_us(h.s) + 100 * MS);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(status(&h, i).leader, l, "r%d believes r%d leads", i, status(&h, i).leader);
    cr_assert_eq(sim_workload_start(h.w), 0);
    run_until(&h, sim_now_us(h.s) + 2 * SEC);
    sim_workload_counters wc;
    sim_workload_counters_get(h.w, &wc);
    cr_assert_gt(wc.ok, 1000, "ok %llu", (unsigned long long)wc.ok);
    cr_assert_eq(wc.info, 0, "no op may time out in a healthy cluster");
    sim_workload_stop(h.w);
    run_until(&h, sim_now_us(h.s) + 200 * MS);
    cr_assert_eq(sim_workload_outstanding(h.w), 0);
    /* Stopped clients send nothing: the only traffic left is heartbeats. */
    sim_counters before, after;
    sim_counters_get(h.s, &before);
    run_until(&h, sim_now_us(h.s) + 1 * SEC);
    sim_counters_get(h.s, &after);
    cr_assert_lt(after.msgs_sent - before.msgs_sent, 200, "idle cluster sent %llu",
                 (unsigned long long)(after.msgs_sent - before.msgs_sent));
    assert_converged(&h);
    cr_assert_gt(h.kinds[l][PX_EV_TRIM], 0, "the leader compacts its log");
    cr_assert_lt(status(&h, l).log_entries, 200);
    harness_fini(&h);
}

Test(sim, open_loop_rate_is_met)
{
    sim_config c;
    sim_config_default(&c);
    c.seed = 5;
    int err;
    sim *s = sim_new(&c, &err);
    cr_assert_not_null(s);
    sim_workload_config wc;
    sim_workload_config_default(&wc);
    wc.n_clients = 16;
    wc.rate_ops_per_s = 500;
    sim_workload *w = sim_workload_new(s, &wc, &err);
    cr_assert_not_null(w);
    cr_assert_eq(sim_run_until(s, 1 * SEC), 0);
    cr_assert_eq(sim_workload_start(w), 0);
    cr_assert_eq(sim_run_until(s, 5 * SEC), 0);
    sim_workload_counters k;
    sim_workload_counters_get(w, &k);
    cr_assert(k.invoked > 1800 && k.invoked < 2200, "invoked %llu in 4 s at 500/s",
              (unsigned long long)k.invoked);
    cr_assert_geq(k.ok + k.fail, k.invoked - 16);
    sim_workload_free(w);
    sim_free(s);
}

/* ---- faults ---- */

Test(sim, leader_crash_elects_a_new_leader)
{
    harness h;
    harness_init(&h, 3, 11, PX_DURABILITY_FSYNC);
    int l = wait_leader(&h, 2 * SEC);
    cr_assert_geq(l, 0);
    cr_assert_eq(sim_workload_start(h.w), 0);
    run_until(&h, sim_now_us(h.s) + 500 * MS);
    cr_assert_eq(sim_crash(h.s, l, true), 0);
    uint64_t crash_us = sim_now_us(h.s);
    mark(&h);
    int l2 = -1;
    while (sim_now_us(h.s) < crash_us + 2 * SEC && ((l2 = sim_leader(h.s)) < 0 || h.ok_after_mark == 0))
        run_until(&h, sim_now_us(h.s) + 10 * MS);
    cr_assert_geq(l2, 0, "no new leader 2 s after the crash");
    cr_assert_neq(l2, l);
    cr_assert_gt(h.ok_after_mark, 0, "commits did not resume");
    cr_assert_gt(status(&h, l2).ballot, 0);
    cr_assert_eq(sim_restart(h.s, l), 0);
    run_until(&h, sim_now_us(h.s) + 1 * SEC);
    sim_workload_stop(h.w);
    run_until(&h, sim_now_us(h.s) + 1500 * MS);
    assert_converged(&h);
    harness_fini(&h);
}

Test(sim, pause_queues_messages_and_resume_delivers_them)
{
    harness h;
    harness_init(&h, 3, 13, PX_DURABILITY_FSYNC);
    int l = wait_leader(&h, 2 * SEC);
    cr_assert_geq(l, 0);
    cr_assert_eq(sim_workload_start(h.w), 0);
    run_until(&h, sim_now_us(h.s) + 300 * MS);
    uint64_t ticks_before;
    sim_counters sc;
    cr_assert_eq(sim_pause(h.s, l), 0);
    cr_assert_eq(sim_leader(h.s) == l, false, "a paused leader is not counted");
    mark(&h);
    run_until(&h, sim_now_us(h.s) + 1500 * MS);
    sim_replica_status st;
    cr_assert_eq(sim_status(h.s, l, &st), 0);
    cr_assert(st.paused);
    cr_assert_gt(st.queued, 0, "frames wait for the paused replica");
    int l2 = sim_leader(h.s);
    cr_assert_geq(l2, 0);
    cr_assert_neq(l2, l);
    cr_assert_gt(h.ok_after_mark, 0);
    sim_counters_get(h.s, &sc);
    ticks_before = sc.ticks;
    cr_assert_eq(sim_resume(h.s, l), 0);
    cr_assert_eq(sim_status(h.s, l, &st), 0);
    cr_assert(!st.paused);
    cr_assert_eq(st.queued, 0);
    cr_assert_neq(st.px.role, PX_LEADER, "the old leader saw the higher ballot in its backlog");
    run_until(&h, sim_now_us(h.s) + 500 * MS);
    sim_counters_get(h.s, &sc);
    cr_assert_gt(sc.ticks, ticks_before);
    sim_workload_stop(h.w);
    run_until(&h, sim_now_us(h.s) + 1500 * MS);
    assert_converged(&h);
    harness_fini(&h);
}

Test(sim, cut_link_keeps_the_cluster_available)
{
    harness h;
    harness_init(&h, 3, 17, PX_DURABILITY_FSYNC);
    int l = wait_leader(&h, 2 * SEC);
    cr_assert_geq(l, 0);
    int f = (l + 1) % 3;
    cr_assert_eq(sim_workload_start(h.w), 0);
    run_until(&h, sim_now_us(h.s) + 300 * MS);
    int id = sim_cut(h.s, (uint32_t)l, (uint32_t)f);
    cr_assert_geq(id, 0);
    sim_counters before, after;
    sim_counters_get(h.s, &before);
    mark(&h);
    run_until(&h, sim_now_us(h.s) + 3 * SEC);
    sim_counters_get(h.s, &after);
    cr_assert_gt(after.msgs_dropped, before.msgs_dropped, "the cut drops frames");
    cr_assert_gt(h.ok_after_mark, 1000, "a one-way cut must not stop the cluster (%llu ok)",
                 (unsigned long long)h.ok_after_mark);
    cr_assert_eq(sim_impair_remove(h.s, id), 0);
    sim_workload_stop(h.w);
    run_until(&h, sim_now_us(h.s) + 1500 * MS);
    assert_converged(&h);
    harness_fini(&h);
}

Test(sim, partitioned_minority_cannot_commit_majority_can)
{
    harness h;
    harness_init(&h, 5, 19, PX_DURABILITY_FSYNC);
    int l = wait_leader(&h, 2 * SEC);
    cr_assert_geq(l, 0);
    cr_assert_eq(sim_workload_start(h.w), 0);
    run_until(&h, sim_now_us(h.s) + 300 * MS);
    /* The old leader and one follower on the minority side. */
    uint8_t group[5] = {0};
    group[l] = 1;
    group[(l + 1) % 5] = 1;
    cr_assert_eq(sim_partition(h.s, group), 2 * 2 * 3);
    uint64_t cut_us = sim_now_us(h.s);
    px_status old = status(&h, l);
    run_until(&h, cut_us + 2 * SEC);
    int l2 = sim_leader(h.s);
    cr_assert_geq(l2, 0);
    cr_assert_eq(group[l2], 0, "the leader must be on the majority side");
    /* The minority executed nothing new since the cut settled: no quorum. */
    px_status minority = status(&h, (l + 1) % 5);
    px_status majority = status(&h, l2);
    cr_assert_gt(majority.last_executed, old.last_executed + 100);
    cr_assert_lt(minority.last_executed, old.last_executed + 64 + 1,
                 "a minority follower executed %llu entries past the cut",
                 (unsigned long long)(minority.last_executed - old.last_executed));
    sim_impair_clear(h.s);
    sim_workload_stop(h.w);
    run_until(&h, sim_now_us(h.s) + 2 * SEC);
    assert_converged(&h);
    harness_fini(&h);
}

/* A replica down while the others moved on under a new leader: its checkpoint
 * and WAL bring it back to where it crashed, but what it accepted after its
 * checkpoint carries the old ballot (no commit can vouch for it) and the new
 * leader trimmed past its checkpoint, so only an image brings it level. */
Test(sim, state_transfer_after_a_long_crash)
{
    harness h;
    harness_init(&h, 3, 23, PX_DURABILITY_FSYNC);
    int l = wait_leader(&h, 2 * SEC);
    cr_assert_geq(l, 0);
    cr_assert_eq(sim_workload_start(h.w), 0);
    run_until(&h, sim_now_us(h.s) + 1 * SEC);
    int f = (l + 1) % 3;
    px_status before = status(&h, f);
    cr_assert_gt(before.log_base, 0, "compaction trimmed before the crash");
    cr_assert_gt(before.checkpoint_index, 0, "and checkpointed");
    cr_assert_eq(sim_crash(h.s, f, true), 0);
    run_until(&h, sim_now_us(h.s) + 1 * SEC);
    cr_assert_eq(sim_restart(h.s, l), 0); /* a reboot: the next leader has a new ballot */
    run_until(&h, sim_now_us(h.s) + 1 * SEC);
    int l2 = sim_leader(h.s);
    cr_assert_geq(l2, 0);
    cr_assert_gt(status(&h, l2).ballot, before.ballot);
    cr_assert_eq(sim_restart(h.s, f), 0);
    px_status back = status(&h, f);
    cr_assert(!back.needs_snapshot, "its checkpoint survived the power loss");
    cr_assert_eq(back.last_executed, back.checkpoint_index);
    cr_assert_geq(back.checkpoint_index, before.checkpoint_index);
    cr_assert_lt(back.last_executed, status(&h, l2).log_base, "the leader trimmed past its checkpoint");
    run_until(&h, sim_now_us(h.s) + 1 * SEC);
    cr_assert_gt(h.kinds[f][PX_EV_SNAP_INSTALL], 0, "no state transfer");
    cr_assert_geq(h.last_snap_index[f], before.last_executed);
    cr_assert(!status(&h, f).needs_snapshot);
    cr_assert_geq(status(&h, f).checkpoint_index, h.last_snap_index[f], "the image it got is its checkpoint");
    sim_workload_stop(h.w);
    run_until(&h, sim_now_us(h.s) + 1500 * MS);
    assert_converged(&h);
    /* With everyone back, gle advances again and the log and WAL shrink (the
     * WAL to the last checkpoint: at most checkpoint_entries behind gle). */
    px_config dflt;
    px_config_default(&dflt);
    cr_assert_lt(status(&h, l2).log_entries, 200);
    cr_assert_lt(sim_storage_records(h.s, f), dflt.checkpoint_entries + 200);
    harness_fini(&h);
}

/* Every replica crashes (power loss) after compaction trimmed their logs and
 * WALs: each comes back from its own checkpoint plus WAL, and the cluster
 * elects a leader and serves again with nothing acknowledged lost. */
Test(sim, whole_cluster_crash_recovers_from_checkpoints)
{
    harness h;
    harness_init(&h, 3, 31, PX_DURABILITY_FSYNC);
    int l = wait_leader(&h, 2 * SEC);
    cr_assert_geq(l, 0);
    cr_assert_eq(sim_workload_start(h.w), 0);
    run_until(&h, sim_now_us(h.s) + 1 * SEC);
    px_status before[3];
    for (int i = 0; i < 3; i++) {
        before[i] = status(&h, i);
        cr_assert_gt(before[i].log_base, 0, "r%d trimmed before the crash", i);
        cr_assert_gt(before[i].checkpoint_index, 0, "r%d checkpointed before the crash", i);
    }
    for (int i = 0; i < 3; i++)
        cr_assert_eq(sim_crash(h.s, i, true), 0);
    run_until(&h, sim_now_us(h.s) + 300 * MS);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(sim_restart(h.s, i), 0);
        px_status back = status(&h, i);
        cr_assert(!back.needs_snapshot, "r%d can lead again", i);
        cr_assert_eq(back.last_executed, back.checkpoint_index);
        cr_assert_geq(back.checkpoint_index, before[i].checkpoint_index);
        cr_assert_leq(back.last_executed, before[i].last_executed);
    }
    uint64_t executed = 0;
    for (int i = 0; i < 3; i++)
        executed = before[i].last_executed > executed ? before[i].last_executed : executed;
    mark(&h);
    int l2 = wait_leader(&h, sim_now_us(h.s) + 2 * SEC);
    cr_assert_geq(l2, 0, "no leader after the whole-cluster crash");
    run_until(&h, sim_now_us(h.s) + 1 * SEC);
    cr_assert_gt(h.ok_after_mark, 100, "the cluster serves again");
    cr_assert_gt(status(&h, l2).last_executed, executed, "and executes past what it had");
    sim_workload_stop(h.w);
    run_until(&h, sim_now_us(h.s) + 1500 * MS);
    assert_converged(&h);
    harness_fini(&h);
}

/* Durability off: the same crash is amnesia. The cluster restarts empty (the
 * run does not crash); what it acknowledged is gone, which the checkers see. */
Test(sim, whole_cluster_crash_without_durability_is_amnesia)
{
    harness h;
    harness_init(&h, 3, 31, PX_DURABILITY_OFF);
    int l = wait_leader(&h, 2 * SEC);
    cr_assert_geq(l, 0);
    cr_assert_eq(sim_workload_start(h.w), 0);
    run_until(&h, sim_now_us(h.s) + 1 * SEC);
    size_t keys = px_kv_key_count(sim_replica_kv(h.s, l));
    uint64_t executed = status(&h, l).last_executed;
    cr_assert_geq(keys, 8); /* of the workload's 10 */
    cr_assert_gt(status(&h, l).log_base, 0, "compaction trims as usual");
    for (int i = 0; i < 3; i++)
        cr_assert_eq(h.kinds[i][PX_EV_CHECKPOINT], 0, "off writes no image");
    for (int i = 0; i < 3; i++)
        cr_assert_eq(sim_crash(h.s, i, true), 0);
    run_until(&h, sim_now_us(h.s) + 300 * MS);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(sim_restart(h.s, i), 0);
        cr_assert_eq(status(&h, i).last_executed, 0, "r%d forgot everything", i);
        cr_assert_eq(status(&h, i).checkpoint_index, 0);
    }
    sim_workload_stop(h.w);
    int l2 = wait_leader(&h, sim_now_us(h.s) + 2 * SEC);
    cr_assert_geq(l2, 0);
    run_until(&h, sim_now_us(h.s) + 500 * MS);
    /* Only what the 4 clients still retried after the stop is there. */
    cr_assert_leq(px_kv_key_count(sim_replica_kv(h.s, l2)), 4, "the acknowledged writes are gone");
    cr_assert_lt(status(&h, l2).last_executed, executed / 2);
    harness_fini(&h);
}

Test(sim, set_param_reaches_the_live_replica)
{
    harness h;
    harness_init(&h, 3, 29, PX_DURABILITY_FSYNC);
    int l = wait_leader(&h, 2 * SEC);
    cr_assert_geq(l, 0);
    cr_assert_eq(sim_set_param(h.s, l, "heartbeat_ms", "10"), 0);
    run_until(&h, sim_now_us(h.s) + 100 * MS);
    cr_assert_eq(status(&h, l).heartbeat_us, 10000);
    sim_counters a, b;
    sim_counters_get(h.s, &a);
    run_until(&h, sim_now_us(h.s) + 1 * SEC);
    sim_counters_get(h.s, &b);
    /* 100 heartbeats/s to 2 peers, and their replies. */
    cr_assert_geq(b.msgs_sent - a.msgs_sent, 350);
    harness_fini(&h);
}
