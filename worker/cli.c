/* cli.c — `kie`, the one-shot command-line tool: create tasks (raw or through the four
 * operations), read their status, wait for results, normalize callbacks, read metadata. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "job.h"
#include "kie_client.h"
#include "log.h"
#include "metadata.h"
#include "prompts.h"
#include "queue.h"
#include "rconn.h"
#include "util.h"

/* Exit codes (documented in --help and docs/cli.md). */
enum {
	EXIT_OK = 0,
	EXIT_TASK_FAILED = 1,  /* the KIE task finished in state fail */
	EXIT_USAGE = 2,        /* bad arguments or configuration */
	EXIT_PERMANENT = 3,    /* KIE refused the request (400/404/422/451/505) or bad input */
	EXIT_RETRYABLE = 4,    /* try again later (429/455/5xx on reads/network/wait timeout) */
	EXIT_ACCOUNT = 5,      /* account-level (401/402/433) */
	EXIT_AMBIGUOUS = 6,    /* createTask may have created a task: do not re-run blindly */
	EXIT_STORE = 7,        /* the metadata store failed */
	EXIT_REDIS = 8,        /* Redis unreachable or refused the command */
};

static const char exit_codes_help[] =
	"Exit codes: 0 ok; 1 task failed; 2 usage or configuration error; 3 permanent KIE\n"
	"error or bad input; 4 retryable (rate limit, network, wait timed out); 5 account-level\n"
	"(401/402/433); 6 ambiguous (the task may exist: check before re-running); 7 metadata\n"
	"store error; 8 Redis unreachable or refused the command.\n";

/* ---- tiny option parser: --name value, --name=value, --flag ---- */

#define MAX_OPTS 64
struct opts {
	const char *name[MAX_OPTS];
	const char *value[MAX_OPTS];
	int n;
	const char *pos[8]; /* positional arguments */
	int npos;
};

struct optspec {
	const char *name;
	int has_arg;
};

static int parse_opts(int argc, char **argv, const struct optspec *spec, struct opts *o)
{
	memset(o, 0, sizeof(*o));
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (strncmp(a, "--", 2) != 0 || !a[2]) {
			if (o->npos == 8) {
				fprintf(stderr, "kie: too many arguments\n");
				return -1;
			}
			o->pos[o->npos++] = a;
			continue;
		}
		const char *name = a + 2, *eq = strchr(name, '=');
		size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
		const struct optspec *s = spec;
		for (; s->name; s++)
			if (strlen(s->name) == nlen && strncmp(s->name, name, nlen) == 0)
				break;
		if (!s->name) {
			fprintf(stderr, "kie: unknown option --%.*s (see --help)\n", (int)nlen, name);
			return -1;
		}
		if (o->n == MAX_OPTS) {
			fprintf(stderr, "kie: too many options\n");
			return -1;
		}
		o->name[o->n] = s->name;
		if (s->has_arg) {
			if (eq) {
				o->value[o->n] = eq + 1;
			} else if (i + 1 < argc) {
				o->value[o->n] = argv[++i];
			} else {
				fprintf(stderr, "kie: --%s needs a value\n", s->name);
				return -1;
			}
		} else {
			if (eq) {
				fprintf(stderr, "kie: --%s takes no value\n", s->name);
				return -1;
			}
			o->value[o->n] = "1";
		}
		o->n++;
	}
	return 0;
}

static const char *opt(const struct opts *o, const char *name)
{
	const char *v = NULL;
	for (int i = 0; i < o->n; i++)
		if (strcmp(o->name[i], name) == 0)
			v = o->value[i];
	return v;
}

static int has(const struct opts *o, const char *name)
{
	return opt(o, name) != NULL;
}

/* ---- shared set-up ---- */

struct ctx {
	struct config cfg;
	struct kie_client *kie;
	struct prompts *prompts;
};

static int exit_for(const struct kie_error *e)
{
	switch (e->cls) {
	case KIE_ERR_RETRYABLE: return EXIT_RETRYABLE;
	case KIE_ERR_PERMANENT: return EXIT_PERMANENT;
	case KIE_ERR_ACCOUNT: return EXIT_ACCOUNT;
	case KIE_ERR_AMBIGUOUS: return EXIT_AMBIGUOUS;
	case KIE_ERR_NONE: break;
	}
	return EXIT_PERMANENT;
}

