/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Unit tests for node/server/http_parse.c: whole requests, every truncation of a valid
 *        request is "need more", malformed request and header lines are refused, header and body
 *        limits, Transfer-Encoding, versions and keep-alive rules, pipelined requests.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "node/server/http.h"

#define MAXB 65536u

static http_parse_rc_t parse(const char *s, http_req_t *r)
{
	return http_parse((const uint8_t *)s, strlen(s), HTTP_MAX_HEADER_BYTES, MAXB, r);
}

static bool str_is(http_str_t s, const char *want)
{
	return s.len == strlen(want) && memcmp(s.p, want, s.len) == 0;
}

static const char *const VALID[] = {
	"GET /api/handles/88.100.1/test HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n"
	"Accept: application/json\r\n\r\n",
	"GET / HTTP/1.0\r\n\r\n",
	"POST /88.100.1%2Ftest HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-hdl-message\r\n"
	"Content-Length: 5\r\nConnection: close\r\n\r\nhello",
	"HEAD /x?noredirect HTTP/1.1\nHost: y\n\n",
	"OPTIONS * HTTP/1.1\r\nOrigin: http://a\r\nX-Empty:\r\n\r\n",
	"\r\nGET /after-crlf HTTP/1.1\r\n\r\n",
	"DELETE /api/handles/a HTTP/1.1\r\ncontent-length:0\r\n\r\n",
	"PATCH /y HTTP/1.1\r\nX: \xe4\xb8\xad obs-text\r\n\r\n",
};

static void test_valid(void **state)
{
	(void)state;
	http_req_t r;
	assert_int_equal(parse(VALID[0], &r), HTTP_PARSE_OK);
	assert_int_equal(r.method, HTTP_M_GET);
	assert_true(str_is(r.target, "/api/handles/88.100.1/test"));
	assert_int_equal(r.minor, 1);
	assert_true(r.keep_alive);
	assert_true(str_is(r.host, "127.0.0.1:8000"));
	assert_true(str_is(r.accept, "application/json"));
	assert_int_equal(r.total_len, strlen(VALID[0]));
	assert_int_equal(r.header_len, strlen(VALID[0]));

	assert_int_equal(parse(VALID[1], &r), HTTP_PARSE_OK);
	assert_int_equal(r.minor, 0);
	assert_false(r.keep_alive);

	assert_int_equal(parse(VALID[2], &r), HTTP_PARSE_OK);
	assert_int_equal(r.method, HTTP_M_POST);
	assert_true(r.has_length);
	assert_int_equal(r.content_length, 5);
	assert_memory_equal(r.body, "hello", 5);
	assert_false(r.keep_alive);
	assert_true(str_is(r.content_type, "application/x-hdl-message"));
	assert_int_equal(r.total_len, strlen(VALID[2]));

	assert_int_equal(parse(VALID[3], &r), HTTP_PARSE_OK);
	assert_int_equal(r.method, HTTP_M_HEAD);
	assert_true(str_is(r.target, "/x?noredirect"));

	assert_int_equal(parse(VALID[4], &r), HTTP_PARSE_OK);
	assert_int_equal(r.method, HTTP_M_OPTIONS);
	assert_true(str_is(r.target, "*"));

	assert_int_equal(parse(VALID[5], &r), HTTP_PARSE_OK);
	assert_true(str_is(r.target, "/after-crlf"));

	assert_int_equal(parse(VALID[6], &r), HTTP_PARSE_OK);
	assert_int_equal(r.method, HTTP_M_DELETE);
	assert_true(r.has_length);

	assert_int_equal(parse(VALID[7], &r), HTTP_PARSE_OK);
	assert_int_equal(r.method, HTTP_M_OTHER);
	assert_true(str_is(r.method_s, "PATCH"));
}

static void test_truncations(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(VALID) / sizeof(VALID[0]); i++) {
		size_t n = strlen(VALID[i]);
		for (size_t cut = 0; cut < n; cut++) {
			http_req_t r;
			http_parse_rc_t rc =
				http_parse((const uint8_t *)VALID[i], cut, HTTP_MAX_HEADER_BYTES, MAXB, &r);
			if (rc != HTTP_PARSE_MORE)
				fail_msg("request %zu cut at %zu: %d, not need-more", i, cut, (int)rc);
		}
		http_req_t r;
		assert_int_equal(http_parse((const uint8_t *)VALID[i], n, HTTP_MAX_HEADER_BYTES, MAXB,
		                            &r),
		                 HTTP_PARSE_OK);
	}
}

