/* rconn.h — one Redis connection per thread, from REDIS_URL (or the primary that Redis
 * Sentinel names), plain or TLS (redis_tls.h), that reconnects with backoff. A hiredis context with err set is dead:
 * it is freed and replaced; so is one whose node was demoted to a replica.
 *
 * Must not: know a key or a script of the pool, or share a context between threads. */
#ifndef KIE_RCONN_H
#define KIE_RCONN_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#define RCONN_SENTINELS_MAX 16
#define RCONN_SENTINEL_PORT 26379 /* a sentinel's port when the list gives none */

struct rconn_sentinel {
	char host[256]; /* without IPv6 brackets */
	int port;
};

struct rconn_addr {
	char host[256];      /* without IPv6 brackets: "::1", "fe80::1%eth0" */
	int port;            /* 1..65535, default 6379 */
	char unix_path[512]; /* set for unix:// (then host and port are unused) */
	char user[128];      /* ACL user name, at most 127 bytes; "" for the default user */
	char password[256];  /* at most 255 bytes; "" for none (no AUTH); never printed */
	int db;              /* 0..1000 */
	/* Sentinel mode (rconn_addr_sentinels()), when nsentinels > 0: before each
	 * (re)connect the primary's address is asked of the sentinels, and host, port and
	 * unix_path above are not used; user, password and db still are. */
	int nsentinels;
	struct rconn_sentinel sentinels[RCONN_SENTINELS_MAX];
	char master_name[128];        /* the name the sentinels monitor it by */
	char sentinel_password[256];  /* AUTH for the sentinels; "" for none; never printed */
	/* TLS (rconn_addr_tls()): tls is set by rediss:// and covers REDIS_URL's node or the
	 * primary the sentinels name; sentinel_tls (REDIS_SENTINEL_TLS) the sentinels. */
	int tls;
	int sentinel_tls;
	char tls_server_name[256]; /* REDIS_TLS_SERVER_NAME: the name certificates are checked
				    * against (and SNI); "" = the host connected to */
};

/* Parses REDIS_URL with libcurl's URL API:
 *   redis://[[user]:password@]host[:port][/db]   host may be an IPv6 literal in brackets
 *   rediss://...                                 the same over TLS (sets out->tls)
 *   unix:///path/to/redis.sock[?db=N]
 * User and password are percent-decoded (a '@', ':' or '/' in them is written %40, %3A,
 * %2F). A user part with no password part (redis://secret@host) is the password, as
 * redis-cli reads it. password, when non-NULL and non-empty (REDIS_PASSWORD_FILE), replaces
 * the URL's password; the URL's user part is then the ACL user name. Returns 0, or -1 with err naming REDIS_URL and the problem; err
 * never quotes the URL, the user name or the password, and out is left zeroed. */
int rconn_parse_url(const char *url, const char *password, struct rconn_addr *out, char *err,
		    size_t errlen);

/* TLS settings into a, after rconn_addr_sentinels(): sentinel_tls (REDIS_SENTINEL_TLS, 0
 * or 1) and server_name (REDIS_TLS_SERVER_NAME, may be NULL or ""; at most 255 bytes, a
 * DNS name or an IP literal). When a connection uses TLS (rediss://, or sentinel_tls
 * with sentinels) the process's TLS context is made with redis_tls_init(ca_file,
 * cert_file, key_file) (see redis_tls.h); when none does, setting any of the REDIS_TLS_*
 * files or the name is an error (TLS would silently not be used). Returns 0, or -1 with
 * err naming the variable at fault. */
int rconn_addr_tls(struct rconn_addr *a, int sentinel_tls, const char *ca_file,
		   const char *cert_file, const char *key_file, const char *server_name,
		   char *err, size_t errlen);

/* The longest pause between reconnection attempts (rconn_ensure backs off 100 ms,
 * doubling, up to this). */
#define RCONN_BACKOFF_MAX_MS 5000

