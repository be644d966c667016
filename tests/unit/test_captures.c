/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Every binary Handle frame in tests/captures decodes, its fields match
 *        tests/captures/README.upstream.md, and re-encoding it gives back the same bytes.
 *
 * The captures are `xxd -g1` dumps read from HDL_SOURCE_DIR. Requests (`-1-request`,
 * `-3-answer` and the single-message captures) come from real clients (CNRI hdllib 9.2.0, the
 * IDIS id-pointer SDK); `-2-challenge` files are the mock server's responses, decoded too. The
 * `*.requests.hex` files are REST (HTTP + JSON) transcripts, not Handle frames: they belong to the
 * JSON tests; test_capture_inventory only makes sure every other capture is listed here.
 *
 * Re-encoding is deterministic for every frame: all fields are fixed-width or length-prefixed,
 * trailing body bytes are written back as received, and the one optional part (the credential
 * section, absent only in OC 2001) is tracked by has_cred. So all of them must round-trip.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hdl/error.h"
#include "hdl/msg.h"
#include "tests/fuzz/codec_cmp.h"

#ifndef HDL_SOURCE_DIR
#define HDL_SOURCE_DIR "."
#endif

#define MAXFRAME 8192

/** Parse an `xxd -g1` dump: "<offset>: <hex bytes>  <ascii>". \return bytes, or -1. */
static long read_xxd(const char *name, uint8_t *out, size_t cap)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/tests/captures/%s", HDL_SOURCE_DIR, name);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -1;
	char line[256];
	long n = 0;
	while (fgets(line, sizeof(line), f)) {
		char *p = strchr(line, ':');
		if (p == NULL)
			continue;
		p++;
		/* up to 16 groups of " xx"; the ASCII column starts after two spaces */
		for (int i = 0; i < 16; i++) {
			if (p[0] != ' ' || p[1] == ' ' || p[1] == '\n' || p[1] == 0)
				break;
			unsigned v;
			if (sscanf(p + 1, "%2x", &v) != 1)
				break;
			if ((size_t)n >= cap) {
				fclose(f);
				return -1;
			}
			out[n++] = (uint8_t)v;
			p += 3;
		}
	}
	fclose(f);
	return n;
}

