/* test_msg.c — px_msg codec: round trips, sizes, and rejection of malformed input. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/rift_rng.h"
#include "paxos/px_msg.h"

#define N_SAMPLES (2 * PX_MSG_TYPE_MAX + 7) /* normal, edge, then huge PROMISE/LEARN */
#define BIG_LEN (1024u * 1024u)

static uint8_t blob[BIG_LEN];
static px_entry few[3];
static px_entry *many;  /* PX_MSG_MAX_ENTRIES entries */

static px_bytes B(const char *s)
{
    return (px_bytes){(const uint8_t *)s, (uint32_t)strlen(s)};
}

static void setup(void)
{
    for (size_t i = 0; i < BIG_LEN; i++)
        blob[i] = (uint8_t)(i * 131 + 7);
    few[0] = (px_entry){.index = 1, .ballot = 0x101, .committed = 1, .value = B("\x01\x00")};
    few[1] = (px_entry){.index = UINT64_MAX, .ballot = UINT64_MAX, .committed = 0, .value = {0}};
    few[2] = (px_entry){.index = 300, .ballot = 128, .committed = 1, .value = {blob, 5000}};
    many = calloc(PX_MSG_MAX_ENTRIES, sizeof *many);
    cr_assert_not_null(many);
    for (uint32_t i = 0; i < PX_MSG_MAX_ENTRIES; i++)
        many[i] = (px_entry){.index = i + 1000, .ballot = i, .committed = i & 1,
                             .value = {blob + i, i % 7}};
}

static void teardown(void)
{
    free(many);
}

TestSuite(msg, .init = setup, .fini = teardown);

/* Representative and edge messages of every type; i in [0, N_SAMPLES). */
static px_msg sample(int i)
{
    px_msg m = {.type = (uint8_t)(i % PX_MSG_TYPE_MAX + 1), .from = (uint16_t)i, .to = 2,
                .ballot = (uint64_t)i << 8 | 1};
    bool edge = i >= PX_MSG_TYPE_MAX;
    if (edge) {
        m.from = 0xffff;
        m.to = PX_NO_NODE;
        m.ballot = UINT64_MAX;
    }
    uint64_t big = edge ? UINT64_MAX : 42;
    switch (m.type) {
    case PX_MSG_PREPARE: m.u.prepare.from_index = big; break;
    case PX_MSG_PROMISE:
        m.u.promise.ok = edge;
        m.u.promise.last_executed = big;
        m.u.promise.log_base = big - 1;
        m.u.promise.n_entries = i >= 2 * PX_MSG_TYPE_MAX ? PX_MSG_MAX_ENTRIES : edge ? 0 : 3;
        m.u.promise.entries = i >= 2 * PX_MSG_TYPE_MAX ? many : edge ? NULL : few;
        break;
    case PX_MSG_ACCEPT:
        m.u.accept.entry = few[edge ? 1 : 2];
        m.u.accept.last_executed = big;
        m.u.accept.gle = 0;
        break;
    case PX_MSG_ACCEPTED:
        m.u.accepted.ok = edge;
        m.u.accepted.index = big;
        m.u.accepted.last_executed = 127;
        break;
    case PX_MSG_COMMIT: m.u.commit.last_executed = big; m.u.commit.gle = 128; break;
    case PX_MSG_COMMIT_REPLY: m.u.commit_reply.ok = !edge; m.u.commit_reply.last_executed = big; break;
    case PX_MSG_LEARN:
        m.u.learn.n_entries = i >= 2 * PX_MSG_TYPE_MAX ? PX_MSG_MAX_ENTRIES : edge ? 0 : 3;
        m.u.learn.entries = i >= 2 * PX_MSG_TYPE_MAX ? many : edge ? NULL : few;
        break;
    case PX_MSG_SNAP_REQ: m.u.snap_req.last_executed = big; break;
    case PX_MSG_SNAP:
        m.u.snap.index = big;
        m.u.snap.image = edge ? (px_bytes){blob, BIG_LEN} : (px_bytes){0};
        break;
    case PX_MSG_CLIENT_REQ: m.u.client_req.cmd = edge ? (px_bytes){blob, 300} : B("x"); break;
    case PX_MSG_CLIENT_REPLY:
        m.u.client_reply.client_id = big;
        m.u.client_reply.seq = big;
        m.u.client_reply.status = edge ? PX_REPLY_BAD_REQUEST : PX_REPLY_OK;
        m.u.client_reply.leader = edge ? PX_NO_NODE : 3;
        m.u.client_reply.has_value = !edge;
        m.u.client_reply.value = edge ? (px_bytes){0} : B("hello");
        break;
    }
    return m;
}

