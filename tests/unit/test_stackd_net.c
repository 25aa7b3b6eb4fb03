/* test_stackd_net.c — two real rift-stackd processes on a veth pair.
 *
 * Each test builds its own topology (namespaces rf-t<pid>-a/-b, veths
 * rft<pid>a/b, 198.18.0.1 and .2), starts one rift-stackd per namespace and
 * attaches applications from this process over rift_stack.h. Needs root;
 * skipped when not root or when DPDK cannot start a port (the daemon exits 3).
 * Everything is removed in the fini hook, whatever the test's outcome. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <net/if.h>
#include <netpacket/packet.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "stack/rift_stack.h"
#include "stack/st_wire.h"

#define IP_A 0xc6120001u
#define IP_B 0xc6120002u
#define PORT 7100

typedef struct tnet {
    bool up;
    char ns[2][32], ifn[2][16], dir[64];
    char sock[2][128], ctl[2][128], log[2][128];
    pid_t pid[2];
} tnet;

static tnet N;

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return system(cmd) == 0 ? 0 : -1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void net_down(void)
{
    for (int i = 0; i < 2; i++)
        if (N.pid[i] > 0)
            kill(N.pid[i], SIGTERM);
    for (int i = 0; i < 2; i++) {
        if (N.pid[i] <= 0)
            continue;
        int t = 0;
        while (waitpid(N.pid[i], NULL, WNOHANG) == 0 && t++ < 50)
            usleep(100000);
        if (t > 50) {
            kill(N.pid[i], SIGKILL);
            waitpid(N.pid[i], NULL, 0);
        }
        N.pid[i] = 0;
    }
    if (N.up) {
        sh("ip netns del %s 2>/dev/null", N.ns[0]);
        sh("ip netns del %s 2>/dev/null", N.ns[1]);
        sh("rm -rf %s", N.dir);
        N.up = false;
    }
}

static pid_t spawn_stackd(int i, const char *ip, const char *extra)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "exec ip netns exec %s %s/bin/rift-stackd --ip %s --iface %s --socket %s --control %s --log %s %s",
             N.ns[i], RIFT_BINARY_DIR, ip, N.ifn[i], N.sock[i], N.ctl[i], N.log[i], extra ? extra : "");
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void log_tail(int i, char *buf, size_t cap)
{
    buf[0] = 0;
    FILE *f = fopen(N.log[i], "r");
    if (!f)
        return;
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = 0;
    fclose(f);
}

/* Wait until both daemons log "ready"; skip the test if DPDK cannot start. */
static void wait_ready(void)
{
    for (int t = 0; t < 150; t++) {
        int ready = 0;
        for (int i = 0; i < 2; i++) {
            int st;
            if (waitpid(N.pid[i], &st, WNOHANG) == N.pid[i]) {
                N.pid[i] = 0;
                char log[4096];
                log_tail(i, log, sizeof log);
                if (WIFEXITED(st) && WEXITSTATUS(st) == 3)
                    cr_skip_test("DPDK cannot start a port here: %s", log);
                cr_assert_fail("rift-stackd %d exited (status %d): %s", i, st, log);
            }
            char log[4096];
            log_tail(i, log, sizeof log);
            ready += strstr(log, "rift-stackd: ready") != NULL;
        }
        if (ready == 2)
            return;
        usleep(100000);
    }
    cr_assert_fail("rift-stackd did not become ready in 15 s");
}

