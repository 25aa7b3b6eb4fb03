/* ch_timeline.c — apply a scenario's timeline through a backend's primitives. */
#include "ch_timeline.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/rift_rng.h"

#define N_NODES ((int)(PX_MAX_REPLICAS + CH_MAX_CLIENT_NODES))

/* One recorded fault made of backend rules; it ends when no rule is left. */
typedef struct link_fault {
    int record_id;
    int n_rules;
    int *rules;
} link_fault;

/* A gc-pause cycle: pause, resume after a sampled length, next pause one
 * interval after the last began, until the action's for_ms runs out. */
typedef struct gc_cycle {
    ch_action act;
    int replica;
    uint64_t until_us;
    uint64_t next_pause_us, resume_us;
    bool paused;
    int fault;
} gc_cycle;

struct ch_timeline {
    const ch_run_ctx *ctx;
    const ch_scenario *sc;
    ch_timeline_ops ops;
    ch_topology topo;
    rift_rng rng;
    ch_error *err;
    ch_action *acts;
    size_t n_acts, next_act;
    link_fault *lf;
    size_t n_lf, cap_lf;
    int down_fault[PX_MAX_REPLICAS], pause_fault[PX_MAX_REPLICAS];
    int linkdown[N_NODES];     /* emulated link-down: link fault index, -1 = up */
    int linkdown_rec[N_NODES]; /* real link-down: record fault id, -1 = up */
    gc_cycle *gc;
    size_t n_gc;
};

static const char *replica_name(int i, char *buf, size_t len)
{
    snprintf(buf, len, "r%d", i + 1);
    return buf;
}

/* ---------- link faults ---------- */

static int install(ch_timeline *t, uint64_t now, const ch_link *links, int n, const st_impair_rule *proto,
                   const char *kind, json_t *detail)
{
    if (t->n_lf == t->cap_lf) {
        size_t ncap = t->cap_lf ? t->cap_lf * 2 : 16;
        link_fault *nl = realloc(t->lf, ncap * sizeof(*nl));
        if (!nl) {
            json_decref(detail);
            return -ENOMEM;
        }
        t->lf = nl;
        t->cap_lf = ncap;
    }
    link_fault *f = &t->lf[t->n_lf];
    f->rules = malloc((size_t)(n ? n : 1) * sizeof(int));
    if (!f->rules) {
        json_decref(detail);
        return -ENOMEM;
    }
    f->n_rules = 0;
    json_t *jl = json_array();
    int failed = 0;
    for (int i = 0; i < n; i++) {
        int id = t->ops.impair_add(t->ops.ctx, links[i].src, links[i].dst, proto);
        if (id >= 0)
            f->rules[f->n_rules++] = id;
        else
            failed = id;
        char a[16], b[16];
        json_array_append_new(jl, json_pack("[s,s]", ch_node_name(&t->topo, links[i].src, a, sizeof(a)),
                                            ch_node_name(&t->topo, links[i].dst, b, sizeof(b))));
    }
    json_object_set_new(detail, "links", jl);
    f->record_id = ch_record_fault_begin(t->ctx->record, now, kind, detail);
    t->n_lf++;
    if (failed < 0) {
        snprintf(t->err->msg, sizeof(t->err->msg), "%s: could not install a rule on a link: %s", kind,
                 strerror(-failed));
        return failed;
    }
    return (int)(t->n_lf - 1);
}

static void settle_fault(ch_timeline *t, link_fault *f, uint64_t now)
{
    if (f->n_rules == 0)
        return;
    int kept = 0;
    for (int i = 0; i < f->n_rules; i++)
        if (t->ops.impair_alive(t->ops.ctx, f->rules[i]))
            f->rules[kept++] = f->rules[i];
    f->n_rules = kept;
    if (kept == 0)
        ch_record_fault_end(t->ctx->record, f->record_id, now);
}

static void remove_fault(ch_timeline *t, int idx, uint64_t now)
{
    link_fault *f = &t->lf[idx];
    for (int i = 0; i < f->n_rules; i++)
        t->ops.impair_remove(t->ops.ctx, f->rules[i]);
    settle_fault(t, f, now);
}

