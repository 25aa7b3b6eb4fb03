/* loopstack.h — an in-process stand-in for a set of rift-stackd daemons, for tests.
 *
 * Each "node" is a real st_chan_server on its own Unix socket path with its own
 * IPv4 address, so real applications (rift-replica processes, rs_* clients in
 * the test) attach to it exactly as they would to rift-stackd. Instead of a
 * NIC and a transport, the ops connect flows directly between the apps attached
 * to any node of the same loopstack, keyed by IP and port: connect to a port
 * somebody listens on gives RS_EV_ACCEPTED there and RS_EV_ESTABLISHED here,
 * otherwise RS_EV_RESET; send delivers the message to the other end; close and
 * abort give the other end RS_EV_CLOSED / RS_EV_RESET; an app that detaches or
 * dies resets every flow it had.
 *
 * Faults: loopstack_cut() drops every message from one address to another (the
 * flows stay up, as with a real partition before the transport gives up), and
 * loopstack_reset_between() resets the flows between two addresses.
 *
 * Everything runs on one thread started by loopstack_start(); the cut matrix
 * and the counters may be touched from any thread. */
#ifndef LOOPSTACK_H
#define LOOPSTACK_H

#include <stdbool.h>
#include <stdint.h>

#define LOOPSTACK_MAX_NODES 16

typedef struct loopstack loopstack;

typedef struct loopstack_stats {
    uint64_t flows_opened, flows_refused, msgs_delivered, msgs_cut, resets, detaches;
} loopstack_stats;

loopstack *loopstack_new(void);
/* Add a node (before loopstack_start): a channel server on sock_path with
 * address ip (host byte order). Returns the node index or a negative errno. */
int loopstack_add(loopstack *ls, const char *sock_path, uint32_t ip);
/* Run the servers on a thread. 0 or a negative errno. */
int loopstack_start(loopstack *ls);
/* Stop the thread and free every server (apps see their stack die). */
void loopstack_free(loopstack *ls);

/* Drop (cut=true) or pass messages from from_ip to to_ip (one direction). */
void loopstack_cut(loopstack *ls, uint32_t from_ip, uint32_t to_ip, bool cut);
/* Reset every flow between a and b (either direction), as a transport giving up. */
void loopstack_reset_between(loopstack *ls, uint32_t a, uint32_t b);
void loopstack_stats_get(loopstack *ls, loopstack_stats *out);

#endif
