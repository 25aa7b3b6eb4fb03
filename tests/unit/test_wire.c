/* test_wire.c — st_wire: build -> parse round trips for every frame kind, and
 * every way a frame can be rejected, with the reason rift-stackd would count.
 *
 * Checksums are recomputed here with an independent (byte-at-a-time) RFC 1071
 * sum, so a frame edited by a test is re-sealed without trusting st_wire. */
#include <criterion/criterion.h>

#include <errno.h>
#include <string.h>

#include "stack/st_wire.h"

#define IP(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (uint32_t)(d))

static const uint8_t mac_us[6] = {0x02, 0, 0, 0, 0, 0x01};
static const uint8_t mac_peer[6] = {0x02, 0, 0, 0, 0, 0x02};
static const uint8_t mac_other[6] = {0x02, 0, 0, 0, 0, 0x03};
static const uint32_t ip_us = IP(10, 0, 0, 1);
static const uint32_t ip_peer = IP(10, 0, 0, 2);

/* Frame offsets for a frame with a 20-byte IP header. */
#define OFF_IP 14
#define OFF_UDP (OFF_IP + 20)
#define OFF_RIFT (OFF_UDP + 8)
#define OFF_PAYLOAD (OFF_RIFT + 40)

static uint8_t payload[ST_WIRE_PAYLOAD_MAX + 1];

static void fill_payload(void)
{
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i * 7 + 3);
}

TestSuite(wire, .init = fill_payload);

static st_pkt data_pkt(uint16_t len)
{
    st_pkt p;
    memset(&p, 0, sizeof(p));
    memcpy(p.eth_dst, mac_us, 6);
    memcpy(p.eth_src, mac_peer, 6);
    p.ethertype = ST_ETHERTYPE_IPV4;
    p.ip_src = ip_peer;
    p.ip_dst = ip_us;
    p.ttl = 17;
    p.udp_src = 40000;
    p.udp_dst = 7000;
    p.hdr = (st_hdr){.flags = ST_F_DATA | ST_F_ACK, .src_flow = 0x00010002, .dst_flow = 0xabcd0001,
                     .seq = 0xfffffff0, .ack = 0x12345678, .sack = 0x8000000000000006ull,
                     .msg_id = 77, .window = 256, .frag_idx = 2, .frag_cnt = 5};
    p.payload = payload;
    p.payload_len = len;
    return p;
}

static st_pkt ctl_pkt(uint8_t flags)
{
    st_pkt p = data_pkt(0);
    p.hdr.flags = flags;
    p.hdr.frag_idx = p.hdr.frag_cnt = 0;
    return p;
}

static int build(uint8_t *buf, const st_pkt *p)
{
    int n = st_wire_build(buf, ST_WIRE_FRAME_MAX, p);
    cr_assert_gt(n, 0, "build: %d", n);
    return n;
}

static st_wire_err parse(const uint8_t *buf, size_t len, st_pkt *out)
{
    return st_wire_parse(buf, len, NULL, out);
}

/* ---- an independent checksum to re-seal edited frames ---- */

