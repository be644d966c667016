/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief The pure parts of the stream connection layer: SipHash-2-4 against the published
 *        vectors, connection sources (masking, formatting), the node-wide connection table
 *        (limits, per-source counts, entries freed, concurrent takers), the buffer counter,
 *        the Handle TCP framing and the close-after-answer rule on the real clients' captures.
 *        The connection layer itself (conn.c) is exercised end to end by
 *        tests/integration/test_conn.py and tests/attack/.
 */
#include <arpa/inet.h>
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
#include "hdl/msg.h"
#include "node/server/connlimit.h"
#include "node/server/node.h"
#include "node/server/tcp.h"

#ifndef HDL_SOURCE_DIR
#define HDL_SOURCE_DIR "."
#endif

/* ---- helpers ----------------------------------------------------------------------------------
 */

/* Bytes of a capture (`xxd -g1` text: offset, 16 hex pairs, ASCII). \return length */
static size_t capture(const char *name, uint8_t *out, size_t cap)
{
	char path[512], line[160];
	snprintf(path, sizeof(path), "%s/tests/captures/%s", HDL_SOURCE_DIR, name);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	size_t n = 0;
	while (fgets(line, sizeof(line), f)) {
		const char *hex = strstr(line, ": ");
		if (!hex)
			continue;
		/* the hex column is 16 "xx " groups after ": " (fewer on the last line) */
		for (const char *p = hex + 2; p[0] && p[1] && p[0] != ' '; p += 3) {
			unsigned v;
			assert_int_equal(sscanf(p, "%2x", &v), 1);
			assert_true(n < cap);
			out[n++] = (uint8_t)v;
		}
	}
	fclose(f);
	return n;
}

static conn_src_t src4(const char *a, unsigned bits4)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	assert_int_equal(inet_pton(AF_INET, a, &sa.sin_addr), 1);
	conn_src_t s;
	conn_src_make((struct sockaddr *)&sa, bits4, 64, &s);
	return s;
}

static conn_src_t src6(const char *a, unsigned bits6)
{
	struct sockaddr_in6 sa = {.sin6_family = AF_INET6};
	assert_int_equal(inet_pton(AF_INET6, a, &sa.sin6_addr), 1);
	conn_src_t s;
	conn_src_make((struct sockaddr *)&sa, 32, bits6, &s);
	return s;
}

static const char *fmt(const conn_src_t *s)
{
	static char buf[80];
	conn_src_format(s, buf, sizeof(buf));
	return buf;
}

/* ---- SipHash ----------------------------------------------------------------------------------
 */

static void test_siphash_vectors(void **state)
{
	(void)state;
	/* the paper's key 00..0f; messages 00 01 02 ... of length 0, 8 and 15 */
	uint64_t k0 = 0x0706050403020100ull, k1 = 0x0f0e0d0c0b0a0908ull;
	uint8_t m[16];
	for (unsigned i = 0; i < sizeof(m); i++)
		m[i] = (uint8_t)i;
	assert_true(conn_siphash24(k0, k1, m, 0) == 0x726fdb47dd0e0e31ull);
	assert_true(conn_siphash24(k0, k1, m, 8) == 0x93f5f5799a932462ull);
	assert_true(conn_siphash24(k0, k1, m, 15) == 0xa129ca6149be45e5ull);
	/* another key gives another hash */
	assert_true(conn_siphash24(k0 + 1, k1, m, 15) != 0xa129ca6149be45e5ull);
}

/* ---- sources ----------------------------------------------------------------------------------
 */

static void test_sources(void **state)
{
	(void)state;
	conn_src_t a = src4("192.0.2.7", 32), b = src4("192.0.2.8", 32);
	assert_string_equal(fmt(&a), "192.0.2.7");
	assert_false(conn_src_eq(&a, &b));
	/* a /24 makes them one source */
	a = src4("192.0.2.7", 24);
	b = src4("192.0.2.200", 24);
	assert_true(conn_src_eq(&a, &b));
	assert_string_equal(fmt(&a), "192.0.2.0/24");
	b = src4("192.0.3.7", 24);
	assert_false(conn_src_eq(&a, &b));
	/* odd prefix lengths mask inside a byte */
	a = src4("10.0.0.255", 25);
	assert_string_equal(fmt(&a), "10.0.0.128/25");
	a = src4("10.255.0.1", 9);
	assert_string_equal(fmt(&a), "10.128.0.0/9");
	/* IPv6: one /64 */
	a = src6("2001:db8:1:2:aaaa::1", 64);
	b = src6("2001:db8:1:2:bbbb::9", 64);
	assert_true(conn_src_eq(&a, &b));
	assert_string_equal(fmt(&a), "2001:db8:1:2::/64");
	b = src6("2001:db8:1:3::1", 64);
	assert_false(conn_src_eq(&a, &b));
	a = src6("::1", 128);
	assert_string_equal(fmt(&a), "::1");
	/* an IPv4-mapped IPv6 peer is the IPv4 source */
	a = src6("::ffff:192.0.2.7", 64);
	b = src4("192.0.2.7", 32);
	assert_true(conn_src_eq(&a, &b));
	/* out-of-range prefix lengths fall back to whole addresses */
	a = src4("192.0.2.7", 0);
	assert_string_equal(fmt(&a), "192.0.2.7");
	/* other families: one shared source */
	struct sockaddr su = {.sa_family = AF_UNIX};
	conn_src_make(&su, 32, 64, &a);
	conn_src_make(NULL, 32, 64, &b);
	assert_true(conn_src_eq(&a, &b));
	assert_string_equal(fmt(&a), "local");
}

