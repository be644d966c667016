/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Structured handle value data (HS_SITE, HS_ADMIN, HS_VLIST, HS_PUBKEY) in Handle.Net 9
 *        binary form, server selection by hash, value type classification and filter matching.
 *
 * Decoders borrow slices from their input and take arrays from the arena. Every count is checked
 * against its HDL_MAX_* limit and against the bytes left before anything is allocated.
 */
#include <string.h>

#include <openssl/evp.h>

#include "hdl/error.h"
#include "hdl/values.h"
#include "proto/wire.h"

/* Smallest encodings, used to bound counts by the bytes left before allocating. */
#define ATTR_MIN_LEN   8u  /* STR name + STR value, both empty */
#define SERVER_MIN_LEN 28u /* U32 id + 16 address + BYTES key + U32 iface count */
#define IFACE_LEN      6u  /* U8 type + U8 proto + U32 port */
#define REF_MIN_LEN    8u  /* STR handle + U32 index */

/* ---- HS_SITE ------------------------------------------------------------------------------ */

/*
 * HS_SITE value data (Handle.Net Encoder.decodeSiteInfoRecord):
 *
 *   0       2     3     4        6       7      8
 *   +-------+-----+-----+--------+-------+------+----------------------------+
 *   | DFVer | maj | min | serial | pmask | hash | STR hash filter            |
 *   +-------+-----+-----+--------+-------+------+----------------------------+
 *   | U32 nattrs | nattrs x (STR name, STR value)                           |
 *   +------------+-----------------------------------------------------------+
 *   | U32 nservers | nservers x Server                                       |
 *   +--------------+---------------------------------------------------------+
 *
 *   Server:
 *   +--------+------------------+----------------+-----------+----------------------+
 *   | U32 id | 16-byte address  | BYTES pub key  | U32 nifs  | nifs x (U8 type,     |
 *   |        | (IPv4: 12 x 0+4) |                |           |   U8 proto, U32 port)|
 *   +--------+------------------+----------------+-----------+----------------------+
 *
 * No bytes may follow the last server (HDL_ETRAILING).
 */
static int site_decode_server(wire_rd_t *rd, hdl_arena_t *a, hdl_server_t *sv)
{
	sv->id = wire_rd_u32(rd);
	hdl_slice_t addr = wire_rd_bytes(rd, sizeof(sv->addr));
	if (rd->err)
		return rd->err;
	memcpy(sv->addr, addr.p, sizeof(sv->addr));
	sv->pubkey = wire_rd_lbytes(rd, HDL_MAX_ARRAY_LEN);
	sv->ifaces =
	    wire_rd_array(rd, a, HDL_MAX_IFACES, IFACE_LEN, sizeof(*sv->ifaces), &sv->n_ifaces);
	uint32_t n = sv->n_ifaces;
	for (uint32_t i = 0; i < n; i++) {
		sv->ifaces[i].type = wire_rd_u8(rd);
		sv->ifaces[i].proto = wire_rd_u8(rd);
		sv->ifaces[i].port = wire_rd_u32(rd);
	}
	return rd->err;
}

int hdl_site_decode(const uint8_t *p, size_t len, hdl_arena_t *a, hdl_site_t *out)
{
	int err = HDL_EOK;
	wire_rd_t rd = wire_rd_init(p, len);
	memset(out, 0, sizeof(*out));

	out->data_version = wire_rd_u16(&rd);
	out->proto_major = wire_rd_u8(&rd);
	out->proto_minor = wire_rd_u8(&rd);
	out->serial = wire_rd_u16(&rd);
	out->primary_mask = wire_rd_u8(&rd);
	out->hash_option = wire_rd_u8(&rd);
	out->hash_filter = wire_rd_lbytes(&rd, HDL_MAX_ARRAY_LEN);

	out->attrs =
	    wire_rd_array(&rd, a, HDL_MAX_ATTRS, ATTR_MIN_LEN, sizeof(*out->attrs), &out->n_attrs);
	uint32_t n = out->n_attrs;
	for (uint32_t i = 0; i < n; i++) {
		out->attrs[i].name = wire_rd_lbytes(&rd, HDL_MAX_ARRAY_LEN);
		out->attrs[i].value = wire_rd_lbytes(&rd, HDL_MAX_ARRAY_LEN);
	}

	out->servers = wire_rd_array(&rd, a, HDL_MAX_SERVERS, SERVER_MIN_LEN, sizeof(*out->servers),
	                             &out->n_servers);
	n = out->n_servers;
	if ((err = rd.err) != HDL_EOK)
		goto fail;
	for (uint32_t i = 0; i < n; i++) {
		if ((err = site_decode_server(&rd, a, &out->servers[i])) != HDL_EOK)
			goto fail;
	}
	if (wire_rd_left(&rd) != 0) {
		err = HDL_ETRAILING;
		goto fail;
	}
	return HDL_EOK;
fail:
	return err;
}

