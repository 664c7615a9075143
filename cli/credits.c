/* credits.c — `kie spend` (the spend counters: by day, type, group, account) and `kie
 * budget set|list` (per-group daily budgets and today's use of them). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "core/util.h"
#include "kie/accounts.h"
#include "ops/spend_view.h"
#include "pool/budget.h"
#include "cli.h"

static const char spend_help[] =
	"usage: kie spend [--by type|group|account] [--days N] [--json] [--SETTING VALUE ...]\n"
	"The credits KIE charged for the tasks the pool finalized (REDIS_URL, KIE_REDIS_PREFIX),\n"
	"per UTC day, today first, from the counters <p>:spend:<yyyymmdd> (kept 90 days):\n"
	"each day's credits and tasks, and with --by one line per job type, group or account.\n"
	"Groups: the 1000 largest of each day by name, the rest as (other).\n"
	"  --days N   the last N days, 1 to 90 (default 7)\n"
	"  --json     one JSON object: {\"days\":[{\"day\",\"total\",\"tasks\",\"types\",\n"
	"             \"accounts\",\"groups\"}],\"total\",\"tasks\"} (docs/cli.md)\n";

static const char budget_help[] =
	"usage: kie budget set GROUP CREDITS [--json] [--SETTING VALUE ...]\n"
	"       kie budget list [--json] [--SETTING VALUE ...]\n"
	"Daily credit budgets (docs/protocol.md, \"Credits, spend and budgets\"). set: GROUP may\n"
	"spend CREDITS per UTC day (0 removes its budget); a job whose estimated cost would\n"
	"pass its group's or the pool's budget (KIE_DAILY_CREDIT_BUDGET) waits, state\n"
	"over_budget, until the day turns or the budget is raised. list: the pool's budget\n"
	"(this environment's KIE_DAILY_CREDIT_BUDGET) and each group's, with today's spent and\n"
	"reserved credits.\n"
	"  --json   set: {\"group\",\"budget\"}; list: {\"day\",\"pool\":{\"budget\",\"spent\",\n"
	"           \"reserved\"},\"groups\":[{\"group\",\"budget\",\"spent\",\"reserved\"}]}\n";

static void pretty_day(const char *d, char *out, size_t outlen)
{
	snprintf(out, outlen, "%.4s-%.2s-%.2s", d, d + 4, d + 6);
}

static double num(const char *s)
{
	return s ? strtod(s, NULL) : 0;
}

/* One day's counters as {"day","total","tasks","types","accounts","groups"}. NULL when
 * Redis failed (message printed). */
static cJSON *read_day(struct queue *q, const char *day)
{
	char key[160], gkey[170], pd[16];
	redisReply *h, *z;
	cJSON *o, *types, *accts, *groups;

	spend_day_key(q, day, key, sizeof(key));
	spend_groups_key(q, day, gkey, sizeof(gkey));
	h = rconn_cmd(q->r, "HGETALL %s", key);
	z = rconn_cmd(q->r, "ZREVRANGE %s 0 -1 WITHSCORES", gkey);
	if (!h || h->type != REDIS_REPLY_ARRAY || !z || z->type != REDIS_REPLY_ARRAY) {
		const redisReply *bad = !h || h->type != REDIS_REPLY_ARRAY ? h : z;
		fprintf(stderr, "kie: %s\n", !bad ? "Redis could not be reached"
			: bad->type == REDIS_REPLY_ERROR ? bad->str : "unexpected reply");
		freeReplyObject(h);
		freeReplyObject(z);
		return NULL;
	}
	o = cJSON_CreateObject();
	pretty_day(day, pd, sizeof(pd));
	cJSON_AddStringToObject(o, "day", pd);
	cJSON_AddNumberToObject(o, "total", 0);
	cJSON_AddNumberToObject(o, "tasks", 0);
	types = cJSON_AddObjectToObject(o, "types");
	accts = cJSON_AddObjectToObject(o, "accounts");
	groups = cJSON_AddObjectToObject(o, "groups");
	for (size_t i = 0; i + 1 < h->elements; i += 2) {
		const char *f = h->element[i]->str, *v = h->element[i + 1]->str;
		if (!f || !v)
			continue;
		if (strcmp(f, "total") == 0)
			cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "total"), num(v));
		else if (strcmp(f, "tasks") == 0)
			cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "tasks"), num(v));
		else if (strncmp(f, "type:", 5) == 0)
			cJSON_AddNumberToObject(types, f + 5, num(v));
		else if (strncmp(f, "account:", 8) == 0)
			cJSON_AddNumberToObject(accts, f + 8, num(v));
	}
	for (size_t i = 0; i + 1 < z->elements; i += 2)
		if (z->element[i]->str && z->element[i + 1]->str)
			cJSON_AddNumberToObject(groups, z->element[i]->str, num(z->element[i + 1]->str));
	for (size_t i = 0; i + 1 < h->elements; i += 2) /* (other) last */
		if (h->element[i]->str && strcmp(h->element[i]->str, "group:(other)") == 0)
			cJSON_AddNumberToObject(groups, "(other)", num(h->element[i + 1]->str));
	freeReplyObject(h);
	freeReplyObject(z);
	return o;
}

