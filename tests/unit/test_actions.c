/* test_actions.c — every timeline action, judged by what it does to a run.
 *
 * Most tests run a tiny scenario through the simulator backend
 * (ch_backend_sim_run, exactly what `rift run --backend sim` does) and look
 * only at what the ch_record saw: per-replica samples (state, last_executed,
 * gle, heartbeat_us), px events, fault intervals and the client history. The
 * frame-level actions (loss, duplicate, reorder) leave no trace there — the
 * transport hides them — so those run the same timeline (ch_timeline) over a
 * simulator this file holds, and read the impairment stage's counters.
 *
 * Names: the leader of a run is found by a probe run of the same seed with no
 * timeline (the simulator is deterministic per seed), and each test asserts
 * that the probe was right before relying on it. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chaos/ch_backend.h"
#include "chaos/ch_lin.h"
#include "chaos/ch_record.h"
#include "chaos/ch_scenario.h"
#include "chaos/ch_timeline.h"
#include "chaos/sim.h"
#include "chaos/sim_client.h"

#define MS 1000ll
#define SEED 11
#define FAULT_MS 1000 /* faults start here: a leader is long elected */

/* ---------- harness A: the simulator backend, judged from the record ---------- */

typedef struct run {
    ch_scenario sc;
    ch_record *rec;
    ch_metrics m;
    json_t *j; /* ch_record_to_json: samples, events, faults, metrics */
    size_t *match;
} run;

/* A 3-replica scenario: 4 clients on c1 at 400 ops/s over 10 keys. */
static int scenario_text(char *buf, size_t cap, int seed, int duration_ms, const char *paxos, const char *timeline)
{
    return snprintf(buf, cap,
                    "{\"name\": \"act\", \"seed\": %d, \"duration_ms\": %d,"
                    " \"cluster\": {\"replicas\": 3, \"paxos\": {%s}},"
                    " \"workload\": {\"clients\": 4, \"keys\": 10, \"rate\": 400, \"op_timeout_ms\": 300},"
                    " \"timeline\": [%s]}",
                    seed, duration_ms, paxos, timeline);
}

static int run_text(run *r, const char *text, ch_error *err)
{
    memset(r, 0, sizeof(*r));
    int e = ch_scenario_parse("act.json", text, strlen(text), NULL, 0, &r->sc, err);
    if (e < 0)
        return e;
    r->rec = ch_record_new(r->sc.replicas);
    cr_assert_not_null(r->rec);
    ch_run_ctx ctx = {.scenario = &r->sc, .seed = r->sc.seed, .record = r->rec, .run_dir = "/tmp"};
    e = ch_backend_sim_run(&ctx, err);
    if (e < 0)
        return e;
    cr_assert_eq(ch_record_metrics(r->rec, &r->m), 0);
    r->j = json_object();
    cr_assert_eq(ch_record_to_json(r->rec, &r->m, r->j), 0);
    const ch_history *h = ch_record_history(r->rec);
    r->match = malloc((h->n + 1) * sizeof(size_t));
    cr_assert_not_null(r->match);
    cr_assert_eq(ch_history_pair(h, NULL, r->match, err), 0, "%s", err->msg);
    return 0;
}

/* Run the timeline (a printf format) on the default cluster; must succeed. */
static void run_tl(run *r, int duration_ms, const char *paxos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void run_tl(run *r, int duration_ms, const char *paxos, const char *fmt, ...)
{
    char tl[2048], text[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tl, sizeof(tl), fmt, ap);
    va_end(ap);
    scenario_text(text, sizeof(text), SEED, duration_ms, paxos ? paxos : "", tl);
    ch_error err = {{0}};
    int e = run_text(r, text, &err);
    cr_assert_eq(e, 0, "run failed (%d): %s\n%s", e, err.msg, text);
}

static void run_free(run *r)
{
    json_decref(r->j);
    ch_record_free(r->rec);
    ch_scenario_free(&r->sc);
    free(r->match);
}

static json_t *col(const run *r, const char *node, const char *name)
{
    json_t *c = json_object_get(json_object_get(json_object_get(r->j, "samples"), node), name);
    cr_assert(json_is_array(c), "no samples %s.%s", node, name);
    return c;
}

/* The sample index at or just before t_us. */
static size_t sample_at(const run *r, const char *node, long long t_us)
{
    json_t *t = col(r, node, "t_us");
    size_t best = 0;
    for (size_t i = 0; i < json_array_size(t); i++)
        if (json_integer_value(json_array_get(t, i)) <= t_us)
            best = i;
    return best;
}

static long long sval(const run *r, const char *node, const char *name, long long t_us)
{
    return json_integer_value(json_array_get(col(r, node, name), sample_at(r, node, t_us)));
}

static const char *sstate(const run *r, const char *node, long long t_us)
{
    return json_string_value(json_array_get(col(r, node, "state"), sample_at(r, node, t_us)));
}

/* Every sample of node in [t0, t1] has the given state. */
static bool all_state(const run *r, const char *node, long long t0, long long t1, const char *state)
{
    json_t *t = col(r, node, "t_us"), *s = col(r, node, "state");
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(t); i++) {
        long long ti = json_integer_value(json_array_get(t, i));
        if (ti < t0 || ti > t1)
            continue;
        n++;
        if (strcmp(json_string_value(json_array_get(s, i)), state) != 0)
            return false;
    }
    return n > 0;
}

