/* config.c — the settings table (Redis's static_configs[] shape) and its parsers. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

enum cfg_type { CFG_STR, CFG_INT, CFG_URL, CFG_ENUM };

struct cfg_entry {
	const char *flag;  /* --flag name, or NULL */
	const char *env;
	enum cfg_type type;
	const char *def;
	long min, max;     /* CFG_INT bounds */
	const char *choices; /* CFG_ENUM: "a|b|c" */
	size_t offset;
	int secret;
	const char *help;
};

#define S(f) offsetof(struct config, f)

static const struct cfg_entry table[] = {
	{"token", "KIE_API_TOKEN", CFG_STR, "", 0, 0, NULL, S(kie_api_token), 1,
	 "Bearer token for the KIE API (required)"},
	{"base-url", "KIE_BASE_URL", CFG_URL, "https://api.kie.ai", 0, 0, NULL, S(kie_base_url), 0,
	 "KIE API base URL"},
	{"callback-url", "KIE_CALLBACK_URL", CFG_URL, "", 0, 0, NULL, S(kie_callback_url), 0,
	 "public URL KIE POSTs results to (the worker adds ?jobId=...)"},
	{"model", "KIE_MODEL", CFG_STR, "google/nano-banana-edit", 0, 0, NULL, S(kie_model), 0,
	 "default KIE model"},
	{"user-agent", "KIE_USER_AGENT", CFG_STR, "kie-worker/0.1 (+libcurl)", 0, 0, NULL,
	 S(kie_user_agent), 0, "User-Agent sent to KIE (its CDN refuses requests without one)"},
	{"connect-timeout-ms", "KIE_CONNECT_TIMEOUT_MS", CFG_INT, "5000", 100, 60000, NULL,
	 S(connect_timeout_ms), 0, "HTTP connect timeout"},
	{"http-timeout-ms", "KIE_HTTP_TIMEOUT_MS", CFG_INT, "30000", 500, 600000, NULL,
	 S(http_timeout_ms), 0, "HTTP total timeout per request"},
	{"prompts-dir", "KIE_PROMPTS_DIR", CFG_STR, "", 0, 0, NULL, S(prompts_dir), 0,
	 "directory of prompt template overrides (<name>.txt)"},
	{"wait-attempts", "KIE_WAIT_ATTEMPTS", CFG_INT, "30", 1, 100000, NULL, S(wait_attempts), 0,
	 "kie wait: status queries before giving up"},
	{"wait-interval-ms", "KIE_WAIT_INTERVAL_MS", CFG_INT, "2000", 10, 600000, NULL,
	 S(wait_interval_ms), 0, "kie wait: pause between status queries"},
	{"webhook-hmac-key", "KIE_WEBHOOK_HMAC_KEY", CFG_STR, "", 0, 0, NULL, S(webhook_hmac_key), 1,
	 "KIE webhook HMAC key (verifies signed callbacks)"},
	{"metadata-store", "KIE_METADATA_STORE", CFG_ENUM, "auto", 0, 0, "auto|fs|r2",
	 S(metadata_store), 0, "where task metadata lives: auto = r2 when R2 credentials are set, else fs"},
	{"metadata-dir", "KIE_METADATA_DIR", CFG_STR, "./kie-data", 0, 0, NULL, S(metadata_dir), 0,
	 "fs store root (records at <dir>/kie-tasks/<taskId>.json)"},
	{NULL, "R2_ACCOUNT_ID", CFG_STR, "", 0, 0, NULL, S(r2_account_id), 0,
	 "Cloudflare account id (endpoint https://<id>.r2.cloudflarestorage.com)"},
	{NULL, "R2_ACCESS_KEY_ID", CFG_STR, "", 0, 0, NULL, S(r2_access_key_id), 0, "R2 access key id"},
	{NULL, "R2_SECRET_ACCESS_KEY", CFG_STR, "", 0, 0, NULL, S(r2_secret_access_key), 1,
	 "R2 secret access key"},
	{NULL, "R2_BUCKET_NAME", CFG_STR, "", 0, 0, NULL, S(r2_bucket_name), 0,
	 "bucket holding kie-tasks/*.json"},
	{NULL, "R2_PUBLIC_BASE_URL", CFG_URL, "", 0, 0, NULL, S(r2_public_base_url), 0,
	 "CDN in front of stored files (optional)"},
	{NULL, "R2_ENDPOINT", CFG_URL, "", 0, 0, NULL, S(r2_endpoint), 0,
	 "any S3-compatible endpoint instead of R2's (path-style)"},
	{"redis-url", "REDIS_URL", CFG_URL, "redis://127.0.0.1:6379/0", 0, 0, NULL, S(redis_url), 0,
	 "Redis to take jobs from (redis://[:password@]host:port[/db] or unix:///path)"},
	{"prefix", "KIE_REDIS_PREFIX", CFG_STR, "kie", 0, 0, NULL, S(redis_prefix), 0,
	 "prefix of every Redis key ({kie} keeps them in one Cluster slot)"},
	{"worker-id", "KIE_WORKER_ID", CFG_STR, "", 0, 0, NULL, S(worker_id), 0,
	 "this worker's id (default: host:pid:random)"},
	{"concurrency", "KIE_WORKER_CONCURRENCY", CFG_INT, "4", 1, 256, NULL, S(concurrency), 0,
	 "jobs run at once (one thread each)"},
	{"pollers", "KIE_WORKER_POLLERS", CFG_INT, "2", 1, 64, NULL, S(pollers), 0,
	 "status-polling threads"},
	{"heartbeat-ttl-ms", "KIE_HEARTBEAT_TTL_MS", CFG_INT, "15000", 1000, 3600000, NULL,
	 S(heartbeat_ttl_ms), 0, "a worker silent this long is dead; its jobs go back"},
	{"recovery-interval-ms", "KIE_RECOVERY_INTERVAL_MS", CFG_INT, "5000", 100, 3600000, NULL,
	 S(recovery_interval_ms), 0, "how often live workers look for dead ones"},
	{"max-recoveries", "KIE_MAX_RECOVERIES", CFG_INT, "3", 0, 1000, NULL, S(max_recoveries), 0,
	 "a job recovered from this many dead workers goes to the dead letters"},
	{"job-max-bytes", "KIE_JOB_MAX_BYTES", CFG_INT, "65536", 256, 16777216, NULL,
	 S(job_max_bytes), 0, "largest job descriptor accepted"},
	{"max-attempts", "KIE_JOB_MAX_ATTEMPTS", CFG_INT, "3", 1, 100, NULL, S(job_max_attempts), 0,
	 "default maxAttempts of a job (retryable errors)"},
	{"poll-initial-ms", "KIE_POLL_INITIAL_MS", CFG_INT, "2500", 10, 600000, NULL,
	 S(poll_initial_ms), 0, "first status poll delay; KIE advises 2-3 s"},
	{"poll-max-ms", "KIE_POLL_MAX_MS", CFG_INT, "20000", 10, 600000, NULL, S(poll_max_ms), 0,
	 "longest gap between polls; KIE advises 15-30 s"},
	{"poll-timeout-ms", "KIE_POLL_TIMEOUT_MS", CFG_INT, "900000", 100, 86400000, NULL,
	 S(poll_timeout_ms), 0, "give up on a task after this long (fails with a timeout)"},
	{"grace-ms", "KIE_SHUTDOWN_GRACE_MS", CFG_INT, "20000", 0, 3600000, NULL,
	 S(shutdown_grace_ms), 0, "on SIGTERM, time allowed for in-flight work"},
	{"retry-base-ms", "KIE_RETRY_BASE_MS", CFG_INT, "2000", 1, 3600000, NULL, S(retry_base_ms), 0,
	 "first retry delay of a retryable error (doubles per attempt)"},
	{"account-pause-ms", "KIE_ACCOUNT_PAUSE_MS", CFG_INT, "60000", 10, 86400000, NULL,
	 S(account_pause_ms), 0, "pause after an account-level error (401/402/433)"},
	{"record-ttl-s", "KIE_RECORD_TTL_S", CFG_INT, "604800", 60, 31536000, NULL, S(record_ttl_s), 0,
	 "job and task records in Redis expire this long after they finish"},
	{"create-limit", "KIE_CREATE_LIMIT", CFG_INT, "20", 1, 100000, NULL, S(create_limit), 0,
	 "createTask calls allowed per KIE_CREATE_WINDOW_MS, shared by every worker using the same KIE account"},
	{"create-window-ms", "KIE_CREATE_WINDOW_MS", CFG_INT, "10000", 100, 3600000, NULL,
	 S(create_window_ms), 0, "the createTask limit's window"},
	{"poll-rate", "KIE_POLL_RATE", CFG_INT, "10", 1, 10000, NULL, S(poll_rate), 0,
	 "recordInfo calls per second, pool-wide per account"},
	{"limit-margin-ms", "KIE_LIMIT_MARGIN_MS", CFG_INT, "250", 0, 60000, NULL,
	 S(limit_margin_ms), 0, "slack added to each limiter window for network jitter"},
	{"rate-backoff-ms", "KIE_RATE_BACKOFF_MS", CFG_INT, "1000", 10, 600000, NULL,
	 S(rate_backoff_ms), 0, "first pool-wide pause after a 429/455; doubles while they continue"},
	{"rate-backoff-max-ms", "KIE_RATE_BACKOFF_MAX_MS", CFG_INT, "60000", 10, 3600000, NULL,
	 S(rate_backoff_max_ms), 0, "longest such pause"},
	{"credit-probe-ms", "KIE_CREDIT_PROBE_MS", CFG_INT, "30000", 100, 3600000, NULL,
	 S(credit_probe_ms), 0, "while paused for credits (402), how often one worker asks KIE for the balance"},
	{"account-prefix", "KIE_ACCOUNT_PREFIX", CFG_STR, "kie:account", 0, 0, NULL, S(account_prefix), 0,
	 "prefix of the per-account limiter keys (shared across pools)"},
	{"dead-max", "KIE_DEAD_MAX", CFG_INT, "10000", 1, 10000000, NULL, S(dead_max), 0,
	 "<prefix>:dead keeps at most this many entries (oldest dropped, counted)"},
	{"meta-max-bytes", "KIE_JOB_META_MAX_BYTES", CFG_INT, "4096", 0, 65536, NULL, S(meta_max_bytes), 0,
	 "largest \"meta\" object in a descriptor"},
	{"results-max", "KIE_RESULTS_MAX", CFG_INT, "10000", 1, 100000000, NULL, S(results_max), 0,
	 "<prefix>:results keeps at most this many events (oldest dropped)"},
	{"log-level", "KIE_LOG_LEVEL", CFG_ENUM, "info", 0, 0, "debug|info|warn|error", S(log_level), 0,
	 "least severe level logged"},
	{"log-format", "KIE_LOG_FORMAT", CFG_ENUM, "text", 0, 0, "text|json", S(log_format), 0,
	 "text lines or JSON lines"},
};

