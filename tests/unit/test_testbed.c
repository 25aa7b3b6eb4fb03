/* test_testbed.c — the libnl testbed: namespaces, veths and bridge exist and
 * carry traffic, link-down cuts a node off and link-up restores it, teardown
 * leaves nothing, and `rift clean` removes dead runs' testbeds only.
 * Needs root (CI runs as root); skips otherwise. Every testbed uses a private
 * state directory so nothing here touches other runs' state. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "chaos/ch_clean.h"
#include "chaos/ch_proc.h"
#include "chaos/ch_testbed.h"

static char state_dir[64];

static void setup(void)
{
    snprintf(state_dir, sizeof state_dir, "/tmp/rift-testbed-XXXXXX");
    cr_assert_not_null(mkdtemp(state_dir));
}

static void teardown(void)
{
    /* Whatever a failed test left: remove by prefix, then the directory. */
    DIR *d = opendir(state_dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        char prefix[16], path[256];
        size_t n = strlen(de->d_name);
        if (n > 5 && n < 14 && !strcmp(de->d_name + n - 5, ".json")) {
            snprintf(prefix, sizeof prefix, "%.*s", (int)(n - 5), de->d_name);
            ch_error e;
            ch_testbed_remove(state_dir, prefix, NULL, &e);
        }
        snprintf(path, sizeof path, "%s/%s", state_dir, de->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(state_dir);
}

static void need_root(void)
{
    if (geteuid() != 0) {
        teardown(); /* criterion does not run .fini for a skipped test */
        cr_skip_test("needs root (network namespaces)");
    }
}

static ch_testbed *make(size_t n, const char *const names[], const char *const ips[])
{
    ch_error err = {{0}};
    ch_testbed *tb = ch_testbed_new(NULL, n, names, ips, state_dir, &err);
    cr_assert_not_null(tb, "ch_testbed_new: %s", err.msg);
    return tb;
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static int count_namespaces(const char *prefix)
{
    DIR *d = opendir(CH_TESTBED_NETNS_DIR);
    int n = 0;
    struct dirent *de;
    size_t len = strlen(prefix);
    while (d && (de = readdir(d)))
        n += !strncmp(de->d_name, prefix, len) && de->d_name[len] == '-';
    if (d)
        closedir(d);
    return n;
}

/* Interfaces of the calling thread's namespace whose name starts with prefix. */
static int count_ifaces(const char *prefix)
{
    struct if_nameindex *ifs = if_nameindex();
    cr_assert_not_null(ifs);
    int n = 0;
    for (struct if_nameindex *i = ifs; i->if_index; i++)
        n += !strncmp(i->if_name, prefix, strlen(prefix));
    if_freenameindex(ifs);
    return n;
}

/* ---------- inside a node's namespace ---------- */

typedef struct iface_check {
    const char *iface;
    const char *ip;
    int n_ifaces;      /* out: interfaces in the namespace */
    int mtu;           /* out */
    bool up, has_ip;   /* out */
} iface_check;

static int check_iface(void *arg)
{
    iface_check *c = arg;
    struct if_nameindex *ifs = if_nameindex();
    if (!ifs)
        return -errno;
    for (struct if_nameindex *i = ifs; i->if_index; i++)
        c->n_ifaces++;
    if_freenameindex(ifs);
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr = {0};
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", c->iface);
    if (s >= 0 && ioctl(s, SIOCGIFMTU, &ifr) == 0)
        c->mtu = ifr.ifr_mtu;
    if (s >= 0 && ioctl(s, SIOCGIFFLAGS, &ifr) == 0)
        c->up = ifr.ifr_flags & IFF_UP;
    if (s >= 0)
        close(s);
    struct ifaddrs *addrs;
    if (getifaddrs(&addrs) != 0)
        return -errno;
    for (struct ifaddrs *a = addrs; a; a = a->ifa_next) {
        char buf[INET_ADDRSTRLEN];
        if (a->ifa_addr && a->ifa_addr->sa_family == AF_INET && !strcmp(a->ifa_name, c->iface) &&
            inet_ntop(AF_INET, &((struct sockaddr_in *)a->ifa_addr)->sin_addr, buf, sizeof buf) &&
            !strcmp(buf, c->ip))
            c->has_ip = true;
    }
    freeifaddrs(addrs);
    return 0;
}

typedef struct udp_req { const char *ip; int port; } udp_req;

/* A UDP socket bound to ip:port; it stays in the namespace it was made in. */
static int open_udp(void *arg)
{
    udp_req *r = arg;
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)r->port)};
    inet_pton(AF_INET, r->ip, &a.sin_addr);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0)
        return -errno;
    return s;
}

