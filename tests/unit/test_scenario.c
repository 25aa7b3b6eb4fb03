/* test_scenario.c — scenario files: the DESIGN.md example, defaults, every
 * action, repeat expansion, --set overrides, normalization round trips, and the
 * exact text of each class of error (file, JSON path, what was expected). */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chaos/ch_scenario.h"

#ifndef RIFT_SOURCE_DIR
#define RIFT_SOURCE_DIR "."
#endif

#define FIXTURES RIFT_SOURCE_DIR "/tests/data/scenarios/"

/* ------------------------------------------------------------------ helpers */

static ch_scenario sc;
static ch_error err;

static void teardown(void)
{
    ch_scenario_free(&sc);
}

TestSuite(scenario, .fini = teardown);

/* JSON in tests is written with single quotes for legibility: 'a' -> "a". */
static const char *dq(const char *s)
{
    static char ring[8][1024];
    static unsigned next;
    char *out = ring[next++ % 8];
    size_t i = 0;
    for (; s[i] && i + 1 < sizeof(ring[0]); i++)
        out[i] = s[i] == '\'' ? '"' : s[i];
    out[i] = 0;
    cr_assert_eq(s[i], 0, "test string too long");
    return out;
}

static const char *const *dq_sets(const char *const *sets, int n_sets)
{
    static const char *out[8];
    cr_assert_leq(n_sets, 8);
    for (int i = 0; i < n_sets; i++)
        out[i] = dq(sets[i]);
    return out;
}

static void load_ok(const char *fixture, const char *const *sets, int n_sets)
{
    int rc = ch_scenario_load(fixture, dq_sets(sets, n_sets), n_sets, &sc, &err);
    cr_assert_eq(rc, 0, "load %s: %d %s", fixture, rc, err.msg);
}

/* Load with sets and return the error message; the load must fail with -EINVAL
 * and leave the scenario zeroed. */
static const char *load_err(const char *fixture, const char *const *sets, int n_sets)
{
    int rc = ch_scenario_load(fixture, dq_sets(sets, n_sets), n_sets, &sc, &err);
    cr_assert_eq(rc, -EINVAL, "load %s: expected -EINVAL, got %d (%s)", fixture, rc, err.msg);
    cr_assert_null(sc.timeline);
    cr_assert_null(sc.text);
    cr_assert_eq(sc.name[0], 0);
    return err.msg;
}

/* One --set on minimal.json; the error message. */
static const char *set_err(const char *set)
{
    const char *sets[] = {set};
    return load_err(FIXTURES "minimal.json", sets, 1);
}

static const char *parse_err(const char *json)
{
    json = dq(json);
    int rc = ch_scenario_parse("inline.json", json, strlen(json), NULL, 0, &sc, &err);
    cr_assert_eq(rc, -EINVAL, "parse: expected -EINVAL, got %d for %s", rc, json);
    return err.msg;
}

static void parse_ok(const char *json)
{
    json = dq(json);
    int rc = ch_scenario_parse("inline.json", json, strlen(json), NULL, 0, &sc, &err);
    cr_assert_eq(rc, 0, "parse: %d %s", rc, err.msg);
}

#define assert_has(msg, needle) \
    cr_assert(strstr((msg), (needle)) != NULL, "message \"%s\" lacks \"%s\"", (msg), (needle))

/* An action on minimal.json (3 replicas, 1 client node, 1000 ms). */
static const char *action_err(const char *action_json)
{
    char set[1024];
    snprintf(set, sizeof(set), "timeline.0=%s", action_json);
    return set_err(set);
}

static bool node_is(ch_node n, ch_node_kind kind, unsigned index)
{
    return n.kind == kind && (kind >= CH_NODE_LEADER || n.index == index);
}

/* ------------------------------------------------------- the design example */

Test(scenario, design_example_parses_with_expected_values)
{
    load_ok(FIXTURES "design_example.json", NULL, 0);
    cr_assert_str_eq(sc.name, "chained");
    cr_assert_str_eq(sc.description, "r2 and r3 cannot talk; both reach r1");
    cr_assert(sc.has_seed);
    cr_assert_eq(sc.seed, 7);
    cr_assert_eq(sc.duration_ms, 20000);
    cr_assert_eq(sc.replicas, 3);
    cr_assert_eq(sc.paxos.n_replicas, 3);
    cr_assert_eq(sc.paxos.fd, PX_FD_QUORUM);
    cr_assert_eq(sc.paxos.heartbeat_us, 50000);
    cr_assert_eq(sc.paxos.election_timeout_min_us, 150000);
    cr_assert_eq(sc.paxos.election_timeout_max_us, 300000);
    cr_assert_eq(sc.durability, PX_DURABILITY_FSYNC);

    const ch_workload *w = &sc.workload;
    cr_assert_eq(w->clients, 4);
    cr_assert_eq(w->nodes, 1);
    cr_assert_float_eq(w->mix.get, 0.5, 1e-12);
    cr_assert_float_eq(w->mix.put, 0.3, 1e-12);
    cr_assert_float_eq(w->mix.del, 0.0, 1e-12);
    cr_assert_float_eq(w->mix.append, 0.1, 1e-12);
    cr_assert_float_eq(w->mix.cas, 0.1, 1e-12);
    cr_assert_eq(w->keys, 100);
    cr_assert_eq(w->distribution, CH_KEYS_UNIFORM);
    cr_assert_eq(w->value_bytes, 64);
    cr_assert_float_eq(w->rate_ops_per_s, 500, 1e-12);
    cr_assert_eq(w->op_timeout_ms, 1000);

    cr_assert_eq(sc.n_timeline, 3);
    const ch_action *a = sc.timeline;
    cr_assert_eq(a[0].kind, CH_ACT_CUT);
    cr_assert_eq(a[0].at_ms, 5000);
    cr_assert_eq(a[0].sel.kind, CH_SEL_BETWEEN);
    cr_assert(node_is(a[0].sel.a, CH_NODE_REPLICA, 1));
    cr_assert(node_is(a[0].sel.b, CH_NODE_REPLICA, 2));
    cr_assert_eq(a[1].kind, CH_ACT_LOSS);
    cr_assert_eq(a[1].at_ms, 8000);
    cr_assert_eq(a[1].sel.kind, CH_SEL_NODE);
    cr_assert(node_is(a[1].sel.a, CH_NODE_LEADER, 0));
    cr_assert_float_eq(a[1].probability, 0.2, 1e-12);
    cr_assert_float_eq(a[1].correlation, 0.0, 1e-12);
    cr_assert_eq(a[2].kind, CH_ACT_HEAL_ALL);
    cr_assert_eq(a[2].at_ms, 15000);
    cr_assert_eq(a[2].index, 2);
    cr_assert_eq(sc.n_expanded, 3);

    const ch_assertions *as = &sc.assertions;
    cr_assert(as->has_linearizable && as->linearizable);
    cr_assert(as->has_logs_agree && as->logs_agree);
    cr_assert(as->has_max_unavailability_ms && as->max_unavailability_ms == 2000);
    cr_assert(as->has_recover_within_ms && as->recover_within_ms == 2000);
    cr_assert(as->has_max_leader_changes && as->max_leader_changes == 3);
    cr_assert_not(as->has_min_throughput_ratio);
    cr_assert_not(as->has_max_log_entries);

    /* The original text is kept byte for byte. */
    FILE *f = fopen(FIXTURES "design_example.json", "rb");
    cr_assert_not_null(f);
    char buf[4096];
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    cr_assert_eq(sc.text_len, n);
    cr_assert_eq(memcmp(sc.text, buf, n), 0);
    cr_assert_eq(sc.text[n], 0);
    cr_assert_str_eq(sc.file, FIXTURES "design_example.json");
}

