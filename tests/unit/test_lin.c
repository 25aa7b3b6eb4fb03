/* test_lin.c — the linearizability checker: known histories per op type,
 * per-key independence, budgets, failure witnesses, and randomized checks
 * (generated linearizable histories, one corrupted read, and differential
 * testing against the exhaustive reference). */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chaos/ch_history.h"
#include "chaos/ch_lin.h"
#include "common/rift_rng.h"

#ifndef RIFT_PROPERTY_SEEDS
#define RIFT_PROPERTY_SEEDS 300
#endif

/* ---- a compact notation for hand-written histories ----
 * "process type f key value time"; type: inv ok fail info; value "-" = null;
 * cas value "expected:new" ("-:new" expects absent). */
static ch_op op_of(const char *line)
{
    unsigned p;
    char type[8], f[8], key[32], value[64];
    long long t;
    cr_assert_eq(sscanf(line, "%u %7s %7s %31s %63s %lld", &p, type, f, key, value, &t), 6,
                 "bad test line: %s", line);
    static const char *const types[] = {"inv", "ok", "fail", "info"};
    static const char *const fs[] = {"get", "put", "del", "append", "cas"};
    ch_op op = {.process = p, .key = strdup(key), .time_us = t};
    for (int i = 0; i < 4; i++)
        if (!strcmp(type, types[i]))
            op.type = (ch_type)i;
    for (int i = 0; i < 5; i++)
        if (!strcmp(f, fs[i]))
            op.f = (ch_f)i;
    char *colon = strchr(value, ':');
    if (op.f == CH_CAS && colon) {
        *colon = '\0';
        op.has_cas_expected = true;
        op.cas_expected = strcmp(value, "-") ? strdup(value) : NULL;
        op.value = strdup(colon + 1);
    } else if (strcmp(value, "-")) {
        op.value = strdup(value);
    }
    return op;
}

static ch_history *history_of(const char *const *lines, size_t n)
{
    ch_history *h = ch_history_new();
    cr_assert_not_null(h);
    for (size_t i = 0; i < n; i++) {
        ch_op op = op_of(lines[i]);
        cr_assert_eq(ch_history_append(h, &op), 0);
        ch_op_clear(&op);
    }
    ch_error err = {{0}};
    cr_assert_eq(ch_history_pair(h, "test", NULL, &err), 0, "%s", err.msg);
    return h;
}

#define H(...) history_of((const char *const[]){__VA_ARGS__}, \
    sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))

static ch_lin_verdict check(ch_history *h, ch_lin_result *r)
{
    cr_assert_eq(ch_lin_check(h, 30.0, r), 0, "%s", r->reason);
    return r->verdict;
}

/* The search alone, without the stale-read fast path. */
static ch_lin_verdict check_search(ch_history *h, ch_lin_result *r)
{
    ch_lin_opts o = {.time_limit_s = 30.0, .no_fast_path = true};
    cr_assert_eq(ch_lin_check_opts(h, &o, r), 0, "%s", r->reason);
    return r->verdict;
}

/* Check, compare with the exhaustive reference when small, and free. */
static void expect(ch_history *h, ch_lin_verdict want)
{
    ch_lin_result r;
    ch_lin_verdict got = check(h, &r);
    cr_assert_eq(got, want, "got %s, want %s: %s", ch_lin_verdict_name(got),
                 ch_lin_verdict_name(want), r.reason);
    ch_lin_result_free(&r);
    got = check_search(h, &r);
    cr_assert_eq(got, want, "search alone: got %s, want %s", ch_lin_verdict_name(got),
                 ch_lin_verdict_name(want));
    ch_lin_verdict ref;
    if (ch_lin_check_exhaustive(h, &ref) == 0)
        cr_assert_eq(ref, want, "the exhaustive reference disagrees");
    ch_lin_result_free(&r);
    ch_history_free(h);
}

/* ---- registers: get and put ---- */

Test(register, empty_history_is_linearizable)
{
    expect(ch_history_new(), CH_LIN_OK);
}

Test(register, sequential_put_get)
{
    expect(H("0 inv put x a 0", "0 ok put x a 10", "1 inv get x - 20", "1 ok get x a 30"),
           CH_LIN_OK);
}

