/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Authenticated administration (hdl_client_admin, IDIS sessions) against a scripted mock
 *        server on 127.0.0.1: it challenges admin requests with RC 402 (RD digest + nonce, a
 *        fresh SessionId), verifies OC 200 answers with our own verify functions (HS_SECKEY and
 *        HS_PUBKEY), "executes" the remembered request, streams LIST_HANDLES in three CN parts,
 *        and implements the IDIS OC 2001 login on a persistent connection.
 */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "hdl/auth.h"
#include "hdl/client.h"
#include "hdl/error.h"
#include "hdl/msg.h"
#include "tests/lib/testfiles.h"

enum mock_mode {
	MOCK_OK = 0,     /**< challenge, verify, execute */
	MOCK_BAD_DIGEST, /**< challenge with a digest that is not of the request */
	MOCK_BUSY,       /**< RC 3 to every admin request */
	MOCK_SILENT,     /**< read requests, never answer */
};

#define MOCK_CONNS    16
#define MOCK_PEND     16
#define MOCK_BUF      65536
#define LIST_PARTS    3
#define LIST_PER_PART 50
#define LIST_LAST     7

typedef struct pend {
	bool used;
	uint32_t session;
	unsigned conn_no; /**< connection the challenge went out on */
	uint8_t req[4096];
	size_t req_len;
	uint8_t nonce[16];
	uint8_t digest[HDL_DIGEST_MAX_LEN];
	size_t digest_len;
} pend_t;

typedef struct mconn {
	int fd;
	unsigned no;        /**< accept order, from 1 */
	uint32_t logged_in; /**< IDIS session id after a successful login, else 0 */
	uint8_t buf[MOCK_BUF];
	size_t len;
} mconn_t;

typedef struct mock {
	int lfd;
	uint16_t port;
	int stop[2];
	pthread_t thr;
	_Atomic int mode;
	const char *secret;
	EVP_PKEY *pub; /**< key HS_PUBKEY answers must verify with */
	pend_t pend[MOCK_PEND];
	uint32_t next_session;
	mconn_t conns[MOCK_CONNS];
	unsigned accepted;
	/* observations (read after the exchange) */
	_Atomic unsigned answers_ok, answers_bad, answered_same_conn, answered_new_conn;
	_Atomic unsigned logins, unchallenged, challenges;
	uint8_t last_alg; /**< first byte of the last HS_SECKEY signedResponse */
	char last_auth_type[16];
	uint32_t last_answer_session;
	uint32_t last_opflags;
} mock_t;

/* ---- mock server ------------------------------------------------------------------------------
 */

/** Encode and send \p m; a client that hung up (the tests that stop early) is not an error. */
static void mock_send(mconn_t *cn, hdl_msg_t *m)
{
	uint8_t out[MOCK_BUF];
	size_t n = 0;
	if (hdl_msg_encode(m, out, sizeof(out), &n) != HDL_EOK)
		abort(); /* a bug in the mock itself */
	(void)send(cn->fd, out, n, MSG_NOSIGNAL);
}

/** A response to \p req: negotiated version, its RequestId and opcode, expiration ahead. */
static void resp_init(hdl_msg_t *m, const hdl_msg_t *req, uint32_t rcode)
{
	hdl_msg_init(m);
	hdl_version_negotiate(&req->env, &m->env.major, &m->env.minor);
	m->env.session_id = req->env.session_id;
	m->env.request_id = req->env.request_id;
	m->hdr.opcode = req->hdr.opcode;
	m->hdr.rcode = rcode;
	m->hdr.opflags = HDL_OF_REC;
	m->hdr.expiration = (uint32_t)time(NULL) + 43200u;
	m->kind = HDL_BODY_EMPTY;
}

