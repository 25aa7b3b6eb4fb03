/* fuzz_transport.c — libFuzzer target: arbitrary packets, timers and app calls
 * against one st_transport with a listening port and one connected flow.
 *
 * The input is a script of operations. Packets are built from input bytes with
 * selectors that usually aim them at live flows with plausible sequence
 * numbers (no rng: ISNs and flow ids are fixed), so the fuzzer reaches the
 * data path, reassembly, SACK and close handling rather than bouncing off the
 * flow lookup. Raw frames go through st_wire_parse first.
 *
 * Checked after every step: memory stays within the configured budgets, the
 * flow table within max_flows, a tick always moves next_tick_us past now, and
 * every packet the transport emits builds and parses as a valid frame. Leaks
 * are ASan's job at st_transport_free.
 *
 *   clang -g -fsanitize=fuzzer,address,undefined -I. stack/st_wire.c \
 *       stack/st_transport.c tests/fuzz/fuzz_transport.c -o /tmp/fuzz_transport */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "stack/st_transport.h"
#include "stack/st_wire.h"

#define IP_US 0x0a000001u
#define IP_PEER 0x0a000002u
#define PORT 7000
#define PEER_PORT 40000
#define PEER_ID 0x99u
#define PEER_ISN 1000u
#define MAX_OPS 2000

typedef struct rd {
    const uint8_t *p;
    size_t n;
} rd;

static uint8_t u8(rd *r)
{
    if (!r->n)
        return 0;
    r->n--;
    return *r->p++;
}

static uint16_t u16(rd *r)
{
    uint16_t lo = u8(r);
    return (uint16_t)(lo | u8(r) << 8);
}

static uint32_t u32(rd *r)
{
    uint32_t lo = u16(r);
    return lo | (uint32_t)u16(r) << 16;
}

static uint64_t u64(rd *r)
{
    uint64_t lo = u32(r);
    return lo | (uint64_t)u32(r) << 32;
}

typedef struct fz {
    st_transport *t;
    st_config cfg;
    uint64_t now;
    uint32_t flows[8];     /* ids we have seen (events, SYN|ACKs) */
    uint32_t last_seq_out; /* latest seq / ack the transport sent, to aim acks */
    uint32_t last_ack_out;
    uint32_t f0;           /* the connected flow */
    uint32_t peer_next;    /* the cooperative peer's next packet (offset from its ISN) */
} fz;

static void remember(fz *z, uint32_t id)
{
    if (!id)
        return;
    for (int i = 0; i < 8; i++)
        if (z->flows[i] == id)
            return;
    memmove(z->flows + 1, z->flows, 7 * sizeof(z->flows[0]));
    z->flows[0] = id;
}

static void on_tx(void *ctx, const st_pkt *p)
{
    fz *z = ctx;
    uint8_t frame[ST_WIRE_FRAME_MAX];
    st_pkt q = *p, back;
    int n = st_wire_build(frame, sizeof(frame), &q);
    if (n <= 0 || st_wire_parse(frame, (size_t)n, NULL, &back) != ST_WIRE_OK)
        __builtin_trap(); /* the transport emitted something invalid */
    z->last_seq_out = p->hdr.seq;
    z->last_ack_out = p->hdr.ack;
    remember(z, p->hdr.src_flow);
}

static void on_deliver(void *ctx, uint32_t flow, const uint8_t *msg, size_t len)
{
    fz *z = ctx;
    if (len > z->cfg.max_msg_bytes)
        __builtin_trap();
    volatile uint8_t sink = len ? msg[0] ^ msg[len - 1] : 0; /* touch both ends */
    (void)sink;
}

static void on_event(void *ctx, const st_event *e)
{
    remember(ctx, e->flow);
}

static uint32_t pick_flow(fz *z, rd *r)
{
    uint8_t s = u8(r);
    if (s < 200)
        return z->flows[s % 8];
    if (s < 230)
        return 0;
    return u32(r);
}

/* seq / ack near what is live, or anything. */
static uint32_t pick_num(rd *r, uint32_t base)
{
    uint8_t s = u8(r);
    if (s < 220)
        return base + (uint32_t)(int32_t)(int8_t)u8(r);
    return u32(r);
}

