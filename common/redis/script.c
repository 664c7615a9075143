/* script.c — EVALSHA with a NOSCRIPT fallback to EVAL behind script.h. */
#include "redis/script.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

#define STACK_WORDS 24

static int noscript(const redisReply *rep)
{
	return rep && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0;
}

redisReply *script_run(struct rconn *r, const struct script *s, int retry, int nkeys,
		       const char *const *keys, int nargs, const char *const *args,
		       const size_t *arglens)
{
	const char *argv_s[STACK_WORDS], **argv = argv_s;
	size_t lens_s[STACK_WORDS], *lens = lens_s;
	char nk[16];
	int argc = 0, words = 3 + nkeys + nargs;
	redisReply *rep;

	if (words > STACK_WORDS) { /* e.g. the heartbeat of a wide worker */
		argv = util_xcalloc((size_t)words, sizeof(*argv));
		lens = util_xcalloc((size_t)words, sizeof(*lens));
	}
	snprintf(nk, sizeof(nk), "%d", nkeys);
	argv[argc] = "EVALSHA"; lens[argc++] = 7;
	argv[argc] = s->sha1; lens[argc++] = 40;
	argv[argc] = nk; lens[argc++] = strlen(nk);
	for (int i = 0; i < nkeys; i++) {
		argv[argc] = keys[i];
		lens[argc++] = strlen(keys[i]);
	}
	for (int i = 0; i < nargs; i++) {
		argv[argc] = args[i];
		lens[argc++] = arglens ? arglens[i] : strlen(args[i]);
	}
	rep = retry ? rconn_argv_retry(r, argc, argv, lens) : rconn_argv(r, argc, argv, lens);
	if (noscript(rep)) {
		/* this Redis does not have it (yet): EVAL runs it and caches it by its SHA1 */
		freeReplyObject(rep);
		argv[0] = "EVAL"; lens[0] = 4;
		argv[1] = s->src; lens[1] = s->len;
		rep = retry ? rconn_argv_retry(r, argc, argv, lens) : rconn_argv(r, argc, argv, lens);
	}
	if (argv != argv_s) {
		free(argv);
		free(lens);
	}
	return rep;
}
