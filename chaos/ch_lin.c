/* ch_lin.c — per-key WGL linearizability search with memoization and shrinking.
 *
 * Layout: values are interned per key as (length, two polynomial hashes mod
 * 2^61-1), so a state is a 32-bit id and an append is O(1); the search walks a
 * dancing-links list of call/return events sorted by time (Lowe's variant of
 * Wing & Gong); the memo is an open-addressing set of (fingerprint, state). */
#include "ch_lin.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/rift_rng.h"

#define CH_INF INT64_MAX
#define CH_P61 ((1ULL << 61) - 1)
#define CH_B1 0x0a3c5e7f9b1d2e4fULL /* hash bases, fixed so verdicts replay */
#define CH_B2 0x1b2d4f6a8c0e1357ULL
#define CH_CLOCK_EVERY 4096u        /* steps between reads of the clock */
#define CH_DEPS_MAX (1u << 24)      /* append keys: producer->observer pairs for shrinking */

const char *ch_lin_verdict_name(ch_lin_verdict v)
{
    return v == CH_LIN_OK ? "ok" : v == CH_LIN_FAIL ? "fail" : "unknown";
}

/* ---- budget ---- */

typedef struct ch_budget {
    bool limited;
    bool expired;
    struct timespec deadline;
    size_t memo_max;
    uint64_t steps;
} ch_budget;

static double ch_now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static bool ch_budget_expired(ch_budget *b)
{
    if (!b->limited || b->expired)
        return b->expired;
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    b->expired = t.tv_sec > b->deadline.tv_sec ||
                 (t.tv_sec == b->deadline.tv_sec && t.tv_nsec >= b->deadline.tv_nsec);
    return b->expired;
}

static void ch_budget_init(ch_budget *b, const ch_lin_opts *o)
{
    memset(b, 0, sizeof *b);
    b->memo_max = o->memo_max ? o->memo_max : CH_LIN_MEMO_MAX_DEFAULT;
    if (o->time_limit_s > 0) {
        double limit = o->time_limit_s < 1e9 ? o->time_limit_s : 1e9;
        clock_gettime(CLOCK_MONOTONIC, &b->deadline);
        double ns = (double)b->deadline.tv_nsec + (limit - (double)(time_t)limit) * 1e9;
        b->deadline.tv_sec += (time_t)limit + (time_t)(ns / 1e9);
        b->deadline.tv_nsec = (long)ns % 1000000000L;
        b->limited = true;
    }
}

/* ---- interned values ---- */

static uint64_t ch_mulmod(uint64_t a, uint64_t b)
{
    __uint128_t r = (__uint128_t)a * b;
    uint64_t s = (uint64_t)(r & CH_P61) + (uint64_t)(r >> 61);
    return s >= CH_P61 ? s - CH_P61 : s;
}

static uint64_t ch_addmod(uint64_t a, uint64_t b)
{
    uint64_t s = a + b;
    return s >= CH_P61 ? s - CH_P61 : s;
}

static uint64_t ch_powmod(uint64_t b, uint64_t e)
{
    uint64_t r = 1;
    for (; e; e >>= 1, b = ch_mulmod(b, b))
        if (e & 1)
            r = ch_mulmod(r, b);
    return r;
}

/* A string value: its length and two hashes. Equal triples = equal strings
 * (up to a ~len/2^61 chance per pair, twice over). */
typedef struct ch_sval {
    uint64_t len, h1, h2;
} ch_sval;

typedef struct ch_vals {
    ch_sval *v;      /* id = index + 1; id 0 = absent */
    size_t n, cap;
    uint32_t *slot;  /* hash index over ids, 0 = empty */
    size_t slot_cap;
    size_t max;
} ch_vals;

static ch_sval ch_sval_of_n(const char *s, size_t n)
{
    ch_sval r = {n, 0, 0};
    for (size_t i = 0; i < n; i++) {
        uint64_t c = (unsigned char)s[i];
        r.h1 = ch_addmod(ch_mulmod(r.h1, CH_B1), c);
        r.h2 = ch_addmod(ch_mulmod(r.h2, CH_B2), c);
    }
    return r;
}

static ch_sval ch_sval_of(const char *s)
{
    return ch_sval_of_n(s, strlen(s));
}

static size_t ch_sval_hash(ch_sval s, size_t cap)
{
    uint64_t x = s.h1 ^ (s.h2 * 0x9e3779b97f4a7c15ULL) ^ (s.len * 0xbf58476d1ce4e5b9ULL);
    return (size_t)(x ^ (x >> 29)) & (cap - 1);
}

static bool ch_sval_eq(ch_sval a, ch_sval b)
{
    return a.len == b.len && a.h1 == b.h1 && a.h2 == b.h2;
}

static int ch_vals_grow(ch_vals *t)
{
    size_t cap = t->slot_cap ? t->slot_cap * 2 : 256;
    uint32_t *slot = calloc(cap, sizeof *slot);
    if (!slot)
        return -ENOMEM;
    for (size_t id = 1; id <= t->n; id++) {
        size_t i = ch_sval_hash(t->v[id - 1], cap);
        while (slot[i])
            i = (i + 1) & (cap - 1);
        slot[i] = (uint32_t)id;
    }
    free(t->slot);
    t->slot = slot;
    t->slot_cap = cap;
    return 0;
}

/* 0 and *id, or -ENOSPC past t->max, or -ENOMEM. */
static int ch_vals_intern(ch_vals *t, ch_sval s, uint32_t *id)
{
    if ((t->n + 1) * 2 > t->slot_cap && ch_vals_grow(t) < 0)
        return -ENOMEM;
    size_t i = ch_sval_hash(s, t->slot_cap);
    for (; t->slot[i]; i = (i + 1) & (t->slot_cap - 1)) {
        if (ch_sval_eq(t->v[t->slot[i] - 1], s)) {
            *id = t->slot[i];
            return 0;
        }
    }
    if (t->n >= t->max || t->n >= UINT32_MAX - 1)
        return -ENOSPC;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        ch_sval *v = realloc(t->v, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        t->v = v;
        t->cap = cap;
    }
    t->v[t->n++] = s;
    t->slot[i] = (uint32_t)t->n;
    *id = (uint32_t)t->n;
    return 0;
}

static void ch_vals_free(ch_vals *t)
{
    free(t->v);
    free(t->slot);
    memset(t, 0, sizeof *t);
}

/* ---- memo: set of (linearized-set fingerprint, state) ---- */

typedef struct ch_memo_slot {
    uint64_t h1;
    uint32_t h2;
    uint32_t st1; /* state id + 1; 0 = empty slot */
} ch_memo_slot;

typedef struct ch_memo {
    ch_memo_slot *s;
    size_t cap, n, max;
} ch_memo;

static size_t ch_memo_hash(uint64_t h1, uint32_t st, size_t cap)
{
    uint64_t x = h1 ^ ((uint64_t)st * 0x9e3779b97f4a7c15ULL);
    return (size_t)(x ^ (x >> 31)) & (cap - 1);
}

static int ch_memo_grow(ch_memo *m)
{
    size_t cap = m->cap ? m->cap * 2 : 1024;
    ch_memo_slot *s = calloc(cap, sizeof *s);
    if (!s)
        return -ENOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->s[i].st1)
            continue;
        size_t j = ch_memo_hash(m->s[i].h1, m->s[i].st1, cap);
        while (s[j].st1)
            j = (j + 1) & (cap - 1);
        s[j] = m->s[i];
    }
    free(m->s);
    m->s = s;
    m->cap = cap;
    return 0;
}

/* 1 inserted, 0 already there, -ENOSPC at the cap, -ENOMEM. */
static int ch_memo_insert(ch_memo *m, uint64_t h1, uint32_t h2, uint32_t state)
{
    if ((m->n + 1) * 2 > m->cap && ch_memo_grow(m) < 0)
        return -ENOMEM;
    uint32_t st1 = state + 1;
    size_t i = ch_memo_hash(h1, st1, m->cap);
    for (; m->s[i].st1; i = (i + 1) & (m->cap - 1))
        if (m->s[i].h1 == h1 && m->s[i].h2 == h2 && m->s[i].st1 == st1)
            return 0;
    if (m->n >= m->max)
        return -ENOSPC;
    m->s[i] = (ch_memo_slot){.h1 = h1, .h2 = h2, .st1 = st1};
    m->n++;
    return 1;
}

/* ---- one key's operations ---- */

typedef struct ch_lop {
    int64_t call, ret;  /* ret == CH_INF: info, may take effect any time after call */
    size_t inv, comp;   /* indices into h->ops; comp CH_NONE for an open invoke */
    uint32_t arg;       /* value written: put/append value, cas new */
    uint32_t exp;       /* cas expected (0 = absent) */
    uint32_t out;       /* get result (0 = absent) */
    uint64_t pow1, pow2; /* append: B^len(value), to extend a hash in O(1) */
    uint32_t just;      /* was info; the observer (index + 1) that needs it, 0 none */
    uint32_t cls;       /* info ops with the same effect share a class (1-based), 0 none */
    ch_f f;
    bool info;
} ch_lop;

typedef struct ch_key {
    const ch_history *h;
    ch_lop *ops;        /* sorted by call time */
    size_t m;
    size_t n_cls;       /* classes of interchangeable info ops */
    /* Lookahead (ch_look_build): per completed observer, the resets that
     * could still produce what it saw (CSR); prunable: usable for lookahead. */
    uint8_t *prunable, *split0;
    size_t *compat_off;
    uint32_t *compat;
    uint64_t **pre;     /* append keys: per value id, prefix hashes h1,h2 interleaved */
    size_t pre_n;
    ch_vals vals;
    uint64_t *z1;       /* Zobrist codes per op */
    uint32_t *z2;
    bool has_append;
} ch_key;

static void ch_key_free(ch_key *k)
{
    for (size_t v = 0; k->pre && v < k->pre_n; v++)
        free(k->pre[v]);
    free(k->pre);
    free(k->prunable);
    free(k->split0);
    free(k->compat_off);
    free(k->compat);
    free(k->ops);
    free(k->z1);
    free(k->z2);
    ch_vals_free(&k->vals);
    memset(k, 0, sizeof *k);
}

/* The transition function of one register. 1 = allowed (next state in *ns),
 * 0 = not allowed here, negative = out of room for new values. */
static int ch_step(ch_key *k, const ch_lop *o, uint32_t st, uint32_t *ns)
{
    switch (o->f) {
    case CH_GET:
        *ns = st;
        return st == o->out;
    case CH_PUT:
        *ns = o->arg;
        return 1;
    case CH_DEL:
        *ns = 0;
        return 1;
    case CH_CAS:
        *ns = o->arg;
        return st == o->exp;
    case CH_APPEND: {
        ch_sval base = st ? k->vals.v[st - 1] : (ch_sval){0, 0, 0};
        ch_sval a = k->vals.v[o->arg - 1];
        ch_sval r = {base.len + a.len, ch_addmod(ch_mulmod(base.h1, o->pow1), a.h1),
                     ch_addmod(ch_mulmod(base.h2, o->pow2), a.h2)};
        int rc = ch_vals_intern(&k->vals, r, ns);
        return rc < 0 ? rc : 1;
    }
    }
    return 0;
}

