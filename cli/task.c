/* task.c — the `kie` commands that talk to KIE itself: create, status, wait, credits,
 * callback, prompt, metadata, config. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "config/config.h"
#include "core/log.h"
#include "core/util.h"
#include "kie/job.h"
#include "kie/kie_client.h"
#include "kie/prompts.h"
#include "store/metadata.h"
#include "cli.h"

/* ---- kie create ---- */

static const char create_help[] =
	"usage: kie create OPERATION [options]\n"
	"Creates one KIE task and prints {\"taskId\":...,\"jobId\":...}; with --wait, waits and\n"
	"prints the normalized result. The pending metadata record is saved unless --no-metadata.\n"
	"\n"
	"Operations and their options:\n"
	"  raw               --prompt TEXT --image URL... [--model NAME]\n"
	"  generate-image    --description TEXT --image URL [--top-only] [--white-mask]\n"
	"  model-pose        --image URL [--pose TEXT]\n"
	"  extract-clothing  --image URL [--recommend-matches] [--top-only]   (always 1:1)\n"
	"  outfit-change-v2  --clothing-image URL --model-image URL [--pose-tweak] [--seed N]\n"
	"Common options:\n"
	"  --ratio R          1:1 9:16 16:9 3:4 4:3 3:2 2:3 5:4 4:5 21:9 auto (default 9:16)\n"
	"  --format F         png (default) or jpeg\n"
	"  --callback-url U   default KIE_CALLBACK_URL; the job id is added as ?jobId=\n"
	"  --job-id ID        the job id recorded with the task (default: generated)\n"
	"  --character NAME   stored in the metadata record\n"
	"  --wait             wait for the result (KIE_WAIT_ATTEMPTS x KIE_WAIT_INTERVAL_MS)\n"
	"  --dry-run          print the createTask body and send nothing\n"
	"  --no-metadata      do not write the metadata record\n";

static const struct optspec create_spec[] = {
	{"prompt", 1}, {"image", 1}, {"model", 1}, {"description", 1}, {"top-only", 0},
	{"white-mask", 0}, {"pose", 1}, {"recommend-matches", 0}, {"clothing-image", 1},
	{"model-image", 1}, {"pose-tweak", 0}, {"seed", 1}, {"ratio", 1}, {"format", 1},
	{"callback-url", 1}, {"job-id", 1}, {"character", 1}, {"wait", 0}, {"dry-run", 0},
	{"no-metadata", 0}, {"help", 0}, {NULL, 0}};

