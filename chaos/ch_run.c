/* ch_run.c — load a scenario, run it on a backend, check, and write the run directory. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ch_backend.h"
#include "ch_fs.h"
#include "ch_lin.h"
#include "ch_report.h"
#include "ch_run.h"
#include "ch_scenario.h"
#include "ch_verdict.h"

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void iso_time(char *buf, size_t len, const char *fmt)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, fmt, &tm);
}

/* runs/<name>-<UTC timestamp>, with a suffix if that exists already. */
static int make_run_dir(const ch_scenario *sc, const ch_run_opts *o, char *dir, size_t len)
{
    if (o->out_dir) {
        snprintf(dir, len, "%s", o->out_dir);
        return ch_fs_mkdirs(dir);
    }
    const char *root = o->runs_root ? o->runs_root : "runs";
    int e = ch_fs_mkdirs(root);
    if (e < 0)
        return e;
    char stamp[32];
    iso_time(stamp, sizeof(stamp), "%Y%m%d-%H%M%S");
    for (int i = 0; i < 1000; i++) {
        if (i == 0)
            snprintf(dir, len, "%s/%s-%s", root, sc->name, stamp);
        else
            snprintf(dir, len, "%s/%s-%s-%d", root, sc->name, stamp, i);
        if (mkdir(dir, 0755) == 0)
            return 0;
        if (errno != EEXIST)
            return -errno;
    }
    return -EEXIST;
}

static void progress_line(void *ctx, const ch_progress *p)
{
    (void)ctx;
    char leader[8] = "none";
    if (p->leader >= 0)
        snprintf(leader, sizeof(leader), "r%d", p->leader + 1);
    fprintf(stderr, "\r  %6.1f / %.1f s   %7.0f ops/s   leader %-4s   faults %d   ", (double)p->t_us / 1e6,
            (double)p->duration_us / 1e6, p->ops_per_s, leader, p->active_faults);
    fflush(stderr);
}

/* The run.json skeleton: everything known before the run starts. */
static json_t *run_header(const ch_scenario *sc, const char *backend, uint64_t seed)
{
    char started[40];
    iso_time(started, sizeof(started), "%Y-%m-%dT%H:%M:%SZ");
    json_t *scenario_text = json_loads(sc->text, 0, NULL);
    return json_pack("{s:i, s:s, s:s, s:o, s:o, s:s, s:I, s:s, s:b}", "schema_version", CH_RUN_SCHEMA_VERSION, "name",
                     sc->name, "description", sc->description ? sc->description : "", "scenario",
                     scenario_text ? scenario_text : json_null(), "config", ch_scenario_to_json(sc), "backend",
                     backend, "seed", (json_int_t)seed, "started_at", started, "complete", 0);
}

static json_t *lin_json(const ch_history *h, const ch_lin_result *lr)
{
    json_t *j = json_pack("{s:s, s:s, s:f, s:I}", "verdict", ch_lin_verdict_name(lr->verdict), "reason",
                          lr->reason, "elapsed_s", lr->elapsed_s, "keys", (json_int_t)lr->n_keys);
    if (lr->verdict != CH_LIN_FAIL)
        return j;
    json_t *ops = json_array();
    for (size_t i = 0; i < lr->n_fail_ops; i++) {
        char line[4096];
        const ch_op *op = &h->ops[lr->fail_ops[i]];
        if (ch_op_format(op, line, sizeof(line)) < (int)sizeof(line)) {
            json_t *o = json_loads(line, 0, NULL);
            if (o)
                json_array_append_new(ops, o);
        }
    }
    json_object_set_new(j, "key", json_string(lr->fail_key ? lr->fail_key : ""));
    json_object_set_new(j, "ops", ops);
    json_object_set_new(j, "minimal", json_boolean(lr->fail_minimal));
    return j;
}

static json_t *checks_json(const ch_metrics *m, json_t *lin)
{
    json_t *agree = json_pack("{s:b}", "agree", !m->disagreement.found);
    if (m->disagreement.found) {
        char a[8], b[8];
        snprintf(a, sizeof(a), "r%d", m->disagreement.replica_a + 1);
        snprintf(b, sizeof(b), "r%d", m->disagreement.replica_b + 1);
        json_object_set_new(agree, "index", json_integer((json_int_t)m->disagreement.index));
        json_object_set_new(agree, "replicas", json_pack("[s,s]", a, b));
    }
    return json_pack("{s:o, s:o}", "linearizable", lin, "logs_agree", agree);
}

static int write_outputs(const char *dir, json_t *run, const ch_record *rec, const json_t *rows, const char *name,
                         double secs)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/history.jsonl", dir);
    int e = ch_history_write_file(path, ch_record_history(rec));
    char *xml = ch_junit_xml(name, rows, secs);
    snprintf(path, sizeof(path), "%s/junit.xml", dir);
    if (e == 0)
        e = xml ? ch_fs_write_atomic(path, xml, strlen(xml)) : -ENOMEM;
    free(xml);
    snprintf(path, sizeof(path), "%s/run.json", dir);
    if (e == 0)
        e = ch_fs_write_json(path, run, 0);
    snprintf(path, sizeof(path), "%s/report.html", dir);
    if (e == 0)
        e = ch_report_write(path, run, NULL);
    return e;
}

static uint64_t pick_seed(const ch_scenario *sc, const ch_run_opts *o)
{
    if (o->has_seed)
        return o->seed;
    if (sc->has_seed)
        return sc->seed;
    uint64_t s = 0;
    if (getrandom(&s, sizeof(s), 0) != sizeof(s))
        s = (uint64_t)time(NULL);
    return s & 0xffffffffffffull; /* short enough to type back in */
}

