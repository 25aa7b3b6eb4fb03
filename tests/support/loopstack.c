/* loopstack.c — channel servers joined back to back: rift-stackd without a network. */
#include "loopstack.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "stack/rift_stack.h"
#include "stack/st_chan_server.h"

#define LS_MAX_FLOWS 1024
#define LS_MAX_LISTENERS 64
#define LS_MAX_MSG (8u * 1024u * 1024u)
#define LS_POLL_BUDGET 1024u

typedef struct ls_node ls_node;

typedef struct ls_end {
    ls_node *node;
    st_chan_app *app;
    uint32_t handle;
    uint16_t port;
} ls_end;

typedef struct ls_flow {
    bool used;
    ls_end end[2]; /* [0] connected, [1] accepted */
} ls_flow;

typedef struct ls_listener {
    st_chan_app *app; /* NULL = free */
    uint16_t port;
} ls_listener;

struct ls_node {
    loopstack *ls;
    int index;
    uint32_t ip;
    st_chan_server *srv;
    ls_listener listeners[LS_MAX_LISTENERS];
};

struct loopstack {
    pthread_mutex_t mu; /* the state below; the thread holds it while serving */
    pthread_t thread;
    bool started;
    atomic_bool stop;
    int n;
    ls_node nodes[LOOPSTACK_MAX_NODES];
    ls_flow flows[LS_MAX_FLOWS];
    uint32_t next_accept;
    bool cut[LOOPSTACK_MAX_NODES][LOOPSTACK_MAX_NODES];
    loopstack_stats st;
};

static ls_node *ls_node_by_ip(loopstack *ls, uint32_t ip)
{
    for (int i = 0; i < ls->n; i++) {
        if (ls->nodes[i].ip == ip)
            return &ls->nodes[i];
    }
    return NULL;
}

static ls_flow *ls_flow_find(loopstack *ls, const st_chan_app *app, uint32_t handle, int *side)
{
    for (int i = 0; i < LS_MAX_FLOWS; i++) {
        ls_flow *f = &ls->flows[i];
        for (int s = 0; f->used && s < 2; s++) {
            if (f->end[s].app == app && f->end[s].handle == handle) {
                *side = s;
                return f;
            }
        }
    }
    return NULL;
}

static int ls_push(const ls_end *to, uint8_t kind, const ls_end *from, const uint8_t *data, size_t len)
{
    rs_event ev = {.kind = kind, .flow = to->handle, .local_port = to->port, .remote_ip = from->node->ip,
                   .remote_port = from->port, .data = data, .len = len};
    return st_chan_server_push(to->node->srv, to->app, &ev);
}

/* ---- ops (called by st_chan_server_poll, with ls->mu held) ---- */

static int ls_listen(void *ctx, st_chan_app *app, uint16_t port)
{
    ls_node *nd = ctx;
    ls_listener *free_slot = NULL;
    for (int i = 0; i < LS_MAX_LISTENERS; i++) {
        ls_listener *l = &nd->listeners[i];
        if (l->app && l->port == port)
            return -EADDRINUSE;
        if (!l->app && !free_slot)
            free_slot = l;
    }
    if (!free_slot)
        return -ENOSPC;
    *free_slot = (ls_listener){app, port};
    return 0;
}

static st_chan_app *ls_listener_of(ls_node *nd, uint16_t port)
{
    for (int i = 0; i < LS_MAX_LISTENERS; i++) {
        if (nd->listeners[i].app && nd->listeners[i].port == port)
            return nd->listeners[i].app;
    }
    return NULL;
}

static int ls_connect(void *ctx, st_chan_app *app, uint32_t handle, uint32_t ip, uint16_t port)
{
    ls_node *nd = ctx;
    loopstack *ls = nd->ls;
    ls_node *peer = ls_node_by_ip(ls, ip);
    st_chan_app *lapp = peer ? ls_listener_of(peer, port) : NULL;
    ls_flow *f = NULL;
    for (int i = 0; i < LS_MAX_FLOWS && !f; i++)
        f = ls->flows[i].used ? NULL : &ls->flows[i];
    uint16_t eph = (uint16_t)(40000u + (ls->next_accept % 20000u));
    ls_end me = {nd, app, handle, eph};
    if (!lapp || !f) {
        ls->st.flows_refused++;
        return -ECONNREFUSED; /* the server turns a failed connect into RS_EV_RESET */
    }
    ls->next_accept++;
    *f = (ls_flow){true, {me, {peer, lapp, 0x80000000u | ls->next_accept, port}}};
    ls->st.flows_opened++;
    int rc = ls_push(&f->end[1], RS_EV_ACCEPTED, &f->end[0], NULL, 0);
    return rc < 0 ? rc : ls_push(&f->end[0], RS_EV_ESTABLISHED, &f->end[1], NULL, 0);
}

static int ls_send(void *ctx, st_chan_app *app, uint32_t handle, const uint8_t *msg, size_t len)
{
    ls_node *nd = ctx;
    loopstack *ls = nd->ls;
    int side;
    ls_flow *f = ls_flow_find(ls, app, handle, &side);
    if (!f)
        return 0; /* a flow the loopstack already reset: the app will hear of it */
    const ls_end *from = &f->end[side], *to = &f->end[!side];
    if (ls->cut[from->node->index][to->node->index]) {
        ls->st.msgs_cut++;
        return 0;
    }
    ls->st.msgs_delivered++;
    return ls_push(to, RS_EV_MSG, from, msg, len);
}