Test(register, read_before_any_write_is_null)
{
    expect(H("1 inv get x - 0", "1 ok get x - 5", "0 inv put x a 10", "0 ok put x a 20"),
           CH_LIN_OK);
    expect(H("1 inv get x - 0", "1 ok get x a 5", "0 inv put x a 10", "0 ok put x a 20"),
           CH_LIN_FAIL);
}

Test(register, stale_read_after_completed_write_fails)
{
    expect(H("0 inv put x a 0", "0 ok put x a 10", "0 inv put x b 20", "0 ok put x b 30",
             "1 inv get x - 40", "1 ok get x a 50"),
           CH_LIN_FAIL);
}

Test(register, concurrent_write_and_read_may_see_either)
{
    const char *old = "1 ok get x a 40", *new = "1 ok get x b 40";
    for (int i = 0; i < 2; i++)
        expect(H("0 inv put x a 0", "0 ok put x a 10", "0 inv put x b 20", "1 inv get x - 25",
                 i ? new : old, "0 ok put x b 50"),
               CH_LIN_OK);
}

Test(register, equal_times_count_as_concurrent)
{
    /* The write completes at 10 and the read starts at 10: either order. */
    expect(H("0 inv put x a 0", "0 ok put x a 10", "1 inv get x - 10", "1 ok get x - 20"),
           CH_LIN_OK);
    expect(H("0 inv put x a 0", "0 ok put x a 10", "1 inv get x - 11", "1 ok get x - 20"),
           CH_LIN_FAIL);
}

Test(register, read_of_a_value_never_written_fails)
{
    expect(H("0 inv put x a 0", "0 ok put x a 10", "1 inv get x - 5", "1 ok get x zz 15"),
           CH_LIN_FAIL);
}

Test(register, reads_cannot_go_back_in_time)
{
    /* Two sequential reads during a long write: new then old is impossible. */
    expect(H("0 inv put x a 0", "0 ok put x a 5", "0 inv put x b 10", "1 inv get x - 20",
             "1 ok get x b 30", "2 inv get x - 40", "2 ok get x a 50", "0 ok put x b 100"),
           CH_LIN_FAIL);
    expect(H("0 inv put x a 0", "0 ok put x a 5", "0 inv put x b 10", "1 inv get x - 20",
             "1 ok get x a 30", "2 inv get x - 40", "2 ok get x b 50", "0 ok put x b 100"),
           CH_LIN_OK);
}

/* ---- info and fail ---- */

Test(info, write_that_shows_up_later_is_fine)
{
    expect(H("0 inv put x a 0", "0 info put x a 10", "1 inv get x - 100", "1 ok get x - 110",
             "1 inv get x - 200", "1 ok get x a 210"),
           CH_LIN_OK);
}

Test(info, write_that_never_shows_up_is_fine)
{
    expect(H("0 inv put x a 0", "0 info put x a 10", "1 inv get x - 100", "1 ok get x - 110"),
           CH_LIN_OK);
}

Test(info, open_invoke_counts_as_info)
{
    expect(H("0 inv put x a 0", "1 inv get x - 100", "1 ok get x a 110"), CH_LIN_OK);
}

Test(info, cannot_take_effect_before_its_invoke)
{
    expect(H("1 inv get x - 0", "1 ok get x a 10", "0 inv put x a 20", "0 info put x a 30"),
           CH_LIN_FAIL);
}

Test(info, takes_effect_at_most_once)
{
    /* a, b, a: the info put of a would have to happen twice. */
    expect(H("0 inv put x a 0", "0 info put x a 1", "2 inv put x b 10", "2 ok put x b 20",
             "1 inv get x - 5", "1 ok get x a 8", "1 inv get x - 30", "1 ok get x b 35",
             "1 inv get x - 40", "1 ok get x a 45"),
           CH_LIN_FAIL);
}

Test(info, info_get_constrains_nothing)
{
    expect(H("0 inv put x a 0", "0 ok put x a 10", "1 inv get x - 20", "1 info get x - 30"),
           CH_LIN_OK);
}

