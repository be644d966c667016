/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief `idnode decode FILE`: pretty-print Handle messages given as an `xxd` hex dump, plain hex
 *        or raw bytes, alone, one after another, or inside HTTP requests/responses (the native
 *        tunnel's POST, or REST transcripts whose bodies are JSON text).
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "hdl/error.h"
#include "hdl/msg.h"
#include "hdl/values.h"
#include "proto/wire.h"
#include "tools/idnode/cmds.h"

#define DECODE_MAX_INPUT (64u << 20) /**< bytes read from the file */
#define DECODE_HEX_SHOW 64u          /**< bytes of a blob shown in hex before "..." */
#define DECODE_MAX_HTTP_HEAD 65536u

/* ---- input ------------------------------------------------------------------------------- */

static int read_all(const char *path, uint8_t **out, size_t *outlen)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0;
	int ret = IDNODE_EXIT_IO;

	if (!f) {
		fprintf(stderr, "idnode decode: cannot open '%s'\n", path);
		return IDNODE_EXIT_IO;
	}
	for (;;) {
		size_t n;
		if (len == cap) {
			uint8_t *nb;
			if (cap >= DECODE_MAX_INPUT) {
				fprintf(stderr, "idnode decode: input over %u bytes\n", DECODE_MAX_INPUT);
				ret = IDNODE_EXIT_DATA;
				goto fail;
			}
			cap = cap ? cap * 2 : 65536;
			nb = realloc(buf, cap + 1);
			if (!nb)
				goto fail;
			buf = nb;
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0) {
			if (ferror(f)) {
				fprintf(stderr, "idnode decode: read error on '%s'\n", path);
				goto fail;
			}
			break;
		}
	}
	if (!buf) {
		buf = malloc(1);
		if (!buf)
			goto fail;
	}
	buf[len] = 0;
	*out = buf;
	*outlen = len;
	buf = NULL;
	ret = IDNODE_EXIT_OK;
fail:
	free(buf);
	if (f != stdin)
		fclose(f);
	return ret;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/** \brief True when every non-empty line starts like "0000abcd: ". */
static bool looks_xxd(const uint8_t *p, size_t len)
{
	size_t i = 0, lines = 0;

	while (i < len) {
		size_t j = i, nhex = 0;
		while (j < len && p[j] != '\n')
			j++;
		if (j > i && !(j == i + 1 && p[i] == '\r')) {
			while (i + nhex < j && hexval(p[i + nhex]) >= 0)
				nhex++;
			if (nhex < 4 || i + nhex + 1 >= j || p[i + nhex] != ':' || p[i + nhex + 1] != ' ')
				return false;
			lines++;
		}
		i = j + 1;
	}
	return lines > 0;
}

/**
 * \brief Convert an xxd dump (any -g grouping; the ASCII column after two spaces is ignored).
 * \retval 0 ok, -1 malformed
 */
static int parse_xxd(const uint8_t *p, size_t len, uint8_t *out, size_t *outlen)
{
	size_t i = 0, o = 0;

	while (i < len) {
		size_t j = i;
		while (j < len && p[j] != '\n')
			j++;
		size_t k = i;
		while (k < j && p[k] != ':')
			k++;
		if (k < j) {
			k++; /* past ':' */
			if (k < j && p[k] == ' ')
				k++;
			/* groups of hex digit pairs separated by one space; two spaces end the data */
			while (k < j) {
				if (p[k] == ' ') {
					if (k + 1 >= j || p[k + 1] == ' ' || p[k + 1] == '\r')
						break;
					k++;
					continue;
				}
				if (p[k] == '\r')
					break;
				if (k + 1 >= j || hexval(p[k]) < 0 || hexval(p[k + 1]) < 0)
					return -1;
				out[o++] = (uint8_t)(hexval(p[k]) << 4 | hexval(p[k + 1]));
				k += 2;
			}
		}
		i = j + 1;
	}
	*outlen = o;
	return 0;
}

/** \brief Plain hex: only hex digits and white space, an even number of digits. */
static bool parse_plain_hex(const uint8_t *p, size_t len, uint8_t *out, size_t *outlen)
{
	size_t o = 0;
	int hi = -1;

	for (size_t i = 0; i < len; i++) {
		int v = hexval(p[i]);
		if (v < 0) {
			if (isspace(p[i]))
				continue;
			return false;
		}
		if (hi < 0) {
			hi = v;
		} else {
			out[o++] = (uint8_t)(hi << 4 | v);
			hi = -1;
		}
	}
	if (hi >= 0 || o == 0)
		return false;
	*outlen = o;
	return true;
}

/* ---- printing helpers -------------------------------------------------------------------- */

static void put_hex(const uint8_t *p, size_t n, size_t max)
{
	size_t show = n > max ? max : n;
	for (size_t i = 0; i < show; i++)
		printf("%02x", p[i]);
	if (show < n)
		printf("...");
}

static void put_str(hdl_slice_t s)
{
	putchar('"');
	for (uint32_t i = 0; i < s.len; i++) {
		uint8_t c = s.p[i];
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20 || c == 0x7F)
			printf("\\x%02x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void put_time(uint32_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;
	char buf[32];

	if (gmtime_r(&tt, &tm) && strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm) > 0)
		printf("%" PRIu32 " (%s)", t, buf);
	else
		printf("%" PRIu32, t);
}

static void put_opflags(uint32_t f)
{
	static const struct {
		uint32_t bit;
		const char *name;
	} names[] = {
		{HDL_OF_AT, "AT"},   {HDL_OF_CT, "CT"},         {HDL_OF_ENC, "ENC"},
		{HDL_OF_REC, "REC"}, {HDL_OF_CA, "CA"},         {HDL_OF_CN, "CN"},
		{HDL_OF_KC, "KC"},   {HDL_OF_PO, "PO"},         {HDL_OF_RD, "RD"},
		{HDL_OF_OVRW, "OVRW"}, {HDL_OF_MINT, "MINT"}, {HDL_OF_DNRF, "DNRF"},
	};
	uint32_t rest = f;
	bool any = false;

	printf("0x%08" PRIx32 " ", f);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (f & names[i].bit) {
			printf("%s%s", any ? "|" : "", names[i].name);
			any = true;
			rest &= ~names[i].bit;
		}
	}
	if (rest)
		printf("%s0x%08" PRIx32, any ? "|" : "", rest);
	else if (!any)
		printf("(none)");
}

