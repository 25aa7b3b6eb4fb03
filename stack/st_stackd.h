/* st_stackd.h — the rift-stackd engine: one port, one IPv4 address, one transport.
 *
 * Run to completion in one thread (DPDK l2fwd style). Per loop iteration:
 *   RX   port burst -> software MAC filter -> st_wire_parse (malformed frames
 *        counted per st_wire_err) -> ARP (answer, learn) | impairment keyed
 *        (peer ip -> our ip) -> st_transport_rx
 *   APP  st_chan_server_poll: connect/send/close requests from applications
 *   TIME held (delayed) frames that are due, transport timers, ARP retries
 *   TX   transport packet -> impairment keyed (our ip -> peer ip) -> frame
 *        (st_wire_build) -> neighbour (ARP-resolved MAC; a few frames wait
 *        while resolving) -> port batch, flushed once per iteration
 *   CTL  control socket requests (st_ctl), at least every millisecond
 * A rule src -> dst thus matches on the sender's TX and again on the
 * receiver's RX: install each directed rule on one end (the sender's, as the
 * controller does), or a loss p compounds to 1-(1-p)^2 (docs/stackd.md).
 * With no rule installed the impairment stage is one branch per packet.
 *
 * Polling: busy (never sleeps) or adaptive (default): spin while there is
 * work, then sleep in epoll on the channel and control fds, 50 µs at first and
 * doubling to 1 ms, never past the next transport or impairment timer.
 *
 * Configuration is plain data: a JSON file, flags, or both (flags win). Errors
 * name the file and the field. The engine never calls exit(). */
#ifndef ST_STACKD_H
#define ST_STACKD_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "st_port.h"
#include "st_transport.h"

#define ST_STACKD_EAL_MAX 32
#define ST_STACKD_ARG_MAX 256
#define ST_STACKD_PATH_MAX 108     /* sun_path */

typedef enum st_polling {
    ST_POLL_ADAPTIVE = 0,
    ST_POLL_BUSY,
} st_polling;

typedef struct st_stackd_config {
    uint32_t ip;                       /* host byte order; required */
    uint8_t netmask_bits;              /* peers outside the subnet are unreachable */
    char iface[ST_PORT_IFNAME_MAX];
    uint8_t mac[6];
    bool mac_set;                      /* else the port's own MAC */
    uint8_t pmd;                       /* st_port_pmd */
    bool eal_defaults;                 /* prepend the testbed's EAL arguments */
    int n_eal;
    char eal[ST_STACKD_EAL_MAX][ST_STACKD_ARG_MAX];
    char sock_path[ST_STACKD_PATH_MAX];   /* applications attach here; required */
    char ctl_path[ST_STACKD_PATH_MAX];    /* control socket; required */
    uint8_t polling;                   /* st_polling */
    uint32_t spin_us;                  /* adaptive: keep polling this long after the last work */
    int core;                          /* EAL lcore */
    char log_path[ST_STACKD_PATH_MAX * 4]; /* "" = stderr */
    uint64_t seed;                     /* 0 = from the clock */
    st_config transport;
} st_stackd_config;

void st_stackd_config_default(st_stackd_config *c);
/* Merge a JSON config (text of `file`, named in errors) into c. */
int st_stackd_config_json(st_stackd_config *c, const char *text, size_t len, const char *file, char *err,
                          size_t errlen);
int st_stackd_config_file(st_stackd_config *c, const char *path, char *err, size_t errlen);
/* One setting by its config name ("ip", "pmd", "transport.rto_min_us", "eal"
 * appends one argument, ...). The flags of rift-stackd map onto this. */
int st_stackd_config_set(st_stackd_config *c, const char *key, const char *value, char *err, size_t errlen);
/* Required fields present, ranges sane. */
int st_stackd_config_check(const st_stackd_config *c, char *err, size_t errlen);
/* The EAL argv for c (argv[0] = prog; strings point into store, which holds
 * ST_STACKD_EAL_MAX + 16 entries of ST_STACKD_ARG_MAX bytes). Returns argc. */
int st_stackd_eal_argv(const st_stackd_config *c, const char *prog, char **argv, int max,
                       char (*store)[ST_STACKD_ARG_MAX]);

typedef struct st_stackd st_stackd;

/* Initialise the EAL, open the port, bind both sockets. NULL on failure with
 * *rc = -EINVAL (configuration) or another negative errno (environment:
 * DPDK, port, sockets) and a message in err. Once per process (the EAL). */
st_stackd *st_stackd_new(const st_stackd_config *c, char *err, size_t errlen, int *rc);
/* One line for the log: address, interface, PMD in use, MAC, sockets. */
void st_stackd_describe(const st_stackd *d, char *buf, size_t len);
/* Loop until *stop becomes non-zero. 0, or a negative errno on a fatal error. */
int st_stackd_run(st_stackd *d, const volatile sig_atomic_t *stop);
/* Close everything, remove both socket files, clean up the EAL. */
void st_stackd_free(st_stackd *d);

#endif
