/* ch_testbed.c — namespaces, veths and a bridge via libnl (see ch_testbed.h). */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include <linux/magic.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/link/veth.h>

#include "ch_fs.h"
#include "ch_proc.h"
#include "ch_testbed.h"

#define MTU 1500
#define ADDR_PREFIX_LEN 24
#define CARRIER_WAIT_MS 3000
#ifndef IFF_LOWER_UP /* <linux/if.h> has it but clashes with <net/if.h> */
#define IFF_LOWER_UP 0x10000
#endif

typedef struct tb_node {
    char name[CH_TESTBED_NODE_MAX + 1];
    char ns_path[64];   /* /run/netns/<prefix>-<name> */
    char iface[IFNAMSIZ]; /* <prefix>-<name>, inside the node's namespace */
    char br_iface[IFNAMSIZ]; /* <prefix>-<name>b, inside the bridge namespace */
    char ip[INET_ADDRSTRLEN];
    struct in_addr addr;
} tb_node;

struct ch_testbed {
    char prefix[CH_TESTBED_PREFIX_MAX + 1];
    char state_dir[PATH_MAX - 64];
    char br_ns_path[64];
    char br_name[IFNAMSIZ];
    size_t n;
    tb_node *nodes;
};

/* ---------- errors ---------- */

/* libnl speaks its own error space; the API speaks errno. */
static int nle_errno(int nle)
{
    switch (nle < 0 ? -nle : nle) {
    case 0: return 0;
    case NLE_NOMEM: return -ENOMEM;
    case NLE_EXIST: return -EEXIST;
    case NLE_INVAL: case NLE_RANGE: return -EINVAL;
    case NLE_OBJ_NOTFOUND: case NLE_NODEV: return -ENODEV;
    case NLE_NOACCESS: case NLE_PERM: return -EPERM;
    case NLE_BUSY: return -EBUSY;
    case NLE_OPNOTSUPP: return -EOPNOTSUPP;
    default: return -EIO;
    }
}

static int fail_nl(ch_error *err, int nle, const char *what, const char *name)
{
    snprintf(err->msg, sizeof err->msg, "testbed: %s %s: %s", what, name, nl_geterror(nle));
    return nle_errno(nle);
}

static int fail_errno(ch_error *err, int e, const char *what, const char *name)
{
    snprintf(err->msg, sizeof err->msg, "testbed: %s %s: %s", what, name, strerror(e < 0 ? -e : e));
    return e < 0 ? e : -e;
}

/* ---------- namespaces ---------- */

/* Move the calling thread into the namespace at path; *back gets a handle on
 * the namespace to return to with ns_leave. */
static int ns_enter(const char *path, int *back)
{
    int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (home < 0)
        return -errno;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int rc = fd < 0 ? -errno : setns(fd, CLONE_NEWNET) != 0 ? -errno : 0;
    if (fd >= 0)
        close(fd);
    if (rc < 0) {
        close(home);
        return rc;
    }
    *back = home;
    return 0;
}

static int ns_leave(int back)
{
    int rc = setns(back, CLONE_NEWNET) != 0 ? -errno : 0;
    close(back);
    return rc;
}

/* /run/netns must be a shared mount point so that the namespace pins made
 * under it show up in every mount namespace (what `ip netns add` does). */
static int netns_dir_ready(void)
{
    if (mkdir(CH_TESTBED_NETNS_DIR, 0755) != 0 && errno != EEXIST)
        return -errno;
    if (mount("", CH_TESTBED_NETNS_DIR, "none", MS_SHARED | MS_REC, NULL) == 0)
        return 0;
    if (errno != EINVAL) /* EINVAL: not a mount point yet */
        return -errno;
    if (mount(CH_TESTBED_NETNS_DIR, CH_TESTBED_NETNS_DIR, "none", MS_BIND | MS_REC, NULL) != 0)
        return -errno;
    return mount("", CH_TESTBED_NETNS_DIR, "none", MS_SHARED | MS_REC, NULL) == 0 ? 0 : -errno;
}

