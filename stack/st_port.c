/* st_port.c — one DPDK port with one queue pair, as the LCD NIC model allows.
 *
 * Start-up follows DPDK's l2fwd: pool, configure, queue setup, start. The
 * testbed's vdevs are created at run time with rte_vdev_init (not with --vdev
 * on the EAL command line) so that a failed af_xdp setup can be undone and
 * af_packet tried on the same interface without restarting the EAL. */
#include "st_port.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <dirent.h>
#include <sys/socket.h>

#include <rte_bus_vdev.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_pcapng.h>
#include <rte_thash.h>

#include "st_wire.h"

#define PORT_MBUFS_DEFAULT 4095u   /* 2^n - 1: the ring-backed pool's sweet spot */
#define PORT_MBUF_CACHE 128u
#define PORT_TX_RETRIES 4          /* then the frames are dropped: never spin on a full ring */
#define PORT_CAP_MBUFS 1023u
/* af_packet ring geometry: 2 KiB frames hold any 1514-byte frame; 512 of them. */
#define PORT_AFP_ARGS "qpairs=1,qdisc_bypass=1,blocksz=4096,framesz=2048,framecnt=512"
/* busy_budget=0: with preferred busy polling every empty rx_burst costs a
 * recvfrom (~1.5 µs measured); without it an empty burst costs ~10 ns, which
 * is what adaptive polling needs. */
#define PORT_AFXDP_ARGS "start_queue=0,queue_count=1,busy_budget=0"

struct st_port {
    uint16_t port_id;
    uint8_t pmd;
    char vdev[32];                 /* "" when the port came from the EAL arguments */
    char driver[32];
    uint8_t mac[6];
    uint16_t n_rxq;
    int rx_fd;
    struct rte_mempool *pool;
    struct rte_mbuf *rx[ST_PORT_BURST];
    unsigned n_rx;
    struct rte_mbuf *tx[ST_PORT_BURST];
    unsigned n_tx;
    struct rte_mbuf *tx_cur;       /* handed out by st_port_tx_slot, not committed */
    uint64_t tx_dropped, tx_no_mbuf, rx_multiseg;
    /* capture */
    rte_pcapng_t *cap;
    struct rte_mempool *cap_pool;
    uint64_t cap_packets, cap_dropped;
    /* RSS (only with several RX queues) */
    uint8_t rss_key[ST_PORT_RSS_KEY_LEN];
    uint16_t reta[ST_PORT_RETA_MAX];
    uint16_t reta_size;
};

