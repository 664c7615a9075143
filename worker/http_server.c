/* http_server.c — the listeners, limits, deadline and routing of http_server.h. */
#include "http_server.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"
#include "net/client_addr.h"
#include "callback_endpoint.h"
#include "metrics_http.h"
#include "web.h"

#define LISTEN_BACKLOG SOMAXCONN /* connections past the limit wait here for a slot */
#define XFF_LINES_MAX 16         /* X-Forwarded-For header lines read */

struct http_server;

/* One listening address, one MHD daemon. */
struct listener {
	struct http_server *s;
	struct MHD_Daemon *d;
	const char *var;           /* "KIE_HTTP_ADDR" or "KIE_OPS_ADDR" */
	const char *addr;          /* its value */
	int callbacks;             /* serves the callback path; clients limited per address */
	int ops;                   /* serves the operator routes */
};

/* One open connection (MHD's socket context), from its STARTED notification to its
 * CLOSED one; on s->conns under s->lock. */
struct conn {
	struct conn *prev, *next;
	int fd;
	struct client_addr peer;
	int per_address;           /* counted in s->per_peer */
	int64_t deadline_ms;       /* monotonic: its request must be answered by then */
	int reaped;                /* shut down (deadline, or over the per-address limit) */
};

enum route { ROUTE_ANSWERED = 0, ROUTE_CALLBACK, ROUTE_WEB };

/* One request (MHD's con_cls), from its headers to its completion. */
struct request {
	enum route route;
	int per_client;            /* client counted in s->per_client (behind a proxy) */
	struct client_addr client;
	char client_str[2 * CLIENT_ADDR_STRLEN + 8]; /* "a", or "a via proxy" */
	struct callback_request *cb;
	struct web_request *web;
};

struct http_server {
	const struct config *cfg;
	struct listener listeners[2];
	int nlisteners;
	struct callback_endpoint *cb; /* the callback path (KIE_HTTP_ADDR), else NULL */
	struct web *web;           /* the operator page (KIE_ADMIN_PAGE=on), else NULL */
	struct metrics_http *routes; /* /metrics, /healthz, /readyz */
	struct client_addr_list trusted; /* KIE_HTTP_TRUSTED_PROXIES */
	pthread_mutex_t lock;      /* conns, per_peer, per_client */
	struct conn *conns;
	struct client_addr_counts *per_peer;   /* open connections per direct client */
	struct client_addr_counts *per_client; /* requests per client behind a proxy */
	/* the reaper: shuts down connections past their deadline */
	pthread_t reaper;
	int reaper_started;
	pthread_mutex_t reaper_mu;
	pthread_cond_t reaper_cv;  /* on CLOCK_MONOTONIC */
	int reaper_stop;           /* under reaper_mu */
	struct log_every log_per_address, log_deadline;
};

static int64_t request_deadline(const struct http_server *s)
{
	return util_monotonic_ms() + s->cfg->http_request_timeout_ms;
}

/* ---- limits per address, at accept and at STARTED/CLOSED ---- */

static void log_per_address(struct http_server *s, const struct client_addr *a)
{
	unsigned long quiet = 0;
	char ip[CLIENT_ADDR_STRLEN];

	metrics_http_refused(METRICS_HTTP_PER_ADDRESS);
	if (LOG_WARN < log_active_level || !log_every_take(&s->log_per_address, &quiet))
		return;
	log_warn(NULL, NULL, "HTTP: a connection from %s closed at once: that address holds "
		 "KIE_HTTP_MAX_PER_ADDRESS (%ld) connections already%s", client_addr_str(a, ip,
		 sizeof(ip)), s->cfg->http_max_per_address, quiet ? " (and more since the last "
		 "such line)" : "");
}

