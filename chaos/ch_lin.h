/* ch_lin.h — linearizability checker for the KV history.
 *
 * Each key is an independent register (P-compositionality): get returns the
 * current value (null = absent); put sets; del removes; append appends (absent
 * = ""); cas(expected|null, new) succeeds iff current == expected. Per key the
 * checker runs the Wing & Gong / Lowe search with memoization of (linearized
 * set, state), as Knossos and Porcupine do:
 *   - real time: A precedes B iff A completed strictly before B was invoked
 *     (by the "time" fields; equal times count as concurrent);
 *   - `fail` ops had no effect and are dropped;
 *   - `info` ops (and open invokes) may take effect at any point after their
 *     invocation, or never; their result is unknown, so an info get is dropped;
 *     an info write whose value no read or cas saw (with appends: that no
 *     observed value contains) is dropped too: it can explain nothing.
 * The memo stores a 96-bit Zobrist fingerprint of the linearized set, not the
 * set itself (as TLC stores state fingerprints): memory per entry is constant,
 * and a false "seen" needs a 2^-96-scale collision. String states are interned
 * as (length, two 61-bit polynomial hashes), so an append is O(1).
 *
 * Exact reductions (each keeps the verdict; tests compare against an
 * exhaustive reference): an info write that a completed read can only have
 * seen through it is treated as completed at that read's return; info ops
 * with identical effects are taken in invoke order (k + 1 counts, not 2^k
 * subsets); a read that fits the current state is linearized at once, never
 * branched on; and a lookahead prunes any step after which the earliest
 * pending completed read/cas could no longer see its value (not equal, not a
 * prefix with appends to come) unless a reset that could produce it remains.
 * Still exponential at heart: many concurrent appends that no read observes
 * before a put overwrites them can exhaust the budget (UNKNOWN).
 *
 * Before searching, a fast path looks for the commonest anomaly: a completed
 * read of a value whose every possible writer was overwritten by a write that
 * completed before the read began (a stale read, or a value never written).
 *
 * Keys are checked smallest first; the check stops at the first failing key
 * (the verdict is final) and spends what is left of the budget shrinking it.
 *
 * Budgets: a wall-clock limit (checked every few thousand steps) and a cap on
 * memo entries per key; exhausting either gives UNKNOWN, never a crash.
 *
 * On FAIL the checker shrinks the failing key's ops (within what is left of
 * the budget) by removing chunks, then single ops, while the rest still fails.
 * It never removes an op that could have produced a value that a kept op
 * observed, so the subset is a real witness: if it cannot be linearized,
 * neither can the history. */
#ifndef CH_LIN_H
#define CH_LIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ch_history.h"

typedef enum ch_lin_verdict { CH_LIN_OK = 0, CH_LIN_FAIL, CH_LIN_UNKNOWN } ch_lin_verdict;

/* Memo entries per key (16 bytes each at a load factor of 1/2 or more). */
#define CH_LIN_MEMO_MAX_DEFAULT (1u << 22)

typedef struct ch_lin_opts {
    double time_limit_s;  /* <= 0: no limit */
    size_t memo_max;      /* memo entries per key; 0 = CH_LIN_MEMO_MAX_DEFAULT */
    bool no_shrink;       /* report the failing key's whole op set */
    bool no_fast_path;    /* search even when a stale read is plain (tests, benches) */
} ch_lin_opts;

typedef struct ch_lin_key_stats {
    char *key;             /* owned */
    size_t ops;            /* operations (invokes) on the key */
    size_t ops_checked;    /* after dropping fail ops, info gets, unobserved info writes */
    bool checked;          /* false: skipped (after a failure, or out of time) */
    ch_lin_verdict verdict; /* UNKNOWN when not checked */
    uint64_t steps;        /* search steps of the main check */
    size_t memo_entries;
    double elapsed_s;
} ch_lin_key_stats;

typedef struct ch_lin_result {
    ch_lin_verdict verdict;
    char reason[512];         /* one line for humans: why FAIL or UNKNOWN */
    ch_lin_key_stats *keys;   /* in order of first appearance */
    size_t n_keys;
    /* FAIL only: the key and a non-linearizable subset of its operations, as
     * ascending indices into h->ops (invokes and their completions). */
    char *fail_key;
    size_t *fail_ops;
    size_t n_fail_ops;
    size_t fail_n_operations; /* operations (pairs) in that subset */
    bool fail_minimal;        /* shrinking finished: no single op can go */
    uint64_t steps;           /* all search steps, shrinking included */
    double elapsed_s;
    bool opts_no_shrink;      /* internal: copied from the options */
    bool opts_no_fast_path;
} ch_lin_result;

/* Check h. Returns 0 with out->verdict set, -EINVAL for a malformed history
 * (out->reason says where), or -ENOMEM. Release out with ch_lin_result_free
 * whatever the return value. */
int ch_lin_check(const ch_history *h, double time_limit_s, ch_lin_result *out);
int ch_lin_check_opts(const ch_history *h, const ch_lin_opts *o, ch_lin_result *out);
void ch_lin_result_free(ch_lin_result *r);

const char *ch_lin_verdict_name(ch_lin_verdict v); /* "ok", "fail", "unknown" */

/* The definition, executed: tries every real-time-respecting order of the
 * completed ops plus every subset of the info ops, over all keys at once (no
 * decomposition, no pruning, no memo). A reference for tests and fuzzing:
 * -E2BIG past CH_LIN_EXHAUSTIVE_MAX operations (fail ops and info gets not
 * counted), -EINVAL if malformed, -ENOMEM. */
#define CH_LIN_EXHAUSTIVE_MAX 9
int ch_lin_check_exhaustive(const ch_history *h, ch_lin_verdict *out);

#endif
