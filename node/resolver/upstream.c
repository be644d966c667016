/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief The upstream pool: targets ("servers": host, port, transport, TLS context) with their
 *        address, connections, queue, SRTT and health; queries with their deadlines; target
 *        choice and failover (ups_query_any); HS_SITE to targets.
 *
 * A query joins its server's queue, then goes onto a connection slot (ups_conn.c) or into a
 * datagram exchange (ups_udp.c). A server with queued queries opens connections while the queue
 * is longer than what its connections being set up will take, within max_conns_per_server and
 * max_conns (an idle connection of another server is closed to make room, least recently used
 * first). Callbacks are never called from inside ups_query_start(): failures found there are
 * delivered at the next turn of the loop (ups_fail_soon).
 */
#include "node/resolver/upstream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "hdl/error.h"
#include "node/common/log.h"
#include "node/resolver/ups_int.h"

static const char *const transport_names[UPS_TRANSPORT_COUNT] = {"tls", "https", "http", "tcp",
                                                                 "udp"};

const char *ups_transport_name(ups_transport_t t)
{
	return (unsigned)t < UPS_TRANSPORT_COUNT ? transport_names[t] : "?";
}

int ups_transport_parse(const char *s, ups_transport_t *out)
{
	for (unsigned i = 0; i < UPS_TRANSPORT_COUNT; i++) {
		if (strcasecmp(s, transport_names[i]) == 0) {
			*out = (ups_transport_t)i;
			return HDL_EOK;
		}
	}
	return HDL_EINVAL;
}

bool ups_transport_is_tls(ups_transport_t t)
{
	return t == UPS_TLS || t == UPS_HTTPS;
}

uint64_t ups_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int ups_target_set(ups_target_t *t, const char *hostport, ups_transport_t tr, ups_tls_t *tls)
{
	const char *host = hostport, *colon;
	size_t hl;
	memset(t, 0, sizeof(*t));
	if (hostport[0] == '[') {
		const char *end = strchr(hostport, ']');
		if (!end || end[1] != ':')
			return HDL_EINVAL;
		host = hostport + 1;
		hl = (size_t)(end - host);
		colon = end + 1;
	} else {
		colon = strrchr(hostport, ':');
		if (!colon || memchr(hostport, ':', (size_t)(colon - hostport)))
			return HDL_EINVAL;
		hl = (size_t)(colon - hostport);
	}
	if (hl == 0 || hl > UPS_HOST_MAX)
		return HDL_EINVAL;
	char *end;
	errno = 0;
	unsigned long port = strtoul(colon + 1, &end, 10);
	if (colon[1] < '0' || colon[1] > '9' || *end || errno || port == 0 || port > 65535)
		return HDL_EINVAL;
	memcpy(t->host, host, hl);
	t->host[hl] = '\0';
	if (hostport[0] == '[') {
		struct in6_addr a6;
		if (inet_pton(AF_INET6, t->host, &a6) != 1)
			return HDL_EINVAL;
	}
	t->port = (uint16_t)port;
	t->transport = tr;
	t->tls = tls;
	return HDL_EOK;
}

void ups_limits_default(ups_limits_t *l)
{
	l->max_conns_per_server = 4;
	l->max_conns = 256;
	l->max_queries = 4096;
	l->max_servers = 1024;
	l->pipeline = 32;
	l->max_reply = HDL_MAX_MESSAGE_LEN;
	l->connect_timeout_ms = 3000;
	l->idle_timeout_ms = 30000;
	l->udp_retry_ms = 500;
	l->fail_threshold = 3;
	l->backoff_ms = 1000;
	l->backoff_max_ms = 60000;
}

static bool limits_ok(const ups_limits_t *l)
{
	return l->max_conns_per_server && l->max_conns && l->max_queries && l->max_servers &&
	       l->pipeline && l->pipeline <= UPS_MAX_PIPELINE && l->max_reply >= HDL_HEADER_LEN &&
	       l->max_reply <= HDL_MAX_MESSAGE_LEN && l->connect_timeout_ms && l->idle_timeout_ms &&
	       l->udp_retry_ms && l->fail_threshold && l->backoff_ms &&
	       l->backoff_max_ms >= l->backoff_ms;
}

uint64_t ups_rand(ups_pool_t *p)
{
	/* xorshift64* */
	uint64_t x = p->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	p->rng = x;
	return x * 0x2545F4914F6CDD1Dull;
}

void ups_pool_seed(ups_pool_t *p, uint64_t seed)
{
	p->rng = seed ? seed : 0x9E3779B97F4A7C15ull;
}

