/* replica_config.h — the rift-replica configuration file.
 *
 * One JSON object per replica process (docs/running-by-hand.md has a full example):
 *
 *   {"id": 0,                                   index into replicas (r1 = 0)
 *    "replicas": [{"ip": "198.18.0.1", "port": 7000}, ...],   1..9, same order everywhere
 *    "stack": "/run/rift/r1.stack.sock",        rift-stackd's application socket
 *    "wal": "/var/lib/rift/r1.wal",             acceptor write-ahead log
 *    "durability": "fsync" | "write" | "off",   default fsync (also accepted in paxos)
 *    "paxos": {"fd": "quorum", "heartbeat_ms": 50, "election_timeout_ms": [150, 300], ...},
 *    "control": "/run/rift/r1.ctl.sock",        optional: JSON-lines control socket
 *    "events": "/var/log/rift/r1.events.jsonl", optional: one line per px_event
 *    "seed": 7,                                 optional: PRNG seed (election jitter)
 *    "attach_timeout_ms": 5000}                 optional: how long to wait for the stack
 *
 * "paxos" takes every px_config_set name (numbers or strings as values) plus
 * "election_timeout_ms": [min, max] and "durability", i.e. the scenario file's
 * cluster.paxos object can be passed through unchanged.
 *
 * Errors name the file, the JSON path and what was expected:
 *   "r1.json: replicas[1].port: expected an integer 1..65535, got 70000". */
#ifndef REPLICA_CONFIG_H
#define REPLICA_CONFIG_H

#include <jansson.h>
#include <stdint.h>

#include "px_replica.h"
#include "px_storage.h"

/* Unix socket paths must fit sockaddr_un.sun_path (108 bytes with the NUL). */
#define RN_SOCK_PATH_MAX 108
#define RN_FILE_PATH_MAX 1024
#define RN_ATTACH_TIMEOUT_MS_DEFAULT 5000u

typedef struct rn_error {
    char msg[512];
} rn_error;

typedef struct rn_peer {
    uint32_t ip;   /* host byte order */
    uint16_t port;
} rn_peer;

typedef struct rn_config {
    uint8_t id;
    uint8_t n_replicas;
    rn_peer replicas[PX_MAX_REPLICAS];
    char stack[RN_SOCK_PATH_MAX];
    char wal[RN_FILE_PATH_MAX];
    px_durability durability;
    px_config paxos;                /* n_replicas already set and checked */
    char control[RN_SOCK_PATH_MAX]; /* "" = no control socket */
    char events[RN_FILE_PATH_MAX];  /* "" = no event log */
    uint64_t seed;
    uint32_t attach_timeout_ms;
} rn_config;

/* Parse a configuration from text; `file` names it in messages. 0, or -EINVAL
 * (err->msg says where and why). out is fully written on success only. */
int rn_config_parse(const char *file, const char *text, size_t len, rn_config *out, rn_error *err);
/* Read and parse path. -ENOENT ("PATH: no such file"), other -errno on I/O errors. */
int rn_config_load(const char *path, rn_config *out, rn_error *err);
/* The configuration as JSON with every default filled in; parsing the dump
 * gives the same configuration back. NULL on allocation failure. */
json_t *rn_config_to_json(const rn_config *c);

/* "198.18.0.1" <-> host-order u32. parse: 0 or -EINVAL. */
int rn_ip_parse(const char *s, uint32_t *out);
void rn_ip_format(uint32_t ip, char *buf, size_t len);

#endif