/* Turns on Sentinel mode in a, after rconn_parse_url() filled it (which clears it).
 * list is REDIS_SENTINELS: comma-separated host:port entries, "[v6]:port" for an IPv6
 * literal, blanks around entries ignored, the port RCONN_SENTINEL_PORT when left out; at
 * most RCONN_SENTINELS_MAX entries. NULL or "" leaves a without sentinels and returns 0.
 * master is the name the sentinels monitor (KIE_REDIS_MASTER_NAME: 1..127 bytes, no
 * blanks or control characters); password (may be NULL) is the sentinels' own password.
 * Returns 0, or -1 with err naming REDIS_SENTINELS (or KIE_REDIS_MASTER_NAME) and the
 * entry at fault; a is then left without sentinels. err never quotes the password. */
int rconn_addr_sentinels(struct rconn_addr *a, const char *list, const char *master,
			 const char *password, char *err, size_t errlen);

/* What an error reply means to the connection that got it:
 *   RCONN_ERR_DEMOTED  READONLY, MASTERDOWN, NOREPLICAS, or a blocked command undone by
 *                      "UNBLOCKED ... (master -> replica?)": the node is not (or no longer)
 *                      a primary that takes writes;
 *   RCONN_ERR_LOADING  LOADING: the node is loading its data set; the command did not run;
 *   RCONN_ERR_OTHER    any other error (the caller's business).
 * A script error that carries one of them ("ERR Error running script ... -READONLY ...",
 * Redis 6) counts as it. */
enum rconn_err_kind { RCONN_ERR_OTHER = 0, RCONN_ERR_DEMOTED, RCONN_ERR_LOADING };
enum rconn_err_kind rconn_error_kind(const char *msg);

/* The process-wide connection generation: bumped when a connection finds its node
 * demoted (or, in Sentinel mode, when the sentinels name another primary). Every rconn
 * of the process whose connection is older drops it and reconnects before its next
 * command. For tests and diagnostics. */
unsigned long rconn_generation(void);

struct rconn {
	redisContext *c;
	struct rconn_addr addr;
	long timeout_ms;
	const volatile sig_atomic_t *stop; /* when set, reconnect gives up */
	long backoff_ms;
	int lost;                           /* a connection died: log when it is back */
	/* connections lost or given up so far: a reply may be lost, or (after a failover)
	 * the node now served may be behind what this connection saw */
	unsigned long drops;
	char who[64];                       /* thread name for logs */
	int64_t deadline_ms;                /* monotonic ms after which reconnecting gives up; 0: none */
	/* the node of the live connection: REDIS_URL's, or the primary a sentinel named */
	char node_host[256];
	int node_port;
	unsigned long gen;                  /* rconn_generation() the connection was made under */
	long demote_ms;                     /* pause after a demotion reply; doubles while they repeat */
	int64_t demoted_at_ms;              /* monotonic time of the last demotion reply */
	int64_t pause_until_ms;             /* no reconnect before this (monotonic) */
	int64_t next_note_ms;               /* demotion and reconnect notes: one line per 10 s */
	unsigned long notes_quiet;          /* ... and how many were not logged since */
	int64_t next_back_ms;               /* "reconnected" after a demotion: one line per 10 s */
	int demoted;                        /* dropped for a demotion: say so when back */
	int want_client_id;                 /* set before connecting: fill client_id */
	_Atomic long long client_id;        /* CLIENT ID of the live connection (0: unknown);
					     * other threads read it to CLIENT UNBLOCK us */
};

/* Initializes (does not connect). stop may be NULL. */
void rconn_init(struct rconn *r, const struct rconn_addr *addr, long timeout_ms,
		const volatile sig_atomic_t *stop, const char *who);

