/* test_chan.c — shared-memory channels: st_chan alone, then st_chan_server and
 * the rift_stack library together.
 *
 * The second half runs a channel server in a thread with a loopback
 * "transport" as its ops (connect to a port we listen on -> accepted +
 * established; send -> the other end gets the message; close -> closed/reset;
 * detached -> the app's flows and ports freed, peers reset), and the library
 * in the test thread. The server thread sleeps on st_chan_server_fd for up to
 * 2 s between rounds, so a lost wake-up shows up as a timeout, not as a slow
 * pass. Apps that must die (SIGKILL) are forked before the server thread
 * starts. No root, no DPDK. */
#include <criterion/criterion.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "stack/rift_stack.h"
#include "stack/st_chan.h"
#include "stack/st_chan_server.h"
#include "stack/st_transport.h"

#define LB_IP 0xc6120001u /* 198.18.0.1 */
#define MIB (1024u * 1024u)
#define MAX_FLOWS 256
#define MAX_LISTEN 16
#define SERVER_SLEEP_MS 2000
#define WAIT_MS 5000

/* ======================================================================== */
/* st_chan alone: both ends on one region in this process                  */
/* ======================================================================== */

typedef struct pair {
    st_chan_layout lay;
    void *region;
    st_chan_stack_end st;
    st_chan_app_end ap;
} pair;

static void pair_init(pair *p, uint32_t buf_size, uint32_t bufs, uint32_t slots, uint32_t max_msg)
{
    cr_assert_eq(st_chan_layout_make(buf_size, bufs, bufs, slots, &p->lay), 0);
    p->region = aligned_alloc(4096, p->lay.size);
    cr_assert_not_null(p->region);
    memset(p->region, 0, p->lay.size);
    cr_assert_eq(st_chan_stack_init(&p->st, p->region, &p->lay, max_msg), 0);
    cr_assert_eq(st_chan_app_init(&p->ap, p->region, p->lay.size), 0);
}

static void pair_fini(pair *p)
{
    st_chan_stack_fini(&p->st);
    st_chan_app_fini(&p->ap);
    free(p->region);
}

static void fill(uint8_t *b, size_t len, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        b[i] = (uint8_t)x;
    }
}

static bool same_fill(const uint8_t *b, size_t len, uint32_t seed)
{
    uint8_t *want = malloc(len ? len : 1);
    cr_assert_not_null(want);
    fill(want, len, seed);
    bool ok = memcmp(b, want, len) == 0;
    free(want);
    return ok;
}

Test(chan_core, layout_rejects_bad_sizes)
{
    st_chan_layout l;
    cr_expect_eq(st_chan_layout_make(3000, 8, 8, 16, &l), -EINVAL);
    cr_expect_eq(st_chan_layout_make(2048, 0, 8, 16, &l), -EINVAL);
    cr_expect_eq(st_chan_layout_make(2048, 8, 8, 12, &l), -EINVAL);
    cr_expect_eq(st_chan_layout_make(2048, 8, 8, 16, &l), 0);
    cr_expect(l.off_bufs % 4096 == 0 && l.size >= l.off_bufs + 16 * 2048u);
    cr_expect(l.app_ret_slots >= 8 && l.stack_ret_slots >= 8);
}

Test(chan_core, requests_and_events_round_trip)
{
    pair p;
    pair_init(&p, 256, 64, 16, 8192);
    static uint8_t msg[5000];
    for (uint32_t round = 0; round < 50; round++) {
        size_t len = (round * 397u) % sizeof(msg);
        fill(msg, len, round);
        st_chan_desc d = {.type = ST_CHAN_REQ_SEND, .handle = 7, .len = (uint32_t)len};
        cr_assert_eq(st_chan_app_put_req(&p.ap, &d, msg), 0, "round %u", round);
        st_chan_req r;
        cr_assert_eq(st_chan_stack_next_req(&p.st, &r), 1);
        cr_assert_eq(r.type, ST_CHAN_REQ_SEND);
        cr_assert_eq(r.handle, 7u);
        cr_assert_eq(r.len, len);
        cr_assert(same_fill(r.data, len, round));
        cr_assert_eq(st_chan_stack_req_done(&p.st), 0);
        cr_assert_eq(st_chan_stack_next_req(&p.st, &r), 0);

        st_chan_desc e = {.type = RS_EV_MSG, .handle = 9, .len = (uint32_t)len};
        cr_assert_eq(st_chan_stack_put_event(&p.st, &e, msg), 0);
        st_chan_desc got;
        const uint8_t *data;
        cr_assert_eq(st_chan_app_next_event(&p.ap, &got, &data), 1);
        cr_assert_eq(got.type, RS_EV_MSG);
        cr_assert_eq(got.len, len);
        cr_assert(same_fill(data, len, round));
        cr_assert_eq(st_chan_app_next_event(&p.ap, &got, &data), 0);
    }
    /* 50 rounds through a 64-buffer pool: buffers came back both ways. */
    cr_expect_eq(st_chan_stack_reclaim(&p.st), 0);
    cr_expect_eq(p.st.n_free, 64u);
    pair_fini(&p);
}