static bool bytes_eq(px_bytes a, px_bytes b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}

static void assert_entries_eq(const px_entry *a, const px_entry *b, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        cr_assert_eq(a[i].index, b[i].index);
        cr_assert_eq(a[i].ballot, b[i].ballot);
        cr_assert_eq(a[i].committed, b[i].committed);
        cr_assert(bytes_eq(a[i].value, b[i].value), "entry %u value", i);
    }
}

static void assert_msg_eq(const px_msg *a, const px_msg *b)
{
    cr_assert_eq(a->type, b->type);
    cr_assert_eq(a->from, b->from);
    cr_assert_eq(a->to, b->to);
    cr_assert_eq(a->ballot, b->ballot);
    switch (a->type) {
    case PX_MSG_PREPARE: cr_assert_eq(a->u.prepare.from_index, b->u.prepare.from_index); break;
    case PX_MSG_PROMISE:
        cr_assert_eq(a->u.promise.ok, b->u.promise.ok);
        cr_assert_eq(a->u.promise.last_executed, b->u.promise.last_executed);
        cr_assert_eq(a->u.promise.log_base, b->u.promise.log_base);
        cr_assert_eq(a->u.promise.n_entries, b->u.promise.n_entries);
        assert_entries_eq(a->u.promise.entries, b->u.promise.entries, a->u.promise.n_entries);
        break;
    case PX_MSG_ACCEPT:
        assert_entries_eq(&a->u.accept.entry, &b->u.accept.entry, 1);
        cr_assert_eq(a->u.accept.last_executed, b->u.accept.last_executed);
        cr_assert_eq(a->u.accept.gle, b->u.accept.gle);
        break;
    case PX_MSG_ACCEPTED:
        cr_assert_eq(a->u.accepted.ok, b->u.accepted.ok);
        cr_assert_eq(a->u.accepted.index, b->u.accepted.index);
        cr_assert_eq(a->u.accepted.last_executed, b->u.accepted.last_executed);
        break;
    case PX_MSG_COMMIT:
        cr_assert_eq(a->u.commit.last_executed, b->u.commit.last_executed);
        cr_assert_eq(a->u.commit.gle, b->u.commit.gle);
        break;
    case PX_MSG_COMMIT_REPLY:
        cr_assert_eq(a->u.commit_reply.ok, b->u.commit_reply.ok);
        cr_assert_eq(a->u.commit_reply.last_executed, b->u.commit_reply.last_executed);
        break;
    case PX_MSG_LEARN:
        cr_assert_eq(a->u.learn.n_entries, b->u.learn.n_entries);
        assert_entries_eq(a->u.learn.entries, b->u.learn.entries, a->u.learn.n_entries);
        break;
    case PX_MSG_SNAP_REQ: cr_assert_eq(a->u.snap_req.last_executed, b->u.snap_req.last_executed); break;
    case PX_MSG_SNAP:
        cr_assert_eq(a->u.snap.index, b->u.snap.index);
        cr_assert(bytes_eq(a->u.snap.image, b->u.snap.image));
        break;
    case PX_MSG_CLIENT_REQ: cr_assert(bytes_eq(a->u.client_req.cmd, b->u.client_req.cmd)); break;
    case PX_MSG_CLIENT_REPLY:
        cr_assert_eq(a->u.client_reply.client_id, b->u.client_reply.client_id);
        cr_assert_eq(a->u.client_reply.seq, b->u.client_reply.seq);
        cr_assert_eq(a->u.client_reply.status, b->u.client_reply.status);
        cr_assert_eq(a->u.client_reply.leader, b->u.client_reply.leader);
        cr_assert_eq(a->u.client_reply.has_value, b->u.client_reply.has_value);
        cr_assert(bytes_eq(a->u.client_reply.value, b->u.client_reply.value));
        break;
    default: cr_assert_fail("bad type %d", a->type);
    }
}

