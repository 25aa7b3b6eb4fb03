/* rift_bench_check.c — `rift-bench check`: how fast the linearizability
 * checker is (DESIGN.md "Performance targets": histories per second and the
 * largest history checked within 10 s; issue 3: a 100,000-op history of 20
 * clients over 1,000 keys end to end, parsing included, in under 1 s).
 *
 * Histories come from ch_history_generate: a simulated linearizable store
 * with random concurrency (clients run ops back to back; each op takes effect
 * at a random instant inside its interval; 2% of completions are info). No
 * check may say FAIL ("unexpected_verdicts" counts them); UNKNOWN means a
 * budget ran out.
 * Generation is not timed.
 *
 * Figures, nested by load ("c5", "c20": concurrent clients):
 *   histories_per_s, ops_per_s    1000-op histories over 10 keys, search only
 *   largest_ops_within_10s        the largest history (10 keys) whose check
 *                                 ends within the limit, doubling from 10k
 *   largest_ops_within_10s_1key   the same with every op on one key (no
 *                                 P-compositional split: the search's worst case)
 *   largest*_stopped_by           why the next size failed: "time" (the limit),
 *                                 "memo" (the memo-entry cap: UNKNOWN before
 *                                 the limit), "cap" (--max-ops), "fail" (a bug)
 *   e2e_*                         the target, end to end: the history
 *                                 is written as history.jsonl, then read back
 *                                 (e2e_parse_s: read, JSON lines, pairing) and
 *                                 checked (e2e_search_s: ch_lin_check); the
 *                                 *_cpu_s twins are CPU time, steady on a
 *                                 shared machine where wall time is not
 *
 * Arguments: [--quick] (short runs, for CI) [--seconds S] (the limit for the
 * largest history, default 10) [--max-ops N] (stop growing there)
 * [--e2e-ops N] (size of the end-to-end history, default 100000). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench/rift_bench.h"
#include "chaos/ch_history.h"
#include "chaos/ch_lin.h"

#define BC_KEYS 10
#define BC_HISTORY_OPS 1000
#define BC_DISTINCT 64           /* distinct 1000-op histories, cycled */
#define BC_START_OPS 10000u      /* first size when growing */
#define BC_E2E_OPS 100000u       /* the target: 100k ops ... */
#define BC_E2E_CLIENTS 20u       /* ... of 20 clients ... */
#define BC_E2E_KEYS 1000u        /* ... over 1000 keys */

static const uint32_t bc_loads[] = {5, 20}; /* concurrent clients */

typedef struct bc_opts {
    bool quick;
    double seconds;      /* limit for the largest-history search */
    uint32_t max_ops;    /* cap on the growth (memory: ~300 B per op) */
    double rate_s;       /* how long to measure histories per second */
    uint32_t e2e_ops;    /* end-to-end history size */
} bc_opts;

typedef struct bc_largest {
    uint32_t ops;        /* the largest that passed, 0 none */
    double check_s;      /* its check time */
    bool capped;         /* stopped at max_ops, not at the limit */
    const char *stop;    /* what stopped the next size: "time", "memo" (entries cap), "fail", "cap" */
} bc_largest;

static double bc_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* CPU time of this process: on a shared machine wall time also counts the
 * neighbours' load; CPU time is the checker's own cost. */
static double bc_cpu(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int bc_parse(int argc, char **argv, bc_opts *o)
{
    *o = (bc_opts){.seconds = 10.0, .max_ops = 1u << 22, .rate_s = 3.0, .e2e_ops = BC_E2E_OPS};
    for (int i = 0; i < argc; i++) {
        char *end = NULL;
        if (!strcmp(argv[i], "--quick")) {
            o->quick = true;
            o->seconds = 1.0;
            o->max_ops = 1u << 17;
            o->rate_s = 0.5;
        } else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
            o->seconds = strtod(argv[++i], &end);
            if (*end || !(o->seconds > 0))
                return -EINVAL;
        } else if (!strcmp(argv[i], "--max-ops") && i + 1 < argc) {
            unsigned long v = strtoul(argv[++i], &end, 10);
            if (*end || v < BC_START_OPS || v > CH_HISTORY_OPS_MAX / 2)
                return -EINVAL;
            o->max_ops = (uint32_t)v;
        } else if (!strcmp(argv[i], "--e2e-ops") && i + 1 < argc) {
            unsigned long v = strtoul(argv[++i], &end, 10);
            if (*end || v < 1000 || v > CH_HISTORY_OPS_MAX / 2)
                return -EINVAL;
            o->e2e_ops = (uint32_t)v;
        } else if (strcmp(argv[i], "--json") != 0) {
            fprintf(stderr, "rift-bench check: unknown argument %s\n"
                    "usage: rift-bench check [--quick] [--seconds S] [--max-ops N] [--e2e-ops N]\n", argv[i]);
            return -EINVAL;
        }
    }
    return 0;
}

