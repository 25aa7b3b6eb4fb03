/* ch_sweep.c — `rift sweep`: a grid of --set values x seeds, one run per cell, sweep.json. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ch_cli.h"
#include "ch_fs.h"
#include "ch_report.h"

#define SWEEP_MAX_PARAMS 8
#define SWEEP_MAX_VALUES 64

typedef struct sweep_param {
    char *key;
    char *values[SWEEP_MAX_VALUES];
    int n_values;
} sweep_param;

/* Split "key=v1,v2,..." at top-level commas ([150,300],[300,600] is two values). */
static int split_param(const char *arg, sweep_param *p)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg)
        return -EINVAL;
    p->key = strndup(arg, (size_t)(eq - arg));
    const char *v = eq + 1, *start = v;
    int depth = 0;
    for (;; v++) {
        if (*v == '[' || *v == '{')
            depth++;
        else if (*v == ']' || *v == '}')
            depth--;
        if ((*v == ',' && depth == 0) || *v == 0) {
            if (p->n_values == SWEEP_MAX_VALUES || v == start)
                return -EINVAL;
            p->values[p->n_values++] = strndup(start, (size_t)(v - start));
            start = v + 1;
        }
        if (*v == 0)
            break;
    }
    return p->key ? 0 : -ENOMEM;
}

static void sweep_help(FILE *f)
{
    fprintf(f, "usage: rift sweep SCENARIO.json --set key=v1,v2,... [--set ...] [--seeds N]\n"
               "                  [--backend sim|dpdk] [--out DIR] [--json]      (default backend: sim)\n\n"
               "Runs the scenario once per cell of the grid (every combination of the --set\n"
               "values) and per seed (1..N, default 3), then writes DIR/sweep.json (default\n"
               "runs/sweep-<name>-<time>/) and prints a table. A value list splits at commas\n"
               "outside brackets: --set cluster.paxos.election_timeout_ms=[150,300],[300,600].\n");
}

static json_t *cell_row(const sweep_param *ps, int np, const int *choice, const ch_run_summary *s)
{
    json_t *params = json_object();
    for (int i = 0; i < np; i++) {
        json_t *v = json_loads(ps[i].values[choice[i]], JSON_DECODE_ANY, NULL);
        json_object_set_new(params, ps[i].key, v ? v : json_string(ps[i].values[choice[i]]));
    }
    json_t *m = s->json ? json_object_get(s->json, "metrics") : NULL;
    double before = json_real_value(json_object_get(m, "throughput_before_faults_ops_per_s"));
    double during = json_real_value(json_object_get(m, "throughput_during_faults_ops_per_s"));
    json_int_t unavail = json_integer_value(json_object_get(m, "max_unavailability_us"));
    return json_pack("{s:o, s:I, s:s, s:i, s:f, s:I, s:f, s:f, s:s}", "params", params, "seed", (json_int_t)s->seed,
                     "verdict", s->verdict, "exit_code", s->exit_code, "max_unavailability_ms",
                     (double)unavail / 1000.0, "leader_changes",
                     json_integer_value(json_object_get(m, "leader_changes")), "throughput_ops_per_s", before,
                     "throughput_ratio", before > 0 ? during / before : 0.0, "run_dir", s->run_dir);
}

static void print_row(const json_t *row)
{
    char *p = json_dumps(json_object_get(row, "params"), JSON_COMPACT);
    printf("%-44s %6lld %-8s %10.0f %8lld %8.2f\n", p ? p : "?",
           (long long)json_integer_value(json_object_get(row, "seed")),
           json_string_value(json_object_get(row, "verdict")),
           json_real_value(json_object_get(row, "max_unavailability_ms")),
           (long long)json_integer_value(json_object_get(row, "leader_changes")),
           json_real_value(json_object_get(row, "throughput_ratio")));
    free(p);
}

/* Advance a mixed-radix counter over the grid; false when done. */
static bool next_cell(const sweep_param *ps, int np, int *choice)
{
    for (int i = np - 1; i >= 0; i--) {
        if (++choice[i] < ps[i].n_values)
            return true;
        choice[i] = 0;
    }
    return false;
}

