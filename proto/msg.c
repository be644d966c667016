/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Whole-message codec: envelope, header, request digest block, bodies, credential.
 *
 * Message on the wire (RFC 3652 §2, as Handle.Net 9 writes it):
 *
 *   +----------+----------+-----------------+------------------+----------------------+
 *   | Envelope | Header   | Body            | CredentialLength | Credential           |
 *   | 20 bytes | 24 bytes | BodyLength      | U32 (optional)   | CredentialLength     |
 *   +----------+----------+-----------------+------------------+----------------------+
 *              \______________ MessageLength (envelope bytes 16..19) _______________/
 */
#include <string.h>

#include "hdl/msg.h"
#include "proto/wire.h"

/* Smallest encodings, used to bound counts by the bytes left before allocating. */
#define MIN_VALUE_LEN 26u /* 14 fixed + type len + data len + ref count */
#define MIN_STR_LEN   4u
#define MIN_REF_LEN   8u

/* ---- envelope ----------------------------------------------------------------------------

    0        1        2            3          4..7       8..11      12..15     16..19
   +--------+--------+------------+----------+----------+----------+----------+----------+
   | major  | minor  | flags|smaj | sugg min | session  | request  | sequence | msg len  |
   +--------+--------+------------+----------+----------+----------+----------+----------+
*/

int hdl_envelope_decode(const uint8_t *buf, size_t len, hdl_envelope_t *env)
{
	wire_rd_t rd = wire_rd_init(buf, len);
	memset(env, 0, sizeof(*env));
	env->major = wire_rd_u8(&rd);
	env->minor = wire_rd_u8(&rd);
	uint8_t b2 = wire_rd_u8(&rd);
	env->flags = b2 & (HDL_ENV_COMPRESSED | HDL_ENV_ENCRYPTED | HDL_ENV_TRUNCATED);
	env->sugg_major = b2 & HDL_ENV_SUGG_MAJOR_MASK;
	env->sugg_minor = wire_rd_u8(&rd);
	env->session_id = wire_rd_u32(&rd);
	env->request_id = wire_rd_u32(&rd);
	env->seq = wire_rd_u32(&rd);
	env->msg_len = wire_rd_u32(&rd);
	if (rd.err)
		return rd.err;
	/* 2.x, 3.x (DO-IRP), and 5.0 which buggy 2.0 clients send */
	if (env->major != 2 && env->major != 3 && env->major != 5)
		return HDL_EVERSION;
	if (env->msg_len > HDL_MAX_MESSAGE_LEN)
		return HDL_ELIMIT;
	return HDL_EOK;
}

void hdl_envelope_encode(const hdl_envelope_t *env, uint8_t out[HDL_ENVELOPE_LEN])
{
	wire_wr_t wr = wire_wr_init(out, HDL_ENVELOPE_LEN);
	wire_wr_u8(&wr, env->major);
	wire_wr_u8(&wr, env->minor);
	wire_wr_u8(&wr,
	           (uint8_t)((env->flags & 0xE0u) | (env->sugg_major & HDL_ENV_SUGG_MAJOR_MASK)));
	wire_wr_u8(&wr, env->sugg_minor);
	wire_wr_u32(&wr, env->session_id);
	wire_wr_u32(&wr, env->request_id);
	wire_wr_u32(&wr, env->seq);
	wire_wr_u32(&wr, env->msg_len);
}

void hdl_msg_init(hdl_msg_t *m)
{
	memset(m, 0, sizeof(*m));
	m->env.major = HDL_PROTO_MAJOR;
	m->env.minor = HDL_PROTO_MINOR;
	m->env.sugg_major = HDL_PROTO_MAJOR;
	m->env.sugg_minor = HDL_PROTO_MINOR;
	m->hdr.site_serial = 0xFFFF;
}

static bool is_v20(const hdl_envelope_t *env)
{
	return (env->major == 2 && env->minor == 0) || env->major == 5;
}

/* ---- primitives ---------------------------------------------------------------------------- */

static hdl_slice_t rd_str(wire_rd_t *rd, uint32_t max)
{
	return wire_rd_lbytes(rd, max);
}

