/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "node/server/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hdl/error.h"
#include "node/common/log.h"
#include "node/common/sd.h"
#include "node/server/qlog.h"
#include "node/server/rebind.h"
#include "node/server/reload.h"
#include "node/server/srvadmin.h"
#include "node/server/startup.h"
#include "node/server/rrl.h"
#include "node/server/admin.h"
#include "node/server/authz.h"
#include "node/server/connlimit.h"
#include "node/server/delegate.h"
#include "node/server/obs.h"
#include "node/server/snms.h"
#include "node/server/writer.h"
#include "node/resolver/rnode.h"
#include "node/server/control.h"
#include "node/server/rest.h"
#include "node/server/tls.h"
#include "node/server/worker.h"
#include "node/store/store.h"

#define DRAIN_MAX_MS 5000u
#define DRAIN_MIN_MS 100u
#define DRAIN_POLL_MS 20u

_Thread_local worker_t *worker_self;

uint64_t worker_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- worker thread ------------------------------------------------------------------------- */

static void on_drain_poll(evutil_socket_t fd, short what, void *arg)
{
	worker_t *w = arg;
	uint64_t now = worker_now_ms();
	bool min_passed = now + DRAIN_MAX_MS >= w->drain_deadline_ms + DRAIN_MIN_MS;
	/* connections, and requests still waiting for the writer (UDP ones have no connection) */
	unsigned open = conn_count(w) + (w->pq.n_live - w->pq.n_cancelled);
	if ((open == 0 && min_passed) || now >= w->drain_deadline_ms) {
		if (open)
			log_warn("shutdown: closing %u connection(s) that did not finish", open);
		event_base_loopexit(w->base, NULL);
	}
}

static void begin_drain(worker_t *w)
{
	if (w->stopping)
		return;
	w->stopping = true;
	udp_stop(w);
	conn_drain(w); /* every request already sent on a connection is still answered */
	w->drain_deadline_ms = worker_now_ms() + DRAIN_MAX_MS;
	struct timeval tv = {0, DRAIN_POLL_MS * 1000};
	w->drain_ev = event_new(w->base, -1, EV_PERSIST, on_drain_poll, w);
	if (!w->drain_ev || event_add(w->drain_ev, &tv) != 0)
		event_base_loopexit(w->base, NULL);
}

static void on_notify(evutil_socket_t fd, short what, void *arg)
{
	worker_t *w = arg;
	char buf[16];
	ssize_t n = read(fd, buf, sizeof(buf));
	for (ssize_t i = 0; i < n; i++) {
		if (buf[i] == 'q')
			begin_drain(w);
		else if (buf[i] == 'u')
			delegate_worker_update(w); /* a reload changed the upstreams */
		else if (buf[i] == 'r')
			rebind_worker_run(w); /* a reload's listeners */
	}
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	worker_t *w = arg;
	uint64_t now = worker_now_ms();
	/* between callbacks: no pointer to reloaded state is held (reload.h) */
	reload_quiescent(w->node->reload, (unsigned)w->id);
	atomic_store_explicit(&w->alive_ms, now, memory_order_relaxed);
	udp_reasm_expire(w, now);
	if (w->id == 0 && w->node->chal)
		chal_table_expire(w->node->chal, now);
	if (w->id == 0 && w->node->rest_sessions)
		rest_sessions_expire(w->node->rest_sessions, now);
	conn_maintain(w);
	delegate_worker_update(w); /* in case the notify pipe was full */
	(void)delegate_worker_tick(w);
	obs_worker_tick(w);
	uint32_t gen = atomic_load_explicit(&w->node->limits.gen, memory_order_acquire);
	if (gen != w->limits_gen) {
		w->limits_gen = gen;
		conn_apply_limits(w);
	}
}

static void worker_cleanup(worker_t *w)
{
	conn_free_all(w);
	delegate_worker_stop(w); /* after the connections: their waiting requests are cancelled */
	http_free(w);
	udp_free(w);
	if (w->pq.ev)
		event_free(w->pq.ev); /* the queue itself outlives the thread: the writer may post */
	w->pq.ev = NULL;
	if (w->drain_ev)
		event_free(w->drain_ev);
	if (w->tick_ev)
		event_free(w->tick_ev);
	if (w->notify_ev)
		event_free(w->notify_ev);
	w->drain_ev = w->tick_ev = w->notify_ev = NULL;
	if (w->dctx.reader || w->dctx.arena.buf)
		dispatch_ctx_free(&w->dctx);
	if (w->base)
		event_base_free(w->base);
	w->base = NULL;
	free(w->out);
	w->out = NULL;
}

static int worker_setup(worker_t *w)
{
	struct event_config *cfg = event_config_new();
	if (!cfg)
		return HDL_ENOMEM;
	event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
	w->base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	if (!w->base)
		return HDL_ENOMEM;
	int ret = dispatch_ctx_init(&w->dctx, w->node);
	if (ret != HDL_EOK)
		return ret;
	obs_worker_attach(w);
	if ((ret = preq_queue_init(w, &w->pq)) != HDL_EOK)
		return ret;
	w->out = malloc(DISPATCH_OUT_CAP);
	if (!w->out)
		return HDL_ENOMEM;
	if ((ret = udp_start(w)) != HDL_EOK || (ret = http_start(w)) != HDL_EOK ||
	    (ret = conn_start(w)) != HDL_EOK || (ret = delegate_worker_start(w)) != HDL_EOK)
		return ret;
	w->limits_gen = atomic_load_explicit(&w->node->limits.gen, memory_order_acquire);
	w->notify_ev = event_new(w->base, w->notify[0], EV_READ | EV_PERSIST, on_notify, w);
	w->tick_ev = event_new(w->base, -1, EV_PERSIST, on_tick, w);
	struct timeval sec = {1, 0};
	if (!w->notify_ev || !w->tick_ev || event_add(w->notify_ev, NULL) != 0 ||
	    event_add(w->tick_ev, &sec) != 0)
		return HDL_ENOMEM;
	return HDL_EOK;
}

