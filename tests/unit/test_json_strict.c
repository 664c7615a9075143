/* test_json_strict.c — the strict JSON pre-check: every rule accepts and refuses, messages
 * name the problem and its byte offset, deep and wide inputs, member spans. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#include <cmocka.h>

#include "core/json_strict.h"
#include "core/util.h"

/* Inputs are given with their length so that NUL bytes can be part of them. */
struct text { const char *s; size_t len; };
#define T(x) {x, sizeof(x) - 1}

static void accepts_len(const char *s, size_t len)
{
	char err[256];
	if (json_strict_check(s, len, NULL, err, sizeof(err)) != 0)
		fail_msg("refused %.*s: %s", (int)len, s, err);
}

static void refuses_len(const char *s, size_t len, const char *want)
{
	char err[256] = "";
	if (json_strict_check(s, len, NULL, err, sizeof(err)) == 0)
		fail_msg("accepted %.*s; want \"%s\"", (int)len, s, want);
	if (!strstr(err, want))
		fail_msg("input %.*s\n  message: %s\n  want:    %s", (int)len, s, err, want);
	if (util_utf8_len(err, strlen(err)) < 0)
		fail_msg("message is not UTF-8: %s", err);
}

#define ACCEPTS(x) accepts_len(x, sizeof(x) - 1)
#define REFUSES(x, want) refuses_len(x, sizeof(x) - 1, want)

