/* st_impair.h — the one fault model, shared by the real dataplane and the simulator.
 *
 * Decides, per packet on a directed link (src -> dst), whether it is dropped,
 * delayed (with jitter and a distribution), duplicated or reordered. Rules are
 * added and removed at runtime; several rules may match one link and compose
 * (any drop drops; delays add; each rule rolls its own dice). Every decision uses
 * the caller's PRNG and clock only, so the simulator replays it per seed and
 * rift-stackd runs the very same code on its RX/TX path.
 *
 * Addresses are opaque 32-bit values: node ids in the simulator, IPv4 addresses
 * in rift-stackd. ST_IMPAIR_ANY matches every address. */
#ifndef ST_IMPAIR_H
#define ST_IMPAIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/rift_rng.h"

#define ST_IMPAIR_ANY 0xffffffffu
#define ST_IMPAIR_MAX_RULES 256
#define ST_IMPAIR_MAX_COPIES 2

typedef enum st_delay_dist {
    ST_DELAY_UNIFORM = 0,  /* delay + uniform[-jitter, +jitter] */
    ST_DELAY_NORMAL,       /* mean delay, standard deviation jitter */
    ST_DELAY_PARETO,       /* heavy tail: scale delay, jitter sets the tail */
} st_delay_dist;

typedef struct st_impair_rule {
    uint32_t src, dst;       /* directed link; ST_IMPAIR_ANY wildcards */
    bool cut;                /* drop everything (partition) */
    double loss;             /* drop probability, 0..1 */
    double loss_correlation; /* 0..1: burstiness; the long-run rate stays `loss` (Markov chain) */
    uint64_t delay_us;
    uint64_t jitter_us;
    uint8_t distribution;    /* st_delay_dist */
    double duplicate;        /* probability of one extra copy */
    double reorder;          /* probability a packet is held back reorder_us */
    uint64_t reorder_us;     /* 0 = 1000 µs */
} st_impair_rule;

typedef struct st_impair_counters {
    uint64_t matched, dropped, delayed, duplicated, reordered;
} st_impair_counters;

/* What to do with one packet: n_copies == 0 means drop; otherwise deliver each
 * copy after delay_us[i] (0 = now). */
typedef struct st_impair_verdict {
    uint8_t n_copies;
    uint64_t delay_us[ST_IMPAIR_MAX_COPIES];
} st_impair_verdict;

typedef struct st_impair st_impair;

st_impair *st_impair_new(void);
void st_impair_free(st_impair *im);

/* Validate r (probabilities in [0,1], finite numbers, known distribution).
 * Returns 0 or -EINVAL and, when err is given, a message naming the field. */
int st_impair_rule_check(const st_impair_rule *r, char *err, size_t errlen);

/* Install a rule; returns its id (>= 0), -EINVAL for a bad rule, -ENOSPC when full. */
int st_impair_add(st_impair *im, const st_impair_rule *r);
/* Remove rule id; -ENOENT if absent. */
int st_impair_remove(st_impair *im, int id);
/* Remove every rule matching exactly this (src, dst) pair (wildcards compare as
 * values), returning how many were removed. */
int st_impair_remove_link(st_impair *im, uint32_t src, uint32_t dst);
void st_impair_clear(st_impair *im);
int st_impair_rule_count(const st_impair *im);

/* Rule and counters by id; false if absent. */
bool st_impair_get(const st_impair *im, int id, st_impair_rule *rule, st_impair_counters *c);
/* Ids of installed rules, ascending; returns the count (at most max). */
int st_impair_list(const st_impair *im, int *ids, int max);

/* Is the link fully cut (some matching rule has cut)? No dice rolled. */
bool st_impair_is_cut(const st_impair *im, uint32_t src, uint32_t dst);

/* Decide one packet's fate. With no rules installed this is a branch and a store. */
void st_impair_decide(st_impair *im, uint32_t src, uint32_t dst, rift_rng *rng,
                      st_impair_verdict *out);

#endif
