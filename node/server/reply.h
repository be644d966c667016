/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Reply messages (internal to node/server): what a reply copies from its request
 *        (versions, ids, opcode, flags, the request digest) and the writer of the envelope,
 *        header, RD block and credential around a body. Used by dispatch (answers formed at
 *        once) and by requests answered later (admin.c).
 */
#ifndef HDL_NODE_SERVER_REPLY_H
#define HDL_NODE_SERVER_REPLY_H

#include <stddef.h>
#include <stdint.h>

#include "hdl/msg.h"
#include "node/server/dispatch.h"
#include "proto/wire.h"

/** What a reply takes from its request. */
typedef struct reply {
	uint8_t major, minor;   /**< negotiated version of the reply */
	uint32_t session_id, request_id;
	uint32_t opcode, opflags;
	uint8_t rd_alg;
	uint8_t rd[HDL_DIGEST_MAX_LEN];
	size_t rd_len; /**< 0 = no RD block */
	uint32_t extra_flags; /**< OpFlags set on the reply besides the copied ones (CN, RD) */
} reply_t;

/** \brief Envelope and header with both lengths left zero (patched by reply_end), then RD. */
void reply_begin(const dispatch_ctx_t *ctx, wire_wr_t *w, const reply_t *r, uint32_t rcode);
/** \brief Credential length 0 and the two length fields. \return reply length, 0 on overflow */
size_t reply_end(wire_wr_t *w);
/** \brief A whole error reply: \p msg as the body (counts an error). \return its length */
size_t reply_error(dispatch_ctx_t *ctx, const reply_t *r, uint32_t rcode, const char *msg,
                   uint8_t *out, size_t cap);
/** \brief Set the RD block from the request's header+body when the request asked for it. */
void reply_digest(reply_t *r, const uint8_t *signed_part, size_t len);
/** \brief Reply fields from a raw request whose envelope decoded (the header maybe not). */
void reply_from_raw(reply_t *r, const hdl_envelope_t *env, const uint8_t *req, size_t len);
/** \brief Unix time of the context (its fixed clock in tests). */
uint32_t now_of(const dispatch_ctx_t *ctx);

#endif /* HDL_NODE_SERVER_REPLY_H */
