/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TCP transport: frame = 20-byte envelope + MessageLength bytes; several requests per read are
 * answered in order (pipelining); the connection stays open until the idle timeout, and closes
 * once the peer has half-closed and its answers are flushed. Output over tcp_buffer_max pauses
 * reading until the peer catches up.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hdl/error.h"
#include "node/common/log.h"
#include "node/server/worker.h"

typedef struct tcp_conn {
	worker_t *w;
	struct bufferevent *bev;
	struct tcp_conn *prev, *next;
	bool peer_closed;       /**< EOF read */
	bool close_after_flush; /**< no more reading; close once the output is empty */
	bool paused;            /**< reading paused: output over tcp_buffer_max */
	bool lingering;         /**< answers flushed, write side shut: discarding input until EOF */
	uint64_t frame_start_ms; /**< when the partial frame in the input began (0 = none) */
	size_t discarded;
} tcp_conn_t;

#define LINGER_MS 1000u
#define LINGER_MAX_BYTES (1u << 20)

static void conn_free(tcp_conn_t *c)
{
	worker_t *w = c->w;
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	w->n_conns--;
	bufferevent_free(c->bev);
	free(c);
}

static void conn_set_timeouts(tcp_conn_t *c)
{
	uint32_t ms = NODE_LIMIT(&c->w->node->limits, tcp_idle_timeout_ms);
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
	bufferevent_set_timeouts(c->bev, &tv, &tv);
}

/* Stop reading and close once what is queued has been written. */
static void conn_finish(tcp_conn_t *c)
{
	c->close_after_flush = true;
	bufferevent_disable(c->bev, EV_READ);
}

/*
 * \return false when the connection was freed.
 * When we close first while the peer may still be sending (an oversized frame, garbage), closing
 * at once would answer its unread bytes with a RST that can destroy our last reply in flight; so
 * the write side is shut and input is discarded until EOF, LINGER_MS or LINGER_MAX_BYTES.
 */
static bool conn_maybe_close(tcp_conn_t *c)
{
	if (!(c->close_after_flush || c->peer_closed) ||
	    evbuffer_get_length(bufferevent_get_output(c->bev)) != 0)
		return true;
	if (c->peer_closed || c->lingering || c->w->stopping) {
		conn_free(c);
		return false;
	}
	c->lingering = true;
	struct evbuffer *in = bufferevent_get_input(c->bev);
	evbuffer_drain(in, evbuffer_get_length(in));
	(void)shutdown(bufferevent_getfd(c->bev), SHUT_WR);
	struct timeval tv = {LINGER_MS / 1000, (LINGER_MS % 1000) * 1000};
	bufferevent_set_timeouts(c->bev, &tv, NULL);
	bufferevent_enable(c->bev, EV_READ);
	return true;
}

static void process_input(tcp_conn_t *c)
{
	worker_t *w = c->w;
	struct evbuffer *in = bufferevent_get_input(c->bev);
	struct evbuffer *out = bufferevent_get_output(c->bev);
	uint32_t max_len = NODE_LIMIT(&w->node->limits, max_message_len);
	uint32_t buf_max = NODE_LIMIT(&w->node->limits, tcp_buffer_max);

	while (!c->close_after_flush) {
		if (evbuffer_get_length(out) >= buf_max) {
			/* the peer is not reading its answers: stop reading its requests */
			if (!c->paused) {
				c->paused = true;
				bufferevent_disable(c->bev, EV_READ);
			}
			return;
		}
		size_t have = evbuffer_get_length(in);
		if (have == 0) {
			c->frame_start_ms = 0;
			break;
		}
		if (!c->frame_start_ms)
			c->frame_start_ms = worker_now_ms();
		if (have < HDL_ENVELOPE_LEN)
			break;
		uint8_t envb[HDL_ENVELOPE_LEN];
		evbuffer_copyout(in, envb, sizeof(envb));
		hdl_envelope_t env;
		int ret = hdl_envelope_decode(envb, sizeof(envb), &env);
		if (ret == HDL_ELIMIT || (ret == HDL_EOK && env.msg_len > max_len)) {
			/* reject before reading the body */
			log_peer(LOG_LVL_NOTICE, "tcp: frame of %u bytes over max_message_len %u",
			         env.msg_len, max_len);
			size_t n = dispatch_error_reply(&w->dctx, envb, sizeof(envb),
			                                HDL_RC_PROTOCOL_ERROR,
			                                "Invalid message length", w->out,
			                                DISPATCH_OUT_CAP);
			if (n)
				bufferevent_write(c->bev, w->out, n);
			conn_finish(c);
			break;
		}
		if (ret != HDL_EOK) {
			log_peer(LOG_LVL_INFO, "tcp: not a Handle message (%s), closing",
			         hdl_strerror(ret));
			conn_finish(c);
			break;
		}
		size_t flen = HDL_ENVELOPE_LEN + (size_t)env.msg_len;
		if (have < flen)
			break;
		const uint8_t *frame = evbuffer_pullup(in, (ssize_t)flen);
		if (!frame) {
			log_err("tcp: out of memory");
			conn_finish(c);
			break;
		}
		size_t n = 0;
		dispatch_message(&w->dctx, frame, flen, w->out, DISPATCH_OUT_CAP, &n);
		evbuffer_drain(in, flen);
		c->frame_start_ms = 0;
		if (n == 0) {
			/* no answer can be formed (e.g. a response sent to us): close */
			conn_finish(c);
			break;
		}
		bufferevent_write(c->bev, w->out, n);
	}
}

