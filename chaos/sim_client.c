/* sim_client.c — closed/open-loop logical clients over the simulator. */
#include "sim_client.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIM_SALT_WORKLOAD 0x776f726bULL /* "work" */
#define SIM_TOKEN_MAX 48u               /* "c<u64>-<u64>" fits */

typedef struct sim_wclient {
    sim_workload *w;
    uint32_t idx;
    uint32_t addr;
    uint64_t process, client_id, seq;
    int target;            /* replica believed to lead */
    bool busy;
    uint8_t op;
    uint32_t key;
    char *value;           /* cap: w->value_cap */
    size_t value_len;
    char *expected;        /* cas; NULL = absent (owned copy otherwise) */
    size_t expected_len;
    uint8_t *cmd;          /* the encoded px_cmd, resent verbatim */
    size_t cmd_len, cmd_cap;
    uint64_t invoke_us, deadline_us, resend_us;
    bool rotate;           /* at resend_us: try the next replica */
    uint32_t hops;         /* redirects followed at once since the last wait */
    sim_timer *timer;
} sim_wclient;

/* What the workload last saw committed per key: feeds cas expectations. */
typedef struct sim_known {
    char *v;
    size_t len;
    bool present;
} sim_known;

struct sim_workload {
    sim *s;
    sim_workload_config cfg;
    rift_rng rng;
    sim_wclient *clients;
    char **keys;
    double *zipf_cdf;
    sim_known *known;
    double mix_total;
    size_t value_cap;
    bool running;
    uint32_t rr;           /* open loop: where the idle-client scan starts */
    uint32_t outstanding;
    sim_timer *arrival;
    sim_hist_fn on_hist;
    void *on_hist_ctx;
    sim_workload_counters c;
};

static void sim_wclient_begin(sim_wclient *c, uint64_t now_us);

const char *sim_hist_type_name(int type)
{
    static const char *const names[] = {"invoke", "ok", "fail", "info"};
    return type >= 0 && type <= SIM_HIST_INFO ? names[type] : "unknown";
}

const char *sim_hist_f_name(int op)
{
    static const char *const names[] = {NULL, "get", "put", "del", "append", "cas"};
    return op >= PX_OP_GET && op <= PX_OP_MAX ? names[op] : "unknown";
}

void sim_workload_config_default(sim_workload_config *c)
{
    memset(c, 0, sizeof(*c));
    c->n_clients = 4;
    c->mix[PX_OP_GET] = 0.5;
    c->mix[PX_OP_PUT] = 0.3;
    c->mix[PX_OP_APPEND] = 0.1;
    c->mix[PX_OP_CAS] = 0.1;
    c->n_keys = 10;
    c->dist = SIM_KEYS_UNIFORM;
    c->zipf_theta = 1.0;
    c->value_bytes = 16;
    c->retry_us = 50000;
    c->redirect_backoff_us = 5000;
    c->op_timeout_us = 1000000;
}

/* ---- history ---- */

static void sim_emit(sim_workload *w, const sim_hist *h)
{
    sim_hash_fold(w->s, (h->process << 8) | ((uint64_t)h->type << 4) | h->f);
    sim_hash_fold(w->s, h->time_us);
    sim_hash_fold(w->s, h->value ? px_hash64(h->value_len, h->value, h->value_len) : 0x6e756c6cULL);
    if (w->on_hist)
        w->on_hist(w->on_hist_ctx, h);
}

static void sim_emit_op(sim_wclient *c, uint8_t type, const char *value, size_t value_len,
                        uint64_t now_us)
{
    sim_hist h = {
        .process = c->process,
        .type = type,
        .f = c->op,
        .key = c->w->keys[c->key],
        .value = value,
        .value_len = value_len,
        .expected = c->op == PX_OP_CAS ? c->expected : NULL,
        .expected_len = c->op == PX_OP_CAS ? c->expected_len : 0,
        .time_us = now_us,
        .client_id = c->client_id,
        .seq = c->seq,
    };
    sim_emit(c->w, &h);
}

/* The value an invoke (and a fail/info) record carries for this op. */
static void sim_wclient_op_value(const sim_wclient *c, const char **v, size_t *len)
{
    bool has = c->op == PX_OP_PUT || c->op == PX_OP_APPEND || c->op == PX_OP_CAS;
    *v = has ? c->value : NULL;
    *len = has ? c->value_len : 0;
}

