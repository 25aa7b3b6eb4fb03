/* test_stackd.c — rift-stackd's pure parts: the control-line parser and its
 * socket server, the configuration (file, flags, EAL arguments), and the RSS
 * source-port pick checked against an independent Toeplitz implementation.
 * No DPDK port and no root needed (test_stackd_net.c runs the daemon). */
#include <criterion/criterion.h>

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "stack/st_ctl.h"
#include "stack/st_port.h"
#include "stack/st_stackd.h"

static char err[512];

static int parse(const char *line, st_ctl_cmd *c)
{
    err[0] = 0;
    return st_ctl_parse(line, strlen(line), c, err, sizeof err);
}

/* ------------------------------------------------------------------ parser */

Test(stackd_ctl, simple_commands)
{
    st_ctl_cmd c;
    cr_assert_eq(parse("{\"cmd\":\"ping\"}", &c), 0);
    cr_assert_eq(c.kind, ST_CTL_PING);
    cr_assert_eq(parse("{\"cmd\":\"stats\"}", &c), 0);
    cr_assert_eq(c.kind, ST_CTL_STATS);
    cr_assert_eq(parse("{\"cmd\":\"impair-list\"}", &c), 0);
    cr_assert_eq(c.kind, ST_CTL_IMPAIR_LIST);
    cr_assert_eq(parse("{\"cmd\":\"capture-stop\"}", &c), 0);
    cr_assert_eq(c.kind, ST_CTL_CAPTURE_STOP);
    cr_assert_eq(parse("{\"cmd\":\"capture-start\",\"path\":\"/tmp/x.pcapng\"}", &c), 0);
    cr_assert_str_eq(c.path, "/tmp/x.pcapng");
    cr_assert_eq(parse("{\"cmd\":\"impair-remove\",\"id\":7}", &c), 0);
    cr_assert_eq(c.kind, ST_CTL_IMPAIR_REMOVE);
    cr_assert_eq(c.id, 7);
}

Test(stackd_ctl, impair_add_maps_every_field)
{
    st_ctl_cmd c;
    cr_assert_eq(parse("{\"cmd\":\"impair-add\",\"rule\":{\"src\":\"198.18.0.1\",\"dst\":\"198.18.0.2\","
                       "\"loss\":0.25,\"correlation\":0.5,\"delay_ms\":12.5,\"jitter_ms\":3,"
                       "\"distribution\":\"pareto\",\"duplicate\":0.1,\"reorder\":0.2,\"reorder_ms\":4}}",
                       &c),
                 0, "%s", err);
    cr_assert_eq(c.kind, ST_CTL_IMPAIR_ADD);
    const st_impair_rule *r = &c.rule;
    cr_assert_eq(r->src, 0xc6120001u);
    cr_assert_eq(r->dst, 0xc6120002u);
    cr_assert_not(r->cut);
    cr_assert_float_eq(r->loss, 0.25, 1e-12);
    cr_assert_float_eq(r->loss_correlation, 0.5, 1e-12);
    cr_assert_eq(r->delay_us, 12500);
    cr_assert_eq(r->jitter_us, 3000);
    cr_assert_eq(r->distribution, ST_DELAY_PARETO);
    cr_assert_float_eq(r->duplicate, 0.1, 1e-12);
    cr_assert_float_eq(r->reorder, 0.2, 1e-12);
    cr_assert_eq(r->reorder_us, 4000);
}

Test(stackd_ctl, drop_means_cut_or_loss)
{
    st_ctl_cmd c;
    cr_assert_eq(parse("{\"cmd\":\"impair-add\",\"rule\":{\"src\":\"*\",\"dst\":\"198.18.0.2\",\"drop\":1.0}}", &c), 0);
    cr_assert(c.rule.cut);
    cr_assert_eq(c.rule.src, ST_IMPAIR_ANY);
    cr_assert_eq(parse("{\"cmd\":\"impair-add\",\"rule\":{\"src\":\"*\",\"dst\":\"*\",\"drop\":true}}", &c), 0);
    cr_assert(c.rule.cut);
    cr_assert_eq(parse("{\"cmd\":\"impair-add\",\"rule\":{\"src\":\"*\",\"dst\":\"*\",\"drop\":0.3}}", &c), 0);
    cr_assert_not(c.rule.cut);
    cr_assert_float_eq(c.rule.loss, 0.3, 1e-12);
    /* drop 0.3 and loss 0.1 together is ambiguous */
    cr_assert_eq(parse("{\"cmd\":\"impair-add\",\"rule\":{\"src\":\"*\",\"dst\":\"*\",\"drop\":0.3,\"loss\":0.1}}", &c),
                 -EINVAL);
    cr_assert(strstr(err, "drop"), "%s", err);
}