static uint16_t ref_csum(const uint8_t *p, size_t n, uint32_t sum)
{
    for (size_t i = 0; i < n; i++)
        sum += (i & 1) ? p[i] : (uint32_t)p[i] << 8;
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static void seal_ip(uint8_t *f)
{
    size_t hlen = (size_t)(f[OFF_IP] & 0xf) * 4;
    put16(f + OFF_IP + 10, 0);
    put16(f + OFF_IP + 10, ref_csum(f + OFF_IP, hlen, 0));
}

static void seal_udp(uint8_t *f, size_t off_udp)
{
    uint16_t ulen = get16(f + off_udp + 4);
    uint32_t pseudo = 0;
    for (int i = 0; i < 8; i += 2)
        pseudo += get16(f + OFF_IP + 12 + i);
    pseudo += 17 + ulen;
    put16(f + off_udp + 6, 0);
    uint16_t c = ref_csum(f + off_udp, ulen, pseudo);
    put16(f + off_udp + 6, c ? c : 0xffff);
}

/* Edit then re-seal: only the field under test is wrong. */
static void reseal(uint8_t *f)
{
    seal_ip(f);
    seal_udp(f, OFF_UDP);
}

static void assert_hdr_eq(const st_hdr *a, const st_hdr *b)
{
    cr_assert_eq(a->flags, b->flags);
    cr_assert_eq(a->src_flow, b->src_flow);
    cr_assert_eq(a->dst_flow, b->dst_flow);
    cr_assert_eq(a->seq, b->seq);
    cr_assert_eq(a->ack, b->ack);
    cr_assert_eq(a->sack, b->sack);
    cr_assert_eq(a->msg_id, b->msg_id);
    cr_assert_eq(a->window, b->window);
    cr_assert_eq(a->frag_idx, b->frag_idx);
    cr_assert_eq(a->frag_cnt, b->frag_cnt);
}

/* ---- round trips ---- */

static void roundtrip(const st_pkt *in)
{
    uint8_t buf[ST_WIRE_FRAME_MAX];
    int n = build(buf, in);
    size_t want = ST_WIRE_HDRS_LEN + in->payload_len;
    cr_assert_eq((size_t)n, want < ST_WIRE_FRAME_MIN ? ST_WIRE_FRAME_MIN : want);
    st_pkt out;
    st_wire_local local = {.ip = ip_us};
    memcpy(local.mac, mac_us, 6);
    cr_assert_eq(st_wire_parse(buf, (size_t)n, &local, &out), ST_WIRE_OK);
    cr_assert_arr_eq(out.eth_dst, in->eth_dst, 6);
    cr_assert_arr_eq(out.eth_src, in->eth_src, 6);
    cr_assert_eq(out.ethertype, ST_ETHERTYPE_IPV4);
    cr_assert_eq(out.ip_src, in->ip_src);
    cr_assert_eq(out.ip_dst, in->ip_dst);
    cr_assert_eq(out.ttl, in->ttl ? in->ttl : ST_IP_TTL_DEFAULT);
    cr_assert_eq(out.udp_src, in->udp_src);
    cr_assert_eq(out.udp_dst, in->udp_dst);
    cr_assert_eq(out.hdr.version, ST_RIFT_VERSION);
    assert_hdr_eq(&out.hdr, &in->hdr);
    cr_assert_eq(out.payload_len, in->payload_len);
    if (in->payload_len)
        cr_assert_arr_eq(out.payload, in->payload, in->payload_len);
    /* The payload is borrowed from the frame, not copied. */
    cr_assert(out.payload >= buf && out.payload <= buf + n);
}

Test(wire, data_roundtrip_every_size_class)
{
    uint16_t sizes[] = {0, 1, 2, 3, 17, 1000, ST_WIRE_PAYLOAD_MAX - 1, ST_WIRE_PAYLOAD_MAX};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        st_pkt p = data_pkt(sizes[i]);
        roundtrip(&p);
    }
}

Test(wire, max_payload_is_a_full_1514_byte_frame)
{
    cr_assert_eq(ST_WIRE_PAYLOAD_MAX, 1432);
    cr_assert_eq(ST_WIRE_FRAGS_MAX, 5858);
    uint8_t buf[ST_WIRE_FRAME_MAX];
    st_pkt p = data_pkt(ST_WIRE_PAYLOAD_MAX);
    cr_assert_eq(st_wire_build(buf, sizeof(buf), &p), ST_WIRE_FRAME_MAX);
    p.payload_len = ST_WIRE_PAYLOAD_MAX + 1;
    cr_assert_eq(st_wire_build(buf, sizeof(buf), &p), -EINVAL);
}

Test(wire, control_roundtrips)
{
    uint8_t flags[] = {ST_F_SYN, ST_F_SYN | ST_F_ACK, ST_F_ACK, ST_F_RST, ST_F_RST | ST_F_ACK,
                       ST_F_FIN, ST_F_FIN | ST_F_ACK};
    for (size_t i = 0; i < sizeof(flags); i++) {
        st_pkt p = ctl_pkt(flags[i]);
        roundtrip(&p);
    }
}

Test(wire, ttl_zero_in_a_description_means_default)
{
    st_pkt p = data_pkt(10);
    p.ttl = 0;
    roundtrip(&p);
}

