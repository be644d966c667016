/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Client library tests against a tiny in-process responder on 127.0.0.1 (UDP, TCP and
 *        the HTTP native tunnel on free ports), answering with hdl_msg_encode.
 */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "hdl/client.h"
#include "hdl/error.h"
#include "hdl/msg.h"
#include "hdl/values.h"

/* ---- responder ----------------------------------------------------------------------------- */

enum resp_mode {
	RM_OK = 0,     /**< answer with the handle's values (filtered like a server) */
	RM_SILENT,     /**< read and never answer (TCP: hold the connection open) */
	RM_WRONG_ID,   /**< answer with RequestId + 1 */
	RM_BIG,        /**< add a value that makes the answer span several UDP datagrams */
	RM_BAD_DIGEST, /**< answer with a wrong RD digest */
	RM_CHUNKED,    /**< HTTP: Transfer-Encoding: chunked */
	RM_NOTFOUND,   /**< RC 100 with an error message */
	RM_GARBLED,    /**< UDP: an answer with our RequestId whose body does not decode */
	RM_HUGE,       /**< TCP: an envelope announcing a message over the limit */
	RM_SHORT,      /**< TCP: half the answer, then close */
	RM_NOLEN,      /**< HTTP: no Content-Length */
	RM_404,        /**< HTTP: status 404 */
	RM_RC_ERROR,   /**< RC 2 (ERROR): idnoded's "answer too large for UDP, ask over TCP" */
};

#define BIG_LEN 1500u
#define MAX_HELD 16

typedef struct responder {
	int udp_fd, tcp_fd, http_fd;
	uint16_t port;      /**< UDP and TCP share it, like 2641 */
	uint16_t http_port;
	int stop[2];
	pthread_t thr;
	_Atomic int udp_mode, tcp_mode, http_mode;
	_Atomic unsigned udp_reqs, tcp_reqs, http_reqs;
	int held[MAX_HELD]; /**< silent TCP connections, closed at stop */
	int n_held;
	char http_line[512]; /**< last HTTP request line */
	bool http_ct_ok;     /**< Content-Type: application/x-hdl-message was sent */
	uint32_t last_opflags;
} responder_t;

static uint8_t big_data[BIG_LEN];

static int bind_lo(int type, uint16_t port, uint16_t *out)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	int one = 1;
	int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons(port);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    (type == SOCK_STREAM && listen(fd, 16) != 0) ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
		close(fd);
		return -1;
	}
	*out = ntohs(sa.sin_port);
	return fd;
}

/** \brief Build the answer to \p req (a decoded request) into \p out. */
static size_t build_answer(const hdl_msg_t *req, int mode, uint8_t *out, size_t cap)
{
	static const char *const types[] = {"URL", "EMAIL", "BLOB"};
	static const char *const datas[] = {"http://example.org/", "a@example.org", NULL};
	hdl_value_t vals[3];
	uint32_t n = 0;
	uint8_t dig[HDL_DIGEST_MAX_LEN];
	size_t dlen = 0, outlen = 0;
	hdl_msg_t m;

	hdl_msg_init(&m);
	m.env.request_id = req->env.request_id + (mode == RM_WRONG_ID ? 1u : 0u);
	m.hdr.opcode = req->hdr.opcode;
	m.hdr.opflags = (req->hdr.opflags & (HDL_OF_CA | HDL_OF_PO | HDL_OF_RD)) | HDL_OF_REC;
	m.hdr.site_serial = 1;
	m.hdr.expiration = (uint32_t)time(NULL) + 43200u;
	if (req->hdr.opflags & HDL_OF_RD) {
		m.rd_alg = HDL_DIGEST_SHA256;
		if (hdl_digest(HDL_DIGEST_SHA256, req->signed_part.p, req->signed_part.len, dig,
		               &dlen) != HDL_EOK)
			return 0;
		if (mode == RM_BAD_DIGEST)
			dig[0] ^= 0xFF;
		m.rd.p = dig;
		m.rd.len = (uint32_t)dlen;
	}
	if (mode == RM_NOTFOUND || mode == RM_RC_ERROR) {
		m.hdr.rcode = mode == RM_NOTFOUND ? HDL_RC_HANDLE_NOT_FOUND : HDL_RC_ERROR;
		m.kind = HDL_BODY_ERROR;
		m.u.error.message = hdl_slice_str(mode == RM_NOTFOUND ? "no such handle" : "use TCP");
	} else {
		m.hdr.rcode = HDL_RC_SUCCESS;
		m.kind = HDL_BODY_VALUES;
		m.u.values.handle = req->u.resolve.handle;
		for (uint32_t i = 0; i < 3; i++) {
			hdl_value_t *v = &vals[n];
			bool keep = true;

			if (i == 2 && mode != RM_BIG)
				continue;
			memset(v, 0, sizeof(*v));
			v->index = i + 1;
			v->timestamp = 0x65000000u;
			v->ttl = 86400;
			v->perms = HDL_PERM_DEFAULT;
			v->type = hdl_slice_str(types[i]);
			if (datas[i]) {
				v->data = hdl_slice_str(datas[i]);
			} else {
				v->data.p = big_data;
				v->data.len = BIG_LEN;
			}
			/* filters as a server applies them */
			if (req->u.resolve.n_types) {
				keep = false;
				for (uint32_t k = 0; k < req->u.resolve.n_types; k++)
					keep = keep || hdl_type_matches(v->type, req->u.resolve.types[k]);
			}
			if (keep && req->u.resolve.n_indexes) {
				keep = false;
				for (uint32_t k = 0; k < req->u.resolve.n_indexes; k++)
					keep = keep || req->u.resolve.indexes[k] == v->index;
			}
			if (keep)
				n++;
		}
		m.u.values.n_values = n;
		m.u.values.values = vals;
	}
	if (hdl_msg_encode(&m, out, cap, &outlen) != HDL_EOK)
		return 0;
	return outlen;
}