#define NENTRIES (sizeof(table) / sizeof(table[0]))

static char **str_slot(struct config *cfg, const struct cfg_entry *e)
{
	return (char **)((char *)cfg + e->offset);
}

static long *int_slot(struct config *cfg, const struct cfg_entry *e)
{
	return (long *)((char *)cfg + e->offset);
}

static int enum_has(const char *choices, const char *v)
{
	size_t n = strlen(v);
	const char *p = choices;
	while (*p) {
		const char *bar = strchr(p, '|');
		size_t len = bar ? (size_t)(bar - p) : strlen(p);
		if (len == n && strncmp(p, v, n) == 0)
			return 1;
		if (!bar)
			break;
		p = bar + 1;
	}
	return 0;
}

static int apply(struct config *cfg, const struct cfg_entry *e, const char *value,
		 char *err, size_t errlen)
{
	long long v;

	switch (e->type) {
	case CFG_INT:
		if (util_parse_ll(value, &v) != 0) {
			snprintf(err, errlen, "%s: \"%s\" is not a whole number", e->env, value);
			return -1;
		}
		if (v < e->min || v > e->max) {
			snprintf(err, errlen, "%s: %lld is out of range (%ld..%ld)", e->env, v,
				 e->min, e->max);
			return -1;
		}
		*int_slot(cfg, e) = (long)v;
		return 0;
	case CFG_URL:
		if (*value && strncmp(value, "http://", 7) != 0 &&
		    strncmp(value, "https://", 8) != 0 && strncmp(value, "redis://", 8) != 0 &&
		    strncmp(value, "unix://", 7) != 0) {
			snprintf(err, errlen, "%s: \"%s\" is not a URL (expected http:// or https://%s)",
				 e->env, value,
				 strcmp(e->env, "REDIS_URL") == 0 ? ", redis:// or unix://" : "");
			return -1;
		}
		break;
	case CFG_ENUM:
		if (!enum_has(e->choices, value)) {
			snprintf(err, errlen, "%s: \"%s\" is not one of %s", e->env, value, e->choices);
			return -1;
		}
		break;
	case CFG_STR:
		break;
	}
	free(*str_slot(cfg, e));
	*str_slot(cfg, e) = util_strdup(value);
	return 0;
}