/* Builds a v1 job descriptor from the flags, so the CLI and the worker share one path. */
static char *descriptor_from_flags(const char *op, const struct opts *o, char *err, size_t errlen)
{
	cJSON *d = cJSON_CreateObject(), *in;
	const char *type = NULL;
	char *s;

	if (strcmp(op, "raw") == 0) type = "raw";
	else if (strcmp(op, "generate-image") == 0) type = "generate_image";
	else if (strcmp(op, "model-pose") == 0) type = "model_pose";
	else if (strcmp(op, "extract-clothing") == 0) type = "extract_clothing";
	else if (strcmp(op, "outfit-change-v2") == 0) type = "outfit_change_v2";
	if (!type) {
		snprintf(err, errlen, "unknown operation \"%s\" (raw, generate-image, model-pose, "
			 "extract-clothing, outfit-change-v2)", op);
		cJSON_Delete(d);
		return NULL;
	}
	cJSON_AddNumberToObject(d, "v", 1);
	if (cli_opt(o, "job-id"))
		cJSON_AddStringToObject(d, "id", cli_opt(o, "job-id"));
	cJSON_AddStringToObject(d, "type", type);
	in = cJSON_AddObjectToObject(d, "input");
	if (strcmp(type, "outfit_change_v2") == 0) {
		if (cli_opt(o, "clothing-image"))
			cJSON_AddStringToObject(in, "clothingImageUrl", cli_opt(o, "clothing-image"));
		if (cli_opt(o, "model-image"))
			cJSON_AddStringToObject(in, "modelImageUrl", cli_opt(o, "model-image"));
		if (cli_has(o, "pose-tweak"))
			cJSON_AddBoolToObject(in, "poseTweak", 1);
		if (cli_opt(o, "seed")) {
			long long seed;
			if (util_parse_int(cli_opt(o, "seed"), 0, 2147483647LL, &seed) != 0) {
				snprintf(err, errlen, "--seed must be a whole number from 0 to "
					 "2147483647");
				cJSON_Delete(d);
				return NULL;
			}
			cJSON_AddNumberToObject(in, "seed", (double)seed);
		}
	} else {
		cJSON *imgs = cJSON_AddArrayToObject(in, "imageUrls");
		for (int i = 0; i < o->n; i++)
			if (strcmp(o->name[i], "image") == 0)
				cJSON_AddItemToArray(imgs, cJSON_CreateString(o->value[i]));
	}
	if (strcmp(type, "raw") == 0) {
		if (cli_opt(o, "prompt"))
			cJSON_AddStringToObject(in, "prompt", cli_opt(o, "prompt"));
		if (cli_opt(o, "model"))
			cJSON_AddStringToObject(in, "model", cli_opt(o, "model"));
	} else if (strcmp(type, "generate_image") == 0) {
		if (cli_opt(o, "description"))
			cJSON_AddStringToObject(in, "description", cli_opt(o, "description"));
		cJSON_AddBoolToObject(in, "extractTopOnly", cli_has(o, "top-only"));
		cJSON_AddBoolToObject(in, "wearMask", cli_has(o, "white-mask"));
	} else if (strcmp(type, "model_pose") == 0) {
		if (cli_opt(o, "pose"))
			cJSON_AddStringToObject(in, "pose", cli_opt(o, "pose"));
	} else if (strcmp(type, "extract_clothing") == 0) {
		cJSON_AddBoolToObject(in, "recommendMatches", cli_has(o, "recommend-matches"));
		cJSON_AddBoolToObject(in, "topOnly", cli_has(o, "top-only"));
	}
	if (cli_opt(o, "ratio"))
		cJSON_AddStringToObject(d, "ratio", cli_opt(o, "ratio"));
	if (cli_opt(o, "format"))
		cJSON_AddStringToObject(d, "outputFormat", cli_opt(o, "format"));
	if (cli_opt(o, "character"))
		cJSON_AddStringToObject(d, "character", cli_opt(o, "character"));
	if (cli_opt(o, "callback-url"))
		cJSON_AddStringToObject(d, "callbackUrl", cli_opt(o, "callback-url"));
	s = cJSON_PrintUnformatted(d);
	cJSON_Delete(d);
	return s;
}

int cli_cmd_create(int argc, char **argv)
{
	struct opts o;
	struct cli_ctx c;
	struct job *j = NULL;
	struct kie_task_request req;
	struct kie_error kerr;
	char err[512], *desc = NULL, *prompt = NULL, *task_id = NULL;
	int rc = EXIT_USAGE;

	if (cli_parse_opts(argc, argv, "create", create_spec, 1, &o) != 0)
		return EXIT_USAGE;
	if (cli_has(&o, "help") || o.npos == 0) {
		fputs(create_help, cli_has(&o, "help") ? stdout : stderr);
		fputs(cli_exit_codes_help, cli_has(&o, "help") ? stdout : stderr);
		return cli_has(&o, "help") ? EXIT_OK : EXIT_USAGE;
	}
	if (cli_ctx_open(&c, &o, !cli_has(&o, "dry-run"), 1) != 0) {
		cli_ctx_close(&c);
		return EXIT_USAGE;
	}
	desc = descriptor_from_flags(o.pos[0], &o, err, sizeof(err));
	if (!desc) {
		fprintf(stderr, "kie: %s\n", err);
		goto out;
	}
	{
		struct job_parse_opts po = cli_ctx_parse_opts(&c);
		j = job_parse(desc, strlen(desc), &po, err, sizeof(err));
	}
	if (!j) {
		fprintf(stderr, "kie: invalid request: %s\n", err);
		rc = EXIT_PERMANENT;
		goto out;
	}
	prompt = job_build_prompt(j, c.prompts, err, sizeof(err));
	if (!prompt) {
		fprintf(stderr, "kie: %s\n", err);
		rc = EXIT_PERMANENT;
		goto out;
	}
	job_to_request(j, prompt, &req);
	{
		req.callback_url = j->callback_final;
	}
	if (cli_has(&o, "dry-run")) {
		char *body = kie_build_create_body(&req, c.cfg.kie_model, &kerr);
		if (!body) {
			cli_print_kie_error(&kerr);
			rc = cli_exit_for(&kerr);
			goto out;
		}
		puts(body);
		free(body);
		rc = EXIT_OK;
		goto out;
	}
	if (kie_client_create_task(c.kie, &req, &task_id, &kerr) != 0) {
		cli_print_kie_error(&kerr);
		rc = cli_exit_for(&kerr);
		goto out;
	}
	log_info(j->id, task_id, "created task (%s)", job_type_str(j->type));
	rc = EXIT_OK;
	if (!cli_has(&o, "no-metadata")) {
		struct metadata_store *ms = metadata_store_open(&c.cfg, err, sizeof(err));
		struct task_metadata m = {
			.task_id = task_id, .job_id = j->id, .type = job_type_str(j->type),
			.model = req.model ? req.model : c.cfg.kie_model, .prompt = prompt,
			.image_urls = req.image_urls, .n_images = req.n_images,
			.character = j->character, .ratio = req.ratio ? req.ratio : KIE_DEFAULT_RATIO,
		};
		if (!ms || metadata_store_save_pending(ms, &m, err, sizeof(err)) != 0) {
			fprintf(stderr, "kie: metadata (task %s was created): %s\n", task_id, err);
			rc = EXIT_STORE;
		}
		metadata_store_free(ms);
	}
	if (!cli_has(&o, "wait")) {
		printf("{\"taskId\":\"%s\",\"jobId\":\"%s\"}\n", task_id, j->id);
		goto out;
	}
	{
		struct kie_result r;
		if (kie_client_wait(c.kie, task_id, c.cfg.wait_attempts, c.cfg.wait_interval_ms, &r,
				    &kerr) != 0) {
			cli_print_kie_error(&kerr);
			rc = cli_exit_for(&kerr);
			goto out;
		}
		int r2 = cli_report_result(&c, &r, !cli_has(&o, "no-metadata"));
		if (rc == EXIT_OK)
			rc = r2;
		kie_result_free(&r);
	}
out:
	free(task_id);
	free(prompt);
	free(desc);
	job_free(j);
	cli_ctx_close(&c);
	return rc;
}

