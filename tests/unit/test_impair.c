/* test_impair.c — the fault model: rule table, matching, and the statistics of
 * each impairment. Statistical bounds are several standard errors wide over
 * 100k packets with a fixed seed, so they are deterministic and still tight. */
#include <criterion/criterion.h>

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "stack/st_impair.h"

#define N_PACKETS 100000
#define ANY ST_IMPAIR_ANY

static st_impair *im;
static rift_rng rng;

static void setup(void)
{
    im = st_impair_new();
    cr_assert_not_null(im);
    rift_rng_seed(&rng, 12345);
}

static void teardown(void)
{
    st_impair_free(im);
}

TestSuite(impair, .init = setup, .fini = teardown);

static int add(st_impair_rule r)
{
    int id = st_impair_add(im, &r);
    cr_assert_geq(id, 0, "add: %d", id);
    return id;
}

static st_impair_verdict decide(uint32_t src, uint32_t dst)
{
    st_impair_verdict v;
    st_impair_decide(im, src, dst, &rng, &v);
    cr_assert_leq(v.n_copies, ST_IMPAIR_MAX_COPIES);
    return v;
}

static st_impair_counters counters(int id)
{
    st_impair_counters c;
    cr_assert(st_impair_get(im, id, NULL, &c));
    return c;
}

static bool delivered(uint32_t src, uint32_t dst)
{
    return decide(src, dst).n_copies > 0;
}

/* Fraction of N_PACKETS on 1 -> 2 that are dropped. */
static double drop_rate(void)
{
    int dropped = 0;
    for (int i = 0; i < N_PACKETS; i++)
        dropped += !delivered(1, 2);
    return (double)dropped / N_PACKETS;
}

Test(impair, no_rules_is_passthrough)
{
    rift_rng before = rng;
    for (int i = 0; i < 1000; i++) {
        st_impair_verdict v = decide((uint32_t)i, 7);
        cr_assert_eq(v.n_copies, 1);
        cr_assert_eq(v.delay_us[0], 0);
    }
    cr_expect_eq(memcmp(&before, &rng, sizeof rng), 0, "no dice rolled");
    cr_expect_not(st_impair_is_cut(im, 1, 2));
}

Test(impair, cut_is_directed)
{
    int id = add((st_impair_rule){ .src = 1, .dst = 2, .cut = true });
    cr_expect(st_impair_is_cut(im, 1, 2));
    cr_expect_not(st_impair_is_cut(im, 2, 1));
    for (int i = 0; i < 10; i++) {
        cr_expect_not(delivered(1, 2));
        cr_expect(delivered(2, 1));
        cr_expect(delivered(1, 3));
    }
    st_impair_counters c = counters(id);
    cr_expect_eq(c.matched, 10);
    cr_expect_eq(c.dropped, 10);
}

Test(impair, wildcards)
{
    add((st_impair_rule){ .src = ANY, .dst = 3, .cut = true });
    add((st_impair_rule){ .src = 4, .dst = ANY, .cut = true });
    cr_expect_not(delivered(1, 3));
    cr_expect_not(delivered(2, 3));
    cr_expect_not(delivered(4, 1));
    cr_expect_not(delivered(4, 9));
    cr_expect(delivered(3, 1));
    cr_expect(delivered(1, 4));
    cr_expect(delivered(1, 2));
    add((st_impair_rule){ .src = ANY, .dst = ANY, .cut = true });
    cr_expect_not(delivered(1, 2));
    cr_expect(st_impair_is_cut(im, 7, 8));
}

Test(impair, loss_rate)
{
    int id = add((st_impair_rule){ .src = 1, .dst = 2, .loss = 0.2 });
    double rate = drop_rate();
    cr_expect(fabs(rate - 0.2) < 0.01, "loss rate %f", rate);
    st_impair_counters c = counters(id);
    cr_expect_eq(c.matched, N_PACKETS);
    cr_expect_eq(c.dropped, (uint64_t)llround(rate * N_PACKETS));
    cr_expect(delivered(2, 1), "other direction untouched");
}

Test(impair, loss_extremes)
{
    int id = add((st_impair_rule){ .src = 1, .dst = 2, .loss = 1.0 });
    cr_expect_eq(drop_rate(), 1.0);
    st_impair_remove(im, id);
    add((st_impair_rule){ .src = 1, .dst = 2, .loss = 0.0, .loss_correlation = 0.9 });
    cr_expect_eq(drop_rate(), 0.0);
}

