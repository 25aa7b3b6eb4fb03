/* px_storage.c — the acceptor's write-ahead storage: a file WAL for real runs and
 * an in-memory model of one for the simulator.
 *
 * Both recover through the same px_level (newest promise, trim point, newest
 * accepted entry per index above it), so the file replay and the simulator agree
 * on what "the state" is.
 *
 * File record: [u32 LE payload length][u32 LE crc32c(type, payload)][u8 type][payload]
 *   PROMISE payload: ballot u64
 *   ACCEPT  payload: index u64, ballot u64, len u32, value[len]
 *   TRIM    payload: upto u64
 * All integers little-endian.
 *
 * Checkpoint file (path.ckpt, path.ckpt.prev):
 *   "RFCK" | u32 crc32c(rest) | u64 index | u64 image length | image
 * written whole to path.ckpt.tmp, then path.ckpt -> path.ckpt.prev and
 * path.ckpt.tmp -> path.ckpt (both renames atomic). A crash between the two
 * renames leaves the newest complete checkpoint in .prev, and load() takes the
 * highest intact index of the two, so there is always one to fall back on. */
#include "px_storage.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { PX_REC_PROMISE = 1, PX_REC_ACCEPT = 2, PX_REC_TRIM = 3 };

#define PX_REC_HEADER 9u                      /* length + crc + type */
#define PX_ACCEPT_FIXED 20u                   /* index + ballot + len */
#define PX_VALUE_MAX (64u << 20)              /* a larger value is a bug, not a command */
#define PX_WAL_BUF_MAX (1u << 20)             /* write early past this: memory stays bounded */
#define PX_WAL_COMPACT_MIN ((uint64_t)1 << 20) /* below this a rewrite is not worth it */
#define PX_CKPT_HEADER 24u                    /* magic + crc + index + length */
#define PX_CKPT_MAX ((size_t)1 << 30)         /* a larger image is a bug, not a KV store */

static const uint8_t ckpt_magic[4] = { 'R', 'F', 'C', 'K' };

/* ------------------------------------------------------------------ policy */

int px_durability_parse(const char *s, px_durability *out)
{
    static const px_durability all[] = { PX_DURABILITY_FSYNC, PX_DURABILITY_WRITE, PX_DURABILITY_OFF };
    for (size_t i = 0; s && i < sizeof all / sizeof all[0]; i++) {
        if (strcmp(s, px_durability_name(all[i])) == 0) {
            *out = all[i];
            return 0;
        }
    }
    return -EINVAL;
}

const char *px_durability_name(px_durability d)
{
    switch (d) {
    case PX_DURABILITY_FSYNC: return "fsync";
    case PX_DURABILITY_WRITE: return "write";
    case PX_DURABILITY_OFF: return "off";
    }
    return "?";
}

void px_storage_state_release(px_storage_state *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_entries; i++)
        free(s->entries[i].value);
    free(s->entries);
    free(s->ckpt_image);
    memset(s, 0, sizeof *s);
}

/* ------------------------------------------------------------------ checkpoints
 * One image of the state machine at an index; image == NULL: none. */

typedef struct px_ckpt {
    uint64_t index;
    uint8_t *image;
    size_t len;
} px_ckpt;

static void ckpt_clear(px_ckpt *c)
{
    free(c->image);
    memset(c, 0, sizeof *c);
}

/* Move src over dst when it is at least as new (a later one wins a tie). */
static void ckpt_take(px_ckpt *dst, px_ckpt *src)
{
    if (!src->image)
        return;
    if (!dst->image || src->index >= dst->index) {
        ckpt_clear(dst);
        *dst = *src;
    } else {
        free(src->image);
    }
    memset(src, 0, sizeof *src);
}

static int ckpt_check_args(const uint8_t *image, size_t len)
{
    return (!image || len == 0 || len > PX_CKPT_MAX) ? -EINVAL : 0;
}

/* ------------------------------------------------------------------ level
 * One image of acceptor state: entries sorted by index, all above trimmed, each
 * value owned. Applying records in order gives "later wins on equal ballot". */

