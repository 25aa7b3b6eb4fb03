/* test_wl_client.c — the workload engine on its own, the way a DPDK event loop
 * drives it: a manual clock, a send queue, one armed timer. The test plays the
 * network and the cluster: it delivers, drops or redirects each request, and
 * answers with the real KV state machine (px_kv) so retried commands meet the
 * real session table. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chaos/wl_client.h"
#include "paxos/px_kv.h"

#define MS 1000ull
#define MAX_SENT 65536
#define MAX_HIST 65536
#define BUF 256

typedef struct sent {
    uint16_t from, to;
    uint8_t cmd[BUF];
    size_t cmd_len;
    px_cmd c;        /* decoded, pointing into cmd */
    uint64_t at_us;
} sent;

typedef struct rec {
    uint64_t process, client_id, seq, time_us;
    uint8_t type, f;
    char key[16];
    char value[BUF];
    bool has_value;
    char expected[BUF];
    bool has_expected;
} rec;

typedef struct harness {
    wl_client *w;
    wl_config cfg;
    rift_rng rng;
    uint64_t now, armed;
    uint64_t arm_calls;
    sent *sent;
    size_t n_sent, n_done;   /* n_done: sends the cluster has dealt with */
    rec *hist;
    size_t n_hist;
    px_kv *kv;
    uint64_t kv_index;
    int leader;              /* auto mode: who answers; others redirect */
} harness;

static uint64_t h_now(void *ctx)
{
    return ((harness *)ctx)->now;
}

static void h_send(void *ctx, const px_msg *m)
{
    harness *h = ctx;
    cr_assert_lt(h->n_sent, MAX_SENT);
    cr_assert_eq(m->type, PX_MSG_CLIENT_REQ);
    cr_assert_leq(m->u.client_req.cmd.len, BUF);
    sent *s = &h->sent[h->n_sent++];
    s->from = m->from;
    s->to = m->to;
    s->cmd_len = m->u.client_req.cmd.len;
    memcpy(s->cmd, m->u.client_req.cmd.data, s->cmd_len);
    cr_assert_eq(px_cmd_decode(s->cmd, s->cmd_len, &s->c), 0, "the engine sent an undecodable command");
    s->at_us = h->now;
}

static void h_arm(void *ctx, uint64_t at_us)
{
    harness *h = ctx;
    h->armed = at_us;
    h->arm_calls++;
}

static void h_hist(void *ctx, const wl_hist *r)
{
    harness *h = ctx;
    cr_assert_lt(h->n_hist, MAX_HIST);
    rec *x = &h->hist[h->n_hist++];
    memset(x, 0, sizeof(*x));
    x->process = r->process;
    x->client_id = r->client_id;
    x->seq = r->seq;
    x->time_us = r->time_us;
    x->type = r->type;
    x->f = r->f;
    snprintf(x->key, sizeof(x->key), "%s", r->key);
    if (r->value) {
        cr_assert_lt(r->value_len, BUF);
        memcpy(x->value, r->value, r->value_len);
        x->has_value = true;
    }
    if (r->expected) {
        memcpy(x->expected, r->expected, r->expected_len);
        x->has_expected = true;
    }
}

static void h_init(harness *h, const wl_config *c, uint64_t seed)
{
    memset(h, 0, sizeof(*h));
    h->cfg = *c;
    h->armed = UINT64_MAX;
    h->sent = calloc(MAX_SENT, sizeof(*h->sent));
    h->hist = calloc(MAX_HIST, sizeof(*h->hist));
    h->kv = px_kv_new();
    cr_assert(h->sent && h->hist && h->kv);
    rift_rng_seed(&h->rng, seed);
    wl_env env = {.ctx = h, .now_us = h_now, .send = h_send, .arm = h_arm, .rng = &h->rng};
    int err = 0;
    h->w = wl_new(c, &env, &err);
    cr_assert_not_null(h->w, "wl_new: %d", err);
    wl_on_history(h->w, h_hist, h);
}

static void h_fini(harness *h)
{
    wl_free(h->w);
    px_kv_free(h->kv);
    free(h->sent);
    free(h->hist);
}

