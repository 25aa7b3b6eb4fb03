/* sim_client.h — simulated workload clients: the workload engine (wl_client.h)
 * attached to the simulator.
 *
 * A workload is n logical clients, each an endpoint at PX_CLIENT_BASE + i
 * (sim_attach), driven by one wl_client engine: its sends go through sim_send,
 * its one timer is a sim_timer, its PRNG a stream forked from the seed, and its
 * history records are folded into sim_hash before they reach the callback.
 * What a client does — leader discovery through redirects, retries with the
 * same session id, info after op_timeout_us and a new Jepsen process, closed
 * or open loop, key distributions, unique values — is documented in
 * wl_client.h; this header keeps the simulator's names for it. */
#ifndef SIM_CLIENT_H
#define SIM_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sim.h"
#include "wl_client.h"

/* ---- history records (DESIGN.md "History format") ---- */
typedef wl_hist sim_hist;
typedef wl_hist_fn sim_hist_fn;
enum {
    SIM_HIST_INVOKE = WL_HIST_INVOKE,
    SIM_HIST_OK = WL_HIST_OK,
    SIM_HIST_FAIL = WL_HIST_FAIL, /* definitely not applied */
    SIM_HIST_INFO = WL_HIST_INFO, /* unknown */
};

const char *sim_hist_type_name(int type); /* "invoke", "ok", "fail", "info" */
const char *sim_hist_f_name(int op);      /* "get", "put", "del", "append", "cas" */

/* ---- workload ---- */
enum { SIM_KEYS_UNIFORM = WL_KEYS_UNIFORM, SIM_KEYS_ZIPF = WL_KEYS_ZIPF };

#define SIM_WORKLOAD_MAX_CLIENTS WL_MAX_CLIENTS
#define SIM_WORKLOAD_MAX_KEYS WL_MAX_KEYS

/* The engine's config; n_replicas and the global numbering (first_client,
 * client_step, total_clients) are the simulator's: the workload sets them. */
typedef wl_config sim_workload_config;
typedef wl_counters sim_workload_counters;

typedef struct sim_workload sim_workload;

/* wl_config_default: 4 closed-loop clients; get .5 put .3 append .1 cas .1;
 * 10 uniform keys; 16-byte values; retry 50 ms; redirect backoff 5 ms; op
 * timeout 1000 ms. */
void sim_workload_config_default(sim_workload_config *c);

/* Attach the clients to s (idle until started). NULL and *err on a bad config
 * (-EINVAL), taken addresses (-EADDRINUSE) or allocation failure. */
sim_workload *sim_workload_new(sim *s, const sim_workload_config *c, int *err);
/* Before sim_free. */
void sim_workload_free(sim_workload *w);

void sim_workload_on_history(sim_workload *w, sim_hist_fn fn, void *ctx);
/* Begin issuing ops at the current virtual time. */
int sim_workload_start(sim_workload *w);
/* Issue no new ops; outstanding ones still complete or time out. */
void sim_workload_stop(sim_workload *w);
/* Ops in flight (invoked, not yet completed). */
uint32_t sim_workload_outstanding(const sim_workload *w);
void sim_workload_counters_get(const sim_workload *w, sim_workload_counters *out);

#endif