/* Encode m into a fresh heap buffer of exactly encoded_size bytes. */
static uint8_t *encode(const px_msg *m, size_t *len)
{
    size_t size = px_msg_encoded_size(m);
    uint8_t *buf = malloc(size);
    cr_assert_not_null(buf);
    cr_assert_eq(px_msg_encode(m, buf, size, len), 0, "type %d", m->type);
    cr_assert_eq(*len, size, "encoded_size %zu != written %zu", size, *len);
    return buf;
}

static bool is_zero(const px_msg *m)
{
    static const px_msg zero;
    return memcmp(m, &zero, sizeof zero) == 0;
}

Test(msg, type_names)
{
    const char *want[] = {"unknown", "prepare", "promise", "accept", "accepted", "commit",
                          "commit_reply", "learn", "snap_req", "snap", "client_req",
                          "client_reply", "unknown"};
    for (int t = 0; t <= PX_MSG_TYPE_MAX + 1; t++)
        cr_assert_str_eq(px_msg_type_name(t), want[t]);
    cr_assert_str_eq(px_msg_type_name(-1), "unknown");
    cr_assert_str_eq(px_msg_type_name(1000), "unknown");
}

Test(msg, round_trip_every_type)
{
    for (int i = 0; i < N_SAMPLES; i++) {
        px_msg m = sample(i), d;
        size_t len, len2;
        uint8_t *buf = encode(&m, &len);
        cr_assert_eq(px_msg_decode(buf, len, &d), 0, "sample %d", i);
        assert_msg_eq(&m, &d);
        uint8_t *again = encode(&d, &len2);  /* canonical: same bytes */
        cr_assert_eq(len2, len);
        cr_assert_eq(memcmp(again, buf, len), 0);
        px_msg_release(&d);
        px_msg_release(&d);  /* twice is fine */
        free(again);
        free(buf);
    }
}

Test(msg, decoded_bytes_borrow_input)
{
    px_msg m = sample(PX_MSG_CLIENT_REQ - 1), d;
    size_t len;
    uint8_t *buf = encode(&m, &len);
    cr_assert_eq(px_msg_decode(buf, len, &d), 0);
    cr_assert(d.u.client_req.cmd.data >= buf && d.u.client_req.cmd.data < buf + len);
    free(buf);
}

Test(msg, release_zeroed_is_safe)
{
    px_msg m = {0};
    px_msg_release(&m);
    px_msg_release(NULL);
    m.type = PX_MSG_LEARN;
    px_msg_release(&m);
    cr_assert_null(m.u.learn.entries);
}

Test(msg, enospc_on_short_buffer)
{
    for (int i = 0; i < N_SAMPLES; i++) {
        px_msg m = sample(i);
        size_t size = px_msg_encoded_size(&m), len = 12345;
        uint8_t *buf = malloc(size);
        cr_assert_eq(px_msg_encode(&m, buf, size - 1, &len), -ENOSPC);
        cr_assert_eq(px_msg_encode(&m, buf, 0, &len), -ENOSPC);
        cr_assert_eq(len, 12345u, "out_len untouched on error");
        free(buf);
    }
}