/* Move the clock; fire the timer whenever it is due, as an event loop would. */
static void h_advance(harness *h, uint64_t t)
{
    while (h->armed <= t) {
        h->now = h->armed > h->now ? h->armed : h->now;
        wl_timer(h->w);
    }
    h->now = t;
}

static void h_reply(harness *h, const sent *s, uint16_t from, uint8_t status, uint16_t hint, const px_result *r)
{
    px_msg m = {.type = PX_MSG_CLIENT_REPLY, .from = from, .to = s->from};
    m.u.client_reply.client_id = s->c.client_id;
    m.u.client_reply.seq = s->c.seq;
    m.u.client_reply.status = status;
    m.u.client_reply.leader = hint;
    if (r && r->has_value) {
        m.u.client_reply.has_value = 1;
        m.u.client_reply.value = r->value;
    }
    cr_assert_eq(wl_recv(h->w, &m), 0);
}

typedef struct result_box {
    px_result r;
    bool got;
} result_box;

static void on_result(void *ctx, const px_result *r)
{
    result_box *b = ctx;
    b->r = *r;
    b->got = true;
}

/* The replica that gets s executes it through the real KV (one-command batch)
 * and answers; a retried (client_id, seq) is answered from the session table. */
static void h_execute(harness *h, const sent *s, uint16_t from)
{
    px_batch_builder b = {0};
    cr_assert_eq(px_batch_add(&b, s->cmd, s->cmd_len), 0);
    uint8_t *batch;
    size_t len;
    cr_assert_eq(px_batch_finish(&b, &batch, &len), 0);
    result_box box = {0};
    cr_assert_eq(px_kv_apply(h->kv, ++h->kv_index, batch, len, on_result, &box), 0);
    free(batch);
    px_batch_builder_reset(&b);
    cr_assert(box.got);
    h_reply(h, s, from, box.r.status, PX_NO_NODE, &box.r);
}

/* Auto mode: the leader executes, everyone else redirects to it. Replies go
 * out after the engine's call returned (env->send must not re-enter). Serves
 * what was sent so far; what the replies make the engine send waits for the
 * next call (a closed loop would otherwise never return). */
static void h_serve(harness *h)
{
    size_t upto = h->n_sent;
    while (h->n_done < upto) {
        sent s = h->sent[h->n_done++];
        if (s.to == h->leader)
            h_execute(h, &s, s.to);
        else
            h_reply(h, &s, s.to, PX_REPLY_REDIRECT, (uint16_t)h->leader, NULL);
    }
}

/* Serve until nothing more is asked (bounded: a closed loop without think
 * time never stops asking). */
static void h_settle(harness *h)
{
    for (int i = 0; i < 64 && h->n_done < h->n_sent; i++)
        h_serve(h);
}

static const rec *last_of(const harness *h, uint8_t type)
{
    for (size_t i = h->n_hist; i-- > 0;)
        if (h->hist[i].type == type)
            return &h->hist[i];
    return NULL;
}

static void one_client(wl_config *c)
{
    wl_config_default(c);
    c->n_clients = 1;
    memset(c->mix, 0, sizeof(c->mix));
    c->mix[PX_OP_PUT] = 1;
}

/* ---- configuration ---- */

Test(wl_client, config_errors_name_the_field)
{
    wl_config c;
    char err[128];
    wl_config_default(&c);
    cr_assert_eq(wl_config_check(&c, err, sizeof(err)), 0);
    c.n_clients = 0;
    cr_assert_eq(wl_config_check(&c, err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "n_clients"), "%s", err);
    wl_config_default(&c);
    c.mix[PX_OP_PUT] = -1;
    cr_assert_eq(wl_config_check(&c, err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "mix[put]"), "%s", err);
    wl_config_default(&c);
    c.n_replicas = PX_MAX_REPLICAS + 1;
    cr_assert_eq(wl_config_check(&c, err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "n_replicas"), "%s", err);
    wl_config_default(&c);
    c.first_client = 3;
    c.client_step = 2;
    c.total_clients = 8; /* local clients 3 and 5 (+ 7 with three) */
    c.n_clients = 3;
    cr_assert_eq(wl_config_check(&c, err, sizeof(err)), 0);
    c.n_clients = 4; /* would be global client 9 of 8 */
    cr_assert_eq(wl_config_check(&c, err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "total_clients"), "%s", err);

    rift_rng rng;
    rift_rng_seed(&rng, 1);
    wl_env env = {.now_us = h_now, .send = h_send, .arm = h_arm, .rng = &rng};
    int e = 0;
    cr_assert_null(wl_new(&c, &env, &e));
    cr_assert_eq(e, -EINVAL);
    wl_config_default(&c);
    env.arm = NULL;
    cr_assert_null(wl_new(&c, &env, &e));
    cr_assert_eq(e, -EINVAL);
}

