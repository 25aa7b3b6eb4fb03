/* ch_scenario.c — scenario files: parse, override, validate, normalize, expand.
 *
 * Validation is table-driven: each JSON object is described by a ch_field table
 * (key, parser, required?, destination offset, range). The walker rejects keys
 * not in the table (suggesting the nearest one), reports missing required keys
 * and calls each field's parser with the JSON path pushed, so every message
 * reads "file: path: what was expected, got what". Order inside a table matters:
 * fields that later checks depend on (duration_ms, cluster, workload, at_ms)
 * come first. */
#include "ch_scenario.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/rift_json.h"

#define CH_PATH_MAX 256
#define CH_MS_MAX 3600000.0        /* network delays, gc pauses: at most an hour */
#define CH_KEYS_MAX 10000000
#define CH_VALUE_BYTES_MAX (1 << 20)
#define CH_RATE_MAX 10000000.0
#define CH_WEIGHT_MAX 1e9
#define CH_DUR (-1)                /* an imax meaning "the scenario's duration_ms" */

/* ------------------------------------------------------------------ context */

typedef struct ch_ctx {
    const char *file;
    ch_error *err;
    ch_scenario *sc;
    char path[CH_PATH_MAX]; /* JSON path of the value being parsed */
    size_t plen;
    unsigned sel_seen;      /* selector keys seen in the current action */
} ch_ctx;

enum { CH_SEEN_BETWEEN = 1, CH_SEEN_FROM = 2, CH_SEEN_TO = 4, CH_SEEN_NODE = 8 };

/* Format into err->msg; a message cut short ends in "..." so it reads as such. */
__attribute__((format(printf, 2, 3)))
static void ch_msg(ch_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    if (n < 0)
        err->msg[0] = 0;
    else if ((size_t)n >= sizeof(err->msg))
        memcpy(err->msg + sizeof(err->msg) - 4, "...", 4);
}

__attribute__((format(printf, 2, 3)))
static int ch_fail(ch_ctx *cx, const char *fmt, ...)
{
    char msg[448];
    va_list ap;
    va_start(ap, fmt);
    if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0)
        msg[0] = 0;
    va_end(ap);
    if (cx->plen)
        ch_msg(cx->err, "%s: %s: %s", cx->file, cx->path, msg);
    else
        ch_msg(cx->err, "%s: %s", cx->file, msg);
    return -EINVAL;
}

/* Append to the path (truncating when full); returns the length to pop back to. */
static size_t ch_push_text(ch_ctx *cx, const char *text)
{
    size_t saved = cx->plen, room = sizeof(cx->path) - 1 - cx->plen, n = strlen(text);
    n = n < room ? n : room;
    memcpy(cx->path + cx->plen, text, n);
    cx->plen += n;
    cx->path[cx->plen] = 0;
    return saved;
}

static size_t ch_push_key(ch_ctx *cx, const char *key)
{
    char seg[56];
    seg[0] = '.';
    rift_json_sanitize(key, seg + 1, sizeof(seg) - 1);
    return ch_push_text(cx, cx->plen ? seg : seg + 1);
}

static size_t ch_push_index(ch_ctx *cx, size_t i)
{
    char seg[32];
    snprintf(seg, sizeof(seg), "[%zu]", i);
    return ch_push_text(cx, seg);
}

static void ch_pop(ch_ctx *cx, size_t saved)
{
    cx->plen = saved;
    cx->path[saved] = 0;
}

/* What a JSON value looks like, for "got ..." in messages. */
#define GOT(v) rift_json_describe((v), (char[64]){0}, 64)

/* ------------------------------------------------- suggestions by distance */

/* Optimal string alignment distance (a transposition costs 1), capped inputs. */
static size_t ch_distance(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    if (n > 40 || m > 40)
        return SIZE_MAX;
    uint8_t d[41][41];
    for (size_t i = 0; i <= n; i++)
        d[i][0] = (uint8_t)i;
    for (size_t j = 0; j <= m; j++)
        d[0][j] = (uint8_t)j;
    for (size_t i = 1; i <= n; i++) {
        for (size_t j = 1; j <= m; j++) {
            unsigned cost = a[i - 1] != b[j - 1];
            unsigned best = d[i - 1][j - 1] + cost;
            if (d[i - 1][j] + 1u < best)
                best = d[i - 1][j] + 1u;
            if (d[i][j - 1] + 1u < best)
                best = d[i][j - 1] + 1u;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1u < best)
                best = d[i - 2][j - 2] + 1u;
            d[i][j] = (uint8_t)best;
        }
    }
    return d[n][m];
}

/* The candidate nearest to s, if near enough to be a plausible typo. */
static const char *ch_suggest(const char *s, const char *const *cands, size_t n)
{
    size_t len = strlen(s), limit = len <= 3 ? 1 : (len / 3 > 2 ? len / 3 : 2);
    const char *best = NULL;
    size_t best_d = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        /* "every" for "every_ms": a missing unit suffix is a typo too */
        if (len >= 3 && strncmp(cands[i], s, len) == 0 && cands[i][len] == '_')
            return cands[i];
        size_t d = ch_distance(s, cands[i]);
        if (d < best_d) {
            best_d = d;
            best = cands[i];
        }
    }
    return best_d <= limit ? best : NULL;
}

/* "a, b, c" (or "a, b or c" with last_or) into buf. */
static const char *ch_join(const char *const *names, size_t n, bool last_or, char *buf, size_t len)
{
    size_t at = 0;
    buf[0] = 0;
    for (size_t i = 0; i < n && at < len; i++) {
        const char *sep = i == 0 ? "" : (last_or && i + 1 == n ? " or " : ", ");
        int w = snprintf(buf + at, len - at, "%s%s", sep, names[i]);
        if (w < 0)
            break;
        at += (size_t)w;
    }
    return buf;
}

/* --------------------------------------------------------- scalar parsers */

static int ch_int_range_fail(ch_ctx *cx, const json_t *v, int64_t min, int64_t max, const char *what)
{
    if (max == INT64_MAX)
        return ch_fail(cx, "expected an integer >= %" PRId64 "%s, got %s", min, what, GOT(v));
    return ch_fail(cx, "expected an integer from %" PRId64 " to %" PRId64 "%s, got %s", min, max, what, GOT(v));
}

/* An integer in [min, max]; a real with an integral value counts (1e3, 5000.0). */
static int ch_get_int(ch_ctx *cx, const json_t *v, int64_t min, int64_t max, const char *what, int64_t *out)
{
    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);
        if (x < min || x > max)
            return ch_int_range_fail(cx, v, min, max, what);
        *out = x;
        return 0;
    }
    if (json_is_real(v)) {
        double x = json_real_value(v);
        /* range first: the cast is only defined for doubles that fit */
        if (x < (double)min || x > (double)max || x >= 9.2e18 || x != (double)(int64_t)x)
            return ch_int_range_fail(cx, v, min, max, what);
        *out = (int64_t)x;
        return 0;
    }
    return ch_int_range_fail(cx, v, min, max, what);
}

/* A number in [min, max] (min excluded when excl). */
static int ch_get_num(ch_ctx *cx, const json_t *v, double min, double max, bool excl, double *out)
{
    double x = json_is_number(v) ? json_number_value(v) : NAN;
    if (json_is_number(v) && isfinite(x) && (excl ? x > min : x >= min) && x <= max) {
        *out = x;
        return 0;
    }
    if (excl)
        return ch_fail(cx, "expected a number > %g and <= %g, got %s", min, max, GOT(v));
    return ch_fail(cx, "expected a number from %g to %g, got %s", min, max, GOT(v));
}

static int ch_get_str(ch_ctx *cx, const json_t *v, const char **out)
{
    if (!json_is_string(v))
        return ch_fail(cx, "expected a string, got %s", GOT(v));
    *out = json_string_value(v);
    return 0;
}

static int ch_get_enum(ch_ctx *cx, const json_t *v, const char *const *names, size_t n, int *out)
{
    char list[256];
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        for (size_t i = 0; i < n; i++) {
            if (strcmp(s, names[i]) == 0) {
                *out = (int)i;
                return 0;
            }
        }
        const char *near = ch_suggest(s, names, n);
        if (near)
            return ch_fail(cx, "expected one of %s, got %s (did you mean \"%s\"?)",
                           ch_join(names, n, false, list, sizeof(list)), GOT(v), near);
    }
    return ch_fail(cx, "expected one of %s, got %s", ch_join(names, n, false, list, sizeof(list)), GOT(v));
}

/* Milliseconds (fractions allowed, >= 0, range-checked) to µs, rounded.
 * Plain arithmetic rather than llround keeps the module free of libm. */
static uint64_t ch_ms_to_us(double ms) { return (uint64_t)(ms * 1000.0 + 0.5); }

/* -------------------------------------------------------------- field tables */

typedef struct ch_field ch_field;
typedef int (*ch_field_fn)(ch_ctx *cx, json_t *v, void *dst, const ch_field *f);

struct ch_field {
    const char *key;
    ch_field_fn fn;
    bool required;
    size_t off;         /* destination inside dst */
    bool flag;          /* set the bool at flag_off when the field is present */
    size_t flag_off;
    int64_t imin, imax; /* integer fields; imax CH_DUR = duration_ms */
    double dmin, dmax;  /* number fields */
    bool excl;          /* dmin itself is out of range */
    const char *expect; /* for "required field missing (expected ...)" */
};

#define AT(dst, f) ((void *)((char *)(dst) + (f)->off))
/* Table shorthands: presence flag; a destination field. */
#define FLAG(type, field) .flag = true, .flag_off = offsetof(type, field)
#define OFF(type, field) .off = offsetof(type, field)

static int64_t ch_imax(const ch_ctx *cx, const ch_field *f)
{
    return f->imax == CH_DUR ? (int64_t)cx->sc->duration_ms : f->imax;
}