int cli_cmd_spend(int argc, char **argv)
{
	static const struct optspec spec[] = {{"by", 1}, {"days", 1}, {"json", 0},
					      {"help", 0}, {NULL, 0}};
	struct opts o;
	struct cli_ctx c;
	struct rconn rc;
	struct queue q;
	long long days = 7;
	const char *by = NULL, *dim = NULL;
	int rc_exit = EXIT_OK;
	cJSON *out = NULL, *arr;
	double total = 0, tasks = 0;

	if (cli_parse_opts(argc, argv, "spend", spec, 1, &o) != 0 || cli_has(&o, "help") ||
	    o.npos) {
		fputs(spend_help, cli_has(&o, "help") ? stdout : stderr);
		fputs(cli_exit_codes_help, cli_has(&o, "help") ? stdout : stderr);
		return cli_has(&o, "help") ? EXIT_OK : EXIT_USAGE;
	}
	by = cli_opt(&o, "by");
	if (by) {
		dim = strcmp(by, "type") == 0 ? "types" : strcmp(by, "group") == 0 ? "groups"
		      : strcmp(by, "account") == 0 ? "accounts" : NULL;
		if (!dim) {
			fprintf(stderr, "kie: --by is one of type, group, account\n");
			return EXIT_USAGE;
		}
	}
	if (cli_opt(&o, "days") &&
	    (util_parse_ll(cli_opt(&o, "days"), &days) != 0 || days < 1 || days > SPEND_DAYS_MAX)) {
		fprintf(stderr, "kie: --days is a whole number from 1 to %d\n", SPEND_DAYS_MAX);
		return EXIT_USAGE;
	}
	memset(&rc, 0, sizeof(rc));
	if (cli_admin_open(&c, &o, &rc, &q) != 0) {
		rc_exit = EXIT_USAGE;
		goto out;
	}
	out = cJSON_CreateObject();
	arr = cJSON_AddArrayToObject(out, "days");
	for (int i = 0; i < days; i++) {
		char day[16];
		budget_day(util_now_ms(), i, day, sizeof(day));
		cJSON *d = read_day(&q, day);
		if (!d) {
			rc_exit = EXIT_REDIS;
			goto out;
		}
		total += cli_jnum(d, "total");
		tasks += cli_jnum(d, "tasks");
		cJSON_AddItemToArray(arr, d);
	}
	cJSON_AddNumberToObject(out, "total", total);
	cJSON_AddNumberToObject(out, "tasks", tasks);
	if (cli_has(&o, "json")) {
		cli_print_json(out);
		goto out;
	}
	if (!dim)
		printf("%-10s  %12s  %8s\n", "DAY", "CREDITS", "TASKS");
	else
		printf("%-10s  %-40s  %12s\n", "DAY", by[0] == 't' ? "TYPE" : by[0] == 'g' ? "GROUP"
		       : "ACCOUNT", "CREDITS");
	const cJSON *d;
	cJSON_ArrayForEach(d, arr) {
		if (!dim) {
			printf("%-10s  %12.2f  %8.0f\n", cli_jstr(d, "day"), cli_jnum(d, "total"),
			       cli_jnum(d, "tasks"));
			continue;
		}
		const cJSON *it;
		cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(d, dim)) {
			printf("%-10s  ", cli_jstr(d, "day"));
			char name[48];
			util_strlcpy(name, it->string, sizeof(name));
			cli_put(stdout, name, 0);
			printf("%*s  %12.2f\n", (int)(40 - (strlen(name) < 40 ? strlen(name) : 40)), "",
			       it->valuedouble);
		}
	}
	printf("%lld day(s): %.2f credits, %.0f tasks\n", days, total, tasks);
out:
	cJSON_Delete(out);
	rconn_close(&rc);
	cli_ctx_close(&c);
	return rc_exit;
}

/* CREDITS: a decimal number from 0 to BUDGET_MAX ("none" is 0). */
static int parse_credits(const char *s, double *out)
{
	char *end;
	if (strcmp(s, "none") == 0) {
		*out = 0;
		return 0;
	}
	if (!*s || s[strspn(s, "0123456789.")] != '\0')
		return -1;
	*out = strtod(s, &end);
	return *end == '\0' && *out >= 0 && *out <= BUDGET_MAX ? 0 : -1;
}

