/* json_strict.h — a strict RFC 8259 check run before cJSON on bytes from outside.
 *
 * Must not: recurse or allocate per value (an explicit stack), or build values: it
 * checks, cJSON parses. */
#ifndef KIE_JSON_STRICT_H
#define KIE_JSON_STRICT_H

#include <stddef.h>

#define JSON_STRICT_DEPTH_MAX 64
#define JSON_STRICT_KEY_SHOWN_MAX 64 /* bytes of a member name quoted in a message */

struct json_strict_span { size_t off, len; };  /* byte range of a value in the input */

struct json_strict_opts {
	int max_depth;            /* 0: JSON_STRICT_DEPTH_MAX */
	const char *const *want;  /* optional NULL-terminated top-level member names whose value spans to report */
	struct json_strict_span *spans; /* out: one per name in want; len 0 when absent */
};

/* Returns 0 when bytes[0..len) is exactly one JSON value (surrounded by optional whitespace)
 * that is strict: valid UTF-8 (no overlongs, no surrogates encoded in UTF-8, nothing above U+10FFFF),
 * no raw control bytes (< 0x20) inside strings, no NUL anywhere (raw or \u0000),
 * no lone or misordered UTF-16 surrogate escapes, RFC number grammar only (no leading zeros,
 * no '+', no '.5', no '1.', no NaN/Infinity, no hex), literals true/false/null only,
 * no duplicate member names in any object (compared after unescaping, so "a" and "\u0061" are duplicates),
 * nesting at most max_depth. Otherwise -1 and err holds a sentence that names the problem and its byte
 * offset, e.g.
 *   "bytes after the JSON value at byte 57 (one job per list element)"
 *   "duplicate key \"prompt\" in an object at byte 120 (readers disagree on which one wins)"
 *   "NUL character (\\u0000) in a string at byte 33"
 *   "raw control byte 0x0a in a string at byte 40 (escape it as \\n)"
 *   "nesting deeper than 64 levels at byte 300"
 *   "invalid UTF-8 at byte 12"
 *   "number with a leading zero at byte 9"
 * The key name quoted in a message is safe to embed in JSON/logs: at most
 * JSON_STRICT_KEY_SHOWN_MAX bytes, cut at a UTF-8 boundary ("..." marks a cut), with '"', '\'
 * and control bytes escaped. A message cut short by errlen is cut at a UTF-8 boundary too.
 * err may be NULL (errlen 0); opts may be NULL.
 *
 * Spans: when the top-level value is an object, spans[k] is the byte range of the value of
 * member want[k] (the value only, not the key; nothing around it); {0, 0} when the member is
 * absent, when the top-level value is not an object, and for every name when -1 is returned.
 * Offsets are from bytes[0]: bytes + off, len bytes, is itself one strict JSON value.
 *
 * Thread-safe, no globals, no recursion (an explicit stack on the heap); memory O(len) at most
 * (freed before returning). Duplicate names are found by sorting each object's names when it
 * closes: O(n log n) for an object of n members. Offsets are 0-based byte offsets. */
int json_strict_check(const char *bytes, size_t len, const struct json_strict_opts *opts,
		      char *err, size_t errlen);

/* Removes the whitespace between the tokens of s[0..len), in place, and NUL-terminates
 * it (s must have room for len + 1 bytes); every other byte is kept as it is: strings
 * (escapes included), numbers as written, member order. s must have passed
 * json_strict_check: only then is "between the tokens" well defined. Returns the new
 * length. (cJSON_Minify, 1.7.15, reads the '"' of `"C:\\"` as escaped and so strips
 * spaces inside the strings that follow, or cuts the rest at a "//" it takes for a
 * comment.) */
size_t json_strict_minify(char *s, size_t len);

#endif
