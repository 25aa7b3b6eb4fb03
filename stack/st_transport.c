/* st_transport.c — reliable in-order messages over rift packets, as a pure
 * state machine (see st_transport.h for the contract).
 *
 * Sequence space: every DATA packet and the FIN take one packet sequence
 * number; SYN and SYN|ACK carry the sender's initial sequence number (ISN), the
 * seq of its first DATA packet. ack = the highest seq such that everything up
 * to it arrived (ISN - 1 before any); SACK bit i = packet ack+1+i arrived.
 *
 * Sender: messages wait in a bounded ring (msgs[]) until every fragment is
 * acked. Each packet in flight has an entry in sent[] (indexed by seq, a power
 * of two ring) with its send time, transmission count and SACK/lost marks.
 * pipe = packets in flight neither SACKed nor marked lost (RFC 6675's "pipe");
 * we send while pipe < cwnd, retransmitting lost packets before new ones.
 *
 * Loss detection is by time (RACK, RFC 8985), not by counting: of the packets
 * known delivered we remember the one sent last (rack_*) and its RTT; any
 * packet sent before it that is still missing rack_rtt + reo_wnd after its own
 * transmission is lost. That treats a lost retransmission like any other loss
 * (counting rules cannot: a retransmission has nothing "above" it), and a
 * reordering window measured from the reordering actually seen keeps jitter
 * from looking like loss. Without a DSACK or timestamp option, spurious
 * retransmissions are recognised by time: an ack that comes back sooner than
 * min_rtt after a retransmission was sent answers the original.
 *
 * Receiver: an in-order packet is reassembled at once (a one-fragment message
 * is delivered straight from the packet); a packet ahead of a gap waits in
 * ooo[] (a ring of rx_window slots) until the gap fills. A multi-fragment
 * message reserves its whole size from rx_mem_bytes on its first fragment, so
 * a started message can always finish and memory never grows past the budget.
 *
 * Re-entrancy: callbacks may send, close or abort. A flow that dies is marked
 * FLOW_DEAD and freed when the outermost API call returns, so no caller up the
 * stack is left holding a freed flow; code after each callback checks the mark. */
#include "st_transport.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FLOW_DEAD 0xff
#define SLOT_BITS 16
#define SLOT_MASK 0xffffu
#define RTT_SAMPLE_MAX_US 60000000u /* clamp absurd samples (clock jumps) */
#define MIN_RTT_WINDOW_US 10000000u /* min_rtt forgets older samples (paths change) */
#define SACK_BITS 64u

typedef struct st_msg {
    uint8_t *data;
    uint32_t len;
    uint32_t msg_id;
    uint32_t first_seq;  /* seq of fragment 0, once sent */
    uint16_t frag_cnt;
    uint16_t frags_sent; /* fragments given a sequence number */
    bool fin;            /* the FIN pseudo-message: one packet, no payload */
} st_msg;

typedef struct st_sent {
    uint64_t msg_abs;    /* absolute index into msgs[] */
    uint64_t sent_us;    /* last transmission */
    uint64_t first_us;   /* first transmission */
    uint16_t frag;
    uint8_t xmits;       /* saturating; 1 = never retransmitted (Karn) */
    bool sacked;
    bool lost;           /* marked lost, waiting for retransmission */
    bool rto_lost;       /* lost because of an RTO, not resent yet: undone if the RTO was spurious */
    bool spurious;       /* a retransmission of it proved unneeded (counted once) */
} st_sent;

typedef struct st_ooo {
    uint32_t seq;
    uint32_t msg_id;
    uint16_t frag_idx, frag_cnt, len;
    uint8_t flags;
    uint8_t payload[];
} st_ooo;

/* A packet at the head of the receive sequence, from the wire or from ooo[]. */
typedef struct rx_item {
    uint8_t flags;
    uint32_t msg_id;
    uint16_t frag_idx, frag_cnt, len;
    const uint8_t *payload;
} rx_item;

typedef enum rx_result { RX_OK = 0, RX_STALL, RX_DEAD } rx_result;

typedef struct st_flow st_flow;
struct st_flow {
    st_flow *prev, *next;        /* live list, creation order */
    uint32_t id, remote_id;      /* remote_id 0 until the SYN|ACK */
    uint8_t state;               /* st_flow_state or FLOW_DEAD */
    bool passive;                /* created by a SYN to a listening port */
    bool closing;                /* FIN queued */
    bool fin_acked;
    bool fast_now;               /* fast retransmit: one packet regardless of cwnd */
    uint16_t local_port, remote_port;
    uint32_t remote_ip;
    /* handshake */
    uint64_t hs_sent_us;
    uint32_t hs_xmits;
    /* sender */
    uint32_t isn, snd_una, snd_nxt, peer_wnd;
    uint32_t cwnd, ssthresh, ca_acc, pipe, lost_cnt, sacked_cnt, dupacks;
    bool recover_active, fast_recovery;
    uint32_t recover;            /* snd_nxt when the loss episode began */
    uint64_t rto_deadline;       /* 0: unarmed */
    uint32_t rto_fails, backoff;
    bool have_rtt;
    uint64_t srtt8, rttvar8;     /* µs × 8 */
    uint64_t min_rtt_us, min_rtt_at;
    /* RACK: the packet delivered that was sent last, and its round trip */
    bool rack_valid;
    uint64_t rack_xmit_us, rack_rtt_us;
    uint32_t rack_seq;
    uint32_t fack;               /* highest seq known delivered (snd_una - 1 at least) */
    bool reo_seen;               /* a packet arrived after one sent later */
    uint64_t reo_extent_us;      /* how late such packets were, beyond rack_rtt */
    uint64_t reo_deadline;       /* re-run loss detection (0: unarmed) */
    /* undo of a loss episode that proves spurious */
    bool undo_armed, undo_now;
    uint32_t undo_cwnd, undo_ssthresh, undo_retrans;
    bool rto_episode;            /* the episode began with an RTO at rto_at_us */
    uint64_t rto_at_us;
    st_msg *msgs;
    uint64_t msg_head, msg_send, msg_tail; /* acked < head <= send (segmenting) <= tail */
    uint64_t tx_bytes;
    uint32_t next_msg_id;
    st_sent *sent;
    /* receiver */
    uint32_t rcv_nxt;
    st_ooo **ooo;
    uint32_t ooo_cnt;
    uint8_t *asm_buf;
    uint64_t asm_reserved;
    uint32_t asm_len, asm_msg_id;
    uint16_t asm_cnt, asm_next;
    bool asm_active;
    uint32_t rx_next_msg_id;
    uint64_t rx_mem;
    uint32_t ack_pending;
    uint64_t ack_deadline;       /* 0: none */
    bool ack_now;
    bool dsack_pending;          /* report dsack_seq: it arrived twice */
    uint32_t dsack_seq;
    uint64_t linger_until;
};

struct st_transport {
    st_config cfg;
    st_env env;
    uint32_t local_ip;
    uint16_t listen[ST_TRANSPORT_MAX_LISTEN];
    uint32_t n_listen;
    st_flow **slots;
    uint16_t *gen;
    uint32_t *free_slots;
    uint32_t n_free;
    st_flow *live_head, *live_tail;
    uint32_t n_dead;
    int depth;
    uint64_t now;
    uint16_t next_port;
    uint64_t tx_mem, rx_mem;
    st_transport_stats st;
};

/* ---- small helpers ---- */

