/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Unit tests for proto/msg.c and proto/digest.c: every body kind decoded from hand-written
 *        bytes (a comment per field), the handle-protocol.md §3.3 worked example byte for byte with
 *        its SHA-256 request digest, round trips encode -> decode -> encode, version negotiation,
 *        digest algorithms, and hostile input (truncations, overrunning lengths, counts over the
 *        limits, invalid UTF-8, oversized messages, trailing bytes).
 *
 * Byte vectors are written as hex text: pairs of hex digits, whitespace ignored, and 'text' for
 * ASCII bytes, so each field sits on its own line with its comment.
 */
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

#define MAXMSG 4096

/* ---- helpers ------------------------------------------------------------------------------- */

/** Parse hex text ("0a 0b 'txt'") into out. \return bytes. */
static size_t unhex(const char *src, uint8_t *out, size_t cap)
{
	size_t n = 0;
	for (const char *p = src; *p;) {
		if (*p == ' ' || *p == '\n' || *p == '\t') {
			p++;
		} else if (*p == '\'') {
			for (p++; *p && *p != '\''; p++) {
				assert_true(n < cap);
				out[n++] = (uint8_t)*p;
			}
			assert_int_equal(*p, '\'');
			p++;
		} else {
			unsigned v;
			assert_true(p[1] != 0);
			char two[3] = {p[0], p[1], 0};
			char *end;
			v = (unsigned)strtoul(two, &end, 16);
			if (end != two + 2)
				fail_msg("bad hex at '%.8s'", p);
			assert_true(n < cap);
			out[n++] = (uint8_t)v;
			p += 2;
		}
	}
	return n;
}

static void assert_slice(hdl_slice_t s, const char *want)
{
	size_t n = strlen(want);
	if (s.len != n || (n && memcmp(s.p, want, n) != 0))
		fail_msg("slice '%.*s' != '%s'", (int)s.len, s.p ? (const char *)s.p : "", want);
}

static void assert_slice_hex(hdl_slice_t s, const char *hex)
{
	uint8_t want[1024];
	size_t n = unhex(hex, want, sizeof(want));
	assert_int_equal(s.len, n);
	if (n)
		assert_memory_equal(s.p, want, n);
}

static uint8_t arena_buf[8192];

struct decoded {
	uint8_t bytes[MAXMSG];
	size_t len;
	hdl_arena_t a;
	hdl_msg_t m;
};

static struct decoded *decode_hex(const char *hex)
{
	struct decoded *d = calloc(1, sizeof(*d));
	assert_non_null(d);
	d->len = unhex(hex, d->bytes, sizeof(d->bytes));
	hdl_arena_init(&d->a, arena_buf, sizeof(arena_buf), 1u << 20);
	int rc = hdl_msg_decode(d->bytes, d->len, &d->a, &d->m);
	if (rc != HDL_EOK)
		fail_msg("decode: %s (%.60s)", hdl_errname(rc), hex);
	return d;
}

static void decoded_free(struct decoded *d)
{
	hdl_arena_free(&d->a);
	free(d);
}

static int decode_rc(const char *hex)
{
	uint8_t buf[MAXMSG];
	size_t n = unhex(hex, buf, sizeof(buf));
	hdl_arena_t a;
	hdl_msg_t m;
	hdl_arena_init(&a, NULL, 0, 1u << 20);
	int rc = hdl_msg_decode(buf, n, &a, &m);
	hdl_arena_free(&a);
	return rc;
}

#define ASSERT_DECODE_ERR(hex, err)                                                            \
	do {                                                                                   \
		int rc_ = decode_rc(hex);                                                      \
		if (rc_ != (err))                                                              \
			fail_msg("decode = %s, want %s", hdl_errname(rc_), hdl_errname(err)); \
	} while (0)

/* ---- the vectors ----------------------------------------------------------------------------- */

/* Envelope prefix used by most vectors: 2.11 suggesting 2.11, SessionId 0, RequestId 0x01020304. */
#define ENV211 "02 0b 02 0b  00000000  01020304  00000000"

/* handle-protocol.md §3.3: resolution request for 20.500.12345/abc */
static const char WORKED_REQ[] =
	"02 0a"          /* version 2.10 */
	"02 0b"          /* no flags, suggests 2.11 */
	"00000000"       /* SessionId */
	"01020304"       /* RequestId */
	"00000000"       /* SequenceNumber */
	"00000038"       /* MessageLength 56 */
	"00000001"       /* OpCode RESOLUTION */
	"00000000"       /* ResponseCode 0 (request) */
	"19000000"       /* OpFlag REC|CA|PO */
	"ffff"           /* SiteInfoSerial unknown */
	"00 00"          /* RecursionCount, reserved */
	"70000000"       /* ExpirationTime */
	"0000001c"       /* BodyLength 28 */
	"00000010 '20.500.12345/abc'" /* STR handle */
	"00000000"       /* no indexes */
	"00000000"       /* no types */
	"00000000";      /* CredentialLength 0 */

/* §3.3: the matching success response with one URL value */
static const char WORKED_RESP[] =
	"02 0a 02 0b 00000000 01020304 00000000" /* 2.10, RequestId echoed */
	"00000065"       /* MessageLength 101 */
	"00000001"       /* OpCode RESOLUTION */
	"00000001"       /* RC_SUCCESS */
	"19000000"       /* OpFlag */
	"0001 00 00"     /* serial 1, recursion 0 */
	"70000000"       /* ExpirationTime */
	"00000049"       /* BodyLength 73 */
	"00000010 '20.500.12345/abc'" /* STR handle */
	"00000001"       /* 1 value */
	"00000001"       /* index 1 */
	"65000000"       /* timestamp */
	"00"             /* TTL type relative */
	"00015180"       /* TTL 86400 */
	"0e"             /* permissions ADMIN_READ|ADMIN_WRITE|PUBLIC_READ */
	"00000003 'URL'" /* type */
	"00000014 'https://example.org/'" /* data */
	"00000000"       /* 0 references */
	"00000000";      /* CredentialLength 0 */

static void chk_worked_req(const hdl_msg_t *m)
{
	assert_int_equal(m->env.major, 2);
	assert_int_equal(m->env.minor, 10);
	assert_int_equal(m->env.flags, 0);
	assert_int_equal(m->env.sugg_major, 2);
	assert_int_equal(m->env.sugg_minor, 11);
	assert_int_equal(m->env.request_id, 0x01020304);
	assert_int_equal(m->env.msg_len, 56);
	assert_int_equal(m->hdr.opcode, HDL_OC_RESOLUTION);
	assert_int_equal(m->hdr.rcode, 0);
	assert_int_equal(m->hdr.opflags, HDL_OF_REC | HDL_OF_CA | HDL_OF_PO);
	assert_int_equal(m->hdr.site_serial, 0xffff);
	assert_int_equal(m->hdr.expiration, 0x70000000);
	assert_int_equal(m->hdr.body_len, 28);
	assert_slice(m->u.resolve.handle, "20.500.12345/abc");
	assert_int_equal(m->u.resolve.n_indexes, 0);
	assert_int_equal(m->u.resolve.n_types, 0);
	assert_true(m->has_cred);
	assert_int_equal(m->cred.len, 0);
	assert_int_equal(m->trailing.len, 0);
}

static void chk_worked_resp(const hdl_msg_t *m)
{
	assert_int_equal(m->hdr.rcode, HDL_RC_SUCCESS);
	assert_int_equal(m->hdr.site_serial, 1);
	assert_slice(m->u.values.handle, "20.500.12345/abc");
	assert_int_equal(m->u.values.n_values, 1);
	const hdl_value_t *v = &m->u.values.values[0];
	assert_int_equal(v->index, 1);
	assert_int_equal(v->timestamp, 0x65000000);
	assert_int_equal(v->ttl_type, HDL_TTL_RELATIVE);
	assert_int_equal(v->ttl, 86400);
	assert_int_equal(v->perms, HDL_PERM_DEFAULT);
	assert_slice(v->type, "URL");
	assert_slice(v->data, "https://example.org/");
	assert_int_equal(v->n_refs, 0);
	assert_int_equal(m->rd.len, 0);
}

/* Resolution request with index and type filters. */
static const char RESOLVE_FILTERS[] =
	ENV211 "00000051"  /* MessageLength 81 */
	"00000001 00000000 19000000 0001 00 00 70000000" /* RESOLUTION, request */
	"00000035"         /* BodyLength 53 */
	"0000000d '88.100.1/test'" /* STR handle */
	"00000002 00000064 0000012c" /* 2 indexes: 100, 300 */
	"00000002"         /* 2 types */
	"00000008 'HS_ADMIN'"
	"00000004 'URL.'"
	"00000000";        /* CredentialLength */

static void chk_resolve_filters(const hdl_msg_t *m)
{
	assert_slice(m->u.resolve.handle, "88.100.1/test");
	assert_int_equal(m->u.resolve.n_indexes, 2);
	assert_int_equal(m->u.resolve.indexes[0], 100);
	assert_int_equal(m->u.resolve.indexes[1], 300);
	assert_int_equal(m->u.resolve.n_types, 2);
	assert_slice(m->u.resolve.types[0], "HS_ADMIN");
	assert_slice(m->u.resolve.types[1], "URL.");
}

/* Resolution response at 2.10 with the RD block (SHA-256 of WORKED_REQ) and a value with a
 * reference and an absolute TTL. */
static const char RESOLVE_RESP_RD[] =
	"02 0a 02 0b 00000000 01020304 00000000"
	"000000be"         /* MessageLength 190 */
	"00000001 00000001" /* RESOLUTION, SUCCESS */
	"19800000"         /* REC|CA|PO|RD */
	"0001 00 00 70000000"
	"000000a2"         /* BodyLength 162 */
	"03"               /* RD: SHA-256 */
	"edc68124246ee6479612802532ca23bb1fca61a76d49473612a74fc9ec13c9c8"
	"00000010 '20.500.12345/abc'" /* handle */
	"00000002"         /* 2 values */
	"00000001 65000000 00 00015180 0e" /* value 1: index, ts, relative, 86400, perms */
	"00000003 'URL' 00000014 'https://example.org/'"
	"00000000"         /* no references */
	"00000002 65000001 01 70000000 0c" /* value 2: absolute TTL, admin-only */
	"00000004 'DESC' 00000001 'd'"
	"00000001"         /* 1 reference */
	"00000011 '0.NA/20.500.12345' 0000012c" /* (0.NA/20.500.12345, 300) */
	"00000000";        /* CredentialLength */

