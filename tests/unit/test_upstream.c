/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Upstream pool tests (node/resolver/upstream.h, dns.h, upconf.h) against scripted servers
 *        running on the same event_base on loopback: a Handle server over TLS or plain TCP
 *        (framed or HTTP native tunnel) with delays, reversed answers, dropped connections, half
 *        replies and any certificate; a UDP server answering in several datagrams out of order;
 *        a DNS server for c-ares with short TTLs. Certificates come from certs/make-dev-certs.sh
 *        run into a temporary directory.
 *
 * Every wait is bounded by a generous wall-clock limit; no assertion depends on timing except
 * "not before the deadline" and orderings separated by hundreds of milliseconds.
 */
#define _GNU_SOURCE /* strcasestr */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "hdl/error.h"
#include "hdl/msg.h"
#include "hdl/values.h"
#include "node/common/log.h"
#include "node/conf/conf.h"
#include "node/resolver/dns.h"
#include "node/resolver/upconf.h"
#include "node/resolver/ups_int.h"
#include "node/resolver/upstream.h"

#ifndef HDL_SOURCE_DIR
#define HDL_SOURCE_DIR "."
#endif

#define WAIT_MS 15000u /* the most any single wait may take on a loaded box */

static struct event_base *base;
static struct event *ticker;
static char certs[256];  /* make-dev-certs.sh output (CA, server, client, expired) */
static char others[300]; /* a second, unrelated CA and its certificates */

/* ---- loop helpers ------------------------------------------------------------------------ */

static void tick(evutil_socket_t fd, short what, void *arg)
{
}

typedef bool (*cond_fn)(void *);

static bool run_until(cond_fn cond, void *arg, unsigned max_ms)
{
	uint64_t end = ups_now_ms() + max_ms;
	while (!cond(arg)) {
		if (ups_now_ms() >= end)
			return false;
		event_base_loop(base, EVLOOP_ONCE);
	}
	return true;
}

static bool never(void *arg)
{
	return false;
}

static void run_for(unsigned ms)
{
	run_until(never, NULL, ms);
}

static bool flag_set(void *arg)
{
	return *(bool *)arg;
}

/* ---- requests and results ---------------------------------------------------------------- */

static size_t mkreq(const char *handle, uint32_t rid, uint8_t *out, size_t cap)
{
	hdl_msg_t m;
	size_t len = 0;
	hdl_msg_init(&m);
	m.env.request_id = rid;
	m.hdr.opcode = HDL_OC_RESOLUTION;
	m.hdr.opflags = HDL_OF_REC;
	m.hdr.expiration = (uint32_t)time(NULL) + 600u;
	m.kind = HDL_BODY_RESOLVE;
	m.u.resolve.handle = hdl_slice_str(handle);
	assert_int_equal(hdl_msg_encode(&m, out, cap, &len), HDL_EOK);
	return len;
}

typedef struct res {
	bool done;
	unsigned calls;
	int status;
	size_t len;
	uint32_t rid;
	char handle[64];
	char tag[64];
} res_t;

static void on_res(void *arg, int status, const uint8_t *reply, size_t len)
{
	res_t *r = arg;
	r->calls++;
	r->done = true;
	r->status = status;
	r->len = len;
	if (status != HDL_EOK)
		return;
	uint8_t stack[4096];
	hdl_arena_t a;
	hdl_msg_t m;
	hdl_arena_init(&a, stack, sizeof(stack), 1u << 20);
	assert_int_equal(hdl_msg_decode(reply, len, &a, &m), HDL_EOK);
	r->rid = m.env.request_id;
	assert_int_equal(m.kind, HDL_BODY_VALUES);
	snprintf(r->handle, sizeof(r->handle), "%.*s", (int)m.u.values.handle.len,
	         (const char *)m.u.values.handle.p);
	if (m.u.values.n_values)
		snprintf(
		    r->tag, sizeof(r->tag), "%.*s",
		    (int)(m.u.values.values[0].data.len < 40 ? m.u.values.values[0].data.len : 40),
		    (const char *)m.u.values.values[0].data.p);
	hdl_arena_free(&a);
}

static bool res_done(void *arg)
{
	return ((res_t *)arg)->done;
}

typedef struct many {
	res_t *r;
	unsigned n;
} many_t;

static bool all_done(void *arg)
{
	many_t *m = arg;
	for (unsigned i = 0; i < m->n; i++) {
		if (!m->r[i].done)
			return false;
	}
	return true;
}

/* Start one query to \p t with handle "88.1/<n>" and RequestId 1000 + n. */
static void start(ups_pool_t *p, const ups_target_t *t, unsigned n, uint32_t timeout_ms, res_t *r,
                  ups_query_t **q)
{
	uint8_t req[512];
	char h[32];
	snprintf(h, sizeof(h), "88.1/%u", n);
	size_t len = mkreq(h, 1000u + n, req, sizeof(req));
	memset(r, 0, sizeof(*r));
	assert_int_equal(ups_query_start(p, t, req, len, ups_now_ms() + timeout_ms, on_res, r, q),
	                 HDL_EOK);
}

/* One query, waited for. \return its status */
static int query1(ups_pool_t *p, const ups_target_t *t, unsigned n, res_t *r)
{
	start(p, t, n, 5000, r, NULL);
	assert_true(run_until(res_done, r, WAIT_MS));
	assert_int_equal(r->calls, 1);
	if (r->status == HDL_EOK) {
		char h[32];
		snprintf(h, sizeof(h), "88.1/%u", n);
		assert_string_equal(r->handle, h);
		assert_int_equal(r->rid, 1000u + n);
	}
	return r->status;
}

/* ---- log capture ------------------------------------------------------------------------- */

static int saved_stderr = -1;
static char logpath[300];

/* Peer-triggered lines are rate-limited per second: start captures on a fresh second. */
static void log_capture_begin(void)
{
	time_t t0 = time(NULL);
	while (time(NULL) == t0)
		usleep(20000);
	fflush(stderr);
	snprintf(logpath, sizeof(logpath), "%s/log.txt", certs);
	int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	saved_stderr = dup(2);
	dup2(fd, 2);
	close(fd);
}

static char *log_capture_end(void)
{
	static char text[16384];
	fflush(stderr);
	dup2(saved_stderr, 2);
	close(saved_stderr);
	FILE *f = fopen(logpath, "r");
	assert_non_null(f);
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	fputs(text, stderr); /* keep it visible in the test output */
	return text;
}

/* ---- TLS contexts ------------------------------------------------------------------------ */

static ups_tls_t *client_tls(const char *dir, bool verify, const char *cert, const char *pin)
{
	char ca[400], c[400], k[400], err[512];
	ups_tls_conf_t tc = {.label = "test", .verify = verify};
	snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
	tc.ca_file = ca;
	if (cert) {
		snprintf(c, sizeof(c), "%s/%s.pem", dir, cert);
		snprintf(k, sizeof(k), "%s/%s.key", dir, cert);
		tc.cert_file = c;
		tc.key_file = k;
	}
	if (pin) {
		tc.has_pin = true;
		/* the base64 of the pin file through the configuration parser */
		ups_conf_upstream_t u;
		char line[200];
		snprintf(line, sizeof(line), "t 127.0.0.1:1 pin=%s", pin);
		assert_int_equal(ups_conf_parse_upstream(line, &u, err, sizeof(err)), HDL_EOK);
		memcpy(tc.pin, u.pin, UPS_PIN_LEN);
	}
	ups_tls_t *t = NULL;
	int r = ups_tls_new(&tc, &t, err, sizeof(err));
	if (r != HDL_EOK)
		fail_msg("ups_tls_new: %s", err);
	return t;
}

static SSL_CTX *server_ctx(const char *dir, const char *name, const char *client_ca)
{
	char cert[400], key[400];
	snprintf(cert, sizeof(cert), "%s/%s.pem", dir, name);
	snprintf(key, sizeof(key), "%s/%s.key", dir, name);
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	assert_non_null(ctx);
	assert_int_equal(SSL_CTX_use_certificate_chain_file(ctx, cert), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM), 1);
	if (client_ca) {
		assert_int_equal(SSL_CTX_load_verify_locations(ctx, client_ca, NULL), 1);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	}
	return ctx;
}

static char *read_pin(const char *dir, char *out, size_t cap)
{
	char path[400];
	snprintf(path, sizeof(path), "%s/server.pin", dir);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(out, (int)cap, f));
	fclose(f);
	out[strcspn(out, "\r\n")] = '\0';
	return out;
}

/* ---- the scripted stream server ---------------------------------------------------------- */

typedef struct tsrv tsrv_t;

typedef struct tconn {
	tsrv_t *s;
	struct bufferevent *bev;
	struct tconn *next;
	unsigned answered;
	bool closing; /* close once the output has drained */
	struct {
		uint8_t *msg;
		size_t len;
	} held[64];
	unsigned nheld;
	uint32_t ids[256]; /* RequestIds seen, to catch duplicates on one connection */
	unsigned nids;
} tconn_t;

typedef struct tdelay {
	tsrv_t *s;
	tconn_t *c; /* NULL once the connection is gone */
	struct event *ev;
	uint8_t *msg;
	size_t len;
	struct tdelay *next;
} tdelay_t;

struct tsrv {
	struct evconnlistener *lis[2];
	uint16_t port;
	SSL_CTX *ctx; /* NULL: plain */
	bool http;    /* HTTP native tunnel */
	/* script */
	unsigned delay_ms;
	unsigned reverse_batch; /* hold answers until this many, then answer last first */
	unsigned drop_after;    /* close (no answer) on a request once this many were answered */
	bool drop_set;
	bool half_reply;      /* half an answer, then close */
	bool bad_id;          /* answer with RequestId + 1 */
	unsigned close_after; /* close after this many answers on a connection */
	unsigned http_status; /* non-200: answer with it */
	bool http_close;      /* Connection: close */
	const char *raw;      /* HTTP: answer with these bytes instead */
	size_t pad;           /* extra bytes in the value data */
	char tag[32];
	/* counters */
	unsigned accepts, accepts_on[2], open, max_open;
	unsigned handshakes, resumed, peer_certs;
	unsigned requests, answers, dup_ids, bad_http;
	char last_line[128];
	tconn_t *conns;
	tdelay_t *delays;
};

static void tconn_free(tconn_t *c)
{
	tsrv_t *s = c->s;
	tconn_t **pp = &s->conns;
	while (*pp != c)
		pp = &(*pp)->next;
	*pp = c->next;
	for (tdelay_t *d = s->delays; d; d = d->next) {
		if (d->c == c)
			d->c = NULL;
	}
	for (unsigned i = 0; i < c->nheld; i++)
		free(c->held[i].msg);
	bufferevent_free(c->bev);
	s->open--;
	free(c);
}

