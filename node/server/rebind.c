/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Listeners re-bound by a reload: the hook that binds new addresses and hands them, with
 *        the addresses to close, to every worker's inbox (see rebind.h).
 */
#define _GNU_SOURCE
#include "node/server/rebind.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hdl/error.h"
#include "node/common/log.h"
#include "node/conf/conf.h"
#include "node/server/conn.h"
#include "node/server/node.h"
#include "node/server/reload.h"
#include "node/server/startup.h"
#include "node/server/worker.h"

/* What a socket serves: the stream kinds of conn.h, and UDP. */
enum { K_HANDLE = CONN_LIS_HANDLE, K_HTTP = CONN_LIS_HTTP, K_TLS = CONN_LIS_TLS, K_UDP };

/** One change for one worker: close the sockets bound to addr, or serve fd. */
typedef struct rb_op {
	uint8_t kind;
	bool add;
	int fd; /**< add: the worker's socket (owned by the op until the worker takes it) */
	struct sockaddr_storage addr;
} rb_op_t;

/** What one reload hands one worker. */
typedef struct rb_msg {
	struct rb_msg *next;
	uint64_t gen; /**< the reload it belongs to (rebind_t.gen) */
	unsigned n;
	rb_op_t op[];
} rb_msg_t;

typedef struct rb_inbox {
	rb_msg_t *head, *tail;
	uint64_t applied; /**< the last gen the worker applied */
} rb_inbox_t;

struct rebind {
	worker_t *workers;
	unsigned n_workers;
	const conf_t *boot;
	pthread_mutex_t mu; /**< the inboxes */
	pthread_cond_t cv;  /**< a worker applied a message */
	rb_inbox_t *inbox;  /**< one per worker */
	uint64_t gen;       /**< reloads that changed listeners */
	char bound[REBIND_NOTE], closed[REBIND_NOTE], site[REBIND_NOTE];
};

/** The staged change: one message per worker, built (and its sockets bound) in prepare(). */
typedef struct rb_plan {
	rb_msg_t **msgs; /**< n_workers */
	unsigned n_workers;
	char bound[REBIND_NOTE], closed[REBIND_NOTE];
} rb_plan_t;

static const char *const claimed_keys[] = {"listen", "http", "tls_listen", NULL};

/* ---- addresses ------------------------------------------------------------------------------- */

static uint16_t ss_port(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET ? ((const struct sockaddr_in *)ss)->sin_port
	                                : ((const struct sockaddr_in6 *)ss)->sin6_port;
}

static bool ss_wildcard(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
	return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

static bool ss_same_host(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
	const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;
	return memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0 &&
	       x->sin6_scope_id == y->sin6_scope_id;
}

static bool ss_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family || (a->ss_family != AF_INET && a->ss_family != AF_INET6))
		return false;
	return ss_port(a) == ss_port(b) && ss_same_host(a, b);
}

/* Would binding \p a and \p b both (without SO_REUSEPORT) clash? Same family (IPv6 sockets are
 * V6ONLY), same port, the same address or a wildcard on either side. */
static bool ss_overlap(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family || ss_port(a) != ss_port(b))
		return false;
	return ss_wildcard(a) || ss_wildcard(b) || ss_same_host(a, b);
}

bool rebind_fd_bound_to(int fd, const struct sockaddr_storage *addr)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	memset(&ss, 0, sizeof(ss));
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
		return false;
	return ss_equal(&ss, addr);
}

/* ---- the plan -------------------------------------------------------------------------------- */

/** One address of one list that changes. */
typedef struct change {
	const char *addr; /**< the string in its configuration (old or new) */
	uint8_t list;     /**< 0 listen, 1 http, 2 tls_listen */
	bool add;
	struct sockaddr_storage ss;
} change_t;

static const char *const list_names[] = {"listen", "http", "tls_listen"};

