/* accounts.c — KIE_ACCOUNTS_FILE (a file of "alias token" lines, or a folder of token
 * files) and the single-token default, behind accounts.h. */
#include "kie/accounts.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "core/crypto.h"
#include "core/util.h"
#include "kie/kie_client.h"

int accounts_alias_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > ACCOUNT_ALIAS_MAX || s[0] == '.')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '-'))
			return 0;
	}
	return 1;
}

static void scrub_free(char *s)
{
	if (s) {
		memset(s, 0, strlen(s));
		free(s);
	}
}

void accounts_free(struct accounts *a)
{
	if (!a)
		return;
	for (int i = 0; i < a->n; i++)
		scrub_free(a->v[i].token);
	free(a->v);
	a->v = NULL;
	a->n = 0;
}

/* A token: 1..ACCOUNT_TOKEN_MAX bytes, printable ASCII without spaces. NULL when it is,
 * else what is wrong with it (never the token). */
static const char *token_problem(const char *t, size_t n)
{
	if (n == 0)
		return "the token is empty";
	if (n > ACCOUNT_TOKEN_MAX)
		return "the token is longer than 4096 bytes";
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)t[i] <= ' ' || (unsigned char)t[i] >= 0x7f)
			return "the token has a space, a control byte or a byte that is not "
			       "ASCII in it";
	return NULL;
}

/* Adds an account (alias checked by the caller); where names the line or file for a
 * duplicate. 0, or -1 with err filled. */
static int add(struct accounts *out, const char *alias, const char *tok, size_t toklen,
	       const char *where, const char **wheres, char *err, size_t errlen)
{
	char id[65];
	if (out->n >= ACCOUNTS_MAX) {
		snprintf(err, errlen, "%s: more than %d accounts", where, ACCOUNTS_MAX);
		return -1;
	}
	crypto_sha256_hex(tok, toklen, id);
	for (int i = 0; i < out->n; i++) {
		if (strcmp(out->v[i].alias, alias) == 0) {
			snprintf(err, errlen, "%s: the alias \"%s\" is given twice (also %s)", where,
				 alias, wheres[i]);
			return -1;
		}
		if (strncmp(out->v[i].id, id, 16) == 0 && strlen(out->v[i].token) == toklen &&
		    memcmp(out->v[i].token, tok, toklen) == 0) {
			snprintf(err, errlen, "%s: the same token as %s (alias \"%s\"): one account, "
				 "one alias", where, wheres[i], out->v[i].alias);
			return -1;
		}
	}
	out->v = realloc(out->v, (size_t)(out->n + 1) * sizeof(*out->v));
	if (!out->v)
		abort();
	struct account *a = &out->v[out->n++];
	memset(a, 0, sizeof(*a));
	util_strlcpy(a->alias, alias, sizeof(a->alias));
	a->token = util_xmalloc(toklen + 1);
	memcpy(a->token, tok, toklen);
	a->token[toklen] = '\0';
	memcpy(a->id, id, 16);
	a->id[16] = '\0';
	return 0;
}

