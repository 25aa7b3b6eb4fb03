/* rift_stack.h — the application side of rift-stackd (Machnet-style microkernel).
 *
 * rift-stackd owns the DPDK port, the transport and the impairment stage; an
 * application (a replica, the workload clients, `rift kv`) attaches to it over a
 * Unix socket and then talks through a shared-memory channel: a memfd holding a
 * buffer pool and two SPSC rings of buffer indices (app -> stack, stack -> app),
 * plus an eventfd per direction. Messages larger than one buffer are chained.
 * Nothing here blocks except rs_attach and rs_listen (one round trip to the
 * stack, so the port is open when it returns); rs_fd() is what an application
 * sleeps on (poll/epoll) between rs_poll calls. Not thread-safe: one thread
 * per rs_stack. Layout and protocol: docs/channels.md.
 *
 * Flows are reliable, in-order message streams (stack/st_transport). Flow
 * handles are chosen by this library (connect) or by the stack (accepted flows)
 * and are never 0. If the application dies, rift-stackd notices the Unix socket
 * closing and frees the channel and every flow the application owned. */
#ifndef RIFT_STACK_H
#define RIFT_STACK_H

#include <stddef.h>
#include <stdint.h>

typedef struct rs_stack rs_stack;

typedef enum rs_event_kind {
    RS_EV_MSG = 1,       /* a whole message on flow: data/len */
    RS_EV_ESTABLISHED,   /* our rs_connect on flow completed */
    RS_EV_ACCEPTED,      /* a peer connected to a port we listen on: new flow */
    RS_EV_RESET,         /* flow gone abnormally (reason: st_reset_reason); handle is dead */
    RS_EV_CLOSED,        /* flow gone gracefully (reason: st_close_reason); handle is dead */
} rs_event_kind;

/* RS_EV_RESET reason besides st_reset_reason: the stack could not open the
 * flow at all (no room for it, bad address). */
#define RS_RESET_LOCAL 64u

typedef struct rs_event {
    uint8_t kind;          /* rs_event_kind */
    uint8_t reason;
    uint32_t flow;
    uint16_t local_port;
    uint32_t remote_ip;    /* host byte order */
    uint16_t remote_port;
    const uint8_t *data;   /* RS_EV_MSG: valid until the next rs_poll or rs_detach */
    size_t len;
} rs_event;

/* Attach to the rift-stackd listening on sock_path. 0 or a negative errno
 * (-ENOENT / -ECONNREFUSED: no stack there; -EPROTO: version mismatch). */
int rs_attach(const char *sock_path, rs_stack **out);
/* Close every flow of this application (the stack aborts them: to deliver
 * what is queued, rs_close and wait for RS_EV_CLOSED first) and unmap the
 * channel. */
void rs_detach(rs_stack *s);

/* The stack's IPv4 address (host byte order) and the largest message it carries. */
uint32_t rs_local_ip(const rs_stack *s);
size_t rs_max_msg(const rs_stack *s);

/* Accept flows on a UDP port. 0 or negative errno (-EADDRINUSE). */
int rs_listen(rs_stack *s, uint16_t port);
/* Open a flow; *flow is usable at once (sends queue until RS_EV_ESTABLISHED) and
 * ends in RS_EV_ESTABLISHED or RS_EV_RESET. ip in host byte order. */
int rs_connect(rs_stack *s, uint32_t ip, uint16_t port, uint32_t *flow);
/* Queue one message (copied into the channel). 0, -EAGAIN (channel or pool
 * full: poll rs_fd and retry), -EMSGSIZE (above rs_max_msg), -ENOTCONN
 * (unknown, closing or dead flow), -EPIPE (stack gone: noticed by rs_poll, or
 * here once the channel fills). */
int rs_send(rs_stack *s, uint32_t flow, const void *msg, size_t len);
/* Graceful close (everything queued is delivered first) / immediate reset. */
int rs_close(rs_stack *s, uint32_t flow);
int rs_abort(rs_stack *s, uint32_t flow);

/* Next event: 1 = *ev filled, 0 = nothing pending, -EPIPE = the stack died. */
int rs_poll(rs_stack *s, rs_event *ev);
/* Readable when events may be pending; drain rs_poll until 0 after a wake-up. */
int rs_fd(const rs_stack *s);

#endif