static size_t build_answer(tsrv_t *s, const hdl_msg_t *req, uint8_t *out, size_t cap)
{
	hdl_msg_t m;
	hdl_value_t v;
	size_t len = 0;
	static uint8_t data[70000];
	size_t tl = strlen(s->tag);
	memcpy(data, s->tag, tl);
	memset(data + tl, 'x', s->pad);
	hdl_msg_init(&m);
	m.env.request_id = req->env.request_id + (s->bad_id ? 1u : 0u);
	m.hdr.opcode = HDL_OC_RESOLUTION;
	m.hdr.rcode = HDL_RC_SUCCESS;
	m.hdr.expiration = (uint32_t)time(NULL) + 600u;
	m.kind = HDL_BODY_VALUES;
	m.u.values.handle = req->u.resolve.handle;
	memset(&v, 0, sizeof(v));
	v.index = 1;
	v.ttl = 86400;
	v.perms = HDL_PERM_DEFAULT;
	v.type = hdl_slice_str("URL");
	v.data.p = data;
	v.data.len = (uint32_t)(tl + s->pad);
	m.u.values.n_values = 1;
	m.u.values.values = &v;
	assert_int_equal(hdl_msg_encode(&m, out, cap, &len), HDL_EOK);
	return len;
}

static void tconn_send(tconn_t *c, const uint8_t *msg, size_t len)
{
	tsrv_t *s = c->s;
	struct evbuffer *out = bufferevent_get_output(c->bev);
	if (s->http) {
		if (s->raw) {
			evbuffer_add(out, s->raw, strlen(s->raw));
			return;
		}
		if (s->http_status && s->http_status != 200) {
			evbuffer_add_printf(out, "HTTP/1.1 %u Oops\r\nContent-Length: 0\r\n\r\n",
			                    s->http_status);
			return;
		}
		evbuffer_add_printf(out,
		                    "HTTP/1.1 200 OK\r\nContent-Type: application/x-hdl-message\r\n"
		                    "Content-Length: %zu\r\n%s\r\n",
		                    len, s->http_close ? "Connection: close\r\n" : "");
		if (s->http_close)
			c->closing = true;
	}
	if (s->half_reply) {
		evbuffer_add(out, msg, len / 2);
		c->closing = true;
		return;
	}
	evbuffer_add(out, msg, len);
	s->answers++;
	c->answered++;
	if (s->close_after && c->answered >= s->close_after)
		c->closing = true;
}

static void tdelay_fire(evutil_socket_t fd, short what, void *arg)
{
	tdelay_t *d = arg;
	tsrv_t *s = d->s;
	if (d->c)
		tconn_send(d->c, d->msg, d->len);
	tdelay_t **pp = &s->delays;
	while (*pp != d)
		pp = &(*pp)->next;
	*pp = d->next;
	event_free(d->ev);
	free(d->msg);
	free(d);
}

/* One decoded request on \p c: answer it as scripted. \return false when c was freed */
static bool tconn_request(tconn_t *c, const uint8_t *frame, size_t flen)
{
	tsrv_t *s = c->s;
	uint8_t stack[4096], ans[80000];
	hdl_arena_t a;
	hdl_msg_t m;
	s->requests++;
	hdl_arena_init(&a, stack, sizeof(stack), 1u << 20);
	assert_int_equal(hdl_msg_decode(frame, flen, &a, &m), HDL_EOK);
	for (unsigned i = 0; i < c->nids; i++) {
		if (c->ids[i] == m.env.request_id)
			s->dup_ids++;
	}
	if (c->nids < 256)
		c->ids[c->nids++] = m.env.request_id;
	if (s->drop_set && c->answered >= s->drop_after) {
		hdl_arena_free(&a);
		tconn_free(c);
		return false;
	}
	size_t len = build_answer(s, &m, ans, sizeof(ans));
	hdl_arena_free(&a);
	if (s->reverse_batch) {
		c->held[c->nheld].msg = malloc(len);
		memcpy(c->held[c->nheld].msg, ans, len);
		c->held[c->nheld++].len = len;
		if (c->nheld == s->reverse_batch) {
			while (c->nheld > 0) {
				c->nheld--;
				tconn_send(c, c->held[c->nheld].msg, c->held[c->nheld].len);
				free(c->held[c->nheld].msg);
			}
		}
	} else if (s->delay_ms) {
		tdelay_t *d = calloc(1, sizeof(*d));
		d->s = s;
		d->c = c;
		d->msg = malloc(len);
		memcpy(d->msg, ans, len);
		d->len = len;
		d->ev = evtimer_new(base, tdelay_fire, d);
		d->next = s->delays;
		s->delays = d;
		struct timeval tv = {s->delay_ms / 1000, (s->delay_ms % 1000) * 1000};
		evtimer_add(d->ev, &tv);
	} else {
		tconn_send(c, ans, len);
	}
	return true;
}

/* HTTP: one whole request (head + body) at the front of \p in, or 0. */
static size_t http_request_len(tconn_t *c, struct evbuffer *in, size_t *body_at)
{
	struct evbuffer_ptr e = evbuffer_search(in, "\r\n\r\n", 4, NULL);
	if (e.pos < 0)
		return 0;
	size_t hl = (size_t)e.pos + 4;
	char *head = (char *)evbuffer_pullup(in, (ev_ssize_t)hl);
	char save = head[hl - 1];
	head[hl - 1] = '\0';
	snprintf(c->s->last_line, sizeof(c->s->last_line), "%.*s", (int)strcspn(head, "\r"), head);
	const char *cl = strcasestr(head, "\r\nContent-Length:");
	if (!strcasestr(head, "\r\nContent-Type: application/x-hdl-message\r\n") || !cl)
		c->s->bad_http++;
	size_t blen = cl ? strtoul(cl + 17, NULL, 10) : 0;
	head[hl - 1] = save;
	*body_at = hl;
	return evbuffer_get_length(in) >= hl + blen ? hl + blen : 0;
}

static void tconn_read(struct bufferevent *bev, void *arg)
{
	tconn_t *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	for (;;) {
		size_t avail = evbuffer_get_length(in), at = 0, need;
		if (c->s->http) {
			need = http_request_len(c, in, &at);
			if (!need)
				return;
		} else {
			uint8_t eb[HDL_ENVELOPE_LEN];
			if (avail < sizeof(eb))
				return;
			evbuffer_copyout(in, eb, sizeof(eb));
			need = HDL_ENVELOPE_LEN + ((size_t)eb[16] << 24 | (size_t)eb[17] << 16 |
			                           (size_t)eb[18] << 8 | eb[19]);
			if (avail < need)
				return;
		}
		uint8_t *frame = malloc(need);
		evbuffer_remove(in, frame, need);
		bool alive = tconn_request(c, frame + at, need - at);
		free(frame);
		if (!alive)
			return;
	}
}

static void tconn_write(struct bufferevent *bev, void *arg)
{
	tconn_t *c = arg;
	if (c->closing && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		tconn_free(c);
}

static void tconn_event(struct bufferevent *bev, short what, void *arg)
{
	tconn_t *c = arg;
	if (what & BEV_EVENT_CONNECTED) {
		SSL *ssl = bufferevent_openssl_get_ssl(bev);
		if (ssl) {
			c->s->handshakes++;
			if (SSL_session_reused(ssl))
				c->s->resumed++;
			if (SSL_get0_peer_certificate(ssl))
				c->s->peer_certs++;
		}
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		while (bufferevent_get_openssl_error(bev))
			;
		tconn_free(c);
	}
}

static void tsrv_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                        int salen, void *arg)
{
	tsrv_t *s = arg;
	tconn_t *c = calloc(1, sizeof(*c));
	c->s = s;
	s->accepts++;
	s->accepts_on[l == s->lis[1] ? 1 : 0]++;
	if (s->ctx) {
		SSL *ssl = SSL_new(s->ctx);
		c->bev = bufferevent_openssl_socket_new(base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
		                                        BEV_OPT_CLOSE_ON_FREE);
		bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	} else {
		c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	}
	bufferevent_setcb(c->bev, tconn_read, tconn_write, tconn_event, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	c->next = s->conns;
	s->conns = c;
	if (++s->open > s->max_open)
		s->max_open = s->open;
}

static struct evconnlistener *listen_on(tsrv_t *s, const char *ip, uint16_t port)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sa = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sa6 = (struct sockaddr_in6 *)&ss;
	socklen_t sl = sizeof(*sa);
	memset(&ss, 0, sizeof(ss));
	if (strchr(ip, ':')) {
		sa6->sin6_family = AF_INET6;
		sa6->sin6_port = htons(port);
		inet_pton(AF_INET6, ip, &sa6->sin6_addr);
		sl = sizeof(*sa6);
	} else {
		sa->sin_family = AF_INET;
		sa->sin_port = htons(port);
		inet_pton(AF_INET, ip, &sa->sin_addr);
	}
	return evconnlistener_new_bind(base, tsrv_accept, s,
	                               LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 64,
	                               (struct sockaddr *)&ss, (int)sl);
}

/* A server on 127.0.0.1 (and on 127.0.0.2, same port, when \p second). */
static tsrv_t *tsrv_new(SSL_CTX *ctx, bool http, bool second)
{
	tsrv_t *s = calloc(1, sizeof(*s));
	s->ctx = ctx;
	s->http = http;
	snprintf(s->tag, sizeof(s->tag), "srv");
	for (int tries = 0; tries < 20; tries++) {
		s->lis[0] = listen_on(s, "127.0.0.1", 0);
		assert_non_null(s->lis[0]);
		struct sockaddr_in sa;
		socklen_t sl = sizeof(sa);
		getsockname(evconnlistener_get_fd(s->lis[0]), (struct sockaddr *)&sa, &sl);
		s->port = ntohs(sa.sin_port);
		if (!second)
			return s;
		if ((s->lis[1] = listen_on(s, "127.0.0.2", s->port)) != NULL)
			return s;
		evconnlistener_free(s->lis[0]);
	}
	fail_msg("no port free on both 127.0.0.1 and 127.0.0.2");
	return NULL;
}

static void tsrv_free(tsrv_t *s)
{
	while (s->conns)
		tconn_free(s->conns);
	while (s->delays) {
		tdelay_t *d = s->delays;
		s->delays = d->next;
		event_free(d->ev);
		free(d->msg);
		free(d);
	}
	for (int i = 0; i < 2; i++) {
		if (s->lis[i])
			evconnlistener_free(s->lis[i]);
	}
	if (s->ctx)
		SSL_CTX_free(s->ctx);
	free(s);
}

static ups_target_t target(uint16_t port, ups_transport_t tr, ups_tls_t *tls)
{
	ups_target_t t;
	char hp[64];
	snprintf(hp, sizeof(hp), "127.0.0.1:%u", port);
	assert_int_equal(ups_target_set(&t, hp, tr, tls), HDL_EOK);
	return t;
}

