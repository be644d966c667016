/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Server-side TLS (node/server/tls.h): contexts from the configuration and their reload
 *        (a failed reload keeps the running context, connections keep theirs), the
 *        non-blocking calls over a socketpair against an OpenSSL client (handshake, partial
 *        reads with plaintext left inside the SSL, writes that wait, close_notify, client
 *        certificates on the stream context, resumption), and the TLS stream of a real
 *        idnoded (tls_listen) queried by the upstream client (node/resolver/upstream.h,
 *        transport tls), with and without mutual TLS. Certificates come from
 *        certs/make-dev-certs.sh run into a temporary directory.
 *
 * Every wait is bounded in steps and wall-clock time; the idnoded started here is stopped by
 * its PID in the teardown.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
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
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "hdl/error.h"
#include "hdl/msg.h"
#include "node/conf/conf.h"
#include "node/resolver/upstream.h"
#include "node/server/tls.h"

#ifndef HDL_SOURCE_DIR
#define HDL_SOURCE_DIR "."
#endif
#ifndef HDL_BUILD_DIR
#define HDL_BUILD_DIR "build"
#endif

#define WAIT_MS 15000u

static char dir[256];    /* temporary directory */
static char certs[300];  /* make-dev-certs.sh output */
static char others[300]; /* an unrelated CA and its certificates */

