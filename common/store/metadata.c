/* metadata.c — KIETaskMetadata JSON and its two stores behind one interface. */
#include "store/metadata.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/crypto.h"
#include "core/util.h"
#include "store/s3.h"

const char *meta_status_str(enum meta_status s)
{
	switch (s) {
	case META_PENDING: return "pending";
	case META_COMPLETED: return "completed";
	case META_FAILED: return "failed";
	}
	return "?";
}

static void add_iso(cJSON *o, const char *name, int64_t ms)
{
	char ts[UTIL_ISO8601_SIZE];
	util_iso8601(ms, ts);
	cJSON_AddStringToObject(o, name, ts);
}

static void add_str_or_null(cJSON *o, const char *name, const char *v)
{
	if (v)
		cJSON_AddStringToObject(o, name, v);
	else
		cJSON_AddNullToObject(o, name);
}

cJSON *metadata_pending(const struct task_metadata *m, int64_t now_ms)
{
	cJSON *o = cJSON_CreateObject(), *imgs;

	add_str_or_null(o, "taskId", m->task_id);
	add_str_or_null(o, "jobId", m->job_id);
	add_str_or_null(o, "type", m->type);
	add_str_or_null(o, "model", m->model);
	add_str_or_null(o, "prompt", m->prompt);
	imgs = cJSON_AddArrayToObject(o, "imageUrls");
	for (size_t i = 0; i < m->n_images; i++)
		cJSON_AddItemToArray(imgs, cJSON_CreateString(m->image_urls[i]));
	if (m->character)
		cJSON_AddStringToObject(o, "character", m->character);
	add_str_or_null(o, "ratio", m->ratio);
	if (m->output_format)
		cJSON_AddStringToObject(o, "outputFormat", m->output_format);
	cJSON_AddStringToObject(o, "status", meta_status_str(META_PENDING));
	cJSON_AddArrayToObject(o, "resultUrls");
	cJSON_AddNullToObject(o, "error");
	cJSON_AddNullToObject(o, "consumeCredits");
	cJSON_AddNullToObject(o, "costTime");
	add_iso(o, "createdAt", now_ms);
	add_iso(o, "updatedAt", now_ms);
	return o;
}

cJSON *metadata_result_fields(const struct kie_result *r, int64_t now_ms)
{
	cJSON *o = cJSON_CreateObject(), *urls;

	cJSON_AddStringToObject(o, "status",
				meta_status_str(r->success ? META_COMPLETED : META_FAILED));
	urls = cJSON_AddArrayToObject(o, "resultUrls");
	for (size_t i = 0; i < r->n_results; i++)
		cJSON_AddItemToArray(urls, cJSON_CreateString(r->result_urls[i]));
	add_str_or_null(o, "error", r->success ? NULL : r->error);
	if (r->has_credits)
		cJSON_AddNumberToObject(o, "consumeCredits", r->credits);
	else
		cJSON_AddNullToObject(o, "consumeCredits");
	if (r->has_cost_time)
		cJSON_AddNumberToObject(o, "costTime", r->cost_time_ms);
	else
		cJSON_AddNullToObject(o, "costTime");
	add_iso(o, "updatedAt", r->update_time_ms ? r->update_time_ms : now_ms);
	return o;
}

/* Keeps updatedAt >= createdAt when both parse (see the header). */
static void clamp_updated_at(cJSON *record)
{
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(record, "createdAt");
	const cJSON *u = cJSON_GetObjectItemCaseSensitive(record, "updatedAt");
	int64_t created, updated;

	if (!cJSON_IsString(c) || !cJSON_IsString(u) ||
	    util_parse_iso8601(c->valuestring, &created) ||
	    util_parse_iso8601(u->valuestring, &updated) || updated >= created)
		return;
	char ts[UTIL_ISO8601_SIZE];
	util_iso8601(created, ts);
	cJSON_ReplaceItemInObjectCaseSensitive(record, "updatedAt", cJSON_CreateString(ts));
}

void metadata_merge(cJSON *record, const cJSON *fields)
{
	const cJSON *f;
	cJSON_ArrayForEach(f, fields) {
		if (!f->string)
			continue;
		cJSON *copy = cJSON_Duplicate(f, 1);
		cJSON *old = cJSON_GetObjectItemCaseSensitive(record, f->string);
		if (!copy)
			continue;
		if (!old) {
			cJSON_AddItemToObject(record, f->string, copy);
			continue;
		}
		/* in the first one's place; a parsed record may hold more of the same name */
		cJSON_ReplaceItemViaPointer(record, old, copy);
		for (cJSON *next, *m = copy->next; m; m = next) {
			next = m->next;
			if (m->string && strcmp(m->string, f->string) == 0)
				cJSON_Delete(cJSON_DetachItemViaPointer(record, m));
		}
	}
	clamp_updated_at(record);
}