/* Completions of type (CH_OK, CH_FAIL, CH_INFO) with time in [t0, t1). */
static size_t completions(const run *r, ch_type type, long long t0, long long t1)
{
    const ch_history *h = ch_record_history(r->rec);
    size_t n = 0;
    for (size_t i = 0; i < h->n; i++)
        n += h->ops[i].type == type && h->ops[i].time_us >= t0 && h->ops[i].time_us < t1;
    return n;
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

/* Latencies (µs, sorted) of ops invoked in [t0, t1) that completed ok. */
static size_t latencies(const run *r, long long t0, long long t1, long long *out, size_t cap)
{
    const ch_history *h = ch_record_history(r->rec);
    size_t n = 0;
    for (size_t i = 0; i < h->n && n < cap; i++) {
        const ch_op *op = &h->ops[i];
        if (op->type != CH_INVOKE || op->time_us < t0 || op->time_us >= t1 || r->match[i] == CH_NONE)
            continue;
        const ch_op *c = &h->ops[r->match[i]];
        if (c->type == CH_OK)
            out[n++] = c->time_us - op->time_us;
    }
    qsort(out, n, sizeof(*out), cmp_ll);
    return n;
}

static long long pct(const long long *v, size_t n, double p)
{
    cr_assert_gt(n, 0);
    return v[(size_t)(p * (double)(n - 1))];
}

/* The faults of a kind, in start order. */
static size_t faults(const run *r, const char *kind, json_t **out, size_t cap)
{
    json_t *all = json_object_get(r->j, "faults"), *f;
    size_t i, n = 0;
    json_array_foreach(all, i, f)
        if (!strcmp(json_string_value(json_object_get(f, "kind")), kind) && n < cap)
            out[n++] = f;
    return n;
}

static long long fint(const json_t *f, const char *k) { return json_integer_value(json_object_get(f, k)); }

/* Does the fault's link list hold src -> dst? */
static bool has_link(const json_t *f, const char *src, const char *dst)
{
    json_t *l;
    size_t i;
    json_array_foreach(json_object_get(f, "links"), i, l)
        if (!strcmp(json_string_value(json_array_get(l, 0)), src) &&
            !strcmp(json_string_value(json_array_get(l, 1)), dst))
            return true;
    return false;
}

/* px events of node (kind, or any kind when NULL) in [t0, t1). */
static size_t events(const run *r, const char *node, const char *kind, long long t0, long long t1)
{
    json_t *ev;
    size_t i, n = 0;
    json_array_foreach(json_object_get(r->j, "events"), i, ev) {
        long long t = fint(ev, "t_us");
        n += t >= t0 && t < t1 && !strcmp(json_string_value(json_object_get(ev, "node")), node) &&
             (!kind || !strcmp(json_string_value(json_object_get(ev, "kind")), kind));
    }
    return n;
}

static char *rname(int i)
{
    static char names[8][8];
    snprintf(names[i & 7], sizeof(names[0]), "r%d", i + 1);
    return names[i & 7];
}

/* The leader at FAULT_MS, from a run of the same seed without a timeline. */
static int probe_leader(void)
{
    run p;
    run_tl(&p, FAULT_MS, NULL, "%s", "");
    int leader = -1;
    for (int i = 0; i < 3; i++)
        if (!strcmp(sstate(&p, rname(i), (FAULT_MS - 100) * MS), "leader"))
            leader = i;
    run_free(&p);
    cr_assert_geq(leader, 0, "no leader by %d ms", FAULT_MS);
    return leader;
}

static void assert_leader(const run *r, int leader)
{
    cr_assert_str_eq(sstate(r, rname(leader), (FAULT_MS - 100) * MS), "leader", "the probe named the wrong leader");
}

/* last_executed of node does not move in [t0, t1]. */
static void assert_frozen(const run *r, const char *node, long long t0, long long t1)
{
    long long a = sval(r, node, "last_executed", t0), b = sval(r, node, "last_executed", t1);
    cr_assert_eq(a, b, "%s executed %lld -> %lld in [%lld, %lld] ms", node, a, b, t0 / MS, t1 / MS);
}

static void assert_advances(const run *r, const char *node, long long t0, long long t1)
{
    long long a = sval(r, node, "last_executed", t0), b = sval(r, node, "last_executed", t1);
    cr_assert_gt(b, a + 50, "%s executed only %lld -> %lld in [%lld, %lld] ms", node, a, b, t0 / MS, t1 / MS);
}

/* ---------- partition, cut ---------- */

Test(actions, partition_isolates_a_group_until_heal)
{
    run r;
    run_tl(&r, 3500, NULL,
           "{\"at_ms\": 1000, \"do\": \"partition\", \"groups\": [[\"r1\"], [\"r2\", \"r3\", \"c1\"]]},"
           "{\"at_ms\": 2500, \"do\": \"heal-all\"}");
    json_t *f[4];
    cr_assert_eq(faults(&r, "partition", f, 4), 1);
    cr_assert_eq(json_array_size(json_object_get(f[0], "links")), 6, "r1 <-> r2, r3, c1: 6 directed links");
    cr_assert(has_link(f[0], "r1", "c1") && has_link(f[0], "r3", "r1"));
    cr_assert_eq(fint(f[0], "start_us"), 1000 * MS);
    cr_assert_eq(fint(f[0], "end_us"), 2500 * MS);
    assert_frozen(&r, "r1", 1100 * MS, 2500 * MS);
    assert_advances(&r, "r2", 1100 * MS, 2500 * MS);
    cr_assert_gt(completions(&r, CH_OK, 2000 * MS, 2500 * MS), 50, "the majority side serves");
    /* Healed, r1 catches up. */
    cr_assert_geq(sval(&r, "r1", "last_executed", 3400 * MS), sval(&r, "r2", "last_executed", 2500 * MS));
    run_free(&r);
}

Test(actions, partition_leaves_unlisted_nodes_connected)
{
    run r;
    run_tl(&r, 2500, NULL, "{\"at_ms\": 1000, \"do\": \"partition\", \"groups\": [[\"r1\"], [\"r2\"]]}");
    json_t *f[4];
    cr_assert_eq(faults(&r, "partition", f, 4), 1);
    cr_assert_eq(json_array_size(json_object_get(f[0], "links")), 2, "only r1 <-> r2 is cut");
    cr_assert(has_link(f[0], "r1", "r2") && has_link(f[0], "r2", "r1"));
    /* r3 talks to both, so the cluster never stops serving. */
    cr_assert_lt(r.m.max_unavailable_us, 1000 * MS);
    run_free(&r);
}

Test(actions, cut_between_isolates_a_follower_both_ways)
{
    int l = probe_leader(), f = (l + 1) % 3, g = (l + 2) % 3;
    run r;
    run_tl(&r, 3000, NULL, "{\"at_ms\": 1000, \"do\": \"cut\", \"between\": [\"%s\", \"%s\"]}", rname(l), rname(f));
    assert_leader(&r, l);
    json_t *fl[2];
    cr_assert_eq(faults(&r, "cut", fl, 2), 1);
    cr_assert_eq(json_array_size(json_object_get(fl[0], "links")), 2);
    cr_assert(has_link(fl[0], rname(l), rname(f)) && has_link(fl[0], rname(f), rname(l)));
    /* Nothing from the leader reaches f; g and the leader go on; the leader stays. */
    assert_frozen(&r, rname(f), 1200 * MS, 3000 * MS);
    assert_advances(&r, rname(g), 1200 * MS, 3000 * MS);
    cr_assert(all_state(&r, rname(l), 1000 * MS, 3000 * MS, "leader"));
    /* gle needs every replica's report: it stops on the leader too. */
    cr_assert_leq(sval(&r, rname(l), "gle", 3000 * MS), sval(&r, rname(f), "last_executed", 3000 * MS));
    run_free(&r);
}

Test(actions, cut_from_to_is_one_way)
{
    int l = probe_leader(), f = (l + 1) % 3;
    run r;
    run_tl(&r, 3000, NULL, "{\"at_ms\": 1000, \"do\": \"cut\", \"from\": \"%s\", \"to\": \"%s\"}", rname(l), rname(f));
    assert_leader(&r, l);
    json_t *fl[2];
    cr_assert_eq(faults(&r, "cut", fl, 2), 1);
    cr_assert_eq(json_array_size(json_object_get(fl[0], "links")), 1);
    cr_assert(has_link(fl[0], rname(l), rname(f)));
    assert_frozen(&r, rname(f), 1200 * MS, 3000 * MS);
    run_free(&r);
}

/* ---------- delay ---------- */

/* p50 of op latency before (500..1000 ms) and during (1200..2500 ms) a delay on
 * c1 (both directions: the request and the reply are each delayed). */
static void delay_run(run *r, const char *dist, int ms, int jitter_ms, long long *lat, size_t *n, long long *base)
{
    run_tl(r, 2600, NULL,
           "{\"at_ms\": 1000, \"do\": \"delay\", \"node\": \"c1\", \"ms\": %d, \"jitter_ms\": %d,"
           " \"distribution\": \"%s\"}",
           ms, jitter_ms, dist);
    long long before[4096];
    size_t nb = latencies(r, 500 * MS, 1000 * MS, before, 4096);
    *base = pct(before, nb, 0.5);
    *n = latencies(r, 1200 * MS, 2400 * MS, lat, 4096);
    cr_assert_gt(*n, 30, "only %zu ops completed", *n); /* 4 clients, one op each in flight */
}

Test(actions, delay_uniform_adds_the_delay_each_way)
{
    run r;
    long long lat[4096], base;
    size_t n;
    delay_run(&r, "uniform", 20, 5, lat, &n, &base);
    long long p50 = pct(lat, n, 0.5);
    cr_assert(p50 - base >= 35 * MS && p50 - base <= 48 * MS, "p50 %lld -> %lld µs", base, p50);
    cr_assert_geq(lat[0], 30 * MS, "uniform: never below 2 x (delay - jitter)");
    cr_assert_lt(pct(lat, n, 0.99) - p50, 15 * MS, "uniform: a bounded spread");
    run_free(&r);
}

Test(actions, delay_normal_centres_on_the_delay)
{
    run r;
    long long lat[4096], base;
    size_t n;
    delay_run(&r, "normal", 20, 2, lat, &n, &base);
    long long p50 = pct(lat, n, 0.5);
    cr_assert(p50 - base >= 35 * MS && p50 - base <= 48 * MS, "p50 %lld -> %lld µs", base, p50);
    run_free(&r);
}

Test(actions, delay_pareto_has_a_heavy_tail)
{
    run r;
    long long lat[4096], base;
    size_t n;
    delay_run(&r, "pareto", 20, 20, lat, &n, &base);
    cr_assert_geq(lat[0], 40 * MS, "pareto: never below the scale, each way");
    cr_assert_gt(pct(lat, n, 0.99) - pct(lat, n, 0.5), 30 * MS, "pareto: a long tail");
    run_free(&r);
}

/* ---------- clear, heal-all ---------- */

Test(actions, clear_a_link_ends_only_its_faults)
{
    int l = probe_leader(), f = (l + 1) % 3;
    run r;
    run_tl(&r, 3000, NULL,
           "{\"at_ms\": 1000, \"do\": \"cut\", \"between\": [\"%s\", \"%s\"]},"
           "{\"at_ms\": 1000, \"do\": \"delay\", \"node\": \"c1\", \"ms\": 5},"
           "{\"at_ms\": 1800, \"do\": \"clear\", \"between\": [\"%s\", \"%s\"]}",
           rname(l), rname(f), rname(f), rname(l));
    json_t *cut[2], *delay[2];
    cr_assert_eq(faults(&r, "cut", cut, 2), 1);
    cr_assert_eq(faults(&r, "delay", delay, 2), 1);
    cr_assert_eq(fint(cut[0], "end_us"), 1800 * MS);
    cr_assert_eq(fint(delay[0], "end_us"), 3000 * MS, "the delay on c1 stays until the run ends");
    assert_frozen(&r, rname(f), 1200 * MS, 1800 * MS);
    assert_advances(&r, rname(f), 1800 * MS, 3000 * MS);
    run_free(&r);
}

Test(actions, clear_a_node_ends_every_rule_on_its_links)
{
    int l = probe_leader(), f = (l + 1) % 3, g = (l + 2) % 3;
    run r;
    run_tl(&r, 3000, NULL,
           "{\"at_ms\": 1000, \"do\": \"cut\", \"between\": [\"%s\", \"%s\"]},"
           "{\"at_ms\": 1000, \"do\": \"loss\", \"from\": \"%s\", \"to\": \"%s\", \"probability\": 0.1},"
           "{\"at_ms\": 1000, \"do\": \"delay\", \"between\": [\"%s\", \"c1\"], \"ms\": 5},"
           "{\"at_ms\": 1800, \"do\": \"clear\", \"node\": \"%s\"}",
           rname(l), rname(f), rname(f), rname(g), rname(g), rname(f));
    json_t *x[2];
    cr_assert_eq(faults(&r, "cut", x, 2), 1);
    cr_assert_eq(fint(x[0], "end_us"), 1800 * MS);
    cr_assert_eq(faults(&r, "loss", x, 2), 1);
    cr_assert_eq(fint(x[0], "end_us"), 1800 * MS);
    cr_assert_eq(faults(&r, "delay", x, 2), 1);
    cr_assert_eq(fint(x[0], "end_us"), 3000 * MS, "g <-> c1 does not touch f");
    assert_advances(&r, rname(f), 1800 * MS, 3000 * MS);
    run_free(&r);
}

Test(actions, heal_all_ends_every_link_fault)
{
    int l = probe_leader(), f = (l + 1) % 3;
    run r;
    run_tl(&r, 3000, NULL,
           "{\"at_ms\": 1000, \"do\": \"cut\", \"between\": [\"%s\", \"%s\"]},"
           "{\"at_ms\": 1000, \"do\": \"delay\", \"node\": \"c1\", \"ms\": 30},"
           "{\"at_ms\": 1000, \"do\": \"duplicate\", \"node\": \"*\", \"probability\": 0.1},"
           "{\"at_ms\": 2000, \"do\": \"heal-all\"}",
           rname(l), rname(f));
    json_t *all = json_object_get(r.j, "faults"), *x;
    size_t i;
    cr_assert_eq(json_array_size(all), 3);
    json_array_foreach(all, i, x)
        cr_assert_eq(fint(x, "end_us"), 2000 * MS, "%s", json_string_value(json_object_get(x, "kind")));
    long long lat[4096];
    size_t n = latencies(&r, 2200 * MS, 3000 * MS, lat, 4096);
    cr_assert_lt(pct(lat, n, 0.5), 20 * MS, "the delay is gone");
    assert_advances(&r, rname(f), 2000 * MS, 3000 * MS);
    cr_assert_eq(r.m.n_recoveries, 1);
    cr_assert_str_eq(r.m.recoveries[0].what, "heal-all");
    run_free(&r);
}

/* ---------- process faults ---------- */

Test(actions, crash_stops_a_replica_until_restart)
{
    int l = probe_leader(), f = (l + 1) % 3;
    run r;
    run_tl(&r, 3000, NULL,
           "{\"at_ms\": 1000, \"do\": \"crash\", \"node\": \"%s\"},"
           "{\"at_ms\": 2000, \"do\": \"restart\", \"node\": \"%s\"}",
           rname(f), rname(f));
    cr_assert(all_state(&r, rname(f), 1000 * MS, 1999 * MS, "down"));
    cr_assert_eq(events(&r, rname(f), NULL, 1000 * MS, 2000 * MS), 0, "a crashed replica emits nothing");
    cr_assert_str_neq(sstate(&r, rname(f), 2900 * MS), "down");
    cr_assert_gt(sval(&r, rname(f), "last_executed", 2900 * MS), sval(&r, rname(f), "last_executed", 999 * MS));
    json_t *x[2];
    cr_assert_eq(faults(&r, "crash", x, 2), 1);
    cr_assert_eq(fint(x[0], "start_us"), 1000 * MS);
    cr_assert_eq(fint(x[0], "end_us"), 2000 * MS);
    cr_assert_str_eq(json_string_value(json_object_get(x[0], "node")), rname(f));
    cr_assert_eq(r.m.n_recoveries, 1);
    cr_assert_str_eq(r.m.recoveries[0].what, "restart");
    cr_assert_geq(r.m.recoveries[0].recovered_us, 0);
    run_free(&r);
}

Test(actions, crash_of_the_leader_target_elects_another)
{
    int l = probe_leader();
    run r;
    run_tl(&r, 2500, NULL, "{\"at_ms\": 1000, \"do\": \"crash\", \"node\": \"leader\"}");
    assert_leader(&r, l);
    json_t *x[2];
    cr_assert_eq(faults(&r, "crash", x, 2), 1);
    cr_assert_str_eq(json_string_value(json_object_get(x[0], "node")), rname(l), "\"leader\" resolved when it fired");
    cr_assert(all_state(&r, rname(l), 1000 * MS, 2500 * MS, "down"));
    int newl = -1;
    for (int i = 0; i < 3; i++)
        if (!strcmp(sstate(&r, rname(i), 2400 * MS), "leader"))
            newl = i;
    cr_assert(newl >= 0 && newl != l, "a new leader by 2.4 s");
    cr_assert_gt(completions(&r, CH_OK, 2000 * MS, 2500 * MS), 50);
    run_free(&r);
}

Test(actions, restart_of_a_running_replica_reboots_it)
{
    int l = probe_leader(), f = (l + 1) % 3;
    run r;
    run_tl(&r, 3000, NULL, "{\"at_ms\": 1500, \"do\": \"restart\", \"node\": \"%s\"}", rname(f));
    json_t *x[2];
    cr_assert_eq(faults(&r, "crash", x, 2), 0, "a reboot is no down interval");
    /* The new process starts from its WAL: nothing executed until it catches up
     * (its KV below the trim point comes back by state transfer). */
    long long before = sval(&r, rname(f), "last_executed", 1499 * MS);
    cr_assert_gt(before, 100);
    bool dipped = false;
    json_t *t = col(&r, rname(f), "t_us"), *le = col(&r, rname(f), "last_executed");
    for (size_t i = 0; i < json_array_size(t); i++)
        if (json_integer_value(json_array_get(t, i)) >= 1500 * MS && json_integer_value(json_array_get(le, i)) < before)
            dipped = true;
    cr_assert(dipped || events(&r, rname(f), "snap_install", 1500 * MS, 3000 * MS) > 0,
              "the rebooted replica starts over");
    cr_assert_gt(sval(&r, rname(f), "last_executed", 2900 * MS), before);
    cr_assert_eq(r.m.n_recoveries, 1);
    run_free(&r);
}

Test(actions, restart_star_brings_back_only_the_crashed)
{
    run r;
    run_tl(&r, 3000, NULL,
           "{\"at_ms\": 1000, \"do\": \"crash\", \"node\": \"r1\"},"
           "{\"at_ms\": 1000, \"do\": \"crash\", \"node\": \"r2\"},"
           "{\"at_ms\": 2000, \"do\": \"restart\", \"node\": \"*\"}");
    json_t *x[4];
    cr_assert_eq(faults(&r, "crash", x, 4), 2);
    cr_assert(all_state(&r, "r1", 1000 * MS, 1999 * MS, "down") && all_state(&r, "r2", 1000 * MS, 1999 * MS, "down"));
    cr_assert_eq(completions(&r, CH_OK, 1100 * MS, 2000 * MS), 0, "no majority, no progress");
    cr_assert_str_neq(sstate(&r, "r1", 2900 * MS), "down");
    cr_assert_gt(completions(&r, CH_OK, 2500 * MS, 3000 * MS), 50, "a majority again: the cluster serves");
    run_free(&r);
}

Test(actions, pause_freezes_a_replica_and_resume_thaws_it)
{
    int l = probe_leader(), f = (l + 1) % 3;
    run r;
    run_tl(&r, 3000, NULL,
           "{\"at_ms\": 1000, \"do\": \"pause\", \"node\": \"%s\"},"
           "{\"at_ms\": 2000, \"do\": \"resume\", \"node\": \"%s\"}",
           rname(f), rname(f));
    cr_assert(all_state(&r, rname(f), 1000 * MS, 1999 * MS, "paused"));
    assert_frozen(&r, rname(f), 1000 * MS, 1999 * MS);
    cr_assert_eq(events(&r, rname(f), NULL, 1001 * MS, 2000 * MS), 0, "a paused replica does nothing");
    assert_advances(&r, rname(f), 2000 * MS, 3000 * MS);
    json_t *x[2];
    cr_assert_eq(faults(&r, "pause", x, 2), 1);
    cr_assert_eq(fint(x[0], "end_us"), 2000 * MS);
    cr_assert_str_eq(r.m.recoveries[0].what, "resume");
    run_free(&r);
}

Test(actions, pause_star_stops_the_whole_cluster)
{
    run r;
    run_tl(&r, 3000, NULL,
           "{\"at_ms\": 1000, \"do\": \"pause\", \"node\": \"*\"},"
           "{\"at_ms\": 2000, \"do\": \"resume\", \"node\": \"*\"}");
    for (int i = 0; i < 3; i++)
        cr_assert(all_state(&r, rname(i), 1000 * MS, 1999 * MS, "paused"));
    cr_assert_eq(completions(&r, CH_OK, 1001 * MS, 2000 * MS), 0);
    cr_assert_gt(completions(&r, CH_OK, 2500 * MS, 3000 * MS), 50);
    run_free(&r);
}

Test(actions, gc_pause_pauses_for_the_length_at_the_interval)
{
    int l = probe_leader(), f = (l + 1) % 3;
    run r;
    run_tl(&r, 3000, NULL,
           "{\"at_ms\": 1000, \"do\": \"gc-pause\", \"node\": \"%s\", \"every_ms\": 300, \"pause_ms\": 50,"
           " \"for_ms\": 1500}",
           rname(f));
    json_t *x[16];
    size_t n = faults(&r, "gc-pause", x, 16);
    cr_assert_eq(n, 5, "pauses at 1000, 1300, ..., 2200 ms (for_ms 1500)");
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(fint(x[i], "start_us"), (1000 + 300 * (long long)i) * MS);
        cr_assert_eq(fint(x[i], "end_us") - fint(x[i], "start_us"), 50 * MS);
    }
    /* The samples see it: a sample inside a pause says "paused". */
    cr_assert_str_eq(sstate(&r, rname(f), 1320 * MS), "paused");
    cr_assert_str_neq(sstate(&r, rname(f), 1400 * MS), "paused");
    run_free(&r);
}