Test(scenario, defaults_fill_every_absent_field)
{
    load_ok(FIXTURES "minimal.json", NULL, 0);
    px_config def;
    px_config_default(&def);
    cr_assert_str_eq(sc.name, "minimal");
    cr_assert_str_eq(sc.description, "");
    cr_assert_not(sc.has_seed);
    cr_assert_eq(sc.duration_ms, 1000);
    cr_assert_eq(sc.replicas, 3);
    cr_assert_eq(memcmp(&sc.paxos, &def, sizeof(def)), 0, "paxos config differs from px_config_default");
    cr_assert_eq(sc.durability, PX_DURABILITY_FSYNC);
    cr_assert_eq(sc.workload.clients, 4);
    cr_assert_eq(sc.workload.nodes, 1);
    cr_assert_float_eq(sc.workload.mix.get, 0.5, 1e-12);
    cr_assert_float_eq(sc.workload.mix.put, 0.3, 1e-12);
    cr_assert_float_eq(sc.workload.mix.append, 0.1, 1e-12);
    cr_assert_float_eq(sc.workload.mix.cas, 0.1, 1e-12);
    cr_assert_float_eq(sc.workload.mix.del, 0.0, 1e-12);
    cr_assert_eq(sc.workload.keys, 100);
    cr_assert_eq(sc.workload.distribution, CH_KEYS_UNIFORM);
    cr_assert_float_eq(sc.workload.zipf_s, 0.99, 1e-12);
    cr_assert_eq(sc.workload.value_bytes, 64);
    cr_assert_float_eq(sc.workload.rate_ops_per_s, 0, 1e-12);
    cr_assert_eq(sc.workload.op_timeout_ms, 1000);
    cr_assert_eq(sc.n_timeline, 0);
    cr_assert_null(sc.timeline);
    cr_assert_eq(sc.n_expanded, 0);
    ch_assertions none = {0};
    cr_assert_eq(memcmp(&sc.assertions, &none, sizeof(none)), 0);
}

Test(scenario, a_given_mix_zeroes_the_weights_it_omits)
{
    const char *sets[] = {"workload.mix={'put': 2}"};
    load_ok(FIXTURES "minimal.json", sets, 1);
    cr_assert_float_eq(sc.workload.mix.put, 2, 1e-12);
    cr_assert_float_eq(sc.workload.mix.get + sc.workload.mix.del + sc.workload.mix.append + sc.workload.mix.cas, 0,
                       1e-12);
}

Test(scenario, every_field_is_read)
{
    load_ok(FIXTURES "full.json", NULL, 0);
    cr_assert_str_eq(sc.name, "full");
    cr_assert_eq(sc.seed, 42);
    cr_assert_eq(sc.replicas, 5);
    const px_config *p = &sc.paxos;
    cr_assert_eq(p->n_replicas, 5);
    cr_assert_eq(p->fd, PX_FD_MPMC);
    cr_assert_eq(sc.durability, PX_DURABILITY_WRITE);
    cr_assert_eq(p->heartbeat_us, 20000);
    cr_assert_eq(p->election_timeout_min_us, 200000);
    cr_assert_eq(p->election_timeout_max_us, 400500);
    cr_assert_eq(p->adapt_window_us, 1500000);
    cr_assert_eq(p->adapt_calm_us, 8000000);
    cr_assert_eq(p->adapt_max_factor, 4);
    cr_assert_eq(p->check_quorum_us, 500000);
    cr_assert_eq(p->batch_max_cmds, 32);
    cr_assert_eq(p->batch_max_bytes, 32768);
    cr_assert_eq(p->batch_delay_us, 500);
    cr_assert_eq(p->pipeline_max, 16);
    cr_assert_eq(p->retransmit_us, 30000);
    cr_assert_eq(p->learn_max_entries, 128);
    cr_assert_eq(p->client_queue_max, 5000);
    const ch_workload *w = &sc.workload;
    cr_assert_eq(w->clients, 16);
    cr_assert_eq(w->nodes, 2);
    cr_assert_float_eq(w->mix.del, 1, 1e-12);
    cr_assert_eq(w->keys, 1000);
    cr_assert_eq(w->distribution, CH_KEYS_ZIPF);
    cr_assert_float_eq(w->zipf_s, 1.2, 1e-12);
    cr_assert_eq(w->value_bytes, 128);
    cr_assert_float_eq(w->rate_ops_per_s, 2000, 1e-12);
    cr_assert_eq(w->op_timeout_ms, 500);
    const ch_assertions *as = &sc.assertions;
    cr_assert(as->has_logs_agree && !as->logs_agree);
    cr_assert(as->has_max_leader_changes && as->max_leader_changes == 0);
    cr_assert(as->has_min_throughput_ratio);
    cr_assert_float_eq(as->min_throughput_ratio, 0.25, 1e-12);
    cr_assert(as->has_max_log_entries && as->max_log_entries == 10000);
}

/* ------------------------------------------------------------------ actions */