static const char *digest_name(uint8_t alg)
{
	switch (alg) {
	case HDL_DIGEST_OLD_MD5: return "MD5 (old format)";
	case HDL_DIGEST_MD5: return "MD5";
	case HDL_DIGEST_SHA1: return "SHA-1";
	case HDL_DIGEST_SHA256: return "SHA-256";
	default: return "unknown";
	}
}

static void put_u32_list(const uint32_t *v, uint32_t n)
{
	printf("[");
	for (uint32_t i = 0; i < n; i++)
		printf("%s%" PRIu32, i ? "," : "", v[i]);
	printf("] (%" PRIu32 ")", n);
}

static void put_values(const hdl_value_t *v, uint32_t n)
{
	printf("  values: %" PRIu32 "\n", n);
	for (uint32_t i = 0; i < n; i++) {
		printf("    ");
		idnode_print_value(&v[i]);
		printf("      timestamp: ");
		put_time(v[i].timestamp);
		printf(", data length %" PRIu32 "\n", v[i].data.len);
	}
}

/* ---- structured body fields -------------------------------------------------------------- */

static const char *seckey_alg_name(uint8_t alg)
{
	switch (alg) {
	case 0x01: return "MD5(K|D|K)";
	case 0x02: return "SHA1(K|D|K)";
	case 0x03: return "SHA256(K|D|K)";
	case 0x12: return "HMAC-SHA1";
	case 0x13: return "HMAC-SHA256";
	case 0x22: return "PBKDF2-HMAC-SHA1";
	default: return "unknown";
	}
}