static void accepts_valid_json(void **state)
{
	static const struct text ok[] = {
		T("{}"), T("[]"), T("0"), T("-0"), T("\"\""), T("true"), T("false"), T("null"),
		T(" \t\r\n{ \"a\" : [ 1 , 2 ] , \"b\" : { } }\n "),
		T("{\"v\":1,\"type\":\"raw\",\"input\":{\"prompt\":\"p\",\"imageUrls\":[\"https://a/b\"]},"
		  "\"meta\":{\"n\":18446744073709551615,\"big\":1e999}}"),
		T("[[[[[]]]],{\"\":{\"\":null}}]"),
		T("\"escapes \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\u20AC\""),
		T("\"surrogate pair \\ud83d\\ude00 \\uD83D\\uDE00\""),
		T("\"UTF-8: \xc2\x80 \xdf\xbf \xe0\xa0\x80 \xed\x9f\xbf \xee\x80\x80 \xef\xbf\xbf "
		  "\xf0\x90\x80\x80 \xf4\x8f\xbf\xbf 淡紫色\""),
		T("\"DEL is not a control byte in JSON: \x7f\""),
		T("{\"a\":1,\"A\":2,\"a \":3,\"\":4}"),          /* names differ by case or space */
		T("{\"a\":{\"a\":1},\"b\":{\"a\":2},\"c\":[{\"a\":1},{\"a\":1}]}"), /* same names, other objects */
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		accepts_len(ok[i].s, ok[i].len);
}

static void refuses_bytes_after_the_value(void **state)
{
	char err[256];
	const char two[] = "{\"v\":1,\"type\":\"raw\"}\n{\"v\":1,\"type\":\"raw\"}";
	assert_int_equal(json_strict_check(two, strlen(two), NULL, err, sizeof(err)), -1);
	assert_string_equal(err, "bytes after the JSON value at byte 21 (one job per list element)");
	REFUSES("1 2", "bytes after the JSON value at byte 2");
	REFUSES("{}}", "bytes after the JSON value at byte 2");
	REFUSES("[1]\0", "bytes after the JSON value at byte 3"); /* a C producer's strlen + 1 */
	REFUSES("null,", "bytes after the JSON value at byte 4");
}

static void refuses_duplicate_keys(void **state)
{
	char err[256];
	const char d[] = "{\"prompt\":\"a\",\"type\":\"raw\",\"prompt\":\"b\"}";
	assert_int_equal(json_strict_check(d, strlen(d), NULL, err, sizeof(err)), -1);
	assert_string_equal(err, "duplicate key \"prompt\" in an object at byte 27 (readers "
			    "disagree on which one wins)");
	/* compared after unescaping */
	REFUSES("{\"a\":1,\"\\u0061\":2}", "duplicate key \"a\" in an object at byte 7");
	REFUSES("{\"/\":1,\"\\/\":2}", "duplicate key \"/\" in an object at byte 7");
	REFUSES("{\"\xf0\x9f\x98\x80\":1,\"\\ud83d\\ude00\":2}", "duplicate key \"\xf0\x9f\x98\x80\"");
	REFUSES("{\"\\n\":1,\"\\u000a\":2}", "duplicate key \"\\u000a\" in an object at byte 8");
	REFUSES("{\"\":1,\"\":2}", "duplicate key \"\" in an object at byte 6");
	/* nested, inside arrays, three times: the earliest second occurrence is named */
	REFUSES("{\"x\":{\"k\":1,\"k\":2}}", "duplicate key \"k\" in an object at byte 12");
	REFUSES("[1,{\"k\":[],\"j\":0,\"k\":{}}]", "duplicate key \"k\" in an object at byte 17");
	REFUSES("{\"b\":1,\"a\":1,\"c\":1,\"a\":2,\"b\":2,\"a\":3}",
		"duplicate key \"a\" in an object at byte 19");
	REFUSES("{\"z\":1,\"y\":1,\"x\":1,\"y\":2,\"z\":2}", "duplicate key \"y\" in an object at byte 19");
}

static void duplicate_key_message_is_safe_to_embed(void **state)
{
	char in[1024], err[512], want[128];
	const char *q;
	size_t n;

	/* 200 ASCII bytes: 61 shown, then "..." (64 bytes in all) */
	n = (size_t)snprintf(in, sizeof(in), "{\"%0200d\":1,\"%0200d\":2}", 7, 7);
	assert_int_equal(json_strict_check(in, n, NULL, err, sizeof(err)), -1);
	memset(want, '0', 61);
	snprintf(want + 61, sizeof(want) - 61, "...\" in an object at byte 206");
	assert_non_null(strstr(err, want));
	q = strchr(err, '"');
	assert_int_equal(strchr(q + 1, '"') - (q + 1), 64);
	/* 40 two-byte characters (80 bytes): cut at a character boundary */
	char key[81];
	for (int i = 0; i < 40; i++)
		memcpy(key + 2 * i, "\xc3\xa9", 2);
	key[80] = '\0';
	n = (size_t)snprintf(in, sizeof(in), "{\"%s\":1,\"%s\":2}", key, key);
	assert_int_equal(json_strict_check(in, n, NULL, err, sizeof(err)), -1);
	assert_true(util_utf8_len(err, strlen(err)) > 0);
	q = strchr(err, '"');
	assert_int_equal(strchr(q + 1, '"') - (q + 1), 60 + 3); /* 30 characters and "..." */
	/* quotes, backslashes and control bytes are escaped: no raw newline reaches a log */
	REFUSES("{\"a\\\"b\\\\c\\nd\\u001b\":1,\"a\\\"b\\\\c\\nd\\u001b\":2}",
		"duplicate key \"a\\\"b\\\\c\\u000ad\\u001b\" in an object at byte 22");
	/* an exactly 64-byte name is shown whole */
	n = (size_t)snprintf(in, sizeof(in), "{\"%064d\":1,\"%064d\":2}", 1, 1);
	assert_int_equal(json_strict_check(in, n, NULL, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "\"%064d\" in", 1);
	assert_non_null(strstr(err, want));
}

static void short_error_buffer_cuts_at_a_character(void **state)
{
	const char in[] = "{\"\xe6\xb7\xa1\xe7\xb4\xab\":1,\"\xe6\xb7\xa1\xe7\xb4\xab\":2}";
	char err[64];
	/* "duplicate key \"" is 15 bytes; 17 bytes would cut the first 3-byte character */
	for (size_t len = 1; len < sizeof(err); len++) {
		memset(err, 'x', sizeof(err));
		assert_int_equal(json_strict_check(in, sizeof(in) - 1, NULL, err, len), -1);
		assert_true(strlen(err) < len);
		if (util_utf8_len(err, strlen(err)) < 0)
			fail_msg("errlen %zu: message cut inside a character: %s", len, err);
	}
	assert_int_equal(json_strict_check(in, sizeof(in) - 1, NULL, NULL, 0), -1);
	assert_int_equal(json_strict_check("{}", 2, NULL, NULL, 0), 0);
}

static void refuses_nul_anywhere(void **state)
{
	REFUSES("\"a\\u0000b\"", "NUL character (\\u0000) in a string at byte 2");
	REFUSES("{\"k\\u0000\":1}", "NUL character (\\u0000) in a string at byte 3");
	REFUSES("\"ab\0c\"", "NUL byte (0x00) in a string at byte 3");
	REFUSES("\0{}", "expected a value at byte 0, found a NUL byte");
	REFUSES("[1,\0]", "expected a value at byte 3, found a NUL byte");
	REFUSES("{}\0", "bytes after the JSON value at byte 2");
	ACCEPTS("\"\\u0001\""); /* escaped control characters other than NUL are fine */
}

static void refuses_raw_control_bytes_in_strings(void **state)
{
	char err[256];
	const char *in = "{\"prompt\":\"line one\nline two\"}";
	assert_int_equal(json_strict_check(in, strlen(in), NULL, err, sizeof(err)), -1);
	assert_string_equal(err, "raw control byte 0x0a in a string at byte 19 (escape it as \\n)");
	REFUSES("\"\t\"", "raw control byte 0x09 in a string at byte 1 (escape it as \\t)");
	REFUSES("\"a\r\"", "raw control byte 0x0d in a string at byte 2 (escape it as \\r)");
	REFUSES("\"\x1f\"", "raw control byte 0x1f in a string at byte 1 (escape it as \\u001f)");
	REFUSES("{\"k\x01\":1}", "raw control byte 0x01 in a string at byte 3");
	REFUSES("\"\\x41\"", "invalid escape at byte 1: a backslash before 'x'");
	REFUSES("\"\\\xc3\xa9\"", "invalid escape at byte 1: a backslash before byte 0xc3");
	REFUSES("\"\\u12G4\"", "invalid \\u escape at byte 1");
	REFUSES("\"\\u12\"", "invalid \\u escape at byte 1");
	REFUSES("\"abc", "unterminated string starting at byte 0");
	REFUSES("[\"abc\\", "unterminated string starting at byte 1");
}

static void refuses_invalid_utf8(void **state)
{
	static const struct { struct text in; const char *want; } cases[] = {
		{T("\"\xc0\x80\""), "invalid UTF-8 at byte 1"},          /* overlong NUL */
		{T("\"\xc1\xbf\""), "invalid UTF-8 at byte 1"},          /* overlong ASCII */
		{T("\"ab\xe0\x80\x80\""), "invalid UTF-8 at byte 3"},    /* overlong 3-byte */
		{T("\"\xe0\x9f\xbf\""), "invalid UTF-8 at byte 1"},
		{T("\"\xf0\x80\x80\x80\""), "invalid UTF-8 at byte 1"},  /* overlong 4-byte */
		{T("\"\xf0\x8f\xbf\xbf\""), "invalid UTF-8 at byte 1"},
		{T("\"\xed\xa0\x80\""), "invalid UTF-8 at byte 1"},      /* U+D800 in UTF-8 */
		{T("\"\xed\xbf\xbf\""), "invalid UTF-8 at byte 1"},      /* U+DFFF */
		{T("\"\xf4\x90\x80\x80\""), "invalid UTF-8 at byte 1"},  /* U+110000 */
		{T("\"\xf5\x80\x80\x80\""), "invalid UTF-8 at byte 1"},
		{T("\"\xff\""), "invalid UTF-8 at byte 1"},
		{T("\"x\x80\""), "invalid UTF-8 at byte 2"},             /* stray continuation */
		{T("\"\xe2\x82\""), "invalid UTF-8 at byte 1"},          /* cut short */
		{T("\"\xe2\x82"), "invalid UTF-8 at byte 1"},            /* cut by the end */
		{T("\"\xc3\x28\""), "invalid UTF-8 at byte 1"},
		{T("{\"k\xc3\":1}"), "invalid UTF-8 at byte 3"},
		{T("[\xc3\xa9]"), "expected a value at byte 1, found byte 0xc3"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		refuses_len(cases[i].in.s, cases[i].in.len, cases[i].want);
}

static void refuses_bad_surrogate_escapes(void **state)
{
	REFUSES("\"\\ud800\"", "lone UTF-16 high surrogate escape \\uD800 at byte 1");
	REFUSES("\"x\\uDBFF\"", "lone UTF-16 high surrogate escape \\uDBFF at byte 2");
	REFUSES("\"\\ud800\\u0041\"", "lone UTF-16 high surrogate escape \\uD800 at byte 1");
	REFUSES("\"\\ud800\\ud800\"", "lone UTF-16 high surrogate escape");
	REFUSES("\"\\ud800x\\udc00\"", "lone UTF-16 high surrogate escape");
	REFUSES("\"\\ud800\\n\"", "lone UTF-16 high surrogate escape");
	REFUSES("\"\\udc00\"", "UTF-16 low surrogate escape \\uDC00 at byte 1 without a high");
	REFUSES("\"\\ude00\\ud83d\"", "UTF-16 low surrogate escape \\uDE00 at byte 1"); /* misordered */
	REFUSES("{\"\\udfff\":1}", "UTF-16 low surrogate escape \\uDFFF at byte 2");
	ACCEPTS("\"\\udbff\\udfff\""); /* U+10FFFF */
	ACCEPTS("\"\\uD800\\uDC00\"");
}

static void refuses_non_rfc_numbers(void **state)
{
	ACCEPTS("[0,-0,1,-1,10,0.5,-0.5,1e5,1E5,1e+5,1e-5,1.5e300,-1.25E-007,0e0,"
		"123456789012345678901234567890,18446744073709551616,1e999]");
	REFUSES("[1,01]", "number with a leading zero at byte 3");
	REFUSES("{\"n\":-012}", "number with a leading zero at byte 5");
	REFUSES("00", "number with a leading zero at byte 0");
	REFUSES("[+1]", "number with a leading '+' at byte 1");
	REFUSES("[.5]", "number without a digit before '.' at byte 1");
	REFUSES("[-.5]", "'-' without digits at byte 1");
	REFUSES("[1.]", "number with no digit after '.' at byte 1");
	REFUSES("1.e5", "number with no digit after '.' at byte 0");
	REFUSES("[1e]", "number with an empty exponent at byte 1");
	REFUSES("[1e+]", "number with an empty exponent at byte 1");
	REFUSES("1E", "number with an empty exponent at byte 0");
	REFUSES("[-]", "'-' without digits at byte 1");
	REFUSES("-", "'-' without digits at byte 0");
	REFUSES("[NaN]", "NaN or Infinity at byte 1");
	REFUSES("[Infinity]", "NaN or Infinity at byte 1");
	REFUSES("{\"x\":-Infinity}", "NaN or Infinity at byte 5");
	REFUSES("[0x1F]", "hexadecimal number at byte 1");
	REFUSES("[0X1F]", "hexadecimal number at byte 1");
	REFUSES("[1_000]", "expected ',' or ']' at byte 2");
	REFUSES("[1.5.2]", "expected ',' or ']' at byte 4");
}

static void literals_are_exact(void **state)
{
	ACCEPTS("[true,false,null]");
	REFUSES("[True]", "unknown literal at byte 1 (only true, false and null)");
	REFUSES("[nul]", "unknown literal at byte 1");
	REFUSES("tru", "unknown literal at byte 0");
	REFUSES("{\"a\":undefined}", "unknown literal at byte 5");
	REFUSES("[None]", "unknown literal at byte 1");
	REFUSES("[Nan]", "unknown literal at byte 1");
	REFUSES("[-Inf]", "'-' without digits at byte 1");
	REFUSES("[nulls]", "expected ',' or ']' at byte 5");
	REFUSES("[truefalse]", "expected ',' or ']' at byte 5");
}

static void refuses_bad_structure(void **state)
{
	REFUSES("", "no JSON value at byte 0 (the input is empty or only whitespace)");
	REFUSES(" \n\t\r ", "no JSON value at byte 5");
	REFUSES("\xef\xbb\xbf{}", "byte order mark at byte 0");
	REFUSES("[1,]", "trailing comma before ']' at byte 3");
	REFUSES("{\"a\":1,}", "trailing comma before '}' at byte 7");
	REFUSES("[,1]", "expected a value at byte 1, found ','");
	REFUSES("{,}", "expected a member name (a string) at byte 1, found ','");
	REFUSES("{'a':1}", "found a single quote");
	REFUSES("{a:1}", "expected a member name (a string) at byte 1, found 'a'");
	REFUSES("{\"a\" 1}", "expected ':' after a member name at byte 5, found '1'");
	REFUSES("{\"a\":}", "expected a value at byte 5, found '}'");
	REFUSES("{1:2}", "expected a member name (a string) at byte 1");
	REFUSES("[1 2]", "expected ',' or ']' at byte 3 (in the array opened at byte 0), found '2'");
	REFUSES("{\"a\":1 \"b\":2}", "expected ',' or '}' at byte 7 (in the object opened at byte 0)");
	REFUSES("[1,[2,{\"a\":3]", "expected ',' or '}' at byte 12 (in the object opened at byte 6)");
	REFUSES("[", "expected a value at byte 1, found the end of the input");
	REFUSES("{\"a\":[1,2", "expected ',' or ']' at byte 9 (in the array opened at byte 5), found "
		"the end of the input");
	REFUSES("{\"a\"", "expected ':' after a member name at byte 4, found the end of the input");
	REFUSES("[1]]", "bytes after the JSON value at byte 3");
	REFUSES("/* c */ {}", "expected a value at byte 0, found '/'");
	REFUSES("[1,\f2]", "expected a value at byte 3, found byte 0x0c"); /* not JSON whitespace */
	REFUSES("[1,\v2]", "found byte 0x0b");
}

static char *nest(size_t depth, int objects)
{
	char *s = util_xmalloc(depth * 6 + 8);
	size_t o = 0;
	for (size_t i = 0; i < depth; i++) {
		if (objects) {
			memcpy(s + o, "{\"a\":", 5);
			o += 5;
		} else {
			s[o++] = '[';
		}
	}
	s[o++] = '1';
	for (size_t i = 0; i < depth; i++)
		s[o++] = objects ? '}' : ']';
	s[o] = '\0';
	return s;
}

static void nesting_is_capped(void **state)
{
	char err[256];
	char *s = nest(64, 0);
	accepts_len(s, strlen(s));
	free(s);
	s = nest(65, 0);
	assert_int_equal(json_strict_check(s, strlen(s), NULL, err, sizeof(err)), -1);
	assert_string_equal(err, "nesting deeper than 64 levels at byte 64");
	free(s);
	s = nest(65, 1);
	refuses_len(s, strlen(s), "nesting deeper than 64 levels at byte 320");
	free(s);
	/* max_depth */
	struct json_strict_opts o = {.max_depth = 2};
	assert_int_equal(json_strict_check("[[1]]", 5, &o, err, sizeof(err)), 0);
	assert_int_equal(json_strict_check("[{\"a\":[1]}]", 11, &o, err, sizeof(err)), -1);
	assert_string_equal(err, "nesting deeper than 2 levels at byte 6");
	o.max_depth = 1;
	assert_int_equal(json_strict_check("[]", 2, &o, err, sizeof(err)), 0);
	assert_int_equal(json_strict_check("1", 1, &o, err, sizeof(err)), 0);
	assert_int_equal(json_strict_check("[[]]", 4, &o, err, sizeof(err)), -1);
}

static void deep_input_does_not_overflow_the_stack(void **state)
{
	char err[256];
	size_t depth = 100000;
	char *s = nest(depth, 0);
	assert_int_equal(json_strict_check(s, strlen(s), NULL, err, sizeof(err)), -1);
	assert_string_equal(err, "nesting deeper than 64 levels at byte 64");
	/* the stack is on the heap: a caller that allows it can check it all */
	struct json_strict_opts o = {.max_depth = 100000};
	assert_int_equal(json_strict_check(s, strlen(s), &o, err, sizeof(err)), 0);
	s[strlen(s) - 1] = ' '; /* one bracket short */
	assert_int_equal(json_strict_check(s, strlen(s), &o, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "found the end of the input"));
	free(s);
	s = nest(depth, 1);
	assert_int_equal(json_strict_check(s, strlen(s), &o, err, sizeof(err)), 0);
	o.max_depth = 0;
	assert_int_equal(json_strict_check(s, strlen(s), &o, err, sizeof(err)), -1);
	assert_string_equal(err, "nesting deeper than 64 levels at byte 320");
	free(s);
}

static void wide_object_with_20000_keys(void **state)
{
	const size_t n = 20000;
	struct dbuf b;
	char err[256];
	size_t last = 0;

	dbuf_init(&b, (size_t)1 << 24);
	dbuf_addstr(&b, "{");
	for (size_t i = 0; i < n; i++)
		dbuf_printf(&b, "%s\"key-%zu\":%zu", i ? "," : "", (i * 7919) % n, i);
	dbuf_addstr(&b, "}");
	assert_int_equal(json_strict_check(b.data, b.len, NULL, err, sizeof(err)), 0);
	/* the same names written with escapes are the same names */
	b.data[b.len - 1] = ',';
	last = b.len;
	dbuf_addstr(&b, "\"\\u006bey-19999\":0}");
	assert_int_equal(json_strict_check(b.data, b.len, NULL, err, sizeof(err)), -1);
	char want[128];
	snprintf(want, sizeof(want), "duplicate key \"key-19999\" in an object at byte %zu", last);
	if (!strstr(err, want))
		fail_msg("message: %s\nwant:    %s", err, want);
	dbuf_free(&b);
	/* 20,000 objects of two keys each, and 20,000 distinct escaped names */
	dbuf_init(&b, (size_t)1 << 24);
	dbuf_addstr(&b, "[");
	for (size_t i = 0; i < n; i++)
		dbuf_printf(&b, "%s{\"a\":1,\"b\":{\"\\u0063%zu\":2}}", i ? "," : "", i);
	dbuf_addstr(&b, "]");
	assert_int_equal(json_strict_check(b.data, b.len, NULL, err, sizeof(err)), 0);
	dbuf_free(&b);
}

static const char *const want_names[] = {"meta", "id", "missing", "m\xc3\xa9ta", NULL};

static void check_span(const char *in, const struct json_strict_span *sp, const char *want)
{
	char err[256];
	if (!want) {
		assert_int_equal(sp->len, 0);
		assert_int_equal(sp->off, 0);
		return;
	}
	if (sp->len != strlen(want) || memcmp(in + sp->off, want, sp->len) != 0)
		fail_msg("span {%zu, %zu} = \"%.*s\"; want \"%s\"", sp->off, sp->len,
			 (int)sp->len, in + sp->off, want);
	assert_int_equal(json_strict_check(in + sp->off, sp->len, NULL, err, sizeof(err)), 0);
}

static void spans_of_top_level_members(void **state)
{
	struct json_strict_span sp[4];
	struct json_strict_opts o = {.want = want_names, .spans = sp};
	char err[256];
	const char *in = "{ \"id\" :\t\"job-1\" , \"x\":{\"meta\":0},"
			 "\"meta\" : {\"n\":18446744073709551615, \"f\":1e999, \"a\":[1,{}]} ,"
			 "\"m\\u00e9ta\":[ ]}";

	assert_int_equal(json_strict_check(in, strlen(in), &o, err, sizeof(err)), 0);
	check_span(in, &sp[0], "{\"n\":18446744073709551615, \"f\":1e999, \"a\":[1,{}]}");
	check_span(in, &sp[1], "\"job-1\"");
	check_span(in, &sp[2], NULL); /* absent; the nested "meta" is not top level */
	check_span(in, &sp[3], "[ ]"); /* named with an escape in the input */

	in = "{\"meta\":12.5e3,\"id\":null}";
	assert_int_equal(json_strict_check(in, strlen(in), &o, err, sizeof(err)), 0);
	check_span(in, &sp[0], "12.5e3");
	check_span(in, &sp[1], "null");
	in = "{\"id\":\"x\",\"meta\":[{\"meta\":1}]}";
	assert_int_equal(json_strict_check(in, strlen(in), &o, err, sizeof(err)), 0);
	check_span(in, &sp[0], "[{\"meta\":1}]");
	check_span(in, &sp[1], "\"x\"");

	/* not an object at the top: no spans */
	in = "[{\"meta\":1}]";
	assert_int_equal(json_strict_check(in, strlen(in), &o, err, sizeof(err)), 0);
	for (int i = 0; i < 4; i++)
		check_span(in, &sp[i], NULL);
	/* refused: no spans, even for members seen before the fault */
	in = "{\"meta\":{\"a\":1},\"id\":01}";
	assert_int_equal(json_strict_check(in, strlen(in), &o, err, sizeof(err)), -1);
	for (int i = 0; i < 4; i++)
		check_span(in, &sp[i], NULL);
	in = "{\"meta\":{\"a\":1},\"meta\":2}";
	assert_int_equal(json_strict_check(in, strlen(in), &o, err, sizeof(err)), -1);
	check_span(in, &sp[0], NULL);
	/* want without spans, and an empty want list, are fine */
	struct json_strict_opts none = {.want = want_names};
	assert_int_equal(json_strict_check("{\"meta\":1}", 10, &none, err, sizeof(err)), 0);
	static const char *const empty[] = {NULL};
	struct json_strict_opts e = {.want = empty, .spans = sp};
	assert_int_equal(json_strict_check("{\"meta\":1}", 10, &e, err, sizeof(err)), 0);
}

static void *check_in_thread(void *arg)
{
	const char *in = "{\"a\":[1,2,{\"b\":\"\\u00e9\"}],\"c\":{\"d\":null}}";
	char err[128];
	long bad = 0;
	(void)arg;
	for (int i = 0; i < 2000; i++) {
		bad += json_strict_check(in, strlen(in), NULL, err, sizeof(err)) != 0;
		bad += json_strict_check("{\"a\":1,\"a\":2}", 13, NULL, err, sizeof(err)) != -1;
	}
	return (void *)bad;
}

static void threads_share_nothing(void **state)
{
	pthread_t t[4];
	void *bad;
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, check_in_thread, NULL), 0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], &bad), 0);
		assert_null(bad);
	}
}

