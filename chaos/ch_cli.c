/* ch_cli.c — `rift run` and `rift check`: argument parsing and terminal output. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ch_cli.h"
#include "ch_history.h"
#include "ch_lin.h"

int ch_exit_rank(int code)
{
    /* worst first: environment, bad input, failed, unknown, pass */
    switch (code) {
    case CH_EXIT_PASS: return 0;
    case CH_EXIT_UNKNOWN: return 1;
    case CH_EXIT_FAIL: return 2;
    case CH_EXIT_BAD_INPUT: return 3;
    default: return 4;
    }
}

int ch_parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-')
        return -EINVAL;
    *out = v;
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Scenario files named on the command line; a directory contributes its *.json
 * (sorted, schema.json excluded). Returns the count or -errno. */
int ch_collect_scenarios(char **args, int n, char ***out)
{
    char **list = NULL;
    int count = 0, cap = 0;
    for (int i = 0; i < n; i++) {
        struct stat st;
        if (stat(args[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            DIR *d = opendir(args[i]);
            struct dirent *de;
            int first = count;
            while (d && (de = readdir(d))) {
                size_t l = strlen(de->d_name);
                if (l < 6 || strcmp(de->d_name + l - 5, ".json") || !strcmp(de->d_name, "schema.json"))
                    continue;
                if (count == cap) {
                    cap = cap ? cap * 2 : 16;
                    list = realloc(list, (size_t)cap * sizeof(char *));
                }
                if (!list || asprintf(&list[count], "%s/%s", args[i], de->d_name) < 0) {
                    if (d)
                        closedir(d);
                    return -ENOMEM;
                }
                count++;
            }
            if (d)
                closedir(d);
            qsort(list + first, (size_t)(count - first), sizeof(char *), cmp_str);
            continue;
        }
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            list = realloc(list, (size_t)cap * sizeof(char *));
        }
        if (!list || !(list[count] = strdup(args[i])))
            return -ENOMEM;
        count++;
    }
    *out = list;
    return count;
}

void ch_free_list(char **list, int n)
{
    for (int i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

static void run_help(FILE *f)
{
    fprintf(f, "usage: rift run SCENARIO.json|DIR... [--backend dpdk|sim] [--seed N] [--set key=value]...\n"
               "                [--out DIR] [--json] [--live]\n\n"
               "Runs each scenario, checks its history and assertions, and writes run.json,\n"
               "history.jsonl, junit.xml and report.html into runs/<name>-<time>/ (or --out DIR).\n"
               "  --backend B     dpdk (default: network namespaces, rift-stackd on DPDK, rift-replica\n"
               "                  processes; needs root) or sim (the deterministic simulator)\n"
               "  --seed N        override the scenario's seed\n"
               "  --set k=v       override a scenario field by dotted path (cluster.paxos.fd=naive)\n"
               "  --out DIR       write into DIR (one scenario only)\n"
               "  --json          print a JSON summary object as the last line of stdout\n"
               "  --live          watch it in report.html: live.js is rewritten every second and the\n"
               "                  simulator runs at wall-clock speed (dashboard live view)\n"
               "Exit: the worst of the runs: 0 pass, 1 fail, 2 bad input, 3 environment, 4 unknown.\n");
}

int ch_parse_run_opts(int argc, char **argv, ch_run_opts *o, const char ***sets, bool *json, int *first_arg)
{
    static const struct option opts[] = {{"backend", required_argument, 0, 'b'}, {"seed", required_argument, 0, 's'},
                                         {"set", required_argument, 0, 'S'},     {"out", required_argument, 0, 'o'},
                                         {"json", no_argument, 0, 'j'},          {"live", no_argument, 0, 'l'},
                                         {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    *sets = calloc((size_t)argc + 1, sizeof(char *));
    if (!*sets)
        return -ENOMEM;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'b':
            if (strcmp(optarg, "sim") && strcmp(optarg, "dpdk")) {
                fprintf(stderr, "rift: --backend: expected dpdk or sim, got \"%s\"\n", optarg);
                return -EINVAL;
            }
            o->backend = optarg;
            break;
        case 's':
            if (ch_parse_u64(optarg, &o->seed) < 0) {
                fprintf(stderr, "rift: --seed: expected a non-negative integer, got \"%s\"\n", optarg);
                return -EINVAL;
            }
            o->has_seed = true;
            break;
        case 'S': (*sets)[o->n_sets++] = optarg; break;
        case 'o': o->out_dir = optarg; break;
        case 'j': *json = true; break;
        case 'l': o->live = true; break; /* report.html + live.js as the run goes (ch_report) */
        case 'h': return 1;
        default: return -EINVAL;
        }
    }
    o->sets = *sets;
    *first_arg = optind;
    return 0;
}

static void print_table(ch_run_summary *s, int n)
{
    printf("\n%-28s %-8s %-6s %s\n", "scenario", "verdict", "exit", "run");
    for (int i = 0; i < n; i++)
        printf("%-28s %-8s %-6d %s\n", s[i].name[0] ? s[i].name : "?", s[i].verdict, s[i].exit_code,
               s[i].run_dir[0] ? s[i].run_dir : "-");
}

int ch_cli_run(int argc, char **argv, volatile sig_atomic_t *interrupted)
{
    ch_run_opts o = {.interrupted = interrupted, .progress = isatty(STDERR_FILENO)};
    const char **sets = NULL;
    bool json = false;
    int first, rc = ch_parse_run_opts(argc, argv, &o, &sets, &json, &first);
    if (rc != 0 || first >= argc) {
        run_help(rc == 1 ? stdout : stderr);
        free(sets);
        return rc == 1 ? 0 : CH_EXIT_BAD_INPUT;
    }
    char **files;
    int n = ch_collect_scenarios(argv + first, argc - first, &files);
    if (n <= 0 || (o.out_dir && n > 1)) {
        fprintf(stderr, n == 0   ? "rift run: no scenario files found\n"
                        : n < 0  ? "rift run: out of memory\n"
                                 : "rift run: --out takes one scenario\n");
        free(sets);
        return CH_EXIT_BAD_INPUT;
    }
    ch_run_summary *sum = calloc((size_t)n, sizeof(*sum));
    int worst = 0;
    json_t *all = json_array();
    for (int i = 0; i < n && sum && !(interrupted && *interrupted); i++) {
        ch_error err = {{0}};
        int code = ch_run_scenario(files[i], &o, &sum[i], &err);
        if (err.msg[0])
            fprintf(stderr, "rift: %s\n", err.msg);
        else
            fprintf(stderr, "%s: %s (seed %llu) -> %s\n", sum[i].name, sum[i].verdict,
                    (unsigned long long)sum[i].seed, sum[i].run_dir);
        if (ch_exit_rank(code) > ch_exit_rank(worst))
            worst = code;
        json_array_append_new(all, sum[i].json ? sum[i].json
                                               : json_pack("{s:s, s:s, s:i, s:s}", "file", files[i], "verdict",
                                                           "error", "exit_code", code, "error", err.msg));
        sum[i].json = NULL;
    }
    if (n > 1)
        print_table(sum, n);
    if (json) {
        json_t *summary = n == 1 ? json_incref(json_array_get(all, 0))
                                 : json_pack("{s:O, s:i}", "runs", all, "exit_code", worst);
        char *s = json_dumps(summary, JSON_COMPACT);
        printf("%s\n", s ? s : "{}");
        free(s);
        json_decref(summary);
    }
    json_decref(all);
    free(sum);
    ch_free_list(files, n);
    free(sets);
    return worst;
}

/* ---------- rift check ---------- */

static void check_help(FILE *f)
{
    fprintf(f, "usage: rift check HISTORY.jsonl [--time-limit S] [--json]\n\n"
               "Checks a Jepsen-style KV history (DESIGN.md \"History format\") for linearizability.\n"
               "Exit: 0 linearizable, 1 not (the offending operations are printed), 2 malformed\n"
               "input (file:line), 4 unknown (time limit reached).\n");
}

static void print_failure(const ch_history *h, const ch_lin_result *r)
{
    printf("not linearizable: key \"%s\": %zu operations cannot be ordered%s:\n", r->fail_key ? r->fail_key : "?",
           r->fail_n_operations, r->fail_minimal ? " (minimal)" : "");
    for (size_t i = 0; i < r->n_fail_ops; i++) {
        char line[4096];
        const ch_op *op = &h->ops[r->fail_ops[i]];
        if (ch_op_format(op, line, sizeof(line)) >= 0)
            printf("  line %u: %s\n", op->line, line);
    }
}

int ch_cli_check(int argc, char **argv)
{
    static const struct option opts[] = {{"time-limit", required_argument, 0, 't'},
                                         {"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    double limit = 60;
    bool json = false;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 't':
            limit = strtod(optarg, &end);
            if (end == optarg || *end || !(limit > 0)) {
                fprintf(stderr, "rift check: --time-limit: expected seconds > 0, got \"%s\"\n", optarg);
                return CH_EXIT_BAD_INPUT;
            }
            break;
        case 'j': json = true; break;
        case 'h': check_help(stdout); return 0;
        default: check_help(stderr); return CH_EXIT_BAD_INPUT;
        }
    }
    if (optind != argc - 1) {
        check_help(stderr);
        return CH_EXIT_BAD_INPUT;
    }
    ch_history *h = NULL;
    ch_error err = {{0}};
    int e = ch_history_read_file(argv[optind], &h, &err);
    if (e < 0) {
        fprintf(stderr, "rift check: %s\n", err.msg[0] ? err.msg : strerror(-e));
        return e == -EINVAL ? CH_EXIT_BAD_INPUT : e == -ENOMEM ? CH_EXIT_ENV : CH_EXIT_BAD_INPUT;
    }
    ch_lin_result r;
    memset(&r, 0, sizeof(r));
    e = ch_lin_check(h, limit, &r);
    int code = e < 0 ? CH_EXIT_ENV
               : r.verdict == CH_LIN_OK ? CH_EXIT_PASS
               : r.verdict == CH_LIN_FAIL ? CH_EXIT_FAIL
                                          : CH_EXIT_UNKNOWN;
    if (e < 0)
        fprintf(stderr, "rift check: %s\n", strerror(-e));
    else if (r.verdict == CH_LIN_FAIL)
        print_failure(h, &r);
    else
        printf("%s: %zu ops on %zu keys in %.3f s%s%s\n", ch_lin_verdict_name(r.verdict), h->n, r.n_keys,
               r.elapsed_s, r.reason[0] ? ": " : "", r.reason);
    if (json)
        printf("{\"verdict\":\"%s\",\"ops\":%zu,\"keys\":%zu,\"elapsed_s\":%.6f,\"exit_code\":%d}\n",
               e < 0 ? "error" : ch_lin_verdict_name(r.verdict), h->n, r.n_keys, r.elapsed_s, code);
    ch_lin_result_free(&r);
    ch_history_free(h);
    return code;
}