/* Observers: a get sees its result, a cas its expected value (*id, 0 = absent). */
static bool ch_observes(const ch_lop *o, uint32_t *id)
{
    if (o->f == CH_GET)
        *id = o->out;
    else if (o->f == CH_CAS)
        *id = o->exp;
    else
        return false;
    return true;
}

/* The string an observer saw: a get's result or a cas's expected value. */
static const char *ch_observed_str(const ch_key *k, const ch_lop *o)
{
    const ch_op *src = o->f == CH_GET ? &k->h->ops[o->comp] : &k->h->ops[o->inv];
    return o->f == CH_GET ? src->value : src->cas_expected;
}

/* ---- the WGL search ---- */

typedef struct ch_search {
    ch_lin_verdict verdict;
    const char *why;   /* UNKNOWN: what ran out */
    int64_t t_stuck;   /* FAIL: latest return the search could not get past */
    uint64_t steps;
    size_t memo;
} ch_search;

typedef struct ch_ev {
    int64_t t;
    uint32_t op;  /* index into sel */
    uint32_t ret; /* 0 call, 1 return: calls first at equal times (= concurrent) */
} ch_ev;

static int ch_ev_cmp(const void *a, const void *b)
{
    const ch_ev *x = a, *y = b;
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    if (x->ret != y->ret)
        return x->ret < y->ret ? -1 : 1;
    return x->op < y->op ? -1 : x->op > y->op;
}

/* Event list as dancing links: node 0 is the head, 2n+1 the end. */
typedef struct ch_list {
    uint32_t *next, *prev, *node_op, *call_node, *ret_node;
    uint8_t *is_ret;
    uint32_t end;
    /* Symmetry: an info op goes only after the previous one of its class
     * (UINT32_MAX none) is linearized; done marks linearized ops. */
    uint32_t *prev_same;
    uint8_t *done;
    /* Lookahead: the return entries of prunable gets, linked in time order
     * (gnext/gprev over nodes, 0 head, end tail), and lop -> local index. */
    uint32_t *gnext, *gprev, *loc;
    uint8_t *is_gret;
} ch_list;

static void ch_list_free(ch_list *l)
{
    free(l->next);
    free(l->prev);
    free(l->node_op);
    free(l->call_node);
    free(l->ret_node);
    free(l->is_ret);
    free(l->prev_same);
    free(l->done);
    free(l->gnext);
    free(l->gprev);
    free(l->loc);
    free(l->is_gret);
}

static int ch_list_gets(const ch_key *k, const uint32_t *sel, size_t n, ch_list *l)
{
    size_t nodes = 2 * n + 2;
    l->gnext = malloc(nodes * sizeof *l->gnext);
    l->gprev = malloc(nodes * sizeof *l->gprev);
    l->is_gret = calloc(nodes, 1);
    l->loc = malloc((k->m + 1) * sizeof *l->loc);
    if (!l->gnext || !l->gprev || !l->is_gret || !l->loc)
        return -ENOMEM;
    for (size_t i = 0; i < k->m; i++)
        l->loc[i] = UINT32_MAX;
    for (uint32_t i = 0; i < n; i++)
        l->loc[sel[i]] = i;
    uint32_t last = 0;
    for (uint32_t j = 1; j < l->end; j++) {
        if (!l->is_ret[j] || !k->prunable || !k->prunable[sel[l->node_op[j]]])
            continue;
        l->is_gret[j] = 1;
        l->gnext[last] = j;
        l->gprev[j] = last;
        last = j;
    }
    l->gnext[last] = l->end;
    l->gprev[l->end] = last;
    return 0;
}

static int ch_list_classes(const ch_key *k, const uint32_t *sel, size_t n, ch_list *l)
{
    uint32_t *last = malloc((k->n_cls + 1) * sizeof *last);
    l->prev_same = malloc((n + 1) * sizeof *l->prev_same);
    l->done = calloc(n + 1, 1);
    if (!last || !l->prev_same || !l->done) {
        free(last);
        return -ENOMEM;
    }
    for (size_t c = 0; c <= k->n_cls; c++)
        last[c] = UINT32_MAX;
    for (uint32_t i = 0; i < n; i++) { /* sel ascends, so by call time */
        uint32_t c = k->ops[sel[i]].cls;
        l->prev_same[i] = c ? last[c] : UINT32_MAX;
        if (c)
            last[c] = i;
    }
    free(last);
    return 0;
}

static int ch_list_build(const ch_key *k, const uint32_t *sel, size_t n, ch_list *l)
{
    size_t nodes = 2 * n + 2;
    ch_ev *ev = malloc((2 * n + 1) * sizeof *ev);
    l->next = malloc(nodes * sizeof *l->next);
    l->prev = malloc(nodes * sizeof *l->prev);
    l->node_op = malloc(nodes * sizeof *l->node_op);
    l->is_ret = malloc(nodes);
    l->call_node = malloc((n + 1) * sizeof *l->call_node);
    l->ret_node = malloc((n + 1) * sizeof *l->ret_node);
    if (!ev || !l->next || !l->prev || !l->node_op || !l->is_ret || !l->call_node ||
        !l->ret_node) {
        free(ev);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < n; i++) {
        const ch_lop *o = &k->ops[sel[i]];
        ev[2 * i] = (ch_ev){.t = o->call, .op = i, .ret = 0};
        ev[2 * i + 1] = (ch_ev){.t = o->ret, .op = i, .ret = 1};
    }
    qsort(ev, 2 * n, sizeof *ev, ch_ev_cmp);
    l->end = (uint32_t)(2 * n + 1);
    for (uint32_t j = 0; j <= l->end; j++) {
        l->next[j] = j + 1;
        l->prev[j] = j ? j - 1 : 0;
    }
    for (uint32_t j = 0; j < 2 * n; j++) {
        l->node_op[j + 1] = ev[j].op;
        l->is_ret[j + 1] = (uint8_t)ev[j].ret;
        if (ev[j].ret)
            l->ret_node[ev[j].op] = j + 1;
        else
            l->call_node[ev[j].op] = j + 1;
    }
    free(ev);
    int rc = ch_list_classes(k, sel, n, l);
    return rc < 0 ? rc : ch_list_gets(k, sel, n, l);
}

/* Take an op's call and return out of the list; ch_unlift undoes it exactly. */
static void ch_lift(ch_list *l, uint32_t c, uint32_t r)
{
    l->next[l->prev[c]] = l->next[c];
    l->prev[l->next[c]] = l->prev[c];
    l->next[l->prev[r]] = l->next[r];
    l->prev[l->next[r]] = l->prev[r];
    if (l->is_gret[r]) {
        l->gnext[l->gprev[r]] = l->gnext[r];
        l->gprev[l->gnext[r]] = l->gprev[r];
    }
}

static void ch_unlift(ch_list *l, uint32_t c, uint32_t r)
{
    if (l->is_gret[r]) {
        l->gnext[l->gprev[r]] = r;
        l->gprev[l->gnext[r]] = r;
    }
    l->next[l->prev[r]] = r;
    l->prev[l->next[r]] = r;
    l->next[l->prev[c]] = c;
    l->prev[l->next[c]] = c;
}

typedef struct ch_frame {
    uint32_t node;   /* the call entry linearized */
    uint32_t state;  /* the state before it */
    bool forced;     /* a read taken greedily: no alternatives to try here */
} ch_frame;

typedef struct ch_cursor {
    ch_key *k;
    const uint32_t *sel;
    ch_list *l;
    ch_frame *stk;
    size_t depth;
    uint32_t cur, state, h2;
    uint64_t h1;
} ch_cursor;

static void ch_set_unknown(ch_search *s, int rc)
{
    s->verdict = CH_LIN_UNKNOWN;
    s->why = rc == -ENOSPC ? "memo table cap" : "out of memory";
}

static void ch_linearize(ch_cursor *c, uint32_t i, uint32_t ns, bool forced)
{
    c->stk[c->depth++] = (ch_frame){.node = c->cur, .state = c->state, .forced = forced};
    c->state = ns;
    c->h1 ^= c->k->z1[c->sel[i]];
    c->h2 ^= c->k->z2[c->sel[i]];
    c->l->done[i] = 1;
    ch_lift(c->l, c->cur, c->l->ret_node[i]);
    c->cur = c->l->next[0];
}

/* Undo linearizations up to the latest one that has alternatives, and move
 * past it. false when nothing is left to undo: no linearization exists. */
static bool ch_backtrack(ch_cursor *c)
{
    while (c->depth > 0) {
        ch_frame f = c->stk[--c->depth];
        uint32_t fi = c->l->node_op[f.node];
        c->state = f.state;
        c->h1 ^= c->k->z1[c->sel[fi]];
        c->h2 ^= c->k->z2[c->sel[fi]];
        c->l->done[fi] = 0;
        ch_unlift(c->l, f.node, c->l->ret_node[fi]);
        if (!f.forced) {
            c->cur = c->l->next[f.node];
            return true;
        }
    }
    return false;
}

/* ---- lookahead ----
 * G, the completed observer (a get, or a cas that took effect: it saw its
 * expected value) that returns first among those not yet linearized, comes
 * after everything linearized so far. If the state we are about to
 * make cannot grow into what G saw (equal it, without appends; be a prefix
 * of it, or absent with G's value made of appends, with them), only a reset
 * that could produce G's value can save the branch; with none left, prune. */

static bool ch_state_fits(const ch_key *k, uint32_t s, const ch_lop *g, size_t gi)
{
    uint32_t v = 0;
    ch_observes(g, &v);
    if (s == v)
        return true;
    if (!k->has_append || v == 0)
        return false;
    if (s == 0)
        return k->split0[gi];
    ch_sval a = k->vals.v[s - 1];
    const uint64_t *pre = k->pre[v];
    return a.len <= k->vals.v[v - 1].len && pre[2 * a.len] == a.h1 && pre[2 * a.len + 1] == a.h2;
}

static bool ch_lookahead_ok(const ch_cursor *c, uint32_t i, uint32_t ns)
{
    const ch_list *l = c->l;
    uint32_t gnode = l->gnext[0];
    if (gnode == l->end || l->node_op[gnode] == i)
        return true;
    size_t gi = c->sel[l->node_op[gnode]];
    if (ch_state_fits(c->k, ns, &c->k->ops[gi], gi))
        return true;
    for (size_t j = c->k->compat_off[gi]; j < c->k->compat_off[gi + 1]; j++) {
        uint32_t r = c->k->compat[j], loc = l->loc[r];
        if (r != c->sel[i] && loc != UINT32_MAX && !l->done[loc])
            return true;
    }
    return false;
}

/* Try the call at c->cur: 1 moved on, 0 must backtrack, negative out of room.
 * A read that can be linearized now is taken greedily and never branched on:
 * it changes nothing, and every op still pending may legally follow it, so any
 * linearization with the read later can move it here. */
