/* ch_report.h — report.html: the dashboard with a run's (or a sweep's) data inlined.
 *
 * The dashboard (dashboard/: HTML, CSS, JS modules, vendored uPlot) is compiled
 * into rift at build time (dashboard/embed.cmake), so a report needs no source
 * tree, no server and no network: it opens from disk, works offline, and can be
 * attached to a CI job.
 *
 * The data goes into <script type="application/json">, never into markup, and
 * the JSON is escaped so that no string in it can end that element: '<', '>'
 * and '&' become \u003c \u003e \u0026, and everything outside ASCII (U+2028 and
 * U+2029 included) a \u escape. The dashboard shows strings with textContent.
 *
 * Live view (rift run --live): the page is written at the start with a marker
 * that makes it load live.js (a script, because a page opened from disk may
 * load scripts beside it but not fetch files) every second; the controller
 * rewrites live.js with the run so far once a second. */
#ifndef CH_REPORT_H
#define CH_REPORT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "ch_backend.h"
#include "ch_error.h"
#include "ch_record.h"

/* data as JSON text that is safe inside a <script> element and inside JS
 * source (see above). malloc'd; NULL when out of memory. */
char *ch_report_json_inline(const json_t *data, size_t *len);

/* The whole page. live_src: the live.js to poll, or NULL for a finished report.
 * malloc'd; NULL when out of memory. */
char *ch_report_html(const json_t *data, const char *live_src, size_t *len);

/* Write path (atomically) with data inlined. 0 or a negative errno. */
int ch_report_write(const char *path, const json_t *data, const char *live_src);

/* Re-read dir/run.json (or dir/sweep.json) and write dir/report.html; a .json
 * file instead of a directory writes report.html beside it. 0, or a negative
 * errno with err set. */
int ch_report_write_dir(const char *dir, ch_error *err);

/* `rift report RUN_DIR`. Returns an exit code of DESIGN.md. */
int ch_cli_report(int argc, char **argv);

/* ---------- live view ---------- */

typedef struct ch_report_live ch_report_live;

/* Writes dir/report.html (live) and a first dir/live.js. header: the run.json
 * skeleton (borrowed; must outlive the live view). inner: a progress callback to
 * chain (the terminal's progress line), or NULL. pace: hold simulated time to
 * wall-clock time, so a simulated run can be watched as it goes. */
ch_report_live *ch_report_live_new(const char *dir, const json_t *header, ch_record *rec,
                                   void (*inner)(void *, const ch_progress *), bool pace);
/* A ch_run_ctx progress callback (ctx: the ch_report_live): paces, chains, and
 * rewrites live.js at most once per wall second. */
void ch_report_live_progress(void *ctx, const ch_progress *p);
/* The last live.js: the finished run (the page then stops polling). */
int ch_report_live_finish(ch_report_live *lv, const json_t *run);
void ch_report_live_free(ch_report_live *lv);

#endif
