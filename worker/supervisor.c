/* supervisor.c — the heartbeat and housekeeping thread: keeps this worker's heartbeat
 * alive, returns dead workers' jobs to the queue, moves due retries back, and while the
 * pool is paused for credits (402) asks KIE for the balance and lifts the pause. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"
#include "core/util.h"
#include "kie/kie_client.h"
#include "pool/balance.h"
#include "pool/budget.h"
#include "pool/finalize.h"
#include "pool/queue.h"
#include "pool/sched_accounts.h"
#include "worker.h"

/* While the pool (one account) or an account (several: <p>:pause:acct:<alias>) is paused
 * for credits: at most one probe per KIE_CREDIT_PROBE_MS across the pool (a lock key),
 * with that account's token, and the pause is lifted when the balance is positive.
 * kie[] holds one client per account, made when first needed. */
static void credit_probe_one(struct worker *w, struct queue *q, struct kie_client **kie,
			     int a)
{
	const struct config *cfg = w->cfg;
	/* i20-accounts: one account: the pool-wide pause, as before */
	const char *alias = w->accounts.n > 1 ? w->accounts.v[a].alias : NULL;
	const char *who = alias ? alias : "the pool";
	long remaining = 0;
	char kind[32];
	int got = 0, cleared = 0;
	double credits = 0;
	struct kie_error kerr;

	if (queue_acct_pause_get(q, alias, &remaining, kind, sizeof(kind), NULL, 0) != 0 ||
	    remaining == 0 || strcmp(kind, "credits") != 0)
		return;
	if (queue_acct_pause_probe_lock(q, alias, cfg->credit_probe_ms, &got) != 0 || !got)
		return;
	if (!*kie)
		*kie = accounts_client(&w->accounts, a, cfg);
	if (!*kie)
		return;
	if (kie_client_credits(*kie, &credits, &kerr) != 0) {
		log_warn(NULL, NULL, "%s paused for credits; the balance query failed (%s); asking "
			 "again in %ld ms", who, kerr.message, cfg->credit_probe_ms);
		return;
	}
	if (credits <= 0) {
		log_info(NULL, NULL, "%s paused for credits: the balance is %.0f; asking again in "
			 "%ld ms", who, credits, cfg->credit_probe_ms);
		return;
	}
	if (queue_acct_pause_clear(q, alias, "credits", &cleared) == 0 && cleared)
		log_info(NULL, NULL, "credits are back (balance %.0f): %s resumes%s", credits,
			 alias ? "account" : "the pool", alias ? alias : "");
}

static void credit_probe(struct worker *w, struct queue *q, struct kie_client **kie)
{
	for (int a = 0; a < w->accounts.n && !w->stopping; a++)
		credit_probe_one(w, q, &kie[a], a);
}

/* The credits thread: each account's balance (asked of KIE by one worker of the pool at
 * most once a minute, balance.h) and today's budget figures, for the gauges; a thread of
 * its own so that a slow KIE never delays the heartbeat. The first look comes
 * CREDITS_FIRST_MS after start. */
#define CREDITS_FIRST_MS 5000
static void *credits_main(void *arg)
{
	struct worker *w = arg;
	const struct config *cfg = w->cfg;
	struct rconn rc;
	struct queue q;
	struct balance_prober b;
	int64_t start = util_monotonic_ms();

	rconn_init(&rc, &w->redis, 5000, &w->stopping, "credits");
	queue_init(&q, &rc, cfg->redis_prefix, w->id, cfg->record_ttl_s, cfg->results_max);
	balance_prober_init(&b, &w->accounts);
	while (!w->stopping) {
		int64_t now = util_monotonic_ms();
		if (now - start >= CREDITS_FIRST_MS) {
			balance_tick(&b, &q, &w->accounts, cfg, now);
			budget_gauges(&q, cfg->daily_credit_budget, util_now_ms());
			/* i20-wire: jobs over budget go back once their budget has room (a raise,
			 * or a new UTC day) */
			for (int a = 0; a < w->accounts.n; a++) /* i20-accounts: each structure */
				budget_unpark(&q, w->accounts.n > 1 ? w->accounts.v[a].alias
								    : SCHED_ACCOUNT_NAME,
					      cfg->daily_credit_budget, util_now_ms(), NULL);
		}
		worker_nap(w, cfg->recovery_interval_ms < BALANCE_CHECK_MS
				      ? cfg->recovery_interval_ms : BALANCE_CHECK_MS);
	}
	balance_prober_free(&b);
	rconn_close(&rc);
	return NULL;
}

