/* ch_history.c — parse, validate, write and generate Jepsen-style histories. */
#include "ch_history.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/rift_rng.h"

static const char *const ch_type_names[] = {"invoke", "ok", "fail", "info"};
static const char *const ch_f_names[] = {"get", "put", "del", "append", "cas"};

const char *ch_type_name(ch_type t)
{
    return (unsigned)t <= CH_INFO ? ch_type_names[t] : "?";
}

const char *ch_f_name(ch_f f)
{
    return (unsigned)f <= CH_CAS ? ch_f_names[f] : "?";
}

/* ---- history container ---- */

ch_history *ch_history_new(void)
{
    return calloc(1, sizeof(ch_history));
}

void ch_op_clear(ch_op *op)
{
    free(op->key);
    free(op->value);
    free(op->cas_expected);
    op->key = op->value = op->cas_expected = NULL;
}

void ch_history_free(ch_history *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->n; i++)
        ch_op_clear(&h->ops[i]);
    free(h->ops);
    free(h);
}

static char *ch_strdup_opt(const char *s, bool *oom)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *oom = true;
    return d;
}

static int ch_history_reserve(ch_history *h)
{
    if (h->n < h->cap)
        return 0;
    if (h->n >= CH_HISTORY_OPS_MAX)
        return -E2BIG;
    size_t cap = h->cap ? h->cap * 2 : 256;
    if (cap > CH_HISTORY_OPS_MAX)
        cap = CH_HISTORY_OPS_MAX;
    ch_op *ops = realloc(h->ops, cap * sizeof *ops);
    if (!ops)
        return -ENOMEM;
    h->ops = ops;
    h->cap = cap;
    return 0;
}

/* Takes ownership of op's strings (on success only). */
static int ch_history_push(ch_history *h, const ch_op *op)
{
    int rc = ch_history_reserve(h);
    if (rc < 0)
        return rc;
    h->ops[h->n] = *op;
    if (op->line == 0)
        h->ops[h->n].line = (uint32_t)(h->n + 1);
    h->n++;
    return 0;
}

int ch_history_append(ch_history *h, const ch_op *op)
{
    bool oom = false;
    ch_op c = *op;
    c.key = ch_strdup_opt(op->key ? op->key : "", &oom);
    c.value = ch_strdup_opt(op->value, &oom);
    c.cas_expected = ch_strdup_opt(op->cas_expected, &oom);
    int rc = oom ? -ENOMEM : ch_history_push(h, &c);
    if (rc < 0)
        ch_op_clear(&c);
    return rc;
}

/* ---- errors ---- */

static const char *ch_file_name(const char *file)
{
    return file ? file : "history";
}

static void ch_errf(ch_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ch_errf(ch_error *err, const char *fmt, ...)
{
    if (!err)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
}

/* The offending JSON value, compact and cut short: errors quote what they got. */
static void ch_json_quote(const json_t *v, char *buf, size_t cap)
{
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    if (!s) {
        snprintf(buf, cap, "(unprintable)");
        return;
    }
    if (strlen(s) > 64)
        snprintf(buf, cap, "%.60s...", s);
    else
        snprintf(buf, cap, "%s", s);
    free(s);
}

typedef struct ch_pctx {
    const char *file;
    uint32_t line;
    ch_error *err;
} ch_pctx;

static int ch_bad_field(const ch_pctx *p, const char *field, const char *what, const json_t *got)
{
    if (!got) {
        ch_errf(p->err, "%s:%" PRIu32 ": field \"%s\": missing, expected %s",
                ch_file_name(p->file), p->line, field, what);
        return -EINVAL;
    }
    char q[80];
    ch_json_quote(got, q, sizeof q);
    ch_errf(p->err, "%s:%" PRIu32 ": field \"%s\": expected %s, got %s",
            ch_file_name(p->file), p->line, field, what, q);
    return -EINVAL;
}

/* ---- parsing one line ---- */

static const char *const ch_fields[] = {"process", "type", "f", "key", "value", "time"};

static int ch_check_fields(const ch_pctx *p, json_t *obj)
{
    const char *name;
    json_t *v;
    json_object_foreach(obj, name, v) {
        bool known = false;
        for (size_t i = 0; i < sizeof ch_fields / sizeof ch_fields[0]; i++)
            known |= strcmp(name, ch_fields[i]) == 0;
        if (!known) {
            ch_errf(p->err, "%s:%" PRIu32 ": field \"%.64s\": unknown field, expected only "
                    "process, type, f, key, value, time", ch_file_name(p->file), p->line, name);
            return -EINVAL;
        }
    }
    return 0;
}

static int ch_parse_enum(const ch_pctx *p, json_t *obj, const char *field,
                         const char *const *names, int n, const char *what, int *out)
{
    json_t *v = json_object_get(obj, field);
    if (v && json_is_string(v)) {
        for (int i = 0; i < n; i++) {
            if (strcmp(json_string_value(v), names[i]) == 0) {
                *out = i;
                return 0;
            }
        }
    }
    return ch_bad_field(p, field, what, v);
}

static int ch_parse_int(const ch_pctx *p, json_t *obj, const char *field, json_int_t max,
                        const char *what, json_int_t *out)
{
    json_t *v = json_object_get(obj, field);
    if (!v || !json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > max)
        return ch_bad_field(p, field, what, v);
    *out = json_integer_value(v);
    return 0;
}

static char *ch_json_strdup(const json_t *v)
{
    size_t n = json_string_length(v);
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, json_string_value(v), n);
        s[n] = '\0';
    }
    return s;
}

