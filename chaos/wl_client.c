/* wl_client.c — the workload engine (see wl_client.h).
 *
 * Each logical client has one timer node; the nodes and the open-loop arrival
 * live in a private sim_queue (a plain heap ordered by time, then by when they
 * were set), and the engine asks its environment for a single wake-up at the
 * earliest one. So timers due at the same µs fire in the order they were set,
 * whatever the caller's event loop does. */
#include "wl_client.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_queue.h"

#define WL_TOKEN_MAX 48u /* "c<u64>-<u64>" fits */
#define WL_KEY_MAX 16u   /* "k<u32>" fits */

typedef struct wl_one {
    sim_qnode timer;       /* resend / give up / think time over */
    wl_client *w;
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
} wl_one;

/* What the engine last saw committed per key: feeds cas expectations. */
typedef struct wl_known {
    char *v;
    size_t len;
    bool present;
} wl_known;

struct wl_client {
    wl_config cfg;
    wl_env env;
    sim_queue q;           /* the clients' timers and the arrival */
    sim_qnode arrival;
    uint64_t armed_us;     /* what env->arm was last told */
    wl_one *clients;
    char **keys;
    double *zipf_cdf;
    wl_known *known;
    double mix_total;
    size_t value_cap;
    bool running;
    uint32_t rr;           /* open loop: where the idle-client scan starts */
    uint32_t outstanding;
    wl_hist_fn on_hist;
    void *on_hist_ctx;
    wl_counters c;
};

static void wl_begin(wl_one *c, uint64_t now_us);

const char *wl_hist_type_name(int type)
{
    static const char *const names[] = {"invoke", "ok", "fail", "info"};
    return type >= 0 && type <= WL_HIST_INFO ? names[type] : "unknown";
}

const char *wl_hist_f_name(int op)
{
    static const char *const names[] = {NULL, "get", "put", "del", "append", "cas"};
    return op >= PX_OP_GET && op <= PX_OP_MAX ? names[op] : "unknown";
}

void wl_config_default(wl_config *c)
{
    memset(c, 0, sizeof(*c));
    c->n_clients = 4;
    c->n_replicas = 3;
    c->mix[PX_OP_GET] = 0.5;
    c->mix[PX_OP_PUT] = 0.3;
    c->mix[PX_OP_APPEND] = 0.1;
    c->mix[PX_OP_CAS] = 0.1;
    c->n_keys = 10;
    c->dist = WL_KEYS_UNIFORM;
    c->zipf_theta = 1.0;
    c->value_bytes = 16;
    c->retry_us = 50000;
    c->redirect_backoff_us = 5000;
    c->op_timeout_us = 1000000;
}

#define CHECK(cond, ...)                            \
    do {                                            \
        if (!(cond)) {                              \
            if (err && errlen)                      \
                snprintf(err, errlen, __VA_ARGS__); \
            return -EINVAL;                         \
        }                                           \
    } while (0)

int wl_config_check(const wl_config *c, char *err, size_t errlen)
{
    double total = 0;
    for (int op = PX_OP_GET; op <= PX_OP_MAX; op++) {
        CHECK(c->mix[op] >= 0 && isfinite(c->mix[op]), "mix[%s]: expected a finite weight >= 0", wl_hist_f_name(op));
        total += c->mix[op];
    }
    CHECK(total > 0, "mix: expected some op with a weight > 0");
    CHECK(c->n_clients >= 1 && c->n_clients <= WL_MAX_CLIENTS, "n_clients: expected 1..%u", WL_MAX_CLIENTS);
    CHECK(c->n_replicas >= 1 && c->n_replicas <= PX_MAX_REPLICAS, "n_replicas: expected 1..%u", PX_MAX_REPLICAS);
    CHECK(c->n_keys >= 1 && c->n_keys <= WL_MAX_KEYS, "n_keys: expected 1..%u", WL_MAX_KEYS);
    CHECK(c->value_bytes <= PX_KV_MAX_VALUE / 2, "value_bytes: expected at most %u", PX_KV_MAX_VALUE / 2);
    CHECK(c->rate_ops_per_s >= 0 && isfinite(c->rate_ops_per_s), "rate_ops_per_s: expected a finite rate >= 0");
    CHECK(c->dist == WL_KEYS_UNIFORM || c->dist == WL_KEYS_ZIPF, "dist: expected uniform or zipf");
    CHECK(c->dist != WL_KEYS_ZIPF || c->zipf_theta > 0, "zipf_theta: expected > 0");
    CHECK(c->retry_us > 0 && c->op_timeout_us > 0, "retry_us, op_timeout_us: expected > 0");
    if (c->total_clients || c->client_step || c->first_client) {
        uint64_t step = c->client_step ? c->client_step : 1;
        uint64_t last = c->first_client + (uint64_t)(c->n_clients - 1) * step;
        CHECK(c->total_clients > 0 && last < c->total_clients,
              "first_client, client_step, total_clients: global client %llu beyond total_clients %u",
              (unsigned long long)last, c->total_clients);
        CHECK(PX_CLIENT_BASE + (uint64_t)c->total_clients <= PX_NO_NODE,
              "total_clients: px addresses end below %u", PX_NO_NODE);
    }
    return 0;
}