/* Uncertain jobs whose window ended without their task: KIE_UNCERTAIN_POLICY decides. */
static void uncertain_due(struct worker *w, struct queue *q)
{
	const struct config *cfg = w->cfg;
	char **ids = NULL;
	size_t n = 0;

	if (queue_uncertain_due(q, 100, &ids, &n) != 0)
		return;
	for (size_t i = 0; i < n; i++) {
		struct uncertain_job u;
		char reason[700], *ev = NULL;
		int create, acted = 0;

		if (queue_uncertain_get(q, ids[i], &u) != 0) {
			free(ids[i]);
			continue;
		}
		create = strcmp(cfg->uncertain_policy, "create") == 0 ||
			 (strcmp(cfg->uncertain_policy, "auto") == 0 && u.callback);
		if (create) {
			snprintf(reason, sizeof(reason), "no task was adopted within %ld ms "
				 "(KIE_UNCERTAIN_WINDOW_MS) of a createTask whose outcome was unknown; "
				 "created again (KIE_UNCERTAIN_POLICY=%s)", cfg->uncertain_window_ms,
				 cfg->uncertain_policy);
		} else {
			snprintf(reason, sizeof(reason), "uncertain: createTask's outcome stayed unknown "
				 "for %ld ms (KIE_UNCERTAIN_WINDOW_MS) and no task was adopted; KIE may "
				 "have created (and charged) one: check before replaying%s",
				 cfg->uncertain_window_ms, u.callback ? "" : " (no callback URL: "
				 "set KIE_CALLBACK_URL so such tasks are adopted)");
			ev = finalize_event_json("dead", ids[i], NULL, u.type, NULL, reason, u.attempts,
						 u.meta);
		}
		if (queue_uncertain_resolve(q, ids[i], &u, create, reason, ev, &acted) == 0 &&
		    acted) {
			log_warn(ids[i], NULL, "%s", reason);
			if (!create)
				metrics_dead_letter("uncertain", u.type);
		}
		free(ev);
		queue_uncertain_free(&u);
		free(ids[i]);
	}
	free(ids);
}

/* i20-counts: this worker's scheduling structures in <p>:accounts, for the readers that
 * sum over them (sched_accounts.h): added every recovery interval (a Redis that lost the
 * set has it back within one), and once, at start, the names no account uses whose
 * structure is empty are dropped. */
static void accounts_known(struct worker *w, struct queue *q, int *pruned)
{
	long removed = 0;
	if (sched_accounts_register(q, &w->accounts) != 0)
		return;
	if (*pruned)
		return;
	if (sched_accounts_prune(q, &w->accounts, &removed) == 0) {
		*pruned = 1;
		if (removed)
			log_info(NULL, NULL, "%ld scheduling structure(s) of accounts no longer "
				 "configured were empty: no longer listed in %s:accounts", removed,
				 q->prefix);
	}
}

/* The leases of the jobs the runners own, for the heartbeat step. */
static void read_slots(struct worker *w, char (*ids)[JOB_ID_MAX + 1], const char **ptrs,
		       long *epochs, int n)
{
	for (int i = 0; i < n; i++) {
		ids[i][0] = '\0';
		epochs[i] = 0;
		if (i < (int)w->cfg->concurrency) {
			pthread_mutex_lock(&w->slots[i].mu);
			util_strlcpy(ids[i], w->slots[i].job_id, sizeof(ids[i]));
			epochs[i] = w->slots[i].epoch;
			pthread_mutex_unlock(&w->slots[i].mu);
		}
		ptrs[i] = ids[i];
	}
}

