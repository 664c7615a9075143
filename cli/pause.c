/* pause.c — `kie pause` and `kie resume`: the pool-wide operator pause. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/util.h"
#include "kie/accounts.h"
#include "ops/admin.h"
#include "pool/queue.h"
#include "cli.h"

static const char pause_help[] =
	"usage: kie pause [--account ALIAS] [--reason TEXT] [--for DURATION] [--json]\n"
	"                 [--SETTING VALUE ...]\n"
	"       kie resume [--account ALIAS] [--json] [--SETTING VALUE ...]\n"
	"Pauses the pool that REDIS_URL and KIE_REDIS_PREFIX name: runners take no new jobs\n"
	"(the queue keeps them); pollers go on collecting tasks that exist. The pause lasts\n"
	"until `kie resume`, or for DURATION (500ms, 90s, 15m, 2h, 1d; a plain number is\n"
	"seconds; 1 ms to a year); automatic pauses (401/402/433) never replace it. `kie\n"
	"resume` lifts any pause, automatic ones too. Prints the pause it set or lifted.\n"
	"  --account ALIAS  that account's pause only (<p>:pause:acct:ALIAS, KIE_ACCOUNTS_FILE):\n"
	"           its jobs wait while the other accounts' run; resume lifts it (and a 402's)\n"
	"  --json   one JSON object: pause {\"paused\",\"kind\",\"reason\",\"remainingMs\"}\n"
	"           (-1: until lifted); resume {\"resumed\",\"was\"} (docs/cli.md)\n";

static void print_json_pause(const char *reason, long long ms)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddTrueToObject(o, "paused");
	cJSON_AddStringToObject(o, "kind", "operator");
	cJSON_AddStringToObject(o, "reason", reason);
	cJSON_AddNumberToObject(o, "remainingMs", ms ? (double)ms : -1);
	cli_print_json(o);
	cJSON_Delete(o);
}

static void print_json_resume(int was_paused, const char *kind, const char *reason)
{
	cJSON *o = cJSON_CreateObject(), *was;
	cJSON_AddBoolToObject(o, "resumed", was_paused);
	if (was_paused) {
		was = cJSON_AddObjectToObject(o, "was");
		cJSON_AddStringToObject(was, "kind", kind);
		cJSON_AddStringToObject(was, "reason", reason);
	} else {
		cJSON_AddNullToObject(o, "was");
	}
	cli_print_json(o);
	cJSON_Delete(o);
}

/* ms in its largest whole unit: "90s", "15m", "2h", "1d", "1500ms". */
static void exact_duration(int64_t ms, char *out, size_t outlen)
{
	static const struct { int64_t ms; const char *unit; } units[] = {
		{86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}};
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (ms % units[i].ms == 0) {
			snprintf(out, outlen, "%lld%s", (long long)(ms / units[i].ms), units[i].unit);
			return;
		}
	snprintf(out, outlen, "%lldms", (long long)ms);
}

