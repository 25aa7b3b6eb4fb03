/* test_replica.c — the MultiPaxos core's rules, driven by hand.
 *
 * A tiny harness: N replicas, a FIFO of encoded messages, a manual clock and a
 * cut matrix. System-level properties over random faults live in
 * test_sim_property.c; here each test pins one rule of the protocol. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "paxos/px_replica.h"

#define MAXQ 100000

typedef struct wire {
    uint8_t *buf;
    size_t len;
} wire;

typedef struct harness {
    int n;
    px_config cfg;
    px_replica *r[PX_MAX_REPLICAS];
    px_storage *st[PX_MAX_REPLICAS];
    rift_rng rng[PX_MAX_REPLICAS];
    bool cut[PX_MAX_REPLICAS + 1][PX_MAX_REPLICAS + 1]; /* index n = the client */
    wire q[MAXQ];
    int qh, qt;
    uint64_t now;
    /* observations */
    int leader_changes;
    int step_downs[4];
    int adapts;
    int trims;
    int elections;
    int checkpoints[PX_MAX_REPLICAS];
    int snap_installs[PX_MAX_REPLICAS];
    uint64_t exec_hash[PX_MAX_REPLICAS][4096];
    uint64_t replies_ok;
    px_msg last_reply;
    uint8_t reply_value[256];
    /* messages captured from one replica instead of delivered */
    int capture_from;
    px_msg captured[64];
    uint8_t *captured_buf[64];
    int n_captured;
} harness;

static harness H;

static int node_slot(uint16_t node) { return node >= PX_CLIENT_BASE ? H.n : node; }

static void on_send(void *ctx, const px_msg *m)
{
    int from = node_slot(m->from), to = node_slot(m->to);
    if (H.cut[from][to])
        return;
    size_t len = px_msg_encoded_size(m);
    uint8_t *buf = malloc(len);
    cr_assert(buf);
    cr_assert_eq(px_msg_encode(m, buf, len, &len), 0);
    cr_assert_lt(H.qt - H.qh, MAXQ);
    H.q[H.qt++ % MAXQ] = (wire){buf, len};
}

static void on_event(void *ctx, const px_event *e)
{
    switch (e->kind) {
    case PX_EV_ROLE:
        if (e->a == PX_LEADER)
            H.leader_changes++;
        break;
    case PX_EV_STEP_DOWN: H.step_downs[e->a & 3]++; break;
    case PX_EV_FD_ADAPT: H.adapts++; break;
    case PX_EV_TRIM: H.trims++; break;
    case PX_EV_ELECTION_START: H.elections++; break;
    case PX_EV_CHECKPOINT: H.checkpoints[e->replica]++; break;
    case PX_EV_SNAP_INSTALL: H.snap_installs[e->replica]++; break;
    case PX_EV_EXECUTE:
        if (e->index < 4096) {
            uint64_t *slot = &H.exec_hash[e->replica][e->index];
            cr_assert(*slot == 0 || *slot == e->a, "replica %d re-executed index %lu differently", e->replica,
                      (unsigned long)e->index);
            *slot = e->a;
        }
        break;
    default: break;
    }
}

static px_replica *start(int i)
{
    px_env env = {.ctx = NULL, .send = on_send, .event = on_event, .storage = H.st[i], .rng = &H.rng[i]};
    int err = 0;
    px_replica *r = px_replica_new(&H.cfg, (uint8_t)i, &env, H.now, &err);
    cr_assert(r, "px_replica_new: %d", err);
    return r;
}

static void setup_cluster(int n, px_fd_policy fd)
{
    memset(&H, 0, sizeof(H));
    H.n = n;
    H.capture_from = -1;
    px_config_default(&H.cfg);
    H.cfg.n_replicas = (uint8_t)n;
    H.cfg.fd = fd;
    for (int i = 0; i < n; i++) {
        H.st[i] = px_storage_mem_new(PX_DURABILITY_FSYNC);
        rift_rng_seed(&H.rng[i], 1000 + i);
        H.r[i] = start(i);
    }
}

