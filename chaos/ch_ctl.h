/* ch_ctl.h — the controller's side of the JSON-lines control sockets.
 *
 * rift-stackd and rift-replica answer one JSON object per line on a Unix
 * socket ({"cmd":"status"} -> {"ok":true,...}). The controller must never hang
 * on a process it paused or that is wedged, so every call has a deadline and a
 * connection that timed out is closed (the next call reconnects). */
#ifndef CH_CTL_H
#define CH_CTL_H

#include <jansson.h>

typedef struct ch_ctl {
    char path[108];
    int fd;            /* -1 = not connected */
    char buf[65536];   /* reply bytes read past the current line */
    size_t len;
} ch_ctl;

void ch_ctl_init(ch_ctl *c, const char *path);
void ch_ctl_close(ch_ctl *c);
/* Send req (not stolen) and wait up to timeout_ms for the reply line. 0 and
 * *reply (caller decrefs); -ETIMEDOUT, -ECONNREFUSED/-ENOENT (nobody there),
 * -EBADMSG (reply is not a JSON object), -EREMOTEIO (reply has "ok": false; *reply
 * is still set so the caller can read "error"). */
int ch_ctl_call(ch_ctl *c, json_t *req, int timeout_ms, json_t **reply);
/* Poll until the socket answers {"cmd":"ping"} or timeout_ms passes. */
int ch_ctl_wait_ready(ch_ctl *c, int timeout_ms);

#endif