static int group_setup(void **state)
{
	(void)state;
	char cmd[1200];
	signal(SIGPIPE, SIG_IGN);
	snprintf(dir, sizeof(dir), "/tmp/test_tls.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(certs, sizeof(certs), "%s/certs", dir);
	snprintf(others, sizeof(others), "%s/other", dir);
	snprintf(cmd, sizeof(cmd),
	         "bash %s/certs/make-dev-certs.sh %s >/dev/null && "
	         "bash %s/certs/make-dev-certs.sh %s >/dev/null",
	         HDL_SOURCE_DIR, certs, HDL_SOURCE_DIR, others);
	return system(cmd) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* A configuration with the TLS keys of \p cdir (cert name \p cert, key name \p key). */
static void conf_tls(conf_t *c, const char *cdir, const char *cert, const char *key)
{
	char err[200], p[400];
	assert_int_equal(conf_init(c), HDL_EOK);
	snprintf(p, sizeof(p), "%s/%s.pem", cdir, cert);
	assert_int_equal(conf_set(c, "tls_cert", p, err, sizeof(err)), HDL_EOK);
	snprintf(p, sizeof(p), "%s/%s.key", cdir, key);
	assert_int_equal(conf_set(c, "tls_key", p, err, sizeof(err)), HDL_EOK);
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- a client over a socketpair ------------------------------------------------------------ */

typedef struct pair {
	int sfd, cfd;
	SSL *srv; /* tls_accept() */
	SSL *cli;
	SSL_CTX *cctx;
} pair_t;

static SSL_CTX *client_ctx(const char *ca, const char *cdir, const char *cert)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(ctx);
	assert_int_equal(SSL_CTX_load_verify_locations(ctx, ca, NULL), 1);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (cert) {
		char c[400], k[400];
		snprintf(c, sizeof(c), "%s/%s.pem", cdir, cert);
		snprintf(k, sizeof(k), "%s/%s.key", cdir, cert);
		assert_int_equal(SSL_CTX_use_certificate_chain_file(ctx, c), 1);
		assert_int_equal(SSL_CTX_use_PrivateKey_file(ctx, k, SSL_FILETYPE_PEM), 1);
	}
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT);
	return ctx;
}

static void pair_open(pair_t *p, tls_server_t *t, tls_kind_t kind, SSL_CTX *cctx, SSL_SESSION *sess)
{
	int sv[2];
	memset(p, 0, sizeof(*p));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	p->sfd = sv[0];
	p->cfd = sv[1];
	p->srv = tls_accept(t, kind, p->sfd);
	assert_non_null(p->srv);
	p->cctx = cctx;
	p->cli = SSL_new(cctx);
	assert_non_null(p->cli);
	SSL_set_fd(p->cli, p->cfd);
	SSL_set_connect_state(p->cli);
	SSL_set1_host(p->cli, "localhost");
	if (sess)
		SSL_set_session(p->cli, sess);
}

static void pair_close(pair_t *p)
{
	tls_io_free(p->srv);
	SSL_free(p->cli);
	close(p->sfd);
	close(p->cfd);
}

/* Step both sides until the handshake ends. \return the server's last result */
static tls_io_t pair_handshake(pair_t *p)
{
	tls_io_t r = TLS_IO_WANT_READ;
	for (int i = 0; i < 200; i++) {
		int cr = SSL_do_handshake(p->cli);
		r = tls_io_handshake(p->srv);
		if (r != TLS_IO_WANT_READ && r != TLS_IO_WANT_WRITE)
			break;
		if (cr != 1) {
			int e = SSL_get_error(p->cli, cr);
			if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
				break;
		}
	}
	/* TLS 1.3: the client reads the tickets with its first read */
	return r;
}

/* ---- contexts and reload --------------------------------------------------------------------- */

static void test_contexts(void **state)
{
	(void)state;
	conf_t c;
	char err[400];
	tls_server_t *t = NULL;

	/* no certificate: TLS off, nothing to accept */
	assert_int_equal(conf_init(&c), HDL_EOK);
	assert_int_equal(tls_server_new(&c, &t, err, sizeof(err)), HDL_EOK);
	assert_false(tls_server_on(t));
	assert_null(tls_accept(t, TLS_KIND_HTTP, 0));
	tls_server_free(t);
	conf_free(&c);

	/* a key that is not the certificate's, a file that is not there, a cipher list OpenSSL
	 * refuses: each refused with its reason */
	conf_tls(&c, certs, "server", "client");
	assert_int_equal(tls_server_new(&c, &t, err, sizeof(err)), HDL_ETLS);
	assert_non_null(strstr(err, "tls_key"));
	conf_free(&c);
	conf_tls(&c, certs, "missing", "server");
	assert_int_equal(tls_server_new(&c, &t, err, sizeof(err)), HDL_ETLS);
	assert_non_null(strstr(err, "tls_cert"));
	conf_free(&c);
	conf_tls(&c, certs, "server", "server");
	assert_int_equal(conf_set(&c, "tls_ciphers", "NOSUCHCIPHER", err, sizeof(err)), HDL_EOK);
	assert_int_equal(tls_server_new(&c, &t, err, sizeof(err)), HDL_ETLS);
	assert_non_null(strstr(err, "tls_ciphers"));
	conf_free(&c);

	/* a good one */
	conf_tls(&c, certs, "server", "server");
	assert_int_equal(tls_server_new(&c, &t, err, sizeof(err)), HDL_EOK);
	assert_true(tls_server_on(t));
	assert_int_equal(tls_server_generation(t), 1);
	conf_free(&c);

	/* a connection opened now keeps its context through the reloads below */
	char ca[400];
	snprintf(ca, sizeof(ca), "%s/ca.pem", certs);
	SSL_CTX *cctx = client_ctx(ca, NULL, NULL);
	pair_t early;
	pair_open(&early, t, TLS_KIND_HTTP, cctx, NULL);

	/* a reload that fails keeps the running context */
	conf_tls(&c, certs, "server", "expired-missing");
	assert_int_equal(tls_server_reload(t, &c), HDL_ETLS);
	assert_int_equal(tls_server_generation(t), 1);
	conf_free(&c);
	pair_t p;
	pair_open(&p, t, TLS_KIND_HTTP, cctx, NULL);
	assert_int_equal(pair_handshake(&p), TLS_IO_OK);
	pair_close(&p);

	/* a reload to the other CA's certificate: new connections present it; the client that
	 * trusts only the first CA refuses them, one trusting the other CA accepts them */
	conf_tls(&c, others, "server", "server");
	assert_int_equal(tls_server_reload(t, &c), HDL_EOK);
	assert_int_equal(tls_server_generation(t), 2);
	conf_free(&c);
	pair_open(&p, t, TLS_KIND_HTTP, cctx, NULL);
	assert_int_equal(pair_handshake(&p), TLS_IO_ERROR);
	pair_close(&p);
	char oca[400];
	snprintf(oca, sizeof(oca), "%s/ca.pem", others);
	SSL_CTX *octx = client_ctx(oca, NULL, NULL);
	pair_open(&p, t, TLS_KIND_HTTP, octx, NULL);
	assert_int_equal(pair_handshake(&p), TLS_IO_OK);
	pair_close(&p);
	/* the early connection still completes with the first certificate */
	assert_int_equal(pair_handshake(&early), TLS_IO_OK);
	pair_close(&early);

	/* a reload without a certificate turns TLS off */
	assert_int_equal(conf_init(&c), HDL_EOK);
	assert_int_equal(tls_server_reload(t, &c), HDL_EOK);
	assert_false(tls_server_on(t));
	assert_null(tls_accept(t, TLS_KIND_HTTP, 0));
	conf_free(&c);
	SSL_CTX_free(cctx);
	SSL_CTX_free(octx);
	tls_server_free(t);
}

/* ---- the non-blocking calls --------------------------------------------------------------------
 */

static void test_io(void **state)
{
	(void)state;
	conf_t c;
	char err[400], ca[400];
	tls_server_t *t = NULL;
	conf_tls(&c, certs, "server", "server");
	assert_int_equal(tls_server_new(&c, &t, err, sizeof(err)), HDL_EOK);
	conf_free(&c);
	snprintf(ca, sizeof(ca), "%s/ca.pem", certs);
	SSL_CTX *cctx = client_ctx(ca, NULL, NULL);
	pair_t p;
	pair_open(&p, t, TLS_KIND_HTTP, cctx, NULL);

	/* nothing sent yet: the server waits to read */
	assert_int_equal(tls_io_handshake(p.srv), TLS_IO_WANT_READ);
	assert_int_equal(pair_handshake(&p), TLS_IO_OK);
	assert_false(tls_io_resumed(p.srv));
	/* ALPN: http/1.1 chosen when offered is tested by curl in the integration test */

	/* a record of 1000 bytes read 10 at a time: the rest stays inside the SSL */
	uint8_t big[1000], buf[70000];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)i;
	assert_int_equal(SSL_write(p.cli, big, sizeof(big)), (int)sizeof(big));
	size_t n = 0, got = 0;
	assert_int_equal(tls_io_read(p.srv, buf, 10, &n), TLS_IO_OK);
	assert_int_equal(n, 10);
	assert_true(tls_io_pending(p.srv));
	got = n;
	while (got < sizeof(big)) {
		assert_int_equal(tls_io_read(p.srv, buf + got, sizeof(buf) - got, &n), TLS_IO_OK);
		got += n;
	}
	assert_memory_equal(buf, big, sizeof(big));
	assert_false(tls_io_pending(p.srv));
	assert_int_equal(tls_io_read(p.srv, buf, sizeof(buf), &n), TLS_IO_WANT_READ);

	/* writes: partial, then the socket is full (WANT_WRITE); the client drains it and the
	 * same bytes, moved, are written on (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER) */
	static uint8_t out[1 << 20];
	for (size_t i = 0; i < sizeof(out); i++)
		out[i] = (uint8_t)(i * 7);
	static uint8_t moved[1 << 20];
	size_t off = 0, rcvd = 0;
	bool waited = false;
	static uint8_t in[1 << 20];
	/* first without the client reading: the socket fills */
	for (int step = 0; step < 10000 && !waited; step++) {
		tls_io_t r = tls_io_write(p.srv, out + off, sizeof(out) - off, &n);
		if (r == TLS_IO_OK)
			off += n;
		else
			waited = r == TLS_IO_WANT_WRITE;
		assert_true(off < sizeof(out));
	}
	assert_true(waited);
	for (int step = 0; step < 100000 && rcvd < sizeof(out); step++) {
		if (off < sizeof(out)) {
			/* every other try from a copy at another address */
			const uint8_t *src = out;
			if (step % 2) {
				memcpy(moved + off, out + off, sizeof(out) - off);
				src = moved;
			}
			tls_io_t r = tls_io_write(p.srv, src + off, sizeof(out) - off, &n);
			if (r == TLS_IO_OK)
				off += n;
			else
				assert_int_equal(r, TLS_IO_WANT_WRITE);
		}
		int k = SSL_read(p.cli, in + rcvd, (int)(sizeof(in) - rcvd));
		if (k > 0)
			rcvd += (size_t)k;
	}
	assert_int_equal(rcvd, sizeof(out));
	assert_memory_equal(in, out, sizeof(out));

	/* the client's close_notify reads as EOF */
	SSL_shutdown(p.cli);
	assert_int_equal(tls_io_read(p.srv, buf, sizeof(buf), &n), TLS_IO_EOF);
	tls_io_shutdown(p.srv);
	SSL_SESSION *sess = SSL_get1_session(p.cli);
	assert_non_null(sess);
	pair_close(&p);

	/* the next connection resumes the session */
	pair_open(&p, t, TLS_KIND_HTTP, cctx, sess);
	assert_int_equal(pair_handshake(&p), TLS_IO_OK);
	assert_true(tls_io_resumed(p.srv));
	pair_close(&p);
	SSL_SESSION_free(sess);

	/* garbage instead of a ClientHello: a fatal error with a reason */
	pair_open(&p, t, TLS_KIND_HTTP, cctx, NULL);
	assert_int_equal(write(p.cfd, "GET / HTTP/1.1\r\n\r\n", 18), 18);
	assert_int_equal(tls_io_handshake(p.srv), TLS_IO_ERROR);
	char why[160];
	tls_io_reason(why, sizeof(why));
	assert_non_null(strstr(why, "http request"));
	pair_close(&p);
	SSL_CTX_free(cctx);
	tls_server_free(t);
}