/* A UTF-8 string field (handles, types): length-limited and valid UTF-8. */
static hdl_slice_t rd_utf8(wire_rd_t *rd, uint32_t max)
{
	hdl_slice_t s = wire_rd_lbytes(rd, max);
	if (!rd->err && !hdl_utf8_valid(s.p, s.len))
		wire_rd_fail(rd, HDL_EUTF8);
	return s;
}

static hdl_slice_t rd_handle(wire_rd_t *rd)
{
	return rd_utf8(rd, HDL_MAX_HANDLE_LEN);
}

/* U32 count, then count x U32. */
static uint32_t *rd_u32_list(wire_rd_t *rd, hdl_arena_t *a, uint32_t max, uint32_t *n)
{
	uint32_t *v = wire_rd_array(rd, a, max, 4, sizeof(*v), n);
	for (uint32_t i = 0; i < *n; i++)
		v[i] = wire_rd_u32(rd);
	return v;
}

/* U32 count, then count x STR (UTF-8). */
static hdl_slice_t *rd_str_list(wire_rd_t *rd, hdl_arena_t *a, uint32_t max, uint32_t maxlen,
                                uint32_t *n)
{
	hdl_slice_t *v = wire_rd_array(rd, a, max, MIN_STR_LEN, sizeof(*v), n);
	for (uint32_t i = 0; i < *n && !rd->err; i++)
		v[i] = rd_utf8(rd, maxlen);
	return v;
}

/* ---- handle values ------------------------------------------------------------------------

   +---------+-----------+---------+--------+-------+----------+----------+--------------------+
   | Index   | Timestamp | TTLType | TTL    | Perms | Type STR | Data     | Refs: U32 n +      |
   | U32     | U32       | U8      | U32    | U8    |          | BYTES    |  n x (STR, U32)    |
   +---------+-----------+---------+--------+-------+----------+----------+--------------------+
*/

static void rd_value(wire_rd_t *rd, hdl_arena_t *a, hdl_value_t *v)
{
	v->index = wire_rd_u32(rd);
	v->timestamp = wire_rd_u32(rd);
	v->ttl_type = wire_rd_u8(rd);
	v->ttl = wire_rd_u32(rd);
	v->perms = wire_rd_u8(rd);
	v->type = rd_utf8(rd, HDL_MAX_TYPE_LEN);
	v->data = wire_rd_lbytes(rd, HDL_MAX_ARRAY_LEN);
	v->refs = wire_rd_array(rd, a, HDL_MAX_REFS, MIN_REF_LEN, sizeof(*v->refs), &v->n_refs);
	for (uint32_t i = 0; i < v->n_refs && !rd->err; i++) {
		v->refs[i].handle = rd_handle(rd);
		v->refs[i].index = wire_rd_u32(rd);
	}
}

static hdl_value_t *rd_values(wire_rd_t *rd, hdl_arena_t *a, uint32_t *n)
{
	hdl_value_t *v = wire_rd_array(rd, a, HDL_MAX_VALUES, MIN_VALUE_LEN, sizeof(*v), n);
	for (uint32_t i = 0; i < *n && !rd->err; i++)
		rd_value(rd, a, &v[i]);
	return v;
}

static void wr_value(wire_wr_t *wr, const hdl_value_t *v)
{
	wire_wr_u32(wr, v->index);
	wire_wr_u32(wr, v->timestamp);
	wire_wr_u8(wr, v->ttl_type);
	wire_wr_u32(wr, v->ttl);
	wire_wr_u8(wr, v->perms);
	wire_wr_slice(wr, v->type);
	wire_wr_slice(wr, v->data);
	wire_wr_u32(wr, v->n_refs);
	for (uint32_t i = 0; i < v->n_refs; i++) {
		wire_wr_slice(wr, v->refs[i].handle);
		wire_wr_u32(wr, v->refs[i].index);
	}
}

static void wr_values(wire_wr_t *wr, const hdl_value_t *v, uint32_t n)
{
	if (n > HDL_MAX_VALUES) {
		if (!wr->err)
			wr->err = HDL_ELIMIT;
		return;
	}
	wire_wr_u32(wr, n);
	for (uint32_t i = 0; i < n; i++)
		wr_value(wr, &v[i]);
}