typedef struct px_level {
    uint64_t promised, trimmed;
    px_stored_entry *e;
    size_t n, cap;
} px_level;

static void level_clear(px_level *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->e[i].value);
    l->n = 0;
    l->promised = l->trimmed = 0;
}

static void level_release(px_level *l)
{
    level_clear(l);
    free(l->e);
    memset(l, 0, sizeof *l);
}

/* First position whose index is > x. */
static size_t level_first_above(const px_level *l, uint64_t x)
{
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (l->e[mid].index <= x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int level_reserve(px_level *l, size_t need)
{
    if (need <= l->cap)
        return 0;
    size_t cap = l->cap ? l->cap : 16;
    while (cap < need)
        cap *= 2;
    px_stored_entry *e = realloc(l->e, cap * sizeof *e);
    if (!e)
        return -ENOMEM;
    l->e = e;
    l->cap = cap;
    return 0;
}

/* Takes ownership of value (freed if the record is dead on arrival). */
static int level_accept(px_level *l, uint64_t index, uint64_t ballot, uint8_t *value, uint32_t len)
{
    if (index <= l->trimmed) {
        free(value);
        return 0;
    }
    /* Fast path: indices mostly arrive in order. */
    size_t at = (l->n == 0 || l->e[l->n - 1].index < index) ? l->n : level_first_above(l, index - 1);
    if (at < l->n && l->e[at].index == index) {
        if (ballot < l->e[at].ballot) {
            free(value);
            return 0;
        }
        free(l->e[at].value);
        l->e[at] = (px_stored_entry){ .index = index, .ballot = ballot, .value = value, .len = len };
        return 0;
    }
    int rc = level_reserve(l, l->n + 1);
    if (rc) {
        free(value);
        return rc;
    }
    memmove(&l->e[at + 1], &l->e[at], (l->n - at) * sizeof *l->e);
    l->e[at] = (px_stored_entry){ .index = index, .ballot = ballot, .value = value, .len = len };
    l->n++;
    return 0;
}

static void level_promise(px_level *l, uint64_t ballot)
{
    if (ballot > l->promised)
        l->promised = ballot;
}

static void level_trim(px_level *l, uint64_t upto)
{
    if (upto <= l->trimmed)
        return;
    l->trimmed = upto;
    size_t k = level_first_above(l, upto);
    if (k == 0)
        return;
    for (size_t i = 0; i < k; i++)
        free(l->e[i].value);
    memmove(l->e, l->e + k, (l->n - k) * sizeof *l->e);
    l->n -= k;
}

/* Move src's records over dst (src is the later one) and empty src. */
static int level_merge(px_level *dst, px_level *src)
{
    int rc = level_reserve(dst, dst->n + src->n); /* after this nothing can fail */
    if (rc)
        return rc;
    level_promise(dst, src->promised);
    level_trim(dst, src->trimmed);
    for (size_t i = 0; i < src->n; i++) {
        px_stored_entry *e = &src->e[i];
        rc = level_accept(dst, e->index, e->ballot, e->value, e->len);
        assert(rc == 0);
    }
    src->n = 0;
    src->promised = src->trimmed = 0;
    return 0;
}

static uint8_t *value_dup(const uint8_t *v, uint32_t len)
{
    if (len == 0)
        return NULL;
    uint8_t *p = malloc(len);
    if (p)
        memcpy(p, v, len);
    return p;
}

/* Copy src over dst (values duplicated). */
static int level_copy_over(px_level *dst, const px_level *src)
{
    level_promise(dst, src->promised);
    level_trim(dst, src->trimmed);
    for (size_t i = 0; i < src->n; i++) {
        const px_stored_entry *e = &src->e[i];
        uint8_t *v = value_dup(e->value, e->len);
        if (e->len && !v)
            return -ENOMEM;
        int rc = level_accept(dst, e->index, e->ballot, v, e->len);
        if (rc)
            return rc;
    }
    return 0;
}

/* Hand the level's entries to out; the level is left empty. */
static void level_export(px_level *l, px_storage_state *out)
{
    out->promised = l->promised;
    out->trimmed = l->trimmed;
    out->n_entries = l->n;
    out->entries = l->n ? l->e : NULL;
    for (size_t i = 0; i < l->n; i++)
        assert(l->e[i].index > (i ? l->e[i - 1].index : l->trimmed));
    if (!l->n)
        free(l->e);
    memset(l, 0, sizeof *l);
}

static size_t level_records(const px_level *l)
{
    return l->n + (l->promised != 0) + (l->trimmed != 0);
}

/* ------------------------------------------------------------------ crc32c
 * CRC32C (Castagnoli, reflected 0x82F63B78), table built once: a dozen lines
 * instead of a dependency, and the SSE4.2 instruction is not on every CPU. */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[i] = c;
    }
}

