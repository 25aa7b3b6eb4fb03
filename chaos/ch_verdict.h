/* ch_verdict.h — scenario assertions against a run's metrics, and junit.xml.
 *
 * Each assertion the scenario sets becomes one row: name, limit, value, pass
 * (or unknown when its check ran out of time). The verdict is pass only when
 * every row passes; fail when any fails; unknown when none fails but one is
 * unknown. */
#ifndef CH_VERDICT_H
#define CH_VERDICT_H

#include <jansson.h>
#include <stdbool.h>

#include "ch_record.h"
#include "ch_scenario.h"

typedef enum ch_verdict { CH_VERDICT_PASS = 0, CH_VERDICT_FAIL, CH_VERDICT_UNKNOWN } ch_verdict;

/* Results of the checks that are not plain metrics. */
typedef struct ch_checks {
    int linearizable;   /* 1 yes, 0 no, -1 unknown (budget), -2 not run */
    bool logs_agree;
} ch_checks;

const char *ch_verdict_name(ch_verdict v); /* "pass", "fail", "unknown" */
/* Exit code of DESIGN.md for a verdict: 0, 1, 4. */
int ch_verdict_exit_code(ch_verdict v);

/* Rows as a JSON array ([{name, limit, value, pass, unknown, message}]); sets *v. */
json_t *ch_assertions_evaluate(const ch_assertions *a, const ch_metrics *m, const ch_checks *c, ch_verdict *v);

/* junit.xml text: one testsuite (the scenario), one testcase per assertion row. */
char *ch_junit_xml(const char *suite, const json_t *rows, double duration_s);

#endif