static void chk_resolve_resp_rd(const hdl_msg_t *m)
{
	assert_int_equal(m->rd_alg, HDL_DIGEST_SHA256);
	assert_slice_hex(m->rd,
	                 "edc68124246ee6479612802532ca23bb1fca61a76d49473612a74fc9ec13c9c8");
	assert_int_equal(m->u.values.n_values, 2);
	const hdl_value_t *v = &m->u.values.values[1];
	assert_int_equal(v->index, 2);
	assert_int_equal(v->timestamp, 0x65000001);
	assert_int_equal(v->ttl_type, HDL_TTL_ABSOLUTE);
	assert_int_equal(v->ttl, 0x70000000);
	assert_int_equal(v->perms, HDL_PERM_ADMIN_READ | HDL_PERM_ADMIN_WRITE);
	assert_slice(v->type, "DESC");
	assert_slice(v->data, "d");
	assert_int_equal(v->n_refs, 1);
	assert_slice(v->refs[0].handle, "0.NA/20.500.12345");
	assert_int_equal(v->refs[0].index, 300);
}

static const char SITEINFO_REQ[] =
	ENV211 "00000021"  /* MessageLength 33 */
	"00000002 00000000 19000000 0001 00 00 70000000" /* GET_SITEINFO */
	"00000005"         /* BodyLength */
	"00000001 '/'"     /* STR handle "/" */
	"00000000";

static void chk_siteinfo_req(const hdl_msg_t *m)
{
	assert_slice(m->u.handle, "/");
}

/* The HS_SITE record of a one-server site (54 bytes). */
#define SITE_HEX                                                                               \
	"0001"             /* DataFormatVersion 1 */                                           \
	"02 0a"            /* protocol 2.10 */                                                 \
	"0001"             /* serial 1 */                                                      \
	"80"               /* primary */                                                       \
	"00"               /* hash option */                                                   \
	"00000000"         /* hash filter "" */                                                \
	"00000000"         /* 0 attributes */                                                  \
	"00000001"         /* 1 server */                                                      \
	"00000001"         /* server id 1 */                                                   \
	"000000000000000000000000 7f000001" /* 127.0.0.1 */                                    \
	"00000000"         /* no public key */                                                 \
	"00000001 03 01 00000a51" /* 1 interface: admin+query, TCP, 2641 */

static const char SITEINFO_RESP[] =
	ENV211 "00000052"  /* MessageLength 82 */
	"00000002 00000001 19000000 0001 00 00 70000000" /* GET_SITEINFO, SUCCESS */
	"00000036"         /* BodyLength 54 */
	SITE_HEX           /* raw HS_SITE, no length prefix */
	"00000000";

static void chk_siteinfo_resp(const hdl_msg_t *m)
{
	assert_slice_hex(m->u.site, SITE_HEX);
}

/* HS_ADMIN value data: all permissions, 0.NA/88.100 index 300 (21 bytes) */
#define ADMIN_VALUE_HEX                                                                        \
	"00000064 65000000 00 00015180 0e" /* index 100 */                                     \
	"00000008 'HS_ADMIN'"                                                                  \
	"00000015 0fff 0000000b '0.NA/88.100' 0000012c"                                        \
	"00000000"

static const char CREATE_REQ[] =
	ENV211 "00000067"  /* MessageLength 103 */
	"00000064 00000000 19000000 0001 00 00 70000000" /* CREATE_HANDLE */
	"0000004b"         /* BodyLength 75 */
	"0000000c '88.100.1/new'" /* handle */
	"00000001"         /* 1 value */
	ADMIN_VALUE_HEX
	"00000000";

static void chk_create_req(const hdl_msg_t *m)
{
	assert_slice(m->u.values.handle, "88.100.1/new");
	assert_int_equal(m->u.values.n_values, 1);
	assert_int_equal(m->u.values.values[0].index, 100);
	assert_slice(m->u.values.values[0].type, "HS_ADMIN");
	assert_slice_hex(m->u.values.values[0].data, "0fff 0000000b '0.NA/88.100' 0000012c");
}

static const char CREATE_RESP[] =
	ENV211 "0000002c"
	"00000064 00000001 19000000 0001 00 00 70000000" /* CREATE_HANDLE, SUCCESS */
	"00000010"         /* BodyLength 16 */
	"0000000c '88.100.1/new'" /* the handle created (Handle.Net >= 8) */
	"00000000";

static void chk_create_resp(const hdl_msg_t *m)
{
	assert_slice(m->u.handle, "88.100.1/new");
}

static const char CREATE_RESP_OLD[] =
	ENV211 "0000001c"
	"00000064 00000001 19000000 0001 00 00 70000000"
	"00000000"         /* empty body (older servers) */
	"00000000";

static const char DELETE_REQ[] =
	ENV211 "0000002c"
	"00000065 00000000 19000000 0001 00 00 70000000" /* DELETE_HANDLE */
	"00000010"
	"0000000c '88.100.1/new'"
	"00000000";

static void chk_handle_new(const hdl_msg_t *m)
{
	assert_slice(m->u.handle, "88.100.1/new");
}

static const char DELETE_RESP[] =
	ENV211 "0000001c"
	"00000065 00000001 19000000 0001 00 00 70000000" /* DELETE_HANDLE, SUCCESS */
	"00000000"
	"00000000";

static const char ADD_REQ[] =
	ENV211 "0000005c"  /* MessageLength 92 */
	"00000066 00000000 19000000 0001 00 00 70000000" /* ADD_VALUE */
	"00000040"         /* BodyLength 64 */
	"0000000c '88.100.1/new'"
	"00000001"
	"00000002 6b0c7e07 00 00015180 0e"
	"00000005 'EMAIL' 0000000d 'a@example.org'"
	"00000000"
	"00000000";

static void chk_add_req(const hdl_msg_t *m)
{
	assert_slice(m->u.values.handle, "88.100.1/new");
	assert_int_equal(m->u.values.n_values, 1);
	assert_int_equal(m->u.values.values[0].index, 2);
	assert_int_equal(m->u.values.values[0].timestamp, 0x6b0c7e07);
	assert_slice(m->u.values.values[0].type, "EMAIL");
	assert_slice(m->u.values.values[0].data, "a@example.org");
}

/* ADD_VALUE success with a SHA-256 RD block and no other field. */
static const char ADD_RESP_RD[] =
	ENV211 "0000003d"  /* MessageLength 61 */
	"00000066 00000001 00800000 0001 00 00 70000000" /* ADD_VALUE, SUCCESS, RD */
	"00000021"         /* BodyLength 33 */
	"03 0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20"
	"00000000";

static void chk_add_resp_rd(const hdl_msg_t *m)
{
	assert_int_equal(m->rd_alg, HDL_DIGEST_SHA256);
	assert_slice_hex(m->rd, "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20");
}

static const char REMOVE_REQ[] =
	ENV211 "00000038"
	"00000067 00000000 19000000 0001 00 00 70000000" /* REMOVE_VALUE */
	"0000001c"         /* BodyLength 28 */
	"0000000c '88.100.1/new'"
	"00000002 00000002 00000003" /* indexes 2, 3 */
	"00000000";

static void chk_remove_req(const hdl_msg_t *m)
{
	assert_slice(m->u.indexes.handle, "88.100.1/new");
	assert_int_equal(m->u.indexes.n_indexes, 2);
	assert_int_equal(m->u.indexes.indexes[0], 2);
	assert_int_equal(m->u.indexes.indexes[1], 3);
}

static const char MODIFY_REQ[] =
	ENV211 "00000055"  /* 85 */
	"00000068 00000000 19000000 0001 00 00 70000000" /* MODIFY_VALUE */
	"00000039"         /* 57 */
	"0000000c '88.100.1/new'"
	"00000001"
	"00000001 6b0c7e08 00 00015180 0e"
	"00000003 'URL' 00000008 'http://x'"
	"00000000"
	"00000000";

static void chk_modify_req(const hdl_msg_t *m)
{
	assert_int_equal(m->u.values.n_values, 1);
	assert_slice(m->u.values.values[0].type, "URL");
	assert_slice(m->u.values.values[0].data, "http://x");
}

static const char LIST_REQ[] =
	ENV211 "0000002b"
	"00000069 00000000 19000000 0001 00 00 70000000" /* LIST_HANDLES */
	"0000000f"
	"0000000b '0.NA/88.100'" /* the prefix handle */
	"00000000";

static void chk_prefix_handle(const hdl_msg_t *m)
{
	assert_slice(m->u.handle, "0.NA/88.100");
}

static const char LIST_RESP[] =
	ENV211 "00000048"  /* 72 */
	"00000069 00000001 04000000 0001 00 00 70000000" /* LIST_HANDLES, SUCCESS, CN */
	"0000002c"         /* 44 */
	"00000003"         /* 3 handles */
	"0000000a '88.100/abc'"
	"00000008 '88.100/d'"
	"0000000a '88.100/efg'"
	"00000000";

static void chk_list_resp(const hdl_msg_t *m)
{
	assert_int_equal(m->hdr.opflags, HDL_OF_CN);
	assert_int_equal(m->u.list.n_handles, 3);
	assert_slice(m->u.list.handles[0], "88.100/abc");
	assert_slice(m->u.list.handles[1], "88.100/d");
	assert_slice(m->u.list.handles[2], "88.100/efg");
}

/* Challenge answer (OC 200), HS_PUBKEY form: BYTES "SHA-256" + BYTES signature */
static const char ANSWER_REQ[] =
	"02 0b 02 0b 00001234 459941be 00000000" /* SessionId of the challenge, new RequestId */
	"00000053"         /* 83 */
	"000000c8 00000000 19000000 ffff 00 00 70000000" /* CHALLENGE_RESPONSE */
	"00000037"         /* 55 */
	"00000009 'HS_PUBKEY'"  /* auth type */
	"0000000b '0.NA/88.100'" /* identity handle */
	"0000012c"         /* identity index 300 */
	"00000013"         /* signedResponse, 19 bytes: */
	"00000007 'SHA-256' 00000004 'sig!'"
	"00000000";

