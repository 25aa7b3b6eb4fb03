/* ch_dpdk_backend.c — run a scenario on the real dataplane.
 *
 * The testbed (ch_testbed): one network namespace per node, veths into a
 * bridge in a namespace of its own. Per replica node one rift-stackd (DPDK on
 * the node's veth) and one rift-replica attached to it; per client node one
 * rift-stackd to which the controller itself attaches (Unix sockets and memfds
 * cross network namespaces), so the workload engine (wl_client, the same one
 * the simulator runs) drives real flows and the history is stamped on the
 * controller's clock.
 *
 * Time: every process uses CLOCK_MONOTONIC; run time 0 is when the replicas
 * are started, so replica events (their own files, one JSON line each) and the
 * controller's history and actions share one timeline.
 *
 * Faults: a rule on the directed link a -> b is installed once, in a's
 * rift-stackd (its TX path matches local a -> peer b), so a loss probability is
 * applied once, not twice. Crash = SIGKILL of rift-replica (its stack stays
 * up, as a machine's NIC would), restart = start it again on the same WAL,
 * pause = SIGSTOP/SIGCONT, link-down = the veth itself via libnl. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../stack/rift_stack.h"
#include "ch_backend.h"
#include "ch_ctl.h"
#include "ch_fs.h"
#include "ch_links.h"
#include "ch_proc.h"
#include "ch_testbed.h"
#include "ch_timeline.h"
#include "wl_client.h"

#define N_NODES_MAX (PX_MAX_REPLICAS + CH_MAX_CLIENT_NODES)
#define REPLICA_PORT 7000
#define SAMPLE_EVERY_US 100000u
#define RESOURCE_EVERY_US 1000000u
#define CTL_TIMEOUT_MS 200
#define STACK_READY_MS 20000
#define RECONNECT_US 100000u
#define MAX_RULES 4096

typedef struct rule_ref {
    int node;      /* the rift-stackd holding it; -1 = slot free */
    int remote_id; /* its id there */
    int src, dst;
} rule_ref;

typedef struct client_flow {
    uint32_t handle;     /* 0 = none */
    bool established;
    uint64_t retry_at_us;
} client_flow;

typedef struct dnode {
    char name[8];
    uint32_t ip;
    bool replica;
    char dir[PATH_MAX];
    pid_t stackd_pid, replica_pid;
    ch_proc_usage stackd_usage, replica_usage;
    ch_ctl stack_ctl, replica_ctl;
    char replica_cfg[PATH_MAX], events_path[PATH_MAX];
    int events_fd;
    char ev_buf[8192];
    size_t ev_len;
    px_status last;      /* last status sample */
    px_role role;        /* from events */
    uint64_t ballot;
    /* client nodes: the controller's attachment */
    rs_stack *rs;
    client_flow flows[PX_MAX_REPLICAS];
} dnode;

typedef struct drun {
    const ch_run_ctx *ctx;
    const ch_scenario *sc;
    ch_error *err;
    ch_testbed *tb;
    char prefix[16];
    char bin_dir[PATH_MAX];
    int n_nodes, n_replicas;
    dnode nodes[N_NODES_MAX];
    ch_timeline *tl;
    wl_client *wl;
    uint64_t t0_abs_us;          /* CLOCK_MONOTONIC µs at run time 0 */
    uint64_t wl_timer_us;        /* UINT64_MAX = not armed */
    rift_rng wl_rng;
    rule_ref rules[MAX_RULES];
    ch_proc_usage self_usage;
    uint64_t ok_last_second;
    int error;
} drun;

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t run_us(const drun *r) { return mono_us() - r->t0_abs_us; }

static void ip_str(uint32_t ip, char *buf, size_t len)
{
    snprintf(buf, len, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 0xff, (ip >> 8) & 0xff, ip & 0xff);
}

/* ---------- environment ---------- */

/* rift-stackd and rift-replica live next to the rift binary. */
static int find_bin_dir(drun *r)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        return -errno;
    self[n] = 0;
    char *slash = strrchr(self, '/');
    if (slash)
        *slash = 0;
    snprintf(r->bin_dir, sizeof(r->bin_dir), "%s", self);
    return 0;
}

static int check_environment(drun *r)
{
    if (geteuid() != 0) {
        snprintf(r->err->msg, sizeof(r->err->msg),
                 "the dpdk backend needs root (network namespaces, veths, DPDK); run as root or use --backend sim");
        return -EPERM;
    }
    if (find_bin_dir(r) < 0) {
        snprintf(r->err->msg, sizeof(r->err->msg), "cannot locate the rift binary (/proc/self/exe)");
        return -ENOENT;
    }
    static const char *const need[] = {"rift-stackd", "rift-replica"};
    for (size_t i = 0; i < 2; i++) {
        char p[PATH_MAX + 32];
        snprintf(p, sizeof(p), "%s/%s", r->bin_dir, need[i]);
        if (access(p, X_OK) != 0) {
            snprintf(r->err->msg, sizeof(r->err->msg), "%s is missing (build it: make build); or use --backend sim", p);
            return -ENOENT;
        }
    }
    return 0;
}

