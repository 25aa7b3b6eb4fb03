/* test_replica_config.c — the rift-replica config file: values, defaults, errors with paths. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "paxos/replica_config.h"

static rn_config cfg;
static rn_error err;

/* Single quotes in test text become double quotes (readable JSON in C strings). */
static int parse(const char *text)
{
    char *t = strdup(text);
    cr_assert(t);
    for (char *p = t; *p; p++)
        if (*p == '\'')
            *p = '"';
    int rc = rn_config_parse("r1.json", t, strlen(t), &cfg, &err);
    free(t);
    return rc;
}

static const char *parse_err(const char *text)
{
    int rc = parse(text);
    cr_assert_eq(rc, -EINVAL, "expected -EINVAL for %s, got %d", text, rc);
    cr_assert(err.msg[0], "error without a message");
    return err.msg;
}

#define BASE "'id': 1, 'replicas': [{'ip': '198.18.0.1', 'port': 7000}, {'ip': '198.18.0.2', 'port': 7000}, " \
             "{'ip': '198.18.0.3', 'port': 7001}], 'stack': '/run/r2.sock', 'wal': '/tmp/r2.wal'"

Test(replica_config, full_file_sets_every_field)
{
    int rc = parse("{" BASE ", 'durability': 'write', 'control': '/run/r2.ctl', 'events': '/tmp/r2.jsonl',"
                   " 'seed': 42, 'attach_timeout_ms': 2500,"
                   " 'paxos': {'fd': 'naive', 'heartbeat_ms': 20, 'election_timeout_ms': [100, 250.5],"
                   "           'batch_max_cmds': '16', 'check_quorum_ms': 400}}");
    cr_assert_eq(rc, 0, "%s", err.msg);
    cr_assert_eq(cfg.id, 1);
    cr_assert_eq(cfg.n_replicas, 3);
    cr_assert_eq(cfg.replicas[0].ip, 0xc6120001u);
    cr_assert_eq(cfg.replicas[2].ip, 0xc6120003u);
    cr_assert_eq(cfg.replicas[2].port, 7001);
    cr_assert_str_eq(cfg.stack, "/run/r2.sock");
    cr_assert_str_eq(cfg.wal, "/tmp/r2.wal");
    cr_assert_str_eq(cfg.control, "/run/r2.ctl");
    cr_assert_str_eq(cfg.events, "/tmp/r2.jsonl");
    cr_assert_eq(cfg.durability, PX_DURABILITY_WRITE);
    cr_assert_eq(cfg.seed, 42);
    cr_assert_eq(cfg.attach_timeout_ms, 2500);
    cr_assert_eq(cfg.paxos.n_replicas, 3);
    cr_assert_eq(cfg.paxos.fd, PX_FD_NAIVE);
    cr_assert_eq(cfg.paxos.heartbeat_us, 20000);
    cr_assert_eq(cfg.paxos.election_timeout_min_us, 100000);
    cr_assert_eq(cfg.paxos.election_timeout_max_us, 250500);
    cr_assert_eq(cfg.paxos.batch_max_cmds, 16);
    cr_assert_eq(cfg.paxos.check_quorum_us, 400000);
}

Test(replica_config, minimal_file_gets_defaults)
{
    cr_assert_eq(parse("{" BASE "}"), 0, "%s", err.msg);
    px_config def;
    px_config_default(&def);
    cr_assert_eq(cfg.durability, PX_DURABILITY_FSYNC);
    cr_assert_eq(cfg.seed, 1);
    cr_assert_eq(cfg.attach_timeout_ms, RN_ATTACH_TIMEOUT_MS_DEFAULT);
    cr_assert_str_eq(cfg.control, "");
    cr_assert_str_eq(cfg.events, "");
    cr_assert_eq(cfg.paxos.fd, def.fd);
    cr_assert_eq(cfg.paxos.heartbeat_us, def.heartbeat_us);
    cr_assert_eq(cfg.paxos.election_timeout_max_us, def.election_timeout_max_us);
    /* null means "none" for the optional paths */
    cr_assert_eq(parse("{" BASE ", 'control': null, 'events': null}"), 0, "%s", err.msg);
    cr_assert_str_eq(cfg.control, "");
}

