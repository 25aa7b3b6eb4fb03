/* test_storage.c — the acceptor WAL: file format, recovery, compaction, and the
 * simulator's crash model. */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "paxos/px_storage.h"

static char dir[64];
static char path[128];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/rift-storage-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/wal", dir);
}

static void teardown(void)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    char p[512];
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
            unlink(p);
        }
    }
    closedir(d);
    rmdir(dir);
}

TestSuite(file, .init = setup, .fini = teardown);

static px_storage *open_wal(px_durability policy)
{
    char err[256] = "";
    px_storage *s = px_storage_file_open(path, policy, err, sizeof err);
    cr_assert_not_null(s, "open: %s", err);
    return s;
}

static void accept_str(px_storage *s, uint64_t index, uint64_t ballot, const char *v)
{
    cr_assert_eq(px_storage_accept(s, index, ballot, (const uint8_t *)v, (uint32_t)strlen(v)), 0);
}

static px_storage_state load(px_storage *s)
{
    px_storage_state st;
    cr_assert_eq(px_storage_load(s, &st), 0);
    return st;
}

static void expect_entry(const px_storage_state *st, size_t i, uint64_t index, uint64_t ballot, const char *v)
{
    cr_assert_lt(i, st->n_entries);
    const px_stored_entry *e = &st->entries[i];
    cr_expect_eq(e->index, index, "entry %zu index", i);
    cr_expect_eq(e->ballot, ballot, "entry %zu ballot", i);
    cr_assert_eq(e->len, strlen(v), "entry %zu len", i);
    cr_expect_eq(memcmp(e->value, v, e->len), 0, "entry %zu value", i);
}

static off_t file_size(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 ? st.st_size : -1;
}

static void append_bytes(const char *p, const void *b, size_t n)
{
    int fd = open(p, O_WRONLY | O_APPEND);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, b, n), (ssize_t)n);
    close(fd);
}

/* Three entries, out of order, with an overwrite by ballot and one by order. */
static void write_sample(px_storage *s)
{
    cr_assert_eq(px_storage_promise(s, 5), 0);
    accept_str(s, 3, 5, "three");
    accept_str(s, 1, 5, "a");
    accept_str(s, 2, 5, "b");
    accept_str(s, 1, 7, "A");     /* higher ballot wins */
    accept_str(s, 1, 6, "stale"); /* lower ballot loses */
    accept_str(s, 2, 5, "B");     /* equal ballot: later wins */
    cr_assert_eq(px_storage_promise(s, 7), 0);
    cr_assert_eq(px_storage_promise(s, 6), 0); /* newest promise = max */
}

static void expect_sample(const px_storage_state *st)
{
    cr_expect_eq(st->promised, 7);
    cr_expect_eq(st->trimmed, 0);
    cr_assert_eq(st->n_entries, 3);
    expect_entry(st, 0, 1, 7, "A");
    expect_entry(st, 1, 2, 5, "B");
    expect_entry(st, 2, 3, 5, "three");
}

static void survive_reopen(px_durability policy)
{
    px_storage *s = open_wal(policy);
    write_sample(s);
    cr_assert_eq(px_storage_flush(s), 0);
    px_storage_close(s);

    s = open_wal(policy);
    px_storage_state st = load(s);
    expect_sample(&st);
    px_storage_state_release(&st);
    px_storage_close(s);
}

Test(file, fsync_survives_reopen) { survive_reopen(PX_DURABILITY_FSYNC); }
Test(file, write_survives_reopen) { survive_reopen(PX_DURABILITY_WRITE); }

Test(file, off_keeps_nothing)
{
    px_storage *s = open_wal(PX_DURABILITY_FSYNC);
    write_sample(s);
    px_storage_close(s);
    cr_assert_gt(file_size(path), 0);

    /* off is amnesia: an older WAL is not resurrected either. */
    s = open_wal(PX_DURABILITY_OFF);
    write_sample(s);
    cr_assert_eq(px_storage_flush(s), 0);
    px_storage_state st = load(s);
    cr_expect_eq(st.promised, 0);
    cr_expect_eq(st.n_entries, 0);
    px_storage_close(s);
    cr_expect_eq(file_size(path), 0);
}

