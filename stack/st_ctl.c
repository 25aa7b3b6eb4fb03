/* st_ctl.c — control socket: a strict JSON-line parser and a small
 * non-blocking Unix socket server around it.
 *
 * Strict on purpose: the controller drives faults through here, and a request
 * that is half understood (a misspelt "dealy_ms") must fail loudly rather than
 * install a rule that does less than asked. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4; the build defines it, tests/fuzz/run does not */
#endif
#include "st_ctl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define CTL_OUT_MAX (8u << 20)      /* queued reply bytes per client before it is dropped */
#define CTL_MS_MAX 60000.0          /* st_impair's cap on delays: 60 s */
#define CTL_EVENTS 32

/* ------------------------------------------------------------------ parsing */

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

int st_ctl_parse_addr(const char *s, uint32_t *out)
{
    if (!s)
        return -EINVAL;
    if (strcmp(s, "*") == 0) {
        *out = ST_IMPAIR_ANY;
        return 0;
    }
    struct in_addr a;
    if (inet_pton(AF_INET, s, &a) != 1)
        return -EINVAL;
    uint32_t ip = ntohl(a.s_addr);
    if (ip == 0 || ip == ST_IMPAIR_ANY)
        return -EINVAL;
    *out = ip;
    return 0;
}

const char *st_ctl_format_addr(uint32_t ip, char *buf, size_t len)
{
    if (ip == ST_IMPAIR_ANY)
        snprintf(buf, len, "*");
    else
        snprintf(buf, len, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 0xff, (ip >> 8) & 0xff, ip & 0xff);
    return buf;
}

static int get_addr(json_t *o, const char *field, const char *where, uint32_t *out, char *err, size_t errlen)
{
    json_t *v = json_object_get(o, field);
    if (!v)
        return fail(err, errlen, "%s%s: missing (an IPv4 address or \"*\")", where, field);
    if (!json_is_string(v) || st_ctl_parse_addr(json_string_value(v), out))
        return fail(err, errlen, "%s%s: expected an IPv4 address or \"*\"", where, field);
    return 0;
}

static int get_prob(json_t *v, const char *field, double *out, char *err, size_t errlen)
{
    double p = json_is_number(v) ? json_number_value(v) : NAN;
    if (!(p >= 0.0 && p <= 1.0))
        return fail(err, errlen, "rule.%s: expected a probability in [0,1]", field);
    *out = p;
    return 0;
}

static int get_ms(json_t *v, const char *field, uint64_t *us, char *err, size_t errlen)
{
    double ms = json_is_number(v) ? json_number_value(v) : NAN;
    if (!(ms >= 0.0 && ms <= CTL_MS_MAX))
        return fail(err, errlen, "rule.%s: expected milliseconds in [0,%.0f]", field, CTL_MS_MAX);
    *us = (uint64_t)llround(ms * 1000.0);
    return 0;
}

static const char *const dist_names[] = {"uniform", "normal", "pareto"};

/* "drop": true / 1.0 cuts the link; a probability below 1 is plain loss. */
static int get_drop(json_t *v, st_impair_rule *r, bool *drop_loss, char *err, size_t errlen)
{
    if (json_is_boolean(v)) {
        r->cut = json_is_true(v);
        return 0;
    }
    double p = 0.0;
    if (get_prob(v, "drop", &p, err, errlen))
        return -EINVAL;
    if (p >= 1.0)
        r->cut = true;
    else if (p > 0.0) {
        r->loss = p;
        *drop_loss = true;
    }
    return 0;
}