static int budget_list(struct queue *q, const struct config *cfg, int json)
{
	char gkey[128], today[16], dkey[160], pd[16];
	redisReply *g, *d;
	cJSON *out, *pool, *groups;
	int rc = EXIT_OK;

	queue_key(q, gkey, sizeof(gkey), "budget:group");
	budget_day(util_now_ms(), 0, today, sizeof(today));
	budget_day_key(q, today, dkey, sizeof(dkey));
	g = rconn_cmd(q->r, "HGETALL %s", gkey);
	d = rconn_cmd(q->r, "HGETALL %s", dkey);
	if (!g || g->type != REDIS_REPLY_ARRAY || !d || d->type != REDIS_REPLY_ARRAY) {
		const redisReply *bad = !g || g->type != REDIS_REPLY_ARRAY ? g : d;
		fprintf(stderr, "kie: %s\n", !bad ? "Redis could not be reached"
			: bad->type == REDIS_REPLY_ERROR ? bad->str : "unexpected reply");
		freeReplyObject(g);
		freeReplyObject(d);
		return EXIT_REDIS;
	}
	/* today's figures by field */
	cJSON *fig = cJSON_CreateObject();
	for (size_t i = 0; i + 1 < d->elements; i += 2)
		if (d->element[i]->str && d->element[i + 1]->str)
			cJSON_AddNumberToObject(fig, d->element[i]->str, num(d->element[i + 1]->str));
	out = cJSON_CreateObject();
	pretty_day(today, pd, sizeof(pd));
	cJSON_AddStringToObject(out, "day", pd);
	pool = cJSON_AddObjectToObject(out, "pool");
	if (cfg->daily_credit_budget > 0)
		cJSON_AddNumberToObject(pool, "budget", (double)cfg->daily_credit_budget);
	else
		cJSON_AddNullToObject(pool, "budget");
	cJSON_AddNumberToObject(pool, "spent", cli_jnum(fig, "spent"));
	cJSON_AddNumberToObject(pool, "reserved", cli_jnum(fig, "reserved"));
	groups = cJSON_AddArrayToObject(out, "groups");
	for (size_t i = 0; i + 1 < g->elements; i += 2) {
		char f[BUDGET_GROUP_MAX + 16];
		const char *name = g->element[i]->str;
		if (!name || !g->element[i + 1]->str)
			continue;
		cJSON *x = cJSON_CreateObject();
		cJSON_AddStringToObject(x, "group", name);
		cJSON_AddNumberToObject(x, "budget", num(g->element[i + 1]->str));
		snprintf(f, sizeof(f), "spent|%s", name);
		cJSON_AddNumberToObject(x, "spent", cli_jnum(fig, f));
		snprintf(f, sizeof(f), "reserved|%s", name);
		cJSON_AddNumberToObject(x, "reserved", cli_jnum(fig, f));
		cJSON_AddItemToArray(groups, x);
	}
	if (json) {
		cli_print_json(out);
	} else {
		printf("day %s (UTC)\n", pd);
		if (cfg->daily_credit_budget > 0)
			printf("pool: %.2f spent + %.2f reserved of %ld (KIE_DAILY_CREDIT_BUDGET), "
			       "%.1f%% used\n", cli_jnum(pool, "spent"), cli_jnum(pool, "reserved"),
			       cfg->daily_credit_budget, 100.0 * (cli_jnum(pool, "spent") +
			       cli_jnum(pool, "reserved")) / (double)cfg->daily_credit_budget);
		else
			printf("pool: no daily budget (KIE_DAILY_CREDIT_BUDGET=0); %.2f spent, %.2f "
			       "reserved\n", cli_jnum(pool, "spent"), cli_jnum(pool, "reserved"));
		if (cJSON_GetArraySize(groups))
			printf("%-40s  %12s  %12s  %12s  %6s\n", "GROUP", "BUDGET", "SPENT",
			       "RESERVED", "USED");
		else
			printf("no group budgets (kie budget set GROUP CREDITS)\n");
		const cJSON *x;
		cJSON_ArrayForEach(x, groups) {
			double b = cli_jnum(x, "budget"), u = cli_jnum(x, "spent") +
							     cli_jnum(x, "reserved");
			printf("%-40s  %12.2f  %12.2f  %12.2f  %5.1f%%\n", cli_jstr(x, "group"), b,
			       cli_jnum(x, "spent"), cli_jnum(x, "reserved"), b > 0 ? 100 * u / b : 0);
		}
	}
	cJSON_Delete(out);
	cJSON_Delete(fig);
	freeReplyObject(g);
	freeReplyObject(d);
	return rc;
}