/** An error answer to \p req with \p opcode and the RequestId \p request_id. */
static void mock_error(mconn_t *cn, const hdl_msg_t *req, uint32_t request_id, uint32_t opcode,
                       uint32_t rcode)
{
	hdl_msg_t m;
	resp_init(&m, req, rcode);
	m.env.request_id = request_id;
	m.hdr.opcode = opcode;
	m.kind = HDL_BODY_ERROR;
	m.u.error.message = hdl_slice_str("mock says no");
	mock_send(cn, &m);
}

/** Carry out \p orig and answer with \p request_id (the OC 200's). */
static void mock_execute(mock_t *mk, mconn_t *cn, const hdl_msg_t *orig, uint32_t request_id,
                         uint32_t session)
{
	hdl_msg_t m;
	(void)mk;
	resp_init(&m, orig, HDL_RC_SUCCESS);
	m.env.request_id = request_id;
	m.env.session_id = session;
	switch (orig->hdr.opcode) {
	case HDL_OC_CREATE_HANDLE:
		m.kind = HDL_BODY_HANDLE;
		m.u.handle = orig->u.values.handle;
		mock_send(cn, &m);
		break;
	case HDL_OC_LIST_HANDLES: {
		char names[LIST_PER_PART][32];
		hdl_slice_t hs[LIST_PER_PART];
		unsigned k = 0;
		for (unsigned part = 0; part < LIST_PARTS; part++) {
			unsigned n = part + 1 < LIST_PARTS ? LIST_PER_PART : LIST_LAST;
			for (unsigned i = 0; i < n; i++, k++) {
				snprintf(names[i], sizeof(names[i]), "88.100/h%03u", k);
				hs[i] = hdl_slice_str(names[i]);
			}
			m.kind = HDL_BODY_LIST;
			m.u.list.n_handles = n;
			m.u.list.handles = hs;
			m.hdr.opflags = HDL_OF_REC | (part + 1 < LIST_PARTS ? HDL_OF_CN : 0);
			mock_send(cn, &m);
		}
		break;
	}
	default: mock_send(cn, &m); break;
	}
}

static void mock_challenge(mock_t *mk, mconn_t *cn, const hdl_msg_t *req, const uint8_t *raw,
                           size_t len, uint32_t session)
{
	pend_t *p = NULL;
	hdl_msg_t m;
	size_t dl = 0;

	for (int i = 0; i < MOCK_PEND && !p; i++)
		if (!mk->pend[i].used)
			p = &mk->pend[i];
	assert_non_null(p);
	assert_true(len <= sizeof(p->req));
	p->used = true;
	p->session = session;
	p->conn_no = cn->no;
	memcpy(p->req, raw, len);
	p->req_len = len;
	assert_int_equal(RAND_bytes(p->nonce, sizeof(p->nonce)), 1);
	resp_init(&m, req, HDL_RC_AUTHENTICATION_NEEDED);
	m.env.session_id = session;
	m.hdr.opflags = HDL_OF_REC | HDL_OF_RD; /* RD forced on challenges */
	m.rd_alg = hdl_digest_alg_for(m.env.major, m.env.minor);
	assert_int_equal(
	    hdl_digest(m.rd_alg, req->signed_part.p, req->signed_part.len, p->digest, &dl),
	    HDL_EOK);
	p->digest_len = dl;
	m.rd.p = p->digest;
	m.rd.len = (uint32_t)dl;
	m.kind = HDL_BODY_CHALLENGE;
	m.u.challenge.nonce.p = p->nonce;
	m.u.challenge.nonce.len = sizeof(p->nonce);
	if (atomic_load(&mk->mode) == MOCK_BAD_DIGEST) {
		uint8_t bad[HDL_DIGEST_MAX_LEN];
		memcpy(bad, p->digest, dl);
		bad[0] ^= 0x01;
		m.rd.p = bad;
		mock_send(cn, &m);
		return;
	}
	atomic_fetch_add(&mk->challenges, 1);
	mock_send(cn, &m);
}