static int decode_req(const uint8_t *buf, size_t len, hdl_arena_t *a, hdl_msg_t *m)
{
	int ret = hdl_msg_decode(buf, len, a, m);
	if (ret != HDL_EOK || m->kind != HDL_BODY_RESOLVE)
		return -1;
	return 0;
}

static void serve_udp(responder_t *r)
{
	uint8_t dgram[HDL_UDP_MAX_DGRAM], ans[8192], pkt[HDL_UDP_MAX_DGRAM];
	struct sockaddr_storage peer;
	socklen_t pl = sizeof(peer);
	hdl_arena_t a;
	hdl_msg_t req;
	int mode = atomic_load(&r->udp_mode);
	ssize_t n = recvfrom(r->udp_fd, dgram, sizeof(dgram), 0, (struct sockaddr *)&peer, &pl);
	size_t alen;

	if (n <= 0)
		return;
	atomic_fetch_add(&r->udp_reqs, 1);
	if (mode == RM_SILENT)
		return;
	hdl_arena_init(&a, NULL, 0, 1u << 20);
	if (decode_req(dgram, (size_t)n, &a, &req) != 0)
		goto out;
	r->last_opflags = req.hdr.opflags;
	alen = build_answer(&req, mode, ans, sizeof(ans));
	if (alen == 0)
		goto out;
	if (mode == RM_GARBLED) /* handle length far beyond the message */
		memset(ans + HDL_ENVELOPE_LEN + HDL_HEADER_LEN, 0xFF, 4);
	{
		uint32_t np = hdl_udp_npackets((uint32_t)(alen - HDL_ENVELOPE_LEN));
		/* A stray datagram with another RequestId first: the client must ignore it. */
		if (mode == RM_BIG) {
			size_t pn = hdl_udp_packet(ans, alen, 0, true, pkt);
			pkt[11] ^= 0x5A;
			sendto(r->udp_fd, pkt, pn, 0, (struct sockaddr *)&peer, pl);
		}
		/* Out of order (last first), with a duplicate of packet 0. */
		for (uint32_t k = np; k-- > 0;) {
			size_t pn = hdl_udp_packet(ans, alen, k, false, pkt);
			sendto(r->udp_fd, pkt, pn, 0, (struct sockaddr *)&peer, pl);
			if (k == 0 && np > 1)
				sendto(r->udp_fd, pkt, pn, 0, (struct sockaddr *)&peer, pl);
		}
	}
out:
	hdl_arena_free(&a);
}