/* Issue 16: cJSON_Minify (1.7.15) reads the '"' after "\\\\" as escaped; meta came out
 * changed ("a b" -> "ab") or cut at "//" (invalid). json_strict_minify keeps every byte
 * of every string and number. */
static void minify_keeps_strings_whole(void **state)
{
	static const struct { const char *in, *out; } t[] = {
		{"{\"dir\":\"C:\\\\\", \"note\":\"a b\"}", "{\"dir\":\"C:\\\\\",\"note\":\"a b\"}"},
		{"{\"p\":\"C:\\\\\",\"u\":\"http://x\"}", "{\"p\":\"C:\\\\\",\"u\":\"http://x\"}"},
		{" { \"a\" :\t[ 1 ,\r\n 2.50 , -0 , 1e999 ] } ", "{\"a\":[1,2.50,-0,1e999]}"},
		{"\"\\\\\\\" x /* y */ \"", "\"\\\\\\\" x /* y */ \""},
		{"[\"\\\\\",\" \",\"\\\\\\\\\",\" \"]", "[\"\\\\\",\" \",\"\\\\\\\\\",\" \"]"},
		{"{}", "{}"}, {" true ", "true"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char buf[256];
		size_t len = strlen(t[i].in), n;
		assert_int_equal(json_strict_check(t[i].in, len, NULL, NULL, 0), 0);
		memcpy(buf, t[i].in, len + 1);
		n = json_strict_minify(buf, len);
		assert_string_equal(buf, t[i].out);
		assert_int_equal(n, strlen(t[i].out));
		assert_int_equal(json_strict_check(buf, n, NULL, NULL, 0), 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(accepts_valid_json),
		cmocka_unit_test(refuses_bytes_after_the_value),
		cmocka_unit_test(refuses_duplicate_keys),
		cmocka_unit_test(duplicate_key_message_is_safe_to_embed),
		cmocka_unit_test(short_error_buffer_cuts_at_a_character),
		cmocka_unit_test(refuses_nul_anywhere),
		cmocka_unit_test(refuses_raw_control_bytes_in_strings),
		cmocka_unit_test(refuses_invalid_utf8),
		cmocka_unit_test(refuses_bad_surrogate_escapes),
		cmocka_unit_test(refuses_non_rfc_numbers),
		cmocka_unit_test(literals_are_exact),
		cmocka_unit_test(refuses_bad_structure),
		cmocka_unit_test(nesting_is_capped),
		cmocka_unit_test(deep_input_does_not_overflow_the_stack),
		cmocka_unit_test(wide_object_with_20000_keys),
		cmocka_unit_test(spans_of_top_level_members),
		cmocka_unit_test(threads_share_nothing),
		cmocka_unit_test(minify_keeps_strings_whole),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
