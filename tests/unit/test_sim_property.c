/* test_sim_property.c — randomized fault schedules against the real replica in sim.
 *
 * Per seed: 3 or 5 replicas, an append/get workload, a random schedule of
 * partitions, directed cuts, loss, delay, duplication, reorder, crashes (process,
 * and power loss under fsync), restarts and pauses — at most a minority down at
 * once, a restarted replica counting as down until it has caught up — then
 * everything heals and the run settles. Checked:
 *   (a) agreement: one entry per executed index on every replica (entry hash and
 *       rolling digest; a state transfer's digest matches too);
 *   (b) every acknowledged append is in the final value, in real-time order, and
 *       every read saw a prefix that includes all appends acknowledged before it;
 *   (c) no token appears twice (a retried command executes at most once);
 *   (d) compaction keeps log and WAL bounded once all replicas are back;
 *   (e) after heal every replica converges on the leader's last_executed;
 *   (f) after heal a leader is elected and commits resume within a bound.
 * And (g): with durability off, crash-restart-heavy schedules must produce an
 * agreement violation somewhere — the checker bites.
 *
 * Seeds: RIFT_PROPERTY_SEEDS (compile definition), overridden by the RIFT_SEEDS
 * environment variable; RIFT_SEED=n runs that one seed and prints its trace.
 * The seeds run in the simulator's default packet model (messages over the real
 * transport); RIFT_SIM_NET=message switches the two random_faults halves to the
 * message model, which also runs its own RIFT_MESSAGE_SEEDS (default 100). */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chaos/sim.h"
#include "chaos/sim_client.h"

#ifndef RIFT_PROPERTY_SEEDS
#define RIFT_PROPERTY_SEEDS 500
#endif

#define MS 1000ull
#define SEC 1000000ull

#define PROP_KEYS 5u
#define PROP_LOG_BOUND 256u      /* entries held once everyone is back (d) */
#define PROP_RECOVER_US (2500 * MS) /* heal -> first commit (f) */
#define PROP_SETTLE_US (2000 * MS)  /* heal -> compaction bound applies (d) */
#define PROP_STOP_US (2600 * MS)    /* heal -> workload stops */
#define PROP_QUIET_US (900 * MS)    /* stop -> checks (op timeout 500 ms) */
#define PROP_AMNESIA_SEEDS 400u
#define PROP_CRASH_ALL_SEEDS 100u
#define PROP_MSG_MAX 512
/* A healthy seed sends well under 100k messages; a storm is a bug (and would
 * otherwise run for minutes). */
#define PROP_MSG_BUDGET 1000000u
#define PROP_MESSAGE_SEEDS 100u

/* The network model every seed of this test process runs in. */
static uint8_t prop_net_model = SIM_NET_PACKET;

/* ---- a tiny u64 -> u32 map (open addressing; key 0 is stored as 1 + key) ---- */

typedef struct u64map {
    uint64_t *keys;
    uint32_t *vals;
    size_t cap, len;
} u64map;

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    return x ^ (x >> 33);
}

static void map_put(u64map *m, uint64_t key, uint32_t val);

static void map_grow(u64map *m)
{
    u64map n = {calloc(m->cap ? m->cap * 2 : 256, 8), NULL, m->cap ? m->cap * 2 : 256, 0};
    n.vals = calloc(n.cap, 4);
    cr_assert(n.keys && n.vals);
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i])
            map_put(&n, m->keys[i] - 1, m->vals[i]);
    free(m->keys);
    free(m->vals);
    *m = n;
}

static void map_put(u64map *m, uint64_t key, uint32_t val)
{
    if ((m->len + 1) * 2 > m->cap)
        map_grow(m);
    size_t i = mix64(key) & (m->cap - 1);
    while (m->keys[i] && m->keys[i] != key + 1)
        i = (i + 1) & (m->cap - 1);
    if (!m->keys[i])
        m->len++;
    m->keys[i] = key + 1;
    m->vals[i] = val;
}

static bool map_get(const u64map *m, uint64_t key, uint32_t *val)
{
    if (!m->cap)
        return false;
    size_t i = mix64(key) & (m->cap - 1);
    while (m->keys[i]) {
        if (m->keys[i] == key + 1) {
            *val = m->vals[i];
            return true;
        }
        i = (i + 1) & (m->cap - 1);
    }
    return false;
}

static void map_free(u64map *m)
{
    free(m->keys);
    free(m->vals);
}

/* ---- one run ---- */

typedef struct pop {
    uint64_t process, cid, seq, inv_us, done_us;
    uint8_t f, type; /* type: SIM_HIST_INVOKE while pending, else the completion */
    uint32_t key;
    char *value;     /* append: the token; get ok: a copy of the read (NULL = null) */
    size_t len;
    int pos;         /* append: position in the final value, -1 = absent */
} pop;

typedef struct exec_rec {
    uint64_t hash, digest;
    uint8_t replica;
    bool set;
} exec_rec;

/* PROP_CRASH_ALL: the safe schedule plus whole-cluster crashes (fsync or write
 * durability): every property must still hold. PROP_CRASH_ALL_OFF: the same
 * with durability off, where the checks must catch the amnesia. */
typedef enum prop_mode { PROP_SAFE = 0, PROP_AMNESIA, PROP_CRASH_ALL, PROP_CRASH_ALL_OFF } prop_mode;