/* Copy a JSON string or null into *out (NULL for null). */
static int ch_take_str(const json_t *v, char **out)
{
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    *out = ch_json_strdup(v);
    return *out ? 0 : -ENOMEM;
}

static bool ch_str_or_null(const json_t *v)
{
    return !v || json_is_null(v) || json_is_string(v);
}

static bool ch_is_cas_pair(const json_t *v)
{
    return v && json_is_array(v) && json_array_size(v) == 2 &&
           ch_str_or_null(json_array_get(v, 0)) && json_is_string(json_array_get(v, 1));
}

#define CH_CAS_WHAT "[expected, new] (expected a string or null, new a string)"

/* The value rules of DESIGN.md "History format", per f and type. */
static int ch_parse_value(const ch_pctx *p, json_t *obj, ch_op *op)
{
    json_t *v = json_object_get(obj, "value");
    bool null = !v || json_is_null(v);
    bool invoke = op->type == CH_INVOKE;
    switch (op->f) {
    case CH_GET:
        if (op->type == CH_OK) {
            if (!v || !ch_str_or_null(v))
                return ch_bad_field(p, "value", "a string or null (the value read)", v);
            return ch_take_str(v, &op->value);
        }
        return null ? 0 : ch_bad_field(p, "value", "null", v);
    case CH_DEL:
        return null ? 0 : ch_bad_field(p, "value", "null", v);
    case CH_PUT:
    case CH_APPEND:
        if (invoke ? !(v && json_is_string(v)) : !ch_str_or_null(v))
            return ch_bad_field(p, "value", invoke ? "a string" : "a string or null", v);
        return ch_take_str(v, &op->value);
    case CH_CAS:
        if (!invoke && null)
            return 0;
        if (!ch_is_cas_pair(v))
            return ch_bad_field(p, "value", invoke ? CH_CAS_WHAT : "null or " CH_CAS_WHAT, v);
        op->has_cas_expected = true;
        if (ch_take_str(json_array_get(v, 0), &op->cas_expected) < 0)
            return -ENOMEM;
        return ch_take_str(json_array_get(v, 1), &op->value);
    }
    return -EINVAL;
}

static int ch_parse_object(const ch_pctx *p, json_t *obj, ch_op *op)
{
    int rc = ch_check_fields(p, obj);
    json_int_t process = 0, time_us = 0;
    int type = 0, f = 0;
    if (rc == 0)
        rc = ch_parse_int(p, obj, "process", (json_int_t)UINT32_MAX,
                          "an integer in 0..4294967295", &process);
    if (rc == 0)
        rc = ch_parse_enum(p, obj, "type", ch_type_names, 4,
                           "one of invoke, ok, fail, info", &type);
    if (rc == 0)
        rc = ch_parse_enum(p, obj, "f", ch_f_names, 5, "one of get, put, del, append, cas", &f);
    json_t *key = json_object_get(obj, "key");
    if (rc == 0 && (!key || !json_is_string(key)))
        rc = ch_bad_field(p, "key", "a string", key);
    if (rc == 0)
        rc = ch_parse_int(p, obj, "time", INT64_MAX, "an integer >= 0 (µs since the run started)",
                          &time_us);
    if (rc < 0)
        return rc;
    op->process = (uint32_t)process;
    op->type = (ch_type)type;
    op->f = (ch_f)f;
    op->time_us = (int64_t)time_us;
    if (!(op->key = ch_json_strdup(key)))
        return -ENOMEM;
    return ch_parse_value(p, obj, op);
}

/* ---- the fast path for plain lines ----
 *
 * Generic JSON parsing (a jansson tree per line, then lookups) costs about
 * five times the search on a 100k-op history (bench/rift_bench_check.c), so
 * lines of the common shape are read directly: one flat object of known
 * fields, each at most once; integers of plain digits; strings of printable
 * ASCII without escapes; values null, a string, or a pair of them. Anything
 * else — and any line the value rules reject — goes to the jansson path,
 * which stays the one authority on what is malformed and how to say so. The
 * fast path only ever accepts what the jansson path would accept, with the
 * same result. */

enum { HF_PROCESS, HF_TYPE, HF_F, HF_KEY, HF_VALUE, HF_TIME, HF_N };

typedef struct hf_str {
    const char *p; /* NULL: JSON null */
    size_t n;
} hf_str;

typedef struct hf_line {
    const char *s, *end;
    unsigned seen;             /* bit per HF_ field */
    int64_t process, time_us;
    int type, f;
    hf_str key;
    int value_kind;            /* 0 absent or null, 1 string, 2 pair */
    hf_str v0, v1;             /* string: v0; pair: [v0, v1] */
} hf_line;

static void hf_ws(hf_line *l)
{
    while (l->s < l->end && (*l->s == ' ' || *l->s == '\t' || *l->s == '\r' || *l->s == '\n'))
        l->s++;
}

