/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Stream connections to upstream servers: Handle TCP framing (plain or over TLS, several
 *        requests in flight matched by RequestId) and the HTTP native tunnel (plain or HTTPS,
 *        one request at a time, keep-alive).
 *
 * A connection has `cap` slots. A request sent in slot i carries RequestId gen << 8 | i (gen
 * counts requests on the connection), so an answer finds its slot at once and a stale or forged
 * id is caught; the caller's id is put back before the answer is delivered. A query that is
 * cancelled or times out leaves an orphaned slot: its late answer is read and dropped. A
 * connection with nothing live in flight for idle_timeout_ms is closed.
 *
 * Answers are checked before they are buffered: an envelope that does not decode, a
 * MessageLength over max_reply or an unknown RequestId closes the connection (HDL_EPROTO /
 * HDL_ELIMIT for what was in flight), so one connection never holds more than one reply of
 * at most max_reply bytes plus one read.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hdl/error.h"
#include "node/common/log.h"
#include "node/resolver/ups_int.h"

static void conn_free(ups_conn_t *c)
{
	bufferevent_free(c->bev);
	if (c->timer)
		event_free(c->timer);
	free(c->slots);
	free(c);
}

static void idle_unlink(ups_pool_t *p, ups_conn_t *c)
{
	if (!c->in_idle)
		return;
	if (c->iprev)
		c->iprev->inext = c->inext;
	else
		p->idle_head = c->inext;
	if (c->inext)
		c->inext->iprev = c->iprev;
	else
		p->idle_tail = c->iprev;
	c->iprev = c->inext = NULL;
	c->in_idle = false;
}

/* Keep the idle list and the idle timer in step with what is in flight. */
static void conn_update(ups_conn_t *c)
{
	ups_pool_t *p = c->srv->pool;
	if (c->state != C_READY)
		return;
	idle_unlink(p, c);
	if (c->used == 0 && !c->retire) {
		c->inext = p->idle_head;
		if (p->idle_head)
			p->idle_head->iprev = c;
		else
			p->idle_tail = c;
		p->idle_head = c;
		c->in_idle = true;
	}
	/* nothing live: close when idle long enough, or at once when every slot is orphaned (a
	 * connection that can take nothing until late answers come is worth less than a new one) */
	if (c->live == 0)
		ups_timer_in(c->timer, c->used == c->cap ? 0 : p->lim.idle_timeout_ms);
	else
		evtimer_del(c->timer);
}

ups_conn_t *ups_conn_find(ups_server_t *s)
{
	for (ups_conn_t *c = s->conns; c; c = c->next) {
		if (c->state == C_READY && !c->retire && c->used < c->cap)
			return c;
	}
	return NULL;
}

void ups_conn_orphan(ups_query_t *q)
{
	ups_conn_t *c = q->conn;
	c->slots[q->slot].q = NULL;
	c->live--;
	q->conn = NULL;
	conn_update(c);
}

void ups_conn_close(ups_conn_t *c, int err)
{
	if (c->state == C_CLOSED)
		return;
	ups_server_t *s = c->srv;
	ups_pool_t *p = s->pool;
	bool was_ready = c->state == C_READY;
	c->state = C_CLOSED;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->nconns--;
	p->nconns--;
	idle_unlink(p, c);
	evtimer_del(c->timer);
	if (c->ssl && was_ready && (err == HDL_EOK || err == HDL_EIO))
		ups_tls_keep_session(c);
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);

	/* nothing of an answer had come: a reused connection the server had closed meanwhile */
	bool clean = evbuffer_get_length(bufferevent_get_input(c->bev)) == 0 && !c->head_done;
	bool may_retry = (err == HDL_EIO || err == HDL_EOK) && clean && c->answered > 0;
	int qerr = err == HDL_EOK ? HDL_EIO : err;
	if (c->live > 0 && err != HDL_EOK && !may_retry)
		ups_server_fail(s, err);
	for (unsigned i = 0; i < c->cap; i++) {
		ups_slot_t *sl = &c->slots[i];
		if (!sl->used)
			continue;
		ups_query_t *q = sl->q;
		sl->used = false;
		sl->q = NULL;
		c->used--;
		if (!q)
			continue;
		c->live--;
		q->conn = NULL;
		if (may_retry && !q->retried && !p->closing) {
			ups_requeue(q);
			continue;
		}
		q->state = Q_DONE;
		ups_complete(q, qerr, NULL, 0);
	}
	if (!c->busy)
		conn_free(c);
}