static void assert_slice(hdl_slice_t s, const char *want)
{
	size_t n = strlen(want);
	if (s.len != n || (n && memcmp(s.p, want, n) != 0))
		fail_msg("slice '%.*s' != '%s'", (int)s.len, s.p ? (const char *)s.p : "", want);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

struct frame {
	uint8_t raw[MAXFRAME]; /* the file */
	long rawlen;
	const uint8_t *buf; /* the Handle frame in it */
	size_t len;
	uint8_t arena_buf[4096];
	hdl_arena_t a;
	hdl_msg_t m;
};

/* Load, decode, and check the round trip; the caller asserts the fields. */
static struct frame *load(const char *name)
{
	struct frame *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->rawlen = read_xxd(name, f->raw, sizeof(f->raw));
	if (f->rawlen <= 0)
		fail_msg("%s: cannot read", name);
	f->buf = f->raw;
	f->len = (size_t)f->rawlen;
	if (f->len > 5 && memcmp(f->raw, "POST ", 5) == 0) {
		/* HDL-over-HTTP: the frame follows the headers */
		const uint8_t *end = NULL;
		for (size_t i = 0; i + 4 <= f->len; i++)
			if (memcmp(f->raw + i, "\r\n\r\n", 4) == 0) {
				end = f->raw + i + 4;
				break;
			}
		assert_non_null(end);
		f->len -= (size_t)(end - f->raw);
		f->buf = end;
	}
	hdl_arena_init(&f->a, f->arena_buf, sizeof(f->arena_buf), 1u << 20);
	int rc = hdl_msg_decode(f->buf, f->len, &f->a, &f->m);
	if (rc != HDL_EOK)
		fail_msg("%s: decode %s", name, hdl_errname(rc));
	assert_int_equal(f->m.env.msg_len + HDL_ENVELOPE_LEN, f->len);

	/* re-encoding reproduces the frame byte for byte */
	static uint8_t out[MAXFRAME];
	size_t n = 0;
	rc = hdl_msg_encode(&f->m, out, sizeof(out), &n);
	if (rc != HDL_EOK)
		fail_msg("%s: encode %s", name, hdl_errname(rc));
	if (n != f->len || memcmp(out, f->buf, n) != 0)
		fail_msg("%s: re-encoding differs (%zu vs %zu bytes)", name, n, f->len);
	/* and decodes to the same fields */
	hdl_msg_t m2;
	assert_int_equal(hdl_msg_decode(out, n, &f->a, &m2), HDL_EOK);
	assert_true(cmp_msg(&f->m, &m2));
	return f;
}

static void unload(struct frame *f)
{
	hdl_arena_free(&f->a);
	free(f);
}

/* What every hdllib 9 request has in common (README facts 1-4). */
static void assert_hdllib_request(const hdl_msg_t *m, uint32_t opcode)
{
	assert_int_equal(m->env.major, 2);
	assert_int_equal(m->env.minor, 11);
	assert_int_equal(m->env.flags, 0);
	assert_int_equal(m->env.sugg_major, 2);
	assert_int_equal(m->env.sugg_minor, 11);
	assert_int_equal(m->env.seq, 0);
	assert_int_equal(m->hdr.opcode, opcode);
	assert_int_equal(m->hdr.rcode, 0);
	assert_int_equal(m->hdr.recursion, 0);
	assert_true(m->hdr.expiration > 0);
	assert_true(m->has_cred); /* always a CredentialLength ... */
	assert_int_equal(m->cred.len, 0); /* ... of 0 */
}

/* ---- resolution ---------------------------------------------------------------------------- */

static void check_plain_resolution(const hdl_msg_t *m, uint32_t opflags)
{
	assert_hdllib_request(m, HDL_OC_RESOLUTION);
	assert_int_equal(m->env.session_id, 0);
	assert_int_equal(m->hdr.opflags, opflags);
	assert_int_equal(m->hdr.site_serial, 1); /* hdllib sends the HS_SITE serial */
	assert_int_equal(m->hdr.body_len, 25);
	assert_int_equal(m->env.msg_len, 53);
	assert_int_equal(m->kind, HDL_BODY_RESOLVE);
	assert_slice(m->u.resolve.handle, "88.100.1/test");
	assert_int_equal(m->u.resolve.n_indexes, 0);
	assert_int_equal(m->u.resolve.n_types, 0);
	assert_int_equal(m->trailing.len, 0);
}

static void test_resolve_tcp(void **state)
{
	(void)state;
	struct frame *f = load("java-hdllib-resolve-tcp.hex");
	check_plain_resolution(&f->m, HDL_OF_REC | HDL_OF_CA | HDL_OF_PO);
	assert_int_equal(f->m.hdr.opflags, 0x19000000);
	assert_int_equal(f->m.env.request_id, 0x55111b7e);
	unload(f);
}

static void test_resolve_udp(void **state)
{
	(void)state;
	struct frame *f = load("java-hdllib-resolve-udp.hex");
	check_plain_resolution(&f->m, 0x19000000);
	assert_true(f->len <= HDL_UDP_MAX_DGRAM);
	/* one datagram: the reassembler completes it at once */
	static uint8_t rbuf[HDL_ENVELOPE_LEN + HDL_MAX_MESSAGE_LEN];
	hdl_udp_reasm_t r;
	hdl_udp_reasm_init(&r, rbuf, sizeof(rbuf));
	assert_int_equal(hdl_udp_reasm_add(&r, f->buf, f->len), 1);
	assert_memory_equal(rbuf, f->buf, f->len);
	unload(f);
}

static void test_resolve_hdltrace_udp(void **state)
{
	(void)state;
	/* stock HDLTrace: identical layout to HdlCli's */
	struct frame *f = load("java-hdllib-HDLTrace-stock-udp.hex");
	check_plain_resolution(&f->m, 0x19000000);
	unload(f);
}

static void test_resolve_hdlhttp(void **state)
{
	(void)state;
	struct frame *f = load("java-hdllib-resolve-hdlhttp.hex");
	check_plain_resolution(&f->m, 0x19000000);
	/* the HTTP request around it */
	const char *http = (const char *)f->raw;
	size_t hlen = (size_t)(f->buf - f->raw);
	assert_int_equal(strncmp(http, "POST /88.100.1%2Ftest HTTP/1.1\r\n", 32), 0);
	char headers[512];
	assert_true(hlen < sizeof(headers));
	memcpy(headers, http, hlen);
	headers[hlen] = 0;
	assert_non_null(strstr(headers, "\r\nContent-Type: application/x-hdl-message\r\n"));
	assert_non_null(strstr(headers, "\r\nAccept: application/x-hdl-message\r\n"));
	assert_non_null(strstr(headers, "\r\nUser-Agent: CNRI-HCL 2.0\r\n"));
	char cl[32];
	snprintf(cl, sizeof(cl), "\r\nContent-Length: %zu\r\n", f->len);
	assert_non_null(strstr(headers, cl)); /* 73: the whole frame */
	assert_int_equal(f->len, 73);
	unload(f);
}

static void test_resolve_typed(void **state)
{
	(void)state;
	struct frame *f = load("java-hdllib-resolve-typed-tcp.hex");
	const hdl_msg_t *m = &f->m;
	assert_hdllib_request(m, HDL_OC_RESOLUTION);
	assert_int_equal(m->hdr.opflags, HDL_OF_AT | HDL_OF_REC | HDL_OF_CA | HDL_OF_PO);
	assert_int_equal(m->hdr.opflags, 0x99000000);
	assert_slice(m->u.resolve.handle, "88.100.1/test");
	assert_int_equal(m->u.resolve.n_indexes, 2);
	assert_int_equal(m->u.resolve.indexes[0], 1);
	assert_int_equal(m->u.resolve.indexes[1], 2);
	assert_int_equal(m->u.resolve.n_types, 2);
	assert_slice(m->u.resolve.types[0], "URL");
	assert_slice(m->u.resolve.types[1], "EMAIL");
	assert_int_equal(m->hdr.body_len, 49);
	unload(f);
}

static void test_resolve_certify(void **state)
{
	(void)state;
	struct frame *f = load("java-hdllib-resolve-certify-tcp.hex");
	check_plain_resolution(&f->m, HDL_OF_CT | HDL_OF_REC | HDL_OF_CA | HDL_OF_PO);
	assert_int_equal(f->m.hdr.opflags, 0x59000000);
	unload(f);
}

static void test_siteinfo(void **state)
{
	(void)state;
	struct frame *f = load("java-hdllib-siteinfo-tcp.hex");
	const hdl_msg_t *m = &f->m;
	assert_hdllib_request(m, HDL_OC_GET_SITEINFO);
	assert_int_equal(m->hdr.opflags, 0x19000000);
	assert_int_equal(m->kind, HDL_BODY_HANDLE);
	assert_slice(m->u.handle, "/");
	assert_int_equal(m->hdr.body_len, 5);
	unload(f);
}

static void test_session_setup(void **state)
{
	(void)state;
	struct frame *f = load("java-hdllib-sessionsetup-tcp.hex");
	const hdl_msg_t *m = &f->m;
	assert_hdllib_request(m, HDL_OC_SESSION_SETUP);
	/* CT+REC+CA+PO+RD */
	assert_int_equal(m->hdr.opflags,
	                 HDL_OF_CT | HDL_OF_REC | HDL_OF_CA | HDL_OF_PO | HDL_OF_RD);
	assert_int_equal(m->hdr.opflags, 0x59800000);
	assert_int_equal(m->hdr.site_serial, 0xffff);
	assert_int_equal(m->kind, HDL_BODY_SESSION_REQ);
	const hdl_body_session_t *s = &m->u.session;
	assert_int_equal(s->mode, 4); /* DH */
	assert_int_equal(s->timeout, 86400);
	assert_slice(s->id_handle, "0.NA/88.100");
	assert_int_equal(s->id_index, 300);
	/* DH_PUB_KEY: STR key type, U16 flags, BYTES y, p, g */
	assert_int_equal(s->pubkey.len, 287);
	assert_int_equal(be32(s->pubkey.p), 10);
	assert_memory_equal(s->pubkey.p + 4, "DH_PUB_KEY", 10);
	/* the 2 zero bytes Handle.Net appends (BodyLength counts them) */
	assert_int_equal(m->trailing.len, 2);
	assert_memory_equal(m->trailing.p, "\0\0", 2);
	assert_int_equal(m->hdr.body_len, 318);
	unload(f);
}

/* ---- admin operations with their challenge exchanges ----------------------------------------- */

/* Handle values: 100:HS_ADMIN:0.NA/88.100:300 (all 12 permissions) and 1:URL:http://example.org/ */
static void check_create_values(const hdl_msg_t *m)
{
	assert_int_equal(m->kind, HDL_BODY_VALUES);
	assert_slice(m->u.values.handle, "88.100.1/test");
	assert_int_equal(m->u.values.n_values, 2);
	const hdl_value_t *adm = &m->u.values.values[0], *url = &m->u.values.values[1];
	assert_int_equal(adm->index, 100);
	assert_slice(adm->type, "HS_ADMIN");
	assert_int_equal(adm->ttl_type, HDL_TTL_RELATIVE);
	assert_int_equal(adm->ttl, 86400);
	assert_int_equal(adm->perms, HDL_PERM_DEFAULT);
	assert_int_equal(adm->data.len, 21);
	assert_memory_equal(adm->data.p, "\x0f\xff\0\0\0\x0b" "0.NA/88.100\0\0\x01\x2c", 21);
	assert_int_equal(adm->n_refs, 0);
	assert_int_equal(url->index, 1);
	assert_slice(url->type, "URL");
	assert_slice(url->data, "http://example.org/");
	assert_int_equal(url->n_refs, 0);
}

/* A request of the seckey / pubkey admin runs: 2.11, REC|CA|PO, serial 1. */
static void check_admin_request(const hdl_msg_t *m, uint32_t opcode)
{
	assert_hdllib_request(m, opcode);
	assert_int_equal(m->env.session_id, 0);
	assert_int_equal(m->hdr.opflags, 0x19000000);
	assert_int_equal(m->hdr.site_serial, 1);
	assert_int_equal(m->trailing.len, 0);
}

/* The mock's challenge: RC 402 for the request's opcode and RequestId, SessionId 0x1234, RD with
 * the request digest, a 16-byte nonce. The digest is SHA-1 over the request's header + body. */
static void check_challenge(const char *name, const struct frame *req, uint8_t minor)
{
	struct frame *f = load(name);
	const hdl_msg_t *m = &f->m;
	assert_int_equal(m->env.major, 2);
	assert_int_equal(m->env.minor, minor);
	assert_int_equal(m->env.sugg_major, 0); /* the mock sends no suggestion */
	assert_int_equal(m->env.session_id, 0x1234);
	assert_int_equal(m->env.request_id, req->m.env.request_id);
	assert_int_equal(m->hdr.opcode, req->m.hdr.opcode);
	assert_int_equal(m->hdr.rcode, HDL_RC_AUTHENTICATION_NEEDED);
	assert_int_equal(m->hdr.opflags, HDL_OF_RD);
	assert_int_equal(m->kind, HDL_BODY_CHALLENGE);
	assert_int_equal(m->u.challenge.nonce.len, HDL_NONCE_LEN);
	assert_int_equal(m->u.challenge.old_digest.len, 0);
	assert_int_equal(m->rd_alg, HDL_DIGEST_SHA1);
	assert_int_equal(m->rd.len, 20);
	uint8_t dg[HDL_DIGEST_MAX_LEN];
	size_t dl = 0;
	assert_int_equal(hdl_digest(HDL_DIGEST_SHA1, req->m.signed_part.p, req->m.signed_part.len,
	                            dg, &dl),
	                 HDL_EOK);
	assert_int_equal(dl, 20);
	assert_memory_equal(m->rd.p, dg, 20);
	assert_true(m->has_cred);
	assert_int_equal(m->cred.len, 0);
	unload(f);
}

/* HS_SECKEY answer at >= 2.7: 0x22 || BYTES salt(16) || U32 10000 || U32 160 || BYTES mac(20) */
static void check_seckey_answer(const char *name)
{
	struct frame *f = load(name);
	const hdl_msg_t *m = &f->m;
	assert_hdllib_request(m, HDL_OC_CHALLENGE_RESPONSE);
	assert_int_equal(m->env.session_id, 0x1234); /* copied from the challenge */
	assert_int_equal(m->hdr.opflags, 0x19000000);
	assert_int_equal(m->hdr.site_serial, 0xffff);
	assert_int_equal(m->kind, HDL_BODY_CHAL_ANSWER);
	const hdl_body_answer_t *a = &m->u.answer;
	assert_slice(a->auth_type, "HS_SECKEY");
	assert_slice(a->id_handle, "0.NA/88.100");
	assert_int_equal(a->id_index, 300);
	const uint8_t *p = a->signed_response.p;
	assert_int_equal(a->signed_response.len, 1 + 4 + 16 + 4 + 4 + 4 + 20);
	assert_int_equal(p[0], 0x22);          /* PBKDF2-HMAC-SHA1 */
	assert_int_equal(be32(p + 1), 16);     /* salt length */
	assert_int_equal(be32(p + 21), 10000); /* iterations */
	assert_int_equal(be32(p + 25), 160);   /* key length in bits */
	assert_int_equal(be32(p + 29), 20);    /* HMAC-SHA1 length */
	assert_int_equal(m->hdr.body_len, 89);
	unload(f);
}

struct admin_run {
	const char *op;      /* file name part */
	uint32_t opcode;
	void (*check)(const hdl_msg_t *m);
};

static void chk_create(const hdl_msg_t *m)
{
	check_create_values(m);
}

static void chk_delete(const hdl_msg_t *m)
{
	assert_int_equal(m->kind, HDL_BODY_HANDLE);
	assert_slice(m->u.handle, "88.100.1/test");
}

static void chk_addvalue(const hdl_msg_t *m)
{
	assert_int_equal(m->kind, HDL_BODY_VALUES);
	assert_slice(m->u.values.handle, "88.100.1/test");
	assert_int_equal(m->u.values.n_values, 1);
	assert_int_equal(m->u.values.values[0].index, 2);
	assert_slice(m->u.values.values[0].type, "EMAIL");
	assert_slice(m->u.values.values[0].data, "a@example.org");
	assert_int_equal(m->u.values.values[0].perms, HDL_PERM_DEFAULT);
}

static void chk_modifyvalue(const hdl_msg_t *m)
{
	assert_int_equal(m->kind, HDL_BODY_VALUES);
	assert_int_equal(m->u.values.n_values, 1);
	assert_int_equal(m->u.values.values[0].index, 1);
	assert_slice(m->u.values.values[0].type, "URL");
	assert_slice(m->u.values.values[0].data, "http://example.org/new");
}

static void chk_removevalue(const hdl_msg_t *m)
{
	assert_int_equal(m->kind, HDL_BODY_INDEXES);
	assert_slice(m->u.indexes.handle, "88.100.1/test");
	assert_int_equal(m->u.indexes.n_indexes, 1);
	assert_int_equal(m->u.indexes.indexes[0], 2);
}

static void chk_prefix(const hdl_msg_t *m)
{
	assert_int_equal(m->kind, HDL_BODY_HANDLE);
	assert_slice(m->u.handle, "0.NA/88.100");
}

static const struct admin_run admin_runs[] = {
	{"create", HDL_OC_CREATE_HANDLE, chk_create},
	{"delete", HDL_OC_DELETE_HANDLE, chk_delete},
	{"addvalue", HDL_OC_ADD_VALUE, chk_addvalue},
	{"modifyvalue", HDL_OC_MODIFY_VALUE, chk_modifyvalue},
	{"removevalue", HDL_OC_REMOVE_VALUE, chk_removevalue},
	{"listhandles", HDL_OC_LIST_HANDLES, chk_prefix},
	{"homeprefix", HDL_OC_HOME_NA, chk_prefix},
};

static void test_admin_seckey(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(admin_runs) / sizeof(admin_runs[0]); i++) {
		char name[128];
		snprintf(name, sizeof(name), "java-hdllib-%s-seckey-tcp-1-request.hex", admin_runs[i].op);
		struct frame *req = load(name);
		check_admin_request(&req->m, admin_runs[i].opcode);
		admin_runs[i].check(&req->m);
		snprintf(name, sizeof(name), "java-hdllib-%s-seckey-tcp-2-challenge.hex",
		         admin_runs[i].op);
		check_challenge(name, req, 11);
		snprintf(name, sizeof(name), "java-hdllib-%s-seckey-tcp-3-answer.hex", admin_runs[i].op);
		check_seckey_answer(name);
		unload(req);
	}
}

