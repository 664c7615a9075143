/* test_metadata.c — the KIETaskMetadata record (the seed's field names), merging, task id
 * safety, and the fs store end to end in a temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <unistd.h>

#include <cmocka.h>

#include "store/metadata.h"

static const char *const imgs[] = {"https://a.b/1.png", "https://a.b/2.png"};

static void pending_has_the_seed_fields(void **state)
{
	struct task_metadata m = {.task_id = "t1", .job_id = "j1", .type = "model_pose",
				  .model = "google/nano-banana-edit", .prompt = "p",
				  .image_urls = imgs, .n_images = 2, .ratio = "9:16"};
	cJSON *o = metadata_pending(&m, 0);
	const char *want[] = {"taskId", "jobId", "type", "model", "prompt", "imageUrls", "ratio",
			      "status", "resultUrls", "error", "consumeCredits", "costTime",
			      "createdAt", "updatedAt"};
	int n = 0;
	const cJSON *f;
	cJSON_ArrayForEach(f, o) n++;
	assert_int_equal(n, sizeof(want) / sizeof(want[0])); /* character only when given */
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		assert_true(cJSON_HasObjectItem(o, want[i]));
	assert_string_equal(cJSON_GetObjectItem(o, "status")->valuestring, "pending");
	assert_string_equal(cJSON_GetObjectItem(o, "createdAt")->valuestring,
			    "1970-01-01T00:00:00.000Z");
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(o, "imageUrls")), 2);
	cJSON_Delete(o);
	m.character = "ava";
	o = metadata_pending(&m, 1700000000123LL);
	assert_string_equal(cJSON_GetObjectItem(o, "character")->valuestring, "ava");
	assert_string_equal(cJSON_GetObjectItem(o, "updatedAt")->valuestring,
			    "2023-11-14T22:13:20.123Z");
	cJSON_Delete(o);
}

static void result_fields_and_merge(void **state)
{
	char *urls[] = {"https://r/1.png"};
	struct kie_result ok = {.task_id = "t1", .state = KIE_TASK_SUCCESS, .success = 1,
				.result_urls = urls, .n_results = 1, .has_credits = 1, .credits = 2,
				.has_cost_time = 1, .cost_time_ms = 1500, .update_time_ms = 0};
	struct kie_result bad = {.task_id = "t1", .state = KIE_TASK_FAIL, .error = "nsfw"};
	cJSON *a = metadata_result_fields(&ok, 0), *b = metadata_result_fields(&bad, 0);
	assert_string_equal(cJSON_GetObjectItem(a, "status")->valuestring, "completed");
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(a, "error")));
	assert_int_equal(cJSON_GetObjectItem(a, "consumeCredits")->valueint, 2);
	assert_int_equal(cJSON_GetObjectItem(a, "costTime")->valueint, 1500);
	assert_string_equal(cJSON_GetObjectItem(b, "status")->valuestring, "failed");
	assert_string_equal(cJSON_GetObjectItem(b, "error")->valuestring, "nsfw");
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(b, "consumeCredits")));
	cJSON *rec = cJSON_Parse("{\"taskId\":\"t1\",\"prompt\":\"keep me\",\"status\":\"pending\"}");
	metadata_merge(rec, a);
	assert_string_equal(cJSON_GetObjectItem(rec, "prompt")->valuestring, "keep me");
	assert_string_equal(cJSON_GetObjectItem(rec, "status")->valuestring, "completed");
	assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(rec, "resultUrls"), 0)->valuestring,
			    "https://r/1.png");
	cJSON_Delete(rec);
	cJSON_Delete(a);
	cJSON_Delete(b);
}

static int count_named(const cJSON *o, const char *name)
{
	int n = 0;
	const cJSON *f;
	cJSON_ArrayForEach(f, o) n += f->string && strcmp(f->string, name) == 0;
	return n;
}

/* Lookup and replacement are both case-sensitive: "Status" is another member, not the one
 * to replace (before: found case-insensitively, not replaced, the copy leaked). */
static void merge_is_case_sensitive(void **state)
{
	cJSON *rec = cJSON_Parse("{\"taskId\":\"t1\",\"Status\":\"pending\"}");
	cJSON *f = cJSON_Parse("{\"status\":\"completed\"}");
	metadata_merge(rec, f);
	assert_non_null(cJSON_GetObjectItemCaseSensitive(rec, "status"));
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(rec, "status")->valuestring,
			    "completed");
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(rec, "Status")->valuestring,
			    "pending");
	assert_int_equal(count_named(rec, "status"), 1);
	cJSON_Delete(f);
	cJSON_Delete(rec);
}

