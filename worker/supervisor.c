/* supervisor.c — the heartbeat and housekeeping thread: keeps this worker's heartbeat
 * alive, returns dead workers' jobs to the queue, moves due retries back, and while the
 * pool is paused for credits (402) asks KIE for the balance and lifts the pause. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kie_client.h"
#include "log.h"
#include "queue.h"
#include "util.h"
#include "worker.h"

/* While the pool is paused for credits: at most one probe per KIE_CREDIT_PROBE_MS
 * across the pool (a lock key), and the pause is lifted when the balance is positive. */
static void credit_probe(struct worker *w, struct queue *q, struct kie_client **kie)
{
	const struct config *cfg = w->cfg;
	long remaining = 0;
	char kind[32];
	int got = 0, cleared = 0;
	double credits = 0;
	struct kie_error kerr;

	if (queue_pause_get(q, &remaining, kind, sizeof(kind), NULL, 0) != 0 || remaining == 0 ||
	    strcmp(kind, "credits") != 0)
		return;
	if (queue_pause_probe_lock(q, cfg->credit_probe_ms, &got) != 0 || !got)
		return;
	if (!*kie)
		*kie = kie_client_from_config(cfg);
	if (!*kie)
		return;
	if (kie_client_credits(*kie, &credits, &kerr) != 0) {
		log_warn(NULL, NULL, "paused for credits; the balance query failed (%s); asking "
			 "again in %ld ms", kerr.message, cfg->credit_probe_ms);
		return;
	}
	if (credits <= 0) {
		log_info(NULL, NULL, "paused for credits: the balance is %.0f; asking again in %ld ms",
			 credits, cfg->credit_probe_ms);
		return;
	}
	if (queue_pause_clear(q, "credits", &cleared) == 0 && cleared)
		log_info(NULL, NULL, "credits are back (balance %.0f): the pool resumes", credits);
}

void *supervisor_main(void *arg)
{
	struct worker *w = arg;
	const struct config *cfg = w->cfg;
	struct rconn rc;
	struct queue q;
	char info[256], host[128] = "?";
	int64_t next_beat = 0, next_recovery = 0, next_beat_log = 0;
	long beat_ms = cfg->heartbeat_ttl_ms / 3, beat_failures = 0;
	struct kie_client *kie = NULL;

	if (beat_ms < 300)
		beat_ms = 300;
	gethostname(host, sizeof(host) - 1);
	snprintf(info, sizeof(info), "{\"host\":\"%s\",\"pid\":%ld,\"startedAt\":%lld}", host,
		 (long)getpid(), (long long)util_now_ms());
	rconn_init(&rc, &w->redis, 10000, &w->hard_stop, "supervisor");
	queue_init(&q, &rc, cfg->redis_prefix, w->id, cfg->record_ttl_s, cfg->results_max);
	q.dead_max = cfg->dead_max;

	/* runs until the hard stop: the heartbeat must outlive the grace period */
	while (!w->hard_stop) {
		int64_t now = util_monotonic_ms();
		if (now >= next_beat) {
			if (queue_heartbeat(&q, cfg->heartbeat_ttl_ms, info, (int)cfg->concurrency) == 0) {
				next_beat = now + beat_ms;
				if (beat_failures)
					log_info(NULL, NULL, "heartbeat written again after %ld failure(s)",
						 beat_failures);
				beat_failures = 0;
			} else {
				/* e.g. OOM or READONLY: try again soon, but say so once per 10 s */
				next_beat = now + 250;
				if (beat_failures++ == 0 || now >= next_beat_log) {
					log_error(NULL, NULL, "heartbeat not written (%s); %ld failure(s) so "
						  "far", q.err, beat_failures);
					next_beat_log = now + 10000;
				}
			}
		}
		if (!w->stopping && now >= next_recovery) {
			long back = 0, dead = 0, moved = 0;
			next_recovery = now + cfg->recovery_interval_ms;
			queue_recover_dead_workers(&q, cfg->max_recoveries, w->max_keep, &back, &dead);
			queue_promote_delayed(&q, util_now_ms(), &moved);
			if (moved)
				log_info(NULL, NULL, "%ld retr%s due, back on the queue", moved,
					 moved == 1 ? "y" : "ies");
			credit_probe(w, &q, &kie);
		}
		util_sleep_ms(50);
	}
	kie_client_free(kie);
	rconn_close(&rc);
	return NULL;
}