/* Continue crc over more bytes: crc32c_extend(crc32c(a), b) == crc32c(a || b). */
static uint32_t crc32c_extend(uint32_t crc, const uint8_t *p, size_t n)
{
    pthread_once(&crc_once, crc_init);
    uint32_t c = ~crc;
    while (n--)
        c = crc_table[(c ^ *p++) & 0xff] ^ (c >> 8);
    return ~c;
}

static uint32_t crc32c(const uint8_t *p, size_t n)
{
    return crc32c_extend(0, p, n);
}

/* ------------------------------------------------------------------ encoding */

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

typedef struct px_buf {
    uint8_t *p;
    size_t n, cap;
} px_buf;

/* Append one framed record: fixed part then value. */
static int buf_record(px_buf *b, uint8_t type, const uint8_t *fixed, uint32_t nfixed,
                      const uint8_t *value, uint32_t len)
{
    uint32_t plen = nfixed + len;
    size_t need = b->n + PX_REC_HEADER + plen;
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < need)
            cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p)
            return -ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    uint8_t *r = b->p + b->n;
    put_u32(r, plen);
    r[8] = type;
    memcpy(r + PX_REC_HEADER, fixed, nfixed);
    if (len)
        memcpy(r + PX_REC_HEADER + nfixed, value, len);
    put_u32(r + 4, crc32c(r + 8, 1 + (size_t)plen));
    b->n = need;
    return 0;
}

static int buf_u64(px_buf *b, uint8_t type, uint64_t v)
{
    uint8_t fixed[8];
    put_u64(fixed, v);
    return buf_record(b, type, fixed, sizeof fixed, NULL, 0);
}

static int buf_accept(px_buf *b, uint64_t index, uint64_t ballot, const uint8_t *value, uint32_t len)
{
    uint8_t fixed[PX_ACCEPT_FIXED];
    put_u64(fixed, index);
    put_u64(fixed + 8, ballot);
    put_u32(fixed + 16, len);
    return buf_record(b, PX_REC_ACCEPT, fixed, sizeof fixed, value, len);
}

/* The live state as records: what a compacted WAL holds. */
static int buf_level(px_buf *b, const px_level *l)
{
    int rc = 0;
    if (l->promised)
        rc = buf_u64(b, PX_REC_PROMISE, l->promised);
    if (!rc && l->trimmed)
        rc = buf_u64(b, PX_REC_TRIM, l->trimmed);
    for (size_t i = 0; !rc && i < l->n; i++)
        rc = buf_accept(b, l->e[i].index, l->e[i].ballot, l->e[i].value, l->e[i].len);
    return rc;
}

/* Apply one checked record to l (l == NULL: only validate). -EINVAL: malformed. */
static int wal_apply(px_level *l, uint8_t type, const uint8_t *p, uint32_t plen)
{
    if ((type == PX_REC_PROMISE || type == PX_REC_TRIM) && plen == 8) {
        if (l && type == PX_REC_PROMISE)
            level_promise(l, get_u64(p));
        else if (l)
            level_trim(l, get_u64(p));
        return 0;
    }
    if (type != PX_REC_ACCEPT || plen < PX_ACCEPT_FIXED || get_u32(p + 16) != plen - PX_ACCEPT_FIXED)
        return -EINVAL;
    if (!l)
        return 0;
    uint32_t len = plen - PX_ACCEPT_FIXED;
    uint8_t *v = value_dup(p + PX_ACCEPT_FIXED, len);
    if (len && !v)
        return -ENOMEM;
    return level_accept(l, get_u64(p), get_u64(p + 8), v, len);
}

