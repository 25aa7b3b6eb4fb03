/* rift_bench_kv.c — the KV store on the real backend (DPDK in namespaces).
 *
 * 3 replicas, closed-loop clients (1, 8, 32), 50% reads / 50% writes, 64-byte
 * values, 100 keys, no faults, for a few seconds each: ops/s, p50/p99 latency
 * of completed ops, and mean CPU% / peak RSS of every replica and its
 * rift-stackd, as the controller sampled them. Each load is one ordinary
 * `rift run --backend dpdk` of a generated scenario, so the figures come from
 * the same run.json users get. Needs root. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/rift_bench.h"
#include "chaos/ch_fs.h"
#include "chaos/ch_run.h"

static json_t *resources_summary(const json_t *run)
{
    json_t *out = json_object();
    const char *proc;
    json_t *cols;
    json_object_foreach(json_object_get(run, "resources"), proc, cols)
    {
        if (strncmp(proc, "r", 1) != 0)
            continue;
        json_t *cpu = json_object_get(cols, "cpu_pct"), *rss = json_object_get(cols, "rss_bytes");
        double sum = 0;
        size_t n = json_array_size(cpu);
        /* the first sample has no interval behind it */
        for (size_t i = 1; i < n; i++)
            sum += json_number_value(json_array_get(cpu, i));
        json_int_t peak = 0;
        for (size_t i = 0; i < json_array_size(rss); i++)
            if (json_integer_value(json_array_get(rss, i)) > peak)
                peak = json_integer_value(json_array_get(rss, i));
        json_object_set_new(out, proc,
                            json_pack("{s:f, s:I}", "cpu_pct_mean", n > 1 ? sum / (double)(n - 1) : 0.0,
                                      "rss_bytes_max", peak));
    }
    return out;
}

static int bench_one(const char *dir, int clients, int seconds, json_t **out)
{
    char scen[PATH_MAX], run_dir[PATH_MAX];
    snprintf(scen, sizeof(scen), "%s/kv-c%d.json", dir, clients);
    snprintf(run_dir, sizeof(run_dir), "%s/run-c%d", dir, clients);
    json_t *sc = json_pack("{s:s, s:s, s:i, s:i, s:{s:i, s:{s:s, s:s}}, s:{s:i, s:{s:f, s:f}, s:i, s:i, s:i}, "
                           "s:[], s:{}}",
                           "name", "bench-kv", "description", "rift-bench kv: no faults, closed loop", "seed", 1,
                           "duration_ms", seconds * 1000, "cluster", "replicas", 3, "paxos", "fd", "quorum",
                           "durability", "write", "workload", "clients", clients, "mix", "get", 0.5, "put", 0.5,
                           "keys", 100, "value_bytes", 64, "op_timeout_ms", 2000, "timeline", "assertions");
    int e = ch_fs_write_json(scen, sc, JSON_INDENT(2));
    json_decref(sc);
    if (e < 0)
        return e;
    ch_run_opts o = {.backend = "dpdk", .out_dir = run_dir, .lin_time_limit_s = 5};
    ch_run_summary s;
    ch_error err = {0};
    int rc = ch_run_scenario(scen, &o, &s, &err);
    if (rc != 0 && rc != 1 && rc != 4) {
        fprintf(stderr, "rift-bench kv: %s\n", err.msg[0] ? err.msg : "run failed");
        json_decref(s.json);
        return -EIO;
    }
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/run.json", run_dir);
    json_t *run = json_load_file(path, 0, NULL);
    json_t *m = json_object_get(run, "metrics");
    json_t *ops = json_object_get(m, "ops");
    double dur = json_number_value(json_object_get(m, "duration_us")) / 1e6;
    double ok = json_number_value(json_object_get(ops, "ok"));
    *out = json_pack("{s:f, s:O, s:O, s:O, s:o}", "ops_per_s", dur > 0 ? ok / dur : 0.0, "p50_us",
                     json_object_get(m, "latency_p50_us"), "p99_us", json_object_get(m, "latency_p99_us"),
                     "ops_info", json_object_get(ops, "info"), "processes", resources_summary(run));
    json_decref(run);
    json_decref(s.json);
    return *out ? 0 : -ENOMEM;
}

int rift_bench_kv(int argc, char **argv, json_t *out)
{
    int seconds = 8;
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            seconds = atoi(argv[++i]);
    if (seconds < 2 || seconds > 600)
        return -EINVAL;
    if (geteuid() != 0) {
        fprintf(stderr, "rift-bench kv: needs root (the dpdk backend builds network namespaces)\n");
        return -EPERM;
    }
    char dir[] = "/tmp/rift-bench-kv-XXXXXX";
    if (!mkdtemp(dir))
        return -errno;
    json_t *rift = json_object();
    static const int loads[] = {1, 8, 32};
    int e = 0;
    for (size_t i = 0; i < 3 && e == 0; i++) {
        json_t *one = NULL;
        e = bench_one(dir, loads[i], seconds, &one);
        char key[8];
        snprintf(key, sizeof(key), "c%d", loads[i]);
        if (e == 0)
            json_object_set_new(rift, key, one);
    }
    json_object_set_new(out, "rift", rift);
    ch_fs_remove_tree(dir);
    return e;
}
