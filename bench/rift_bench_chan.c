/* rift_bench_chan.c — `rift-bench chan`: the shared-memory application channel
 * alone (no DPDK, no transport), between two processes.
 *
 * A forked child runs a st_chan_server whose ops are a sink (count messages;
 * a one-byte "F" is answered with the count), an echo (push the message back)
 * and a generator (push N messages of 64 B). The parent attaches with
 * rift_stack.h and measures, with 64-byte messages:
 *   app_to_stack_msgs_per_s   rs_send as fast as the channel takes them
 *   stack_to_app_msgs_per_s   st_chan_server_push -> rs_poll
 *   rtt_p50_us / rtt_p99_us   echo round trips, both sides polling
 *   rtt_wake_p50_us / _p99_us echo round trips, the app sleeping on rs_fd
 *                             between them (the eventfd wake-up path)
 * and the same message rate and RTT over a kernel AF_UNIX SOCK_SEQPACKET
 * socketpair between two processes as the baseline ("kernel_unix").
 *
 * Both sides spin while measuring (a few seconds in all); the child sleeps on
 * the server's fd when idle and exits when the parent detaches or dies. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/rift_bench.h"
#include "stack/rift_stack.h"
#include "stack/st_chan_server.h"

#define BCH_MSG 64
#define BCH_SECONDS 1.0
#define BCH_RTT_SPIN 20000
#define BCH_RTT_WAKE 2000
#define BCH_GEN_CHUNK 100000u
#define BCH_CHILD_MAX_S 120     /* the server child gives up after this */
#define BCH_IDLE_ROUNDS 2000    /* empty polls before the child sleeps */
#define BCH_MAX_HANDLE 16

enum { PORT_SINK = 1, PORT_ECHO, PORT_GEN };

static double bch_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------ the server child */

typedef struct bch_srv {
    st_chan_server *srv;
    uint16_t port_of[BCH_MAX_HANDLE + 1];
    uint64_t sunk, gen_left;
    uint32_t gen_flow;
    st_chan_app *app;
    bool done;
} bch_srv;

static void bch_push(bch_srv *b, st_chan_app *app, uint32_t flow, const void *data, size_t len)
{
    rs_event ev = {.kind = RS_EV_MSG, .flow = flow, .data = data, .len = len};
    st_chan_server_push(b->srv, app, &ev);
}

static int bch_connect(void *ctx, st_chan_app *app, uint32_t handle, uint32_t ip, uint16_t port)
{
    bch_srv *b = ctx;
    if (handle > BCH_MAX_HANDLE || port < PORT_SINK || port > PORT_GEN)
        return -EINVAL;
    b->port_of[handle] = port;
    b->app = app;
    rs_event ev = {.kind = RS_EV_ESTABLISHED, .flow = handle, .remote_ip = ip, .remote_port = port};
    return st_chan_server_push(b->srv, app, &ev);
}

static int bch_send(void *ctx, st_chan_app *app, uint32_t handle, const uint8_t *msg, size_t len)
{
    bch_srv *b = ctx;
    uint16_t port = handle <= BCH_MAX_HANDLE ? b->port_of[handle] : 0;
    if (port == PORT_SINK && len == 1 && msg[0] == 'F')
        bch_push(b, app, handle, &b->sunk, sizeof(b->sunk));
    else if (port == PORT_SINK)
        b->sunk++;
    else if (port == PORT_ECHO)
        bch_push(b, app, handle, msg, len);
    else if (port == PORT_GEN && len == sizeof(uint32_t)) {
        uint32_t n;
        memcpy(&n, msg, sizeof(n));
        b->gen_left += n;
        b->gen_flow = handle;
    } else
        return -ENOENT;
    return 0;
}

static int bch_close(void *ctx, st_chan_app *app, uint32_t handle, bool abort)
{
    return 0;
}

static void bch_detached(void *ctx, st_chan_app *app)
{
    ((bch_srv *)ctx)->done = true;
}