static int ch_try_call(ch_cursor *c, ch_memo *memo)
{
    uint32_t i = c->l->node_op[c->cur];
    const ch_lop *o = &c->k->ops[c->sel[i]];
    uint32_t before = c->l->prev_same[i];
    if (before != UINT32_MAX && !c->l->done[before]) {
        /* its twin invoked earlier goes first */
        c->cur = c->l->next[c->cur];
        return 1;
    }
    uint32_t ns;
    int rc = ch_step(c->k, o, c->state, &ns);
    if (rc == 1 && !ch_lookahead_ok(c, i, ns))
        rc = 0;
    if (rc == 1)
        rc = ch_memo_insert(memo, c->h1 ^ c->k->z1[c->sel[i]], c->h2 ^ c->k->z2[c->sel[i]], ns);
    if (rc < 0)
        return rc;
    bool read_ok = o->f == CH_GET && o->out == c->state;
    if (rc == 1)
        ch_linearize(c, i, ns, read_ok);
    else if (read_ok)
        return 0; /* been here: the greedy read's configuration already failed */
    else
        c->cur = c->l->next[c->cur];
    return 1;
}

/* Search for a linearization of the ops sel[0..n). */
static void ch_wgl_run(ch_cursor *c, ch_memo *memo, ch_budget *b, ch_search *s)
{
    for (;; s->steps++) {
        if (c->cur == c->l->end) {
            s->verdict = CH_LIN_OK;
            return;
        }
        if (s->steps % CH_CLOCK_EVERY == CH_CLOCK_EVERY - 1 && ch_budget_expired(b)) {
            s->verdict = CH_LIN_UNKNOWN;
            s->why = "time budget";
            return;
        }
        const ch_lop *o = &c->k->ops[c->sel[c->l->node_op[c->cur]]];
        int rc = 0;
        if (!c->l->is_ret[c->cur]) {
            rc = ch_try_call(c, memo);
        } else if (o->info) {
            /* The first return left is an info one: every op that completed
             * is linearized; the rest may never have taken effect. */
            s->verdict = CH_LIN_OK;
            return;
        } else if (o->ret > s->t_stuck) {
            s->t_stuck = o->ret;
        }
        if (rc < 0) {
            ch_set_unknown(s, rc);
            return;
        }
        if (rc == 0 && !ch_backtrack(c)) {
            s->verdict = CH_LIN_FAIL;
            return;
        }
    }
}

static void ch_wgl(ch_key *k, const uint32_t *sel, size_t n, ch_budget *b, ch_search *s)
{
    memset(s, 0, sizeof *s);
    s->t_stuck = INT64_MIN;
    ch_list l = {0};
    ch_memo memo = {.max = b->memo_max};
    ch_frame *stk = malloc((n + 1) * sizeof *stk);
    if (!stk || ch_list_build(k, sel, n, &l) < 0)
        ch_set_unknown(s, -ENOMEM);
    else
        ch_wgl_run(&(ch_cursor){.k = k, .sel = sel, .l = &l, .stk = stk, .cur = l.next[0]},
                   &memo, b, s);
    s->memo = memo.n;
    b->steps += s->steps;
    free(stk);
    free(memo.s);
    ch_list_free(&l);
}

/* ---- building a key's ops ---- */

static int ch_intern_str(ch_key *k, const char *s, uint32_t *id)
{
    *id = 0;
    return s ? ch_vals_intern(&k->vals, ch_sval_of(s), id) : 0;
}

static int ch_lop_values(ch_key *k, ch_lop *o, const ch_op *inv, const ch_op *comp)
{
    switch (o->f) {
    case CH_GET:
        return ch_intern_str(k, comp->value, &o->out);
    case CH_PUT:
        return ch_intern_str(k, inv->value, &o->arg);
    case CH_APPEND: {
        int rc = ch_intern_str(k, inv->value, &o->arg);
        o->pow1 = ch_powmod(CH_B1, strlen(inv->value));
        o->pow2 = ch_powmod(CH_B2, strlen(inv->value));
        k->has_append = true;
        return rc;
    }
    case CH_CAS: {
        int rc = ch_intern_str(k, inv->cas_expected, &o->exp);
        return rc < 0 ? rc : ch_intern_str(k, inv->value, &o->arg);
    }
    case CH_DEL:
        return 0;
    }
    return 0;
}

/* One invoke (and its completion) as a search op; 0 = dropped (no constraint). */
static int ch_lop_make(ch_key *k, const size_t *match, size_t i, ch_lop *o)
{
    const ch_op *inv = &k->h->ops[i];
    size_t c = match[i];
    ch_type t = c == CH_NONE ? CH_INFO : k->h->ops[c].type;
    if (t == CH_FAIL || (t == CH_INFO && inv->f == CH_GET))
        return 0;
    *o = (ch_lop){.call = inv->time_us, .ret = t == CH_INFO ? CH_INF : k->h->ops[c].time_us,
                  .inv = i, .comp = c, .f = inv->f, .info = t == CH_INFO};
    int rc = ch_lop_values(k, o, inv, c == CH_NONE ? NULL : &k->h->ops[c]);
    return rc < 0 ? rc : 1;
}

/* ---- dropping info writes nobody can observe ----
 *
 * An info op may never take effect, so leaving one out is always allowed; it
 * is only *needed* when some read or cas observes a state it made. Without
 * appends that state is exactly its value. With appends, every state from an
 * info put/cas/append until the next reset contains its value as a substring
 * (and no cas can succeed in between without observing it), so if no observed
 * value contains it, it can go. An info del with appends around stays. */

/* Info writes a prune round may drop; the value they would have to be seen in. */
static bool ch_droppable(const ch_key *k, const ch_lop *o, uint32_t *id)
{
    if (!o->info || o->f == CH_GET)
        return false;
    if (o->f == CH_DEL) {
        *id = 0;
        return !k->has_append;
    }
    *id = o->arg;
    return true;
}

#define CH_PRUNE_LENS 64           /* distinct value lengths searched for */
#define CH_PRUNE_WINDOWS (1u << 28) /* substring windows scanned per round */

typedef struct ch_needle {
    uint64_t len, h1;
    uint32_t id;
    bool found;
} ch_needle;

/* Needles (candidate values) in an open-addressing table keyed by (len, h1). */
typedef struct ch_needles {
    ch_needle *t;
    size_t cap;
    uint64_t lens[CH_PRUNE_LENS];
    uint64_t pows[CH_PRUNE_LENS]; /* B1^len */
    size_t n_lens;
    bool lens_dropped; /* more lengths than we search for */
} ch_needles;

static size_t ch_needle_slot(const ch_needles *nd, uint64_t len, uint64_t h1)
{
    uint64_t x = (h1 ^ (len * 0x9e3779b97f4a7c15ULL)) * 0xbf58476d1ce4e5b9ULL;
    size_t i = (size_t)(x >> 17) & (nd->cap - 1);
    while (nd->t[i].id && !(nd->t[i].len == len && nd->t[i].h1 == h1))
        i = (i + 1) & (nd->cap - 1);
    return i;
}

typedef bool (*ch_pick_fn)(const ch_key *k, const ch_lop *o, uint32_t *id);

static int ch_needles_build(ch_key *k, ch_needles *nd, ch_pick_fn pick)
{
    size_t cands = 0;
    uint32_t id;
    for (size_t i = 0; i < k->m; i++)
        cands += pick(k, &k->ops[i], &id) && id;
    nd->cap = 64;
    while (nd->cap < 2 * cands + 2)
        nd->cap *= 2;
    if (!(nd->t = calloc(nd->cap, sizeof *nd->t)))
        return -ENOMEM;
    for (size_t i = 0; i < k->m; i++) {
        if (!pick(k, &k->ops[i], &id) || !id)
            continue;
        ch_sval v = k->vals.v[id - 1];
        size_t j = ch_needle_slot(nd, v.len, v.h1);
        nd->t[j] = (ch_needle){.len = v.len, .h1 = v.h1, .id = id};
        bool known = false;
        for (size_t l = 0; l < nd->n_lens; l++)
            known |= nd->lens[l] == v.len;
        if (!known && nd->n_lens < CH_PRUNE_LENS) {
            nd->pows[nd->n_lens] = ch_powmod(CH_B1, v.len);
            nd->lens[nd->n_lens++] = v.len;
        } else if (!known) {
            nd->lens_dropped = true;
        }
    }
    return 0;
}

/* Mark every needle of length len that occurs in s (rolling hash windows). */
static void ch_needles_scan(ch_needles *nd, const char *s, size_t n, uint64_t len)
{
    if (len > n)
        return;
    uint64_t h = 0, top = ch_powmod(CH_B1, len ? len - 1 : 0);
    for (size_t i = 0; i < len; i++)
        h = ch_addmod(ch_mulmod(h, CH_B1), (unsigned char)s[i]);
    for (size_t i = 0;; i++) {
        size_t j = ch_needle_slot(nd, len, h);
        if (nd->t[j].id)
            nd->t[j].found = true;
        if (i + len >= n || len == 0)
            break;
        uint64_t out = ch_mulmod((unsigned char)s[i], top);
        h = ch_addmod(ch_mulmod(ch_addmod(h, CH_P61 - out), CH_B1), (unsigned char)s[i + len]);
    }
}

/* Which candidate values occur inside some observed value (appends only). */
static int ch_find_substrings(ch_key *k, ch_needles *nd, uint8_t *seen)
{
    uint64_t windows = 0;
    uint32_t id;
    memset(seen, 0, k->vals.n + 1);
    for (size_t i = 0; i < k->m; i++) {
        const char *v;
        if (!ch_observes(&k->ops[i], &id) || !id || seen[id] ||
            !(v = ch_observed_str(k, &k->ops[i])))
            continue;
        seen[id] = 1;
        size_t n = strlen(v);
        for (size_t l = 0; l < nd->n_lens; l++) {
            if ((windows += n) > CH_PRUNE_WINDOWS)
                return -E2BIG;
            ch_needles_scan(nd, v, n, nd->lens[l]);
        }
    }
    return 0;
}

static bool ch_value_seen(const ch_key *k, const ch_needles *nd, const uint8_t *seen, uint32_t id)
{
    if (!k->has_append || !id)
        return seen[id];
    if (nd->lens_dropped)
        return true; /* some lengths were not searched for: keep everything */
    ch_sval v = k->vals.v[id - 1];
    const ch_needle *n = &nd->t[ch_needle_slot(nd, v.len, v.h1)];
    return !n->id || n->found;
}

/* One round; *dropped says whether anything went. */
static int ch_prune_round(ch_key *k, uint8_t *seen, bool *dropped)
{
    ch_needles nd = {0};
    uint32_t id;
    int rc = 0;
    memset(seen, 0, k->vals.n + 1);
    if (k->has_append) {
        rc = ch_needles_build(k, &nd, ch_droppable);
        if (rc == 0)
            rc = ch_find_substrings(k, &nd, seen);
    } else {
        for (size_t i = 0; i < k->m; i++)
            if (ch_observes(&k->ops[i], &id))
                seen[id] = 1;
    }
    size_t w = 0;
    for (size_t i = 0; i < k->m && rc == 0; i++) {
        const ch_lop *o = &k->ops[i];
        if (!(ch_droppable(k, o, &id) && !ch_value_seen(k, &nd, seen, id)))
            k->ops[w++] = *o;
    }
    *dropped = rc == 0 && w < k->m;
    if (rc == 0)
        k->m = w;
    free(nd.t);
    return rc == -E2BIG ? 0 : rc; /* too much to scan: keep them all */
}

static int ch_prune_info(ch_key *k)
{
    uint8_t *seen = malloc(k->vals.n + 1);
    if (!seen)
        return -ENOMEM;
    int rc = 0;
    bool dropped = true;
    /* Repeat: a dropped info cas no longer observes its expected value. */
    for (int round = 0; round < 8 && dropped && rc == 0; round++)
        rc = ch_prune_round(k, seen, &dropped);
    free(seen);
    return rc;
}