/* ---------- processes ---------- */

static int write_stackd_config(drun *r, dnode *n, int idx, char *path, size_t len)
{
    char ip[20];
    ip_str(n->ip, ip, sizeof(ip));
    snprintf(path, len, "%s/stackd.json", n->dir);
    char sock[PATH_MAX + 32], ctl[PATH_MAX + 32], log[PATH_MAX + 32];
    snprintf(sock, sizeof(sock), "%s/stack.sock", n->dir);
    snprintf(ctl, sizeof(ctl), "%s/stackd.ctl", n->dir);
    snprintf(log, sizeof(log), "%s/stackd.log", n->dir);
    json_t *cfg = json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:s, s:I}", "ip", ip, "netmask_bits", 24, "iface",
                            ch_testbed_iface(r->tb, idx), "pmd", "auto", "socket", sock, "control", ctl, "polling",
                            "adaptive", "seed", (json_int_t)(r->ctx->seed * 31 + (uint64_t)idx));
    json_object_set_new(cfg, "core", json_string("any")); /* float: several stacks share two cores */
    (void)log;
    if (!cfg)
        return -ENOMEM;
    int e = ch_fs_write_json(path, cfg, JSON_INDENT(2));
    json_decref(cfg);
    ch_ctl_init(&n->stack_ctl, ctl);
    return e;
}

static int start_stackd(drun *r, int idx)
{
    dnode *n = &r->nodes[idx];
    char cfg[PATH_MAX + 32], bin[PATH_MAX + 32], log[PATH_MAX + 32];
    int e = write_stackd_config(r, n, idx, cfg, sizeof(cfg));
    if (e < 0)
        return e;
    snprintf(bin, sizeof(bin), "%s/rift-stackd", r->bin_dir);
    snprintf(log, sizeof(log), "%s/stackd.log", n->dir);
    char *argv[] = {bin, "--config", cfg, NULL};
    return ch_proc_spawn(ch_testbed_ns_path(r->tb, idx), argv, log, &n->stackd_pid, r->err);
}

static void paxos_param(void *ctx, const char *name, const char *value)
{
    json_object_set_new(ctx, name, json_string(value));
}

static int write_replica_config(drun *r, dnode *n, int id)
{
    const ch_scenario *sc = r->sc;
    json_t *peers = json_array();
    char ip[20];
    for (int i = 0; i < r->n_replicas; i++) {
        ip_str(r->nodes[i].ip, ip, sizeof(ip));
        json_array_append_new(peers, json_pack("{s:s, s:i}", "ip", ip, "port", REPLICA_PORT));
    }
    char sock[PATH_MAX + 32], wal[PATH_MAX + 32], ctl[PATH_MAX + 32];
    snprintf(sock, sizeof(sock), "%s/stack.sock", n->dir);
    snprintf(wal, sizeof(wal), "%s/replica.wal", n->dir);
    snprintf(ctl, sizeof(ctl), "%s/replica.ctl", n->dir);
    snprintf(n->events_path, sizeof(n->events_path), "%s/events.jsonl", n->dir);
    json_t *paxos = json_object();
    px_config_foreach(&sc->paxos, paxos_param, paxos);
    json_t *cfg = json_pack("{s:i, s:o, s:s, s:s, s:s, s:o, s:s, s:s, s:I}", "id", id, "replicas", peers, "stack", sock,
                            "wal", wal, "durability", px_durability_name(sc->durability), "paxos", paxos, "control",
                            ctl, "events", n->events_path, "seed", (json_int_t)(r->ctx->seed + (uint64_t)id));
    if (!cfg)
        return -ENOMEM;
    snprintf(n->replica_cfg, sizeof(n->replica_cfg), "%s/replica.json", n->dir);
    int e = ch_fs_write_json(n->replica_cfg, cfg, JSON_INDENT(2));
    json_decref(cfg);
    ch_ctl_init(&n->replica_ctl, ctl);
    return e;
}

static int start_replica(drun *r, int id)
{
    dnode *n = &r->nodes[id];
    char bin[PATH_MAX + 32], log[PATH_MAX + 32];
    snprintf(bin, sizeof(bin), "%s/rift-replica", r->bin_dir);
    snprintf(log, sizeof(log), "%s/replica.log", n->dir);
    char *argv[] = {bin, "--config", n->replica_cfg, NULL};
    ch_ctl_close(&n->replica_ctl);
    n->replica_usage = (ch_proc_usage){0};
    return ch_proc_spawn(ch_testbed_ns_path(r->tb, id), argv, log, &n->replica_pid, r->err);
}