static bool hf_lit(hf_line *l, char c)
{
    hf_ws(l);
    if (l->s < l->end && *l->s == c) {
        l->s++;
        return true;
    }
    return false;
}

/* A string of printable ASCII, no escapes (else: not plain). */
static bool hf_string(hf_line *l, hf_str *out)
{
    hf_ws(l);
    if (l->s >= l->end || *l->s != '"')
        return false;
    const char *b = ++l->s;
    while (l->s < l->end && *l->s != '"') {
        unsigned char c = (unsigned char)*l->s;
        if (c < 0x20 || c >= 0x7f || c == '\\')
            return false;
        l->s++;
    }
    if (l->s >= l->end)
        return false;
    *out = (hf_str){b, (size_t)(l->s - b)};
    l->s++;
    return true;
}

static bool hf_string_or_null(hf_line *l, hf_str *out)
{
    hf_ws(l);
    if (l->end - l->s >= 4 && memcmp(l->s, "null", 4) == 0) {
        l->s += 4;
        *out = (hf_str){NULL, 0};
        return true;
    }
    return hf_string(l, out);
}

/* 0 or digits without a leading zero, at most 18 of them (no overflow); what
 * follows must end the number (a fraction or exponent is not plain). */
static bool hf_uint(hf_line *l, int64_t *out)
{
    hf_ws(l);
    const char *b = l->s;
    int64_t v = 0;
    while (l->s < l->end && *l->s >= '0' && *l->s <= '9' && l->s - b < 19)
        v = v * 10 + (*l->s++ - '0');
    size_t n = (size_t)(l->s - b);
    if (n == 0 || n > 18 || (n > 1 && *b == '0'))
        return false;
    if (l->s < l->end && (*l->s == '.' || *l->s == 'e' || *l->s == 'E' || (*l->s >= '0' && *l->s <= '9')))
        return false;
    *out = v;
    return true;
}

static int hf_enum(const hf_str *v, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (strlen(names[i]) == v->n && memcmp(names[i], v->p, v->n) == 0)
            return i;
    return -1;
}

static bool hf_value(hf_line *l)
{
    hf_ws(l);
    if (l->s < l->end && *l->s == '[') {
        l->s++;
        l->value_kind = 2;
        return hf_string_or_null(l, &l->v0) && hf_lit(l, ',') && hf_string_or_null(l, &l->v1) && hf_lit(l, ']');
    }
    if (!hf_string_or_null(l, &l->v0))
        return false;
    l->value_kind = l->v0.p ? 1 : 0;
    return true;
}

static bool hf_member(hf_line *l)
{
    static const char *const names[HF_N] = {"process", "type", "f", "key", "value", "time"};
    hf_str name, v;
    if (!hf_string(l, &name) || !hf_lit(l, ':'))
        return false;
    int field = hf_enum(&name, names, HF_N);
    if (field < 0 || (l->seen & (1u << field)))
        return false; /* unknown or repeated: the jansson path words it */
    l->seen |= 1u << field;
    switch (field) {
    case HF_PROCESS: return hf_uint(l, &l->process) && l->process <= (int64_t)UINT32_MAX;
    case HF_TIME: return hf_uint(l, &l->time_us);
    case HF_KEY: return hf_string(l, &l->key);
    case HF_VALUE: return hf_value(l);
    case HF_TYPE: return hf_string(l, &v) && (l->type = hf_enum(&v, ch_type_names, 4)) >= 0;
    default: return hf_string(l, &v) && (l->f = hf_enum(&v, ch_f_names, 5)) >= 0;
    }
}

/* The value rules of ch_parse_value, on the plain shapes: true when allowed. */
static bool hf_value_ok(const hf_line *l)
{
    bool invoke = l->type == CH_INVOKE, str = l->value_kind == 1, pair = l->value_kind == 2;
    switch (l->f) {
    case CH_GET: return l->type == CH_OK ? (l->seen & (1u << HF_VALUE)) && !pair : l->value_kind == 0;
    case CH_DEL: return l->value_kind == 0;
    case CH_PUT:
    case CH_APPEND: return invoke ? str : !pair;
    default: return (!invoke && l->value_kind == 0) || (pair && l->v1.p);
    }
}

static char *hf_dup(hf_str v, bool *oom)
{
    if (!v.p)
        return NULL;
    char *d = malloc(v.n + 1);
    if (!d) {
        *oom = true;
        return NULL;
    }
    memcpy(d, v.p, v.n);
    d[v.n] = '\0';
    return d;
}