/* Best effort: no IPv6 (router solicitations, DAD, MLD) on a lab network. */
static void disable_ipv6_here(void)
{
    static const char *const knobs[] = {"/proc/sys/net/ipv6/conf/all/disable_ipv6",
                                        "/proc/sys/net/ipv6/conf/default/disable_ipv6"};
    for (size_t i = 0; i < sizeof knobs / sizeof knobs[0]; i++) {
        int fd = open(knobs[i], O_WRONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        if (write(fd, "1", 1) != 1) {
            /* the kernel may lack IPv6; nothing to silence then */
        }
        close(fd);
    }
}

/* A new network namespace pinned at path: unshare on this thread, bind-mount
 * the thread's namespace file onto path, return to the old namespace. */
static int ns_create(const char *path)
{
    int fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    close(fd);
    int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (home < 0) {
        int e = -errno;
        unlink(path);
        return e;
    }
    int rc = 0;
    if (unshare(CLONE_NEWNET) != 0) {
        rc = -errno;
    } else {
        disable_ipv6_here();
        if (mount("/proc/thread-self/ns/net", path, "none", MS_BIND, NULL) != 0)
            rc = -errno;
        if (setns(home, CLONE_NEWNET) != 0 && rc == 0)
            rc = -errno;
    }
    close(home);
    if (rc < 0) {
        umount2(path, MNT_DETACH);
        unlink(path);
    }
    return rc;
}

/* Only a mounted namespace file may be entered (a plain file left by a
 * half-made namespace is just removed). */
static bool ns_pinned(const char *path)
{
    struct statfs sfs;
    return statfs(path, &sfs) == 0 && sfs.f_type == NSFS_MAGIC;
}

static int ns_unpin(const char *path)
{
    if (umount2(path, MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT)
        return -errno;
    if (unlink(path) != 0 && errno != ENOENT)
        return -errno;
    return 0;
}

/* A route netlink socket that lives in the namespace at path: created there,
 * it keeps talking to that namespace after the thread returns home. */
static int nl_open_in(const char *path, struct nl_sock **out, ch_error *err)
{
    int back, rc = ns_enter(path, &back);
    if (rc < 0)
        return fail_errno(err, rc, "entering namespace", path);
    struct nl_sock *sk = nl_socket_alloc();
    int nle = sk ? nl_connect(sk, NETLINK_ROUTE) : -NLE_NOMEM;
    rc = ns_leave(back);
    if (nle < 0 || rc < 0) {
        if (sk)
            nl_socket_free(sk);
        return rc < 0 ? fail_errno(err, rc, "returning from namespace", path)
                      : fail_nl(err, nle, "netlink socket in", path);
    }
    *out = sk;
    return 0;
}

/* ---------- links ---------- */

static int link_set_up(struct nl_sock *sk, const char *name, bool up, ch_error *err)
{
    struct rtnl_link *cur = NULL, *change = rtnl_link_alloc();
    if (!change)
        return fail_errno(err, ENOMEM, "link", name);
    int nle = rtnl_link_get_kernel(sk, 0, name, &cur);
    if (nle >= 0) {
        if (up)
            rtnl_link_set_flags(change, IFF_UP);
        else
            rtnl_link_unset_flags(change, IFF_UP);
        nle = rtnl_link_change(sk, cur, change, 0);
    }
    rtnl_link_put(change);
    if (cur)
        rtnl_link_put(cur);
    return nle < 0 ? fail_nl(err, nle, up ? "setting up" : "setting down", name) : 0;
}

static int link_ifindex(struct nl_sock *sk, const char *name, int *ifindex, unsigned *flags)
{
    struct rtnl_link *l = NULL;
    int nle = rtnl_link_get_kernel(sk, 0, name, &l);
    if (nle < 0)
        return nle;
    *ifindex = rtnl_link_get_ifindex(l);
    if (flags)
        *flags = rtnl_link_get_flags(l);
    rtnl_link_put(l);
    return 0;
}

static int make_bridge(struct nl_sock *sk, const char *name, int *ifindex, ch_error *err)
{
    struct rtnl_link *br = rtnl_link_bridge_alloc();
    if (!br)
        return fail_errno(err, ENOMEM, "bridge", name);
    rtnl_link_set_name(br, name);
    rtnl_link_set_flags(br, IFF_UP);
    int nle = rtnl_link_add(sk, br, NLM_F_CREATE | NLM_F_EXCL);
    rtnl_link_put(br);
    if (nle >= 0)
        nle = link_ifindex(sk, name, ifindex, NULL);
    return nle < 0 ? fail_nl(err, nle, "creating bridge", name) : 0;
}

/* One veth pair, made from the bridge namespace: this end is enslaved to the
 * bridge and up; the peer is created straight into the node's namespace, so
 * neither end ever appears in the caller's namespace. */
static int make_veth(struct nl_sock *br_sk, int br_ifindex, const tb_node *nd, ch_error *err)
{
    int node_fd = open(nd->ns_path, O_RDONLY | O_CLOEXEC);
    if (node_fd < 0)
        return fail_errno(err, errno, "opening namespace", nd->ns_path);
    struct rtnl_link *v = rtnl_link_veth_alloc();
    struct rtnl_link *peer = v ? rtnl_link_veth_get_peer(v) : NULL;
    int nle = -NLE_NOMEM;
    if (peer) {
        /* One queue pair per end (the LCD NIC model): an af_xdp socket binds
         * one RX queue, and with several the kernel could deliver elsewhere. */
        rtnl_link_set_num_tx_queues(v, 1);
        rtnl_link_set_num_rx_queues(v, 1);
        rtnl_link_set_num_tx_queues(peer, 1);
        rtnl_link_set_num_rx_queues(peer, 1);
        rtnl_link_set_name(v, nd->br_iface);
        rtnl_link_set_mtu(v, MTU);
        rtnl_link_set_master(v, br_ifindex);
        rtnl_link_set_flags(v, IFF_UP);
        rtnl_link_set_name(peer, nd->iface);
        rtnl_link_set_mtu(peer, MTU);
        rtnl_link_set_ns_fd(peer, node_fd);
        nle = rtnl_link_add(br_sk, v, NLM_F_CREATE | NLM_F_EXCL);
    }
    if (peer)
        rtnl_link_put(peer);
    if (v)
        rtnl_link_put(v);
    close(node_fd);
    return nle < 0 ? fail_nl(err, nle, "creating veth pair", nd->iface) : 0;
}

/* Inside the node's namespace: loopback up, veth up, the IPv4 address. */
static int configure_node(const tb_node *nd, ch_error *err)
{
    struct nl_sock *sk;
    int rc = nl_open_in(nd->ns_path, &sk, err);
    if (rc < 0)
        return rc;
    int ifindex = 0;
    if ((rc = link_set_up(sk, "lo", true, err)) < 0 || (rc = link_set_up(sk, nd->iface, true, err)) < 0)
        goto out;
    int nle = link_ifindex(sk, nd->iface, &ifindex, NULL);
    struct rtnl_addr *a = nle >= 0 ? rtnl_addr_alloc() : NULL;
    struct nl_addr *local = a ? nl_addr_build(AF_INET, &nd->addr, sizeof nd->addr) : NULL;
    if (nle >= 0 && !local)
        nle = -NLE_NOMEM;
    if (local) {
        nl_addr_set_prefixlen(local, ADDR_PREFIX_LEN);
        rtnl_addr_set_ifindex(a, ifindex);
        nle = rtnl_addr_set_local(a, local);
        if (nle >= 0)
            nle = rtnl_addr_add(sk, a, 0);
        nl_addr_put(local);
    }
    if (a)
        rtnl_addr_put(a);
    if (nle < 0)
        rc = fail_nl(err, nle, "adding address to", nd->iface);
out:
    nl_socket_free(sk);
    return rc;
}

/* Delete every link but loopback in the namespace at path. Deleting a veth
 * end takes its peer (in another namespace) with it, so "already gone" is
 * fine. */
static int flush_links(const char *path, ch_error *err)
{
    struct nl_sock *sk;
    int rc = nl_open_in(path, &sk, err);
    if (rc < 0)
        return rc;
    struct nl_cache *cache = NULL;
    int nle = rtnl_link_alloc_cache(sk, AF_UNSPEC, &cache);
    if (nle < 0) {
        nl_socket_free(sk);
        return fail_nl(err, nle, "listing links in", path);
    }
    for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
        struct rtnl_link *l = (struct rtnl_link *)o;
        if (rtnl_link_get_flags(l) & IFF_LOOPBACK)
            continue;
        nle = rtnl_link_delete(sk, l);
        if (nle < 0 && nle != -NLE_OBJ_NOTFOUND && nle != -NLE_NODEV && rc == 0)
            rc = fail_nl(err, nle, "deleting link", rtnl_link_get_name(l) ? rtnl_link_get_name(l) : "?");
    }
    nl_cache_free(cache);
    nl_socket_free(sk);
    return rc;
}

/* ---------- names and the state file ---------- */

static const char BASE32[] = "abcdefghijklmnopqrstuvwxyz234567";

bool ch_testbed_prefix_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 6 || n > CH_TESTBED_PREFIX_MAX || strncmp(s, "rf", 2) != 0)
        return false;
    for (size_t i = 2; i < n; i++)
        if (!strchr(BASE32, s[i]))
            return false;
    return true;
}

