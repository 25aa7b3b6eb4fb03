/* replica_node.c — the rift-replica runtime: clock, timers, WAL, stack flows, control, events. */
#include "replica_node.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Reconnect backoff per peer: doubles from MIN to MAX, plus up to half again as
 * jitter so peers that lost each other at the same instant do not retry in step. */
#define RN_BACKOFF_MIN_US 50000u
#define RN_BACKOFF_MAX_US 1000000u
/* A connect that neither completes nor resets in this long is aborted and retried
 * (the stack resets it after its RTOs anyway; this bounds a lost event). */
#define RN_CONNECT_TIMEOUT_US 3000000u
/* Events drained per loop round, so ticks and the control socket are not starved. */
#define RN_POLL_BUDGET 512u
/* The core may ask to be ticked "now" right after a tick; never tick closer than
 * this, so a runaway timer cannot turn into a busy loop. */
#define RN_TICK_FLOOR_US 100u
#define RN_CTL_MAX_CLIENTS 8
#define RN_CTL_LINE_MAX (64u * 1024u)
#define RN_N_CLIENTS (0x10000u - PX_CLIENT_BASE)

typedef enum rn_link_state { RN_LINK_IDLE = 0, RN_LINK_CONNECTING, RN_LINK_UP } rn_link_state;

/* Our outgoing flow to one peer replica. */
typedef struct rn_link {
    rn_link_state state;
    uint32_t flow;
    uint64_t since_us;    /* CONNECTING: when rs_connect was called */
    uint64_t retry_at_us; /* IDLE: when to connect again */
    uint64_t backoff_us;
} rn_link;

typedef struct rn_ctl_client {
    int fd;      /* -1 = free slot */
    char *buf;   /* RN_CTL_LINE_MAX bytes */
    size_t len;
} rn_ctl_client;

struct rn_node {
    rn_config cfg;
    px_replica *r;
    px_storage *storage;
    rift_rng rng;    /* the core's stream */
    rift_rng jitter; /* backoff jitter: its own stream, so the core's draws stay as seeded */
    rs_stack *stack;
    bool stack_lost; /* rs_* said -EPIPE: detach once no borrowed data is in use */
    bool more;       /* the poll budget ran out with events pending */
    uint64_t attach_retry_at_us, attach_backoff_us;
    rn_link links[PX_MAX_REPLICAS];
    uint32_t *client_flow; /* client address - PX_CLIENT_BASE -> flow of its last request */
    uint8_t *enc;
    size_t enc_cap;
    int events_fd;
    int ctl_fd;
    rn_ctl_client ctl[RN_CTL_MAX_CLIENTS];
    uint64_t now_us;       /* time of the core call in progress */
    uint64_t last_tick_us;
    uint64_t started_us;
    rn_counters c;
};

uint64_t rn_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

__attribute__((format(printf, 2, 3)))
static void rn_log(const rn_node *n, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0)
        msg[0] = 0;
    va_end(ap);
    fprintf(stderr, "rift-replica r%u: %s\n", n->cfg.id + 1u, msg);
}

/* ---------- event lines ---------- */

/* u64 as a JSON integer: above INT64_MAX it wraps to negative (see the header). */
static json_t *rn_u64(uint64_t x)
{
    return json_integer((json_int_t)x);
}

int rn_event_format(const px_event *e, char *buf, size_t cap)
{
    json_t *o = json_pack("{s:o, s:s, s:i, s:o, s:o, s:o, s:o}", "t_us", rn_u64(e->time_us), "kind",
                          px_event_kind_name(e->kind), "replica", e->replica, "ballot", rn_u64(e->ballot), "index",
                          rn_u64(e->index), "a", rn_u64(e->a), "b", rn_u64(e->b));
    if (!o)
        return -ENOMEM;
    size_t need = json_dumpb(o, buf, cap, JSON_COMPACT);
    json_decref(o);
    if (need == 0)
        return -ENOMEM;
    if (need + 1 > cap)
        return -ENOSPC;
    buf[need] = '\n';
    return (int)need + 1;
}

static int rn_event_kind_parse(const char *name)
{
    for (int k = 1; k <= PX_EV_KIND_MAX; k++) {
        if (strcmp(px_event_kind_name(k), name) == 0)
            return k;
    }
    return -EINVAL;
}