/* SIGKILL is a crash (no grace); SIGTERM gets 2 s to clean up. */
static void kill_wait(pid_t *pid, int sig)
{
    if (*pid <= 0)
        return;
    int status;
    if (sig == SIGKILL) {
        ch_proc_kill(*pid, SIGKILL);
        ch_proc_stop(*pid, 0, &status);
    } else {
        ch_proc_stop(*pid, 2000, &status);
    }
    *pid = 0;
}

/* ---------- replica events ---------- */

static int event_kind(const char *name)
{
    for (int k = 1; k <= PX_EV_KIND_MAX; k++)
        if (strcmp(px_event_kind_name(k), name) == 0)
            return k;
    return -1;
}

static void on_event_line(drun *r, int id, const char *line, size_t len)
{
    json_t *j = json_loadb(line, len, 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        return;
    }
    int kind = event_kind(json_string_value(json_object_get(j, "kind")) ?: "");
    json_int_t t = json_integer_value(json_object_get(j, "t_us"));
    if (kind > 0 && t >= (json_int_t)r->t0_abs_us) {
        px_event e = {.kind = (uint8_t)kind,
                      .replica = (uint8_t)id,
                      .time_us = (uint64_t)t - r->t0_abs_us,
                      .ballot = (uint64_t)json_integer_value(json_object_get(j, "ballot")),
                      .index = (uint64_t)json_integer_value(json_object_get(j, "index")),
                      .a = (uint64_t)json_integer_value(json_object_get(j, "a")),
                      .b = (uint64_t)json_integer_value(json_object_get(j, "b"))};
        ch_record_px_event(r->ctx->record, &e);
        dnode *n = &r->nodes[id];
        if (kind == PX_EV_ROLE)
            n->role = (px_role)e.a;
        if (kind == PX_EV_BALLOT || kind == PX_EV_ELECTION_START)
            n->ballot = e.ballot > n->ballot ? e.ballot : n->ballot;
    }
    json_decref(j);
}

/* Read whatever the replica appended since last time; whole lines only. */
static void pump_events(drun *r, int id)
{
    dnode *n = &r->nodes[id];
    if (n->events_fd < 0) {
        n->events_fd = open(n->events_path, O_RDONLY | O_CLOEXEC);
        if (n->events_fd < 0)
            return;
    }
    for (;;) {
        ssize_t got = read(n->events_fd, n->ev_buf + n->ev_len, sizeof(n->ev_buf) - n->ev_len);
        if (got <= 0)
            return;
        n->ev_len += (size_t)got;
        size_t start = 0;
        for (size_t i = 0; i < n->ev_len; i++) {
            if (n->ev_buf[i] == '\n') {
                on_event_line(r, id, n->ev_buf + start, i - start);
                start = i + 1;
            }
        }
        if (start == 0 && n->ev_len == sizeof(n->ev_buf))
            start = n->ev_len; /* an absurd line: drop it rather than stall */
        memmove(n->ev_buf, n->ev_buf + start, n->ev_len - start);
        n->ev_len -= start;
    }
}

/* ---------- sampling ---------- */

static void status_from_json(const json_t *j, px_status *st)
{
    memset(st, 0, sizeof(*st));
    const char *role = json_string_value(json_object_get(j, "role"));
    st->role = role && strcmp(role, "leader") == 0 ? PX_LEADER : role && strcmp(role, "candidate") == 0 ? PX_CANDIDATE
                                                                                                       : PX_FOLLOWER;
#define U(f) st->f = (uint64_t)json_integer_value(json_object_get(j, #f))
    U(ballot);
    U(last_executed);
    U(gle);
    U(log_base);
    U(log_entries);
    U(digest);
    U(pending_cmds);
#undef U
    st->leader = (int)json_integer_value(json_object_get(j, "leader"));
    st->heartbeat_us = (uint32_t)json_integer_value(json_object_get(j, "heartbeat_us"));
    st->election_timeout_us = (uint32_t)json_integer_value(json_object_get(j, "election_timeout_us"));
    st->needs_snapshot = json_is_true(json_object_get(j, "needs_snapshot"));
}