static ch_history *bc_generate(uint64_t seed, uint32_t ops, uint32_t clients, uint32_t keys, int *rc)
{
    ch_gen_opts g;
    ch_gen_opts_default(&g);
    g.seed = seed;
    g.n_ops = ops;
    g.n_keys = keys;
    g.n_processes = clients;
    ch_history *h = ch_history_new();
    *rc = h ? ch_history_generate(h, &g) : -ENOMEM;
    if (*rc < 0) {
        ch_history_free(h);
        return NULL;
    }
    return h;
}

/* Check h; the verdict (>= 0) or a negative errno. UNKNOWN is a budget
 * running out (time, or memo entries); FAIL would be a checker bug, as every
 * generated history is linearizable. */
static int bc_check(const ch_history *h, double limit_s, double *elapsed_s)
{
    ch_lin_result r;
    double t0 = bc_now();
    int rc = ch_lin_check(h, limit_s, &r);
    *elapsed_s = bc_now() - t0;
    if (rc == 0)
        rc = (int)r.verdict;
    ch_lin_result_free(&r);
    return rc;
}

/* Checks of 1000-op histories, cycling over BC_DISTINCT of them. */
static int bc_rate(const bc_opts *o, uint32_t clients, json_t *fig, uint64_t *unexpected)
{
    ch_history *hs[BC_DISTINCT] = {0};
    int rc = 0;
    for (int i = 0; i < BC_DISTINCT && rc == 0; i++)
        hs[i] = bc_generate((uint64_t)i + 1, BC_HISTORY_OPS, clients, BC_KEYS, &rc);
    uint64_t n = 0;
    double t0 = bc_now(), busy = 0;
    while (rc == 0 && (bc_now() - t0 < o->rate_s || n < BC_DISTINCT)) {
        double dt;
        int v = bc_check(hs[n % BC_DISTINCT], 10.0, &dt);
        rc = v < 0 ? v : 0;
        *unexpected += v == CH_LIN_FAIL;
        busy += dt;
        n++;
    }
    if (rc == 0) {
        json_object_set_new(fig, "histories_per_s", json_real((double)n / busy));
        json_object_set_new(fig, "ops_per_s", json_real((double)n * BC_HISTORY_OPS / busy));
        json_object_set_new(fig, "history_ops", json_integer(BC_HISTORY_OPS));
        json_object_set_new(fig, "keys", json_integer(BC_KEYS));
    }
    for (int i = 0; i < BC_DISTINCT; i++)
        ch_history_free(hs[i]);
    return rc;
}

/* Double the size until a check no longer passes within the limit. */
static int bc_largest_for(const bc_opts *o, uint32_t clients, uint32_t keys, bc_largest *out, uint64_t *unexpected)
{
    *out = (bc_largest){0};
    for (uint32_t ops = BC_START_OPS;; ops *= 2) {
        if (ops > o->max_ops) {
            out->capped = true;
            out->stop = "cap";
            return 0;
        }
        int rc;
        ch_history *h = bc_generate(ops, ops, clients, keys, &rc);
        if (!h)
            return rc;
        double dt;
        int v = bc_check(h, o->seconds, &dt);
        ch_history_free(h);
        if (v < 0)
            return v;
        if (v != CH_LIN_OK || dt > o->seconds) {
            /* A budget running out (UNKNOWN) is the expected way to stop; a FAIL is not. */
            *unexpected += v == CH_LIN_FAIL;
            out->stop = v == CH_LIN_FAIL ? "fail" : dt > o->seconds * 0.9 ? "time" : "memo";
            return 0;
        }
        out->ops = ops;
        out->check_s = dt;
        if (ops > UINT32_MAX / 2)
            return 0;
    }
}

static void bc_put_largest(json_t *fig, const char *suffix, const bc_largest *l, double seconds)
{
    char name[96];
    int secs = (int)(seconds + 0.5);
    snprintf(name, sizeof name, "largest_ops_within_%ds%s", secs, suffix);
    json_object_set_new(fig, name, json_integer(l->ops));
    snprintf(name, sizeof name, "largest_check%s_s", suffix);
    json_object_set_new(fig, name, json_real(l->check_s));
    snprintf(name, sizeof name, "largest%s_capped", suffix);
    json_object_set_new(fig, name, json_boolean(l->capped));
    snprintf(name, sizeof name, "largest%s_stopped_by", suffix);
    json_object_set_new(fig, name, json_string(l->stop ? l->stop : "none"));
}