static bool node_name_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > CH_TESTBED_NODE_MAX || !strcmp(s, "br"))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
            return false;
    return true;
}

static int random_prefix(char *out)
{
    unsigned char r[6];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        return -errno;
    out[0] = 'r';
    out[1] = 'f';
    for (size_t i = 0; i < sizeof r; i++)
        out[2 + i] = BASE32[r[i] & 31];
    out[2 + sizeof r] = '\0';
    return 0;
}

/* Does any /run/netns/<prefix>-* exist (an orphan of an earlier run)? */
static bool prefix_in_use(const char *prefix)
{
    DIR *d = opendir(CH_TESTBED_NETNS_DIR);
    if (!d)
        return false;
    size_t n = strlen(prefix);
    bool used = false;
    for (struct dirent *de; !used && (de = readdir(d));)
        used = !strncmp(de->d_name, prefix, n) && de->d_name[n] == '-';
    closedir(d);
    return used;
}

static json_t *state_json(const ch_testbed *tb)
{
    uint64_t start = 0;
    char comm[32] = "";
    ch_proc_start_ticks(getpid(), &start);
    int fd = open("/proc/self/comm", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, comm, sizeof comm - 1);
        comm[n > 0 ? n : 0] = '\0';
        comm[strcspn(comm, "\n")] = '\0';
        close(fd);
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    json_t *nodes = json_array();
    for (size_t i = 0; nodes && i < tb->n; i++)
        json_array_append_new(nodes, json_pack("{s:s, s:s, s:s, s:s, s:s}", "name", tb->nodes[i].name, "netns",
                                               tb->nodes[i].ns_path, "iface", tb->nodes[i].iface, "bridge_port",
                                               tb->nodes[i].br_iface, "ip", tb->nodes[i].ip));
    return json_pack("{s:i, s:s, s:i, s:I, s:s, s:I, s:o, s:{s:s, s:s}}", "rift_testbed", 1, "prefix", tb->prefix,
                     "owner_pid", (int)getpid(), "owner_start_ticks", (json_int_t)start, "owner_comm", comm,
                     "created_unix_ms", (json_int_t)now.tv_sec * 1000 + now.tv_nsec / 1000000, "nodes", nodes,
                     "bridge", "netns", tb->br_ns_path, "iface", tb->br_name);
}

