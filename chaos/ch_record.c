/* ch_record.c — the run's observations and the metrics derived from them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ch_record.h"

/* First execution seen at each index: what every other replica must match. */
typedef struct exec_slot {
    uint64_t hash;    /* entry bytes */
    uint64_t digest;  /* rolling state digest after it */
    int8_t replica;   /* -1 = none yet */
} exec_slot;

typedef struct fault {
    uint64_t start_us, end_us; /* end UINT64_MAX = open */
    json_t *json;
} fault;

struct ch_record {
    int n;
    ch_history *history;
    json_t *events;      /* array */
    json_t *samples;     /* {"r1": {columns}} */
    json_t *resources;   /* {"process": {columns}} */
    fault *faults;
    size_t n_faults, cap_faults;
    exec_slot *exec;
    uint64_t exec_cap;
    ch_disagreement dis;
    ch_recovery *recov;
    uint32_t n_recov, cap_recov;
    uint32_t leaders_seen, elections, step_downs, trims, snaps, checkpoints;
    int last_leader; /* replica that last became leader, -1 = none yet */
    uint64_t max_log_entries;
    uint64_t end_us;
};

static void node_name(int replica, char *buf, size_t len) { snprintf(buf, len, "r%d", replica + 1); }

ch_record *ch_record_new(int n_replicas)
{
    ch_record *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->n = n_replicas;
    r->last_leader = -1;
    r->history = ch_history_new();
    r->events = json_array();
    r->samples = json_object();
    r->resources = json_object();
    if (!r->history || !r->events || !r->samples || !r->resources) {
        ch_record_free(r);
        return NULL;
    }
    return r;
}

void ch_record_free(ch_record *r)
{
    if (!r)
        return;
    ch_history_free(r->history);
    json_decref(r->events);
    json_decref(r->samples);
    json_decref(r->resources);
    for (size_t i = 0; i < r->n_faults; i++)
        json_decref(r->faults[i].json);
    free(r->faults);
    free(r->exec);
    free(r->recov);
    free(r);
}

/* ---------- log agreement: compare every execution with the first one ---------- */

static exec_slot *exec_at(ch_record *r, uint64_t index)
{
    if (index == 0 || index > (1ull << 32))
        return NULL;
    if (index > r->exec_cap) {
        uint64_t ncap = r->exec_cap ? r->exec_cap : 4096;
        while (ncap < index)
            ncap *= 2;
        exec_slot *ne = realloc(r->exec, ncap * sizeof(exec_slot));
        if (!ne)
            return NULL;
        for (uint64_t i = r->exec_cap; i < ncap; i++)
            ne[i] = (exec_slot){0, 0, -1};
        r->exec = ne;
        r->exec_cap = ncap;
    }
    return &r->exec[index - 1];
}

static void disagree(ch_record *r, uint64_t index, const exec_slot *first, int replica, uint64_t hash)
{
    if (r->dis.found)
        return;
    r->dis = (ch_disagreement){true, index, first->replica, replica, first->hash, hash};
}

static void check_execute(ch_record *r, const px_event *e)
{
    exec_slot *s = exec_at(r, e->index);
    if (!s)
        return;
    if (s->replica < 0) {
        *s = (exec_slot){e->a, e->b, (int8_t)e->replica};
        return;
    }
    if (s->hash != e->a || s->digest != e->b)
        disagree(r, e->index, s, e->replica, e->a);
}

/* An installed image must carry the digest every executor had at its index. */
static void check_snapshot(ch_record *r, const px_event *e)
{
    exec_slot *s = exec_at(r, e->index);
    if (s && s->replica >= 0 && s->digest != e->b)
        disagree(r, e->index, s, e->replica, e->b);
}

/* ---------- events ---------- */

