/* pause.c — `kie pause` and `kie resume`: the pool-wide operator pause. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/util.h"
#include "ops/admin.h"
#include "pool/queue.h"
#include "cli.h"

static const char pause_help[] =
	"usage: kie pause [--reason TEXT] [--for MS]\n"
	"       kie resume\n"
	"Pauses the pool that REDIS_URL and KIE_REDIS_PREFIX name: runners take no new jobs\n"
	"(the queue keeps them); pollers go on collecting tasks that exist. The pause lasts\n"
	"until `kie resume` (or MS milliseconds); automatic pauses (401/402/433) never replace\n"
	"it. `kie resume` lifts any pause, automatic ones too. Prints the pause it set or lifted.\n";

/* Connects for one command: gives up after 5 s rather than retrying for ever. */

int cli_cmd_pause(int argc, char **argv, int resume)
{
	static const struct optspec spec[] = {{"reason", 1}, {"for", 1}, {"help", 0}, {NULL, 0}};
	struct opts o;
	struct cli_ctx c;
	struct rconn rc;
	struct queue q;
	long long ms = 0;
	long remaining = 0;
	char kind[32], reason[512];
	int rc_exit = EXIT_OK, done = 0;

	if (cli_parse_opts(argc, argv, spec, &o) != 0 || cli_has(&o, "help") || o.npos ||
	    (resume && o.n)) {
		fputs(pause_help, cli_has(&o, "help") ? stdout : stderr);
		fputs(cli_exit_codes_help, cli_has(&o, "help") ? stdout : stderr);
		return cli_has(&o, "help") ? EXIT_OK : EXIT_USAGE;
	}
	if (cli_opt(&o, "for") &&
	    util_parse_int(cli_opt(&o, "for"), 1, ADMIN_PAUSE_MAX_MS, &ms) != 0) {
		fprintf(stderr, "kie: --for must be a whole number of milliseconds from 1 to %lld "
			"(a year)\n", (long long)ADMIN_PAUSE_MAX_MS);
		return EXIT_USAGE;
	}
	if (cli_ctx_open(&c, 0, 0) != 0 || cli_queue(&c.cfg, &rc, &q) != 0) {
		cli_ctx_close(&c);
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
			    cli_opt(&o, "reason") ? cli_opt(&o, "reason") : "paused by an operator", &done) != 0) {
		fprintf(stderr, "kie: %s\n", q.err);
		rc_exit = EXIT_REDIS;
		goto out;
	}
	if (ms)
		printf("paused for %lld ms: %s\n", ms, cli_opt(&o, "reason") ? cli_opt(&o, "reason") : "");
	else
		printf("paused until `kie resume`: %s\n", cli_opt(&o, "reason") ? cli_opt(&o, "reason") : "");
out:
	rconn_close(&rc);
	cli_ctx_close(&c);
	return rc_exit;
}