Test(actions, gc_pause_lengths_follow_their_distribution)
{
    int l = probe_leader(), f = (l + 1) % 3;
    run r;
    run_tl(&r, 4000, NULL,
           "{\"at_ms\": 1000, \"do\": \"gc-pause\", \"node\": \"%s\", \"every_ms\": 100,"
           " \"pause_ms\": {\"min\": 10, \"max\": 40}}",
           rname(f));
    json_t *x[64];
    size_t n = faults(&r, "gc-pause", x, 64);
    cr_assert_geq(n, 29);
    long long lo = 1 << 30, hi = 0;
    for (size_t i = 0; i < n; i++) {
        long long len = fint(x[i], "end_us") - fint(x[i], "start_us");
        if (fint(x[i], "end_us") == 4000 * MS)
            continue; /* cut short by the end of the run */
        cr_assert(len >= 10 * MS && len <= 40 * MS, "pause of %lld µs", len);
        lo = len < lo ? len : lo;
        hi = len > hi ? len : hi;
    }
    cr_assert_gt(hi - lo, 10 * MS, "lengths vary over the range");
    run_free(&r);
}

Test(actions, set_changes_a_live_replicas_parameter)
{
    run r;
    run_tl(&r, 2000, "\"fd\": \"naive\"",
           "{\"at_ms\": 1000, \"do\": \"set\", \"node\": \"r2\", \"param\": \"heartbeat_ms\", \"value\": 20}");
    cr_assert_eq(sval(&r, "r2", "heartbeat_us", 900 * MS), 50 * MS);
    cr_assert_eq(sval(&r, "r2", "heartbeat_us", 1100 * MS), 20 * MS);
    cr_assert_eq(sval(&r, "r1", "heartbeat_us", 1100 * MS), 50 * MS, "only r2 is set");
    cr_assert_eq(sval(&r, "r3", "heartbeat_us", 1900 * MS), 50 * MS);
    run_free(&r);
}