/* ---- connlimit --------------------------------------------------------------------------------
 */

static void test_limits(void **state)
{
	(void)state;
	connlimit_t *cl = NULL;
	assert_int_equal(connlimit_new(&cl), HDL_EOK);
	conn_src_t a = src4("192.0.2.1", 32), b = src4("192.0.2.2", 32);
	/* per source */
	assert_int_equal(connlimit_take(cl, &a, 10, 2), CL_OK);
	assert_int_equal(connlimit_take(cl, &a, 10, 2), CL_OK);
	assert_int_equal(connlimit_take(cl, &a, 10, 2), CL_SOURCE_FULL);
	assert_int_equal(connlimit_source(cl, &a), 2);
	assert_int_equal(connlimit_take(cl, &b, 10, 2), CL_OK);
	assert_int_equal(connlimit_open(cl), 3);
	assert_int_equal(connlimit_sources(cl), 2);
	/* node-wide, whatever the source */
	assert_int_equal(connlimit_take(cl, &b, 3, 100), CL_NODE_FULL);
	assert_int_equal(connlimit_open(cl), 3);
	assert_int_equal(connlimit_source(cl, &b), 1);
	/* a refused take counts nothing */
	assert_int_equal(connlimit_take(cl, &a, 10, 2), CL_SOURCE_FULL);
	assert_int_equal(connlimit_open(cl), 3);
	/* release: the entry goes away with the source's last connection */
	connlimit_put(cl, &a);
	assert_int_equal(connlimit_source(cl, &a), 1);
	assert_int_equal(connlimit_take(cl, &a, 10, 2), CL_OK);
	connlimit_put(cl, &a);
	connlimit_put(cl, &a);
	connlimit_put(cl, &b);
	assert_int_equal(connlimit_open(cl), 0);
	assert_int_equal(connlimit_sources(cl), 0);
	assert_int_equal(connlimit_source(cl, &a), 0);
	/* a put of an unknown source changes nothing */
	connlimit_put(cl, &a);
	assert_int_equal(connlimit_open(cl), 0);
	/* many sources (chains share buckets) */
	for (unsigned i = 0; i < 40000; i++) {
		struct sockaddr_in sa = {.sin_family = AF_INET,
		                         .sin_addr.s_addr = htonl(0x0a000000u + i)};
		conn_src_t s;
		conn_src_make((struct sockaddr *)&sa, 32, 64, &s);
		assert_int_equal(connlimit_take(cl, &s, 1000000, 1), CL_OK);
	}
	assert_int_equal(connlimit_sources(cl), 40000);
	for (unsigned i = 0; i < 40000; i++) {
		struct sockaddr_in sa = {.sin_family = AF_INET,
		                         .sin_addr.s_addr = htonl(0x0a000000u + i)};
		conn_src_t s;
		conn_src_make((struct sockaddr *)&sa, 32, 64, &s);
		assert_int_equal(connlimit_source(cl, &s), 1);
		connlimit_put(cl, &s);
	}
	assert_int_equal(connlimit_open(cl), 0);
	assert_int_equal(connlimit_sources(cl), 0);
	/* buffer bytes */
	connlimit_mem_add(cl, 1000);
	connlimit_mem_add(cl, 24);
	assert_int_equal(connlimit_mem(cl), 1024);
	connlimit_mem_sub(cl, 1024);
	assert_int_equal(connlimit_mem(cl), 0);
	connlimit_free(cl);
}

typedef struct taker {
	connlimit_t *cl;
	unsigned id;
	unsigned ok, refused;
} taker_t;

