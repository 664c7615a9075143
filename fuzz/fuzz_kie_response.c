/* fuzz_kie_response.c — KIE's answers and callbacks, whatever bytes they carry: the parsers
 * neither crash nor emit JSON a strict reader refuses, and their errors are UTF-8. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/json_strict.h"
#include "core/util.h"
#include "kie/kie_client.h"
#include "store/metadata.h"
#include "invariant.h"

/* The first byte picks the parser (b % 3) and the HTTP status (b / 3 % 8). */
static const long statuses[] = {200, 201, 400, 401, 404, 429, 500, 502};

/* Would json_num() in kie_client.c read this item as a double? */
static int as_double(const cJSON *it, double *v)
{
	if (cJSON_IsNumber(it)) {
		*v = it->valuedouble;
		return 1;
	}
	if (cJSON_IsString(it) && it->valuestring[0]) {
		char *end;
		*v = strtod(it->valuestring, &end);
		return *end == '\0' && isfinite(*v);
	}
	return 0;
}

static int out_of(const cJSON *obj, const char *name, double lim)
{
	double v;
	return as_double(cJSON_GetObjectItemCaseSensitive(obj, name), &v) && !(fabs(v) < lim);
}

/* The inputs that hit the known undefined behaviour: a "code" beyond int, or a time beyond
 * int64_t, converted from double without a range check (json_code, num_ms). */
static int hits_known_ub(const uint8_t *body, size_t len)
{
	cJSON *root = cJSON_ParseWithLength((const char *)body, len);
	const cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data");
	int hit = out_of(root, "code", 2147483648.0);
	static const char *const times[] = {"createTime", "completeTime", "updateTime"};
	for (int i = 0; i < 3; i++)
		hit |= out_of(data, times[i], 9223372036854775808.0);
	cJSON_Delete(root);
	return hit;
}

/* The known bugs' triggers: bytes that are not UTF-8 in KIE's answer are copied as they
 * are, and a long msg is cut at 512 bytes wherever that falls. */
static int body_utf8;

static void check_error(const char *what, const struct kie_error *e)
{
	INVARIANT("kie_response.error", e->cls != KIE_ERR_NONE, "%s failed with class none: %s",
		  what, e->message);
	if (invariant_enabled("kie_response.error_utf8") ||
	    (body_utf8 && strlen(e->message) < sizeof(e->message) - 1))
		INVARIANT("kie_response.error_utf8", invariant_message(e->message),
			  "%s: error message is empty or not UTF-8: \"%s\"", what, e->message);
}

static void check_strict(const char *what, char *s)
{
	char err[512];
	INVARIANT("kie_response.strict_output", s != NULL, "%s: NULL", what);
	if (invariant_enabled("kie_response.strict_output") || body_utf8)
		INVARIANT("kie_response.strict_output",
			  json_strict_check(s, strlen(s), NULL, err, sizeof(err)) == 0,
			  "%s is refused by the strict check: %s (%.300s)", what, err, s);
	cJSON_free(s);
}

/* What the worker writes from a result: the normalized event and the metadata fields. */
static void check_result(const char *what, const struct kie_result *r)
{
	cJSON *fields = metadata_result_fields(r, 1700000000000LL);
	/* recordInfo may leave the id out (the caller asked for it by id); a callback not */
	INVARIANT("kie_response.result",
		  strcmp(what, "kie_parse_callback") != 0 || (r->task_id && r->task_id[0]),
		  "%s succeeded without a task id", what);
	INVARIANT("kie_response.result", r->success == (r->state == KIE_TASK_SUCCESS),
		  "%s: success %d but state %s", what, r->success, kie_task_state_str(r->state));
	INVARIANT("kie_response.result", r->success || !kie_task_state_final(r->state) || r->error,
		  "%s: a failed task without an error", what);
	check_strict("kie_result_to_json", kie_result_to_json(r));
	check_strict("metadata_result_fields", cJSON_PrintUnformatted(fields));
	cJSON_Delete(fields);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kie_error e;
	struct kie_result r;
	const char *body;
	size_t len;
	long status;
	int op;

	if (size < 1)
		return 0;
	op = data[0] % 3;
	status = statuses[(data[0] / 3) % 8];
	body = (const char *)data + 1;
	len = size - 1;
	body_utf8 = util_utf8_len(body, len) >= 0;
	if (!invariant_enabled("kie_response.no_ub") && hits_known_ub(data + 1, len))
		return 0;
	if (op == 0) {
		char *task_id = NULL;
		if (kie_parse_create_response(status, body, len, &task_id, &e) != 0) {
			INVARIANT("kie_response.error", task_id == NULL, "failed, yet a task id");
			check_error("kie_parse_create_response", &e);
			return 0;
		}
		INVARIANT("kie_response.result", task_id && task_id[0],
			  "createTask succeeded without a task id");
		/* the id goes into events and the metadata record */
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "taskId", task_id);
		check_strict("{\"taskId\": <createTask's id>}", cJSON_PrintUnformatted(o));
		cJSON_Delete(o);
		free(task_id);
		return 0;
	}
	if ((op == 1 ? kie_parse_task_response(status, body, len, &r, &e)
		     : kie_parse_callback(body, len, &r, &e)) != 0) {
		check_error(op == 1 ? "kie_parse_task_response" : "kie_parse_callback", &e);
		return 0;
	}
	check_result(op == 1 ? "kie_parse_task_response" : "kie_parse_callback", &r);
	kie_result_free(&r);
	return 0;
}
