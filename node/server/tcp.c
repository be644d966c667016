/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Handle over TCP (port 2641): frames of envelope + MessageLength bytes answered in order
 *        through dispatch_message() (pipelining), frames over max_message_len refused before
 *        their body is read, and the close-after-answer rule of tcp.h. Connections, buffers,
 *        back-pressure and timers are conn.c's. The same framing over TLS is the TLS stream
 *        (tls_listen, docs/delegation.md): transport "tls" in the audit trail, and never
 *        closed after an answer (node-to-node connections are persistent and pipelined).
 */
#include "node/server/tcp.h"

#include <string.h>

#include "hdl/error.h"
#include "hdl/msg.h"
#include "node/common/log.h"
#include "node/server/admin.h"
#include "node/server/obs.h"
#include "node/server/preq.h"
#include "node/server/worker.h"

/* Requests one connection may have waiting before it is read no more until answers come back. */
#define TCP_WAITING_MAX 64u

_Static_assert(sizeof(tcp_frame_t) <= sizeof(((preq_t *)0)->tpriv), "preq tpriv too small");

static inline uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

tcp_frame_rc_t tcp_frame_check(const uint8_t *p, size_t len, uint32_t max_len, tcp_frame_t *f)
{
	memset(f, 0, sizeof(*f));
	if (len < HDL_ENVELOPE_LEN) {
		/* the first byte is the major version: garbage is told at once */
		if (len && p[0] != 2 && p[0] != 3 && p[0] != 5)
			return TCP_FRAME_BAD;
		return TCP_FRAME_MORE;
	}
	hdl_envelope_t env;
	int ret = hdl_envelope_decode(p, HDL_ENVELOPE_LEN, &env);
	if (ret != HDL_EOK && ret != HDL_ELIMIT)
		return TCP_FRAME_BAD;
	f->major = p[0];
	f->minor = p[1];
	f->msg_len = be32(p + 16);
	f->encrypted = (env.flags & HDL_ENV_ENCRYPTED) != 0;
	if (ret == HDL_ELIMIT || f->msg_len > max_len)
		return TCP_FRAME_BIG;
	f->len = HDL_ENVELOPE_LEN + (size_t)f->msg_len;
	if (len < f->len)
		return TCP_FRAME_MORE;
	if (!f->encrypted && f->msg_len >= HDL_HEADER_LEN)
		f->opflags = be32(p + HDL_ENVELOPE_LEN + 8);
	return TCP_FRAME_OK;
}

bool tcp_close_after(unsigned mode, const tcp_frame_t *req, const uint8_t *reply, size_t rlen)
{
	if (mode == NODE_TCP_CLOSE_NO)
		return false;
	/* an encrypted answer cannot be read: keep the connection (the idle timeout closes) */
	if (rlen < HDL_ENVELOPE_LEN + HDL_HEADER_LEN || (reply[2] & HDL_ENV_ENCRYPTED))
		return false;
	/* a challenge is answered on the same connection; a stream goes on */
	if (be32(reply + HDL_ENVELOPE_LEN + 4) == HDL_RC_AUTHENTICATION_NEEDED ||
	    (be32(reply + HDL_ENVELOPE_LEN + 8) & HDL_OF_CN))
		return false;
	if (mode == NODE_TCP_CLOSE_YES)
		return true;
	if (req->encrypted || (req->opflags & HDL_OF_KC))
		return false;
	return (req->major == 2 && req->minor >= 11) || req->major == 3;
}

/*
 * A request that waited is answered (out of order is fine: the Handle protocol matches answers
 * by RequestId). A list streams a chunk at a time: the next one once the output has room.
 */
static void on_complete(preq_t *p)
{
	conn_t *c = p->conn;
	worker_t *w = c->w;
	size_t n = dispatch_preq_reply(&w->dctx, p, w->out, DISPATCH_OUT_CAP);
	if (n)
		hdl_buf_put(conn_out(c), w->out, n);
	if (p->kind == PREQ_LIST && p->more && n) {
		if (conn_out_full(c)) {
			c->on_drain = p; /* conn.c posts it again when the output drained */
		} else {
			p->inflight = true;
			preq_post(p);
		}
		conn_resume(c);
		return;
	}
	tcp_frame_t f;
	memcpy(&f, p->tpriv, sizeof(f));
	unsigned mode =
	    conn_is_tls(c) ? NODE_TCP_CLOSE_NO : NODE_LIMIT(&w->node->limits, tcp_close);
	bool close_after = n && tcp_close_after(mode, &f, w->out, n);
	preq_unlink(&c->waiting, p);
	preq_done(p);
	c->n_waiting--;
	if (c->n_waiting < TCP_WAITING_MAX)
		c->blocked = false;
	if (close_after && c->n_waiting == 0 && c->in_len == 0 && c->drained)
		c->closing = true;
	conn_resume(c);
}