static void add_event(ch_record *r, uint64_t t_us, const char *node, const char *kind, json_t *detail)
{
    json_t *ev = json_pack("{s:I, s:s, s:s}", "t_us", (json_int_t)t_us, "node", node, "kind", kind);
    if (!ev) {
        json_decref(detail);
        return;
    }
    if (detail)
        json_object_update(ev, detail);
    json_decref(detail);
    json_array_append_new(r->events, ev);
}

static json_t *ballot_json(uint64_t b)
{
    char s[32];
    snprintf(s, sizeof(s), "%llu.%u", (unsigned long long)PX_BALLOT_ROUND(b), PX_BALLOT_ID(b) + 1);
    return json_string(s);
}

/* Detail for the events worth showing; NULL for the per-index ones (commit,
 * execute), which only feed the agreement check. */
static json_t *event_detail(ch_record *r, const px_event *e)
{
    json_t *d = json_pack("{s:o}", "ballot", ballot_json(e->ballot));
    switch (e->kind) {
    case PX_EV_ROLE:
        json_object_set_new(d, "role", json_string(px_role_name((px_role)e->a)));
        json_object_set_new(d, "from", json_string(px_role_name((px_role)e->b)));
        break;
    case PX_EV_ELECTION_END:
        json_object_set_new(d, "won", json_boolean(e->a));
        break;
    case PX_EV_STEP_DOWN:
        json_object_set_new(d, "reason", json_string(px_step_down_reason_name((int)e->a)));
        break;
    case PX_EV_TRIM:
        json_object_set_new(d, "index", json_integer((json_int_t)e->index));
        json_object_set_new(d, "entries_left", json_integer((json_int_t)e->a));
        break;
    case PX_EV_GLE:
        json_object_set_new(d, "index", json_integer((json_int_t)e->index));
        break;
    case PX_EV_SNAP_SEND:
    case PX_EV_SNAP_INSTALL: {
        char peer[16];
        node_name((int)e->a, peer, sizeof(peer));
        json_object_set_new(d, "index", json_integer((json_int_t)e->index));
        json_object_set_new(d, e->kind == PX_EV_SNAP_SEND ? "to" : "from", json_string(peer));
        break;
    }
    case PX_EV_CHECKPOINT:
        json_object_set_new(d, "index", json_integer((json_int_t)e->index));
        json_object_set_new(d, "bytes", json_integer((json_int_t)e->a));
        break;
    case PX_EV_FD_ADAPT:
        json_object_set_new(d, "heartbeat_us", json_integer((json_int_t)e->a));
        json_object_set_new(d, "election_timeout_max_us", json_integer((json_int_t)e->b));
        break;
    case PX_EV_BALLOT:
    case PX_EV_ELECTION_START:
        break;
    default:
        json_decref(d);
        return NULL;
    }
    (void)r;
    return d;
}

void ch_record_px_event(ch_record *r, const px_event *e)
{
    switch (e->kind) {
    case PX_EV_EXECUTE: check_execute(r, e); break;
    case PX_EV_SNAP_INSTALL: check_snapshot(r, e); r->snaps++; break;
    case PX_EV_ROLE:
        /* A change of who leads: a leader re-elected under a new ballot is not one. */
        if (e->a == PX_LEADER && (int)e->replica != r->last_leader) {
            r->leaders_seen++;
            r->last_leader = e->replica;
        }
        break;
    case PX_EV_ELECTION_START: r->elections++; break;
    case PX_EV_STEP_DOWN: r->step_downs++; break;
    case PX_EV_TRIM: r->trims++; break;
    case PX_EV_CHECKPOINT: r->checkpoints++; break;
    default: break;
    }
    json_t *d = event_detail(r, e);
    if (!d)
        return;
    char node[16];
    node_name(e->replica, node, sizeof(node));
    add_event(r, e->time_us, node, px_event_kind_name(e->kind), d);
}

int ch_record_op(ch_record *r, const ch_op *op) { return ch_history_append(r->history, op); }

/* wl_hist strings are not NUL-terminated; ch_op's are. */
static char *dup_or_null(const char *s, size_t len)
{
    if (!s)
        return NULL;
    char *d = malloc(len + 1);
    if (d) {
        memcpy(d, s, len);
        d[len] = 0;
    }
    return d;
}