/* Push generated messages while the server holds few of them back. */
static int bch_generate(bch_srv *b)
{
    static const uint8_t msg[BCH_MSG];
    int n = 0;
    st_chan_stats st;
    st_chan_server_stats(b->srv, &st);
    while (b->gen_left && st.queued + (uint64_t)n < 256 && n < 1024) {
        bch_push(b, b->app, b->gen_flow, msg, sizeof(msg));
        b->gen_left--;
        n++;
    }
    return n;
}

static int bch_server_main(const char *path)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    bch_srv b = {0};
    st_chan_ops ops = {.ctx = &b, .connect = bch_connect, .send = bch_send, .close = bch_close,
                       .detached = bch_detached};
    int err = 0;
    b.srv = st_chan_server_new(path, 0xc6120001u, 8u << 20, &ops, &err);
    if (!b.srv)
        return 1;
    double end = bch_now() + BCH_CHILD_MAX_S;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, st_chan_server_fd(b.srv), &ev) < 0)
        return 1;
    unsigned idle = 0;
    while (!b.done && bch_now() < end) {
        int n = st_chan_server_poll(b.srv, 256);
        if (b.gen_left && b.app)
            n += bch_generate(&b);
        if (n > 0 || b.gen_left) {
            idle = 0;
        } else if (++idle > BCH_IDLE_ROUNDS) {
            epoll_wait(ep, &ev, 1, 100);
            idle = 0;
        }
    }
    st_chan_server_free(b.srv);
    return 0;
}

/* ------------------------------------------------------------------ the app side */

typedef struct bch_result {
    double tx_rate, rx_rate, rtt_p50, rtt_p99, wake_p50, wake_p99;
} bch_result;

static int bch_next(rs_stack *s, rs_event *ev, bool sleep, double deadline)
{
    for (;;) {
        int rc = rs_poll(s, ev);
        if (rc != 0)
            return rc;
        if (bch_now() > deadline)
            return -ETIMEDOUT;
        if (sleep) {
            struct pollfd pf = {.fd = rs_fd(s), .events = POLLIN};
            poll(&pf, 1, 100);
        }
    }
}

static int bch_send_spin(rs_stack *s, uint32_t flow, const void *msg, size_t len)
{
    int rc;
    double deadline = bch_now() + 5;
    while ((rc = rs_send(s, flow, msg, len)) == -EAGAIN)
        if (bch_now() > deadline)
            return -ETIMEDOUT;
    return rc;
}

static int bch_tx(rs_stack *s, uint32_t sink, double *rate)
{
    static const uint8_t msg[BCH_MSG];
    uint64_t n = 0;
    double t0 = bch_now();
    while (bch_now() - t0 < BCH_SECONDS) {
        for (int i = 0; i < 256; i++) {
            int rc = bch_send_spin(s, sink, msg, sizeof(msg));
            if (rc < 0)
                return rc;
            n++;
        }
    }
    int rc = bch_send_spin(s, sink, "F", 1);
    rs_event ev;
    if (rc == 0)
        rc = bch_next(s, &ev, false, bch_now() + 10);
    if (rc < 0)
        return rc;
    uint64_t got;
    if (ev.len != sizeof(got))
        return -EPROTO;
    memcpy(&got, ev.data, sizeof(got));
    if (got != n)
        return -EPROTO;
    *rate = (double)n / (bch_now() - t0);
    return 0;
}