/* The lists of \p c: listen, http, tls_listen. */
static void lists_of(const conf_t *c, char **const *v[3], unsigned n[3])
{
	v[0] = &c->listen;
	n[0] = c->n_listen;
	v[1] = &c->http;
	n[1] = c->n_http;
	v[2] = &c->tls_listen;
	n[2] = c->n_tls_listen;
}

static bool in_list(const struct sockaddr_storage *ss, char *const *v, unsigned n)
{
	struct sockaddr_storage o;
	socklen_t ol;
	for (unsigned i = 0; i < n; i++) {
		if (conf_parse_addr(v[i], &o, &ol) == HDL_EOK && ss_equal(ss, &o))
			return true;
	}
	return false;
}

/*
 * Addresses of \p from (list \p li) that \p to lacks, appended to \p out as additions (\p add)
 * or removals. An address already met in the same list is skipped (a list naming it twice).
 */
static int diff_list(char *const *from, unsigned nf, char *const *to, unsigned nt, uint8_t li,
                     bool add, change_t *out, unsigned *n, char *err, size_t errlen)
{
	for (unsigned i = 0; i < nf; i++) {
		struct sockaddr_storage ss;
		socklen_t sl;
		if (conf_parse_addr(from[i], &ss, &sl) != HDL_EOK) {
			snprintf(err, errlen, "%s: %s: not ADDR:PORT", list_names[li], from[i]);
			return HDL_EINVAL;
		}
		if (in_list(&ss, to, nt) || in_list(&ss, from, i))
			continue;
		out[*n] = (change_t){.addr = from[i], .list = li, .add = add, .ss = ss};
		(*n)++;
	}
	return HDL_EOK;
}

/* Append " ADDR" to the "list ADDR ...; list ..." summary \p out for list \p li. */
static void note_add(char *out, size_t cap, uint8_t *last_li, uint8_t li, const char *addr)
{
	size_t used = strlen(out);
	if (used + 1 >= cap)
		return;
	if (*last_li != li)
		snprintf(out + used, cap - used, "%s%s %s", used ? "; " : "", list_names[li], addr);
	else
		snprintf(out + used, cap - used, " %s", addr);
	*last_li = li;
}

/* Does the running configuration \p old hold a socket of \p type that \p ss would clash with? */
static bool held_by_us(const conf_t *old, const struct sockaddr_storage *ss, int type)
{
	char **const *v[3];
	unsigned n[3];
	lists_of(old, v, n);
	for (unsigned li = 0; li < 3; li++) {
		if (type == SOCK_DGRAM && li != 0)
			continue; /* UDP: listen only */
		for (unsigned i = 0; i < n[li]; i++) {
			struct sockaddr_storage o;
			socklen_t ol;
			if (conf_parse_addr((*v[li])[i], &o, &ol) == HDL_EOK && ss_overlap(ss, &o))
				return true;
		}
	}
	return false;
}

static void msg_free(rb_msg_t *m)
{
	for (unsigned i = 0; i < m->n; i++) {
		if (m->op[i].add && m->op[i].fd >= 0)
			close(m->op[i].fd);
	}
	free(m);
}

static void plan_free(rb_plan_t *p)
{
	if (!p)
		return;
	for (unsigned i = 0; p->msgs && i < p->n_workers; i++) {
		if (p->msgs[i])
			msg_free(p->msgs[i]);
	}
	free(p->msgs);
	free(p);
}

/* The ops of change \p c (UDP and Handle TCP for a listen address) into every message at
 * \p *at; an addition binds one socket per worker. */
