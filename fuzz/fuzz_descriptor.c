/* fuzz_descriptor.c — job descriptors from any producer: job_parse, the prompt builders
 * (built-in templates) and the KIE request checks never accept what they should refuse. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <math.h>

#include "core/json_strict.h"
#include "core/util.h"
#include "kie/job.h"
#include "kie/kie_client.h"
#include "kie/prompts.h"
#include "net/netaddr.h"
#include "invariant.h"

#define DESCRIPTOR_MAX_BYTES 65536 /* KIE_JOB_MAX_BYTES's default */

static struct prompts *templates;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[256];
	templates = prompts_load(NULL, err, sizeof(err));
	if (!templates) {
		fprintf(stderr, "fuzz_descriptor: prompts_load: %s\n", err);
		abort();
	}
	return 0;
}

/* The one call that changes with job_parse's signature: with struct job_parse_opts it is
 *   return job_parse(b, len, &(struct job_parse_opts){.max_bytes = DESCRIPTOR_MAX_BYTES}, err, errlen); */
static struct job *parse_descriptor(const char *b, size_t len, char *err, size_t errlen)
{
	static const struct job_parse_opts o = {
		.max_bytes = DESCRIPTOR_MAX_BYTES, .default_model = "google/nano-banana-edit",
		.prefix = "kie", .meta_max_bytes = 4096,
		.default_callback_url = "https://app.example.com/api/kie/callback",
	};
	return job_parse(b, len, &o, err, errlen);
}

static void check_error(const char *what, const char *err)
{
	/* the known bug's trigger: a name quoted with "%.64s" */
	if (invariant_enabled("descriptor.error_utf8") || !strstr(err, "unknown field \""))
		INVARIANT("descriptor.error_utf8", invariant_message(err),
			  "%s: error message is empty or not UTF-8: \"%s\"", what, err);
	if (invariant_enabled("descriptor.error_printable"))
		INVARIANT("descriptor.error_printable", invariant_printable(err),
			  "%s: error message has control bytes: \"%s\"", what, err);
}

/* The prompt and the request the worker would send for an accepted job. */
static void check_prompt_and_request(const struct job *j)
{
	char err[512];
	struct kie_task_request req;
	struct kie_error kerr;
	char *prompt, *body;
	long chars;

	err[0] = '\0';
	prompt = job_build_prompt(j, templates, err, sizeof(err));
	if (!prompt) {
		INVARIANT("descriptor.prompt", err[0] != '\0',
			  "job_build_prompt failed without a reason");
		check_error("job_build_prompt", err);
		return;
	}
	chars = util_utf8_len(prompt, strlen(prompt));
	INVARIANT("descriptor.prompt", chars >= 0 && chars <= KIE_PROMPT_MAX_CHARS,
		  "prompt of %zu bytes is %ld characters (-1: not UTF-8); KIE takes %d",
		  strlen(prompt), chars, KIE_PROMPT_MAX_CHARS);
	job_to_request(j, prompt, &req);
	INVARIANT("descriptor.request", kie_validate_request(&req, &kerr) == 0,
		  "accepted job, built prompt, refused request: %s", kerr.message);
	body = kie_build_create_body(&req, "google/nano-banana-edit", &kerr);
	INVARIANT("descriptor.request", body != NULL, "no createTask body: %s", kerr.message);
	INVARIANT("descriptor.request",
		  json_strict_check(body, strlen(body), NULL, err, sizeof(err)) == 0,
		  "createTask body is not strict JSON: %s", err);
	free(body);
	free(prompt);
}

/* job_to_json is canonical: it parses back to a job that prints the same. */
static void check_round_trip(const struct job *j, int input_strict)
{
	char err[512];
	char *js = job_to_json(j), *js2;
	struct job *k;

	INVARIANT("descriptor.round_trip", js != NULL, "job_to_json gave NULL");
	/* a strict input has no repeated names in meta, so neither has its copy */
	if (input_strict)
		INVARIANT("descriptor.round_trip",
			  json_strict_check(js, strlen(js), NULL, err, sizeof(err)) == 0,
			  "job_to_json is not strict JSON: %s (%.300s)", err, js);
	k = parse_descriptor(js, strlen(js), err, sizeof(err));
	INVARIANT("descriptor.round_trip", k != NULL, "job_to_json does not parse back: %s (%.300s)",
		  err, js);
	js2 = job_to_json(k);
	INVARIANT("descriptor.round_trip", strcmp(js, js2) == 0,
		  "job_to_json is not a fixpoint:\n  %.300s\n  %.300s", js, js2);
	free(js2);
	job_free(k);
	free(js);
}

