/* ch_links.h — which directed links a scenario action touches.
 *
 * Selectors and partitions name nodes (r1, c2, leader, *); a backend needs the
 * concrete directed links between concrete nodes. Resolution is the same for
 * every backend, so it lives here and both the simulator and the DPDK testbed
 * apply exactly the same set of links for the same action. */
#ifndef CH_LINKS_H
#define CH_LINKS_H

#include <stddef.h>

#include "ch_scenario.h"

/* A concrete node: replicas 0..n_replicas-1, then client nodes. */
typedef struct ch_topology {
    int n_replicas;
    int n_client_nodes;
    int leader; /* current leader replica, -1 = none */
} ch_topology;

typedef struct ch_link {
    int src, dst; /* concrete node numbers (replica i = i; client node j = n_replicas + j) */
} ch_link;

#define CH_LINKS_MAX ((PX_MAX_REPLICAS + CH_MAX_CLIENT_NODES) * (PX_MAX_REPLICAS + CH_MAX_CLIENT_NODES))

/* Concrete node number of n; -1 if it names no node (leader while none, or *). */
int ch_node_resolve(const ch_topology *t, ch_node n);
/* "r1" / "c2" for a concrete node number. */
const char *ch_node_name(const ch_topology *t, int node, char *buf, size_t len);

/* Directed links selected (both directions where the selector says so), with no
 * duplicates and no self-links. Returns the count (<= max) or -ESRCH when a node
 * cannot be resolved (the leader while there is none). */
int ch_selector_links(const ch_topology *t, const ch_selector *s, ch_link *out, int max);
/* Links cut by a partition: every pair of nodes in different groups, both ways.
 * A group holding "*" takes every node not listed in another group. */
int ch_partition_links(const ch_topology *t, const ch_partition *p, ch_link *out, int max);

#endif
