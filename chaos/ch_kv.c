/* ch_kv.c — one KV command against a live cluster over the real dataplane. */
#include "ch_kv.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "../paxos/px_kv.h"
#include "../paxos/px_msg.h"
#include "../stack/rift_stack.h"

#define TRY_MS 300
#define TOTAL_MS 5000

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: rift kv --run RUN_DIR [--node cN] get KEY | put KEY VALUE | del KEY\n"
               "  Sends one command to the live cluster of a running `rift run --backend dpdk`.\n"
               "  Prints {\"ok\":...,\"value\":...} on stdout.\n");
}

/* Replica addresses from the replica config the controller wrote. */
static int load_replicas(const char *run_dir, uint32_t *ips, uint16_t *ports, int *n)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/nodes/r1/replica.json", run_dir);
    json_error_t je;
    json_t *cfg = json_load_file(path, 0, &je);
    json_t *reps = json_object_get(cfg, "replicas");
    if (!json_is_array(reps) || json_array_size(reps) == 0 || json_array_size(reps) > PX_MAX_REPLICAS) {
        fprintf(stderr, "rift kv: %s: expected a replica config with a \"replicas\" list (is this a dpdk run?)\n",
                path);
        json_decref(cfg);
        return -ENOENT;
    }
    *n = (int)json_array_size(reps);
    for (int i = 0; i < *n; i++) {
        json_t *r = json_array_get(reps, (size_t)i);
        unsigned a, b, c, d;
        const char *ip = json_string_value(json_object_get(r, "ip"));
        if (!ip || sscanf(ip, "%u.%u.%u.%u", &a, &b, &c, &d) != 4) {
            fprintf(stderr, "rift kv: %s: replicas[%d].ip: expected an IPv4 address\n", path, i);
            json_decref(cfg);
            return -EINVAL;
        }
        ips[i] = a << 24 | b << 16 | c << 8 | d;
        ports[i] = (uint16_t)json_integer_value(json_object_get(r, "port"));
    }
    json_decref(cfg);
    return 0;
}