static bool is_linkdown_fault(const ch_timeline *t, size_t idx)
{
    for (int j = 0; j < N_NODES; j++)
        if (t->linkdown[j] == (int)idx)
            return true;
    return false;
}

static void heal_all(ch_timeline *t, uint64_t now)
{
    for (size_t i = 0; i < t->n_lf; i++)
        if (!is_linkdown_fault(t, i)) /* link-down is the interface, not the network: link-up undoes it */
            remove_fault(t, (int)i, now);
}

static int link_action(ch_timeline *t, const ch_action *a, json_t *detail, uint64_t now)
{
    static ch_link links[CH_LINKS_MAX];
    int n = a->kind == CH_ACT_PARTITION ? ch_partition_links(&t->topo, &a->partition, links, CH_LINKS_MAX)
                                        : ch_selector_links(&t->topo, &a->sel, links, CH_LINKS_MAX);
    if (n < 0) {
        ch_record_note(t->ctx->record, now, "controller", "action_skipped",
                       json_pack("{s:s, s:s}", "do", ch_action_kind_name(a->kind), "reason", "no leader to target"));
        json_decref(detail);
        return 0;
    }
    if (a->kind == CH_ACT_CLEAR) {
        for (int i = 0; i < n; i++)
            t->ops.impair_clear_link(t->ops.ctx, links[i].src, links[i].dst);
        for (size_t i = 0; i < t->n_lf; i++)
            settle_fault(t, &t->lf[i], now);
        json_decref(detail);
        return 0;
    }
    st_impair_rule rule;
    if (ch_action_rule(a, &rule) < 0) {
        json_decref(detail);
        return -EINVAL;
    }
    int e = install(t, now, links, n, &rule, ch_action_kind_name(a->kind), detail);
    return e < 0 ? e : 0;
}

/* link-down / link-up: the real interface where the backend has one, otherwise
 * every link of the node cut (the same observable effect). */
static int link_updown(ch_timeline *t, const ch_action *a, uint64_t now)
{
    int node = ch_node_resolve(&t->topo, a->node);
    if (node < 0)
        return 0;
    bool up = a->kind == CH_ACT_LINK_UP;
    char name[16];
    ch_node_name(&t->topo, node, name, sizeof(name));
    if (t->ops.link_set) {
        if (up == (t->linkdown_rec[node] < 0))
            return 0; /* already in that state */
        int e = t->ops.link_set(t->ops.ctx, node, up);
        if (e < 0) {
            snprintf(t->err->msg, sizeof(t->err->msg), "link-%s %s failed: %s", up ? "up" : "down", name,
                     strerror(-e));
            return e;
        }
        if (up) {
            ch_record_fault_end(t->ctx->record, t->linkdown_rec[node], now);
            t->linkdown_rec[node] = -1;
        } else {
            t->linkdown_rec[node] =
                ch_record_fault_begin(t->ctx->record, now, "link-down", json_pack("{s:s}", "node", name));
        }
        return 0;
    }
    if (up) {
        if (t->linkdown[node] >= 0)
            remove_fault(t, t->linkdown[node], now);
        t->linkdown[node] = -1;
        return 0;
    }
    if (t->linkdown[node] >= 0)
        return 0;
    static ch_link links[CH_LINKS_MAX];
    ch_selector sel = {.kind = CH_SEL_NODE, .a = a->node};
    int n = ch_selector_links(&t->topo, &sel, links, CH_LINKS_MAX);
    st_impair_rule cut = {.cut = true};
    int idx = install(t, now, links, n < 0 ? 0 : n, &cut, "link-down", json_pack("{s:s}", "node", name));
    if (idx < 0)
        return idx;
    t->linkdown[node] = idx;
    return 0;
}

/* ---------- process faults ---------- */

