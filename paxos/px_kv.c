/* px_kv.c — commands, batches and the replicated KV state machine (px_kv.h).
 *
 * Encodings follow px_msg.c: minimal LEB128 varints, length-prefixed bytes,
 * canonical (a field irrelevant to the op is not written), every length checked
 * against the input before it is used or allocated for.
 *
 * The hash table is written here rather than taken from a library: Debian's C
 * hash maps (glib's GHashTable, hsearch(3), uthash) bring a runtime dependency,
 * global state or abort-on-OOM into a core that must stay pure, deterministic
 * (iteration order = insertion history) and report allocation failure. */
#include "px_codec.h"
#include "px_kv.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define PX_BATCH_RESERVE 5u  /* room for the count (a u32 varint) in front of a batch */
#define PX_IMAGE_VERSION 1u
#define PX_IMAGE_HDR_LEN 3u  /* 'R' 'K' version */
#define PX_IMAGE_SUM_LEN 8u  /* trailing checksum: a flipped bit must not install */
#define PX_IMAGE_SEED 0x696d616765ULL
#define PX_TAB_MIN 16u

/* ---- codec helpers beyond px_codec.h ---- */

static void wr_bytes(px_wr *w, const uint8_t *p, size_t n)
{
    wr_var(w, n);
    wr_raw(w, p, n);
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void wr_le64(px_wr *w, uint64_t v)
{
    uint8_t tmp[8];
    put_le64(tmp, v);
    wr_raw(w, tmp, sizeof tmp);
}

static px_bytes rd_bytes(px_rd *r, uint32_t max)
{
    px_bytes b = {0};
    uint64_t n = rd_var(r, max);
    if (r->bad || n > (uint64_t)(r->end - r->p)) {
        r->bad = true;
        return b;
    }
    b.data = r->p;
    b.len = (uint32_t)n;
    r->p += n;
    return b;
}

static uint64_t rd_le64(px_rd *r)
{
    if (r->bad || r->end - r->p < 8) {
        r->bad = true;
        return 0;
    }
    r->p += 8;
    return get_le64(r->p - 8);
}

/* ---- hashing ---- */

static uint64_t fnv1a(uint64_t h, const void *data, size_t len)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

/* splitmix64's finalizer: FNV's low bits are weak, the table masks them. */
static uint64_t hash_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

#define PX_FNV_OFFSET 0xcbf29ce484222325ULL

uint64_t px_hash64(uint64_t seed, const void *data, size_t len)
{
    assert(data || !len);
    return hash_mix(fnv1a(PX_FNV_OFFSET ^ seed, data, len));
}

/* digest' = px_hash64(digest, index as u64 LE || batch bytes) */
static uint64_t digest_step(uint64_t digest, uint64_t index, const uint8_t *batch, size_t len)
{
    uint8_t idx[8];
    put_le64(idx, index);
    return hash_mix(fnv1a(fnv1a(PX_FNV_OFFSET ^ digest, idx, sizeof idx), batch, len));
}

/* ---- commands ---- */

static void wr_cmd(px_wr *w, const px_cmd *c)
{
    wr_var(w, c->op);
    wr_var(w, c->client_id);
    wr_var(w, c->seq);
    wr_bytes(w, c->key.data, c->key.len);
    if (c->op == PX_OP_CAS) {
        wr_var(w, c->expected_absent);
        if (!c->expected_absent)
            wr_bytes(w, c->expected.data, c->expected.len);
    }
    if (c->op == PX_OP_PUT || c->op == PX_OP_APPEND || c->op == PX_OP_CAS)
        wr_bytes(w, c->value.data, c->value.len);
}

static bool bytes_ok(px_bytes b, uint32_t max)
{
    return b.len <= max && (b.data || !b.len);
}

static bool cmd_ok(const px_cmd *c)
{
    return c->op >= PX_OP_GET && c->op <= PX_OP_MAX && c->seq >= 1 &&
           c->expected_absent <= 1 && bytes_ok(c->key, PX_KV_MAX_KEY) &&
           bytes_ok(c->value, PX_KV_MAX_VALUE) && bytes_ok(c->expected, PX_KV_MAX_VALUE);
}

size_t px_cmd_encoded_size(const px_cmd *c)
{
    px_wr w = {0};
    wr_cmd(&w, c);
    return w.len;
}

int px_cmd_encode(const px_cmd *c, uint8_t *buf, size_t cap, size_t *out_len)
{
    if (!c || !cmd_ok(c))
        return -EINVAL;
    size_t need = px_cmd_encoded_size(c);
    if (need > cap)
        return -ENOSPC;
    if (!buf)
        return -EINVAL;
    px_wr w = {.buf = buf, .cap = cap};
    wr_cmd(&w, c);
    assert(w.len == need);
    if (out_len)
        *out_len = w.len;
    return 0;
}

int px_cmd_decode(const uint8_t *buf, size_t len, px_cmd *c)
{
    if (!c || (!buf && len))
        return -EINVAL;
    memset(c, 0, sizeof *c);
    if (!len)
        return -EBADMSG;  /* also keeps NULL + 0 out of the reader */
    px_rd r = {.p = buf, .end = buf + len};
    c->op = (uint8_t)rd_var(&r, PX_OP_MAX);
    c->client_id = rd_var(&r, UINT64_MAX);
    c->seq = rd_var(&r, UINT64_MAX);
    c->key = rd_bytes(&r, PX_KV_MAX_KEY);
    if (c->op == PX_OP_CAS) {
        c->expected_absent = (uint8_t)rd_var(&r, 1);
        if (!c->expected_absent)
            c->expected = rd_bytes(&r, PX_KV_MAX_VALUE);
    }
    if (c->op == PX_OP_PUT || c->op == PX_OP_APPEND || c->op == PX_OP_CAS)
        c->value = rd_bytes(&r, PX_KV_MAX_VALUE);
    if (r.bad || r.p != r.end || c->op < PX_OP_GET || c->seq < 1) {
        memset(c, 0, sizeof *c);
        return -EBADMSG;
    }
    return 0;
}

/* ---- batches ---- */

/* A zero-length buffer counts as the empty batch: a no-op however it is spelled. */
int px_batch_iter_init(px_batch_iter *it, const uint8_t *buf, size_t len)
{
    if (!it || (!buf && len))
        return -EINVAL;
    if (!len) {
        *it = (px_batch_iter){0};
        return 0;
    }
    px_rd r = {.p = buf, .end = buf + len};
    uint64_t n = rd_var(&r, UINT64_MAX);
    /* every command costs at least its length byte */
    if (r.bad || n > (uint64_t)(r.end - r.p))
        return -EBADMSG;
    *it = (px_batch_iter){.p = r.p, .end = r.end, .remaining = n};
    return 0;
}

/* On error the iterator does not move, so it keeps reporting the error. */
int px_batch_iter_next(px_batch_iter *it, px_bytes *cmd)
{
    if (it->remaining == 0)
        return it->p == it->end ? 0 : -EBADMSG;
    px_rd r = {.p = it->p, .end = it->end};
    px_bytes b = rd_bytes(&r, PX_MSG_MAX_BYTES);
    if (r.bad)
        return -EBADMSG;
    it->p = r.p;
    it->remaining--;
    *cmd = b;
    return 1;
}

static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >>= 7)
        n++;
    return n;
}

