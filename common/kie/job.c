/* job.c — strict parsing of job descriptors: every error names the field at fault. */
#include "kie/job.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#include "core/crypto.h"
#include "core/json_strict.h"
#include "core/util.h"
#include "kie/accounts.h"
#include "net/netaddr.h"

static const char *const type_names[] = {"generate_image", "model_pose", "extract_clothing",
					 "outfit_change_v2", "raw"};

const char *const *job_type_names(int *n)
{
	*n = (int)(sizeof(type_names) / sizeof(type_names[0]));
	return type_names;
}

const char *job_type_str(enum job_type t)
{
	return (unsigned)t <= JOB_RAW ? type_names[t] : "?";
}

int job_type_parse(const char *s, enum job_type *out)
{
	for (int i = 0; i <= JOB_RAW; i++) {
		if (strcmp(s, type_names[i]) == 0) {
			*out = (enum job_type)i;
			return 0;
		}
	}
	return -1;
}

int job_id_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > JOB_ID_MAX)
		return 0;
	for (; *s; s++) {
		char c = *s;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.' || c == ':'))
			return 0;
	}
	return 1;
}

int job_group_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > JOB_GROUP_MAX)
		return 0;
	for (; *s; s++) {
		char c = *s;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.' || c == ':' || c == '@'))
			return 0;
	}
	return 1;
}

void job_free(struct job *j)
{
	if (!j)
		return;
	free(j->id);
	free(j->group);
	free(j->account);
	free(j->description);
	free(j->pose);
	free(j->prompt);
	free(j->model);
	for (size_t i = 0; i < j->n_images; i++)
		free(j->image_urls[i]);
	free(j->image_urls);
	free(j->ratio);
	free(j->output_format);
	free(j->character);
	free(j->callback_url);
	free(j->callback_final);
	free(j->reply_to);
	free(j->meta_raw);
	free(j->model_used);
	free(j);
}

/* A producer's string as a reason may quote it: at most 64 bytes cut at a character
 * boundary, control characters shown as '?' (a reason goes into logs and events). */
static const char *shown(const char *s, char *buf, size_t n)
{
	util_strlcpy(buf, s, n < 65 ? n : 65);
	util_utf8_cut(buf, 64);
	util_utf8_sanitize(buf);
	for (char *p = buf; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return buf;
}

/* Field readers: 0 ok (absent is ok unless required), -1 error with err filled. */
static int get_str(const cJSON *o, const char *where, const char *name, int required,
		   size_t max_len, char **out, char *err, size_t errlen)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);
	if (!it || cJSON_IsNull(it)) {
		if (required) {
			snprintf(err, errlen, "%s%s is missing", where, name);
			return -1;
		}
		return 0;
	}
	if (!cJSON_IsString(it)) {
		snprintf(err, errlen, "%s%s must be a string", where, name);
		return -1;
	}
	if (required && !it->valuestring[0]) {
		snprintf(err, errlen, "%s%s is empty", where, name);
		return -1;
	}
	if (max_len && strlen(it->valuestring) > max_len) {
		snprintf(err, errlen, "%s%s is longer than %zu bytes", where, name, max_len);
		return -1;
	}
	*out = util_strdup(it->valuestring);
	return 0;
}

static int get_bool(const cJSON *o, const char *where, const char *name, int *out, char *err,
		    size_t errlen)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);
	if (!it || cJSON_IsNull(it))
		return 0;
	if (!cJSON_IsBool(it)) {
		snprintf(err, errlen, "%s%s must be true or false", where, name);
		return -1;
	}
	*out = cJSON_IsTrue(it);
	return 0;
}

static int get_int(const cJSON *o, const char *where, const char *name, long min, long max,
		   long *out, int *present, char *err, size_t errlen)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);
	if (!it || cJSON_IsNull(it))
		return 0;
	if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) ||
	    it->valuedouble < (double)min || it->valuedouble > (double)max) {
		snprintf(err, errlen, "%s%s must be a whole number from %ld to %ld", where, name,
			 min, max);
		return -1;
	}
	*out = (long)it->valuedouble;
	if (present)
		*present = 1;
	return 0;
}

