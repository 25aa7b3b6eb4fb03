/* test_history.c — the history format: op shapes, error messages, pairing,
 * round trips, atomic writes and the generator. */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chaos/ch_history.h"

static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/rift-history-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
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
            if (unlink(p) != 0)
                rmdir(p);
        }
    }
    closedir(d);
    rmdir(dir);
}

/* Fixtures live next to this file: ../data/histories. */
static void fixture(const char *name, char *out, size_t cap)
{
    const char *slash = strrchr(__FILE__, '/');
    int len = slash ? (int)(slash - __FILE__) : 1;
    snprintf(out, cap, "%.*s/../data/histories/%s", len, slash ? __FILE__ : ".", name);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

static int parse(const char *line, ch_op *op, ch_error *err)
{
    return ch_history_parse_line(line, strlen(line), "h.jsonl", 12, op, err);
}

static ch_op parse_ok(const char *line)
{
    ch_op op;
    ch_error err = {{0}};
    int rc = parse(line, &op, &err);
    cr_assert_eq(rc, 0, "%s: %s", line, err.msg);
    return op;
}

static void expect_error(const char *line, const char *msg)
{
    ch_op op;
    ch_error err = {{0}};
    cr_assert_eq(parse(line, &op, &err), -EINVAL, "accepted: %s", line);
    cr_assert_str_eq(err.msg, msg);
}

static void expect_error_prefix(const char *line, const char *prefix)
{
    ch_op op;
    ch_error err = {{0}};
    cr_assert_eq(parse(line, &op, &err), -EINVAL, "accepted: %s", line);
    cr_assert(strncmp(err.msg, prefix, strlen(prefix)) == 0, "got: %s", err.msg);
}

/* ---- op shapes ---- */

Test(parse, get_invoke_and_ok_with_string_or_null)
{
    ch_op op = parse_ok("{\"process\": 3, \"type\": \"invoke\", \"f\": \"get\", \"key\": \"k7\", "
                        "\"value\": null, \"time\": 123456}");
    cr_assert_eq(op.process, 3);
    cr_assert_eq(op.type, CH_INVOKE);
    cr_assert_eq(op.f, CH_GET);
    cr_assert_str_eq(op.key, "k7");
    cr_assert_null(op.value);
    cr_assert_eq(op.time_us, 123456);
    cr_assert_eq(op.line, 12);
    ch_op_clear(&op);

    op = parse_ok("{\"process\":3,\"type\":\"ok\",\"f\":\"get\",\"key\":\"k7\",\"value\":\"v\","
                  "\"time\":9}");
    cr_assert_eq(op.type, CH_OK);
    cr_assert_str_eq(op.value, "v");
    ch_op_clear(&op);

    op = parse_ok("{\"process\":3,\"type\":\"ok\",\"f\":\"get\",\"key\":\"k7\",\"value\":null,"
                  "\"time\":9}");
    cr_assert_null(op.value);
    ch_op_clear(&op);
}

Test(parse, put_append_del)
{
    ch_op op = parse_ok("{\"process\":0,\"type\":\"invoke\",\"f\":\"put\",\"key\":\"k\","
                        "\"value\":\"a\\\"b\\u00e9\",\"time\":0}");
    cr_assert_eq(op.f, CH_PUT);
    cr_assert_str_eq(op.value, "a\"b\xc3\xa9");
    ch_op_clear(&op);

    op = parse_ok("{\"process\":0,\"type\":\"ok\",\"f\":\"append\",\"key\":\"k\",\"value\":\"x\","
                  "\"time\":0}");
    cr_assert_eq(op.f, CH_APPEND);
    cr_assert_str_eq(op.value, "x");
    ch_op_clear(&op);

    /* A completion may leave the value out (null). */
    op = parse_ok("{\"process\":0,\"type\":\"info\",\"f\":\"put\",\"key\":\"k\",\"time\":5}");
    cr_assert_eq(op.type, CH_INFO);
    cr_assert_null(op.value);
    ch_op_clear(&op);

    op = parse_ok("{\"process\":0,\"type\":\"invoke\",\"f\":\"del\",\"key\":\"k\",\"value\":null,"
                  "\"time\":0}");
    cr_assert_eq(op.f, CH_DEL);
    cr_assert_null(op.value);
    ch_op_clear(&op);
}

Test(parse, cas_pairs)
{
    ch_op op = parse_ok("{\"process\":1,\"type\":\"invoke\",\"f\":\"cas\",\"key\":\"k\","
                        "\"value\":[\"old\",\"new\"],\"time\":0}");
    cr_assert(op.has_cas_expected);
    cr_assert_str_eq(op.cas_expected, "old");
    cr_assert_str_eq(op.value, "new");
    ch_op_clear(&op);

    op = parse_ok("{\"process\":1,\"type\":\"fail\",\"f\":\"cas\",\"key\":\"k\","
                  "\"value\":[null,\"new\"],\"time\":0}");
    cr_assert_eq(op.type, CH_FAIL);
    cr_assert(op.has_cas_expected);
    cr_assert_null(op.cas_expected);
    cr_assert_str_eq(op.value, "new");
    ch_op_clear(&op);

    op = parse_ok("{\"process\":1,\"type\":\"ok\",\"f\":\"cas\",\"key\":\"k\",\"value\":null,"
                  "\"time\":0}");
    cr_assert_not(op.has_cas_expected);
    cr_assert_null(op.value);
    ch_op_clear(&op);
}

Test(parse, field_order_and_whitespace_do_not_matter)
{
    ch_op op = parse_ok("  {\"time\": 7, \"value\": \"v\", \"key\": \"k\", \"f\": \"put\", "
                        "\"type\": \"invoke\", \"process\": 4294967295}\r");
    cr_assert_eq(op.process, 4294967295u);
    cr_assert_eq(op.time_us, 7);
    ch_op_clear(&op);
}

/* ---- error messages: file:line, field, what was expected, what came ---- */

Test(errors, type)
{
    expect_error("{\"process\":0,\"type\":\"done\",\"f\":\"get\",\"key\":\"k\",\"time\":0}",
                 "h.jsonl:12: field \"type\": expected one of invoke, ok, fail, info, "
                 "got \"done\"");
}

Test(errors, f)
{
    expect_error("{\"process\":0,\"type\":\"ok\",\"f\":\"incr\",\"key\":\"k\",\"time\":0}",
                 "h.jsonl:12: field \"f\": expected one of get, put, del, append, cas, "
                 "got \"incr\"");
}

Test(errors, process)
{
    expect_error("{\"process\":-1,\"type\":\"ok\",\"f\":\"get\",\"key\":\"k\",\"time\":0}",
                 "h.jsonl:12: field \"process\": expected an integer in 0..4294967295, got -1");
    expect_error("{\"process\":4294967296,\"type\":\"ok\",\"f\":\"get\",\"key\":\"k\",\"time\":0}",
                 "h.jsonl:12: field \"process\": expected an integer in 0..4294967295, "
                 "got 4294967296");
    expect_error("{\"process\":\"3\",\"type\":\"ok\",\"f\":\"get\",\"key\":\"k\",\"time\":0}",
                 "h.jsonl:12: field \"process\": expected an integer in 0..4294967295, got \"3\"");
}

Test(errors, time)
{
    expect_error("{\"process\":0,\"type\":\"ok\",\"f\":\"get\",\"key\":\"k\",\"time\":-5}",
                 "h.jsonl:12: field \"time\": expected an integer >= 0 (µs since the run "
                 "started), got -5");
    expect_error("{\"process\":0,\"type\":\"ok\",\"f\":\"get\",\"key\":\"k\",\"time\":1.5}",
                 "h.jsonl:12: field \"time\": expected an integer >= 0 (µs since the run "
                 "started), got 1.5");
}

Test(errors, missing_field)
{
    expect_error("{\"process\":0,\"type\":\"ok\",\"f\":\"get\",\"key\":\"k\"}",
                 "h.jsonl:12: field \"time\": missing, expected an integer >= 0 (µs since the "
                 "run started)");
    expect_error("{\"process\":0,\"type\":\"ok\",\"f\":\"get\",\"time\":0}",
                 "h.jsonl:12: field \"key\": missing, expected a string");
    expect_error("{\"process\":0,\"type\":\"invoke\",\"f\":\"put\",\"key\":\"k\",\"time\":0}",
                 "h.jsonl:12: field \"value\": missing, expected a string");
}

Test(errors, unknown_field)
{
    expect_error("{\"process\":0,\"type\":\"ok\",\"f\":\"get\",\"key\":\"k\",\"time\":0,"
                 "\"node\":\"n1\"}",
                 "h.jsonl:12: field \"node\": unknown field, expected only process, type, f, key, "
                 "value, time");
}

Test(errors, key)
{
    expect_error("{\"process\":0,\"type\":\"ok\",\"f\":\"get\",\"key\":7,\"time\":0}",
                 "h.jsonl:12: field \"key\": expected a string, got 7");
}

Test(errors, values_per_op)
{
    expect_error("{\"process\":0,\"type\":\"invoke\",\"f\":\"get\",\"key\":\"k\",\"value\":\"x\","
                 "\"time\":0}",
                 "h.jsonl:12: field \"value\": expected null, got \"x\"");
    expect_error("{\"process\":0,\"type\":\"ok\",\"f\":\"get\",\"key\":\"k\",\"value\":3,"
                 "\"time\":0}",
                 "h.jsonl:12: field \"value\": expected a string or null (the value read), got 3");
    expect_error("{\"process\":0,\"type\":\"ok\",\"f\":\"get\",\"key\":\"k\",\"time\":0}",
                 "h.jsonl:12: field \"value\": missing, expected a string or null (the value "
                 "read)");
    expect_error("{\"process\":0,\"type\":\"invoke\",\"f\":\"put\",\"key\":\"k\",\"value\":null,"
                 "\"time\":0}",
                 "h.jsonl:12: field \"value\": expected a string, got null");
    expect_error("{\"process\":0,\"type\":\"ok\",\"f\":\"append\",\"key\":\"k\",\"value\":[1],"
                 "\"time\":0}",
                 "h.jsonl:12: field \"value\": expected a string or null, got [1]");
    expect_error("{\"process\":0,\"type\":\"ok\",\"f\":\"del\",\"key\":\"k\",\"value\":\"x\","
                 "\"time\":0}",
                 "h.jsonl:12: field \"value\": expected null, got \"x\"");
    expect_error("{\"process\":0,\"type\":\"invoke\",\"f\":\"cas\",\"key\":\"k\",\"value\":"
                 "[\"a\",null],\"time\":0}",
                 "h.jsonl:12: field \"value\": expected [expected, new] (expected a string or "
                 "null, new a string), got [\"a\",null]");
    expect_error("{\"process\":0,\"type\":\"invoke\",\"f\":\"cas\",\"key\":\"k\",\"value\":"
                 "\"a\",\"time\":0}",
                 "h.jsonl:12: field \"value\": expected [expected, new] (expected a string or "
                 "null, new a string), got \"a\"");
    expect_error("{\"process\":0,\"type\":\"ok\",\"f\":\"cas\",\"key\":\"k\",\"value\":"
                 "[\"a\",\"b\",\"c\"],\"time\":0}",
                 "h.jsonl:12: field \"value\": expected null or [expected, new] (expected a "
                 "string or null, new a string), got [\"a\",\"b\",\"c\"]");
}

Test(errors, long_values_are_quoted_short)
{
    char line[512];
    snprintf(line, sizeof line, "{\"process\":0,\"type\":\"%0200d\",\"f\":\"get\",\"key\":\"k\","
             "\"time\":0}", 0);
    ch_op op;
    ch_error err;
    cr_assert_eq(parse(line, &op, &err), -EINVAL);
    cr_assert(strstr(err.msg, "...") != NULL, "%s", err.msg);
    cr_assert_lt(strlen(err.msg), 200);
}

Test(errors, not_json_or_not_an_object)
{
    expect_error_prefix("{\"process\":0,", "h.jsonl:12: invalid JSON at column ");
    expect_error_prefix("{\"process\":0} trailing", "h.jsonl:12: invalid JSON at column ");
    expect_error_prefix("{\"process\":0,\"process\":1}", "h.jsonl:12: invalid JSON");
    expect_error_prefix("{\"key\":\"a\\u0000b\"}", "h.jsonl:12: invalid JSON");
    expect_error("[1,2]", "h.jsonl:12: expected a JSON object with fields process, type, f, key, "
                          "value, time, got [1,2]");
}

Test(errors, file_name_defaults)
{
    ch_op op;
    ch_error err;
    cr_assert_eq(ch_history_parse_line("[]", 2, NULL, 3, &op, &err), -EINVAL);
    cr_assert(strncmp(err.msg, "history:3: ", 11) == 0, "%s", err.msg);
}

/* ---- pairing ---- */

static ch_history *history_of(const char *const *lines, size_t n)
{
    ch_history *h = ch_history_new();
    cr_assert_not_null(h);
    for (size_t i = 0; i < n; i++) {
        ch_op op;
        ch_error err = {{0}};
        cr_assert_eq(ch_history_parse_line(lines[i], strlen(lines[i]), "h.jsonl",
                                           (uint32_t)i + 1, &op, &err), 0, "%s", err.msg);
        cr_assert_eq(ch_history_append(h, &op), 0);
        ch_op_clear(&op);
    }
    return h;
}

#define HISTORY(...) history_of((const char *const[]){__VA_ARGS__}, \
    sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))

