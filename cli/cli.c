/* cli.c — what every `kie` command shares: the option parser, the set-up from the
 * environment, the Redis connection of one command, printing results. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pwd.h>

#include <cjson/cJSON.h>

#include "config/config.h"
#include "core/log.h"
#include "core/util.h"
#include "ops/audit.h"
#include "store/metadata.h"
#include "cli.h"

const char cli_exit_codes_help[] =
	"Exit codes: 0 ok; 1 task failed; 2 usage or configuration error; 3 permanent KIE\n"
	"error or bad input; 4 retryable (rate limit, network, wait timed out); 5 account-level\n"
	"(401/402/433); 6 ambiguous (the task may exist: check before re-running); 7 metadata\n"
	"store error; 8 Redis unreachable or refused the command; 9 not found (no such job or\n"
	"dead letter); 10 refused (a dead letter that may not be retried; nothing else done\n"
	"for it).\n";


/* ---- options ---- */

enum { OPT_SPEC = 256, OPT_SETTING = 1024 };

static int in_spec(const struct optspec *spec, const char *name)
{
	for (; spec->name; spec++)
		if (strcmp(spec->name, name) == 0)
			return 1;
	return 0;
}

int cli_parse_opts(int argc, char **argv, const char *cmd, const struct optspec *spec,
		   int settings, struct opts *o)
{
	size_t nspec = 0, nset = settings ? config_cli_names(NULL, 0) : 0, n = 0;
	const char **names = util_xcalloc(nset + 1, sizeof(*names));
	struct option *lo;
	char **av, prog[64];
	int c, rc = 0;

	memset(o, 0, sizeof(*o));
	while (spec[nspec].name)
		nspec++;
	config_cli_names(names, nset);
	lo = util_xcalloc(nspec + nset + 1, sizeof(*lo));
	/* a value of its own for each: getopt_long calls an abbreviation ambiguous only
	 * between options that differ ("--redis" must not pick REDIS_URL) */
	for (size_t i = 0; i < nspec; i++)
		lo[n++] = (struct option){spec[i].name, spec[i].has_arg ? required_argument
									: no_argument,
					  NULL, OPT_SPEC + (int)i};
	for (size_t i = 0; i < nset; i++)
		if (!in_spec(spec, names[i]))
			lo[n++] = (struct option){names[i], required_argument, NULL,
						  OPT_SETTING + (int)i};
	/* getopt_long reads argv[0] as the program's name, for its messages */
	snprintf(prog, sizeof(prog), "kie %s", cmd);
	av = util_xcalloc((size_t)argc + 2, sizeof(*av));
	av[0] = prog;
	for (int i = 0; i < argc; i++)
		av[i + 1] = argv[i];
	optind = 0; /* glibc: start afresh */
	/* "-": the other arguments come back in order (code 1), so positional arguments may
	 * stand between options whatever POSIXLY_CORRECT says */
	while (rc == 0 && (c = getopt_long(argc + 1, av, "-h", lo, NULL)) != -1) {
		if (c == 1) {
			if (o->npos == 8) {
				fprintf(stderr, "kie %s: too many arguments\n", cmd);
				rc = -1;
			} else {
				o->pos[o->npos++] = optarg;
			}
		} else if (c == '?') { /* getopt_long said what is wrong */
			fprintf(stderr, "kie: see kie %s --help\n", cmd);
			rc = -1;
		} else if (o->n == MAX_OPTS || o->nset == MAX_OPTS) {
			fprintf(stderr, "kie %s: too many options\n", cmd);
			rc = -1;
		} else if (c >= OPT_SETTING) {
			o->set_name[o->nset] = names[c - OPT_SETTING];
			o->set_value[o->nset++] = optarg;
		} else {
			int i = c == 'h' ? -1 : c - OPT_SPEC;
			o->name[o->n] = i < 0 ? "help" : spec[i].name;
			o->value[o->n++] = i >= 0 && spec[i].has_arg ? optarg : "1";
		}
	}
	for (int i = optind; rc == 0 && i <= argc; i++) { /* after "--" */
		if (o->npos == 8) {
			fprintf(stderr, "kie %s: too many arguments\n", cmd);
			rc = -1;
		} else {
			o->pos[o->npos++] = av[i];
		}
	}
	/* names point into the config table and argv, which outlive o */
	free(names);
	free(lo);
	free(av);
	return rc;
}

const char *cli_opt(const struct opts *o, const char *name)
{
	const char *v = NULL;
	for (int i = 0; i < o->n; i++)
		if (strcmp(o->name[i], name) == 0)
			v = o->value[i];
	return v;
}