static void teardown_cluster(void)
{
    for (int i = 0; i < H.n; i++) {
        px_replica_free(H.r[i]);
        px_storage_close(H.st[i]);
    }
    while (H.qh < H.qt)
        free(H.q[H.qh++ % MAXQ].buf);
    for (int i = 0; i < H.n_captured; i++)
        free(H.captured_buf[i]);
    H.n_captured = 0;
    H.n = 0; /* a test may tear down early: the fixture's teardown is then a no-op */
}

/* Deliver every queued message (and what they cause). */
static void drain(void)
{
    while (H.qh < H.qt) {
        wire w = H.q[H.qh++ % MAXQ];
        px_msg m;
        cr_assert_eq(px_msg_decode(w.buf, w.len, &m), 0);
        if (m.to >= PX_CLIENT_BASE) {
            if (m.type == PX_MSG_CLIENT_REPLY) {
                H.last_reply = m;
                size_t vl = m.u.client_reply.value.len < 256 ? m.u.client_reply.value.len : 255;
                if (vl)
                    memcpy(H.reply_value, m.u.client_reply.value.data, vl);
                H.reply_value[vl] = 0;
                if (m.u.client_reply.status == PX_REPLY_OK)
                    H.replies_ok++;
            }
        } else if (m.to < H.n && H.r[m.to]) {
            px_replica_recv(H.r[m.to], &m, H.now);
            if (m.from == H.capture_from && m.type == PX_MSG_ACCEPT && H.n_captured < 64) {
                /* keep the bytes the message points into; freed at teardown */
                H.captured_buf[H.n_captured] = w.buf;
                H.captured[H.n_captured++] = m;
                continue;
            }
        }
        px_msg_release(&m);
        free(w.buf);
    }
}

/* Advance the clock in 1 ms steps, ticking and delivering. */
static void run_ms(int ms)
{
    for (int t = 0; t < ms; t++) {
        H.now += 1000;
        for (int i = 0; i < H.n; i++)
            if (H.r[i])
                px_replica_tick(H.r[i], H.now);
        drain();
    }
}

static int leader(void)
{
    int l = -1;
    uint64_t best = 0;
    for (int i = 0; i < H.n; i++) {
        px_status s;
        if (!H.r[i])
            continue;
        px_replica_status(H.r[i], &s);
        if (s.role == PX_LEADER && s.ballot >= best) {
            best = s.ballot;
            l = i;
        }
    }
    return l;
}

static void client_send(int to, uint8_t op, uint64_t client, uint64_t seq, const char *key, const char *val)
{
    px_cmd c = {.op = op, .client_id = client, .seq = seq, .key = {(const uint8_t *)key, (uint32_t)strlen(key)}};
    if (val)
        c.value = (px_bytes){(const uint8_t *)val, (uint32_t)strlen(val)};
    uint8_t buf[512];
    size_t len;
    cr_assert_eq(px_cmd_encode(&c, buf, sizeof(buf), &len), 0);
    px_msg m = {.type = PX_MSG_CLIENT_REQ, .from = PX_CLIENT_BASE, .to = (uint16_t)to};
    m.u.client_req.cmd = (px_bytes){buf, (uint32_t)len};
    on_send(NULL, &m);
    drain();
}

static void cut_both(int a, int b) { H.cut[a][b] = H.cut[b][a] = true; }

TestSuite(replica, .fini = teardown_cluster);

Test(replica, ballots_order_by_round_then_id)
{
    setup_cluster(1, PX_FD_NAIVE);
    cr_assert_gt(PX_BALLOT_MAKE(2, 0), PX_BALLOT_MAKE(1, 8));
    cr_assert_gt(PX_BALLOT_MAKE(3, 2), PX_BALLOT_MAKE(3, 1));
    cr_assert_eq(PX_BALLOT_ROUND(PX_BALLOT_MAKE(77, 4)), 77);
    cr_assert_eq(PX_BALLOT_ID(PX_BALLOT_MAKE(77, 4)), 4);
}