/* MHD's accept policy: a direct client holding KIE_HTTP_MAX_PER_ADDRESS connections
 * already gets no more (the socket is closed, nothing is answered). The count itself is
 * kept at STARTED and CLOSED, which MHD always pairs (daemon.c:2811 and :2898/:3799);
 * two threads accepting at once may both pass here, so STARTED checks again. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *sa, socklen_t len)
{
	struct listener *l = cls;
	struct http_server *s = l->s;
	struct client_addr a;
	long n;

	(void)len;
	if (!l->callbacks || client_addr_from_sockaddr(sa, &a) != 0 ||
	    client_addr_list_has(&s->trusted, &a))
		return MHD_YES;
	pthread_mutex_lock(&s->lock);
	n = client_addr_counts_get(s->per_peer, &a);
	pthread_mutex_unlock(&s->lock);
	if (n < s->cfg->http_max_per_address)
		return MHD_YES;
	log_per_address(s, &a);
	return MHD_NO;
}

/* MHD's connection notifications. STARTED: the connection joins s->conns with its
 * deadline (and its address's count); CLOSED: it leaves them. libmicrohttpd 0.9.75 sends
 * CLOSED before it closes the socket, on both paths that close a started connection
 * (daemon.c:3799 notifies, :3845 closes, in MHD_cleanup_connections; :2898 notifies,
 * :2927 closes, when adding it fails after STARTED): so while a conn is on the list,
 * under s->lock, its fd is that connection's socket and no reused descriptor. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	struct listener *l = cls;
	struct http_server *s = l->s;
	struct conn *k;
	int over = 0;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *fd =
			MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		const union MHD_ConnectionInfo *ad =
			MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		k = util_xcalloc(1, sizeof(*k));
		k->fd = fd ? fd->connect_fd : -1;
		client_addr_from_sockaddr(ad ? ad->client_addr : NULL, &k->peer);
		k->deadline_ms = request_deadline(s);
		pthread_mutex_lock(&s->lock);
		k->next = s->conns;
		if (s->conns)
			s->conns->prev = k;
		s->conns = k;
		if (l->callbacks && !client_addr_list_has(&s->trusted, &k->peer)) {
			k->per_address = 1;
			over = client_addr_counts_add(s->per_peer, &k->peer, 1) >
			       s->cfg->http_max_per_address;
			if (over && k->fd >= 0) {
				shutdown(k->fd, SHUT_RDWR); /* MHD sees the end and closes it */
				k->reaped = 1;
			}
		}
		pthread_mutex_unlock(&s->lock);
		if (over)
			log_per_address(s, &k->peer);
		*socket_context = k;
		return;
	}
	if (code != MHD_CONNECTION_NOTIFY_CLOSED || !(k = *socket_context))
		return;
	pthread_mutex_lock(&s->lock);
	if (k->prev)
		k->prev->next = k->next;
	else
		s->conns = k->next;
	if (k->next)
		k->next->prev = k->prev;
	if (k->per_address)
		client_addr_counts_add(s->per_peer, &k->peer, -1);
	pthread_mutex_unlock(&s->lock);
	*socket_context = NULL;
	free(k);
}

/* ---- the deadline ---- */

/* Shuts down every connection past its deadline: its request (headers, body, answer)
 * took longer than KIE_HTTP_REQUEST_TIMEOUT_MS, however steadily it trickled. */
static void reap(struct http_server *s)
{
	int64_t now = util_monotonic_ms();
	struct client_addr one;
	unsigned long quiet = 0;
	char ip[CLIENT_ADDR_STRLEN];
	long n = 0;

	pthread_mutex_lock(&s->lock);
	for (struct conn *k = s->conns; k; k = k->next) {
		if (k->reaped || k->fd < 0 || now < k->deadline_ms)
			continue;
		/* k is on the list under the lock: k->fd is still its socket (on_connection) */
		shutdown(k->fd, SHUT_RDWR);
		k->reaped = 1;
		one = k->peer;
		n++;
	}
	pthread_mutex_unlock(&s->lock);
	for (long i = 0; i < n; i++)
		metrics_http_refused(METRICS_HTTP_DEADLINE);
	if (n && LOG_WARN >= log_active_level && log_every_take(&s->log_deadline, &quiet))
		log_warn(NULL, NULL, "HTTP: closed %ld connection(s) (from %s%s) whose request was "
			 "not answered within KIE_HTTP_REQUEST_TIMEOUT_MS (%ld ms)%s", n,
			 client_addr_str(&one, ip, sizeof(ip)), n > 1 ? " and others" : "",
			 s->cfg->http_request_timeout_ms, quiet ? "; more were since the last such "
			 "line" : "");
}

static void *reaper_main(void *arg)
{
	struct http_server *s = arg;
	struct timespec until;

	pthread_mutex_lock(&s->reaper_mu);
	while (!s->reaper_stop) {
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_nsec += HTTP_SERVER_REAP_EVERY_MS * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&s->reaper_cv, &s->reaper_mu, &until);
		if (s->reaper_stop)
			break;
		pthread_mutex_unlock(&s->reaper_mu);
		reap(s);
		pthread_mutex_lock(&s->reaper_mu);
	}
	pthread_mutex_unlock(&s->reaper_mu);
	return NULL;
}

/* ---- who the client is ---- */

struct xff_lines {
	size_t n;
	const char *v[XFF_LINES_MAX];
};