static void expect_pair_error(ch_history *h, const char *msg)
{
    ch_error err = {{0}};
    cr_assert_eq(ch_history_pair(h, "h.jsonl", NULL, &err), -EINVAL);
    cr_assert_str_eq(err.msg, msg);
    ch_history_free(h);
}

#define INV_PUT(p, k, v, t) "{\"process\":" #p ",\"type\":\"invoke\",\"f\":\"put\",\"key\":\"" k \
    "\",\"value\":\"" v "\",\"time\":" #t "}"
#define OK_PUT(p, k, v, t) "{\"process\":" #p ",\"type\":\"ok\",\"f\":\"put\",\"key\":\"" k \
    "\",\"value\":\"" v "\",\"time\":" #t "}"
#define INV_GET(p, k, t) "{\"process\":" #p ",\"type\":\"invoke\",\"f\":\"get\",\"key\":\"" k \
    "\",\"time\":" #t "}"
#define OK_GET(p, k, v, t) "{\"process\":" #p ",\"type\":\"ok\",\"f\":\"get\",\"key\":\"" k \
    "\",\"value\":\"" v "\",\"time\":" #t "}"

Test(pairing, matches_invokes_and_completions)
{
    ch_history *h = HISTORY(INV_PUT(0, "k", "a", 0), INV_GET(1, "k", 1), OK_PUT(0, "k", "a", 2),
                            INV_PUT(0, "k", "b", 3));
    size_t match[4];
    ch_error err = {{0}};
    cr_assert_eq(ch_history_pair(h, "h.jsonl", match, &err), 0, "%s", err.msg);
    cr_assert_eq(match[0], 2);
    cr_assert_eq(match[2], 0);
    cr_assert_eq(match[1], CH_NONE); /* open at the end: fine, counts as info */
    cr_assert_eq(match[3], CH_NONE);
    ch_history_free(h);
}

