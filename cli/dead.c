/* dead.c — `kie dead list|show|retry|purge`: the dead letters, read and acted on through
 * common/admin.c (one atomic script per retried or purged entry). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/util.h"
#include "ops/admin.h"
#include "cli.h"

#define OR(s) ((s) ? (s) : "-")

static const char dead_help[] =
	"usage: kie dead list [FILTERS] [--limit N] [--offset N] [--json]\n"
	"       kie dead show (JOB_ID | @REF) [--json]\n"
	"       kie dead retry (JOB_ID | @REF | --all | FILTERS) [--dry-run] [--allow-uncertain]\n"
	"                      [--limit N] [--json]\n"
	"       kie dead purge (JOB_ID | @REF | --all | FILTERS) [--dry-run] [--limit N] [--json]\n"
	"The dead letters of the pool (<p>:dead), newest first. An entry is named by its job id\n"
	"or by @REF, the first hex digits (8 or more) of the SHA-1 of the entry, which `list`\n"
	"shows (entries without a job id have only a REF).\n"
	"Filters (together: all must match):\n"
	"  --type TYPE          the descriptor's type (generate_image, model_pose, ...)\n"
	"  --reason CLASS       invalid, oversized, kie_rejected, attempts_exhausted,\n"
	"                       uncertain, duplicate, recovery, other (docs/cli.md)\n"
	"  --older-than DUR     failed at least DUR ago: 500ms, 90s, 15m, 2h, 7d (a plain\n"
	"                       number is seconds)\n"
	"  --limit N            at most N entries (list: default 50)\n"
	"  --offset N           list: skip the first N matches\n"
	"retry: moves each entry's descriptor back to the queue (LPUSH) and the job's record to\n"
	"state queued with 0 attempts, in one step per entry: a job is never both in the queue\n"
	"and in the dead letters. Refused (exit 10, the rest still done): oversized entries\n"
	"(only a head is kept), duplicate copies, a job that has a task or is in the pool\n"
	"again, and an uncertain one (createTask may have created a task) unless\n"
	"--allow-uncertain. purge: deletes the entries. Either needs a job id, @REF, --all or a\n"
	"filter. --dry-run: the same selection and checks, nothing changed.\n"
	"  --json   JSON Lines: list prints one entry a line (its counts go to stderr), show\n"
	"           one object, retry and purge one object (fields in docs/cli.md)\n"
	"Any setting may be given as --SETTING VALUE (kie --help lists them).\n";

static const struct optspec spec[] = {
	{"type", 1}, {"reason", 1}, {"older-than", 1}, {"limit", 1}, {"offset", 1}, {"all", 0},
	{"dry-run", 0}, {"allow-uncertain", 0}, {"json", 0}, {"help", 0}, {NULL, 0}};

static int usage(const struct opts *o)
{
	FILE *f = cli_has(o, "help") ? stdout : stderr;
	fputs(dead_help, f);
	fputs(cli_exit_codes_help, f);
	return cli_has(o, "help") ? EXIT_OK : EXIT_USAGE;
}

/* The filter of the options; -1 (message printed) on a bad value. */
static int filter_of(const struct opts *o, struct admin_filter *f, long default_limit)
{
	long long v;
	admin_filter_init(f);
	f->limit = default_limit;
	f->type = cli_opt(o, "type");
	if (cli_opt(o, "reason")) {
		enum admin_reason_class rc;
		if (admin_reason_class_parse(cli_opt(o, "reason"), &rc) != 0) {
			fprintf(stderr, "kie: --reason must be one of invalid, oversized, kie_rejected, "
				"attempts_exhausted, uncertain, duplicate, recovery, other\n");
			return -1;
		}
		f->reason_class = (int)rc;
	}
	if (cli_opt(o, "older-than") &&
	    admin_parse_duration(cli_opt(o, "older-than"), &f->older_than_ms) != 0) {
		/* refused, never read as "no age filter": a purge meant to select nothing
		 * must not select everything */
		fprintf(stderr, "kie: --older-than must be a duration: a whole number and an "
			"optional unit, such as 500ms, 90s, 15m, 2h or 7d (a plain number is seconds; "
			"at most 100 years)\n");
		return -1;
	}
	if (cli_opt(o, "limit")) {
		if (util_parse_int(cli_opt(o, "limit"), 1, ADMIN_SCAN_MAX, &v) != 0) {
			fprintf(stderr, "kie: --limit must be a whole number from 1 to %d\n",
				ADMIN_SCAN_MAX);
			return -1;
		}
		f->limit = (long)v;
	}
	if (cli_opt(o, "offset")) {
		if (util_parse_int(cli_opt(o, "offset"), 0, ADMIN_SCAN_MAX, &v) != 0) {
			fprintf(stderr, "kie: --offset must be a whole number from 0 to %d\n",
				ADMIN_SCAN_MAX);
			return -1;
		}
		f->offset = (long)v;
	}
	return 0;
}