/* tls_client_ca: the stream context asks for a client certificate and refuses a peer without
 * one; the HTTP context never asks. */
static void test_client_certs(void **state)
{
	(void)state;
	conf_t c;
	char err[400], ca[400];
	tls_server_t *t = NULL;
	conf_tls(&c, certs, "server", "server");
	snprintf(ca, sizeof(ca), "%s/ca.pem", certs);
	assert_int_equal(conf_set(&c, "tls_client_ca", ca, err, sizeof(err)), HDL_EOK);
	assert_int_equal(tls_server_new(&c, &t, err, sizeof(err)), HDL_EOK);
	conf_free(&c);
	SSL_CTX *anon = client_ctx(ca, NULL, NULL);
	SSL_CTX *with = client_ctx(ca, certs, "client");
	SSL_CTX *foreign = client_ctx(ca, others, "client");
	pair_t p;
	pair_open(&p, t, TLS_KIND_STREAM, with, NULL);
	assert_int_equal(pair_handshake(&p), TLS_IO_OK);
	pair_close(&p);
	pair_open(&p, t, TLS_KIND_STREAM, anon, NULL);
	assert_int_equal(pair_handshake(&p), TLS_IO_ERROR);
	pair_close(&p);
	pair_open(&p, t, TLS_KIND_STREAM, foreign, NULL);
	assert_int_equal(pair_handshake(&p), TLS_IO_ERROR);
	pair_close(&p);
	pair_open(&p, t, TLS_KIND_HTTP, anon, NULL);
	assert_int_equal(pair_handshake(&p), TLS_IO_OK);
	pair_close(&p);
	SSL_CTX_free(anon);
	SSL_CTX_free(with);
	SSL_CTX_free(foreign);
	tls_server_free(t);
}

