/* wl_client.h — the workload engine: logical Jepsen clients of the KV store,
 * independent of how messages travel.
 *
 * One engine runs n logical clients against a cluster of n_replicas replicas
 * (px addresses 0..n_replicas-1). It is a pure state machine in the style of
 * px_replica and st_transport: it never reads a clock, opens a socket or calls
 * rand(). Its caller gives it an environment (wl_env: the time, a send
 * function, one timer, a PRNG) and feeds it two inputs:
 *   wl_recv(w, m)  a px message that arrived for one of its clients;
 *   wl_timer(w)    the timer it asked for (env->arm) is due.
 * The simulator drives it through sim_client.h; the DPDK backend drives it
 * from its event loop over rift_stack flows (decode each RS_EV_MSG with
 * px_msg_decode, pass it to wl_recv; poll with a timeout until the armed time,
 * then call wl_timer). Same inputs, same history.
 *
 * Client behaviour (what Jepsen expects of a client):
 *  - at most one command outstanding per client. It sends PX_MSG_CLIENT_REQ
 *    with one encoded px_cmd (client_id, seq) to the replica it believes leads
 *    (initially a random one);
 *  - PX_REPLY_REDIRECT with a usable leader hint: resend the same command there
 *    at once (at most 2 * n_replicas hops in a row; then, or without a hint,
 *    wait redirect_backoff_us and try the next replica);
 *  - no answer within retry_us: resend the same (client_id, seq) to the next
 *    replica — the replicas' session table executes a retried command once;
 *  - no definite answer within op_timeout_us: the op completes as `info`
 *    (outcome unknown), and the client carries on as a new Jepsen process
 *    (process += total_clients) with a new client id (process + 1), so a late
 *    execution of the abandoned command is never confused with a new one;
 *  - PX_REPLY_OK completes as `ok` (get: with the value read); PX_REPLY_FAIL
 *    (cas mismatch) and PX_REPLY_BAD_REQUEST as `fail`. A reply for another
 *    (client_id, seq) — an abandoned or earlier command — is ignored.
 * Load: closed loop (rate_ops_per_s = 0: each client issues its next op
 * think_us after the last completed, at once when 0) or open loop (arrivals at
 * rate_ops_per_s across the engine's clients, gaps uniform in [0, 2/rate],
 * each handed to the next idle client; an arrival finding all busy is skipped
 * and counted). An idle client sends nothing and holds no timer.
 * Ops: picked by weight from mix; keys "k0".."k{n_keys-1}", uniform or zipf;
 * values are unique tokens "c<client_id>-<seq>" padded with '.' to value_bytes
 * (never shorter than the token): the only 'c' in a token is its first byte, so
 * appended values split unambiguously and histories are checkable. A cas
 * expects the value this engine last saw committed for the key (absent = null).
 *
 * Several engines may share one run (one per client node): give each a
 * distinct slice of the global client numbering (first_client, client_step,
 * total_clients). Local client i is global client g = first_client + i *
 * client_step, px address PX_CLIENT_BASE + g, first Jepsen process g; process
 * numbers then advance by total_clients, so no two engines ever share one.
 *
 * History records (wl_hist) are DESIGN.md's format: invoke when an op starts,
 * then exactly one of ok / fail / info for it, with virtual or real µs from the
 * caller's clock (env->now_us; the caller decides where 0 is). */
#ifndef WL_CLIENT_H
#define WL_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/rift_rng.h"
#include "../paxos/px_kv.h"
#include "../paxos/px_msg.h"

/* ---- history records (DESIGN.md "History format") ---- */
typedef enum wl_hist_type {
    WL_HIST_INVOKE = 0,
    WL_HIST_OK,
    WL_HIST_FAIL, /* definitely not applied */
    WL_HIST_INFO, /* unknown */
} wl_hist_type;

typedef struct wl_hist {
    uint64_t process;
    uint8_t type;          /* wl_hist_type */
    uint8_t f;             /* px_op: get/put/del/append/cas */
    const char *key;       /* NUL-terminated, "k0".."k{K-1}" */
    /* NULL = JSON null. get: the value read (ok records only); put/append: the
     * value; del: NULL; cas: the new value (expected below). Not NUL-terminated. */
    const char *value;
    size_t value_len;
    const char *expected;  /* cas: the expected value, NULL = absent */
    size_t expected_len;
    uint64_t time_us;      /* env->now_us() when it happened */
    /* Not part of the Jepsen record; handy for checks and debugging. */
    uint64_t client_id, seq;
} wl_hist;

/* Valid during the call only: copy what you keep. */
typedef void (*wl_hist_fn)(void *ctx, const wl_hist *h);

const char *wl_hist_type_name(int type); /* "invoke", "ok", "fail", "info" */
const char *wl_hist_f_name(int op);      /* "get", "put", "del", "append", "cas" */