/* Replay data[0, n) into l; *valid = length of the intact prefix (stops at the
 * first torn or corrupt record: what follows it cannot be trusted). */
static int wal_replay(const uint8_t *data, size_t n, px_level *l, size_t *valid)
{
    size_t off = 0;
    while (n - off >= PX_REC_HEADER) {
        const uint8_t *r = data + off;
        uint32_t plen = get_u32(r);
        if (plen > n - off - PX_REC_HEADER)
            break;
        if (crc32c(r + 8, 1 + (size_t)plen) != get_u32(r + 4))
            break;
        int rc = wal_apply(l, r[8], r + PX_REC_HEADER, plen);
        if (rc == -EINVAL)
            break;
        if (rc)
            return rc;
        off += PX_REC_HEADER + plen;
    }
    *valid = off;
    return 0;
}

/* ------------------------------------------------------------------ file I/O */

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_all(int fd, uint8_t **out, size_t *n)
{
    struct stat st;
    *out = NULL;
    *n = 0;
    if (fstat(fd, &st))
        return -errno;
    if (st.st_size == 0)
        return 0;
    uint8_t *p = malloc((size_t)st.st_size);
    if (!p)
        return -ENOMEM;
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = pread(fd, p + got, (size_t)st.st_size - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int rc = r < 0 ? -errno : -EIO;
            free(p);
            return rc;
        }
        got += (size_t)r;
    }
    *out = p;
    *n = got;
    return 0;
}

/* fsync the directory holding path, so a create or rename is durable. */
static int fsync_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else if ((size_t)(slash - path) < sizeof dir)
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    else
        return -ENAMETOOLONG;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) ? -errno : 0;
    close(fd);
    return rc;
}

/* ------------------------------------------------------------------ file WAL */

typedef struct px_file {
    px_storage base;
    int fd;                  /* O_APPEND */
    char *path, *tmp_path;
    char *ckpt, *ckpt_prev, *ckpt_tmp; /* checkpoint files beside the WAL */
    px_buf pending;          /* records not yet write()n */
    bool unsynced;           /* written since the last fdatasync */
    uint64_t file_bytes;     /* intact bytes in the file */
    uint64_t compact_check;  /* look at compaction once file_bytes reaches this */
} px_file;

static px_file *file_of(px_storage *s)
{
    return (px_file *)s;
}

/* Read and replay the file into l (NULL: validate only), cutting a torn tail so
 * later appends land after intact records. */
static int file_recover(px_file *f, px_level *l)
{
    uint8_t *data;
    size_t n, valid = 0;
    int rc = read_all(f->fd, &data, &n);
    if (!rc)
        rc = wal_replay(data, n, l, &valid);
    free(data);
    if (rc)
        return rc;
    if (valid < n) {
        if (ftruncate(f->fd, (off_t)valid))
            return -errno;
        if (f->base.policy == PX_DURABILITY_FSYNC && fdatasync(f->fd))
            return -errno;
    }
    f->file_bytes = valid;
    return 0;
}

static int file_write_pending(px_file *f)
{
    if (f->pending.n == 0)
        return 0;
    int rc = write_all(f->fd, f->pending.p, f->pending.n);
    if (rc) {
        /* Cut a partial record so records appended later still replay. */
        int trc = ftruncate(f->fd, (off_t)f->file_bytes);
        (void)trc;
        return rc;
    }
    f->file_bytes += f->pending.n;
    f->pending.n = 0;
    f->unsynced = true;
    return 0;
}

/* Queue a record; write early when the buffer is large (durability is only
 * promised at flush, so writing sooner is always allowed). */
static int file_queued(px_file *f, int rc)
{
    if (rc == 0 && f->pending.n >= PX_WAL_BUF_MAX)
        rc = file_write_pending(f);
    return rc;
}