Test(fail, failed_write_never_took_effect)
{
    expect(H("0 inv put x a 0", "0 ok put x a 10", "0 inv put x b 20", "0 fail put x b 30",
             "1 inv get x - 40", "1 ok get x b 50"),
           CH_LIN_FAIL);
    expect(H("0 inv put x a 0", "0 ok put x a 10", "0 inv put x b 20", "0 fail put x b 30",
             "1 inv get x - 40", "1 ok get x a 50"),
           CH_LIN_OK);
}

/* ---- del, append, cas ---- */

Test(del, removes_the_value)
{
    expect(H("0 inv put x a 0", "0 ok put x a 10", "0 inv del x - 20", "0 ok del x - 30",
             "1 inv get x - 40", "1 ok get x - 50"),
           CH_LIN_OK);
    expect(H("0 inv put x a 0", "0 ok put x a 10", "0 inv del x - 20", "0 ok del x - 30",
             "1 inv get x - 40", "1 ok get x a 50"),
           CH_LIN_FAIL);
}

Test(append, sequential_appends_keep_their_order)
{
    expect(H("0 inv append x a 0", "0 ok append x a 10", "0 inv append x b 20",
             "0 ok append x b 30", "1 inv get x - 40", "1 ok get x ab 50"),
           CH_LIN_OK);
    expect(H("0 inv append x a 0", "0 ok append x a 10", "0 inv append x b 20",
             "0 ok append x b 30", "1 inv get x - 40", "1 ok get x ba 50"),
           CH_LIN_FAIL);
}

Test(append, concurrent_appends_in_either_order)
{
    const char *reads[] = {"2 ok get x ab 50", "2 ok get x ba 50"};
    for (int i = 0; i < 2; i++)
        expect(H("0 inv append x a 0", "1 inv append x b 0", "0 ok append x a 30",
                 "1 ok append x b 30", "2 inv get x - 40", reads[i]),
               CH_LIN_OK);
    expect(H("0 inv append x a 0", "1 inv append x b 0", "0 ok append x a 30",
             "1 ok append x b 30", "2 inv get x - 40", "2 ok get x a 50"),
           CH_LIN_FAIL);
}

Test(append, onto_a_put_value_and_after_del)
{
    expect(H("0 inv put x p 0", "0 ok put x p 10", "0 inv append x a 20", "0 ok append x a 30",
             "1 inv get x - 40", "1 ok get x pa 50", "0 inv del x - 60", "0 ok del x - 70",
             "0 inv append x b 80", "0 ok append x b 90", "1 inv get x - 100",
             "1 ok get x b 110"),
           CH_LIN_OK);
}

Test(append, info_append_may_land_late_but_only_once)
{
    /* Before b, or long after its client gave up: both fine. */
    const char *reads[] = {"2 ok get x ab 50", "2 ok get x ba 50"};
    for (int i = 0; i < 2; i++)
        expect(H("0 inv append x a 0", "0 info append x a 10", "1 inv append x b 20",
                 "1 ok append x b 30", "2 inv get x - 40", reads[i]),
               CH_LIN_OK);
    /* Seen as "b", it can no longer come before b. */
    expect(H("0 inv append x a 0", "0 info append x a 10", "1 inv append x b 20",
             "1 ok append x b 30", "2 inv get x - 40", "2 ok get x b 50", "2 inv get x - 60",
             "2 ok get x ab 70"),
           CH_LIN_FAIL);
}

Test(cas, succeeds_only_on_the_expected_value)
{
    expect(H("0 inv put x a 0", "0 ok put x a 10", "1 inv cas x a:b 20", "1 ok cas x a:b 30",
             "2 inv get x - 40", "2 ok get x b 50"),
           CH_LIN_OK);
    expect(H("0 inv put x a 0", "0 ok put x a 10", "1 inv cas x c:b 20", "1 ok cas x c:b 30"),
           CH_LIN_FAIL);
}

Test(cas, failed_cas_has_no_effect)
{
    expect(H("0 inv put x a 0", "0 ok put x a 10", "1 inv cas x c:b 20", "1 fail cas x c:b 30",
             "2 inv get x - 40", "2 ok get x a 50"),
           CH_LIN_OK);
    expect(H("0 inv put x a 0", "0 ok put x a 10", "1 inv cas x a:b 20", "1 fail cas x a:b 30",
             "2 inv get x - 40", "2 ok get x b 50"),
           CH_LIN_FAIL);
}