/* Take and put connections from 4 shared sources, never over 50 open per source. */
static void *taker_main(void *arg)
{
	taker_t *t = arg;
	conn_src_t held[32];
	unsigned n = 0;
	for (unsigned i = 0; i < 20000; i++) {
		conn_src_t s = src4(i % 4 == 0   ? "198.51.100.1"
		                    : i % 4 == 1 ? "198.51.100.2"
		                    : i % 4 == 2 ? "198.51.100.3"
		                                 : "198.51.100.4",
		                    32);
		if (n < 32 && (i + t->id) % 3 != 0) {
			if (connlimit_take(t->cl, &s, 1000, 50) == CL_OK) {
				held[n++] = s;
				t->ok++;
			} else {
				t->refused++;
			}
		} else if (n) {
			connlimit_put(t->cl, &held[--n]);
		}
	}
	while (n)
		connlimit_put(t->cl, &held[--n]);
	return NULL;
}

static void test_concurrent(void **state)
{
	(void)state;
	connlimit_t *cl = NULL;
	assert_int_equal(connlimit_new(&cl), HDL_EOK);
	taker_t t[8];
	pthread_t th[8];
	for (unsigned i = 0; i < 8; i++) {
		t[i] = (taker_t){.cl = cl, .id = i};
		assert_int_equal(pthread_create(&th[i], NULL, taker_main, &t[i]), 0);
	}
	unsigned ok = 0;
	for (unsigned i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		ok += t[i].ok;
	}
	assert_true(ok > 0);
	/* every take was put back: nothing left counted */
	assert_int_equal(connlimit_open(cl), 0);
	assert_int_equal(connlimit_sources(cl), 0);
	connlimit_free(cl);
}

/* ---- TCP framing ------------------------------------------------------------------------------
 */

static void test_frame(void **state)
{
	(void)state;
	static uint8_t req[8192];
	size_t n = capture("java-hdllib-resolve-tcp.hex", req, sizeof(req));
	tcp_frame_t f;
	assert_int_equal(tcp_frame_check(req, n, 262144, &f), TCP_FRAME_OK);
	assert_int_equal(f.len, n);
	assert_int_equal(f.major, 2);
	assert_int_equal(f.minor, 11);
	assert_false(f.encrypted);
	assert_int_equal(f.opflags, 0x19000000u);
	/* every cut is "more", nothing else */
	for (size_t cut = 0; cut < n; cut++)
		assert_int_equal(tcp_frame_check(req, cut, 262144, &f), TCP_FRAME_MORE);
	/* trailing bytes (the next pipelined request) do not change the frame */
	memcpy(req + n, req, n);
	assert_int_equal(tcp_frame_check(req, 2 * n, 262144, &f), TCP_FRAME_OK);
	assert_int_equal(f.len, n);
	/* over the configured limit: refused from the envelope alone */
	assert_int_equal(tcp_frame_check(req, 20, (uint32_t)(n - 20 - 1), &f), TCP_FRAME_BIG);
	assert_int_equal(f.msg_len, n - 20);
	uint8_t big[20];
	memcpy(big, req, 20);
	big[16] = 0x7f; /* MessageLength 0x7f...: over HDL_MAX_MESSAGE_LEN */
	assert_int_equal(tcp_frame_check(big, 20, 262144, &f), TCP_FRAME_BIG);
	/* garbage is told by its first byte */
	static const uint8_t junk[] = {'G', 'E', 'T', ' '};
	assert_int_equal(tcp_frame_check(junk, 1, 262144, &f), TCP_FRAME_BAD);
	assert_int_equal(tcp_frame_check(junk, sizeof(junk), 262144, &f), TCP_FRAME_BAD);
	memcpy(big, req, 20);
	big[0] = 4;
	assert_int_equal(tcp_frame_check(big, 20, 262144, &f), TCP_FRAME_BAD);
	/* an encrypted request: the header is not read */
	memcpy(big, req, 20);
	big[2] |= HDL_ENV_ENCRYPTED;
	memcpy(req, big, 20);
	assert_int_equal(tcp_frame_check(req, n, 262144, &f), TCP_FRAME_OK);
	assert_true(f.encrypted);
	assert_int_equal(f.opflags, 0);
	/* a frame shorter than a header has no OpFlag */
	big[2] = 0x02;
	big[16] = big[17] = big[18] = 0;
	big[19] = 4;
	uint8_t small[24];
	memcpy(small, big, 20);
	memset(small + 20, 0xff, 4);
	assert_int_equal(tcp_frame_check(small, 24, 262144, &f), TCP_FRAME_OK);
	assert_int_equal(f.len, 24);
	assert_int_equal(f.opflags, 0);
}

/* A reply header: envelope 2.10 + opcode 1, the given rcode and OpFlag. */
static void reply(uint8_t r[44], uint32_t rcode, uint32_t opflags)
{
	memset(r, 0, 44);
	r[0] = 2;
	r[1] = 10;
	r[19] = 24;
	r[23] = 1;
	for (int i = 0; i < 4; i++) {
		r[24 + i] = (uint8_t)(rcode >> (24 - 8 * i));
		r[28 + i] = (uint8_t)(opflags >> (24 - 8 * i));
	}
}