Test(file, unflushed_records_written_on_close)
{
    px_storage *s = open_wal(PX_DURABILITY_FSYNC);
    write_sample(s);
    cr_expect_eq(file_size(path), 0, "nothing is written before flush");
    px_storage_close(s);
    s = open_wal(PX_DURABILITY_FSYNC);
    px_storage_state st = load(s);
    expect_sample(&st);
    px_storage_state_release(&st);
    px_storage_close(s);
}

/* Independent bitwise CRC32C: checks the on-disk format, not the table. */
static uint32_t crc32c_bitwise(const uint8_t *p, size_t n)
{
    uint32_t c = ~0u;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
    }
    return ~c;
}

Test(file, record_format)
{
    cr_assert_eq(crc32c_bitwise((const uint8_t *)"123456789", 9), 0xE3069283u);
    px_storage *s = open_wal(PX_DURABILITY_WRITE);
    cr_assert_eq(px_storage_promise(s, 0x0102030405060708ull), 0);
    px_storage_close(s);

    uint8_t b[32];
    int fd = open(path, O_RDONLY);
    cr_assert_eq(read(fd, b, sizeof b), 17);
    close(fd);
    const uint8_t want[17] = { 8, 0, 0, 0, 0, 0, 0, 0, 1, 8, 7, 6, 5, 4, 3, 2, 1 };
    cr_expect_eq(memcmp(b, want, 4), 0, "length");
    cr_expect_eq(memcmp(b + 8, want + 8, 9), 0, "type + payload");
    uint32_t crc = (uint32_t)b[4] | (uint32_t)b[5] << 8 | (uint32_t)b[6] << 16 | (uint32_t)b[7] << 24;
    cr_expect_eq(crc, crc32c_bitwise(b + 8, 9));
}

Test(file, torn_tail_is_cut_and_appends_recover)
{
    px_storage *s = open_wal(PX_DURABILITY_FSYNC);
    accept_str(s, 1, 1, "one");
    accept_str(s, 2, 1, "two");
    cr_assert_eq(px_storage_flush(s), 0);
    off_t intact = file_size(path);
    accept_str(s, 3, 1, "three");
    px_storage_close(s);

    /* A crash mid-write: the last record is half there, then junk. */
    cr_assert_eq(truncate(path, file_size(path) - 3), 0);
    append_bytes(path, "\x55garbage\xff\xff\xff\xff", 12);

    s = open_wal(PX_DURABILITY_FSYNC);
    cr_expect_eq(file_size(path), intact, "open cuts the torn tail");
    accept_str(s, 4, 2, "four");
    cr_assert_eq(px_storage_flush(s), 0);
    px_storage_state st = load(s);
    cr_assert_eq(st.n_entries, 3);
    expect_entry(&st, 0, 1, 1, "one");
    expect_entry(&st, 1, 2, 1, "two");
    expect_entry(&st, 2, 4, 2, "four");
    px_storage_state_release(&st);
    px_storage_close(s);

    s = open_wal(PX_DURABILITY_WRITE);
    st = load(s);
    cr_expect_eq(st.n_entries, 3);
    px_storage_state_release(&st);
    px_storage_close(s);
}

Test(file, torn_header_and_empty_file)
{
    px_storage *s = open_wal(PX_DURABILITY_FSYNC);
    px_storage_state st = load(s);
    cr_expect_eq(st.n_entries, 0);
    cr_expect_eq(st.promised, 0);
    px_storage_close(s);

    append_bytes(path, "\x08\x00\x00", 3); /* less than a header */
    s = open_wal(PX_DURABILITY_FSYNC);
    st = load(s);
    cr_expect_eq(st.n_entries, 0);
    cr_expect_eq(file_size(path), 0);
    px_storage_close(s);
}

