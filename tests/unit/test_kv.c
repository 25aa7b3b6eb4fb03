/* test_kv.c — commands, batches, the KV state machine, sessions, digest, image. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rift_rng.h"
#include "paxos/px_kv.h"

#define IMAGE_SEED 0x696d616765ULL /* px_kv.c's PX_IMAGE_SEED: the image checksum's seed */
#define MAX_RESULTS 16

/* ---- helpers ---- */

static px_bytes B(const char *s)
{
    return s ? (px_bytes){(const uint8_t *)s, (uint32_t)strlen(s)} : (px_bytes){0};
}

typedef struct seen {
    int n;
    px_result r[MAX_RESULTS];
    char val[MAX_RESULTS][64];  /* copies: result values are borrowed */
} seen;

static void on_result(void *ctx, const px_result *r)
{
    seen *s = ctx;
    cr_assert_lt(s->n, MAX_RESULTS);
    s->r[s->n] = *r;
    cr_assert_lt(r->value.len, sizeof s->val[0]);
    if (r->value.len)
        memcpy(s->val[s->n], r->value.data, r->value.len);
    s->val[s->n][r->value.len] = 0;
    s->n++;
}

static px_cmd cmd(uint8_t op, uint64_t client, uint64_t seq, const char *key, const char *value)
{
    return (px_cmd){.op = op, .client_id = client, .seq = seq, .key = B(key), .value = B(value)};
}

static px_cmd cas(uint64_t client, uint64_t seq, const char *key, const char *expected, const char *value)
{
    px_cmd c = cmd(PX_OP_CAS, client, seq, key, value);
    c.expected_absent = expected == NULL;
    c.expected = B(expected);
    return c;
}

/* Encode cmds as one batch (heap; caller frees). */
static uint8_t *batch_of(const px_cmd *cmds, int n, size_t *len)
{
    px_batch_builder b = {0};
    for (int i = 0; i < n; i++) {
        size_t clen, size = px_cmd_encoded_size(&cmds[i]);
        uint8_t *buf = malloc(size);
        cr_assert_eq(px_cmd_encode(&cmds[i], buf, size, &clen), 0);
        cr_assert_eq(px_batch_add(&b, buf, clen), 0);
        free(buf);
    }
    uint8_t *out;
    cr_assert_eq(px_batch_finish(&b, &out, len), 0);
    cr_assert_null(b.buf);
    return out;
}

/* Apply cmds as the next index; returns what on_result saw. */
static seen run(px_kv *kv, const px_cmd *cmds, int n)
{
    seen s = {0};
    size_t len;
    uint8_t *batch = batch_of(cmds, n, &len);
    cr_assert_eq(px_kv_apply(kv, px_kv_applied_index(kv) + 1, batch, len, on_result, &s), 0);
    free(batch);
    return s;
}

static seen run1(px_kv *kv, px_cmd c)
{
    return run(kv, &c, 1);
}

static void assert_value(const px_kv *kv, const char *key, const char *want)
{
    px_bytes v;
    bool present = px_kv_lookup(kv, (const uint8_t *)key, strlen(key), &v);
    if (!want) {
        cr_assert(!present, "%s should be absent", key);
        return;
    }
    cr_assert(present, "%s should be present", key);
    cr_assert_eq(v.len, strlen(want), "%s: length %u", key, v.len);
    cr_assert(v.len == 0 || memcmp(v.data, want, v.len) == 0, "%s value", key);
}

static void assert_result(const seen *s, int i, uint8_t status, const char *value, bool dup)
{
    cr_assert_gt(s->n, i);
    cr_assert_eq(s->r[i].status, status, "result %d status %u", i, s->r[i].status);
    cr_assert_eq(s->r[i].has_value, value != NULL, "result %d has_value", i);
    if (value)
        cr_assert_str_eq(s->val[i], value);
    cr_assert_eq(s->r[i].duplicate, dup, "result %d duplicate", i);
}

/* ---- command codec ---- */