static ups_limits_t test_limits(void)
{
	ups_limits_t l;
	ups_limits_default(&l);
	l.connect_timeout_ms = 5000;
	l.fail_threshold = 100; /* tests of health set their own */
	return l;
}

static ups_pool_t *pool_new(const ups_limits_t *l, dns_t *dns)
{
	ups_pool_t *p = NULL;
	assert_int_equal(ups_pool_new(base, l, dns, &p), HDL_EOK);
	ups_pool_seed(p, 42);
	return p;
}

/* A port nothing listens on (bound, then closed). */
static uint16_t dead_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	getsockname(fd, (struct sockaddr *)&sa, &sl);
	close(fd);
	return ntohs(sa.sin_port);
}

/* ---- setup ------------------------------------------------------------------------------- */

static int group_setup(void **state)
{
	char cmd[1024];
	signal(SIGPIPE, SIG_IGN);
	snprintf(certs, sizeof(certs), "/tmp/test_upstream.XXXXXX");
	if (!mkdtemp(certs))
		return -1;
	snprintf(others, sizeof(others), "%s/other", certs);
	snprintf(cmd, sizeof(cmd),
	         "bash %s/certs/make-dev-certs.sh %s ups.test >/dev/null && "
	         "bash %s/certs/make-dev-certs.sh %s >/dev/null",
	         HDL_SOURCE_DIR, certs, HDL_SOURCE_DIR, others);
	if (system(cmd) != 0)
		return -1;
	base = event_base_new();
	ticker = event_new(base, -1, EV_PERSIST, tick, NULL);
	struct timeval tv = {0, 10000};
	event_add(ticker, &tv);
	return 0;
}