static void test_admin_pubkey(void **state)
{
	(void)state;
	struct frame *req = load("java-hdllib-create-pubkey-tcp-1-request.hex");
	check_admin_request(&req->m, HDL_OC_CREATE_HANDLE);
	check_create_values(&req->m);
	check_challenge("java-hdllib-create-pubkey-tcp-2-challenge.hex", req, 11);
	unload(req);

	/* HS_PUBKEY answer: BYTES "SHA-256" || BYTES RSA signature (2048 bits) */
	struct frame *f = load("java-hdllib-create-pubkey-tcp-3-answer.hex");
	const hdl_msg_t *m = &f->m;
	assert_hdllib_request(m, HDL_OC_CHALLENGE_RESPONSE);
	assert_int_equal(m->env.session_id, 0x1234);
	assert_int_equal(m->hdr.site_serial, 0xffff);
	assert_slice(m->u.answer.auth_type, "HS_PUBKEY");
	assert_slice(m->u.answer.id_handle, "0.NA/88.100");
	assert_int_equal(m->u.answer.id_index, 300);
	const uint8_t *p = m->u.answer.signed_response.p;
	assert_int_equal(m->u.answer.signed_response.len, 4 + 7 + 4 + 256);
	assert_int_equal(be32(p), 7);
	assert_memory_equal(p + 4, "SHA-256", 7);
	assert_int_equal(be32(p + 11), 256);
	unload(f);
}

