/* st_impair.c — the fault model: a table of rules, one verdict per packet.
 *
 * Rules live in a fixed array sorted by id (ids only grow), so decide() walks
 * them in one order and a given rng state always yields the same verdict. Per
 * matching rule the dice are rolled in a fixed order: loss, delay, duplicate,
 * reorder — and a die is rolled only when its feature is on, so adding
 * "duplicate 0" to a rule does not shift anyone's numbers. */
#include <stddef.h> /* st_impair.h uses size_t without including it */

#include "st_impair.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

#define ST_DELAY_MAX_US 60000000.0  /* 60 s: anything longer is a cut, not a delay */
#define ST_REORDER_US_DEFAULT 1000u
#define ST_DUP_GAP_US 1u            /* the copy trails the original */
#define ST_PARETO_ALPHA 1.5         /* < 2: infinite variance, a real heavy tail */
#define ST_TWO_PI 6.283185307179586

typedef struct st_slot {
    int id;
    st_impair_rule rule;
    st_impair_counters c;
    bool lost_last; /* correlated loss: was the previous packet dropped */
} st_slot;

struct st_impair {
    int n;
    int next_id;
    st_slot slot[ST_IMPAIR_MAX_RULES]; /* [0, n) in ascending id order */
};

st_impair *st_impair_new(void)
{
    return calloc(1, sizeof(st_impair));
}

void st_impair_free(st_impair *im)
{
    free(im);
}

/* ------------------------------------------------------------------ rules */

static int check_prob(const char *field, double p, char *err, size_t errlen)
{
    if (p >= 0.0 && p <= 1.0) /* false for NaN too */
        return 0;
    if (err && errlen)
        snprintf(err, errlen, "%s: expected a probability in [0,1], got %g", field, p);
    return -EINVAL;
}

static int check_us(const char *field, uint64_t us, char *err, size_t errlen)
{
    if ((double)us <= ST_DELAY_MAX_US)
        return 0;
    if (err && errlen)
        snprintf(err, errlen, "%s: expected at most %.0f us, got %llu", field, ST_DELAY_MAX_US,
                 (unsigned long long)us);
    return -EINVAL;
}

int st_impair_rule_check(const st_impair_rule *r, char *err, size_t errlen)
{
    int rc = check_prob("loss", r->loss, err, errlen);
    if (!rc)
        rc = check_prob("loss_correlation", r->loss_correlation, err, errlen);
    if (!rc)
        rc = check_prob("duplicate", r->duplicate, err, errlen);
    if (!rc)
        rc = check_prob("reorder", r->reorder, err, errlen);
    if (!rc)
        rc = check_us("delay_us", r->delay_us, err, errlen);
    if (!rc)
        rc = check_us("jitter_us", r->jitter_us, err, errlen);
    if (!rc)
        rc = check_us("reorder_us", r->reorder_us, err, errlen);
    if (!rc && r->distribution > ST_DELAY_PARETO) {
        if (err && errlen)
            snprintf(err, errlen, "distribution: expected uniform (0), normal (1) or pareto (2), got %u",
                     r->distribution);
        rc = -EINVAL;
    }
    return rc;
}

static int find(const st_impair *im, int id)
{
    for (int i = 0; i < im->n; i++)
        if (im->slot[i].id == id)
            return i;
    return -1;
}

int st_impair_add(st_impair *im, const st_impair_rule *r)
{
    if (st_impair_rule_check(r, NULL, 0))
        return -EINVAL;
    if (im->n == ST_IMPAIR_MAX_RULES || im->next_id == INT_MAX)
        return -ENOSPC;
    st_slot *s = &im->slot[im->n++];
    *s = (st_slot){ .id = im->next_id++, .rule = *r };
    return s->id;
}

static void remove_at(st_impair *im, int i)
{
    assert(i >= 0 && i < im->n);
    memmove(&im->slot[i], &im->slot[i + 1], (size_t)(im->n - i - 1) * sizeof im->slot[0]);
    im->n--;
}

int st_impair_remove(st_impair *im, int id)
{
    int i = find(im, id);
    if (i < 0)
        return -ENOENT;
    remove_at(im, i);
    return 0;
}

int st_impair_remove_link(st_impair *im, uint32_t src, uint32_t dst)
{
    int removed = 0;
    for (int i = im->n - 1; i >= 0; i--) {
        if (im->slot[i].rule.src == src && im->slot[i].rule.dst == dst) {
            remove_at(im, i);
            removed++;
        }
    }
    return removed;
}

void st_impair_clear(st_impair *im)
{
    im->n = 0; /* ids keep growing: a stale id never names a new rule */
}

int st_impair_rule_count(const st_impair *im)
{
    return im->n;
}