Test(actions, link_down_isolates_a_node_until_link_up)
{
    int l = probe_leader(), f = (l + 1) % 3;
    run r;
    run_tl(&r, 3500, NULL,
           "{\"at_ms\": 1000, \"do\": \"link-down\", \"node\": \"%s\"},"
           "{\"at_ms\": 1500, \"do\": \"heal-all\"},"
           "{\"at_ms\": 2500, \"do\": \"link-up\", \"node\": \"%s\"}",
           rname(f), rname(f));
    json_t *x[2];
    cr_assert_eq(faults(&r, "link-down", x, 2), 1);
    cr_assert_eq(json_array_size(json_object_get(x[0], "links")), 6, "every link of the node, both ways");
    cr_assert_eq(fint(x[0], "end_us"), 2500 * MS, "heal-all heals the network, not the interface");
    assert_frozen(&r, rname(f), 1200 * MS, 2500 * MS);
    assert_advances(&r, rname(f), 2500 * MS, 3500 * MS);
    run_free(&r);
}

Test(actions, client_node_cut_from_the_leader_gets_no_answers)
{
    int l = probe_leader();
    run r;
    run_tl(&r, 3000, NULL,
           "{\"at_ms\": 1000, \"do\": \"cut\", \"between\": [\"c1\", \"%s\"]}, {\"at_ms\": 2000, \"do\": \"heal-all\"}",
           rname(l));
    assert_leader(&r, l);
    cr_assert(all_state(&r, rname(l), 1000 * MS, 2000 * MS, "leader"), "the replicas never noticed");
    /* Followers only redirect to the leader the clients cannot reach: no op
     * completes, and those in flight end as info (unknown), never as ok. */
    cr_assert_eq(completions(&r, CH_OK, 1100 * MS, 2000 * MS), 0);
    cr_assert_gt(completions(&r, CH_INFO, 1000 * MS, 2000 * MS), 0);
    cr_assert_gt(completions(&r, CH_OK, 2300 * MS, 3000 * MS), 50);
    run_free(&r);
}

