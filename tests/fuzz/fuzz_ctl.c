/* fuzz_ctl.c — libFuzzer target for rift-stackd's control-line parser.
 *
 * Beyond "never crash": whatever parses must be a command the daemon can run
 * as is — a known kind, a rule the fault model accepts, a NUL-terminated
 * path — and a parsed rule printed back (st_ctl_rule_json) must parse to the
 * same rule, so impair-list shows exactly what is installed.
 *
 *   clang -g -fsanitize=fuzzer,address,undefined -I. stack/st_ctl.c stack/st_impair.c \
 *       tests/fuzz/fuzz_ctl.c -ljansson -lm -o /tmp/fuzz_ctl */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "stack/st_ctl.h"

static json_t *never(void *ctx, const st_ctl_cmd *cmd)
{
    (void)ctx;
    return json_pack("{s:b, s:i}", "ok", 1, "kind", cmd->kind);
}

static void round_trip(const st_impair_rule *r)
{
    json_t *req = json_pack("{s:s, s:o}", "cmd", "impair-add", "rule", st_ctl_rule_json(r));
    if (!req)
        __builtin_trap();
    char *line = json_dumps(req, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(req);
    st_ctl_cmd again;
    char err[256];
    if (!line || st_ctl_parse(line, strlen(line), &again, err, sizeof err) != 0)
        __builtin_trap();
    /* Milliseconds print as doubles; the µs they came from survive exactly. */
    const st_impair_rule *q = &again.rule;
    if (q->src != r->src || q->dst != r->dst || q->cut != r->cut || q->loss != r->loss ||
        q->loss_correlation != r->loss_correlation || q->delay_us != r->delay_us || q->jitter_us != r->jitter_us ||
        q->duplicate != r->duplicate || q->reorder != r->reorder || q->reorder_us != r->reorder_us ||
        (r->jitter_us && q->distribution != r->distribution))
        __builtin_trap();
    free(line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static st_ctl_cmd cmd;
    char err[512];
    if (st_ctl_parse((const char *)data, size, &cmd, err, sizeof err) == 0) {
        if (cmd.kind < ST_CTL_PING || cmd.kind > ST_CTL_CAPTURE_STOP)
            __builtin_trap();
        if (cmd.kind == ST_CTL_IMPAIR_ADD) {
            if (st_impair_rule_check(&cmd.rule, NULL, 0) != 0)
                __builtin_trap();
            round_trip(&cmd.rule);
        }
        if (cmd.kind == ST_CTL_CAPTURE_START && (!cmd.path[0] || !memchr(cmd.path, 0, sizeof cmd.path)))
            __builtin_trap();
    } else if (!memchr(err, 0, sizeof err) || !err[0]) {
        __builtin_trap(); /* every refusal says why */
    }
    char *reply = st_ctl_reply((const char *)data, size, never, NULL);
    if (!reply || reply[strlen(reply) - 1] != '\n')
        __builtin_trap();
    free(reply);
    return 0;
}
