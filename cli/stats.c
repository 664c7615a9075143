/* stats.c — `kie stats` (the pool at a glance) and `kie job show ID` (one job's story). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/util.h"
#include "kie/accounts.h"
#include "kie/job.h"
#include "ops/admin.h"
#include "pool/limiter.h"
#include "cli.h"

#define OR(s) ((s) ? (s) : "-")

static const char stats_help[] =
	"usage: kie stats [--json] [--SETTING VALUE ...]\n"
	"The pool that REDIS_URL and KIE_REDIS_PREFIX name: depths of queue, processing,\n"
	"delayed, polling, uncertain, dead, callbacks and results; each consumer and the job it\n"
	"holds; completions, failures and dead letters per minute over the last 5 minutes (from\n"
	"the timestamps of the newest 2000 events and dead letters); the counters of <p>:stats;\n"
	"the pause (kind, reason, time left); the account's limiter state (when KIE_API_TOKEN\n"
	"is set: the limiter keys are named after the token's hash; with KIE_ACCOUNTS_FILE,\n"
	"each account's). Queued and delayed jobs\n"
	"are summed over every account's scheduling structure (<p>:accounts), with a line per\n"
	"account when there are several.\n"
	"  --json   one JSON object on one line (fields in docs/cli.md)\n";

/* One account's limiter line (admin_stats' limiter section) */
static void print_limiter(const cJSON *l)
{
	static const char *const names[] = {"create", "query"};
	const char *alias = cli_jstr(l, "alias");
	printf("limiter (account %s%s%s):", alias ? alias : "", alias ? ", " : "",
	       OR(cli_jstr(l, "account")));
	for (int i = 0; i < 2; i++) {
		const cJSON *x = cJSON_GetObjectItemCaseSensitive(l, names[i]);
		printf(" %s: %.0f in the log, blocked for %.0f ms, %.0f penalties%s", names[i],
		       cli_jnum(x, "logEntries"), cli_jnum(x, "blockedForMs"),
		       cli_jnum(x, "penalties"), i == 0 ? ";" : "\n");
	}
}

static void print_stats(const cJSON *s)
{
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(s, "depths");
	const cJSON *r = cJSON_GetObjectItemCaseSensitive(s, "rates");
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(s, "pause");
	const cJSON *w = cJSON_GetObjectItemCaseSensitive(s, "workers");
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(s, "counters");
	const cJSON *l = cJSON_GetObjectItemCaseSensitive(s, "limiter");
	const cJSON *it;

	printf("pool %s at %s\n", OR(cli_jstr(s, "prefix")), OR(cli_jstr(s, "time")));
	printf("  queue %.0f  processing %.0f  delayed %.0f  polling %.0f (+%.0f not yet promoted)  uncertain "
	       "%.0f  dead %.0f  callbacks %.0f  results %.0f\n",
	       cli_jnum(d, "queue"), cli_jnum(d, "processing"), cli_jnum(d, "delayed"),
	       cli_jnum(d, "pollDue"), cli_jnum(d, "polling"), cli_jnum(d, "uncertain"),
	       cli_jnum(d, "dead"), cli_jnum(d, "callbacks"), cli_jnum(d, "results"));
	{ /* i20-counts: each account's structure, when there are several */
		const cJSON *acc = cJSON_GetObjectItemCaseSensitive(s, "accounts");
		if (cJSON_GetArraySize(acc) > 1) {
			const char *sep = "";
			printf("  by account:");
			cJSON_ArrayForEach(it, acc) {
				printf("%s %s %.0f queued (%.0f over budget), %.0f delayed", sep,
				       it->string, cli_jnum(it, "queued"), cli_jnum(it, "overBudget"),
				       cli_jnum(it, "delayed"));
				sep = ";";
			}
			printf("\n");
		}
	}
	printf("rates (last 5 min%s): %.1f completed/min, %.1f failed/min, %.1f dead/min\n",
	       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "lowerBound")) ? ", at least" : "",
	       cli_jnum(r, "completedPerMin"), cli_jnum(r, "failedPerMin"),
	       cli_jnum(r, "deadPerMin"));
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "paused"))) {
		double left = cli_jnum(p, "remainingMs");
		char age[32];
		cli_age(left, age, sizeof(age));
		printf("PAUSED (%s) since %s: ", OR(cli_jstr(p, "kind")), OR(cli_jstr(p, "since")));
		cli_put(stdout, cli_jstr(p, "reason"), 300);
		printf(" — %s%s\n", left < 0 ? "until lifted" : age, left < 0 ? "" : " left");
	} else {
		printf("not paused\n");
	}
	printf("workers (%d consumers; %.0f jobs and %.0f tasks in flight):\n",
	       cJSON_GetArraySize(w),
	       cli_jnum(cJSON_GetObjectItemCaseSensitive(s, "inFlight"), "jobs"),
	       cli_jnum(cJSON_GetObjectItemCaseSensitive(s, "inFlight"), "tasks"));
	if (cJSON_GetArraySize(w))
		printf("  %-40s %-5s %-30s %-18s %s\n", "CONSUMER", "ALIVE", "JOB", "TYPE", "STATE");
	cJSON_ArrayForEach(it, w) {
		printf("  %-40s %-5s ", OR(cli_jstr(it, "consumer")),
		       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "alive")) ? "yes" : "NO");
		printf("%-30s %-18s %s\n", cli_jstr(it, "jobId") ? cli_jstr(it, "jobId") : "-",
		       cli_jstr(it, "type") ? cli_jstr(it, "type") : "-",
		       cli_jstr(it, "state") ? cli_jstr(it, "state") : "-");
	}
	printf("counters:");
	cJSON_ArrayForEach(it, c)
		printf(" %s=%.0f", it->string, it->valuedouble);
	printf("\n");
	if (cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(s, "limiters"))) {
		/* several accounts: one line each */
		cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(s, "limiters"))
			print_limiter(it);
	} else if (cJSON_IsObject(l)) {
		print_limiter(l);
	}
}