/* ---- servers ---------------------------------------------------------------------------- */

static uint32_t target_hash(const ups_target_t *t)
{
	uint32_t h = 2166136261u;
	for (const char *s = t->host; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c + 32);
		h = (h ^ c) * 16777619u;
	}
	h = (h ^ t->port) * 16777619u;
	return (h ^ (uint32_t)t->transport) * 16777619u;
}

static unsigned target_cap(const ups_pool_t *p, const ups_target_t *t)
{
	unsigned cap;
	switch (t->transport) {
	case UPS_TLS: cap = t->pipeline ? t->pipeline : p->lim.pipeline; break;
	case UPS_TCP: cap = t->pipeline ? t->pipeline : 1; break;
	default: cap = 1; break;
	}
	return cap > UPS_MAX_PIPELINE ? UPS_MAX_PIPELINE : cap;
}

static bool target_eq(const ups_pool_t *p, const ups_target_t *a, const ups_server_t *s)
{
	const ups_target_t *b = &s->t;
	return a->port == b->port && a->transport == b->transport && a->tls == b->tls &&
	       target_cap(p, a) == s->cap && strcasecmp(a->host, b->host) == 0 &&
	       strcasecmp(a->name, b->name) == 0;
}

static ups_server_t *server_find(ups_pool_t *p, const ups_target_t *t)
{
	ups_server_t *s = p->buckets[target_hash(t) & (p->nbuckets - 1)];
	while (s && !target_eq(p, t, s))
		s = s->hnext;
	return s;
}

static void server_lru_unlink(ups_pool_t *p, ups_server_t *s)
{
	if (s->lprev)
		s->lprev->lnext = s->lnext;
	else
		p->lru_head = s->lnext;
	if (s->lnext)
		s->lnext->lprev = s->lprev;
	else
		p->lru_tail = s->lprev;
	s->lprev = s->lnext = NULL;
}

static void server_touch(ups_pool_t *p, ups_server_t *s)
{
	if (p->lru_head == s)
		return;
	if (s->lprev || s->lnext || p->lru_tail == s)
		server_lru_unlink(p, s);
	s->lnext = p->lru_head;
	if (p->lru_head)
		p->lru_head->lprev = s;
	p->lru_head = s;
	if (!p->lru_tail)
		p->lru_tail = s;
}

static void server_wait_set(ups_server_t *s, bool on)
{
	ups_pool_t *p = s->pool;
	if (on == s->waiting)
		return;
	s->waiting = on;
	if (on) {
		s->wprev = NULL;
		s->wnext = p->wait_head;
		if (p->wait_head)
			p->wait_head->wprev = s;
		p->wait_head = s;
	} else {
		if (s->wprev)
			s->wprev->wnext = s->wnext;
		else
			p->wait_head = s->wnext;
		if (s->wnext)
			s->wnext->wprev = s->wprev;
		s->wprev = s->wnext = NULL;
	}
}

static void server_free(ups_server_t *s)
{
	ups_pool_t *p = s->pool;
	ups_server_t **pp = &p->buckets[target_hash(&s->t) & (p->nbuckets - 1)];
	while (*pp != s)
		pp = &(*pp)->hnext;
	*pp = s->hnext;
	server_lru_unlink(p, s);
	server_wait_set(s, false);
	if (s->dnsw)
		dns_cancel(s->dnsw);
	if (s->sess)
		SSL_SESSION_free(s->sess);
	ups_tls_unref(s->t.tls);
	p->nservers--;
	free(s);
}

/* Nothing runs on \p s: no query refers to it, its connections have nothing in flight. */
static bool server_idle(const ups_server_t *s)
{
	if (s->nrefs || s->pend_head)
		return false;
	for (const ups_conn_t *c = s->conns; c; c = c->next) {
		if (c->used || c->busy)
			return false;
	}
	return true;
}

