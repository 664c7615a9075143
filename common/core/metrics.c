/* metrics.c — the process's counters and histograms (metrics.h) and their text rendering. */
#include "core/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define NTYPES (METRICS_TYPES_MAX + 1) /* the registered job types, then "unknown" */
#define HIST_MAX_BOUNDS 16

/* kie-api.md's codes; anything else is "other", a transport error "error" */
static const int api_codes[] = {200, 400, 401, 402, 404, 408, 422, 429, 433, 451, 455,
				500, 501, 505};
#define NCODES ((int)(sizeof(api_codes) / sizeof(api_codes[0])))
#define CODE_OTHER NCODES
#define CODE_ERROR (NCODES + 1)
#define NCODE_LABELS (NCODES + 2)

static const char *const ep_names[METRICS_EP_N] = {"createTask", "recordInfo", "credit"};
static const char *const outcome_names[METRICS_JOB_N] = {"completed", "failed", "dead",
							 "retried", "uncertain"};
static const char *const dead_names[] = {"parse", "prompt", "kie", "duplicate", "recovery",
					 "uncertain", "other"};
#define NDEAD ((int)(sizeof(dead_names) / sizeof(dead_names[0])))
static const char *const cb_names[METRICS_CB_N] = {
	"verified", "unverified", "bad_signature", "missing_signature", "bad_body",
	"bad_job_id", "too_large", "redis_unavailable", "list_full", "replayed"};
static const char *const http_names[METRICS_HTTP_N] = {"per_address", "per_client",
							"deadline"};
static const char *const cbh_names[METRICS_CBH_N] = {
	"finalized", "already_final", "progress", "unknown_task", "job_mismatch", "no_job",
	"malformed", "retry", "finalize_failed", "to_copies", "unknown_job", "kie_no_job",
	"to_poller"};
static const char *const copy_names[METRICS_COPY_N] = {"stored", "failed", "too_large",
						       "wrong_type"};
static const char *const lim_names[METRICS_LIM_N] = {"create", "query"};
static const char *const queue_names[METRICS_Q_N] = {"queue", "processing", "delayed",
						     "polling", "uncertain", "dead", "callbacks"};
static const char *const pause_names[METRICS_PAUSE_N] = {"operator", "credits", "account"};

struct hist {
	const double *bounds; /* upper bounds, ascending; +Inf is implied */
	int n;
	atomic_ulong counts[HIST_MAX_BOUNDS + 1]; /* per bucket, not cumulative; [n] is +Inf */
	atomic_ullong sum_us;                      /* microseconds */
};

static const double api_bounds[] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
static const double claim_bounds[] = {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};
static const double done_bounds[] = {1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 900, 1800};
#define NB(a) ((int)(sizeof(a) / sizeof((a)[0])))

static struct {
	atomic_ulong api[METRICS_EP_N][NCODE_LABELS];
	atomic_ulong jobs[NTYPES][METRICS_JOB_N];
	atomic_ulong retries;
	atomic_ulong dead[NDEAD];
	atomic_ulong recoveries;
	atomic_ulong callbacks[METRICS_CB_N];
	atomic_ulong http_refused[METRICS_HTTP_N];
	atomic_ulong cb_handled[METRICS_CBH_N];
	atomic_ulong copies[METRICS_COPY_N];
	atomic_ulong lim_waits[METRICS_LIM_N];
	atomic_ullong lim_wait_us[METRICS_LIM_N];
	struct hist api_hist[METRICS_EP_N];
	struct hist claim_hist;
	struct hist done_hist;
	struct hist wait_hist[10];   /* by priority 0..9: pick minus queuedAt */
	atomic_ulong cancelled;      /* jobs this process ended cancelled (a cancel first) */
	atomic_llong last_tick_ms;
	atomic_llong last_redis_attempt_ms;
} M = {
	.api_hist = {{api_bounds, NB(api_bounds), {0}, 0}, {api_bounds, NB(api_bounds), {0}, 0},
		     {api_bounds, NB(api_bounds), {0}, 0}},
	.claim_hist = {claim_bounds, NB(claim_bounds), {0}, 0},
	.done_hist = {done_bounds, NB(done_bounds), {0}, 0},
#define WAIT_H {claim_bounds, NB(claim_bounds), {0}, 0}
	.wait_hist = {WAIT_H, WAIT_H, WAIT_H, WAIT_H, WAIT_H, WAIT_H, WAIT_H, WAIT_H, WAIT_H,
		      WAIT_H},
#undef WAIT_H
};

