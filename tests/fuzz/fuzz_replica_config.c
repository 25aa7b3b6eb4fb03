/* fuzz_replica_config.c — libFuzzer target: arbitrary bytes as a rift-replica config file.
 *
 * Build (tests/fuzz/run does this):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. tests/fuzz/fuzz_replica_config.c \
 *     paxos/replica_config.c paxos/px_config.c paxos/px_storage.c $(pkg-config --libs jansson)
 *
 * Whatever is rejected must say so with a message that names the file; whatever
 * parses must hold up: its dump (rn_config_to_json) must parse again to the same
 * dump, and the parsed values must be in range (id < n, ports > 0, a config the
 * core accepts). */
#include <stdlib.h>
#include <string.h>

#include "paxos/replica_config.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *dump(const rn_config *c)
{
    json_t *j = rn_config_to_json(c);
    CHECK(j);
    char *s = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(j);
    CHECK(s);
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rn_config c;
    rn_error err;
    int rc = rn_config_parse("fuzz.json", (const char *)data, size, &c, &err);
    if (rc < 0) {
        CHECK(strncmp(err.msg, "fuzz.json", 9) == 0);
        return 0;
    }
    CHECK(c.n_replicas >= 1 && c.n_replicas <= PX_MAX_REPLICAS && c.id < c.n_replicas);
    CHECK(c.paxos.n_replicas == c.n_replicas && px_config_check(&c.paxos, NULL, 0) == 0);
    for (uint8_t i = 0; i < c.n_replicas; i++)
        CHECK(c.replicas[i].port > 0);
    CHECK(c.stack[0] && c.wal[0]);
    char *first = dump(&c);
    rn_config again;
    rc = rn_config_parse("dump", first, strlen(first), &again, &err);
    CHECK(rc == 0);
    char *second = dump(&again);
    CHECK(strcmp(first, second) == 0);
    free(first);
    free(second);
    return 0;
}