Test(file, corrupt_crc_stops_replay)
{
    px_storage *s = open_wal(PX_DURABILITY_WRITE);
    accept_str(s, 1, 1, "one");
    cr_assert_eq(px_storage_flush(s), 0);
    off_t first = file_size(path);
    accept_str(s, 2, 1, "two");
    accept_str(s, 3, 1, "three");
    px_storage_close(s);

    /* Flip one payload byte of the second record: it and all after it go. */
    int fd = open(path, O_RDWR);
    uint8_t byte;
    cr_assert_eq(pread(fd, &byte, 1, first + 12), 1);
    byte ^= 0x40;
    cr_assert_eq(pwrite(fd, &byte, 1, first + 12), 1);
    close(fd);

    s = open_wal(PX_DURABILITY_WRITE);
    px_storage_state st = load(s);
    cr_assert_eq(st.n_entries, 1);
    expect_entry(&st, 0, 1, 1, "one");
    px_storage_state_release(&st);
    px_storage_close(s);
    cr_expect_eq(file_size(path), first);
}

Test(file, trim_forgets_older_entries)
{
    px_storage *s = open_wal(PX_DURABILITY_FSYNC);
    cr_assert_eq(px_storage_promise(s, 9), 0);
    for (uint64_t i = 1; i <= 10; i++)
        accept_str(s, i, 9, "v");
    cr_assert_eq(px_storage_trim(s, 5), 0);
    cr_assert_eq(px_storage_trim(s, 3), 0); /* an older trim does not move it back */
    accept_str(s, 4, 10, "late");           /* at or below the trim: dead */
    cr_assert_eq(px_storage_flush(s), 0);
    px_storage_close(s);

    s = open_wal(PX_DURABILITY_FSYNC);
    px_storage_state st = load(s);
    cr_expect_eq(st.promised, 9);
    cr_expect_eq(st.trimmed, 5);
    cr_assert_eq(st.n_entries, 5);
    for (size_t i = 0; i < 5; i++)
        expect_entry(&st, i, 6 + i, 9, "v");
    px_storage_state_release(&st);
    px_storage_close(s);
}

Test(file, compaction_rewrites_live_state)
{
    enum { N = 1200, LIVE = 10 };
    char v[1024];
    memset(v, 'x', sizeof v - 1);
    v[sizeof v - 1] = 0;
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);

    px_storage *s = open_wal(PX_DURABILITY_FSYNC);
    cr_assert_eq(px_storage_promise(s, 42), 0);
    for (uint64_t i = 1; i <= N; i++) {
        v[0] = (char)('a' + i % 26);
        accept_str(s, i, 42, v);
    }
    cr_assert_eq(px_storage_trim(s, N - LIVE), 0);
    cr_assert_eq(px_storage_flush(s), 0);
    cr_expect_lt(file_size(path), 64 * 1024, "rewritten: %lld bytes", (long long)file_size(path));
    cr_expect_eq(file_size(tmp), -1, "no temp file left behind");

    /* The storage keeps appending to the new file. */
    accept_str(s, N + 1, 43, "after");
    cr_assert_eq(px_storage_promise(s, 43), 0);
    px_storage_close(s);

    s = open_wal(PX_DURABILITY_FSYNC);
    px_storage_state st = load(s);
    cr_expect_eq(st.promised, 43);
    cr_expect_eq(st.trimmed, N - LIVE);
    cr_assert_eq(st.n_entries, LIVE + 1);
    for (size_t i = 0; i < LIVE; i++) {
        uint64_t index = N - LIVE + 1 + i;
        v[0] = (char)('a' + index % 26);
        expect_entry(&st, i, index, 42, v);
    }
    expect_entry(&st, LIVE, N + 1, 43, "after");
    px_storage_state_release(&st);
    px_storage_close(s);
}

Test(file, no_compaction_while_entries_are_live)
{
    char v[1024];
    memset(v, 'y', sizeof v - 1);
    v[sizeof v - 1] = 0;
    px_storage *s = open_wal(PX_DURABILITY_WRITE);
    for (uint64_t i = 1; i <= 1200; i++)
        accept_str(s, i, 1, v);
    cr_assert_eq(px_storage_trim(s, 100), 0);
    cr_assert_eq(px_storage_flush(s), 0);
    cr_expect_gt(file_size(path), 1200 * 1024);
    px_storage_close(s);
}