static int ch_f_int(ch_ctx *cx, json_t *v, const ch_field *f, int64_t *x)
{
    return ch_get_int(cx, v, f->imin, ch_imax(cx, f), f->imax == CH_DUR ? " (duration_ms)" : "", x);
}

static int ch_f_u32(ch_ctx *cx, json_t *v, void *dst, const ch_field *f)
{
    int64_t x = 0;
    int rc = ch_f_int(cx, v, f, &x);
    if (rc == 0)
        *(uint32_t *)AT(dst, f) = (uint32_t)x;
    return rc;
}

static int ch_f_u64(ch_ctx *cx, json_t *v, void *dst, const ch_field *f)
{
    int64_t x = 0;
    int rc = ch_f_int(cx, v, f, &x);
    if (rc == 0)
        *(uint64_t *)AT(dst, f) = (uint64_t)x;
    return rc;
}

static int ch_f_f64(ch_ctx *cx, json_t *v, void *dst, const ch_field *f)
{
    return ch_get_num(cx, v, f->dmin, f->dmax, f->excl, (double *)AT(dst, f));
}

static int ch_f_ms_us(ch_ctx *cx, json_t *v, void *dst, const ch_field *f)
{
    double ms = 0;
    int rc = ch_get_num(cx, v, f->dmin, f->dmax, f->excl, &ms);
    if (rc == 0)
        *(uint64_t *)AT(dst, f) = ch_ms_to_us(ms);
    return rc;
}

static int ch_f_bool(ch_ctx *cx, json_t *v, void *dst, const ch_field *f)
{
    if (!json_is_boolean(v))
        return ch_fail(cx, "expected true or false, got %s", GOT(v));
    *(bool *)AT(dst, f) = json_is_true(v);
    return 0;
}

static int ch_unknown_key(ch_ctx *cx, const char *key, const ch_field *fields, size_t n, const char *owner)
{
    const char *names[32];
    char list[320];
    size_t k = n < 32 ? n : 32;
    for (size_t i = 0; i < k; i++)
        names[i] = fields[i].key;
    size_t saved = ch_push_key(cx, key);
    const char *near = ch_suggest(key, names, k);
    int rc;
    if (near)
        rc = ch_fail(cx, "unknown field%s%s (did you mean \"%s\"?)", owner ? " for " : "", owner ? owner : "", near);
    else
        rc = ch_fail(cx, "unknown field%s%s (expected one of %s)", owner ? " for " : "", owner ? owner : "",
                     ch_join(names, k, false, list, sizeof(list)));
    ch_pop(cx, saved);
    return rc;
}

/* Validate obj against a field table, writing into dst. owner names the object
 * kind in unknown-field messages (actions: do="crash"). */
static int ch_walk(ch_ctx *cx, json_t *obj, const ch_field *fields, size_t n, void *dst, const char *owner)
{
    if (!json_is_object(obj))
        return ch_fail(cx, "expected an object, got %s", GOT(obj));
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        size_t i = 0;
        while (i < n && strcmp(fields[i].key, key) != 0)
            i++;
        if (i == n)
            return ch_unknown_key(cx, key, fields, n, owner);
    }
    for (size_t i = 0; i < n; i++) {
        const ch_field *f = &fields[i];
        size_t saved = ch_push_key(cx, f->key);
        v = json_object_get(obj, f->key);
        int rc = 0;
        if (v)
            rc = f->fn(cx, v, dst, f);
        else if (f->required)
            rc = ch_fail(cx, "required field missing (expected %s)", f->expect ? f->expect : "a value");
        ch_pop(cx, saved);
        if (rc)
            return rc;
        if (v && f->flag)
            *(bool *)((char *)dst + f->flag_off) = true;
    }
    return 0;
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* -------------------------------------------------------------------- nodes */

enum {
    CH_ALLOW_REPLICA = 1,
    CH_ALLOW_CLIENT = 2,
    CH_ALLOW_LEADER = 4,
    CH_ALLOW_ALL = 8,
    CH_ALLOW_ANY = 15,
    CH_ALLOW_PROCESS = CH_ALLOW_REPLICA | CH_ALLOW_LEADER | CH_ALLOW_ALL,
};

const char *ch_node_format(ch_node n, char *buf, size_t len)
{
    switch (n.kind) {
    case CH_NODE_REPLICA: snprintf(buf, len, "r%u", n.index + 1u); break;
    case CH_NODE_CLIENT: snprintf(buf, len, "c%u", n.index + 1u); break;
    case CH_NODE_LEADER: snprintf(buf, len, "leader"); break;
    case CH_NODE_ALL: snprintf(buf, len, "*"); break;
    default: snprintf(buf, len, "?"); break;
    }
    return buf;
}

/* The node names allowed here, e.g. `r1..r3, c1, "leader" or "*"`. */
static const char *ch_node_expect(const ch_ctx *cx, unsigned allow, char *buf, size_t len)
{
    char r[16], c[16];
    const char *parts[4];
    size_t n = 0;
    unsigned nr = cx->sc->replicas, nc = cx->sc->workload.nodes;
    if (allow & CH_ALLOW_REPLICA) {
        snprintf(r, sizeof(r), nr > 1 ? "r1..r%u" : "r1", nr);
        parts[n++] = r;
    }
    if (allow & CH_ALLOW_CLIENT) {
        snprintf(c, sizeof(c), nc > 1 ? "c1..c%u" : "c1", nc);
        parts[n++] = c;
    }
    if (allow & CH_ALLOW_LEADER)
        parts[n++] = "\"leader\"";
    if (allow & CH_ALLOW_ALL)
        parts[n++] = "\"*\"";
    return ch_join(parts, n, true, buf, len);
}

/* "r3" -> replica 2; false for anything but [rc][1-9][0-9]*. */
static bool ch_node_syntax(const char *s, ch_node *out, unsigned long *number)
{
    if (strcmp(s, "leader") == 0 || strcmp(s, "*") == 0) {
        out->kind = s[0] == '*' ? CH_NODE_ALL : CH_NODE_LEADER;
        out->index = 0;
        return true;
    }
    if ((s[0] != 'r' && s[0] != 'c') || s[1] < '1' || s[1] > '9')
        return false;
    unsigned long x = 0;
    for (const char *p = s + 1; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        if (x < 1000000)
            x = x * 10 + (unsigned long)(*p - '0');
    }
    out->kind = s[0] == 'r' ? CH_NODE_REPLICA : CH_NODE_CLIENT;
    *number = x;
    return true;
}

static bool ch_node_allowed(ch_node n, unsigned allow)
{
    static const unsigned bit[] = {CH_ALLOW_REPLICA, CH_ALLOW_CLIENT, CH_ALLOW_LEADER, CH_ALLOW_ALL};
    return (bit[n.kind] & allow) != 0;
}

/* A node name that exists in this cluster and is allowed here; why prefixes the
 * message when the name exists but is not allowed ("crash applies to replicas"). */
static int ch_node_parse(ch_ctx *cx, const json_t *v, unsigned allow, const char *why, ch_node *out)
{
    char list[96];
    unsigned long x = 0;
    ch_node n = {0};
    if (!json_is_string(v) || !ch_node_syntax(json_string_value(v), &n, &x))
        return ch_fail(cx, "expected a node name (%s), got %s", ch_node_expect(cx, allow, list, sizeof(list)),
                       GOT(v));
    unsigned nr = cx->sc->replicas, nc = cx->sc->workload.nodes;
    if (n.kind == CH_NODE_REPLICA && x > nr)
        return ch_fail(cx, "node %s does not exist (cluster has %u replica%s)", GOT(v), nr, nr == 1 ? "" : "s");
    if (n.kind == CH_NODE_CLIENT && x > nc)
        return ch_fail(cx, "node %s does not exist (workload has %u client node%s)", GOT(v), nc, nc == 1 ? "" : "s");
    if (!ch_node_allowed(n, allow))
        return ch_fail(cx, "%s: expected %s, got %s", why, ch_node_expect(cx, allow, list, sizeof(list)), GOT(v));
    if (n.kind == CH_NODE_REPLICA || n.kind == CH_NODE_CLIENT)
        n.index = (uint8_t)(x - 1);
    *out = n;
    return 0;
}

static bool ch_node_eq(ch_node a, ch_node b)
{
    return a.kind == b.kind && a.index == b.index;
}

/* ------------------------------------------------------------------ actions */

static const char *const ch_kind_names[CH_ACT_COUNT] = {
    "partition", "cut", "loss", "delay", "duplicate", "reorder", "clear", "heal-all",
    "crash", "restart", "pause", "resume", "gc-pause", "set", "link-down", "link-up",
};

const char *ch_action_kind_name(int kind)
{
    return kind >= 0 && kind < CH_ACT_COUNT ? ch_kind_names[kind] : "unknown";
}

static const char *const ch_delay_dists[] = {"uniform", "normal", "pareto"};

static int ch_a_at(ch_ctx *cx, json_t *v, void *dst, const ch_field *f)
{
    ch_action *a = dst;
    int rc = ch_f_u64(cx, v, dst, f);
    a->repeat_until_ms = a->at_ms;
    return rc;
}

static int ch_a_do(ch_ctx *cx, json_t *v, void *dst, const ch_field *f)
{
    return 0; /* parsed before the walk: it picks the table */
}

typedef struct ch_repeat {
    uint64_t every_ms, until_ms;
    bool has_until;
} ch_repeat;