static void chk_answer_req(const hdl_msg_t *m)
{
	assert_int_equal(m->env.session_id, 0x1234);
	assert_int_equal(m->hdr.site_serial, 0xffff);
	assert_slice(m->u.answer.auth_type, "HS_PUBKEY");
	assert_slice(m->u.answer.id_handle, "0.NA/88.100");
	assert_int_equal(m->u.answer.id_index, 300);
	assert_slice_hex(m->u.answer.signed_response, "00000007 'SHA-256' 00000004 'sig!'");
}

/* Verify (OC 201), Handle.Net form: the digest as BYTES */
static const char VERIFY_BYTES_REQ[] =
	ENV211 "0000005e"  /* 94 */
	"000000c9 00000000 40000000 0001 00 00 70000000" /* VERIFY_RESPONSE, CT */
	"00000042"         /* 66 */
	"0000000b '0.NA/88.100' 0000012c" /* identity */
	"00000010 000102030405060708090a0b0c0d0e0f" /* nonce */
	"00000010 f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff" /* digest as BYTES (MD5 length) */
	"00000003 'mac'"  /* signedResponse */
	"00000000";

static void chk_verify_bytes(const hdl_msg_t *m)
{
	const hdl_body_verify_t *v = &m->u.verify;
	assert_slice(v->id_handle, "0.NA/88.100");
	assert_int_equal(v->id_index, 300);
	assert_slice_hex(v->nonce, "000102030405060708090a0b0c0d0e0f");
	assert_int_equal(v->digest_alg, HDL_DIGEST_OLD_MD5);
	assert_slice_hex(v->digest, "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff");
	assert_slice(v->signed_response, "mac");
}

/* Verify (OC 201), RFC form: U8 alg + fixed-length digest */
static const char VERIFY_RFC_REQ[] =
	ENV211 "0000005f"  /* 95 */
	"000000c9 00000000 40000000 0001 00 00 70000000"
	"00000043"         /* 67 */
	"0000000b '0.NA/88.100' 0000012c"
	"00000010 000102030405060708090a0b0c0d0e0f"
	"02 a9993e364706816aba3e25717850c26c9cd0d89d" /* SHA-1 + 20 bytes */
	"00000003 'mac'"
	"00000000";

static void chk_verify_rfc(const hdl_msg_t *m)
{
	assert_int_equal(m->u.verify.digest_alg, HDL_DIGEST_SHA1);
	assert_slice_hex(m->u.verify.digest, "a9993e364706816aba3e25717850c26c9cd0d89d");
	assert_slice(m->u.verify.signed_response, "mac");
}

static const char VERIFY_RESP[] =
	ENV211 "0000001d"
	"000000c9 00000001 40000000 0001 00 00 70000000" /* VERIFY_RESPONSE, SUCCESS */
	"00000001"
	"01"               /* valid */
	"00000000";

static void chk_verify_resp(const hdl_msg_t *m)
{
	assert_int_equal(m->u.verify_ok, 1);
}

static const char HOME_REQ[] =
	ENV211 "0000002b"
	"0000012c 00000000 19000000 0001 00 00 70000000" /* HOME_NA */
	"0000000f 0000000b '0.NA/88.100'"
	"00000000";

static const char UNHOME_REQ[] =
	ENV211 "0000002b"
	"0000012d 00000000 19000000 0001 00 00 70000000" /* UNHOME_NA */
	"0000000f 0000000b '0.NA/88.100'"
	"00000000";

static const char HOME_RESP[] =
	ENV211 "0000001c"
	"0000012c 00000001 19000000 0001 00 00 70000000" /* HOME_NA, SUCCESS */
	"00000000 00000000";

/* Session setup (OC 400), DH mode 4, with Handle.Net's 2 trailing zero bytes */
static const char SESSION_REQ[] =
	ENV211 "00000043"  /* 67 */
	"00000190 00000000 59800000 ffff 00 00 70000000" /* SESSION_SETUP, CT|REC|CA|PO|RD */
	"00000027"         /* 39 */
	"0004"             /* mode 4 (DH) */
	"00015180"         /* timeout 86400 */
	"0000000b '0.NA/88.100' 0000012c" /* identity */
	"00000008 0102030405060708" /* public key */
	"0000"             /* Handle.Net quirk: 2 zero bytes */
	"00000000";

static void chk_session_req(const hdl_msg_t *m)
{
	const hdl_body_session_t *s = &m->u.session;
	assert_int_equal(s->mode, 4);
	assert_int_equal(s->timeout, 86400);
	assert_slice(s->id_handle, "0.NA/88.100");
	assert_int_equal(s->id_index, 300);
	assert_slice_hex(s->pubkey, "0102030405060708");
	assert_int_equal(s->key_handle.len, 0);
	assert_slice_hex(m->trailing, "0000");
}

/* Session setup mode 3 (key at a handle), anonymous identity */
static const char SESSION_REQ_MODE3[] =
	ENV211 "00000042"  /* 66 */
	"00000190 00000000 59800000 ffff 00 00 70000000"
	"00000026"         /* 38 */
	"0003 00000258"    /* mode 3, timeout 600 */
	"00000000 ffffffff" /* no identity, index -1 */
	"00000010 '0.NA/88.100/keys' 0000012d" /* key handle + index */
	"00000000";

static void chk_session_mode3(const hdl_msg_t *m)
{
	const hdl_body_session_t *s = &m->u.session;
	assert_int_equal(s->mode, 3);
	assert_int_equal(s->timeout, 600);
	assert_int_equal(s->id_handle.len, 0);
	assert_int_equal(s->id_index, 0xffffffffu);
	assert_slice(s->key_handle, "0.NA/88.100/keys");
	assert_int_equal(s->key_index, 301);
	assert_int_equal(s->pubkey.len, 0);
}

static const char SESSION_RESP[] =
	"02 0b 02 0b 00000077 01020304 00000000" /* new SessionId 0x77 */
	"0000002a"         /* 42 */
	"00000190 00000001 59000000 0001 00 00 70000000" /* SESSION_SETUP, SUCCESS */
	"0000000e"         /* 14 */
	"0004"             /* mode */
	"00000006 00000003 abcd" /* data: cipher AES + key bytes */
	"0000"             /* 2 zero bytes */
	"00000000";

static void chk_session_resp(const hdl_msg_t *m)
{
	assert_int_equal(m->env.session_id, 0x77);
	assert_int_equal(m->u.session_resp.mode, 4);
	assert_slice_hex(m->u.session_resp.data, "00000003 abcd");
	assert_slice_hex(m->trailing, "0000");
}

static const char TERMINATE_REQ[] =
	"02 0b 02 0b 00000077 01020304 00000000"
	"00000020"
	"00000191 00000000 19000000 0001 00 00 70000000" /* SESSION_TERMINATE */
	"00000004 00000000" /* STR handle "" */
	"00000000";

static void chk_terminate(const hdl_msg_t *m)
{
	assert_int_equal(m->u.handle.len, 0);
}

static const char EXCHANGEKEY_REQ[] =
	"02 0b 02 0b 00000077 01020304 00000000"
	"00000028"
	"00000192 00000000 19000000 0001 00 00 70000000" /* SESSION_EXCHANGEKEY */
	"0000000c 00000008 1122334455667788" /* BYTES encrypted key */
	"00000000";

static void chk_exchangekey(const hdl_msg_t *m)
{
	assert_slice_hex(m->u.bytes, "1122334455667788");
}

/* IDIS OC 2001 login: no credential at all (MessageLength = 24 + BodyLength) */
static const char LOGIN_REQ[] =
	"02 0a 02 0b 00002711 00000003 00000000" /* client-chosen SessionId 10001 */
	"0000002b"         /* 43 = 24 + 19 */
	"000007d1 00000000 10800000 ffff 00 00 6b0d26d1" /* LOGIN_ID_SYSTEM, REC|RD */
	"00000013"         /* 19 */
	"0000000b '0.NA/88.100' 0000012c";

static void chk_login(const hdl_msg_t *m)
{
	assert_int_equal(m->env.session_id, 10001);
	assert_int_equal(m->hdr.opcode, HDL_OC_LOGIN_ID_SYSTEM);
	assert_slice(m->u.login.id_handle, "0.NA/88.100");
	assert_int_equal(m->u.login.id_index, 300);
	assert_false(m->has_cred);
	assert_int_equal(m->cred.len, 0);
}

/* Challenge (RC 402) at 2.11: SHA-256 RD of the request, then the nonce */
static const char CHALLENGE_211[] =
	"02 0b 02 0b 00001234 01020304 00000000" /* server-chosen SessionId */
	"00000051"         /* 81 */
	"00000064 00000192 00800000 0001 00 00 70000000" /* CREATE_HANDLE, RC 402, RD */
	"00000035"         /* 53 */
	"03 edc68124246ee6479612802532ca23bb1fca61a76d49473612a74fc9ec13c9c8" /* RD */
	"00000010 4c05f9cb191e2c7fca87fd57e43376b7" /* nonce */
	"00000000";

static void chk_challenge_211(const hdl_msg_t *m)
{
	assert_int_equal(m->env.session_id, 0x1234);
	assert_int_equal(m->hdr.opcode, HDL_OC_CREATE_HANDLE);
	assert_int_equal(m->hdr.rcode, HDL_RC_AUTHENTICATION_NEEDED);
	assert_int_equal(m->rd_alg, HDL_DIGEST_SHA256);
	assert_slice_hex(m->rd, "edc68124246ee6479612802532ca23bb1fca61a76d49473612a74fc9ec13c9c8");
	assert_slice_hex(m->u.challenge.nonce, "4c05f9cb191e2c7fca87fd57e43376b7");
	assert_int_equal(m->u.challenge.old_digest.len, 0);
}

