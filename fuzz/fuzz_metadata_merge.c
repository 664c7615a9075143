/* fuzz_metadata_merge.c — metadata_merge(record, fields) on two objects from the input
 * (split at the first NUL byte): every field lands once, with its value, and the record
 * still prints as strict JSON. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "core/json_strict.h"
#include "core/util.h"
#include "store/metadata.h"
#include "invariant.h"

/* Keeps the first of each name (what cJSON's lookups see), at every level: the record and
 * the fields stand for what the worker builds, which has no repeated names. */
static void dedupe(cJSON *o)
{
	for (cJSON *c = o ? o->child : NULL; c; c = c->next)
		dedupe(c);
	if (!cJSON_IsObject(o))
		return;
	for (cJSON *c = o->child; c; c = c->next) {
		cJSON *d = c->next;
		while (d) {
			cJSON *next = d->next;
			if (strcmp(c->string, d->string) == 0)
				cJSON_Delete(cJSON_DetachItemViaPointer(o, d));
			d = next;
		}
	}
}

/* The known bug's trigger: a field whose name matches a record name (or an earlier field)
 * only when case is ignored. cJSON_HasObjectItem ignores case, the replace does not, so the
 * field is dropped and its copy leaked. */
static int hits_known_case_bug(const cJSON *record, const cJSON *fields)
{
	for (const cJSON *f = fields->child; f; f = f->next) {
		for (const cJSON *r = record->child; r; r = r->next)
			if (strcasecmp(r->string, f->string) == 0 && strcmp(r->string, f->string) != 0)
				return 1;
		for (const cJSON *g = fields->child; g != f; g = g->next)
			if (strcasecmp(g->string, f->string) == 0 && strcmp(g->string, f->string) != 0)
				return 1;
	}
	return 0;
}

static cJSON *object_from(const uint8_t *p, size_t len)
{
	cJSON *o = cJSON_ParseWithLength((const char *)p, len);
	if (!cJSON_IsObject(o)) {
		cJSON_Delete(o);
		return NULL;
	}
	dedupe(o);
	return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *sep = memchr(data, 0, size);
	cJSON *record, *fields;
	const cJSON *f, *r;
	char err[512], *printed;
	int utf8;

	if (!sep)
		return 0;
	record = object_from(data, (size_t)(sep - data));
	fields = object_from(sep + 1, size - (size_t)(sep - data) - 1);
	if (!record || !fields)
		goto out;
	/* the strict-output check needs UTF-8 input; the record and fields come from cJSON
	 * trees the worker builds from checked text */
	utf8 = util_utf8_len((const char *)data, (size_t)(sep - data)) >= 0 &&
	       util_utf8_len((const char *)sep + 1, size - (size_t)(sep - data) - 1) >= 0;
	if (!invariant_enabled("metadata_merge.case") && hits_known_case_bug(record, fields))
		goto out;

	metadata_merge(record, fields);

	cJSON_ArrayForEach(f, fields) {
		const cJSON *got = cJSON_GetObjectItemCaseSensitive(record, f->string);
		INVARIANT("metadata_merge.case", got != NULL,
			  "field \"%.100s\" is not in the record after the merge", f->string);
		/* printed, not cJSON_Compare: that finds inf unequal to itself */
		char *a = cJSON_PrintUnformatted(got), *b = cJSON_PrintUnformatted(f);
		/* updatedAt is raised to createdAt when KIE's clock put it earlier */
		const cJSON *created = cJSON_GetObjectItemCaseSensitive(record, "createdAt");
		if (strcmp(f->string, "updatedAt") == 0 && cJSON_IsString(got) &&
		    cJSON_IsString(created) && a && b && strcmp(a, b) != 0) {
			/* the clamp writes createdAt's instant as an ISO-8601 UTC timestamp */
			INVARIANT("metadata_merge.value", strlen(got->valuestring) == 24 &&
				  got->valuestring[23] == 'Z',
				  "updatedAt \"%.60s\" is neither the merged value nor a timestamp",
				  got->valuestring);
			free(a);
			free(b);
			continue;
		}
		INVARIANT("metadata_merge.value", a && b && strcmp(a, b) == 0,
			  "field \"%.100s\" is %.200s in the record, %.200s in the fields",
			  f->string, a, b);
		cJSON_free(a);
		cJSON_free(b);
	}
	cJSON_ArrayForEach(r, record) {
		for (const cJSON *s = r->next; s; s = s->next)
			INVARIANT("metadata_merge.no_duplicates", strcmp(r->string, s->string) != 0,
				  "\"%.100s\" appears twice in the record", r->string);
	}
	printed = cJSON_PrintUnformatted(record);
	INVARIANT("metadata_merge.strict_output", printed != NULL, "cannot print the record");
	if (utf8) {
		struct json_strict_opts o = {.max_depth = CJSON_NESTING_LIMIT + 1};
		INVARIANT("metadata_merge.strict_output",
			  json_strict_check(printed, strlen(printed), &o, err, sizeof(err)) == 0,
			  "the merged record is not strict JSON: %s (%.300s)", err, printed);
	}
	cJSON_free(printed);
out:
	cJSON_Delete(record);
	cJSON_Delete(fields);
	return 0;
}
