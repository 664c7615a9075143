/* runner.c — a job runner thread: claim a descriptor, create its KIE task once, record
 * it, hand it to the pollers. Every exit path leaves the job somewhere in Redis. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/crypto.h"
#include "core/json_strict.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"
#include "kie/job.h"
#include "kie/kie_client.h"
#include "kie/lifecycle.h"
#include "pool/budget.h"
#include "pool/finalize.h"
#include "pool/queue.h"
#include "pool/sched.h"
#include "store/metadata.h"
#include "worker.h"

/* how long a runner trusts a "not paused" it read (docs/protocol.md, Pauses) */
#define RUNNER_PAUSE_CHECK_MS 250

/* i20-accounts: what a runner keeps of each account it serves */
struct runner_acct {
	struct limiter create;   /* the account's createTask limit, shared pool-wide */
	int idle;                /* its last pick found nothing: wait for a wake first */
	int64_t next_due_ms;     /* then: its earliest delayed job's due time (0: none) */
	long parked_groups;      /* then: its groups with jobs parked at their cap */
	int64_t pause_check;     /* monotonic ms: its pause is read again then */
	int paused;              /* its pause was set at the last read */
};

struct runner {
	struct worker *w;
	int cslot;               /* consumer slot: <workerId>#<cslot>, w->slots[cslot]; -1: router */
	struct worker_io io;
	struct limiter *create;  /* the current account's createTask limit (accts[acct]) */
	struct runner_acct *accts; /* i20-accounts: one per account (w->accounts' order) */
	int nacct, acct;         /* how many; the one being served */
	int64_t next_refusal_log;
	long refusals_quiet;
	int saw_pause;           /* a step found the pool paused: read the pause next turn */
	int slot;                /* the createTask slot before a pick: SLOT_* */
	unsigned long picks;     /* pick.lua's token: start time (ms) x 1000 + this runner's picks */
};

/* The pick and the start, one step (pick.lua), with the budget reservation's inputs and,
 * with several accounts, the alias the job hash keeps (it names the job's structure then;
 * with one account the structure is "default" whatever the alias, so none is kept) */
static int pick(struct runner *r, struct sched_pick *pk)
{
	const struct config *cfg = r->w->cfg;
	struct sched_budget_in bin = {r->nacct > 1 ? r->w->accounts.v[r->acct].alias : "",
				      cfg->daily_credit_budget};
	return sched_pick(&r->io.q, cfg->sched_reserve, cfg->heartbeat_ttl_ms, ++r->picks, &bin,
			  pk);
}

/* A runner takes its createTask slot before it picks (sched.h): reserved and confirmed
 * (SLOT_GRANTED), or reserved and due within RUNNER_PICK_LEAD_MS (SLOT_PENDING: the pick
 * and the start run meanwhile, so createTask leaves close to the time the limiter logged;
 * limiter_acquire() confirms it right before the call). */
enum { SLOT_NONE = 0, SLOT_PENDING, SLOT_GRANTED };
#define RUNNER_PARKED_LOOK_MS 200 /* an idle runner's look when jobs wait at a cap */
#define RUNNER_PICK_LEAD_MS 250 /* at most; half a slot's spacing when that is less */
/* the router's batch: its BLMOVE's descriptor and up to this many - 1 more, one route.lua
 * call (a backlog is the common case in front of a 2-a-second API) */
#define ROUTER_BATCH 16

/* Gives back a slot taken and not used for a createTask. */
static void slot_release(struct runner *r)
{
	if (r->slot == SLOT_PENDING)
		limiter_cancel(r->create);
	else if (r->slot == SLOT_GRANTED)
		limiter_unuse(r->create);
	r->slot = SLOT_NONE;
}

static uint32_t rnd32(void)
{
	char hex[9];
	if (crypto_random_hex(4, hex, sizeof(hex)) != 0)
		return (uint32_t)util_monotonic_ms();
	return (uint32_t)strtoul(hex, NULL, 16);
}

/* What a bad descriptor still tells about itself: a valid id and a replyTo, and its
 * type (one of the job types: the metrics count it under that type), when it parses far
 * enough to have them. Fills *id and *reply_to with new copies (caller frees; NULL when
 * absent) and *type (NULL when absent or not a job type). */
static void bad_descriptor_names(const char *raw, size_t len, const char *prefix, char **id,
				 char **reply_to, const char **type)
{
	cJSON *root = NULL;
	const cJSON *jid, *reply, *ty;
	char why[300];
	size_t n = strlen(prefix);
	enum job_type t;

	*id = NULL;
	*reply_to = NULL;
	*type = NULL;
	/* only from strict JSON: of two "id" keys, which one is the job's? */
	if (json_strict_check(raw, len, NULL, why, sizeof(why)) != 0)
		return;
	root = cJSON_ParseWithLength(raw, len);
	jid = cJSON_GetObjectItemCaseSensitive(root, "id");
	reply = cJSON_GetObjectItemCaseSensitive(root, "replyTo");
	ty = cJSON_GetObjectItemCaseSensitive(root, "type");
	if (cJSON_IsString(ty) && job_type_parse(ty->valuestring, &t) == 0)
		*type = job_type_str(t); /* static: outlives root */
	if (cJSON_IsString(jid) && job_id_valid(jid->valuestring)) {
		*id = util_strdup(jid->valuestring);
		/* never one of the worker's own keys (the event would corrupt them) */
		if (cJSON_IsString(reply) && reply->valuestring[0] &&
		    strlen(reply->valuestring) <= JOB_REPLY_TO_MAX &&
		    !(strncmp(reply->valuestring, prefix, n) == 0 && reply->valuestring[n] == ':' &&
		      strncmp(reply->valuestring + n + 1, "replies:", 8) != 0))
			*reply_to = util_strdup(reply->valuestring);
	}
	cJSON_Delete(root);
}