/* ---- workload generation ---- */

static uint32_t sim_pick_key(sim_workload *w)
{
    if (w->cfg.dist != SIM_KEYS_ZIPF)
        return (uint32_t)rift_rng_range(&w->rng, 0, w->cfg.n_keys - 1);
    double u = rift_rng_double(&w->rng);
    uint32_t lo = 0, hi = w->cfg.n_keys - 1;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (w->zipf_cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static uint8_t sim_pick_op(sim_workload *w)
{
    double u = rift_rng_double(&w->rng) * w->mix_total;
    for (uint8_t op = PX_OP_GET; op <= PX_OP_MAX; op++) {
        if (u < w->cfg.mix[op])
            return op;
        u -= w->cfg.mix[op];
    }
    for (uint8_t op = PX_OP_MAX; op >= PX_OP_GET; op--) /* rounding: last weighted op */
        if (w->cfg.mix[op] > 0)
            return op;
    return PX_OP_GET;
}

static void sim_make_value(sim_wclient *c)
{
    int n = snprintf(c->value, c->w->value_cap, "c%llu-%llu", (unsigned long long)c->client_id,
                     (unsigned long long)c->seq);
    size_t len = n > 0 ? (size_t)n : 0;
    while (len < c->w->cfg.value_bytes && len + 1 < c->w->value_cap)
        c->value[len++] = '.';
    c->value_len = len;
}

static int sim_set_expected(sim_wclient *c, const sim_known *k)
{
    free(c->expected);
    c->expected = NULL;
    c->expected_len = 0;
    if (!k->present)
        return 0;
    c->expected = malloc(k->len ? k->len : 1);
    if (!c->expected)
        return -ENOMEM;
    memcpy(c->expected, k->v, k->len);
    c->expected_len = k->len;
    return 0;
}

static int sim_known_set(sim_known *k, const char *v, size_t len)
{
    if (!v) {
        k->present = false;
        k->len = 0;
        return 0;
    }
    char *copy = malloc(len ? len : 1);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, v, len);
    free(k->v);
    k->v = copy;
    k->len = len;
    k->present = true;
    return 0;
}

static int sim_wclient_encode(sim_wclient *c)
{
    const char *key = c->w->keys[c->key];
    px_cmd cmd = {
        .op = c->op,
        .client_id = c->client_id,
        .seq = c->seq,
        .key = {(const uint8_t *)key, (uint32_t)strlen(key)},
    };
    if (c->op == PX_OP_PUT || c->op == PX_OP_APPEND || c->op == PX_OP_CAS)
        cmd.value = (px_bytes){(const uint8_t *)c->value, (uint32_t)c->value_len};
    if (c->op == PX_OP_CAS) {
        cmd.expected_absent = c->expected == NULL;
        cmd.expected = (px_bytes){(const uint8_t *)c->expected, (uint32_t)c->expected_len};
    }
    size_t need = px_cmd_encoded_size(&cmd);
    if (need > c->cmd_cap) {
        uint8_t *b = realloc(c->cmd, need);
        if (!b)
            return -ENOMEM;
        c->cmd = b;
        c->cmd_cap = need;
    }
    return px_cmd_encode(&cmd, c->cmd, c->cmd_cap, &c->cmd_len);
}

/* ---- the client state machine ---- */

static void sim_wclient_arm(sim_wclient *c)
{
    uint64_t at = c->resend_us < c->deadline_us ? c->resend_us : c->deadline_us;
    sim_timer_set(c->timer, at);
}

static void sim_wclient_send(sim_wclient *c, uint64_t now_us)
{
    sim_workload *w = c->w;
    px_msg m = {.type = PX_MSG_CLIENT_REQ, .from = (uint16_t)c->addr, .to = (uint16_t)c->target};
    m.u.client_req.cmd = (px_bytes){c->cmd, (uint32_t)c->cmd_len};
    sim_send(w->s, &m);
    w->c.sends++;
    c->resend_us = now_us + w->cfg.retry_us;
    c->rotate = true;
    sim_wclient_arm(c);
}

static void sim_wclient_next_op(sim_wclient *c, uint64_t now_us)
{
    sim_workload *w = c->w;
    if (!w->running || w->cfg.rate_ops_per_s > 0)
        return;
    if (w->cfg.think_us == 0) {
        sim_wclient_begin(c, now_us);
        return;
    }
    c->resend_us = c->deadline_us = now_us + w->cfg.think_us;
    sim_timer_set(c->timer, c->resend_us);
}

static void sim_wclient_finish(sim_wclient *c, uint8_t type, const char *v, size_t len,
                               uint64_t now_us)
{
    sim_workload *w = c->w;
    sim_emit_op(c, type, v, len, now_us);
    c->busy = false;
    w->outstanding--;
    sim_timer_cancel(c->timer);
    if (type == SIM_HIST_INFO) {
        w->c.info++;
        c->process += w->cfg.n_clients;
        c->client_id = c->process + 1;
        c->seq = 0;
    } else {
        uint64_t lat = now_us - c->invoke_us;
        w->c.latency_us_sum += lat;
        if (lat > w->c.latency_us_max)
            w->c.latency_us_max = lat;
        *(type == SIM_HIST_OK ? &w->c.ok : &w->c.fail) += 1;
    }
    sim_wclient_next_op(c, now_us);
}

static void sim_wclient_begin(sim_wclient *c, uint64_t now_us)
{
    sim_workload *w = c->w;
    c->seq++;
    c->op = sim_pick_op(w);
    c->key = sim_pick_key(w);
    sim_make_value(c);
    if (c->op == PX_OP_CAS && sim_set_expected(c, &w->known[c->key]) < 0)
        c->op = PX_OP_GET; /* no memory for the expectation: degrade, stay correct */
    if (sim_wclient_encode(c) < 0) {
        c->seq--;
        return; /* only -ENOMEM: the client stays idle */
    }
    c->busy = true;
    c->invoke_us = now_us;
    c->deadline_us = now_us + w->cfg.op_timeout_us;
    c->hops = 0;
    w->outstanding++;
    w->c.invoked++;
    const char *v;
    size_t len;
    sim_wclient_op_value(c, &v, &len);
    sim_emit_op(c, SIM_HIST_INVOKE, v, len, now_us);
    sim_wclient_send(c, now_us);
}

static void sim_wclient_timer(void *ctx, uint64_t now_us)
{
    sim_wclient *c = ctx;
    if (!c->busy) {
        /* the closed-loop think time is over */
        if (c->w->running)
            sim_wclient_begin(c, now_us);
        return;
    }
    if (now_us >= c->deadline_us) {
        const char *v;
        size_t len;
        sim_wclient_op_value(c, &v, &len);
        sim_wclient_finish(c, SIM_HIST_INFO, v, len, now_us);
        return;
    }
    if (now_us < c->resend_us) {
        sim_wclient_arm(c);
        return;
    }
    if (c->rotate)
        c->target = (c->target + 1) % sim_n_replicas(c->w->s);
    c->hops = 0;
    c->w->c.resends++;
    sim_wclient_send(c, now_us);
}

static void sim_wclient_remember(sim_wclient *c, const char *v, size_t len)
{
    sim_known *k = &c->w->known[c->key];
    switch (c->op) {
    case PX_OP_GET: sim_known_set(k, v, len); break;
    case PX_OP_PUT:
    case PX_OP_CAS: sim_known_set(k, c->value, c->value_len); break;
    case PX_OP_DEL: sim_known_set(k, NULL, 0); break;
    default: break; /* append: the new value is not known here */
    }
}

static void sim_wclient_redirect(sim_wclient *c, uint16_t hint, uint64_t now_us)
{
    sim_workload *w = c->w;
    uint8_t n = sim_n_replicas(w->s);
    w->c.redirects++;
    if (hint < n && (int)hint != c->target && c->hops < 2u * n) {
        c->target = hint;
        c->hops++;
        w->c.resends++;
        sim_wclient_send(c, now_us);
        return;
    }
    /* No usable hint (election in progress, or ping-pong): try the next replica
     * a little later instead of hammering the cluster. */
    c->target = (c->target + 1) % n;
    c->hops = 0;
    c->resend_us = now_us + w->cfg.redirect_backoff_us;
    c->rotate = false;
    sim_wclient_arm(c);
}

static void sim_wclient_recv(void *ctx, const px_msg *m, uint64_t now_us)
{
    sim_wclient *c = ctx;
    if (m->type != PX_MSG_CLIENT_REPLY || !c->busy)
        return;
    const __typeof__(m->u.client_reply) *r = &m->u.client_reply;
    if (r->client_id != c->client_id || r->seq != c->seq)
        return; /* an answer to an abandoned or earlier command */
    const char *v = NULL;
    size_t len = 0;
    switch (r->status) {
    case PX_REPLY_OK:
        if (c->op == PX_OP_GET) {
            v = r->has_value ? (const char *)r->value.data : NULL;
            len = r->has_value ? r->value.len : 0;
        } else {
            sim_wclient_op_value(c, &v, &len);
        }
        c->target = m->from < sim_n_replicas(c->w->s) ? m->from : c->target;
        sim_wclient_remember(c, v, len);
        sim_wclient_finish(c, SIM_HIST_OK, v, len, now_us);
        break;
    case PX_REPLY_FAIL:
    case PX_REPLY_BAD_REQUEST:
        sim_wclient_op_value(c, &v, &len);
        sim_wclient_finish(c, SIM_HIST_FAIL, v, len, now_us);
        break;
    case PX_REPLY_REDIRECT:
        sim_wclient_redirect(c, r->leader, now_us);
        break;
    default:
        break;
    }
}

/* ---- open loop ---- */

static uint64_t sim_arrival_gap_us(sim_workload *w)
{
    /* uniform in [0, 2/rate]: mean 1/rate, as Jepsen's stagger */
    double mean_us = 1e6 / w->cfg.rate_ops_per_s;
    return rift_rng_range(&w->rng, 0, (uint64_t)(2.0 * mean_us));
}

static void sim_arrival(void *ctx, uint64_t now_us)
{
    sim_workload *w = ctx;
    if (!w->running)
        return;
    uint32_t n = w->cfg.n_clients;
    bool placed = false;
    for (uint32_t k = 0; k < n && !placed; k++) {
        sim_wclient *c = &w->clients[(w->rr + k) % n];
        if (c->busy)
            continue;
        w->rr = (c->idx + 1) % n;
        sim_wclient_begin(c, now_us);
        placed = true;
    }
    if (!placed)
        w->c.skipped++;
    sim_timer_set(w->arrival, now_us + sim_arrival_gap_us(w));
}

/* ---- set-up ---- */

static int sim_workload_check(const sim_workload_config *c)
{
    double total = 0;
    for (int op = PX_OP_GET; op <= PX_OP_MAX; op++) {
        if (!(c->mix[op] >= 0) || !isfinite(c->mix[op]))
            return -EINVAL;
        total += c->mix[op];
    }
    if (!(total > 0) || c->n_clients < 1 || c->n_clients > SIM_WORKLOAD_MAX_CLIENTS)
        return -EINVAL;
    if (c->n_keys < 1 || c->n_keys > SIM_WORKLOAD_MAX_KEYS || c->value_bytes > PX_KV_MAX_VALUE / 2)
        return -EINVAL;
    if (!(c->rate_ops_per_s >= 0) || !isfinite(c->rate_ops_per_s))
        return -EINVAL;
    if (c->dist == SIM_KEYS_ZIPF && !(c->zipf_theta > 0))
        return -EINVAL;
    if (c->retry_us == 0 || c->op_timeout_us == 0)
        return -EINVAL;
    return 0;
}

static int sim_workload_keys(sim_workload *w)
{
    uint32_t n = w->cfg.n_keys;
    w->keys = calloc(n, sizeof(*w->keys));
    w->known = calloc(n, sizeof(*w->known));
    if (!w->keys || !w->known)
        return -ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        w->keys[i] = malloc(16);
        if (!w->keys[i])
            return -ENOMEM;
        snprintf(w->keys[i], 16, "k%u", i);
    }
    if (w->cfg.dist != SIM_KEYS_ZIPF)
        return 0;
    w->zipf_cdf = malloc(n * sizeof(*w->zipf_cdf));
    if (!w->zipf_cdf)
        return -ENOMEM;
    double sum = 0;
    for (uint32_t i = 0; i < n; i++)
        w->zipf_cdf[i] = (sum += 1.0 / pow((double)(i + 1), w->cfg.zipf_theta));
    for (uint32_t i = 0; i < n; i++)
        w->zipf_cdf[i] /= sum;
    return 0;
}