Test(wire, build_refuses_small_buffers_and_bad_descriptions)
{
    uint8_t buf[ST_WIRE_FRAME_MAX];
    st_pkt p = data_pkt(100);
    cr_assert_eq(st_wire_build(buf, ST_WIRE_HDRS_LEN + 99, &p), -ENOSPC);
    cr_assert_eq(st_wire_build(buf, ST_WIRE_HDRS_LEN + 100, &p), ST_WIRE_HDRS_LEN + 100);
    p.hdr.flags = 0x40;
    cr_assert_eq(st_wire_build(buf, sizeof(buf), &p), -EINVAL);
    p = data_pkt(100);
    p.hdr.frag_idx = p.hdr.frag_cnt;
    cr_assert_eq(st_wire_build(buf, sizeof(buf), &p), -EINVAL);
    p = ctl_pkt(ST_F_ACK);
    p.payload_len = 1;
    cr_assert_eq(st_wire_build(buf, sizeof(buf), &p), -EINVAL);
    p = data_pkt(10);
    p.payload = NULL;
    cr_assert_eq(st_wire_build(buf, sizeof(buf), &p), -EINVAL);
    p = data_pkt(10);
    p.ethertype = 0x86dd;
    cr_assert_eq(st_wire_build(buf, sizeof(buf), &p), -EINVAL);
    p = data_pkt(10);
    p.ip_src = 0xffffffffu;
    cr_assert_eq(st_wire_build(buf, sizeof(buf), &p), -EINVAL);
    st_pkt a;
    st_wire_arp_request(&a, mac_us, ip_us, ip_peer);
    cr_assert_eq(st_wire_build(buf, 59, &a), -ENOSPC);
    a.arp.op = 3;
    cr_assert_eq(st_wire_build(buf, sizeof(buf), &a), -EINVAL);
}

Test(wire, arp_request_and_reply_roundtrip)
{
    uint8_t buf[ST_WIRE_FRAME_MAX];
    st_pkt req, got, rep, got_rep;
    st_wire_arp_request(&req, mac_peer, ip_peer, ip_us);
    int n = build(buf, &req);
    cr_assert_eq(n, ST_WIRE_FRAME_MIN, "ARP is padded to the Ethernet minimum");
    for (int i = ST_ETH_HDR_LEN + ST_ARP_LEN; i < n; i++)
        cr_assert_eq(buf[i], 0);
    st_wire_local local = {.ip = ip_us};
    memcpy(local.mac, mac_us, 6);
    cr_assert_eq(st_wire_parse(buf, (size_t)n, &local, &got), ST_WIRE_OK, "broadcast ARP passes the filter");
    cr_assert_eq(got.ethertype, ST_ETHERTYPE_ARP);
    cr_assert_eq(got.arp.op, ST_ARP_REQUEST);
    cr_assert_arr_eq(got.arp.sha, mac_peer, 6);
    cr_assert_eq(got.arp.spa, ip_peer);
    cr_assert_eq(got.arp.tpa, ip_us);
    for (int i = 0; i < 6; i++)
        cr_assert_eq(got.eth_dst[i], 0xff);

    cr_assert_eq(st_wire_arp_reply(&rep, &got, mac_us, ip_us), 0);
    n = build(buf, &rep);
    local.ip = ip_peer;
    memcpy(local.mac, mac_peer, 6);
    cr_assert_eq(st_wire_parse(buf, (size_t)n, &local, &got_rep), ST_WIRE_OK);
    cr_assert_eq(got_rep.arp.op, ST_ARP_REPLY);
    cr_assert_arr_eq(got_rep.eth_dst, mac_peer, 6);
    cr_assert_arr_eq(got_rep.arp.sha, mac_us, 6);
    cr_assert_eq(got_rep.arp.spa, ip_us);
    cr_assert_arr_eq(got_rep.arp.tha, mac_peer, 6);
    cr_assert_eq(got_rep.arp.tpa, ip_peer);
}

Test(wire, arp_reply_only_answers_requests_for_us)
{
    st_pkt req, rep;
    st_wire_arp_request(&req, mac_peer, ip_peer, IP(10, 0, 0, 9));
    cr_assert_eq(st_wire_arp_reply(&rep, &req, mac_us, ip_us), -EINVAL);
    st_wire_arp_request(&req, mac_peer, ip_peer, ip_us);
    req.arp.op = ST_ARP_REPLY;
    cr_assert_eq(st_wire_arp_reply(&rep, &req, mac_us, ip_us), -EINVAL);
}

