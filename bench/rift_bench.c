/* rift_bench.c — rift-bench: benchmarks that print one JSON object as their last line.
 *
 *   rift-bench sim|check [args] [--json]
 *
 * This file holds main (dispatch, JSON output) and the sim benchmark; the
 * others live in rift_bench_*.c behind rift_bench.h.
 *
 * sim: the deterministic simulator running the real replica code, 60 s of
 * virtual time with an open-loop workload of 1000 ops/s, for 3 and 5 replicas,
 * in both network models: "rift" is the packet model (the default: messages
 * over the real st_transport as st_wire frames), "rift_message_model" the
 * message model (one datagram per message). Figures: sim_s_per_wall_s (how much
 * faster than real time; sim_s_per_cpu_s the same per CPU second, steady on a
 * shared machine), msgs_per_s (simulated messages delivered per
 * wall-clock second), pkts_per_s (frames delivered per wall-clock second),
 * ops_per_s (operations the simulated cluster completed per simulated second).
 * --model packet|message measures one model only. */
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
#define BENCH_CLIENT_NODES 2u
#define BENCH_CLIENT_KEY 0x10000u

typedef struct bench_sim_result {
    uint8_t replicas;
    uint8_t model;
    double wall_s, cpu_s;
    double sim_s_per_wall_s, sim_s_per_cpu_s;
    double msgs_per_s;
    double pkts_per_s;
    double ops_per_s;
    double latency_mean_us;
    uint64_t msgs, pkts, ops_ok, ops_info;
} bench_sim_result;

static double bench_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU time of this process: on a shared machine it tells the cost apart
 * from the neighbours' load, which wall-clock time does not. */
static double bench_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
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

static int bench_sim_one(uint8_t replicas, uint8_t model, bench_sim_result *out)
{
    sim_config c;
    sim_config_default(&c);
    c.n_replicas = replicas;
    c.net_model = model;
    c.seed = BENCH_SEED;
    int err = 0;
    sim *s = sim_new(&c, &err);
    if (!s)
        return err;
    sim_workload_config wc;
    bench_workload_config(&wc);
    /* The clients share BENCH_CLIENT_NODES client nodes (k % nodes), as a
     * scenario's workload.nodes places them: in the packet model a node is one
     * host with one flow per replica. */
    for (uint32_t k = 0; k < wc.n_clients; k++)
        sim_link_key(s, PX_CLIENT_BASE + k, BENCH_CLIENT_KEY + k % BENCH_CLIENT_NODES);
    sim_workload *w = sim_workload_new(s, &wc, &err);
    if (!w) {
        sim_free(s);
        return err;
    }
    double t0 = bench_now_s(), c0 = bench_cpu_s();
    err = sim_workload_start(w);
    if (err == 0)
        err = sim_run_until(s, (uint64_t)BENCH_SIM_S * 1000000u);
    double wall = bench_now_s() - t0, cpu = bench_cpu_s() - c0;
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
    if (cpu <= 0)
        cpu = 1e-9;
    *out = (bench_sim_result){
        .replicas = replicas,
        .model = model,
        .wall_s = wall,
        .cpu_s = cpu,
        .sim_s_per_wall_s = BENCH_SIM_S / wall,
        .sim_s_per_cpu_s = BENCH_SIM_S / cpu,
        .msgs_per_s = (double)sc.msgs_delivered / wall,
        .pkts_per_s = (double)sc.pkts_delivered / wall,
        .pkts = sc.pkts_delivered,
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
    return json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:I, s:I, s:I, s:I, s:i, s:f, s:i}",
                     "sim_s_per_wall_s", r->sim_s_per_wall_s, "sim_s_per_cpu_s", r->sim_s_per_cpu_s, "msgs_per_s",
                     r->msgs_per_s, "pkts_per_s", r->pkts_per_s, "ops_per_s", r->ops_per_s, "wall_s", r->wall_s,
                     "cpu_s", r->cpu_s, "latency_mean_us",
                     r->latency_mean_us, "msgs", (json_int_t)r->msgs, "pkts", (json_int_t)r->pkts, "ops_ok",
                     (json_int_t)r->ops_ok, "ops_info", (json_int_t)r->ops_info, "sim_s", (int)BENCH_SIM_S,
                     "target_ops_per_s", BENCH_RATE, "clients", (int)BENCH_CLIENTS);
}