int cli_cmd_stats(int argc, char **argv)
{
	static const struct optspec spec[] = {{"json", 0}, {"help", 0}, {NULL, 0}};
	struct opts o;
	struct cli_ctx c;
	struct rconn rc;
	struct queue q;
	char err[512], acct[17] = "";
	struct accounts accts = {NULL, 0};
	cJSON *s;
	int code = EXIT_OK;

	if (cli_parse_opts(argc, argv, "stats", spec, 1, &o) != 0 || cli_has(&o, "help") ||
	    o.npos) {
		FILE *f = cli_has(&o, "help") ? stdout : stderr;
		fputs(stats_help, f);
		fputs(cli_exit_codes_help, f);
		return cli_has(&o, "help") ? EXIT_OK : EXIT_USAGE;
	}
	memset(&rc, 0, sizeof(rc));
	if (cli_admin_open(&c, &o, &rc, &q) != 0) {
		rconn_close(&rc);
		cli_ctx_close(&c);
		return EXIT_USAGE;
	}
	if (*c.cfg.kie_api_token) {
		limiter_account_id(c.cfg.kie_api_token, acct);
	} else if (*c.cfg.kie_accounts_file) {
		/* several accounts: the first one's limiter as "limiter", and each one's in
		 * "limiters" below */
		if (accounts_load(&c.cfg, &accts, err, sizeof(err)) != 0) {
			fprintf(stderr, "kie: %s\n", err);
			rconn_close(&rc);
			cli_ctx_close(&c);
			return EXIT_USAGE;
		}
		if (accts.n > 0)
			util_strlcpy(acct, accts.v[0].id, sizeof(acct));
	}
	s = admin_stats(&q, c.cfg.account_prefix, acct, err, sizeof(err));
	if (s && accts.n > 1) {
		const char *aliases[ACCOUNTS_MAX], *ids[ACCOUNTS_MAX];
		for (int i = 0; i < accts.n && i < ACCOUNTS_MAX; i++) {
			aliases[i] = accts.v[i].alias;
			ids[i] = accts.v[i].id;
		}
		if (admin_stats_add_limiters(&q, c.cfg.account_prefix, aliases, ids,
					     accts.n < ACCOUNTS_MAX ? accts.n : ACCOUNTS_MAX, s, err,
					     sizeof(err)) != 0) {
			cJSON_Delete(s);
			s = NULL;
		}
	}
	accounts_free(&accts);
	if (s)
		cli_sched_add_stats(&q, s); /* i19: "schedule" */
	if (s)
		cli_credits_add_stats(&q, &c.cfg, s); /* i20-wire: "spend" */
	if (!s) {
		fprintf(stderr, "kie: %s\n", err);
		code = EXIT_REDIS;
	} else if (cli_has(&o, "json")) {
		cli_print_json(s);
	} else {
		print_stats(s);
		cli_sched_print_stats(s);
		cli_credits_print_stats(s);
	}
	cJSON_Delete(s);
	rconn_close(&rc);
	cli_ctx_close(&c);
	return code;
}