int accounts_parse(const char *text, size_t len, const char *source, struct accounts *out,
		   char *err, size_t errlen)
{
	const char *p = text, *end = text + len;
	char wheres_buf[ACCOUNTS_MAX][32];
	const char *wheres[ACCOUNTS_MAX];
	long line = 0;
	char where[600];

	memset(out, 0, sizeof(*out));
	for (int i = 0; i < ACCOUNTS_MAX; i++)
		wheres[i] = wheres_buf[i];
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		const char *f[3] = {NULL, NULL, NULL};
		size_t fl[3] = {0, 0, 0};
		int nf = 0;
		line++;
		if (le > p && le[-1] == '\r')
			le--;
		snprintf(where, sizeof(where), "%s line %ld", source, line);
		if (le > p && memchr(p, '\0', (size_t)(le - p))) {
			snprintf(err, errlen, "%s: a NUL byte", where);
			goto fail;
		}
		for (const char *q = p; q < le;) {
			while (q < le && (*q == ' ' || *q == '\t'))
				q++;
			if (q >= le)
				break;
			if (nf == 0 && *q == '#')
				break;
			const char *s = q;
			while (q < le && *q != ' ' && *q != '\t')
				q++;
			if (nf < 3) {
				f[nf] = s;
				fl[nf] = (size_t)(q - s);
			}
			nf++;
		}
		p = nl ? nl + 1 : end;
		if (nf == 0)
			continue;
		if (nf != 2) {
			snprintf(err, errlen, "%s: expected \"alias token\" (2 fields), found %d", where,
				 nf);
			goto fail;
		}
		char alias[ACCOUNT_ALIAS_MAX + 2], shown[ACCOUNT_ALIAS_MAX * 4 + 8];
		size_t an = fl[0] < sizeof(alias) - 1 ? fl[0] : sizeof(alias) - 1;
		memcpy(alias, f[0], an);
		alias[an] = '\0';
		if (fl[0] > ACCOUNT_ALIAS_MAX || !accounts_alias_valid(alias)) {
			snprintf(err, errlen, "%s: \"%s\" is not an alias (1 to %d bytes of A-Z a-z "
				 "0-9 _ . -, not starting with '.')", where,
				 util_text_shown(alias, ACCOUNT_ALIAS_MAX, shown, sizeof(shown)),
				 ACCOUNT_ALIAS_MAX);
			goto fail;
		}
		const char *why = token_problem(f[1], fl[1]);
		if (why) {
			snprintf(err, errlen, "%s (alias \"%s\"): %s", where, alias, why);
			goto fail;
		}
		if (out->n < ACCOUNTS_MAX)
			snprintf(wheres_buf[out->n], sizeof(wheres_buf[0]), "line %ld", line);
		if (add(out, alias, f[1], fl[1], where, wheres, err, errlen) != 0)
			goto fail;
	}
	if (out->n == 0) {
		snprintf(err, errlen, "%s: no account in it (one \"alias token\" a line)", source);
		goto fail;
	}
	return 0;
fail:
	accounts_free(out);
	return -1;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The folder form: one token file per alias. */
static int load_dir(const char *dir, struct accounts *out, char *err, size_t errlen)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **names = NULL, path[4096], where[4200];
	const char *wheres[ACCOUNTS_MAX];
	size_t nn = 0;
	int rc = -1, def = -1;

	memset(out, 0, sizeof(*out));
	if (!d) {
		snprintf(err, errlen, "KIE_ACCOUNTS_FILE: cannot read the folder %s: %s", dir,
			 strerror(errno));
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		struct stat st;
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		if (!accounts_alias_valid(e->d_name)) {
			char shown[ACCOUNT_ALIAS_MAX * 4 + 8];
			snprintf(err, errlen, "KIE_ACCOUNTS_FILE %s: the file \"%s\" is not named by an "
				 "alias (1 to %d bytes of A-Z a-z 0-9 _ . -)", dir,
				 util_text_shown(e->d_name, ACCOUNT_ALIAS_MAX, shown, sizeof(shown)),
				 ACCOUNT_ALIAS_MAX);
			goto out;
		}
		names = realloc(names, (nn + 1) * sizeof(*names));
		if (!names)
			abort();
		names[nn++] = util_strdup(e->d_name);
	}
	qsort(names, nn, sizeof(*names), by_name);
	for (size_t i = 0; i < nn; i++)
		if (strcmp(names[i], ACCOUNT_DEFAULT_ALIAS) == 0)
			def = (int)i;
	if (def > 0) { /* "default" first */
		char *t = names[def];
		memmove(&names[1], &names[0], (size_t)def * sizeof(*names));
		names[0] = t;
	}
	for (size_t i = 0; i < nn; i++) {
		char *tok = NULL;
		size_t len = 0;
		const char *why;
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		snprintf(where, sizeof(where), "KIE_ACCOUNTS_FILE %s", path);
		if (util_read_file(path, ACCOUNT_TOKEN_MAX + 2, "KIE_ACCOUNTS_FILE", &tok, &len, err,
			      errlen) != 0)
			goto out;
		if (len && tok[len - 1] == '\n')
			tok[--len] = '\0';
		if (len && tok[len - 1] == '\r')
			tok[--len] = '\0';
		why = token_problem(tok, len);
		if (!why && i < ACCOUNTS_MAX)
			wheres[i] = names[i];
		if (why) {
			snprintf(err, errlen, "%s: %s (a token file holds one line)", where, why);
		} else if (add(out, names[i], tok, len, where, wheres, err, errlen) == 0) {
			scrub_free(tok);
			continue;
		}
		scrub_free(tok);
		goto out;
	}
	if (out->n == 0) {
		snprintf(err, errlen, "KIE_ACCOUNTS_FILE %s: the folder has no token file in it "
			 "(one file per account, named by its alias)", dir);
		goto out;
	}
	rc = 0;