/* Challenge at 2.0: BYTES nonce, BYTES MD5 digest, no RD block */
static const char CHALLENGE_20[] =
	"02 00 00 00 00001234 01020304 00000000" /* 2.0, no suggestion */
	"00000044"         /* 68 */
	"00000064 00000192 00000000 0001 00 00 70000000"
	"00000028"         /* 40 */
	"00000010 4c05f9cb191e2c7fca87fd57e43376b7" /* nonce */
	"00000010 900150983cd24fb0d6963f7d28e17f72" /* MD5 of the request */
	"00000000";

static void chk_challenge_20(const hdl_msg_t *m)
{
	assert_int_equal(m->env.minor, 0);
	assert_int_equal(m->env.sugg_major, 0);
	assert_int_equal(m->rd.len, 0);
	assert_slice_hex(m->u.challenge.nonce, "4c05f9cb191e2c7fca87fd57e43376b7");
	assert_slice_hex(m->u.challenge.old_digest, "900150983cd24fb0d6963f7d28e17f72");
}

/* Service referral (RC 302) carrying an HS_SITE value */
static const char REFERRAL[] =
	ENV211 "00000086"  /* 134 */
	"00000001 0000012e 19000000 0001 00 00 70000000" /* RESOLUTION, RC 302 */
	"0000006a"         /* 106 */
	"0000000b '0.NA/88.100'" /* referral handle */
	"00000001"         /* 1 value */
	"00000001 00000000 00 00015180 0e"
	"00000007 'HS_SITE'"
	"00000036" SITE_HEX /* data: the HS_SITE record */
	"00000000"
	"00000000";

static void chk_referral(const hdl_msg_t *m)
{
	assert_int_equal(m->hdr.rcode, HDL_RC_SERVICE_REFERRAL);
	assert_slice(m->u.referral.handle, "0.NA/88.100");
	assert_int_equal(m->u.referral.n_values, 1);
	assert_slice(m->u.referral.values[0].type, "HS_SITE");
	assert_slice_hex(m->u.referral.values[0].data, SITE_HEX);
}

static const char ERROR_MSG[] =
	ENV211 "00000030"
	"00000001 00000064 19000000 0001 00 00 70000000" /* RESOLUTION, HANDLE_NOT_FOUND */
	"00000014"
	"00000010 'Handle not found'" /* STR message */
	"00000000";

static void chk_error_msg(const hdl_msg_t *m)
{
	assert_int_equal(m->hdr.rcode, HDL_RC_HANDLE_NOT_FOUND);
	assert_slice(m->u.error.message, "Handle not found");
	assert_int_equal(m->u.error.n_indexes, 0);
}

/* Error with an RD block (SHA-1 at 2.5) */
static const char ERROR_RD[] =
	"02 05 02 0b 00000000 01020304 00000000"
	"00000038"         /* 56 */
	"00000066 000000c9 00800000 0001 00 00 70000000" /* ADD_VALUE, VALUE_ALREADY_EXISTS, RD */
	"0000001c"         /* 28 */
	"02 a9993e364706816aba3e25717850c26c9cd0d89d" /* RD: SHA-1 */
	"00000003 'dup'"
	"00000000";

static void chk_error_rd(const hdl_msg_t *m)
{
	assert_int_equal(m->rd_alg, HDL_DIGEST_SHA1);
	assert_slice_hex(m->rd, "a9993e364706816aba3e25717850c26c9cd0d89d");
	assert_slice(m->u.error.message, "dup");
}

/* Error with DO-IRP offending indexes */
static const char ERROR_IDX[] =
	"03 00 03 00 00000000 01020304 00000000" /* 3.0 */
	"0000002f"         /* 47 */
	"00000066 000000c9 00000000 0001 00 00 70000000"
	"00000013"         /* 19 */
	"00000003 'dup'"
	"00000002 00000001 00000002" /* offending indexes 1, 2 */
	"00000000";

static void chk_error_idx(const hdl_msg_t *m)
{
	assert_int_equal(m->env.major, 3);
	assert_slice(m->u.error.message, "dup");
	assert_int_equal(m->u.error.n_indexes, 2);
	assert_int_equal(m->u.error.indexes[0], 1);
	assert_int_equal(m->u.error.indexes[1], 2);
}

/* Resolution request with the id-pointer SDK's extra empty field: 4 trailing body bytes */
static const char RESOLVE_TRAILING[] =
	"02 0a 02 0b 00000000 00000001 00000000"
	"00000039"         /* 57 */
	"00000001 00000000 19000000 ffff 00 00 6b0d26cf"
	"0000001d"         /* BodyLength 29, not 25 */
	"0000000d '88.100.1/test' 00000000 00000000"
	"00000000"         /* authBytes: trailing */
	"00000000";

static void chk_resolve_trailing(const hdl_msg_t *m)
{
	assert_slice(m->u.resolve.handle, "88.100.1/test");
	assert_slice_hex(m->trailing, "00000000");
	/* the trailing bytes are the end of the body, borrowed from the input */
	assert_ptr_equal(m->trailing.p, m->body.p + m->body.len - 4);
}

/* A credential (CT response): bytes after CredentialLength are exposed. */
static const char SIGNED_RESP[] =
	ENV211 "00000026"  /* 38 */
	"00000065 00000001 40000000 0001 00 00 70000000" /* DELETE_HANDLE, SUCCESS, CT */
	"00000000"         /* empty body */
	"0000000a 00 00 0000 00000000 00 00"; /* 10 credential bytes */

static void chk_signed(const hdl_msg_t *m)
{
	assert_true(m->has_cred);
	assert_slice_hex(m->cred, "00 00 0000 00000000 00 00");
}

struct vec {
	const char *name;
	const char *hex;
	hdl_body_kind_t kind;
	void (*check)(const hdl_msg_t *m);
};

static const struct vec vecs[] = {
	{"worked request", WORKED_REQ, HDL_BODY_RESOLVE, chk_worked_req},
	{"worked response", WORKED_RESP, HDL_BODY_VALUES, chk_worked_resp},
	{"resolution with filters", RESOLVE_FILTERS, HDL_BODY_RESOLVE, chk_resolve_filters},
	{"resolution response RD", RESOLVE_RESP_RD, HDL_BODY_VALUES, chk_resolve_resp_rd},
	{"resolution trailing", RESOLVE_TRAILING, HDL_BODY_RESOLVE, chk_resolve_trailing},
	{"siteinfo request", SITEINFO_REQ, HDL_BODY_HANDLE, chk_siteinfo_req},
	{"siteinfo response", SITEINFO_RESP, HDL_BODY_SITEINFO, chk_siteinfo_resp},
	{"create request", CREATE_REQ, HDL_BODY_VALUES, chk_create_req},
	{"create response", CREATE_RESP, HDL_BODY_HANDLE, chk_create_resp},
	{"create response (old)", CREATE_RESP_OLD, HDL_BODY_EMPTY, NULL},
	{"delete request", DELETE_REQ, HDL_BODY_HANDLE, chk_handle_new},
	{"delete response", DELETE_RESP, HDL_BODY_EMPTY, NULL},
	{"add request", ADD_REQ, HDL_BODY_VALUES, chk_add_req},
	{"add response RD", ADD_RESP_RD, HDL_BODY_EMPTY, chk_add_resp_rd},
	{"remove request", REMOVE_REQ, HDL_BODY_INDEXES, chk_remove_req},
	{"modify request", MODIFY_REQ, HDL_BODY_VALUES, chk_modify_req},
	{"list request", LIST_REQ, HDL_BODY_HANDLE, chk_prefix_handle},
	{"list response", LIST_RESP, HDL_BODY_LIST, chk_list_resp},
	{"challenge answer", ANSWER_REQ, HDL_BODY_CHAL_ANSWER, chk_answer_req},
	{"verify BYTES digest", VERIFY_BYTES_REQ, HDL_BODY_VERIFY, chk_verify_bytes},
	{"verify RFC digest", VERIFY_RFC_REQ, HDL_BODY_VERIFY, chk_verify_rfc},
	{"verify response", VERIFY_RESP, HDL_BODY_VERIFY_RESP, chk_verify_resp},
	{"home request", HOME_REQ, HDL_BODY_HANDLE, chk_prefix_handle},
	{"unhome request", UNHOME_REQ, HDL_BODY_HANDLE, chk_prefix_handle},
	{"home response", HOME_RESP, HDL_BODY_EMPTY, NULL},
	{"session setup mode 4", SESSION_REQ, HDL_BODY_SESSION_REQ, chk_session_req},
	{"session setup mode 3", SESSION_REQ_MODE3, HDL_BODY_SESSION_REQ, chk_session_mode3},
	{"session response", SESSION_RESP, HDL_BODY_SESSION_RESP, chk_session_resp},
	{"session terminate", TERMINATE_REQ, HDL_BODY_HANDLE, chk_terminate},
	{"exchange key", EXCHANGEKEY_REQ, HDL_BODY_BYTES, chk_exchangekey},
	{"login 2001", LOGIN_REQ, HDL_BODY_LOGIN, chk_login},
	{"challenge 2.11", CHALLENGE_211, HDL_BODY_CHALLENGE, chk_challenge_211},
	{"challenge 2.0", CHALLENGE_20, HDL_BODY_CHALLENGE, chk_challenge_20},
	{"referral", REFERRAL, HDL_BODY_REFERRAL, chk_referral},
	{"error", ERROR_MSG, HDL_BODY_ERROR, chk_error_msg},
	{"error RD", ERROR_RD, HDL_BODY_ERROR, chk_error_rd},
	{"error indexes", ERROR_IDX, HDL_BODY_ERROR, chk_error_idx},
	{"signed response", SIGNED_RESP, HDL_BODY_EMPTY, chk_signed},
};

#define NVECS (sizeof(vecs) / sizeof(vecs[0]))

