/* st_stackd.c — the rift-stackd engine (see st_stackd.h for the data path).
 *
 * Everything is bounded and allocated at start-up except impairment-held
 * frames (bounded by count and bytes) and what the transport and channel
 * server allocate under their own bounds. Sections:
 *   configuration, neighbours (ARP), held frames (impairment delays),
 *   TX path, RX path, flows <-> applications, control commands, the loop. */
#include "st_stackd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "../common/rift_rng.h"
#include "rift_stack.h"
#include "st_chan_server.h"
#include "st_ctl.h"
#include "st_impair.h"
#include "st_wire.h"

#define NEIGH_MAX 64
#define NEIGH_QUEUE 8                /* frames waiting per unresolved neighbour */
#define NEIGH_RETRY_US 50000u
#define NEIGH_TRIES 20u              /* then the neighbour is given up (1 s) */
#define HELD_MAX 65536u              /* impairment-delayed frames */
#define HELD_BYTES_MAX (64u << 20)
#define CHAN_BUDGET 256u             /* app requests per loop iteration */
#define SPIN_US_DEFAULT 20u          /* adaptive: keep polling this long after the last work (short: cores are shared) */
#define SPIN_US_MAX 100000u
#define SLEEP_MIN_US 50u
#define SLEEP_MAX_US 1000u
#define CTL_EVERY_US 1000u           /* control socket polled at least this often */
#define FLOWS_LIST_MAX 1024
#define APP_HANDLE_MAX 0x7fffffffu       /* rs_connect handles; accepted flows get the top bit */

/* ================================================================== configuration */

static int cfg_fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int cfg_fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

void st_stackd_config_default(st_stackd_config *c)
{
    memset(c, 0, sizeof *c);
    c->netmask_bits = 24;
    c->pmd = ST_PMD_AUTO;
    c->eal_defaults = true;
    c->polling = ST_POLL_ADAPTIVE;
    c->spin_us = SPIN_US_DEFAULT;
    c->core = -1;
    st_config_default(&c->transport);
}

/* st_config fields by name, so "transport" in the config mirrors the struct. */
#define TP_FIELD(name) {#name, offsetof(st_config, name), sizeof(((st_config *)0)->name)}
static const struct {
    const char *name;
    size_t off;
    size_t size;
} tp_fields[] = {
    TP_FIELD(max_flows),      TP_FIELD(max_msg_bytes),  TP_FIELD(max_inflight),   TP_FIELD(rx_window),
    TP_FIELD(tx_queue_msgs),  TP_FIELD(tx_queue_bytes), TP_FIELD(tx_mem_bytes),   TP_FIELD(rx_mem_bytes),
    TP_FIELD(cwnd_init),      TP_FIELD(rto_initial_us), TP_FIELD(rto_min_us),     TP_FIELD(rto_max_us),
    TP_FIELD(max_rto_failures), TP_FIELD(ack_delay_us), TP_FIELD(ack_every),      TP_FIELD(dupthresh),
    TP_FIELD(linger_us),      TP_FIELD(ephemeral_lo),   TP_FIELD(ephemeral_hi),   TP_FIELD(cwnd_min),
    TP_FIELD(rto_linear),
};
#undef TP_FIELD

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    if (!s || !*s || *s == '-' || *s == '+')
        return -EINVAL;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

static int set_transport(st_config *t, const char *name, const char *value, char *err, size_t errlen)
{
    for (size_t i = 0; i < sizeof tp_fields / sizeof tp_fields[0]; i++) {
        if (strcmp(name, tp_fields[i].name))
            continue;
        uint64_t max = tp_fields[i].size == 8 ? UINT64_MAX : (1ull << (8 * tp_fields[i].size)) - 1, v;
        if (parse_u64(value, max, &v))
            return cfg_fail(err, errlen, "transport.%s: expected an integer in [0,%llu]", name,
                            (unsigned long long)max);
        uint8_t *p = (uint8_t *)t + tp_fields[i].off;
        if (tp_fields[i].size == 8)
            *(uint64_t *)(void *)p = v;
        else if (tp_fields[i].size == 4)
            *(uint32_t *)(void *)p = (uint32_t)v;
        else
            *(uint16_t *)(void *)p = (uint16_t)v;
        return 0;
    }
    return cfg_fail(err, errlen, "transport.%.64s: unknown field", name);
}

static int set_path(char *dst, size_t cap, const char *key, const char *value, char *err, size_t errlen)
{
    if (!*value || strlen(value) >= cap)
        return cfg_fail(err, errlen, "%s: expected a path of 1..%zu bytes", key, cap - 1);
    strcpy(dst, value);
    return 0;
}

static int set_mac(st_stackd_config *c, const char *value, char *err, size_t errlen)
{
    unsigned m[6];
    char tail;
    if (sscanf(value, "%2x:%2x:%2x:%2x:%2x:%2x%c", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5], &tail) != 6 ||
        (m[0] & 1) || !(m[0] | m[1] | m[2] | m[3] | m[4] | m[5]))
        return cfg_fail(err, errlen, "mac: expected a unicast MAC like 02:00:00:00:00:01");
    for (int i = 0; i < 6; i++)
        c->mac[i] = (uint8_t)m[i];
    c->mac_set = true;
    return 0;
}

static int set_bool(bool *dst, const char *key, const char *value, char *err, size_t errlen)
{
    if (!strcmp(value, "true") || !strcmp(value, "1"))
        *dst = true;
    else if (!strcmp(value, "false") || !strcmp(value, "0"))
        *dst = false;
    else
        return cfg_fail(err, errlen, "%s: expected true or false", key);
    return 0;
}

static int set_ip(st_stackd_config *c, const char *value, char *err, size_t errlen)
{
    struct in_addr a;
    uint32_t ip = inet_pton(AF_INET, value, &a) == 1 ? ntohl(a.s_addr) : 0;
    if (!ip || ip == 0xffffffffu || (ip >> 28) == 0xe || (ip >> 24) == 127)
        return cfg_fail(err, errlen, "ip: expected a unicast IPv4 address like 198.18.0.2");
    c->ip = ip;
    return 0;
}

int st_stackd_config_set(st_stackd_config *c, const char *key, const char *value, char *err, size_t errlen)
{
    uint64_t v;
    if (!value)
        return cfg_fail(err, errlen, "%s: missing value", key);
    if (!strncmp(key, "transport.", 10))
        return set_transport(&c->transport, key + 10, value, err, errlen);
    if (!strcmp(key, "ip"))
        return set_ip(c, value, err, errlen);
    if (!strcmp(key, "netmask_bits")) {
        if (parse_u64(value, 32, &v) || v < 8)
            return cfg_fail(err, errlen, "netmask_bits: expected an integer in [8,32]");
        c->netmask_bits = (uint8_t)v;
        return 0;
    }
    if (!strcmp(key, "iface")) {
        if (!*value || strlen(value) >= sizeof c->iface || strchr(value, ','))
            return cfg_fail(err, errlen, "iface: expected an interface name of 1..15 bytes");
        strcpy(c->iface, value);
        return 0;
    }
    if (!strcmp(key, "mac"))
        return set_mac(c, value, err, errlen);
    if (!strcmp(key, "pmd")) {
        int p = st_port_pmd_parse(value);
        if (p < 0)
            return cfg_fail(err, errlen, "pmd: expected \"auto\", \"af_xdp\", \"af_packet\" or \"eal\"");
        c->pmd = (uint8_t)p;
        return 0;
    }
    if (!strcmp(key, "eal")) {
        if (c->n_eal == ST_STACKD_EAL_MAX || strlen(value) >= ST_STACKD_ARG_MAX)
            return cfg_fail(err, errlen, "eal: at most %d arguments of < %d bytes", ST_STACKD_EAL_MAX,
                            ST_STACKD_ARG_MAX);
        strcpy(c->eal[c->n_eal++], value);
        return 0;
    }
    if (!strcmp(key, "eal_defaults"))
        return set_bool(&c->eal_defaults, key, value, err, errlen);
    if (!strcmp(key, "socket"))
        return set_path(c->sock_path, sizeof c->sock_path, key, value, err, errlen);
    if (!strcmp(key, "control"))
        return set_path(c->ctl_path, sizeof c->ctl_path, key, value, err, errlen);
    if (!strcmp(key, "log"))
        return set_path(c->log_path, sizeof c->log_path, key, value, err, errlen);
    if (!strcmp(key, "polling")) {
        if (strcmp(value, "adaptive") && strcmp(value, "busy"))
            return cfg_fail(err, errlen, "polling: expected \"adaptive\" or \"busy\"");
        c->polling = strcmp(value, "busy") ? ST_POLL_ADAPTIVE : ST_POLL_BUSY;
        return 0;
    }
    if (!strcmp(key, "spin_us")) {
        if (parse_u64(value, SPIN_US_MAX, &v))
            return cfg_fail(err, errlen, "spin_us: expected microseconds in [0,%u]", SPIN_US_MAX);
        c->spin_us = (uint32_t)v;
        return 0;
    }
    if (!strcmp(key, "core")) {
        if (!strcmp(value, "-1") || !strcmp(value, "any")) {
            c->core = -1;
            return 0;
        }
        if (parse_u64(value, 1023, &v))
            return cfg_fail(err, errlen, "core: expected a CPU number in [0,1023] (or -1: any)");
        c->core = (int)v;
        return 0;
    }
    if (!strcmp(key, "seed")) {
        if (parse_u64(value, UINT64_MAX, &v))
            return cfg_fail(err, errlen, "seed: expected a non-negative integer");
        c->seed = v;
        return 0;
    }
    return cfg_fail(err, errlen, "%.64s: unknown field", key);
}