/* 1: parsed into *out; 0: not a plain line (nothing allocated); -ENOMEM. */
static int hf_parse(const char *line, size_t len, ch_op *out)
{
    hf_line l = {.s = line, .end = line + len};
    if (!hf_lit(&l, '{'))
        return 0;
    bool ok = true;
    if (!hf_lit(&l, '}')) {
        do
            ok = hf_member(&l);
        while (ok && hf_lit(&l, ','));
        ok = ok && hf_lit(&l, '}');
    }
    hf_ws(&l);
    unsigned required = (1u << HF_N) - 1 - (1u << HF_VALUE);
    if (!ok || l.s != l.end || (l.seen & required) != required || !hf_value_ok(&l))
        return 0;
    out->process = (uint32_t)l.process;
    out->type = (ch_type)l.type;
    out->f = (ch_f)l.f;
    out->time_us = l.time_us;
    bool oom = false;
    out->key = hf_dup(l.key, &oom);
    if (l.value_kind == 2) {
        out->has_cas_expected = true;
        out->cas_expected = hf_dup(l.v0, &oom);
        out->value = hf_dup(l.v1, &oom);
    } else if (l.value_kind == 1 && (l.f == CH_GET || l.f == CH_PUT || l.f == CH_APPEND)) {
        out->value = hf_dup(l.v0, &oom);
    }
    if (oom) {
        ch_op_clear(out);
        return -ENOMEM;
    }
    return 1;
}

/* The general path: any line, every error worded. */
static int ch_parse_line_json(const char *line, size_t len, const char *file,
                              uint32_t line_no, ch_op *out, ch_error *err)
{
    ch_pctx p = {.file = file, .line = line_no, .err = err};
    memset(out, 0, sizeof *out);
    out->line = line_no;
    json_error_t jerr;
    json_t *obj = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!obj) {
        if (json_error_code(&jerr) == json_error_out_of_memory)
            return -ENOMEM;
        ch_errf(err, "%s:%" PRIu32 ": invalid JSON at column %d: %s", ch_file_name(file),
                line_no, jerr.column, jerr.text);
        return -EINVAL;
    }
    int rc;
    if (!json_is_object(obj)) {
        char q[80];
        ch_json_quote(obj, q, sizeof q);
        ch_errf(err, "%s:%" PRIu32 ": expected a JSON object with fields process, type, f, "
                "key, value, time, got %s", ch_file_name(file), line_no, q);
        rc = -EINVAL;
    } else {
        rc = ch_parse_object(&p, obj, out);
    }
    json_decref(obj);
    if (rc < 0)
        ch_op_clear(out);
    return rc;
}

int ch_history_parse_line(const char *line, size_t len, const char *file,
                          uint32_t line_no, ch_op *out, ch_error *err)
{
    memset(out, 0, sizeof *out);
    out->line = line_no;
    int fast = hf_parse(line, len, out);
    if (fast != 0)
        return fast < 0 ? fast : 0;
    return ch_parse_line_json(line, len, file, line_no, out, err);
}

/* ---- pairing ---- */

/* Per-process state, open addressing keyed by process id. */
typedef struct hist_proc_slot {
    uint32_t process;
    bool used;
    size_t last; /* index of the process's latest op */
    size_t open; /* its open invoke, CH_NONE if none */
} hist_proc_slot;

typedef struct hist_proc_map {
    hist_proc_slot *slots;
    size_t cap, n;
} hist_proc_map;

static size_t hist_proc_hash(uint32_t p, size_t cap)
{
    return (size_t)(((uint64_t)p * 0x9e3779b97f4a7c15ULL) >> 20) & (cap - 1);
}

static hist_proc_slot *hist_proc_find(hist_proc_slot *slots, size_t cap, uint32_t p)
{
    size_t i = hist_proc_hash(p, cap);
    while (slots[i].used && slots[i].process != p)
        i = (i + 1) & (cap - 1);
    return &slots[i];
}

static int hist_proc_grow(hist_proc_map *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    hist_proc_slot *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return -ENOMEM;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].used)
            *hist_proc_find(slots, cap, m->slots[i].process) = m->slots[i];
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return 0;
}

static hist_proc_slot *hist_proc_get(hist_proc_map *m, uint32_t p)
{
    if ((m->n + 1) * 2 > m->cap && hist_proc_grow(m) < 0)
        return NULL;
    hist_proc_slot *s = hist_proc_find(m->slots, m->cap, p);
    if (!s->used) {
        *s = (hist_proc_slot){.process = p, .used = true, .last = CH_NONE, .open = CH_NONE};
        m->n++;
    }
    return s;
}