void metadata_complete(cJSON *record, const cJSON *base, const char *task_id,
		       const char *job_id)
{
	const cJSON *f, *jid;

	cJSON_ArrayForEach(f, base) {
		if (f->string && !cJSON_GetObjectItemCaseSensitive(record, f->string))
			cJSON_AddItemToObject(record, f->string, cJSON_Duplicate(f, 1));
	}
	if (cJSON_GetObjectItemCaseSensitive(record, "taskId"))
		cJSON_ReplaceItemInObjectCaseSensitive(record, "taskId",
						       cJSON_CreateString(task_id));
	else
		cJSON_AddStringToObject(record, "taskId", task_id);
	jid = cJSON_GetObjectItemCaseSensitive(record, "jobId");
	if (job_id && *job_id && !cJSON_IsString(jid)) {
		if (jid)
			cJSON_ReplaceItemInObjectCaseSensitive(record, "jobId",
							       cJSON_CreateString(job_id));
		else
			cJSON_AddStringToObject(record, "jobId", job_id);
	}
}

int metadata_task_key(const char *id, char out[METADATA_KEY_NAME_MAX], char *err, size_t errlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = id ? strlen(id) : 0, k = 0;
	int safe = n > 0 && n <= 200 && strcmp(id, ".") != 0 && strcmp(id, "..") != 0 &&
		   id[0] != '~';

	if (n == 0) {
		snprintf(err, errlen, "task id is empty");
		return -1;
	}
	for (const char *p = id; safe && *p; p++) {
		char c = *p;
		safe = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		       c == '-' || c == '_' || c == '.' || c == ':';
	}
	if (safe) {
		memcpy(out, id, n + 1);
		return 0;
	}
	/* "~" and percent-encoding: never a safe id (those cannot start with "~") */
	out[k++] = '~';
	for (const unsigned char *p = (const unsigned char *)id; *p && k + 3 < 200; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    *p == '-' || *p == '_') {
			out[k++] = (char)*p;
		} else {
			out[k++] = '%';
			out[k++] = hex[*p >> 4];
			out[k++] = hex[*p & 15];
		}
		if (!p[1]) {
			out[k] = '\0';
			return 0;
		}
	}
	/* too long even so: "~h-" and the SHA-256 of the id */
	{
		char h[65];
		crypto_sha256_hex(id, n, h);
		snprintf(out, METADATA_KEY_NAME_MAX, "~h-%s", h);
	}
	return 0;
}

/* ---- the stores ---- */

struct metadata_store {
	const char *kind;
	char *dir;             /* fs: <metadata_dir>/kie-tasks */
	char *root;            /* fs: <metadata_dir> */
	struct s3_client *s3;  /* r2 */
};

static int mkdir_p(const char *path, char *err, size_t errlen)
{
	char tmp[4096];
	util_strlcpy(tmp, path, sizeof(tmp));
	for (char *p = tmp + 1; *p; p++) {
		if (*p == '/') {
			*p = '\0';
			if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
				goto fail;
			*p = '/';
		}
	}
	if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
		goto fail;
	return 0;
fail:
	snprintf(err, errlen, "KIE_METADATA_DIR: cannot create %s: %s", tmp, strerror(errno));
	return -1;
}

struct metadata_store *metadata_store_open(const struct config *cfg, char *err, size_t errlen)
{
	struct metadata_store *s = util_xcalloc(1, sizeof(*s));
	const char *kind = config_metadata_store(cfg);

	if (strcmp(kind, "fs") == 0) {
		char path[4096];
		s->kind = "fs";
		snprintf(path, sizeof(path), "%s/%s", cfg->metadata_dir, METADATA_KEY_PREFIX);
		path[strlen(path) - 1] = '\0'; /* drop the trailing slash */
		if (mkdir_p(path, err, errlen) != 0) {
			free(s);
			return NULL;
		}
		s->dir = util_strdup(path);
		s->root = util_url_base(cfg->metadata_dir); /* without trailing slashes */
		return s;
	}