Test(file, bad_path_reports_error)
{
    char err[256] = "";
    px_storage *s = px_storage_file_open("/nonexistent-rift-dir/x/wal", PX_DURABILITY_FSYNC, err, sizeof err);
    cr_assert_null(s);
    cr_expect_not_null(strstr(err, "/nonexistent-rift-dir/x/wal"), "%s", err);
    cr_expect_not_null(strstr(err, strerror(ENOENT)), "%s", err);
    cr_expect_null(px_storage_file_open(dir, PX_DURABILITY_WRITE, NULL, 0), "a directory is not a WAL");
}

/* ------------------------------------------------------------------ checkpoints */

static char ckpt_path[160], prev_path[160], ckpt_tmp_path[160];

static void ckpt_paths(void)
{
    snprintf(ckpt_path, sizeof ckpt_path, "%s.ckpt", path);
    snprintf(prev_path, sizeof prev_path, "%s.ckpt.prev", path);
    snprintf(ckpt_tmp_path, sizeof ckpt_tmp_path, "%s.ckpt.tmp", path);
}

static void ckpt_str(px_storage *s, uint64_t index, const char *image)
{
    cr_assert_eq(px_storage_checkpoint(s, index, (const uint8_t *)image, strlen(image)), 0);
}

static void expect_ckpt(const px_storage_state *st, uint64_t index, const char *image)
{
    if (!image) {
        cr_expect_null(st->ckpt_image, "no checkpoint expected, got one at %llu", (unsigned long long)st->ckpt_index);
        cr_expect_eq(st->ckpt_len, 0);
        return;
    }
    cr_assert_not_null(st->ckpt_image, "checkpoint at %llu expected", (unsigned long long)index);
    cr_expect_eq(st->ckpt_index, index);
    cr_assert_eq(st->ckpt_len, strlen(image));
    cr_expect_eq(memcmp(st->ckpt_image, image, st->ckpt_len), 0);
}

/* Entries 1..10, a checkpoint at 4 (trim to 4), then one at 8 (trim to 8). */
static void write_two_checkpoints(px_durability policy)
{
    px_storage *s = open_wal(policy);
    cr_assert_eq(px_storage_promise(s, 3), 0);
    for (uint64_t i = 1; i <= 10; i++)
        accept_str(s, i, 3, "v");
    ckpt_str(s, 4, "image-at-4");
    cr_assert_eq(px_storage_trim(s, 4), 0);
    cr_assert_eq(px_storage_flush(s), 0);
    ckpt_str(s, 8, "image-at-8");
    cr_assert_eq(px_storage_trim(s, 8), 0);
    cr_assert_eq(px_storage_flush(s), 0);
    px_storage_close(s);
}

static void checkpoint_survives_reopen(px_durability policy)
{
    ckpt_paths();
    write_two_checkpoints(policy);
    cr_expect_gt(file_size(ckpt_path), 0);
    cr_expect_gt(file_size(prev_path), 0, "the one before is kept");
    cr_expect_eq(file_size(ckpt_tmp_path), -1, "no temp file left behind");
    px_storage *s = open_wal(policy);
    px_storage_state st = load(s);
    expect_ckpt(&st, 8, "image-at-8");
    cr_expect_eq(st.trimmed, 8);
    cr_assert_eq(st.n_entries, 2);
    expect_entry(&st, 0, 9, 3, "v");
    px_storage_state_release(&st);
    px_storage_close(s);
}

Test(file, checkpoint_survives_reopen_fsync) { checkpoint_survives_reopen(PX_DURABILITY_FSYNC); }
Test(file, checkpoint_survives_reopen_write) { checkpoint_survives_reopen(PX_DURABILITY_WRITE); }

Test(file, checkpoint_format)
{
    ckpt_paths();
    px_storage *s = open_wal(PX_DURABILITY_FSYNC);
    ckpt_str(s, 0x0102030405060708ull, "img");
    px_storage_close(s);
    uint8_t b[64];
    int fd = open(ckpt_path, O_RDONLY);
    cr_assert_geq(fd, 0);
    cr_assert_eq(read(fd, b, sizeof b), 27);
    close(fd);
    cr_expect_eq(memcmp(b, "RFCK", 4), 0, "magic");
    const uint8_t rest[] = { 8, 7, 6, 5, 4, 3, 2, 1, 3, 0, 0, 0, 0, 0, 0, 0, 'i', 'm', 'g' };
    cr_expect_eq(memcmp(b + 8, rest, sizeof rest), 0, "index, length, image");
    uint32_t crc = (uint32_t)b[4] | (uint32_t)b[5] << 8 | (uint32_t)b[6] << 16 | (uint32_t)b[7] << 24;
    cr_expect_eq(crc, crc32c_bitwise(b + 8, sizeof rest));
}