int cli_cmd_pause(int argc, char **argv, int resume)
{
	static const struct optspec pause_spec[] = {{"reason", 1}, {"for", 1}, {"account", 1},
						    {"json", 0}, {"help", 0}, {NULL, 0}};
	static const struct optspec resume_spec[] = {{"account", 1}, {"json", 0}, {"help", 0},
						     {NULL, 0}};
	struct opts o;
	struct cli_ctx c;
	struct rconn rc;
	struct queue q;
	int64_t ms = 0;
	long remaining = 0;
	char kind[32], reason[512];
	const char *why, *acct;
	int rc_exit = EXIT_OK, done = 0, json;

	if (cli_parse_opts(argc, argv, resume ? "resume" : "pause",
			   resume ? resume_spec : pause_spec, 1, &o) != 0 ||
	    cli_has(&o, "help") || o.npos) {
		fputs(pause_help, cli_has(&o, "help") ? stdout : stderr);
		fputs(cli_exit_codes_help, cli_has(&o, "help") ? stdout : stderr);
		return cli_has(&o, "help") ? EXIT_OK : EXIT_USAGE;
	}
	json = cli_has(&o, "json");
	acct = cli_opt(&o, "account");
	if (acct && !accounts_alias_valid(acct)) {
		fprintf(stderr, "kie: --account must be an account's alias (1 to 64 bytes of "
			"[A-Za-z0-9_.-], not starting with '.'), as KIE_ACCOUNTS_FILE names it\n");
		return EXIT_USAGE;
	}
	why = cli_opt(&o, "reason") ? cli_opt(&o, "reason") : "paused by an operator";
	if (cli_opt(&o, "for") &&
	    (util_parse_duration_ms(cli_opt(&o, "for"), 1000, ADMIN_PAUSE_MAX_MS, &ms) != 0 ||
	     ms < 1)) {
		fprintf(stderr, "kie: --for must be a duration from 1 ms to a year: a whole number "
			"and an optional unit, such as 500ms, 90s, 15m, 2h or 1d (a plain number is "
			"seconds)\n");
		return EXIT_USAGE;
	}
	memset(&rc, 0, sizeof(rc));
	if (cli_admin_open(&c, &o, &rc, &q) != 0) {
		rconn_close(&rc);
		cli_ctx_close(&c);
		return EXIT_USAGE;
	}
	if (queue_acct_pause_get(&q, acct, &remaining, kind, sizeof(kind), reason,
				 sizeof(reason)) != 0) {
		fprintf(stderr, "kie: %s\n", q.err);
		rc_exit = EXIT_REDIS;
		goto out;
	}
	if (resume) {
		if (!remaining) {
			if (json)
				print_json_resume(0, NULL, NULL);
			else
				printf("not paused\n");
			goto out;
		}
		if (queue_acct_pause_clear(&q, acct, NULL, &done) != 0) {
			fprintf(stderr, "kie: %s\n", q.err);
			rc_exit = EXIT_REDIS;
			goto out;
		}
		{
			cJSON *d = cJSON_CreateObject();
			cJSON_AddBoolToObject(d, "changed", done);
			if (acct)
				cJSON_AddStringToObject(d, "account", acct);
			cli_audit(&q, "resume", d);
			cJSON_Delete(d);
		}
		if (json) {
			print_json_resume(1, kind, reason);
		} else {
			if (acct)
				printf("resumed account %s (it was paused: %s: ", acct, kind);
			else
				printf("resumed (the pool was paused: %s: ", kind);
			cli_put(stdout, reason, 300);
			printf(")\n");
		}
		goto out;
	}
	if (queue_acct_pause_set(&q, acct, "operator", (long)ms, why, &done) != 0) {
		fprintf(stderr, "kie: %s\n", q.err);
		rc_exit = EXIT_REDIS;
		goto out;
	}
	{
		cJSON *d = cJSON_CreateObject();
		cJSON_AddBoolToObject(d, "changed", done);
		cJSON_AddStringToObject(d, "reason", why);
		if (acct)
			cJSON_AddStringToObject(d, "account", acct);
		if (ms)
			cJSON_AddNumberToObject(d, "forMs", (double)ms);
		else
			cJSON_AddNullToObject(d, "forMs");
		cli_audit(&q, "pause", d);
		cJSON_Delete(d);
	}
	if (json) {
		print_json_pause(why, (long long)ms);
	} else if (ms) {
		char left[32], until[UTIL_ISO8601_SIZE];
		exact_duration(ms, left, sizeof(left));
		util_iso8601(util_now_ms() + ms, until);
		printf("paused for %s (until %s): ", left, until);
		cli_put(stdout, why, 300);
		printf("\n");
	} else {
		printf("paused until `kie resume`: ");
		cli_put(stdout, why, 300);
		printf("\n");
	}
out:
	rconn_close(&rc);
	cli_ctx_close(&c);
	return rc_exit;
}
