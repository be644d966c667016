/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief The resolution path wired into the workers (delegate.h): the engine's ops on the
 *        worker's event base and upstream pool, requests suspended in preq_t and answered
 *        through their transport, and the reload of the upstream configuration (a new engine
 *        and pool per worker; the old ones drain: docs/operations.md "Reload").
 */
#include "node/server/delegate.h"

#include <errno.h>
#include <stdatomic.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "hdl/error.h"
#include "node/common/log.h"
#include "node/conf/conf.h"
#include "node/resolver/dns.h"
#include "node/resolver/resolve.h"
#include "node/resolver/upconf.h"
#include "node/resolver/upstream.h"
#include "node/server/obs.h"
#include "node/server/preq.h"
#include "node/server/reload.h"
#include "node/server/worker.h"
#include "proto/wire.h"

#define DREQ_ARENA_FIRST 512u
#define DREQ_ARENA_LIMIT (1u * 1024u * 1024u)

#define DRAIN_MARGIN_MS 2000u /* an old engine outlives its resolution timeout by this much */

/*
 * One generation of the resolution settings, built from one configuration (at start, or by a
 * reload's prepare): the upstream set, the stale-refresh holds and what every engine is made
 * with. Read-only once built; each worker engine made from it holds a reference, and so does
 * the node while it is the current one. The last reference frees it (any thread).
 */
typedef struct deleg_gen {
	_Atomic unsigned refs;
	ups_set_t *set;
	res_hold_t *hold;
	res_shared_t sh;
	res_conf_t rc;
	ups_limits_t lim;
	dns_conf_t dc;
	char **dns; /* the dns_server strings dc points to (copies: the configuration goes) */
	unsigned n_dns;
	unsigned n_upstream, n_forward;
} deleg_gen_t;

/* Node-wide: the current generation; workers move to a new one when seq changes. */
typedef struct delegate_node {
	deleg_gen_t *_Atomic cur; /* NULL: no upstream or forward line (not homed: RC 301) */
	_Atomic uint32_t seq;     /* bumped by every commit */
	bool case_sensitive;      /* the store's rule, fixed at start */
} delegate_node_t;

/* Per worker: one engine on one generation. */
typedef struct delegate_worker {
	worker_t *w;
	deleg_gen_t *gen; /* one reference */
	res_engine_t *e;
	ups_pool_t *pool;
	struct dns *dns;
	struct event *tev; /* the engine's timer */
	struct event *wev; /* posted work from other workers */
	int efd;
	unsigned waiting;             /* dreqs pointing here (the engine may still answer) */
	unsigned drained;             /* retired: the waiting requests answered since */
	bool retired;                 /* a reload replaced it: it drains */
	uint64_t drain_deadline_ms;   /* retired: freed once nothing waits, or then */
	struct delegate_worker *next; /* the worker's retired engines */
} delegate_worker_t;

/* A suspended resolution (in its preq's arena). */
typedef struct dreq {
	res_client_t c;
	delegate_worker_t *dw; /* the engine it waits on; NULL once answered or cancelled */
	preq_t *p;
	hdl_slice_t handle; /* as the client wrote it (the reply carries it back) */
} dreq_t;

/* ---- generations ----------------------------------------------------------------------------- */

static void gen_free(deleg_gen_t *g)
{
	if (!g)
		return;
	ups_set_free(g->set);
	res_hold_free(g->hold);
	for (unsigned i = 0; i < g->n_dns; i++)
		free(g->dns[i]);
	free(g->dns);
	free(g);
}

static deleg_gen_t *gen_ref(deleg_gen_t *g)
{
	atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
	return g;
}

static void gen_unref(void *p)
{
	deleg_gen_t *g = p;
	if (g && atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) == 1)
		gen_free(g);
}