/** \brief signedResponse of an OC 200 answer, by auth type. \retval 0 ok, -1 malformed */
static int put_signed_response(hdl_slice_t auth, hdl_slice_t sr)
{
	wire_rd_t rd = wire_rd_init(sr.p, sr.len);

	printf("  signed response: %" PRIu32 " bytes\n", sr.len);
	if (hdl_slice_eq_nocase(auth, hdl_slice_str("HS_SECKEY"))) {
		uint8_t alg;

		if (sr.len == 16) {
			printf("    form: bare MD5 (protocol 2.0)\n    mac: ");
			put_hex(sr.p, sr.len, DECODE_HEX_SHOW);
			printf("\n");
			return 0;
		}
		alg = wire_rd_u8(&rd);
		printf("    algorithm: 0x%02x %s\n", alg, seckey_alg_name(alg));
		if (alg == 0x22) {
			hdl_slice_t salt = wire_rd_lbytes(&rd, HDL_MAX_ARRAY_LEN);
			uint32_t iter = wire_rd_u32(&rd);
			uint32_t bits = wire_rd_u32(&rd);
			hdl_slice_t mac = wire_rd_lbytes(&rd, HDL_MAX_ARRAY_LEN);
			if (rd.err)
				goto malformed;
			printf("    salt: %" PRIu32 " bytes ", salt.len);
			put_hex(salt.p, salt.len, DECODE_HEX_SHOW);
			printf("\n    iterations: %" PRIu32 "\n    key bits: %" PRIu32 "\n", iter, bits);
			printf("    mac: %" PRIu32 " bytes ", mac.len);
			put_hex(mac.p, mac.len, DECODE_HEX_SHOW);
			printf("\n");
		} else {
			hdl_slice_t mac = wire_rd_bytes(&rd, wire_rd_left(&rd));
			if (rd.err)
				goto malformed;
			printf("    mac: %" PRIu32 " bytes ", mac.len);
			put_hex(mac.p, mac.len, DECODE_HEX_SHOW);
			printf("\n");
		}
	} else if (hdl_slice_eq_nocase(auth, hdl_slice_str("HS_PUBKEY"))) {
		hdl_slice_t hash = wire_rd_lbytes(&rd, HDL_MAX_ARRAY_LEN);
		hdl_slice_t sig = wire_rd_lbytes(&rd, HDL_MAX_ARRAY_LEN);
		if (rd.err)
			goto malformed;
		printf("    hash algorithm: ");
		put_str(hash);
		printf("\n    signature length: %" PRIu32 "\n    signature: ", sig.len);
		put_hex(sig.p, sig.len, DECODE_HEX_SHOW);
		printf("\n");
	} else {
		printf("    bytes: ");
		put_hex(sr.p, sr.len, DECODE_HEX_SHOW);
		printf("\n");
		return 0;
	}
	if (wire_rd_left(&rd))
		printf("    (%zu extra bytes)\n", wire_rd_left(&rd));
	return 0;
malformed:
	printf("    malformed signed response (%s)\n", hdl_errname(rd.err));
	return -1;
}

static const char *session_mode_name(uint16_t mode)
{
	switch (mode) {
	case 0: return "none";
	case 1: return "client cipher (RSA public key)";
	case 2: return "server cipher (server RSA key)";
	case 3: return "key from handle";
	case 4: return "Diffie-Hellman";
	default: return "unknown";
	}
}

static void put_key_summary(hdl_slice_t key)
{
	hdl_pubkey_t k;

	printf("  public key: %" PRIu32 " bytes", key.len);
	if (key.len && hdl_pubkey_decode(key.p, key.len, &k) == HDL_EOK) {
		if (k.kind == HDL_KEY_PEM) {
			printf(" PEM");
		} else {
			printf(" ");
			put_str(k.key_type);
		}
		if (k.kind == HDL_KEY_DH)
			printf(" (p %" PRIu32 " bytes, g %" PRIu32 " bytes, y %" PRIu32 " bytes)", k.p.len,
			       k.g.len, k.y.len);
		else if (k.kind == HDL_KEY_RSA)
			printf(" (modulus %" PRIu32 " bytes)", k.n.len);
	}
	printf("\n");
}