/* Whole-cluster crashes run, and how many of them came after every replica
 * had trimmed and checkpointed (the case the checkpoints exist for). */
static uint64_t crash_all_runs, crash_all_after_trims;

typedef struct prun {
    uint64_t seed;
    prop_mode mode;
    uint8_t n;
    px_durability dur;
    px_fd_policy fd;
    sim *s;
    sim_workload *w;
    rift_rng rng;          /* the fault schedule's own stream */
    bool verbose;
    /* (a) */
    exec_rec *ex;
    size_t ex_cap;
    bool agreement_broken;
    uint64_t bad_index;
    /* history */
    pop *ops;
    size_t n_ops, cap_ops;
    u64map pending;        /* process -> op */
    u64map tokens;         /* cid << 32 | seq -> op */
    /* faults */
    bool crashed[PX_MAX_REPLICAS];
    bool restarted[PX_MAX_REPLICAS]; /* counted down until caught up */
    bool paused[PX_MAX_REPLICAS];
    int rules[ST_IMPAIR_MAX_RULES];
    int n_rules;
    uint64_t heal_us, first_ok_after_heal_us;
    uint64_t trims_after_heal;
    uint64_t log_max_settled;
    uint64_t crash_all_at_us;  /* the first whole-cluster crash (crash-all modes) */
    bool crashed_all;
    bool aborted;          /* the message budget ran out */
    char fail[PROP_MSG_MAX];
} prun;

static void prun_fail(prun *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void prun_fail(prun *p, const char *fmt, ...)
{
    if (p->fail[0])
        return; /* the first failure is the interesting one */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->fail, sizeof(p->fail), fmt, ap);
    va_end(ap);
}

static void ex_reserve(prun *p, uint64_t index)
{
    if (index < p->ex_cap)
        return;
    size_t cap = p->ex_cap ? p->ex_cap : 1024;
    while (cap <= index)
        cap *= 2;
    exec_rec *e = realloc(p->ex, cap * sizeof(*e));
    cr_assert_not_null(e);
    memset(e + p->ex_cap, 0, (cap - p->ex_cap) * sizeof(*e));
    p->ex = e;
    p->ex_cap = cap;
}

static void check_execute(prun *p, const px_event *e)
{
    ex_reserve(p, e->index);
    exec_rec *x = &p->ex[e->index];
    if (!x->set) {
        *x = (exec_rec){.hash = e->a, .digest = e->b, .replica = e->replica, .set = true};
        return;
    }
    if (x->hash == e->a && x->digest == e->b)
        return;
    if (!p->agreement_broken) {
        p->agreement_broken = true;
        p->bad_index = e->index;
    }
    prun_fail(p, "agreement: index %" PRIu64 " executed as %016" PRIx64 " on r%u but %016" PRIx64
              " on r%u at %" PRIu64 " us (digests %016" PRIx64 " / %016" PRIx64 ")",
              e->index, x->hash, x->replica, e->a, e->replica, e->time_us, x->digest, e->b);
}

static void check_snap(prun *p, const px_event *e)
{
    if (e->index < p->ex_cap && p->ex[e->index].set && p->ex[e->index].digest != e->b)
        prun_fail(p, "agreement: r%u installed an image at %" PRIu64 " whose digest differs",
                  e->replica, e->index);
}

static void on_event(void *ctx, const px_event *e)
{
    prun *p = ctx;
    if (p->verbose && e->kind != PX_EV_COMMIT && e->kind != PX_EV_EXECUTE)
        printf("%9" PRIu64 " r%u %-14s ballot=%" PRIu64 ".%u index=%" PRIu64 " a=%" PRIu64 " b=%" PRIu64 "\n",
               e->time_us, e->replica, px_event_kind_name(e->kind), PX_BALLOT_ROUND(e->ballot),
               PX_BALLOT_ID(e->ballot), e->index, e->a, e->b);
    if (e->kind == PX_EV_EXECUTE)
        check_execute(p, e);
    else if (e->kind == PX_EV_SNAP_INSTALL)
        check_snap(p, e);
    else if (e->kind == PX_EV_TRIM && p->heal_us && e->time_us >= p->heal_us)
        p->trims_after_heal++;
}

static char *dup_bytes(const char *v, size_t len)
{
    char *c = malloc(len + 1);
    cr_assert_not_null(c);
    memcpy(c, v, len);
    c[len] = 0;
    return c;
}

static void on_invoke(prun *p, const sim_hist *h)
{
    if (p->n_ops == p->cap_ops) {
        p->cap_ops = p->cap_ops ? p->cap_ops * 2 : 1024;
        p->ops = realloc(p->ops, p->cap_ops * sizeof(*p->ops));
        cr_assert_not_null(p->ops);
    }
    pop *o = &p->ops[p->n_ops];
    *o = (pop){.process = h->process, .cid = h->client_id, .seq = h->seq, .inv_us = h->time_us,
               .f = h->f, .type = SIM_HIST_INVOKE, .key = (uint32_t)atoi(h->key + 1), .pos = -1};
    if (h->f == PX_OP_APPEND) {
        o->value = dup_bytes(h->value, h->value_len);
        o->len = h->value_len;
        map_put(&p->tokens, (h->client_id << 32) | h->seq, (uint32_t)p->n_ops);
    }
    map_put(&p->pending, h->process, (uint32_t)p->n_ops);
    p->n_ops++;
}