static ups_server_t *server_get(ups_pool_t *p, const ups_target_t *t)
{
	ups_server_t *s = server_find(p, t);
	if (s) {
		server_touch(p, s);
		return s;
	}
	if (p->nservers >= p->lim.max_servers) {
		ups_server_t *v = p->lru_tail;
		while (v && !server_idle(v))
			v = v->lprev;
		if (!v)
			return NULL;
		while (v->conns)
			ups_conn_close(v->conns, HDL_EOK);
		server_free(v);
	}
	if (!(s = calloc(1, sizeof(*s))))
		return NULL;
	s->pool = p;
	s->t = *t;
	s->t.tls = t->tls ? ups_tls_ref(t->tls) : NULL;
	s->cap = target_cap(p, t);
	bool v6 = strchr(t->host, ':') != NULL;
	snprintf(s->label, sizeof(s->label), "%s%s%s:%u/%s", v6 ? "[" : "", t->host, v6 ? "]" : "",
	         t->port, ups_transport_name(t->transport));
	struct sockaddr_in *a4 = (struct sockaddr_in *)&s->addr[0];
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&s->addr[0];
	if (inet_pton(AF_INET, t->host, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons(t->port);
		s->alen[0] = sizeof(*a4);
		s->numeric = true;
	} else if (inet_pton(AF_INET6, t->host, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(t->port);
		s->alen[0] = sizeof(*a6);
		s->numeric = true;
	}
	if (s->numeric) {
		s->naddr = 1;
		s->addr_expires_ms = UINT64_MAX;
	}
	unsigned b = target_hash(t) & (p->nbuckets - 1);
	s->hnext = p->buckets[b];
	p->buckets[b] = s;
	p->nservers++;
	server_touch(p, s);
	return s;
}

static bool server_down(const ups_server_t *s)
{
	return s->fails >= s->pool->lim.fail_threshold;
}

void ups_server_ok(ups_server_t *s, uint32_t rtt_ms)
{
	if (rtt_ms != UINT32_MAX) {
		if (!s->measured)
			s->srtt_ms = rtt_ms;
		else
			s->srtt_ms = (uint32_t)(((uint64_t)s->srtt_ms * 7u + rtt_ms) / 8u);
		s->measured = true;
	}
	if (server_down(s))
		log_info("upstream %s: answering again", s->label);
	s->fails = 0;
	s->downs = 0;
	s->down_until_ms = 0;
}

void ups_server_fail(ups_server_t *s, int err)
{
	ups_pool_t *p = s->pool;
	uint64_t now = ups_now_ms();
	s->fails++;
	if (s->fails < p->lim.fail_threshold || now < s->down_until_ms)
		return; /* not yet down, or already in a back-off */
	uint64_t ms = p->lim.backoff_ms;
	for (unsigned i = 0; i < s->downs && ms < p->lim.backoff_max_ms; i++)
		ms *= 2;
	if (ms > p->lim.backoff_max_ms)
		ms = p->lim.backoff_max_ms;
	s->downs++;
	s->down_until_ms = now + ms;
	log_peer(LOG_LVL_WARN, "upstream %s: down for %llu ms after %u failures (last: %s)",
	         s->label, (unsigned long long)ms, s->fails, hdl_strerror(err));
}

/* An RTT sample for a request that timed out: the estimate backs off. */
static void server_timeout_rtt(ups_server_t *s, uint64_t waited_ms)
{
	uint64_t v = s->measured ? (uint64_t)s->srtt_ms * 2u : waited_ms;
	if (v < waited_ms)
		v = waited_ms;
	s->srtt_ms = (uint32_t)(v > UPS_SRTT_MAX_MS ? UPS_SRTT_MAX_MS : v);
	s->measured = true;
}

void ups_server_info(ups_pool_t *p, const ups_target_t *t, ups_server_info_t *info)
{
	memset(info, 0, sizeof(*info));
	ups_server_t *s = server_find(p, t);
	if (!s)
		return;
	uint64_t now = ups_now_ms();
	info->known = true;
	info->measured = s->measured;
	info->srtt_ms = s->srtt_ms;
	info->fails = s->fails;
	info->down = server_down(s) && now < s->down_until_ms;
	info->down_ms = info->down ? s->down_until_ms - now : 0;
	info->conns = s->nconns;
}

/* ---- queries ---------------------------------------------------------------------------- */

static void query_timer(evutil_socket_t fd, short what, void *arg);

static void pend_unlink(ups_server_t *s, ups_query_t *q)
{
	if (q->prev)
		q->prev->next = q->next;
	else
		s->pend_head = q->next;
	if (q->next)
		q->next->prev = q->prev;
	else
		s->pend_tail = q->prev;
	q->prev = q->next = NULL;
	q->state = Q_IDLE;
	s->npend--;
}

static void pend_push(ups_server_t *s, ups_query_t *q, bool front)
{
	q->state = Q_PENDING;
	if (front) {
		q->prev = NULL;
		q->next = s->pend_head;
		if (s->pend_head)
			s->pend_head->prev = q;
		else
			s->pend_tail = q;
		s->pend_head = q;
	} else {
		q->next = NULL;
		q->prev = s->pend_tail;
		if (s->pend_tail)
			s->pend_tail->next = q;
		else
			s->pend_head = q;
		s->pend_tail = q;
	}
	s->npend++;
}

void ups_timer_in(struct event *ev, uint64_t ms)
{
	struct timeval tv = {(time_t)(ms / 1000u), (suseconds_t)((ms % 1000u) * 1000u)};
	evtimer_add(ev, &tv);
}

void ups_timer_at(struct event *ev, uint64_t at_ms)
{
	uint64_t now = ups_now_ms();
	ups_timer_in(ev, at_ms > now ? at_ms - now : 0);
}

/* Take \p q out of whatever holds it (queue, connection slot, socket); its server stays set. */
static void query_detach(ups_query_t *q)
{
	switch (q->state) {
	case Q_PENDING: pend_unlink(q->srv, q); break;
	case Q_SENT: ups_conn_orphan(q); break;
	case Q_UDP: ups_udp_stop(q); break;
	case Q_MULTI:
		if (q->multi->child) {
			ups_query_t *c = q->multi->child;
			q->multi->child = NULL;
			c->parent = NULL;
			ups_query_cancel(c);
		}
		break;
	default: break;
	}
	if (q->timer)
		evtimer_del(q->timer);
	if (q->probe && q->srv) {
		q->srv->probing = false;
		q->probe = false;
	}
}

static void query_free(ups_query_t *q)
{
	ups_pool_t *p = q->pool;
	if (q->aprev)
		q->aprev->anext = q->anext;
	else
		p->allq = q->anext;
	if (q->anext)
		q->anext->aprev = q->aprev;
	if (q->top)
		p->nqueries--;
	if (q->srv)
		q->srv->nrefs--;
	if (q->timer)
		event_free(q->timer);
	if (q->multi) {
		for (unsigned i = 0; i < q->multi->n; i++)
			ups_tls_unref(q->multi->cands[i].tls);
		free(q->multi->cands);
		free(q->multi);
	}
	free(q->req);
	free(q);
}

static void multi_child_done(ups_query_t *mq, int status, const uint8_t *reply, size_t len);

void ups_complete(ups_query_t *q, int status, uint8_t *reply, size_t len)
{
	ups_pool_t *p = q->pool;
	query_detach(q);
	q->state = Q_DONE;
	if (q->top) {
		if (status == HDL_EOK) {
			p->st.answers++;
		} else {
			p->st.failures++;
			if (status == HDL_ETIMEDOUT)
				p->st.timeouts++;
		}
	}
	if (reply && len >= HDL_ENVELOPE_LEN) {
		reply[8] = (uint8_t)(q->caller_id >> 24);
		reply[9] = (uint8_t)(q->caller_id >> 16);
		reply[10] = (uint8_t)(q->caller_id >> 8);
		reply[11] = (uint8_t)q->caller_id;
	}
	if (q->parent) {
		ups_query_t *mq = q->parent;
		mq->multi->child = NULL;
		query_free(q);
		multi_child_done(mq, status, reply, len);
		return;
	}
	if (q->cb)
		q->cb(q->arg, status, reply, len);
	query_free(q);
}

void ups_fail_soon(ups_query_t *q, int status)
{
	if (q->state == Q_PENDING)
		pend_unlink(q->srv, q);
	q->state = Q_SOON;
	q->soon_status = status;
	event_active(q->timer, EV_TIMEOUT, 1);
}

static void query_timer(evutil_socket_t fd, short what, void *arg)
{
	ups_query_t *q = arg;
	if (q->state == Q_SOON) {
		ups_complete(q, q->soon_status, NULL, 0);
		return;
	}
	uint64_t now = ups_now_ms();
	if (now < q->deadline_ms) {
		if (q->state == Q_UDP && now >= q->next_try_ms)
			ups_udp_retry(q);
		else
			ups_timer_at(q->timer, q->state == Q_UDP && q->next_try_ms < q->deadline_ms
			                           ? q->next_try_ms
			                           : q->deadline_ms);
		return;
	}
	if (q->srv && (q->state == Q_SENT || q->state == Q_UDP)) {
		server_timeout_rtt(q->srv, now - q->sent_ms);
		ups_server_fail(q->srv, HDL_ETIMEDOUT);
	}
	ups_complete(q, HDL_ETIMEDOUT, NULL, 0);
}

void ups_requeue(ups_query_t *q)
{
	q->conn = NULL;
	q->retried = true;
	q->pool->st.retried++;
	pend_push(q->srv, q, true);
}

static ups_query_t *query_new(ups_pool_t *p, const uint8_t *req, size_t len, uint64_t deadline_ms,
                              ups_cb_t cb, void *arg, bool top)
{
	ups_query_t *q = calloc(1, sizeof(*q));
	if (!q)
		return NULL;
	q->pool = p;
	q->fd = -1;
	q->top = top;
	q->cb = cb;
	q->arg = arg;
	q->deadline_ms = deadline_ms;
	q->len = len;
	q->caller_id =
	    (uint32_t)req[8] << 24 | (uint32_t)req[9] << 16 | (uint32_t)req[10] << 8 | req[11];
	q->req = malloc(len);
	q->timer = evtimer_new(p->base, query_timer, q);
	if (!q->req || !q->timer) {
		if (q->timer)
			event_free(q->timer);
		free(q->req);
		free(q);
		return NULL;
	}
	memcpy(q->req, req, len);
	q->anext = p->allq;
	if (p->allq)
		p->allq->aprev = q;
	p->allq = q;
	if (top) {
		p->nqueries++;
		p->st.queries++;
	}
	return q;
}

static int request_ok(const uint8_t *req, size_t len)
{
	hdl_envelope_t env;
	if (!req || len < HDL_ENVELOPE_LEN + HDL_HEADER_LEN ||
	    hdl_envelope_decode(req, len, &env) != HDL_EOK ||
	    (size_t)env.msg_len + HDL_ENVELOPE_LEN != len)
		return HDL_EINVAL;
	return HDL_EOK;
}

/* Start a query to one target; \p parent set for a failover child. */
static int query_start(ups_pool_t *p, const ups_target_t *t, const uint8_t *req, size_t len,
                       uint64_t deadline_ms, ups_cb_t cb, void *arg, ups_query_t *parent,
                       ups_query_t **out)
{
	if (p->closing)
		return HDL_EAGAIN;
	if (request_ok(req, len) != HDL_EOK || (unsigned)t->transport >= UPS_TRANSPORT_COUNT ||
	    (ups_transport_is_tls(t->transport) && !t->tls) || !t->host[0] || !t->port)
		return HDL_EINVAL;
	if (!parent && p->nqueries >= p->lim.max_queries) {
		p->st.refused++;
		log_peer(LOG_LVL_WARN, "upstream: %u queries running, refusing another",
		         p->nqueries);
		return HDL_ELIMIT;
	}
	ups_server_t *s = server_get(p, t);
	if (!s)
		return p->nservers >= p->lim.max_servers ? HDL_ELIMIT : HDL_ENOMEM;
	ups_query_t *q = query_new(p, req, len, deadline_ms, cb, arg, parent == NULL);
	if (!q)
		return HDL_ENOMEM;
	q->srv = s;
	s->nrefs++;
	q->parent = parent;
	q->seq = ++p->qseq;
	if (server_down(s) && ups_now_ms() >= s->down_until_ms && !s->probing) {
		s->probing = true;
		q->probe = true;
	}
	ups_timer_at(q->timer, deadline_ms);
	pend_push(s, q, false);
	ups_server_kick(s);
	if (out)
		*out = q;
	return HDL_EOK;
}

int ups_query_start(ups_pool_t *p, const ups_target_t *t, const uint8_t *req, size_t len,
                    uint64_t deadline_ms, ups_cb_t cb, void *arg, ups_query_t **out)
{
	if (out)
		*out = NULL;
	return query_start(p, t, req, len, deadline_ms, cb, arg, NULL, out);
}

void ups_query_cancel(ups_query_t *q)
{
	if (!q || q->state == Q_DONE)
		return;
	if (q->parent) {
		q->parent->multi->child = NULL;
		q->parent = NULL;
	}
	query_detach(q);
	query_free(q);
}

/* ---- address resolution and dispatch ---------------------------------------------------- */

static void server_set_addrs(ups_server_t *s, const dns_addrs_t *a)
{
	s->naddr = 0;
	for (unsigned i = 0; i < a->n && i < DNS_MAX_ADDRS; i++) {
		struct sockaddr_storage *ss = &s->addr[s->naddr];
		memset(ss, 0, sizeof(*ss));
		if (a->addr[i].family == AF_INET) {
			struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
			a4->sin_family = AF_INET;
			a4->sin_port = htons(s->t.port);
			memcpy(&a4->sin_addr, a->addr[i].a, 4);
			s->alen[s->naddr++] = sizeof(*a4);
		} else if (a->addr[i].family == AF_INET6) {
			struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
			a6->sin6_family = AF_INET6;
			a6->sin6_port = htons(s->t.port);
			memcpy(&a6->sin6_addr, a->addr[i].a, 16);
			s->alen[s->naddr++] = sizeof(*a6);
		}
	}
	s->addr_i = 0;
	s->addr_expires_ms = a->expires_ms;
	ups_conn_retire_stale(s);
}

static void on_dns(void *arg, int status, const dns_addrs_t *a)
{
	ups_server_t *s = arg;
	s->dnsw = NULL;
	if (status == HDL_EOK && a->n > 0) {
		server_set_addrs(s, a);
		ups_server_kick(s);
		return;
	}
	s->naddr = 0;
	if (!s->conns) /* otherwise the open connections may still serve them */
		ups_server_fail_queued(s, HDL_EDNS);
}

/*
 * \retval 1 an address is current, 0 a resolution is running (kick again when it ends),
 *         HDL_E* no address (the queue is failed soon by the caller)
 */
static int server_addr_ready(ups_server_t *s)
{
	if (s->numeric || (s->naddr > 0 && ups_now_ms() < s->addr_expires_ms))
		return 1;
	if (s->dnsw)
		return 0;
	if (!s->pool->dns)
		return HDL_EDNS;
	dns_addrs_t a;
	int r = dns_lookup(s->pool->dns, s->t.host, on_dns, s, &a, &s->dnsw);
	if (r == 1) {
		server_set_addrs(s, &a);
		return s->naddr > 0 ? 1 : HDL_EDNS;
	}
	return r == 0 ? 0 : (r == HDL_ELIMIT || r == HDL_ENOMEM ? r : HDL_EDNS);
}

static void server_fail_queued_soon(ups_server_t *s, int err)
{
	while (s->pend_head)
		ups_fail_soon(s->pend_head, err);
}

void ups_server_fail_queued(ups_server_t *s, int err)
{
	uint64_t upto = s->pool->qseq;
	while (s->pend_head && s->pend_head->seq <= upto)
		ups_complete(s->pend_head, err, NULL, 0);
}

void ups_server_kick(ups_server_t *s)
{
	ups_pool_t *p = s->pool;
	if (s->t.transport == UPS_UDP) {
		if (!s->pend_head)
			return;
		int r = server_addr_ready(s);
		if (r < 0)
			server_fail_queued_soon(s, r);
		while (r == 1 && s->pend_head) {
			ups_query_t *q = s->pend_head;
			pend_unlink(s, q);
			int e = ups_udp_start(q);
			if (e != HDL_EOK)
				ups_fail_soon(q, e);
		}
		return;
	}
	/* an expired name is resolved again in the background while open connections go on;
	 * those to an address no longer current are then retired */
	if (!s->numeric && s->naddr > 0 && !s->dnsw && p->dns && ups_now_ms() >= s->addr_expires_ms)
		(void)server_addr_ready(s);
	while (s->pend_head) {
		ups_conn_t *c = ups_conn_find(s);
		if (c) {
			ups_query_t *q = s->pend_head;
			pend_unlink(s, q);
			ups_conn_send(c, q);
			continue;
		}
		/* no free slot: open a connection unless those being set up will take the queue */
		unsigned coming = 0;
		for (ups_conn_t *k = s->conns; k; k = k->next) {
			if (k->state == C_CONNECTING)
				coming += k->cap;
		}
		if (s->npend <= coming)
			break;
		int r = server_addr_ready(s);
		if (r == 0)
			break;
		if (r < 0) {
			if (!s->conns)
				server_fail_queued_soon(s, r);
			break;
		}
		if (s->nconns >= p->lim.max_conns_per_server)
			break;
		if (p->nconns >= p->lim.max_conns && !ups_conn_evict_idle(p, s)) {
			server_wait_set(s, true);
			return;
		}
		r = ups_conn_open(s);
		if (r != HDL_EOK) {
			ups_server_fail(s, r);
			if (!s->conns)
				server_fail_queued_soon(s, r);
			break;
		}
	}
	server_wait_set(s, false);
}

void ups_pool_kick(ups_pool_t *p)
{
	/* room: under max_conns, or an idle connection to close. Each kick either opens a
	 * connection or puts the server back on the list: bounded by the servers */
	unsigned n = p->nservers;
	while (p->wait_head && (p->nconns < p->lim.max_conns || p->idle_tail) && n--) {
		ups_server_t *s = p->wait_head;
		server_wait_set(s, false);
		ups_server_kick(s);
	}
}

/* ---- choice and failover ---------------------------------------------------------------- */

int ups_choose(ups_pool_t *p, const ups_target_t *cands, unsigned n, const bool *skip)
{
	uint64_t now = ups_now_ms();
	int best = -1, probe = -1;
	uint32_t best_score = 0;
	bool best_measured = false;
	uint64_t probe_at = 0;
	int up[UPS_MAX_CANDIDATES];
	unsigned nup = 0;
	if (n > UPS_MAX_CANDIDATES)
		n = UPS_MAX_CANDIDATES;
	for (unsigned i = 0; i < n; i++) {
		if (skip && skip[i])
			continue;
		ups_server_t *s = server_find(p, &cands[i]);
		if (s && server_down(s)) {
			if (now >= s->down_until_ms && !s->probing &&
			    (probe < 0 || s->down_until_ms < probe_at)) {
				probe = (int)i;
				probe_at = s->down_until_ms;
			}
			continue;
		}
		uint32_t score = s && s->measured ? s->srtt_ms : UPS_SRTT_INIT_MS;
		up[nup++] = (int)i;
		if (best < 0 || score < best_score) {
			best = (int)i;
			best_score = score;
			best_measured = s && s->measured;
		}
	}
	if (best < 0)
		return probe >= 0 ? probe : HDL_EAGAIN;
	/* nothing measured yet: the order given (the configuration's) stands */
	if (nup > 1 && best_measured && ups_rand(p) % UPS_EXPLORE_ONE_IN == 0) {
		/* another up target, uniformly */
		unsigned k = (unsigned)(ups_rand(p) % (nup - 1));
		for (unsigned i = 0; i < nup; i++) {
			if (up[i] == best)
				continue;
			if (k-- == 0)
				return up[i];
		}
	}
	return best;
}

/* Start the next candidate of \p mq. \retval HDL_EOK, or the error to complete it with */
static int multi_next(ups_query_t *mq)
{
	ups_multi_t *m = mq->multi;
	for (;;) {
		uint64_t now = ups_now_ms();
		if (now >= mq->deadline_ms)
			return HDL_ETIMEDOUT;
		int i = ups_choose(mq->pool, m->cands, m->n, m->tried);
		if (i < 0)
			return m->last_err ? m->last_err : HDL_EAGAIN;
		m->tried[i] = true;
		uint64_t dl = now + m->try_timeout_ms;
		if (dl > mq->deadline_ms)
			dl = mq->deadline_ms;
		int r = query_start(mq->pool, &m->cands[i], mq->req, mq->len, dl, NULL, NULL, mq,
		                    &m->child);
		if (r == HDL_EOK)
			return HDL_EOK;
		m->last_err = r;
	}
}

static void multi_child_done(ups_query_t *mq, int status, const uint8_t *reply, size_t len)
{
	if (status == HDL_EOK) {
		/* the child restored the caller's RequestId: it is the same request */
		ups_complete(mq, HDL_EOK, (uint8_t *)reply, len);
		return;
	}
	mq->multi->last_err = status;
	mq->pool->st.failovers++;
	int r = multi_next(mq);
	if (r != HDL_EOK)
		ups_complete(mq, r, NULL, 0);
}

int ups_query_any(ups_pool_t *p, const ups_target_t *cands, unsigned n, const uint8_t *req,
                  size_t len, uint64_t deadline_ms, uint32_t try_timeout_ms, ups_cb_t cb, void *arg,
                  ups_query_t **out)
{
	if (out)
		*out = NULL;
	if (p->closing)
		return HDL_EAGAIN;
	if (n == 0 || n > UPS_MAX_CANDIDATES || try_timeout_ms == 0 ||
	    request_ok(req, len) != HDL_EOK)
		return HDL_EINVAL;
	if (p->nqueries >= p->lim.max_queries) {
		p->st.refused++;
		log_peer(LOG_LVL_WARN, "upstream: %u queries running, refusing another",
		         p->nqueries);
		return HDL_ELIMIT;
	}
	ups_query_t *mq = query_new(p, req, len, deadline_ms, cb, arg, true);
	if (!mq)
		return HDL_ENOMEM;
	ups_multi_t *m = calloc(1, sizeof(*m));
	if (m)
		m->cands = malloc(sizeof(*cands) * n);
	if (!m || !m->cands) {
		free(m);
		query_free(mq);
		return HDL_ENOMEM;
	}
	mq->multi = m;
	m->n = n;
	m->try_timeout_ms = try_timeout_ms;
	for (unsigned i = 0; i < n; i++) {
		m->cands[i] = cands[i];
		if (m->cands[i].tls)
			ups_tls_ref(m->cands[i].tls);
	}
	mq->state = Q_MULTI;
	int r = multi_next(mq);
	if (r != HDL_EOK && !m->last_err) {
		/* nothing could even start (all down, limits): say so now, no callback */
		mq->state = Q_DONE;
		p->st.failures++;
		query_free(mq);
		return r;
	}
	if (r != HDL_EOK) {
		ups_fail_soon(mq, r);
		return HDL_EOK;
	}
	if (out)
		*out = mq;
	return HDL_EOK;
}

/* ---- pool ------------------------------------------------------------------------------- */

int ups_pool_new(struct event_base *base, const ups_limits_t *lim, struct dns *dns,
                 ups_pool_t **out)
{
	*out = NULL;
	if (!base || !lim || !limits_ok(lim))
		return HDL_EINVAL;
	ups_pool_t *p = calloc(1, sizeof(*p));
	if (!p)
		return HDL_ENOMEM;
	p->base = base;
	p->dns = dns;
	p->lim = *lim;
	p->nbuckets = 64;
	while (p->nbuckets < lim->max_servers && p->nbuckets < (1u << 16))
		p->nbuckets <<= 1;
	if (!(p->buckets = calloc(p->nbuckets, sizeof(*p->buckets)))) {
		free(p);
		return HDL_ENOMEM;
	}
	uint64_t seed = 0;
	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed))
		seed = ups_now_ms() ^ ((uint64_t)getpid() << 32);
	ups_pool_seed(p, seed);
	*out = p;
	return HDL_EOK;
}