int ch_record_wl_op(ch_record *r, const wl_hist *h)
{
    static const ch_f fmap[] = {[PX_OP_GET] = CH_GET, [PX_OP_PUT] = CH_PUT, [PX_OP_DEL] = CH_DEL,
                                [PX_OP_APPEND] = CH_APPEND, [PX_OP_CAS] = CH_CAS};
    ch_op op = {.process = (uint32_t)h->process, .type = (ch_type)h->type, .time_us = (int64_t)h->time_us};
    op.f = fmap[h->f <= PX_OP_MAX ? h->f : PX_OP_GET];
    op.key = (char *)h->key;
    op.value = dup_or_null(h->value, h->value_len);
    if (op.f == CH_CAS) {
        op.has_cas_expected = true;
        op.cas_expected = dup_or_null(h->expected, h->expected_len);
    }
    int e = ch_record_op(r, &op);
    free(op.value);
    free(op.cas_expected);
    return e;
}

void ch_record_note(ch_record *r, uint64_t t_us, const char *node, const char *kind, json_t *detail)
{
    add_event(r, t_us, node, kind, detail);
}

void ch_record_action(ch_record *r, uint64_t t_us, json_t *action, const char *recovery)
{
    add_event(r, t_us, "controller", "action", json_pack("{s:o}", "action", action));
    if (!recovery)
        return;
    if (r->n_recov == r->cap_recov) {
        uint32_t ncap = r->cap_recov ? r->cap_recov * 2 : 16;
        ch_recovery *nr = realloc(r->recov, ncap * sizeof(*nr));
        if (!nr)
            return;
        r->recov = nr;
        r->cap_recov = ncap;
    }
    r->recov[r->n_recov++] = (ch_recovery){t_us, -1, recovery};
}

/* ---------- faults ---------- */

int ch_record_fault_begin(ch_record *r, uint64_t t_us, const char *kind, json_t *detail)
{
    if (r->n_faults == r->cap_faults) {
        size_t ncap = r->cap_faults ? r->cap_faults * 2 : 16;
        fault *nf = realloc(r->faults, ncap * sizeof(*nf));
        if (!nf) {
            json_decref(detail);
            return -ENOMEM;
        }
        r->faults = nf;
        r->cap_faults = ncap;
    }
    json_t *j = detail ? detail : json_object();
    json_object_set_new(j, "kind", json_string(kind));
    r->faults[r->n_faults] = (fault){t_us, UINT64_MAX, j};
    return (int)r->n_faults++;
}

void ch_record_fault_end(ch_record *r, int id, uint64_t t_us)
{
    if (id >= 0 && (size_t)id < r->n_faults && r->faults[id].end_us == UINT64_MAX)
        r->faults[id].end_us = t_us;
}

void ch_record_fault_end_all(ch_record *r, uint64_t t_us, const char *kind_prefix)
{
    for (size_t i = 0; i < r->n_faults; i++) {
        const char *k = json_string_value(json_object_get(r->faults[i].json, "kind"));
        if (!kind_prefix || (k && strncmp(k, kind_prefix, strlen(kind_prefix)) == 0))
            ch_record_fault_end(r, (int)i, t_us);
    }
}

/* ---------- samples ---------- */

static json_t *column(json_t *obj, const char *name)
{
    json_t *c = json_object_get(obj, name);
    if (!c) {
        c = json_array();
        json_object_set_new(obj, name, c);
    }
    return c;
}

static void push_int(json_t *obj, const char *name, uint64_t v)
{
    json_array_append_new(column(obj, name), json_integer((json_int_t)v));
}