static int ch_a_repeat(ch_ctx *cx, json_t *v, void *dst, const ch_field *f)
{
    ch_action *a = dst;
    ch_repeat r = {0};
    const ch_field fields[] = {
        {.key = "every_ms", .fn = ch_f_u64, .required = true, OFF(ch_repeat, every_ms), .imin = 1,
         .imax = CH_DUR, .expect = "an integer > 0 (ms between occurrences)"},
        {.key = "until_ms", .fn = ch_f_u64, OFF(ch_repeat, until_ms), FLAG(ch_repeat, has_until),
         .imin = (int64_t)a->at_ms, .imax = CH_DUR},
    };
    int rc = ch_walk(cx, v, fields, N(fields), &r, NULL);
    if (rc)
        return rc;
    a->repeat_every_ms = r.every_ms;
    a->repeat_until_ms = r.has_until ? r.until_ms : cx->sc->duration_ms;
    return 0;
}

static int ch_a_sel_node(ch_ctx *cx, json_t *v, void *dst, const ch_field *f)
{
    ch_action *a = dst;
    cx->sel_seen |= CH_SEEN_NODE;
    a->sel.kind = CH_SEL_NODE;
    return ch_node_parse(cx, v, CH_ALLOW_ANY, "", &a->sel.a);
}

static int ch_a_between(ch_ctx *cx, json_t *v, void *dst, const ch_field *f)
{
    ch_action *a = dst;
    cx->sel_seen |= CH_SEEN_BETWEEN;
    a->sel.kind = CH_SEL_BETWEEN;
    if (!json_is_array(v) || json_array_size(v) != 2)
        return ch_fail(cx, "expected two node names [a, b], got %s", GOT(v));
    ch_node *ends[2] = {&a->sel.a, &a->sel.b};
    for (size_t i = 0; i < 2; i++) {
        size_t saved = ch_push_index(cx, i);
        int rc = ch_node_parse(cx, json_array_get(v, i), CH_ALLOW_ANY, "", ends[i]);
        ch_pop(cx, saved);
        if (rc)
            return rc;
    }
    if (ch_node_eq(a->sel.a, a->sel.b))
        return ch_fail(cx, "expected two different nodes, got %s twice", GOT(json_array_get(v, 0)));
    return 0;
}

static int ch_a_from(ch_ctx *cx, json_t *v, void *dst, const ch_field *f)
{
    ch_action *a = dst;
    cx->sel_seen |= CH_SEEN_FROM;
    a->sel.kind = CH_SEL_FROM_TO;
    return ch_node_parse(cx, v, CH_ALLOW_ANY, "", &a->sel.a);
}

static int ch_a_to(ch_ctx *cx, json_t *v, void *dst, const ch_field *f)
{
    ch_action *a = dst;
    cx->sel_seen |= CH_SEEN_TO;
    a->sel.kind = CH_SEL_FROM_TO;
    int rc = ch_node_parse(cx, v, CH_ALLOW_ANY, "", &a->sel.b);
    if (rc == 0 && (cx->sel_seen & CH_SEEN_FROM) && ch_node_eq(a->sel.a, a->sel.b))
        return ch_fail(cx, "expected a node other than \"from\", got %s", GOT(v));
    return rc;
}

/* Exactly one selector form per action. */
static int ch_check_selector(ch_ctx *cx)
{
    unsigned s = cx->sel_seen;
    bool between = s & CH_SEEN_BETWEEN, node = s & CH_SEEN_NODE, dir = s & (CH_SEEN_FROM | CH_SEEN_TO);
    if (between + node + dir != 1)
        return ch_fail(cx, "expected one link selector: \"between\": [a, b], \"from\": a with \"to\": b, "
                           "or \"node\": a%s", s ? " (not several)" : "");
    if (dir && !(s & CH_SEEN_FROM))
        return ch_fail(cx, "\"to\" needs \"from\" (one direction: from a to b)");
    if (dir && !(s & CH_SEEN_TO))
        return ch_fail(cx, "\"from\" needs \"to\" (one direction: from a to b)");
    return 0;
}

static int ch_a_process_node(ch_ctx *cx, json_t *v, void *dst, const ch_field *f)
{
    ch_action *a = dst;
    char why[64];
    snprintf(why, sizeof(why), "%s applies to replicas", ch_kind_names[a->kind]);
    return ch_node_parse(cx, v, CH_ALLOW_PROCESS, why, &a->node);
}

static int ch_a_any_node(ch_ctx *cx, json_t *v, void *dst, const ch_field *f)
{
    ch_action *a = dst;
    return ch_node_parse(cx, v, CH_ALLOW_ANY, "", &a->node);
}

static int ch_a_distribution(ch_ctx *cx, json_t *v, void *dst, const ch_field *f)
{
    ch_action *a = dst;
    int d;
    int rc = ch_get_enum(cx, v, ch_delay_dists, N(ch_delay_dists), &d);
    if (rc == 0)
        a->distribution = (st_delay_dist)d;
    return rc;
}

/* ---- partition groups ---- */

/* Where each named node sits, to report "already in groups[0]". */
static int ch_partition_add(ch_ctx *cx, ch_partition *p, ch_node n, uint8_t g, const json_t *v)
{
    for (size_t i = 0; i < p->n_nodes; i++) {
        if (ch_node_eq(p->nodes[i], n))
            return ch_fail(cx, "node %s is already in groups[%u] (a node can be in one group only)", GOT(v),
                           p->group[i]);
    }
    if (p->n_nodes >= CH_PARTITION_MAX)
        return ch_fail(cx, "too many nodes in one partition (at most %u)", CH_PARTITION_MAX);
    p->nodes[p->n_nodes] = n;
    p->group[p->n_nodes++] = g;
    return 0;
}

/* "leader" may turn out to be any replica: naming a replica in another group
 * would make the partition depend on who leads, so it is refused. */
static int ch_partition_leader_check(ch_ctx *cx, const ch_partition *p)
{
    int lg = -1;
    for (size_t i = 0; i < p->n_nodes; i++)
        if (p->nodes[i].kind == CH_NODE_LEADER)
            lg = p->group[i];
    if (lg < 0)
        return 0;
    for (size_t i = 0; i < p->n_nodes; i++) {
        if (p->nodes[i].kind == CH_NODE_REPLICA && p->group[i] != lg) {
            char name[8];
            return ch_fail(cx, "\"leader\" (groups[%d]) may be %s (groups[%u]): name replicas only in the "
                               "leader's group, or use \"*\" for the rest",
                           lg, ch_node_format(p->nodes[i], name, sizeof(name)), p->group[i]);
        }
    }
    return 0;
}

static int ch_a_group(ch_ctx *cx, const json_t *grp, uint8_t g, ch_partition *p)
{
    if (!json_is_array(grp) || json_array_size(grp) == 0)
        return ch_fail(cx, "expected a non-empty array of node names, got %s", GOT(grp));
    for (size_t j = 0; j < json_array_size(grp); j++) {
        const json_t *v = json_array_get(grp, j);
        size_t saved = ch_push_index(cx, j);
        ch_node n;
        int rc = ch_node_parse(cx, v, CH_ALLOW_ANY, "", &n);
        if (rc == 0)
            rc = ch_partition_add(cx, p, n, g, v);
        ch_pop(cx, saved);
        if (rc)
            return rc;
    }
    return 0;
}

static int ch_a_groups(ch_ctx *cx, json_t *v, void *dst, const ch_field *f)
{
    ch_partition *p = &((ch_action *)dst)->partition;
    if (!json_is_array(v) || json_array_size(v) < 2)
        return ch_fail(cx, "expected at least two groups of node names ([[\"r1\"], [\"r2\", \"r3\"]]), got %s",
                       GOT(v));
    if (json_array_size(v) > CH_PARTITION_MAX)
        return ch_fail(cx, "too many groups (at most %u)", CH_PARTITION_MAX);
    for (size_t g = 0; g < json_array_size(v); g++) {
        size_t saved = ch_push_index(cx, g);
        int rc = ch_a_group(cx, json_array_get(v, g), (uint8_t)g, p);
        ch_pop(cx, saved);
        if (rc)
            return rc;
    }
    p->n_groups = (uint8_t)json_array_size(v);
    return ch_partition_leader_check(cx, p);
}

/* ---- gc-pause length ---- */

typedef struct ch_dist_json {
    double min, max, mean, stddev;
    bool has_min, has_max, has_mean, has_stddev;
} ch_dist_json;

static int ch_dist_object(ch_ctx *cx, json_t *v, ch_dist *out)
{
    ch_dist_json d = {0};
#define DF(k, excl_)                                                                     \
    {.key = #k, .fn = ch_f_f64, OFF(ch_dist_json, k), FLAG(ch_dist_json, has_##k), .dmin = 0, \
     .dmax = CH_MS_MAX, .excl = excl_}
    const ch_field fields[] = {DF(min, false), DF(max, false), DF(mean, true), DF(stddev, false)};
#undef DF
    int rc = ch_walk(cx, v, fields, N(fields), &d, NULL);
    if (rc)
        return rc;
    bool range = d.has_min || d.has_max, normal = d.has_mean || d.has_stddev;
    if (range == normal)
        return ch_fail(cx, "expected {\"min\": ms, \"max\": ms} (uniform) or "
                           "{\"mean\": ms, \"stddev\": ms} (normal)");
    if (range && !(d.has_min && d.has_max))
        return ch_fail(cx, "a uniform length needs both \"min\" and \"max\"");
    if (normal && !(d.has_mean && d.has_stddev))
        return ch_fail(cx, "a normal length needs both \"mean\" and \"stddev\"");
    if (range && d.min > d.max)
        return ch_fail(cx, "expected min <= max, got min %g > max %g", d.min, d.max);
    if (range && d.max <= 0)
        return ch_fail(cx, "expected max > 0");
    out->kind = range ? CH_DIST_UNIFORM : CH_DIST_NORMAL;
    out->a_us = ch_ms_to_us(range ? d.min : d.mean);
    out->b_us = ch_ms_to_us(range ? d.max : d.stddev);
    return 0;
}

