/* rift_bench_stack.c — `rift-bench stack`: the rift dataplane against kernel UDP.
 *
 * Topology (made here with `ip`, removed on every exit path): two network
 * namespaces rf-bench-<pid>-a / -b joined by one veth pair. In the same run:
 *
 *  1. kernel_udp: UDP sockets created inside each namespace (the bench
 *     thread enters the namespace only to create the socket), addresses on the
 *     veths; one-way message rate (64-byte datagrams, a sender and a receiver
 *     thread; the rate is what arrived) and ping-pong RTT.
 *  2. the addresses are removed, and one rift-stackd is started per namespace
 *     on the same veths (af_xdp, falling back to af_packet); the bench
 *     attaches to both over rift_stack.h and measures the same two things over
 *     one reliable flow (every message arrives), then the message rate again
 *     with one impairment rule installed on the sending stack (a rule that
 *     matches the link and never fires: the full impairment path per packet).
 *  3. impair_none_ns_per_pkt / impair_rule_ns_per_pkt: st_impair_decide, the
 *     very function the stack calls per packet, timed in a loop with no rule
 *     and with one matching loss rule.
 *
 * Both sides sleep in poll() when idle (no spinning applications), so the
 * comparison is between the dataplanes, on two shared cores. Needs root. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/rift_bench.h"
#include "common/rift_rng.h"
#include "stack/rift_stack.h"
#include "stack/st_impair.h"

#define BS_MSG_BYTES 64
#define BS_RATE_S 2.0
#define BS_PINGS 5000
#define BS_PING_TIMEOUT_MS 1000
#define BS_PORT 7000
#define BS_IP_A 0xc6120001u /* 198.18.0.1 */
#define BS_IP_B 0xc6120002u /* 198.18.0.2 */
#define BS_IMPAIR_ITERS 20000000u

typedef struct bs_env {
    char ns_a[32], ns_b[32], if_a[16], if_b[16], dir[64];
    char sock_a[96], sock_b[96], ctl_a[96], ctl_b[96];
    pid_t stackd_a, stackd_b;
    bool topo;
} bs_env;

typedef struct bs_figs {
    double msgs_per_s, sent_per_s, rtt_p50_us, rtt_p99_us, rtt_mean_us;
    double msgs_per_s_rule;
    double idle_cpu_pct;     /* rift: a stack with nothing to do, % of one core */
} bs_figs;

static bs_env *bs_cleanup_env; /* for the signal handler */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return rc == 0 ? 0 : -EIO;
}

/* ------------------------------------------------------------------ topology */

static void env_teardown(bs_env *e)
{
    pid_t pids[2] = {e->stackd_a, e->stackd_b};
    for (int i = 0; i < 2; i++)
        if (pids[i] > 0)
            kill(pids[i], SIGTERM);
    for (int i = 0; i < 2; i++) {
        if (pids[i] <= 0)
            continue;
        for (int t = 0; t < 50 && waitpid(pids[i], NULL, WNOHANG) == 0; t++)
            usleep(100000);
        if (waitpid(pids[i], NULL, WNOHANG) == 0) {
            kill(pids[i], SIGKILL);
            waitpid(pids[i], NULL, 0);
        }
    }
    e->stackd_a = e->stackd_b = 0;
    if (e->topo) {
        /* Deleting a namespace deletes the veth end inside it (and so the pair). */
        sh("ip netns del %s 2>/dev/null", e->ns_a);
        sh("ip netns del %s 2>/dev/null", e->ns_b);
        e->topo = false;
    }
    if (e->dir[0]) {
        sh("rm -rf %s", e->dir);
        e->dir[0] = 0;
    }
}

static void on_signal(int sig)
{
    if (bs_cleanup_env)
        env_teardown(bs_cleanup_env);
    signal(sig, SIG_DFL);
    raise(sig);
}