/* The dead letter and the job.dead event go in one step: a Redis reply lost between
 * them cannot leave one without the other. A bad descriptor that still names a valid
 * id gets the event and its id in the dead entry too. may_have_task (the claim's
 * mayHaveTask): the job once had a createTask of unknown outcome that no task resolved,
 * and its entry says so ("mayHaveTask": true: retried only with --allow-uncertain). */
static void to_dead(struct runner *r, const char *raw, size_t len, const struct job *j,
		    long epoch, const char *reason, const char *source, long attempts,
		    int may_have_task)
{
	char *ev = NULL, *bad_id = NULL, *bad_reply = NULL;
	const char *id, *reply_to, *type;
	int skipped = 0;

	if (j) {
		id = j->id;
		reply_to = j->reply_to;
		type = job_type_str(j->type);
		ev = finalize_event_json("dead", j->id, NULL, type, NULL, reason, attempts,
					 j->meta_raw);
	} else {
		bad_descriptor_names(raw, len, r->w->cfg->redis_prefix, &bad_id, &bad_reply, &type);
		id = bad_id;
		reply_to = bad_reply;
		if (bad_id)
			ev = finalize_event_json("dead", bad_id, NULL, type, NULL, reason, 0, NULL);
	}
	log_warn(id, NULL, "job to the dead letters (%s): %s", source, reason);
	if (queue_dead(&r->io.q, raw, len, id, epoch, reason, source, attempts, may_have_task, ev,
		       reply_to, &skipped) != 0)
		log_error(id, NULL, "could not dead-letter the job (%s); it stays claimed and is "
			  "handled again", r->io.q.err);
	else
		metrics_dead_letter(source, type);
	if (skipped)
		log_warn(id, NULL, "replyTo key %s holds another type than a list: the job.dead "
			 "event was not pushed there (it is in the results list)", reply_to);
	free(ev);
	free(bad_id);
	free(bad_reply);
}

/* Writes the generated id into the claimed descriptor (every other byte kept) so a
 * recovery keeps it. Returns the new descriptor (caller frees) or NULL on failure. */
static char *assign_id(struct runner *r, const char *raw, size_t len, const char *id,
		       size_t *new_len)
{
	char *s = job_splice_id(raw, len, id, new_len);
	if (!s)
		return NULL;
	if (queue_replace_claimed(&r->io.q, raw, len, s, *new_len) != 0) {
		free(s);
		return NULL;
	}
	return s;
}

/* Writes the pending record unless a record is stored already (a finalization that got
 * there first, or an earlier write): create-if-absent, so it never replaces a final one. */
static void save_pending(struct runner *r, const struct job *j, const char *task_id,
			 const cJSON *rec)
{
	char err[600];
	if (metadata_store_put_new(r->io.ms, task_id, rec, err, sizeof(err)) < 0)
		log_warn(j->id, task_id, "pending metadata not saved (%s); finalization writes "
			 "the whole record from the one kept in Redis", err);
}

/* The task exists: record it on the job (owner or not: a paid task id is never dropped)
 * and hand it to the pollers in one step, then save its pending metadata record. Redis
 * first: from the moment createTask answers, the one thing a kill can lose is this step,
 * and the record kept in the task hash lets finalization write the whole record if the
 * store write never happens; the store write is create-if-absent, so a finalization that
 * lands first (a callback, a fast poll) is never overwritten. Also the resume path for a
 * job whose task was recorded before its worker died (already_recorded). */
static void handoff(struct runner *r, const char *raw, size_t len, const struct job *j,
		    const char *prompt, const struct kie_task_request *req, const char *task_id,
		    long attempts, int already_recorded)
{
	struct task_metadata m;
	cJSON *rec;
	char *rec_json;
	enum record_outcome ro = RECORD_SAME;

	worker_task_metadata(r->w, j, prompt, req, task_id, &m);
	rec = metadata_pending(&m, util_now_ms());
	rec_json = cJSON_PrintUnformatted(rec);
	/* a task recorded now is handed to the pollers in the same step */
	if (!already_recorded &&
	    queue_record_task_handoff(&r->io.q, raw, len, j->id, task_id, job_type_str(j->type),
				      j->reply_to, rec_json, j->meta_raw, attempts, &ro) != 0) {
		/* only after the grace period, with Redis still down */
		log_error(j->id, task_id, "TASK CREATED BUT NOT RECORDED (Redis unreachable at "
			  "shutdown): its callback carries jobId=%s and adopts it; else recover it "
			  "by hand", j->id);
		goto out;
	}
	/* this process's pollers wake when it is due (a callback may make it due sooner) */
	if (!already_recorded)
		worker_poll_kick(r->w, util_now_ms() + r->w->policy.poll_initial_ms);
	save_pending(r, j, task_id, rec);
	if (ro == RECORD_DUPLICATE) {
		log_warn(j->id, task_id, "the job already has another task: this one is recorded as "
			 "its duplicate and collected");
		goto out; /* its copy was released in the same step */
	}
	if (ro == RECORD_DEAD) {
		log_warn(j->id, task_id, "the job was dead-lettered meanwhile: its task is recorded "
			 "and collected without an event");
		goto out;
	}
	if (already_recorded && queue_handoff_to_polling(&r->io.q, raw, len, j->id, task_id) != 0) {
		log_error(j->id, task_id, "could not hand the task to the pollers (Redis down at "
			  "shutdown); the job stays claimed and recovery resumes it");
		goto out;
	}
	if (already_recorded)
		worker_poll_kick(r->w, util_now_ms() + r->w->policy.poll_initial_ms);
	log_info(j->id, task_id, "%s task (%s, attempt %ld); polling",
		 already_recorded ? "resumed" : "created", job_type_str(j->type), attempts);
out:
	free(rec_json);
	cJSON_Delete(rec);
}

/* KIE refused the createTask as a whole (429, 455): the pool backs off and the job takes
 * back its attempt. One log line per refusal storm, not one per runner. */