/* Commands go after PX_BATCH_RESERVE bytes; finish writes the count in front.
 * A batch never grows past PX_MSG_MAX_BYTES (-EMSGSIZE): it must fit an entry. */
int px_batch_add(px_batch_builder *b, const uint8_t *cmd, size_t len)
{
    if (!b || (!cmd && len))
        return -EINVAL;
    if (b->count == UINT32_MAX)
        return -EOVERFLOW;
    size_t base = b->len ? b->len : PX_BATCH_RESERVE;
    if (len > PX_MSG_MAX_BYTES || base + varint_len(len) + len > PX_MSG_MAX_BYTES)
        return -EMSGSIZE;
    size_t need = base + varint_len(len) + len;
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        cap = cap < need ? need : cap;
        uint8_t *nb = realloc(b->buf, cap);
        if (!nb)
            return -ENOMEM;
        b->buf = nb;
        b->cap = cap;
    }
    px_wr w = {.buf = b->buf, .len = base, .cap = b->cap};
    wr_bytes(&w, cmd, len);
    assert(w.len == need);
    b->len = w.len;
    b->count++;
    return 0;
}

int px_batch_finish(px_batch_builder *b, uint8_t **out, size_t *out_len)
{
    if (!b || !out || !out_len)
        return -EINVAL;
    if (b->count == 0) {
        uint8_t *e = calloc(1, 1);  /* count 0: the no-op */
        if (!e)
            return -ENOMEM;
        px_batch_builder_reset(b);
        *out = e;
        *out_len = 1;
        return 0;
    }
    assert(b->buf && b->len >= PX_BATCH_RESERVE);
    uint8_t hdr[PX_VARINT_MAX];
    px_wr w = {.buf = hdr, .cap = sizeof hdr};
    wr_var(&w, b->count);
    assert(w.len <= PX_BATCH_RESERVE);
    size_t start = PX_BATCH_RESERVE - w.len;
    memcpy(b->buf + start, hdr, w.len);
    memmove(b->buf, b->buf + start, b->len - start);
    *out = b->buf;
    *out_len = b->len - start;
    *b = (px_batch_builder){0};
    return 0;
}