static int ch_a_pause(ch_ctx *cx, json_t *v, void *dst, const ch_field *f)
{
    ch_dist *out = &((ch_action *)dst)->gc_pause;
    if (json_is_object(v))
        return ch_dist_object(cx, v, out);
    double ms = 0;
    if (!json_is_number(v))
        return ch_fail(cx, "expected a number of ms, {\"min\": ms, \"max\": ms} or {\"mean\": ms, \"stddev\": ms}, "
                           "got %s", GOT(v));
    int rc = ch_get_num(cx, v, 0, CH_MS_MAX, true, &ms);
    if (rc == 0)
        *out = (ch_dist){CH_DIST_CONST, ch_ms_to_us(ms), 0};
    return rc;
}

/* ---- set ---- */

/* The px_config_set names (with units), in the order run.json lists them; the
 * offsets let to_json read the values back. */
typedef struct ch_param {
    const char *name;
    size_t off;
    bool ms; /* config holds µs, the name says ms */
} ch_param;

#define PP(name, field, ms) {name, offsetof(px_config, field), ms}
static const ch_param ch_params[] = {
    PP("heartbeat_ms", heartbeat_us, true),
    PP("election_timeout_min_ms", election_timeout_min_us, true),
    PP("election_timeout_max_ms", election_timeout_max_us, true),
    PP("adapt_window_ms", adapt_window_us, true),
    PP("adapt_calm_ms", adapt_calm_us, true),
    PP("adapt_max_factor", adapt_max_factor, false),
    PP("check_quorum_ms", check_quorum_us, true),
    PP("batch_max_cmds", batch_max_cmds, false),
    PP("batch_max_bytes", batch_max_bytes, false),
    PP("batch_delay_ms", batch_delay_us, true),
    PP("pipeline_max", pipeline_max, false),
    PP("retransmit_ms", retransmit_us, true),
    PP("learn_max_entries", learn_max_entries, false),
    PP("client_queue_max", client_queue_max, false),
};
#undef PP

/* Every name px_config_set takes, for suggestions. */
static size_t ch_param_names(const char **names)
{
    size_t n = 0;
    names[n++] = "fd";
    for (size_t i = 0; i < N(ch_params); i++)
        names[n++] = ch_params[i].name;
    return n;
}

static bool ch_param_known(const px_config *base, const char *name)
{
    px_config scratch = *base;
    return px_config_set(&scratch, name, "0") != -ENOENT;
}

static int ch_unknown_param(ch_ctx *cx, const json_t *v)
{
    const char *names[N(ch_params) + 1];
    char list[400];
    size_t n = ch_param_names(names);
    const char *near = ch_suggest(json_string_value(v), names, n);
    if (near)
        return ch_fail(cx, "unknown parameter %s (did you mean \"%s\"?)", GOT(v), near);
    return ch_fail(cx, "unknown parameter %s (expected one of %s)", GOT(v),
                   ch_join(names, n, false, list, sizeof(list)));
}

static int ch_a_param(ch_ctx *cx, json_t *v, void *dst, const ch_field *f)
{
    ch_action *a = dst;
    const char *s = NULL;
    int rc = ch_get_str(cx, v, &s);
    if (rc)
        return rc;
    if (strlen(s) >= CH_PARAM_MAX || !ch_param_known(&cx->sc->paxos, s))
        return ch_unknown_param(cx, v);
    memcpy(a->param, s, strlen(s) + 1);
    return 0;
}

/* A number as the shortest text that reads back as the same double. */
static void ch_num_text(double x, char *buf, size_t len)
{
    snprintf(buf, len, "%.15g", x);
    if (strtod(buf, NULL) != x)
        snprintf(buf, len, "%.17g", x);
}

static int ch_a_value(ch_ctx *cx, json_t *v, void *dst, const ch_field *f)
{
    ch_action *a = dst;
    if (json_is_number(v))
        ch_num_text(json_number_value(v), a->value, sizeof(a->value));
    else if (json_is_string(v) && strlen(json_string_value(v)) < CH_VALUE_MAX)
        memcpy(a->value, json_string_value(v), strlen(json_string_value(v)) + 1);
    else
        return ch_fail(cx, "expected a string (at most %u bytes) or a number, got %s", CH_VALUE_MAX - 1, GOT(v));
    px_config scratch = cx->sc->paxos;
    if (px_config_set(&scratch, a->param, a->value) < 0)
        return ch_fail(cx, "invalid value %s for %s", GOT(v), a->param);
    return 0;
}

/* ---- per-kind tables ---- */

#define A_COMMON                                                                                 \
    {.key = "at_ms", .fn = ch_a_at, .required = true, OFF(ch_action, at_ms), .imin = 0,         \
     .imax = CH_DUR, .expect = "an integer from 0 to duration_ms"},                             \
    {.key = "do", .fn = ch_a_do, .required = true}, {.key = "repeat", .fn = ch_a_repeat}
#define A_SEL                                                                                    \
    {.key = "between", .fn = ch_a_between}, {.key = "from", .fn = ch_a_from},                    \
    {.key = "to", .fn = ch_a_to}, {.key = "node", .fn = ch_a_sel_node}
#define A_PROB(k, req)                                                                           \
    {.key = #k, .fn = ch_f_f64, .required = req, OFF(ch_action, k), .dmin = 0, .dmax = 1,        \
     .expect = "a number from 0 to 1"}
#define A_MS(k, field, req)                                                                      \
    {.key = k, .fn = ch_f_ms_us, .required = req, OFF(ch_action, field), .dmin = 0,              \
     .dmax = CH_MS_MAX, .expect = "a number of ms >= 0"}
#define A_PNODE                                                                                  \
    {.key = "node", .fn = ch_a_process_node, .required = true,                                   \
     .expect = "a replica name, \"leader\" or \"*\""}

static const ch_field ch_a_partition[] = {
    A_COMMON, {.key = "groups", .fn = ch_a_groups, .required = true, .expect = "an array of node-name arrays"}};
static const ch_field ch_a_cut[] = {A_COMMON, A_SEL};
static const ch_field ch_a_loss[] = {A_COMMON, A_SEL, A_PROB(probability, true), A_PROB(correlation, false)};
static const ch_field ch_a_delay[] = {A_COMMON, A_SEL, A_MS("ms", delay_us, true),
                                      A_MS("jitter_ms", jitter_us, false),
                                      {.key = "distribution", .fn = ch_a_distribution}};
static const ch_field ch_a_dup[] = {A_COMMON, A_SEL, A_PROB(probability, true)};
static const ch_field ch_a_reorder[] = {A_COMMON, A_SEL, A_PROB(probability, true), A_MS("ms", reorder_us, false)};
static const ch_field ch_a_heal[] = {A_COMMON};
static const ch_field ch_a_process[] = {A_COMMON, A_PNODE};
static const ch_field ch_a_gc[] = {
    A_COMMON, A_PNODE,
    {.key = "every_ms", .fn = ch_f_u64, .required = true, OFF(ch_action, gc_every_ms), .imin = 1,
     .imax = CH_DUR, .expect = "an integer > 0 (ms between pauses)"},
    {.key = "pause_ms", .fn = ch_a_pause, .required = true, .expect = "a number of ms or a distribution"},
    {.key = "for_ms", .fn = ch_f_u64, OFF(ch_action, gc_for_ms), .imin = 1, .imax = CH_DUR},
};
static const ch_field ch_a_set[] = {
    A_COMMON, A_PNODE,
    {.key = "param", .fn = ch_a_param, .required = true, .expect = "a px_config_set name such as \"heartbeat_ms\""},
    {.key = "value", .fn = ch_a_value, .required = true, .expect = "a string or a number"},
};
static const ch_field ch_a_link[] = {
    A_COMMON, {.key = "node", .fn = ch_a_any_node, .required = true, .expect = "a node name"}};

typedef struct ch_kind_spec {
    const ch_field *fields;
    size_t n;
    bool selector;
} ch_kind_spec;

#define K(t, sel) {t, N(t), sel}
static const ch_kind_spec ch_kinds[CH_ACT_COUNT] = {
    [CH_ACT_PARTITION] = K(ch_a_partition, false), [CH_ACT_CUT] = K(ch_a_cut, true),
    [CH_ACT_LOSS] = K(ch_a_loss, true),            [CH_ACT_DELAY] = K(ch_a_delay, true),
    [CH_ACT_DUPLICATE] = K(ch_a_dup, true),        [CH_ACT_REORDER] = K(ch_a_reorder, true),
    [CH_ACT_CLEAR] = K(ch_a_cut, true),            [CH_ACT_HEAL_ALL] = K(ch_a_heal, false),
    [CH_ACT_CRASH] = K(ch_a_process, false),       [CH_ACT_RESTART] = K(ch_a_process, false),
    [CH_ACT_PAUSE] = K(ch_a_process, false),       [CH_ACT_RESUME] = K(ch_a_process, false),
    [CH_ACT_GC_PAUSE] = K(ch_a_gc, false),         [CH_ACT_SET] = K(ch_a_set, false),
    [CH_ACT_LINK_DOWN] = K(ch_a_link, false),      [CH_ACT_LINK_UP] = K(ch_a_link, false),
};
#undef K

static uint64_t ch_occurrences(const ch_action *a)
{
    return a->repeat_every_ms ? (a->repeat_until_ms - a->at_ms) / a->repeat_every_ms + 1 : 1;
}