Test(actions, replica_only_actions_refuse_client_nodes)
{
    char text[2048];
    scenario_text(text, sizeof(text), SEED, 2000, "", "{\"at_ms\": 1000, \"do\": \"crash\", \"node\": \"c1\"}");
    run r;
    ch_error err = {{0}};
    int e = run_text(&r, text, &err);
    cr_assert_eq(e, -EINVAL);
    cr_assert(strstr(err.msg, "timeline[0].node"), "%s", err.msg);
    run_free(&r);
}

Test(actions, repeat_fires_every_interval_until_the_end)
{
    int l = probe_leader(), f = (l + 1) % 3;
    run r;
    run_tl(&r, 3000, NULL,
           "{\"at_ms\": 1000, \"do\": \"cut\", \"between\": [\"%s\", \"%s\"],"
           " \"repeat\": {\"every_ms\": 500, \"until_ms\": 2500}},"
           "{\"at_ms\": 1200, \"do\": \"heal-all\", \"repeat\": {\"every_ms\": 500}}",
           rname(l), rname(f));
    json_t *x[8];
    cr_assert_eq(faults(&r, "cut", x, 8), 4, "cuts at 1000, 1500, 2000, 2500 ms");
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(fint(x[i], "start_us"), (1000 + 500 * i) * MS);
        cr_assert_eq(fint(x[i], "end_us"), (1200 + 500 * i) * MS);
    }
    assert_frozen(&r, rname(f), 1050 * MS, 1200 * MS);
    run_free(&r);
}