static void op_packet(fz *z, rd *r)
{
    static uint8_t payload[ST_WIRE_PAYLOAD_MAX];
    st_pkt p;
    memset(&p, 0, sizeof(p));
    p.ethertype = ST_ETHERTYPE_IPV4;
    uint8_t addr = u8(r);
    p.ip_src = addr < 240 ? IP_PEER : u32(r);
    p.ip_dst = addr < 250 ? IP_US : u32(r);
    p.udp_src = (uint16_t)((addr & 7) ? PEER_PORT + (u8(r) & 3) : u16(r));
    p.udp_dst = (uint16_t)((addr & 0x38) ? PORT : u16(r));
    st_hdr *h = &p.hdr;
    h->version = ST_RIFT_VERSION;
    static const uint8_t common[] = {ST_F_DATA | ST_F_ACK, ST_F_DATA | ST_F_ACK, ST_F_ACK, ST_F_FIN | ST_F_ACK,
                                     ST_F_SYN, ST_F_SYN | ST_F_ACK, ST_F_RST, ST_F_DATA};
    uint8_t fsel = u8(r);
    h->flags = fsel < 224 ? common[fsel % 8] : fsel & ST_F_ALL;
    h->src_flow = u8(r) < 200 ? PEER_ID + (u8(r) & 3) : u32(r);
    h->dst_flow = pick_flow(z, r);
    /* Aim at what the transport last acked (its rcv_nxt - 1), or the ISN. */
    uint8_t ssel = u8(r);
    h->seq = pick_num(r, ssel < 160 ? z->last_ack_out + 1 : PEER_ISN + (uint32_t)u16(r) % 512);
    h->ack = pick_num(r, z->last_seq_out);
    h->sack = u8(r) < 128 ? 0 : u64(r);
    h->window = u16(r);
    /* On a packet without data msg_id is a DSACK: an offset from ack + 1, often
     * just below it (a packet acked already and received twice). */
    uint8_t msel = u8(r);
    h->msg_id = msel < 140 ? u8(r) % 16 : msel < 200 ? 0u - (uint32_t)(u8(r) % 16 + 1) : u32(r);
    h->frag_cnt = u8(r) < 200 ? u8(r) % 8 : u16(r);
    h->frag_idx = u8(r) < 200 ? u8(r) % 8 : u16(r);
    if (!(h->flags & ST_F_DATA))
        h->frag_cnt = h->frag_idx = 0;
    uint8_t lsel = u8(r);
    p.payload_len = lsel < 100 ? ST_WIRE_PAYLOAD_MAX : (uint16_t)(u16(r) % (ST_WIRE_PAYLOAD_MAX + 1));
    if (!(h->flags & ST_F_DATA) && lsel < 240)
        p.payload_len = 0;
    if (p.payload_len) {
        memset(payload, u8(r), p.payload_len);
        p.payload = payload;
    }
    /* Anything goes: the transport re-checks what st_wire would reject. */
    st_transport_rx(z->t, &p, z->now);
}

/* A mostly well-behaved peer on the connected flow: its packet at offset o
 * is always fragment o % 3 of 3-fragment message o / 3, so gaps, repeats and
 * reordering chosen by the input still make a consistent stream (and reach
 * reassembly and out-of-order draining). */
static void op_stream(fz *z, rd *r)
{
    static uint8_t payload[ST_WIRE_PAYLOAD_MAX];
    uint8_t mode = u8(r);
    uint32_t o = z->peer_next;
    if (mode & 0x80)
        o += u8(r) % 8; /* ahead of the gap */
    else if (mode & 0x40)
        o -= u8(r) % 8; /* a repeat */
    else
        z->peer_next++;
    st_pkt p;
    memset(&p, 0, sizeof(p));
    p.ethertype = ST_ETHERTYPE_IPV4;
    p.ip_src = IP_PEER;
    p.ip_dst = IP_US;
    p.udp_src = PEER_PORT;
    p.udp_dst = PORT;
    st_hdr *h = &p.hdr;
    *h = (st_hdr){.version = ST_RIFT_VERSION, .flags = ST_F_DATA | ST_F_ACK, .src_flow = PEER_ID,
                  .dst_flow = z->f0, .seq = PEER_ISN + o, .ack = z->last_seq_out, .window = 64,
                  .msg_id = o / 3, .frag_idx = (uint16_t)(o % 3), .frag_cnt = 3};
    if ((mode & 0x30) == 0x30 && o % 3 == 0) {
        h->flags = ST_F_FIN | ST_F_ACK; /* a clean close at a message boundary */
        h->msg_id = h->frag_idx = h->frag_cnt = 0;
    } else {
        p.payload = payload;
        p.payload_len = o % 3 == 2 ? (uint16_t)(u16(r) % (ST_WIRE_PAYLOAD_MAX + 1)) : ST_WIRE_PAYLOAD_MAX;
        memset(payload, (int)o, p.payload_len);
    }
    if (mode & 0x08)
        h->sack = u64(r);
    st_transport_rx(z->t, &p, z->now);
}

