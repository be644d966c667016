/* SPDX-License-Identifier: Apache-2.0 */
/* Building reply messages: envelope, header, RD block, body, credential (see reply.h). */
#include "node/server/reply.h"

#include <string.h>
#include <time.h>

#include "hdl/error.h"

#define EXPIRATION_SECS 43200u

/*
 * Response OpFlags copied from the request. Handle.Net copies CT/CA/ENC/PO/RD (AbstractResponse)
 * because it then signs / encrypts; this node has no signing key or sessions yet, so CT and ENC
 * are not claimed on unsigned, unencrypted answers (a certifying client rejects them either way).
 * Add them here once signing and sessions land.
 */
#define COPY_FLAGS (HDL_OF_CA | HDL_OF_PO | HDL_OF_RD)

uint32_t now_of(const dispatch_ctx_t *ctx)
{
	return ctx->now ? ctx->now : (uint32_t)time(NULL);
}

/* Envelope and header with both lengths left zero (patched by reply_end), then the RD block. */
void reply_begin(const dispatch_ctx_t *ctx, wire_wr_t *w, const reply_t *r, uint32_t rcode)
{
	wire_wr_u8(w, r->major);
	wire_wr_u8(w, r->minor);
	wire_wr_u8(w, HDL_PROTO_MAJOR & HDL_ENV_SUGG_MAJOR_MASK);
	wire_wr_u8(w, HDL_PROTO_MINOR);
	wire_wr_u32(w, r->session_id);
	wire_wr_u32(w, r->request_id);
	wire_wr_u32(w, 0); /* sequence number */
	wire_wr_u32(w, 0); /* MessageLength, patched */

	uint32_t flags = (r->opflags & COPY_FLAGS) | HDL_OF_REC | HDL_OF_AT | r->extra_flags;
	if (!r->rd_len)
		flags &= ~HDL_OF_RD;
	wire_wr_u32(w, r->opcode);
	wire_wr_u32(w, rcode);
	wire_wr_u32(w, flags);
	wire_wr_u16(w, ctx->node->site_serial);
	wire_wr_u8(w, 0); /* recursion count */
	wire_wr_u8(w, 0); /* reserved */
	wire_wr_u32(w, now_of(ctx) + EXPIRATION_SECS);
	wire_wr_u32(w, 0); /* BodyLength, patched */
	if (r->rd_len) {
		if (r->rd_alg == HDL_DIGEST_OLD_MD5) {
			wire_wr_lbytes(w, r->rd, r->rd_len);
		} else {
			wire_wr_u8(w, r->rd_alg);
			wire_wr_bytes(w, r->rd, r->rd_len);
		}
	}
}

/* Credential length 0 and the two length fields. \return reply length or 0 on overflow. */
size_t reply_end(wire_wr_t *w)
{
	size_t body_end = w->pos;
	wire_wr_u32(w, 0); /* CredentialLength */
	if (w->err)
		return 0;
	wire_wr_put_u32_at(w, 16, (uint32_t)(w->pos - HDL_ENVELOPE_LEN));
	wire_wr_put_u32_at(w, 40, (uint32_t)(body_end - HDL_ENVELOPE_LEN - HDL_HEADER_LEN));
	return w->pos;
}

size_t reply_error(dispatch_ctx_t *ctx, const reply_t *r, uint32_t rcode, const char *msg,
                          uint8_t *out, size_t cap)
{
	wire_wr_t w = wire_wr_init(out, cap);
	reply_begin(ctx, &w, r, rcode);
	wire_wr_lbytes(&w, msg, strlen(msg));
	ctx->n_errors++;
	return reply_end(&w);
}

void reply_digest(reply_t *r, const uint8_t *signed_part, size_t len)
{
	r->rd_len = 0;
	if (!(r->opflags & HDL_OF_RD))
		return;
	r->rd_alg = hdl_digest_alg_for(r->major, r->minor);
	size_t dl = 0;
	if (hdl_digest(r->rd_alg, signed_part, len, r->rd, &dl) == HDL_EOK)
		r->rd_len = dl;
}

/* Reply fields from a raw request whose envelope decoded (header maybe not). */
void reply_from_raw(reply_t *r, const hdl_envelope_t *env, const uint8_t *req, size_t len)
{
	memset(r, 0, sizeof(*r));
	hdl_version_negotiate(env, &r->major, &r->minor);
	r->session_id = env->session_id;
	r->request_id = env->request_id;
	if (len >= HDL_ENVELOPE_LEN + HDL_HEADER_LEN) {
		wire_rd_t rd = wire_rd_init(req + HDL_ENVELOPE_LEN, HDL_HEADER_LEN);
		r->opcode = wire_rd_u32(&rd);
		(void)wire_rd_u32(&rd);
		r->opflags = wire_rd_u32(&rd);
		wire_rd_skip(&rd, 8);
		uint32_t body_len = wire_rd_u32(&rd);
		size_t signed_len = (size_t)HDL_HEADER_LEN + body_len;
		if (body_len <= HDL_MAX_MESSAGE_LEN && HDL_ENVELOPE_LEN + signed_len <= len)
			reply_digest(r, req + HDL_ENVELOPE_LEN, signed_len);
	}
}