/* Claim the prefix: the complete state file appears under its final name
 * with link(), which fails if another run holds the prefix. */
static int claim_state(const ch_testbed *tb, ch_error *err)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s.json", tb->state_dir, tb->prefix);
    snprintf(tmp, sizeof tmp, "%s/.%s.json.%d.tmp", tb->state_dir, tb->prefix, (int)getpid());
    int rc = ch_fs_mkdirs(tb->state_dir);
    if (rc < 0)
        return fail_errno(err, rc, "creating state directory", tb->state_dir);
    json_t *j = state_json(tb);
    if (!j)
        return fail_errno(err, ENOMEM, "state file", path);
    rc = ch_fs_write_json(tmp, j, 2);
    json_decref(j);
    if (rc < 0)
        return fail_errno(err, rc, "writing state file", tmp);
    rc = link(tmp, path) == 0 ? 0 : -errno;
    unlink(tmp);
    return rc < 0 ? fail_errno(err, rc, "claiming prefix with", path) : 0;
}

/* ---------- build ---------- */

static int fill_nodes(ch_testbed *tb, const char *const names[], const char *const ips[], ch_error *err)
{
    for (size_t i = 0; i < tb->n; i++) {
        tb_node *nd = &tb->nodes[i];
        if (!node_name_valid(names[i])) {
            snprintf(err->msg, sizeof err->msg,
                     "testbed: node %zu: name \"%s\": expected 1-%d lowercase letters or digits (not \"br\")", i,
                     names[i] ? names[i] : "(null)", CH_TESTBED_NODE_MAX);
            return -EINVAL;
        }
        if (!ips[i] || inet_pton(AF_INET, ips[i], &nd->addr) != 1) {
            snprintf(err->msg, sizeof err->msg, "testbed: node %s: ip \"%s\": expected a dotted IPv4 address",
                     names[i], ips[i] ? ips[i] : "(null)");
            return -EINVAL;
        }
        for (size_t j = 0; j < i; j++) {
            if (!strcmp(tb->nodes[j].name, names[i]) || tb->nodes[j].addr.s_addr == nd->addr.s_addr) {
                snprintf(err->msg, sizeof err->msg, "testbed: node %s: name or ip %s already used by node %s",
                         names[i], ips[i], tb->nodes[j].name);
                return -EINVAL;
            }
        }
        snprintf(nd->name, sizeof nd->name, "%s", names[i]);
        inet_ntop(AF_INET, &nd->addr, nd->ip, sizeof nd->ip);
    }
    return 0;
}