static void refused(struct runner *r, const struct job *j, long epoch,
		    const struct kie_error *kerr)
{
	int first = 0;
	long ms = limiter_penalize(r->create, kerr->message, &first);
	int64_t now = util_monotonic_ms();

	queue_job_not_created(&r->io.q, j->id, epoch);
	if (first || now >= r->next_refusal_log) {
		log_warn(j->id, NULL, "KIE refused createTask (%s): the pool waits %ld ms; the job "
			 "keeps its attempts%s", kerr->message, ms,
			 r->refusals_quiet ? " (more refusals not logged)" : "");
		r->next_refusal_log = now + 10000;
		r->refusals_quiet = 0;
	} else {
		r->refusals_quiet++;
	}
}

/* The supervisor renews the lease of the job this runner owns (job_id NULL: none). */
static void publish_slot(struct runner *r, const char *job_id, long epoch)
{
	struct runner_slot *sl;
	if (r->cslot < 0)
		return; /* the router owns a job only for the step right after its route */
	sl = &r->w->slots[r->cslot];
	pthread_mutex_lock(&sl->mu);
	util_strlcpy(sl->job_id, job_id ? job_id : "", sizeof(sl->job_id));
	sl->epoch = epoch;
	pthread_mutex_unlock(&sl->mu);
}

/* A second descriptor for a job id that is in flight, waiting or finished: it creates
 * nothing, and its copy goes to the dead letters as a duplicate (no event, no state). */
static void duplicate(struct runner *r, const char *raw, size_t len, const struct job *j,
		      const struct job_claim *c, int leftover)
{
	char why[700];
	/* not a second descriptor but this job's own, back from a dead worker (or a lost
	 * reply, or a pick whose job was cancelled or taken meanwhile) after it finished or
	 * was queued again: nothing to do */
	if ((c->outcome == CLAIM_FINISHED || c->outcome == CLAIM_QUEUED_ALREADY) &&
	    (leftover || c->recoveries > 0)) {
		log_info(j->id, c->task_id[0] ? c->task_id : NULL, "descriptor of a job that is "
			 "%s meanwhile: released", c->state[0] ? c->state : "handled");
		queue_release_copy(&r->io.q, raw, len);
		return;
	}
	switch (c->outcome) {
	case CLAIM_FINISHED:
		snprintf(why, sizeof(why), "duplicate: job %s already finished as %s (task %s); "
			 "not run again so it is not paid twice", j->id, c->state,
			 c->task_id[0] ? c->task_id : "none");
		break;
	case CLAIM_OWNED:
		snprintf(why, sizeof(why), "duplicate: job %s is being run by %s; this copy "
			 "creates nothing", j->id, c->owner);
		break;
	case CLAIM_QUEUED_ALREADY:
		snprintf(why, sizeof(why), "duplicate: job %s is queued already; this copy "
			 "creates nothing", j->id);
		break;
	default:
		snprintf(why, sizeof(why), "duplicate: job %s is waiting for the task of a "
			 "createTask whose outcome is unknown to be adopted; this copy creates "
			 "nothing", j->id);
		break;
	}
	log_warn(j->id, NULL, "%s", why);
	if (queue_dead(&r->io.q, raw, len, NULL, 0, why, "duplicate", c->attempts, 0, NULL, NULL,
		       NULL) == 0)
		metrics_dead_letter("duplicate", job_type_str(j->type));
}

static void uncertain(struct runner *r, const char *raw, size_t len, const struct job *j,
		      long epoch, const char *why)
{
	log_warn(j->id, NULL, "%s; the job waits up to %ld ms for its task to be adopted (a "
		 "callback with jobId=%s, or the late recording of its task)", why,
		 r->w->cfg->uncertain_window_ms, j->id);
	if (queue_job_uncertain(&r->io.q, raw, len, j->id, epoch, r->w->cfg->uncertain_window_ms,
				why) != 0)
		log_error(j->id, NULL, "could not mark the job uncertain (%s); it stays claimed",
			  r->io.q.err);
	else
		metrics_job(job_type_str(j->type), METRICS_JOB_UNCERTAIN);
}

/* Routing (the router's descriptors from <p>:queue, and a runner's leftovers): each
 * descriptor is parsed and checked (route_prepare), then route.lua queues it in the
 * scheduling structure or applies the ownership table (docs/protocol.md, section 3), a
 * batch in one call (route_batch), and each outcome is acted on (route_finish). */
struct route_ctx {
	struct job *j;
	char *prompt, *owned;   /* the prompt (NULL: cannot be built, see err); the descriptor
				 * with its generated id, when it has one */
	const char *raw;
	size_t len;
	struct sched_route_in in;
	int acct;               /* its account (index into the pool's accounts) */
	int unknown_account;    /* it names none of them: dead-lettered, source account */
	char err[600];
};

static void route_ctx_free(struct route_ctx *x)
{
	free(x->prompt);
	free(x->owned);
	job_free(x->j);
	memset(x, 0, sizeof(*x));
}

/* Returns 0 when x is ready for route.lua, 1 when the descriptor was handled here (too
 * large, unparseable, or Redis lost while its generated id was written). */