/* "3 shown of 137 dead letters", or with a filter "3 shown of 30 matching (of 137 dead
 * letters)". */
static void print_counts(FILE *f, const cJSON *l, int filtered)
{
	int at_least = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(l, "matchedLowerBound"));
	if (filtered)
		fprintf(f, "%.0f shown of %s%.0f matching (of %.0f dead letters%s)\n",
			cli_jnum(l, "shown"), at_least ? "at least " : "", cli_jnum(l, "matched"),
			cli_jnum(l, "total"), at_least ? "; the newest 100000 were read" : "");
	else
		fprintf(f, "%.0f shown of %.0f dead letters\n", cli_jnum(l, "shown"),
			cli_jnum(l, "total"));
}

static void print_list(const cJSON *l, int filtered)
{
	const cJSON *it;
	print_counts(stdout, l, filtered);
	if (!cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(l, "entries")))
		return;
	printf("%-17s %-6s %-30s %-18s %-19s %s\n", "REF", "AGE", "JOB", "TYPE", "CLASS", "REASON");
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(l, "entries")) {
		char age[32];
		const cJSON *a = cJSON_GetObjectItemCaseSensitive(it, "ageMs");
		cli_age(cJSON_IsNumber(a) ? a->valuedouble : -1, age, sizeof(age));
		printf("@%-16s %-6s %-30s %-18s %-19s ", OR(cli_jstr(it, "ref")), age,
		       OR(cli_jstr(it, "jobId")), OR(cli_jstr(it, "type")),
		       OR(cli_jstr(it, "reasonClass")));
		cli_put(stdout, cli_jstr(it, "reason"), 100);
		printf("\n");
	}
}

static void print_entry(const cJSON *e)
{
	static const char *const fields[] = {"ref", "jobId", "type", "reasonClass", "reason",
					     "source", "workerId", "failedAt", "notRetryable"};
	const cJSON *v;
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (cli_jstr(e, fields[i])) {
			printf("%-13s ", fields[i]);
			cli_put(stdout, cli_jstr(e, fields[i]), 0);
			printf("\n");
		}
	if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(e, "attempts")))
		printf("%-13s %.0f\n", "attempts", v->valuedouble);
	if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(e, "size")))
		printf("%-13s %.0f bytes (only its head is kept)\n", "size", v->valuedouble);
	printf("%-13s %s\n", "retryable",
	       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "retryable")) ? "yes" : "no");
	if (cli_jstr(e, "raw")) {
		printf("raw:\n");
		cli_put(stdout, cli_jstr(e, "raw"), 0);
		printf("\n");
	}
}

static void print_act(const cJSON *r)
{
	const cJSON *it;
	int dry = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "dryRun"));
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(r, "results")) {
		printf("@%s %-30s %-11s ", OR(cli_jstr(it, "ref")), OR(cli_jstr(it, "jobId")),
		       OR(cli_jstr(it, "outcome")));
		cli_put(stdout, cli_jstr(it, "why") ? cli_jstr(it, "why") : "", 300);
		printf("\n");
	}
	printf("%s%s: %.0f selected, %.0f %s, %.0f refused, %.0f gone meanwhile\n",
	       dry ? "dry run of " : "", OR(cli_jstr(r, "action")), cli_jnum(r, "selected"),
	       cli_jnum(r, "done"), dry ? "would be done" : "done", cli_jnum(r, "refused"),
	       cli_jnum(r, "gone"));
}