Test(chan_core, pool_and_ring_limits)
{
    pair p;
    pair_init(&p, 256, 8, 4, 1 << 20);
    cr_expect_eq(p.ap.max_msg, 8u * 256u, "max_msg lowered to one pool half");
    uint8_t big[4096] = {0};
    st_chan_desc d = {.type = ST_CHAN_REQ_SEND, .handle = 1, .len = 8 * 256 + 1};
    cr_expect_eq(st_chan_app_put_req(&p.ap, &d, big), -EMSGSIZE);
    d.len = 5 * 256;
    cr_expect_eq(st_chan_app_put_req(&p.ap, &d, big), 0);
    cr_expect_eq(st_chan_app_put_req(&p.ap, &d, big), -EAGAIN, "3 buffers left, 5 needed");
    d.len = 10;
    for (int i = 0; i < 3; i++)
        cr_expect_eq(st_chan_app_put_req(&p.ap, &d, big), 0);
    cr_expect_eq(st_chan_app_put_req(&p.ap, &d, big), -EAGAIN, "ring of 4 full");
    st_chan_req r;
    cr_expect_eq(st_chan_stack_next_req(&p.st, &r), 1);
    cr_expect_eq(st_chan_stack_req_done(&p.st), 0);
    cr_expect(st_chan_app_has_room(&p.ap, 10));
    cr_expect_eq(st_chan_app_put_req(&p.ap, &d, big), 0);
    pair_fini(&p);
}

/* Scribble on what the app owns; the stack end must say -EPROTO, never crash. */
static int corrupt_and_read(int how)
{
    pair p;
    pair_init(&p, 256, 8, 4, 1 << 20);
    uint8_t m[1024] = {0};
    st_chan_desc d = {.type = ST_CHAN_REQ_SEND, .handle = 1, .len = 3 * 256};
    cr_assert_eq(st_chan_app_put_req(&p.ap, &d, m), 0);
    st_chan_desc *slot = (st_chan_desc *)((uint8_t *)p.region + p.lay.off_req + sizeof(st_chan_ring_idx));
    st_chan_ring_idx *req = (st_chan_ring_idx *)((uint8_t *)p.region + p.lay.off_req);
    uint32_t *link = (uint32_t *)((uint8_t *)p.region + p.lay.off_link);
    switch (how) {
    case 0: slot->buf = 8; break;                         /* a stack buffer */
    case 1: link[slot->buf] = slot->buf; break;           /* a loop */
    case 2: slot->len = 1u << 30; break;                  /* above max_msg */
    case 3: slot->type = 99; break;                       /* no such request */
    case 4: atomic_store(&req->prod, 1000); break;        /* more than a ring */
    case 5: slot->type = ST_CHAN_REQ_CONNECT; slot->handle = 0x80000001u; slot->len = 0; break;
    case 6: slot->buf = 0xfffffff0u; break;
    }
    st_chan_req r;
    int rc = st_chan_stack_next_req(&p.st, &r);
    pair_fini(&p);
    return rc;
}

Test(chan_core, stack_end_rejects_broken_requests)
{
    for (int how = 0; how <= 6; how++)
        cr_expect_eq(corrupt_and_read(how), -EPROTO, "case %d", how);
}

Test(chan_core, stack_end_rejects_bad_returns)
{
    pair p;
    pair_init(&p, 256, 8, 4, 1 << 20);
    st_chan_ring_idx *ret = (st_chan_ring_idx *)((uint8_t *)p.region + p.lay.off_stack_ret);
    uint32_t *slots = (uint32_t *)((uint8_t *)p.region + p.lay.off_stack_ret + sizeof(st_chan_ring_idx));
    slots[0] = 9; /* a stack buffer never lent */
    atomic_store(&ret->prod, 1);
    cr_expect_eq(st_chan_stack_reclaim(&p.st), -EPROTO);
    pair_fini(&p);
}

/* ======================================================================== */
/* loopback harness: server thread + library                               */
/* ======================================================================== */

typedef struct lb_flow {
    bool used;
    st_chan_app *app;
    uint32_t handle;
    int peer;
} lb_flow;

typedef struct lb {
    char path[108];
    st_chan_server *srv;
    pthread_t thr;
    pthread_mutex_t mu; /* held by the server thread around each poll (ops run inside) */
    int poke;           /* eventfd: wake the server thread */
    _Atomic bool stop, paused;
    _Atomic uint32_t throttle; /* send on this handle returns -EAGAIN */
    struct { uint16_t port; st_chan_app *app; } listen[MAX_LISTEN];
    lb_flow flow[MAX_FLOWS];
    uint32_t next_acc;
    int detached;
    const char *why;
    uint64_t sends;
    st_chan_stats stats;
} lb;

static lb *g_lb;

static int lb_find(lb *l, st_chan_app *app, uint32_t handle)
{
    for (int i = 0; i < MAX_FLOWS; i++)
        if (l->flow[i].used && l->flow[i].app == app && l->flow[i].handle == handle)
            return i;
    return -1;
}

static int lb_new_flow(lb *l, st_chan_app *app, uint32_t handle)
{
    for (int i = 0; i < MAX_FLOWS; i++)
        if (!l->flow[i].used) {
            l->flow[i] = (lb_flow){true, app, handle, -1};
            return i;
        }
    return -1;
}

static void lb_push(lb *l, int f, uint8_t kind, uint8_t reason, const void *data, size_t len)
{
    rs_event ev = {.kind = kind, .reason = reason, .flow = l->flow[f].handle, .remote_ip = LB_IP,
                   .remote_port = (uint16_t)(40000 + f), .local_port = 7000, .data = data, .len = len};
    st_chan_server_push(l->srv, l->flow[f].app, &ev);
}

static int op_listen(void *ctx, st_chan_app *app, uint16_t port)
{
    lb *l = ctx;
    for (int i = 0; i < MAX_LISTEN; i++)
        if (l->listen[i].app && l->listen[i].port == port)
            return -EADDRINUSE;
    for (int i = 0; i < MAX_LISTEN; i++)
        if (!l->listen[i].app) {
            l->listen[i].app = app;
            l->listen[i].port = port;
            return 0;
        }
    return -ENOSPC;
}