static int udp_socket(ch_testbed *tb, const char *node, int port)
{
    int i = ch_testbed_node(tb, node);
    cr_assert_geq(i, 0);
    udp_req r = {ch_testbed_ip(tb, i), port};
    int s = ch_testbed_exec_in(tb, i, open_udp, &r);
    cr_assert_geq(s, 0, "udp socket in %s: %s", node, strerror(-s));
    return s;
}

/* Send one datagram from tx to ip:port and wait up to wait_ms for it on rx. */
static bool probe_once(int tx, int rx, const char *ip, int port, int wait_ms)
{
    static int seq;
    char msg[32], got[64];
    snprintf(msg, sizeof msg, "probe-%d", ++seq);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, ip, &to.sin_addr);
    if (sendto(tx, msg, strlen(msg), 0, (struct sockaddr *)&to, sizeof to) < 0)
        return false; /* e.g. ENETUNREACH while the sender's own link is down */
    struct timeval tv = {wait_ms / 1000, (wait_ms % 1000) * 1000};
    setsockopt(rx, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    for (;;) {
        ssize_t n = recv(rx, got, sizeof got - 1, 0);
        if (n < 0)
            return false;
        got[n] = '\0';
        if (!strcmp(got, msg))
            return true; /* older probes that arrived late are skipped */
    }
}

/* Retry until a probe gets through or budget_ms passes (carrier comes back
 * within about a second of link-up). */
static bool probe(int tx, int rx, const char *ip, int port, int budget_ms)
{
    for (int spent = 0; spent <= budget_ms; spent += 200)
        if (probe_once(tx, rx, ip, port, 200))
            return true;
    return false;
}

/* ---------- tests ---------- */

TestSuite(testbed, .init = setup, .fini = teardown, .timeout = 60);

Test(testbed, rejects_bad_input)
{
    const char *names[] = {"r1", "r2"}, *ips[] = {"198.18.0.1", "198.18.0.2"};
    const char *long_name[] = {"r1", "replica"}, *bad_ip[] = {"198.18.0.1", "198.18.0.300"};
    const char *dup_ip[] = {"198.18.0.1", "198.18.0.1"}, *br[] = {"br"};
    const char *dup_name[] = {"r1", "r1"};
    ch_error err = {{0}};
    cr_assert_null(ch_testbed_new(NULL, 2, long_name, ips, state_dir, &err));
    cr_assert(strstr(err.msg, "node 1: name \"replica\""), "%s", err.msg);
    cr_assert_null(ch_testbed_new(NULL, 2, names, bad_ip, state_dir, &err));
    cr_assert(strstr(err.msg, "node r2: ip \"198.18.0.300\""), "%s", err.msg);
    cr_assert_null(ch_testbed_new(NULL, 2, names, dup_ip, state_dir, &err));
    cr_assert(strstr(err.msg, "already used by node r1"), "%s", err.msg);
    cr_assert_null(ch_testbed_new(NULL, 2, dup_name, ips, state_dir, &err));
    cr_assert(strstr(err.msg, "already used by node r1"), "%s", err.msg);
    cr_assert_null(ch_testbed_new(NULL, 1, br, ips, state_dir, &err));
    cr_assert_null(ch_testbed_new("rf1!", 2, names, ips, state_dir, &err));
    cr_assert(strstr(err.msg, "prefix \"rf1!\""), "%s", err.msg);
    cr_assert_null(ch_testbed_new(NULL, 0, names, ips, state_dir, &err));
    /* nothing was claimed */
    DIR *d = opendir(state_dir);
    int files = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        files += de->d_name[0] != '.';
    closedir(d);
    cr_assert_eq(files, 0);

    cr_assert(ch_testbed_prefix_valid("rfab2c"));
    cr_assert(ch_testbed_prefix_valid("rfabcd27"));
    cr_assert_not(ch_testbed_prefix_valid("rfabc"));
    cr_assert_not(ch_testbed_prefix_valid("rfabcd234"));
    cr_assert_not(ch_testbed_prefix_valid("rfab1c"));
    cr_assert_not(ch_testbed_prefix_valid("xyabcd"));
    cr_assert_not(ch_testbed_prefix_valid(NULL));
}

