/* ch_fuzz.c — `rift fuzz`: swarm-random fault schedules in the simulator.
 *
 * Each seed enables a random subset of fault kinds with random intensities
 * (swarm testing: a schedule that mixes fewer kinds explores each one harder),
 * writes the schedule as an ordinary scenario file, and runs it. Passing
 * scenarios are deleted; failing ones stay as standalone repros for `rift run`. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../common/rift_rng.h"
#include "ch_cli.h"
#include "ch_fs.h"
#include "ch_scenario.h"

/* crash-majority crashes a majority of the replicas at once (never all of
 * them) and restarts them together: with a durable WAL the survivor keeps the
 * executed state and the cluster recovers, but with durability off the
 * restarted majority forgot what it acknowledged and can elect a leader with
 * an empty log — the fault that shows amnesia (lost writes, diverging logs).
 * crash-all crashes every replica; it is not drawn unless --faults names it
 * (recovery rests on each replica's own checkpoint, docs/durability.md, and
 * back-to-back whole-cluster crashes can outrun recover_within_ms). */
enum {
    F_PARTITION, F_CUT, F_LOSS, F_DELAY, F_DUPLICATE, F_REORDER, F_CRASH, F_PAUSE, F_GC,
    F_CRASH_MAJORITY, F_CRASH_ALL, F_KINDS
};
static const char *const fault_names[F_KINDS] = {
    "partition", "cut",   "loss",     "delay",          "duplicate", "reorder",
    "crash",     "pause", "gc-pause", "crash-majority", "crash-all",
};
#define F_DEFAULT (((1u << F_KINDS) - 1) & ~(1u << F_CRASH_ALL))

typedef struct fuzz_opts {
    uint64_t seeds;
    double time_s;
    int replicas;
    uint64_t duration_ms;
    const char *out;
    unsigned enabled; /* fault kinds the swarm may draw from */
    const char *const *sets;
    int n_sets;
} fuzz_opts;

static const char *rnode(rift_rng *g, int replicas, char *buf)
{
    snprintf(buf, 8, "r%d", (int)rift_rng_range(g, 1, (uint64_t)replicas));
    return buf;
}

static json_t *random_fault(rift_rng *g, int kind, int replicas, uint64_t at)
{
    char a[8], b[8];
    json_t *act = json_pack("{s:I, s:s}", "at_ms", (json_int_t)at, "do", fault_names[kind]);
    switch (kind) {
    case F_PARTITION: {
        json_t *g1 = json_array(), *g2 = json_array();
        for (int i = 1; i <= replicas; i++) {
            char n[8];
            snprintf(n, sizeof(n), "r%d", i);
            json_array_append_new(rift_rng_next(g) & 1 ? g1 : g2, json_string(n));
        }
        if (json_array_size(g2) == 0) /* both sides must hold a replica */
            json_array_append_new(g2, json_string("r1")), json_array_remove(g1, 0);
        json_array_append_new(g1, json_string("c1")); /* the client sits on one side */
        json_object_set_new(act, "groups", json_pack("[o,o]", g1, g2));
        break;
    }
    case F_CUT:
        rnode(g, replicas, a);
        do
            rnode(g, replicas, b);
        while (replicas > 1 && !strcmp(a, b));
        if (rift_rng_next(g) & 1)
            json_object_set_new(act, "between", json_pack("[s,s]", a, b));
        else {
            json_object_set_new(act, "from", json_string(a));
            json_object_set_new(act, "to", json_string(b));
        }
        break;
    case F_LOSS:
    case F_DUPLICATE:
    case F_REORDER:
        json_object_set_new(act, "node", json_string(rnode(g, replicas, a)));
        json_object_set_new(act, "probability", json_real(0.05 + 0.45 * rift_rng_double(g)));
        break;
    case F_DELAY:
        json_object_set_new(act, "node", json_string(rnode(g, replicas, a)));
        json_object_set_new(act, "ms", json_integer((json_int_t)rift_rng_range(g, 1, 200)));
        json_object_set_new(act, "jitter_ms", json_integer((json_int_t)rift_rng_range(g, 0, 50)));
        break;
    case F_CRASH:
    case F_PAUSE:
        json_object_set_new(act, "node", json_string(rnode(g, replicas, a)));
        break;
    case F_GC:
        json_object_set_new(act, "node", json_string(rnode(g, replicas, a)));
        json_object_set_new(act, "every_ms", json_integer((json_int_t)rift_rng_range(g, 200, 1000)));
        json_object_set_new(act, "pause_ms", json_integer((json_int_t)rift_rng_range(g, 20, 400)));
        json_object_set_new(act, "for_ms", json_integer((json_int_t)rift_rng_range(g, 500, 3000)));
        break;
    }
    return act;
}