/* ---- one op, start to finish ---- */

Test(wl_client, closed_loop_invoke_ok_next)
{
    wl_config c;
    one_client(&c);
    c.n_clients = 2;
    c.value_bytes = 12;
    harness h;
    h_init(&h, &c, 7);
    cr_assert_eq(h.armed, UINT64_MAX, "an idle engine holds no timer");
    cr_assert_eq(h.n_sent, 0);
    h.now = 1000;
    cr_assert_eq(wl_start(h.w), 0);
    cr_assert_eq(h.n_sent, 2);
    cr_assert_eq(h.n_hist, 2);
    cr_assert_eq(wl_outstanding(h.w), 2);
    cr_assert_eq(h.armed, 1000 + c.retry_us, "armed for the first retry");
    for (int i = 0; i < 2; i++) {
        const sent *s = &h.sent[i];
        cr_assert_eq(s->from, PX_CLIENT_BASE + i);
        cr_assert_lt(s->to, 3);
        cr_assert_eq(s->c.client_id, (uint64_t)i + 1);
        cr_assert_eq(s->c.seq, 1);
        cr_assert_eq(s->c.op, PX_OP_PUT);
        const rec *r = &h.hist[i];
        cr_assert_eq(r->type, WL_HIST_INVOKE);
        cr_assert_eq(r->process, (uint64_t)i);
        cr_assert_eq(r->time_us, 1000);
        /* a unique token, padded to value_bytes */
        char want[BUF];
        snprintf(want, sizeof(want), "c%d-1", i + 1);
        cr_assert_eq(strncmp(r->value, want, strlen(want)), 0, "%s", r->value);
        cr_assert_eq(strlen(r->value), 12);
        cr_assert_eq(strspn(r->value + strlen(want), "."), 12 - strlen(want));
        cr_assert_eq(s->c.value.len, 12);
        cr_assert_eq(memcmp(s->c.value.data, r->value, 12), 0);
    }
    h.now = 1500;
    h_execute(&h, &h.sent[0], h.sent[0].to);
    const rec *ok = &h.hist[2];
    cr_assert_eq(ok->type, WL_HIST_OK);
    cr_assert_eq(ok->process, 0);
    cr_assert_eq(ok->time_us, 1500);
    cr_assert_str_eq(ok->value, h.hist[0].value);
    /* closed loop, no think time: the next op starts at once, seq 2 */
    cr_assert_eq(h.n_sent, 3);
    cr_assert_eq(h.sent[2].c.client_id, 1);
    cr_assert_eq(h.sent[2].c.seq, 2);
    cr_assert_eq(h.sent[2].to, h.sent[0].to, "it stays with the replica that answered");
    wl_counters k;
    wl_counters_get(h.w, &k);
    cr_assert_eq(k.invoked, 3);
    cr_assert_eq(k.ok, 1);
    cr_assert_eq(k.latency_us_sum, 500);
    h_fini(&h);
}