void ups_pool_set_limits(ups_pool_t *p, const ups_limits_t *lim)
{
	if (limits_ok(lim))
		p->lim = *lim;
}

void ups_pool_stats(const ups_pool_t *p, ups_stats_t *st)
{
	*st = p->st;
	st->conns_open = p->nconns;
	st->queries_active = p->nqueries;
	st->servers = p->nservers;
}

void ups_pool_free(ups_pool_t *p)
{
	if (!p)
		return;
	p->closing = true;
	/* queries first (their callbacks see HDL_EIO), then the connections, then the servers */
	while (p->allq) {
		ups_query_t *q = p->allq;
		while (q->parent)
			q = q->parent;
		ups_complete(q, HDL_EIO, NULL, 0);
	}
	for (unsigned b = 0; b < p->nbuckets; b++) {
		for (ups_server_t *s = p->buckets[b]; s; s = s->hnext) {
			while (s->conns)
				ups_conn_close(s->conns, HDL_EOK);
		}
	}
	while (p->lru_head)
		server_free(p->lru_head);
	free(p->buckets);
	free(p);
}

/* ---- HS_SITE ---------------------------------------------------------------------------- */

unsigned ups_site_targets(const hdl_site_t *site, hdl_slice_t handle, unsigned mask, ups_tls_t *tls,
                          ups_target_t *out, unsigned max)
{
	static const struct {
		uint8_t proto;
		ups_transport_t tr;
	} order[] = {
	    {HDL_IF_HTTPS, UPS_HTTPS},
	    {HDL_IF_TCP, UPS_TCP},
	    {HDL_IF_UDP, UPS_UDP},
	    {HDL_IF_HTTP, UPS_HTTP},
	};
	unsigned n = 0;
	if (!site->n_servers)
		return 0;
	const hdl_server_t *sv = &site->servers[hdl_site_server_for(site, handle)];
	static const uint8_t zero[16];
	if (memcmp(sv->addr, zero, 16) == 0)
		return 0;
	char host[INET6_ADDRSTRLEN];
	if (hdl_server_is_ipv4(sv))
		inet_ntop(AF_INET, sv->addr + 12, host, sizeof(host));
	else
		inet_ntop(AF_INET6, sv->addr, host, sizeof(host));
	for (unsigned o = 0; o < sizeof(order) / sizeof(order[0]); o++) {
		if (!(mask & (1u << order[o].tr)) || (order[o].tr == UPS_HTTPS && !tls))
			continue;
		for (uint32_t i = 0; i < sv->n_ifaces && n < max; i++) {
			const hdl_interface_t *f = &sv->ifaces[i];
			if (f->proto != order[o].proto || !(f->type & HDL_IF_QUERY) ||
			    f->port == 0 || f->port > 65535)
				continue;
			ups_target_t *t = &out[n++];
			memset(t, 0, sizeof(*t));
			snprintf(t->host, sizeof(t->host), "%s", host);
			t->port = (uint16_t)f->port;
			t->transport = order[o].tr;
			t->tls = order[o].tr == UPS_HTTPS ? tls : NULL;
		}
	}
	return n;
}