void ch_record_sample(ch_record *r, uint64_t t_us, int replica, const px_status *s, bool down, bool paused)
{
    char node[16];
    node_name(replica, node, sizeof(node));
    json_t *obj = json_object_get(r->samples, node);
    if (!obj) {
        obj = json_object();
        json_object_set_new(r->samples, node, obj);
    }
    const char *state = down ? "down" : paused ? "paused" : px_role_name(s->role);
    push_int(obj, "t_us", t_us);
    json_array_append_new(column(obj, "state"), json_string(state));
    push_int(obj, "ballot", s->ballot);
    push_int(obj, "last_executed", s->last_executed);
    push_int(obj, "gle", s->gle);
    push_int(obj, "log_entries", s->log_entries);
    push_int(obj, "heartbeat_us", s->heartbeat_us);
    push_int(obj, "election_timeout_us", s->election_timeout_us);
    if (!down && s->log_entries > r->max_log_entries)
        r->max_log_entries = s->log_entries;
}

void ch_record_resource(ch_record *r, uint64_t t_us, const char *process, double cpu_pct, uint64_t rss_bytes)
{
    json_t *obj = json_object_get(r->resources, process);
    if (!obj) {
        obj = json_object();
        json_object_set_new(r->resources, process, obj);
    }
    push_int(obj, "t_us", t_us);
    json_array_append_new(column(obj, "cpu_pct"), json_real(cpu_pct));
    push_int(obj, "rss_bytes", rss_bytes);
}

void ch_record_set_now(ch_record *r, uint64_t t_us) { r->end_us = t_us; }

void ch_record_end(ch_record *r, uint64_t t_us)
{
    r->end_us = t_us;
    ch_record_fault_end_all(r, t_us, NULL);
}

const ch_history *ch_record_history(const ch_record *r) { return r->history; }

/* ---------- metrics ---------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Completion times (ok/fail) and latencies, each sorted. */
static int completions(const ch_record *r, uint64_t **times, uint64_t **lat, size_t *n)
{
    const ch_history *h = r->history;
    *times = malloc((h->n + 1) * sizeof(uint64_t));
    *lat = malloc((h->n + 1) * sizeof(uint64_t));
    size_t *match = malloc((h->n + 1) * sizeof(size_t));
    if (!*times || !*lat || !match) {
        free(match);
        return -ENOMEM;
    }
    *n = 0;
    ch_error err;
    bool paired = ch_history_pair(h, NULL, match, &err) == 0;
    for (size_t i = 0; i < h->n; i++) {
        const ch_op *op = &h->ops[i];
        if (op->type != CH_OK && op->type != CH_FAIL)
            continue;
        (*times)[*n] = (uint64_t)op->time_us;
        size_t inv = paired ? match[i] : CH_NONE;
        (*lat)[*n] = inv != CH_NONE ? (uint64_t)(op->time_us - h->ops[inv].time_us) : 0;
        (*n)++;
    }
    free(match);
    qsort(*times, *n, sizeof(uint64_t), cmp_u64);
    qsort(*lat, *n, sizeof(uint64_t), cmp_u64);
    return 0;
}

static uint64_t percentile(const uint64_t *sorted, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return sorted[i < n ? i : n - 1];
}

/* Longest gap between consecutive completions within [from, to]. */
static uint64_t longest_gap(const uint64_t *t, size_t n, uint64_t from, uint64_t to, uint64_t *at)
{
    uint64_t prev = from, best = 0;
    *at = from;
    for (size_t i = 0; i < n; i++) {
        if (t[i] < from || t[i] > to)
            continue;
        if (t[i] - prev > best) {
            best = t[i] - prev;
            *at = prev;
        }
        prev = t[i];
    }
    if (to > prev && to - prev > best) {
        best = to - prev;
        *at = prev;
    }
    return best;
}

static bool in_fault(const ch_record *r, uint64_t t)
{
    for (size_t i = 0; i < r->n_faults; i++)
        if (t >= r->faults[i].start_us && t < r->faults[i].end_us)
            return true;
    return false;
}