int ch_kv_main(int argc, char **argv)
{
    const char *run_dir = NULL, *node = "c1";
    static const struct option opts[] = {{"run", required_argument, 0, 'r'}, {"node", required_argument, 0, 'n'},
                                         {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+r:n:h", opts, NULL)) != -1) {
        switch (c) {
        case 'r': run_dir = optarg; break;
        case 'n': node = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    int left = argc - optind;
    char **a = argv + optind;
    px_cmd cmd = {0};
    if (!run_dir || left < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(a[0], "get") == 0 && left == 2)
        cmd.op = PX_OP_GET;
    else if (strcmp(a[0], "del") == 0 && left == 2)
        cmd.op = PX_OP_DEL;
    else if (strcmp(a[0], "put") == 0 && left == 3)
        cmd.op = PX_OP_PUT;
    else {
        fprintf(stderr, "rift kv: expected get KEY, put KEY VALUE or del KEY\n");
        return 2;
    }
    cmd.key = (px_bytes){(const uint8_t *)a[1], (uint32_t)strlen(a[1])};
    if (cmd.op == PX_OP_PUT)
        cmd.value = (px_bytes){(const uint8_t *)a[2], (uint32_t)strlen(a[2])};
    /* A fresh session far above the workload's client ids. */
    uint64_t rnd = 0;
    if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
        rnd = (uint64_t)time(NULL);
    cmd.client_id = (1ull << 40) | (rnd & 0xffffffffffull);
    cmd.seq = 1;

    uint32_t ips[PX_MAX_REPLICAS];
    uint16_t ports[PX_MAX_REPLICAS];
    int n = 0;
    if (load_replicas(run_dir, ips, ports, &n) < 0)
        return 3;
    char sock[PATH_MAX];
    snprintf(sock, sizeof(sock), "%s/nodes/%s/stack.sock", run_dir, node);
    rs_stack *s = NULL;
    int e = rs_attach(sock, &s);
    if (e < 0) {
        fprintf(stderr, "rift kv: cannot attach to %s: %s (is the run still going?)\n", sock, strerror(-e));
        return 3;
    }
    uint32_t flows[PX_MAX_REPLICAS] = {0};
    bool up[PX_MAX_REPLICAS] = {0};
    for (int i = 0; i < n; i++)
        rs_connect(s, ips[i], ports[i], &flows[i]);

    uint8_t cbuf[4096], mbuf[8192];
    size_t clen, mlen;
    if (px_cmd_encode(&cmd, cbuf, sizeof(cbuf), &clen) < 0) {
        fprintf(stderr, "rift kv: key or value too long\n");
        rs_detach(s);
        return 2;
    }
    px_msg req = {.type = PX_MSG_CLIENT_REQ, .from = 0xfff0, /* above any workload client */ .u.client_req.cmd = {cbuf, (uint32_t)clen}};
    int target = 0, rc = 3;
    uint64_t start = mono_ms(), sent_at = 0;
    bool sent = false;
    while (mono_ms() - start < TOTAL_MS && rc == 3) {
        if (!sent || mono_ms() - sent_at > TRY_MS) {
            if (sent)
                target = (target + 1) % n; /* no answer: try the next replica */
            if (up[target]) {
                req.to = (uint16_t)target;
                if (px_msg_encode(&req, mbuf, sizeof(mbuf), &mlen) == 0 && rs_send(s, flows[target], mbuf, mlen) == 0) {
                    sent = true;
                    sent_at = mono_ms();
                }
            } else if (sent || mono_ms() - start > TRY_MS) {
                target = (target + 1) % n;
                sent_at = mono_ms();
                sent = true;
            }
        }
        struct pollfd p = {.fd = rs_fd(s), .events = POLLIN};
        poll(&p, 1, 10);
        rs_event ev;
        int got;
        while ((got = rs_poll(s, &ev)) > 0) {
            int from = -1;
            for (int i = 0; i < n; i++)
                if (flows[i] == ev.flow)
                    from = i;
            if (from < 0)
                continue;
            if (ev.kind == RS_EV_ESTABLISHED) {
                up[from] = true;
            } else if (ev.kind == RS_EV_RESET || ev.kind == RS_EV_CLOSED) {
                up[from] = false;
                rs_connect(s, ips[from], ports[from], &flows[from]);
            } else if (ev.kind == RS_EV_MSG) {
                px_msg m;
                if (px_msg_decode(ev.data, ev.len, &m) < 0)
                    continue;
                if (m.type == PX_MSG_CLIENT_REPLY && m.u.client_reply.client_id == cmd.client_id) {
                    uint8_t st = m.u.client_reply.status;
                    if (st == PX_REPLY_REDIRECT) {
                        uint16_t hint = m.u.client_reply.leader;
                        target = hint < n ? hint : (target + 1) % n;
                        sent = false;
                    } else {
                        json_t *out = json_pack("{s:b, s:s}", "ok", st == PX_REPLY_OK, "f", a[0]);
                        if (m.u.client_reply.has_value)
                            json_object_set_new(out, "value",
                                                json_stringn((const char *)m.u.client_reply.value.data,
                                                             m.u.client_reply.value.len));
                        else if (cmd.op == PX_OP_GET)
                            json_object_set_new(out, "value", json_null());
                        json_object_set_new(out, "leader", json_integer(from + 1));
                        char *txt = json_dumps(out, JSON_COMPACT);
                        printf("%s\n", txt ? txt : "{}");
                        free(txt);
                        json_decref(out);
                        rc = st == PX_REPLY_OK ? 0 : 1;
                    }
                }
                px_msg_release(&m);
            }
        }
        if (got < 0) {
            fprintf(stderr, "rift kv: the stack went away\n");
            break;
        }
    }
    if (rc == 3)
        fprintf(stderr, "rift kv: no answer from the cluster within %d ms\n", TOTAL_MS);
    rs_detach(s);
    return rc;
}
