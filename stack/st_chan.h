/* st_chan.h — the shared-memory channel between rift-stackd and one application.
 *
 * One memfd per attached application, mapped by both processes:
 *
 *   header      magic, version, sizes, and the two wake words (below)
 *   req ring    app -> stack descriptors (connect, send, close, abort)
 *   evt ring    stack -> app descriptors (msg, established, accepted, reset, closed)
 *   app_ret     stack -> app: indices of app buffers the stack is done with
 *   stack_ret   app -> stack: indices of stack buffers the app is done with
 *   links       one u32 per buffer: the next buffer of a chained message
 *   buffers     app half [0, app_bufs), then stack half [app_bufs, app_bufs + stack_bufs)
 *
 * Every ring is single-producer single-consumer with free-running u32 indices
 * (C11 atomics, release on publish, acquire on read). Each side allocates only
 * from its own half of the pool, from a free list in its *private* memory; the
 * peer hands buffers back through a return ring. So no shared structure has
 * two writers, and nothing the app can scribble on decides what the stack
 * allocates. A message of len bytes takes ceil(len / buf_size) buffers chained
 * through links[], the descriptor naming the first.
 *
 * The stack trusts nothing it reads here: every ring index, descriptor field,
 * link and returned buffer index is checked against its private copy of the
 * layout and of its own ring positions; a violation is -EPROTO and the caller
 * detaches the app. The app side checks what it reads too (a bug in the stack
 * must not turn into a wild pointer), but only for range, not for malice.
 *
 * Wake-ups (no syscalls while both sides are busy): each direction has a wake
 * word pair {sleeping, kicked} owned by its reader. A reader that finds nothing
 * to do sets sleeping, fences, and looks again before blocking on its eventfd;
 * a writer, after publishing, fences and writes the eventfd only when the
 * reader sleeps and nobody kicked it yet. Invariant: kicked == 1 means the
 * eventfd is (or is about to be) readable, so a reader may read the eventfd
 * only right before clearing kicked.
 *
 * This module does no syscalls: sockets, eventfds and mapping are the callers'
 * (st_chan_server.c, rift_stack.c), which keeps it fuzzable as plain memory. */
#ifndef ST_CHAN_H
#define ST_CHAN_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ST_CHAN_MAGIC 0x43464952u   /* "RIFC" little-endian */
#define ST_CHAN_VERSION 1u
#define ST_CHAN_NOBUF 0xffffffffu

#define ST_CHAN_BUF_SIZE_DEFAULT 2048u
#define ST_CHAN_RING_SLOTS_DEFAULT 1024u
/* Buffers per direction beyond what one largest message needs, so small
 * messages keep flowing while a large one is in the pool. */
#define ST_CHAN_EXTRA_BUFS 2048u
#define ST_CHAN_BUF_SIZE_MIN 64u
#define ST_CHAN_BUF_SIZE_MAX 65536u
#define ST_CHAN_BUFS_MAX (1u << 20)   /* per direction */
#define ST_CHAN_RING_SLOTS_MAX (1u << 16)

/* Request descriptor types (app -> stack). Event types are rs_event_kind. */
enum {
    ST_CHAN_REQ_CONNECT = 16,
    ST_CHAN_REQ_SEND,
    ST_CHAN_REQ_CLOSE,
    ST_CHAN_REQ_ABORT,
};

/* Handles: the library picks connect handles in [1, ST_CHAN_HANDLE_LIB_MAX];
 * the stack gives accepted flows ST_CHAN_HANDLE_STACK | n. */
#define ST_CHAN_HANDLE_LIB_MAX 0x7fffffffu
#define ST_CHAN_HANDLE_STACK 0x80000000u

typedef struct st_chan_desc {
    uint8_t type;        /* ST_CHAN_REQ_* or rs_event_kind */
    uint8_t reason;      /* events: st_reset_reason / st_close_reason */
    uint16_t port;       /* connect: remote port; events: remote port */
    uint16_t local_port; /* events */
    uint16_t pad;
    uint32_t handle;
    uint32_t ip;         /* connect / events: remote IPv4, host order */
    uint32_t len;        /* message bytes (send / msg), 0 otherwise */
    uint32_t buf;        /* first buffer of the chain; ST_CHAN_NOBUF when len == 0 */
} st_chan_desc;