static uint64_t gc_pause_len(ch_timeline *t, const ch_dist *d)
{
    if (d->kind == CH_DIST_UNIFORM)
        return rift_rng_range(&t->rng, d->a_us, d->b_us);
    if (d->kind == CH_DIST_NORMAL) {
        double u1 = 1.0 - rift_rng_double(&t->rng), u2 = rift_rng_double(&t->rng);
        double len = (double)d->a_us + (double)d->b_us * sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
        return len < 0 ? 0 : (uint64_t)len;
    }
    return d->a_us;
}

/* One due step of a gc cycle: end the current pause, or begin the next one. */
static void gc_step(ch_timeline *t, gc_cycle *g, uint64_t now)
{
    if (g->paused) {
        t->ops.pause(t->ops.ctx, g->replica, false);
        g->paused = false;
        ch_record_fault_end(t->ctx->record, g->fault, now);
    } else if (now >= g->until_us) {
        g->next_pause_us = UINT64_MAX; /* the cycle is over */
    } else {
        uint64_t every = g->act.gc_every_ms * 1000;
        uint64_t len = gc_pause_len(t, &g->act.gc_pause);
        if (len >= every)
            len = every - 1; /* a pause never runs into the next one */
        g->next_pause_us = now + every;
        /* A crashed replica has nothing to pause; the cycle goes on. */
        if (len > 0 && !ch_timeline_replica_down(t, g->replica) && t->ops.pause(t->ops.ctx, g->replica, true) == 0) {
            char name[16];
            g->paused = true;
            g->resume_us = now + len;
            g->fault = ch_record_fault_begin(
                t->ctx->record, now, "gc-pause",
                json_pack("{s:s, s:I}", "node", replica_name(g->replica, name, sizeof(name)), "pause_us",
                          (json_int_t)len));
        }
    }
}

static uint64_t gc_due(const gc_cycle *g)
{
    if (g->paused)
        return g->resume_us;
    return g->next_pause_us < g->until_us ? g->next_pause_us : UINT64_MAX;
}

static int start_gc(ch_timeline *t, const ch_action *a, int replica, uint64_t now)
{
    gc_cycle *ng = realloc(t->gc, (t->n_gc + 1) * sizeof(*ng));
    if (!ng)
        return -ENOMEM;
    t->gc = ng;
    gc_cycle *g = &t->gc[t->n_gc++];
    *g = (gc_cycle){.act = *a, .replica = replica, .fault = -1, .next_pause_us = now};
    g->until_us = a->gc_for_ms ? now + a->gc_for_ms * 1000 : UINT64_MAX;
    gc_step(t, g, now);
    return 0;
}

static int crash(ch_timeline *t, int rep, uint64_t now)
{
    if (t->down_fault[rep] >= 0)
        return 0;
    int e = t->ops.crash(t->ops.ctx, rep);
    if (e == -EALREADY)
        return 0;
    if (e < 0)
        return e;
    char name[16];
    t->down_fault[rep] = ch_record_fault_begin(t->ctx->record, now, "crash",
                                               json_pack("{s:s}", "node", replica_name(rep, name, sizeof(name))));
    return 0;
}

static int restart(ch_timeline *t, int rep, uint64_t now)
{
    int e = t->ops.restart(t->ops.ctx, rep);
    if (e == -EALREADY)
        return 0;
    if (e < 0)
        return e;
    if (t->down_fault[rep] >= 0)
        ch_record_fault_end(t->ctx->record, t->down_fault[rep], now);
    t->down_fault[rep] = -1;
    return 0;
}

static int pause_replica(ch_timeline *t, int rep, bool pause, uint64_t now)
{
    if (pause == (t->pause_fault[rep] >= 0))
        return 0;
    int e = t->ops.pause(t->ops.ctx, rep, pause);
    if (e == -EALREADY)
        return 0;
    if (e < 0)
        return e;
    char name[16];
    if (pause) {
        t->pause_fault[rep] = ch_record_fault_begin(t->ctx->record, now, "pause",
                                                    json_pack("{s:s}", "node", replica_name(rep, name, sizeof(name))));
    } else {
        ch_record_fault_end(t->ctx->record, t->pause_fault[rep], now);
        t->pause_fault[rep] = -1;
    }
    return 0;
}