/* Flip a byte of path at offset (negative: from the end). */
static void flip(const char *p, off_t at)
{
    off_t size = file_size(p);
    cr_assert_gt(size, 0);
    if (at < 0)
        at += size;
    int fd = open(p, O_RDWR);
    uint8_t byte;
    cr_assert_eq(pread(fd, &byte, 1, at), 1);
    byte ^= 0x10;
    cr_assert_eq(pwrite(fd, &byte, 1, at), 1);
    close(fd);
}

Test(file, corrupt_checkpoint_falls_back_to_the_previous_one)
{
    ckpt_paths();
    write_two_checkpoints(PX_DURABILITY_FSYNC);
    flip(ckpt_path, -2); /* in the image: only the checksum can tell */
    px_storage *s = open_wal(PX_DURABILITY_FSYNC);
    px_storage_state st = load(s);
    expect_ckpt(&st, 4, "image-at-4");
    /* The WAL was trimmed past it: the caller sees the gap (trimmed > ckpt). */
    cr_expect_eq(st.trimmed, 8);
    px_storage_state_release(&st);
    px_storage_close(s);
}

Test(file, torn_checkpoint_falls_back_to_the_previous_one)
{
    ckpt_paths();
    write_two_checkpoints(PX_DURABILITY_WRITE);
    cr_assert_eq(truncate(ckpt_path, file_size(ckpt_path) - 3), 0);
    px_storage *s = open_wal(PX_DURABILITY_WRITE);
    px_storage_state st = load(s);
    expect_ckpt(&st, 4, "image-at-4");
    px_storage_state_release(&st);
    px_storage_close(s);

    cr_assert_eq(truncate(ckpt_path, 10), 0); /* not even a whole header */
    s = open_wal(PX_DURABILITY_WRITE);
    st = load(s);
    expect_ckpt(&st, 4, "image-at-4");
    px_storage_state_release(&st);
    px_storage_close(s);
}

Test(file, no_intact_checkpoint_leaves_the_full_wal)
{
    ckpt_paths();
    px_storage *s = open_wal(PX_DURABILITY_FSYNC);
    for (uint64_t i = 1; i <= 6; i++)
        accept_str(s, i, 2, "w");
    ckpt_str(s, 3, "image-at-3");
    cr_assert_eq(px_storage_flush(s), 0); /* no trim yet: the WAL still has it all */
    px_storage_close(s);
    flip(ckpt_path, 0); /* the magic */
    s = open_wal(PX_DURABILITY_FSYNC);
    px_storage_state st = load(s);
    expect_ckpt(&st, 0, NULL);
    cr_expect_eq(st.trimmed, 0);
    cr_assert_eq(st.n_entries, 6, "the full WAL to replay from the start");
    px_storage_state_release(&st);
    px_storage_close(s);
}

Test(file, index_is_covered_by_the_checksum)
{
    ckpt_paths();
    write_two_checkpoints(PX_DURABILITY_FSYNC);
    flip(ckpt_path, 8); /* the index's low byte */
    px_storage *s = open_wal(PX_DURABILITY_FSYNC);
    px_storage_state st = load(s);
    expect_ckpt(&st, 4, "image-at-4");
    px_storage_state_release(&st);
    px_storage_close(s);
}

static void write_file(const char *p, const void *b, size_t n)
{
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, b, n), (ssize_t)n);
    close(fd);
}

/* A crash between the two renames of a replace: .ckpt is gone, .ckpt.prev
 * holds the newest complete checkpoint, .ckpt.tmp a half-written next one. */