static int group_teardown(void **state)
{
	char cmd[600];
	event_free(ticker);
	event_base_free(base);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", certs);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- TLS stream -------------------------------------------------------------------------- */

/* Eight requests in flight on one connection, answered last first: each reply reaches its own
 * query with the caller's RequestId; the server saw unique ids. */
static void test_tls_pipelining(void **state)
{
	tsrv_t *s = tsrv_new(server_ctx(certs, "server", NULL), false, false);
	s->reverse_batch = 8;
	ups_tls_t *tls = client_tls(certs, true, NULL, NULL);
	ups_limits_t l = test_limits();
	l.max_conns_per_server = 1;
	ups_pool_t *p = pool_new(&l, NULL);
	ups_target_t t = target(s->port, UPS_TLS, tls);
	res_t r[8];
	for (unsigned i = 0; i < 8; i++)
		start(p, &t, i, 10000, &r[i], NULL);
	many_t m = {r, 8};
	assert_true(run_until(all_done, &m, WAIT_MS));
	for (unsigned i = 0; i < 8; i++) {
		char h[32];
		snprintf(h, sizeof(h), "88.1/%u", i);
		assert_int_equal(r[i].status, HDL_EOK);
		assert_int_equal(r[i].calls, 1);
		assert_string_equal(r[i].handle, h);
		assert_int_equal(r[i].rid, 1000u + i);
	}
	assert_int_equal(s->accepts, 1);
	assert_int_equal(s->handshakes, 1);
	assert_int_equal(s->requests, 8);
	assert_int_equal(s->dup_ids, 0);
	ups_stats_t st;
	ups_pool_stats(p, &st);
	assert_int_equal(st.tls_handshakes, 1);
	assert_int_equal(st.answers, 8);
	assert_int_equal(st.queries_active, 0);
	ups_pool_free(p);
	ups_tls_unref(tls);
	tsrv_free(s);
}

static bool conns_zero(void *arg)
{
	ups_stats_t st;
	ups_pool_stats(arg, &st);
	return st.conns_open == 0;
}

/* Many queries, one handshake; after the idle timeout the next connection resumes the session. */
static void test_tls_reuse_resumption(void **state)
{
	tsrv_t *s = tsrv_new(server_ctx(certs, "server", NULL), false, false);
	ups_tls_t *tls = client_tls(certs, true, NULL, NULL);
	ups_limits_t l = test_limits();
	l.idle_timeout_ms = 1000; /* far above the gaps between the queries below */
	ups_pool_t *p = pool_new(&l, NULL);
	ups_target_t t = target(s->port, UPS_TLS, tls);
	res_t r;
	for (unsigned i = 0; i < 20; i++)
		assert_int_equal(query1(p, &t, i, &r), HDL_EOK);
	assert_int_equal(s->accepts, 1);
	assert_int_equal(s->handshakes, 1);
	assert_true(run_until(conns_zero, p, WAIT_MS)); /* idle timeout */
	assert_int_equal(query1(p, &t, 99, &r), HDL_EOK);
	assert_int_equal(s->accepts, 2);
	assert_int_equal(s->resumed, 1);
	ups_stats_t st;
	ups_pool_stats(p, &st);
	assert_int_equal(st.tls_handshakes, 2);
	assert_int_equal(st.tls_resumed, 1);
	ups_pool_free(p);
	ups_tls_unref(tls);
	tsrv_free(s);
}

/* A refused certificate: the query fails with HDL_ETLS, the server never sees a request, and a
 * line naming the reason is logged. */
static void refused_case(SSL_CTX *sctx, ups_tls_t *tls, const char *name, const char *want_log)
{
	tsrv_t *s = tsrv_new(sctx, false, false);
	ups_limits_t l = test_limits();
	ups_pool_t *p = pool_new(&l, NULL);
	ups_target_t t = target(s->port, UPS_TLS, tls);
	if (name)
		snprintf(t.name, sizeof(t.name), "%s", name);
	res_t r;
	log_capture_begin();
	int status = query1(p, &t, 1, &r);
	run_for(50); /* let the server notice */
	char *log = log_capture_end();
	assert_int_equal(status, HDL_ETLS);
	assert_int_equal(s->requests, 0);
	assert_int_equal(s->answers, 0);
	if (!strstr(log, want_log))
		fail_msg("log lacks '%s'", want_log);
	ups_stats_t st;
	ups_pool_stats(p, &st);
	assert_true(st.tls_failures >= 1);
	ups_pool_free(p);
	tsrv_free(s);
}

static void test_tls_wrong_ca(void **state)
{
	ups_tls_t *tls = client_tls(others, true, NULL, NULL);
	refused_case(server_ctx(certs, "server", NULL), tls, NULL, "certificate verify failed");
	ups_tls_unref(tls);
}

static void test_tls_wrong_name(void **state)
{
	ups_tls_t *tls = client_tls(certs, true, NULL, NULL);
	refused_case(server_ctx(certs, "server", NULL), tls, "wrong.example", "hostname mismatch");
	refused_case(server_ctx(certs, "server", NULL), tls, "127.0.0.9", "IP address mismatch");
	ups_tls_unref(tls);
}

static void test_tls_expired(void **state)
{
	ups_tls_t *tls = client_tls(certs, true, NULL, NULL);
	refused_case(server_ctx(certs, "expired", NULL), tls, NULL, "certificate has expired");
	ups_tls_unref(tls);
}

static void test_tls_pin(void **state)
{
	char pin[128];
	/* the other run's server key: a valid chain (verify=no here) but not the pinned key */
	ups_tls_t *bad = client_tls(certs, false, NULL, read_pin(others, pin, sizeof(pin)));
	refused_case(server_ctx(certs, "server", NULL), bad, NULL, "pin mismatch");
	ups_tls_unref(bad);
	/* with verification on too */
	bad = client_tls(certs, true, NULL, read_pin(others, pin, sizeof(pin)));
	refused_case(server_ctx(certs, "server", NULL), bad, NULL, "pin mismatch");
	ups_tls_unref(bad);

	ups_tls_t *good = client_tls(certs, true, NULL, read_pin(certs, pin, sizeof(pin)));
	tsrv_t *s = tsrv_new(server_ctx(certs, "server", NULL), false, false);
	ups_limits_t l = test_limits();
	l.idle_timeout_ms = 200;
	ups_pool_t *p = pool_new(&l, NULL);
	ups_target_t t = target(s->port, UPS_TLS, good);
	res_t r;
	assert_int_equal(query1(p, &t, 1, &r), HDL_EOK);
	/* a resumed session is checked against the pin as well, and passes */
	assert_true(run_until(conns_zero, p, WAIT_MS));
	assert_int_equal(query1(p, &t, 2, &r), HDL_EOK);
	assert_int_equal(s->resumed, 1);
	ups_pool_free(p);
	ups_tls_unref(good);
	tsrv_free(s);
}

/* verify=no accepts a certificate of another CA, and says so in the log. */
static void test_tls_verify_off(void **state)
{
	log_capture_begin();
	ups_tls_t *tls = client_tls(others, false, NULL, NULL);
	char *log = log_capture_end();
	assert_non_null(strstr(log, "verification is OFF"));
	tsrv_t *s = tsrv_new(server_ctx(certs, "server", NULL), false, false);
	ups_limits_t l = test_limits();
	ups_pool_t *p = pool_new(&l, NULL);
	ups_target_t t = target(s->port, UPS_TLS, tls);
	res_t r;
	assert_int_equal(query1(p, &t, 1, &r), HDL_EOK);
	ups_pool_free(p);
	ups_tls_unref(tls);
	tsrv_free(s);
}

/* A server that requires a client certificate answers with one and never without. */
static void test_tls_client_cert(void **state)
{
	char ca[400];
	snprintf(ca, sizeof(ca), "%s/ca.pem", certs);
	tsrv_t *s = tsrv_new(server_ctx(certs, "server", ca), false, false);
	ups_tls_t *with = client_tls(certs, true, "client", NULL);
	ups_tls_t *without = client_tls(certs, true, NULL, NULL);
	ups_limits_t l = test_limits();
	ups_pool_t *p = pool_new(&l, NULL);
	res_t r;
	ups_target_t t = target(s->port, UPS_TLS, with);
	assert_int_equal(query1(p, &t, 1, &r), HDL_EOK);
	assert_int_equal(s->peer_certs, 1);
	unsigned answers = s->answers;
	t = target(s->port, UPS_TLS, without);
	int st = query1(p, &t, 2, &r);
	assert_true(st == HDL_ETLS || st == HDL_EIO);
	assert_int_equal(s->answers, answers);
	ups_pool_free(p);
	ups_tls_unref(with);
	ups_tls_unref(without);
	tsrv_free(s);
}

/* ---- deadlines, cancel, lost connections -------------------------------------------------- */

static void test_deadline(void **state)
{
	tsrv_t *s = tsrv_new(server_ctx(certs, "server", NULL), false, false);
	s->delay_ms = 3000;
	ups_tls_t *tls = client_tls(certs, true, NULL, NULL);
	ups_limits_t l = test_limits();
	ups_pool_t *p = pool_new(&l, NULL);
	ups_target_t t = target(s->port, UPS_TLS, tls);
	res_t r;
	uint64_t t0 = ups_now_ms();
	start(p, &t, 1, 300, &r, NULL);
	assert_true(run_until(res_done, &r, WAIT_MS));
	uint64_t took = ups_now_ms() - t0;
	assert_int_equal(r.status, HDL_ETIMEDOUT);
	assert_true(took >= 295);
	assert_true(took < 2900); /* well before the answer would have come */
	ups_stats_t st;
	ups_pool_stats(p, &st);
	assert_int_equal(st.timeouts, 1);
	assert_int_equal(st.queries_active, 0);
	ups_pool_free(p);
	ups_tls_unref(tls);
	tsrv_free(s);

	/* one request per connection (TCP): the connection of a timed-out request is given up at
	 * once rather than held for its late answer; the next query gets a new one */
	s = tsrv_new(NULL, false, false);
	s->delay_ms = 3000;
	p = pool_new(&l, NULL);
	t = target(s->port, UPS_TCP, NULL);
	start(p, &t, 2, 300, &r, NULL);
	assert_true(run_until(res_done, &r, WAIT_MS));
	assert_int_equal(r.status, HDL_ETIMEDOUT);
	assert_true(run_until(conns_zero, p, WAIT_MS));
	s->delay_ms = 0;
	assert_int_equal(query1(p, &t, 3, &r), HDL_EOK);
	assert_int_equal(s->accepts, 2);
	ups_pool_free(p);
	tsrv_free(s);
}

static bool srv_requests_ge(void *arg)
{
	tsrv_t **s = arg;
	return s[0]->requests >= 1;
}

static bool srv_answers_ge2(void *arg)
{
	return ((tsrv_t *)arg)->answers >= 2;
}

/* Cancelled in flight: no callback, the late answer is dropped, the connection still serves. */
static void test_cancel_in_flight(void **state)
{
	tsrv_t *s = tsrv_new(server_ctx(certs, "server", NULL), false, false);
	s->delay_ms = 300;
	ups_tls_t *tls = client_tls(certs, true, NULL, NULL);
	ups_limits_t l = test_limits();
	ups_pool_t *p = pool_new(&l, NULL);
	ups_target_t t = target(s->port, UPS_TLS, tls);
	res_t r, r2;
	ups_query_t *q = NULL;
	start(p, &t, 1, 5000, &r, &q);
	assert_true(run_until(srv_requests_ge, &s, WAIT_MS));
	ups_query_cancel(q);
	start(p, &t, 2, 5000, &r2, NULL);
	assert_true(run_until(res_done, &r2, WAIT_MS));
	assert_int_equal(r2.status, HDL_EOK);
	assert_string_equal(r2.handle, "88.1/2");
	assert_true(run_until(srv_answers_ge2, s, WAIT_MS));
	run_for(100);
	assert_false(r.done);
	assert_int_equal(s->accepts, 1);
	ups_stats_t st;
	ups_pool_stats(p, &st);
	assert_int_equal(st.queries_active, 0);
	/* cancelling a query still waiting for its connection */
	ups_target_t t2 = target(dead_port(), UPS_TLS, tls);
	start(p, &t2, 3, 5000, &r, &q);
	ups_query_cancel(q);
	run_for(100);
	assert_false(r.done);
	ups_pool_free(p);
	ups_tls_unref(tls);
	tsrv_free(s);
}

static void test_lost_connection(void **state)
{
	tsrv_t *s = tsrv_new(server_ctx(certs, "server", NULL), false, false);
	ups_tls_t *tls = client_tls(certs, true, NULL, NULL);
	ups_limits_t l = test_limits();
	ups_pool_t *p = pool_new(&l, NULL);
	ups_target_t t = target(s->port, UPS_TLS, tls);
	res_t r;
	/* half a reply, then the server closes */
	s->half_reply = true;
	assert_int_equal(query1(p, &t, 1, &r), HDL_EIO);
	/* the server closes on the request: a fresh connection is not retried */
	s->half_reply = false;
	s->drop_set = true;
	s->drop_after = 0;
	assert_int_equal(query1(p, &t, 2, &r), HDL_EIO);
	/* a reused connection the server closes under a request: sent again once, on a new one */
	s->drop_set = false;
	assert_int_equal(query1(p, &t, 3, &r), HDL_EOK);
	unsigned accepts = s->accepts;
	s->drop_set = true;
	s->drop_after = 1; /* the connection above answered 1: drop on the next */
	assert_int_equal(query1(p, &t, 4, &r), HDL_EOK);
	assert_int_equal(s->accepts, accepts + 1);
	ups_stats_t st;
	ups_pool_stats(p, &st);
	assert_int_equal(st.retried, 1);
	/* an answer with a RequestId that is not in flight closes the connection */
	s->drop_set = false;
	s->bad_id = true;
	assert_int_equal(query1(p, &t, 5, &r), HDL_EPROTO);
	ups_pool_free(p);
	ups_tls_unref(tls);
	tsrv_free(s);
}

/* ---- selection, failover, health ---------------------------------------------------------- */

static void test_failover_backoff(void **state)
{
	tsrv_t *s = tsrv_new(NULL, false, false);
	snprintf(s->tag, sizeof(s->tag), "good");
	ups_limits_t l = test_limits();
	l.fail_threshold = 2;
	l.backoff_ms = 400;
	l.backoff_max_ms = 1600;
	ups_pool_t *p = pool_new(&l, NULL);
	ups_target_t c[2] = {target(dead_port(), UPS_TCP, NULL), target(s->port, UPS_TCP, NULL)};
	uint8_t req[256];
	size_t len = mkreq("88.1/f", 7, req, sizeof(req));
	ups_server_info_t info;
	res_t r;
	/* the dead one is tried first (nothing measured: the order given), then the good one */
	memset(&r, 0, sizeof(r));
	assert_int_equal(
	    ups_query_any(p, c, 2, req, len, ups_now_ms() + 8000, 2000, on_res, &r, NULL), HDL_EOK);
	assert_true(run_until(res_done, &r, WAIT_MS));
	assert_int_equal(r.status, HDL_EOK);
	assert_string_equal(r.tag, "good");
	assert_int_equal(r.rid, 7);
	ups_stats_t st;
	ups_pool_stats(p, &st);
	assert_int_equal(st.failovers, 1);
	ups_server_info(p, &c[0], &info);
	assert_false(info.down);
	assert_int_equal(info.fails, 1);
	/* a second failure in a row: down for the first back-off */
	assert_int_equal(query1(p, &c[0], 1, &r), HDL_ECONNREFUSED);
	ups_server_info(p, &c[0], &info);
	assert_true(info.down);
	assert_int_equal(info.fails, 2);
	assert_true(info.down_ms > 0 && info.down_ms <= 400);
	/* down: not chosen, not even tried */
	for (unsigned i = 0; i < 50; i++)
		assert_int_equal(ups_choose(p, c, 2, NULL), 1);
	assert_int_equal(ups_choose(p, c, 1, NULL), HDL_EAGAIN);
	memset(&r, 0, sizeof(r));
	assert_int_equal(
	    ups_query_any(p, c, 2, req, len, ups_now_ms() + 8000, 2000, on_res, &r, NULL), HDL_EOK);
	assert_true(run_until(res_done, &r, WAIT_MS));
	assert_int_equal(r.status, HDL_EOK);
	ups_pool_stats(p, &st);
	assert_int_equal(st.failovers, 1);
	/* after the back-off: one probe; it fails, and the back-off doubles */
	run_for(450);
	assert_int_equal(ups_choose(p, c, 1, NULL), 0);
	assert_int_equal(query1(p, &c[0], 1, &r), HDL_ECONNREFUSED);
	ups_server_info(p, &c[0], &info);
	assert_true(info.down);
	assert_true(info.down_ms > 400 && info.down_ms <= 800);
	/* every candidate down: refused at once */
	memset(&r, 0, sizeof(r));
	assert_int_equal(
	    ups_query_any(p, c, 1, req, len, ups_now_ms() + 8000, 2000, on_res, &r, NULL),
	    HDL_EAGAIN);
	/* a success clears the health record */
	ups_pool_free(p);
	p = pool_new(&l, NULL);
	assert_int_equal(query1(p, &c[1], 1, &r), HDL_EOK);
	ups_server_info(p, &c[1], &info);
	assert_true(info.known && info.measured && !info.down && info.fails == 0);
	ups_pool_free(p);
	tsrv_free(s);
}

/* A server that does not answer in time: the next one is asked after the per-try timeout. */
static void test_failover_timeout(void **state)
{
	tsrv_t *slow = tsrv_new(NULL, false, false), *fast = tsrv_new(NULL, false, false);
	slow->delay_ms = 4000;
	snprintf(fast->tag, sizeof(fast->tag), "fast");
	ups_limits_t l = test_limits();
	ups_pool_t *p = pool_new(&l, NULL);
	ups_target_t c[2] = {target(slow->port, UPS_TCP, NULL), target(fast->port, UPS_TCP, NULL)};
	uint8_t req[256];
	size_t len = mkreq("88.1/t", 9, req, sizeof(req));
	res_t r;
	memset(&r, 0, sizeof(r));
	uint64_t t0 = ups_now_ms();
	assert_int_equal(ups_query_any(p, c, 2, req, len, t0 + 10000, 300, on_res, &r, NULL),
	                 HDL_EOK);
	assert_true(run_until(res_done, &r, WAIT_MS));
	assert_int_equal(r.status, HDL_EOK);
	assert_string_equal(r.tag, "fast");
	assert_int_equal(r.rid, 9);
	uint64_t took = ups_now_ms() - t0;
	assert_true(took >= 295 && took < 3900);
	assert_int_equal(slow->requests, 1);
	ups_server_info_t info;
	ups_server_info(p, &c[0], &info);
	assert_int_equal(info.fails, 1);
	assert_true(info.srtt_ms >= 295);
	/* both too slow: the overall deadline ends it */
	fast->delay_ms = 4000;
	memset(&r, 0, sizeof(r));
	t0 = ups_now_ms();
	assert_int_equal(ups_query_any(p, c, 2, req, len, t0 + 500, 300, on_res, &r, NULL),
	                 HDL_EOK);
	assert_true(run_until(res_done, &r, WAIT_MS));
	assert_int_equal(r.status, HDL_ETIMEDOUT);
	assert_true(ups_now_ms() - t0 >= 495);
	/* new limits apply to the next start */
	ups_limits_t one = l;
	one.max_queries = 1;
	ups_pool_set_limits(p, &one);
	res_t a, b;
	start(p, &c[1], 1, 5000, &a, NULL);
	assert_int_equal(ups_query_start(p, &c[1], req, len, ups_now_ms() + 1000, on_res, &b, NULL),
	                 HDL_ELIMIT);
	ups_pool_free(p);
	tsrv_free(slow);
	tsrv_free(fast);
}

/* A 400 ms server and an immediate one: the quick one is chosen, the slow one now and then. */
static void test_srtt_choice(void **state)
{
	tsrv_t *slow = tsrv_new(NULL, false, false), *fast = tsrv_new(NULL, false, false);
	slow->delay_ms = 400;
	ups_limits_t l = test_limits();
	ups_pool_t *p = pool_new(&l, NULL);
	ups_target_t c[2] = {target(slow->port, UPS_TCP, NULL), target(fast->port, UPS_TCP, NULL)};
	res_t r;
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(query1(p, &c[0], i, &r), HDL_EOK);
		assert_int_equal(query1(p, &c[1], i, &r), HDL_EOK);
	}
	ups_server_info_t a, b;
	ups_server_info(p, &c[0], &a);
	ups_server_info(p, &c[1], &b);
	assert_true(a.measured && b.measured);
	assert_true(a.srtt_ms >= 390);
	assert_true(b.srtt_ms < a.srtt_ms);
	unsigned picks[2] = {0, 0};
	for (unsigned i = 0; i < 400; i++) {
		int k = ups_choose(p, c, 2, NULL);
		assert_true(k == 0 || k == 1);
		picks[k]++;
	}
	/* exploration: 1 in UPS_EXPLORE_ONE_IN goes to the other one */
	assert_true(picks[1] >= 340);
	assert_true(picks[0] >= 5 && picks[0] <= 60);
	bool skip[2] = {false, true};
	assert_int_equal(ups_choose(p, c, 2, skip), 0);
	ups_pool_free(p);
	tsrv_free(slow);
	tsrv_free(fast);
}