bool st_impair_get(const st_impair *im, int id, st_impair_rule *rule, st_impair_counters *c)
{
    int i = find(im, id);
    if (i < 0)
        return false;
    if (rule)
        *rule = im->slot[i].rule;
    if (c)
        *c = im->slot[i].c;
    return true;
}

int st_impair_list(const st_impair *im, int *ids, int max)
{
    int n = im->n < max ? im->n : max;
    for (int i = 0; i < n; i++)
        ids[i] = im->slot[i].id;
    return n < 0 ? 0 : n;
}

/* ------------------------------------------------------------------ verdicts */

static bool matches(const st_impair_rule *r, uint32_t src, uint32_t dst)
{
    return (r->src == ST_IMPAIR_ANY || r->src == src) && (r->dst == ST_IMPAIR_ANY || r->dst == dst);
}

bool st_impair_is_cut(const st_impair *im, uint32_t src, uint32_t dst)
{
    for (int i = 0; i < im->n; i++)
        if (im->slot[i].rule.cut && matches(&im->slot[i].rule, src, dst))
            return true;
    return false;
}

/* Correlated loss as a two-state Markov chain: P(drop | dropped) = p + c(1-p),
 * P(drop | delivered) = p(1-c). The long-run rate stays p (netem's correlated
 * draw pulls it toward 0.5 instead, so users got less loss than they asked for)
 * and bursts average 1/((1-p)(1-c)) packets. */
static bool roll_loss(st_slot *s, rift_rng *rng)
{
    double p = s->rule.loss, c = s->rule.loss_correlation;
    double q = s->lost_last ? p + c * (1.0 - p) : p * (1.0 - c);
    s->lost_last = rift_rng_double(rng) < q;
    return s->lost_last;
}

static double sample_normal(rift_rng *rng)
{
    /* Box–Muller; u1 in (0, 1] keeps the log finite. */
    double u1 = 1.0 - rift_rng_double(rng);
    double u2 = rift_rng_double(rng);
    return sqrt(-2.0 * log(u1)) * cos(ST_TWO_PI * u2);
}

/* One rule's delay in µs, clamped to [0, 60 s]. Pareto (Lomax) starts at delay
 * and has mean delay + jitter with shape ST_PARETO_ALPHA. */
static uint64_t sample_delay(const st_impair_rule *r, rift_rng *rng)
{
    double d = (double)r->delay_us, j = (double)r->jitter_us;
    if (j > 0.0) {
        switch (r->distribution) {
        case ST_DELAY_UNIFORM: d += (2.0 * rift_rng_double(rng) - 1.0) * j; break;
        case ST_DELAY_NORMAL: d += j * sample_normal(rng); break;
        case ST_DELAY_PARETO: {
            double u = 1.0 - rift_rng_double(rng); /* (0, 1] */
            d += j * (ST_PARETO_ALPHA - 1.0) * (pow(u, -1.0 / ST_PARETO_ALPHA) - 1.0);
            break;
        }
        }
    }
    if (!(d > 0.0))
        return 0;
    return d >= ST_DELAY_MAX_US ? (uint64_t)ST_DELAY_MAX_US : (uint64_t)(d + 0.5);
}

static bool roll(rift_rng *rng, double p)
{
    return p > 0.0 && rift_rng_double(rng) < p;
}

void st_impair_decide(st_impair *im, uint32_t src, uint32_t dst, rift_rng *rng,
                      st_impair_verdict *out)
{
    *out = (st_impair_verdict){ .n_copies = 1 };
    if (im->n == 0)
        return;
    uint64_t delay = 0;
    bool dup = false;
    for (int i = 0; i < im->n; i++) {
        st_slot *s = &im->slot[i];
        const st_impair_rule *r = &s->rule;
        if (!matches(r, src, dst))
            continue;
        s->c.matched++;
        /* A dropped packet is gone: later rules neither see nor count it. */
        if (r->cut || (r->loss > 0.0 && roll_loss(s, rng))) {
            s->c.dropped++;
            out->n_copies = 0;
            return;
        }
        uint64_t d = sample_delay(r, rng);
        s->c.delayed += d > 0;
        if (roll(rng, r->duplicate)) {
            dup = true;
            s->c.duplicated++;
        }
        if (roll(rng, r->reorder)) {
            d += r->reorder_us ? r->reorder_us : ST_REORDER_US_DEFAULT;
            s->c.reordered++;
        }
        delay += d;
    }
    out->delay_us[0] = delay;
    if (dup) {
        static_assert(ST_IMPAIR_MAX_COPIES >= 2, "duplicates need two copies");
        out->n_copies = 2;
        out->delay_us[1] = delay + ST_DUP_GAP_US;
    }
}
