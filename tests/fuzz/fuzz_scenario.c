/* fuzz_scenario.c — libFuzzer target: arbitrary bytes as a scenario file.
 *
 * An input whose first line is "set:<assignment>" applies that --set override
 * to the rest (the JSON), so the override path is fuzzed too. Whatever parses
 * must also hold up: its normalized form (ch_scenario_to_json) must parse again
 * to the same normalized form, and repeat expansion must give exactly
 * n_expanded actions in time order. Errors must be non-empty messages. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "chaos/ch_scenario.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *normalized(const ch_scenario *s)
{
    json_t *j = ch_scenario_to_json(s);
    CHECK(j);
    char *text = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(j);
    CHECK(text);
    return text;
}

static void check_expand(const ch_scenario *s)
{
    ch_action *list;
    size_t n;
    CHECK(ch_scenario_expand(s, &list, &n) == 0);
    CHECK(n == s->n_expanded);
    for (size_t i = 1; i < n; i++) {
        CHECK(list[i - 1].at_ms <= list[i].at_ms);
        CHECK(list[i - 1].at_ms < list[i].at_ms || list[i - 1].index < list[i].index);
    }
    for (size_t i = 0; i < n; i++)
        CHECK(list[i].at_ms <= s->duration_ms && list[i].index < s->n_timeline);
    free(list);
}

static void check_round_trip(const ch_scenario *s)
{
    char *first = normalized(s);
    ch_scenario again;
    ch_error err;
    CHECK(ch_scenario_parse("normalized", first, strlen(first), NULL, 0, &again, &err) == 0);
    char *second = normalized(&again);
    CHECK(strcmp(first, second) == 0);
    CHECK(again.n_expanded == s->n_expanded);
    ch_scenario_free(&again);
    free(first);
    free(second);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    char *set = NULL;
    const uint8_t *nl = size > 4 && memcmp(data, "set:", 4) == 0 ? memchr(data, '\n', size) : NULL;
    if (nl) {
        set = strndup(text + 4, (size_t)(nl - data) - 4);
        CHECK(set);
        size -= (size_t)(nl - data) + 1;
        text = (const char *)nl + 1;
    }
    const char *sets[] = {set};
    ch_scenario s;
    ch_error err;
    int rc = ch_scenario_parse("fuzz.json", text, size, sets, set ? 1 : 0, &s, &err);
    CHECK(rc == 0 || rc == -EINVAL || rc == -ENOMEM);
    if (rc == 0) {
        CHECK(s.text && s.text_len == size && s.name[0]);
        check_expand(&s);
        check_round_trip(&s);
        ch_scenario_free(&s);
    } else {
        CHECK(err.msg[0] && memchr(err.msg, 0, sizeof(err.msg)));
        CHECK(s.timeline == NULL && s.text == NULL);
    }
    free(set);
    return 0;
}
