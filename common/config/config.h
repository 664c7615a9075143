/* config.h — every setting of every binary, filled from one table (env, then flags).
 *
 * Must not: change after start-up (threads share it read-only), or show a secret
 * (--help and errors mask them). */
#ifndef KIE_CONFIG_H
#define KIE_CONFIG_H

#include <stddef.h>
#include <stdio.h>

struct config {
	/* KIE API */
	char *kie_api_token;     /* secret: never logged */
	char *kie_api_token_file; /* path the token was read from, or "" */
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
	char *webhook_hmac_key_file;
	/* metadata store */
	char *metadata_store;    /* auto | fs | r2 */
	char *metadata_dir;
	char *r2_account_id;
	char *r2_access_key_id;
	char *r2_secret_access_key; /* secret */
	char *r2_secret_access_key_file;
	char *r2_bucket_name;
	char *r2_public_base_url;
	char *r2_endpoint;
	/* result copies (copies.h) */
	long copy_results;       /* 1: copy result files into the store before finalizing */
	long copy_max_bytes;
	long copy_timeout_ms;
	long copy_deadline_ms;
	long copy_retry_ms;
	char *copy_allow_private; /* KIE_COPY_ALLOW_PRIVATE: 0, 1 or a list (netaddr.h) */
	/* Redis and the worker */
	char *redis_url;         /* may hold a password: print it with config_url_masked() */
	char *redis_password_file;
	char *redis_password;    /* secret: REDIS_PASSWORD_FILE's content, "" when unset; it
				  * replaces REDIS_URL's password (rconn_parse_url's password) */
	char *redis_sentinels;   /* REDIS_SENTINELS: host:port,...; "" = no Sentinel */
	char *redis_master_name; /* the name the sentinels monitor the primary by */
	char *redis_sentinel_password_file;
	char *redis_sentinel_password; /* secret: REDIS_SENTINEL_PASSWORD_FILE's content, "" when
					* unset (rconn_addr_sentinels' password) */
	long redis_sentinel_tls;  /* 1: the sentinels are reached over TLS */
	char *redis_tls_ca_file;  /* REDIS_TLS_*: paths; "" = unset (rconn_addr_tls) */
	char *redis_tls_cert_file;
	char *redis_tls_key_file;
	char *redis_tls_server_name;
	char *redis_prefix;
	char *worker_id;
	long concurrency;
	long pollers;
	long heartbeat_ttl_ms;
	long recovery_interval_ms;
	long max_recoveries;
	long job_max_bytes;
	long meta_max_bytes;
	long job_max_attempts;
	long poll_initial_ms;
	long poll_max_ms;
	long poll_timeout_ms;
	long shutdown_grace_ms;
	long retry_base_ms;
	long account_pause_ms;
	long uncertain_window_ms; /* how long a createTask of unknown outcome waits for its task */
	char *uncertain_policy;   /* auto | create | dead, when that window ends */
	long callback_consumer;   /* 1: this worker consumes <p>:callbacks */
	/* KIE account limits, shared by every worker of one KIE account */
	long create_limit;
	long create_window_ms;
	long create_burst;        /* paced createTask slots (limiter.h burst) */
	long sched_reserve;       /* every K-th pick serves a waiting lower priority */
	long cancel_ttl_s;        /* an early cancel's marker lives this long */
	long poll_rate;
	long limit_margin_ms;
	long rate_backoff_ms;
	long rate_backoff_max_ms;
	long credit_probe_ms;
	char *account_prefix;
	/* accounts, spend and budgets (docs/protocol.md, "Credits, spend and budgets") */
	char *kie_accounts_file;  /* "" = KIE_API_TOKEN is the one account (accounts.h) */
	long daily_credit_budget; /* the pool's credits per UTC day; 0 = no budget */
	char *model_credits;      /* KIE_MODEL_CREDITS: model=credits,... (estimates) */
	/* records and event lists */
	long record_ttl_s;
	long results_max;
	long dead_max;
	long reply_max;          /* KIE_REPLY_MAX: a replyTo list is trimmed to this */
	long reply_ttl_s;        /* KIE_REPLY_TTL_S: and expires this long after a push */
	/* the callback endpoint (worker/http_server.c) */
	char *http_addr;         /* "" = off; else util_parse_listen_addr's forms */
	char *ops_addr;          /* "" = the operator routes stay on http_addr; same forms */
	char *callback_path;
	char *admin_page;        /* off | on: /admin/ (worker/web.c) */
	char *admin_hosts;       /* "" = the default list (web.c); else host[:port],... */
	char *admin_token;       /* secret; "" = the page is read-only */
	char *admin_token_file;
	long http_body_max;
	long http_max_connections;
	long http_conn_timeout_s;
	long http_request_timeout_ms;
	long http_max_per_address;
	char *http_trusted_proxies; /* client_addr_list_parse's forms; "" = none */
	long callbacks_max;
	long webhook_window_s;
	/* logs */
	char *log_level;
	char *log_format;
};