bool ups_conn_evict_idle(ups_pool_t *p, const ups_server_t *keep)
{
	for (ups_conn_t *c = p->idle_tail; c; c = c->iprev) {
		if (c->srv != keep && !c->busy) {
			ups_conn_close(c, HDL_EOK);
			return true;
		}
	}
	return false;
}

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
	return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
}

void ups_conn_retire_stale(ups_server_t *s)
{
	ups_conn_t *c = s->conns;
	while (c) {
		ups_conn_t *next = c->next;
		bool current = false;
		for (unsigned i = 0; i < s->naddr && !current; i++)
			current = same_addr(&c->peer, &s->addr[i]);
		if (!current && !c->retire) {
			log_debug("upstream %s: address changed, retiring a connection", s->label);
			c->retire = true;
			if (c->used == 0 && !c->busy)
				ups_conn_close(c, HDL_EOK);
			else
				conn_update(c);
		}
		c = next;
	}
}

/* ---- sending ---------------------------------------------------------------------------- */

static int http_head(const ups_server_t *s, size_t body, char *out, size_t cap)
{
	const char *name = s->t.name[0] ? s->t.name : s->t.host;
	bool v6 = strchr(name, ':') != NULL;
	int n = snprintf(out, cap,
	                 "POST / HTTP/1.1\r\n"
	                 "Host: %s%s%s:%u\r\n"
	                 "User-Agent: idnode\r\n"
	                 "Accept: application/x-hdl-message\r\n"
	                 "Content-Type: application/x-hdl-message\r\n"
	                 "Content-Length: %zu\r\n"
	                 "\r\n",
	                 v6 ? "[" : "", name, v6 ? "]" : "", s->t.port, body);
	return n > 0 && (size_t)n < cap ? n : -1;
}

void ups_conn_send(ups_conn_t *c, ups_query_t *q)
{
	ups_server_t *s = c->srv;
	unsigned i = 0;
	while (c->slots[i].used)
		i++;
	c->gen++;
	uint32_t id = (c->gen << 8) | i;
	c->slots[i] = (ups_slot_t){.q = q, .id = id, .used = true};
	c->used++;
	c->live++;
	q->state = Q_SENT;
	q->conn = c;
	q->slot = i;
	q->sent_ms = ups_now_ms();
	q->req[8] = (uint8_t)(id >> 24);
	q->req[9] = (uint8_t)(id >> 16);
	q->req[10] = (uint8_t)(id >> 8);
	q->req[11] = (uint8_t)id;
	int r = 0;
	if (c->http) {
		char head[UPS_HOST_MAX + 256];
		int hl = http_head(s, q->len, head, sizeof(head));
		r = hl < 0 ? -1 : bufferevent_write(c->bev, head, (size_t)hl);
	}
	if (r == 0)
		r = bufferevent_write(c->bev, q->req, q->len);
	if (r != 0) {
		ups_conn_orphan(q);
		ups_fail_soon(q, HDL_ENOMEM);
		return;
	}
	conn_update(c);
}

/* ---- receiving -------------------------------------------------------------------------- */

/* Hand the answer in slot \p i (\p buf, \p len: envelope + message) to its query. */
static void conn_deliver(ups_conn_t *c, unsigned i, uint8_t *buf, size_t len)
{
	ups_slot_t *sl = &c->slots[i];
	ups_query_t *q = sl->q;
	sl->used = false;
	sl->q = NULL;
	c->used--;
	c->answered++;
	if (!q)
		return; /* orphaned: a late answer */
	c->live--;
	q->conn = NULL;
	q->state = Q_DONE;
	uint64_t rtt = ups_now_ms() - q->sent_ms;
	ups_server_ok(c->srv, rtt > UINT32_MAX - 1 ? UINT32_MAX - 1 : (uint32_t)rtt);
	ups_complete(q, HDL_EOK, buf, len);
}

