/* rift_stack.c — the application side of rift-stackd (rift_stack.h).
 *
 * rs_attach does the one blocking exchange (hello -> welcome + three fds) and
 * maps the channel; after that, requests and events go through the rings with
 * no syscall while both sides are busy. The library keeps a table of the
 * flows it knows (its connects, and accepted flows once their RS_EV_ACCEPTED
 * is read) so rs_send can refuse dead flows and events for flows the app
 * already aborted are dropped instead of surprising it.
 *
 * Liveness: a dead stack cannot say so in shared memory, so the Unix socket
 * is checked (a non-blocking peek) on the slow paths only: when rs_poll finds
 * nothing, and when a request does not fit. rs_fd is an epoll fd over the
 * stack's doorbell and that socket, so a sleeping app also wakes when the
 * stack dies. */
#include "rift_stack.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "st_chan.h"

#define RS_TIMEOUT_S 5            /* rs_attach / rs_listen waiting for the stack */
#define RS_MAX_FLOWS 65536u
#define RS_FLOWS_INIT 64u

enum { FLOW_OPEN = 1, FLOW_CLOSING };

/* Open addressing, linear probing, backward-shift deletion; key 0 = empty. */
typedef struct rs_flows {
    uint32_t *key;
    uint8_t *state;
    uint32_t cap, n;
} rs_flows;

struct rs_stack {
    int sock, ep;
    int bell_out; /* app -> stack doorbell: we write */
    int bell_in;  /* stack -> app doorbell: we read */
    void *base;
    size_t size;
    st_chan_app_end ch;
    uint32_t local_ip;
    size_t max_msg;
    bool dead;
    uint32_t next_handle, rpc_seq;
    rs_flows flows;
};

/* ------------------------------------------------------------------ flow table */

static uint32_t flow_slot(const rs_flows *t, uint32_t key)
{
    return (key * 2654435761u) & (t->cap - 1);
}

static uint32_t flow_find(const rs_flows *t, uint32_t key)
{
    for (uint32_t i = flow_slot(t, key);; i = (i + 1) & (t->cap - 1)) {
        if (t->key[i] == key || t->key[i] == 0)
            return i;
    }
}

static int flow_state(const rs_flows *t, uint32_t key)
{
    uint32_t i = flow_find(t, key);
    return t->key[i] == key ? t->state[i] : 0;
}

static int flows_grow(rs_flows *t)
{
    rs_flows g = {.cap = t->cap ? t->cap * 2 : RS_FLOWS_INIT};
    g.key = calloc(g.cap, sizeof(uint32_t));
    g.state = calloc(g.cap, 1);
    if (!g.key || !g.state) {
        free(g.key);
        free(g.state);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < t->cap; i++) {
        if (!t->key[i])
            continue;
        uint32_t j = flow_find(&g, t->key[i]);
        g.key[j] = t->key[i];
        g.state[j] = t->state[i];
        g.n++;
    }
    free(t->key);
    free(t->state);
    *t = g;
    return 0;
}

static int flow_set(rs_flows *t, uint32_t key, uint8_t state)
{
    if ((t->n + 1) * 2 > t->cap && flows_grow(t) < 0)
        return -ENOMEM;
    uint32_t i = flow_find(t, key);
    if (!t->key[i]) {
        t->key[i] = key;
        t->n++;
    }
    t->state[i] = state;
    return 0;
}

static void flow_del(rs_flows *t, uint32_t key)
{
    uint32_t i = flow_find(t, key), m = t->cap - 1;
    if (t->key[i] != key)
        return;
    t->key[i] = 0;
    t->n--;
    /* Pull later entries of the probe run back over the hole. */
    for (uint32_t j = (i + 1) & m; t->key[j]; j = (j + 1) & m) {
        uint32_t home = flow_slot(t, t->key[j]);
        if (((j - home) & m) >= ((j - i) & m)) {
            t->key[i] = t->key[j];
            t->state[i] = t->state[j];
            t->key[j] = 0;
            i = j;
        }
    }
}