static void test_close_rule(void **state)
{
	(void)state;
	static uint8_t buf[8192], chal[8192];
	uint8_t ok[44];
	reply(ok, HDL_RC_SUCCESS, HDL_OF_REC);
	tcp_frame_t hdllib, idis, login, kc;
	/* hdllib 9: 2.11, no KC: one request per connection */
	size_t n = capture("java-hdllib-resolve-tcp.hex", buf, sizeof(buf));
	assert_int_equal(tcp_frame_check(buf, n, 262144, &hdllib), TCP_FRAME_OK);
	buf[HDL_ENVELOPE_LEN + 8] |= (uint8_t)(HDL_OF_KC >> 24);
	assert_int_equal(tcp_frame_check(buf, n, 262144, &kc), TCP_FRAME_OK);
	assert_true(kc.opflags & HDL_OF_KC);
	/* the IDIS SDK: 2.10, no KC, a pooled connection */
	n = capture("idpointer-sdk-resolve-tcp.hex", buf, sizeof(buf));
	assert_int_equal(tcp_frame_check(buf, n, 262144, &idis), TCP_FRAME_OK);
	assert_int_equal(idis.minor, 10);
	assert_false(idis.opflags & HDL_OF_KC);
	n = capture("idpointer-sdk-login-seckey-tcp-1-request.hex", buf, sizeof(buf));
	assert_int_equal(tcp_frame_check(buf, n, 262144, &login), TCP_FRAME_OK);

	assert_true(tcp_close_after(NODE_TCP_CLOSE_AUTO, &hdllib, ok, sizeof(ok)));
	assert_false(tcp_close_after(NODE_TCP_CLOSE_AUTO, &kc, ok, sizeof(ok)));
	assert_false(tcp_close_after(NODE_TCP_CLOSE_AUTO, &idis, ok, sizeof(ok)));
	assert_false(tcp_close_after(NODE_TCP_CLOSE_AUTO, &login, ok, sizeof(ok)));
	/* yes: every answer; no: none */
	assert_true(tcp_close_after(NODE_TCP_CLOSE_YES, &idis, ok, sizeof(ok)));
	assert_true(tcp_close_after(NODE_TCP_CLOSE_YES, &kc, ok, sizeof(ok)));
	assert_false(tcp_close_after(NODE_TCP_CLOSE_NO, &hdllib, ok, sizeof(ok)));
	/* an error answer ends the exchange as well */
	uint8_t nf[44];
	reply(nf, HDL_RC_HANDLE_NOT_FOUND, 0);
	assert_true(tcp_close_after(NODE_TCP_CLOSE_AUTO, &hdllib, nf, sizeof(nf)));
	/* hdllib's challenge (RC 402, captured): the answer comes on the same connection */
	size_t cn = capture("java-hdllib-create-seckey-tcp-2-challenge.hex", chal, sizeof(chal));
	assert_true(cn > 44);
	assert_false(tcp_close_after(NODE_TCP_CLOSE_AUTO, &hdllib, chal, cn));
	assert_false(tcp_close_after(NODE_TCP_CLOSE_YES, &hdllib, chal, cn));
	/* a part of a stream (CN) is followed by more */
	uint8_t part[44];
	reply(part, HDL_RC_SUCCESS, HDL_OF_CN);
	assert_false(tcp_close_after(NODE_TCP_CLOSE_YES, &hdllib, part, sizeof(part)));
	/* an encrypted answer cannot be read: kept */
	ok[2] |= HDL_ENV_ENCRYPTED;
	assert_false(tcp_close_after(NODE_TCP_CLOSE_YES, &hdllib, ok, sizeof(ok)));
	/* too short to be an answer: kept */
	assert_false(tcp_close_after(NODE_TCP_CLOSE_YES, &hdllib, nf, 30));
	/* 3.x speaks after 2.11; 5.0 (old clients' bug) before it */
	tcp_frame_t v = hdllib;
	v.major = 3;
	v.minor = 0;
	assert_true(tcp_close_after(NODE_TCP_CLOSE_AUTO, &v, nf, sizeof(nf)));
	v.major = 5;
	assert_false(tcp_close_after(NODE_TCP_CLOSE_AUTO, &v, nf, sizeof(nf)));
	v.major = 2;
	v.minor = 12;
	assert_true(tcp_close_after(NODE_TCP_CLOSE_AUTO, &v, nf, sizeof(nf)));
	v.encrypted = true;
	assert_false(tcp_close_after(NODE_TCP_CLOSE_AUTO, &v, nf, sizeof(nf)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_siphash_vectors), cmocka_unit_test(test_sources),
	    cmocka_unit_test(test_limits),          cmocka_unit_test(test_concurrent),
	    cmocka_unit_test(test_frame),           cmocka_unit_test(test_close_rule),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
