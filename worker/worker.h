/* worker.h — the kie-worker process: shared state of its threads (job runners, pollers,
 * the supervisor) and their entry points. */
#ifndef KIE_WORKER_H
#define KIE_WORKER_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

#include "config.h"
#include "copies.h"
#include "job.h"
#include "limiter.h"
#include "lifecycle.h"
#include "kie_client.h"
#include "metadata.h"
#include "prompts.h"
#include "queue.h"
#include "rconn.h"

/* The job a runner owns right now: the supervisor renews its lease with the heartbeat. */
struct runner_slot {
	pthread_mutex_t mu;
	char job_id[JOB_ID_MAX + 1]; /* "" when none */
	long epoch;
};

struct worker {
	const struct config *cfg;
	struct rconn_addr redis;
	char id[128];
	struct prompts *prompts;
	struct lifecycle_policy policy;
	struct job_parse_opts parse_opts;
	size_t max_keep;                 /* largest descriptor a runner reads whole */
	char account_id[17];             /* limiter.h: SHA-256(token), first 16 hex */
	volatile sig_atomic_t stopping;  /* take no new work */
	volatile sig_atomic_t hard_stop; /* grace is over: give up waiting on Redis */
	atomic_int inflight;             /* jobs and polls being handled right now */
	atomic_long jobs_done, polls_done;
	atomic_int next_slot;            /* runners take consumer slots 0..concurrency-1 */
	atomic_int next_poller;
	struct runner_slot *slots;       /* one per runner (consumer slot) */
};

/* What each runner and poller thread owns: its Redis connection and queue view, its
 * KIE client (one kept-alive HTTP handle) and its metadata store handle. */
struct worker_io {
	struct rconn rc;
	struct queue q;
	struct kie_client *kie;
	struct metadata_store *ms;
	struct copier *copier;  /* pollers only, NULL when KIE_COPY_RESULTS=0 (copies.h) */
};
/* Opens io for a thread named who whose queue acts as queue_id (a consumer id, or the
 * worker id). On failure logs why, asks the worker to stop and returns -1; call
 * worker_io_close() either way. */
int worker_io_open(struct worker *w, struct worker_io *io, const char *who,
		   const char *queue_id);
/* The account's createTask ("create") or recordInfo ("query") limiter over io's Redis
 * connection; member identifies the caller in the log. */
void worker_limiter(struct worker *w, struct worker_io *io, struct limiter *l, int create,
		    const char *member);
void worker_io_close(struct worker_io *io);

/* Thread entry points; arg is the struct worker. */
void *runner_main(void *arg);
void *poller_main(void *arg);
void *supervisor_main(void *arg);
void *callbacks_main(void *arg);

#endif