Test(wire, arp_for_someone_else_is_not_for_us_but_still_parsed)
{
    uint8_t buf[ST_WIRE_FRAME_MAX];
    st_pkt req, got;
    st_wire_arp_request(&req, mac_peer, ip_peer, IP(10, 0, 0, 9));
    int n = build(buf, &req);
    st_wire_local local = {.ip = ip_us};
    memcpy(local.mac, mac_us, 6);
    cr_assert_eq(st_wire_parse(buf, (size_t)n, &local, &got), ST_WIRE_NOT_FOR_US);
    cr_assert_eq(got.arp.spa, ip_peer, "the sender can still be learned");
    cr_assert_eq(parse(buf, (size_t)n, &got), ST_WIRE_OK, "no filter without local");
}

Test(wire, bad_arp_fields)
{
    uint8_t buf[ST_WIRE_FRAME_MAX], good[ST_WIRE_FRAME_MAX];
    st_pkt req, got;
    st_wire_arp_request(&req, mac_peer, ip_peer, ip_us);
    int n = build(good, &req);
    /* htype, ptype, hlen, plen, opcode */
    int offs[] = {0, 2, 4, 5, 6};
    for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
        memcpy(buf, good, (size_t)n);
        buf[ST_ETH_HDR_LEN + offs[i]] ^= 0x10;
        cr_assert_eq(parse(buf, (size_t)n, &got), ST_WIRE_BAD_ARP, "offset %d", offs[i]);
    }
}

/* ---- truncation and length ---- */

Test(wire, every_truncation_of_a_data_frame_is_rejected)
{
    uint8_t buf[ST_WIRE_FRAME_MAX];
    st_pkt p = data_pkt(333), got;
    int n = build(buf, &p);
    for (int len = 0; len < n; len++)
        cr_assert_eq(parse(buf, (size_t)len, &got), ST_WIRE_TRUNCATED, "len %d", len);
    cr_assert_eq(parse(buf, (size_t)n, &got), ST_WIRE_OK);
}

Test(wire, every_truncation_of_a_control_frame_is_rejected)
{
    uint8_t buf[ST_WIRE_FRAME_MAX];
    st_pkt p = ctl_pkt(ST_F_ACK), got;
    int n = build(buf, &p);
    cr_assert_eq(n, ST_WIRE_HDRS_LEN);
    for (int len = 0; len < n; len++)
        cr_assert_eq(parse(buf, (size_t)len, &got), ST_WIRE_TRUNCATED, "len %d", len);
}

Test(wire, every_truncation_of_an_arp_frame_is_rejected)
{
    uint8_t buf[ST_WIRE_FRAME_MAX];
    st_pkt req, got;
    st_wire_arp_request(&req, mac_peer, ip_peer, ip_us);
    build(buf, &req);
    for (int len = 0; len < ST_ETH_HDR_LEN + ST_ARP_LEN; len++)
        cr_assert_eq(parse(buf, (size_t)len, &got), ST_WIRE_TRUNCATED, "len %d", len);
    /* Without the Ethernet padding it is still a whole ARP packet. */
    cr_assert_eq(parse(buf, ST_ETH_HDR_LEN + ST_ARP_LEN, &got), ST_WIRE_OK);
}

Test(wire, ethernet_padding_after_the_ip_datagram_is_ignored)
{
    uint8_t buf[ST_WIRE_FRAME_MAX];
    st_pkt p = data_pkt(5), got;
    int n = build(buf, &p);
    memset(buf + n, 0xee, 20);
    cr_assert_eq(parse(buf, (size_t)n + 20, &got), ST_WIRE_OK);
    cr_assert_eq(got.payload_len, 5);
}

Test(wire, frames_over_1514_bytes_are_rejected)
{
    static uint8_t buf[ST_WIRE_FRAME_MAX + 100];
    st_pkt p = data_pkt(ST_WIRE_PAYLOAD_MAX), got;
    build(buf, &p);
    cr_assert_eq(parse(buf, ST_WIRE_FRAME_MAX + 1, &got), ST_WIRE_TOO_LONG);
}