Test(scenario, every_action_type_parses)
{
    load_ok(FIXTURES "all_actions.json", NULL, 0);
    cr_assert_eq(sc.n_timeline, 25);
    const ch_action *a = sc.timeline;
    bool seen[CH_ACT_COUNT] = {0};
    for (size_t i = 0; i < sc.n_timeline; i++) {
        seen[a[i].kind] = true;
        cr_assert_eq(a[i].index, i);
    }
    for (int k = 0; k < CH_ACT_COUNT; k++)
        cr_assert(seen[k], "no %s in all_actions.json", ch_action_kind_name(k));

    /* partition [[r1, r2], [r3, r4, r5, c2]] */
    const ch_partition *p = &a[0].partition;
    cr_assert_eq(a[0].kind, CH_ACT_PARTITION);
    cr_assert_eq(p->n_groups, 2);
    cr_assert_eq(p->n_nodes, 6);
    cr_assert(node_is(p->nodes[0], CH_NODE_REPLICA, 0) && p->group[0] == 0);
    cr_assert(node_is(p->nodes[1], CH_NODE_REPLICA, 1) && p->group[1] == 0);
    cr_assert(node_is(p->nodes[2], CH_NODE_REPLICA, 2) && p->group[2] == 1);
    cr_assert(node_is(p->nodes[5], CH_NODE_CLIENT, 1) && p->group[5] == 1);
    /* [[leader], [*]] */
    cr_assert(node_is(a[1].partition.nodes[0], CH_NODE_LEADER, 0));
    cr_assert(node_is(a[1].partition.nodes[1], CH_NODE_ALL, 0));
    /* cut from r1 to r2; cut node c1 */
    cr_assert_eq(a[2].sel.kind, CH_SEL_FROM_TO);
    cr_assert(node_is(a[2].sel.a, CH_NODE_REPLICA, 0) && node_is(a[2].sel.b, CH_NODE_REPLICA, 1));
    cr_assert_eq(a[3].sel.kind, CH_SEL_NODE);
    cr_assert(node_is(a[3].sel.a, CH_NODE_CLIENT, 0));
    /* loss between r1 and * */
    cr_assert_eq(a[4].kind, CH_ACT_LOSS);
    cr_assert(node_is(a[4].sel.b, CH_NODE_ALL, 0));
    cr_assert_float_eq(a[4].probability, 0.3, 1e-12);
    cr_assert_float_eq(a[4].correlation, 0.5, 1e-12);
    /* delay: ms and jitter in µs, distribution */
    cr_assert_eq(a[5].delay_us, 25000);
    cr_assert_eq(a[5].jitter_us, 5500);
    cr_assert_eq(a[5].distribution, ST_DELAY_PARETO);
    cr_assert_eq(a[6].delay_us, 250);
    cr_assert_eq(a[6].jitter_us, 0);
    cr_assert_eq(a[6].distribution, ST_DELAY_UNIFORM);
    cr_assert(node_is(a[6].sel.b, CH_NODE_LEADER, 0));
    /* duplicate, reorder (with and without ms), clear, heal-all */
    cr_assert_float_eq(a[7].probability, 0.01, 1e-12);
    cr_assert_eq(a[8].reorder_us, 2000);
    cr_assert_eq(a[9].reorder_us, 0);
    cr_assert_float_eq(a[9].probability, 1, 1e-12);
    cr_assert_eq(a[10].kind, CH_ACT_CLEAR);
    cr_assert_eq(a[10].sel.kind, CH_SEL_BETWEEN);
    cr_assert_eq(a[11].kind, CH_ACT_HEAL_ALL);
    /* process actions */
    cr_assert(a[12].kind == CH_ACT_CRASH && node_is(a[12].node, CH_NODE_REPLICA, 2));
    cr_assert(a[13].kind == CH_ACT_RESTART && node_is(a[13].node, CH_NODE_REPLICA, 2));
    cr_assert(a[14].kind == CH_ACT_PAUSE && node_is(a[14].node, CH_NODE_LEADER, 0));
    cr_assert(a[15].kind == CH_ACT_RESUME && node_is(a[15].node, CH_NODE_ALL, 0));
    /* gc-pause: constant, uniform, normal */
    cr_assert_eq(a[16].gc_every_ms, 1000);
    cr_assert_eq(a[16].gc_for_ms, 5000);
    cr_assert(a[16].gc_pause.kind == CH_DIST_CONST && a[16].gc_pause.a_us == 80000);
    cr_assert_eq(a[17].gc_for_ms, 0);
    const ch_dist *u = &a[17].gc_pause;
    cr_assert(u->kind == CH_DIST_UNIFORM && u->a_us == 10000 && u->b_us == 200000);
    cr_assert(a[18].gc_pause.kind == CH_DIST_NORMAL && a[18].gc_pause.a_us == 50000 && a[18].gc_pause.b_us == 15000);
    /* set: a number value becomes text; a string stays */
    cr_assert_str_eq(a[19].param, "heartbeat_ms");
    cr_assert_str_eq(a[19].value, "30");
    cr_assert_str_eq(a[20].param, "fd");
    cr_assert_str_eq(a[20].value, "naive");
    cr_assert(node_is(a[20].node, CH_NODE_ALL, 0));
    /* link-down / link-up take client nodes too */
    cr_assert(a[21].kind == CH_ACT_LINK_DOWN && node_is(a[21].node, CH_NODE_CLIENT, 1));
    cr_assert(a[22].kind == CH_ACT_LINK_UP);
    /* repeats */
    cr_assert_eq(a[23].repeat_every_ms, 2000);
    cr_assert_eq(a[23].repeat_until_ms, 29000);
    cr_assert_eq(a[24].repeat_until_ms, 30000, "until_ms defaults to duration_ms");
    cr_assert_eq(a[12].repeat_every_ms, 0);
    cr_assert_eq(a[12].repeat_until_ms, a[12].at_ms);
}

Test(scenario, impairment_rules_from_actions)
{
    load_ok(FIXTURES "all_actions.json", NULL, 0);
    st_impair_rule r;
    cr_assert_eq(ch_action_rule(&sc.timeline[0], &r), 0);
    cr_assert(r.cut && r.src == ST_IMPAIR_ANY && r.dst == ST_IMPAIR_ANY);
    cr_assert_eq(ch_action_rule(&sc.timeline[4], &r), 0);
    cr_assert(!r.cut && r.loss == 0.3 && r.loss_correlation == 0.5);
    cr_assert_eq(ch_action_rule(&sc.timeline[5], &r), 0);
    cr_assert(r.delay_us == 25000 && r.jitter_us == 5500 && r.distribution == ST_DELAY_PARETO);
    cr_assert_eq(ch_action_rule(&sc.timeline[7], &r), 0);
    cr_assert_eq(r.duplicate, 0.01);
    cr_assert_eq(ch_action_rule(&sc.timeline[8], &r), 0);
    cr_assert(r.reorder == 0.1 && r.reorder_us == 2000);
    cr_assert_eq(ch_action_rule(&sc.timeline[11], &r), -EINVAL, "heal-all is not a rule");
    cr_assert_eq(ch_action_rule(&sc.timeline[12], &r), -EINVAL, "crash is not a rule");
}