/* cJSON keeps duplicate keys of a parsed record; the merge leaves one of each name, in the
 * first one's place, and the fields' last duplicate wins. */
static void merge_leaves_one_member_per_name(void **state)
{
	cJSON *rec = cJSON_Parse("{\"status\":\"pending\",\"prompt\":\"p\",\"status\":\"x\","
				 "\"status\":\"y\"}");
	cJSON *f = cJSON_Parse("{\"status\":\"failed\",\"error\":\"a\",\"error\":\"b\"}");
	metadata_merge(rec, f);
	assert_int_equal(count_named(rec, "status"), 1);
	assert_int_equal(count_named(rec, "error"), 1);
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(rec, "status")->valuestring, "failed");
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(rec, "error")->valuestring, "b");
	assert_string_equal(rec->child->string, "status"); /* kept its place */
	assert_int_equal(cJSON_GetArraySize(rec), 3);
	cJSON_Delete(f);
	cJSON_Delete(rec);
}

/* KIE's clock against ours: an updateTime earlier than the record's createdAt is raised
 * to createdAt; a later one, or a record without a readable createdAt, is left alone. */
static void updated_at_never_before_created_at(void **state)
{
	struct kie_result ok = {.task_id = "t1", .state = KIE_TASK_SUCCESS, .success = 1,
				.update_time_ms = 1700000000000LL}; /* 2023-11-14T22:13:20.000Z */
	cJSON *fields = metadata_result_fields(&ok, 0);
	cJSON *rec = cJSON_Parse("{\"taskId\":\"t1\",\"createdAt\":\"2023-11-14T22:13:21.500Z\","
				 "\"updatedAt\":\"2023-11-14T22:13:21.500Z\"}");
	metadata_merge(rec, fields);
	assert_string_equal(cJSON_GetObjectItem(rec, "updatedAt")->valuestring,
			    "2023-11-14T22:13:21.500Z");
	cJSON_Delete(rec);

	/* a createdAt with an offset and no fraction: 23:13:21+01:00 is 22:13:21Z */
	rec = cJSON_Parse("{\"createdAt\":\"2023-11-14T23:13:21+01:00\"}");
	metadata_merge(rec, fields);
	assert_string_equal(cJSON_GetObjectItem(rec, "updatedAt")->valuestring,
			    "2023-11-14T22:13:21.000Z");
	cJSON_Delete(rec);

	/* later than createdAt: kept */
	rec = cJSON_Parse("{\"createdAt\":\"2023-11-14T22:13:19.999Z\"}");
	metadata_merge(rec, fields);
	assert_string_equal(cJSON_GetObjectItem(rec, "updatedAt")->valuestring,
			    "2023-11-14T22:13:20.000Z");
	cJSON_Delete(rec);

	/* unreadable createdAt values: nothing to clamp to */
	const char *odd[] = {"{\"createdAt\":\"yesterday\"}", "{\"createdAt\":12}",
			     "{\"createdAt\":\"2023-13-40T99:00:00Z\"}",
			     "{\"createdAt\":\"2030-01-01T00:00:00.000Zjunk\"}", "{}"};
	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
		rec = cJSON_Parse(odd[i]);
		metadata_merge(rec, fields);
		assert_string_equal(cJSON_GetObjectItem(rec, "updatedAt")->valuestring,
				    "2023-11-14T22:13:20.000Z");
		cJSON_Delete(rec);
	}

	/* a leap day, a date before 1970 and far ahead */
	rec = cJSON_Parse("{\"createdAt\":\"2024-02-29T12:00:00.25Z\"}");
	metadata_merge(rec, fields);
	assert_string_equal(cJSON_GetObjectItem(rec, "updatedAt")->valuestring,
			    "2024-02-29T12:00:00.250Z");
	cJSON_Delete(rec);
	rec = cJSON_Parse("{\"createdAt\":\"1969-12-31T23:59:59.000Z\"}");
	metadata_merge(rec, fields);
	assert_string_equal(cJSON_GetObjectItem(rec, "updatedAt")->valuestring,
			    "2023-11-14T22:13:20.000Z");
	cJSON_Delete(rec);
	cJSON_Delete(fields);
}