Test(wl_client, retry_resends_the_same_command_to_the_next_replica)
{
    wl_config c;
    one_client(&c);
    harness h;
    h_init(&h, &c, 3);
    wl_start(h.w);
    const sent first = h.sent[0];
    h_advance(&h, c.retry_us - 1);
    cr_assert_eq(h.n_sent, 1, "no resend before retry_us");
    h_advance(&h, c.retry_us);
    cr_assert_eq(h.n_sent, 2);
    const sent *again = &h.sent[1];
    cr_assert_eq(again->to, (first.to + 1) % 3);
    cr_assert_eq(again->cmd_len, first.cmd_len);
    cr_assert_eq(memcmp(again->cmd, first.cmd, first.cmd_len), 0, "a retry is the same (client_id, seq, value)");
    /* Both copies execute: the session table answers the second from cache,
     * and the engine completes the op once. */
    h_execute(&h, again, again->to);
    h_execute(&h, &first, first.to);
    size_t oks = 0;
    for (size_t i = 0; i < h.n_hist; i++)
        oks += h.hist[i].type == WL_HIST_OK && h.hist[i].seq == 1;
    cr_assert_eq(oks, 1);
    wl_counters k;
    wl_counters_get(h.w, &k);
    cr_assert_eq(k.resends, 1);
    cr_assert_eq(k.ignored, 1, "the late duplicate answer is ignored");
    px_bytes v;
    cr_assert(px_kv_lookup(h.kv, first.c.key.data, first.c.key.len, &v));
    cr_assert_eq(v.len, first.c.value.len, "applied once: a put, not two");
    h_fini(&h);
}

Test(wl_client, redirect_follows_the_hint_then_backs_off)
{
    wl_config c;
    one_client(&c);
    harness h;
    h_init(&h, &c, 5);
    wl_start(h.w);
    sent s0 = h.sent[0];
    uint16_t other = (uint16_t)((s0.to + 1) % 3);
    h_reply(&h, &s0, s0.to, PX_REPLY_REDIRECT, other, NULL);
    cr_assert_eq(h.n_sent, 2, "a usable hint is followed at once");
    cr_assert_eq(h.sent[1].to, other);
    cr_assert_eq(memcmp(h.sent[1].cmd, s0.cmd, s0.cmd_len), 0);
    /* No hint (election in progress): wait, then the next replica. */
    sent s1 = h.sent[1];
    h.now = 100;
    h_reply(&h, &s1, s1.to, PX_REPLY_REDIRECT, PX_NO_NODE, NULL);
    cr_assert_eq(h.n_sent, 2);
    cr_assert_eq(h.armed, 100 + c.redirect_backoff_us);
    h_advance(&h, 100 + c.redirect_backoff_us);
    cr_assert_eq(h.n_sent, 3);
    cr_assert_eq(h.sent[2].to, (other + 1) % 3);
    /* Ping-pong between two replicas that each name the other stops after
     * 2 * n_replicas hops and falls back to waiting. */
    size_t before = h.n_sent;
    for (int i = 0; i < 20; i++) {
        sent s = h.sent[h.n_sent - 1];
        h_reply(&h, &s, s.to, PX_REPLY_REDIRECT, (uint16_t)((s.to + 1) % 3), NULL);
        if (h.n_sent == before + (size_t)i)
            break;
    }
    cr_assert_leq(h.n_sent - before, 2 * 3);
    wl_counters k;
    wl_counters_get(h.w, &k);
    cr_assert_geq(k.redirects, 3);
    h_fini(&h);
}

Test(wl_client, timeout_is_info_and_a_new_process)
{
    wl_config c;
    one_client(&c);
    c.n_clients = 2;
    c.op_timeout_us = 200 * MS;
    harness h;
    h_init(&h, &c, 11);
    wl_start(h.w);
    sent lost = h.sent[0];
    h.now = 50 * MS;
    h_execute(&h, &h.sent[1], h.sent[1].to); /* client 1 goes on; client 0 hears nothing */
    h_advance(&h, 199 * MS);
    cr_assert_null(last_of(&h, WL_HIST_INFO));
    h_advance(&h, 200 * MS);
    const rec *info = last_of(&h, WL_HIST_INFO);
    cr_assert_not_null(info);
    cr_assert_eq(info->process, 0);
    cr_assert_eq(info->time_us, 200 * MS);
    cr_assert(info->has_value, "an info record carries the op's value");
    /* The next op: process 0 + total_clients, client id process + 1, seq 1. */
    const sent *next = &h.sent[h.n_sent - 1];
    cr_assert_eq(next->from, PX_CLIENT_BASE);
    cr_assert_eq(next->c.client_id, 3);
    cr_assert_eq(next->c.seq, 1);
    const rec *inv = last_of(&h, WL_HIST_INVOKE);
    cr_assert_eq(inv->process, 2);
    /* The abandoned command's late answer changes nothing. */
    size_t n_hist = h.n_hist;
    h_execute(&h, &lost, lost.to);
    cr_assert_eq(h.n_hist, n_hist);
    wl_counters k;
    wl_counters_get(h.w, &k);
    cr_assert_eq(k.info, 1);
    h_fini(&h);
}