Test(replica, single_replica_leads_and_serves)
{
    setup_cluster(1, PX_FD_QUORUM);
    run_ms(400);
    cr_assert_eq(leader(), 0);
    client_send(0, PX_OP_PUT, 1, 1, "k", "v");
    client_send(0, PX_OP_GET, 1, 2, "k", NULL);
    cr_assert_eq(H.replies_ok, 2);
    cr_assert_str_eq((char *)H.reply_value, "v");
}

Test(replica, three_replicas_elect_one_leader_and_agree)
{
    setup_cluster(3, PX_FD_QUORUM);
    run_ms(500);
    int l = leader();
    cr_assert_geq(l, 0);
    for (int i = 0; i < 3; i++) {
        px_status s;
        px_replica_status(H.r[i], &s);
        cr_assert(i == l || s.role == PX_FOLLOWER);
        cr_assert(i == l || s.leader == l, "replica %d believes %d leads, not %d", i, s.leader, l);
    }
    for (uint64_t seq = 1; seq <= 20; seq++)
        client_send(l, PX_OP_APPEND, 9, seq, "k", "x");
    run_ms(200);
    cr_assert_eq(H.replies_ok, 20);
    for (int i = 0; i < 3; i++) {
        px_bytes v;
        cr_assert(px_kv_lookup(px_replica_kv(H.r[i]), (const uint8_t *)"k", 1, &v));
        cr_assert_eq(v.len, 20, "replica %d has %u bytes", i, v.len);
    }
}

Test(replica, follower_redirects_to_leader)
{
    setup_cluster(3, PX_FD_QUORUM);
    run_ms(500);
    int l = leader(), f = (l + 1) % 3;
    client_send(f, PX_OP_PUT, 1, 1, "k", "v");
    cr_assert_eq(H.last_reply.u.client_reply.status, PX_REPLY_REDIRECT);
    cr_assert_eq(H.last_reply.u.client_reply.leader, l);
}

Test(replica, retried_command_executes_once)
{
    setup_cluster(3, PX_FD_QUORUM);
    run_ms(500);
    int l = leader();
    client_send(l, PX_OP_APPEND, 5, 1, "k", "a");
    client_send(l, PX_OP_APPEND, 5, 1, "k", "a"); /* a retry: same client, same seq */
    run_ms(100);
    cr_assert_eq(H.replies_ok, 2, "the retry is answered too");
    px_bytes v;
    cr_assert(px_kv_lookup(px_replica_kv(H.r[l]), (const uint8_t *)"k", 1, &v));
    cr_assert_eq(v.len, 1, "appended %u times", v.len);
}

/* A new leader re-proposes in-progress entries under its ballot and fills the
 * gaps with no-ops, so execution does not stall at a hole. */
