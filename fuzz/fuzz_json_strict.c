/* fuzz_json_strict.c — json_strict_check against cJSON: whatever the strict check accepts,
 * cJSON reads the same way, prints back strictly, minifies to the same tree, and spans are
 * values of their own. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/json_strict.h"
#include "invariant.h"

static const char *const want[] = {"meta", "id", "a", "", NULL};
#define N_WANT 4

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* 1 when some object in the tree has two members of the same name (the case where a
 * first-wins reader, cJSON, and a last-wins reader, JS or Python, see different values),
 * or a number that does not print back as itself (inf prints as null). */
static int tree_has(const cJSON *it, int dups)
{
	for (; it; it = it->next) {
		if (!dups && cJSON_IsNumber(it) && !isfinite(it->valuedouble))
			return 1;
		if (dups && cJSON_IsObject(it)) {
			int n = cJSON_GetArraySize(it), k = 0, dup = 0;
			const char **names = malloc(((size_t)n + 1) * sizeof(*names));
			const cJSON *c;
			cJSON_ArrayForEach(c, it) names[k++] = c->string;
			qsort(names, (size_t)n, sizeof(*names), name_cmp);
			for (k = 1; k < n; k++)
				dup |= strcmp(names[k - 1], names[k]) == 0;
			free(names);
			if (dup)
				return 1;
		}
		if (tree_has(it->child, dups))
			return 1;
	}
	return 0;
}