/* ---- several engines in one run ---- */

Test(wl_client, global_numbering_slices_addresses_and_processes)
{
    wl_config c;
    one_client(&c);
    c.n_clients = 2;
    c.first_client = 1;
    c.client_step = 2;
    c.total_clients = 4;
    c.op_timeout_us = 100 * MS;
    harness h;
    h_init(&h, &c, 13);
    cr_assert_eq(wl_n_clients(h.w), 2);
    cr_assert_eq(wl_client_addr(h.w, 0), PX_CLIENT_BASE + 1);
    cr_assert_eq(wl_client_addr(h.w, 1), PX_CLIENT_BASE + 3);
    wl_start(h.w);
    cr_assert_eq(h.hist[0].process, 1);
    cr_assert_eq(h.hist[1].process, 3);
    cr_assert_eq(h.sent[1].c.client_id, 4);
    h_advance(&h, 100 * MS); /* both time out */
    cr_assert_eq(h.hist[h.n_hist - 1].process, 7);
    cr_assert_eq(h.hist[h.n_hist - 3].process, 5);
    px_msg m = {.type = PX_MSG_CLIENT_REPLY, .from = 0, .to = PX_CLIENT_BASE + 2};
    cr_assert_eq(wl_recv(h.w, &m), -ENOENT, "client 2 belongs to another engine");
    m.to = PX_CLIENT_BASE + 5;
    cr_assert_eq(wl_recv(h.w, &m), -ENOENT);
    m.to = PX_CLIENT_BASE + 3;
    m.type = PX_MSG_COMMIT;
    cr_assert_eq(wl_recv(h.w, &m), -EBADMSG);
    h_fini(&h);
}

/* ---- load ---- */

Test(wl_client, open_loop_meets_the_rate_and_skips_when_busy)
{
    wl_config c;
    one_client(&c);
    c.n_clients = 2;
    c.rate_ops_per_s = 1000;
    harness h;
    h_init(&h, &c, 17);
    h.leader = 1;
    wl_start(h.w);
    cr_assert_eq(h.n_sent, 0, "open loop: nothing before the first arrival");
    cr_assert_neq(h.armed, UINT64_MAX);
    /* Nobody answers for 100 ms: two ops in flight, every other arrival skipped. */
    h_advance(&h, 100 * MS);
    wl_counters k;
    wl_counters_get(h.w, &k);
    cr_assert_eq(k.invoked, 2);
    cr_assert(k.skipped > 80 && k.skipped < 120, "skipped %llu", (unsigned long long)k.skipped);
    /* Now the cluster answers everything at once: the rate is met. */
    h_serve(&h);
    uint64_t inv0 = k.invoked;
    for (uint64_t t = 100 * MS; t < 1100 * MS; t += 100) {
        h_advance(&h, t);
        h_serve(&h);
    }
    wl_counters_get(h.w, &k);
    cr_assert(k.invoked - inv0 > 900 && k.invoked - inv0 < 1100, "invoked %llu in 1 s at 1000/s",
              (unsigned long long)(k.invoked - inv0));
    cr_assert_eq(k.info, 0);
    h_fini(&h);
}

Test(wl_client, think_time_and_stop)
{
    wl_config c;
    one_client(&c);
    c.think_us = 10 * MS;
    harness h;
    h_init(&h, &c, 19);
    h.leader = 0;
    wl_start(h.w);
    h_settle(&h);
    cr_assert_eq(wl_outstanding(h.w), 0);
    cr_assert_eq(h.armed, 10 * MS, "idle, thinking");
    h_advance(&h, 10 * MS);
    cr_assert_eq(wl_outstanding(h.w), 1);
    wl_stop(h.w);
    cr_assert_eq(wl_outstanding(h.w), 1, "an op in flight still completes");
    h_settle(&h);
    cr_assert_eq(wl_outstanding(h.w), 0);
    cr_assert_eq(h.armed, UINT64_MAX, "stopped and idle: no timer");
    cr_assert_eq(wl_next_timer_us(h.w), UINT64_MAX);
    size_t n = h.n_sent;
    h_advance(&h, 10 * 1000 * MS);
    cr_assert_eq(h.n_sent, n, "a stopped engine sends nothing");
    h_fini(&h);
}