static int rule_field(const char *k, json_t *v, st_impair_rule *r, bool *drop_loss, bool *has_loss, char *err,
                      size_t errlen)
{
    if (!strcmp(k, "src") || !strcmp(k, "dst"))
        return 0; /* read by the caller */
    if (!strcmp(k, "drop"))
        return get_drop(v, r, drop_loss, err, errlen);
    if (!strcmp(k, "cut")) {
        if (!json_is_boolean(v))
            return fail(err, errlen, "rule.cut: expected true or false");
        r->cut = r->cut || json_is_true(v);
        return 0;
    }
    if (!strcmp(k, "loss")) {
        *has_loss = true;
        return get_prob(v, k, &r->loss, err, errlen);
    }
    if (!strcmp(k, "correlation"))
        return get_prob(v, k, &r->loss_correlation, err, errlen);
    if (!strcmp(k, "duplicate"))
        return get_prob(v, k, &r->duplicate, err, errlen);
    if (!strcmp(k, "reorder"))
        return get_prob(v, k, &r->reorder, err, errlen);
    if (!strcmp(k, "delay_ms"))
        return get_ms(v, k, &r->delay_us, err, errlen);
    if (!strcmp(k, "jitter_ms"))
        return get_ms(v, k, &r->jitter_us, err, errlen);
    if (!strcmp(k, "reorder_ms"))
        return get_ms(v, k, &r->reorder_us, err, errlen);
    if (!strcmp(k, "distribution")) {
        for (uint8_t i = 0; i < 3; i++) {
            if (json_is_string(v) && !strcmp(json_string_value(v), dist_names[i])) {
                r->distribution = i;
                return 0;
            }
        }
        return fail(err, errlen, "rule.distribution: expected \"uniform\", \"normal\" or \"pareto\"");
    }
    return fail(err, errlen, "rule.%.64s: unknown field", k);
}

static int parse_rule(json_t *o, st_impair_rule *r, char *err, size_t errlen)
{
    if (!json_is_object(o))
        return fail(err, errlen, "rule: expected an object");
    memset(r, 0, sizeof *r);
    if (get_addr(o, "src", "rule.", &r->src, err, errlen) || get_addr(o, "dst", "rule.", &r->dst, err, errlen))
        return -EINVAL;
    bool drop_loss = false, has_loss = false;
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        if (rule_field(k, v, r, &drop_loss, &has_loss, err, errlen))
            return -EINVAL;
    }
    if (drop_loss && has_loss)
        return fail(err, errlen, "rule.drop: a probability below 1 is loss; give either drop or loss");
    char why[160];
    if (st_impair_rule_check(r, why, sizeof why)) /* belt and braces: the model's own limits */
        return fail(err, errlen, "rule: %s", why);
    return 0;
}

static const struct {
    const char *name;
    uint8_t kind;
} cmd_names[] = {
    {"ping", ST_CTL_PING},
    {"impair-add", ST_CTL_IMPAIR_ADD},
    {"impair-remove", ST_CTL_IMPAIR_REMOVE},
    {"impair-clear", ST_CTL_IMPAIR_CLEAR},
    {"impair-list", ST_CTL_IMPAIR_LIST},
    {"stats", ST_CTL_STATS},
    {"capture-start", ST_CTL_CAPTURE_START},
    {"capture-stop", ST_CTL_CAPTURE_STOP},
};

/* Which top-level fields a command takes besides "cmd". */
static bool field_allowed(uint8_t kind, const char *k)
{
    switch (kind) {
    case ST_CTL_IMPAIR_ADD: return !strcmp(k, "rule");
    case ST_CTL_IMPAIR_REMOVE: return !strcmp(k, "id");
    case ST_CTL_IMPAIR_CLEAR: return !strcmp(k, "src") || !strcmp(k, "dst");
    case ST_CTL_CAPTURE_START: return !strcmp(k, "path");
    default: return false;
    }
}