typedef struct st_chan_wake {
    _Atomic uint32_t sleeping; /* the reader may block on its eventfd */
    _Atomic uint32_t kicked;   /* a writer wrote the eventfd since the reader cleared this */
} st_chan_wake;

typedef struct st_chan_ring_idx {
    alignas(64) _Atomic uint32_t prod; /* written by the producer only */
    alignas(64) _Atomic uint32_t cons; /* written by the consumer only */
} st_chan_ring_idx;

typedef struct st_chan_hdr {
    uint32_t magic, version;
    uint32_t buf_size;   /* bytes per buffer, a power of two */
    uint32_t app_bufs;   /* buffers [0, app_bufs) are the app's to allocate */
    uint32_t stack_bufs; /* the next stack_bufs are the stack's */
    uint32_t ring_slots; /* req and evt rings, a power of two */
    uint32_t max_msg;    /* largest message either side may put in the channel */
    uint32_t pad;
    uint64_t size;       /* bytes in the region */
    alignas(64) st_chan_wake app_wake;   /* reader: the app (evt ring, app_ret) */
    alignas(64) st_chan_wake stack_wake; /* reader: the stack (req ring, stack_ret) */
} st_chan_hdr;

/* Where everything is; derived from the four sizes alone, so a peer cannot
 * point the stack at a wrong offset. */
typedef struct st_chan_layout {
    uint32_t buf_size, buf_shift, app_bufs, stack_bufs, ring_slots;
    uint32_t app_ret_slots, stack_ret_slots; /* powers of two >= the half they return */
    size_t off_req, off_evt, off_app_ret, off_stack_ret, off_link, off_bufs, size;
} st_chan_layout;

/* -EINVAL when a size is out of range (buf_size and ring_slots powers of two). */
int st_chan_layout_make(uint32_t buf_size, uint32_t app_bufs, uint32_t stack_bufs, uint32_t ring_slots,
                        st_chan_layout *out);
/* Buffers per direction for a channel that must carry max_msg. */
uint32_t st_chan_bufs_for(size_t max_msg, uint32_t buf_size);

/* One side's view of one SPSC ring: its own index is private (never read back
 * from shared memory), the peer's is re-read and checked. */
typedef struct st_chan_ring {
    st_chan_ring_idx *idx;
    uint8_t *slots;
    uint32_t mask, slot_size;
    uint32_t mine;   /* producer: next slot to write; consumer: next to read */
    uint32_t theirs; /* last checked value of the peer's index */
} st_chan_ring;

/* The stack's private state for one channel. */
typedef struct st_chan_stack_end {
    uint8_t *base;
    st_chan_layout lay;
    st_chan_hdr *hdr;
    uint32_t *link;
    uint8_t *bufs;
    uint32_t max_msg;
    st_chan_ring req, evt, app_ret, stack_ret;
    uint32_t *free_list, n_free; /* stack-half buffers we own (absolute indices) */
    uint8_t *lent;               /* per stack buffer: 1 = in an event the app has not returned */
    uint32_t *seen, seen_epoch;  /* per app buffer: chain-walk marks (loops, reuse) */
    uint32_t *cur, n_cur;        /* app buffers of the request being handled */
    uint8_t *asm_buf;            /* reassembly of chained sends */
    size_t asm_cap;
    bool app_dirty;              /* we freed app buffers/slots or posted events: maybe kick */
} st_chan_stack_end;

/* A request read from the app, checked. data (SEND) stays valid until
 * st_chan_stack_req_done; it may point into shared memory. */
typedef struct st_chan_req {
    uint8_t type;
    uint16_t port;
    uint32_t handle, ip;
    const uint8_t *data;
    size_t len;
} st_chan_req;

/* Lay out a fresh region (base: lay->size bytes, zeroed) and the stack's
 * private state. max_msg above one half of the pool is lowered to fit it.
 * 0 or -ENOMEM. */
int st_chan_stack_init(st_chan_stack_end *e, void *base, const st_chan_layout *lay, uint32_t max_msg);
void st_chan_stack_fini(st_chan_stack_end *e);
/* The next request: 1 = *out filled (then call st_chan_stack_req_done),
 * 0 = none, -EPROTO = the app broke the channel. */