void *worker_main(void *arg)
{
	worker_t *w = arg;
	log_set_thread(w->id);
	worker_self = w;
	int ret = worker_setup(w);

	pthread_mutex_lock(w->start_mu);
	w->start_ret = ret;
	w->started = true;
	pthread_cond_broadcast(w->start_cv);
	pthread_mutex_unlock(w->start_mu);

	if (ret == HDL_EOK) {
		reload_quiescent(w->node->reload, (unsigned)w->id);
		atomic_store_explicit(&w->alive_ms, worker_now_ms(), memory_order_relaxed);
		event_base_dispatch(w->base);
		log_debug("worker stopped: %llu answered, %llu dropped, %llu errors",
		          (unsigned long long)w->dctx.n_requests,
		          (unsigned long long)w->dctx.n_dropped,
		          (unsigned long long)w->dctx.n_errors);
	} else {
		log_err("worker start failed: %s", hdl_strerror(ret));
	}
	worker_cleanup(w);
	reload_offline(w->node->reload, (unsigned)w->id);
	return NULL;
}

/* ---- sockets --------------------------------------------------------------------------------- */

int listen_open(const char *addr, int type, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int one = 1;
	if (conf_parse_addr(addr, &ss, &sl) != HDL_EOK) {
		snprintf(err, errlen, "%s: not ADDR:PORT", addr);
		return -1;
	}
	int fd = socket(ss.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "%s: socket: %s", addr, strerror(errno));
		return -1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
	    (type == SOCK_STREAM &&
	     setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) ||
	    (ss.ss_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0)) {
		snprintf(err, errlen, "%s: setsockopt: %s", addr, strerror(errno));
		goto fail;
	}
	if (type == SOCK_DGRAM) {
		int rcv = 4 * 1024 * 1024;
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
		/*
		 * A wildcard bind learns each request's destination address, which udp.c sends the
		 * reply from (multi-homed hosts: the client drops replies from another address).
		 */
		int r = 0;
		if (ss.ss_family == AF_INET &&
		    ((struct sockaddr_in *)&ss)->sin_addr.s_addr == htonl(INADDR_ANY))
			r = setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
		else if (ss.ss_family == AF_INET6 &&
		         IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)&ss)->sin6_addr))
			r = setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one));
		if (r != 0) {
			snprintf(err, errlen, "%s: setsockopt pktinfo: %s", addr, strerror(errno));
			goto fail;
		}
	}
	if (bind(fd, (struct sockaddr *)&ss, sl) != 0) {
		snprintf(err, errlen, "%s/%s: bind: %s", addr, type == SOCK_DGRAM ? "udp" : "tcp",
		         strerror(errno));
		goto fail;
	}
	if (type == SOCK_STREAM && listen(fd, 1024) != 0) {
		snprintf(err, errlen, "%s: listen: %s", addr, strerror(errno));
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return -1;
}

static void close_fds(int *fds, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
	}
}

static void worker_fds_free(worker_fds_t *f)
{
	if (f->udp) {
		close_fds(f->udp, f->n_udp);
		free(f->udp);
	}
	if (f->tcp) {
		close_fds(f->tcp, f->n_tcp);
		free(f->tcp);
	}
	if (f->http) {
		close_fds(f->http, f->n_http);
		free(f->http);
	}
	if (f->tls) {
		close_fds(f->tls, f->n_tls);
		free(f->tls);
	}
	memset(f, 0, sizeof(*f));
}

static int worker_fds_open(worker_fds_t *f, const conf_t *c, char *err, size_t errlen)
{
	memset(f, 0, sizeof(*f));
	f->udp = malloc(sizeof(int) * (c->n_listen + 1));
	f->tcp = malloc(sizeof(int) * (c->n_listen + 1));
	f->http = malloc(sizeof(int) * (c->n_http + 1));
	f->tls = malloc(sizeof(int) * (c->n_tls_listen + 1));
	if (!f->udp || !f->tcp || !f->http || !f->tls) {
		snprintf(err, errlen, "out of memory");
		return HDL_ENOMEM;
	}
	for (unsigned i = 0; i < c->n_listen; i++) {
		if ((f->udp[f->n_udp] = listen_open(c->listen[i], SOCK_DGRAM, err, errlen)) < 0)
			return HDL_EIO;
		f->n_udp++;
		if ((f->tcp[f->n_tcp] = listen_open(c->listen[i], SOCK_STREAM, err, errlen)) < 0)
			return HDL_EIO;
		f->n_tcp++;
	}
	for (unsigned i = 0; i < c->n_http; i++) {
		if ((f->http[f->n_http] = listen_open(c->http[i], SOCK_STREAM, err, errlen)) < 0)
			return HDL_EIO;
		f->n_http++;
	}
	for (unsigned i = 0; i < c->n_tls_listen; i++) {
		int fd = listen_open(c->tls_listen[i], SOCK_STREAM, err, errlen);
		if (fd < 0)
			return HDL_EIO;
		f->tls[f->n_tls++] = fd;
	}
	return HDL_EOK;
}