static int run_backend(const char *backend, const ch_run_ctx *ctx, ch_error *err)
{
    if (strcmp(backend, "sim") == 0)
        return ch_backend_sim_run(ctx, err);
    if (strcmp(backend, "dpdk") == 0)
        return ch_backend_dpdk_run(ctx, err);
    snprintf(err->msg, sizeof(err->msg), "unknown backend \"%s\" (expected dpdk or sim)", backend);
    return -EINVAL;
}

/* Evaluate and finish run.json; returns the verdict. */
static ch_verdict judge(const ch_scenario *sc, ch_record *rec, const ch_run_opts *o, json_t *run, json_t **rows)
{
    ch_metrics m;
    ch_record_metrics(rec, &m);
    ch_lin_result lr;
    memset(&lr, 0, sizeof(lr));
    double limit = o->lin_time_limit_s > 0 ? o->lin_time_limit_s : 30;
    int lin_rc = ch_lin_check(ch_record_history(rec), limit, &lr);
    ch_checks c = {.linearizable = lin_rc < 0                      ? -1
                                   : lr.verdict == CH_LIN_OK       ? 1
                                   : lr.verdict == CH_LIN_FAIL     ? 0
                                                                   : -1,
                   .logs_agree = !m.disagreement.found};
    ch_verdict v;
    *rows = ch_assertions_evaluate(&sc->assertions, &m, &c, &v);
    ch_record_to_json(rec, &m, run);
    json_object_set_new(run, "checks", checks_json(&m, lin_json(ch_record_history(rec), &lr)));
    json_object_set(run, "assertions", *rows);
    json_object_set_new(run, "verdict", json_string(ch_verdict_name(v)));
    json_object_set_new(run, "exit_code", json_integer(ch_verdict_exit_code(v)));
    ch_lin_result_free(&lr);
    return v;
}

static int env_or_input(int e) { return e == -EINVAL || e == -ENOENT ? CH_EXIT_BAD_INPUT : CH_EXIT_ENV; }

int ch_run_scenario(const char *path, const ch_run_opts *o, ch_run_summary *out, ch_error *err)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->verdict, sizeof(out->verdict), "error");
    ch_scenario sc;
    int e = ch_scenario_load(path, o->sets, o->n_sets, &sc, err);
    if (e < 0)
        return out->exit_code = e == -ENOMEM ? CH_EXIT_ENV : CH_EXIT_BAD_INPUT;
    snprintf(out->name, sizeof(out->name), "%s", sc.name);
    const char *backend = o->backend ? o->backend : "dpdk";
    out->seed = pick_seed(&sc, o);
    if ((e = make_run_dir(&sc, o, out->run_dir, sizeof(out->run_dir))) < 0) {
        snprintf(err->msg, sizeof(err->msg), "cannot create the run directory: %s", strerror(-e));
        ch_scenario_free(&sc);
        return out->exit_code = CH_EXIT_ENV;
    }
    ch_record *rec = ch_record_new(sc.replicas);
    json_t *run = run_header(&sc, backend, out->seed);
    char run_path[PATH_MAX];
    snprintf(run_path, sizeof(run_path), "%s/run.json", out->run_dir);
    if (!rec || !run || ch_fs_write_json(run_path, run, 0) < 0) {
        snprintf(err->msg, sizeof(err->msg), "cannot write %s", run_path);
        e = -EIO;
    }
    double t0 = wall_s();
    /* --live: the simulator is paced to wall time so the live view can be watched. */
    ch_report_live *live = NULL;
    if (e == 0 && o->live)
        live = ch_report_live_new(out->run_dir, run, rec, o->progress ? progress_line : NULL, !strcmp(backend, "sim"));
    if (o->live && e == 0 && !live) {
        snprintf(err->msg, sizeof(err->msg), "cannot write the live report in %s", out->run_dir);
        e = -EIO;
    }
    ch_run_ctx ctx = {&sc, out->seed, rec, out->run_dir, o->interrupted, o->progress ? progress_line : NULL, NULL};
    if (live) {
        ctx.progress = ch_report_live_progress;
        ctx.progress_ctx = live;
    }
    if (e == 0)
        e = run_backend(backend, &ctx, err);
    if (o->progress)
        fprintf(stderr, "\r%80s\r", "");
    bool interrupted = o->interrupted && *o->interrupted;
    if (e < 0) {
        out->exit_code = e == -ENOSYS ? CH_EXIT_ENV : env_or_input(e);
    } else {
        json_t *rows = NULL;
        ch_verdict v = judge(&sc, rec, o, run, &rows);
        json_object_set_new(run, "complete", json_boolean(!interrupted));
        json_object_set_new(run, "wall_s", json_real(wall_s() - t0));
        if ((e = write_outputs(out->run_dir, run, rec, rows, sc.name, wall_s() - t0)) < 0) {
            snprintf(err->msg, sizeof(err->msg), "cannot write the run's files in %s: %s", out->run_dir,
                     strerror(-e));
            out->exit_code = CH_EXIT_ENV;
        } else {
            out->exit_code = interrupted ? CH_EXIT_ENV : ch_verdict_exit_code(v);
            if (live)
                ch_report_live_finish(live, run); /* the live page stops polling */
            snprintf(out->verdict, sizeof(out->verdict), "%s", interrupted ? "interrupted" : ch_verdict_name(v));
        }
        out->json = json_pack("{s:s, s:s, s:s, s:I, s:i, s:O, s:O}", "name", sc.name, "verdict", out->verdict,
                              "run_dir", out->run_dir, "seed", (json_int_t)out->seed, "exit_code", out->exit_code,
                              "assertions", rows, "metrics", json_object_get(run, "metrics"));
        json_decref(rows);
    }
    ch_report_live_free(live);
    json_decref(run);
    ch_record_free(rec);
    ch_scenario_free(&sc);
    return out->exit_code;
}