/* A JSON scalar as the string st_stackd_config_set takes. */
static int json_scalar(json_t *v, char *buf, size_t cap)
{
    if (json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v))
        snprintf(buf, cap, "%s", json_string_value(v));
    else if (json_is_integer(v))
        snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
    else if (json_is_boolean(v))
        snprintf(buf, cap, "%s", json_is_true(v) ? "true" : "false");
    else
        return -EINVAL;
    return 0;
}

static int config_json_field(st_stackd_config *c, const char *k, json_t *v, char *err, size_t errlen)
{
    char buf[ST_STACKD_PATH_MAX * 4 + 8], key[96];
    if (!strcmp(k, "transport")) {
        if (!json_is_object(v))
            return cfg_fail(err, errlen, "transport: expected an object of transport settings");
        const char *tk;
        json_t *tv;
        json_object_foreach(v, tk, tv)
        {
            snprintf(key, sizeof key, "transport.%.80s", tk);
            if (!json_is_integer(tv) || json_scalar(tv, buf, sizeof buf))
                return cfg_fail(err, errlen, "%s: expected an integer", key);
            if (st_stackd_config_set(c, key, buf, err, errlen))
                return -EINVAL;
        }
        return 0;
    }
    if (!strcmp(k, "eal")) {
        size_t i;
        json_t *a;
        if (!json_is_array(v))
            return cfg_fail(err, errlen, "eal: expected an array of strings");
        c->n_eal = 0;
        json_array_foreach(v, i, a)
        {
            if (!json_is_string(a) || json_scalar(a, buf, sizeof buf))
                return cfg_fail(err, errlen, "eal[%zu]: expected a string", i);
            if (st_stackd_config_set(c, "eal", buf, err, errlen))
                return -EINVAL;
        }
        return 0;
    }
    if (json_is_null(v) && !strcmp(k, "core"))
        return st_stackd_config_set(c, k, "-1", err, errlen);
    if (json_scalar(v, buf, sizeof buf))
        return cfg_fail(err, errlen, "%.64s: expected a string, integer or boolean", k);
    return st_stackd_config_set(c, k, buf, err, errlen);
}

int st_stackd_config_json(st_stackd_config *c, const char *text, size_t len, const char *file, char *err,
                          size_t errlen)
{
    json_error_t je;
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!o)
        return cfg_fail(err, errlen, "%s:%d:%d: not JSON: %s", file, je.line, je.column, je.text);
    int rc = 0;
    if (!json_is_object(o)) {
        rc = cfg_fail(err, errlen, "%s: expected a JSON object", file);
    } else {
        const char *k;
        json_t *v;
        char why[512];
        json_object_foreach(o, k, v)
        {
            if (config_json_field(c, k, v, why, sizeof why)) {
                rc = cfg_fail(err, errlen, "%s: %s", file, why);
                break;
            }
        }
    }
    json_decref(o);
    return rc;
}

int st_stackd_config_file(st_stackd_config *c, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return cfg_fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    char *buf = malloc(1 << 20);
    size_t n = buf ? fread(buf, 1, 1 << 20, f) : 0;
    bool too_big = buf && n == (1 << 20);
    fclose(f);
    if (!buf)
        return cfg_fail(err, errlen, "%s: out of memory", path);
    int rc = too_big ? cfg_fail(err, errlen, "%s: larger than 1 MiB", path)
                     : st_stackd_config_json(c, buf, n, path, err, errlen);
    free(buf);
    return rc;
}

int st_stackd_config_check(const st_stackd_config *c, char *err, size_t errlen)
{
    if (!c->ip)
        return cfg_fail(err, errlen, "ip: missing (the stack's IPv4 address)");
    if (c->pmd != ST_PMD_EAL && !c->iface[0])
        return cfg_fail(err, errlen, "iface: missing (needed by pmd %s)", st_port_pmd_name(c->pmd));
    if (!c->sock_path[0])
        return cfg_fail(err, errlen, "socket: missing (the path applications attach to)");
    if (!c->ctl_path[0])
        return cfg_fail(err, errlen, "control: missing (the control socket path)");
    if (!strcmp(c->sock_path, c->ctl_path))
        return cfg_fail(err, errlen, "control: must differ from socket");
    char why[256];
    if (st_config_check(&c->transport, why, sizeof why))
        return cfg_fail(err, errlen, "transport.%s", why);
    return 0;
}

/* Every CPU this process may run on, as an EAL cpuset "(0,1,...)": the
 * default leaves scheduling to the kernel so several stacks share the cores. */
static void cpuset_arg(char *buf, size_t cap)
{
    cpu_set_t set;
    size_t n = snprintf(buf, cap, "0@(");
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        for (int i = 0; i < CPU_SETSIZE && n + 8 < cap; i++)
            if (CPU_ISSET(i, &set))
                n += snprintf(buf + n, cap - n, "%d,", i);
    }
    if (buf[n - 1] == ',')
        n--;
    else
        n += snprintf(buf + n, cap - n, "0");
    snprintf(buf + n, cap - n, ")");
}

int st_stackd_eal_argv(const st_stackd_config *c, const char *prog, char **argv, int max,
                       char (*store)[ST_STACKD_ARG_MAX])
{
    int n = 0;
#define ARG(...)                                                          \
    do {                                                                  \
        if (n < max - 1) {                                                \
            snprintf(store[n], ST_STACKD_ARG_MAX, __VA_ARGS__);           \
            argv[n] = store[n];                                           \
            n++;                                                          \
        }                                                                 \
    } while (0)
    ARG("%s", prog);
    if (c->eal_defaults) {
        /* No hugepages, no PCI, no shared config: several stacks per host,
         * each its own primary process, nothing left in /dev/hugepages. */
        ARG("--no-huge");
        ARG("-m");
        ARG("128");
        ARG("--no-shconf");
        ARG("--no-pci");
        ARG("--no-telemetry");
        ARG("--file-prefix=rift-stackd-%d", (int)getpid());
        ARG("--log-level=lib.eal:warning");
        if (c->core >= 0) {
            ARG("-l");
            ARG("%d", c->core);
        } else {
            ARG("--lcores");
            cpuset_arg(store[n], ST_STACKD_ARG_MAX);
            argv[n] = store[n];
            n++;
        }
    }
    for (int i = 0; i < c->n_eal; i++)
        ARG("%s", c->eal[i]);
#undef ARG
    argv[n] = NULL;
    return n;
}

/* ================================================================== engine state */