/* Makes sure r->c is a live context, reconnecting with backoff (100 ms doubling to 5 s)
 * until it succeeds or *stop is set. Returns 0 or -1 (stopped). A connection older than
 * the process's generation (rconn_generation()) is dropped and made again first; after a
 * demotion reply the reconnect waits its pause. In Sentinel mode each connect asks the
 * sentinels for the primary (500 ms connect and read timeout per sentinel, in turn from
 * the last that answered), connects, AUTHs and SELECTs as REDIS_URL says, and checks with
 * ROLE that the node is a master. The process also subscribes to every sentinel's
 * failover events: from +try-failover of its primary until +switch-master (or an abort;
 * at most 10 s) every rconn of the process drops its connection and waits, so nothing is
 * written to a primary whose replica is being promoted (a forced failover leaves the old
 * primary writable for about 10 s, and what it takes then is lost). As a fallback for a
 * missed event, once a second one rconn asks a sentinel who the primary is and, if it is
 * another node, every rconn reconnects. */
int rconn_ensure(struct rconn *r);

/* Runs a command with argv; returns the reply (caller frees with freeReplyObject) or NULL
 * when the connection failed (the context is dropped; the next call reconnects). A Redis
 * error reply is returned as a reply of type REDIS_REPLY_ERROR, not NULL.
 * An error reply that says the node was demoted (rconn_error_kind(), also as an element
 * of an EXEC or script reply) is still returned, and the connection is dropped, the
 * process's generation bumped (every other rconn reconnects before its next command) and
 * the reconnect made to wait: 100 ms, doubling up to 5 s while such replies keep coming
 * within 30 s; with Sentinel, the reconnect asks who the primary is now. LOADING (the
 * command did not run) is waited out here, 100 ms doubling to 1 s between tries, until
 * another reply or *stop (then the LOADING reply is returned). Such events are logged at
 * most once per 10 s per rconn, with a count. */
redisReply *rconn_argv(struct rconn *r, int argc, const char **argv, const size_t *lens);
redisReply *rconn_cmd(struct rconn *r, const char *fmt, ...);

/* Two commands in one round trip (a pipeline of two): 0 and both replies (caller frees
 * each), or -1 when the connection failed (both NULL; either may have run: the caller
 * runs again what must run, as after a lost reply). Error replies are returned as they
 * are (no LOADING wait, no demotion handling: the caller falls back to rconn_argv). */
int rconn_argv2(struct rconn *r, int argc1, const char **argv1, const size_t *lens1,
		int argc2, const char **argv2, const size_t *lens2, redisReply **rep1,
		redisReply **rep2);

/* Like rconn_argv, but on a connection failure reconnects and retries until it gets a
 * reply or *stop is set (then NULL). Use for steps that must not be skipped. */
redisReply *rconn_argv_retry(struct rconn *r, int argc, const char **argv, const size_t *lens);

/* A reply that is one bulk string, read without ever holding more of it than a cap:
 * a list element can be up to 512 MB, and a worker must not be made to allocate that
 * (or die trying) because a producer pushed it. */
#define RCONN_HEAD_BYTES 4096
struct rconn_bulk {
	int type;           /* REDIS_REPLY_STRING, REDIS_REPLY_NIL or REDIS_REPLY_ERROR */
	char *data;         /* the whole value plus a NUL when len <= max_keep, else NULL;
			     * caller frees (rconn_bulk_free) */
	size_t len;         /* the value's full length */
	int kept;           /* data holds it */
	char head[RCONN_HEAD_BYTES]; /* when not kept: its first head_len bytes ... */
	size_t head_len;
	char sha256[65];    /* ... and the SHA-256 of all of it */
	char err[256];      /* the error reply's text */
};

/* Sends a command whose reply is a bulk string or nil (BLMOVE, LINDEX, ...) and streams
 * the reply: up to max_keep bytes are kept, a longer value only leaves its length, head
 * and SHA-256 (memory: max_keep plus 16 KiB, whatever the value's size). Returns 0 with
 * out filled, or -1 when the connection failed (dropped; the next call reconnects). */
int rconn_bulk_bounded(struct rconn *r, int argc, const char **argv, const size_t *lens,
		       size_t max_keep, struct rconn_bulk *out);
void rconn_bulk_free(struct rconn_bulk *b);

void rconn_close(struct rconn *r);

#endif
