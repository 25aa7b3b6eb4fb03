/* ch_backend.h — what a backend does for a run, whichever it is.
 *
 * A backend builds the cluster for a scenario, drives its workload, fires the
 * timeline's actions at their times, and feeds everything it observes into the
 * ch_record. It does not judge: metrics, checks and assertions are computed by
 * the runner from the record alone, so the simulator and the DPDK testbed are
 * judged by the same code. */
#ifndef CH_BACKEND_H
#define CH_BACKEND_H

#include <signal.h>
#include <stdint.h>

#include "ch_error.h"
#include "ch_record.h"
#include "ch_scenario.h"

typedef struct ch_progress {
    uint64_t t_us;          /* run time so far */
    uint64_t duration_us;
    double ops_per_s;       /* over the last second */
    int leader;             /* replica, -1 = none */
    int active_faults;
} ch_progress;

typedef struct ch_run_ctx {
    const ch_scenario *scenario;
    uint64_t seed;
    ch_record *record;
    const char *run_dir;                  /* where backends may keep files (WALs, logs) */
    volatile sig_atomic_t *interrupted;   /* set by SIGINT/SIGTERM: stop early */
    void (*progress)(void *ctx, const ch_progress *p);
    void *progress_ctx;
} ch_run_ctx;

/* Run the scenario in the simulator. 0, or a negative errno with err set
 * (-EINVAL: the scenario asks for something this backend cannot do). */
int ch_backend_sim_run(const ch_run_ctx *ctx, ch_error *err);

/* Run the scenario on the DPDK testbed (network namespaces, rift-stackd and
 * rift-replica processes). -ENOSYS with err naming what is missing (root, the
 * binaries, a DPDK port) when the environment cannot host it. */
int ch_backend_dpdk_run(const ch_run_ctx *ctx, ch_error *err);

#endif