/** \retval 0 ok, -1 a sub-structure was malformed */
static int put_body(const hdl_msg_t *m)
{
	int ret = 0;

	switch (m->kind) {
	case HDL_BODY_NONE:
		printf("body: not decoded (%s)\n",
		       (m->env.flags & HDL_ENV_ENCRYPTED) ? "encrypted" : "unknown kind");
		break;
	case HDL_BODY_EMPTY:
		printf("body: empty\n");
		break;
	case HDL_BODY_RESOLVE:
		printf("body: resolution request\n  handle: ");
		put_str(m->u.resolve.handle);
		printf("\n  indexes: ");
		put_u32_list(m->u.resolve.indexes, m->u.resolve.n_indexes);
		printf("\n  types: [");
		for (uint32_t i = 0; i < m->u.resolve.n_types; i++) {
			hdl_slice_t t = m->u.resolve.types[i];
			printf("%s%.*s", i ? "," : "", (int)t.len, (const char *)t.p);
		}
		printf("] (%" PRIu32 ")\n", m->u.resolve.n_types);
		break;
	case HDL_BODY_VALUES:
		printf("body: handle and values\n  handle: ");
		put_str(m->u.values.handle);
		printf("\n");
		put_values(m->u.values.values, m->u.values.n_values);
		break;
	case HDL_BODY_HANDLE:
		printf("body: handle\n  handle: ");
		put_str(m->u.handle);
		printf("\n");
		break;
	case HDL_BODY_INDEXES:
		printf("body: handle and indexes\n  handle: ");
		put_str(m->u.indexes.handle);
		printf("\n  indexes: ");
		put_u32_list(m->u.indexes.indexes, m->u.indexes.n_indexes);
		printf("\n");
		break;
	case HDL_BODY_LIST:
		printf("body: handle list\n  handles: %" PRIu32 "\n", m->u.list.n_handles);
		for (uint32_t i = 0; i < m->u.list.n_handles; i++) {
			printf("    ");
			put_str(m->u.list.handles[i]);
			printf("\n");
		}
		break;
	case HDL_BODY_CHAL_ANSWER:
		printf("body: challenge answer\n  auth type: ");
		put_str(m->u.answer.auth_type);
		printf("\n  identity: %.*s:%" PRIu32 "\n", (int)m->u.answer.id_handle.len,
		       (const char *)m->u.answer.id_handle.p, m->u.answer.id_index);
		ret = put_signed_response(m->u.answer.auth_type, m->u.answer.signed_response);
		break;
	case HDL_BODY_VERIFY:
		printf("body: verify challenge\n  identity: %.*s:%" PRIu32 "\n  nonce: ",
		       (int)m->u.verify.id_handle.len, (const char *)m->u.verify.id_handle.p,
		       m->u.verify.id_index);
		put_hex(m->u.verify.nonce.p, m->u.verify.nonce.len, DECODE_HEX_SHOW);
		printf("\n  digest: %s (%u) ", digest_name(m->u.verify.digest_alg),
		       m->u.verify.digest_alg);
		put_hex(m->u.verify.digest.p, m->u.verify.digest.len, DECODE_HEX_SHOW);
		printf("\n  signed response: %" PRIu32 " bytes\n", m->u.verify.signed_response.len);
		break;
	case HDL_BODY_VERIFY_RESP:
		printf("body: verify result\n  valid: %s\n", m->u.verify_ok ? "yes" : "no");
		break;
	case HDL_BODY_SESSION_REQ:
		printf("body: session setup request\n  mode: %u %s\n  timeout: %" PRIu32 "\n",
		       m->u.session.mode, session_mode_name(m->u.session.mode), m->u.session.timeout);
		printf("  identity: %.*s:%" PRId32 "\n", (int)m->u.session.id_handle.len,
		       (const char *)m->u.session.id_handle.p, (int32_t)m->u.session.id_index);
		if (m->u.session.mode == 1 || m->u.session.mode == 4)
			put_key_summary(m->u.session.pubkey);
		if (m->u.session.mode == 3)
			printf("  key handle: %.*s:%" PRIu32 "\n", (int)m->u.session.key_handle.len,
			       (const char *)m->u.session.key_handle.p, m->u.session.key_index);
		break;
	case HDL_BODY_SESSION_RESP:
		printf("body: session setup response\n  mode: %u %s\n  data: %" PRIu32 " bytes\n",
		       m->u.session_resp.mode, session_mode_name(m->u.session_resp.mode),
		       m->u.session_resp.data.len);
		break;
	case HDL_BODY_BYTES:
		printf("body: bytes\n  length: %" PRIu32 "\n  data: ", m->u.bytes.len);
		put_hex(m->u.bytes.p, m->u.bytes.len, DECODE_HEX_SHOW);
		printf("\n");
		break;
	case HDL_BODY_LOGIN:
		printf("body: login (IDIS)\n  identity: %.*s:%" PRIu32 "\n",
		       (int)m->u.login.id_handle.len, (const char *)m->u.login.id_handle.p,
		       m->u.login.id_index);
		break;
	case HDL_BODY_SITEINFO: {
		hdl_value_t v;
		memset(&v, 0, sizeof(v));
		v.type = hdl_slice_str("HS_SITE");
		v.data = m->u.site;
		printf("body: site info (%" PRIu32 " bytes)\n  site: ", m->u.site.len);
		idnode_print_data(&v);
		printf("\n");
		break;
	}
	case HDL_BODY_CHALLENGE:
		printf("body: challenge\n  nonce: %" PRIu32 " bytes ", m->u.challenge.nonce.len);
		put_hex(m->u.challenge.nonce.p, m->u.challenge.nonce.len, DECODE_HEX_SHOW);
		printf("\n");
		if (m->u.challenge.old_digest.len) {
			printf("  old MD5 digest: ");
			put_hex(m->u.challenge.old_digest.p, m->u.challenge.old_digest.len,
			        DECODE_HEX_SHOW);
			printf("\n");
		}
		break;
	case HDL_BODY_REFERRAL:
		printf("body: referral\n  handle: ");
		put_str(m->u.referral.handle);
		printf("\n");
		put_values(m->u.referral.values, m->u.referral.n_values);
		break;
	case HDL_BODY_ERROR:
		printf("body: error\n  message: ");
		put_str(m->u.error.message);
		printf("\n");
		if (m->u.error.n_indexes) {
			printf("  indexes: ");
			put_u32_list(m->u.error.indexes, m->u.error.n_indexes);
			printf("\n");
		}
		break;
	}
	return ret;
}