size_t hdl_value_size(const hdl_value_t *v)
{
	size_t n = 14 + 4 + (size_t)v->type.len + 4 + (size_t)v->data.len + 4;
	for (uint32_t i = 0; i < v->n_refs; i++)
		n += 4 + (size_t)v->refs[i].handle.len + 4;
	return n;
}

int hdl_values_encode(const hdl_value_t *v, uint32_t n, uint8_t *out, size_t cap, size_t *outlen)
{
	wire_wr_t wr = wire_wr_init(out, cap);
	wr_values(&wr, v, n);
	*outlen = wr.err ? 0 : wr.pos;
	return wr.err;
}

int hdl_values_decode(const uint8_t *buf, size_t len, hdl_arena_t *a, hdl_value_t **out,
                      uint32_t *n)
{
	wire_rd_t rd = wire_rd_init(buf, len);
	*out = rd_values(&rd, a, n);
	if (rd.err == HDL_EOK && wire_rd_left(&rd) != 0)
		rd.err = HDL_ETRAILING;
	if (rd.err) {
		*out = NULL;
		*n = 0;
	}
	return rd.err;
}

/* ---- request digest block -----------------------------------------------------------------

   >= 2.1:  +--------+-----------------------------+      2.0:  +---------+--------------+
            | alg U8 | digest (16 / 20 / 32 bytes) |            | U32 16  | MD5 (16)     |
            +--------+-----------------------------+            +---------+--------------+
*/

static void rd_digest_block(wire_rd_t *rd, hdl_msg_t *m)
{
	if (is_v20(&m->env)) {
		m->rd_alg = HDL_DIGEST_OLD_MD5;
		m->rd = wire_rd_lbytes(rd, HDL_DIGEST_MAX_LEN);
		/* an MD5 digest; an empty one would not survive re-encoding (rd.len 0 = no block)
		 */
		if (!rd->err && m->rd.len != hdl_digest_len(HDL_DIGEST_OLD_MD5))
			wire_rd_fail(rd, HDL_EMALF);
		return;
	}
	m->rd_alg = wire_rd_u8(rd);
	size_t dl = hdl_digest_len(m->rd_alg);
	if (rd->err)
		return;
	if (dl == 0 || m->rd_alg == HDL_DIGEST_OLD_MD5) {
		wire_rd_fail(rd, HDL_EMALF);
		return;
	}
	m->rd = wire_rd_bytes(rd, dl);
}

static void wr_digest_block(wire_wr_t *wr, const hdl_msg_t *m)
{
	if (m->rd_alg == HDL_DIGEST_OLD_MD5) {
		wire_wr_slice(wr, m->rd);
		return;
	}
	wire_wr_u8(wr, m->rd_alg);
	wire_wr_bytes(wr, m->rd.p, m->rd.len);
}

/* ---- bodies -------------------------------------------------------------------------------- */

/*
 * Requests (rcode 0), by opcode:
 *   1 RESOLUTION          STR handle | U32 n, n x U32 index | U32 n, n x STR type
 *   2 GET_SITEINFO        STR handle (clients send "/")
 *   100/102/104           STR handle | U32 n, n x HandleValue
 *   101/105/300/301/302/401  STR handle
 *   103 REMOVE_VALUE      STR handle | U32 n, n x U32 index
 *   200 CHALLENGE_RESP    STR authType | STR idHandle | U32 idIndex | BYTES signedResponse
 *   201 VERIFY_RESPONSE   STR idHandle | U32 idIndex | BYTES nonce | digest | BYTES signature
 *                         digest = BYTES (Handle.Net) or U8 alg + fixed digest (RFC)
 *   400 SESSION_SETUP     U16 mode | U32 timeout | STR idHandle | U32 idIndex |
 *                         mode 1,4: BYTES pubkey; mode 3: STR keyHandle + U32 keyIndex
 *                         (Handle.Net appends 2 zero bytes: left as trailing)
 *   402 EXCHANGEKEY       BYTES encrypted session key
 *   2000/2001 LOGIN       STR idHandle | U32 idIndex
 */