static int parse_args(json_t *o, st_ctl_cmd *out, char *err, size_t errlen)
{
    json_t *v;
    switch (out->kind) {
    case ST_CTL_IMPAIR_ADD:
        return parse_rule(json_object_get(o, "rule"), &out->rule, err, errlen);
    case ST_CTL_IMPAIR_REMOVE:
        v = json_object_get(o, "id");
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX)
            return fail(err, errlen, "id: expected a rule id (an integer >= 0)");
        out->id = (int)json_integer_value(v);
        return 0;
    case ST_CTL_IMPAIR_CLEAR:
        if (!json_object_get(o, "src") && !json_object_get(o, "dst"))
            return 0;
        out->link = true;
        if (get_addr(o, "src", "", &out->src, err, errlen) || get_addr(o, "dst", "", &out->dst, err, errlen))
            return -EINVAL;
        return 0;
    case ST_CTL_CAPTURE_START:
        v = json_object_get(o, "path");
        if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) >= ST_CTL_PATH_MAX ||
            strlen(json_string_value(v)) != json_string_length(v))
            return fail(err, errlen, "path: expected a file path");
        memcpy(out->path, json_string_value(v), json_string_length(v) + 1);
        return 0;
    default:
        return 0;
    }
}

int st_ctl_parse(const char *line, size_t len, st_ctl_cmd *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    json_error_t je;
    json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
    if (!o)
        return fail(err, errlen, "request: not JSON (%s at column %d)", je.text, je.column);
    int rc = -EINVAL;
    json_t *cmd = json_object_get(o, "cmd");
    if (!json_is_object(o)) {
        fail(err, errlen, "request: expected a JSON object");
        goto out;
    }
    if (!json_is_string(cmd)) {
        fail(err, errlen, "cmd: missing (a string)");
        goto out;
    }
    for (size_t i = 0; i < sizeof cmd_names / sizeof cmd_names[0]; i++)
        if (!strcmp(json_string_value(cmd), cmd_names[i].name))
            out->kind = cmd_names[i].kind;
    if (!out->kind) {
        fail(err, errlen, "cmd: unknown command \"%.64s\"", json_string_value(cmd));
        goto out;
    }
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        if (strcmp(k, "cmd") && !field_allowed(out->kind, k)) {
            fail(err, errlen, "%.64s: unknown field for %s", k, json_string_value(cmd));
            goto out;
        }
    }
    rc = parse_args(o, out, err, errlen);
out:
    json_decref(o);
    return rc;
}