static enum MHD_Result collect_xff(void *cls, enum MHD_ValueKind kind, const char *key,
				   const char *value)
{
	struct xff_lines *x = cls;
	(void)kind;
	if (key && value && strcasecmp(key, "X-Forwarded-For") == 0) {
		if (x->n == XFF_LINES_MAX) { /* the last lines are the nearest: keep those */
			memmove(x->v, x->v + 1, (XFF_LINES_MAX - 1) * sizeof(x->v[0]));
			x->n--;
		}
		x->v[x->n++] = value;
	}
	return MHD_YES;
}

/* Fills q->client and q->client_str; 1 when the connection is a trusted proxy's on the
 * callback listener (the client then comes from X-Forwarded-For, or is the proxy itself
 * when that header is absent). */
static int client_of(struct http_server *s, const struct listener *l, struct MHD_Connection *c,
		     struct request *q)
{
	const union MHD_ConnectionInfo *ad =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	struct client_addr peer;
	struct xff_lines x = {0, {NULL}};
	char p[CLIENT_ADDR_STRLEN], a[CLIENT_ADDR_STRLEN];

	if (client_addr_from_sockaddr(ad ? ad->client_addr : NULL, &peer) != 0) {
		util_strlcpy(q->client_str, "?", sizeof(q->client_str));
		return 0;
	}
	q->client = peer;
	client_addr_str(&peer, p, sizeof(p));
	if (!l->callbacks || !client_addr_list_has(&s->trusted, &peer)) {
		util_strlcpy(q->client_str, p, sizeof(q->client_str));
		return 0;
	}
	MHD_get_connection_values(c, MHD_HEADER_KIND, collect_xff, &x);
	if (client_addr_forwarded(x.v, x.n, &s->trusted, &q->client))
		snprintf(q->client_str, sizeof(q->client_str), "%s via %s",
			 client_addr_str(&q->client, a, sizeof(a)), p);
	else
		snprintf(q->client_str, sizeof(q->client_str), "%s (a trusted proxy, no "
			 "X-Forwarded-For)", p);
	return 1;
}

/* ---- routing ---- */

/* A 404; the callback listener's warning line names the method and path asked for
 * (quoted: at most 64 bytes, control bytes and invalid UTF-8 as '?'). */
static enum MHD_Result not_found(struct http_server *s, const struct listener *l,
				 struct MHD_Connection *c, const struct request *q,
				 const char *method, const char *url)
{
	char logged[200], m[24], u[72];

	if (!(l->callbacks && s->cb))
		return callback_endpoint_reply(c, MHD_HTTP_NOT_FOUND, "not found", 0);
	snprintf(logged, sizeof(logged), "not found: %s \"%s\"",
		 util_text_shown(method, 16, m, sizeof(m)), util_text_shown(url, 64, u, sizeof(u)));
	return callback_endpoint_refuse(s->cb, c, q->client_str, MHD_HTTP_NOT_FOUND, "not found",
					logged, 0);
}

/* GET /favicon.ico on an operator listener: 204, nothing to log. Browsers ask for it on
 * every load of the page or of /metrics. */
static enum MHD_Result no_favicon(struct MHD_Connection *c)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	enum MHD_Result rc;

	if (!r)
		return MHD_NO;
	rc = MHD_queue_response(c, MHD_HTTP_NO_CONTENT, r);
	MHD_destroy_response(r);
	return rc;
}

/* The headers are in: who the client is, its count behind a proxy, which route. */
static enum MHD_Result on_headers(struct listener *l, struct MHD_Connection *c,
				  const char *url, const char *method, struct request *q)
{
	struct http_server *s = l->s;
	const struct config *cfg = s->cfg;
	int is_callback = l->callbacks && strcmp(url, cfg->callback_path) == 0;
	char why[200];

	if (client_of(s, l, c, q)) {
		long n;
		pthread_mutex_lock(&s->lock);
		n = client_addr_counts_add(s->per_client, &q->client, 1);
		pthread_mutex_unlock(&s->lock);
		q->per_client = 1;
		if (n > cfg->http_max_per_address) {
			metrics_http_refused(METRICS_HTTP_PER_CLIENT);
			snprintf(why, sizeof(why), "too many requests at once from this client "
				 "(KIE_HTTP_MAX_PER_ADDRESS is %ld); try again",
				 cfg->http_max_per_address);
			return s->cb ? callback_endpoint_refuse(s->cb, c, q->client_str, 429, why,
								NULL, is_callback)
				     : callback_endpoint_reply(c, 429, why, 0);
		}
	}
	if (is_callback && s->cb) /* the callback path wins if it names an operator route */
		q->route = ROUTE_CALLBACK;
	else if (l->ops && s->web && web_wants(url))
		q->route = ROUTE_WEB;
	else if (l->ops && metrics_http_handles(url))
		return metrics_http_serve(s->routes, c, url, method);
	else if (l->ops && strcmp(url, "/favicon.ico") == 0 &&
		 (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0))
		return no_favicon(c);
	else
		return not_found(s, l, c, q, method, url);
	return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct listener *l = cls;
	struct http_server *s = l->s;
	struct request *q = *con_cls;

	(void)version;
	if (!q) { /* MHD's first call: the headers are in */
		enum MHD_Result rc;
		q = *con_cls = util_xcalloc(1, sizeof(*q));
		rc = on_headers(l, c, url, method, q);
		if (rc != MHD_YES || q->route == ROUTE_ANSWERED)
			return rc;
	}
	switch (q->route) {
	case ROUTE_CALLBACK:
		return callback_endpoint_on_request(s->cb, c, q->client_str, method, upload,
						    upload_size, &q->cb);
	case ROUTE_WEB:
		return web_on_request(s->web, c, url, method, upload, upload_size, &q->web);
	case ROUTE_ANSWERED:
		break;
	}
	*upload_size = 0; /* answered from the headers: a body is not read */
	return MHD_YES;
}

