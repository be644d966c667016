/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Field-by-field comparison of decoded Handle messages, for round-trip checks in the fuzz
 *        targets (fuzz_msg, fuzz_body, fuzz_udp) and the unit tests (test_msg, test_captures).
 *
 * Header-only (static functions) so each fuzz target stays one .c file plus this header.
 * Compares what the encoder reproduces: everything except the computed lengths (MessageLength,
 * BodyLength), the decoder-only views (signed_part, body) and has_cred (the encoder always writes
 * a CredentialLength, except for OC 2000/2001 requests without one). Trailing body bytes are
 * written back by the encoder, so they are compared.
 */
#ifndef HDL_TESTS_FUZZ_CODEC_CMP_H
#define HDL_TESTS_FUZZ_CODEC_CMP_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "hdl/msg.h"

static inline bool cmp_slice(hdl_slice_t a, hdl_slice_t b)
{
	if (a.len != b.len)
		return false;
	return a.len == 0 || memcmp(a.p, b.p, a.len) == 0;
}

static inline bool cmp_u32s(uint32_t n, const uint32_t *a, const uint32_t *b)
{
	return n == 0 || memcmp(a, b, (size_t)n * sizeof(*a)) == 0;
}

static inline bool cmp_slices(uint32_t n, const hdl_slice_t *a, const hdl_slice_t *b)
{
	for (uint32_t i = 0; i < n; i++)
		if (!cmp_slice(a[i], b[i]))
			return false;
	return true;
}

static inline bool cmp_value(const hdl_value_t *a, const hdl_value_t *b)
{
	if (a->index != b->index || a->timestamp != b->timestamp || a->ttl_type != b->ttl_type ||
	    a->ttl != b->ttl || a->perms != b->perms || a->n_refs != b->n_refs)
		return false;
	if (!cmp_slice(a->type, b->type) || !cmp_slice(a->data, b->data))
		return false;
	for (uint32_t i = 0; i < a->n_refs; i++)
		if (a->refs[i].index != b->refs[i].index ||
		    !cmp_slice(a->refs[i].handle, b->refs[i].handle))
			return false;
	return true;
}

static inline bool cmp_values(uint32_t n, const hdl_value_t *a, const hdl_value_t *b)
{
	for (uint32_t i = 0; i < n; i++)
		if (!cmp_value(&a[i], &b[i]))
			return false;
	return true;
}