static void say(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static const char *const pmd_names[] = {"auto", "af_xdp", "af_packet", "eal"};

int st_port_pmd_parse(const char *s)
{
    for (int i = 0; i < (int)(sizeof pmd_names / sizeof pmd_names[0]); i++)
        if (s && strcmp(s, pmd_names[i]) == 0)
            return i;
    return -1;
}

const char *st_port_pmd_name(int pmd)
{
    return pmd >= 0 && pmd < (int)(sizeof pmd_names / sizeof pmd_names[0]) ? pmd_names[pmd] : "?";
}

int st_port_eal_init(int argc, char **argv, char *err, size_t errlen)
{
    if (rte_eal_init(argc, argv) < 0) {
        int e = rte_errno ? rte_errno : EINVAL;
        say(err, errlen, "EAL initialisation failed: %s", rte_strerror(e));
        return -e;
    }
    return 0;
}

void st_port_eal_cleanup(void)
{
    /* The EAL leaves its (empty, with --no-shconf) runtime directory behind;
     * one per process adds up when the controller starts many stacks. */
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", rte_eal_get_runtime_dir());
    rte_eal_cleanup();
    if (dir[0])
        (void)rmdir(dir);
}

/* ------------------------------------------------------------------ open */

static int port_setup(st_port *p, const st_port_config *c, char *err, size_t errlen)
{
    struct rte_eth_dev_info info;
    int rc = rte_eth_dev_info_get(p->port_id, &info);
    if (rc) {
        say(err, errlen, "port %u: dev_info: %s", p->port_id, rte_strerror(-rc));
        return rc;
    }
    snprintf(p->driver, sizeof p->driver, "%s", info.driver_name ? info.driver_name : "?");
    struct rte_eth_conf conf;
    memset(&conf, 0, sizeof conf); /* no offloads, no RSS, no flow rules: LCD */
    conf.rxmode.mtu = ST_WIRE_MTU;
    if (info.max_mtu && info.max_mtu < ST_WIRE_MTU)
        conf.rxmode.mtu = info.max_mtu;
    rc = rte_eth_dev_configure(p->port_id, 1, 1, &conf);
    if (rc) {
        say(err, errlen, "%s: configure: %s", p->driver, rte_strerror(-rc));
        return rc;
    }
    p->n_rxq = 1;
    uint16_t nrx = c->n_desc ? c->n_desc : ST_PORT_DESC_MAX, ntx = nrx;
    rc = rte_eth_dev_adjust_nb_rx_tx_desc(p->port_id, &nrx, &ntx);
    if (!rc)
        rc = rte_eth_rx_queue_setup(p->port_id, 0, nrx, (unsigned)rte_eth_dev_socket_id(p->port_id), NULL,
                                    p->pool);
    if (!rc)
        rc = rte_eth_tx_queue_setup(p->port_id, 0, ntx, (unsigned)rte_eth_dev_socket_id(p->port_id), NULL);
    if (rc) {
        say(err, errlen, "%s: queue setup (%u/%u descriptors): %s", p->driver, nrx, ntx, rte_strerror(-rc));
        return rc;
    }
    rc = rte_eth_dev_start(p->port_id);
    if (rc) {
        say(err, errlen, "%s: start: %s", p->driver, rte_strerror(-rc));
        return rc;
    }
    /* Best effort: the engine filters MACs in software anyway. */
    if (c->promiscuous)
        (void)rte_eth_promiscuous_enable(p->port_id);
    struct rte_ether_addr mac;
    rc = rte_eth_macaddr_get(p->port_id, &mac);
    if (rc) {
        say(err, errlen, "%s: no MAC address: %s", p->driver, rte_strerror(-rc));
        return rc;
    }
    memcpy(p->mac, mac.addr_bytes, 6);
    return 0;
}

static void port_teardown(st_port *p)
{
    (void)rte_eth_dev_stop(p->port_id);
    (void)rte_eth_dev_close(p->port_id);
    if (p->vdev[0])
        (void)rte_vdev_uninit(p->vdev);
    p->vdev[0] = 0;
}

/* The PMDs keep their socket to themselves; find it among our fds by its
 * address family. One port per process, one queue: there is exactly one. */
static int find_pmd_socket(int domain)
{
    DIR *dir = opendir("/proc/self/fd");
    if (!dir)
        return -1;
    int found = -1;
    for (struct dirent *de; found < 0 && (de = readdir(dir));) {
        char *end;
        long fd = strtol(de->d_name, &end, 10);
        if (*end || fd < 0 || fd == dirfd(dir))
            continue;
        int dom = 0;
        socklen_t len = sizeof dom;
        if (getsockopt((int)fd, SOL_SOCKET, SO_DOMAIN, &dom, &len) == 0 && dom == domain)
            found = (int)fd;
    }
    closedir(dir);
    return found;
}

static int open_vdev(st_port *p, const st_port_config *c, uint8_t pmd, char *err, size_t errlen)
{
    const char *name = pmd == ST_PMD_AF_XDP ? "net_af_xdp0" : "net_af_packet0";
    char args[160];
    snprintf(args, sizeof args, "iface=%s,%s", c->iface, pmd == ST_PMD_AF_XDP ? PORT_AFXDP_ARGS : PORT_AFP_ARGS);
    int rc = rte_vdev_init(name, args);
    if (rc) {
        say(err, errlen, "%s on %s: vdev init failed (%s)", name, c->iface, rte_strerror(rc < 0 ? -rc : EINVAL));
        return rc < 0 ? rc : -EINVAL;
    }
    snprintf(p->vdev, sizeof p->vdev, "%s", name);
    rc = rte_eth_dev_get_port_by_name(name, &p->port_id);
    if (!rc)
        rc = port_setup(p, c, err, errlen);
    else
        say(err, errlen, "%s: no port after vdev init", name);
    if (rc) {
        port_teardown(p);
        return rc;
    }
    p->pmd = pmd;
    p->rx_fd = find_pmd_socket(pmd == ST_PMD_AF_XDP ? AF_XDP : AF_PACKET);
    return 0;
}

static int open_eal_port(st_port *p, const st_port_config *c, char *err, size_t errlen)
{
    uint16_t id;
    RTE_ETH_FOREACH_DEV(id)
    {
        p->port_id = id;
        p->pmd = ST_PMD_EAL;
        return port_setup(p, c, err, errlen);
    }
    say(err, errlen, "pmd eal: the EAL arguments created no port (pass a device with -a or --vdev)");
    return -ENODEV;
}

st_port *st_port_open(const st_port_config *c, char *err, size_t errlen)
{
    if (c->pmd != ST_PMD_EAL && !c->iface[0]) {
        say(err, errlen, "pmd %s needs an interface", st_port_pmd_name(c->pmd));
        return NULL;
    }
    if (c->n_desc && (c->n_desc < 64 || c->n_desc > ST_PORT_DESC_MAX)) {
        say(err, errlen, "n_desc: expected 64..%u, got %u", ST_PORT_DESC_MAX, c->n_desc);
        return NULL;
    }
    st_port *p = calloc(1, sizeof *p);
    if (!p) {
        say(err, errlen, "out of memory");
        return NULL;
    }
    p->rx_fd = -1;
    p->pool = rte_pktmbuf_pool_create("rf_mbufs", c->n_mbufs ? c->n_mbufs : PORT_MBUFS_DEFAULT, PORT_MBUF_CACHE, 0,
                                      RTE_MBUF_DEFAULT_BUF_SIZE, rte_socket_id());
    if (!p->pool) {
        say(err, errlen, "mbuf pool: %s", rte_strerror(rte_errno));
        free(p);
        return NULL;
    }
    int rc;
    if (c->pmd == ST_PMD_EAL) {
        rc = open_eal_port(p, c, err, errlen);
    } else if (c->pmd == ST_PMD_AUTO) {
        char why[256] = "";
        rc = open_vdev(p, c, ST_PMD_AF_XDP, why, sizeof why);
        if (rc) {
            fprintf(stderr, "rift-stackd: af_xdp unavailable (%s); falling back to af_packet\n", why);
            rc = open_vdev(p, c, ST_PMD_AF_PACKET, err, errlen);
        }
    } else {
        rc = open_vdev(p, c, c->pmd, err, errlen);
    }
    if (rc) {
        rte_mempool_free(p->pool);
        free(p);
        return NULL;
    }
    return p;
}

void st_port_close(st_port *p)
{
    if (!p)
        return;
    st_port_capture_stop(p);
    st_port_rx_release(p);
    if (p->tx_cur)
        rte_pktmbuf_free(p->tx_cur);
    (void)st_port_tx_flush(p);
    port_teardown(p);
    rte_mempool_free(p->cap_pool);
    rte_mempool_free(p->pool);
    free(p);
}

int st_port_pmd_used(const st_port *p)
{
    return p->pmd;
}

const char *st_port_driver(const st_port *p)
{
    return p->driver;
}

void st_port_mac(const st_port *p, uint8_t mac[6])
{
    memcpy(mac, p->mac, 6);
}

/* ------------------------------------------------------------------ capture */

static void capture(st_port *p, struct rte_mbuf **m, unsigned n, enum rte_pcapng_direction dir)
{
    struct rte_mbuf *copies[ST_PORT_BURST];
    unsigned k = 0;
    uint64_t now = rte_get_tsc_cycles();
    for (unsigned i = 0; i < n; i++) {
        struct rte_mbuf *c = rte_pcapng_copy(p->port_id, 0, m[i], p->cap_pool, UINT32_MAX, now, dir);
        if (c)
            copies[k++] = c;
        else
            p->cap_dropped++;
    }
    if (!k)
        return;
    if (rte_pcapng_write_packets(p->cap, copies, (uint16_t)k) < 0)
        p->cap_dropped += k; /* the copies are freed either way */
    else
        p->cap_packets += k;
}

int st_port_capture_start(st_port *p, const char *path, char *err, size_t errlen)
{
    if (p->cap) {
        say(err, errlen, "path: a capture is already running");
        return -EBUSY;
    }
    if (!p->cap_pool) {
        p->cap_pool = rte_pktmbuf_pool_create("rf_pcapng", PORT_CAP_MBUFS, 0, 0,
                                              (uint16_t)rte_pcapng_mbuf_size(ST_WIRE_FRAME_MAX), rte_socket_id());
        if (!p->cap_pool) {
            say(err, errlen, "capture pool: %s", rte_strerror(rte_errno));
            return -ENOMEM;
        }
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        say(err, errlen, "path: cannot create %s: %s", path, strerror(e));
        return -e;
    }
    p->cap = rte_pcapng_fdopen(fd, "Linux", NULL, "rift-stackd", NULL);
    if (!p->cap) {
        int e = rte_errno ? rte_errno : EIO;
        close(fd);
        say(err, errlen, "path: pcapng header on %s: %s", path, rte_strerror(e));
        return -e;
    }
    p->cap_packets = p->cap_dropped = 0;
    return 0;
}

void st_port_capture_stop(st_port *p)
{
    if (!p->cap)
        return;
    rte_pcapng_close(p->cap); /* closes the fd */
    p->cap = NULL;
}

bool st_port_capturing(const st_port *p)
{
    return p->cap != NULL;
}

/* ------------------------------------------------------------------ rx / tx */

unsigned st_port_rx_burst(st_port *p, const uint8_t **frames, uint16_t *lens)
{
    st_port_rx_release(p);
    struct rte_mbuf *m[ST_PORT_BURST];
    uint16_t n = rte_eth_rx_burst(p->port_id, 0, m, ST_PORT_BURST);
    if (n && p->cap)
        capture(p, m, n, RTE_PCAPNG_DIRECTION_IN);
    for (uint16_t i = 0; i < n; i++) {
        if (m[i]->nb_segs != 1) { /* frames are at most 1514 bytes: one buffer */
            p->rx_multiseg++;
            rte_pktmbuf_free(m[i]);
            continue;
        }
        frames[p->n_rx] = rte_pktmbuf_mtod(m[i], const uint8_t *);
        lens[p->n_rx] = m[i]->data_len;
        p->rx[p->n_rx++] = m[i];
    }
    return p->n_rx;
}

void st_port_rx_release(st_port *p)
{
    if (p->n_rx)
        rte_pktmbuf_free_bulk(p->rx, p->n_rx);
    p->n_rx = 0;
}

uint8_t *st_port_tx_slot(st_port *p)
{
    if (p->n_tx == ST_PORT_BURST)
        (void)st_port_tx_flush(p);
    if (!p->tx_cur) {
        p->tx_cur = rte_pktmbuf_alloc(p->pool);
        if (!p->tx_cur) {
            p->tx_no_mbuf++;
            return NULL;
        }
    }
    if (rte_pktmbuf_tailroom(p->tx_cur) < ST_WIRE_FRAME_MAX) /* cannot happen with default buffers */
        return NULL;
    return rte_pktmbuf_mtod(p->tx_cur, uint8_t *);
}

void st_port_tx_commit(st_port *p, uint16_t len)
{
    struct rte_mbuf *m = p->tx_cur;
    if (!m || len == 0 || len > ST_WIRE_FRAME_MAX)
        return; /* the mbuf stays as tx_cur for the next slot */
    p->tx_cur = NULL;
    m->data_len = len;
    m->pkt_len = len;
    p->tx[p->n_tx++] = m;
}

unsigned st_port_tx_flush(st_port *p)
{
    unsigned sent = 0;
    for (int tries = 0; sent < p->n_tx && tries < PORT_TX_RETRIES; tries++)
        sent += rte_eth_tx_burst(p->port_id, 0, p->tx + sent, (uint16_t)(p->n_tx - sent));
    if (p->cap && sent)
        capture(p, p->tx, sent, RTE_PCAPNG_DIRECTION_OUT);
    if (sent < p->n_tx) {
        p->tx_dropped += p->n_tx - sent;
        rte_pktmbuf_free_bulk(p->tx + sent, p->n_tx - sent);
    }
    p->n_tx = 0;
    return sent;
}

unsigned st_port_tx_pending(const st_port *p)
{
    return p->n_tx;
}

int st_port_rx_fd(const st_port *p)
{
    return p->rx_fd;
}

void st_port_get_stats(st_port *p, st_port_stats *out)
{
    struct rte_eth_stats s;
    memset(out, 0, sizeof *out);
    if (rte_eth_stats_get(p->port_id, &s) == 0) {
        out->rx_packets = s.ipackets;
        out->rx_bytes = s.ibytes;
        out->tx_packets = s.opackets;
        out->tx_bytes = s.obytes;
        out->rx_missed = s.imissed;
        out->rx_errors = s.ierrors;
        out->tx_errors = s.oerrors;
        out->rx_nombuf = s.rx_nombuf;
    }
    out->tx_dropped = p->tx_dropped;
    out->tx_no_mbuf = p->tx_no_mbuf;
    out->rx_multiseg = p->rx_multiseg;
    out->capture_packets = p->cap_packets;
    out->capture_dropped = p->cap_dropped;
}

/* ------------------------------------------------------------------ RSS */

uint16_t st_port_rss_pick(const uint8_t key[ST_PORT_RSS_KEY_LEN], const uint16_t *reta, uint16_t reta_size,
                          uint32_t local_ip, uint32_t remote_ip, uint16_t remote_port, uint16_t lo, uint16_t hi)
{
    if (!reta_size || lo == 0 || lo > hi)
        return 0;
    /* rte_softrss reads the key as big-endian words; keep it aligned. */
    uint32_t key_words[ST_PORT_RSS_KEY_LEN / 4];
    memcpy(key_words, key, sizeof key_words);
    for (uint32_t port = lo; port <= hi; port++) {
        /* The reply tuple as the NIC hashes it: rte_ipv4_tuple in host order. */
        uint32_t tuple[RTE_THASH_V4_L4_LEN] = {remote_ip, local_ip, (uint32_t)remote_port << 16 | port};
        uint32_t h = rte_softrss(tuple, RTE_THASH_V4_L4_LEN, (const uint8_t *)key_words);
        if (reta[h % reta_size] == 0)
            return (uint16_t)port;
    }
    return 0;
}

uint16_t st_port_rss_src_port(const st_port *p, uint32_t local_ip, uint32_t remote_ip, uint16_t remote_port,
                              uint16_t lo, uint16_t hi)
{
    /* One RX queue: RSS is off and every tuple lands on queue 0. Ports are
     * configured with one queue (LCD), so this is the path taken today; the
     * key and RETA would be read at open time if a port ever needed more. */
    if (p->n_rxq <= 1 || !p->reta_size)
        return 0;
    return st_port_rss_pick(p->rss_key, p->reta, p->reta_size, local_ip, remote_ip, remote_port, lo, hi);
}