Test(wire, ip_total_length_above_mtu_is_rejected)
{
    uint8_t buf[ST_WIRE_FRAME_MAX];
    st_pkt p = data_pkt(10), got;
    int n = build(buf, &p);
    put16(buf + OFF_IP + 2, ST_WIRE_MTU + 1);
    seal_ip(buf);
    cr_assert_eq(parse(buf, (size_t)n, &got), ST_WIRE_BAD_IP_LEN);
}

Test(wire, udp_length_must_match_the_ip_payload)
{
    uint8_t buf[ST_WIRE_FRAME_MAX];
    st_pkt p = data_pkt(10), got;
    int n = build(buf, &p);
    uint16_t ulen = get16(buf + OFF_UDP + 4);
    uint16_t bad[] = {0, 7, (uint16_t)(ulen - 1), (uint16_t)(ulen + 1), 0xffff};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t f[ST_WIRE_FRAME_MAX];
        memcpy(f, buf, (size_t)n);
        put16(f + OFF_UDP + 4, bad[i]);
        put16(f + OFF_UDP + 6, 0);
        cr_assert_eq(parse(f, (size_t)n, &got), ST_WIRE_BAD_UDP_LEN, "ulen %u", bad[i]);
    }
}

Test(wire, payload_length_field_must_match_the_udp_length)
{
    uint8_t buf[ST_WIRE_FRAME_MAX];
    st_pkt p = data_pkt(10), got;
    int n = build(buf, &p);
    put16(buf + OFF_RIFT + 38, 11);
    reseal(buf);
    cr_assert_eq(parse(buf, (size_t)n, &got), ST_WIRE_BAD_PAYLOAD_LEN);
    put16(buf + OFF_RIFT + 38, 9);
    reseal(buf);
    cr_assert_eq(parse(buf, (size_t)n, &got), ST_WIRE_BAD_PAYLOAD_LEN);
}

/* ---- checksums ---- */

Test(wire, any_bit_flip_in_the_ip_header_is_caught)
{
    uint8_t good[ST_WIRE_FRAME_MAX], buf[ST_WIRE_FRAME_MAX];
    st_pkt p = data_pkt(64), got;
    int n = build(good, &p);
    for (int off = 0; off < 20; off++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(buf, good, (size_t)n);
            buf[OFF_IP + off] ^= (uint8_t)(1 << bit);
            st_wire_err e = parse(buf, (size_t)n, &got);
            cr_assert_neq(e, ST_WIRE_OK, "offset %d bit %d", off, bit);
            /* Past version and length, the checksum is checked before any field. */
            if (off == 1 || off >= 4)
                cr_assert_eq(e, ST_WIRE_BAD_IP_CSUM, "offset %d bit %d: %s", off, bit, st_wire_err_name(e));
        }
    }
}

Test(wire, any_bit_flip_in_udp_rift_or_payload_is_caught)
{
    uint8_t good[ST_WIRE_FRAME_MAX], buf[ST_WIRE_FRAME_MAX];
    st_pkt p = data_pkt(101), got;
    int n = build(good, &p);
    uint16_t csum = get16(good + OFF_UDP + 6);
    for (int off = OFF_UDP; off < n; off++) {
        if (off == OFF_UDP + 4 || off == OFF_UDP + 5)
            continue; /* the UDP length: its own reason, tested above */
        for (int bit = 0; bit < 8; bit++) {
            memcpy(buf, good, (size_t)n);
            buf[off] ^= (uint8_t)(1 << bit);
            if (get16(buf + OFF_UDP + 6) == 0 && csum != 0)
                continue; /* a flip that zeroes the checksum disables it */
            cr_assert_eq(parse(buf, (size_t)n, &got), ST_WIRE_BAD_UDP_CSUM, "offset %d bit %d", off, bit);
        }
    }
}

Test(wire, udp_checksum_zero_means_none)
{
    uint8_t buf[ST_WIRE_FRAME_MAX];
    st_pkt p = data_pkt(20), got;
    int n = build(buf, &p);
    cr_assert_neq(get16(buf + OFF_UDP + 6), 0, "we always compute one");
    put16(buf + OFF_UDP + 6, 0);
    buf[OFF_PAYLOAD] ^= 0xff;
    cr_assert_eq(parse(buf, (size_t)n, &got), ST_WIRE_OK);
    cr_assert_eq(got.payload[0], (uint8_t)(payload[0] ^ 0xff));
}

