/* ch_clean.h — `rift clean`: remove testbeds left behind by dead runs.
 *
 * Each testbed has a state file <state_dir>/<prefix>.json naming its owner
 * (PID + start time, ch_testbed.h). A testbed whose owner is gone (or whose
 * PID now belongs to another process) is removed; a live run's is kept unless
 * `all` is set. Namespaces that look like a testbed's (<prefix>-*) but have no
 * state file are orphans: reported, and removed only with `all`. */
#ifndef CH_CLEAN_H
#define CH_CLEAN_H

#include <jansson.h>
#include <stdbool.h>

#include "ch_error.h"

typedef struct ch_clean_opts {
    const char *state_dir;    /* NULL: CH_TESTBED_STATE_DIR */
    bool all;                 /* ignore owner liveness; remove orphans too */
    const char *only_prefix;  /* NULL: every testbed; else only this prefix */
} ch_clean_opts;

/* *report (owned by the caller) gets
 *   {"removed": [{"prefix", "owner_pid", "reason": "owner dead"|"owner pid reused"|"--all"|"orphan",
 *                 "namespaces": [...], "processes_killed": n, "error": "..." when it failed}],
 *    "kept":    [{"prefix", "owner_pid", "owner_comm"}],
 *    "orphans": [namespace names left because `all` was not set],
 *    "errors":  ["message", ...]}
 * Returns 0 when nothing failed, else the first negative errno (the report
 * still lists everything done); err gets the first message. */
int ch_clean(const ch_clean_opts *o, json_t **report, ch_error *err);

/* `rift clean [--all] [--json]`: exit code 0, or 3 when something could not
 * be removed (typically: not root). */
int ch_clean_cli(int argc, char **argv);

#endif
