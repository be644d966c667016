/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Audit record codec and helpers (see audit.h for the layout).
 */
#include "node/store/audit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hdl/error.h"
#include "proto/wire.h"

#define AUDIT_HAS_BEFORE 0x1u
#define AUDIT_HAS_AFTER  0x2u

static size_t addr_len(uint8_t family)
{
	return family == 4 ? 4 : family == 6 ? 16 : 0;
}

size_t audit_size(const audit_rec_t *r)
{
	if (r->handle.len > HDL_MAX_HANDLE_LEN || r->id_handle.len > HDL_MAX_HANDLE_LEN ||
	    r->message.len > AUDIT_MESSAGE_MAX || r->n_indexes > HDL_MAX_VALUES ||
	    (r->n_indexes > 0 && r->indexes == NULL) ||
	    (r->peer_family != 0 && r->peer_family != 4 && r->peer_family != 6))
		return 0;
	size_t n = 1 + 4 + 2 + 1 + 4 + 4;
	n += 4 + (size_t)r->handle.len + 4 + (size_t)r->id_handle.len + 4;
	n += 1 + (r->peer_family ? addr_len(r->peer_family) + 2 : 0);
	n += 4 + 4 * (size_t)r->n_indexes;
	n += 1 + (r->has_before ? AUDIT_DIGEST_LEN : 0) + (r->has_after ? AUDIT_DIGEST_LEN : 0);
	n += 4 + (size_t)r->message.len + 8;
	return n;
}

int audit_encode(const audit_rec_t *r, uint8_t *out, size_t cap, size_t *outlen)
{
	*outlen = 0;
	size_t need = audit_size(r);
	if (need == 0)
		return HDL_ELIMIT;
	if (need > cap)
		return HDL_ESPACE;
	wire_wr_t wr = wire_wr_init(out, cap);
	wire_wr_u8(&wr, AUDIT_VERSION);
	wire_wr_u32(&wr, r->time);
	wire_wr_u16(&wr, r->op);
	wire_wr_u8(&wr, r->transport);
	wire_wr_u32(&wr, r->rcode);
	wire_wr_u32(&wr, r->flags);
	wire_wr_slice(&wr, r->handle);
	wire_wr_slice(&wr, r->id_handle);
	wire_wr_u32(&wr, r->id_index);
	wire_wr_u8(&wr, r->peer_family);
	if (r->peer_family) {
		wire_wr_bytes(&wr, r->peer_addr, addr_len(r->peer_family));
		wire_wr_u16(&wr, r->peer_port);
	}
	wire_wr_u32(&wr, r->n_indexes);
	for (uint32_t i = 0; i < r->n_indexes; i++)
		wire_wr_u32(&wr, r->indexes[i]);
	wire_wr_u8(&wr, (uint8_t)((r->has_before ? AUDIT_HAS_BEFORE : 0) |
	                          (r->has_after ? AUDIT_HAS_AFTER : 0)));
	if (r->has_before)
		wire_wr_bytes(&wr, r->before, AUDIT_DIGEST_LEN);
	if (r->has_after)
		wire_wr_bytes(&wr, r->after, AUDIT_DIGEST_LEN);
	wire_wr_slice(&wr, r->message);
	wire_wr_u32(&wr, (uint32_t)(r->count >> 32));
	wire_wr_u32(&wr, (uint32_t)r->count);
	if (wr.err)
		return wr.err;
	*outlen = wr.pos;
	return HDL_EOK;
}

int audit_decode(const uint8_t *p, size_t len, hdl_arena_t *a, audit_rec_t *out)
{
	memset(out, 0, sizeof(*out));
	wire_rd_t rd = wire_rd_init(p, len);
	uint8_t version = wire_rd_u8(&rd);
	if (!rd.err && version != AUDIT_VERSION)
		return HDL_EVERSION;
	out->time = wire_rd_u32(&rd);
	out->op = wire_rd_u16(&rd);
	out->transport = wire_rd_u8(&rd);
	out->rcode = wire_rd_u32(&rd);
	out->flags = wire_rd_u32(&rd);
	out->handle = wire_rd_lbytes(&rd, HDL_MAX_HANDLE_LEN);
	out->id_handle = wire_rd_lbytes(&rd, HDL_MAX_HANDLE_LEN);
	out->id_index = wire_rd_u32(&rd);
	out->peer_family = wire_rd_u8(&rd);
	if (rd.err)
		return rd.err;
	if (out->peer_family != 0 && out->peer_family != 4 && out->peer_family != 6)
		return HDL_EMALF;
	if (out->peer_family) {
		hdl_slice_t ad = wire_rd_bytes(&rd, addr_len(out->peer_family));
		if (!rd.err)
			memcpy(out->peer_addr, ad.p, ad.len);
		out->peer_port = wire_rd_u16(&rd);
	}
	uint32_t n = wire_rd_u32(&rd);
	if (rd.err)
		return rd.err;
	if (n > HDL_MAX_VALUES)
		return HDL_ELIMIT;
	if (!wire_rd_need(&rd, 4 * (size_t)n))
		return rd.err;
	if (n > 0) {
		uint32_t *idx = hdl_arena_alloc(a, sizeof(uint32_t) * n);
		if (idx == NULL)
			return HDL_ENOMEM;
		for (uint32_t i = 0; i < n; i++)
			idx[i] = wire_rd_u32(&rd);
		out->indexes = idx;
	}
	out->n_indexes = n;
	uint8_t mask = wire_rd_u8(&rd);
	if (!rd.err && (mask & ~(AUDIT_HAS_BEFORE | AUDIT_HAS_AFTER)) != 0)
		return HDL_EMALF;
	out->has_before = (mask & AUDIT_HAS_BEFORE) != 0;
	out->has_after = (mask & AUDIT_HAS_AFTER) != 0;
	if (out->has_before) {
		hdl_slice_t d = wire_rd_bytes(&rd, AUDIT_DIGEST_LEN);
		if (!rd.err)
			memcpy(out->before, d.p, AUDIT_DIGEST_LEN);
	}
	if (out->has_after) {
		hdl_slice_t d = wire_rd_bytes(&rd, AUDIT_DIGEST_LEN);
		if (!rd.err)
			memcpy(out->after, d.p, AUDIT_DIGEST_LEN);
	}
	out->message = wire_rd_lbytes(&rd, AUDIT_MESSAGE_MAX);
	uint64_t hi = wire_rd_u32(&rd);
	out->count = hi << 32 | wire_rd_u32(&rd);
	if (rd.err)
		return rd.err;
	if (wire_rd_left(&rd) != 0)
		return HDL_ETRAILING;
	return HDL_EOK;
}