Test(cas, null_expected_means_absent)
{
    expect(H("1 inv cas x -:b 0", "1 ok cas x -:b 10", "2 inv get x - 20", "2 ok get x b 30"),
           CH_LIN_OK);
    expect(H("0 inv put x a 0", "0 ok put x a 10", "1 inv cas x -:b 20", "1 ok cas x -:b 30"),
           CH_LIN_FAIL);
}

Test(cas, info_cas_may_or_may_not_apply)
{
    const char *reads[] = {"2 ok get x a 50", "2 ok get x b 50"};
    for (int i = 0; i < 2; i++)
        expect(H("0 inv put x a 0", "0 ok put x a 10", "1 inv cas x a:b 20",
                 "1 info cas x a:b 30", "2 inv get x - 40", reads[i]),
               CH_LIN_OK);
    /* It can only apply while the value is what it expects. */
    expect(H("0 inv put x c 0", "0 ok put x c 10", "1 inv cas x a:b 20", "1 info cas x a:b 30",
             "2 inv get x - 40", "2 ok get x b 50"),
           CH_LIN_FAIL);
}

/* ---- keys, results, errors ---- */

Test(keys, are_independent_and_failures_name_the_key)
{
    ch_history *h = H("0 inv put x a 0", "0 ok put x a 10", "1 inv put y b 0", "1 ok put y b 10",
                      "2 inv get x - 20", "2 ok get x a 30", "2 inv get y - 40",
                      "2 ok get y zz 50", "3 inv get z - 0", "3 ok get z - 5");
    ch_lin_result r;
    cr_assert_eq(check(h, &r), CH_LIN_FAIL);
    cr_assert_str_eq(r.fail_key, "y");
    cr_assert_eq(r.n_keys, 3);
    cr_assert_str_eq(r.keys[0].key, "x", "stats in order of first appearance");
    cr_assert_str_eq(r.keys[1].key, "y");
    cr_assert_eq(r.keys[1].verdict, CH_LIN_FAIL);
    cr_assert_eq(r.keys[2].verdict, CH_LIN_OK, "smaller keys are checked first");
    cr_assert(strstr(r.reason, "key \"y\"") != NULL, "%s", r.reason);
    /* The witness: the read of zz alone (nothing could have written zz). */
    cr_assert_eq(r.n_fail_ops, 2);
    cr_assert_eq(r.fail_ops[0], 6);
    cr_assert_eq(r.fail_ops[1], 7);
    cr_assert(r.fail_minimal);
    ch_lin_result_free(&r);
    ch_history_free(h);
}

/* From a file, as `rift check` does: the stale read and its witness. */
Test(files, stale_read_fixture)
{
    const char *slash = strrchr(__FILE__, '/');
    char path[1024];
    snprintf(path, sizeof path, "%.*s/../data/histories/stale_read.jsonl",
             slash ? (int)(slash - __FILE__) : 1, slash ? __FILE__ : ".");
    ch_history *h = NULL;
    ch_error err = {{0}};
    cr_assert_eq(ch_history_read_file(path, &h, &err), 0, "%s", err.msg);
    ch_lin_result r;
    for (int path_kind = 0; path_kind < 2; path_kind++) {
        ch_lin_verdict v = path_kind ? check_search(h, &r) : check(h, &r);
        cr_assert_eq(v, CH_LIN_FAIL, "%s", r.reason);
        cr_assert_str_eq(r.fail_key, "k7");
        /* put old, put new, get old: lines 1-4 and 7-8. */
        size_t want[] = {0, 1, 2, 3, 6, 7};
        cr_assert_eq(r.n_fail_ops, 6);
        for (size_t i = 0; i < 6; i++)
            cr_assert_eq(r.fail_ops[i], want[i]);
        cr_assert(r.fail_minimal);
        ch_lin_result_free(&r);
    }
    ch_history_free(h);
}