Test(replica, new_leader_fills_gaps_with_noops)
{
    setup_cluster(3, PX_FD_NAIVE);
    /* Replica 0 accepted indices 1 and 3 from an old leader (replica 1); 2 never arrived. */
    uint64_t b = PX_BALLOT_MAKE(1, 1);
    uint8_t batch[64];
    size_t blen;
    {
        px_batch_builder bb = {0};
        px_cmd c = {.op = PX_OP_PUT, .client_id = 3, .seq = 1, .key = {(const uint8_t *)"a", 1},
                    .value = {(const uint8_t *)"1", 1}};
        uint8_t cb[64];
        size_t cl;
        cr_assert_eq(px_cmd_encode(&c, cb, sizeof(cb), &cl), 0);
        cr_assert_eq(px_batch_add(&bb, cb, cl), 0);
        uint8_t *out;
        cr_assert_eq(px_batch_finish(&bb, &out, &blen), 0);
        memcpy(batch, out, blen);
        free(out);
    }
    for (uint64_t idx = 1; idx <= 3; idx += 2) {
        px_msg a = {.type = PX_MSG_ACCEPT, .from = 1, .to = 0, .ballot = b};
        a.u.accept.entry = (px_entry){.index = idx, .ballot = b, .value = {batch, (uint32_t)blen}};
        px_replica_recv(H.r[0], &a, H.now);
    }
    while (H.qh < H.qt) /* drop the replies */
        free(H.q[H.qh++ % MAXQ].buf);
    /* Only replica 0 may time out: isolate 1 and 2 from each other and 0's view. */
    H.cut[1][0] = H.cut[1][2] = H.cut[2][1] = true;
    H.capture_from = 0;
    H.now += 10 * 1000 * 1000; /* well past any election timeout */
    px_replica_tick(H.r[0], H.now);
    drain();
    cr_assert_eq(leader(), 0);
    int seen[4] = {0};
    for (int i = 0; i < H.n_captured; i++) {
        px_msg *m = &H.captured[i];
        if (m->type != PX_MSG_ACCEPT)
            continue;
        uint64_t idx = m->u.accept.entry.index;
        cr_assert(idx >= 1 && idx <= 3);
        cr_assert_gt(m->ballot, b, "re-proposed under the new ballot");
        if (idx == 2)
            cr_assert_eq(m->u.accept.entry.value.len, 1, "index 2 is a no-op (empty batch)");
        else
            cr_assert_eq(m->u.accept.entry.value.len, blen, "index %lu keeps its value", (unsigned long)idx);
        seen[idx] = 1;
    }
    cr_assert(seen[1] && seen[2] && seen[3]);
    run_ms(50);
    px_status s;
    px_replica_status(H.r[0], &s);
    cr_assert_eq(s.last_executed, 3, "executes past the former hole");
}

/* The Cloudflare-style churn: r1 and r2 cannot talk, both reach r0. */
static int churn(px_fd_policy fd, int seconds)
{
    setup_cluster(3, fd);
    run_ms(500);
    cut_both(1, 2);
    int before = H.leader_changes;
    run_ms(seconds * 1000);
    return H.leader_changes - before;
}

Test(replica, naive_churns_when_two_peers_cannot_talk)
{
    int changes = churn(PX_FD_NAIVE, 10);
    cr_assert_geq(changes, 10, "naive: only %d leader changes in 10 s", changes);
}

Test(replica, mpmc_churns_less_than_naive)
{
    int naive = churn(PX_FD_NAIVE, 10);
    teardown_cluster();
    int mpmc = churn(PX_FD_MPMC, 10);
    cr_assert_lt(mpmc * 2, naive, "mpmc %d vs naive %d leader changes", mpmc, naive);
    cr_assert_gt(H.adapts, 0, "mpmc adapted its interval");
}

Test(replica, quorum_stickiness_stops_churn)
{
    int changes = churn(PX_FD_QUORUM, 10);
    cr_assert_leq(changes, 1, "quorum: %d leader changes in 10 s", changes);
    cr_assert_geq(leader(), 0);
}

static int isolate_leader(px_fd_policy fd)
{
    setup_cluster(3, fd);
    run_ms(500);
    int l = leader();
    for (int i = 0; i < 3; i++)
        if (i != l)
            cut_both(l, i);
    run_ms(2000);
    return l;
}

Test(replica, quorum_leader_without_majority_steps_down)
{
    int old = isolate_leader(PX_FD_QUORUM);
    px_status s;
    px_replica_status(H.r[old], &s);
    cr_assert_neq(s.role, PX_LEADER);
    cr_assert_geq(H.step_downs[PX_STEP_NO_QUORUM], 1);
    int l = leader();
    cr_assert(l >= 0 && l != old, "the majority side elected a leader");
}

Test(replica, naive_isolated_leader_keeps_believing)
{
    int old = isolate_leader(PX_FD_NAIVE);
    px_status s;
    px_replica_status(H.r[old], &s);
    cr_assert_eq(s.role, PX_LEADER, "naive has no check-quorum");
    cr_assert_eq(H.step_downs[PX_STEP_NO_QUORUM], 0);
}