/* The fault's undo, shortly after it (crash -> restart, pause -> resume, links -> heal-all). */
static json_t *undo(int kind, json_t *fault, uint64_t at)
{
    const char *what = kind == F_CRASH ? "restart" : kind == F_PAUSE ? "resume" : kind == F_GC ? NULL : "heal-all";
    if (!what)
        return NULL;
    json_t *u = json_pack("{s:I, s:s}", "at_ms", (json_int_t)at, "do", what);
    if (kind == F_CRASH || kind == F_PAUSE)
        json_object_set(u, "node", json_object_get(fault, "node"));
    return u;
}

/* Crash the fault's node only if it is up and a minority stays down. */
static bool crash_allowed(int replicas, uint64_t *down_until, uint64_t t, json_t *f, uint64_t back)
{
    int node = atoi(json_string_value(json_object_get(f, "node")) + 1) - 1, down = 0;
    for (int i = 0; i < replicas; i++)
        down += down_until[i] > t;
    if (down_until[node] > t || down + 1 > (replicas - 1) / 2)
        return false;
    down_until[node] = back;
    return true;
}

static json_t *node_action(uint64_t at, const char *what, int replica)
{
    char n[8];
    snprintf(n, sizeof(n), "r%d", replica + 1);
    return json_pack("{s:I, s:s, s:s}", "at_ms", (json_int_t)at, "do", what, "node", n);
}

/* Crash a random majority that leaves one replica up (or, all: every
 * replica), each back within 100 ms of the others after 20..2000 ms; only when
 * every replica is up, so the crashes are concurrent and none overlaps a
 * single crash. Half the time the survivor lags first: every link of it is
 * cut 50..500 ms before the crash (the others commit without it) and cleared
 * once the majority is back, so the writes of that window live only on the
 * crashed majority — in its WAL, or nowhere when durability is off. (A pause
 * would not do: a paused process finds its queued frames on resume.)
 * Returns when it is all over (0: not now). */
static uint64_t crash_majority(rift_rng *g, json_t *timeline, int replicas, uint64_t *down_until, uint64_t t,
                               uint64_t quiet, bool all)
{
    if (!all && replicas < 3)
        return 0; /* no majority short of all */
    for (int i = 0; i < replicas; i++)
        if (down_until[i] > t)
            return 0;
    int order[PX_MAX_REPLICAS];
    for (int i = 0; i < replicas; i++)
        order[i] = i;
    for (int i = replicas - 1; i > 0; i--) { /* Fisher-Yates: which replicas */
        int j = (int)rift_rng_range(g, 0, (uint64_t)i), x = order[i];
        order[i] = order[j];
        order[j] = x;
    }
    int m = all ? replicas : (int)rift_rng_range(g, (uint64_t)replicas / 2 + 1, (uint64_t)replicas - 1);
    /* The survivor, if it lags, stays cut off until the majority is back: a
     * heal with no majority up could not recover (recover_within_ms). */
    bool lag = !all && rift_rng_next(g) & 1;
    uint64_t crash_at = lag ? t + rift_rng_range(g, 50, 500) : t;
    uint64_t back = crash_at + rift_rng_range(g, 20, 2000);
    if (back + 100 > quiet)
        return 0;
    for (int k = 0; k < m; k++) {
        uint64_t at = back + rift_rng_range(g, 0, 100);
        json_array_append_new(timeline, node_action(crash_at, "crash", order[k]));
        json_array_append_new(timeline, node_action(at, "restart", order[k]));
        down_until[order[k]] = at;
    }
    if (lag) {
        json_array_append_new(timeline, node_action(t, "cut", order[m]));
        json_array_append_new(timeline, node_action(back + 100, "clear", order[m]));
        down_until[order[m]] = back + 100;
    }
    return back + 100;
}