void *supervisor_main(void *arg)
{
	struct worker *w = arg;
	const struct config *cfg = w->cfg;
	struct rconn rc;
	struct queue q;
	char info[256], host[128] = "?";
	int64_t next_beat = 0, next_recovery = 0, next_beat_log = 0, beating_since = -1;
	long beat_ms = cfg->heartbeat_ttl_ms / 3, beat_failures = 0;
	unsigned long drops_seen = 0;
	struct kie_client **kie = util_xcalloc((size_t)w->accounts.n, sizeof(*kie));
	pthread_t credits_th;
	int credits_started = 0, pruned = 0;
	/* the runners' consumers, then the callback consumer (its claimed callbacks) */
	int nbeat = w->nconsumers;
	char (*slot_ids)[JOB_ID_MAX + 1] = util_xcalloc((size_t)nbeat, sizeof(*slot_ids));
	const char **slot_ptrs = util_xcalloc((size_t)nbeat, sizeof(char *));
	long *slot_epochs = util_xcalloc((size_t)nbeat, sizeof(long));

	if (beat_ms < 300)
		beat_ms = 300;
	gethostname(host, sizeof(host) - 1);
	snprintf(info, sizeof(info), "{\"host\":\"%s\",\"pid\":%ld,\"startedAt\":%lld}", host,
		 (long)getpid(), (long long)util_now_ms());
	rconn_init(&rc, &w->redis, 10000, &w->hard_stop, "supervisor");
	queue_init(&q, &rc, cfg->redis_prefix, w->id, cfg->record_ttl_s, cfg->results_max);
	q.dead_max = cfg->dead_max;
	q.reply_max = cfg->reply_max;
	q.reply_ttl_s = cfg->reply_ttl_s;
	/* the balance query may take KIE_HTTP_TIMEOUT_MS: never on the heartbeat's thread */
	credits_started = pthread_create(&credits_th, NULL, credits_main, w) == 0;
	if (!credits_started)
		log_warn(NULL, NULL, "cannot start the credits thread: no balance or budget gauges");

	/* runs until the hard stop: the heartbeat must outlive the grace period */
	while (!w->hard_stop) {
		int64_t now = util_monotonic_ms();
		metrics_tick(); /* GET /healthz */
		if (now >= next_beat) {
			read_slots(w, slot_ids, slot_ptrs, slot_epochs, nbeat);
			if (queue_heartbeat(&q, cfg->heartbeat_ttl_ms, info, nbeat,
					    (const char *const *)w->consumers, slot_ptrs,
					    slot_epochs) == 0) {
				next_beat = now + beat_ms;
				/* beating without a gap since: a lost connection restarts the count */
				if (beating_since < 0 || rc.drops != drops_seen)
					beating_since = now;
				drops_seen = rc.drops;
				if (beat_failures)
					log_info(NULL, NULL, "heartbeat written again after %ld failure(s)",
						 beat_failures);
				beat_failures = 0;
			} else {
				/* e.g. OOM or READONLY: try again soon, but say so once per 10 s */
				next_beat = now + 250;
				beating_since = -1;
				if (beat_failures++ == 0 || now >= next_beat_log) {
					log_error(NULL, NULL, "heartbeat not written (%s); %ld failure(s) so "
						  "far", q.err, beat_failures);
					next_beat_log = now + 10000;
				}
			}
		}
		if (!w->stopping && now >= next_recovery) {
			long back = 0, moved = 0;
			next_recovery = now + cfg->recovery_interval_ms;
			/* Dead means dead: judge others only after this worker has itself been
			 * heartbeating without a gap for a TTL plus the longest reconnect backoff.
			 * After Redis comes back (a restart, a failover, this worker cut off)
			 * every heartbeat may have expired; every live worker reconnects and
			 * renews its own within that grace. */
			if (beating_since >= 0 &&
			    now - beating_since >= cfg->heartbeat_ttl_ms + RCONN_BACKOFF_MAX_MS)
			{
				queue_recover_dead_workers(&q, (const char *const *)w->consumers,
							   w->nconsumers, w->max_keep, &back);
				metrics_recoveries(back);
			}
			accounts_known(w, &q, &pruned);
			uncertain_due(w, &q);
			queue_promote_delayed(&q, util_now_ms(), &moved);
			if (moved)
				log_info(NULL, NULL, "%ld retr%s due, back on the queue", moved,
					 moved == 1 ? "y" : "ies");
			credit_probe(w, &q, kie);
			{ /* lost budget reservations healed (budget.h) */
				long healed = 0;
				if (budget_heal(&q, util_now_ms(), BUDGET_HEAL_AGE_MS, &healed) == 0 &&
				    healed)
					log_info(NULL, NULL, "%ld budget reservation(s) of jobs with "
						 "nothing in flight released", healed);
			}
		}
		if (!w->stopping)
			worker_nap(w, 50); /* ended early by the drain's decision to stop */
		else
			util_sleep_ms(5); /* main joins us right after its release at exit */
	}
	for (int a = 0; a < w->accounts.n; a++)
		kie_client_free(kie[a]);
	free(kie);
	if (credits_started)
		pthread_join(credits_th, NULL);
	rconn_close(&rc);
	free(slot_ids);
	free(slot_ptrs);
	free(slot_epochs);
	return NULL;
}
