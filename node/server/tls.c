/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Server-side TLS: the node's contexts (build, swap on reload) and the non-blocking
 *        per-connection calls of conn.c (see tls.h).
 */
#include "node/server/tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hdl/error.h"
#include "node/common/log.h"
#include "node/conf/conf.h"

struct tls_server {
	pthread_mutex_t mu; /**< guards the two pointers while a worker takes a reference */
	SSL_CTX *ctx[2];    /**< by tls_kind_t; NULL = TLS off */
	unsigned generation;
};

/* the reason of the last failed call on this thread (tls_io_reason) */
static _Thread_local char last_reason[160];

static void note_reason(const char *fallback)
{
	unsigned long e = ERR_peek_last_error();
	if (e) {
		const char *r = ERR_reason_error_string(e);
		snprintf(last_reason, sizeof(last_reason), "%s", r ? r : "TLS error");
	} else {
		snprintf(last_reason, sizeof(last_reason), "%s", fallback);
	}
	ERR_clear_error();
}

const char *tls_io_reason(char *buf, size_t cap)
{
	snprintf(buf, cap, "%s", last_reason[0] ? last_reason : "unknown");
	return buf;
}

/* ---- contexts --------------------------------------------------------------------------- */

/* Select "http/1.1" when the client offers it (ALPN); nothing else is spoken here. */
static int alpn_http(SSL *s, const unsigned char **out, unsigned char *outlen,
                     const unsigned char *in, unsigned int inlen, void *arg)
{
	(void)s;
	(void)arg;
	for (unsigned i = 0; i < inlen;) {
		unsigned n = in[i];
		if (i + 1 + n > inlen)
			break;
		if (n == 8 && memcmp(in + i + 1, "http/1.1", 8) == 0) {
			*out = in + i + 1;
			*outlen = (unsigned char)n;
			return SSL_TLSEXT_ERR_OK;
		}
		i += 1 + n;
	}
	return SSL_TLSEXT_ERR_NOACK;
}

static void ctx_fail(char *err, size_t errlen, const char *what, const char *file)
{
	char r[160];
	unsigned long e = ERR_peek_last_error();
	const char *reason = e ? ERR_reason_error_string(e) : NULL;
	snprintf(r, sizeof(r), "%s", reason ? reason : "unknown error");
	ERR_clear_error();
	snprintf(err, errlen, "%s %s: %s", what, file, r);
}

