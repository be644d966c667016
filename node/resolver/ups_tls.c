/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief TLS for upstream connections (OpenSSL 3): client contexts, the expected name or IP
 *        address of each server, the SPKI pin, client certificates and session resumption.
 *
 * Verification is OpenSSL's chain check against the CA file (or the system store) with the host
 * name (SSL_set1_host) or IP address (X509_VERIFY_PARAM_set1_ip_asc) required in the server
 * certificate; a failure aborts the handshake. The pin, when set, is compared after the handshake
 * (also on a resumed session, whose certificate OpenSSL keeps) before any request is written.
 * Sessions (TLS 1.2 ids or tickets, TLS 1.3 tickets) arrive through the context's new-session
 * callback and are kept on the server (one each), to be offered by the next connection.
 */
#include <arpa/inet.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hdl/error.h"
#include "node/common/log.h"
#include "node/resolver/ups_int.h"

struct ups_tls {
	atomic_uint refs;
	SSL_CTX *ctx;
	bool verify;
	bool has_pin;
	uint8_t pin[UPS_PIN_LEN];
};

static pthread_once_t idx_once = PTHREAD_ONCE_INIT;
static int conn_idx = -1;

static void idx_init(void)
{
	conn_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* Append the first queued OpenSSL error to \p err ("what: reason"). */
static void openssl_reason(char *err, size_t errlen, const char *what)
{
	char buf[256] = "unknown error";
	unsigned long e = ERR_peek_last_error();
	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	snprintf(err, errlen, "%s: %s", what, buf);
}

static int new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
	ups_conn_t *c = SSL_get_ex_data(ssl, conn_idx);
	if (!c || c->state == C_CLOSED)
		return 0;
	if (c->srv->sess)
		SSL_SESSION_free(c->srv->sess);
	c->srv->sess = sess; /* returning 1 keeps OpenSSL's reference for us */
	return 1;
}

