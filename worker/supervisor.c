/* supervisor.c — the heartbeat and housekeeping thread: keeps this worker's heartbeat
 * alive, returns dead workers' jobs to the queue, and moves due retries back. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "queue.h"
#include "util.h"
#include "worker.h"

void *supervisor_main(void *arg)
{
	struct worker *w = arg;
	const struct config *cfg = w->cfg;
	struct rconn rc;
	struct queue q;
	char info[256], host[128] = "?";
	int64_t next_beat = 0, next_recovery = 0;
	long beat_ms = cfg->heartbeat_ttl_ms / 3;

	if (beat_ms < 300)
		beat_ms = 300;
	gethostname(host, sizeof(host) - 1);
	snprintf(info, sizeof(info), "{\"host\":\"%s\",\"pid\":%ld,\"startedAt\":%lld}", host,
		 (long)getpid(), (long long)util_now_ms());
	rconn_init(&rc, &w->redis, 10000, &w->hard_stop, "supervisor");
	queue_init(&q, &rc, cfg->redis_prefix, w->id, cfg->record_ttl_s, cfg->results_max);

	/* runs until the hard stop: the heartbeat must outlive the grace period */
	while (!w->hard_stop) {
		int64_t now = util_monotonic_ms();
		if (now >= next_beat) {
			if (queue_heartbeat(&q, cfg->heartbeat_ttl_ms, info, (int)cfg->concurrency) == 0)
				next_beat = now + beat_ms;
		}
		if (!w->stopping && now >= next_recovery) {
			long back = 0, dead = 0, moved = 0;
			next_recovery = now + cfg->recovery_interval_ms;
			queue_recover_dead_workers(&q, cfg->max_recoveries, &back, &dead);
			queue_promote_delayed(&q, util_now_ms(), &moved);
			if (moved)
				log_info(NULL, NULL, "%ld retr%s due, back on the queue", moved,
					 moved == 1 ? "y" : "ies");
		}
		util_sleep_ms(50);
	}
	rconn_close(&rc);
	return NULL;
}