/* ---- configuration ---- */
typedef enum wl_key_dist { WL_KEYS_UNIFORM = 0, WL_KEYS_ZIPF } wl_key_dist;

#define WL_MAX_CLIENTS 1024u
#define WL_MAX_KEYS 1000000u

typedef struct wl_config {
    uint32_t n_clients;             /* logical clients in this engine, 1..WL_MAX_CLIENTS */
    uint8_t n_replicas;             /* 1..PX_MAX_REPLICAS */
    /* Global numbering (several engines per run); 0 = this engine is alone:
     * first_client 0, client_step 1, total_clients n_clients. */
    uint32_t first_client;
    uint32_t client_step;
    uint32_t total_clients;
    double rate_ops_per_s;          /* 0 = closed loop */
    double mix[PX_OP_MAX + 1];      /* weight per px_op; [0] unused */
    uint32_t n_keys;
    uint8_t dist;                   /* wl_key_dist */
    double zipf_theta;              /* zipf exponent, > 0 */
    uint32_t value_bytes;           /* up to PX_KV_MAX_VALUE / 2 */
    uint64_t retry_us;              /* resend to the next replica after this */
    uint64_t redirect_backoff_us;   /* wait after a redirect with no usable hint */
    uint64_t op_timeout_us;         /* give up: info */
    uint64_t think_us;              /* closed loop: pause between ops */
} wl_config;

/* 4 closed-loop clients of 3 replicas; get .5 put .3 append .1 cas .1; 10
 * uniform keys; 16-byte values; retry 50 ms; redirect backoff 5 ms; op timeout
 * 1000 ms. */
void wl_config_default(wl_config *c);
/* -EINVAL with a message naming the field when c is unusable. */
int wl_config_check(const wl_config *c, char *err, size_t errlen);

/* ---- environment ---- */
typedef struct wl_env {
    void *ctx;
    /* The current time in µs; never decreases. */
    uint64_t (*now_us)(void *ctx);
    /* Send m to replica m->to (m->from is the client's px address). m and its
     * bytes are valid during the call only. Best effort: whatever is lost is
     * retried by the engine. Must not call back into the engine. */
    void (*send)(void *ctx, const px_msg *m);
    /* Call wl_timer() once now_us >= at_us; each call replaces the previous
     * request, UINT64_MAX cancels it. Every wl_timer() ends with a fresh arm()
     * (so a timer spent by that call is always renewed); calling it early or
     * twice is harmless. Must not call back into the engine. */
    void (*arm)(void *ctx, uint64_t at_us);
    rift_rng *rng;          /* ops, keys, arrivals, first targets; outlives the engine */
} wl_env;

typedef struct wl_counters {
    uint64_t invoked, ok, fail, info;
    uint64_t sends;      /* requests sent, first tries and resends */
    uint64_t resends;    /* after a timeout or redirect */
    uint64_t redirects;  /* PX_REPLY_REDIRECT received */
    uint64_t skipped;    /* open loop: arrivals that found every client busy */
    uint64_t ignored;    /* messages for no op in flight (late, duplicate, foreign) */
    uint64_t latency_us_sum, latency_us_max; /* ok and fail completions */
} wl_counters;

typedef struct wl_client wl_client;

/* Idle until wl_start. The config and env are copied. NULL and *err (-EINVAL,
 * -ENOMEM) on failure. */
wl_client *wl_new(const wl_config *c, const wl_env *env, int *err);
/* Completes nothing: ops in flight stay open invokes in the history. */
void wl_free(wl_client *w);

/* Records go to fn (NULL: nowhere), in the order they happen. */
void wl_on_history(wl_client *w, wl_hist_fn fn, void *ctx);

/* Begin issuing ops now (closed loop: every idle client starts one; open loop:
 * the first arrival is drawn). Returns 0. */
int wl_start(wl_client *w);
/* Issue no new ops; those in flight still complete or time out (keep feeding
 * wl_recv and wl_timer until wl_outstanding() is 0). */
void wl_stop(wl_client *w);

/* A message for one of this engine's clients. 0; -ENOENT when m->to is no
 * client of this engine; -EBADMSG for another message type. Replies that match
 * no op in flight are counted (ignored) and dropped. */
int wl_recv(wl_client *w, const px_msg *m);
/* The armed time has come: resend, give up, think time over, next arrival. */
void wl_timer(wl_client *w);

/* The time wl_timer wants next (UINT64_MAX: none): what was last armed. */
uint64_t wl_next_timer_us(const wl_client *w);
/* Ops in flight (invoked, not yet completed). */
uint32_t wl_outstanding(const wl_client *w);
void wl_counters_get(const wl_client *w, wl_counters *out);
uint32_t wl_n_clients(const wl_client *w);
/* px address of local client i (PX_CLIENT_BASE + its global index). */
uint32_t wl_client_addr(const wl_client *w, uint32_t i);

#endif
