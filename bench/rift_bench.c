/* rift_bench.c — rift-bench: benchmarks that print one JSON object as their last line.
 *
 *   rift-bench sim|check [args] [--json]
 *
 * This file holds main (dispatch, JSON output) and the sim benchmark; the
 * others live in rift_bench_*.c behind rift_bench.h.
 *
 * sim: the deterministic simulator running the real replica code, 60 s of
 * virtual time with an open-loop workload of 1000 ops/s, for 3 and 5 replicas.
 * Figures: sim_s_per_wall_s (how much faster than real time), msgs_per_s
 * (simulated messages delivered per wall-clock second), ops_per_s (operations
 * the simulated cluster completed per simulated second). */
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/rift_bench.h"
#include "chaos/sim.h"
#include "chaos/sim_client.h"

#define BENCH_SIM_S 60u
#define BENCH_RATE 1000.0
#define BENCH_CLIENTS 16u
#define BENCH_SEED 1u

typedef struct bench_sim_result {
    uint8_t replicas;
    double wall_s;
    double sim_s_per_wall_s;
    double msgs_per_s;
    double ops_per_s;
    double latency_mean_us;
    uint64_t msgs, ops_ok, ops_info;
} bench_sim_result;

static double bench_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void bench_workload_config(sim_workload_config *wc)
{
    sim_workload_config_default(wc);
    wc->n_clients = BENCH_CLIENTS;
    wc->rate_ops_per_s = BENCH_RATE;
    wc->n_keys = 100;
    wc->value_bytes = 32;
}

static int bench_sim_one(uint8_t replicas, bench_sim_result *out)
{
    sim_config c;
    sim_config_default(&c);
    c.n_replicas = replicas;
    c.seed = BENCH_SEED;
    int err = 0;
    sim *s = sim_new(&c, &err);
    if (!s)
        return err;
    sim_workload_config wc;
    bench_workload_config(&wc);
    sim_workload *w = sim_workload_new(s, &wc, &err);
    if (!w) {
        sim_free(s);
        return err;
    }
    double t0 = bench_now_s();
    err = sim_workload_start(w);
    if (err == 0)
        err = sim_run_until(s, (uint64_t)BENCH_SIM_S * 1000000u);
    double wall = bench_now_s() - t0;
    sim_counters sc;
    sim_workload_counters wk;
    sim_counters_get(s, &sc);
    sim_workload_counters_get(w, &wk);
    sim_workload_free(w);
    sim_free(s);
    if (err < 0)
        return err;
    if (wall <= 0)
        wall = 1e-9;
    *out = (bench_sim_result){
        .replicas = replicas,
        .wall_s = wall,
        .sim_s_per_wall_s = BENCH_SIM_S / wall,
        .msgs_per_s = (double)sc.msgs_delivered / wall,
        .ops_per_s = (double)wk.ok / BENCH_SIM_S,
        .latency_mean_us = wk.ok + wk.fail ? (double)wk.latency_us_sum / (double)(wk.ok + wk.fail) : 0,
        .msgs = sc.msgs_delivered,
        .ops_ok = wk.ok,
        .ops_info = wk.info,
    };
    return 0;
}

static json_t *bench_sim_json(const bench_sim_result *r)
{
    return json_pack("{s:f, s:f, s:f, s:f, s:f, s:I, s:I, s:I, s:i, s:f, s:i}",
                     "sim_s_per_wall_s", r->sim_s_per_wall_s, "msgs_per_s", r->msgs_per_s, "ops_per_s",
                     r->ops_per_s, "wall_s", r->wall_s, "latency_mean_us", r->latency_mean_us, "msgs",
                     (json_int_t)r->msgs, "ops_ok", (json_int_t)r->ops_ok, "ops_info", (json_int_t)r->ops_info,
                     "sim_s", (int)BENCH_SIM_S, "target_ops_per_s", BENCH_RATE, "clients", (int)BENCH_CLIENTS);
}

/* `rift-bench sim [--json]`: fills out["rift"]["r3"|"r5"]; prints a table too
 * unless --json. */
static int bench_sim(int argc, char **argv, json_t *out)
{
    bool json_only = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") != 0) {
            fprintf(stderr, "rift-bench sim: unknown argument %s\nusage: rift-bench sim [--json]\n", argv[i]);
            return -EINVAL;
        }
        json_only = true;
    }
    static const uint8_t sizes[] = {3, 5};
    bench_sim_result res[2];
    for (size_t i = 0; i < 2; i++) {
        int rc = bench_sim_one(sizes[i], &res[i]);
        if (rc < 0) {
            fprintf(stderr, "rift-bench sim: %u replicas: %s\n", sizes[i], strerror(-rc));
            return rc;
        }
    }
    if (!json_only) {
        printf("sim: %u s simulated, open loop %.0f ops/s, %u clients, seed %u\n", BENCH_SIM_S, BENCH_RATE,
               BENCH_CLIENTS, BENCH_SEED);
        printf("%-9s %10s %16s %14s %12s %16s\n", "replicas", "wall_s", "sim_s_per_wall_s", "msgs_per_s",
               "ops_per_s", "latency_mean_us");
        for (size_t i = 0; i < 2; i++)
            printf("%-9u %10.3f %16.1f %14.0f %12.1f %16.0f\n", res[i].replicas, res[i].wall_s,
                   res[i].sim_s_per_wall_s, res[i].msgs_per_s, res[i].ops_per_s, res[i].latency_mean_us);
    }
    json_t *fig = json_object_get(out, "rift");
    if (!fig) {
        fig = json_object();
        if (!fig || json_object_set_new(out, "rift", fig) < 0)
            return -ENOMEM;
    }
    if (json_object_set_new(fig, "r3", bench_sim_json(&res[0])) < 0 ||
        json_object_set_new(fig, "r5", bench_sim_json(&res[1])) < 0)
        return -ENOMEM;
    return 0;
}

static int usage(const char *msg)
{
    fprintf(stderr, "rift-bench: %s\nusage: rift-bench sim|check [args] [--json]\n", msg);
    return 2;
}

/* Subcommands (rift_bench.h): each parses its own arguments and fills the
 * JSON object this main prints as its last line. */
static const struct {
    const char *name;
    int (*run)(int argc, char **argv, json_t *out);
} bench_cmds[] = {
    {"sim", bench_sim},
    {"check", rift_bench_check},
};

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage("missing subcommand");
    for (size_t i = 0; i < sizeof(bench_cmds) / sizeof(bench_cmds[0]); i++) {
        if (strcmp(argv[1], bench_cmds[i].name) != 0)
            continue;
        json_t *out = json_object();
        if (!out)
            return 1;
        int rc = bench_cmds[i].run(argc - 2, argv + 2, out);
        char *text = rc == 0 ? json_dumps(out, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;
        json_decref(out);
        if (rc == -EINVAL)
            return 2;
        if (rc < 0 || !text) {
            fprintf(stderr, "rift-bench %s: %s\n", argv[1], rc < 0 ? strerror(-rc) : "out of memory");
            return 1;
        }
        printf("%s\n", text);
        free(text);
        return 0;
    }
    return usage("unknown subcommand");
}
