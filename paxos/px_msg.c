/* px_msg.c — the binary codec for px_msg (see px_msg.h for the contract).
 *
 * Layout: magic u16 LE, version u8, type u8, then from, to, ballot and the
 * type's body as LEB128 varints; byte strings are a varint length + bytes.
 * The encoding is canonical (minimal varints, fields irrelevant to a case are
 * not written) so decode -> encode reproduces the input byte for byte.
 * One writer serves both encode and encoded_size, so the two cannot disagree. */
#include "px_codec.h"
#include "px_msg.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define PX_HDR_LEN 4u
/* Smallest encoded entry: index, ballot, committed, value length (1 byte each). */
#define PX_ENTRY_MIN_LEN 4u

static void wr_bytes(px_wr *w, px_bytes b)
{
    wr_var(w, b.len);
    wr_raw(w, b.data, b.len);
}

static uint8_t rd_flag(px_rd *r)
{
    return (uint8_t)rd_var(r, 1);
}

static px_bytes rd_bytes(px_rd *r)
{
    px_bytes b = {0};
    uint64_t n = rd_var(r, PX_MSG_MAX_BYTES);
    if (r->bad || n > (uint64_t)(r->end - r->p)) {
        r->bad = true;
        return b;
    }
    b.data = r->p;
    b.len = (uint32_t)n;
    r->p += n;
    return b;
}

static bool bytes_ok(px_bytes b)
{
    return b.len <= PX_MSG_MAX_BYTES && (b.data || !b.len);
}

static bool entries_ok(const px_entry *e, uint32_t n)
{
    if (n > PX_MSG_MAX_ENTRIES || (!e && n))
        return false;
    for (uint32_t i = 0; i < n; i++)
        if (e[i].committed > 1 || !bytes_ok(e[i].value))
            return false;
    return true;
}

/* What encode refuses: anything decode would refuse. */
static bool msg_ok(const px_msg *m)
{
    switch (m->type) {
    case PX_MSG_PREPARE: case PX_MSG_COMMIT: case PX_MSG_SNAP_REQ:
        return true;
    case PX_MSG_PROMISE:
        return m->u.promise.ok <= 1 && entries_ok(m->u.promise.entries, m->u.promise.n_entries);
    case PX_MSG_ACCEPT:
        return entries_ok(&m->u.accept.entry, 1);
    case PX_MSG_ACCEPTED:
        return m->u.accepted.ok <= 1;
    case PX_MSG_COMMIT_REPLY:
        return m->u.commit_reply.ok <= 1;
    case PX_MSG_LEARN:
        return entries_ok(m->u.learn.entries, m->u.learn.n_entries);
    case PX_MSG_SNAP:
        return bytes_ok(m->u.snap.image);
    case PX_MSG_CLIENT_REQ:
        return bytes_ok(m->u.client_req.cmd);
    case PX_MSG_CLIENT_REPLY:
        return m->u.client_reply.status >= PX_REPLY_OK &&
               m->u.client_reply.status <= PX_REPLY_BAD_REQUEST &&
               m->u.client_reply.has_value <= 1 &&
               (!m->u.client_reply.has_value || bytes_ok(m->u.client_reply.value));
    default:
        return false;
    }
}

static void wr_entry(px_wr *w, const px_entry *e)
{
    wr_var(w, e->index);
    wr_var(w, e->ballot);
    wr_var(w, e->committed);
    wr_bytes(w, e->value);
}

static void wr_entries(px_wr *w, const px_entry *e, uint32_t n)
{
    wr_var(w, n);
    for (uint32_t i = 0; i < n; i++)
        wr_entry(w, &e[i]);
}