Test(testbed, builds_carries_traffic_link_down_up_and_leaves_nothing)
{
    need_root();
    const char *names[] = {"r1", "r2", "c1"}, *ips[] = {"198.18.0.1", "198.18.0.2", "198.18.0.101"};
    ch_testbed *tb = make(3, names, ips);
    char prefix[16], path[256];
    snprintf(prefix, sizeof prefix, "%s", ch_testbed_prefix(tb));
    cr_assert(ch_testbed_prefix_valid(prefix), "%s", prefix);

    /* what `ip netns list` shows: three nodes and the bridge */
    cr_assert_eq(count_namespaces(prefix), 4);
    snprintf(path, sizeof path, "%s/%s-br", CH_TESTBED_NETNS_DIR, prefix);
    cr_assert(exists(path));
    snprintf(path, sizeof path, "%s/%s.json", state_dir, prefix);
    json_t *state = json_load_file(path, 0, NULL);
    cr_assert_not_null(state);
    cr_assert_eq(json_integer_value(json_object_get(state, "owner_pid")), getpid());
    cr_assert_str_eq(json_string_value(json_object_get(state, "prefix")), prefix);
    json_decref(state);

    for (int i = 0; i < 3; i++) {
        iface_check c = {.iface = ch_testbed_iface(tb, i), .ip = ips[i]};
        cr_assert_eq(strlen(c.iface), strlen(prefix) + 1 + strlen(names[i]));
        cr_assert_eq(ch_testbed_exec_in(tb, i, check_iface, &c), 0);
        cr_assert_eq(c.n_ifaces, 2, "%s: lo and the veth only, got %d", names[i], c.n_ifaces);
        cr_assert_eq(c.mtu, 1500);
        cr_assert(c.up && c.has_ip, "%s: up %d, has %s %d", c.iface, c.up, ips[i], c.has_ip);
    }
    /* nothing in our own namespace */
    cr_assert_eq(count_ifaces(prefix), 0);

    int r1 = udp_socket(tb, "r1", 7001), r2 = udp_socket(tb, "r2", 7002), c1 = udp_socket(tb, "c1", 7003);
    cr_assert(probe(r1, r2, "198.18.0.2", 7002, 2000), "r1 -> r2 through the bridge");
    cr_assert(probe(r1, c1, "198.18.0.101", 7003, 2000), "r1 -> c1 through the bridge");

    ch_error err = {{0}};
    int n_r2 = ch_testbed_node(tb, "r2");
    cr_assert_eq(ch_testbed_link_set(tb, n_r2, false, &err), 0, "%s", err.msg);
    cr_assert_not(probe(r1, r2, "198.18.0.2", 7002, 400), "r2's link is down");
    cr_assert_not(probe(r2, c1, "198.18.0.101", 7003, 0), "r2 cannot send either");
    cr_assert(probe(r1, c1, "198.18.0.101", 7003, 1000), "others are unaffected");

    cr_assert_eq(ch_testbed_link_set(tb, n_r2, true, &err), 0, "%s", err.msg);
    cr_assert_eq(ch_testbed_wait_carrier(tb, n_r2, 3000, &err), 0, "%s", err.msg);
    cr_assert(probe(r1, r2, "198.18.0.2", 7002, 3000), "link-up restores r2");
    close(r1);
    close(r2);
    close(c1);

    cr_assert_eq(ch_testbed_teardown(tb, &err), 0, "%s", err.msg);
    cr_assert_eq(count_namespaces(prefix), 0);
    cr_assert_not(exists(path), "state file removed");
    cr_assert_eq(count_ifaces(prefix), 0);
    cr_assert_eq(ch_testbed_teardown(tb, &err), 0, "idempotent: %s", err.msg);
    cr_assert_eq(ch_testbed_destroy(tb, &err), 0, "%s", err.msg);
    cr_assert_eq(ch_testbed_destroy(NULL, &err), 0);
}

