/* worker_io.c — the per-thread resources of runners and pollers (worker.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/util.h"
#include "worker.h"

int worker_io_open(struct worker *w, struct worker_io *io, const char *who,
		   const char *queue_id)
{
	const struct config *cfg = w->cfg;
	char err[512];

	memset(io, 0, sizeof(*io));
	rconn_init(&io->rc, &w->redis, 10000, &w->hard_stop, who);
	io->rc.want_client_id = 1;
	queue_init(&io->q, &io->rc, cfg->redis_prefix, queue_id, cfg->record_ttl_s,
		   cfg->results_max);
	io->q.dead_max = cfg->dead_max;
	io->q.reply_max = cfg->reply_max;
	io->q.reply_ttl_s = cfg->reply_ttl_s;
	io->q.poll_initial_ms = w->policy.poll_initial_ms;
	/* i20-accounts: one KIE client per account (kies[i] is account i's; kie the default) */
	io->nkies = w->accounts.n;
	io->kies = util_xcalloc((size_t)io->nkies, sizeof(*io->kies));
	for (int i = 0; i < io->nkies; i++) {
		io->kies[i] = accounts_client(&w->accounts, i, cfg);
		if (!io->kies[i])
			io->nkies = i; /* reported below */
	}
	io->kie = io->nkies == w->accounts.n ? io->kies[0] : NULL;
	io->ms = metadata_store_open(cfg, err, sizeof(err));
	if (!io->kie || !io->ms) {
		log_error(NULL, NULL, "%s cannot start: %s", who, io->ms ? "no HTTP handle" : err);
		w->stopping = 1;
		return -1;
	}
	return 0;
}

void worker_io_close(struct worker_io *io)
{
	copies_free(io->copier);
	metadata_store_free(io->ms);
	for (int i = 0; i < io->nkies; i++)
		kie_client_free(io->kies[i]);
	free(io->kies);
	io->kies = NULL;
	io->nkies = 0;
	io->kie = NULL;
	rconn_close(&io->rc);
}

void worker_limiter(struct worker *w, struct worker_io *io, struct limiter *l, int create,
		    const char *member)
{
	worker_limiter_acct(w, io, l, create, member, 0);
}

void worker_limiter_acct(struct worker *w, struct worker_io *io, struct limiter *l,
			 int create, const char *member, int acct)
{
	const struct config *cfg = w->cfg;
	const char *id = acct > 0 && acct < w->accounts.n ? w->accounts.v[acct].id
							    : w->account_id;
	if (create) {
		limiter_init(l, &io->rc, cfg->account_prefix, id, "create",
			     cfg->create_limit, cfg->create_window_ms, cfg->limit_margin_ms,
			     cfg->rate_backoff_ms, cfg->rate_backoff_max_ms, member);
		l->burst = cfg->create_burst; /* paced: the scheduler's slot every window/limit */
	} else
		limiter_init(l, &io->rc, cfg->account_prefix, id, "query",
			     /* a 1 s window would lose a quarter to the default margin */
			     cfg->poll_rate, 1000,
			     cfg->limit_margin_ms < 100 ? cfg->limit_margin_ms : 100, cfg->rate_backoff_ms,
			     cfg->rate_backoff_max_ms, member);
}

void worker_nap(struct worker *w, long ms)
{
	struct timespec ts;

	if (ms <= 0)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&w->wake_mu);
	if (!w->stopping)
		pthread_cond_timedwait(&w->wake_cv, &w->wake_mu, &ts);
	pthread_mutex_unlock(&w->wake_mu);
}

void worker_wake(struct worker *w)
{
	pthread_mutex_lock(&w->wake_mu);
	pthread_cond_broadcast(&w->wake_cv);
	pthread_mutex_unlock(&w->wake_mu);
	pthread_mutex_lock(&w->poll_mu);
	pthread_cond_broadcast(&w->poll_cv);
	pthread_mutex_unlock(&w->poll_mu);
}