static void conn_protocol_error(ups_conn_t *c, int err, const char *what)
{
	log_peer(LOG_LVL_WARN, "upstream %s: %s; closing the connection", c->srv->label, what);
	ups_conn_close(c, err);
}

static void read_frames(ups_conn_t *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	uint32_t max = c->srv->pool->lim.max_reply;
	while (c->state == C_READY) {
		size_t avail = evbuffer_get_length(in);
		uint8_t eb[HDL_ENVELOPE_LEN];
		hdl_envelope_t env;
		char why[96];
		if (avail < HDL_ENVELOPE_LEN)
			return;
		evbuffer_copyout(in, eb, sizeof(eb));
		int r = hdl_envelope_decode(eb, sizeof(eb), &env);
		if (r != HDL_EOK || env.msg_len > max) {
			snprintf(why, sizeof(why), "reply envelope refused (%s, MessageLength %u)",
			         r != HDL_EOK ? hdl_strerror(r) : "over upstream_max_reply",
			         env.msg_len);
			conn_protocol_error(c, r != HDL_EOK ? HDL_EPROTO : HDL_ELIMIT, why);
			return;
		}
		size_t need = HDL_ENVELOPE_LEN + (size_t)env.msg_len;
		if (avail < need)
			return;
		unsigned i = env.request_id & 0xffu;
		if (i >= c->cap || !c->slots[i].used || c->slots[i].id != env.request_id) {
			snprintf(why, sizeof(why), "reply to RequestId %u that is not in flight",
			         env.request_id);
			conn_protocol_error(c, HDL_EPROTO, why);
			return;
		}
		uint8_t *buf = malloc(need);
		if (!buf) {
			ups_conn_close(c, HDL_ENOMEM);
			return;
		}
		evbuffer_remove(in, buf, need);
		conn_deliver(c, i, buf, need);
		free(buf);
	}
}

static void read_http(ups_conn_t *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	uint32_t max = c->srv->pool->lim.max_reply;
	while (c->state == C_READY) {
		size_t avail = evbuffer_get_length(in);
		char why[96];
		if (!c->head_done) {
			if (avail == 0)
				return;
			if (c->used == 0) {
				conn_protocol_error(c, HDL_EPROTO, "HTTP data with no request out");
				return;
			}
			/* the empty line: CRLF CRLF, or bare LFs */
			struct evbuffer_ptr a = evbuffer_search(in, "\n\r\n", 3, NULL);
			struct evbuffer_ptr b = evbuffer_search(in, "\n\n", 2, NULL);
			ev_ssize_t hend = -1;
			if (a.pos >= 0)
				hend = a.pos + 3;
			if (b.pos >= 0 && (hend < 0 || b.pos + 2 < hend))
				hend = b.pos + 2;
			if (hend < 0 || (size_t)hend > UPS_HTTP_HEAD_MAX) {
				if (avail > UPS_HTTP_HEAD_MAX || hend >= 0)
					conn_protocol_error(c, HDL_EPROTO,
					                    "HTTP response head too long");
				return;
			}
			size_t hl = (size_t)hend;
			const char *head = (const char *)evbuffer_pullup(in, (ev_ssize_t)hl);
			ups_http_head_t h;
			if (!head || ups_http_head_parse(head, hl, &h) != HDL_EOK) {
				conn_protocol_error(c, HDL_EPROTO, "malformed HTTP response head");
				return;
			}
			evbuffer_drain(in, hl);
			if (h.status != 200) {
				snprintf(why, sizeof(why), "HTTP status %u", h.status);
				conn_protocol_error(c, HDL_EPROTO, why);
				return;
			}
			if (h.chunked || !h.has_length || !h.content_type_ok ||
			    h.content_length < HDL_ENVELOPE_LEN) {
				conn_protocol_error(
				    c, HDL_EPROTO,
				    "HTTP answer without a Content-Length'd Handle message");
				return;
			}
			if (h.content_length > (uint64_t)HDL_ENVELOPE_LEN + max) {
				conn_protocol_error(c, HDL_ELIMIT,
				                    "HTTP answer over upstream_max_reply");
				return;
			}
			c->head_done = true;
			c->body_len = (size_t)h.content_length;
			c->http_close = h.close;
			continue;
		}
		if (avail < c->body_len)
			return;
		uint8_t *buf = malloc(c->body_len);
		if (!buf) {
			ups_conn_close(c, HDL_ENOMEM);
			return;
		}
		size_t len = c->body_len;
		evbuffer_remove(in, buf, len);
		c->head_done = false;
		hdl_envelope_t env;
		unsigned i = 0;
		while (i < c->cap && !c->slots[i].used)
			i++;
		if (hdl_envelope_decode(buf, len, &env) != HDL_EOK ||
		    (size_t)env.msg_len + HDL_ENVELOPE_LEN != len || i >= c->cap ||
		    c->slots[i].id != env.request_id) {
			free(buf);
			conn_protocol_error(c, HDL_EPROTO, "HTTP body is not the answer in flight");
			return;
		}
		bool close_after = c->http_close;
		conn_deliver(c, i, buf, len);
		free(buf);
		if (close_after)
			ups_conn_close(c, HDL_EOK);
	}
}