/* The generation of \p c (NULL in *out when it has no upstream or forward line). */
static int gen_build(const node_shared_t *n, const conf_t *c, bool case_sensitive,
                     deleg_gen_t **out, char *err, size_t errlen)
{
	*out = NULL;
	if (c->n_upstream == 0 && c->n_forward == 0)
		return HDL_EOK;
	if (!n->dcache || !n->dflight) {
		snprintf(err, errlen, "the resolver cache is not set up");
		return HDL_EINVAL;
	}
	deleg_gen_t *g = calloc(1, sizeof(*g));
	if (!g) {
		snprintf(err, errlen, "out of memory");
		return HDL_ENOMEM;
	}
	atomic_init(&g->refs, 1);
	int ret = ups_set_build(c, &g->set, err, errlen);
	if (ret == HDL_EOK && (ret = res_hold_new(c->resolver_hold_slots, &g->hold)) != HDL_EOK)
		snprintf(err, errlen, "out of memory");
	if (ret == HDL_EOK && c->n_dns_server) {
		g->dns = calloc(c->n_dns_server, sizeof(*g->dns));
		for (unsigned i = 0; g->dns && i < c->n_dns_server; i++) {
			if (!(g->dns[i] = strdup(c->dns_server[i])))
				break;
			g->n_dns++;
		}
		if (g->n_dns != c->n_dns_server) {
			snprintf(err, errlen, "out of memory");
			ret = HDL_ENOMEM;
		}
	}
	if (ret != HDL_EOK) {
		gen_free(g);
		return ret;
	}
	res_conf_default(&g->rc);
	g->rc.timeout_ms = c->upstream_timeout_ms;
	g->rc.try_timeout_ms = c->upstream_try_timeout_ms;
	g->rc.stale_budget_ms = c->resolver_stale_budget_ms;
	g->rc.stale_hold_ms = c->resolver_stale_refresh_ms;
	g->rc.max_referrals = c->resolver_max_referrals;
	g->rc.max_recursion = c->resolver_max_recursion;
	g->rc.max_jobs = c->upstream_max_queries;
	g->rc.site_plaintext = c->resolver_site_plaintext;
	g->rc.case_sensitive = case_sensitive;
	ups_conf_limits(c, &g->lim);
	ups_conf_dns(c, &g->dc);
	g->dc.servers = (const char *const *)g->dns;
	g->sh = (res_shared_t){g->set, n->dcache, n->dflight, g->hold};
	g->n_upstream = c->n_upstream;
	g->n_forward = c->n_forward;
	*out = g;
	return HDL_EOK;
}

/* ---- node ------------------------------------------------------------------------------------ */

int delegate_node_setup(node_shared_t *n, const conf_t *c, char *err, size_t errlen)
{
	n->deleg = NULL;
	if (!n->dcache || !n->dflight) {
		if (c->n_upstream == 0 && c->n_forward == 0)
			return HDL_EOK;
		snprintf(err, errlen, "the resolver cache is not set up");
		return HDL_EINVAL;
	}
	delegate_node_t *d = calloc(1, sizeof(*d));
	if (!d) {
		snprintf(err, errlen, "out of memory");
		return HDL_ENOMEM;
	}
	d->case_sensitive = c->case_sensitive;
	deleg_gen_t *g = NULL;
	int ret = gen_build(n, c, d->case_sensitive, &g, err, errlen);
	if (ret != HDL_EOK) {
		free(d);
		return ret;
	}
	atomic_init(&d->cur, g);
	atomic_init(&d->seq, 0);
	n->deleg = d;
	if (g)
		log_info("resolution path: %u upstream(s), %u forward rule(s), stale budget %u ms",
		         c->n_upstream, c->n_forward, c->resolver_stale_budget_ms);
	return HDL_EOK;
}

void delegate_node_free(node_shared_t *n)
{
	delegate_node_t *d = n->deleg;
	if (!d)
		return;
	gen_unref(atomic_exchange(&d->cur, NULL));
	free(d);
	n->deleg = NULL;
}