enum { NEIGH_FREE = 0, NEIGH_PENDING, NEIGH_RESOLVED };

typedef struct neigh {
    uint32_t ip;
    uint8_t state;
    uint8_t mac[6];
    uint8_t tries;
    uint64_t next_try_us, updated_us;
    uint16_t n_q;
    uint16_t q_len[NEIGH_QUEUE];
    uint8_t q[NEIGH_QUEUE][ST_WIRE_FRAME_MAX];
} neigh;

enum { HELD_RX = 0, HELD_TX };

typedef struct held {
    uint64_t due_us, seq;
    uint32_t peer;        /* TX: the next hop's IP */
    uint16_t len;
    uint8_t dir;
    uint8_t *frame;
} held;

/* A transport flow owned by an application, indexed by the flow id's slot. */
typedef struct flow_ent {
    uint32_t flow;        /* 0 = free */
    uint32_t handle;
    st_chan_app *app;
    uint16_t local_port, remote_port;
    uint32_t remote_ip;
} flow_ent;

typedef struct listener {
    uint16_t port;
    st_chan_app *app;
} listener;

typedef struct stackd_counters {
    uint64_t rx_frames, rx_mac_filtered, rx_reject[ST_WIRE_ERR_COUNT];
    uint64_t arp_rx, arp_requests_tx, arp_replies_tx, arp_failed;
    uint64_t tx_no_route, tx_neigh_queue_full, tx_no_mbuf, tx_build_errors, tx_unresolved_dropped;
    uint64_t held_overflow, held_rx, held_tx, impair_dropped_rx, impair_dropped_tx;
    uint64_t deliver_orphan, accept_no_listener, push_errors, app_detaches;
    uint64_t loop_iterations, sleeps, wakeups_fd, wakeups_timer;
} stackd_counters;

struct st_stackd {
    st_stackd_config cfg;
    bool eal_up;
    st_port *port;
    uint8_t mac[6];
    st_wire_local local;
    uint32_t netmask;
    st_transport *tp;
    rift_rng tp_rng, im_rng;
    st_impair *im;
    st_chan_server *chan;
    st_ctl *ctl;
    int epfd;
    uint64_t now;
    uint64_t start_us;
    neigh *neigh;                 /* NEIGH_MAX */
    uint64_t neigh_next_us;
    held *heap;                   /* min-heap on (due_us, seq) */
    uint32_t heap_n;
    uint64_t held_bytes, held_seq;
    flow_ent *flows;              /* cfg.transport.max_flows */
    uint32_t *fmap;               /* (app, handle) -> slot + 1; open addressing */
    uint32_t fmap_mask;
    uint32_t n_flows;
    listener lis[ST_TRANSPORT_MAX_LISTEN];
    uint32_t n_lis;
    uint32_t next_accept;
    stackd_counters c;
};

static uint64_t clock_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ================================================================== neighbours (ARP) */

static neigh *neigh_find(st_stackd *d, uint32_t ip)
{
    for (int i = 0; i < NEIGH_MAX; i++)
        if (d->neigh[i].state != NEIGH_FREE && d->neigh[i].ip == ip)
            return &d->neigh[i];
    return NULL;
}

/* A free entry, else the least recently confirmed resolved one. */
static neigh *neigh_alloc(st_stackd *d, uint32_t ip)
{
    neigh *victim = NULL;
    for (int i = 0; i < NEIGH_MAX; i++) {
        neigh *n = &d->neigh[i];
        if (n->state == NEIGH_FREE) {
            victim = n;
            break;
        }
        if (n->state == NEIGH_RESOLVED && (!victim || n->updated_us < victim->updated_us))
            victim = n;
    }
    if (!victim)
        return NULL;
    victim->ip = ip;
    victim->state = NEIGH_PENDING;
    victim->tries = 0;
    victim->n_q = 0;
    victim->next_try_us = d->now;
    d->neigh_next_us = d->now;
    return victim;
}

static void send_arp(st_stackd *d, const st_pkt *p)
{
    uint8_t *buf = st_port_tx_slot(d->port);
    if (!buf) {
        d->c.tx_no_mbuf++;
        return;
    }
    int len = st_wire_build(buf, ST_WIRE_FRAME_MAX, p);
    if (len < 0) {
        d->c.tx_build_errors++;
        return;
    }
    st_port_tx_commit(d->port, (uint16_t)len);
}

/* Put a whole frame (dst MAC still to fill) on the port for a resolved neighbour. */
static void tx_frame_to(st_stackd *d, const neigh *n, const uint8_t *frame, uint16_t len)
{
    uint8_t *buf = st_port_tx_slot(d->port);
    if (!buf) {
        d->c.tx_no_mbuf++;
        return;
    }
    memcpy(buf, frame, len);
    memcpy(buf, n->mac, 6);
    st_port_tx_commit(d->port, len);
}

static void neigh_resolved(st_stackd *d, neigh *n, const uint8_t mac[6])
{
    memcpy(n->mac, mac, 6);
    n->updated_us = d->now;
    n->state = NEIGH_RESOLVED;
    for (uint16_t i = 0; i < n->n_q; i++)
        tx_frame_to(d, n, n->q[i], n->q_len[i]);
    n->n_q = 0;
}

static void arp_rx(st_stackd *d, const st_pkt *p, bool for_us)
{
    d->c.arp_rx++;
    const st_arp *a = &p->arp;
    if (!a->spa || a->spa == d->cfg.ip)
        return;
    neigh *n = neigh_find(d, a->spa);
    /* RFC 826: refresh what we know; learn new peers only from ARPs aimed at us. */
    if (!n && for_us)
        n = neigh_alloc(d, a->spa);
    if (n)
        neigh_resolved(d, n, a->sha);
    if (for_us && a->op == ST_ARP_REQUEST) {
        st_pkt r;
        if (st_wire_arp_reply(&r, p, d->mac, d->cfg.ip) == 0) {
            send_arp(d, &r);
            d->c.arp_replies_tx++;
        }
    }
}

static void neigh_timers(st_stackd *d)
{
    if (d->now < d->neigh_next_us)
        return;
    uint64_t next = UINT64_MAX;
    for (int i = 0; i < NEIGH_MAX; i++) {
        neigh *n = &d->neigh[i];
        if (n->state != NEIGH_PENDING)
            continue;
        if (n->next_try_us <= d->now) {
            if (n->tries == NEIGH_TRIES) {
                d->c.arp_failed++;
                d->c.tx_unresolved_dropped += n->n_q;
                n->state = NEIGH_FREE; /* the transport retransmits; we try afresh then */
                continue;
            }
            st_pkt req;
            st_wire_arp_request(&req, d->mac, d->cfg.ip, n->ip);
            send_arp(d, &req);
            d->c.arp_requests_tx++;
            n->tries++;
            n->next_try_us = d->now + NEIGH_RETRY_US;
        }
        if (n->next_try_us < next)
            next = n->next_try_us;
    }
    d->neigh_next_us = next;
}

/* A built frame for ip: out now if resolved, else queued behind ARP. */
static void tx_frame(st_stackd *d, uint32_t ip, const uint8_t *frame, uint16_t len)
{
    neigh *n = neigh_find(d, ip);
    if (n && n->state == NEIGH_RESOLVED) {
        tx_frame_to(d, n, frame, len);
        return;
    }
    if (!n && !(n = neigh_alloc(d, ip))) {
        d->c.tx_neigh_queue_full++;
        return;
    }
    if (n->n_q == NEIGH_QUEUE) {
        d->c.tx_neigh_queue_full++;
        return;
    }
    memcpy(n->q[n->n_q], frame, len);
    n->q_len[n->n_q++] = len;
}

/* ================================================================== held frames */

static bool held_before(const held *a, const held *b)
{
    return a->due_us < b->due_us || (a->due_us == b->due_us && a->seq < b->seq);
}

static void heap_up(held *h, uint32_t i)
{
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!held_before(&h[i], &h[parent]))
            break;
        held t = h[i];
        h[i] = h[parent];
        h[parent] = t;
        i = parent;
    }
}