void config_defaults(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < NENTRIES; i++) {
		char err[256];
		if (apply(cfg, &table[i], table[i].def, err, sizeof(err)) != 0)
			abort(); /* a bad default is a programming error */
	}
}

int config_load_env(struct config *cfg, char *err, size_t errlen)
{
	for (size_t i = 0; i < NENTRIES; i++) {
		const char *v = getenv(table[i].env);
		if (v && apply(cfg, &table[i], v, err, errlen) != 0)
			return -1;
	}
	return 0;
}

int config_set(struct config *cfg, const char *name, const char *value, char *err,
	       size_t errlen)
{
	for (size_t i = 0; i < NENTRIES; i++) {
		if (strcmp(table[i].env, name) == 0 ||
		    (table[i].flag && strcmp(table[i].flag, name) == 0)) {
			if (apply(cfg, &table[i], value, err, errlen) != 0) {
				/* name the flag when it came from the command line */
				if (strcmp(table[i].env, name) != 0) {
					char tmp[512];
					snprintf(tmp, sizeof(tmp), "--%s (%s)", name, err);
					util_strlcpy(err, tmp, errlen);
				}
				return -1;
			}
			return 0;
		}
	}
	snprintf(err, errlen, "unknown setting \"%s\"", name);
	return -2;
}