static int ch_parse_action(ch_ctx *cx, json_t *v, size_t index, ch_action *a)
{
    if (!json_is_object(v))
        return ch_fail(cx, "expected an action object ({\"at_ms\": ..., \"do\": ...}), got %s", GOT(v));
    json_t *d = json_object_get(v, "do");
    size_t saved = ch_push_key(cx, "do");
    int kind = 0, rc;
    char list[256];
    if (!d)
        rc = ch_fail(cx, "required field missing (expected one of %s)",
                     ch_join(ch_kind_names, CH_ACT_COUNT, false, list, sizeof(list)));
    else
        rc = ch_get_enum(cx, d, ch_kind_names, CH_ACT_COUNT, &kind);
    ch_pop(cx, saved);
    if (rc)
        return rc;
    a->kind = (ch_action_kind)kind;
    a->index = (uint32_t)index;
    a->distribution = ST_DELAY_UNIFORM;
    cx->sel_seen = 0;
    char owner[32];
    snprintf(owner, sizeof(owner), "\"%s\"", ch_kind_names[kind]);
    const ch_kind_spec *k = &ch_kinds[kind];
    rc = ch_walk(cx, v, k->fields, k->n, a, owner);
    if (rc == 0 && k->selector)
        rc = ch_check_selector(cx);
    if (rc)
        return rc;
    cx->sc->n_expanded += ch_occurrences(a);
    if (cx->sc->n_expanded > CH_MAX_EXPANDED)
        return ch_fail(cx, "repeats expand the timeline past %u actions", CH_MAX_EXPANDED);
    return 0;
}

static int ch_cmp_time(const void *x, const void *y)
{
    const ch_action *a = *(const ch_action *const *)x, *b = *(const ch_action *const *)y;
    if (a->at_ms != b->at_ms)
        return a->at_ms < b->at_ms ? -1 : 1;
    return a->index < b->index ? -1 : a->index > b->index;
}

/* A live replica refuses a set that makes its config fail px_config_check, so
 * replay the set actions in time order on each replica's config ("leader" and
 * "*" on all of them: the leader may be any) and report the first refusal. */
static int ch_check_sets(ch_ctx *cx)
{
    ch_scenario *sc = cx->sc;
    size_t n = 0;
    for (size_t i = 0; i < sc->n_timeline; i++)
        n += sc->timeline[i].kind == CH_ACT_SET;
    if (n == 0)
        return 0;
    const ch_action **sets = malloc(n * sizeof(*sets));
    if (!sets)
        return -ENOMEM;
    n = 0;
    for (size_t i = 0; i < sc->n_timeline; i++)
        if (sc->timeline[i].kind == CH_ACT_SET)
            sets[n++] = &sc->timeline[i];
    qsort(sets, n, sizeof(*sets), ch_cmp_time);
    px_config cfg[PX_MAX_REPLICAS];
    for (unsigned r = 0; r < sc->replicas; r++)
        cfg[r] = sc->paxos;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const ch_action *a = sets[i];
        for (unsigned r = 0; r < sc->replicas && rc == 0; r++) {
            if (a->node.kind == CH_NODE_REPLICA && a->node.index != r)
                continue;
            char why[160];
            px_config c = cfg[r];
            (void)px_config_set(&c, a->param, a->value);
            if (px_config_check(&c, why, sizeof(why)) < 0) {
                size_t saved = ch_push_index(cx, a->index);
                rc = ch_fail(cx, "set %s=%s would be refused by r%u: %s", a->param, a->value, r + 1, why);
                ch_pop(cx, saved);
            }
            cfg[r] = c;
        }
    }
    free(sets);
    return rc;
}

static int ch_s_timeline(ch_ctx *cx, json_t *v, void *dst, const ch_field *f)
{
    ch_scenario *sc = cx->sc;
    if (!json_is_array(v))
        return ch_fail(cx, "expected an array of actions, got %s", GOT(v));
    size_t n = json_array_size(v);
    if (n > CH_MAX_TIMELINE)
        return ch_fail(cx, "expected at most %u actions, got %zu", CH_MAX_TIMELINE, n);
    if (n == 0)
        return 0;
    sc->timeline = calloc(n, sizeof(*sc->timeline));
    if (!sc->timeline)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        size_t saved = ch_push_index(cx, i);
        int rc = ch_parse_action(cx, json_array_get(v, i), i, &sc->timeline[i]);
        ch_pop(cx, saved);
        if (rc)
            return rc;
        sc->n_timeline = i + 1;
    }
    return ch_check_sets(cx); /* the path is "timeline" here */
}

/* --------------------------------------------------------- cluster / paxos */

static const char *const ch_fd_names[] = {"naive", "mpmc", "quorum"};
static const char *const ch_durabilities[] = {"fsync", "write", "off"};

static int ch_px_set(ch_ctx *cx, const json_t *v, const char *name, double x)
{
    char text[40];
    ch_num_text(x, text, sizeof(text));
    if (px_config_set(&cx->sc->paxos, name, text) < 0)
        return ch_fail(cx, "invalid value %s", GOT(v));
    return 0;
}

static int ch_px_election(ch_ctx *cx, const json_t *v)
{
    double t[2] = {0, 0};
    if (!json_is_array(v) || json_array_size(v) != 2)
        return ch_fail(cx, "expected [min, max] in ms, got %s", GOT(v));
    for (size_t i = 0; i < 2; i++) {
        size_t saved = ch_push_index(cx, i);
        int rc = ch_get_num(cx, json_array_get(v, i), 0, 4294967.0, true, &t[i]);
        ch_pop(cx, saved);
        if (rc)
            return rc;
    }
    if (t[0] > t[1])
        return ch_fail(cx, "expected [min, max] with min <= max, got [%g, %g]", t[0], t[1]);
    int rc = ch_px_set(cx, v, "election_timeout_min_ms", t[0]);
    return rc ? rc : ch_px_set(cx, v, "election_timeout_max_ms", t[1]);
}

/* A numeric px_config_set parameter: ms names take fractions up to what fits
 * in µs as uint32; the others are counts. Lower bounds are px_config_check's. */
static int ch_px_param(ch_ctx *cx, const json_t *v, const ch_param *p)
{
    double x = 0;
    int64_t i = 0;
    int rc;
    if (p->ms)
        rc = ch_get_num(cx, v, 0, 4294967.0, false, &x);
    else if ((rc = ch_get_int(cx, v, 0, 4000000000LL, "", &i)) == 0)
        x = (double)i;
    return rc ? rc : ch_px_set(cx, v, p->name, x);
}

/* A name px_config_set knows but this table does not (added later): pass
 * the value through as text. */
static int ch_px_other(ch_ctx *cx, const json_t *v, const char *key)
{
    char text[CH_VALUE_MAX];
    if (json_is_number(v))
        ch_num_text(json_number_value(v), text, sizeof(text));
    else if (json_is_string(v) && strlen(json_string_value(v)) < sizeof(text))
        memcpy(text, json_string_value(v), strlen(json_string_value(v)) + 1);
    else
        return ch_fail(cx, "expected a number or a string, got %s", GOT(v));
    if (px_config_set(&cx->sc->paxos, key, text) < 0)
        return ch_fail(cx, "invalid value %s", GOT(v));
    return 0;
}

static int ch_px_unknown(ch_ctx *cx, const char *key)
{
    const char *names[N(ch_params) + 3];
    size_t n = ch_param_names(names);
    names[n++] = "durability";
    names[n++] = "election_timeout_ms";
    char list[400];
    size_t saved = ch_push_key(cx, key);
    const char *near = ch_suggest(key, names, n);
    int rc = near ? ch_fail(cx, "unknown field (did you mean \"%s\"?)", near)
                  : ch_fail(cx, "unknown field (expected one of %s)", ch_join(names, n, false, list, sizeof(list)));
    ch_pop(cx, saved);
    return rc;
}

static int ch_px_field(ch_ctx *cx, const char *key, const json_t *v, const json_t *obj)
{
    int e;
    if (strcmp(key, "fd") == 0) {
        int rc = ch_get_enum(cx, v, ch_fd_names, N(ch_fd_names), &e);
        if (rc == 0)
            cx->sc->paxos.fd = (px_fd_policy)e;
        return rc;
    }
    if (strcmp(key, "durability") == 0) {
        int rc = ch_get_enum(cx, v, ch_durabilities, N(ch_durabilities), &e);
        if (rc == 0)
            cx->sc->durability = (px_durability)e;
        return rc;
    }
    if (strcmp(key, "election_timeout_ms") == 0)
        return ch_px_election(cx, v);
    if (strncmp(key, "election_timeout_m", 18) == 0 && json_object_get(obj, "election_timeout_ms"))
        return ch_fail(cx, "cannot be combined with election_timeout_ms (use one or the other)");
    for (size_t i = 0; i < N(ch_params); i++)
        if (strcmp(key, ch_params[i].name) == 0)
            return ch_px_param(cx, v, &ch_params[i]);
    return ch_px_other(cx, v, key);
}

static int ch_c_paxos(ch_ctx *cx, json_t *v, void *dst, const ch_field *f)
{
    if (!json_is_object(v))
        return ch_fail(cx, "expected an object, got %s", GOT(v));
    const char *key;
    json_t *x;
    json_object_foreach(v, key, x) {
        bool known = strcmp(key, "durability") == 0 || strcmp(key, "election_timeout_ms") == 0 ||
                     ch_param_known(&cx->sc->paxos, key);
        if (!known)
            return ch_px_unknown(cx, key);
    }
    json_object_foreach(v, key, x) {
        size_t saved = ch_push_key(cx, key);
        int rc = ch_px_field(cx, key, x, v);
        ch_pop(cx, saved);
        if (rc)
            return rc;
    }
    return 0;
}

/* The whole config, once every value is in (the defaults alone pass). Done
 * before the timeline so set actions are judged against a valid base. */
static int ch_check_paxos(ch_ctx *cx)
{
    char why[200];
    cx->sc->paxos.n_replicas = cx->sc->replicas;
    if (px_config_check(&cx->sc->paxos, why, sizeof(why)) == 0)
        return 0;
    size_t saved = ch_push_key(cx, "paxos"); /* the path is "cluster" here */
    int rc = ch_fail(cx, "%s", why);
    ch_pop(cx, saved);
    return rc;
}

