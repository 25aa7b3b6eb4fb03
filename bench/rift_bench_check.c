/* rift_bench_check.c — `rift-bench check`: how fast the linearizability
 * checker is (DESIGN.md "Performance targets": histories per second and the
 * largest history checked within 10 s).
 *
 * Histories come from ch_history_generate: a simulated linearizable store
 * with random concurrency (clients run ops back to back; each op takes effect
 * at a random instant inside its interval; 2% of completions are info). Every
 * check must say OK; anything else is counted in "unexpected_verdicts".
 * Generation is not timed, only ch_lin_check.
 *
 * Arguments: [--quick] (short runs, for CI) [--seconds S] (the limit for the
 * largest history, default 10) [--max-ops N] (stop growing there). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/rift_bench.h"
#include "chaos/ch_history.h"
#include "chaos/ch_lin.h"

#define BC_CLIENTS 5
#define BC_KEYS 10
#define BC_HISTORY_OPS 1000
#define BC_DISTINCT 64           /* distinct 1000-op histories, cycled */
#define BC_START_OPS 10000u      /* first size when growing */

typedef struct bc_opts {
    bool quick;
    double seconds;      /* limit for the largest-history search */
    uint32_t max_ops;    /* cap on the growth (memory: ~300 B per op) */
    double rate_s;       /* how long to measure histories per second */
} bc_opts;

typedef struct bc_largest {
    uint32_t ops;        /* the largest that passed, 0 none */
    double check_s;      /* its check time */
    bool capped;         /* stopped at max_ops, not at the limit */
} bc_largest;

static double bc_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int bc_parse(int argc, char **argv, bc_opts *o)
{
    *o = (bc_opts){.seconds = 10.0, .max_ops = 1u << 22, .rate_s = 3.0};
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
        } else if (strcmp(argv[i], "--json") != 0) {
            fprintf(stderr, "rift-bench check: unknown argument %s\n"
                    "usage: rift-bench check [--quick] [--seconds S] [--max-ops N]\n", argv[i]);
            return -EINVAL;
        }
    }
    return 0;
}

static ch_history *bc_generate(uint64_t seed, uint32_t ops, uint32_t keys, int *rc)
{
    ch_gen_opts g;
    ch_gen_opts_default(&g);
    g.seed = seed;
    g.n_ops = ops;
    g.n_keys = keys;
    g.n_processes = BC_CLIENTS;
    ch_history *h = ch_history_new();
    *rc = h ? ch_history_generate(h, &g) : -ENOMEM;
    if (*rc < 0) {
        ch_history_free(h);
        return NULL;
    }
    return h;
}

/* Check h; 1 = OK, 0 = some other verdict, negative = error. */
static int bc_check(const ch_history *h, double limit_s, double *elapsed_s)
{
    ch_lin_result r;
    double t0 = bc_now();
    int rc = ch_lin_check(h, limit_s, &r);
    *elapsed_s = bc_now() - t0;
    if (rc == 0)
        rc = r.verdict == CH_LIN_OK;
    ch_lin_result_free(&r);
    return rc;
}

/* Checks of 1000-op histories, cycling over BC_DISTINCT of them. */
static int bc_rate(const bc_opts *o, json_t *fig, uint64_t *unexpected)
{
    ch_history *hs[BC_DISTINCT] = {0};
    int rc = 0;
    for (int i = 0; i < BC_DISTINCT && rc == 0; i++)
        hs[i] = bc_generate((uint64_t)i + 1, BC_HISTORY_OPS, BC_KEYS, &rc);
    uint64_t n = 0;
    double t0 = bc_now(), busy = 0;
    while (rc == 0 && (bc_now() - t0 < o->rate_s || n < BC_DISTINCT)) {
        double dt;
        int ok = bc_check(hs[n % BC_DISTINCT], 10.0, &dt);
        rc = ok < 0 ? ok : 0;
        *unexpected += ok == 0;
        busy += dt;
        n++;
    }
    if (rc == 0) {
        json_object_set_new(fig, "histories_per_s", json_real((double)n / busy));
        json_object_set_new(fig, "ops_per_s", json_real((double)n * BC_HISTORY_OPS / busy));
        json_object_set_new(fig, "history_ops", json_integer(BC_HISTORY_OPS));
        json_object_set_new(fig, "clients", json_integer(BC_CLIENTS));
        json_object_set_new(fig, "keys", json_integer(BC_KEYS));
    }
    for (int i = 0; i < BC_DISTINCT; i++)
        ch_history_free(hs[i]);
    return rc;
}

/* Double the size until a check no longer passes within the limit. */
static int bc_largest_for(const bc_opts *o, uint32_t keys, bc_largest *out, uint64_t *unexpected)
{
    *out = (bc_largest){0};
    for (uint32_t ops = BC_START_OPS;; ops *= 2) {
        if (ops > o->max_ops) {
            out->capped = true;
            return 0;
        }
        int rc;
        ch_history *h = bc_generate(ops, ops, keys, &rc);
        if (!h)
            return rc;
        double dt;
        int ok = bc_check(h, o->seconds, &dt);
        ch_history_free(h);
        if (ok < 0)
            return ok;
        if (!ok || dt > o->seconds) {
            /* Past the limit (UNKNOWN) is the expected way to stop; a FAIL is not. */
            *unexpected += !ok && dt < o->seconds;
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
}

int rift_bench_check(int argc, char **argv, json_t *out)
{
    bc_opts o;
    int rc = bc_parse(argc, argv, &o);
    if (rc < 0)
        return rc;
    json_t *fig = json_object_get(out, "rift");
    if (!fig) {
        fig = json_object();
        if (!fig || json_object_set_new(out, "rift", fig) < 0)
            return -ENOMEM;
    }
    uint64_t unexpected = 0;
    bc_largest many, one;
    rc = bc_rate(&o, fig, &unexpected);
    if (rc == 0)
        rc = bc_largest_for(&o, BC_KEYS, &many, &unexpected);
    if (rc == 0)
        rc = bc_largest_for(&o, 1, &one, &unexpected);
    if (rc < 0)
        return rc;
    bc_put_largest(fig, "", &many, o.seconds);
    bc_put_largest(fig, "_1key", &one, o.seconds);
    json_object_set_new(fig, "unexpected_verdicts", json_integer((json_int_t)unexpected));
    return 0;
}