static void wr_body(px_wr *w, const px_msg *m)
{
    switch (m->type) {
    case PX_MSG_PREPARE: wr_var(w, m->u.prepare.from_index); break;
    case PX_MSG_PROMISE:
        wr_var(w, m->u.promise.ok);
        wr_var(w, m->u.promise.last_executed);
        wr_var(w, m->u.promise.log_base);
        wr_entries(w, m->u.promise.entries, m->u.promise.n_entries);
        break;
    case PX_MSG_ACCEPT:
        wr_entry(w, &m->u.accept.entry);
        wr_var(w, m->u.accept.last_executed);
        wr_var(w, m->u.accept.gle);
        break;
    case PX_MSG_ACCEPTED:
        wr_var(w, m->u.accepted.ok);
        wr_var(w, m->u.accepted.index);
        wr_var(w, m->u.accepted.last_executed);
        break;
    case PX_MSG_COMMIT:
        wr_var(w, m->u.commit.last_executed);
        wr_var(w, m->u.commit.gle);
        break;
    case PX_MSG_COMMIT_REPLY:
        wr_var(w, m->u.commit_reply.ok);
        wr_var(w, m->u.commit_reply.last_executed);
        break;
    case PX_MSG_LEARN: wr_entries(w, m->u.learn.entries, m->u.learn.n_entries); break;
    case PX_MSG_SNAP_REQ: wr_var(w, m->u.snap_req.last_executed); break;
    case PX_MSG_SNAP:
        wr_var(w, m->u.snap.index);
        wr_bytes(w, m->u.snap.image);
        break;
    case PX_MSG_CLIENT_REQ: wr_bytes(w, m->u.client_req.cmd); break;
    case PX_MSG_CLIENT_REPLY:
        wr_var(w, m->u.client_reply.client_id);
        wr_var(w, m->u.client_reply.seq);
        wr_var(w, m->u.client_reply.status);
        wr_var(w, m->u.client_reply.leader);
        wr_var(w, m->u.client_reply.has_value);
        if (m->u.client_reply.has_value) /* canonical: no value field without a value */
            wr_bytes(w, m->u.client_reply.value);
        break;
    default: break;
    }
}

static void wr_msg(px_wr *w, const px_msg *m)
{
    uint8_t hdr[PX_HDR_LEN] = {PX_MSG_MAGIC & 0xff, PX_MSG_MAGIC >> 8, PX_MSG_VERSION, m->type};
    wr_raw(w, hdr, sizeof hdr);
    wr_var(w, m->from);
    wr_var(w, m->to);
    wr_var(w, m->ballot);
    wr_body(w, m);
}

size_t px_msg_encoded_size(const px_msg *m)
{
    px_wr w = {0};
    wr_msg(&w, m);
    return w.len;
}

int px_msg_encode(const px_msg *m, uint8_t *buf, size_t cap, size_t *out_len)
{
    if (!m || !msg_ok(m))
        return -EINVAL;
    size_t need = px_msg_encoded_size(m);
    if (need > cap)
        return -ENOSPC;
    if (!buf)
        return -EINVAL;
    px_wr w = {.buf = buf, .cap = cap};
    wr_msg(&w, m);
    assert(w.len == need);
    if (out_len)
        *out_len = w.len;
    return 0;
}

static void rd_entry(px_rd *r, px_entry *e)
{
    e->index = rd_var(r, UINT64_MAX);
    e->ballot = rd_var(r, UINT64_MAX);
    e->committed = rd_flag(r);
    e->value = rd_bytes(r);
}

/* The count is checked against the bytes left before anything is allocated. */
static int rd_entries(px_rd *r, uint32_t *n_out, px_entry **out)
{
    uint64_t n = rd_var(r, PX_MSG_MAX_ENTRIES);
    if (r->bad || n > (uint64_t)(r->end - r->p) / PX_ENTRY_MIN_LEN)
        return -EBADMSG;
    if (n == 0)
        return 0;
    px_entry *e = calloc(n, sizeof *e);
    if (!e)
        return -ENOMEM;
    *out = e; /* owned by the message from here: release frees it on any error */
    *n_out = (uint32_t)n;
    for (uint64_t i = 0; i < n && !r->bad; i++)
        rd_entry(r, &e[i]);
    return 0;
}