static int decode_request(wire_rd_t *rd, hdl_msg_t *m, hdl_arena_t *a)
{
	switch (m->hdr.opcode) {
	case HDL_OC_RESOLUTION:
		m->kind = HDL_BODY_RESOLVE;
		m->u.resolve.handle = rd_handle(rd);
		m->u.resolve.indexes = rd_u32_list(rd, a, HDL_MAX_FILTER, &m->u.resolve.n_indexes);
		m->u.resolve.types =
		    rd_str_list(rd, a, HDL_MAX_FILTER, HDL_MAX_TYPE_LEN, &m->u.resolve.n_types);
		break;
	case HDL_OC_CREATE_HANDLE:
	case HDL_OC_ADD_VALUE:
	case HDL_OC_MODIFY_VALUE:
		m->kind = HDL_BODY_VALUES;
		m->u.values.handle = rd_handle(rd);
		m->u.values.values = rd_values(rd, a, &m->u.values.n_values);
		break;
	case HDL_OC_GET_SITEINFO:
	case HDL_OC_DELETE_HANDLE:
	case HDL_OC_LIST_HANDLES:
	case HDL_OC_HOME_NA:
	case HDL_OC_UNHOME_NA:
	case HDL_OC_LIST_HOMED_NAS:
	case HDL_OC_SESSION_TERMINATE:
		m->kind = HDL_BODY_HANDLE;
		m->u.handle = rd_handle(rd);
		break;
	case HDL_OC_REMOVE_VALUE:
		m->kind = HDL_BODY_INDEXES;
		m->u.indexes.handle = rd_handle(rd);
		m->u.indexes.indexes = rd_u32_list(rd, a, HDL_MAX_VALUES, &m->u.indexes.n_indexes);
		break;
	case HDL_OC_CHALLENGE_RESPONSE:
		m->kind = HDL_BODY_CHAL_ANSWER;
		m->u.answer.auth_type = rd_utf8(rd, HDL_MAX_TYPE_LEN);
		m->u.answer.id_handle = rd_handle(rd);
		m->u.answer.id_index = wire_rd_u32(rd);
		m->u.answer.signed_response = wire_rd_lbytes(rd, HDL_MAX_ARRAY_LEN);
		break;
	case HDL_OC_VERIFY_RESPONSE: {
		hdl_body_verify_t *v = &m->u.verify;
		m->kind = HDL_BODY_VERIFY;
		v->id_handle = rd_handle(rd);
		v->id_index = wire_rd_u32(rd);
		v->nonce = wire_rd_lbytes(rd, HDL_MAX_ARRAY_LEN);
		/* Handle.Net writes BYTES (first byte 0 for any sane length); RFC: alg + digest */
		if (wire_rd_left(rd) > 0 && *wire_rd_ptr(rd) == 0) {
			v->digest_alg = HDL_DIGEST_OLD_MD5;
			v->digest = wire_rd_lbytes(rd, HDL_DIGEST_MAX_LEN);
		} else {
			v->digest_alg = wire_rd_u8(rd);
			size_t dl = hdl_digest_len(v->digest_alg);
			if (!rd->err && dl == 0)
				wire_rd_fail(rd, HDL_EMALF);
			v->digest = wire_rd_bytes(rd, dl);
		}
		v->signed_response = wire_rd_lbytes(rd, HDL_MAX_ARRAY_LEN);
		break;
	}
	case HDL_OC_SESSION_SETUP: {
		hdl_body_session_t *s = &m->u.session;
		m->kind = HDL_BODY_SESSION_REQ;
		s->mode = wire_rd_u16(rd);
		s->timeout = wire_rd_u32(rd);
		s->id_handle = rd_handle(rd);
		s->id_index = wire_rd_u32(rd);
		if (s->mode == 1 || s->mode == 4) {
			s->pubkey = wire_rd_lbytes(rd, HDL_MAX_ARRAY_LEN);
		} else if (s->mode == 3) {
			s->key_handle = rd_handle(rd);
			s->key_index = wire_rd_u32(rd);
		} else if (s->mode > 4) {
			wire_rd_fail(rd, HDL_EMALF);
		}
		break;
	}
	case HDL_OC_SESSION_EXCHANGEKEY:
		m->kind = HDL_BODY_BYTES;
		m->u.bytes = wire_rd_lbytes(rd, HDL_MAX_ARRAY_LEN);
		break;
	case HDL_OC_LOGIN:
	case HDL_OC_LOGIN_ID_SYSTEM:
		m->kind = HDL_BODY_LOGIN;
		m->u.login.id_handle = rd_handle(rd);
		m->u.login.id_index = wire_rd_u32(rd);
		break;
	default: return HDL_EOPCODE;
	}
	return HDL_EOK;
}