/* ---- kie status / wait ---- */

static const char status_help[] =
	"usage: kie status TASK_ID\n"
	"Reads the task's record (recordInfo) once and prints the normalized result:\n"
	"{taskId, success, state, resultUrls, error, credits, costTime (ms), updateTime}.\n";
static const char wait_help[] =
	"usage: kie wait TASK_ID [--attempts N] [--interval-ms MS] [--no-metadata]\n"
	"Polls recordInfo until the task succeeds or fails (default 30 x 2000 ms, the seed's\n"
	"waitForTaskCompletion), prints the normalized result and merges it into the task's\n"
	"metadata record.\n";

int cli_cmd_status_wait(int argc, char **argv, int wait)
{
	static const struct optspec spec[] = {{"attempts", 1}, {"interval-ms", 1},
					      {"no-metadata", 0}, {"help", 0}, {NULL, 0}};
	struct opts o;
	struct cli_ctx c;
	struct kie_result r;
	struct kie_error kerr;
	int rc;

	if (cli_parse_opts(argc, argv, wait ? "wait" : "status", spec, 1, &o) != 0)
		return EXIT_USAGE;
	if (cli_has(&o, "help") || o.npos != 1) {
		FILE *f = cli_has(&o, "help") ? stdout : stderr;
		fputs(wait ? wait_help : status_help, f);
		fputs(cli_exit_codes_help, f);
		return cli_has(&o, "help") ? EXIT_OK : EXIT_USAGE;
	}
	if (cli_ctx_open(&c, &o, 1, 0) != 0) {
		cli_ctx_close(&c);
		return EXIT_USAGE;
	}
	long attempts = c.cfg.wait_attempts, interval = c.cfg.wait_interval_ms;
	long long v;
	if (cli_opt(&o, "attempts")) {
		if (util_parse_int(cli_opt(&o, "attempts"), 1, 100000, &v) != 0) {
			fprintf(stderr, "kie: --attempts must be a whole number from 1 to 100000\n");
			cli_ctx_close(&c);
			return EXIT_USAGE;
		}
		attempts = (long)v;
	}
	if (cli_opt(&o, "interval-ms")) {
		if (util_parse_int(cli_opt(&o, "interval-ms"), 0, 600000, &v) != 0) {
			fprintf(stderr, "kie: --interval-ms must be a whole number from 0 to 600000\n");
			cli_ctx_close(&c);
			return EXIT_USAGE;
		}
		interval = (long)v;
	}
	if (wait)
		rc = kie_client_wait(c.kie, o.pos[0], attempts, interval, &r, &kerr);
	else
		rc = kie_client_get_task(c.kie, o.pos[0], &r, &kerr);
	if (rc != 0) {
		cli_print_kie_error(&kerr);
		rc = cli_exit_for(&kerr);
	} else {
		rc = cli_report_result(&c, &r, wait && !cli_has(&o, "no-metadata"));
		kie_result_free(&r);
	}
	cli_ctx_close(&c);
	return rc;
}