/* ---- id-pointer SDK ----------------------------------------------------------------------------- */

static void test_idpointer_resolve(void **state)
{
	(void)state;
	struct frame *f = load("idpointer-sdk-resolve-tcp.hex");
	const hdl_msg_t *m = &f->m;
	/* 2.10 suggesting 2.11 */
	assert_int_equal(m->env.major, 2);
	assert_int_equal(m->env.minor, 10);
	assert_int_equal(m->env.sugg_major, 2);
	assert_int_equal(m->env.sugg_minor, 11);
	assert_int_equal(m->env.request_id, 1);
	assert_int_equal(m->hdr.opcode, HDL_OC_RESOLUTION);
	assert_int_equal(m->hdr.opflags, 0x19000000);
	assert_int_equal(m->hdr.site_serial, 0xffff);
	assert_slice(m->u.resolve.handle, "88.100.1/test");
	assert_int_equal(m->u.resolve.n_indexes, 0);
	assert_int_equal(m->u.resolve.n_types, 0);
	/* bodyLength 29, not 25: an empty authBytes field, exposed as 4 trailing bytes */
	assert_int_equal(m->hdr.body_len, 29);
	assert_int_equal(m->trailing.len, 4);
	assert_memory_equal(m->trailing.p, "\0\0\0\0", 4);
	assert_true(m->has_cred);
	assert_int_equal(m->cred.len, 0);
	/* version negotiation: answer 2.11 */
	uint8_t maj, min;
	hdl_version_negotiate(&m->env, &maj, &min);
	assert_int_equal(maj, 2);
	assert_int_equal(min, 11);
	unload(f);
}

