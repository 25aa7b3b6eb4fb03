/* px_kv.h — the replicated key-value state machine, its commands and sessions.
 *
 * A log entry's value is a *batch*: zero or more encoded commands (zero = the
 * no-op a new leader uses to fill gaps). Executing a batch applies each command
 * in order. Client sessions (client id + sequence number) make a retried command
 * execute once: a command whose seq is not above the client's last executed seq
 * is not applied again; the cached reply of the last seq is returned instead.
 *
 * The state machine keeps a rolling digest over every executed index so replicas
 * can be compared (log agreement) without shipping their logs. The image
 * (state transfer) carries keys, values, sessions, the applied index and digest. */
#ifndef PX_KV_H
#define PX_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "px_msg.h"

typedef enum px_op {
    PX_OP_GET = 1,
    PX_OP_PUT,
    PX_OP_DEL,
    PX_OP_APPEND,
    PX_OP_CAS,
    PX_OP_MAX = PX_OP_CAS
} px_op;

#define PX_KV_MAX_KEY 1024u
#define PX_KV_MAX_VALUE (1024u * 1024u)

typedef struct px_cmd {
    uint8_t op;               /* px_op */
    uint64_t client_id;
    uint64_t seq;             /* >= 1, one outstanding command per client */
    px_bytes key;
    px_bytes value;           /* put/append: the value; cas: the new value */
    uint8_t expected_absent;  /* cas: 1 = expect the key to be absent */
    px_bytes expected;        /* cas: the expected current value */
} px_cmd;

/* Command codec (borrowed bytes as in px_msg.h). Errors as in px_msg_encode/decode. */
size_t px_cmd_encoded_size(const px_cmd *c);
int px_cmd_encode(const px_cmd *c, uint8_t *buf, size_t cap, size_t *out_len);
int px_cmd_decode(const uint8_t *buf, size_t len, px_cmd *c);

/* Batches: a varint count followed by length-prefixed encoded commands. */
typedef struct px_batch_iter {
    const uint8_t *p, *end;
    uint64_t remaining;
} px_batch_iter;

/* Start iterating; -EBADMSG if the header is malformed. */
int px_batch_iter_init(px_batch_iter *it, const uint8_t *buf, size_t len);
/* Next command's bytes: 1 and sets *cmd, 0 at the end, -EBADMSG if malformed. */
int px_batch_iter_next(px_batch_iter *it, px_bytes *cmd);
/* Builder: append encoded commands, then px_batch_finish() writes the count.
 * The caller owns buf (grown with realloc). */
typedef struct px_batch_builder {
    uint8_t *buf;
    size_t len, cap;
    uint32_t count;
} px_batch_builder;
int px_batch_add(px_batch_builder *b, const uint8_t *cmd, size_t len);
/* Hand out the finished batch (heap, caller frees) and reset the builder. */
int px_batch_finish(px_batch_builder *b, uint8_t **out, size_t *out_len);
void px_batch_builder_reset(px_batch_builder *b);

/* The outcome of one command, for the client reply. value borrows kv memory
 * that stays valid until the next mutation of the kv. */
typedef struct px_result {
    uint64_t client_id;
    uint64_t seq;
    uint8_t status;     /* PX_REPLY_OK or PX_REPLY_FAIL (or BAD_REQUEST) */
    uint8_t has_value;  /* get of a present key */
    px_bytes value;
    bool duplicate;     /* a retried command answered from the session cache */
} px_result;

typedef struct px_kv px_kv;

px_kv *px_kv_new(void);
void px_kv_free(px_kv *kv);

/* Execute the batch at `index` (must be px_kv_applied_index()+1). Calls on_result
 * for each command (including duplicates, so a retried client gets its answer).
 * Returns 0, or -EBADMSG for a malformed batch (then nothing was applied and the
 * index still advances, as every replica sees the same bytes and skips alike). */
typedef void (*px_result_fn)(void *ctx, const px_result *r);
int px_kv_apply(px_kv *kv, uint64_t index, const uint8_t *batch, size_t len,
                px_result_fn on_result, void *ctx);

uint64_t px_kv_applied_index(const px_kv *kv);
/* An allocation failed mid-command: the state is no longer the log's (only an
 * image install repairs it), so it must not be imaged. */
bool px_kv_broken(const px_kv *kv);
/* Rolling digest over (index, batch bytes) of every applied entry. */
uint64_t px_kv_digest(const px_kv *kv);
size_t px_kv_key_count(const px_kv *kv);

/* Read a key directly (tests, status). Returns true and sets *v if present. */
bool px_kv_lookup(const px_kv *kv, const uint8_t *key, size_t key_len, px_bytes *v);

/* State transfer image: every key/value, every session (last seq + its reply),
 * applied index and digest. Encode allocates *out (caller frees). */
int px_kv_image_encode(const px_kv *kv, uint8_t **out, size_t *out_len);
/* Replace kv's whole state with the image. -EBADMSG on malformed input, in
 * which case kv is unchanged. */
int px_kv_image_install(px_kv *kv, const uint8_t *buf, size_t len);

/* 64-bit hash used for digests (FNV-1a 64 then a final mix). */
uint64_t px_hash64(uint64_t seed, const void *data, size_t len);

#endif