/* Every rejection names the field that was wrong. */
Test(stackd_ctl, errors_name_the_field)
{
    static const struct {
        const char *line, *field;
    } cases[] = {
        {"", "request"},
        {"nonsense", "request"},
        {"[1,2]", "request"},
        {"{}", "cmd"},
        {"{\"cmd\":3}", "cmd"},
        {"{\"cmd\":\"reboot\"}", "cmd"},
        {"{\"cmd\":\"ping\",\"extra\":1}", "extra"},
        {"{\"cmd\":\"ping\",\"cmd\":\"stats\"}", "request"}, /* duplicate keys */
        {"{\"cmd\":\"impair-add\"}", "rule"},
        {"{\"cmd\":\"impair-add\",\"rule\":[]}", "rule"},
        {"{\"cmd\":\"impair-add\",\"rule\":{\"dst\":\"*\"}}", "rule.src"},
        {"{\"cmd\":\"impair-add\",\"rule\":{\"src\":\"*\"}}", "rule.dst"},
        {"{\"cmd\":\"impair-add\",\"rule\":{\"src\":\"1.2.3\",\"dst\":\"*\"}}", "rule.src"},
        {"{\"cmd\":\"impair-add\",\"rule\":{\"src\":\"255.255.255.255\",\"dst\":\"*\"}}", "rule.src"},
        {"{\"cmd\":\"impair-add\",\"rule\":{\"src\":\"*\",\"dst\":\"*\",\"loss\":1.5}}", "rule.loss"},
        {"{\"cmd\":\"impair-add\",\"rule\":{\"src\":\"*\",\"dst\":\"*\",\"loss\":\"x\"}}", "rule.loss"},
        {"{\"cmd\":\"impair-add\",\"rule\":{\"src\":\"*\",\"dst\":\"*\",\"delay_ms\":-1}}", "rule.delay_ms"},
        {"{\"cmd\":\"impair-add\",\"rule\":{\"src\":\"*\",\"dst\":\"*\",\"delay_ms\":600000}}", "rule.delay_ms"},
        {"{\"cmd\":\"impair-add\",\"rule\":{\"src\":\"*\",\"dst\":\"*\",\"dealy_ms\":5}}", "rule.dealy_ms"},
        {"{\"cmd\":\"impair-add\",\"rule\":{\"src\":\"*\",\"dst\":\"*\",\"distribution\":\"zipf\"}}",
         "rule.distribution"},
        {"{\"cmd\":\"impair-add\",\"rule\":{\"src\":\"*\",\"dst\":\"*\",\"cut\":1}}", "rule.cut"},
        {"{\"cmd\":\"impair-remove\"}", "id"},
        {"{\"cmd\":\"impair-remove\",\"id\":-1}", "id"},
        {"{\"cmd\":\"impair-remove\",\"id\":1.5}", "id"},
        {"{\"cmd\":\"impair-clear\",\"src\":\"*\"}", "dst"},
        {"{\"cmd\":\"capture-start\"}", "path"},
        {"{\"cmd\":\"capture-start\",\"path\":\"\"}", "path"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        st_ctl_cmd c;
        cr_assert_eq(parse(cases[i].line, &c), -EINVAL, "accepted: %s", cases[i].line);
        cr_assert(strstr(err, cases[i].field) == err, "%s -> \"%s\" (expected it to start with %s)", cases[i].line,
                  err, cases[i].field);
    }
}

Test(stackd_ctl, clear_one_link_or_all)
{
    st_ctl_cmd c;
    cr_assert_eq(parse("{\"cmd\":\"impair-clear\"}", &c), 0);
    cr_assert_not(c.link);
    cr_assert_eq(parse("{\"cmd\":\"impair-clear\",\"src\":\"198.18.0.3\",\"dst\":\"*\"}", &c), 0);
    cr_assert(c.link);
    cr_assert_eq(c.src, 0xc6120003u);
    cr_assert_eq(c.dst, ST_IMPAIR_ANY);
}

/* What impair-list prints parses back to the same rule. */
Test(stackd_ctl, rule_json_round_trips)
{
    st_impair_rule r = {.src = 0xc6120001u, .dst = ST_IMPAIR_ANY, .loss = 0.125, .loss_correlation = 0.25,
                        .delay_us = 1500, .jitter_us = 250, .distribution = ST_DELAY_NORMAL, .duplicate = 0.5,
                        .reorder = 0.0625, .reorder_us = 2000};
    json_t *rule = st_ctl_rule_json(&r);
    cr_assert_not_null(rule);
    json_t *req = json_pack("{s:s, s:o}", "cmd", "impair-add", "rule", rule);
    char *line = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    st_ctl_cmd c;
    cr_assert_eq(parse(line, &c), 0, "%s: %s", line, err);
    free(line);
    cr_assert_eq(memcmp(&c.rule, &r, sizeof r), 0);
    st_impair_rule cut = {.src = 1, .dst = 2, .cut = true};
    rule = st_ctl_rule_json(&cut);
    cr_assert(json_is_true(json_object_get(rule, "cut")));
    json_decref(rule);
}

static json_t *echo_handler(void *ctx, const st_ctl_cmd *cmd)
{
    int *calls = ctx;
    (*calls)++;
    return json_pack("{s:b, s:i}", "ok", 1, "kind", cmd->kind);
}

Test(stackd_ctl, reply_lines)
{
    int calls = 0;
    char *r = st_ctl_reply("{\"cmd\":\"stats\"}", 15, echo_handler, &calls);
    cr_assert_str_eq(r, "{\"ok\":true,\"kind\":6}\n");
    free(r);
    r = st_ctl_reply("{\"cmd\":", 7, echo_handler, &calls);
    cr_assert(strncmp(r, "{\"ok\":false,\"error\":\"request: not JSON", 37) == 0, "%s", r);
    cr_assert_eq(r[strlen(r) - 1], '\n');
    free(r);
    cr_assert_eq(calls, 1, "the handler only sees valid commands");
}

/* ------------------------------------------------------------------ server */

static int ctl_connect(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, path);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

/* Poll the server until `want` newline-terminated replies arrived on fd. */
static size_t read_replies(st_ctl *srv, int fd, char *buf, size_t cap, int want)
{
    size_t n = 0;
    for (int i = 0; i < 2000; i++) {
        st_ctl_poll(srv);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 1) == 1) {
            ssize_t r = recv(fd, buf + n, cap - 1 - n, MSG_DONTWAIT);
            if (r == 0)
                break;
            if (r > 0)
                n += (size_t)r;
        }
        buf[n] = 0;
        int lines = 0;
        for (size_t k = 0; k < n; k++)
            lines += buf[k] == '\n';
        if (lines >= want)
            break;
    }
    buf[n] = 0;
    return n;
}