static void net_up(const char *extra)
{
    if (geteuid() != 0)
        cr_skip_test("needs root (network namespaces)");
    int pid = (int)getpid();
    for (int i = 0; i < 2; i++) {
        char side = (char)('a' + i);
        snprintf(N.ns[i], sizeof N.ns[i], "rf-t%d-%c", pid, side);
        snprintf(N.ifn[i], sizeof N.ifn[i], "rft%d%c", pid % 10000000, side);
    }
    snprintf(N.dir, sizeof N.dir, "/tmp/rf-t%d", pid);
    cr_assert_eq(mkdir(N.dir, 0700), 0);
    N.up = true;
    for (int i = 0; i < 2; i++) {
        snprintf(N.sock[i], sizeof N.sock[i], "%s/%c.sock", N.dir, 'a' + i);
        snprintf(N.ctl[i], sizeof N.ctl[i], "%s/%c.ctl", N.dir, 'a' + i);
        snprintf(N.log[i], sizeof N.log[i], "%s/%c.log", N.dir, 'a' + i);
    }
    cr_assert_eq(sh("ip netns add %s && ip netns add %s", N.ns[0], N.ns[1]), 0);
    cr_assert_eq(sh("ip link add %s numtxqueues 1 numrxqueues 1 netns %s type veth peer name %s numtxqueues 1 "
                    "numrxqueues 1 netns %s",
                    N.ifn[0], N.ns[0], N.ifn[1], N.ns[1]),
                 0);
    cr_assert_eq(sh("ip -n %s link set %s up && ip -n %s link set %s up", N.ns[0], N.ifn[0], N.ns[1], N.ifn[1]),
                 0);
    N.pid[0] = spawn_stackd(0, "198.18.0.1", extra);
    N.pid[1] = spawn_stackd(1, "198.18.0.2", extra);
    wait_ready();
}

static void fini(void)
{
    net_down();
}

/* One control request; the parsed reply (caller decrefs). */
static json_t *ctl(int i, const char *line)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", N.ctl[i]);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0, "control socket %s", N.ctl[i]);
    cr_assert_eq(write(fd, line, strlen(line)), (ssize_t)strlen(line));
    cr_assert_eq(write(fd, "\n", 1), 1);
    static char buf[1 << 20];
    size_t n = 0;
    while (n + 1 < sizeof buf) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        cr_assert_eq(poll(&p, 1, 5000), 1, "no reply to %s", line);
        ssize_t r = read(fd, buf + n, sizeof buf - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        if (buf[n - 1] == '\n')
            break;
    }
    buf[n] = 0;
    close(fd);
    json_error_t je;
    json_t *o = json_loads(buf, 0, &je);
    cr_assert_not_null(o, "bad reply to %s: %s", line, buf);
    return o;
}

static json_t *ctl_ok(int i, const char *line)
{
    json_t *o = ctl(i, line);
    cr_assert(json_is_true(json_object_get(o, "ok")), "%s -> %s", line,
              json_string_value(json_object_get(o, "error")));
    return o;
}

/* stats field by path "a.b" (integers only). */
static json_int_t stat_of(int i, const char *a, const char *b)
{
    json_t *o = ctl_ok(i, "{\"cmd\":\"stats\"}");
    json_t *v = json_object_get(json_object_get(o, a), b);
    json_int_t x = json_is_integer(v) ? json_integer_value(v) : -1;
    json_decref(o);
    return x;
}

static size_t n_flows(int i)
{
    json_t *o = ctl_ok(i, "{\"cmd\":\"stats\"}");
    size_t n = json_array_size(json_object_get(o, "flows"));
    json_decref(o);
    return n;
}

static rs_stack *attach(int i)
{
    rs_stack *s = NULL;
    int rc = rs_attach(N.sock[i], &s);
    cr_assert_eq(rc, 0, "attach %s: %s", N.sock[i], strerror(-rc));
    return s;
}

/* The next event of one of the wanted kinds (others are skipped), or fail. */
static rs_event next_event(rs_stack *s, int kind, int timeout_ms)
{
    double end = now_s() + timeout_ms / 1000.0;
    for (;;) {
        rs_event ev;
        int rc = rs_poll(s, &ev);
        cr_assert_geq(rc, 0, "rs_poll: %s", strerror(-rc));
        if (rc == 1 && (kind == 0 || ev.kind == kind))
            return ev;
        if (rc == 1)
            continue;
        double left = end - now_s();
        cr_assert_gt(left, 0, "no event of kind %d within %d ms", kind, timeout_ms);
        struct pollfd p = {.fd = rs_fd(s), .events = POLLIN};
        poll(&p, 1, (int)(left * 1000) + 1);
    }
}