static void add_image(struct job *j, const char *url)
{
	j->image_urls = realloc(j->image_urls, (j->n_images + 1) * sizeof(char *));
	if (!j->image_urls)
		abort();
	j->image_urls[j->n_images++] = util_strdup(url);
}

/* imageUrl (one string) or imageUrls (array of strings); not both. */
static int get_images(const cJSON *in, struct job *j, char *err, size_t errlen)
{
	const cJSON *one = cJSON_GetObjectItemCaseSensitive(in, "imageUrl");
	const cJSON *many = cJSON_GetObjectItemCaseSensitive(in, "imageUrls");
	const cJSON *u;

	if (one && many) {
		snprintf(err, errlen, "input: give imageUrl or imageUrls, not both");
		return -1;
	}
	if (one) {
		if (!cJSON_IsString(one)) {
			snprintf(err, errlen, "input.imageUrl must be a string");
			return -1;
		}
		add_image(j, one->valuestring);
	} else if (many) {
		if (!cJSON_IsArray(many)) {
			snprintf(err, errlen, "input.imageUrls must be an array of strings");
			return -1;
		}
		if (cJSON_GetArraySize(many) > KIE_MAX_IMAGES) {
			snprintf(err, errlen, "input.imageUrls has %d URLs; KIE accepts at most %d",
				 cJSON_GetArraySize(many), KIE_MAX_IMAGES);
			return -1;
		}
		cJSON_ArrayForEach(u, many) {
			if (!cJSON_IsString(u)) {
				snprintf(err, errlen, "input.imageUrls must be an array of strings");
				return -1;
			}
			add_image(j, u->valuestring);
		}
	}
	return 0;
}

static int check_fields(const cJSON *o, const char *where, const char *const *allowed,
			char *err, size_t errlen)
{
	const cJSON *f;
	cJSON_ArrayForEach(f, o) {
		int ok = 0;
		for (const char *const *a = allowed; *a; a++)
			ok |= strcmp(*a, f->string) == 0;
		if (!ok) {
			char b[72];
			snprintf(err, errlen, "%sunknown field \"%s\"", where,
				 shown(f->string, b, sizeof(b)));
			return -1;
		}
	}
	return 0;
}

static const char *const top_fields[] = {"v", "id", "type", "input", "ratio", "outputFormat",
					 "character", "callbackUrl", "replyTo", "maxAttempts",
					 "meta", "priority", "group", "notBefore", "account",
					 NULL};
static const char *const input_fields[][8] = {
	[JOB_GENERATE_IMAGE] = {"description", "imageUrl", "imageUrls", "extractTopOnly",
				"wearMask", NULL},
	[JOB_MODEL_POSE] = {"pose", "imageUrl", "imageUrls", NULL},
	[JOB_EXTRACT_CLOTHING] = {"imageUrl", "imageUrls", "recommendMatches", "topOnly", NULL},
	[JOB_OUTFIT_CHANGE_V2] = {"clothingImageUrl", "modelImageUrl", "poseTweak", "seed", NULL},
	[JOB_RAW] = {"prompt", "imageUrl", "imageUrls", "model", NULL},
};