static int op_connect(void *ctx, st_chan_app *app, uint32_t handle, uint32_t ip, uint16_t port)
{
    lb *l = ctx;
    if (ip != LB_IP)
        return -EHOSTUNREACH;
    int a = lb_new_flow(l, app, handle);
    if (a < 0)
        return -ENOSPC;
    st_chan_app *to = NULL;
    for (int i = 0; i < MAX_LISTEN; i++)
        if (l->listen[i].app && l->listen[i].port == port)
            to = l->listen[i].app;
    if (!to) {
        lb_push(l, a, RS_EV_RESET, ST_RESET_REFUSED, NULL, 0);
        l->flow[a].used = false;
        return 0;
    }
    int b = lb_new_flow(l, to, 0x80000000u | ++l->next_acc);
    if (b < 0) {
        l->flow[a].used = false;
        return -ENOSPC;
    }
    l->flow[a].peer = b;
    l->flow[b].peer = a;
    lb_push(l, b, RS_EV_ACCEPTED, 0, NULL, 0);
    lb_push(l, a, RS_EV_ESTABLISHED, 0, NULL, 0);
    return 0;
}

static int op_send(void *ctx, st_chan_app *app, uint32_t handle, const uint8_t *msg, size_t len)
{
    lb *l = ctx;
    int f = lb_find(l, app, handle);
    if (f < 0 || l->flow[f].peer < 0)
        return -ENOENT;
    if (atomic_load(&l->throttle) == handle)
        return -EAGAIN;
    l->sends++;
    lb_push(l, l->flow[f].peer, RS_EV_MSG, 0, msg, len);
    return 0;
}

static void lb_drop(lb *l, int f, bool tell_peer)
{
    int p = l->flow[f].peer;
    l->flow[f].used = false;
    if (p >= 0 && l->flow[p].used) {
        l->flow[p].peer = -1;
        if (tell_peer)
            lb_push(l, p, RS_EV_RESET, ST_RESET_PEER, NULL, 0);
        l->flow[p].used = false;
    }
}

static int op_close(void *ctx, st_chan_app *app, uint32_t handle, bool abort)
{
    lb *l = ctx;
    int f = lb_find(l, app, handle);
    if (f < 0)
        return -ENOENT;
    if (!abort) {
        int p = l->flow[f].peer;
        lb_push(l, f, RS_EV_CLOSED, ST_CLOSE_LOCAL, NULL, 0);
        if (p >= 0)
            lb_push(l, p, RS_EV_CLOSED, ST_CLOSE_PEER, NULL, 0);
        if (p >= 0)
            l->flow[p].used = false;
        l->flow[f].used = false;
        return 0;
    }
    lb_drop(l, f, true);
    return 0;
}

static void op_detached(void *ctx, st_chan_app *app)
{
    lb *l = ctx;
    l->detached++;
    l->why = st_chan_app_why(app);
    for (int i = 0; i < MAX_FLOWS; i++)
        if (l->flow[i].used && l->flow[i].app == app)
            lb_drop(l, i, true);
    for (int i = 0; i < MAX_LISTEN; i++)
        if (l->listen[i].app == app)
            l->listen[i].app = NULL;
}

static const st_chan_ops lb_ops = {.listen = op_listen, .connect = op_connect, .send = op_send,
                                   .close = op_close, .detached = op_detached};

static void *lb_thread(void *arg)
{
    lb *l = arg;
    while (!atomic_load(&l->stop)) {
        int n = 0;
        if (!atomic_load(&l->paused)) {
            pthread_mutex_lock(&l->mu);
            n = st_chan_server_poll(l->srv, 256);
            st_chan_server_stats(l->srv, &l->stats);
            pthread_mutex_unlock(&l->mu);
        }
        if (n == 0) {
            struct pollfd pf[2] = {{.fd = st_chan_server_fd(l->srv), .events = POLLIN},
                                   {.fd = l->poke, .events = POLLIN}};
            if (atomic_load(&l->paused))
                pf[0].fd = -1;
            poll(pf, 2, SERVER_SLEEP_MS);
            uint64_t v;
            if (pf[1].revents)
                (void)!read(l->poke, &v, sizeof(v));
        }
    }
    return NULL;
}

static void lb_poke(lb *l)
{
    uint64_t one = 1;
    (void)!write(l->poke, &one, sizeof(one));
}

static lb *lb_start_cfg(const st_chan_config *cfg)
{
    lb *l = calloc(1, sizeof(*l));
    cr_assert_not_null(l);
    snprintf(l->path, sizeof(l->path), "/tmp/rf-chan-test-%d.sock", (int)getpid());
    pthread_mutex_init(&l->mu, NULL);
    l->poke = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    cr_assert(l->poke >= 0);
    st_chan_ops ops = lb_ops;
    ops.ctx = l;
    int err = 0;
    l->srv = st_chan_server_new_cfg(l->path, cfg, &ops, &err);
    cr_assert_not_null(l->srv, "server: %s", strerror(-err));
    cr_assert_eq(pthread_create(&l->thr, NULL, lb_thread, l), 0);
    g_lb = l;
    return l;
}

static lb *lb_start(void)
{
    st_chan_config c;
    st_chan_config_default(&c);
    c.local_ip = LB_IP;
    return lb_start_cfg(&c);
}

/* Stop the thread and free the server (every app sees its socket close). */
static void lb_stop(lb *l)
{
    if (!l->srv)
        return;
    atomic_store(&l->stop, true);
    lb_poke(l);
    pthread_join(l->thr, NULL);
    st_chan_server_free(l->srv);
    l->srv = NULL;
}

static void lb_free(lb *l)
{
    lb_stop(l);
    close(l->poke);
    pthread_mutex_destroy(&l->mu);
    free(l);
    g_lb = NULL;
}

static void lb_pause(lb *l, bool on)
{
    atomic_store(&l->paused, on);
    lb_poke(l);
    if (on) { /* let a poll in progress finish */
        pthread_mutex_lock(&l->mu);
        pthread_mutex_unlock(&l->mu);
    }
}

