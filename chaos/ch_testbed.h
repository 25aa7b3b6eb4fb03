/* ch_testbed.h — the single-host network of a dpdk-backend run, built with libnl.
 *
 * Layout (DESIGN.md "Backends: dpdk"): one network namespace per node
 * (<prefix>-<node>) and one holding a Linux bridge (<prefix>-br). Each node has
 * a veth pair: <prefix>-<node> inside the node's namespace (up, MTU 1500, its
 * IPv4 address), <prefix>-<node>b inside the bridge namespace, enslaved to the
 * bridge <prefix>-br. Namespaces are pinned like `ip netns add` does (a bind
 * mount on /run/netns/<name>), so `ip netns list` shows them. Nothing is ever
 * configured in the caller's own namespace: veths are created from a netlink
 * socket opened inside the bridge namespace.
 *
 * Ownership: before anything is created, a state file <state_dir>/<prefix>.json
 * claims the prefix and names the owner (controller PID and start time), so
 * `rift clean` (ch_clean.h) can remove what a dead controller left behind.
 *
 * Threads: the namespace switches (setns) affect only the calling thread and
 * are always undone before a function returns. Needs root (CAP_SYS_ADMIN and
 * CAP_NET_ADMIN). */
#ifndef CH_TESTBED_H
#define CH_TESTBED_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "ch_error.h"

#define CH_TESTBED_STATE_DIR "/run/rift"
#define CH_TESTBED_NETNS_DIR "/run/netns"
#define CH_TESTBED_MAX_NODES 64
/* "rf" + 4..6 base32 characters [a-z2-7]. */
#define CH_TESTBED_PREFIX_MAX 8
/* Node names are short ("r1", "c12") so "<prefix>-<node>b" fits IFNAMSIZ. */
#define CH_TESTBED_NODE_MAX 5

typedef struct ch_testbed ch_testbed;

/* Build a testbed. prefix: NULL picks a fresh random "rf" + 6 base32 chars;
 * otherwise it must match the pattern above and be unused. names[i] is node i
 * ("r1", "c1"; letters, digits), ips[i] its dotted IPv4 address (placed in a
 * /24). state_dir: NULL = CH_TESTBED_STATE_DIR. Returns NULL with err set on
 * failure, having removed whatever it had created. When it returns, every
 * node's veth has carrier (or 3 s have passed). */
ch_testbed *ch_testbed_new(const char *prefix, size_t n_nodes, const char *const names[], const char *const ips[],
                           const char *state_dir, ch_error *err);

const char *ch_testbed_prefix(const ch_testbed *tb);
size_t ch_testbed_n_nodes(const ch_testbed *tb);
/* Index of the node called name, or -1. */
int ch_testbed_node(const ch_testbed *tb, const char *name);
/* /run/netns/<prefix>-<node>: for ch_proc_spawn or setns. */
const char *ch_testbed_ns_path(const ch_testbed *tb, int node);
/* The veth's name inside the node's namespace (for net_af_xdp / net_af_packet). */
const char *ch_testbed_iface(const ch_testbed *tb, int node);
const char *ch_testbed_ip(const ch_testbed *tb, int node);

/* The link-down / link-up actions: set the node-side veth down or up. Going up
 * returns at once; the kernel brings carrier back within about a second
 * (ch_testbed_wait_carrier waits for it). 0 or a negative errno, err set. */
int ch_testbed_link_set(ch_testbed *tb, int node, bool up, ch_error *err);
/* Wait until the node's veth reports carrier (IFF_LOWER_UP), at most
 * timeout_ms. 0, -ETIMEDOUT, or another negative errno. */
int ch_testbed_wait_carrier(ch_testbed *tb, int node, int timeout_ms, ch_error *err);

/* Run fn(arg) on the calling thread while it is inside the node's namespace
 * (sockets it opens stay there after the switch back). Returns fn's value, or
 * a negative errno if the switch failed (fn not run). */
int ch_testbed_exec_in(const ch_testbed *tb, int node, int (*fn)(void *arg), void *arg);

/* Tear everything down: processes still inside the namespaces get SIGKILL
 * (stop them first for a clean exit), links, namespaces, the state file.
 * Idempotent (a second call finds nothing and returns 0); tb stays valid for
 * ch_testbed_destroy. 0, or the first negative errno met (teardown carries on
 * past errors). */
int ch_testbed_teardown(ch_testbed *tb, ch_error *err);
/* ch_testbed_teardown, then free tb. NULL-safe. */
int ch_testbed_destroy(ch_testbed *tb, ch_error *err);

/* Remove every namespace named <prefix>-*, the links in them, the processes in
 * them, and then <state_dir>/<prefix>.json (kept if a namespace could not be
 * removed, so a later `rift clean` retries). Idempotent: nothing left means 0.
 * report (may be NULL) gets "namespaces": [removed names] and
 * "processes_killed": n set. Used by teardown and by `rift clean`. */
int ch_testbed_remove(const char *state_dir, const char *prefix, json_t *report, ch_error *err);

/* True when s is a well-formed run prefix ("rf" + 4..6 of [a-z2-7]). */
bool ch_testbed_prefix_valid(const char *s);

#endif