Test(msg, encode_rejects_invalid)
{
    uint8_t buf[256];
    size_t len;
    px_msg m = sample(0);
    m.type = 0;
    cr_assert_eq(px_msg_encode(&m, buf, sizeof buf, &len), -EINVAL);
    m.type = PX_MSG_TYPE_MAX + 1;
    cr_assert_eq(px_msg_encode(&m, buf, sizeof buf, &len), -EINVAL);
    m = sample(PX_MSG_PROMISE - 1);
    m.u.promise.ok = 2;
    cr_assert_eq(px_msg_encode(&m, buf, sizeof buf, &len), -EINVAL);
    m = sample(PX_MSG_ACCEPTED - 1);
    m.u.accepted.ok = 2;
    cr_assert_eq(px_msg_encode(&m, buf, sizeof buf, &len), -EINVAL);
    m = sample(PX_MSG_COMMIT_REPLY - 1);
    m.u.commit_reply.ok = 3;
    cr_assert_eq(px_msg_encode(&m, buf, sizeof buf, &len), -EINVAL);
    m = sample(PX_MSG_CLIENT_REPLY - 1);
    m.u.client_reply.has_value = 2;
    cr_assert_eq(px_msg_encode(&m, buf, sizeof buf, &len), -EINVAL);
    m = sample(PX_MSG_PROMISE - 1);
    m.u.promise.entries = NULL;
    cr_assert_eq(px_msg_encode(&m, buf, sizeof buf, &len), -EINVAL);
    m = sample(PX_MSG_LEARN - 1);
    m.u.learn.n_entries = PX_MSG_MAX_ENTRIES + 1;
    cr_assert_eq(px_msg_encode(&m, buf, sizeof buf, &len), -EINVAL);
    m = sample(PX_MSG_ACCEPT - 1);
    m.u.accept.entry.committed = 2;
    cr_assert_eq(px_msg_encode(&m, buf, sizeof buf, &len), -EINVAL);
    m = sample(PX_MSG_SNAP - 1);
    m.u.snap.image = (px_bytes){blob, PX_MSG_MAX_BYTES + 1};
    cr_assert_eq(px_msg_encode(&m, buf, sizeof buf, &len), -EINVAL);
    m = sample(PX_MSG_CLIENT_REQ - 1);
    m.u.client_req.cmd = (px_bytes){NULL, 3};
    cr_assert_eq(px_msg_encode(&m, buf, sizeof buf, &len), -EINVAL);
    m = sample(PX_MSG_CLIENT_REPLY - 1);
    m.u.client_reply.status = 0;
    cr_assert_eq(px_msg_encode(&m, buf, sizeof buf, &len), -EINVAL);
    m.u.client_reply.status = PX_REPLY_BAD_REQUEST + 1;
    cr_assert_eq(px_msg_encode(&m, buf, sizeof buf, &len), -EINVAL);
}

Test(msg, max_size_fields_round_trip)
{
    static px_entry big_one;
    big_one = (px_entry){.index = 9, .ballot = 9, .committed = 1};
    uint8_t *huge = malloc(PX_MSG_MAX_BYTES);
    cr_assert_not_null(huge);
    memset(huge, 0xab, PX_MSG_MAX_BYTES);
    big_one.value = (px_bytes){huge, PX_MSG_MAX_BYTES};
    px_msg m = {.type = PX_MSG_LEARN, .u.learn = {1, &big_one}}, d;
    size_t len;
    uint8_t *buf = encode(&m, &len);
    cr_assert_eq(px_msg_decode(buf, len, &d), 0);
    assert_msg_eq(&m, &d);
    px_msg_release(&d);
    free(buf);
    free(huge);
}