static void sample_replicas(drun *r, uint64_t now)
{
    json_t *req = json_pack("{s:s}", "cmd", "status");
    for (int i = 0; i < r->n_replicas; i++) {
        dnode *n = &r->nodes[i];
        bool down = ch_timeline_replica_down(r->tl, i) || n->replica_pid <= 0;
        bool paused = ch_timeline_replica_paused(r->tl, i);
        if (!down && !paused) {
            json_t *rep = NULL;
            if (ch_ctl_call(&n->replica_ctl, req, CTL_TIMEOUT_MS, &rep) == 0)
                status_from_json(rep, &n->last);
            json_decref(rep);
        }
        ch_record_sample(r->ctx->record, now, i, &n->last, down, paused);
    }
    json_decref(req);
}

static void sample_resources(drun *r, uint64_t now)
{
    for (int i = 0; i < r->n_nodes; i++) {
        dnode *n = &r->nodes[i];
        double cpu;
        uint64_t rss;
        char name[32];
        if (n->stackd_pid > 0 && ch_proc_sample(n->stackd_pid, &n->stackd_usage, &cpu, &rss, NULL) == 0) {
            snprintf(name, sizeof(name), "%s/rift-stackd", n->name);
            ch_record_resource(r->ctx->record, now, name, cpu, rss);
        }
        if (n->replica_pid > 0 && ch_proc_sample(n->replica_pid, &n->replica_usage, &cpu, &rss, NULL) == 0) {
            snprintf(name, sizeof(name), "%s/rift-replica", n->name);
            ch_record_resource(r->ctx->record, now, name, cpu, rss);
        }
    }
    double cpu;
    uint64_t rss;
    if (ch_proc_sample(getpid(), &r->self_usage, &cpu, &rss, NULL) == 0)
        ch_record_resource(r->ctx->record, now, "controller/rift", cpu, rss);
}

/* ---------- timeline primitives ---------- */

static int tl_leader(void *ctx)
{
    drun *r = ctx;
    int best = -1;
    uint64_t best_ballot = 0;
    for (int i = 0; i < r->n_replicas; i++) {
        dnode *n = &r->nodes[i];
        if (n->replica_pid <= 0 || ch_timeline_replica_down(r->tl, i) || ch_timeline_replica_paused(r->tl, i))
            continue;
        if (n->role == PX_LEADER && (best < 0 || n->ballot > best_ballot)) {
            best = i;
            best_ballot = n->ballot;
        }
    }
    return best;
}

/* The st_ctl "impair-add" rule for src -> dst (fields as in docs/stackd.md). */
static json_t *rule_json(const drun *r, int src, int dst, const st_impair_rule *rule)
{
    static const char *const dist[] = {"uniform", "normal", "pareto"};
    char a[20], b[20];
    ip_str(r->nodes[src].ip, a, sizeof(a));
    ip_str(r->nodes[dst].ip, b, sizeof(b));
    json_t *j = json_pack("{s:s, s:s, s:b}", "src", a, "dst", b, "cut", rule->cut);
    if (rule->loss > 0) {
        json_object_set_new(j, "loss", json_real(rule->loss));
        json_object_set_new(j, "correlation", json_real(rule->loss_correlation));
    }
    if (rule->delay_us || rule->jitter_us) {
        json_object_set_new(j, "delay_ms", json_real((double)rule->delay_us / 1000.0));
        json_object_set_new(j, "jitter_ms", json_real((double)rule->jitter_us / 1000.0));
        json_object_set_new(j, "distribution", json_string(dist[rule->distribution < 3 ? rule->distribution : 0]));
    }
    if (rule->duplicate > 0)
        json_object_set_new(j, "duplicate", json_real(rule->duplicate));
    if (rule->reorder > 0) {
        json_object_set_new(j, "reorder", json_real(rule->reorder));
        if (rule->reorder_us)
            json_object_set_new(j, "reorder_ms", json_real((double)rule->reorder_us / 1000.0));
    }
    return j;
}

static int tl_impair_add(void *ctx, int src, int dst, const st_impair_rule *rule)
{
    drun *r = ctx;
    int slot = -1;
    for (int i = 0; i < MAX_RULES && slot < 0; i++)
        if (r->rules[i].node < 0)
            slot = i;
    if (slot < 0)
        return -ENOSPC;
    json_t *req = json_pack("{s:s, s:o}", "cmd", "impair-add", "rule", rule_json(r, src, dst, rule));
    json_t *rep = NULL;
    int e = ch_ctl_call(&r->nodes[src].stack_ctl, req, CTL_TIMEOUT_MS * 5, &rep);
    json_decref(req);
    if (e == 0) {
        r->rules[slot] = (rule_ref){src, (int)json_integer_value(json_object_get(rep, "id")), src, dst};
    } else if (e == -EREMOTEIO) {
        fprintf(stderr, "rift: %s refused a rule: %s\n", r->nodes[src].name,
                json_string_value(json_object_get(rep, "error")) ?: "?");
        e = -EINVAL;
    }
    json_decref(rep);
    return e < 0 ? e : slot;
}