Test(keys, ok_fills_per_key_stats)
{
    ch_history *h = H("0 inv put x a 0", "0 ok put x a 10", "1 inv put y b 0", "1 info put y b 10",
                      "2 inv get x - 20", "2 ok get x a 30");
    ch_lin_result r;
    cr_assert_eq(check(h, &r), CH_LIN_OK);
    cr_assert_eq(r.n_keys, 2);
    cr_assert_eq(r.keys[0].ops, 2);
    cr_assert_eq(r.keys[0].ops_checked, 2);
    cr_assert(r.keys[0].checked);
    cr_assert_gt(r.keys[0].steps, 0);
    cr_assert_eq(r.keys[1].ops, 1);
    cr_assert_eq(r.keys[1].ops_checked, 0, "an info write nobody reads is dropped");
    cr_assert_null(r.fail_key);
    cr_assert_eq(r.n_fail_ops, 0);
    ch_lin_result_free(&r);
    ch_history_free(h);
}

Test(errors, malformed_history_is_einval)
{
    ch_history *h = ch_history_new();
    ch_op op = {.process = 0, .type = CH_OK, .f = CH_GET, .key = "x", .time_us = 0};
    cr_assert_eq(ch_history_append(h, &op), 0);
    ch_lin_result r;
    cr_assert_eq(ch_lin_check(h, 1.0, &r), -EINVAL);
    cr_assert(strstr(r.reason, "no open invoke") != NULL, "%s", r.reason);
    ch_lin_result_free(&r);
    ch_history_free(h);
}

/* ---- budgets ---- */

/* n concurrent writes, then two reads that disagree about which one was last:
 * not linearizable, but proving it means trying every subset of the writes. */
static ch_history *adversarial(int n)
{
    ch_history *h = ch_history_new();
    char v[16];
    for (int i = 0; i < n; i++) {
        snprintf(v, sizeof v, "v%d", i);
        ch_op op = {.process = (uint32_t)i, .type = CH_INVOKE, .f = CH_PUT, .key = "x",
                    .value = v, .time_us = i};
        cr_assert_eq(ch_history_append(h, &op), 0);
    }
    for (int i = 0; i < n; i++) {
        snprintf(v, sizeof v, "v%d", i);
        ch_op op = {.process = (uint32_t)i, .type = CH_OK, .f = CH_PUT, .key = "x",
                    .value = v, .time_us = 1000 + i};
        cr_assert_eq(ch_history_append(h, &op), 0);
    }
    const char *reads[] = {"v0", "v1"};
    for (int i = 0; i < 2; i++) {
        ch_op inv = {.process = 1000, .type = CH_INVOKE, .f = CH_GET, .key = "x",
                     .time_us = 2000 + 10 * i};
        ch_op ok = inv;
        ok.type = CH_OK;
        ok.value = (char *)reads[i];
        ok.time_us += 5;
        cr_assert_eq(ch_history_append(h, &inv), 0);
        cr_assert_eq(ch_history_append(h, &ok), 0);
    }
    return h;
}

Test(budget, tiny_time_budget_gives_unknown)
{
    ch_history *h = adversarial(40);
    ch_lin_result r;
    cr_assert_eq(ch_lin_check(h, 0.05, &r), 0);
    cr_assert_eq(r.verdict, CH_LIN_UNKNOWN, "%s", r.reason);
    cr_assert(strstr(r.reason, "time budget") != NULL, "%s", r.reason);
    cr_assert_lt(r.elapsed_s, 1.0, "the budget is honoured");
    ch_lin_result_free(&r);
    ch_history_free(h);
}

Test(budget, memo_cap_gives_unknown_not_a_crash)
{
    ch_history *h = adversarial(40);
    ch_lin_opts o = {.time_limit_s = 30, .memo_max = 5000};
    ch_lin_result r;
    cr_assert_eq(ch_lin_check_opts(h, &o, &r), 0);
    cr_assert_eq(r.verdict, CH_LIN_UNKNOWN, "%s", r.reason);
    cr_assert(strstr(r.reason, "memo table cap") != NULL, "%s", r.reason);
    cr_assert_leq(r.keys[0].memo_entries, 5000);
    ch_lin_result_free(&r);
    ch_history_free(h);
}

Test(budget, small_adversarial_history_is_decided)
{
    ch_history *h = adversarial(10);
    ch_lin_result r;
    cr_assert_eq(check(h, &r), CH_LIN_FAIL, "%s", r.reason);
    ch_lin_result_free(&r);
    ch_history_free(h);
}

/* ---- randomized: generated histories and corrupted reads ---- */