int cli_has(const struct opts *o, const char *name)
{
	return cli_opt(o, name) != NULL;
}

/* ---- shared set-up ---- */

int cli_exit_for(const struct kie_error *e)
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

void cli_print_kie_error(const struct kie_error *e)
{
	fprintf(stderr, "kie: %s [class=%s transport=%s http=%ld code=%d]\n", e->message,
		kie_err_class_str(e->cls), http_transport_str(e->transport), e->http_status,
		e->code);
}

int cli_ctx_open(struct cli_ctx *c, const struct opts *o, int need_kie, int need_prompts)
{
	char err[512], name[80];
	enum log_level lvl;

	memset(c, 0, sizeof(*c));
	config_defaults(&c->cfg);
	if (config_load_env(&c->cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "kie: configuration error: %s\n", err);
		return -1;
	}
	for (int i = 0; o && i < o->nset; i++) {
		/* with its "--": config_set refuses secrets from the command line */
		snprintf(name, sizeof(name), "--%s", o->set_name[i]);
		if (config_set(&c->cfg, name, o->set_value[i], err, sizeof(err)) != 0) {
			fprintf(stderr, "kie: %s\n", err);
			return -1;
		}
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
struct job_parse_opts cli_ctx_parse_opts(const struct cli_ctx *c)
{
	struct job_parse_opts o = {
		.max_bytes = (size_t)c->cfg.job_max_bytes, .default_model = c->cfg.kie_model,
		.prefix = c->cfg.redis_prefix, .meta_max_bytes = (size_t)c->cfg.meta_max_bytes,
		.default_callback_url = c->cfg.kie_callback_url,
	};
	return o;
}

void cli_ctx_close(struct cli_ctx *c)
{
	kie_client_free(c->kie);
	prompts_free(c->prompts);
	config_free(&c->cfg);
}

void cli_print_json(const cJSON *o)
{
	char *s = cJSON_PrintUnformatted(o); /* one line: jq and JSON Lines readers */
	puts(s);
	free(s);
}

/* Prints the normalized result and merges it into the metadata record (unless off). */
int cli_report_result(struct cli_ctx *c, const struct kie_result *r, int save)
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

int cli_queue(const struct config *cfg, struct rconn *rc, struct queue *q)
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

void cli_put(FILE *f, const char *s, size_t max_bytes)
{
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++, n++) {
		if (max_bytes && n >= max_bytes) {
			/* stop on a character boundary, then say it was cut */
			while ((*p & 0xC0) == 0x80)
				fputc(*p++, f);
			fputs("...", f);
			return;
		}
		fputc(*p < 0x20 || *p == 0x7f ? '?' : *p, f);
	}
}

const char *cli_jstr(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

double cli_jnum(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

void cli_age(double ms, char *out, size_t outlen)
{
	if (ms < 0)
		snprintf(out, outlen, "-");
	else if (ms < 1000)
		snprintf(out, outlen, "%.0fms", ms);
	else if (ms < 60000)
		snprintf(out, outlen, "%.0fs", ms / 1000);
	else if (ms < 3600000)
		snprintf(out, outlen, "%.0fm", ms / 60000);
	else if (ms < 86400000)
		snprintf(out, outlen, "%.1fh", ms / 3600000);
	else
		snprintf(out, outlen, "%.1fd", ms / 86400000);
}

int cli_admin_open(struct cli_ctx *c, const struct opts *o, struct rconn *rc, struct queue *q)
{
	if (cli_ctx_open(c, o, 0, 0) != 0)
		return -1;
	if (cli_queue(&c->cfg, rc, q) != 0)
		return -1;
	q->dead_max = c->cfg.dead_max;
	return 0;
}

void cli_audit(struct queue *q, const char *action, const cJSON *detail)
{
	char who[160], from[300], host[256] = "?", err[300];
	const char *user = getenv("USER");
	const struct passwd *pw;

	if (!user || !*user) {
		pw = getpwuid(getuid());
		user = pw && pw->pw_name ? pw->pw_name : "?";
	}
	if (gethostname(host, sizeof(host)) != 0)
		util_strlcpy(host, "?", sizeof(host));
	host[sizeof(host) - 1] = '\0';
	snprintf(who, sizeof(who), "cli:%.64s", user);
	snprintf(from, sizeof(from), "%s (cli)", host);
	if (audit_add(q, who, from, action, detail, err, sizeof(err)) != 0)
		fprintf(stderr, "kie: done, but not recorded in the audit list: %s\n", err);
}