static int tl_impair_remove(void *ctx, int id)
{
    drun *r = ctx;
    if (id < 0 || id >= MAX_RULES || r->rules[id].node < 0)
        return -ENOENT;
    json_t *req = json_pack("{s:s, s:i}", "cmd", "impair-remove", "id", r->rules[id].remote_id);
    json_t *rep = NULL;
    int e = ch_ctl_call(&r->nodes[r->rules[id].node].stack_ctl, req, CTL_TIMEOUT_MS * 5, &rep);
    json_decref(req);
    json_decref(rep);
    r->rules[id].node = -1;
    return e;
}

static void tl_impair_clear_link(void *ctx, int src, int dst)
{
    drun *r = ctx;
    char a[20], b[20];
    ip_str(r->nodes[src].ip, a, sizeof(a));
    ip_str(r->nodes[dst].ip, b, sizeof(b));
    json_t *req = json_pack("{s:s, s:s, s:s}", "cmd", "impair-clear", "src", a, "dst", b);
    json_t *rep = NULL;
    ch_ctl_call(&r->nodes[src].stack_ctl, req, CTL_TIMEOUT_MS * 5, &rep);
    json_decref(req);
    json_decref(rep);
    for (int i = 0; i < MAX_RULES; i++)
        if (r->rules[i].node >= 0 && r->rules[i].src == src && r->rules[i].dst == dst)
            r->rules[i].node = -1;
}

static bool tl_impair_alive(void *ctx, int id)
{
    drun *r = ctx;
    return id >= 0 && id < MAX_RULES && r->rules[id].node >= 0;
}

static int tl_crash(void *ctx, int rep)
{
    drun *r = ctx;
    dnode *n = &r->nodes[rep];
    if (n->replica_pid <= 0)
        return -EALREADY;
    kill_wait(&n->replica_pid, SIGKILL);
    n->role = PX_FOLLOWER;
    return 0;
}

static int tl_restart(void *ctx, int rep)
{
    drun *r = ctx;
    dnode *n = &r->nodes[rep];
    if (n->replica_pid > 0)
        kill_wait(&n->replica_pid, SIGKILL); /* a reboot: no goodbye */
    n->role = PX_FOLLOWER;
    return start_replica(r, rep);
}

static int tl_pause(void *ctx, int rep, bool pause)
{
    drun *r = ctx;
    dnode *n = &r->nodes[rep];
    if (n->replica_pid <= 0)
        return -EALREADY;
    if (!pause)
        ch_ctl_close(&n->replica_ctl); /* replies queued while stopped are stale */
    return ch_proc_kill(n->replica_pid, pause ? SIGSTOP : SIGCONT);
}

static int tl_set_param(void *ctx, int rep, const char *param, const char *value)
{
    drun *r = ctx;
    json_t *req = json_pack("{s:s, s:s, s:s}", "cmd", "set", "param", param, "value", value);
    json_t *reply = NULL;
    int e = ch_ctl_call(&r->nodes[rep].replica_ctl, req, CTL_TIMEOUT_MS * 5, &reply);
    json_decref(req);
    json_decref(reply);
    return e;
}

static int tl_link_set(void *ctx, int node, bool up)
{
    drun *r = ctx;
    return ch_testbed_link_set(r->tb, node, up, r->err);
}

/* ---------- workload over rift_stack ---------- */

static int client_node_of(const drun *r, uint32_t addr)
{
    uint32_t k = addr - PX_CLIENT_BASE;
    return r->n_replicas + (int)(k % r->sc->workload.nodes);
}

static void wl_send(void *ctx, const px_msg *m)
{
    drun *r = ctx;
    if (m->to >= r->n_replicas || m->from < PX_CLIENT_BASE)
        return;
    dnode *n = &r->nodes[client_node_of(r, m->from)];
    client_flow *f = &n->flows[m->to];
    if (!n->rs || !f->established)
        return; /* the client retries to another replica after retry_us */
    uint8_t buf[65536];
    size_t len;
    if (px_msg_encode(m, buf, sizeof(buf), &len) == 0)
        rs_send(n->rs, f->handle, buf, len);
}

static void wl_arm(void *ctx, uint64_t at_us)
{
    drun *r = ctx;
    r->wl_timer_us = at_us;
}

static uint64_t wl_now(void *ctx) { return run_us(ctx); }

static void wl_history(void *ctx, const wl_hist *h)
{
    drun *r = ctx;
    if (ch_record_wl_op(r->ctx->record, h) < 0)
        r->error = -ENOMEM;
    if (h->type == WL_HIST_OK || h->type == WL_HIST_FAIL)
        r->ok_last_second++;
}

