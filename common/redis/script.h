/* script.h — the Lua scripts of common/<subsystem>/lua/, embedded at build time (scripts/embed-lua.sh
 * writes lua_scripts.c/.h: one const struct script lua_<file name> per file), run by
 * EVALSHA. A Redis that does not know a script (restarted, failed over, SCRIPT FLUSH)
 * answers NOSCRIPT; the script is then sent once with EVAL, which loads it, so no
 * loading step is needed anywhere. Every key a script touches is passed in KEYS.
 *
 * Must not: build a key: callers pass every key in KEYS. */
#ifndef KIE_SCRIPT_H
#define KIE_SCRIPT_H

#include <stddef.h>

#include "redis/rconn.h"

struct script {
	const char *name;  /* the file's name without .lua */
	const char *src;   /* its bytes, NUL-terminated (the NUL is not one of them) */
	size_t len;
	const char *sha1;  /* 40 lowercase hex digits */
};

/* Runs s with nkeys keys and nargs args (arglens may be NULL for C strings, else each
 * arg's length: binary data). retry 1: across reconnects until a reply or the
 * connection's stop flag (rconn_argv_retry); 0: one try (rconn_argv). Returns the reply
 * (caller frees with freeReplyObject; an error reply is a REDIS_REPLY_ERROR) or NULL
 * when Redis could not be reached. */
redisReply *script_run(struct rconn *r, const struct script *s, int retry, int nkeys,
		       const char *const *keys, int nargs, const char *const *args,
		       const size_t *arglens);

/* One script call: script_run's arguments. */
struct script_call {
	const struct script *s;
	int nkeys, nargs;
	const char *const *keys, *const *args;
	const size_t *arglens;
};
/* Two script calls in one round trip (rconn_argv2), a before b: 0 and both replies
 * (caller frees each; a NOSCRIPT is answered by running that one again alone), or -1
 * when the connection failed (both NULL; either may have run). */
int script_run2(struct rconn *r, const struct script_call *a, const struct script_call *b,
		redisReply **rep_a, redisReply **rep_b);

#endif
