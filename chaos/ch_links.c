/* ch_links.c — resolve selectors and partitions into directed links. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ch_links.h"

static int n_nodes(const ch_topology *t) { return t->n_replicas + t->n_client_nodes; }

int ch_node_resolve(const ch_topology *t, ch_node n)
{
    switch (n.kind) {
    case CH_NODE_REPLICA: return n.index < t->n_replicas ? n.index : -1;
    case CH_NODE_CLIENT: return n.index < t->n_client_nodes ? t->n_replicas + n.index : -1;
    case CH_NODE_LEADER: return t->leader;
    default: return -1;
    }
}

const char *ch_node_name(const ch_topology *t, int node, char *buf, size_t len)
{
    if (node < t->n_replicas)
        snprintf(buf, len, "r%d", node + 1);
    else
        snprintf(buf, len, "c%d", node - t->n_replicas + 1);
    return buf;
}

static int add(ch_link *out, int n, int max, int src, int dst)
{
    if (src == dst || n < 0)
        return n;
    for (int i = 0; i < n; i++)
        if (out[i].src == src && out[i].dst == dst)
            return n;
    if (n >= max)
        return n;
    out[n] = (ch_link){src, dst};
    return n + 1;
}

/* Every link of node a (both ways); a < 0 means every node ("*"). */
static int node_links(const ch_topology *t, int a, ch_link *out, int n, int max)
{
    for (int x = 0; x < n_nodes(t); x++) {
        for (int y = 0; y < n_nodes(t); y++) {
            if (a >= 0 && x != a && y != a)
                continue;
            n = add(out, n, max, x, y);
        }
    }
    return n;
}

int ch_selector_links(const ch_topology *t, const ch_selector *s, ch_link *out, int max)
{
    bool a_all = s->a.kind == CH_NODE_ALL, b_all = s->b.kind == CH_NODE_ALL;
    int a = ch_node_resolve(t, s->a), b = ch_node_resolve(t, s->b);
    if ((a < 0 && !a_all) || (s->kind != CH_SEL_NODE && b < 0 && !b_all))
        return -ESRCH;
    if (s->kind == CH_SEL_NODE)
        return node_links(t, a_all ? -1 : a, out, 0, max);
    int n = 0;
    for (int x = 0; x < n_nodes(t); x++) {
        if (!a_all && x != a)
            continue;
        for (int y = 0; y < n_nodes(t); y++) {
            if (!b_all && y != b)
                continue;
            n = add(out, n, max, x, y);
            if (s->kind == CH_SEL_BETWEEN)
                n = add(out, n, max, y, x);
        }
    }
    return n;
}

int ch_partition_links(const ch_topology *t, const ch_partition *p, ch_link *out, int max)
{
    int group[PX_MAX_REPLICAS + CH_MAX_CLIENT_NODES];
    int star_group = -1;
    for (int i = 0; i < n_nodes(t); i++)
        group[i] = -1;
    for (int i = 0; i < p->n_nodes; i++) {
        if (p->nodes[i].kind == CH_NODE_ALL) {
            star_group = p->group[i];
            continue;
        }
        int node = ch_node_resolve(t, p->nodes[i]);
        if (node < 0)
            return -ESRCH;
        group[node] = p->group[i];
    }
    if (star_group >= 0)
        for (int i = 0; i < n_nodes(t); i++)
            if (group[i] < 0)
                group[i] = star_group;
    int n = 0;
    for (int x = 0; x < n_nodes(t); x++)
        for (int y = 0; y < n_nodes(t); y++)
            if (group[x] >= 0 && group[y] >= 0 && group[x] != group[y])
                n = add(out, n, max, x, y);
    return n;
}
