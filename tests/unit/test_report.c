/* test_report.c — report.html: the inlined data can never end its <script>. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chaos/ch_fs.h"
#include "chaos/ch_report.h"

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

Test(report, inline_json_escapes_what_could_close_the_script)
{
    json_t *j = json_pack("{s:s, s:s, s:s}", "a", "</script><script>alert(1)</script>", "b", "x & y > z",
                          "c", "line\xe2\x80\xa8sep\xe2\x80\xa9" "end"); /* U+2028, U+2029 */
    size_t len;
    char *s = ch_report_json_inline(j, &len);
    cr_assert_not_null(s);
    cr_assert_eq(strlen(s), len);
    cr_assert_null(strchr(s, '<'));
    cr_assert_null(strchr(s, '>'));
    cr_assert_null(strchr(s, '&'));
    for (const char *p = s; *p; p++)
        cr_assert((unsigned char)*p < 0x80, "non-ASCII byte at %td", p - s);
    cr_assert_neq(count(s, "\\u003c/script\\u003e"), 0);
    cr_assert_neq(count(s, "\\u2028"), 0);
    cr_assert_neq(count(s, "\\u2029"), 0);
    /* Still the same JSON. */
    json_error_t e;
    json_t *back = json_loads(s, 0, &e);
    cr_assert_not_null(back, "%s", e.text);
    cr_assert(json_equal(j, back));
    json_decref(back);
    json_decref(j);
    free(s);
}

Test(report, page_has_one_data_element_and_the_dashboard)
{
    json_t *j = json_pack("{s:i, s:s}", "schema_version", 1, "name", "</script>");
    size_t len;
    char *html = ch_report_html(j, NULL, &len);
    cr_assert_not_null(html);
    cr_assert_eq(strlen(html), len);
    cr_assert_eq(count(html, "id=\"rift-data\""), 1);
    cr_assert_eq(count(html, " data-live=\""), 0);
    /* uPlot, the dashboard, the data: three scripts, each closed once. */
    cr_assert_eq(count(html, "<script"), 3);
    cr_assert_eq(count(html, "</script"), 3);
    cr_assert_neq(count(html, "uPlot"), 0);
    cr_assert_eq(strncmp(html, "<!doctype html>", 15), 0);
    free(html);
    char *live = ch_report_html(j, "live.js", NULL);
    cr_assert_not_null(live);
    cr_assert_eq(count(live, "data-live=\"live.js\""), 1);
    free(live);
    cr_assert_null(ch_report_html(j, "x\" onload=\"y", NULL), "a live source must be a plain file name");
    json_decref(j);
}

Test(report, write_dir_reads_run_json_and_refuses_other_files)
{
    char dir[] = "/tmp/rift-test-report-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[512];
    ch_error err = {{0}};
    cr_assert_eq(ch_report_write_dir(dir, &err), -ENOENT, "no run.json: %s", err.msg);
    snprintf(path, sizeof(path), "%s/run.json", dir);
    cr_assert_eq(ch_fs_write_atomic(path, "[1,2]", 5), 0);
    cr_assert_eq(ch_report_write_dir(dir, &err), -EINVAL);
    cr_assert_neq(count(err.msg, "expected a JSON object"), 0, "%s", err.msg);
    cr_assert_eq(ch_fs_write_atomic(path, "{\"x\":1}", 7), 0);
    cr_assert_eq(ch_report_write_dir(dir, &err), -EINVAL);
    cr_assert_neq(count(err.msg, "schema_version"), 0, "%s", err.msg);
    const char *ok = "{\"schema_version\":1,\"name\":\"t\"}";
    cr_assert_eq(ch_fs_write_atomic(path, ok, strlen(ok)), 0);
    cr_assert_eq(ch_report_write_dir(dir, &err), 0, "%s", err.msg);
    snprintf(path, sizeof(path), "%s/report.html", dir);
    char *html;
    size_t len;
    cr_assert_eq(ch_fs_read(path, 1 << 24, &html, &len), 0);
    cr_assert_neq(count(html, "{\"schema_version\":1,\"name\":\"t\"}"), 0);
    free(html);
    ch_fs_remove_tree(dir);
}
