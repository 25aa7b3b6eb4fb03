/* ch_verdict.c — evaluate assertions; render junit.xml. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ch_verdict.h"

const char *ch_verdict_name(ch_verdict v)
{
    static const char *const names[] = {"pass", "fail", "unknown"};
    return (unsigned)v < 3 ? names[v] : "unknown";
}

int ch_verdict_exit_code(ch_verdict v) { return v == CH_VERDICT_PASS ? 0 : v == CH_VERDICT_FAIL ? 1 : 4; }

/* state: 1 pass, 0 fail, -1 unknown */
static void row(json_t *rows, const char *name, json_t *limit, json_t *value, int state, const char *why)
{
    json_t *r = json_pack("{s:s, s:o, s:o, s:b, s:b}", "name", name, "limit", limit, "value", value, "pass",
                          state == 1, "unknown", state < 0);
    if (why)
        json_object_set_new(r, "message", json_string(why));
    json_array_append_new(rows, r);
}

static void upper_bound(json_t *rows, const char *name, uint64_t limit, uint64_t value, const char *unit)
{
    char why[160];
    snprintf(why, sizeof(why), "%s: %llu%s (limit %llu%s)", name, (unsigned long long)value, unit,
             (unsigned long long)limit, unit);
    row(rows, name, json_integer((json_int_t)limit), json_integer((json_int_t)value), value <= limit, why);
}

static void recovery_row(json_t *rows, const ch_assertions *a, const ch_metrics *m)
{
    char why[200];
    if (m->max_recovery_us < 0) {
        snprintf(why, sizeof(why), "recover_within_ms: no completed op after a heal/resume/restart (limit %llu ms)",
                 (unsigned long long)a->recover_within_ms);
        row(rows, "recover_within_ms", json_integer((json_int_t)a->recover_within_ms), json_null(), 0, why);
        return;
    }
    upper_bound(rows, "recover_within_ms", a->recover_within_ms, (uint64_t)m->max_recovery_us / 1000, " ms");
}

static void throughput_row(json_t *rows, const ch_assertions *a, const ch_metrics *m)
{
    double ratio = m->throughput_before_faults > 0 ? m->throughput_during_faults / m->throughput_before_faults : 0;
    char why[200];
    snprintf(why, sizeof(why), "min_throughput_ratio: %.3f (%.0f ops/s during faults vs %.0f before; limit %.3f)",
             ratio, m->throughput_during_faults, m->throughput_before_faults, a->min_throughput_ratio);
    row(rows, "min_throughput_ratio", json_real(a->min_throughput_ratio), json_real(ratio),
        ratio >= a->min_throughput_ratio, why);
}

json_t *ch_assertions_evaluate(const ch_assertions *a, const ch_metrics *m, const ch_checks *c, ch_verdict *v)
{
    json_t *rows = json_array();
    if (a->has_linearizable) {
        int st = !a->linearizable ? 1 : c->linearizable == 1 ? 1 : c->linearizable == 0 ? 0 : -1;
        const char *why = c->linearizable == 0 ? "the history is not linearizable"
                          : c->linearizable == -1 ? "the checker ran out of time" : NULL;
        row(rows, "linearizable", json_boolean(a->linearizable),
            c->linearizable < 0 ? json_null() : json_boolean(c->linearizable == 1), st, why);
    }
    if (a->has_logs_agree)
        row(rows, "logs_agree", json_boolean(a->logs_agree), json_boolean(c->logs_agree),
            !a->logs_agree || c->logs_agree, c->logs_agree ? NULL : "two replicas executed different entries");
    if (a->has_max_unavailability_ms)
        upper_bound(rows, "max_unavailability_ms", a->max_unavailability_ms, m->max_unavailable_us / 1000, " ms");
    if (a->has_recover_within_ms)
        recovery_row(rows, a, m);
    if (a->has_max_leader_changes)
        upper_bound(rows, "max_leader_changes", a->max_leader_changes, m->leader_changes, "");
    if (a->has_min_throughput_ratio)
        throughput_row(rows, a, m);
    if (a->has_max_log_entries)
        upper_bound(rows, "max_log_entries", a->max_log_entries, m->max_log_entries, "");
    bool any_fail = false, any_unknown = false;
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r)
    {
        any_fail |= !json_is_true(json_object_get(r, "pass")) && !json_is_true(json_object_get(r, "unknown"));
        any_unknown |= json_is_true(json_object_get(r, "unknown"));
    }
    *v = any_fail ? CH_VERDICT_FAIL : any_unknown ? CH_VERDICT_UNKNOWN : CH_VERDICT_PASS;
    return rows;
}