Test(msg, every_truncation_rejected)
{
    for (int i = 0; i < 2 * PX_MSG_TYPE_MAX; i++) {
        px_msg m = sample(i), d;
        size_t len;
        if (px_msg_encoded_size(&m) > 20000)
            continue;  /* the big samples get a few cuts below */
        uint8_t *buf = encode(&m, &len);
        for (size_t cut = 0; cut < len; cut++) {
            uint8_t *p = malloc(cut ? cut : 1);  /* exact size so ASan sees overreads */
            memcpy(p, buf, cut);
            cr_assert_eq(px_msg_decode(p, cut, &d), -EBADMSG, "sample %d cut %zu", i, cut);
            cr_assert(is_zero(&d));
            free(p);
        }
        free(buf);
    }
    for (int i = 2 * PX_MSG_TYPE_MAX; i < N_SAMPLES; i++) {
        px_msg m = sample(i), d;
        size_t len;
        uint8_t *buf = encode(&m, &len);
        size_t cuts[] = {0, 3, 4, 5, 9, 20, len / 2, len - 2, len - 1};
        for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++)
            cr_assert_eq(px_msg_decode(buf, cuts[c], &d), -EBADMSG);
        free(buf);
    }
}

Test(msg, header_rejections)
{
    px_msg m = sample(PX_MSG_COMMIT - 1), d;
    size_t len;
    uint8_t *buf = encode(&m, &len);
    uint8_t *p = malloc(len + 1);
    memcpy(p, buf, len);
    p[0] ^= 1;
    cr_assert_eq(px_msg_decode(p, len, &d), -EBADMSG, "bad magic");
    memcpy(p, buf, len);
    p[1] = 0;
    cr_assert_eq(px_msg_decode(p, len, &d), -EBADMSG, "bad magic high byte");
    memcpy(p, buf, len);
    p[2] = PX_MSG_VERSION + 1;
    cr_assert_eq(px_msg_decode(p, len, &d), -EPROTO, "bad version");
    p[2] = 0;
    cr_assert_eq(px_msg_decode(p, len, &d), -EPROTO);
    const uint8_t bad_types[] = {0, PX_MSG_TYPE_MAX + 1, 0x80, 0xff};
    for (size_t i = 0; i < sizeof bad_types; i++) {
        memcpy(p, buf, len);
        p[3] = bad_types[i];
        cr_assert_eq(px_msg_decode(p, len, &d), -EBADMSG, "type %u", bad_types[i]);
        cr_assert(is_zero(&d));
    }
    memcpy(p, buf, len);
    p[len] = 0;
    cr_assert_eq(px_msg_decode(p, len + 1, &d), -EBADMSG, "trailing byte");
    cr_assert_eq(px_msg_decode(NULL, 0, &d), -EBADMSG);
    free(p);
    free(buf);
}

/* ---- hand-made encodings ---- */

typedef struct raw {
    uint8_t b[64];
    size_t n;
} raw;

static void raw_byte(raw *r, uint8_t v) { r->b[r->n++] = v; }

static void raw_var(raw *r, uint64_t v)
{
    do {
        raw_byte(r, (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0)));
        v >>= 7;
    } while (v);
}

static raw raw_hdr(uint8_t type, uint64_t from, uint64_t to)
{
    raw r = {.n = 0};
    raw_byte(&r, PX_MSG_MAGIC & 0xff);
    raw_byte(&r, PX_MSG_MAGIC >> 8);
    raw_byte(&r, PX_MSG_VERSION);
    raw_byte(&r, type);
    raw_var(&r, from);
    raw_var(&r, to);
    raw_var(&r, 7); /* ballot */
    return r;
}

static int raw_decode(const raw *r)
{
    px_msg d;
    uint8_t *p = malloc(r->n);
    memcpy(p, r->b, r->n);
    int rc = px_msg_decode(p, r->n, &d);
    if (rc == 0)
        px_msg_release(&d);
    else
        cr_assert(is_zero(&d));
    free(p);
    return rc;
}

