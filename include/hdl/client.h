/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Handle resolver client: resolution over UDP (with retries and TCP fallback), TCP and
 *        the HTTP native tunnel, with type and index filters and timeouts; authenticated
 *        administration over TCP (challenge-response, IDIS login sessions).
 *
 * \note A client is immutable after hdl_client_new() and may be shared between threads; each call
 *       uses its own sockets and buffers. No global state.
 */
#ifndef HDL_CLIENT_H
#define HDL_CLIENT_H

#include "hdl/msg.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hdl_client hdl_client_t;
typedef struct hdl_result hdl_result_t;

typedef enum hdl_transport {
	HDL_TRANSPORT_UDP = 0, /**< UDP, retried, falling back to TCP when the answer won't fit */
	HDL_TRANSPORT_TCP,
	HDL_TRANSPORT_HTTP, /**< POST application/x-hdl-message (native tunnel) */
} hdl_transport_t;

typedef struct hdl_client_opts {
	const char *host; /**< numeric IPv4/IPv6 address or host name */
	uint16_t port;    /**< 2641 for UDP/TCP, 8000 for HTTP when 0 */
	hdl_transport_t transport;
	unsigned timeout_ms;  /**< whole-request timeout; 0 = 5000 */
	unsigned udp_tries;   /**< UDP attempts before falling back to TCP; 0 = 3 */
	bool no_tcp_fallback; /**< UDP only */
} hdl_client_opts_t;

/** Resolution request. */
typedef struct hdl_resolve_req {
	const char *handle;
	const char *const *types; /**< type filter (a trailing '.' matches subtypes) */
	uint32_t n_types;
	const uint32_t *indexes;
	uint32_t n_indexes;
	bool authoritative;   /**< set AT */
	bool not_public_only; /**< clear PO (PO is set by default, as hdllib does) */
	bool digest;          /**< set RD and check the request digest in the answer */
} hdl_resolve_req_t;

/** \retval HDL_EOK, HDL_EINVAL (no host, bad port), HDL_ENOMEM */
int hdl_client_new(const hdl_client_opts_t *opts, hdl_client_t **out);
void hdl_client_free(hdl_client_t *c);

/**
 * \brief Resolve a handle. On HDL_EOK \p *out holds the decoded response, whatever its response
 *        code (check hdl_result_rcode()).
 * \retval HDL_EOK, HDL_ETIMEDOUT, HDL_ECONNREFUSED, HDL_EIO, HDL_EPROTO (malformed or mismatched
 *         reply), HDL_ENAME (invalid handle), HDL_EDIGEST (RD asked and wrong), HDL_ENOMEM,
 *         HDL_EDNS (host name lookup failed), HDL_EINVAL (bad arguments, filter over
 *         HDL_MAX_FILTER), HDL_ELIMIT (request over HDL_MAX_MESSAGE_LEN)
 * \note UDP tries wait 500, 1000, 1500 ms (scaled down to 3/5 of the timeout when TCP fallback is
 *       on); TCP then gets the rest. A wrong digest is final; a garbled, partial or missing UDP
 *       answer falls back to TCP, and so does an RC_ERROR answer over UDP (a server's way to
 *       say "ask over TCP", as Handle.Net's resolver takes it), unless no_tcp_fallback is set.
 *       Stray datagrams (other RequestId) are ignored.
 */
int hdl_resolve(hdl_client_t *c, const hdl_resolve_req_t *req, hdl_result_t **out);

/**
 * \brief Send any request message and decode the answer. A fresh random RequestId is written to
 *        \p req->env.request_id and seq set to 0; the answer must echo the RequestId and (except
 *        for OC 200 answers) the opcode, and carry a matching RD digest when \p req asks for one.
 * \retval as hdl_resolve()
 */
int hdl_client_exchange(hdl_client_t *c, hdl_msg_t *req, hdl_result_t **out);