int cli_cmd_budget(int argc, char **argv)
{
	static const struct optspec spec[] = {{"json", 0}, {"help", 0}, {NULL, 0}};
	struct opts o;
	struct cli_ctx c;
	struct rconn rc;
	struct queue q;
	double credits = 0;
	int rc_exit = EXIT_OK, set;

	if (cli_parse_opts(argc, argv, "budget", spec, 1, &o) != 0 || cli_has(&o, "help") ||
	    o.npos < 1 || !((set = strcmp(o.pos[0], "set") == 0) ? o.npos == 3
			    : strcmp(o.pos[0], "list") == 0 && o.npos == 1)) {
		fputs(budget_help, cli_has(&o, "help") ? stdout : stderr);
		fputs(cli_exit_codes_help, cli_has(&o, "help") ? stdout : stderr);
		return cli_has(&o, "help") ? EXIT_OK : EXIT_USAGE;
	}
	if (set && !budget_group_valid(o.pos[1])) {
		fprintf(stderr, "kie: \"%s\" is not a group name (1 to %d bytes of A-Z a-z 0-9 _ . : "
			"@ -)\n", o.pos[1], BUDGET_GROUP_MAX);
		return EXIT_USAGE;
	}
	if (set && parse_credits(o.pos[2], &credits) != 0) {
		fprintf(stderr, "kie: CREDITS is a number from 0 to %.0f (0 or none: no budget)\n",
			BUDGET_MAX);
		return EXIT_USAGE;
	}
	memset(&rc, 0, sizeof(rc));
	if (cli_admin_open(&c, &o, &rc, &q) != 0) {
		rc_exit = EXIT_USAGE;
		goto out;
	}
	if (!set) {
		rc_exit = budget_list(&q, &c.cfg, cli_has(&o, "json"));
		goto out;
	}
	if (budget_group_set(&q, o.pos[1], credits) != 0) {
		fprintf(stderr, "kie: %s\n", q.err);
		rc_exit = EXIT_REDIS;
		goto out;
	}
	/* jobs waiting over_budget go back now that there may be room (the workers look
	 * every second too), in every account's structure */
	budget_unpark_all(&q, c.cfg.daily_credit_budget, util_now_ms(), NULL);
	if (cli_has(&o, "json")) {
		cJSON *j = cJSON_CreateObject();
		cJSON_AddStringToObject(j, "group", o.pos[1]);
		if (credits > 0)
			cJSON_AddNumberToObject(j, "budget", credits);
		else
			cJSON_AddNullToObject(j, "budget");
		cli_print_json(j);
		cJSON_Delete(j);
	} else if (credits > 0) {
		printf("group %s: %.2f credits a day\n", o.pos[1], credits);
	} else {
		printf("group %s: no budget\n", o.pos[1]);
	}
out:
	rconn_close(&rc);
	cli_ctx_close(&c);
	return rc_exit;
}

/* ---- kie stats' spend lines (i20-wire) ---- */

#define OR(s) ((s) ? (s) : "-")

/* the spend lines of kie stats: the read the operator page makes too (ops/spend_view.h) */
void cli_credits_add_stats(struct queue *q, const struct config *cfg, cJSON *s)
{
	char err[300];
	cJSON *o = spend_view(q, cfg->daily_credit_budget, 0, err, sizeof(err));
	if (o)
		cJSON_AddItemToObject(s, "spend", o);
}

void cli_credits_print_stats(const cJSON *s)
{
	const cJSON *o = cJSON_GetObjectItemCaseSensitive(s, "spend"), *it;
	double budget = cli_jnum(o, "budget");
	if (!cJSON_IsObject(o))
		return;
	printf("spend today (%s, UTC): %.2f credits, %.0f tasks", OR(cli_jstr(o, "day")),
	       cli_jnum(o, "total"), cli_jnum(o, "tasks"));
	if (budget > 0)
		printf("; pool budget %.2f: %.2f spent + %.2f reserved (%.0f%%)", budget,
		       cli_jnum(o, "spent"), cli_jnum(o, "reserved"),
		       100.0 * (cli_jnum(o, "spent") + cli_jnum(o, "reserved")) / budget);
	printf("; %.0f jobs over_budget\n", cli_jnum(o, "overBudget"));
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(o, "accounts")) {
		const cJSON *b = cJSON_GetObjectItemCaseSensitive(it, "balance");
		printf("  account %-20s spent %.2f  balance ", it->string, cli_jnum(it, "spent"));
		if (cJSON_IsNumber(b))
			printf("%.2f\n", b->valuedouble);
		else
			printf("unknown\n");
	}
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(o, "topGroups")) {
		printf("  group   %-20s spent %.2f", OR(cli_jstr(it, "group")), cli_jnum(it, "spent"));
		if (cJSON_GetObjectItemCaseSensitive(it, "budget"))
			printf("  budget %.2f (%.2f reserved)", cli_jnum(it, "budget"),
			       cli_jnum(it, "reserved"));
		printf("\n");
	}
}