static int route_prepare(struct runner *r, const struct rconn_bulk *b, const char *raw,
			 size_t len, struct route_ctx *x)
{
	const struct config *cfg = r->w->cfg;

	memset(x, 0, sizeof(*x));
	if (b && !b->kept) { /* never read whole: its size, hash and head go to the dead letters */
		snprintf(x->err, sizeof(x->err), "descriptor is %zu bytes; the limit is %ld "
			 "(KIE_JOB_MAX_BYTES); its size, SHA-256 and first %zu bytes are kept",
			 b->len, cfg->job_max_bytes, b->head_len);
		log_warn(NULL, NULL, "job to the dead letters (parse): %s (sha256 %s)", x->err,
			 b->sha256);
		if (queue_dead_oversized(&r->io.q, b, x->err) != 0)
			log_error(NULL, NULL, "could not dead-letter the oversized descriptor (%s); "
				  "it stays claimed and is handled again", r->io.q.err);
		else
			metrics_dead_letter("parse", NULL);
		return 1;
	}
	x->j = job_parse(raw, len, &r->w->parse_opts, x->err, sizeof(x->err));
	if (!x->j) {
		to_dead(r, raw, len, NULL, 0, x->err, "parse", 0, 0);
		return 1;
	}
	if (x->j->id_generated) {
		size_t nlen;
		x->owned = assign_id(r, raw, len, x->j->id, &nlen);
		if (!x->owned) {
			route_ctx_free(x);
			return 1; /* Redis lost: the original stays claimed for recovery */
		}
		raw = x->owned;
		len = nlen;
	}
	x->raw = raw;
	x->len = len;
	x->prompt = job_build_prompt(x->j, r->w->prompts, x->err, sizeof(x->err));
	/* i20-wire: a descriptor naming an account the pool does not have is claimed here
	 * and dead-lettered by route_finish with that reason (no KIE call) */
	x->acct = accounts_find(&r->w->accounts, x->j->account);
	if (x->acct < 0) {
		snprintf(x->err, sizeof(x->err), "unknown account \"%s\": the pool has no account "
			 "of that alias (KIE_ACCOUNTS_FILE)", x->j->account);
		free(x->prompt);
		x->prompt = NULL;
		x->unknown_account = 1;
		x->acct = 0;
	}
	x->in.job_id = x->j->id;
	x->in.type = job_type_str(x->j->type);
	x->in.reply_to = x->j->reply_to;
	x->in.meta = x->j->meta_raw;
	x->in.has_callback = x->j->callback_final != NULL;
	x->in.priority = x->j->priority;
	x->in.group = x->j->group;
	x->in.not_before_ms = x->j->not_before_ms;
	x->in.own = x->prompt == NULL; /* claimed, to be dead-lettered below */
	x->in.lease_ms = cfg->heartbeat_ttl_ms;
	x->in.max_recoveries = cfg->max_recoveries;
	x->in.model = x->j->model_used; /* i20-wire: for the budget reservation of the pick */
	x->in.model_credits = config_model_credits(cfg, x->j->model_used);
	return 0;
}

/* i20-accounts: the scheduling structure route.lua writes is that of account a (several
 * accounts: <p>:sched:<alias>; one: the default structure) */
static void route_acct(struct runner *r, int a)
{
	if (r->w->accounts.n > 1)
		util_strlcpy(r->io.q.sched_acct, r->w->accounts.v[a].alias,
			     sizeof(r->io.q.sched_acct));
}

static void route_finish(struct runner *r, struct route_ctx *x, const struct job_claim *cp,
			 int leftover)
{
	const struct config *cfg = r->w->cfg;
	struct job_claim c = *cp;
	struct kie_task_request req;
	struct job *j = x->j;
	const char *raw = x->raw;
	size_t len = x->len;
	char *err = x->err;
	size_t errlen = sizeof(x->err);

	switch (c.outcome) {
	case CLAIM_NOT_HELD:
		break;
	case CLAIM_QUEUED:
	case CLAIM_DELAYED:
		log_debug(j->id, NULL, "%s (priority %ld, group %s)", queue_claim_outcome_str(c.outcome),
			  j->priority, j->group ? j->group : "default");
		break;
	case CLAIM_CANCELLED:
		log_info(j->id, NULL, "cancelled before it arrived: it ends cancelled, no task");
		metrics_cancelled();
		break;
	case CLAIM_FINISHED:
	case CLAIM_OWNED:
	case CLAIM_UNCERTAIN:
	case CLAIM_QUEUED_ALREADY:
		duplicate(r, raw, len, j, &c, leftover);
		break;
	case CLAIM_HAS_TASK: /* recorded before its worker died: never create again */
		if (x->prompt) {
			job_to_request(j, x->prompt, &req);
			req.callback_url = j->callback_final;
			handoff(r, raw, len, j, x->prompt, &req, c.task_id, c.attempts, 1);
		} else {
			queue_handoff_to_polling(&r->io.q, raw, len, j->id, c.task_id);
		}
		break;
	case CLAIM_TAKEOVER:
		/* a createTask may have gone out: uncertain first, whatever limit fires (the
		 * route script answers takeover before too_many_recoveries) */
		uncertain(r, raw, len, j, c.epoch, "the job's last worker stopped during createTask "
			  "(it died, or lost Redis): a task may exist");
		break;
	case CLAIM_TOO_MANY_RECOVERIES:
		snprintf(err, errlen, "recovered from %ld dead workers (limit %ld, "
			 "KIE_MAX_RECOVERIES): this job may be what kills them", c.recoveries,
			 cfg->max_recoveries);
		to_dead(r, raw, len, j, c.epoch, err, "recovery", c.attempts, c.may_have_task);
		break;
	case CLAIM_OK: /* claimed because its prompt cannot be built, or its account */
		to_dead(r, raw, len, j, c.epoch, err, x->unknown_account ? "account" : "prompt",
			c.attempts, c.may_have_task);
		break;
	default:
		break;
	}
}

/* Returns -1 when the route step failed (the descriptor stays listed), else 0. */
static int route(struct runner *r, const struct rconn_bulk *b, int leftover)
{
	struct route_ctx x;
	struct job_claim c;
	int rc = 0;

	if (route_prepare(r, b, b->data, b->len, &x) != 0)
		return 0;
	route_acct(r, x.acct);
	if (sched_route(&r->io.q, x.raw, x.len, &x.in, &c) == 0)
		route_finish(r, &x, &c, leftover);
	else
		rc = -1;
	route_ctx_free(&x);
	return rc;
}

/* The router's batch: its BLMOVE's descriptor b (or none) and the descriptors of batch[]
 * (the last route's moves), routed in one route.lua call, which moves the next batch
 * from <p>:queue: returned (caller frees with freeReplyObject; NULL: none). A descriptor
 * handled in route_prepare is left out. On a failed step the descriptors not routed stay
 * in the router's list: leftovers, routed one by one. */