Test(scenario, node_names_format_back)
{
    char buf[8];
    cr_assert_str_eq(ch_node_format((ch_node){CH_NODE_REPLICA, 0}, buf, sizeof(buf)), "r1");
    cr_assert_str_eq(ch_node_format((ch_node){CH_NODE_CLIENT, 11}, buf, sizeof(buf)), "c12");
    cr_assert_str_eq(ch_node_format((ch_node){CH_NODE_LEADER, 0}, buf, sizeof(buf)), "leader");
    cr_assert_str_eq(ch_node_format((ch_node){CH_NODE_ALL, 0}, buf, sizeof(buf)), "*");
    cr_assert_str_eq(ch_action_kind_name(CH_ACT_GC_PAUSE), "gc-pause");
    cr_assert_str_eq(ch_action_kind_name(CH_ACT_COUNT), "unknown");
}

/* ---------------------------------------------------------- repeat expansion */

Test(scenario, repeats_expand_sorted_and_stable)
{
    load_ok(FIXTURES "all_actions.json", NULL, 0);
    ch_action *list;
    size_t n;
    cr_assert_eq(ch_scenario_expand(&sc, &list, &n), 0);
    /* 23 single actions + crash 23000..29000 step 2000 (4) + restart 24000..30000 (4) */
    cr_assert_eq(n, 31);
    cr_assert_eq(n, sc.n_expanded);
    for (size_t i = 1; i < n; i++) {
        cr_assert_leq(list[i - 1].at_ms, list[i].at_ms, "not sorted at %zu", i);
        if (list[i - 1].at_ms == list[i].at_ms)
            cr_assert_lt(list[i - 1].index, list[i].index, "equal times must keep timeline order");
        cr_assert_eq(list[i].repeat_every_ms, 0);
    }
    /* the three gc-pauses at 12000 keep file order 16, 17, 18 */
    size_t k = 0;
    while (list[k].at_ms != 12000)
        k++;
    cr_assert(list[k].index == 16 && list[k + 1].index == 17 && list[k + 2].index == 18);
    /* crash and restart repeats interleave: 23000 c0, 24000 r0, 25000 c1, ... */
    static const uint64_t times[] = {23000, 24000, 25000, 26000, 27000, 28000, 29000, 30000};
    size_t first = n - 8;
    for (size_t i = 0; i < 8; i++) {
        cr_assert_eq(list[first + i].at_ms, times[i]);
        cr_assert_eq(list[first + i].kind, i % 2 ? CH_ACT_RESTART : CH_ACT_CRASH);
        cr_assert_eq(list[first + i].occurrence, i / 2);
    }
    free(list);
}

Test(scenario, repeat_until_is_inclusive_and_ties_keep_file_order)
{
    parse_ok("{'name': 'r', 'duration_ms': 100, 'timeline': ["
             "{'at_ms': 50, 'do': 'heal-all'},"
             "{'at_ms': 0, 'do': 'crash', 'node': 'r1', 'repeat': {'every_ms': 25, 'until_ms': 50}},"
             "{'at_ms': 25, 'do': 'restart', 'node': 'r1', 'repeat': {'every_ms': 25}}]}");
    ch_action *list;
    size_t n;
    cr_assert_eq(ch_scenario_expand(&sc, &list, &n), 0);
    /* crash 0,25,50; restart 25,50,75,100; heal-all 50 */
    cr_assert_eq(n, 8);
    static const struct { uint64_t at; uint32_t index; } want[] = {
        {0, 1}, {25, 1}, {25, 2}, {50, 0}, {50, 1}, {50, 2}, {75, 2}, {100, 2},
    };
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(list[i].at_ms, want[i].at, "entry %zu", i);
        cr_assert_eq(list[i].index, want[i].index, "entry %zu", i);
        cr_assert_eq(list[i].repeat_until_ms, list[i].at_ms);
    }
    free(list);
}

Test(scenario, empty_timeline_expands_to_nothing)
{
    load_ok(FIXTURES "minimal.json", NULL, 0);
    ch_action *list = (ch_action *)&sc;
    size_t n = 99;
    cr_assert_eq(ch_scenario_expand(&sc, &list, &n), 0);
    cr_assert_null(list);
    cr_assert_eq(n, 0);
}

Test(scenario, repeat_expansion_is_bounded)
{
    const char *sets[] = {"duration_ms=200000",
                          "timeline.0={'at_ms': 0, 'do': 'heal-all', 'repeat': {'every_ms': 1}}"};
    const char *msg = load_err(FIXTURES "minimal.json", sets, 2);
    assert_has(msg, "minimal.json: timeline[0]: repeats expand the timeline past 100000 actions");
    /* just under the bound is fine */
    sets[1] = "timeline.0={'at_ms': 1, 'do': 'heal-all', 'repeat': {'every_ms': 2}}";
    load_ok(FIXTURES "minimal.json", sets, 2);
    cr_assert_eq(sc.n_expanded, 100000);
    ch_action *list;
    size_t n;
    cr_assert_eq(ch_scenario_expand(&sc, &list, &n), 0);
    cr_assert_eq(n, 100000);
    cr_assert_eq(list[n - 1].at_ms, 199999);
    free(list);
}

/* -------------------------------------------------------------- --set */

Test(scenario, set_number_string_nested_and_index)
{
    const char *sets[] = {
        "cluster.paxos.heartbeat_ms=20",       /* number, created section */
        "cluster.paxos.fd=naive",              /* plain string */
        "workload.mix.del=2",                  /* nested, created section */
        "timeline.0.at_ms=6000",               /* array index */
        "timeline.1.probability=0.5",
        "cluster.paxos.election_timeout_ms=[100,200]", /* array value */
        "description=\"quoted\"",              /* a JSON string */
        "seed=1e3",                            /* integral real */
    };
    load_ok(FIXTURES "design_example.json", sets, 8);
    cr_assert_eq(sc.paxos.heartbeat_us, 20000);
    cr_assert_eq(sc.paxos.fd, PX_FD_NAIVE);
    cr_assert_float_eq(sc.workload.mix.del, 2, 1e-12);
    cr_assert_float_eq(sc.workload.mix.get, 0.5, 1e-12, "other weights kept");
    cr_assert_eq(sc.timeline[0].at_ms, 6000);
    cr_assert_float_eq(sc.timeline[1].probability, 0.5, 1e-12);
    cr_assert_eq(sc.paxos.election_timeout_min_us, 100000);
    cr_assert_eq(sc.paxos.election_timeout_max_us, 200000);
    cr_assert_str_eq(sc.description, "quoted");
    cr_assert_eq(sc.seed, 1000);
    /* the kept text is the file's, not the overridden tree */
    cr_assert_not_null(strstr(sc.text, "\"heartbeat_ms\": 50"));
}

