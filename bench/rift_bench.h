/* rift_bench.h — the benchmarks behind `rift-bench sim|check|stack|kv`.
 *
 * Each takes its own arguments (after the subcommand) and fills `out` with its
 * figures: top-level keys are the systems measured ("rift", ...), each an
 * object of figures whose names carry their unit (DESIGN.md "Executables").
 * Returns 0, or a negative errno (bad arguments: -EINVAL). */
#ifndef RIFT_BENCH_H
#define RIFT_BENCH_H

#include <jansson.h>

/* Linearizability checker: histories per second and the largest history
 * checked within a time limit (bench/rift_bench_check.c). */
int rift_bench_check(int argc, char **argv, json_t *out);

/* The rift dataplane (two rift-stackd on a veth pair) against kernel UDP on
 * the same veths: msgs_per_s, RTT p50/p99, impairment cost (bench/rift_bench_stack.c). */
int rift_bench_stack(int argc, char **argv, json_t *out);

/* The shared-memory application channel alone, two processes: 64-byte message
 * rates each way and RTTs, against an AF_UNIX socketpair (bench/rift_bench_chan.c). */
int rift_bench_chan(int argc, char **argv, json_t *out);

/* The KV store on the real backend, 3 replicas, 1/8/32 closed-loop clients:
 * ops_per_s, p50/p99, CPU and RSS per process (bench/rift_bench_kv.c; root). */
int rift_bench_kv(int argc, char **argv, json_t *out);

#endif