/* Length of the union of fault intervals within [0, end). */
static uint64_t fault_time(const ch_record *r, uint64_t end)
{
    uint64_t total = 0, step = 1000; /* 1 ms resolution is plenty for a ratio */
    for (uint64_t t = 0; t < end; t += step)
        total += in_fault(r, t) ? step : 0;
    return total;
}

static void throughput(const ch_record *r, const uint64_t *t, size_t n, ch_metrics *m)
{
    uint64_t first = UINT64_MAX;
    for (size_t i = 0; i < r->n_faults; i++)
        if (r->faults[i].start_us < first)
            first = r->faults[i].start_us;
    uint64_t before = 0, during = 0;
    for (size_t i = 0; i < n; i++) {
        before += t[i] < first;
        during += in_fault(r, t[i]);
    }
    uint64_t fault_us = fault_time(r, r->end_us);
    uint64_t before_us = first == UINT64_MAX ? r->end_us : first;
    m->throughput_before_faults = before_us ? (double)before * 1e6 / (double)before_us : 0;
    m->throughput_during_faults = fault_us ? (double)during * 1e6 / (double)fault_us : 0;
}

static void recoveries(ch_record *r, const uint64_t *t, size_t n, ch_metrics *m)
{
    m->max_recovery_us = 0;
    for (uint32_t i = 0; i < r->n_recov; i++) {
        ch_recovery *rc = &r->recov[i];
        rc->recovered_us = -1;
        for (size_t j = 0; j < n; j++) {
            if (t[j] > rc->at_us) {
                rc->recovered_us = (int64_t)(t[j] - rc->at_us);
                break;
            }
        }
        if (rc->recovered_us < 0 || m->max_recovery_us < 0)
            m->max_recovery_us = -1;
        else if (rc->recovered_us > m->max_recovery_us)
            m->max_recovery_us = rc->recovered_us;
    }
    m->n_recoveries = r->n_recov;
    m->recoveries = r->recov;
}

int ch_record_metrics(ch_record *r, ch_metrics *m)
{
    memset(m, 0, sizeof(*m));
    m->duration_us = r->end_us;
    for (size_t i = 0; i < r->history->n; i++) {
        ch_type ty = r->history->ops[i].type;
        m->ops_invoked += ty == CH_INVOKE;
        m->ops_ok += ty == CH_OK;
        m->ops_fail += ty == CH_FAIL;
        m->ops_info += ty == CH_INFO;
    }
    uint64_t *t, *lat;
    size_t n;
    if (completions(r, &t, &lat, &n) < 0) {
        free(t);
        free(lat);
        return -ENOMEM;
    }
    m->lat_p50_us = percentile(lat, n, 0.50);
    m->lat_p99_us = percentile(lat, n, 0.99);
    m->lat_max_us = n ? lat[n - 1] : 0;
    m->max_unavailable_us = longest_gap(t, n, 0, r->end_us, &m->max_unavailable_at_us);
    uint64_t last_heal = r->n_recov ? r->recov[r->n_recov - 1].at_us : 0, at;
    m->max_unavailable_after_heal_us = longest_gap(t, n, last_heal, r->end_us, &at);
    m->leader_changes = r->leaders_seen > 0 ? r->leaders_seen - 1 : 0;
    m->elections_started = r->elections;
    m->step_downs = r->step_downs;
    m->trims = r->trims;
    m->snapshots_installed = r->snaps;
    m->checkpoints = r->checkpoints;
    m->max_log_entries = r->max_log_entries;
    m->disagreement = r->dis;
    throughput(r, t, n, m);
    recoveries(r, t, n, m);
    free(t);
    free(lat);
    return 0;
}

/* ---------- JSON ---------- */

/* Latency p50/p99 per bucket. keys hold bucket << 40 | latency (capped), so one
 * sort groups the completions by bucket with each group in latency order. */