int st_chan_stack_next_req(st_chan_stack_end *e, st_chan_req *out);
/* Hand the current request's buffers back to the app. 0 or -EPROTO. */
int st_chan_stack_req_done(st_chan_stack_end *e);
/* Take back stack buffers the app returned. 0 or -EPROTO. */
int st_chan_stack_reclaim(st_chan_stack_end *e);
/* Post one event (d->len bytes of data for RS_EV_MSG; d->buf is filled in).
 * 0, -EAGAIN (ring or pool full now), -EMSGSIZE (above max_msg: never fits),
 * -EPROTO (the app broke its return ring). */
int st_chan_stack_put_event(st_chan_stack_end *e, const st_chan_desc *d, const uint8_t *data);
/* Anything in the req ring or stack_ret ring? (-EPROTO like the others.) */
int st_chan_stack_pending(st_chan_stack_end *e);

/* The app's private state for one channel. */
typedef struct st_chan_app_end {
    uint8_t *base;
    st_chan_layout lay;
    st_chan_hdr *hdr;
    uint32_t *link;
    uint8_t *bufs;
    uint32_t max_msg;
    st_chan_ring req, evt, app_ret, stack_ret;
    uint32_t *free_list, n_free; /* app-half buffers we own */
    uint32_t *held, n_held;      /* stack buffers of the last event, returned on the next call */
    uint8_t *asm_buf;
    size_t asm_cap;
} st_chan_app_end;

/* Check the header the stack wrote against the mapped size and set up the
 * app's state. 0, -EPROTO (bad header), -ENOMEM. */
int st_chan_app_init(st_chan_app_end *e, void *base, size_t size);
void st_chan_app_fini(st_chan_app_end *e);
/* Post one request (d->len bytes of data for SEND; d->buf is filled in).
 * 0, -EAGAIN (ring or pool full now), -EMSGSIZE (above max_msg or the whole
 * app half of the pool), -EPROTO. */
int st_chan_app_put_req(st_chan_app_end *e, const st_chan_desc *d, const void *data);
/* The next event: 1 = *d filled and, for a message, *data (valid until the
 * next st_chan_app_next_event or st_chan_app_release), 0 = none, -EPROTO.
 * Returns the previous event's buffers first. */
int st_chan_app_next_event(st_chan_app_end *e, st_chan_desc *d, const uint8_t **data);
/* Return the last event's buffers to the stack now. 0 or -EPROTO (return ring full: a stack bug). */
int st_chan_app_release(st_chan_app_end *e);
/* Free slots for a request of len bytes right now? (true = put_req would not
 * return -EAGAIN.) */
bool st_chan_app_has_room(st_chan_app_end *e, size_t len);
/* Events waiting? */
bool st_chan_app_pending(st_chan_app_end *e);

/* Wake protocol (see the top of this file). */
/* Writer, after publishing: true = write the reader's eventfd now. */
bool st_chan_wake_needed(st_chan_wake *w);
/* Reader, found nothing: clear kicked, set sleeping, fence; then look again.
 * Read the eventfd (if kicked) *before* this call. */
void st_chan_wake_sleep(st_chan_wake *w);
/* Reader, blocked on room (not on events): set sleeping and fence, leaving
 * kicked and the eventfd alone (an event's wake-up must not be eaten). */
void st_chan_wake_arm(st_chan_wake *w);
/* Reader, has work: writers need not kick. */
void st_chan_wake_busy(st_chan_wake *w);

/* Messages on the Unix socket. The app sends hello; the stack answers with
 * welcome and, when status == 0, SCM_RIGHTS [memfd, doorbell app->stack,
 * doorbell stack->app]. Afterwards the app may send rpc (listen); the stack
 * answers each with an rpc carrying status. Native byte order (same host). */
typedef struct st_chan_hello {
    uint32_t magic;
    uint16_t version;
    uint16_t flags;      /* 0 */
    uint32_t pid;
} st_chan_hello;

typedef struct st_chan_welcome {
    uint32_t magic;
    uint16_t version;    /* the stack's */
    int16_t status;      /* 0 or a negative errno (-EPROTO: version mismatch) */
    uint32_t local_ip;   /* host order */
    uint32_t max_msg;
    uint64_t size;       /* bytes in the memfd */
} st_chan_welcome;

enum { ST_CHAN_RPC_LISTEN = 1 };

typedef struct st_chan_rpc {
    uint32_t magic;
    uint16_t op;
    uint16_t port;
    uint32_t seq;
    int32_t status;      /* reply: 0 or a negative errno */
} st_chan_rpc;

#endif