Test(pairing, completion_without_invoke)
{
    expect_pair_error(HISTORY(OK_PUT(4, "k", "a", 2)),
                      "h.jsonl:1: field \"type\": process 4 completes (ok) with no open invoke");
}

Test(pairing, two_invokes_in_a_row)
{
    expect_pair_error(HISTORY(INV_PUT(0, "k", "a", 0), INV_GET(0, "k", 1)),
                      "h.jsonl:2: field \"type\": process 0 invokes again while its invoke at "
                      "line 1 is open");
}

Test(pairing, completion_of_another_f_or_key)
{
    expect_pair_error(HISTORY(INV_PUT(0, "k", "a", 0), OK_GET(0, "k", "a", 1)),
                      "h.jsonl:2: field \"f\": expected \"put\" (invoked at line 1), got \"get\"");
    expect_pair_error(HISTORY(INV_PUT(0, "k", "a", 0), OK_PUT(0, "j", "a", 1)),
                      "h.jsonl:2: field \"key\": expected \"k\" (invoked at line 1), got \"j\"");
    expect_pair_error(HISTORY(INV_PUT(0, "k", "a", 0), OK_PUT(0, "k", "b", 1)),
                      "h.jsonl:2: field \"value\": expected null or the value invoked at line 1");
}

Test(pairing, time_goes_backwards_within_a_process)
{
    expect_pair_error(HISTORY(INV_PUT(0, "k", "a", 50), OK_PUT(0, "k", "a", 40)),
                      "h.jsonl:2: field \"time\": expected >= 50 (process 0's previous op at "
                      "line 1), got 40");
}