static void test_idpointer_login(void **state)
{
	(void)state;
	/* 1: OC_GET_SITE_INFO on the pooled connection, client-chosen SessionId 10001 */
	struct frame *req = load("idpointer-sdk-login-seckey-tcp-1-request.hex");
	const hdl_msg_t *m = &req->m;
	assert_int_equal(m->env.minor, 10);
	assert_int_equal(m->env.sugg_minor, 11);
	assert_int_equal(m->env.session_id, 10001);
	assert_int_equal(m->env.request_id, 2);
	assert_int_equal(m->hdr.opcode, HDL_OC_GET_SITEINFO);
	assert_int_equal(m->hdr.opflags, 0x19000000);
	assert_int_equal(m->hdr.site_serial, 0xffff);
	assert_slice(m->u.handle, "/");
	assert_true(m->has_cred);
	assert_int_equal(m->cred.len, 0);

	/* 2: the mock's challenge (wrongly challenging site info), 2.10 */
	check_challenge("idpointer-sdk-login-seckey-tcp-2-challenge.hex", req, 10);
	unload(req);

	/* 3: proprietary OC 2001, body = handle + index, and no credential section at all */
	struct frame *f = load("idpointer-sdk-login-seckey-tcp-3-answer.hex");
	m = &f->m;
	assert_int_equal(m->env.minor, 10);
	assert_int_equal(m->env.session_id, 10001);
	assert_int_equal(m->env.request_id, 3);
	assert_int_equal(m->hdr.opcode, HDL_OC_LOGIN_ID_SYSTEM);
	assert_int_equal(m->hdr.opflags, HDL_OF_REC | HDL_OF_RD); /* RD, PO clear, CT clear */
	assert_int_equal(m->hdr.site_serial, 0xffff);
	assert_int_equal(m->kind, HDL_BODY_LOGIN);
	assert_slice(m->u.login.id_handle, "0.NA/88.100");
	assert_int_equal(m->u.login.id_index, 300);
	assert_int_equal(m->hdr.body_len, 19);
	assert_int_equal(m->env.msg_len, 24 + 19); /* msgLength = 24 + bodyLength */
	assert_false(m->has_cred);
	assert_int_equal(m->cred.len, 0);
	unload(f);
}

