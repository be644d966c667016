/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Server-side TLS (OpenSSL 3) for the connection layer (internal to node/server): the
 *        node's TLS contexts built from the tls_* keys and swapped on reload, and the
 *        non-blocking per-connection calls conn.c makes instead of read(2) and write(2).
 *
 * Two contexts share the certificate: one for HTTPS on the http ports (port unification: a
 * connection whose first byte is 0x16, a TLS handshake record, is TLS; anything else is plain
 * HTTP, as Handle.Net's port 8000), one for the TLS stream (tls_listen: Handle TCP framing over
 * TLS, docs/delegation.md), which alone asks for client certificates when tls_client_ca is set.
 *
 * Defaults: TLS 1.2 minimum (tls_min_version), ECDHE AEAD suites for 1.2 (tls_ciphers), the
 * OpenSSL defaults for 1.3, no renegotiation, no compression, the server's cipher preference,
 * session resumption by a bounded server-side cache (tls_session_cache) and stateless tickets
 * (keys random per context), both for tls_session_lifetime_s. Buffers are released while a
 * connection is idle (SSL_MODE_RELEASE_BUFFERS).
 *
 * Reload: tls_server_reload() builds both new contexts first and swaps them in under a mutex
 * only when both built; connections keep the context they started with (each SSL holds a
 * reference). On failure the running contexts stay and the reason is logged.
 *
 * \note tls_server_* run on the main thread (start, SIGHUP); tls_accept() and the tls_io_*
 *       calls on the worker that owns the connection. Every tls_io_* call clears the thread's
 *       OpenSSL error queue first, so a failure never leaks into another connection's result.
 */
#ifndef HDL_NODE_SERVER_TLS_H
#define HDL_NODE_SERVER_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conf;
struct ssl_st;

/** The node's TLS contexts. */
typedef struct tls_server tls_server_t;

/** Which context a connection takes. */
typedef enum tls_kind {
	TLS_KIND_HTTP = 0, /**< HTTPS on the http ports */
	TLS_KIND_STREAM,   /**< the TLS stream (tls_listen), client certificates when configured */
} tls_kind_t;

/** Result of a non-blocking TLS call. */
typedef enum tls_io {
	TLS_IO_OK = 0,     /**< done (bytes moved, or the handshake finished) */
	TLS_IO_WANT_READ,  /**< wait until the socket is readable, then call again */
	TLS_IO_WANT_WRITE, /**< wait until the socket is writable, then call again */
	TLS_IO_EOF,        /**< the peer closed (close_notify, or EOF between records) */
	TLS_IO_ERROR,      /**< a fatal error: the connection must close (no close_notify) */
} tls_io_t;

/**
 * \brief The node's contexts from \p c. Without tls_cert, \p *out holds none (TLS is off and
 *        tls_accept() returns NULL until a reload gives a certificate).
 * \param err reason on failure ("tls_cert /x.pem: cannot load: ...")
 * \retval HDL_EOK, HDL_ETLS (a file that does not load, a key not matching the certificate, a
 *         cipher list OpenSSL refuses), HDL_ENOMEM
 */
int tls_server_new(const struct conf *c, tls_server_t **out, char *err, size_t errlen);

/**
 * \brief Build new contexts from \p c and swap them in; on failure keep the running ones.
 *        Logs the outcome (notice on success, error with the reason on failure).
 * \retval HDL_EOK, HDL_ETLS, HDL_ENOMEM
 */
int tls_server_reload(tls_server_t *t, const struct conf *c);

/**
 * \brief The reload's two phases (reload.h): build the contexts of \p c into \p *staged
 *        without touching the running ones.
 * \retval HDL_EOK, HDL_ETLS, HDL_ENOMEM (\p err says why)
 */
int tls_server_stage(const struct conf *c, void **staged, char *err, size_t errlen);
/** \brief Swap the contexts \p staged (from tls_server_stage()) in; consumes \p staged. */
void tls_server_swap(tls_server_t *t, void *staged, const struct conf *c);
/** \brief Drop contexts staged by tls_server_stage() (another hook refused the reload). */
void tls_server_staged_free(void *staged);

/** \brief Free the contexts (connections still open keep theirs until they close). */
void tls_server_free(tls_server_t *t);

/** \brief True when a certificate is loaded (HTTPS and the TLS stream can be served). */
bool tls_server_on(tls_server_t *t);

/** \brief Contexts built so far (1 at start; each successful reload adds one). */
unsigned tls_server_generation(tls_server_t *t);

/**
 * \brief A server-side SSL for the accepted socket \p fd (accept state, non-blocking), from the
 *        current context of \p kind.
 * \return the SSL (free with tls_io_free()), NULL when TLS is off or out of memory
 */
struct ssl_st *tls_accept(tls_server_t *t, tls_kind_t kind, int fd);

/** \brief Go on with the handshake. */
tls_io_t tls_io_handshake(struct ssl_st *s);
/**
 * \brief Read up to \p cap bytes of application data.
 * \param[out] n bytes read (TLS_IO_OK: at least 1)
 */
tls_io_t tls_io_read(struct ssl_st *s, uint8_t *buf, size_t cap, size_t *n);
/**
 * \brief Write up to \p len bytes (at least 1; partial writes return what went). A write that
 *        waited (TLS_IO_WANT_WRITE) must be repeated with at least the same bytes (they may
 *        have moved: SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER), as conn.c's pending output does.
 * \param[out] n bytes taken (TLS_IO_OK)
 */
tls_io_t tls_io_write(struct ssl_st *s, const uint8_t *p, size_t len, size_t *n);
/** \brief True when decrypted or buffered bytes wait inside \p s (no socket event will come). */
bool tls_io_pending(struct ssl_st *s);
/** \brief True when the handshake resumed an earlier session. */
bool tls_io_resumed(struct ssl_st *s);
/** \brief Send close_notify once (non-blocking, best effort; not after a fatal error). */
void tls_io_shutdown(struct ssl_st *s);
/** \brief Free \p s (the socket stays open: conn.c closes it). */
void tls_io_free(struct ssl_st *s);
/**
 * \brief Why the last call on this thread failed, for a log line ("wrong version number",
 *        "http request", "peer closed during the handshake").
 */
const char *tls_io_reason(char *buf, size_t cap);

#endif /* HDL_NODE_SERVER_TLS_H */