static int env_setup(bs_env *e)
{
    int pid = (int)getpid();
    snprintf(e->ns_a, sizeof e->ns_a, "rf-bench-%d-a", pid);
    snprintf(e->ns_b, sizeof e->ns_b, "rf-bench-%d-b", pid);
    snprintf(e->if_a, sizeof e->if_a, "rfb%da", pid % 10000000);
    snprintf(e->if_b, sizeof e->if_b, "rfb%db", pid % 10000000);
    snprintf(e->dir, sizeof e->dir, "/tmp/rf-bench-%d", pid);
    if (mkdir(e->dir, 0700) < 0) {
        e->dir[0] = 0;
        return -errno;
    }
    snprintf(e->sock_a, sizeof e->sock_a, "%s/a.sock", e->dir);
    snprintf(e->sock_b, sizeof e->sock_b, "%s/b.sock", e->dir);
    snprintf(e->ctl_a, sizeof e->ctl_a, "%s/a.ctl", e->dir);
    snprintf(e->ctl_b, sizeof e->ctl_b, "%s/b.ctl", e->dir);
    e->topo = true;
    if (sh("ip netns add %s && ip netns add %s", e->ns_a, e->ns_b) ||
        sh("ip link add %s numtxqueues 1 numrxqueues 1 netns %s type veth peer name %s numtxqueues 1 "
           "numrxqueues 1 netns %s",
           e->if_a, e->ns_a, e->if_b, e->ns_b) ||
        sh("ip -n %s link set %s up && ip -n %s link set %s up", e->ns_a, e->if_a, e->ns_b, e->if_b) ||
        sh("ip -n %s link set lo up && ip -n %s link set lo up", e->ns_a, e->ns_b))
        return -EIO;
    return 0;
}

/* A socket created inside namespace ns (this thread enters it and comes back). */
static int socket_in_ns(const char *ns, int type)
{
    char path[128];
    snprintf(path, sizeof path, "/run/netns/%s", ns);
    int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC), target = open(path, O_RDONLY | O_CLOEXEC);
    int fd = -1;
    if (self >= 0 && target >= 0 && setns(target, CLONE_NEWNET) == 0) {
        fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
        if (setns(self, CLONE_NEWNET) != 0) { /* cannot happen; never stay in the wrong namespace */
            if (fd >= 0)
                close(fd);
            fd = -1;
        }
    }
    if (self >= 0)
        close(self);
    if (target >= 0)
        close(target);
    return fd;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void rtt_figs(double *rtt, int n, bs_figs *f)
{
    if (n <= 0)
        return;
    qsort(rtt, (size_t)n, sizeof *rtt, cmp_double);
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += rtt[i];
    f->rtt_p50_us = rtt[n / 2] * 1e6;
    f->rtt_p99_us = rtt[(int)((double)n * 0.99)] * 1e6;
    f->rtt_mean_us = sum / n * 1e6;
}

/* ------------------------------------------------------------------ kernel UDP */

typedef struct udp_rx {
    int fd;
    atomic_bool stop;
    uint64_t count;
    double last_s;
} udp_rx;