static void on_hist(void *ctx, const sim_hist *h)
{
    prun *p = ctx;
    if (h->type == SIM_HIST_INVOKE) {
        on_invoke(p, h);
        return;
    }
    uint32_t i;
    cr_assert(map_get(&p->pending, h->process, &i), "completion without invoke");
    pop *o = &p->ops[i];
    cr_assert_eq(o->type, SIM_HIST_INVOKE, "process %" PRIu64 " completed twice", h->process);
    o->type = h->type;
    o->done_us = h->time_us;
    if (o->f == PX_OP_GET && h->type == SIM_HIST_OK && h->value) {
        o->value = dup_bytes(h->value, h->value_len);
        o->len = h->value_len;
    }
    if (h->type == SIM_HIST_OK && p->heal_us && h->time_us >= p->heal_us && !p->first_ok_after_heal_us)
        p->first_ok_after_heal_us = h->time_us;
}

/* ---- set-up ---- */

static void prun_init(prun *p, uint64_t seed, prop_mode mode, bool verbose)
{
    memset(p, 0, sizeof(*p));
    p->seed = seed;
    p->mode = mode;
    p->verbose = verbose;
    rift_rng_seed(&p->rng, seed * 0x9e3779b97f4a7c15ULL + 17);
    p->n = rift_rng_range(&p->rng, 0, 1) ? 5 : 3;
    p->dur = mode == PROP_AMNESIA ? PX_DURABILITY_OFF
                                  : (rift_rng_range(&p->rng, 0, 2) ? PX_DURABILITY_FSYNC : PX_DURABILITY_WRITE);
    if (mode == PROP_CRASH_ALL_OFF)
        p->dur = PX_DURABILITY_OFF;
    p->fd = (px_fd_policy)rift_rng_range(&p->rng, PX_FD_NAIVE, PX_FD_QUORUM);
    sim_config c;
    sim_config_default(&c);
    if (mode == PROP_CRASH_ALL || mode == PROP_CRASH_ALL_OFF) {
        /* Checkpoints every 16..128 entries; the first whole-cluster crash
         * after 1.5..2.4 s of load, when logs and WALs were trimmed. */
        static const uint32_t every[] = {16, 64, 128};
        c.paxos.checkpoint_entries = every[rift_rng_range(&p->rng, 0, 2)];
        p->crash_all_at_us = rift_rng_range(&p->rng, 1500 * MS, 2400 * MS);
    }
    c.seed = seed;
    c.n_replicas = p->n;
    c.durability = p->dur;
    c.paxos.fd = p->fd;
    c.paxos.adapt_max_factor = 2; /* keeps the recovery bound (f) short */
    c.max_msgs = PROP_MSG_BUDGET;
    c.net_model = prop_net_model;
    int err = 0;
    p->s = sim_new(&c, &err);
    cr_assert_not_null(p->s, "sim_new: %d", err);
    sim_on_event(p->s, on_event, p);
    sim_workload_config wc;
    sim_workload_config_default(&wc);
    memset(wc.mix, 0, sizeof(wc.mix));
    wc.mix[PX_OP_APPEND] = 0.6;
    wc.mix[PX_OP_GET] = 0.4;
    wc.n_clients = 8;
    wc.rate_ops_per_s = 250;
    wc.n_keys = PROP_KEYS;
    wc.value_bytes = 8;
    wc.op_timeout_us = 500 * MS;
    p->w = sim_workload_new(p->s, &wc, &err);
    cr_assert_not_null(p->w, "sim_workload_new: %d", err);
    sim_workload_on_history(p->w, on_hist, p);
}

static void prun_free(prun *p)
{
    sim_workload_free(p->w);
    sim_free(p->s);
    for (size_t i = 0; i < p->n_ops; i++)
        free(p->ops[i].value);
    free(p->ops);
    free(p->ex);
    map_free(&p->pending);
    map_free(&p->tokens);
}

/* ---- the fault schedule ---- */