Test(pairing, time_need_not_be_global_order)
{
    ch_history *h = HISTORY(INV_PUT(0, "k", "a", 50), OK_PUT(0, "k", "a", 60),
                            INV_GET(1, "k", 10), OK_GET(1, "k", "a", 20));
    ch_error err = {{0}};
    cr_assert_eq(ch_history_pair(h, "h.jsonl", NULL, &err), 0, "%s", err.msg);
    ch_history_free(h);
}

Test(pairing, in_memory_ops_get_shape_checked)
{
    ch_history *h = ch_history_new();
    ch_op op = {.process = 1, .type = CH_INVOKE, .f = CH_PUT, .key = "k", .time_us = 0};
    cr_assert_eq(ch_history_append(h, &op), 0);
    ch_error err = {{0}};
    cr_assert_eq(ch_history_pair(h, NULL, NULL, &err), -EINVAL);
    cr_assert_str_eq(err.msg, "history:1: field \"value\": not valid for a put invoke");
    ch_history_free(h);
}

/* ---- files ---- */

Test(files, fixture_reads_with_all_shapes)
{
    char path[1024];
    fixture("ok_all_ops.jsonl", path, sizeof path);
    ch_history *h = NULL;
    ch_error err = {{0}};
    cr_assert_eq(ch_history_read_file(path, &h, &err), 0, "%s", err.msg);
    cr_assert_eq(h->n, 18);
    cr_assert_eq(h->ops[4].line, 6, "blank lines still count");
    cr_assert_eq(h->ops[9].type, CH_FAIL);
    ch_history_free(h);
}