static void *udp_rx_main(void *arg)
{
    udp_rx *r = arg;
    char buf[2048];
    while (!atomic_load(&r->stop)) {
        struct pollfd p = {.fd = r->fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        while (recv(r->fd, buf, sizeof buf, MSG_DONTWAIT) > 0) {
            r->count++;
            r->last_s = now_s();
        }
    }
    return NULL;
}

static void *udp_echo_main(void *arg)
{
    udp_rx *r = arg;
    char buf[2048];
    while (!atomic_load(&r->stop)) {
        struct pollfd p = {.fd = r->fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        struct sockaddr_in from;
        socklen_t fl = sizeof from;
        ssize_t n;
        while ((n = recvfrom(r->fd, buf, sizeof buf, MSG_DONTWAIT, (struct sockaddr *)&from, &fl)) > 0)
            (void)sendto(r->fd, buf, (size_t)n, 0, (struct sockaddr *)&from, fl);
    }
    return NULL;
}

static int udp_pair(bs_env *e, int *fa, int *fb)
{
    *fa = socket_in_ns(e->ns_a, SOCK_DGRAM);
    *fb = socket_in_ns(e->ns_b, SOCK_DGRAM);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(BS_PORT), .sin_addr.s_addr = htonl(BS_IP_A)};
    struct sockaddr_in b = {.sin_family = AF_INET, .sin_port = htons(BS_PORT), .sin_addr.s_addr = htonl(BS_IP_B)};
    int big = 4 << 20;
    if (*fa < 0 || *fb < 0 || bind(*fa, (struct sockaddr *)&a, sizeof a) || bind(*fb, (struct sockaddr *)&b, sizeof b) ||
        connect(*fa, (struct sockaddr *)&b, sizeof b))
        return -EIO;
    setsockopt(*fb, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    return 0;
}

static int bench_kernel(bs_env *e, bs_figs *f)
{
    if (sh("ip -n %s addr add 198.18.0.1/24 dev %s && ip -n %s addr add 198.18.0.2/24 dev %s", e->ns_a, e->if_a,
           e->ns_b, e->if_b))
        return -EIO;
    int fa, fb, rc = udp_pair(e, &fa, &fb);
    uint8_t msg[BS_MSG_BYTES] = {1};
    if (rc == 0) { /* one-way rate */
        udp_rx r = {.fd = fb};
        pthread_t th;
        pthread_create(&th, NULL, udp_rx_main, &r);
        uint64_t sent = 0;
        double t0 = now_s(), end = t0 + BS_RATE_S;
        while (now_s() < end) {
            for (int i = 0; i < 64; i++) {
                if (send(fa, msg, sizeof msg, 0) == (ssize_t)sizeof msg)
                    sent++;
                else {
                    struct pollfd p = {.fd = fa, .events = POLLOUT};
                    poll(&p, 1, 1);
                }
            }
        }
        usleep(200000);
        atomic_store(&r.stop, true);
        pthread_join(th, NULL);
        f->msgs_per_s = (double)r.count / (r.last_s > t0 ? r.last_s - t0 : BS_RATE_S);
        f->sent_per_s = (double)sent / BS_RATE_S;
    }
    if (rc == 0) { /* ping-pong */
        udp_rx r = {.fd = fb};
        pthread_t th;
        pthread_create(&th, NULL, udp_echo_main, &r);
        double *rtt = calloc(BS_PINGS, sizeof *rtt);
        int n = 0;
        char buf[2048];
        for (int i = 0; rtt && i < BS_PINGS; i++) {
            double t = now_s();
            if (send(fa, msg, sizeof msg, 0) != (ssize_t)sizeof msg)
                continue;
            struct pollfd p = {.fd = fa, .events = POLLIN};
            if (poll(&p, 1, BS_PING_TIMEOUT_MS) == 1 && recv(fa, buf, sizeof buf, 0) > 0)
                rtt[n++] = now_s() - t;
        }
        atomic_store(&r.stop, true);
        pthread_join(th, NULL);
        rtt_figs(rtt, n, f);
        free(rtt);
        if (n < BS_PINGS / 2)
            rc = -ETIMEDOUT;
    }
    if (fa >= 0)
        close(fa);
    if (fb >= 0)
        close(fb);
    /* The stacks own these veths next: no kernel address may answer for them. */
    sh("ip -n %s addr flush dev %s && ip -n %s addr flush dev %s", e->ns_a, e->if_a, e->ns_b, e->if_b);
    return rc;
}

/* ------------------------------------------------------------------ rift */

static pid_t start_stackd(const char *bin, const char *ns, const char *iface, const char *ip, const char *sock,
                          const char *ctl, const char *log)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    char path[128];
    snprintf(path, sizeof path, "/run/netns/%s", ns);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) != 0)
        _exit(3);
    execl(bin, bin, "--ip", ip, "--iface", iface, "--socket", sock, "--control", ctl, "--log", log, (char *)NULL);
    _exit(3);
}

static int attach_wait(const char *sock, pid_t pid, rs_stack **out)
{
    for (int i = 0; i < 300; i++) {
        if (rs_attach(sock, out) == 0)
            return 0;
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return -ECHILD;
        usleep(50000);
    }
    return -ETIMEDOUT;
}

