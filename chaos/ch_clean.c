/* ch_clean.c — remove testbeds of dead runs (see ch_clean.h). */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ch_clean.h"
#include "ch_proc.h"
#include "ch_run.h"
#include "ch_testbed.h"

/* Why a testbed may go, or NULL if its owner still runs. */
static const char *removal_reason(const json_t *state, bool all)
{
    if (all)
        return "--all";
    json_int_t pid = json_integer_value(json_object_get(state, "owner_pid"));
    json_t *start_j = json_object_get(state, "owner_start_ticks");
    if (pid <= 0 || pid > INT_MAX)
        return "owner dead";
    ch_proc_usage u = {0};
    char st = 0;
    if (kill((pid_t)pid, 0) != 0 && errno == ESRCH)
        return "owner dead";
    if (ch_proc_sample((pid_t)pid, &u, NULL, NULL, &st) < 0 || st == 'Z' || st == 'X')
        return "owner dead";
    /* The same PID with another start time is another process. */
    if (json_is_integer(start_j) && (uint64_t)json_integer_value(start_j) != u.start_ticks)
        return "owner pid reused";
    return NULL;
}

static void note_error(json_t *errors, int rc, const ch_error *e, int *first_rc, ch_error *err)
{
    json_array_append_new(errors, json_string(e->msg[0] ? e->msg : strerror(-rc)));
    if (*first_rc == 0) {
        *first_rc = rc;
        snprintf(err->msg, sizeof err->msg, "%s", e->msg[0] ? e->msg : strerror(-rc));
    }
}

static void remove_one(const char *state_dir, const char *prefix, json_int_t pid, const char *reason, json_t *report,
                       int *first_rc, ch_error *err)
{
    json_t *entry = json_pack("{s:s, s:I, s:s}", "prefix", prefix, "owner_pid", pid, "reason", reason);
    ch_error e = {{0}};
    int rc = ch_testbed_remove(state_dir, prefix, entry, &e);
    if (rc < 0) {
        note_error(json_object_get(report, "errors"), rc, &e, first_rc, err);
        json_object_set_new(entry, "error", json_string(e.msg));
    }
    if (entry)
        json_array_append_new(json_object_get(report, "removed"), entry);
}

/* Prefixes that have a state file in state_dir (a JSON array of strings) and
 * act on each. */
static json_t *scan_state_files(const ch_clean_opts *o, const char *state_dir, json_t *report, int *first_rc,
                                ch_error *err)
{
    json_t *seen = json_array();
    DIR *d = opendir(state_dir);
    if (!d || !seen)
        return seen; /* no state directory: nothing was ever made here */
    for (struct dirent *de; (de = readdir(d));) {
        size_t len = strlen(de->d_name);
        if (len < 6 || strcmp(de->d_name + len - 5, ".json"))
            continue;
        char prefix[CH_TESTBED_PREFIX_MAX + 1];
        if (len - 5 > CH_TESTBED_PREFIX_MAX)
            continue;
        snprintf(prefix, sizeof prefix, "%.*s", (int)(len - 5), de->d_name);
        if (!ch_testbed_prefix_valid(prefix) || (o->only_prefix && strcmp(prefix, o->only_prefix)))
            continue;
        json_array_append_new(seen, json_string(prefix));
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", state_dir, de->d_name);
        json_error_t jerr;
        json_t *state = json_load_file(path, 0, &jerr);
        const char *in_file = json_string_value(json_object_get(state, "prefix"));
        if (!state || !in_file || strcmp(in_file, prefix)) {
            ch_error e;
            snprintf(e.msg, sizeof e.msg, "%s: not a rift testbed state file (%s)", path,
                     state ? "expected \"prefix\": the file's name" : jerr.text);
            note_error(json_object_get(report, "errors"), -EINVAL, &e, first_rc, err);
            json_decref(state);
            continue;
        }
        json_int_t pid = json_integer_value(json_object_get(state, "owner_pid"));
        const char *reason = removal_reason(state, o->all);
        if (reason) {
            remove_one(state_dir, prefix, pid, reason, report, first_rc, err);
        } else {
            const char *comm = json_string_value(json_object_get(state, "owner_comm"));
            json_array_append_new(json_object_get(report, "kept"), json_pack("{s:s, s:I, s:s}", "prefix", prefix,
                                                                             "owner_pid", pid, "owner_comm",
                                                                             comm ? comm : ""));
        }
        json_decref(state);
    }
    closedir(d);
    return seen;
}

static bool in_array(const json_t *a, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v) if (!strcmp(json_string_value(v), s)) return true;
    return false;
}