static int parse_input(const cJSON *in, struct job *j, char *err, size_t errlen)
{
	const char *w = "input.";
	long seed = 0;

	if (check_fields(in, w, input_fields[j->type], err, errlen))
		return -1;
	switch (j->type) {
	case JOB_GENERATE_IMAGE:
		if (get_str(in, w, "description", 1, 0, &j->description, err, errlen) ||
		    get_images(in, j, err, errlen) ||
		    get_bool(in, w, "extractTopOnly", &j->extract_top_only, err, errlen) ||
		    get_bool(in, w, "wearMask", &j->wear_mask, err, errlen))
			return -1;
		break;
	case JOB_MODEL_POSE:
		if (get_str(in, w, "pose", 0, 0, &j->pose, err, errlen) ||
		    get_images(in, j, err, errlen))
			return -1;
		break;
	case JOB_EXTRACT_CLOTHING:
		if (get_images(in, j, err, errlen) ||
		    get_bool(in, w, "recommendMatches", &j->recommend_matches, err, errlen) ||
		    get_bool(in, w, "topOnly", &j->top_only, err, errlen))
			return -1;
		break;
	case JOB_OUTFIT_CHANGE_V2: {
		char *clothing = NULL, *model = NULL;
		if (get_str(in, w, "clothingImageUrl", 1, 0, &clothing, err, errlen) ||
		    get_str(in, w, "modelImageUrl", 1, 0, &model, err, errlen) ||
		    get_bool(in, w, "poseTweak", &j->pose_tweak, err, errlen) ||
		    get_int(in, w, "seed", 0, 2147483647L, &seed, &j->has_seed, err, errlen)) {
			free(clothing);
			free(model);
			return -1;
		}
		add_image(j, clothing); /* order matters: the prompt says clothing first */
		add_image(j, model);
		free(clothing);
		free(model);
		j->seed = (unsigned long)seed;
		break;
	}
	case JOB_RAW:
		if (get_str(in, w, "prompt", 1, 0, &j->prompt, err, errlen) ||
		    get_str(in, w, "model", 0, 200, &j->model, err, errlen) ||
		    get_images(in, j, err, errlen))
			return -1;
		break;
	}
	if (j->type != JOB_RAW && j->n_images == 0) {
		snprintf(err, errlen, "input.imageUrl (or imageUrls) is missing: %s needs a "
			 "reference image", job_type_str(j->type));
		return -1;
	}
	return 0;
}

/* 1 when bytes start with the id job_splice_id() writes: '{"id":"job_' + 24 hex + '"'. */
static int starts_with_spliced_id(const char *b, size_t len)
{
	static const char pre[] = "{\"id\":\"job_";
	size_t n = sizeof(pre) - 1;
	if (len < n + 25 || memcmp(b, pre, n) != 0 || b[n + 24] != '"')
		return 0;
	for (size_t i = n; i < n + 24; i++)
		if (!((b[i] >= '0' && b[i] <= '9') || (b[i] >= 'a' && b[i] <= 'f')))
			return 0;
	return 1;
}

char *job_splice_id(const char *bytes, size_t len, const char *id, size_t *new_len)
{
	size_t i = 0, k, idlen = strlen(id);
	char *out;
	int empty;

	while (i < len && (bytes[i] == ' ' || bytes[i] == '\t' || bytes[i] == '\n' ||
			   bytes[i] == '\r'))
		i++;
	if (i >= len || bytes[i] != '{')
		return NULL;
	for (k = i + 1; k < len && (bytes[k] == ' ' || bytes[k] == '\t' || bytes[k] == '\n' ||
				    bytes[k] == '\r'); k++)
		;
	empty = k < len && bytes[k] == '}';
	/* '{' first, so starts_with_spliced_id() recognizes it (leading blanks move after) */
	*new_len = len + idlen + 7 + (empty ? 0 : 1);
	out = util_xmalloc(*new_len + 1);
	k = (size_t)snprintf(out, *new_len + 1, "{\"id\":\"%s\"%s", id, empty ? "" : ",");
	memcpy(out + k, bytes, i);               /* leading blanks */
	memcpy(out + k + i, bytes + i + 1, len - i - 1);
	out[*new_len] = '\0';
	return out;
}

/* Appends jobId=<id> to a callback URL with libcurl's URL API: before any #fragment
 * (KIE drops fragments), percent-encoded, after an existing query. Returns 0 with *out a
 * new string, or -1 with err naming what (setting) is wrong. */
