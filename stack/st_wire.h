/* st_wire.h — the LCD dataplane's wire formats: Ethernet II, ARP (IPv4 over
 * Ethernet), IPv4, UDP and the rift transport header.
 *
 * Pure C over byte buffers: no DPDK, no allocation. The parser validates every
 * length and field and names the reason a frame is rejected (st_wire_err), so
 * rift-stackd can count malformed frames per reason; it never reads past `len`.
 * The builder writes a whole frame with software checksums (the LCD NIC model
 * assumes no offloads) and refuses to build anything the parser would reject.
 *
 * Frames are at most 1514 bytes (1500 MTU, no VLAN tag, no FCS). IP never
 * fragments: rift segments messages itself, so IPv4 fragments are rejected and
 * every frame we build carries DF.
 *
 * rift header (40 bytes, network byte order, right after the UDP header):
 *   0 magic u16 | 2 version u8 | 3 flags u8 | 4 src_flow u32 | 8 dst_flow u32
 *  12 seq u32 | 16 ack u32 | 20 sack u64 | 28 msg_id u32 | 32 window u16
 *  34 frag_idx u16 | 36 frag_cnt u16 | 38 payload_len u16
 * ack is cumulative (every packet <= ack received); sack bit i set = packet
 * ack+1+i received; window counts packets. DATA packets carry one fragment of
 * message msg_id (frag_idx < frag_cnt); other packets carry no payload and zero
 * fragment fields. IP addresses in st_pkt are host byte order. */
#ifndef ST_WIRE_H
#define ST_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ST_ETH_ADDR_LEN 6
#define ST_ETH_HDR_LEN 14
#define ST_ARP_LEN 28
#define ST_IP_HDR_LEN 20       /* we build without options */
#define ST_UDP_HDR_LEN 8
#define ST_RIFT_HDR_LEN 40
#define ST_WIRE_MTU 1500
#define ST_WIRE_FRAME_MAX (ST_ETH_HDR_LEN + ST_WIRE_MTU) /* 1514 */
#define ST_WIRE_FRAME_MIN 60   /* Ethernet minimum without FCS; we pad to it */
#define ST_WIRE_HDRS_LEN (ST_ETH_HDR_LEN + ST_IP_HDR_LEN + ST_UDP_HDR_LEN + ST_RIFT_HDR_LEN)
/* Payload bytes per packet: 1500 - IPv4 - UDP - rift header = 1432. */
#define ST_WIRE_PAYLOAD_MAX (ST_WIRE_MTU - ST_IP_HDR_LEN - ST_UDP_HDR_LEN - ST_RIFT_HDR_LEN)
/* Largest message the wire can describe, and its fragment count (5858). */
#define ST_WIRE_MSG_MAX (8u * 1024u * 1024u)
#define ST_WIRE_FRAGS_MAX ((ST_WIRE_MSG_MAX + ST_WIRE_PAYLOAD_MAX - 1) / ST_WIRE_PAYLOAD_MAX)

#define ST_ETHERTYPE_IPV4 0x0800u
#define ST_ETHERTYPE_ARP 0x0806u
#define ST_IPPROTO_UDP 17u
#define ST_IP_TTL_DEFAULT 64u

#define ST_ARP_REQUEST 1u
#define ST_ARP_REPLY 2u

#define ST_RIFT_MAGIC 0x5246u /* "RF" */
#define ST_RIFT_VERSION 1u

/* rift header flags. */
#define ST_F_SYN 0x01u
#define ST_F_ACK 0x02u
#define ST_F_RST 0x04u
#define ST_F_DATA 0x08u
#define ST_F_FIN 0x10u
#define ST_F_ALL (ST_F_SYN | ST_F_ACK | ST_F_RST | ST_F_DATA | ST_F_FIN)

/* Why a frame was rejected. Stable order: rift-stackd indexes counters by it. */
typedef enum st_wire_err {
    ST_WIRE_OK = 0,
    ST_WIRE_TRUNCATED,        /* shorter than a header or a length field says */
    ST_WIRE_TOO_LONG,         /* frame above 1514 bytes */
    ST_WIRE_NOT_FOR_US,       /* MAC or IP destination is not ours */
    ST_WIRE_BAD_ETHERTYPE,    /* neither IPv4 nor ARP (VLAN tags included) */
    ST_WIRE_BAD_ARP,          /* not IPv4-over-Ethernet, or unknown opcode */
    ST_WIRE_BAD_IP_VERSION,
    ST_WIRE_BAD_IP_HLEN,      /* IHL < 5 or beyond the total length */
    ST_WIRE_BAD_IP_LEN,       /* total length above the MTU */
    ST_WIRE_BAD_IP_CSUM,
    ST_WIRE_IP_FRAGMENT,      /* MF set or offset non-zero */
    ST_WIRE_TTL_EXPIRED,      /* TTL 0 */
    ST_WIRE_BAD_IP_PROTO,     /* not UDP */
    ST_WIRE_BAD_IP_ADDR,      /* source zero, broadcast or multicast */
    ST_WIRE_BAD_UDP_LEN,      /* UDP length disagrees with the IP payload */
    ST_WIRE_BAD_UDP_CSUM,
    ST_WIRE_BAD_MAGIC,
    ST_WIRE_BAD_VERSION,
    ST_WIRE_BAD_FLAGS,        /* unknown bits, none, or an impossible combination */
    ST_WIRE_BAD_FRAG,         /* frag_idx >= frag_cnt, count 0 or above the max */
    ST_WIRE_BAD_PAYLOAD_LEN,  /* disagrees with the UDP length, or payload off DATA */
    ST_WIRE_ERR_COUNT
} st_wire_err;