static void task_id_safety(void **state)
{
	char err[256], name[METADATA_KEY_NAME_MAX], big[600];
	assert_int_equal(metadata_task_key("task_google_1765178615729", name, err, sizeof(err)), 0);
	assert_string_equal(name, "task_google_1765178615729");
	/* any id KIE returns gets a name that is safe as a file name and an object key */
	assert_int_equal(metadata_task_key("../x", name, err, sizeof(err)), 0);
	assert_string_equal(name, "~%2E%2E%2Fx");
	assert_int_equal(metadata_task_key("a/b", name, err, sizeof(err)), 0);
	assert_string_equal(name, "~a%2Fb");
	assert_int_equal(metadata_task_key("..", name, err, sizeof(err)), 0);
	assert_string_equal(name, "~%2E%2E");
	assert_int_equal(metadata_task_key("~x", name, err, sizeof(err)), 0);
	assert_string_equal(name, "~%7Ex"); /* never equal to a plain id's name */
	memset(big, 'a', 300);
	big[300] = '\0';
	assert_int_equal(metadata_task_key(big, name, err, sizeof(err)), 0);
	assert_int_equal(strncmp(name, "~h-", 3), 0);
	assert_int_equal(strlen(name), 3 + 64);
	memset(big, '/', 100); /* 300 encoded bytes: hashed */
	big[100] = '\0';
	assert_int_equal(metadata_task_key(big, name, err, sizeof(err)), 0);
	assert_int_equal(strncmp(name, "~h-", 3), 0);
	assert_int_equal(metadata_task_key("", name, err, sizeof(err)), -1);
}

/* A pending record made before createTask answered, then completed at finalization:
 * every field it had is kept, taskId and a missing jobId filled in. */
static void pending_template_and_complete(void **state)
{
	(void)state;
	struct task_metadata m = {.job_id = "j1", .type = "raw", .model = "m", .prompt = "p",
				  .image_urls = imgs, .n_images = 1, .ratio = "1:1",
				  .output_format = "jpeg"};
	cJSON *tmpl = metadata_pending(&m, 0), *rec;
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(tmpl, "taskId")));
	assert_string_equal(cJSON_GetObjectItem(tmpl, "outputFormat")->valuestring, "jpeg");
	/* the store had nothing: rebuilt from the template */
	rec = cJSON_CreateObject();
	metadata_complete(rec, tmpl, "t9", "j1");
	assert_string_equal(cJSON_GetObjectItem(rec, "taskId")->valuestring, "t9");
	assert_string_equal(cJSON_GetObjectItem(rec, "prompt")->valuestring, "p");
	assert_string_equal(cJSON_GetObjectItem(rec, "type")->valuestring, "raw");
	assert_string_equal(rec->child->string, "taskId"); /* in the template's order */
	cJSON_Delete(rec);
	/* a stored record keeps its own values and gains the fields it lacked */
	rec = cJSON_Parse("{\"taskId\":\"t9\",\"jobId\":null,\"status\":\"completed\","
			  "\"prompt\":\"stored\"}");
	metadata_complete(rec, tmpl, "t9", "j1");
	assert_string_equal(cJSON_GetObjectItem(rec, "status")->valuestring, "completed");
	assert_string_equal(cJSON_GetObjectItem(rec, "prompt")->valuestring, "stored");
	assert_string_equal(cJSON_GetObjectItem(rec, "model")->valuestring, "m");
	assert_string_equal(cJSON_GetObjectItem(rec, "jobId")->valuestring, "j1");
	cJSON_Delete(rec);
	/* no template: just the ids */
	rec = cJSON_CreateObject();
	metadata_complete(rec, NULL, "t8", "");
	assert_string_equal(cJSON_GetObjectItem(rec, "taskId")->valuestring, "t8");
	assert_null(cJSON_GetObjectItem(rec, "jobId"));
	cJSON_Delete(rec);
	cJSON_Delete(tmpl);
}