static int lb_detached(lb *l)
{
    pthread_mutex_lock(&l->mu);
    int n = l->detached;
    pthread_mutex_unlock(&l->mu);
    return n;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool wait_detached(lb *l, int n)
{
    int64_t end = now_ms() + WAIT_MS;
    while (now_ms() < end) {
        if (lb_detached(l) >= n)
            return true;
        usleep(2000);
    }
    return false;
}

/* Next event, sleeping on rs_fd: 1, 0 = nothing within ms, -EPIPE. */
static int next_ev(rs_stack *s, rs_event *ev, int ms)
{
    int64_t end = now_ms() + ms;
    for (;;) {
        int rc = rs_poll(s, ev);
        if (rc != 0)
            return rc;
        int64_t left = end - now_ms();
        if (left <= 0)
            return 0;
        struct pollfd pf = {.fd = rs_fd(s), .events = POLLIN};
        poll(&pf, 1, (int)left);
    }
}

static rs_stack *attach(lb *l)
{
    rs_stack *s = NULL;
    int rc = rs_attach(l->path, &s);
    cr_assert_eq(rc, 0, "rs_attach: %s", strerror(-rc));
    cr_assert_eq(rs_local_ip(s), LB_IP);
    return s;
}

/* listen + connect; returns the connect handle and the accepted one. */
static void open_pair(rs_stack *s, uint16_t port, bool do_listen, uint32_t *c, uint32_t *a)
{
    if (do_listen)
        cr_assert_eq(rs_listen(s, port), 0);
    cr_assert_eq(rs_connect(s, LB_IP, port, c), 0);
    cr_assert(*c >= 1 && *c <= 0x7fffffffu);
    bool est = false, acc = false;
    while (!est || !acc) {
        rs_event ev;
        cr_assert_eq(next_ev(s, &ev, WAIT_MS), 1, "no established/accepted");
        if (ev.kind == RS_EV_ESTABLISHED && ev.flow == *c)
            est = true;
        else if (ev.kind == RS_EV_ACCEPTED) {
            cr_assert(ev.flow & 0x80000000u);
            cr_assert_eq(ev.local_port, 7000);
            *a = ev.flow;
            acc = true;
        } else
            cr_assert_fail("unexpected event kind %u", ev.kind);
    }
}

/* Receiver state for a stream of seeded messages on one flow. */
typedef struct rx_check {
    uint32_t flow, next_seq, bad;
} rx_check;

static size_t seq_len(uint32_t seq, size_t max)
{
    return (seq * 7919u) % max;
}

static void rx_take(rx_check *r, const rs_event *ev, size_t max)
{
    cr_assert_eq(ev->kind, RS_EV_MSG, "kind %u", ev->kind);
    cr_assert_eq(ev->flow, r->flow);
    cr_assert_eq(ev->len, seq_len(r->next_seq, max), "message %u: length", r->next_seq);
    if (!same_fill(ev->data, ev->len, r->next_seq))
        r->bad++;
    r->next_seq++;
}

/* Send n seeded messages on flow tx while taking whatever arrives for rx. */
static void stream(rs_stack *s, uint32_t tx, rx_check *rx, uint32_t n, size_t max)
{
    uint8_t *buf = malloc(max);
    cr_assert_not_null(buf);
    uint32_t eagain = 0;
    for (uint32_t seq = 0; seq < n; seq++) {
        size_t len = seq_len(seq, max);
        fill(buf, len, seq);
        int rc;
        while ((rc = rs_send(s, tx, buf, len)) == -EAGAIN) {
            eagain++;
            rs_event ev;
            if (next_ev(s, &ev, 10) == 1)
                rx_take(rx, &ev, max);
        }
        cr_assert_eq(rc, 0, "send %u: %s (detached: %s)", seq, strerror(-rc), g_lb->why ? g_lb->why : "-");
    }
    while (rx->next_seq < n) {
        rs_event ev;
        cr_assert_eq(next_ev(s, &ev, WAIT_MS), 1, "got %u of %u", rx->next_seq, n);
        rx_take(rx, &ev, max);
    }
    cr_expect_eq(rx->bad, 0u);
    free(buf);
}

static void cleanup(void)
{
    if (g_lb)
        lb_free(g_lb);
}

TestSuite(chan, .fini = cleanup, .timeout = 60);

Test(chan, small_messages_both_ways_in_order)
{
    lb *l = lb_start();
    rs_stack *s = attach(l);
    uint32_t c, a;
    open_pair(s, 7000, true, &c, &a);
    rx_check r1 = {.flow = a};
    stream(s, c, &r1, 3000, 300);
    rx_check r2 = {.flow = c};
    stream(s, a, &r2, 3000, 300);
    rs_detach(s);
    cr_expect(wait_detached(l, 1));
    cr_expect_str_eq(l->why, "socket closed");
}

static void big_one(rs_stack *s, uint32_t tx, uint32_t rx, size_t len, uint32_t seed)
{
    uint8_t *buf = malloc(len);
    cr_assert_not_null(buf);
    fill(buf, len, seed);
    int rc;
    while ((rc = rs_send(s, tx, buf, len)) == -EAGAIN) {
        struct pollfd pf = {.fd = rs_fd(s), .events = POLLIN};
        poll(&pf, 1, 100);
    }
    cr_assert_eq(rc, 0, "%zu bytes: %s", len, strerror(-rc));
    free(buf);
    rs_event ev;
    cr_assert_eq(next_ev(s, &ev, 10000), 1);
    cr_assert_eq(ev.kind, RS_EV_MSG);
    cr_assert_eq(ev.flow, rx);
    cr_assert_eq(ev.len, len);
    cr_assert(same_fill(ev.data, len, seed), "content of %zu bytes", len);
}

Test(chan, one_and_eight_mib_messages)
{
    lb *l = lb_start();
    rs_stack *s = attach(l);
    cr_assert_eq(rs_max_msg(s), 8 * MIB);
    uint32_t c, a;
    open_pair(s, 7000, true, &c, &a);
    big_one(s, c, a, 1 * MIB, 1);
    big_one(s, a, c, 1 * MIB + 3, 2);
    big_one(s, c, a, 8 * MIB, 3);
    big_one(s, a, c, 8 * MIB, 4);
    /* a small one after the big ones: order and pool are intact */
    big_one(s, c, a, 100, 5);
    static uint8_t one;
    cr_expect_eq(rs_send(s, c, &one, 8 * MIB + 1), -EMSGSIZE);
    rs_detach(s);
}

Test(chan, small_pool_msgsize_and_eagain)
{
    st_chan_config cfg;
    st_chan_config_default(&cfg);
    cfg.local_ip = LB_IP;
    cfg.max_msg = MIB;
    cfg.bufs_per_dir = 64; /* 128 KiB per direction */
    lb *l = lb_start_cfg(&cfg);
    rs_stack *s = attach(l);
    cr_assert_eq(rs_max_msg(s), 128u * 1024u, "max_msg is what the pool holds");
    uint32_t c, a;
    open_pair(s, 7000, true, &c, &a);
    uint8_t *buf = calloc(1, 200 * 1024);
    cr_assert_not_null(buf);
    cr_expect_eq(rs_send(s, c, buf, 200 * 1024), -EMSGSIZE, "longer than the pool");
    lb_pause(l, true);
    cr_expect_eq(rs_send(s, c, buf, 100 * 1024), 0);
    cr_expect_eq(rs_send(s, c, buf, 100 * 1024), -EAGAIN, "does not fit now");
    lb_pause(l, false);
    /* The stack hands the buffers back and must wake us (we got -EAGAIN). */
    struct pollfd pf = {.fd = rs_fd(s), .events = POLLIN};
    cr_assert_eq(poll(&pf, 1, WAIT_MS), 1, "no wake-up after -EAGAIN");
    rs_event ev;
    cr_assert_eq(next_ev(s, &ev, WAIT_MS), 1);
    cr_assert_eq(ev.len, 100u * 1024u);
    /* The event can overtake the return of the request's buffers (the stack
     * posts it from inside ops->send): -EAGAIN, then a wake-up, then room. */
    int rc;
    int64_t end = now_ms() + WAIT_MS;
    while ((rc = rs_send(s, c, buf, 100 * 1024)) == -EAGAIN && now_ms() < end)
        cr_assert_eq(poll(&pf, 1, WAIT_MS), 1, "no wake-up when buffers came back");
    cr_expect_eq(rc, 0);
    free(buf);
    rs_detach(s);
}

Test(chan, full_ring_eagain_then_progress)
{
    lb *l = lb_start();
    rs_stack *s = attach(l);
    uint32_t c, a;
    open_pair(s, 7000, true, &c, &a);
    lb_pause(l, true);
    uint32_t sent = 0;
    uint8_t buf[64];
    int rc;
    for (;;) {
        fill(buf, seq_len(sent, 64), sent);
        rc = rs_send(s, c, buf, seq_len(sent, 64));
        if (rc != 0)
            break;
        sent++;
        cr_assert(sent <= 100000);
    }
    cr_assert_eq(rc, -EAGAIN);
    cr_expect_eq(sent, ST_CHAN_RING_SLOTS_DEFAULT, "a full ring is 1024 requests");
    lb_pause(l, false);
    struct pollfd pf = {.fd = rs_fd(s), .events = POLLIN};
    cr_assert_eq(poll(&pf, 1, WAIT_MS), 1, "no wake-up after -EAGAIN");
    rx_check r = {.flow = a};
    while (r.next_seq < sent) {
        rs_event ev;
        cr_assert_eq(next_ev(s, &ev, WAIT_MS), 1, "got %u of %u", r.next_seq, sent);
        rx_take(&r, &ev, 64);
    }
    cr_expect_eq(r.bad, 0u);
    fill(buf, 10, 1);
    cr_expect_eq(rs_send(s, c, buf, 10), 0);
    rs_detach(s);
}

/* ops->send saying -EAGAIN holds back that flow only, and its close. */
Test(chan, refused_send_parks_per_flow)
{
    lb *l = lb_start();
    rs_stack *s = attach(l);
    uint32_t c1, a1, c2, a2;
    open_pair(s, 7000, true, &c1, &a1);
    open_pair(s, 7000, false, &c2, &a2);
    atomic_store(&l->throttle, c1);
    uint8_t buf[64];
    for (uint32_t i = 0; i < 10; i++) {
        fill(buf, seq_len(i, 64), i);
        cr_assert_eq(rs_send(s, c1, buf, seq_len(i, 64)), 0);
        cr_assert_eq(rs_send(s, c2, buf, seq_len(i, 64)), 0);
    }
    cr_assert_eq(rs_close(s, c1), 0);
    cr_expect_eq(rs_send(s, c1, buf, 1), -ENOTCONN, "closing flow");
    rx_check r2 = {.flow = a2};
    while (r2.next_seq < 10) {
        rs_event ev;
        cr_assert_eq(next_ev(s, &ev, WAIT_MS), 1);
        rx_take(&r2, &ev, 64);
    }
    rs_event ev;
    cr_expect_eq(next_ev(s, &ev, 200), 0, "nothing on the throttled flow (got kind %u)", ev.kind);
    pthread_mutex_lock(&l->mu);
    cr_expect_eq(l->stats.queued, 11u, "10 sends and a close parked");
    pthread_mutex_unlock(&l->mu);
    atomic_store(&l->throttle, 0);
    lb_poke(l);
    rx_check r1 = {.flow = a1};
    bool closed_local = false, closed_peer = false;
    while (!closed_local || !closed_peer) {
        cr_assert_eq(next_ev(s, &ev, WAIT_MS), 1);
        if (ev.kind == RS_EV_MSG) {
            cr_assert(!closed_peer, "message after the close");
            rx_take(&r1, &ev, 64);
        } else if (ev.kind == RS_EV_CLOSED && ev.flow == c1) {
            cr_expect_eq(ev.reason, ST_CLOSE_LOCAL);
            closed_local = true;
        } else if (ev.kind == RS_EV_CLOSED && ev.flow == a1) {
            cr_expect_eq(ev.reason, ST_CLOSE_PEER);
            closed_peer = true;
        } else {
            cr_assert_fail("unexpected kind %u flow %x", ev.kind, ev.flow);
        }
    }
    cr_expect_eq(r1.next_seq, 10u);
    cr_expect_eq(r1.bad, 0u);
    cr_expect_eq(rs_send(s, c1, buf, 1), -ENOTCONN, "closed flow");
    rs_detach(s);
}

Test(chan, errors_listen_connect_send)
{
    lb *l = lb_start();
    rs_stack *s1 = attach(l), *s2 = attach(l);
    cr_expect_eq(rs_listen(s1, 7000), 0);
    cr_expect_eq(rs_listen(s2, 7000), -EADDRINUSE);
    cr_expect_eq(rs_listen(s2, 0), -EINVAL);
    uint32_t f;
    rs_event ev;
    cr_assert_eq(rs_connect(s2, LB_IP, 7001, &f), 0);
    cr_assert_eq(next_ev(s2, &ev, WAIT_MS), 1);
    cr_expect(ev.kind == RS_EV_RESET && ev.flow == f && ev.reason == ST_RESET_REFUSED);
    cr_expect_eq(rs_send(s2, f, "x", 1), -ENOTCONN, "reset flow");
    cr_assert_eq(rs_connect(s2, 0x0a000001u, 7000, &f), 0);
    cr_assert_eq(next_ev(s2, &ev, WAIT_MS), 1);
    cr_expect(ev.kind == RS_EV_RESET && ev.flow == f && ev.reason == RS_RESET_LOCAL);
    cr_expect_eq(rs_send(s2, 12345, "x", 1), -ENOTCONN, "never opened");
    cr_expect_eq(rs_abort(s2, 12345), -ENOTCONN);
    rs_stack *s3 = NULL;
    cr_expect_eq(rs_attach("/tmp/rf-chan-test-no-such.sock", &s3), -ENOENT);
    cr_expect_null(s3);
    rs_detach(s1);
    rs_detach(s2);
    /* s1 gone: its port is free again */
    cr_assert(wait_detached(l, 2));
    rs_stack *s4 = attach(l);
    cr_expect_eq(rs_listen(s4, 7000), 0);
    rs_detach(s4);
}

/* Aborted flows: later events for the handle are not shown to the app. */
Test(chan, abort_drops_late_events)
{
    lb *l = lb_start();
    rs_stack *s = attach(l);
    uint32_t c, a;
    open_pair(s, 7000, true, &c, &a);
    lb_pause(l, true);
    cr_assert_eq(rs_send(s, a, "late", 4), 0);
    cr_assert_eq(rs_send(s, c, "ok", 2), 0);
    cr_assert_eq(rs_abort(s, c), 0);
    lb_pause(l, false);
    rs_event ev;
    /* a -> c "late" is dropped (c aborted); c -> a "ok" arrives, then a's reset. */
    cr_assert_eq(next_ev(s, &ev, WAIT_MS), 1);
    cr_expect(ev.kind == RS_EV_MSG && ev.flow == a && ev.len == 2);
    cr_assert_eq(next_ev(s, &ev, WAIT_MS), 1);
    cr_expect(ev.kind == RS_EV_RESET && ev.flow == a && ev.reason == ST_RESET_PEER, "kind %u flow %x", ev.kind,
              ev.flow);
    cr_expect_eq(next_ev(s, &ev, 100), 0);
    rs_detach(s);
}

/* Both sides sleeping on their fds between messages: a lost wake-up costs
 * the server 2 s or fails the app's wait. */
Test(chan, ping_pong_wakeups)
{
    lb *l = lb_start();
    rs_stack *s = attach(l);
    uint32_t c, a;
    open_pair(s, 7000, true, &c, &a);
    int64_t worst = 0;
    for (uint32_t i = 0; i < 300; i++) {
        int64_t t0 = now_ms();
        uint32_t from = i % 2 ? a : c, to = i % 2 ? c : a;
        cr_assert_eq(rs_send(s, from, &i, sizeof(i)), 0);
        rs_event ev;
        cr_assert_eq(next_ev(s, &ev, WAIT_MS), 1, "round %u", i);
        cr_assert(ev.kind == RS_EV_MSG && ev.flow == to && ev.len == sizeof(i) && !memcmp(ev.data, &i, 4));
        int64_t dt = now_ms() - t0;
        if (dt > worst)
            worst = dt;
    }
    cr_expect(worst < SERVER_SLEEP_MS / 2, "a round trip took %lld ms", (long long)worst);
    rs_detach(s);
}

/* An app killed with SIGKILL: the server notices, ops->detached frees its
 * flows and ports, and nothing leaks into other apps. */
Test(chan, killed_app_is_detached)
{
    int pfd[2];
    cr_assert_eq(pipe(pfd), 0);
    char path[108];
    snprintf(path, sizeof(path), "/tmp/rf-chan-test-%d.sock", (int)getpid());
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a failed test */
        close(pfd[0]);
        rs_stack *s = NULL;
        for (int i = 0; i < 500 && rs_attach(path, &s) != 0; i++)
            usleep(10000);
        if (!s)
            _exit(1);
        uint32_t f1, f2;
        if (rs_listen(s, 7100) || rs_connect(s, LB_IP, 7100, &f1) || rs_connect(s, LB_IP, 7100, &f2))
            _exit(2);
        for (int i = 0; i < 4; i++) { /* wait until both flows are up */
            rs_event ev;
            if (next_ev(s, &ev, WAIT_MS) != 1)
                _exit(3);
        }
        (void)!rs_send(s, f1, "hello", 5);
        (void)!write(pfd[1], "k", 1);
        for (;;)
            pause();
    }
    close(pfd[1]);
    lb *l = lb_start();
    char k;
    struct pollfd pf = {.fd = pfd[0], .events = POLLIN};
    cr_assert_eq(poll(&pf, 1, 10000), 1, "child never got ready");
    cr_assert_eq(read(pfd[0], &k, 1), 1, "child failed");
    close(pfd[0]);
    pthread_mutex_lock(&l->mu);
    int flows = 0;
    for (int i = 0; i < MAX_FLOWS; i++)
        flows += l->flow[i].used;
    cr_expect_eq(flows, 4, "two flows, both ends");
    cr_expect_eq(l->stats.apps, 1u);
    pthread_mutex_unlock(&l->mu);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    cr_assert(wait_detached(l, 1), "SIGKILLed app never detached");
    pthread_mutex_lock(&l->mu);
    flows = 0;
    for (int i = 0; i < MAX_FLOWS; i++)
        flows += l->flow[i].used;
    int ports = 0;
    for (int i = 0; i < MAX_LISTEN; i++)
        ports += l->listen[i].app != NULL;
    cr_expect_eq(flows, 0);
    cr_expect_eq(ports, 0);
    cr_expect_str_eq(l->why, "socket closed");
    pthread_mutex_unlock(&l->mu);
    usleep(20000);
    pthread_mutex_lock(&l->mu);
    cr_expect_eq(l->stats.apps, 0u);
    cr_expect_eq(l->stats.detaches, 1u);
    pthread_mutex_unlock(&l->mu);
    rs_stack *s = attach(l);
    cr_expect_eq(rs_listen(s, 7100), 0, "the dead app's port is free");
    rs_detach(s);
}