static int file_promise(px_storage *s, uint64_t ballot)
{
    px_file *f = file_of(s);
    if (s->policy == PX_DURABILITY_OFF)
        return 0;
    return file_queued(f, buf_u64(&f->pending, PX_REC_PROMISE, ballot));
}

static int file_accept(px_storage *s, uint64_t index, uint64_t ballot, const uint8_t *value, uint32_t len)
{
    px_file *f = file_of(s);
    if (len > PX_VALUE_MAX || (len && !value))
        return -EINVAL;
    if (s->policy == PX_DURABILITY_OFF)
        return 0;
    return file_queued(f, buf_accept(&f->pending, index, ballot, value, len));
}

static int file_trim(px_storage *s, uint64_t upto)
{
    px_file *f = file_of(s);
    if (s->policy == PX_DURABILITY_OFF)
        return 0;
    return file_queued(f, buf_u64(&f->pending, PX_REC_TRIM, upto));
}

/* Write l to path.tmp, fsync, rename over path, fsync the directory: a crash at
 * any point leaves either the old WAL or the new one, never half of one. */
static int file_rewrite(px_file *f, const px_level *l)
{
    px_buf b = { 0 };
    int fd = -1;
    int rc = buf_level(&b, l);
    if (!rc) {
        fd = open(f->tmp_path, O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
        rc = fd < 0 ? -errno : 0;
    }
    if (!rc)
        rc = write_all(fd, b.p, b.n);
    if (!rc && fsync(fd))
        rc = -errno;
    if (!rc && rename(f->tmp_path, f->path))
        rc = -errno;
    if (rc) {
        if (fd >= 0) {
            close(fd);
            unlink(f->tmp_path);
        }
    } else {
        close(f->fd);
        f->fd = fd;
        f->file_bytes = b.n;
        rc = fsync_dir(f->path);
    }
    free(b.p);
    return rc;
}

static size_t level_file_bytes(const px_level *l)
{
    size_t bytes = 2 * (PX_REC_HEADER + 8);
    for (size_t i = 0; i < l->n; i++)
        bytes += PX_REC_HEADER + PX_ACCEPT_FIXED + l->e[i].len;
    return bytes;
}

/* Rewrite the WAL when dead records (trimmed or superseded) are most of it.
 * Checked when the file doubles, so the replay it costs is amortized. */
static void file_maybe_compact(px_file *f)
{
    px_level l = { 0 };
    int rc = file_recover(f, &l);
    if (!rc && 2 * level_file_bytes(&l) < f->file_bytes)
        rc = file_rewrite(f, &l);
    level_release(&l);
    /* A failed rewrite is not the caller's problem: the old WAL is intact.
     * Back off until the file doubles. */
    f->compact_check = 2 * f->file_bytes;
    if (f->compact_check < PX_WAL_COMPACT_MIN)
        f->compact_check = PX_WAL_COMPACT_MIN;
}

static int file_flush(px_storage *s)
{
    px_file *f = file_of(s);
    if (s->policy == PX_DURABILITY_OFF)
        return 0;
    int rc = file_write_pending(f);
    if (rc)
        return rc;
    /* One fdatasync for every record since the last flush. A failed one leaves
     * the page cache state unknown: the caller must treat it as fatal. */
    if (s->policy == PX_DURABILITY_FSYNC && f->unsynced) {
        if (fdatasync(f->fd))
            return -errno;
        f->unsynced = false;
    }
    if (f->file_bytes >= f->compact_check)
        file_maybe_compact(f);
    return 0;
}

/* Write the image to ckpt_tmp, then rotate it in: .ckpt -> .ckpt.prev,
 * .ckpt.tmp -> .ckpt. Under fsync the data is synced before the first rename
 * and the directory after the second, so the checkpoint is durable before the
 * caller queues the trim it allows. */
static int file_checkpoint(px_storage *s, uint64_t index, const uint8_t *image, size_t len)
{
    px_file *f = file_of(s);
    int rc = ckpt_check_args(image, len);
    if (rc || s->policy == PX_DURABILITY_OFF)
        return rc;
    uint8_t h[PX_CKPT_HEADER];
    memcpy(h, ckpt_magic, sizeof ckpt_magic);
    put_u64(h + 8, index);
    put_u64(h + 16, (uint64_t)len);
    put_u32(h + 4, crc32c_extend(crc32c(h + 8, PX_CKPT_HEADER - 8), image, len));
    int fd = open(f->ckpt_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    rc = fd < 0 ? -errno : 0;
    if (!rc)
        rc = write_all(fd, h, sizeof h);
    if (!rc)
        rc = write_all(fd, image, len);
    if (!rc && s->policy == PX_DURABILITY_FSYNC && fdatasync(fd))
        rc = -errno;
    if (fd >= 0 && close(fd) && !rc)
        rc = -errno;
    /* The first checkpoint has nothing to rotate out. */
    if (!rc && rename(f->ckpt, f->ckpt_prev) && errno != ENOENT)
        rc = -errno;
    if (!rc && rename(f->ckpt_tmp, f->ckpt))
        rc = -errno;
    if (rc) {
        unlink(f->ckpt_tmp);
        return rc;
    }
    return s->policy == PX_DURABILITY_FSYNC ? fsync_dir(f->ckpt) : 0;
}

/* One checkpoint file into out (out->image == NULL when it is missing, torn or
 * corrupt: the caller falls back on the other one). Only -ENOMEM is an error. */
static int ckpt_read(const char *path, px_ckpt *out)
{
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    uint8_t *data;
    size_t n;
    int rc = read_all(fd, &data, &n);
    close(fd);
    if (rc)
        return rc == -ENOMEM ? rc : 0;
    bool ok = n > PX_CKPT_HEADER && memcmp(data, ckpt_magic, sizeof ckpt_magic) == 0 &&
              get_u64(data + 16) == n - PX_CKPT_HEADER && crc32c(data + 8, n - 8) == get_u32(data + 4);
    if (ok) {
        out->len = n - PX_CKPT_HEADER;
        out->image = malloc(out->len);
        if (!out->image) {
            free(data);
            return -ENOMEM;
        }
        memcpy(out->image, data + PX_CKPT_HEADER, out->len);
        out->index = get_u64(data + 8);
    }
    free(data);
    return 0;
}

/* The newest intact checkpoint of the two (.ckpt wins a tie). */
static int file_load_ckpt(px_file *f, px_storage_state *out)
{
    px_ckpt cur, prev;
    int rc = ckpt_read(f->ckpt, &cur);
    if (rc)
        return rc;
    rc = ckpt_read(f->ckpt_prev, &prev);
    if (rc) {
        ckpt_clear(&cur);
        return rc;
    }
    px_ckpt best = { 0 };
    ckpt_take(&best, &prev);
    ckpt_take(&best, &cur);
    out->ckpt_index = best.index;
    out->ckpt_image = best.image;
    out->ckpt_len = best.len;
    return 0;
}

static int file_load(px_storage *s, px_storage_state *out)
{
    px_file *f = file_of(s);
    memset(out, 0, sizeof *out);
    if (s->policy == PX_DURABILITY_OFF)
        return 0;
    px_level l = { 0 };
    int rc = file_recover(f, &l);
    if (!rc)
        rc = file_load_ckpt(f, out);
    if (!rc)
        level_export(&l, out);
    level_release(&l);
    if (rc)
        px_storage_state_release(out);
    return rc;
}

static void file_free(px_file *f)
{
    if (f->fd >= 0)
        close(f->fd);
    free(f->pending.p);
    free(f->path);
    free(f->tmp_path);
    free(f->ckpt);
    free(f->ckpt_prev);
    free(f->ckpt_tmp);
    free(f);
}

/* A clean close keeps what it was given: flush first (a crash is SIGKILL). */
static void file_close(px_storage *s)
{
    px_file *f = file_of(s);
    int rc = file_flush(s);
    (void)rc;
    file_free(f);
}

static const px_storage_ops file_ops = {
    .promise = file_promise,
    .accept = file_accept,
    .trim = file_trim,
    .checkpoint = file_checkpoint,
    .flush = file_flush,
    .load = file_load,
    .close = file_close,
};

static void set_err(char *err, size_t errlen, const char *what, const char *path, int rc)
{
    if (err && errlen)
        snprintf(err, errlen, "%s %s: %s", what, path, strerror(-rc));
}

static char *path_with(const char *path, const char *suffix)
{
    size_t n = strlen(path) + strlen(suffix) + 1;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s%s", path, suffix);
    return p;
}

px_storage *px_storage_file_open(const char *path, px_durability policy, char *err, size_t errlen)
{
    px_file *f = calloc(1, sizeof *f);
    if (f) {
        f->fd = -1;
        f->path = strdup(path);
        f->tmp_path = path_with(path, ".tmp");
        f->ckpt = path_with(path, ".ckpt");
        f->ckpt_prev = path_with(path, ".ckpt.prev");
        f->ckpt_tmp = path_with(path, ".ckpt.tmp");
    }
    if (!f || !f->path || !f->tmp_path || !f->ckpt || !f->ckpt_prev || !f->ckpt_tmp) {
        set_err(err, errlen, "open", path, -ENOMEM);
        if (f)
            file_free(f);
        return NULL;
    }
    f->base = (px_storage){ .ops = &file_ops, .policy = policy };
    f->compact_check = PX_WAL_COMPACT_MIN;
    /* A half-written checkpoint never counts; off keeps no checkpoint either (an
     * old one would bring back a state machine this run never had). */
    unlink(f->ckpt_tmp);
    if (policy == PX_DURABILITY_OFF) {
        unlink(f->ckpt);
        unlink(f->ckpt_prev);
    }
    /* off keeps nothing: an old WAL would resurrect stale promises in a later run. */
    int flags = O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | (policy == PX_DURABILITY_OFF ? O_TRUNC : 0);
    f->fd = open(path, flags, 0644);
    int rc = f->fd < 0 ? -errno : 0;
    if (rc) {
        set_err(err, errlen, "open", path, rc);
        file_free(f);
        return NULL;
    }
    /* Cut a torn tail now, so appends made before load() are replayable; under
     * fsync the file's name must be durable too. */
    rc = policy == PX_DURABILITY_OFF ? 0 : file_recover(f, NULL);
    if (!rc && policy == PX_DURABILITY_FSYNC)
        rc = fsync_dir(path);
    if (rc) {
        set_err(err, errlen, "recover", path, rc);
        file_free(f);
        return NULL;
    }
    return &f->base;
}

/* ------------------------------------------------------------------ memory
 * Three images, most durable first: durable (fsynced), written (reached the OS,
 * not the disk) and pending (still in the process). A record moves down a level
 * only with everything else in its batch, so a trim marker and the entries it
 * removed always share a fate: dropping durable entries on a trim a crash could
 * still lose would lose data without a marker saying so. A checkpoint rides in
 * the same batches, so it is never lost while a trim queued after it survives. */

typedef struct px_mem {
    px_storage base;
    px_level durable, written, pending;
    px_ckpt ck_durable, ck_written, ck_pending;
} px_mem;

static px_mem *mem_of(px_storage *s)
{
    return (px_mem *)s;
}

static uint64_t mem_trimmed(const px_mem *m)
{
    uint64_t t = m->durable.trimmed;
    if (m->written.trimmed > t)
        t = m->written.trimmed;
    if (m->pending.trimmed > t)
        t = m->pending.trimmed;
    return t;
}

static int mem_promise(px_storage *s, uint64_t ballot)
{
    if (s->policy != PX_DURABILITY_OFF)
        level_promise(&mem_of(s)->pending, ballot);
    return 0;
}

static int mem_accept(px_storage *s, uint64_t index, uint64_t ballot, const uint8_t *value, uint32_t len)
{
    px_mem *m = mem_of(s);
    if (len > PX_VALUE_MAX || (len && !value))
        return -EINVAL;
    /* Below any trim it is dead on every recovery path the trim survives. */
    if (s->policy == PX_DURABILITY_OFF || index <= mem_trimmed(m))
        return 0;
    uint8_t *v = value_dup(value, len);
    if (len && !v)
        return -ENOMEM;
    return level_accept(&m->pending, index, ballot, v, len);
}

static int mem_trim(px_storage *s, uint64_t upto)
{
    if (s->policy != PX_DURABILITY_OFF)
        level_trim(&mem_of(s)->pending, upto);
    return 0;
}

static int mem_checkpoint(px_storage *s, uint64_t index, const uint8_t *image, size_t len)
{
    int rc = ckpt_check_args(image, len);
    if (rc || s->policy == PX_DURABILITY_OFF)
        return rc;
    px_ckpt c = { .index = index, .image = malloc(len), .len = len };
    if (!c.image)
        return -ENOMEM;
    memcpy(c.image, image, len);
    ckpt_take(&mem_of(s)->ck_pending, &c);
    return 0;
}

static int mem_flush(px_storage *s)
{
    px_mem *m = mem_of(s);
    int rc = 0;
    switch (s->policy) {
    case PX_DURABILITY_FSYNC:
        if (!(rc = level_merge(&m->durable, &m->pending)))
            ckpt_take(&m->ck_durable, &m->ck_pending);
        break;
    case PX_DURABILITY_WRITE:
        if (!(rc = level_merge(&m->written, &m->pending)))
            ckpt_take(&m->ck_written, &m->ck_pending);
        break;
    case PX_DURABILITY_OFF: break;
    }
    return rc;
}

/* A copy of the newest checkpoint that survived into out. */
static int mem_load_ckpt(const px_mem *m, px_storage_state *out)
{
    const px_ckpt *c = &m->ck_durable;
    if (m->ck_written.image && (!c->image || m->ck_written.index >= c->index))
        c = &m->ck_written;
    if (!c->image)
        return 0;
    out->ckpt_image = malloc(c->len);
    if (!out->ckpt_image)
        return -ENOMEM;
    memcpy(out->ckpt_image, c->image, c->len);
    out->ckpt_len = c->len;
    out->ckpt_index = c->index;
    return 0;
}

static int mem_load(px_storage *s, px_storage_state *out)
{
    px_mem *m = mem_of(s);
    px_level l = { 0 };
    int rc = level_copy_over(&l, &m->durable);
    if (!rc)
        rc = level_copy_over(&l, &m->written);
    memset(out, 0, sizeof *out);
    if (!rc)
        rc = mem_load_ckpt(m, out);
    if (!rc)
        level_export(&l, out);
    level_release(&l);
    return rc;
}

static void mem_close(px_storage *s)
{
    px_mem *m = mem_of(s);
    level_release(&m->durable);
    level_release(&m->written);
    level_release(&m->pending);
    ckpt_clear(&m->ck_durable);
    ckpt_clear(&m->ck_written);
    ckpt_clear(&m->ck_pending);
    free(m);
}

static const px_storage_ops mem_ops = {
    .promise = mem_promise,
    .accept = mem_accept,
    .trim = mem_trim,
    .checkpoint = mem_checkpoint,
    .flush = mem_flush,
    .load = mem_load,
    .close = mem_close,
};

px_storage *px_storage_mem_new(px_durability policy)
{
    px_mem *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->base = (px_storage){ .ops = &mem_ops, .policy = policy };
    return &m->base;
}

void px_storage_mem_crash(px_storage *s, bool power_loss)
{
    assert(s->ops == &mem_ops);
    px_mem *m = mem_of(s);
    level_clear(&m->pending);
    ckpt_clear(&m->ck_pending);
    if (power_loss) {
        level_clear(&m->written);
        ckpt_clear(&m->ck_written);
    }
}

size_t px_storage_mem_record_count(const px_storage *s)
{
    assert(s->ops == &mem_ops);
    const px_mem *m = (const px_mem *)s;
    return level_records(&m->durable) + level_records(&m->written) + level_records(&m->pending) +
           (m->ck_durable.image != NULL) + (m->ck_written.image != NULL) + (m->ck_pending.image != NULL);
}
