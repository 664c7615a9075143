/* main.c — kie-worker: settings, signals, the thread pool, drain mode and shutdown. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/crypto.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"
#include "net/http.h"
#include "pool/limiter.h"
#include "pool/finalize.h"
#include "pool/queue.h"
#include "redis/redis_tls.h"
#include "store/metadata.h"
#include "http_server.h"
#include "web.h"
#include "worker.h"

static struct worker W;

#define DRAIN_CHECK_MS 40  /* drain mode: how often the pool is looked at when no job ends */

static void on_signal(int sig)
{
	(void)sig;
	if (W.stopping)
		W.hard_stop = 1; /* a second signal: stop waiting */
	W.stopping = 1;
}

static const char usage[] =
	"usage: kie-worker [--drain] [--SETTING VALUE ...]\n"
	"Takes job descriptors from Redis (<prefix>:queue), creates their KIE tasks, polls them\n"
	"to completion and emits completion events (docs/protocol.md).\n"
	"  --drain        exit once the queue, the polling list and in-flight work are empty\n"
	"  --print-config print the active settings (secrets and passwords masked) and exit\n"
	"  --help         this text and every setting\n"
	"  --SETTING VALUE  any setting below by its flag, or by its name\n"
	"                 (--KIE_WORKER_CONCURRENCY=8); over the environment\n"
	"Signals: SIGTERM/SIGINT stop taking work and finish in-flight work within\n"
	"KIE_SHUTDOWN_GRACE_MS; a second signal stops at once. Exit: 0 clean, 1 runtime\n"
	"failure, 2 configuration error.\n\n";

