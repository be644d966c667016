/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Administrative requests on the Handle protocol (internal to node/server): the
 *        challenge-response authentication of RFC 3652 §3.5 as Handle.Net 9 and the IDIS SDKs
 *        speak it, then create/delete/add/remove/modify/home/unhome handed to the writer thread
 *        (the request waits in a preq_t until its group commit is durable) and list-handles
 *        streamed from a read snapshot. See docs/registration.md.
 *
 * Flows:
 *  - Handle.Net: an admin request (session id 0) is answered RC 402 with a fresh server-chosen
 *    session id, a nonce and the request's digest; the request is remembered in the node-wide
 *    challenge table under that id for auth_timeout_ms. The client answers with OC 200 carrying
 *    the same session id, usually on a new TCP connection, so any worker may take the answer:
 *    it verifies the identity's HS_SECKEY / HS_PUBKEY and runs the remembered request; the reply
 *    has the original opcode and the OC 200's request id. A challenge is used once.
 *  - IDIS (id-pointer SDK): on a persistent connection the client sends OC 2001 LOGIN with a
 *    session id of its own choosing; the challenge keeps that id and lives on the connection;
 *    the OC 200 on the same connection binds the identity to the connection and session id, and
 *    later admin requests on it with that session id run without a challenge.
 */
#ifndef HDL_NODE_SERVER_ADMIN_H
#define HDL_NODE_SERVER_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

#include "hdl/msg.h"
#include "node/server/dispatch.h"

struct chal;
struct preq;
struct worker;

/** Login state of one connection (TCP or HTTP keep-alive); zero-initialised = none. */
typedef struct conn_auth {
	uint32_t session_id;   /**< session bound by an IDIS login (0 = none) */
	uint8_t *id_handle;    /**< its authenticated identity (heap; NULL = none) */
	uint32_t id_handle_len;
	uint32_t id_index;
	struct chal *pending;  /**< the challenge of a client-chosen session, answered here */
} conn_auth_t;

/** \brief Forget a connection's login state (the connection closes). */
void conn_auth_clear(conn_auth_t *a);

/** Node-wide table of challenges waiting for their answer. */
typedef struct chal_table chal_table_t;

/**
 * \brief New table of at most \p max challenges holding at most \p max_bytes of copied requests.
 * \retval HDL_EOK, HDL_ENOMEM
 */
int chal_table_new(unsigned max, size_t max_bytes, chal_table_t **out);
/** \brief Free the table and every challenge in it. */
void chal_table_free(chal_table_t *t);
/** \brief Drop the challenges older than their timeout (any thread; the workers' tick). */
void chal_table_expire(chal_table_t *t, uint64_t now_ms);
/** \brief Challenges waiting now. */
unsigned chal_table_count(chal_table_t *t);

/**
 * \brief Handle an administrative or authentication opcode (100-105, 200, 300, 301, 2001).
 * \param o where the request came from; o->attach NULL = the caller cannot wait (writes are
 *        refused with RC 3)
 * \param[out] wait set when the request was suspended (no reply now; o->attach was called)
 * \return the reply length in \p out (0 with *wait set, or when no reply can be formed)
 */
size_t admin_dispatch(dispatch_ctx_t *ctx, const dispatch_origin_t *o, const hdl_msg_t *m,
                      const uint8_t *req, size_t len, uint8_t *out, size_t cap, bool *wait);

/**
 * \brief The answer of a suspended request whose wait ended (worker thread): the write's result,
 *        or the next chunk of a list (p->more tells whether more follows; the transport calls
 *        again once the connection has room, after preq_post()).
 * \return reply bytes in \p out (0: nothing to send)
 */
size_t admin_preq_reply(dispatch_ctx_t *ctx, struct preq *p, uint8_t *out, size_t cap);

/**
 * \brief Verify a signed response against the identity's HS_SECKEY / HS_PUBKEY values in the
 *        store (RFC 3652 §3.5; handle-protocol.md §9): the identity record must be in this
 *        node's store. Index 0 tries every key of the type in index order. Between
 *        store_reader_begin() and store_reader_end() on ctx->reader; uses ctx->arena.
 * \param auth_type "HS_SECKEY" or "HS_PUBKEY" (any case)
 * \param nonce, digest the signed data is nonce || digest (the REST sessions sign
 *        nonce || cnonce the same way)
 * \param old_format an HS_SECKEY answer to a protocol 2.0 challenge (bare MD5)
 * \param[out] index the index of the key that verified
 * \param[out] msg the reason when refused
 * \return HDL_RC_SUCCESS, HDL_RC_AUTHENTICATION_FAILED or HDL_RC_AUTHEN_ERROR
 */
uint32_t admin_verify_identity(dispatch_ctx_t *ctx, hdl_slice_t auth_type, hdl_slice_t id_handle,
                               uint32_t id_index, hdl_slice_t nonce, hdl_slice_t digest,
                               hdl_slice_t signed_response, bool old_format, uint32_t *index,
                               const char **msg);

/**
 * \brief A write that will wait for the writer, for any transport (the Handle protocol, the
 *        REST API): a PREQ_WRITE of worker \p w whose arena has \p extra bytes more than the
 *        default first block, counted against pending_max and the pending_per_source of
 *        \p peer (NULL: no per-source count).
 * \param[out] why the reason when it is refused (a limit, out of memory; logged)
 * \return the request, or NULL
 */
struct preq *admin_write_new(struct worker *w, const struct sockaddr_storage *peer, size_t extra,
                             const char **why);
/**
 * \brief Hand p->job (request fields filled by the caller) to the writer: its done() posts the
 *        request back to its worker, whose p->complete() answers it.
 * \retval HDL_EOK (the request waits: p->inflight), HDL_EAGAIN (queue full) or HDL_EINVAL (no
 *         writer): the caller still owns \p p and frees it
 */
int admin_write_submit(struct preq *p);

/** \brief True for the opcodes admin_dispatch() handles. */
bool admin_is_opcode(uint32_t opcode);

struct worker;
/**
 * \brief Count the waiting request \p p of worker \p w against pending_max and, by \p peer's
 *        address, pending_per_source (released when \p p is freed). For other transports
 *        that suspend requests (the SNMS API).
 * \return false when over a limit (answer "busy" and free \p p)
 */
bool admin_preq_take(struct worker *w, struct preq *p, const struct sockaddr_storage *peer);

#endif /* HDL_NODE_SERVER_ADMIN_H */