static int bch_rx(rs_stack *s, uint32_t gen, double *rate)
{
    uint64_t n = 0;
    double t0 = bch_now();
    while (bch_now() - t0 < BCH_SECONDS) {
        uint32_t chunk = BCH_GEN_CHUNK;
        int rc = bch_send_spin(s, gen, &chunk, sizeof(chunk));
        for (uint32_t i = 0; rc == 0 && i < chunk; i++) {
            rs_event ev;
            rc = bch_next(s, &ev, false, bch_now() + 10);
            if (rc > 0 && (ev.kind != RS_EV_MSG || ev.len != BCH_MSG))
                rc = -EPROTO;
            rc = rc > 0 ? 0 : rc;
        }
        if (rc < 0)
            return rc;
        n += chunk;
    }
    *rate = (double)n / (bch_now() - t0);
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int bch_rtt(rs_stack *s, uint32_t echo, int rounds, bool sleep, double *p50, double *p99)
{
    double *t = malloc(sizeof(double) * (size_t)rounds);
    if (!t)
        return -ENOMEM;
    uint8_t msg[BCH_MSG] = {0};
    int rc = 0;
    for (int i = 0; i < rounds && rc == 0; i++) {
        memcpy(msg, &i, sizeof(i));
        double t0 = bch_now();
        rc = bch_send_spin(s, echo, msg, sizeof(msg));
        rs_event ev;
        if (rc == 0)
            rc = bch_next(s, &ev, sleep, t0 + 10);
        if (rc > 0)
            rc = ev.len == BCH_MSG && !memcmp(ev.data, &i, sizeof(i)) ? 0 : -EPROTO;
        t[i] = (bch_now() - t0) * 1e6;
    }
    if (rc == 0) {
        qsort(t, (size_t)rounds, sizeof(double), cmp_double);
        *p50 = t[rounds / 2];
        *p99 = t[rounds * 99 / 100];
    }
    free(t);
    return rc;
}

static int bch_open(rs_stack *s, uint32_t flows[3])
{
    for (uint16_t p = PORT_SINK; p <= PORT_GEN; p++) {
        int rc = rs_connect(s, 0xc6120001u, p, &flows[p - 1]);
        rs_event ev;
        if (rc == 0)
            rc = bch_next(s, &ev, true, bch_now() + 5);
        if (rc < 0)
            return rc;
        if (ev.kind != RS_EV_ESTABLISHED || ev.flow != flows[p - 1])
            return -EPROTO;
    }
    return 0;
}

static int bch_chan(const char *path, bch_result *r)
{
    rs_stack *s = NULL;
    int rc = -ENOENT;
    for (int i = 0; i < 500 && rc < 0; i++) { /* the child is still starting */
        rc = rs_attach(path, &s);
        if (rc < 0)
            usleep(10000);
    }
    if (rc < 0)
        return rc;
    uint32_t f[3];
    rc = bch_open(s, f);
    if (rc == 0)
        rc = bch_tx(s, f[0], &r->tx_rate);
    if (rc == 0)
        rc = bch_rx(s, f[2], &r->rx_rate);
    if (rc == 0)
        rc = bch_rtt(s, f[1], BCH_RTT_SPIN, false, &r->rtt_p50, &r->rtt_p99);
    if (rc == 0)
        rc = bch_rtt(s, f[1], BCH_RTT_WAKE, true, &r->wake_p50, &r->wake_p99);
    rs_detach(s);
    return rc;
}

/* ------------------------------------------------------------------ kernel baseline */

static void bch_unix_child(int fd)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    uint8_t buf[BCH_MSG];
    uint64_t n = 0;
    for (;;) {
        ssize_t k = recv(fd, buf, sizeof(buf), 0);
        if (k <= 0)
            _exit(0);
        if (k == 1 && buf[0] == 'F') {
            (void)!send(fd, &n, sizeof(n), 0);
            n = 0;
        } else if (buf[0] == 'E') {
            (void)!send(fd, buf, (size_t)k, 0);
        } else {
            n++;
        }
    }
}

