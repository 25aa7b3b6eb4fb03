/* test_replica_node.c — the rift-replica runtime: event lines, control, routing, WAL
 * recovery, and three real rift-replica processes over an in-process loopstack. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "paxos/px_kv.h"
#include "paxos/replica_node.h"
#include "tests/support/loopstack.h"

#define RIFT_REPLICA_BIN RIFT_BINARY_DIR "/bin/rift-replica"

/* ---------- helpers ---------- */

static char dir[64];

static void make_dir(void)
{
    snprintf(dir, sizeof(dir), "/tmp/rf-rn-XXXXXX");
    cr_assert(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
}

static void remove_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

/* A config for replica id of n, every file under dir. */
static void config_text(char *buf, size_t len, int id, int n, const char *durability)
{
    char reps[512] = "";
    for (int i = 0; i < n; i++) {
        char one[64];
        snprintf(one, sizeof(one), "%s{\"ip\":\"198.18.0.%d\",\"port\":7000}", i ? "," : "", i + 1);
        strcat(reps, one);
    }
    snprintf(buf, len,
             "{\"id\":%d,\"replicas\":[%s],\"stack\":\"%s/r%d.stack.sock\",\"wal\":\"%s/r%d.wal\","
             "\"durability\":\"%s\",\"control\":\"%s/r%d.ctl.sock\",\"events\":\"%s/r%d.events.jsonl\","
             "\"seed\":%d,\"attach_timeout_ms\":3000,"
             "\"paxos\":{\"fd\":\"quorum\",\"heartbeat_ms\":20,\"election_timeout_ms\":[100,200]}}",
             id, reps, dir, id + 1, dir, id + 1, durability, dir, id + 1, dir, id + 1, 7 + id);
}

static void config_for(rn_config *cfg, int id, int n, const char *durability)
{
    char text[2048];
    rn_error err;
    config_text(text, sizeof(text), id, n, durability);
    cr_assert_eq(rn_config_parse("test", text, strlen(text), cfg, &err), 0, "%s", err.msg);
}

static json_t *control(rn_node *n, const char *line)
{
    char *rep = rn_node_control(n, line, strlen(line));
    cr_assert(rep);
    json_t *j = json_loads(rep, 0, NULL);
    cr_assert(j, "reply is not JSON: %s", rep);
    free(rep);
    return j;
}

static bool reply_ok(const json_t *j) { return json_is_true(json_object_get(j, "ok")); }

static const char *reply_error(const json_t *j)
{
    const char *e = json_string_value(json_object_get(j, "error"));
    return e ? e : "";
}

static json_int_t jint(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    cr_assert(json_is_integer(v), "field %s missing", key);
    return json_integer_value(v);
}

/* An encoded CLIENT_REQ carrying one command. */
static size_t client_req(uint8_t *buf, size_t cap, uint16_t from, uint16_t to, uint8_t op, uint64_t seq,
                         const char *key, const char *value)
{
    px_cmd c = {.op = op, .client_id = from, .seq = seq,
                .key = {(const uint8_t *)key, (uint32_t)strlen(key)},
                .value = {(const uint8_t *)value, value ? (uint32_t)strlen(value) : 0}};
    uint8_t cmd[256];
    size_t clen = 0, mlen = 0;
    cr_assert_eq(px_cmd_encode(&c, cmd, sizeof(cmd), &clen), 0);
    px_msg m = {.type = PX_MSG_CLIENT_REQ, .from = from, .to = to};
    m.u.client_req.cmd = (px_bytes){cmd, (uint32_t)clen};
    cr_assert_eq(px_msg_encode(&m, buf, cap, &mlen), 0);
    return mlen;
}

static void feed(rn_node *n, uint8_t kind, uint32_t flow, const uint8_t *data, size_t len)
{
    rs_event ev = {.kind = kind, .flow = flow, .data = data, .len = len};
    rn_node_on_stack_event(n, &ev, rn_now_us());
}

/* ---------- event lines ---------- */

Test(replica_node, event_line_format_is_exact_and_parses_back)
{
    px_event e = {.kind = PX_EV_ROLE, .replica = 2, .time_us = 123456, .ballot = PX_BALLOT_MAKE(1, 2),
                  .index = 7, .a = PX_LEADER, .b = PX_CANDIDATE};
    char line[RN_EVENT_LINE_MAX];
    int len = rn_event_format(&e, line, sizeof(line));
    const char *want = "{\"t_us\":123456,\"kind\":\"role\",\"replica\":2,\"ballot\":258,\"index\":7,\"a\":2,\"b\":1}\n";
    cr_assert_eq(len, (int)strlen(want));
    cr_assert_eq(memcmp(line, want, (size_t)len), 0, "%.*s", len, line);

    /* a digest above INT64_MAX survives the trip */
    e = (px_event){.kind = PX_EV_EXECUTE, .replica = 0, .time_us = 99, .index = 1ull << 40,
                   .a = 0xfedcba9876543210ull, .b = UINT64_MAX};
    len = rn_event_format(&e, line, sizeof(line));
    cr_assert_gt(len, 0);
    cr_assert_eq(line[len - 1], '\n');
    cr_assert(memmem(line, (size_t)len, "\"kind\":\"execute\"", 16));
    px_event back;
    cr_assert_eq(rn_event_parse(line, (size_t)len, &back), 0);
    cr_assert_eq(back.kind, e.kind);
    cr_assert_eq(back.index, e.index);
    cr_assert_eq(back.a, e.a);
    cr_assert_eq(back.b, e.b);
    cr_assert_eq(back.time_us, 99);

    cr_assert_eq(rn_event_format(&e, line, 20), -ENOSPC);
    const char *bad[] = {
        "", "[]", "{\"t_us\":1,\"kind\":\"role\",\"replica\":0,\"ballot\":1,\"index\":1,\"a\":1}",
        "{\"t_us\":1,\"kind\":\"nap\",\"replica\":0,\"ballot\":1,\"index\":1,\"a\":1,\"b\":1}",
        "{\"t_us\":1,\"kind\":\"role\",\"replica\":99,\"ballot\":1,\"index\":1,\"a\":1,\"b\":1}",
        "{\"t_us\":\"1\",\"kind\":\"role\",\"replica\":0,\"ballot\":1,\"index\":1,\"a\":1,\"b\":1}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(rn_event_parse(bad[i], strlen(bad[i]), &back), -EINVAL, "accepted %s", bad[i]);
}

/* ---------- control ---------- */

Test(replica_node, control_status_set_ping_and_bad_lines)
{
    make_dir();
    rn_config cfg;
    config_for(&cfg, 1, 3, "fsync");
    rn_error err;
    rn_node *n = rn_node_new(&cfg, rn_now_us(), &err);
    cr_assert(n, "%s", err.msg);

    json_t *j = control(n, "{\"cmd\":\"status\"}");
    cr_assert(reply_ok(j));
    cr_assert_eq(jint(j, "id"), 1);
    cr_assert_str_eq(json_string_value(json_object_get(j, "role")), "follower");
    cr_assert_eq(jint(j, "pid"), getpid());
    cr_assert_eq(jint(j, "leader"), -1);
    cr_assert_eq(jint(j, "heartbeat_us"), 20000);
    cr_assert(json_is_false(json_object_get(j, "attached")));
    cr_assert_eq(json_array_size(json_object_get(j, "peers")), 2);
    cr_assert(json_is_object(json_object_get(j, "net")));
    json_decref(j);

    j = control(n, "{\"cmd\":\"set\",\"param\":\"heartbeat_ms\",\"value\":\"40\"}");
    cr_assert(reply_ok(j), "%s", reply_error(j));
    json_decref(j);
    j = control(n, "{\"cmd\":\"set\",\"param\":\"fd\",\"value\":\"naive\"}");
    cr_assert(reply_ok(j), "%s", reply_error(j));
    json_decref(j);
    j = control(n, "{\"cmd\":\"status\"}");
    cr_assert_eq(jint(j, "heartbeat_us"), 40000, "set did not reach the core");
    cr_assert_str_eq(json_string_value(json_object_get(j, "fd")), "naive");
    json_decref(j);

    j = control(n, "{\"cmd\":\"set\",\"param\":\"heartbeet_ms\",\"value\":\"40\"}");
    cr_assert(!reply_ok(j));
    cr_assert(strstr(reply_error(j), "unknown parameter \"heartbeet_ms\""), "%s", reply_error(j));
    json_decref(j);
    /* a value the core refuses (heartbeat above the election timeout) changes nothing */
    j = control(n, "{\"cmd\":\"set\",\"param\":\"heartbeat_ms\",\"value\":500}");
    cr_assert(!reply_ok(j));
    cr_assert(strstr(reply_error(j), "heartbeat_ms"), "%s", reply_error(j));
    json_decref(j);
    j = control(n, "{\"cmd\":\"status\"}");
    cr_assert_eq(jint(j, "heartbeat_us"), 40000);
    json_decref(j);

    j = control(n, "{\"cmd\":\"ping\"}");
    cr_assert(reply_ok(j));
    json_decref(j);
    const char *bad[] = {"not json", "[1,2]", "{\"cmd\":5}", "{\"cmd\":\"reboot\"}", "{\"cmd\":\"set\"}",
                         "{\"cmd\":\"set\",\"param\":\"fd\"}", "\xff\xfe"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        j = control(n, bad[i]);
        cr_assert(!reply_ok(j), "accepted %s", bad[i]);
        cr_assert(reply_error(j)[0], "no error text for %s", bad[i]);
        json_decref(j);
    }
    j = control(n, "{\"cmd\":\"reboot\"}");
    cr_assert(strstr(reply_error(j), "reboot"), "%s", reply_error(j));
    json_decref(j);
    cr_assert_eq(rn_node_counters(n)->ctl_errors, 10);
    rn_node_free(n);
    remove_dir();
}

/* ---------- routing ---------- */

Test(replica_node, client_replies_follow_the_flow_of_the_last_request)
{
    make_dir();
    rn_config cfg;
    config_for(&cfg, 1, 3, "fsync");
    rn_error err;
    rn_node *n = rn_node_new(&cfg, rn_now_us(), &err);
    cr_assert(n, "%s", err.msg);
    const rn_counters *c = rn_node_counters(n);
    uint8_t buf[512];
    size_t len = client_req(buf, sizeof(buf), PX_CLIENT_BASE + 44, 1, PX_OP_PUT, 1, "k", "v");

    cr_assert_eq(rn_node_route(n, PX_CLIENT_BASE + 44), 0);
    feed(n, RS_EV_ACCEPTED, 0x80000007u, NULL, 0);
    feed(n, RS_EV_MSG, 0x80000007u, buf, len);
    cr_assert_eq(rn_node_route(n, PX_CLIENT_BASE + 44), 0x80000007u);
    cr_assert_eq(c->msgs_in, 1);
    /* a follower answers with a redirect; with no stack attached it is dropped, counted */
    cr_assert_eq(c->drop_detached, 1);

    /* the client reconnected: replies follow the newest flow, and die with it */
    feed(n, RS_EV_MSG, 0x80000008u, buf, len);
    cr_assert_eq(rn_node_route(n, PX_CLIENT_BASE + 44), 0x80000008u);
    feed(n, RS_EV_RESET, 0x80000007u, NULL, 0);
    cr_assert_eq(rn_node_route(n, PX_CLIENT_BASE + 44), 0x80000008u);
    feed(n, RS_EV_CLOSED, 0x80000008u, NULL, 0);
    cr_assert_eq(rn_node_route(n, PX_CLIENT_BASE + 44), 0);

    /* nothing routes to self, to an unknown address, or to a peer without a flow */
    cr_assert_eq(rn_node_route(n, 1), 0);
    cr_assert_eq(rn_node_route(n, 0), 0);
    cr_assert_eq(rn_node_route(n, 7), 0);
    cr_assert_eq(rn_node_route(n, PX_NO_NODE), 0);

    /* garbage, another node's mail, and a client posing as a protocol peer */
    feed(n, RS_EV_MSG, 0x80000009u, (const uint8_t *)"garbage", 7);
    cr_assert_eq(c->bad_msgs, 1);
    len = client_req(buf, sizeof(buf), PX_CLIENT_BASE + 45, 2, PX_OP_PUT, 1, "k", "v");
    feed(n, RS_EV_MSG, 0x80000009u, buf, len);
    px_msg prep = {.type = PX_MSG_PREPARE, .from = PX_CLIENT_BASE + 46, .to = 1, .ballot = 999};
    cr_assert_eq(px_msg_encode(&prep, buf, sizeof(buf), &len), 0);
    feed(n, RS_EV_MSG, 0x80000009u, buf, len);
    cr_assert_eq(c->misrouted, 2);
    cr_assert_eq(rn_node_route(n, PX_CLIENT_BASE + 45), 0, "a misrouted request must not install a route");
    px_status st;
    px_replica_status(rn_node_replica(n), &st);
    cr_assert_eq(st.ballot, 0, "the forged prepare reached the core");
    rn_node_free(n);
    remove_dir();
}

/* ---------- single replica: timers, events file, WAL recovery ---------- */

static void run_until_leader(rn_node *n, uint64_t limit_us)
{
    uint64_t end = rn_now_us() + limit_us;
    px_status st;
    do {
        cr_assert_eq(rn_node_step(n, 5000), 0);
        px_replica_status(rn_node_replica(n), &st);
    } while (st.role != PX_LEADER && rn_now_us() < end);
    cr_assert_eq(st.role, PX_LEADER, "no leader within %llu µs", (unsigned long long)limit_us);
}

static uint64_t single_replica_run(const char *durability, uint64_t *ballot_after_restart)
{
    rn_config cfg;
    config_for(&cfg, 0, 1, durability);
    rn_error err;
    rn_node *n = rn_node_new(&cfg, rn_now_us(), &err);
    cr_assert(n, "%s", err.msg);
    run_until_leader(n, 2000000);
    uint8_t buf[512];
    size_t len = client_req(buf, sizeof(buf), PX_CLIENT_BASE + 1, 0, PX_OP_PUT, 1, "k", "v");
    feed(n, RS_EV_MSG, 0x80000001u, buf, len);
    for (int i = 0; i < 20; i++)
        cr_assert_eq(rn_node_step(n, 2000), 0);
    px_status st;
    px_replica_status(rn_node_replica(n), &st);
    cr_assert_geq(st.last_executed, 1, "the put was not executed");
    uint64_t ballot = st.ballot;
    rn_node_free(n);

    n = rn_node_new(&cfg, rn_now_us(), &err);
    cr_assert(n, "%s", err.msg);
    px_replica_status(rn_node_replica(n), &st);
    *ballot_after_restart = st.ballot;
    rn_node_free(n);
    return ballot;
}

Test(replica_node, single_replica_leads_logs_events_and_recovers_from_its_wal)
{
    make_dir();
    uint64_t after = 0, before = single_replica_run("fsync", &after);
    cr_assert_gt(before, 0);
    cr_assert_eq(after, before, "the promised ballot was not recovered from the WAL");

    /* every line of the event log parses; the election and the execution are there */
    char path[128];
    snprintf(path, sizeof(path), "%s/r1.events.jsonl", dir);
    FILE *f = fopen(path, "r");
    cr_assert(f);
    char line[RN_EVENT_LINE_MAX + 2];
    int lines = 0, leader = 0, executed = 0;
    while (fgets(line, sizeof(line), f)) {
        px_event e;
        cr_assert_eq(rn_event_parse(line, strlen(line), &e), 0, "bad line %s", line);
        cr_assert_eq(e.replica, 0);
        cr_assert_gt(e.time_us, 0);
        leader += e.kind == PX_EV_ROLE && e.a == PX_LEADER;
        executed += e.kind == PX_EV_EXECUTE;
        lines++;
    }
    fclose(f);
    cr_assert_geq(leader, 1);
    cr_assert_geq(executed, 1);

    /* durability off: a restart forgets its promise (the amnesia scenarios rely on it) */
    before = single_replica_run("off", &after);
    cr_assert_gt(before, 0);
    cr_assert_eq(after, 0);
    remove_dir();
}

/* ---------- three rift-replica processes over a loopstack ---------- */

#define N3 3
#define CLIENT_IP 0xc6120065u /* 198.18.0.101 */

typedef struct cluster {
    loopstack *ls;
    pid_t pid[N3];
    rs_stack *client;
    uint32_t flow[N3];
    bool up[N3];
    int leader_hint;
    uint64_t seq;
} cluster;

static pid_t spawn_replica(int id)
{
    char cfgpath[128], logpath[128], text[2048];
    snprintf(cfgpath, sizeof(cfgpath), "%s/r%d.json", dir, id + 1);
    snprintf(logpath, sizeof(logpath), "%s/r%d.log", dir, id + 1);
    config_text(text, sizeof(text), id, N3, "fsync");
    FILE *f = fopen(cfgpath, "w");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a failed test */
        int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(RIFT_REPLICA_BIN, "rift-replica", "--config", cfgpath, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* One control request to replica id over its Unix socket; NULL if it does not answer. */
static json_t *ctl(int id, const char *line)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/r%d.ctl.sock", dir, id + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0);
    struct timeval tv = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    json_t *j = NULL;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        send(fd, line, strlen(line), MSG_NOSIGNAL) == (ssize_t)strlen(line) && send(fd, "\n", 1, MSG_NOSIGNAL) == 1) {
        char buf[8192];
        size_t got = 0;
        while (got < sizeof(buf) - 1) {
            ssize_t r = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
            if (r <= 0)
                break;
            got += (size_t)r;
            if (buf[got - 1] == '\n')
                break;
        }
        buf[got] = 0;
        j = got ? json_loads(buf, 0, NULL) : NULL;
    }
    close(fd);
    return j;
}

static json_t *status_of(int id) { return ctl(id, "{\"cmd\":\"status\"}"); }

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Wait until exactly one live replica leads and every live one knows it. */
static int wait_leader(const cluster *cl, int timeout_ms)
{
    for (int t = 0; t < timeout_ms; t += 50) {
        int leader = -1, agree = 0, live = 0;
        for (int i = 0; i < N3; i++) {
            if (!cl->pid[i])
                continue;
            live++;
            json_t *s = status_of(i);
            if (!s)
                continue;
            if (!strcmp(json_string_value(json_object_get(s, "role")), "leader"))
                leader = leader == -1 ? i : -2;
            int hint = (int)json_integer_value(json_object_get(s, "leader"));
            json_decref(s);
            agree += hint >= 0;
        }
        if (leader >= 0 && agree == live)
            return leader;
        sleep_ms(50);
    }
    return -1;
}

static void client_pump(cluster *cl, int wait_ms, uint64_t seq, px_msg *reply, bool *got)
{
    struct pollfd p = {rs_fd(cl->client), POLLIN, 0};
    poll(&p, 1, wait_ms);
    rs_event ev;
    int rc;
    while ((rc = rs_poll(cl->client, &ev)) == 1) {
        for (int i = 0; i < N3; i++) {
            if (ev.flow != cl->flow[i])
                continue;
            if (ev.kind == RS_EV_ESTABLISHED)
                cl->up[i] = true;
            if (ev.kind == RS_EV_RESET || ev.kind == RS_EV_CLOSED)
                cl->up[i] = false, cl->flow[i] = 0;
        }
        px_msg m;
        if (ev.kind != RS_EV_MSG || px_msg_decode(ev.data, ev.len, &m) < 0)
            continue;
        if (m.type == PX_MSG_CLIENT_REPLY && m.u.client_reply.seq == seq && !*got) {
            *reply = m;
            reply->u.client_reply.value = (px_bytes){NULL, 0}; /* borrowed: do not keep */
            if (m.u.client_reply.has_value && m.u.client_reply.value.len < 64) {
                static uint8_t keep[64];
                memcpy(keep, m.u.client_reply.value.data, m.u.client_reply.value.len);
                reply->u.client_reply.value = (px_bytes){keep, m.u.client_reply.value.len};
            }
            *got = true;
        }
        px_msg_release(&m);
    }
    cr_assert_geq(rc, 0, "the loopstack went away");
}

static void client_connect(cluster *cl)
{
    for (int i = 0; i < N3; i++) {
        if (!cl->flow[i]) {
            cl->up[i] = false;
            cr_assert_eq(rs_connect(cl->client, 0xc6120001u + (uint32_t)i, 7000, &cl->flow[i]), 0);
        }
    }
}

/* Send one command until a replica executes it: follow redirects, rotate on silence. */
static px_msg client_call(cluster *cl, uint8_t op, const char *key, const char *value)
{
    uint64_t seq = ++cl->seq;
    int target = cl->leader_hint >= 0 ? cl->leader_hint : 0;
    for (int attempt = 0; attempt < 200; attempt++) {
        client_connect(cl);
        uint8_t buf[512];
        size_t len = client_req(buf, sizeof(buf), PX_CLIENT_BASE + 1, (uint16_t)target, op, seq, key, value);
        if (cl->up[target])
            rs_send(cl->client, cl->flow[target], buf, len);
        px_msg reply;
        bool got = false;
        for (int w = 0; w < 10 && !got; w++)
            client_pump(cl, 20, seq, &reply, &got);
        if (got && reply.u.client_reply.status != PX_REPLY_REDIRECT) {
            cl->leader_hint = target;
            return reply;
        }
        if (got && reply.u.client_reply.leader < N3 && reply.u.client_reply.leader != target)
            target = reply.u.client_reply.leader;
        else
            target = (target + 1) % N3;
    }
    cr_assert_fail("command %llu never completed", (unsigned long long)seq);
    return (px_msg){0};
}

/* A (re)started replica is up once its control socket answers; returns its status. */
static json_t *wait_answers(int id)
{
    for (int t = 0; t < 300; t++) {
        json_t *s = status_of(id);
        if (s)
            return s;
        sleep_ms(10);
    }
    cr_assert_fail("r%d does not answer on its control socket", id + 1);
    return NULL;
}

static void cluster_start(cluster *cl)
{
    make_dir();
    *cl = (cluster){.leader_hint = -1};
    cl->ls = loopstack_new();
    cr_assert(cl->ls);
    char path[128];
    for (int i = 0; i < N3; i++) {
        snprintf(path, sizeof(path), "%s/r%d.stack.sock", dir, i + 1);
        cr_assert_geq(loopstack_add(cl->ls, path, 0xc6120001u + (uint32_t)i), 0);
    }
    snprintf(path, sizeof(path), "%s/c1.stack.sock", dir);
    cr_assert_geq(loopstack_add(cl->ls, path, CLIENT_IP), 0);
    cr_assert_eq(loopstack_start(cl->ls), 0);
    for (int i = 0; i < N3; i++)
        cl->pid[i] = spawn_replica(i);
    cr_assert_eq(rs_attach(path, &cl->client), 0);
}

static int wait_exit(pid_t pid)
{
    int status = 0;
    for (int t = 0; t < 300; t++) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        sleep_ms(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

static void cluster_stop(cluster *cl)
{
    for (int i = 0; i < N3; i++) {
        if (!cl->pid[i])
            continue;
        kill(cl->pid[i], SIGTERM);
        int rc = wait_exit(cl->pid[i]);
        cr_assert_eq(rc, 0, "r%d did not exit cleanly on SIGTERM (%d)", i + 1, rc);
        char sock[128];
        snprintf(sock, sizeof(sock), "%s/r%d.ctl.sock", dir, i + 1);
        cr_assert_neq(access(sock, F_OK), 0, "r%d left its control socket behind", i + 1);
    }
    rs_detach(cl->client);
    loopstack_free(cl->ls);
    remove_dir();
}

/* Wait until every live replica executed the same index (>= index) with the same digest. */
static void wait_converged(const cluster *cl, uint64_t index)
{
    for (int t = 0; t < 100; t++) {
        int agree = 0, live = 0;
        uint64_t le0 = 0, d0 = 0;
        for (int i = 0; i < N3; i++) {
            if (!cl->pid[i])
                continue;
            live++;
            json_t *s = status_of(i);
            if (!s)
                continue;
            uint64_t le = (uint64_t)json_integer_value(json_object_get(s, "last_executed"));
            uint64_t d = (uint64_t)json_integer_value(json_object_get(s, "digest"));
            json_decref(s);
            if (agree == 0) {
                le0 = le;
                d0 = d;
            }
            agree += le >= index && le == le0 && d == d0;
        }
        if (agree == live)
            return;
        sleep_ms(50);
    }
    cr_assert_fail("replicas did not converge on index %llu", (unsigned long long)index);
}

Test(replica_node, three_processes_elect_serve_restart_and_stop, .timeout = 120)
{
    if (access(RIFT_REPLICA_BIN, X_OK) != 0)
        cr_skip_test("%s not built", RIFT_REPLICA_BIN);
    cluster cl;
    cluster_start(&cl);
    int leader = wait_leader(&cl, 5000);
    cr_assert_geq(leader, 0, "no leader elected");

    px_msg r = client_call(&cl, PX_OP_PUT, "k1", "a");
    cr_assert_eq(r.u.client_reply.status, PX_REPLY_OK);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(client_call(&cl, PX_OP_APPEND, "k1", "b").u.client_reply.status, PX_REPLY_OK);
    r = client_call(&cl, PX_OP_GET, "k1", NULL);
    cr_assert_eq(r.u.client_reply.status, PX_REPLY_OK);
    cr_assert(r.u.client_reply.has_value);
    cr_assert_eq(r.u.client_reply.value.len, 11);
    cr_assert_eq(memcmp(r.u.client_reply.value.data, "abbbbbbbbbb", 11), 0);

    /* set on a live process */
    json_t *j = ctl(leader, "{\"cmd\":\"set\",\"param\":\"heartbeat_ms\",\"value\":30}");
    cr_assert(j && reply_ok(j), "set failed: %s", j ? reply_error(j) : "no answer");
    json_decref(j);
    j = ctl(leader, "{\"cmd\":\"set\",\"param\":\"nope\",\"value\":30}");
    cr_assert(j && !reply_ok(j) && strstr(reply_error(j), "nope"));
    json_decref(j);

    /* flows reset under the replicas (a transport giving up): they reconnect */
    j = status_of(leader);
    json_int_t connects = jint(json_object_get(j, "net"), "connects");
    json_decref(j);
    uint32_t lip = 0xc6120001u + (uint32_t)leader;
    for (int i = 0; i < N3; i++) {
        if (i != leader)
            loopstack_reset_between(cl.ls, lip, 0xc6120001u + (uint32_t)i);
    }
    bool all_up = false;
    for (int t = 0; t < 100 && !all_up; t++) {
        sleep_ms(20);
        j = status_of(leader);
        json_t *peers = json_object_get(j, "peers");
        all_up = jint(json_object_get(j, "net"), "connects") >= connects + 2;
        for (size_t i = 0; i < json_array_size(peers); i++)
            all_up &= !strcmp(json_string_value(json_object_get(json_array_get(peers, i), "state")), "up");
        json_decref(j);
    }
    cr_assert(all_up, "the leader did not reconnect to its peers");
    cr_assert_eq(client_call(&cl, PX_OP_PUT, "k0", "y").u.client_reply.status, PX_REPLY_OK);

    /* isolate the leader (both directions): the other two elect one of themselves */
    for (int i = 0; i < N3; i++) {
        if (i == leader)
            continue;
        loopstack_cut(cl.ls, lip, 0xc6120001u + (uint32_t)i, true);
        loopstack_cut(cl.ls, 0xc6120001u + (uint32_t)i, lip, true);
    }
    int other = -1;
    for (int t = 0; t < 100 && other < 0; t++) {
        sleep_ms(50);
        for (int i = 0; i < N3 && other < 0; i++) {
            if (i == leader)
                continue;
            j = status_of(i);
            if (j && !strcmp(json_string_value(json_object_get(j, "role")), "leader"))
                other = i;
            json_decref(j);
        }
    }
    cr_assert_geq(other, 0, "no new leader while r%d was isolated", leader + 1);
    for (int i = 0; i < N3; i++) {
        loopstack_cut(cl.ls, lip, 0xc6120001u + (uint32_t)i, false);
        loopstack_cut(cl.ls, 0xc6120001u + (uint32_t)i, lip, false);
    }
    loopstack_stats lst;
    loopstack_stats_get(cl.ls, &lst);
    cr_assert_gt(lst.msgs_cut, 0);
    leader = wait_leader(&cl, 5000);
    cr_assert_geq(leader, 0, "no agreed leader after healing");
    cl.leader_hint = leader;

    /* SIGKILL a follower, keep writing, restart it: it recovers its promise from
     * the WAL and catches up with the others */
    int victim = (leader + 1) % N3;
    j = status_of(victim);
    cr_assert(j);
    uint64_t promised = (uint64_t)json_integer_value(json_object_get(j, "ballot"));
    json_decref(j);
    kill(cl.pid[victim], SIGKILL);
    waitpid(cl.pid[victim], NULL, 0);
    cl.pid[victim] = 0;
    for (int i = 0; i < 5; i++)
        cr_assert_eq(client_call(&cl, PX_OP_PUT, "k2", "x").u.client_reply.status, PX_REPLY_OK);
    cl.pid[victim] = spawn_replica(victim);
    json_t *s = wait_answers(victim);
    cr_assert_geq((uint64_t)json_integer_value(json_object_get(s, "ballot")), promised,
                  "restart lost the promised ballot");
    json_decref(s);
    r = client_call(&cl, PX_OP_GET, "k2", NULL);
    cr_assert_eq(r.u.client_reply.status, PX_REPLY_OK);
    j = status_of(cl.leader_hint);
    uint64_t executed = (uint64_t)json_integer_value(json_object_get(j, "last_executed"));
    json_decref(j);
    wait_converged(&cl, executed);

    /* SIGKILL the leader: the other two elect a new one and keep serving */
    leader = wait_leader(&cl, 5000);
    cr_assert_geq(leader, 0);
    kill(cl.pid[leader], SIGKILL);
    waitpid(cl.pid[leader], NULL, 0);
    cl.pid[leader] = 0;
    cr_assert_eq(client_call(&cl, PX_OP_PUT, "k3", "after").u.client_reply.status, PX_REPLY_OK);
    int next = wait_leader(&cl, 5000);
    cr_assert(next >= 0 && next != leader);
    cl.pid[leader] = spawn_replica(leader);
    json_decref(wait_answers(leader));
    r = client_call(&cl, PX_OP_GET, "k3", NULL);
    cr_assert_eq(r.u.client_reply.status, PX_REPLY_OK);
    cr_assert_eq(r.u.client_reply.value.len, 5);

    /* event logs: whole lines, one leader change at least, across restarts */
    char path[128];
    snprintf(path, sizeof(path), "%s/r%d.events.jsonl", dir, next + 1);
    FILE *f = fopen(path, "r");
    cr_assert(f);
    char line[RN_EVENT_LINE_MAX + 2];
    int leads = 0;
    while (fgets(line, sizeof(line), f)) {
        px_event e;
        cr_assert_eq(rn_event_parse(line, strlen(line), &e), 0, "bad event line %s", line);
        leads += e.kind == PX_EV_ROLE && e.a == PX_LEADER;
    }
    fclose(f);
    cr_assert_geq(leads, 1);
    cluster_stop(&cl);
}

/* Spawn a one-replica cluster on a fresh loopstack node at r1's stack path. */
static loopstack *single_stack(void)
{
    loopstack *ls = loopstack_new();
    cr_assert(ls);
    char path[128];
    snprintf(path, sizeof(path), "%s/r1.stack.sock", dir);
    cr_assert_geq(loopstack_add(ls, path, 0xc6120001u), 0);
    cr_assert_eq(loopstack_start(ls), 0);
    return ls;
}

static bool wait_attached(int id, bool want, json_int_t *attaches)
{
    for (int t = 0; t < 300; t++) {
        json_t *s = status_of(id);
        if (s && json_is_boolean(json_object_get(s, "attached")) &&
            json_is_true(json_object_get(s, "attached")) == want) {
            *attaches = jint(json_object_get(s, "net"), "attaches");
            json_decref(s);
            return true;
        }
        json_decref(s);
        sleep_ms(10);
    }
    return false;
}

Test(replica_node, survives_the_stack_dying_and_reattaches, .timeout = 60)
{
    if (access(RIFT_REPLICA_BIN, X_OK) != 0)
        cr_skip_test("%s not built", RIFT_REPLICA_BIN);
    make_dir();
    /* rewrite r1's config as a one-replica cluster */
    char cfgpath[128], text[2048];
    config_text(text, sizeof(text), 0, 1, "write");
    snprintf(cfgpath, sizeof(cfgpath), "%s/r1.json", dir);
    loopstack *ls = single_stack();
    FILE *f = fopen(cfgpath, "w");
    fputs(text, f);
    fclose(f);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 2);
        execl(RIFT_REPLICA_BIN, "rift-replica", "--config", cfgpath, (char *)NULL);
        _exit(127);
    }
    json_int_t attaches = 0;
    cr_assert(wait_attached(0, true, &attaches), "never attached");
    cr_assert_eq(attaches, 1);
    loopstack_free(ls); /* rift-stackd dies under the replica */
    cr_assert(wait_attached(0, false, &attaches), "did not notice the stack dying");
    ls = single_stack();
    cr_assert(wait_attached(0, true, &attaches), "did not re-attach");
    cr_assert_eq(attaches, 2);
    kill(pid, SIGTERM);
    cr_assert_eq(wait_exit(pid), 0);
    loopstack_free(ls);
    remove_dir();
}

Test(replica_node, missing_stack_exits_3_and_bad_config_exits_2, .timeout = 30)
{
    if (access(RIFT_REPLICA_BIN, X_OK) != 0)
        cr_skip_test("%s not built", RIFT_REPLICA_BIN);
    make_dir();
    char cfgpath[128], text[2048];
    config_text(text, sizeof(text), 0, 3, "fsync");
    /* a short attach timeout so the test is quick */
    char *at = strstr(text, "\"attach_timeout_ms\":3000");
    cr_assert(at);
    memcpy(at, "\"attach_timeout_ms\":0300", 24);
    snprintf(cfgpath, sizeof(cfgpath), "%s/r1.json", dir);
    FILE *f = fopen(cfgpath, "w");
    fputs(text, f);
    fclose(f);
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "'%s' --config '%s' 2>/dev/null", RIFT_REPLICA_BIN, cfgpath);
    int st = system(cmd);
    cr_assert(WIFEXITED(st));
    cr_assert_eq(WEXITSTATUS(st), 2, "a leading-zero integer is invalid JSON: expected exit 2");
    memcpy(at, "\"attach_timeout_ms\": 300", 24);
    f = fopen(cfgpath, "w");
    fputs(text, f);
    fclose(f);
    st = system(cmd);
    cr_assert(WIFEXITED(st));
    cr_assert_eq(WEXITSTATUS(st), 3, "no stack: expected exit 3");
    snprintf(cmd, sizeof(cmd), "'%s' --config '%s/none.json' 2>/dev/null", RIFT_REPLICA_BIN, dir);
    st = system(cmd);
    cr_assert_eq(WEXITSTATUS(st), 2);
    remove_dir();
}