static int plan_change(rb_plan_t *p, const conf_t *old, const change_t *c, unsigned *at, char *err,
                       size_t errlen)
{
	static const uint8_t kinds[3][2] = {{K_UDP, K_HANDLE}, {K_HTTP, K_HTTP}, {K_TLS, K_TLS}};
	unsigned nk = c->list == 0 ? 2 : 1;
	for (unsigned k = 0; k < nk; k++) {
		uint8_t kind = kinds[c->list][k];
		int type = kind == K_UDP ? SOCK_DGRAM : SOCK_STREAM;
		if (c->add && !held_by_us(old, &c->ss, type)) {
			/* anyone else on it (another idnoded, any program): refused, and named */
			int ret = startup_addr_probe(c->addr, type, err, errlen);
			if (ret != HDL_EOK)
				return ret;
		}
		for (unsigned w = 0; w < p->n_workers; w++) {
			rb_op_t *op = &p->msgs[w]->op[*at];
			*op = (rb_op_t){.kind = kind, .add = c->add, .fd = -1, .addr = c->ss};
			p->msgs[w]->n = *at + 1;
			if (c->add && (op->fd = listen_open(c->addr, type, err, errlen)) < 0)
				return HDL_EIO;
		}
		(*at)++;
	}
	return HDL_EOK;
}

static int hook_prepare(void *arg, const conf_t *old, const conf_t *nc, void **staged, char *err,
                        size_t errlen)
{
	rebind_t *rb = arg;
	char **const *ov[3], **const *nv[3];
	unsigned on[3], nn[3], cap = 0, n = 0;
	lists_of(old, ov, on);
	lists_of(nc, nv, nn);
	for (unsigned li = 0; li < 3; li++)
		cap += on[li] + nn[li];
	if (cap == 0)
		return HDL_EOK;
	change_t *ch = calloc(cap, sizeof(*ch));
	if (!ch)
		return HDL_ENOMEM;
	int ret = HDL_EOK;
	/* removals first: a worker closes before it adds (an address moving between lists) */
	for (unsigned li = 0; ret == HDL_EOK && li < 3; li++)
		ret = diff_list(*ov[li], on[li], *nv[li], nn[li], (uint8_t)li, false, ch, &n, err,
		                errlen);
	for (unsigned li = 0; ret == HDL_EOK && li < 3; li++)
		ret = diff_list(*nv[li], nn[li], *ov[li], on[li], (uint8_t)li, true, ch, &n, err,
		                errlen);
	if (ret != HDL_EOK || n == 0) {
		free(ch);
		return ret;
	}
	/* one change in flight at most: a worker that has not applied the last one (stalled past
	 * REBIND_WAIT_MS) still holds its sockets, and its inbox stays one message deep */
	unsigned late = 0;
	pthread_mutex_lock(&rb->mu);
	for (unsigned i = 0; i < rb->n_workers; i++)
		late += rb->inbox[i].applied < rb->gen;
	pthread_mutex_unlock(&rb->mu);
	if (late) {
		free(ch);
		snprintf(
		    err, errlen,
		    "%u worker(s) have not applied the previous listener change yet; try again",
		    late);
		return HDL_EAGAIN;
	}

	rb_plan_t *p = calloc(1, sizeof(*p));
	if (p) {
		p->n_workers = rb->n_workers;
		p->msgs = calloc(rb->n_workers, sizeof(*p->msgs));
	}
	for (unsigned w = 0; p && p->msgs && w < rb->n_workers; w++) {
		/* a listen address is two ops (UDP and TCP) */
		p->msgs[w] = calloc(1, sizeof(rb_msg_t) + 2u * n * sizeof(rb_op_t));
		if (!p->msgs[w])
			break;
	}
	if (!p || !p->msgs || (rb->n_workers && !p->msgs[rb->n_workers - 1])) {
		plan_free(p);
		free(ch);
		snprintf(err, errlen, "out of memory");
		return HDL_ENOMEM;
	}
	unsigned at = 0;
	uint8_t last_b = UINT8_MAX, last_c = UINT8_MAX;
	for (unsigned i = 0; ret == HDL_EOK && i < n; i++) {
		ret = plan_change(p, old, &ch[i], &at, err, errlen);
		if (ch[i].add)
			note_add(p->bound, sizeof(p->bound), &last_b, ch[i].list, ch[i].addr);
		else
			note_add(p->closed, sizeof(p->closed), &last_c, ch[i].list, ch[i].addr);
	}
	free(ch);
	if (ret != HDL_EOK) {
		plan_free(p); /* closes what was bound */
		return ret;
	}
	*staged = p;
	return HDL_EOK;
}