/* What a reload's prepare built: the next generation (NULL in g: no resolution path). */
typedef struct deleg_staged {
	deleg_gen_t *g;
} deleg_staged_t;

int delegate_stage(node_shared_t *n, const conf_t *nc, void **staged, char *err, size_t errlen)
{
	delegate_node_t *d = n->deleg;
	*staged = NULL;
	if (!d)
		return HDL_EOK;
	deleg_staged_t *st = calloc(1, sizeof(*st));
	if (!st) {
		snprintf(err, errlen, "out of memory");
		return HDL_ENOMEM;
	}
	int ret = gen_build(n, nc, d->case_sensitive, &st->g, err, errlen);
	if (ret != HDL_EOK) {
		free(st);
		return ret;
	}
	*staged = st;
	return HDL_EOK;
}

bool delegate_commit(node_shared_t *n, void *staged)
{
	delegate_node_t *d = n->deleg;
	deleg_staged_t *st = staged;
	if (!d || !st)
		return false;
	deleg_gen_t *g = st->g;
	free(st);
	deleg_gen_t *old = atomic_exchange_explicit(&d->cur, g, memory_order_acq_rel);
	if (!old && !g)
		return false; /* no resolution path before or after */
	atomic_fetch_add_explicit(&d->seq, 1, memory_order_release);
	/* a worker may have loaded the old pointer in the callback it is in (reload.h) */
	reload_retire(n->reload, old, gen_unref);
	if (g)
		log_info(
		    "resolution path: %u upstream(s), %u forward rule(s); workers move to them "
		    "as their waiting requests allow",
		    g->n_upstream, g->n_forward);
	else
		log_info("resolution path: off (no upstream or forward line)");
	return true;
}

void delegate_staged_free(void *staged)
{
	deleg_staged_t *st = staged;
	if (!st)
		return;
	gen_unref(st->g);
	free(st);
}

/* ---- the engine's ops ---------------------------------------------------------------------------
 */

static uint64_t op_now(void *env)
{
	(void)env;
	return ups_now_ms();
}

static int op_query(void *env, const ups_target_t *cands, unsigned n, const uint8_t *req,
                    size_t len, uint64_t deadline_ms, uint32_t try_ms, ups_cb_t cb, void *arg,
                    void **qh)
{
	delegate_worker_t *dw = env;
	ups_query_t *q = NULL;
	if (dw->w->dctx.obs)
		obs_add(&dw->w->dctx.obs->upstream_queries, 1);
	int r = ups_query_any(dw->pool, cands, n, req, len, deadline_ms, try_ms, cb, arg, &q);
	*qh = q;
	return r;
}

static void op_cancel(void *env, void *qh)
{
	(void)env;
	ups_query_cancel(qh);
}

static void op_arm(void *env, uint64_t at)
{
	delegate_worker_t *dw = env;
	if (at == UINT64_MAX) {
		event_del(dw->tev);
		return;
	}
	uint64_t now = ups_now_ms();
	uint64_t ms = at > now ? at - now : 0;
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
	if (event_add(dw->tev, &tv) != 0)
		log_err("resolve: cannot arm the timer");
}