/*
 * Responses: [RD digest block when OpFlag RD] then
 *   RC 1:   1 RESOLUTION      STR handle | U32 n, n x HandleValue
 *           2 GET_SITEINFO    raw HS_SITE record filling the body
 *           100 CREATE        STR handle (Handle.Net >= 8) or nothing
 *           105/302 LIST      U32 n, n x STR handle (CN on all but the last message)
 *           201 VERIFY        U8 1 = valid
 *           400 SESSION       U16 mode | BYTES data (+ 2 zero bytes)
 *           others            nothing
 *   RC 402: >= 2.1 BYTES nonce; 2.0: BYTES nonce | BYTES MD5 digest
 *   RC 302/303: STR referral handle | [U32 n, n x HandleValue]
 *   other:  [STR message] [U32 n, n x U32 offending index (DO-IRP 3.0)]
 */
static int decode_response(wire_rd_t *rd, hdl_msg_t *m, hdl_arena_t *a)
{
	uint32_t rc = m->hdr.rcode;
	if (rc == HDL_RC_SUCCESS) {
		switch (m->hdr.opcode) {
		case HDL_OC_RESOLUTION:
			m->kind = HDL_BODY_VALUES;
			m->u.values.handle = rd_handle(rd);
			m->u.values.values = rd_values(rd, a, &m->u.values.n_values);
			break;
		case HDL_OC_GET_SITEINFO:
			m->kind = HDL_BODY_SITEINFO;
			m->u.site = wire_rd_bytes(rd, wire_rd_left(rd));
			break;
		case HDL_OC_CREATE_HANDLE:
			if (wire_rd_left(rd) > 0) {
				m->kind = HDL_BODY_HANDLE;
				m->u.handle = rd_handle(rd);
			} else {
				m->kind = HDL_BODY_EMPTY;
			}
			break;
		case HDL_OC_LIST_HANDLES:
		case HDL_OC_LIST_HOMED_NAS:
			m->kind = HDL_BODY_LIST;
			m->u.list.handles = rd_str_list(rd, a, HDL_MAX_LIST, HDL_MAX_HANDLE_LEN,
			                                &m->u.list.n_handles);
			break;
		case HDL_OC_VERIFY_RESPONSE:
			m->kind = HDL_BODY_VERIFY_RESP;
			m->u.verify_ok = wire_rd_u8(rd);
			break;
		case HDL_OC_SESSION_SETUP:
			m->kind = HDL_BODY_SESSION_RESP;
			m->u.session_resp.mode = wire_rd_u16(rd);
			m->u.session_resp.data = wire_rd_lbytes(rd, HDL_MAX_ARRAY_LEN);
			break;
		default: m->kind = HDL_BODY_EMPTY; break;
		}
		return HDL_EOK;
	}
	switch (rc) {
	case HDL_RC_AUTHENTICATION_NEEDED:
		m->kind = HDL_BODY_CHALLENGE;
		m->u.challenge.nonce = wire_rd_lbytes(rd, HDL_MAX_ARRAY_LEN);
		if (is_v20(&m->env))
			m->u.challenge.old_digest = wire_rd_lbytes(rd, HDL_DIGEST_MAX_LEN);
		break;
	case HDL_RC_SERVICE_REFERRAL:
	case HDL_RC_PREFIX_REFERRAL:
		m->kind = HDL_BODY_REFERRAL;
		m->u.referral.handle = rd_handle(rd);
		if (wire_rd_left(rd) > 0)
			m->u.referral.values = rd_values(rd, a, &m->u.referral.n_values);
		break;
	default:
		m->kind = HDL_BODY_ERROR;
		if (wire_rd_left(rd) >= 4)
			m->u.error.message = rd_str(rd, HDL_MAX_ARRAY_LEN);
		/* DO-IRP offending indexes: only when they fill the rest exactly */
		if (!rd->err && wire_rd_left(rd) >= 4) {
			uint32_t n = (uint32_t)(wire_rd_ptr(rd)[0]) << 24 |
			             (uint32_t)(wire_rd_ptr(rd)[1]) << 16 |
			             (uint32_t)(wire_rd_ptr(rd)[2]) << 8 | wire_rd_ptr(rd)[3];
			if (n <= HDL_MAX_VALUES && (uint64_t)n * 4u + 4u == wire_rd_left(rd))
				m->u.error.indexes =
				    rd_u32_list(rd, a, HDL_MAX_VALUES, &m->u.error.n_indexes);
		}
		break;
	}
	return HDL_EOK;
}