	/* r2 */
	static const char *const need[] = {"R2_ACCESS_KEY_ID", "R2_SECRET_ACCESS_KEY",
					   "R2_BUCKET_NAME"};
	for (size_t i = 0; i < 3; i++) {
		if (config_require(cfg, need[i], err, errlen) != 0) {
			free(s);
			return NULL;
		}
	}
	char endpoint[1024];
	if (*cfg->r2_endpoint) {
		util_strlcpy(endpoint, cfg->r2_endpoint, sizeof(endpoint));
	} else if (*cfg->r2_account_id) {
		s3_r2_endpoint(cfg->r2_account_id, endpoint, sizeof(endpoint));
	} else {
		snprintf(err, errlen, "R2_ACCOUNT_ID is not set (or set R2_ENDPOINT): the r2 "
			 "metadata store needs an endpoint");
		free(s);
		return NULL;
	}
	struct s3_opts o = {
		.endpoint = endpoint,
		.bucket = cfg->r2_bucket_name,
		.access_key = cfg->r2_access_key_id,
		.secret_key = cfg->r2_secret_access_key,
		.region = "auto",
		.user_agent = cfg->kie_user_agent,
		.connect_timeout_ms = cfg->connect_timeout_ms,
		.timeout_ms = cfg->http_timeout_ms,
	};
	s->kind = "r2";
	s->s3 = s3_client_new(&o);
	if (!s->s3) {
		snprintf(err, errlen, "r2 store: cannot create an HTTP handle");
		free(s);
		return NULL;
	}
	return s;
}

void metadata_store_free(struct metadata_store *s)
{
	if (!s)
		return;
	free(s->dir);
	free(s->root);
	s3_client_free(s->s3);
	free(s);
}

const char *metadata_store_kind(const struct metadata_store *s)
{
	return s->kind;
}

/* Writes path atomically: a temporary file in the same directory, fsync, then rename
 * (replace) or, with only_new, link(2) — which fails with EEXIST rather than replace a
 * file already there (returns 1 then). */
static int fs_write(const char *path, const char *data, size_t len, int only_new, char *err,
		    size_t errlen)
{
	char tmp[4200], rnd[17];
	int fd;
	size_t off = 0;

	crypto_random_hex(8, rnd, sizeof(rnd));
	snprintf(tmp, sizeof(tmp), "%s.tmp.%s", path, rnd);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
		return -1;
	}
	while (off < len) {
		ssize_t n = write(fd, data + off, len - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
			goto fail;
		}
		off += (size_t)n;
	}
	if (fsync(fd) != 0) {
		snprintf(err, errlen, "cannot fsync %s: %s", tmp, strerror(errno));
		goto fail;
	}
	close(fd);
	if (only_new) {
		int rc = 0;
		if (link(tmp, path) != 0) {
			rc = errno == EEXIST ? 1 : -1;
			if (rc < 0)
				snprintf(err, errlen, "cannot link %s to %s: %s", tmp, path,
					 strerror(errno));
		}
		unlink(tmp);
		return rc;
	}
	if (rename(tmp, path) != 0) {
		snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
fail:
	close(fd);
	unlink(tmp);
	return -1;
}

static int store_put(struct metadata_store *s, const char *task_id, const cJSON *record,
		     int only_new, char *err, size_t errlen)
{
	char *json;
	int rc;

	char name[METADATA_KEY_NAME_MAX];

	if (metadata_task_key(task_id, name, err, errlen) != 0)
		return -1;
	json = cJSON_Print(record);
	if (!json) {
		snprintf(err, errlen, "cannot serialize the record of task %s", task_id);
		return -1;
	}
	if (s->s3) {
		char key[512];
		snprintf(key, sizeof(key), METADATA_KEY_PREFIX "%s.json", name);
		rc = only_new ? s3_put_new(s->s3, key, json, strlen(json), "application/json", err,
					   errlen)
			      : s3_put(s->s3, key, json, strlen(json), "application/json", err, errlen);
	} else {
		char path[4200];
		snprintf(path, sizeof(path), "%s/%s.json", s->dir, name);
		rc = fs_write(path, json, strlen(json), only_new, err, errlen);
	}
	free(json);
	return rc;
}

int metadata_store_put(struct metadata_store *s, const char *task_id, const cJSON *record,
		       char *err, size_t errlen)
{
	return store_put(s, task_id, record, 0, err, errlen);
}

int metadata_store_put_new(struct metadata_store *s, const char *task_id,
			   const cJSON *record, char *err, size_t errlen)
{
	return store_put(s, task_id, record, 1, err, errlen);
}