Test(kv_cmd, round_trip_every_op)
{
    px_cmd cmds[] = {
        cmd(PX_OP_GET, 1, 1, "k", NULL),
        cmd(PX_OP_PUT, UINT64_MAX, UINT64_MAX, "key", "value"),
        cmd(PX_OP_DEL, 0, 7, "", NULL),
        cmd(PX_OP_APPEND, 300, 2, "k", ""),
        cas(5, 9, "k", NULL, "new"),
        cas(5, 10, "k", "old", "new"),
        cas(5, 11, "k", "", ""),
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        uint8_t buf[256];
        size_t len;
        px_cmd d;
        cr_assert_eq(px_cmd_encode(&cmds[i], buf, sizeof buf, &len), 0);
        cr_assert_eq(len, px_cmd_encoded_size(&cmds[i]));
        cr_assert_eq(px_cmd_encode(&cmds[i], buf, len - 1, &len), -ENOSPC);
        cr_assert_eq(px_cmd_decode(buf, len, &d), 0, "cmd %zu", i);
        cr_assert_eq(d.op, cmds[i].op);
        cr_assert_eq(d.client_id, cmds[i].client_id);
        cr_assert_eq(d.seq, cmds[i].seq);
        cr_assert_eq(d.key.len, cmds[i].key.len);
        cr_assert_eq(memcmp(d.key.data, cmds[i].key.data, d.key.len), 0);
        cr_assert_eq(d.value.len, cmds[i].value.len);
        cr_assert(d.value.len == 0 || !memcmp(d.value.data, cmds[i].value.data, d.value.len));
        cr_assert_eq(d.expected_absent, cmds[i].expected_absent);
        cr_assert_eq(d.expected.len, cmds[i].expected.len);
        for (size_t cut = 0; cut < len; cut++)
            cr_assert_eq(px_cmd_decode(buf, cut, &d), -EBADMSG, "cmd %zu cut %zu", i, cut);
        buf[len] = 0;
        cr_assert_eq(px_cmd_decode(buf, len + 1, &d), -EBADMSG, "trailing byte");
    }
}

Test(kv_cmd, big_key_and_value_limits)
{
    static uint8_t big[PX_KV_MAX_VALUE + 1];
    static uint8_t buf[PX_KV_MAX_VALUE + PX_KV_MAX_KEY + 64];
    size_t len;
    px_cmd c = {.op = PX_OP_PUT, .client_id = 1, .seq = 1,
                .key = {big, PX_KV_MAX_KEY}, .value = {big, PX_KV_MAX_VALUE}};
    cr_assert_eq(px_cmd_encode(&c, buf, sizeof buf, &len), 0);
    px_cmd d;
    cr_assert_eq(px_cmd_decode(buf, len, &d), 0);
    cr_assert_eq(d.value.len, PX_KV_MAX_VALUE);
    c.key.len = PX_KV_MAX_KEY + 1;
    cr_assert_eq(px_cmd_encode(&c, buf, sizeof buf, &len), -EINVAL);
    c.key.len = 1;
    c.value.len = PX_KV_MAX_VALUE + 1;
    cr_assert_eq(px_cmd_encode(&c, buf, sizeof buf, &len), -EINVAL);
}

Test(kv_cmd, encode_rejects_invalid)
{
    uint8_t buf[64];
    size_t len;
    px_cmd c = cmd(0, 1, 1, "k", NULL);
    cr_assert_eq(px_cmd_encode(&c, buf, sizeof buf, &len), -EINVAL, "op 0");
    c.op = PX_OP_MAX + 1;
    cr_assert_eq(px_cmd_encode(&c, buf, sizeof buf, &len), -EINVAL, "op too big");
    c = cmd(PX_OP_PUT, 1, 0, "k", "v");
    cr_assert_eq(px_cmd_encode(&c, buf, sizeof buf, &len), -EINVAL, "seq 0");
    c = cas(1, 1, "k", "a", "b");
    c.expected_absent = 2;
    cr_assert_eq(px_cmd_encode(&c, buf, sizeof buf, &len), -EINVAL, "flag 2");
}