int hdl_body_decode(hdl_msg_t *m, const uint8_t *body, size_t len, hdl_arena_t *a)
{
	wire_rd_t rd = wire_rd_init(body, len);
	int ret;

	m->kind = HDL_BODY_NONE;
	m->trailing.p = NULL;
	m->trailing.len = 0;
	if (m->hdr.rcode == HDL_RC_RESERVED) {
		ret = decode_request(&rd, m, a);
	} else {
		if (m->hdr.opflags & HDL_OF_RD)
			rd_digest_block(&rd, m);
		ret = rd.err ? rd.err : decode_response(&rd, m, a);
	}
	if (ret == HDL_EOK)
		ret = rd.err;
	if (ret != HDL_EOK) {
		m->kind = HDL_BODY_NONE;
		return ret;
	}
	/* tolerated: the id-pointer SDK appends an empty authBytes field, Handle.Net 2 zero bytes
	 */
	m->trailing = wire_rd_bytes(&rd, wire_rd_left(&rd));
	return HDL_EOK;
}

/* ---- whole message ------------------------------------------------------------------------- */

/*
 Header (24 bytes):
   0..3 OpCode | 4..7 ResponseCode | 8..11 OpFlag | 12..13 SiteInfoSerial | 14 RecursionCount |
   15 reserved | 16..19 ExpirationTime | 20..23 BodyLength
*/
int hdl_msg_decode(const uint8_t *buf, size_t len, hdl_arena_t *a, hdl_msg_t *m)
{
	memset(m, 0, sizeof(*m));
	int ret = hdl_envelope_decode(buf, len, &m->env);
	if (ret != HDL_EOK)
		return ret;

	wire_rd_t top = wire_rd_init(buf, len);
	wire_rd_skip(&top, HDL_ENVELOPE_LEN);
	if (wire_rd_left(&top) < m->env.msg_len)
		return HDL_ETRUNC;
	if (wire_rd_left(&top) > m->env.msg_len)
		return HDL_ETRAILING;
	if (m->env.flags & HDL_ENV_ENCRYPTED) {
		/* header and body are ciphertext; the session layer decrypts first */
		m->body = wire_rd_bytes(&top, m->env.msg_len);
		return HDL_EOK;
	}
	wire_rd_t rd = wire_rd_sub(&top, m->env.msg_len);
	const uint8_t *hdr_start = wire_rd_ptr(&rd);
	m->hdr.opcode = wire_rd_u32(&rd);
	m->hdr.rcode = wire_rd_u32(&rd);
	m->hdr.opflags = wire_rd_u32(&rd);
	m->hdr.site_serial = wire_rd_u16(&rd);
	m->hdr.recursion = wire_rd_u8(&rd);
	(void)wire_rd_u8(&rd);
	m->hdr.expiration = wire_rd_u32(&rd);
	m->hdr.body_len = wire_rd_u32(&rd);
	if (rd.err)
		return rd.err;
	m->body = wire_rd_bytes(&rd, m->hdr.body_len);
	if (rd.err)
		return rd.err;
	m->signed_part.p = hdr_start;
	m->signed_part.len = HDL_HEADER_LEN + m->hdr.body_len;

	size_t left = wire_rd_left(&rd);
	if (left > 0) {
		m->cred = wire_rd_lbytes(&rd, HDL_MAX_MESSAGE_LEN);
		if (rd.err)
			return rd.err;
		m->has_cred = true;
		if (wire_rd_left(&rd) > 0)
			return HDL_ETRAILING;
	}
	return hdl_body_decode(m, m->body.p, m->body.len, a);
}