static void op_wake(void *env)
{
	delegate_worker_t *dw = env;
	uint64_t one = 1;
	if (write(dw->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_err("resolve: wake-up: %s", strerror(errno));
}

/* A waiting request's answer is ready: its transport sends it (worker thread). */
static void op_answer(void *env, res_client_t *c)
{
	(void)env;
	dreq_t *d = c->arg;
	preq_t *p = d->p;
	/* the client is detached: nothing of the engine is needed any more */
	if (d->dw) {
		d->dw->waiting--;
		d->dw->drained += d->dw->retired;
		d->dw = NULL;
	}
	if (p->complete)
		p->complete(p);
	else
		preq_free(p);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	delegate_worker_t *dw = arg;
	res_timers(dw->e);
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	delegate_worker_t *dw = arg;
	uint64_t cnt;
	if (read(dw->efd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN && errno != EINTR)
		log_err("resolve: wake-up read: %s", strerror(errno));
	res_run_posted(dw->e);
}

static const res_ops_t worker_ops = {op_now, op_query, op_cancel, op_arm, op_wake, op_answer};

/* ---- worker ---------------------------------------------------------------------------------- */

static void dw_free(delegate_worker_t *dw)
{
	res_free(dw->e); /* answers what still waits (op_answer) */
	if (dw->pool)
		ups_pool_free(dw->pool);
	if (dw->dns)
		dns_free(dw->dns);
	if (dw->tev)
		event_free(dw->tev);
	if (dw->wev)
		event_free(dw->wev);
	if (dw->efd >= 0)
		close(dw->efd);
	gen_unref(dw->gen);
	free(dw);
}

/* An engine, pool and c-ares channel on the worker's base for generation \p g (referenced). */
static int dw_new(worker_t *w, deleg_gen_t *g, delegate_worker_t **out)
{
	*out = NULL;
	delegate_worker_t *dw = calloc(1, sizeof(*dw));
	if (!dw)
		return HDL_ENOMEM;
	dw->w = w;
	dw->gen = gen_ref(g);
	dw->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	char err[256];
	int ret = dw->efd < 0 ? HDL_EIO : HDL_EOK;
	if (ret == HDL_EOK &&
	    (ret = dns_new(w->base, &g->dc, &dw->dns, err, sizeof(err))) != HDL_EOK)
		log_err("resolve: %s", err);
	if (ret == HDL_EOK)
		ret = ups_pool_new(w->base, &g->lim, dw->dns, &dw->pool);
	if (ret == HDL_EOK) {
		dw->tev = event_new(w->base, -1, 0, on_timer, dw);
		dw->wev = event_new(w->base, dw->efd, EV_READ | EV_PERSIST, on_wake, dw);
		if (!dw->tev || !dw->wev || event_add(dw->wev, NULL) != 0)
			ret = HDL_ENOMEM;
	}
	if (ret == HDL_EOK)
		ret = res_new(&worker_ops, dw, &g->rc, &g->sh, &dw->e);
	if (ret != HDL_EOK) {
		dw_free(dw);
		return ret;
	}
	*out = dw;
	return HDL_EOK;
}

static void dw_log_stats(const delegate_worker_t *dw, const char *when)
{
	res_stats_t st;
	res_get_stats(dw->e, &st);
	if (st.jobs)
		log_info(
		    "resolve (%s): %llu cache hits, %llu stale, %llu resolutions, %llu upstream "
		    "queries, %llu referrals, %llu loops, %llu failures, %llu prefetches",
		    when, (unsigned long long)st.cache_hits, (unsigned long long)st.stale,
		    (unsigned long long)st.jobs, (unsigned long long)st.queries,
		    (unsigned long long)st.referrals, (unsigned long long)st.loops,
		    (unsigned long long)st.failures, (unsigned long long)st.prefetches);
}

int delegate_worker_start(worker_t *w)
{
	delegate_node_t *d = w->node->deleg;
	w->deleg = NULL;
	w->deleg_old = NULL;
	if (!d)
		return HDL_EOK;
	w->deleg_seq = atomic_load_explicit(&d->seq, memory_order_acquire);
	deleg_gen_t *g = atomic_load_explicit(&d->cur, memory_order_acquire);
	if (!g)
		return HDL_EOK;
	return dw_new(w, g, &w->deleg);
}

void delegate_worker_update(worker_t *w)
{
	delegate_node_t *d = w->node->deleg;
	if (!d || w->stopping)
		return;
	uint32_t seq = atomic_load_explicit(&d->seq, memory_order_acquire);
	if (seq == w->deleg_seq)
		return;
	/* the node's reference is retired through reload_retire(): safe until this callback ends */
	deleg_gen_t *g = atomic_load_explicit(&d->cur, memory_order_acquire);
	delegate_worker_t *nw = NULL;
	if (g && dw_new(w, g, &nw) != HDL_EOK) {
		/* tried again per request: logged every 10 s at most */
		static _Thread_local uint64_t logged_ms;
		uint64_t now = worker_now_ms();
		if (logged_ms == 0 || now - logged_ms >= 10000u) {
			logged_ms = now;
			log_err("resolve: cannot move to the reloaded upstreams (out of memory?); "
			        "the old ones stay, trying again");
		}
		return;
	}
	w->deleg_seq = seq;
	delegate_worker_t *old = w->deleg;
	w->deleg = nw; /* new requests go to the new engine */
	if (!old)
		return;
	/* requests waiting on the old one finish there, or time out */
	old->retired = true;
	old->drain_deadline_ms = worker_now_ms() + old->gen->rc.timeout_ms + DRAIN_MARGIN_MS;
	old->next = w->deleg_old;
	w->deleg_old = old;
	log_debug("resolve: the previous upstream engine drains (%u request(s) waiting)",
	          old->waiting);
}

/* The worker's engine for a new request: a reload committed since is taken up first (one
 * atomic load), so that a request sent after `idnode reload` answered uses the new upstreams. */
static delegate_worker_t *dw_current(worker_t *w)
{
	delegate_node_t *d = w->node->deleg;
	if (d && atomic_load_explicit(&d->seq, memory_order_acquire) != w->deleg_seq)
		delegate_worker_update(w);
	return w->deleg;
}

unsigned delegate_worker_tick(worker_t *w)
{
	unsigned left = 0;
	uint64_t now = worker_now_ms();
	for (delegate_worker_t **pp = &w->deleg_old; *pp;) {
		delegate_worker_t *dw = *pp;
		if (dw->waiting && now < dw->drain_deadline_ms) {
			left++;
			pp = &dw->next;
			continue;
		}
		if (dw->waiting)
			log_warn(
			    "resolve: %u request(s) still waiting on the previous upstreams past "
			    "their timeout; answering them RC 3",
			    dw->waiting);
		*pp = dw->next;
		if (dw->drained)
			log_info(
			    "resolve: the engine of the previous upstreams is freed; %u request(s) "
			    "waiting on it at the reload were answered there",
			    dw->drained);
		dw_log_stats(dw, "previous upstreams");
		dw_free(dw);
	}
	return left;
}

void delegate_worker_stop(worker_t *w)
{
	while (w->deleg_old) {
		delegate_worker_t *dw = w->deleg_old;
		w->deleg_old = dw->next;
		dw_free(dw);
	}
	delegate_worker_t *dw = w->deleg;
	if (!dw)
		return;
	dw_log_stats(dw, "shutdown");
	w->deleg = NULL;
	dw_free(dw);
}

/* ---- suspended requests -----------------------------------------------------------------------
 */

static void dreq_release(preq_t *p)
{
	dreq_t *d = p->ext;
	if (!d)
		return;
	if (d->dw) {
		/* still waiting (on the current engine or a retired one that drains) */
		res_client_cancel(d->dw->e, &d->c);
		d->dw->waiting--;
		d->dw = NULL;
	}
	res_client_release(&d->c);
	p->ext = NULL;
}

/* A preq for a resolution, counted against the source; NULL when over a limit. */
static preq_t *dreq_new(worker_t *w, const struct sockaddr_storage *peer, size_t extra,
                        const char **why)
{
	preq_t *p = preq_new(w, PREQ_RESOLVE, DREQ_ARENA_FIRST + extra, DREQ_ARENA_LIMIT);
	if (!p) {
		*why = "out of memory";
		return NULL;
	}
	if (!preq_source_take(w, p, preq_source_hash(peer))) {
		preq_free(p);
		log_peer(LOG_LVL_NOTICE, "resolve: too many requests waiting, refusing one");
		*why = "Too many requests waiting";
		return NULL;
	}
	dreq_t *d = hdl_arena_alloc(&p->arena, sizeof(*d));
	if (!d) {
		preq_free(p);
		*why = "out of memory";
		return NULL;
	}
	d->dw = w->deleg;
	d->dw->waiting++;
	d->p = p;
	d->c.arg = d;
	p->ext = d;
	p->release = dreq_release;
	return p;
}

/* Delegated answers are not authoritative: the reply's AT flag is cleared. */
static void clear_at(uint8_t *out, size_t len)
{
	if (len >= HDL_ENVELOPE_LEN + 12)
		out[HDL_ENVELOPE_LEN + 8] &= (uint8_t) ~(HDL_OF_AT >> 24);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A whole reply from an answer (values copied unless already in place at \p out + \p pos). */
static size_t answer_reply(dispatch_ctx_t *ctx, const reply_t *r, hdl_slice_t handle,
                           const res_answer_t *a, uint8_t *out, size_t cap)
{
	size_t len;
	if (a->rcode == HDL_RC_SERVICE_REFERRAL && a->vlen) {
		/* the referral body may sit in \p out already, a few bytes off: moved, not copied
		 */
		wire_wr_t w = wire_wr_init(out, cap);
		reply_begin(ctx, &w, r, HDL_RC_SERVICE_REFERRAL);
		if (wire_wr_need(&w, a->vlen)) {
			memmove(w.base + w.pos, a->vals, a->vlen);
			w.pos += a->vlen;
		}
		len = reply_end(&w);
		if (len == 0)
			len = reply_error(ctx, r, HDL_RC_ERROR, "answer too large", out, cap);
	} else if (a->rcode != HDL_RC_SUCCESS) {
		len = reply_error(ctx, r, a->rcode, a->message ? a->message : "", out, cap);
	} else if (a->vlen >= 4 && be32(a->vals) > NODE_LIMIT(&ctx->node->limits, max_values)) {
		log_peer(LOG_LVL_WARN, "resolve: upstream answer has %u values, over max_values",
		         be32(a->vals));
		len = reply_error(ctx, r, HDL_RC_ERROR, "too many values", out, cap);
	} else {
		wire_wr_t w = wire_wr_init(out, cap);
		reply_begin(ctx, &w, r, HDL_RC_SUCCESS);
		wire_wr_slice(&w, handle);
		if (a->vals != w.base + w.pos)
			wire_wr_bytes(&w, a->vals, a->vlen);
		else if (wire_wr_need(&w, a->vlen))
			w.pos += a->vlen;
		len = reply_end(&w);
		if (len == 0 || len - HDL_ENVELOPE_LEN > HDL_MAX_MESSAGE_LEN)
			len = reply_error(ctx, r, HDL_RC_ERROR, "answer too large", out, cap);
	}
	clear_at(out, len);
	return len;
}

static void question_of(const hdl_msg_t *m, res_question_t *q)
{
	memset(q, 0, sizeof(*q));
	q->handle = m->u.resolve.handle;
	q->idx = m->u.resolve.indexes;
	q->n_idx = m->u.resolve.n_indexes;
	q->types = m->u.resolve.types;
	q->n_types = m->u.resolve.n_types;
	q->opflags = m->hdr.opflags;
	q->recursion = m->hdr.recursion;
}

size_t delegate_resolution(dispatch_ctx_t *ctx, const dispatch_origin_t *o, const hdl_msg_t *m,
                           const uint8_t *req, size_t len, const reply_t *r, uint8_t *out,
                           size_t cap, bool *wait)
{
	worker_t *w = worker_self;
	delegate_worker_t *dw = w ? dw_current(w) : NULL;
	*wait = false;
	if (!dw)
		return reply_error(ctx, r, HDL_RC_SERVER_NOT_RESP, "That prefix doesn't live here",
		                   out, cap);
	res_question_t q;
	question_of(m, &q);
	/* the fast path: the values of a hit are copied straight into the reply */
	wire_wr_t ww = wire_wr_init(out, cap);
	reply_begin(ctx, &ww, r, HDL_RC_SUCCESS);
	wire_wr_slice(&ww, q.handle);
	res_answer_t a;
	if (!ww.err && ww.pos + 4 < cap &&
	    res_try(dw->e, &q, out + ww.pos, cap - ww.pos - 4, &a) == RES_DONE)
		return answer_reply(ctx, r, q.handle, &a, out, cap);
	if (!o || !o->attach) {
		return reply_error(ctx, r, HDL_RC_SERVER_TOO_BUSY, "Cannot wait for upstream here",
		                   out, cap);
	}
	const char *why = NULL;
	preq_t *p = dreq_new(w, o->peer, len, &why);
	if (!p)
		return reply_error(ctx, r, HDL_RC_SERVER_TOO_BUSY, why, out, cap);
	dreq_t *d = p->ext;
	/* the request's own copy, decoded again: the question and the UDP caps read it later */
	hdl_slice_t copy = hdl_arena_dup(&p->arena, req, len);
	hdl_msg_t pm;
	memset(&pm, 0, sizeof(pm));
	if (copy.len != len || hdl_msg_decode(copy.p, copy.len, &p->arena, &pm) != HDL_EOK ||
	    pm.kind != HDL_BODY_RESOLVE) {
		preq_free(p);
		return reply_error(ctx, r, HDL_RC_SERVER_TOO_BUSY, "out of memory", out, cap);
	}
	p->req = copy.p;
	p->req_len = copy.len;
	p->reply = *r;
	p->job.transport = o->transport;
	question_of(&pm, &q);
	d->handle = q.handle;
	int rs = res_start(dw->e, &q, &d->c);
	if (rs == RES_DONE) {
		size_t n = answer_reply(ctx, r, q.handle, &d->c.ans, out, cap);
		preq_free(p);
		return n;
	}
	o->attach(o->tctx, p);
	*wait = true;
	return 0;
}

/* Count a resolution answered after it waited (obs.h): its transport, its response code. */
static void count_waited(dispatch_ctx_t *ctx, const preq_t *p, unsigned t, uint32_t rcode)
{
	if (ctx->obs)
		obs_count(ctx->obs, t, HDL_OC_RESOLUTION, rcode, true,
		          ctx->timing ? p->started_ms * 1000000u : 0);
}

size_t delegate_preq_reply(dispatch_ctx_t *ctx, preq_t *p, uint8_t *out, size_t cap)
{
	dreq_t *d = p->ext;
	if (!d)
		return reply_error(ctx, &p->reply, HDL_RC_SERVER_TOO_BUSY, "no answer", out, cap);
	size_t n = answer_reply(ctx, &p->reply, d->handle, &d->c.ans, out, cap);
	count_waited(ctx, p, obs_transport(p->job.transport), d->c.ans.rcode);
	res_client_release(&d->c);
	return n;
}

/* ---- HTTP (REST, proxy) ------------------------------------------------------------------------
 */

/* Decode an answer's values into the worker arena. */
static int decode_answer(worker_t *w, const res_answer_t *a, uint32_t *rcode, const char **msg,
                         hdl_value_t **vals, uint32_t *n)
{
	*rcode = a->rcode;
	*msg = a->message;
	*vals = NULL;
	*n = 0;
	if (a->rcode != HDL_RC_SUCCESS || a->vlen == 0)
		return HDL_EOK;
	/* the values must outlive the answer's buffer */
	hdl_slice_t copy = hdl_arena_dup(&w->dctx.arena, a->vals, a->vlen);
	if (copy.len != a->vlen)
		return HDL_ENOMEM;
	int r = hdl_values_decode(copy.p, copy.len, &w->dctx.arena, vals, n);
	if (r != HDL_EOK) {
		*rcode = HDL_RC_ERROR;
		*msg = "Upstream values do not decode";
	} else if (*n > NODE_LIMIT(&w->node->limits, max_values)) {
		*rcode = HDL_RC_ERROR;
		*msg = "too many values";
		*n = 0;
	}
	return HDL_EOK;
}

int delegate_http_resolve(worker_t *w, const delegate_http_t *h, const char *handle,
                          const uint32_t *idx, uint32_t n_idx, const hdl_slice_t *types,
                          uint32_t n_types, uint32_t *rcode, const char **msg, hdl_value_t **vals,
                          uint32_t *n)
{
	delegate_worker_t *dw = dw_current(w);
	*vals = NULL;
	*n = 0;
	if (!dw) {
		*rcode = HDL_RC_SERVER_NOT_RESP;
		*msg = "That prefix doesn't live here";
		if (w->dctx.obs) /* dispatch left the count to the resolution path */
			obs_count(w->dctx.obs, STATS_T_REST, HDL_OC_RESOLUTION, *rcode, true,
			          w->dctx.timing ? w->dctx.t_rest_ns : 0);
		return HDL_EOK;
	}
	/* REST and the proxy resolve with REC, anonymously (PO) */
	res_question_t q = {.handle = hdl_slice_str(handle),
	                    .idx = idx,
	                    .n_idx = n_idx,
	                    .types = types,
	                    .n_types = n_types,
	                    .opflags = HDL_OF_REC | HDL_OF_PO};
	size_t cap = 65536;
	uint8_t *buf = hdl_arena_alloc(&w->dctx.arena, cap);
	res_answer_t a;
	if (buf && res_try(dw->e, &q, buf, cap, &a) == RES_DONE) {
		if (w->dctx.obs)
			obs_count(w->dctx.obs, STATS_T_REST, HDL_OC_RESOLUTION, a.rcode, true,
			          w->dctx.timing ? w->dctx.t_rest_ns : 0);
		return decode_answer(w, &a, rcode, msg, vals, n);
	}
	const char *why = NULL;
	size_t tbytes = 0;
	for (uint32_t i = 0; i < n_types; i++)
		tbytes += types[i].len;
	preq_t *p = dreq_new(w, h->c ? &h->c->peer : NULL, strlen(handle) + tbytes, &why);
	if (!p) {
		*rcode = HDL_RC_SERVER_TOO_BUSY;
		*msg = why;
		return HDL_EOK;
	}
	dreq_t *d = p->ext;
	d->handle = hdl_arena_dup(&p->arena, handle, strlen(handle) + 1); /* NUL kept for http.c */
	d->handle.len = (uint32_t)strlen(handle);
	q.handle = d->handle;
	int rs = res_start(dw->e, &q, &d->c);
	if (rs == RES_DONE) {
		int ret = decode_answer(w, &d->c.ans, rcode, msg, vals, n);
		count_waited(&w->dctx, p, STATS_T_REST, d->c.ans.rcode);
		preq_free(p);
		return ret;
	}
	h->wait(h->ctx, p);
	return DISPATCH_WAIT;
}

int delegate_http_result(worker_t *w, preq_t *p, const char **handle, uint32_t *rcode,
                         const char **msg, hdl_value_t **vals, uint32_t *n)
{
	dreq_t *d = p->ext;
	if (!d) {
		*handle = "";
		*rcode = HDL_RC_SERVER_TOO_BUSY;
		*msg = "no answer";
		*vals = NULL;
		*n = 0;
		return HDL_EOK;
	}
	*handle = (const char *)d->handle.p;
	count_waited(&w->dctx, p, STATS_T_REST, d->c.ans.rcode);
	return decode_answer(w, &d->c.ans, rcode, msg, vals, n);
}