Test(replica_config, scenario_paxos_object_passes_through)
{
    /* the scenario's cluster.paxos, durability included */
    cr_assert_eq(parse("{" BASE ", 'paxos': {'fd': 'mpmc', 'heartbeat_ms': 50, 'election_timeout_ms': [150, 300],"
                       " 'durability': 'off'}}"),
                 0, "%s", err.msg);
    cr_assert_eq(cfg.durability, PX_DURABILITY_OFF);
    cr_assert_eq(cfg.paxos.fd, PX_FD_MPMC);
    /* agreeing twice is fine; contradicting is not */
    cr_assert_eq(parse("{" BASE ", 'durability': 'off', 'paxos': {'durability': 'off'}}"), 0, "%s", err.msg);
    cr_assert_str_eq(parse_err("{" BASE ", 'durability': 'fsync', 'paxos': {'durability': 'off'}}"),
                     "r1.json: paxos.durability: \"off\" contradicts the top-level durability \"fsync\"");
}

Test(replica_config, errors_name_the_file_and_path)
{
    cr_assert_str_eq(parse_err("{" BASE ", 'sed': 3}"),
                     "r1.json: sed: unknown field (expected one of id, replicas, stack, wal, durability, paxos, "
                     "control, events, seed, attach_timeout_ms)");
    cr_assert_str_eq(parse_err("{'id': 0, 'replicas': [{'ip': '198.18.0.1', 'port': 70000}], 'stack': 's', 'wal': 'w'}"),
                     "r1.json: replicas[0].port: expected an integer 1..65535, got 70000");
    cr_assert_str_eq(parse_err("{'id': 0, 'replicas': [{'ip': '198.18.0.1', 'port': 1}, {'ip': '198.18.1', 'port': 1}],"
                               " 'stack': 's', 'wal': 'w'}"),
                     "r1.json: replicas[1].ip: expected an IPv4 address like \"198.18.0.1\", got \"198.18.1\"");
    cr_assert_str_eq(parse_err("{'id': 0, 'replicas': [{'ip': '10.0.0.1', 'port': 1}, {'ip': '10.0.0.1', 'port': 1}],"
                               " 'stack': 's', 'wal': 'w'}"),
                     "r1.json: replicas[1]: same address as replicas[0] (10.0.0.1:1)");
    cr_assert_str_eq(parse_err("{'id': 0, 'replicas': [{'ip': '10.0.0.1'}], 'stack': 's', 'wal': 'w'}"),
                     "r1.json: replicas[0].port: required field missing (expected an integer 1..65535)");
    cr_assert_str_eq(parse_err("{'id': 0, 'replicas': [{'ip': '10.0.0.1', 'port': 1, 'host': 'a'}], 'stack': 's',"
                               " 'wal': 'w'}"),
                     "r1.json: replicas[0].host: unknown field (expected ip or port)");
    cr_assert_str_eq(parse_err("{'id': 0, 'replicas': [], 'stack': 's', 'wal': 'w'}"),
                     "r1.json: replicas: expected an array of 1..9 {\"ip\", \"port\"} objects, got an array");
    cr_assert_str_eq(parse_err("{'id': 3, 'replicas': [{'ip': '10.0.0.1', 'port': 1}], 'stack': 's', 'wal': 'w'}"),
                     "r1.json: id: expected an integer 0..0 (an index into replicas), got 3");
    cr_assert_str_eq(parse_err("{'id': 0, 'replicas': [{'ip': '10.0.0.1', 'port': 1}], 'wal': 'w'}"),
                     "r1.json: stack: required field missing (expected the rift-stackd socket path)");
    cr_assert_str_eq(parse_err("{'id': 0, 'replicas': [{'ip': '10.0.0.1', 'port': 1}], 'stack': 's', 'wal': ''}"),
                     "r1.json: wal: expected a non-empty path, got \"\"");
    cr_assert_str_eq(parse_err("{" BASE ", 'durability': 'sometimes'}"),
                     "r1.json: durability: expected \"fsync\", \"write\" or \"off\", got \"sometimes\"");
    cr_assert_str_eq(parse_err("{" BASE ", 'seed': -1}"), "r1.json: seed: expected an integer >= 0, got -1");
    cr_assert_str_eq(parse_err("[1]"), "r1.json: expected a JSON object, got an array");
}

Test(replica_config, socket_paths_must_fit_sun_path)
{
    char text[1024], longp[200];
    memset(longp, 'x', sizeof(longp) - 1);
    longp[sizeof(longp) - 1] = 0;
    snprintf(text, sizeof(text), "{'id': 0, 'replicas': [{'ip': '10.0.0.1', 'port': 1}], 'stack': 's', 'wal': 'w',"
                                 " 'control': '/%s'}", longp);
    cr_assert_str_eq(parse_err(text), "r1.json: control: path too long (200 bytes, at most 107)");
}