typedef struct tcp_origin {
	conn_t *c;
	const tcp_frame_t *f;
} tcp_origin_t;

static void attach(void *tctx, preq_t *p)
{
	tcp_origin_t *o = tctx;
	conn_t *c = o->c;
	memcpy(p->tpriv, o->f, sizeof(*o->f));
	preq_link(&c->waiting, p, c);
	p->complete = on_complete;
	if (++c->n_waiting >= TCP_WAITING_MAX)
		c->blocked = true;
}

static size_t tcp_process(conn_t *c, const uint8_t *p, size_t len)
{
	worker_t *w = c->w;
	const node_limits_t *lim = &w->node->limits;
	uint32_t max_len = NODE_LIMIT(lim, max_message_len);
	/* the TLS stream is node-to-node and pipelined: it stays open until idle */
	unsigned mode = conn_is_tls(c) ? NODE_TCP_CLOSE_NO : NODE_LIMIT(lim, tcp_close);
	hdl_buf_t *out = conn_out(c);
	size_t off = 0;
	bool close_after = false;
	uint64_t t_in =
	    w->dctx.timing ? obs_now_ns() : 0; /* the read's requests came in together */
	while (off < len) {
		if (conn_out_full(c))
			return off; /* the rest waits for the peer to read (or for the budget) */
		tcp_frame_t f;
		tcp_frame_rc_t r = tcp_frame_check(p + off, len - off, max_len, &f);
		if (r == TCP_FRAME_MORE) {
			c->partial = true;
			break;
		}
		if (r == TCP_FRAME_BIG) {
			/* refused before its body is read */
			log_peer(LOG_LVL_NOTICE, "tcp: frame of %u bytes over max_message_len %u",
			         f.msg_len, max_len);
			size_t n = dispatch_error_reply(
			    &w->dctx, p + off, HDL_ENVELOPE_LEN, HDL_RC_PROTOCOL_ERROR,
			    "Invalid message length", w->out, DISPATCH_OUT_CAP);
			if (n)
				hdl_buf_put(out, w->out, n);
			c->closing = true;
			return off;
		}
		if (r == TCP_FRAME_BAD) {
			log_peer(LOG_LVL_INFO, "tcp: not a Handle message, closing");
			c->closing = true;
			return off;
		}
		size_t n = 0;
		tcp_origin_t to = {c, &f};
		dispatch_origin_t o = {
		    .transport = conn_is_tls(c) ? WR_T_TLS : WR_T_TCP,
		    .peer = &c->peer,
		    .peer_len = c->peer_len,
		    .auth = &c->auth,
		    .can_stream = true,
		    .attach = attach,
		    .tctx = &to,
		};
		w->dctx.t_in_ns = t_in;
		int dr = dispatch_message_from(&w->dctx, &o, p + off, f.len, w->out,
		                               DISPATCH_OUT_CAP, &n);
		off += f.len;
		if (dr == DISPATCH_WAIT) {
			close_after = false;
			if (c->blocked)
				return off; /* the rest waits for answers to come back */
			continue;
		}
		if (n == 0) {
			/* no answer can be formed (e.g. a response sent to us): close */
			c->closing = true;
			return off;
		}
		hdl_buf_put(out, w->out, n);
		close_after = tcp_close_after(mode, &f, w->out, n);
	}
	/* the last answer ends the connection, unless more was sent or is still coming */
	if (close_after && off == len && c->drained && c->n_waiting == 0)
		c->closing = true;
	return off;
}

static size_t tcp_in_max(const worker_t *w)
{
	return HDL_ENVELOPE_LEN + (size_t)NODE_LIMIT(&w->node->limits, max_message_len);
}

const conn_proto_t tcp_proto = {"tcp", tcp_process, tcp_in_max};