static const char job_help[] =
	"usage: kie job show JOB_ID [--json] [--SETTING VALUE ...]\n"
	"One job: what it is now (queued, in flight, uncertain, dead, finished), its state,\n"
	"task id, attempts, owner and error (the job hash), its task record, the completion\n"
	"events (newest 10000 of <p>:results) and dead letters that name it. A job a producer\n"
	"pushed has no job hash until a runner claims it: it is looked for in <p>:queue (all\n"
	"of it up to 10000 entries; else the 5000 next to be claimed and the 5000 newest) and\n"
	"in <p>:delayed (the 10000 due first). Times are ISO-8601 UTC.\n"
	"Exit 9 for an unknown job (never pushed, its records expired, or further back in the\n"
	"queue than the part looked at).\n"
	"  --json   one JSON object on one line (fields in docs/cli.md)\n";

/* Fields of the job and task hashes that are times (epoch ms): printed ISO-8601. */
static int is_time_field(const char *name)
{
	static const char *const times[] = {"createdAt", "updatedAt", "retryAt", "retriedAt",
					    "uncertainUntil", "lease", "finalizedAt", NULL};
	for (const char *const *t = times; *t; t++)
		if (strcmp(name, *t) == 0)
			return 1;
	return 0;
}

static void print_fields(const char *title, const cJSON *o)
{
	const cJSON *it;
	printf("%s:\n", title);
	cJSON_ArrayForEach(it, o) {
		printf("  %-16s ", it->string);
		if (cJSON_IsNumber(it) && is_time_field(it->string)) {
			char ts[UTIL_ISO8601_SIZE];
			util_iso8601((int64_t)it->valuedouble, ts);
			fputs(ts, stdout);
		} else if (cJSON_IsString(it)) {
			cli_put(stdout, it->valuestring, 400);
		} else {
			char *s = cJSON_PrintUnformatted(it);
			cli_put(stdout, s, 400);
			free(s);
		}
		printf("\n");
	}
}

/* The first line: what the job is now, and the detail that goes with it. */
static void print_status(const char *id, const cJSON *s)
{
	const cJSON *job = cJSON_GetObjectItemCaseSensitive(s, "job");
	const cJSON *qu = cJSON_GetObjectItemCaseSensitive(s, "queue");
	const char *status = OR(cli_jstr(s, "status")), *state = OR(cli_jstr(s, "state"));
	const char *task = cli_jstr(job, "taskId"), *owner = cli_jstr(job, "owner");
	char ts[UTIL_ISO8601_SIZE], left[32];

	printf("job ");
	cli_put(stdout, id, 0);
	if (strcmp(status, "queued") == 0) {
		const char *in = cli_jstr(qu, "in");
		if (strcmp(state, "over_budget") == 0) { /* i20-wire */
			printf(": over_budget — waits, no attempt spent, until the budget has room "
			       "(kie budget set) or the UTC day turns: ");
			cli_put(stdout, OR(cli_jstr(job, "budgetWait")), 300);
		} else if (in && strcmp(in, "queue") == 0) {
			printf(": queued — in the queue, waiting to be claimed");
		} else if (in && strcmp(in, "delayed") == 0) {
			util_iso8601((int64_t)cli_jnum(qu, "dueAt"), ts);
			printf(": queued — waiting for a retry, due %s", ts);
		} else if (strcmp(state, "retry_wait") == 0) {
			util_iso8601((int64_t)cli_jnum(job, "retryAt"), ts);
			printf(": queued — waiting for a retry, due %s", ts);
		} else {
			printf(": queued — its record says so; not in the %.0f queue entries looked "
			       "at (of %.0f) nor the delayed set: a runner may be taking it",
			       cli_jnum(qu, "scanned"), cli_jnum(qu, "length"));
		}
	} else if (strcmp(status, "in_flight") == 0) {
		if (strcmp(state, "polling") == 0)
			printf(": in flight — its task %s is polled", OR(task));
		else if (strcmp(state, "creating") == 0)
			printf(": in flight — creating its task (attempt %.0f) on %s",
			       cli_jnum(job, "attempts"), OR(owner));
		else
			printf(": in flight — claimed by %s, before createTask", OR(owner));
	} else if (strcmp(status, "uncertain") == 0) {
		util_iso8601((int64_t)cli_jnum(job, "uncertainUntil"), ts);
		cli_age(cli_jnum(s, "uncertainLeftMs"), left, sizeof(left));
		printf(": uncertain — createTask's outcome is unknown; %s left in its window "
		       "(until %s), then KIE_UNCERTAIN_POLICY decides", left, ts);
	} else if (strcmp(status, "dead") == 0) {
		printf(": dead — in the dead letters");
		if (cli_jstr(job, "error")) {
			printf(": ");
			cli_put(stdout, cli_jstr(job, "error"), 300);
		}
	} else if (strcmp(status, "finished") == 0) {
		printf(": finished — %s", strcmp(state, "unknown") == 0 ? "its record expired; "
			"its event is below" : state);
		if (task)
			printf(", task %s", task);
	} else {
		printf(": unknown");
	}
	printf("\n");
}