static int bch_unix(bch_result *r)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        close(sv[0]);
        bch_unix_child(sv[1]);
    }
    close(sv[1]);
    uint8_t msg[BCH_MSG] = {'S'};
    uint64_t n = 0, got = 0;
    double t0 = bch_now();
    while (bch_now() - t0 < BCH_SECONDS) {
        for (int i = 0; i < 256; i++, n++)
            if (send(sv[0], msg, sizeof(msg), 0) != (ssize_t)sizeof(msg))
                goto fail;
    }
    if (send(sv[0], "F", 1, 0) != 1 || recv(sv[0], &got, sizeof(got), 0) != (ssize_t)sizeof(got) || got != n)
        goto fail;
    r->tx_rate = (double)n / (bch_now() - t0);
    double *t = malloc(sizeof(double) * BCH_RTT_WAKE);
    if (!t)
        goto fail;
    msg[0] = 'E';
    for (int i = 0; i < BCH_RTT_WAKE; i++) {
        double s0 = bch_now();
        if (send(sv[0], msg, sizeof(msg), 0) != (ssize_t)sizeof(msg) ||
            recv(sv[0], msg, sizeof(msg), 0) != (ssize_t)sizeof(msg)) {
            free(t);
            goto fail;
        }
        t[i] = (bch_now() - s0) * 1e6;
    }
    qsort(t, BCH_RTT_WAKE, sizeof(double), cmp_double);
    r->wake_p50 = t[BCH_RTT_WAKE / 2];
    r->wake_p99 = t[BCH_RTT_WAKE * 99 / 100];
    free(t);
    close(sv[0]);
    waitpid(pid, NULL, 0);
    return 0;
fail:
    close(sv[0]);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -EIO;
}

/* ------------------------------------------------------------------ entry */

int rift_bench_chan(int argc, char **argv, json_t *out)
{
    bool json_only = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") != 0) {
            fprintf(stderr, "rift-bench chan: unknown argument %s\nusage: rift-bench chan [--json]\n", argv[i]);
            return -EINVAL;
        }
        json_only = true;
    }
    char path[108];
    snprintf(path, sizeof(path), "/tmp/rf-bench-chan-%d.sock", (int)getpid());
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0)
        _exit(bch_server_main(path));
    bch_result rc_ = {0}, ku = {0};
    int rc = bch_chan(path, &rc_);
    int status = 0;
    if (rc < 0)
        kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    unlink(path);
    if (rc == 0)
        rc = bch_unix(&ku);
    if (rc < 0)
        return rc;
    if (!json_only) {
        printf("chan: %d-byte messages, two processes\n", BCH_MSG);
        printf("%-12s %16s %16s %10s %10s %14s %14s\n", "system", "app_to_stack/s", "stack_to_app/s", "rtt_p50",
               "rtt_p99", "rtt_wake_p50", "rtt_wake_p99");
        printf("%-12s %16.0f %16.0f %10.2f %10.2f %14.2f %14.2f\n", "rift", rc_.tx_rate, rc_.rx_rate, rc_.rtt_p50,
               rc_.rtt_p99, rc_.wake_p50, rc_.wake_p99);
        printf("%-12s %16.0f %16s %10s %10s %14.2f %14.2f\n", "kernel_unix", ku.tx_rate, "-", "-", "-", ku.wake_p50,
               ku.wake_p99);
    }
    json_t *rift = json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:i}", "app_to_stack_msgs_per_s", rc_.tx_rate,
                             "stack_to_app_msgs_per_s", rc_.rx_rate, "rtt_p50_us", rc_.rtt_p50, "rtt_p99_us",
                             rc_.rtt_p99, "rtt_wake_p50_us", rc_.wake_p50, "rtt_wake_p99_us", rc_.wake_p99,
                             "msg_bytes", BCH_MSG);
    json_t *kern = json_pack("{s:f, s:f, s:f, s:i}", "msgs_per_s", ku.tx_rate, "rtt_p50_us", ku.wake_p50,
                             "rtt_p99_us", ku.wake_p99, "msg_bytes", BCH_MSG);
    if (!rift || !kern || json_object_set_new(out, "rift", rift) < 0 ||
        json_object_set_new(out, "kernel_unix", kern) < 0)
        return -ENOMEM;
    return 0;
}