Test(replica, mpmc_calm_resets_the_interval)
{
    setup_cluster(3, PX_FD_MPMC);
    H.cfg.adapt_calm_us = 3000000;
    for (int i = 0; i < 3; i++)
        cr_assert_eq(px_replica_set_param(H.r[i], "adapt_calm_ms", "3000"), 0);
    run_ms(500);
    cut_both(1, 2);
    run_ms(5000);
    cr_assert_gt(H.adapts, 0);
    H.cut[1][2] = H.cut[2][1] = false;
    run_ms(30000);
    for (int i = 0; i < 3; i++) {
        px_status s;
        px_replica_status(H.r[i], &s);
        cr_assert_eq(s.heartbeat_us, H.cfg.heartbeat_us, "replica %d back to the base interval", i);
    }
}

static void set_all(const char *name, const char *value)
{
    for (int i = 0; i < H.n; i++)
        cr_assert_eq(px_replica_set_param(H.r[i], name, value), 0, "%s=%s", name, value);
    cr_assert_eq(px_config_set(&H.cfg, name, value), 0); /* restarts take it too */
}

/* What storage i would recover: trimmed never passes the newest checkpoint. */
static px_storage_state stored(int i)
{
    px_storage_state st;
    cr_assert_eq(px_storage_load(H.st[i], &st), 0);
    cr_assert_geq(st.ckpt_index, st.trimmed, "r%d: WAL trimmed to %lu past its checkpoint at %lu", i,
                  (unsigned long)st.trimmed, (unsigned long)st.ckpt_index);
    return st;
}

Test(replica, log_is_trimmed_to_gle_when_all_report)
{
    setup_cluster(3, PX_FD_QUORUM);
    set_all("checkpoint_entries", "100");
    run_ms(500);
    int l = leader();
    for (uint64_t seq = 1; seq <= 500; seq++) {
        client_send(l, PX_OP_PUT, 7, seq, "k", "v");
        run_ms(1);
    }
    run_ms(300);
    cr_assert_gt(H.trims, 0);
    for (int i = 0; i < 3; i++) {
        px_status s;
        px_replica_status(H.r[i], &s);
        cr_assert_eq(s.last_executed, 500);
        cr_assert_lt(s.log_entries, 100, "replica %d holds %lu entries", i, (unsigned long)s.log_entries);
        /* The WAL keeps what lies above the last checkpoint: < 100 entries behind gle. */
        cr_assert_lt(px_storage_mem_record_count(H.st[i]), 200, "the WAL is truncated too");
        cr_assert_gt(s.checkpoint_index, 300);
        /* Trims stay cheap: an image every 100 entries, not on every trim. */
        cr_assert_geq(H.checkpoints[i], 3);
        cr_assert_leq(H.checkpoints[i], 5, "replica %d wrote %d images", i, H.checkpoints[i]);
        px_storage_state st = stored(i);
        cr_assert_eq(st.ckpt_index, s.checkpoint_index);
        cr_assert_gt(st.trimmed, 0);
        px_storage_state_release(&st);
    }
    int images = H.checkpoints[0] + H.checkpoints[1] + H.checkpoints[2];
    cr_assert_geq(H.trims, 2 * images, "%d trims, %d images: not one on every trim", H.trims, images);
}

/* checkpoint_bytes spaces images by log volume as well as by entries. */
static int images_for(const char *bytes)
{
    setup_cluster(3, PX_FD_QUORUM);
    set_all("checkpoint_entries", "10");
    set_all("checkpoint_bytes", bytes);
    run_ms(500);
    int l = leader();
    char v[101];
    memset(v, 'x', 100);
    v[100] = 0;
    for (uint64_t seq = 1; seq <= 300; seq++) {
        client_send(l, PX_OP_PUT, 7, seq, "k", v);
        run_ms(5); /* ~10 entries per heartbeat, so per gle step */
    }
    run_ms(300);
    px_status s;
    px_replica_status(H.r[l], &s);
    cr_assert_eq(s.last_executed, 300);
    px_storage_state st = stored(l);
    cr_assert_gt(st.trimmed, 0);
    px_storage_state_release(&st);
    int n = H.checkpoints[l];
    teardown_cluster();
    return n;
}