Test(stackd_ctl, server_answers_in_order_and_survives_garbage)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/rf-test-ctl-%d.sock", (int)getpid());
    int calls = 0;
    st_ctl *srv = st_ctl_new(path, echo_handler, &calls, err, sizeof err);
    cr_assert_not_null(srv, "%s", err);
    int fd = ctl_connect(path);
    /* Two requests in one write, one split over two writes, blank lines and CRLF. */
    const char *a = "{\"cmd\":\"ping\"}\n\n{\"cmd\":\"bad\"}\r\n{\"cmd\":\"st";
    cr_assert_eq(write(fd, a, strlen(a)), (ssize_t)strlen(a));
    char buf[4096];
    read_replies(srv, fd, buf, sizeof buf, 2);
    cr_assert_eq(write(fd, "ats\"}\n", 6), 6);
    size_t n = read_replies(srv, fd, buf + strlen(buf), sizeof buf - strlen(buf), 1);
    (void)n;
    cr_assert_str_eq(buf, "{\"ok\":true,\"kind\":1}\n"
                          "{\"ok\":false,\"error\":\"cmd: unknown command \\\"bad\\\"\"}\n"
                          "{\"ok\":true,\"kind\":6}\n");
    /* Binary garbage with NULs is an error reply, not a crash. */
    const char junk[] = {'{', 0, '\xff', '"', '\n'};
    cr_assert_eq(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
    read_replies(srv, fd, buf, sizeof buf, 1);
    cr_assert(strstr(buf, "\"ok\":false"), "%s", buf);
    close(fd);
    st_ctl_poll(srv);
    /* Still serving after that client left. */
    fd = ctl_connect(path);
    cr_assert_eq(write(fd, "{\"cmd\":\"ping\"}\n", 15), 15);
    read_replies(srv, fd, buf, sizeof buf, 1);
    cr_assert_str_eq(buf, "{\"ok\":true,\"kind\":1}\n");
    close(fd);
    st_ctl_free(srv);
    cr_assert_neq(access(path, F_OK), 0, "the socket file is removed");
}