int cli_cmd_job(int argc, char **argv)
{
	static const struct optspec spec[] = {{"json", 0}, {"help", 0}, {NULL, 0}};
	struct opts o;
	struct cli_ctx c;
	struct rconn rc;
	struct queue q;
	char err[512];
	cJSON *s;
	int code = EXIT_OK, found = 0;

	if (cli_parse_opts(argc, argv, "job", spec, 1, &o) != 0 || cli_has(&o, "help") ||
	    o.npos != 2 || strcmp(o.pos[0], "show") != 0) {
		FILE *f = cli_has(&o, "help") ? stdout : stderr;
		fputs(job_help, f);
		fputs(cli_exit_codes_help, f);
		return cli_has(&o, "help") ? EXIT_OK : EXIT_USAGE;
	}
	if (!job_id_valid(o.pos[1])) {
		fprintf(stderr, "kie: \"");
		cli_put(stderr, o.pos[1], 200);
		fprintf(stderr, "\" is not a valid job id ([A-Za-z0-9._:-], 1 to 128 bytes)\n");
		return EXIT_USAGE;
	}
	memset(&rc, 0, sizeof(rc));
	if (cli_admin_open(&c, &o, &rc, &q) != 0) {
		rconn_close(&rc);
		cli_ctx_close(&c);
		return EXIT_USAGE;
	}
	s = admin_job_show(&q, o.pos[1], &found, err, sizeof(err));
	if (!s) {
		fprintf(stderr, "kie: %s\n", err);
		code = EXIT_REDIS;
		goto out;
	}
	cli_sched_add_position(&q, o.pos[1], s); /* i19: "schedule" (kie_position) */
	if (cli_has(&o, "json"))
		cli_print_json(s);
	if (!found) {
		const cJSON *qu = cJSON_GetObjectItemCaseSensitive(s, "queue");
		fprintf(stderr, "kie: unknown job %s: no job record, completion event or dead "
			"letter names it, and it is not in the %.0f queue entries looked at (of "
			"%.0f: the next to be claimed and the newest) nor in the delayed set (never "
			"pushed, or its records expired after KIE_RECORD_TTL_S)\n", o.pos[1],
			cli_jnum(qu, "scanned"), cli_jnum(qu, "length"));
		code = EXIT_NOT_FOUND;
		goto out;
	}
	if (!cli_has(&o, "json")) {
		const cJSON *ev, *it;
		print_status(o.pos[1], s);
		cli_sched_print_position(s);
		if (cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(s, "job")))
			print_fields("job record", cJSON_GetObjectItemCaseSensitive(s, "job"));
		if (cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(s, "task")))
			print_fields("task record", cJSON_GetObjectItemCaseSensitive(s, "task"));
		ev = cJSON_GetObjectItemCaseSensitive(s, "events");
		printf("events (%d):\n", cJSON_GetArraySize(ev));
		cJSON_ArrayForEach(it, ev) {
			printf("  %s %s task %s ", OR(cli_jstr(it, "finishedAt")), OR(cli_jstr(it, "event")),
			       cli_jstr(it, "taskId") ? cli_jstr(it, "taskId") : "-");
			cli_put(stdout, cli_jstr(it, "error") ? cli_jstr(it, "error") : "", 200);
			printf("\n");
		}
		ev = cJSON_GetObjectItemCaseSensitive(s, "dead");
		printf("dead letters (%d):\n", cJSON_GetArraySize(ev));
		cJSON_ArrayForEach(it, ev) {
			printf("  %s %s: ", OR(cli_jstr(it, "failedAt")), OR(cli_jstr(it, "source")));
			cli_put(stdout, cli_jstr(it, "reason"), 300);
			printf("\n");
		}
	}
out:
	cJSON_Delete(s);
	rconn_close(&rc);
	cli_ctx_close(&c);
	return code;
}