int config_require(const struct config *cfg, const char *env_name, char *err, size_t errlen)
{
	for (size_t i = 0; i < NENTRIES; i++) {
		if (strcmp(table[i].env, env_name) == 0) {
			const char *v = *str_slot((struct config *)cfg, &table[i]);
			if (v && *v)
				return 0;
			snprintf(err, errlen, "%s is not set: %s", env_name, table[i].help);
			return -1;
		}
	}
	snprintf(err, errlen, "%s is not a known setting", env_name);
	return -1;
}

void config_print_help(FILE *out)
{
	fprintf(out, "Settings (environment variable, or --flag VALUE where one is shown):\n");
	for (size_t i = 0; i < NENTRIES; i++) {
		const struct cfg_entry *e = &table[i];
		char flag[64] = "";
		if (e->flag)
			snprintf(flag, sizeof(flag), "--%s", e->flag);
		fprintf(out, "  %-26s %-24s default \"%s\"", e->env, flag, e->def);
		if (e->type == CFG_INT)
			fprintf(out, " (%ld..%ld)", e->min, e->max);
		if (e->type == CFG_ENUM)
			fprintf(out, " (%s)", e->choices);
		fprintf(out, "\n      %s%s\n", e->help, e->secret ? " [secret: never printed]" : "");
	}
}

void config_print(const struct config *cfg, FILE *out)
{
	for (size_t i = 0; i < NENTRIES; i++) {
		const struct cfg_entry *e = &table[i];
		if (e->type == CFG_INT) {
			fprintf(out, "%s=%ld\n", e->env, *int_slot((struct config *)cfg, e));
		} else {
			const char *v = *str_slot((struct config *)cfg, e);
			if (e->secret)
				fprintf(out, "%s=%s\n", e->env, v && *v ? "(set)" : "(unset)");
			else
				fprintf(out, "%s=%s\n", e->env, v ? v : "");
		}
	}
}

const char *config_metadata_store(const struct config *cfg)
{
	if (strcmp(cfg->metadata_store, "auto") != 0)
		return cfg->metadata_store;
	if (*cfg->r2_access_key_id && *cfg->r2_secret_access_key && *cfg->r2_bucket_name &&
	    (*cfg->r2_account_id || *cfg->r2_endpoint))
		return "r2";
	return "fs";
}

void config_free(struct config *cfg)
{
	for (size_t i = 0; i < NENTRIES; i++) {
		if (table[i].type != CFG_INT) {
			free(*str_slot(cfg, &table[i]));
			*str_slot(cfg, &table[i]) = NULL;
		}
	}
}