/* ---- main thread ------------------------------------------------------------------------------ */

/*
 * Node-wide connection accounting, and how many connections the descriptor limit leaves room
 * for (max_connections is clamped to it). Connection buffers map their own memory (conn.c).
 * The malloc threshold for mmap is fixed (glibc otherwise raises it as large blocks come and
 * go) above the 3 MiB that LMDB allocates for every nested write transaction: the writer opens
 * one per job (a savepoint), and an mmap + page faults + munmap for each cost ~40 % of the
 * writer's CPU under load. Blocks below it come from the heaps and are reused; the heaps keep
 * up to twice that free at their top (as glibc's own adjustment would), so that the same
 * blocks are not handed back and faulted in again for every job; conn.c trims them after a
 * burst of connection buffers (malloc_trim).
 */
static int conn_setup(node_shared_t *n, const conf_t *c, unsigned workers)
{
	if (connlimit_new(&n->conns) != HDL_EOK)
		return HDL_ENOMEM;
	(void)mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
	(void)mallopt(M_TRIM_THRESHOLD, 8 * 1024 * 1024);
	n->fd_conn_cap = UINT32_MAX;
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
		/* per worker: UDP and TCP sockets, HTTP listeners, epoll, notify pipe; then the
		 * reserve for LMDB, the writer, signals and logs */
		uint64_t fixed =
		    CONN_FD_RESERVE +
		    (uint64_t)workers * (2u * c->n_listen + c->n_http + c->n_tls_listen + 3u);
		uint64_t cap = rl.rlim_cur > fixed ? rl.rlim_cur - fixed : 1;
		n->fd_conn_cap = cap > UINT32_MAX ? UINT32_MAX : (uint32_t)cap;
		if (c->max_connections > n->fd_conn_cap)
			log_warn("max_connections %u is over what the descriptor limit (%llu) leaves room "
			         "for: at most %u connections",
			         c->max_connections, (unsigned long long)rl.rlim_cur, n->fd_conn_cap);
	}
	return HDL_EOK;
}

typedef struct server {
	const server_opts_t *opts;
	conf_t boot; /**< configuration at start (what needs a restart is compared to it) */
	node_shared_t node;
	worker_t *workers;
	unsigned n_workers;
	struct event_base *base;
	control_t *ctl; /**< the control socket (NULL: none) */
	conf_t *live;   /**< the configuration applied now: &boot, or the last reloaded one */
	struct event *housekeep_ev; /**< retired state, the systemd watchdog */
	uint64_t watchdog_usec;     /**< WATCHDOG_USEC (0: no watchdog) */
	int exit_code;
	int lock_fd; /**< the database lock (startup_db_lock), held until exit */
	node_obs_t obs; /**< counters, metrics listener, statistics (obs.h) */
	rebind_t *rebind; /**< listeners re-bound by a reload (rebind.h) */
} server_t;