static int rd_body(px_rd *r, px_msg *m)
{
    switch (m->type) {
    case PX_MSG_PREPARE: m->u.prepare.from_index = rd_var(r, UINT64_MAX); return 0;
    case PX_MSG_PROMISE:
        m->u.promise.ok = rd_flag(r);
        m->u.promise.last_executed = rd_var(r, UINT64_MAX);
        m->u.promise.log_base = rd_var(r, UINT64_MAX);
        return rd_entries(r, &m->u.promise.n_entries, &m->u.promise.entries);
    case PX_MSG_ACCEPT:
        rd_entry(r, &m->u.accept.entry);
        m->u.accept.last_executed = rd_var(r, UINT64_MAX);
        m->u.accept.gle = rd_var(r, UINT64_MAX);
        return 0;
    case PX_MSG_ACCEPTED:
        m->u.accepted.ok = rd_flag(r);
        m->u.accepted.index = rd_var(r, UINT64_MAX);
        m->u.accepted.last_executed = rd_var(r, UINT64_MAX);
        return 0;
    case PX_MSG_COMMIT:
        m->u.commit.last_executed = rd_var(r, UINT64_MAX);
        m->u.commit.gle = rd_var(r, UINT64_MAX);
        return 0;
    case PX_MSG_COMMIT_REPLY:
        m->u.commit_reply.ok = rd_flag(r);
        m->u.commit_reply.last_executed = rd_var(r, UINT64_MAX);
        return 0;
    case PX_MSG_LEARN: return rd_entries(r, &m->u.learn.n_entries, &m->u.learn.entries);
    case PX_MSG_SNAP_REQ: m->u.snap_req.last_executed = rd_var(r, UINT64_MAX); return 0;
    case PX_MSG_SNAP:
        m->u.snap.index = rd_var(r, UINT64_MAX);
        m->u.snap.image = rd_bytes(r);
        return 0;
    case PX_MSG_CLIENT_REQ: m->u.client_req.cmd = rd_bytes(r); return 0;
    case PX_MSG_CLIENT_REPLY:
        m->u.client_reply.client_id = rd_var(r, UINT64_MAX);
        m->u.client_reply.seq = rd_var(r, UINT64_MAX);
        m->u.client_reply.status = (uint8_t)rd_var(r, PX_REPLY_BAD_REQUEST);
        if (m->u.client_reply.status < PX_REPLY_OK)
            r->bad = true;
        m->u.client_reply.leader = (uint16_t)rd_var(r, 0xffff);
        m->u.client_reply.has_value = rd_flag(r);
        if (m->u.client_reply.has_value)
            m->u.client_reply.value = rd_bytes(r);
        return 0;
    default: return -EBADMSG;
    }
}

int px_msg_decode(const uint8_t *buf, size_t len, px_msg *m)
{
    if (!m || (!buf && len))
        return -EINVAL;
    memset(m, 0, sizeof *m);
    if (len < PX_HDR_LEN || (buf[0] | buf[1] << 8) != PX_MSG_MAGIC)
        return -EBADMSG;
    if (buf[2] != PX_MSG_VERSION)
        return -EPROTO;
    if (buf[3] < PX_MSG_PREPARE || buf[3] > PX_MSG_TYPE_MAX)
        return -EBADMSG;
    m->type = buf[3];
    px_rd r = {.p = buf + PX_HDR_LEN, .end = buf + len};
    m->from = (uint16_t)rd_var(&r, 0xffff);
    m->to = (uint16_t)rd_var(&r, 0xffff);
    m->ballot = rd_var(&r, UINT64_MAX);
    int rc = r.bad ? -EBADMSG : rd_body(&r, m);
    if (rc == 0 && (r.bad || r.p != r.end))
        rc = -EBADMSG;
    if (rc < 0) {
        px_msg_release(m);
        memset(m, 0, sizeof *m);
    }
    return rc;
}

void px_msg_release(px_msg *m)
{
    if (!m)
        return;
    if (m->type == PX_MSG_PROMISE) {
        free(m->u.promise.entries);
        m->u.promise.entries = NULL;
        m->u.promise.n_entries = 0;
    } else if (m->type == PX_MSG_LEARN) {
        free(m->u.learn.entries);
        m->u.learn.entries = NULL;
        m->u.learn.n_entries = 0;
    }
}

const char *px_msg_type_name(int type)
{
    static const char *const names[] = {
        [PX_MSG_PREPARE] = "prepare",   [PX_MSG_PROMISE] = "promise",
        [PX_MSG_ACCEPT] = "accept",     [PX_MSG_ACCEPTED] = "accepted",
        [PX_MSG_COMMIT] = "commit",     [PX_MSG_COMMIT_REPLY] = "commit_reply",
        [PX_MSG_LEARN] = "learn",       [PX_MSG_SNAP_REQ] = "snap_req",
        [PX_MSG_SNAP] = "snap",         [PX_MSG_CLIENT_REQ] = "client_req",
        [PX_MSG_CLIENT_REPLY] = "client_reply",
    };
    if (type < PX_MSG_PREPARE || type > PX_MSG_TYPE_MAX)
        return "unknown";
    return names[type];
}
