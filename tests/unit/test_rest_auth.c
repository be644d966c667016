/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief The REST API's credentials (node/server/rest.h): the Authorization header parser on the
 *        real clients' headers (handle-net-node, pyhandle, CodeObia) and on malformed ones,
 *        Basic decoding, base64, and the node-wide session table (ids, nonces, the node and
 *        per-source limits, expiry before and after authentication, deletion, concurrent use).
 *        The checks against a store run end to end in tests/integration/test_rest_admin.py.
 */
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hdl/error.h"
#include "node/server/connlimit.h"
#include "node/server/rest.h"

static http_str_t hs(const char *s)
{
	return (http_str_t){s, strlen(s)};
}

static bool eq(http_str_t a, const char *s)
{
	return a.len == strlen(s) && memcmp(a.p, s, a.len) == 0;
}

/* ---- the header ---------------------------------------------------------------------------- */

static void test_parse_clients(void **state)
{
	(void)state;
	rest_authz_t a;
	/* handle-net-node (captures/handlenetnode-rest.requests.hex, request 2) */
	const char *hnn =
	    "Handle version=\"0\", sessionId=\"b6d3393c4ebe4508\", "
	    "cnonce=\"qZaK/GE4azjIfgpOQyULyQ==\", "
	    "id=\"300:0.NA/88.100\", type=\"HS_PUBKEY\", alg=\"sha256\", signature=\"ZDO6Ksh==\"";
	assert_int_equal(rest_authz_parse(hs(hnn), &a), HDL_EOK);
	assert_int_equal(a.scheme, REST_SCHEME_HANDLE);
	assert_true(eq(a.version, "0"));
	assert_true(eq(a.session_id, "b6d3393c4ebe4508"));
	assert_true(eq(a.cnonce, "qZaK/GE4azjIfgpOQyULyQ=="));
	assert_true(eq(a.id, "300:0.NA/88.100"));
	assert_true(eq(a.type, "HS_PUBKEY"));
	assert_true(eq(a.alg, "sha256"));
	assert_true(eq(a.signature, "ZDO6Ksh=="));
	assert_int_equal(a.salt.len, 0);
	/* later requests: the session only; CodeObia without version */
	assert_int_equal(rest_authz_parse(hs("Handle sessionId=\"1637d06d689a5bc6\""), &a),
	                 HDL_EOK);
	assert_true(eq(a.session_id, "1637d06d689a5bc6"));
	assert_int_equal(a.id.len, 0);
	/* tokens without quotes, odd spacing, unknown names ignored */
	assert_int_equal(
	    rest_authz_parse(hs("  handle  sessionId=abc ,x=\"y, z\",  iterations = 10000"), &a),
	    HDL_EOK);
	assert_true(eq(a.session_id, "abc"));
	assert_true(eq(a.iterations, "10000"));
	/* pyhandle's Basic */
	assert_int_equal(rest_authz_parse(hs("Basic MzAwJTNBMC5OQS84OC4xMDA6c2VjcmV0"), &a),
	                 HDL_EOK);
	assert_int_equal(a.scheme, REST_SCHEME_BASIC);
	assert_true(eq(a.basic, "MzAwJTNBMC5OQS84OC4xMDA6c2VjcmV0"));
	/* another scheme */
	assert_int_equal(rest_authz_parse(hs("Bearer xyz"), &a), HDL_EOK);
	assert_int_equal(a.scheme, REST_SCHEME_OTHER);
}

static void test_parse_bad(void **state)
{
	(void)state;
	static const char *const BAD[] = {
	    "",
	    "   ",
	    "Basic",
	    "Basic a b",
	    "Handle sessionId",
	    "Handle sessionId=\"abc",
	    "Handle sessionId=\"a\\\"b\"",
	    "Handle sessionId=a sessionId=b",
	    "Handle sessionId=a, sessionId=b",
	    "Handle =a",
	    "Handle sessionId=a;id=b",
	};
	rest_authz_t a;
	for (size_t i = 0; i < sizeof(BAD) / sizeof(BAD[0]); i++) {
		if (rest_authz_parse(hs(BAD[i]), &a) != HDL_EMALF)
			fail_msg("malformed %zu <%s> accepted", i, BAD[i]);
	}
	char big[REST_AUTH_MAX + 16];
	memset(big, 'a', sizeof(big));
	memcpy(big, "Basic ", 6);
	assert_int_equal(rest_authz_parse((http_str_t){big, sizeof(big)}, &a), HDL_ELIMIT);
}