/* Next event from s, sleeping on its fd up to timeout_ms. */
static int wait_event(rs_stack *s, rs_event *ev, int timeout_ms)
{
    double end = now_s() + timeout_ms / 1000.0;
    for (;;) {
        int rc = rs_poll(s, ev);
        if (rc != 0)
            return rc;
        double left = end - now_s();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd p = {.fd = rs_fd(s), .events = POLLIN};
        poll(&p, 1, (int)(left * 1000) + 1);
    }
}

static int ctl_request(const char *path, const char *line, char *reply, size_t cap)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) || write(fd, line, strlen(line)) < 0) {
        if (fd >= 0)
            close(fd);
        return -EIO;
    }
    size_t n = 0;
    while (n + 1 < cap) {
        ssize_t r = read(fd, reply + n, cap - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        if (reply[n - 1] == '\n')
            break;
    }
    reply[n] = 0;
    close(fd);
    return strstr(reply, "\"ok\":true") ? 0 : -EIO;
}

typedef struct rift_rx {
    rs_stack *s;
    atomic_bool stop;
    uint64_t count;
    double last_s;
} rift_rx;

static void *rift_rx_main(void *arg)
{
    rift_rx *r = arg;
    while (!atomic_load(&r->stop)) {
        rs_event ev;
        int rc = wait_event(r->s, &ev, 50);
        if (rc == 1 && ev.kind == RS_EV_MSG) {
            r->count++;
            r->last_s = now_s();
        } else if (rc < 0 && rc != -ETIMEDOUT) {
            break;
        }
    }
    return NULL;
}

/* Send 64-byte messages for BS_RATE_S; the rate is what arrived. */
static double rift_rate(rs_stack *a, uint32_t flow, rs_stack *b)
{
    rift_rx r = {.s = b};
    pthread_t th;
    if (pthread_create(&th, NULL, rift_rx_main, &r))
        return 0;
    uint8_t msg[BS_MSG_BYTES] = {2};
    uint64_t sent = 0;
    double t0 = now_s(), end = t0 + BS_RATE_S;
    while (now_s() < end) {
        int rc = rs_send(a, flow, msg, sizeof msg);
        if (rc == 0) {
            sent++;
            continue;
        }
        if (rc != -EAGAIN)
            break;
        rs_event ev;
        while (rs_poll(a, &ev) == 1) /* drain (returns buffers) */
            ;
        struct pollfd p = {.fd = rs_fd(a), .events = POLLIN};
        poll(&p, 1, 1);
    }
    for (int i = 0; i < 200 && r.count < sent; i++) /* reliable: wait for the tail */
        usleep(10000);
    atomic_store(&r.stop, true);
    pthread_join(th, NULL);
    return r.last_s > t0 ? (double)r.count / (r.last_s - t0) : 0;
}

static int rift_pingpong(rs_stack *a, uint32_t fa, rs_stack *b, uint32_t fb, bs_figs *f)
{
    double *rtt = calloc(BS_PINGS, sizeof *rtt);
    if (!rtt)
        return -ENOMEM;
    uint8_t msg[BS_MSG_BYTES] = {3};
    int n = 0, rc = 0;
    for (int i = 0; i < BS_PINGS && rc == 0; i++) {
        rs_event ev;
        double t = now_s();
        rc = rs_send(a, fa, msg, sizeof msg);
        while (rc == 0 && (rc = wait_event(b, &ev, BS_PING_TIMEOUT_MS)) == 1 && ev.kind != RS_EV_MSG)
            rc = 0;
        if (rc == 1)
            rc = rs_send(b, fb, msg, sizeof msg);
        while (rc == 0 && (rc = wait_event(a, &ev, BS_PING_TIMEOUT_MS)) == 1 && ev.kind != RS_EV_MSG)
            rc = 0;
        if (rc == 1) {
            rtt[n++] = now_s() - t;
            rc = 0;
        }
    }
    rtt_figs(rtt, n, f);
    free(rtt);
    return rc;
}

static int stackd_path(char *out, size_t cap)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return -ENOENT;
    self[n] = 0;
    char *slash = strrchr(self, '/');
    if (!slash)
        return -ENOENT;
    *slash = 0;
    snprintf(out, cap, "%s/rift-stackd", self);
    return access(out, X_OK) == 0 ? 0 : -ENOENT;
}

