/* st_chan_server.c — accept applications, drain their channels, deliver events.
 *
 * Control plane (Unix sockets, doorbell eventfds) goes through one epoll fd
 * that is checked every CTL_EVERY busy rounds, every CTL_IDLE_EVERY idle ones,
 * and always once armed, so a busy stack makes no syscall per round.
 *
 * Sleeping: apps ring the doorbell only when the stack's wake word says it
 * may sleep. Setting that word whenever one round found nothing would make a
 * fast stack (always caught up) cost the app a write() per message, so, like
 * io_uring's SQPOLL thread, the server "arms" (sets every app's word, then
 * looks once more) only after GRACE_POLLS idle rounds, and disarms at the
 * first work. Until armed, an internal eventfd keeps st_chan_server_fd
 * readable, so a caller that tries to sleep early polls again instead of
 * missing a request. Data plane: each round
 * walks the attached apps and, per app: takes back returned buffers, flushes
 * events queued for lack of room, re-offers sends the stack refused with
 * -EAGAIN ("parked", per flow, in order), then drains the request ring.
 *
 * Apps are detached in two steps: anything that finds a fault marks the app
 * doomed (safe from inside ops and push), and the end of st_chan_server_poll
 * reaps doomed apps: ops->detached, then unmap and close. */
#include "st_chan_server.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "st_chan.h"

#define CTL_EVERY 64u               /* busy rounds between control-plane checks */
#define CTL_IDLE_EVERY 16u          /* idle rounds between them, before we arm */
#define GRACE_POLLS 32u             /* idle rounds before apps must ring the doorbell */
#define CTL_EVENTS 32
#define ACCEPT_PER_ROUND 8
#define RPC_PER_ROUND 8
#define HELLO_TIMEOUT_US 2000000u   /* a connection that never says hello */
#define BUDGET_DEFAULT 256u
#define LISTEN_BACKLOG 16

enum { TAG_LISTEN = 1, TAG_SOCK, TAG_BELL, TAG_GRACE };
enum { APP_PENDING = 1, APP_LIVE, APP_DOOMED };

typedef struct ep_tag {
    int kind;
    st_chan_app *app;
} ep_tag;

/* A send (or the close behind it) the stack refused with -EAGAIN. */
typedef struct pk_msg {
    struct pk_msg *next;
    uint8_t type; /* ST_CHAN_REQ_SEND or _CLOSE */
    size_t len;
    uint8_t data[];
} pk_msg;

typedef struct pk_flow {
    struct pk_flow *next;
    uint32_t handle;
    bool dead; /* the flow ended while parked: drop at the next safe point */
    pk_msg *head, *tail;
} pk_flow;

/* An event waiting for room in the app's channel. */
typedef struct pq_item {
    struct pq_item *next;
    st_chan_desc d;
    uint8_t data[];
} pq_item;

struct st_chan_app {
    st_chan_server *srv;
    uint32_t id;
    int pid;
    int state;
    bool attached;    /* welcome sent: ops->detached is owed */
    const char *why;
    int sock, bell_in, bell_out; /* bell_in: app -> stack (we read); bell_out: stack -> app */
    uint64_t since_us;           /* accept time (pending) */
    void *base;
    size_t size;
    st_chan_stack_end ch;
    ep_tag tag_sock, tag_bell;
    pk_flow *parked;
    size_t parked_bytes;
    uint32_t parked_msgs;
    pq_item *pq_head, *pq_tail;
    size_t pq_bytes;
    uint32_t pq_msgs;
    uint64_t pq_since_us;        /* last progress while events were queued */
    void *user;
};

struct st_chan_server {
    st_chan_config cfg;
    st_chan_ops ops;
    st_chan_layout lay;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    int lsock, ep;
    int grace;        /* eventfd, readable while not armed: "poll again, do not sleep yet" */
    ep_tag tag_listen, tag_grace;
    st_chan_app **apps;
    uint32_t n_apps, next_id, round, idle_polls;
    bool armed;       /* every app has stack_wake.sleeping set: it rings before we look */
    st_chan_stats st;
};

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void st_chan_config_default(st_chan_config *c)
{
    memset(c, 0, sizeof(*c));
    c->max_msg = 8u << 20;
    c->buf_size = ST_CHAN_BUF_SIZE_DEFAULT;
    c->ring_slots = ST_CHAN_RING_SLOTS_DEFAULT;
    c->max_apps = 64;
    c->park_bytes = 32u << 20;
    c->park_msgs = 8192;
    c->queue_msgs = 65536;
    c->stall_ms = 10000;
}