/* A connected pair: a (on stack 0) -> b (accepted on stack 1). */
static void connect_pair(rs_stack *a, rs_stack *b, uint32_t *fa, uint32_t *fb)
{
    cr_assert_eq(rs_listen(b, PORT), 0);
    cr_assert_eq(rs_connect(a, IP_B, PORT, fa), 0);
    rs_event ev = next_event(b, RS_EV_ACCEPTED, 5000);
    *fb = ev.flow;
    cr_assert_eq(ev.remote_ip, IP_A);
    ev = next_event(a, RS_EV_ESTABLISHED, 5000);
    cr_assert_eq(ev.flow, *fa);
}

static void send_all(rs_stack *s, uint32_t flow, const void *msg, size_t len)
{
    double end = now_s() + 10;
    for (;;) {
        int rc = rs_send(s, flow, msg, len);
        if (rc == 0)
            return;
        cr_assert_eq(rc, -EAGAIN, "rs_send: %s", strerror(-rc));
        cr_assert_lt(now_s(), end, "channel stayed full");
        struct pollfd p = {.fd = rs_fd(s), .events = POLLIN};
        poll(&p, 1, 10);
    }
}

static void fill(uint8_t *buf, size_t len, uint32_t seed)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)((i * 131u + seed * 7u) ^ (i >> 9));
}

TestSuite(stackd_net, .fini = fini, .timeout = 60);

Test(stackd_net, small_and_large_messages_both_ways)
{
    net_up(NULL);
    rs_stack *a = attach(0), *b = attach(1);
    cr_assert_eq(rs_local_ip(a), IP_A);
    uint32_t fa, fb;
    connect_pair(a, b, &fa, &fb);
    /* 200 small messages in order */
    for (uint32_t i = 0; i < 200; i++)
        send_all(a, fa, &i, sizeof i);
    for (uint32_t i = 0; i < 200; i++) {
        rs_event ev = next_event(b, RS_EV_MSG, 5000);
        cr_assert_eq(ev.flow, fb);
        cr_assert_eq(ev.len, sizeof i);
        uint32_t v;
        memcpy(&v, ev.data, sizeof v);
        cr_assert_eq(v, i, "message %u out of order (got %u)", i, v);
    }
    /* 1 MiB each way: 733 fragments, byte-exact */
    size_t big = 1u << 20;
    uint8_t *m = malloc(big);
    fill(m, big, 1);
    send_all(a, fa, m, big);
    rs_event ev = next_event(b, RS_EV_MSG, 10000);
    cr_assert_eq(ev.len, big);
    cr_assert_eq(memcmp(ev.data, m, big), 0, "1 MiB message corrupted a -> b");
    fill(m, big, 2);
    send_all(b, fb, m, big);
    ev = next_event(a, RS_EV_MSG, 10000);
    cr_assert_eq(ev.len, big);
    cr_assert_eq(memcmp(ev.data, m, big), 0, "1 MiB message corrupted b -> a");
    free(m);
    /* ARP resolved the peer; both stacks counted what crossed them */
    json_t *st = ctl_ok(0, "{\"cmd\":\"stats\"}");
    json_t *nb = json_array_get(json_object_get(st, "neighbours"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(nb, "ip")), "198.18.0.2");
    cr_assert_str_eq(json_string_value(json_object_get(nb, "state")), "resolved");
    cr_assert_geq(json_integer_value(json_object_get(json_object_get(st, "transport"), "msgs_delivered")), 1);
    cr_assert_gt(json_integer_value(json_object_get(json_object_get(st, "port"), "tx_packets")), 733);
    json_decref(st);
    cr_assert_geq(stat_of(1, "transport", "msgs_delivered"), 201);
    rs_detach(a);
    rs_detach(b);
}