Test(stackd_ctl, overlong_line_is_refused)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/rf-test-ctl2-%d.sock", (int)getpid());
    int calls = 0;
    st_ctl *srv = st_ctl_new(path, echo_handler, &calls, err, sizeof err);
    cr_assert_not_null(srv, "%s", err);
    int fd = ctl_connect(path);
    size_t big = ST_CTL_LINE_MAX + 100;
    char *line = malloc(big);
    memset(line, ' ', big);
    size_t off = 0;
    char buf[4096] = "";
    while (off < big) { /* write while the server reads */
        ssize_t w = send(fd, line + off, big - off, MSG_DONTWAIT);
        if (w > 0)
            off += (size_t)w;
        st_ctl_poll(srv);
        if (w < 0 && errno != EAGAIN)
            break;
    }
    read_replies(srv, fd, buf, sizeof buf, 1);
    cr_assert(strstr(buf, "longer than"), "%s", buf);
    cr_assert_eq(calls, 0);
    free(line);
    close(fd);
    st_ctl_free(srv);
}

/* ------------------------------------------------------------------ configuration */

Test(stackd_config, json_file_fields)
{
    st_stackd_config c;
    st_stackd_config_default(&c);
    const char *j = "{\"ip\":\"198.18.0.2\",\"netmask_bits\":16,\"iface\":\"rf-x-r1\",\"mac\":\"02:00:00:00:00:07\","
                    "\"pmd\":\"af_packet\",\"eal\":[\"--log-level\",\"8\"],\"socket\":\"/tmp/s.sock\","
                    "\"control\":\"/tmp/c.sock\",\"polling\":\"busy\",\"core\":1,\"spin_us\":5,"
                    "\"transport\":{\"rto_min_us\":500,\"max_flows\":64,\"ephemeral_lo\":40000}}";
    cr_assert_eq(st_stackd_config_json(&c, j, strlen(j), "x.json", err, sizeof err), 0, "%s", err);
    cr_assert_eq(c.ip, 0xc6120002u);
    cr_assert_eq(c.netmask_bits, 16);
    cr_assert_str_eq(c.iface, "rf-x-r1");
    cr_assert(c.mac_set);
    cr_assert_eq(c.mac[5], 7);
    cr_assert_eq(c.pmd, ST_PMD_AF_PACKET);
    cr_assert_eq(c.n_eal, 2);
    cr_assert_str_eq(c.eal[1], "8");
    cr_assert_str_eq(c.sock_path, "/tmp/s.sock");
    cr_assert_str_eq(c.ctl_path, "/tmp/c.sock");
    cr_assert_eq(c.polling, ST_POLL_BUSY);
    cr_assert_eq(c.core, 1);
    cr_assert_eq(c.spin_us, 5);
    cr_assert_eq(c.transport.rto_min_us, 500);
    cr_assert_eq(c.transport.max_flows, 64);
    cr_assert_eq(c.transport.ephemeral_lo, 40000);
    cr_assert_eq(st_stackd_config_check(&c, err, sizeof err), 0, "%s", err);
}