Test(scenario, set_appends_and_null_removes)
{
    const char *sets[] = {
        "timeline.3={'at_ms': 16000, 'do': 'crash', 'node': 'r1'}",
        "timeline.1=null",
        "assertions.max_leader_changes=null",
        "seed=null",
    };
    load_ok(FIXTURES "design_example.json", sets, 4);
    cr_assert_eq(sc.n_timeline, 3);
    cr_assert_eq(sc.timeline[1].kind, CH_ACT_HEAL_ALL);
    cr_assert_eq(sc.timeline[2].kind, CH_ACT_CRASH);
    cr_assert_eq(sc.timeline[2].at_ms, 16000);
    cr_assert_not(sc.assertions.has_max_leader_changes);
    cr_assert(sc.assertions.has_linearizable);
    cr_assert_not(sc.has_seed);
}

Test(scenario, set_errors_name_the_path)
{
    cr_assert_str_eq(set_err("clster.paxos.fd=naive"),
                     FIXTURES "minimal.json: --set clster.paxos.fd=naive: clster does not exist");
    cr_assert_str_eq(set_err("cluster.paxos.x.y=1"),
                     FIXTURES "minimal.json: --set cluster.paxos.x.y=1: cluster.paxos.x does not exist");
    cr_assert_str_eq(set_err("timeline.0.at_ms=5"),
                     FIXTURES "minimal.json: --set timeline.0.at_ms=5: timeline.0 does not exist");
    assert_has(set_err("timeline.2=5"),
               "--set timeline.2=5: timeline.2: index out of range (the array has 0 elements)");
    assert_has(set_err("timeline.x=5"), "--set timeline.x=5: timeline.x: expected an array index, got \"x\"");
    assert_has(set_err("name.first=5"), "--set name.first=5: name is a string, not an object or array");
    assert_has(set_err("cluster..x=1"), "--set cluster..x=1: empty segment in the key");
    assert_has(set_err("replicas"), "--set replicas: expected key=value");
    assert_has(set_err("=5"), "--set =5: expected key=value");
}

Test(scenario, set_values_are_then_validated)
{
    /* a value that is not JSON becomes a string, and the type check names the field */
    cr_assert_str_eq(set_err("cluster.replicas=five"),
                     FIXTURES "minimal.json: cluster.replicas: expected an integer from 1 to 9, got \"five\"");
    cr_assert_str_eq(set_err("cluster.paxos.fd=raft"),
                     FIXTURES "minimal.json: cluster.paxos.fd: expected one of naive, mpmc, quorum, got \"raft\"");
    assert_has(set_err("workload.clients=\"4\""), "workload.clients: expected an integer from 1 to 10000, got \"4\"");
    assert_has(set_err("duration_ms=1.5"), "duration_ms: expected an integer from 1 to 604800000, got 1.5");
}

Test(scenario, apply_set_on_a_bare_tree)
{
    json_t *root = json_pack("{s:{s:[i,i]}}", "a", "b", 1, 2);
    cr_assert_not_null(root);
    cr_assert_eq(ch_scenario_apply_set(root, "a.b.1=true", &err), 0, "%s", err.msg);
    cr_assert(json_is_true(json_array_get(json_object_get(json_object_get(root, "a"), "b"), 1)));
    cr_assert_eq(ch_scenario_apply_set(root, "a.c=[1, {\"d\": null}]", &err), 0, "%s", err.msg);
    cr_assert(json_is_array(json_object_get(json_object_get(root, "a"), "c")));
    cr_assert_eq(ch_scenario_apply_set(root, "a.b.0.x=1", &err), -EINVAL);
    assert_has(err.msg, "a.b.0 is a number, not an object or array");
    cr_assert_eq(ch_scenario_apply_set(root, "z.y=1", &err), -EINVAL);
    cr_assert_str_eq(err.msg, "--set z.y=1: z does not exist");
    cr_assert_eq(ch_scenario_apply_set(root, "a.e=x=y", &err), 0, "the first '=' splits");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(root, "a"), "e")), "x=y");
    json_decref(root);
}

/* ------------------------------------------------------------------- errors */

Test(scenario, json_syntax_error_gives_line_and_column)
{
    const char *msg = load_err(FIXTURES "syntax_error.json", NULL, 0);
    assert_has(msg, FIXTURES "syntax_error.json:4:29: invalid JSON: ");
    msg = load_err(FIXTURES "duplicate_key.json", NULL, 0);
    assert_has(msg, FIXTURES "duplicate_key.json:4:8: invalid JSON: duplicate object key");
    cr_assert_str_eq(parse_err("[1]"), "inline.json: expected a JSON object at the top level, got an array");
    assert_has(parse_err(""), "inline.json:1:0: invalid JSON");
}

Test(scenario, missing_file_is_enoent_and_named)
{
    int rc = ch_scenario_load(FIXTURES "no_such.json", NULL, 0, &sc, &err);
    cr_assert_eq(rc, -ENOENT);
    cr_assert_str_eq(err.msg, FIXTURES "no_such.json: no such file");
    rc = ch_scenario_load(FIXTURES, NULL, 0, &sc, &err);
    cr_assert_eq(rc, -EINVAL);
    assert_has(err.msg, "not a regular file");
}

Test(scenario, unknown_fields_are_errors_with_suggestions)
{
    cr_assert_str_eq(load_err(FIXTURES "unknown_field.json", NULL, 0),
                     FIXTURES "unknown_field.json: workload.clinets: unknown field (did you mean \"clients\"?)");
    assert_has(parse_err("{'nmae': 'x', 'duration_ms': 5}"),
               "inline.json: nmae: unknown field (did you mean \"name\"?)");
    assert_has(set_err("cluster.paxos.heartbeat=5"),
               "cluster.paxos.heartbeat: unknown field (did you mean \"heartbeat_ms\"?)");
    /* a transposition is one edit, even in a two-letter name */
    assert_has(set_err("cluster.paxos.df=naive"), "cluster.paxos.df: unknown field (did you mean \"fd\"?)");
    assert_has(set_err("assertions.linearisable=true"),
               "assertions.linearisable: unknown field (did you mean \"linearizable\"?)");
    /* far from everything: the message lists what is allowed */
    assert_has(set_err("workload.zzzzzzzz=1"),
               "workload.zzzzzzzz: unknown field (expected one of clients, nodes, mix,");
    /* a field of another action kind */
    assert_has(action_err("{'at_ms': 1, 'do': 'crash', 'node': 'r1', 'probability': 1}"),
               "timeline[0].probability: unknown field for \"crash\" (expected one of at_ms, do, repeat, node)");
    assert_has(action_err("{'at_ms': 1, 'do': 'loss', 'node': 'r1', 'probabilty': 1}"),
               "timeline[0].probabilty: unknown field for \"loss\" (did you mean \"probability\"?)");
    assert_has(action_err("{'at_ms': 1, 'do': 'crash', 'node': 'r1', 'repeat': {'every': 5}}"),
               "timeline[0].repeat.every: unknown field (did you mean \"every_ms\"?)");
}