/** \brief True when the bodies of \p a and \p b (same kind) hold the same fields. */
static inline bool cmp_body(const hdl_msg_t *a, const hdl_msg_t *b)
{
	if (a->kind != b->kind)
		return false;
	switch (a->kind) {
	case HDL_BODY_NONE:
	case HDL_BODY_EMPTY:
		return true;
	case HDL_BODY_RESOLVE:
		return cmp_slice(a->u.resolve.handle, b->u.resolve.handle) &&
		       a->u.resolve.n_indexes == b->u.resolve.n_indexes &&
		       cmp_u32s(a->u.resolve.n_indexes, a->u.resolve.indexes, b->u.resolve.indexes) &&
		       a->u.resolve.n_types == b->u.resolve.n_types &&
		       cmp_slices(a->u.resolve.n_types, a->u.resolve.types, b->u.resolve.types);
	case HDL_BODY_VALUES:
		return cmp_slice(a->u.values.handle, b->u.values.handle) &&
		       a->u.values.n_values == b->u.values.n_values &&
		       cmp_values(a->u.values.n_values, a->u.values.values, b->u.values.values);
	case HDL_BODY_HANDLE:
		return cmp_slice(a->u.handle, b->u.handle);
	case HDL_BODY_INDEXES:
		return cmp_slice(a->u.indexes.handle, b->u.indexes.handle) &&
		       a->u.indexes.n_indexes == b->u.indexes.n_indexes &&
		       cmp_u32s(a->u.indexes.n_indexes, a->u.indexes.indexes, b->u.indexes.indexes);
	case HDL_BODY_LIST:
		return a->u.list.n_handles == b->u.list.n_handles &&
		       cmp_slices(a->u.list.n_handles, a->u.list.handles, b->u.list.handles);
	case HDL_BODY_CHAL_ANSWER:
		return cmp_slice(a->u.answer.auth_type, b->u.answer.auth_type) &&
		       cmp_slice(a->u.answer.id_handle, b->u.answer.id_handle) &&
		       a->u.answer.id_index == b->u.answer.id_index &&
		       cmp_slice(a->u.answer.signed_response, b->u.answer.signed_response);
	case HDL_BODY_VERIFY:
		return cmp_slice(a->u.verify.id_handle, b->u.verify.id_handle) &&
		       a->u.verify.id_index == b->u.verify.id_index &&
		       cmp_slice(a->u.verify.nonce, b->u.verify.nonce) &&
		       a->u.verify.digest_alg == b->u.verify.digest_alg &&
		       cmp_slice(a->u.verify.digest, b->u.verify.digest) &&
		       cmp_slice(a->u.verify.signed_response, b->u.verify.signed_response);
	case HDL_BODY_VERIFY_RESP:
		return a->u.verify_ok == b->u.verify_ok;
	case HDL_BODY_SESSION_REQ:
		return a->u.session.mode == b->u.session.mode &&
		       a->u.session.timeout == b->u.session.timeout &&
		       cmp_slice(a->u.session.id_handle, b->u.session.id_handle) &&
		       a->u.session.id_index == b->u.session.id_index &&
		       cmp_slice(a->u.session.pubkey, b->u.session.pubkey) &&
		       cmp_slice(a->u.session.key_handle, b->u.session.key_handle) &&
		       a->u.session.key_index == b->u.session.key_index;
	case HDL_BODY_SESSION_RESP:
		return a->u.session_resp.mode == b->u.session_resp.mode &&
		       cmp_slice(a->u.session_resp.data, b->u.session_resp.data);
	case HDL_BODY_BYTES:
		return cmp_slice(a->u.bytes, b->u.bytes);
	case HDL_BODY_LOGIN:
		return cmp_slice(a->u.login.id_handle, b->u.login.id_handle) &&
		       a->u.login.id_index == b->u.login.id_index;
	case HDL_BODY_SITEINFO:
		return cmp_slice(a->u.site, b->u.site);
	case HDL_BODY_CHALLENGE:
		return cmp_slice(a->u.challenge.nonce, b->u.challenge.nonce) &&
		       cmp_slice(a->u.challenge.old_digest, b->u.challenge.old_digest);
	case HDL_BODY_REFERRAL:
		return cmp_slice(a->u.referral.handle, b->u.referral.handle) &&
		       a->u.referral.n_values == b->u.referral.n_values &&
		       cmp_values(a->u.referral.n_values, a->u.referral.values, b->u.referral.values);
	case HDL_BODY_ERROR:
		return cmp_slice(a->u.error.message, b->u.error.message) &&
		       a->u.error.n_indexes == b->u.error.n_indexes &&
		       cmp_u32s(a->u.error.n_indexes, a->u.error.indexes, b->u.error.indexes);
	}
	return false;
}

/** \brief True when \p a and \p b agree on every field the encoder writes. */
static inline bool cmp_msg(const hdl_msg_t *a, const hdl_msg_t *b)
{
	const hdl_envelope_t *ea = &a->env, *eb = &b->env;
	if (ea->major != eb->major || ea->minor != eb->minor || ea->flags != eb->flags ||
	    ea->sugg_major != eb->sugg_major || ea->sugg_minor != eb->sugg_minor ||
	    ea->session_id != eb->session_id || ea->request_id != eb->request_id ||
	    ea->seq != eb->seq)
		return false;
	const hdl_header_t *ha = &a->hdr, *hb = &b->hdr;
	if (ha->opcode != hb->opcode || ha->rcode != hb->rcode || ha->opflags != hb->opflags ||
	    ha->site_serial != hb->site_serial || ha->recursion != hb->recursion ||
	    ha->expiration != hb->expiration)
		return false;
	if (a->rd.len != b->rd.len || (a->rd.len && a->rd_alg != b->rd_alg) ||
	    !cmp_slice(a->rd, b->rd))
		return false;
	if (!cmp_slice(a->cred, b->cred) || !cmp_slice(a->trailing, b->trailing))
		return false;
	return cmp_body(a, b);
}

#endif /* HDL_TESTS_FUZZ_CODEC_CMP_H */
