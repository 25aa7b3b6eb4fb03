/* px_config.c — replica configuration: defaults, validation, set-by-name, names. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "px_replica.h"

void px_config_default(px_config *c)
{
    memset(c, 0, sizeof(*c));
    c->n_replicas = 3;
    c->fd = PX_FD_QUORUM;
    c->heartbeat_us = 50000;
    c->election_timeout_min_us = 150000;
    c->election_timeout_max_us = 300000;
    c->adapt_window_us = 2000000;
    c->adapt_calm_us = 10000000;
    c->adapt_max_factor = 8;
    c->check_quorum_us = 0;
    c->batch_max_cmds = 64;
    c->batch_max_bytes = 64 * 1024;
    c->batch_delay_us = 0;
    c->pipeline_max = 64;
    c->retransmit_us = 20000;
    c->learn_max_entries = 256;
    c->client_queue_max = 10000;
    c->checkpoint_entries = 256;
    c->checkpoint_bytes = 0;
}

static int fail(char *err, size_t errlen, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
    return -EINVAL;
}

int px_config_check(const px_config *c, char *err, size_t errlen)
{
    if (c->n_replicas < 1 || c->n_replicas > PX_MAX_REPLICAS)
        return fail(err, errlen, "replicas: expected 1..9");
    if (c->fd > PX_FD_QUORUM)
        return fail(err, errlen, "fd: expected naive, mpmc or quorum");
    if (c->heartbeat_us == 0)
        return fail(err, errlen, "heartbeat_ms: expected > 0");
    if (c->election_timeout_min_us == 0 || c->election_timeout_max_us < c->election_timeout_min_us)
        return fail(err, errlen, "election_timeout_ms: expected 0 < min <= max");
    if (c->heartbeat_us >= c->election_timeout_min_us)
        return fail(err, errlen, "heartbeat_ms: expected below the election timeout minimum");
    if (c->adapt_max_factor < 1 || c->adapt_max_factor > 1024)
        return fail(err, errlen, "adapt_max_factor: expected 1..1024");
    if (c->batch_max_cmds < 1 || c->batch_max_bytes < 64)
        return fail(err, errlen, "batch_max_cmds/batch_max_bytes: expected >= 1 / >= 64");
    if (c->pipeline_max < 1 || c->pipeline_max > 65536)
        return fail(err, errlen, "pipeline_max: expected 1..65536");
    if (c->retransmit_us == 0)
        return fail(err, errlen, "retransmit_ms: expected > 0");
    if (c->learn_max_entries < 1 || c->learn_max_entries > PX_MSG_MAX_ENTRIES)
        return fail(err, errlen, "learn_max_entries: expected 1..65536");
    if (c->client_queue_max < 1)
        return fail(err, errlen, "client_queue_max: expected >= 1");
    if (c->checkpoint_entries < 1)
        return fail(err, errlen, "checkpoint_entries: expected >= 1");
    return 0;
}

static const char *const fd_names[] = {"naive", "mpmc", "quorum"};

const char *px_fd_policy_name(px_fd_policy p)
{
    return (unsigned)p < 3 ? fd_names[p] : "unknown";
}

int px_fd_policy_parse(const char *s, px_fd_policy *out)
{
    for (unsigned i = 0; i < 3; i++) {
        if (strcmp(s, fd_names[i]) == 0) {
            *out = (px_fd_policy)i;
            return 0;
        }
    }
    return -EINVAL;
}

/* Parse a non-negative number; "ms" fields accept fractions (0.5 ms = 500 µs). */
static int parse_num(const char *v, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end || !(d >= 0) || d > 4e9)
        return -EINVAL;
    *out = d;
    return 0;
}

typedef struct param {
    const char *name;
    size_t offset;
    double scale; /* value * scale = stored unit (µs for _ms names) */
} param;

#define P(name, field, scale) {name, offsetof(px_config, field), scale}
static const param params[] = {
    P("heartbeat_ms", heartbeat_us, 1000),
    P("election_timeout_min_ms", election_timeout_min_us, 1000),
    P("election_timeout_max_ms", election_timeout_max_us, 1000),
    P("adapt_window_ms", adapt_window_us, 1000),
    P("adapt_calm_ms", adapt_calm_us, 1000),
    P("adapt_max_factor", adapt_max_factor, 1),
    P("check_quorum_ms", check_quorum_us, 1000),
    P("batch_max_cmds", batch_max_cmds, 1),
    P("batch_max_bytes", batch_max_bytes, 1),
    P("batch_delay_ms", batch_delay_us, 1000),
    P("pipeline_max", pipeline_max, 1),
    P("retransmit_ms", retransmit_us, 1000),
    P("learn_max_entries", learn_max_entries, 1),
    P("client_queue_max", client_queue_max, 1),
    P("checkpoint_entries", checkpoint_entries, 1),
    P("checkpoint_bytes", checkpoint_bytes, 1),
};
#undef P

int px_config_set(px_config *c, const char *name, const char *value)
{
    if (strcmp(name, "fd") == 0)
        return px_fd_policy_parse(value, &c->fd);
    for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
        if (strcmp(name, params[i].name) != 0)
            continue;
        double d;
        if (parse_num(value, &d) < 0 || d * params[i].scale > 4294967295.0)
            return -EINVAL;
        uint32_t *field = (uint32_t *)((char *)c + params[i].offset);
        *field = (uint32_t)(d * params[i].scale + 0.5);
        return 0;
    }
    return -ENOENT;
}

void px_config_foreach(const px_config *c, void (*fn)(void *ctx, const char *name, const char *value), void *ctx)
{
    fn(ctx, "fd", px_fd_policy_name(c->fd));
    for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
        uint32_t v = *(const uint32_t *)((const char *)c + params[i].offset);
        char buf[32];
        /* %.17g round-trips through parse_num: 1500 µs -> "1.5" ms -> 1500 µs. */
        snprintf(buf, sizeof(buf), "%.17g", (double)v / params[i].scale);
        fn(ctx, params[i].name, buf);
    }
}

const char *px_role_name(px_role r)
{
    static const char *const names[] = {"follower", "candidate", "leader"};
    return (unsigned)r < 3 ? names[r] : "unknown";
}

const char *px_event_kind_name(int k)
{
    static const char *const names[] = {
        NULL, "role", "ballot", "election_start", "election_end", "commit", "execute",
        "trim", "snap_send", "snap_install", "step_down", "fd_adapt", "gle", "checkpoint",
    };
    return k >= 1 && k <= PX_EV_KIND_MAX ? names[k] : "unknown";
}

const char *px_step_down_reason_name(int r)
{
    switch (r) {
    case PX_STEP_HIGHER_BALLOT: return "higher_ballot";
    case PX_STEP_NO_QUORUM: return "no_quorum";
    case PX_STEP_LAGGING: return "lagging";
    default: return "unknown";
    }
}