Test(scenario, node_that_does_not_exist)
{
    cr_assert_str_eq(load_err(FIXTURES "bad_node.json", NULL, 0),
                     FIXTURES "bad_node.json: timeline[3].groups[1][0]: node \"r7\" does not exist "
                              "(cluster has 5 replicas)");
    cr_assert_str_eq(action_err("{'at_ms': 1, 'do': 'cut', 'node': 'c2'}"),
                     FIXTURES "minimal.json: timeline[0].node: node \"c2\" does not exist (workload has 1 client "
                     "node)");
    assert_has(action_err("{'at_ms': 1, 'do': 'cut', 'between': ['r1', 'r4']}"),
               "timeline[0].between[1]: node \"r4\" does not exist (cluster has 3 replicas)");
    assert_has(action_err("{'at_ms': 1, 'do': 'cut', 'node': 'x1'}"),
               "timeline[0].node: expected a node name (r1..r3, c1, \"leader\" or \"*\"), got \"x1\"");
    assert_has(action_err("{'at_ms': 1, 'do': 'cut', 'node': 'r01'}"), "expected a node name");
    assert_has(action_err("{'at_ms': 1, 'do': 'cut', 'node': 1}"), "expected a node name");
    assert_has(action_err("{'at_ms': 1, 'do': 'crash', 'node': 'c1'}"),
               "timeline[0].node: crash applies to replicas: expected r1..r3, \"leader\" or \"*\", got \"c1\"");
}

Test(scenario, missing_required_fields)
{
    cr_assert_str_eq(load_err(FIXTURES "missing_name.json", NULL, 0),
                     FIXTURES "missing_name.json: name: required field missing (expected a string)");
    assert_has(parse_err("{'name': 'x'}"),
               "inline.json: duration_ms: required field missing (expected an integer > 0)");
    assert_has(action_err("{'do': 'heal-all'}"),
               "timeline[0].at_ms: required field missing (expected an integer from 0 to duration_ms)");
    assert_has(action_err("{'at_ms': 1}"), "timeline[0].do: required field missing (expected one of partition, cut,");
    assert_has(action_err("{'at_ms': 1, 'do': 'loss', 'node': 'r1'}"),
               "timeline[0].probability: required field missing (expected a number from 0 to 1)");
    assert_has(action_err("{'at_ms': 1, 'do': 'crash'}"), "timeline[0].node: required field missing");
    assert_has(action_err("{'at_ms': 1, 'do': 'loss', 'probability': 0.1}"),
               "timeline[0]: expected one link selector: \"between\": [a, b], \"from\": a with \"to\": b, or "
               "\"node\": a");
    assert_has(action_err("{'at_ms': 1, 'do': 'cut', 'from': 'r1'}"), "timeline[0]: \"from\" needs \"to\"");
    assert_has(action_err("{'at_ms': 1, 'do': 'cut', 'to': 'r1'}"), "timeline[0]: \"to\" needs \"from\"");
    assert_has(action_err("{'at_ms': 1, 'do': 'cut', 'node': 'r1', 'between': ['r1', 'r2']}"),
               "(not several)");
    assert_has(action_err("{'at_ms': 1, 'do': 'crash', 'node': 'r1', 'repeat': {}}"),
               "timeline[0].repeat.every_ms: required field missing");
}

Test(scenario, out_of_range_values)
{
    assert_has(action_err("{'at_ms': 1, 'do': 'loss', 'node': 'r1', 'probability': 1.5}"),
               "timeline[0].probability: expected a number from 0 to 1, got 1.5");
    assert_has(action_err("{'at_ms': 1, 'do': 'loss', 'node': 'r1', 'probability': 0.1, 'correlation': -0.1}"),
               "timeline[0].correlation: expected a number from 0 to 1, got -0.1");
    assert_has(action_err("{'at_ms': 1, 'do': 'duplicate', 'node': 'r1', 'probability': 2}"),
               "timeline[0].probability: expected a number from 0 to 1, got 2");
    assert_has(action_err("{'at_ms': 1, 'do': 'loss', 'node': 'r1', 'probability': 'high'}"),
               "timeline[0].probability: expected a number from 0 to 1, got \"high\"");
    assert_has(action_err("{'at_ms': 1001, 'do': 'heal-all'}"),
               "timeline[0].at_ms: expected an integer from 0 to 1000 (duration_ms), got 1001");
    assert_has(action_err("{'at_ms': 500, 'do': 'heal-all', 'repeat': {'every_ms': 10, 'until_ms': 400}}"),
               "timeline[0].repeat.until_ms: expected an integer from 500 to 1000");
    assert_has(action_err("{'at_ms': 1, 'do': 'delay', 'node': 'r1', 'ms': -1}"),
               "timeline[0].ms: expected a number from 0 to 3.6e+06, got -1");
    assert_has(action_err("{'at_ms': 1, 'do': 'delay', 'node': 'r1', 'ms': 1, 'distribution': 'norml'}"),
               "timeline[0].distribution: expected one of uniform, normal, pareto, got \"norml\" (did you mean "
               "\"normal\"?)");
    assert_has(action_err("{'at_ms': 1, 'do': 'explode'}"), "timeline[0].do: expected one of partition, cut,");
    assert_has(set_err("cluster.replicas=10"), "cluster.replicas: expected an integer from 1 to 9, got 10");
    assert_has(set_err("workload.mix={'get': 0}"), "workload.mix: expected at least one weight > 0");
    assert_has(set_err("workload.mix.get=-1"), "workload.mix.get: expected a number from 0 to 1e+09, got -1");
    assert_has(set_err("workload.nodes=5"),
               "workload.nodes: expected at most workload.clients (4) client nodes, got 5");
    assert_has(set_err("workload.zipf_s=1.1"), "workload.zipf_s: only applies with \"distribution\": \"zipf\"");
    assert_has(set_err("assertions.min_throughput_ratio=1.5"),
               "assertions.min_throughput_ratio: expected a number from 0 to 1");
    assert_has(set_err("assertions.logs_agree=1"), "assertions.logs_agree: expected true or false, got 1");
    assert_has(set_err("seed=-1"), "seed: expected an integer >= 0, got -1");
    assert_has(set_err("version=2"), "version: expected an integer from 1 to 1 (this rift reads format v1), got 2");
    assert_has(set_err("name=a/b"), "name: expected 1 to 64 letters, digits");
    assert_has(set_err("cluster=[]"), "cluster: expected an object, got an array");
    assert_has(set_err("timeline={}"), "timeline: expected an array of actions, got an object");
}