/* Every vector decodes to its kind with the fields its comments say, and the lengths match. */
static void test_vectors_decode(void **state)
{
	(void)state;
	for (size_t i = 0; i < NVECS; i++) {
		struct decoded *d = decode_hex(vecs[i].hex);
		const hdl_msg_t *m = &d->m;
		if (m->kind != vecs[i].kind)
			fail_msg("%s: kind %d, want %d", vecs[i].name, m->kind, vecs[i].kind);
		assert_int_equal(m->env.msg_len + HDL_ENVELOPE_LEN, d->len);
		assert_int_equal(m->body.len, m->hdr.body_len);
		assert_ptr_equal(m->body.p, d->bytes + HDL_ENVELOPE_LEN + HDL_HEADER_LEN);
		assert_ptr_equal(m->signed_part.p, d->bytes + HDL_ENVELOPE_LEN);
		assert_int_equal(m->signed_part.len, HDL_HEADER_LEN + m->hdr.body_len);
		if (vecs[i].check)
			vecs[i].check(m);
		decoded_free(d);
	}
}

/* Hand-written vectors are canonical: encode(decode(x)) == x, and decode again agrees. */
static void test_vectors_roundtrip(void **state)
{
	(void)state;
	static uint8_t out[MAXMSG], out2[MAXMSG];
	for (size_t i = 0; i < NVECS; i++) {
		struct decoded *d = decode_hex(vecs[i].hex);
		size_t n = 0;
		int rc = hdl_msg_encode(&d->m, out, sizeof(out), &n);
		if (rc != HDL_EOK)
			fail_msg("%s: encode %s", vecs[i].name, hdl_errname(rc));
		if (n != d->len || memcmp(out, d->bytes, n) != 0)
			fail_msg("%s: re-encoding differs (%zu vs %zu bytes)", vecs[i].name, n, d->len);
		hdl_arena_t a;
		hdl_msg_t m2;
		hdl_arena_init(&a, NULL, 0, 1u << 20);
		assert_int_equal(hdl_msg_decode(out, n, &a, &m2), HDL_EOK);
		assert_true(cmp_msg(&d->m, &m2));
		size_t n2 = 0;
		assert_int_equal(hdl_msg_encode(&m2, out2, sizeof(out2), &n2), HDL_EOK);
		assert_int_equal(n2, n);
		assert_memory_equal(out2, out, n);
		/* a buffer one byte short: HDL_ESPACE, never an overrun */
		assert_int_equal(hdl_msg_encode(&d->m, out2, n - 1, &n2), HDL_ESPACE);
		assert_int_equal(hdl_msg_encode(&d->m, out2, HDL_ENVELOPE_LEN, &n2), HDL_ESPACE);
		hdl_arena_free(&a);
		decoded_free(d);
	}
}

static bool named_error(int rc)
{
	return rc == HDL_ETRUNC || rc == HDL_EMALF || rc == HDL_ELIMIT || rc == HDL_EUTF8 ||
	       rc == HDL_ETRAILING || rc == HDL_ENOMEM;
}

/* Every truncation of every vector: the frame cut anywhere is HDL_ETRUNC; the body cut anywhere
 * (lengths patched to match) is a named error or, for optional tails, a consistent message. */
static void test_vectors_truncated(void **state)
{
	(void)state;
	static uint8_t buf[MAXMSG], out[MAXMSG];
	for (size_t i = 0; i < NVECS; i++) {
		size_t len = unhex(vecs[i].hex, buf, sizeof(buf));
		for (size_t k = 0; k < len; k++) {
			uint8_t *copy = malloc(k ? k : 1); /* exact size: ASan sees any overread */
			memcpy(copy, buf, k);
			hdl_arena_t a;
			hdl_msg_t m;
			hdl_arena_init(&a, NULL, 0, 1u << 20);
			int rc = hdl_msg_decode(copy, k, &a, &m);
			if (rc != HDL_ETRUNC)
				fail_msg("%s cut at %zu: %s", vecs[i].name, k, hdl_errname(rc));
			hdl_arena_free(&a);
			free(copy);
		}
		uint32_t body_len = (uint32_t)buf[40] << 24 | (uint32_t)buf[41] << 16 |
		                    (uint32_t)buf[42] << 8 | buf[43];
		size_t cred_len = len - HDL_ENVELOPE_LEN - HDL_HEADER_LEN - body_len;
		for (uint32_t cut = 0; cut < body_len; cut++) {
			/* header + first `cut` body bytes + the credential section, lengths patched */
			size_t n = HDL_ENVELOPE_LEN + HDL_HEADER_LEN + cut + cred_len;
			uint8_t *copy = malloc(n);
			memcpy(copy, buf, HDL_ENVELOPE_LEN + HDL_HEADER_LEN + cut);
			memcpy(copy + HDL_ENVELOPE_LEN + HDL_HEADER_LEN + cut,
			       buf + HDL_ENVELOPE_LEN + HDL_HEADER_LEN + body_len, cred_len);
			uint32_t ml = (uint32_t)(n - HDL_ENVELOPE_LEN);
			copy[16] = (uint8_t)(ml >> 24), copy[17] = (uint8_t)(ml >> 16);
			copy[18] = (uint8_t)(ml >> 8), copy[19] = (uint8_t)ml;
			copy[40] = (uint8_t)(cut >> 24), copy[41] = (uint8_t)(cut >> 16);
			copy[42] = (uint8_t)(cut >> 8), copy[43] = (uint8_t)cut;
			hdl_arena_t a;
			hdl_msg_t m;
			hdl_arena_init(&a, NULL, 0, 1u << 20);
			int rc = hdl_msg_decode(copy, n, &a, &m);
			if (rc == HDL_EOK) {
				/* an optional tail was cut: what decoded must re-encode consistently */
				size_t on = 0;
				hdl_msg_t m2;
				assert_int_equal(hdl_msg_encode(&m, out, sizeof(out), &on), HDL_EOK);
				assert_int_equal(hdl_msg_decode(out, on, &a, &m2), HDL_EOK);
				assert_true(cmp_msg(&m, &m2));
			} else if (!named_error(rc)) {
				fail_msg("%s body cut at %u: %s", vecs[i].name, cut, hdl_errname(rc));
			}
			hdl_arena_free(&a);
			free(copy);
		}
	}
}

/* Body cuts that must fail: every field of these bodies is mandatory. */
static void test_mandatory_fields(void **state)
{
	(void)state;
	static const char *const strict[] = {WORKED_REQ,  RESOLVE_FILTERS, CREATE_REQ,
	                                     REMOVE_REQ,  ANSWER_REQ,      VERIFY_BYTES_REQ,
	                                     VERIFY_RFC_REQ, LOGIN_REQ,    CHALLENGE_211,
	                                     CHALLENGE_20, SITEINFO_REQ,   LIST_RESP};
	static uint8_t buf[MAXMSG];
	for (size_t i = 0; i < sizeof(strict) / sizeof(strict[0]); i++) {
		size_t len = unhex(strict[i], buf, sizeof(buf));
		hdl_msg_t m;
		hdl_arena_t a;
		hdl_arena_init(&a, NULL, 0, 1u << 20);
		assert_int_equal(hdl_msg_decode(buf, len, &a, &m), HDL_EOK);
		hdl_msg_t t = m;
		const uint8_t *body = m.body.p;
		for (uint32_t cut = 0; cut < m.body.len; cut++) {
			int rc = hdl_body_decode(&t, body, cut, &a);
			if (rc != HDL_ETRUNC)
				fail_msg("vector %zu body cut at %u: %s", i, cut, hdl_errname(rc));
			assert_int_equal(t.kind, HDL_BODY_NONE);
		}
		hdl_arena_free(&a);
	}
}

/* ---- the worked example ----------------------------------------------------------------------- */

/* §3.3 byte for byte: the encoder builds it from fields, and its SHA-256 is the documented RD. */
static void test_worked_example(void **state)
{
	(void)state;
	uint8_t want[128], out[128];
	size_t wlen = unhex(WORKED_REQ, want, sizeof(want));
	assert_int_equal(wlen, 76);

	hdl_msg_t m;
	hdl_msg_init(&m);
	assert_int_equal(m.env.major, 2);
	assert_int_equal(m.env.minor, 11);
	assert_int_equal(m.env.sugg_major, 2);
	assert_int_equal(m.env.sugg_minor, 11);
	m.env.minor = 10;
	m.env.request_id = 0x01020304;
	m.hdr.opcode = HDL_OC_RESOLUTION;
	m.hdr.opflags = HDL_OF_REC | HDL_OF_CA | HDL_OF_PO;
	m.hdr.site_serial = 0xffff;
	m.hdr.expiration = 0x70000000;
	m.kind = HDL_BODY_RESOLVE;
	m.u.resolve.handle = hdl_slice_str("20.500.12345/abc");
	size_t n = 0;
	assert_int_equal(hdl_msg_encode(&m, out, sizeof(out), &n), HDL_EOK);
	assert_int_equal(n, wlen);
	assert_memory_equal(out, want, wlen);

	/* the RD digest a 2.10 server returns: SHA-256 over header + body */
	struct decoded *d = decode_hex(WORKED_REQ);
	uint8_t dg[HDL_DIGEST_MAX_LEN], wantdg[32];
	size_t dl = 0;
	assert_int_equal(hdl_digest_alg_for(2, 10), HDL_DIGEST_SHA256);
	assert_int_equal(hdl_digest(HDL_DIGEST_SHA256, d->m.signed_part.p, d->m.signed_part.len, dg,
	                            &dl),
	                 HDL_EOK);
	assert_int_equal(dl, 32);
	unhex("edc68124246ee6479612802532ca23bb1fca61a76d49473612a74fc9ec13c9c8", wantdg, 32);
	assert_memory_equal(dg, wantdg, 32);
	assert_int_equal(d->m.signed_part.len, 24 + 28);
	decoded_free(d);

	/* the response, encoded from fields */
	uint8_t rwant[160];
	size_t rlen = unhex(WORKED_RESP, rwant, sizeof(rwant));
	hdl_value_t v = {
		.index = 1,
		.timestamp = 0x65000000,
		.ttl_type = HDL_TTL_RELATIVE,
		.ttl = 86400,
		.perms = HDL_PERM_DEFAULT,
		.type = hdl_slice_str("URL"),
		.data = hdl_slice_str("https://example.org/"),
	};
	hdl_msg_t r;
	hdl_msg_init(&r);
	r.env.minor = 10;
	r.env.request_id = 0x01020304;
	r.hdr.opcode = HDL_OC_RESOLUTION;
	r.hdr.rcode = HDL_RC_SUCCESS;
	r.hdr.opflags = HDL_OF_REC | HDL_OF_CA | HDL_OF_PO;
	r.hdr.site_serial = 1;
	r.hdr.expiration = 0x70000000;
	r.kind = HDL_BODY_VALUES;
	r.u.values.handle = hdl_slice_str("20.500.12345/abc");
	r.u.values.n_values = 1;
	r.u.values.values = &v;
	uint8_t rout[160];
	assert_int_equal(hdl_msg_encode(&r, rout, sizeof(rout), &n), HDL_EOK);
	assert_int_equal(n, rlen);
	assert_memory_equal(rout, rwant, rlen);
	assert_int_equal(hdl_value_size(&v), 49);

	/* the same response with the RD block of the request: RESOLVE_RESP_RD's first value */
	r.hdr.opflags |= HDL_OF_RD;
	r.rd_alg = HDL_DIGEST_SHA256;
	r.rd.p = wantdg;
	r.rd.len = 32;
	assert_int_equal(hdl_msg_encode(&r, rout, sizeof(rout), &n), HDL_EOK);
	assert_int_equal(n, rlen + 33);
	assert_int_equal(rout[44], HDL_DIGEST_SHA256);
	assert_memory_equal(rout + 45, wantdg, 32);
	assert_memory_equal(rout + 77, rwant + 44, rlen - 44);
}

