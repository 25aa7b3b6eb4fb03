/* test_fuzz.c — `rift fuzz` finds amnesia, and its repros reproduce.
 *
 * With durability off, a restarted majority forgot what it acknowledged: a
 * short campaign of crash-majority schedules must catch it (a linearizability
 * or agreement failure) and leave a scenario file per failing seed that
 * `rift run` (ch_run_scenario) judges the same way. With the default fsync the
 * very same schedules must all pass: the fuzzer's faults never exceed what
 * MultiPaxos tolerates, so a failure there would be a bug in the store. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chaos/ch_cli.h"
#include "chaos/ch_fs.h"
#include "chaos/ch_run.h"

#define SEEDS "6"

static volatile sig_atomic_t no_interrupt;

/* Run a campaign into dir; returns rift fuzz's exit code. An open-loop
 * 400 ops/s keeps it cheap (under ASan too) and still leaves hundreds of
 * acknowledged writes in each crash window. */
static int campaign(const char *dir, bool durable)
{
    char *argv[] = {"fuzz", "--seeds", SEEDS, "--faults", "crash-majority", "--duration-ms", "3000",
                    "--out", (char *)dir, "--set", "workload.rate=400", "--set", "cluster.paxos.durability=off", NULL};
    int argc = durable ? 11 : 13;
    return ch_cli_fuzz(argc, argv, &no_interrupt);
}

/* The repro files the campaign left, as seeds; returns how many. */
static int repros(const char *dir, unsigned *seeds, int max)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < max) {
        unsigned s;
        char tail[8];
        if (sscanf(e->d_name, "fuzz-%u.%7s", &s, tail) == 2 && !strcmp(tail, "json"))
            seeds[n++] = s;
    }
    closedir(d);
    return n;
}

static json_t *load(const char *path)
{
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    cr_assert_not_null(j, "%s: %s", path, je.text);
    return j;
}

/* Assertion name -> pass, as one string ("linearizable=0 logs_agree=0 ..."). */
static void outcome(const json_t *run, char *buf, size_t cap)
{
    json_t *a;
    size_t i, len = 0;
    buf[0] = 0;
    json_array_foreach(json_object_get(run, "assertions"), i, a)
        len += (size_t)snprintf(buf + len, cap - len, "%s=%d ", json_string_value(json_object_get(a, "name")),
                                json_is_true(json_object_get(a, "pass")));
}

static char *tmpdir(void)
{
    static char dir[64];
    snprintf(dir, sizeof(dir), "/tmp/rift-test-fuzz-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    return dir;
}

Test(fuzz, durability_off_loses_writes_and_the_repro_reproduces, .timeout = 300)
{
    char *dir = tmpdir();
    cr_assert_eq(campaign(dir, false), CH_EXIT_FAIL, "amnesia went unnoticed in " SEEDS " seeds");
    unsigned seeds[16];
    int n = repros(dir, seeds, 16);
    cr_assert_gt(n, 0);
    for (int i = 0; i < n; i++) {
        char path[PATH_MAX], out[PATH_MAX], fuzz_run[PATH_MAX];
        snprintf(path, sizeof(path), "%s/fuzz-%u.json", dir, seeds[i]);
        snprintf(out, sizeof(out), "%s/again-%u", dir, seeds[i]);
        snprintf(fuzz_run, sizeof(fuzz_run), "%s/run-%u/run.json", dir, seeds[i]);
        /* A safety failure, not a slow recovery: the lost writes show. */
        json_t *first = load(fuzz_run);
        json_t *checks = json_object_get(first, "checks");
        const char *lin = json_string_value(json_object_get(json_object_get(checks, "linearizable"), "verdict"));
        bool agree = json_is_true(json_object_get(json_object_get(checks, "logs_agree"), "agree"));
        cr_assert(!strcmp(lin, "fail") || !agree, "seed %u: failed, but not on safety", seeds[i]);
        /* The file alone reproduces it: same seed, same schedule, same verdict. */
        ch_run_opts o = {.backend = "sim", .out_dir = out, .interrupted = &no_interrupt};
        ch_run_summary s;
        ch_error err = {{0}};
        cr_assert_eq(ch_run_scenario(path, &o, &s, &err), CH_EXIT_FAIL, "seed %u: %s", seeds[i], err.msg);
        cr_assert_str_eq(s.verdict, "fail");
        json_decref(s.json);
        snprintf(out + strlen(out), sizeof(out) - strlen(out), "/run.json");
        json_t *again = load(out);
        char a[256], b[256];
        outcome(first, a, sizeof(a));
        outcome(again, b, sizeof(b));
        cr_assert_str_eq(a, b, "seed %u: fuzz saw %s, rift run %s", seeds[i], a, b);
        json_decref(first);
        json_decref(again);
    }
    ch_fs_remove_tree(dir);
}

Test(fuzz, the_same_schedules_pass_with_fsync, .timeout = 300)
{
    char *dir = tmpdir();
    cr_assert_eq(campaign(dir, true), CH_EXIT_PASS);
    unsigned seeds[16];
    cr_assert_eq(repros(dir, seeds, 16), 0, "a passing seed leaves no repro");
    ch_fs_remove_tree(dir);
}
