/* worker.h — the kie-worker process: shared state of its threads (job runners, pollers,
 * the supervisor) and their entry points. */
#ifndef KIE_WORKER_H
#define KIE_WORKER_H

#include <signal.h>
#include <stdatomic.h>

#include "config.h"
#include "lifecycle.h"
#include "prompts.h"
#include "rconn.h"

struct worker {
	const struct config *cfg;
	struct rconn_addr redis;
	char id[128];
	struct prompts *prompts;
	struct lifecycle_policy policy;
	volatile sig_atomic_t stopping;  /* take no new work */
	volatile sig_atomic_t hard_stop; /* grace is over: give up waiting on Redis */
	atomic_int inflight;             /* jobs and polls being handled right now */
	atomic_long jobs_done, polls_done;
	atomic_int next_slot;            /* runners take consumer slots 0..concurrency-1 */
};

/* Thread entry points; arg is the struct worker. */
void *runner_main(void *arg);
void *poller_main(void *arg);
void *supervisor_main(void *arg);

#endif