Test(files, errors_name_the_file_and_line)
{
    char path[1024];
    fixture("bad_type.jsonl", path, sizeof path);
    ch_history *h = NULL;
    ch_error err = {{0}};
    cr_assert_eq(ch_history_read_file(path, &h, &err), -EINVAL);
    cr_assert_null(h);
    char want[1200];
    snprintf(want, sizeof want, "%s:2: field \"type\": expected one of invoke, ok, fail, info, "
             "got \"done\"", path);
    cr_assert_str_eq(err.msg, want);

    fixture("bad_pairing.jsonl", path, sizeof path);
    cr_assert_eq(ch_history_read_file(path, &h, &err), -EINVAL);
    cr_assert(strstr(err.msg, ":2: field \"type\": process 0 invokes again") != NULL, "%s",
              err.msg);
}

Test(files, missing_file, .init = setup, .fini = teardown)
{
    char path[128];
    snprintf(path, sizeof path, "%s/nope.jsonl", dir);
    ch_history *h = NULL;
    ch_error err = {{0}};
    cr_assert_eq(ch_history_read_file(path, &h, &err), -ENOENT);
    cr_assert(strstr(err.msg, "nope.jsonl: cannot open") != NULL, "%s", err.msg);
}

Test(files, long_line_is_bad_input, .init = setup, .fini = teardown)
{
    char path[128];
    snprintf(path, sizeof path, "%s/long.jsonl", dir);
    FILE *f = fopen(path, "w");
    fputs(INV_PUT(0, "k", "a", 0) "\n", f);
    for (size_t i = 0; i < CH_HISTORY_LINE_MAX + 10; i++)
        fputc(' ', f);
    fclose(f);
    ch_history *h = NULL;
    ch_error err = {{0}};
    cr_assert_eq(ch_history_read_file(path, &h, &err), -EINVAL);
    cr_assert(strstr(err.msg, "long.jsonl:2: line longer than") != NULL, "%s", err.msg);
}

