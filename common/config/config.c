/* config.c — the settings table (Redis's static_configs[] shape) and its parsers. */
#include "config/config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "core/util.h"
#include "net/client_addr.h"
#include "net/netaddr.h"
#include "redis/rconn.h"

/* CFG_FILE: the value is a path; the file's content goes to the string at TARGET (a
 * secret). CFG_REDIS_URL: checked by rconn_parse_url; CFG_SENTINELS: a host:port list,
 * checked by rconn_addr_sentinels. CFG_LISTEN: "" or an address to listen on
 * (util_parse_listen_addr). CFG_PATH: a URL path, "/...". CFG_ADDRS: a list of addresses
 * and CIDR blocks (client_addr_list_parse). CFG_ADDR_POLICY: an address policy
 * (netaddr_policy_parse). */
enum cfg_type { CFG_STR, CFG_INT, CFG_URL, CFG_ENUM, CFG_FILE, CFG_REDIS_URL, CFG_SENTINELS,
		CFG_LISTEN, CFG_PATH, CFG_ADDRS, CFG_ADDR_POLICY, CFG_MODEL_CREDITS };

#define CONFIG_SHOWN_MAX 64 /* bytes of a refused value quoted in a message */

#define CONFIG_PATH_MAX_BYTES 512

struct cfg_entry {
	const char *flag;  /* --flag name, or NULL */
	const char *env;
	enum cfg_type type;
	const char *def;
	long min, max;     /* CFG_INT bounds; CFG_FILE: min is where the content goes, TARGET() */
	const char *choices; /* CFG_ENUM: "a|b|c" */
	size_t offset;
	int secret;        /* never printed, never taken on the command line */
	const char *help;
};

#define S(f) offsetof(struct config, f)
#define TARGET(f) ((long)S(f)), 0