static void bucket_percentiles(uint64_t *keys, size_t n, size_t nb, json_t *p50, json_t *p99)
{
    qsort(keys, n, sizeof(uint64_t), cmp_u64);
    size_t i = 0;
    for (size_t b = 0; b < nb; b++) {
        size_t from = i;
        while (i < n && keys[i] >> 40 == b)
            i++;
        uint64_t mask = (1ull << 40) - 1, m = i - from;
        size_t mid = m ? from + (m - 1) / 2 : 0, hi = m ? from + (size_t)((double)(m - 1) * 0.99 + 0.5) : 0;
        json_array_append_new(p50, json_integer((json_int_t)(m ? keys[mid] & mask : 0)));
        json_array_append_new(p99, json_integer((json_int_t)(m ? keys[hi] & mask : 0)));
    }
}

/* Windows without a completed op that are long enough to matter: at least
 * 100 ms and 10x the run's mean gap (a slow workload is not "unavailable").
 * times is sorted. At most 2000 windows, the first ones. */
static json_t *unavailable_windows(const uint64_t *times, size_t n, uint64_t end_us)
{
    json_t *w = json_array();
    uint64_t min_us = n ? 10 * (end_us / n) : 0;
    if (min_us < 100000)
        min_us = 100000;
    uint64_t prev = 0;
    for (size_t i = 0; i <= n && w && json_array_size(w) < 2000; i++) {
        uint64_t t = i < n ? times[i] : end_us;
        if (t > prev && t - prev >= min_us)
            json_array_append_new(w, json_pack("[I,I]", (json_int_t)prev, (json_int_t)t));
        if (t > prev)
            prev = t;
    }
    return w;
}

/* Throughput and latency per time bucket, for the dashboard's charts. */
static json_t *series_json(const ch_record *r)
{
    uint64_t bucket = 100000;
    while (r->end_us / bucket > 2000)
        bucket *= 2; /* at most ~2000 points, whatever the run's length */
    size_t nb = (size_t)(r->end_us / bucket) + 1, n = r->history->n, nk = 0;
    uint64_t *ok = calloc(nb, sizeof(uint64_t)), *bad = calloc(nb, sizeof(uint64_t));
    uint64_t *lat_max = calloc(nb, sizeof(uint64_t));
    uint64_t *keys = malloc((n + 1) * sizeof(uint64_t)), *times = malloc((n + 1) * sizeof(uint64_t));
    size_t *match = malloc((n + 1) * sizeof(size_t));
    json_t *s = json_pack("{s:I}", "bucket_us", (json_int_t)bucket);
    ch_error err;
    if (ok && bad && lat_max && keys && times && match && s && ch_history_pair(r->history, NULL, match, &err) == 0) {
        for (size_t i = 0; i < n; i++) {
            const ch_op *op = &r->history->ops[i];
            size_t b = (size_t)((uint64_t)op->time_us / bucket);
            if (op->type == CH_INVOKE || b >= nb)
                continue;
            if (op->type == CH_INFO) {
                bad[b]++;
                continue;
            }
            ok[b]++;
            uint64_t l = (uint64_t)(op->time_us - r->history->ops[match[i]].time_us);
            if (l > lat_max[b])
                lat_max[b] = l;
            times[nk] = (uint64_t)op->time_us;
            keys[nk++] = (uint64_t)b << 40 | (l < (1ull << 40) ? l : (1ull << 40) - 1);
        }
        json_t *t = json_array(), *o = json_array(), *f = json_array(), *lm = json_array();
        json_t *p50 = json_array(), *p99 = json_array();
        for (size_t b = 0; b < nb; b++) {
            json_array_append_new(t, json_integer((json_int_t)(b * bucket)));
            json_array_append_new(o, json_real((double)ok[b] * 1e6 / (double)bucket));
            json_array_append_new(f, json_integer((json_int_t)bad[b]));
            json_array_append_new(lm, json_integer((json_int_t)lat_max[b]));
        }
        bucket_percentiles(keys, nk, nb, p50, p99);
        qsort(times, nk, sizeof(uint64_t), cmp_u64);
        json_object_set_new(s, "t_us", t);
        json_object_set_new(s, "ops_per_s", o);
        json_object_set_new(s, "info", f);
        json_object_set_new(s, "latency_max_us", lm);
        json_object_set_new(s, "latency_p50_us", p50);
        json_object_set_new(s, "latency_p99_us", p99);
        json_object_set_new(s, "unavailable_us", unavailable_windows(times, nk, r->end_us));
    }
    free(ok);
    free(bad);
    free(lat_max);
    free(keys);
    free(times);
    free(match);
    return s;
}