Test(replica_config, paxos_errors)
{
    cr_assert_str_eq(parse_err("{" BASE ", 'paxos': {'heartbeat_ms': 'fast'}}"),
                     "r1.json: paxos.heartbeat_ms: bad value \"fast\"");
    cr_assert_str_eq(parse_err("{" BASE ", 'paxos': {'heartbeat': 5}}"),
                     "r1.json: paxos.heartbeat: unknown paxos parameter (see px_config_set in paxos/px_config.c)");
    cr_assert_str_eq(parse_err("{" BASE ", 'paxos': {'election_timeout_ms': [300]}}"),
                     "r1.json: paxos.election_timeout_ms: expected [min, max] in ms, got an array");
    cr_assert_str_eq(parse_err("{" BASE ", 'paxos': {'election_timeout_ms': [100, true]}}"),
                     "r1.json: paxos.election_timeout_ms[1]: expected a number or a string, got true");
    cr_assert_str_eq(parse_err("{" BASE ", 'paxos': {'fd': 'psychic'}}"),
                     "r1.json: paxos.fd: bad value \"psychic\"");
    /* each value alone is fine; together they are not (px_config_check) */
    cr_assert_str_eq(parse_err("{" BASE ", 'paxos': {'heartbeat_ms': 500}}"),
                     "r1.json: paxos: heartbeat_ms: expected below the election timeout minimum");
    cr_assert_str_eq(parse_err("{" BASE ", 'paxos': [1]}"),
                     "r1.json: paxos: expected an object of paxos parameters, got an array");
}

Test(replica_config, invalid_json_names_line_and_column)
{
    const char *m = parse_err("{\n  'id': 0,\n  'replicas': [\n}");
    cr_assert(strncmp(m, "r1.json:4:", 10) == 0, "%s", m);
    cr_assert(strstr(m, "invalid JSON"), "%s", m);
    m = parse_err("{" BASE ", 'seed': 1, 'seed': 2}");
    cr_assert(strstr(m, "invalid JSON") && strstr(m, "duplicate"), "%s", m);
}

Test(replica_config, dump_parses_back_to_the_same_config)
{
    cr_assert_eq(parse("{" BASE ", 'durability': 'write', 'control': '/run/c', 'events': '/tmp/e', 'seed': 9,"
                       " 'paxos': {'fd': 'naive', 'heartbeat_ms': 0.75, 'election_timeout_ms': [100, 250.5],"
                       " 'pipeline_max': 3}}"),
                 0, "%s", err.msg);
    rn_config first = cfg;
    json_t *j = rn_config_to_json(&first);
    cr_assert(j);
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    cr_assert(text);
    int rc = rn_config_parse("dump", text, strlen(text), &cfg, &err);
    cr_assert_eq(rc, 0, "%s: %s", err.msg, text);
    free(text);
    cr_assert_eq(cfg.paxos.heartbeat_us, 750);
    cr_assert_eq(cfg.paxos.election_timeout_max_us, 250500);
    cr_assert_eq(cfg.paxos.pipeline_max, 3);
    cr_assert_eq(memcmp(&cfg.paxos, &first.paxos, sizeof(first.paxos)), 0);
    cr_assert_eq(memcmp(cfg.replicas, first.replicas, sizeof(first.replicas)), 0);
    cr_assert_str_eq(cfg.events, first.events);
    cr_assert_eq(cfg.durability, first.durability);
    cr_assert_eq(cfg.seed, first.seed);
}

Test(replica_config, load_reads_files_and_names_missing_ones)
{
    cr_assert_eq(rn_config_load("/nonexistent/r9.json", &cfg, &err), -ENOENT);
    cr_assert_str_eq(err.msg, "/nonexistent/r9.json: no such file");
    char path[] = "/tmp/rf-test-config-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    const char *text = "{\"id\": 0, \"replicas\": [{\"ip\": \"198.18.0.1\", \"port\": 7000}], "
                       "\"stack\": \"/s\", \"wal\": \"/w\"}";
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    int rc = rn_config_load(path, &cfg, &err);
    unlink(path);
    cr_assert_eq(rc, 0, "%s", err.msg);
    cr_assert_eq(cfg.replicas[0].port, 7000);
    cr_assert_eq(rn_config_load("/tmp", &cfg, &err), -EINVAL);
    cr_assert(strstr(err.msg, "not a regular file"), "%s", err.msg);
}

Test(replica_config, ip_text_round_trip)
{
    uint32_t ip;
    char buf[16];
    cr_assert_eq(rn_ip_parse("255.0.18.7", &ip), 0);
    cr_assert_eq(ip, 0xff001207u);
    rn_ip_format(ip, buf, sizeof(buf));
    cr_assert_str_eq(buf, "255.0.18.7");
    cr_assert_eq(rn_ip_parse("1.2.3.256", &ip), -EINVAL);
    cr_assert_eq(rn_ip_parse("", &ip), -EINVAL);
}