static int sim_workload_clients(sim_workload *w)
{
    w->clients = calloc(w->cfg.n_clients, sizeof(*w->clients));
    if (!w->clients)
        return -ENOMEM;
    for (uint32_t i = 0; i < w->cfg.n_clients; i++) {
        sim_wclient *c = &w->clients[i];
        c->w = w;
        c->idx = i;
        c->addr = PX_CLIENT_BASE + i;
        c->process = i;
        c->client_id = c->process + 1;
        c->target = (int)rift_rng_range(&w->rng, 0, sim_n_replicas(w->s) - 1u);
        c->value = malloc(w->value_cap);
        c->timer = sim_timer_new(w->s, sim_wclient_timer, c);
        if (!c->value || !c->timer)
            return -ENOMEM;
        int rc = sim_attach(w->s, c->addr, sim_wclient_recv, c);
        if (rc < 0) {
            c->addr = 0; /* not ours to detach */
            return rc;
        }
    }
    return 0;
}

sim_workload *sim_workload_new(sim *s, const sim_workload_config *c, int *err)
{
    int rc = sim_workload_check(c);
    sim_workload *w = NULL;
    if (rc < 0)
        goto fail;
    rc = -ENOMEM;
    w = calloc(1, sizeof(*w));
    if (!w)
        goto fail;
    w->s = s;
    w->cfg = *c;
    if (w->cfg.redirect_backoff_us == 0)
        w->cfg.redirect_backoff_us = 1;
    for (int op = PX_OP_GET; op <= PX_OP_MAX; op++)
        w->mix_total += w->cfg.mix[op];
    w->value_cap = (c->value_bytes > SIM_TOKEN_MAX ? c->value_bytes : SIM_TOKEN_MAX) + 1;
    sim_rng_fork(s, SIM_SALT_WORKLOAD, &w->rng);
    w->arrival = sim_timer_new(s, sim_arrival, w);
    if (!w->arrival)
        goto fail;
    rc = sim_workload_keys(w);
    if (rc == 0)
        rc = sim_workload_clients(w);
    if (rc < 0)
        goto fail;
    return w;
fail:
    sim_workload_free(w);
    if (err)
        *err = rc;
    return NULL;
}