/* ---- splitting observed values into what could have made them ---- */

static bool ch_pick_append(const ch_key *k, const ch_lop *o, uint32_t *id)
{
    *id = o->arg;
    return o->f == CH_APPEND;
}

static bool ch_pick_base(const ch_key *k, const ch_lop *o, uint32_t *id)
{
    *id = o->arg;
    return o->f == CH_PUT || o->f == CH_CAS;
}

static uint32_t ch_needle_id(const ch_needles *nd, uint64_t len, uint64_t h1)
{
    return nd->t[ch_needle_slot(nd, len, h1)].id;
}

/* A word break over hashed values: can v (from `from`, or from a base when
 * bases is set) be written as base + append values? skip_* leave one value
 * out (the op under test). A hash collision only says yes more often. */
typedef struct ch_dp {
    const ch_needles *words;  /* append values */
    const ch_needles *bases;  /* put/cas values; NULL: start at `from` */
    uint32_t skip_word, skip_base;
} ch_dp;

static void ch_dp_bases(const ch_dp *d, const uint64_t *pre, size_t n, uint8_t *reach)
{
    reach[0] = 1; /* absent (initial or after a del) */
    for (size_t l = 0; l < d->bases->n_lens; l++) {
        uint64_t len = d->bases->lens[l];
        if (len > n)
            continue;
        uint32_t id = ch_needle_id(d->bases, len, pre[len]);
        if (id && id != d->skip_base)
            reach[len] = 1;
    }
}

static int ch_dp_reach(const ch_dp *d, const char *v, size_t from, bool *out)
{
    size_t n = strlen(v);
    *out = true;
    if (d->words->lens_dropped || (d->bases && d->bases->lens_dropped) ||
        (!d->bases && from >= n))
        return 0;
    uint64_t *pre = malloc((n + 1) * sizeof *pre);
    uint8_t *reach = calloc(n + 1, 1);
    if (!pre || !reach) {
        free(pre);
        free(reach);
        return -ENOMEM;
    }
    pre[0] = 0;
    for (size_t i = 0; i < n; i++)
        pre[i + 1] = ch_addmod(ch_mulmod(pre[i], CH_B1), (unsigned char)v[i]);
    if (d->bases)
        ch_dp_bases(d, pre, n, reach);
    else
        reach[from] = 1;
    for (size_t i = 0; i < n; i++) {
        for (size_t l = 0; reach[i] && l < d->words->n_lens; l++) {
            uint64_t len = d->words->lens[l];
            if (len == 0 || len > n - i)
                continue;
            uint64_t h = ch_addmod(pre[i + len], CH_P61 - ch_mulmod(pre[i], d->words->pows[l]));
            uint32_t id = ch_needle_id(d->words, len, h);
            if (id && id != d->skip_word)
                reach[i + len] = 1;
        }
    }
    *out = reach[n];
    free(pre);
    free(reach);
    return 0;
}

/* ---- info writes that a completed observer needs ----
 *
 * If a completed get (or cas) saw a value that no op but info write p could
 * have made, p took effect, and before that observer returned. So p is a
 * completed op whose return is the observer's: the same linearizations, and
 * no more guessing where (or whether) p happened. */

#define CH_TIGHTEN_SCAN 4096u /* observers tried per info write (appends) */

typedef struct ch_tight {
    ch_key *k;
    uint32_t *obs;        /* completed observers, by return time; without appends
                           * grouped by the value seen (obs_off per value id) */
    size_t n_obs;
    size_t *obs_off;
    uint32_t *writers;    /* per value id: ops writing it (put/cas; appends apart) */
    uint32_t *appenders;
    ch_needles words, bases;
} ch_tight;

/* First of obs[lo..hi) (sorted by return) returning at or after call. */
static size_t ch_first_obs(const ch_tight *t, size_t lo, size_t hi, int64_t call)
{
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->k->ops[t->obs[mid]].ret < call)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Is p (the unique writer of its value) needed for what observer g saw? */
static int ch_needed_by(ch_tight *t, const ch_lop *p, const ch_lop *g, bool *yes)
{
    ch_key *k = t->k;
    uint32_t id = 0;
    *yes = false;
    ch_observes(g, &id);
    if (!k->has_append) {
        *yes = id == p->arg;
        return 0;
    }
    const char *v = ch_observed_str(k, g);
    if (!v || !strstr(v, k->h->ops[p->inv].value))
        return 0;
    ch_dp d = {.words = &t->words, .bases = &t->bases};
    if (p->f == CH_APPEND)
        d.skip_word = p->arg;
    else
        d.skip_base = p->arg;
    bool producible;
    int rc = ch_dp_reach(&d, v, 0, &producible);
    *yes = rc == 0 && !producible;
    return rc;
}

static int ch_tighten_one(ch_tight *t, ch_lop *p)
{
    uint32_t *count = p->f == CH_APPEND ? t->appenders : t->writers;
    if (!p->info || p->f == CH_GET || p->f == CH_DEL || count[p->arg] != 1)
        return 0;
    size_t lo = 0, hi = t->n_obs;
    if (!t->k->has_append)
        lo = t->obs_off[p->arg], hi = t->obs_off[p->arg + 1];
    size_t from = ch_first_obs(t, lo, hi, p->call);
    size_t to = hi - from > CH_TIGHTEN_SCAN ? from + CH_TIGHTEN_SCAN : hi;
    for (size_t j = from; j < to; j++) {
        const ch_lop *g = &t->k->ops[t->obs[j]];
        bool yes;
        int rc = ch_needed_by(t, p, g, &yes);
        if (rc < 0)
            return rc;
        if (yes) {
            p->ret = g->ret;
            p->info = false;
            p->just = t->obs[j] + 1;
            return 0;
        }
    }
    return 0;
}

typedef struct ch_by_ret {
    int64_t ret;
    uint32_t op;
    uint32_t val;
} ch_by_ret;

static int ch_by_ret_cmp(const void *a, const void *b)
{
    const ch_by_ret *x = a, *y = b;
    if (x->val != y->val)
        return x->val < y->val ? -1 : 1;
    if (x->ret != y->ret)
        return x->ret < y->ret ? -1 : 1;
    return x->op < y->op ? -1 : x->op > y->op;
}

/* Completed observers sorted by (value seen, return) without appends, by
 * return alone with them; and how many ops write each value. */
static int ch_tight_index(ch_tight *t)
{
    ch_key *k = t->k;
    size_t nv = k->vals.n + 1;
    ch_by_ret *by = malloc((k->m + 1) * sizeof *by);
    t->obs = malloc((k->m + 1) * sizeof *t->obs);
    t->obs_off = calloc(nv + 1, sizeof *t->obs_off);
    t->writers = calloc(nv, sizeof *t->writers);
    t->appenders = calloc(nv, sizeof *t->appenders);
    if (!by || !t->obs || !t->obs_off || !t->writers || !t->appenders) {
        free(by);
        return -ENOMEM;
    }
    uint32_t id;
    for (size_t i = 0; i < k->m; i++) {
        const ch_lop *o = &k->ops[i];
        if (o->f == CH_PUT || o->f == CH_CAS)
            t->writers[o->arg]++;
        else if (o->f == CH_APPEND)
            t->appenders[o->arg]++;
        if (!o->info && ch_observes(o, &id)) {
            by[t->n_obs++] = (ch_by_ret){.ret = o->ret, .op = (uint32_t)i,
                                         .val = k->has_append ? 0 : id};
            t->obs_off[(k->has_append ? 0 : id) + 1]++;
        }
    }
    qsort(by, t->n_obs, sizeof *by, ch_by_ret_cmp);
    for (size_t i = 0; i < t->n_obs; i++)
        t->obs[i] = by[i].op;
    for (size_t v = 0; v < nv; v++)
        t->obs_off[v + 1] += t->obs_off[v];
    free(by);
    return 0;
}

static int ch_tighten_info(ch_key *k)
{
    ch_tight t = {.k = k};
    int rc = ch_tight_index(&t);
    if (rc == 0 && k->has_append)
        rc = ch_needles_build(k, &t.words, ch_pick_append);
    if (rc == 0 && k->has_append)
        rc = ch_needles_build(k, &t.bases, ch_pick_base);
    for (size_t i = 0; i < k->m && rc == 0; i++)
        rc = ch_tighten_one(&t, &k->ops[i]);
    free(t.obs);
    free(t.obs_off);
    free(t.writers);
    free(t.appenders);
    free(t.words.t);
    free(t.bases.t);
    return rc;
}

static int ch_lop_cmp(const void *a, const void *b)
{
    const ch_lop *x = a, *y = b;
    if (x->call != y->call)
        return x->call < y->call ? -1 : 1;
    return x->inv < y->inv ? -1 : x->inv > y->inv;
}

static int ch_key_zobrist(ch_key *k)
{
    k->z1 = malloc((k->m + 1) * sizeof *k->z1);
    k->z2 = malloc((k->m + 1) * sizeof *k->z2);
    if (!k->z1 || !k->z2)
        return -ENOMEM;
    uint64_t x = 0x5eed0f2b1a9c3d47ULL;
    for (size_t i = 0; i < k->m; i++) {
        k->z1[i] = rift_splitmix64(&x);
        k->z2[i] = (uint32_t)rift_splitmix64(&x);
    }
    return 0;
}

/* Info ops with the same effect are interchangeable: any linearization using
 * a later-invoked one can use an earlier-invoked one in its place (an info op
 * has no return to respect). Number the classes so the search can take them
 * in invoke order only, which turns 2^k subsets into k + 1 counts. */
typedef struct ch_effect {
    uint32_t f, arg, exp, op;
} ch_effect;

static int ch_effect_cmp(const void *a, const void *b)
{
    const ch_effect *x = a, *y = b;
    if (x->f != y->f)
        return x->f < y->f ? -1 : 1;
    if (x->arg != y->arg)
        return x->arg < y->arg ? -1 : 1;
    return x->exp < y->exp ? -1 : x->exp > y->exp;
}

static int ch_info_classes(ch_key *k)
{
    ch_effect *e = malloc((k->m + 1) * sizeof *e);
    if (!e)
        return -ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < k->m; i++) {
        const ch_lop *o = &k->ops[i];
        if (o->info)
            e[n++] = (ch_effect){.f = o->f, .arg = o->f == CH_DEL ? 0 : o->arg,
                                 .exp = o->f == CH_CAS ? o->exp : 0, .op = (uint32_t)i};
    }
    qsort(e, n, sizeof *e, ch_effect_cmp);
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || ch_effect_cmp(&e[i - 1], &e[i]) != 0)
            k->n_cls++;
        k->ops[e[i].op].cls = (uint32_t)k->n_cls;
    }
    free(e);
    return 0;
}

/* ---- fast path: a read whose every possible writer was overwritten ----
 *
 * Let G (a completed get, or an ok cas) see v, where v can only be the exact
 * value of a put/cas (or null: a del, or the initial state) -- no append can
 * build it. If every such producer p is followed by a definitely applied write
 * W (p returned before W was invoked) that completed before G was invoked,
 * G is impossible: the last write before G in any linearization would be a
 * producer, yet its W lies strictly between the two. W is an ok put, del or
 * append (not a cas: it observes, and its witness would need more ops).
 * Stale reads (and reads of values never written) fall here; proving them by
 * search alone can mean trying every order of the ops still pending when G
 * returns. */