int cli_cmd_dead(int argc, char **argv)
{
	struct opts o;
	struct cli_ctx c;
	struct rconn rc;
	struct queue q;
	struct admin_filter f;
	char err[512];
	const char *sub;
	cJSON *res = NULL;
	int code = EXIT_OK, json;
	int filters;

	if (cli_parse_opts(argc, argv, "dead", spec, 1, &o) != 0 || cli_has(&o, "help") ||
	    o.npos < 1)
		return usage(&o);
	sub = o.pos[0];
	json = cli_has(&o, "json");
	filters = cli_opt(&o, "type") || cli_opt(&o, "reason") || cli_opt(&o, "older-than");
	if (strcmp(sub, "list") == 0) {
		if (o.npos != 1 || cli_has(&o, "all") || cli_has(&o, "dry-run") ||
		    cli_has(&o, "allow-uncertain"))
			return usage(&o);
		if (filter_of(&o, &f, 50) != 0)
			return EXIT_USAGE;
	} else if (strcmp(sub, "show") == 0) {
		if (o.npos != 2 || filters || cli_has(&o, "all") || cli_has(&o, "dry-run") ||
		    cli_opt(&o, "limit") || cli_opt(&o, "offset") || cli_has(&o, "allow-uncertain"))
			return usage(&o);
		admin_filter_init(&f);
		f.limit = 1;
	} else if (strcmp(sub, "retry") == 0 || strcmp(sub, "purge") == 0) {
		int one = o.npos == 2;
		if (o.npos > 2 || cli_opt(&o, "offset") ||
		    (strcmp(sub, "purge") == 0 && cli_has(&o, "allow-uncertain")))
			return usage(&o);
		if (one + cli_has(&o, "all") + (filters ? 1 : 0) == 0) {
			fprintf(stderr, "kie: dead %s needs a job id, @REF, --all or a filter (--type, "
				"--reason, --older-than)\n", sub);
			return EXIT_USAGE;
		}
		if (one && (cli_has(&o, "all") || filters)) {
			fprintf(stderr, "kie: dead %s: give a job id/@REF or --all/filters, not both\n",
				sub);
			return EXIT_USAGE;
		}
		if (filter_of(&o, &f, 0) != 0)
			return EXIT_USAGE;
		if (one)
			f.limit = 1;
	} else {
		fprintf(stderr, "kie: unknown dead command \"%s\" (list, show, retry, purge)\n", sub);
		return EXIT_USAGE;
	}
	if (o.npos == 2) {
		if (!admin_ref_valid(o.pos[1])) {
			fprintf(stderr, "kie: \"%s\" is neither a job id ([A-Za-z0-9._:-], 1 to 128 "
				"bytes) nor @REF (@ and 8 to 16 lowercase hex digits)\n", o.pos[1]);
			return EXIT_USAGE;
		}
		f.ref = o.pos[1];
	}
	memset(&rc, 0, sizeof(rc));
	if (cli_admin_open(&c, &o, &rc, &q) != 0) {
		rconn_close(&rc);
		cli_ctx_close(&c);
		return EXIT_USAGE;
	}
	if (strcmp(sub, "list") == 0 || strcmp(sub, "show") == 0)
		res = admin_dead_list(&q, &f, strcmp(sub, "show") == 0, err, sizeof(err));
	else if (strcmp(sub, "retry") == 0)
		res = admin_dead_retry(&q, &f, cli_has(&o, "allow-uncertain"), cli_has(&o, "dry-run"),
				       err, sizeof(err));
	else
		res = admin_dead_purge(&q, &f, cli_has(&o, "dry-run"), err, sizeof(err));
	if (!res) {
		fprintf(stderr, "kie: %s\n", err);
		code = EXIT_REDIS;
		goto out;
	}
	if ((strcmp(sub, "retry") == 0 || strcmp(sub, "purge") == 0) && !cli_has(&o, "dry-run")) {
		static const char *const counts[] = {"selected", "done", "refused", "gone"};
		cJSON *d = cJSON_CreateObject(), *fl = cJSON_AddObjectToObject(d, "filter");
		char ms[32];
		if (f.ref)
			cJSON_AddStringToObject(fl, "ref", f.ref);
		if (cli_has(&o, "all"))
			cJSON_AddTrueToObject(fl, "all");
		if (f.type)
			cJSON_AddStringToObject(fl, "type", f.type);
		if (f.reason_class >= 0)
			cJSON_AddStringToObject(fl, "reason", admin_reason_class_str(f.reason_class));
		if (f.older_than_ms > 0) {
			snprintf(ms, sizeof(ms), "%lldms", (long long)f.older_than_ms);
			cJSON_AddStringToObject(fl, "olderThan", ms);
		}
		for (size_t i = 0; i < 4; i++)
			cJSON_AddNumberToObject(d, counts[i], cli_jnum(res, counts[i]));
		cli_audit(&q, strcmp(sub, "retry") == 0 ? "dead/retry" : "dead/purge", d);
		cJSON_Delete(d);
	}
	if (strcmp(sub, "show") == 0) {
		cJSON *e = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(res, "entries"), 0);
		if (!e) {
			fprintf(stderr, "kie: no dead letter for %s\n", f.ref);
			code = EXIT_NOT_FOUND;
		} else if (json) {
			cli_print_json(e);
		} else {
			print_entry(e);
		}
		goto out;
	}
	if (json && strcmp(sub, "list") == 0) {
		/* JSON Lines: one entry a line; the counts as the text says them, on stderr */
		const cJSON *it;
		cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(res, "entries"))
			cli_print_json(it);
		print_counts(stderr, res, filters);
	} else if (json) {
		cli_print_json(res);
	} else if (strcmp(sub, "list") == 0) {
		print_list(res, filters);
	} else {
		print_act(res);
	}
	if (strcmp(sub, "list") != 0) {
		if (f.ref && cli_jnum(res, "selected") == 0) {
			fprintf(stderr, "kie: no dead letter for %s\n", f.ref);
			code = EXIT_NOT_FOUND;
		} else if (cli_jnum(res, "refused") > 0) {
			code = EXIT_REFUSED;
		}
	}
out:
	cJSON_Delete(res);
	rconn_close(&rc);
	cli_ctx_close(&c);
	return code;
}