static int ch_c_replicas(ch_ctx *cx, json_t *v, void *dst, const ch_field *f)
{
    int64_t x = 0;
    int rc = ch_get_int(cx, v, 1, PX_MAX_REPLICAS, "", &x);
    if (rc == 0)
        cx->sc->replicas = (uint8_t)x;
    return rc;
}

static int ch_s_cluster(ch_ctx *cx, json_t *v, void *dst, const ch_field *f)
{
    static const ch_field fields[] = {{.key = "replicas", .fn = ch_c_replicas}, {.key = "paxos", .fn = ch_c_paxos}};
    int rc = ch_walk(cx, v, fields, N(fields), cx->sc, NULL);
    return rc ? rc : ch_check_paxos(cx);
}

/* --------------------------------------------------------------- workload */

static int ch_w_distribution(ch_ctx *cx, json_t *v, void *dst, const ch_field *f)
{
    static const char *const names[] = {"uniform", "zipf"};
    int d;
    int rc = ch_get_enum(cx, v, names, N(names), &d);
    if (rc == 0)
        ((ch_workload *)dst)->distribution = (ch_key_dist)d;
    return rc;
}

static int ch_w_mix(ch_ctx *cx, json_t *v, void *dst, const ch_field *f)
{
    ch_mix *m = &((ch_workload *)dst)->mix;
#define MF(k) {.key = #k, .fn = ch_f_f64, OFF(ch_mix, k), .dmin = 0, .dmax = CH_WEIGHT_MAX}
    static const ch_field fields[] = {MF(get), MF(put), MF(del), MF(append), MF(cas)};
#undef MF
    memset(m, 0, sizeof(*m)); /* a mix given names its weights; the rest are 0 */
    int rc = ch_walk(cx, v, fields, N(fields), m, NULL);
    if (rc == 0 && !(m->get + m->put + m->del + m->append + m->cas > 0))
        return ch_fail(cx, "expected at least one weight > 0 (get, put, del, append, cas)");
    return rc;
}

static int ch_s_workload(ch_ctx *cx, json_t *v, void *dst, const ch_field *f)
{
#define WF(k, f_, lo, hi) {.key = #k, .fn = f_, OFF(ch_workload, k), .imin = lo, .imax = hi}
    static const ch_field fields[] = {
        WF(clients, ch_f_u32, 1, CH_MAX_CLIENTS),
        WF(nodes, ch_f_u32, 1, CH_MAX_CLIENT_NODES),
        {.key = "mix", .fn = ch_w_mix},
        WF(keys, ch_f_u32, 1, CH_KEYS_MAX),
        {.key = "distribution", .fn = ch_w_distribution},
        {.key = "zipf_s", .fn = ch_f_f64, OFF(ch_workload, zipf_s), .dmin = 0, .dmax = 10, .excl = true},
        WF(value_bytes, ch_f_u32, 1, CH_VALUE_BYTES_MAX),
        {.key = "rate", .fn = ch_f_f64, OFF(ch_workload, rate_ops_per_s), .dmin = 0, .dmax = CH_RATE_MAX},
        WF(op_timeout_ms, ch_f_u64, 1, 3600000),
    };
#undef WF
    ch_workload *w = &cx->sc->workload;
    int rc = ch_walk(cx, v, fields, N(fields), w, NULL);
    if (rc)
        return rc;
    if (w->nodes > w->clients) {
        size_t saved = ch_push_key(cx, "nodes");
        rc = ch_fail(cx, "expected at most workload.clients (%u) client nodes, got %u", w->clients, w->nodes);
        ch_pop(cx, saved);
    } else if (json_object_get(v, "zipf_s") && w->distribution != CH_KEYS_ZIPF) {
        size_t saved = ch_push_key(cx, "zipf_s");
        rc = ch_fail(cx, "only applies with \"distribution\": \"zipf\"");
        ch_pop(cx, saved);
    }
    return rc;
}

/* -------------------------------------------------------------- top level */

static int ch_s_assertions(ch_ctx *cx, json_t *v, void *dst, const ch_field *f)
{
#define AF(k, f_, lo) \
    {.key = #k, .fn = f_, OFF(ch_assertions, k), FLAG(ch_assertions, has_##k), .imin = lo, .imax = INT64_MAX}
    static const ch_field fields[] = {
        AF(linearizable, ch_f_bool, 0),
        AF(logs_agree, ch_f_bool, 0),
        AF(max_unavailability_ms, ch_f_u64, 1),
        AF(recover_within_ms, ch_f_u64, 1),
        AF(max_leader_changes, ch_f_u64, 0),
        {.key = "min_throughput_ratio", .fn = ch_f_f64, OFF(ch_assertions, min_throughput_ratio),
         FLAG(ch_assertions, has_min_throughput_ratio), .dmin = 0, .dmax = 1},
        AF(max_log_entries, ch_f_u64, 1),
    };
#undef AF
    return ch_walk(cx, v, fields, N(fields), &cx->sc->assertions, NULL);
}

static int ch_s_ignore_str(ch_ctx *cx, json_t *v, void *dst, const ch_field *f)
{
    const char *s = NULL;
    return ch_get_str(cx, v, &s);
}

static int ch_s_version(ch_ctx *cx, json_t *v, void *dst, const ch_field *f)
{
    int64_t x = 0;
    return ch_get_int(cx, v, 1, 1, " (this rift reads format v1)", &x);
}

static bool ch_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > CH_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '-' && c != '_' && c != '.')))
            return false;
    }
    return true;
}

static int ch_s_name(ch_ctx *cx, json_t *v, void *dst, const ch_field *f)
{
    /* It names the run directory and testbed objects: keep it path-safe. */
    if (!json_is_string(v) || !ch_name_ok(json_string_value(v)))
        return ch_fail(cx, "expected 1 to %u letters, digits, '-', '_' or '.' starting with a letter or digit, "
                           "got %s", CH_NAME_MAX, GOT(v));
    memcpy(cx->sc->name, json_string_value(v), strlen(json_string_value(v)) + 1);
    return 0;
}

static int ch_s_description(ch_ctx *cx, json_t *v, void *dst, const ch_field *f)
{
    const char *s = NULL;
    int rc = ch_get_str(cx, v, &s);
    if (rc)
        return rc;
    char *copy = strdup(s);
    if (!copy)
        return -ENOMEM;
    free(cx->sc->description);
    cx->sc->description = copy;
    return 0;
}

static const ch_field ch_top[] = {
    {.key = "$schema", .fn = ch_s_ignore_str},
    {.key = "version", .fn = ch_s_version},
    {.key = "name", .fn = ch_s_name, .required = true, .expect = "a string"},
    {.key = "description", .fn = ch_s_description},
    {.key = "seed", .fn = ch_f_u64, OFF(ch_scenario, seed), FLAG(ch_scenario, has_seed), .imin = 0,
     .imax = INT64_MAX},
    {.key = "duration_ms", .fn = ch_f_u64, .required = true, OFF(ch_scenario, duration_ms), .imin = 1,
     .imax = (int64_t)CH_MAX_DURATION_MS, .expect = "an integer > 0"},
    {.key = "cluster", .fn = ch_s_cluster},
    {.key = "workload", .fn = ch_s_workload},
    {.key = "timeline", .fn = ch_s_timeline},
    {.key = "assertions", .fn = ch_s_assertions},
};

static void ch_defaults(ch_scenario *sc)
{
    sc->replicas = 3;
    px_config_default(&sc->paxos);
    sc->durability = PX_DURABILITY_FSYNC;
    sc->workload = (ch_workload){
        .clients = 4, .nodes = 1, .mix = {.get = 0.5, .put = 0.3, .append = 0.1, .cas = 0.1},
        .keys = 100, .distribution = CH_KEYS_UNIFORM, .zipf_s = 0.99, .value_bytes = 64,
        .rate_ops_per_s = 0, .op_timeout_ms = 1000,
    };
}

static int ch_validate(ch_ctx *cx, json_t *root)
{
    ch_scenario *sc = cx->sc;
    ch_defaults(sc);
    int rc = ch_walk(cx, root, ch_top, N(ch_top), sc, NULL);
    if (rc)
        return rc;
    if (!sc->description && !(sc->description = strdup("")))
        return -ENOMEM;
    sc->paxos.n_replicas = sc->replicas; /* also when "cluster" is absent */
    return 0;
}

/* ---------------------------------------------------------------- --set */

__attribute__((format(printf, 3, 4)))
static int ch_set_fail(ch_error *err, const char *assignment, const char *fmt, ...)
{
    char clean[128], msg[320];
    va_list ap;
    va_start(ap, fmt);
    if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0)
        msg[0] = 0;
    va_end(ap);
    rift_json_sanitize(assignment, clean, sizeof(clean));
    ch_msg(err, "--set %s: %s", clean, msg);
    return -EINVAL;
}

/* "12" -> 12; false for anything but a short run of digits. */
static bool ch_index(const char *s, size_t *out)
{
    size_t n = strlen(s), x = 0;
    if (n == 0 || n > 9)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        x = x * 10 + (size_t)(s[i] - '0');
    }
    *out = x;
    return true;
}

static const char *ch_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    default: return "a container";
    }
}

/* Store value (stolen) under key in container c; null removes the key or
 * element. asg is the whole assignment, for messages. */