static size_t var(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    do {
        p[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    return n;
}

Test(kv_cmd, decode_rejects_bad_fields)
{
    uint8_t b[32];
    px_cmd d;
    size_t n;
    /* op, client, seq, key */
    n = 0; b[n++] = 6; b[n++] = 1; b[n++] = 1; b[n++] = 0;
    cr_assert_eq(px_cmd_decode(b, n, &d), -EBADMSG, "op 6");
    n = 0; b[n++] = 0; b[n++] = 1; b[n++] = 1; b[n++] = 0;
    cr_assert_eq(px_cmd_decode(b, n, &d), -EBADMSG, "op 0");
    n = 0; b[n++] = PX_OP_GET; b[n++] = 1; b[n++] = 0; b[n++] = 0;
    cr_assert_eq(px_cmd_decode(b, n, &d), -EBADMSG, "seq 0");
    n = 0; b[n++] = PX_OP_GET; b[n++] = 1; b[n++] = 1; b[n++] = 0;
    cr_assert_eq(px_cmd_decode(b, n, &d), 0, "baseline");
    n = 0; b[n++] = PX_OP_GET; b[n++] = 1; b[n++] = 1;
    n += var(b + n, PX_KV_MAX_KEY + 1);
    cr_assert_eq(px_cmd_decode(b, n, &d), -EBADMSG, "key too long");
    n = 0; b[n++] = PX_OP_CAS; b[n++] = 1; b[n++] = 1; b[n++] = 0; b[n++] = 2; b[n++] = 0;
    cr_assert_eq(px_cmd_decode(b, n, &d), -EBADMSG, "expected_absent 2");
    n = 0; b[n++] = PX_OP_PUT; b[n++] = 1; b[n++] = 1; b[n++] = 0;
    n += var(b + n, PX_KV_MAX_VALUE + 1);
    cr_assert_eq(px_cmd_decode(b, n, &d), -EBADMSG, "value too long");
    n = 0; b[n++] = PX_OP_GET; b[n++] = 0x81; b[n++] = 0x00; b[n++] = 1; b[n++] = 0;
    cr_assert_eq(px_cmd_decode(b, n, &d), -EBADMSG, "overlong varint");
}

/* ---- batches ---- */

Test(kv_batch, builder_and_iterator)
{
    px_batch_builder b = {0};
    char keys[200][16];
    for (int i = 0; i < 200; i++) {  /* past 127: a two-byte count */
        uint8_t buf[64];
        size_t len;
        snprintf(keys[i], sizeof keys[i], "k%d", i);
        px_cmd c = cmd(PX_OP_PUT, 1, (uint64_t)i + 1, keys[i], "v");
        cr_assert_eq(px_cmd_encode(&c, buf, sizeof buf, &len), 0);
        cr_assert_eq(px_batch_add(&b, buf, len), 0);
    }
    uint8_t *out;
    size_t out_len;
    cr_assert_eq(px_batch_finish(&b, &out, &out_len), 0);
    px_batch_iter it;
    px_bytes cb;
    cr_assert_eq(px_batch_iter_init(&it, out, out_len), 0);
    for (int i = 0; i < 200; i++) {
        px_cmd d;
        cr_assert_eq(px_batch_iter_next(&it, &cb), 1);
        cr_assert_eq(px_cmd_decode(cb.data, cb.len, &d), 0);
        cr_assert_eq(d.seq, (uint64_t)i + 1);
        cr_assert_eq(d.key.len, strlen(keys[i]));
    }
    cr_assert_eq(px_batch_iter_next(&it, &cb), 0);
    cr_assert_eq(px_batch_iter_next(&it, &cb), 0);
    for (size_t cut = 0; cut < out_len; cut++) {
        int rc = px_batch_iter_init(&it, out, cut);
        while (rc == 0 && (rc = px_batch_iter_next(&it, &cb)) == 1)
            rc = 0;
        cr_assert(cut == 0 ? rc == 0 : rc == -EBADMSG, "cut %zu rc %d", cut, rc);
    }
    free(out);
}

Test(kv_batch, empty_and_limits)
{
    px_batch_builder b = {0};
    uint8_t *out;
    size_t len;
    cr_assert_eq(px_batch_finish(&b, &out, &len), 0);
    cr_assert_eq(len, 1u);
    cr_assert_eq(out[0], 0);
    free(out);
    static uint8_t big[PX_MSG_MAX_BYTES];
    cr_assert_eq(px_batch_add(&b, big, PX_MSG_MAX_BYTES), -EMSGSIZE);
    cr_assert_eq(px_batch_add(&b, big, PX_KV_MAX_VALUE), 0);
    cr_assert_eq(b.count, 1u);
    px_batch_builder_reset(&b);
    cr_assert_null(b.buf);
    cr_assert_eq(b.count, 0u);
    px_batch_builder_reset(&b);
}

Test(kv_batch, malformed_framing)
{
    px_batch_iter it;
    px_bytes cb;
    const uint8_t too_many[] = {5, 1, 0};       /* count 5, two bytes left */
    cr_assert_eq(px_batch_iter_init(&it, too_many, sizeof too_many), -EBADMSG);
    const uint8_t trailing[] = {1, 1, 0, 9};    /* one command, then junk */
    cr_assert_eq(px_batch_iter_init(&it, trailing, sizeof trailing), 0);
    cr_assert_eq(px_batch_iter_next(&it, &cb), 1);
    cr_assert_eq(px_batch_iter_next(&it, &cb), -EBADMSG);
    cr_assert_eq(px_batch_iter_next(&it, &cb), -EBADMSG, "errors are sticky");
    const uint8_t past_end[] = {2, 1, 0, 7, 0}; /* second length runs past the end */
    cr_assert_eq(px_batch_iter_init(&it, past_end, sizeof past_end), 0);
    cr_assert_eq(px_batch_iter_next(&it, &cb), 1);
    cr_assert_eq(px_batch_iter_next(&it, &cb), -EBADMSG);
    const uint8_t overlong[] = {0x80, 0x00};
    cr_assert_eq(px_batch_iter_init(&it, overlong, sizeof overlong), -EBADMSG);
}

/* ---- operations ---- */

Test(kv_ops, get_put_del)
{
    px_kv *kv = px_kv_new();
    seen s = run1(kv, cmd(PX_OP_GET, 1, 1, "a", NULL));
    cr_assert_eq(s.n, 1);
    assert_result(&s, 0, PX_REPLY_OK, NULL, false);
    cr_assert_eq(s.r[0].client_id, 1u);
    cr_assert_eq(s.r[0].seq, 1u);
    s = run1(kv, cmd(PX_OP_PUT, 1, 2, "a", "one"));
    assert_result(&s, 0, PX_REPLY_OK, NULL, false);
    assert_value(kv, "a", "one");
    s = run1(kv, cmd(PX_OP_GET, 1, 3, "a", NULL));
    assert_result(&s, 0, PX_REPLY_OK, "one", false);
    run1(kv, cmd(PX_OP_PUT, 1, 4, "a", "two"));
    assert_value(kv, "a", "two");
    run1(kv, cmd(PX_OP_PUT, 1, 5, "empty", ""));
    s = run1(kv, cmd(PX_OP_GET, 1, 6, "empty", NULL));
    assert_result(&s, 0, PX_REPLY_OK, "", false);  /* present but empty */
    cr_assert_eq(px_kv_key_count(kv), 2u);
    s = run1(kv, cmd(PX_OP_DEL, 1, 7, "a", NULL));
    assert_result(&s, 0, PX_REPLY_OK, NULL, false);
    assert_value(kv, "a", NULL);
    s = run1(kv, cmd(PX_OP_DEL, 1, 8, "a", NULL));
    assert_result(&s, 0, PX_REPLY_OK, NULL, false);  /* absent is fine */
    cr_assert_eq(px_kv_key_count(kv), 1u);
    px_kv_free(kv);
}

Test(kv_ops, append)
{
    px_kv *kv = px_kv_new();
    seen s = run1(kv, cmd(PX_OP_APPEND, 1, 1, "a", "x"));
    assert_result(&s, 0, PX_REPLY_OK, NULL, false);
    assert_value(kv, "a", "x");  /* absent = empty */
    run1(kv, cmd(PX_OP_APPEND, 1, 2, "a", "yz"));
    assert_value(kv, "a", "xyz");
    run1(kv, cmd(PX_OP_APPEND, 1, 3, "a", ""));
    assert_value(kv, "a", "xyz");
    run1(kv, cmd(PX_OP_APPEND, 1, 4, "b", ""));
    assert_value(kv, "b", "");
    px_kv_free(kv);
}

Test(kv_ops, append_past_max_value_fails)
{
    static uint8_t big[PX_KV_MAX_VALUE];
    px_kv *kv = px_kv_new();
    px_cmd c = {.op = PX_OP_PUT, .client_id = 1, .seq = 1, .key = B("k"), .value = {big, PX_KV_MAX_VALUE - 1}};
    run1(kv, c);
    seen s = run1(kv, cmd(PX_OP_APPEND, 1, 2, "k", "ab"));
    assert_result(&s, 0, PX_REPLY_FAIL, NULL, false);
    s = run1(kv, cmd(PX_OP_APPEND, 1, 3, "k", "a"));
    assert_result(&s, 0, PX_REPLY_OK, NULL, false);
    px_bytes v;
    cr_assert(px_kv_lookup(kv, (const uint8_t *)"k", 1, &v));
    cr_assert_eq(v.len, PX_KV_MAX_VALUE);
    px_kv_free(kv);
}

Test(kv_ops, cas)
{
    px_kv *kv = px_kv_new();
    seen s = run1(kv, cas(1, 1, "a", "x", "y"));
    assert_result(&s, 0, PX_REPLY_FAIL, NULL, false);  /* expected a value, key absent */
    assert_value(kv, "a", NULL);
    s = run1(kv, cas(1, 2, "a", NULL, "first"));
    assert_result(&s, 0, PX_REPLY_OK, NULL, false);    /* expected absent, absent */
    assert_value(kv, "a", "first");
    s = run1(kv, cas(1, 3, "a", NULL, "again"));
    assert_result(&s, 0, PX_REPLY_FAIL, NULL, false);  /* expected absent, present */
    assert_value(kv, "a", "first");
    s = run1(kv, cas(1, 4, "a", "firs", "no"));
    assert_result(&s, 0, PX_REPLY_FAIL, NULL, false);  /* prefix is not a match */
    s = run1(kv, cas(1, 5, "a", "first", "second"));
    assert_result(&s, 0, PX_REPLY_OK, NULL, false);
    assert_value(kv, "a", "second");
    run1(kv, cmd(PX_OP_PUT, 1, 6, "e", ""));
    s = run1(kv, cas(1, 7, "e", "", "filled"));
    assert_result(&s, 0, PX_REPLY_OK, NULL, false);    /* empty matches empty */
    assert_value(kv, "e", "filled");
    px_kv_free(kv);
}

Test(kv_ops, many_keys_survive_growth)
{
    px_kv *kv = px_kv_new();
    char k[16], v[16];
    for (int i = 0; i < 5000; i++) {
        snprintf(k, sizeof k, "key%d", i);
        snprintf(v, sizeof v, "v%d", i * 7);
        run1(kv, cmd(PX_OP_PUT, 1, (uint64_t)i + 1, k, v));
    }
    cr_assert_eq(px_kv_key_count(kv), 5000u);
    for (int i = 0; i < 5000; i += 2) {
        snprintf(k, sizeof k, "key%d", i);
        run1(kv, cmd(PX_OP_DEL, 2, (uint64_t)i + 1, k, NULL));
    }
    cr_assert_eq(px_kv_key_count(kv), 2500u);
    for (int i = 0; i < 5000; i++) {
        snprintf(k, sizeof k, "key%d", i);
        snprintf(v, sizeof v, "v%d", i * 7);
        assert_value(kv, k, i % 2 ? v : NULL);
    }
    px_kv_free(kv);
}

/* ---- sessions ---- */

Test(kv_sessions, retry_answers_from_cache_once)
{
    px_kv *kv = px_kv_new();
    run1(kv, cmd(PX_OP_APPEND, 7, 1, "a", "x"));
    seen s = run1(kv, cmd(PX_OP_APPEND, 7, 1, "a", "x"));  /* retried in a later entry */
    assert_result(&s, 0, PX_REPLY_OK, NULL, true);
    assert_value(kv, "a", "x");  /* not applied twice */
    run1(kv, cmd(PX_OP_GET, 7, 2, "a", NULL));
    run1(kv, cmd(PX_OP_PUT, 8, 1, "a", "changed"));  /* another client moves on */
    s = run1(kv, cmd(PX_OP_GET, 7, 2, "a", NULL));
    assert_result(&s, 0, PX_REPLY_OK, "x", true);  /* the cached reply, not the current value */
    run1(kv, cas(7, 3, "a", "nope", "z"));
    s = run1(kv, cas(7, 3, "a", "changed", "z"));  /* retry of a failed cas stays failed */
    assert_result(&s, 0, PX_REPLY_FAIL, NULL, true);
    assert_value(kv, "a", "changed");
    px_kv_free(kv);
}

Test(kv_sessions, duplicate_within_one_batch)
{
    px_kv *kv = px_kv_new();
    px_cmd cmds[] = {cmd(PX_OP_APPEND, 1, 1, "a", "x"), cmd(PX_OP_APPEND, 1, 1, "a", "x"),
                     cmd(PX_OP_APPEND, 2, 1, "a", "y")};
    seen s = run(kv, cmds, 3);
    cr_assert_eq(s.n, 3);
    assert_result(&s, 0, PX_REPLY_OK, NULL, false);
    assert_result(&s, 1, PX_REPLY_OK, NULL, true);
    assert_result(&s, 2, PX_REPLY_OK, NULL, false);
    assert_value(kv, "a", "xy");
    px_kv_free(kv);
}

Test(kv_sessions, old_seq_is_ignored)
{
    px_kv *kv = px_kv_new();
    run1(kv, cmd(PX_OP_PUT, 3, 5, "a", "five"));
    seen s = run1(kv, cmd(PX_OP_PUT, 3, 4, "a", "four"));
    cr_assert_eq(s.n, 0, "no reply for a seq the client has left behind");
    assert_value(kv, "a", "five");
    s = run1(kv, cmd(PX_OP_PUT, 3, 9, "a", "nine"));  /* gaps in seq are fine */
    assert_result(&s, 0, PX_REPLY_OK, NULL, false);
    assert_value(kv, "a", "nine");
    px_kv_free(kv);
}

/* ---- apply: index order, no-ops, malformed batches, digest ---- */

Test(kv_apply, index_order_enforced)
{
    px_kv *kv = px_kv_new();
    const uint8_t noop[] = {0};
    cr_assert_eq(px_kv_apply(kv, 0, noop, 1, NULL, NULL), -EINVAL);
    cr_assert_eq(px_kv_apply(kv, 2, noop, 1, NULL, NULL), -EINVAL);
    cr_assert_eq(px_kv_applied_index(kv), 0u);
    cr_assert_eq(px_kv_digest(kv), 0u);
    cr_assert_eq(px_kv_apply(kv, 1, noop, 1, NULL, NULL), 0);
    uint64_t d = px_kv_digest(kv);
    cr_assert_eq(px_kv_apply(kv, 1, noop, 1, NULL, NULL), -EINVAL, "no re-apply");
    cr_assert_eq(px_kv_apply(kv, 3, noop, 1, NULL, NULL), -EINVAL, "no gaps");
    cr_assert_eq(px_kv_applied_index(kv), 1u);
    cr_assert_eq(px_kv_digest(kv), d);
    px_kv_free(kv);
}

Test(kv_apply, noop_batches_advance)
{
    px_kv *kv = px_kv_new();
    seen s = {0};
    const uint8_t noop[] = {0};
    cr_assert_eq(px_kv_apply(kv, 1, noop, 1, on_result, &s), 0);
    cr_assert_eq(px_kv_apply(kv, 2, NULL, 0, on_result, &s), 0, "zero bytes is a no-op too");
    cr_assert_eq(px_kv_applied_index(kv), 2u);
    cr_assert_eq(s.n, 0);
    cr_assert_eq(px_kv_key_count(kv), 0u);
    cr_assert_neq(px_kv_digest(kv), 0u);
    px_kv_free(kv);
}

Test(kv_apply, malformed_batch_applies_nothing)
{
    px_kv *kv = px_kv_new();
    seen s = {0};
    size_t len;
    px_cmd c = cmd(PX_OP_PUT, 1, 1, "a", "v");
    uint8_t *batch = batch_of(&c, 1, &len);
    uint8_t *bad = malloc(len + 1);
    memcpy(bad, batch, len);
    bad[len] = 0x42;  /* a good command, then junk */
    cr_assert_eq(px_kv_apply(kv, 1, bad, len + 1, on_result, &s), -EBADMSG);
    cr_assert_eq(px_kv_applied_index(kv), 1u, "the index still advances");
    cr_assert_neq(px_kv_digest(kv), 0u);
    cr_assert_eq(s.n, 0);
    assert_value(kv, "a", NULL);
    cr_assert_eq(px_kv_apply(kv, 2, batch, len, on_result, &s), 0);
    assert_value(kv, "a", "v");
    free(bad);
    free(batch);
    px_kv_free(kv);
}

Test(kv_apply, undecodable_command_is_skipped)
{
    px_kv *kv = px_kv_new();
    seen s = {0};
    uint8_t good[64], junk[] = {9, 9, 9};
    size_t glen;
    px_cmd c = cmd(PX_OP_PUT, 1, 1, "a", "v");
    cr_assert_eq(px_cmd_encode(&c, good, sizeof good, &glen), 0);
    px_batch_builder b = {0};
    cr_assert_eq(px_batch_add(&b, junk, sizeof junk), 0);
    cr_assert_eq(px_batch_add(&b, NULL, 0), 0);
    cr_assert_eq(px_batch_add(&b, good, glen), 0);
    uint8_t *batch;
    size_t len;
    cr_assert_eq(px_batch_finish(&b, &batch, &len), 0);
    cr_assert_eq(px_kv_apply(kv, 1, batch, len, on_result, &s), 0);
    cr_assert_eq(s.n, 1, "only the good command answers");
    assert_value(kv, "a", "v");
    free(batch);
    px_kv_free(kv);
}

static void history(px_kv *kv, uint64_t seed, int steps)
{
    rift_rng rng;
    rift_rng_seed(&rng, seed);
    const char *keys[] = {"a", "b", "c", "d"}, *vals[] = {"", "x", "yy", "zzz"};
    for (int i = 0; i < steps; i++) {
        uint64_t client = rift_rng_range(&rng, 1, 4);
        const char *key = keys[rift_rng_range(&rng, 0, 3)];
        const char *expected = rift_rng_range(&rng, 0, 1) ? NULL : vals[rift_rng_range(&rng, 0, 3)];
        px_cmd c = cas(client, (uint64_t)i / 2 + 1, key, expected, vals[rift_rng_range(&rng, 0, 3)]);
        c.op = (uint8_t)rift_rng_range(&rng, PX_OP_GET, PX_OP_MAX);  /* same fields, any op */
        run1(kv, c);
    }
}

Test(kv_apply, digest_tracks_history)
{
    px_kv *a = px_kv_new(), *b = px_kv_new(), *c = px_kv_new();
    history(a, 1, 300);
    history(b, 1, 300);
    history(c, 2, 300);
    cr_assert_eq(px_kv_digest(a), px_kv_digest(b));
    cr_assert_neq(px_kv_digest(a), px_kv_digest(c));
    const uint8_t noop[] = {0};
    cr_assert_eq(px_kv_apply(a, 301, noop, 1, NULL, NULL), 0);
    cr_assert_eq(px_kv_apply(b, 301, NULL, 0, NULL, NULL), 0);
    cr_assert_neq(px_kv_digest(a), px_kv_digest(b), "the bytes count, not just the effect");
    px_kv_free(a);
    px_kv_free(b);
    px_kv_free(c);
}

Test(kv_apply, hash64_is_seeded_and_stable)
{
    cr_assert_eq(px_hash64(1, "abc", 3), px_hash64(1, "abc", 3));
    cr_assert_neq(px_hash64(1, "abc", 3), px_hash64(2, "abc", 3));
    cr_assert_neq(px_hash64(1, "abc", 3), px_hash64(1, "abd", 3));
    cr_assert_neq(px_hash64(0, "", 0), px_hash64(0, "\0", 1));
}

/* ---- image ---- */

static void assert_same_state(px_kv *a, px_kv *b)
{
    cr_assert_eq(px_kv_applied_index(a), px_kv_applied_index(b));
    cr_assert_eq(px_kv_digest(a), px_kv_digest(b));
    cr_assert_eq(px_kv_key_count(a), px_kv_key_count(b));
    const char *keys[] = {"a", "b", "c", "d"};
    for (int i = 0; i < 4; i++) {
        px_bytes va, vb;
        bool pa = px_kv_lookup(a, (const uint8_t *)keys[i], 1, &va);
        bool pb = px_kv_lookup(b, (const uint8_t *)keys[i], 1, &vb);
        cr_assert_eq(pa, pb);
        cr_assert(!pa || (va.len == vb.len && (!va.len || !memcmp(va.data, vb.data, va.len))));
    }
}

Test(kv_image, round_trip)
{
    px_kv *a = px_kv_new(), *b = px_kv_new();
    history(a, 3, 200);
    run1(a, cmd(PX_OP_GET, 99, 4, "a", NULL));
    run1(b, cmd(PX_OP_PUT, 1, 1, "other", "state"));  /* replaced wholesale */
    uint8_t *img;
    size_t len;
    cr_assert_eq(px_kv_image_encode(a, &img, &len), 0);
    cr_assert_eq(px_kv_image_install(b, img, len), 0);
    assert_same_state(a, b);
    assert_value(b, "other", NULL);
    /* sessions survived: the retry is a duplicate with the cached reply */
    seen sa = run1(a, cmd(PX_OP_GET, 99, 4, "a", NULL));
    seen sb = run1(b, cmd(PX_OP_GET, 99, 4, "a", NULL));
    cr_assert_eq(sb.n, 1);
    cr_assert(sb.r[0].duplicate);
    cr_assert_eq(sa.r[0].has_value, sb.r[0].has_value);
    cr_assert_str_eq(sa.val[0], sb.val[0]);
    /* and both continue alike */
    history(a, 4, 100);
    history(b, 4, 100);
    assert_same_state(a, b);
    free(img);
    px_kv_free(a);
    px_kv_free(b);
}

Test(kv_image, empty_kv_round_trip)
{
    px_kv *a = px_kv_new(), *b = px_kv_new();
    uint8_t *img;
    size_t len;
    cr_assert_eq(px_kv_image_encode(a, &img, &len), 0);
    history(b, 9, 10);
    cr_assert_eq(px_kv_image_install(b, img, len), 0);
    assert_same_state(a, b);
    free(img);
    px_kv_free(a);
    px_kv_free(b);
}

/* install must fail and leave `victim` exactly as it was */
static void assert_rejected(px_kv *victim, const uint8_t *img, size_t len, const char *what)
{
    uint8_t *before, *after;
    size_t blen, alen;
    cr_assert_eq(px_kv_image_encode(victim, &before, &blen), 0);
    uint8_t *copy = malloc(len ? len : 1);  /* exact size so ASan sees overreads */
    if (len)
        memcpy(copy, img, len);
    cr_assert_lt(px_kv_image_install(victim, copy, len), 0, "%s", what);
    cr_assert_eq(px_kv_image_encode(victim, &after, &alen), 0);
    cr_assert(blen == alen && !memcmp(before, after, blen), "%s: state changed", what);
    free(copy);
    free(before);
    free(after);
}

Test(kv_image, rejects_truncated_and_mutated)
{
    px_kv *a = px_kv_new(), *victim = px_kv_new();
    history(a, 5, 60);
    history(victim, 6, 20);
    uint8_t *img;
    size_t len;
    cr_assert_eq(px_kv_image_encode(a, &img, &len), 0);
    for (size_t cut = 0; cut < len; cut++)
        assert_rejected(victim, img, cut, "truncated");
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            img[i] ^= (uint8_t)(1u << bit);
            assert_rejected(victim, img, len, "bit flip");
            img[i] ^= (uint8_t)(1u << bit);
        }
    }
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, img, len);
    longer[len] = 0;
    assert_rejected(victim, longer, len + 1, "trailing byte");
    free(longer);
    free(img);
    px_kv_free(a);
    px_kv_free(victim);
}