/* ------------------------------------------------------------------ attach / detach */

static void close_fds(int *fds, int n)
{
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

/* Receive the welcome and its fds. fds[] gets -1 where none came. */
static int recv_welcome(int sock, st_chan_welcome *w, int fds[3])
{
    union {
        char buf[CMSG_SPACE(3 * sizeof(int))];
        struct cmsghdr align;
    } cm;
    struct iovec iov = {.iov_base = w, .iov_len = sizeof(*w)};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf, .msg_controllen = sizeof(cm.buf)};
    fds[0] = fds[1] = fds[2] = -1;
    ssize_t n;
    do
        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
    int nfds = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (nfds < 3)
                fds[nfds++] = fd;
            else
                close(fd);
        }
    }
    if (n == 0)
        return -ECONNREFUSED; /* the stack closed on us: full, or going away */
    if (n != (ssize_t)sizeof(*w) || w->magic != ST_CHAN_MAGIC || (mh.msg_flags & MSG_CTRUNC))
        return -EPROTO;
    if (w->status < 0)
        return w->status;
    if (w->version != ST_CHAN_VERSION || nfds != 3)
        return -EPROTO;
    return 0;
}

static int connect_stack(const char *path, int *out)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (!path || strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct timeval tv = {.tv_sec = RS_TIMEOUT_S};
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
        connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    *out = fd;
    return 0;
}

static int map_channel(rs_stack *s, int memfd, uint64_t size)
{
    struct stat sb;
    if (fstat(memfd, &sb) < 0 || (uint64_t)sb.st_size != size || size < sizeof(st_chan_hdr))
        return -EPROTO;
    void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (base == MAP_FAILED)
        return -errno;
    s->base = base;
    s->size = size;
    return st_chan_app_init(&s->ch, base, size);
}

static int make_epoll(rs_stack *s)
{
    s->ep = epoll_create1(EPOLL_CLOEXEC);
    if (s->ep < 0)
        return -errno;
    struct epoll_event a = {.events = EPOLLIN}, b = {.events = EPOLLIN | EPOLLRDHUP};
    if (epoll_ctl(s->ep, EPOLL_CTL_ADD, s->bell_in, &a) < 0 || epoll_ctl(s->ep, EPOLL_CTL_ADD, s->sock, &b) < 0)
        return -errno;
    return 0;
}

int rs_attach(const char *sock_path, rs_stack **out)
{
    *out = NULL;
    rs_stack *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->sock = s->ep = s->bell_in = s->bell_out = -1;
    s->next_handle = 1;
    int fds[3] = {-1, -1, -1};
    int rc = connect_stack(sock_path, &s->sock);
    if (rc == 0) {
        st_chan_hello h = {.magic = ST_CHAN_MAGIC, .version = ST_CHAN_VERSION, .pid = (uint32_t)getpid()};
        if (send(s->sock, &h, sizeof(h), MSG_NOSIGNAL) != (ssize_t)sizeof(h))
            rc = -ECONNREFUSED;
    }
    st_chan_welcome w;
    if (rc == 0)
        rc = recv_welcome(s->sock, &w, fds);
    if (rc == 0) {
        s->bell_out = fds[1];
        s->bell_in = fds[2];
        fds[1] = fds[2] = -1;
        rc = map_channel(s, fds[0], w.size);
    }
    close_fds(fds, 3);
    if (rc == 0)
        rc = make_epoll(s);
    if (rc == 0)
        rc = flows_grow(&s->flows);
    if (rc < 0) {
        rs_detach(s);
        return rc;
    }
    s->local_ip = w.local_ip;
    s->max_msg = w.max_msg < s->ch.max_msg ? w.max_msg : s->ch.max_msg;
    *out = s;
    return 0;
}