static void assert_same_ops(const ch_history *a, const ch_history *b)
{
    cr_assert_eq(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        const ch_op *x = &a->ops[i], *y = &b->ops[i];
        cr_assert_eq(x->process, y->process);
        cr_assert_eq(x->type, y->type);
        cr_assert_eq(x->f, y->f);
        cr_assert_str_eq(x->key, y->key);
        cr_assert_eq(x->time_us, y->time_us);
        cr_assert_eq(x->has_cas_expected, y->has_cas_expected);
        cr_assert_eq(!x->value, !y->value, "op %zu", i);
        if (x->value)
            cr_assert_str_eq(x->value, y->value);
        cr_assert_eq(!x->cas_expected, !y->cas_expected);
        if (x->cas_expected)
            cr_assert_str_eq(x->cas_expected, y->cas_expected);
    }
}

Test(files, round_trip, .init = setup, .fini = teardown)
{
    ch_history *h = ch_history_new();
    ch_gen_opts o;
    ch_gen_opts_default(&o);
    o.n_ops = 500;
    o.p_info = 0.1;
    cr_assert_eq(ch_history_generate(h, &o), 0);
    /* Awkward strings too: quotes, escapes, newlines, non-ASCII, empty. */
    ch_op odd = {.process = 99, .type = CH_INVOKE, .f = CH_CAS, .key = "k \"q\"\n",
                 .value = "", .cas_expected = "\\ é\t", .has_cas_expected = true,
                 .time_us = 1 << 30};
    cr_assert_eq(ch_history_append(h, &odd), 0);
    char path[128];
    snprintf(path, sizeof path, "%s/h.jsonl", dir);
    cr_assert_eq(ch_history_write_file(path, h), 0);
    ch_history *back = NULL;
    ch_error err = {{0}};
    cr_assert_eq(ch_history_read_file(path, &back, &err), 0, "%s", err.msg);
    assert_same_ops(h, back);
    cr_assert_eq(back->ops[3].line, 4);
    ch_history_free(back);
    ch_history_free(h);
}

