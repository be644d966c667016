/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Authenticated administration over TCP: one admin request with its challenge-response
 *        (RFC 3652 §3.5, as hdllib does it: the OC 200 answer on a new connection, or on the same
 *        one), streamed (CN) answers, and the IDIS login session (OC 2001 on a persistent
 *        connection, later requests carry the client's SessionId and need no challenge).
 *
 * Flow of one request without a session:
 *
 *   client                                   server
 *     | -- request (SessionId 0) ------------> |
 *     | <-- RC 402: [RD digest] BYTES nonce -- |   SessionId S chosen by the server
 *     |  check the digest is of our request    |
 *     | -- OC 200 (SessionId S, new id) -----> |   on a new connection (default) or the same
 *     | <-- answer, the original opcode ------ |   RequestId of the OC 200; CN: more follow
 *
 * The challenge's digest must be of the exact bytes we sent (header + body): a challenge for
 * another request is refused (HDL_EDIGEST) and nothing is signed. One challenge per request: a
 * second RC 402 is returned as the answer.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "client/internal.h"
#include "hdl/auth.h"
#include "hdl/client.h"
#include "hdl/error.h"
#include "hdl/msg.h"

#define ADMIN_EXPIRATION_S   43200u                /**< hdllib: now + 12 h */
#define ADMIN_STREAM_DEFAULT (64u * 1024u * 1024u) /**< bytes of a streamed answer */
#define ADMIN_ANSWER_MAX \
	(HDL_PUBKEY_RESP_MAX > HDL_SECKEY_RESP_MAX ? HDL_PUBKEY_RESP_MAX : HDL_SECKEY_RESP_MAX)

struct hdl_session {
	hdl_client_t *c;
	const hdl_auth_t *auth; /**< borrowed: must outlive the session */
	int fd;                 /**< the persistent connection, -1 once broken */
	uint32_t session_id;    /**< ours (IDIS: client-chosen) */
};

void hdl_admin_request_init(hdl_msg_t *m, uint32_t opcode)
{
	hdl_msg_init(m);
	m->hdr.opcode = opcode;
	m->hdr.opflags =
	    HDL_OF_REC | HDL_OF_CA | HDL_OF_PO; /* what hdllib's admin requests carry */
	m->hdr.site_serial = 0xFFFF;
	m->hdr.expiration = (uint32_t)time(NULL) + ADMIN_EXPIRATION_S;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/** One encoded request: its bytes and what answers must echo. */
typedef struct sent {
	uint8_t *frame;
	size_t len;
	uint32_t request_id;
	uint32_t opcode;
} sent_t;

/** \brief Encode \p m with a fresh RequestId and send it on \p fd. */
static int send_msg(int fd, hdl_msg_t *m, int64_t deadline, sent_t *s)
{
	int ret;

	m->env.request_id = hdl_cli_request_id();
	m->env.seq = 0;
	s->frame = NULL;
	ret = hdl_cli_encode(m, &s->frame, &s->len);
	if (ret != HDL_EOK)
		return ret;
	s->request_id = m->env.request_id;
	s->opcode = m->hdr.opcode;
	return hdl_cli_send(fd, s->frame, s->len, deadline);
}

/** \brief Read one answer to \p s from \p fd (any opcode when \p any_opcode). */
static int read_answer(int fd, const sent_t *s, bool any_opcode, int64_t deadline, size_t *bytes,
                       hdl_result_t **out)
{
	uint8_t *raw = NULL;
	size_t len = 0;
	int ret = hdl_cli_read_frame(fd, deadline, &raw, &len);

	*out = NULL;
	if (ret != HDL_EOK)
		return ret;
	*bytes += len;
	return hdl_cli_result(raw, len, s->frame, s->len, s->request_id,
	                      any_opcode ? HDL_OC_CHALLENGE_RESPONSE : s->opcode, false, out);
}

/**
 * \brief Check that challenge \p ch is for the request \p s: its digest (RD block, or the 2.0
 *        MD5 after the nonce) must equal our own digest of the bytes we sent.
 * \retval HDL_EOK, HDL_EDIGEST, HDL_EPROTO (no digest or no nonce)
 */
static int challenge_check(const hdl_msg_t *ch, const sent_t *s, hdl_slice_t *digest)
{
	uint8_t mine[HDL_DIGEST_MAX_LEN];
	size_t ml = 0;
	uint8_t alg;
	uint32_t body_len;

	if (ch->kind != HDL_BODY_CHALLENGE || ch->u.challenge.nonce.len == 0)
		return HDL_EPROTO;
	if (ch->rd.len > 0) {
		*digest = ch->rd;
		alg = ch->rd_alg;
	} else if (ch->u.challenge.old_digest.len > 0) {
		*digest = ch->u.challenge.old_digest;
		alg = HDL_DIGEST_OLD_MD5;
	} else {
		return HDL_EPROTO;
	}
	body_len = be32(s->frame + HDL_ENVELOPE_LEN + 20);
	if (hdl_digest(alg, s->frame + HDL_ENVELOPE_LEN, HDL_HEADER_LEN + (size_t)body_len, mine,
	               &ml) != HDL_EOK)
		return HDL_EPROTO;
	if (ml != digest->len || memcmp(mine, digest->p, ml) != 0)
		return HDL_EDIGEST;
	return HDL_EOK;
}

/** \brief Build and send the OC 200 answer to challenge \p ch of request \p orig. */
static int send_answer(int fd, const hdl_msg_t *orig, const hdl_msg_t *ch, const hdl_auth_t *a,
                       hdl_slice_t digest, int64_t deadline, sent_t *s)
{
	uint8_t sr[ADMIN_ANSWER_MAX];
	size_t srl = 0;
	hdl_msg_t m;
	int ret;

	ret = hdl_auth_answer(a, &ch->env, ch->u.challenge.nonce, digest, sr, sizeof(sr), &srl);
	if (ret != HDL_EOK)
		return ret;
	hdl_admin_request_init(&m, HDL_OC_CHALLENGE_RESPONSE);
	m.env.major = orig->env.major;
	m.env.minor = orig->env.minor;
	m.env.sugg_major = orig->env.sugg_major;
	m.env.sugg_minor = orig->env.sugg_minor;
	m.env.session_id = ch->env.session_id;
	m.hdr.opflags = orig->hdr.opflags & ~HDL_OF_RD;
	m.kind = HDL_BODY_CHAL_ANSWER;
	m.u.answer.auth_type = hdl_auth_type(a);
	m.u.answer.id_handle = a->id_handle;
	m.u.answer.id_index = a->id_index;
	m.u.answer.signed_response.p = sr;
	m.u.answer.signed_response.len = (uint32_t)srl;
	ret = send_msg(fd, &m, deadline, s);
	OPENSSL_cleanse(sr, sizeof(sr));
	return ret;
}

/**
 * \brief Read the rest of a streamed answer after \p first (while CN is set). Takes \p first.
 *        With o->on_part every message but the last goes to the callback and is freed; without,
 *        the messages are linked after \p first (hdl_result_next).
 * \retval HDL_EOK (\p *out: the answer to return), HDL_ELIMIT (over the byte cap), a non-zero
 *         return of the callback, transport errors
 */
static int read_stream(int fd, const sent_t *s, const hdl_admin_opts_t *o, int64_t deadline,
                       size_t *bytes, hdl_result_t *first, hdl_result_t **out)
{
	size_t cap = o && o->max_stream_bytes ? o->max_stream_bytes : ADMIN_STREAM_DEFAULT;
	bool cb = o && o->on_part;
	hdl_result_t *head = first, *tail = first;
	int ret = HDL_EOK;

	*out = NULL;
	while (hdl_result_msg(tail)->hdr.opflags & HDL_OF_CN) {
		hdl_result_t *next = NULL;

		if (*bytes > cap) {
			ret = HDL_ELIMIT;
			break;
		}
		if (cb && (ret = o->on_part(hdl_result_msg(tail), o->ctx)) != 0)
			break;
		ret = read_answer(fd, s, true, deadline, bytes, &next);
		if (ret != HDL_EOK)
			break;
		if (cb) {
			hdl_result_free(tail);
			head = tail = next;
		} else {
			hdl_cli_result_link(tail, next);
			tail = next;
		}
	}
	if (ret == HDL_EOK && *bytes > cap)
		ret = HDL_ELIMIT;
	if (ret != HDL_EOK) {
		hdl_result_free(head);
		return ret;
	}
	*out = head;
	return HDL_EOK;
}

/**
 * \brief Send \p req on \p *fd and get its final answer, answering one challenge.
 * \param via   where the OC 200 goes; with HDL_ANSWER_NEW_CONN \p *fd is replaced (and may be
 *              left negative when the new connection fails)
 * \param auth  NULL: a challenge is the answer
 */
static int admin_run(hdl_client_t *c, int *fd, hdl_msg_t *req, const hdl_auth_t *auth,
                     hdl_answer_via_t via, const hdl_admin_opts_t *o, hdl_result_t **out)
{
	int64_t deadline = hdl_cli_deadline(c);
	hdl_result_t *r = NULL;
	sent_t s = {0}, sa = {0};
	const sent_t *answering = &s;
	size_t bytes = 0;
	int ret;

	*out = NULL;
	ret = send_msg(*fd, req, deadline, &s);
	if (ret != HDL_EOK)
		goto out;
	ret = read_answer(*fd, &s, false, deadline, &bytes, &r);
	if (ret != HDL_EOK)
		goto out;
	if (hdl_result_rcode(r) == HDL_RC_AUTHENTICATION_NEEDED && auth) {
		const hdl_msg_t *ch = hdl_result_msg(r);
		hdl_slice_t digest = {NULL, 0};
		uint32_t op;

		ret = challenge_check(ch, &s, &digest);
		if (ret != HDL_EOK)
			goto out;
		if (via == HDL_ANSWER_NEW_CONN) {
			close(*fd);
			*fd = hdl_cli_connect(c, deadline);
			if (*fd < 0) {
				ret = *fd;
				goto out;
			}
		}
		ret = send_answer(*fd, req, ch, auth, digest, deadline, &sa);
		if (ret != HDL_EOK)
			goto out;
		hdl_result_free(r);
		r = NULL;
		answering = &sa;
		/* answered with the original opcode (an error may come as OC 200) */
		ret = read_answer(*fd, &sa, true, deadline, &bytes, &r);
		if (ret != HDL_EOK)
			goto out;
		op = hdl_result_msg(r)->hdr.opcode;
		if (op != req->hdr.opcode && op != HDL_OC_CHALLENGE_RESPONSE) {
			ret = HDL_EPROTO;
			goto out;
		}
	}
	ret = read_stream(*fd, answering, o, deadline, &bytes, r, out);
	r = NULL;
out:
	hdl_result_free(r);
	free(s.frame);
	free(sa.frame);
	return ret;
}

int hdl_client_admin(hdl_client_t *c, hdl_msg_t *req, const hdl_admin_opts_t *o, hdl_result_t **out)
{
	int fd;
	int ret;

	if (out)
		*out = NULL;
	/* admin goes over TCP to the client's address: not to an HTTP port */
	if (!c || !req || !out || hdl_cli_transport(c) == HDL_TRANSPORT_HTTP)
		return HDL_EINVAL;
	fd = hdl_cli_connect(c, hdl_cli_deadline(c));
	if (fd < 0)
		return fd;
	ret = admin_run(c, &fd, req, o ? o->auth : NULL, o ? o->answer_via : HDL_ANSWER_NEW_CONN, o,
	                out);
	if (fd >= 0)
		close(fd);
	return ret;
}

/* ---- IDIS sessions --------------------------------------------------------------------------- */

int hdl_session_open(hdl_client_t *c, const hdl_auth_t *auth, hdl_session_t **out,
                     hdl_result_t **reply)
{
	hdl_session_t *s = NULL;
	hdl_result_t *r = NULL;
	hdl_msg_t m;
	int ret = HDL_EINVAL;

	if (out)
		*out = NULL;
	if (reply)
		*reply = NULL;
	if (!c || !auth || !out || hdl_cli_transport(c) == HDL_TRANSPORT_HTTP)
		goto out;
	ret = HDL_ENOMEM;
	s = calloc(1, sizeof(*s));
	if (!s)
		goto out;
	s->c = c;
	s->auth = auth;
	s->session_id = hdl_cli_request_id(); /* client-chosen, as the IDIS SDK does */
	s->fd = hdl_cli_connect(c, hdl_cli_deadline(c));
	if (s->fd < 0) {
		ret = s->fd;
		goto out;
	}
	/* id-pointer's login: 2.10 suggesting 2.11, REC | RD (SHA-256), PO clear, no credential */
	hdl_admin_request_init(&m, HDL_OC_LOGIN_ID_SYSTEM);
	m.env.minor = 10;
	m.env.session_id = s->session_id;
	m.hdr.opflags = HDL_OF_REC | HDL_OF_RD;
	m.kind = HDL_BODY_LOGIN;
	m.u.login.id_handle = auth->id_handle;
	m.u.login.id_index = auth->id_index;
	ret = admin_run(c, &s->fd, &m, auth, HDL_ANSWER_SAME_CONN, NULL, &r);
	if (ret != HDL_EOK)
		goto out;
	if (hdl_result_rcode(r) != HDL_RC_SUCCESS) {
		ret = HDL_ERCODE;
		goto out;
	}
	*out = s;
	s = NULL;
out:
	if (reply)
		*reply = r;
	else
		hdl_result_free(r);
	hdl_session_close(s);
	return ret;
}

int hdl_session_request(hdl_session_t *s, hdl_msg_t *req, const hdl_admin_opts_t *o,
                        hdl_result_t **out)
{
	int ret;

	if (out)
		*out = NULL;
	if (!s || !req || !out)
		return HDL_EINVAL;
	if (s->fd < 0)
		return HDL_EIO;
	req->env.session_id = s->session_id;
	ret = admin_run(s->c, &s->fd, req, s->auth, HDL_ANSWER_SAME_CONN, o, out);
	if (ret != HDL_EOK && s->fd >= 0) {
		/* the stream may be out of step: this session is over */
		close(s->fd);
		s->fd = -1;
	}
	return ret;
}

uint32_t hdl_session_id(const hdl_session_t *s)
{
	return s ? s->session_id : 0;
}

void hdl_session_close(hdl_session_t *s)
{
	if (!s)
		return;
	if (s->fd >= 0)
		close(s->fd);
	free(s);
}