void rs_detach(rs_stack *s)
{
    if (!s)
        return;
    int fds[4] = {s->sock, s->ep, s->bell_in, s->bell_out};
    close_fds(fds, 4); /* the socket closing is what tells the stack */
    st_chan_app_fini(&s->ch);
    if (s->base)
        munmap(s->base, s->size);
    free(s->flows.key);
    free(s->flows.state);
    free(s);
}

uint32_t rs_local_ip(const rs_stack *s)
{
    return s->local_ip;
}

size_t rs_max_msg(const rs_stack *s)
{
    return s->max_msg;
}

int rs_fd(const rs_stack *s)
{
    return s->ep;
}

/* ------------------------------------------------------------------ liveness and wake-ups */

/* The stack closed our socket (it died, or detached us): -EPIPE from now on. */
static int check_alive(rs_stack *s)
{
    char c;
    ssize_t n = recv(s->sock, &c, 1, MSG_DONTWAIT | MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    if (n > 0) {
        /* Nothing is sent to us unasked except a late rpc reply: drop it. */
        (void)!recv(s->sock, &c, 1, MSG_DONTWAIT);
        return 0;
    }
    s->dead = true;
    return -EPIPE;
}

static void kick_stack(rs_stack *s)
{
    if (st_chan_wake_needed(&s->ch.hdr->stack_wake)) {
        uint64_t one = 1;
        (void)!write(s->bell_out, &one, sizeof(one));
    }
}

/* Post a request; on -EAGAIN ask the stack to wake us when room frees up. */
static int put_req(rs_stack *s, const st_chan_desc *d, const void *data)
{
    if (s->dead)
        return -EPIPE;
    int rc = st_chan_app_put_req(&s->ch, d, data);
    if (rc == -EAGAIN) {
        st_chan_wake_arm(&s->ch.hdr->app_wake);
        if (st_chan_app_has_room(&s->ch, d->len))
            rc = st_chan_app_put_req(&s->ch, d, data);
        if (rc == -EAGAIN && check_alive(s) < 0)
            return -EPIPE;
    }
    if (rc == -EPROTO) {
        s->dead = true;
        return -EPIPE;
    }
    if (rc == 0)
        kick_stack(s);
    return rc;
}

/* ------------------------------------------------------------------ requests */

int rs_listen(rs_stack *s, uint16_t port)
{
    if (s->dead)
        return -EPIPE;
    if (port == 0)
        return -EINVAL;
    st_chan_rpc r = {.magic = ST_CHAN_MAGIC, .op = ST_CHAN_RPC_LISTEN, .port = port, .seq = ++s->rpc_seq};
    if (send(s->sock, &r, sizeof(r), MSG_NOSIGNAL) != (ssize_t)sizeof(r)) {
        s->dead = true;
        return -EPIPE;
    }
    for (;;) {
        st_chan_rpc rep;
        ssize_t n = recv(s->sock, &rep, sizeof(rep), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return -ETIMEDOUT;
        if (n <= 0) {
            s->dead = true;
            return -EPIPE;
        }
        if (n != (ssize_t)sizeof(rep) || rep.magic != ST_CHAN_MAGIC || rep.op != ST_CHAN_RPC_LISTEN)
            return -EPROTO;
        if (rep.seq == r.seq) /* older seqs: replies to calls that timed out */
            return rep.status;
    }
}

int rs_connect(rs_stack *s, uint32_t ip, uint16_t port, uint32_t *flow)
{
    if (s->flows.n >= RS_MAX_FLOWS)
        return -ENOSPC;
    uint32_t h = s->next_handle;
    while (flow_state(&s->flows, h))
        h = h >= ST_CHAN_HANDLE_LIB_MAX ? 1 : h + 1;
    if (flow_set(&s->flows, h, FLOW_OPEN) < 0)
        return -ENOMEM;
    st_chan_desc d = {.type = ST_CHAN_REQ_CONNECT, .handle = h, .ip = ip, .port = port, .buf = ST_CHAN_NOBUF};
    int rc = put_req(s, &d, NULL);
    if (rc < 0) {
        flow_del(&s->flows, h);
        return rc;
    }
    s->next_handle = h >= ST_CHAN_HANDLE_LIB_MAX ? 1 : h + 1;
    *flow = h;
    return 0;
}

int rs_send(rs_stack *s, uint32_t flow, const void *msg, size_t len)
{
    if (s->dead)
        return -EPIPE;
    if (flow_state(&s->flows, flow) != FLOW_OPEN)
        return -ENOTCONN;
    if (len > s->max_msg)
        return -EMSGSIZE;
    if (len && !msg)
        return -EINVAL;
    st_chan_desc d = {.type = ST_CHAN_REQ_SEND, .handle = flow, .len = (uint32_t)len};
    return put_req(s, &d, msg);
}

int rs_close(rs_stack *s, uint32_t flow)
{
    if (s->dead)
        return -EPIPE;
    if (flow_state(&s->flows, flow) != FLOW_OPEN)
        return -ENOTCONN;
    st_chan_desc d = {.type = ST_CHAN_REQ_CLOSE, .handle = flow, .buf = ST_CHAN_NOBUF};
    int rc = put_req(s, &d, NULL);
    if (rc == 0)
        flow_set(&s->flows, flow, FLOW_CLOSING); /* present already: cannot fail */
    return rc;
}

int rs_abort(rs_stack *s, uint32_t flow)
{
    if (s->dead)
        return -EPIPE;
    if (!flow_state(&s->flows, flow))
        return -ENOTCONN;
    st_chan_desc d = {.type = ST_CHAN_REQ_ABORT, .handle = flow, .buf = ST_CHAN_NOBUF};
    int rc = put_req(s, &d, NULL);
    if (rc == 0)
        flow_del(&s->flows, flow);
    return rc;
}

/* ------------------------------------------------------------------ events */

/* Keep the flow table in step; false = drop the event (a flow we aborted). */
static bool track(rs_stack *s, const st_chan_desc *d)
{
    int st = flow_state(&s->flows, d->handle);
    switch (d->type) {
    case RS_EV_ACCEPTED:
        if (st)
            return false;
        if (s->flows.n >= RS_MAX_FLOWS || flow_set(&s->flows, d->handle, FLOW_OPEN) < 0) {
            st_chan_desc a = {.type = ST_CHAN_REQ_ABORT, .handle = d->handle, .buf = ST_CHAN_NOBUF};
            put_req(s, &a, NULL); /* no room to track it: refuse it */
            return false;
        }
        return true;
    case RS_EV_RESET:
    case RS_EV_CLOSED:
        if (!st)
            return false;
        flow_del(&s->flows, d->handle);
        return true;
    default:
        return st != 0;
    }
}

int rs_poll(rs_stack *s, rs_event *ev)
{
    if (s->dead)
        return -EPIPE;
    bool slept = false;
    for (;;) {
        st_chan_desc d;
        const uint8_t *data;
        int rc = st_chan_app_next_event(&s->ch, &d, &data);
        if (rc < 0) {
            s->dead = true;
            return -EPIPE;
        }
        if (rc == 0) {
            kick_stack(s); /* we may have returned buffers it is waiting for */
            if (slept)
                return check_alive(s);
            /* Going idle: drain the doorbell (only before clearing kicked),
             * say so, then look once more for what raced with us. */
            if (atomic_load_explicit(&s->ch.hdr->app_wake.kicked, memory_order_relaxed)) {
                uint64_t v;
                (void)!read(s->bell_in, &v, sizeof(v));
            }
            st_chan_wake_sleep(&s->ch.hdr->app_wake);
            slept = true;
            continue;
        }
        if (!track(s, &d))
            continue; /* not busy yet: a sleep flag set above must stay */
        st_chan_wake_busy(&s->ch.hdr->app_wake);
        *ev = (rs_event){.kind = d.type, .reason = d.reason, .flow = d.handle, .local_port = d.local_port,
                         .remote_ip = d.ip, .remote_port = d.port, .data = data, .len = d.len};
        kick_stack(s);
        return 1;
    }
}