/* After a callback of \p c: free it if it closed, otherwise let queued queries use it. */
static void conn_after(ups_conn_t *c, ups_server_t *s)
{
	ups_pool_t *p = s->pool;
	c->busy--;
	if (c->state == C_CLOSED) {
		if (!c->busy)
			conn_free(c);
	} else {
		conn_update(c);
	}
	if (!p->closing) {
		ups_server_kick(s);
		ups_pool_kick(p);
	}
	s->nrefs--;
}

static void conn_read(struct bufferevent *bev, void *arg)
{
	ups_conn_t *c = arg;
	ups_server_t *s = c->srv;
	s->nrefs++;
	c->busy++;
	if (c->http)
		read_http(c);
	else
		read_frames(c);
	conn_after(c, s);
}

/* TCP connect or TLS handshake failed (or the handshake was refused after the fact). */
static void connect_failed(ups_conn_t *c, int err)
{
	ups_server_t *s = c->srv;
	ups_server_fail(s, err);
	if (s->naddr > 1)
		s->addr_i = (s->addr_i + 1) % s->naddr;
	if (err == HDL_ETLS && s->sess) {
		SSL_SESSION_free(s->sess);
		s->sess = NULL;
	}
	ups_conn_close(c, err);
	if (!s->conns)
		ups_server_fail_queued(s, err);
}

static void conn_event(struct bufferevent *bev, short what, void *arg)
{
	ups_conn_t *c = arg;
	ups_server_t *s = c->srv;
	ups_pool_t *p = s->pool;
	char why[512];
	s->nrefs++;
	c->busy++;
	if (c->state == C_CLOSED)
		goto out;
	if (what & BEV_EVENT_CONNECTED) {
		if (c->ssl) {
			if (ups_tls_check_peer(c, why, sizeof(why)) != HDL_EOK) {
				p->st.tls_failures++;
				log_peer(LOG_LVL_WARN, "upstream %s: TLS refused: %s", s->label,
				         why);
				connect_failed(c, HDL_ETLS);
				goto out;
			}
			p->st.tls_handshakes++;
			if (SSL_session_reused(c->ssl))
				p->st.tls_resumed++;
		}
		c->state = C_READY;
		evtimer_del(c->timer);
		goto out;
	}
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)))
		goto out;
	int e = EVUTIL_SOCKET_ERROR();
	bool tls_err = c->ssl && ups_tls_error_text(c, why, sizeof(why));
	if (c->state == C_CONNECTING) {
		int err;
		if (c->ssl && (tls_err || (e != ECONNREFUSED && e != ETIMEDOUT &&
		                           e != EHOSTUNREACH && e != ENETUNREACH))) {
			err = HDL_ETLS;
			p->st.tls_failures++;
			log_peer(LOG_LVL_WARN, "upstream %s: TLS handshake failed: %s", s->label,
			         why);
		} else {
			err = e == ECONNREFUSED ? HDL_ECONNREFUSED
			      : e == ETIMEDOUT  ? HDL_ETIMEDOUT
			                        : HDL_EIO;
			log_peer(LOG_LVL_WARN, "upstream %s: connect: %s", s->label,
			         e ? strerror(e) : "closed");
		}
		connect_failed(c, err);
		goto out;
	}
	if (tls_err) {
		p->st.tls_failures++;
		log_peer(LOG_LVL_WARN, "upstream %s: TLS error: %s", s->label, why);
		ups_conn_close(c, HDL_ETLS);
		goto out;
	}
	if (c->live > 0 || evbuffer_get_length(bufferevent_get_input(bev)) > 0 || c->head_done)
		log_peer(LOG_LVL_NOTICE, "upstream %s: connection lost (%s) with %u requests out",
		         s->label,
		         (what & BEV_EVENT_EOF) ? "closed"
		         : e                    ? strerror(e)
		                                : "error",
		         c->live);
	ups_conn_close(c, (what & BEV_EVENT_EOF) && c->used == 0 ? HDL_EOK : HDL_EIO);