static bool ch_str_eq(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* Shape of an in-memory op: the same value rules the parser enforces. */
static const char *ch_op_shape_error(const ch_op *op)
{
    if ((unsigned)op->type > CH_INFO)
        return "type";
    if ((unsigned)op->f > CH_CAS)
        return "f";
    if (!op->key)
        return "key";
    if (op->time_us < 0)
        return "time";
    bool invoke = op->type == CH_INVOKE;
    bool empty = !op->value && !op->cas_expected && !op->has_cas_expected;
    switch (op->f) {
    case CH_GET:
        return (op->type == CH_OK ? !op->cas_expected && !op->has_cas_expected : empty) ? NULL
                                                                                         : "value";
    case CH_DEL:
        return empty ? NULL : "value";
    case CH_PUT:
    case CH_APPEND:
        return (op->cas_expected || op->has_cas_expected || (invoke && !op->value)) ? "value"
                                                                                   : NULL;
    case CH_CAS:
        if (op->has_cas_expected)
            return op->value ? NULL : "value";
        return (invoke || !empty) ? "value" : NULL;
    }
    return "f";
}

/* A completion's value must be null or repeat what was invoked. */
static bool ch_completion_value_ok(const ch_op *inv, const ch_op *c)
{
    switch (inv->f) {
    case CH_PUT:
    case CH_APPEND:
        return !c->value || ch_str_eq(c->value, inv->value);
    case CH_CAS:
        return !c->has_cas_expected ||
               (ch_str_eq(c->value, inv->value) && ch_str_eq(c->cas_expected, inv->cas_expected));
    default:
        return true;
    }
}

static int ch_pair_completion(const ch_history *h, const char *file, size_t i, hist_proc_slot *s,
                              ch_error *err)
{
    const ch_op *op = &h->ops[i];
    const char *fn = ch_file_name(file);
    if (s->open == CH_NONE) {
        ch_errf(err, "%s:%" PRIu32 ": field \"type\": process %" PRIu32 " completes (%s) "
                "with no open invoke", fn, op->line, op->process, ch_type_name(op->type));
        return -EINVAL;
    }
    const ch_op *inv = &h->ops[s->open];
    if (inv->f != op->f) {
        ch_errf(err, "%s:%" PRIu32 ": field \"f\": expected \"%s\" (invoked at line %" PRIu32
                "), got \"%s\"", fn, op->line, ch_f_name(inv->f), inv->line, ch_f_name(op->f));
        return -EINVAL;
    }
    if (strcmp(inv->key, op->key) != 0) {
        ch_errf(err, "%s:%" PRIu32 ": field \"key\": expected \"%.64s\" (invoked at line %"
                PRIu32 "), got \"%.64s\"", fn, op->line, inv->key, inv->line, op->key);
        return -EINVAL;
    }
    if (!ch_completion_value_ok(inv, op)) {
        ch_errf(err, "%s:%" PRIu32 ": field \"value\": expected null or the value invoked at "
                "line %" PRIu32, fn, op->line, inv->line);
        return -EINVAL;
    }
    return 0;
}

static int ch_pair_one(const ch_history *h, const char *file, size_t i, hist_proc_slot *s,
                       size_t *match, ch_error *err)
{
    const ch_op *op = &h->ops[i];
    const char *fn = ch_file_name(file);
    const char *bad = ch_op_shape_error(op);
    if (bad) {
        ch_errf(err, "%s:%" PRIu32 ": field \"%s\": not valid for a %s %s", fn, op->line, bad,
                ch_f_name(op->f), ch_type_name(op->type));
        return -EINVAL;
    }
    if (s->last != CH_NONE && op->time_us < h->ops[s->last].time_us) {
        ch_errf(err, "%s:%" PRIu32 ": field \"time\": expected >= %" PRId64 " (process %" PRIu32
                "'s previous op at line %" PRIu32 "), got %" PRId64, fn, op->line,
                h->ops[s->last].time_us, op->process, h->ops[s->last].line, op->time_us);
        return -EINVAL;
    }
    if (op->type == CH_INVOKE) {
        if (s->open != CH_NONE) {
            ch_errf(err, "%s:%" PRIu32 ": field \"type\": process %" PRIu32 " invokes again "
                    "while its invoke at line %" PRIu32 " is open", fn, op->line, op->process,
                    h->ops[s->open].line);
            return -EINVAL;
        }
        s->open = i;
    } else {
        int rc = ch_pair_completion(h, file, i, s, err);
        if (rc < 0)
            return rc;
        if (match) {
            match[s->open] = i;
            match[i] = s->open;
        }
        s->open = CH_NONE;
    }
    s->last = i;
    return 0;
}

int ch_history_pair(const ch_history *h, const char *file, size_t *match, ch_error *err)
{
    hist_proc_map m = {0};
    int rc = 0;
    for (size_t i = 0; match && i < h->n; i++)
        match[i] = CH_NONE;
    for (size_t i = 0; i < h->n && rc == 0; i++) {
        hist_proc_slot *s = hist_proc_get(&m, h->ops[i].process);
        rc = s ? ch_pair_one(h, file, i, s, match, err) : -ENOMEM;
    }
    free(m.slots);
    return rc;
}

/* ---- reading a file ---- */

/* One line into *buf (without the newline), at most CH_HISTORY_LINE_MAX bytes.
 * Returns 1 for a line, 0 at end of file, -E2BIG for a long line, -ENOMEM. */
static int ch_read_line(FILE *f, char **buf, size_t *cap, size_t *len)
{
    size_t n = 0;
    int c;
    while ((c = getc_unlocked(f)) != EOF && c != '\n') {
        if (n >= CH_HISTORY_LINE_MAX)
            return -E2BIG;
        if (n + 1 >= *cap) {
            size_t ncap = *cap ? *cap * 2 : 256;
            char *b = realloc(*buf, ncap);
            if (!b)
                return -ENOMEM;
            *buf = b;
            *cap = ncap;
        }
        (*buf)[n++] = (char)c;
    }
    *len = n;
    return (c == EOF && n == 0) ? 0 : 1;
}

static bool ch_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return false;
    return true;
}