/* ---- kie credits / callback / prompt / metadata / config ---- */

int cli_cmd_credits(int argc, char **argv)
{
	static const struct optspec spec[] = {{"help", 0}, {NULL, 0}};
	struct opts o;
	struct cli_ctx c;
	struct kie_error kerr;
	double credits;
	int rc = EXIT_OK;

	if (cli_parse_opts(argc, argv, "credits", spec, 1, &o) != 0)
		return EXIT_USAGE;
	if (cli_has(&o, "help")) {
		puts("usage: kie credits\nPrints the account's remaining credits as {\"credits\":N}.");
		fputs(cli_exit_codes_help, stdout);
		return EXIT_OK;
	}
	if (cli_ctx_open(&c, &o, 1, 0) != 0) {
		cli_ctx_close(&c);
		return EXIT_USAGE;
	}
	if (kie_client_credits(c.kie, &credits, &kerr) != 0) {
		cli_print_kie_error(&kerr);
		rc = cli_exit_for(&kerr);
	} else {
		printf("{\"credits\":%.15g}\n", credits);
	}
	cli_ctx_close(&c);
	return rc;
}

int cli_cmd_callback(int argc, char **argv)
{
	static const struct optspec spec[] = {{"help", 0}, {NULL, 0}};
	struct opts o;
	struct dbuf b;
	char chunk[8192];
	size_t n;
	FILE *f = stdin;
	struct kie_result r;
	struct kie_error kerr;
	int rc;

	if (cli_parse_opts(argc, argv, "callback", spec, 0, &o) != 0)
		return EXIT_USAGE;
	if (cli_has(&o, "help")) {
		puts("usage: kie callback [FILE]\n"
		     "Normalizes a KIE callback body (from FILE or standard input) like the seed's\n"
		     "processCallback and prints {taskId, success, state, resultUrls, error, credits,\n"
		     "costTime (ms; callbacks send seconds), updateTime}. Exit 1 for a failed task.");
		return EXIT_OK;
	}
	if (o.npos == 1 && !(f = fopen(o.pos[0], "rb"))) {
		fprintf(stderr, "kie: cannot open %s\n", o.pos[0]);
		return EXIT_USAGE;
	}
	dbuf_init(&b, 1024 * 1024);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (dbuf_add(&b, chunk, n) != 0) {
			fprintf(stderr, "kie: callback body larger than 1 MiB\n");
			if (f != stdin)
				fclose(f);
			dbuf_free(&b);
			return EXIT_PERMANENT;
		}
	}
	if (f != stdin)
		fclose(f);
	if (kie_parse_callback(b.data ? b.data : "", b.len, &r, &kerr) != 0) {
		fprintf(stderr, "kie: %s\n", kerr.message);
		rc = EXIT_PERMANENT;
	} else {
		char *js = kie_result_to_json(&r);
		puts(js);
		free(js);
		rc = r.success ? EXIT_OK : EXIT_TASK_FAILED;
		kie_result_free(&r);
	}
	dbuf_free(&b);
	return rc;
}

int cli_cmd_prompt(int argc, char **argv)
{
	struct opts o;
	struct cli_ctx c;
	struct job *j = NULL;
	char err[512], *desc = NULL, *prompt = NULL;
	int rc = EXIT_USAGE;

	if (cli_parse_opts(argc, argv, "prompt", create_spec, 1, &o) != 0)
		return EXIT_USAGE;
	if (cli_has(&o, "help") || o.npos != 1) {
		fputs("usage: kie prompt OPERATION [the options of kie create]\n"
		      "Prints the prompt an operation would send (templates from KIE_PROMPTS_DIR\n"
		      "override the built-in ones) and its length in characters on stderr.\n",
		      cli_has(&o, "help") ? stdout : stderr);
		return cli_has(&o, "help") ? EXIT_OK : EXIT_USAGE;
	}
	if (cli_ctx_open(&c, &o, 0, 1) != 0) {
		cli_ctx_close(&c);
		return EXIT_USAGE;
	}
	desc = descriptor_from_flags(o.pos[0], &o, err, sizeof(err));
	if (desc) {
		struct job_parse_opts po = cli_ctx_parse_opts(&c);
		j = job_parse(desc, strlen(desc), &po, err, sizeof(err));
	}
	if (j)
		prompt = job_build_prompt(j, c.prompts, err, sizeof(err));
	if (!prompt) {
		fprintf(stderr, "kie: %s\n", err);
		rc = EXIT_PERMANENT;
	} else {
		puts(prompt);
		fprintf(stderr, "%ld characters\n", util_utf8_len(prompt, strlen(prompt)));
		rc = EXIT_OK;
	}
	free(prompt);
	free(desc);
	job_free(j);
	cli_ctx_close(&c);
	return rc;
}

