/* ch_timeline.h — a scenario's timeline, applied the same way on every backend.
 *
 * The timeline owns what an action *means*: which directed links a partition or
 * a selector touches (ch_links), which replicas `*` or `leader` name when the
 * action fires, the fault intervals and actions recorded in the ch_record, the
 * gc-pause cycles (pause, sampled length, resume, every interval), and what
 * heal-all / clear / link-up undo. A backend only provides the primitives
 * (install one impairment rule on one directed link, crash a replica, ...) and
 * a clock: the simulator calls ch_timeline_fire from a virtual-time timer, the
 * DPDK backend from its event loop. Same scenario, same effects.
 *
 * Times are µs since the run started, on the backend's clock. */
#ifndef CH_TIMELINE_H
#define CH_TIMELINE_H

#include <stdbool.h>
#include <stdint.h>

#include "../stack/st_impair.h"
#include "ch_backend.h"
#include "ch_links.h"

typedef struct ch_timeline_ops {
    void *ctx;
    /* The replica that leads now, -1 = none (resolves "leader"). */
    int (*leader)(void *ctx);
    /* Install a rule on the directed link src -> dst (concrete node numbers, see
     * ch_links.h). Returns a backend rule id >= 0, or a negative errno. */
    int (*impair_add)(void *ctx, int src, int dst, const st_impair_rule *rule);
    int (*impair_remove)(void *ctx, int id);
    /* Remove every rule on src -> dst (the `clear` action). */
    void (*impair_clear_link)(void *ctx, int src, int dst);
    /* Is rule id still installed? (after clear_link removed some) */
    bool (*impair_alive)(void *ctx, int id);
    /* Process faults on replica i. 0, or a negative errno (-EALREADY: nothing to
     * do, e.g. crash of a crashed replica; not an error for the run). */
    int (*crash)(void *ctx, int replica);
    int (*restart)(void *ctx, int replica);
    int (*pause)(void *ctx, int replica, bool pause);
    int (*set_param)(void *ctx, int replica, const char *param, const char *value);
    /* Flip a node's interface. NULL: emulated by cutting every link of the node
     * (the simulator has no interfaces; the observable effect is the same). */
    int (*link_set)(void *ctx, int node, bool up);
} ch_timeline_ops;

typedef struct ch_timeline ch_timeline;

/* Expand the scenario's timeline (repeats) and check the backend can do every
 * action. NULL with err set (-EINVAL: an action this backend cannot perform). */
ch_timeline *ch_timeline_new(const ch_run_ctx *ctx, const ch_timeline_ops *ops, int *e, ch_error *err);
void ch_timeline_free(ch_timeline *t);

/* When the next action or gc-pause step is due (µs); UINT64_MAX = never. */
uint64_t ch_timeline_next_us(const ch_timeline *t);
/* Apply everything due at or before now. 0 or a negative errno with err set. */
int ch_timeline_fire(ch_timeline *t, uint64_t now_us);
/* Open link faults (for the progress line). */
int ch_timeline_active_faults(const ch_timeline *t);
/* Is replica i crashed by the timeline (and not restarted)? */
bool ch_timeline_replica_down(const ch_timeline *t, int replica);
bool ch_timeline_replica_paused(const ch_timeline *t, int replica);

#endif