void px_batch_builder_reset(px_batch_builder *b)
{
    if (!b)
        return;
    free(b->buf);
    *b = (px_batch_builder){0};
}

/* ---- the hash table (chained; one node type serves keys and sessions) ---- */

typedef struct kv_node {
    struct kv_node *next;
    uint64_t hash;
    uint8_t *val;       /* owned; NULL when vlen == 0 */
    uint32_t vlen, klen;
    uint64_t seq;       /* sessions: last executed seq */
    uint8_t status;     /* sessions: its cached reply */
    uint8_t has_value;
    uint8_t key[];      /* sessions: client id, u64 LE */
} kv_node;

typedef struct kv_table {
    kv_node **slot;     /* power-of-two count */
    size_t nslot, count;
} kv_table;

struct px_kv {
    kv_table data, sess;
    uint64_t applied, digest;
    bool broken;        /* an allocation failed mid-batch: state is no longer the log's */
};

static bool bytes_eq(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static kv_node *tab_get(const kv_table *t, const uint8_t *key, size_t klen, uint64_t h)
{
    if (!t->nslot)
        return NULL;
    kv_node *n = t->slot[h & (t->nslot - 1)];
    while (n && !(n->hash == h && bytes_eq(n->key, n->klen, key, klen)))
        n = n->next;
    return n;
}

/* Doubling keeps chains short; when it fails the table just runs fuller. */
static void tab_grow(kv_table *t)
{
    size_t ns = t->nslot ? t->nslot * 2 : PX_TAB_MIN;
    kv_node **s = calloc(ns, sizeof *s);
    if (!s)
        return;
    for (size_t i = 0; i < t->nslot; i++) {
        for (kv_node *n = t->slot[i], *next; n; n = next) {
            next = n->next;
            n->next = s[n->hash & (ns - 1)];
            s[n->hash & (ns - 1)] = n;
        }
    }
    free(t->slot);
    t->slot = s;
    t->nslot = ns;
}

/* Insert a key known to be absent, with no value. NULL on allocation failure. */
static kv_node *tab_add(kv_table *t, const uint8_t *key, size_t klen, uint64_t h)
{
    assert(!tab_get(t, key, klen, h));
    if (t->count >= t->nslot)
        tab_grow(t);
    if (!t->nslot)
        return NULL;
    kv_node *n = calloc(1, sizeof *n + klen);
    if (!n)
        return NULL;
    if (klen)
        memcpy(n->key, key, klen);
    n->klen = (uint32_t)klen;
    n->hash = h;
    n->next = t->slot[h & (t->nslot - 1)];
    t->slot[h & (t->nslot - 1)] = n;
    t->count++;
    return n;
}

static void tab_del(kv_table *t, kv_node *victim)
{
    kv_node **l = &t->slot[victim->hash & (t->nslot - 1)];
    while (*l != victim)
        l = &(*l)->next;
    *l = victim->next;
    free(victim->val);
    free(victim);
    t->count--;
}

static void tab_clear(kv_table *t)
{
    for (size_t i = 0; i < t->nslot; i++) {
        for (kv_node *n = t->slot[i], *next; n; n = next) {
            next = n->next;
            free(n->val);
            free(n);
        }
    }
    free(t->slot);
    *t = (kv_table){0};
}

/* Replace n's value with a copy of (p, len). */
static int node_set_val(kv_node *n, const uint8_t *p, size_t len)
{
    uint8_t *v = NULL;
    if (len && !(v = malloc(len)))
        return -ENOMEM;
    if (len)
        memcpy(v, p, len);
    free(n->val);
    n->val = v;
    n->vlen = (uint32_t)len;
    return 0;
}

/* ---- the state machine ---- */

px_kv *px_kv_new(void)
{
    return calloc(1, sizeof(px_kv));
}

void px_kv_free(px_kv *kv)
{
    if (!kv)
        return;
    tab_clear(&kv->data);
    tab_clear(&kv->sess);
    free(kv);
}

uint64_t px_kv_applied_index(const px_kv *kv) { return kv->applied; }
bool px_kv_broken(const px_kv *kv) { return kv->broken; }
uint64_t px_kv_digest(const px_kv *kv) { return kv->digest; }
size_t px_kv_key_count(const px_kv *kv) { return kv->data.count; }

static kv_node *kv_find(const px_kv *kv, const uint8_t *key, size_t klen)
{
    return tab_get(&kv->data, key, klen, px_hash64(0, key, klen));
}

bool px_kv_lookup(const px_kv *kv, const uint8_t *key, size_t key_len, px_bytes *v)
{
    kv_node *n = kv_find(kv, key, key_len);
    if (n && v)
        *v = (px_bytes){n->val, n->vlen};
    return n != NULL;
}

static int kv_put(px_kv *kv, px_bytes key, const uint8_t *val, size_t vlen)
{
    uint64_t h = px_hash64(0, key.data, key.len);
    kv_node *n = tab_get(&kv->data, key.data, key.len, h);
    bool fresh = !n;
    if (fresh && !(n = tab_add(&kv->data, key.data, key.len, h)))
        return -ENOMEM;
    int rc = node_set_val(n, val, vlen);
    if (rc < 0 && fresh)
        tab_del(&kv->data, n);
    return rc;
}

/* Append past PX_KV_MAX_VALUE fails (no effect): values stay bounded. */
static int kv_append(px_kv *kv, const px_cmd *c, px_result *r)
{
    kv_node *n = kv_find(kv, c->key.data, c->key.len);
    if (!n)
        return kv_put(kv, c->key, c->value.data, c->value.len);
    if ((size_t)n->vlen + c->value.len > PX_KV_MAX_VALUE) {
        r->status = PX_REPLY_FAIL;
        return 0;
    }
    if (!c->value.len)
        return 0;
    uint8_t *v = realloc(n->val, (size_t)n->vlen + c->value.len);
    if (!v)
        return -ENOMEM;
    memcpy(v + n->vlen, c->value.data, c->value.len);
    n->val = v;
    n->vlen += c->value.len;
    return 0;
}

/* Execute one command's operation; r->status defaults to OK. */
static int kv_op(px_kv *kv, const px_cmd *c, px_result *r)
{
    kv_node *n;
    r->status = PX_REPLY_OK;
    switch (c->op) {
    case PX_OP_GET:
        if ((n = kv_find(kv, c->key.data, c->key.len))) {
            r->has_value = 1;
            r->value = (px_bytes){n->val, n->vlen};
        }
        return 0;
    case PX_OP_PUT:
        return kv_put(kv, c->key, c->value.data, c->value.len);
    case PX_OP_DEL:
        if ((n = kv_find(kv, c->key.data, c->key.len)))
            tab_del(&kv->data, n);
        return 0;
    case PX_OP_APPEND:
        return kv_append(kv, c, r);
    case PX_OP_CAS:
        n = kv_find(kv, c->key.data, c->key.len);
        if (c->expected_absent ? n != NULL
                               : !n || !bytes_eq(n->val, n->vlen, c->expected.data, c->expected.len)) {
            r->status = PX_REPLY_FAIL;
            return 0;
        }
        return kv_put(kv, c->key, c->value.data, c->value.len);
    default:
        assert(!"px_cmd_decode let through a bad op");
        return -EINVAL;
    }
}

static void report(px_result_fn fn, void *ctx, const px_result *r)
{
    if (fn)
        fn(ctx, r);
}

/* Sessions: seq below the last is stale (the client has moved on: silence),
 * equal is a retry (answer from the cache), above is new (execute, cache). */
static int kv_exec(px_kv *kv, const px_cmd *c, px_result_fn fn, void *ctx)
{
    uint8_t id[8];
    put_le64(id, c->client_id);
    uint64_t h = px_hash64(0, id, sizeof id);
    kv_node *s = tab_get(&kv->sess, id, sizeof id, h);
    px_result r = {.client_id = c->client_id, .seq = c->seq};
    if (s && c->seq < s->seq)
        return 0;
    if (s && c->seq == s->seq) {
        r.status = s->status;
        r.has_value = s->has_value;
        r.value = (px_bytes){s->val, s->vlen};
        r.duplicate = true;
        report(fn, ctx, &r);
        return 0;
    }
    if (!s && !(s = tab_add(&kv->sess, id, sizeof id, h)))
        return -ENOMEM;
    int rc = kv_op(kv, c, &r);
    if (rc == 0)
        rc = node_set_val(s, r.has_value ? r.value.data : NULL, r.has_value ? r.value.len : 0);
    if (rc < 0)
        return rc;
    s->seq = c->seq;
    s->status = r.status;
    s->has_value = r.has_value;
    r.value = (px_bytes){s->val, s->vlen};
    report(fn, ctx, &r);
    return 0;
}

/* Framing check of the whole batch, so a malformed one applies nothing. */
static int batch_check(const uint8_t *batch, size_t len)
{
    px_batch_iter it;
    px_bytes b;
    int rc = px_batch_iter_init(&it, batch, len);
    while (rc == 0 && (rc = px_batch_iter_next(&it, &b)) == 1)
        rc = 0;
    return rc;
}

int px_kv_apply(px_kv *kv, uint64_t index, const uint8_t *batch, size_t len,
                px_result_fn on_result, void *ctx)
{
    if (!kv || (!batch && len) || index == 0 || index != kv->applied + 1)
        return -EINVAL;
    if (kv->broken)
        return -ENOMEM;
    int rc = batch_check(batch, len);
    kv->digest = digest_step(kv->digest, index, batch, len);
    kv->applied = index;
    if (rc < 0)
        return -EBADMSG;
    px_batch_iter it;
    px_bytes b;
    px_cmd c;
    rc = px_batch_iter_init(&it, batch, len);
    assert(rc == 0);
    while ((rc = px_batch_iter_next(&it, &b)) == 1) {
        if (px_cmd_decode(b.data, b.len, &c) < 0)
            continue;  /* every replica skips the same bytes alike */
        if ((rc = kv_exec(kv, &c, on_result, ctx)) < 0) {
            kv->broken = true;  /* only an image install can repair it */
            return rc;
        }
    }
    assert(rc == 0);
    return 0;
}

/* ---- image: 'R' 'K' version, applied, digest, keys, sessions, checksum ---- */

static void wr_image(px_wr *w, const px_kv *kv)
{
    const uint8_t hdr[PX_IMAGE_HDR_LEN] = {'R', 'K', PX_IMAGE_VERSION};
    wr_raw(w, hdr, sizeof hdr);
    wr_var(w, kv->applied);
    wr_le64(w, kv->digest);
    wr_var(w, kv->data.count);
    for (size_t i = 0; i < kv->data.nslot; i++) {
        for (const kv_node *n = kv->data.slot[i]; n; n = n->next) {
            wr_bytes(w, n->key, n->klen);
            wr_bytes(w, n->val, n->vlen);
        }
    }
    wr_var(w, kv->sess.count);
    for (size_t i = 0; i < kv->sess.nslot; i++) {
        for (const kv_node *n = kv->sess.slot[i]; n; n = n->next) {
            wr_var(w, get_le64(n->key));
            wr_var(w, n->seq);
            wr_var(w, n->status);
            wr_var(w, n->has_value);
            if (n->has_value)
                wr_bytes(w, n->val, n->vlen);
        }
    }
}

int px_kv_image_encode(const px_kv *kv, uint8_t **out, size_t *out_len)
{
    if (!kv || !out || !out_len)
        return -EINVAL;
    px_wr w = {0};
    wr_image(&w, kv);
    size_t need = w.len + PX_IMAGE_SUM_LEN;
    uint8_t *buf = malloc(need);
    if (!buf)
        return -ENOMEM;
    w = (px_wr){.buf = buf, .cap = need};
    wr_image(&w, kv);
    wr_le64(&w, px_hash64(PX_IMAGE_SEED, buf, w.len));
    assert(w.len == need);
    *out = buf;
    *out_len = need;
    return 0;
}

static int img_keys(px_rd *r, px_kv *kv)
{
    uint64_t n = rd_var(r, UINT64_MAX);
    if (r->bad || n > (uint64_t)(r->end - r->p) / 2)  /* >= 2 length bytes each */
        return -EBADMSG;
    for (uint64_t i = 0; i < n; i++) {
        px_bytes k = rd_bytes(r, PX_KV_MAX_KEY);
        px_bytes v = rd_bytes(r, PX_KV_MAX_VALUE);
        if (r->bad || kv_find(kv, k.data, k.len))
            return -EBADMSG;
        if (kv_put(kv, k, v.data, v.len) < 0)
            return -ENOMEM;
    }
    return 0;
}

static int img_sessions(px_rd *r, px_kv *kv)
{
    uint64_t n = rd_var(r, UINT64_MAX);
    if (r->bad || n > (uint64_t)(r->end - r->p) / 4)  /* id, seq, status, flag */
        return -EBADMSG;
    for (uint64_t i = 0; i < n; i++) {
        uint8_t id[8];
        put_le64(id, rd_var(r, UINT64_MAX));
        uint64_t seq = rd_var(r, UINT64_MAX);
        uint8_t status = (uint8_t)rd_var(r, PX_REPLY_FAIL);
        uint8_t has_value = (uint8_t)rd_var(r, 1);
        px_bytes v = has_value ? rd_bytes(r, PX_KV_MAX_VALUE) : (px_bytes){0};
        uint64_t h = px_hash64(0, id, sizeof id);
        if (r->bad || seq < 1 || status < PX_REPLY_OK || tab_get(&kv->sess, id, sizeof id, h))
            return -EBADMSG;
        kv_node *s = tab_add(&kv->sess, id, sizeof id, h);
        if (!s || node_set_val(s, v.data, v.len) < 0)
            return -ENOMEM;
        s->seq = seq;
        s->status = status;
        s->has_value = has_value;
    }
    return 0;
}

/* Parse into a fresh state and swap only when all of it checked out. */
int px_kv_image_install(px_kv *kv, const uint8_t *buf, size_t len)
{
    if (!kv || (!buf && len))
        return -EINVAL;
    if (len < PX_IMAGE_HDR_LEN + PX_IMAGE_SUM_LEN || buf[0] != 'R' || buf[1] != 'K' ||
        buf[2] != PX_IMAGE_VERSION)
        return -EBADMSG;
    size_t body = len - PX_IMAGE_SUM_LEN;
    if (px_hash64(PX_IMAGE_SEED, buf, body) != get_le64(buf + body))
        return -EBADMSG;
    px_kv fresh = {0};
    px_rd r = {.p = buf + PX_IMAGE_HDR_LEN, .end = buf + body};
    fresh.applied = rd_var(&r, UINT64_MAX);
    fresh.digest = rd_le64(&r);
    int rc = r.bad ? -EBADMSG : img_keys(&r, &fresh);
    if (rc == 0)
        rc = img_sessions(&r, &fresh);
    if (rc == 0 && (r.bad || r.p != r.end))
        rc = -EBADMSG;
    if (rc < 0) {
        tab_clear(&fresh.data);
        tab_clear(&fresh.sess);
        return rc;
    }
    tab_clear(&kv->data);
    tab_clear(&kv->sess);
    *kv = fresh;
    return 0;
}