/** \brief Response code of the answer (HDL_RC_*). */
uint32_t hdl_result_rcode(const hdl_result_t *r);
/** \brief The decoded answer; valid until hdl_result_free(). */
const hdl_msg_t *hdl_result_msg(const hdl_result_t *r);
/** \brief Values of a successful resolution (NULL and 0 otherwise). */
const hdl_value_t *hdl_result_values(const hdl_result_t *r, uint32_t *n);
/** \brief Raw bytes of the answer (envelope + message). */
const uint8_t *hdl_result_raw(const hdl_result_t *r, size_t *len);
/** \brief Transport that produced the answer (UDP answers may come from the TCP fallback). */
hdl_transport_t hdl_result_transport(const hdl_result_t *r);
/**
 * \brief The next message of a streamed answer (LIST_HANDLES, LIST_HOMED_NAS: CN set on all but
 *        the last), or NULL. Owned by \p r.
 */
const hdl_result_t *hdl_result_next(const hdl_result_t *r);
/** \brief Free \p r and the messages after it. */
void hdl_result_free(hdl_result_t *r);

/**
 * \brief Why the last hdl_resolve() / hdl_client_exchange() of this thread failed, in words, when
 *        the error code alone does not say it ("is this the HTTP port? the server answered with
 *        a non-HTTP reply"); "" when there is nothing to add.
 * \note Per thread; valid until this thread's next call into the client.
 */
const char *hdl_client_last_detail(void);

/* ---- administration: authenticated requests and IDIS sessions ------------------------------ */

struct hdl_auth;    /* include/hdl/auth.h */
struct evp_pkey_st; /* OpenSSL EVP_PKEY */

/** Where the OC 200 answer to a challenge goes. */
typedef enum hdl_answer_via {
	HDL_ANSWER_NEW_CONN = 0, /**< a new TCP connection, as hdllib does (the default) */
	HDL_ANSWER_SAME_CONN,    /**< the connection the challenge came on, as the IDIS SDK does */
} hdl_answer_via_t;

/**
 * Called with each message of a streamed answer but the last. Return 0 to go on; any other value
 * (a negative HDL_E* code) stops reading and is returned by the call.
 */
typedef int (*hdl_part_cb)(const hdl_msg_t *m, void *ctx);

/** Options of an administrative request. */
typedef struct hdl_admin_opts {
	const struct hdl_auth *auth; /**< who answers a challenge; NULL: RC 402 is the answer */
	hdl_answer_via_t answer_via;  /**< hdl_client_admin only; sessions use their connection */
	hdl_part_cb on_part;          /**< streamed answers; NULL: parts kept (hdl_result_next) */
	void *ctx;                    /**< for on_part */
	size_t max_stream_bytes;      /**< most bytes of answers read for one request; 0 = 64 MiB */
} hdl_admin_opts_t;

/**
 * \brief Set up \p m as an admin request with \p opcode as hdllib sends them: version 2.11,
 *        OpFlags REC | CA | PO, SiteInfoSerial 0xFFFF, expiration now + 12 h. The caller sets
 *        m->kind and the body (and OVRW / MINT in m->hdr.opflags).
 */
void hdl_admin_request_init(hdl_msg_t *m, uint32_t opcode);

/**
 * \brief Send an administrative request (create, delete, add, modify, remove, list, home,
 *        unhome, or any other) over TCP to the client's host and port (a UDP or TCP client;
 *        an HTTP client is refused with HDL_EINVAL). On RC 402 the
 *        challenge's digest must be of the request we sent (else HDL_EDIGEST and nothing is
 *        signed); the answer (OC 200 with the challenge's SessionId) goes on a new connection or
 *        the same one (o->answer_via), and its reply, with every part of a streamed (CN) answer,
 *        is returned. One challenge is answered; a second RC 402 is returned as the answer.
 * \param req  the request; its RequestId is set here; its SessionId is sent as given (0)
 * \retval HDL_EOK        \p *out holds the final answer, whatever its response code (RC 3
 *                        "server too busy" included: not retried)
 * \retval HDL_EDIGEST    the challenge was for another request
 * \retval HDL_EPROTO     an answer that does not decode or does not match the request
 * \retval HDL_ELIMIT     a streamed answer over o->max_stream_bytes, or the request too large
 * \retval HDL_ETIMEDOUT, HDL_ECONNREFUSED, HDL_EIO, HDL_EDNS, HDL_ENOMEM, HDL_EINVAL
 * \retval any error of hdl_auth_answer() (a key that cannot sign: HDL_EINVAL)
 * \note The whole exchange (challenge, answer, every part) runs under the client's timeout.
 */