void worker_poll_kick(struct worker *w, int64_t due_ms)
{
	pthread_mutex_lock(&w->poll_mu);
	if (due_ms < w->poll_kick_ms) { /* an earlier kick pending already covers this one */
		w->poll_kick_ms = due_ms;
		pthread_cond_broadcast(&w->poll_cv);
	}
	pthread_mutex_unlock(&w->poll_mu);
}

void worker_poll_wait(struct worker *w, int64_t due_ms)
{
	int64_t until = util_now_ms() + WORKER_POLL_WAIT_CAP_MS;

	pthread_mutex_lock(&w->poll_mu);
	/* the due time it saw becomes the process's one wake-up time: the first poller to
	 * reach it looks, the others sleep on (no herd of pollers per due task) */
	if (due_ms >= 0 && due_ms < w->poll_kick_ms)
		w->poll_kick_ms = due_ms;
	while (!w->stopping) {
		int64_t now = util_now_ms(), t = until;
		struct timespec ts;
		if (w->poll_kick_ms <= now) { /* a kicked task is due: this poller looks */
			w->poll_kick_ms = INT64_MAX;
			break;
		}
		if (w->poll_kick_ms < t)
			t = w->poll_kick_ms;
		if (now >= t)
			break;
		/* due times are epoch ms: CLOCK_REALTIME, the condition variable's clock */
		ts.tv_sec = (time_t)(t / 1000);
		ts.tv_nsec = (long)(t % 1000) * 1000000L;
		pthread_cond_timedwait(&w->poll_cv, &w->poll_mu, &ts);
	}
	pthread_mutex_unlock(&w->poll_mu);
}

void worker_done(struct worker *w)
{
	if (atomic_fetch_sub(&w->inflight, 1) == 1)
		worker_wake(w);
}

void worker_blocking(struct worker *w, struct rconn *rc, int on)
{
	pthread_mutex_lock(&w->wake_mu);
	if (on && w->nblocking < w->blocking_max) {
		w->blocking[w->nblocking++] = rc;
	} else if (!on) {
		for (int i = 0; i < w->nblocking; i++) {
			if (w->blocking[i] == rc) {
				w->blocking[i] = w->blocking[--w->nblocking];
				break;
			}
		}
	}
	pthread_mutex_unlock(&w->wake_mu);
}

void worker_unblock(struct worker *w, struct rconn *via)
{
	/* every registered connection: blocking_max is concurrency + 1 */
	long long *ids = util_xcalloc((size_t)w->blocking_max + 1, sizeof(*ids));
	int n = 0;

	pthread_mutex_lock(&w->wake_mu);
	for (int i = 0; i < w->nblocking; i++) {
		long long id = w->blocking[i]->client_id;
		if (id > 0)
			ids[n++] = id;
	}
	pthread_mutex_unlock(&w->wake_mu);
	for (int i = 0; i < n; i++) {
		redisReply *rep = rconn_cmd(via, "CLIENT UNBLOCK %lld", ids[i]);
		if (!rep)
			break; /* Redis is gone: the BLMOVEs end with their connections */
		freeReplyObject(rep);
	}
	free(ids);
}

/* i20-accounts */
int worker_task_account(struct worker *w, struct queue *q, struct task_record *t)
{
	char key[300];
	const char *argv[3] = {"HGET", key, "account"};
	redisReply *rep;
	int i;

	t->account[0] = '\0';
	if (w->accounts.n < 2 || !t->job_id[0])
		return 0;
	snprintf(key, sizeof(key), "%s:job:%s", q->prefix, t->job_id);
	rep = rconn_argv(q->r, 3, argv, NULL);
	if (rep && rep->type == REDIS_REPLY_STRING)
		util_strlcpy(t->account, rep->str, sizeof(t->account));
	if (rep)
		freeReplyObject(rep);
	i = accounts_find(&w->accounts, t->account);
	if (i < 0) { /* an account the settings no longer have: the default's client */
		t->account[0] = '\0';
		i = 0;
	}
	return i;
}