/* ---- frames ------------------------------------------------------------------------------ */

/** \brief Print envelope + header from raw bytes (works even when the body won't decode). */
static void put_env_header(const uint8_t *p, size_t len, const hdl_envelope_t *e)
{
	wire_rd_t rd = wire_rd_init(p + HDL_ENVELOPE_LEN, len - HDL_ENVELOPE_LEN);
	uint32_t op, rc, fl, exp, blen;
	uint16_t serial;
	uint8_t rec;

	printf("envelope:\n  version: %u.%u\n", e->major, e->minor);
	if (e->sugg_major)
		printf("  suggested version: %u.%u\n", e->sugg_major, e->sugg_minor);
	else
		printf("  suggested version: none (0.%u)\n", e->sugg_minor);
	printf("  flags: 0x%02x", e->flags);
	if (e->flags & HDL_ENV_COMPRESSED)
		printf(" CP");
	if (e->flags & HDL_ENV_ENCRYPTED)
		printf(" EC");
	if (e->flags & HDL_ENV_TRUNCATED)
		printf(" TC");
	if (!(e->flags & (HDL_ENV_COMPRESSED | HDL_ENV_ENCRYPTED | HDL_ENV_TRUNCATED)))
		printf(" (none)");
	printf("\n  session id: %" PRIu32 " (0x%08" PRIx32 ")\n", e->session_id, e->session_id);
	printf("  request id: %" PRIu32 " (0x%08" PRIx32 ")\n", e->request_id, e->request_id);
	printf("  sequence: %" PRIu32 "\n  message length: %" PRIu32 "\n", e->seq, e->msg_len);

	if (e->flags & HDL_ENV_ENCRYPTED)
		return;
	op = wire_rd_u32(&rd);
	rc = wire_rd_u32(&rd);
	fl = wire_rd_u32(&rd);
	serial = wire_rd_u16(&rd);
	rec = wire_rd_u8(&rd);
	(void)wire_rd_u8(&rd);
	exp = wire_rd_u32(&rd);
	blen = wire_rd_u32(&rd);
	if (rd.err) {
		printf("header: truncated (%zu bytes)\n", len - HDL_ENVELOPE_LEN);
		return;
	}
	printf("header:\n  opcode: %s (%" PRIu32 ")\n", hdl_opcode_name(op), op);
	if (rc == 0)
		printf("  response code: 0 (request)\n");
	else
		printf("  response code: %s (%" PRIu32 ")\n", hdl_rcode_name(rc), rc);
	printf("  opflags: ");
	put_opflags(fl);
	printf("\n  site serial: %u (0x%04x)\n  recursion: %u\n  expiration: ", serial, serial, rec);
	put_time(exp);
	printf("\n  body length: %" PRIu32 "\n", blen);
}