int ups_tls_new(const ups_tls_conf_t *conf, ups_tls_t **out, char *err, size_t errlen)
{
	char what[300];
	const char *label = conf->label ? conf->label : "?";
	*out = NULL;
	pthread_once(&idx_once, idx_init);
	if (conn_idx < 0) {
		snprintf(err, errlen, "upstream %s: no SSL ex_data index", label);
		return HDL_ETLS;
	}
	bool have_cert = conf->cert_file && conf->cert_file[0];
	bool have_key = conf->key_file && conf->key_file[0];
	if (have_cert != have_key) {
		snprintf(err, errlen,
		         "upstream %s: a client certificate needs both cert= and key=", label);
		return HDL_EINVAL;
	}
	ups_tls_t *t = calloc(1, sizeof(*t));
	if (!t)
		return HDL_ENOMEM;
	atomic_init(&t->refs, 1);
	t->verify = conf->verify;
	t->has_pin = conf->has_pin;
	memcpy(t->pin, conf->pin, UPS_PIN_LEN);
	ERR_clear_error();
	if (!(t->ctx = SSL_CTX_new(TLS_client_method()))) {
		free(t);
		return HDL_ENOMEM;
	}
	SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
	SSL_CTX_set_mode(t->ctx, SSL_MODE_RELEASE_BUFFERS);
	/* an EOF without close_notify reads as a close: the Handle framing has explicit lengths,
	 * so a truncated answer is still caught (HDL_EIO), not taken for a whole one */
	SSL_CTX_set_options(t->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	if (conf->verify) {
		int ok = conf->ca_file && conf->ca_file[0]
		             ? SSL_CTX_load_verify_locations(t->ctx, conf->ca_file, NULL)
		             : SSL_CTX_set_default_verify_paths(t->ctx);
		if (ok != 1) {
			snprintf(what, sizeof(what), "upstream %s: cannot load CA file %s", label,
			         conf->ca_file && conf->ca_file[0] ? conf->ca_file : "(system)");
			goto tls_fail;
		}
		SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
	} else {
		SSL_CTX_set_verify(t->ctx, SSL_VERIFY_NONE, NULL);
		log_warn("upstream %s: TLS certificate verification is OFF (verify=no): anyone on "
		         "the path can answer for this upstream%s",
		         label, conf->has_pin ? " (the key pin is still checked)" : "");
	}
	if (have_cert) {
		if (SSL_CTX_use_certificate_chain_file(t->ctx, conf->cert_file) != 1) {
			snprintf(what, sizeof(what), "upstream %s: cannot load certificate %s",
			         label, conf->cert_file);
			goto tls_fail;
		}
		if (SSL_CTX_use_PrivateKey_file(t->ctx, conf->key_file, SSL_FILETYPE_PEM) != 1) {
			snprintf(what, sizeof(what), "upstream %s: cannot load key %s", label,
			         conf->key_file);
			goto tls_fail;
		}
		if (SSL_CTX_check_private_key(t->ctx) != 1) {
			snprintf(what, sizeof(what), "upstream %s: %s does not match %s", label,
			         conf->key_file, conf->cert_file);
			goto tls_fail;
		}
	}
	SSL_CTX_set_session_cache_mode(t->ctx,
	                               SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(t->ctx, new_session_cb);
	*out = t;
	return HDL_EOK;
tls_fail:
	openssl_reason(err, errlen, what);
	SSL_CTX_free(t->ctx);
	free(t);
	return HDL_ETLS;
}

ups_tls_t *ups_tls_ref(ups_tls_t *t)
{
	atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
	return t;
}

void ups_tls_unref(ups_tls_t *t)
{
	if (!t || atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
		return;
	SSL_CTX_free(t->ctx);
	free(t);
}

static bool is_ip(const char *s)
{
	uint8_t b[16];
	return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
}

SSL *ups_tls_ssl_new(ups_conn_t *c)
{
	ups_server_t *s = c->srv;
	ups_tls_t *t = s->t.tls;
	const char *name = s->t.name[0] ? s->t.name : s->t.host;
	SSL *ssl = SSL_new(t->ctx);
	if (!ssl)
		return NULL;
	SSL_set_ex_data(ssl, conn_idx, c);
	bool ip = is_ip(name);
	int ok = 1;
	if (!ip) /* RFC 6066 section 3: no IP literals in SNI */
		ok = SSL_set_tlsext_host_name(ssl, name);
	if (ok == 1 && t->verify) {
		X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
		X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, name) : SSL_set1_host(ssl, name);
	}
	if (ok == 1 && s->sess)
		ok = SSL_set_session(ssl, s->sess);
	if (ok != 1) {
		ERR_clear_error();
		SSL_free(ssl);
		return NULL;
	}
	return ssl;
}

int ups_tls_check_peer(ups_conn_t *c, char *why, size_t cap)
{
	ups_tls_t *t = c->srv->t.tls;
	if (t->verify) {
		long v = SSL_get_verify_result(c->ssl);
		if (v != X509_V_OK) {
			snprintf(why, cap, "certificate verify failed: %s",
			         X509_verify_cert_error_string(v));
			return HDL_ETLS;
		}
	}
	if (!t->has_pin)
		return HDL_EOK;
	X509 *cert = SSL_get0_peer_certificate(c->ssl);
	if (!cert) {
		snprintf(why, cap, "no server certificate to check the pin against");
		return HDL_ETLS;
	}
	unsigned char *der = NULL;
	int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
	uint8_t md[UPS_PIN_LEN];
	if (n <= 0 || !EVP_Digest(der, (size_t)n, md, NULL, EVP_sha256(), NULL)) {
		OPENSSL_free(der);
		ERR_clear_error();
		snprintf(why, cap, "cannot hash the server key");
		return HDL_ETLS;
	}
	OPENSSL_free(der);
	if (CRYPTO_memcmp(md, t->pin, UPS_PIN_LEN) != 0) {
		unsigned char b64[64];
		EVP_EncodeBlock(b64, md, UPS_PIN_LEN);
		snprintf(why, cap, "public key pin mismatch (server key is sha256:%s)", b64);
		return HDL_ETLS;
	}
	return HDL_EOK;
}

/* Append the text of OpenSSL error \p e. \return false when \p buf is full */
static bool append_error(char *buf, size_t cap, size_t *used, bool *any, unsigned long e)
{
	char one[256];
	ERR_error_string_n(e, one, sizeof(one));
	int n = snprintf(buf + *used, cap - *used, "%s%s", *any ? "; " : "", one);
	*any = true;
	if (n < 0 || (size_t)n >= cap - *used)
		return false;
	*used += (size_t)n;
	return true;
}

bool ups_tls_error_text(ups_conn_t *c, char *buf, size_t cap)
{
	size_t used = 0;
	bool any = false, room = true;
	unsigned long e;
	buf[0] = '\0';
	/* libevent moves the errors of its SSL calls to the bufferevent; others stay queued */
	while ((e = bufferevent_get_openssl_error(c->bev)) != 0) {
		if (ERR_GET_LIB(e) == 0)
			continue; /* libevent stores SSL_get_error() codes (1, 5) too */
		room = room && append_error(buf, cap, &used, &any, e);
	}
	while ((e = ERR_get_error()) != 0)
		room = room && append_error(buf, cap, &used, &any, e);
	long v = SSL_get_verify_result(c->ssl);
	if (v != X509_V_OK) {
		if (room)
			snprintf(buf + used, cap - used, "%s(certificate: %s)", any ? " " : "",
			         X509_verify_cert_error_string(v));
		any = true;
	}
	if (!any)
		snprintf(buf, cap, "unknown");
	return any;
}

void ups_tls_keep_session(ups_conn_t *c)
{
	/* a session of a connection closed without close_notify is dropped by OpenSSL unless the
	 * shutdown is marked done (ssl_clear_bad_session) */
	SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
}
