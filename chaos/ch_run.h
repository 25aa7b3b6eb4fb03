/* ch_run.h — one scenario run end to end: load, run on a backend, check, write.
 *
 * Output directory (runs/<scenario>-<timestamp>/ unless --out): run.json,
 * history.jsonl, junit.xml. run.json is written first marked incomplete, so an
 * interrupted run leaves a consistent file; every file goes through temp +
 * rename. */
#ifndef CH_RUN_H
#define CH_RUN_H

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "ch_error.h"

#define CH_RUN_SCHEMA_VERSION 1

/* Exit codes of DESIGN.md. */
enum {
    CH_EXIT_PASS = 0,
    CH_EXIT_FAIL = 1,
    CH_EXIT_BAD_INPUT = 2,
    CH_EXIT_ENV = 3,
    CH_EXIT_UNKNOWN = 4,
};

typedef struct ch_run_opts {
    const char *backend;          /* "sim", "dpdk", or NULL = the default */
    bool has_seed;
    uint64_t seed;
    const char *const *sets;      /* --set overrides */
    int n_sets;
    const char *out_dir;          /* NULL: runs/<name>-<time> */
    const char *runs_root;        /* NULL: "runs" */
    double lin_time_limit_s;      /* 0: 30 s */
    bool progress;                /* a live line on stderr */
    bool live;                    /* --live: report.html polls live.js, rewritten every second */
    volatile sig_atomic_t *interrupted;
} ch_run_opts;

typedef struct ch_run_summary {
    int exit_code;
    char name[80];
    char verdict[16];             /* pass / fail / unknown / error */
    char run_dir[4096];
    uint64_t seed;
    json_t *json;                 /* the --json summary object (owned; free with json_decref) */
} ch_run_summary;

/* Run one scenario file. Never exits; errors become exit codes with err set. */
int ch_run_scenario(const char *path, const ch_run_opts *o, ch_run_summary *out, ch_error *err);

#endif