static void name_things(ch_testbed *tb)
{
    snprintf(tb->br_ns_path, sizeof tb->br_ns_path, "%s/%s-br", CH_TESTBED_NETNS_DIR, tb->prefix);
    snprintf(tb->br_name, sizeof tb->br_name, "%s-br", tb->prefix);
    for (size_t i = 0; i < tb->n; i++) {
        tb_node *nd = &tb->nodes[i];
        snprintf(nd->ns_path, sizeof nd->ns_path, "%s/%s-%s", CH_TESTBED_NETNS_DIR, tb->prefix, nd->name);
        snprintf(nd->iface, sizeof nd->iface, "%s-%s", tb->prefix, nd->name);
        snprintf(nd->br_iface, sizeof nd->br_iface, "%s-%sb", tb->prefix, nd->name);
    }
}

/* Pick (or check) the prefix and write the state file that claims it. */
static int choose_prefix(ch_testbed *tb, const char *prefix, ch_error *err)
{
    if (prefix) {
        if (!ch_testbed_prefix_valid(prefix)) {
            snprintf(err->msg, sizeof err->msg, "testbed: prefix \"%s\": expected \"rf\" + 4-6 of [a-z2-7]", prefix);
            return -EINVAL;
        }
        snprintf(tb->prefix, sizeof tb->prefix, "%s", prefix);
        name_things(tb);
        if (prefix_in_use(prefix)) {
            snprintf(err->msg, sizeof err->msg, "testbed: prefix %s: namespaces %s/%s-* exist (try `rift clean`)",
                     prefix, CH_TESTBED_NETNS_DIR, prefix);
            return -EEXIST;
        }
        return claim_state(tb, err);
    }
    int rc = -EEXIST;
    for (int attempt = 0; attempt < 8 && rc == -EEXIST; attempt++) {
        if ((rc = random_prefix(tb->prefix)) < 0)
            return fail_errno(err, rc, "random prefix", "");
        name_things(tb);
        rc = prefix_in_use(tb->prefix) ? -EEXIST : claim_state(tb, err);
    }
    return rc;
}