static int read_full(int fd, uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t n = recv(fd, p, len, 0);
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void set_rcvtimeo(int fd)
{
	struct timeval tv = {.tv_sec = 2, .tv_usec = 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

static void hold(responder_t *r, int fd)
{
	if (r->n_held < MAX_HELD)
		r->held[r->n_held++] = fd;
	else
		close(fd);
}

static void serve_tcp(responder_t *r)
{
	uint8_t buf[8192], ans[8192];
	hdl_envelope_t e;
	hdl_arena_t a;
	hdl_msg_t req;
	int mode = atomic_load(&r->tcp_mode);
	int fd = accept4(r->tcp_fd, NULL, NULL, SOCK_CLOEXEC);
	size_t alen;

	if (fd < 0)
		return;
	atomic_fetch_add(&r->tcp_reqs, 1);
	if (mode == RM_SILENT) {
		hold(r, fd);
		return;
	}
	hdl_arena_init(&a, NULL, 0, 1u << 20);
	set_rcvtimeo(fd);
	if (read_full(fd, buf, HDL_ENVELOPE_LEN) != 0 ||
	    hdl_envelope_decode(buf, HDL_ENVELOPE_LEN, &e) != HDL_EOK ||
	    e.msg_len > sizeof(buf) - HDL_ENVELOPE_LEN ||
	    read_full(fd, buf + HDL_ENVELOPE_LEN, e.msg_len) != 0)
		goto out;
	if (decode_req(buf, HDL_ENVELOPE_LEN + e.msg_len, &a, &req) != 0)
		goto out;
	r->last_opflags = req.hdr.opflags;
	alen = build_answer(&req, mode, ans, sizeof(ans));
	if (mode == RM_HUGE) {
		memset(ans + 16, 0x7F, 4);
		alen = HDL_ENVELOPE_LEN;
	} else if (mode == RM_SHORT) {
		alen /= 2;
	}
	if (alen)
		send(fd, ans, alen, MSG_NOSIGNAL);
out:
	hdl_arena_free(&a);
	close(fd);
}

static void serve_http(responder_t *r)
{
	char head[4096];
	uint8_t body[8192], ans[8192];
	char rh[256];
	hdl_arena_t a;
	hdl_msg_t req;
	size_t got = 0, clen = 0, hlen;
	char *end = NULL, *cl;
	int mode = atomic_load(&r->http_mode);
	int fd = accept4(r->http_fd, NULL, NULL, SOCK_CLOEXEC);
	size_t alen;
	int n;

	if (fd < 0)
		return;
	atomic_fetch_add(&r->http_reqs, 1);
	hdl_arena_init(&a, NULL, 0, 1u << 20);
	set_rcvtimeo(fd);
	while (!end && got < sizeof(head) - 1) {
		ssize_t k = recv(fd, head + got, sizeof(head) - 1 - got, 0);
		if (k <= 0)
			goto out;
		got += (size_t)k;
		head[got] = '\0';
		end = strstr(head, "\r\n\r\n");
	}
	if (!end)
		goto out;
	hlen = (size_t)(end + 4 - head);
	snprintf(r->http_line, sizeof(r->http_line), "%.*s", (int)(strchr(head, '\r') - head), head);
	r->http_ct_ok = strstr(head, "\r\nContent-Type: application/x-hdl-message\r\n") != NULL &&
	                strstr(head, "\r\nAccept: application/x-hdl-message\r\n") != NULL;
	cl = strstr(head, "\r\nContent-Length: ");
	if (!cl)
		goto out;
	clen = strtoul(cl + 18, NULL, 10);
	if (clen > sizeof(body) || got - hlen > clen)
		goto out;
	memcpy(body, head + hlen, got - hlen);
	if (read_full(fd, body + (got - hlen), clen - (got - hlen)) != 0)
		goto out;
	if (decode_req(body, clen, &a, &req) != 0)
		goto out;
	r->last_opflags = req.hdr.opflags;
	alen = build_answer(&req, mode >= RM_CHUNKED ? RM_OK : mode, ans, sizeof(ans));
	if (!alen)
		goto out;
	if (mode == RM_NOLEN)
		n = snprintf(rh, sizeof(rh),
		             "HTTP/1.1 200 OK\r\nContent-Type: application/x-hdl-message\r\n\r\n");
	else if (mode == RM_404)
		n = snprintf(rh, sizeof(rh), "HTTP/1.1 404 Not Found\r\nContent-Length: %zu\r\n\r\n",
		             alen);
	else if (mode == RM_CHUNKED)
		n = snprintf(rh, sizeof(rh),
		             "HTTP/1.1 200 OK\r\nContent-Type: application/x-hdl-message\r\n"
		             "Transfer-Encoding: chunked\r\n\r\n%zx\r\n",
		             alen);
	else
		n = snprintf(rh, sizeof(rh),
		             "HTTP/1.1 200 OK\r\nContent-Type: application/x-hdl-message\r\n"
		             "Content-Length: %zu\r\n\r\n",
		             alen);
	send(fd, rh, (size_t)n, MSG_NOSIGNAL);
	send(fd, ans, alen, MSG_NOSIGNAL);
	if (mode == RM_CHUNKED)
		send(fd, "\r\n0\r\n\r\n", 7, MSG_NOSIGNAL);
out:
	hdl_arena_free(&a);
	close(fd);
}

static void *responder_main(void *arg)
{
	responder_t *r = arg;

	for (;;) {
		struct pollfd p[4] = {
			{.fd = r->stop[0], .events = POLLIN},
			{.fd = r->udp_fd, .events = POLLIN},
			{.fd = r->tcp_fd, .events = POLLIN},
			{.fd = r->http_fd, .events = POLLIN},
		};
		if (poll(p, 4, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[0].revents)
			break;
		if (p[1].revents & POLLIN)
			serve_udp(r);
		if (p[2].revents & POLLIN)
			serve_tcp(r);
		if (p[3].revents & POLLIN)
			serve_http(r);
	}
	return NULL;
}

static int responder_setup(void **state)
{
	responder_t *r = calloc(1, sizeof(*r));
	assert_non_null(r);
	for (size_t i = 0; i < BIG_LEN; i++)
		big_data[i] = (uint8_t)(i * 7 + 3);
	r->udp_fd = -1;
	/* UDP and TCP on the same free port, as a Handle server listens. */
	for (int tries = 0; tries < 20 && r->udp_fd < 0; tries++) {
		uint16_t p2;
		r->tcp_fd = bind_lo(SOCK_STREAM, 0, &r->port);
		assert_true(r->tcp_fd >= 0);
		r->udp_fd = bind_lo(SOCK_DGRAM, r->port, &p2);
		if (r->udp_fd < 0)
			close(r->tcp_fd);
	}
	assert_true(r->udp_fd >= 0);
	r->http_fd = bind_lo(SOCK_STREAM, 0, &r->http_port);
	assert_true(r->http_fd >= 0);
	assert_int_equal(pipe(r->stop), 0);
	assert_int_equal(pthread_create(&r->thr, NULL, responder_main, r), 0);
	*state = r;
	return 0;
}

static int responder_teardown(void **state)
{
	responder_t *r = *state;
	assert_int_equal(write(r->stop[1], "x", 1), 1);
	pthread_join(r->thr, NULL);
	for (int i = 0; i < r->n_held; i++)
		close(r->held[i]);
	close(r->udp_fd);
	close(r->tcp_fd);
	close(r->http_fd);
	close(r->stop[0]);
	close(r->stop[1]);
	free(r);
	return 0;
}

static void modes(responder_t *r, int udp, int tcp, int http)
{
	atomic_store(&r->udp_mode, udp);
	atomic_store(&r->tcp_mode, tcp);
	atomic_store(&r->http_mode, http);
	atomic_store(&r->udp_reqs, 0);
	atomic_store(&r->tcp_reqs, 0);
	atomic_store(&r->http_reqs, 0);
}

static hdl_client_t *mk_client(responder_t *r, hdl_transport_t tr, unsigned timeout_ms,
                               bool no_fallback)
{
	hdl_client_opts_t o;
	hdl_client_t *c = NULL;

	memset(&o, 0, sizeof(o));
	o.host = "127.0.0.1";
	o.port = tr == HDL_TRANSPORT_HTTP ? r->http_port : r->port;
	o.transport = tr;
	o.timeout_ms = timeout_ms;
	o.no_tcp_fallback = no_fallback;
	assert_int_equal(hdl_client_new(&o, &c), HDL_EOK);
	assert_non_null(c);
	return c;
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/**
 * \brief The responder's counter \p n once it reaches \p want, or after 2 s: the last datagram a
 *        client sent may still be on its way to the responder thread when the call returns.
 */
static unsigned count_settled(_Atomic unsigned *n, unsigned want)
{
	int64_t end = mono_ms() + 2000;
	while (atomic_load(n) < want && mono_ms() < end) {
		struct timespec ms = {0, 1000000};
		nanosleep(&ms, NULL);
	}
	return atomic_load(n);
}

/** \brief The two default values must be there, in order. */
static void check_two_values(hdl_result_t *res)
{
	uint32_t n = 0;
	const hdl_value_t *v = hdl_result_values(res, &n);

	assert_int_equal(hdl_result_rcode(res), HDL_RC_SUCCESS);
	assert_int_equal(n, 2);
	assert_non_null(v);
	assert_int_equal(v[0].index, 1);
	assert_true(hdl_slice_eq(v[0].type, hdl_slice_str("URL")));
	assert_true(hdl_slice_eq(v[0].data, hdl_slice_str("http://example.org/")));
	assert_int_equal(v[0].ttl, 86400);
	assert_int_equal(v[0].perms, HDL_PERM_DEFAULT);
	assert_int_equal(v[1].index, 2);
	assert_true(hdl_slice_eq(v[1].type, hdl_slice_str("EMAIL")));
}

/* ---- tests --------------------------------------------------------------------------------- */

static void test_client_new_invalid(void **state)
{
	hdl_client_opts_t o;
	hdl_client_t *c = (hdl_client_t *)1;

	memset(&o, 0, sizeof(o));
	assert_int_equal(hdl_client_new(&o, &c), HDL_EINVAL);
	assert_null(c);
	o.host = "";
	assert_int_equal(hdl_client_new(&o, &c), HDL_EINVAL);
	o.host = "127.0.0.1";
	o.transport = (hdl_transport_t)42;
	assert_int_equal(hdl_client_new(&o, &c), HDL_EINVAL);
	assert_int_equal(hdl_client_new(NULL, &c), HDL_EINVAL);
	hdl_client_free(NULL);
	hdl_result_free(NULL);
	assert_int_equal(hdl_result_rcode(NULL), 0);
}

static void test_resolve_invalid_name(void **state)
{
	responder_t *r = *state;
	hdl_client_t *c = mk_client(r, HDL_TRANSPORT_TCP, 1000, false);
	hdl_resolve_req_t rq;
	hdl_result_t *res = (hdl_result_t *)1;

	modes(r, RM_OK, RM_OK, RM_OK);
	memset(&rq, 0, sizeof(rq));
	rq.handle = "";
	assert_int_equal(hdl_resolve(c, &rq, &res), HDL_ENAME);
	assert_null(res);
	rq.handle = "88.100.1/a\x01" "b";
	assert_int_equal(hdl_resolve(c, &rq, &res), HDL_ENAME);
	rq.handle = "88.100.1/\xc3\x28"; /* invalid UTF-8 */
	assert_int_not_equal(hdl_resolve(c, &rq, &res), HDL_EOK);
	assert_int_equal(atomic_load(&r->tcp_reqs), 0); /* nothing was sent */
	hdl_client_free(c);
}

static void test_resolve_udp(void **state)
{
	responder_t *r = *state;
	hdl_client_t *c = mk_client(r, HDL_TRANSPORT_UDP, 3000, false);
	hdl_resolve_req_t rq;
	hdl_result_t *res = NULL;
	const hdl_msg_t *m;

	modes(r, RM_OK, RM_OK, RM_OK);
	memset(&rq, 0, sizeof(rq));
	rq.handle = "88.100.1/test";
	assert_int_equal(hdl_resolve(c, &rq, &res), HDL_EOK);
	assert_int_equal(hdl_result_transport(res), HDL_TRANSPORT_UDP);
	check_two_values(res);
	m = hdl_result_msg(res);
	assert_true(hdl_slice_eq(m->u.values.handle, hdl_slice_str("88.100.1/test")));
	/* hdllib's default flags: REC|CA|PO */
	assert_int_equal(r->last_opflags, HDL_OF_REC | HDL_OF_CA | HDL_OF_PO);
	assert_int_equal(atomic_load(&r->udp_reqs), 1);
	assert_int_equal(atomic_load(&r->tcp_reqs), 0);
	{
		size_t rawlen = 0;
		const uint8_t *raw = hdl_result_raw(res, &rawlen);
		assert_non_null(raw);
		assert_int_equal(rawlen, HDL_ENVELOPE_LEN + m->env.msg_len);
	}
	hdl_result_free(res);
	hdl_client_free(c);
}

static void test_resolve_flags_and_filters(void **state)
{
	responder_t *r = *state;
	hdl_client_t *c = mk_client(r, HDL_TRANSPORT_TCP, 3000, false);
	static const char *const types[] = {"EMAIL"};
	static const uint32_t idx[] = {2, 7};
	hdl_resolve_req_t rq;
	hdl_result_t *res = NULL;
	const hdl_value_t *v;
	uint32_t n = 0;

	modes(r, RM_OK, RM_OK, RM_OK);
	memset(&rq, 0, sizeof(rq));
	rq.handle = "88.100.1/test";
	rq.types = types;
	rq.n_types = 1;
	rq.authoritative = true;
	rq.not_public_only = true;
	assert_int_equal(hdl_resolve(c, &rq, &res), HDL_EOK);
	assert_int_equal(r->last_opflags, HDL_OF_AT | HDL_OF_REC | HDL_OF_CA);
	v = hdl_result_values(res, &n);
	assert_int_equal(n, 1);
	assert_true(hdl_slice_eq(v[0].type, hdl_slice_str("EMAIL")));
	hdl_result_free(res);

	memset(&rq, 0, sizeof(rq));
	rq.handle = "88.100.1/test";
	rq.indexes = idx;
	rq.n_indexes = 2;
	assert_int_equal(hdl_resolve(c, &rq, &res), HDL_EOK);
	v = hdl_result_values(res, &n);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].index, 2);
	hdl_result_free(res);
	hdl_client_free(c);
}

static void test_resolve_tcp(void **state)
{
	responder_t *r = *state;
	hdl_client_t *c = mk_client(r, HDL_TRANSPORT_TCP, 3000, false);
	hdl_resolve_req_t rq;
	hdl_result_t *res = NULL;

	modes(r, RM_SILENT, RM_OK, RM_OK);
	memset(&rq, 0, sizeof(rq));
	rq.handle = "88.100.1/test";
	assert_int_equal(hdl_resolve(c, &rq, &res), HDL_EOK);
	assert_int_equal(hdl_result_transport(res), HDL_TRANSPORT_TCP);
	check_two_values(res);
	assert_int_equal(atomic_load(&r->udp_reqs), 0);
	assert_int_equal(atomic_load(&r->tcp_reqs), 1);
	hdl_result_free(res);
	hdl_client_free(c);
}

static void test_resolve_http(void **state)
{
	responder_t *r = *state;
	hdl_client_t *c = mk_client(r, HDL_TRANSPORT_HTTP, 3000, false);
	hdl_resolve_req_t rq;
	hdl_result_t *res = NULL;

	modes(r, RM_SILENT, RM_SILENT, RM_OK);
	memset(&rq, 0, sizeof(rq));
	rq.handle = "88.100.1/test";
	assert_int_equal(hdl_resolve(c, &rq, &res), HDL_EOK);
	assert_int_equal(hdl_result_transport(res), HDL_TRANSPORT_HTTP);
	check_two_values(res);
	assert_string_equal(r->http_line, "POST /88.100.1%2Ftest HTTP/1.1");
	assert_true(r->http_ct_ok);
	assert_int_equal(atomic_load(&r->http_reqs), 1);
	hdl_result_free(res);
	hdl_client_free(c);
}

static void test_http_chunked_rejected(void **state)
{
	responder_t *r = *state;
	hdl_client_t *c = mk_client(r, HDL_TRANSPORT_HTTP, 3000, false);
	hdl_resolve_req_t rq;
	hdl_result_t *res = NULL;

	modes(r, RM_SILENT, RM_SILENT, RM_CHUNKED);
	memset(&rq, 0, sizeof(rq));
	rq.handle = "88.100.1/test";
	assert_int_equal(hdl_resolve(c, &rq, &res), HDL_EPROTO);
	assert_null(res);
	hdl_client_free(c);
}

static void test_http_bad_replies(void **state)
{
	responder_t *r = *state;
	hdl_client_t *c = mk_client(r, HDL_TRANSPORT_HTTP, 2000, false);
	hdl_resolve_req_t rq;
	hdl_result_t *res = NULL;

	memset(&rq, 0, sizeof(rq));
	rq.handle = "88.100.1/test";
	modes(r, RM_SILENT, RM_SILENT, RM_NOLEN);
	assert_int_equal(hdl_resolve(c, &rq, &res), HDL_EPROTO);
	assert_null(res);
	modes(r, RM_SILENT, RM_SILENT, RM_404);
	assert_int_equal(hdl_resolve(c, &rq, &res), HDL_EPROTO);
	assert_int_equal(atomic_load(&r->http_reqs), 1);
	modes(r, RM_SILENT, RM_SILENT, RM_OK); /* the same client still works */
	assert_int_equal(hdl_resolve(c, &rq, &res), HDL_EOK);
	check_two_values(res);
	hdl_result_free(res);
	hdl_client_free(c);
}

static void test_tcp_bad_replies(void **state)
{
	responder_t *r = *state;
	hdl_client_t *c = mk_client(r, HDL_TRANSPORT_TCP, 2000, false);
	hdl_resolve_req_t rq;
	hdl_result_t *res = NULL;

	memset(&rq, 0, sizeof(rq));
	rq.handle = "88.100.1/test";
	modes(r, RM_SILENT, RM_HUGE, RM_SILENT);
	assert_int_equal(hdl_resolve(c, &rq, &res), HDL_EPROTO);
	assert_null(res);
	modes(r, RM_SILENT, RM_SHORT, RM_SILENT);
	assert_int_equal(hdl_resolve(c, &rq, &res), HDL_EPROTO);
	assert_null(res);
	hdl_client_free(c);
}

/** A garbled UDP answer is not final: the client retries over TCP. */
static void test_udp_garbled_falls_back(void **state)
{
	responder_t *r = *state;
	hdl_client_t *c = mk_client(r, HDL_TRANSPORT_UDP, 2000, false);
	hdl_resolve_req_t rq;
	hdl_result_t *res = NULL;

	memset(&rq, 0, sizeof(rq));
	rq.handle = "88.100.1/test";
	modes(r, RM_GARBLED, RM_OK, RM_SILENT);
	assert_int_equal(hdl_resolve(c, &rq, &res), HDL_EOK);
	assert_int_equal(hdl_result_transport(res), HDL_TRANSPORT_TCP);
	check_two_values(res);
	assert_int_equal(atomic_load(&r->udp_reqs), 1);
	hdl_result_free(res);
	/* UDP only: the garbled answer is a protocol error */
	hdl_client_free(c);
	c = mk_client(r, HDL_TRANSPORT_UDP, 2000, true);
	modes(r, RM_GARBLED, RM_OK, RM_SILENT);
	assert_int_equal(hdl_resolve(c, &rq, &res), HDL_EPROTO);
	assert_null(res);
	hdl_client_free(c);
}

static void test_udp_multipacket(void **state)
{
	responder_t *r = *state;
	hdl_client_t *c = mk_client(r, HDL_TRANSPORT_UDP, 3000, true);
	hdl_resolve_req_t rq;
	hdl_result_t *res = NULL;
	const hdl_value_t *v;
	size_t rawlen = 0;
	uint32_t n = 0;

	modes(r, RM_BIG, RM_SILENT, RM_SILENT);
	memset(&rq, 0, sizeof(rq));
	rq.handle = "88.100.1/big";
	assert_int_equal(hdl_resolve(c, &rq, &res), HDL_EOK);
	assert_int_equal(hdl_result_transport(res), HDL_TRANSPORT_UDP);
	(void)hdl_result_raw(res, &rawlen);
	assert_true(rawlen > HDL_UDP_MAX_DGRAM * 3); /* four datagrams */
	v = hdl_result_values(res, &n);
	assert_int_equal(n, 3);
	assert_int_equal(v[2].index, 3);
	assert_int_equal(v[2].data.len, BIG_LEN);
	assert_memory_equal(v[2].data.p, big_data, BIG_LEN);
	assert_int_equal(atomic_load(&r->tcp_reqs), 0);
	hdl_result_free(res);
	hdl_client_free(c);
}

static void test_udp_fallback_to_tcp(void **state)
{
	responder_t *r = *state;
	hdl_client_t *c = mk_client(r, HDL_TRANSPORT_UDP, 3000, false);
	hdl_resolve_req_t rq;
	hdl_result_t *res = NULL;

	modes(r, RM_SILENT, RM_OK, RM_SILENT);
	memset(&rq, 0, sizeof(rq));
	rq.handle = "88.100.1/test";
	assert_int_equal(hdl_resolve(c, &rq, &res), HDL_EOK);
	assert_int_equal(hdl_result_transport(res), HDL_TRANSPORT_TCP);
	check_two_values(res);
	assert_int_equal(atomic_load(&r->udp_reqs), 3); /* three UDP tries, then TCP */
	assert_int_equal(atomic_load(&r->tcp_reqs), 1);
	hdl_result_free(res);
	hdl_client_free(c);
}

/*
 * RC_ERROR over UDP is the server saying "ask over TCP" (idnoded's answer cap and rate-limit
 * slip; Handle.Net's resolver takes it so): one UDP try, then TCP at once, not after the UDP
 * retries. UDP only: the RC_ERROR answer is the result.
 */
static void test_udp_rc_error_falls_back(void **state)
{
	responder_t *r = *state;
	hdl_client_t *c = mk_client(r, HDL_TRANSPORT_UDP, 3000, false);
	hdl_resolve_req_t rq;
	hdl_result_t *res = NULL;

	memset(&rq, 0, sizeof(rq));
	rq.handle = "88.100.1/test";
	modes(r, RM_RC_ERROR, RM_OK, RM_SILENT);
	assert_int_equal(hdl_resolve(c, &rq, &res), HDL_EOK);
	assert_int_equal(hdl_result_transport(res), HDL_TRANSPORT_TCP);
	check_two_values(res);
	assert_int_equal(atomic_load(&r->udp_reqs), 1);
	assert_int_equal(atomic_load(&r->tcp_reqs), 1);
	hdl_result_free(res);
	/* with the digest asked for, the same */
	rq.digest = true;
	modes(r, RM_RC_ERROR, RM_OK, RM_SILENT);
	assert_int_equal(hdl_resolve(c, &rq, &res), HDL_EOK);
	assert_int_equal(hdl_result_transport(res), HDL_TRANSPORT_TCP);
	hdl_result_free(res);
	rq.digest = false;
	/* TCP down too: its error, not the UDP redirect */
	modes(r, RM_RC_ERROR, RM_SILENT, RM_SILENT);
	assert_int_not_equal(hdl_resolve(c, &rq, &res), HDL_EOK);
	assert_null(res);
	hdl_client_free(c);
	/* UDP only: the RC_ERROR answer itself */
	c = mk_client(r, HDL_TRANSPORT_UDP, 3000, true);
	modes(r, RM_RC_ERROR, RM_OK, RM_SILENT);
	assert_int_equal(hdl_resolve(c, &rq, &res), HDL_EOK);
	assert_int_equal(hdl_result_transport(res), HDL_TRANSPORT_UDP);
	assert_int_equal(hdl_result_rcode(res), HDL_RC_ERROR);
	assert_int_equal(atomic_load(&r->tcp_reqs), 0);
	hdl_result_free(res);
	/* other error codes are answers, not redirects */
	hdl_client_free(c);
	c = mk_client(r, HDL_TRANSPORT_UDP, 3000, false);
	modes(r, RM_NOTFOUND, RM_OK, RM_SILENT);
	assert_int_equal(hdl_resolve(c, &rq, &res), HDL_EOK);
	assert_int_equal(hdl_result_rcode(res), HDL_RC_HANDLE_NOT_FOUND);
	assert_int_equal(atomic_load(&r->tcp_reqs), 0);
	hdl_result_free(res);
	hdl_client_free(c);
}

static void test_timeout(void **state)
{
	responder_t *r = *state;
	hdl_resolve_req_t rq;
	hdl_result_t *res = NULL;
	hdl_client_t *c;
	int64_t t0;

	memset(&rq, 0, sizeof(rq));
	rq.handle = "88.100.1/test";

	/* UDP silent, TCP accepts and never answers */
	modes(r, RM_SILENT, RM_SILENT, RM_SILENT);
	c = mk_client(r, HDL_TRANSPORT_UDP, 300, false);
	t0 = mono_ms();
	assert_int_equal(hdl_resolve(c, &rq, &res), HDL_ETIMEDOUT);
	assert_true(mono_ms() - t0 < 1500);
	assert_true(mono_ms() - t0 >= 250);
	assert_null(res);
	assert_true(atomic_load(&r->udp_reqs) >= 1);
	hdl_client_free(c);

	/* UDP only */
	modes(r, RM_SILENT, RM_SILENT, RM_SILENT);
	c = mk_client(r, HDL_TRANSPORT_UDP, 300, true);
	t0 = mono_ms();
	assert_int_equal(hdl_resolve(c, &rq, &res), HDL_ETIMEDOUT);
	assert_true(mono_ms() - t0 < 1500);
	assert_int_equal(count_settled(&r->udp_reqs, 3), 3);
	assert_int_equal(atomic_load(&r->tcp_reqs), 0);
	hdl_client_free(c);

	/* TCP only, connection accepted but never answered */
	modes(r, RM_SILENT, RM_SILENT, RM_SILENT);
	c = mk_client(r, HDL_TRANSPORT_TCP, 300, false);
	t0 = mono_ms();
	assert_int_equal(hdl_resolve(c, &rq, &res), HDL_ETIMEDOUT);
	assert_true(mono_ms() - t0 < 1500);
	assert_int_equal(atomic_load(&r->tcp_reqs), 1);
	hdl_client_free(c);
}

static void test_connection_refused(void **state)
{
	hdl_client_opts_t o;
	hdl_client_t *c = NULL;
	hdl_resolve_req_t rq;
	hdl_result_t *res = NULL;
	uint16_t port;
	int fd = bind_lo(SOCK_STREAM, 0, &port);

	assert_true(fd >= 0);
	close(fd); /* nothing listens there now */
	memset(&o, 0, sizeof(o));
	o.host = "127.0.0.1";
	o.port = port;
	o.transport = HDL_TRANSPORT_TCP;
	o.timeout_ms = 1000;
	assert_int_equal(hdl_client_new(&o, &c), HDL_EOK);
	memset(&rq, 0, sizeof(rq));
	rq.handle = "88.100.1/test";
	assert_int_equal(hdl_resolve(c, &rq, &res), HDL_ECONNREFUSED);
	assert_null(res);
	hdl_client_free(c);
}

static void test_request_id_mismatch(void **state)
{
	responder_t *r = *state;
	hdl_resolve_req_t rq;
	hdl_result_t *res = NULL;
	hdl_client_t *c;

	memset(&rq, 0, sizeof(rq));
	rq.handle = "88.100.1/test";
	/* TCP: a reply to another request is a protocol error */
	modes(r, RM_SILENT, RM_WRONG_ID, RM_WRONG_ID);
	c = mk_client(r, HDL_TRANSPORT_TCP, 2000, false);
	assert_int_equal(hdl_resolve(c, &rq, &res), HDL_EPROTO);
	assert_null(res);
	hdl_client_free(c);
	/* HTTP: same */
	c = mk_client(r, HDL_TRANSPORT_HTTP, 2000, false);
	assert_int_equal(hdl_resolve(c, &rq, &res), HDL_EPROTO);
	hdl_client_free(c);
	/* UDP: a stray datagram is ignored, so the only answer never comes */
	modes(r, RM_WRONG_ID, RM_SILENT, RM_SILENT);
	c = mk_client(r, HDL_TRANSPORT_UDP, 400, true);
	assert_int_equal(hdl_resolve(c, &rq, &res), HDL_ETIMEDOUT);
	assert_true(atomic_load(&r->udp_reqs) >= 1);
	hdl_client_free(c);
}

static void test_digest(void **state)
{
	responder_t *r = *state;
	hdl_resolve_req_t rq;
	hdl_result_t *res = NULL;
	hdl_client_t *c;
	static const hdl_transport_t trs[] = {HDL_TRANSPORT_UDP, HDL_TRANSPORT_TCP,
	                                      HDL_TRANSPORT_HTTP};

	memset(&rq, 0, sizeof(rq));
	rq.handle = "88.100.1/test";
	rq.digest = true;
	for (size_t i = 0; i < 3; i++) {
		c = mk_client(r, trs[i], 2000, true);
		modes(r, RM_OK, RM_OK, RM_OK);
		assert_int_equal(hdl_resolve(c, &rq, &res), HDL_EOK);
		assert_true(r->last_opflags & HDL_OF_RD);
		assert_int_equal(hdl_result_msg(res)->rd_alg, HDL_DIGEST_SHA256);
		assert_int_equal(hdl_result_msg(res)->rd.len, 32);
		check_two_values(res);
		hdl_result_free(res);
		res = NULL;

		modes(r, RM_BAD_DIGEST, RM_BAD_DIGEST, RM_BAD_DIGEST);
		assert_int_equal(hdl_resolve(c, &rq, &res), HDL_EDIGEST);
		assert_null(res);
		hdl_client_free(c);
	}
	/* UDP with fallback: a wrong digest is final, no TCP retry */
	c = mk_client(r, HDL_TRANSPORT_UDP, 2000, false);
	modes(r, RM_BAD_DIGEST, RM_OK, RM_OK);
	assert_int_equal(hdl_resolve(c, &rq, &res), HDL_EDIGEST);
	assert_int_equal(atomic_load(&r->tcp_reqs), 0);
	hdl_client_free(c);
}

static void test_not_found(void **state)
{
	responder_t *r = *state;
	hdl_client_t *c = mk_client(r, HDL_TRANSPORT_UDP, 2000, false);
	hdl_resolve_req_t rq;
	hdl_result_t *res = NULL;
	uint32_t n = 99;

	modes(r, RM_NOTFOUND, RM_NOTFOUND, RM_NOTFOUND);
	memset(&rq, 0, sizeof(rq));
	rq.handle = "88.100.1/none";
	assert_int_equal(hdl_resolve(c, &rq, &res), HDL_EOK);
	assert_int_equal(hdl_result_rcode(res), HDL_RC_HANDLE_NOT_FOUND);
	assert_null(hdl_result_values(res, &n));
	assert_int_equal(n, 0);
	assert_int_equal(hdl_result_msg(res)->kind, HDL_BODY_ERROR);
	assert_true(hdl_slice_eq(hdl_result_msg(res)->u.error.message,
	                         hdl_slice_str("no such handle")));
	hdl_result_free(res);
	hdl_client_free(c);
}

static void test_exchange(void **state)
{
	responder_t *r = *state;
	hdl_client_t *c = mk_client(r, HDL_TRANSPORT_TCP, 2000, false);
	hdl_result_t *res = NULL;
	hdl_slice_t h = hdl_slice_str("88.100.1/test");
	hdl_msg_t m;

	modes(r, RM_OK, RM_OK, RM_OK);
	hdl_msg_init(&m);
	m.hdr.opcode = HDL_OC_RESOLUTION;
	m.hdr.opflags = HDL_OF_REC;
	m.hdr.site_serial = 0xFFFF;
	m.hdr.expiration = (uint32_t)time(NULL) + 60;
	m.kind = HDL_BODY_RESOLVE;
	m.u.resolve.handle = h;
	assert_int_equal(hdl_client_exchange(c, &m, &res), HDL_EOK);
	assert_true(m.env.request_id > 0 && m.env.request_id <= 0x7FFFFFFFu);
	assert_int_equal(hdl_result_msg(res)->env.request_id, m.env.request_id);
	check_two_values(res);
	hdl_result_free(res);
	hdl_client_free(c);
}

typedef struct worker_arg {
	hdl_client_t *c;
	int ok;
} worker_arg_t;

static void *worker(void *p)
{
	worker_arg_t *w = p;
	hdl_resolve_req_t rq;

	memset(&rq, 0, sizeof(rq));
	rq.handle = "88.100.1/test";
	for (int i = 0; i < 5; i++) {
		hdl_result_t *res = NULL;
		uint32_t n = 0;
		if (hdl_resolve(w->c, &rq, &res) == HDL_EOK && hdl_result_values(res, &n) && n == 2)
			w->ok++;
		hdl_result_free(res);
	}
	return NULL;
}

/** One client shared by several threads. */
static void test_threads(void **state)
{
	responder_t *r = *state;
	hdl_client_t *c = mk_client(r, HDL_TRANSPORT_UDP, 3000, false);
	pthread_t t[4];
	worker_arg_t w[4];

	modes(r, RM_OK, RM_OK, RM_OK);
	for (int i = 0; i < 4; i++) {
		w[i].c = c;
		w[i].ok = 0;
		assert_int_equal(pthread_create(&t[i], NULL, worker, &w[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(w[i].ok, 5);
	}
	hdl_client_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_client_new_invalid),
		cmocka_unit_test(test_resolve_invalid_name),
		cmocka_unit_test(test_resolve_udp),
		cmocka_unit_test(test_resolve_flags_and_filters),
		cmocka_unit_test(test_resolve_tcp),
		cmocka_unit_test(test_resolve_http),
		cmocka_unit_test(test_http_chunked_rejected),
		cmocka_unit_test(test_http_bad_replies),
		cmocka_unit_test(test_tcp_bad_replies),
		cmocka_unit_test(test_udp_garbled_falls_back),
		cmocka_unit_test(test_udp_multipacket),
		cmocka_unit_test(test_udp_fallback_to_tcp),
		cmocka_unit_test(test_udp_rc_error_falls_back),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_connection_refused),
		cmocka_unit_test(test_request_id_mismatch),
		cmocka_unit_test(test_digest),
		cmocka_unit_test(test_not_found),
		cmocka_unit_test(test_exchange),
		cmocka_unit_test(test_threads),
	};
	return cmocka_run_group_tests(tests, responder_setup, responder_teardown);
}
