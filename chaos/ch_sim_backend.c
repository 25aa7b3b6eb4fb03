/* ch_sim_backend.c — run a scenario in the deterministic simulator.
 *
 * Node mapping: replica i is sim address i; logical client k is address
 * PX_CLIENT_BASE + k and lives on client node k % nodes. Impairments are keyed
 * by node (sim_link_key), so one rule covers every client of a client node. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ch_backend.h"
#include "ch_links.h"
#include "sim.h"
#include "sim_client.h"

#define SAMPLE_EVERY_US 100000u
#define CLIENT_KEY_BASE 0x10000u /* impairment key of client node j: CLIENT_KEY_BASE + j */

typedef struct link_fault {
    int record_id;
    int n_rules;
    int *rules;
} link_fault;

typedef struct gc_state {
    struct simrun *run;
    ch_action act;
    int replica;
    uint64_t until_us, next_us;
    bool paused;
    int fault;
    sim_timer *timer;
} gc_state;

typedef struct simrun {
    const ch_run_ctx *ctx;
    const ch_scenario *sc;
    sim *s;
    sim_workload *w;
    ch_topology topo;
    rift_rng rng;
    ch_action *acts;
    size_t n_acts, next_act;
    sim_timer *act_timer, *sample_timer;
    link_fault *lf;
    size_t n_lf, cap_lf;
    int down_fault[PX_MAX_REPLICAS], pause_fault[PX_MAX_REPLICAS];
    int linkdown[PX_MAX_REPLICAS + CH_MAX_CLIENT_NODES]; /* link fault index, -1 */
    gc_state **gc;
    size_t n_gc;
    uint64_t ok_last_second, ok_total;
    int error;
    ch_error *err;
} simrun;

static uint32_t node_key(const simrun *r, int node)
{
    return node < r->topo.n_replicas ? (uint32_t)node : CLIENT_KEY_BASE + (uint32_t)(node - r->topo.n_replicas);
}

static uint64_t now_us(const simrun *r) { return sim_now_us(r->s); }

/* ---------- recording ---------- */

static void on_px_event(void *ctx, const px_event *e)
{
    simrun *r = ctx;
    ch_record_px_event(r->ctx->record, e);
}

/* sim_hist strings are not NUL-terminated; ch_op's are. */
static char *dup_or_null(const char *s, size_t len)
{
    if (!s)
        return NULL;
    char *d = malloc(len + 1);
    if (d) {
        memcpy(d, s, len);
        d[len] = 0;
    }
    return d;
}

static void on_history(void *ctx, const sim_hist *h)
{
    simrun *r = ctx;
    ch_op op = {.process = (uint32_t)h->process, .type = (ch_type)h->type, .time_us = (int64_t)h->time_us};
    static const ch_f fmap[] = {[PX_OP_GET] = CH_GET, [PX_OP_PUT] = CH_PUT, [PX_OP_DEL] = CH_DEL,
                                [PX_OP_APPEND] = CH_APPEND, [PX_OP_CAS] = CH_CAS};
    op.f = fmap[h->f <= PX_OP_MAX ? h->f : PX_OP_GET];
    op.key = (char *)h->key;
    op.value = dup_or_null(h->value, h->value_len);
    if (op.f == CH_CAS) {
        op.has_cas_expected = true;
        op.cas_expected = dup_or_null(h->expected, h->expected_len);
    }
    if (ch_record_op(r->ctx->record, &op) < 0)
        r->error = -ENOMEM;
    free(op.value);
    free(op.cas_expected);
    if (h->type == SIM_HIST_OK || h->type == SIM_HIST_FAIL)
        r->ok_last_second++;
}

static void take_samples(void *ctx, uint64_t now)
{
    simrun *r = ctx;
    for (int i = 0; i < r->topo.n_replicas; i++) {
        sim_replica_status st;
        if (sim_status(r->s, i, &st) == 0)
            ch_record_sample(r->ctx->record, now, i, &st.px, st.down, st.paused);
    }
    if (now % 1000000 < SAMPLE_EVERY_US && r->ctx->progress) {
        int active = 0;
        for (size_t i = 0; i < r->n_lf; i++)
            active += r->lf[i].n_rules > 0;
        ch_progress p = {now, r->sc->duration_ms * 1000, (double)r->ok_last_second, sim_leader(r->s), active};
        r->ctx->progress(r->ctx->progress_ctx, &p);
        r->ok_last_second = 0;
    }
    sim_timer_set(r->sample_timer, now + SAMPLE_EVERY_US);
}