/* ---------- harness B: the timeline over a simulator we keep, for frame counters ---------- */

#define CLIENT_KEY 0x10000u /* impairment key of client node c1, as the sim backend keys it */

typedef struct bench {
    ch_scenario sc;
    ch_record *rec;
    ch_run_ctx ctx;
    ch_error err;
    sim *s;
    sim_workload *w;
    ch_timeline *tl;
    sim_timer *timer;
} bench;

static uint32_t b_key(bench *b, int node) { return node < b->sc.replicas ? (uint32_t)node : CLIENT_KEY; }
static int b_leader(void *c) { return sim_leader(((bench *)c)->s); }
static int b_add(void *c, int src, int dst, const st_impair_rule *proto)
{
    bench *b = c;
    st_impair_rule rule = *proto;
    rule.src = b_key(b, src);
    rule.dst = b_key(b, dst);
    return sim_impair_add(b->s, &rule);
}
static int b_remove(void *c, int id) { return sim_impair_remove(((bench *)c)->s, id); }
static void b_clear(void *c, int src, int dst)
{
    bench *b = c;
    st_impair_remove_link(sim_impair(b->s), b_key(b, src), b_key(b, dst));
}
static bool b_alive(void *c, int id) { return st_impair_get(sim_impair(((bench *)c)->s), id, NULL, NULL); }
static int b_crash(void *c, int i) { return sim_crash(((bench *)c)->s, i, false) == 0 ? 0 : -EALREADY; }
static int b_restart(void *c, int i) { return sim_restart(((bench *)c)->s, i) == 0 ? 0 : -EALREADY; }
static int b_pause(void *c, int i, bool p)
{
    bench *b = c;
    return (p ? sim_pause(b->s, i) : sim_resume(b->s, i)) == 0 ? 0 : -EALREADY;
}
static int b_set(void *c, int i, const char *k, const char *v) { return sim_set_param(((bench *)c)->s, i, k, v); }