Test(stackd_config, errors_name_file_and_field)
{
    static const struct {
        const char *json, *expect;
    } cases[] = {
        {"{\"ip\":\"300.1.1.1\"}", "cfg.json: ip:"},
        {"{\"ip\":\"127.0.0.1\"}", "cfg.json: ip:"},
        {"{\"iface\":\"a-very-long-interface-name\"}", "cfg.json: iface:"},
        {"{\"pmd\":\"mlx5\"}", "cfg.json: pmd:"},
        {"{\"mac\":\"01:00:00:00:00:01\"}", "cfg.json: mac:"},
        {"{\"polling\":\"lazy\"}", "cfg.json: polling:"},
        {"{\"netmask_bits\":40}", "cfg.json: netmask_bits:"},
        {"{\"eal\":\"-l 1\"}", "cfg.json: eal:"},
        {"{\"eal\":[1]}", "cfg.json: eal[0]:"},
        {"{\"transport\":{\"rto_min_us\":-5}}", "cfg.json: transport.rto_min_us:"},
        {"{\"transport\":{\"max_flows\":1.5}}", "cfg.json: transport.max_flows:"},
        {"{\"transport\":{\"rto_mni_us\":5}}", "cfg.json: transport.rto_mni_us:"},
        {"{\"ephemeral\":1}", "cfg.json: ephemeral:"},
        {"{\"socket\":{}}", "cfg.json: socket:"},
        {"[]", "cfg.json: expected a JSON object"},
        {"{\"ip\":", "cfg.json:1:"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        st_stackd_config c;
        st_stackd_config_default(&c);
        cr_assert_eq(st_stackd_config_json(&c, cases[i].json, strlen(cases[i].json), "cfg.json", err, sizeof err),
                     -EINVAL, "accepted %s", cases[i].json);
        cr_assert(strncmp(err, cases[i].expect, strlen(cases[i].expect)) == 0, "%s -> %s", cases[i].json, err);
    }
}

Test(stackd_config, check_requires_the_essentials)
{
    st_stackd_config c;
    st_stackd_config_default(&c);
    cr_assert_eq(st_stackd_config_check(&c, err, sizeof err), -EINVAL);
    cr_assert(strncmp(err, "ip:", 3) == 0, "%s", err);
    st_stackd_config_set(&c, "ip", "198.18.0.1", err, sizeof err);
    cr_assert_eq(st_stackd_config_check(&c, err, sizeof err), -EINVAL);
    cr_assert(strncmp(err, "iface:", 6) == 0, "%s", err);
    st_stackd_config_set(&c, "iface", "rf0", err, sizeof err);
    cr_assert_eq(st_stackd_config_check(&c, err, sizeof err), -EINVAL);
    cr_assert(strncmp(err, "socket:", 7) == 0, "%s", err);
    st_stackd_config_set(&c, "socket", "/tmp/a", err, sizeof err);
    st_stackd_config_set(&c, "control", "/tmp/a", err, sizeof err);
    cr_assert_eq(st_stackd_config_check(&c, err, sizeof err), -EINVAL);
    cr_assert(strncmp(err, "control:", 8) == 0, "%s", err);
    st_stackd_config_set(&c, "control", "/tmp/b", err, sizeof err);
    cr_assert_eq(st_stackd_config_check(&c, err, sizeof err), 0, "%s", err);
    /* The transport's own range checks surface under transport. */
    cr_assert_eq(st_stackd_config_set(&c, "transport.max_inflight", "100", err, sizeof err), 0);
    cr_assert_eq(st_stackd_config_check(&c, err, sizeof err), -EINVAL);
    cr_assert(strncmp(err, "transport.max_inflight", 22) == 0, "%s", err);
    /* pmd eal needs no interface: the EAL arguments name the device. */
    st_stackd_config_default(&c);
    st_stackd_config_set(&c, "ip", "10.0.0.1", err, sizeof err);
    st_stackd_config_set(&c, "pmd", "eal", err, sizeof err);
    st_stackd_config_set(&c, "socket", "/tmp/a", err, sizeof err);
    st_stackd_config_set(&c, "control", "/tmp/b", err, sizeof err);
    cr_assert_eq(st_stackd_config_check(&c, err, sizeof err), 0, "%s", err);
}

static bool has_arg(char **argv, int argc, const char *a)
{
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], a))
            return true;
    return false;
}