static int ch_read_lines(FILE *f, const char *path, ch_history *h, ch_error *err)
{
    char *buf = NULL;
    size_t cap = 0, len = 0;
    uint32_t line_no = 0;
    int rc;
    while ((rc = ch_read_line(f, &buf, &cap, &len)) == 1) {
        if (line_no == UINT32_MAX) {
            rc = -E2BIG;
            break;
        }
        line_no++;
        if (ch_blank(buf, len))
            continue;
        ch_op op;
        if ((rc = ch_history_parse_line(buf, len, path, line_no, &op, err)) < 0)
            break;
        if ((rc = ch_history_push(h, &op)) < 0) {
            ch_op_clear(&op);
            if (rc == -E2BIG)
                ch_errf(err, "%s:%" PRIu32 ": more than %u ops", path, line_no,
                        CH_HISTORY_OPS_MAX);
            break;
        }
        rc = 0;
    }
    if (rc == -E2BIG && h->n < CH_HISTORY_OPS_MAX)
        ch_errf(err, "%s:%" PRIu32 ": line longer than %u bytes", path, line_no + 1,
                CH_HISTORY_LINE_MAX);
    if (rc == 0 && ferror(f)) {
        rc = -EIO;
        ch_errf(err, "%s: read error", path);
    }
    free(buf);
    return rc == -E2BIG ? -EINVAL : rc;
}

int ch_history_read_file(const char *path, ch_history **out, ch_error *err)
{
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (!f) {
        int e = errno;
        ch_errf(err, "%s: cannot open: %s", path, strerror(e));
        return -e;
    }
    ch_history *h = ch_history_new();
    int rc = h ? ch_read_lines(f, path, h, err) : -ENOMEM;
    fclose(f);
    if (rc == 0)
        rc = ch_history_pair(h, path, NULL, err);
    if (rc == -ENOMEM)
        ch_errf(err, "%s: out of memory", path);
    if (rc < 0) {
        ch_history_free(h);
        return rc;
    }
    *out = h;
    return 0;
}

/* ---- writing ---- */

/* NULL for a string that is not valid UTF-8 (jansson refuses it). */
static json_t *ch_str_json(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *ch_value_json(const ch_op *op)
{
    if (!(op->f == CH_CAS && op->has_cas_expected))
        return ch_str_json(op->value);
    json_t *a = json_array();
    if (a && (json_array_append_new(a, ch_str_json(op->cas_expected)) < 0 ||
              json_array_append_new(a, ch_str_json(op->value)) < 0)) {
        json_decref(a);
        return NULL;
    }
    return a;
}

/* json_object_set_new steals the value even when it fails, so no leaks here. */
static json_t *ch_op_json(const ch_op *op)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    int bad = json_object_set_new(o, "process", json_integer((json_int_t)op->process));
    bad |= json_object_set_new(o, "type", json_string(ch_type_name(op->type)));
    bad |= json_object_set_new(o, "f", json_string(ch_f_name(op->f)));
    bad |= json_object_set_new(o, "key", json_string(op->key));
    bad |= json_object_set_new(o, "value", ch_value_json(op));
    bad |= json_object_set_new(o, "time", json_integer((json_int_t)op->time_us));
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int ch_op_format(const ch_op *op, char *buf, size_t cap)
{
    if (cap)
        buf[0] = '\0';
    if ((unsigned)op->type > CH_INFO || (unsigned)op->f > CH_CAS || !op->key)
        return -EINVAL;
    json_t *obj = ch_op_json(op);
    if (!obj)
        return -EINVAL;
    size_t n = json_dumpb(obj, NULL, 0, JSON_COMPACT);
    if (n > 0 && n < cap && n <= INT32_MAX) {
        json_dumpb(obj, buf, n, JSON_COMPACT);
        buf[n] = '\0';
    }
    json_decref(obj);
    return (n == 0 || n > INT32_MAX) ? -EINVAL : (int)n;
}

static int ch_write_ops(FILE *f, const ch_history *h)
{
    size_t cap = 4096;
    char *buf = malloc(cap);
    if (!buf)
        return -ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < h->n && rc == 0; i++) {
        int n = ch_op_format(&h->ops[i], buf, cap);
        if (n >= 0 && (size_t)n >= cap) {
            char *b = realloc(buf, (size_t)n + 1);
            if (!b) {
                rc = -ENOMEM;
                break;
            }
            buf = b;
            cap = (size_t)n + 1;
            n = ch_op_format(&h->ops[i], buf, cap);
        }
        if (n < 0)
            rc = n;
        else if (fwrite(buf, 1, (size_t)n, f) != (size_t)n || putc('\n', f) == EOF)
            rc = -EIO;
    }
    free(buf);
    return rc;
}

