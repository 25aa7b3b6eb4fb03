/* ch_ctl.c — JSON-lines control socket client with deadlines. */
#include "ch_ctl.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ch_ctl_init(ch_ctl *c, const char *path)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->path, sizeof(c->path), "%s", path);
    c->fd = -1;
}

void ch_ctl_close(ch_ctl *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->len = 0;
}

static int ctl_connect(ch_ctl *c)
{
    if (c->fd >= 0)
        return 0;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", c->path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    c->fd = fd;
    c->len = 0;
    return 0;
}

static int wait_fd(int fd, short ev, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left < 0)
            return -ETIMEDOUT;
        struct pollfd p = {.fd = fd, .events = ev};
        int n = poll(&p, 1, (int)left);
        if (n > 0)
            return 0;
        if (n == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

static int send_all(ch_ctl *c, const char *s, size_t n, int64_t deadline)
{
    while (n > 0) {
        ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            s += w;
            n -= (size_t)w;
        } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            int e = wait_fd(c->fd, POLLOUT, deadline);
            if (e < 0)
                return e;
        } else {
            return w < 0 ? -errno : -EPIPE;
        }
    }
    return 0;
}

/* One reply line into *line (NUL-terminated inside c->buf); consumed on the next read. */
static int read_line(ch_ctl *c, int64_t deadline, size_t *line_len)
{
    for (;;) {
        char *nl = memchr(c->buf, '\n', c->len);
        if (nl) {
            *nl = 0;
            *line_len = (size_t)(nl - c->buf);
            return 0;
        }
        if (c->len == sizeof(c->buf))
            return -EMSGSIZE;
        int e = wait_fd(c->fd, POLLIN, deadline);
        if (e < 0)
            return e;
        ssize_t r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, MSG_DONTWAIT);
        if (r == 0)
            return -ECONNRESET;
        if (r < 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            return -errno;
        }
        c->len += (size_t)r;
    }
}

int ch_ctl_call(ch_ctl *c, json_t *req, int timeout_ms, json_t **reply)
{
    *reply = NULL;
    int64_t deadline = now_ms() + timeout_ms;
    int e = ctl_connect(c);
    if (e < 0)
        return e;
    char *s = json_dumps(req, JSON_COMPACT);
    if (!s)
        return -ENOMEM;
    size_t n = strlen(s);
    e = send_all(c, s, n, deadline);
    if (e == 0)
        e = send_all(c, "\n", 1, deadline);
    free(s);
    size_t line_len = 0;
    if (e == 0)
        e = read_line(c, deadline, &line_len);
    if (e < 0) {
        /* A late reply would answer the wrong request: start over next time. */
        ch_ctl_close(c);
        return e;
    }
    json_t *j = json_loadb(c->buf, line_len, 0, NULL);
    memmove(c->buf, c->buf + line_len + 1, c->len - line_len - 1);
    c->len -= line_len + 1;
    if (!json_is_object(j)) {
        json_decref(j);
        return -EBADMSG;
    }
    *reply = j;
    return json_is_true(json_object_get(j, "ok")) ? 0 : -EREMOTEIO;
}

int ch_ctl_wait_ready(ch_ctl *c, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    int e = -ETIMEDOUT;
    json_t *ping = json_pack("{s:s}", "cmd", "ping");
    while (now_ms() < deadline) {
        json_t *r = NULL;
        int left = (int)(deadline - now_ms());
        e = ch_ctl_call(c, ping, left < 500 ? left : 500, &r);
        json_decref(r);
        if (e == 0)
            break;
        usleep(20000);
    }
    json_decref(ping);
    return e;
}