static void fs_store_end_to_end(void **state)
{
	char dir[] = "/tmp/kie-meta-XXXXXX", err[512], sub[300];
	struct config c;
	assert_non_null(mkdtemp(dir));
	config_defaults(&c);
	config_set(&c, "KIE_METADATA_DIR", dir, err, sizeof(err));
	config_set(&c, "KIE_METADATA_STORE", "fs", err, sizeof(err));
	struct metadata_store *s = metadata_store_open(&c, err, sizeof(err));
	assert_non_null(s);
	assert_string_equal(metadata_store_kind(s), "fs");
	struct task_metadata m = {.task_id = "t_fs", .job_id = "j", .type = "raw", .model = "m",
				  .prompt = "红色", .image_urls = imgs, .n_images = 1, .ratio = "1:1"};
	assert_int_equal(metadata_store_save_pending(s, &m, err, sizeof(err)), 0);
	cJSON *got = NULL;
	assert_int_equal(metadata_store_get(s, "t_fs", &got, err, sizeof(err)), 0);
	assert_string_equal(cJSON_GetObjectItem(got, "prompt")->valuestring, "红色");
	cJSON_Delete(got);
	cJSON *f = cJSON_Parse("{\"status\":\"completed\",\"resultUrls\":[\"https://r/x.png\"]}");
	assert_int_equal(metadata_store_update(s, "t_fs", f, err, sizeof(err)), 0);
	assert_int_equal(metadata_store_get(s, "t_fs", &got, err, sizeof(err)), 0);
	assert_string_equal(cJSON_GetObjectItem(got, "status")->valuestring, "completed");
	assert_string_equal(cJSON_GetObjectItem(got, "prompt")->valuestring, "红色"); /* kept */
	cJSON_Delete(got);
	assert_int_equal(metadata_store_get(s, "missing", &got, err, sizeof(err)), 1);
	/* update of a missing record creates it with the task id */
	assert_int_equal(metadata_store_update(s, "t_new", f, err, sizeof(err)), 0);
	assert_int_equal(metadata_store_get(s, "t_new", &got, err, sizeof(err)), 0);
	assert_string_equal(cJSON_GetObjectItem(got, "taskId")->valuestring, "t_new");
	cJSON_Delete(got);
	/* a task id unsafe as a file name is stored under its encoded name, inside the dir */
	assert_int_equal(metadata_store_put(s, "../evil", f, err, sizeof(err)), 0);
	assert_int_equal(metadata_store_get(s, "../evil", &got, err, sizeof(err)), 0);
	cJSON_Delete(got);
	snprintf(sub, sizeof(sub), "%s/kie-tasks/~%%2E%%2E%%2Fevil.json", dir);
	assert_int_equal(access(sub, F_OK), 0);
	/* create-if-absent: a record already there (a final one) is left as it is */
	assert_int_equal(metadata_store_put_new(s, "t_fs", f, err, sizeof(err)), 1);
	assert_int_equal(metadata_store_get(s, "t_fs", &got, err, sizeof(err)), 0);
	assert_string_equal(cJSON_GetObjectItem(got, "prompt")->valuestring, "红色");
	cJSON_Delete(got);
	assert_int_equal(metadata_store_put_new(s, "t_new2", f, err, sizeof(err)), 0);
	assert_int_equal(metadata_store_get(s, "t_new2", &got, err, sizeof(err)), 0);
	assert_string_equal(cJSON_GetObjectItem(got, "status")->valuestring, "completed");
	cJSON_Delete(got);
	cJSON_Delete(f);
	/* atomic writes leave no temporary files */
	snprintf(sub, sizeof(sub), "%s/kie-tasks", dir);
	DIR *d = opendir(sub);
	struct dirent *e;
	int files = 0;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		assert_null(strstr(e->d_name, ".tmp"));
		files++;
		char p[600];
		snprintf(p, sizeof(p), "%s/%s", sub, e->d_name);
		unlink(p);
	}
	closedir(d);
	assert_int_equal(files, 4);
	rmdir(sub);
	rmdir(dir);
	metadata_store_free(s);
	config_free(&c);
}

static void r2_store_needs_its_variables(void **state)
{
	struct config c;
	char err[512];
	config_defaults(&c);
	config_set(&c, "KIE_METADATA_STORE", "r2", err, sizeof(err));
	assert_null(metadata_store_open(&c, err, sizeof(err)));
	assert_non_null(strstr(err, "R2_ACCESS_KEY_ID is not set"));
	config_set(&c, "R2_ACCESS_KEY_ID", "a", err, sizeof(err));
	config_set(&c, "R2_SECRET_ACCESS_KEY", "s", err, sizeof(err));
	config_set(&c, "R2_BUCKET_NAME", "b", err, sizeof(err));
	assert_null(metadata_store_open(&c, err, sizeof(err)));
	assert_non_null(strstr(err, "R2_ACCOUNT_ID"));
	config_set(&c, "R2_ACCOUNT_ID", "acc", err, sizeof(err));
	struct metadata_store *s = metadata_store_open(&c, err, sizeof(err));
	assert_non_null(s);
	assert_string_equal(metadata_store_kind(s), "r2");
	metadata_store_free(s);
	config_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(pending_has_the_seed_fields),
		cmocka_unit_test(result_fields_and_merge),
		cmocka_unit_test(merge_is_case_sensitive),
		cmocka_unit_test(merge_leaves_one_member_per_name),
		cmocka_unit_test(updated_at_never_before_created_at),
		cmocka_unit_test(task_id_safety),
		cmocka_unit_test(pending_template_and_complete),
		cmocka_unit_test(fs_store_end_to_end),
		cmocka_unit_test(r2_store_needs_its_variables),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