static void heap_down(held *h, uint32_t n, uint32_t i)
{
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && held_before(&h[l], &h[m]))
            m = l;
        if (r < n && held_before(&h[r], &h[m]))
            m = r;
        if (m == i)
            return;
        held t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static void hold(st_stackd *d, uint8_t dir, uint32_t peer, const uint8_t *frame, uint16_t len, uint64_t delay_us)
{
    uint8_t *copy = NULL;
    if (d->heap_n == HELD_MAX || d->held_bytes + len > HELD_BYTES_MAX || !(copy = malloc(len))) {
        d->c.held_overflow++;
        return;
    }
    memcpy(copy, frame, len);
    d->heap[d->heap_n] = (held){.due_us = d->now + delay_us, .seq = d->held_seq++, .peer = peer, .len = len,
                                .dir = dir, .frame = copy};
    heap_up(d->heap, d->heap_n++);
    d->held_bytes += len;
    if (dir == HELD_RX)
        d->c.held_rx++;
    else
        d->c.held_tx++;
}

static void rx_parsed(st_stackd *d, const uint8_t *frame, uint16_t len);

/* Release every held frame that is due. Returns how many. */
static unsigned held_release(st_stackd *d)
{
    unsigned n = 0;
    while (d->heap_n && d->heap[0].due_us <= d->now && n < ST_PORT_BURST * 4) {
        held h = d->heap[0];
        d->heap[0] = d->heap[--d->heap_n];
        heap_down(d->heap, d->heap_n, 0);
        d->held_bytes -= h.len;
        if (h.dir == HELD_RX)
            rx_parsed(d, h.frame, h.len);
        else
            tx_frame(d, h.peer, h.frame, h.len);
        free(h.frame);
        n++;
    }
    return n;
}

static void held_free_all(st_stackd *d)
{
    for (uint32_t i = 0; i < d->heap_n; i++)
        free(d->heap[i].frame);
    d->heap_n = 0;
    d->held_bytes = 0;
}

/* ================================================================== TX path */

static bool on_link(const st_stackd *d, uint32_t ip)
{
    return ((ip ^ d->cfg.ip) & d->netmask) == 0;
}

/* One IPv4 packet after impairment: straight into an mbuf when the neighbour
 * is known (the common case: no copy), else built aside and queued. */
static void tx_ip(st_stackd *d, const st_pkt *p)
{
    st_pkt q = *p;
    q.ethertype = ST_ETHERTYPE_IPV4;
    memcpy(q.eth_src, d->mac, 6);
    neigh *n = neigh_find(d, p->ip_dst);
    if (n && n->state == NEIGH_RESOLVED) {
        memcpy(q.eth_dst, n->mac, 6);
        uint8_t *buf = st_port_tx_slot(d->port);
        if (!buf) {
            d->c.tx_no_mbuf++;
            return;
        }
        int len = st_wire_build(buf, ST_WIRE_FRAME_MAX, &q);
        if (len < 0) {
            d->c.tx_build_errors++;
            return;
        }
        st_port_tx_commit(d->port, (uint16_t)len);
        return;
    }
    uint8_t frame[ST_WIRE_FRAME_MAX];
    int len = st_wire_build(frame, sizeof frame, &q);
    if (len < 0) {
        d->c.tx_build_errors++;
        return;
    }
    tx_frame(d, p->ip_dst, frame, (uint16_t)len);
}

/* st_env.tx: a packet from the transport. */
static void tp_tx(void *ctx, const st_pkt *p)
{
    st_stackd *d = ctx;
    if (p->ip_dst == d->cfg.ip || !on_link(d, p->ip_dst)) {
        d->c.tx_no_route++;
        return;
    }
    if (st_impair_rule_count(d->im) == 0) { /* the no-fault fast path: one branch */
        tx_ip(d, p);
        return;
    }
    st_impair_verdict v;
    st_impair_decide(d->im, d->cfg.ip, p->ip_dst, &d->im_rng, &v);
    if (v.n_copies == 0) {
        d->c.impair_dropped_tx++;
        return;
    }
    for (uint8_t i = 0; i < v.n_copies; i++) {
        if (v.delay_us[i] == 0) {
            tx_ip(d, p);
            continue;
        }
        st_pkt q = *p;
        q.ethertype = ST_ETHERTYPE_IPV4;
        memcpy(q.eth_src, d->mac, 6);
        uint8_t frame[ST_WIRE_FRAME_MAX];
        int len = st_wire_build(frame, sizeof frame, &q);
        if (len < 0)
            d->c.tx_build_errors++;
        else
            hold(d, HELD_TX, p->ip_dst, frame, (uint16_t)len, v.delay_us[i]);
    }
}

/* ================================================================== RX path */

/* A held frame coming due: parse it again (the copy owns its bytes now). */
static void rx_parsed(st_stackd *d, const uint8_t *frame, uint16_t len)
{
    st_pkt p;
    if (st_wire_parse(frame, len, &d->local, &p) != ST_WIRE_OK)
        return; /* cannot happen for a frame that parsed before */
    st_transport_rx(d->tp, &p, d->now);
}

static void rx_frame(st_stackd *d, const uint8_t *frame, uint16_t len)
{
    d->c.rx_frames++;
    if (!st_wire_mac_accept(frame, len, d->mac)) {
        d->c.rx_mac_filtered++;
        return;
    }
    st_pkt p;
    st_wire_err e = st_wire_parse(frame, len, &d->local, &p);
    if (e == ST_WIRE_NOT_FOR_US && p.ethertype == ST_ETHERTYPE_ARP) {
        arp_rx(d, &p, false); /* someone else's ARP still refreshes what we know */
        d->c.rx_reject[e]++;
        return;
    }
    if (e != ST_WIRE_OK) {
        d->c.rx_reject[e]++;
        return;
    }
    if (p.ethertype == ST_ETHERTYPE_ARP) {
        arp_rx(d, &p, true);
        return;
    }
    if (st_impair_rule_count(d->im) == 0) { /* the no-fault fast path */
        st_transport_rx(d->tp, &p, d->now);
        return;
    }
    st_impair_verdict v;
    st_impair_decide(d->im, p.ip_src, d->cfg.ip, &d->im_rng, &v);
    if (v.n_copies == 0)
        d->c.impair_dropped_rx++;
    for (uint8_t i = 0; i < v.n_copies; i++) {
        if (v.delay_us[i] == 0)
            st_transport_rx(d->tp, &p, d->now);
        else
            hold(d, HELD_RX, p.ip_src, frame, len, v.delay_us[i]);
    }
}

static unsigned rx_round(st_stackd *d)
{
    const uint8_t *frames[ST_PORT_BURST];
    uint16_t lens[ST_PORT_BURST];
    unsigned n = st_port_rx_burst(d->port, frames, lens);
    for (unsigned i = 0; i < n; i++)
        rx_frame(d, frames[i], lens[i]);
    st_port_rx_release(d->port);
    return n;
}

/* ================================================================== flows <-> applications */

static uint32_t fmap_hash(const st_chan_app *app, uint32_t handle)
{
    uint64_t x = (uint64_t)(uintptr_t)app ^ ((uint64_t)handle * 0x9e3779b97f4a7c15ull);
    x ^= x >> 29;
    x *= 0xbf58476d1ce4e5b9ull;
    return (uint32_t)(x ^ (x >> 32));
}

static flow_ent *ent_of_flow(st_stackd *d, uint32_t flow)
{
    uint32_t slot = flow & 0xffffu; /* st_transport ids: slot | generation << 16 */
    if (flow == 0 || slot >= d->cfg.transport.max_flows || d->flows[slot].flow != flow)
        return NULL;
    return &d->flows[slot];
}

static uint32_t *fmap_find(st_stackd *d, const st_chan_app *app, uint32_t handle)
{
    for (uint32_t i = fmap_hash(app, handle) & d->fmap_mask;; i = (i + 1) & d->fmap_mask) {
        if (!d->fmap[i])
            return &d->fmap[i]; /* the empty slot where it would go */
        flow_ent *e = &d->flows[d->fmap[i] - 1];
        if (e->app == app && e->handle == handle)
            return &d->fmap[i];
    }
}