typedef struct ch_killer {
    int64_t call, ret;
    uint32_t op;
} ch_killer;

typedef struct ch_stale {
    ch_key *k;
    ch_killer *w;     /* definitely applied writes, by call time */
    size_t n_w;
    int64_t *sufmin;  /* min ret over w[i..] */
    uint32_t *argmin;
    int64_t *max_t;   /* per value id: the latest "overwritten by" over its producers */
    ch_needles words, bases;
} ch_stale;

static int ch_killer_cmp(const void *a, const void *b)
{
    const ch_killer *x = a, *y = b;
    if (x->call != y->call)
        return x->call < y->call ? -1 : 1;
    return x->op < y->op ? -1 : x->op > y->op;
}

/* Overwriting writes: completed ok (not info, not made necessary by a read)
 * and observing nothing (no cas), so the witness needs nothing else to
 * explain them. An empty append changes nothing. */
static bool ch_is_killer(const ch_key *k, const ch_lop *o)
{
    if (o->info || o->just || o->f == CH_GET || o->f == CH_CAS)
        return false;
    return o->f != CH_APPEND || k->vals.v[o->arg - 1].len > 0;
}

/* The earliest return of a write invoked after t (CH_INF none); *by which. */
static int64_t ch_overwritten(const ch_stale *st, int64_t t, uint32_t *by)
{
    size_t lo = 0, hi = st->n_w;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (st->w[mid].call <= t)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == st->n_w || t == CH_INF)
        return CH_INF; /* info: may land after any write */
    *by = st->argmin[lo];
    return st->sufmin[lo];
}

static bool ch_is_producer(const ch_lop *o, uint32_t v)
{
    if (v == 0)
        return o->f == CH_DEL;
    return (o->f == CH_PUT || o->f == CH_CAS) && o->arg == v;
}

static int ch_stale_index(ch_stale *st)
{
    ch_key *k = st->k;
    size_t nv = k->vals.n + 1;
    st->w = malloc((k->m + 1) * sizeof *st->w);
    st->sufmin = malloc((k->m + 1) * sizeof *st->sufmin);
    st->argmin = malloc((k->m + 1) * sizeof *st->argmin);
    st->max_t = malloc(nv * sizeof *st->max_t);
    if (!st->w || !st->sufmin || !st->argmin || !st->max_t)
        return -ENOMEM;
    for (size_t i = 0; i < k->m; i++)
        if (ch_is_killer(k, &k->ops[i]))
            st->w[st->n_w++] = (ch_killer){k->ops[i].call, k->ops[i].ret, (uint32_t)i};
    qsort(st->w, st->n_w, sizeof *st->w, ch_killer_cmp);
    for (size_t i = st->n_w; i-- > 0;) {
        bool take = i + 1 == st->n_w || st->w[i].ret < st->sufmin[i + 1];
        st->sufmin[i] = take ? st->w[i].ret : st->sufmin[i + 1];
        st->argmin[i] = take ? st->w[i].op : st->argmin[i + 1];
    }
    uint32_t by;
    st->max_t[0] = st->n_w ? st->sufmin[0] : CH_INF; /* the initial state */
    for (size_t v = 1; v < nv; v++)
        st->max_t[v] = INT64_MIN;
    for (size_t i = 0; i < k->m; i++) {
        const ch_lop *o = &k->ops[i];
        size_t v = o->f == CH_DEL ? 0 : o->arg;
        if (ch_is_producer(o, (uint32_t)v)) {
            /* A write only a later read made necessary may still land late. */
            int64_t t = o->just ? CH_INF : ch_overwritten(st, o->ret, &by);
            st->max_t[v] = t > st->max_t[v] ? t : st->max_t[v];
        }
    }
    if (!k->has_append)
        return 0;
    int rc = ch_needles_build(k, &st->words, ch_pick_append);
    return rc < 0 ? rc : ch_needles_build(k, &st->bases, ch_pick_base);
}

/* Can v only be the exact value of a put/cas (no append could build it)? */
static int ch_simple_value(ch_stale *st, const ch_lop *g, uint32_t v, bool *yes)
{
    *yes = true;
    if (!st->k->has_append || v == 0)
        return 0;
    bool other;
    ch_dp d = {.words = &st->words, .bases = &st->bases, .skip_base = v};
    int rc = ch_dp_reach(&d, ch_observed_str(st->k, g), 0, &other);
    *yes = rc == 0 && !other;
    return rc;
}

static void ch_stale_witness(ch_stale *st, uint32_t g, uint32_t v, uint8_t *in)
{
    ch_key *k = st->k;
    uint32_t by = 0;
    memset(in, 0, k->m);
    in[g] = 1;
    if (v == 0 && st->n_w)
        in[st->argmin[0]] = 1; /* what ended the initial state */
    for (size_t i = 0; i < k->m; i++) {
        if (ch_is_producer(&k->ops[i], v) && k->ops[i].call <= k->ops[g].ret) {
            in[i] = 1;
            if (ch_overwritten(st, k->ops[i].ret, &by) != CH_INF)
                in[by] = 1;
        }
    }
}

/* 1 and the witness in `in` (k->m bytes) when some read is stale, 0 if none. */
static int ch_stale_read(ch_key *k, uint8_t *in)
{
    ch_stale st = {.k = k};
    int rc = ch_stale_index(&st), found = 0;
    int64_t best_ret = CH_INF;
    uint32_t best = 0, best_v = 0, v;
    for (size_t i = 0; i < k->m && rc == 0; i++) {
        const ch_lop *g = &k->ops[i];
        bool simple;
        /* G must have completed itself (not been made necessary by a read). */
        if (g->info || g->just || !ch_observes(g, &v) || st.max_t[v] >= g->call ||
            g->ret >= best_ret)
            continue;
        rc = ch_simple_value(&st, g, v, &simple);
        if (rc == 0 && simple)
            best = (uint32_t)i, best_v = v, best_ret = g->ret, found = 1;
    }
    if (rc == 0 && found)
        ch_stale_witness(&st, best, best_v, in);
    free(st.w);
    free(st.sufmin);
    free(st.argmin);
    free(st.max_t);
    free(st.words.t);
    free(st.bases.t);
    return rc < 0 ? rc : found;
}

/* ---- lookahead tables ---- */

#define CH_LOOK_COMPAT_MAX 32u       /* resets listed per get; more: no pruning */
#define CH_LOOK_PRE_MAX (1u << 21)  /* chars of prefix hashes kept per key */

typedef struct ch_look {
    ch_key *k;
    size_t *w_off;     /* writers by value id (put/cas by value, dels at 0), by call */
    uint32_t *w;
    ch_needles words, bases;
    uint32_t *tmp;
    size_t n_tmp, cap, pre_chars;
} ch_look;

static int ch_look_writers(ch_look *lk)
{
    ch_key *k = lk->k;
    size_t nv = k->vals.n + 1;
    lk->w_off = calloc(nv + 1, sizeof *lk->w_off);
    lk->w = malloc((k->m + 1) * sizeof *lk->w);
    if (!lk->w_off || !lk->w)
        return -ENOMEM;
    for (size_t i = 0; i < k->m; i++)
        if (ch_is_producer(&k->ops[i], k->ops[i].f == CH_DEL ? 0 : k->ops[i].arg))
            lk->w_off[(k->ops[i].f == CH_DEL ? 0 : k->ops[i].arg) + 1]++;
    for (size_t v = 0; v < nv; v++)
        lk->w_off[v + 1] += lk->w_off[v];
    size_t *fill = malloc(nv * sizeof *fill);
    if (!fill)
        return -ENOMEM;
    memcpy(fill, lk->w_off, nv * sizeof *fill);
    for (size_t i = 0; i < k->m; i++) /* ops ascend by call, so buckets do too */
        if (ch_is_producer(&k->ops[i], k->ops[i].f == CH_DEL ? 0 : k->ops[i].arg))
            lk->w[fill[k->ops[i].f == CH_DEL ? 0 : k->ops[i].arg]++] = (uint32_t)i;
    free(fill);
    return 0;
}

/* Writers of value id invoked by t, onto tmp; false past the cap. */
static bool ch_look_take(ch_look *lk, uint32_t id, int64_t t)
{
    for (size_t j = lk->w_off[id]; j < lk->w_off[id + 1]; j++) {
        if (lk->k->ops[lk->w[j]].call > t)
            break;
        if (lk->n_tmp == CH_LOOK_COMPAT_MAX)
            return false;
        lk->tmp[lk->n_tmp++] = lk->w[j];
    }
    return true;
}

static int ch_look_prefixes(ch_look *lk, uint32_t v, const char *str)
{
    ch_key *k = lk->k;
    size_t n = strlen(str);
    if (k->pre[v])
        return 1;
    if (lk->pre_chars + n > CH_LOOK_PRE_MAX)
        return 0;
    uint64_t *pre = malloc(2 * (n + 1) * sizeof *pre);
    if (!pre)
        return -ENOMEM;
    pre[0] = pre[1] = 0;
    for (size_t i = 0; i < n; i++) {
        pre[2 * i + 2] = ch_addmod(ch_mulmod(pre[2 * i], CH_B1), (unsigned char)str[i]);
        pre[2 * i + 3] = ch_addmod(ch_mulmod(pre[2 * i + 1], CH_B2), (unsigned char)str[i]);
    }
    k->pre[v] = pre;
    lk->pre_chars += n;
    return 1;
}

/* With appends: resets that could be the base of what get g saw. 1 listed,
 * 0 not prunable, negative error. */
static int ch_look_append_get(ch_look *lk, size_t g)
{
    ch_key *k = lk->k;
    const ch_lop *o = &k->ops[g];
    const char *v = ch_observed_str(k, o);
    uint32_t id = 0;
    ch_observes(o, &id);
    if (!v)
        return ch_look_take(lk, 0, o->ret);
    int rc = ch_look_prefixes(lk, id, v);
    bool yes = false;
    if (rc == 1)
        rc = ch_dp_reach(&(ch_dp){.words = &lk->words}, v, 0, &yes);
    if (rc < 0 || !k->pre[id])
        return rc;
    k->split0[g] = yes;
    if (yes && !ch_look_take(lk, 0, o->ret))
        return 0;
    const uint64_t *pre = k->pre[id];
    size_t n = strlen(v);
    for (size_t l = 0; l < lk->bases.n_lens; l++) {
        uint64_t len = lk->bases.lens[l];
        uint32_t base = len <= n ? ch_needle_id(&lk->bases, len, pre[2 * len]) : 0;
        bool rest = true;
        if (base && len < n && (rc = ch_dp_reach(&(ch_dp){.words = &lk->words}, v, len, &rest)))
            return rc;
        if (base && rest && !ch_look_take(lk, base, o->ret))
            return 0;
    }
    return 1;
}

static int ch_look_get(ch_look *lk, size_t g)
{
    uint32_t id = 0;
    ch_observes(&lk->k->ops[g], &id);
    lk->n_tmp = 0;
    if (lk->k->has_append)
        return ch_look_append_get(lk, g);
    return ch_look_take(lk, id, lk->k->ops[g].ret);
}