static SSL_CTX *ctx_build(const conf_t *c, tls_kind_t kind, char *err, size_t errlen)
{
	ERR_clear_error();
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		snprintf(err, errlen, "TLS: out of memory");
		return NULL;
	}
	bool v13 = c->tls_min_version && strcmp(c->tls_min_version, "1.3") == 0;
	SSL_CTX_set_min_proto_version(ctx, v13 ? TLS1_3_VERSION : TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
	                             SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
	                          SSL_MODE_RELEASE_BUFFERS);
	if (c->tls_ciphers && c->tls_ciphers[0] &&
	    SSL_CTX_set_cipher_list(ctx, c->tls_ciphers) != 1) {
		ctx_fail(err, errlen, "tls_ciphers", c->tls_ciphers);
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, c->tls_cert) != 1) {
		ctx_fail(err, errlen, "tls_cert", c->tls_cert);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, c->tls_key, SSL_FILETYPE_PEM) != 1) {
		ctx_fail(err, errlen, "tls_key", c->tls_key);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		ctx_fail(err, errlen, "tls_key does not match tls_cert", c->tls_cert);
		goto fail;
	}
	/* resumption: a bounded server-side cache (TLS 1.2 ids, stateful fallbacks) and
	 * stateless tickets; a session resumes only in the context kind that made it */
	static const unsigned char sid_http[] = "idnode-https";
	static const unsigned char sid_stream[] = "idnode-tls-stream";
	if (kind == TLS_KIND_HTTP)
		SSL_CTX_set_session_id_context(ctx, sid_http, sizeof(sid_http) - 1);
	else
		SSL_CTX_set_session_id_context(ctx, sid_stream, sizeof(sid_stream) - 1);
	if (c->tls_session_cache) {
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
		SSL_CTX_sess_set_cache_size(ctx, (long)c->tls_session_cache);
	} else {
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	}
	SSL_CTX_set_timeout(ctx, (long)c->tls_session_lifetime_s);
	SSL_CTX_set_num_tickets(ctx, 1);
	if (kind == TLS_KIND_HTTP) {
		SSL_CTX_set_alpn_select_cb(ctx, alpn_http, NULL);
	} else if (c->tls_client_ca && c->tls_client_ca[0]) {
		/* node-to-node mutual TLS: a peer without a certificate from this CA is refused */
		if (SSL_CTX_load_verify_locations(ctx, c->tls_client_ca, NULL) != 1) {
			ctx_fail(err, errlen, "tls_client_ca", c->tls_client_ca);
			goto fail;
		}
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(c->tls_client_ca);
		if (names)
			SSL_CTX_set_client_CA_list(ctx, names);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

static bool tls_wanted(const conf_t *c)
{
	return c->tls_cert && c->tls_cert[0] && c->tls_key && c->tls_key[0];
}

/* Both contexts of \p c, or neither. */
static int build_pair(const conf_t *c, SSL_CTX *out[2], char *err, size_t errlen)
{
	out[0] = out[1] = NULL;
	if (!tls_wanted(c))
		return HDL_EOK;
	out[TLS_KIND_HTTP] = ctx_build(c, TLS_KIND_HTTP, err, errlen);
	if (!out[TLS_KIND_HTTP])
		return HDL_ETLS;
	out[TLS_KIND_STREAM] = ctx_build(c, TLS_KIND_STREAM, err, errlen);
	if (!out[TLS_KIND_STREAM]) {
		SSL_CTX_free(out[TLS_KIND_HTTP]);
		out[TLS_KIND_HTTP] = NULL;
		return HDL_ETLS;
	}
	return HDL_EOK;
}

int tls_server_new(const conf_t *c, tls_server_t **out, char *err, size_t errlen)
{
	*out = NULL;
	tls_server_t *t = calloc(1, sizeof(*t));
	if (!t || pthread_mutex_init(&t->mu, NULL) != 0) {
		free(t);
		snprintf(err, errlen, "TLS: out of memory");
		return HDL_ENOMEM;
	}
	int ret = build_pair(c, t->ctx, err, errlen);
	if (ret != HDL_EOK) {
		pthread_mutex_destroy(&t->mu);
		free(t);
		return ret;
	}
	t->generation = 1;
	*out = t;
	return HDL_EOK;
}

int tls_server_stage(const conf_t *c, void **staged, char *err, size_t errlen)
{
	SSL_CTX **fresh = calloc(2, sizeof(*fresh));
	*staged = NULL;
	if (!fresh) {
		snprintf(err, errlen, "TLS: out of memory");
		return HDL_ENOMEM;
	}
	int ret = build_pair(c, fresh, err, errlen);
	if (ret != HDL_EOK) {
		free(fresh);
		return ret;
	}
	*staged = fresh;
	return HDL_EOK;
}

void tls_server_staged_free(void *staged)
{
	SSL_CTX **fresh = staged;
	if (!fresh)
		return;
	SSL_CTX_free(fresh[0]);
	SSL_CTX_free(fresh[1]);
	free(fresh);
}

void tls_server_swap(tls_server_t *t, void *staged, const conf_t *c)
{
	SSL_CTX **fresh = staged;
	SSL_CTX *old[2];
	pthread_mutex_lock(&t->mu);
	old[0] = t->ctx[0];
	old[1] = t->ctx[1];
	t->ctx[0] = fresh[0];
	t->ctx[1] = fresh[1];
	t->generation++;
	pthread_mutex_unlock(&t->mu);
	/* connections opened with the old contexts hold their own references */
	SSL_CTX_free(old[0]);
	SSL_CTX_free(old[1]);
	if (fresh[0])
		log_notice("reload: TLS certificate %s loaded (new connections use it)",
		           c->tls_cert);
	else if (old[0])
		log_notice("reload: TLS turned off (no tls_cert)");
	free(fresh);
}

int tls_server_reload(tls_server_t *t, const conf_t *c)
{
	char err[400];
	void *staged = NULL;
	int ret = tls_server_stage(c, &staged, err, sizeof(err));
	if (ret != HDL_EOK) {
		log_err("reload: TLS: %s; keeping the certificate in use", err);
		return ret;
	}
	tls_server_swap(t, staged, c);
	return HDL_EOK;
}

void tls_server_free(tls_server_t *t)
{
	if (!t)
		return;
	SSL_CTX_free(t->ctx[0]);
	SSL_CTX_free(t->ctx[1]);
	pthread_mutex_destroy(&t->mu);
	free(t);
}

bool tls_server_on(tls_server_t *t)
{
	if (!t)
		return false;
	pthread_mutex_lock(&t->mu);
	bool on = t->ctx[0] != NULL;
	pthread_mutex_unlock(&t->mu);
	return on;
}

unsigned tls_server_generation(tls_server_t *t)
{
	pthread_mutex_lock(&t->mu);
	unsigned g = t->generation;
	pthread_mutex_unlock(&t->mu);
	return g;
}

SSL *tls_accept(tls_server_t *t, tls_kind_t kind, int fd)
{
	if (!t)
		return NULL;
	ERR_clear_error();
	pthread_mutex_lock(&t->mu);
	/* SSL_new takes its own reference on the context: a reload may free ours at once */
	SSL *s = t->ctx[kind] ? SSL_new(t->ctx[kind]) : NULL;
	pthread_mutex_unlock(&t->mu);
	if (!s)
		return NULL;
	if (SSL_set_fd(s, fd) != 1) {
		SSL_free(s);
		ERR_clear_error();
		return NULL;
	}
	SSL_set_accept_state(s);
	return s;
}

/* ---- connections ------------------------------------------------------------------------- */

/* The outcome of an SSL call that returned \p r <= 0. */
static tls_io_t io_result(SSL *s, int r, const char *what)
{
	int e = SSL_get_error(s, r);
	switch (e) {
	case SSL_ERROR_WANT_READ: return TLS_IO_WANT_READ;
	case SSL_ERROR_WANT_WRITE: return TLS_IO_WANT_WRITE;
	case SSL_ERROR_ZERO_RETURN: return TLS_IO_EOF;
	case SSL_ERROR_SYSCALL:
		if (ERR_peek_last_error() == 0) {
			if (errno == 0 || errno == EPIPE || errno == ECONNRESET)
				snprintf(last_reason, sizeof(last_reason), "peer closed %s", what);
			else
				snprintf(last_reason, sizeof(last_reason), "%s", strerror(errno));
			return TLS_IO_ERROR;
		}
		note_reason("system error");
		return TLS_IO_ERROR;
	default: note_reason("protocol error"); return TLS_IO_ERROR;
	}
}

tls_io_t tls_io_handshake(SSL *s)
{
	ERR_clear_error();
	errno = 0;
	int r = SSL_do_handshake(s);
	if (r == 1)
		return TLS_IO_OK;
	return io_result(s, r, "during the handshake");
}

tls_io_t tls_io_read(SSL *s, uint8_t *buf, size_t cap, size_t *n)
{
	*n = 0;
	ERR_clear_error();
	errno = 0;
	size_t got = 0;
	int r = SSL_read_ex(s, buf, cap, &got);
	if (r == 1) {
		*n = got;
		return TLS_IO_OK;
	}
	return io_result(s, r, "the connection");
}

tls_io_t tls_io_write(SSL *s, const uint8_t *p, size_t len, size_t *n)
{
	*n = 0;
	ERR_clear_error();
	errno = 0;
	size_t put = 0;
	int r = SSL_write_ex(s, p, len, &put);
	if (r == 1) {
		*n = put;
		return TLS_IO_OK;
	}
	tls_io_t res = io_result(s, r, "while we wrote");
	return res == TLS_IO_EOF ? TLS_IO_ERROR : res;
}

bool tls_io_pending(SSL *s)
{
	return SSL_has_pending(s) == 1;
}

bool tls_io_resumed(SSL *s)
{
	return SSL_session_reused(s) == 1;
}

void tls_io_shutdown(SSL *s)
{
	if (SSL_get_shutdown(s) & SSL_SENT_SHUTDOWN)
		return;
	ERR_clear_error();
	(void)SSL_shutdown(s);
	ERR_clear_error();
}

void tls_io_free(SSL *s)
{
	SSL_free(s);
	ERR_clear_error();
}