static int build(ch_testbed *tb, ch_error *err)
{
    int rc = netns_dir_ready();
    if (rc < 0)
        return fail_errno(err, rc, "preparing", CH_TESTBED_NETNS_DIR);
    if ((rc = ns_create(tb->br_ns_path)) < 0)
        return fail_errno(err, rc, "creating namespace", tb->br_ns_path);
    for (size_t i = 0; i < tb->n; i++)
        if ((rc = ns_create(tb->nodes[i].ns_path)) < 0)
            return fail_errno(err, rc, "creating namespace", tb->nodes[i].ns_path);
    struct nl_sock *br_sk;
    if ((rc = nl_open_in(tb->br_ns_path, &br_sk, err)) < 0)
        return rc;
    int br_ifindex = 0;
    rc = make_bridge(br_sk, tb->br_name, &br_ifindex, err);
    for (size_t i = 0; rc == 0 && i < tb->n; i++)
        rc = make_veth(br_sk, br_ifindex, &tb->nodes[i], err);
    nl_socket_free(br_sk);
    for (size_t i = 0; rc == 0 && i < tb->n; i++)
        rc = configure_node(&tb->nodes[i], err);
    for (size_t i = 0; rc == 0 && i < tb->n; i++)
        rc = ch_testbed_wait_carrier(tb, (int)i, CARRIER_WAIT_MS, err);
    return rc;
}

ch_testbed *ch_testbed_new(const char *prefix, size_t n_nodes, const char *const names[], const char *const ips[],
                           const char *state_dir, ch_error *err)
{
    if (n_nodes == 0 || n_nodes > CH_TESTBED_MAX_NODES || !names || !ips) {
        snprintf(err->msg, sizeof err->msg, "testbed: expected 1-%d nodes with names and ips, got %zu",
                 CH_TESTBED_MAX_NODES, n_nodes);
        return NULL;
    }
    ch_testbed *tb = calloc(1, sizeof *tb);
    if (!tb || !(tb->nodes = calloc(n_nodes, sizeof *tb->nodes))) {
        free(tb);
        snprintf(err->msg, sizeof err->msg, "testbed: out of memory");
        return NULL;
    }
    tb->n = n_nodes;
    snprintf(tb->state_dir, sizeof tb->state_dir, "%s", state_dir ? state_dir : CH_TESTBED_STATE_DIR);
    if (fill_nodes(tb, names, ips, err) < 0 || choose_prefix(tb, prefix, err) < 0) {
        free(tb->nodes);
        free(tb);
        return NULL;
    }
    if (build(tb, err) < 0) {
        ch_error ignored;
        ch_testbed_destroy(tb, &ignored); /* keep the first error */
        return NULL;
    }
    return tb;
}

/* ---------- use ---------- */

const char *ch_testbed_prefix(const ch_testbed *tb) { return tb->prefix; }
size_t ch_testbed_n_nodes(const ch_testbed *tb) { return tb->n; }

int ch_testbed_node(const ch_testbed *tb, const char *name)
{
    for (size_t i = 0; name && i < tb->n; i++)
        if (!strcmp(tb->nodes[i].name, name))
            return (int)i;
    return -1;
}