static int ch_look_list(ch_look *lk)
{
    ch_key *k = lk->k;
    size_t at = 0;
    for (size_t g = 0; g < k->m; g++) {
        uint32_t id;
        k->compat_off[g] = at;
        if (k->ops[g].info || !ch_observes(&k->ops[g], &id))
            continue;
        int rc = ch_look_get(lk, g);
        if (rc <= 0) {
            if (rc < 0)
                return rc;
            continue;
        }
        if (lk->cap < at + lk->n_tmp) {
            size_t cap = (lk->cap + lk->n_tmp) * 2;
            uint32_t *c = realloc(k->compat, cap * sizeof *c);
            if (!c)
                return -ENOMEM;
            k->compat = c;
            lk->cap = cap;
        }
        if (lk->n_tmp) /* memcpy from NULL is undefined even for 0 bytes */
            memcpy(k->compat + at, lk->tmp, lk->n_tmp * sizeof *lk->tmp);
        at += lk->n_tmp;
        k->prunable[g] = 1;
    }
    k->compat_off[k->m] = at;
    return 0;
}

static int ch_look_build(ch_key *k)
{
    ch_look lk = {.k = k};
    k->pre_n = k->vals.n + 1;
    k->prunable = calloc(k->m + 1, 1);
    k->split0 = calloc(k->m + 1, 1);
    k->compat_off = calloc(k->m + 1, sizeof *k->compat_off);
    k->pre = calloc(k->pre_n, sizeof *k->pre);
    lk.tmp = malloc(CH_LOOK_COMPAT_MAX * sizeof *lk.tmp);
    int rc = k->prunable && k->split0 && k->compat_off && k->pre && lk.tmp ? 0 : -ENOMEM;
    if (rc == 0)
        rc = ch_look_writers(&lk);
    if (rc == 0 && k->has_append)
        rc = ch_needles_build(k, &lk.words, ch_pick_append);
    if (rc == 0 && k->has_append)
        rc = ch_needles_build(k, &lk.bases, ch_pick_base);
    bool dropped = lk.words.lens_dropped || lk.bases.lens_dropped;
    if (rc == 0 && !dropped)
        rc = ch_look_list(&lk);
    free(lk.w_off);
    free(lk.w);
    free(lk.tmp);
    free(lk.words.t);
    free(lk.bases.t);
    return rc;
}

/* ---- building a key ---- */

/* Ops of one key (invoke indices inv[0..n)). -ENOSPC when the values alone
 * exceed the memo cap. */
static int ch_key_build(ch_key *k, const ch_history *h, const size_t *match, const size_t *inv,
                        size_t n, size_t memo_max)
{
    memset(k, 0, sizeof *k);
    k->h = h;
    k->vals.max = memo_max + 2 * n + 16;
    k->ops = malloc((n + 1) * sizeof *k->ops);
    if (!k->ops)
        return -ENOMEM;
    for (size_t j = 0; j < n; j++) {
        int rc = ch_lop_make(k, match, inv[j], &k->ops[k->m]);
        if (rc < 0)
            return rc;
        k->m += (size_t)rc;
    }
    int rc = ch_prune_info(k);
    if (rc < 0)
        return rc;
    qsort(k->ops, k->m, sizeof *k->ops, ch_lop_cmp);
    rc = ch_tighten_info(k);
    if (rc == 0)
        rc = ch_info_classes(k);
    if (rc == 0)
        rc = ch_look_build(k);
    return rc < 0 ? rc : ch_key_zobrist(k);
}

/* ---- shrinking a failing key ---- */

/* Shrinking keeps, with every observer, every op that could have produced
 * what it saw (and was invoked before the observer returned). A superset is
 * fine (it only keeps more ops); missing a producer would make the witness
 * unsound. */

typedef struct ch_shrink {
    ch_key *k;
    ch_budget *b;
    uint8_t *in;        /* op still in the witness */
    size_t n_in;
    uint32_t *mark;     /* epoch stamps: removed in the current try */
    uint32_t epoch;
    uint32_t *work, *sel, *list;
    /* observers of each value (keys without appends) or of each producer (with) */
    size_t *dep_off;
    uint32_t *dep;
    size_t nv;          /* value ids when the index was built (searches add more) */
    bool by_producer;
    /* ops an observer made necessary (see ch_tighten_info): they go with it,
     * so a witness never holds such an op without the reason it is required */
    size_t *just_off;
    uint32_t *just;
} ch_shrink;

static int ch_just_index(ch_shrink *s)
{
    ch_key *k = s->k;
    s->just_off = calloc(k->m + 2, sizeof *s->just_off);
    s->just = malloc((k->m + 1) * sizeof *s->just);
    if (!s->just_off || !s->just)
        return -ENOMEM;
    for (size_t i = 0; i < k->m; i++)
        if (k->ops[i].just)
            s->just_off[k->ops[i].just + 1]++;
    for (size_t g = 0; g < k->m; g++)
        s->just_off[g + 2] += s->just_off[g + 1];
    for (size_t i = 0; i < k->m; i++)
        if (k->ops[i].just)
            s->just[s->just_off[k->ops[i].just]++] = (uint32_t)i;
    return 0;
}

/* Keys without appends: producers are exact, so index observers by value id. */
static int ch_deps_by_value(ch_shrink *s)
{
    ch_key *k = s->k;
    size_t nv = k->vals.n + 1;
    s->dep_off = calloc(nv + 1, sizeof *s->dep_off);
    s->dep = malloc((k->m + 1) * sizeof *s->dep);
    if (!s->dep_off || !s->dep)
        return -ENOMEM;
    uint32_t id;
    for (size_t i = 0; i < k->m; i++)
        if (ch_observes(&k->ops[i], &id))
            s->dep_off[id + 1]++;
    for (size_t v = 0; v < nv; v++)
        s->dep_off[v + 1] += s->dep_off[v];
    size_t *fill = malloc(nv * sizeof *fill);
    if (!fill)
        return -ENOMEM;
    memcpy(fill, s->dep_off, nv * sizeof *fill);
    for (size_t i = 0; i < k->m; i++)
        if (ch_observes(&k->ops[i], &id))
            s->dep[fill[id]++] = (uint32_t)i;
    free(fill);
    return 0;
}

/* Keys with appends. An observed value v = base + append words, where the
 * base is absent (initial, or a del) or a put/cas value that prefixes v. So
 * v's possible producers are: every del if v is null or splits into words;
 * each put/cas value that prefixes v with a splittable rest; each append
 * value found inside v. Dependents are indexed by value id: [0, nv) bases,
 * [nv, 2nv) words, 2nv the dels. */
typedef struct ch_edges {
    uint64_t *e; /* key << 32 | observer */
    size_t n, cap;
} ch_edges;

static int ch_edge_add(ch_edges *es, size_t key, uint32_t obs)
{
    if (es->n == es->cap) {
        if (es->cap >= CH_DEPS_MAX)
            return -E2BIG;
        size_t cap = es->cap ? es->cap * 2 : 1024;
        uint64_t *e = realloc(es->e, cap * sizeof *e);
        if (!e)
            return -ENOMEM;
        es->e = e;
        es->cap = cap;
    }
    es->e[es->n++] = (uint64_t)key << 32 | obs;
    return 0;
}

static int ch_edges_of(const ch_key *k, const ch_needles *words, const ch_needles *bases,
                       uint32_t o, size_t nv, ch_edges *es)
{
    const char *v = ch_observed_str(k, &k->ops[o]);
    bool split0 = true;
    int rc = v ? ch_dp_reach(&(ch_dp){.words = words}, v, 0, &split0) : 0;
    if (rc == 0 && split0)
        rc = ch_edge_add(es, 2 * nv, o);
    size_t n = v ? strlen(v) : 0;
    for (size_t l = 0; v && rc == 0 && l < bases->n_lens; l++) {
        uint64_t len = bases->lens[l];
        ch_sval pre = len <= n ? ch_sval_of_n(v, len) : (ch_sval){0, 0, 0};
        uint32_t id = len <= n ? ch_needle_id(bases, len, pre.h1) : 0;
        bool rest = true;
        if (id && len < n)
            rc = ch_dp_reach(&(ch_dp){.words = words}, v, len, &rest);
        if (rc == 0 && id && rest)
            rc = ch_edge_add(es, id, o);
    }
    for (size_t l = 0; v && rc == 0 && l < words->n_lens; l++) {
        uint64_t len = words->lens[l];
        for (size_t i = 0; rc == 0 && len && i + len <= n; i++) {
            uint32_t id = ch_needle_id(words, len, ch_sval_of_n(v + i, len).h1);
            if (id)
                rc = ch_edge_add(es, nv + id, o);
        }
    }
    return rc;
}

static int ch_edges_csr(ch_shrink *s, ch_edges *es)
{
    size_t keys = 2 * s->nv + 1;
    s->dep_off = calloc(keys + 1, sizeof *s->dep_off);
    s->dep = malloc((es->n + 1) * sizeof *s->dep);
    if (!s->dep_off || !s->dep)
        return -ENOMEM;
    for (size_t i = 0; i < es->n; i++)
        s->dep_off[(es->e[i] >> 32) + 1]++;
    for (size_t key = 0; key < keys; key++)
        s->dep_off[key + 1] += s->dep_off[key];
    size_t *fill = malloc(keys * sizeof *fill);
    if (!fill)
        return -ENOMEM;
    memcpy(fill, s->dep_off, keys * sizeof *fill);
    for (size_t i = 0; i < es->n; i++)
        s->dep[fill[es->e[i] >> 32]++] = (uint32_t)es->e[i];
    free(fill);
    return 0;
}

static int ch_deps_by_producer(ch_shrink *s)
{
    ch_key *k = s->k;
    ch_needles words = {0}, bases = {0};
    ch_edges es = {0};
    s->by_producer = true;
    s->nv = k->vals.n + 1;
    int rc = ch_needles_build(k, &words, ch_pick_append);
    if (rc == 0)
        rc = ch_needles_build(k, &bases, ch_pick_base);
    if (rc == 0 && (words.lens_dropped || bases.lens_dropped))
        rc = -E2BIG; /* too many value lengths to index: no shrinking */
    uint32_t id;
    for (size_t o = 0; o < k->m && rc == 0; o++) {
        if (ch_observes(&k->ops[o], &id))
            rc = ch_edges_of(k, &words, &bases, (uint32_t)o, s->nv, &es);
        if (rc == 0 && o % 1024 == 0 && ch_budget_expired(s->b))
            rc = -ETIME;
    }
    if (rc == 0)
        rc = ch_edges_csr(s, &es);
    free(es.e);
    free(words.t);
    free(bases.t);
    return rc;
}

static void ch_deps_of(const ch_shrink *s, uint32_t p, const uint32_t **list, size_t *n)
{
    const ch_lop *o = &s->k->ops[p];
    size_t nv = s->nv, at;
    if (s->by_producer && o->f != CH_GET) {
        at = o->f == CH_DEL ? 2 * nv : o->f == CH_APPEND ? nv + o->arg : o->arg;
    } else if (s->by_producer) {
        *n = 0;
        return;
    } else if (o->f == CH_PUT || o->f == CH_CAS || o->f == CH_DEL) {
        at = o->f == CH_DEL ? 0 : o->arg;
    } else {
        *n = 0;
        return;
    }
    *list = s->dep + s->dep_off[at];
    *n = s->dep_off[at + 1] - s->dep_off[at];
}