/* HS_SITE keeps the start-up addresses: say so when the configuration now names others. */
static void site_note(rebind_t *rb, const conf_t *nc)
{
	const conf_t *b = rb->boot;
	const char *bl = node_site_listen(b), *nl = node_site_listen(nc);
	const char *bh = b->n_http ? b->http[0] : "off", *nh = nc->n_http ? nc->http[0] : "off";
	const char *bt = b->n_tls_listen ? b->tls_listen[0] : "off";
	const char *nt = nc->n_tls_listen ? nc->tls_listen[0] : "off";
	rb->site[0] = '\0';
	if (!bl || !nl || (strcmp(bl, nl) == 0 && strcmp(bh, nh) == 0 && strcmp(bt, nt) == 0))
		return;
	snprintf(rb->site, sizeof(rb->site),
	         "HS_SITE names listen %s, http %s, tls_listen %s (the start-up addresses, "
	         "site_serial %u) until a restart",
	         bl, bh, bt, b->site_serial);
}

/* Wait until every worker applied message \p gen (bounded); \return the workers that did not. */
static unsigned wait_applied(rebind_t *rb, uint64_t gen)
{
	struct timespec dl;
	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_sec += REBIND_WAIT_MS / 1000u;
	dl.tv_nsec += (long)(REBIND_WAIT_MS % 1000u) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	unsigned late = 0;
	pthread_mutex_lock(&rb->mu);
	for (;;) {
		late = 0;
		for (unsigned i = 0; i < rb->n_workers; i++)
			late += rb->inbox[i].applied < gen;
		if (late == 0 || pthread_cond_timedwait(&rb->cv, &rb->mu, &dl) == ETIMEDOUT)
			break;
	}
	if (late) {
		late = 0;
		for (unsigned i = 0; i < rb->n_workers; i++)
			late += rb->inbox[i].applied < gen;
	}
	pthread_mutex_unlock(&rb->mu);
	return late;
}

static void hook_commit(void *arg, const conf_t *nc, void *staged)
{
	rebind_t *rb = arg;
	rb_plan_t *p = staged;
	site_note(rb, nc);
	rb->bound[0] = rb->closed[0] = '\0';
	if (!p)
		return;
	memcpy(rb->bound, p->bound, sizeof(rb->bound));
	memcpy(rb->closed, p->closed, sizeof(rb->closed));
	uint64_t gen = ++rb->gen;
	for (unsigned i = 0; i < rb->n_workers; i++) {
		rb_msg_t *m = p->msgs[i];
		p->msgs[i] = NULL;
		m->gen = gen;
		pthread_mutex_lock(&rb->mu);
		if (rb->inbox[i].tail)
			rb->inbox[i].tail->next = m;
		else
			rb->inbox[i].head = m;
		rb->inbox[i].tail = m;
		pthread_mutex_unlock(&rb->mu);
		char r = 'r';
		if (write(rb->workers[i].notify[1], &r, 1) != 1)
			log_err("reload: cannot signal worker %u: %s", i, strerror(errno));
	}
	plan_free(p);
	unsigned late = wait_applied(rb, gen);
	if (late)
		log_warn("reload: %u worker(s) have not applied the listener change after %u ms; "
		         "they will when their event loop turns",
		         late, REBIND_WAIT_MS);
	if (rb->bound[0])
		log_notice("reload: listeners bound: %s", rb->bound);
	if (rb->closed[0])
		log_notice("reload: listeners closed (their open connections are served on): %s",
		           rb->closed);
}

static void hook_discard(void *arg, void *staged)
{
	(void)arg;
	plan_free(staged);
}

/* ---- worker side ----------------------------------------------------------------------------- */