static int ch_set_leaf(json_t *c, const char *key, json_t *value, const char *asg, ch_error *err)
{
    bool del = json_is_null(value);
    if (json_is_object(c)) {
        if (del) {
            json_decref(value);
            (void)json_object_del(c, key); /* absent already: nothing to do */
            return 0;
        }
        return json_object_set_new(c, key, value) ? -ENOMEM : 0;
    }
    size_t i = 0, n = json_array_size(c);
    int rc = 0;
    int shown = (int)(strchr(asg, '=') - asg);
    if (!ch_index(key, &i))
        rc = ch_set_fail(err, asg, "%.*s: expected an array index, got \"%s\"", shown, asg, key);
    else if (i > n || (i == n && del))
        rc = ch_set_fail(err, asg, "%.*s: index out of range (the array has %zu elements)", shown, asg, n);
    if (rc || del) {
        json_decref(value);
        return rc ? rc : (json_array_remove(c, i) ? -ENOMEM : 0);
    }
    rc = i == n ? json_array_append_new(c, value) : json_array_set_new(c, i, value);
    return rc ? -ENOMEM : 0;
}

/* JSON if it parses (numbers, booleans, arrays, quoted strings), else the text. */
static json_t *ch_set_value(const char *text)
{
    json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
    return v ? v : json_string(text);
}

/* The child of c named seg (an object key or an array index), or NULL.
 * Optional sections of the format exist implicitly (their defaults), so they
 * are created on demand: `--set cluster.paxos.fd=naive` works on a scenario
 * without "cluster", while a typo (`clster.paxos...`) is still an error. */
static json_t *ch_set_child(json_t *c, const char *seg, const char *key, size_t key_len)
{
    static const char *const sections[] = {"cluster", "cluster.paxos", "workload", "workload.mix", "assertions",
                                           "timeline"};
    size_t i;
    if (!json_is_object(c))
        return ch_index(seg, &i) ? json_array_get(c, i) : NULL;
    json_t *v = json_object_get(c, seg);
    for (i = 0; !v && i < N(sections); i++) {
        if (strlen(sections[i]) != key_len || strncmp(sections[i], key, key_len) != 0)
            continue;
        v = strcmp(seg, "timeline") == 0 ? json_array() : json_object();
        if (v && json_object_set_new(c, seg, v) < 0)
            v = NULL;
    }
    return v;
}

int ch_scenario_apply_set(json_t *root, const char *assignment, ch_error *err)
{
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment)
        return ch_set_fail(err, assignment, "expected key=value with a dotted key (cluster.paxos.fd=naive)");
    json_t *cur = root;
    const char *seg = assignment;
    char key[256];
    for (;;) {
        const char *end = seg;
        while (end < eq && *end != '.')
            end++;
        int shown = (int)(end - assignment); /* the key up to this segment */
        size_t len = (size_t)(end - seg);
        if (len == 0)
            return ch_set_fail(err, assignment, "empty segment in the key");
        if (len >= sizeof(key))
            return ch_set_fail(err, assignment, "key segment too long");
        memcpy(key, seg, len);
        key[len] = 0;
        if (!json_is_object(cur) && !json_is_array(cur) && seg == assignment)
            return ch_set_fail(err, assignment, "the scenario is not an object");
        if (!json_is_object(cur) && !json_is_array(cur))
            return ch_set_fail(err, assignment, "%.*s is %s, not an object or array", (int)(seg - assignment - 1),
                               assignment, ch_type_name(cur));
        if (end == eq) {
            json_t *value = ch_set_value(eq + 1);
            if (!value)
                return ch_set_fail(err, assignment, "the value is not valid UTF-8");
            return ch_set_leaf(cur, key, value, assignment, err);
        }
        json_t *next = ch_set_child(cur, key, assignment, (size_t)shown);
        if (!next)
            return ch_set_fail(err, assignment, "%.*s does not exist", shown, assignment);
        cur = next;
        seg = end + 1;
    }
}

/* ------------------------------------------------------------ load / parse */

int ch_scenario_parse(const char *name, const char *text, size_t len, const char *const *sets, int n_sets,
                      ch_scenario *out, ch_error *err)
{
    memset(out, 0, sizeof(*out));
    err->msg[0] = 0;
    name = name ? name : "<scenario>";
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        ch_msg(err, "%s:%d:%d: invalid JSON: %s", name, je.line, je.column, je.text);
        return -EINVAL;
    }
    ch_ctx cx = {.file = name, .err = err, .sc = out};
    int rc = 0;
    if (!json_is_object(root))
        rc = ch_fail(&cx, "expected a JSON object at the top level, got %s", GOT(root));
    for (int i = 0; rc == 0 && i < n_sets; i++) {
        ch_error e;
        rc = ch_scenario_apply_set(root, sets[i], &e);
        if (rc == -EINVAL)
            ch_msg(err, "%s: %s", name, e.msg);
    }
    if (rc == 0) {
        out->file = strdup(name);
        out->text = malloc(len + 1);
        rc = out->file && out->text ? 0 : -ENOMEM;
    }
    if (rc == 0) {
        memcpy(out->text, text, len);
        out->text[len] = 0;
        out->text_len = len;
        rc = ch_validate(&cx, root);
    }
    json_decref(root);
    if (rc == -ENOMEM)
        ch_msg(err, "%s: out of memory", name);
    if (rc)
        ch_scenario_free(out);
    return rc;
}

/* Whole file into a malloc'ed buffer, bounded by CH_FILE_MAX. */
static int ch_read_file(const char *path, char **buf, size_t *len, ch_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    int e = 0;
    if (fd < 0) {
        e = errno;
        ch_msg(err, e == ENOENT ? "%s: no such file" : "%s: cannot open: %s", path,
                     strerror(e));
        return -e;
    }
    if (fstat(fd, &st) < 0)
        st.st_mode = 0;
    if (!S_ISREG(st.st_mode) || st.st_size > (off_t)CH_FILE_MAX) {
        ch_msg(err, "%s: %s", path,
                     !S_ISREG(st.st_mode) ? "not a regular file" : "file too large (the limit is 16 MiB)");
        close(fd);
        return -EINVAL;
    }
    char *b = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    ssize_t r = 1;
    while (b && got < (size_t)st.st_size && (r = read(fd, b + got, (size_t)st.st_size - got)) > 0)
        got += (size_t)r;
    e = r < 0 ? errno : 0;
    close(fd);
    if (!b || e) {
        free(b);
        ch_msg(err, "%s: %s", path, b ? strerror(e) : "out of memory");
        return b ? -e : -ENOMEM;
    }
    *buf = b;
    *len = got;
    return 0;
}

int ch_scenario_load(const char *path, const char *const *sets, int n_sets, ch_scenario *out, ch_error *err)
{
    char *buf = NULL;
    size_t len = 0;
    memset(out, 0, sizeof(*out));
    int rc = ch_read_file(path, &buf, &len, err);
    if (rc)
        return rc;
    rc = ch_scenario_parse(path, buf, len, sets, n_sets, out, err);
    free(buf);
    return rc;
}

void ch_scenario_free(ch_scenario *s)
{
    if (!s)
        return;
    free(s->file);
    free(s->description);
    free(s->timeline);
    free(s->text);
    memset(s, 0, sizeof(*s));
}

/* ------------------------------------------------------------------ expand */

/* What the expansion sorts: small keys, so only the final list holds actions. */
typedef struct ch_occ {
    uint64_t at_ms;
    uint32_t index, occurrence;
} ch_occ;

static int ch_cmp_occ(const void *x, const void *y)
{
    const ch_occ *a = x, *b = y;
    if (a->at_ms != b->at_ms)
        return a->at_ms < b->at_ms ? -1 : 1;
    return a->index < b->index ? -1 : a->index > b->index;
}

int ch_scenario_expand(const ch_scenario *s, ch_action **out, size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    uint64_t total = 0;
    for (size_t i = 0; i < s->n_timeline; i++)
        total += ch_occurrences(&s->timeline[i]);
    if (total == 0)
        return 0;
    if (total > CH_MAX_EXPANDED)
        return -E2BIG;
    ch_occ *keys = malloc((size_t)total * sizeof(*keys));
    ch_action *list = malloc((size_t)total * sizeof(*list));
    if (!keys || !list) {
        free(keys);
        free(list);
        return -ENOMEM;
    }
    size_t n = 0;
    for (size_t i = 0; i < s->n_timeline; i++) {
        const ch_action *a = &s->timeline[i];
        uint64_t k = ch_occurrences(a);
        for (uint64_t j = 0; j < k; j++)
            keys[n++] = (ch_occ){a->at_ms + j * a->repeat_every_ms, (uint32_t)i, (uint32_t)j};
    }
    /* (at_ms, timeline index) is unique per occurrence: the order is total,
     * so equal times keep timeline order whatever qsort's stability. */
    qsort(keys, n, sizeof(*keys), ch_cmp_occ);
    for (size_t i = 0; i < n; i++) {
        list[i] = s->timeline[keys[i].index];
        list[i].at_ms = keys[i].at_ms;
        list[i].occurrence = keys[i].occurrence;
        list[i].repeat_every_ms = 0;
        list[i].repeat_until_ms = keys[i].at_ms;
    }
    free(keys);
    *out = list;
    *n_out = n;
    return 0;
}

int ch_action_rule(const ch_action *a, st_impair_rule *out)
{
    memset(out, 0, sizeof(*out));
    out->src = out->dst = ST_IMPAIR_ANY;
    switch (a->kind) {
    case CH_ACT_PARTITION:
    case CH_ACT_CUT: out->cut = true; return 0;
    case CH_ACT_LOSS:
        out->loss = a->probability;
        out->loss_correlation = a->correlation;
        return 0;
    case CH_ACT_DELAY:
        out->delay_us = a->delay_us;
        out->jitter_us = a->jitter_us;
        out->distribution = (uint8_t)a->distribution;
        return 0;
    case CH_ACT_DUPLICATE: out->duplicate = a->probability; return 0;
    case CH_ACT_REORDER:
        out->reorder = a->probability;
        out->reorder_us = a->reorder_us;
        return 0;
    default: return -EINVAL;
    }
}

/* ----------------------------------------------------------------- to_json */

typedef struct ch_jb {
    bool ok; /* false once any allocation failed */
} ch_jb;

