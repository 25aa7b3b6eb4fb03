/* ch_scenario.h — scenario files (DESIGN.md "Scenario format (v1)"), parsed and
 * fully validated into plain C structs the runner uses directly.
 *
 * Pipeline: JSON text -> jansson tree -> `--set key=value` overrides applied to
 * the tree -> validation into ch_scenario (defaults filled in, px_config built
 * and checked). Nothing is validated later: a scenario that loads is runnable
 * as far as static checks can tell. Every error names the file, the JSON path
 * (`timeline[3].groups[1][0]`) and what was expected; the first error wins.
 *
 * scenarios/schema.json documents the same format for users and editors. */
#ifndef CH_SCENARIO_H
#define CH_SCENARIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "../paxos/px_replica.h"
#include "../paxos/px_storage.h"
#include "../stack/st_impair.h"
#include "ch_error.h"

/* Limits: every list is bounded so a scenario cannot make the runner explode. */
#define CH_MAX_CLIENT_NODES 32u     /* workload.nodes */
#define CH_MAX_CLIENTS 10000u       /* workload.clients */
#define CH_MAX_TIMELINE 10000u      /* timeline entries as written */
#define CH_MAX_EXPANDED 100000u     /* actions after repeat expansion */
#define CH_MAX_DURATION_MS 604800000ull /* one week */
#define CH_PARTITION_MAX 48u        /* node names in one partition action */
#define CH_NAME_MAX 64u
#define CH_PARAM_MAX 32u            /* set: param name, including NUL */
#define CH_VALUE_MAX 64u            /* set: value text, including NUL */
#define CH_FILE_MAX (16u << 20)     /* scenario file size */

/* ---- nodes ---- */
typedef enum ch_node_kind {
    CH_NODE_REPLICA = 0, /* r1..rN: index 0..N-1 (the replica id) */
    CH_NODE_CLIENT,      /* c1..cM: index 0..M-1 */
    CH_NODE_LEADER,      /* whichever replica leads when the action fires */
    CH_NODE_ALL,         /* "*": every node (replicas only for process actions;
                            in a partition group: every node not named elsewhere) */
} ch_node_kind;

typedef struct ch_node {
    ch_node_kind kind;
    uint8_t index; /* replica / client only */
} ch_node;

/* "r1", "c2", "leader", "*" into buf (>= 8 bytes is enough); returns buf. */
const char *ch_node_format(ch_node n, char *buf, size_t len);

/* ---- link selectors ---- */
typedef enum ch_sel_kind {
    CH_SEL_BETWEEN = 0, /* a <-> b, both directions */
    CH_SEL_FROM_TO,     /* a -> b only */
    CH_SEL_NODE,        /* every link of a, both directions (b unused) */
} ch_sel_kind;

typedef struct ch_selector {
    ch_sel_kind kind;
    ch_node a, b;
} ch_selector;

/* ---- actions ---- */
typedef enum ch_action_kind {
    CH_ACT_PARTITION = 0,
    CH_ACT_CUT,
    CH_ACT_LOSS,
    CH_ACT_DELAY,
    CH_ACT_DUPLICATE,
    CH_ACT_REORDER,
    CH_ACT_CLEAR,
    CH_ACT_HEAL_ALL,
    CH_ACT_CRASH,
    CH_ACT_RESTART,
    CH_ACT_PAUSE,
    CH_ACT_RESUME,
    CH_ACT_GC_PAUSE,
    CH_ACT_SET,
    CH_ACT_LINK_DOWN,
    CH_ACT_LINK_UP,
    CH_ACT_COUNT
} ch_action_kind;

/* "partition", "heal-all", ... (the `do` value); "unknown" out of range. */
const char *ch_action_kind_name(int kind);

/* A length distribution (gc-pause pause_ms), in µs. */
typedef enum ch_dist_kind {
    CH_DIST_CONST = 0, /* a */
    CH_DIST_UNIFORM,   /* uniform in [a, b] */
    CH_DIST_NORMAL,    /* mean a, standard deviation b; samples below 0 clamp to 0 */
} ch_dist_kind;

typedef struct ch_dist {
    ch_dist_kind kind;
    uint64_t a_us, b_us;
} ch_dist;

typedef struct ch_partition {
    uint8_t n_groups;
    uint8_t n_nodes;
    ch_node nodes[CH_PARTITION_MAX];
    uint8_t group[CH_PARTITION_MAX]; /* group of nodes[i], 0..n_groups-1 */
} ch_partition;

/* One timeline entry. Plain data (no pointers): copying it is a memcpy, which
 * keeps repeat expansion trivial. Only the fields of its kind are meaningful. */