static json_t *generate(uint64_t seed, const fuzz_opts *o)
{
    rift_rng g;
    rift_rng_seed(&g, seed);
    unsigned swarm = 0;
    while (!swarm)
        swarm = (unsigned)rift_rng_next(&g) & o->enabled; /* a random non-empty subset */
    json_t *timeline = json_array();
    uint64_t end = o->duration_ms, t = 500, quiet = end * 7 / 10;
    uint64_t down_until[PX_MAX_REPLICAS] = {0};
    /* A majority crash happens alone: no other fault is open while it lasts,
     * because a heal or resume while no majority is up cannot recover within
     * recover_within_ms, and that would be the schedule's fault, not the store's. */
    uint64_t busy = 0;
    while (t < quiet) {
        int kind;
        do
            kind = (int)rift_rng_range(&g, 0, F_KINDS - 1);
        while (!(swarm & (1u << kind)));
        if (kind == F_CRASH_MAJORITY || kind == F_CRASH_ALL) {
            uint64_t over = t >= busy ? crash_majority(&g, timeline, o->replicas, down_until, t, quiet,
                                                       kind == F_CRASH_ALL)
                                      : 0;
            if (over)
                t = busy = over;
            t += rift_rng_range(&g, 50, 1500);
            continue;
        }
        json_t *f = random_fault(&g, kind, o->replicas, t);
        uint64_t len = rift_rng_range(&g, 100, 2000), back = t + len < quiet ? t + len : quiet;
        if (kind == F_CRASH && !crash_allowed(o->replicas, down_until, t, f, back)) {
            json_decref(f); /* Paxos tolerates a minority down: crash no more at once */
            t += rift_rng_range(&g, 50, 1500);
            continue;
        }
        json_t *u = undo(kind, f, back);
        json_array_append_new(timeline, f);
        if (u)
            json_array_append_new(timeline, u);
        if (u && back > busy)
            busy = back;
        t += rift_rng_range(&g, 50, 1500);
    }
    /* The last 30%: everything healed (every crash and pause was undone by then),
     * so recovery is asserted too. */
    json_array_append_new(timeline, json_pack("{s:I, s:s}", "at_ms", (json_int_t)quiet, "do", "heal-all"));
    char name[64];
    snprintf(name, sizeof(name), "fuzz-%llu", (unsigned long long)seed);
    return json_pack("{s:s, s:s, s:I, s:I, s:{s:i}, s:{s:i, s:i, s:I}, s:o, s:{s:b, s:b, s:I}}", "name", name,
                     "description", "generated by rift fuzz (swarm fault schedule)", "seed", (json_int_t)seed,
                     "duration_ms", (json_int_t)end, "cluster", "replicas", o->replicas, "workload", "clients", 4,
                     "keys", 5, "op_timeout_ms", (json_int_t)500, "timeline", timeline, "assertions",
                     "linearizable", 1, "logs_agree", 1, "recover_within_ms", (json_int_t)(end - quiet) / 2);
}

static void fuzz_help(FILE *f)
{
    fprintf(f, "usage: rift fuzz [--seeds N | --time S] [--replicas N] [--duration-ms MS]\n"
               "                 [--faults kind,kind,...] [--set key=value]... [--out DIR]\n\n"
               "Draws a random fault schedule per seed (a random subset of the enabled fault kinds:\n"
               "partition, cut, loss, delay, duplicate, reorder, crash, pause, gc-pause,\n"
               "crash-majority; crash-all only when --faults names it), runs it in the\n"
               "simulator with linearizability, log-agreement and\n"
               "recovery assertions, and keeps DIR/fuzz-<seed>.json for every failure: `rift run`\n"
               "reproduces it. --set applies to every generated scenario: with\n"
               "--set cluster.paxos.durability=off, crash-majority makes a restarted majority forget\n"
               "what it acknowledged, and the checkers catch the lost writes.\n");
}

static int parse_faults(const char *arg, unsigned *out)
{
    *out = 0;
    char *copy = strdup(arg), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int k = 0;
        while (k < F_KINDS && strcmp(tok, fault_names[k]))
            k++;
        if (k == F_KINDS) {
            fprintf(stderr, "rift fuzz: --faults: unknown fault kind \"%s\"\n", tok);
            free(copy);
            return -EINVAL;
        }
        *out |= 1u << k;
    }
    free(copy);
    return *out ? 0 : -EINVAL;
}