static flow_ent *ent_of_handle(st_stackd *d, const st_chan_app *app, uint32_t handle)
{
    uint32_t *s = fmap_find(d, app, handle);
    return *s ? &d->flows[*s - 1] : NULL;
}

static void map_del(st_stackd *d, flow_ent *e);

static void map_add(st_stackd *d, st_chan_app *app, uint32_t handle, uint32_t flow)
{
    uint32_t slot = flow & 0xffffu;
    if (d->flows[slot].flow) /* a flow the transport dropped without telling us */
        map_del(d, &d->flows[slot]);
    st_flow_info fi;
    memset(&fi, 0, sizeof fi);
    (void)st_transport_flow_info(d->tp, flow, &fi);
    d->flows[slot] = (flow_ent){.flow = flow, .handle = handle, .app = app, .local_port = fi.local_port,
                                .remote_port = fi.remote_port, .remote_ip = fi.remote_ip};
    *fmap_find(d, app, handle) = slot + 1;
    d->n_flows++;
}

/* Backward-shift deletion keeps linear probing free of tombstones. */
static void map_del(st_stackd *d, flow_ent *e)
{
    uint32_t *s = fmap_find(d, e->app, e->handle);
    uint32_t i = (uint32_t)(s - d->fmap);
    d->fmap[i] = 0;
    for (uint32_t j = (i + 1) & d->fmap_mask; d->fmap[j]; j = (j + 1) & d->fmap_mask) {
        flow_ent *f = &d->flows[d->fmap[j] - 1];
        uint32_t home = fmap_hash(f->app, f->handle) & d->fmap_mask;
        /* Move j back into the hole i unless its home lies cyclically in (i, j]. */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            d->fmap[i] = d->fmap[j];
            d->fmap[j] = 0;
            i = j;
        }
    }
    *e = (flow_ent){0};
    d->n_flows--;
}

static void push(st_stackd *d, st_chan_app *app, const rs_event *ev)
{
    if (st_chan_server_push(d->chan, app, ev) < 0)
        d->c.push_errors++;
}

static listener *listener_find(st_stackd *d, uint16_t port)
{
    for (uint32_t i = 0; i < d->n_lis; i++)
        if (d->lis[i].port == port)
            return &d->lis[i];
    return NULL;
}

static uint32_t accept_handle(st_stackd *d, st_chan_app *app)
{
    for (;;) {
        uint32_t h = 0x80000000u | d->next_accept;
        d->next_accept = d->next_accept >= 0x7fffffffu ? 1 : d->next_accept + 1;
        if (!ent_of_handle(d, app, h))
            return h;
    }
}

/* st_env.deliver */
static void tp_deliver(void *ctx, uint32_t flow, const uint8_t *msg, size_t len)
{
    st_stackd *d = ctx;
    flow_ent *e = ent_of_flow(d, flow);
    if (!e) {
        d->c.deliver_orphan++;
        return;
    }
    rs_event ev = {.kind = RS_EV_MSG, .flow = e->handle, .local_port = e->local_port, .remote_ip = e->remote_ip,
                   .remote_port = e->remote_port, .data = msg, .len = len};
    push(d, e->app, &ev);
}

/* st_env.event */
static void tp_event(void *ctx, const st_event *te)
{
    st_stackd *d = ctx;
    rs_event ev = {.reason = te->reason, .local_port = te->local_port, .remote_ip = te->remote_ip,
                   .remote_port = te->remote_port};
    if (te->kind == ST_EV_ACCEPTED) {
        listener *l = listener_find(d, te->local_port);
        if (!l) {
            d->c.accept_no_listener++;
            (void)st_transport_abort(d->tp, te->flow, d->now);
            return;
        }
        uint32_t h = accept_handle(d, l->app);
        map_add(d, l->app, h, te->flow);
        ev.kind = RS_EV_ACCEPTED;
        ev.flow = h;
        push(d, l->app, &ev);
        return;
    }
    flow_ent *e = ent_of_flow(d, te->flow);
    if (!e)
        return; /* its application is gone */
    ev.flow = e->handle;
    st_chan_app *app = e->app;
    switch (te->kind) {
    case ST_EV_ESTABLISHED:
        ev.kind = RS_EV_ESTABLISHED;
        e->local_port = te->local_port;
        break;
    case ST_EV_RESET:
        ev.kind = RS_EV_RESET;
        map_del(d, e);
        break;
    case ST_EV_CLOSED:
        ev.kind = RS_EV_CLOSED;
        map_del(d, e);
        break;
    default:
        return;
    }
    push(d, app, &ev);
}

static int op_listen(void *ctx, st_chan_app *app, uint16_t port)
{
    st_stackd *d = ctx;
    if (d->n_lis == ST_TRANSPORT_MAX_LISTEN)
        return -ENOSPC;
    int rc = st_transport_listen(d->tp, port);
    if (rc < 0)
        return rc;
    d->lis[d->n_lis++] = (listener){.port = port, .app = app};
    return 0;
}

static int op_connect(void *ctx, st_chan_app *app, uint32_t handle, uint32_t ip, uint16_t port)
{
    st_stackd *d = ctx;
    if (handle == 0 || handle > APP_HANDLE_MAX)
        return -EINVAL;
    if (ent_of_handle(d, app, handle))
        return -EEXIST;
    if (ip == d->cfg.ip || !on_link(d, ip))
        return -ENETUNREACH;
    uint16_t local = st_port_rss_src_port(d->port, d->cfg.ip, ip, port, d->cfg.transport.ephemeral_lo,
                                          d->cfg.transport.ephemeral_hi);
    uint32_t flow;
    int rc = st_transport_connect(d->tp, ip, port, local, d->now, &flow);
    if (rc < 0)
        return rc;
    map_add(d, app, handle, flow);
    return 0;
}

static int op_send(void *ctx, st_chan_app *app, uint32_t handle, const uint8_t *msg, size_t len)
{
    st_stackd *d = ctx;
    flow_ent *e = ent_of_handle(d, app, handle);
    if (!e)
        return -ENOTCONN;
    int rc = st_transport_send(d->tp, e->flow, msg, len, d->now);
    /* Queue bounds are back-pressure, not failure: the server offers it again. */
    return rc == -ENOBUFS || rc == -ENOMEM ? -EAGAIN : rc;
}

static int op_close(void *ctx, st_chan_app *app, uint32_t handle, bool abort_now)
{
    st_stackd *d = ctx;
    flow_ent *e = ent_of_handle(d, app, handle);
    if (!e)
        return -ENOTCONN;
    if (abort_now) {
        (void)st_transport_abort(d->tp, e->flow, d->now);
        map_del(d, e);
        return 0;
    }
    int rc = st_transport_close(d->tp, e->flow, d->now);
    return rc == -EPIPE ? 0 : rc; /* closing twice is harmless */
}

static void op_detached(void *ctx, st_chan_app *app)
{
    st_stackd *d = ctx;
    d->c.app_detaches++;
    for (uint32_t s = 0; s < d->cfg.transport.max_flows && d->n_flows; s++) {
        flow_ent *e = &d->flows[s];
        if (e->flow && e->app == app) {
            (void)st_transport_abort(d->tp, e->flow, d->now);
            map_del(d, e);
        }
    }
    for (uint32_t i = 0; i < d->n_lis;) {
        if (d->lis[i].app == app) {
            (void)st_transport_unlisten(d->tp, d->lis[i].port);
            d->lis[i] = d->lis[--d->n_lis];
        } else {
            i++;
        }
    }
}

/* ================================================================== control commands */

static const char *flow_state_name(uint8_t s)
{
    switch (s) {
    case ST_FLOW_SYN_SENT: return "syn_sent";
    case ST_FLOW_SYN_RCVD: return "syn_rcvd";
    case ST_FLOW_ESTABLISHED: return "established";
    case ST_FLOW_LINGER: return "linger";
    default: return "?";
    }
}

/* json_object_set_new that remembers a failure instead of leaking the value. */
static void put(json_t *o, const char *k, json_t *v, bool *bad)
{
    if (!v || json_object_set_new(o, k, v) < 0)
        *bad = true;
}