Test(wire, odd_length_checksums_match_the_reference)
{
    uint8_t buf[ST_WIRE_FRAME_MAX], ref[ST_WIRE_FRAME_MAX];
    for (uint16_t len = 0; len < 40; len++) {
        st_pkt p = data_pkt(len);
        int n = build(buf, &p);
        memcpy(ref, buf, (size_t)n);
        reseal(ref);
        cr_assert_arr_eq(buf, ref, (size_t)n, "payload %u", len);
    }
}

/* ---- IPv4 ---- */

static st_wire_err parse_edited_ip(int off, uint8_t value)
{
    uint8_t buf[ST_WIRE_FRAME_MAX];
    st_pkt p = data_pkt(10), got;
    int n = build(buf, &p);
    buf[OFF_IP + off] = value;
    seal_ip(buf);
    return parse(buf, (size_t)n, &got);
}

Test(wire, ipv4_field_checks)
{
    cr_assert_eq(parse_edited_ip(0, 0x65), ST_WIRE_BAD_IP_VERSION);
    cr_assert_eq(parse_edited_ip(0, 0x44), ST_WIRE_BAD_IP_HLEN);
    cr_assert_eq(parse_edited_ip(0, 0x40), ST_WIRE_BAD_IP_HLEN);
    cr_assert_eq(parse_edited_ip(8, 0), ST_WIRE_TTL_EXPIRED);
    cr_assert_eq(parse_edited_ip(8, 1), ST_WIRE_OK);
    cr_assert_eq(parse_edited_ip(9, 6), ST_WIRE_BAD_IP_PROTO);
    /* A re-sealed IP header with another source still fails the UDP pseudo header. */
    cr_assert_eq(parse_edited_ip(15, 0x63), ST_WIRE_BAD_UDP_CSUM);
}

Test(wire, ipv4_fragments_are_rejected)
{
    uint8_t buf[ST_WIRE_FRAME_MAX];
    st_pkt p = data_pkt(10), got;
    int n = build(buf, &p);
    cr_assert_eq(get16(buf + OFF_IP + 6), 0x4000, "we set DF");
    uint16_t frags[] = {0x2000 /* MF */, 0x0001 /* offset 8 */, 0x3fff, 0x6000 /* DF|MF */};
    for (size_t i = 0; i < sizeof(frags) / sizeof(frags[0]); i++) {
        put16(buf + OFF_IP + 6, frags[i]);
        seal_ip(buf);
        cr_assert_eq(parse(buf, (size_t)n, &got), ST_WIRE_IP_FRAGMENT, "flags %#x", frags[i]);
    }
    put16(buf + OFF_IP + 6, 0);
    seal_ip(buf);
    cr_assert_eq(parse(buf, (size_t)n, &got), ST_WIRE_OK, "DF is not required");
}

Test(wire, ipv4_source_must_be_unicast)
{
    uint32_t bad[] = {0, 0xffffffffu, IP(224, 0, 0, 1), IP(239, 1, 2, 3)};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t buf[ST_WIRE_FRAME_MAX];
        st_pkt p = data_pkt(10), got;
        int n = build(buf, &p);
        for (int b = 0; b < 4; b++)
            buf[OFF_IP + 12 + b] = (uint8_t)(bad[i] >> (24 - 8 * b));
        reseal(buf);
        cr_assert_eq(parse(buf, (size_t)n, &got), ST_WIRE_BAD_IP_ADDR, "src %#x", bad[i]);
    }
}

Test(wire, ipv4_options_are_skipped)
{
    uint8_t base[ST_WIRE_FRAME_MAX], buf[ST_WIRE_FRAME_MAX];
    st_pkt p = data_pkt(50), got;
    int n = build(base, &p);
    /* Insert 8 bytes of NOP options: IHL 7, total length + 8. */
    memcpy(buf, base, OFF_UDP);
    memset(buf + OFF_UDP, 1, 8);
    memcpy(buf + OFF_UDP + 8, base + OFF_UDP, (size_t)n - OFF_UDP);
    buf[OFF_IP] = 0x47;
    put16(buf + OFF_IP + 2, (uint16_t)(get16(base + OFF_IP + 2) + 8));
    seal_ip(buf);
    cr_assert_eq(parse(buf, (size_t)n + 8, &got), ST_WIRE_OK);
    cr_assert_eq(got.payload_len, 50);
    cr_assert_arr_eq(got.payload, payload, 50);
    cr_assert_eq(got.hdr.seq, p.hdr.seq);
    /* The options are under the header checksum. */
    buf[OFF_UDP + 3] = 0;
    cr_assert_eq(parse(buf, (size_t)n + 8, &got), ST_WIRE_BAD_IP_CSUM);
}