int hdl_site_encode(const hdl_site_t *s, uint8_t *out, size_t cap, size_t *outlen)
{
	wire_wr_t wr = wire_wr_init(out, cap);
	if (s->n_attrs > HDL_MAX_ATTRS || s->n_servers > HDL_MAX_SERVERS)
		return HDL_ELIMIT;
	wire_wr_u16(&wr, s->data_version);
	wire_wr_u8(&wr, s->proto_major);
	wire_wr_u8(&wr, s->proto_minor);
	wire_wr_u16(&wr, s->serial);
	wire_wr_u8(&wr, s->primary_mask);
	wire_wr_u8(&wr, s->hash_option);
	wire_wr_slice(&wr, s->hash_filter);
	wire_wr_u32(&wr, s->n_attrs);
	for (uint32_t i = 0; i < s->n_attrs; i++) {
		wire_wr_slice(&wr, s->attrs[i].name);
		wire_wr_slice(&wr, s->attrs[i].value);
	}
	wire_wr_u32(&wr, s->n_servers);
	for (uint32_t i = 0; i < s->n_servers; i++) {
		const hdl_server_t *sv = &s->servers[i];
		if (sv->n_ifaces > HDL_MAX_IFACES)
			return HDL_ELIMIT;
		wire_wr_u32(&wr, sv->id);
		wire_wr_bytes(&wr, sv->addr, sizeof(sv->addr));
		wire_wr_slice(&wr, sv->pubkey);
		wire_wr_u32(&wr, sv->n_ifaces);
		for (uint32_t k = 0; k < sv->n_ifaces; k++) {
			wire_wr_u8(&wr, sv->ifaces[k].type);
			wire_wr_u8(&wr, sv->ifaces[k].proto);
			wire_wr_u32(&wr, sv->ifaces[k].port);
		}
	}
	if (wr.err)
		return wr.err;
	*outlen = wr.pos;
	return HDL_EOK;
}

bool hdl_server_is_ipv4(const hdl_server_t *s)
{
	for (size_t i = 0; i < 12; i++) {
		if (s->addr[i] != 0)
			return false;
	}
	return true;
}

/* The bytes hashed for \p option (Handle.Net SiteInfo.getHandleHash). */
static hdl_slice_t hash_part(hdl_slice_t h, uint8_t option)
{
	static const uint8_t na[] = "0.NA";
	const uint8_t *slash = h.len ? memchr(h.p, '/', h.len) : NULL;
	hdl_slice_t part = h;
	switch (option) {
	case HDL_HASH_BY_NA:
		if (slash == NULL) {
			part.p = na;
			part.len = 4;
		} else {
			part.len = (uint32_t)(slash - h.p);
		}
		break;
	case HDL_HASH_BY_LOCAL:
		if (slash != NULL) {
			part.p = slash + 1;
			part.len = h.len - (uint32_t)(slash - h.p) - 1;
		}
		break;
	default: /* HASH_BY_HANDLE and anything unknown: the whole handle */ break;
	}
	return part;
}

uint32_t hdl_site_server_for(const hdl_site_t *s, hdl_slice_t handle)
{
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	uint8_t buf[256];
	uint32_t n = s->n_servers;
	if (n <= 1)
		return 0;

	hdl_slice_t part = hash_part(handle, s->hash_option);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_md5(), NULL) != 1) {
		EVP_MD_CTX_free(ctx);
		return 0;
	}
	/* ASCII upper-case in chunks, so no allocation is needed for long handles */
	for (uint32_t off = 0; off < part.len;) {
		uint32_t k = part.len - off < sizeof(buf) ? part.len - off : (uint32_t)sizeof(buf);
		for (uint32_t i = 0; i < k; i++) {
			uint8_t c = part.p[off + i];
			buf[i] = (c >= 'a' && c <= 'z') ? (uint8_t)(c - 'a' + 'A') : c;
		}
		EVP_DigestUpdate(ctx, buf, k);
		off += k;
	}
	int ok = EVP_DigestFinal_ex(ctx, md, &mdlen);
	EVP_MD_CTX_free(ctx);
	if (ok != 1 || mdlen != 16)
		return 0;

	/* last 4 bytes as a signed big-endian int32, Java Math.abs, Java % */
	uint32_t u =
	    (uint32_t)md[12] << 24 | (uint32_t)md[13] << 16 | (uint32_t)md[14] << 8 | md[15];
	if (u == 0x80000000u)
		return 0; /* Math.abs(INT_MIN) is negative in Java: an index it cannot use; we pick
		             0 */
	uint32_t mag = (u & 0x80000000u) ? (~u + 1u) : u;
	return mag % n;
}

