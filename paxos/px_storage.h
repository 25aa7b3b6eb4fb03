/* px_storage.h — where an acceptor writes its state ahead of replying.
 *
 * The core records its promised ballot and every accepted entry through this
 * interface, then calls flush() before any reply that depends on them leaves
 * (etcd raft's rule: persist before send). trim(upto) says entries <= upto are
 * executed everywhere (gle) and may be forgotten, so the WAL stays short.
 *
 * checkpoint(index, image) keeps the state machine's image at index (KV +
 * sessions, px_kv_image_encode). The WAL holds acceptor state above the trim
 * point only; without an image of what lies below it a whole-cluster crash
 * leaves no replica able to execute anything (docs/durability.md). The
 * caller's rule: checkpoint at i before trimming past i. A checkpoint is kept
 * under the same policy as the records (durable by the next flush() at the
 * latest, never after a trim queued later), replaced atomically, and the
 * newest intact one comes back from load().
 *
 * Durability policy lives in the storage, not the core:
 *   fsync — flush() makes every record durable (fdatasync);
 *   write — records reach the OS (survive a process crash, not a power loss);
 *   off   — nothing is kept: a restart is amnesia.
 *
 * Two implementations: a file WAL for real runs and an in-memory one for the
 * simulator, which can simulate a process crash or a power loss. */
#ifndef PX_STORAGE_H
#define PX_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum px_durability {
    PX_DURABILITY_FSYNC = 0,
    PX_DURABILITY_WRITE,
    PX_DURABILITY_OFF,
} px_durability;

/* "fsync"/"write"/"off" -> policy; returns -EINVAL for anything else. */
int px_durability_parse(const char *s, px_durability *out);
const char *px_durability_name(px_durability d);

typedef struct px_stored_entry {
    uint64_t index;
    uint64_t ballot;
    uint8_t *value;   /* owned by the px_storage_state */
    uint32_t len;
} px_stored_entry;

/* What load() recovers: the newest promise, the trim point, the newest
 * accepted entry per index above it (sorted by index), and the newest intact
 * checkpoint (ckpt_image == NULL: none). A checkpoint older than the trim
 * point can come back (the newer one was torn or corrupt): the entries between
 * the two are gone, so it is no base to recover from on its own. */
typedef struct px_storage_state {
    uint64_t promised;
    uint64_t trimmed;
    size_t n_entries;
    px_stored_entry *entries;
    uint64_t ckpt_index;
    uint8_t *ckpt_image;  /* owned by the px_storage_state */
    size_t ckpt_len;
} px_storage_state;

void px_storage_state_release(px_storage_state *s);

typedef struct px_storage px_storage;

typedef struct px_storage_ops {
    int (*promise)(px_storage *s, uint64_t ballot);
    int (*accept)(px_storage *s, uint64_t index, uint64_t ballot, const uint8_t *value, uint32_t len);
    int (*trim)(px_storage *s, uint64_t upto);
    int (*checkpoint)(px_storage *s, uint64_t index, const uint8_t *image, size_t len);
    int (*flush)(px_storage *s);
    int (*load)(px_storage *s, px_storage_state *out);
    void (*close)(px_storage *s);
} px_storage_ops;

struct px_storage {
    const px_storage_ops *ops;
    px_durability policy;
};

/* File WAL at path (created if missing). Records are length- and CRC-framed; a
 * torn tail (crash mid-write) is cut off on load. The file is rewritten
 * compactly (temp file + rename, never half-written) once trimmed records
 * dominate it. Checkpoints live beside it in path.ckpt (the newest) and
 * path.ckpt.prev (the one before), each written whole to path.ckpt.tmp and
 * renamed into place; load() takes the newest one whose checksum holds. On
 * failure returns NULL and writes a message into err. */
px_storage *px_storage_file_open(const char *path, px_durability policy, char *err, size_t errlen);

/* In-memory storage for the simulator. */
px_storage *px_storage_mem_new(px_durability policy);
/* Simulate the process dying (power_loss=false: what was written survives,
 * as the OS holds it) or the machine losing power (power_loss=true: only what
 * was flushed under fsync survives). The next load() sees what is left. */
void px_storage_mem_crash(px_storage *s, bool power_loss);
/* Records currently held, a checkpoint counting as one (tests: the WAL is
 * truncated as gle advances). */
size_t px_storage_mem_record_count(const px_storage *s);

static inline int px_storage_promise(px_storage *s, uint64_t b) { return s->ops->promise(s, b); }
static inline int px_storage_accept(px_storage *s, uint64_t i, uint64_t b, const uint8_t *v, uint32_t n)
{
    return s->ops->accept(s, i, b, v, n);
}
static inline int px_storage_trim(px_storage *s, uint64_t upto) { return s->ops->trim(s, upto); }
static inline int px_storage_checkpoint(px_storage *s, uint64_t index, const uint8_t *image, size_t len)
{
    return s->ops->checkpoint(s, index, image, len);
}
static inline int px_storage_flush(px_storage *s) { return s->ops->flush(s); }
static inline int px_storage_load(px_storage *s, px_storage_state *out) { return s->ops->load(s, out); }
static inline void px_storage_close(px_storage *s)
{
    if (s)
        s->ops->close(s);
}

#endif
