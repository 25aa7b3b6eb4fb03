/* fuzz_msg.c — libFuzzer target: px_msg_decode on arbitrary bytes.
 *
 * Decode must fail cleanly or yield a message that re-encodes to exactly the
 * input (the encoding is canonical) and decodes again to the same bytes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "paxos/px_msg.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    px_msg m, again;
    int rc = px_msg_decode(data, size, &m);
    CHECK(rc == 0 || rc == -EBADMSG || rc == -EPROTO || rc == -ENOMEM);
    if (rc != 0)
        return 0;
    CHECK(strcmp(px_msg_type_name(m.type), "unknown") != 0);
    size_t n = px_msg_encoded_size(&m), len = 0;
    CHECK(n == size);
    uint8_t *buf = malloc(n);
    CHECK(buf);
    CHECK(px_msg_encode(&m, buf, n, &len) == 0 && len == n);
    CHECK(memcmp(buf, data, n) == 0);
    CHECK(n == 0 || px_msg_encode(&m, buf, n - 1, &len) == -ENOSPC);
    CHECK(px_msg_decode(buf, n, &again) == 0);
    CHECK(again.type == m.type && again.from == m.from && again.to == m.to &&
          again.ballot == m.ballot);
    CHECK(px_msg_encoded_size(&again) == n);
    px_msg_release(&again);
    px_msg_release(&m);
    px_msg_release(&m);
    free(buf);
    return 0;
}