/* The end-to-end target: write the history as a file, then time
 * reading it back (what `rift check` does first) apart from the search. */
static int bc_e2e(const bc_opts *o, json_t *fig, uint64_t *unexpected)
{
    int rc;
    ch_history *h = bc_generate(7, o->e2e_ops, BC_E2E_CLIENTS, BC_E2E_KEYS, &rc);
    if (!h)
        return rc;
    char path[] = "/tmp/rift-bench-check-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) {
        ch_history_free(h);
        return -errno;
    }
    close(fd);
    rc = ch_history_write_file(path, h);
    size_t lines = h->n;
    ch_history_free(h);
    h = NULL;
    ch_error err = {{0}};
    double t0 = bc_now(), c0 = bc_cpu();
    if (rc == 0 && (rc = ch_history_read_file(path, &h, &err)) < 0)
        fprintf(stderr, "rift-bench check: %s\n", err.msg);
    double t1 = bc_now(), c1 = bc_cpu();
    unlink(path);
    if (rc < 0)
        return rc;
    ch_lin_result r;
    int ok = ch_lin_check(h, o->seconds, &r);
    double t2 = bc_now(), c2 = bc_cpu();
    if (ok == 0) {
        *unexpected += r.verdict == CH_LIN_FAIL;
        json_object_set_new(fig, "e2e_ops", json_integer(o->e2e_ops));
        json_object_set_new(fig, "e2e_lines", json_integer((json_int_t)lines));
        json_object_set_new(fig, "e2e_keys", json_integer(BC_E2E_KEYS));
        json_object_set_new(fig, "e2e_verdict", json_string(ch_lin_verdict_name(r.verdict)));
        json_object_set_new(fig, "e2e_parse_s", json_real(t1 - t0));
        json_object_set_new(fig, "e2e_search_s", json_real(t2 - t1));
        json_object_set_new(fig, "e2e_total_s", json_real(t2 - t0));
        json_object_set_new(fig, "e2e_parse_cpu_s", json_real(c1 - c0));
        json_object_set_new(fig, "e2e_search_cpu_s", json_real(c2 - c1));
        json_object_set_new(fig, "e2e_total_cpu_s", json_real(c2 - c0));
        json_object_set_new(fig, "e2e_ops_per_s", json_real((double)o->e2e_ops / (t2 - t0)));
        json_object_set_new(fig, "e2e_parse_lines_per_s", json_real((double)lines / (t1 - t0)));
    }
    ch_lin_result_free(&r);
    ch_history_free(h);
    return ok;
}

/* One load: rate, largest over 10 keys, largest on one key. */
static int bc_load(const bc_opts *o, uint32_t clients, json_t *fig, uint64_t *unexpected)
{
    bc_largest many, one;
    int rc = bc_rate(o, clients, fig, unexpected);
    if (rc == 0)
        rc = bc_largest_for(o, clients, BC_KEYS, &many, unexpected);
    if (rc == 0)
        rc = bc_largest_for(o, clients, 1, &one, unexpected);
    if (rc < 0)
        return rc;
    bc_put_largest(fig, "", &many, o->seconds);
    bc_put_largest(fig, "_1key", &one, o->seconds);
    return 0;
}

int rift_bench_check(int argc, char **argv, json_t *out)
{
    bc_opts o;
    int rc = bc_parse(argc, argv, &o);
    if (rc < 0)
        return rc;
    json_t *sys = json_object_get(out, "rift");
    if (!sys) {
        sys = json_object();
        if (!sys || json_object_set_new(out, "rift", sys) < 0)
            return -ENOMEM;
    }
    uint64_t unexpected = 0;
    for (size_t i = 0; i < sizeof bc_loads / sizeof bc_loads[0] && rc == 0; i++) {
        char name[16];
        snprintf(name, sizeof name, "c%u", bc_loads[i]);
        json_t *fig = json_object();
        if (!fig || json_object_set_new(sys, name, fig) < 0)
            return -ENOMEM;
        rc = bc_load(&o, bc_loads[i], fig, &unexpected);
        if (rc == 0 && bc_loads[i] == BC_E2E_CLIENTS)
            rc = bc_e2e(&o, fig, &unexpected);
    }
    if (rc < 0)
        return rc;
    json_object_set_new(sys, "unexpected_verdicts", json_integer((json_int_t)unexpected));
    return 0;
}