/* ---- HS_ADMIN ----------------------------------------------------------------------------- */

/*
 * HS_ADMIN value data (Handle.Net Encoder.decodeAdminRecord):
 *
 *   0       2                 6+n        10+n      [12+n]
 *   +-------+-----------------+----------+---------+
 *   | perms | U32 n | handle  | U32 idx  | [00 00] |  legacy (<= 7.3) form: 2 zero bytes more
 *   +-------+-----------------+----------+---------+
 */
int hdl_admin_decode(const uint8_t *p, size_t len, hdl_admin_t *out)
{
	int err = HDL_EOK;
	wire_rd_t rd = wire_rd_init(p, len);
	memset(out, 0, sizeof(*out));
	out->perms = wire_rd_u16(&rd);
	out->handle = wire_rd_lbytes(&rd, HDL_MAX_HANDLE_LEN);
	out->index = wire_rd_u32(&rd);
	if ((err = rd.err) != HDL_EOK)
		goto fail;
	size_t left = wire_rd_left(&rd);
	if (left == 2 && wire_rd_ptr(&rd)[0] == 0 && wire_rd_ptr(&rd)[1] == 0) {
		out->legacy = true;
	} else if (left != 0) {
		err = HDL_ETRAILING;
		goto fail;
	}
	return HDL_EOK;
fail:
	return err;
}

int hdl_admin_encode(const hdl_admin_t *a, uint8_t *out, size_t cap, size_t *outlen)
{
	wire_wr_t wr = wire_wr_init(out, cap);
	if (a->handle.len > HDL_MAX_HANDLE_LEN)
		return HDL_ELIMIT;
	wire_wr_u16(&wr, a->perms);
	wire_wr_slice(&wr, a->handle);
	wire_wr_u32(&wr, a->index);
	if (a->legacy)
		wire_wr_u16(&wr, 0);
	if (wr.err)
		return wr.err;
	*outlen = wr.pos;
	return HDL_EOK;
}

/* ---- HS_VLIST ----------------------------------------------------------------------------- */

/*
 * HS_VLIST value data (Handle.Net Encoder.decodeValueReferenceList):
 *
 *   +-------+--------------------------------------+
 *   | U32 n | n x (STR handle, U32 index)          |
 *   +-------+--------------------------------------+
 *
 * No bytes may follow the last reference.
 */
int hdl_vlist_decode(const uint8_t *p, size_t len, hdl_arena_t *a, hdl_ref_t **out, uint32_t *n)
{
	int err = HDL_EOK;
	wire_rd_t rd = wire_rd_init(p, len);
	*out = NULL;
	*n = 0;
	uint32_t cnt;
	hdl_ref_t *refs = wire_rd_array(&rd, a, HDL_MAX_REFS, REF_MIN_LEN, sizeof(*refs), &cnt);
	for (uint32_t i = 0; i < cnt; i++) {
		refs[i].handle = wire_rd_lbytes(&rd, HDL_MAX_HANDLE_LEN);
		refs[i].index = wire_rd_u32(&rd);
	}
	if ((err = rd.err) != HDL_EOK)
		goto fail;
	if (wire_rd_left(&rd) != 0) {
		err = HDL_ETRAILING;
		goto fail;
	}
	*out = refs;
	*n = cnt;
	return HDL_EOK;
fail:
	return err;
}

int hdl_vlist_encode(const hdl_ref_t *refs, uint32_t n, uint8_t *out, size_t cap, size_t *outlen)
{
	wire_wr_t wr = wire_wr_init(out, cap);
	if (n > HDL_MAX_REFS)
		return HDL_ELIMIT;
	wire_wr_u32(&wr, n);
	for (uint32_t i = 0; i < n; i++) {
		if (refs[i].handle.len > HDL_MAX_HANDLE_LEN)
			return HDL_ELIMIT;
		wire_wr_slice(&wr, refs[i].handle);
		wire_wr_u32(&wr, refs[i].index);
	}
	if (wr.err)
		return wr.err;
	*outlen = wr.pos;
	return HDL_EOK;
}