#define PUT_U64(o, s, f, bad) put(o, #f, json_integer((json_int_t)(s)->f), bad)

static json_t *port_json(st_stackd *d, bool *bad)
{
    st_port_stats s;
    st_port_get_stats(d->port, &s);
    char mac[24];
    snprintf(mac, sizeof mac, "%02x:%02x:%02x:%02x:%02x:%02x", d->mac[0], d->mac[1], d->mac[2], d->mac[3],
             d->mac[4], d->mac[5]);
    json_t *o = json_object();
    if (!o)
        return NULL;
    put(o, "pmd", json_string(st_port_pmd_name(st_port_pmd_used(d->port))), bad);
    put(o, "driver", json_string(st_port_driver(d->port)), bad);
    put(o, "iface", json_string(d->cfg.iface), bad);
    put(o, "mac", json_string(mac), bad);
    PUT_U64(o, &s, rx_packets, bad);
    PUT_U64(o, &s, rx_bytes, bad);
    PUT_U64(o, &s, tx_packets, bad);
    PUT_U64(o, &s, tx_bytes, bad);
    PUT_U64(o, &s, rx_missed, bad);
    PUT_U64(o, &s, rx_errors, bad);
    PUT_U64(o, &s, tx_errors, bad);
    PUT_U64(o, &s, rx_nombuf, bad);
    PUT_U64(o, &s, tx_dropped, bad);
    PUT_U64(o, &s, tx_no_mbuf, bad);
    PUT_U64(o, &s, rx_multiseg, bad);
    put(o, "capturing", json_boolean(st_port_capturing(d->port)), bad);
    PUT_U64(o, &s, capture_packets, bad);
    PUT_U64(o, &s, capture_dropped, bad);
    return o;
}

static json_t *transport_json(st_stackd *d, bool *bad)
{
    st_transport_stats s;
    st_transport_get_stats(d->tp, &s);
    json_t *o = json_object();
    if (!o)
        return NULL;
    PUT_U64(o, &s, rx_packets, bad);
    PUT_U64(o, &s, tx_packets, bad);
    PUT_U64(o, &s, tx_data, bad);
    PUT_U64(o, &s, tx_retransmits, bad);
    PUT_U64(o, &s, tx_fast_retransmits, bad);
    PUT_U64(o, &s, tx_acks, bad);
    PUT_U64(o, &s, tx_rsts, bad);
    PUT_U64(o, &s, rtos, bad);
    PUT_U64(o, &s, spurious_rtos, bad);
    PUT_U64(o, &s, spurious_retransmits, bad);
    PUT_U64(o, &s, undos, bad);
    PUT_U64(o, &s, rx_bad_header, bad);
    PUT_U64(o, &s, rx_not_local, bad);
    PUT_U64(o, &s, rx_no_flow, bad);
    PUT_U64(o, &s, rx_no_listener, bad);
    PUT_U64(o, &s, rx_wrong_peer, bad);
    PUT_U64(o, &s, rx_bad_state, bad);
    PUT_U64(o, &s, rx_duplicate, bad);
    PUT_U64(o, &s, rx_out_of_window, bad);
    PUT_U64(o, &s, rx_no_mem, bad);
    PUT_U64(o, &s, rx_syn_no_room, bad);
    PUT_U64(o, &s, msgs_sent, bad);
    PUT_U64(o, &s, msgs_delivered, bad);
    PUT_U64(o, &s, flows_opened, bad);
    PUT_U64(o, &s, flows_reset, bad);
    PUT_U64(o, &s, flows_closed, bad);
    PUT_U64(o, &s, protocol_errors, bad);
    PUT_U64(o, &s, flows_active, bad);
    PUT_U64(o, &s, tx_mem_bytes, bad);
    PUT_U64(o, &s, rx_mem_bytes, bad);
    return o;
}

static json_t *flows_json(st_stackd *d, bool *bad)
{
    json_t *a = json_array();
    if (!a)
        return NULL;
    int listed = 0;
    for (uint32_t s = 0; s < d->cfg.transport.max_flows && listed < FLOWS_LIST_MAX; s++) {
        const flow_ent *e = &d->flows[s];
        st_flow_info fi;
        if (!e->flow || st_transport_flow_info(d->tp, e->flow, &fi))
            continue;
        char ip[16];
        json_t *f = json_pack("{s:I, s:I, s:I, s:s, s:b, s:i, s:s, s:i, s:i, s:I, s:I, s:I, s:i, s:I, s:I}", "flow",
                              (json_int_t)e->flow, "handle", (json_int_t)e->handle, "app",
                              (json_int_t)st_chan_app_id(e->app), "state",
                              flow_state_name(fi.state), "closing", fi.closing, "local_port", fi.local_port,
                              "remote_ip", st_ctl_format_addr(fi.remote_ip, ip, sizeof ip), "remote_port",
                              fi.remote_port, "cwnd", (int)fi.cwnd, "inflight", (json_int_t)fi.inflight,
                              "srtt_us", (json_int_t)fi.srtt_us, "rto_us", (json_int_t)fi.rto_us,
                              "rto_failures", (int)fi.rto_failures, "tx_queued_bytes",
                              (json_int_t)fi.tx_queued_bytes, "rx_mem_bytes", (json_int_t)fi.rx_mem_bytes);
        if (!f || json_array_append_new(a, f) < 0)
            *bad = true;
        listed++;
    }
    return a;
}

static json_t *engine_json(st_stackd *d, bool *bad)
{
    json_t *o = json_object(), *rej = json_object();
    if (!o || !rej) {
        json_decref(o);
        json_decref(rej);
        return NULL;
    }
    for (int e = ST_WIRE_OK + 1; e < ST_WIRE_ERR_COUNT; e++)
        if (e != ST_WIRE_NOT_FOR_US)
            put(rej, st_wire_err_name(e), json_integer((json_int_t)d->c.rx_reject[e]), bad);
    uint64_t total = 0;
    for (int e = ST_WIRE_OK + 1; e < ST_WIRE_ERR_COUNT; e++)
        total += e != ST_WIRE_NOT_FOR_US ? d->c.rx_reject[e] : 0;
    put(o, "malformed", rej, bad);
    put(o, "malformed_total", json_integer((json_int_t)total), bad);
    put(o, "rx_not_for_us", json_integer((json_int_t)d->c.rx_reject[ST_WIRE_NOT_FOR_US]), bad);
    const stackd_counters *c = &d->c;
    PUT_U64(o, c, rx_frames, bad);
    PUT_U64(o, c, rx_mac_filtered, bad);
    PUT_U64(o, c, arp_rx, bad);
    PUT_U64(o, c, arp_requests_tx, bad);
    PUT_U64(o, c, arp_replies_tx, bad);
    PUT_U64(o, c, arp_failed, bad);
    PUT_U64(o, c, tx_no_route, bad);
    PUT_U64(o, c, tx_neigh_queue_full, bad);
    PUT_U64(o, c, tx_unresolved_dropped, bad);
    PUT_U64(o, c, tx_no_mbuf, bad);
    PUT_U64(o, c, tx_build_errors, bad);
    PUT_U64(o, c, deliver_orphan, bad);
    PUT_U64(o, c, accept_no_listener, bad);
    PUT_U64(o, c, push_errors, bad);
    PUT_U64(o, c, app_detaches, bad);
    PUT_U64(o, c, loop_iterations, bad);
    PUT_U64(o, c, sleeps, bad);
    PUT_U64(o, c, wakeups_fd, bad);
    PUT_U64(o, c, wakeups_timer, bad);
    return o;
}

static json_t *impair_json(st_stackd *d, bool *bad)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    put(o, "rules", json_integer(st_impair_rule_count(d->im)), bad);
    put(o, "held", json_integer((json_int_t)d->heap_n), bad);
    put(o, "held_bytes", json_integer((json_int_t)d->held_bytes), bad);
    const stackd_counters *c = &d->c;
    PUT_U64(o, c, held_rx, bad);
    PUT_U64(o, c, held_tx, bad);
    PUT_U64(o, c, held_overflow, bad);
    PUT_U64(o, c, impair_dropped_rx, bad);
    PUT_U64(o, c, impair_dropped_tx, bad);
    return o;
}