static redisReply *route_batch(struct runner *r, const struct rconn_bulk *b,
			       const redisReply *batch)
{
	struct route_ctx x[ROUTER_BATCH];
	const char *raws[ROUTER_BATCH];
	size_t lens[ROUTER_BATCH];
	struct sched_route_in in[ROUTER_BATCH];
	struct job_claim c[ROUTER_BATCH];
	redisReply *next = NULL;
	int n = 0, nb = batch ? (int)batch->elements : 0;

	if (b && route_prepare(r, b, b->data, b->len, &x[n]) == 0)
		n++;
	for (int i = 0; i < nb && n < ROUTER_BATCH; i++) {
		const redisReply *e = batch->element[i];
		if (route_prepare(r, NULL, e->str, e->len, &x[n]) == 0)
			n++;
	}
	for (int i = 0; i < n; i++) {
		raws[i] = x[i].raw;
		lens[i] = x[i].len;
		in[i] = x[i].in;
	}
	/* i20-accounts: one call per run of descriptors of one account (its structure's
	 * keys); the last call moves the next batch */
	for (int s = 0, e; s < n; s = e) {
		for (e = s + 1; e < n && x[e].acct == x[s].acct; e++)
			;
		route_acct(r, x[s].acct);
		if (sched_route_batch(&r->io.q, e - s, &raws[s], &lens[s], &in[s], &c[s],
				      e == n ? ROUTER_BATCH - 1 : 0, r->w->max_keep,
				      e == n ? &next : NULL) != 0)
			break; /* the rest stay in the router's list: leftovers */
		for (int i = s; i < e; i++)
			route_finish(r, &x[i], &c[i], 0);
	}
	for (int i = 0; i < n; i++)
		route_ctx_free(&x[i]);
	return next;
}

/* A picked job (pick.lua put its descriptor into this runner's list and started it in the
 * same step: pk->claim), with this runner's createTask slot already taken: create its
 * task, record it. */
