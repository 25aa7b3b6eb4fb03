/* rift_replica.c — `rift-replica --config FILE`: one MultiPaxos KV replica on rift-stackd.
 *
 * Exit codes (DESIGN.md): 0 stopped by SIGTERM/SIGINT; 2 bad flags or config;
 * 3 environment (no stack to attach to, WAL / control socket / event log cannot
 * be opened); 1 a fatal runtime error. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "replica_node.h"

enum { RN_EXIT_OK = 0, RN_EXIT_FATAL = 1, RN_EXIT_BAD_INPUT = 2, RN_EXIT_ENV = 3 };

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: rift-replica --config FILE [--check]\n\n"
               "Runs one MultiPaxos KV replica attached to rift-stackd (docs/running-by-hand.md).\n"
               "  --config FILE   replica configuration (JSON; see paxos/replica_config.h)\n"
               "  --check         validate FILE, print it with defaults filled in, exit\n\n"
               "Exit codes: 0 stopped by SIGTERM/SIGINT, 1 fatal runtime error, 2 bad config or flags,\n"
               "3 environment (no stack to attach to, WAL or sockets cannot be opened).\n");
}

static int print_config(const rn_config *cfg)
{
    json_t *j = rn_config_to_json(cfg);
    char *s = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
    json_decref(j);
    if (!s) {
        fprintf(stderr, "rift-replica: out of memory\n");
        return RN_EXIT_FATAL;
    }
    printf("%s\n", s);
    free(s);
    return RN_EXIT_OK;
}

static int serve(const rn_config *cfg)
{
    rn_error err;
    rn_node *n = rn_node_new(cfg, rn_now_us(), &err);
    if (!n) {
        fprintf(stderr, "rift-replica r%u: %s\n", cfg->id + 1u, err.msg);
        return RN_EXIT_ENV;
    }
    if (rn_node_attach_wait(n, &stop, &err) < 0) {
        fprintf(stderr, "rift-replica r%u: %s (waited %u ms)\n", cfg->id + 1u, err.msg, cfg->attach_timeout_ms);
        rn_node_free(n);
        return stop ? RN_EXIT_OK : RN_EXIT_ENV;
    }
    char ip[16];
    rn_ip_format(cfg->replicas[cfg->id].ip, ip, sizeof(ip));
    fprintf(stderr, "rift-replica r%u: pid %d, %s:%u, %u replicas, fd %s, durability %s, stack %s\n",
            cfg->id + 1u, (int)getpid(), ip, cfg->replicas[cfg->id].port, cfg->n_replicas,
            px_fd_policy_name(cfg->paxos.fd), px_durability_name(cfg->durability), cfg->stack);
    int rc = rn_node_run(n, &stop);
    if (rc < 0)
        fprintf(stderr, "rift-replica r%u: fatal: %s\n", cfg->id + 1u, strerror(-rc));
    rn_node_free(n); /* flush the WAL, detach, remove the control socket */
    return rc < 0 ? RN_EXIT_FATAL : RN_EXIT_OK;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check", no_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL;
    int check = 0, o;
    while ((o = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (o) {
        case 'c': path = optarg; break;
        case 'k': check = 1; break;
        case 'h': usage(stdout); return RN_EXIT_OK;
        default: usage(stderr); return RN_EXIT_BAD_INPUT;
        }
    }
    if (!path || optind != argc) {
        usage(stderr);
        return RN_EXIT_BAD_INPUT;
    }
    rn_config cfg;
    rn_error err;
    if (rn_config_load(path, &cfg, &err) < 0) {
        fprintf(stderr, "rift-replica: %s\n", err.msg);
        return RN_EXIT_BAD_INPUT;
    }
    if (check)
        return print_config(&cfg);
    /* no SA_RESTART: ppoll returns EINTR and the loop sees the flag at once */
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return serve(&cfg);
}