Test(stackd_net, drop_rule_resets_the_flow_and_clearing_recovers)
{
    net_up("--set transport.max_rto_failures=5");
    rs_stack *a = attach(0), *b = attach(1);
    uint32_t fa, fb;
    connect_pair(a, b, &fa, &fb);
    uint32_t x = 1;
    send_all(a, fa, &x, sizeof x);
    next_event(b, RS_EV_MSG, 5000);
    /* Cut both directions, each rule on its sender (as the controller does). */
    json_t *r = ctl_ok(0, "{\"cmd\":\"impair-add\",\"rule\":{\"src\":\"198.18.0.1\",\"dst\":\"198.18.0.2\","
                          "\"drop\":1.0}}");
    json_int_t id = json_integer_value(json_object_get(r, "id"));
    json_decref(r);
    json_decref(ctl_ok(1, "{\"cmd\":\"impair-add\",\"rule\":{\"src\":\"198.18.0.2\",\"dst\":\"198.18.0.1\","
                          "\"drop\":1.0}}"));
    x = 2;
    send_all(a, fa, &x, sizeof x);
    /* Nothing gets through; after max_rto_failures RTOs the flow resets. */
    rs_event ev = next_event(a, 0, 15000);
    cr_assert_eq(ev.kind, RS_EV_RESET, "expected a reset, got event %d", ev.kind);
    cr_assert_eq(ev.flow, fa);
    rs_event evb;
    cr_assert_eq(rs_poll(b, &evb), 0, "message 2 must not arrive through a cut link");
    /* The rule counted what it dropped. */
    json_t *l = ctl_ok(0, "{\"cmd\":\"impair-list\"}");
    json_t *rule = json_array_get(json_object_get(l, "rules"), 0);
    cr_assert_eq(json_integer_value(json_object_get(rule, "id")), id);
    cr_assert(json_is_true(json_object_get(json_object_get(rule, "rule"), "cut")));
    cr_assert_geq(json_integer_value(json_object_get(json_object_get(rule, "counters"), "dropped")), 5);
    json_decref(l);
    cr_assert_geq(stat_of(0, "transport", "rtos"), 5);
    /* Clear (one link by name on a, everything on b) and reconnect. */
    r = ctl_ok(0, "{\"cmd\":\"impair-clear\",\"src\":\"198.18.0.1\",\"dst\":\"198.18.0.2\"}");
    cr_assert_eq(json_integer_value(json_object_get(r, "removed")), 1);
    json_decref(r);
    json_decref(ctl_ok(1, "{\"cmd\":\"impair-clear\"}"));
    cr_assert_eq(stat_of(0, "impair", "rules"), 0);
    uint32_t fa2;
    cr_assert_eq(rs_connect(a, IP_B, PORT, &fa2), 0);
    next_event(a, RS_EV_ESTABLISHED, 5000);
    x = 3;
    send_all(a, fa2, &x, sizeof x);
    for (;;) { /* b may first see its old flow reset or the new flow accepted */
        ev = next_event(b, 0, 5000);
        if (ev.kind == RS_EV_MSG)
            break;
    }
    memcpy(&x, ev.data, sizeof x);
    cr_assert_eq(x, 3);
    rs_detach(a);
    rs_detach(b);
}

/* A raw socket inside namespace ns, bound to ifname. */
static int raw_socket_in(const char *ns, const char *ifname)
{
    char path[128];
    snprintf(path, sizeof path, "/run/netns/%s", ns);
    int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC), target = open(path, O_RDONLY | O_CLOEXEC);
    cr_assert(self >= 0 && target >= 0);
    cr_assert_eq(setns(target, CLONE_NEWNET), 0);
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_ifindex = (int)if_nametoindex(ifname)};
    int rc = fd >= 0 && sll.sll_ifindex > 0 ? bind(fd, (struct sockaddr *)&sll, sizeof sll) : -1;
    cr_assert_eq(setns(self, CLONE_NEWNET), 0);
    close(self);
    close(target);
    cr_assert_eq(rc, 0, "raw socket on %s", ifname);
    return fd;
}

static void parse_mac(const char *s, uint8_t mac[6])
{
    unsigned m[6];
    cr_assert_eq(sscanf(s, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]), 6);
    for (int i = 0; i < 6; i++)
        mac[i] = (uint8_t)m[i];
}

static json_int_t malformed(int i, const char *reason)
{
    json_t *o = ctl_ok(i, "{\"cmd\":\"stats\"}");
    json_int_t v = json_integer_value(json_object_get(json_object_get(json_object_get(o, "engine"), "malformed"),
                                                      reason));
    json_decref(o);
    return v;
}

