/* rift_main.c — the `rift` command line (DESIGN.md "CLI contract"). */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ch_clean.h"
#include "ch_cli.h"
#include "ch_kv.h"
#include "ch_report.h"
#include "ch_run.h"

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: rift COMMAND [ARGS]\n\n"
               "commands:\n"
               "  run SCENARIO.json|DIR...   run scenarios, check them, write runs/<name>-<time>/\n"
               "  sweep SCENARIO.json        run a grid of --set values x seeds, write sweep.json\n"
               "  fuzz                       random fault schedules in the simulator\n"
               "  check HISTORY.jsonl        check a history for linearizability\n"
               "  report RUN_DIR             (re)write report.html: the dashboard with the run inlined\n"
               "  clean                      remove testbeds left behind by dead dpdk runs\n"
               "  kv --run RUN_DIR get|put|del KEY [VALUE]   poke the live cluster of a dpdk run\n\n"
               "`rift COMMAND --help` describes each. Exit codes: 0 pass, 1 an assertion or check\n"
               "failed, 2 bad input, 3 environment, 4 check result unknown.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CH_EXIT_BAD_INPUT;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "run"))
        return ch_cli_run(argc - 1, argv + 1, &interrupted);
    if (!strcmp(cmd, "check"))
        return ch_cli_check(argc - 1, argv + 1);
    if (!strcmp(cmd, "sweep"))
        return ch_cli_sweep(argc - 1, argv + 1, &interrupted);
    if (!strcmp(cmd, "fuzz"))
        return ch_cli_fuzz(argc - 1, argv + 1, &interrupted);
    if (!strcmp(cmd, "report"))
        return ch_cli_report(argc - 1, argv + 1);
    if (!strcmp(cmd, "kv"))
        return ch_kv_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "clean"))
        return ch_clean_cli(argc - 1, argv + 1);
    fprintf(stderr, "rift: unknown command \"%s\"\n", cmd);
    usage(stderr);
    return CH_EXIT_BAD_INPUT;
}