json_t *st_ctl_rule_json(const st_impair_rule *r)
{
    char s[16], d[16];
    json_t *o = json_pack("{s:s, s:s}", "src", st_ctl_format_addr(r->src, s, sizeof s), "dst",
                          st_ctl_format_addr(r->dst, d, sizeof d));
    if (!o)
        return NULL;
    int bad = 0;
    if (r->cut)
        bad |= json_object_set_new(o, "cut", json_true());
    if (r->loss > 0)
        bad |= json_object_set_new(o, "loss", json_real(r->loss));
    if (r->loss_correlation > 0)
        bad |= json_object_set_new(o, "correlation", json_real(r->loss_correlation));
    if (r->delay_us)
        bad |= json_object_set_new(o, "delay_ms", json_real((double)r->delay_us / 1000.0));
    if (r->jitter_us) {
        bad |= json_object_set_new(o, "jitter_ms", json_real((double)r->jitter_us / 1000.0));
        bad |= json_object_set_new(o, "distribution", json_string(dist_names[r->distribution % 3]));
    }
    if (r->duplicate > 0)
        bad |= json_object_set_new(o, "duplicate", json_real(r->duplicate));
    if (r->reorder > 0)
        bad |= json_object_set_new(o, "reorder", json_real(r->reorder));
    if (r->reorder_us)
        bad |= json_object_set_new(o, "reorder_ms", json_real((double)r->reorder_us / 1000.0));
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *st_ctl_error(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return json_pack("{s:b, s:s}", "ok", 0, "error", msg);
}

char *st_ctl_reply(const char *line, size_t len, st_ctl_handler h, void *ctx)
{
    st_ctl_cmd cmd;
    char err[512];
    json_t *reply;
    if (st_ctl_parse(line, len, &cmd, err, sizeof err) == 0)
        reply = h(ctx, &cmd);
    else
        reply = st_ctl_error("%s", err);
    if (!reply)
        reply = st_ctl_error("out of memory");
    if (!reply)
        return NULL;
    char *text = json_dumps(reply, JSON_COMPACT | JSON_REAL_PRECISION(10));
    json_decref(reply);
    if (!text)
        return NULL;
    size_t n = strlen(text);
    char *line_out = realloc(text, n + 2);
    if (!line_out) {
        free(text);
        return NULL;
    }
    line_out[n] = '\n';
    line_out[n + 1] = 0;
    return line_out;
}

/* ------------------------------------------------------------------ server */

typedef struct ctl_client {
    int fd;
    char *in;            /* ST_CTL_LINE_MAX bytes */
    size_t in_len;
    char *out;
    size_t out_len, out_cap, out_off;
    bool closing;        /* flush the last reply, then drop */
} ctl_client;

struct st_ctl {
    int lfd, epfd;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    st_ctl_handler h;
    void *ctx;
    ctl_client cl[ST_CTL_CLIENTS_MAX];
};

static void client_drop(st_ctl *c, ctl_client *k)
{
    if (k->fd < 0)
        return;
    epoll_ctl(c->epfd, EPOLL_CTL_DEL, k->fd, NULL);
    close(k->fd);
    free(k->in);
    free(k->out);
    *k = (ctl_client){.fd = -1};
}

st_ctl *st_ctl_new(const char *path, st_ctl_handler h, void *ctx, char *err, size_t errlen)
{
    st_ctl *c = calloc(1, sizeof *c);
    if (!c) {
        fail(err, errlen, "out of memory");
        return NULL;
    }
    c->h = h;
    c->ctx = ctx;
    c->lfd = c->epfd = -1;
    for (int i = 0; i < ST_CTL_CLIENTS_MAX; i++)
        c->cl[i].fd = -1;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        fail(err, errlen, "control: path longer than %zu bytes", sizeof sa.sun_path - 1);
        goto fail;
    }
    strcpy(sa.sun_path, path);
    strcpy(c->path, path);
    c->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    c->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (c->lfd < 0 || c->epfd < 0) {
        fail(err, errlen, "control: socket: %s", strerror(errno));
        goto fail;
    }
    unlink(path); /* a stale socket from a killed run */
    if (bind(c->lfd, (struct sockaddr *)&sa, sizeof sa) || listen(c->lfd, 8)) {
        fail(err, errlen, "control: cannot listen on %s: %s", path, strerror(errno));
        c->path[0] = 0; /* not ours to unlink */
        goto fail;
    }
    chmod(path, 0660);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = ST_CTL_CLIENTS_MAX};
    if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->lfd, &ev)) {
        fail(err, errlen, "control: epoll: %s", strerror(errno));
        goto fail;
    }
    return c;
fail:
    st_ctl_free(c);
    return NULL;
}

void st_ctl_free(st_ctl *c)
{
    if (!c)
        return;
    for (int i = 0; i < ST_CTL_CLIENTS_MAX; i++)
        client_drop(c, &c->cl[i]);
    if (c->lfd >= 0)
        close(c->lfd);
    if (c->epfd >= 0)
        close(c->epfd);
    if (c->path[0])
        unlink(c->path);
    free(c);
}

int st_ctl_fd(const st_ctl *c)
{
    return c->epfd;
}

