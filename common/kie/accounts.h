/* accounts.h — the KIE accounts a pool spends from: an alias each, its token (never
 * logged, never written to Redis or a descriptor) and its account id (the first 16 hex
 * digits of SHA-256(token), which keys its rate limits: limiter_account_id's value).
 *
 * Where they come from (docs/protocol.md, "Accounts"):
 *   KIE_ACCOUNTS_FILE a file   one account a line, "alias token" (spaces or tabs between,
 *                              a trailing CR ignored); blank lines and lines whose first
 *                              non-blank byte is '#' are skipped. The first is the default.
 *   KIE_ACCOUNTS_FILE a folder every regular file whose name is an alias is one account,
 *                              its content the token (one line; one trailing newline
 *                              stripped), as KIE_API_TOKEN_FILE; names starting with '.'
 *                              are skipped (Kubernetes' ..data). The default is the file
 *                              named "default" when there is one, else the first by name.
 *   unset                      KIE_API_TOKEN (or its _FILE) alone: one account, "default".
 * Setting both KIE_ACCOUNTS_FILE and KIE_API_TOKEN is an error (which token is meant?).
 *
 * A KIE client is one thread's (it owns a kept-alive connection): accounts_client() makes
 * one for a thread; the set itself is read-only after loading and shared by all threads.
 *
 * Must not: print, log or copy a token anywhere but into a KIE client. */
#ifndef KIE_ACCOUNTS_H
#define KIE_ACCOUNTS_H

#include <stddef.h>

#define ACCOUNT_ALIAS_MAX 64       /* bytes */
#define ACCOUNT_TOKEN_MAX 4096     /* bytes */
#define ACCOUNTS_MAX 64            /* accounts in one pool */
#define ACCOUNTS_FILE_MAX_BYTES (1024 * 1024)
#define ACCOUNT_DEFAULT_ALIAS "default"

struct account {
	char alias[ACCOUNT_ALIAS_MAX + 1];
	char *token;    /* secret */
	char id[17];    /* SHA-256(token), first 16 hex digits */
};

struct accounts {
	struct account *v;  /* v[0] is the default */
	int n;
};

/* An alias: 1..ACCOUNT_ALIAS_MAX bytes of [A-Za-z0-9_.-], not starting with '.' (the
 * descriptor's group charset without ':' and '@'). 1 or 0. */
int accounts_alias_valid(const char *s);

/* Parses the file form from text[len] into out (emptied first). source names the file in
 * messages ("KIE_ACCOUNTS_FILE /etc/kie/accounts"). Errors name the line and say what is
 * wrong, never quoting a token: a line that is not two fields, a bad alias (quoted), a
 * token too long or with control bytes, an alias or a token given twice (both lines
 * named), no account, more than ACCOUNTS_MAX. Returns 0, or -1 with err filled (out
 * left empty). */
int accounts_parse(const char *text, size_t len, const char *source, struct accounts *out,
		   char *err, size_t errlen);

struct config;
/* The accounts the settings name (see above). Returns 0, or -1 with err naming the
 * setting, the path and the line. Free with accounts_free(). */
int accounts_load(const struct config *cfg, struct accounts *out, char *err, size_t errlen);

/* The index of alias (NULL or "": the default, 0), or -1 when there is none. */
int accounts_find(const struct accounts *a, const char *alias);

/* A new KIE client for account i with the settings of cfg (base URL, timeouts, model),
 * for one thread; free with kie_client_free. NULL when i is out of range. */
struct kie_client;
struct kie_client *accounts_client(const struct accounts *a, int i, const struct config *cfg);

/* Scrubs the tokens and frees them; out is empty after (NULL-safe, twice-safe). */
void accounts_free(struct accounts *a);

#endif