static void inc(atomic_ulong *c)
{
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static unsigned long get(const atomic_ulong *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

static unsigned long long to_us(double seconds)
{
	if (!(seconds > 0) || !isfinite(seconds)) /* NaN, negative (a clock step): 0 */
		return 0;
	if (seconds > 1e9)
		seconds = 1e9;
	return (unsigned long long)llround(seconds * 1e6);
}

static void observe(struct hist *h, double seconds)
{
	int i = 0;
	if (!(seconds >= 0) || !isfinite(seconds))
		seconds = 0;
	while (i < h->n && seconds > h->bounds[i])
		i++;
	atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_us, to_us(seconds), memory_order_relaxed);
}

double metrics_now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

const char *metrics_queue_str(enum metrics_queue q)
{
	return (unsigned)q < METRICS_Q_N ? queue_names[q] : "?";
}

void metrics_api(enum metrics_endpoint ep, int code, double seconds)
{
	int i = CODE_OTHER;
	if ((unsigned)ep >= METRICS_EP_N)
		return;
	if (code == 0) {
		i = CODE_ERROR;
	} else {
		for (int k = 0; k < NCODES; k++)
			if (api_codes[k] == code)
				i = k;
	}
	inc(&M.api[ep][i]);
	observe(&M.api_hist[ep], seconds);
}

/* the job types' label values (metrics_set_job_types): strings, so this base module
 * knows nothing of the job module above it */
static const char *type_names[METRICS_TYPES_MAX];
static int ntypes;

void metrics_set_job_types(const char *const *names, int n)
{
	ntypes = n < METRICS_TYPES_MAX ? n : METRICS_TYPES_MAX;
	for (int i = 0; i < ntypes; i++)
		type_names[i] = names[i];
}

static int type_index(const char *type)
{
	for (int i = 0; type && i < ntypes; i++)
		if (strcmp(type, type_names[i]) == 0)
			return i;
	return NTYPES - 1;
}

void metrics_job(const char *type, enum metrics_job_outcome o)
{
	if ((unsigned)o >= METRICS_JOB_N)
		return;
	inc(&M.jobs[type_index(type)][o]);
	if (o == METRICS_JOB_RETRIED)
		inc(&M.retries);
}

void metrics_dead_letter(const char *source, const char *type)
{
	int i = NDEAD - 1;
	for (int k = 0; source && k < NDEAD - 1; k++)
		if (strcmp(source, dead_names[k]) == 0)
			i = k;
	inc(&M.dead[i]);
	if (!source || strcmp(source, "duplicate") != 0)
		metrics_job(type, METRICS_JOB_DEAD);
}

void metrics_recoveries(long n)
{
	if (n > 0)
		atomic_fetch_add_explicit(&M.recoveries, (unsigned long)n, memory_order_relaxed);
}

void metrics_callback(enum metrics_callback r)
{
	if ((unsigned)r < METRICS_CB_N)
		inc(&M.callbacks[r]);
}

void metrics_http_refused(enum metrics_http_refusal r)
{
	if ((unsigned)r < METRICS_HTTP_N)
		inc(&M.http_refused[r]);
}

void metrics_callback_handled(enum metrics_cb_handled r)
{
	if ((unsigned)r < METRICS_CBH_N)
		inc(&M.cb_handled[r]);
}

void metrics_copy(enum metrics_copy_outcome o)
{
	if ((unsigned)o < METRICS_COPY_N)
		inc(&M.copies[o]);
}

void metrics_limiter_wait(enum metrics_limiter l, double seconds)
{
	if ((unsigned)l >= METRICS_LIM_N)
		return;
	inc(&M.lim_waits[l]);
	atomic_fetch_add_explicit(&M.lim_wait_us[l], to_us(seconds), memory_order_relaxed);
}

void metrics_claim_to_task(double seconds)
{
	observe(&M.claim_hist, seconds);
}

void metrics_wait(long priority, double seconds)
{
	if (priority >= 0 && priority <= 9)
		observe(&M.wait_hist[priority], seconds < 0 ? 0 : seconds);
}

void metrics_cancelled(void)
{
	inc(&M.cancelled);
}

void metrics_task_to_completion(double seconds)
{
	observe(&M.done_hist, seconds);
}

void metrics_tick(void)
{
	atomic_store_explicit(&M.last_tick_ms, util_monotonic_ms(), memory_order_relaxed);
}

void metrics_redis_attempt(void)
{
	atomic_store_explicit(&M.last_redis_attempt_ms, util_monotonic_ms(),
			      memory_order_relaxed);
}

int64_t metrics_last_tick_ms(void)
{
	return atomic_load_explicit(&M.last_tick_ms, memory_order_relaxed);
}

int64_t metrics_last_redis_attempt_ms(void)
{
	return atomic_load_explicit(&M.last_redis_attempt_ms, memory_order_relaxed);
}

static void hist_reset(struct hist *h)
{
	for (int i = 0; i <= HIST_MAX_BOUNDS; i++)
		atomic_store(&h->counts[i], 0);
	atomic_store(&h->sum_us, 0);
}

/* ---- credits: accounts are strings too (registered at start) ---- */

#define NACCTS (METRICS_ACCOUNTS_MAX + 1) /* the registered aliases, then "unknown" */
static char acct_names[METRICS_ACCOUNTS_MAX][72];
static int naccts;
static atomic_ulong credits_milli[NTYPES][NACCTS];
static _Atomic double balance_value[NACCTS];
static _Atomic int64_t balance_at_ms[NACCTS]; /* 0: not known */

void metrics_set_accounts(const char *const *aliases, int n)
{
	naccts = n < METRICS_ACCOUNTS_MAX ? n : METRICS_ACCOUNTS_MAX;
	for (int i = 0; i < naccts; i++)
		util_strlcpy(acct_names[i], aliases[i], sizeof(acct_names[i]));
}

static int acct_index(const char *alias)
{
	for (int i = 0; alias && i < naccts; i++)
		if (strcmp(alias, acct_names[i]) == 0)
			return i;
	return NACCTS - 1;
}

void metrics_credits(const char *type, const char *account, double credits)
{
	if (!(credits > 0) || credits > 1e12)
		return;
	atomic_fetch_add_explicit(&credits_milli[type_index(type)][acct_index(account)],
				  (unsigned long)llround(credits * 1000.0), memory_order_relaxed);
}

void metrics_balance(const char *account, double balance, int64_t at_ms)
{
	int i = acct_index(account);
	if (!isfinite(balance) || at_ms <= 0)
		return;
	atomic_store(&balance_value[i], balance);
	atomic_store(&balance_at_ms[i], at_ms);
}

static pthread_mutex_t budget_mu = PTHREAD_MUTEX_INITIALIZER;
static char budget_names[METRICS_BUDGET_GROUPS_MAX + 1][72];
static double budget_total[METRICS_BUDGET_GROUPS_MAX + 1], budget_used[METRICS_BUDGET_GROUPS_MAX + 1];
static int nbudgets = -1; /* -1: never set (not rendered) */

void metrics_budgets(const char *const *groups, const double *budget, const double *used,
		     int n)
{
	if (n > METRICS_BUDGET_GROUPS_MAX + 1)
		n = METRICS_BUDGET_GROUPS_MAX + 1;
	pthread_mutex_lock(&budget_mu);
	for (int i = 0; i < n; i++) {
		util_strlcpy(budget_names[i], groups[i], sizeof(budget_names[i]));
		budget_total[i] = budget[i];
		budget_used[i] = used[i];
	}
	nbudgets = n;
	pthread_mutex_unlock(&budget_mu);
}

void metrics_reset(void)
{
	pthread_mutex_lock(&budget_mu);
	nbudgets = -1;
	pthread_mutex_unlock(&budget_mu);
	for (int t = 0; t < NTYPES; t++)
		for (int a = 0; a < NACCTS; a++)
			atomic_store(&credits_milli[t][a], 0);
	for (int a = 0; a < NACCTS; a++) {
		atomic_store(&balance_value[a], 0.0);
		atomic_store(&balance_at_ms[a], 0);
	}
	atomic_ulong *flat[] = {&M.retries, &M.recoveries, &M.cancelled};
	for (int p = 0; p <= 9; p++)
		hist_reset(&M.wait_hist[p]);
	for (int e = 0; e < METRICS_EP_N; e++) {
		for (int c = 0; c < NCODE_LABELS; c++)
			atomic_store(&M.api[e][c], 0);
		hist_reset(&M.api_hist[e]);
	}
	for (int t = 0; t < NTYPES; t++)
		for (int o = 0; o < METRICS_JOB_N; o++)
			atomic_store(&M.jobs[t][o], 0);
	for (size_t i = 0; i < sizeof(flat) / sizeof(flat[0]); i++)
		atomic_store(flat[i], 0);
	for (int i = 0; i < NDEAD; i++)
		atomic_store(&M.dead[i], 0);
	for (int i = 0; i < METRICS_CB_N; i++)
		atomic_store(&M.callbacks[i], 0);
	for (int i = 0; i < METRICS_HTTP_N; i++)
		atomic_store(&M.http_refused[i], 0);
	for (int i = 0; i < METRICS_CBH_N; i++)
		atomic_store(&M.cb_handled[i], 0);
	for (int i = 0; i < METRICS_COPY_N; i++)
		atomic_store(&M.copies[i], 0);
	for (int i = 0; i < METRICS_LIM_N; i++) {
		atomic_store(&M.lim_waits[i], 0);
		atomic_store(&M.lim_wait_us[i], 0);
	}
	hist_reset(&M.claim_hist);
	hist_reset(&M.done_hist);
}

char *metrics_escape_label(const char *value, char *out, size_t outlen)
{
	size_t j = 0;
	if (!outlen)
		return out;
	for (const char *p = value ? value : ""; *p; p++) {
		const char *esc = *p == '\\' ? "\\\\" : *p == '"' ? "\\\"" : *p == '\n' ? "\\n" : NULL;
		size_t need = esc ? 2 : 1;
		if (j + need >= outlen)
			break;
		if (esc) {
			out[j++] = esc[0];
			out[j++] = esc[1];
		} else {
			out[j++] = *p;
		}
	}
	out[j] = '\0';
	return out;
}

/* --- rendering --- */

struct out {
	struct dbuf *b;
	int failed;
};

__attribute__((format(printf, 2, 3)))
static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	char line[1024];
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) || dbuf_add(o->b, line, (size_t)n) != 0)
		o->failed = 1;
}