Test(msg, raw_baseline_decodes)
{
    raw r = raw_hdr(PX_MSG_SNAP_REQ, 0xffff, 0);
    raw_var(&r, UINT64_MAX);
    cr_assert_eq(raw_decode(&r), 0);
}

Test(msg, node_ids_over_16_bits_rejected)
{
    raw r = raw_hdr(PX_MSG_SNAP_REQ, 0x10000, 0);
    raw_var(&r, 1);
    cr_assert_eq(raw_decode(&r), -EBADMSG);
    r = raw_hdr(PX_MSG_SNAP_REQ, 1, 0x10000);
    raw_var(&r, 1);
    cr_assert_eq(raw_decode(&r), -EBADMSG);
}

Test(msg, bad_varints_rejected)
{
    raw r = raw_hdr(PX_MSG_SNAP_REQ, 1, 2);
    for (int i = 0; i < 10; i++)  /* 11 bytes: too long */
        raw_byte(&r, 0x80);
    raw_byte(&r, 0x00);
    cr_assert_eq(raw_decode(&r), -EBADMSG, "11-byte varint");
    r = raw_hdr(PX_MSG_SNAP_REQ, 1, 2);
    for (int i = 0; i < 9; i++)
        raw_byte(&r, 0xff);
    raw_byte(&r, 0x02);  /* bit 64 */
    cr_assert_eq(raw_decode(&r), -EBADMSG, "65-bit varint");
    r = raw_hdr(PX_MSG_SNAP_REQ, 1, 2);
    raw_byte(&r, 0x81);
    raw_byte(&r, 0x00);  /* non-minimal spelling of 1 */
    cr_assert_eq(raw_decode(&r), -EBADMSG, "overlong varint");
    r = raw_hdr(PX_MSG_SNAP_REQ, 1, 2);
    for (int i = 0; i < 9; i++)
        raw_byte(&r, 0xff);
    raw_byte(&r, 0x01);  /* UINT64_MAX, legal */
    cr_assert_eq(raw_decode(&r), 0);
}

Test(msg, flags_over_one_rejected)
{
    raw r = raw_hdr(PX_MSG_ACCEPTED, 1, 2);
    raw_var(&r, 2); /* ok */
    raw_var(&r, 1);
    raw_var(&r, 1);
    cr_assert_eq(raw_decode(&r), -EBADMSG, "accepted.ok = 2");
    r = raw_hdr(PX_MSG_COMMIT_REPLY, 1, 2);
    raw_var(&r, 255);
    raw_var(&r, 1);
    cr_assert_eq(raw_decode(&r), -EBADMSG, "commit_reply.ok = 255");
    r = raw_hdr(PX_MSG_ACCEPT, 1, 2);
    raw_var(&r, 1);
    raw_var(&r, 1);
    raw_var(&r, 2); /* committed */
    raw_var(&r, 0);
    raw_var(&r, 0);
    raw_var(&r, 0);
    cr_assert_eq(raw_decode(&r), -EBADMSG, "entry.committed = 2");
    r = raw_hdr(PX_MSG_CLIENT_REPLY, 1, 2);
    raw_var(&r, 5);
    raw_var(&r, 1);
    raw_var(&r, PX_REPLY_OK);
    raw_var(&r, 0);
    raw_var(&r, 2); /* has_value */
    raw_var(&r, 0);
    cr_assert_eq(raw_decode(&r), -EBADMSG, "has_value = 2");
    for (uint8_t status = 0; status < 8; status++) {
        r = raw_hdr(PX_MSG_CLIENT_REPLY, 1, 2);
        raw_var(&r, 5);
        raw_var(&r, 1);
        raw_var(&r, status);
        raw_var(&r, 0x10000 - 1);
        raw_var(&r, 0);
        bool valid = status >= PX_REPLY_OK && status <= PX_REPLY_BAD_REQUEST;
        cr_assert_eq(raw_decode(&r), valid ? 0 : -EBADMSG, "status %u", status);
    }
}