static void op_frame(fz *z, rd *r)
{
    size_t len = u16(r) % (ST_WIRE_FRAME_MAX + 1);
    if (len > r->n)
        len = r->n;
    st_pkt p;
    if (st_wire_parse(r->p, len, NULL, &p) == ST_WIRE_OK && p.ethertype == ST_ETHERTYPE_IPV4)
        st_transport_rx(z->t, &p, z->now);
    r->p += len;
    r->n -= len;
}

static void op_app(fz *z, rd *r)
{
    static uint8_t msg[64 * 1024 + 1];
    uint8_t what = u8(r) % 6;
    uint32_t flow = pick_flow(z, r);
    uint32_t id = 0;
    switch (what) {
    case 0:
    case 1: {
        size_t len = u8(r) < 200 ? u16(r) % 4096 : u32(r) % sizeof(msg);
        (void)st_transport_send(z->t, flow, msg, len, z->now);
        break;
    }
    case 2: (void)st_transport_close(z->t, flow, z->now); break;
    case 3: (void)st_transport_abort(z->t, flow, z->now); break;
    case 4:
        if (st_transport_connect(z->t, IP_PEER, PEER_PORT, (uint16_t)(u8(r) & 1 ? 0 : PORT), z->now, &id) == 0)
            remember(z, id);
        break;
    default: {
        st_flow_info fi;
        (void)st_transport_flow_info(z->t, flow, &fi);
        break;
    }
    }
}

static void op_tick(fz *z, rd *r)
{
    uint8_t s = u8(r);
    uint64_t next = st_transport_next_tick_us(z->t);
    if (s < 128 && next != UINT64_MAX && next > z->now)
        z->now = next; /* jump to the next timer */
    else
        z->now += s < 200 ? u8(r) : u32(r) % 2000000;
    st_transport_tick(z->t, z->now);
    if (st_transport_next_tick_us(z->t) <= z->now)
        __builtin_trap(); /* the caller would spin */
}

static void check_bounds(const fz *z)
{
    st_transport_stats s;
    st_transport_get_stats(z->t, &s);
    if (s.rx_mem_bytes > z->cfg.rx_mem_bytes || s.tx_mem_bytes > z->cfg.tx_mem_bytes ||
        s.flows_active > z->cfg.max_flows)
        __builtin_trap();
}

/* A listening port and one established flow to the peer, data in flight. */
static int setup(fz *z)
{
    st_config_default(&z->cfg);
    z->cfg.max_flows = 8;
    z->cfg.max_inflight = 64;
    z->cfg.rx_window = 64;
    z->cfg.max_msg_bytes = 64 * 1024;
    z->cfg.tx_queue_msgs = 16;
    z->cfg.tx_queue_bytes = 256 * 1024;
    z->cfg.tx_mem_bytes = 512 * 1024;
    z->cfg.rx_mem_bytes = 80 * 1024; /* one 64 KiB message + a little: budget paths get hit */
    st_env env = {.ctx = z, .tx = on_tx, .deliver = on_deliver, .event = on_event, .rng = NULL};
    int err = 0;
    z->t = st_transport_new(&z->cfg, &env, IP_US, &err);
    if (!z->t || st_transport_listen(z->t, PORT) != 0)
        return -1;
    uint32_t id = 0;
    /* The peer talks from PEER_PORT to PORT, to this flow and to passive ones. */
    if (st_transport_connect(z->t, IP_PEER, PEER_PORT, PORT, 0, &id) != 0)
        return -1;
    remember(z, id);
    z->f0 = id;
    st_pkt sa;
    memset(&sa, 0, sizeof(sa));
    sa.ethertype = ST_ETHERTYPE_IPV4;
    sa.ip_src = IP_PEER;
    sa.ip_dst = IP_US;
    sa.udp_src = PEER_PORT;
    sa.udp_dst = PORT;
    sa.hdr = (st_hdr){.version = ST_RIFT_VERSION, .flags = ST_F_SYN | ST_F_ACK, .src_flow = PEER_ID,
                      .dst_flow = id, .seq = PEER_ISN, .ack = z->last_seq_out - 1, .window = 64};
    st_transport_rx(z->t, &sa, 1);
    static const uint8_t hello[3000];
    (void)st_transport_send(z->t, id, hello, sizeof(hello), 1);
    z->now = 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz z;
    memset(&z, 0, sizeof(z));
    if (setup(&z) != 0)
        __builtin_trap();
    rd r = {data, size};
    for (int i = 0; i < MAX_OPS && r.n; i++) {
        switch (u8(&r) % 10) {
        case 0:
        case 1:
        case 2: op_packet(&z, &r); break;
        case 3: op_frame(&z, &r); break;
        case 4:
        case 5: op_app(&z, &r); break;
        case 6:
        case 7: op_stream(&z, &r); break;
        default: op_tick(&z, &r); break;
        }
        check_bounds(&z);
    }
    st_transport_free(z.t);
    return 0;
}