/* Mean length of runs of consecutive drops over n packets, and the drop rate. */
static double mean_drop_run(double corr, int n, double *rate)
{
    st_impair_clear(im);
    add((st_impair_rule){ .src = 1, .dst = 2, .loss = 0.2, .loss_correlation = corr });
    long runs = 0, drops = 0;
    bool in_run = false;
    for (int i = 0; i < n; i++) {
        bool drop = !delivered(1, 2);
        drops += drop;
        runs += drop && !in_run;
        in_run = drop;
    }
    *rate = (double)drops / n;
    return runs ? (double)drops / (double)runs : 0.0;
}

Test(impair, correlation_makes_bursts)
{
    enum { N = 10 * N_PACKETS };
    double rate0, rate1;
    double run0 = mean_drop_run(0.0, N, &rate0);
    double run1 = mean_drop_run(0.5, N, &rate1);
    /* Independent drops: geometric runs, mean 1 / (1 - p) = 1.25. */
    cr_expect(fabs(run0 - 1.25) < 0.01, "uncorrelated run %f", run0);
    /* Markov chain at c = 0.5: runs average 1 / ((1 - p)(1 - c)) = 2.5 ... */
    cr_expect(fabs(run1 - 2.5) < 0.05, "correlated run %f", run1);
    /* ...and the long-run rate stays the configured 0.2. */
    cr_expect(fabs(rate0 - 0.2) < 0.01 && fabs(rate1 - 0.2) < 0.01, "rates %f %f", rate0, rate1);
}

typedef struct stats {
    double mean, sd, median;
    uint64_t min, max;
} stats;

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static stats delay_stats(st_impair_rule r)
{
    st_impair_clear(im);
    add(r);
    uint64_t *d = malloc(N_PACKETS * sizeof *d);
    cr_assert_not_null(d);
    double sum = 0, sq = 0;
    for (int i = 0; i < N_PACKETS; i++) {
        st_impair_verdict v = decide(1, 2);
        cr_assert_eq(v.n_copies, 1);
        d[i] = v.delay_us[0];
        sum += (double)d[i];
        sq += (double)d[i] * (double)d[i];
    }
    qsort(d, N_PACKETS, sizeof *d, cmp_u64);
    stats s = { .mean = sum / N_PACKETS, .min = d[0], .max = d[N_PACKETS - 1], .median = (double)d[N_PACKETS / 2] };
    s.sd = sqrt(sq / N_PACKETS - s.mean * s.mean);
    free(d);
    return s;
}

Test(impair, fixed_delay)
{
    stats s = delay_stats((st_impair_rule){ .src = 1, .dst = 2, .delay_us = 700 });
    cr_expect_eq(s.min, 700);
    cr_expect_eq(s.max, 700);
}

Test(impair, uniform_delay)
{
    stats s = delay_stats((st_impair_rule){ .src = 1, .dst = 2, .delay_us = 1000, .jitter_us = 200 });
    cr_expect(fabs(s.mean - 1000) < 3, "mean %f", s.mean);
    cr_expect(fabs(s.sd - 200 / sqrt(3)) < 2, "sd %f", s.sd); /* uniform: width / sqrt(12) */
    cr_expect_geq(s.min, 800);
    cr_expect_leq(s.max, 1200);
}

Test(impair, normal_delay)
{
    stats s = delay_stats(
        (st_impair_rule){ .src = 1, .dst = 2, .delay_us = 5000, .jitter_us = 500, .distribution = ST_DELAY_NORMAL });
    cr_expect(fabs(s.mean - 5000) < 8, "mean %f", s.mean);
    cr_expect(fabs(s.sd - 500) < 8, "sd %f", s.sd);
    cr_expect(fabs(s.median - 5000) < 10, "median %f", s.median);
}

Test(impair, delays_clamp_at_zero)
{
    stats s = delay_stats(
        (st_impair_rule){ .src = 1, .dst = 2, .delay_us = 100, .jitter_us = 1000, .distribution = ST_DELAY_NORMAL });
    cr_expect_eq(s.min, 0);
    cr_expect_lt(s.max, 10000, "no wrapped negative");
}

Test(impair, pareto_delay)
{
    /* Lomax from delay, mean excess = jitter, shape 1.5: scale = 250 µs. */
    const double alpha = 1.5, scale = 500 * (alpha - 1);
    st_impair_rule r = { .src = 1, .dst = 2, .delay_us = 1000, .jitter_us = 500, .distribution = ST_DELAY_PARETO };
    stats s = delay_stats(r);
    cr_expect_geq(s.min, 1000);
    cr_expect_leq(s.max, 60000000);
    double median = 1000 + scale * (pow(2, 1 / alpha) - 1);
    cr_expect(fabs(s.median - median) < 6, "median %f vs %f", s.median, median);
    cr_expect_gt(s.max, 1000 + 100 * 500, "heavy tail: max %llu", (unsigned long long)s.max);

    /* Tail: P(excess > 9 scale) = 10^-1.5. */
    rift_rng_seed(&rng, 99);
    int tail = 0;
    for (int i = 0; i < N_PACKETS; i++)
        tail += decide(1, 2).delay_us[0] > 1000 + 9 * scale;
    double p = (double)tail / N_PACKETS, want = pow(10, -alpha);
    cr_expect(fabs(p - want) < 0.003, "tail %f vs %f", p, want);
}