static int parse_fuzz(int argc, char **argv, fuzz_opts *o, const char ***sets)
{
    static const struct option opts[] = {{"seeds", required_argument, 0, 'n'},  {"time", required_argument, 0, 't'},
                                         {"replicas", required_argument, 0, 'r'}, {"out", required_argument, 0, 'o'},
                                         {"faults", required_argument, 0, 'f'},   {"set", required_argument, 0, 'S'},
                                         {"duration-ms", required_argument, 0, 'd'}, {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    *sets = calloc((size_t)argc + 1, sizeof(char *));
    optind = 1;
    int c;
    uint64_t v;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (ch_parse_u64(optarg, &o->seeds) < 0 || o->seeds == 0)
                return fprintf(stderr, "rift fuzz: --seeds: expected a count > 0\n"), -EINVAL;
            break;
        case 't':
            o->time_s = atof(optarg);
            if (!(o->time_s > 0))
                return fprintf(stderr, "rift fuzz: --time: expected seconds > 0\n"), -EINVAL;
            break;
        case 'r':
            if (ch_parse_u64(optarg, &v) < 0 || v < 1 || v > 9)
                return fprintf(stderr, "rift fuzz: --replicas: expected 1..9\n"), -EINVAL;
            o->replicas = (int)v;
            break;
        case 'd':
            if (ch_parse_u64(optarg, &o->duration_ms) < 0 || o->duration_ms < 2000)
                return fprintf(stderr, "rift fuzz: --duration-ms: expected >= 2000\n"), -EINVAL;
            break;
        case 'o': o->out = optarg; break;
        case 'f':
            if (parse_faults(optarg, &o->enabled) < 0)
                return -EINVAL;
            break;
        case 'S': (*sets)[o->n_sets++] = optarg; break;
        case 'h': return 1;
        default: return -EINVAL;
        }
    }
    o->sets = *sets;
    return optind == argc ? 0 : -EINVAL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int ch_cli_fuzz(int argc, char **argv, volatile sig_atomic_t *interrupted)
{
    fuzz_opts o = {.seeds = 0, .replicas = 3, .duration_ms = 8000, .out = "runs/fuzz", .enabled = F_DEFAULT};
    const char **sets = NULL;
    int rc = parse_fuzz(argc, argv, &o, &sets);
    if (rc != 0) {
        fuzz_help(rc == 1 ? stdout : stderr);
        free(sets);
        return rc == 1 ? 0 : CH_EXIT_BAD_INPUT;
    }
    if (!o.seeds && !(o.time_s > 0))
        o.seeds = 100;
    if (ch_fs_mkdirs(o.out) < 0) {
        fprintf(stderr, "rift fuzz: cannot create %s\n", o.out);
        free(sets);
        return CH_EXIT_ENV;
    }
    double t0 = now_s();
    uint64_t ran = 0, failed = 0;
    int worst = 0;
    for (uint64_t seed = 1; !*interrupted; seed++) {
        if (o.seeds ? seed > o.seeds : now_s() - t0 > o.time_s)
            break;
        char path[PATH_MAX], run_dir[PATH_MAX];
        snprintf(path, sizeof(path), "%s/fuzz-%llu.json", o.out, (unsigned long long)seed);
        snprintf(run_dir, sizeof(run_dir), "%s/run-%llu", o.out, (unsigned long long)seed);
        json_t *sc = generate(seed, &o);
        /* --set overrides are baked into the file, so it reproduces on its own. */
        ch_error err = {{0}};
        for (int i = 0; i < o.n_sets && sc; i++)
            if (ch_scenario_apply_set(sc, o.sets[i], &err) < 0) {
                fprintf(stderr, "rift fuzz: --set %s: %s\n", o.sets[i], err.msg);
                json_decref(sc);
                free(sets);
                return CH_EXIT_BAD_INPUT;
            }
        if (!sc || ch_fs_write_json(path, sc, 2) < 0) {
            json_decref(sc);
            fprintf(stderr, "rift fuzz: cannot write %s\n", path);
            free(sets);
            return CH_EXIT_ENV;
        }
        json_decref(sc);
        ch_run_opts ro = {.backend = "sim", .out_dir = run_dir, .interrupted = interrupted, .lin_time_limit_s = 20};
        ch_run_summary s;
        int code = ch_run_scenario(path, &ro, &s, &err);
        ran++;
        if (code == CH_EXIT_PASS) {
            unlink(path);
            char cmd[PATH_MAX + 16];
            snprintf(cmd, sizeof(cmd), "%s", run_dir);
            ch_fs_remove_tree(cmd);
        } else {
            failed += code == CH_EXIT_FAIL;
            printf("seed %llu: %s -> %s (rift run %s)\n", (unsigned long long)seed, s.verdict, run_dir, path);
            if (err.msg[0])
                fprintf(stderr, "rift fuzz: %s\n", err.msg);
            if (ch_exit_rank(code) > ch_exit_rank(worst))
                worst = code;
        }
        json_decref(s.json);
        if (isatty(STDERR_FILENO))
            fprintf(stderr, "\r  %llu schedules, %llu failing ", (unsigned long long)ran, (unsigned long long)failed);
    }
    fprintf(stderr, "\nfuzz: %llu schedules, %llu failing (repros in %s)\n", (unsigned long long)ran,
            (unsigned long long)failed, o.out);
    free(sets);
    return worst;
}