Test(replica, checkpoint_bytes_spaces_images)
{
    int by_entries = images_for("0");
    int by_bytes = images_for("10000"); /* ~80 commands of ~120 bytes */
    cr_assert_geq(by_entries, 15, "every ~10 entries: %d images", by_entries);
    cr_assert_geq(by_bytes, 2);
    cr_assert_leq(by_bytes, 5, "every ~10000 bytes: %d images", by_bytes);
}

Test(replica, compaction_stalls_while_a_peer_is_silent)
{
    setup_cluster(3, PX_FD_QUORUM);
    run_ms(500);
    int l = leader(), down = (l + 1) % 3;
    cut_both(l, down);
    cut_both((l + 2) % 3, down);
    for (uint64_t seq = 1; seq <= 300; seq++) {
        client_send(l, PX_OP_PUT, 7, seq, "k", "v");
        run_ms(1);
    }
    px_status s;
    px_replica_status(H.r[l], &s);
    cr_assert_eq(s.last_executed, 300);
    uint64_t gle_before = s.gle;
    cr_assert_geq(s.log_entries, 300 - gle_before);
    /* Heal: the silent peer catches up, reports, and gle moves on. */
    memset(H.cut, 0, sizeof(H.cut));
    run_ms(2000);
    px_replica_status(H.r[l], &s);
    cr_assert_geq(s.gle, 300);
    px_status d;
    px_replica_status(H.r[down], &d);
    cr_assert_eq(d.last_executed, 300);
}

static px_bytes lookup(int i, const char *key)
{
    px_bytes v = {0};
    cr_assert(px_kv_lookup(px_replica_kv(H.r[i]), (const uint8_t *)key, strlen(key), &v), "r%d lacks %s", i, key);
    return v;
}

/* A power loss after compaction: the replica comes back from its own
 * checkpoint plus WAL and catches up from there, no state transfer. */
Test(replica, restarted_replica_resumes_from_its_checkpoint)
{
    setup_cluster(3, PX_FD_QUORUM);
    set_all("checkpoint_entries", "50");
    run_ms(500);
    int l = leader(), v = (l + 1) % 3;
    for (uint64_t seq = 1; seq <= 200; seq++) {
        client_send(l, PX_OP_APPEND, 7, seq, "k", "z");
        run_ms(1);
    }
    run_ms(300);
    px_replica_free(H.r[v]);
    px_storage_mem_crash(H.st[v], true);
    H.r[v] = start(v);
    px_status s;
    px_replica_status(H.r[v], &s);
    cr_assert(!s.needs_snapshot, "its checkpoint covers its WAL's trim point");
    cr_assert_gt(s.checkpoint_index, 100);
    cr_assert_eq(s.last_executed, s.checkpoint_index);
    cr_assert_eq(s.log_base, s.checkpoint_index);
    cr_assert_gt(lookup(v, "k").len, 0, "the KV came back with it");
    run_ms(1000);
    px_replica_status(H.r[v], &s);
    cr_assert_eq(s.last_executed, 200);
    cr_assert_eq(lookup(v, "k").len, 200);
    cr_assert_eq(H.snap_installs[v], 0);
}

/* A replica whose storage is gone (a new disk) gets an image from a peer,
 * keeps it as its checkpoint, and the next crash needs no transfer. */
Test(replica, replica_without_storage_gets_state_transfer_and_keeps_it)
{
    setup_cluster(3, PX_FD_QUORUM);
    run_ms(500);
    int l = leader(), v = (l + 1) % 3;
    for (uint64_t seq = 1; seq <= 200; seq++) {
        client_send(l, PX_OP_APPEND, 7, seq, "k", "z");
        run_ms(1);
    }
    run_ms(300);
    px_replica_free(H.r[v]);
    px_storage_close(H.st[v]);
    H.st[v] = px_storage_mem_new(PX_DURABILITY_FSYNC);
    H.r[v] = start(v);
    run_ms(1000);
    px_status s;
    px_replica_status(H.r[v], &s);
    cr_assert_gt(H.snap_installs[v], 0, "the peers trimmed what it lacks: only an image helps");
    cr_assert(!s.needs_snapshot);
    cr_assert_eq(s.last_executed, 200);
    cr_assert_eq(lookup(v, "k").len, 200);
    cr_assert_gt(s.checkpoint_index, 0, "the image was kept");
    int installs = H.snap_installs[v];

    px_replica_free(H.r[v]);
    px_storage_mem_crash(H.st[v], true);
    H.r[v] = start(v);
    px_replica_status(H.r[v], &s);
    cr_assert(!s.needs_snapshot);
    cr_assert_gt(s.last_executed, 0);
    run_ms(500);
    px_replica_status(H.r[v], &s);
    cr_assert_eq(s.last_executed, 200);
    cr_assert_eq(H.snap_installs[v], installs, "no second transfer");
}