static void ls_flow_end(loopstack *ls, ls_flow *f, int side, uint8_t kind)
{
    ls_push(&f->end[!side], kind, &f->end[side], NULL, 0);
    f->used = false;
}

static int ls_close(void *ctx, st_chan_app *app, uint32_t handle, bool abort)
{
    ls_node *nd = ctx;
    int side;
    ls_flow *f = ls_flow_find(nd->ls, app, handle, &side);
    if (f) {
        nd->ls->st.resets += abort;
        ls_flow_end(nd->ls, f, side, abort ? RS_EV_RESET : RS_EV_CLOSED);
    }
    return 0;
}

static void ls_detached(void *ctx, st_chan_app *app)
{
    ls_node *nd = ctx;
    loopstack *ls = nd->ls;
    ls->st.detaches++;
    for (int i = 0; i < LS_MAX_LISTENERS; i++) {
        if (nd->listeners[i].app == app)
            nd->listeners[i].app = NULL;
    }
    for (int i = 0; i < LS_MAX_FLOWS; i++) {
        ls_flow *f = &ls->flows[i];
        for (int s = 0; f->used && s < 2; s++) {
            if (f->end[s].app == app) {
                /* the dead app's own end gets nothing: it is gone */
                ls_flow_end(ls, f, s, RS_EV_RESET);
                ls->st.resets++;
            }
        }
    }
}

static const st_chan_ops ls_ops_template = {
    .listen = ls_listen, .connect = ls_connect, .send = ls_send, .close = ls_close, .detached = ls_detached,
};

/* ---- public ---- */

loopstack *loopstack_new(void)
{
    loopstack *ls = calloc(1, sizeof(*ls));
    if (!ls)
        return NULL;
    pthread_mutex_init(&ls->mu, NULL);
    return ls;
}

int loopstack_add(loopstack *ls, const char *sock_path, uint32_t ip)
{
    if (ls->started || ls->n == LOOPSTACK_MAX_NODES)
        return -EBUSY;
    ls_node *nd = &ls->nodes[ls->n];
    *nd = (ls_node){.ls = ls, .index = ls->n, .ip = ip};
    st_chan_ops ops = ls_ops_template;
    ops.ctx = nd;
    int err = 0;
    nd->srv = st_chan_server_new(sock_path, ip, LS_MAX_MSG, &ops, &err);
    if (!nd->srv)
        return err < 0 ? err : -ENOMEM;
    return ls->n++;
}

static void *ls_thread(void *arg)
{
    loopstack *ls = arg;
    struct pollfd p[LOOPSTACK_MAX_NODES];
    bool busy = false;
    while (!atomic_load(&ls->stop)) {
        for (int i = 0; i < ls->n; i++)
            p[i] = (struct pollfd){st_chan_server_fd(ls->nodes[i].srv), POLLIN, 0};
        /* pushes to one node made while serving another are flushed on its next
         * poll round, so after any work go round again without sleeping */
        poll(p, (nfds_t)ls->n, busy ? 0 : 5);
        busy = false;
        pthread_mutex_lock(&ls->mu);
        for (int i = 0; i < ls->n; i++)
            busy |= st_chan_server_poll(ls->nodes[i].srv, LS_POLL_BUDGET) > 0;
        pthread_mutex_unlock(&ls->mu);
    }
    return NULL;
}

int loopstack_start(loopstack *ls)
{
    if (ls->started)
        return -EBUSY;
    int rc = pthread_create(&ls->thread, NULL, ls_thread, ls);
    if (rc)
        return -rc;
    ls->started = true;
    return 0;
}

void loopstack_free(loopstack *ls)
{
    if (!ls)
        return;
    if (ls->started) {
        atomic_store(&ls->stop, true);
        pthread_join(ls->thread, NULL);
    }
    for (int i = 0; i < ls->n; i++)
        st_chan_server_free(ls->nodes[i].srv);
    pthread_mutex_destroy(&ls->mu);
    free(ls);
}

void loopstack_cut(loopstack *ls, uint32_t from_ip, uint32_t to_ip, bool cut)
{
    pthread_mutex_lock(&ls->mu);
    ls_node *a = ls_node_by_ip(ls, from_ip), *b = ls_node_by_ip(ls, to_ip);
    if (a && b)
        ls->cut[a->index][b->index] = cut;
    pthread_mutex_unlock(&ls->mu);
}

void loopstack_reset_between(loopstack *ls, uint32_t a, uint32_t b)
{
    pthread_mutex_lock(&ls->mu);
    for (int i = 0; i < LS_MAX_FLOWS; i++) {
        ls_flow *f = &ls->flows[i];
        if (!f->used)
            continue;
        uint32_t x = f->end[0].node->ip, y = f->end[1].node->ip;
        if ((x == a && y == b) || (x == b && y == a)) {
            ls_push(&f->end[0], RS_EV_RESET, &f->end[1], NULL, 0);
            ls_push(&f->end[1], RS_EV_RESET, &f->end[0], NULL, 0);
            f->used = false;
            ls->st.resets++;
        }
    }
    pthread_mutex_unlock(&ls->mu);
}

void loopstack_stats_get(loopstack *ls, loopstack_stats *out)
{
    pthread_mutex_lock(&ls->mu);
    *out = ls->st;
    pthread_mutex_unlock(&ls->mu);
}