out:
	conn_after(c, s);
}

static void conn_timer(evutil_socket_t fd, short what, void *arg)
{
	ups_conn_t *c = arg;
	ups_server_t *s = c->srv;
	s->nrefs++;
	c->busy++;
	if (c->state == C_CONNECTING) {
		log_peer(LOG_LVL_WARN, "upstream %s: no connection within %u ms", s->label,
		         s->pool->lim.connect_timeout_ms);
		connect_failed(c, HDL_ETIMEDOUT);
	} else if (c->state == C_READY && c->live == 0) {
		ups_conn_close(c, HDL_EOK);
	}
	conn_after(c, s);
}

int ups_conn_open(ups_server_t *s)
{
	ups_pool_t *p = s->pool;
	ups_conn_t *c = calloc(1, sizeof(*c));
	if (!c)
		return HDL_ENOMEM;
	c->srv = s;
	c->cap = s->cap;
	c->http = s->t.transport == UPS_HTTP || s->t.transport == UPS_HTTPS;
	c->peer = s->addr[s->addr_i];
	c->peer_len = s->alen[s->addr_i];
	c->state = C_CONNECTING;
	c->slots = calloc(c->cap, sizeof(*c->slots));
	c->timer = evtimer_new(p->base, conn_timer, c);
	if (!c->slots || !c->timer)
		goto nomem;
	int opts = BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS;
	if (ups_transport_is_tls(s->t.transport)) {
		if (!(c->ssl = ups_tls_ssl_new(c)))
			goto nomem;
		c->bev = bufferevent_openssl_socket_new(p->base, -1, c->ssl,
		                                        BUFFEREVENT_SSL_CONNECTING, opts);
		if (!c->bev) {
			SSL_free(c->ssl);
			goto nomem;
		}
		bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	} else if (!(c->bev = bufferevent_socket_new(p->base, -1, opts))) {
		goto nomem;
	}
	bufferevent_setcb(c->bev, conn_read, NULL, conn_event, c);
	/* answers are taken out as soon as they are whole: the input never needs more than one
	 * (and an HTTP head) plus what one read brings */
	bufferevent_setwatermark(c->bev, EV_READ, 0,
	                         HDL_ENVELOPE_LEN + (size_t)p->lim.max_reply + UPS_HTTP_HEAD_MAX +
	                             65536u);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	ERR_clear_error();
	if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&c->peer, (int)c->peer_len) !=
	    0) {
		int e = errno;
		log_peer(LOG_LVL_WARN, "upstream %s: connect: %s", s->label, strerror(e));
		conn_free(c);
		return e == ECONNREFUSED ? HDL_ECONNREFUSED : HDL_EIO;
	}
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->nconns++;
	p->nconns++;
	p->st.conns_opened++;
	ups_timer_in(c->timer, p->lim.connect_timeout_ms);
	return HDL_EOK;
nomem:
	if (c->bev)
		bufferevent_free(c->bev);
	if (c->timer)
		event_free(c->timer);
	free(c->slots);
	free(c);
	return HDL_ENOMEM;
}
