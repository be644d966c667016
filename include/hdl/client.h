/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Handle resolver client: resolution over UDP (with retries and TCP fallback), TCP and
 *        the HTTP native tunnel, with type and index filters and timeouts.
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
void hdl_result_free(hdl_result_t *r);

/**
 * \brief Why the last hdl_resolve() / hdl_client_exchange() of this thread failed, in words, when
 *        the error code alone does not say it ("is this the HTTP port? the server answered with
 *        a non-HTTP reply"); "" when there is nothing to add.
 * \note Per thread; valid until this thread's next call into the client.
 */
const char *hdl_client_last_detail(void);

#ifdef __cplusplus
}
#endif
#endif /* HDL_CLIENT_H */