Test(stackd_net, malformed_frames_are_counted_per_reason)
{
    net_up(NULL);
    json_t *st = ctl_ok(1, "{\"cmd\":\"stats\"}");
    uint8_t mac_b[6], mac_a[6] = {0x02, 0, 0, 0, 0, 0x0a};
    parse_mac(json_string_value(json_object_get(json_object_get(st, "port"), "mac")), mac_b);
    json_decref(st);
    int fd = raw_socket_in(N.ns[0], N.ifn[0]);
    /* A valid rift frame a -> b, then corrupted three ways. */
    st_pkt p = {.ethertype = ST_ETHERTYPE_IPV4, .ip_src = IP_A, .ip_dst = IP_B, .udp_src = 50000, .udp_dst = PORT,
                .hdr = {.flags = ST_F_SYN, .src_flow = 77, .window = 16}};
    memcpy(p.eth_dst, mac_b, 6);
    memcpy(p.eth_src, mac_a, 6);
    uint8_t good[ST_WIRE_FRAME_MAX];
    int len = st_wire_build(good, sizeof good, &p);
    cr_assert_gt(len, 0);
    for (int k = 0; k < 5; k++) {
        uint8_t f[ST_WIRE_FRAME_MAX];
        memcpy(f, good, (size_t)len);
        f[ST_ETH_HDR_LEN + 10] ^= 0x5a; /* IPv4 header checksum */
        cr_assert_eq(send(fd, f, (size_t)len, 0), len);
        memcpy(f, good, (size_t)len);
        f[len - 1 > 90 ? 90 : len - 1] ^= 0xff; /* inside the rift header: the UDP checksum catches it */
        cr_assert_eq(send(fd, f, (size_t)len, 0), len);
        memcpy(f, good, 14);
        f[12] = 0x86, f[13] = 0xdd; /* IPv6: not ours */
        memset(f + 14, 0, 46);
        cr_assert_eq(send(fd, f, 60, 0), 60);
        memcpy(f, good, 24); /* IPv4 ethertype, 10 bytes of IP header */
        cr_assert_eq(send(fd, f, 24, 0), 24);
    }
    close(fd);
    double end = now_s() + 5;
    while (now_s() < end && (malformed(1, "bad_ip_csum") < 5 || malformed(1, "bad_udp_csum") < 5 ||
                             malformed(1, "bad_ethertype") < 5 || malformed(1, "truncated") < 5))
        usleep(50000);
    cr_assert_eq(malformed(1, "bad_ip_csum"), 5);
    cr_assert_eq(malformed(1, "bad_udp_csum"), 5);
    cr_assert_eq(malformed(1, "bad_ethertype"), 5);
    cr_assert_eq(malformed(1, "truncated"), 5);
    cr_assert_eq(stat_of(1, "engine", "malformed_total"), 20);
    cr_assert_eq(stat_of(1, "transport", "rx_packets"), 0, "nothing malformed reached the transport");
    json_decref(ctl_ok(1, "{\"cmd\":\"ping\"}"));
}

Test(stackd_net, capture_writes_a_pcapng_file)
{
    net_up(NULL);
    char path[160], line[256];
    snprintf(path, sizeof path, "%s/cap.pcapng", N.dir);
    snprintf(line, sizeof line, "{\"cmd\":\"capture-start\",\"path\":\"%s\"}", path);
    json_decref(ctl_ok(0, line));
    json_t *again = ctl(0, line);
    cr_assert(json_is_false(json_object_get(again, "ok")), "a second capture is refused");
    json_decref(again);
    rs_stack *a = attach(0), *b = attach(1);
    uint32_t fa, fb;
    connect_pair(a, b, &fa, &fb);
    for (uint32_t i = 0; i < 20; i++)
        send_all(a, fa, &i, sizeof i);
    for (int i = 0; i < 20; i++)
        next_event(b, RS_EV_MSG, 5000);
    json_t *r = ctl_ok(0, "{\"cmd\":\"capture-stop\"}");
    cr_assert(json_is_true(json_object_get(r, "was_capturing")));
    cr_assert_geq(json_integer_value(json_object_get(r, "packets")), 22, "SYN, ARP, 20 data packets at least");
    json_decref(r);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    uint8_t magic[4];
    cr_assert_eq(fread(magic, 1, 4, f), 4);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    cr_assert_eq(memcmp(magic, "\x0a\x0d\x0d\x0a", 4), 0, "pcapng section header block");
    cr_assert_gt(size, 22 * 60);
    rs_detach(a);
    rs_detach(b);
}