static void b_fire(void *c, uint64_t now)
{
    bench *b = c;
    cr_assert_eq(ch_timeline_fire(b->tl, now), 0, "%s", b->err.msg);
    uint64_t next = ch_timeline_next_us(b->tl);
    if (next != UINT64_MAX)
        sim_timer_set(b->timer, next);
}

static void b_hist(void *c, const sim_hist *h)
{
    bench *b = c;
    static const ch_f fmap[] = {[PX_OP_GET] = CH_GET, [PX_OP_PUT] = CH_PUT, [PX_OP_DEL] = CH_DEL,
                                [PX_OP_APPEND] = CH_APPEND, [PX_OP_CAS] = CH_CAS};
    ch_op op = {.process = (uint32_t)h->process, .type = (ch_type)h->type, .f = fmap[h->f],
                .key = (char *)h->key, .time_us = (int64_t)h->time_us};
    char *v = h->value ? strndup(h->value, h->value_len) : NULL;
    char *x = h->expected ? strndup(h->expected, h->expected_len) : NULL;
    cr_assert((v || !h->value) && (x || !h->expected));
    op.value = v;
    op.has_cas_expected = op.f == CH_CAS;
    op.cas_expected = x;
    cr_assert_eq(ch_record_op(b->rec, &op), 0);
    free(v);
    free(x);
}

static void b_event(void *c, const px_event *e) { ch_record_px_event(((bench *)c)->rec, e); }