static void connect_flows(drun *r, dnode *n, uint64_t now)
{
    for (int i = 0; i < r->n_replicas; i++) {
        client_flow *f = &n->flows[i];
        if (f->handle || now < f->retry_at_us)
            continue;
        if (rs_connect(n->rs, r->nodes[i].ip, REPLICA_PORT, &f->handle) < 0) {
            f->handle = 0;
            f->retry_at_us = now + RECONNECT_US;
        }
        f->established = false;
    }
}

static void pump_client_node(drun *r, dnode *n)
{
    rs_event ev;
    int got;
    while ((got = rs_poll(n->rs, &ev)) > 0) {
        int rep = -1;
        for (int i = 0; i < r->n_replicas; i++)
            if (n->flows[i].handle == ev.flow)
                rep = i;
        if (rep < 0)
            continue;
        client_flow *f = &n->flows[rep];
        switch (ev.kind) {
        case RS_EV_ESTABLISHED: f->established = true; break;
        case RS_EV_RESET:
        case RS_EV_CLOSED:
            *f = (client_flow){.retry_at_us = run_us(r) + RECONNECT_US};
            break;
        case RS_EV_MSG: {
            px_msg m;
            if (px_msg_decode(ev.data, ev.len, &m) == 0) {
                wl_recv(r->wl, &m);
                px_msg_release(&m);
            }
            break;
        }
        default: break;
        }
    }
    if (got < 0 && !r->error) {
        snprintf(r->err->msg, sizeof(r->err->msg), "the rift-stackd of client node %s died", n->name);
        r->error = -EPIPE;
    }
}

static int start_workload(drun *r)
{
    const ch_scenario *sc = r->sc;
    wl_config c;
    wl_config_default(&c);
    c.n_clients = sc->workload.clients;
    c.n_replicas = (uint8_t)r->n_replicas;
    c.rate_ops_per_s = sc->workload.rate_ops_per_s;
    c.mix[PX_OP_GET] = sc->workload.mix.get;
    c.mix[PX_OP_PUT] = sc->workload.mix.put;
    c.mix[PX_OP_DEL] = sc->workload.mix.del;
    c.mix[PX_OP_APPEND] = sc->workload.mix.append;
    c.mix[PX_OP_CAS] = sc->workload.mix.cas;
    c.n_keys = sc->workload.keys;
    c.dist = sc->workload.distribution == CH_KEYS_ZIPF ? WL_KEYS_ZIPF : WL_KEYS_UNIFORM;
    c.zipf_theta = sc->workload.zipf_s;
    c.value_bytes = sc->workload.value_bytes;
    c.op_timeout_us = sc->workload.op_timeout_ms * 1000;
    rift_rng_seed(&r->wl_rng, r->ctx->seed ^ 0x3c1e7u);
    wl_env env = {.ctx = r, .now_us = wl_now, .send = wl_send, .arm = wl_arm, .rng = &r->wl_rng};
    int e = 0;
    r->wl = wl_new(&c, &env, &e);
    if (!r->wl)
        return e ? e : -ENOMEM;
    wl_on_history(r->wl, wl_history, r);
    return wl_start(r->wl);
}

/* ---------- setup and teardown ---------- */