/* Namespaces named like a testbed's whose prefix has no state file. */
static void scan_orphans(const ch_clean_opts *o, const char *state_dir, const json_t *seen, json_t *report,
                         int *first_rc, ch_error *err)
{
    DIR *d = opendir(CH_TESTBED_NETNS_DIR);
    if (!d)
        return;
    json_t *orphans = json_array();
    for (struct dirent *de; orphans && (de = readdir(d));) {
        const char *dash = strchr(de->d_name, '-');
        char prefix[CH_TESTBED_PREFIX_MAX + 1];
        if (!dash || dash - de->d_name > CH_TESTBED_PREFIX_MAX)
            continue;
        snprintf(prefix, sizeof prefix, "%.*s", (int)(dash - de->d_name), de->d_name);
        if (!ch_testbed_prefix_valid(prefix) || in_array(seen, prefix) || in_array(orphans, prefix) ||
            (o->only_prefix && strcmp(prefix, o->only_prefix)))
            continue;
        json_array_append_new(orphans, json_string(prefix));
    }
    closedir(d);
    size_t i;
    json_t *v;
    json_array_foreach(orphans, i, v)
    {
        if (o->all)
            remove_one(state_dir, json_string_value(v), 0, "orphan", report, first_rc, err);
        else
            json_array_append(json_object_get(report, "orphans"), v);
    }
    json_decref(orphans);
}

int ch_clean(const ch_clean_opts *o, json_t **report, ch_error *err)
{
    const char *state_dir = o->state_dir ? o->state_dir : CH_TESTBED_STATE_DIR;
    json_t *r = json_pack("{s:[], s:[], s:[], s:[]}", "removed", "kept", "orphans", "errors");
    if (!r) {
        snprintf(err->msg, sizeof err->msg, "clean: out of memory");
        return -ENOMEM;
    }
    int first_rc = 0;
    json_t *seen = scan_state_files(o, state_dir, r, &first_rc, err);
    if (seen)
        scan_orphans(o, state_dir, seen, r, &first_rc, err);
    else if (first_rc == 0) {
        first_rc = -ENOMEM;
        snprintf(err->msg, sizeof err->msg, "clean: out of memory");
    }
    json_decref(seen);
    *report = r;
    return first_rc;
}

/* ---------- rift clean ---------- */

static void clean_help(FILE *f)
{
    fprintf(f, "usage: rift clean [--all] [--json]\n\n"
               "Removes the testbeds (network namespaces, veths, bridge, processes inside) of dpdk\n"
               "runs whose controller is no longer alive, as recorded in %s/<prefix>.json.\n"
               "  --all    also remove testbeds of live runs, and namespaces named like a\n"
               "           testbed's that have no state file (orphans)\n"
               "  --json   print the report as a JSON object on the last line\n"
               "Exit: 0 done (or nothing to do), 3 something could not be removed (root needed).\n",
               CH_TESTBED_STATE_DIR);
}

static void print_report(const json_t *r)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(r, "removed"), i, v)
        printf("%s %s (%s, owner pid %lld): %zu namespaces, %lld processes killed\n",
               json_object_get(v, "error") ? "could not fully remove" : "removed",
               json_string_value(json_object_get(v, "prefix")), json_string_value(json_object_get(v, "reason")),
               (long long)json_integer_value(json_object_get(v, "owner_pid")),
               json_array_size(json_object_get(v, "namespaces")),
               (long long)json_integer_value(json_object_get(v, "processes_killed")));
    json_array_foreach(json_object_get(r, "kept"), i, v)
        printf("kept %s: owner pid %lld (%s) is alive; --all removes it\n",
               json_string_value(json_object_get(v, "prefix")),
               (long long)json_integer_value(json_object_get(v, "owner_pid")),
               json_string_value(json_object_get(v, "owner_comm")));
    json_array_foreach(json_object_get(r, "orphans"), i, v)
        printf("orphan %s: namespaces %s/%s-* without a state file; --all removes them\n", json_string_value(v),
               CH_TESTBED_NETNS_DIR, json_string_value(v));
    json_array_foreach(json_object_get(r, "errors"), i, v) fprintf(stderr, "rift clean: %s\n", json_string_value(v));
    if (!json_array_size(json_object_get(r, "removed")) && !json_array_size(json_object_get(r, "kept")) &&
        !json_array_size(json_object_get(r, "orphans")) && !json_array_size(json_object_get(r, "errors")))
        printf("nothing to clean\n");
}

int ch_clean_cli(int argc, char **argv)
{
    static const struct option opts[] = {
        {"all", no_argument, 0, 'a'}, {"json", no_argument, 0, 'j'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    ch_clean_opts o = {0};
    bool json = false;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'a': o.all = true; break;
        case 'j': json = true; break;
        case 'h': clean_help(stdout); return 0;
        default: clean_help(stderr); return CH_EXIT_BAD_INPUT;
        }
    }
    if (optind != argc) {
        clean_help(stderr);
        return CH_EXIT_BAD_INPUT;
    }
    json_t *report = NULL;
    ch_error err = {{0}};
    int rc = ch_clean(&o, &report, &err);
    int code = rc < 0 ? CH_EXIT_ENV : CH_EXIT_PASS;
    if (!report) {
        fprintf(stderr, "rift clean: %s\n", err.msg);
        return code;
    }
    print_report(report);
    if (json) {
        json_object_set_new(report, "exit_code", json_integer(code));
        char *s = json_dumps(report, JSON_COMPACT);
        printf("%s\n", s ? s : "{}");
        free(s);
    }
    json_decref(report);
    return code;
}