#undef CHECK

/* ---- timers ---- */

static void wl_set(wl_client *w, sim_qnode *n, uint64_t at_us)
{
    sim_queue_set(&w->q, n, at_us); /* -ENOSPC needs 16M timers: not with WL_MAX_CLIENTS */
}

/* Tell the environment about the earliest timer when it changed (always
 * after wl_timer: the caller may consider its timer spent). */
static void wl_rearm(wl_client *w, bool force)
{
    uint64_t at = sim_queue_peek_us(&w->q);
    if (at == w->armed_us && !force)
        return;
    w->armed_us = at;
    w->env.arm(w->env.ctx, at);
}

/* Every input starts here: the heap's clock follows the caller's. */
static uint64_t wl_now(wl_client *w)
{
    uint64_t now = w->env.now_us(w->env.ctx);
    if (now > w->q.now_us)
        w->q.now_us = now;
    return w->q.now_us;
}

/* ---- history ---- */

static void wl_emit_op(wl_one *c, uint8_t type, const char *value, size_t value_len, uint64_t now_us)
{
    wl_client *w = c->w;
    wl_hist h = {
        .process = c->process,
        .type = type,
        .f = c->op,
        .key = w->keys[c->key],
        .value = value,
        .value_len = value_len,
        .expected = c->op == PX_OP_CAS ? c->expected : NULL,
        .expected_len = c->op == PX_OP_CAS ? c->expected_len : 0,
        .time_us = now_us,
        .client_id = c->client_id,
        .seq = c->seq,
    };
    if (w->on_hist)
        w->on_hist(w->on_hist_ctx, &h);
}

/* The value an invoke (and a fail/info) record carries for this op. */
static void wl_op_value(const wl_one *c, const char **v, size_t *len)
{
    bool has = c->op == PX_OP_PUT || c->op == PX_OP_APPEND || c->op == PX_OP_CAS;
    *v = has ? c->value : NULL;
    *len = has ? c->value_len : 0;
}

/* ---- workload generation ---- */