static void head(struct out *o, const char *name, const char *type, const char *help)
{
	put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{label="value"} n — value escaped */
static void sample1(struct out *o, const char *name, const char *label, const char *value,
		    unsigned long long n)
{
	char v[256];
	put(o, "%s{%s=\"%s\"} %llu\n", name, label, metrics_escape_label(value, v, sizeof(v)), n);
}

/* A counter family with one label: its HELP/TYPE lines, then one sample per value. */
static void counters1(struct out *o, const char *name, const char *help, const char *label,
		      const char *const *values, const atomic_ulong *cells, int n)
{
	head(o, name, "counter", help);
	for (int i = 0; i < n; i++)
		sample1(o, name, label, values[i], get(&cells[i]));
}

static void seconds_value(char *buf, size_t len, unsigned long long us)
{
	snprintf(buf, len, "%llu.%06llu", us / 1000000ULL, us % 1000000ULL);
}

/* A histogram's _bucket (cumulative), _sum and _count lines; label "" for none. */
static void hist_lines(struct out *o, const char *name, const char *label, const char *value,
		       struct hist *h)
{
	char lv[300] = "", esc[256], sum[48];
	unsigned long long cum = 0;

	if (*label)
		snprintf(lv, sizeof(lv), "%s=\"%s\",", label,
			 metrics_escape_label(value, esc, sizeof(esc)));
	for (int i = 0; i <= h->n; i++) {
		cum += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
		if (i < h->n)
			put(o, "%s_bucket{%sle=\"%g\"} %llu\n", name, lv, h->bounds[i], cum);
		else
			put(o, "%s_bucket{%sle=\"+Inf\"} %llu\n", name, lv, cum);
	}
	seconds_value(sum, sizeof(sum), atomic_load_explicit(&h->sum_us, memory_order_relaxed));
	if (*label) {
		lv[strlen(lv) - 1] = '\0'; /* no trailing comma */
		put(o, "%s_sum{%s} %s\n%s_count{%s} %llu\n", name, lv, sum, name, lv, cum);
	} else {
		put(o, "%s_sum %s\n%s_count %llu\n", name, sum, name, cum);
	}
}

/* kie_credits_consumed_total (every registered type x account, then "unknown"s seen)
 * and the balances known */
static void render_credits(struct out *o)
{
	char ta[256], aa[256];

	head(o, "kie_credits_consumed_total", "counter", "Credits KIE charged for the tasks "
	     "this worker finalized, by job type and account.");
	for (int t = 0; t <= ntypes; t++) {
		int ti = t < ntypes ? t : NTYPES - 1;
		for (int a = 0; a <= naccts; a++) {
			int ai = a < naccts ? a : NACCTS - 1;
			unsigned long m = get(&credits_milli[ti][ai]);
			if ((t == ntypes || a == naccts) && !m)
				continue; /* "unknown" only once it counted */
			metrics_escape_label(t < ntypes ? type_names[t] : "unknown", ta, sizeof(ta));
			metrics_escape_label(a < naccts ? acct_names[a] : "unknown", aa, sizeof(aa));
			put(o, "kie_credits_consumed_total{type=\"%s\",account=\"%s\"} %lu.%03lu\n",
			    ta, aa, m / 1000, m % 1000);
		}
	}
	head(o, "kie_account_balance", "gauge", "The account's credits, as KIE last answered "
	     "GET /api/v1/chat/credit (one worker of the pool asks, at most once a minute).");
	for (int a = 0; a < naccts; a++)
		if (atomic_load(&balance_at_ms[a]) > 0)
			put(o, "kie_account_balance{account=\"%s\"} %.3f\n",
			    metrics_escape_label(acct_names[a], aa, sizeof(aa)),
			    atomic_load(&balance_value[a]));
	pthread_mutex_lock(&budget_mu);
	if (nbudgets >= 0) {
		head(o, "kie_budget_credits", "gauge", "Daily credit budgets: group=\"(pool)\" is "
		     "KIE_DAILY_CREDIT_BUDGET (0: none), the others kie budget set's.");
		for (int i = 0; i < nbudgets; i++)
			put(o, "kie_budget_credits{group=\"%s\"} %.3f\n",
			    metrics_escape_label(budget_names[i], aa, sizeof(aa)), budget_total[i]);
		head(o, "kie_budget_used_credits", "gauge", "Credits spent and reserved against "
		     "those budgets today (UTC), pool-wide.");
		for (int i = 0; i < nbudgets; i++)
			put(o, "kie_budget_used_credits{group=\"%s\"} %.3f\n",
			    metrics_escape_label(budget_names[i], aa, sizeof(aa)), budget_used[i]);
	}
	pthread_mutex_unlock(&budget_mu);
	head(o, "kie_account_balance_time_seconds", "gauge", "When that balance was read (epoch "
	     "seconds).");
	for (int a = 0; a < naccts; a++) {
		int64_t at = atomic_load(&balance_at_ms[a]);
		if (at > 0)
			put(o, "kie_account_balance_time_seconds{account=\"%s\"} %lld.%03lld\n",
			    metrics_escape_label(acct_names[a], aa, sizeof(aa)),
			    (long long)(at / 1000), (long long)(at % 1000));
	}
}

static void render_counters(struct out *o)
{
	char code[16], secs[48];

	head(o, "kie_jobs_total", "counter", "Jobs by type and outcome, as this worker process "
	     "saw them end (or retried or left uncertain).");
	for (int t = 0; t <= ntypes; t++) {
		int i = t < ntypes ? t : NTYPES - 1;
		for (int k = 0; k < METRICS_JOB_N; k++)
			put(o, "kie_jobs_total{type=\"%s\",outcome=\"%s\"} %lu\n",
			    t < ntypes ? type_names[t] : "unknown", outcome_names[k],
			    get(&M.jobs[i][k]));
	}
	head(o, "kie_api_requests_total", "counter", "KIE API calls by endpoint and code (KIE's "
	     "body code or the deciding HTTP status; error: no answer).");
	for (int e = 0; e < METRICS_EP_N; e++)
		for (int c = 0; c < NCODE_LABELS; c++) {
			if (c < NCODES)
				snprintf(code, sizeof(code), "%d", api_codes[c]);
			else
				util_strlcpy(code, c == CODE_OTHER ? "other" : "error", sizeof(code));
			put(o, "kie_api_requests_total{endpoint=\"%s\",code=\"%s\"} %lu\n",
			    ep_names[e], code, get(&M.api[e][c]));
		}
	head(o, "kie_retries_total", "counter", "createTask retries scheduled (jobs moved to "
	     "the delayed set).");
	put(o, "kie_retries_total %lu\n", get(&M.retries));
	counters1(o, "kie_dead_letters_total", "Entries this worker wrote to the dead letters, "
		  "by reason class (the entry's source).", "reason", dead_names, M.dead, NDEAD);
	head(o, "kie_recoveries_total", "counter", "Jobs this worker took back from dead "
	     "workers.");
	put(o, "kie_recoveries_total %lu\n", get(&M.recoveries));
	counters1(o, "kie_callbacks_total", "POSTs to the callback path by what the endpoint "
		  "did with them.", "result", cb_names, M.callbacks, METRICS_CB_N);
	counters1(o, "kie_http_refused_total", "Connections and requests the HTTP server "
		  "refused before any route, by reason.", "reason", http_names, M.http_refused,
		  METRICS_HTTP_N);
	counters1(o, "kie_callbacks_handled_total", "Entries of the callbacks list by what this "
		  "worker's consumer did with them.", "result", cbh_names, M.cb_handled,
		  METRICS_CBH_N);
	counters1(o, "kie_result_copies_total", "Result files copied to the store, by outcome.",
		  "outcome", copy_names, M.copies, METRICS_COPY_N);
	counters1(o, "kie_limiter_waits_total", "Calls that had to wait for a slot of the "
		  "account's rate limiter.", "limiter", lim_names, M.lim_waits, METRICS_LIM_N);
	head(o, "kie_limiter_wait_seconds_total", "counter", "Time spent waiting for limiter "
	     "slots.");
	for (int i = 0; i < METRICS_LIM_N; i++) {
		seconds_value(secs, sizeof(secs), atomic_load(&M.lim_wait_us[i]));
		put(o, "kie_limiter_wait_seconds_total{limiter=\"%s\"} %s\n", lim_names[i], secs);
	}
	render_credits(o);
	head(o, "kie_api_request_duration_seconds", "histogram", "KIE API call latency.");
	for (int e = 0; e < METRICS_EP_N; e++)
		hist_lines(o, "kie_api_request_duration_seconds", "endpoint", ep_names[e],
			   &M.api_hist[e]);
	head(o, "kie_claim_to_task_seconds", "histogram", "From a runner's claim of a job to its "
	     "task id recorded (limiter wait and createTask included).");
	hist_lines(o, "kie_claim_to_task_seconds", "", NULL, &M.claim_hist);
	head(o, "kie_task_to_completion_seconds", "histogram", "From a task's recording to its "
	     "finalization.");
	hist_lines(o, "kie_task_to_completion_seconds", "", NULL, &M.done_hist);
	head(o, "kie_queue_wait_seconds", "histogram", "From a job's queuedAt to its pick, by "
	     "priority (the wait under the account's limit).");
	for (int p = 0; p <= 9; p++) {
		char pv[4];
		snprintf(pv, sizeof(pv), "%d", p);
		hist_lines(o, "kie_queue_wait_seconds", "priority", pv, &M.wait_hist[p]);
	}
	head(o, "kie_jobs_cancelled_by_route_total", "counter", "Jobs this worker ended "
	     "cancelled when they arrived (their cancel came first); kie_pool_cancelled_total "
	     "counts every cancel.");
	put(o, "kie_jobs_cancelled_by_route_total %lu\n", atomic_load(&M.cancelled));
}

static void render_pool(struct out *o, const struct metrics_pool *p)
{
	head(o, "kie_redis_up", "gauge", "1 when the last scrape read the pool from Redis.");
	put(o, "kie_redis_up %d\n", p->redis_up ? 1 : 0);
	if (!p->redis_up)
		return;
	head(o, "kie_queue_jobs", "gauge", "Entries in the pool's Redis keys (pool-wide: every "
	     "worker reports the same).");
	for (int i = 0; i < METRICS_Q_N; i++) /* negative: the key has another type */
		if (p->queue[i] >= 0)
			sample1(o, "kie_queue_jobs", "queue", queue_names[i],
				(unsigned long long)p->queue[i]);
	head(o, "kie_paused", "gauge", "1 when the pool is paused, by the pause's kind.");
	for (int i = 0; i < METRICS_PAUSE_N; i++)
		sample1(o, "kie_paused", "kind", pause_names[i], p->paused && p->pause_kind == i);
	head(o, "kie_workers_alive", "gauge", "Worker processes with a live heartbeat.");
	if (p->workers_alive >= 0)
		put(o, "kie_workers_alive %lld\n", p->workers_alive);
	head(o, "kie_queue_head_wait_seconds", "gauge", "How long the queue's consuming end has "
	     "held the same entry, as this worker's scrapes saw it (0: empty queue).");
	put(o, "kie_queue_head_wait_seconds %.3f\n", p->has_head ? p->head_wait_s : 0.0);
	head(o, "kie_scrape_redis_seconds", "gauge", "How long reading the pool from Redis took.");
	put(o, "kie_scrape_redis_seconds %.6f\n", p->scrape_s);
	if (!p->has_sched)
		return;
	head(o, "kie_queued_jobs", "gauge", "Jobs ready in the scheduling structures, by "
	     "priority (pool-wide: every account's, summed).");
	for (int i = 9; i >= 0; i--)
		put(o, "kie_queued_jobs{priority=\"%d\"} %lld\n", i, p->queued_prio[i]);
	head(o, "kie_delayed_jobs", "gauge", "Jobs waiting for their notBefore or a retry.");
	put(o, "kie_delayed_jobs %lld\n", p->sched_delayed);
	head(o, "kie_jobs_cancelled_total", "counter", "Jobs ended cancelled (kie_cancel, or a "
	     "cancel that came before its job), pool-wide.");
	put(o, "kie_jobs_cancelled_total %lld\n", p->cancelled_total);
}

int metrics_render(struct dbuf *out, const struct metrics_pool *pool)
{
	struct out o = {out, 0};
	render_counters(&o);
	if (pool)
		render_pool(&o, pool);
	return o.failed ? -1 : 0;
}