/* ---------- link faults ---------- */

static int install(simrun *r, const ch_link *links, int n, const st_impair_rule *proto, const char *kind,
                   json_t *detail)
{
    if (r->n_lf == r->cap_lf) {
        size_t ncap = r->cap_lf ? r->cap_lf * 2 : 16;
        link_fault *nl = realloc(r->lf, ncap * sizeof(*nl));
        if (!nl) {
            json_decref(detail);
            return -ENOMEM;
        }
        r->lf = nl;
        r->cap_lf = ncap;
    }
    link_fault *f = &r->lf[r->n_lf];
    f->rules = malloc((size_t)(n ? n : 1) * sizeof(int));
    if (!f->rules) {
        json_decref(detail);
        return -ENOMEM;
    }
    f->n_rules = 0;
    json_t *jl = json_array();
    for (int i = 0; i < n; i++) {
        st_impair_rule rule = *proto;
        rule.src = node_key(r, links[i].src);
        rule.dst = node_key(r, links[i].dst);
        int id = sim_impair_add(r->s, &rule);
        if (id >= 0)
            f->rules[f->n_rules++] = id;
        char a[16], b[16];
        json_array_append_new(jl, json_pack("[s,s]", ch_node_name(&r->topo, links[i].src, a, sizeof(a)),
                                            ch_node_name(&r->topo, links[i].dst, b, sizeof(b))));
    }
    json_object_set_new(detail, "links", jl);
    f->record_id = ch_record_fault_begin(r->ctx->record, now_us(r), kind, detail);
    r->n_lf++;
    return (int)(r->n_lf - 1);
}

/* A fault ends when none of its rules is left. */
static void settle_fault(simrun *r, link_fault *f)
{
    int kept = 0;
    for (int i = 0; i < f->n_rules; i++)
        if (st_impair_get(sim_impair(r->s), f->rules[i], NULL, NULL))
            f->rules[kept++] = f->rules[i];
    f->n_rules = kept;
    if (kept == 0)
        ch_record_fault_end(r->ctx->record, f->record_id, now_us(r));
}

static void remove_fault(simrun *r, int idx)
{
    link_fault *f = &r->lf[idx];
    for (int i = 0; i < f->n_rules; i++)
        sim_impair_remove(r->s, f->rules[i]);
    settle_fault(r, f);
}

static void clear_links(simrun *r, const ch_link *links, int n)
{
    st_impair *im = sim_impair(r->s);
    for (int i = 0; i < n; i++)
        st_impair_remove_link(im, node_key(r, links[i].src), node_key(r, links[i].dst));
    for (size_t i = 0; i < r->n_lf; i++)
        settle_fault(r, &r->lf[i]);
}

static void heal_all(simrun *r)
{
    for (size_t i = 0; i < r->n_lf; i++) {
        bool linkdown = false;
        for (int j = 0; j < PX_MAX_REPLICAS + (int)CH_MAX_CLIENT_NODES; j++)
            linkdown |= r->linkdown[j] == (int)i;
        if (!linkdown) /* link-down is the interface, not the network: link-up undoes it */
            remove_fault(r, (int)i);
    }
}

/* ---------- process faults ---------- */

static int replica_of(simrun *r, const ch_action *a)
{
    int n = ch_node_resolve(&r->topo, a->node);
    if (n < 0 || n >= r->topo.n_replicas)
        return -1;
    return n;
}

/* Sample one pause length from the action's distribution. */
static uint64_t gc_pause_len(simrun *r, const ch_dist *d)
{
    if (d->kind == CH_DIST_UNIFORM)
        return rift_rng_range(&r->rng, d->a_us, d->b_us);
    if (d->kind == CH_DIST_NORMAL) {
        double u1 = 1.0 - rift_rng_double(&r->rng), u2 = rift_rng_double(&r->rng);
        double len = (double)d->a_us + (double)d->b_us * sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
        return len < 0 ? 0 : (uint64_t)len;
    }
    return d->a_us;
}

/* A stop-the-world pause every gc_every_ms: pause, then resume after the sampled
 * length, as a garbage-collected runtime's collector would. One timer walks the
 * cycle: pause start -> resume -> next pause start. */