/* The OC 2001 encoder leaves the credential out unless asked; others always write it. */
static void test_encode_credential_rules(void **state)
{
	(void)state;
	uint8_t want[128], out[128];
	size_t wlen = unhex(LOGIN_REQ, want, sizeof(want));
	struct decoded *d = decode_hex(LOGIN_REQ);
	size_t n = 0;
	assert_int_equal(hdl_msg_encode(&d->m, out, sizeof(out), &n), HDL_EOK);
	assert_int_equal(n, wlen);
	/* with has_cred, an empty CredentialLength is written */
	d->m.has_cred = true;
	assert_int_equal(hdl_msg_encode(&d->m, out, sizeof(out), &n), HDL_EOK);
	assert_int_equal(n, wlen + 4);
	assert_memory_equal(out + wlen, "\0\0\0\0", 4);
	decoded_free(d);

	/* any other request: CredentialLength 0 is always there */
	d = decode_hex(DELETE_REQ);
	d->m.has_cred = false;
	assert_int_equal(hdl_msg_encode(&d->m, out, sizeof(out), &n), HDL_EOK);
	assert_int_equal(n, d->len);
	assert_memory_equal(out, d->bytes, n);
	decoded_free(d);
}

static void test_encode_errors(void **state)
{
	(void)state;
	uint8_t out[256];
	size_t n = 99;
	hdl_msg_t m;
	hdl_msg_init(&m);
	m.hdr.opcode = HDL_OC_RESOLUTION;
	m.kind = (hdl_body_kind_t)99;
	assert_int_equal(hdl_msg_encode(&m, out, sizeof(out), &n), HDL_EINVAL);
	assert_int_equal(n, 0);

	/* more values than a message may carry */
	m.kind = HDL_BODY_VALUES;
	m.hdr.rcode = HDL_RC_SUCCESS;
	m.u.values.handle = hdl_slice_str("a/b");
	m.u.values.n_values = HDL_MAX_VALUES + 1;
	hdl_value_t *v = calloc(HDL_MAX_VALUES + 1, sizeof(*v));
	m.u.values.values = v;
	static uint8_t big[HDL_ENVELOPE_LEN + HDL_MAX_MESSAGE_LEN];
	assert_int_equal(hdl_msg_encode(&m, big, sizeof(big), &n), HDL_ELIMIT);
	assert_int_equal(hdl_values_encode(v, HDL_MAX_VALUES + 1, big, sizeof(big), &n),
	                 HDL_ELIMIT);

	/* a message over HDL_MAX_MESSAGE_LEN */
	static uint8_t blob[HDL_MAX_MESSAGE_LEN];
	m.kind = HDL_BODY_BYTES;
	m.hdr.opcode = HDL_OC_SESSION_EXCHANGEKEY;
	m.hdr.rcode = 0;
	m.u.bytes.p = blob;
	m.u.bytes.len = HDL_MAX_MESSAGE_LEN - HDL_HEADER_LEN - 8;
	assert_int_equal(hdl_msg_encode(&m, big, sizeof(big), &n), HDL_EOK);
	assert_int_equal(n, sizeof(big));
	m.u.bytes.len++;
	static uint8_t bigger[HDL_ENVELOPE_LEN + HDL_MAX_MESSAGE_LEN + 16];
	assert_int_equal(hdl_msg_encode(&m, bigger, sizeof(bigger), &n), HDL_ELIMIT);
	free(v);
}

/* ---- values ---------------------------------------------------------------------------------- */

static void test_values_codec(void **state)
{
	(void)state;
	uint8_t in[256], out[256];
	size_t len = unhex("00000002"                            /* 2 values */
	                   "00000001 65000000 00 00015180 0e"   /* value 1 */
	                   "00000003 'URL' 00000002 'x/'"
	                   "00000000"
	                   "00000064 00000000 01 00000000 0c"   /* value 2 */
	                   "00000008 'HS_VLIST' 00000000"
	                   "00000002"                           /* 2 references */
	                   "00000003 'a/b' 00000001"
	                   "00000000 00000000",                 /* ("", 0) */
	                   in, sizeof(in));
	hdl_arena_t a;
	hdl_arena_init(&a, NULL, 0, 1u << 20);
	hdl_value_t *v;
	uint32_t n;
	assert_int_equal(hdl_values_decode(in, len, &a, &v, &n), HDL_EOK);
	assert_int_equal(n, 2);
	assert_slice(v[0].data, "x/");
	assert_int_equal(v[1].index, 100);
	assert_int_equal(v[1].ttl_type, HDL_TTL_ABSOLUTE);
	assert_int_equal(v[1].n_refs, 2);
	assert_slice(v[1].refs[0].handle, "a/b");
	assert_int_equal(v[1].refs[1].handle.len, 0);
	assert_int_equal(4 + hdl_value_size(&v[0]) + hdl_value_size(&v[1]), len);
	size_t olen;
	assert_int_equal(hdl_values_encode(v, n, out, sizeof(out), &olen), HDL_EOK);
	assert_int_equal(olen, len);
	assert_memory_equal(out, in, len);
	for (size_t cap = 0; cap < len; cap++)
		assert_int_equal(hdl_values_encode(v, n, out, cap, &olen), HDL_ESPACE);
	/* exact consumption: one extra byte is HDL_ETRAILING; every cut is HDL_ETRUNC */
	in[len] = 0;
	assert_int_equal(hdl_values_decode(in, len + 1, &a, &v, &n), HDL_ETRAILING);
	assert_null(v);
	assert_int_equal(n, 0);
	for (size_t k = 0; k < len; k++)
		assert_int_equal(hdl_values_decode(in, k, &a, &v, &n), HDL_ETRUNC);
	/* empty list */
	assert_int_equal(hdl_values_decode((const uint8_t *)"\0\0\0\0", 4, &a, &v, &n), HDL_EOK);
	assert_int_equal(n, 0);
	hdl_arena_free(&a);
}

/* ---- hostile input ------------------------------------------------------------------------- */

static void test_hostile_lengths(void **state)
{
	(void)state;
	/* handle STR longer than the body (the credential follows: a sub-reader stops it) */
	ASSERT_DECODE_ERR(ENV211 "00000030"
	                  "00000065 00000000 19000000 0001 00 00 70000000"
	                  "00000010"
	                  "00000010 '88.100.1/new'" /* says 16, the body has 12 */
	                  "00000004 'ABCD'",        /* credential section: 8 bytes */
	                  HDL_ETRUNC);
	/* BodyLength past MessageLength */
	ASSERT_DECODE_ERR(ENV211 "0000002c"
	                  "00000065 00000000 19000000 0001 00 00 70000000"
	                  "00000011"
	                  "0000000c '88.100.1/new'"
	                  "00000000",
	                  HDL_ETRUNC);
	/* CredentialLength past the message */
	ASSERT_DECODE_ERR(ENV211 "0000002c"
	                  "00000065 00000000 19000000 0001 00 00 70000000"
	                  "00000010 0000000c '88.100.1/new'"
	                  "00000001",
	                  HDL_ETRUNC);
	/* a partial CredentialLength */
	ASSERT_DECODE_ERR(ENV211 "0000002a"
	                  "00000065 00000000 19000000 0001 00 00 70000000"
	                  "00000010 0000000c '88.100.1/new'"
	                  "0000",
	                  HDL_ETRUNC);
	/* bytes after the credential */
	ASSERT_DECODE_ERR(ENV211 "0000002d"
	                  "00000065 00000000 19000000 0001 00 00 70000000"
	                  "00000010 0000000c '88.100.1/new'"
	                  "00000000 00",
	                  HDL_ETRAILING);
	/* more bytes than MessageLength says */
	ASSERT_DECODE_ERR(ENV211 "0000002c"
	                  "00000065 00000000 19000000 0001 00 00 70000000"
	                  "00000010 0000000c '88.100.1/new'"
	                  "00000000 ff",
	                  HDL_ETRAILING);
	/* a value's type overrunning the value list (= the body) */
	ASSERT_DECODE_ERR(ENV211 "00000047"
	                  "00000066 00000000 19000000 0001 00 00 70000000"
	                  "0000002b"
	                  "0000000c '88.100.1/new' 00000001"
	                  "00000002 00000000 00 00015180 0e"
	                  "00000040 'EMAIL'" /* type length 64 */
	                  "00000000",
	                  HDL_ETRUNC);
	/* a reference count whose entries are not there */
	ASSERT_DECODE_ERR(ENV211 "0000004b"
	                  "00000066 00000000 19000000 0001 00 00 70000000"
	                  "0000002f"
	                  "0000000c '88.100.1/new' 00000001"
	                  "00000002 00000000 00 00015180 0e"
	                  "00000001 'U' 00000000"
	                  "00000003" /* 3 references, none follows */
	                  "00000000",
	                  HDL_ETRUNC);
	/* a nonce longer than the challenge body */
	ASSERT_DECODE_ERR(ENV211 "00000024"
	                  "00000064 00000192 00000000 0001 00 00 70000000"
	                  "00000008 00000010 01020304"
	                  "00000000",
	                  HDL_ETRUNC);
}

