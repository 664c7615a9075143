/* worker_io.c — the per-thread resources of runners and pollers (worker.h). */
#include <string.h>

#include "log.h"
#include "worker.h"

int worker_io_open(struct worker *w, struct worker_io *io, const char *who,
		   const char *queue_id)
{
	const struct config *cfg = w->cfg;
	char err[512];

	memset(io, 0, sizeof(*io));
	rconn_init(&io->rc, &w->redis, 10000, &w->hard_stop, who);
	queue_init(&io->q, &io->rc, cfg->redis_prefix, queue_id, cfg->record_ttl_s,
		   cfg->results_max);
	io->q.dead_max = cfg->dead_max;
	io->q.poll_initial_ms = w->policy.poll_initial_ms;
	io->kie = kie_client_from_config(cfg);
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
	metadata_store_free(io->ms);
	kie_client_free(io->kie);
	rconn_close(&io->rc);
}

void worker_limiter(struct worker *w, struct worker_io *io, struct limiter *l, int create,
		    const char *member)
{
	const struct config *cfg = w->cfg;
	if (create)
		limiter_init(l, &io->rc, cfg->account_prefix, w->account_id, "create",
			     cfg->create_limit, cfg->create_window_ms, cfg->limit_margin_ms,
			     cfg->rate_backoff_ms, cfg->rate_backoff_max_ms, member);
	else
		limiter_init(l, &io->rc, cfg->account_prefix, w->account_id, "query",
			     /* a 1 s window would lose a quarter to the default margin */
			     cfg->poll_rate, 1000,
			     cfg->limit_margin_ms < 100 ? cfg->limit_margin_ms : 100, cfg->rate_backoff_ms,
			     cfg->rate_backoff_max_ms, member);
}