Test(chan, stack_gone_gives_epipe)
{
    lb *l = lb_start();
    rs_stack *s = attach(l), *t = attach(l);
    uint32_t c, a;
    open_pair(s, 7000, true, &c, &a);
    uint32_t c2, a2;
    cr_assert_eq(rs_listen(t, 7001), 0);
    open_pair(t, 7001, false, &c2, &a2);
    lb_stop(l);
    rs_event ev;
    struct pollfd pf = {.fd = rs_fd(s), .events = POLLIN};
    cr_expect_eq(poll(&pf, 1, WAIT_MS), 1, "rs_fd wakes when the stack dies");
    cr_expect_eq(rs_poll(s, &ev), -EPIPE);
    cr_expect_eq(rs_send(s, c, "x", 1), -EPIPE);
    cr_expect_eq(rs_connect(s, LB_IP, 7000, &c), -EPIPE);
    cr_expect_eq(rs_listen(s, 7002), -EPIPE);
    /* without polling first: sends fill the channel, then -EPIPE */
    int rc = 0;
    uint32_t n = 0;
    while ((rc = rs_send(t, c2, "y", 1)) == 0 && n < 100000)
        n++;
    cr_expect_eq(rc, -EPIPE, "after %u sends", n);
    rs_detach(s);
    rs_detach(t);
}