/* Random shapes: 1-8 clients, 1-4 keys, up to 20% info, any overlap, any mix
 * in which reads are at least a fifth (as in real workloads; with almost no
 * reads, many concurrent appends make the search exponential: UNKNOWN). */
static void gen_opts(ch_gen_opts *o, uint64_t seed, rift_rng *r)
{
    ch_gen_opts_default(o);
    o->seed = seed;
    o->n_ops = (uint32_t)rift_rng_range(r, 20, 400);
    o->n_processes = (uint32_t)rift_rng_range(r, 1, 8);
    o->n_keys = (uint32_t)rift_rng_range(r, 1, 4);
    o->p_info = rift_rng_double(r) * 0.2;
    o->dur_us_max = (uint32_t)rift_rng_range(r, 1, 200);
    o->gap_us_max = (uint32_t)rift_rng_range(r, 0, 100);
    double total = 0;
    for (int f = 0; f < 5; f++)
        total += o->mix[f] = rift_rng_double(r);
    if (o->mix[CH_GET] < total / 4)
        o->mix[CH_GET] = total / 4;
}

static bool is_write_ok(const ch_history *h, const size_t *match, size_t i)
{
    return h->ops[i].type == CH_INVOKE && h->ops[i].f != CH_GET && match[i] != CH_NONE &&
           h->ops[match[i]].type == CH_OK;
}

/* A put P of v, another completed write W strictly after P, and an ok get G
 * strictly after W on the same key: G reading v is stale. Values are unique
 * tokens, so after W the key can never hold v again. */
static bool find_stale(const ch_history *h, const size_t *match, size_t g, size_t *put)
{
    const ch_op *gi = &h->ops[g];
    for (size_t p = 0; p < h->n; p++) {
        if (!is_write_ok(h, match, p) || h->ops[p].f != CH_PUT || strcmp(h->ops[p].key, gi->key))
            continue;
        int64_t p_ret = h->ops[match[p]].time_us;
        for (size_t w = 0; w < h->n; w++) {
            if (is_write_ok(h, match, w) && !strcmp(h->ops[w].key, gi->key) &&
                h->ops[w].time_us > p_ret && h->ops[match[w]].time_us < gi->time_us) {
                *put = p;
                return true;
            }
        }
    }
    return false;
}

/* Corrupt one ok get: stale when we can prove it, else a value never written.
 * Returns the get's completion index, or SIZE_MAX when there is no ok get. */
static size_t corrupt_one_read(ch_history *h, rift_rng *r, bool *stale)
{
    size_t *match = malloc(h->n * sizeof *match);
    ch_error err;
    cr_assert_eq(ch_history_pair(h, NULL, match, &err), 0);
    size_t gets[4096], n = 0;
    for (size_t i = 0; i < h->n && n < 4096; i++)
        if (h->ops[i].type == CH_INVOKE && h->ops[i].f == CH_GET && match[i] != CH_NONE &&
            h->ops[match[i]].type == CH_OK)
            gets[n++] = i;
    if (n == 0) {
        free(match);
        return SIZE_MAX;
    }
    size_t put = 0, g = gets[rift_rng_range(r, 0, n - 1)];
    *stale = false;
    for (size_t tries = 0; tries < n && !*stale; tries++) {
        size_t cand = gets[(g + tries) % n];
        if (find_stale(h, match, cand, &put))
            *stale = true, g = cand;
    }
    ch_op *c = &h->ops[match[g]];
    free(c->value);
    c->value = strdup(*stale ? h->ops[put].value : "never-written");
    free(match);
    return (size_t)(c - h->ops);
}

static void assert_witness_fails(const ch_history *h, const ch_lin_result *r)
{
    cr_assert_gt(r->n_fail_ops, 0);
    ch_history *w = ch_history_new();
    for (size_t i = 0; i < r->n_fail_ops; i++) {
        cr_assert_lt(r->fail_ops[i], h->n);
        cr_assert_str_eq(h->ops[r->fail_ops[i]].key, r->fail_key);
        cr_assert_eq(ch_history_append(w, &h->ops[r->fail_ops[i]]), 0);
    }
    ch_lin_verdict v;
    if (ch_lin_check_exhaustive(w, &v) != 0) {
        ch_lin_result wr;
        cr_assert_eq(ch_lin_check(w, 30.0, &wr), 0);
        v = wr.verdict;
        ch_lin_result_free(&wr);
    }
    cr_assert_eq(v, CH_LIN_FAIL, "the witness itself must fail");
    ch_history_free(w);
}

