/* st_ctl.h — rift-stackd's control socket: JSON lines over a Unix stream socket.
 *
 * One request per line, one reply per line, in order:
 *   {"cmd":"ping"}                                   -> {"ok":true}
 *   {"cmd":"impair-add","rule":{...}}                -> {"ok":true,"id":N}
 *   {"cmd":"impair-remove","id":N}
 *   {"cmd":"impair-clear"}  or  {"cmd":"impair-clear","src":"a","dst":"b"}
 *   {"cmd":"impair-list"}                            -> {"ok":true,"rules":[...]}
 *   {"cmd":"stats"}
 *   {"cmd":"capture-start","path":"x.pcapng"}  /  {"cmd":"capture-stop"}
 * Errors are {"ok":false,"error":"<field>: <what was expected>"}.
 *
 * A rule: {"src":"198.18.0.1","dst":"198.18.0.2"} ("*" = any address) plus any of
 *   "drop": 1.0 | true (cut the link; a value in (0,1) is a loss probability),
 *   "cut": bool, "loss": p, "correlation": c, "delay_ms": ms, "jitter_ms": ms,
 *   "distribution": "uniform"|"normal"|"pareto", "duplicate": p, "reorder": p,
 *   "reorder_ms": ms.
 * Unknown fields are errors (a typo must not silently install a weaker rule).
 *
 * The parser (st_ctl_parse) is a pure function of the line, fuzzed by
 * tests/fuzz/fuzz_ctl.c; the server part never blocks and bounds everything
 * (clients, line length, queued reply bytes). No DPDK in here. */
#ifndef ST_CTL_H
#define ST_CTL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "st_impair.h"

#define ST_CTL_LINE_MAX 65536     /* longer request lines are refused */
#define ST_CTL_PATH_MAX 4096
#define ST_CTL_CLIENTS_MAX 16

typedef enum st_ctl_kind {
    ST_CTL_PING = 1,
    ST_CTL_IMPAIR_ADD,
    ST_CTL_IMPAIR_REMOVE,
    ST_CTL_IMPAIR_CLEAR,
    ST_CTL_IMPAIR_LIST,
    ST_CTL_STATS,
    ST_CTL_CAPTURE_START,
    ST_CTL_CAPTURE_STOP,
} st_ctl_kind;

typedef struct st_ctl_cmd {
    uint8_t kind;                /* st_ctl_kind */
    st_impair_rule rule;         /* impair-add (valid: st_impair_rule_check passes) */
    int id;                      /* impair-remove */
    bool link;                   /* impair-clear: only rules on exactly src -> dst */
    uint32_t src, dst;           /* impair-clear with link (host order; ST_IMPAIR_ANY = "*") */
    char path[ST_CTL_PATH_MAX];  /* capture-start */
} st_ctl_cmd;

/* Parse one request line (without the newline). 0, or -EINVAL with a message
 * naming the field in err. Never reads past len; any bytes are safe. */
int st_ctl_parse(const char *line, size_t len, st_ctl_cmd *out, char *err, size_t errlen);

/* "198.18.0.1" / "*" -> host-order address; -EINVAL for anything else
 * (0.0.0.0 and 255.255.255.255 included: the latter is the wildcard's value). */
int st_ctl_parse_addr(const char *s, uint32_t *out);
/* Format a host-order address ("*" for ST_IMPAIR_ANY) into buf (>= 16 bytes). */
const char *st_ctl_format_addr(uint32_t ip, char *buf, size_t len);

/* A rule as JSON in the request's own vocabulary (the inverse of the parser). */
json_t *st_ctl_rule_json(const st_impair_rule *r);
/* {"ok":false,"error":<message>} */
json_t *st_ctl_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Executes a parsed command; returns the reply object (owned by the caller), or
 * NULL for "out of memory". */
typedef json_t *(*st_ctl_handler)(void *ctx, const st_ctl_cmd *cmd);

/* The reply line (with "\n", malloc'd) for one request line: parse errors are
 * answered here, valid commands go to h. NULL only when out of memory. */
char *st_ctl_reply(const char *line, size_t len, st_ctl_handler h, void *ctx);

typedef struct st_ctl st_ctl;

/* Listen on path (a stale socket file is replaced). NULL with err filled. */
st_ctl *st_ctl_new(const char *path, st_ctl_handler h, void *ctx, char *err, size_t errlen);
/* Closes every client and unlinks the socket file. */
void st_ctl_free(st_ctl *c);
/* An epoll fd: readable when a client connects, sends, or can take more reply bytes. */
int st_ctl_fd(const st_ctl *c);
/* Accept clients, answer complete lines, write replies. Never blocks. Returns
 * the number of requests answered. */
int st_ctl_poll(st_ctl *c);

#endif