typedef struct ch_action {
    ch_action_kind kind;
    uint64_t at_ms;
    uint32_t index;            /* position in the scenario's timeline */
    uint32_t occurrence;       /* 0 for the first; n for the n-th repeat */
    uint64_t repeat_every_ms;  /* 0 = once */
    uint64_t repeat_until_ms;  /* last time an occurrence may fire */

    /* cut, loss, delay, duplicate, reorder, clear */
    ch_selector sel;
    /* loss (probability, correlation), duplicate, reorder (probability) */
    double probability;
    double correlation;
    /* delay */
    uint64_t delay_us, jitter_us;
    st_delay_dist distribution;
    /* reorder: how long a packet is held back; 0 = the impairment's default */
    uint64_t reorder_us;

    /* crash, restart, pause, resume, gc-pause, set, link-down, link-up */
    ch_node node;
    /* gc-pause: a pause every every_ms for for_ms (0 = until the run ends) */
    uint64_t gc_every_ms, gc_for_ms;
    ch_dist gc_pause;
    /* set: a px_config_set name and value text */
    char param[CH_PARAM_MAX];
    char value[CH_VALUE_MAX];

    ch_partition partition;
} ch_action;

/* The impairment an action installs on each selected directed link (src/dst
 * left as ST_IMPAIR_ANY for the runner to fill): partition and cut -> cut,
 * loss, delay, duplicate, reorder. -EINVAL for other kinds. */
int ch_action_rule(const ch_action *a, st_impair_rule *out);

/* ---- workload ---- */
typedef enum ch_key_dist { CH_KEYS_UNIFORM = 0, CH_KEYS_ZIPF } ch_key_dist;

typedef struct ch_mix {
    double get, put, del, append, cas; /* relative weights, >= 0, sum > 0 */
} ch_mix;

typedef struct ch_workload {
    uint32_t clients;        /* logical clients, spread over the client nodes */
    uint32_t nodes;          /* client nodes c1..cM */
    ch_mix mix;
    uint32_t keys;
    ch_key_dist distribution;
    double zipf_s;
    uint32_t value_bytes;
    double rate_ops_per_s;   /* total; 0 = closed loop */
    uint64_t op_timeout_ms;
} ch_workload;

/* ---- assertions: each is checked only when its has_ flag is set ---- */
typedef struct ch_assertions {
    bool has_linearizable, linearizable;
    bool has_logs_agree, logs_agree;
    bool has_max_unavailability_ms;
    uint64_t max_unavailability_ms;
    bool has_recover_within_ms;
    uint64_t recover_within_ms;
    bool has_max_leader_changes;
    uint64_t max_leader_changes;
    bool has_min_throughput_ratio;
    double min_throughput_ratio;
    bool has_max_log_entries;
    uint64_t max_log_entries;
} ch_assertions;

/* ---- the scenario ---- */
typedef struct ch_scenario {
    char *file;            /* as given to load/parse */
    char name[CH_NAME_MAX + 1];
    char *description;     /* "" when absent */
    bool has_seed;         /* absent: the runner picks one and records it */
    uint64_t seed;
    uint64_t duration_ms;

    uint8_t replicas;      /* == paxos.n_replicas */
    px_config paxos;       /* defaults + the scenario's values, px_config_check'ed */
    px_durability durability;

    ch_workload workload;
    ch_action *timeline;   /* as written (repeats not expanded), file order */
    size_t n_timeline;
    size_t n_expanded;     /* what ch_scenario_expand will return */
    ch_assertions assertions;

    char *text;            /* the original file text (before --set), NUL-terminated */
    size_t text_len;
} ch_scenario;

/* Read and validate a scenario file, applying `--set` overrides (each
 * "dotted.path=value") to the JSON tree first. Returns 0, -ENOENT (no such
 * file; the message names it), -EINVAL (bad input), -ENOMEM, or another
 * negative errno from reading the file. On error *out is left zeroed. */
int ch_scenario_load(const char *path, const char *const *sets, int n_sets,
                     ch_scenario *out, ch_error *err);
/* The same from a buffer (need not be NUL-terminated); name is used in messages. */
int ch_scenario_parse(const char *name, const char *text, size_t len,
                      const char *const *sets, int n_sets,
                      ch_scenario *out, ch_error *err);
void ch_scenario_free(ch_scenario *s);

/* Apply one override "a.b.c=value" to a JSON tree: object keys by name, array
 * elements by index (index == length appends). The value is parsed as JSON if
 * it parses (numbers, true/false, arrays, objects, quoted strings), else it is
 * taken as a plain string; the value null removes the key or element. Every
 * parent on the path must exist. 0 or -EINVAL (message names the path), -ENOMEM. */
int ch_scenario_apply_set(json_t *root, const char *assignment, ch_error *err);

/* The normalized scenario, every default filled in (run.json's "config").
 * Parsing its dump yields the same ch_scenario. NULL on allocation failure. */
json_t *ch_scenario_to_json(const ch_scenario *s);

/* Expand repeats into a flat list sorted by time; actions at the same time keep
 * their timeline order. *out is malloc'ed (NULL when empty); 0 or -ENOMEM. */
int ch_scenario_expand(const ch_scenario *s, ch_action **out, size_t *n_out);

#endif