Test(testbed, link_set_rejects_unknown_node)
{
    need_root();
    const char *names[] = {"r1"}, *ips[] = {"198.18.0.1"};
    ch_testbed *tb = make(1, names, ips);
    ch_error err = {{0}};
    cr_assert_eq(ch_testbed_link_set(tb, 5, false, &err), -EINVAL);
    cr_assert_eq(ch_testbed_node(tb, "r9"), -1);
    cr_assert_null(ch_testbed_iface(tb, 1));
    /* a taken prefix is refused, and the first testbed is untouched */
    cr_assert_null(ch_testbed_new(ch_testbed_prefix(tb), 1, names, ips, state_dir, &err));
    cr_assert(strstr(err.msg, ch_testbed_prefix(tb)), "%s", err.msg);
    cr_assert_eq(count_namespaces(ch_testbed_prefix(tb)), 2);
    cr_assert_eq(ch_testbed_destroy(tb, &err), 0, "%s", err.msg);
}

/* Rewrite one field of a testbed's state file (a controller that "died"). */
static void set_state_field(const char *prefix, const char *key, json_int_t value)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s.json", state_dir, prefix);
    json_t *state = json_load_file(path, 0, NULL);
    cr_assert_not_null(state);
    json_object_set_new(state, key, json_integer(value));
    cr_assert_eq(json_dump_file(state, path, 0), 0);
    json_decref(state);
}

static json_t *find_prefix(json_t *list, const char *prefix)
{
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
        const char *p = json_is_string(v) ? json_string_value(v) : json_string_value(json_object_get(v, "prefix"));
        if (p && !strcmp(p, prefix))
            return v;
    }
    return NULL;
}

static pid_t dead_pid(void)
{
    pid_t p = fork();
    if (p == 0)
        _exit(0);
    cr_assert_gt(p, 0);
    waitpid(p, NULL, 0);
    return p;
}