static int build_cluster(drun *r)
{
    const ch_scenario *sc = r->sc;
    uint32_t base = (198u << 24) | (18u << 16);
    r->n_replicas = sc->replicas;
    r->n_nodes = sc->replicas + (int)sc->workload.nodes;
    /* A reused --out directory must not hand old WALs to new replicas. */
    char nodes_dir[PATH_MAX + 16];
    snprintf(nodes_dir, sizeof(nodes_dir), "%s/nodes", r->ctx->run_dir);
    ch_fs_remove_tree(nodes_dir);
    const char *names[N_NODES_MAX];
    char ipbuf[N_NODES_MAX][20];
    const char *ips[N_NODES_MAX];
    for (int i = 0; i < r->n_nodes; i++) {
        dnode *n = &r->nodes[i];
        n->replica = i < r->n_replicas;
        snprintf(n->name, sizeof(n->name), "%c%d", n->replica ? 'r' : 'c', n->replica ? i + 1 : i - r->n_replicas + 1);
        n->ip = base | (uint32_t)(n->replica ? i + 1 : 101 + i - r->n_replicas);
        n->events_fd = -1;
        char name[sizeof(n->name)]; /* a copy: gcc's -Wrestrict cannot tell n->name from n->dir */
        memcpy(name, n->name, sizeof(name));
        snprintf(n->dir, sizeof(n->dir), "%s/nodes/%s", r->ctx->run_dir, name);
        int e = ch_fs_mkdirs(n->dir);
        if (e < 0)
            return e;
        names[i] = n->name;
        ip_str(n->ip, ipbuf[i], sizeof(ipbuf[i]));
        ips[i] = ipbuf[i];
    }
    r->tb = ch_testbed_new(NULL, (size_t)r->n_nodes, names, ips, NULL, r->err);
    if (!r->tb)
        return -ENOSYS;
    snprintf(r->prefix, sizeof(r->prefix), "%s", ch_testbed_prefix(r->tb));
    /* Which namespaces were ours: `rift clean` and the teardown tests look for the prefix. */
    ch_record_note(r->ctx->record, 0, "controller", "testbed",
                   json_pack("{s:s, s:i}", "prefix", r->prefix, "nodes", r->n_nodes));
    int e = 0;
    /* Stacks first: replicas and the workload attach to them. */
    for (int i = 0; i < r->n_nodes && e == 0; i++)
        e = start_stackd(r, i);
    for (int i = 0; i < r->n_nodes && e == 0; i++) {
        e = ch_ctl_wait_ready(&r->nodes[i].stack_ctl, STACK_READY_MS);
        if (e < 0)
            snprintf(r->err->msg, sizeof(r->err->msg), "rift-stackd of %s did not come up (see %s/stackd.log)",
                     r->nodes[i].name, r->nodes[i].dir);
    }
    for (int i = 0; i < r->n_replicas && e == 0; i++)
        e = write_replica_config(r, &r->nodes[i], i);
    if (e < 0)
        return e;
    /* Run time 0: the replicas start and the workload begins, as in the simulator. */
    r->t0_abs_us = mono_us();
    for (int i = 0; i < r->n_replicas && e == 0; i++)
        e = start_replica(r, i);
    for (int i = r->n_replicas; i < r->n_nodes && e == 0; i++) {
        char sock[PATH_MAX + 32];
        snprintf(sock, sizeof(sock), "%s/stack.sock", r->nodes[i].dir);
        e = rs_attach(sock, &r->nodes[i].rs);
        if (e < 0)
            snprintf(r->err->msg, sizeof(r->err->msg), "cannot attach to the rift-stackd of %s: %s", r->nodes[i].name,
                     strerror(-e));
        else
            connect_flows(r, &r->nodes[i], 0);
    }
    if (e == 0)
        e = start_workload(r);
    return e;
}

static void teardown(drun *r)
{
    for (int i = 0; i < r->n_nodes; i++) {
        dnode *n = &r->nodes[i];
        if (n->replica_pid > 0) {
            ch_proc_kill(n->replica_pid, SIGCONT); /* a paused replica cannot act on SIGTERM */
            kill_wait(&n->replica_pid, SIGTERM);
        }
    }
    for (int i = 0; i < r->n_nodes; i++) {
        dnode *n = &r->nodes[i];
        if (n->rs)
            rs_detach(n->rs);
        n->rs = NULL;
        kill_wait(&n->stackd_pid, SIGTERM);
        ch_ctl_close(&n->stack_ctl);
        ch_ctl_close(&n->replica_ctl);
        if (n->events_fd >= 0)
            close(n->events_fd);
        n->events_fd = -1;
    }
    if (r->tb) {
        ch_error terr = {0};
        if (ch_testbed_destroy(r->tb, &terr) < 0)
            fprintf(stderr, "rift: testbed teardown: %s (rift clean retries)\n", terr.msg);
    }
    r->tb = NULL;
    wl_free(r->wl);
    r->wl = NULL;
    ch_timeline_free(r->tl);
    r->tl = NULL;
}

/* ---------- the loop ---------- */

/* A replica process that died on its own (not by the timeline) is a finding the
 * run must show, not hide: record it and treat it like a crash. */
static void reap_children(drun *r, uint64_t now)
{
    for (int i = 0; i < r->n_nodes; i++) {
        dnode *n = &r->nodes[i];
        int status;
        if (n->replica_pid > 0 && ch_proc_reap(n->replica_pid, &status) > 0) {
            n->replica_pid = 0;
            ch_record_note(r->ctx->record, now, n->name, "process_exit",
                           json_pack("{s:s, s:i}", "process", "rift-replica", "status", status));
        }
        if (n->stackd_pid > 0 && ch_proc_reap(n->stackd_pid, &status) > 0) {
            n->stackd_pid = 0;
            ch_record_note(r->ctx->record, now, n->name, "process_exit",
                           json_pack("{s:s, s:i}", "process", "rift-stackd", "status", status));
            if (!r->error) {
                snprintf(r->err->msg, sizeof(r->err->msg), "rift-stackd of %s exited (status %d); see %s/stackd.log",
                         n->name, status, n->dir);
                r->error = -ECHILD;
            }
        }
    }
}