static void mock_answer(mock_t *mk, mconn_t *cn, const hdl_msg_t *ans)
{
	const hdl_body_answer_t *a = &ans->u.answer;
	hdl_arena_t arena;
	hdl_msg_t orig;
	pend_t *p = NULL;
	int v;

	for (int i = 0; i < MOCK_PEND && !p; i++)
		if (mk->pend[i].used && mk->pend[i].session == ans->env.session_id)
			p = &mk->pend[i];
	if (!p) {
		mock_error(cn, ans, ans->env.request_id, HDL_OC_CHALLENGE_RESPONSE,
		           HDL_RC_AUTHEN_TIMEOUT);
		return;
	}
	p->used = false;
	hdl_arena_init(&arena, NULL, 0, 1u << 20);
	assert_int_equal(hdl_msg_decode(p->req, p->req_len, &arena, &orig), HDL_EOK);
	snprintf(mk->last_auth_type, sizeof(mk->last_auth_type), "%.*s", (int)a->auth_type.len,
	         (const char *)a->auth_type.p);
	mk->last_answer_session = ans->env.session_id;
	if (p->conn_no == cn->no)
		atomic_fetch_add(&mk->answered_same_conn, 1);
	else
		atomic_fetch_add(&mk->answered_new_conn, 1);
	hdl_slice_t nonce = {p->nonce, sizeof(p->nonce)},
	            dig = {p->digest, (uint32_t)p->digest_len};
	if (hdl_slice_eq(a->auth_type, hdl_slice_str("HS_SECKEY"))) {
		mk->last_alg = a->signed_response.len ? a->signed_response.p[0] : 0xEE;
		v = hdl_seckey_verify(hdl_slice_str(mk->secret), nonce, dig, a->signed_response,
		                      false);
	} else {
		v = mk->pub ? hdl_pubkey_verify(mk->pub, nonce, dig, a->signed_response)
		            : HDL_EAUTH;
	}
	if (v != HDL_EOK || !hdl_slice_eq(a->id_handle, hdl_slice_str("0.NA/88.100")) ||
	    a->id_index != 300) {
		atomic_fetch_add(&mk->answers_bad, 1);
		mock_error(cn, &orig, ans->env.request_id, orig.hdr.opcode,
		           HDL_RC_AUTHENTICATION_FAILED);
		hdl_arena_free(&arena);
		return;
	}
	atomic_fetch_add(&mk->answers_ok, 1);
	if (orig.hdr.opcode == HDL_OC_LOGIN_ID_SYSTEM) {
		hdl_msg_t m;
		cn->logged_in = orig.env.session_id;
		atomic_fetch_add(&mk->logins, 1);
		resp_init(&m, &orig, HDL_RC_SUCCESS);
		m.env.request_id = ans->env.request_id;
		mock_send(cn, &m);
	} else {
		mock_execute(mk, cn, &orig, ans->env.request_id, ans->env.session_id);
	}
	hdl_arena_free(&arena);
}

static void mock_frame(mock_t *mk, mconn_t *cn, const uint8_t *raw, size_t len)
{
	hdl_arena_t arena;
	hdl_msg_t req;
	int mode = atomic_load(&mk->mode);

	hdl_arena_init(&arena, NULL, 0, 1u << 20);
	assert_int_equal(hdl_msg_decode(raw, len, &arena, &req), HDL_EOK);
	mk->last_opflags = req.hdr.opflags;
	if (mode == MOCK_SILENT)
		goto out;
	if (req.hdr.opcode == HDL_OC_CHALLENGE_RESPONSE) {
		mock_answer(mk, cn, &req);
	} else if (req.hdr.opcode == HDL_OC_LOGIN_ID_SYSTEM) {
		/* IDIS: the client picked the SessionId; the challenge carries it */
		mock_challenge(mk, cn, &req, raw, len, req.env.session_id);
	} else if (cn->logged_in && req.env.session_id == cn->logged_in) {
		atomic_fetch_add(&mk->unchallenged, 1);
		mock_execute(mk, cn, &req, req.env.request_id, req.env.session_id);
	} else if (mode == MOCK_BUSY) {
		mock_error(cn, &req, req.env.request_id, req.hdr.opcode, HDL_RC_SERVER_TOO_BUSY);
	} else {
		mock_challenge(mk, cn, &req, raw, len, ++mk->next_session);
	}
out:
	hdl_arena_free(&arena);
}