static void gc_fire(void *ctx, uint64_t now)
{
    gc_state *g = ctx;
    simrun *r = g->run;
    if (g->paused) {
        sim_resume(r->s, g->replica);
        g->paused = false;
        ch_record_fault_end(r->ctx->record, g->fault, now);
    } else if (now < g->until_us) {
        uint64_t every = g->act.gc_every_ms * 1000;
        uint64_t len = gc_pause_len(r, &g->act.gc_pause);
        if (len >= every)
            len = every - 1; /* a pause never runs into the next one */
        g->next_us = now + every;
        if (len > 0 && sim_pause(r->s, g->replica) == 0) {
            char name[16];
            snprintf(name, sizeof(name), "r%d", g->replica + 1);
            g->paused = true;
            g->fault = ch_record_fault_begin(r->ctx->record, now, "gc-pause",
                                             json_pack("{s:s, s:I}", "node", name, "pause_us", (json_int_t)len));
            sim_timer_set(g->timer, now + len);
            return;
        }
    }
    if (g->next_us > now && g->next_us < g->until_us)
        sim_timer_set(g->timer, g->next_us);
}

static int start_gc(simrun *r, const ch_action *a, int replica)
{
    gc_state **ng = realloc(r->gc, (r->n_gc + 1) * sizeof(*ng));
    if (!ng)
        return -ENOMEM;
    r->gc = ng;
    gc_state *g = calloc(1, sizeof(*g));
    if (!g)
        return -ENOMEM;
    g->run = r;
    g->act = *a;
    g->replica = replica;
    g->until_us = a->gc_for_ms ? now_us(r) + a->gc_for_ms * 1000 : UINT64_MAX;
    g->fault = -1;
    g->timer = sim_timer_new(r->s, gc_fire, g);
    if (!g->timer) {
        free(g);
        return -ENOMEM;
    }
    r->gc[r->n_gc++] = g;
    sim_timer_set(g->timer, now_us(r));
    return 0;
}

/* ---------- timeline ---------- */

static json_t *action_json(const simrun *r, const ch_action *a)
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
    (void)r;
    return j;
}

static int link_action(simrun *r, const ch_action *a, json_t *detail)
{
    static ch_link links[CH_LINKS_MAX];
    int n = a->kind == CH_ACT_PARTITION ? ch_partition_links(&r->topo, &a->partition, links, CH_LINKS_MAX)
                                        : ch_selector_links(&r->topo, &a->sel, links, CH_LINKS_MAX);
    if (n < 0) {
        ch_record_note(r->ctx->record, now_us(r), "controller", "action_skipped",
                       json_pack("{s:s, s:s}", "do", ch_action_kind_name(a->kind), "reason", "no leader to target"));
        json_decref(detail);
        return 0;
    }
    if (a->kind == CH_ACT_CLEAR) {
        clear_links(r, links, n);
        json_decref(detail);
        return 0;
    }
    st_impair_rule rule;
    if (ch_action_rule(a, &rule) < 0) {
        json_decref(detail);
        return -EINVAL;
    }
    return install(r, links, n, &rule, ch_action_kind_name(a->kind), detail) < 0 ? -ENOMEM : 0;
}

static void crash(simrun *r, int rep)
{
    if (sim_crash(r->s, rep, false) == 0) {
        char name[16];
        snprintf(name, sizeof(name), "r%d", rep + 1);
        r->down_fault[rep] = ch_record_fault_begin(r->ctx->record, now_us(r), "crash", json_pack("{s:s}", "node", name));
    }
}

static void restart(simrun *r, int rep)
{
    if (sim_restart(r->s, rep) == 0) {
        ch_record_fault_end(r->ctx->record, r->down_fault[rep], now_us(r));
        r->down_fault[rep] = -1;
    }
}

static void pause_node(simrun *r, int rep, bool pause)
{
    if (pause && sim_pause(r->s, rep) == 0) {
        char name[16];
        snprintf(name, sizeof(name), "r%d", rep + 1);
        r->pause_fault[rep] = ch_record_fault_begin(r->ctx->record, now_us(r), "pause", json_pack("{s:s}", "node", name));
    } else if (!pause && sim_resume(r->s, rep) == 0) {
        ch_record_fault_end(r->ctx->record, r->pause_fault[rep], now_us(r));
        r->pause_fault[rep] = -1;
    }
}

/* link-down cuts every link of the node; in the simulator that is the same
 * observable effect as the veth going down on the real backend. */