const char *st_wire_err_name(int e);

typedef struct st_arp {
    uint16_t op;                     /* ST_ARP_REQUEST / ST_ARP_REPLY */
    uint8_t sha[ST_ETH_ADDR_LEN];    /* sender hardware address */
    uint32_t spa;                    /* sender IPv4 */
    uint8_t tha[ST_ETH_ADDR_LEN];    /* target hardware address (zero in requests) */
    uint32_t tpa;                    /* target IPv4 */
} st_arp;

typedef struct st_hdr {
    uint8_t version;                 /* parse fills; build always writes ST_RIFT_VERSION */
    uint8_t flags;                   /* ST_F_* */
    uint32_t src_flow, dst_flow;     /* sender's and receiver's flow ids (0 = unknown) */
    uint32_t seq;
    uint32_t ack;
    uint64_t sack;
    uint32_t msg_id;
    uint16_t window;
    uint16_t frag_idx, frag_cnt;
} st_hdr;

/* One frame, parsed or to be built. ARP frames use eth + arp; IPv4 frames use
 * eth + ip/udp + hdr + payload. The payload points into the parsed frame (or
 * the caller's bytes when building): it is borrowed, never owned. */
typedef struct st_pkt {
    uint8_t eth_dst[ST_ETH_ADDR_LEN];
    uint8_t eth_src[ST_ETH_ADDR_LEN];
    uint16_t ethertype;
    st_arp arp;
    uint32_t ip_src, ip_dst;
    uint8_t ttl;                     /* build: 0 means ST_IP_TTL_DEFAULT */
    uint16_t udp_src, udp_dst;
    st_hdr hdr;
    const uint8_t *payload;
    uint16_t payload_len;
} st_pkt;

/* Who we are, for destination filtering. */
typedef struct st_wire_local {
    uint8_t mac[ST_ETH_ADDR_LEN];
    uint32_t ip;
} st_wire_local;

/* Software MAC filter (the LCD NIC filters nothing): accept unicast to `mac`,
 * and broadcast only for ARP. False for frames too short to tell. */
bool st_wire_mac_accept(const uint8_t *frame, size_t len, const uint8_t mac[ST_ETH_ADDR_LEN]);

/* Parse one frame. With `local`, frames not addressed to us (MAC, IPv4
 * destination, ARP request target) are ST_WIRE_NOT_FOR_US; with NULL nothing is
 * filtered. `out` is filled as far as parsing got, even on error (so an ARP
 * request for someone else can still teach the caller a neighbour). */
st_wire_err st_wire_parse(const uint8_t *frame, size_t len, const st_wire_local *local, st_pkt *out);

/* Build p as a frame into buf: ARP when p->ethertype is ST_ETHERTYPE_ARP,
 * otherwise IPv4/UDP/rift with both checksums (ethertype 0 means IPv4).
 * Short frames are zero-padded to 60 bytes. Returns the frame length, -ENOSPC
 * when cap is too small, -EINVAL when p would not parse (bad flags, fragments,
 * payload too long, unknown ARP opcode). */
int st_wire_build(uint8_t *buf, size_t cap, const st_pkt *p);

/* Validate the rift header fields alone (flags, fragment fields, payload
 * length): what both the parser and the builder enforce. */
st_wire_err st_wire_hdr_check(const st_hdr *h, uint16_t payload_len);

/* Describe an ARP request (broadcast) for target_ip. */
void st_wire_arp_request(st_pkt *out, const uint8_t mac[ST_ETH_ADDR_LEN], uint32_t ip, uint32_t target_ip);
/* Describe the reply to request `req` if it asks for `ip`; -EINVAL otherwise. */
int st_wire_arp_reply(st_pkt *out, const st_pkt *req, const uint8_t mac[ST_ETH_ADDR_LEN], uint32_t ip);

#endif