/* A cas expects what the engine last saw committed for its key. */
Test(wl_client, cas_expects_the_last_committed_value)
{
    wl_config c;
    one_client(&c);
    c.mix[PX_OP_CAS] = 1;
    c.n_keys = 1;
    harness h;
    h_init(&h, &c, 23);
    h.leader = 2;
    wl_start(h.w);
    int cas_seen = 0, cas_ok = 0;
    char last[BUF] = "";
    bool have_last = false;
    for (int i = 0; i < 200; i++) {
        const rec *inv = &h.hist[h.n_hist - 1];
        cr_assert_eq(inv->type, WL_HIST_INVOKE);
        if (inv->f == PX_OP_CAS) {
            cas_seen++;
            cr_assert_eq(inv->has_expected, have_last);
            if (have_last)
                cr_assert_str_eq(inv->expected, last);
        }
        h_serve(&h); /* a redirect, or the answer */
        if (h.hist[h.n_hist - 1].type == WL_HIST_INVOKE && h.hist[h.n_hist - 1].seq == inv->seq)
            h_serve(&h); /* the answer after a redirect */
        const rec *done = &h.hist[h.n_hist - 2]; /* then the next invoke */
        cr_assert_eq(done->process, inv->process);
        if (done->type == WL_HIST_OK) {
            snprintf(last, sizeof(last), "%s", done->value);
            have_last = true;
            cas_ok += done->f == PX_OP_CAS;
        }
    }
    cr_assert_gt(cas_seen, 50);
    cr_assert_eq(cas_ok, cas_seen, "one client, one key: every cas expects what is there");
    h_fini(&h);
}

/* Same seed, same sends and history; another seed, another run. */
static uint64_t run_hash(uint64_t seed)
{
    wl_config c;
    wl_config_default(&c);
    c.n_clients = 8;
    c.n_keys = 3;
    c.retry_us = 2 * MS;
    harness h;
    h_init(&h, &c, seed);
    h.leader = 1;
    wl_start(h.w);
    for (uint64_t t = 0; t < 200 * MS; t += 250) {
        h_advance(&h, t);
        if ((t / 250) % 7)
            h_serve(&h); /* sometimes late: retries happen */
        else
            h.n_done = h.n_sent; /* ... and sometimes lost */
    }
    uint64_t x = px_hash64(seed, h.hist, h.n_hist * sizeof(rec));
    x = px_hash64(x, &h.n_sent, sizeof(h.n_sent));
    cr_assert_gt(h.n_hist, 100);
    h_fini(&h);
    return x;
}

Test(wl_client, same_seed_same_history)
{
    cr_assert_eq(run_hash(5), run_hash(5));
    cr_assert_neq(run_hash(5), run_hash(6));
}

/* An event loop may wake early (or twice): nothing fires before its time, and
 * the engine renews the wake-up it may have spent. */
Test(wl_client, an_early_timer_changes_nothing_and_is_renewed)
{
    wl_config c;
    one_client(&c);
    harness h;
    h_init(&h, &c, 29);
    wl_start(h.w);
    uint64_t at = h.armed, calls = h.arm_calls;
    cr_assert_eq(at, c.retry_us);
    h.now = at - 1;
    wl_timer(h.w);
    cr_assert_eq(h.n_sent, 1, "nothing is due yet");
    cr_assert_eq(h.armed, at);
    cr_assert_eq(h.arm_calls, calls + 1, "the wake-up is announced again");
    cr_assert_eq(wl_next_timer_us(h.w), at);
    h.now = at;
    wl_timer(h.w);
    cr_assert_eq(h.n_sent, 2, "the retry fires on time");
    h_fini(&h);
}