static void run_picked(struct runner *r, const struct sched_pick *pk)
{
	const struct config *cfg = r->w->cfg;
	struct job *j = NULL;
	const struct job_claim c = pk->claim;
	struct kie_task_request req;
	struct kie_error kerr;
	struct job_decision d;
	char err[600], *prompt = NULL, *task_id = NULL;
	const char *raw = pk->raw;
	size_t len = pk->raw_len;
	long attempt = 0, max_attempts;
	int fenced = 0, paused = 0, again = 0;
	int give_back = 0; /* i20-wire: no task was made: the budget reservation goes back */
	double claimed_s = metrics_now_s(); /* kie_claim_to_task_seconds */

	j = job_parse(raw, len, &r->w->parse_opts, err, sizeof(err));
	if (j)
		prompt = job_build_prompt(j, r->w->prompts, err, sizeof(err));
	if (prompt) {
		job_to_request(j, prompt, &req);
		req.callback_url = j->callback_final;
	}
	/* the job hash keeps the descriptor (raw) from routing on: an adoption rebuilds the
	 * pending record from it (issue 18: the job hash holds no pending record) */
	/* the job was started, and its estimate reserved against today's budgets, by the
	 * pick (pk->claim) */
	if (!j) { /* cannot happen unless the settings changed since it was routed */
		if (c.outcome == CLAIM_STARTED || c.outcome == CLAIM_TAKEOVER)
			to_dead(r, raw, len, NULL, 0, err, "parse", 0, 0);
		else
			queue_release_copy(&r->io.q, raw, len);
		goto out;
	}
	switch (c.outcome) {
	case CLAIM_STARTED:
		break;
	case CLAIM_PAUSED:
		sched_put(&r->io.q, raw, len, pk, 0, SCHED_PUT_FRONT, 0, NULL);
		r->saw_pause = 1;
		r->accts[r->acct].pause_check = 0; /* i20-accounts */
		goto out;
	case CLAIM_OVER_BUDGET: { /* i20-wire: it waits, not dead, no attempt spent */
		struct sched_pick park = *pk;
		park.budget_est = c.budget_est;
		log_info(j->id, NULL, "over budget (%s): the job waits until the budget has room "
			 "or the UTC day turns", c.budget_why);
		sched_put(&r->io.q, raw, len, &park, 0, SCHED_PUT_OVER_BUDGET, 0, c.budget_why);
		goto out;
	}
	case CLAIM_FINISHED:
	case CLAIM_OWNED:
	case CLAIM_UNCERTAIN:
		/* cancelled, or run by another copy, since it was queued: nothing to do */
		log_info(j->id, NULL, "picked, but the job is %s%s%s meanwhile: released",
			 c.state[0] ? c.state : "taken", c.owner[0] ? " by " : "", c.owner);
		queue_release_copy(&r->io.q, raw, len);
		goto out;
	case CLAIM_HAS_TASK:
		if (prompt)
			handoff(r, raw, len, j, prompt, &req, c.task_id, c.attempts, 1);
		else
			queue_handoff_to_polling(&r->io.q, raw, len, j->id, c.task_id);
		goto out;
	case CLAIM_TAKEOVER:
		uncertain(r, raw, len, j, c.epoch, "the job's last worker stopped during createTask "
			  "(it died, or lost Redis): a task may exist");
		goto out;
	default:
		goto out;
	}
	publish_slot(r, j->id, c.epoch);
	if (pk->queued_at_ms > 0)
		metrics_wait(pk->priority, (double)(util_now_ms() - pk->queued_at_ms) / 1000.0);
	if (!prompt) {
		to_dead(r, raw, len, j, c.epoch, err, "prompt", c.attempts, c.may_have_task);
		give_back = 1;
		goto out;
	}
	attempt = c.attempts;
	max_attempts = j->max_attempts ? j->max_attempts : cfg->job_max_attempts;
	for (;;) {
		int rc;
		if (r->slot == SLOT_PENDING) {
			/* the slot reserved before the pick: sleep the rest, confirm it */
			if (limiter_acquire(r->create, &r->w->stopping, NULL) != 0) {
				r->slot = SLOT_NONE; /* dropped by limiter_acquire */
				sched_put(&r->io.q, raw, len, pk, c.epoch, SCHED_PUT_UNATTEMPT, 0, NULL);
				give_back = 1;
				goto out;
			}
			r->slot = SLOT_GRANTED;
		}
		if (again) {
			/* after a 429/455: a slot again, the job still this runner's */
			if (limiter_acquire(r->create, &r->w->stopping, NULL) != 0) {
				sched_put(&r->io.q, raw, len, pk, c.epoch, SCHED_PUT_FRONT, 0, NULL);
				give_back = 1;
				goto out;
			}
			if (queue_job_creating(&r->io.q, j->id, c.epoch, raw, len, &attempt,
					       &fenced, &paused) != 0)
				goto out;
			if (paused) {
				log_info(j->id, NULL, "the pool was paused before createTask: the job "
					 "goes back to the queue");
				limiter_unuse(r->create);
				sched_put(&r->io.q, raw, len, pk, c.epoch, SCHED_PUT_FRONT, 0, NULL);
				r->saw_pause = 1;
				give_back = 1;
				goto out;
			}
			if (fenced) {
				log_warn(j->id, NULL, "the job was taken over by another worker (this "
					 "one lost its lease); this copy is released and creates nothing");
				limiter_unuse(r->create);
				queue_release_copy(&r->io.q, raw, len);
				goto out;
			}
		}
		r->slot = SLOT_NONE; /* spent on this createTask */
		again = 1;
		free(task_id);
		task_id = NULL;
		rc = kie_client_create_task(r->io.kies[r->acct], &req, &task_id, &kerr);
		lifecycle_after_create(rc == 0 ? NULL : &kerr, attempt, max_attempts, &r->w->policy,
				       rnd32(), &d);
		if (d.action != JOB_ACT_BACKOFF)
			break;
		refused(r, j, c.epoch, &kerr);
	}
	switch (d.action) {
	case JOB_ACT_HANDOFF:
		metrics_claim_to_task(metrics_now_s() - claimed_s);
		handoff(r, raw, len, j, prompt, &req, task_id, attempt, 0);
		break;
	case JOB_ACT_RETRY:
		log_warn(j->id, NULL, "%s", d.reason);
		if (sched_put(&r->io.q, raw, len, pk, c.epoch, SCHED_PUT_RETRY,
			      util_now_ms() + d.delay_ms, d.reason) == 0)
			metrics_job(job_type_str(j->type), METRICS_JOB_RETRIED);
		give_back = 1;
		break;
	case JOB_ACT_PAUSE: {
		/* 402: until credits are back (the supervisor asks KIE); 401/433: for a while */
		int credits = kerr.code == 402 || kerr.http_status == 402;
		log_error(j->id, NULL, "%s%s", d.reason,
			  credits ? " (until a credit probe sees credits, or kie resume)" : "");
		/* i20-accounts: with several accounts, this account's pause only */
		queue_acct_pause_set(&r->io.q, r->nacct > 1 ? r->io.q.sched_acct : NULL,
				     credits ? "credits" : "account", credits ? 0 : d.pause_ms,
				     kerr.message, NULL);
		if (r->nacct > 1)
			r->accts[r->acct].pause_check = 0;
		sched_put(&r->io.q, raw, len, pk, c.epoch, SCHED_PUT_UNATTEMPT, 0, NULL);
		give_back = 1;
		break;
	}
	case JOB_ACT_UNCERTAIN:
		uncertain(r, raw, len, j, c.epoch, d.reason);
		break;
	case JOB_ACT_DEAD:
		to_dead(r, raw, len, j, c.epoch, d.reason, "kie", attempt, c.may_have_task);
		give_back = !c.may_have_task;
		break;
	case JOB_ACT_BACKOFF:
		break; /* not reached: the loop above waits those out */
	}
out:
	if (give_back) { /* i20-wire */
		double back = 0;
		if (budget_release(&r->io.q, j->id, util_now_ms(), &back) != 0)
			log_warn(j->id, NULL, "the budget reservation was not given back (%s); the "
				 "recovery sweep releases it", r->io.q.err);
	}
	slot_release(r); /* a slot not used for a createTask goes back */
	publish_slot(r, NULL, 0);
	free(task_id);
	free(prompt);
	job_free(j);
}

/* Before redoing a leftover (queue_claim()), waits *delay_ms, which doubles from 500 ms
 * to 30 s while leftovers keep coming: a release failing on every try (e.g. Redis
 * refusing writes) must not spin. A fresh claim resets it. Returns -1 when stopping. */
static int leftover_wait(struct runner *r, const char *cid, int leftover, long *delay_ms)
{
	if (!leftover) {
		*delay_ms = 0;
		return 0;
	}
	log_warn(NULL, NULL, "consumer %s: a claimed descriptor was left in its processing "
		 "list (a Redis reply lost with the connection, or a release that failed); "
		 "handling it again%s", cid, *delay_ms ? " after a pause" : "");
	for (long t = 0; t < *delay_ms && !r->w->stopping; t += 100)
		worker_nap(r->w, 100);
	*delay_ms = *delay_ms ? *delay_ms * 2 : 500;
	if (*delay_ms > 30000)
		*delay_ms = 30000;
	return r->w->stopping ? -1 : 0;
}

/* i20-accounts: serves account a next (its structure, its limiter). */
static void use_account(struct runner *r, int a)
{
	r->acct = a;
	r->create = &r->accts[a].create;
	if (r->nacct > 1)
		util_strlcpy(r->io.q.sched_acct, r->w->accounts.v[a].alias,
			     sizeof(r->io.q.sched_acct));
}

/* i20-accounts: whether account a is paused (several accounts: <p>:pause:acct:<alias>,
 * read at most every RUNNER_PAUSE_CHECK_MS; the pick reads it again). */