static json_t *neighbours_json(st_stackd *d, bool *bad)
{
    json_t *a = json_array();
    if (!a)
        return NULL;
    for (int i = 0; i < NEIGH_MAX; i++) {
        const neigh *n = &d->neigh[i];
        if (n->state == NEIGH_FREE)
            continue;
        char ip[16], mac[24] = "";
        if (n->state == NEIGH_RESOLVED)
            snprintf(mac, sizeof mac, "%02x:%02x:%02x:%02x:%02x:%02x", n->mac[0], n->mac[1], n->mac[2],
                     n->mac[3], n->mac[4], n->mac[5]);
        json_t *e = json_pack("{s:s, s:s, s:s, s:i}", "ip", st_ctl_format_addr(n->ip, ip, sizeof ip), "mac", mac,
                              "state", n->state == NEIGH_RESOLVED ? "resolved" : "pending", "queued", n->n_q);
        if (!e || json_array_append_new(a, e) < 0)
            *bad = true;
    }
    return a;
}

static json_t *chan_json(st_stackd *d)
{
    st_chan_stats s;
    st_chan_server_stats(d->chan, &s);
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "apps", (json_int_t)s.apps, "attaches",
                     (json_int_t)s.attaches, "detaches", (json_int_t)s.detaches, "msgs_in", (json_int_t)s.msgs_in,
                     "msgs_out", (json_int_t)s.msgs_out, "bytes_in", (json_int_t)s.bytes_in, "bytes_out",
                     (json_int_t)s.bytes_out, "queued", (json_int_t)s.queued);
}

