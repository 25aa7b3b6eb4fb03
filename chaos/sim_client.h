/* sim_client.h — simulated workload clients and the Jepsen-style history they write.
 *
 * A workload is n logical clients, each an endpoint at PX_CLIENT_BASE + i. A
 * client has one command outstanding at most: it sends PX_MSG_CLIENT_REQ to the
 * replica it believes leads, follows redirect hints, resends the same
 * (client_id, seq) to the next replica when no answer comes within retry_us, and
 * gives up after op_timeout_us with an `info` record (outcome unknown). After an
 * info the logical client carries on as a new Jepsen process (process +=
 * n_clients) with a new client id (= process + 1), as Jepsen does, so a late
 * execution of the abandoned command cannot be confused with a new one.
 *
 * Load is closed loop (each client issues its next op when the last completes)
 * or open loop (arrivals at rate_ops_per_s across all clients, handed to an
 * idle client; an arrival finding every client busy is skipped and counted).
 * An idle client sends nothing and arms no timer.
 *
 * Values are unique tokens "c<client_id>-<seq>" padded with '.' to value_bytes
 * (never shorter than the token), so histories are checkable; the only 'c' in a
 * token is its first byte, so appended values split unambiguously. */
#ifndef SIM_CLIENT_H
#define SIM_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sim.h"

/* ---- history records (DESIGN.md "History format") ---- */
typedef enum sim_hist_type {
    SIM_HIST_INVOKE = 0,
    SIM_HIST_OK,
    SIM_HIST_FAIL, /* definitely not applied */
    SIM_HIST_INFO, /* unknown */
} sim_hist_type;

typedef struct sim_hist {
    uint64_t process;
    uint8_t type;          /* sim_hist_type */
    uint8_t f;             /* px_op: get/put/del/append/cas */
    const char *key;       /* NUL-terminated, "k0".."k{K-1}" */
    /* NULL = JSON null. get: the value read (ok records only); put/append: the
     * value; del: NULL; cas: the new value (expected below). Not NUL-terminated. */
    const char *value;
    size_t value_len;
    const char *expected;  /* cas: the expected value, NULL = absent */
    size_t expected_len;
    uint64_t time_us;      /* virtual µs since the run started */
    /* Not part of the Jepsen record; handy for checks and debugging. */
    uint64_t client_id, seq;
} sim_hist;

/* Valid during the call only: copy what you keep. */
typedef void (*sim_hist_fn)(void *ctx, const sim_hist *h);

const char *sim_hist_type_name(int type); /* "invoke", "ok", "fail", "info" */
const char *sim_hist_f_name(int op);      /* "get", "put", "del", "append", "cas" */

/* ---- workload ---- */
typedef enum sim_key_dist { SIM_KEYS_UNIFORM = 0, SIM_KEYS_ZIPF } sim_key_dist;

#define SIM_WORKLOAD_MAX_CLIENTS 1024u
#define SIM_WORKLOAD_MAX_KEYS 1000000u

typedef struct sim_workload_config {
    uint32_t n_clients;
    double rate_ops_per_s;          /* 0 = closed loop */
    double mix[PX_OP_MAX + 1];      /* weight per px_op; [0] unused */
    uint32_t n_keys;
    uint8_t dist;                   /* sim_key_dist */
    double zipf_theta;              /* zipf exponent, > 0 */
    uint32_t value_bytes;
    uint64_t retry_us;              /* resend to the next replica after this */
    uint64_t redirect_backoff_us;   /* wait after a redirect with no usable hint */
    uint64_t op_timeout_us;         /* give up: info */
    uint64_t think_us;              /* closed loop: pause between ops */
} sim_workload_config;

typedef struct sim_workload_counters {
    uint64_t invoked, ok, fail, info;
    uint64_t sends;      /* requests sent, first tries and resends */
    uint64_t resends;    /* after a timeout or redirect */
    uint64_t redirects;  /* PX_REPLY_REDIRECT received */
    uint64_t skipped;    /* open loop: arrivals that found every client busy */
    uint64_t latency_us_sum, latency_us_max; /* ok and fail completions */
} sim_workload_counters;

typedef struct sim_workload sim_workload;

/* 4 closed-loop clients; get .5 put .3 append .1 cas .1; 10 uniform keys; 16-byte
 * values; retry 50 ms; redirect backoff 5 ms; op timeout 1000 ms. */
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