static void test_hostile_limits(void **state)
{
	(void)state;
	/* MessageLength over HDL_MAX_MESSAGE_LEN: refused from the envelope alone */
	ASSERT_DECODE_ERR(ENV211 "00040001", HDL_ELIMIT);
	uint8_t env[HDL_ENVELOPE_LEN];
	unhex(ENV211 "00040001", env, sizeof(env));
	hdl_envelope_t e;
	assert_int_equal(hdl_envelope_decode(env, sizeof(env), &e), HDL_ELIMIT);
	unhex(ENV211 "00040000", env, sizeof(env));
	assert_int_equal(hdl_envelope_decode(env, sizeof(env), &e), HDL_EOK);
	assert_int_equal(e.msg_len, HDL_MAX_MESSAGE_LEN);

	/* values over HDL_MAX_VALUES (2049) */
	ASSERT_DECODE_ERR(ENV211 "00000028"
	                  "00000001 00000001 19000000 0001 00 00 70000000"
	                  "0000000c 00000004 'a/bc' 00000801"
	                  "00000000",
	                  HDL_ELIMIT);
	/* 2048 values (allowed count) but no bytes for them */
	ASSERT_DECODE_ERR(ENV211 "00000028"
	                  "00000001 00000001 19000000 0001 00 00 70000000"
	                  "0000000c 00000004 'a/bc' 00000800"
	                  "00000000",
	                  HDL_ETRUNC);
	/* index filter over HDL_MAX_FILTER (257) */
	ASSERT_DECODE_ERR(ENV211 "0000002c"
	                  "00000001 00000000 19000000 0001 00 00 70000000"
	                  "00000010 00000004 'a/bc' 00000101 00000000"
	                  "00000000",
	                  HDL_ELIMIT);
	/* type filter over HDL_MAX_FILTER */
	ASSERT_DECODE_ERR(ENV211 "0000002c"
	                  "00000001 00000000 19000000 0001 00 00 70000000"
	                  "00000010 00000004 'a/bc' 00000000 00000101"
	                  "00000000",
	                  HDL_ELIMIT);
	/* 256 types declared (allowed) but absent */
	ASSERT_DECODE_ERR(ENV211 "0000002c"
	                  "00000001 00000000 19000000 0001 00 00 70000000"
	                  "00000010 00000004 'a/bc' 00000000 00000100"
	                  "00000000",
	                  HDL_ETRUNC);
	/* handle over HDL_MAX_HANDLE_LEN (2049), checked before the bytes */
	ASSERT_DECODE_ERR(ENV211 "00000020"
	                  "00000065 00000000 19000000 0001 00 00 70000000"
	                  "00000004 00000801"
	                  "00000000",
	                  HDL_ELIMIT);
	/* a type over HDL_MAX_TYPE_LEN (1025) */
	ASSERT_DECODE_ERR(ENV211 "00000030"
	                  "00000001 00000000 19000000 0001 00 00 70000000"
	                  "00000014 00000004 'a/bc' 00000000 00000001 00000401"
	                  "00000000",
	                  HDL_ELIMIT);
	/* references over HDL_MAX_REFS (257) */
	ASSERT_DECODE_ERR(ENV211 "0000004b"
	                  "00000066 00000000 19000000 0001 00 00 70000000"
	                  "0000002f"
	                  "0000000c '88.100.1/new' 00000001"
	                  "00000002 00000000 00 00015180 0e"
	                  "00000001 'U' 00000000"
	                  "00000101"
	                  "00000000",
	                  HDL_ELIMIT);
	/* list response over HDL_MAX_LIST (65537) */
	ASSERT_DECODE_ERR(ENV211 "00000020"
	                  "00000069 00000001 00000000 0001 00 00 70000000"
	                  "00000004 00010001"
	                  "00000000",
	                  HDL_ELIMIT);
	/* remove-value indexes over HDL_MAX_VALUES */
	ASSERT_DECODE_ERR(ENV211 "00000028"
	                  "00000067 00000000 19000000 0001 00 00 70000000"
	                  "0000000c 00000004 'a/bc' 00000801"
	                  "00000000",
	                  HDL_ELIMIT);
	/* a BYTES field over HDL_MAX_ARRAY_LEN */
	ASSERT_DECODE_ERR(ENV211 "00000020"
	                  "00000192 00000000 19000000 0001 00 00 70000000"
	                  "00000004 00100001"
	                  "00000000",
	                  HDL_ELIMIT);
}

static void test_hostile_utf8(void **state)
{
	(void)state;
	/* resolution of a handle with an overlong '/' */
	ASSERT_DECODE_ERR(ENV211 "00000028"
	                  "00000001 00000000 19000000 0001 00 00 70000000"
	                  "0000000c 00000004 'a' c0af 'b' 00000000 00000000",
	                  HDL_EUTF8);
	/* a surrogate in a delete request */
	ASSERT_DECODE_ERR(ENV211 "00000023"
	                  "00000065 00000000 19000000 0001 00 00 70000000"
	                  "00000007 00000003 eda080"
	                  "00000000",
	                  HDL_EUTF8);
	/* 0xff in a value type */
	ASSERT_DECODE_ERR(ENV211 "0000004b"
	                  "00000066 00000000 19000000 0001 00 00 70000000"
	                  "0000002f"
	                  "0000000c '88.100.1/new' 00000001"
	                  "00000002 00000000 00 00015180 0e"
	                  "00000001 ff 00000000"
	                  "00000000"
	                  "00000000",
	                  HDL_EUTF8);
	/* truncated multi-byte character in a list response handle */
	ASSERT_DECODE_ERR(ENV211 "00000026"
	                  "00000069 00000001 00000000 0001 00 00 70000000"
	                  "0000000a 00000001 00000002 'x' e6"
	                  "00000000",
	                  HDL_EUTF8);
	/* invalid UTF-8 in a login identity */
	ASSERT_DECODE_ERR("02 0a 02 0b 00002711 00000003 00000000 00000021"
	                  "000007d1 00000000 10800000 ffff 00 00 6b0d26d1"
	                  "00000009 00000001 80 0000012c",
	                  HDL_EUTF8);
	/* value data is bytes: 0xff there is fine */
	struct decoded *d = decode_hex(ENV211 "0000004b"
	                               "00000066 00000000 19000000 0001 00 00 70000000"
	                               "0000002f"
	                               "0000000c '88.100.1/new' 00000001"
	                               "00000002 00000000 00 00015180 0e"
	                               "00000000 00000001 ff"
	                               "00000000"
	                               "00000000");
	assert_slice_hex(d->m.u.values.values[0].data, "ff");
	decoded_free(d);
}

static void test_hostile_fields(void **state)
{
	(void)state;
	/* unknown major versions */
	ASSERT_DECODE_ERR("01 00 01 00 00000000 00000001 00000000 00000000", HDL_EVERSION);
	ASSERT_DECODE_ERR("04 00 04 00 00000000 00000001 00000000 00000000", HDL_EVERSION);
	/* an envelope cut short */
	ASSERT_DECODE_ERR("02 0b 02 0b 00000000", HDL_ETRUNC);
	/* unknown request opcode: envelope and header decoded, kind NONE */
	uint8_t buf[128];
	size_t n = unhex(ENV211 "0000001c"
	                 "000003e8 00000000 00000000 0001 00 00 70000000" /* OC 1000 */
	                 "00000000 00000000",
	                 buf, sizeof(buf));
	hdl_arena_t a;
	hdl_msg_t m;
	hdl_arena_init(&a, NULL, 0, 1u << 20);
	assert_int_equal(hdl_msg_decode(buf, n, &a, &m), HDL_EOPCODE);
	assert_int_equal(m.hdr.opcode, 1000);
	assert_int_equal(m.env.request_id, 0x01020304);
	assert_int_equal(m.kind, HDL_BODY_NONE);
	/* OC 106 (LIST_NA) and OC 0 are unknown requests too */
	n = unhex(ENV211 "0000001c 0000006a 00000000 00000000 0001 00 00 70000000 00000000 00000000",
	          buf, sizeof(buf));
	assert_int_equal(hdl_msg_decode(buf, n, &a, &m), HDL_EOPCODE);
	n = unhex(ENV211 "0000001c 00000000 00000000 00000000 0001 00 00 70000000 00000000 00000000",
	          buf, sizeof(buf));
	assert_int_equal(hdl_msg_decode(buf, n, &a, &m), HDL_EOPCODE);
	hdl_arena_free(&a);

	/* RD block with an unknown algorithm, and code 0 outside 2.0 */
	ASSERT_DECODE_ERR(ENV211 "0000001d"
	                  "00000065 00000001 00800000 0001 00 00 70000000"
	                  "00000001 09"
	                  "00000000",
	                  HDL_EMALF);
	ASSERT_DECODE_ERR(ENV211 "0000002d"
	                  "00000065 00000001 00800000 0001 00 00 70000000"
	                  "00000011 00 000102030405060708090a0b0c0d0e0f"
	                  "00000000",
	                  HDL_EMALF);
	/* 2.0 RD block: BYTES of exactly 16 */
	ASSERT_DECODE_ERR("02 00 00 00 00000000 01020304 00000000 00000020"
	                  "00000065 00000001 00800000 0001 00 00 70000000"
	                  "00000004 00000000"
	                  "00000000",
	                  HDL_EMALF);
	struct decoded *d = decode_hex("02 00 00 00 00000000 01020304 00000000 00000030"
	                               "00000065 00000001 00800000 0001 00 00 70000000"
	                               "00000014 00000010 000102030405060708090a0b0c0d0e0f"
	                               "00000000");
	assert_int_equal(d->m.rd_alg, HDL_DIGEST_OLD_MD5);
	assert_slice_hex(d->m.rd, "000102030405060708090a0b0c0d0e0f");
	assert_int_equal(d->m.kind, HDL_BODY_EMPTY);
	uint8_t out[128];
	size_t on;
	assert_int_equal(hdl_msg_encode(&d->m, out, sizeof(out), &on), HDL_EOK);
	assert_int_equal(on, d->len);
	assert_memory_equal(out, d->bytes, on);
	decoded_free(d);
	/* a digest cut short */
	ASSERT_DECODE_ERR(ENV211 "00000021"
	                  "00000065 00000001 00800000 0001 00 00 70000000"
	                  "00000005 03 01020304"
	                  "00000000",
	                  HDL_ETRUNC);
	/* session setup with an unknown key exchange mode */
	ASSERT_DECODE_ERR(ENV211 "0000002a"
	                  "00000190 00000000 00000000 0001 00 00 70000000"
	                  "0000000e 0005 00000000 00000000 00000000"
	                  "00000000",
	                  HDL_EMALF);
	/* verify with an unknown RFC digest algorithm */
	ASSERT_DECODE_ERR(ENV211 "00000033"
	                  "000000c9 00000000 00000000 0001 00 00 70000000"
	                  "00000017 00000001 'x' 00000001 00000000 07 0102030405 00000000"
	                  "00000000",
	                  HDL_EMALF);
}

