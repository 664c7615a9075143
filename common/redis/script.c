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

/* argv of an EVALSHA of s into argv/lens (words entries) */
static void evalsha_argv(const struct script *s, char *nk, size_t nklen, int nkeys,
			 const char *const *keys, int nargs, const char *const *args,
			 const size_t *arglens, const char **argv, size_t *lens)
{
	int argc = 0;
	snprintf(nk, nklen, "%d", nkeys);
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
}

redisReply *script_run(struct rconn *r, const struct script *s, int retry, int nkeys,
		       const char *const *keys, int nargs, const char *const *args,
		       const size_t *arglens)
{
	const char *argv_s[STACK_WORDS], **argv = argv_s;
	size_t lens_s[STACK_WORDS], *lens = lens_s;
	char nk[16];
	int argc = 3 + nkeys + nargs, words = argc;
	redisReply *rep;

	if (words > STACK_WORDS) { /* e.g. the heartbeat of a wide worker */
		argv = util_xcalloc((size_t)words, sizeof(*argv));
		lens = util_xcalloc((size_t)words, sizeof(*lens));
	}
	evalsha_argv(s, nk, sizeof(nk), nkeys, keys, nargs, args, arglens, argv, lens);
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

int script_run2(struct rconn *r, const struct script_call *a, const struct script_call *b,
		redisReply **rep_a, redisReply **rep_b)
{
	int wa = 3 + a->nkeys + a->nargs, wb = 3 + b->nkeys + b->nargs, rc;
	const char **argv_a = util_xcalloc((size_t)wa, sizeof(char *));
	const char **argv_b = util_xcalloc((size_t)wb, sizeof(char *));
	size_t *lens_a = util_xcalloc((size_t)wa, sizeof(size_t));
	size_t *lens_b = util_xcalloc((size_t)wb, sizeof(size_t));
	char nka[16], nkb[16];

	evalsha_argv(a->s, nka, sizeof(nka), a->nkeys, a->keys, a->nargs, a->args, a->arglens,
		     argv_a, lens_a);
	evalsha_argv(b->s, nkb, sizeof(nkb), b->nkeys, b->keys, b->nargs, b->args, b->arglens,
		     argv_b, lens_b);
	rc = rconn_argv2(r, wa, argv_a, lens_a, wb, argv_b, lens_b, rep_a, rep_b);
	/* this Redis does not have one of them (yet): that one again, alone, with EVAL */
	if (rc == 0 && noscript(*rep_a)) {
		freeReplyObject(*rep_a);
		*rep_a = script_run(r, a->s, 0, a->nkeys, a->keys, a->nargs, a->args, a->arglens);
	}
	if (rc == 0 && noscript(*rep_b)) {
		freeReplyObject(*rep_b);
		*rep_b = script_run(r, b->s, 0, b->nkeys, b->keys, b->nargs, b->args, b->arglens);
	}
	free(argv_a);
	free(argv_b);
	free(lens_a);
	free(lens_b);
	return rc;
}
