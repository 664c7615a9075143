/* config.h — every setting of every binary, filled from one table (env, then flags). */
#ifndef KIE_CONFIG_H
#define KIE_CONFIG_H

#include <stddef.h>
#include <stdio.h>

struct config {
	/* KIE API */
	char *kie_api_token;     /* secret: never logged */
	char *kie_base_url;
	char *kie_callback_url;
	char *kie_model;
	char *kie_user_agent;
	long connect_timeout_ms;
	long http_timeout_ms;
	char *prompts_dir;
	long wait_attempts;
	long wait_interval_ms;
	char *webhook_hmac_key;  /* secret */
	/* metadata store */
	char *metadata_store;    /* auto | fs | r2 */
	char *metadata_dir;
	char *r2_account_id;
	char *r2_access_key_id;
	char *r2_secret_access_key; /* secret */
	char *r2_bucket_name;
	char *r2_public_base_url;
	char *r2_endpoint;
	/* Redis and the worker */
	char *redis_url;
	char *redis_prefix;
	char *worker_id;
	long concurrency;
	long pollers;
	long heartbeat_ttl_ms;
	long recovery_interval_ms;
	long max_recoveries;
	long job_max_bytes;
	long job_max_attempts;
	long poll_initial_ms;
	long poll_max_ms;
	long poll_timeout_ms;
	long shutdown_grace_ms;
	long retry_base_ms;
	long account_pause_ms;
	long record_ttl_s;
	long results_max;
	/* pool-wide limits of one KIE account (limiter.h) */
	long create_limit;
	long create_window_ms;
	long poll_rate;
	long limit_margin_ms;
	long rate_backoff_ms;
	long rate_backoff_max_ms;
	long credit_probe_ms;
	char *account_prefix;
	/* caps */
	long dead_max;
	long meta_max_bytes;
	/* logs */
	char *log_level;
	char *log_format;
};

/* Fills every field with its default. Caller frees with config_free(). */
void config_defaults(struct config *cfg);

/* Reads every variable of the table from the environment. On a bad value returns -1
 * and writes a sentence naming the variable into err. */
int config_load_env(struct config *cfg, char *err, size_t errlen);

/* Sets one setting by its flag name ("concurrency") or env name ("KIE_WORKER_CONCURRENCY").
 * Returns 0, -1 (bad value; err says why) or -2 (no such setting). */
int config_set(struct config *cfg, const char *name, const char *value, char *err,
	       size_t errlen);

/* Returns 0 if the named env setting is non-empty, else -1 with err filled. */
int config_require(const struct config *cfg, const char *env_name, char *err,
		   size_t errlen);

/* Prints every setting: flag, env var, default, bounds, description. */
void config_print_help(FILE *out);

/* Prints the active values; secrets print as "(set)" or "(unset)". */
void config_print(const struct config *cfg, FILE *out);

/* Which metadata store the settings select: "fs" or "r2" (resolves "auto"). */
const char *config_metadata_store(const struct config *cfg);

void config_free(struct config *cfg);

#endif