/* ---- HTTPS tunnel ------------------------------------------------------------------------- */

static void test_https_tunnel(void **state)
{
	tsrv_t *s = tsrv_new(server_ctx(certs, "server", NULL), true, false);
	ups_tls_t *tls = client_tls(certs, true, NULL, NULL);
	ups_limits_t l = test_limits();
	l.max_conns_per_server = 1;
	ups_pool_t *p = pool_new(&l, NULL);
	ups_target_t t = target(s->port, UPS_HTTPS, tls);
	res_t r[4];
	/* four at once on one connection: one request at a time, keep-alive */
	for (unsigned i = 0; i < 4; i++)
		start(p, &t, i, 10000, &r[i], NULL);
	many_t m = {r, 4};
	assert_true(run_until(all_done, &m, WAIT_MS));
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(r[i].status, HDL_EOK);
	assert_int_equal(s->accepts, 1);
	assert_int_equal(s->bad_http, 0);
	assert_string_equal(s->last_line, "POST / HTTP/1.1");
	/* Connection: close is honoured: the next query opens a new connection */
	s->http_close = true;
	assert_int_equal(query1(p, &t, 10, &r[0]), HDL_EOK);
	s->http_close = false;
	assert_int_equal(query1(p, &t, 11, &r[0]), HDL_EOK);
	assert_int_equal(s->accepts, 2);
	/* an HTTP error status, a chunked answer, a head that never ends, a wrong type */
	s->http_status = 500;
	assert_int_equal(query1(p, &t, 12, &r[0]), HDL_EPROTO);
	s->http_status = 0;
	s->raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
	assert_int_equal(query1(p, &t, 13, &r[0]), HDL_EPROTO);
	static char junk[UPS_HTTP_HEAD_MAX + 200];
	memcpy(junk, "HTTP/1.1 200 OK\r\n", 17);
	memset(junk + 17, 'a', sizeof(junk) - 18);
	s->raw = junk;
	assert_int_equal(query1(p, &t, 14, &r[0]), HDL_EPROTO);
	s->raw = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 44\r\n\r\n"
	         "<html>0123456789012345678901234567890123</html>";
	assert_int_equal(query1(p, &t, 15, &r[0]), HDL_EPROTO);
	/* a Content-Length over upstream_max_reply is refused before the body is read */
	s->raw = "HTTP/1.1 200 OK\r\nContent-Length: 300000\r\n\r\n";
	assert_int_equal(query1(p, &t, 16, &r[0]), HDL_ELIMIT);
	s->raw = NULL;
	assert_int_equal(query1(p, &t, 17, &r[0]), HDL_EOK);
	ups_pool_free(p);
	ups_tls_unref(tls);
	tsrv_free(s);
	/* the plain HTTP tunnel, the same framing */
	s = tsrv_new(NULL, true, false);
	p = pool_new(&l, NULL);
	t = target(s->port, UPS_HTTP, NULL);
	assert_int_equal(query1(p, &t, 1, &r[0]), HDL_EOK);
	/* and over IPv6 (::1; skipped where loopback has no IPv6) */
	struct evconnlistener *l6 = listen_on(s, "::1", 0);
	if (l6) {
		struct sockaddr_in6 sa6;
		socklen_t sl = sizeof(sa6);
		getsockname(evconnlistener_get_fd(l6), (struct sockaddr *)&sa6, &sl);
		char hp[64];
		snprintf(hp, sizeof(hp), "[::1]:%u", ntohs(sa6.sin6_port));
		assert_int_equal(ups_target_set(&t, hp, UPS_HTTP, NULL), HDL_EOK);
		unsigned accepts = s->accepts;
		assert_int_equal(query1(p, &t, 2, &r[0]), HDL_EOK);
		assert_int_equal(s->accepts, accepts + 1);
		assert_string_equal(s->last_line, "POST / HTTP/1.1");
	}
	ups_pool_free(p);
	tsrv_free(s);
	if (l6)
		evconnlistener_free(l6);
}

/* ---- UDP ---------------------------------------------------------------------------------- */

typedef struct tudp {
	int fd;
	struct event *ev;
	uint16_t port;
	unsigned requests;
	unsigned drop_first; /* ignore this many requests */
	size_t pad;
} tudp_t;

static void tudp_read(evutil_socket_t fd, short what, void *arg)
{
	tudp_t *u = arg;
	uint8_t buf[2048], ans[80000], stack[4096], d[HDL_UDP_MAX_DGRAM];
	struct sockaddr_storage from;
	socklen_t fl = sizeof(from);
	ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
	if (n <= 0)
		return;
	if (u->requests++ < u->drop_first)
		return;
	hdl_arena_t a;
	hdl_msg_t m;
	hdl_arena_init(&a, stack, sizeof(stack), 1u << 20);
	assert_int_equal(hdl_msg_decode(buf, (size_t)n, &a, &m), HDL_EOK);
	tsrv_t fake = {.pad = u->pad};
	snprintf(fake.tag, sizeof(fake.tag), "udp");
	size_t len = build_answer(&fake, &m, ans, sizeof(ans));
	/* a stray datagram with another RequestId first, then the answer last packet first */
	memcpy(d, ans, HDL_ENVELOPE_LEN);
	d[11] ^= 0x5a;
	sendto(fd, d, HDL_ENVELOPE_LEN, 0, (struct sockaddr *)&from, fl);
	uint32_t np = hdl_udp_npackets((uint32_t)(len - HDL_ENVELOPE_LEN));
	for (uint32_t k = np; k-- > 0;) {
		size_t dl = hdl_udp_packet(ans, len, k, false, d);
		sendto(fd, d, dl, 0, (struct sockaddr *)&from, fl);
	}
	hdl_arena_free(&a);
}