/* Make the rename itself durable (best effort: some filesystems refuse). */
static void ch_fsync_dir(const char *path)
{
    char *dir = strdup(path);
    if (!dir)
        return;
    char *slash = strrchr(dir, '/');
    const char *d = slash ? (slash == dir ? "/" : (*slash = '\0', dir)) : ".";
    int fd = open(d, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

int ch_history_write_file(const char *path, const ch_history *h)
{
    size_t n = strlen(path);
    char *tmp = malloc(n + 5);
    if (!tmp)
        return -ENOMEM;
    memcpy(tmp, path, n);
    memcpy(tmp + n, ".tmp", 5);
    FILE *f = fopen(tmp, "w");
    int rc = f ? 0 : -errno;
    if (f) {
        rc = ch_write_ops(f, h);
        if (rc == 0 && (fflush(f) != 0 || fsync(fileno(f)) != 0))
            rc = -errno;
        if (fclose(f) != 0 && rc == 0)
            rc = -errno;
        if (rc == 0 && rename(tmp, path) != 0)
            rc = -errno;
        if (rc < 0)
            unlink(tmp);
        else
            ch_fsync_dir(path);
    }
    free(tmp);
    return rc;
}

/* ---- generator ---- */

void ch_gen_opts_default(ch_gen_opts *o)
{
    *o = (ch_gen_opts){
        .seed = 1, .n_ops = 1000, .n_processes = 5, .n_keys = 10,
        .mix = {0.4, 0.3, 0.05, 0.1, 0.15},
        .p_info = 0.02, .dur_us_max = 100, .gap_us_max = 50,
    };
}

typedef struct ch_gen_op {
    int64_t call, lin, ret;
    uint32_t process, key;
    ch_f f;
    ch_type outcome;
    bool applied;       /* info ops: whether the effect happens at all */
    char *arg;          /* put/append value, cas new (owned) */
    char *expected;     /* cas expected (owned, NULL = absent) */
    char *read;         /* get result (owned, NULL = absent) */
} ch_gen_op;

typedef struct ch_gen_ev {
    int64_t time;
    uint32_t op;
    bool completion;
} ch_gen_ev;

static ch_f ch_gen_pick_f(rift_rng *r, const double *mix)
{
    double total = 0;
    for (int i = 0; i < 5; i++)
        total += mix[i] > 0 ? mix[i] : 0;
    double x = rift_rng_double(r) * total;
    for (int i = 0; i < 5; i++) {
        double w = mix[i] > 0 ? mix[i] : 0;
        if (x < w)
            return (ch_f)i;
        x -= w;
    }
    return CH_GET;
}

static char *ch_token(char tag, uint32_t i)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%c%" PRIu32 ";", tag, i);
    return strdup(buf);
}

/* Arguments for op i: fresh unique tokens; a cas expects the key's latest
 * written token most of the time so that some succeed. */
static int ch_gen_args(rift_rng *r, ch_gen_op *g, uint32_t i, char **last_tok)
{
    char **last = &last_tok[g->key];
    if (g->f == CH_PUT || g->f == CH_APPEND || g->f == CH_CAS) {
        if (!(g->arg = ch_token(g->f == CH_PUT ? 'p' : g->f == CH_APPEND ? 'a' : 'c', i)))
            return -ENOMEM;
    }
    if (g->f == CH_CAS) {
        double x = rift_rng_double(r);
        if (x < 0.75 && *last && !(g->expected = strdup(*last)))
            return -ENOMEM;
    }
    if (g->f == CH_PUT || g->f == CH_CAS) {
        free(*last);
        if (!(*last = strdup(g->arg)))
            return -ENOMEM;
    }
    return 0;
}

/* Which process runs next: the one free earliest, so ops interleave in time. */
static uint32_t ch_gen_next_proc(const int64_t *next, uint32_t procs)
{
    uint32_t p = 0;
    for (uint32_t q = 1; q < procs; q++)
        if (next[q] < next[p])
            p = q;
    return p;
}

static int ch_gen_schedule(const ch_gen_opts *o, rift_rng *r, ch_gen_op *ops, char **last_tok)
{
    uint32_t procs = o->n_processes;
    int64_t *next = calloc(procs, sizeof *next);
    uint32_t *pid = calloc(procs, sizeof *pid);
    int rc = (next && pid) ? 0 : -ENOMEM;
    for (uint32_t p = 0; rc == 0 && p < procs; p++) {
        next[p] = (int64_t)rift_rng_range(r, 0, o->gap_us_max);
        pid[p] = p;
    }
    for (uint32_t i = 0; rc == 0 && i < o->n_ops; i++) {
        uint32_t p = ch_gen_next_proc(next, procs);
        ch_gen_op *g = &ops[i];
        int64_t dur = (int64_t)rift_rng_range(r, 1, o->dur_us_max ? o->dur_us_max : 1);
        g->call = next[p];
        g->ret = g->call + dur;
        g->process = pid[p];
        g->key = (uint32_t)rift_rng_range(r, 0, o->n_keys - 1);
        g->f = ch_gen_pick_f(r, o->mix);
        g->outcome = rift_rng_double(r) < o->p_info ? CH_INFO : CH_OK;
        g->applied = g->outcome == CH_OK || rift_rng_double(r) < 0.5;
        /* An info op may take effect long after the client gave up on it. */
        int64_t span = g->outcome == CH_INFO ? dur * 10 : dur;
        g->lin = g->call + (int64_t)rift_rng_range(r, 0, (uint64_t)span);
        rc = ch_gen_args(r, g, i, last_tok);
        /* After an info, Jepsen retires the process; the client goes on as a new one. */
        if (g->outcome == CH_INFO)
            pid[p] += procs;
        next[p] = g->ret + (int64_t)rift_rng_range(r, 0, o->gap_us_max);
    }
    free(next);
    free(pid);
    return rc;
}

typedef struct ch_gen_lin {
    int64_t lin;
    uint32_t op;
} ch_gen_lin;

static int ch_gen_cmp_lin(const void *a, const void *b)
{
    const ch_gen_lin *x = a, *y = b;
    if (x->lin != y->lin)
        return x->lin < y->lin ? -1 : 1;
    return x->op < y->op ? -1 : x->op > y->op;
}

static char *ch_concat(const char *a, const char *b)
{
    size_t na = a ? strlen(a) : 0, nb = strlen(b);
    char *s = malloc(na + nb + 1);
    if (s) {
        memcpy(s, a ? a : "", na);
        memcpy(s + na, b, nb + 1);
    }
    return s;
}

/* Apply one op to its key's state at its linearization point. */
static int ch_gen_apply(ch_gen_op *g, char **state)
{
    char *next = NULL;
    bool oom = false;
    switch (g->f) {
    case CH_GET:
        g->read = ch_strdup_opt(*state, &oom);
        return oom ? -ENOMEM : 0;
    case CH_PUT:
        next = strdup(g->arg);
        break;
    case CH_DEL:
        break;
    case CH_APPEND:
        next = ch_concat(*state, g->arg);
        break;
    case CH_CAS:
        if (!ch_str_eq(*state, g->expected)) {
            if (g->outcome == CH_OK)
                g->outcome = CH_FAIL;
            return 0;
        }
        next = strdup(g->arg);
        break;
    }
    if (g->f != CH_DEL && !next)
        return -ENOMEM;
    free(*state);
    *state = next;
    return 0;
}

/* Apply every op in linearization order: the sequential store behind the history. */
static int ch_gen_run(ch_gen_op *ops, uint32_t n, char **state)
{
    ch_gen_lin *order = malloc((size_t)(n ? n : 1) * sizeof *order);
    if (!order)
        return -ENOMEM;
    for (uint32_t i = 0; i < n; i++)
        order[i] = (ch_gen_lin){.lin = ops[i].lin, .op = i};
    qsort(order, n, sizeof *order, ch_gen_cmp_lin);
    int rc = 0;
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        ch_gen_op *g = &ops[order[i].op];
        if (g->applied)
            rc = ch_gen_apply(g, &state[g->key]);
    }
    free(order);
    return rc;
}