static void print_kie_error(const struct kie_error *e)
{
	fprintf(stderr, "kie: %s [class=%s transport=%s http=%ld code=%d]\n", e->message,
		kie_err_class_str(e->cls), http_transport_str(e->transport), e->http_status,
		e->code);
}

static int ctx_open(struct ctx *c, int need_kie, int need_prompts)
{
	char err[512];
	enum log_level lvl;

	memset(c, 0, sizeof(*c));
	config_defaults(&c->cfg);
	if (config_load_env(&c->cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "kie: configuration error: %s\n", err);
		return -1;
	}
	if (log_level_parse(c->cfg.log_level, &lvl) == 0)
		log_setup(lvl, strcmp(c->cfg.log_format, "json") == 0 ? LOG_FORMAT_JSON
								      : LOG_FORMAT_TEXT);
	if (need_kie) {
		if (config_require(&c->cfg, "KIE_API_TOKEN", err, sizeof(err)) != 0) {
			fprintf(stderr, "kie: configuration error: %s\n", err);
			return -1;
		}
		c->kie = kie_client_from_config(&c->cfg);
		if (!c->kie) {
			fprintf(stderr, "kie: cannot create an HTTP handle\n");
			return -1;
		}
	}
	if (need_prompts) {
		c->prompts = prompts_load(c->cfg.prompts_dir, err, sizeof(err));
		if (!c->prompts) {
			fprintf(stderr, "kie: configuration error: %s\n", err);
			return -1;
		}
	}
	return 0;
}

/* How the worker would parse a descriptor, with this environment's settings. */
static struct job_parse_opts ctx_parse_opts(const struct ctx *c)
{
	struct job_parse_opts o = {
		.max_bytes = (size_t)c->cfg.job_max_bytes, .default_model = c->cfg.kie_model,
		.prefix = c->cfg.redis_prefix, .meta_max_bytes = (size_t)c->cfg.meta_max_bytes,
		.default_callback_url = c->cfg.kie_callback_url,
	};
	return o;
}

static void ctx_close(struct ctx *c)
{
	kie_client_free(c->kie);
	prompts_free(c->prompts);
	config_free(&c->cfg);
}

static void print_json(cJSON *o)
{
	char *s = cJSON_Print(o);
	puts(s);
	free(s);
}