static int join_until(pthread_t t, int64_t deadline_ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int64_t left = deadline_ms - util_monotonic_ms();
	if (left < 0)
		left = 0;
	ts.tv_sec += left / 1000;
	ts.tv_nsec += (left % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return pthread_timedjoin_np(t, NULL, &ts);
}

/* i20-accounts: with several accounts, no job waits in any account's structure (the
 * default one's, <p>:sched:default, is queue_pool_idle's). 1 idle, 0 not or unknown. */
static int accounts_idle(struct queue *q)
{
	for (int i = 0; W.accounts.n > 1 && i < W.accounts.n; i++) {
		char key[300];
		const char *argv[2] = {"HLEN", key};
		redisReply *rep;
		long long n = -1;
		snprintf(key, sizeof(key), "%s:sched:%s:items", q->prefix, W.accounts.v[i].alias);
		rep = rconn_argv(q->r, 2, argv, NULL);
		if (rep && rep->type == REDIS_REPLY_INTEGER)
			n = rep->integer;
		if (rep)
			freeReplyObject(rep);
		if (n != 0)
			return 0;
	}
	return 1;
}

enum { ARGS_OK, ARGS_HELP, ARGS_BAD };

/* The command line, with glibc's getopt_long: --drain, --print-config, --help (-h), and
 * every setting by its flag or its environment name (--concurrency 4,
 * --KIE_WORKER_CONCURRENCY=4; a unique prefix of a name is taken, as getopt_long does).
 * A setting given here replaces the environment's; config_set refuses secrets. */
static int parse_args(int argc, char **argv, struct config *cfg, int *drain, int *print_cfg)
{
	enum { OPT_DRAIN = 256, OPT_PRINT_CONFIG, OPT_SETTING };
	size_t n = config_cli_names(NULL, 0), i;
	struct option *lo = util_xcalloc(n + 4, sizeof(*lo));
	const char **names = util_xcalloc(n, sizeof(*names));
	char err[512], name[80];
	int c, rc = ARGS_OK;

	lo[0] = (struct option){"drain", no_argument, NULL, OPT_DRAIN};
	lo[1] = (struct option){"print-config", no_argument, NULL, OPT_PRINT_CONFIG};
	lo[2] = (struct option){"help", no_argument, NULL, 'h'};
	config_cli_names(names, n);
	/* a value of its own each: getopt_long calls an abbreviation ambiguous only between
	 * options that differ ("--redis" must not pick REDIS_URL) */
	for (i = 0; i < n; i++)
		lo[3 + i] = (struct option){names[i], required_argument, NULL, OPT_SETTING + (int)i};
	optind = 0; /* glibc: start afresh */
	/* "-": arguments that are not options come back in order (code 1), so one is
	 * refused where it stands, whatever POSIXLY_CORRECT says */
	while (rc == ARGS_OK && (c = getopt_long(argc, argv, "-h", lo, NULL)) != -1) {
		switch (c) {
		case OPT_DRAIN:
			*drain = 1;
			break;
		case OPT_PRINT_CONFIG:
			*print_cfg = 1;
			break;
		case 'h':
			rc = ARGS_HELP;
			break;
		case 1:
			fprintf(stderr, "kie-worker: unexpected argument \"%s\" (see --help)\n",
				optarg);
			rc = ARGS_BAD;
			break;
		default:
			if (c < OPT_SETTING) { /* '?': getopt_long said what is wrong */
				fprintf(stderr, "kie-worker: see kie-worker --help\n");
				rc = ARGS_BAD;
				break;
			}
			/* the name keeps its "--": config_set refuses secrets from the command line */
			snprintf(name, sizeof(name), "--%s", names[c - OPT_SETTING]);
			if (config_set(cfg, name, optarg, err, sizeof(err)) != 0) {
				fprintf(stderr, "kie-worker: %s\n", err);
				rc = ARGS_BAD;
			}
			break;
		}
	}
	if (rc == ARGS_OK && optind < argc) { /* after "--" */
		fprintf(stderr, "kie-worker: unexpected argument \"%s\" (see --help)\n",
			argv[optind]);
		rc = ARGS_BAD;
	}
	free(names);
	free(lo);
	return rc;
}

int main(int argc, char **argv)
{
	struct config cfg;
	char err[512];
	int drain = 0, print_cfg = 0;
	enum log_level lvl = LOG_INFO;

	config_defaults(&cfg);
	if (config_load_env(&cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "kie-worker: configuration error: %s\n", err);
		config_free(&cfg);
		return 2;
	}
	switch (parse_args(argc, argv, &cfg, &drain, &print_cfg)) {
	case ARGS_OK:
		break;
	case ARGS_HELP:
		fputs(usage, stdout);
		config_print_help(stdout);
		config_free(&cfg);
		return 0;
	default:
		config_free(&cfg);
		return 2;
	}
	if (print_cfg) {
		config_print(&cfg, stdout);
		config_free(&cfg);
		return 0;
	}
	log_level_parse(cfg.log_level, &lvl);
	log_setup(lvl, strcmp(cfg.log_format, "json") == 0 ? LOG_FORMAT_JSON : LOG_FORMAT_TEXT);

	memset(&W, 0, sizeof(W));
	W.cfg = &cfg;
	if (accounts_load(&cfg, &W.accounts, err, sizeof(err)) != 0 ||
	    config_redis_addr(&cfg, &W.redis, err, sizeof(err)) != 0 ||
	    web_settings_ok(&cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "kie-worker: configuration error: %s\n", err);
		config_free(&cfg);
		return 2;
	}
	{
		const char *aliases[ACCOUNTS_MAX];
		for (int i = 0; i < W.accounts.n; i++)
			aliases[i] = W.accounts.v[i].alias;
		metrics_set_accounts(aliases, W.accounts.n);
		finalize_set_default_account(W.accounts.v[0].alias); /* i20-wire */
		finalize_set_multi_account(W.accounts.n > 1);       /* i20-accounts */
	}
	W.prompts = prompts_load(cfg.prompts_dir, err, sizeof(err));
	if (!W.prompts) {
		fprintf(stderr, "kie-worker: configuration error: %s\n", err);
		config_free(&cfg);
		return 2;
	}
	{
		int ntypes;
		const char *const *types = job_type_names(&ntypes);
		metrics_set_job_types(types, ntypes);
	}
	if (http_global_init() != 0) {
		fprintf(stderr, "kie-worker: libcurl initialisation failed\n");
		prompts_free(W.prompts);
		config_free(&cfg);
		return 1;
	}
	{ /* open the store once now so a bad R2/fs setting stops start-up, not a thread */
		struct metadata_store *ms = metadata_store_open(&cfg, err, sizeof(err));
		if (!ms) {
			fprintf(stderr, "kie-worker: configuration error: %s\n", err);
			prompts_free(W.prompts);
			http_global_cleanup();
			config_free(&cfg);
			return 2;
		}
		metadata_store_free(ms);
	}
	if (cfg.worker_id[0]) {
		util_strlcpy(W.id, cfg.worker_id, sizeof(W.id));
	} else {
		char host[64] = "host", rnd[9] = "0";
		gethostname(host, sizeof(host) - 1);
		crypto_random_hex(4, rnd, sizeof(rnd));
		snprintf(W.id, sizeof(W.id), "%s:%ld:%s", host, (long)getpid(), rnd);
	}
	W.parse_opts = (struct job_parse_opts){
		.max_bytes = (size_t)cfg.job_max_bytes, .default_model = cfg.kie_model,
		.prefix = cfg.redis_prefix, .meta_max_bytes = (size_t)cfg.meta_max_bytes,
		.default_callback_url = cfg.kie_callback_url,
	};
	W.max_keep = (size_t)cfg.job_max_bytes + JOB_ID_SPLICE_BYTES;
	util_strlcpy(W.account_id, W.accounts.v[0].id, sizeof(W.account_id));
	W.policy = (struct lifecycle_policy){
		.max_attempts = cfg.job_max_attempts, .retry_base_ms = cfg.retry_base_ms,
		.account_pause_ms = cfg.account_pause_ms, .poll_initial_ms = cfg.poll_initial_ms,
		.poll_max_ms = cfg.poll_max_ms, .poll_timeout_ms = cfg.poll_timeout_ms,
	};

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	char redis_at[300];
	if (W.redis.nsentinels) /* REDIS_URL's host and port are not used then */
		snprintf(redis_at, sizeof(redis_at), "the primary of %s via %d sentinel(s)",
			 W.redis.master_name, W.redis.nsentinels);
	else if (W.redis.unix_path[0])
		snprintf(redis_at, sizeof(redis_at), "%s", W.redis.unix_path);
	else
		snprintf(redis_at, sizeof(redis_at), "%s:%d", W.redis.host, W.redis.port);
	log_info(NULL, NULL, "kie-worker %s starting: %ld runners, %ld pollers, redis %s "
		 "prefix %s, KIE %s, metadata %s%s", W.id, cfg.concurrency, cfg.pollers, redis_at,
		 cfg.redis_prefix, cfg.kie_base_url, config_metadata_store(&cfg),
		 drain ? ", drain mode" : "");

	W.slots = util_xcalloc((size_t)cfg.concurrency, sizeof(*W.slots));
	/* the runners, the callback consumer, the router */
	W.nconsumers = (int)cfg.concurrency + (cfg.callback_consumer ? 1 : 0) + 1;
	W.consumers = util_xcalloc((size_t)W.nconsumers, sizeof(char *));
	for (int i = 0; i < W.nconsumers; i++) {
		W.consumers[i] = util_xmalloc(160);
		if (i < cfg.concurrency)
			queue_consumer_id(W.consumers[i], 160, W.id, i);
		else if (i == W.nconsumers - 1)
			queue_router_consumer_id(W.consumers[i], 160, W.id);
		else
			queue_callback_consumer_id(W.consumers[i], 160, W.id);
	}
	/* drain mode exits right after its last completion: the main thread checks as soon
	 * as the last job ends, and a stop unblocks the runners' BLMOVEs (worker_unblock) */
	pthread_mutex_init(&W.wake_mu, NULL);
	pthread_cond_init(&W.wake_cv, NULL);
	pthread_mutex_init(&W.poll_mu, NULL);
	pthread_cond_init(&W.poll_cv, NULL);
	W.poll_kick_ms = INT64_MAX;
	W.blocking_max = (int)cfg.concurrency + 2; /* + the callback consumer, the router */
	W.blocking = util_xcalloc((size_t)W.blocking_max, sizeof(*W.blocking));
	for (long i = 0; i < cfg.concurrency; i++)
		pthread_mutex_init(&W.slots[i].mu, NULL);
	/* + the callback consumer, + the router */
	long nthreads = cfg.concurrency + cfg.pollers + (cfg.callback_consumer ? 1 : 0) + 1;
	pthread_t *th = util_xcalloc((size_t)nthreads, sizeof(pthread_t));
	pthread_t sup;
	if (pthread_create(&sup, NULL, supervisor_main, &W) != 0) {
		log_error(NULL, NULL, "cannot start the supervisor thread: %s", strerror(errno));
		return 1;
	}
	for (long i = 0; i < nthreads; i++) {
		void *(*fn)(void *) = i < cfg.concurrency ? runner_main
				      : i < cfg.concurrency + cfg.pollers ? poller_main
				      : i == nthreads - 1 ? router_main
							 : callbacks_main;
		if (pthread_create(&th[i], NULL, fn, &W) != 0) {
			log_error(NULL, NULL, "cannot start thread %ld: %s", i, strerror(errno));
			W.stopping = 1;
			nthreads = i;
			break;
		}
	}

	/* the callback endpoint and the operator routes, when KIE_HTTP_ADDR or KIE_OPS_ADDR
	 * asks for them; failing to listen stops the worker (exit 1) after the usual shutdown */
	struct http_server *hs = NULL;
	int exit_code = 0;
	if ((*cfg.http_addr || *cfg.ops_addr) && !W.stopping) {
		hs = http_server_start(&cfg, &W.redis, &W.hard_stop, err, sizeof(err));
		if (!hs) {
			log_error(NULL, NULL, "cannot start the HTTP server: %s", err);
			W.stopping = 1;
			exit_code = 1;
		}
	}

	/* main thread: wait for a signal, or for the pool to go idle in drain mode */
	struct rconn rc;
	struct queue q;
	rconn_init(&rc, &W.redis, 10000, &W.stopping, "main");
	queue_init(&q, &rc, cfg.redis_prefix, W.id, cfg.record_ttl_s, cfg.results_max);
	while (!W.stopping) {
		if (!drain) {
			util_sleep_ms(200);
			continue;
		}
		/* woken by the last job, poll or callback to finish; otherwise a look every
		 * DRAIN_CHECK_MS for work that other workers of the pool finish */
		worker_nap(&W, DRAIN_CHECK_MS);
		int idle = 0;
		if (atomic_load(&W.inflight) == 0 &&
		    queue_pool_idle(&q, (int)cfg.callback_consumer, &idle) == 0 && idle &&
		    accounts_idle(&q)) {
			log_info(NULL, NULL, "drain: queue, polling list, uncertain jobs and "
				 "in-flight work are empty; exiting");
			W.stopping = 1;
		}
	}
	worker_wake(&W); /* end every nap: threads see stopping at once */
	if (!drain)
		log_info(NULL, NULL, "stopping: finishing in-flight work (grace %ld ms)",
			 cfg.shutdown_grace_ms);

	int64_t deadline = util_monotonic_ms() + cfg.shutdown_grace_ms;
	long unfinished = 0;
	/* idle runners sit in BLMOVE: unblock them, again while any is not back (one may have
	 * sent its BLMOVE just after the first round) */
	struct rconn urc;
	rconn_init(&urc, &W.redis, 500, &W.hard_stop, "main");
	urc.deadline_ms = util_monotonic_ms() + 500; /* Redis gone: nothing blocks in it */
	worker_unblock(&W, &urc);
	for (long i = 0; i < nthreads; i++) {
		for (;;) {
			int64_t now = util_monotonic_ms();
			if (join_until(th[i], deadline < now + 20 ? deadline : now + 20) == 0)
				break;
			if (util_monotonic_ms() >= deadline) {
				unfinished++;
				break;
			}
			if (urc.c) /* best effort: only over a live connection */
				worker_unblock(&W, &urc);
		}
	}
	rconn_close(&urc);
	/* callbacks were still taken while runners and pollers finished their work */
	http_server_stop(hs);
	if (unfinished) {
		log_error(NULL, NULL, "grace period over with %ld thread(s) still busy; their jobs "
			  "stay claimed and live workers recover them once this heartbeat expires",
			  unfinished);
		W.hard_stop = 1;
		/* busy threads still use the shared state: leave without tearing it down */
		_exit(1);
	} else {
		/* the release gets what is left of the grace period, whatever Redis does; a
		 * second signal (hard_stop) ends it at once */
		long returned = 0;
		rconn_close(&rc);
		rconn_init(&rc, &W.redis, 2000, &W.hard_stop, "main");
		rc.deadline_ms = deadline > util_monotonic_ms() ? deadline : util_monotonic_ms() + 1000;
		queue_init(&q, &rc, cfg.redis_prefix, W.id, cfg.record_ttl_s, cfg.results_max);
		if (queue_release_self(&q, (const char *const *)W.consumers, W.nconsumers,
				       &returned) != 0)
			log_warn(NULL, NULL, "could not return claimed jobs at exit (%s); live workers "
				 "recover them once this worker's heartbeat expires", q.err);
		else if (returned)
			log_warn(NULL, NULL, "returned %ld claimed job(s) to the queue", returned);
		W.hard_stop = 1;
		pthread_join(sup, NULL);
	}
	log_info(NULL, NULL, "kie-worker %s stopped (%ld jobs, %ld polls handled)", W.id,
		 atomic_load(&W.jobs_done), atomic_load(&W.polls_done));
	rconn_close(&rc);
	free(th);
	for (long i = 0; i < cfg.concurrency; i++)
		pthread_mutex_destroy(&W.slots[i].mu);
	free(W.slots);
	for (int i = 0; i < W.nconsumers; i++)
		free(W.consumers[i]);
	free(W.consumers);
	free(W.blocking);
	prompts_free(W.prompts);
	accounts_free(&W.accounts);
	http_global_cleanup();
	redis_tls_cleanup();
	config_free(&cfg);
	return exit_code;
}
