/* st_chan_server.h — rift-stackd's side of the application channels.
 *
 * Applications attach over a Unix SOCK_SEQPACKET socket (rift_stack.h is their
 * side); each gets its own shared-memory channel (st_chan.h). The socket stays
 * open while the app is attached: when it closes (rs_detach, exit, SIGKILL)
 * the server frees the channel and calls ops->detached. rs_listen is the one
 * request that travels over the socket instead of the ring, because the app
 * needs its answer (-EADDRINUSE) before it returns.
 *
 * Nothing an application writes into its channel can crash the server: every
 * index, length and chain is checked, and an app that breaks the channel (or
 * the socket protocol, or stops reading events for too long) is detached.
 *
 * Threading: one thread owns the server. ops run inside st_chan_server_poll;
 * they may call st_chan_server_push (for any app, including the caller), but
 * not st_chan_server_poll or _free. An app pointer stays valid until
 * ops->detached for it returns. */
#ifndef ST_CHAN_SERVER_H
#define ST_CHAN_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rift_stack.h"

typedef struct st_chan_server st_chan_server;
typedef struct st_chan_app st_chan_app;         /* one attached application */

typedef struct st_chan_ops {
    void *ctx;
    /* Requests from an application, in the order it made them. Return 0 or a negative errno;
     * for send, -EAGAIN means "keep it, offer it again later" (transport queue full).
     * A send kept that way holds back later sends and the close of the same flow
     * only; other flows go on. connect failing makes the server push RS_EV_RESET
     * (reason RS_RESET_LOCAL); other failures are dropped (the flow's own
     * RS_EV_RESET / RS_EV_CLOSED tells the app). msg is valid during the call. */
    int (*listen)(void *ctx, st_chan_app *app, uint16_t port);
    int (*connect)(void *ctx, st_chan_app *app, uint32_t handle, uint32_t ip, uint16_t port);
    int (*send)(void *ctx, st_chan_app *app, uint32_t handle, const uint8_t *msg, size_t len);
    int (*close)(void *ctx, st_chan_app *app, uint32_t handle, bool abort);
    /* The application detached or died (its Unix socket closed): free its flows and ports. */
    void (*detached)(void *ctx, st_chan_app *app);
} st_chan_ops;

/* Sizes and bounds (st_chan_server_new uses the defaults). */
typedef struct st_chan_config {
    uint32_t local_ip;     /* host order; told to every app */
    size_t max_msg;        /* default 8 MiB; lowered to what one pool half holds */
    uint32_t buf_size;     /* bytes per buffer, power of two (2048) */
    uint32_t bufs_per_dir; /* pool buffers per direction (0: enough for max_msg + 2048) */
    uint32_t ring_slots;   /* descriptors per ring, power of two (1024) */
    uint32_t max_apps;     /* attached + attaching (64) */
    size_t park_bytes;     /* per app: sends kept after -EAGAIN before its ring stops draining (32 MiB) */
    uint32_t park_msgs;    /* same, in messages (8192) */
    size_t queue_bytes;    /* per app: events waiting for room in its channel (0: 64 MiB or 2 x max_msg) */
    uint32_t queue_msgs;   /* same, in messages (65536) */
    uint32_t stall_ms;     /* events queued and the app consumed none for this long: detach (10000) */
} st_chan_config;

void st_chan_config_default(st_chan_config *c);

/* Listen for applications on sock_path (unlinks a stale socket first; -EEXIST
 * if something else is there). NULL on error with *err set. */
st_chan_server *st_chan_server_new(const char *sock_path, uint32_t local_ip, size_t max_msg,
                                   const st_chan_ops *ops, int *err);
st_chan_server *st_chan_server_new_cfg(const char *sock_path, const st_chan_config *cfg, const st_chan_ops *ops,
                                       int *err);
/* Closes every channel (without calling ops->detached: the caller is tearing
 * down too) and removes the socket file. */
void st_chan_server_free(st_chan_server *s);
/* An fd (epoll) that becomes readable when an app attaches, detaches, or wakes the stack. */
int st_chan_server_fd(const st_chan_server *s);
/* Accept/reap applications and drain every app->stack ring, calling ops. Returns the
 * number of requests handled (0 = idle). Never blocks. budget 0 = 256. */
int st_chan_server_poll(st_chan_server *s, unsigned budget);
/* Deliver to an application (stack -> app): kind/reason/remote fields as in rs_event,
 * data/len for RS_EV_MSG (copied). Handle = the app's flow handle. Never loses data:
 * if the ring or the pool is full it is queued inside the server (bounded; an app that
 * stops reading for too long is detached). 0 or negative errno (-EPIPE: the app is
 * being detached; -ENOBUFS: queue bound hit, the app is being detached; -EMSGSIZE;
 * -EINVAL). Wakes the app (eventfd) when it sleeps, at most once per sleep.
 * RS_EV_RESET / RS_EV_CLOSED drop the sends still kept for that flow. */
int st_chan_server_push(st_chan_server *s, st_chan_app *app, const rs_event *ev);

/* Counters for the control socket's stats. apps: attached now; queued: messages
 * held inside the server now (events waiting for room + sends kept after -EAGAIN). */
typedef struct st_chan_stats { uint64_t apps, attaches, detaches, msgs_in, msgs_out, bytes_in, bytes_out, queued; } st_chan_stats;
void st_chan_server_stats(const st_chan_server *s, st_chan_stats *out);

/* About one app: a small id (1, 2, ... in attach order), its pid (SO_PEERCRED),
 * a pointer the stack may keep with it, and why it was detached (NULL while
 * attached; static text). */
uint32_t st_chan_app_id(const st_chan_app *app);
int st_chan_app_pid(const st_chan_app *app);
void st_chan_app_set_user(st_chan_app *app, void *user);
void *st_chan_app_user(const st_chan_app *app);
const char *st_chan_app_why(const st_chan_app *app);

#endif
