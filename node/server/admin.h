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

#include "hdl/msg.h"
#include "node/server/dispatch.h"

struct chal;
struct preq;

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