static int account_paused(struct runner *r, int a)
{
	struct runner_acct *ra = &r->accts[a];
	long ms = 0;
	if (r->nacct < 2)
		return 0; /* one account: the pool-wide pause is its pause */
	if (util_monotonic_ms() < ra->pause_check)
		return ra->paused;
	if (queue_acct_pause_get(&r->io.q, r->w->accounts.v[a].alias, &ms, NULL, 0, NULL, 0) != 0)
		return ra->paused;
	ra->paused = ms != 0;
	ra->pause_check = util_monotonic_ms() + RUNNER_PAUSE_CHECK_MS;
	return ra->paused;
}

/* i20-accounts: the per-account choice. Returns the account whose structure the runner
 * picks from next: one not paused and not idle, round robin after the last one served;
 * when every one is idle, waits (up to a second, less when a delayed job falls due or
 * groups wait at their cap) for a wake token on any of theirs, then looks at their
 * structures. -1: nothing to do yet (the caller looks again). With one account this is
 * exactly the single structure's wait. */
static int choose_account(struct runner *r)
{
	const char *aliases[ACCOUNTS_MAX];
	int idx[ACCOUNTS_MAX], n = 0, which = -1, woken = 0, found = -1;
	long wait = 1000;

	for (int k = 1; k <= r->nacct; k++) {
		int a = (r->acct + k) % r->nacct;
		if (!r->accts[a].idle && !account_paused(r, a))
			return a;
	}
	for (int a = 0; a < r->nacct; a++) {
		struct runner_acct *ra = &r->accts[a];
		if (account_paused(r, a))
			continue;
		/* groups parked at their cap get their jobs back in a pick: look often */
		if (ra->parked_groups && wait > RUNNER_PARKED_LOOK_MS)
			wait = RUNNER_PARKED_LOOK_MS;
		if (ra->next_due_ms > 0) {
			int64_t until = ra->next_due_ms - util_now_ms();
			if (until < wait)
				wait = until > 0 ? (long)until : 1;
		}
		aliases[n] = r->nacct > 1 ? r->w->accounts.v[a].alias : "";
		idx[n++] = a;
	}
	if (n == 0) { /* every account paused */
		worker_nap(r->w, RUNNER_PAUSE_CHECK_MS);
		return -1;
	}
	if (r->nacct == 1) {
		if (sched_wait(&r->io.q, wait, &woken) != 0)
			return -1;
		which = woken ? 0 : -1;
	} else if (sched_wait_any(&r->io.q, aliases, n, wait, &which) != 0) {
		return -1;
	}
	if (which >= 0) {
		r->accts[idx[which]].idle = 0;
		return idx[which];
	}
	for (int i = 0; i < n; i++) {
		struct runner_acct *ra = &r->accts[idx[i]];
		int64_t due = 0;
		long ready = 0;
		if (ra->next_due_ms > 0 && util_now_ms() >= ra->next_due_ms) {
			ra->idle = 0;
		} else {
			use_account(r, idx[i]);
			if (sched_ready(&r->io.q, &ready, &due, &ra->parked_groups) != 0)
				continue;
			ra->next_due_ms = due;
			if (ready > 0 || ra->parked_groups > 0 || (due > 0 && due <= util_now_ms()))
				ra->idle = 0;
		}
		if (!ra->idle && found < 0)
			found = idx[i];
	}
	if (found < 0)
		r->io.q.check_own = 1; /* idle: look for a leftover */
	return found;
}

/* A runner: the createTask slot first, then the pick rule — so the job that goes is the
 * one the rule names at the moment the slot frees. Its own leftovers (a pick whose reply
 * was lost, a release that failed) are routed again first. With several accounts it
 * serves each one's structure with that account's slot (choose_account). */