/* Mark ops[0..n) still in the witness. With a producer given, only the
 * observers it could have fed: a producer invoked after an observer returned
 * cannot be what that observer saw. */
static void ch_mark(ch_shrink *s, const uint32_t *ops, size_t n, const ch_lop *producer,
                    size_t *top)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t o = ops[i];
        if (!s->in[o] || s->mark[o] == s->epoch ||
            (producer && producer->call > s->k->ops[o].ret))
            continue;
        s->mark[o] = s->epoch;
        s->work[(*top)++] = o;
    }
}

/* Mark chunk plus everything that observes a value it may have produced
 * (transitively: a cas observes and produces), plus the ops it made
 * necessary. Returns the number marked. */
static size_t ch_closure(ch_shrink *s, const uint32_t *chunk, size_t n)
{
    size_t top = 0, marked = 0;
    s->epoch++;
    ch_mark(s, chunk, n, NULL, &top);
    while (top) {
        uint32_t p = s->work[--top];
        marked++;
        const uint32_t *deps = NULL;
        size_t nd;
        ch_deps_of(s, p, &deps, &nd);
        ch_mark(s, deps, nd, &s->k->ops[p], &top);
        ch_mark(s, s->just + s->just_off[p], s->just_off[p + 1] - s->just_off[p], NULL, &top);
    }
    return marked;
}

/* Remove chunk (and its closure) if what is left still fails. */
static bool ch_try_remove(ch_shrink *s, const uint32_t *chunk, size_t n)
{
    size_t marked = ch_closure(s, chunk, n);
    if (marked == 0 || marked >= s->n_in)
        return false;
    size_t m = 0;
    for (size_t i = 0; i < s->k->m; i++)
        if (s->in[i] && s->mark[i] != s->epoch)
            s->sel[m++] = (uint32_t)i;
    ch_search r;
    ch_wgl(s->k, s->sel, m, s->b, &r);
    if (r.verdict != CH_LIN_FAIL)
        return false;
    for (size_t i = 0; i < s->k->m; i++)
        if (s->mark[i] == s->epoch)
            s->in[i] = 0;
    s->n_in = m;
    return true;
}

/* Delta debugging: chunks of decreasing size, down to single ops. Returns true
 * when it ran to the end (no single op can be removed). */
static bool ch_ddmin(ch_shrink *s)
{
    size_t gran = s->n_in / 2 ? s->n_in / 2 : 1;
    while (!ch_budget_expired(s->b)) {
        size_t n = 0;
        for (size_t i = 0; i < s->k->m; i++)
            if (s->in[i])
                s->list[n++] = (uint32_t)i;
        bool progress = false;
        for (size_t at = 0; at < n && !ch_budget_expired(s->b); at += gran) {
            size_t len = n - at < gran ? n - at : gran;
            progress |= ch_try_remove(s, s->list + at, len);
        }
        if (ch_budget_expired(s->b))
            return false;
        if (!progress && gran == 1)
            return true;
        if (!progress)
            gran /= 2;
        else if (gran > s->n_in / 2)
            gran = s->n_in / 2 ? s->n_in / 2 : 1;
    }
    return false;
}

static int ch_shrink_init(ch_shrink *s, ch_key *k, ch_budget *b)
{
    memset(s, 0, sizeof *s);
    s->k = k;
    s->b = b;
    size_t m = k->m + 1;
    s->in = malloc(m);
    s->mark = calloc(m, sizeof *s->mark);
    s->work = malloc(m * sizeof *s->work);
    s->sel = malloc(m * sizeof *s->sel);
    s->list = malloc(m * sizeof *s->list);
    if (!s->in || !s->mark || !s->work || !s->sel || !s->list)
        return -ENOMEM;
    memset(s->in, 1, k->m);
    s->n_in = k->m;
    int rc = ch_just_index(s);
    if (rc == 0)
        rc = k->has_append ? ch_deps_by_producer(s) : ch_deps_by_value(s);
    return rc;
}

static void ch_shrink_free(ch_shrink *s)
{
    free(s->in);
    free(s->mark);
    free(s->work);
    free(s->sel);
    free(s->list);
    free(s->dep_off);
    free(s->dep);
    free(s->just_off);
    free(s->just);
}