static void test_malformed(void **state)
{
	(void)state;
	static const char *const BAD[] = {
		"GET\r\n\r\n",
		"GET /\r\n\r\n",
		" GET / HTTP/1.1\r\n\r\n",
		"GET  / HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1 \r\n\r\n",
		"GET / HTTP/1.10\r\n\r\n",
		"GET / HTTX/1.1\r\n\r\n",
		"GET / http/1.1\r\n\r\n",
		"G(T / HTTP/1.1\r\n\r\n",
		"GET /a\x01 HTTP/1.1\r\n\r\n",
		"GET /a\x7f HTTP/1.1\r\n\r\n",
		"VERYLONGMETHODNAME1 / HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1\r\nNoColon\r\n\r\n",
		"GET / HTTP/1.1\r\n: empty name\r\n\r\n",
		"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
		"GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n",
		"GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n",
		"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
		"GET / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
		"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
		"GET / HTTP/1.1\r\nContent-Length:\r\n\r\n",
		"GET / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\n",
		"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
		"\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1\r\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(BAD) / sizeof(BAD[0]); i++) {
		http_req_t r;
		http_parse_rc_t rc = parse(BAD[i], &r);
		if (rc != HTTP_PARSE_BAD)
			fail_msg("malformed %zu (%s) gave %d", i, BAD[i], (int)rc);
		assert_false(r.keep_alive);
	}
	/* a bare CR in an unfinished line is refused before the line ends */
	http_req_t r;
	assert_int_equal(parse("GET /\rx", &r), HTTP_PARSE_BAD);
	/* other major versions */
	assert_int_equal(parse("GET / HTTP/2.0\r\n\r\n", &r), HTTP_PARSE_VERSION);
	assert_int_equal(parse("GET / HTTP/0.9\r\n\r\n", &r), HTTP_PARSE_VERSION);
	/* request smuggling shapes are malformed, never read one way or the other: two lengths
	 * (even equal), both framings, a folded line, a space before the colon, two credentials */
	static const char *const SMUGGLE[] = {
		"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab",
		"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc",
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc",
		"POST / HTTP/1.1\r\ntransfer-encoding: gzip\r\nContent-Length: 3\r\n\r\nabc",
		"POST / HTTP/1.1\r\nContent-Length: 3\r\nX: a\r\n\tContent-Length: 9\r\n\r\nabc",
		"POST / HTTP/1.1\r\nContent-Length : 3\r\n\r\nabc",
		"GET / HTTP/1.1\r\nAuthorization: Basic YTpi\r\nauthorization: Basic YzpkCg==\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(SMUGGLE) / sizeof(SMUGGLE[0]); i++) {
		http_parse_rc_t rc = parse(SMUGGLE[i], &r);
		if (rc != HTTP_PARSE_BAD)
			fail_msg("smuggling shape %zu gave %d", i, (int)rc);
	}
	/* one Authorization header is kept */
	assert_int_equal(parse("GET / HTTP/1.1\r\nAuthorization:  Basic YTpi \r\n\r\n", &r),
	                 HTTP_PARSE_OK);
	assert_int_equal(r.authorization.len, 10);
	assert_memory_equal(r.authorization.p, "Basic YTpi", 10);
	assert_int_equal(parse("GET / HTTP/1.1\r\n\r\n", &r), HTTP_PARSE_OK);
	assert_int_equal(r.authorization.len, 0);
}