static void test_basic(void **state)
{
	(void)state;
	uint8_t buf[256];
	hdl_slice_t h, secret;
	uint32_t idx;
	/* pyhandle: "300%3A0.NA/88.100:secret" */
	assert_int_equal(rest_basic_decode(hs("MzAwJTNBMC5OQS84OC4xMDA6c2VjcmV0"), buf, sizeof(buf),
	                                   &h, &idx, &secret),
	                 HDL_EOK);
	assert_int_equal(idx, 300);
	assert_int_equal(h.len, 11);
	assert_memory_equal(h.p, "0.NA/88.100", 11);
	assert_int_equal(secret.len, 6);
	assert_memory_equal(secret.p, "secret", 6);
	/* curl -u '300%3A0.NA%2F88.100.1:a:b' : the slash encoded too, a colon in the secret */
	assert_int_equal(rest_basic_decode(hs("MzAwJTNBMC5OQSUyRjg4LjEwMC4xOmE6Yg=="), buf,
	                                   sizeof(buf), &h, &idx, &secret),
	                 HDL_EOK);
	assert_int_equal(idx, 300);
	assert_int_equal(h.len, 13);
	assert_memory_equal(h.p, "0.NA/88.100.1", 13);
	assert_int_equal(secret.len, 3);
	assert_memory_equal(secret.p, "a:b", 3);
	/* a bare handle: index 0 */
	assert_int_equal(
	    rest_basic_decode(hs("ODguMTAwLjEvQURNSU46eA=="), buf, sizeof(buf), &h, &idx, &secret),
	    HDL_EOK);
	assert_int_equal(idx, 0);
	assert_memory_equal(h.p, "88.100.1/ADMIN", 14);
	/* refused: no colon ("abc"), bad escape ("30%3:x"), empty handle ("300%%3A:x"), an
	 * escaped NUL ("3%00:x"), not base64, too long for the buffer */
	static const char *const BAD[] = {"YWJj", "MzAlMzp4", "MzAwJTNBOng=", "MyUwMDp4",
	                                  "!!!!", "YWJj=",    "YQ=a"};
	for (size_t i = 0; i < sizeof(BAD) / sizeof(BAD[0]); i++) {
		if (rest_basic_decode(hs(BAD[i]), buf, sizeof(buf), &h, &idx, &secret) == HDL_EOK)
			fail_msg("bad Basic %zu accepted", i);
	}
	assert_int_equal(rest_basic_decode(hs("YWJjZGVmZ2hpamts"), buf, 8, &h, &idx, &secret),
	                 HDL_ELIMIT);
}

static void test_b64(void **state)
{
	(void)state;
	uint8_t out[64];
	assert_int_equal(rest_b64_decode(hs("qZaK/GE4azjIfgpOQyULyQ=="), out, sizeof(out)), 16);
	assert_int_equal(out[0], 0xa9);
	assert_int_equal(rest_b64_decode(hs("YWI="), out, sizeof(out)), 2);
	assert_memory_equal(out, "ab", 2);
	assert_int_equal(rest_b64_decode(hs("YWJj"), out, sizeof(out)), 3);
	assert_int_equal(rest_b64_decode(hs(""), out, sizeof(out)), 0);
	/* no padding, padding inside, whitespace, URL alphabet, too long: refused */
	assert_int_equal(rest_b64_decode(hs("YWI"), out, sizeof(out)), -1);
	assert_int_equal(rest_b64_decode(hs("YW=j"), out, sizeof(out)), -1);
	assert_int_equal(rest_b64_decode(hs("YW J"), out, sizeof(out)), -1);
	assert_int_equal(rest_b64_decode(hs("YW-_"), out, sizeof(out)), -1);
	assert_int_equal(rest_b64_decode(hs("YWJjYWJj"), out, 5), -1);
}

/* ---- sessions -------------------------------------------------------------------------------- */

static conn_src_t src_of(uint32_t ip4)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(ip4)};
	conn_src_t s;
	conn_src_make((const struct sockaddr *)&sa, 32, 64, &s);
	return s;
}

