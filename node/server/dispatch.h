/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Transport-independent request handling: one whole request message in, one reply
 *        message out (or nothing, when no reply can be formed). UDP, TCP and the HTTP native
 *        tunnel all call dispatch_message(); the REST API and the proxy call dispatch_resolve().
 *
 * \note One dispatch_ctx_t per worker thread; not thread-safe.
 */
#ifndef HDL_NODE_SERVER_DISPATCH_H
#define HDL_NODE_SERVER_DISPATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

#include "hdl/msg.h"
#include "node/server/node.h"

struct store_reader;
struct rcache;
struct conn_auth;
struct preq;
struct obs_ctr;
struct stats_worker;

/** Bytes a reply buffer must have for any reply. */
#define DISPATCH_OUT_CAP (HDL_ENVELOPE_LEN + HDL_MAX_MESSAGE_LEN)

/** Per-worker request context. */
typedef struct dispatch_ctx {
	node_shared_t *node;
	struct store_reader *reader;
	hdl_arena_t arena;  /**< request scratch, reset per request */
	uint32_t now;       /**< Unix time used for expirations; 0 = time(NULL) per request */
	uint64_t n_requests; /**< requests answered */
	uint64_t n_dropped;  /**< requests dropped without a reply */
	uint64_t n_errors;   /**< answers with a non-success response code */
	/**
	 * Response cache of dispatch_message() resolutions without index/type filters (values part
	 * of the answer by flag byte + normalized handle), sized by limits.cache_bytes, with its
	 * admission rule; on a new store txn id the handles the txlog names are dropped
	 * (rcache_follow_txlog()), on a limits change everything.
	 */
	struct rcache *cache;
	uint32_t cache_limits_gen; /**< limits.gen the cache was last checked against */
	/* observability (obs.h, stats.h); NULL / 0 outside a running node */
	struct obs_ctr *obs;        /**< this worker's counters (NULL: not counted) */
	struct stats_worker *stats; /**< this worker's usage statistics (NULL: off) */
	bool timing;                /**< measure latencies (the metrics listener is on) */
	uint64_t t_in_ns;           /**< set by a transport: when the request came in (0 = now) */
	uint64_t t_rest_ns;         /**< dispatch_begin() time of a REST resolution */
	int transport;              /**< wr_transport_t of the request being dispatched */
} dispatch_ctx_t;

/** \retval HDL_EOK, HDL_ESTORE, HDL_ENOMEM */
int dispatch_ctx_init(dispatch_ctx_t *ctx, node_shared_t *node);
/** \brief Frees the context; logs the response cache counters when it was used. */
void dispatch_ctx_free(dispatch_ctx_t *ctx);
/** \brief Log the response cache counters (info level; nothing when it was never used). */
void dispatch_cache_log(const dispatch_ctx_t *ctx);

/**
 * \brief Handle one request message (envelope + MessageLength bytes; bytes past the message are
 *        ignored).
 * \param[out] outlen reply length; 0 when the request is dropped (shorter than an envelope, not a
 *        Handle message, or a response rather than a request)
 * \param cap at least DISPATCH_OUT_CAP (an answer that does not fit becomes an RC_ERROR reply)
 * \return HDL_EOK
 */
int dispatch_message(dispatch_ctx_t *ctx, const uint8_t *req, size_t len, uint8_t *out,
                     size_t cap, size_t *outlen);

/** Where a request came from, and how the transport can answer it later. */
typedef struct dispatch_origin {
	int transport;                        /**< wr_transport_t (the audit trail names it) */
	const struct sockaddr_storage *peer;  /**< the client's address (NULL: none) */
	socklen_t peer_len;
	struct conn_auth *auth;               /**< the connection's login state (NULL: UDP) */
	bool can_stream;                      /**< several reply messages may follow (TCP) */
	/**
	 * Attach a suspended request to the transport: set p->complete and link it to the
	 * connection (or keep the UDP return path). NULL: this caller cannot wait, and requests
	 * that would wait are answered RC 3 instead.
	 */
	void (*attach)(void *tctx, struct preq *p);
	void *tctx;
} dispatch_origin_t;

/** dispatch_message_from() suspended the request: no reply now, the transport was attached. */
#define DISPATCH_WAIT 1

/**
 * \brief dispatch_message() for a request from \p o (NULL: unknown origin that cannot wait).
 *        Administrative requests are authenticated and may be suspended (admin.h).
 * \retval HDL_EOK (*outlen: the reply, or 0 = dropped), DISPATCH_WAIT (*outlen 0; the request
 *         waits and its transport's complete() answers it later)
 */
int dispatch_message_from(dispatch_ctx_t *ctx, const dispatch_origin_t *o, const uint8_t *req,
                          size_t len, uint8_t *out, size_t cap, size_t *outlen);

/**
 * \brief Build a protocol-error reply to a request whose envelope is readable but which is not
 *        handled further (oversized frame on TCP). \p req holds at least the envelope.
 * \return reply length, 0 when none can be formed
 */
size_t dispatch_error_reply(dispatch_ctx_t *ctx, const uint8_t *req, size_t len, uint32_t rcode,
                            const char *msg, uint8_t *out, size_t cap);

/** Result of a resolution. */
typedef struct dispatch_sel {
	uint32_t rcode;      /**< HDL_RC_SUCCESS, _HANDLE_NOT_FOUND, _VALUES_NOT_FOUND, ... */
	const char *message; /**< text for non-success codes */
	uint32_t n;          /**< values selected */
	hdl_slice_t *vals;   /**< each one encoded HandleValue; borrow from the store snapshot */
	bool not_homed;      /**< RC 301: the prefix is not homed here (delegate.h resolves it) */
} dispatch_sel_t;

/**
 * \brief The Handle reply of a suspended request whose wait ended (transports' complete()):
 *        a write's result, a list chunk (admin.h), or a delegated resolution (delegate.h).
 * \return reply bytes in \p out (0: nothing to send)
 */
size_t dispatch_preq_reply(dispatch_ctx_t *ctx, struct preq *p, uint8_t *out, size_t cap);

/** \brief Start a store snapshot and reset the arena (before dispatch_resolve). */
int dispatch_begin(dispatch_ctx_t *ctx);
/** \brief End the snapshot; slices from dispatch_resolve are invalid afterwards. */
void dispatch_end(dispatch_ctx_t *ctx);

/**
 * \brief Resolve \p handle with an index list and a type list (value selected if its index is
 *        listed OR its type matches; both empty = all), keeping only PUBLIC_READ values (no
 *        authentication yet). Between dispatch_begin() and dispatch_end().
 * \retval HDL_EOK (see sel->rcode), HDL_ENOMEM
 */
int dispatch_resolve(dispatch_ctx_t *ctx, hdl_slice_t handle, const uint32_t *idx, uint32_t n_idx,
                     const hdl_slice_t *types, uint32_t n_types, bool public_only,
                     dispatch_sel_t *sel);

/**
 * \brief dispatch_resolve() for a reader the caller has authenticated and authorized
 *        (READ_VALUE on the handle, handle-protocol.md §9.3): values with ADMIN_READ are kept
 *        as well as the public ones; those with neither stay out.
 * \retval HDL_EOK (see sel->rcode), HDL_ENOMEM
 */
int dispatch_resolve_admin(dispatch_ctx_t *ctx, hdl_slice_t handle, const uint32_t *idx,
                           uint32_t n_idx, const hdl_slice_t *types, uint32_t n_types,
                           dispatch_sel_t *sel);

#endif /* HDL_NODE_SERVER_DISPATCH_H */
