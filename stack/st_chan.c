/* st_chan.c — channel layout, SPSC rings, buffer chains and the wake protocol.
 *
 * Both ends keep their own ring position privately and only ever *read* the
 * peer's, checking that it is within one ring of ours; so a peer that writes
 * garbage into an index can make the ring look empty or full, never make us
 * read or write outside it. Descriptors and links the stack reads are copied
 * word by word through volatile pointers before they are checked, so the app
 * cannot change a value between the check and the use. */
#include "st_chan.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rift_stack.h"

_Static_assert(sizeof(st_chan_desc) == 24, "descriptor is six words");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "shared atomics must be lock-free (address-free)");

static const uint8_t empty_msg[1]; /* data for zero-length messages: never NULL */

static size_t align_up(size_t x, size_t a)
{
    return (x + a - 1) & ~(a - 1);
}

static bool is_pow2(uint32_t x)
{
    return x && !(x & (x - 1));
}

static uint32_t pow2_at_least(uint32_t x)
{
    uint32_t p = 1;
    while (p < x)
        p <<= 1;
    return p;
}

static uint32_t bufs_needed(size_t len, uint32_t shift)
{
    return (uint32_t)((len + ((size_t)1 << shift) - 1) >> shift);
}

uint32_t st_chan_bufs_for(size_t max_msg, uint32_t buf_size)
{
    if (!buf_size)
        return 0;
    size_t n = (max_msg + buf_size - 1) / buf_size + ST_CHAN_EXTRA_BUFS;
    return n > ST_CHAN_BUFS_MAX ? ST_CHAN_BUFS_MAX : (uint32_t)n;
}

/* Ring index block, then the slots, each ring on its own cache lines. */
static size_t ring_bytes(uint32_t slots, uint32_t slot_size)
{
    return align_up(sizeof(st_chan_ring_idx) + (size_t)slots * slot_size, 64);
}

int st_chan_layout_make(uint32_t buf_size, uint32_t app_bufs, uint32_t stack_bufs, uint32_t ring_slots,
                        st_chan_layout *out)
{
    if (!is_pow2(buf_size) || buf_size < ST_CHAN_BUF_SIZE_MIN || buf_size > ST_CHAN_BUF_SIZE_MAX)
        return -EINVAL;
    if (!app_bufs || !stack_bufs || app_bufs > ST_CHAN_BUFS_MAX || stack_bufs > ST_CHAN_BUFS_MAX)
        return -EINVAL;
    if (!is_pow2(ring_slots) || ring_slots < 2 || ring_slots > ST_CHAN_RING_SLOTS_MAX)
        return -EINVAL;
    st_chan_layout l = {.buf_size = buf_size, .app_bufs = app_bufs, .stack_bufs = stack_bufs,
                        .ring_slots = ring_slots};
    l.buf_shift = (uint32_t)__builtin_ctz(buf_size);
    l.app_ret_slots = pow2_at_least(app_bufs);
    l.stack_ret_slots = pow2_at_least(stack_bufs);
    size_t off = align_up(sizeof(st_chan_hdr), 64);
    l.off_req = off;
    off += ring_bytes(ring_slots, sizeof(st_chan_desc));
    l.off_evt = off;
    off += ring_bytes(ring_slots, sizeof(st_chan_desc));
    l.off_app_ret = off;
    off += ring_bytes(l.app_ret_slots, sizeof(uint32_t));
    l.off_stack_ret = off;
    off += ring_bytes(l.stack_ret_slots, sizeof(uint32_t));
    l.off_link = off;
    off += (size_t)(app_bufs + stack_bufs) * sizeof(uint32_t);
    l.off_bufs = align_up(off, 4096);
    l.size = align_up(l.off_bufs + ((size_t)(app_bufs + stack_bufs) << l.buf_shift), 4096);
    *out = l;
    return 0;
}

/* ------------------------------------------------------------------ rings */