/* A request is done (answered, or its connection closed): its counts go, and the
 * connection's next request has KIE_HTTP_REQUEST_TIMEOUT_MS from now. */
static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct listener *l = cls;
	struct http_server *s = l->s;
	struct request *q = *con_cls;
	const union MHD_ConnectionInfo *sc =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct conn *k = sc ? sc->socket_context : NULL;

	(void)toe;
	pthread_mutex_lock(&s->lock);
	if (k) /* MHD reports a request done before its connection's CLOSED */
		k->deadline_ms = request_deadline(s);
	if (q && q->per_client)
		client_addr_counts_add(s->per_client, &q->client, -1);
	pthread_mutex_unlock(&s->lock);
	if (q) {
		callback_request_free(q->cb);
		web_request_free(q->web);
		free(q);
		*con_cls = NULL;
	}
}

/* ---- start and stop ---- */

/* libmicrohttpd's own messages, at debug only (MHD_USE_ERROR_LOG is off otherwise). */
__attribute__((format(printf, 2, 0)))
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	log_debug(NULL, NULL, "libmicrohttpd: %s", msg);
}

/* A listening socket on a; -1 with err naming var. */
static int listen_on(const struct util_listen_addr *a, const char *var, const char *shown_addr,
		     char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, one = 1;

	memset(&ss, 0, sizeof(ss));
	if (a->ipv6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)a->port);
		inet_pton(AF_INET6, a->host, &s6->sin6_addr);
		len = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)a->port);
		inet_pton(AF_INET, a->host, &s4->sin_addr);
		len = sizeof(*s4);
	}
	fd = socket(a->ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, errlen, "%s: cannot listen on %s: %s", var, shown_addr,
			 strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (a->ipv6) /* [::]:port is IPv6 only, whatever net.ipv6.bindv6only says */
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
		snprintf(err, errlen, "%s: cannot listen on %s: %s", var, shown_addr,
			 strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* Starts l's daemon on its address with conns connections; -1 with err. */
static int listener_start(struct listener *l, unsigned conns, char *err, size_t errlen)
{
	const struct config *cfg = l->s->cfg;
	struct util_listen_addr a;
	char why[256];
	unsigned flags, threads;
	int fd;

	if (util_parse_listen_addr(l->addr, &a, why, sizeof(why)) != 0) {
		snprintf(err, errlen, "%s: %s", l->var, why);
		return -1;
	}
	fd = listen_on(&a, l->var, l->addr, err, errlen);
	if (fd < 0)
		return -1;
	threads = conns < HTTP_SERVER_THREADS ? conns : HTTP_SERVER_THREADS;
	flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO;
	if (a.ipv6)
		flags |= MHD_USE_IPv6;
	if (log_active_level <= LOG_DEBUG)
		flags |= MHD_USE_ERROR_LOG;
	l->d = MHD_start_daemon(flags, 0, on_accept, l, on_request, l,
				MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, /* first: MHD wants it so */
				MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
				MHD_OPTION_THREAD_POOL_SIZE, threads,
				MHD_OPTION_CONNECTION_LIMIT, conns,
				MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->http_conn_timeout_s,
				MHD_OPTION_NOTIFY_CONNECTION, on_connection, l,
				MHD_OPTION_NOTIFY_COMPLETED, on_completed, l,
				MHD_OPTION_END);
	if (!l->d) {
		snprintf(err, errlen, "%s: libmicrohttpd could not start on %s", l->var, l->addr);
		close(fd);
		return -1;
	}
	return 0;
}

struct http_server *http_server_start(const struct config *cfg, const struct rconn_addr *redis,
				      const volatile sig_atomic_t *stop, char *err,
				      size_t errlen)
{
	struct http_server *s = util_xcalloc(1, sizeof(*s));
	const char *ops_at = *cfg->ops_addr ? cfg->ops_addr : cfg->http_addr;
	char why[256];
	pthread_condattr_t ca;

	s->cfg = cfg;
	if (client_addr_list_parse(cfg->http_trusted_proxies, &s->trusted, why,
				   sizeof(why)) != 0) {
		snprintf(err, errlen, "KIE_HTTP_TRUSTED_PROXIES: %s", why);
		free(s);
		return NULL;
	}
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->reaper_mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->reaper_cv, &ca);
	pthread_condattr_destroy(&ca);
	s->log_per_address = (struct log_every)LOG_EVERY_INIT(1000);
	s->log_deadline = (struct log_every)LOG_EVERY_INIT(1000);
	s->per_peer = client_addr_counts_new((size_t)cfg->http_max_connections);
	s->per_client = client_addr_counts_new((size_t)cfg->http_max_connections);
	s->routes = metrics_http_new(cfg, redis, stop);
	if (strcmp(cfg->admin_page, "on") == 0 && !(s->web = web_start(cfg, redis, stop, err,
								      errlen)))
		goto fail;
	if (*cfg->http_addr) {
		struct listener *l = &s->listeners[s->nlisteners++];
		*l = (struct listener){s, NULL, "KIE_HTTP_ADDR", cfg->http_addr, 1, !*cfg->ops_addr};
		s->cb = callback_endpoint_new(cfg, redis, stop);
		if (listener_start(l, (unsigned)cfg->http_max_connections, err, errlen) != 0)
			goto fail;
	}
	if (*cfg->ops_addr) {
		struct listener *l = &s->listeners[s->nlisteners++];
		*l = (struct listener){s, NULL, "KIE_OPS_ADDR", cfg->ops_addr, 0, 1};
		if (listener_start(l, HTTP_SERVER_OPS_CONNECTIONS, err, errlen) != 0)
			goto fail;
	}
	if (pthread_create(&s->reaper, NULL, reaper_main, s) != 0) {
		snprintf(err, errlen, "cannot start the HTTP deadline thread: %s", strerror(errno));
		goto fail;
	}
	s->reaper_started = 1;
	if (*cfg->http_addr)
		log_info(NULL, NULL, "callback endpoint listening on %s%s (POST %s, body at most %ld "
			 "bytes, %ld connections, %ld per address, each request answered within "
			 "%ld ms, %zu trusted proxy address(es); %s)", cfg->http_addr,
			 *cfg->http_addr == ':' ? " (every IPv4 interface)" : "",
			 cfg->callback_path, cfg->http_body_max, cfg->http_max_connections,
			 cfg->http_max_per_address, cfg->http_request_timeout_ms, s->trusted.n,
			 *cfg->webhook_hmac_key ? "signatures required" : "unsigned callbacks "
			 "accepted as unverified");
	log_info(NULL, NULL, "operator routes on %s (GET /metrics, /healthz, /readyz%s)%s",
		 ops_at, s->web ? ", /admin/" : "", *cfg->ops_addr ? "" : ": set KIE_OPS_ADDR "
		 "to a private address to keep them apart from the callback path (the "
		 "production setting)");
	return s;
fail:
	http_server_stop(s);
	return NULL;
}

void http_server_stop(struct http_server *s)
{
	if (!s)
		return;
	if (s->reaper_started) {
		pthread_mutex_lock(&s->reaper_mu);
		s->reaper_stop = 1;
		pthread_cond_signal(&s->reaper_cv);
		pthread_mutex_unlock(&s->reaper_mu);
		pthread_join(s->reaper, NULL);
	}
	for (int i = 0; i < s->nlisteners; i++)
		if (s->listeners[i].d)
			MHD_stop_daemon(s->listeners[i].d); /* waits for the requests being handled */
	callback_endpoint_free(s->cb);
	web_stop(s->web);
	metrics_http_free(s->routes);
	client_addr_counts_free(s->per_peer);
	client_addr_counts_free(s->per_client);
	pthread_cond_destroy(&s->reaper_cv);
	pthread_mutex_destroy(&s->reaper_mu);
	pthread_mutex_destroy(&s->lock);
	free(s);
}
