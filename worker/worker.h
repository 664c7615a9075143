/* worker.h — the kie-worker process: shared state of its threads (job runners, pollers,
 * the supervisor) and their entry points. */
#ifndef KIE_WORKER_H
#define KIE_WORKER_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>

#include "config/config.h"
#include "kie/accounts.h"
#include "kie/job.h"
#include "kie/kie_client.h"
#include "kie/lifecycle.h"
#include "kie/prompts.h"
#include "pool/limiter.h"
#include "pool/queue.h"
#include "redis/rconn.h"
#include "store/copies.h"
#include "store/metadata.h"

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
	struct accounts accounts;        /* KIE_ACCOUNTS_FILE or KIE_API_TOKEN; v[0] default */
	volatile sig_atomic_t stopping;  /* take no new work */
	volatile sig_atomic_t hard_stop; /* grace is over: give up waiting on Redis */
	atomic_int inflight;             /* jobs and polls being handled right now */
	atomic_long jobs_done, polls_done;
	atomic_int next_slot;            /* runners take consumer slots 0..concurrency-1 */
	/* the consumer ids this process runs, heartbeated and never recovered by it: the
	 * runners' "<id>#0".."<id>#<concurrency-1>", then the callback consumer's "<id>#cb"
	 * when it runs, then the router's "<id>#router" (every other "<id>#*" is a previous
	 * process's, recovered when stale) */
	char **consumers;
	int nconsumers;
	atomic_int next_poller;
	struct runner_slot *slots;       /* one per runner (consumer slot) */
	pthread_mutex_t wake_mu;         /* worker_nap() waits on wake_cv; worker_wake() */
	pthread_cond_t wake_cv;          /*   ends every nap at once */
	struct rconn **blocking;         /* connections that block in BLMOVE (runners, the */
	int nblocking, blocking_max;     /*   callback consumer), under wake_mu */
	pthread_mutex_t poll_mu;         /* idle pollers wait on poll_cv (worker_poll_wait) */
	pthread_cond_t poll_cv;          /*   until a due time or a kick (worker_poll_kick) */
	int64_t poll_kick_ms;            /* earliest due time kicked, not yet reached by a */
					 /*   waiting poller; INT64_MAX: none */
};

/* The longest an idle poller waits without looking at <p>:poll:due: what this process
 * does not kick (a task made due by another worker, a producer's push onto <p>:polling)
 * is seen at most this late (docs/protocol.md section 4). */
#define WORKER_POLL_WAIT_CAP_MS 1000
/* Something in this process made a task due at due_ms (epoch ms, the clock of the score
 * written: the runner's hand-off, the callback consumer, a poller that saw more due
 * tasks than it took): the waiting pollers wake by then. Call it after the Redis write. */
void worker_poll_kick(struct worker *w, int64_t due_ms);
/* An idle poller waits until the process's earliest wake-up time — due_ms (epoch ms:
 * the earliest due time poll_next.lua reported, or -1 for none) or a kick, whichever is
 * earlier; the first poller to reach it takes it, the others sleep on —,
 * WORKER_POLL_WAIT_CAP_MS, or a stop. */
void worker_poll_wait(struct worker *w, int64_t due_ms);

/* Sleeps up to ms, or less when worker_wake() is called (the pool went idle, stopping).
 * Threads nap with it wherever a stop should not wait for the nap to end. */
void worker_nap(struct worker *w, long ms);
/* Ends every worker_nap() in progress (not async-signal-safe: not for signal handlers). */
void worker_wake(struct worker *w);
/* Counts one job, poll or callback as finished: the last one wakes the main thread, which
 * in drain mode checks at once whether the pool is idle. */
void worker_done(struct worker *w);
/* A thread whose connection blocks (BLMOVE) registers it (on = 1) after opening it and
 * takes it back (on = 0) before closing it. Its client id is read at connect time. */
void worker_blocking(struct worker *w, struct rconn *rc, int on);
/* Sends CLIENT UNBLOCK over via for every registered connection, so a stopping worker's
 * blocked BLMOVEs return at once instead of at their timeout (which Redis ends only at
 * its next cron tick, up to 1/hz s late). Safe: an unblocked BLMOVE moves nothing. */
void worker_unblock(struct worker *w, struct rconn *via);

/* What each runner and poller thread owns: its Redis connection and queue view, its
 * KIE client (one kept-alive HTTP handle) and its metadata store handle. */
struct worker_io {
	struct rconn rc;
	struct queue q;
	struct kie_client *kie;        /* the default account's: kies[0] */
	struct kie_client **kies;      /* i20-accounts: one per account, in w->accounts' order */
	int nkies;
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
/* i20-accounts: the same limiter of account acct (an index into w->accounts). */
void worker_limiter_acct(struct worker *w, struct worker_io *io, struct limiter *l,
			 int create, const char *member, int acct);
/* i20-accounts: the account of task t's job (t->account: its alias, "" for the default;
 * read from the job hash only when the pool has several accounts); returns its index in
 * w->accounts (0 when unknown). */
int worker_task_account(struct worker *w, struct queue *q, struct task_record *t);

/* The metadata record of the task req creates for job j (task_id NULL: before
 * createTask); pointers into j, prompt and req (pending.c). */
void worker_task_metadata(const struct worker *w, const struct job *j, const char *prompt,
			  const struct kie_task_request *req, const char *task_id,
			  struct task_metadata *m);
/* The pending metadata record (JSON, caller frees) of the task task_id created for the
 * job of descriptor raw — what the runner that created it wrote; NULL with err when the
 * descriptor no longer parses or builds a prompt. */
char *worker_pending_from_raw(const struct worker *w, const char *raw, size_t len,
			      const char *task_id, char *err, size_t errlen);

/* Thread entry points; arg is the struct worker. */
void *runner_main(void *arg);
void *router_main(void *arg);
void *poller_main(void *arg);
void *supervisor_main(void *arg);
void *callbacks_main(void *arg);

#endif