static uint32_t wl_pick_key(wl_client *w)
{
    if (w->cfg.dist != WL_KEYS_ZIPF)
        return (uint32_t)rift_rng_range(w->env.rng, 0, w->cfg.n_keys - 1);
    double u = rift_rng_double(w->env.rng);
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

static uint8_t wl_pick_op(wl_client *w)
{
    double u = rift_rng_double(w->env.rng) * w->mix_total;
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

static void wl_make_value(wl_one *c)
{
    size_t cap = c->w->value_cap;
    int n = snprintf(c->value, cap, "c%llu-%llu", (unsigned long long)c->client_id, (unsigned long long)c->seq);
    size_t len = n > 0 ? (size_t)n : 0;
    while (len < c->w->cfg.value_bytes && len + 1 < cap)
        c->value[len++] = '.';
    c->value_len = len;
}

static int wl_set_expected(wl_one *c, const wl_known *k)
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

static int wl_known_set(wl_known *k, const char *v, size_t len)
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

static int wl_encode(wl_one *c)
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

/* ---- one client's state machine ---- */

static void wl_arm_op(wl_one *c)
{
    wl_set(c->w, &c->timer, c->resend_us < c->deadline_us ? c->resend_us : c->deadline_us);
}

static void wl_send(wl_one *c, uint64_t now_us)
{
    wl_client *w = c->w;
    px_msg m = {.type = PX_MSG_CLIENT_REQ, .from = (uint16_t)c->addr, .to = (uint16_t)c->target};
    m.u.client_req.cmd = (px_bytes){c->cmd, (uint32_t)c->cmd_len};
    w->env.send(w->env.ctx, &m);
    w->c.sends++;
    c->resend_us = now_us + w->cfg.retry_us;
    c->rotate = true;
    wl_arm_op(c);
}

static void wl_next_op(wl_one *c, uint64_t now_us)
{
    wl_client *w = c->w;
    if (!w->running || w->cfg.rate_ops_per_s > 0)
        return;
    if (w->cfg.think_us == 0) {
        wl_begin(c, now_us);
        return;
    }
    c->resend_us = c->deadline_us = now_us + w->cfg.think_us;
    wl_set(w, &c->timer, c->resend_us);
}

static void wl_finish(wl_one *c, uint8_t type, const char *v, size_t len, uint64_t now_us)
{
    wl_client *w = c->w;
    wl_emit_op(c, type, v, len, now_us);
    c->busy = false;
    w->outstanding--;
    sim_queue_cancel(&w->q, &c->timer);
    if (type == WL_HIST_INFO) {
        w->c.info++;
        c->process += w->cfg.total_clients;
        c->client_id = c->process + 1;
        c->seq = 0;
    } else {
        uint64_t lat = now_us - c->invoke_us;
        w->c.latency_us_sum += lat;
        if (lat > w->c.latency_us_max)
            w->c.latency_us_max = lat;
        *(type == WL_HIST_OK ? &w->c.ok : &w->c.fail) += 1;
    }
    wl_next_op(c, now_us);
}

static void wl_begin(wl_one *c, uint64_t now_us)
{
    wl_client *w = c->w;
    c->seq++;
    c->op = wl_pick_op(w);
    c->key = wl_pick_key(w);
    wl_make_value(c);
    if (c->op == PX_OP_CAS && wl_set_expected(c, &w->known[c->key]) < 0)
        c->op = PX_OP_GET; /* no memory for the expectation: degrade, stay correct */
    if (wl_encode(c) < 0) {
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
    wl_op_value(c, &v, &len);
    wl_emit_op(c, WL_HIST_INVOKE, v, len, now_us);
    wl_send(c, now_us);
}

static void wl_client_fire(sim_qnode *n, uint64_t now_us)
{
    wl_one *c = (wl_one *)((char *)n - offsetof(wl_one, timer));
    wl_client *w = c->w;
    if (!c->busy) {
        if (w->running) /* the closed-loop think time is over */
            wl_begin(c, now_us);
        return;
    }
    if (now_us >= c->deadline_us) {
        const char *v;
        size_t len;
        wl_op_value(c, &v, &len);
        wl_finish(c, WL_HIST_INFO, v, len, now_us);
        return;
    }
    if (now_us < c->resend_us) {
        wl_arm_op(c);
        return;
    }
    if (c->rotate)
        c->target = (c->target + 1) % w->cfg.n_replicas;
    c->hops = 0;
    w->c.resends++;
    wl_send(c, now_us);
}

static void wl_remember(wl_one *c, const char *v, size_t len)
{
    wl_known *k = &c->w->known[c->key];
    switch (c->op) {
    case PX_OP_GET: wl_known_set(k, v, len); break;
    case PX_OP_PUT:
    case PX_OP_CAS: wl_known_set(k, c->value, c->value_len); break;
    case PX_OP_DEL: wl_known_set(k, NULL, 0); break;
    default: break; /* append: the new value is not known here */
    }
}

static void wl_redirect(wl_one *c, uint16_t hint, uint64_t now_us)
{
    wl_client *w = c->w;
    uint8_t n = w->cfg.n_replicas;
    w->c.redirects++;
    if (hint < n && (int)hint != c->target && c->hops < 2u * n) {
        c->target = hint;
        c->hops++;
        w->c.resends++;
        wl_send(c, now_us);
        return;
    }
    /* No usable hint (election in progress, or ping-pong): try the next replica
     * a little later instead of hammering the cluster. */
    c->target = (c->target + 1) % n;
    c->hops = 0;
    c->resend_us = now_us + w->cfg.redirect_backoff_us;
    c->rotate = false;
    wl_arm_op(c);
}

static void wl_reply(wl_one *c, const px_msg *m, uint64_t now_us)
{
    const __typeof__(m->u.client_reply) *r = &m->u.client_reply;
    const char *v = NULL;
    size_t len = 0;
    switch (r->status) {
    case PX_REPLY_OK:
        if (c->op == PX_OP_GET) {
            v = r->has_value ? (const char *)r->value.data : NULL;
            len = r->has_value ? r->value.len : 0;
        } else {
            wl_op_value(c, &v, &len);
        }
        c->target = m->from < c->w->cfg.n_replicas ? m->from : c->target;
        wl_remember(c, v, len);
        wl_finish(c, WL_HIST_OK, v, len, now_us);
        break;
    case PX_REPLY_FAIL:
    case PX_REPLY_BAD_REQUEST:
        wl_op_value(c, &v, &len);
        wl_finish(c, WL_HIST_FAIL, v, len, now_us);
        break;
    case PX_REPLY_REDIRECT:
        wl_redirect(c, r->leader, now_us);
        break;
    default:
        c->w->c.ignored++;
        break;
    }
}

/* ---- open loop ---- */

static uint64_t wl_arrival_gap_us(wl_client *w)
{
    /* uniform in [0, 2/rate]: mean 1/rate, as Jepsen's stagger */
    double mean_us = 1e6 / w->cfg.rate_ops_per_s;
    return rift_rng_range(w->env.rng, 0, (uint64_t)(2.0 * mean_us));
}

static void wl_arrival_fire(sim_qnode *n, uint64_t now_us)
{
    wl_client *w = (wl_client *)((char *)n - offsetof(wl_client, arrival));
    if (!w->running)
        return;
    uint32_t count = w->cfg.n_clients;
    bool placed = false;
    for (uint32_t k = 0; k < count && !placed; k++) {
        wl_one *c = &w->clients[(w->rr + k) % count];
        if (c->busy)
            continue;
        w->rr = (c->idx + 1) % count;
        wl_begin(c, now_us);
        placed = true;
    }
    if (!placed)
        w->c.skipped++;
    wl_set(w, &w->arrival, now_us + wl_arrival_gap_us(w));
}

/* ---- inputs ---- */

int wl_recv(wl_client *w, const px_msg *m)
{
    uint32_t i = UINT32_MAX;
    if (m->to >= PX_CLIENT_BASE) {
        uint64_t g = (uint64_t)m->to - PX_CLIENT_BASE;
        uint64_t step = w->cfg.client_step;
        if (g >= w->cfg.first_client && (g - w->cfg.first_client) % step == 0 &&
            (g - w->cfg.first_client) / step < w->cfg.n_clients)
            i = (uint32_t)((g - w->cfg.first_client) / step);
    }
    if (i == UINT32_MAX)
        return -ENOENT;
    if (m->type != PX_MSG_CLIENT_REPLY)
        return -EBADMSG;
    wl_one *c = &w->clients[i];
    uint64_t now = wl_now(w);
    if (!c->busy || m->u.client_reply.client_id != c->client_id || m->u.client_reply.seq != c->seq) {
        w->c.ignored++; /* an answer to an abandoned or earlier command */
        return 0;
    }
    wl_reply(c, m, now);
    wl_rearm(w, false);
    return 0;
}

void wl_timer(wl_client *w)
{
    uint64_t now = wl_now(w);
    sim_qnode *n;
    while ((n = sim_queue_pop(&w->q, now)) != NULL) {
        w->q.now_us = now; /* pop moved it back to the node's time */
        n->fire(n, now);
    }
    wl_rearm(w, true);
}

/* ---- set-up ---- */

static int wl_keys(wl_client *w)
{
    uint32_t n = w->cfg.n_keys;
    w->keys = calloc(n, sizeof(*w->keys));
    w->known = calloc(n, sizeof(*w->known));
    if (!w->keys || !w->known)
        return -ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        w->keys[i] = malloc(WL_KEY_MAX);
        if (!w->keys[i])
            return -ENOMEM;
        snprintf(w->keys[i], WL_KEY_MAX, "k%u", i);
    }
    if (w->cfg.dist != WL_KEYS_ZIPF)
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

static int wl_clients(wl_client *w)
{
    w->clients = calloc(w->cfg.n_clients, sizeof(*w->clients));
    if (!w->clients)
        return -ENOMEM;
    for (uint32_t i = 0; i < w->cfg.n_clients; i++) {
        wl_one *c = &w->clients[i];
        uint64_t g = w->cfg.first_client + (uint64_t)i * w->cfg.client_step;
        sim_qnode_init(&c->timer, wl_client_fire);
        c->w = w;
        c->idx = i;
        c->addr = PX_CLIENT_BASE + (uint32_t)g;
        c->process = g;
        c->client_id = c->process + 1;
        c->target = (int)rift_rng_range(w->env.rng, 0, w->cfg.n_replicas - 1u);
        c->value = malloc(w->value_cap);
        if (!c->value)
            return -ENOMEM;
    }
    return 0;
}

wl_client *wl_new(const wl_config *c, const wl_env *env, int *err)
{
    int rc = wl_config_check(c, NULL, 0);
    wl_client *w = NULL;
    if (rc < 0 || !env->now_us || !env->send || !env->arm || !env->rng) {
        rc = -EINVAL;
        goto fail;
    }
    rc = -ENOMEM;
    w = calloc(1, sizeof(*w));
    if (!w)
        goto fail;
    w->cfg = *c;
    w->env = *env;
    w->armed_us = UINT64_MAX;
    if (!w->cfg.client_step)
        w->cfg.client_step = 1;
    if (!w->cfg.total_clients)
        w->cfg.total_clients = w->cfg.n_clients;
    if (w->cfg.redirect_backoff_us == 0)
        w->cfg.redirect_backoff_us = 1;
    for (int op = PX_OP_GET; op <= PX_OP_MAX; op++)
        w->mix_total += w->cfg.mix[op];
    w->value_cap = (c->value_bytes > WL_TOKEN_MAX ? c->value_bytes : WL_TOKEN_MAX) + 1;
    sim_qnode_init(&w->arrival, wl_arrival_fire);
    if (sim_queue_init(&w->q) < 0)
        goto fail;
    rc = wl_keys(w);
    if (rc == 0)
        rc = wl_clients(w);
    if (rc < 0)
        goto fail;
    return w;
fail:
    wl_free(w);
    if (err)
        *err = rc;
    return NULL;
}

void wl_free(wl_client *w)
{
    if (!w)
        return;
    for (uint32_t i = 0; w->clients && i < w->cfg.n_clients; i++) {
        free(w->clients[i].value);
        free(w->clients[i].expected);
        free(w->clients[i].cmd);
    }
    for (uint32_t i = 0; w->keys && i < w->cfg.n_keys; i++)
        free(w->keys[i]);
    for (uint32_t i = 0; w->known && i < w->cfg.n_keys; i++)
        free(w->known[i].v);
    if (w->q.heap)
        sim_queue_fini(&w->q);
    free(w->clients);
    free(w->keys);
    free(w->known);
    free(w->zipf_cdf);
    free(w);
}

void wl_on_history(wl_client *w, wl_hist_fn fn, void *ctx)
{
    w->on_hist = fn;
    w->on_hist_ctx = ctx;
}

int wl_start(wl_client *w)
{
    if (w->running)
        return 0;
    w->running = true;
    uint64_t now = wl_now(w);
    if (w->cfg.rate_ops_per_s > 0)
        wl_set(w, &w->arrival, now + wl_arrival_gap_us(w));
    else
        for (uint32_t i = 0; i < w->cfg.n_clients; i++)
            if (!w->clients[i].busy)
                wl_begin(&w->clients[i], now);
    wl_rearm(w, false);
    return 0;
}

void wl_stop(wl_client *w)
{
    w->running = false;
    sim_queue_cancel(&w->q, &w->arrival);
    for (uint32_t i = 0; i < w->cfg.n_clients; i++)
        if (!w->clients[i].busy)
            sim_queue_cancel(&w->q, &w->clients[i].timer); /* a pending think time */
    wl_rearm(w, false);
}

uint64_t wl_next_timer_us(const wl_client *w)
{
    return w->armed_us;
}

uint32_t wl_outstanding(const wl_client *w)
{
    return w->outstanding;
}

void wl_counters_get(const wl_client *w, wl_counters *out)
{
    *out = w->c;
}

uint32_t wl_n_clients(const wl_client *w)
{
    return w->cfg.n_clients;
}

uint32_t wl_client_addr(const wl_client *w, uint32_t i)
{
    return i < w->cfg.n_clients ? w->clients[i].addr : 0;
}