static json_t *cmd_stats(st_stackd *d)
{
    bool bad = false;
    char ip[16];
    json_t *o = json_object();
    if (!o)
        return NULL;
    put(o, "ok", json_true(), &bad);
    put(o, "ip", json_string(st_ctl_format_addr(d->cfg.ip, ip, sizeof ip)), &bad);
    put(o, "uptime_us", json_integer((json_int_t)(d->now - d->start_us)), &bad);
    put(o, "polling", json_string(d->cfg.polling == ST_POLL_BUSY ? "busy" : "adaptive"), &bad);
    put(o, "port", port_json(d, &bad), &bad);
    put(o, "engine", engine_json(d, &bad), &bad);
    put(o, "impair", impair_json(d, &bad), &bad);
    put(o, "neighbours", neighbours_json(d, &bad), &bad);
    put(o, "transport", transport_json(d, &bad), &bad);
    put(o, "flows", flows_json(d, &bad), &bad);
    put(o, "channels", chan_json(d), &bad);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *cmd_impair_list(st_stackd *d)
{
    int ids[ST_IMPAIR_MAX_RULES];
    int n = st_impair_list(d->im, ids, ST_IMPAIR_MAX_RULES);
    json_t *a = json_array();
    if (!a)
        return NULL;
    for (int i = 0; i < n; i++) {
        st_impair_rule r;
        st_impair_counters c;
        if (!st_impair_get(d->im, ids[i], &r, &c))
            continue;
        json_t *e = json_pack("{s:i, s:o, s:{s:I, s:I, s:I, s:I, s:I}}", "id", ids[i], "rule", st_ctl_rule_json(&r),
                              "counters", "matched", (json_int_t)c.matched, "dropped", (json_int_t)c.dropped,
                              "delayed", (json_int_t)c.delayed, "duplicated", (json_int_t)c.duplicated,
                              "reordered", (json_int_t)c.reordered);
        if (!e || json_array_append_new(a, e) < 0) {
            json_decref(a);
            return NULL;
        }
    }
    return json_pack("{s:b, s:o}", "ok", 1, "rules", a);
}

static json_t *ctl_handle(void *ctx, const st_ctl_cmd *cmd)
{
    st_stackd *d = ctx;
    char err[512];
    int rc;
    switch (cmd->kind) {
    case ST_CTL_PING:
        return json_pack("{s:b}", "ok", 1);
    case ST_CTL_IMPAIR_ADD:
        rc = st_impair_add(d->im, &cmd->rule);
        if (rc == -ENOSPC)
            return st_ctl_error("rule: the table is full (%d rules)", ST_IMPAIR_MAX_RULES);
        if (rc < 0)
            return st_ctl_error("rule: rejected by the fault model (%s)", strerror(-rc));
        return json_pack("{s:b, s:i}", "ok", 1, "id", rc);
    case ST_CTL_IMPAIR_REMOVE:
        if (st_impair_remove(d->im, cmd->id) < 0)
            return st_ctl_error("id: no rule %d", cmd->id);
        return json_pack("{s:b}", "ok", 1);
    case ST_CTL_IMPAIR_CLEAR:
        if (cmd->link)
            rc = st_impair_remove_link(d->im, cmd->src, cmd->dst);
        else {
            rc = st_impair_rule_count(d->im);
            st_impair_clear(d->im);
        }
        return json_pack("{s:b, s:i}", "ok", 1, "removed", rc);
    case ST_CTL_IMPAIR_LIST:
        return cmd_impair_list(d);
    case ST_CTL_STATS:
        return cmd_stats(d);
    case ST_CTL_CAPTURE_START:
        if (st_port_capture_start(d->port, cmd->path, err, sizeof err) < 0)
            return st_ctl_error("%s", err);
        return json_pack("{s:b, s:s}", "ok", 1, "path", cmd->path);
    case ST_CTL_CAPTURE_STOP: {
        st_port_stats s;
        st_port_get_stats(d->port, &s);
        bool was = st_port_capturing(d->port);
        st_port_capture_stop(d->port);
        return json_pack("{s:b, s:b, s:I}", "ok", 1, "was_capturing", was, "packets",
                         (json_int_t)s.capture_packets);
    }
    default:
        return st_ctl_error("cmd: not implemented");
    }
}

/* ================================================================== lifecycle */

static int fail_env(char *err, size_t errlen, int rc, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail_env(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc < 0 ? rc : -EIO;
}

static int engine_alloc(st_stackd *d)
{
    uint32_t cap = 1;
    while (cap < 2 * d->cfg.transport.max_flows)
        cap <<= 1;
    d->fmap_mask = cap - 1;
    d->fmap = calloc(cap, sizeof *d->fmap);
    d->flows = calloc(d->cfg.transport.max_flows, sizeof *d->flows);
    d->neigh = calloc(NEIGH_MAX, sizeof *d->neigh);
    d->heap = malloc(HELD_MAX * sizeof *d->heap);
    d->im = st_impair_new();
    return d->fmap && d->flows && d->neigh && d->heap && d->im ? 0 : -ENOMEM;
}

static int open_port(st_stackd *d, char *err, size_t errlen)
{
    char argv_store[ST_STACKD_EAL_MAX + 16][ST_STACKD_ARG_MAX];
    char *argv[ST_STACKD_EAL_MAX + 17];
    int argc = st_stackd_eal_argv(&d->cfg, "rift-stackd", argv, ST_STACKD_EAL_MAX + 16, argv_store);
    int rc = st_port_eal_init(argc, argv, err, errlen);
    if (rc < 0)
        return rc;
    d->eal_up = true;
    st_port_config pc = {.pmd = d->cfg.pmd, .promiscuous = d->cfg.mac_set};
    snprintf(pc.iface, sizeof pc.iface, "%s", d->cfg.iface);
    d->port = st_port_open(&pc, err, errlen);
    if (!d->port)
        return -ENODEV;
    if (d->cfg.mac_set)
        memcpy(d->mac, d->cfg.mac, 6);
    else
        st_port_mac(d->port, d->mac);
    return 0;
}

static int open_sockets(st_stackd *d, char *err, size_t errlen)
{
    static const st_chan_ops ops_template = {.listen = op_listen, .connect = op_connect, .send = op_send,
                                             .close = op_close, .detached = op_detached};
    st_chan_ops ops = ops_template;
    ops.ctx = d;
    int rc = 0;
    d->chan = st_chan_server_new(d->cfg.sock_path, d->cfg.ip, d->cfg.transport.max_msg_bytes, &ops, &rc);
    if (!d->chan)
        return fail_env(err, errlen, rc, "socket: cannot serve applications on %s: %s", d->cfg.sock_path,
                        strerror(rc < 0 ? -rc : EIO));
    d->ctl = st_ctl_new(d->cfg.ctl_path, ctl_handle, d, err, errlen);
    if (!d->ctl)
        return -EIO;
    d->epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev_chan = {.events = EPOLLIN, .data.u32 = 0};
    struct epoll_event ev_ctl = {.events = EPOLLIN, .data.u32 = 1};
    if (d->epfd < 0 || epoll_ctl(d->epfd, EPOLL_CTL_ADD, st_chan_server_fd(d->chan), &ev_chan) ||
        epoll_ctl(d->epfd, EPOLL_CTL_ADD, st_ctl_fd(d->ctl), &ev_ctl))
        return fail_env(err, errlen, -errno, "epoll: %s", strerror(errno));
    /* Frames arriving wake a napping engine at once (no interrupt in these PMDs). */
    struct epoll_event ev_port = {.events = EPOLLIN, .data.u32 = 2};
    if (st_port_rx_fd(d->port) >= 0 && epoll_ctl(d->epfd, EPOLL_CTL_ADD, st_port_rx_fd(d->port), &ev_port))
        return fail_env(err, errlen, -errno, "epoll (port): %s", strerror(errno));
    return 0;
}

st_stackd *st_stackd_new(const st_stackd_config *c, char *err, size_t errlen, int *rc_out)
{
    int dummy, rc;
    if (!rc_out)
        rc_out = &dummy;
    *rc_out = st_stackd_config_check(c, err, errlen);
    if (*rc_out)
        return NULL;
    st_stackd *d = calloc(1, sizeof *d);
    if (!d) {
        *rc_out = fail_env(err, errlen, -ENOMEM, "out of memory");
        return NULL;
    }
    d->cfg = *c;
    d->epfd = -1;
    d->netmask = c->netmask_bits >= 32 ? 0xffffffffu : ~(0xffffffffu >> c->netmask_bits);
    d->next_accept = 1;
    d->now = d->start_us = clock_us();
    uint64_t seed = c->seed ? c->seed : d->now ^ ((uint64_t)getpid() << 32);
    rift_rng_seed(&d->tp_rng, seed);
    rift_rng_fork(&d->tp_rng, &d->im_rng, 1);
    if ((rc = engine_alloc(d)) < 0) {
        *rc_out = fail_env(err, errlen, rc, "out of memory");
        goto fail;
    }
    if ((rc = open_port(d, err, errlen)) < 0) {
        *rc_out = rc == -EINVAL ? -EIO : rc; /* an EAL/port error is environmental, never "bad config" */
        goto fail;
    }
    memcpy(d->local.mac, d->mac, 6);
    d->local.ip = c->ip;
    st_env env = {.ctx = d, .tx = tp_tx, .deliver = tp_deliver, .event = tp_event, .rng = &d->tp_rng};
    d->tp = st_transport_new(&c->transport, &env, c->ip, &rc);
    if (!d->tp) {
        *rc_out = fail_env(err, errlen, rc == -EINVAL ? -EIO : rc, "transport: %s", strerror(-rc));
        goto fail;
    }
    if ((rc = open_sockets(d, err, errlen)) < 0) {
        *rc_out = rc == -EINVAL ? -EIO : rc;
        goto fail;
    }
    *rc_out = 0;
    return d;
fail:
    st_stackd_free(d);
    return NULL;
}

void st_stackd_free(st_stackd *d)
{
    if (!d)
        return;
    /* Applications first: their flows die with the transport below. */
    st_chan_server_free(d->chan);
    st_ctl_free(d->ctl);
    if (d->epfd >= 0)
        close(d->epfd);
    if (d->port)
        (void)st_port_tx_flush(d->port);
    st_transport_free(d->tp);
    held_free_all(d);
    st_port_close(d->port);
    if (d->eal_up)
        st_port_eal_cleanup();
    st_impair_free(d->im);
    free(d->heap);
    free(d->neigh);
    free(d->flows);
    free(d->fmap);
    free(d);
}

void st_stackd_describe(const st_stackd *d, char *buf, size_t len)
{
    char ip[16];
    snprintf(buf, len, "%s/%u on %s via %s (%s), mac %02x:%02x:%02x:%02x:%02x:%02x, socket %s, control %s, polling %s",
             st_ctl_format_addr(d->cfg.ip, ip, sizeof ip), d->cfg.netmask_bits, d->cfg.iface[0] ? d->cfg.iface : "-",
             st_port_pmd_name(st_port_pmd_used(d->port)), st_port_driver(d->port), d->mac[0], d->mac[1], d->mac[2],
             d->mac[3], d->mac[4], d->mac[5], d->cfg.sock_path, d->cfg.ctl_path,
             d->cfg.polling == ST_POLL_BUSY ? "busy" : "adaptive");
}

/* ================================================================== the loop */

static uint64_t next_timer_us(st_stackd *d)
{
    uint64_t t = st_transport_next_tick_us(d->tp);
    if (d->heap_n && d->heap[0].due_us < t)
        t = d->heap[0].due_us;
    if (d->neigh_next_us < t)
        t = d->neigh_next_us;
    return t;
}

/* One pass over every source of work; returns how much was done. */
static unsigned iterate(st_stackd *d)
{
    unsigned work = rx_round(d);
    int r = st_chan_server_poll(d->chan, CHAN_BUDGET);
    if (r > 0)
        work += (unsigned)r;
    d->now = clock_us();
    work += held_release(d);
    if (st_transport_next_tick_us(d->tp) <= d->now)
        st_transport_tick(d->tp, d->now);
    neigh_timers(d);
    if (st_port_tx_pending(d->port)) {
        work++;
        (void)st_port_tx_flush(d->port);
    }
    d->c.loop_iterations++;
    return work;
}

/* Adaptive polling: sleep until an fd wakes us, the next timer, or `step_us`. */
static bool nap(st_stackd *d, uint64_t step_us)
{
    uint64_t wake = next_timer_us(d), now = clock_us();
    if (wake <= now)
        return false;
    uint64_t us = wake - now < step_us ? wake - now : step_us;
    struct timespec ts = {.tv_sec = (time_t)(us / 1000000u), .tv_nsec = (long)(us % 1000000u) * 1000};
    struct epoll_event evs[3];
    d->c.sleeps++;
    int n = epoll_pwait2(d->epfd, evs, 3, &ts, NULL);
    bool woke = false;
    for (int i = 0; i < n; i++) {
        woke = true;
        if (evs[i].data.u32 == 1)
            (void)st_ctl_poll(d->ctl);
    }
    if (woke)
        d->c.wakeups_fd++;
    else
        d->c.wakeups_timer++;
    return woke;
}

int st_stackd_run(st_stackd *d, const volatile sig_atomic_t *stop)
{
    uint64_t idle_since = 0, step_us = SLEEP_MIN_US, next_ctl = 0;
    bool busy = d->cfg.polling == ST_POLL_BUSY, napped = false;
    while (!*stop) {
        d->now = clock_us();
        unsigned work = iterate(d);
        /* While napping, epoll watches the control socket; awake, poll it. */
        if (!napped && d->now >= next_ctl) {
            work += (unsigned)st_ctl_poll(d->ctl);
            next_ctl = d->now + CTL_EVERY_US;
        }
        napped = false;
        if (work || busy) {
            idle_since = 0;
            step_us = SLEEP_MIN_US;
            continue;
        }
        if (!idle_since)
            idle_since = d->now;
        if (d->now - idle_since < d->cfg.spin_us)
            continue;
        napped = true;
        if (nap(d, step_us))
            step_us = SLEEP_MIN_US;
        else if (step_us < SLEEP_MAX_US)
            step_us = step_us * 2 > SLEEP_MAX_US ? SLEEP_MAX_US : step_us * 2;
    }
    return 0;
}