static void say(prun *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(prun *p, const char *fmt, ...)
{
    if (!p->verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    printf("%9" PRIu64 " -- ", sim_now_us(p->s));
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

static int pick(prun *p, int n)
{
    return (int)rift_rng_range(&p->rng, 0, (uint64_t)n - 1);
}

/* Down = crashed, or restarted and not yet caught up; pauses count too, so a
 * majority stays able to make progress most of the time. */
static int count_down(prun *p)
{
    int down = 0;
    for (int i = 0; i < p->n; i++) {
        if (p->restarted[i]) {
            sim_replica_status st;
            sim_status(p->s, i, &st);
            if (!st.px.needs_snapshot)
                p->restarted[i] = false;
        }
        down += p->crashed[i] || p->restarted[i] || p->paused[i];
    }
    return down;
}

static void add_rule(prun *p, const st_impair_rule *r, const char *what)
{
    if (p->n_rules >= ST_IMPAIR_MAX_RULES)
        return;
    int id = sim_impair_add(p->s, r);
    cr_assert_geq(id, 0, "impair add: %d", id);
    p->rules[p->n_rules++] = id;
    say(p, "%s %u->%u", what, r->src, r->dst);
}

static uint32_t pick_addr(prun *p)
{
    return pick(p, 4) == 0 ? ST_IMPAIR_ANY : (uint32_t)pick(p, p->n);
}

static void act_partition(prun *p)
{
    uint8_t g[PX_MAX_REPLICAS];
    int ones = 0;
    for (int i = 0; i < p->n; i++)
        ones += g[i] = (uint8_t)pick(p, 2);
    if (ones == 0 || ones == p->n)
        g[pick(p, p->n)] ^= 1;
    for (int a = 0; a < p->n; a++)
        for (int b = 0; b < p->n; b++)
            if (g[a] != g[b]) {
                st_impair_rule r = {.src = (uint32_t)a, .dst = (uint32_t)b, .cut = true};
                add_rule(p, &r, "partition cut");
            }
}

static void act_cut(prun *p)
{
    int a = pick(p, p->n), b = (a + 1 + pick(p, p->n - 1)) % p->n;
    st_impair_rule r = {.src = (uint32_t)a, .dst = (uint32_t)b, .cut = true};
    add_rule(p, &r, "cut");
    if (pick(p, 2)) {
        r.src = (uint32_t)b;
        r.dst = (uint32_t)a;
        add_rule(p, &r, "cut");
    }
}

static void act_impair(prun *p)
{
    st_impair_rule r = {.src = pick_addr(p), .dst = pick_addr(p)};
    switch (pick(p, 4)) {
    case 0:
        r.loss = 0.05 + 0.45 * rift_rng_double(&p->rng);
        r.loss_correlation = 0.5 * rift_rng_double(&p->rng);
        break;
    case 1:
        r.delay_us = rift_rng_range(&p->rng, 1 * MS, 40 * MS);
        r.jitter_us = rift_rng_range(&p->rng, 0, r.delay_us);
        r.distribution = (uint8_t)pick(p, 3);
        break;
    case 2: r.duplicate = 0.05 + 0.5 * rift_rng_double(&p->rng); break;
    default:
        r.reorder = 0.05 + 0.5 * rift_rng_double(&p->rng);
        r.reorder_us = rift_rng_range(&p->rng, 100, 5 * MS);
        break;
    }
    add_rule(p, &r, "impair");
}

static void act_clear_one(prun *p)
{
    if (!p->n_rules)
        return;
    int k = pick(p, p->n_rules);
    sim_impair_remove(p->s, p->rules[k]);
    p->rules[k] = p->rules[--p->n_rules];
    say(p, "clear rule");
}

static void act_crash(prun *p, int limit)
{
    int i = pick(p, p->n);
    if (p->crashed[i] || count_down(p) >= limit)
        return;
    bool power = p->dur == PX_DURABILITY_FSYNC ? pick(p, 2) : (p->dur == PX_DURABILITY_OFF);
    cr_assert_eq(sim_crash(p->s, i, power), 0);
    p->crashed[i] = true;
    p->paused[i] = false;
    p->restarted[i] = false;
    say(p, "crash r%d%s", i, power ? " (power loss)" : "");
}

static void act_restart(prun *p)
{
    int i = pick(p, p->n);
    if (!p->crashed[i])
        return;
    cr_assert_eq(sim_restart(p->s, i), 0);
    p->crashed[i] = false;
    p->restarted[i] = true;
    say(p, "restart r%d", i);
}

/* A reboot: kill the running process and start it again from its WAL. */
static void act_reboot(prun *p, int limit)
{
    int i = pick(p, p->n);
    if (p->crashed[i] || p->paused[i] || count_down(p) >= limit)
        return;
    cr_assert_eq(sim_restart(p->s, i), 0);
    p->restarted[i] = true;
    say(p, "reboot r%d", i);
}

static void act_pause(prun *p, int limit)
{
    int i = pick(p, p->n);
    if (p->crashed[i])
        return;
    if (p->paused[i]) {
        cr_assert_eq(sim_resume(p->s, i), 0);
        p->paused[i] = false;
        say(p, "resume r%d", i);
        return;
    }
    if (count_down(p) >= limit)
        return;
    cr_assert_eq(sim_pause(p->s, i), 0);
    p->paused[i] = true;
    say(p, "pause r%d", i);
}

static bool run_to(prun *p, uint64_t t);

/* Every replica at once: power loss half the time under fsync (a process crash
 * under write, as write keeps nothing through a power loss), all back after
 * 20..300 ms. */
static void act_crash_all(prun *p)
{
    bool trimmed = true;
    for (int i = 0; i < p->n; i++) {
        sim_replica_status st;
        sim_status(p->s, i, &st);
        if (!st.down && (st.px.log_base == 0 || st.px.checkpoint_index == 0))
            trimmed = false;
        if (p->paused[i]) {
            cr_assert_eq(sim_resume(p->s, i), 0);
            p->paused[i] = false;
        }
        if (p->crashed[i])
            continue;
        bool power = p->dur == PX_DURABILITY_FSYNC ? pick(p, 2) : (p->dur == PX_DURABILITY_OFF);
        cr_assert_eq(sim_crash(p->s, i, power), 0);
        p->crashed[i] = true;
    }
    crash_all_runs++;
    crash_all_after_trims += trimmed;
    p->crashed_all = true;
    say(p, "crash all%s", trimmed ? " (after trims)" : "");
    if (!run_to(p, sim_now_us(p->s) + rift_rng_range(&p->rng, 20 * MS, 300 * MS)))
        return;
    for (int i = 0; i < p->n; i++) {
        cr_assert_eq(sim_restart(p->s, i), 0);
        p->crashed[i] = false;
        p->restarted[i] = true;
    }
    say(p, "restart all");
}

static void heal_all(prun *p)
{
    sim_impair_clear(p->s);
    p->n_rules = 0;
    for (int i = 0; i < p->n; i++) {
        if (p->crashed[i]) {
            cr_assert_eq(sim_restart(p->s, i), 0);
            p->crashed[i] = false;
        }
        if (p->paused[i]) {
            cr_assert_eq(sim_resume(p->s, i), 0);
            p->paused[i] = false;
        }
    }
    say(p, "heal all");
}

static void safe_action(prun *p)
{
    int minority = (p->n - 1) / 2;
    switch (pick(p, 13)) {
    case 0: act_partition(p); break;
    case 1: case 2: act_cut(p); break;
    case 3: case 4: act_impair(p); break;
    case 5: case 6: act_clear_one(p); break;
    case 7: act_crash(p, minority); break;
    case 8: case 9: act_restart(p); break;
    case 10: act_pause(p, minority); break;
    case 11: act_reboot(p, minority); break;
    default:
        if (pick(p, 3) == 0) {
            sim_impair_clear(p->s);
            p->n_rules = 0;
            say(p, "clear all rules");
        }
        break;
    }
}

/* Amnesia: crash and restart anyone, often, while links flap. */
static void amnesia_action(prun *p)
{
    switch (pick(p, 6)) {
    case 0: act_partition(p); break;
    case 1: act_cut(p); break;
    case 2: act_clear_one(p); break;
    case 3: act_crash(p, p->n); break;
    default: act_restart(p); break;
    }
}

/* A message storm ends the seed with a failure naming the busiest types. */
static void storm(prun *p)
{
    sim_counters c;
    sim_counters_get(p->s, &c);
    int top[2] = {0, 0};
    for (int t = 1; t <= PX_MSG_TYPE_MAX; t++) {
        if (c.sent_by_type[t] > c.sent_by_type[top[0]]) {
            top[1] = top[0];
            top[0] = t;
        } else if (c.sent_by_type[t] > c.sent_by_type[top[1]]) {
            top[1] = t;
        }
    }
    prun_fail(p, "message storm: over %u messages by %" PRIu64 " us (%s %" PRIu64 ", %s %" PRIu64
              ", duplicated %" PRIu64 ")", PROP_MSG_BUDGET, sim_now_us(p->s), px_msg_type_name(top[0]),
              c.sent_by_type[top[0]], px_msg_type_name(top[1]), c.sent_by_type[top[1]], c.msgs_duplicated);
    p->aborted = true;
    for (int i = 0; p->verbose && i < p->n; i++) {
        sim_replica_status st;
        sim_status(p->s, i, &st);
        printf("  r%d %s%s role %s ballot %" PRIu64 ".%u last_executed %" PRIu64 " log_base %" PRIu64
               " needs_snapshot %d\n", i, st.down ? "down " : "", st.paused ? "paused " : "",
               px_role_name(st.px.role), PX_BALLOT_ROUND(st.px.ballot), PX_BALLOT_ID(st.px.ballot),
               st.px.last_executed, st.px.log_base, st.px.needs_snapshot);
    }
}

static bool run_to(prun *p, uint64_t t)
{
    if (p->aborted)
        return false;
    int rc = sim_run_until(p->s, t);
    if (rc == -EOVERFLOW) {
        storm(p);
        return false;
    }
    cr_assert_eq(rc, 0, "seed %" PRIu64 ": sim error %d", p->seed, rc);
    return true;
}

static void run_faults(prun *p, uint64_t from_us, uint64_t until_us)
{
    run_to(p, from_us);
    while (!p->aborted && sim_now_us(p->s) < until_us) {
        bool crash_all = p->mode == PROP_CRASH_ALL || p->mode == PROP_CRASH_ALL_OFF;
        if (p->mode == PROP_AMNESIA)
            amnesia_action(p);
        else if (crash_all && sim_now_us(p->s) >= p->crash_all_at_us && (!p->crashed_all || pick(p, 12) == 0))
            act_crash_all(p);
        else
            safe_action(p);
        uint64_t gap = p->mode == PROP_AMNESIA ? rift_rng_range(&p->rng, 20 * MS, 150 * MS)
                                               : rift_rng_range(&p->rng, 20 * MS, 250 * MS);
        run_to(p, sim_now_us(p->s) + gap);
    }
}

/* ---- checks ---- */

/* (d): sample log length and WAL size while everyone is up and settled. */
static void run_settled(prun *p, uint64_t until_us)
{
    while (sim_now_us(p->s) < until_us) {
        if (!run_to(p, sim_now_us(p->s) + 50 * MS))
            return;
        if (sim_now_us(p->s) < p->heal_us + PROP_SETTLE_US)
            continue;
        for (int i = 0; i < p->n; i++) {
            sim_replica_status st;
            sim_status(p->s, i, &st);
            uint64_t held = st.px.log_entries;
            if (held > p->log_max_settled)
                p->log_max_settled = held;
            if (held > PROP_LOG_BOUND)
                prun_fail(p, "compaction: r%d holds %" PRIu64 " entries %" PRIu64 " us after heal", i,
                          held, sim_now_us(p->s) - p->heal_us);
            if (sim_storage_records(p->s, i) > 2 * PROP_LOG_BOUND + 16)
                prun_fail(p, "compaction: r%d WAL holds %zu records after heal", i,
                          sim_storage_records(p->s, i));
        }
    }
}

/* Split an append-only value into its tokens; each starts with 'c'. */
static int parse_tokens(prun *p, const char *v, size_t len, uint32_t key, int *count)
{
    size_t i = 0;
    int n = 0;
    while (i < len) {
        if (v[i] != 'c')
            return -EBADMSG;
        size_t j = i + 1;
        while (j < len && v[j] != 'c')
            j++;
        unsigned long long cid, seq;
        uint32_t op;
        if (sscanf(v + i, "c%llu-%llu", &cid, &seq) != 2 || !map_get(&p->tokens, (cid << 32) | seq, &op))
            return -ENOENT;
        pop *o = &p->ops[op];
        if (o->key != key || o->len != j - i || memcmp(o->value, v + i, o->len) != 0)
            return -EBADMSG;
        if (o->type == SIM_HIST_FAIL)
            prun_fail(p, "append c%llu-%llu failed but is in k%u", cid, seq, key);
        if (o->pos >= 0)
            prun_fail(p, "at most once: c%llu-%llu appears twice in k%u", cid, seq, key);
        o->pos = n++;
        i = j;
    }
    *count = n;
    return 0;
}

static void check_append_order(prun *p, uint32_t key)
{
    for (size_t a = 0; a < p->n_ops; a++) {
        pop *A = &p->ops[a];
        if (A->key != key || A->f != PX_OP_APPEND || A->type != SIM_HIST_OK)
            continue;
        if (A->pos < 0) {
            prun_fail(p, "lost write: acknowledged append c%" PRIu64 "-%" PRIu64 " missing from k%u",
                      A->cid, A->seq, key);
            continue;
        }
        for (size_t b = 0; b < p->n_ops; b++) {
            pop *B = &p->ops[b];
            if (B->key == key && B->f == PX_OP_APPEND && B->pos >= 0 && A->done_us < B->inv_us &&
                A->pos > B->pos)
                prun_fail(p, "order: k%u has c%" PRIu64 "-%" PRIu64 " before c%" PRIu64 "-%" PRIu64
                          " though it began after the other was acknowledged",
                          key, B->cid, B->seq, A->cid, A->seq);
        }
    }
}

/* A read saw a prefix of the final value containing every append acknowledged
 * before the read began and none that began after the read ended. */
static void check_read(prun *p, const pop *g, const char *final, size_t final_len)
{
    size_t len = g->value ? g->len : 0;
    if (len > final_len || memcmp(final, g->value ? g->value : "", len) != 0 ||
        (len < final_len && final[len] != 'c')) {
        prun_fail(p, "read: a get of k%u returned %.40s..., not a prefix of the final value", g->key,
                  g->value ? g->value : "null");
        return;
    }
    int seen = 0;
    for (size_t i = 0; i < len; i++)
        seen += g->value[i] == 'c';
    for (size_t b = 0; b < p->n_ops; b++) {
        const pop *B = &p->ops[b];
        if (B->key != g->key || B->f != PX_OP_APPEND || B->pos < 0)
            continue;
        if (B->type == SIM_HIST_OK && B->done_us < g->inv_us && B->pos >= seen)
            prun_fail(p, "stale read: get of k%u at %" PRIu64 " misses c%" PRIu64 "-%" PRIu64
                      " acknowledged at %" PRIu64, g->key, g->inv_us, B->cid, B->seq, B->done_us);
        if (B->pos < seen && B->inv_us > g->done_us)
            prun_fail(p, "read from the future: get of k%u saw c%" PRIu64 "-%" PRIu64, g->key, B->cid,
                      B->seq);
    }
}

static void check_history(prun *p, int leader)
{
    const px_kv *kv = sim_replica_kv(p->s, leader);
    cr_assert_not_null(kv);
    for (uint32_t k = 0; k < PROP_KEYS; k++) {
        char key[16];
        snprintf(key, sizeof(key), "k%u", k);
        px_bytes v = {0};
        bool present = px_kv_lookup(kv, (const uint8_t *)key, strlen(key), &v);
        const char *final = present ? (const char *)v.data : "";
        size_t final_len = present ? v.len : 0;
        int count = 0;
        int rc = parse_tokens(p, final, final_len, k, &count);
        if (rc < 0) {
            prun_fail(p, "final value of %s does not parse into known tokens (%d)", key, rc);
            continue;
        }
        check_append_order(p, k);
        for (size_t i = 0; i < p->n_ops; i++)
            if (p->ops[i].key == k && p->ops[i].f == PX_OP_GET && p->ops[i].type == SIM_HIST_OK)
                check_read(p, &p->ops[i], final, final_len);
    }
}

static void check_end(prun *p)
{
    int l = sim_leader(p->s);
    if (l < 0) {
        prun_fail(p, "liveness: no leader at the end");
        return;
    }
    if (!p->first_ok_after_heal_us || p->first_ok_after_heal_us > p->heal_us + PROP_RECOVER_US)
        prun_fail(p, "liveness: first commit %" PRIu64 " us after heal (bound %llu)",
                  p->first_ok_after_heal_us ? p->first_ok_after_heal_us - p->heal_us : 0,
                  PROP_RECOVER_US);
    sim_replica_status ls;
    sim_status(p->s, l, &ls);
    for (int i = 0; i < p->n; i++) {
        sim_replica_status st;
        sim_status(p->s, i, &st);
        if (st.px.last_executed != ls.px.last_executed || st.px.digest != ls.px.digest)
            prun_fail(p, "catch-up: r%d at %" PRIu64 " (needs_snapshot %d), leader r%d at %" PRIu64, i,
                      st.px.last_executed, st.px.needs_snapshot, l, ls.px.last_executed);
    }
    if (p->trims_after_heal == 0)
        prun_fail(p, "compaction: no trim after heal");
    sim_counters c;
    sim_counters_get(p->s, &c);
    if (c.bad_frames)
        prun_fail(p, "codec: %" PRIu64 " frames failed to decode", c.bad_frames);
    check_history(p, l);
}

/* Test-only: alter the recorded history before the final checks. */
typedef void (*prop_tamper_fn)(prun *p);

/* One seed, start to finish. Returns true when every property held. */
static bool run_seed(uint64_t seed, prop_mode mode, bool verbose, prop_tamper_fn tamper, char *why,
                     size_t why_len, uint64_t *bad_index)
{
    prun p;
    prun_init(&p, seed, mode, verbose);
    say(&p, "seed %" PRIu64 ": %u replicas, durability %s, fd %s", seed, p.n, px_durability_name(p.dur),
        px_fd_policy_name(p.fd));
    cr_assert_eq(sim_workload_start(p.w), 0);
    uint64_t fault_end = 500 * MS + rift_rng_range(&p.rng, 2000 * MS, 3500 * MS);
    run_faults(&p, 500 * MS, fault_end);
    if (!p.aborted) {
        heal_all(&p);
        p.heal_us = sim_now_us(p.s);
    }
    if (mode != PROP_AMNESIA && !p.aborted) {
        run_settled(&p, p.heal_us + PROP_STOP_US);
        sim_workload_stop(p.w);
        if (run_to(&p, sim_now_us(p.s) + PROP_QUIET_US)) {
            if (tamper)
                tamper(&p);
            check_end(&p);
        }
    } else if (!p.aborted) {
        run_to(&p, p.heal_us + 1 * SEC);
    }
    bool ok = mode != PROP_AMNESIA ? p.fail[0] == 0 : !p.agreement_broken;
    if (why)
        snprintf(why, why_len, "%s", p.fail);
    if (bad_index)
        *bad_index = p.bad_index;
    if (verbose) {
        sim_workload_counters wc;
        sim_workload_counters_get(p.w, &wc);
        sim_counters sc;
        sim_counters_get(p.s, &sc);
        printf("seed %" PRIu64 ": ops %" PRIu64 " ok %" PRIu64 " info %" PRIu64 ", msgs %" PRIu64
               ", max settled log %" PRIu64 ", %s\n", seed, wc.invoked, wc.ok, wc.info, sc.msgs_sent,
               p.log_max_settled, p.fail[0] ? p.fail : "all properties hold");
    }
    prun_free(&p);
    return ok;
}

/* ---- seeds ---- */

static uint64_t env_u64(const char *name, uint64_t dflt)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return dflt;
    char *end;
    unsigned long long x = strtoull(v, &end, 10);
    return *end ? dflt : x;
}

static void run_range(uint64_t from, uint64_t to)
{
    uint64_t one = env_u64("RIFT_SEED", 0);
    if (one) {
        if (from == 1) { /* the first half runs the one seed asked for */
            char why[PROP_MSG_MAX];
            bool ok = run_seed(one, PROP_SAFE, true, NULL, why, sizeof(why), NULL);
            cr_assert(ok, "seed %" PRIu64 ": %s", one, why);
        }
        return;
    }
    uint64_t failed = 0, first = 0;
    char first_why[PROP_MSG_MAX] = "";
    for (uint64_t seed = from; seed < to; seed++) {
        char why[PROP_MSG_MAX];
        if (run_seed(seed, PROP_SAFE, false, NULL, why, sizeof(why), NULL))
            continue;
        fprintf(stderr, "property failure: seed %" PRIu64 ": %s (rerun: RIFT_SEED=%" PRIu64 ")\n", seed,
                why, seed);
        if (!failed++) {
            first = seed;
            snprintf(first_why, sizeof(first_why), "%s", why);
        }
    }
    cr_assert_eq(failed, 0, "%" PRIu64 " of %" PRIu64 " seeds failed; first: seed %" PRIu64 ": %s", failed,
                 to - from, first, first_why);
}

static uint64_t n_seeds(void)
{
    const char *net = getenv("RIFT_SIM_NET");
    if (net && *net)
        cr_assert_eq(sim_net_model_parse(net, &prop_net_model), 0, "RIFT_SIM_NET: packet or message");
    return env_u64("RIFT_SEEDS", RIFT_PROPERTY_SEEDS);
}

/* The message model (one datagram per message, no transport) must keep every
 * property too: it is the fast path for sweeps. */
Test(sim_property, message_model_seeds)
{
    prop_net_model = SIM_NET_MESSAGE;
    run_range(1, 1 + env_u64("RIFT_MESSAGE_SEEDS", PROP_MESSAGE_SEEDS));
}

/* Two halves so criterion's --jobs 2 runs them side by side. */
Test(sim_property, random_faults_first_half, .timeout = 800)
{
    run_range(1, 1 + n_seeds() / 2);
}

Test(sim_property, random_faults_second_half, .timeout = 800)
{
    run_range(1 + n_seeds() / 2, 1 + n_seeds());
}

/* The history checks must bite too: a forged acknowledgement of an append that
 * never happened is a lost write, a forged empty read after everything was
 * acknowledged is a stale read. */
static pop *forge(prun *p, uint8_t f)
{
    sim_hist h = {.process = 1u << 30, .type = SIM_HIST_INVOKE, .f = f, .key = "k0",
                  .value = f == PX_OP_APPEND ? "c99999-1" : NULL, .value_len = f == PX_OP_APPEND ? 8 : 0,
                  .time_us = sim_now_us(p->s), .client_id = 99999, .seq = 1};
    on_hist(p, &h);
    h.type = SIM_HIST_OK;
    h.value = NULL;
    h.value_len = 0;
    on_hist(p, &h);
    return &p->ops[p->n_ops - 1];
}

static void forge_lost_write(prun *p)
{
    forge(p, PX_OP_APPEND);
}

static void forge_stale_read(prun *p)
{
    forge(p, PX_OP_GET);
}

Test(sim_property, history_checks_bite)
{
    char why[PROP_MSG_MAX];
    cr_assert(run_seed(2, PROP_SAFE, false, NULL, why, sizeof(why), NULL), "seed 2: %s", why);
    cr_assert_not(run_seed(2, PROP_SAFE, false, forge_lost_write, why, sizeof(why), NULL));
    cr_assert(strstr(why, "lost write"), "%s", why);
    cr_assert_not(run_seed(2, PROP_SAFE, false, forge_stale_read, why, sizeof(why), NULL));
    cr_assert(strstr(why, "stale read"), "%s", why);
}

/* (g) Without durability a restart is amnesia: an acceptor forgets what it
 * promised and accepted, and two different values get chosen for one index.
 * The agreement checker must see it on some seed. */
Test(sim_property, amnesia_breaks_agreement_and_is_caught, .timeout = 600)
{
    uint64_t max = env_u64("RIFT_AMNESIA_SEEDS", PROP_AMNESIA_SEEDS);
    for (uint64_t seed = 1; seed <= max; seed++) {
        uint64_t index = 0;
        char why[PROP_MSG_MAX];
        if (!run_seed(seed, PROP_AMNESIA, false, NULL, why, sizeof(why), &index)) {
            fprintf(stderr, "amnesia: seed %" PRIu64 " violates agreement at index %" PRIu64 ": %s\n", seed,
                    index, why);
            return;
        }
    }
    cr_assert_fail("no agreement violation in %" PRIu64 " amnesia seeds: the checker does not bite", max);
}

/* A whole-cluster crash (every replica, power loss half the time, after
 * compaction trimmed logs and WALs) on top of the random faults: each replica
 * comes back from its checkpoint plus WAL, and every property holds —
 * agreement, linearizable appends and reads, liveness, catch-up, compaction. */
Test(sim_property, whole_cluster_crash_recovers)
{
    uint64_t seeds = env_u64("RIFT_CRASH_ALL_SEEDS", PROP_CRASH_ALL_SEEDS);
    uint64_t failed = 0, first = 0;
    char first_why[PROP_MSG_MAX] = "";
    for (uint64_t seed = 1; seed <= seeds; seed++) {
        char why[PROP_MSG_MAX];
        if (run_seed(seed, PROP_CRASH_ALL, false, NULL, why, sizeof(why), NULL))
            continue;
        fprintf(stderr, "crash-all: seed %" PRIu64 ": %s\n", seed, why);
        if (!failed++) {
            first = seed;
            snprintf(first_why, sizeof(first_why), "%s", why);
        }
    }
    cr_assert_eq(failed, 0, "%" PRIu64 " of %" PRIu64 " seeds failed; first: seed %" PRIu64 ": %s", failed, seeds,
                 first, first_why);
    /* Not vacuous: most crashes came after trims and checkpoints everywhere
     * (not all can: a cut or a crashed replica stalls gle, and so the trims). */
    cr_assert_geq(crash_all_runs, seeds);
    cr_assert_geq(crash_all_after_trims * 4, crash_all_runs * 3, "%" PRIu64 " of %" PRIu64
                  " whole-cluster crashes came after every replica trimmed and checkpointed",
                  crash_all_after_trims, crash_all_runs);
}

/* The same with durability off: the cluster restarts empty, and the checks
 * must say so (lost writes, stale reads or diverging logs). */
Test(sim_property, whole_cluster_crash_without_durability_is_caught)
{
    uint64_t seeds = env_u64("RIFT_CRASH_ALL_SEEDS", PROP_CRASH_ALL_SEEDS) / 10 + 1;
    uint64_t caught = 0;
    for (uint64_t seed = 1; seed <= seeds; seed++) {
        char why[PROP_MSG_MAX];
        if (!run_seed(seed, PROP_CRASH_ALL_OFF, false, NULL, why, sizeof(why), NULL))
            caught++;
        else
            fprintf(stderr, "crash-all without durability: seed %" PRIu64 " passed every check\n", seed);
    }
    cr_assert_eq(caught, seeds, "amnesia caught on %" PRIu64 " of %" PRIu64 " seeds", caught, seeds);
}