Test(stackd_config, eal_arguments)
{
    static st_stackd_config c;
    st_stackd_config_default(&c);
    static char store[ST_STACKD_EAL_MAX + 16][ST_STACKD_ARG_MAX];
    char *argv[ST_STACKD_EAL_MAX + 17];
    int argc = st_stackd_eal_argv(&c, "rift-stackd", argv, ST_STACKD_EAL_MAX + 16, store);
    cr_assert_str_eq(argv[0], "rift-stackd");
    cr_assert(has_arg(argv, argc, "--no-huge"));
    cr_assert(has_arg(argv, argc, "--no-pci"));
    cr_assert(has_arg(argv, argc, "--lcores"), "no core given: float over every allowed CPU");
    cr_assert_null(argv[argc]);
    /* a pinned core, and extra arguments passed through after the defaults */
    st_stackd_config_set(&c, "core", "1", err, sizeof err);
    st_stackd_config_set(&c, "eal", "--vdev=net_null0", err, sizeof err);
    argc = st_stackd_eal_argv(&c, "x", argv, ST_STACKD_EAL_MAX + 16, store);
    cr_assert(has_arg(argv, argc, "-l"));
    cr_assert(has_arg(argv, argc, "1"));
    cr_assert_str_eq(argv[argc - 1], "--vdev=net_null0");
    /* without the testbed defaults only the user's arguments remain (cloud VMs) */
    st_stackd_config_set(&c, "eal_defaults", "false", err, sizeof err);
    argc = st_stackd_eal_argv(&c, "x", argv, ST_STACKD_EAL_MAX + 16, store);
    cr_assert_eq(argc, 2);
    cr_assert_str_eq(argv[1], "--vdev=net_null0");
}

/* ------------------------------------------------------------------ RSS pick */

/* Toeplitz hash straight from its definition (bit by bit over the input),
 * independent of rte_softrss. */
static uint32_t toeplitz(const uint8_t *key, size_t key_len, const uint8_t *in, size_t len)
{
    uint32_t h = 0;
    for (size_t i = 0; i < len * 8; i++) {
        if (!(in[i / 8] & (0x80 >> (i % 8))))
            continue;
        uint32_t window = 0; /* key bits i .. i+31 */
        for (size_t b = 0; b < 32; b++) {
            size_t k = i + b;
            uint32_t bit = k / 8 < key_len ? (key[k / 8] >> (7 - k % 8)) & 1 : 0;
            window = window << 1 | bit;
        }
        h ^= window;
    }
    return h;
}

static const uint8_t ms_key[40] = {0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
                                   0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
                                   0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa};

static uint32_t reply_hash(uint32_t local_ip, uint32_t remote_ip, uint16_t remote_port, uint16_t local_port)
{
    /* The NIC hashes what arrives: src = the peer, dst = us, in network order. */
    uint8_t in[12] = {remote_ip >> 24, remote_ip >> 16, remote_ip >> 8, remote_ip, local_ip >> 24, local_ip >> 16,
                      local_ip >> 8,   local_ip,        remote_port >> 8, remote_port, local_port >> 8, local_port};
    return toeplitz(ms_key, sizeof ms_key, in, sizeof in);
}

Test(stackd_rss, reference_toeplitz_matches_the_published_vector)
{
    /* Microsoft's RSS verification suite, IPv4 with ports:
     * 66.9.149.187:2794 -> 161.142.100.80:1766 hashes to 0x51ccc178. */
    cr_assert_eq(reply_hash(0xa18e6450u, 0x420995bbu, 2794, 1766), 0x51ccc178u);
}

Test(stackd_rss, picks_the_first_port_landing_on_queue_zero)
{
    uint16_t reta[128];
    for (int i = 0; i < 128; i++)
        reta[i] = (uint16_t)(i % 4); /* four queues, round robin */
    static const uint32_t pairs[][2] = {{0xc6120002u, 0xc6120001u}, {0x0a010203u, 0xc0a80709u},
                                        {0x420995bbu, 0xa18e6450u}};
    for (int k = 0; k < 3; k++) {
        uint32_t local = pairs[k][0], remote = pairs[k][1];
        for (uint16_t rport = 7000; rport < 7010; rport++) {
            uint16_t p = st_port_rss_pick(ms_key, reta, 128, local, remote, rport, 49152, 65535);
            cr_assert_neq(p, 0);
            cr_assert_eq(reta[reply_hash(local, remote, rport, p) % 128], 0, "port %u", p);
            for (uint32_t q = 49152; q < p; q++)
                cr_assert_neq(reta[reply_hash(local, remote, rport, (uint16_t)q) % 128], 0, "missed %u", q);
        }
    }
    uint32_t local = 0xc6120002u, remote = 0xc6120001u;
    /* No queue-0 entry in the table: nothing fits. */
    uint16_t none[8] = {1, 2, 3, 1, 2, 3, 1, 2};
    cr_assert_eq(st_port_rss_pick(ms_key, none, 8, local, remote, 7000, 49152, 49300), 0);
}