int metadata_store_get(struct metadata_store *s, const char *task_id, cJSON **out, char *err,
		       size_t errlen)
{
	struct dbuf b;
	int rc;

	char name[METADATA_KEY_NAME_MAX];

	*out = NULL;
	if (metadata_task_key(task_id, name, err, errlen) != 0)
		return -1;
	if (s->s3) {
		char key[512];
		snprintf(key, sizeof(key), METADATA_KEY_PREFIX "%s.json", name);
		rc = s3_get(s->s3, key, &b, METADATA_MAX_BYTES, err, errlen);
		if (rc != 0) {
			dbuf_free(&b);
			return rc;
		}
	} else {
		char path[4200], chunk[8192];
		size_t n;
		FILE *f;
		snprintf(path, sizeof(path), "%s/%s.json", s->dir, name);
		f = fopen(path, "rb");
		if (!f) {
			if (errno == ENOENT)
				return 1;
			snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
			return -1;
		}
		dbuf_init(&b, METADATA_MAX_BYTES);
		while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
			if (dbuf_add(&b, chunk, n) != 0) {
				snprintf(err, errlen, "%s is larger than %d bytes", path,
					 METADATA_MAX_BYTES);
				fclose(f);
				dbuf_free(&b);
				return -1;
			}
		}
		fclose(f);
	}
	*out = cJSON_ParseWithLength(b.data ? b.data : "", b.len);
	dbuf_free(&b);
	if (!cJSON_IsObject(*out)) {
		cJSON_Delete(*out);
		*out = NULL;
		snprintf(err, errlen, "the stored record of task %s is not a JSON object", task_id);
		return -1;
	}
	return 0;
}

int metadata_store_save_pending(struct metadata_store *s, const struct task_metadata *m,
				char *err, size_t errlen)
{
	cJSON *rec = metadata_pending(m, util_now_ms());
	int rc = metadata_store_put(s, m->task_id, rec, err, errlen);
	cJSON_Delete(rec);
	return rc;
}

int metadata_store_update(struct metadata_store *s, const char *task_id, const cJSON *fields,
			  char *err, size_t errlen)
{
	cJSON *rec = NULL;
	int rc = metadata_store_get(s, task_id, &rec, err, errlen);

	if (rc < 0)
		return -1;
	if (rc == 1) {
		rec = cJSON_CreateObject();
		cJSON_AddStringToObject(rec, "taskId", task_id);
	}
	metadata_merge(rec, fields);
	rc = metadata_store_put(s, task_id, rec, err, errlen);
	cJSON_Delete(rec);
	return rc;
}

int metadata_store_check(struct metadata_store *s, char *err, size_t errlen)
{
	if (s->dir) {
		if (access(s->dir, W_OK | X_OK) != 0) {
			snprintf(err, errlen, "metadata directory %s is not writable: %s", s->dir,
				 strerror(errno));
			return -1;
		}
		return 0;
	}
	return s3_head_bucket(s->s3, err, errlen);
}

/* 1 when key is a relative path of the shape metadata.h promises (nothing escapes the
 * store's root). */
static int object_key_ok(const char *key)
{
	const char *seg = key;
	size_t n = strlen(key);

	if (n == 0 || n > 1024 || key[0] == '/')
		return 0;
	for (const char *p = key;; p++) {
		if (*p == '/' || *p == '\0') {
			size_t len = (size_t)(p - seg);
			if (len == 0 || (len == 1 && seg[0] == '.') ||
			    (len == 2 && seg[0] == '.' && seg[1] == '.'))
				return 0;
			if (!*p)
				return 1;
			seg = p + 1;
			continue;
		}
		char c = *p;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.' || c == ':' || c == '~' || c == '%'))
			return 0;
	}
}

void metadata_store_object_url(const struct metadata_store *s, const char *key, char *out,
			       size_t outlen)
{
	if (s->s3)
		s3_object_url(s->s3, key, out, outlen);
	else
		snprintf(out, outlen, "%s/%s", s->root, key);
}

int metadata_store_put_object(struct metadata_store *s, const char *key, const void *data,
			      size_t len, const char *content_type, char *err, size_t errlen)
{
	char path[4200], *slash;

	if (!object_key_ok(key)) {
		snprintf(err, errlen, "object key %.200s is not a plain relative path", key);
		return -1;
	}
	if (s->s3)
		return s3_put(s->s3, key, data, len, content_type, err, errlen);
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", s->root, key) >= sizeof(path)) {
		snprintf(err, errlen, "KIE_METADATA_DIR plus the object key %.100s is over %zu "
			 "bytes: use a shorter directory", key, sizeof(path) - 1);
		return -1;
	}
	slash = strrchr(path, '/');
	*slash = '\0';
	if (mkdir_p(path, err, errlen) != 0)
		return -1;
	*slash = '/';
	return fs_write(path, data, len, 0, err, errlen);
}