static void test_limits(void **state)
{
	(void)state;
	http_req_t r;
	/* a 20 KiB header: refused as soon as 16 KiB pass without the end of the header */
	size_t big = 20480;
	char *s = malloc(big + 64);
	assert_non_null(s);
	int k = snprintf(s, 64, "GET / HTTP/1.1\r\nX-Big: ");
	memset(s + k, 'a', big);
	memcpy(s + k + big, "\r\n\r\n", 5);
	assert_int_equal(parse(s, &r), HTTP_PARSE_HDR_LARGE);
	assert_int_equal(http_parse((const uint8_t *)s, HTTP_MAX_HEADER_BYTES, HTTP_MAX_HEADER_BYTES,
	                            MAXB, &r),
	                 HTTP_PARSE_MORE);
	assert_int_equal(http_parse((const uint8_t *)s, HTTP_MAX_HEADER_BYTES + 1,
	                            HTTP_MAX_HEADER_BYTES, MAXB, &r),
	                 HTTP_PARSE_HDR_LARGE);
	/* a lower limit from the caller */
	assert_int_equal(http_parse((const uint8_t *)VALID[0], strlen(VALID[0]), 20, MAXB, &r),
	                 HTTP_PARSE_HDR_LARGE);
	free(s);
	/* too many header lines */
	char *many = malloc(HTTP_MAX_HEADERS * 8 + 64);
	assert_non_null(many);
	size_t o = (size_t)sprintf(many, "GET / HTTP/1.1\r\n");
	for (unsigned i = 0; i <= HTTP_MAX_HEADERS + 1; i++)
		o += (size_t)sprintf(many + o, "X: %u\r\n", i % 10);
	strcpy(many + o, "\r\n");
	assert_int_equal(parse(many, &r), HTTP_PARSE_HDR_LARGE);
	free(many);
	/* body over the limit: refused without waiting for it */
	assert_int_equal(parse("POST / HTTP/1.1\r\nContent-Length: 65537\r\n\r\n", &r),
	                 HTTP_PARSE_BODY_LARGE);
	assert_int_equal(parse("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
	                       &r),
	                 HTTP_PARSE_BODY_LARGE);
	assert_int_equal(parse("POST / HTTP/1.1\r\nContent-Length: 65536\r\n\r\n", &r),
	                 HTTP_PARSE_MORE);
	/* chunked or any transfer coding: length required */
	assert_int_equal(parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
	                       "0\r\n\r\n",
	                       &r),
	                 HTTP_PARSE_LEN_REQUIRED);
	assert_int_equal(parse("POST / HTTP/1.1\r\ntransfer-encoding: gzip\r\n\r\n", &r),
	                 HTTP_PARSE_LEN_REQUIRED);
}

static void test_keep_alive(void **state)
{
	(void)state;
	http_req_t r;
	assert_int_equal(parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", &r), HTTP_PARSE_OK);
	assert_false(r.keep_alive);
	assert_int_equal(parse("GET / HTTP/1.1\r\nConnection: Upgrade, CLOSE\r\n\r\n", &r),
	                 HTTP_PARSE_OK);
	assert_false(r.keep_alive);
	assert_int_equal(parse("GET / HTTP/1.1\r\nConnection: closed\r\n\r\n", &r), HTTP_PARSE_OK);
	assert_true(r.keep_alive);
	assert_int_equal(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &r),
	                 HTTP_PARSE_OK);
	assert_true(r.keep_alive);
	assert_int_equal(parse("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", &r),
	                 HTTP_PARSE_OK);
	assert_false(r.keep_alive);
	assert_true(http_has_token((http_str_t){" a ,\tb ,c", 9}, "B"));
	assert_false(http_has_token((http_str_t){"ab, c", 5}, "a"));
	assert_false(http_has_token((http_str_t){"", 0}, "a"));
}

static void test_pipelining(void **state)
{
	(void)state;
	const char *s = "GET /one HTTP/1.1\r\nHost: a\r\n\r\n"
	                "POST /two HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
	                "GET /three HTTP/1.1\r\n\r\n"
	                "GET /fou";
	const uint8_t *p = (const uint8_t *)s;
	size_t len = strlen(s), off = 0;
	static const char *const targets[] = {"/one", "/two", "/three"};
	for (int i = 0; i < 3; i++) {
		http_req_t r;
		assert_int_equal(http_parse(p + off, len - off, HTTP_MAX_HEADER_BYTES, MAXB, &r),
		                 HTTP_PARSE_OK);
		assert_true(str_is(r.target, targets[i]));
		if (i == 1)
			assert_memory_equal(r.body, "abc", 3);
		off += r.total_len;
	}
	http_req_t r;
	assert_int_equal(http_parse(p + off, len - off, HTTP_MAX_HEADER_BYTES, MAXB, &r),
	                 HTTP_PARSE_MORE);
	assert_int_equal(len - off, 8);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),        cmocka_unit_test(test_truncations),
		cmocka_unit_test(test_malformed),    cmocka_unit_test(test_limits),
		cmocka_unit_test(test_keep_alive),   cmocka_unit_test(test_pipelining),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