Test(scenario, partition_rules)
{
    assert_has(action_err("{'at_ms': 1, 'do': 'partition', 'groups': [['r1', 'r2'], ['r3', 'r2']]}"),
               "timeline[0].groups[1][1]: node \"r2\" is already in groups[0] (a node can be in one group only)");
    assert_has(action_err("{'at_ms': 1, 'do': 'partition', 'groups': [['r1']]}"),
               "timeline[0].groups: expected at least two groups");
    assert_has(action_err("{'at_ms': 1, 'do': 'partition', 'groups': [['r1'], []]}"),
               "timeline[0].groups[1]: expected a non-empty array of node names, got an array");
    assert_has(action_err("{'at_ms': 1, 'do': 'partition', 'groups': [['leader'], ['r2']]}"),
               "timeline[0].groups: \"leader\" (groups[0]) may be r2 (groups[1])");
    assert_has(action_err("{'at_ms': 1, 'do': 'partition', 'groups': [['*'], ['r1', '*']]}"),
               "timeline[0].groups[1][1]: node \"*\" is already in groups[0]");
    assert_has(action_err("{'at_ms': 1, 'do': 'cut', 'between': ['r1', 'r1']}"),
               "timeline[0].between: expected two different nodes, got \"r1\" twice");
    assert_has(action_err("{'at_ms': 1, 'do': 'cut', 'from': 'c1', 'to': 'c1'}"),
               "timeline[0].to: expected a node other than \"from\", got \"c1\"");
}

Test(scenario, gc_pause_lengths)
{
    assert_has(action_err("{'at_ms': 1, 'do': 'gc-pause', 'node': 'r1', 'every_ms': 100, 'pause_ms': 0}"),
               "timeline[0].pause_ms: expected a number > 0 and <= 3.6e+06, got 0");
    assert_has(action_err("{'at_ms': 1, 'do': 'gc-pause', 'node': 'r1', 'every_ms': 100, "
                          "\"pause_ms\": {\"min\": 5}}"),
               "timeline[0].pause_ms: a uniform length needs both \"min\" and \"max\"");
    assert_has(action_err("{'at_ms': 1, 'do': 'gc-pause', 'node': 'r1', 'every_ms': 100, "
                          "\"pause_ms\": {\"min\": 9, \"max\": 5}}"),
               "timeline[0].pause_ms: expected min <= max, got min 9 > max 5");
    assert_has(action_err("{'at_ms': 1, 'do': 'gc-pause', 'node': 'r1', 'every_ms': 100, "
                          "\"pause_ms\": {\"mean\": 5, \"max\": 9}}"),
               "timeline[0].pause_ms: expected {\"min\": ms, \"max\": ms} (uniform) or {\"mean\": ms, \"stddev\": "
               "ms}");
    assert_has(action_err("{'at_ms': 1, 'do': 'gc-pause', 'node': 'r1', 'every_ms': 100, "
                          "\"pause_ms\": \"long\"}"),
               "timeline[0].pause_ms: expected a number of ms, {\"min\": ms, \"max\": ms} or {\"mean\": ms, "
               "\"stddev\": ms}, got \"long\"");
    assert_has(action_err("{'at_ms': 1, 'do': 'gc-pause', 'node': 'r1', 'every_ms': 0, 'pause_ms': 5}"),
               "timeline[0].every_ms: expected an integer from 1 to 1000 (duration_ms), got 0");
}

/* ------------------------------------------------------- paxos and set */

Test(scenario, paxos_config_is_checked_at_cluster_paxos)
{
    cr_assert_str_eq(set_err("cluster.paxos.heartbeat_ms=400"),
                     FIXTURES "minimal.json: cluster.paxos: heartbeat_ms: expected below the election timeout "
                     "minimum");
    assert_has(set_err("cluster.paxos.pipeline_max=0"), "cluster.paxos: pipeline_max: expected 1..65536");
    /* a bad base config is reported as such, not blamed on a later set action */
    const char *base[] = {"cluster.paxos.heartbeat_ms=400",
                          "timeline.0={'at_ms': 1, 'do': 'set', 'node': 'r1', 'param': 'pipeline_max', 'value': 8}"};
    assert_has(load_err(FIXTURES "minimal.json", base, 2), "minimal.json: cluster.paxos: heartbeat_ms: expected below");
    assert_has(set_err("cluster.paxos.election_timeout_ms=[300, 150]"),
               "cluster.paxos.election_timeout_ms: expected [min, max] with min <= max, got [300, 150]");
    assert_has(set_err("cluster.paxos.election_timeout_ms=[300]"),
               "cluster.paxos.election_timeout_ms: expected [min, max] in ms, got an array");
    assert_has(set_err("cluster.paxos.batch_max_cmds=2.5"),
               "cluster.paxos.batch_max_cmds: expected an integer from 0 to 4000000000, got 2.5");
    assert_has(set_err("cluster.paxos.heartbeat_ms=-5"), "cluster.paxos.heartbeat_ms: expected a number from 0 to");
    assert_has(set_err("cluster.paxos.durability=none"),
               "cluster.paxos.durability: expected one of fsync, write, off, got \"none\"");
    const char *both[] = {"cluster.paxos.election_timeout_ms=[100, 200]",
                          "cluster.paxos.election_timeout_min_ms=100"};
    assert_has(load_err(FIXTURES "minimal.json", both, 2),
               "cluster.paxos.election_timeout_min_ms: cannot be combined with election_timeout_ms");
    const char *single[] = {"cluster.paxos.election_timeout_max_ms=1000",
                            "cluster.paxos.election_timeout_min_ms=500"};
    load_ok(FIXTURES "minimal.json", single, 2);
    cr_assert_eq(sc.paxos.election_timeout_min_us, 500000);
    cr_assert_eq(sc.paxos.election_timeout_max_us, 1000000);
}