/* Every replica loses power after the logs and WALs were trimmed: they all
 * come back from their checkpoints, elect a leader, keep every write and
 * serve new ones. */
Test(replica, whole_cluster_crash_recovers)
{
    setup_cluster(3, PX_FD_QUORUM);
    set_all("checkpoint_entries", "50");
    run_ms(500);
    int l = leader();
    for (uint64_t seq = 1; seq <= 300; seq++) {
        char key[16];
        snprintf(key, sizeof(key), "k%lu", (unsigned long)seq);
        client_send(l, PX_OP_PUT, 7, seq, key, "v");
        run_ms(1);
    }
    run_ms(300);
    for (int i = 0; i < 3; i++) {
        px_storage_state st = stored(i);
        cr_assert_gt(st.trimmed, 0, "r%d trimmed its WAL", i);
        px_storage_state_release(&st);
    }
    for (int i = 0; i < 3; i++) {
        px_replica_free(H.r[i]);
        H.r[i] = NULL;
        px_storage_mem_crash(H.st[i], true);
    }
    for (int i = 0; i < 3; i++) {
        H.r[i] = start(i);
        px_status s;
        px_replica_status(H.r[i], &s);
        cr_assert(!s.needs_snapshot, "r%d can lead", i);
    }
    run_ms(1000);
    l = leader();
    cr_assert_geq(l, 0, "a leader after the whole-cluster crash");
    uint64_t ok = H.replies_ok;
    client_send(l, PX_OP_PUT, 8, 1, "after", "crash");
    run_ms(100);
    cr_assert_eq(H.replies_ok, ok + 1, "a new command executes");
    px_status ls;
    px_replica_status(H.r[l], &ls);
    cr_assert_gt(ls.last_executed, 300);
    for (int i = 0; i < 3; i++) {
        px_status s;
        px_replica_status(H.r[i], &s);
        cr_assert_eq(s.last_executed, ls.last_executed, "r%d caught up", i);
        cr_assert_eq(s.digest, ls.digest, "r%d agrees", i);
        for (int k = 1; k <= 300; k += 37) {
            char key[16];
            snprintf(key, sizeof(key), "k%d", k);
            lookup(i, key);
        }
        lookup(i, "after");
    }
}

/* A checkpoint older than the WAL's trim point (the newer one was lost) is no
 * base to resume from: the replica waits for an image, as before checkpoints. */
static void stage(px_storage *st, uint64_t ckpt_at, uint64_t trim_at)
{
    px_kv *kv = px_kv_new();
    cr_assert_not_null(kv);
    const uint8_t noop[1] = {0};
    for (uint64_t i = 1; i <= ckpt_at; i++)
        cr_assert_eq(px_kv_apply(kv, i, noop, 1, NULL, NULL), 0);
    uint8_t *img;
    size_t len;
    cr_assert_eq(px_kv_image_encode(kv, &img, &len), 0);
    cr_assert_eq(px_storage_checkpoint(st, ckpt_at, img, len), 0);
    cr_assert_eq(px_storage_promise(st, PX_BALLOT_MAKE(3, 1)), 0);
    for (uint64_t i = 1; i <= trim_at + 5; i++)
        cr_assert_eq(px_storage_accept(st, i, PX_BALLOT_MAKE(3, 1), noop, 1), 0);
    cr_assert_eq(px_storage_trim(st, trim_at), 0);
    cr_assert_eq(px_storage_flush(st), 0);
    free(img);
    px_kv_free(kv);
}