/* ---- HS_PUBKEY ---------------------------------------------------------------------------- */

static const char PEM_MAGIC[] = "-----BEGIN";

static const struct {
	const char *name;
	hdl_key_kind_t kind;
} key_names[] = {
    {"RSA_PUB_KEY", HDL_KEY_RSA},
    {"DSA_PUB_KEY", HDL_KEY_DSA},
    {"DH_PUB_KEY", HDL_KEY_DH},
    {"SM2_PUB_KEY", HDL_KEY_SM2},
};

static const char *key_name(hdl_key_kind_t kind)
{
	for (size_t i = 0; i < sizeof(key_names) / sizeof(key_names[0]); i++) {
		if (key_names[i].kind == kind)
			return key_names[i].name;
	}
	return NULL;
}

/*
 * HS_PUBKEY value data (Handle.Net Util.getPublicKeyFromBytes; IDIS ValueHelper):
 *
 *   +--------------+-----------+--------------------------------------------------+
 *   | STR key type | U16 flags | key fields by type:                              |
 *   +--------------+-----------+   RSA_PUB_KEY: BYTES e, BYTES n [, U32 0]        |
 *                              |   DSA_PUB_KEY: BYTES q, p, g, y                  |
 *                              |   DH_PUB_KEY:  BYTES y, p, g                     |
 *                              |   SM2_PUB_KEY: BYTES PEM-or-DER key              |
 *                              +--------------------------------------------------+
 *
 *   IDIS PEM form: the data itself is PEM text starting with "-----BEGIN".
 *
 * Handle.Net writes 4 zero bytes after the RSA modulus and reads only the fields it needs, so
 * bytes after the key fields are ignored. An unknown key type decodes as HDL_KEY_UNKNOWN with the
 * bytes after the flags in \c pem.
 */
int hdl_pubkey_decode(const uint8_t *p, size_t len, hdl_pubkey_t *out)
{
	int err = HDL_EOK;
	wire_rd_t rd = wire_rd_init(p, len);
	memset(out, 0, sizeof(*out));

	if (len >= sizeof(PEM_MAGIC) - 1 && memcmp(p, PEM_MAGIC, sizeof(PEM_MAGIC) - 1) == 0) {
		if (len > HDL_MAX_ARRAY_LEN)
			return HDL_ELIMIT;
		out->kind = HDL_KEY_PEM;
		out->pem.p = p;
		out->pem.len = (uint32_t)len;
		return HDL_EOK;
	}

	out->key_type = wire_rd_lbytes(&rd, HDL_MAX_TYPE_LEN);
	out->flags = wire_rd_u16(&rd);
	if ((err = rd.err) != HDL_EOK)
		goto fail;
	out->kind = HDL_KEY_UNKNOWN;
	for (size_t i = 0; i < sizeof(key_names) / sizeof(key_names[0]); i++) {
		size_t nl = strlen(key_names[i].name);
		if (out->key_type.len == nl && memcmp(out->key_type.p, key_names[i].name, nl) == 0)
			out->kind = key_names[i].kind;
	}
	switch (out->kind) {
	case HDL_KEY_RSA:
		out->e = wire_rd_lbytes(&rd, HDL_MAX_ARRAY_LEN);
		out->n = wire_rd_lbytes(&rd, HDL_MAX_ARRAY_LEN);
		break;
	case HDL_KEY_DSA:
		out->q = wire_rd_lbytes(&rd, HDL_MAX_ARRAY_LEN);
		out->p = wire_rd_lbytes(&rd, HDL_MAX_ARRAY_LEN);
		out->g = wire_rd_lbytes(&rd, HDL_MAX_ARRAY_LEN);
		out->y = wire_rd_lbytes(&rd, HDL_MAX_ARRAY_LEN);
		break;
	case HDL_KEY_DH:
		out->y = wire_rd_lbytes(&rd, HDL_MAX_ARRAY_LEN);
		out->p = wire_rd_lbytes(&rd, HDL_MAX_ARRAY_LEN);
		out->g = wire_rd_lbytes(&rd, HDL_MAX_ARRAY_LEN);
		break;
	case HDL_KEY_SM2: out->pem = wire_rd_lbytes(&rd, HDL_MAX_ARRAY_LEN); break;
	default: out->pem = wire_rd_bytes(&rd, wire_rd_left(&rd)); break;
	}
	if ((err = rd.err) != HDL_EOK)
		goto fail;
	return HDL_EOK;
fail:
	return err;
}