static int run_grid(const char *file, sweep_param *ps, int np, uint64_t seeds, ch_run_opts *o, const char *dir,
                    json_t *rows, volatile sig_atomic_t *interrupted)
{
    int choice[SWEEP_MAX_PARAMS] = {0}, worst = 0, cell = 0;
    const char *sets[SWEEP_MAX_PARAMS + 64];
    char set_buf[SWEEP_MAX_PARAMS][512], out[PATH_MAX];
    printf("%-44s %6s %-8s %10s %8s %8s\n", "params", "seed", "verdict", "unavail_ms", "leaders", "tput");
    do {
        int ns = 0;
        for (int i = 0; i < o->n_sets; i++)
            sets[ns++] = o->sets[i];
        for (int i = 0; i < np; i++) {
            snprintf(set_buf[i], sizeof(set_buf[i]), "%s=%s", ps[i].key, ps[i].values[choice[i]]);
            sets[ns++] = set_buf[i];
        }
        for (uint64_t seed = 1; seed <= seeds && !*interrupted; seed++) {
            ch_run_opts co = *o;
            co.sets = sets;
            co.n_sets = ns;
            co.has_seed = true;
            co.seed = seed;
            co.progress = false;
            snprintf(out, sizeof(out), "%s/cell-%03d-seed-%llu", dir, cell, (unsigned long long)seed);
            co.out_dir = out;
            ch_run_summary s;
            ch_error err = {{0}};
            int code = ch_run_scenario(file, &co, &s, &err);
            if (err.msg[0])
                fprintf(stderr, "rift sweep: %s\n", err.msg);
            if (code == CH_EXIT_BAD_INPUT || code == CH_EXIT_ENV) {
                json_decref(s.json);
                return code; /* the same error would repeat in every cell */
            }
            json_t *row = cell_row(ps, np, choice, &s);
            print_row(row);
            json_array_append_new(rows, row);
            json_decref(s.json);
            if (ch_exit_rank(code) > ch_exit_rank(worst))
                worst = code;
        }
        cell++;
    } while (!*interrupted && next_cell(ps, np, choice));
    return worst;
}

int ch_cli_sweep(int argc, char **argv, volatile sig_atomic_t *interrupted)
{
    static const struct option opts[] = {{"set", required_argument, 0, 'S'},   {"seeds", required_argument, 0, 'n'},
                                         {"backend", required_argument, 0, 'b'}, {"out", required_argument, 0, 'o'},
                                         {"json", no_argument, 0, 'j'},          {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    sweep_param ps[SWEEP_MAX_PARAMS];
    memset(ps, 0, sizeof(ps));
    int np = 0, rc = 0;
    uint64_t seeds = 3;
    const char *out_dir = NULL;
    bool json = false;
    /* A sweep is many runs: the simulator unless the user asks for the testbed. */
    ch_run_opts o = {.interrupted = interrupted, .backend = "sim"};
    optind = 1;
    int c;
    while (rc == 0 && (c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'S':
            if (np == SWEEP_MAX_PARAMS || split_param(optarg, &ps[np++]) < 0) {
                fprintf(stderr, "rift sweep: --set: expected key=v1,v2,... (at most %d keys), got \"%s\"\n",
                        SWEEP_MAX_PARAMS, optarg);
                rc = CH_EXIT_BAD_INPUT;
            }
            break;
        case 'n':
            if (ch_parse_u64(optarg, &seeds) < 0 || seeds == 0 || seeds > 10000) {
                fprintf(stderr, "rift sweep: --seeds: expected 1..10000, got \"%s\"\n", optarg);
                rc = CH_EXIT_BAD_INPUT;
            }
            break;
        case 'b': o.backend = optarg; break;
        case 'o': out_dir = optarg; break;
        case 'j': json = true; break;
        case 'h': sweep_help(stdout); return 0;
        default: rc = CH_EXIT_BAD_INPUT;
        }
    }
    if (rc == 0 && (optind != argc - 1 || np == 0)) {
        sweep_help(stderr);
        rc = CH_EXIT_BAD_INPUT;
    }
    char dir[PATH_MAX];
    json_t *rows = json_array();
    if (rc == 0) {
        if (out_dir)
            snprintf(dir, sizeof(dir), "%s", out_dir);
        else
            snprintf(dir, sizeof(dir), "runs/sweep-%ld", (long)time(NULL));
        if (ch_fs_mkdirs(dir) < 0) {
            fprintf(stderr, "rift sweep: cannot create %s\n", dir);
            rc = CH_EXIT_ENV;
        }
    }
    if (rc == 0) {
        rc = run_grid(argv[optind], ps, np, seeds, &o, dir, rows, interrupted);
        json_t *keys = json_array();
        for (int i = 0; i < np; i++)
            json_array_append_new(keys, json_string(ps[i].key));
        json_t *sweep = json_pack("{s:i, s:s, s:o, s:I, s:O}", "schema_version", 1, "scenario", argv[optind],
                                  "params", keys, "seeds", (json_int_t)seeds, "rows", rows);
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/sweep.json", dir);
        if (ch_fs_write_json(path, sweep, 0) < 0)
            rc = CH_EXIT_ENV;
        snprintf(path, sizeof(path), "%s/report.html", dir); /* the heatmap; cells link to each run's report */
        if (ch_report_write(path, sweep, NULL) < 0)
            rc = CH_EXIT_ENV;
        snprintf(path, sizeof(path), "%s/sweep.json", dir);
        fprintf(stderr, "sweep: %zu runs -> %s\n", json_array_size(rows), path);
        if (json) {
            json_t *j = json_pack("{s:s, s:I, s:i}", "sweep", path, "runs", (json_int_t)json_array_size(rows),
                                  "exit_code", rc);
            char *s = json_dumps(j, JSON_COMPACT);
            printf("%s\n", s ? s : "{}");
            free(s);
            json_decref(j);
        }
        json_decref(sweep);
    }
    json_decref(rows);
    for (int i = 0; i < np; i++) {
        free(ps[i].key);
        for (int j = 0; j < ps[i].n_values; j++)
            free(ps[i].values[j]);
    }
    return rc;
}