static void ring_view(st_chan_ring *r, uint8_t *base, size_t off, uint32_t slots, uint32_t slot_size)
{
    r->idx = (st_chan_ring_idx *)(base + off);
    r->slots = base + off + sizeof(st_chan_ring_idx);
    r->mask = slots - 1;
    r->slot_size = slot_size;
    r->mine = r->theirs = 0;
}

static void *ring_slot(const st_chan_ring *r, uint32_t i)
{
    return r->slots + (size_t)(i & r->mask) * r->slot_size;
}

/* Producer: free slots; the consumer's index is re-read only when the cached
 * one shows fewer than want. -EPROTO when it claims more than a ring. */
static int ring_room(st_chan_ring *r, uint32_t want)
{
    uint32_t slots = r->mask + 1;
    uint32_t used = r->mine - r->theirs;
    if (slots - used >= want)
        return (int)(slots - used);
    uint32_t c = atomic_load_explicit(&r->idx->cons, memory_order_acquire);
    used = r->mine - c;
    if (used > slots)
        return -EPROTO;
    r->theirs = c;
    return (int)(slots - used);
}

/* Consumer: entries ready, same caching and check. */
static int ring_ready(st_chan_ring *r, uint32_t want)
{
    uint32_t slots = r->mask + 1;
    uint32_t avail = r->theirs - r->mine;
    if (avail >= want)
        return (int)avail;
    uint32_t p = atomic_load_explicit(&r->idx->prod, memory_order_acquire);
    avail = p - r->mine;
    if (avail > slots)
        return -EPROTO;
    r->theirs = p;
    return (int)avail;
}

static void ring_publish(st_chan_ring *r)
{
    atomic_store_explicit(&r->idx->prod, r->mine, memory_order_release);
}

static void ring_consume(st_chan_ring *r)
{
    atomic_store_explicit(&r->idx->cons, r->mine, memory_order_release);
}

/* One read of a word the peer may be changing under us. */
static uint32_t load_word(const void *p)
{
    return *(const volatile uint32_t *)p;
}

static void desc_load(st_chan_desc *d, const void *slot)
{
    uint32_t w[6];
    for (int i = 0; i < 6; i++)
        w[i] = load_word((const uint32_t *)slot + i);
    memcpy(d, w, sizeof(w));
}

static uint8_t *buf_at(uint8_t *bufs, uint32_t shift, uint32_t b)
{
    return bufs + ((size_t)b << shift);
}

/* A validated chain as one contiguous message: the buffer itself when it is
 * alone, otherwise its n buffers copied into asm_buf (sized for max_msg). */
static const uint8_t *chain_gather(uint8_t *bufs, uint32_t shift, const uint32_t *chain, uint32_t n, size_t len,
                                   uint8_t *asm_buf)
{
    if (n == 1)
        return buf_at(bufs, shift, chain[0]);
    size_t bs = (size_t)1 << shift, off = 0;
    for (uint32_t i = 0; i < n; i++) {
        size_t chunk = len - off < bs ? len - off : bs;
        memcpy(asm_buf + off, buf_at(bufs, shift, chain[i]), chunk);
        off += chunk;
    }
    return asm_buf;
}

/* Copy len bytes into n buffers popped from free_list and chain them.
 * Returns the first buffer (ST_CHAN_NOBUF when len == 0). */
static uint32_t chain_fill(uint32_t *free_list, uint32_t *n_free, uint32_t *link, uint8_t *bufs, uint32_t shift,
                           const uint8_t *data, size_t len, uint8_t *lent, uint32_t lent_base)
{
    uint32_t n = bufs_needed(len, shift), first = ST_CHAN_NOBUF, prev = ST_CHAN_NOBUF;
    size_t bs = (size_t)1 << shift, off = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t b = free_list[--*n_free];
        size_t chunk = len - off < bs ? len - off : bs;
        memcpy(buf_at(bufs, shift, b), data + off, chunk);
        off += chunk;
        if (lent)
            lent[b - lent_base] = 1;
        if (prev == ST_CHAN_NOBUF)
            first = b;
        else
            link[prev] = b;
        prev = b;
    }
    if (prev != ST_CHAN_NOBUF)
        link[prev] = ST_CHAN_NOBUF;
    return first;
}