static int encode_body(wire_wr_t *wr, const hdl_msg_t *m)
{
	switch (m->kind) {
	case HDL_BODY_NONE: wire_wr_bytes(wr, m->body.p, m->body.len); return HDL_EOK;
	case HDL_BODY_EMPTY: break;
	case HDL_BODY_RESOLVE: {
		const hdl_body_resolve_t *r = &m->u.resolve;
		wire_wr_slice(wr, r->handle);
		wire_wr_u32(wr, r->n_indexes);
		for (uint32_t i = 0; i < r->n_indexes; i++)
			wire_wr_u32(wr, r->indexes[i]);
		wire_wr_u32(wr, r->n_types);
		for (uint32_t i = 0; i < r->n_types; i++)
			wire_wr_slice(wr, r->types[i]);
		break;
	}
	case HDL_BODY_VALUES:
		wire_wr_slice(wr, m->u.values.handle);
		wr_values(wr, m->u.values.values, m->u.values.n_values);
		break;
	case HDL_BODY_HANDLE: wire_wr_slice(wr, m->u.handle); break;
	case HDL_BODY_INDEXES:
		wire_wr_slice(wr, m->u.indexes.handle);
		wire_wr_u32(wr, m->u.indexes.n_indexes);
		for (uint32_t i = 0; i < m->u.indexes.n_indexes; i++)
			wire_wr_u32(wr, m->u.indexes.indexes[i]);
		break;
	case HDL_BODY_LIST:
		wire_wr_u32(wr, m->u.list.n_handles);
		for (uint32_t i = 0; i < m->u.list.n_handles; i++)
			wire_wr_slice(wr, m->u.list.handles[i]);
		break;
	case HDL_BODY_CHAL_ANSWER:
		wire_wr_slice(wr, m->u.answer.auth_type);
		wire_wr_slice(wr, m->u.answer.id_handle);
		wire_wr_u32(wr, m->u.answer.id_index);
		wire_wr_slice(wr, m->u.answer.signed_response);
		break;
	case HDL_BODY_VERIFY: {
		const hdl_body_verify_t *v = &m->u.verify;
		wire_wr_slice(wr, v->id_handle);
		wire_wr_u32(wr, v->id_index);
		wire_wr_slice(wr, v->nonce);
		if (v->digest_alg == HDL_DIGEST_OLD_MD5) {
			wire_wr_slice(wr, v->digest);
		} else {
			wire_wr_u8(wr, v->digest_alg);
			wire_wr_bytes(wr, v->digest.p, v->digest.len);
		}
		wire_wr_slice(wr, v->signed_response);
		break;
	}
	case HDL_BODY_VERIFY_RESP: wire_wr_u8(wr, m->u.verify_ok); break;
	case HDL_BODY_SESSION_REQ: {
		const hdl_body_session_t *s = &m->u.session;
		wire_wr_u16(wr, s->mode);
		wire_wr_u32(wr, s->timeout);
		wire_wr_slice(wr, s->id_handle);
		wire_wr_u32(wr, s->id_index);
		if (s->mode == 1 || s->mode == 4) {
			wire_wr_slice(wr, s->pubkey);
		} else if (s->mode == 3) {
			wire_wr_slice(wr, s->key_handle);
			wire_wr_u32(wr, s->key_index);
		}
		break;
	}
	case HDL_BODY_SESSION_RESP:
		wire_wr_u16(wr, m->u.session_resp.mode);
		wire_wr_slice(wr, m->u.session_resp.data);
		break;
	case HDL_BODY_BYTES: wire_wr_slice(wr, m->u.bytes); break;
	case HDL_BODY_LOGIN:
		wire_wr_slice(wr, m->u.login.id_handle);
		wire_wr_u32(wr, m->u.login.id_index);
		break;
	case HDL_BODY_SITEINFO: wire_wr_bytes(wr, m->u.site.p, m->u.site.len); break;
	case HDL_BODY_CHALLENGE:
		wire_wr_slice(wr, m->u.challenge.nonce);
		if (is_v20(&m->env))
			wire_wr_slice(wr, m->u.challenge.old_digest);
		break;
	case HDL_BODY_REFERRAL:
		wire_wr_slice(wr, m->u.referral.handle);
		/* the count is optional, but trailing bytes after it would read as one */
		if (m->u.referral.n_values > 0 || m->trailing.len > 0)
			wr_values(wr, m->u.referral.values, m->u.referral.n_values);
		break;
	case HDL_BODY_ERROR:
		wire_wr_slice(wr, m->u.error.message);
		if (m->u.error.n_indexes > 0) {
			wire_wr_u32(wr, m->u.error.n_indexes);
			for (uint32_t i = 0; i < m->u.error.n_indexes; i++)
				wire_wr_u32(wr, m->u.error.indexes[i]);
		}
		break;
	default: return HDL_EINVAL;
	}
	wire_wr_bytes(wr, m->trailing.p, m->trailing.len);
	return HDL_EOK;
}