int rn_event_parse(const char *line, size_t len, px_event *out)
{
    json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
    if (!o)
        return -EINVAL;
    const json_t *kind = json_object_get(o, "kind"), *rep = json_object_get(o, "replica");
    static const char *const u64s[] = {"t_us", "ballot", "index", "a", "b"};
    int rc = -EINVAL;
    int k;
    if (!json_is_string(kind) || (k = rn_event_kind_parse(json_string_value(kind))) < 0)
        goto out;
    if (!json_is_integer(rep) || json_integer_value(rep) < 0 || json_integer_value(rep) >= PX_MAX_REPLICAS)
        goto out;
    uint64_t v[5];
    for (int i = 0; i < 5; i++) {
        const json_t *f = json_object_get(o, u64s[i]);
        if (!json_is_integer(f))
            goto out;
        v[i] = (uint64_t)json_integer_value(f);
    }
    *out = (px_event){.kind = (uint8_t)k, .replica = (uint8_t)json_integer_value(rep), .time_us = v[0],
                      .ballot = v[1], .index = v[2], .a = v[3], .b = v[4]};
    rc = 0;
out:
    json_decref(o);
    return rc;
}

static int rn_write_all(int fd, const char *p, size_t len)
{
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? -errno : -EIO;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* ---------- the core's environment ---------- */

static void rn_env_event(void *ctx, const px_event *e)
{
    rn_node *n = ctx;
    px_event ev = *e;
    ev.replica = n->cfg.id;
    ev.time_us = n->now_us;
    n->c.events++;
    if (n->events_fd < 0)
        return;
    char line[RN_EVENT_LINE_MAX];
    int len = rn_event_format(&ev, line, sizeof(line));
    /* One write per line: O_APPEND keeps lines whole, and no user-space buffer
     * means a SIGKILL loses nothing that was emitted. */
    if (len < 0 || rn_write_all(n->events_fd, line, (size_t)len) < 0)
        n->c.event_write_errors++;
}

uint32_t rn_node_route(const rn_node *n, uint16_t to)
{
    if (to < n->cfg.n_replicas) {
        const rn_link *l = &n->links[to];
        return to != n->cfg.id && l->state == RN_LINK_UP ? l->flow : 0;
    }
    if (to >= PX_CLIENT_BASE && to != PX_NO_NODE)
        return n->client_flow[to - PX_CLIENT_BASE];
    return 0;
}

static int rn_enc_reserve(rn_node *n, size_t need)
{
    if (need <= n->enc_cap)
        return 0;
    size_t cap = n->enc_cap ? n->enc_cap : 4096;
    while (cap < need)
        cap *= 2;
    uint8_t *p = realloc(n->enc, cap);
    if (!p)
        return -ENOMEM;
    n->enc = p;
    n->enc_cap = cap;
    return 0;
}

static void rn_link_down(rn_node *n, rn_link *l, uint64_t now_us);

/* The flow is dead (the stack said so): forget it wherever it is used. */
static void rn_forget_flow(rn_node *n, uint32_t flow, uint64_t now_us)
{
    for (uint8_t j = 0; j < n->cfg.n_replicas; j++) {
        if (n->links[j].state != RN_LINK_IDLE && n->links[j].flow == flow)
            rn_link_down(n, &n->links[j], now_us);
    }
    for (uint32_t i = 0; i < RN_N_CLIENTS; i++) {
        if (n->client_flow[i] == flow)
            n->client_flow[i] = 0;
    }
}

static void rn_env_send(void *ctx, const px_msg *m)
{
    rn_node *n = ctx;
    if (!n->stack || n->stack_lost) {
        n->c.drop_detached++;
        return;
    }
    uint32_t flow = rn_node_route(n, m->to);
    if (!flow) {
        n->c.drop_no_flow++;
        return;
    }
    size_t need = px_msg_encoded_size(m), len = 0;
    if (need > rs_max_msg(n->stack)) {
        n->c.drop_oversize++;
        return;
    }
    if (rn_enc_reserve(n, need) < 0 || px_msg_encode(m, n->enc, n->enc_cap, &len) < 0) {
        n->c.drop_error++;
        return;
    }
    int rc = rs_send(n->stack, flow, n->enc, len);
    if (rc == 0) {
        n->c.msgs_out++;
        n->c.bytes_out += len;
    } else if (rc == -EAGAIN) {
        n->c.drop_eagain++; /* never block: paxos retransmits what matters */
    } else if (rc == -ENOTCONN) {
        n->c.drop_no_flow++;
        rn_forget_flow(n, flow, n->now_us);
    } else if (rc == -EPIPE) {
        n->c.drop_detached++;
        n->stack_lost = true;
    } else {
        n->c.drop_error++;
    }
}

/* ---------- peer links ---------- */

static void rn_link_down(rn_node *n, rn_link *l, uint64_t now_us)
{
    l->state = RN_LINK_IDLE;
    l->flow = 0;
    l->retry_at_us = now_us + l->backoff_us + rift_rng_range(&n->jitter, 0, l->backoff_us / 2);
    l->backoff_us = l->backoff_us * 2 > RN_BACKOFF_MAX_US ? RN_BACKOFF_MAX_US : l->backoff_us * 2;
}

static void rn_links_service(rn_node *n, uint64_t now_us)
{
    for (uint8_t j = 0; j < n->cfg.n_replicas && n->stack && !n->stack_lost; j++) {
        rn_link *l = &n->links[j];
        if (j == n->cfg.id)
            continue;
        if (l->state == RN_LINK_CONNECTING && now_us - l->since_us >= RN_CONNECT_TIMEOUT_US) {
            rs_abort(n->stack, l->flow);
            n->c.resets++;
            rn_link_down(n, l, now_us);
            continue;
        }
        if (l->state != RN_LINK_IDLE || now_us < l->retry_at_us)
            continue;
        uint32_t flow = 0;
        int rc = rs_connect(n->stack, n->cfg.replicas[j].ip, n->cfg.replicas[j].port, &flow);
        if (rc == -EPIPE) {
            n->stack_lost = true;
        } else if (rc < 0) {
            rn_link_down(n, l, now_us);
        } else {
            n->c.connects++;
            *l = (rn_link){RN_LINK_CONNECTING, flow, now_us, 0, l->backoff_us};
        }
    }
}

static void rn_links_reset(rn_node *n, uint64_t now_us)
{
    for (uint8_t j = 0; j < PX_MAX_REPLICAS; j++)
        n->links[j] = (rn_link){RN_LINK_IDLE, 0, 0, now_us, RN_BACKOFF_MIN_US};
    if (n->client_flow)
        memset(n->client_flow, 0, RN_N_CLIENTS * sizeof(*n->client_flow));
}

/* ---------- stack events ---------- */

static bool rn_sender_ok(const rn_node *n, const px_msg *m)
{
    if (m->to != n->cfg.id)
        return false;
    if (m->from < n->cfg.n_replicas)
        return m->from != n->cfg.id && m->type != PX_MSG_CLIENT_REQ;
    return m->from >= PX_CLIENT_BASE && m->from != PX_NO_NODE && m->type == PX_MSG_CLIENT_REQ;
}

static void rn_on_msg(rn_node *n, uint32_t flow, const uint8_t *data, size_t len, uint64_t now_us)
{
    px_msg m;
    if (px_msg_decode(data, len, &m) < 0) {
        n->c.bad_msgs++;
        return;
    }
    n->c.msgs_in++;
    n->c.bytes_in += len;
    if (!rn_sender_ok(n, &m)) {
        n->c.misrouted++;
        px_msg_release(&m);
        return;
    }
    if (m.from >= PX_CLIENT_BASE)
        n->client_flow[m.from - PX_CLIENT_BASE] = flow; /* replies go back the way the request came */
    n->now_us = now_us;
    px_replica_recv(n->r, &m, now_us);
    px_msg_release(&m);
}

void rn_node_on_stack_event(rn_node *n, const rs_event *ev, uint64_t now_us)
{
    switch (ev->kind) {
    case RS_EV_MSG:
        rn_on_msg(n, ev->flow, ev->data, ev->len, now_us);
        break;
    case RS_EV_ESTABLISHED:
        for (uint8_t j = 0; j < n->cfg.n_replicas; j++) {
            rn_link *l = &n->links[j];
            if (l->state == RN_LINK_CONNECTING && l->flow == ev->flow) {
                l->state = RN_LINK_UP;
                l->backoff_us = RN_BACKOFF_MIN_US;
                n->c.established++;
            }
        }
        break;
    case RS_EV_ACCEPTED:
        n->c.accepted++;
        /* a peer that connects to us is back: reconnect to it now rather than
         * when our backoff (up to a second) runs out, so it hears us sooner */
        for (uint8_t j = 0; j < n->cfg.n_replicas; j++) {
            rn_link *l = &n->links[j];
            if (j != n->cfg.id && n->cfg.replicas[j].ip == ev->remote_ip && l->state == RN_LINK_IDLE &&
                l->retry_at_us > now_us)
                l->retry_at_us = now_us;
        }
        break;
    case RS_EV_RESET:
    case RS_EV_CLOSED:
        n->c.resets++;
        rn_forget_flow(n, ev->flow, now_us);
        break;
    default:
        break;
    }
}

/* ---------- attach / detach ---------- */

static void rn_stack_drop(rn_node *n, uint64_t now_us)
{
    if (n->stack)
        rs_detach(n->stack);
    n->stack = NULL;
    n->stack_lost = false;
    n->more = false;
    rn_links_reset(n, now_us);
}

static void rn_stack_lost(rn_node *n, uint64_t now_us)
{
    rn_log(n, "lost rift-stackd at %s; re-attaching", n->cfg.stack);
    n->c.stack_losses++;
    rn_stack_drop(n, now_us);
    n->attach_backoff_us = RN_BACKOFF_MIN_US;
    n->attach_retry_at_us = now_us + n->attach_backoff_us;
}

int rn_node_attach(rn_node *n, uint64_t now_us, rn_error *err)
{
    rs_stack *s = NULL;
    int rc = rs_attach(n->cfg.stack, &s);
    if (rc < 0) {
        snprintf(err->msg, sizeof(err->msg), "stack %s: cannot attach: %s", n->cfg.stack, strerror(-rc));
        return rc;
    }
    uint16_t port = n->cfg.replicas[n->cfg.id].port;
    rc = rs_listen(s, port);
    if (rc < 0) {
        rs_detach(s);
        snprintf(err->msg, sizeof(err->msg), "stack %s: cannot listen on port %u: %s", n->cfg.stack, port,
                 strerror(-rc));
        return rc;
    }
    if (rs_local_ip(s) != n->cfg.replicas[n->cfg.id].ip) {
        char have[16], want[16];
        rn_ip_format(rs_local_ip(s), have, sizeof(have));
        rn_ip_format(n->cfg.replicas[n->cfg.id].ip, want, sizeof(want));
        rn_log(n, "warning: the stack's address is %s but replicas[%u].ip is %s", have, n->cfg.id, want);
    }
    rn_stack_drop(n, now_us);
    n->stack = s;
    n->c.attaches++;
    rn_links_service(n, now_us);
    return 0;
}

int rn_node_attach_wait(rn_node *n, volatile sig_atomic_t *stop, rn_error *err)
{
    uint64_t deadline = rn_now_us() + (uint64_t)n->cfg.attach_timeout_ms * 1000u;
    for (;;) {
        int rc = rn_node_attach(n, rn_now_us(), err);
        /* only "nobody there yet" is worth waiting for */
        if (rc == 0 || (rc != -ENOENT && rc != -ECONNREFUSED) || rn_now_us() >= deadline || (stop && *stop))
            return rc;
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* ---------- control socket ---------- */

static json_t *rn_ctl_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_t *rn_ctl_error(const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0)
        msg[0] = 0;
    va_end(ap);
    /* message text may quote client bytes: keep it valid UTF-8 */
    for (char *p = msg; *p; p++) {
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            *p = '?';
    }
    return json_pack("{s:b, s:s}", "ok", 0, "error", msg);
}

static json_t *rn_ctl_counters(const rn_counters *c)
{
#define RN_C(name) #name, (json_int_t)c->name
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
                     " s:I, s:I, s:I, s:I, s:I}",
                     RN_C(msgs_in), RN_C(bytes_in), RN_C(msgs_out), RN_C(bytes_out), RN_C(drop_eagain),
                     RN_C(drop_no_flow), RN_C(drop_detached), RN_C(drop_oversize), RN_C(drop_error),
                     RN_C(bad_msgs), RN_C(misrouted), RN_C(connects), RN_C(established), RN_C(resets),
                     RN_C(accepted), RN_C(attaches), RN_C(stack_losses), RN_C(events), RN_C(event_write_errors),
                     RN_C(ctl_lines), RN_C(ctl_errors), RN_C(ticks), "drops",
                     (json_int_t)(c->drop_eagain + c->drop_no_flow + c->drop_detached + c->drop_oversize +
                                  c->drop_error));
#undef RN_C
}

static json_t *rn_ctl_peers(const rn_node *n)
{
    static const char *const names[] = {"idle", "connecting", "up"};
    json_t *a = json_array();
    for (uint8_t j = 0; a && j < n->cfg.n_replicas; j++) {
        if (j == n->cfg.id)
            continue;
        if (json_array_append_new(a, json_pack("{s:i, s:s}", "replica", j, "state", names[n->links[j].state]))) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

static json_t *rn_ctl_status(rn_node *n)
{
    px_status st;
    px_replica_status(n->r, &st);
    uint64_t now = rn_now_us();
    json_t *o = json_pack("{s:b, s:i, s:s, s:o, s:i, s:o, s:o, s:o, s:o, s:o, s:I, s:I, s:b, s:o, s:I, s:o, "
                          "s:o, s:b, s:s, s:s, s:o, s:o}",
                          "ok", 1, "id", st.id, "role", px_role_name(st.role), "ballot", rn_u64(st.ballot), "leader",
                          st.leader, "last_executed", rn_u64(st.last_executed), "gle", rn_u64(st.gle), "log_base",
                          rn_u64(st.log_base), "log_entries", rn_u64(st.log_entries), "digest", rn_u64(st.digest),
                          "heartbeat_us", (json_int_t)st.heartbeat_us, "election_timeout_us",
                          (json_int_t)st.election_timeout_us, "needs_snapshot", st.needs_snapshot, "pending_cmds",
                          rn_u64(st.pending_cmds), "pid", (json_int_t)getpid(), "t_us", rn_u64(now), "uptime_us",
                          rn_u64(now - n->started_us), "attached", n->stack != NULL, "durability",
                          px_durability_name(n->cfg.durability), "fd", px_fd_policy_name(n->cfg.paxos.fd), "peers",
                          rn_ctl_peers(n), "net", rn_ctl_counters(&n->c));
    return o;
}

static json_t *rn_ctl_set(rn_node *n, const json_t *req)
{
    const json_t *param = json_object_get(req, "param"), *value = json_object_get(req, "value");
    if (!json_is_string(param))
        return rn_ctl_error("param: expected a parameter name (a string)");
    const char *name = json_string_value(param);
    char text[64];
    if (json_is_string(value) && json_string_length(value) < sizeof(text) &&
        strlen(json_string_value(value)) == json_string_length(value))
        snprintf(text, sizeof(text), "%s", json_string_value(value));
    else if (json_is_integer(value))
        snprintf(text, sizeof(text), "%" JSON_INTEGER_FORMAT, json_integer_value(value));
    else if (json_is_real(value))
        snprintf(text, sizeof(text), "%.17g", json_real_value(value));
    else
        return rn_ctl_error("value: expected a short string or a number for %.64s", name);
    int rc = px_replica_set_param(n->r, name, text);
    if (rc == -ENOENT)
        return rn_ctl_error("param: unknown parameter \"%.64s\"", name);
    if (rc < 0)
        return rn_ctl_error("value: bad value \"%s\" for %.64s (out of range or inconsistent with the rest)",
                            text, name);
    /* keep our copy in step, so status shows the live policy */
    px_config_set(&n->cfg.paxos, name, text);
    rn_log(n, "set %s = %s", name, text);
    return json_pack("{s:b, s:s, s:s}", "ok", 1, "param", name, "value", text);
}

char *rn_node_control(rn_node *n, const char *line, size_t len)
{
    n->c.ctl_lines++;
    json_error_t je;
    json_t *req = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je), *rep;
    const json_t *cmd = json_is_object(req) ? json_object_get(req, "cmd") : NULL;
    if (!req)
        rep = rn_ctl_error("invalid JSON: %s", je.text);
    else if (!json_is_object(req))
        rep = rn_ctl_error("expected a JSON object like {\"cmd\":\"status\"}");
    else if (!json_is_string(cmd))
        rep = rn_ctl_error("cmd: expected a string (status, set or ping)");
    else if (strcmp(json_string_value(cmd), "status") == 0)
        rep = rn_ctl_status(n);
    else if (strcmp(json_string_value(cmd), "set") == 0)
        rep = rn_ctl_set(n, req);
    else if (strcmp(json_string_value(cmd), "ping") == 0)
        rep = json_pack("{s:b, s:b, s:o}", "ok", 1, "pong", 1, "t_us", rn_u64(rn_now_us()));
    else
        rep = rn_ctl_error("cmd: unknown command \"%.64s\" (expected status, set or ping)", json_string_value(cmd));
    json_decref(req);
    if (!rep)
        return NULL;
    if (!json_is_true(json_object_get(rep, "ok")))
        n->c.ctl_errors++;
    char *s = json_dumps(rep, JSON_COMPACT);
    json_decref(rep);
    return s;
}

static int rn_ctl_open(rn_node *n, rn_error *err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", n->cfg.control);
    struct stat st;
    /* a stale socket from a killed run: remove it, but never a regular file */
    if (lstat(n->cfg.control, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(n->cfg.control);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, RN_CTL_MAX_CLIENTS) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        snprintf(err->msg, sizeof(err->msg), "control %s: %s", n->cfg.control, strerror(e));
        return -e;
    }
    n->ctl_fd = fd;
    return 0;
}

static void rn_ctl_close_client(rn_ctl_client *cl)
{
    close(cl->fd);
    free(cl->buf);
    *cl = (rn_ctl_client){.fd = -1};
}

static void rn_ctl_accept(rn_node *n)
{
    for (;;) {
        int fd = accept4(n->ctl_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        rn_ctl_client *slot = NULL;
        for (int i = 0; i < RN_CTL_MAX_CLIENTS && !slot; i++)
            slot = n->ctl[i].fd < 0 ? &n->ctl[i] : NULL;
        char *buf = slot ? malloc(RN_CTL_LINE_MAX) : NULL;
        if (!buf) {
            static const char busy[] = "{\"ok\":false,\"error\":\"too many control clients\"}\n";
            ssize_t w = send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)w;
            close(fd);
            continue;
        }
        *slot = (rn_ctl_client){fd, buf, 0};
    }
}

/* Answer one line. false = drop the client (it does not read its replies, or OOM). */
static bool rn_ctl_answer(rn_node *n, rn_ctl_client *cl, const char *line, size_t len)
{
    if (len == 0)
        return true;
    char *rep = rn_node_control(n, line, len);
    if (!rep)
        return false;
    size_t rlen = strlen(rep);
    rep[rlen] = '\n'; /* json_dumps leaves the NUL: reuse it for the newline */
    ssize_t w = send(cl->fd, rep, rlen + 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    free(rep);
    return w == (ssize_t)(rlen + 1);
}

static void rn_ctl_read(rn_node *n, rn_ctl_client *cl)
{
    ssize_t r = recv(cl->fd, cl->buf + cl->len, RN_CTL_LINE_MAX - cl->len, MSG_DONTWAIT);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (r <= 0) {
        rn_ctl_close_client(cl);
        return;
    }
    cl->len += (size_t)r;
    size_t start = 0;
    for (size_t i = 0; i < cl->len; i++) {
        if (cl->buf[i] != '\n')
            continue;
        if (!rn_ctl_answer(n, cl, cl->buf + start, i - start)) {
            rn_ctl_close_client(cl);
            return;
        }
        start = i + 1;
    }
    memmove(cl->buf, cl->buf + start, cl->len - start);
    cl->len -= start;
    if (cl->len == RN_CTL_LINE_MAX) {
        static const char big[] = "{\"ok\":false,\"error\":\"line longer than 64 KiB\"}\n";
        ssize_t w = send(cl->fd, big, sizeof(big) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)w;
        n->c.ctl_errors++;
        rn_ctl_close_client(cl);
    }
}

/* ---------- life cycle ---------- */

static int rn_open_events(rn_node *n, rn_error *err)
{
    n->events_fd = open(n->cfg.events, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (n->events_fd < 0) {
        int e = errno;
        snprintf(err->msg, sizeof(err->msg), "events %s: %s", n->cfg.events, strerror(e));
        return -e;
    }
    return 0;
}

static int rn_node_init(rn_node *n, uint64_t now_us, rn_error *err)
{
    n->client_flow = calloc(RN_N_CLIENTS, sizeof(*n->client_flow));
    if (!n->client_flow) {
        snprintf(err->msg, sizeof(err->msg), "out of memory");
        return -ENOMEM;
    }
    rn_links_reset(n, now_us);
    if (n->cfg.events[0] && rn_open_events(n, err) < 0)
        return -EIO;
    char why[256];
    n->storage = px_storage_file_open(n->cfg.wal, n->cfg.durability, why, sizeof(why));
    if (!n->storage) {
        snprintf(err->msg, sizeof(err->msg), "wal %s: %s", n->cfg.wal, why);
        return -EIO;
    }
    uint64_t x = n->cfg.seed ^ ((uint64_t)n->cfg.id << 56);
    rift_rng_seed(&n->rng, rift_splitmix64(&x));
    rift_rng_seed(&n->jitter, rift_splitmix64(&x));
    px_env env = {.ctx = n, .send = rn_env_send, .event = rn_env_event, .storage = n->storage, .rng = &n->rng};
    int e = 0;
    n->now_us = now_us;
    n->r = px_replica_new(&n->cfg.paxos, n->cfg.id, &env, now_us, &e);
    if (!n->r) {
        snprintf(err->msg, sizeof(err->msg), "wal %s: cannot start the replica: %s", n->cfg.wal,
                 strerror(e < 0 ? -e : ENOMEM));
        return e < 0 ? e : -ENOMEM;
    }
    if (n->cfg.control[0])
        return rn_ctl_open(n, err);
    return 0;
}

rn_node *rn_node_new(const rn_config *cfg, uint64_t now_us, rn_error *err)
{
    rn_node *n = calloc(1, sizeof(*n));
    if (!n) {
        snprintf(err->msg, sizeof(err->msg), "out of memory");
        return NULL;
    }
    n->cfg = *cfg;
    n->events_fd = -1;
    n->ctl_fd = -1;
    for (int i = 0; i < RN_CTL_MAX_CLIENTS; i++)
        n->ctl[i].fd = -1;
    n->started_us = now_us;
    n->last_tick_us = now_us;
    if (rn_node_init(n, now_us, err) < 0) {
        rn_node_free(n);
        return NULL;
    }
    return n;
}

void rn_node_free(rn_node *n)
{
    if (!n)
        return;
    if (n->storage)
        px_storage_flush(n->storage);
    rn_stack_drop(n, 0);
    px_replica_free(n->r);
    px_storage_close(n->storage);
    for (int i = 0; i < RN_CTL_MAX_CLIENTS; i++) {
        if (n->ctl[i].fd >= 0)
            rn_ctl_close_client(&n->ctl[i]);
    }
    if (n->ctl_fd >= 0) {
        close(n->ctl_fd);
        unlink(n->cfg.control);
    }
    if (n->events_fd >= 0)
        close(n->events_fd);
    free(n->client_flow);
    free(n->enc);
    free(n);
}

/* ---------- the loop ---------- */

static uint64_t rn_next_wake(const rn_node *n)
{
    uint64_t wake = px_replica_next_tick_us(n->r);
    if (wake < n->last_tick_us + RN_TICK_FLOOR_US)
        wake = n->last_tick_us + RN_TICK_FLOOR_US;
    for (uint8_t j = 0; n->stack && j < n->cfg.n_replicas; j++) {
        const rn_link *l = &n->links[j];
        uint64_t t = UINT64_MAX;
        if (j != n->cfg.id && l->state == RN_LINK_IDLE)
            t = l->retry_at_us;
        else if (l->state == RN_LINK_CONNECTING)
            t = l->since_us + RN_CONNECT_TIMEOUT_US;
        wake = t < wake ? t : wake;
    }
    if (!n->stack && n->attach_retry_at_us < wake)
        wake = n->attach_retry_at_us;
    return wake;
}

static void rn_drain_stack(rn_node *n)
{
    rs_event ev;
    for (unsigned i = 0; i < RN_POLL_BUDGET; i++) {
        int rc = rs_poll(n->stack, &ev);
        if (rc == 0) {
            n->more = false;
            return;
        }
        if (rc < 0) {
            n->stack_lost = true;
            return;
        }
        rn_node_on_stack_event(n, &ev, rn_now_us());
        if (n->stack_lost)
            return;
    }
    n->more = true;
}

static void rn_retry_attach(rn_node *n, uint64_t now_us)
{
    rn_error err;
    if (rn_node_attach(n, now_us, &err) == 0) {
        rn_log(n, "re-attached to %s", n->cfg.stack);
        return;
    }
    n->attach_backoff_us = n->attach_backoff_us * 2 > RN_BACKOFF_MAX_US ? RN_BACKOFF_MAX_US : n->attach_backoff_us * 2;
    n->attach_retry_at_us = now_us + n->attach_backoff_us;
}

/* Poll set: [0] stack, [1] control listener, then control clients (fd -1 = ignored). */
static nfds_t rn_pollset(const rn_node *n, struct pollfd *p)
{
    p[0] = (struct pollfd){n->stack ? rs_fd(n->stack) : -1, POLLIN, 0};
    p[1] = (struct pollfd){n->ctl_fd, POLLIN, 0};
    for (int i = 0; i < RN_CTL_MAX_CLIENTS; i++)
        p[2 + i] = (struct pollfd){n->ctl[i].fd, POLLIN, 0};
    return 2 + RN_CTL_MAX_CLIENTS;
}

int rn_node_step(rn_node *n, uint64_t max_wait_us)
{
    struct pollfd p[2 + RN_CTL_MAX_CLIENTS];
    nfds_t np = rn_pollset(n, p);
    uint64_t now = rn_now_us(), wake = rn_next_wake(n);
    uint64_t wait = n->more ? 0 : wake > now ? wake - now : 0;
    wait = wait < max_wait_us ? wait : max_wait_us;
    struct timespec ts = {(time_t)(wait / 1000000u), (long)(wait % 1000000u) * 1000};
    if (ppoll(p, np, &ts, NULL) < 0) {
        if (errno == EINTR)
            return 0; /* a signal: let the caller look at its stop flag */
        return -errno;
    }
    if (n->stack)
        rn_drain_stack(n); /* always: a cheap empty check, and no lost wake-up can strand events */
    if (p[1].revents)
        rn_ctl_accept(n);
    for (int i = 0; i < RN_CTL_MAX_CLIENTS; i++) {
        if (p[2 + i].revents && n->ctl[i].fd == p[2 + i].fd)
            rn_ctl_read(n, &n->ctl[i]);
    }
    now = rn_now_us();
    if (now >= px_replica_next_tick_us(n->r) && now >= n->last_tick_us + RN_TICK_FLOOR_US) {
        n->now_us = now;
        n->last_tick_us = now;
        n->c.ticks++;
        px_replica_tick(n->r, now);
    }
    rn_links_service(n, now);
    if (n->stack_lost)
        rn_stack_lost(n, now);
    if (!n->stack && now >= n->attach_retry_at_us)
        rn_retry_attach(n, now);
    return 0;
}

int rn_node_run(rn_node *n, volatile sig_atomic_t *stop)
{
    while (!*stop) {
        /* cap the sleep so a signal landing just before ppoll is seen soon */
        int rc = rn_node_step(n, 100000);
        if (rc < 0)
            return rc;
    }
    return 0;
}

const rn_counters *rn_node_counters(const rn_node *n) { return &n->c; }
px_replica *rn_node_replica(rn_node *n) { return n->r; }
bool rn_node_attached(const rn_node *n) { return n->stack != NULL; }