Test(impair, duplicate_rate)
{
    int id = add((st_impair_rule){ .src = 1, .dst = 2, .delay_us = 300, .duplicate = 0.1 });
    int dups = 0;
    for (int i = 0; i < N_PACKETS; i++) {
        st_impair_verdict v = decide(1, 2);
        cr_assert_geq(v.n_copies, 1);
        cr_assert_eq(v.delay_us[0], 300);
        if (v.n_copies == 2) {
            dups++;
            cr_assert_gt(v.delay_us[1], 300);
            cr_assert_lt(v.delay_us[1], 400);
        }
    }
    cr_expect(fabs(dups / (double)N_PACKETS - 0.1) < 0.005, "dup rate %f", dups / (double)N_PACKETS);
    cr_expect_eq(counters(id).duplicated, (uint64_t)dups);
}

Test(impair, reorder_rate_and_hold)
{
    int id = add((st_impair_rule){ .src = 1, .dst = 2, .delay_us = 50, .reorder = 0.25 });
    int held = 0;
    for (int i = 0; i < N_PACKETS; i++) {
        uint64_t d = decide(1, 2).delay_us[0];
        cr_assert(d == 50 || d == 1050, "delay %llu", (unsigned long long)d);
        held += d == 1050;
    }
    cr_expect(fabs(held / (double)N_PACKETS - 0.25) < 0.01, "reorder rate %f", held / (double)N_PACKETS);
    cr_expect_eq(counters(id).reordered, (uint64_t)held);

    st_impair_clear(im);
    add((st_impair_rule){ .src = 1, .dst = 2, .reorder = 1.0, .reorder_us = 5000 });
    cr_expect_eq(decide(1, 2).delay_us[0], 5000);
}

Test(impair, rules_compose)
{
    int a = add((st_impair_rule){ .src = 1, .dst = 2, .delay_us = 1000 });
    int b = add((st_impair_rule){ .src = ANY, .dst = 2, .delay_us = 500, .loss = 0.5, .duplicate = 1.0 });
    int c = add((st_impair_rule){ .src = ANY, .dst = ANY, .duplicate = 1.0 });
    int delivered_n = 0;
    for (int i = 0; i < 10000; i++) {
        st_impair_verdict v = decide(1, 2);
        if (v.n_copies == 0)
            continue;
        delivered_n++;
        cr_assert_eq(v.n_copies, 2, "two duplicating rules still give one copy more");
        cr_assert_eq(v.delay_us[0], 1500, "delays add");
    }
    cr_expect(abs(delivered_n - 5000) < 200, "delivered %d", delivered_n);
    cr_expect_eq(counters(a).matched, 10000);
    cr_expect_eq(counters(a).dropped, 0);
    cr_expect_eq(counters(b).matched, 10000);
    cr_expect_eq(counters(b).dropped, (uint64_t)(10000 - delivered_n), "drop counted where it happened");
    cr_expect_eq(counters(c).matched, (uint64_t)delivered_n, "a dropped packet reaches no later rule");
    cr_expect_eq(counters(c).duplicated, (uint64_t)delivered_n);
    cr_expect_eq(counters(a).delayed, 10000);

    /* A cut anywhere in the chain drops. */
    add((st_impair_rule){ .src = 1, .dst = 2, .cut = true });
    for (int i = 0; i < 100; i++)
        cr_assert_not(delivered(1, 2));
    cr_expect(delivered(3, 1));
}

