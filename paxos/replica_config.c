/* replica_config.c — parse and check the rift-replica configuration file. */
#include "replica_config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/rift_json.h"

/* Largest config file read: a real one is well under 4 KiB. */
#define RN_CONFIG_MAX_BYTES (1u << 20)

/* Parse state: the file name and the JSON path of the value being looked at. */
typedef struct rn_cx {
    const char *file;
    char path[160];
    rn_error *err;
} rn_cx;

__attribute__((format(printf, 2, 3)))
static int rn_fail(rn_cx *cx, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0)
        msg[0] = 0;
    va_end(ap);
    if (cx->path[0])
        snprintf(cx->err->msg, sizeof(cx->err->msg), "%s: %s: %s", cx->file, cx->path, msg);
    else
        snprintf(cx->err->msg, sizeof(cx->err->msg), "%s: %s", cx->file, msg);
    return -EINVAL;
}

/* Set the path to a top-level key, or key[i] / key.sub below it. */
static void rn_at(rn_cx *cx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void rn_at(rn_cx *cx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (vsnprintf(cx->path, sizeof(cx->path), fmt, ap) < 0)
        cx->path[0] = 0;
    va_end(ap);
}


static int rn_expected(rn_cx *cx, const char *what, const json_t *got)
{
    char buf[80];
    return rn_fail(cx, "expected %s, got %s", what, rift_json_describe(got, buf, sizeof(buf)));
}

static int rn_get_int(rn_cx *cx, const json_t *v, json_int_t lo, json_int_t hi, const char *what, json_int_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return rn_expected(cx, what, v);
    *out = json_integer_value(v);
    return 0;
}

static int rn_get_path(rn_cx *cx, const json_t *v, char *out, size_t cap)
{
    if (!json_is_string(v) || json_string_length(v) == 0)
        return rn_expected(cx, "a non-empty path", v);
    if (strlen(json_string_value(v)) != json_string_length(v))
        return rn_fail(cx, "expected a path without NUL bytes");
    if (json_string_length(v) >= cap)
        return rn_fail(cx, "path too long (%zu bytes, at most %zu)", json_string_length(v), cap - 1);
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

int rn_ip_parse(const char *s, uint32_t *out)
{
    struct in_addr a;
    if (inet_pton(AF_INET, s, &a) != 1)
        return -EINVAL;
    *out = ntohl(a.s_addr);
    return 0;
}

void rn_ip_format(uint32_t ip, char *buf, size_t len)
{
    snprintf(buf, len, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 0xff, (ip >> 8) & 0xff, ip & 0xff);
}

/* ---- replicas ---- */

static int rn_parse_peer(rn_cx *cx, size_t i, const json_t *v, rn_peer *out)
{
    rn_at(cx, "replicas[%zu]", i);
    if (!json_is_object(v))
        return rn_expected(cx, "an object {\"ip\": \"a.b.c.d\", \"port\": N}", v);
    const char *key;
    json_t *f;
    json_object_foreach((json_t *)v, key, f) {
        char clean[48];
        rift_json_sanitize(key, clean, sizeof(clean));
        if (strcmp(key, "ip") != 0 && strcmp(key, "port") != 0) {
            rn_at(cx, "replicas[%zu].%s", i, clean);
            return rn_fail(cx, "unknown field (expected ip or port)");
        }
    }
    const json_t *ip = json_object_get(v, "ip"), *port = json_object_get(v, "port");
    rn_at(cx, "replicas[%zu].ip", i);
    if (!ip)
        return rn_fail(cx, "required field missing (expected an IPv4 address)");
    if (!json_is_string(ip) || rn_ip_parse(json_string_value(ip), &out->ip) < 0)
        return rn_expected(cx, "an IPv4 address like \"198.18.0.1\"", ip);
    rn_at(cx, "replicas[%zu].port", i);
    if (!port)
        return rn_fail(cx, "required field missing (expected an integer 1..65535)");
    json_int_t p;
    if (rn_get_int(cx, port, 1, 65535, "an integer 1..65535", &p) < 0)
        return -EINVAL;
    out->port = (uint16_t)p;
    return 0;
}

static int rn_parse_replicas(rn_cx *cx, const json_t *v, rn_config *c)
{
    rn_at(cx, "replicas");
    if (!json_is_array(v) || json_array_size(v) < 1 || json_array_size(v) > PX_MAX_REPLICAS)
        return rn_expected(cx, "an array of 1..9 {\"ip\", \"port\"} objects", v);
    c->n_replicas = (uint8_t)json_array_size(v);
    for (size_t i = 0; i < c->n_replicas; i++) {
        if (rn_parse_peer(cx, i, json_array_get(v, i), &c->replicas[i]) < 0)
            return -EINVAL;
        for (size_t j = 0; j < i; j++) {
            if (c->replicas[j].ip == c->replicas[i].ip && c->replicas[j].port == c->replicas[i].port) {
                char ip[16];
                rn_ip_format(c->replicas[i].ip, ip, sizeof(ip));
                rn_at(cx, "replicas[%zu]", i);
                return rn_fail(cx, "same address as replicas[%zu] (%s:%u)", j, ip, c->replicas[i].port);
            }
        }
    }
    return 0;
}

/* ---- paxos ---- */

static int rn_parse_durability(rn_cx *cx, const json_t *v, px_durability *out)
{
    if (!json_is_string(v) || px_durability_parse(json_string_value(v), out) < 0)
        return rn_expected(cx, "\"fsync\", \"write\" or \"off\"", v);
    return 0;
}

/* A JSON number or string as the text px_config_set takes. */
static int rn_param_text(rn_cx *cx, const json_t *v, char *buf, size_t len)
{
    if (json_is_string(v)) {
        if (json_string_length(v) >= len || strlen(json_string_value(v)) != json_string_length(v))
            return rn_expected(cx, "a short value", v);
        memcpy(buf, json_string_value(v), json_string_length(v) + 1);
        return 0;
    }
    if (json_is_integer(v)) {
        snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return 0;
    }
    if (json_is_real(v)) {
        snprintf(buf, len, "%.17g", json_real_value(v));
        return 0;
    }
    return rn_expected(cx, "a number or a string", v);
}

static int rn_set_param(rn_cx *cx, px_config *p, const char *name, const json_t *v)
{
    char text[64];
    if (rn_param_text(cx, v, text, sizeof(text)) < 0)
        return -EINVAL;
    int rc = px_config_set(p, name, text);
    if (rc == -ENOENT)
        return rn_fail(cx, "unknown paxos parameter (see px_config_set in paxos/px_config.c)");
    if (rc < 0) {
        char buf[80];
        return rn_fail(cx, "bad value %s", rift_json_describe(v, buf, sizeof(buf)));
    }
    return 0;
}

static int rn_parse_timeout_pair(rn_cx *cx, px_config *p, const json_t *v)
{
    if (!json_is_array(v) || json_array_size(v) != 2)
        return rn_expected(cx, "[min, max] in ms", v);
    char base[160];
    snprintf(base, sizeof(base), "%s", cx->path);
    rn_at(cx, "%s[0]", base);
    if (rn_set_param(cx, p, "election_timeout_min_ms", json_array_get(v, 0)) < 0)
        return -EINVAL;
    rn_at(cx, "%s[1]", base);
    return rn_set_param(cx, p, "election_timeout_max_ms", json_array_get(v, 1));
}

static int rn_parse_paxos(rn_cx *cx, const json_t *v, rn_config *c, bool *durability_seen)
{
    rn_at(cx, "paxos");
    if (!json_is_object(v))
        return rn_expected(cx, "an object of paxos parameters", v);
    const char *key;
    json_t *f;
    json_object_foreach((json_t *)v, key, f) {
        char clean[48];
        rift_json_sanitize(key, clean, sizeof(clean));
        rn_at(cx, "paxos.%s", clean);
        int rc;
        if (strcmp(key, "election_timeout_ms") == 0) {
            rc = rn_parse_timeout_pair(cx, &c->paxos, f);
        } else if (strcmp(key, "durability") == 0) {
            px_durability d;
            rc = rn_parse_durability(cx, f, &d);
            if (rc == 0 && *durability_seen && d != c->durability)
                rc = rn_fail(cx, "\"%s\" contradicts the top-level durability \"%s\"", px_durability_name(d),
                             px_durability_name(c->durability));
            c->durability = d;
            *durability_seen = true;
        } else {
            rc = rn_set_param(cx, &c->paxos, key, f);
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- top level ---- */

static const char *const rn_fields[] = {
    "id", "replicas", "stack", "wal", "durability", "paxos", "control", "events", "seed", "attach_timeout_ms",
};
#define RN_N_FIELDS (sizeof(rn_fields) / sizeof(rn_fields[0]))

static int rn_check_fields(rn_cx *cx, const json_t *root)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)root, key, v) {
        bool known = false;
        for (size_t i = 0; i < RN_N_FIELDS && !known; i++)
            known = strcmp(key, rn_fields[i]) == 0;
        if (!known) {
            char clean[48];
            rift_json_sanitize(key, clean, sizeof(clean));
            rn_at(cx, "%s", clean);
            return rn_fail(cx, "unknown field (expected one of id, replicas, stack, wal, durability, paxos, "
                               "control, events, seed, attach_timeout_ms)");
        }
    }
    return 0;
}

static int rn_required(rn_cx *cx, const json_t *root, const char *key, const char *what, const json_t **out)
{
    *out = json_object_get(root, key);
    if (*out)
        return 0;
    rn_at(cx, "%s", key);
    return rn_fail(cx, "required field missing (expected %s)", what);
}

static int rn_parse_optional(rn_cx *cx, const json_t *root, rn_config *c)
{
    const json_t *v;
    if ((v = json_object_get(root, "control"))) {
        rn_at(cx, "control");
        if (!json_is_null(v) && rn_get_path(cx, v, c->control, sizeof(c->control)) < 0)
            return -EINVAL;
    }
    if ((v = json_object_get(root, "events"))) {
        rn_at(cx, "events");
        if (!json_is_null(v) && rn_get_path(cx, v, c->events, sizeof(c->events)) < 0)
            return -EINVAL;
    }
    json_int_t x;
    if ((v = json_object_get(root, "seed"))) {
        rn_at(cx, "seed");
        if (rn_get_int(cx, v, 0, INT64_MAX, "an integer >= 0", &x) < 0)
            return -EINVAL;
        c->seed = (uint64_t)x;
    }
    if ((v = json_object_get(root, "attach_timeout_ms"))) {
        rn_at(cx, "attach_timeout_ms");
        if (rn_get_int(cx, v, 0, 3600000, "an integer 0..3600000", &x) < 0)
            return -EINVAL;
        c->attach_timeout_ms = (uint32_t)x;
    }
    return 0;
}

static int rn_parse_root(rn_cx *cx, const json_t *root, rn_config *c)
{
    if (!json_is_object(root))
        return rn_expected(cx, "a JSON object", root);
    if (rn_check_fields(cx, root) < 0)
        return -EINVAL;
    const json_t *v;
    if (rn_required(cx, root, "replicas", "an array of {\"ip\", \"port\"}", &v) < 0 ||
        rn_parse_replicas(cx, v, c) < 0)
        return -EINVAL;
    json_int_t id;
    if (rn_required(cx, root, "id", "this replica's index in replicas", &v) < 0)
        return -EINVAL;
    rn_at(cx, "id");
    char what[48];
    snprintf(what, sizeof(what), "an integer 0..%u (an index into replicas)", c->n_replicas - 1u);
    if (rn_get_int(cx, v, 0, c->n_replicas - 1, what, &id) < 0)
        return -EINVAL;
    c->id = (uint8_t)id;
    if (rn_required(cx, root, "stack", "the rift-stackd socket path", &v) < 0)
        return -EINVAL;
    rn_at(cx, "stack");
    if (rn_get_path(cx, v, c->stack, sizeof(c->stack)) < 0)
        return -EINVAL;
    if (rn_required(cx, root, "wal", "the write-ahead log path", &v) < 0)
        return -EINVAL;
    rn_at(cx, "wal");
    if (rn_get_path(cx, v, c->wal, sizeof(c->wal)) < 0)
        return -EINVAL;
    bool durability_seen = false;
    if ((v = json_object_get(root, "durability"))) {
        rn_at(cx, "durability");
        if (rn_parse_durability(cx, v, &c->durability) < 0)
            return -EINVAL;
        durability_seen = true;
    }
    if ((v = json_object_get(root, "paxos")) && rn_parse_paxos(cx, v, c, &durability_seen) < 0)
        return -EINVAL;
    return rn_parse_optional(cx, root, c);
}

static void rn_config_default(rn_config *c)
{
    memset(c, 0, sizeof(*c));
    px_config_default(&c->paxos);
    c->durability = PX_DURABILITY_FSYNC;
    c->seed = 1;
    c->attach_timeout_ms = RN_ATTACH_TIMEOUT_MS_DEFAULT;
}

int rn_config_parse(const char *file, const char *text, size_t len, rn_config *out, rn_error *err)
{
    rn_cx cx = {.file = file, .err = err};
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        snprintf(err->msg, sizeof(err->msg), "%s:%d:%d: invalid JSON: %s", file, je.line, je.column, je.text);
        return -EINVAL;
    }
    rn_config *c = malloc(sizeof(*c));
    if (!c) {
        json_decref(root);
        snprintf(err->msg, sizeof(err->msg), "%s: out of memory", file);
        return -ENOMEM;
    }
    rn_config_default(c);
    int rc = rn_parse_root(&cx, root, c);
    json_decref(root);
    if (rc == 0) {
        c->paxos.n_replicas = c->n_replicas;
        char why[160];
        cx.path[0] = 0;
        rn_at(&cx, "paxos");
        if (px_config_check(&c->paxos, why, sizeof(why)) < 0)
            rc = rn_fail(&cx, "%s", why);
    }
    if (rc == 0) {
        *out = *c;
        err->msg[0] = 0;
    }
    free(c);
    return rc;
}

int rn_config_load(const char *path, rn_config *out, rn_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        snprintf(err->msg, sizeof(err->msg), "%s: %s", path, e == ENOENT ? "no such file" : strerror(e));
        return -e;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > RN_CONFIG_MAX_BYTES) {
        close(fd);
        snprintf(err->msg, sizeof(err->msg), "%s: not a regular file of at most 1 MiB", path);
        return -EINVAL;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        close(fd);
        snprintf(err->msg, sizeof(err->msg), "%s: out of memory", path);
        return -ENOMEM;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    int rc = rn_config_parse(path, buf, got, out, err);
    free(buf);
    return rc;
}

/* ---- dump ---- */

static json_t *rn_ms(uint32_t us)
{
    if (us % 1000 == 0)
        return json_integer(us / 1000);
    return json_real(us / 1000.0);
}

static int rn_paxos_to_json(const px_config *p, json_t *o)
{
    int rc = 0;
    rc |= json_object_set_new(o, "fd", json_string(px_fd_policy_name(p->fd)));
    rc |= json_object_set_new(o, "heartbeat_ms", rn_ms(p->heartbeat_us));
    rc |= json_object_set_new(o, "election_timeout_ms",
                              json_pack("[o,o]", rn_ms(p->election_timeout_min_us), rn_ms(p->election_timeout_max_us)));
    rc |= json_object_set_new(o, "adapt_window_ms", rn_ms(p->adapt_window_us));
    rc |= json_object_set_new(o, "adapt_calm_ms", rn_ms(p->adapt_calm_us));
    rc |= json_object_set_new(o, "adapt_max_factor", json_integer(p->adapt_max_factor));
    rc |= json_object_set_new(o, "check_quorum_ms", rn_ms(p->check_quorum_us));
    rc |= json_object_set_new(o, "batch_max_cmds", json_integer(p->batch_max_cmds));
    rc |= json_object_set_new(o, "batch_max_bytes", json_integer(p->batch_max_bytes));
    rc |= json_object_set_new(o, "batch_delay_ms", rn_ms(p->batch_delay_us));
    rc |= json_object_set_new(o, "pipeline_max", json_integer(p->pipeline_max));
    rc |= json_object_set_new(o, "retransmit_ms", rn_ms(p->retransmit_us));
    rc |= json_object_set_new(o, "learn_max_entries", json_integer(p->learn_max_entries));
    rc |= json_object_set_new(o, "client_queue_max", json_integer(p->client_queue_max));
    return rc ? -ENOMEM : 0;
}

json_t *rn_config_to_json(const rn_config *c)
{
    json_t *reps = json_array(), *paxos = json_object();
    json_t *o = json_pack("{s:i, s:o, s:s, s:s, s:s, s:o, s:I, s:I}", "id", c->id, "replicas", reps, "stack",
                          c->stack, "wal", c->wal, "durability", px_durability_name(c->durability), "paxos", paxos,
                          "seed", (json_int_t)c->seed, "attach_timeout_ms", (json_int_t)c->attach_timeout_ms);
    if (!o)
        return NULL; /* json_pack released reps and paxos ("o" steals even on error) */
    int rc = rn_paxos_to_json(&c->paxos, paxos);
    for (uint8_t i = 0; i < c->n_replicas && rc == 0; i++) {
        char ip[16];
        rn_ip_format(c->replicas[i].ip, ip, sizeof(ip));
        rc = json_array_append_new(reps, json_pack("{s:s, s:i}", "ip", ip, "port", c->replicas[i].port));
    }
    if (rc == 0 && c->control[0])
        rc = json_object_set_new(o, "control", json_string(c->control));
    if (rc == 0 && c->events[0])
        rc = json_object_set_new(o, "events", json_string(c->events));
    if (rc) {
        json_decref(o);
        return NULL;
    }
    return o;
}