/* An app that stops reading: its events queue in the server, then it is
 * detached; its peer sees the flow reset. */
Test(chan, stalled_reader_is_detached)
{
    st_chan_config cfg;
    st_chan_config_default(&cfg);
    cfg.local_ip = LB_IP;
    cfg.stall_ms = 300;
    lb *l = lb_start_cfg(&cfg);
    rs_stack *rd = attach(l), *wr = attach(l);
    cr_assert_eq(rs_listen(rd, 7000), 0);
    uint32_t f;
    cr_assert_eq(rs_connect(wr, LB_IP, 7000, &f), 0);
    rs_event ev;
    cr_assert_eq(next_ev(wr, &ev, WAIT_MS), 1);
    cr_assert_eq(ev.kind, RS_EV_ESTABLISHED);
    uint8_t buf[512] = {0};
    for (int i = 0; i < 3000; i++) {
        int rc;
        while ((rc = rs_send(wr, f, buf, sizeof(buf))) == -EAGAIN)
            usleep(1000);
        if (rc != 0)
            break;
    }
    cr_assert(wait_detached(l, 1), "stalled reader kept");
    cr_expect_str_eq(l->why, "stopped reading its events");
    bool reset = false;
    while (!reset && next_ev(wr, &ev, WAIT_MS) == 1)
        reset = ev.kind == RS_EV_RESET && ev.flow == f;
    cr_expect(reset, "writer saw no reset");
    /* The stalled app still drains what it was given, then sees -EPIPE. */
    int rc, n = 0;
    while ((rc = rs_poll(rd, &ev)) == 1)
        n++;
    cr_expect_eq(rc, -EPIPE);
    cr_expect(n >= 1024, "events already in its ring: %d", n);
    rs_detach(rd);
    rs_detach(wr);
}

