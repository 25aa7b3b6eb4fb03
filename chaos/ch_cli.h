/* ch_cli.h — the `rift` subcommands (argument parsing and terminal output). */
#ifndef CH_CLI_H
#define CH_CLI_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "ch_run.h"

int ch_cli_run(int argc, char **argv, volatile sig_atomic_t *interrupted);
int ch_cli_check(int argc, char **argv);
int ch_cli_sweep(int argc, char **argv, volatile sig_atomic_t *interrupted);
int ch_cli_fuzz(int argc, char **argv, volatile sig_atomic_t *interrupted);

/* Shared helpers. */
/* Ordering of exit codes by severity, for "the worst exit code". */
int ch_exit_rank(int code);
int ch_parse_u64(const char *s, uint64_t *out);
/* Expand files and directories of scenarios; returns the count or -errno. */
int ch_collect_scenarios(char **args, int n, char ***out);
void ch_free_list(char **list, int n);
/* Parse run-style options (--backend --seed --set --out --json --live --help).
 * Returns 0, 1 for --help, or -EINVAL (message printed). *sets is allocated. */
int ch_parse_run_opts(int argc, char **argv, ch_run_opts *o, const char ***sets, bool *json, int *first_arg);

#endif