Test(wire, non_ip_non_arp_ethertypes_are_rejected)
{
    uint8_t buf[ST_WIRE_FRAME_MAX];
    st_pkt p = data_pkt(10), got;
    int n = build(buf, &p);
    uint16_t types[] = {0x8100 /* VLAN */, 0x86dd /* IPv6 */, 0x0000, 0x88cc};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        put16(buf + 12, types[i]);
        cr_assert_eq(parse(buf, (size_t)n, &got), ST_WIRE_BAD_ETHERTYPE);
    }
}

/* ---- rift header ---- */

static st_wire_err parse_edited_rift(int off, const uint8_t *bytes, size_t nb, uint16_t plen)
{
    uint8_t buf[ST_WIRE_FRAME_MAX];
    st_pkt p = data_pkt(plen), got;
    int n = build(buf, &p);
    memcpy(buf + OFF_RIFT + off, bytes, nb);
    reseal(buf);
    return parse(buf, (size_t)n, &got);
}

Test(wire, bad_magic_and_version)
{
    uint8_t magic[2] = {0x52, 0x47};
    cr_assert_eq(parse_edited_rift(0, magic, 2, 10), ST_WIRE_BAD_MAGIC);
    uint8_t v[] = {0, 2, 0xff};
    for (size_t i = 0; i < sizeof(v); i++)
        cr_assert_eq(parse_edited_rift(2, &v[i], 1, 10), ST_WIRE_BAD_VERSION, "version %u", v[i]);
}

Test(wire, unknown_or_impossible_flags_are_rejected)
{
    uint8_t bad[] = {0, 0x20, 0x40, 0x80, ST_F_DATA | 0x20, ST_F_SYN | ST_F_RST, ST_F_SYN | ST_F_FIN,
                     ST_F_RST | ST_F_FIN, ST_F_DATA | ST_F_FIN};
    for (size_t i = 0; i < sizeof(bad); i++) {
        cr_assert_eq(parse_edited_rift(3, &bad[i], 1, 10), ST_WIRE_BAD_FLAGS, "flags %#x", bad[i]);
        st_hdr h = {.flags = bad[i], .frag_cnt = 1};
        cr_assert_eq(st_wire_hdr_check(&h, 0), ST_WIRE_BAD_FLAGS);
    }
    /* SYN|DATA and RST|DATA with a payload: still a flags problem, not a length one. */
    uint8_t sd = ST_F_SYN | ST_F_DATA, rd = ST_F_RST | ST_F_DATA;
    cr_assert_eq(parse_edited_rift(3, &sd, 1, 10), ST_WIRE_BAD_FLAGS);
    cr_assert_eq(parse_edited_rift(3, &rd, 1, 10), ST_WIRE_BAD_FLAGS);
}

Test(wire, fragment_fields)
{
    /* data_pkt has frag 2 of 5; offsets 34 (idx) and 36 (cnt). */
    uint8_t idx5[2] = {0, 5}, idx6[2] = {0, 6}, cnt0[2] = {0, 0}, idx4[2] = {0, 4};
    cr_assert_eq(parse_edited_rift(34, idx5, 2, 10), ST_WIRE_BAD_FRAG, "index == count");
    cr_assert_eq(parse_edited_rift(34, idx6, 2, 10), ST_WIRE_BAD_FRAG, "index > count");
    cr_assert_eq(parse_edited_rift(36, cnt0, 2, 10), ST_WIRE_BAD_FRAG, "count 0");
    cr_assert_eq(parse_edited_rift(34, idx4, 2, 10), ST_WIRE_OK, "last fragment");
    uint8_t max_ok[4] = {(ST_WIRE_FRAGS_MAX - 1) >> 8, (ST_WIRE_FRAGS_MAX - 1) & 0xff, ST_WIRE_FRAGS_MAX >> 8,
                         ST_WIRE_FRAGS_MAX & 0xff};
    cr_assert_eq(parse_edited_rift(34, max_ok, 4, 10), ST_WIRE_OK, "the 8 MiB maximum");
    uint8_t too_many[2] = {(ST_WIRE_FRAGS_MAX + 1) >> 8, (ST_WIRE_FRAGS_MAX + 1) & 0xff};
    cr_assert_eq(parse_edited_rift(36, too_many, 2, 10), ST_WIRE_BAD_FRAG, "above 8 MiB");
}