static void check_refusal(const uint8_t *data, size_t size, const char *err,
			  const struct json_strict_span *spans)
{
	const char *at = err;
	unsigned long long off;
	char small[24];

	/* the offset follows a quoted name, which may itself read "at byte" */
	if (strncmp(err, "duplicate key \"", 15) == 0) {
		for (at = err + 15; *at && *at != '"'; at++)
			if (*at == '\\' && at[1])
				at++;
	}
	at = strstr(at, "at byte ");

	INVARIANT("json_strict.message", invariant_message(err) && invariant_printable(err),
		  "refusal message is empty, not UTF-8 or has control bytes: \"%s\"", err);
	INVARIANT("json_strict.message", at && sscanf(at, "at byte %llu", &off) == 1 &&
		  off <= size, "refusal message names no offset within %zu bytes: \"%s\"",
		  size, err);
	for (int k = 0; k < N_WANT; k++)
		INVARIANT("json_strict.spans", spans[k].off == 0 && spans[k].len == 0,
			  "span %d is {%zu, %zu} after a refusal", k, spans[k].off, spans[k].len);
	/* a short buffer cuts the message at a character boundary */
	INVARIANT("json_strict.verdict",
		  json_strict_check((const char *)data, size, NULL, small, sizeof(small)) == -1,
		  "refused with spans, accepted without");
	INVARIANT("json_strict.message", invariant_utf8(small, strlen(small)) &&
		  strncmp(small, err, strlen(small)) == 0,
		  "message cut to %zu bytes is \"%s\" (whole: \"%s\")", sizeof(small), small, err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_strict_span spans[N_WANT];
	struct json_strict_opts opts = {.want = want, .spans = spans};
	char err[512], err2[512];
	char *copy, *printed;
	const char *end = NULL;
	cJSON *root, *again;
	int rc, finite;

	rc = json_strict_check((const char *)data, size, &opts, err, sizeof(err));
	if (rc != 0) {
		check_refusal(data, size, err, spans);
		return 0;
	}
	/* a larger depth limit never refuses what a smaller one accepts */
	opts.max_depth = 1 << 20;
	INVARIANT("json_strict.verdict",
		  json_strict_check((const char *)data, size, &opts, err2, sizeof(err2)) == 0,
		  "accepted at depth 64, refused at depth 2^20: %s", err2);

	/* cJSON, asked for exactly one value and nothing after it, reads the same bytes */
	copy = malloc(size + 1);
	memcpy(copy, data, size);
	copy[size] = '\0';
	root = cJSON_ParseWithLengthOpts(copy, size + 1, &end, 1);
	INVARIANT("json_strict.cjson_agrees", root != NULL,
		  "strict check accepted %zu bytes that cJSON refuses near byte %ld", size,
		  end ? (long)(end - copy) : -1L);
	INVARIANT("json_strict.cjson_agrees", end == copy + size,
		  "cJSON stopped at byte %ld of %zu", (long)(end - copy), size);

	/* no object with a repeated name: first-wins and last-wins readers agree */
	INVARIANT("json_strict.no_duplicates", !tree_has(root, 1),
		  "accepted an object with a repeated member name");

	/* printed back by cJSON, it is strict again (and the same tree, numbers permitting) */
	printed = cJSON_PrintUnformatted(root);
	INVARIANT("json_strict.reprint", printed != NULL, "cJSON could not print the tree");
	INVARIANT("json_strict.reprint",
		  json_strict_check(printed, strlen(printed), NULL, err2, sizeof(err2)) == 0,
		  "cJSON's reprint is refused: %s (reprint: %.200s)", err2, printed);
	finite = !tree_has(root, 0);
	again = cJSON_Parse(printed);
	INVARIANT("json_strict.reprint", again && (!finite || cJSON_Compare(root, again, 1)),
		  "the reprint reads back as another tree: %.200s", printed);
	cJSON_Delete(again);

	/* minified (json_strict_minify, what meta goes through): strict, the same tree, no
	 * whitespace left between tokens, and minifying again changes nothing */
	{
		char *m = malloc(size + 1), *mm;
		size_t n, n2;
		int in_str = 0, esc = 0;
		memcpy(m, data, size);
		n = json_strict_minify(m, size);
		INVARIANT("json_strict.minify", n <= size && strlen(m) == n,
			  "minified to %zu bytes from %zu", n, size);
		INVARIANT("json_strict.minify", json_strict_check(m, n, NULL, err2, sizeof(err2)) == 0,
			  "the minified value is refused: %s (%.200s)", err2, m);
		again = cJSON_ParseWithLength(m, n);
		INVARIANT("json_strict.minify", again && (!finite || cJSON_Compare(root, again, 1)),
			  "the minified value reads as another tree: %.200s", m);
		cJSON_Delete(again);
		for (size_t i = 0; i < n; i++) {
			char c = m[i];
			if (in_str) {
				if (esc)
					esc = 0;
				else if (c == '\\')
					esc = 1;
				else if (c == '"')
					in_str = 0;
				continue;
			}
			INVARIANT("json_strict.minify", c != ' ' && c != '\t' && c != '\n' && c != '\r',
				  "whitespace left at byte %zu of the minified %.200s", i, m);
			in_str = c == '"';
		}
		mm = malloc(n + 1);
		memcpy(mm, m, n + 1);
		n2 = json_strict_minify(mm, n);
		INVARIANT("json_strict.minify", n2 == n && memcmp(mm, m, n) == 0,
			  "minifying twice changed it: %.200s", m);
		free(mm);
		free(m);
	}

	/* spans: inside the input, strict on their own, the member's value */
	for (int k = 0; k < N_WANT; k++) {
		const cJSON *member = cJSON_IsObject(root)
					      ? cJSON_GetObjectItemCaseSensitive(root, want[k])
					      : NULL;
		cJSON *v;
		INVARIANT("json_strict.spans", (member != NULL) == (spans[k].len > 0),
			  "member \"%s\" %s but its span has %zu bytes", want[k],
			  member ? "is there" : "is absent", spans[k].len);
		if (!spans[k].len) {
			INVARIANT("json_strict.spans", spans[k].off == 0,
				  "absent member \"%s\" has offset %zu", want[k], spans[k].off);
			continue;
		}
		INVARIANT("json_strict.spans",
			  spans[k].off < size && spans[k].len <= size - spans[k].off,
			  "span {%zu, %zu} of \"%s\" is outside %zu bytes", spans[k].off,
			  spans[k].len, want[k], size);
		INVARIANT("json_strict.spans",
			  json_strict_check((const char *)data + spans[k].off, spans[k].len, NULL,
					    err2, sizeof(err2)) == 0,
			  "span of \"%s\" is not one strict value: %s", want[k], err2);
		v = cJSON_ParseWithLength((const char *)data + spans[k].off, spans[k].len);
		INVARIANT("json_strict.spans", v && (!finite || cJSON_Compare(v, member, 1)),
			  "span of \"%s\" is not the member's value", want[k]);
		cJSON_Delete(v);
	}
	cJSON_free(printed);
	cJSON_Delete(root);
	free(copy);
	return 0;
}