/* 1 when no number in the tree is infinite (cJSON_Compare cannot compare those) */
static int finite_tree(const cJSON *it)
{
	for (; it; it = it->next)
		if ((cJSON_IsNumber(it) && !isfinite(it->valuedouble)) || !finite_tree(it->child))
			return 0;
	return 1;
}

/* Issue 16: meta reaches the events as the producer wrote it (cJSON_Minify changed
 * strings after a "\\"); the model checked is the model sent ("" was checked as the
 * built-in default and sent as KIE_MODEL); the callback URL has one jobId, the job's, and
 * a host libcurl will not decode into something else. */
static void check_meta_model_callback(const struct job *j, const uint8_t *data, size_t size)
{
	struct kie_task_request req;
	char first[256], why[300];
	char *q = NULL, *host = NULL;
	CURLU *u;

	if (j->meta_raw) {
		cJSON *in = cJSON_ParseWithLength((const char *)data, size);
		cJSON *mine = cJSON_Parse(j->meta_raw);
		const cJSON *theirs = cJSON_GetObjectItemCaseSensitive(in, "meta");
		INVARIANT("descriptor.meta",
			  mine && theirs && json_strict_check(j->meta_raw, strlen(j->meta_raw), NULL,
							      why, sizeof(why)) == 0 &&
			  (!finite_tree(theirs) || cJSON_Compare(mine, theirs, 1)),
			  "meta changed on its way: %.300s", j->meta_raw);
		cJSON_Delete(mine);
		cJSON_Delete(in);
	}
	job_to_request(j, "p", &req);
	INVARIANT("descriptor.model", req.model && kie_model_name_valid(req.model) &&
		  strcmp(kie_model_resolve(req.model, "other/default-model"), req.model) == 0,
		  "the request's model \"%.200s\" is not the one sent", req.model ? req.model : "");
	if (!j->callback_final)
		return;
	INVARIANT("descriptor.callback", netaddr_url_host_check(j->callback_final, why,
								sizeof(why)) == 0,
		  "callback URL %.300s: %s", j->callback_final, why);
	u = curl_url();
	INVARIANT("descriptor.callback",
		  u && curl_url_set(u, CURLUPART_URL, j->callback_final, 0) == CURLUE_OK &&
		  curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK,
		  "callback URL %.300s does not parse", j->callback_final);
	for (const unsigned char *p = (const unsigned char *)host; *p; p++)
		INVARIANT("descriptor.callback", *p > 0x20 && *p < 0x7f,
			  "callback host has byte 0x%02x: %.300s", *p, j->callback_final);
	INVARIANT("descriptor.callback", curl_url_get(u, CURLUPART_QUERY, &q, 0) == CURLUE_OK &&
		  invariant_query_job_ids(q, first, sizeof(first)) == 1 &&
		  strcmp(first, j->id) == 0,
		  "callback URL %.300s does not carry jobId=%s exactly once", j->callback_final,
		  j->id);
	curl_free(q);
	curl_free(host);
	curl_url_cleanup(u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512], serr[512];
	struct job *j;
	int strict;

	err[0] = '\0';
	j = parse_descriptor((const char *)data, size, err, sizeof(err));
	strict = json_strict_check((const char *)data, size, NULL, serr, sizeof(serr)) == 0;
	if (!j) {
		INVARIANT("descriptor.error", err[0] != '\0', "job_parse refused without a reason");
		check_error("job_parse", err);
		return 0;
	}
	if (invariant_enabled("descriptor.strict_gate"))
		INVARIANT("descriptor.strict_gate", strict,
			  "job_parse accepted a descriptor json_strict_check refuses: %s", serr);
	INVARIANT("descriptor.id", j->id && job_id_valid(j->id) == 1,
		  "accepted job has an invalid id \"%.200s\"", j->id ? j->id : "(null)");
	check_prompt_and_request(j);
	check_meta_model_callback(j, data, size);
	check_round_trip(j, strict);
	job_free(j);
	return 0;
}
