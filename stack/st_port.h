/* st_port.h — the LCD NIC layer: one DPDK ethdev port, one RX and one TX queue.
 *
 * This is the only part of rift-stackd that touches DPDK. It assumes nothing a
 * cloud vNIC might lack (Machnet's "least common denominator"): one queue pair
 * of at most 512 descriptors, frames of at most 1514 bytes, no rte_flow, no
 * offloads (st_wire computes the IPv4 and UDP checksums in software, so TX
 * checksum offload is never requested), no hardware MAC filter (the engine
 * filters with st_wire_mac_accept).
 *
 * Frames cross this interface as byte ranges, not mbufs: st_port_rx_burst
 * lends the received frames until st_port_rx_release, and st_port_tx_slot /
 * st_port_tx_commit build a frame directly inside an mbuf (no copy). Frames are
 * batched and leave on st_port_tx_flush (or when a batch of ST_PORT_BURST is
 * full). pcapng capture (rte_pcapng) hooks both directions here.
 *
 * The testbed's ports are veths: `net_af_xdp` (preferred) with
 * `net_af_packet` as the automatic fallback. With ST_PMD_EAL the port is
 * whatever the EAL arguments created (a PCI device for mlx5/ena, a --vdev). */
#ifndef ST_PORT_H
#define ST_PORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ST_PORT_BURST 32
#define ST_PORT_DESC_MAX 512      /* LCD: at most 512 descriptors per queue */
#define ST_PORT_IFNAME_MAX 16     /* IFNAMSIZ */
#define ST_PORT_RSS_KEY_LEN 40    /* Toeplitz key for IPv4 4-tuples */
#define ST_PORT_RETA_MAX 512

typedef enum st_port_pmd {
    ST_PMD_AUTO = 0,   /* af_xdp on iface, else af_packet on iface */
    ST_PMD_AF_XDP,
    ST_PMD_AF_PACKET,
    ST_PMD_EAL,        /* the first port the EAL arguments created */
} st_port_pmd;

/* "auto", "af_xdp", "af_packet", "eal"; -1 for anything else. */
int st_port_pmd_parse(const char *s);
const char *st_port_pmd_name(int pmd);

typedef struct st_port_config {
    char iface[ST_PORT_IFNAME_MAX]; /* kernel interface for af_xdp / af_packet */
    uint8_t pmd;                    /* st_port_pmd */
    uint16_t n_desc;                /* per queue, 64..512 (0 = 512) */
    uint32_t n_mbufs;               /* pool size (0 = 4095) */
    bool promiscuous;               /* when the engine's MAC is not the port's */
} st_port_config;

typedef struct st_port_stats {
    /* rte_eth_stats */
    uint64_t rx_packets, rx_bytes, tx_packets, tx_bytes;
    uint64_t rx_missed, rx_errors, tx_errors, rx_nombuf;
    /* ours */
    uint64_t tx_dropped;      /* TX ring stayed full: the frame was freed */
    uint64_t tx_no_mbuf;      /* pool empty when building a frame */
    uint64_t rx_multiseg;     /* chained mbuf (> one buffer): dropped */
    uint64_t capture_packets, capture_dropped;
} st_port_stats;

typedef struct st_port st_port;

/* Initialise the EAL with argv (argv[0] is the program name). Once per
 * process. 0 or a negative errno with a message in err. */
int st_port_eal_init(int argc, char **argv, char *err, size_t errlen);
void st_port_eal_cleanup(void);

/* Create and start the port. With ST_PMD_AUTO, af_xdp is tried first and
 * af_packet if its setup fails at any step. NULL with a message in err. */
st_port *st_port_open(const st_port_config *c, char *err, size_t errlen);
void st_port_close(st_port *p);

/* The PMD actually in use (ST_PMD_AF_XDP / ST_PMD_AF_PACKET / ST_PMD_EAL),
 * the driver name ("net_af_xdp") and the port's MAC address. */
int st_port_pmd_used(const st_port *p);
const char *st_port_driver(const st_port *p);
void st_port_mac(const st_port *p, uint8_t mac[6]);

/* Receive up to ST_PORT_BURST frames: frames[i]/lens[i] stay valid until
 * st_port_rx_release. Returns the count. Never blocks. */
unsigned st_port_rx_burst(st_port *p, const uint8_t **frames, uint16_t *lens);
void st_port_rx_release(st_port *p);

/* A buffer for one frame of up to 1514 bytes inside a fresh mbuf; NULL when
 * the pool is empty. st_port_tx_commit(len) queues it (len 0 discards it). */
uint8_t *st_port_tx_slot(st_port *p);
void st_port_tx_commit(st_port *p, uint16_t len);
/* Hand the queued frames to the TX queue (a few retries when it is full, then
 * the rest are dropped and counted). Returns the number sent. */
unsigned st_port_tx_flush(st_port *p);
/* Frames committed but not yet flushed. */
unsigned st_port_tx_pending(const st_port *p);

/* An fd that polls readable while received frames wait: the kernel socket
 * under af_xdp (AF_XDP) or af_packet (AF_PACKET), so an idle engine can sleep
 * and still wake at the first frame. -1 when the PMD has none (hardware
 * ports): the engine then wakes on its timers only. */
int st_port_rx_fd(const st_port *p);

void st_port_get_stats(st_port *p, st_port_stats *out);

/* pcapng capture of every frame in both directions from now on. */
int st_port_capture_start(st_port *p, const char *path, char *err, size_t errlen);
/* Stop and close the file (no-op when not capturing). */
void st_port_capture_stop(st_port *p);
bool st_port_capturing(const st_port *p);

/* Machnet's RSS trick. A port spreads incoming flows over its RX queues by the
 * Toeplitz hash of (src ip, dst ip, src port, dst port) through the RETA. The
 * engine owns queue 0 only, so a connecting engine picks a local UDP port
 * whose *reply* tuple (peer -> us) lands on queue 0. Pure: key is 40 bytes,
 * reta[hash % reta_size] is the queue. Returns a port in [lo, hi] or 0 when
 * none does. IPs host byte order. */
uint16_t st_port_rss_pick(const uint8_t key[ST_PORT_RSS_KEY_LEN], const uint16_t *reta, uint16_t reta_size,
                          uint32_t local_ip, uint32_t remote_ip, uint16_t remote_port, uint16_t lo, uint16_t hi);
/* The same for this port: 0 ("any port will do") when the port runs with a
 * single RX queue, which is how st_port_open configures every port today. */
uint16_t st_port_rss_src_port(const st_port *p, uint32_t local_ip, uint32_t remote_ip, uint16_t remote_port,
                              uint16_t lo, uint16_t hi);

#endif