static int link_down(simrun *r, const ch_action *a)
{
    int node = ch_node_resolve(&r->topo, a->node);
    if (node < 0)
        return 0;
    if (a->kind == CH_ACT_LINK_UP) {
        if (r->linkdown[node] >= 0)
            remove_fault(r, r->linkdown[node]);
        r->linkdown[node] = -1;
        return 0;
    }
    if (r->linkdown[node] >= 0)
        return 0;
    static ch_link links[CH_LINKS_MAX];
    ch_selector sel = {.kind = CH_SEL_NODE, .a = a->node};
    int n = ch_selector_links(&r->topo, &sel, links, CH_LINKS_MAX);
    st_impair_rule cut = {.cut = true};
    char name[16];
    int idx = install(r, links, n < 0 ? 0 : n, &cut, "link-down",
                      json_pack("{s:s}", "node", ch_node_name(&r->topo, node, name, sizeof(name))));
    r->linkdown[node] = idx;
    return idx < 0 ? idx : 0;
}

/* Replica-only actions on a client node are rejected up front (check_supported). */
static int process_action(simrun *r, const ch_action *a)
{
    int targets[PX_MAX_REPLICAS], n = 0;
    if (a->node.kind == CH_NODE_ALL) {
        /* restart "*" brings back the crashed replicas; it does not reboot the
         * running ones (name them one by one for a rolling reboot). */
        for (int i = 0; i < r->topo.n_replicas; i++)
            if (a->kind != CH_ACT_RESTART || r->down_fault[i] >= 0)
                targets[n++] = i;
    } else {
        int rep = replica_of(r, a);
        if (rep < 0)
            return 0; /* no leader right now: nothing to act on */
        targets[n++] = rep;
    }
    for (int i = 0; i < n; i++) {
        int rep = targets[i];
        switch (a->kind) {
        case CH_ACT_CRASH: crash(r, rep); break;
        case CH_ACT_RESTART: restart(r, rep); break;
        case CH_ACT_PAUSE: pause_node(r, rep, true); break;
        case CH_ACT_RESUME: pause_node(r, rep, false); break;
        case CH_ACT_GC_PAUSE:
            if (start_gc(r, a, rep) < 0)
                return -ENOMEM;
            break;
        case CH_ACT_SET:
            if (sim_set_param(r->s, rep, a->param, a->value) < 0) {
                snprintf(r->err->msg, sizeof(r->err->msg), "%s: timeline[%u]: set %s=%s refused by r%d",
                         r->sc->file, a->index, a->param, a->value, rep + 1);
                return -EINVAL;
            }
            break;
        default: break;
        }
    }
    return 0;
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

static int apply_action(simrun *r, const ch_action *a)
{
    r->topo.leader = sim_leader(r->s);
    json_t *desc = action_json(r, a);
    ch_record_action(r->ctx->record, now_us(r), json_deep_copy(desc), recovery_kind(a->kind));
    switch (a->kind) {
    case CH_ACT_PARTITION:
    case CH_ACT_CUT:
    case CH_ACT_LOSS:
    case CH_ACT_DELAY:
    case CH_ACT_DUPLICATE:
    case CH_ACT_REORDER:
    case CH_ACT_CLEAR:
        return link_action(r, a, desc);
    case CH_ACT_HEAL_ALL:
        json_decref(desc);
        heal_all(r);
        return 0;
    case CH_ACT_LINK_DOWN:
    case CH_ACT_LINK_UP:
        json_decref(desc);
        return link_down(r, a);
    default:
        json_decref(desc);
        return process_action(r, a);
    }
}

static void fire_actions(void *ctx, uint64_t now)
{
    simrun *r = ctx;
    while (r->next_act < r->n_acts && r->acts[r->next_act].at_ms * 1000 <= now) {
        int e = apply_action(r, &r->acts[r->next_act++]);
        if (e < 0 && !r->error)
            r->error = e;
    }
    if (r->next_act < r->n_acts)
        sim_timer_set(r->act_timer, r->acts[r->next_act].at_ms * 1000);
}

/* ---------- setup ---------- */

static int check_supported(const simrun *r)
{
    for (size_t i = 0; i < r->n_acts; i++) {
        const ch_action *a = &r->acts[i];
        bool process = a->kind >= CH_ACT_CRASH && a->kind <= CH_ACT_SET;
        if (process && a->node.kind == CH_NODE_CLIENT) {
            snprintf(r->err->msg, sizeof(r->err->msg),
                     "%s: timeline[%u].node: %s acts on replicas only (client nodes can be cut, delayed, ...)",
                     r->sc->file, a->index, ch_action_kind_name(a->kind));
            return -EINVAL;
        }
    }
    return 0;
}

static void workload_config(const ch_scenario *sc, sim_workload_config *w)
{
    sim_workload_config_default(w);
    w->n_clients = sc->workload.clients;
    w->rate_ops_per_s = sc->workload.rate_ops_per_s;
    w->mix[PX_OP_GET] = sc->workload.mix.get;
    w->mix[PX_OP_PUT] = sc->workload.mix.put;
    w->mix[PX_OP_DEL] = sc->workload.mix.del;
    w->mix[PX_OP_APPEND] = sc->workload.mix.append;
    w->mix[PX_OP_CAS] = sc->workload.mix.cas;
    w->n_keys = sc->workload.keys;
    w->dist = sc->workload.distribution == CH_KEYS_ZIPF ? SIM_KEYS_ZIPF : SIM_KEYS_UNIFORM;
    w->zipf_theta = sc->workload.zipf_s;
    w->value_bytes = sc->workload.value_bytes;
    w->op_timeout_us = sc->workload.op_timeout_ms * 1000;
}

static int setup(simrun *r)
{
    const ch_scenario *sc = r->sc;
    sim_config c;
    sim_config_default(&c);
    c.n_replicas = sc->replicas;
    c.seed = r->ctx->seed;
    c.paxos = sc->paxos;
    c.durability = sc->durability;
    int e = 0;
    r->s = sim_new(&c, &e);
    if (!r->s)
        return e;
    sim_rng_fork(r->s, 0xc4a05, &r->rng);
    for (uint32_t k = 0; k < sc->workload.clients; k++)
        sim_link_key(r->s, PX_CLIENT_BASE + k, CLIENT_KEY_BASE + k % sc->workload.nodes);
    sim_workload_config wc;
    workload_config(sc, &wc);
    r->w = sim_workload_new(r->s, &wc, &e);
    if (!r->w)
        return e;
    sim_on_event(r->s, on_px_event, r);
    sim_workload_on_history(r->w, on_history, r);
    r->act_timer = sim_timer_new(r->s, fire_actions, r);
    r->sample_timer = sim_timer_new(r->s, take_samples, r);
    if (!r->act_timer || !r->sample_timer)
        return -ENOMEM;
    if (r->n_acts)
        sim_timer_set(r->act_timer, r->acts[0].at_ms * 1000);
    sim_timer_set(r->sample_timer, 0);
    return sim_workload_start(r->w);
}

static void teardown(simrun *r)
{
    for (size_t i = 0; i < r->n_gc; i++) {
        sim_timer_free(r->gc[i]->timer);
        free(r->gc[i]);
    }
    free(r->gc);
    sim_timer_free(r->act_timer);
    sim_timer_free(r->sample_timer);
    sim_workload_free(r->w);
    sim_free(r->s);
    for (size_t i = 0; i < r->n_lf; i++)
        free(r->lf[i].rules);
    free(r->lf);
    free(r->acts);
}

int ch_backend_sim_run(const ch_run_ctx *ctx, ch_error *err)
{
    const ch_scenario *sc = ctx->scenario;
    simrun r = {.ctx = ctx, .sc = sc, .err = err};
    r.topo = (ch_topology){sc->replicas, (int)sc->workload.nodes, -1};
    for (int i = 0; i < PX_MAX_REPLICAS; i++)
        r.down_fault[i] = r.pause_fault[i] = -1;
    for (size_t i = 0; i < PX_MAX_REPLICAS + CH_MAX_CLIENT_NODES; i++)
        r.linkdown[i] = -1;
    int e = ch_scenario_expand(sc, &r.acts, &r.n_acts);
    if (e == 0)
        e = check_supported(&r);
    if (e == 0 && (e = setup(&r)) < 0 && !err->msg[0])
        snprintf(err->msg, sizeof(err->msg), "simulator setup failed: %s", strerror(-e));
    uint64_t end = sc->duration_ms * 1000;
    /* Run in 10 ms slices so an interrupt stops a long run promptly. */
    for (uint64_t t = 0; e == 0 && t < end && !r.error;) {
        t = t + 10000 < end ? t + 10000 : end;
        e = sim_run_until(r.s, t);
        if (ctx->interrupted && *ctx->interrupted)
            break;
    }
    if (e == 0 && r.error)
        e = r.error;
    if (r.s) {
        uint64_t stop = sim_now_us(r.s);
        sim_workload_stop(r.w);
        /* Let ops in flight complete or time out, so few end as open invokes. */
        if (e == 0)
            e = sim_run_for(r.s, sc->workload.op_timeout_ms * 1000 + 1000);
        ch_record_end(ctx->record, stop);
    }
    teardown(&r);
    return e;
}