/**
 * \brief Decode and print one frame of exactly \p len bytes.
 * \return IDNODE_EXIT_OK or IDNODE_EXIT_DATA
 */
static int decode_frame(const uint8_t *p, size_t len)
{
	hdl_envelope_t e;
	hdl_arena_t a;
	hdl_msg_t m;
	int ret = IDNODE_EXIT_DATA;
	int err;

	hdl_arena_init(&a, NULL, 0, 64u << 20);
	err = hdl_envelope_decode(p, len, &e);
	if (err != HDL_EOK) {
		printf("envelope: invalid (%s: %s)\n", hdl_errname(err), hdl_strerror(err));
		goto out;
	}
	put_env_header(p, len, &e);
	memset(&m, 0, sizeof(m));
	err = hdl_msg_decode(p, len, &a, &m);
	if (err != HDL_EOK) {
		printf("decode error: %s (%s)\n", hdl_errname(err), hdl_strerror(err));
		if (len > HDL_ENVELOPE_LEN + HDL_HEADER_LEN) {
			printf("  bytes after the header: ");
			put_hex(p + HDL_ENVELOPE_LEN + HDL_HEADER_LEN,
			        len - HDL_ENVELOPE_LEN - HDL_HEADER_LEN, 256);
			printf("\n");
		}
		goto out;
	}
	if (m.rd.len) {
		printf("request digest: %s (%u) ", digest_name(m.rd_alg), m.rd_alg);
		put_hex(m.rd.p, m.rd.len, DECODE_HEX_SHOW);
		printf("\n");
	}
	if (put_body(&m) != 0)
		goto out;
	printf("trailing body bytes: %" PRIu32, m.trailing.len);
	if (m.trailing.len) {
		printf(" ");
		put_hex(m.trailing.p, m.trailing.len, DECODE_HEX_SHOW);
	}
	printf("\n");
	if (m.has_cred) {
		printf("credential: length %" PRIu32, m.cred.len);
		if (m.cred.len) {
			printf(" ");
			put_hex(m.cred.p, m.cred.len, DECODE_HEX_SHOW);
		}
		printf("\n");
	} else {
		printf("credential: absent\n");
	}
	ret = IDNODE_EXIT_OK;
out:
	hdl_arena_free(&a);
	return ret;
}

/* ---- HTTP -------------------------------------------------------------------------------- */

static bool starts_with(const uint8_t *p, size_t len, const char *s)
{
	size_t n = strlen(s);
	return len >= n && memcmp(p, s, n) == 0;
}

/** \brief Start of an HTTP request ("METHOD /... HTTP/1.x") or response ("HTTP/1.x "). */
static bool looks_http(const uint8_t *p, size_t len)
{
	static const char *const methods[] = {"GET ",     "POST ",  "PUT ",   "DELETE ",
	                                      "HEAD ",    "PATCH ", "OPTIONS "};
	const uint8_t *eol;

	if (starts_with(p, len, "HTTP/1."))
		return true;
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		if (!starts_with(p, len, methods[i]))
			continue;
		eol = memchr(p, '\n', len);
		if (!eol)
			return false;
		for (const uint8_t *q = p; q + 7 <= eol; q++)
			if (memcmp(q, " HTTP/1", 7) == 0)
				return true;
		return false;
	}
	return false;
}

static bool looks_frame(const uint8_t *p, size_t len)
{
	hdl_envelope_t e;
	return hdl_envelope_decode(p, len, &e) == HDL_EOK &&
	       (size_t)e.msg_len + HDL_ENVELOPE_LEN <= len && e.msg_len >= HDL_HEADER_LEN;
}

