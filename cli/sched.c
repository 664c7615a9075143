/* sched.c — `kie group weight|limit` and `kie job cancel`, and the scheduling parts of
 * `kie stats` and `kie job show` (the pick rule: docs/protocol.md, "Who goes first"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/util.h"
#include "ops/sched_view.h"
#include "pool/sched.h"
#include "cli.h"

static const char group_help[] =
	"usage: kie group weight GROUP N   a group's share of its priority's slots (1..1000,\n"
	"                                  default 1; 0 removes the setting)\n"
	"       kie group limit GROUP N    at most N of the group's jobs between their start and\n"
	"                                  their final state (0 removes the cap)\n"
	"GROUP is a descriptor's \"group\" (1..128 of A-Z a-z 0-9 . _ : - @). Weights apply to the\n"
	"jobs queued from then on; a cap at once.\n";

static const char cancel_help[] =
	"usage: kie job cancel JOB_ID [--json]\n"
	"Cancels a job still queued or delayed: it ends cancelled, with one job.cancelled\n"
	"event, and never reaches KIE (the command is FCALL kie_cancel, docs/protocol.md). A job\n"
	"whose createTask was sent cannot be cancelled (KIE cannot): exit 10, \"started\"; a\n"
	"finished one: exit 10, \"finished\". An id not seen yet is remembered for\n"
	"KIE_CANCEL_TTL_S (24 h): the job ends cancelled when it arrives (exit 0).\n";

int cli_cmd_group(int argc, char **argv)
{
	static const struct optspec spec[] = {{"help", 0}, {NULL, 0}};
	struct opts o;
	struct cli_ctx c;
	struct rconn rc;
	struct queue q;
	char err[512];
	long long n = -1;
	int limit, code = EXIT_OK;

	if (cli_parse_opts(argc, argv, "group", spec, 1, &o) != 0 || cli_has(&o, "help") ||
	    o.npos != 3 || (strcmp(o.pos[0], "weight") != 0 && strcmp(o.pos[0], "limit") != 0) ||
	    util_parse_ll(o.pos[2], &n) != 0 || n < 0 ||
	    n > (strcmp(o.pos[0], "weight") == 0 ? 1000 : 1000000000LL) ||
	    !job_group_valid(o.pos[1])) {
		FILE *f = cli_has(&o, "help") ? stdout : stderr;
		fputs(group_help, f);
		fputs(cli_exit_codes_help, f);
		return cli_has(&o, "help") ? EXIT_OK : EXIT_USAGE;
	}
	limit = strcmp(o.pos[0], "limit") == 0;
	memset(&rc, 0, sizeof(rc));
	if (cli_admin_open(&c, &o, &rc, &q) != 0) {
		code = EXIT_USAGE;
		goto out;
	}
	if (sched_view_set(&q, o.pos[1], limit, (long)n, err, sizeof(err)) != 0) {
		fprintf(stderr, "kie: %s\n", err);
		code = EXIT_REDIS;
		goto out;
	}
	if (n == 0)
		printf("group %s: %s removed\n", o.pos[1], limit ? "cap" : "weight");
	else
		printf("group %s: %s %lld\n", o.pos[1], limit ? "cap" : "weight", n);
out:
	rconn_close(&rc);
	cli_ctx_close(&c);
	return code;
}

int cli_cmd_job_cancel(int argc, char **argv)
{
	static const struct optspec spec[] = {{"json", 0}, {"help", 0}, {NULL, 0}};
	struct opts o;
	struct cli_ctx c;
	struct rconn rc;
	struct queue q;
	char *json = NULL;
	cJSON *a = NULL;
	const char *res;
	int code = EXIT_OK;

	if (cli_parse_opts(argc, argv, "job cancel", spec, 1, &o) != 0 || cli_has(&o, "help") ||
	    o.npos != 2 || strcmp(o.pos[0], "cancel") != 0 || !job_id_valid(o.pos[1])) {
		FILE *f = cli_has(&o, "help") ? stdout : stderr;
		fputs(cancel_help, f);
		fputs(cli_exit_codes_help, f);
		return cli_has(&o, "help") ? EXIT_OK : EXIT_USAGE;
	}
	memset(&rc, 0, sizeof(rc));
	if (cli_admin_open(&c, &o, &rc, &q) != 0) {
		code = EXIT_USAGE;
		goto out;
	}
	q.results_max = c.cfg.results_max;
	if (sched_cancel(&q, o.pos[1], &json) != 0 || !(a = cJSON_Parse(json))) {
		fprintf(stderr, "kie: could not cancel %s: %s\n", o.pos[1], q.err);
		code = EXIT_REDIS;
		goto out;
	}
	res = cli_jstr(a, "result");
	res = res ? res : "?";
	if (cli_has(&o, "json"))
		cli_print_json(a);
	else if (strcmp(res, "cancelled") == 0)
		printf("%s: cancelled (it never reached KIE; a job.cancelled event was emitted)\n",
		       o.pos[1]);
	else if (strcmp(res, "remembered") == 0)
		printf("%s: not seen yet; the cancel is remembered for %ld s and the job ends "
		       "cancelled when it arrives\n", o.pos[1], c.cfg.cancel_ttl_s);
	else if (strcmp(res, "started") == 0)
		printf("%s: not cancelled: its createTask was sent (state %s) and KIE cannot cancel "
		       "a task\n", o.pos[1], cli_jstr(a, "state") ? cli_jstr(a, "state") : "?");
	else
		printf("%s: not cancelled: it is %s already\n", o.pos[1],
		       cli_jstr(a, "state") ? cli_jstr(a, "state") : res);
	if (strcmp(res, "started") == 0 || strcmp(res, "finished") == 0)
		code = EXIT_REFUSED;
out:
	cJSON_Delete(a);
	free(json);
	rconn_close(&rc);
	cli_ctx_close(&c);
	return code;
}

void cli_sched_add_stats(struct queue *q, cJSON *s)
{
	char err[300];
	cJSON *v = sched_view_stats(q, 10, err, sizeof(err));
	if (v)
		cJSON_AddItemToObject(s, "schedule", v);
}

void cli_sched_print_stats(const cJSON *s)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(s, "schedule"), *it;
	char age[32];
	if (!cJSON_IsObject(v))
		return;
	printf("scheduled: %.0f ready, %.0f delayed, %.0f parked at their group's cap; by "
	       "priority:", cli_jnum(v, "ready"), cli_jnum(v, "delayed"), cli_jnum(v, "parked"));
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(v, "queuedByPriority"))
		printf(" %s=%.0f", it->string, it->valuedouble);
	printf("\n");
	it = cJSON_GetObjectItemCaseSensitive(v, "oldestWaitMs");
	if (cJSON_IsNumber(it)) {
		cli_age(it->valuedouble, age, sizeof(age));
		printf("oldest wait: %s\n", age);
	}
	printf("top groups by backlog (%.0f groups):\n", cli_jnum(v, "groups"));
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(v, "topGroups")) {
		const cJSON *lim = cJSON_GetObjectItemCaseSensitive(it, "limit");
		printf("  ");
		cli_put(stdout, cli_jstr(it, "group"), 128);
		printf(": %.0f queued, %.0f in flight, weight %.0f", cli_jnum(it, "queued"),
		       cli_jnum(it, "inFlight"), cli_jnum(it, "weight"));
		if (cJSON_IsNumber(lim))
			printf(", cap %.0f", lim->valuedouble);
		printf("\n");
	}
}

void cli_sched_add_position(struct queue *q, const char *job_id, cJSON *s)
{
	char err[300];
	cJSON *v = sched_view_position(q, job_id, err, sizeof(err));
	if (v)
		cJSON_AddItemToObject(s, "schedule", v);
}

void cli_sched_print_position(const cJSON *s)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(s, "schedule");
	const cJSON *pos = cJSON_GetObjectItemCaseSensitive(v, "position");
	const cJSON *eta = cJSON_GetObjectItemCaseSensitive(v, "eta");
	char when[UTIL_ISO8601_SIZE], in[32];
	if (!cJSON_IsObject(v) || !cJSON_IsNumber(pos))
		return;
	util_iso8601((int64_t)cJSON_GetNumberValue(eta), when);
	cli_age(cJSON_GetNumberValue(eta) - (double)util_now_ms(), in, sizeof(in));
	printf("schedule: priority %.0f, group ", cli_jnum(v, "priority"));
	cli_put(stdout, cli_jstr(v, "group") && *cli_jstr(v, "group") ? cli_jstr(v, "group")
								       : "(default)", 128);
	printf(", position %.0f (jobs that go first), ETA %s (in %s, at %.2f/s)\n",
	       pos->valuedouble, when, in, cli_jnum(v, "pace"));
}
