/* px_msg.h — MultiPaxos wire messages and their binary codec.
 *
 * Every message between replicas and between clients and replicas is a px_msg.
 * The codec is compact (LEB128 varints for integers, length-prefixed bytes) and
 * versioned (magic + version byte up front). Decoding validates every length and
 * field against the input and rejects anything malformed with a negative errno
 * code; it never reads out of bounds and never crashes.
 *
 * Ownership: byte fields (px_bytes) and entry values are borrowed. After decode
 * they point into the input buffer, which must outlive the message; the entries
 * array of PROMISE and LEARN is heap-allocated by decode and released by
 * px_msg_release(). Encode only reads. */
#ifndef PX_MSG_H
#define PX_MSG_H

#include <stddef.h>
#include <stdint.h>

#define PX_MSG_MAGIC 0x5258u /* "RX" */
#define PX_MSG_VERSION 1u
/* Upper bounds the decoder enforces: no field may make it allocate more. */
#define PX_MSG_MAX_ENTRIES 65536u
#define PX_MSG_MAX_BYTES (8u * 1024u * 1024u)

/* Node addresses: replicas are 0..PX_MAX_REPLICAS-1, clients from PX_CLIENT_BASE. */
#define PX_MAX_REPLICAS 9
#define PX_CLIENT_BASE 256u
#define PX_NO_NODE 0xffffu

typedef enum px_msg_type {
    PX_MSG_PREPARE = 1,  /* candidate -> all: phase 1a */
    PX_MSG_PROMISE,      /* phase 1b: ok or reject, accepted entries >= from_index */
    PX_MSG_ACCEPT,       /* leader -> all: phase 2a, one log entry */
    PX_MSG_ACCEPTED,     /* phase 2b: ok or reject */
    PX_MSG_COMMIT,       /* leader -> all: heartbeat; carries last_executed and gle */
    PX_MSG_COMMIT_REPLY, /* follower -> leader: its last_executed (or a reject) */
    PX_MSG_LEARN,        /* leader -> lagging follower: chosen entries it missed */
    PX_MSG_SNAP_REQ,     /* replica behind the trimmed point asks for a state transfer */
    PX_MSG_SNAP,         /* leader -> replica: KV image + sessions at an index */
    PX_MSG_CLIENT_REQ,   /* client -> replica: one encoded command (px_cmd) */
    PX_MSG_CLIENT_REPLY, /* replica -> client: result or redirect */
    PX_MSG_TYPE_MAX = PX_MSG_CLIENT_REPLY
} px_msg_type;

typedef struct px_bytes {
    const uint8_t *data;
    uint32_t len;
} px_bytes;

typedef struct px_entry {
    uint64_t index;
    uint64_t ballot;    /* ballot under which this value was accepted */
    uint8_t committed;  /* 1: known chosen (the value is final) */
    px_bytes value;     /* an encoded command batch (px_kv.h); empty batch = no-op */
} px_entry;

/* Client reply status. */
typedef enum px_reply_status {
    PX_REPLY_OK = 1,        /* executed; value holds the result (get), if any */
    PX_REPLY_FAIL,          /* executed, definitely had no effect (cas mismatch) */
    PX_REPLY_REDIRECT,      /* not the leader; leader holds the hint or PX_NO_NODE */
    PX_REPLY_BAD_REQUEST,   /* the command did not decode */
} px_reply_status;

typedef struct px_msg {
    uint8_t type;     /* px_msg_type */
    uint16_t from;
    uint16_t to;
    uint64_t ballot;  /* sender's ballot (PROMISE/ACCEPTED/COMMIT_REPLY: its promised ballot) */
    union {
        struct { uint64_t from_index; } prepare;
        struct {
            uint8_t ok;
            uint64_t last_executed;
            uint64_t log_base;       /* acceptor has nothing at or below this index */
            uint32_t n_entries;
            px_entry *entries;
        } promise;
        struct {
            px_entry entry;
            uint64_t last_executed;  /* leader's, piggybacked so followers commit sooner */
            uint64_t gle;
        } accept;
        struct {
            uint8_t ok;
            uint64_t index;
            uint64_t last_executed;
        } accepted;
        struct {
            uint64_t last_executed;
            uint64_t gle;
        } commit;
        struct {
            uint8_t ok;
            uint64_t last_executed;
        } commit_reply;
        struct {
            uint32_t n_entries;
            px_entry *entries;
        } learn;
        struct { uint64_t last_executed; } snap_req;
        struct {
            uint64_t index;   /* the image reflects every entry <= index */
            px_bytes image;   /* px_kv_image_encode() output */
        } snap;
        struct {
            px_bytes cmd;     /* px_cmd_encode() output */
        } client_req;
        struct {
            uint64_t client_id;
            uint64_t seq;
            uint8_t status;   /* px_reply_status */
            uint16_t leader;  /* redirect hint */
            uint8_t has_value;
            px_bytes value;
        } client_reply;
    } u;
} px_msg;

/* Bytes px_msg_encode() will write for m. */
size_t px_msg_encoded_size(const px_msg *m);

/* Encode m into buf. Returns 0 and sets *out_len, -ENOSPC if cap is too small,
 * -EINVAL if m is not a valid message (unknown type, oversized field). */
int px_msg_encode(const px_msg *m, uint8_t *buf, size_t cap, size_t *out_len);

/* Decode buf into m. Returns 0, or -EBADMSG (truncated, bad magic, bad field,
 * trailing bytes), -EPROTO (unknown version), -ENOMEM. On error m holds nothing
 * that needs release. On success release m with px_msg_release(). */
int px_msg_decode(const uint8_t *buf, size_t len, px_msg *m);

/* Free what decode allocated (the entries arrays); safe on any decoded msg. */
void px_msg_release(px_msg *m);

/* "prepare", "promise", ... or "unknown". */
const char *px_msg_type_name(int type);

#endif