static void mock_read(mock_t *mk, mconn_t *cn)
{
	ssize_t n = recv(cn->fd, cn->buf + cn->len, sizeof(cn->buf) - cn->len, 0);
	if (n <= 0) {
		close(cn->fd);
		cn->fd = -1;
		return;
	}
	cn->len += (size_t)n;
	for (;;) {
		hdl_envelope_t e;
		size_t fl;
		if (cn->len < HDL_ENVELOPE_LEN)
			return;
		assert_int_equal(hdl_envelope_decode(cn->buf, cn->len, &e), HDL_EOK);
		fl = HDL_ENVELOPE_LEN + e.msg_len;
		assert_true(fl <= sizeof(cn->buf));
		if (cn->len < fl)
			return;
		mock_frame(mk, cn, cn->buf, fl);
		memmove(cn->buf, cn->buf + fl, cn->len - fl);
		cn->len -= fl;
	}
}

static void *mock_main(void *arg)
{
	mock_t *mk = arg;
	for (;;) {
		struct pollfd p[2 + MOCK_CONNS];
		int idx[2 + MOCK_CONNS];
		nfds_t np = 2;
		p[0] = (struct pollfd){.fd = mk->stop[0], .events = POLLIN};
		p[1] = (struct pollfd){.fd = mk->lfd, .events = POLLIN};
		for (int i = 0; i < MOCK_CONNS; i++) {
			if (mk->conns[i].fd < 0)
				continue;
			idx[np] = i;
			p[np++] = (struct pollfd){.fd = mk->conns[i].fd, .events = POLLIN};
		}
		if (poll(p, np, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[0].revents)
			break;
		if (p[1].revents & POLLIN) {
			int fd = accept4(mk->lfd, NULL, NULL, SOCK_CLOEXEC);
			for (int i = 0; fd >= 0 && i < MOCK_CONNS; i++) {
				if (mk->conns[i].fd >= 0)
					continue;
				mk->conns[i].fd = fd;
				mk->conns[i].no = ++mk->accepted;
				mk->conns[i].len = 0;
				mk->conns[i].logged_in = 0;
				fd = -1;
			}
			if (fd >= 0)
				close(fd);
		}
		for (nfds_t k = 2; k < np; k++)
			if (p[k].revents)
				mock_read(mk, &mk->conns[idx[k]]);
	}
	return NULL;
}

static int mock_setup(void **state)
{
	mock_t *mk = calloc(1, sizeof(*mk));
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);

	assert_non_null(mk);
	mk->secret = "secret";
	mk->next_session = 0x1233;
	for (int i = 0; i < MOCK_CONNS; i++)
		mk->conns[i].fd = -1;
	mk->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(mk->lfd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(mk->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(mk->lfd, 16), 0);
	assert_int_equal(getsockname(mk->lfd, (struct sockaddr *)&sa, &sl), 0);
	mk->port = ntohs(sa.sin_port);
	assert_int_equal(pipe(mk->stop), 0);
	assert_int_equal(pthread_create(&mk->thr, NULL, mock_main, mk), 0);
	*state = mk;
	return 0;
}

static int mock_teardown(void **state)
{
	mock_t *mk = *state;
	assert_int_equal(write(mk->stop[1], "x", 1), 1);
	pthread_join(mk->thr, NULL);
	for (int i = 0; i < MOCK_CONNS; i++)
		if (mk->conns[i].fd >= 0)
			close(mk->conns[i].fd);
	close(mk->lfd);
	close(mk->stop[0]);
	close(mk->stop[1]);
	EVP_PKEY_free(mk->pub);
	free(mk);
	return 0;
}

/* ---- client side ------------------------------------------------------------------------------
 */

static hdl_client_t *client_for(const mock_t *mk, unsigned timeout_ms)
{
	hdl_client_opts_t o = {.host = "127.0.0.1",
	                       .port = mk->port,
	                       .transport = HDL_TRANSPORT_TCP,
	                       .timeout_ms = timeout_ms};
	hdl_client_t *c = NULL;
	assert_int_equal(hdl_client_new(&o, &c), HDL_EOK);
	return c;
}

static hdl_auth_t seckey(const char *secret)
{
	hdl_auth_t a = {.id_handle = hdl_slice_str("0.NA/88.100"),
	                .id_index = 300,
	                .secret = hdl_slice_str(secret),
	                .seckey_alg = HDL_MAC_AUTO};
	return a;
}

static EVP_PKEY *key_file(const char *rel)
{
	EVP_PKEY *k = key_load(rel, NULL);
	assert_non_null(k);
	return k;
}

/** A CREATE_HANDLE request for 88.100.1/x with one URL value. */
static void create_req(hdl_msg_t *m, hdl_value_t *v)
{
	hdl_admin_request_init(m, HDL_OC_CREATE_HANDLE);
	memset(v, 0, sizeof(*v));
	v->index = 1;
	v->ttl = 86400;
	v->perms = HDL_PERM_DEFAULT;
	v->type = hdl_slice_str("URL");
	v->data = hdl_slice_str("http://example.org/");
	m->kind = HDL_BODY_VALUES;
	m->u.values.handle = hdl_slice_str("88.100.1/x");
	m->u.values.n_values = 1;
	m->u.values.values = v;
}

static void list_req(hdl_msg_t *m)
{
	hdl_admin_request_init(m, HDL_OC_LIST_HANDLES);
	m->kind = HDL_BODY_HANDLE;
	m->u.handle = hdl_slice_str("0.NA/88.100");
}

static void test_admin_seckey_new_conn(void **state)
{
	mock_t *mk = *state;
	hdl_client_t *c = client_for(mk, 5000);
	hdl_auth_t a = seckey("secret");
	hdl_admin_opts_t o = {.auth = &a, .answer_via = HDL_ANSWER_NEW_CONN};
	hdl_result_t *r = NULL;
	hdl_value_t v;
	hdl_msg_t m;

	create_req(&m, &v);
	assert_int_equal(hdl_client_admin(c, &m, &o, &r), HDL_EOK);
	assert_int_equal(hdl_result_rcode(r), HDL_RC_SUCCESS);
	assert_int_equal(hdl_result_msg(r)->hdr.opcode, HDL_OC_CREATE_HANDLE);
	assert_int_equal(hdl_result_msg(r)->kind, HDL_BODY_HANDLE);
	assert_true(hdl_slice_eq(hdl_result_msg(r)->u.handle, hdl_slice_str("88.100.1/x")));
	assert_int_equal(atomic_load(&mk->answers_ok), 1);
	assert_int_equal(atomic_load(&mk->answered_new_conn), 1); /* hdllib's way */
	assert_int_equal(mk->accepted, 2);
	assert_string_equal(mk->last_auth_type, "HS_SECKEY");
	assert_int_equal(mk->last_alg, HDL_MAC_PBKDF2_SHA1); /* 2.11: PBKDF2 as hdllib */
	assert_int_equal(mk->last_answer_session, 0x1234);
	hdl_result_free(r);
	hdl_client_free(c);
}

static void test_admin_seckey_same_conn_v25(void **state)
{
	mock_t *mk = *state;
	hdl_client_t *c = client_for(mk, 5000);
	hdl_auth_t a = seckey("secret");
	hdl_admin_opts_t o = {.auth = &a, .answer_via = HDL_ANSWER_SAME_CONN};
	hdl_result_t *r = NULL;
	hdl_value_t v;
	hdl_msg_t m;

	/* a 2.5 request: SHA-1 challenge digest, and hdllib answers 2.5 with SHA1(K||D||K) */
	create_req(&m, &v);
	m.env.minor = 5;
	m.env.sugg_minor = 5;
	assert_int_equal(hdl_client_admin(c, &m, &o, &r), HDL_EOK);
	assert_int_equal(hdl_result_rcode(r), HDL_RC_SUCCESS);
	assert_int_equal(atomic_load(&mk->answered_same_conn), 1);
	assert_int_equal(mk->accepted, 1);
	assert_int_equal(mk->last_alg, HDL_MAC_SHA1);
	hdl_result_free(r);
	hdl_client_free(c);
}

static void test_admin_pubkey(void **state)
{
	static const char *const privs[] = {"tests/data/admpriv.bin", "tests/data/dsapriv.pem"};
	mock_t *mk = *state;
	(void)mk;
	for (int k = 0; k < 2; k++) {
		hdl_client_t *c = client_for(mk, 5000);
		hdl_auth_t a = seckey("");
		hdl_admin_opts_t o = {.auth = &a};
		hdl_result_t *r = NULL;
		hdl_msg_t m;

		a.key = key_file(privs[k]);
		EVP_PKEY_free(mk->pub);
		mk->pub = key_file(privs[k]); /* the mock verifies with the public half */
		hdl_admin_request_init(&m, HDL_OC_DELETE_HANDLE);
		m.kind = HDL_BODY_HANDLE;
		m.u.handle = hdl_slice_str("88.100.1/x");
		assert_int_equal(hdl_client_admin(c, &m, &o, &r), HDL_EOK);
		assert_int_equal(hdl_result_rcode(r), HDL_RC_SUCCESS);
		assert_string_equal(mk->last_auth_type, "HS_PUBKEY");
		assert_int_equal(atomic_load(&mk->answers_ok), (unsigned)k + 1);
		hdl_result_free(r);
		/* the other key's signature is refused: RC 403 comes back as the answer */
		EVP_PKEY_free(mk->pub);
		mk->pub = key_file(privs[1 - k]);
		assert_int_equal(hdl_client_admin(c, &m, &o, &r), HDL_EOK);
		assert_int_equal(hdl_result_rcode(r), HDL_RC_AUTHENTICATION_FAILED);
		hdl_result_free(r);
		EVP_PKEY_free(a.key);
		hdl_client_free(c);
	}
}

static void test_admin_refusals(void **state)
{
	mock_t *mk = *state;
	hdl_client_t *c = client_for(mk, 5000);
	hdl_auth_t good = seckey("secret"), bad = seckey("wrong");
	hdl_admin_opts_t o = {.auth = &bad};
	hdl_result_t *r = NULL;
	hdl_value_t v;
	hdl_msg_t m;

	/* a wrong secret: the server's RC 403 is the answer */
	create_req(&m, &v);
	assert_int_equal(hdl_client_admin(c, &m, &o, &r), HDL_EOK);
	assert_int_equal(hdl_result_rcode(r), HDL_RC_AUTHENTICATION_FAILED);
	assert_int_equal(atomic_load(&mk->answers_bad), 1);
	hdl_result_free(r);

	/* no credentials: the challenge itself comes back */
	o.auth = NULL;
	assert_int_equal(hdl_client_admin(c, &m, &o, &r), HDL_EOK);
	assert_int_equal(hdl_result_rcode(r), HDL_RC_AUTHENTICATION_NEEDED);
	assert_int_equal(hdl_result_msg(r)->kind, HDL_BODY_CHALLENGE);
	hdl_result_free(r);

	/* a challenge for another request is refused and nothing is signed */
	o.auth = &good;
	atomic_store(&mk->mode, MOCK_BAD_DIGEST);
	assert_int_equal(hdl_client_admin(c, &m, &o, &r), HDL_EDIGEST);
	assert_null(r);
	assert_int_equal(atomic_load(&mk->answers_ok) + atomic_load(&mk->answers_bad), 1);

	/* RC 3: surfaced, not retried */
	atomic_store(&mk->mode, MOCK_BUSY);
	assert_int_equal(hdl_client_admin(c, &m, &o, &r), HDL_EOK);
	assert_int_equal(hdl_result_rcode(r), HDL_RC_SERVER_TOO_BUSY);
	hdl_result_free(r);

	/* a silent server: the whole exchange is bounded by the timeout */
	atomic_store(&mk->mode, MOCK_SILENT);
	hdl_client_free(c);
	c = client_for(mk, 300);
	assert_int_equal(hdl_client_admin(c, &m, &o, &r), HDL_ETIMEDOUT);
	hdl_client_free(c);

	/* nothing listening */
	{
		hdl_client_opts_t co = {
		    .host = "127.0.0.1", .port = 1, .transport = HDL_TRANSPORT_TCP};
		assert_int_equal(hdl_client_new(&co, &c), HDL_EOK);
		assert_int_equal(hdl_client_admin(c, &m, &o, &r), HDL_ECONNREFUSED);
		hdl_client_free(c);
	}
	assert_int_equal(hdl_client_admin(NULL, &m, &o, &r), HDL_EINVAL);
	{
		hdl_client_opts_t co = {.host = "127.0.0.1", .transport = HDL_TRANSPORT_HTTP};
		hdl_session_t *s = NULL;
		assert_int_equal(hdl_client_new(&co, &c), HDL_EOK);
		assert_int_equal(hdl_client_admin(c, &m, &o, &r), HDL_EINVAL);
		assert_int_equal(hdl_session_open(c, &good, &s, NULL), HDL_EINVAL);
		hdl_client_free(c);
	}
}

static int count_part(const hdl_msg_t *m, void *ctx)
{
	unsigned *n = ctx;
	assert_int_equal(m->kind, HDL_BODY_LIST);
	assert_true(m->hdr.opflags & HDL_OF_CN);
	n[0]++;
	n[1] += m->u.list.n_handles;
	return 0;
}

static int stop_part(const hdl_msg_t *m, void *ctx)
{
	(void)m;
	(void)ctx;
	return HDL_EINVAL;
}

static void test_list_streaming(void **state)
{
	mock_t *mk = *state;
	hdl_client_t *c = client_for(mk, 5000);
	hdl_auth_t a = seckey("secret");
	hdl_admin_opts_t o = {.auth = &a};
	hdl_result_t *r = NULL;
	unsigned parts = 0, handles = 0, seen[2] = {0, 0};
	hdl_msg_t m;

	/* parts kept and chained */
	list_req(&m);
	assert_int_equal(hdl_client_admin(c, &m, &o, &r), HDL_EOK);
	for (const hdl_result_t *p = r; p; p = hdl_result_next(p)) {
		const hdl_msg_t *pm = hdl_result_msg(p);
		assert_int_equal(hdl_result_rcode(p), HDL_RC_SUCCESS);
		assert_int_equal(pm->kind, HDL_BODY_LIST);
		if (parts == 0)
			assert_true(
			    hdl_slice_eq(pm->u.list.handles[0], hdl_slice_str("88.100/h000")));
		handles += pm->u.list.n_handles;
		parts++;
	}
	assert_int_equal(parts, LIST_PARTS);
	assert_int_equal(handles, (LIST_PARTS - 1) * LIST_PER_PART + LIST_LAST);
	hdl_result_free(r);

	/* parts to a callback, the last one returned */
	o.on_part = count_part;
	o.ctx = seen;
	assert_int_equal(hdl_client_admin(c, &m, &o, &r), HDL_EOK);
	assert_int_equal(seen[0], LIST_PARTS - 1);
	assert_int_equal(seen[1], (LIST_PARTS - 1) * LIST_PER_PART);
	assert_int_equal(hdl_result_msg(r)->u.list.n_handles, LIST_LAST);
	assert_false(hdl_result_msg(r)->hdr.opflags & HDL_OF_CN);
	assert_null(hdl_result_next(r));
	hdl_result_free(r);

	/* the callback stops it; a byte cap stops it */
	o.on_part = stop_part;
	assert_int_equal(hdl_client_admin(c, &m, &o, &r), HDL_EINVAL);
	assert_null(r);
	o.on_part = NULL;
	o.max_stream_bytes = 1000;
	assert_int_equal(hdl_client_admin(c, &m, &o, &r), HDL_ELIMIT);
	assert_null(r);
	hdl_client_free(c);
}

static void test_idis_session(void **state)
{
	mock_t *mk = *state;
	hdl_client_t *c = client_for(mk, 5000);
	hdl_auth_t a = seckey("secret");
	hdl_session_t *s = NULL;
	hdl_result_t *r = NULL;
	hdl_value_t v;
	hdl_msg_t m;
	unsigned handles = 0;

	assert_int_equal(hdl_session_open(c, &a, &s, &r), HDL_EOK);
	assert_non_null(s);
	assert_int_equal(hdl_result_rcode(r), HDL_RC_SUCCESS);
	assert_int_equal(hdl_result_msg(r)->hdr.opcode, HDL_OC_LOGIN_ID_SYSTEM);
	hdl_result_free(r);
	assert_int_equal(atomic_load(&mk->logins), 1);
	assert_int_equal(atomic_load(&mk->answered_same_conn), 1);
	assert_int_equal(mk->last_answer_session, hdl_session_id(s));    /* client-chosen */
	assert_int_equal(mk->last_opflags & (HDL_OF_RD | HDL_OF_PO), 0); /* the OC 200: no RD/PO */

	/* later requests on the session: no challenge */
	create_req(&m, &v);
	assert_int_equal(hdl_session_request(s, &m, NULL, &r), HDL_EOK);
	assert_int_equal(hdl_result_rcode(r), HDL_RC_SUCCESS);
	assert_int_equal(hdl_result_msg(r)->env.session_id, hdl_session_id(s));
	hdl_result_free(r);
	list_req(&m);
	assert_int_equal(hdl_session_request(s, &m, NULL, &r), HDL_EOK);
	for (const hdl_result_t *p = r; p; p = hdl_result_next(p))
		handles += hdl_result_msg(p)->u.list.n_handles;
	assert_int_equal(handles, (LIST_PARTS - 1) * LIST_PER_PART + LIST_LAST);
	hdl_result_free(r);
	assert_int_equal(atomic_load(&mk->unchallenged), 2);
	assert_int_equal(mk->accepted, 1);
	assert_int_equal(atomic_load(&mk->challenges), 1);
	hdl_session_close(s);

	/* a refused login */
	a = seckey("nope");
	assert_int_equal(hdl_session_open(c, &a, &s, &r), HDL_ERCODE);
	assert_null(s);
	assert_int_equal(hdl_result_rcode(r), HDL_RC_AUTHENTICATION_FAILED);
	hdl_result_free(r);
	assert_int_equal(hdl_session_open(c, NULL, &s, NULL), HDL_EINVAL);
	hdl_client_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_admin_seckey_new_conn, mock_setup, mock_teardown),
	    cmocka_unit_test_setup_teardown(test_admin_seckey_same_conn_v25, mock_setup,
	                                    mock_teardown),
	    cmocka_unit_test_setup_teardown(test_admin_pubkey, mock_setup, mock_teardown),
	    cmocka_unit_test_setup_teardown(test_admin_refusals, mock_setup, mock_teardown),
	    cmocka_unit_test_setup_teardown(test_list_streaming, mock_setup, mock_teardown),
	    cmocka_unit_test_setup_teardown(test_idis_session, mock_setup, mock_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
