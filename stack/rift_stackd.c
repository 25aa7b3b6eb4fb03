/* rift_stackd.c — rift-stackd: the per-node userspace network stack daemon.
 *
 *   rift-stackd --config FILE [flags]        flags override the file
 *   rift-stackd --ip A --iface IF --socket P --control P [flags]
 *
 * Flags (each is also a config file field, see docs/stackd.md):
 *   --ip A  --netmask-bits N  --iface IF  --mac M  --pmd auto|af_xdp|af_packet|eal
 *   --eal ARG (repeatable)  --no-eal-defaults  --socket PATH  --control PATH
 *   --polling adaptive|busy  --core N  --log PATH  --seed N
 *   --set KEY=VALUE (any field, e.g. --set transport.rto_min_us=500)
 *
 * Exit codes: 0 clean stop (SIGTERM/SIGINT), 1 fatal error while running,
 * 2 bad configuration or flags, 3 environment (DPDK, port, sockets). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stack/st_stackd.h"

static volatile sig_atomic_t stop_flag;

/* LeakSanitizer (sanitizer builds only): libxdp's xsk_umem__create leaks 80
 * bytes that DPDK's af_xdp PMD cannot free; not ours, and it would turn every
 * clean exit of a sanitizer build into exit 1. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:xsk_umem__create\n";
}

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static int usage(const char *msg)
{
    fprintf(stderr,
            "rift-stackd: %s\n"
            "usage: rift-stackd --config FILE [--ip A] [--netmask-bits N] [--iface IF] [--mac M]\n"
            "                   [--pmd auto|af_xdp|af_packet|eal] [--eal ARG]... [--no-eal-defaults]\n"
            "                   [--socket PATH] [--control PATH] [--polling adaptive|busy] [--core N]\n"
            "                   [--log PATH] [--seed N] [--set KEY=VALUE]...\n",
            msg);
    return 2;
}

/* "--netmask-bits" -> "netmask_bits" */
static void flag_key(const char *flag, char *key, size_t cap)
{
    size_t i = 0;
    for (const char *p = flag + 2; *p && i + 1 < cap; p++)
        key[i++] = *p == '-' ? '_' : *p;
    key[i] = 0;
}

static const char *const value_flags[] = {"--ip",     "--netmask-bits", "--iface", "--mac",  "--pmd",
                                          "--eal",    "--socket",       "--control", "--polling",
                                          "--core",   "--log",          "--seed", "--spin-us"};

static bool is_value_flag(const char *a)
{
    for (size_t i = 0; i < sizeof value_flags / sizeof value_flags[0]; i++)
        if (!strcmp(a, value_flags[i]))
            return true;
    return false;
}

/* The config file first (wherever --config appears), then the flags in order. */
static int parse_args(int argc, char **argv, st_stackd_config *c, char *err, size_t errlen)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config")) {
            if (i + 1 >= argc)
                return snprintf(err, errlen, "--config: missing file"), -EINVAL;
            if (st_stackd_config_file(c, argv[i + 1], err, errlen))
                return -EINVAL;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        char key[64], why[512];
        if (!strcmp(a, "--config")) {
            i++;
        } else if (!strcmp(a, "--no-eal-defaults")) {
            c->eal_defaults = false;
        } else if (!strcmp(a, "--set")) {
            const char *kv = i + 1 < argc ? argv[++i] : NULL;
            const char *eq = kv ? strchr(kv, '=') : NULL;
            if (!eq || eq == kv || (size_t)(eq - kv) >= sizeof key)
                return snprintf(err, errlen, "--set: expected KEY=VALUE"), -EINVAL;
            memcpy(key, kv, (size_t)(eq - kv));
            key[eq - kv] = 0;
            if (st_stackd_config_set(c, key, eq + 1, why, sizeof why))
                return snprintf(err, errlen, "--set %s", why), -EINVAL;
        } else if (is_value_flag(a)) {
            if (i + 1 >= argc)
                return snprintf(err, errlen, "%s: missing value", a), -EINVAL;
            flag_key(a, key, sizeof key);
            if (st_stackd_config_set(c, key, argv[++i], why, sizeof why))
                return snprintf(err, errlen, "--%s", why), -EINVAL;
        } else {
            return snprintf(err, errlen, "unknown argument %s", a), -EINVAL;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    static st_stackd_config cfg; /* ~10 KiB: keep it off the stack */
    char err[1024];
    st_stackd_config_default(&cfg);
    if (argc < 2)
        return usage("missing --config or flags");
    if (parse_args(argc, argv, &cfg, err, sizeof err) || st_stackd_config_check(&cfg, err, sizeof err)) {
        fprintf(stderr, "rift-stackd: %s\n", err);
        return 2;
    }
    if (cfg.log_path[0] && !freopen(cfg.log_path, "a", stderr)) {
        fprintf(stdout, "rift-stackd: log: cannot open %s: %s\n", cfg.log_path, strerror(errno));
        return 3;
    }
    setvbuf(stderr, NULL, _IOLBF, 0);
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = 0;
    st_stackd *d = st_stackd_new(&cfg, err, sizeof err, &rc);
    if (!d) {
        fprintf(stderr, "rift-stackd: %s\n", err);
        return rc == -EINVAL ? 2 : 3;
    }
    st_stackd_describe(d, err, sizeof err);
    fprintf(stderr, "rift-stackd: ready: %s\n", err);
    rc = st_stackd_run(d, &stop_flag);
    st_stackd_free(d);
    if (rc < 0) {
        fprintf(stderr, "rift-stackd: %s\n", strerror(-rc));
        return 1;
    }
    fprintf(stderr, "rift-stackd: stopped\n");
    return 0;
}