/* ======================================================================== */
/* test-crafted apps speaking the socket protocol by hand                   */
/* ======================================================================== */

typedef struct raw_app {
    int sock, fds[3];
    void *base;
    size_t size;
    st_chan_layout lay;
    st_chan_welcome w;
} raw_app;

static int raw_hello(const char *path, uint16_t version, raw_app *r)
{
    memset(r, 0, sizeof(*r));
    r->fds[0] = r->fds[1] = r->fds[2] = -1;
    r->sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    cr_assert_eq(connect(r->sock, (struct sockaddr *)&sa, sizeof(sa)), 0);
    struct timeval tv = {.tv_sec = 3};
    setsockopt(r->sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    st_chan_hello h = {.magic = ST_CHAN_MAGIC, .version = version, .pid = (uint32_t)getpid()};
    cr_assert_eq(send(r->sock, &h, sizeof(h), 0), (ssize_t)sizeof(h));
    union {
        char buf[CMSG_SPACE(3 * sizeof(int))];
        struct cmsghdr align;
    } cm;
    struct iovec iov = {.iov_base = &r->w, .iov_len = sizeof(r->w)};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf, .msg_controllen = sizeof(cm.buf)};
    ssize_t n = recvmsg(r->sock, &mh, 0);
    cr_assert_eq(n, (ssize_t)sizeof(r->w));
    if (r->w.status)
        return r->w.status;
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    cr_assert_not_null(c);
    memcpy(r->fds, CMSG_DATA(c), sizeof(r->fds));
    r->size = r->w.size;
    r->base = mmap(NULL, r->size, PROT_READ | PROT_WRITE, MAP_SHARED, r->fds[0], 0);
    cr_assert(r->base != MAP_FAILED);
    const st_chan_hdr *hd = r->base;
    cr_assert_eq(st_chan_layout_make(hd->buf_size, hd->app_bufs, hd->stack_bufs, hd->ring_slots, &r->lay), 0);
    /* The stack sealed the memfd: we cannot shrink it under its feet. */
    cr_expect_neq(ftruncate(r->fds[0], 4096), 0);
    return 0;
}