Test(stackd_net, a_crashed_application_frees_its_flows)
{
    net_up(NULL);
    rs_stack *b = attach(1);
    cr_assert_eq(rs_listen(b, PORT), 0);
    int ready[2];
    cr_assert_eq(pipe(ready), 0);
    pid_t child = fork();
    if (child == 0) { /* the application that will crash: two flows, one message */
        rs_stack *a;
        uint32_t f1, f2;
        if (rs_attach(N.sock[0], &a) || rs_connect(a, IP_B, PORT, &f1) || rs_connect(a, IP_B, PORT, &f2))
            _exit(1);
        uint32_t x = 42;
        while (rs_send(a, f1, &x, sizeof x) == -EAGAIN)
            usleep(1000);
        (void)!write(ready[1], "x", 1);
        for (;;) { /* keep the channel serviced until killed */
            rs_event ev;
            rs_poll(a, &ev);
            usleep(1000);
        }
    }
    close(ready[1]);
    rs_event ev = next_event(b, RS_EV_MSG, 5000);
    uint32_t x;
    memcpy(&x, ev.data, sizeof x);
    cr_assert_eq(x, 42);
    char c;
    cr_assert_eq(read(ready[0], &c, 1), 1);
    double end = now_s() + 5;
    while (n_flows(0) < 2 && now_s() < end)
        usleep(20000);
    cr_assert_eq(n_flows(0), 2, "both of the child's flows are listed");
    cr_assert_eq(stat_of(0, "channels", "apps"), 1);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    end = now_s() + 5;
    while ((n_flows(0) > 0 || stat_of(0, "channels", "apps") > 0) && now_s() < end)
        usleep(20000);
    cr_assert_eq(n_flows(0), 0, "the dead application's flows are gone");
    cr_assert_eq(stat_of(0, "channels", "apps"), 0);
    cr_assert_eq(stat_of(0, "transport", "flows_active"), 0);
    cr_assert_eq(stat_of(0, "engine", "app_detaches"), 1);
    /* and the peer heard about it: both accepted flows reset */
    int resets = 0;
    end = now_s() + 5;
    while (resets < 2 && now_s() < end) {
        rs_event e2 = next_event(b, 0, 5000);
        resets += e2.kind == RS_EV_RESET;
    }
    cr_assert_eq(resets, 2);
    close(ready[0]);
    rs_detach(b);
}

static double cpu_s(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long ut = 0, st = 0;
    cr_assert_eq(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st), 2);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Adaptive polling: an idle stack sleeps. DESIGN asks for well under 5% of a
 * core; 10% here leaves room for slow CI machines while still catching a
 * stack that spins (~100%). */
Test(stackd_net, an_idle_stack_sleeps)
{
    net_up(NULL);
    rs_stack *a = attach(0); /* an attached but silent application */
    usleep(300000);
    double c0 = cpu_s(N.pid[0]), t0 = now_s();
    sleep(2);
    double pct = (cpu_s(N.pid[0]) - c0) / (now_s() - t0) * 100.0;
    cr_log_info("idle rift-stackd: %.2f%% of a core", pct);
    cr_assert_lt(pct, 10.0, "idle rift-stackd used %.1f%% of a core", pct);
    json_t *o = ctl_ok(0, "{\"cmd\":\"stats\"}");
    json_int_t sleeps = json_integer_value(json_object_get(json_object_get(o, "engine"), "sleeps"));
    json_decref(o);
    cr_assert_gt(sleeps, 100, "it napped");
    rs_detach(a);
}