void audit_digest(hdl_slice_t vals, uint8_t out[AUDIT_DIGEST_LEN])
{
	unsigned int n = 0;
	if (EVP_Digest(vals.p ? vals.p : (const uint8_t *)"", vals.len, out, &n, EVP_sha256(),
	               NULL) != 1 ||
	    n != AUDIT_DIGEST_LEN)
		memset(out, 0, AUDIT_DIGEST_LEN);
}

void audit_set_peer(audit_rec_t *r, const struct sockaddr_storage *ss, socklen_t len)
{
	r->peer_family = 0;
	r->peer_port = 0;
	memset(r->peer_addr, 0, sizeof(r->peer_addr));
	if (ss == NULL)
		return;
	if (ss->ss_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *a4 = (const struct sockaddr_in *)ss;
		r->peer_family = 4;
		memcpy(r->peer_addr, &a4->sin_addr, 4);
		r->peer_port = ntohs(a4->sin_port);
	} else if (ss->ss_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)ss;
		r->peer_family = 6;
		memcpy(r->peer_addr, &a6->sin6_addr, 16);
		r->peer_port = ntohs(a6->sin6_port);
	}
}

char *audit_peer_str(const audit_rec_t *r, char *buf, size_t cap)
{
	char host[INET6_ADDRSTRLEN];
	if (cap == 0)
		return buf;
	if (r->peer_family == 4 && inet_ntop(AF_INET, r->peer_addr, host, sizeof(host)))
		snprintf(buf, cap, "%s:%u", host, (unsigned)r->peer_port);
	else if (r->peer_family == 6 && inet_ntop(AF_INET6, r->peer_addr, host, sizeof(host)))
		snprintf(buf, cap, "[%s]:%u", host, (unsigned)r->peer_port);
	else
		snprintf(buf, cap, "-");
	return buf;
}

const char *audit_op_name(uint16_t op)
{
	switch (op) {
	case AUDIT_OP_IMPORT: return "IMPORT";
	case AUDIT_OP_CREATE: return "CREATE_HANDLE";
	case AUDIT_OP_DELETE: return "DELETE_HANDLE";
	case AUDIT_OP_ADD: return "ADD_VALUE";
	case AUDIT_OP_REMOVE: return "REMOVE_VALUE";
	case AUDIT_OP_MODIFY: return "MODIFY_VALUE";
	case AUDIT_OP_HOME: return "HOME_NA";
	case AUDIT_OP_UNHOME: return "UNHOME_NA";
	case AUDIT_OP_TEMPLATE_PUT: return "TEMPLATE_PUT";
	case AUDIT_OP_TEMPLATE_DEL: return "TEMPLATE_DELETE";
	default: return "UNKNOWN";
	}
}

const char *audit_transport_name(uint8_t t)
{
	static const char *const names[] = {"-", "udp", "tcp", "http", "https", "tls", "local"};
	return t < sizeof(names) / sizeof(names[0]) ? names[t] : "-";
}

int audit_write(store_batch_t *b, const audit_rec_t *r)
{
	uint8_t stack[2048];
	uint8_t *buf = stack;
	size_t need = audit_size(r), len = 0;
	if (need == 0)
		return HDL_ELIMIT;
	if (need > STORE_AUDIT_REC_MAX)
		return HDL_ELIMIT;
	if (need > sizeof(stack) && (buf = malloc(need)) == NULL)
		return HDL_ENOMEM;
	int ret = audit_encode(r, buf, need, &len);
	if (ret == HDL_EOK) {
		hdl_slice_t rec = {buf, (uint32_t)len};
		ret = store_batch_audit(b, r->time, r->handle, rec);
	}
	if (buf != stack)
		free(buf);
	return ret;
}