Test(files, write_leaves_no_tmp_and_replaces, .init = setup, .fini = teardown)
{
    char path[128], tmp[160];
    snprintf(path, sizeof path, "%s/h.jsonl", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    write_text(path, "old contents\n");
    ch_history *h = HISTORY(INV_PUT(0, "k", "a", 0));
    cr_assert_eq(ch_history_write_file(path, h), 0);
    struct stat st;
    cr_assert_eq(stat(tmp, &st), -1, "tmp file left behind");
    ch_history *back = NULL;
    ch_error err = {{0}};
    cr_assert_eq(ch_history_read_file(path, &back, &err), 0, "%s", err.msg);
    cr_assert_eq(back->n, 1);
    ch_history_free(back);
    ch_history_free(h);
}

Test(files, failed_write_keeps_the_old_file, .init = setup, .fini = teardown)
{
    char path[128], tmp[160];
    snprintf(path, sizeof path, "%s/h.jsonl", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    write_text(path, "old contents\n");
    /* An op jansson cannot encode (invalid UTF-8) fails the write midway. */
    ch_history *h = HISTORY(INV_PUT(0, "k", "a", 0));
    ch_op bad = {.process = 1, .type = CH_INVOKE, .f = CH_PUT, .key = "k", .value = "\xff\xfe"};
    cr_assert_eq(ch_history_append(h, &bad), 0);
    cr_assert_lt(ch_history_write_file(path, h), 0);
    struct stat st;
    cr_assert_eq(stat(tmp, &st), -1, "tmp file left behind");
    FILE *f = fopen(path, "r");
    char buf[64] = "";
    cr_assert_not_null(fgets(buf, sizeof buf, f));
    fclose(f);
    cr_assert_str_eq(buf, "old contents\n");

    /* An unwritable tmp path: nothing changes either. */
    cr_assert_eq(mkdir(tmp, 0700), 0);
    ch_history_free(h);
    h = HISTORY(INV_PUT(0, "k", "a", 0));
    cr_assert_lt(ch_history_write_file(path, h), 0);
    f = fopen(path, "r");
    cr_assert_not_null(fgets(buf, sizeof buf, f));
    fclose(f);
    cr_assert_str_eq(buf, "old contents\n");
    ch_history_free(h);
}

/* ---- formatting, copying, generating ---- */

Test(format, snprintf_semantics)
{
    ch_op op = {.process = 3, .type = CH_OK, .f = CH_CAS, .key = "k7", .value = "new",
                .cas_expected = NULL, .has_cas_expected = true, .time_us = 123456};
    const char *want = "{\"process\":3,\"type\":\"ok\",\"f\":\"cas\",\"key\":\"k7\","
                       "\"value\":[null,\"new\"],\"time\":123456}";
    char small[8];
    cr_assert_eq(ch_op_format(&op, small, sizeof small), (int)strlen(want));
    cr_assert_str_eq(small, "");
    char buf[256];
    cr_assert_eq(ch_op_format(&op, buf, sizeof buf), (int)strlen(want));
    cr_assert_str_eq(buf, want);
    op.f = (ch_f)9;
    cr_assert_eq(ch_op_format(&op, buf, sizeof buf), -EINVAL);
}

Test(format, get_and_del_write_null)
{
    ch_op op = {.process = 0, .type = CH_INVOKE, .f = CH_DEL, .key = "k", .time_us = 1};
    char buf[256];
    cr_assert_gt(ch_op_format(&op, buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "{\"process\":0,\"type\":\"invoke\",\"f\":\"del\",\"key\":\"k\","
                          "\"value\":null,\"time\":1}");
}

Test(history, append_deep_copies)
{
    char key[] = "k1", val[] = "v1";
    ch_op op = {.process = 1, .type = CH_INVOKE, .f = CH_PUT, .key = key, .value = val};
    ch_history *h = ch_history_new();
    cr_assert_eq(ch_history_append(h, &op), 0);
    key[1] = '9';
    val[1] = '9';
    cr_assert_str_eq(h->ops[0].key, "k1");
    cr_assert_str_eq(h->ops[0].value, "v1");
    cr_assert_eq(h->ops[0].line, 1, "in-memory ops are numbered by position");
    ch_history_free(h);
}

Test(history, generator_is_valid_and_deterministic)
{
    ch_gen_opts o;
    ch_gen_opts_default(&o);
    o.p_info = 0.2;
    ch_history *a = ch_history_new(), *b = ch_history_new();
    cr_assert_eq(ch_history_generate(a, &o), 0);
    cr_assert_eq(ch_history_generate(b, &o), 0);
    cr_assert_eq(a->n, 2 * o.n_ops);
    assert_same_ops(a, b);
    ch_error err = {{0}};
    cr_assert_eq(ch_history_pair(a, NULL, NULL, &err), 0, "%s", err.msg);
    size_t info = 0, fail = 0;
    for (size_t i = 0; i < a->n; i++) {
        info += a->ops[i].type == CH_INFO;
        fail += a->ops[i].type == CH_FAIL;
    }
    cr_assert_gt(info, 100);
    cr_assert_gt(fail, 0, "some cas comparisons fail");
    o.n_processes = 0;
    cr_assert_eq(ch_history_generate(a, &o), -EINVAL);
    ch_history_free(a);
    ch_history_free(b);
}