/* Run the timeline over [0, duration] and keep the simulator for inspection. */
static void bench_run(bench *b, int duration_ms, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void bench_run(bench *b, int duration_ms, const char *fmt, ...)
{
    char tl[2048], text[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tl, sizeof(tl), fmt, ap);
    va_end(ap);
    scenario_text(text, sizeof(text), SEED, duration_ms, "", tl);
    memset(b, 0, sizeof(*b));
    cr_assert_eq(ch_scenario_parse("act.json", text, strlen(text), NULL, 0, &b->sc, &b->err), 0, "%s", b->err.msg);
    b->rec = ch_record_new(b->sc.replicas);
    b->ctx = (ch_run_ctx){.scenario = &b->sc, .seed = SEED, .record = b->rec, .run_dir = "/tmp"};
    sim_config c;
    sim_config_default(&c);
    c.n_replicas = b->sc.replicas;
    c.seed = SEED;
    c.paxos = b->sc.paxos;
    int e = 0;
    b->s = sim_new(&c, &e);
    cr_assert_not_null(b->s);
    sim_workload_config wc;
    sim_workload_config_default(&wc);
    wc.n_clients = 4;
    wc.rate_ops_per_s = 400;
    for (uint32_t k = 0; k < wc.n_clients; k++)
        cr_assert_eq(sim_link_key(b->s, PX_CLIENT_BASE + k, CLIENT_KEY), 0);
    b->w = sim_workload_new(b->s, &wc, &e);
    cr_assert_not_null(b->w);
    sim_on_event(b->s, b_event, b);
    sim_workload_on_history(b->w, b_hist, b);
    ch_timeline_ops ops = {.ctx = b, .leader = b_leader, .impair_add = b_add, .impair_remove = b_remove,
                           .impair_clear_link = b_clear, .impair_alive = b_alive, .crash = b_crash,
                           .restart = b_restart, .pause = b_pause, .set_param = b_set};
    b->tl = ch_timeline_new(&b->ctx, &ops, &e, &b->err);
    cr_assert_not_null(b->tl, "%s", b->err.msg);
    b->timer = sim_timer_new(b->s, b_fire, b);
    sim_timer_set(b->timer, ch_timeline_next_us(b->tl));
    cr_assert_eq(sim_workload_start(b->w), 0);
    cr_assert_eq(sim_run_until(b->s, (uint64_t)duration_ms * MS), 0);
    sim_workload_stop(b->w);
    cr_assert_eq(sim_run_for(b->s, 500 * MS), 0);
    ch_record_end(b->rec, sim_now_us(b->s));
}

static void bench_free(bench *b)
{
    sim_timer_free(b->timer);
    ch_timeline_free(b->tl);
    sim_workload_free(b->w);
    sim_free(b->s);
    ch_record_free(b->rec);
    ch_scenario_free(&b->sc);
}

/* The installed rules' counters summed, and how many rules there are. */
static int rules(bench *b, st_impair_rule *one, st_impair_counters *sum)
{
    int ids[64], n = st_impair_list(sim_impair(b->s), ids, 64);
    memset(sum, 0, sizeof(*sum));
    for (int i = 0; i < n; i++) {
        st_impair_counters c;
        cr_assert(st_impair_get(sim_impair(b->s), ids[i], one, &c));
        sum->matched += c.matched;
        sum->dropped += c.dropped;
        sum->duplicated += c.duplicated;
        sum->reordered += c.reordered;
    }
    return n;
}

/* The history stays correct: faults below a majority never cost safety. */
static void assert_safe(bench *b)
{
    ch_lin_result lr;
    cr_assert_eq(ch_lin_check(ch_record_history(b->rec), 20, &lr), 0);
    cr_assert_eq(lr.verdict, CH_LIN_OK, "%s", lr.reason);
    ch_lin_result_free(&lr);
    ch_metrics m;
    cr_assert_eq(ch_record_metrics(b->rec, &m), 0);
    cr_assert(!m.disagreement.found);
}

Test(actions, loss_drops_its_share_on_that_link_only)
{
    int l = probe_leader(), f = (l + 1) % 3;
    bench b;
    bench_run(&b, 4000, "{\"at_ms\": 1000, \"do\": \"loss\", \"from\": \"%s\", \"to\": \"%s\", \"probability\": 0.3}",
              rname(l), rname(f));
    st_impair_rule rule;
    st_impair_counters c;
    cr_assert_eq(rules(&b, &rule, &c), 1);
    cr_assert_eq(rule.src, (uint32_t)l);
    cr_assert_eq(rule.dst, (uint32_t)f);
    cr_assert_gt(c.matched, 1000);
    double rate = (double)c.dropped / (double)c.matched;
    cr_assert(rate > 0.25 && rate < 0.35, "dropped %.3f of the frames", rate);
    sim_counters sc;
    sim_counters_get(b.s, &sc);
    cr_assert_eq(sc.pkts_dropped, c.dropped, "no frame dropped anywhere else");
    assert_safe(&b);
    bench_free(&b);
}

Test(actions, correlated_loss_keeps_its_rate)
{
    int l = probe_leader(), f = (l + 1) % 3;
    bench b;
    bench_run(&b, 4000,
              "{\"at_ms\": 1000, \"do\": \"loss\", \"between\": [\"%s\", \"%s\"], \"probability\": 0.2,"
              " \"correlation\": 0.8}",
              rname(l), rname(f));
    st_impair_rule rule;
    st_impair_counters c;
    cr_assert_eq(rules(&b, &rule, &c), 2, "both directions");
    cr_assert_float_eq(rule.loss_correlation, 0.8, 1e-9);
    double rate = (double)c.dropped / (double)c.matched;
    cr_assert(rate > 0.1 && rate < 0.3, "dropped %.3f of %llu frames", rate, (unsigned long long)c.matched);
    assert_safe(&b);
    bench_free(&b);
}

Test(actions, duplicate_copies_frames_and_costs_nothing)
{
    int l = probe_leader(), f = (l + 1) % 3;
    bench b;
    bench_run(&b, 3000, "{\"at_ms\": 1000, \"do\": \"duplicate\", \"node\": \"%s\", \"probability\": 0.5}", rname(f));
    st_impair_rule rule;
    st_impair_counters c;
    cr_assert_eq(rules(&b, &rule, &c), 6, "every link of the node, both ways");
    double rate = (double)c.duplicated / (double)c.matched;
    cr_assert(rate > 0.45 && rate < 0.55, "duplicated %.3f", rate);
    sim_counters sc;
    sim_counters_get(b.s, &sc);
    cr_assert_eq(sc.pkts_duplicated, c.duplicated);
    assert_safe(&b);
    bench_free(&b);
}

Test(actions, reorder_holds_frames_back_and_costs_nothing)
{
    bench b;
    bench_run(&b, 3000, "{\"at_ms\": 1000, \"do\": \"reorder\", \"node\": \"r2\", \"probability\": 0.3, \"ms\": 2}");
    st_impair_rule rule;
    st_impair_counters c;
    cr_assert_eq(rules(&b, &rule, &c), 6);
    cr_assert_eq(rule.reorder_us, 2 * MS);
    double rate = (double)c.reordered / (double)c.matched;
    cr_assert(rate > 0.25 && rate < 0.35, "reordered %.3f", rate);
    assert_safe(&b);
    bench_free(&b);
}