Test(msg, oversized_counts_and_lengths_rejected)
{
    raw r = raw_hdr(PX_MSG_LEARN, 1, 2);
    raw_var(&r, PX_MSG_MAX_ENTRIES + 1);
    cr_assert_eq(raw_decode(&r), -EBADMSG, "count over the limit");
    r = raw_hdr(PX_MSG_LEARN, 1, 2);
    raw_var(&r, 3);  /* three entries need >= 12 bytes; give 8 */
    for (int i = 0; i < 8; i++)
        raw_byte(&r, 0);
    cr_assert_eq(raw_decode(&r), -EBADMSG, "implausible count");
    r = raw_hdr(PX_MSG_PROMISE, 1, 2);
    raw_var(&r, 1);
    raw_var(&r, 0);
    raw_var(&r, 0);
    raw_var(&r, UINT64_MAX);
    cr_assert_eq(raw_decode(&r), -EBADMSG, "huge count");
    r = raw_hdr(PX_MSG_CLIENT_REQ, 1, 2);
    raw_var(&r, PX_MSG_MAX_BYTES + 1);
    cr_assert_eq(raw_decode(&r), -EBADMSG, "length over the limit");
    r = raw_hdr(PX_MSG_CLIENT_REQ, 1, 2);
    raw_var(&r, 5);
    raw_byte(&r, 'a');
    raw_byte(&r, 'b');
    cr_assert_eq(raw_decode(&r), -EBADMSG, "length past the end");
    r = raw_hdr(PX_MSG_LEARN, 1, 2);
    raw_var(&r, 1);
    raw_var(&r, 1);
    raw_var(&r, 1);
    raw_var(&r, 1);
    raw_var(&r, 40);  /* value longer than what is left */
    for (int i = 0; i < 10; i++)
        raw_byte(&r, 0);
    cr_assert_eq(raw_decode(&r), -EBADMSG, "entry value past the end");
}

/* Random byte flips: never crash; whatever decodes re-encodes to the same bytes
 * (the encoding is canonical), with encoded_size equal to the length. */
Test(msg, random_mutations)
{
    rift_rng rng;
    rift_rng_seed(&rng, 12345);
    int accepted = 0;
    for (int iter = 0; iter < 20000; iter++) {
        px_msg m = sample((int)rift_rng_range(&rng, 0, 2 * PX_MSG_TYPE_MAX - 1)), d;
        size_t len;
        uint8_t *buf = encode(&m, &len);
        if (len > 4096)
            len = 4096 + rift_rng_range(&rng, 0, 64);  /* keep big ones cheap: cut them */
        int flips = (int)rift_rng_range(&rng, 1, 4);
        for (int f = 0; f < flips; f++) {
            size_t at = rift_rng_range(&rng, 0, len - 1);
            buf[at] = rift_rng_range(&rng, 0, 1) ? (uint8_t)rift_rng_next(&rng)
                                                 : buf[at] ^ (uint8_t)(1u << rift_rng_range(&rng, 0, 7));
        }
        if (rift_rng_range(&rng, 0, 9) == 0)
            len -= rift_rng_range(&rng, 0, len);
        uint8_t *p = malloc(len ? len : 1);
        memcpy(p, buf, len);
        int rc = px_msg_decode(p, len, &d);
        cr_assert(rc == 0 || rc == -EBADMSG || rc == -EPROTO, "rc %d", rc);
        if (rc == 0) {
            accepted++;
            size_t len2;
            uint8_t *again = encode(&d, &len2);
            cr_assert_eq(len2, len);
            cr_assert_eq(memcmp(again, p, len), 0);
            free(again);
            px_msg_release(&d);
        } else {
            cr_assert(is_zero(&d));
        }
        free(p);
        free(buf);
    }
    cr_assert_gt(accepted, 100, "mutations should sometimes stay valid (%d)", accepted);
}
