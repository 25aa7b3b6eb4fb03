/* st_wire.c — parse and build Ethernet / ARP / IPv4 / UDP / rift frames.
 *
 * Every read goes through the byte helpers below with an offset already checked
 * against the frame length, so malformed input can only produce an error value. */
#include "st_wire.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

static const uint8_t eth_bcast[ST_ETH_ADDR_LEN] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

/* ---- byte order helpers ---- */

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t rd64(const uint8_t *p)
{
    return (uint64_t)rd32(p) << 32 | rd32(p + 4);
}

static void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void wr32(uint8_t *p, uint32_t v)
{
    wr16(p, (uint16_t)(v >> 16));
    wr16(p + 2, (uint16_t)v);
}

static void wr64(uint8_t *p, uint64_t v)
{
    wr32(p, (uint32_t)(v >> 32));
    wr32(p + 4, (uint32_t)v);
}

/* ---- Internet checksum (RFC 1071) ---- */

static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t n)
{
    for (; n >= 2; p += 2, n -= 2)
        sum += rd16(p);
    if (n)
        sum += (uint32_t)p[0] << 8;
    return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

/* The pseudo header's share of the UDP checksum. */
static uint32_t csum_pseudo(uint32_t src, uint32_t dst, uint16_t udp_len)
{
    uint32_t sum = (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff);
    return sum + ST_IPPROTO_UDP + udp_len;
}

/* ---- names ---- */

const char *st_wire_err_name(int e)
{
    static const char *const names[ST_WIRE_ERR_COUNT] = {
        [ST_WIRE_OK] = "ok",
        [ST_WIRE_TRUNCATED] = "truncated",
        [ST_WIRE_TOO_LONG] = "too_long",
        [ST_WIRE_NOT_FOR_US] = "not_for_us",
        [ST_WIRE_BAD_ETHERTYPE] = "bad_ethertype",
        [ST_WIRE_BAD_ARP] = "bad_arp",
        [ST_WIRE_BAD_IP_VERSION] = "bad_ip_version",
        [ST_WIRE_BAD_IP_HLEN] = "bad_ip_hlen",
        [ST_WIRE_BAD_IP_LEN] = "bad_ip_len",
        [ST_WIRE_BAD_IP_CSUM] = "bad_ip_csum",
        [ST_WIRE_IP_FRAGMENT] = "ip_fragment",
        [ST_WIRE_TTL_EXPIRED] = "ttl_expired",
        [ST_WIRE_BAD_IP_PROTO] = "bad_ip_proto",
        [ST_WIRE_BAD_IP_ADDR] = "bad_ip_addr",
        [ST_WIRE_BAD_UDP_LEN] = "bad_udp_len",
        [ST_WIRE_BAD_UDP_CSUM] = "bad_udp_csum",
        [ST_WIRE_BAD_MAGIC] = "bad_magic",
        [ST_WIRE_BAD_VERSION] = "bad_version",
        [ST_WIRE_BAD_FLAGS] = "bad_flags",
        [ST_WIRE_BAD_FRAG] = "bad_frag",
        [ST_WIRE_BAD_PAYLOAD_LEN] = "bad_payload_len",
    };
    if (e < 0 || e >= ST_WIRE_ERR_COUNT)
        return "unknown";
    return names[e];
}

/* ---- validation shared by parse and build ---- */

static bool flags_ok(uint8_t f)
{
    if (f == 0 || (f & ~ST_F_ALL))
        return false;
    if ((f & ST_F_SYN) && (f & (ST_F_RST | ST_F_DATA | ST_F_FIN)))
        return false;
    if ((f & ST_F_RST) && (f & (ST_F_DATA | ST_F_FIN)))
        return false;
    return !((f & ST_F_DATA) && (f & ST_F_FIN));
}

st_wire_err st_wire_hdr_check(const st_hdr *h, uint16_t payload_len)
{
    if (!flags_ok(h->flags))
        return ST_WIRE_BAD_FLAGS;
    if (payload_len > ST_WIRE_PAYLOAD_MAX)
        return ST_WIRE_BAD_PAYLOAD_LEN;
    if (!(h->flags & ST_F_DATA)) {
        /* Control packets carry nothing: a payload there is a confused peer. */
        if (h->frag_idx != 0 || h->frag_cnt != 0)
            return ST_WIRE_BAD_FRAG;
        return payload_len == 0 ? ST_WIRE_OK : ST_WIRE_BAD_PAYLOAD_LEN;
    }
    if (h->frag_cnt == 0 || h->frag_cnt > ST_WIRE_FRAGS_MAX || h->frag_idx >= h->frag_cnt)
        return ST_WIRE_BAD_FRAG;
    return ST_WIRE_OK;
}

static bool ip_unicast(uint32_t ip)
{
    return ip != 0 && ip != 0xffffffffu && (ip >> 28) != 0xe;
}

/* ---- parse ---- */

bool st_wire_mac_accept(const uint8_t *frame, size_t len, const uint8_t mac[ST_ETH_ADDR_LEN])
{
    if (len < ST_ETH_HDR_LEN)
        return false;
    if (memcmp(frame, mac, ST_ETH_ADDR_LEN) == 0)
        return true;
    return memcmp(frame, eth_bcast, ST_ETH_ADDR_LEN) == 0 && rd16(frame + 12) == ST_ETHERTYPE_ARP;
}

static st_wire_err parse_arp(const uint8_t *p, size_t len, const st_wire_local *local, st_pkt *out)
{
    if (len < ST_ARP_LEN)
        return ST_WIRE_TRUNCATED;
    /* Only IPv4 over Ethernet: htype 1, ptype IPv4, hlen 6, plen 4. */
    if (rd16(p) != 1 || rd16(p + 2) != ST_ETHERTYPE_IPV4 || p[4] != 6 || p[5] != 4)
        return ST_WIRE_BAD_ARP;
    st_arp *a = &out->arp;
    a->op = rd16(p + 6);
    memcpy(a->sha, p + 8, ST_ETH_ADDR_LEN);
    a->spa = rd32(p + 14);
    memcpy(a->tha, p + 18, ST_ETH_ADDR_LEN);
    a->tpa = rd32(p + 24);
    if (a->op != ST_ARP_REQUEST && a->op != ST_ARP_REPLY)
        return ST_WIRE_BAD_ARP;
    if (local && a->tpa != local->ip)
        return ST_WIRE_NOT_FOR_US;
    return ST_WIRE_OK;
}

static void parse_rift_fields(const uint8_t *p, st_hdr *h)
{
    h->version = p[2];
    h->flags = p[3];
    h->src_flow = rd32(p + 4);
    h->dst_flow = rd32(p + 8);
    h->seq = rd32(p + 12);
    h->ack = rd32(p + 16);
    h->sack = rd64(p + 20);
    h->msg_id = rd32(p + 28);
    h->window = rd16(p + 32);
    h->frag_idx = rd16(p + 34);
    h->frag_cnt = rd16(p + 36);
}

/* p points at the rift header; len is the UDP payload length. */
static st_wire_err parse_rift(const uint8_t *p, size_t len, st_pkt *out)
{
    if (len < ST_RIFT_HDR_LEN)
        return ST_WIRE_TRUNCATED;
    if (rd16(p) != ST_RIFT_MAGIC)
        return ST_WIRE_BAD_MAGIC;
    parse_rift_fields(p, &out->hdr);
    if (out->hdr.version != ST_RIFT_VERSION)
        return ST_WIRE_BAD_VERSION;
    uint16_t plen = rd16(p + 38);
    if (plen != len - ST_RIFT_HDR_LEN)
        return ST_WIRE_BAD_PAYLOAD_LEN;
    st_wire_err e = st_wire_hdr_check(&out->hdr, plen);
    if (e != ST_WIRE_OK)
        return e;
    out->payload = p + ST_RIFT_HDR_LEN;
    out->payload_len = plen;
    return ST_WIRE_OK;
}

/* p points at the UDP header; len is the IP payload length. */
static st_wire_err parse_udp(const uint8_t *p, size_t len, st_pkt *out)
{
    if (len < ST_UDP_HDR_LEN)
        return ST_WIRE_TRUNCATED;
    out->udp_src = rd16(p);
    out->udp_dst = rd16(p + 2);
    uint16_t ulen = rd16(p + 4);
    if (ulen < ST_UDP_HDR_LEN || ulen != len)
        return ST_WIRE_BAD_UDP_LEN;
    /* Zero means the sender computed none (allowed in IPv4). */
    if (rd16(p + 6) != 0) {
        uint32_t sum = csum_add(csum_pseudo(out->ip_src, out->ip_dst, ulen), p, ulen);
        if (csum_fold(sum) != 0)
            return ST_WIRE_BAD_UDP_CSUM;
    }
    return parse_rift(p + ST_UDP_HDR_LEN, ulen - ST_UDP_HDR_LEN, out);
}

/* Check the fixed IPv4 header fields; *hlen_out and *tot_out on success. */
static st_wire_err ip_check(const uint8_t *p, size_t len, size_t *hlen_out, size_t *tot_out)
{
    if (len < ST_IP_HDR_LEN)
        return ST_WIRE_TRUNCATED;
    if (p[0] >> 4 != 4)
        return ST_WIRE_BAD_IP_VERSION;
    size_t hlen = (size_t)(p[0] & 0xf) * 4;
    size_t tot = rd16(p + 2);
    if (tot > ST_WIRE_MTU)
        return ST_WIRE_BAD_IP_LEN;
    if (hlen < ST_IP_HDR_LEN || hlen > tot)
        return ST_WIRE_BAD_IP_HLEN;
    if (tot > len)
        return ST_WIRE_TRUNCATED;
    if (csum_fold(csum_add(0, p, hlen)) != 0)
        return ST_WIRE_BAD_IP_CSUM;
    /* Bits: reserved, DF, MF, 13-bit offset. Only MF and the offset fragment. */
    if (rd16(p + 6) & 0x3fff)
        return ST_WIRE_IP_FRAGMENT;
    if (p[8] == 0)
        return ST_WIRE_TTL_EXPIRED;
    if (p[9] != ST_IPPROTO_UDP)
        return ST_WIRE_BAD_IP_PROTO;
    *hlen_out = hlen;
    *tot_out = tot;
    return ST_WIRE_OK;
}

/* p points at the IPv4 header; len is what the frame holds after Ethernet
 * (possibly padding beyond the IP total length). */
static st_wire_err parse_ipv4(const uint8_t *p, size_t len, const st_wire_local *local, st_pkt *out)
{
    size_t hlen = 0, tot = 0;
    st_wire_err e = ip_check(p, len, &hlen, &tot);
    if (e != ST_WIRE_OK)
        return e;
    out->ttl = p[8];
    out->ip_src = rd32(p + 12);
    out->ip_dst = rd32(p + 16);
    if (!ip_unicast(out->ip_src))
        return ST_WIRE_BAD_IP_ADDR;
    if (local && out->ip_dst != local->ip)
        return ST_WIRE_NOT_FOR_US;
    /* Options (IHL > 5) are covered by the checksum and otherwise skipped. */
    return parse_udp(p + hlen, tot - hlen, out);
}

st_wire_err st_wire_parse(const uint8_t *frame, size_t len, const st_wire_local *local, st_pkt *out)
{
    memset(out, 0, sizeof(*out));
    if (len < ST_ETH_HDR_LEN)
        return ST_WIRE_TRUNCATED;
    if (len > ST_WIRE_FRAME_MAX)
        return ST_WIRE_TOO_LONG;
    memcpy(out->eth_dst, frame, ST_ETH_ADDR_LEN);
    memcpy(out->eth_src, frame + 6, ST_ETH_ADDR_LEN);
    out->ethertype = rd16(frame + 12);
    if (local && !st_wire_mac_accept(frame, len, local->mac))
        return ST_WIRE_NOT_FOR_US;
    const uint8_t *p = frame + ST_ETH_HDR_LEN;
    size_t rest = len - ST_ETH_HDR_LEN;
    switch (out->ethertype) {
    case ST_ETHERTYPE_ARP:
        return parse_arp(p, rest, local, out);
    case ST_ETHERTYPE_IPV4:
        return parse_ipv4(p, rest, local, out);
    default:
        return ST_WIRE_BAD_ETHERTYPE;
    }
}

/* ---- build ---- */

static void build_eth(uint8_t *buf, const st_pkt *p, uint16_t ethertype)
{
    memcpy(buf, p->eth_dst, ST_ETH_ADDR_LEN);
    memcpy(buf + 6, p->eth_src, ST_ETH_ADDR_LEN);
    wr16(buf + 12, ethertype);
}

/* Pad to the Ethernet minimum; returns the final frame length. */
static int pad_frame(uint8_t *buf, size_t len)
{
    assert(len <= ST_WIRE_FRAME_MAX);
    if (len < ST_WIRE_FRAME_MIN) {
        memset(buf + len, 0, ST_WIRE_FRAME_MIN - len);
        len = ST_WIRE_FRAME_MIN;
    }
    return (int)len;
}

static int build_arp(uint8_t *buf, size_t cap, const st_pkt *p)
{
    const st_arp *a = &p->arp;
    if (a->op != ST_ARP_REQUEST && a->op != ST_ARP_REPLY)
        return -EINVAL;
    if (cap < ST_WIRE_FRAME_MIN)
        return -ENOSPC;
    build_eth(buf, p, ST_ETHERTYPE_ARP);
    uint8_t *q = buf + ST_ETH_HDR_LEN;
    wr16(q, 1);
    wr16(q + 2, ST_ETHERTYPE_IPV4);
    q[4] = 6;
    q[5] = 4;
    wr16(q + 6, a->op);
    memcpy(q + 8, a->sha, ST_ETH_ADDR_LEN);
    wr32(q + 14, a->spa);
    memcpy(q + 18, a->tha, ST_ETH_ADDR_LEN);
    wr32(q + 24, a->tpa);
    return pad_frame(buf, ST_ETH_HDR_LEN + ST_ARP_LEN);
}

static void build_rift(uint8_t *q, const st_pkt *p)
{
    const st_hdr *h = &p->hdr;
    wr16(q, ST_RIFT_MAGIC);
    q[2] = ST_RIFT_VERSION;
    q[3] = h->flags;
    wr32(q + 4, h->src_flow);
    wr32(q + 8, h->dst_flow);
    wr32(q + 12, h->seq);
    wr32(q + 16, h->ack);
    wr64(q + 20, h->sack);
    wr32(q + 28, h->msg_id);
    wr16(q + 32, h->window);
    wr16(q + 34, h->frag_idx);
    wr16(q + 36, h->frag_cnt);
    wr16(q + 38, p->payload_len);
    if (p->payload_len)
        memcpy(q + ST_RIFT_HDR_LEN, p->payload, p->payload_len);
}

static void build_udp(uint8_t *q, const st_pkt *p, uint16_t ulen)
{
    wr16(q, p->udp_src);
    wr16(q + 2, p->udp_dst);
    wr16(q + 4, ulen);
    wr16(q + 6, 0);
    build_rift(q + ST_UDP_HDR_LEN, p);
    uint16_t c = csum_fold(csum_add(csum_pseudo(p->ip_src, p->ip_dst, ulen), q, ulen));
    wr16(q + 6, c ? c : 0xffff); /* 0 would mean "no checksum" */
}

static void build_ip(uint8_t *q, const st_pkt *p, uint16_t tot)
{
    q[0] = 0x45;
    q[1] = 0;
    wr16(q + 2, tot);
    wr16(q + 4, 0);      /* id: unused for atomic datagrams (RFC 6864) */
    wr16(q + 6, 0x4000); /* DF */
    q[8] = p->ttl ? p->ttl : ST_IP_TTL_DEFAULT;
    q[9] = ST_IPPROTO_UDP;
    wr16(q + 10, 0);
    wr32(q + 12, p->ip_src);
    wr32(q + 16, p->ip_dst);
    wr16(q + 10, csum_fold(csum_add(0, q, ST_IP_HDR_LEN)));
}

static int build_ipv4(uint8_t *buf, size_t cap, const st_pkt *p)
{
    if (st_wire_hdr_check(&p->hdr, p->payload_len) != ST_WIRE_OK)
        return -EINVAL;
    if (!ip_unicast(p->ip_src) || (p->payload_len && !p->payload))
        return -EINVAL;
    size_t len = ST_WIRE_HDRS_LEN + (size_t)p->payload_len;
    assert(len <= ST_WIRE_FRAME_MAX);
    if (cap < len)
        return -ENOSPC;
    build_eth(buf, p, ST_ETHERTYPE_IPV4);
    uint16_t ulen = (uint16_t)(ST_UDP_HDR_LEN + ST_RIFT_HDR_LEN + p->payload_len);
    build_ip(buf + ST_ETH_HDR_LEN, p, (uint16_t)(ST_IP_HDR_LEN + ulen));
    build_udp(buf + ST_ETH_HDR_LEN + ST_IP_HDR_LEN, p, ulen);
    return pad_frame(buf, len);
}

int st_wire_build(uint8_t *buf, size_t cap, const st_pkt *p)
{
    if (p->ethertype == ST_ETHERTYPE_ARP)
        return build_arp(buf, cap, p);
    if (p->ethertype != ST_ETHERTYPE_IPV4 && p->ethertype != 0)
        return -EINVAL;
    return build_ipv4(buf, cap, p);
}

/* ---- ARP helpers ---- */

void st_wire_arp_request(st_pkt *out, const uint8_t mac[ST_ETH_ADDR_LEN], uint32_t ip, uint32_t target_ip)
{
    memset(out, 0, sizeof(*out));
    memcpy(out->eth_dst, eth_bcast, ST_ETH_ADDR_LEN);
    memcpy(out->eth_src, mac, ST_ETH_ADDR_LEN);
    out->ethertype = ST_ETHERTYPE_ARP;
    out->arp.op = ST_ARP_REQUEST;
    memcpy(out->arp.sha, mac, ST_ETH_ADDR_LEN);
    out->arp.spa = ip;
    out->arp.tpa = target_ip;
}

int st_wire_arp_reply(st_pkt *out, const st_pkt *req, const uint8_t mac[ST_ETH_ADDR_LEN], uint32_t ip)
{
    if (req->ethertype != ST_ETHERTYPE_ARP || req->arp.op != ST_ARP_REQUEST || req->arp.tpa != ip)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    memcpy(out->eth_dst, req->arp.sha, ST_ETH_ADDR_LEN);
    memcpy(out->eth_src, mac, ST_ETH_ADDR_LEN);
    out->ethertype = ST_ETHERTYPE_ARP;
    out->arp.op = ST_ARP_REPLY;
    memcpy(out->arp.sha, mac, ST_ETH_ADDR_LEN);
    out->arp.spa = ip;
    memcpy(out->arp.tha, req->arp.sha, ST_ETH_ADDR_LEN);
    out->arp.tpa = req->arp.spa;
    return 0;
}