/* Secret files (KIE_API_TOKEN_FILE, ...) larger than this are refused. */
#define CONFIG_SECRET_FILE_MAX_BYTES 16384

/* Fills every field with its default. Caller frees with config_free(). */
void config_defaults(struct config *cfg);

/* Reads every variable of the table from the environment. A secret (KIE_API_TOKEN,
 * KIE_WEBHOOK_HMAC_KEY, R2_SECRET_ACCESS_KEY) may come instead from a file named by
 * <NAME>_FILE (Docker secrets, systemd credentials): the file's content with one trailing
 * newline (LF or CR LF) stripped; a file that is missing, unreadable, empty, larger than
 * CONFIG_SECRET_FILE_MAX_BYTES or of more than one line is an error naming the variable
 * and the path, and so is setting both NAME and NAME_FILE (empty counts as unset).
 * REDIS_PASSWORD_FILE is read the same way into redis_password, which replaces REDIS_URL's
 * password, and REDIS_SENTINEL_PASSWORD_FILE into redis_sentinel_password. On a bad value returns -1 and writes a sentence naming the variable into err;
 * err never holds a secret. */
int config_load_env(struct config *cfg, char *err, size_t errlen);

/* Sets one setting. name says where the value came from:
 *   "KIE_WORKER_CONCURRENCY"   an env name: the environment (or a program)
 *   "concurrency", "--concurrency", "--KIE_WORKER_CONCURRENCY"
 *                              a flag name, or any name with its "--": the command line
 * On the command line a secret is refused (any local user can read /proc/<pid>/cmdline;
 * err says which variable or file to use instead), and so is a REDIS_URL that carries a
 * password (err suggests REDIS_PASSWORD_FILE). A <NAME>_FILE setting reads its file at
 * once. Returns 0, -1 (bad or refused value; err says why, naming the setting as given)
 * or -2 (no such setting). */
int config_set(struct config *cfg, const char *name, const char *value, char *err,
	       size_t errlen);

/* The names a setting may be given by on a command line, without their "--": every
 * setting's flag (redis-url) and its environment name (REDIS_URL), for getopt_long's
 * table; pass what it matched to config_set with its "--". Writes at most max names into
 * out and returns how many there are (call with max 0 to size out). */
size_t config_cli_names(const char **out, size_t max);

/* Returns 0 if the named env setting is non-empty, else -1 with err filled. */
int config_require(const struct config *cfg, const char *env_name, char *err,
		   size_t errlen);

/* Prints every setting: flag, env var, default, bounds, description. */
void config_print_help(FILE *out);

/* Prints the active values, one NAME=value a line: secrets print as "(set)" or "(unset)",
 * URLs with their password masked (config_url_masked), <NAME>_FILE settings as paths. */
void config_print(const struct config *cfg, FILE *out);

/* Writes url into out[outlen] with its password replaced by "***":
 * redis://user:***@host:port/db. A user part with no password part is masked whole
 * ("redis://" "***@host": redis-cli reads it as the password). A URL libcurl cannot parse is
 * written as is when it has no '@' in it, else as "(not shown: not a valid URL)". Returns
 * out. */
const char *config_url_masked(const char *url, char *out, size_t outlen);

/* The Redis address the settings describe: REDIS_URL with REDIS_PASSWORD_FILE
 * (rconn_parse_url), REDIS_SENTINELS (rconn_addr_sentinels) and the TLS settings
 * (rconn_addr_tls, which loads REDIS_TLS_*'s files into the process's TLS context).
 * out is a struct rconn_addr. Returns 0, or -1 with err naming the variable at fault. */
struct rconn_addr;
int config_redis_addr(const struct config *cfg, struct rconn_addr *out, char *err,
		      size_t errlen);

/* The estimated credits of one task of model, from KIE_MODEL_CREDITS
 * ("model=credits,..."): the model's entry, else the largest entry (a model not listed
 * is not assumed cheap). */
double config_model_credits(const struct config *cfg, const char *model);

/* Which metadata store the settings select: "fs" or "r2" (resolves "auto"). */
const char *config_metadata_store(const struct config *cfg);

void config_free(struct config *cfg);

#endif