Test(impair, table_ops)
{
    int a = add((st_impair_rule){ .src = 1, .dst = 2, .delay_us = 1 });
    int b = add((st_impair_rule){ .src = 2, .dst = 1, .delay_us = 2 });
    int c = add((st_impair_rule){ .src = 1, .dst = 2, .delay_us = 3 });
    int d = add((st_impair_rule){ .src = ANY, .dst = 2, .delay_us = 4 });
    cr_expect(a < b && b < c && c < d);
    cr_expect_eq(st_impair_rule_count(im), 4);

    st_impair_rule r;
    cr_assert(st_impair_get(im, b, &r, NULL));
    cr_expect_eq(r.delay_us, 2);
    cr_expect_eq(st_impair_remove(im, b), 0);
    cr_expect_eq(st_impair_remove(im, b), -ENOENT);
    cr_expect_not(st_impair_get(im, b, &r, NULL));
    cr_assert(st_impair_get(im, c, &r, NULL), "ids are stable across removals");
    cr_expect_eq(r.delay_us, 3);

    /* Wildcards compare as values: (1, 2) does not remove (ANY, 2). */
    cr_expect_eq(st_impair_remove_link(im, 1, 2), 2);
    cr_expect_eq(st_impair_remove_link(im, 1, 2), 0);
    int ids[8];
    cr_assert_eq(st_impair_list(im, ids, 8), 1);
    cr_expect_eq(ids[0], d);

    int e = add((st_impair_rule){ .src = 5, .dst = 6 });
    cr_expect_gt(e, d, "ids are not reused");
    cr_assert_eq(st_impair_list(im, ids, 1), 1, "list stops at max");
    cr_expect_eq(ids[0], d);
    st_impair_clear(im);
    cr_expect_eq(st_impair_rule_count(im), 0);
    cr_expect_eq(st_impair_list(im, ids, 8), 0);
    cr_expect_gt(add((st_impair_rule){ .src = 1, .dst = 1 }), e);
}

Test(impair, table_is_bounded)
{
    for (int i = 0; i < ST_IMPAIR_MAX_RULES; i++)
        add((st_impair_rule){ .src = (uint32_t)i, .dst = 0 });
    st_impair_rule r = { .src = 1, .dst = 2 };
    cr_expect_eq(st_impair_add(im, &r), -ENOSPC);
    cr_expect_eq(st_impair_rule_count(im), ST_IMPAIR_MAX_RULES);
}

static void expect_invalid(st_impair_rule r, const char *msg)
{
    char err[160] = "";
    cr_expect_eq(st_impair_rule_check(&r, err, sizeof err), -EINVAL, "%s", msg);
    cr_expect_str_eq(err, msg);
    cr_expect_eq(st_impair_add(im, &r), -EINVAL);
}

Test(impair, validation)
{
    st_impair_rule ok = { .src = 1, .dst = 2, .loss = 1.0, .duplicate = 0.0, .distribution = ST_DELAY_PARETO };
    cr_expect_eq(st_impair_rule_check(&ok, NULL, 0), 0);
    expect_invalid((st_impair_rule){ .loss = 1.5 }, "loss: expected a probability in [0,1], got 1.5");
    expect_invalid((st_impair_rule){ .loss_correlation = -0.1 },
                   "loss_correlation: expected a probability in [0,1], got -0.1");
    expect_invalid((st_impair_rule){ .duplicate = NAN }, "duplicate: expected a probability in [0,1], got nan");
    expect_invalid((st_impair_rule){ .reorder = INFINITY }, "reorder: expected a probability in [0,1], got inf");
    expect_invalid((st_impair_rule){ .distribution = 3 },
                   "distribution: expected uniform (0), normal (1) or pareto (2), got 3");
    expect_invalid((st_impair_rule){ .delay_us = 60000001 }, "delay_us: expected at most 60000000 us, got 60000001");
    expect_invalid((st_impair_rule){ .jitter_us = UINT64_MAX },
                   "jitter_us: expected at most 60000000 us, got 18446744073709551615");
    cr_expect_eq(st_impair_rule_count(im), 0);
}

static void run_sequence(uint64_t seed, st_impair_verdict *out, int n)
{
    st_impair *x = st_impair_new();
    cr_assert_not_null(x);
    st_impair_rule rules[] = {
        { .src = 1, .dst = 2, .loss = 0.1, .loss_correlation = 0.5, .delay_us = 1000, .jitter_us = 300,
          .distribution = ST_DELAY_NORMAL },
        { .src = ANY, .dst = 3, .duplicate = 0.2, .reorder = 0.1, .delay_us = 200, .jitter_us = 100,
          .distribution = ST_DELAY_PARETO },
        { .src = ANY, .dst = ANY, .loss = 0.05, .delay_us = 10, .jitter_us = 5 },
    };
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
        cr_assert_geq(st_impair_add(x, &rules[i]), 0);
    rift_rng r;
    rift_rng_seed(&r, seed);
    for (int i = 0; i < n; i++)
        st_impair_decide(x, (uint32_t)(i % 3) + 1, (uint32_t)(i % 4) + 1, &r, &out[i]);
    st_impair_free(x);
}

Test(impair, same_seed_same_verdicts)
{
    enum { N = 10000 };
    static st_impair_verdict a[N], b[N], c[N];
    run_sequence(7, a, N);
    run_sequence(7, b, N);
    run_sequence(8, c, N);
    cr_expect_eq(memcmp(a, b, sizeof a), 0);
    cr_expect_neq(memcmp(a, c, sizeof a), 0);
}