/* Replica-only actions on a client node are rejected up front (check_supported). */
static int process_action(ch_timeline *t, const ch_action *a, uint64_t now)
{
    int targets[PX_MAX_REPLICAS], n = 0;
    if (a->node.kind == CH_NODE_ALL) {
        /* restart "*" brings back the crashed replicas; it does not reboot the
         * running ones (name them one by one for a rolling reboot). */
        for (int i = 0; i < t->topo.n_replicas; i++)
            if (a->kind != CH_ACT_RESTART || t->down_fault[i] >= 0)
                targets[n++] = i;
    } else {
        int rep = ch_node_resolve(&t->topo, a->node);
        if (rep < 0 || rep >= t->topo.n_replicas)
            return 0; /* no leader right now: nothing to act on */
        targets[n++] = rep;
    }
    for (int i = 0; i < n; i++) {
        int rep = targets[i], e = 0;
        switch (a->kind) {
        case CH_ACT_CRASH: e = crash(t, rep, now); break;
        case CH_ACT_RESTART: e = restart(t, rep, now); break;
        case CH_ACT_PAUSE: e = pause_replica(t, rep, true, now); break;
        case CH_ACT_RESUME: e = pause_replica(t, rep, false, now); break;
        case CH_ACT_GC_PAUSE: e = start_gc(t, a, rep, now); break;
        case CH_ACT_SET:
            if (t->ops.set_param(t->ops.ctx, rep, a->param, a->value) < 0) {
                snprintf(t->err->msg, sizeof(t->err->msg), "%s: timeline[%u]: set %s=%s refused by r%d",
                         t->sc->file, a->index, a->param, a->value, rep + 1);
                return -EINVAL;
            }
            break;
        default: break;
        }
        if (e < 0) {
            if (!t->err->msg[0])
                snprintf(t->err->msg, sizeof(t->err->msg), "%s: timeline[%u]: %s r%d failed: %s", t->sc->file,
                         a->index, ch_action_kind_name(a->kind), rep + 1, strerror(-e));
            return e;
        }
    }
    return 0;
}

/* ---------- the timeline ---------- */

static json_t *action_json(const ch_action *a)
{
    char buf[16];
    json_t *j = json_pack("{s:s, s:I}", "do", ch_action_kind_name(a->kind), "at_ms", (json_int_t)a->at_ms);
    switch (a->kind) {
    case CH_ACT_LOSS:
    case CH_ACT_DUPLICATE:
    case CH_ACT_REORDER:
        json_object_set_new(j, "probability", json_real(a->probability));
        break;
    case CH_ACT_DELAY:
        json_object_set_new(j, "delay_us", json_integer((json_int_t)a->delay_us));
        json_object_set_new(j, "jitter_us", json_integer((json_int_t)a->jitter_us));
        break;
    case CH_ACT_SET:
        json_object_set_new(j, "param", json_string(a->param));
        json_object_set_new(j, "value", json_string(a->value));
        break;
    default:
        break;
    }
    if (a->kind >= CH_ACT_CRASH && a->kind != CH_ACT_HEAL_ALL)
        json_object_set_new(j, "node", json_string(ch_node_format(a->node, buf, sizeof(buf))));
    return j;
}

static const char *recovery_kind(ch_action_kind k)
{
    switch (k) {
    case CH_ACT_HEAL_ALL: return "heal-all";
    case CH_ACT_CLEAR: return "clear";
    case CH_ACT_RESUME: return "resume";
    case CH_ACT_RESTART: return "restart";
    case CH_ACT_LINK_UP: return "link-up";
    default: return NULL;
    }
}

static int apply_action(ch_timeline *t, const ch_action *a, uint64_t now)
{
    t->topo.leader = t->ops.leader(t->ops.ctx);
    json_t *desc = action_json(a);
    ch_record_action(t->ctx->record, now, json_deep_copy(desc), recovery_kind(a->kind));
    switch (a->kind) {
    case CH_ACT_PARTITION:
    case CH_ACT_CUT:
    case CH_ACT_LOSS:
    case CH_ACT_DELAY:
    case CH_ACT_DUPLICATE:
    case CH_ACT_REORDER:
    case CH_ACT_CLEAR:
        return link_action(t, a, desc, now);
    case CH_ACT_HEAL_ALL:
        json_decref(desc);
        heal_all(t, now);
        return 0;
    case CH_ACT_LINK_DOWN:
    case CH_ACT_LINK_UP:
        json_decref(desc);
        return link_updown(t, a, now);
    default:
        json_decref(desc);
        return process_action(t, a, now);
    }
}

