/* fuzz_chan.c — libFuzzer target: the stack's end of a channel over a shared
 * region whose content an application controls entirely.
 *
 * The input is a script run against one region: stack-side steps (read a
 * request, post an event, take back buffers, check for work), a well-behaved
 * app end driving the same region (so the rings reach real states), and
 * hostile writes of arbitrary bytes anywhere in the region's control part
 * (header, ring indices, descriptors, return rings, links: everything but
 * buffer contents, which are opaque data), as a malicious or crashed app
 * running concurrently could do. Beyond "never crash, never read or write outside the region": every
 * request handed out is well formed, and the stack's own buffer accounting
 * (free + lent == its half) holds after every step — until it reports
 * -EPROTO, at which point rift-stackd would detach the app.
 *
 *   clang -g -fsanitize=fuzzer,address,undefined -I. stack/st_chan.c \
 *       tests/fuzz/fuzz_chan.c -o /tmp/fuzz_chan */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "stack/rift_stack.h"
#include "stack/st_chan.h"

#define BUF_SIZE 64u
#define BUFS 16u
#define SLOTS 8u
#define MAX_MSG 1024u
#define STEPS_MAX 512

static void check_accounting(const st_chan_stack_end *e)
{
    uint32_t lent = 0;
    for (uint32_t i = 0; i < e->lay.stack_bufs; i++)
        lent += e->lent[i];
    if (e->n_free + lent != e->lay.stack_bufs)
        __builtin_trap();
    for (uint32_t i = 0; i < e->n_free; i++) {
        uint32_t b = e->free_list[i];
        if (b < e->lay.app_bufs || b - e->lay.app_bufs >= e->lay.stack_bufs || e->lent[b - e->lay.app_bufs])
            __builtin_trap();
    }
}

static void check_req(const st_chan_stack_end *e, const st_chan_req *r)
{
    volatile uint8_t sink = 0;
    switch (r->type) {
    case ST_CHAN_REQ_CONNECT:
        if (r->handle == 0 || r->handle > ST_CHAN_HANDLE_LIB_MAX)
            __builtin_trap();
        break;
    case ST_CHAN_REQ_CLOSE:
    case ST_CHAN_REQ_ABORT:
        if (r->handle == 0)
            __builtin_trap();
        break;
    case ST_CHAN_REQ_SEND:
        if (r->handle == 0 || r->len > e->max_msg || !r->data)
            __builtin_trap();
        for (size_t i = 0; i < r->len; i++) /* ASan: every byte inside an allocation */
            sink ^= r->data[i];
        break;
    default:
        __builtin_trap();
    }
    (void)sink;
}

/* Script bytes, one step each (op % 8):
 *   0 stack: next request (+ checks + done)   1 stack: post an event
 *   2 stack: take back buffers                 3 stack: any work?
 *   4 app (legitimate): post a request         5 app: read an event
 *   6 hostile: write a word anywhere in the control part
 *   7 hostile: write a small value (a plausible index) at a word */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    st_chan_layout lay;
    if (st_chan_layout_make(BUF_SIZE, BUFS, BUFS, SLOTS, &lay) < 0)
        __builtin_trap();
    uint8_t *region = aligned_alloc(4096, lay.size);
    if (!region)
        return 0;
    memset(region, 0, lay.size);
    st_chan_stack_end e;
    st_chan_app_end a;
    if (st_chan_stack_init(&e, region, &lay, MAX_MSG) < 0 || st_chan_app_init(&a, region, lay.size) < 0)
        __builtin_trap();
    size_t ctl = lay.off_link + (size_t)(BUFS + BUFS) * sizeof(uint32_t);
    const uint8_t *p = data, *end = data + size;
    static uint8_t payload[MAX_MSG];
    bool app_ok = true;
    int rc = 0;
    for (int step = 0; step < STEPS_MAX && p < end && rc >= 0; step++) {
        uint8_t op = *p++;
        switch (op % 8) {
        case 0: {
            st_chan_req r;
            rc = st_chan_stack_next_req(&e, &r);
            if (rc == 1) {
                check_req(&e, &r);
                rc = st_chan_stack_req_done(&e);
            }
            break;
        }
        case 1: {
            st_chan_desc d = {.type = RS_EV_MSG, .handle = 1, .len = (uint32_t)(op >> 3) * 41u};
            rc = st_chan_stack_put_event(&e, &d, payload); /* len up to 1271: some above MAX_MSG */
            if (rc == -EAGAIN || rc == -EMSGSIZE)
                rc = 0;
            break;
        }
        case 2:
            rc = st_chan_stack_reclaim(&e);
            break;
        case 3:
            rc = st_chan_stack_pending(&e);
            break;
        case 4:
            if (app_ok && end - p >= 2) {
                static const uint8_t types[4] = {ST_CHAN_REQ_SEND, ST_CHAN_REQ_CONNECT, ST_CHAN_REQ_CLOSE,
                                                 ST_CHAN_REQ_ABORT};
                uint8_t t = types[p[0] & 3];
                st_chan_desc d = {.type = t, .handle = (uint32_t)p[1] + 1, .buf = ST_CHAN_NOBUF,
                                  .len = t == ST_CHAN_REQ_SEND ? (uint32_t)(p[0] >> 2) * 17u : 0};
                p += 2;
                app_ok = st_chan_app_put_req(&a, &d, payload) != -EPROTO;
            }
            break;
        case 5:
            if (app_ok) {
                st_chan_desc d;
                const uint8_t *msg;
                app_ok = st_chan_app_next_event(&a, &d, &msg) >= 0;
            }
            break;
        case 6:
        case 7:
            if (end - p >= 2) {
                size_t off = ((size_t)p[0] | (size_t)p[1] << 8) % (ctl / 4) * 4;
                p += 2;
                uint32_t v = 0;
                if (op % 8 == 7 && p < end)
                    v = *p++ % (2 * BUFS + 2);
                else if (end - p >= 4) {
                    memcpy(&v, p, 4);
                    p += 4;
                }
                memcpy(region + off, &v, 4);
            }
            break;
        }
        check_accounting(&e);
    }
    st_chan_app_fini(&a);
    st_chan_stack_fini(&e);
    free(region);
    return 0;
}