int hdl_msg_encode(const hdl_msg_t *m, uint8_t *out, size_t cap, size_t *outlen)
{
	wire_wr_t wr = wire_wr_init(out, cap);
	int ret;
	*outlen = 0;

	wire_wr_bytes(&wr, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", HDL_ENVELOPE_LEN);
	size_t hdr_off = wr.pos;
	wire_wr_u32(&wr, m->hdr.opcode);
	wire_wr_u32(&wr, m->hdr.rcode);
	wire_wr_u32(&wr, m->hdr.opflags);
	wire_wr_u16(&wr, m->hdr.site_serial);
	wire_wr_u8(&wr, m->hdr.recursion);
	wire_wr_u8(&wr, 0);
	wire_wr_u32(&wr, m->hdr.expiration);
	wire_wr_u32(&wr, 0); /* BodyLength, patched */
	size_t body_off = wr.pos;

	if (m->kind != HDL_BODY_NONE && m->hdr.rcode != HDL_RC_RESERVED && m->rd.len > 0)
		wr_digest_block(&wr, m);
	ret = encode_body(&wr, m);
	if (ret != HDL_EOK)
		return ret;
	if (wr.err)
		return wr.err;
	size_t body_len = wr.pos - body_off;
	bool omit_cred = !m->has_cred && m->cred.len == 0 && m->hdr.rcode == HDL_RC_RESERVED &&
	                 (m->hdr.opcode == HDL_OC_LOGIN_ID_SYSTEM || m->hdr.opcode == HDL_OC_LOGIN);
	if (!omit_cred)
		wire_wr_slice(&wr, m->cred);
	if (wr.err)
		return wr.err;
	size_t msg_len = wr.pos - HDL_ENVELOPE_LEN;
	if (msg_len > HDL_MAX_MESSAGE_LEN)
		return HDL_ELIMIT;
	wire_wr_put_u32_at(&wr, hdr_off + 20, (uint32_t)body_len);

	hdl_envelope_t env = m->env;
	env.msg_len = (uint32_t)msg_len;
	hdl_envelope_encode(&env, out);
	*outlen = wr.pos;
	return HDL_EOK;
}

void hdl_version_negotiate(const hdl_envelope_t *req, uint8_t *major, uint8_t *minor)
{
	uint8_t smaj = req->sugg_major, smin = req->sugg_minor;
	if (smaj == 0) {
		/* old peers: no suggestion, the message version is all we know */
		smaj = req->major;
		smin = req->minor;
	}
	if (smaj == 5) {
		/* buggy 2.0 clients say 5.0 */
		smaj = 2;
		smin = 0;
	}
	if (smaj > HDL_PROTO_MAJOR || (smaj == HDL_PROTO_MAJOR && smin > HDL_PROTO_MINOR)) {
		smaj = HDL_PROTO_MAJOR;
		smin = HDL_PROTO_MINOR;
	}
	if (smaj < 2) {
		smaj = 2;
		smin = 0;
	}
	*major = smaj;
	*minor = smin;
}