static void apply_op(worker_t *w, rb_op_t *op)
{
	if (!op->add) {
		unsigned n = op->kind == K_UDP
		                 ? udp_sock_close(w, &op->addr)
		                 : conn_listener_close(w, (conn_lis_kind_t)op->kind, &op->addr);
		log_debug("reload: closed %u %s socket(s)", n, op->kind == K_UDP ? "udp" : "tcp");
		return;
	}
	int fd = op->fd;
	op->fd = -1; /* taken (closed by the add on failure) */
	if (w->stopping) {
		close(fd); /* draining: no new listeners */
		return;
	}
	int ret = op->kind == K_UDP ? udp_sock_add(w, fd)
	                            : conn_listener_add(w, fd, (conn_lis_kind_t)op->kind);
	if (ret != HDL_EOK)
		log_err("reload: worker %d cannot serve a new %s socket: %s", w->id,
		        op->kind == K_UDP ? "udp" : "tcp", hdl_strerror(ret));
}

void rebind_worker_run(worker_t *w)
{
	rebind_t *rb = w->rebind;
	if (!rb || w->id < 0 || (unsigned)w->id >= rb->n_workers)
		return;
	rb_inbox_t *in = &rb->inbox[w->id];
	pthread_mutex_lock(&rb->mu);
	rb_msg_t *list = in->head;
	in->head = in->tail = NULL;
	pthread_mutex_unlock(&rb->mu);
	uint64_t last = 0;
	while (list) {
		rb_msg_t *m = list;
		list = m->next;
		for (unsigned i = 0; i < m->n; i++)
			apply_op(w, &m->op[i]);
		last = m->gen;
		msg_free(m);
	}
	if (!last)
		return;
	pthread_mutex_lock(&rb->mu);
	in->applied = last;
	pthread_cond_broadcast(&rb->cv);
	pthread_mutex_unlock(&rb->mu);
}

/* ---- life cycle ------------------------------------------------------------------------------ */

int rebind_new(worker_t *workers, unsigned n_workers, const conf_t *boot, rebind_t **out)
{
	*out = NULL;
	rebind_t *rb = calloc(1, sizeof(*rb));
	if (!rb)
		return HDL_ENOMEM;
	rb->inbox = calloc(n_workers ? n_workers : 1, sizeof(*rb->inbox));
	pthread_condattr_t ca;
	bool ca_ok = pthread_condattr_init(&ca) == 0;
	if (!rb->inbox || !ca_ok || pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
	    pthread_cond_init(&rb->cv, &ca) != 0) {
		if (ca_ok)
			pthread_condattr_destroy(&ca);
		free(rb->inbox);
		free(rb);
		return HDL_ENOMEM;
	}
	pthread_condattr_destroy(&ca);
	if (pthread_mutex_init(&rb->mu, NULL) != 0) {
		pthread_cond_destroy(&rb->cv);
		free(rb->inbox);
		free(rb);
		return HDL_ENOMEM;
	}
	rb->workers = workers;
	rb->n_workers = n_workers;
	rb->boot = boot;
	*out = rb;
	return HDL_EOK;
}

int rebind_register(rebind_t *rb, reload_t *r)
{
	const reload_hook_t h = {
	    .name = "listeners",
	    .order = RELOAD_ORDER_DEFAULT,
	    .keys = claimed_keys,
	    .prepare = hook_prepare,
	    .commit = hook_commit,
	    .discard = hook_discard,
	    .arg = rb,
	};
	return reload_register(r, &h);
}

void rebind_free(rebind_t *rb)
{
	if (!rb)
		return;
	for (unsigned i = 0; i < rb->n_workers; i++) {
		while (rb->inbox[i].head) {
			rb_msg_t *m = rb->inbox[i].head;
			rb->inbox[i].head = m->next;
			msg_free(m);
		}
	}
	pthread_cond_destroy(&rb->cv);
	pthread_mutex_destroy(&rb->mu);
	free(rb->inbox);
	free(rb);
}

const char *rebind_bound(const rebind_t *rb)
{
	return rb ? rb->bound : "";
}

const char *rebind_closed(const rebind_t *rb)
{
	return rb ? rb->closed : "";
}

const char *rebind_site_note(const rebind_t *rb)
{
	return rb ? rb->site : "";
}