out:
	for (size_t i = 0; i < nn; i++)
		free(names[i]);
	free(names);
	closedir(d);
	if (rc != 0)
		accounts_free(out);
	return rc;
}

int accounts_load(const struct config *cfg, struct accounts *out, char *err, size_t errlen)
{
	const char *path = cfg->kie_accounts_file;
	struct stat st;
	char *text = NULL, source[600];
	size_t len = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!path || !*path) {
		if (config_require(cfg, "KIE_API_TOKEN", err, errlen) != 0)
			return -1;
		const char *why = token_problem(cfg->kie_api_token, strlen(cfg->kie_api_token));
		if (why) {
			snprintf(err, errlen, "KIE_API_TOKEN: %s", why);
			return -1;
		}
		return add(out, ACCOUNT_DEFAULT_ALIAS, cfg->kie_api_token,
			   strlen(cfg->kie_api_token), "KIE_API_TOKEN", NULL, err, errlen);
	}
	if (cfg->kie_api_token && *cfg->kie_api_token) {
		snprintf(err, errlen, "KIE_ACCOUNTS_FILE and KIE_API_TOKEN%s are both set: set one "
			 "of them (with KIE_ACCOUNTS_FILE, every token is in it)",
			 cfg->kie_api_token_file && *cfg->kie_api_token_file ? " (its _FILE)" : "");
		return -1;
	}
	if (stat(path, &st) != 0) {
		snprintf(err, errlen, "KIE_ACCOUNTS_FILE: cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	if (S_ISDIR(st.st_mode))
		return load_dir(path, out, err, errlen);
	if (util_read_file(path, ACCOUNTS_FILE_MAX_BYTES, "KIE_ACCOUNTS_FILE", &text, &len, err,
		      errlen) != 0)
		return -1;
	snprintf(source, sizeof(source), "KIE_ACCOUNTS_FILE %s", path);
	rc = accounts_parse(text, len, source, out, err, errlen);
	memset(text, 0, len);
	free(text);
	return rc;
}

int accounts_find(const struct accounts *a, const char *alias)
{
	if (!a || a->n == 0)
		return -1;
	if (!alias || !*alias)
		return 0;
	for (int i = 0; i < a->n; i++)
		if (strcmp(a->v[i].alias, alias) == 0)
			return i;
	return -1;
}

struct kie_client *accounts_client(const struct accounts *a, int i, const struct config *cfg)
{
	if (!a || i < 0 || i >= a->n)
		return NULL;
	struct kie_client_opts ko = {
		.base_url = cfg->kie_base_url, .token = a->v[i].token,
		.user_agent = cfg->kie_user_agent, .default_model = cfg->kie_model,
		.connect_timeout_ms = cfg->connect_timeout_ms, .timeout_ms = cfg->http_timeout_ms,
	};
	return kie_client_new(&ko);
}