Test(file, crash_mid_replace_keeps_the_newest_complete_checkpoint)
{
    ckpt_paths();
    write_two_checkpoints(PX_DURABILITY_FSYNC);
    cr_assert_eq(rename(ckpt_path, prev_path), 0);
    write_file(ckpt_tmp_path, "RFCK\x01\x02", 6);
    px_storage *s = open_wal(PX_DURABILITY_FSYNC);
    cr_expect_eq(file_size(ckpt_tmp_path), -1, "a half-written checkpoint is cleared at open");
    px_storage_state st = load(s);
    expect_ckpt(&st, 8, "image-at-8");
    px_storage_state_release(&st);
    /* The next replace starts from there. */
    ckpt_str(s, 9, "image-at-9");
    st = load(s);
    expect_ckpt(&st, 9, "image-at-9");
    px_storage_state_release(&st);
    px_storage_close(s);
    flip(ckpt_path, -1);
    s = open_wal(PX_DURABILITY_FSYNC);
    st = load(s);
    expect_ckpt(&st, 8, "image-at-8");
    px_storage_state_release(&st);
    px_storage_close(s);
}

Test(file, off_keeps_no_checkpoint)
{
    ckpt_paths();
    write_two_checkpoints(PX_DURABILITY_FSYNC);
    px_storage *s = open_wal(PX_DURABILITY_OFF);
    cr_expect_eq(file_size(ckpt_path), -1, "an earlier run's checkpoint must not come back");
    cr_expect_eq(file_size(prev_path), -1);
    ckpt_str(s, 20, "image-at-20");
    cr_assert_eq(px_storage_flush(s), 0);
    px_storage_state st = load(s);
    expect_ckpt(&st, 0, NULL);
    px_storage_state_release(&st);
    px_storage_close(s);
    cr_expect_eq(file_size(ckpt_path), -1);
}

Test(file, checkpoint_rejects_empty_images)
{
    px_storage *s = open_wal(PX_DURABILITY_WRITE);
    cr_expect_eq(px_storage_checkpoint(s, 1, NULL, 4), -EINVAL);
    cr_expect_eq(px_storage_checkpoint(s, 1, (const uint8_t *)"x", 0), -EINVAL);
    px_storage_close(s);
    s = px_storage_mem_new(PX_DURABILITY_FSYNC);
    cr_expect_eq(px_storage_checkpoint(s, 1, NULL, 4), -EINVAL);
    px_storage_close(s);
}

Test(durability, parse_and_name)
{
    px_durability d;
    const char *names[] = { "fsync", "write", "off" };
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(px_durability_parse(names[i], &d), 0);
        cr_expect_str_eq(px_durability_name(d), names[i]);
    }
    cr_expect_eq(px_durability_parse("FSYNC", &d), -EINVAL);
    cr_expect_eq(px_durability_parse("", &d), -EINVAL);
    cr_expect_eq(px_durability_parse(NULL, &d), -EINVAL);
}

/* ------------------------------------------------------------------ memory */

typedef struct crash_case {
    px_durability policy;
    bool power_loss;
    bool keeps_flushed; /* the flushed promise and entry 1 survive */
} crash_case;

/* Flushed: promise 10, entry 1. Unflushed: promise 20, entry 2. Nothing
 * unflushed survives any crash; flushed survives unless off, or write + power. */
Test(mem, crash_matrix)
{
    const crash_case cases[] = {
        { PX_DURABILITY_FSYNC, false, true }, { PX_DURABILITY_FSYNC, true, true },
        { PX_DURABILITY_WRITE, false, true }, { PX_DURABILITY_WRITE, true, false },
        { PX_DURABILITY_OFF, false, false },  { PX_DURABILITY_OFF, true, false },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const crash_case *c = &cases[i];
        px_storage *s = px_storage_mem_new(c->policy);
        cr_assert_not_null(s);
        cr_assert_eq(px_storage_promise(s, 10), 0);
        accept_str(s, 1, 10, "flushed");
        cr_assert_eq(px_storage_flush(s), 0);
        cr_assert_eq(px_storage_promise(s, 20), 0);
        accept_str(s, 2, 20, "pending");
        px_storage_mem_crash(s, c->power_loss);

        px_storage_state st = load(s);
        const char *what = px_durability_name(c->policy);
        if (c->keeps_flushed) {
            cr_expect_eq(st.promised, 10, "%s power=%d", what, c->power_loss);
            cr_assert_eq(st.n_entries, 1, "%s power=%d", what, c->power_loss);
            expect_entry(&st, 0, 1, 10, "flushed");
        } else {
            cr_expect_eq(st.promised, 0, "%s power=%d", what, c->power_loss);
            cr_expect_eq(st.n_entries, 0, "%s power=%d", what, c->power_loss);
        }
        px_storage_state_release(&st);
        px_storage_close(s);
    }
}