static void on_term(evutil_socket_t sig, short what, void *arg)
{
	server_t *s = arg;
	log_notice("received %s, draining and stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
	sdn_stopping("draining: answering what was asked, then stopping");
	event_base_loopexit(s->base, NULL);
}

/* One line for systemd's STATUS= and `idnode status` (the addresses served now). */
static void status_line(const server_t *s, const char *what, char *out, size_t cap)
{
	const conf_t *c = s->live;
	snprintf(out, cap,
	         "%s: %llu handles, %llu homed prefixes, %u workers, listen %s%s, http %s", what,
	         (unsigned long long)store_count(s->node.store),
	         (unsigned long long)store_homed_count(s->node.store), s->n_workers, c->listen[0],
	         c->n_listen > 1 ? " (+more)" : "", c->n_http ? c->http[0] : "off");
}

/*
 * The reload hooks of the server itself (reload.h): log level and target, the live limits, the
 * resolver cache policy, the server admins, and last the homed prefixes (a store transaction).
 */
static int log_target_of(const conf_t *c)
{
	const char *t = c->log_target ? c->log_target : "auto";
	if (strcmp(t, "journal") == 0)
		return LOG_TARGET_JOURNAL;
	if (strcmp(t, "auto") == 0 && sdn_stderr_is_journal())
		return LOG_TARGET_JOURNAL;
	return LOG_TARGET_STDERR;
}

static void hook_log_commit(void *arg, const conf_t *nc, void *staged)
{
	log_set_level(nc->log_level);
	log_set_target(log_target_of(nc));
}

static void hook_limits_commit(void *arg, const conf_t *nc, void *staged)
{
	server_t *s = arg;
	node_limits_apply(&s->node.limits, nc);
	rnode_apply(&s->node, nc);
}

typedef struct admins_staged {
	srvadmin_set_t *node, *writer;
} admins_staged_t;

static int hook_admins_prepare(void *arg, const conf_t *old, const conf_t *nc, void **staged,
                               char *err, size_t errlen)
{
	admins_staged_t *a = calloc(1, sizeof(*a));
	if (!a)
		return HDL_ENOMEM;
	int ret = srvadmin_set_new((const char *const *)nc->server_admin, nc->n_server_admin,
	                           &a->node, err, errlen);
	if (ret == HDL_EOK)
		ret = srvadmin_set_new((const char *const *)nc->server_admin, nc->n_server_admin,
		                       &a->writer, err, errlen);
	if (ret != HDL_EOK) {
		srvadmin_set_free(a->node);
		free(a);
		return ret;
	}
	*staged = a;
	return HDL_EOK;
}

static void hook_admins_commit(void *arg, const conf_t *nc, void *staged)
{
	server_t *s = arg;
	admins_staged_t *a = staged;
	srvadmin_set_t *old = atomic_exchange(&s->node.admins, a->node);
	reload_retire(s->node.reload, old, srvadmin_set_free);
	writer_set_admins(s->node.writer, a->writer);
	free(a);
}

static void hook_admins_discard(void *arg, void *staged)
{
	admins_staged_t *a = staged;
	srvadmin_set_free(a->node);
	srvadmin_set_free(a->writer);
	free(a);
}

static int hook_home_prepare(void *arg, const conf_t *old, const conf_t *nc, void **staged,
                             char *err, size_t errlen)
{
	server_t *s = arg;
	return startup_home_sync(s->node.store, nc, "reload", err, errlen);
}

/* TLS: the certificate, key and context settings (tls.h); a file that does not load refuses
 * the whole reload, and the running certificate stays. */
static int hook_tls_prepare(void *arg, const conf_t *old, const conf_t *nc, void **staged,
                            char *err, size_t errlen)
{
	server_t *s = arg;
	(void)old;
	if (!s->node.tls)
		return HDL_EOK;
	return tls_server_stage(nc, staged, err, errlen);
}

static void hook_tls_commit(void *arg, const conf_t *nc, void *staged)
{
	server_t *s = arg;
	if (staged)
		tls_server_swap(s->node.tls, staged, nc);
}

static void hook_tls_discard(void *arg, void *staged)
{
	(void)arg;
	tls_server_staged_free(staged);
}

/* Upstreams and forward rules (delegate.h): built here, handed to every worker through its
 * notify pipe; a file that does not load refuses the whole reload. */
static int hook_upstream_prepare(void *arg, const conf_t *old, const conf_t *nc, void **staged,
                                 char *err, size_t errlen)
{
	server_t *s = arg;
	(void)old;
	return delegate_stage(&s->node, nc, staged, err, errlen);
}

static void hook_upstream_commit(void *arg, const conf_t *nc, void *staged)
{
	server_t *s = arg;
	(void)nc;
	if (!delegate_commit(&s->node, staged))
		return;
	for (unsigned i = 0; i < s->n_workers && s->workers; i++) {
		char u = 'u';
		/* a full pipe is fine: the worker's tick looks too */
		if (s->workers[i].notify[1] >= 0 && write(s->workers[i].notify[1], &u, 1) != 1)
			log_debug("reload: worker %u not told of the new upstreams: %s", i,
			          strerror(errno));
	}
}

static void hook_upstream_discard(void *arg, void *staged)
{
	(void)arg;
	delegate_staged_free(staged);
}

/* the keys the upstream hook applies (the schema marks them reloadable too) */
static const char *const upstream_keys[] = {"upstream",
                                            "forward",
                                            "dns_server",
                                            "dns_cache_size",
                                            "upstream_timeout_ms",
                                            "upstream_try_timeout_ms",
                                            "upstream_connect_timeout_ms",
                                            "upstream_idle_timeout_ms",
                                            "upstream_max_conns_per_server",
                                            "upstream_max_conns",
                                            "upstream_max_queries",
                                            "upstream_max_servers",
                                            "upstream_max_reply",
                                            "upstream_fail_threshold",
                                            "upstream_backoff_max_ms",
                                            "upstream_udp_retry_ms",
                                            "resolver_stale_budget_ms",
                                            "resolver_stale_refresh_ms",
                                            "resolver_hold_slots",
                                            "resolver_max_referrals",
                                            "resolver_max_recursion",
                                            "resolver_site_plaintext",
                                            NULL};

static int server_hooks(server_t *s)
{
	const reload_hook_t hooks[] = {
	    {.name = "log", .order = RELOAD_ORDER_FIRST, .commit = hook_log_commit, .arg = s},
	    {.name = "limits",
	     .order = RELOAD_ORDER_DEFAULT,
	     .commit = hook_limits_commit,
	     .arg = s},
	    {.name = "server admins",
	     .order = RELOAD_ORDER_DEFAULT,
	     .prepare = hook_admins_prepare,
	     .commit = hook_admins_commit,
	     .discard = hook_admins_discard,
	     .arg = s},
	    {.name = "tls",
	     .order = RELOAD_ORDER_DEFAULT,
	     .prepare = hook_tls_prepare,
	     .commit = hook_tls_commit,
	     .discard = hook_tls_discard,
	     .arg = s},
	    {.name = "upstreams",
	     .order = RELOAD_ORDER_DEFAULT,
	     .keys = upstream_keys,
	     .prepare = hook_upstream_prepare,
	     .commit = hook_upstream_commit,
	     .discard = hook_upstream_discard,
	     .arg = s},
	    {.name = "homed prefixes",
	     .order = RELOAD_ORDER_LAST,
	     .prepare = hook_home_prepare,
	     .arg = s},
	};
	int ret = HDL_EOK;
	for (size_t i = 0; ret == HDL_EOK && i < sizeof(hooks) / sizeof(hooks[0]); i++)
		ret = reload_register(s->node.reload, &hooks[i]);
	if (ret == HDL_EOK)
		ret = qlog_register_reload(s->node.reload);
	return ret;
}

/*
 * Reload the configuration file as a whole (SIGHUP, the control socket's `reload`): the new
 * one applies entirely or, when it does not parse or a hook refuses it, not at all.
 * \retval HDL_EOK (res says what needs a restart), or an error (res->error says why)
 */
static int server_reload(server_t *s, reload_result_t *res)
{
	char err[512], st[320];
	memset(res, 0, sizeof(*res));
	if (!s->opts->conf_path) {
		snprintf(res->error, sizeof(res->error), "no configuration file (-c) to reload");
		log_notice("reload: %s", res->error);
		return HDL_EINVAL;
	}
	sdn_reloading();
	conf_t *nc = calloc(1, sizeof(*nc));
	int ret = HDL_ENOMEM;
	snprintf(res->error, sizeof(res->error), "out of memory");
	if (nc) {
		ret = conf_build(nc, s->opts->conf_path, s->opts->ov, s->opts->n_ov, err,
		                 sizeof(err));
		if (ret != HDL_EOK) {
			/* conf_build freed what it built */
			snprintf(res->error, sizeof(res->error), "%s", err);
		} else if ((ret = reload_apply(s->node.reload, &s->boot, s->live, nc, res)) !=
		           HDL_EOK) {
			conf_free(nc);
		}
	}
	if (ret != HDL_EOK) {
		log_err("reload failed, keeping the running configuration: %s", res->error);
		free(nc);
		snprintf(st, sizeof(st),
		         "reload failed (%.200s); running on the previous configuration",
		         res->error);
		sdn_ready(st);
		return ret;
	}
	if (s->live != &s->boot) {
		conf_free(s->live);
		free(s->live);
	}
	s->live = nc;
	if (res->listen[0]) /* none while the listener hook claims the keys (rebind.h) */
		log_warn("reload: listeners not re-bound: %s", res->listen);
	if (rebind_site_note(s->rebind)[0])
		log_warn("reload: %s", rebind_site_note(s->rebind));
	if (res->restart[0])
		log_warn("reload: changed keys need a restart to take effect: %s", res->restart);
	log_notice("configuration reloaded (log level, limits, server admins, query log, TLS, "
	           "upstreams, SNMS users, homed prefixes: %llu; %u hooks)",
	           (unsigned long long)store_homed_count(s->node.store), res->hooks);
	rrl_log_stats(s->node.rrl, "reload");
	status_line(s, res->restart[0] ? "reloaded, restart pending" : "reloaded", st, sizeof(st));
	sdn_ready(st);
	return HDL_EOK;
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
	reload_result_t res;
	(void)server_reload(arg, &res);
}

/* The control socket's `reload`: OK with what needs a restart, or ERR with the reason. */
static int cmd_reload(void *arg, const char *args, control_out_t *out)
{
	reload_result_t res;
	if (args[0])
		return control_fail(out, "reload takes no arguments");
	if (server_reload(arg, &res) != HDL_EOK)
		return control_fail(out, "%s", res.error);
	control_printf(out, "reloaded %s\n", ((server_t *)arg)->opts->conf_path);
	if (res.restart[0])
		control_printf(out, "restart_needed %s\n", res.restart);
	if (res.listen[0])
		control_printf(out, "listeners_not_rebound %s\n", res.listen);
	rebind_t *rb = ((server_t *)arg)->rebind;
	if (rebind_bound(rb)[0])
		control_printf(out, "listeners_bound %s\n", rebind_bound(rb));
	if (rebind_closed(rb)[0])
		control_printf(out, "listeners_closed %s\n", rebind_closed(rb));
	if (rebind_site_note(rb)[0])
		control_printf(out, "site_unchanged %s\n", rebind_site_note(rb));
	return 0;
}

/*
 * Main-thread housekeeping (1 s, or half the watchdog interval): free what reloads retired once
 * the workers are past it, and tell systemd we are alive, but only while every worker's event
 * loop still turns (each one stamps alive_ms once a second).
 */
static void on_housekeep(evutil_socket_t fd, short what, void *arg)
{
	server_t *s = arg;
	(void)reload_reclaim(s->node.reload);
	if (!s->watchdog_usec)
		return;
	uint64_t now = worker_now_ms();
	int stalled = worker_stalled(s->workers, s->n_workers, now, s->watchdog_usec / 1000u);
	if (stalled >= 0) {
		uint64_t seen =
		    atomic_load_explicit(&s->workers[stalled].alive_ms, memory_order_relaxed);
		log_err(
		    "watchdog: worker %d has not turned its event loop for %llu ms; not telling "
		    "systemd we are alive",
		    stalled, (unsigned long long)(now - seen));
		return;
	}
	sdn_watchdog();
}

int worker_stalled(const worker_t *w, unsigned n, uint64_t now_ms, uint64_t limit_ms)
{
	if (limit_ms < WORKER_STALL_MIN_MS)
		limit_ms = WORKER_STALL_MIN_MS; /* workers stamp once a second */
	for (unsigned i = 0; i < n; i++) {
		uint64_t seen = atomic_load_explicit(&w[i].alive_ms, memory_order_relaxed);
		if (now_ms > seen && now_ms - seen > limit_ms)
			return (int)i;
	}
	return -1;
}

static int write_pidfile(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return HDL_EIO;
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	bool ok = write(fd, buf, (size_t)n) == n;
	close(fd);
	return ok ? HDL_EOK : HDL_EIO;
}

static int store_setup(server_t *s, char *err, size_t errlen)
{
	const conf_t *c = &s->boot;
	store_opts_t so = {
		.path = c->db,
		.map_size = c->map_size,
		.max_readers = s->n_workers + 64,
		.case_sensitive = c->case_sensitive,
		.txlog = true,
	};
	int ret = store_open(&so, &s->node.store);
	if (ret != HDL_EOK) {
		snprintf(err, errlen, "db %s: cannot open store: %s", c->db,
		         store_strerror(NULL, ret));
		return ret;
	}
	ret = node_site_build(&s->node, c, (uint32_t)time(NULL));
	if (ret != HDL_EOK) {
		snprintf(err, errlen, "cannot build HS_SITE: %s", hdl_strerror(ret));
		return ret;
	}
	store_batch_t *b = NULL;
	ret = store_batch_begin(s->node.store, &b);
	if (ret == HDL_EOK)
		ret = store_batch_meta_put(b, "site",
		                           (hdl_slice_t){s->node.site, (uint32_t)s->node.site_len});
	if (ret == HDL_EOK)
		ret = store_batch_commit(b);
	else if (b)
		store_batch_abort(b);
	if (ret != HDL_EOK) {
		snprintf(err, errlen, "db %s: cannot record the site: %s", c->db,
		         store_strerror(s->node.store, ret));
		return ret;
	}
	char why[400];
	ret = startup_home_sync(s->node.store, c, "start", why, sizeof(why));
	if (ret != HDL_EOK) {
		snprintf(err, errlen, "db %s: %s", c->db, why);
		return ret;
	}
	(void)startup_report_store(s->node.store, c->db);
	return HDL_EOK;
}

/*
 * Administration: the writer thread (writer.h), the table of challenges waiting for their
 * answers and the configured server admins (admin.c).
 */
static int admin_setup(server_t *s, char *err, size_t errlen)
{
	const conf_t *c = &s->boot;
	node_shared_t *n = &s->node;
	int ret = chal_table_new(c->auth_pending_max, c->auth_pending_bytes, &n->chal);
	if (ret == HDL_EOK) {
		srvadmin_set_t *set = NULL;
		char why[256];
		ret = srvadmin_set_new((const char *const *)c->server_admin, c->n_server_admin,
		                       &set, why, sizeof(why));
		atomic_store(&n->admins, set);
	}
	if (ret == HDL_EOK) {
		writer_opts_t wo;
		writer_opts_from_conf(c, &wo);
		ret = writer_start(n->store, &wo, &n->writer);
	}
	if (ret != HDL_EOK) {
		snprintf(err, errlen, "cannot set up the write path: %s", hdl_strerror(ret));
		return ret;
	}
	ret = rest_sessions_new(c->rest_sessions_max, &n->rest_sessions);
	if (ret != HDL_EOK) {
		snprintf(err, errlen, "cannot set up the REST sessions: %s", hdl_strerror(ret));
		return ret;
	}
	return snms_new(c, &n->snms, err, errlen);
}

/* TLS: the contexts from tls_cert / tls_key (tls.h); port unification on the http ports. */
static int tls_setup(server_t *s, char *err, size_t errlen)
{
	const conf_t *c = &s->boot;
	int ret = tls_server_new(c, &s->node.tls, err, errlen);
	if (ret != HDL_EOK)
		return ret;
	s->node.http_tls = c->http_tls;
	if (tls_server_on(s->node.tls))
		log_info("TLS: certificate %s; HTTPS on the http ports%s%s", c->tls_cert,
		         c->http_tls ? "" : " off (http_tls = no)",
		         c->n_tls_listen ? ", TLS stream on tls_listen" : "");
	return HDL_EOK;
}

int server_check(const server_opts_t *o, char *err, size_t errlen)
{
	conf_t c;
	if (conf_build(&c, o->conf_path, o->ov, o->n_ov, err, errlen) != HDL_EOK)
		return 1;
	conf_free(&c);
	return 0;
}

static unsigned cpu_count(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

static void stop_workers(server_t *s, unsigned n_started)
{
	for (unsigned i = 0; i < n_started; i++) {
		char q = 'q';
		if (write(s->workers[i].notify[1], &q, 1) != 1)
			log_err("cannot signal worker %u: %s", i, strerror(errno));
	}
	for (unsigned i = 0; i < n_started; i++)
		pthread_join(s->workers[i].thread, NULL);
}

int server_run(const server_opts_t *o)
{
	server_t s;
	char err[512];
	pthread_mutex_t start_mu = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t start_cv = PTHREAD_COND_INITIALIZER;
	unsigned n_started = 0;
	struct event *ev_term = NULL, *ev_int = NULL, *ev_hup = NULL;
	bool pidfile = false;

	memset(&s, 0, sizeof(s));
	s.opts = o;
	s.exit_code = 1;
	s.lock_fd = -1;
	log_set_thread(-1);
	if (conf_build(&s.boot, o->conf_path, o->ov, o->n_ov, err, sizeof(err)) != HDL_EOK) {
		log_err("configuration: %s", err);
		return 1;
	}
	s.live = &s.boot;
	log_set_level(s.boot.log_level);
	log_set_target(log_target_of(&s.boot));
	signal(SIGPIPE, SIG_IGN);
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max; /* connections need descriptors */
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	s.n_workers = s.boot.workers ? s.boot.workers : cpu_count();
	node_limits_apply(&s.node.limits, &s.boot);
	if (reload_new(s.n_workers, &s.node.reload) != HDL_EOK || server_hooks(&s) != HDL_EOK) {
		log_err("out of memory");
		goto out;
	}
	if (qlog_start(&s.boot, err, sizeof(err)) != HDL_EOK) {
		log_err("%s", err);
		goto out;
	}
	if (conn_setup(&s.node, &s.boot, s.n_workers) != HDL_EOK) {
		log_err("out of memory");
		goto out;
	}

	/* one node per database and per address: refuse what another process already holds */
	bool fresh = false;
	if (startup_db_check(s.boot.db, &fresh, err, sizeof(err)) != HDL_EOK ||
	    startup_db_lock(s.boot.db, &s.lock_fd, err, sizeof(err)) != HDL_EOK ||
	    startup_ports_check(&s.boot, err, sizeof(err)) != HDL_EOK) {
		log_err("%s", err);
		goto out;
	}
	if (fresh)
		log_notice("db %s holds no store yet: creating an empty one (load handles with "
		           "`idnode import --db %s FILE`)",
		           s.boot.db, s.boot.db);
	if (store_setup(&s, err, sizeof(err)) != HDL_EOK) {
		log_err("%s", err);
		goto out;
	}
	if (admin_setup(&s, err, sizeof(err)) != HDL_EOK) {
		log_err("%s", err);
		goto out;
	}
	/* the SNMS users' reload hook, once the SNMS state exists */
	if (snms_register_reload(s.node.snms, s.node.reload) != HDL_EOK) {
		log_err("cannot register the SNMS users' reload hook");
		goto out;
	}
	if (tls_setup(&s, err, sizeof(err)) != HDL_EOK) {
		log_err("%s", err);
		goto out;
	}
	if (rrl_new_from_conf(&s.boot, s.n_workers, &s.node.rrl) != HDL_EOK) {
		log_err("udp_rrl: cannot set up the rate-limit table");
		goto out;
	}
	if (rnode_setup(&s.node, &s.boot) != HDL_EOK) {
		log_err("cannot create the resolver cache: out of memory");
		goto out;
	}
	if (delegate_node_setup(&s.node, &s.boot, err, sizeof(err)) != HDL_EOK) {
		log_err("resolution path: %s", err);
		goto out;
	}
	s.workers = calloc(s.n_workers, sizeof(*s.workers));
	if (!s.workers) {
		log_err("out of memory");
		goto out;
	}
	for (unsigned i = 0; i < s.n_workers; i++) {
		worker_t *w = &s.workers[i];
		w->id = (int)i;
		w->node = &s.node;
		w->notify[0] = w->notify[1] = -1;
		w->pq.efd = -1;
		w->start_mu = &start_mu;
		w->start_cv = &start_cv;
	}
	if (rebind_new(s.workers, s.n_workers, &s.boot, &s.rebind) != HDL_EOK ||
	    rebind_register(s.rebind, s.node.reload) != HDL_EOK) {
		log_err("out of memory");
		goto out;
	}
	for (unsigned i = 0; i < s.n_workers; i++) {
		worker_t *w = &s.workers[i];
		w->rebind = s.rebind;
		if (pipe2(w->notify, O_CLOEXEC | O_NONBLOCK) != 0) {
			log_err("pipe: %s", strerror(errno));
			goto out;
		}
		if (worker_fds_open(&w->fds, &s.boot, err, sizeof(err)) != HDL_EOK) {
			log_err("%s", err);
			goto out;
		}
	}
	if (obs_server_setup(&s.obs, &s.node, s.workers, s.n_workers, &s.boot, err, sizeof(err)) !=
	    HDL_EOK) {
		log_err("%s", err);
		goto out;
	}

	/* workers never see the process signals: the main thread owns them */
	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	for (unsigned i = 0; i < s.n_workers; i++) {
		if (pthread_create(&s.workers[i].thread, NULL, worker_main, &s.workers[i]) != 0) {
			log_err("cannot start worker %u", i);
			break;
		}
		n_started++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	bool ok = n_started == s.n_workers;
	pthread_mutex_lock(&start_mu);
	for (unsigned i = 0; i < n_started; i++) {
		while (!s.workers[i].started)
			pthread_cond_wait(&start_cv, &start_mu);
		if (s.workers[i].start_ret != HDL_EOK)
			ok = false;
	}
	pthread_mutex_unlock(&start_mu);
	if (!ok)
		goto out;

	s.base = event_base_new();
	if (!s.base)
		goto out;
	ev_term = evsignal_new(s.base, SIGTERM, on_term, &s);
	ev_int = evsignal_new(s.base, SIGINT, on_term, &s);
	ev_hup = evsignal_new(s.base, SIGHUP, on_hup, &s);
	if (!ev_term || !ev_int || !ev_hup || evsignal_add(ev_term, NULL) != 0 ||
	    evsignal_add(ev_int, NULL) != 0 || evsignal_add(ev_hup, NULL) != 0) {
		log_err("cannot install signal handlers");
		goto out;
	}
	if (control_node_start(s.base, &s.boot, &s.node, s.n_workers, &s.ctl, err, sizeof(err)) !=
	    HDL_EOK) {
		log_err("%s", err);
		goto out;
	}
	if (obs_server_start(&s.obs, s.base) != HDL_EOK) {
		log_err("cannot start the metrics listener or the statistics timer");
		goto out;
	}
	if (s.ctl && control_register(s.ctl, "reload", "reload", cmd_reload, &s) != HDL_EOK) {
		log_err("control socket: cannot register reload");
		goto out;
	}
	s.watchdog_usec = sdn_watchdog_usec();
	{
		uint64_t us = s.watchdog_usec ? s.watchdog_usec / 2 : 1000000u;
		if (us > 1000000u)
			us = 1000000u;
		if (us < 10000u)
			us = 10000u;
		struct timeval tv = {(time_t)(us / 1000000u), (suseconds_t)(us % 1000000u)};
		s.housekeep_ev = event_new(s.base, -1, EV_PERSIST, on_housekeep, &s);
		if (!s.housekeep_ev || event_add(s.housekeep_ev, &tv) != 0) {
			log_err("out of memory");
			goto out;
		}
		if (s.watchdog_usec)
			log_notice("systemd watchdog: every %llu ms",
			           (unsigned long long)us / 1000u);
	}
	if (s.boot.pidfile && s.boot.pidfile[0]) {
		if (write_pidfile(s.boot.pidfile) != HDL_EOK) {
			log_err("pidfile %s: %s", s.boot.pidfile, strerror(errno));
			goto out;
		}
		pidfile = true;
	}
	log_notice("idnoded ready: %u worker(s), listen %s%s, http %s%s, tls %s, db %s, %llu homed "
	           "prefix(es), %llu handles",
	           s.n_workers, s.boot.listen[0], s.boot.n_listen > 1 ? " (+more)" : "",
	           s.boot.n_http ? s.boot.http[0] : "off",
	           s.boot.n_http && s.node.http_tls && tls_server_on(s.node.tls) ? " (+https)" : "",
	           s.boot.n_tls_listen ? s.boot.tls_listen[0] : "off", s.boot.db,
	           (unsigned long long)store_homed_count(s.node.store),
	           (unsigned long long)store_count(s.node.store));
	{
		char st[320];
		status_line(&s, "serving", st, sizeof(st));
		sdn_ready(st);
	}
	event_base_dispatch(s.base);
	s.exit_code = 0;
out:
	if (s.exit_code != 0)
		sdn_stopping("start-up failed");
	obs_server_stop(&s.obs);
	stop_workers(&s, n_started);
	qlog_stop();
	/* the writer finishes what was queued; answers for stopped workers are dropped below */
	if (s.node.writer) {
		writer_stats_t ws;
		writer_stats(s.node.writer, &ws);
		log_info(
		    "writer (shutdown): %llu job(s) in %llu batch(es), %.1f per batch on average, "
		    "at most %u; %llu applied, %llu refused, %llu failed, %llu refused as busy",
		    (unsigned long long)ws.jobs, (unsigned long long)ws.batches,
		    ws.batches ? (double)ws.jobs / (double)ws.batches : 0.0, ws.max_batch,
		    (unsigned long long)ws.applied, (unsigned long long)ws.refused,
		    (unsigned long long)ws.failed, (unsigned long long)ws.rejected);
		writer_stop(s.node.writer);
	}
	s.node.writer = NULL;
	obs_server_finish(&s.obs); /* the last statistics, with every audit entry committed */
	if (s.workers) {
		for (unsigned i = 0; i < s.n_workers; i++) {
			preq_queue_free(&s.workers[i].pq);
			worker_fds_free(&s.workers[i].fds);
			if (s.workers[i].notify[0] >= 0)
				close(s.workers[i].notify[0]);
			if (s.workers[i].notify[1] >= 0)
				close(s.workers[i].notify[1]);
		}
		free(s.workers);
	}
	if (ev_term)
		event_free(ev_term);
	if (ev_int)
		event_free(ev_int);
	if (ev_hup)
		event_free(ev_hup);
	if (s.housekeep_ev)
		event_free(s.housekeep_ev);
	control_close(s.ctl);
	delegate_node_free(&s.node);
	rnode_free(&s.node);
	if (s.base)
		event_base_free(s.base);
	if (pidfile)
		unlink(s.boot.pidfile);
	if (s.node.store)
		store_close(s.node.store);
	if (s.node.rrl && s.exit_code == 0)
		rrl_log_stats(s.node.rrl, "shutdown");
	rrl_free(s.node.rrl);
	s.node.rrl = NULL;
	connlimit_free(s.node.conns);
	chal_table_free(s.node.chal);
	s.node.chal = NULL;
	rest_sessions_free(s.node.rest_sessions);
	s.node.rest_sessions = NULL;
	tls_server_free(s.node.tls);
	s.node.tls = NULL;
	snms_free(s.node.snms);
	s.node.snms = NULL;
	srvadmin_set_free(atomic_exchange(&s.node.admins, NULL));
	rebind_free(s.rebind); /* the workers are stopped: sockets no worker took are closed */
	reload_free(s.node.reload); /* the workers are stopped: what they retired goes now */
	s.node.reload = NULL;
	node_site_free(&s.node);
	if (s.lock_fd >= 0)
		close(s.lock_fd); /* releases the database lock */
	if (s.exit_code == 0)
		log_notice("idnoded stopped");
	if (s.live && s.live != &s.boot) {
		conf_free(s.live);
		free(s.live);
	}
	conf_free(&s.boot);
	return s.exit_code;
}