static int ch_size_cmp(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

/* The witness as ascending indices into h->ops. */
static int ch_fill_witness(const ch_key *k, const uint8_t *in, ch_lin_result *out)
{
    out->fail_ops = malloc((2 * k->m + 1) * sizeof *out->fail_ops);
    if (!out->fail_ops)
        return -ENOMEM;
    for (size_t i = 0; i < k->m; i++) {
        if (in && !in[i])
            continue;
        out->fail_ops[out->n_fail_ops++] = k->ops[i].inv;
        out->fail_n_operations++;
        if (k->ops[i].comp != CH_NONE)
            out->fail_ops[out->n_fail_ops++] = k->ops[i].comp;
    }
    qsort(out->fail_ops, out->n_fail_ops, sizeof *out->fail_ops, ch_size_cmp);
    return 0;
}

/* Shrink the failing key: first cut everything invoked after the point the
 * search could never get past, then delta-debug. */
/* Start from a known witness: it must fail (it does, by the fast path's
 * argument; if the search disagrees, start from the whole key instead). */
static void ch_shrink_start(ch_shrink *s, const uint8_t *start)
{
    size_t n = 0;
    for (size_t i = 0; i < s->k->m; i++)
        if (!start[i])
            s->list[n++] = (uint32_t)i;
    s->epoch++;
    for (size_t i = 0; i < n; i++)
        s->mark[s->list[i]] = s->epoch;
    size_t m = 0;
    for (size_t i = 0; i < s->k->m; i++)
        if (start[i])
            s->sel[m++] = (uint32_t)i;
    ch_search r;
    ch_wgl(s->k, s->sel, m, s->b, &r);
    if (r.verdict == CH_LIN_FAIL) {
        memcpy(s->in, start, s->k->m);
        s->n_in = m;
    }
}

static int ch_shrink_key(ch_key *k, ch_budget *b, int64_t t_stuck, const uint8_t *start,
                         ch_lin_result *out)
{
    ch_shrink s;
    int rc = ch_shrink_init(&s, k, b);
    if (rc == 0 && start) {
        ch_shrink_start(&s, start);
    } else if (rc == 0) {
        size_t n = 0;
        for (size_t i = 0; i < k->m; i++)
            if (k->ops[i].call > t_stuck)
                s.list[n++] = (uint32_t)i;
        if (n)
            ch_try_remove(&s, s.list, n);
    }
    if (rc == 0)
        out->fail_minimal = ch_ddmin(&s);
    /* Out of time or room while preparing: report the start. */
    if (rc == -ETIME || rc == -E2BIG) {
        rc = 0;
        if (start)
            memcpy(s.in, start, k->m);
        else
            memset(s.in, 1, k->m);
    }
    if (rc == 0)
        rc = ch_fill_witness(k, s.in, out);
    ch_shrink_free(&s);
    return rc;
}

/* ---- keys ---- */

typedef struct ch_keymap {
    const char **name; /* borrowed from the history */
    uint32_t *slot;    /* key id + 1; 0 = empty */
    size_t cap, n, name_cap;
} ch_keymap;

static uint64_t ch_str_hash(const char *s)
{
    uint64_t x = 0xcbf29ce484222325ULL;
    for (; *s; s++)
        x = (x ^ (unsigned char)*s) * 0x100000001b3ULL;
    return x ^ (x >> 32);
}

static int ch_keymap_grow(ch_keymap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    uint32_t *slot = calloc(cap, sizeof *slot);
    const char **name = realloc(m->name, cap / 2 * sizeof *name);
    if (!slot || !name) {
        free(slot);
        if (name)
            m->name = name;
        return -ENOMEM;
    }
    m->name = name;
    for (size_t id = 0; id < m->n; id++) {
        size_t i = (size_t)ch_str_hash(name[id]) & (cap - 1);
        while (slot[i])
            i = (i + 1) & (cap - 1);
        slot[i] = (uint32_t)(id + 1);
    }
    free(m->slot);
    m->slot = slot;
    m->cap = cap;
    return 0;
}

/* The key's id, assigned in order of first appearance; -ENOMEM. */
static int64_t ch_keymap_id(ch_keymap *m, const char *key)
{
    if ((m->n + 1) * 2 > m->cap && ch_keymap_grow(m) < 0)
        return -ENOMEM;
    size_t i = (size_t)ch_str_hash(key) & (m->cap - 1);
    for (; m->slot[i]; i = (i + 1) & (m->cap - 1))
        if (strcmp(m->name[m->slot[i] - 1], key) == 0)
            return m->slot[i] - 1;
    m->name[m->n] = key;
    m->slot[i] = (uint32_t)(m->n + 1);
    return (int64_t)m->n++;
}

/* Invokes grouped by key (CSR: key j's invokes are inv[off[j]..off[j+1])). */
typedef struct ch_groups {
    ch_keymap map;
    size_t *off, *inv;
} ch_groups;

static void ch_groups_free(ch_groups *g)
{
    free(g->map.name);
    free(g->map.slot);
    free(g->off);
    free(g->inv);
}

static int ch_group(const ch_history *h, ch_groups *g)
{
    uint32_t *kid = malloc((h->n + 1) * sizeof *kid);
    g->inv = malloc((h->n + 1) * sizeof *g->inv);
    int rc = kid && g->inv ? 0 : -ENOMEM;
    for (size_t i = 0; rc == 0 && i < h->n; i++) {
        if (h->ops[i].type != CH_INVOKE)
            continue;
        int64_t id = ch_keymap_id(&g->map, h->ops[i].key);
        rc = id < 0 ? (int)id : 0;
        kid[i] = (uint32_t)id;
    }
    if (rc == 0 && !(g->off = calloc(g->map.n + 2, sizeof *g->off)))
        rc = -ENOMEM;
    for (size_t i = 0; rc == 0 && i < h->n; i++)
        if (h->ops[i].type == CH_INVOKE)
            g->off[kid[i] + 2]++;
    for (size_t j = 0; rc == 0 && j < g->map.n; j++)
        g->off[j + 2] += g->off[j + 1];
    for (size_t i = 0; rc == 0 && i < h->n; i++)
        if (h->ops[i].type == CH_INVOKE)
            g->inv[g->off[kid[i] + 1]++] = i;
    free(kid);
    return rc;
}

/* ---- the check ---- */

typedef struct ch_run {
    const ch_history *h;
    const size_t *match;
    ch_groups g;
    ch_budget b;
    ch_lin_result *out;
    int64_t fail_key;      /* the failing key, -1 none */
    const char *unknown_why;
    int64_t unknown_key;
    size_t checked;
} ch_run;

static void ch_wgl_all(ch_key *k, ch_budget *b, ch_search *s)
{
    uint32_t *sel = malloc((k->m + 1) * sizeof *sel);
    if (!sel) {
        memset(s, 0, sizeof *s);
        ch_set_unknown(s, -ENOMEM);
        return;
    }
    for (size_t i = 0; i < k->m; i++)
        sel[i] = (uint32_t)i;
    ch_wgl(k, sel, k->m, b, s);
    free(sel);
}

/* FAIL: name the key and find a small witness. */
static int ch_report_fail(ch_run *r, size_t j, ch_key *k, const ch_search *s,
                          const uint8_t *start)
{
    r->fail_key = (int64_t)j;
    if (!(r->out->fail_key = strdup(r->out->keys[j].key)))
        return -ENOMEM;
    if (r->out->opts_no_shrink)
        return ch_fill_witness(k, start, r->out);
    return ch_shrink_key(k, &r->b, s->t_stuck, start, r->out);
}

static int ch_check_key(ch_run *r, size_t j)
{
    ch_lin_key_stats *st = &r->out->keys[j];
    double t0 = ch_now_s();
    ch_key k;
    ch_search s = {.verdict = CH_LIN_UNKNOWN, .why = "memo table cap"};
    uint8_t *stale = NULL;
    int rc = ch_key_build(&k, r->h, r->match, r->g.inv + r->g.off[j], st->ops, r->b.memo_max);
    if (rc == 0 && !(stale = malloc(k.m + 1)))
        rc = -ENOMEM;
    int found = rc == 0 && !r->out->opts_no_fast_path ? ch_stale_read(&k, stale) : 0;
    rc = found < 0 ? found : rc;
    if (rc == 0 && found)
        s.verdict = CH_LIN_FAIL;
    else if (rc == 0)
        ch_wgl_all(&k, &r->b, &s);
    else if (rc == -ENOSPC)
        rc = 0; /* more distinct values than the memo may hold */
    st->checked = true;
    st->ops_checked = k.m;
    st->verdict = s.verdict;
    st->steps = s.steps;
    st->memo_entries = s.memo;
    r->checked++;
    if (rc == 0 && s.verdict == CH_LIN_FAIL)
        rc = ch_report_fail(r, j, &k, &s, found ? stale : NULL);
    if (s.verdict == CH_LIN_UNKNOWN && !r->unknown_why) {
        r->unknown_why = s.why;
        r->unknown_key = (int64_t)j;
    }
    free(stale);
    ch_key_free(&k);
    st->elapsed_s = ch_now_s() - t0;
    return rc;
}

static int ch_keys_init(ch_run *r)
{
    size_t n = r->g.map.n;
    r->out->keys = calloc(n + 1, sizeof *r->out->keys);
    if (!r->out->keys)
        return -ENOMEM;
    r->out->n_keys = n;
    for (size_t j = 0; j < n; j++) {
        ch_lin_key_stats *st = &r->out->keys[j];
        st->verdict = CH_LIN_UNKNOWN;
        st->ops = r->g.off[j + 1] - r->g.off[j];
        if (!(st->key = strdup(r->g.map.name[j])))
            return -ENOMEM;
    }
    return 0;
}

typedef struct ch_key_order {
    size_t ops, id;
} ch_key_order;

static int ch_key_order_cmp(const void *a, const void *b)
{
    const ch_key_order *x = a, *y = b;
    if (x->ops != y->ops)
        return x->ops < y->ops ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Small keys first: a failure in a small key is found (and shrunk) before a
 * huge key eats the budget. Stop at the first failure: the verdict is final. */
static int ch_check_keys(ch_run *r)
{
    size_t n = r->out->n_keys;
    ch_key_order *order = malloc((n + 1) * sizeof *order);
    if (!order)
        return -ENOMEM;
    for (size_t j = 0; j < n; j++)
        order[j] = (ch_key_order){.ops = r->out->keys[j].ops, .id = j};
    qsort(order, n, sizeof *order, ch_key_order_cmp);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0 && r->fail_key < 0; i++) {
        if (ch_budget_expired(&r->b)) {
            if (!r->unknown_why) {
                r->unknown_why = "time budget";
                r->unknown_key = (int64_t)order[i].id;
            }
            break;
        }
        rc = ch_check_key(r, order[i].id);
    }
    free(order);
    return rc;
}

static void ch_set_verdict(ch_run *r)
{
    ch_lin_result *out = r->out;
    if (r->fail_key >= 0) {
        const ch_lin_key_stats *st = &out->keys[r->fail_key];
        out->verdict = CH_LIN_FAIL;
        snprintf(out->reason, sizeof out->reason,
                 "key \"%.64s\": %zu of its %zu operations cannot be linearized (%s)", st->key,
                 out->fail_n_operations, st->ops_checked,
                 out->fail_minimal ? "no single one can be left out" : "not fully shrunk");
    } else if (r->unknown_why || r->checked < out->n_keys) {
        out->verdict = CH_LIN_UNKNOWN;
        const char *key = r->unknown_key >= 0 ? out->keys[r->unknown_key].key : "?";
        snprintf(out->reason, sizeof out->reason, "%s exhausted on key \"%.64s\"; %zu of %zu "
                 "keys checked", r->unknown_why ? r->unknown_why : "time budget", key,
                 r->checked, out->n_keys);
    } else {
        out->verdict = CH_LIN_OK;
        snprintf(out->reason, sizeof out->reason, "linearizable: %zu keys, %zu operations",
                 out->n_keys, r->g.map.n ? r->g.off[r->g.map.n] : (size_t)0);
    }
}

int ch_lin_check_opts(const ch_history *h, const ch_lin_opts *o, ch_lin_result *out)
{
    memset(out, 0, sizeof *out);
    out->verdict = CH_LIN_UNKNOWN;
    out->opts_no_shrink = o->no_shrink;
    out->opts_no_fast_path = o->no_fast_path;
    double t0 = ch_now_s();
    ch_run r = {.h = h, .out = out, .fail_key = -1, .unknown_key = -1};
    ch_budget_init(&r.b, o);
    size_t *match = malloc((h->n + 1) * sizeof *match);
    ch_error err;
    int rc = match ? ch_history_pair(h, NULL, match, &err) : -ENOMEM;
    if (rc == -EINVAL)
        snprintf(out->reason, sizeof out->reason, "%s", err.msg);
    r.match = match;
    if (rc == 0)
        rc = ch_group(h, &r.g);
    if (rc == 0)
        rc = ch_keys_init(&r);
    if (rc == 0)
        rc = ch_check_keys(&r);
    if (rc == 0)
        ch_set_verdict(&r);
    if (rc == -ENOMEM)
        snprintf(out->reason, sizeof out->reason, "out of memory");
    if (rc < 0)
        out->verdict = CH_LIN_UNKNOWN;
    out->steps = r.b.steps;
    out->elapsed_s = ch_now_s() - t0;
    ch_groups_free(&r.g);
    free(match);
    return rc;
}

int ch_lin_check(const ch_history *h, double time_limit_s, ch_lin_result *out)
{
    ch_lin_opts o = {.time_limit_s = time_limit_s};
    return ch_lin_check_opts(h, &o, out);
}

void ch_lin_result_free(ch_lin_result *r)
{
    for (size_t j = 0; r->keys && j < r->n_keys; j++)
        free(r->keys[j].key);
    free(r->keys);
    free(r->fail_key);
    free(r->fail_ops);
    memset(r, 0, sizeof *r);
}

/* ---- exhaustive reference ---- */

typedef struct ch_ex {
    const ch_history *h;
    const ch_op *inv[CH_LIN_EXHAUSTIVE_MAX], *comp[CH_LIN_EXHAUSTIVE_MAX];
    int64_t call[CH_LIN_EXHAUSTIVE_MAX], ret[CH_LIN_EXHAUSTIVE_MAX];
    char *state[CH_LIN_EXHAUSTIVE_MAX]; /* per op's key slot; owned copies */
    int key[CH_LIN_EXHAUSTIVE_MAX];     /* op -> key slot */
    int n;
    bool oom;
} ch_ex;

static bool ch_ex_eq(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* Apply op i to its key; false if not allowed. *old gets the previous state. */
static bool ch_ex_apply(ch_ex *e, int i, char **old)
{
    const ch_op *o = e->inv[i];
    char **st = &e->state[e->key[i]];
    const char *next;
    char *made = NULL;
    switch (o->f) {
    case CH_GET:
        return ch_ex_eq(*st, e->comp[i] ? e->comp[i]->value : NULL) && (*old = *st, true);
    case CH_CAS:
        if (!ch_ex_eq(*st, o->cas_expected))
            return false;
        next = o->value;
        break;
    case CH_PUT:
        next = o->value;
        break;
    case CH_DEL:
        next = NULL;
        break;
    case CH_APPEND:
        made = malloc((*st ? strlen(*st) : 0) + strlen(o->value) + 1);
        if (!made)
            return e->oom = true, false;
        strcpy(made, *st ? *st : "");
        strcat(made, o->value);
        next = made;
        break;
    default:
        return false;
    }
    if (next && !made && !(made = strdup(next)))
        return e->oom = true, false;
    *old = *st;
    *st = made;
    return true;
}

static void ch_ex_undo(ch_ex *e, int i, char *old)
{
    if (e->inv[i]->f != CH_GET)
        free(e->state[e->key[i]]);
    e->state[e->key[i]] = old;
}

static bool ch_ex_dfs(ch_ex *e, unsigned done)
{
    bool all = true;
    for (int i = 0; i < e->n; i++)
        all &= (done >> i & 1) || e->ret[i] == CH_INF;
    if (all)
        return true;
    for (int i = 0; i < e->n && !e->oom; i++) {
        bool minimal = !(done >> i & 1);
        for (int j = 0; j < e->n && minimal; j++)
            minimal = (done >> j & 1) || j == i || e->ret[j] >= e->call[i];
        char *old;
        if (!minimal || !ch_ex_apply(e, i, &old))
            continue;
        bool ok = ch_ex_dfs(e, done | 1u << i);
        ch_ex_undo(e, i, old);
        if (ok)
            return true;
    }
    return false;
}

static int ch_ex_load(ch_ex *e, const size_t *match)
{
    const ch_history *h = e->h;
    for (size_t i = 0; i < h->n; i++) {
        const ch_op *o = &h->ops[i];
        size_t c = match[i];
        ch_type t = c == CH_NONE ? CH_INFO : h->ops[c].type;
        if (o->type != CH_INVOKE || t == CH_FAIL || (t == CH_INFO && o->f == CH_GET))
            continue;
        if (e->n == CH_LIN_EXHAUSTIVE_MAX)
            return -E2BIG;
        int n = e->n++;
        e->inv[n] = o;
        e->comp[n] = c == CH_NONE ? NULL : &h->ops[c];
        e->call[n] = o->time_us;
        e->ret[n] = t == CH_INFO ? CH_INF : h->ops[c].time_us;
        e->key[n] = n;
        for (int j = 0; j < n; j++)
            if (strcmp(e->inv[j]->key, o->key) == 0)
                e->key[n] = e->key[j];
    }
    return 0;
}

int ch_lin_check_exhaustive(const ch_history *h, ch_lin_verdict *out)
{
    *out = CH_LIN_UNKNOWN;
    ch_ex e = {.h = h};
    size_t *match = malloc((h->n + 1) * sizeof *match);
    if (!match)
        return -ENOMEM;
    ch_error err;
    int rc = ch_history_pair(h, NULL, match, &err);
    if (rc == 0)
        rc = ch_ex_load(&e, match);
    free(match);
    if (rc < 0)
        return rc;
    bool ok = ch_ex_dfs(&e, 0);
    if (e.oom)
        return -ENOMEM;
    *out = ok ? CH_LIN_OK : CH_LIN_FAIL;
    return 0;
}