/* Prints the normalized result and merges it into the metadata record (unless off). */
static int report_result(struct ctx *c, const struct kie_result *r, int save)
{
	char *js = kie_result_to_json(r), err[512];
	int rc = r->state == KIE_TASK_SUCCESS ? EXIT_OK
		 : r->state == KIE_TASK_FAIL   ? EXIT_TASK_FAILED
					       : EXIT_OK;
	puts(js);
	free(js);
	if (save && kie_task_state_final(r->state)) {
		struct metadata_store *ms = metadata_store_open(&c->cfg, err, sizeof(err));
		cJSON *fields = metadata_result_fields(r, util_now_ms());
		if (!ms || metadata_store_update(ms, r->task_id, fields, err, sizeof(err)) != 0) {
			fprintf(stderr, "kie: metadata: %s\n", err);
			rc = EXIT_STORE;
		}
		cJSON_Delete(fields);
		metadata_store_free(ms);
	}
	return rc;
}

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
	if (opt(o, "job-id"))
		cJSON_AddStringToObject(d, "id", opt(o, "job-id"));
	cJSON_AddStringToObject(d, "type", type);
	in = cJSON_AddObjectToObject(d, "input");
	if (strcmp(type, "outfit_change_v2") == 0) {
		if (opt(o, "clothing-image"))
			cJSON_AddStringToObject(in, "clothingImageUrl", opt(o, "clothing-image"));
		if (opt(o, "model-image"))
			cJSON_AddStringToObject(in, "modelImageUrl", opt(o, "model-image"));
		if (has(o, "pose-tweak"))
			cJSON_AddBoolToObject(in, "poseTweak", 1);
		if (opt(o, "seed")) {
			long long seed;
			if (util_parse_ll(opt(o, "seed"), &seed) != 0) {
				snprintf(err, errlen, "--seed must be a whole number");
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
		if (opt(o, "prompt"))
			cJSON_AddStringToObject(in, "prompt", opt(o, "prompt"));
		if (opt(o, "model"))
			cJSON_AddStringToObject(in, "model", opt(o, "model"));
	} else if (strcmp(type, "generate_image") == 0) {
		if (opt(o, "description"))
			cJSON_AddStringToObject(in, "description", opt(o, "description"));
		cJSON_AddBoolToObject(in, "extractTopOnly", has(o, "top-only"));
		cJSON_AddBoolToObject(in, "wearMask", has(o, "white-mask"));
	} else if (strcmp(type, "model_pose") == 0) {
		if (opt(o, "pose"))
			cJSON_AddStringToObject(in, "pose", opt(o, "pose"));
	} else if (strcmp(type, "extract_clothing") == 0) {
		cJSON_AddBoolToObject(in, "recommendMatches", has(o, "recommend-matches"));
		cJSON_AddBoolToObject(in, "topOnly", has(o, "top-only"));
	}
	if (opt(o, "ratio"))
		cJSON_AddStringToObject(d, "ratio", opt(o, "ratio"));
	if (opt(o, "format"))
		cJSON_AddStringToObject(d, "outputFormat", opt(o, "format"));
	if (opt(o, "character"))
		cJSON_AddStringToObject(d, "character", opt(o, "character"));
	if (opt(o, "callback-url"))
		cJSON_AddStringToObject(d, "callbackUrl", opt(o, "callback-url"));
	s = cJSON_PrintUnformatted(d);
	cJSON_Delete(d);
	return s;
}

static int cmd_create(int argc, char **argv)
{
	struct opts o;
	struct ctx c;
	struct job *j = NULL;
	struct kie_task_request req;
	struct kie_error kerr;
	char err[512], *desc = NULL, *prompt = NULL, *task_id = NULL;
	int rc = EXIT_USAGE;

	if (parse_opts(argc, argv, create_spec, &o) != 0)
		return EXIT_USAGE;
	if (has(&o, "help") || o.npos == 0) {
		fputs(create_help, has(&o, "help") ? stdout : stderr);
		fputs(exit_codes_help, has(&o, "help") ? stdout : stderr);
		return has(&o, "help") ? EXIT_OK : EXIT_USAGE;
	}
	if (ctx_open(&c, !has(&o, "dry-run"), 1) != 0) {
		ctx_close(&c);
		return EXIT_USAGE;
	}
	desc = descriptor_from_flags(o.pos[0], &o, err, sizeof(err));
	if (!desc) {
		fprintf(stderr, "kie: %s\n", err);
		goto out;
	}
	{
		struct job_parse_opts po = ctx_parse_opts(&c);
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
	if (has(&o, "dry-run")) {
		char *body = kie_build_create_body(&req, c.cfg.kie_model, &kerr);
		if (!body) {
			print_kie_error(&kerr);
			rc = exit_for(&kerr);
			goto out;
		}
		puts(body);
		free(body);
		rc = EXIT_OK;
		goto out;
	}
	if (kie_client_create_task(c.kie, &req, &task_id, &kerr) != 0) {
		print_kie_error(&kerr);
		rc = exit_for(&kerr);
		goto out;
	}
	log_info(j->id, task_id, "created task (%s)", job_type_str(j->type));
	rc = EXIT_OK;
	if (!has(&o, "no-metadata")) {
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
	if (!has(&o, "wait")) {
		printf("{\"taskId\":\"%s\",\"jobId\":\"%s\"}\n", task_id, j->id);
		goto out;
	}
	{
		struct kie_result r;
		if (kie_client_wait(c.kie, task_id, c.cfg.wait_attempts, c.cfg.wait_interval_ms, &r,
				    &kerr) != 0) {
			print_kie_error(&kerr);
			rc = exit_for(&kerr);
			goto out;
		}
		int r2 = report_result(&c, &r, !has(&o, "no-metadata"));
		if (rc == EXIT_OK)
			rc = r2;
		kie_result_free(&r);
	}
out:
	free(task_id);
	free(prompt);
	free(desc);
	job_free(j);
	ctx_close(&c);
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

static int cmd_status_wait(int argc, char **argv, int wait)
{
	static const struct optspec spec[] = {{"attempts", 1}, {"interval-ms", 1},
					      {"no-metadata", 0}, {"help", 0}, {NULL, 0}};
	struct opts o;
	struct ctx c;
	struct kie_result r;
	struct kie_error kerr;
	int rc;

	if (parse_opts(argc, argv, spec, &o) != 0)
		return EXIT_USAGE;
	if (has(&o, "help") || o.npos != 1) {
		FILE *f = has(&o, "help") ? stdout : stderr;
		fputs(wait ? wait_help : status_help, f);
		fputs(exit_codes_help, f);
		return has(&o, "help") ? EXIT_OK : EXIT_USAGE;
	}
	if (ctx_open(&c, 1, 0) != 0) {
		ctx_close(&c);
		return EXIT_USAGE;
	}
	long attempts = c.cfg.wait_attempts, interval = c.cfg.wait_interval_ms;
	long long v;
	if (opt(&o, "attempts")) {
		if (util_parse_ll(opt(&o, "attempts"), &v) != 0 || v < 1) {
			fprintf(stderr, "kie: --attempts must be a whole number >= 1\n");
			ctx_close(&c);
			return EXIT_USAGE;
		}
		attempts = (long)v;
	}
	if (opt(&o, "interval-ms")) {
		if (util_parse_ll(opt(&o, "interval-ms"), &v) != 0 || v < 0) {
			fprintf(stderr, "kie: --interval-ms must be a whole number >= 0\n");
			ctx_close(&c);
			return EXIT_USAGE;
		}
		interval = (long)v;
	}
	if (wait)
		rc = kie_client_wait(c.kie, o.pos[0], attempts, interval, &r, &kerr);
	else
		rc = kie_client_get_task(c.kie, o.pos[0], &r, &kerr);
	if (rc != 0) {
		print_kie_error(&kerr);
		rc = exit_for(&kerr);
	} else {
		rc = report_result(&c, &r, wait && !has(&o, "no-metadata"));
		kie_result_free(&r);
	}
	ctx_close(&c);
	return rc;
}

/* ---- kie credits / callback / prompt / metadata / config ---- */

static int cmd_credits(int argc, char **argv)
{
	static const struct optspec spec[] = {{"help", 0}, {NULL, 0}};
	struct opts o;
	struct ctx c;
	struct kie_error kerr;
	double credits;
	int rc = EXIT_OK;

	if (parse_opts(argc, argv, spec, &o) != 0)
		return EXIT_USAGE;
	if (has(&o, "help")) {
		puts("usage: kie credits\nPrints the account's remaining credits as {\"credits\":N}.");
		fputs(exit_codes_help, stdout);
		return EXIT_OK;
	}
	if (ctx_open(&c, 1, 0) != 0) {
		ctx_close(&c);
		return EXIT_USAGE;
	}
	if (kie_client_credits(c.kie, &credits, &kerr) != 0) {
		print_kie_error(&kerr);
		rc = exit_for(&kerr);
	} else {
		printf("{\"credits\":%.15g}\n", credits);
	}
	ctx_close(&c);
	return rc;
}

static int cmd_callback(int argc, char **argv)
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

	if (parse_opts(argc, argv, spec, &o) != 0)
		return EXIT_USAGE;
	if (has(&o, "help")) {
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

static int cmd_prompt(int argc, char **argv)
{
	struct opts o;
	struct ctx c;
	struct job *j = NULL;
	char err[512], *desc = NULL, *prompt = NULL;
	int rc = EXIT_USAGE;

	if (parse_opts(argc, argv, create_spec, &o) != 0)
		return EXIT_USAGE;
	if (has(&o, "help") || o.npos != 1) {
		fputs("usage: kie prompt OPERATION [the options of kie create]\n"
		      "Prints the prompt an operation would send (templates from KIE_PROMPTS_DIR\n"
		      "override the built-in ones) and its length in characters on stderr.\n",
		      has(&o, "help") ? stdout : stderr);
		return has(&o, "help") ? EXIT_OK : EXIT_USAGE;
	}
	if (ctx_open(&c, 0, 1) != 0) {
		ctx_close(&c);
		return EXIT_USAGE;
	}
	desc = descriptor_from_flags(o.pos[0], &o, err, sizeof(err));
	if (desc) {
		struct job_parse_opts po = ctx_parse_opts(&c);
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
	ctx_close(&c);
	return rc;
}

static int cmd_metadata(int argc, char **argv)
{
	static const struct optspec spec[] = {{"help", 0}, {NULL, 0}};
	struct opts o;
	struct ctx c;
	struct metadata_store *ms = NULL;
	char err[512];
	int rc = EXIT_USAGE;

	if (parse_opts(argc, argv, spec, &o) != 0)
		return EXIT_USAGE;
	if (has(&o, "help") || o.npos < 2 ||
	    !(strcmp(o.pos[0], "get") == 0 || strcmp(o.pos[0], "update") == 0)) {
		fputs("usage: kie metadata get TASK_ID\n"
		      "       kie metadata update TASK_ID JSON_OBJECT\n"
		      "Reads, or merges fields into, kie-tasks/<TASK_ID>.json in the configured\n"
		      "store (KIE_METADATA_STORE: fs or r2). Exit 1 when the record does not exist;\n"
		      "7 on a store error.\n", has(&o, "help") ? stdout : stderr);
		return has(&o, "help") ? EXIT_OK : EXIT_USAGE;
	}
	if (ctx_open(&c, 0, 0) != 0)
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
			print_json(rec);
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
	ctx_close(&c);
	return rc;
}

static int cmd_config(int argc, char **argv)
{
	struct config cfg;
	char err[512];
	(void)argv;
	if (argc > 0) {
		config_print_help(stdout);
		return EXIT_OK;
	}
	config_defaults(&cfg);
	if (config_load_env(&cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "kie: configuration error: %s\n", err);
		config_free(&cfg);
		return EXIT_USAGE;
	}
	config_print(&cfg, stdout);
	config_free(&cfg);
	return EXIT_OK;
}

static const char pause_help[] =
	"usage: kie pause [--reason TEXT] [--for MS]\n"
	"       kie resume\n"
	"Pauses the pool that REDIS_URL and KIE_REDIS_PREFIX name: runners take no new jobs\n"
	"(the queue keeps them); pollers go on collecting tasks that exist. The pause lasts\n"
	"until `kie resume` (or MS milliseconds); automatic pauses (401/402/433) never replace\n"
	"it. `kie resume` lifts any pause, automatic ones too. Prints the pause it set or lifted.\n";

/* Connects for one command: gives up after 5 s rather than retrying for ever. */
static int cli_queue(const struct config *cfg, struct rconn *rc, struct queue *q)
{
	struct rconn_addr addr;
	char err[512];

	if (config_redis_addr(cfg, &addr, err, sizeof(err)) != 0) {
		fprintf(stderr, "kie: configuration error: %s\n", err);
		return -1;
	}
	rconn_init(rc, &addr, 5000, NULL, "kie");
	rc->deadline_ms = util_monotonic_ms() + 5000;
	queue_init(q, rc, cfg->redis_prefix, "kie-cli", cfg->record_ttl_s, cfg->results_max);
	return 0;
}

static int cmd_pause(int argc, char **argv, int resume)
{
	static const struct optspec spec[] = {{"reason", 1}, {"for", 1}, {"help", 0}, {NULL, 0}};
	struct opts o;
	struct ctx c;
	struct rconn rc;
	struct queue q;
	long long ms = 0;
	long remaining = 0;
	char kind[32], reason[512];
	int rc_exit = EXIT_OK, done = 0;

	if (parse_opts(argc, argv, spec, &o) != 0 || has(&o, "help") || o.npos ||
	    (resume && o.n)) {
		fputs(pause_help, has(&o, "help") ? stdout : stderr);
		fputs(exit_codes_help, has(&o, "help") ? stdout : stderr);
		return has(&o, "help") ? EXIT_OK : EXIT_USAGE;
	}
	if (opt(&o, "for") && (util_parse_ll(opt(&o, "for"), &ms) != 0 || ms < 1)) {
		fprintf(stderr, "kie: --for must be a positive number of milliseconds\n");
		return EXIT_USAGE;
	}
	if (ctx_open(&c, 0, 0) != 0 || cli_queue(&c.cfg, &rc, &q) != 0) {
		ctx_close(&c);
		return EXIT_USAGE;
	}
	if (queue_pause_get(&q, &remaining, kind, sizeof(kind), reason, sizeof(reason)) != 0) {
		fprintf(stderr, "kie: %s\n", q.err);
		rc_exit = EXIT_REDIS;
		goto out;
	}
	if (resume) {
		if (!remaining) {
			printf("not paused\n");
			goto out;
		}
		if (queue_pause_clear(&q, NULL, &done) != 0) {
			fprintf(stderr, "kie: %s\n", q.err);
			rc_exit = EXIT_REDIS;
			goto out;
		}
		printf("resumed (the pool was paused: %s: %s)\n", kind, reason);
		goto out;
	}
	if (queue_pause_set(&q, "operator", (long)ms,
			    opt(&o, "reason") ? opt(&o, "reason") : "paused by an operator", &done) != 0) {
		fprintf(stderr, "kie: %s\n", q.err);
		rc_exit = EXIT_REDIS;
		goto out;
	}
	if (ms)
		printf("paused for %lld ms: %s\n", ms, opt(&o, "reason") ? opt(&o, "reason") : "");
	else
		printf("paused until `kie resume`: %s\n", opt(&o, "reason") ? opt(&o, "reason") : "");
out:
	rconn_close(&rc);
	ctx_close(&c);
	return rc_exit;
}

static const char main_help[] =
	"usage: kie COMMAND [options]   (kie COMMAND --help for each)\n"
	"Commands:\n"
	"  create OPERATION   create a KIE task (raw, generate-image, model-pose,\n"
	"                     extract-clothing, outfit-change-v2); --wait for the result\n"
	"  status TASK_ID     read a task's state once (recordInfo)\n"
	"  wait TASK_ID       wait until a task succeeds or fails\n"
	"  credits            the account's remaining credits\n"
	"  callback [FILE]    normalize a callback body (processCallback)\n"
	"  prompt OPERATION   print the prompt an operation would send\n"
	"  metadata get|update TASK_ID   read or merge a task's metadata record\n"
	"  config             print the active settings (secrets masked); --help lists all\n"
	"  pause [--reason R] [--for MS]   pause the pool (Redis): no new jobs are taken\n"
	"  resume             lift the pool's pause\n"
	"Configuration comes from the environment (KIE_API_TOKEN, KIE_BASE_URL, R2_*, ...).\n";

int main(int argc, char **argv)
{
	int rc;
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		fputs(main_help, argc < 2 ? stderr : stdout);
		fputs(exit_codes_help, argc < 2 ? stderr : stdout);
		if (argc >= 2)
			config_print_help(stdout);
		return argc < 2 ? EXIT_USAGE : EXIT_OK;
	}
	if (http_global_init() != 0) {
		fprintf(stderr, "kie: libcurl initialisation failed\n");
		return EXIT_USAGE;
	}
	const char *cmd = argv[1];
	int sub_argc = argc - 2;
	char **sub_argv = argv + 2;
	if (strcmp(cmd, "create") == 0) rc = cmd_create(sub_argc, sub_argv);
	else if (strcmp(cmd, "status") == 0) rc = cmd_status_wait(sub_argc, sub_argv, 0);
	else if (strcmp(cmd, "wait") == 0) rc = cmd_status_wait(sub_argc, sub_argv, 1);
	else if (strcmp(cmd, "credits") == 0) rc = cmd_credits(sub_argc, sub_argv);
	else if (strcmp(cmd, "callback") == 0) rc = cmd_callback(sub_argc, sub_argv);
	else if (strcmp(cmd, "prompt") == 0) rc = cmd_prompt(sub_argc, sub_argv);
	else if (strcmp(cmd, "metadata") == 0) rc = cmd_metadata(sub_argc, sub_argv);
	else if (strcmp(cmd, "config") == 0) rc = cmd_config(sub_argc, sub_argv);
	else if (strcmp(cmd, "pause") == 0) rc = cmd_pause(sub_argc, sub_argv, 0);
	else if (strcmp(cmd, "resume") == 0) rc = cmd_pause(sub_argc, sub_argv, 1);
	else {
		fprintf(stderr, "kie: unknown command \"%s\" (see kie --help)\n", cmd);
		rc = EXIT_USAGE;
	}
	http_global_cleanup();
	return rc;
}