static void on_read(struct bufferevent *bev, void *arg)
{
	tcp_conn_t *c = arg;
	if (c->lingering) {
		struct evbuffer *in = bufferevent_get_input(bev);
		c->discarded += evbuffer_get_length(in);
		evbuffer_drain(in, evbuffer_get_length(in));
		if (c->discarded > LINGER_MAX_BYTES)
			conn_free(c);
		return;
	}
	uint32_t frame_ms = NODE_LIMIT(&c->w->node->limits, tcp_frame_timeout_ms);
	if (c->frame_start_ms && worker_now_ms() - c->frame_start_ms > frame_ms) {
		/* a peer dripping a request slower than tcp_frame_timeout_ms: not worth a slot */
		log_peer(LOG_LVL_INFO, "tcp: request not complete after %u ms, closing", frame_ms);
		conn_free(c);
		return;
	}
	process_input(c);
	conn_maybe_close(c);
}

static void on_write(struct bufferevent *bev, void *arg)
{
	/* called when the output buffer has drained */
	tcp_conn_t *c = arg;
	if (!conn_maybe_close(c))
		return;
	if (c->paused && !c->close_after_flush) {
		c->paused = false;
		process_input(c);
		if (!c->paused && !c->close_after_flush && !c->peer_closed)
			bufferevent_enable(c->bev, EV_READ);
		conn_maybe_close(c);
	}
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	tcp_conn_t *c = arg;
	if (c->lingering) {
		conn_free(c);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		c->peer_closed = true;
		/* a partial frame can never complete now */
		struct evbuffer *in = bufferevent_get_input(c->bev);
		evbuffer_drain(in, evbuffer_get_length(in));
		conn_finish(c);
		conn_maybe_close(c);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT)
		log_debug("tcp: idle timeout, closing");
	else if (what & BEV_EVENT_ERROR)
		log_debug("tcp: connection error: %s", strerror(EVUTIL_SOCKET_ERROR()));
	conn_free(c);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
	worker_t *w = arg;
	if (w->stopping) {
		close(fd);
		return;
	}
	uint32_t max_conns = NODE_LIMIT(&w->node->limits, max_connections);
	if (w->n_conns >= max_conns) {
		log_peer(LOG_LVL_WARN, "tcp: max_connections (%u) reached, refusing a connection",
		         max_conns);
		close(fd);
		return;
	}
	int one = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	tcp_conn_t *c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	c->w = w;
	c->bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!c->bev) {
		close(fd);
		free(c);
		return;
	}
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	w->n_conns++;
	bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
	conn_set_timeouts(c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

#define ACCEPT_PAUSE_MS 100

static void listeners_enable(worker_t *w, bool on)
{
	for (unsigned i = 0; w->tcp && i < w->fds.n_tcp; i++) {
		if (w->tcp[i])
			on ? evconnlistener_enable(w->tcp[i]) : evconnlistener_disable(w->tcp[i]);
	}
	http_listeners_enable(w, on);
}

static void on_accept_resume(evutil_socket_t fd, short what, void *arg)
{
	worker_t *w = arg;
	if (!w->stopping)
		listeners_enable(w, true);
}

void tcp_accept_error(struct evconnlistener *l, void *arg)
{
	worker_t *w = worker_self;
	int err = EVUTIL_SOCKET_ERROR();
	if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
		log_peer(LOG_LVL_WARN, "accept: %s; pausing new connections for %d ms",
		         evutil_socket_error_to_string(err), ACCEPT_PAUSE_MS);
		if (!w->accept_resume_ev)
			w->accept_resume_ev = evtimer_new(w->base, on_accept_resume, w);
		if (w->accept_resume_ev && !evtimer_pending(w->accept_resume_ev, NULL)) {
			struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};
			listeners_enable(w, false);
			evtimer_add(w->accept_resume_ev, &tv);
		}
		return;
	}
	log_peer(LOG_LVL_INFO, "accept: %s", evutil_socket_error_to_string(err));
}

int tcp_start(worker_t *w)
{
	w->tcp = calloc(w->fds.n_tcp ? w->fds.n_tcp : 1, sizeof(*w->tcp));
	if (!w->tcp)
		return HDL_ENOMEM;
	for (unsigned i = 0; i < w->fds.n_tcp; i++) {
		w->tcp[i] = evconnlistener_new(w->base, on_accept, w, LEV_OPT_CLOSE_ON_FREE, 0,
		                               w->fds.tcp[i]);
		if (!w->tcp[i])
			return HDL_ENOMEM;
		w->fds.tcp[i] = -1; /* owned by the listener now */
		evconnlistener_set_error_cb(w->tcp[i], tcp_accept_error);
	}
	return HDL_EOK;
}

void tcp_stop(worker_t *w)
{
	if (w->tcp) {
		for (unsigned i = 0; i < w->fds.n_tcp; i++) {
			if (w->tcp[i]) {
				evconnlistener_free(w->tcp[i]);
				w->tcp[i] = NULL;
			}
		}
	}
	tcp_conn_t *c = w->conns;
	while (c) {
		tcp_conn_t *next = c->next;
		conn_finish(c);
		conn_maybe_close(c);
		c = next;
	}
}

void tcp_free_all(worker_t *w)
{
	tcp_stop(w);
	if (w->accept_resume_ev) {
		event_free(w->accept_resume_ev);
		w->accept_resume_ev = NULL;
	}
	while (w->conns)
		conn_free(w->conns);
	free(w->tcp);
	w->tcp = NULL;
}
