/* fuzz_kv.c — libFuzzer target: commands, batches, apply and image install.
 *
 * Every input goes through each entry point that takes outside bytes:
 * px_cmd_decode (canonical round trip), batch iteration, px_kv_apply of the raw
 * bytes and of a batch built from chunks of them, and image install (raw, and
 * with a valid checksum appended so the parser behind it is reached). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "paxos/px_kv.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)
#define IMAGE_SEED 0x696d616765ULL /* px_kv.c's PX_IMAGE_SEED */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_cmd(const uint8_t *data, size_t size)
{
    px_cmd c;
    if (px_cmd_decode(data, size, &c) != 0)
        return;
    size_t n = px_cmd_encoded_size(&c), len = 0;
    CHECK(n == size);
    uint8_t *buf = malloc(n);
    CHECK(buf);
    CHECK(px_cmd_encode(&c, buf, n, &len) == 0 && len == n && memcmp(buf, data, n) == 0);
    free(buf);
}

static void fuzz_iter(const uint8_t *data, size_t size)
{
    px_batch_iter it;
    px_bytes b;
    px_cmd c;
    if (px_batch_iter_init(&it, data, size) != 0)
        return;
    int rc;
    while ((rc = px_batch_iter_next(&it, &b)) == 1) {
        CHECK(b.data >= data && b.data + b.len <= data + size);
        (void)px_cmd_decode(b.data, b.len, &c);
    }
    CHECK(rc == 0 || rc == -EBADMSG);
}

static void on_result(void *ctx, const px_result *r)
{
    CHECK(r->status == PX_REPLY_OK || r->status == PX_REPLY_FAIL);
    CHECK(r->has_value <= 1 && (r->value.data || !r->value.len));
    *(size_t *)ctx += r->value.len;
    if (r->value.len) {  /* touch both ends of the borrowed bytes so ASan checks them */
        volatile uint8_t ends = r->value.data[0] ^ r->value.data[r->value.len - 1];
        (void)ends;
    }
}

/* Chunks prefixed by one length byte, each added as a command. */
static void build_batch(const uint8_t *data, size_t size, uint8_t **out, size_t *out_len)
{
    px_batch_builder b = {0};
    for (size_t i = 0; i < size;) {
        size_t n = data[i++];
        n = n > size - i ? size - i : n;
        CHECK(px_batch_add(&b, data + i, n) == 0);
        i += n;
    }
    CHECK(px_batch_finish(&b, out, out_len) == 0);
}

static void image_round_trip(const px_kv *kv)
{
    uint8_t *img;
    size_t len;
    CHECK(px_kv_image_encode(kv, &img, &len) == 0);
    px_kv *copy = px_kv_new();
    CHECK(copy);
    CHECK(px_kv_image_install(copy, img, len) == 0);
    CHECK(px_kv_applied_index(copy) == px_kv_applied_index(kv));
    CHECK(px_kv_digest(copy) == px_kv_digest(kv));
    CHECK(px_kv_key_count(copy) == px_kv_key_count(kv));
    px_kv_free(copy);
    free(img);
}

static void fuzz_apply(const uint8_t *data, size_t size)
{
    px_kv *kv = px_kv_new();
    CHECK(kv);
    size_t seen = 0;
    int rc = px_kv_apply(kv, 1, data, size, on_result, &seen);
    CHECK(rc == 0 || rc == -EBADMSG);
    rc = px_kv_apply(kv, 2, data, size, on_result, &seen);  /* again: retries hit sessions */
    CHECK(rc == 0 || rc == -EBADMSG);
    uint8_t *batch;
    size_t len;
    build_batch(data, size, &batch, &len);
    CHECK(px_kv_apply(kv, 3, batch, len, on_result, &seen) == 0);
    CHECK(px_kv_applied_index(kv) == 3);
    free(batch);
    image_round_trip(kv);
    px_kv_free(kv);
}

static void fuzz_install(const uint8_t *data, size_t size)
{
    px_kv *kv = px_kv_new();
    CHECK(kv);
    const uint8_t noop[] = {0};
    CHECK(px_kv_apply(kv, 1, noop, 1, NULL, NULL) == 0);
    uint64_t digest = px_kv_digest(kv);
    if (px_kv_image_install(kv, data, size) == 0) {  /* a checksum collision: fine */
        px_kv_free(kv);
        return;
    }
    CHECK(px_kv_digest(kv) == digest && px_kv_applied_index(kv) == 1);
    uint8_t *sealed = malloc(size + 8);
    CHECK(sealed);
    if (size)
        memcpy(sealed, data, size);
    uint64_t sum = px_hash64(IMAGE_SEED, data, size);
    for (int i = 0; i < 8; i++)
        sealed[size + i] = (uint8_t)(sum >> (8 * i));
    if (px_kv_image_install(kv, sealed, size + 8) != 0) {
        CHECK(px_kv_digest(kv) == digest && px_kv_applied_index(kv) == 1);
    } else {
        image_round_trip(kv);
        size_t seen = 0;
        (void)px_kv_apply(kv, px_kv_applied_index(kv) + 1, data, size, on_result, &seen);
    }
    free(sealed);
    px_kv_free(kv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_cmd(data, size);
    fuzz_iter(data, size);
    fuzz_apply(data, size);
    fuzz_install(data, size);
    return 0;
}