/* Hand-made images with a valid checksum, so the parser itself is exercised. */
typedef struct img {
    uint8_t b[128];
    size_t n;
} img;

static void iv(img *m, uint64_t v) { m->n += var(m->b + m->n, v); }
static void iraw(img *m, const char *s)
{
    size_t l = strlen(s);
    iv(m, l);
    memcpy(m->b + m->n, s, l);
    m->n += l;
}

static img img_start(uint64_t applied, uint8_t version)
{
    img m = {.b = {'R', 'K', version}, .n = 3};
    iv(&m, applied);
    for (int i = 0; i < 8; i++)
        m.b[m.n++] = (uint8_t)(0x11 * i);  /* digest */
    return m;
}

static void img_seal(img *m)
{
    uint64_t sum = px_hash64(IMAGE_SEED, m->b, m->n);
    for (int i = 0; i < 8; i++)
        m->b[m->n++] = (uint8_t)(sum >> (8 * i));
}

Test(kv_image, crafted_images)
{
    px_kv *victim = px_kv_new();
    history(victim, 7, 10);
    img m = img_start(5, 1);
    iv(&m, 1); iraw(&m, "k"); iraw(&m, "v");
    iv(&m, 1); iv(&m, 42); iv(&m, 3); iv(&m, PX_REPLY_OK); iv(&m, 1); iraw(&m, "cached");
    img good = m;
    img_seal(&good);
    px_kv *k = px_kv_new();
    cr_assert_eq(px_kv_image_install(k, good.b, good.n), 0, "baseline");
    cr_assert_eq(px_kv_applied_index(k), 5u);
    assert_value(k, "k", "v");
    seen s = {0};
    px_cmd retry = cmd(PX_OP_GET, 42, 3, "k", NULL);
    s = run1(k, retry);
    assert_result(&s, 0, PX_REPLY_OK, "cached", true);
    px_kv_free(k);

    m = img_start(5, 2);
    iv(&m, 0); iv(&m, 0);
    img_seal(&m);
    assert_rejected(victim, m.b, m.n, "version 2");
    m = img_start(5, 1);
    iv(&m, 2); iraw(&m, "k"); iraw(&m, "v"); iraw(&m, "k"); iraw(&m, "w"); iv(&m, 0);
    img_seal(&m);
    assert_rejected(victim, m.b, m.n, "duplicate key");
    m = img_start(5, 1);
    iv(&m, 1000); iraw(&m, "k"); iraw(&m, "v"); iv(&m, 0);
    img_seal(&m);
    assert_rejected(victim, m.b, m.n, "key count too big");
    m = img_start(5, 1);
    iv(&m, 0); iv(&m, 2);
    iv(&m, 1); iv(&m, 1); iv(&m, PX_REPLY_OK); iv(&m, 0);
    iv(&m, 1); iv(&m, 2); iv(&m, PX_REPLY_OK); iv(&m, 0);
    img_seal(&m);
    assert_rejected(victim, m.b, m.n, "duplicate session");
    const uint64_t bad_status[] = {0, PX_REPLY_REDIRECT, 200};
    for (int i = 0; i < 3; i++) {
        m = img_start(5, 1);
        iv(&m, 0); iv(&m, 1); iv(&m, 1); iv(&m, 1); iv(&m, bad_status[i]); iv(&m, 0);
        img_seal(&m);
        assert_rejected(victim, m.b, m.n, "session status");
    }
    m = img_start(5, 1);
    iv(&m, 0); iv(&m, 50); iv(&m, 1); iv(&m, 1); iv(&m, PX_REPLY_OK); iv(&m, 0);
    img_seal(&m);
    assert_rejected(victim, m.b, m.n, "session count too big");
    m = img_start(5, 1);
    iv(&m, 0); iv(&m, 1); iv(&m, 1); iv(&m, 0); iv(&m, PX_REPLY_OK); iv(&m, 0);
    img_seal(&m);
    assert_rejected(victim, m.b, m.n, "session seq 0");
    m = img_start(5, 1);
    iv(&m, 0); iv(&m, 1); iv(&m, 1); iv(&m, 1); iv(&m, PX_REPLY_OK); iv(&m, 2);
    img_seal(&m);
    assert_rejected(victim, m.b, m.n, "has_value 2");
    m = img_start(5, 1);
    iv(&m, 0); iv(&m, 0); iv(&m, 0);
    img_seal(&m);
    assert_rejected(victim, m.b, m.n, "trailing byte under the checksum");
    px_kv_free(victim);
}
