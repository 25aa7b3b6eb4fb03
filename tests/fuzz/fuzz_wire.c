/* fuzz_wire.c — libFuzzer target for st_wire_parse on arbitrary frames.
 *
 * Beyond "never crash": a frame that parses must rebuild (st_wire_build) into
 * a frame that parses back to the same fields, so parse and build agree on
 * what is valid.
 *
 *   clang -g -fsanitize=fuzzer,address,undefined -I. stack/st_wire.c \
 *       tests/fuzz/fuzz_wire.c -o /tmp/fuzz_wire */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "stack/st_wire.h"

static const st_wire_local local = {.mac = {0x02, 0, 0, 0, 0, 0x01}, .ip = 0x0a000001u};

static void same(const st_pkt *a, const st_pkt *b)
{
    if (memcmp(a->eth_dst, b->eth_dst, 6) || memcmp(a->eth_src, b->eth_src, 6) || a->ethertype != b->ethertype)
        __builtin_trap();
    if (a->ethertype == ST_ETHERTYPE_ARP) {
        if (a->arp.op != b->arp.op || a->arp.spa != b->arp.spa || a->arp.tpa != b->arp.tpa ||
            memcmp(a->arp.sha, b->arp.sha, 6) || memcmp(a->arp.tha, b->arp.tha, 6))
            __builtin_trap();
        return;
    }
    const st_hdr *x = &a->hdr, *y = &b->hdr;
    if (a->ip_src != b->ip_src || a->ip_dst != b->ip_dst || a->ttl != b->ttl || a->udp_src != b->udp_src ||
        a->udp_dst != b->udp_dst || x->version != y->version || x->flags != y->flags ||
        x->src_flow != y->src_flow || x->dst_flow != y->dst_flow || x->seq != y->seq || x->ack != y->ack ||
        x->sack != y->sack || x->msg_id != y->msg_id || x->window != y->window || x->frag_idx != y->frag_idx ||
        x->frag_cnt != y->frag_cnt || a->payload_len != b->payload_len ||
        memcmp(a->payload, b->payload, a->payload_len))
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    st_pkt p, q;
    (void)st_wire_mac_accept(data, size, local.mac);
    st_wire_err filtered = st_wire_parse(data, size, &local, &p);
    st_wire_err e = st_wire_parse(data, size, NULL, &p);
    if ((unsigned)e >= ST_WIRE_ERR_COUNT || (unsigned)filtered >= ST_WIRE_ERR_COUNT)
        __builtin_trap();
    (void)st_wire_err_name(e);
    if (filtered == ST_WIRE_OK && e != ST_WIRE_OK)
        __builtin_trap(); /* filtering can only reject more */
    if (e != ST_WIRE_OK)
        return 0;
    if (p.ethertype == ST_ETHERTYPE_IPV4 && st_wire_hdr_check(&p.hdr, p.payload_len) != ST_WIRE_OK)
        __builtin_trap();
    uint8_t buf[ST_WIRE_FRAME_MAX];
    int n = st_wire_build(buf, sizeof(buf), &p);
    if (n < ST_WIRE_FRAME_MIN || n > ST_WIRE_FRAME_MAX)
        __builtin_trap();
    if (st_wire_parse(buf, (size_t)n, NULL, &q) != ST_WIRE_OK)
        __builtin_trap();
    same(&p, &q);
    return 0;
}