/* ---- every capture is covered --------------------------------------------------------------- */

static const char *const covered[] = {
	"java-hdllib-resolve-tcp.hex",
	"java-hdllib-resolve-udp.hex",
	"java-hdllib-HDLTrace-stock-udp.hex",
	"java-hdllib-resolve-hdlhttp.hex",
	"java-hdllib-resolve-typed-tcp.hex",
	"java-hdllib-resolve-certify-tcp.hex",
	"java-hdllib-siteinfo-tcp.hex",
	"java-hdllib-sessionsetup-tcp.hex",
	"java-hdllib-create-pubkey-tcp-1-request.hex",
	"java-hdllib-create-pubkey-tcp-2-challenge.hex",
	"java-hdllib-create-pubkey-tcp-3-answer.hex",
	"idpointer-sdk-resolve-tcp.hex",
	"idpointer-sdk-login-seckey-tcp-1-request.hex",
	"idpointer-sdk-login-seckey-tcp-2-challenge.hex",
	"idpointer-sdk-login-seckey-tcp-3-answer.hex",
};

static bool is_covered(const char *name)
{
	for (size_t i = 0; i < sizeof(covered) / sizeof(covered[0]); i++)
		if (strcmp(name, covered[i]) == 0)
			return true;
	for (size_t i = 0; i < sizeof(admin_runs) / sizeof(admin_runs[0]); i++) {
		char buf[128];
		for (int k = 1; k <= 3; k++) {
			static const char *const part[] = {"", "1-request", "2-challenge", "3-answer"};
			snprintf(buf, sizeof(buf), "java-hdllib-%s-seckey-tcp-%s.hex", admin_runs[i].op,
			         part[k]);
			if (strcmp(name, buf) == 0)
				return true;
		}
	}
	return false;
}