static void raw_close(raw_app *r)
{
    if (r->base)
        munmap(r->base, r->size);
    for (int i = 0; i < 3; i++)
        if (r->fds[i] >= 0)
            close(r->fds[i]);
    close(r->sock);
}

static void raw_ring_bell(raw_app *r)
{
    uint64_t one = 1;
    (void)!write(r->fds[1], &one, sizeof(one));
}

/* Server closed our socket within WAIT_MS? */
static bool raw_closed_by_server(raw_app *r)
{
    struct pollfd pf = {.fd = r->sock, .events = POLLIN};
    if (poll(&pf, 1, WAIT_MS) != 1)
        return false;
    char c;
    return recv(r->sock, &c, 1, MSG_DONTWAIT) == 0;
}

static void raw_bad_request(raw_app *r, int how)
{
    uint8_t *b = r->base;
    st_chan_ring_idx *req = (st_chan_ring_idx *)(b + r->lay.off_req);
    st_chan_desc *slot = (st_chan_desc *)(b + r->lay.off_req + sizeof(st_chan_ring_idx));
    uint32_t *link = (uint32_t *)(b + r->lay.off_link);
    st_chan_desc d = {.type = ST_CHAN_REQ_SEND, .handle = 1, .len = 100, .buf = 0};
    switch (how) {
    case 0: d.buf = r->lay.app_bufs; break;                  /* stack's buffer */
    case 1: d.len = 3 * r->lay.buf_size; link[0] = 1; link[1] = 0; break; /* loop */
    case 2: d.len = 0x7fffffff; break;
    case 3: d.type = 200; break;
    case 4: atomic_store(&req->prod, 0x40000000u); raw_ring_bell(r); return;
    case 5: {
        st_chan_ring_idx *ret = (st_chan_ring_idx *)(b + r->lay.off_stack_ret);
        uint32_t *rs = (uint32_t *)(b + r->lay.off_stack_ret + sizeof(st_chan_ring_idx));
        rs[0] = 3; /* an app buffer "returned" to the stack */
        atomic_store(&ret->prod, 1);
        raw_ring_bell(r);
        return;
    }
    case 6: d.type = ST_CHAN_REQ_CONNECT; d.len = 0; d.handle = 0x80000005u; break;
    }
    slot[0] = d;
    atomic_store(&req->prod, 1);
    raw_ring_bell(r);
}

Test(chan, garbage_from_an_app_detaches_only_it)
{
    lb *l = lb_start();
    rs_stack *good = attach(l);
    uint32_t c, a;
    open_pair(good, 7000, true, &c, &a);
    for (int how = 0; how <= 6; how++) {
        raw_app r;
        cr_assert_eq(raw_hello(l->path, ST_CHAN_VERSION, &r), 0);
        raw_bad_request(&r, how);
        cr_expect(raw_closed_by_server(&r), "case %d: bad app kept", how);
        cr_expect(wait_detached(l, how + 1), "case %d: not detached", how);
        raw_close(&r);
        /* the good app still works */
        uint32_t x = (uint32_t)how;
        cr_assert_eq(rs_send(good, c, &x, sizeof(x)), 0);
        rs_event ev;
        cr_assert_eq(next_ev(good, &ev, WAIT_MS), 1);
        cr_assert(ev.kind == RS_EV_MSG && ev.flow == a && !memcmp(ev.data, &x, 4));
    }
    rs_detach(good);
}

Test(chan, version_mismatch_and_silent_app)
{
    lb *l = lb_start();
    raw_app r;
    cr_expect_eq(raw_hello(l->path, ST_CHAN_VERSION + 1, &r), -EPROTO);
    cr_expect(raw_closed_by_server(&r));
    raw_close(&r);
    /* connects and never says hello: dropped, never counted as attached */
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", l->path);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    cr_expect_eq(poll(&pf, 1, 5000), 1, "silent app never dropped");
    close(fd);
    cr_expect_eq(lb_detached(l), 0);
}