Test(scenario, set_actions_check_param_and_value)
{
    cr_assert_str_eq(action_err("{'at_ms': 1, 'do': 'set', 'node': 'r1', 'param': 'heartbeet_ms', 'value': 5}"),
                     FIXTURES "minimal.json: timeline[0].param: unknown parameter \"heartbeet_ms\" "
                              "(did you mean \"heartbeat_ms\"?)");
    assert_has(action_err("{'at_ms': 1, 'do': 'set', 'node': 'r1', 'param': 'election_timeout_ms', 'value': 5}"),
               "timeline[0].param: unknown parameter \"election_timeout_ms\" (did you mean "
               "\"election_timeout_min_ms\"?)");
    assert_has(action_err("{'at_ms': 1, 'do': 'set', 'node': 'r1', 'param': 'qqq', 'value': 5}"),
               "timeline[0].param: unknown parameter \"qqq\" (expected one of fd, heartbeat_ms,");
    assert_has(action_err("{'at_ms': 1, 'do': 'set', 'node': 'r1', 'param': 'fd', 'value': 'raft'}"),
               "timeline[0].value: invalid value \"raft\" for fd");
    assert_has(action_err("{'at_ms': 1, 'do': 'set', 'node': 'r1', 'param': 'heartbeat_ms', 'value': true}"),
               "timeline[0].value: expected a string (at most 63 bytes) or a number, got true");
    assert_has(action_err("{'at_ms': 1, 'do': 'set', 'node': 'c1', 'param': 'fd', 'value': 'naive'}"),
               "timeline[0].node: set applies to replicas");
    /* valid on its own, refused by the live replica's config check */
    assert_has(action_err("{'at_ms': 1, 'do': 'set', 'node': 'r2', 'param': 'heartbeat_ms', 'value': 400}"),
               "timeline[0]: set heartbeat_ms=400 would be refused by r2: heartbeat_ms: expected below the election "
               "timeout minimum");
}

Test(scenario, set_actions_replay_in_time_order)
{
    /* raising max then min works in this order... */
    const char *ok[] = {
        "timeline.0={'at_ms': 200, 'do': 'set', 'node': 'r1', 'param': 'election_timeout_min_ms', 'value': 1000}",
        "timeline.1={'at_ms': 100, 'do': 'set', 'node': '*', 'param': 'election_timeout_max_ms', 'value': 2000}",
    };
    load_ok(FIXTURES "minimal.json", ok, 2);
    cr_assert_str_eq(sc.timeline[0].value, "1000");
    ch_scenario_free(&sc);
    /* ...but min first is refused, and on r1 only (the max went to r2) */
    const char *bad[] = {
        "timeline.0={'at_ms': 100, 'do': 'set', 'node': 'r1', 'param': 'election_timeout_min_ms', 'value': 1000}",
        "timeline.1={'at_ms': 200, 'do': 'set', 'node': 'r2', 'param': 'election_timeout_max_ms', 'value': 2000}",
    };
    assert_has(load_err(FIXTURES "minimal.json", bad, 2),
               "timeline[0]: set election_timeout_min_ms=1000 would be refused by r1");
}

/* ------------------------------------------------------------ normalization */

static char *dump_normalized(const ch_scenario *s)
{
    json_t *j = ch_scenario_to_json(s);
    cr_assert_not_null(j);
    char *text = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(j);
    cr_assert_not_null(text);
    return text;
}

Test(scenario, normalized_json_round_trips)
{
    static const char *const files[] = {"design_example.json", "minimal.json", "full.json", "all_actions.json"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char path[512];
        snprintf(path, sizeof(path), FIXTURES "%s", files[i]);
        load_ok(path, NULL, 0);
        char *first = dump_normalized(&sc);
        size_t n_expanded = sc.n_expanded;
        ch_scenario_free(&sc);
        int rc = ch_scenario_parse("normalized", first, strlen(first), NULL, 0, &sc, &err);
        cr_assert_eq(rc, 0, "%s: normalized form does not parse: %s\n%s", files[i], err.msg, first);
        char *second = dump_normalized(&sc);
        cr_assert_str_eq(first, second, "%s: normalization is not a fixed point", files[i]);
        cr_assert_eq(sc.n_expanded, n_expanded);
        free(first);
        free(second);
        ch_scenario_free(&sc);
    }
}

Test(scenario, normalized_json_has_defaults_filled_in)
{
    load_ok(FIXTURES "minimal.json", NULL, 0);
    json_t *j = ch_scenario_to_json(&sc);
    cr_assert_not_null(j);
    json_t *paxos = json_object_get(json_object_get(j, "cluster"), "paxos");
    cr_assert_str_eq(json_string_value(json_object_get(paxos, "fd")), "quorum");
    cr_assert_str_eq(json_string_value(json_object_get(paxos, "durability")), "fsync");
    cr_assert_eq(json_integer_value(json_object_get(paxos, "heartbeat_ms")), 50);
    cr_assert_eq(json_integer_value(json_array_get(json_object_get(paxos, "election_timeout_ms"), 1)), 300);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(j, "workload"), "clients")), 4);
    cr_assert_null(json_object_get(j, "seed"), "an absent seed stays absent");
    json_decref(j);
}

/* ------------------------------------------------- schema and parser agree */

/* Every field scenarios/schema.json documents is one the parser knows: set it
 * to an object (wrong for every field) and expect a type error, never
 * "unknown field". */
static void check_section(json_t *schema, const char *def, const char *prefix)
{
    json_t *props = json_object_get(json_object_get(json_object_get(schema, "$defs"), def), "properties");
    if (!def[0])
        props = json_object_get(schema, "properties");
    cr_assert(json_is_object(props), "schema has no properties for %s", def);
    const char *key;
    json_t *v;
    json_object_foreach(props, key, v) {
        if (strcmp(key, "$schema") == 0)
            continue;
        char set[256];
        snprintf(set, sizeof(set), "%s%s={\"zz\": 1}", prefix, key);
        const char *sets[] = {set};
        int rc = ch_scenario_load(FIXTURES "minimal.json", sets, 1, &sc, &err);
        cr_assert_eq(rc, -EINVAL, "%s accepted", set);
        char unknown[300]; /* the message the parser gives for a key it does not know */
        snprintf(unknown, sizeof(unknown), "%s%s: unknown field", prefix, key);
        cr_assert_null(strstr(err.msg, unknown), "schema field %s%s unknown to the parser: %s", prefix, key, err.msg);
    }
}

Test(scenario, schema_fields_are_known_to_the_parser)
{
    json_error_t je;
    json_t *schema = json_load_file(RIFT_SOURCE_DIR "/scenarios/schema.json", 0, &je);
    cr_assert_not_null(schema, "schema.json: %d:%d: %s", je.line, je.column, je.text);
    check_section(schema, "", "");
    check_section(schema, "cluster", "cluster.");
    check_section(schema, "paxos", "cluster.paxos.");
    check_section(schema, "workload", "workload.");
    check_section(schema, "assertions", "assertions.");
    /* every settable parameter the schema lists is a px_config_set name */
    json_t *set_def = json_object_get(json_object_get(schema, "$defs"), "set");
    json_t *params = json_object_get(json_object_get(json_object_get(set_def, "properties"), "param"), "enum");
    cr_assert(json_array_size(params) >= 15);
    size_t i;
    json_t *p;
    json_array_foreach(params, i, p) {
        px_config c;
        px_config_default(&c);
        cr_assert_neq(px_config_set(&c, json_string_value(p), "1"), -ENOENT, "%s", json_string_value(p));
    }
    json_decref(schema);
}