static bool text_body(const uint8_t *p, size_t len)
{
	if (!hdl_utf8_valid(p, len))
		return false;
	for (size_t i = 0; i < len; i++)
		if (p[i] < 0x20 && p[i] != '\n' && p[i] != '\r' && p[i] != '\t')
			return false;
	return true;
}

static int decode_stream(const uint8_t *p, size_t len, unsigned *count, bool nested);

/**
 * \brief Print one HTTP message at \p p and decode its body.
 * \param[out] used bytes consumed
 */
static int decode_http(const uint8_t *p, size_t len, size_t *used, unsigned *count)
{
	size_t i = 0, hend = 0, blen = 0;
	bool have_len = false, is_resp = starts_with(p, len, "HTTP/1."), hdl_ct = false;
	bool chunked = false;
	int ret = IDNODE_EXIT_OK;

	/* find the blank line */
	for (i = 0; i < len && i < DECODE_MAX_HTTP_HEAD; i++) {
		if (p[i] != '\n')
			continue;
		if (i + 1 < len && p[i + 1] == '\n') {
			hend = i + 2;
			break;
		}
		if (i + 2 < len && p[i + 1] == '\r' && p[i + 2] == '\n') {
			hend = i + 3;
			break;
		}
	}
	if (hend == 0) {
		printf("HTTP: headers not terminated\n");
		*used = len;
		return IDNODE_EXIT_DATA;
	}
	printf("HTTP %s:\n", is_resp ? "response" : "request");
	for (i = 0; i < hend;) {
		const uint8_t *eol = memchr(p + i, '\n', hend - i);
		size_t ll = (size_t)(eol - (p + i));
		const char *line = (const char *)(p + i);

		if (ll && line[ll - 1] == '\r')
			ll--;
		if (ll) {
			printf("  %.*s\n", (int)ll, line);
			if (ll > 15 && strncasecmp(line, "Content-Length:", 15) == 0) {
				blen = strtoul(line + 15, NULL, 10);
				have_len = true;
			} else if (ll > 13 && strncasecmp(line, "Content-Type:", 13) == 0) {
				for (size_t k = 13; k + 17 <= ll; k++)
					if (strncasecmp(line + k, "application/x-hdl", 17) == 0)
						hdl_ct = true;
			} else if (ll > 18 && strncasecmp(line, "Transfer-Encoding:", 18) == 0) {
				for (size_t k = 18; k + 7 <= ll; k++)
					if (strncasecmp(line + k, "chunked", 7) == 0)
						chunked = true;
			}
		}
		i += (size_t)(eol - (p + i)) + 1;
	}
	if (chunked) {
		printf("  (chunked body not decoded)\n");
		*used = len;
		return IDNODE_EXIT_DATA;
	}
	if (!have_len)
		blen = is_resp ? len - hend : 0;
	if (blen > len - hend) {
		printf("  body: %zu of %zu bytes present\n", len - hend, blen);
		blen = len - hend;
		ret = IDNODE_EXIT_DATA;
	}
	*used = hend + blen;
	if (blen == 0) {
		printf("  body: none\n");
		return ret;
	}
	{
		const uint8_t *b = p + hend;
		size_t skip = 0;

		if (b[0] == '\r' && blen > 1 && b[1] == '\n')
			skip = 2;
		else if (b[0] == '\n' || b[0] == '\r')
			skip = 1;
		if (hdl_ct || looks_frame(b + skip, blen - skip)) {
			int r;
			printf("  body: %zu bytes, Handle message frame\n", blen);
			r = decode_stream(b + skip, blen - skip, count, true);
			if (r != IDNODE_EXIT_OK)
				ret = r;
		} else if (text_body(b, blen)) {
			printf("  body: %zu bytes\n  %.*s\n", blen, (int)blen, (const char *)b);
		} else {
			printf("  body: %zu bytes binary ", blen);
			put_hex(b, blen, 256);
			printf("\n");
		}
	}
	return ret;
}

/**
 * \brief Decode frames and HTTP messages one after another.
 * \param nested the frames of one HTTP body (numbered within it, no HTTP inside)
 */