static int loop(drun *r, uint64_t end_us, bool workload_running)
{
    uint64_t next_sample = 0, next_resource = 0, next_progress = 1000000;
    struct pollfd pfd[N_NODES_MAX];
    for (;;) {
        uint64_t now = run_us(r);
        if (now >= end_us || r->error || (r->ctx->interrupted && *r->ctx->interrupted))
            break;
        if (!workload_running && wl_outstanding(r->wl) == 0)
            break;
        for (int i = 0; i < r->n_replicas; i++)
            pump_events(r, i);
        if (ch_timeline_next_us(r->tl) <= now) {
            int e = ch_timeline_fire(r->tl, now);
            if (e < 0)
                return e;
        }
        for (int i = r->n_replicas; i < r->n_nodes; i++) {
            pump_client_node(r, &r->nodes[i]);
            connect_flows(r, &r->nodes[i], now);
        }
        if (r->wl_timer_us <= now) {
            r->wl_timer_us = UINT64_MAX;
            wl_timer(r->wl);
        }
        if (now >= next_sample) {
            sample_replicas(r, now);
            next_sample = now + SAMPLE_EVERY_US;
        }
        if (now >= next_resource) {
            sample_resources(r, now);
            reap_children(r, now);
            next_resource = now + RESOURCE_EVERY_US;
        }
        if (now >= next_progress && r->ctx->progress) {
            ch_progress p = {now, end_us, (double)r->ok_last_second, tl_leader(r),
                             ch_timeline_active_faults(r->tl)};
            r->ctx->progress(r->ctx->progress_ctx, &p);
            r->ok_last_second = 0;
            next_progress += 1000000;
        }
        /* Sleep until the next timer or a message (events files are polled at
         * least every 5 ms: the leader must be known when an action fires). */
        uint64_t wake = end_us;
        uint64_t tl_next = ch_timeline_next_us(r->tl);
        if (tl_next < wake)
            wake = tl_next;
        if (r->wl_timer_us < wake)
            wake = r->wl_timer_us;
        if (next_sample < wake)
            wake = next_sample;
        now = run_us(r);
        int timeout_ms = wake > now ? (int)((wake - now + 999) / 1000) : 0;
        if (timeout_ms > 5)
            timeout_ms = 5;
        int np = 0;
        for (int i = r->n_replicas; i < r->n_nodes; i++)
            if (r->nodes[i].rs)
                pfd[np++] = (struct pollfd){.fd = rs_fd(r->nodes[i].rs), .events = POLLIN};
        poll(pfd, (nfds_t)np, timeout_ms);
    }
    return r->error;
}

int ch_backend_dpdk_run(const ch_run_ctx *ctx, ch_error *err)
{
    static drun r; /* large (node buffers); one run at a time */
    memset(&r, 0, sizeof(r));
    r.ctx = ctx;
    r.sc = ctx->scenario;
    r.err = err;
    r.wl_timer_us = UINT64_MAX;
    for (int i = 0; i < MAX_RULES; i++)
        r.rules[i].node = -1;
    int e = check_environment(&r);
    if (e < 0)
        return e == -EPERM || e == -ENOENT ? -ENOSYS : e;
    static const ch_timeline_ops ops = {
        .leader = tl_leader, .impair_add = tl_impair_add, .impair_remove = tl_impair_remove,
        .impair_clear_link = tl_impair_clear_link, .impair_alive = tl_impair_alive, .crash = tl_crash,
        .restart = tl_restart, .pause = tl_pause, .set_param = tl_set_param, .link_set = tl_link_set};
    ch_timeline_ops o = ops;
    o.ctx = &r;
    r.tl = ch_timeline_new(ctx, &o, &e, err);
    if (e == 0)
        e = build_cluster(&r);
    if (e < 0 && !err->msg[0])
        snprintf(err->msg, sizeof(err->msg), "testbed setup failed: %s", strerror(-e));
    uint64_t end = r.sc->duration_ms * 1000;
    if (e == 0)
        e = loop(&r, end, true);
    if (r.wl && e == 0 && !(ctx->interrupted && *ctx->interrupted)) {
        uint64_t stop = run_us(&r);
        wl_stop(r.wl);
        /* Let ops in flight complete or time out, so few end as open invokes. */
        e = loop(&r, stop + r.sc->workload.op_timeout_ms * 1000 + 1000, false);
        for (int i = 0; i < r.n_replicas; i++)
            pump_events(&r, i);
        ch_record_end(ctx->record, stop);
    } else if (r.t0_abs_us) {
        ch_record_end(ctx->record, run_us(&r));
    }
    teardown(&r);
    /* Setup failures of the environment are exit 3 (ENOSYS maps there). */
    if (e < 0 && e != -ENOMEM && e != -EINVAL)
        e = -ENOSYS;
    return e;
}