static bool contains(const ch_lin_result *r, size_t idx)
{
    for (size_t i = 0; i < r->n_fail_ops; i++)
        if (r->fail_ops[i] == idx)
            return true;
    return false;
}

Test(random, generated_histories_pass_and_one_bad_read_fails, .timeout = 600)
{
    rift_rng r;
    rift_rng_seed(&r, 42);
    int stale = 0, corrupted = 0;
    for (uint64_t seed = 1; seed <= RIFT_PROPERTY_SEEDS; seed++) {
        ch_gen_opts o;
        gen_opts(&o, seed, &r);
        ch_history *h = ch_history_new();
        cr_assert_eq(ch_history_generate(h, &o), 0);
        ch_lin_result res;
        cr_assert_eq(check(h, &res), CH_LIN_OK, "seed %llu: %s", (unsigned long long)seed,
                     res.reason);
        ch_lin_result_free(&res);

        bool was_stale;
        size_t bad = corrupt_one_read(h, &r, &was_stale);
        if (bad == SIZE_MAX) { /* no completed read to corrupt */
            ch_history_free(h);
            continue;
        }
        corrupted++;
        stale += was_stale;
        cr_assert_eq(check(h, &res), CH_LIN_FAIL, "seed %llu (%s): %s",
                     (unsigned long long)seed, was_stale ? "stale" : "never written", res.reason);
        cr_assert(contains(&res, bad), "seed %llu: the witness misses the bad read",
                  (unsigned long long)seed);
        cr_assert(res.fail_minimal, "seed %llu", (unsigned long long)seed);
        cr_assert_leq(res.fail_n_operations, was_stale ? 16 : 1, "seed %llu: %zu ops",
                      (unsigned long long)seed, res.fail_n_operations);
        assert_witness_fails(h, &res);
        ch_lin_result_free(&res);
        ch_history_free(h);
    }
    cr_assert_gt(corrupted, RIFT_PROPERTY_SEEDS * 9 / 10);
    cr_assert_gt(stale, corrupted / 4, "many corruptions should be stale reads");
}

/* Without appends, the search alone proves the corrupted histories wrong too. */
Test(random, search_alone_finds_the_bad_read_without_appends, .timeout = 600)
{
    rift_rng r;
    rift_rng_seed(&r, 4242);
    int corrupted = 0;
    for (uint64_t seed = 1; seed <= RIFT_PROPERTY_SEEDS; seed++) {
        ch_gen_opts o;
        gen_opts(&o, seed, &r);
        o.mix[CH_APPEND] = 0;
        o.mix[CH_GET] += 0.2;
        o.n_ops = o.n_ops > 200 ? 200 : o.n_ops;
        ch_history *h = ch_history_new();
        cr_assert_eq(ch_history_generate(h, &o), 0);
        ch_lin_result res;
        cr_assert_eq(check_search(h, &res), CH_LIN_OK, "seed %llu", (unsigned long long)seed);
        ch_lin_result_free(&res);
        bool was_stale;
        size_t bad = corrupt_one_read(h, &r, &was_stale);
        if (bad != SIZE_MAX) {
            corrupted++;
            cr_assert_eq(check_search(h, &res), CH_LIN_FAIL, "seed %llu: %s",
                         (unsigned long long)seed, res.reason);
            cr_assert(contains(&res, bad));
            assert_witness_fails(h, &res);
            ch_lin_result_free(&res);
        }
        ch_history_free(h);
    }
    cr_assert_gt(corrupted, RIFT_PROPERTY_SEEDS * 9 / 10);
}

Test(random, witness_of_a_long_history_is_small)
{
    ch_gen_opts o;
    ch_gen_opts_default(&o);
    o.n_ops = 20000;
    o.n_keys = 1;
    o.seed = 7;
    ch_history *h = ch_history_new();
    cr_assert_eq(ch_history_generate(h, &o), 0);
    rift_rng r;
    rift_rng_seed(&r, 7);
    bool stale;
    size_t bad = corrupt_one_read(h, &r, &stale);
    cr_assert(stale);
    ch_lin_result res;
    cr_assert_eq(check(h, &res), CH_LIN_FAIL, "%s", res.reason);
    cr_assert(contains(&res, bad));
    cr_assert(res.fail_minimal);
    cr_assert_leq(res.fail_n_operations, 12, "%zu ops", res.fail_n_operations);
    assert_witness_fails(h, &res);
    ch_lin_result_free(&res);
    ch_history_free(h);
}