/* ------------------------------------------------------------------ doom and reap */

static void doom(st_chan_app *a, const char *why)
{
    if (a->state == APP_DOOMED)
        return;
    a->state = APP_DOOMED;
    a->why = why;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static void park_free_flow(pk_flow *f)
{
    for (pk_msg *m = f->head, *n; m; m = n) {
        n = m->next;
        free(m);
    }
    free(f);
}

static void app_free(st_chan_server *s, st_chan_app *a)
{
    if (a->sock >= 0)
        epoll_ctl(s->ep, EPOLL_CTL_DEL, a->sock, NULL);
    if (a->bell_in >= 0)
        epoll_ctl(s->ep, EPOLL_CTL_DEL, a->bell_in, NULL);
    close_fd(&a->sock);
    close_fd(&a->bell_in);
    close_fd(&a->bell_out);
    st_chan_stack_fini(&a->ch);
    if (a->base)
        munmap(a->base, a->size);
    for (pk_flow *f = a->parked, *n; f; f = n) {
        n = f->next;
        park_free_flow(f);
    }
    for (pq_item *q = a->pq_head, *n; q; q = n) {
        n = q->next;
        free(q);
    }
    free(a);
}

static void reap(st_chan_server *s)
{
    uint32_t j = 0;
    for (uint32_t i = 0; i < s->n_apps; i++) {
        st_chan_app *a = s->apps[i];
        if (a->state != APP_DOOMED) {
            s->apps[j++] = a;
            continue;
        }
        if (a->attached) {
            s->st.detaches++;
            s->st.apps--;
            if (s->ops.detached)
                s->ops.detached(s->ops.ctx, a);
        }
        app_free(s, a);
    }
    s->n_apps = j;
}

/* ------------------------------------------------------------------ server */

static int server_socket(st_chan_server *s, const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (!path || !*path)
        return -EINVAL;
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    struct stat sb;
    if (lstat(path, &sb) == 0) {
        if (!S_ISSOCK(sb.st_mode))
            return -EEXIST;
        if (unlink(path) < 0) /* stale: a previous stack died without cleaning up */
            return -errno;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    s->lsock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->lsock < 0)
        return -errno;
    if (bind(s->lsock, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return -errno;
    snprintf(s->path, sizeof(s->path), "%s", path);
    if (listen(s->lsock, LISTEN_BACKLOG) < 0)
        return -errno;
    return 0;
}

static int ep_add(st_chan_server *s, int fd, ep_tag *tag)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = tag};
    return epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

st_chan_server *st_chan_server_new_cfg(const char *sock_path, const st_chan_config *cfg, const st_chan_ops *ops,
                                       int *err)
{
    int e = 0;
    st_chan_server *s = calloc(1, sizeof(*s));
    if (!s) {
        *err = -ENOMEM;
        return NULL;
    }
    s->lsock = s->ep = s->grace = -1;
    s->cfg = *cfg;
    s->ops = *ops;
    if (!s->cfg.max_msg || s->cfg.max_msg > UINT32_MAX || !s->cfg.max_apps || !s->cfg.park_msgs ||
        !s->cfg.queue_msgs || !s->cfg.stall_ms) {
        e = -EINVAL;
        goto fail;
    }
    if (!s->cfg.queue_bytes)
        s->cfg.queue_bytes = s->cfg.max_msg * 2 > (64u << 20) ? s->cfg.max_msg * 2 : (64u << 20);
    uint32_t per_dir = s->cfg.bufs_per_dir ? s->cfg.bufs_per_dir : st_chan_bufs_for(s->cfg.max_msg, s->cfg.buf_size);
    e = st_chan_layout_make(s->cfg.buf_size, per_dir, per_dir, s->cfg.ring_slots, &s->lay);
    if (e < 0)
        goto fail;
    s->apps = calloc(s->cfg.max_apps, sizeof(*s->apps));
    if (!s->apps) {
        e = -ENOMEM;
        goto fail;
    }
    s->ep = epoll_create1(EPOLL_CLOEXEC);
    if (s->ep < 0) {
        e = -errno;
        goto fail;
    }
    e = server_socket(s, sock_path);
    if (e < 0)
        goto fail;
    s->tag_listen.kind = TAG_LISTEN;
    e = ep_add(s, s->lsock, &s->tag_listen);
    if (e < 0)
        goto fail;
    s->grace = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC); /* not armed yet: readable */
    if (s->grace < 0) {
        e = -errno;
        goto fail;
    }
    s->tag_grace.kind = TAG_GRACE;
    e = ep_add(s, s->grace, &s->tag_grace);
    if (e < 0)
        goto fail;
    return s;
fail:
    st_chan_server_free(s);
    *err = e;
    return NULL;
}

st_chan_server *st_chan_server_new(const char *sock_path, uint32_t local_ip, size_t max_msg,
                                   const st_chan_ops *ops, int *err)
{
    st_chan_config c;
    st_chan_config_default(&c);
    c.local_ip = local_ip;
    c.max_msg = max_msg;
    return st_chan_server_new_cfg(sock_path, &c, ops, err);
}

void st_chan_server_free(st_chan_server *s)
{
    if (!s)
        return;
    for (uint32_t i = 0; i < s->n_apps; i++)
        app_free(s, s->apps[i]);
    free(s->apps);
    if (s->lsock >= 0) {
        close(s->lsock);
        if (s->path[0])
            unlink(s->path);
    }
    close_fd(&s->ep);
    close_fd(&s->grace);
    free(s);
}

int st_chan_server_fd(const st_chan_server *s)
{
    return s->ep;
}

/* ------------------------------------------------------------------ attach */

static void send_welcome_error(int sock, int status)
{
    st_chan_welcome w = {.magic = ST_CHAN_MAGIC, .version = ST_CHAN_VERSION, .status = (int16_t)status};
    (void)!send(sock, &w, sizeof(w), MSG_DONTWAIT | MSG_NOSIGNAL);
}

static void accept_apps(st_chan_server *s, uint64_t now)
{
    for (int i = 0; i < ACCEPT_PER_ROUND; i++) {
        int fd = accept4(s->lsock, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or a transient error: next round */
        st_chan_app *a = s->n_apps < s->cfg.max_apps ? calloc(1, sizeof(*a)) : NULL;
        if (!a) {
            send_welcome_error(fd, s->n_apps < s->cfg.max_apps ? -ENOMEM : -EUSERS);
            close(fd);
            continue;
        }
        a->srv = s;
        a->state = APP_PENDING;
        a->sock = fd;
        a->bell_in = a->bell_out = -1;
        a->since_us = now;
        a->tag_sock = (ep_tag){TAG_SOCK, a};
        a->tag_bell = (ep_tag){TAG_BELL, a};
        struct ucred cred;
        socklen_t cl = sizeof(cred);
        a->pid = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0 ? (int)cred.pid : 0;
        if (ep_add(s, fd, &a->tag_sock) < 0) {
            close(fd);
            free(a);
            continue;
        }
        s->apps[s->n_apps++] = a;
    }
}

/* memfd sealed against shrinking: an app that could truncate it would make
 * our next access to its pages a SIGBUS. */
static int make_channel(st_chan_server *s, st_chan_app *a, int *memfd)
{
    *memfd = memfd_create("rift-chan", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (*memfd < 0)
        return -errno;
    if (ftruncate(*memfd, (off_t)s->lay.size) < 0 ||
        fcntl(*memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
        return -errno;
    void *base = mmap(NULL, s->lay.size, PROT_READ | PROT_WRITE, MAP_SHARED, *memfd, 0);
    if (base == MAP_FAILED)
        return -errno;
    a->base = base;
    a->size = s->lay.size;
    int rc = st_chan_stack_init(&a->ch, base, &s->lay, (uint32_t)s->cfg.max_msg);
    if (rc < 0)
        return rc;
    a->bell_in = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    a->bell_out = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (a->bell_in < 0 || a->bell_out < 0)
        return -errno;
    return ep_add(s, a->bell_in, &a->tag_bell);
}

static int send_welcome(st_chan_server *s, st_chan_app *a, int memfd)
{
    st_chan_welcome w = {.magic = ST_CHAN_MAGIC, .version = ST_CHAN_VERSION, .local_ip = s->cfg.local_ip,
                         .max_msg = a->ch.max_msg, .size = a->size};
    int fds[3] = {memfd, a->bell_in, a->bell_out};
    union {
        char buf[CMSG_SPACE(sizeof(fds))];
        struct cmsghdr align;
    } cm;
    memset(&cm, 0, sizeof(cm));
    struct iovec iov = {.iov_base = &w, .iov_len = sizeof(w)};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf, .msg_controllen = sizeof(cm.buf)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(fds));
    memcpy(CMSG_DATA(c), fds, sizeof(fds));
    ssize_t n = sendmsg(a->sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
    return n == (ssize_t)sizeof(w) ? 0 : -EPIPE;
}

static void on_hello(st_chan_server *s, st_chan_app *a)
{
    st_chan_hello h;
    ssize_t n = recv(a->sock, &h, sizeof(h), MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        doom(a, "closed before hello");
        return;
    }
    if (n != (ssize_t)sizeof(h) || h.magic != ST_CHAN_MAGIC || h.version != ST_CHAN_VERSION) {
        send_welcome_error(a->sock, -EPROTO);
        doom(a, "bad hello");
        return;
    }
    int memfd = -1;
    int rc = make_channel(s, a, &memfd);
    if (rc == 0)
        rc = send_welcome(s, a, memfd);
    close_fd(&memfd);
    if (rc < 0) {
        send_welcome_error(a->sock, rc);
        doom(a, "channel setup failed");
        return;
    }
    a->state = APP_LIVE;
    a->attached = true;
    if (s->armed) /* we may be about to sleep: it must ring */
        st_chan_wake_sleep(&a->ch.hdr->stack_wake);
    a->id = ++s->next_id;
    s->st.attaches++;
    s->st.apps++;
}

/* A live app's socket: listen RPCs, or its end. */
static void on_rpc(st_chan_server *s, st_chan_app *a)
{
    for (int i = 0; i < RPC_PER_ROUND && a->state == APP_LIVE; i++) {
        st_chan_rpc r;
        ssize_t n = recv(a->sock, &r, sizeof(r), MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            doom(a, "socket closed");
            return;
        }
        if (n != (ssize_t)sizeof(r) || r.magic != ST_CHAN_MAGIC || r.op != ST_CHAN_RPC_LISTEN) {
            doom(a, "bad request on the socket");
            return;
        }
        r.status = r.port == 0 ? -EINVAL : s->ops.listen ? s->ops.listen(s->ops.ctx, a, r.port) : -EOPNOTSUPP;
        if (send(a->sock, &r, sizeof(r), MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)sizeof(r))
            doom(a, "socket closed");
    }
}

static void on_bell(st_chan_app *a)
{
    uint64_t v;
    /* Read, then clear kicked: kicked == 1 must imply a readable eventfd. */
    (void)!read(a->bell_in, &v, sizeof(v));
    if (a->state == APP_LIVE)
        atomic_store_explicit(&a->ch.hdr->stack_wake.kicked, 0, memory_order_relaxed);
}

static void control(st_chan_server *s, uint64_t now)
{
    struct epoll_event evs[CTL_EVENTS];
    int n = epoll_wait(s->ep, evs, CTL_EVENTS, 0);
    for (int i = 0; i < n; i++) {
        ep_tag *t = evs[i].data.ptr;
        if (t->kind == TAG_GRACE)
            continue; /* only there to keep the fd readable until armed */
        if (t->kind == TAG_LISTEN)
            accept_apps(s, now);
        else if (t->kind == TAG_BELL)
            on_bell(t->app);
        else if (t->app->state == APP_PENDING)
            on_hello(s, t->app);
        else if (t->app->state == APP_LIVE)
            on_rpc(s, t->app);
    }
    for (uint32_t i = 0; i < s->n_apps; i++) {
        st_chan_app *a = s->apps[i];
        if (a->state == APP_PENDING && now - a->since_us > HELLO_TIMEOUT_US)
            doom(a, "no hello");
    }
}

/* ------------------------------------------------------------------ kicks */

static void kick_app(st_chan_app *a)
{
    if (!a->ch.app_dirty || a->state != APP_LIVE)
        return;
    a->ch.app_dirty = false;
    if (st_chan_wake_needed(&a->ch.hdr->app_wake)) {
        uint64_t one = 1;
        (void)!write(a->bell_out, &one, sizeof(one));
    }
}

/* ------------------------------------------------------------------ events (stack -> app) */

static int put_event(st_chan_app *a, const st_chan_desc *d, const uint8_t *data)
{
    int rc = st_chan_stack_put_event(&a->ch, d, data);
    if (rc == 0) {
        if (d->type == RS_EV_MSG) {
            a->srv->st.msgs_out++;
            a->srv->st.bytes_out += d->len;
        }
    } else if (rc == -EPROTO) {
        doom(a, "bad buffer returned");
    }
    return rc;
}

static pk_flow *park_find(st_chan_app *a, uint32_t handle)
{
    for (pk_flow *f = a->parked; f; f = f->next)
        if (f->handle == handle && !f->dead)
            return f;
    return NULL;
}

int st_chan_server_push(st_chan_server *s, st_chan_app *a, const rs_event *ev)
{
    if (!a || a->state != APP_LIVE)
        return -EPIPE;
    if (ev->kind < RS_EV_MSG || ev->kind > RS_EV_CLOSED || !ev->flow)
        return -EINVAL;
    size_t len = ev->kind == RS_EV_MSG ? ev->len : 0;
    if (len && !ev->data)
        return -EINVAL;
    if (len > a->ch.max_msg)
        return -EMSGSIZE;
    if (ev->kind == RS_EV_RESET || ev->kind == RS_EV_CLOSED) {
        pk_flow *f = park_find(a, ev->flow);
        if (f)
            f->dead = true; /* freed at a safe point: we may be inside its send */
    }
    st_chan_desc d = {.type = ev->kind, .reason = ev->reason, .port = ev->remote_port,
                      .local_port = ev->local_port, .handle = ev->flow, .ip = ev->remote_ip,
                      .len = (uint32_t)len};
    if (!a->pq_head) {
        int rc = put_event(a, &d, ev->data);
        if (rc == 0) {
            kick_app(a);
            return 0;
        }
        if (rc != -EAGAIN)
            return rc == -EPROTO ? -EPIPE : rc;
    }
    if (a->pq_msgs >= s->cfg.queue_msgs || a->pq_bytes + len > s->cfg.queue_bytes) {
        doom(a, "not reading its events");
        return -ENOBUFS;
    }
    pq_item *q = malloc(sizeof(*q) + len);
    if (!q)
        return -ENOMEM;
    q->next = NULL;
    q->d = d;
    if (len)
        memcpy(q->data, ev->data, len);
    if (a->pq_tail)
        a->pq_tail->next = q;
    else {
        a->pq_head = q;
        a->pq_since_us = now_us();
    }
    a->pq_tail = q;
    a->pq_msgs++;
    a->pq_bytes += len;
    return 0;
}

static int pq_flush(st_chan_app *a, uint64_t now)
{
    int done = 0;
    while (a->pq_head && a->state == APP_LIVE) {
        pq_item *q = a->pq_head;
        if (put_event(a, &q->d, q->data) < 0)
            break;
        a->pq_head = q->next;
        if (!a->pq_head)
            a->pq_tail = NULL;
        a->pq_msgs--;
        a->pq_bytes -= q->d.len;
        a->pq_since_us = now;
        free(q);
        done++;
    }
    return done;
}

/* ------------------------------------------------------------------ requests (app -> stack) */

static int park_add(st_chan_app *a, uint32_t handle, uint8_t type, const uint8_t *data, size_t len)
{
    pk_flow *f = park_find(a, handle);
    pk_msg *m = malloc(sizeof(*m) + len);
    if (!m)
        return -ENOMEM;
    if (!f) {
        f = calloc(1, sizeof(*f));
        if (!f) {
            free(m);
            return -ENOMEM;
        }
        f->handle = handle;
        f->next = a->parked;
        a->parked = f;
    }
    m->next = NULL;
    m->type = type;
    m->len = len;
    if (len)
        memcpy(m->data, data, len);
    if (f->tail)
        f->tail->next = m;
    else
        f->head = m;
    f->tail = m;
    a->parked_msgs++;
    a->parked_bytes += len;
    return 0;
}

static void park_drop_dead(st_chan_app *a)
{
    for (pk_flow **pp = &a->parked; *pp;) {
        pk_flow *f = *pp;
        if (!f->dead && f->head) {
            pp = &f->next;
            continue;
        }
        for (pk_msg *m = f->head; m; m = m->next) {
            a->parked_msgs--;
            a->parked_bytes -= m->len;
        }
        *pp = f->next;
        park_free_flow(f);
    }
}

static void count_in(st_chan_server *s, size_t len)
{
    s->st.msgs_in++;
    s->st.bytes_in += len;
}

/* Offer each parked flow's messages again, in order, until one is refused. */
static int park_retry(st_chan_server *s, st_chan_app *a)
{
    int done = 0;
    park_drop_dead(a);
    for (pk_flow *f = a->parked; f && a->state == APP_LIVE; f = f->next) {
        while (f->head && !f->dead && a->state == APP_LIVE) {
            pk_msg *m = f->head;
            if (m->type == ST_CHAN_REQ_SEND) {
                int rc = s->ops.send(s->ops.ctx, a, f->handle, m->data, m->len);
                if (rc == -EAGAIN)
                    break;
                if (rc == 0)
                    count_in(s, m->len);
            } else if (s->ops.close) {
                s->ops.close(s->ops.ctx, a, f->handle, false);
            }
            f->head = m->next;
            if (!f->head)
                f->tail = NULL;
            a->parked_msgs--;
            a->parked_bytes -= m->len;
            free(m);
            done++;
        }
    }
    park_drop_dead(a);
    return done;
}

static void on_request(st_chan_server *s, st_chan_app *a, const st_chan_req *r)
{
    const st_chan_ops *o = &s->ops;
    pk_flow *f = r->type == ST_CHAN_REQ_CONNECT ? NULL : park_find(a, r->handle);
    int rc = 0;
    switch (r->type) {
    case ST_CHAN_REQ_CONNECT:
        rc = o->connect ? o->connect(o->ctx, a, r->handle, r->ip, r->port) : -EOPNOTSUPP;
        if (rc < 0) {
            rs_event ev = {.kind = RS_EV_RESET, .reason = RS_RESET_LOCAL, .flow = r->handle,
                           .remote_ip = r->ip, .remote_port = r->port};
            st_chan_server_push(s, a, &ev);
        }
        return;
    case ST_CHAN_REQ_SEND:
        rc = f ? -EAGAIN : o->send ? o->send(o->ctx, a, r->handle, r->data, r->len) : -EOPNOTSUPP;
        if (rc == 0)
            count_in(s, r->len);
        else if (rc == -EAGAIN && park_add(a, r->handle, ST_CHAN_REQ_SEND, r->data, r->len) < 0)
            doom(a, "out of memory parking a send");
        return;
    case ST_CHAN_REQ_CLOSE:
        if (f) {
            if (park_add(a, r->handle, ST_CHAN_REQ_CLOSE, NULL, 0) < 0)
                doom(a, "out of memory parking a close");
        } else if (o->close) {
            o->close(o->ctx, a, r->handle, false);
        }
        return;
    case ST_CHAN_REQ_ABORT:
        if (f)
            f->dead = true;
        if (o->close)
            o->close(o->ctx, a, r->handle, true);
        return;
    }
}

static int drain_requests(st_chan_server *s, st_chan_app *a, unsigned budget)
{
    int done = 0;
    while ((unsigned)done < budget && a->state == APP_LIVE && a->parked_bytes < s->cfg.park_bytes &&
           a->parked_msgs < s->cfg.park_msgs) {
        st_chan_req r;
        int rc = st_chan_stack_next_req(&a->ch, &r);
        if (rc == 0)
            break;
        if (rc < 0) {
            doom(a, "bad descriptor");
            break;
        }
        on_request(s, a, &r);
        if (st_chan_stack_req_done(&a->ch) < 0)
            doom(a, "buffer given twice");
        done++;
    }
    return done;
}

static int app_work(st_chan_server *s, st_chan_app *a, unsigned budget, uint64_t now)
{
    if (st_chan_stack_reclaim(&a->ch) < 0) {
        doom(a, "bad buffer returned");
        return 0;
    }
    int done = pq_flush(a, now);
    if (a->parked)
        done += park_retry(s, a);
    return done + drain_requests(s, a, budget);
}

static int app_pass(st_chan_server *s, st_chan_app *a, unsigned budget, uint64_t now)
{
    int done = app_work(s, a, budget, now);
    kick_app(a);
    /* pq_since_us may be later than now: push reads the clock itself. */
    if (a->pq_head && now > a->pq_since_us && now - a->pq_since_us > (uint64_t)s->cfg.stall_ms * 1000u)
        doom(a, "stopped reading its events");
    return done;
}

static void disarm(st_chan_server *s)
{
    if (!s->armed)
        return;
    for (uint32_t i = 0; i < s->n_apps; i++)
        if (s->apps[i]->state == APP_LIVE)
            st_chan_wake_busy(&s->apps[i]->ch.hdr->stack_wake);
    uint64_t one = 1;
    (void)!write(s->grace, &one, sizeof(one));
    s->armed = false;
}

/* Quiet for GRACE_POLLS rounds: ask every app to ring from now on, then look
 * once more for what was published before it could see that. */
static int arm(st_chan_server *s, unsigned budget, uint64_t now)
{
    for (uint32_t i = 0; i < s->n_apps; i++)
        if (s->apps[i]->state == APP_LIVE)
            st_chan_wake_sleep(&s->apps[i]->ch.hdr->stack_wake);
    int done = 0;
    for (uint32_t i = 0; i < s->n_apps; i++) {
        st_chan_app *a = s->apps[i];
        if (a->state != APP_LIVE)
            continue;
        int p = st_chan_stack_pending(&a->ch);
        if (p < 0)
            doom(a, "bad ring index");
        else if (p > 0)
            done += app_pass(s, a, budget, now);
    }
    if (done > 0) {
        for (uint32_t i = 0; i < s->n_apps; i++)
            if (s->apps[i]->state == APP_LIVE)
                st_chan_wake_busy(&s->apps[i]->ch.hdr->stack_wake);
        return done;
    }
    uint64_t v;
    (void)!read(s->grace, &v, sizeof(v));
    s->armed = true;
    return 0;
}

int st_chan_server_poll(st_chan_server *s, unsigned budget)
{
    if (!budget)
        budget = BUDGET_DEFAULT;
    uint64_t now = now_us();
    if (s->armed || ++s->round % CTL_EVERY == 0 || s->idle_polls % CTL_IDLE_EVERY == 1)
        control(s, now);
    int done = 0;
    for (uint32_t i = 0; i < s->n_apps; i++) {
        st_chan_app *a = s->apps[i];
        if (a->state == APP_LIVE)
            done += app_pass(s, a, budget > (unsigned)done ? budget - (unsigned)done : 1, now);
    }
    if (done > 0) {
        disarm(s);
        s->idle_polls = 0;
    } else if (!s->armed && ++s->idle_polls >= GRACE_POLLS) {
        done = arm(s, budget, now);
        if (done > 0)
            s->idle_polls = 0;
    }
    reap(s);
    return done;
}

void st_chan_server_stats(const st_chan_server *s, st_chan_stats *out)
{
    *out = s->st;
    out->queued = 0;
    for (uint32_t i = 0; i < s->n_apps; i++)
        out->queued += s->apps[i]->pq_msgs + s->apps[i]->parked_msgs;
}

uint32_t st_chan_app_id(const st_chan_app *app)
{
    return app->id;
}

int st_chan_app_pid(const st_chan_app *app)
{
    return app->pid;
}

void st_chan_app_set_user(st_chan_app *app, void *user)
{
    app->user = user;
}

void *st_chan_app_user(const st_chan_app *app)
{
    return app->user;
}

const char *st_chan_app_why(const st_chan_app *app)
{
    return app->why;
}