void sim_workload_free(sim_workload *w)
{
    if (!w)
        return;
    for (uint32_t i = 0; w->clients && i < w->cfg.n_clients; i++) {
        sim_wclient *c = &w->clients[i];
        if (c->addr)
            sim_detach(w->s, c->addr);
        sim_timer_free(c->timer);
        free(c->value);
        free(c->expected);
        free(c->cmd);
    }
    for (uint32_t i = 0; w->keys && i < w->cfg.n_keys; i++)
        free(w->keys[i]);
    for (uint32_t i = 0; w->known && i < w->cfg.n_keys; i++)
        free(w->known[i].v);
    sim_timer_free(w->arrival);
    free(w->clients);
    free(w->keys);
    free(w->known);
    free(w->zipf_cdf);
    free(w);
}

void sim_workload_on_history(sim_workload *w, sim_hist_fn fn, void *ctx)
{
    w->on_hist = fn;
    w->on_hist_ctx = ctx;
}

int sim_workload_start(sim_workload *w)
{
    if (w->running)
        return 0;
    w->running = true;
    uint64_t now = sim_now_us(w->s);
    if (w->cfg.rate_ops_per_s > 0)
        return sim_timer_set(w->arrival, now + sim_arrival_gap_us(w));
    for (uint32_t i = 0; i < w->cfg.n_clients; i++)
        if (!w->clients[i].busy)
            sim_wclient_begin(&w->clients[i], now);
    return 0;
}

void sim_workload_stop(sim_workload *w)
{
    w->running = false;
    sim_timer_cancel(w->arrival);
    for (uint32_t i = 0; i < w->cfg.n_clients; i++)
        if (!w->clients[i].busy)
            sim_timer_cancel(w->clients[i].timer); /* a pending think time */
}

uint32_t sim_workload_outstanding(const sim_workload *w)
{
    return w->outstanding;
}

void sim_workload_counters_get(const sim_workload *w, sim_workload_counters *out)
{
    *out = w->c;
}
