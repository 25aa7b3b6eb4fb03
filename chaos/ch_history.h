/* ch_history.h — the Jepsen-style client history (DESIGN.md "History format").
 *
 * One JSON object per line:
 *   {"process": 3, "type": "invoke", "f": "cas", "key": "k7",
 *    "value": ["old", "new"], "time": 123456}
 * type: invoke | ok | fail (definitely not applied) | info (unknown outcome).
 * value by f: get — invoke null, ok a string or null (absent); put/append — a
 * string; del — null; cas — [expected-or-null, new]. Completions of put, append
 * and cas may repeat the invoked value or carry null. "value" may be omitted
 * where null is allowed; every other field is required and unknown fields are
 * errors. time: µs since the run started, an integer >= 0, non-decreasing per
 * process (not globally: merged client logs need not be sorted).
 *
 * Pairing: each process alternates invoke, completion (same f and key). A
 * process may end with an open invoke, which counts as info.
 *
 * Every error names the file, the line, the field and what was expected:
 *   h.jsonl:12: field "type": expected one of invoke, ok, fail, info, got "done" */
#ifndef CH_HISTORY_H
#define CH_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ch_error.h"

typedef enum ch_type { CH_INVOKE = 0, CH_OK, CH_FAIL, CH_INFO } ch_type;
typedef enum ch_f { CH_GET = 0, CH_PUT, CH_DEL, CH_APPEND, CH_CAS } ch_f;

/* Limits: a line longer than this, or a file with more ops, is bad input. */
#define CH_HISTORY_LINE_MAX (1u << 20)
#define CH_HISTORY_OPS_MAX (1u << 27)
/* "no match" in ch_history_pair's output. */
#define CH_NONE SIZE_MAX

typedef struct ch_op {
    uint32_t process;
    ch_type type;
    ch_f f;
    char *key;            /* owned, never NULL */
    /* owned; NULL = JSON null. get: the value read; put/append: the value;
     * del: NULL; cas: the new value (NULL when the record carries no pair). */
    char *value;
    char *cas_expected;   /* owned; cas only; NULL = absent */
    bool has_cas_expected; /* cas: the record carried [expected, new] */
    int64_t time_us;
    uint32_t line;        /* 1-based line in the source file (or position) */
} ch_op;

typedef struct ch_history {
    ch_op *ops;
    size_t n, cap;
} ch_history;

const char *ch_type_name(ch_type t); /* "invoke", "ok", "fail", "info" */
const char *ch_f_name(ch_f f);       /* "get", "put", "del", "append", "cas" */

/* NULL on allocation failure. */
ch_history *ch_history_new(void);
void ch_history_free(ch_history *h);
/* Deep-copies op. op->line 0 becomes the op's position (n + 1). Returns 0,
 * -ENOMEM, or -E2BIG past CH_HISTORY_OPS_MAX. */
int ch_history_append(ch_history *h, const ch_op *op);
/* Frees the strings of one op (not the op itself). */
void ch_op_clear(ch_op *op);

/* Parse one line (len bytes, need not be NUL-terminated) into *out, which the
 * caller releases with ch_op_clear. Checks the shape of the record only, not
 * pairing. file names the source in errors (NULL = "history"). Returns 0, or
 * -EINVAL with err set, or -ENOMEM. */
int ch_history_parse_line(const char *line, size_t len, const char *file,
                          uint32_t line_no, ch_op *out, ch_error *err);

/* Check pairing and per-process time order. match (n entries, may be NULL):
 * for an invoke, the index of its completion or CH_NONE (open); for a
 * completion, the index of its invoke. Returns 0, -EINVAL (err set), -ENOMEM. */
int ch_history_pair(const ch_history *h, const char *file, size_t *match,
                    ch_error *err);

/* Read a whole file: parse every line (blank lines skipped), then pair. On
 * success *out is a new history. Returns 0, -EINVAL (bad input, err set),
 * -ENOMEM, or a negative errno from I/O (err set). */
int ch_history_read_file(const char *path, ch_history **out, ch_error *err);

/* Format op as one JSON line without the newline, snprintf-style: writes at
 * most cap bytes including the NUL and returns the length it needs (excluding
 * the NUL), or -ENOMEM / -EINVAL (an op that cannot be written). */
int ch_op_format(const ch_op *op, char *buf, size_t cap);

/* Write h to path through path.tmp + fsync + rename, so path is never half
 * written. Returns 0 or a negative errno. */
int ch_history_write_file(const char *path, const ch_history *h);

/* ---- generator: histories of a simulated linearizable store ----
 * Each process runs ops back to back with random gaps and durations; every op
 * takes effect at a random instant inside its interval (so the history is
 * linearizable by construction). Values are unique tokens ("p12;", "a7;",
 * "c3;"), so a token names the op that wrote it. */
typedef struct ch_gen_opts {
    uint64_t seed;
    uint32_t n_ops;         /* operations (invoke + completion pairs) */
    uint32_t n_processes;   /* >= 1 */
    uint32_t n_keys;        /* >= 1 */
    double mix[5];          /* weight per ch_f: get, put, del, append, cas */
    double p_info;          /* chance a completion is info (applied or not) */
    uint32_t dur_us_max;    /* op duration in [1, dur_us_max] */
    uint32_t gap_us_max;    /* pause between a process's ops in [0, gap_us_max] */
} ch_gen_opts;

/* get .4 put .3 del .05 append .1 cas .15; p_info .02; 5 processes; 10 keys;
 * 1000 ops; durations up to 100 µs, gaps up to 50 µs. */
void ch_gen_opts_default(ch_gen_opts *o);
/* Appends the generated ops to h (in time order). 0, -EINVAL or -ENOMEM. */
int ch_history_generate(ch_history *h, const ch_gen_opts *o);

#endif