static tudp_t *tudp_new(void)
{
	tudp_t *u = calloc(1, sizeof(*u));
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	u->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	assert_int_equal(bind(u->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	getsockname(u->fd, (struct sockaddr *)&sa, &sl);
	u->port = ntohs(sa.sin_port);
	u->ev = event_new(base, u->fd, EV_READ | EV_PERSIST, tudp_read, u);
	event_add(u->ev, NULL);
	return u;
}

static void tudp_free(tudp_t *u)
{
	event_free(u->ev);
	close(u->fd);
	free(u);
}

static void test_udp_multipacket(void **state)
{
	tudp_t *u = tudp_new();
	u->pad = 2000; /* five datagrams */
	u->drop_first = 1;
	ups_limits_t l = test_limits();
	l.udp_retry_ms = 100;
	ups_pool_t *p = pool_new(&l, NULL);
	ups_target_t t = target(u->port, UPS_UDP, NULL);
	res_t r;
	assert_int_equal(query1(p, &t, 1, &r), HDL_EOK);
	assert_memory_equal(r.tag, "udpxx", 5);
	assert_true(r.len > 4 * HDL_UDP_MAX_PAYLOAD);
	assert_int_equal(u->requests, 2); /* the first one was ignored: retransmitted */
	ups_stats_t st;
	ups_pool_stats(p, &st);
	assert_int_equal(st.udp_sent, 2);
	/* an answer over upstream_max_reply is refused */
	ups_pool_free(p);
	l.max_reply = 1024;
	p = pool_new(&l, NULL);
	u->drop_first = 0;
	assert_int_equal(query1(p, &t, 2, &r), HDL_ELIMIT);
	/* nobody there: ICMP refusal, or the deadline */
	ups_target_t dead = target(dead_port(), UPS_UDP, NULL);
	memset(&r, 0, sizeof(r));
	start(p, &dead, 3, 1000, &r, NULL);
	assert_true(run_until(res_done, &r, WAIT_MS));
	assert_true(r.status == HDL_ECONNREFUSED || r.status == HDL_ETIMEDOUT);
	ups_pool_free(p);
	tudp_free(u);
}

/* ---- limits ------------------------------------------------------------------------------- */

static void test_limits_queries_conns(void **state)
{
	tsrv_t *s = tsrv_new(NULL, false, false);
	s->delay_ms = 200;
	ups_limits_t l = test_limits();
	l.max_queries = 6;
	l.max_conns_per_server = 2;
	ups_pool_t *p = pool_new(&l, NULL);
	ups_target_t t = target(s->port, UPS_TCP, NULL); /* one request per connection at a time */
	res_t r[7];
	memset(r, 0, sizeof(r));
	for (unsigned i = 0; i < 6; i++)
		start(p, &t, i, 10000, &r[i], NULL);
	uint8_t req[256];
	size_t len = mkreq("88.1/x", 1, req, sizeof(req));
	assert_int_equal(ups_query_start(p, &t, req, len, ups_now_ms() + 1000, on_res, &r[6], NULL),
	                 HDL_ELIMIT);
	many_t m = {r, 6};
	assert_true(run_until(all_done, &m, WAIT_MS));
	for (unsigned i = 0; i < 6; i++)
		assert_int_equal(r[i].status, HDL_EOK);
	assert_int_equal(s->max_open, 2);
	ups_stats_t st;
	ups_pool_stats(p, &st);
	assert_int_equal(st.refused, 1);
	assert_false(r[6].done);
	ups_pool_free(p);
	tsrv_free(s);
}

typedef struct conn_watch {
	ups_pool_t *p;
	unsigned max;
	many_t *m;
} conn_watch_t;

static bool watch_conns(void *arg)
{
	conn_watch_t *w = arg;
	ups_stats_t st;
	ups_pool_stats(w->p, &st);
	if (st.conns_open > w->max)
		w->max = st.conns_open;
	return all_done(w->m);
}

/* Three servers, two connections in all: idle ones are closed to make room, busy ones waited
 * for; the pool never holds more than two. */
static void test_limits_total_conns(void **state)
{
	tsrv_t *s[3];
	ups_target_t t[3];
	for (unsigned i = 0; i < 3; i++) {
		s[i] = tsrv_new(NULL, false, false);
		s[i]->delay_ms = 150;
		t[i] = target(s[i]->port, UPS_TCP, NULL);
	}
	ups_limits_t l = test_limits();
	l.max_conns = 2;
	ups_pool_t *p = pool_new(&l, NULL);
	res_t r[9];
	/* sequential: A, B, then C evicts A's idle connection */
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(query1(p, &t[i], i, &r[i]), HDL_EOK);
	ups_stats_t st;
	ups_pool_stats(p, &st);
	assert_int_equal(st.conns_open, 2);
	/* concurrent: nine queries over three servers, two connections */
	for (unsigned i = 0; i < 9; i++)
		start(p, &t[i % 3], 100 + i, 10000, &r[i], NULL);
	many_t m = {r, 9};
	conn_watch_t w = {p, 0, &m};
	assert_true(run_until(watch_conns, &w, WAIT_MS));
	for (unsigned i = 0; i < 9; i++)
		assert_int_equal(r[i].status, HDL_EOK);
	assert_true(w.max <= 2);
	assert_true(w.max >= 1);
	ups_pool_free(p);
	for (unsigned i = 0; i < 3; i++)
		tsrv_free(s[i]);
}

static void test_limits_reply_servers(void **state)
{
	tsrv_t *s = tsrv_new(server_ctx(certs, "server", NULL), false, false);
	s->pad = 3000;
	ups_tls_t *tls = client_tls(certs, true, NULL, NULL);
	ups_limits_t l = test_limits();
	l.max_reply = 2048;
	ups_pool_t *p = pool_new(&l, NULL);
	ups_target_t t = target(s->port, UPS_TLS, tls);
	res_t r;
	assert_int_equal(query1(p, &t, 1, &r), HDL_ELIMIT);
	s->pad = 0;
	assert_int_equal(query1(p, &t, 2, &r), HDL_EOK);
	ups_pool_free(p);
	/* two servers remembered: a third replaces the least recently used idle one ... */
	l = test_limits();
	l.max_servers = 2;
	p = pool_new(&l, NULL);
	tsrv_t *plain = tsrv_new(NULL, false, false);
	plain->delay_ms = 300;
	ups_target_t c[3];
	for (unsigned i = 0; i < 3; i++) {
		c[i] = target(plain->port, UPS_TCP, NULL);
		c[i].pipeline = (uint16_t)(i + 1); /* three distinct targets, one server */
	}
	ups_stats_t st;
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(query1(p, &c[i], i, &r), HDL_EOK);
		ups_pool_stats(p, &st);
		assert_true(st.servers <= 2);
	}
	/* ... but not one with queries running: then the start is refused */
	res_t b[2];
	start(p, &c[0], 10, 5000, &b[0], NULL);
	start(p, &c[1], 11, 5000, &b[1], NULL);
	uint8_t req[256];
	size_t len = mkreq("88.1/y", 1, req, sizeof(req));
	assert_int_equal(ups_query_start(p, &c[2], req, len, ups_now_ms() + 1000, on_res, &r, NULL),
	                 HDL_ELIMIT);
	many_t m = {b, 2};
	assert_true(run_until(all_done, &m, WAIT_MS));
	ups_pool_free(p);
	ups_tls_unref(tls);
	tsrv_free(s);
	tsrv_free(plain);
}

/* Freeing the pool completes what runs with HDL_EIO; a start from that callback is refused. */
static ups_pool_t *free_pool;
static int restart_status;

static void on_res_restart(void *arg, int status, const uint8_t *reply, size_t len)
{
	on_res(arg, status, reply, len);
	uint8_t req[256];
	size_t rl = mkreq("88.1/z", 1, req, sizeof(req));
	ups_target_t t = target(1, UPS_TCP, NULL);
	restart_status =
	    ups_query_start(free_pool, &t, req, rl, ups_now_ms() + 100, on_res, NULL, NULL);
}

static void test_pool_free_running(void **state)
{
	tsrv_t *s = tsrv_new(NULL, false, false);
	s->delay_ms = 5000;
	ups_limits_t l = test_limits();
	free_pool = pool_new(&l, NULL);
	ups_target_t t = target(s->port, UPS_TCP, NULL);
	uint8_t req[256];
	size_t len = mkreq("88.1/a", 1, req, sizeof(req));
	res_t r[2];
	memset(r, 0, sizeof(r));
	assert_int_equal(ups_query_start(free_pool, &t, req, len, ups_now_ms() + 9000,
	                                 on_res_restart, &r[0], NULL),
	                 HDL_EOK);
	ups_target_t c[2] = {t, target(dead_port(), UPS_TCP, NULL)};
	assert_int_equal(ups_query_any(free_pool, c, 2, req, len, ups_now_ms() + 9000, 8000, on_res,
	                               &r[1], NULL),
	                 HDL_EOK);
	assert_true(run_until(srv_requests_ge, &s, WAIT_MS));
	ups_pool_free(free_pool);
	assert_int_equal(r[0].calls, 1);
	assert_int_equal(r[0].status, HDL_EIO);
	assert_int_equal(r[1].calls, 1);
	assert_int_equal(r[1].status, HDL_EIO);
	assert_int_equal(restart_status, HDL_EAGAIN);
	tsrv_free(s);
}

/* Bad arguments are refused before anything starts. */
static void test_bad_requests(void **state)
{
	ups_limits_t l = test_limits();
	ups_pool_t *p = pool_new(&l, NULL);
	ups_target_t t = target(2642, UPS_TLS, NULL);
	uint8_t req[256];
	size_t len = mkreq("88.1/a", 1, req, sizeof(req));
	res_t r;
	/* TLS without a context */
	assert_int_equal(ups_query_start(p, &t, req, len, ups_now_ms() + 100, on_res, &r, NULL),
	                 HDL_EINVAL);
	t.transport = UPS_TCP;
	/* cut short, and MessageLength not matching */
	assert_int_equal(ups_query_start(p, &t, req, 30, ups_now_ms() + 100, on_res, &r, NULL),
	                 HDL_EINVAL);
	req[19]++;
	assert_int_equal(ups_query_start(p, &t, req, len, ups_now_ms() + 100, on_res, &r, NULL),
	                 HDL_EINVAL);
	assert_int_equal(
	    ups_query_any(p, &t, 0, req, len, ups_now_ms() + 100, 10, on_res, &r, NULL),
	    HDL_EINVAL);
	ups_limits_t bad = l;
	bad.max_conns = 0;
	ups_pool_t *p2 = NULL;
	assert_int_equal(ups_pool_new(base, &bad, NULL, &p2), HDL_EINVAL);
	/* a name without a resolver */
	req[19]--;
	assert_int_equal(ups_target_set(&t, "upstream.example:2642", UPS_TCP, NULL), HDL_EOK);
	assert_int_equal(query1(p, &t, 1, &r), HDL_EDNS);
	ups_pool_free(p);
}

/* ---- DNS ---------------------------------------------------------------------------------- */

typedef struct tdns {
	int fd;
	struct event *ev;
	uint16_t port;
	unsigned a_queries, aaaa_queries;
	uint8_t addr[4]; /* answer for ups.test */
	uint32_t ttl;
} tdns_t;

static void tdns_read(evutil_socket_t fd, short what, void *arg)
{
	tdns_t *d = arg;
	uint8_t q[512], out[600];
	struct sockaddr_storage from;
	socklen_t fl = sizeof(from);
	ssize_t n = recvfrom(fd, q, sizeof(q), 0, (struct sockaddr *)&from, &fl);
	if (n < 17)
		return;
	/* the question: labels, type, class */
	size_t pos = 12;
	char name[256];
	size_t nl = 0;
	while (pos < (size_t)n && q[pos] && nl < 200) {
		unsigned ll = q[pos++];
		if (nl)
			name[nl++] = '.';
		memcpy(name + nl, q + pos, ll);
		nl += ll;
		pos += ll;
	}
	name[nl] = '\0';
	pos++;
	uint16_t qtype = (uint16_t)(q[pos] << 8 | q[pos + 1]);
	pos += 4;
	bool known = strcasecmp(name, "ups.test") == 0;
	memcpy(out, q, pos);
	out[2] = 0x81;                /* QR, RD */
	out[3] = known ? 0x80 : 0x83; /* RA; NXDOMAIN for other names */
	out[6] = out[7] = out[8] = out[9] = out[10] = out[11] = 0;
	size_t o = pos;
	if (known && qtype == 1) {
		d->a_queries++;
		out[7] = 1;
		static const uint8_t rr[] = {0xc0, 0x0c, 0, 1, 0, 1};
		memcpy(out + o, rr, sizeof(rr));
		o += sizeof(rr);
		out[o++] = (uint8_t)(d->ttl >> 24);
		out[o++] = (uint8_t)(d->ttl >> 16);
		out[o++] = (uint8_t)(d->ttl >> 8);
		out[o++] = (uint8_t)d->ttl;
		out[o++] = 0;
		out[o++] = 4;
		memcpy(out + o, d->addr, 4);
		o += 4;
	} else if (known && qtype == 28) {
		d->aaaa_queries++;
	}
	sendto(fd, out, o, 0, (struct sockaddr *)&from, fl);
}

static tdns_t *tdns_new(void)
{
	tdns_t *d = calloc(1, sizeof(*d));
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	d->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	assert_int_equal(bind(d->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	getsockname(d->fd, (struct sockaddr *)&sa, &sl);
	d->port = ntohs(sa.sin_port);
	d->ev = event_new(base, d->fd, EV_READ | EV_PERSIST, tdns_read, d);
	event_add(d->ev, NULL);
	d->ttl = 2;
	memcpy(d->addr, (uint8_t[]){127, 0, 0, 1}, 4);
	return d;
}

static void tdns_free(tdns_t *d)
{
	event_free(d->ev);
	close(d->fd);
	free(d);
}

static dns_t *dns_for(tdns_t *td, unsigned cache)
{
	char srv[64], err[256];
	const char *servers[1] = {srv};
	snprintf(srv, sizeof(srv), "127.0.0.1:%u", td->port);
	dns_conf_t dc = {.servers = servers,
	                 .n_servers = 1,
	                 .cache_size = cache,
	                 .max_ttl_s = 3600,
	                 .timeout_ms = 1000};
	dns_t *d = NULL;
	if (dns_new(base, &dc, &d, err, sizeof(err)) != HDL_EOK)
		fail_msg("dns_new: %s", err);
	return d;
}

typedef struct dres {
	bool done;
	int status;
	dns_addrs_t a;
} dres_t;

static void on_dns_res(void *arg, int status, const dns_addrs_t *a)
{
	dres_t *r = arg;
	r->done = true;
	r->status = status;
	r->a = *a;
}

static void test_dns_cache_ttl(void **state)
{
	tdns_t *td = tdns_new();
	dns_t *d = dns_for(td, 2);
	dres_t r = {0};
	dns_addrs_t now;
	dns_wait_t *w = NULL;
	assert_int_equal(dns_lookup(d, "ups.test", on_dns_res, &r, &now, &w), 0);
	assert_true(run_until(flag_set, &r.done, WAIT_MS));
	assert_int_equal(r.status, HDL_EOK);
	assert_int_equal(r.a.n, 1);
	assert_memory_equal(r.a.addr[0].a, td->addr, 4);
	assert_int_equal(r.a.ttl_s, 2);
	/* within the TTL: from the cache */
	assert_int_equal(dns_lookup(d, "UPS.test", on_dns_res, &r, &now, &w), 1);
	assert_int_equal(td->a_queries, 1);
	/* after it: asked again */
	run_for(2100);
	memset(&r, 0, sizeof(r));
	assert_int_equal(dns_lookup(d, "ups.test", on_dns_res, &r, &now, &w), 0);
	assert_true(run_until(flag_set, &r.done, WAIT_MS));
	assert_int_equal(td->a_queries, 2);
	/* no such name: a failure, remembered */
	memset(&r, 0, sizeof(r));
	assert_int_equal(dns_lookup(d, "nx.test", on_dns_res, &r, &now, &w), 0);
	assert_true(run_until(flag_set, &r.done, WAIT_MS));
	assert_int_equal(r.status, HDL_EDNS);
	assert_int_equal(dns_lookup(d, "nx.test", on_dns_res, &r, &now, &w), HDL_EDNS);
	/* a cancelled waiter is not called; two names fill the cache of 2, a third evicts */
	dres_t r2 = {0};
	assert_int_equal(dns_lookup(d, "other.test", on_dns_res, &r2, &now, &w), 0);
	dns_cancel(w);
	run_for(300);
	assert_false(r2.done);
	dns_stats_t st;
	dns_get_stats(d, &st);
	assert_true(st.cached <= 2);
	assert_int_equal(dns_lookup(d, "bad name!", on_dns_res, &r, &now, &w), HDL_EINVAL);
	/* a full cache of names being resolved refuses more */
	dns_free(d);
	d = dns_for(td, 1);
	assert_int_equal(dns_lookup(d, "a.test", on_dns_res, &r, &now, &w), 0);
	assert_int_equal(dns_lookup(d, "b.test", on_dns_res, &r2, &now, &w), HDL_ELIMIT);
	dns_free(d); /* drops the waiter without calling it */
	tdns_free(td);
}

static bool tdns_asked_twice(void *arg)
{
	return ((tdns_t *)arg)->a_queries >= 2;
}

/* A target by name: resolved through c-ares; after the TTL the new address is used. */
static void test_dns_upstream(void **state)
{
	tdns_t *td = tdns_new();
	dns_t *d = dns_for(td, 16);
	tsrv_t *s = tsrv_new(server_ctx(certs, "server", NULL), false, true);
	ups_tls_t *tls = client_tls(certs, true, NULL, NULL);
	ups_limits_t l = test_limits();
	ups_pool_t *p = pool_new(&l, d);
	ups_target_t t;
	char hp[64];
	snprintf(hp, sizeof(hp), "ups.test:%u", s->port);
	assert_int_equal(ups_target_set(&t, hp, UPS_TLS, tls), HDL_EOK);
	res_t r;
	assert_int_equal(query1(p, &t, 1, &r), HDL_EOK);
	assert_int_equal(s->accepts_on[0], 1);
	assert_int_equal(td->a_queries, 1);
	assert_int_equal(query1(p, &t, 2, &r), HDL_EOK);
	assert_int_equal(td->a_queries, 1);
	/* the name moves to 127.0.0.2; after the TTL a new connection goes there */
	memcpy(td->addr, (uint8_t[]){127, 0, 0, 2}, 4);
	run_for(2100);
	/* answered on the open connection while the name is resolved again */
	assert_int_equal(query1(p, &t, 3, &r), HDL_EOK);
	assert_true(run_until(tdns_asked_twice, td, WAIT_MS));
	run_for(100); /* c-ares reads the answer */
	assert_int_equal(query1(p, &t, 4, &r), HDL_EOK);
	assert_int_equal(td->a_queries, 2);
	assert_int_equal(s->accepts_on[1], 1);
	/* a name that does not resolve */
	snprintf(hp, sizeof(hp), "nx.test:%u", s->port);
	assert_int_equal(ups_target_set(&t, hp, UPS_TLS, tls), HDL_EOK);
	assert_int_equal(query1(p, &t, 5, &r), HDL_EDNS);
	ups_pool_free(p);
	ups_tls_unref(tls);
	tsrv_free(s);
	dns_free(d);
	tdns_free(td);
}

/* ---- HS_SITE, targets, HTTP heads --------------------------------------------------------- */

static void test_site_targets(void **state)
{
	hdl_interface_t if0[] = {{HDL_IF_QUERY | HDL_IF_ADMIN, HDL_IF_TCP, 2641},
	                         {HDL_IF_QUERY, HDL_IF_UDP, 2641},
	                         {HDL_IF_ADMIN, HDL_IF_HTTP, 8000}};
	hdl_interface_t if1[] = {{HDL_IF_QUERY, HDL_IF_HTTP, 8000},
	                         {HDL_IF_QUERY, HDL_IF_UDP, 2641},
	                         {HDL_IF_QUERY, HDL_IF_HTTPS, 8443},
	                         {HDL_IF_QUERY | HDL_IF_ADMIN, HDL_IF_TCP, 2641}};
	hdl_server_t sv[2];
	memset(sv, 0, sizeof(sv));
	sv[0].addr[12] = 192;
	sv[0].addr[13] = 0;
	sv[0].addr[14] = 2;
	sv[0].addr[15] = 1;
	sv[0].n_ifaces = 3;
	sv[0].ifaces = if0;
	inet_pton(AF_INET6, "2001:db8::7", sv[1].addr);
	sv[1].n_ifaces = 4;
	sv[1].ifaces = if1;
	hdl_site_t site = {.hash_option = HDL_HASH_BY_HANDLE, .n_servers = 2, .servers = sv};
	ups_target_t out[8];
	ups_tls_t *tls = client_tls(certs, true, NULL, NULL);
	/* the test_values.c hash vectors: 20.500.12345/abc by handle, n = 2 -> server 1 */
	hdl_slice_t h = hdl_slice_str("20.500.12345/abc");
	unsigned all = (1u << UPS_TRANSPORT_COUNT) - 1;
	unsigned n = ups_site_targets(&site, h, all, tls, out, 8);
	assert_int_equal(n, 4);
	assert_string_equal(out[0].host, "2001:db8::7");
	assert_int_equal(out[0].transport, UPS_HTTPS);
	assert_int_equal(out[0].port, 8443);
	assert_ptr_equal(out[0].tls, tls);
	assert_int_equal(out[1].transport, UPS_TCP);
	assert_int_equal(out[2].transport, UPS_UDP);
	assert_int_equal(out[3].transport, UPS_HTTP);
	/* without TLS no HTTPS; the mask filters */
	n = ups_site_targets(&site, h, (1u << UPS_UDP) | (1u << UPS_HTTPS), NULL, out, 8);
	assert_int_equal(n, 1);
	assert_int_equal(out[0].transport, UPS_UDP);
	/* by prefix 20.500.12345 -> server 1 as well; 10.1000/XYZ by prefix, n = 2 -> 1 */
	site.hash_option = HDL_HASH_BY_LOCAL; /* ABC, n = 2 -> server 0 */
	n = ups_site_targets(&site, h, all, tls, out, 8);
	assert_int_equal(n, 2); /* its admin-only HTTP interface is not a query target */
	assert_string_equal(out[0].host, "192.0.2.1");
	assert_int_equal(out[0].transport, UPS_TCP);
	assert_int_equal(out[1].transport, UPS_UDP);
	/* max honoured; an all-zero address gives nothing */
	assert_int_equal(ups_site_targets(&site, h, all, tls, out, 1), 1);
	memset(sv[0].addr, 0, 16);
	assert_int_equal(ups_site_targets(&site, h, all, tls, out, 8), 0);
	ups_tls_unref(tls);
}

static void test_target_set(void **state)
{
	ups_target_t t;
	assert_int_equal(ups_target_set(&t, "192.0.2.1:2642", UPS_TLS, NULL), HDL_EOK);
	assert_string_equal(t.host, "192.0.2.1");
	assert_int_equal(t.port, 2642);
	assert_int_equal(ups_target_set(&t, "[2001:db8::1]:443", UPS_HTTPS, NULL), HDL_EOK);
	assert_string_equal(t.host, "2001:db8::1");
	assert_int_equal(ups_target_set(&t, "top.example.cn:2642", UPS_TLS, NULL), HDL_EOK);
	const char *bad[] = {"192.0.2.1",      "192.0.2.1:",
	                     "192.0.2.1:0",    "192.0.2.1:65536",
	                     "2001:db8::1:80", "[2001:db8::1]80",
	                     "[nothex]:80",    ":80",
	                     "h:8x",           "h:-1"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (ups_target_set(&t, bad[i], UPS_TLS, NULL) != HDL_EINVAL)
			fail_msg("accepted '%s'", bad[i]);
	}
	ups_transport_t tr;
	assert_int_equal(ups_transport_parse("HTTPS", &tr), HDL_EOK);
	assert_int_equal(tr, UPS_HTTPS);
	assert_int_equal(ups_transport_parse("quic", &tr), HDL_EINVAL);
	assert_string_equal(ups_transport_name(UPS_UDP), "udp");
}

static void test_http_head(void **state)
{
	ups_http_head_t h;
	const char *ok = "HTTP/1.1 200 OK\r\nContent-Type: application/x-hdl-message\r\n"
	                 "Content-Length: 64\r\nConnection: keep-alive\r\n\r\n";
	assert_int_equal(ups_http_head_parse(ok, strlen(ok), &h), HDL_EOK);
	assert_int_equal(h.status, 200);
	assert_true(h.has_length && h.content_length == 64);
	assert_false(h.close || h.chunked);
	assert_true(h.content_type_ok);
	const char *c10 = "HTTP/1.0 200\nContent-Length: 5\n\n";
	assert_int_equal(ups_http_head_parse(c10, strlen(c10), &h), HDL_EOK);
	assert_true(h.close);
	const char *cl = "HTTP/1.1 200 OK\r\nConnection: Upgrade, close\r\n"
	                 "Transfer-Encoding: chunked\r\nContent-Type: text/html\r\n\r\n";
	assert_int_equal(ups_http_head_parse(cl, strlen(cl), &h), HDL_EOK);
	assert_true(h.close && h.chunked && !h.has_length && !h.content_type_ok);
	const char *bad[] = {
	    "HTTP/2 200 OK\r\n\r\n",
	    "HTTP/1.1 20 OK\r\n\r\n",
	    "HTTP/1.1 200OK\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nContent-Length: 1234567890123456\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nBad Name: a\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nX: a\x01\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nX: a\r\n",
	    "HTTP/1.1 200 OK\r\n\r\nextra",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (ups_http_head_parse(bad[i], strlen(bad[i]), &h) != HDL_EPROTO)
			fail_msg("accepted head %zu", i);
	}
}

/* ---- configuration ------------------------------------------------------------------------ */

static void test_conf_lines(void **state)
{
	char err[512], line[1200], pin[128];
	ups_conf_upstream_t u;
	snprintf(line, sizeof(line),
	         "top 127.0.0.1:2642 transport=tls sni=ups.test ca=%s/ca.pem cert=%s/client.pem "
	         "key=%s/client.key pin=%s pipeline=8",
	         certs, certs, certs, read_pin(certs, pin, sizeof(pin)));
	assert_int_equal(ups_conf_parse_upstream(line, &u, err, sizeof(err)), HDL_EOK);
	assert_string_equal(u.name, "top");
	assert_string_equal(u.target.host, "127.0.0.1");
	assert_string_equal(u.target.name, "ups.test");
	assert_int_equal(u.target.port, 2642);
	assert_int_equal(u.target.transport, UPS_TLS);
	assert_int_equal(u.target.pipeline, 8);
	assert_true(u.verify && u.has_pin);
	assert_int_equal(ups_conf_parse_upstream("peer [::1]:8000 transport=https verify=no", &u,
	                                         err, sizeof(err)),
	                 HDL_EOK);
	assert_false(u.verify);
	assert_int_equal(
	    ups_conf_parse_upstream("old h.example:2641 transport=udp", &u, err, sizeof(err)),
	    HDL_EOK);
	/* the default transport is TLS */
	assert_int_equal(ups_conf_parse_upstream("d 192.0.2.1:2642", &u, err, sizeof(err)),
	                 HDL_EOK);
	assert_int_equal(u.target.transport, UPS_TLS);
	const char *bad[] = {
	    "top",
	    "top 127.0.0.1",
	    "t*p 127.0.0.1:1",
	    "top bad_host!:1",
	    "top 127.0.0.1:1 transport=quic",
	    "top 127.0.0.1:1 transport=tcp ca=/etc/hostname",
	    "top 127.0.0.1:1 transport=udp verify=no",
	    "top 127.0.0.1:1 transport=https pipeline=4",
	    "top 127.0.0.1:1 pipeline=0",
	    "top 127.0.0.1:1 pipeline=257",
	    "top 127.0.0.1:1 pin=sha256:abc",
	    "top 127.0.0.1:1 pin=md5:h74mpUZJwULOlNgK22D04Ks3GPNn3+FTbgoNhE2qeak=",
	    "top 127.0.0.1:1 ca=/nonexistent/ca.pem",
	    "top 127.0.0.1:1 cert=/etc/hostname",
	    "top 127.0.0.1:1 verify=maybe",
	    "top 127.0.0.1:1 verify=no verify=no",
	    "top 127.0.0.1:1 sni=",
	    "top 127.0.0.1:1 colour=blue",
	    "top 127.0.0.1:1 a b c d e f g h i j k l m n o p",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (ups_conf_parse_upstream(bad[i], &u, err, sizeof(err)) != HDL_ECONF)
			fail_msg("accepted '%s'", bad[i]);
	}
	ups_conf_forward_t f;
	assert_int_equal(ups_conf_parse_forward("88.100 top peer", &f, err, sizeof(err)), HDL_EOK);
	assert_int_equal(f.n, 2);
	assert_string_equal(f.names[1], "peer");
	assert_int_equal(ups_conf_parse_forward("* top", &f, err, sizeof(err)), HDL_EOK);
	const char *fbad[] = {"88.100", "88/1 top", "8* top", "88 t@p", "88 a b c d e f g h i"};
	for (size_t i = 0; i < sizeof(fbad) / sizeof(fbad[0]); i++) {
		if (ups_conf_parse_forward(fbad[i], &f, err, sizeof(err)) != HDL_ECONF)
			fail_msg("accepted forward '%s'", fbad[i]);
	}
}

static int load_conf(conf_t *c, const char *text, char *err, size_t errlen)
{
	assert_int_equal(conf_init(c), HDL_EOK);
	int r = conf_load_buf(c, "t.conf", text, strlen(text), err, errlen);
	if (r == HDL_EOK)
		r = conf_validate(c, err, errlen);
	return r;
}

static void test_conf_set_route(void **state)
{
	char text[2048], err[512];
	conf_t c;
	snprintf(text, sizeof(text),
	         "upstream = top 127.0.0.1:2642 ca=%s/ca.pem\n"
	         "upstream = peer 127.0.0.2:8000 transport=https ca=%s/ca.pem\n"
	         "upstream = old 127.0.0.3:2641 transport=udp\n"
	         "forward = 88 top\n"
	         "forward = 88.100 peer old\n"
	         "forward = * old\n"
	         "upstream_max_conns = 7\n"
	         "upstream_max_reply = 64k\n"
	         "dns_server = 127.0.0.1:5353\n"
	         "dns_cache_size = 9\n",
	         certs, certs);
	assert_int_equal(load_conf(&c, text, err, sizeof(err)), HDL_EOK);
	ups_limits_t l;
	ups_conf_limits(&c, &l);
	assert_int_equal(l.max_conns, 7);
	assert_int_equal(l.max_reply, 65536);
	assert_int_equal(l.max_conns_per_server, 4);
	dns_conf_t dc;
	ups_conf_dns(&c, &dc);
	assert_int_equal(dc.n_servers, 1);
	assert_string_equal(dc.servers[0], "127.0.0.1:5353");
	assert_int_equal(dc.cache_size, 9);
	ups_set_t *set = NULL;
	assert_int_equal(ups_set_build(&c, &set, err, sizeof(err)), HDL_EOK);
	ups_target_t out[8];
	assert_int_equal(ups_set_route(set, hdl_slice_str("88.100.1"), out, 8), 2);
	assert_string_equal(out[0].host, "127.0.0.2");
	assert_int_equal(out[0].transport, UPS_HTTPS);
	assert_non_null(out[0].tls);
	assert_int_equal(out[1].transport, UPS_UDP);
	assert_null(out[1].tls);
	assert_int_equal(ups_set_route(set, hdl_slice_str("88.1000"), out, 8), 1);
	assert_string_equal(out[0].host, "127.0.0.1");
	assert_int_equal(ups_set_route(set, hdl_slice_str("88"), out, 8), 1);
	assert_string_equal(out[0].host, "127.0.0.1");
	assert_int_equal(ups_set_route(set, hdl_slice_str("86.1"), out, 8), 1);
	assert_string_equal(out[0].host, "127.0.0.3");
	assert_int_equal(ups_set_route(set, hdl_slice_str("88.100.7"), out, 1), 1);
	assert_non_null(ups_set_find(set, "peer"));
	assert_null(ups_set_find(set, "nobody"));
	ups_set_free(set);
	conf_free(&c);

	/* cross-line errors */
	const char *bad[] = {
	    "upstream = a 127.0.0.1:1 transport=tcp\nupstream = a 127.0.0.1:2 transport=tcp\n",
	    "upstream = a 127.0.0.1:1 transport=tcp\nforward = 88 b\n",
	    "upstream = a 127.0.0.1:1 transport=tcp\nforward = 88 a\nforward = 88 a\n",
	    "upstream = a 127.0.0.1:1 transport=quic\n",
	    "dns_server = localhost:53\n",
	    "upstream_max_conns = 0\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = load_conf(&c, bad[i], err, sizeof(err));
		conf_free(&c);
		if (r != HDL_ECONF)
			fail_msg("accepted config %zu", i);
	}
	/* a key that does not match its certificate fails when the set is built */
	snprintf(text, sizeof(text),
	         "upstream = a 127.0.0.1:1 ca=%s/ca.pem cert=%s/client.pem key=%s/server.key\n",
	         certs, certs, certs);
	assert_int_equal(load_conf(&c, text, err, sizeof(err)), HDL_EOK);
	assert_int_equal(ups_set_build(&c, &set, err, sizeof(err)), HDL_ETLS);
	assert_non_null(strstr(err, "server.key"));
	conf_free(&c);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_target_set),
	    cmocka_unit_test(test_http_head),
	    cmocka_unit_test(test_site_targets),
	    cmocka_unit_test(test_conf_lines),
	    cmocka_unit_test(test_conf_set_route),
	    cmocka_unit_test(test_bad_requests),
	    cmocka_unit_test(test_tls_pipelining),
	    cmocka_unit_test(test_tls_reuse_resumption),
	    cmocka_unit_test(test_tls_wrong_ca),
	    cmocka_unit_test(test_tls_wrong_name),
	    cmocka_unit_test(test_tls_expired),
	    cmocka_unit_test(test_tls_pin),
	    cmocka_unit_test(test_tls_verify_off),
	    cmocka_unit_test(test_tls_client_cert),
	    cmocka_unit_test(test_deadline),
	    cmocka_unit_test(test_cancel_in_flight),
	    cmocka_unit_test(test_lost_connection),
	    cmocka_unit_test(test_failover_backoff),
	    cmocka_unit_test(test_failover_timeout),
	    cmocka_unit_test(test_srtt_choice),
	    cmocka_unit_test(test_https_tunnel),
	    cmocka_unit_test(test_udp_multipacket),
	    cmocka_unit_test(test_limits_queries_conns),
	    cmocka_unit_test(test_limits_total_conns),
	    cmocka_unit_test(test_limits_reply_servers),
	    cmocka_unit_test(test_pool_free_running),
	    cmocka_unit_test(test_dns_cache_ttl),
	    cmocka_unit_test(test_dns_upstream),
	};
	if (argc > 1)
		cmocka_set_test_filter(argv[1]); /* e.g. test_upstream 'test_dns*' */
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