Test(testbed, clean_removes_dead_runs_only)
{
    need_root();
    const char *names[] = {"r1"}, *ips[] = {"198.18.0.1"};
    ch_testbed *dead = make(1, names, ips), *live = make(1, names, ips), *reused = make(1, names, ips);
    char p_dead[16], p_live[16], p_reused[16];
    snprintf(p_dead, sizeof p_dead, "%s", ch_testbed_prefix(dead));
    snprintf(p_live, sizeof p_live, "%s", ch_testbed_prefix(live));
    snprintf(p_reused, sizeof p_reused, "%s", ch_testbed_prefix(reused));
    set_state_field(p_dead, "owner_pid", dead_pid());
    set_state_field(p_reused, "owner_start_ticks", 1); /* our PID, but "another" process */

    /* a leftover process inside the dead run's namespace */
    char *argv[] = {"/bin/sleep", "30", NULL};
    pid_t sleeper;
    ch_error err = {{0}};
    cr_assert_eq(ch_proc_spawn(ch_testbed_ns_path(dead, 0), argv, NULL, &sleeper, &err), 0, "%s", err.msg);

    json_t *report = NULL;
    ch_clean_opts o = {.state_dir = state_dir};
    int rc = ch_clean(&o, &report, &err);
    cr_assert_eq(rc, 0, "%s", err.msg);
    json_t *gone = find_prefix(json_object_get(report, "removed"), p_dead);
    cr_assert_not_null(gone, "dead run removed: %s", json_dumps(report, 0));
    cr_assert_str_eq(json_string_value(json_object_get(gone, "reason")), "owner dead");
    cr_assert_eq(json_array_size(json_object_get(gone, "namespaces")), 2);
    cr_assert_eq(json_integer_value(json_object_get(gone, "processes_killed")), 1);
    gone = find_prefix(json_object_get(report, "removed"), p_reused);
    cr_assert_not_null(gone);
    cr_assert_str_eq(json_string_value(json_object_get(gone, "reason")), "owner pid reused");
    cr_assert_not_null(find_prefix(json_object_get(report, "kept"), p_live));
    cr_assert_null(find_prefix(json_object_get(report, "removed"), p_live));
    json_decref(report);

    int status = 0;
    cr_assert_eq(waitpid(sleeper, &status, 0), sleeper);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    cr_assert_eq(count_namespaces(p_dead), 0);
    cr_assert_eq(count_namespaces(p_reused), 0);
    cr_assert_eq(count_namespaces(p_live), 2);

    /* Orphans (namespaces without a state file) go only with --all. */
    char path[256];
    snprintf(path, sizeof path, "%s/%s.json", state_dir, p_live);
    cr_assert_eq(unlink(path), 0);
    ch_clean_opts only = {.state_dir = state_dir, .only_prefix = p_live};
    cr_assert_eq(ch_clean(&only, &report, &err), 0, "%s", err.msg);
    cr_assert_not_null(find_prefix(json_object_get(report, "orphans"), p_live));
    cr_assert_eq(json_array_size(json_object_get(report, "removed")), 0);
    json_decref(report);
    cr_assert_eq(count_namespaces(p_live), 2);
    only.all = true;
    cr_assert_eq(ch_clean(&only, &report, &err), 0, "%s", err.msg);
    gone = find_prefix(json_object_get(report, "removed"), p_live);
    cr_assert_not_null(gone);
    cr_assert_str_eq(json_string_value(json_object_get(gone, "reason")), "orphan");
    json_decref(report);
    cr_assert_eq(count_namespaces(p_live), 0);

    ch_testbed_destroy(dead, &err);
    ch_testbed_destroy(live, &err);
    ch_testbed_destroy(reused, &err);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The shape of a default dpdk run: five replicas and one client node. */
Test(testbed, five_replicas_and_a_client)
{
    need_root();
    const char *names[] = {"r1", "r2", "r3", "r4", "r5", "c1"};
    const char *ips[] = {"198.18.0.1", "198.18.0.2", "198.18.0.3", "198.18.0.4", "198.18.0.5", "198.18.0.101"};
    double t0 = now_ms();
    ch_testbed *tb = make(6, names, ips);
    double t1 = now_ms();
    char prefix[16];
    snprintf(prefix, sizeof prefix, "%s", ch_testbed_prefix(tb));
    cr_assert_eq(count_namespaces(prefix), 7);
    int c1 = udp_socket(tb, "c1", 7101), r5 = udp_socket(tb, "r5", 7105);
    cr_assert(probe(c1, r5, "198.18.0.5", 7105, 2000));
    close(c1);
    close(r5);
    ch_error err = {{0}};
    double t2 = now_ms();
    cr_assert_eq(ch_testbed_destroy(tb, &err), 0, "%s", err.msg);
    double t3 = now_ms();
    cr_assert_eq(count_namespaces(prefix), 0);
    cr_log_info("testbed 5 replicas + 1 client: create %.1f ms, destroy %.1f ms", t1 - t0, t3 - t2);
    fprintf(stderr, "testbed 5 replicas + 1 client: create %.1f ms, destroy %.1f ms\n", t1 - t0, t3 - t2);
}
