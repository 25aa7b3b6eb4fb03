/* ch_record.h — everything a run observed, on one timeline, and what it means.
 *
 * Backends (the simulator, the DPDK testbed) feed the record: replica events,
 * client history ops, timeline actions, fault intervals, periodic status and
 * resource samples. The record derives the metrics checkers need (log agreement
 * from execute digests, liveness from completions, leader changes, compaction)
 * and serializes run.json. Checkers read only what was recorded: they never poke
 * at a backend's internals (DESIGN.md idea 3). */
#ifndef CH_RECORD_H
#define CH_RECORD_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "../paxos/px_replica.h"
#include "ch_history.h"
#include "wl_client.h"

typedef struct ch_record ch_record;

/* An agreement violation: two replicas executed different entries at index. */
typedef struct ch_disagreement {
    bool found;
    uint64_t index;
    int replica_a, replica_b;
    uint64_t hash_a, hash_b;
} ch_disagreement;

typedef struct ch_recovery {
    uint64_t at_us;        /* the heal, resume or restart */
    int64_t recovered_us;  /* until the next completed op; -1 = never */
    const char *what;      /* "heal-all", "clear", "resume", "restart" (static) */
} ch_recovery;

typedef struct ch_metrics {
    uint64_t duration_us;
    uint64_t ops_invoked, ops_ok, ops_fail, ops_info;
    uint64_t lat_p50_us, lat_p99_us, lat_max_us;     /* ok + fail completions */
    uint64_t max_unavailable_us;                     /* longest gap without a completion */
    uint64_t max_unavailable_at_us;                  /* where that gap starts */
    uint64_t max_unavailable_after_heal_us;          /* same, after the last recovery action */
    uint32_t leader_changes;                         /* who leads changed (a re-election of the same replica is not counted) */
    uint32_t elections_started;
    uint32_t step_downs;
    uint32_t trims, snapshots_installed;
    uint32_t checkpoints;                            /* KV images made durable (docs/durability.md) */
    uint64_t max_log_entries;                        /* over samples of every replica */
    double throughput_before_faults;                 /* ops/s before the first fault */
    double throughput_during_faults;                 /* ops/s while any fault is active */
    ch_disagreement disagreement;
    uint32_t n_recoveries;
    ch_recovery *recoveries;                         /* owned by the record */
    int64_t max_recovery_us;                         /* worst of recoveries; -1 = one never recovered */
} ch_metrics;

ch_record *ch_record_new(int n_replicas);
void ch_record_free(ch_record *r);

/* Node names: "r1".."rN" for replicas 0..N-1; clients are named by the backend. */
void ch_record_px_event(ch_record *r, const px_event *e);
/* Copies op into the record's history. */
int ch_record_op(ch_record *r, const ch_op *op);
/* The same for a workload engine's record (wl_client.h), whichever backend
 * drives the engine. */
int ch_record_wl_op(ch_record *r, const wl_hist *h);
/* A timeline action fired (json: the action as resolved, stolen). recovery marks
 * heal-all/clear/resume/restart for recover_within_ms. */
void ch_record_action(ch_record *r, uint64_t t_us, json_t *action, const char *recovery);
/* Fault intervals for the dashboard and the throughput ratio. detail is stolen. */
int ch_record_fault_begin(ch_record *r, uint64_t t_us, const char *kind, json_t *detail);
void ch_record_fault_end(ch_record *r, int fault, uint64_t t_us);
/* Close every open fault (heal-all, end of run). */
void ch_record_fault_end_all(ch_record *r, uint64_t t_us, const char *kind_prefix);
void ch_record_sample(ch_record *r, uint64_t t_us, int replica, const px_status *s, bool down, bool paused);
void ch_record_resource(ch_record *r, uint64_t t_us, const char *process, double cpu_pct, uint64_t rss_bytes);
/* A free-form controller event ("note") for the events table. */
void ch_record_note(ch_record *r, uint64_t t_us, const char *node, const char *kind, json_t *detail);
void ch_record_end(ch_record *r, uint64_t t_us);
/* A live view (rift run --live) of a run still going: metrics and JSON cover
 * [0, t_us), with open faults drawn up to t_us. ch_record_end sets the real end. */
void ch_record_set_now(ch_record *r, uint64_t t_us);

const ch_history *ch_record_history(const ch_record *r);
/* Compute metrics (valid until the record is freed or fed again). */
int ch_record_metrics(ch_record *r, ch_metrics *out);

/* The run.json parts this module owns: "nodes", "events", "faults", "samples",
 * "resources", "metrics". Added to obj. */
int ch_record_to_json(ch_record *r, const ch_metrics *m, json_t *obj);

#endif