Test(replica, recovery_uses_a_checkpoint_only_if_it_reaches_the_trim_point)
{
    setup_cluster(3, PX_FD_QUORUM);
    px_replica_free(H.r[0]);
    px_storage_close(H.st[0]);
    H.st[0] = px_storage_mem_new(PX_DURABILITY_FSYNC);
    stage(H.st[0], 12, 10);
    H.r[0] = start(0);
    px_status s;
    px_replica_status(H.r[0], &s);
    cr_assert(!s.needs_snapshot);
    cr_assert_eq(s.last_executed, 12);
    cr_assert_eq(s.log_base, 12);
    cr_assert_eq(s.log_entries, 3, "entries 13..15 from the WAL");
    cr_assert_eq(s.ballot, PX_BALLOT_MAKE(3, 1));

    px_replica_free(H.r[0]);
    px_storage_close(H.st[0]);
    H.st[0] = px_storage_mem_new(PX_DURABILITY_FSYNC);
    stage(H.st[0], 5, 10);
    H.r[0] = start(0);
    px_replica_status(H.r[0], &s);
    cr_assert(s.needs_snapshot, "entries 6..10 are in neither the image nor the WAL");
    cr_assert_eq(s.last_executed, 0);
    cr_assert_eq(s.checkpoint_index, 0);
    cr_assert_eq(s.log_base, 10);
}

Test(replica, config_set_and_check)
{
    setup_cluster(1, PX_FD_NAIVE);
    px_config c;
    px_config_default(&c);
    cr_assert_eq(px_config_set(&c, "heartbeat_ms", "20"), 0);
    cr_assert_eq(c.heartbeat_us, 20000);
    cr_assert_eq(px_config_set(&c, "fd", "mpmc"), 0);
    cr_assert_eq(c.fd, PX_FD_MPMC);
    cr_assert_eq(px_config_set(&c, "nope", "1"), -ENOENT);
    cr_assert_eq(px_config_set(&c, "heartbeat_ms", "-1"), -EINVAL);
    cr_assert_eq(px_config_set(&c, "fd", "paxos"), -EINVAL);
    cr_assert_eq(px_config_set(&c, "checkpoint_entries", "1000"), 0);
    cr_assert_eq(c.checkpoint_entries, 1000);
    char err[128];
    cr_assert_eq(px_config_set(&c, "checkpoint_entries", "0"), 0);
    cr_assert_eq(px_config_check(&c, err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "checkpoint_entries"), "%s", err);
    c.checkpoint_entries = 1;
    cr_assert_eq(px_config_set(&c, "heartbeat_ms", "500"), 0);
    cr_assert_eq(px_config_check(&c, err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "heartbeat_ms"));
    cr_assert_eq(px_replica_set_param(H.r[0], "election_timeout_min_ms", "1"), -EINVAL,
                 "a live replica refuses a config that fails the check");
}

/* px_config_foreach's strings feed px_config_set back to the same config: that
 * is how a scenario's paxos settings reach rift-replica processes. */
static void copy_param(void *ctx, const char *name, const char *value)
{
    cr_assert_eq(px_config_set(ctx, name, value), 0, "%s=%s", name, value);
}

Test(config, foreach_round_trips)
{
    px_config a, b;
    px_config_default(&a);
    a.fd = PX_FD_NAIVE;
    a.heartbeat_us = 1500;
    a.election_timeout_min_us = 123457;
    a.pipeline_max = 7;
    memset(&b, 0, sizeof(b));
    b.n_replicas = a.n_replicas;
    px_config_foreach(&a, copy_param, &b);
    /* from fd on every field is 32 bits wide: no padding to trip memcmp */
    size_t off = offsetof(px_config, fd);
    cr_assert_eq(memcmp((char *)&a + off, (char *)&b + off, sizeof(a) - off), 0);
}