/* ---- the TLS stream of a real idnoded, through the upstream client ------------------------- */

static uint16_t free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	getsockname(fd, (struct sockaddr *)&sa, &sl);
	close(fd);
	return ntohs(sa.sin_port);
}

typedef struct node {
	pid_t pid;
	uint16_t tls_port;
	char log[400];
} node_t;

/* Start idnoded with a TLS stream listener (and \p client_ca when given); false on a port clash. */
static bool node_start(node_t *n, const char *client_ca)
{
	char db[400], conf[400], line[1600], cmd[1200];
	snprintf(db, sizeof(db), "%s/db", dir);
	if (access(db, F_OK) != 0) {
		char data[400];
		snprintf(data, sizeof(data), "%s/data.jsonl", dir);
		FILE *f = fopen(data, "w");
		assert_non_null(f);
		for (int i = 0; i < 20; i++)
			fprintf(f,
			        "{\"handle\":\"88.100.1/"
			        "tls-%d\",\"values\":[{\"index\":1,\"type\":\"URL\","
			        "\"data\":{\"format\":\"string\",\"value\":\"https://example.org/"
			        "%d\"}}]}\n",
			        i, i);
		fclose(f);
		snprintf(cmd, sizeof(cmd), "%s/idnode import --db %s --home 88.100.1 %s >/dev/null",
		         HDL_BUILD_DIR, db, data);
		assert_int_equal(system(cmd), 0);
	}
	uint16_t port = free_port(), http = free_port();
	n->tls_port = free_port();
	snprintf(conf, sizeof(conf), "%s/node.conf", dir);
	FILE *f = fopen(conf, "w");
	assert_non_null(f);
	fprintf(f, "tls_cert = %s/server.pem\ntls_key = %s/server.key\n", certs, certs);
	if (client_ca)
		fprintf(f, "tls_client_ca = %s\n", client_ca);
	fclose(f);
	snprintf(n->log, sizeof(n->log), "%s/node-%u.log", dir, n->tls_port);
	char a_listen[40], a_http[40], a_tls[40];
	snprintf(a_listen, sizeof(a_listen), "127.0.0.1:%u", port);
	snprintf(a_http, sizeof(a_http), "127.0.0.1:%u", http);
	snprintf(a_tls, sizeof(a_tls), "127.0.0.1:%u", n->tls_port);
	char bin[400];
	snprintf(bin, sizeof(bin), "%s/idnoded", HDL_BUILD_DIR);
	n->pid = fork();
	assert_true(n->pid >= 0);
	if (n->pid == 0) {
		int fd = open(n->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(fd, 1);
		dup2(fd, 2);
		execl(bin, bin, "-c", conf, "--db", db, "--listen", a_listen, "--http", a_http,
		      "--tls-listen", a_tls, "--home", "88.100.1", "--workers", "2", (char *)NULL);
		_exit(127);
	}
	uint64_t end = now_ms() + WAIT_MS;
	while (now_ms() < end) {
		int st;
		if (waitpid(n->pid, &st, WNOHANG) == n->pid) {
			n->pid = -1;
			return false; /* exited: a port taken between free_port() and the bind */
		}
		FILE *lf = fopen(n->log, "r");
		bool ready = false;
		while (lf && fgets(line, sizeof(line), lf)) {
			if (strstr(line, "idnoded ready"))
				ready = true;
		}
		if (lf)
			fclose(lf);
		if (ready)
			return true;
		usleep(50000);
	}
	fail_msg("idnoded did not start (log %s)", n->log);
	return false;
}

static void node_stop(node_t *n)
{
	if (n->pid <= 0)
		return;
	kill(n->pid, SIGTERM);
	int st = 0;
	uint64_t end = now_ms() + WAIT_MS;
	while (waitpid(n->pid, &st, WNOHANG) != n->pid) {
		if (now_ms() >= end) {
			kill(n->pid, SIGKILL);
			waitpid(n->pid, &st, 0);
			break;
		}
		usleep(20000);
	}
	n->pid = -1;
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void node_up(node_t *n, const char *client_ca)
{
	for (int i = 0; i < 3; i++) {
		if (node_start(n, client_ca))
			return;
	}
	fail_msg("idnoded would not start (log %s)", n->log);
}

typedef struct res {
	bool done;
	int status;
	uint32_t rc, rid;
	char url[64];
} res_t;

static void on_res(void *arg, int status, const uint8_t *reply, size_t len)
{
	res_t *r = arg;
	r->done = true;
	r->status = status;
	if (status != HDL_EOK)
		return;
	uint8_t stack[8192];
	hdl_arena_t a;
	hdl_msg_t m;
	hdl_arena_init(&a, stack, sizeof(stack), 1u << 20);
	assert_int_equal(hdl_msg_decode(reply, len, &a, &m), HDL_EOK);
	r->rc = m.hdr.rcode;
	r->rid = m.env.request_id;
	if (m.kind == HDL_BODY_VALUES && m.u.values.n_values)
		snprintf(r->url, sizeof(r->url), "%.*s", (int)m.u.values.values[0].data.len,
		         (const char *)m.u.values.values[0].data.p);
	hdl_arena_free(&a);
}

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

/* Resolve \p n handles, all in flight at once, through \p tls; \return how many came back RC 1
 * with their own URL (the others' status in *fail). */
static unsigned query_all(uint16_t port, ups_tls_t *tls, unsigned n, int *fail, ups_stats_t *st)
{
	struct event_base *base = event_base_new();
	ups_limits_t l;
	ups_limits_default(&l);
	l.connect_timeout_ms = 5000;
	l.max_conns_per_server = 1;
	ups_pool_t *p = NULL;
	assert_int_equal(ups_pool_new(base, &l, NULL, &p), HDL_EOK);
	ups_target_t t;
	char hp[40];
	snprintf(hp, sizeof(hp), "127.0.0.1:%u", port);
	assert_int_equal(ups_target_set(&t, hp, UPS_TLS, tls), HDL_EOK);
	res_t r[16];
	assert_true(n <= 16);
	for (unsigned i = 0; i < n; i++) {
		uint8_t req[512];
		char h[40];
		snprintf(h, sizeof(h), "88.100.1/tls-%u", i);
		size_t len = mkreq(h, 500u + i, req, sizeof(req));
		memset(&r[i], 0, sizeof(r[i]));
		assert_int_equal(
		    ups_query_start(p, &t, req, len, ups_now_ms() + 10000, on_res, &r[i], NULL),
		    HDL_EOK);
	}
	uint64_t end = now_ms() + WAIT_MS;
	for (;;) {
		unsigned done = 0;
		for (unsigned i = 0; i < n; i++)
			done += r[i].done;
		if (done == n || now_ms() >= end)
			break;
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		usleep(1000);
	}
	unsigned ok = 0;
	*fail = HDL_EOK;
	for (unsigned i = 0; i < n; i++) {
		char want[64];
		snprintf(want, sizeof(want), "https://example.org/%u", i);
		if (r[i].done && r[i].status == HDL_EOK && r[i].rc == HDL_RC_SUCCESS &&
		    r[i].rid == 500u + i && strcmp(r[i].url, want) == 0)
			ok++;
		else if (r[i].status != HDL_EOK)
			*fail = r[i].status;
	}
	ups_pool_stats(p, st);
	ups_pool_free(p);
	event_base_free(base);
	return ok;
}

static ups_tls_t *ups_tls(const char *cadir, const char *cert)
{
	char ca[400], c[400], k[400], err[400];
	ups_tls_conf_t tc = {.label = "test", .verify = true};
	snprintf(ca, sizeof(ca), "%s/ca.pem", cadir);
	tc.ca_file = ca;
	if (cert) {
		snprintf(c, sizeof(c), "%s/%s.pem", certs, cert);
		snprintf(k, sizeof(k), "%s/%s.key", certs, cert);
		tc.cert_file = c;
		tc.key_file = k;
	}
	ups_tls_t *t = NULL;
	if (ups_tls_new(&tc, &t, err, sizeof(err)) != HDL_EOK)
		fail_msg("ups_tls_new: %s", err);
	return t;
}

static void test_stream_idnoded(void **state)
{
	(void)state;
	node_t n = {.pid = -1};
	node_up(&n, NULL);
	ups_tls_t *good = ups_tls(certs, NULL), *wrong = ups_tls(others, NULL);
	int fail;
	ups_stats_t st;
	/* eight queries pipelined on one TLS connection, each answered with its own record */
	assert_int_equal(query_all(n.tls_port, good, 8, &fail, &st), 8);
	assert_int_equal(st.tls_handshakes, 1);
	assert_int_equal(st.conns_opened, 1);
	/* a client that does not trust the node's CA is refused by its own verification */
	assert_int_equal(query_all(n.tls_port, wrong, 1, &fail, &st), 0);
	assert_int_equal(fail, HDL_ETLS);
	node_stop(&n);
	ups_tls_unref(wrong);

	/* mutual TLS: tls_client_ca set, a client without a certificate is refused */
	char ca[400];
	snprintf(ca, sizeof(ca), "%s/ca.pem", certs);
	node_up(&n, ca);
	ups_tls_t *with = ups_tls(certs, "client");
	assert_int_equal(query_all(n.tls_port, with, 4, &fail, &st), 4);
	assert_int_equal(query_all(n.tls_port, good, 1, &fail, &st), 0);
	assert_true(fail == HDL_ETLS || fail == HDL_EIO);
	node_stop(&n);
	ups_tls_unref(with);
	ups_tls_unref(good);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_contexts),
	    cmocka_unit_test(test_io),
	    cmocka_unit_test(test_client_certs),
	    cmocka_unit_test(test_stream_idnoded),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