/* Both models' figures for 3 and 5 replicas into out[system]["r3"|"r5"]. */
static int bench_sim_model(uint8_t model, bool json_only, json_t *out)
{
    static const uint8_t sizes[] = {3, 5};
    bench_sim_result res[2];
    for (size_t i = 0; i < 2; i++) {
        int rc = bench_sim_one(sizes[i], model, &res[i]);
        if (rc < 0) {
            fprintf(stderr, "rift-bench sim: %u replicas, %s model: %s\n", sizes[i], sim_net_model_name(model),
                    strerror(-rc));
            return rc;
        }
    }
    if (!json_only) {
        printf("sim (%s model): %u s simulated, open loop %.0f ops/s, %u clients, seed %u\n",
               sim_net_model_name(model), BENCH_SIM_S, BENCH_RATE, BENCH_CLIENTS, BENCH_SEED);
        printf("%-9s %8s %8s %16s %15s %12s %12s %10s %16s\n", "replicas", "wall_s", "cpu_s", "sim_s_per_wall_s",
               "sim_s_per_cpu_s", "msgs_per_s", "pkts_per_s", "ops_per_s", "latency_mean_us");
        for (size_t i = 0; i < 2; i++)
            printf("%-9u %8.3f %8.3f %16.1f %15.1f %12.0f %12.0f %10.1f %16.0f\n", res[i].replicas, res[i].wall_s,
                   res[i].cpu_s, res[i].sim_s_per_wall_s, res[i].sim_s_per_cpu_s, res[i].msgs_per_s,
                   res[i].pkts_per_s, res[i].ops_per_s, res[i].latency_mean_us);
    }
    const char *system = model == SIM_NET_PACKET ? "rift" : "rift_message_model";
    json_t *fig = json_object_get(out, system);
    if (!fig) {
        fig = json_object();
        if (!fig || json_object_set_new(out, system, fig) < 0)
            return -ENOMEM;
    }
    if (json_object_set_new(fig, "r3", bench_sim_json(&res[0])) < 0 ||
        json_object_set_new(fig, "r5", bench_sim_json(&res[1])) < 0)
        return -ENOMEM;
    return 0;
}

/* `rift-bench sim [--json] [--model packet|message]`: fills out["rift"] (packet
 * model) and out["rift_message_model"]; prints tables too unless --json. */
static int bench_sim(int argc, char **argv, json_t *out)
{
    bool json_only = false, models[2] = {true, true};
    for (int i = 0; i < argc; i++) {
        uint8_t m;
        if (strcmp(argv[i], "--json") == 0) {
            json_only = true;
        } else if (strcmp(argv[i], "--model") == 0 && i + 1 < argc && sim_net_model_parse(argv[i + 1], &m) == 0) {
            models[SIM_NET_MESSAGE] = m == SIM_NET_MESSAGE;
            models[SIM_NET_PACKET] = m == SIM_NET_PACKET;
            i++;
        } else {
            fprintf(stderr, "rift-bench sim: bad argument %s\nusage: rift-bench sim [--json] [--model packet|message]\n",
                    argv[i]);
            return -EINVAL;
        }
    }
    static const uint8_t order[] = {SIM_NET_PACKET, SIM_NET_MESSAGE};
    for (size_t i = 0; i < 2; i++) {
        if (!models[order[i]])
            continue;
        int rc = bench_sim_model(order[i], json_only, out);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int usage(const char *msg)
{
    fprintf(stderr, "rift-bench: %s\nusage: rift-bench sim|check|stack|chan|kv [args] [--json]\n", msg);
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
    {"stack", rift_bench_stack},
    {"chan", rift_bench_chan},
    {"kv", rift_bench_kv},
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