/* utime + stime of pid in seconds (/proc/<pid>/stat fields 14 and 15). */
static double proc_cpu_s(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *fp = fopen(path, "r");
    if (!fp)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = 0;
    const char *p = strrchr(buf, ')');
    unsigned long ut, st;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Both stacks idle (no application traffic) for 2 s: their mean CPU share. */
static double idle_cpu_pct(const bs_env *e)
{
    double a0 = proc_cpu_s(e->stackd_a), b0 = proc_cpu_s(e->stackd_b), t0 = now_s();
    sleep(2);
    double a1 = proc_cpu_s(e->stackd_a), b1 = proc_cpu_s(e->stackd_b), dt = now_s() - t0;
    if (a0 < 0 || b0 < 0 || a1 < 0 || b1 < 0)
        return -1;
    return ((a1 - a0) + (b1 - b0)) / 2.0 / dt * 100.0;
}

static int bench_rift(bs_env *e, bs_figs *f)
{
    char bin[PATH_MAX + 16], log_a[96], log_b[96];
    if (stackd_path(bin, sizeof bin)) {
        fprintf(stderr, "rift-bench stack: rift-stackd not found next to rift-bench\n");
        return -ENOENT;
    }
    snprintf(log_a, sizeof log_a, "%s/a.log", e->dir);
    snprintf(log_b, sizeof log_b, "%s/b.log", e->dir);
    e->stackd_a = start_stackd(bin, e->ns_a, e->if_a, "198.18.0.1", e->sock_a, e->ctl_a, log_a);
    e->stackd_b = start_stackd(bin, e->ns_b, e->if_b, "198.18.0.2", e->sock_b, e->ctl_b, log_b);
    rs_stack *a = NULL, *b = NULL;
    int rc = attach_wait(e->sock_a, e->stackd_a, &a);
    if (rc == 0)
        rc = attach_wait(e->sock_b, e->stackd_b, &b);
    if (rc == 0)
        rc = rs_listen(b, BS_PORT);
    uint32_t fa = 0, fb = 0;
    rs_event ev;
    if (rc == 0)
        rc = rs_connect(a, BS_IP_B, BS_PORT, &fa);
    while (rc == 0 && !fb) {
        rc = wait_event(b, &ev, 3000);
        if (rc == 1 && ev.kind == RS_EV_ACCEPTED)
            fb = ev.flow;
        rc = rc == 1 ? 0 : (rc == 0 ? -ETIMEDOUT : rc);
    }
    while (rc == 0 && (rc = wait_event(a, &ev, 3000)) == 1 && ev.kind != RS_EV_ESTABLISHED)
        rc = ev.kind == RS_EV_RESET ? -ECONNRESET : 0;
    if (rc == 1)
        rc = 0;
    if (rc == 0) {
        f->msgs_per_s = rift_rate(a, fa, b);
        rc = rift_pingpong(a, fa, b, fb, f);
    }
    char reply[4096];
    if (rc == 0)
        rc = ctl_request(e->ctl_a,
                         "{\"cmd\":\"impair-add\",\"rule\":{\"src\":\"198.18.0.1\",\"dst\":\"198.18.0.2\","
                         "\"loss\":0,\"delay_ms\":0}}\n",
                         reply, sizeof reply);
    if (rc == 0)
        f->msgs_per_s_rule = rift_rate(a, fa, b);
    if (rc == 0) {
        usleep(300000); /* let the tail of the run drain */
        f->idle_cpu_pct = idle_cpu_pct(e);
    }
    if (rc)
        fprintf(stderr, "rift-bench stack: rift phase failed: %s (logs in %s)\n", strerror(-rc), e->dir);
    rs_detach(a);
    rs_detach(b);
    return rc;
}

/* ------------------------------------------------------------------ impairment cost */

static double impair_ns(bool with_rule)
{
    st_impair *im = st_impair_new();
    if (!im)
        return -1;
    if (with_rule) {
        st_impair_rule r = {.src = BS_IP_A, .dst = BS_IP_B, .loss = 0.01};
        st_impair_add(im, &r);
    }
    rift_rng rng;
    rift_rng_seed(&rng, 1);
    st_impair_verdict v;
    uint64_t kept = 0;
    double t0 = now_s();
    for (uint32_t i = 0; i < BS_IMPAIR_ITERS; i++) {
        /* The stack's own fast path: the rule count first, then decide. */
        if (st_impair_rule_count(im) == 0) {
            kept++;
            continue;
        }
        st_impair_decide(im, BS_IP_A, BS_IP_B, &rng, &v);
        kept += v.n_copies;
    }
    double ns = (now_s() - t0) * 1e9 / BS_IMPAIR_ITERS;
    st_impair_free(im);
    return kept ? ns : -1;
}

/* ------------------------------------------------------------------ entry */

static json_t *figs_json(const bs_figs *f, bool rift)
{
    json_t *o = json_pack("{s:f, s:f, s:f, s:f}", "msgs_per_s", f->msgs_per_s, "rtt_p50_us", f->rtt_p50_us,
                          "rtt_p99_us", f->rtt_p99_us, "rtt_mean_us", f->rtt_mean_us);
    if (o && rift) {
        json_object_set_new(o, "msgs_per_s_with_rule", json_real(f->msgs_per_s_rule));
        json_object_set_new(o, "idle_cpu_pct", json_real(f->idle_cpu_pct));
    }
    else if (o)
        json_object_set_new(o, "sent_per_s", json_real(f->sent_per_s));
    return o;
}

int rift_bench_stack(int argc, char **argv, json_t *out)
{
    bool json_only = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") != 0) {
            fprintf(stderr, "rift-bench stack: unknown argument %s\nusage: rift-bench stack [--json]\n", argv[i]);
            return -EINVAL;
        }
        json_only = true;
    }
    if (geteuid() != 0) {
        fprintf(stderr, "rift-bench stack: needs root (network namespaces)\n");
        return -EPERM;
    }
    bs_env e = {0};
    bs_figs k = {0}, r = {0};
    bs_cleanup_env = &e;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    int rc = env_setup(&e);
    if (rc == 0)
        rc = bench_kernel(&e, &k);
    if (rc == 0)
        rc = bench_rift(&e, &r);
    env_teardown(&e);
    bs_cleanup_env = NULL;
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (rc)
        return rc;
    double none = impair_ns(false), rule = impair_ns(true);
    if (!json_only) {
        printf("stack: one veth pair, %d-byte messages, %.0f s rate runs, %d ping-pongs\n", BS_MSG_BYTES, BS_RATE_S,
               BS_PINGS);
        printf("%-11s %12s %12s %12s %12s\n", "system", "msgs_per_s", "rtt_p50_us", "rtt_p99_us", "rtt_mean_us");
        printf("%-11s %12.0f %12.1f %12.1f %12.1f\n", "rift", r.msgs_per_s, r.rtt_p50_us, r.rtt_p99_us,
               r.rtt_mean_us);
        printf("%-11s %12.0f %12.1f %12.1f %12.1f\n", "kernel_udp", k.msgs_per_s, k.rtt_p50_us, k.rtt_p99_us,
               k.rtt_mean_us);
        printf("rift with one impairment rule: %.0f msgs/s; st_impair per packet: %.2f ns (no rule), %.2f ns "
               "(one rule); an idle rift-stackd: %.2f%% of a core\n",
               r.msgs_per_s_rule, none, rule, r.idle_cpu_pct);
    }
    json_t *jr = figs_json(&r, true), *jk = figs_json(&k, false);
    if (!jr || !jk) {
        json_decref(jr);
        json_decref(jk);
        return -ENOMEM;
    }
    json_object_set_new(jr, "impair_none_ns_per_pkt", json_real(none));
    json_object_set_new(jr, "impair_rule_ns_per_pkt", json_real(rule));
    if (json_object_set_new(out, "rift", jr) || json_object_set_new(out, "kernel_udp", jk))
        return -ENOMEM;
    return 0;
}