static const tb_node *node_at(const ch_testbed *tb, int node)
{
    return node >= 0 && (size_t)node < tb->n ? &tb->nodes[node] : NULL;
}

const char *ch_testbed_ns_path(const ch_testbed *tb, int node)
{
    const tb_node *nd = node_at(tb, node);
    return nd ? nd->ns_path : NULL;
}

const char *ch_testbed_iface(const ch_testbed *tb, int node)
{
    const tb_node *nd = node_at(tb, node);
    return nd ? nd->iface : NULL;
}

const char *ch_testbed_ip(const ch_testbed *tb, int node)
{
    const tb_node *nd = node_at(tb, node);
    return nd ? nd->ip : NULL;
}

int ch_testbed_link_set(ch_testbed *tb, int node, bool up, ch_error *err)
{
    const tb_node *nd = node_at(tb, node);
    if (!nd)
        return fail_errno(err, EINVAL, "no such node", "");
    struct nl_sock *sk;
    int rc = nl_open_in(nd->ns_path, &sk, err);
    if (rc < 0)
        return rc;
    rc = link_set_up(sk, nd->iface, up, err);
    nl_socket_free(sk);
    return rc;
}

int ch_testbed_wait_carrier(ch_testbed *tb, int node, int timeout_ms, ch_error *err)
{
    const tb_node *nd = node_at(tb, node);
    if (!nd)
        return fail_errno(err, EINVAL, "no such node", "");
    struct nl_sock *sk;
    int rc = nl_open_in(nd->ns_path, &sk, err);
    if (rc < 0)
        return rc;
    rc = -ETIMEDOUT;
    for (int waited = 0; rc == -ETIMEDOUT; waited += 10) {
        int ifindex;
        unsigned flags = 0;
        int nle = link_ifindex(sk, nd->iface, &ifindex, &flags);
        if (nle < 0)
            rc = fail_nl(err, nle, "reading link", nd->iface);
        else if (flags & IFF_LOWER_UP)
            rc = 0;
        else if (waited >= timeout_ms)
            break;
        else
            nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    if (rc == -ETIMEDOUT)
        snprintf(err->msg, sizeof err->msg, "testbed: %s: no carrier after %d ms", nd->iface, timeout_ms);
    nl_socket_free(sk);
    return rc;
}

int ch_testbed_exec_in(const ch_testbed *tb, int node, int (*fn)(void *arg), void *arg)
{
    const tb_node *nd = node_at(tb, node);
    if (!nd || !fn)
        return -EINVAL;
    int back, rc = ns_enter(nd->ns_path, &back);
    if (rc < 0)
        return rc;
    int result = fn(arg);
    rc = ns_leave(back);
    return rc < 0 ? rc : result;
}

/* ---------- teardown ---------- */

typedef struct ns_id { dev_t dev; ino_t ino; } ns_id;

/* SIGKILL every process whose network namespace is one of ids (what
 * `ip netns pids` would list), never this process. Returns how many. */
static int kill_ns_processes(const ns_id *ids, size_t n_ids)
{
    DIR *d = opendir("/proc");
    if (!d)
        return 0;
    int killed = 0;
    pid_t self = getpid();
    for (struct dirent *de; (de = readdir(d));) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 0 || pid == self)
            continue;
        char path[64];
        struct stat st;
        snprintf(path, sizeof path, "/proc/%ld/ns/net", pid);
        if (stat(path, &st) != 0)
            continue;
        for (size_t i = 0; i < n_ids; i++) {
            if (st.st_dev == ids[i].dev && st.st_ino == ids[i].ino) {
                killed += kill((pid_t)pid, SIGKILL) == 0;
                break;
            }
        }
    }
    closedir(d);
    return killed;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Names of /run/netns/<prefix>-* (sorted), or -errno. */