void *runner_main(void *arg)
{
	struct runner r;
	memset(&r, 0, sizeof(r));
	char cid[160];
	long leftover_delay_ms = 0, lead_ms;
	int64_t next_pause_check = 0;

	r.w = arg;
	{
		const struct config *cfg = r.w->cfg;
		long spacing = (cfg->create_window_ms + cfg->limit_margin_ms) / cfg->create_limit;
		lead_ms = spacing / 2 < RUNNER_PICK_LEAD_MS ? spacing / 2 : RUNNER_PICK_LEAD_MS;
		if (lead_ms < 20)
			lead_ms = 20;
	}
	r.cslot = atomic_fetch_add(&r.w->next_slot, 1);
	queue_consumer_id(cid, sizeof(cid), r.w->id, r.cslot);
	r.nacct = r.w->accounts.n;
	r.accts = util_xcalloc((size_t)r.nacct, sizeof(*r.accts));
	if (worker_io_open(r.w, &r.io, "runner", cid) != 0)
		goto out;
	for (int a = 0; a < r.nacct; a++) {
		r.accts[a].idle = 1; /* until there is work */
		worker_limiter_acct(r.w, &r.io, &r.accts[a].create, 1, cid, a);
	}
	use_account(&r, 0);
	/* pick tokens never repeat, not even across a restart of the same consumer id: a
	 * retried pick must find only the job that very call started */
	r.picks = (unsigned long)util_now_ms() * 1000UL;
	worker_blocking(r.w, &r.io.rc, 1);
	while (!r.w->stopping) {
		long pause_ms = 0;
		struct rconn_bulk b;
		struct sched_pick pk;
		struct runner_acct *ra;
		int a;

		/* the pause is read at most every RUNNER_PAUSE_CHECK_MS while not paused; the
		 * pick reads it again, so no job is picked after it */
		if (r.saw_pause)
			next_pause_check = 0;
		r.saw_pause = 0;
		if (util_monotonic_ms() >= next_pause_check &&
		    queue_pause_get(&r.io.q, &pause_ms, NULL, 0, NULL, 0) == 0) {
			if (pause_ms != 0) {
				worker_nap(r.w, pause_ms > 0 && pause_ms < 500 ? pause_ms : 500);
				continue;
			}
			next_pause_check = util_monotonic_ms() + RUNNER_PAUSE_CHECK_MS;
		}
		if (queue_leftover(&r.io.q, r.w->max_keep, &b) != 0)
			continue;
		if (b.type == REDIS_REPLY_STRING) {
			if (leftover_wait(&r, cid, 1, &leftover_delay_ms) != 0) {
				rconn_bulk_free(&b);
				break;
			}
			atomic_fetch_add(&r.w->inflight, 1);
			route(&r, &b, 1);
			atomic_fetch_add(&r.w->jobs_done, 1);
			worker_done(r.w);
			rconn_bulk_free(&b);
			continue;
		}
		rconn_bulk_free(&b);
		leftover_delay_ms = 0;
		/* idle: no slot is reserved (it would be wasted, and later ones queue behind it)
		 * until a route's wake token, the earliest notBefore, or a second's look finds
		 * work */
		a = choose_account(&r);
		if (a < 0)
			continue;
		use_account(&r, a);
		ra = &r.accts[a];
		/* a slot of the account's limit first (paced: docs/protocol.md, "Rate limits") */
		switch (limiter_reserve(r.create, &r.w->stopping, lead_ms)) {
		case 0:
			r.slot = SLOT_GRANTED;
			break;
		case 1:
			r.slot = SLOT_PENDING;
			break;
		default:
			continue;
		}
		if (pick(&r, &pk) != 0) {
			slot_release(&r);
			worker_nap(r.w, 100);
			continue;
		}
		if (pk.outcome == SCHED_EMPTY) {
			/* keep the slot a moment (no longer than a late wake may, late_ms): a job
			 * routed meanwhile takes it; a slot given back is lost to the log, which
			 * only grows at its end */
			int woken = 0;
			if (sched_wait(&r.io.q, r.create->late_ms, &woken) == 0 && woken) {
				sched_pick_free(&pk);
				if (pick(&r, &pk) != 0) {
					slot_release(&r);
					continue;
				}
			}
		}
		switch (pk.outcome) {
		case SCHED_PICKED:
			atomic_fetch_add(&r.w->inflight, 1);
			run_picked(&r, &pk);
			atomic_fetch_add(&r.w->jobs_done, 1);
			worker_done(r.w);
			break;
		case SCHED_PAUSED:
			slot_release(&r);
			r.saw_pause = 1;
			ra->pause_check = 0; /* i20-accounts: perhaps this account's */
			break;
		case SCHED_HELD: /* a leftover in this runner's list: routed first */
			slot_release(&r);
			r.io.q.check_own = 1;
			break;
		case SCHED_EMPTY:
			/* nothing ready: the slot goes back, and the runner waits (above) */
			slot_release(&r);
			ra->idle = 1;
			ra->next_due_ms = pk.next_due_ms;
			ra->parked_groups = pk.parked_groups;
			r.io.q.check_own = 1;
			break;
		default:
			slot_release(&r);
			break;
		}
		sched_pick_free(&pk);
	}
	worker_blocking(r.w, &r.io.rc, 0);
out:
	worker_io_close(&r.io);
	free(r.accts);
	return NULL;
}

/* The router: BLMOVE <p>:queue -> <p>:processing:<workerId>#router, then route.lua. Its
 * list is recovered like any consumer's (it is heartbeated with the runners). */
void *router_main(void *arg)
{
	struct runner r;
	memset(&r, 0, sizeof(r));
	char cid[160];
	long leftover_delay_ms = 0;

	r.w = arg;
	r.cslot = -1;
	queue_router_consumer_id(cid, sizeof(cid), r.w->id);
	if (worker_io_open(r.w, &r.io, "router", cid) != 0)
		goto out;
	{
		const struct config *cfg = r.w->cfg;
		struct sched_settings st = {cfg->results_max, cfg->reply_max, cfg->reply_ttl_s,
					    cfg->record_ttl_s, cfg->cancel_ttl_s, cfg->create_limit,
					    cfg->create_window_ms};
		/* i20-accounts: each account's structure holds the settings */
		for (int a = 0; a < r.w->accounts.n; a++) {
			if (r.w->accounts.n > 1)
				util_strlcpy(r.io.q.sched_acct, r.w->accounts.v[a].alias,
					     sizeof(r.io.q.sched_acct));
			if (sched_setup(&r.io.q, &st) != 0) {
				log_error(NULL, NULL, "kie_cancel and kie_position are not available: "
					  "%s", r.io.q.err);
				break;
			}
		}
	}
	worker_blocking(r.w, &r.io.rc, 1);
	while (!r.w->stopping) {
		struct rconn_bulk b;
		int leftover = 0;

		if (queue_claim(&r.io.q, 1.0, r.w->max_keep, &b, &leftover) != 0 ||
		    b.type != REDIS_REPLY_STRING)
			continue;
		if (leftover_wait(&r, cid, leftover, &leftover_delay_ms) != 0) {
			rconn_bulk_free(&b); /* stays listed: the release at exit returns it */
			break;
		}
		if (leftover || !b.kept) {
			/* a leftover routed: the next one (e.g. of a batch whose reply was lost)
			 * goes at once; only a failing route step backs off */
			if (route(&r, &b, leftover) == 0 && leftover)
				leftover_delay_ms = 0;
		} else {
			/* a backlog is the common case: each route moves the next batch, routed
			 * with one call each until the queue is empty (no BLMOVE meanwhile) */
			redisReply *next = route_batch(&r, &b, NULL);
			while (next && !r.w->stopping) {
				redisReply *cur = next;
				next = route_batch(&r, NULL, cur);
				freeReplyObject(cur);
			}
			if (next) /* stopping: they stay listed, the release at exit returns them */
				freeReplyObject(next);
		}
		rconn_bulk_free(&b);
	}
	worker_blocking(r.w, &r.io.rc, 0);
out:
	worker_io_close(&r.io);
	return NULL;
}