static int callback_with_job(const char *what, const char *base, const char *id, char **out,
			     char *err, size_t errlen)
{
	size_t n;
	char why[200];

	*out = NULL;
	if (strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0) {
		const char *colon = strstr(base, "://");
		char scheme[20], b[72];
		if (colon && colon - base < 16) {
			snprintf(scheme, sizeof(scheme), "%.*s", (int)(colon - base), base);
			snprintf(err, errlen, "%s has scheme \"%s\"; KIE posts callbacks to http(s) URLs "
				 "only", what, shown(scheme, b, sizeof(b)));
		} else {
			snprintf(err, errlen, "%s is not an http(s) URL", what);
		}
		return -1;
	}
	if (netaddr_url_host_check(base, why, sizeof(why)) != 0) {
		/* libcurl would decode "a%dd.example" into a byte no resolver takes: refused
		 * now, not after an attempt is counted */
		snprintf(err, errlen, "%s %s", what, why);
		return -1;
	}
	*out = kie_callback_url_with_job(base, id);
	if (!*out) {
		snprintf(err, errlen, "%s is not a URL", what);
		return -1;
	}
	n = strlen(*out);
	if (n > JOB_CALLBACK_URL_MAX) {
		snprintf(err, errlen, "%s is %zu bytes with jobId=%s added; KIE accepts at most %d",
			 what, n, id, JOB_CALLBACK_URL_MAX);
		free(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}

/* replyTo names a list of the application's: never one of the worker's own keys. */
static int check_reply_to(const char *reply_to, const char *prefix, char *err, size_t errlen)
{
	size_t n;

	if (!*reply_to) {
		snprintf(err, errlen, "replyTo is empty: give a Redis list key or leave it out");
		return -1;
	}
	if (!prefix)
		return 0;
	n = strlen(prefix);
	if (strncmp(reply_to, prefix, n) == 0 && reply_to[n] == ':' &&
	    strncmp(reply_to + n + 1, "replies:", 8) != 0) {
		char b[72];
		snprintf(err, errlen, "replyTo \"%s\" is one of the worker's own keys (under "
			 "\"%s:\"); use a key of your own, or one under \"%s:replies:\"",
			 shown(reply_to, b, sizeof(b)), prefix, prefix);
		return -1;
	}
	return 0;
}

struct job *job_parse(const char *bytes, size_t len, const struct job_parse_opts *o, char *err,
		      size_t errlen)
{
	static const char *const want[] = {"meta", NULL};
	struct json_strict_span spans[1];
	struct json_strict_opts so = {.max_depth = JSON_STRICT_DEPTH_MAX, .want = want,
				      .spans = spans};
	struct job *j = NULL;
	cJSON *root = NULL;
	const cJSON *it;
	char *type = NULL, why[400];
	long v = 0;
	int v_present = 0;

	if (len > o->max_bytes &&
	    !(len <= o->max_bytes + JOB_ID_SPLICE_BYTES && starts_with_spliced_id(bytes, len))) {
		snprintf(err, errlen, "descriptor is %zu bytes; the limit is %zu (KIE_JOB_MAX_BYTES)",
			 len, o->max_bytes);
		return NULL;
	}
	if (json_strict_check(bytes, len, &so, why, sizeof(why)) != 0) {
		snprintf(err, errlen, "descriptor is not strict JSON: %s", why);
		return NULL;
	}
	root = cJSON_ParseWithLength(bytes, len);
	if (!root) { /* strict JSON that cJSON cannot hold (out of memory) */
		snprintf(err, errlen, "descriptor could not be parsed (out of memory?)");
		return NULL;
	}
	if (!cJSON_IsObject(root)) {
		snprintf(err, errlen, "descriptor must be a JSON object");
		goto fail;
	}
	j = util_xcalloc(1, sizeof(*j));
	if (check_fields(root, "", top_fields, err, errlen))
		goto fail;
	if (get_int(root, "", "v", 1, 1000, &v, &v_present, err, errlen))
		goto fail;
	if (!v_present) {
		snprintf(err, errlen, "v is missing (the descriptor version; this worker reads v=1)");
		goto fail;
	}
	if (v != JOB_VERSION) {
		snprintf(err, errlen, "v=%ld is not supported; this worker reads v=%d", v, JOB_VERSION);
		goto fail;
	}
	j->version = (int)v;
	it = cJSON_GetObjectItemCaseSensitive(root, "id");
	if (it && !cJSON_IsString(it)) {
		/* never replaced by a generated one: every later read would disagree on the id */
		snprintf(err, errlen, "id must be a string (it is %s); give one or leave it out",
			 cJSON_IsNull(it) ? "null" : "not a string");
		goto fail;
	}
	if (get_str(root, "", "id", 0, 0, &j->id, err, errlen))
		goto fail;
	if (j->id && !job_id_valid(j->id)) {
		snprintf(err, errlen, "id must be 1..%d characters of A-Z a-z 0-9 . _ : -",
			 JOB_ID_MAX);
		goto fail;
	}
	if (get_str(root, "", "type", 1, 64, &type, err, errlen))
		goto fail;
	if (job_type_parse(type, &j->type) != 0) {
		char b[72];
		snprintf(err, errlen, "type \"%s\" is unknown (generate_image, model_pose, "
			 "extract_clothing, outfit_change_v2, raw)", shown(type, b, sizeof(b)));
		goto fail;
	}
	it = cJSON_GetObjectItemCaseSensitive(root, "input");
	if (!cJSON_IsObject(it)) {
		snprintf(err, errlen, "input %s", it ? "must be an object" : "is missing");
		goto fail;
	}
	if (parse_input(it, j, err, errlen))
		goto fail;
	if (get_str(root, "", "ratio", 0, 16, &j->ratio, err, errlen) ||
	    get_str(root, "", "outputFormat", 0, 16, &j->output_format, err, errlen) ||
	    get_str(root, "", "character", 0, JOB_CHARACTER_MAX, &j->character, err, errlen) ||
	    get_str(root, "", "callbackUrl", 0, JOB_CALLBACK_URL_MAX, &j->callback_url, err,
		    errlen) ||
	    get_str(root, "", "replyTo", 0, JOB_REPLY_TO_MAX, &j->reply_to, err, errlen) ||
	    get_int(root, "", "maxAttempts", 1, 100, &j->max_attempts, NULL, err, errlen))
		goto fail;
	if (j->reply_to && check_reply_to(j->reply_to, o->prefix, err, errlen))
		goto fail;
	j->priority = JOB_PRIORITY_DEFAULT;
	{
		long nb = 0;
		/* 2^53: the largest epoch ms a double (JavaScript's number) holds exactly */
		if (get_int(root, "", "priority", 0, JOB_PRIORITY_MAX, &j->priority, NULL, err,
			    errlen) ||
		    get_str(root, "", "group", 0, JOB_GROUP_MAX, &j->group, err, errlen) ||
		    get_str(root, "", "account", 0, ACCOUNT_ALIAS_MAX, &j->account, err,
			    errlen) ||
		    get_int(root, "", "notBefore", 0, 9007199254740992L, &nb, NULL, err, errlen))
			goto fail;
		j->not_before_ms = nb;
	}
	if (j->group && !job_group_valid(j->group)) {
		snprintf(err, errlen, "group must be 1..%d characters of A-Z a-z 0-9 . _ : - @",
			 JOB_GROUP_MAX);
		goto fail;
	}
	/* the alias's charset here; whether the pool has it is the router's check */
	if (j->account && !accounts_alias_valid(j->account)) {
		snprintf(err, errlen, "account must be 1..%d characters of A-Z a-z 0-9 . _ - "
			 "(not starting with '.')", ACCOUNT_ALIAS_MAX);
		goto fail;
	}
	if (j->type == JOB_EXTRACT_CLOTHING && j->ratio && strcmp(j->ratio, "1:1") != 0) {
		char b[72];
		snprintf(err, errlen, "ratio \"%s\": extract_clothing always produces 1:1",
			 shown(j->ratio, b, sizeof(b)));
		goto fail;
	}
	it = cJSON_GetObjectItemCaseSensitive(root, "meta");
	if (it && !cJSON_IsNull(it)) {
		if (!cJSON_IsObject(it)) {
			snprintf(err, errlen, "meta must be an object");
			goto fail;
		}
		if (spans[0].len > o->meta_max_bytes) {
			snprintf(err, errlen, "meta is %zu bytes; the limit is %zu "
				 "(KIE_JOB_META_MAX_BYTES)", spans[0].len, o->meta_max_bytes);
			goto fail;
		}
		/* the bytes as sent, minified: cJSON would round 64-bit integers */
		j->meta_raw = util_xmalloc(spans[0].len + 1);
		memcpy(j->meta_raw, bytes + spans[0].off, spans[0].len);
		j->meta_raw[spans[0].len] = '\0';
		json_strict_minify(j->meta_raw, spans[0].len); /* not cJSON_Minify: json_strict.h */
	}
	if (j->model && !kie_model_name_valid(j->model)) {
		/* an empty one would be checked as the built-in default and sent as KIE_MODEL */
		char b[72];
		snprintf(err, errlen, "input.model %s%s%s: give a model name (printable ASCII "
			 "without spaces, at most %d bytes) or leave it out for KIE_MODEL",
			 *j->model ? "\"" : "is empty", *j->model ? shown(j->model, b, sizeof(b)) : "",
			 *j->model ? "\" is not a model name" : "", KIE_MODEL_MAX_BYTES);
		goto fail;
	}
	j->model_used = util_strdup(j->model ? j->model
				    : o->default_model && *o->default_model ? o->default_model
				    : "google/nano-banana-edit");
	/* the KIE-side checks (prompt length, image count and URLs, ratio, format) for the
	 * model that will be named */
	{
		struct kie_task_request req;
		struct kie_error kerr;
		job_to_request(j, "x", &req);
		if (kie_validate_request(&req, &kerr) != 0) {
			util_strlcpy(err, kerr.message, errlen);
			goto fail;
		}
		if (j->prompt) {
			req.prompt = j->prompt;
			if (kie_validate_request(&req, &kerr) != 0) {
				snprintf(err, errlen, "input.%s", kerr.message);
				goto fail;
			}
		}
	}
	if (!j->id) {
		char rnd[33];
		crypto_random_hex(12, rnd, sizeof(rnd));
		size_t n = strlen(rnd) + 5;
		j->id = util_xmalloc(n);
		snprintf(j->id, n, "job_%s", rnd);
		j->id_generated = 1; /* spliced in within JOB_ID_SPLICE_BYTES of the limit */
	}
	if (j->callback_url) {
		if (callback_with_job("callbackUrl", j->callback_url, j->id, &j->callback_final, err,
				      errlen))
			goto fail;
	} else if (o->default_callback_url && *o->default_callback_url) {
		if (callback_with_job("KIE_CALLBACK_URL", o->default_callback_url, j->id,
				      &j->callback_final, err, errlen))
			goto fail;
	}
	free(type);
	cJSON_Delete(root);
	return j;
fail:
	free(type);
	cJSON_Delete(root);
	job_free(j);
	return NULL;
}

/* A stable seed from the job id when the producer gave none: same job, same tweak. */
static unsigned long id_seed(const char *id)
{
	unsigned long h = 5381;
	for (const unsigned char *p = (const unsigned char *)id; *p; p++)
		h = h * 33 + *p;
	return h;
}

char *job_build_prompt(const struct job *j, const struct prompts *p, char *err, size_t errlen)
{
	switch (j->type) {
	case JOB_GENERATE_IMAGE:
		return prompts_generate_image(p, j->description, j->extract_top_only, j->wear_mask,
					      err, errlen);
	case JOB_MODEL_POSE:
		return prompts_model_pose(p, j->pose, err, errlen);
	case JOB_EXTRACT_CLOTHING:
		return prompts_extract_clothing(p, j->recommend_matches, j->top_only, err, errlen);
	case JOB_OUTFIT_CHANGE_V2:
		return prompts_outfit_change_v2(p, j->pose_tweak,
						j->has_seed ? j->seed : id_seed(j->id), err, errlen);
	case JOB_RAW:
		return util_strdup(j->prompt);
	}
	snprintf(err, errlen, "unknown job type");
	return NULL;
}

void job_to_request(const struct job *j, const char *prompt, struct kie_task_request *req)
{
	memset(req, 0, sizeof(*req));
	req->model = j->model_used ? j->model_used : j->model;
	req->prompt = prompt;
	req->callback_url = NULL;
	req->image_urls = (const char *const *)j->image_urls;
	req->n_images = j->n_images;
	req->ratio = j->type == JOB_EXTRACT_CLOTHING ? "1:1" : j->ratio;
	req->output_format = j->output_format;
}

static void add_opt(cJSON *o, const char *name, const char *v)
{
	if (v)
		cJSON_AddStringToObject(o, name, v);
}

char *job_to_json(const struct job *j)
{
	cJSON *o = cJSON_CreateObject(), *in, *imgs;
	char *s;

	cJSON_AddNumberToObject(o, "v", j->version ? j->version : JOB_VERSION);
	add_opt(o, "id", j->id);
	cJSON_AddStringToObject(o, "type", job_type_str(j->type));
	in = cJSON_AddObjectToObject(o, "input");
	switch (j->type) {
	case JOB_GENERATE_IMAGE:
		add_opt(in, "description", j->description);
		cJSON_AddBoolToObject(in, "extractTopOnly", j->extract_top_only);
		cJSON_AddBoolToObject(in, "wearMask", j->wear_mask);
		break;
	case JOB_MODEL_POSE:
		add_opt(in, "pose", j->pose);
		break;
	case JOB_EXTRACT_CLOTHING:
		cJSON_AddBoolToObject(in, "recommendMatches", j->recommend_matches);
		cJSON_AddBoolToObject(in, "topOnly", j->top_only);
		break;
	case JOB_OUTFIT_CHANGE_V2:
		if (j->n_images == 2) {
			cJSON_AddStringToObject(in, "clothingImageUrl", j->image_urls[0]);
			cJSON_AddStringToObject(in, "modelImageUrl", j->image_urls[1]);
		}
		cJSON_AddBoolToObject(in, "poseTweak", j->pose_tweak);
		if (j->has_seed)
			cJSON_AddNumberToObject(in, "seed", (double)j->seed);
		break;
	case JOB_RAW:
		add_opt(in, "prompt", j->prompt);
		add_opt(in, "model", j->model);
		break;
	}
	if (j->type != JOB_OUTFIT_CHANGE_V2) {
		imgs = cJSON_AddArrayToObject(in, "imageUrls");
		for (size_t i = 0; i < j->n_images; i++)
			cJSON_AddItemToArray(imgs, cJSON_CreateString(j->image_urls[i]));
	}
	add_opt(o, "ratio", j->ratio);
	add_opt(o, "outputFormat", j->output_format);
	add_opt(o, "character", j->character);
	add_opt(o, "callbackUrl", j->callback_url);
	add_opt(o, "replyTo", j->reply_to);
	if (j->max_attempts)
		cJSON_AddNumberToObject(o, "maxAttempts", (double)j->max_attempts);
	if (j->meta_raw)
		cJSON_AddRawToObject(o, "meta", j->meta_raw);
	if (j->priority != JOB_PRIORITY_DEFAULT)
		cJSON_AddNumberToObject(o, "priority", (double)j->priority);
	add_opt(o, "group", j->group);
	add_opt(o, "account", j->account);
	if (j->not_before_ms)
		cJSON_AddNumberToObject(o, "notBefore", (double)j->not_before_ms);
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}