static json_t *metrics_json(const ch_metrics *m)
{
    json_t *rec = json_array();
    for (uint32_t i = 0; i < m->n_recoveries; i++) {
        const ch_recovery *rc = &m->recoveries[i];
        json_array_append_new(rec, json_pack("{s:I, s:s, s:o}", "at_us", (json_int_t)rc->at_us, "after", rc->what,
                                             "recovered_us",
                                             rc->recovered_us < 0 ? json_null() : json_integer(rc->recovered_us)));
    }
    json_t *j = json_pack(
        "{s:I, s:{s:I, s:I, s:I, s:I}, s:I, s:I, s:I, s:I, s:I, s:I, s:i, s:i, s:i, s:i, s:i, s:I, s:f, s:f, s:o}",
        "duration_us", (json_int_t)m->duration_us, "ops", "invoked", (json_int_t)m->ops_invoked, "ok",
        (json_int_t)m->ops_ok, "fail", (json_int_t)m->ops_fail, "info", (json_int_t)m->ops_info, "latency_p50_us",
        (json_int_t)m->lat_p50_us, "latency_p99_us", (json_int_t)m->lat_p99_us, "latency_max_us",
        (json_int_t)m->lat_max_us, "max_unavailability_us", (json_int_t)m->max_unavailable_us,
        "max_unavailability_at_us", (json_int_t)m->max_unavailable_at_us, "max_unavailability_after_heal_us",
        (json_int_t)m->max_unavailable_after_heal_us, "leader_changes", (int)m->leader_changes, "elections_started",
        (int)m->elections_started, "step_downs", (int)m->step_downs, "trims", (int)m->trims, "snapshots_installed",
        (int)m->snapshots_installed, "max_log_entries", (json_int_t)m->max_log_entries,
        "throughput_before_faults_ops_per_s", m->throughput_before_faults, "throughput_during_faults_ops_per_s",
        m->throughput_during_faults, "recoveries", rec);
    if (j)
        json_object_set_new(j, "checkpoints", json_integer((json_int_t)m->checkpoints));
    if (j)
        json_object_set_new(j, "max_recovery_us",
                            m->max_recovery_us < 0 ? json_null() : json_integer(m->max_recovery_us));
    return j;
}

int ch_record_to_json(ch_record *r, const ch_metrics *m, json_t *obj)
{
    json_t *nodes = json_array(), *faults = json_array();
    for (int i = 0; i < r->n; i++) {
        char name[16];
        node_name(i, name, sizeof(name));
        json_array_append_new(nodes, json_pack("{s:s, s:s}", "name", name, "kind", "replica"));
    }
    for (size_t i = 0; i < r->n_faults; i++) {
        json_t *f = json_deep_copy(r->faults[i].json);
        json_object_set_new(f, "start_us", json_integer((json_int_t)r->faults[i].start_us));
        json_object_set_new(f, "end_us", json_integer((json_int_t)(r->faults[i].end_us == UINT64_MAX
                                                                        ? r->end_us
                                                                        : r->faults[i].end_us)));
        json_array_append_new(faults, f);
    }
    json_object_set_new(obj, "nodes", nodes);
    json_object_set(obj, "events", r->events);
    json_object_set_new(obj, "faults", faults);
    json_object_set(obj, "samples", r->samples);
    json_object_set(obj, "resources", r->resources);
    json_object_set_new(obj, "series", series_json(r));
    json_object_set_new(obj, "metrics", metrics_json(m));
    return 0;
}