int hdl_client_admin(hdl_client_t *c, hdl_msg_t *req, const hdl_admin_opts_t *o,
                     hdl_result_t **out);

/** An IDIS login session: one persistent, authenticated TCP connection. */
typedef struct hdl_session hdl_session_t;

/**
 * \brief IDIS login (OC 2001 LOGIN_ID_SYSTEM): connect, send the login (identity handle + index,
 *        a client-chosen SessionId, protocol 2.10, RD, PO clear, no credential section), answer the
 *        RC 402 challenge on the same connection, expect RC 1.
 * \param auth   borrowed: must outlive the session (it answers later challenges too)
 * \param reply  optional: the last answer of the login (e.g. RC 403), caller frees
 * \retval HDL_EOK (\p *out set), HDL_ERCODE (the login was refused: see \p reply), and the
 *         errors of hdl_client_admin()
 */
int hdl_session_open(hdl_client_t *c, const struct hdl_auth *auth, hdl_session_t **out,
                     hdl_result_t **reply);

/**
 * \brief Send \p req on the session's connection with the session's SessionId (no challenge
 *        is expected; one is still answered, on the same connection). Streamed answers as
 *        hdl_client_admin(); o->auth and o->answer_via are ignored.
 * \retval as hdl_client_admin(); HDL_EIO once the connection is broken. After any error the
 *         connection is closed and the session can only be closed.
 */
int hdl_session_request(hdl_session_t *s, hdl_msg_t *req, const hdl_admin_opts_t *o,
                        hdl_result_t **out);

/** \brief The session's SessionId. */
uint32_t hdl_session_id(const hdl_session_t *s);

/** \brief Close the connection and free \p s (NULL is fine). */
void hdl_session_close(hdl_session_t *s);

/* ---- credentials from files (client/keyfile.c) --------------------------------------------- */

/**
 * \brief Read a private key file: PEM (PKCS#8 or traditional, maybe encrypted), DER, or the CNRI
 *        private key format (admpriv.bin, maybe encrypted). The passphrase is the first line of
 *        \p pass_file, or when that is NULL the value of the environment variable \p pass_env
 *        (NULL or unset: none). Never take a passphrase from the command line.
 * \retval HDL_EOK (\p *out: EVP_PKEY_free it), HDL_ENOENT, HDL_EIO (unreadable), HDL_ELIMIT
 *         (a file over 1 MiB), and the errors of hdl_privkey_decode() (HDL_EAUTH: passphrase
 *         missing or wrong)
 */
int hdl_privkey_load(const char *path, const char *pass_file, const char *pass_env,
                     struct evp_pkey_st **out);

/**
 * \brief Read an HS_SECKEY secret from \p path: the file's bytes, one trailing newline (LF or
 *        CRLF) removed.
 * \retval HDL_EOK (\p *out: free with hdl_secret_free), HDL_ENOENT, HDL_EIO, HDL_ELIMIT,
 *         HDL_ENOMEM
 */
int hdl_secret_load(const char *path, uint8_t **out, size_t *outlen);

/** \brief Cleanse and free a secret from hdl_secret_load(). */
void hdl_secret_free(uint8_t *p, size_t len);

/**
 * \brief Parse an identity "INDEX:HANDLE" (e.g. "300:0.NA/88.100", what --auth takes).
 * \param[out] handle a copy of HANDLE (free it)
 * \retval HDL_EOK, HDL_EINVAL (no colon, no or a bad index), HDL_ENAME (bad handle), HDL_ENOMEM
 */
int hdl_identity_parse(const char *s, uint32_t *index, char **handle);

#ifdef __cplusplus
}
#endif
#endif /* HDL_CLIENT_H */
