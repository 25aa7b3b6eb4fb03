/* fuzz_history.c — libFuzzer target for the history parser and the checker.
 *
 * Build:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. chaos/ch_history.c \
 *     chaos/ch_lin.c tests/fuzz/fuzz_history.c $(pkg-config --cflags --libs jansson)
 *
 * Two modes, picked by the first byte:
 *   text   (even): the rest is JSON lines. Each goes through
 *          ch_history_parse_line; an accepted op must survive format -> parse
 *          unchanged; a rejected one must name "fuzz:<line>:". Accepted ops
 *          that pair up are checked with a tiny budget.
 *   binary (odd):  the rest encodes up to CH_LIN_EXHAUSTIVE_MAX operations
 *          (5 bytes each) as a well-formed history with random overlaps; the
 *          WGL checker must agree with the exhaustive reference, and a FAIL
 *          witness must itself fail. */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chaos/ch_history.h"
#include "chaos/ch_lin.h"

#define FUZZ_LINES_MAX 64

static bool str_eq(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static bool op_eq(const ch_op *a, const ch_op *b)
{
    return a->process == b->process && a->type == b->type && a->f == b->f &&
           str_eq(a->key, b->key) && str_eq(a->value, b->value) &&
           str_eq(a->cas_expected, b->cas_expected) &&
           a->has_cas_expected == b->has_cas_expected && a->time_us == b->time_us;
}

/* Oracle: what we write, we read back identically. */
static void round_trip(const ch_op *op)
{
    int n = ch_op_format(op, NULL, 0);
    assert(n > 0);
    char *buf = malloc((size_t)n + 1);
    assert(buf);
    assert(ch_op_format(op, buf, (size_t)n + 1) == n);
    ch_op back;
    ch_error err;
    int rc = ch_history_parse_line(buf, (size_t)n, "rt", 1, &back, &err);
    if (rc != 0)
        fprintf(stderr, "round trip of %s: %s\n", buf, err.msg);
    assert(rc == 0);
    assert(op_eq(op, &back));
    ch_op_clear(&back);
    free(buf);
}

static void text_mode(const uint8_t *data, size_t size)
{
    ch_history *h = ch_history_new();
    assert(h);
    size_t at = 0;
    for (uint32_t line = 1; at < size && line <= FUZZ_LINES_MAX; line++) {
        const uint8_t *nl = memchr(data + at, '\n', size - at);
        size_t len = nl ? (size_t)(nl - (data + at)) : size - at;
        ch_op op;
        ch_error err = {{0}};
        int rc = ch_history_parse_line((const char *)data + at, len, "fuzz", line, &op, &err);
        if (rc == 0) {
            round_trip(&op);
            assert(ch_history_append(h, &op) == 0);
            ch_op_clear(&op);
        } else {
            char prefix[32];
            snprintf(prefix, sizeof prefix, "fuzz:%u: ", line);
            assert(rc == -EINVAL);
            assert(strncmp(err.msg, prefix, strlen(prefix)) == 0);
        }
        at += len + 1;
    }
    ch_error err;
    if (ch_history_pair(h, "fuzz", NULL, &err) == 0) {
        ch_lin_result r;
        assert(ch_lin_check(h, 0.01, &r) == 0);
        ch_lin_result_free(&r);
    }
    ch_history_free(h);
}

/* ---- binary mode: a small well-formed history ---- */

static const char *const vals[] = {"a", "b", "ab", ""};
static const char *const outs[] = {NULL, "a", "b", "ab"};

typedef struct fz_op {
    ch_op inv, comp;
    bool has_comp;
} fz_op;

static void fz_decode(const uint8_t *b, fz_op *o, int64_t *clock, bool *open)
{
    uint32_t p = b[0] % 3;
    memset(o, 0, sizeof *o);
    o->inv = (ch_op){.process = p, .type = CH_INVOKE, .f = (ch_f)((b[0] >> 2) % 5),
                     .key = (b[1] & 1) ? "y" : "x"};
    const char *v = vals[(b[1] >> 1) & 3];
    if (o->inv.f == CH_PUT || o->inv.f == CH_APPEND || o->inv.f == CH_CAS)
        o->inv.value = (char *)v;
    if (o->inv.f == CH_CAS) {
        o->inv.cas_expected = (char *)outs[(b[1] >> 3) & 3];
        o->inv.has_cas_expected = true;
    }
    clock[p] += b[3] & 15;
    o->inv.time_us = clock[p];
    clock[p] += b[4] & 15;
    int kind = (b[2] >> 2) & 7; /* 0-4 ok, 5 info, 6 fail (cas), 7 left open */
    if (kind == 7) {
        open[p] = true;
        return;
    }
    o->has_comp = true;
    o->comp = o->inv;
    o->comp.time_us = clock[p];
    o->comp.type = kind == 5 ? CH_INFO : (kind == 6 && o->inv.f == CH_CAS) ? CH_FAIL : CH_OK;
    if (o->inv.f == CH_GET)
        o->comp.value = o->comp.type == CH_OK ? (char *)outs[b[2] & 3] : NULL;
}

typedef struct fz_ev {
    const ch_op *op;
    int64_t t;
    int seq;
} fz_ev;

static int fz_ev_cmp(const void *a, const void *b)
{
    const fz_ev *x = a, *y = b;
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    return x->seq - y->seq;
}

static ch_history *fz_history(const uint8_t *data, size_t size)
{
    fz_op ops[CH_LIN_EXHAUSTIVE_MAX];
    fz_ev ev[2 * CH_LIN_EXHAUSTIVE_MAX];
    int64_t clock[3] = {0, 0, 0};
    bool open[3] = {false, false, false};
    int n = 0, nev = 0;
    for (size_t at = 0; at + 5 <= size && n < CH_LIN_EXHAUSTIVE_MAX; at += 5) {
        if (open[data[at] % 3])
            continue; /* a process with an open invoke is done */
        fz_decode(data + at, &ops[n], clock, open);
        ev[nev] = (fz_ev){&ops[n].inv, ops[n].inv.time_us, nev};
        nev++;
        if (ops[n].has_comp) {
            ev[nev] = (fz_ev){&ops[n].comp, ops[n].comp.time_us, nev};
            nev++;
        }
        n++;
    }
    qsort(ev, (size_t)nev, sizeof *ev, fz_ev_cmp);
    ch_history *h = ch_history_new();
    assert(h);
    for (int i = 0; i < nev; i++)
        assert(ch_history_append(h, ev[i].op) == 0);
    return h;
}

/* The witness as a history of its own. */
static ch_history *fz_witness(const ch_history *h, const ch_lin_result *r)
{
    ch_history *w = ch_history_new();
    assert(w);
    for (size_t i = 0; i < r->n_fail_ops; i++) {
        assert(r->fail_ops[i] < h->n);
        assert(i == 0 || r->fail_ops[i - 1] < r->fail_ops[i]);
        assert(strcmp(h->ops[r->fail_ops[i]].key, r->fail_key) == 0);
        assert(ch_history_append(w, &h->ops[r->fail_ops[i]]) == 0);
    }
    return w;
}

static void binary_mode(const uint8_t *data, size_t size)
{
    ch_history *h = fz_history(data, size);
    ch_error err;
    assert(ch_history_pair(h, "fuzz", NULL, &err) == 0);
    ch_lin_verdict want;
    assert(ch_lin_check_exhaustive(h, &want) == 0);
    ch_lin_result r;
    assert(ch_lin_check(h, 5.0, &r) == 0);
    if (r.verdict != want) {
        fprintf(stderr, "wgl says %s, exhaustive says %s\n", ch_lin_verdict_name(r.verdict),
                ch_lin_verdict_name(want));
        for (size_t i = 0; i < h->n; i++) {
            char line[256];
            ch_op_format(&h->ops[i], line, sizeof line);
            fprintf(stderr, "  %s\n", line);
        }
    }
    assert(r.verdict == want);
    if (r.verdict == CH_LIN_FAIL) {
        assert(r.n_fail_ops > 0 && r.fail_minimal);
        ch_history *w = fz_witness(h, &r);
        ch_lin_verdict wv;
        assert(ch_lin_check_exhaustive(w, &wv) == 0);
        assert(wv == CH_LIN_FAIL);
        ch_history_free(w);
    }
    ch_lin_result_free(&r);
    ch_history_free(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (data[0] & 1)
        binary_mode(data + 1, size - 1);
    else
        text_mode(data + 1, size - 1);
    return 0;
}