static void test_capture_inventory(void **state)
{
	(void)state;
	char path[512];
	snprintf(path, sizeof(path), "%s/tests/captures", HDL_SOURCE_DIR);
	DIR *d = opendir(path);
	assert_non_null(d);
	struct dirent *e;
	int frames = 0;
	while ((e = readdir(d)) != NULL) {
		size_t n = strlen(e->d_name);
		if (n < 4 || strcmp(e->d_name + n - 4, ".hex") != 0)
			continue;
		if (n > 13 && strcmp(e->d_name + n - 13, ".requests.hex") == 0)
			continue; /* REST transcripts */
		if (!is_covered(e->d_name))
			fail_msg("capture %s is not checked by test_captures", e->d_name);
		frames++;
	}
	closedir(d);
	/* 7 admin runs x 3 + 15 others */
	assert_int_equal(frames, 36);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_resolve_tcp),
		cmocka_unit_test(test_resolve_udp),
		cmocka_unit_test(test_resolve_hdltrace_udp),
		cmocka_unit_test(test_resolve_hdlhttp),
		cmocka_unit_test(test_resolve_typed),
		cmocka_unit_test(test_resolve_certify),
		cmocka_unit_test(test_siteinfo),
		cmocka_unit_test(test_session_setup),
		cmocka_unit_test(test_admin_seckey),
		cmocka_unit_test(test_admin_pubkey),
		cmocka_unit_test(test_idpointer_resolve),
		cmocka_unit_test(test_idpointer_login),
		cmocka_unit_test(test_capture_inventory),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