int hdl_pubkey_encode(const hdl_pubkey_t *k, uint8_t *out, size_t cap, size_t *outlen)
{
	wire_wr_t wr = wire_wr_init(out, cap);
	if (k->kind == HDL_KEY_PEM) {
		wire_wr_bytes(&wr, k->pem.p, k->pem.len);
		goto done;
	}
	hdl_slice_t type = k->key_type;
	const char *name = key_name(k->kind);
	if (name != NULL) {
		type.p = (const uint8_t *)name;
		type.len = (uint32_t)strlen(name);
	}
	if (type.len > HDL_MAX_TYPE_LEN)
		return HDL_ELIMIT;
	wire_wr_slice(&wr, type);
	wire_wr_u16(&wr, k->flags);
	switch (k->kind) {
	case HDL_KEY_RSA:
		wire_wr_slice(&wr, k->e);
		wire_wr_slice(&wr, k->n);
		wire_wr_u32(&wr, 0); /* as Handle.Net writes it */
		break;
	case HDL_KEY_DSA:
		wire_wr_slice(&wr, k->q);
		wire_wr_slice(&wr, k->p);
		wire_wr_slice(&wr, k->g);
		wire_wr_slice(&wr, k->y);
		break;
	case HDL_KEY_DH:
		wire_wr_slice(&wr, k->y);
		wire_wr_slice(&wr, k->p);
		wire_wr_slice(&wr, k->g);
		break;
	case HDL_KEY_SM2: wire_wr_slice(&wr, k->pem); break;
	default: wire_wr_bytes(&wr, k->pem.p, k->pem.len); break;
	}
done:
	if (wr.err)
		return wr.err;
	*outlen = wr.pos;
	return HDL_EOK;
}

/* ---- handle-valued data, types ------------------------------------------------------------- */

int hdl_handle_data_check(const uint8_t *p, size_t len)
{
	return hdl_name_check(p, len);
}

static uint8_t ascii_upper(uint8_t c)
{
	return (c >= 'a' && c <= 'z') ? (uint8_t)(c - 'a' + 'A') : c;
}

static bool prefix_nocase(const uint8_t *a, const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (ascii_upper(a[i]) != ascii_upper(b[i]))
			return false;
	}
	return true;
}

static const struct {
	const char *name;
	hdl_vtype_t vt;
} vtypes[] = {
    {"HS_SITE", HDL_VT_SITE},        {"HS_SITE.6", HDL_VT_SITE},   {"HS_SITE.PREFIX", HDL_VT_SITE},
    {"HS_NA_DELEGATE", HDL_VT_SITE}, {"HS_ADMIN", HDL_VT_ADMIN},   {"HS_VLIST", HDL_VT_VLIST},
    {"HS_PUBKEY", HDL_VT_PUBKEY},    {"HS_SECKEY", HDL_VT_SECKEY}, {"HS_SERV", HDL_VT_SERV},
    {"HS_SERV.PREFIX", HDL_VT_SERV}, {"HS_ALIAS", HDL_VT_ALIAS},
};

hdl_vtype_t hdl_vtype_of(hdl_slice_t type)
{
	for (size_t i = 0; i < sizeof(vtypes) / sizeof(vtypes[0]); i++) {
		size_t nl = strlen(vtypes[i].name);
		if (type.len == nl && prefix_nocase(type.p, (const uint8_t *)vtypes[i].name, nl))
			return vtypes[i].vt;
	}
	return HDL_VT_OTHER;
}

bool hdl_type_matches(hdl_slice_t type, hdl_slice_t filter)
{
	if (filter.len > 0 && filter.p[filter.len - 1] == '.') {
		/* "URL." matches "URL" and "URL.<anything>" */
		uint32_t base = filter.len - 1;
		if (type.len == base)
			return prefix_nocase(type.p, filter.p, base);
		if (type.len > base)
			return prefix_nocase(type.p, filter.p, filter.len);
		return false;
	}
	return type.len == filter.len && prefix_nocase(type.p, filter.p, type.len);
}