Test(mem, load_sees_flushed_only)
{
    px_storage *s = px_storage_mem_new(PX_DURABILITY_WRITE);
    write_sample(s);
    px_storage_state st = load(s);
    cr_expect_eq(st.n_entries, 0);
    cr_expect_eq(st.promised, 0);
    px_storage_state_release(&st);
    cr_assert_eq(px_storage_flush(s), 0);
    st = load(s);
    expect_sample(&st);
    px_storage_state_release(&st);
    px_storage_close(s);
}

Test(mem, later_level_wins_ties)
{
    px_storage *s = px_storage_mem_new(PX_DURABILITY_FSYNC);
    accept_str(s, 1, 5, "old");
    accept_str(s, 2, 5, "keep");
    cr_assert_eq(px_storage_flush(s), 0);
    accept_str(s, 1, 5, "new");  /* equal ballot, later batch */
    accept_str(s, 2, 4, "lower"); /* lower ballot never wins */
    cr_assert_eq(px_storage_flush(s), 0);
    px_storage_state st = load(s);
    cr_assert_eq(st.n_entries, 2);
    expect_entry(&st, 0, 1, 5, "new");
    expect_entry(&st, 1, 2, 5, "keep");
    px_storage_state_release(&st);
    px_storage_close(s);
}

Test(mem, unflushed_trim_shares_the_crash)
{
    px_storage *s = px_storage_mem_new(PX_DURABILITY_FSYNC);
    for (uint64_t i = 1; i <= 5; i++)
        accept_str(s, i, 1, "v");
    cr_assert_eq(px_storage_flush(s), 0);
    cr_assert_eq(px_storage_trim(s, 3), 0);
    px_storage_mem_crash(s, true);
    px_storage_state st = load(s);
    cr_expect_eq(st.trimmed, 0);
    cr_expect_eq(st.n_entries, 5, "entries stay until their trim is durable");
    px_storage_state_release(&st);

    cr_assert_eq(px_storage_trim(s, 3), 0);
    cr_assert_eq(px_storage_flush(s), 0);
    px_storage_mem_crash(s, true);
    st = load(s);
    cr_expect_eq(st.trimmed, 3);
    cr_assert_eq(st.n_entries, 2);
    expect_entry(&st, 0, 4, 1, "v");
    px_storage_state_release(&st);
    px_storage_close(s);
}

static void trim_bounds(px_durability policy)
{
    enum { WINDOW = 10 };
    px_storage *s = px_storage_mem_new(policy);
    cr_assert_eq(px_storage_promise(s, 1), 0);
    for (uint64_t i = 1; i <= 20000; i++) {
        accept_str(s, i, 1, "value");
        if (i > WINDOW)
            cr_assert_eq(px_storage_trim(s, i - WINDOW), 0);
        cr_assert_eq(px_storage_flush(s), 0);
        /* WINDOW entries + promise + trim marker */
        cr_assert_leq(px_storage_mem_record_count(s), WINDOW + 2, "at %llu", (unsigned long long)i);
    }
    px_storage_state st = load(s);
    cr_expect_eq(st.trimmed, 20000 - WINDOW);
    cr_expect_eq(st.n_entries, WINDOW);
    px_storage_state_release(&st);
    px_storage_close(s);
}

Test(mem, trim_bounds_fsync) { trim_bounds(PX_DURABILITY_FSYNC); }
Test(mem, trim_bounds_write) { trim_bounds(PX_DURABILITY_WRITE); }

Test(mem, off_holds_nothing)
{
    px_storage *s = px_storage_mem_new(PX_DURABILITY_OFF);
    write_sample(s);
    cr_assert_eq(px_storage_flush(s), 0);
    cr_expect_eq(px_storage_mem_record_count(s), 0);
    px_storage_close(s);
}

