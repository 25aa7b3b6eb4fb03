/* rift_json.h — quoting JSON input back in error messages.
 *
 * Every parser of user files (scenarios, replica and stack configs) says what
 * it found ("got \"fsycn\"", "got an array"); these two helpers make that text
 * safe and short, so a hostile or huge value cannot flood or corrupt a
 * terminal. Header-only: the parsers live in different libraries. */
#ifndef RIFT_JSON_H
#define RIFT_JSON_H

#include <jansson.h>
#include <stdio.h>
#include <string.h>

/* Printable ASCII only ('?' otherwise), cut to len with "..." when longer. */
static inline void rift_json_sanitize(const char *s, char *out, size_t len)
{
    size_t i = 0;
    for (; s[i] && i + 1 < len; i++)
        out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    out[i] = 0;
    if (s[i] && len > 4)
        memcpy(out + len - 4, "...", 4);
}

/* What a JSON value looks like, for "got ..." in messages (buf or a literal). */
static inline const char *rift_json_describe(const json_t *v, char *buf, size_t len)
{
    char clean[48];
    switch (json_typeof(v)) {
    case JSON_STRING:
        rift_json_sanitize(json_string_value(v), clean, sizeof(clean));
        snprintf(buf, len, "\"%s\"", clean);
        return buf;
    case JSON_INTEGER:
        snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return buf;
    case JSON_REAL:
        snprintf(buf, len, "%g", json_real_value(v));
        return buf;
    case JSON_TRUE: return "true";
    case JSON_FALSE: return "false";
    case JSON_NULL: return "null";
    case JSON_ARRAY: return "an array";
    case JSON_OBJECT: return "an object";
    }
    return "?";
}

#endif
