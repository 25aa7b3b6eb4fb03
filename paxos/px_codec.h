/* px_codec.h — the varint writer and reader shared by px_msg.c and px_kv.c.
 * Internal to paxos/: both codecs follow the same rules, so they share one copy. */
#ifndef PX_CODEC_H
#define PX_CODEC_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define PX_VARINT_MAX 10u

/* Writer: with buf == NULL it only counts. */
typedef struct px_wr {
    uint8_t *buf;
    size_t len, cap;
} px_wr;

static inline void wr_raw(px_wr *w, const void *p, size_t n)
{
    if (w->buf && n) {
        assert(w->len + n <= w->cap);
        memcpy(w->buf + w->len, p, n);
    }
    w->len += n;
}

static inline void wr_var(px_wr *w, uint64_t v)
{
    uint8_t tmp[PX_VARINT_MAX];
    size_t n = 0;
    do {
        tmp[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    wr_raw(w, tmp, n);
}

/* Reader: errors are sticky, so a parse reads straight through and checks once. */
typedef struct px_rd {
    const uint8_t *p, *end;
    bool bad;
} px_rd;

/* LEB128, at most 10 bytes, no bits beyond 64, minimal (no trailing zero group). */
static inline uint64_t rd_var(px_rd *r, uint64_t max)
{
    uint64_t v = 0;
    for (unsigned i = 0; !r->bad && i < PX_VARINT_MAX && r->p < r->end; i++) {
        uint8_t b = *r->p++;
        if ((i == PX_VARINT_MAX - 1 && b > 1) || (i > 0 && b == 0))
            break;
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            if (v <= max)
                return v;
            break;
        }
    }
    r->bad = true;
    return 0;
}

#endif