/* Encrypted messages decode to the header-less view; the session layer decrypts. */
static void test_encrypted(void **state)
{
	(void)state;
	struct decoded *d = decode_hex("02 0b 42 0b 00000077 01020304 00000000 00000010"
	                               "00112233445566778899aabbccddeeff");
	assert_int_equal(d->m.env.flags, HDL_ENV_ENCRYPTED);
	assert_int_equal(d->m.env.sugg_major, 2);
	assert_int_equal(d->m.kind, HDL_BODY_NONE);
	assert_int_equal(d->m.body.len, 16);
	assert_ptr_equal(d->m.body.p, d->bytes + 20);
	decoded_free(d);
}

/* ---- envelope, versions, digests ------------------------------------------------------------ */

static void test_envelope(void **state)
{
	(void)state;
	uint8_t in[20], out[20];
	unhex("02 0a a2 0b 00001234 89abcdef 00000003 000001f4", in, sizeof(in));
	hdl_envelope_t e;
	assert_int_equal(hdl_envelope_decode(in, sizeof(in), &e), HDL_EOK);
	assert_int_equal(e.major, 2);
	assert_int_equal(e.minor, 10);
	assert_int_equal(e.flags, HDL_ENV_COMPRESSED | HDL_ENV_TRUNCATED);
	assert_int_equal(e.sugg_major, 2);
	assert_int_equal(e.sugg_minor, 11);
	assert_int_equal(e.session_id, 0x1234);
	assert_int_equal(e.request_id, 0x89abcdef);
	assert_int_equal(e.seq, 3);
	assert_int_equal(e.msg_len, 500);
	hdl_envelope_encode(&e, out);
	assert_memory_equal(out, in, 20);
	for (size_t k = 0; k < 20; k++)
		assert_int_equal(hdl_envelope_decode(in, k, &e), HDL_ETRUNC);
	/* 3.x and 5.0 are accepted */
	in[0] = 3;
	assert_int_equal(hdl_envelope_decode(in, sizeof(in), &e), HDL_EOK);
	in[0] = 5;
	assert_int_equal(hdl_envelope_decode(in, sizeof(in), &e), HDL_EOK);
	in[0] = 6;
	assert_int_equal(hdl_envelope_decode(in, sizeof(in), &e), HDL_EVERSION);
}

static void test_version_negotiate(void **state)
{
	(void)state;
	static const struct {
		uint8_t major, minor, smaj, smin; /* request envelope */
		uint8_t want_major, want_minor;
	} cases[] = {
		{2, 11, 2, 11, 2, 11}, /* hdllib 9 */
		{2, 10, 2, 11, 2, 11}, /* id-pointer: 2.10 suggesting 2.11 */
		{2, 11, 2, 10, 2, 10}, /* a peer that wants 2.10 */
		{2, 5, 2, 5, 2, 5},    /* HNET 7.3 */
		{2, 5, 0, 0, 2, 5},    /* suggested major 0: the message version */
		{2, 0, 0, 0, 2, 0},    /* 2.0 */
		{2, 1, 0, 0, 2, 1},
		{5, 0, 0, 0, 2, 0},    /* buggy 2.0 clients say 5.0 */
		{2, 11, 5, 0, 2, 0},
		{2, 11, 3, 0, 2, 11},  /* a 3.0 suggestion: capped at ours */
		{3, 0, 3, 0, 2, 11},
		{2, 11, 2, 15, 2, 11}, /* a future minor */
		{2, 11, 1, 9, 2, 0},   /* nonsense below 2: the oldest we speak */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		hdl_envelope_t e = {.major = cases[i].major, .minor = cases[i].minor,
		                    .sugg_major = cases[i].smaj, .sugg_minor = cases[i].smin};
		uint8_t maj = 0, min = 0;
		hdl_version_negotiate(&e, &maj, &min);
		if (maj != cases[i].want_major || min != cases[i].want_minor)
			fail_msg("case %zu: %u.%u, want %u.%u", i, maj, min, cases[i].want_major,
			         cases[i].want_minor);
	}
}

static void test_digest_alg_for(void **state)
{
	(void)state;
	assert_int_equal(hdl_digest_alg_for(2, 0), HDL_DIGEST_OLD_MD5);
	assert_int_equal(hdl_digest_alg_for(5, 0), HDL_DIGEST_OLD_MD5);
	for (uint8_t minor = 1; minor <= 6; minor++)
		assert_int_equal(hdl_digest_alg_for(2, minor), HDL_DIGEST_SHA1);
	for (uint8_t minor = 7; minor <= 11; minor++)
		assert_int_equal(hdl_digest_alg_for(2, minor), HDL_DIGEST_SHA256);
	assert_int_equal(hdl_digest_alg_for(3, 0), HDL_DIGEST_SHA256);
	assert_int_equal(hdl_digest_len(HDL_DIGEST_OLD_MD5), 16);
	assert_int_equal(hdl_digest_len(HDL_DIGEST_MD5), 16);
	assert_int_equal(hdl_digest_len(HDL_DIGEST_SHA1), 20);
	assert_int_equal(hdl_digest_len(HDL_DIGEST_SHA256), 32);
	assert_int_equal(hdl_digest_len(4), 0);
	assert_int_equal(hdl_digest_len(0x22), 0);
}

static void test_digest_vectors(void **state)
{
	(void)state;
	static const struct {
		uint8_t alg;
		const char *hex;
	} cases[] = {
		/* FIPS / RFC 1321 test vectors for "abc" */
		{HDL_DIGEST_OLD_MD5, "900150983cd24fb0d6963f7d28e17f72"},
		{HDL_DIGEST_MD5, "900150983cd24fb0d6963f7d28e17f72"},
		{HDL_DIGEST_SHA1, "a9993e364706816aba3e25717850c26c9cd0d89d"},
		{HDL_DIGEST_SHA256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t out[HDL_DIGEST_MAX_LEN], want[HDL_DIGEST_MAX_LEN];
		size_t n = 0, wn = unhex(cases[i].hex, want, sizeof(want));
		assert_int_equal(hdl_digest(cases[i].alg, (const uint8_t *)"abc", 3, out, &n), HDL_EOK);
		assert_int_equal(n, wn);
		assert_memory_equal(out, want, n);
	}
	uint8_t out[HDL_DIGEST_MAX_LEN];
	size_t n = 7;
	assert_int_equal(hdl_digest(0x13, (const uint8_t *)"abc", 3, out, &n), HDL_EINVAL);
	assert_int_equal(n, 0);
}

static void test_names_of_constants(void **state)
{
	(void)state;
	assert_non_null(hdl_opcode_name(HDL_OC_RESOLUTION));
	assert_non_null(strstr(hdl_opcode_name(HDL_OC_RESOLUTION), "RESOLUTION"));
	assert_non_null(strstr(hdl_opcode_name(HDL_OC_LOGIN_ID_SYSTEM), "LOGIN"));
	assert_non_null(hdl_opcode_name(12345));
	assert_non_null(strstr(hdl_rcode_name(HDL_RC_AUTHENTICATION_NEEDED), "AUTHENTICATION"));
	assert_non_null(hdl_rcode_name(12345));
	assert_string_equal(hdl_errname(HDL_ETRUNC), "HDL_ETRUNC");
	assert_string_equal(hdl_errname(HDL_EOK), "HDL_EOK");
	assert_non_null(hdl_strerror(-999999));
}

/* Arena exhaustion is a clean HDL_ENOMEM, not a crash. */
static void test_arena_exhaustion(void **state)
{
	(void)state;
	uint8_t buf[MAXMSG];
	size_t n = unhex(RESOLVE_RESP_RD, buf, sizeof(buf));
	uint8_t tiny[16];
	hdl_arena_t a;
	hdl_msg_t m;
	hdl_arena_init(&a, tiny, sizeof(tiny), 8); /* 16 bytes + 8 heap bytes */
	assert_int_equal(hdl_msg_decode(buf, n, &a, &m), HDL_ENOMEM);
	hdl_arena_free(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors_decode),
		cmocka_unit_test(test_vectors_roundtrip),
		cmocka_unit_test(test_vectors_truncated),
		cmocka_unit_test(test_mandatory_fields),
		cmocka_unit_test(test_worked_example),
		cmocka_unit_test(test_encode_credential_rules),
		cmocka_unit_test(test_encode_errors),
		cmocka_unit_test(test_values_codec),
		cmocka_unit_test(test_hostile_lengths),
		cmocka_unit_test(test_hostile_limits),
		cmocka_unit_test(test_hostile_utf8),
		cmocka_unit_test(test_hostile_fields),
		cmocka_unit_test(test_encrypted),
		cmocka_unit_test(test_envelope),
		cmocka_unit_test(test_version_negotiate),
		cmocka_unit_test(test_digest_alg_for),
		cmocka_unit_test(test_digest_vectors),
		cmocka_unit_test(test_names_of_constants),
		cmocka_unit_test(test_arena_exhaustion),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