Test(mem, record_count_counts_pending)
{
    px_storage *s = px_storage_mem_new(PX_DURABILITY_FSYNC);
    cr_expect_eq(px_storage_mem_record_count(s), 0);
    accept_str(s, 1, 1, "a");
    accept_str(s, 2, 1, "b");
    cr_expect_eq(px_storage_mem_record_count(s), 2);
    px_storage_mem_crash(s, false);
    cr_expect_eq(px_storage_mem_record_count(s), 0);
    px_storage_close(s);
}

/* Flushed: checkpoint at 5 (with its trim). Unflushed: checkpoint at 9. */
Test(mem, checkpoint_crash_matrix)
{
    const crash_case cases[] = {
        { PX_DURABILITY_FSYNC, false, true }, { PX_DURABILITY_FSYNC, true, true },
        { PX_DURABILITY_WRITE, false, true }, { PX_DURABILITY_WRITE, true, false },
        { PX_DURABILITY_OFF, false, false },  { PX_DURABILITY_OFF, true, false },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const crash_case *c = &cases[i];
        px_storage *s = px_storage_mem_new(c->policy);
        cr_assert_not_null(s);
        for (uint64_t k = 1; k <= 10; k++)
            accept_str(s, k, 1, "v");
        ckpt_str(s, 5, "image-at-5");
        cr_assert_eq(px_storage_trim(s, 5), 0);
        cr_assert_eq(px_storage_flush(s), 0);
        ckpt_str(s, 9, "image-at-9");
        px_storage_mem_crash(s, c->power_loss);
        px_storage_state st = load(s);
        if (c->keeps_flushed) {
            expect_ckpt(&st, 5, "image-at-5");
            cr_expect_eq(st.trimmed, 5);
            cr_expect_eq(st.n_entries, 5);
        } else {
            expect_ckpt(&st, 0, NULL);
            cr_expect_eq(st.trimmed, 0);
        }
        px_storage_state_release(&st);
        px_storage_close(s);
    }
}

/* The replica checkpoints, then trims: a crash before the flush loses both,
 * never the checkpoint alone, so the WAL is never trimmed past a lost image. */
Test(mem, checkpoint_and_its_trim_share_a_fate)
{
    px_storage *s = px_storage_mem_new(PX_DURABILITY_FSYNC);
    for (uint64_t k = 1; k <= 10; k++)
        accept_str(s, k, 1, "v");
    cr_assert_eq(px_storage_flush(s), 0);
    ckpt_str(s, 6, "image-at-6");
    cr_assert_eq(px_storage_trim(s, 6), 0);
    px_storage_mem_crash(s, true);
    px_storage_state st = load(s);
    expect_ckpt(&st, 0, NULL);
    cr_expect_eq(st.trimmed, 0);
    cr_expect_eq(st.n_entries, 10, "all entries, to replay from the start");
    px_storage_state_release(&st);

    ckpt_str(s, 6, "image-at-6");
    cr_assert_eq(px_storage_trim(s, 6), 0);
    cr_assert_eq(px_storage_flush(s), 0);
    px_storage_mem_crash(s, true);
    st = load(s);
    expect_ckpt(&st, 6, "image-at-6");
    cr_expect_eq(st.trimmed, 6);
    cr_expect_eq(st.n_entries, 4);
    px_storage_state_release(&st);
    px_storage_close(s);
}

Test(mem, newest_checkpoint_wins_and_counts_once)
{
    px_storage *s = px_storage_mem_new(PX_DURABILITY_FSYNC);
    ckpt_str(s, 9, "image-at-9");
    ckpt_str(s, 7, "image-at-7"); /* older: never replaces a newer one */
    cr_expect_eq(px_storage_mem_record_count(s), 1);
    cr_assert_eq(px_storage_flush(s), 0);
    ckpt_str(s, 12, "image-at-12");
    cr_expect_eq(px_storage_mem_record_count(s), 2, "one durable, one pending");
    cr_assert_eq(px_storage_flush(s), 0);
    cr_expect_eq(px_storage_mem_record_count(s), 1, "the newer one replaced it");
    px_storage_state st = load(s);
    expect_ckpt(&st, 12, "image-at-12");
    px_storage_state_release(&st);
    px_storage_close(s);
}