static int list_namespaces(const char *prefix, char ***out)
{
    *out = NULL;
    DIR *d = opendir(CH_TESTBED_NETNS_DIR);
    if (!d)
        return errno == ENOENT ? 0 : -errno;
    size_t len = strlen(prefix);
    int n = 0, rc = 0;
    char **names = NULL;
    for (struct dirent *de; rc == 0 && (de = readdir(d));) {
        if (strncmp(de->d_name, prefix, len) || de->d_name[len] != '-')
            continue;
        char **grown = realloc(names, (size_t)(n + 1) * sizeof *names);
        if (!grown || !(grown[n] = strdup(de->d_name))) {
            names = grown ? grown : names;
            rc = -ENOMEM;
            break;
        }
        names = grown;
        n++;
    }
    closedir(d);
    if (rc < 0) {
        for (int i = 0; i < n; i++)
            free(names[i]);
        free(names);
        return rc;
    }
    if (n)
        qsort(names, (size_t)n, sizeof *names, cmp_str);
    *out = names;
    return n;
}

int ch_testbed_remove(const char *state_dir, const char *prefix, json_t *report, ch_error *err)
{
    if (!ch_testbed_prefix_valid(prefix)) {
        snprintf(err->msg, sizeof err->msg, "testbed: prefix \"%s\": not a rift prefix", prefix ? prefix : "");
        return -EINVAL;
    }
    char **names;
    int n = list_namespaces(prefix, &names);
    if (n < 0)
        return fail_errno(err, n, "listing", CH_TESTBED_NETNS_DIR);
    ns_id *ids = calloc((size_t)n + 1, sizeof *ids);
    int rc = ids ? 0 : fail_errno(err, ENOMEM, "removing", prefix);
    size_t n_ids = 0;
    char path[PATH_MAX];
    for (int i = 0; ids && i < n; i++) {
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", CH_TESTBED_NETNS_DIR, names[i]);
        if (ns_pinned(path) && stat(path, &st) == 0)
            ids[n_ids++] = (ns_id){st.st_dev, st.st_ino};
    }
    /* Processes first: they pin the namespaces and may hold the veths. */
    int killed = ids ? kill_ns_processes(ids, n_ids) : 0;
    json_t *removed = json_array();
    bool all_unpinned = ids != NULL;
    for (int i = 0; ids && i < n; i++) {
        ch_error e = {{0}};
        snprintf(path, sizeof path, "%s/%s", CH_TESTBED_NETNS_DIR, names[i]);
        int r = ns_pinned(path) ? flush_links(path, &e) : 0;
        int u = ns_unpin(path);
        if (u < 0 && r == 0)
            r = fail_errno(&e, u, "removing namespace", path);
        if (r < 0 && rc == 0) {
            rc = r;
            *err = e;
        }
        all_unpinned = all_unpinned && u == 0;
        if (u == 0 && removed)
            json_array_append_new(removed, json_string(names[i]));
    }
    /* The state file goes last, and only when no namespace is left: until
     * then it is what lets `rift clean` find and retry the rest. */
    snprintf(path, sizeof path, "%s/%s.json", state_dir ? state_dir : CH_TESTBED_STATE_DIR, prefix);
    if (all_unpinned && unlink(path) != 0 && errno != ENOENT && rc == 0)
        rc = fail_errno(err, errno, "removing state file", path);
    if (report && removed) {
        json_object_set(report, "namespaces", removed);
        json_object_set_new(report, "processes_killed", json_integer(killed));
    }
    json_decref(removed);
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    free(ids);
    return rc;
}

int ch_testbed_teardown(ch_testbed *tb, ch_error *err)
{
    return tb ? ch_testbed_remove(tb->state_dir, tb->prefix, NULL, err) : 0;
}

int ch_testbed_destroy(ch_testbed *tb, ch_error *err)
{
    if (!tb)
        return 0;
    int rc = ch_testbed_teardown(tb, err);
    free(tb->nodes);
    free(tb);
    return rc;
}