Test(wire, control_packets_carry_no_payload_and_no_fragment)
{
    uint8_t ack = ST_F_ACK;
    cr_assert_eq(parse_edited_rift(3, &ack, 1, 10), ST_WIRE_BAD_FRAG, "fragment fields on an ACK");
    uint8_t buf[ST_WIRE_FRAME_MAX];
    st_pkt p = ctl_pkt(ST_F_ACK), got;
    int n = build(buf, &p);
    buf[OFF_RIFT + 37] = 1; /* frag_cnt = 1 */
    reseal(buf);
    cr_assert_eq(parse(buf, (size_t)n, &got), ST_WIRE_BAD_FRAG);
    st_hdr h = {.flags = ST_F_ACK};
    cr_assert_eq(st_wire_hdr_check(&h, 1), ST_WIRE_BAD_PAYLOAD_LEN);
    cr_assert_eq(st_wire_hdr_check(&h, 0), ST_WIRE_OK);
}

/* ---- destination filtering ---- */

Test(wire, mac_filter)
{
    uint8_t buf[ST_WIRE_FRAME_MAX];
    st_pkt p = data_pkt(10);
    int n = build(buf, &p);
    cr_assert(st_wire_mac_accept(buf, (size_t)n, mac_us));
    cr_assert_not(st_wire_mac_accept(buf, (size_t)n, mac_other));
    cr_assert_not(st_wire_mac_accept(buf, 13, mac_us), "too short to tell");
    memset(p.eth_dst, 0xff, 6);
    n = build(buf, &p);
    cr_assert_not(st_wire_mac_accept(buf, (size_t)n, mac_us), "broadcast IPv4 is not for us");
    st_pkt req;
    st_wire_arp_request(&req, mac_peer, ip_peer, ip_us);
    n = build(buf, &req);
    cr_assert(st_wire_mac_accept(buf, (size_t)n, mac_us), "broadcast ARP is");
    memcpy(buf, mac_other, 6);
    cr_assert_not(st_wire_mac_accept(buf, (size_t)n, mac_us), "unicast ARP to another host is not");
}

Test(wire, parse_with_local_filters_mac_and_ip)
{
    uint8_t buf[ST_WIRE_FRAME_MAX];
    st_wire_local local = {.ip = ip_us};
    memcpy(local.mac, mac_us, 6);
    st_pkt p = data_pkt(10), got;
    int n = build(buf, &p);
    cr_assert_eq(st_wire_parse(buf, (size_t)n, &local, &got), ST_WIRE_OK);
    memcpy(local.mac, mac_other, 6);
    cr_assert_eq(st_wire_parse(buf, (size_t)n, &local, &got), ST_WIRE_NOT_FOR_US);
    memcpy(local.mac, mac_us, 6);
    local.ip = IP(10, 0, 0, 9);
    cr_assert_eq(st_wire_parse(buf, (size_t)n, &local, &got), ST_WIRE_NOT_FOR_US);
    cr_assert_eq(st_wire_parse(buf, 10, &local, &got), ST_WIRE_TRUNCATED, "too short beats the filter");
}

Test(wire, error_names_are_distinct)
{
    for (int i = 0; i < ST_WIRE_ERR_COUNT; i++) {
        cr_assert_str_neq(st_wire_err_name(i), "unknown", "%d has no name", i);
        for (int j = 0; j < i; j++)
            cr_assert_str_neq(st_wire_err_name(i), st_wire_err_name(j));
    }
    cr_assert_str_eq(st_wire_err_name(ST_WIRE_ERR_COUNT), "unknown");
    cr_assert_str_eq(st_wire_err_name(-1), "unknown");
    cr_assert_str_eq(st_wire_err_name(ST_WIRE_BAD_IP_CSUM), "bad_ip_csum");
}