static int decode_stream(const uint8_t *p, size_t len, unsigned *count, bool nested)
{
	size_t pos = 0;
	int ret = IDNODE_EXIT_OK;

	while (pos < len) {
		const uint8_t *q = p + pos;
		size_t left = len - pos, used;
		hdl_envelope_t e;
		int r, err;

		/* separators between HTTP messages */
		if (*q == '\r' || *q == '\n') {
			pos++;
			continue;
		}
		if (nested) {
			printf("-- frame at body offset %zu --\n", pos);
		} else {
			if (*count)
				printf("\n");
			(*count)++;
			printf("== message %u (offset %zu) ==\n", *count, pos);
		}
		if (!nested && looks_http(q, left)) {
			r = decode_http(q, left, &used, count);
			if (r != IDNODE_EXIT_OK)
				ret = r;
			pos += used;
			continue;
		}
		err = hdl_envelope_decode(q, left, &e);
		if (err != HDL_EOK) {
			printf("not a Handle message (%s) at offset %zu: %zu bytes ", hdl_errname(err), pos,
			       left);
			put_hex(q, left, 256);
			printf("\n");
			return IDNODE_EXIT_DATA;
		}
		used = HDL_ENVELOPE_LEN + (size_t)e.msg_len;
		if (used > left) {
			printf("frame truncated: %zu of %zu bytes present\n", left, used);
			used = left;
			ret = IDNODE_EXIT_DATA;
		}
		r = decode_frame(q, used);
		if (r != IDNODE_EXIT_OK)
			ret = r;
		pos += used;
	}
	return ret;
}

/* ---- command ----------------------------------------------------------------------------- */

static void decode_usage(FILE *f)
{
	fprintf(f, "usage: idnode decode FILE\n"
	           "  FILE  an xxd hex dump (xxd -g1 ...), plain hex, or raw bytes; '-' for stdin.\n"
	           "        Handle frames may follow each other or sit in HTTP messages.\n"
	           "Exit status: 0 decoded, 2 usage, 3 cannot read, 4 malformed input.\n");
}

int cmd_decode(int argc, char **argv)
{
	uint8_t *in = NULL, *bin = NULL;
	size_t inlen = 0, binlen = 0;
	const uint8_t *data;
	size_t dlen;
	unsigned count = 0;
	const char *path = NULL;
	int ret = IDNODE_EXIT_USAGE;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			decode_usage(stdout);
			return IDNODE_EXIT_OK;
		}
		if (argv[i][0] == '-' && argv[i][1] != '\0') {
			fprintf(stderr, "idnode decode: unknown option '%s'\n", argv[i]);
			decode_usage(stderr);
			return IDNODE_EXIT_USAGE;
		}
		if (path) {
			decode_usage(stderr);
			return IDNODE_EXIT_USAGE;
		}
		path = argv[i];
	}
	if (!path) {
		decode_usage(stderr);
		return IDNODE_EXIT_USAGE;
	}
	ret = read_all(path, &in, &inlen);
	if (ret != IDNODE_EXIT_OK)
		goto out;
	ret = IDNODE_EXIT_DATA;
	if (inlen == 0) {
		fprintf(stderr, "idnode decode: empty input\n");
		goto out;
	}
	bin = malloc(inlen / 2 + 1);
	if (!bin) {
		ret = IDNODE_EXIT_IO;
		goto out;
	}
	if (looks_xxd(in, inlen)) {
		if (parse_xxd(in, inlen, bin, &binlen) != 0) {
			fprintf(stderr, "idnode decode: malformed hex dump\n");
			goto out;
		}
		printf("input: xxd dump, %zu bytes\n", binlen);
		data = bin;
		dlen = binlen;
	} else if (parse_plain_hex(in, inlen, bin, &binlen)) {
		printf("input: hex, %zu bytes\n", binlen);
		data = bin;
		dlen = binlen;
	} else {
		printf("input: raw, %zu bytes\n", inlen);
		data = in;
		dlen = inlen;
	}
	if (dlen == 0) {
		fprintf(stderr, "idnode decode: no bytes in input\n");
		goto out;
	}
	ret = decode_stream(data, dlen, &count, false);
	if (ret != IDNODE_EXIT_OK)
		fprintf(stderr, "idnode decode: malformed message in '%s'\n", path);
out:
	fflush(stdout);
	free(bin);
	free(in);
	return ret;
}