int cli_cmd_metadata(int argc, char **argv)
{
	static const struct optspec spec[] = {{"help", 0}, {NULL, 0}};
	struct opts o;
	struct cli_ctx c;
	struct metadata_store *ms = NULL;
	char err[512];
	int rc = EXIT_USAGE;

	if (cli_parse_opts(argc, argv, "metadata", spec, 1, &o) != 0)
		return EXIT_USAGE;
	if (cli_has(&o, "help") || o.npos < 2 ||
	    !(strcmp(o.pos[0], "get") == 0 || strcmp(o.pos[0], "update") == 0)) {
		fputs("usage: kie metadata get TASK_ID\n"
		      "       kie metadata update TASK_ID JSON_OBJECT\n"
		      "Reads, or merges fields into, kie-tasks/<TASK_ID>.json in the configured\n"
		      "store (KIE_METADATA_STORE: fs or r2). Exit 1 when the record does not exist;\n"
		      "7 on a store error.\n", cli_has(&o, "help") ? stdout : stderr);
		return cli_has(&o, "help") ? EXIT_OK : EXIT_USAGE;
	}
	if (cli_ctx_open(&c, &o, 0, 0) != 0)
		goto out;
	ms = metadata_store_open(&c.cfg, err, sizeof(err));
	if (!ms) {
		fprintf(stderr, "kie: metadata store: %s\n", err);
		goto out;
	}
	if (strcmp(o.pos[0], "get") == 0) {
		cJSON *rec = NULL;
		int g = metadata_store_get(ms, o.pos[1], &rec, err, sizeof(err));
		if (g == 0) {
			cli_print_json(rec);
			rc = EXIT_OK;
		} else if (g == 1) {
			fprintf(stderr, "kie: no metadata record for task %s\n", o.pos[1]);
			rc = 1;
		} else {
			fprintf(stderr, "kie: metadata: %s\n", err);
			rc = EXIT_STORE;
		}
		cJSON_Delete(rec);
	} else {
		cJSON *fields = o.npos == 3 ? cJSON_Parse(o.pos[2]) : NULL;
		if (!cJSON_IsObject(fields)) {
			fprintf(stderr, "kie: metadata update needs a JSON object of fields\n");
		} else if (metadata_store_update(ms, o.pos[1], fields, err, sizeof(err)) != 0) {
			fprintf(stderr, "kie: metadata: %s\n", err);
			rc = EXIT_STORE;
		} else {
			rc = EXIT_OK;
		}
		cJSON_Delete(fields);
	}
out:
	metadata_store_free(ms);
	cli_ctx_close(&c);
	return rc;
}

int cli_cmd_config(int argc, char **argv)
{
	static const struct optspec spec[] = {{"help", 0}, {NULL, 0}};
	struct opts o;
	struct cli_ctx c;

	if (cli_parse_opts(argc, argv, "config", spec, 1, &o) != 0 || o.npos) {
		fputs("usage: kie config [--SETTING VALUE ...]   (kie config --help: every "
		      "setting)\n", stderr);
		return EXIT_USAGE;
	}
	if (cli_has(&o, "help")) {
		fputs("usage: kie config [--SETTING VALUE ...]\n"
		      "Prints the active settings, the environment's with the flags given over it,\n"
		      "one NAME=value a line (secrets as (set) or (unset), URLs without their\n"
		      "password).\n", stdout);
		config_print_help(stdout);
		return EXIT_OK;
	}
	if (cli_ctx_open(&c, &o, 0, 0) != 0) {
		cli_ctx_close(&c);
		return EXIT_USAGE;
	}
	config_print(&c.cfg, stdout);
	cli_ctx_close(&c);
	return EXIT_OK;
}