/* ---- differential: random small histories against the exhaustive reference ---- */

static const char *const small_vals[] = {"a", "b", "ab", ""};
static const char *const small_outs[] = {NULL, "a", "b", "ab"};

/* Up to CH_LIN_EXHAUSTIVE_MAX ops over 3 processes and 2 keys with random
 * overlaps, results and outcomes: mostly not linearizable, all well formed. */
static ch_history *random_small(rift_rng *r)
{
    ch_op ops[2 * CH_LIN_EXHAUSTIVE_MAX];
    int64_t clock[3] = {0, 0, 0};
    int n = 0, count = (int)rift_rng_range(r, 1, CH_LIN_EXHAUSTIVE_MAX);
    for (int i = 0; i < count; i++) {
        uint32_t p = (uint32_t)rift_rng_range(r, 0, 2);
        ch_op inv = {.process = p, .type = CH_INVOKE, .f = (ch_f)rift_rng_range(r, 0, 4),
                     .key = rift_rng_range(r, 0, 3) ? "x" : "y"};
        if (inv.f == CH_PUT || inv.f == CH_APPEND || inv.f == CH_CAS)
            inv.value = (char *)small_vals[rift_rng_range(r, 0, 3)];
        if (inv.f == CH_CAS) {
            inv.cas_expected = (char *)small_outs[rift_rng_range(r, 0, 3)];
            inv.has_cas_expected = true;
        }
        clock[p] += (int64_t)rift_rng_range(r, 0, 10);
        inv.time_us = clock[p];
        clock[p] += (int64_t)rift_rng_range(r, 0, 10);
        ch_op c = inv;
        uint64_t kind = rift_rng_range(r, 0, 9);
        c.type = kind == 8 ? CH_INFO : (kind == 9 && inv.f == CH_CAS) ? CH_FAIL : CH_OK;
        c.time_us = clock[p];
        if (inv.f == CH_GET)
            c.value = c.type == CH_OK ? (char *)small_outs[rift_rng_range(r, 0, 3)] : NULL;
        ops[n++] = inv;
        ops[n++] = c;
    }
    /* Merge by time; a process's completion precedes its next invoke. */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && ops[j - 1].time_us > ops[j].time_us; j--) {
            ch_op t = ops[j];
            ops[j] = ops[j - 1];
            ops[j - 1] = t;
        }
    ch_history *h = ch_history_new();
    for (int i = 0; i < n; i++)
        cr_assert_eq(ch_history_append(h, &ops[i]), 0);
    return h;
}

Test(random, agrees_with_the_exhaustive_reference, .timeout = 600)
{
    rift_rng r;
    rift_rng_seed(&r, 99);
    int fails = 0, runs = 20 * RIFT_PROPERTY_SEEDS;
    for (int i = 0; i < runs; i++) {
        ch_history *h = random_small(&r);
        ch_error err;
        cr_assert_eq(ch_history_pair(h, NULL, NULL, &err), 0, "%s", err.msg);
        ch_lin_verdict want;
        cr_assert_eq(ch_lin_check_exhaustive(h, &want), 0);
        for (int path = 0; path < 2; path++) {
            ch_lin_result res;
            ch_lin_verdict got = path ? check_search(h, &res) : check(h, &res);
            cr_assert_eq(got, want, "run %d, %s: %s", i, path ? "search" : "default",
                         res.reason);
            if (want == CH_LIN_FAIL) {
                cr_assert(res.fail_minimal);
                assert_witness_fails(h, &res);
            }
            ch_lin_result_free(&res);
        }
        fails += want == CH_LIN_FAIL;
        ch_history_free(h);
    }
    cr_assert_gt(fails, runs / 10, "the generator should make plenty of failures");
    cr_assert_lt(fails, runs * 9 / 10, "and plenty of passes");
}