uint64_t ch_timeline_next_us(const ch_timeline *t)
{
    uint64_t next = t->next_act < t->n_acts ? t->acts[t->next_act].at_ms * 1000 : UINT64_MAX;
    for (size_t i = 0; i < t->n_gc; i++) {
        uint64_t d = gc_due(&t->gc[i]);
        if (d < next)
            next = d;
    }
    return next;
}

int ch_timeline_fire(ch_timeline *t, uint64_t now)
{
    /* Actions first, in order; then gc steps (an action may start a cycle). */
    while (t->next_act < t->n_acts && t->acts[t->next_act].at_ms * 1000 <= now) {
        int e = apply_action(t, &t->acts[t->next_act++], now);
        if (e < 0)
            return e;
    }
    for (size_t i = 0; i < t->n_gc; i++)
        while (gc_due(&t->gc[i]) <= now)
            gc_step(t, &t->gc[i], now);
    return 0;
}

int ch_timeline_active_faults(const ch_timeline *t)
{
    int n = 0;
    for (size_t i = 0; i < t->n_lf; i++)
        n += t->lf[i].n_rules > 0;
    return n;
}

bool ch_timeline_replica_down(const ch_timeline *t, int replica)
{
    return replica >= 0 && replica < PX_MAX_REPLICAS && t->down_fault[replica] >= 0;
}

bool ch_timeline_replica_paused(const ch_timeline *t, int replica)
{
    if (replica < 0 || replica >= PX_MAX_REPLICAS)
        return false;
    if (t->pause_fault[replica] >= 0)
        return true;
    for (size_t i = 0; i < t->n_gc; i++)
        if (t->gc[i].replica == replica && t->gc[i].paused)
            return true;
    return false;
}

static int check_supported(const ch_timeline *t)
{
    for (size_t i = 0; i < t->n_acts; i++) {
        const ch_action *a = &t->acts[i];
        bool process = a->kind >= CH_ACT_CRASH && a->kind <= CH_ACT_SET;
        if (process && a->node.kind == CH_NODE_CLIENT) {
            snprintf(t->err->msg, sizeof(t->err->msg),
                     "%s: timeline[%u].node: %s acts on replicas only (client nodes can be cut, delayed, ...)",
                     t->sc->file, a->index, ch_action_kind_name(a->kind));
            return -EINVAL;
        }
    }
    return 0;
}

ch_timeline *ch_timeline_new(const ch_run_ctx *ctx, const ch_timeline_ops *ops, int *e, ch_error *err)
{
    ch_timeline *t = calloc(1, sizeof(*t));
    if (!t) {
        *e = -ENOMEM;
        return NULL;
    }
    t->ctx = ctx;
    t->sc = ctx->scenario;
    t->ops = *ops;
    t->err = err;
    t->topo = (ch_topology){t->sc->replicas, (int)t->sc->workload.nodes, -1};
    rift_rng_seed(&t->rng, ctx->seed ^ 0xc4a05u);
    for (int i = 0; i < PX_MAX_REPLICAS; i++)
        t->down_fault[i] = t->pause_fault[i] = -1;
    for (int i = 0; i < N_NODES; i++)
        t->linkdown[i] = t->linkdown_rec[i] = -1;
    *e = ch_scenario_expand(t->sc, &t->acts, &t->n_acts);
    if (*e == 0)
        *e = check_supported(t);
    if (*e < 0) {
        ch_timeline_free(t);
        return NULL;
    }
    return t;
}

void ch_timeline_free(ch_timeline *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n_lf; i++)
        free(t->lf[i].rules);
    free(t->lf);
    free(t->gc);
    free(t->acts);
    free(t);
}