static int ch_gen_cmp_ev(const void *a, const void *b)
{
    const ch_gen_ev *x = a, *y = b;
    if (x->time != y->time)
        return x->time < y->time ? -1 : 1;
    if (x->op != y->op)
        return x->op < y->op ? -1 : 1;
    return (int)x->completion - (int)y->completion;
}

static int ch_gen_emit(ch_history *h, const ch_gen_op *g, bool completion)
{
    char key[16];
    snprintf(key, sizeof key, "k%" PRIu32, g->key);
    ch_op op = {.process = g->process, .type = completion ? g->outcome : CH_INVOKE,
                .f = g->f, .key = key, .time_us = completion ? g->ret : g->call};
    if (g->f == CH_GET) {
        op.value = completion && g->outcome == CH_OK ? g->read : NULL;
    } else if (g->f != CH_DEL) {
        op.value = g->arg;
        op.cas_expected = g->expected;
        op.has_cas_expected = g->f == CH_CAS;
    }
    return ch_history_append(h, &op);
}

static int ch_gen_write(ch_history *h, const ch_gen_op *ops, uint32_t n)
{
    ch_gen_ev *ev = malloc((size_t)(n ? n : 1) * 2 * sizeof *ev);
    if (!ev)
        return -ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        ev[2 * i] = (ch_gen_ev){.time = ops[i].call, .op = i, .completion = false};
        ev[2 * i + 1] = (ch_gen_ev){.time = ops[i].ret, .op = i, .completion = true};
    }
    qsort(ev, (size_t)n * 2, sizeof *ev, ch_gen_cmp_ev);
    int rc = 0;
    for (size_t i = 0; i < (size_t)n * 2 && rc == 0; i++)
        rc = ch_gen_emit(h, &ops[ev[i].op], ev[i].completion);
    free(ev);
    return rc;
}

int ch_history_generate(ch_history *h, const ch_gen_opts *o)
{
    if (o->n_processes == 0 || o->n_keys == 0 || o->n_ops > CH_HISTORY_OPS_MAX / 2)
        return -EINVAL;
    rift_rng r;
    rift_rng_seed(&r, o->seed);
    ch_gen_op *ops = calloc(o->n_ops ? o->n_ops : 1, sizeof *ops);
    char **state = calloc(o->n_keys, sizeof *state);
    char **last_tok = calloc(o->n_keys, sizeof *last_tok);
    int rc = (ops && state && last_tok) ? 0 : -ENOMEM;
    if (rc == 0)
        rc = ch_gen_schedule(o, &r, ops, last_tok);
    if (rc == 0)
        rc = ch_gen_run(ops, o->n_ops, state);
    if (rc == 0)
        rc = ch_gen_write(h, ops, o->n_ops);
    for (uint32_t i = 0; ops && i < o->n_ops; i++) {
        free(ops[i].arg);
        free(ops[i].expected);
        free(ops[i].read);
    }
    for (uint32_t k = 0; k < o->n_keys; k++) {
        free(state ? state[k] : NULL);
        free(last_tok ? last_tok[k] : NULL);
    }
    free(ops);
    free(state);
    free(last_tok);
    return rc;
}