static bool seq_lt(uint32_t a, uint32_t b)
{
    return (int32_t)(a - b) < 0;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

static bool is_pow2(uint32_t x)
{
    return x && !(x & (x - 1));
}

static bool ip_unicast(uint32_t ip)
{
    return ip != 0 && ip != 0xffffffffu && (ip >> 28) != 0xe;
}

static uint32_t max_frags(const st_transport *t)
{
    uint32_t n = (t->cfg.max_msg_bytes + ST_WIRE_PAYLOAD_MAX - 1) / ST_WIRE_PAYLOAD_MAX;
    return n ? n : 1;
}

static st_msg *msg_at(const st_transport *t, const st_flow *f, uint64_t abs)
{
    return &f->msgs[abs % t->cfg.tx_queue_msgs];
}

static st_sent *sent_at(const st_transport *t, const st_flow *f, uint32_t seq)
{
    return &f->sent[seq & (t->cfg.max_inflight - 1)];
}

static uint32_t ooo_idx(const st_transport *t, uint32_t seq)
{
    return seq & (t->cfg.rx_window - 1);
}

/* ---- configuration ---- */

void st_config_default(st_config *c)
{
    memset(c, 0, sizeof(*c));
    c->max_flows = 256;
    c->max_msg_bytes = ST_WIRE_MSG_MAX;
    c->max_inflight = 256;
    c->rx_window = 256;
    c->tx_queue_msgs = 1024;
    c->tx_queue_bytes = 32u << 20;
    c->tx_mem_bytes = 256u << 20;
    c->rx_mem_bytes = 128u << 20;
    c->cwnd_init = 16;
    c->cwnd_min = 16;
    /* LAN/VM scale, but above a loaded host's scheduling hiccups (several ms):
     * a flow never stalls longer than rto_max, and a dead peer is declared
     * after ~0.87-1.7 s (16 expiries: 7 x 2, then 4, 8, ... 128, then 200 ms). */
    c->rto_initial_us = 10000;
    c->rto_min_us = 2000;
    c->rto_max_us = 200000;
    c->rto_linear = 6;
    c->max_rto_failures = 16;
    c->ack_delay_us = 20;
    c->ack_every = 2;
    c->dupthresh = 3;
    c->linger_us = 10000;
    c->ephemeral_lo = 49152;
    c->ephemeral_hi = 65535;
}

#define CHECK(cond, ...)                              \
    do {                                              \
        if (!(cond)) {                                \
            if (err && errlen)                        \
                snprintf(err, errlen, __VA_ARGS__);   \
            return -EINVAL;                           \
        }                                             \
    } while (0)

int st_config_check(const st_config *c, char *err, size_t errlen)
{
    CHECK(c->max_flows >= 1 && c->max_flows <= ST_TRANSPORT_MAX_FLOWS, "max_flows: 1..%u", ST_TRANSPORT_MAX_FLOWS);
    CHECK(c->max_msg_bytes >= 1 && c->max_msg_bytes <= ST_WIRE_MSG_MAX, "max_msg_bytes: 1..%u", ST_WIRE_MSG_MAX);
    CHECK(is_pow2(c->max_inflight) && c->max_inflight <= 32768, "max_inflight: a power of two up to 32768");
    CHECK(is_pow2(c->rx_window) && c->rx_window <= 32768, "rx_window: a power of two up to 32768");
    CHECK(c->tx_queue_msgs >= 2 && c->tx_queue_msgs <= (1u << 20), "tx_queue_msgs: 2..1048576");
    CHECK(c->tx_queue_bytes >= c->max_msg_bytes, "tx_queue_bytes: at least max_msg_bytes");
    CHECK(c->tx_mem_bytes >= c->tx_queue_bytes, "tx_mem_bytes: at least tx_queue_bytes");
    /* A message reserves frag_cnt full packets: one largest message must fit. */
    CHECK(c->rx_mem_bytes >= ((uint64_t)c->max_msg_bytes + ST_WIRE_PAYLOAD_MAX - 1) / ST_WIRE_PAYLOAD_MAX *
                                 ST_WIRE_PAYLOAD_MAX,
          "rx_mem_bytes: must hold one max_msg_bytes message");
    CHECK(c->cwnd_init >= 1 && c->cwnd_init <= c->max_inflight, "cwnd_init: 1..max_inflight");
    CHECK(c->cwnd_min >= 1 && c->cwnd_min <= c->max_inflight, "cwnd_min: 1..max_inflight");
    CHECK(c->rto_min_us >= 1, "rto_min_us: at least 1");
    CHECK(c->rto_initial_us >= c->rto_min_us, "rto_initial_us: at least rto_min_us");
    CHECK(c->rto_max_us >= c->rto_initial_us, "rto_max_us: at least rto_initial_us");
    CHECK(c->max_rto_failures >= 1 && c->max_rto_failures <= 64, "max_rto_failures: 1..64");
    CHECK(c->rto_linear <= 64, "rto_linear: 0..64");
    CHECK(c->ack_delay_us < c->rto_min_us, "ack_delay_us: below rto_min_us");
    CHECK(c->ack_every >= 1 && c->ack_every <= 64, "ack_every: 1..64");
    CHECK(c->dupthresh >= 1 && c->dupthresh < SACK_BITS, "dupthresh: 1..63");
    CHECK(c->ephemeral_lo >= 1 && c->ephemeral_lo <= c->ephemeral_hi, "ephemeral ports: 1 <= lo <= hi");
    return 0;
}

#undef CHECK

const char *st_event_kind_name(int k)
{
    switch (k) {
    case ST_EV_ESTABLISHED: return "established";
    case ST_EV_ACCEPTED: return "accepted";
    case ST_EV_RESET: return "reset";
    case ST_EV_CLOSED: return "closed";
    default: return "unknown";
    }
}

const char *st_reset_reason_name(int r)
{
    switch (r) {
    case ST_RESET_TIMEOUT: return "timeout";
    case ST_RESET_PEER: return "peer";
    case ST_RESET_REFUSED: return "refused";
    case ST_RESET_PROTOCOL: return "protocol";
    default: return "unknown";
    }
}

/* ---- memory accounting ---- */

static bool rx_mem_take(st_transport *t, st_flow *f, uint64_t n)
{
    if (t->rx_mem + n > t->cfg.rx_mem_bytes)
        return false;
    t->rx_mem += n;
    f->rx_mem += n;
    return true;
}

static void rx_mem_give(st_transport *t, st_flow *f, uint64_t n)
{
    assert(t->rx_mem >= n && f->rx_mem >= n);
    t->rx_mem -= n;
    f->rx_mem -= n;
}

static void msg_free(st_transport *t, st_flow *f, st_msg *m)
{
    assert(f->tx_bytes >= m->len && t->tx_mem >= m->len);
    f->tx_bytes -= m->len;
    t->tx_mem -= m->len;
    free(m->data);
    memset(m, 0, sizeof(*m));
}

static void msgs_drop(st_transport *t, st_flow *f)
{
    for (uint64_t a = f->msg_head; a != f->msg_tail; a++)
        msg_free(t, f, msg_at(t, f, a));
    f->msg_head = f->msg_send = f->msg_tail;
    f->snd_una = f->snd_nxt;
    f->pipe = f->lost_cnt = f->sacked_cnt = 0;
    f->rto_deadline = f->reo_deadline = 0;
}

static void ooo_drop(st_transport *t, st_flow *f)
{
    for (uint32_t i = 0; f->ooo_cnt && i < t->cfg.rx_window; i++) {
        st_ooo *o = f->ooo[i];
        if (!o)
            continue;
        rx_mem_give(t, f, sizeof(*o) + o->len);
        free(o);
        f->ooo[i] = NULL;
        f->ooo_cnt--;
    }
}

/* ---- flow table ---- */

static st_flow *flow_get(const st_transport *t, uint32_t id)
{
    uint32_t slot = id & SLOT_MASK;
    if (id == 0 || slot >= t->cfg.max_flows)
        return NULL;
    st_flow *f = t->slots[slot];
    if (!f || f->id != id || f->state == FLOW_DEAD)
        return NULL;
    return f;
}

static void flow_free_mem(st_flow *f)
{
    free(f->msgs);
    free(f->sent);
    free(f->ooo);
    free(f);
}

static void flow_init_sender(st_transport *t, st_flow *f)
{
    f->isn = t->env.rng ? (uint32_t)rift_rng_next(t->env.rng) : 1;
    f->snd_una = f->snd_nxt = f->isn;
    f->fack = f->isn - 1;
    f->cwnd = t->cfg.cwnd_init;
    f->ssthresh = t->cfg.max_inflight;
    f->peer_wnd = 1;
}

/* A fresh flow in the table, or NULL with *err = -ENOSPC / -ENOMEM. */
static st_flow *flow_new(st_transport *t, int *err)
{
    if (t->n_free == 0) {
        *err = -ENOSPC;
        return NULL;
    }
    st_flow *f = calloc(1, sizeof(*f));
    if (f) {
        f->msgs = calloc(t->cfg.tx_queue_msgs, sizeof(*f->msgs));
        f->sent = calloc(t->cfg.max_inflight, sizeof(*f->sent));
        f->ooo = calloc(t->cfg.rx_window, sizeof(*f->ooo));
    }
    if (!f || !f->msgs || !f->sent || !f->ooo) {
        if (f)
            flow_free_mem(f);
        *err = -ENOMEM;
        return NULL;
    }
    uint32_t slot = t->free_slots[--t->n_free];
    assert(slot < t->cfg.max_flows && !t->slots[slot]);
    f->id = (uint32_t)t->gen[slot] << SLOT_BITS | slot;
    t->slots[slot] = f;
    f->prev = t->live_tail;
    if (t->live_tail)
        t->live_tail->next = f;
    else
        t->live_head = f;
    t->live_tail = f;
    flow_init_sender(t, f);
    t->st.flows_opened++;
    t->st.flows_active++;
    return f;
}

static void flow_release(st_transport *t, st_flow *f)
{
    assert(f->state == FLOW_DEAD);
    msgs_drop(t, f);
    ooo_drop(t, f);
    if (f->asm_buf) {
        rx_mem_give(t, f, f->asm_reserved);
        free(f->asm_buf);
    }
    assert(f->rx_mem == 0 && f->tx_bytes == 0);
    if (f->prev)
        f->prev->next = f->next;
    else
        t->live_head = f->next;
    if (f->next)
        f->next->prev = f->prev;
    else
        t->live_tail = f->prev;
    uint32_t slot = f->id & SLOT_MASK;
    t->slots[slot] = NULL;
    if (++t->gen[slot] == 0)
        t->gen[slot] = 1; /* ids are never 0 */
    t->free_slots[t->n_free++] = slot;
    t->st.flows_active--;
    flow_free_mem(f);
}

/* Mark dead; memory goes when the outermost API call returns. */
static void flow_kill(st_transport *t, st_flow *f)
{
    assert(f->state != FLOW_DEAD);
    f->state = FLOW_DEAD;
    f->rto_deadline = f->ack_deadline = f->reo_deadline = 0;
    t->n_dead++;
}

static void reap(st_transport *t)
{
    st_flow *f = t->live_head;
    while (f && t->n_dead) {
        st_flow *next = f->next;
        if (f->state == FLOW_DEAD) {
            flow_release(t, f);
            t->n_dead--;
        }
        f = next;
    }
    assert(t->n_dead == 0);
}

static void enter(st_transport *t, uint64_t now_us)
{
    t->depth++;
    t->now = max_u64(t->now, now_us); /* time never runs backwards in here */
}

static void leave(st_transport *t)
{
    assert(t->depth > 0);
    if (--t->depth == 0 && t->n_dead)
        reap(t);
}

static bool dead(const st_flow *f)
{
    return f->state == FLOW_DEAD;
}

/* ---- invariants ---- */

static void flow_check(const st_transport *t, const st_flow *f)
{
#ifndef NDEBUG
    if (dead(f) || f->state == ST_FLOW_LINGER)
        return;
    uint32_t out = f->snd_nxt - f->snd_una;
    assert(out <= t->cfg.max_inflight);
    uint32_t pipe = 0, lost = 0, sacked = 0;
    for (uint32_t s = f->snd_una; s != f->snd_nxt; s++) {
        const st_sent *e = sent_at(t, f, s);
        assert(!(e->sacked && e->lost));
        assert(!e->rto_lost || e->lost);
        pipe += !e->sacked && !e->lost;
        lost += e->lost;
        sacked += e->sacked;
    }
    assert(pipe == f->pipe && lost == f->lost_cnt && sacked == f->sacked_cnt);
    assert(!seq_lt(f->fack + 1, f->snd_una) && seq_lt(f->fack, f->snd_nxt));
    assert(f->msg_head <= f->msg_send && f->msg_send <= f->msg_tail);
    assert(f->msg_tail - f->msg_head <= t->cfg.tx_queue_msgs);
    assert(f->ooo_cnt <= t->cfg.rx_window);
    assert(f->cwnd >= 1 && f->cwnd <= t->cfg.max_inflight);
#else
    (void)t;
    (void)f;
#endif
}

/* ---- output ---- */

static void emit(st_transport *t, const st_flow *f, uint8_t kind, uint8_t reason)
{
    if (!t->env.event)
        return;
    st_event e = {
        .kind = kind, .reason = reason, .flow = f->id, .local_port = f->local_port,
        .remote_ip = f->remote_ip, .remote_port = f->remote_port, .time_us = t->now,
    };
    t->env.event(t->env.ctx, &e);
}

static uint64_t sack_bits(const st_transport *t, const st_flow *f)
{
    if (!f->ooo_cnt)
        return 0;
    uint64_t bits = 0;
    uint32_t n = (uint32_t)min_u64(SACK_BITS, t->cfg.rx_window);
    for (uint32_t i = 1; i < n; i++) {
        uint32_t seq = f->rcv_nxt + i;
        const st_ooo *o = f->ooo[ooo_idx(t, seq)];
        if (o && o->seq == seq)
            bits |= 1ull << i;
    }
    return bits;
}

static void pkt_base(const st_transport *t, const st_flow *f, st_pkt *p, uint8_t flags, uint32_t seq)
{
    memset(p, 0, sizeof(*p));
    p->ethertype = ST_ETHERTYPE_IPV4;
    p->ip_src = t->local_ip;
    p->ip_dst = f->remote_ip;
    p->udp_src = f->local_port;
    p->udp_dst = f->remote_port;
    p->hdr.version = ST_RIFT_VERSION;
    p->hdr.flags = flags;
    p->hdr.src_flow = f->id;
    p->hdr.dst_flow = f->remote_id;
    p->hdr.seq = seq;
    p->hdr.window = (uint16_t)t->cfg.rx_window;
}

static void tx_raw(st_transport *t, const st_pkt *p)
{
    /* We never emit what st_wire would reject (asserted here and in build). */
    assert(st_wire_hdr_check(&p->hdr, p->payload_len) == ST_WIRE_OK);
    t->st.tx_packets++;
    t->env.tx(t->env.ctx, p);
}

/* Every packet after SYN_SENT carries our receive state; sending it settles
 * any pending ack. */
static void tx_flow(st_transport *t, st_flow *f, st_pkt *p)
{
    if (f->state != ST_FLOW_SYN_SENT) {
        p->hdr.flags |= ST_F_ACK;
        p->hdr.ack = f->rcv_nxt - 1;
        p->hdr.sack = sack_bits(t, f);
        f->ack_pending = 0;
        f->ack_deadline = 0;
        f->ack_now = false;
        /* DSACK: a packet without data has no message id, so there the field
         * names a sequence that arrived twice, as an offset from ack + 1 (which
         * cannot be a duplicate, so 0 means none). A DATA packet cannot carry
         * it: a pure ack follows. */
        if (f->dsack_pending) {
            if (p->hdr.flags & ST_F_DATA) {
                f->ack_now = true;
            } else {
                p->hdr.msg_id = f->dsack_seq - f->rcv_nxt;
                f->dsack_pending = false;
            }
        }
    }
    tx_raw(t, p);
}

static void send_ack(st_transport *t, st_flow *f)
{
    st_pkt p;
    pkt_base(t, f, &p, 0, f->snd_nxt);
    t->st.tx_acks++;
    tx_flow(t, f, &p);
}

/* SYN (SYN_SENT) or SYN|ACK (SYN_RCVD; tx_flow adds the ACK). */
static void send_syn(st_transport *t, st_flow *f)
{
    st_pkt p;
    pkt_base(t, f, &p, ST_F_SYN, f->isn);
    f->hs_sent_us = t->now;
    f->hs_xmits++;
    tx_flow(t, f, &p);
}

static void send_rst(st_transport *t, const st_flow *f)
{
    st_pkt p;
    pkt_base(t, f, &p, ST_F_RST, f->snd_nxt);
    t->st.tx_rsts++;
    tx_raw(t, &p);
}

/* Answer a packet for no flow of ours. Never answer an RST (no RST storms)
 * and never to an address that is not unicast. */
static void rst_reply(st_transport *t, const st_pkt *in)
{
    if ((in->hdr.flags & ST_F_RST) || !ip_unicast(in->ip_src))
        return;
    st_pkt p;
    memset(&p, 0, sizeof(p));
    p.ethertype = ST_ETHERTYPE_IPV4;
    p.ip_src = t->local_ip;
    p.ip_dst = in->ip_src;
    p.udp_src = in->udp_dst;
    p.udp_dst = in->udp_src;
    p.hdr.version = ST_RIFT_VERSION;
    p.hdr.flags = ST_F_RST;
    p.hdr.src_flow = in->hdr.dst_flow;
    p.hdr.dst_flow = in->hdr.src_flow;
    t->st.tx_rsts++;
    tx_raw(t, &p);
}

/* ---- RTT and RTO ---- */

static uint64_t rto_base(const st_transport *t, const st_flow *f)
{
    if (!f->have_rtt)
        return t->cfg.rto_initial_us;
    return max_u64((f->srtt8 + 4 * f->rttvar8) / 8, t->cfg.rto_min_us);
}

static uint64_t rto_cur(const st_transport *t, const st_flow *f)
{
    uint64_t r = min_u64(rto_base(t, f), t->cfg.rto_max_us);
    uint32_t b = f->backoff < 31 ? f->backoff : 31;
    return min_u64(r << b, t->cfg.rto_max_us);
}

/* RFC 6298 with µs × 8 fixed point. Callers pass only clean samples (Karn). */
static void rtt_update(const st_transport *t, st_flow *f, uint64_t r)
{
    uint64_t r8 = min_u64(r, RTT_SAMPLE_MAX_US) * 8;
    if (!f->have_rtt || r <= f->min_rtt_us || t->now - f->min_rtt_at > MIN_RTT_WINDOW_US) {
        f->min_rtt_us = min_u64(r, RTT_SAMPLE_MAX_US);
        f->min_rtt_at = t->now;
    }
    if (!f->have_rtt) {
        f->srtt8 = r8;
        f->rttvar8 = r8 / 2;
        f->have_rtt = true;
    } else {
        uint64_t d = f->srtt8 > r8 ? f->srtt8 - r8 : r8 - f->srtt8;
        f->rttvar8 = f->rttvar8 - f->rttvar8 / 4 + d / 4;
        f->srtt8 = f->srtt8 - f->srtt8 / 8 + r8 / 8;
    }
    f->backoff = 0; /* a clean sample ends the backoff */
}

static void rtt_sample(const st_transport *t, st_flow *f, uint64_t sent_us)
{
    rtt_update(t, f, t->now > sent_us ? t->now - sent_us : 0);
}

/* ---- flow endings ---- */

/* Abnormal end: RST the peer (unless it reset us), tell the app. */
static void flow_reset(st_transport *t, st_flow *f, st_reset_reason why)
{
    /* A half-open passive flow was never announced: it dies silently. */
    bool announced = !(f->passive && f->state == ST_FLOW_SYN_RCVD);
    if (why != ST_RESET_PEER && why != ST_RESET_REFUSED && f->remote_id)
        send_rst(t, f);
    t->st.flows_reset++;
    flow_kill(t, f);
    if (announced)
        emit(t, f, ST_EV_RESET, (uint8_t)why);
}

static void protocol_reset(st_transport *t, st_flow *f)
{
    t->st.protocol_errors++;
    flow_reset(t, f, ST_RESET_PROTOCOL);
}

/* ---- sender ---- */

static void tx_data(st_transport *t, st_flow *f, uint32_t seq)
{
    st_sent *e = sent_at(t, f, seq);
    const st_msg *m = msg_at(t, f, e->msg_abs);
    st_pkt p;
    pkt_base(t, f, &p, m->fin ? ST_F_FIN : ST_F_DATA, seq);
    if (!m->fin) {
        size_t off = (size_t)e->frag * ST_WIRE_PAYLOAD_MAX;
        assert(off <= m->len);
        p.hdr.msg_id = m->msg_id;
        p.hdr.frag_idx = e->frag;
        p.hdr.frag_cnt = m->frag_cnt;
        p.payload = m->data + off;
        p.payload_len = (uint16_t)min_u64(ST_WIRE_PAYLOAD_MAX, m->len - off);
    }
    e->sent_us = t->now;
    if (e->xmits < UINT8_MAX)
        e->xmits++;
    t->st.tx_data++;
    tx_flow(t, f, &p);
}

static bool can_send_new(const st_transport *t, const st_flow *f)
{
    if (f->msg_send == f->msg_tail)
        return false;
    /* A zero window still lets one packet probe, so a lost update cannot wedge us. */
    uint64_t limit = min_u64(t->cfg.max_inflight, max_u64(f->peer_wnd, 1));
    return f->snd_nxt - f->snd_una < limit;
}

static void send_new(st_transport *t, st_flow *f)
{
    st_msg *m = msg_at(t, f, f->msg_send);
    assert(m->frags_sent < m->frag_cnt);
    if (m->frags_sent == 0)
        m->first_seq = f->snd_nxt;
    st_sent *e = sent_at(t, f, f->snd_nxt);
    *e = (st_sent){.msg_abs = f->msg_send, .frag = m->frags_sent, .first_us = t->now};
    if (++m->frags_sent == m->frag_cnt)
        f->msg_send++;
    uint32_t seq = f->snd_nxt++;
    f->pipe++;
    if (!f->rto_deadline)
        f->rto_deadline = t->now + rto_cur(t, f);
    tx_data(t, f, seq);
}

/* Packets in the pipe within the SACK bitmap's reach of snd_una. Beyond it the
 * peer cannot tell us what arrived: such packets stay in the pipe until the
 * cumulative ack passes them, even when they were delivered long ago. */
static uint32_t pipe_visible(const st_transport *t, const st_flow *f)
{
    uint32_t n = 0, end = (uint32_t)min_u64(f->snd_nxt - f->snd_una, SACK_BITS);
    for (uint32_t i = 0; i < end; i++) {
        const st_sent *e = sent_at(t, f, f->snd_una + i);
        n += !e->sacked && !e->lost;
    }
    return n;
}

/* Resend lost packets while cwnd allows. A hole blocks delivery of everything
 * behind it, so the window it is judged by leaves out the blind region: else a
 * window of packets beyond the bitmap (delivered, but not yet ackable) holds the
 * repair back until the RTO — a head-of-line stall of hundreds of ms. */
static void retransmit_lost(st_transport *t, st_flow *f)
{
    bool blind = f->snd_nxt - f->snd_una > SACK_BITS;
    uint32_t vis = UINT32_MAX; /* computed when needed */
    for (uint32_t s = f->snd_una; s != f->snd_nxt && f->lost_cnt; s++) {
        st_sent *e = sent_at(t, f, s);
        if (!e->lost)
            continue;
        if (f->pipe >= f->cwnd && !f->fast_now) {
            if (!blind || s - f->snd_una >= SACK_BITS)
                break;
            if (vis == UINT32_MAX)
                vis = pipe_visible(t, f);
            if (vis >= f->cwnd)
                break;
            vis++;
        }
        e->lost = false;
        e->rto_lost = false;
        f->lost_cnt--;
        f->pipe++;
        f->fast_now = false;
        /* Counted per packet: DSACK proves a packet's resends needless once. */
        if (f->undo_armed && e->xmits == 1)
            f->undo_retrans++;
        t->st.tx_retransmits++;
        tx_data(t, f, s);
    }
    f->fast_now = false;
}

/* Send what cwnd, the peer's window and max_inflight allow: losses first. */
static void flow_push(st_transport *t, st_flow *f)
{
    if (f->state != ST_FLOW_ESTABLISHED)
        return;
    retransmit_lost(t, f);
    while (f->pipe < f->cwnd && can_send_new(t, f))
        send_new(t, f);
}

static void flush_ack(st_transport *t, st_flow *f)
{
    if (dead(f) || f->state == ST_FLOW_SYN_SENT)
        return;
    if (f->ack_now || f->ack_pending >= t->cfg.ack_every)
        send_ack(t, f);
    else if (f->ack_pending && !f->ack_deadline)
        f->ack_deadline = t->now + t->cfg.ack_delay_us;
}

static void msg_append(st_transport *t, st_flow *f, uint8_t *data, uint32_t len, bool fin)
{
    assert(f->msg_tail - f->msg_head < t->cfg.tx_queue_msgs);
    st_msg *m = msg_at(t, f, f->msg_tail++);
    *m = (st_msg){.data = data, .len = len, .fin = fin};
    m->frag_cnt = len ? (uint16_t)((len + ST_WIRE_PAYLOAD_MAX - 1) / ST_WIRE_PAYLOAD_MAX) : 1;
    if (!fin)
        m->msg_id = f->next_msg_id++;
    f->tx_bytes += len;
    t->tx_mem += len;
}

/* ---- acks ---- */

static void cwnd_grow(const st_transport *t, st_flow *f, uint32_t n)
{
    if (f->fast_recovery || n == 0)
        return;
    if (f->cwnd < f->ssthresh) {
        f->cwnd += n;
    } else {
        f->ca_acc += n;
        while (f->ca_acc >= f->cwnd) {
            f->ca_acc -= f->cwnd;
            f->cwnd++;
        }
    }
    f->cwnd = (uint32_t)min_u64(f->cwnd, t->cfg.max_inflight);
}

/* Free messages whose every packet is cumulatively acked. */
static void msgs_pop(st_transport *t, st_flow *f)
{
    while (f->msg_head != f->msg_send) {
        st_msg *m = msg_at(t, f, f->msg_head);
        if (!seq_lt(m->first_seq + m->frag_cnt - 1, f->snd_una))
            break;
        if (m->fin)
            f->fin_acked = true;
        else
            t->st.msgs_sent++;
        msg_free(t, f, m);
        f->msg_head++;
    }
}

/* ---- loss episodes and their undo ---- */

static uint32_t ssthresh_floor(const st_transport *t)
{
    return t->cfg.cwnd_min > 2 ? t->cfg.cwnd_min : 2;
}

/* Remember the window before a loss response, so a spurious one can be undone. */
static void undo_arm(st_flow *f)
{
    f->undo_armed = true;
    f->undo_cwnd = f->cwnd;
    f->undo_ssthresh = f->ssthresh;
    f->undo_retrans = 0;
}

/* The episode was no loss (reordering, or a late ack): restore the window, and
 * unmark what an RTO presumed lost but never resent — RACK still finds any
 * real loss among those once later packets are delivered. */
static void undo(st_transport *t, st_flow *f)
{
    f->cwnd = (uint32_t)min_u64(max_u64(f->cwnd, f->undo_cwnd), t->cfg.max_inflight);
    f->ssthresh = (uint32_t)max_u64(f->ssthresh, f->undo_ssthresh);
    f->undo_armed = f->undo_now = false;
    f->recover_active = f->fast_recovery = false;
    f->ca_acc = 0;
    if (f->rto_episode) {
        for (uint32_t s = f->snd_una; s != f->snd_nxt && f->lost_cnt; s++) {
            st_sent *e = sent_at(t, f, s);
            if (!e->rto_lost)
                continue;
            e->rto_lost = e->lost = false;
            f->lost_cnt--;
            f->pipe++;
        }
        f->rto_episode = false;
        f->backoff = 0;
        /* The resends' acks answered the originals; a RACK time taken from a
         * resend would call everything sent before it lost. */
        f->rack_valid = false;
        t->st.spurious_rtos++;
    }
    t->st.undos++;
}

/* The undo stays armed after the episode: the DSACK that proves a resend
 * needless comes after the original filled the hole, so usually later. */
static void end_episode(st_flow *f)
{
    f->recover_active = f->fast_recovery = false;
    f->rto_episode = false;
    /* Forget old reordering slowly: a path that calmed down gets fast detection back. */
    f->reo_extent_us -= f->reo_extent_us / 8;
}

/* Halve once per loss episode (not below the floor) and retransmit at once. */
static void enter_recovery(const st_transport *t, st_flow *f)
{
    f->fast_now = true;
    if (f->recover_active)
        return;
    undo_arm(f);
    f->ssthresh = (uint32_t)max_u64(f->cwnd / 2, ssthresh_floor(t));
    f->cwnd = (uint32_t)min_u64(f->cwnd, f->ssthresh);
    f->ca_acc = 0;
    f->recover_active = f->fast_recovery = true;
    f->recover = f->snd_nxt;
}

/* ---- RACK: which packets are lost ---- */

/* Was (t1, s1) sent after (t2, s2)? Same µs: the higher sequence went later. */
static bool sent_after(uint64_t t1, uint32_t s1, uint64_t t2, uint32_t s2)
{
    return t1 > t2 || (t1 == t2 && seq_lt(s2, s1));
}

static void reorder_sample(st_flow *f, uint64_t late_us)
{
    f->reo_seen = true;
    f->reo_extent_us = max_u64(f->reo_extent_us, min_u64(late_us, RTT_SAMPLE_MAX_US));
}

/* How long a packet may trail one sent after it before it counts as lost
 * (RFC 8985 6.2): none while no reordering was ever seen and the loss is
 * plain (dupthresh SACKed, or already recovering); else a quarter of min_rtt,
 * or the reordering measured, whichever is larger. RFC 8985 caps it at srtt;
 * we allow srtt + 4 rttvar (the RTO's base): on a jittery path (netem-like
 * delay, a loaded host) packets trail by more than srtt, and waiting longer
 * than the RTO would not help anyway. */
static uint64_t reo_wnd(const st_transport *t, const st_flow *f)
{
    if (!f->reo_seen && (f->recover_active || f->sacked_cnt >= t->cfg.dupthresh))
        return 0;
    uint64_t w = f->min_rtt_us / 4;
    if (f->reo_seen)
        w = max_u64(w, f->reo_extent_us);
    return f->have_rtt ? min_u64(w, (f->srtt8 + 4 * f->rttvar8) / 8) : w;
}

/* A resend of e was not needed: the peer reported it twice (DSACK). The packet
 * was late, not lost: that is reordering to learn from, and the episode's
 * window cut is undone once all its resends prove so. */
static void spurious_rtx(st_transport *t, st_flow *f, st_sent *e)
{
    if (e->spurious)
        return;
    e->spurious = true;
    t->st.spurious_retransmits++;
    uint64_t since_first = t->now - e->first_us;
    reorder_sample(f, f->rack_valid && since_first > f->rack_rtt_us ? since_first - f->rack_rtt_us : 0);
    if (f->undo_armed && f->undo_retrans && --f->undo_retrans == 0)
        f->undo_now = true;
}

/* A packet newly known delivered (cumulative ack or SACK), before its entry is
 * cleared. timed: this ack was sent when it arrived (a SACK, or the packet that
 * moved the cumulative ack), so now - sent_us is its round trip; otherwise it
 * may have waited behind a hole and only its send time is evidence. */
static void on_delivered(st_transport *t, st_flow *f, uint32_t seq, st_sent *e, bool timed)
{
    uint64_t rtt = t->now > e->sent_us ? t->now - e->sent_us : 0;
    /* Which copy of a resent packet got through is ambiguous, so it is no RACK
     * sample: an ack of the original taken for one of the resend would call
     * everything sent before the resend lost. A lost resend is still found
     * through the new packets sent after it. (Nor is an ack sooner than
     * min_rtt proof that the original got through: when a delay ends the path
     * is faster than any RTT seen lately; only DSACK says so.) */
    if (e->xmits == 1) {
        if (timed && seq_lt(seq, f->fack))
            reorder_sample(f, f->rack_valid && rtt > f->rack_rtt_us ? rtt - f->rack_rtt_us : 0);
        if (!f->rack_valid || sent_after(e->sent_us, seq, f->rack_xmit_us, f->rack_seq)) {
            f->rack_valid = true;
            f->rack_xmit_us = e->sent_us;
            f->rack_seq = seq;
            f->rack_rtt_us = timed || !f->have_rtt ? rtt : min_u64(rtt, f->srtt8 / 8);
        }
    }
    /* Sent once, before the RTO, and it got through: the RTO was spurious
     * (the path was slow, or the peer was descheduled; nothing was lost). */
    if (f->rto_episode && f->undo_armed && e->xmits == 1 && e->sent_us < f->rto_at_us)
        f->undo_now = true;
    if (seq_lt(f->fack, seq))
        f->fack = seq;
}

static void mark_lost(st_flow *f, st_sent *e)
{
    assert(!e->sacked && !e->lost);
    e->lost = true;
    f->lost_cnt++;
    f->pipe--;
}

/* Mark lost what was sent before the last delivered packet and is overdue by
 * rack_rtt + reo_wnd; arm reo_deadline for the first one not overdue yet. This
 * includes retransmissions: a lost one is found like any other loss. */
static uint32_t rack_mark(st_transport *t, st_flow *f)
{
    f->reo_deadline = 0;
    if (!f->rack_valid)
        return 0;
    uint64_t wnd = reo_wnd(t, f);
    uint32_t marked = 0;
    for (uint32_t s = f->snd_una; s != f->snd_nxt; s++) {
        st_sent *e = sent_at(t, f, s);
        if (e->sacked || e->lost || !sent_after(f->rack_xmit_us, f->rack_seq, e->sent_us, s))
            continue;
        uint64_t due = e->sent_us + f->rack_rtt_us + wnd;
        if (t->now >= due) {
            mark_lost(f, e);
            marked++;
        } else if (!f->reo_deadline || due < f->reo_deadline) {
            f->reo_deadline = due;
        }
    }
    return marked;
}

static void detect_loss(st_transport *t, st_flow *f)
{
    if (f->snd_una == f->snd_nxt) {
        f->reo_deadline = 0;
        return;
    }
    uint32_t marked = rack_mark(t, f);
    /* Without SACK news (a hole beyond the bitmap), dupthresh duplicate acks
     * still say snd_una is gone — once, and only on a path that does not
     * reorder; RACK or the RTO handle its resends. */
    st_sent *una = sent_at(t, f, f->snd_una);
    if (f->dupacks >= t->cfg.dupthresh && !f->reo_seen && !una->sacked && !una->lost && una->xmits == 1) {
        mark_lost(f, una);
        marked++;
    }
    if (marked) {
        t->st.tx_fast_retransmits += marked;
        enter_recovery(t, f);
    }
}

/* ---- acks ---- */

/* Everything below upto arrived; returns how many packets that newly tells.
 * Only the first packet of the range (the old snd_una) is timed: it is what
 * moved the cumulative ack. The others that were not SACKed either came just
 * before it, or waited behind it out of the SACK bitmap's reach, and their
 * "RTT" is the hole's repair time: such samples inflate srtt, the reordering
 * window with it, and slow down loss detection further — a spiral. */
static uint32_t ack_cum(st_transport *t, st_flow *f, uint32_t upto)
{
    uint32_t newly = 0;
    uint32_t una = f->snd_una;
    const st_sent *first = sent_at(t, f, una);
    bool sample = !first->sacked && first->xmits == 1;
    uint64_t sample_us = first->sent_us;
    for (uint32_t s = una; s != upto; s++) {
        st_sent *e = sent_at(t, f, s);
        if (e->lost)
            f->lost_cnt--;
        else if (e->sacked)
            f->sacked_cnt--;
        else
            f->pipe--;
        /* SACKed packets were counted already; they grow cwnd only now. */
        if (!e->sacked)
            on_delivered(t, f, s, e, s == una);
        newly++;
        /* Keep xmits and times: a DSACK may still name this packet. */
        e->sacked = e->lost = e->rto_lost = false;
    }
    f->snd_una = upto;
    if (seq_lt(f->fack, upto - 1))
        f->fack = upto - 1;
    if (sample)
        rtt_sample(t, f, sample_us);
    cwnd_grow(t, f, newly);
    msgs_pop(t, f);
    return newly;
}

/* Mark SACKed packets; returns how many were new. */
static uint32_t ack_sack(st_transport *t, st_flow *f, uint64_t bits)
{
    uint32_t newly = 0;
    bits &= ~1ull; /* bit 0 is snd_una itself: by definition not received */
    while (bits) {
        uint32_t i = (uint32_t)__builtin_ctzll(bits);
        bits &= bits - 1;
        uint32_t s = f->snd_una + i;
        if (!seq_lt(s, f->snd_nxt))
            break;
        st_sent *e = sent_at(t, f, s);
        if (e->sacked)
            continue;
        on_delivered(t, f, s, e, true);
        e->sacked = true;
        f->sacked_cnt++;
        if (e->lost) {
            e->lost = e->rto_lost = false;
            f->lost_cnt--;
        } else {
            f->pipe--;
        }
        newly++;
        if (e->xmits == 1)
            rtt_sample(t, f, e->sent_us);
    }
    return newly;
}

/* The peer got seq twice. If we had resent it, one copy was needless: the
 * loss was reordering (or the RTO premature). Only packets still in sent[]. */
static void rx_dsack(st_transport *t, st_flow *f, uint32_t seq)
{
    if (!seq_lt(seq, f->snd_nxt) || f->snd_nxt - seq > t->cfg.max_inflight)
        return;
    st_sent *e = sent_at(t, f, seq);
    if (e->xmits < 2)
        return; /* the network duplicated it */
    /* Karn's rule skips resent packets' RTTs, but a DSACK times one: it left
     * the peer when a copy arrived twice, so now - (last copy sent) is at most
     * the RTT, and exactly it for the DSACK of the last copy. Raising srtt to
     * it lets an RTO below the path's RTT (a delay switched on: 20 µs to 40 ms)
     * learn, where else every packet is resent before its ack and no clean
     * sample ever comes. (Timing the original, as Eifel does with timestamps,
     * is wrong when only the original's ack was lost: it adds the RTO to the
     * sample, and the RTO then grows on itself.) */
    uint64_t lower = t->now > e->sent_us ? t->now - e->sent_us : 0;
    if (!f->have_rtt || lower > f->srtt8 / 8)
        rtt_update(t, f, lower);
    spurious_rtx(t, f, e);
}

/* Returns false if the flow died (protocol error, or our FIN acked). */
static bool rx_ack(st_transport *t, st_flow *f, const st_pkt *p)
{
    uint32_t upto = p->hdr.ack + 1;
    uint32_t adv = upto - f->snd_una;
    uint32_t out = f->snd_nxt - f->snd_una;
    f->peer_wnd = p->hdr.window;
    /* A DSACK counts even on an ack overtaken by a newer one (jitter). */
    bool dsack = !(p->hdr.flags & ST_F_DATA) && p->hdr.msg_id;
    if ((int32_t)adv < 0) {
        if (dsack)
            rx_dsack(t, f, upto + p->hdr.msg_id);
        return true; /* an older ack overtaken by a newer one */
    }
    if (adv > out) {
        protocol_reset(t, f); /* acks what we never sent */
        return false;
    }
    uint32_t delivered = adv ? ack_cum(t, f, upto) : 0;
    if (f->fin_acked) {
        t->st.flows_closed++;
        flow_kill(t, f);
        emit(t, f, ST_EV_CLOSED, ST_CLOSE_LOCAL);
        return false;
    }
    uint32_t sacked = ack_sack(t, f, p->hdr.sack);
    delivered += sacked;
    if (dsack)
        rx_dsack(t, f, upto + p->hdr.msg_id);
    /* A duplicate ack counts only if it could mean a hole beyond the SACK
     * bitmap: no SACK bits, no DSACK. With SACK bits it is an older ack
     * overtaken by a newer one (jitter reorders acks too), and RACK decides. */
    bool pure = !(p->hdr.flags & (ST_F_DATA | ST_F_FIN)) && !p->hdr.sack && !dsack;
    if (adv)
        f->dupacks = 0;
    else if (!sacked && pure && out)
        f->dupacks++;
    if (delivered) {
        /* The path delivers: the next RTO is srtt + 4 rttvar again, not the
         * backed-off value (which would stall a lossy flow for seconds). */
        f->rto_fails = 0;
        f->backoff = 0;
        f->rto_deadline = f->snd_una == f->snd_nxt ? 0 : t->now + rto_cur(t, f);
    }
    if (f->undo_now && f->undo_armed)
        undo(t, f);
    f->undo_now = false;
    if (f->recover_active && !seq_lt(f->snd_una, f->recover))
        end_episode(f);
    detect_loss(t, f);
    return true;
}

/* ---- receiver ---- */

/* First fragment of a multi-fragment message: reserve its whole size. */
static rx_result reasm_start(st_transport *t, st_flow *f, const rx_item *it)
{
    if (it->len != ST_WIRE_PAYLOAD_MAX) {
        protocol_reset(t, f);
        return RX_DEAD;
    }
    uint64_t need = (uint64_t)it->frag_cnt * ST_WIRE_PAYLOAD_MAX;
    if (!rx_mem_take(t, f, need)) {
        t->st.rx_no_mem++;
        return RX_STALL;
    }
    uint8_t *buf = malloc(need);
    if (!buf) {
        rx_mem_give(t, f, need);
        t->st.rx_no_mem++;
        return RX_STALL;
    }
    memcpy(buf, it->payload, it->len);
    f->asm_buf = buf;
    f->asm_reserved = need;
    f->asm_len = it->len;
    f->asm_msg_id = it->msg_id;
    f->asm_cnt = it->frag_cnt;
    f->asm_next = 1;
    f->asm_active = true;
    return RX_OK;
}

/* Take one in-order DATA packet. On a complete message msg and len are set;
 * a multi-fragment one is handed over in owned with its reservation. */
static rx_result reasm_add(st_transport *t, st_flow *f, const rx_item *it, const uint8_t **msg,
                           size_t *len, uint8_t **owned, uint64_t *reserved)
{
    if (!f->asm_active) {
        if (it->frag_idx != 0 || it->msg_id != f->rx_next_msg_id || it->frag_cnt > max_frags(t) ||
            it->len > t->cfg.max_msg_bytes)
            goto violation;
        if (it->frag_cnt > 1)
            return reasm_start(t, f, it);
        *msg = it->payload;
        *len = it->len;
        f->rx_next_msg_id++;
        return RX_OK;
    }
    bool last = it->frag_idx == f->asm_cnt - 1;
    if (it->msg_id != f->asm_msg_id || it->frag_cnt != f->asm_cnt || it->frag_idx != f->asm_next ||
        (!last && it->len != ST_WIRE_PAYLOAD_MAX) || (uint64_t)f->asm_len + it->len > t->cfg.max_msg_bytes)
        goto violation;
    assert(f->asm_len + it->len <= f->asm_reserved);
    memcpy(f->asm_buf + f->asm_len, it->payload, it->len);
    f->asm_len += it->len;
    f->asm_next++;
    if (last) {
        *msg = *owned = f->asm_buf;
        *len = f->asm_len;
        *reserved = f->asm_reserved;
        f->asm_buf = NULL;
        f->asm_reserved = 0;
        f->asm_active = false;
        f->rx_next_msg_id++;
    }
    return RX_OK;
violation:
    protocol_reset(t, f);
    return RX_DEAD;
}

/* The peer's FIN, in order: everything it sent is delivered. */
static rx_result peer_fin(st_transport *t, st_flow *f)
{
    if (f->asm_active) {
        protocol_reset(t, f); /* FIN inside a message */
        return RX_DEAD;
    }
    f->rcv_nxt++;
    f->ack_now = true;
    msgs_drop(t, f);
    f->state = ST_FLOW_LINGER;
    f->linger_until = t->now + t->cfg.linger_us;
    t->st.flows_closed++;
    emit(t, f, ST_EV_CLOSED, ST_CLOSE_PEER);
    return dead(f) ? RX_DEAD : RX_OK;
}

static rx_result rx_consume(st_transport *t, st_flow *f, const rx_item *it)
{
    if (it->flags & ST_F_FIN)
        return peer_fin(t, f);
    const uint8_t *msg = NULL;
    size_t len = 0;
    uint8_t *owned = NULL;
    uint64_t reserved = 0;
    rx_result r = reasm_add(t, f, it, &msg, &len, &owned, &reserved);
    if (r != RX_OK)
        return r;
    f->rcv_nxt++;
    f->ack_pending++;
    if (msg) {
        t->st.msgs_delivered++;
        if (t->env.deliver)
            t->env.deliver(t->env.ctx, f->id, msg, len);
        if (owned) {
            rx_mem_give(t, f, reserved);
            free(owned);
        }
    }
    return dead(f) ? RX_DEAD : RX_OK;
}

static void item_from_ooo(rx_item *it, const st_ooo *o)
{
    *it = (rx_item){.flags = o->flags, .msg_id = o->msg_id, .frag_idx = o->frag_idx,
                    .frag_cnt = o->frag_cnt, .len = o->len, .payload = o->payload};
}

/* Consume buffered packets that are now in order. False if the flow died. */
static bool rx_drain(st_transport *t, st_flow *f)
{
    while (f->ooo_cnt && f->state == ST_FLOW_ESTABLISHED) {
        uint32_t idx = ooo_idx(t, f->rcv_nxt);
        st_ooo *o = f->ooo[idx];
        if (!o)
            break;
        assert(o->seq == f->rcv_nxt);
        rx_item it;
        item_from_ooo(&it, o);
        rx_result r = rx_consume(t, f, &it);
        if (r == RX_STALL)
            break;
        f->ooo[idx] = NULL;
        f->ooo_cnt--;
        rx_mem_give(t, f, sizeof(*o) + o->len);
        free(o);
        if (r == RX_DEAD)
            return false;
    }
    return true;
}

static void note_dsack(st_flow *f, uint32_t seq)
{
    f->dsack_pending = true;
    f->dsack_seq = seq;
}

static void rx_store(st_transport *t, st_flow *f, const st_pkt *p)
{
    uint32_t idx = ooo_idx(t, p->hdr.seq);
    f->ack_now = true; /* reordering: tell the sender at once (SACK) */
    if (f->ooo[idx]) {
        assert(f->ooo[idx]->seq == p->hdr.seq);
        t->st.rx_duplicate++;
        note_dsack(f, p->hdr.seq);
        return;
    }
    size_t sz = sizeof(st_ooo) + p->payload_len;
    if (!rx_mem_take(t, f, sz)) {
        t->st.rx_no_mem++; /* not SACKed: the sender will resend it */
        return;
    }
    st_ooo *o = malloc(sz);
    if (!o) {
        rx_mem_give(t, f, sz);
        t->st.rx_no_mem++;
        return;
    }
    *o = (st_ooo){.seq = p->hdr.seq, .msg_id = p->hdr.msg_id, .frag_idx = p->hdr.frag_idx,
                  .frag_cnt = p->hdr.frag_cnt, .len = p->payload_len, .flags = p->hdr.flags};
    if (p->payload_len)
        memcpy(o->payload, p->payload, p->payload_len);
    f->ooo[idx] = o;
    f->ooo_cnt++;
}

/* A DATA or FIN packet. False if the flow died. */
static bool rx_seq(st_transport *t, st_flow *f, const st_pkt *p)
{
    uint32_t d = p->hdr.seq - f->rcv_nxt;
    if ((int32_t)d < 0) {
        t->st.rx_duplicate++;
        f->ack_now = true; /* our ack was probably lost, or the resend was needless */
        note_dsack(f, p->hdr.seq);
        return true;
    }
    if (d >= t->cfg.rx_window) {
        t->st.rx_out_of_window++;
        return true;
    }
    if (d > 0) {
        rx_store(t, f, p);
        return true;
    }
    if (f->ooo[ooo_idx(t, f->rcv_nxt)]) {
        /* A retransmission of a packet we hold but could not take (no memory). */
        t->st.rx_duplicate++;
        return rx_drain(t, f);
    }
    rx_item it = {.flags = p->hdr.flags, .msg_id = p->hdr.msg_id, .frag_idx = p->hdr.frag_idx,
                  .frag_cnt = p->hdr.frag_cnt, .len = p->payload_len, .payload = p->payload};
    rx_result r = rx_consume(t, f, &it);
    if (r == RX_DEAD)
        return false;
    if (r == RX_STALL)
        return true;
    return rx_drain(t, f);
}

/* ---- per-state packet handling ---- */

static void handshake_done(st_transport *t, st_flow *f)
{
    if (f->hs_xmits == 1)
        rtt_sample(t, f, f->hs_sent_us);
    f->state = ST_FLOW_ESTABLISHED;
    f->rto_deadline = 0;
    f->rto_fails = 0;
    f->backoff = 0;
}

static void rx_established(st_transport *t, st_flow *f, const st_pkt *p)
{
    uint8_t fl = p->hdr.flags;
    if (fl & ST_F_SYN) {
        /* A repeated SYN|ACK: our ACK was lost; say it again. */
        if ((fl & ST_F_ACK) && !f->passive)
            f->ack_now = true;
        else
            t->st.rx_bad_state++;
        flush_ack(t, f);
        return;
    }
    if ((fl & ST_F_ACK) && !rx_ack(t, f, p))
        return;
    if ((fl & (ST_F_DATA | ST_F_FIN)) && !rx_seq(t, f, p))
        return;
    flow_push(t, f);
    flush_ack(t, f);
}

static void rx_syn_sent(st_transport *t, st_flow *f, const st_pkt *p)
{
    const st_hdr *h = &p->hdr;
    if (!(h->flags & ST_F_SYN) || !(h->flags & ST_F_ACK) || h->ack + 1 != f->isn || h->src_flow == 0) {
        t->st.rx_bad_state++;
        return;
    }
    f->remote_id = h->src_flow;
    f->rcv_nxt = h->seq;
    f->peer_wnd = h->window;
    handshake_done(t, f);
    f->ack_now = true;
    emit(t, f, ST_EV_ESTABLISHED, 0);
    if (dead(f))
        return;
    flow_push(t, f); /* queued data carries the ACK */
    flush_ack(t, f);
}

static void rx_syn_rcvd(st_transport *t, st_flow *f, const st_pkt *p)
{
    if ((p->hdr.flags & ST_F_SYN) || !(p->hdr.flags & ST_F_ACK)) {
        t->st.rx_bad_state++;
        return;
    }
    handshake_done(t, f);
    emit(t, f, ST_EV_ACCEPTED, 0);
    if (!dead(f))
        rx_established(t, f, p);
}

static void rx_linger(st_transport *t, st_flow *f, const st_pkt *p)
{
    if (p->hdr.flags & (ST_F_DATA | ST_F_FIN)) {
        f->ack_now = true; /* our ack of the FIN was lost */
        flush_ack(t, f);
    }
}

static bool peer_matches(const st_flow *f, const st_pkt *p)
{
    return p->ip_src == f->remote_ip && p->udp_src == f->remote_port && p->udp_dst == f->local_port &&
           (f->remote_id == 0 || p->hdr.src_flow == f->remote_id);
}

static void rx_flow(st_transport *t, st_flow *f, const st_pkt *p)
{
    if (!peer_matches(f, p)) {
        t->st.rx_wrong_peer++;
        return;
    }
    if (p->hdr.flags & ST_F_RST) {
        if (f->state == ST_FLOW_LINGER)
            flow_kill(t, f); /* already reported closed */
        else
            flow_reset(t, f, f->state == ST_FLOW_SYN_SENT ? ST_RESET_REFUSED : ST_RESET_PEER);
        return;
    }
    switch (f->state) {
    case ST_FLOW_SYN_SENT: rx_syn_sent(t, f, p); break;
    case ST_FLOW_SYN_RCVD: rx_syn_rcvd(t, f, p); break;
    case ST_FLOW_ESTABLISHED: rx_established(t, f, p); break;
    case ST_FLOW_LINGER: rx_linger(t, f, p); break;
    default: assert(0);
    }
    flow_check(t, f);
}

static bool listening(const st_transport *t, uint16_t port)
{
    for (uint32_t i = 0; i < t->n_listen; i++)
        if (t->listen[i] == port)
            return true;
    return false;
}

/* The passive flow a repeated SYN belongs to, if any. */
static st_flow *find_passive(const st_transport *t, const st_pkt *p)
{
    for (st_flow *f = t->live_head; f; f = f->next)
        if (!dead(f) && f->passive && f->remote_id == p->hdr.src_flow && peer_matches(f, p))
            return f;
    return NULL;
}

static void rx_syn(st_transport *t, const st_pkt *p)
{
    if (!listening(t, p->udp_dst)) {
        t->st.rx_no_listener++;
        rst_reply(t, p);
        return;
    }
    if (p->hdr.dst_flow != 0 || p->hdr.src_flow == 0) {
        t->st.rx_bad_state++;
        return;
    }
    st_flow *f = find_passive(t, p);
    if (f) {
        if (f->state == ST_FLOW_SYN_RCVD)
            send_syn(t, f); /* our SYN|ACK was lost */
        return;
    }
    int err = 0;
    f = flow_new(t, &err);
    if (!f) {
        t->st.rx_syn_no_room++;
        rst_reply(t, p);
        return;
    }
    f->passive = true;
    f->state = ST_FLOW_SYN_RCVD;
    f->local_port = p->udp_dst;
    f->remote_ip = p->ip_src;
    f->remote_port = p->udp_src;
    f->remote_id = p->hdr.src_flow;
    f->rcv_nxt = p->hdr.seq;
    f->peer_wnd = p->hdr.window;
    send_syn(t, f);
    f->rto_deadline = t->now + rto_cur(t, f);
}

static bool pkt_sane(const st_pkt *p)
{
    return p->hdr.version == ST_RIFT_VERSION && st_wire_hdr_check(&p->hdr, p->payload_len) == ST_WIRE_OK &&
           (p->payload_len == 0 || p->payload);
}

static void rx_dispatch(st_transport *t, const st_pkt *p)
{
    if (!pkt_sane(p)) {
        t->st.rx_bad_header++;
        return;
    }
    if (p->ip_dst != t->local_ip) {
        t->st.rx_not_local++;
        return;
    }
    if ((p->hdr.flags & ST_F_SYN) && !(p->hdr.flags & ST_F_ACK)) {
        rx_syn(t, p);
        return;
    }
    st_flow *f = flow_get(t, p->hdr.dst_flow);
    if (!f) {
        t->st.rx_no_flow++;
        rst_reply(t, p);
        return;
    }
    rx_flow(t, f, p);
}

void st_transport_rx(st_transport *t, const st_pkt *p, uint64_t now_us)
{
    enter(t, now_us);
    t->st.rx_packets++;
    rx_dispatch(t, p);
    leave(t);
}

/* ---- timers ---- */

/* The first rto_linear expiries in a row keep the base RTO (Linux's thin-stream
 * linear timeouts): a flow of lone messages, as Paxos sends, has nothing later
 * to reveal a loss (and after an RTO cwnd is 1), so under 20% loss each way a
 * resend fails a third of the time; doubling at once would turn a few unlucky
 * drops into a stall of a hundred ms. Then it doubles. */
static void set_backoff(const st_transport *t, st_flow *f)
{
    uint32_t lin = t->cfg.rto_linear;
    f->backoff = f->rto_fails > lin ? (uint32_t)min_u64(f->rto_fails - lin, 31) : 0;
}

static void on_handshake_timeout(st_transport *t, st_flow *f)
{
    t->st.rtos++;
    if (++f->rto_fails >= t->cfg.max_rto_failures) {
        flow_reset(t, f, ST_RESET_TIMEOUT);
        return;
    }
    set_backoff(t, f);
    send_syn(t, f);
    f->rto_deadline = t->now + rto_cur(t, f);
}

/* Everything not SACKed is presumed lost; restart from a window of one. */
static void on_rto(st_transport *t, st_flow *f)
{
    assert(f->snd_una != f->snd_nxt);
    t->st.rtos++;
    if (++f->rto_fails >= t->cfg.max_rto_failures) {
        flow_reset(t, f, ST_RESET_TIMEOUT);
        return;
    }
    set_backoff(t, f);
    if (f->rto_fails == 1) { /* repeated expiries do not keep halving */
        if (!f->recover_active) /* else keep the window from before the episode */
            undo_arm(f);
        f->ssthresh = (uint32_t)max_u64(f->cwnd / 2, ssthresh_floor(t));
    }
    f->rto_episode = true;
    f->rto_at_us = t->now;
    f->cwnd = 1;
    f->ca_acc = 0;
    f->dupacks = 0;
    f->fast_recovery = false;
    f->recover_active = true;
    f->recover = f->snd_nxt;
    f->reo_deadline = 0;
    for (uint32_t s = f->snd_una; s != f->snd_nxt; s++) {
        st_sent *e = sent_at(t, f, s);
        if (!e->sacked && !e->lost) {
            mark_lost(f, e);
            e->rto_lost = true;
        }
    }
    assert(f->pipe == 0);
    f->rto_deadline = t->now + rto_cur(t, f);
    flow_push(t, f);
}

static void tick_flow(st_transport *t, st_flow *f)
{
    if (f->state == ST_FLOW_LINGER) {
        if (t->now >= f->linger_until)
            flow_kill(t, f);
        return;
    }
    if (f->rto_deadline && t->now >= f->rto_deadline) {
        if (f->state == ST_FLOW_ESTABLISHED)
            on_rto(t, f);
        else
            on_handshake_timeout(t, f);
        if (dead(f))
            return;
    }
    if (f->reo_deadline && t->now >= f->reo_deadline && f->state == ST_FLOW_ESTABLISHED) {
        detect_loss(t, f);
        flow_push(t, f);
    }
    if (f->ack_deadline && t->now >= f->ack_deadline)
        send_ack(t, f);
    flow_check(t, f);
}

void st_transport_tick(st_transport *t, uint64_t now_us)
{
    enter(t, now_us);
    for (st_flow *f = t->live_head; f; f = f->next)
        if (!dead(f))
            tick_flow(t, f);
    leave(t);
}

uint64_t st_transport_next_tick_us(const st_transport *t)
{
    uint64_t next = UINT64_MAX;
    for (const st_flow *f = t->live_head; f; f = f->next) {
        if (dead(f))
            continue;
        if (f->state == ST_FLOW_LINGER)
            next = min_u64(next, f->linger_until);
        if (f->rto_deadline)
            next = min_u64(next, f->rto_deadline);
        if (f->ack_deadline)
            next = min_u64(next, f->ack_deadline);
        if (f->reo_deadline)
            next = min_u64(next, f->reo_deadline);
    }
    return next;
}

/* ---- application calls ---- */

st_transport *st_transport_new(const st_config *cfg, const st_env *env, uint32_t local_ip, int *err)
{
    int dummy;
    if (!err)
        err = &dummy;
    *err = -EINVAL;
    if (!cfg || !env || !env->tx || !ip_unicast(local_ip) || st_config_check(cfg, NULL, 0) != 0)
        return NULL;
    *err = -ENOMEM;
    st_transport *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->cfg = *cfg;
    t->env = *env;
    t->local_ip = local_ip;
    t->next_port = cfg->ephemeral_lo;
    t->slots = calloc(cfg->max_flows, sizeof(*t->slots));
    t->gen = calloc(cfg->max_flows, sizeof(*t->gen));
    t->free_slots = calloc(cfg->max_flows, sizeof(*t->free_slots));
    if (!t->slots || !t->gen || !t->free_slots) {
        st_transport_free(t);
        return NULL;
    }
    /* Random generations: a restarted stack does not reuse its old flow ids. */
    for (uint32_t i = 0; i < cfg->max_flows; i++) {
        uint16_t g = env->rng ? (uint16_t)rift_rng_next(env->rng) : 1;
        t->gen[i] = g ? g : 1;
        t->free_slots[i] = cfg->max_flows - 1 - i; /* slot 0 comes out first */
    }
    t->n_free = cfg->max_flows;
    *err = 0;
    return t;
}

void st_transport_free(st_transport *t)
{
    if (!t)
        return;
    assert(t->depth == 0);
    for (st_flow *f = t->live_head; f;) {
        st_flow *next = f->next;
        if (!dead(f)) {
            f->state = FLOW_DEAD;
            t->n_dead++;
        }
        f = next;
    }
    reap(t);
    free(t->slots);
    free(t->gen);
    free(t->free_slots);
    free(t);
}

int st_transport_listen(st_transport *t, uint16_t port)
{
    if (port == 0)
        return -EINVAL;
    if (listening(t, port))
        return -EADDRINUSE;
    if (t->n_listen == ST_TRANSPORT_MAX_LISTEN)
        return -ENOSPC;
    t->listen[t->n_listen++] = port;
    return 0;
}

int st_transport_unlisten(st_transport *t, uint16_t port)
{
    for (uint32_t i = 0; i < t->n_listen; i++) {
        if (t->listen[i] == port) {
            t->listen[i] = t->listen[--t->n_listen];
            return 0;
        }
    }
    return -ENOENT;
}

static uint16_t next_ephemeral(st_transport *t)
{
    uint16_t p = t->next_port;
    t->next_port = p >= t->cfg.ephemeral_hi ? t->cfg.ephemeral_lo : (uint16_t)(p + 1);
    return p;
}

int st_transport_connect(st_transport *t, uint32_t ip, uint16_t port, uint16_t local_port,
                         uint64_t now_us, uint32_t *flow)
{
    if (!ip_unicast(ip) || port == 0 || !flow)
        return -EINVAL;
    enter(t, now_us);
    int err = 0;
    st_flow *f = flow_new(t, &err);
    if (f) {
        f->state = ST_FLOW_SYN_SENT;
        f->local_port = local_port ? local_port : next_ephemeral(t);
        f->remote_ip = ip;
        f->remote_port = port;
        *flow = f->id;
        send_syn(t, f);
        f->rto_deadline = t->now + rto_cur(t, f);
    }
    leave(t);
    return err;
}

static int send_queue(st_transport *t, uint32_t flow, const void *msg, size_t len)
{
    st_flow *f = flow_get(t, flow);
    if (!f)
        return -ENOENT;
    if (f->state == ST_FLOW_LINGER)
        return -ENOTCONN;
    if (f->closing)
        return -EPIPE;
    if (len > t->cfg.max_msg_bytes)
        return -EMSGSIZE;
    /* One ring slot stays free for the FIN. */
    if (f->msg_tail - f->msg_head >= t->cfg.tx_queue_msgs - 1 || f->tx_bytes + len > t->cfg.tx_queue_bytes ||
        t->tx_mem + len > t->cfg.tx_mem_bytes)
        return -ENOBUFS;
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        return -ENOMEM;
    if (len)
        memcpy(copy, msg, len);
    msg_append(t, f, copy, (uint32_t)len, false);
    flow_push(t, f);
    flow_check(t, f);
    return 0;
}

int st_transport_send(st_transport *t, uint32_t flow, const void *msg, size_t len, uint64_t now_us)
{
    if (len && !msg)
        return -EINVAL;
    enter(t, now_us);
    int r = send_queue(t, flow, msg, len);
    leave(t);
    return r;
}

int st_transport_close(st_transport *t, uint32_t flow, uint64_t now_us)
{
    enter(t, now_us);
    int r = 0;
    st_flow *f = flow_get(t, flow);
    if (!f)
        r = -ENOENT;
    else if (f->state == ST_FLOW_LINGER)
        r = -ENOTCONN;
    else if (f->closing)
        r = -EPIPE;
    if (r == 0) {
        f->closing = true;
        msg_append(t, f, NULL, 0, true);
        flow_push(t, f);
    }
    leave(t);
    return r;
}

int st_transport_abort(st_transport *t, uint32_t flow, uint64_t now_us)
{
    enter(t, now_us);
    st_flow *f = flow_get(t, flow);
    if (f) {
        if (f->remote_id && f->state != ST_FLOW_LINGER)
            send_rst(t, f);
        flow_kill(t, f);
    }
    leave(t);
    return f ? 0 : -ENOENT;
}

int st_transport_flow_info(const st_transport *t, uint32_t flow, st_flow_info *out)
{
    const st_flow *f = flow_get(t, flow);
    if (!f)
        return -ENOENT;
    *out = (st_flow_info){
        .state = f->state, .closing = f->closing,
        .local_port = f->local_port, .remote_port = f->remote_port,
        .remote_ip = f->remote_ip, .remote_flow = f->remote_id,
        .cwnd = f->cwnd, .ssthresh = f->ssthresh, .inflight = f->snd_nxt - f->snd_una,
        .pipe = f->pipe, .peer_window = f->peer_wnd,
        .srtt_us = f->srtt8 / 8, .rttvar_us = f->rttvar8 / 8, .rto_us = rto_cur(t, f),
        .rto_failures = f->rto_fails,
        .tx_queued_msgs = (uint32_t)(f->msg_tail - f->msg_head), .tx_queued_bytes = f->tx_bytes,
        .rx_mem_bytes = f->rx_mem,
    };
    return 0;
}

void st_transport_get_stats(const st_transport *t, st_transport_stats *out)
{
    *out = t->st;
    out->tx_mem_bytes = t->tx_mem;
    out->rx_mem_bytes = t->rx_mem;
}