static void test_sessions(void **state)
{
	(void)state;
	rest_sessions_t *t = NULL;
	assert_int_equal(rest_sessions_new(6, &t), HDL_EOK);
	conn_src_t a = src_of(0x7f000001), b = src_of(0x7f000002), c = src_of(0x7f000003);
	rest_session_t s[8], got;
	uint64_t now = 1000000;
	/* per source: 3 */
	for (int i = 0; i < 3; i++)
		assert_int_equal(rest_session_create(t, &a, 3, now, 1000, &s[i]), HDL_EOK);
	assert_int_equal(rest_session_create(t, &a, 3, now, 1000, &s[7]), HDL_EAGAIN);
	/* ids: 32 lower-case hex characters, all different; nonces differ */
	assert_int_equal(strlen(s[0].id), REST_SID_LEN);
	assert_true(strspn(s[0].id, "0123456789abcdef") == REST_SID_LEN);
	assert_string_not_equal(s[0].id, s[1].id);
	assert_memory_not_equal(s[0].nonce, s[1].nonce, REST_NONCE_LEN);
	assert_false(s[0].authenticated);
	/* node-wide: 6 */
	for (int i = 3; i < 6; i++)
		assert_int_equal(rest_session_create(t, &b, 100, now, 1000, &s[i]), HDL_EOK);
	assert_int_equal(rest_sessions_count(t), 6);
	assert_int_equal(rest_session_create(t, &c, 100, now, 1000, &s[7]), HDL_EAGAIN);

	/* lookup; unknown and malformed ids */
	http_str_t id0 = {s[0].id, REST_SID_LEN};
	assert_int_equal(rest_session_get(t, id0, now, 5000, &got), HDL_EOK);
	assert_memory_equal(got.nonce, s[0].nonce, REST_NONCE_LEN);
	char other[REST_SID_LEN + 1];
	memcpy(other, s[0].id, sizeof(other));
	other[0] = other[0] == 'a' ? 'b' : 'a';
	assert_int_equal(rest_session_get(t, hs(other), now, 5000, &got), HDL_ENOENT);
	assert_int_equal(rest_session_get(t, hs("short"), now, 5000, &got), HDL_ENOENT);

	/* authenticate session 0: it now lives 5 s past its last use */
	assert_int_equal(rest_session_auth(t, id0, hdl_slice_str("0.NA/88.100"), 300, now, 5000),
	                 HDL_EOK);
	assert_int_equal(rest_session_get(t, id0, now + 4000, 5000, &got), HDL_EOK);
	assert_true(got.authenticated);
	assert_int_equal(got.index, 300);
	assert_memory_equal(got.handle, "0.NA/88.100", 11);
	/* the unauthenticated ones expired 1 s after creation (get says so before the sweep) */
	http_str_t id1 = {s[1].id, REST_SID_LEN};
	assert_int_equal(rest_session_get(t, id1, now + 1000, 5000, &got), HDL_ENOENT);
	assert_int_equal(rest_session_auth(t, id1, hdl_slice_str("x/y"), 1, now + 1000, 5000),
	                 HDL_ENOENT);
	rest_sessions_expire(t, now + 4500);
	assert_int_equal(rest_sessions_count(t), 1); /* session 0, used at now + 4000 */
	/* the sources' slots are free again */
	assert_int_equal(rest_session_create(t, &a, 3, now + 4500, 1000, &s[1]), HDL_EOK);
	assert_int_equal(rest_session_create(t, &a, 3, now + 4500, 1000, &s[2]), HDL_EOK);
	assert_int_equal(rest_session_create(t, &a, 3, now + 4500, 1000, &s[7]), HDL_EAGAIN);
	/* unused for 5 s: gone */
	assert_int_equal(rest_session_get(t, id0, now + 9000, 5000, &got), HDL_ENOENT);
	/* delete */
	http_str_t id2 = {s[2].id, REST_SID_LEN};
	assert_int_equal(rest_session_delete(t, id2), HDL_EOK);
	assert_int_equal(rest_session_delete(t, id2), HDL_ENOENT);
	assert_int_equal(rest_session_get(t, id2, now + 4500, 5000, &got), HDL_ENOENT);
	rest_sessions_free(t);
}

typedef struct churn {
	rest_sessions_t *t;
	uint32_t ip;
	unsigned made;
} churn_t;

static void *churn_main(void *arg)
{
	churn_t *c = arg;
	conn_src_t src = src_of(c->ip);
	for (unsigned i = 0; i < 2000; i++) {
		rest_session_t s, g;
		if (rest_session_create(c->t, &src, 1000, 1000, 1000, &s) != HDL_EOK)
			continue;
		c->made++;
		http_str_t id = {s.id, REST_SID_LEN};
		assert_int_equal(rest_session_get(c->t, id, 1000, 1000, &g), HDL_EOK);
		if (i % 2)
			assert_int_equal(rest_session_delete(c->t, id), HDL_EOK);
	}
	return NULL;
}

/* Four threads creating, reading and deleting: the count stays exact and bounded. */
static void test_sessions_threads(void **state)
{
	(void)state;
	rest_sessions_t *t = NULL;
	assert_int_equal(rest_sessions_new(40, &t), HDL_EOK);
	pthread_t th[4];
	churn_t c[4];
	for (int i = 0; i < 4; i++) {
		c[i] = (churn_t){t, 0x7f000001u, 0};
		assert_int_equal(pthread_create(&th[i], NULL, churn_main, &c[i]), 0);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	/* the kept ones fill the table to exactly its bound, never past it */
	assert_int_equal(rest_sessions_count(t), 40);
	unsigned made = 0;
	for (int i = 0; i < 4; i++)
		made += c[i].made;
	assert_true(made >= 40);
	rest_sessions_expire(t, 2000);
	assert_int_equal(rest_sessions_count(t), 0);
	rest_sessions_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_clients), cmocka_unit_test(test_parse_bad),
	    cmocka_unit_test(test_basic),         cmocka_unit_test(test_b64),
	    cmocka_unit_test(test_sessions),      cmocka_unit_test(test_sessions_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