static const struct cfg_entry table[] = {
	{"token", "KIE_API_TOKEN", CFG_STR, "", 0, 0, NULL, S(kie_api_token), 1,
	 "Bearer token for the KIE API (required)"},
	{NULL, "KIE_API_TOKEN_FILE", CFG_FILE, "", TARGET(kie_api_token), NULL,
	 S(kie_api_token_file), 0,
	 "file holding KIE_API_TOKEN (one trailing newline stripped)"},
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
	{NULL, "KIE_WEBHOOK_HMAC_KEY_FILE", CFG_FILE, "", TARGET(webhook_hmac_key), NULL,
	 S(webhook_hmac_key_file), 0,
	 "file holding KIE_WEBHOOK_HMAC_KEY (one trailing newline stripped)"},
	{"metadata-store", "KIE_METADATA_STORE", CFG_ENUM, "auto", 0, 0, "auto|fs|r2",
	 S(metadata_store), 0, "where task metadata lives: auto = r2 when R2 credentials are set, else fs"},
	{"metadata-dir", "KIE_METADATA_DIR", CFG_STR, "./kie-data", 0, 0, NULL, S(metadata_dir), 0,
	 "fs store root (records at <dir>/kie-tasks/<taskId>.json)"},
	{NULL, "R2_ACCOUNT_ID", CFG_STR, "", 0, 0, NULL, S(r2_account_id), 0,
	 "Cloudflare account id (endpoint https://<id>.r2.cloudflarestorage.com)"},
	{NULL, "R2_ACCESS_KEY_ID", CFG_STR, "", 0, 0, NULL, S(r2_access_key_id), 0, "R2 access key id"},
	{NULL, "R2_SECRET_ACCESS_KEY", CFG_STR, "", 0, 0, NULL, S(r2_secret_access_key), 1,
	 "R2 secret access key"},
	{NULL, "R2_SECRET_ACCESS_KEY_FILE", CFG_FILE, "", TARGET(r2_secret_access_key), NULL,
	 S(r2_secret_access_key_file), 0,
	 "file holding R2_SECRET_ACCESS_KEY (one trailing newline stripped)"},
	{NULL, "R2_BUCKET_NAME", CFG_STR, "", 0, 0, NULL, S(r2_bucket_name), 0,
	 "bucket holding kie-tasks/*.json"},
	{NULL, "R2_PUBLIC_BASE_URL", CFG_URL, "", 0, 0, NULL, S(r2_public_base_url), 0,
	 "CDN in front of stored files (optional)"},
	{NULL, "R2_ENDPOINT", CFG_URL, "", 0, 0, NULL, S(r2_endpoint), 0,
	 "any S3-compatible endpoint instead of R2's (path-style)"},
	{"copy-results", "KIE_COPY_RESULTS", CFG_INT, "1", 0, 1, NULL, S(copy_results), 0,
	 "1: a succeeded task's result files are copied into the store "
	 "(kie-results/<taskId>/<n>.<ext>) before its completion event; 0: not copied"},
	{"copy-max-bytes", "KIE_COPY_MAX_BYTES", CFG_INT, "52428800", 1024, 1073741824, NULL,
	 S(copy_max_bytes), 0, "largest result file copied (larger: refused, not retried); "
	 "each poller holds at most one such file in memory"},
	{"copy-timeout-ms", "KIE_COPY_TIMEOUT_MS", CFG_INT, "60000", 500, 600000, NULL,
	 S(copy_timeout_ms), 0, "one result file's download may take this long"},
	{"copy-deadline-ms", "KIE_COPY_DEADLINE_MS", CFG_INT, "600000", 0, 86400000, NULL,
	 S(copy_deadline_ms), 0, "failed copies are retried until this long after the task's "
	 "success was seen; then the event goes out with the copies made and copyErrors"},
	{"copy-retry-ms", "KIE_COPY_RETRY_MS", CFG_INT, "2000", 10, 600000, NULL,
	 S(copy_retry_ms), 0, "first wait before a failed copy is tried again (doubles, at most "
	 "60 s)"},
	{"copy-allow-private", "KIE_COPY_ALLOW_PRIVATE", CFG_ADDR_POLICY, "0", 0, 0, NULL,
	 S(copy_allow_private), 0, "result copies connect to public addresses only: loopback, "
	 "private (RFC 1918, fc00::/7), link-local, multicast and other non-public addresses "
	 "are refused for good after DNS, for the first URL and every redirect. 1: allow every "
	 "address (tests, private deployments); or a comma list of addresses and CIDRs allowed "
	 "besides the public ones (127.0.0.2,10.0.0.0/8,fd00::/8)"},
	{"redis-url", "REDIS_URL", CFG_REDIS_URL, "redis://127.0.0.1:6379/0", 0, 0, NULL,
	 S(redis_url), 0, "Redis to take jobs from: redis://[[user]:password@]host[:port][/db] "
	 "(IPv6 host in brackets), the same with rediss:// for TLS (REDIS_TLS_*), or "
	 "unix:///path[?db=N]; printed with the password masked"},
	{NULL, "REDIS_PASSWORD_FILE", CFG_FILE, "", TARGET(redis_password), NULL,
	 S(redis_password_file), 0,
	 "file holding the Redis password (one trailing newline stripped); replaces REDIS_URL's "
	 "password, and REDIS_URL's user part is then the ACL user name"},
	{"redis-sentinels", "REDIS_SENTINELS", CFG_SENTINELS, "", 0, 0, NULL, S(redis_sentinels), 0,
	 "Redis Sentinel: comma-separated host:port list ([v6]:port; port 26379 when left out). "
	 "When set, the primary is asked of the sentinels before each connect (and checked once a "
	 "second): REDIS_URL's host and port are then ignored, its password and db still apply"},
	{"redis-master-name", "KIE_REDIS_MASTER_NAME", CFG_STR, "mymaster", 0, 0, NULL,
	 S(redis_master_name), 0, "with REDIS_SENTINELS: the name the sentinels monitor the primary by"},
	{NULL, "REDIS_SENTINEL_PASSWORD_FILE", CFG_FILE, "", TARGET(redis_sentinel_password), NULL,
	 S(redis_sentinel_password_file), 0,
	 "file holding the sentinels' own password (their requirepass; one trailing newline "
	 "stripped); the primary's password is REDIS_URL's or REDIS_PASSWORD_FILE's"},
	{"redis-sentinel-tls", "REDIS_SENTINEL_TLS", CFG_INT, "0", 0, 1, NULL,
	 S(redis_sentinel_tls), 0, "1: the sentinels are reached over TLS too (their tls-port), "
	 "with the REDIS_TLS_* settings; whether the primary is, REDIS_URL's scheme says "
	 "(rediss://)"},
	{"redis-tls-ca-file", "REDIS_TLS_CA_FILE", CFG_STR, "", 0, 0, NULL, S(redis_tls_ca_file), 0,
	 "with rediss://: CA certificates (PEM) that Redis's certificate must chain to, e.g. a "
	 "private CA's; \"\" = the system's (/etc/ssl/certs). The certificate is always "
	 "verified, and must name the host connected to"},
	{"redis-tls-cert-file", "REDIS_TLS_CERT_FILE", CFG_STR, "", 0, 0, NULL,
	 S(redis_tls_cert_file), 0, "with rediss://: client certificate (PEM, chain allowed) for "
	 "a Redis that asks for one (tls-auth-clients); needs REDIS_TLS_KEY_FILE"},
	{"redis-tls-key-file", "REDIS_TLS_KEY_FILE", CFG_STR, "", 0, 0, NULL, S(redis_tls_key_file),
	 0, "with rediss://: the client certificate's private key (PEM, no passphrase)"},
	{"redis-tls-server-name", "REDIS_TLS_SERVER_NAME", CFG_STR, "", 0, 0, NULL,
	 S(redis_tls_server_name), 0, "with TLS: the name Redis's certificate must carry and the "
	 "SNI sent, instead of the host connected to (e.g. the primary's IP a sentinel names)"},
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
	{"meta-max-bytes", "KIE_JOB_META_MAX_BYTES", CFG_INT, "4096", 0, 65536, NULL,
	 S(meta_max_bytes), 0, "largest \"meta\" object in a descriptor"},
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
	{"uncertain-window-ms", "KIE_UNCERTAIN_WINDOW_MS", CFG_INT, "600000", 100, 86400000, NULL,
	 S(uncertain_window_ms), 0, "a createTask whose outcome is unknown waits this long for its "
	 "task to be adopted (a callback with the job id, or its late recording); longer than KIE's "
	 "callback retries"},
	{"callback-consumer", "KIE_CALLBACK_CONSUMER", CFG_INT, "1", 0, 1, NULL,
	 S(callback_consumer), 0, "1: this worker adopts and finalizes the tasks of the callbacks "
	 "on <prefix>:callbacks; 0: it leaves them to the other workers (an endpoint-only worker)"},
	{"uncertain-policy", "KIE_UNCERTAIN_POLICY", CFG_ENUM, "auto", 0, 0, "auto|create|dead",
	 S(uncertain_policy), 0, "when that window ends without a task: create = create it again, "
	 "dead = dead letter \"may have been created\", auto = create when KIE was given a callback "
	 "URL (its silence is evidence), else dead"},
	{"create-limit", "KIE_CREATE_LIMIT", CFG_INT, "20", 1, 100000, NULL, S(create_limit), 0,
	 "createTask calls allowed per KIE_CREATE_WINDOW_MS, shared by every worker using the "
	 "same KIE account"},
	{"create-window-ms", "KIE_CREATE_WINDOW_MS", CFG_INT, "10000", 100, 3600000, NULL,
	 S(create_window_ms), 0, "the createTask limit's window"},
	{"create-burst", "KIE_CREATE_BURST", CFG_INT, "2", 0, 100000, NULL, S(create_burst), 0,
	 "createTask slots are paced: at most this many per this many x (window / limit), so "
	 "they spread across the window and a newly active group waits one slot, not a window; "
	 "0: the window alone"},
	{"sched-reserve", "KIE_SCHED_RESERVE", CFG_INT, "10", 0, 1000, NULL, S(sched_reserve), 0,
	 "every this many picks goes to a lower priority that is waiting (the least recently "
	 "served one), so no job waits for ever; 0: strict priorities"},
	{"cancel-ttl-s", "KIE_CANCEL_TTL_S", CFG_INT, "86400", 1, 31536000, NULL,
	 S(cancel_ttl_s), 0, "a cancel that arrives before its job is remembered this long"},
	{"poll-rate", "KIE_POLL_RATE", CFG_INT, "10", 1, 10000, NULL, S(poll_rate), 0,
	 "recordInfo calls per second, pool-wide per account"},
	{"limit-margin-ms", "KIE_LIMIT_MARGIN_MS", CFG_INT, "250", 0, 60000, NULL,
	 S(limit_margin_ms), 0, "slack added to each limiter window for network jitter"},
	{"rate-backoff-ms", "KIE_RATE_BACKOFF_MS", CFG_INT, "1000", 10, 600000, NULL,
	 S(rate_backoff_ms), 0,
	 "first pool-wide pause after a 429/455; doubles while they continue"},
	{"rate-backoff-max-ms", "KIE_RATE_BACKOFF_MAX_MS", CFG_INT, "60000", 10, 3600000, NULL,
	 S(rate_backoff_max_ms), 0, "longest such pause"},
	{"credit-probe-ms", "KIE_CREDIT_PROBE_MS", CFG_INT, "30000", 100, 3600000, NULL,
	 S(credit_probe_ms), 0,
	 "while paused for credits (402), how often one worker asks KIE for the balance"},
	{"account-prefix", "KIE_ACCOUNT_PREFIX", CFG_STR, "kie:account", 0, 0, NULL,
	 S(account_prefix), 0, "prefix of the per-account limiter keys (shared across pools)"},
	{"accounts-file", "KIE_ACCOUNTS_FILE", CFG_STR, "", 0, 0, NULL, S(kie_accounts_file), 0,
	 "several KIE accounts: a file of \"alias token\" lines (the first is the default; "
	 "'#' comments), or a folder of token files named by alias; \"\" = KIE_API_TOKEN is "
	 "the one account, \"default\" (set one of the two)"},
	{"daily-credit-budget", "KIE_DAILY_CREDIT_BUDGET", CFG_INT, "0", 0, 1000000000000L, NULL,
	 S(daily_credit_budget), 0, "credits the pool may spend per UTC day, all accounts "
	 "together: a job whose estimate would pass it waits (over_budget) for the next day; "
	 "0 = no budget (kie budget set GROUP CREDITS: per group)"},
	{"model-credits", "KIE_MODEL_CREDITS", CFG_MODEL_CREDITS,
	 "google/nano-banana=4,google/nano-banana-edit=4,google/nano-banana-pro=18", 0, 0, NULL,
	 S(model_credits), 0, "estimated credits of one task per model (model=credits,...), "
	 "reserved against the budgets before createTask until 3 successful tasks of the model "
	 "give an observed average; a model not listed: the largest value"},
	{"record-ttl-s", "KIE_RECORD_TTL_S", CFG_INT, "604800", 60, 31536000, NULL, S(record_ttl_s), 0,
	 "job and task records in Redis expire this long after they finish"},
	{"results-max", "KIE_RESULTS_MAX", CFG_INT, "10000", 1, 100000000, NULL, S(results_max), 0,
	 "<prefix>:results keeps at most this many events (oldest dropped)"},
	{"dead-max", "KIE_DEAD_MAX", CFG_INT, "10000", 1, 10000000, NULL, S(dead_max), 0,
	 "<prefix>:dead keeps at most this many entries (oldest dropped, counted)"},
	{"reply-max", "KIE_REPLY_MAX", CFG_INT, "1000", 1, 10000000, NULL, S(reply_max), 0,
	 "a job's replyTo list keeps at most this many events (oldest dropped) when the worker "
	 "pushes one there"},
	{"reply-ttl-s", "KIE_REPLY_TTL_S", CFG_INT, "604800", 60, 31536000, NULL,
	 S(reply_ttl_s), 0, "a job's replyTo list expires this long after the worker last "
	 "pushed an event there (each push sets it again)"},
	{"http-addr", "KIE_HTTP_ADDR", CFG_LISTEN, "", 0, 0, NULL, S(http_addr), 0,
	 "serve KIE's callbacks on this address: host:port, [v6]:port or :port (every IPv4 "
	 "interface); \"\" = no callback endpoint"},
	{"ops-addr", "KIE_OPS_ADDR", CFG_LISTEN, "", 0, 0, NULL, S(ops_addr), 0,
	 "serve the operator routes (/metrics, /healthz, /readyz, /admin/) on this address "
	 "instead of KIE_HTTP_ADDR, which then serves the callback path only (the production "
	 "setting: a private address); same forms as KIE_HTTP_ADDR"},
	{"callback-path", "KIE_CALLBACK_PATH", CFG_PATH, "/api/kie/callback", 0, 0, NULL,
	 S(callback_path), 0, "the path KIE POSTs callbacks to (other paths answer 404)"},
	{"admin-page", "KIE_ADMIN_PAGE", CFG_ENUM, "off", 0, 0, "off|on", S(admin_page), 0,
	 "serve the operator's web page and its JSON API under /admin/ on KIE_OPS_ADDR (or "
	 "KIE_HTTP_ADDR when that is unset; it shows job data: keep it on a private network)"},
	{"admin-hosts", "KIE_ADMIN_HOSTS", CFG_STR, "", 0, 0, NULL, S(admin_hosts), 0,
	 "Host headers /admin/ answers (comma list of host or host:port, compared whole; "
	 "others get 421) and the Origins its actions accept (http:// or https:// and one of "
	 "them); \"\" = the listen address with and without its port, and localhost, "
	 "127.0.0.1 and [::1] with the port"},
	{"admin-token", "KIE_ADMIN_TOKEN", CFG_STR, "", 0, 0, NULL, S(admin_token), 1,
	 "operator token: the web page's actions (retry, purge, pause) need it; \"\" = read-only"},
	{NULL, "KIE_ADMIN_TOKEN_FILE", CFG_FILE, "", TARGET(admin_token), NULL,
	 S(admin_token_file), 0, "file holding KIE_ADMIN_TOKEN (one trailing newline stripped)"},
	{"http-body-max", "KIE_HTTP_BODY_MAX", CFG_INT, "65536", 1024, 1048576, NULL,
	 S(http_body_max), 0, "largest callback body accepted (larger: 413)"},
	{"http-max-connections", "KIE_HTTP_MAX_CONNECTIONS", CFG_INT, "256", 1, 10000, NULL,
	 S(http_max_connections), 0, "callback listener: connections open at once (more wait "
	 "in the listen backlog)"},
	{"http-max-per-address", "KIE_HTTP_MAX_PER_ADDRESS", CFG_INT, "8", 1, 10000, NULL,
	 S(http_max_per_address), 0, "callback listener: connections from one client address "
	 "(more are closed at once), and requests from one client behind a trusted proxy "
	 "(more answer 429)"},
	{"http-trusted-proxies", "KIE_HTTP_TRUSTED_PROXIES", CFG_ADDRS, "", 0, 0, NULL,
	 S(http_trusted_proxies), 0, "reverse proxies in front of the callback listener "
	 "(comma list of addresses and CIDR blocks): their connections are not limited per "
	 "address; the client is the rightmost X-Forwarded-For entry not itself a proxy"},
	{"http-conn-timeout-s", "KIE_HTTP_CONN_TIMEOUT_S", CFG_INT, "10", 1, 600, NULL,
	 S(http_conn_timeout_s), 0, "an HTTP connection idle this long is closed"},
	{"http-request-timeout-ms", "KIE_HTTP_REQUEST_TIMEOUT_MS", CFG_INT, "10000", 100,
	 600000, NULL, S(http_request_timeout_ms), 0, "a request must be answered this long "
	 "after its connection opened or its previous request was answered (headers and body "
	 "included, however slowly they trickle), else the connection is closed"},
	{"callbacks-max", "KIE_CALLBACKS_MAX", CFG_INT, "100000", 1, 100000000, NULL,
	 S(callbacks_max), 0, "<prefix>:callbacks holds at most this many entries: at the "
	 "cap the endpoint answers 503 (KIE tries again) and counts callbacks_dropped"},
	{"webhook-window-s", "KIE_WEBHOOK_WINDOW_S", CFG_INT, "300", 1, 86400, NULL,
	 S(webhook_window_s), 0, "signed callbacks: largest allowed clock skew of "
	 "X-Webhook-Timestamp"},
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

static int is_string(const struct cfg_entry *e)
{
	return e->type != CFG_INT;
}

/* The <NAME>_FILE entry whose content goes to e's slot, or NULL. */
static const struct cfg_entry *file_of(const struct cfg_entry *e)
{
	if (!is_string(e) || e->type == CFG_FILE)
		return NULL;
	for (size_t i = 0; i < NENTRIES; i++)
		if (table[i].type == CFG_FILE && (size_t)table[i].min == e->offset)
			return &table[i];
	return NULL;
}

/* The plain entry a <NAME>_FILE entry stands in for (KIE_API_TOKEN), or NULL
 * (REDIS_PASSWORD_FILE has none: only the URL and the file carry that password;
 * REDIS_SENTINEL_PASSWORD_FILE has none either). */
static const struct cfg_entry *plain_of(const struct cfg_entry *f)
{
	for (size_t i = 0; i < NENTRIES; i++)
		if (table[i].type != CFG_FILE && is_string(&table[i]) &&
		    table[i].offset == (size_t)f->min)
			return &table[i];
	return NULL;
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

/* Reads a secret file (see config_load_env) into a new string *out. */
static int read_secret_file(const char *var, const char *path, char **out, char *err,
			    size_t errlen)
{
	char *data = NULL;
	size_t len = 0;
	int rc = -1;

	if (util_read_file(path, CONFIG_SECRET_FILE_MAX_BYTES, var, &data, &len, err,
			   errlen) != 0)
		return -1;
	if (len && data[len - 1] == '\n') {
		data[--len] = '\0';
		if (len && data[len - 1] == '\r')
			data[--len] = '\0'; /* "\r\n" is one newline too */
	}
	if (len == 0) {
		snprintf(err, errlen, "%s: %s is empty", var, path);
		goto out;
	}
	if (memchr(data, '\0', len)) {
		snprintf(err, errlen, "%s: %s has a NUL byte in it", var, path);
		goto out;
	}
	if (strpbrk(data, "\r\n")) {
		snprintf(err, errlen, "%s: %s has more than one line (a secret is one line; one "
			 "trailing newline is stripped)", var, path);
		goto out;
	}
	*out = util_strdup(data);
	rc = 0;
out:
	memset(data, 0, len + 1); /* it held a secret */
	free(data);
	return rc;
}

/* A path compared byte for byte with the request's (percent-decoded) path: so nothing
 * that would be written percent-encoded. */
static int path_ok(const char *v)
{
	if (v[0] != '/' || strlen(v) > CONFIG_PATH_MAX_BYTES)
		return 0;
	for (const unsigned char *p = (const unsigned char *)v; *p; p++)
		if (*p <= ' ' || *p >= 0x7f || strchr("?#%", *p))
			return 0;
	return 1;
}

#define MODEL_CREDITS_MAX 1000000.0

/* Walks "model=credits,..." calling fn for each entry (or only checking when fn is NULL).
 * 0, or -1 with why filled. */
static int model_credits_walk(const char *v, void (*fn)(const char *model, size_t len,
							double credits, void *arg),
			      void *arg, char *why, size_t whylen)
{
	const char *p = v;
	int n = 0;

	while (*p) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		const char *eq = memchr(p, '=', len);
		char num[32], model[128];
		char *end;
		double c;

		if (!eq || eq == p || (size_t)(eq - p) >= sizeof(model) ||
		    len - (size_t)(eq - p) - 1 >= sizeof(num) || len - (size_t)(eq - p) - 1 == 0) {
			snprintf(why, whylen, "entry %d is not model=credits", n + 1);
			return -1;
		}
		memcpy(model, p, (size_t)(eq - p));
		model[eq - p] = '\0';
		memcpy(num, eq + 1, len - (size_t)(eq - p) - 1);
		num[len - (size_t)(eq - p) - 1] = '\0';
		for (const char *q = model; *q; q++)
			if (*q <= ' ' || *q >= 0x7f) {
				snprintf(why, whylen, "entry %d: the model has a space or a byte that is "
					 "not printable ASCII", n + 1);
				return -1;
			}
		errno = 0;
		c = strtod(num, &end);
		if (num[strspn(num, "0123456789.")] != '\0' || *end != '\0' || errno ||
		    !(c >= 0) || c > MODEL_CREDITS_MAX) {
			snprintf(why, whylen, "entry %d (%s): the credits are not a number from 0 to "
				 "%.0f (digits and a '.')", n + 1, model, MODEL_CREDITS_MAX);
			return -1;
		}
		if (fn)
			fn(p, (size_t)(eq - p), c, arg);
		n++;
		p += len;
		if (*p == ',') {
			p++;
			if (!*p) {
				snprintf(why, whylen, "a trailing ','");
				return -1;
			}
		}
	}
	return 0;
}

struct model_lookup {
	const char *model;
	double found, largest;
	int has;
};

static void model_lookup_fn(const char *model, size_t len, double credits, void *arg)
{
	struct model_lookup *l = arg;
	if (credits > l->largest)
		l->largest = credits;
	if (!l->has && strlen(l->model) == len && memcmp(l->model, model, len) == 0) {
		l->found = credits;
		l->has = 1;
	}
}

double config_model_credits(const struct config *cfg, const char *model)
{
	struct model_lookup l = {.model = model ? model : "", .found = 0, .largest = 0};
	char why[160];
	if (model_credits_walk(cfg->model_credits ? cfg->model_credits : "", model_lookup_fn, &l,
			       why, sizeof(why)) != 0)
		return 0; /* checked when set: not reached */
	return l.has ? l.found : l.largest;
}

static int apply(struct config *cfg, const struct cfg_entry *e, const char *value,
		 char *err, size_t errlen)
{
	long long v;
	char shown[512], quoted[CONFIG_SHOWN_MAX * 4 + 8];

	switch (e->type) {
	case CFG_INT:
		/* util_parse_ll: digits only, so "1.5", "nan", " 5", "+5" and "1e3" are refused */
		if (util_parse_ll(value, &v) != 0) {
			snprintf(err, errlen, "%s: \"%s\" is not a whole number (digits only, no "
				 "fraction, sign '+', spaces or exponent; at most 19 digits)", e->env,
				 util_text_shown(value, CONFIG_SHOWN_MAX, quoted, sizeof(quoted)));
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
		    strncmp(value, "https://", 8) != 0) {
			snprintf(err, errlen, "%s: \"%s\" is not a URL (expected http:// or https://)",
				 e->env, util_text_shown(config_url_masked(value, shown, sizeof(shown)),
							 CONFIG_SHOWN_MAX * 4, quoted, sizeof(quoted)));
			return -1;
		}
		if (*value) {
			char why[256];
			if (netaddr_url_host_check(value, why, sizeof(why)) != 0) {
				snprintf(err, errlen, "%s %s", e->env, why);
				return -1;
			}
		}
		break;
	case CFG_ADDR_POLICY: {
		struct netaddr_policy p;
		char why[256];
		if (netaddr_policy_parse(value, &p, why, sizeof(why)) != 0) {
			snprintf(err, errlen, "%s: %s", e->env, why);
			return -1;
		}
		break;
	}
	case CFG_REDIS_URL: {
		struct rconn_addr a;
		if (rconn_parse_url(value, NULL, &a, err, errlen) != 0)
			return -1;
		break;
	}
	case CFG_LISTEN:
		if (*value) {
			struct util_listen_addr a;
			char why[256];
			if (util_parse_listen_addr(value, &a, why, sizeof(why)) != 0) {
				snprintf(err, errlen, "%s: %s", e->env, why);
				return -1;
			}
		}
		break;
	case CFG_ADDRS: {
		struct client_addr_list *l = util_xcalloc(1, sizeof(*l));
		char why[256];
		int rc = client_addr_list_parse(value, l, why, sizeof(why));
		free(l);
		if (rc != 0) {
			snprintf(err, errlen, "%s: %s", e->env, why);
			return -1;
		}
		break;
	}
	case CFG_PATH:
		if (!path_ok(value)) {
			snprintf(err, errlen, "%s: \"%s\" is not a URL path (it starts with '/', "
				 "has at most %d printable ASCII bytes and no '?', '#', '%%' or "
				 "spaces)", e->env,
				 util_text_shown(value, CONFIG_SHOWN_MAX, quoted, sizeof(quoted)),
				 CONFIG_PATH_MAX_BYTES);
			return -1;
		}
		break;
	case CFG_SENTINELS: {
		struct rconn_addr a;
		memset(&a, 0, sizeof(a));
		if (rconn_addr_sentinels(&a, value, "-", NULL, err, errlen) != 0)
			return -1;
		break;
	}
	case CFG_ENUM:
		if (!enum_has(e->choices, value)) {
			snprintf(err, errlen, "%s: \"%s\" is not one of %s", e->env,
				 util_text_shown(value, CONFIG_SHOWN_MAX, quoted, sizeof(quoted)),
				 e->choices);
			return -1;
		}
		break;
	case CFG_FILE:
		if (*value) {
			char *secret = NULL;
			char **target = (char **)((char *)cfg + e->min);
			if (read_secret_file(e->env, value, &secret, err, errlen) != 0)
				return -1;
			free(*target);
			*target = secret;
		}
		break;
	case CFG_MODEL_CREDITS: {
		char why[200];
		if (model_credits_walk(value, NULL, NULL, why, sizeof(why)) != 0) {
			snprintf(err, errlen, "%s: %s (expected model=credits,..., such as "
				 "google/nano-banana=4,google/nano-banana-edit=4)", e->env, why);
			return -1;
		}
		break;
	}
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
	cfg->redis_password = util_strdup(""); /* no entry of its own: REDIS_PASSWORD_FILE's */
	cfg->redis_sentinel_password = util_strdup(""); /* REDIS_SENTINEL_PASSWORD_FILE's */
	for (size_t i = 0; i < NENTRIES; i++) {
		char err[256];
		if (apply(cfg, &table[i], table[i].def, err, sizeof(err)) != 0)
			abort(); /* a bad default is a programming error */
	}
}

int config_load_env(struct config *cfg, char *err, size_t errlen)
{
	for (size_t i = 0; i < NENTRIES; i++) {
		const struct cfg_entry *e = &table[i];
		const char *v = getenv(e->env);
		if (e->type == CFG_FILE && v && *v) {
			const struct cfg_entry *plain = plain_of(e);
			const char *pv = plain ? getenv(plain->env) : NULL;
			if (pv && *pv) {
				snprintf(err, errlen, "%s and %s are both set: set one of them",
					 plain->env, e->env);
				return -1;
			}
		}
		if (v && apply(cfg, e, v, err, errlen) != 0)
			return -1;
	}
	return 0;
}

/* The command line's rule (see config_set): 0, or -1 with err filled. */
static int refuse_on_command_line(const struct cfg_entry *e, const char *shown,
				  const char *value, char *err, size_t errlen)
{
	if (e->secret) {
		const struct cfg_entry *f = file_of(e);
		snprintf(err, errlen, "%s: secrets are not taken on the command line (any local "
			 "user can read /proc/<pid>/cmdline); set %s%s%s", shown, e->env,
			 f ? " or " : "", f ? f->env : "");
		return -1;
	}
	if (e->type == CFG_REDIS_URL) {
		struct rconn_addr a;
		char ignored[256];
		if (rconn_parse_url(value, NULL, &a, ignored, sizeof(ignored)) == 0 &&
		    a.password[0]) {
			snprintf(err, errlen, "%s: a Redis password is not taken on the command line "
				 "(any local user can read /proc/<pid>/cmdline); put it in "
				 "REDIS_PASSWORD_FILE, or the whole URL in %s (redis://name@host reads "
				 "name as the password; for a user name write redis://name:@host)",
				 shown, e->env);
			return -1;
		}
	}
	return 0;
}

int config_set(struct config *cfg, const char *name, const char *value, char *err,
	       size_t errlen)
{
	int dashes = strncmp(name, "--", 2) == 0;
	const char *bare = dashes ? name + 2 : name;
	char shown[96];

	for (size_t i = 0; i < NENTRIES; i++) {
		const struct cfg_entry *e = &table[i];
		int by_flag = e->flag && strcmp(e->flag, bare) == 0;
		if (!by_flag && strcmp(e->env, bare) != 0)
			continue;
		if (!dashes && !by_flag) /* the environment */
			return apply(cfg, e, value, err, errlen);
		snprintf(shown, sizeof(shown), "--%s", bare);
		if (refuse_on_command_line(e, shown, value, err, errlen) != 0)
			return -1;
		if (apply(cfg, e, value, err, errlen) != 0) {
			char tmp[512];
			snprintf(tmp, sizeof(tmp), "%s (%s)", shown, err);
			util_strlcpy(err, tmp, errlen);
			util_utf8_fix_end(err); /* a cut never splits a character */
			return -1;
		}
		return 0;
	}
	snprintf(err, errlen, "unknown setting \"%s\"", name);
	return -2;
}

size_t config_cli_names(const char **out, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < NENTRIES; i++) {
		const char *names[2] = {table[i].flag, table[i].env};
		for (int k = 0; k < 2; k++) {
			if (!names[k])
				continue;
			if (n < max)
				out[n] = names[k];
			n++;
		}
	}
	return n;
}

int config_require(const struct config *cfg, const char *env_name, char *err, size_t errlen)
{
	for (size_t i = 0; i < NENTRIES; i++) {
		if (strcmp(table[i].env, env_name) == 0) {
			const struct cfg_entry *f = file_of(&table[i]);
			const char *v = *str_slot((struct config *)cfg, &table[i]);
			if (v && *v)
				return 0;
			snprintf(err, errlen, "%s is not set%s%s%s: %s", env_name,
				 f ? " (nor " : "", f ? f->env : "", f ? ")" : "", table[i].help);
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
		fprintf(out, "\n      %s%s\n", e->help,
			e->secret ? " [secret: never printed, not taken on the command line]" : "");
	}
	fprintf(out, "A secret on the command line is refused (any local user can read "
		"/proc/<pid>/cmdline):\nset it in the environment, or in the file <NAME>_FILE "
		"names.\n");
}

void config_print(const struct config *cfg, FILE *out)
{
	char masked[1024];

	for (size_t i = 0; i < NENTRIES; i++) {
		const struct cfg_entry *e = &table[i];
		if (e->type == CFG_INT) {
			fprintf(out, "%s=%ld\n", e->env, *int_slot((struct config *)cfg, e));
			continue;
		}
		const char *v = *str_slot((struct config *)cfg, e);
		if (!v)
			v = "";
		if (e->secret)
			fprintf(out, "%s=%s\n", e->env, *v ? "(set)" : "(unset)");
		else if (e->type == CFG_URL || e->type == CFG_REDIS_URL)
			fprintf(out, "%s=%s\n", e->env, config_url_masked(v, masked, sizeof(masked)));
		else
			fprintf(out, "%s=%s\n", e->env, v);
	}
}

const char *config_url_masked(const char *url, char *out, size_t outlen)
{
	CURLU *h = curl_url();
	char *pass = NULL, *user = NULL, *masked = NULL;
	CURLUcode rc;

	if (!h) {
		util_strlcpy(out, "(not shown: out of memory)", outlen);
		return out;
	}
	rc = curl_url_set(h, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
	if (rc != CURLUE_OK) {
		util_strlcpy(out, strchr(url, '@') ? "(not shown: not a valid URL)" : url, outlen);
		goto out;
	}
	int has_pass = curl_url_get(h, CURLUPART_PASSWORD, &pass, 0) == CURLUE_OK && pass && *pass;
	int lone_user = !pass && curl_url_get(h, CURLUPART_USER, &user, 0) == CURLUE_OK && user &&
			*user;
	if (!has_pass && !lone_user) {
		util_strlcpy(out, url, outlen); /* nothing to hide: as it was written */
		goto out;
	}
	/* a lone user part is the password, as redis-cli reads redis://secret@host */
	rc = curl_url_set(h, has_pass ? CURLUPART_PASSWORD : CURLUPART_USER, "***", 0);
	if (rc != CURLUE_OK || curl_url_get(h, CURLUPART_URL, &masked, 0) != CURLUE_OK || !masked)
		util_strlcpy(out, "(not shown: out of memory)", outlen);
	else
		util_strlcpy(out, masked, outlen);
out:
	curl_free(pass);
	curl_free(user);
	curl_free(masked);
	curl_url_cleanup(h);
	return out;
}

int config_redis_addr(const struct config *cfg, struct rconn_addr *out, char *err,
		      size_t errlen)
{
	if (rconn_parse_url(cfg->redis_url, cfg->redis_password, out, err, errlen) != 0 ||
	    rconn_addr_sentinels(out, cfg->redis_sentinels, cfg->redis_master_name,
				 cfg->redis_sentinel_password, err, errlen) != 0 ||
	    rconn_addr_tls(out, (int)cfg->redis_sentinel_tls, cfg->redis_tls_ca_file,
			   cfg->redis_tls_cert_file, cfg->redis_tls_key_file,
			   cfg->redis_tls_server_name, err, errlen) != 0) {
		memset(out, 0, sizeof(*out)); /* no password left behind */
		return -1;
	}
	return 0;
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
		if (is_string(&table[i])) {
			free(*str_slot(cfg, &table[i]));
			*str_slot(cfg, &table[i]) = NULL;
		}
	}
	free(cfg->redis_password);
	cfg->redis_password = NULL;
	free(cfg->redis_sentinel_password);
	cfg->redis_sentinel_password = NULL;
}