static void ch_jset(ch_jb *b, json_t *o, const char *k, json_t *v)
{
    if (!o || !v || json_object_set_new(o, k, v) < 0)
        b->ok = false;
}

static void ch_jpush(ch_jb *b, json_t *a, json_t *v)
{
    if (!a || !v || json_array_append_new(a, v) < 0)
        b->ok = false;
}

/* µs as ms: an integer when whole, else a fraction. */
static json_t *ch_jms(uint64_t us)
{
    return us % 1000 == 0 ? json_integer((json_int_t)(us / 1000)) : json_real((double)us / 1000.0);
}

static json_t *ch_jnode(ch_node n)
{
    char buf[16];
    return json_string(ch_node_format(n, buf, sizeof(buf)));
}

static json_t *ch_j_paxos(ch_jb *b, const ch_scenario *s)
{
    json_t *o = json_object();
    ch_jset(b, o, "fd", json_string(px_fd_policy_name(s->paxos.fd)));
    ch_jset(b, o, "durability", json_string(px_durability_name(s->durability)));
    json_t *et = json_array();
    ch_jpush(b, et, ch_jms(s->paxos.election_timeout_min_us));
    ch_jpush(b, et, ch_jms(s->paxos.election_timeout_max_us));
    ch_jset(b, o, "election_timeout_ms", et);
    for (size_t i = 0; i < N(ch_params); i++) {
        const ch_param *p = &ch_params[i];
        if (strncmp(p->name, "election_timeout_m", 18) == 0)
            continue;
        uint32_t x;
        memcpy(&x, (const char *)&s->paxos + p->off, sizeof(x));
        ch_jset(b, o, p->name, p->ms ? ch_jms(x) : json_integer(x));
    }
    return o;
}

static json_t *ch_j_workload(ch_jb *b, const ch_workload *w)
{
    json_t *o = json_object(), *mix = json_object();
    ch_jset(b, o, "clients", json_integer(w->clients));
    ch_jset(b, o, "nodes", json_integer(w->nodes));
    ch_jset(b, mix, "get", json_real(w->mix.get));
    ch_jset(b, mix, "put", json_real(w->mix.put));
    ch_jset(b, mix, "del", json_real(w->mix.del));
    ch_jset(b, mix, "append", json_real(w->mix.append));
    ch_jset(b, mix, "cas", json_real(w->mix.cas));
    ch_jset(b, o, "mix", mix);
    ch_jset(b, o, "keys", json_integer(w->keys));
    ch_jset(b, o, "distribution", json_string(w->distribution == CH_KEYS_ZIPF ? "zipf" : "uniform"));
    if (w->distribution == CH_KEYS_ZIPF)
        ch_jset(b, o, "zipf_s", json_real(w->zipf_s));
    ch_jset(b, o, "value_bytes", json_integer(w->value_bytes));
    ch_jset(b, o, "rate", json_real(w->rate_ops_per_s));
    ch_jset(b, o, "op_timeout_ms", json_integer((json_int_t)w->op_timeout_ms));
    return o;
}

static void ch_j_selector(ch_jb *b, json_t *o, const ch_selector *sel)
{
    if (sel->kind == CH_SEL_NODE) {
        ch_jset(b, o, "node", ch_jnode(sel->a));
    } else if (sel->kind == CH_SEL_FROM_TO) {
        ch_jset(b, o, "from", ch_jnode(sel->a));
        ch_jset(b, o, "to", ch_jnode(sel->b));
    } else {
        json_t *pair = json_array();
        ch_jpush(b, pair, ch_jnode(sel->a));
        ch_jpush(b, pair, ch_jnode(sel->b));
        ch_jset(b, o, "between", pair);
    }
}

static json_t *ch_j_groups(ch_jb *b, const ch_partition *p)
{
    json_t *groups = json_array();
    for (unsigned g = 0; g < p->n_groups; g++) {
        json_t *grp = json_array();
        for (size_t i = 0; i < p->n_nodes; i++)
            if (p->group[i] == g)
                ch_jpush(b, grp, ch_jnode(p->nodes[i]));
        ch_jpush(b, groups, grp);
    }
    return groups;
}

static json_t *ch_j_dist(ch_jb *b, const ch_dist *d)
{
    if (d->kind == CH_DIST_CONST)
        return ch_jms(d->a_us);
    json_t *o = json_object();
    bool u = d->kind == CH_DIST_UNIFORM;
    ch_jset(b, o, u ? "min" : "mean", ch_jms(d->a_us));
    ch_jset(b, o, u ? "max" : "stddev", ch_jms(d->b_us));
    return o;
}

/* A set value goes back out as a number when it reads as one. */
static json_t *ch_j_value(const char *text)
{
    json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
    char back[40] = "";
    if (v && json_is_number(v))
        ch_num_text(json_number_value(v), back, sizeof(back));
    if (strcmp(back, text) == 0)
        return v; /* reads back as the same text */
    json_decref(v);
    return json_string(text);
}

static void ch_j_kind_fields(ch_jb *b, json_t *o, const ch_action *a)
{
    static const char *const dists[] = {"uniform", "normal", "pareto"};
    switch (a->kind) {
    case CH_ACT_PARTITION: ch_jset(b, o, "groups", ch_j_groups(b, &a->partition)); break;
    case CH_ACT_LOSS:
        ch_jset(b, o, "probability", json_real(a->probability));
        ch_jset(b, o, "correlation", json_real(a->correlation));
        break;
    case CH_ACT_DELAY:
        ch_jset(b, o, "ms", ch_jms(a->delay_us));
        ch_jset(b, o, "jitter_ms", ch_jms(a->jitter_us));
        ch_jset(b, o, "distribution", json_string(dists[a->distribution % 3]));
        break;
    case CH_ACT_DUPLICATE: ch_jset(b, o, "probability", json_real(a->probability)); break;
    case CH_ACT_REORDER:
        ch_jset(b, o, "probability", json_real(a->probability));
        if (a->reorder_us)
            ch_jset(b, o, "ms", ch_jms(a->reorder_us));
        break;
    case CH_ACT_GC_PAUSE:
        ch_jset(b, o, "every_ms", json_integer((json_int_t)a->gc_every_ms));
        ch_jset(b, o, "pause_ms", ch_j_dist(b, &a->gc_pause));
        if (a->gc_for_ms)
            ch_jset(b, o, "for_ms", json_integer((json_int_t)a->gc_for_ms));
        break;
    case CH_ACT_SET:
        ch_jset(b, o, "param", json_string(a->param));
        ch_jset(b, o, "value", ch_j_value(a->value));
        break;
    default: break;
    }
}

static json_t *ch_j_action(ch_jb *b, const ch_action *a)
{
    json_t *o = json_object();
    ch_jset(b, o, "at_ms", json_integer((json_int_t)a->at_ms));
    ch_jset(b, o, "do", json_string(ch_action_kind_name(a->kind)));
    if (a->repeat_every_ms) {
        json_t *r = json_object();
        ch_jset(b, r, "every_ms", json_integer((json_int_t)a->repeat_every_ms));
        ch_jset(b, r, "until_ms", json_integer((json_int_t)a->repeat_until_ms));
        ch_jset(b, o, "repeat", r);
    }
    if (ch_kinds[a->kind].selector)
        ch_j_selector(b, o, &a->sel);
    else if (a->kind >= CH_ACT_CRASH)
        ch_jset(b, o, "node", ch_jnode(a->node));
    ch_j_kind_fields(b, o, a);
    return o;
}

static json_t *ch_j_assertions(ch_jb *b, const ch_assertions *as)
{
    json_t *o = json_object();
    if (as->has_linearizable)
        ch_jset(b, o, "linearizable", json_boolean(as->linearizable));
    if (as->has_logs_agree)
        ch_jset(b, o, "logs_agree", json_boolean(as->logs_agree));
    if (as->has_max_unavailability_ms)
        ch_jset(b, o, "max_unavailability_ms", json_integer((json_int_t)as->max_unavailability_ms));
    if (as->has_recover_within_ms)
        ch_jset(b, o, "recover_within_ms", json_integer((json_int_t)as->recover_within_ms));
    if (as->has_max_leader_changes)
        ch_jset(b, o, "max_leader_changes", json_integer((json_int_t)as->max_leader_changes));
    if (as->has_min_throughput_ratio)
        ch_jset(b, o, "min_throughput_ratio", json_real(as->min_throughput_ratio));
    if (as->has_max_log_entries)
        ch_jset(b, o, "max_log_entries", json_integer((json_int_t)as->max_log_entries));
    return o;
}

json_t *ch_scenario_to_json(const ch_scenario *s)
{
    ch_jb b = {true};
    json_t *root = json_object(), *cluster = json_object(), *timeline = json_array();
    ch_jset(&b, root, "version", json_integer(1));
    ch_jset(&b, root, "name", json_string(s->name));
    ch_jset(&b, root, "description", json_string(s->description ? s->description : ""));
    if (s->has_seed)
        ch_jset(&b, root, "seed", json_integer((json_int_t)s->seed));
    ch_jset(&b, root, "duration_ms", json_integer((json_int_t)s->duration_ms));
    ch_jset(&b, cluster, "replicas", json_integer(s->replicas));
    ch_jset(&b, cluster, "paxos", ch_j_paxos(&b, s));
    ch_jset(&b, root, "cluster", cluster);
    ch_jset(&b, root, "workload", ch_j_workload(&b, &s->workload));
    for (size_t i = 0; i < s->n_timeline; i++)
        ch_jpush(&b, timeline, ch_j_action(&b, &s->timeline[i]));
    ch_jset(&b, root, "timeline", timeline);
    ch_jset(&b, root, "assertions", ch_j_assertions(&b, &s->assertions));
    if (!b.ok) {
        json_decref(root);
        return NULL;
    }
    return root;
}