static void accept_clients(st_ctl *c)
{
    for (;;) {
        int fd = accept4(c->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        int i = 0;
        while (i < ST_CTL_CLIENTS_MAX && c->cl[i].fd >= 0)
            i++;
        char *in = i < ST_CTL_CLIENTS_MAX ? malloc(ST_CTL_LINE_MAX) : NULL;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (!in || epoll_ctl(c->epfd, EPOLL_CTL_ADD, fd, &ev)) {
            static const char busy[] = "{\"ok\":false,\"error\":\"control: too many clients\"}\n";
            ssize_t w = write(fd, busy, sizeof busy - 1);
            (void)w;
            free(in);
            close(fd);
            continue;
        }
        c->cl[i] = (ctl_client){.fd = fd, .in = in};
    }
}

static int client_queue(ctl_client *k, const char *s, size_t n)
{
    if (k->out_len - k->out_off + n > CTL_OUT_MAX)
        return -ENOBUFS;
    if (k->out_off && k->out_off == k->out_len)
        k->out_off = k->out_len = 0;
    if (k->out_len + n > k->out_cap) {
        size_t cap = k->out_cap ? k->out_cap : 4096;
        while (cap < k->out_len + n)
            cap *= 2;
        char *p = realloc(k->out, cap);
        if (!p)
            return -ENOMEM;
        k->out = p;
        k->out_cap = cap;
    }
    memcpy(k->out + k->out_len, s, n);
    k->out_len += n;
    return 0;
}

/* Write what the socket takes; ask for EPOLLOUT only while bytes remain. */
static int client_flush(st_ctl *c, ctl_client *k, int idx)
{
    while (k->out_off < k->out_len) {
        ssize_t w = send(k->fd, k->out + k->out_off, k->out_len - k->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (w <= 0)
            return -EPIPE;
        k->out_off += (size_t)w;
    }
    bool pending = k->out_off < k->out_len;
    struct epoll_event ev = {.events = EPOLLIN | (pending ? EPOLLOUT : 0), .data.u32 = (uint32_t)idx};
    epoll_ctl(c->epfd, EPOLL_CTL_MOD, k->fd, &ev);
    return pending || !k->closing ? 0 : -EPIPE;
}

/* Answer every complete line in the input buffer. */
static int client_lines(st_ctl *c, ctl_client *k)
{
    int handled = 0;
    size_t start = 0;
    for (size_t i = 0; i < k->in_len; i++) {
        if (k->in[i] != '\n')
            continue;
        size_t n = i - start;
        if (n && k->in[start + n - 1] == '\r')
            n--;
        if (n) {
            char *reply = st_ctl_reply(k->in + start, n, c->h, c->ctx);
            if (!reply || client_queue(k, reply, strlen(reply))) {
                free(reply);
                return -ENOBUFS;
            }
            free(reply);
            handled++;
        }
        start = i + 1;
    }
    memmove(k->in, k->in + start, k->in_len - start);
    k->in_len -= start;
    return handled;
}

static int client_read(st_ctl *c, ctl_client *k)
{
    int handled = 0;
    for (;;) {
        ssize_t r = recv(k->fd, k->in + k->in_len, ST_CTL_LINE_MAX - k->in_len, MSG_DONTWAIT);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return handled;
        if (r <= 0)
            return handled ? handled : -EPIPE; /* peer closed (or error) */
        k->in_len += (size_t)r;
        int n = client_lines(c, k);
        if (n < 0)
            return n;
        handled += n;
        if (k->in_len == ST_CTL_LINE_MAX) {
            static const char big[] = "{\"ok\":false,\"error\":\"request: line longer than 65536 bytes\"}\n";
            if (client_queue(k, big, sizeof big - 1))
                return -ENOBUFS;
            k->closing = true;
            k->in_len = 0;
            return handled;
        }
    }
}

int st_ctl_poll(st_ctl *c)
{
    struct epoll_event evs[CTL_EVENTS];
    int n = epoll_wait(c->epfd, evs, CTL_EVENTS, 0);
    int handled = 0;
    for (int i = 0; i < n; i++) {
        uint32_t idx = evs[i].data.u32;
        if (idx == ST_CTL_CLIENTS_MAX) {
            accept_clients(c);
            continue;
        }
        ctl_client *k = &c->cl[idx];
        if (k->fd < 0)
            continue;
        int rc = 0;
        if (!k->closing && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
            rc = client_read(c, k);
            if (rc > 0)
                handled += rc;
        }
        /* A peer that half-closed after its last request still gets its replies. */
        if (rc == -EPIPE && k->out_off < k->out_len)
            k->closing = true, rc = 0;
        if (rc >= 0)
            rc = client_flush(c, k, (int)idx);
        if (rc < 0)
            client_drop(c, k);
    }
    return handled;
}