/* ------------------------------------------------------------------ wake */

bool st_chan_wake_needed(st_chan_wake *w)
{
    /* Pairs with the fence in st_chan_wake_sleep: either the reader sees what
     * we published, or we see it sleeping. */
    atomic_thread_fence(memory_order_seq_cst);
    if (!atomic_load_explicit(&w->sleeping, memory_order_relaxed))
        return false;
    return atomic_exchange_explicit(&w->kicked, 1, memory_order_acq_rel) == 0;
}

void st_chan_wake_sleep(st_chan_wake *w)
{
    atomic_store_explicit(&w->kicked, 0, memory_order_relaxed);
    atomic_store_explicit(&w->sleeping, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
}

void st_chan_wake_arm(st_chan_wake *w)
{
    atomic_store_explicit(&w->sleeping, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
}

void st_chan_wake_busy(st_chan_wake *w)
{
    if (atomic_load_explicit(&w->sleeping, memory_order_relaxed))
        atomic_store_explicit(&w->sleeping, 0, memory_order_relaxed);
}

/* ------------------------------------------------------------------ stack end */

static void end_views(uint8_t *base, const st_chan_layout *lay, st_chan_ring *req, st_chan_ring *evt,
                      st_chan_ring *app_ret, st_chan_ring *stack_ret)
{
    ring_view(req, base, lay->off_req, lay->ring_slots, sizeof(st_chan_desc));
    ring_view(evt, base, lay->off_evt, lay->ring_slots, sizeof(st_chan_desc));
    ring_view(app_ret, base, lay->off_app_ret, lay->app_ret_slots, sizeof(uint32_t));
    ring_view(stack_ret, base, lay->off_stack_ret, lay->stack_ret_slots, sizeof(uint32_t));
}

static uint32_t max_msg_fit(const st_chan_layout *lay, uint32_t max_msg)
{
    size_t app = (size_t)lay->app_bufs << lay->buf_shift, stack = (size_t)lay->stack_bufs << lay->buf_shift;
    size_t m = max_msg;
    if (m > app)
        m = app;
    if (m > stack)
        m = stack;
    return (uint32_t)m;
}

int st_chan_stack_init(st_chan_stack_end *e, void *base, const st_chan_layout *lay, uint32_t max_msg)
{
    memset(e, 0, sizeof(*e));
    e->base = base;
    e->lay = *lay;
    e->hdr = base;
    e->link = (uint32_t *)(e->base + lay->off_link);
    e->bufs = e->base + lay->off_bufs;
    e->max_msg = max_msg_fit(lay, max_msg);
    end_views(e->base, lay, &e->req, &e->evt, &e->app_ret, &e->stack_ret);
    e->free_list = malloc(sizeof(uint32_t) * lay->stack_bufs);
    e->lent = calloc(lay->stack_bufs, 1);
    e->seen = calloc(lay->app_bufs, sizeof(uint32_t));
    e->cur = malloc(sizeof(uint32_t) * lay->app_bufs);
    e->asm_cap = e->max_msg > lay->buf_size ? e->max_msg : 0;
    e->asm_buf = e->asm_cap ? malloc(e->asm_cap) : NULL;
    if (!e->free_list || !e->lent || !e->seen || !e->cur || (e->asm_cap && !e->asm_buf)) {
        st_chan_stack_fini(e);
        return -ENOMEM;
    }
    /* Lowest indices on top: a quiet channel touches few pages. */
    for (uint32_t i = 0; i < lay->stack_bufs; i++)
        e->free_list[i] = lay->app_bufs + lay->stack_bufs - 1 - i;
    e->n_free = lay->stack_bufs;
    st_chan_hdr *h = e->hdr;
    h->buf_size = lay->buf_size;
    h->app_bufs = lay->app_bufs;
    h->stack_bufs = lay->stack_bufs;
    h->ring_slots = lay->ring_slots;
    h->max_msg = e->max_msg;
    h->size = lay->size;
    h->version = ST_CHAN_VERSION;
    h->magic = ST_CHAN_MAGIC;
    return 0;
}

void st_chan_stack_fini(st_chan_stack_end *e)
{
    free(e->free_list);
    free(e->lent);
    free(e->seen);
    free(e->cur);
    free(e->asm_buf);
    memset(e, 0, sizeof(*e));
}

/* Walk a send's chain: every buffer in the app half, none twice, exactly as
 * many as len needs. Leaves the buffers in e->cur. */
static int stack_gather(st_chan_stack_end *e, uint32_t first, size_t len, const uint8_t **data)
{
    uint32_t shift = e->lay.buf_shift, n = bufs_needed(len, shift);
    if (n == 0) {
        *data = empty_msg;
        return 0;
    }
    if (++e->seen_epoch == 0) {
        memset(e->seen, 0, sizeof(uint32_t) * e->lay.app_bufs);
        e->seen_epoch = 1;
    }
    uint32_t b = first;
    for (uint32_t i = 0; i < n; i++) {
        if (b >= e->lay.app_bufs || e->seen[b] == e->seen_epoch)
            return -EPROTO;
        e->seen[b] = e->seen_epoch;
        e->cur[e->n_cur++] = b;
        if (i + 1 < n)
            b = load_word(&e->link[b]);
    }
    *data = chain_gather(e->bufs, shift, e->cur + e->n_cur - n, n, len, e->asm_buf);
    return 0;
}

int st_chan_stack_next_req(st_chan_stack_end *e, st_chan_req *out)
{
    if (e->n_cur) {
        int rc = st_chan_stack_req_done(e);
        if (rc < 0)
            return rc;
    }
    int n = ring_ready(&e->req, 1);
    if (n <= 0)
        return n;
    st_chan_desc d;
    desc_load(&d, ring_slot(&e->req, e->req.mine));
    e->req.mine++;
    ring_consume(&e->req);
    e->app_dirty = true;
    *out = (st_chan_req){.type = d.type, .port = d.port, .handle = d.handle, .ip = d.ip};
    switch (d.type) {
    case ST_CHAN_REQ_CONNECT:
        if (d.handle == 0 || d.handle > ST_CHAN_HANDLE_LIB_MAX || d.len)
            return -EPROTO;
        return 1;
    case ST_CHAN_REQ_CLOSE:
    case ST_CHAN_REQ_ABORT:
        if (d.handle == 0 || d.len)
            return -EPROTO;
        return 1;
    case ST_CHAN_REQ_SEND:
        if (d.handle == 0 || d.len > e->max_msg)
            return -EPROTO;
        out->len = d.len;
        return stack_gather(e, d.buf, d.len, &out->data) < 0 ? -EPROTO : 1;
    default:
        return -EPROTO;
    }
}

int st_chan_stack_req_done(st_chan_stack_end *e)
{
    if (!e->n_cur)
        return 0;
    /* The return ring holds every app buffer at once, so a full one means the
     * app handed us a buffer twice. */
    int room = ring_room(&e->app_ret, e->n_cur);
    if (room < 0 || (uint32_t)room < e->n_cur)
        return -EPROTO;
    for (uint32_t i = 0; i < e->n_cur; i++) {
        *(uint32_t *)ring_slot(&e->app_ret, e->app_ret.mine) = e->cur[i];
        e->app_ret.mine++;
    }
    ring_publish(&e->app_ret);
    e->n_cur = 0;
    e->app_dirty = true;
    return 0;
}

int st_chan_stack_reclaim(st_chan_stack_end *e)
{
    int n = ring_ready(&e->stack_ret, 1);
    if (n <= 0)
        return n;
    uint32_t lo = e->lay.app_bufs;
    for (int i = 0; i < n; i++) {
        uint32_t b = load_word(ring_slot(&e->stack_ret, e->stack_ret.mine));
        e->stack_ret.mine++;
        if (b < lo || b - lo >= e->lay.stack_bufs || !e->lent[b - lo]) {
            ring_consume(&e->stack_ret);
            return -EPROTO;
        }
        e->lent[b - lo] = 0;
        e->free_list[e->n_free++] = b;
    }
    ring_consume(&e->stack_ret);
    return 0;
}

int st_chan_stack_put_event(st_chan_stack_end *e, const st_chan_desc *d, const uint8_t *data)
{
    if (d->len > e->max_msg)
        return -EMSGSIZE;
    uint32_t n = bufs_needed(d->len, e->lay.buf_shift);
    int room = ring_room(&e->evt, 1);
    if (room <= 0)
        return room < 0 ? room : -EAGAIN;
    if (e->n_free < n) {
        int rc = st_chan_stack_reclaim(e);
        if (rc < 0)
            return rc;
        if (e->n_free < n)
            return -EAGAIN;
    }
    st_chan_desc out = *d;
    out.buf = chain_fill(e->free_list, &e->n_free, e->link, e->bufs, e->lay.buf_shift, data, d->len, e->lent,
                         e->lay.app_bufs);
    memcpy(ring_slot(&e->evt, e->evt.mine), &out, sizeof(out));
    e->evt.mine++;
    ring_publish(&e->evt);
    e->app_dirty = true;
    return 0;
}

int st_chan_stack_pending(st_chan_stack_end *e)
{
    int n = ring_ready(&e->req, 1);
    if (n != 0)
        return n < 0 ? n : 1;
    n = ring_ready(&e->stack_ret, 1);
    return n < 0 ? n : n > 0;
}

/* ------------------------------------------------------------------ app end */

int st_chan_app_init(st_chan_app_end *e, void *base, size_t size)
{
    memset(e, 0, sizeof(*e));
    if (size < sizeof(st_chan_hdr))
        return -EPROTO;
    const st_chan_hdr *h = base;
    st_chan_layout lay;
    if (h->magic != ST_CHAN_MAGIC || h->version != ST_CHAN_VERSION ||
        st_chan_layout_make(h->buf_size, h->app_bufs, h->stack_bufs, h->ring_slots, &lay) < 0 ||
        lay.size != size || h->size != size || h->max_msg != max_msg_fit(&lay, h->max_msg))
        return -EPROTO;
    e->base = base;
    e->lay = lay;
    e->hdr = base;
    e->link = (uint32_t *)(e->base + lay.off_link);
    e->bufs = e->base + lay.off_bufs;
    e->max_msg = h->max_msg;
    end_views(e->base, &lay, &e->req, &e->evt, &e->app_ret, &e->stack_ret);
    e->free_list = malloc(sizeof(uint32_t) * lay.app_bufs);
    e->held = malloc(sizeof(uint32_t) * lay.stack_bufs);
    e->asm_cap = e->max_msg > lay.buf_size ? e->max_msg : 0;
    e->asm_buf = e->asm_cap ? malloc(e->asm_cap) : NULL;
    if (!e->free_list || !e->held || (e->asm_cap && !e->asm_buf)) {
        st_chan_app_fini(e);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < lay.app_bufs; i++)
        e->free_list[i] = lay.app_bufs - 1 - i;
    e->n_free = lay.app_bufs;
    return 0;
}

void st_chan_app_fini(st_chan_app_end *e)
{
    free(e->free_list);
    free(e->held);
    free(e->asm_buf);
    memset(e, 0, sizeof(*e));
}

static int app_reclaim(st_chan_app_end *e)
{
    int n = ring_ready(&e->app_ret, 1);
    if (n <= 0)
        return n;
    for (int i = 0; i < n; i++) {
        uint32_t b = load_word(ring_slot(&e->app_ret, e->app_ret.mine));
        e->app_ret.mine++;
        if (b >= e->lay.app_bufs || e->n_free >= e->lay.app_bufs) {
            ring_consume(&e->app_ret);
            return -EPROTO;
        }
        e->free_list[e->n_free++] = b;
    }
    ring_consume(&e->app_ret);
    return 0;
}

bool st_chan_app_has_room(st_chan_app_end *e, size_t len)
{
    uint32_t n = bufs_needed(len, e->lay.buf_shift);
    if (ring_room(&e->req, 1) <= 0)
        return false;
    if (e->n_free < n && app_reclaim(e) < 0)
        return false;
    return e->n_free >= n;
}

int st_chan_app_put_req(st_chan_app_end *e, const st_chan_desc *d, const void *data)
{
    if (d->len > e->max_msg)
        return -EMSGSIZE;
    uint32_t n = bufs_needed(d->len, e->lay.buf_shift);
    int room = ring_room(&e->req, 1);
    if (room <= 0)
        return room < 0 ? room : -EAGAIN;
    if (e->n_free < n) {
        int rc = app_reclaim(e);
        if (rc < 0)
            return rc;
        if (e->n_free < n)
            return -EAGAIN;
    }
    st_chan_desc out = *d;
    out.buf = chain_fill(e->free_list, &e->n_free, e->link, e->bufs, e->lay.buf_shift, data, d->len, NULL, 0);
    memcpy(ring_slot(&e->req, e->req.mine), &out, sizeof(out));
    e->req.mine++;
    ring_publish(&e->req);
    return 0;
}

int st_chan_app_release(st_chan_app_end *e)
{
    if (!e->n_held)
        return 0;
    int room = ring_room(&e->stack_ret, e->n_held);
    if (room < 0 || (uint32_t)room < e->n_held)
        return -EPROTO;
    for (uint32_t i = 0; i < e->n_held; i++) {
        *(uint32_t *)ring_slot(&e->stack_ret, e->stack_ret.mine) = e->held[i];
        e->stack_ret.mine++;
    }
    ring_publish(&e->stack_ret);
    e->n_held = 0;
    return 0;
}

/* A message's chain: in the stack half, as long as len needs. */
static int app_gather(st_chan_app_end *e, uint32_t first, size_t len, const uint8_t **data)
{
    uint32_t shift = e->lay.buf_shift, n = bufs_needed(len, shift), lo = e->lay.app_bufs;
    if (n == 0) {
        *data = empty_msg;
        return 0;
    }
    uint32_t b = first;
    for (uint32_t i = 0; i < n; i++) {
        if (b < lo || b - lo >= e->lay.stack_bufs || e->n_held >= e->lay.stack_bufs)
            return -EPROTO;
        e->held[e->n_held++] = b;
        if (i + 1 < n)
            b = load_word(&e->link[b]);
    }
    *data = chain_gather(e->bufs, shift, e->held + e->n_held - n, n, len, e->asm_buf);
    return 0;
}

int st_chan_app_next_event(st_chan_app_end *e, st_chan_desc *d, const uint8_t **data)
{
    int rc = st_chan_app_release(e);
    if (rc < 0)
        return rc;
    int n = ring_ready(&e->evt, 1);
    if (n <= 0)
        return n;
    desc_load(d, ring_slot(&e->evt, e->evt.mine));
    e->evt.mine++;
    ring_consume(&e->evt);
    *data = NULL;
    if (d->type == RS_EV_MSG)
        return d->len > e->max_msg || app_gather(e, d->buf, d->len, data) < 0 ? -EPROTO : 1;
    if (d->type < RS_EV_MSG || d->type > RS_EV_CLOSED || d->len)
        return -EPROTO;
    return 1;
}

bool st_chan_app_pending(st_chan_app_end *e)
{
    return ring_ready(&e->evt, 1) != 0;
}