/* XML-escape into a growing buffer. */
static void put_escaped(char **buf, size_t *len, size_t *cap, const char *s)
{
    for (; s && *s; s++) {
        char tmp[8];
        const char *piece = tmp;
        switch (*s) {
        case '<': piece = "&lt;"; break;
        case '>': piece = "&gt;"; break;
        case '&': piece = "&amp;"; break;
        case '"': piece = "&quot;"; break;
        default: tmp[0] = *s; tmp[1] = 0; break;
        }
        size_t n = strlen(piece);
        if (*len + n + 1 > *cap) {
            size_t ncap = (*cap + n + 1) * 2;
            char *nb = realloc(*buf, ncap);
            if (!nb)
                return;
            *buf = nb;
            *cap = ncap;
        }
        memcpy(*buf + *len, piece, n + 1);
        *len += n;
    }
}

__attribute__((format(printf, 4, 5))) static void put_raw(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    size_t n = strlen(tmp);
    if (*len + n + 1 > *cap) {
        size_t ncap = (*cap + n + 1) * 2;
        char *nb = realloc(*buf, ncap);
        if (!nb)
            return;
        *buf = nb;
        *cap = ncap;
    }
    memcpy(*buf + *len, tmp, n + 1);
    *len += n;
}

char *ch_junit_xml(const char *suite, const json_t *rows, double duration_s)
{
    size_t len = 0, cap = 1024, i, failures = 0, skipped = 0;
    char *buf = malloc(cap);
    if (!buf)
        return NULL;
    buf[0] = 0;
    json_t *r;
    json_array_foreach(rows, i, r)
    {
        bool unknown = json_is_true(json_object_get(r, "unknown"));
        failures += !unknown && !json_is_true(json_object_get(r, "pass"));
        skipped += unknown;
    }
    put_raw(&buf, &len, &cap, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n  <testsuite name=\"");
    put_escaped(&buf, &len, &cap, suite);
    put_raw(&buf, &len, &cap, "\" tests=\"%zu\" failures=\"%zu\" skipped=\"%zu\" time=\"%.3f\">\n",
            json_array_size(rows), failures, skipped, duration_s);
    json_array_foreach(rows, i, r)
    {
        const char *name = json_string_value(json_object_get(r, "name"));
        const char *msg = json_string_value(json_object_get(r, "message"));
        put_raw(&buf, &len, &cap, "    <testcase classname=\"");
        put_escaped(&buf, &len, &cap, suite);
        put_raw(&buf, &len, &cap, "\" name=\"");
        put_escaped(&buf, &len, &cap, name);
        put_raw(&buf, &len, &cap, "\">");
        if (json_is_true(json_object_get(r, "unknown"))) {
            put_raw(&buf, &len, &cap, "<skipped message=\"");
            put_escaped(&buf, &len, &cap, msg);
            put_raw(&buf, &len, &cap, "\"/>");
        } else if (!json_is_true(json_object_get(r, "pass"))) {
            put_raw(&buf, &len, &cap, "<failure message=\"");
            put_escaped(&buf, &len, &cap, msg);
            put_raw(&buf, &len, &cap, "\"/>");
        } else if (msg) {
            put_raw(&buf, &len, &cap, "<system-out>");
            put_escaped(&buf, &len, &cap, msg);
            put_raw(&buf, &len, &cap, "</system-out>");
        }
        put_raw(&buf, &len, &cap, "</testcase>\n");
    }
    put_raw(&buf, &len, &cap, "  </testsuite>\n</testsuites>\n");
    return buf;
}
