/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Unit tests of idnode-bench's pieces: the log-bucket histogram's percentile precision,
 *        the Zipf sampler's frequencies, key pattern/range and file expansion, the loopback guard,
 *        and the request builder / reply parsers.
 *
 * The pieces live in .c files under tools/bench/ without main(); this test includes them directly
 * (tools/bench is built into the idnode-bench executable only, not a library).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include <cmocka.h>

#include "../../tools/bench/addr.c"
#include "../../tools/bench/hist.c"
#include "../../tools/bench/keys.c"
#include "../../tools/bench/proto.c"
#include "../../tools/bench/zipf.c"

/* ---- histogram ---- */

static void test_hist_buckets(void **state)
{
	(void)state;
	bk_rng_t r;
	bk_rng_seed(&r, 42);
	for (uint64_t v = 0; v < 100000; v++) {
		uint32_t i = bh_index(v);
		assert_true(i < BH_NBUCKETS);
		assert_true(bh_lowest(i) <= v);
		assert_true(bh_highest(i) >= v);
	}
	for (int k = 0; k < 200000; k++) {
		uint64_t v = bk_rng_next(&r) >> (bk_rng_next(&r) % 64);
		uint32_t i = bh_index(v);
		assert_true(i < BH_NBUCKETS);
		uint64_t lo = bh_lowest(i), hi = bh_highest(i);
		assert_true(lo <= v && v <= hi);
		/* bucket width relative to its lower bound: at most 1/128 above 255 */
		if (lo >= 256)
			assert_true((double)(hi - lo + 1) / (double)lo <= 1.0 / 128.0 + 1e-12);
		else
			assert_int_equal(lo, hi);
	}
	assert_true(bh_index(UINT64_MAX) < BH_NBUCKETS);
	assert_true(bh_highest(bh_index(UINT64_MAX)) == UINT64_MAX);
	/* indexes are monotonic in the value */
	uint32_t prev = 0;
	for (uint64_t v = 1; v < (1ull << 40); v = v * 3 / 2 + 1) {
		uint32_t i = bh_index(v);
		assert_true(i >= prev);
		prev = i;
	}
}

static void test_hist_empty(void **state)
{
	(void)state;
	bh_hist_t *h = malloc(sizeof(*h));
	assert_non_null(h);
	bh_init(h);
	assert_int_equal(bh_percentile(h, 50.0), 0);
	assert_int_equal(h->count, 0);
	assert_true(bh_mean(h) == 0.0);
	bh_record(h, 777);
	assert_int_equal(bh_percentile(h, 0.0), 777);
	assert_int_equal(bh_percentile(h, 50.0), 777);
	assert_int_equal(bh_percentile(h, 100.0), 777);
	free(h);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* exact percentile of a sorted array (same rank rule as bh_percentile) */
static uint64_t exact_pct(const uint64_t *v, size_t n, double p)
{
	size_t want = (size_t)ceil(p / 100.0 * (double)n);
	if (want < 1)
		want = 1;
	return v[want - 1];
}

static void check_against_exact(uint64_t *vals, size_t n)
{
	bh_hist_t *h = malloc(sizeof(*h));
	assert_non_null(h);
	bh_init(h);
	for (size_t i = 0; i < n; i++)
		bh_record(h, vals[i]);
	qsort(vals, n, sizeof(*vals), cmp_u64);
	static const double ps[] = {1, 10, 25, 50, 75, 90, 99, 99.9, 99.99};
	for (size_t k = 0; k < sizeof(ps) / sizeof(ps[0]); k++) {
		double e = (double)exact_pct(vals, n, ps[k]);
		double g = (double)bh_percentile(h, ps[k]);
		/* reported value is the bucket's top: never below, at most 1/128 above */
		assert_true(g >= e);
		assert_true(g <= e * (1.0 + 1.0 / 128.0) + 1.0);
	}
	assert_int_equal(h->min, vals[0]);
	assert_int_equal(h->max, vals[n - 1]);
	assert_int_equal(bh_percentile(h, 100.0), vals[n - 1]);
	assert_int_equal(h->count, n);
	free(h);
}

static void test_hist_uniform(void **state)
{
	(void)state;
	size_t n = 1000000;
	uint64_t *v = malloc(n * sizeof(*v));
	assert_non_null(v);
	for (size_t i = 0; i < n; i++)
		v[i] = i + 1; /* 1 .. 1e6: p50 = 500000, p99 = 990000 */
	bh_hist_t *h = malloc(sizeof(*h));
	bh_init(h);
	for (size_t i = 0; i < n; i++)
		bh_record(h, v[i]);
	assert_true(fabs((double)bh_percentile(h, 50) - 500000.0) <= 500000.0 / 128.0 + 1);
	assert_true(fabs((double)bh_percentile(h, 99) - 990000.0) <= 990000.0 / 128.0 + 1);
	assert_true(fabs(bh_mean(h) - 500000.5) < 1.0);
	/* stddev of uniform 1..n = n / sqrt(12) */
	assert_true(fabs(bh_stddev(h) - 1e6 / sqrt(12.0)) / (1e6 / sqrt(12.0)) < 0.001);
	free(h);
	check_against_exact(v, n);
	free(v);
}

static void test_hist_exponential(void **state)
{
	(void)state;
	size_t n = 500000;
	uint64_t *v = malloc(n * sizeof(*v));
	bk_rng_t r;
	bk_rng_seed(&r, 7);
	for (size_t i = 0; i < n; i++) /* latency-like: 20 us floor + exp(mean 50 us), in ns */
		v[i] = 20000 + (uint64_t)(-log(1.0 - bk_rng_double(&r)) * 50000.0);
	/* analytic p99 = 20000 + 50000 * ln(100) ~ 250259 ns */
	bh_hist_t *h = malloc(sizeof(*h));
	bh_init(h);
	for (size_t i = 0; i < n; i++)
		bh_record(h, v[i]);
	double p99 = (double)bh_percentile(h, 99);
	assert_true(fabs(p99 - 250259.0) / 250259.0 < 0.03);
	free(h);
	check_against_exact(v, n);
	free(v);
}

static void test_hist_merge(void **state)
{
	(void)state;
	bh_hist_t *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b)), *all = malloc(sizeof(*all));
	bh_init(a);
	bh_init(b);
	bh_init(all);
	bk_rng_t r;
	bk_rng_seed(&r, 3);
	for (int i = 0; i < 100000; i++) {
		uint64_t x = bk_rng_below(&r, 10000000);
		bh_record(i % 3 ? a : b, x);
		bh_record(all, x);
	}
	bh_merge(a, b);
	assert_int_equal(a->count, all->count);
	assert_int_equal(a->min, all->min);
	assert_int_equal(a->max, all->max);
	assert_memory_equal(a->b, all->b, sizeof(a->b));
	assert_int_equal(bh_percentile(a, 99.9), bh_percentile(all, 99.9));
	free(a);
	free(b);
	free(all);
}

/* ---- zipf ---- */

static void zipf_freq(uint64_t n, double s)
{
	bk_zipf_t z;
	bk_rng_t r;
	assert_int_equal(bk_zipf_init(&z, n, s), 0);
	bk_rng_seed(&r, 11);
	uint64_t *cnt = calloc(n + 1, sizeof(*cnt));
	const uint64_t draws = 2000000;
	for (uint64_t i = 0; i < draws; i++) {
		uint64_t k = bk_zipf_next(&z, &r);
		assert_true(k >= 1 && k <= n);
		cnt[k]++;
	}
	double hn = 0;
	for (uint64_t k = 1; k <= n; k++)
		hn += pow((double)k, -s);
	static const uint64_t ranks[] = {1, 2, 3, 10, 100};
	for (size_t i = 0; i < sizeof(ranks) / sizeof(ranks[0]); i++) {
		uint64_t k = ranks[i];
		if (k > n)
			continue;
		double expect = (double)draws * pow((double)k, -s) / hn;
		double got = (double)cnt[k];
		/* 5 % or 5 sigma, whichever is larger */
		double tol = fmax(0.05 * expect, 5.0 * sqrt(expect));
		assert_true(fabs(got - expect) <= tol);
	}
	/* the head holds its share: top 10 % of ranks */
	double head = 0, head_expect = 0;
	for (uint64_t k = 1; k <= n / 10; k++) {
		head += (double)cnt[k];
		head_expect += pow((double)k, -s) / hn;
	}
	assert_true(fabs(head / (double)draws - head_expect) < 0.01);
	free(cnt);
}

static void test_zipf(void **state)
{
	(void)state;
	zipf_freq(1000, 1.0);
	zipf_freq(1000, 0.8);
	zipf_freq(100000, 1.2);
	bk_zipf_t z;
	bk_rng_t r;
	bk_rng_seed(&r, 1);
	assert_int_equal(bk_zipf_init(&z, 1, 1.0), 0);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(bk_zipf_next(&z, &r), 1);
	assert_int_equal(bk_zipf_init(&z, 0, 1.0), -1);
	assert_int_equal(bk_zipf_init(&z, 10, 0.0), -1);
	assert_int_equal(bk_zipf_init(&z, 10, NAN), -1);
}

static void test_zipf_spread(void **state)
{
	(void)state;
	static const uint64_t ns[] = {1, 2, 7, 1000, 1024, 999983, 1000000};
	for (size_t t = 0; t < sizeof(ns) / sizeof(ns[0]); t++) {
		uint64_t n = ns[t], m = bk_zipf_mult(n);
		uint8_t *seen = calloc(n, 1);
		for (uint64_t k = 1; k <= n; k++) {
			uint64_t i = bk_zipf_spread(k, n, m);
			assert_true(i < n);
			assert_int_equal(seen[i], 0); /* a permutation */
			seen[i] = 1;
		}
		free(seen);
	}
	/* hot ranks are not neighbours in key space */
	uint64_t m = bk_zipf_mult(1000000);
	assert_true(bk_zipf_spread(2, 1000000, m) - bk_zipf_spread(1, 1000000, m) > 1000);
}

static void test_rng(void **state)
{
	(void)state;
	bk_rng_t r;
	bk_rng_seed(&r, 5);
	uint64_t buckets[10] = {0};
	for (int i = 0; i < 100000; i++) {
		double d = bk_rng_double(&r);
		assert_true(d >= 0.0 && d < 1.0);
		buckets[bk_rng_below(&r, 10)]++;
	}
	for (int i = 0; i < 10; i++)
		assert_true(buckets[i] > 9500 && buckets[i] < 10500);
}

/* ---- keys ---- */

static void key_is(const bk_keys_t *k, uint64_t i, const char *want)
{
	char buf[BK_KEY_MAX];
	size_t n = bk_key_get(k, i, buf, sizeof(buf));
	assert_int_equal(n, strlen(want));
	assert_memory_equal(buf, want, n);
}

static void test_keys_pattern(void **state)
{
	(void)state;
	bk_keys_t k;
	char err[128];
	assert_int_equal(bk_keys_pattern(&k, "88.100.1/%s", "5-7", err, sizeof(err)), 0);
	assert_int_equal(k.n, 3);
	key_is(&k, 0, "88.100.1/5");
	key_is(&k, 2, "88.100.1/7");
	char buf[64];
	assert_int_equal(bk_key_get(&k, 3, buf, sizeof(buf)), 0); /* out of range */
	assert_int_equal(bk_key_get(&k, 0, buf, 4), 0);            /* does not fit */
	bk_keys_free(&k);
	assert_int_equal(bk_keys_pattern(&k, "k%d.bench", "0-999999", err, sizeof(err)), 0);
	assert_int_equal(k.n, 1000000);
	key_is(&k, 999999, "k999999.bench");
	assert_int_equal(bk_keys_pattern(&k, "100%%/%u", "10-10", err, sizeof(err)), 0);
	assert_int_equal(k.n, 1);
	key_is(&k, 0, "100%/10");
	assert_int_equal(bk_keys_pattern(&k, "88.100.1/PUMP-2019-%06u", "7-8", err, sizeof(err)), 0);
	key_is(&k, 0, "88.100.1/PUMP-2019-000007");
	key_is(&k, 1, "88.100.1/PUMP-2019-000008");
	assert_int_equal(bk_keys_pattern(&k, "x%03s", "1234-1234", err, sizeof(err)), 0);
	key_is(&k, 0, "x1234"); /* wider numbers are not cut */
	/* refused */
	assert_int_equal(bk_keys_pattern(&k, "a/%099d", "1-2", err, sizeof(err)), -1);
	assert_int_equal(bk_keys_pattern(&k, "a/%6d", "1-2", err, sizeof(err)), -1);
	assert_int_equal(bk_keys_pattern(&k, "88.100.1/x", "1-2", err, sizeof(err)), -1);
	assert_int_equal(bk_keys_pattern(&k, "%s/%s", "1-2", err, sizeof(err)), -1);
	assert_int_equal(bk_keys_pattern(&k, "a/%x", "1-2", err, sizeof(err)), -1);
	assert_int_equal(bk_keys_pattern(&k, "a/%s", "7-5", err, sizeof(err)), -1);
	assert_int_equal(bk_keys_pattern(&k, "a/%s", "abc", err, sizeof(err)), -1);
	assert_int_equal(bk_keys_pattern(&k, "a/%s", "1-", err, sizeof(err)), -1);
	assert_int_equal(bk_keys_pattern(&k, "a/%s", "-3", err, sizeof(err)), -1);
	assert_int_equal(bk_keys_pattern(&k, "a/%s", NULL, err, sizeof(err)), -1);
	assert_int_equal(bk_keys_pattern(&k, "a/%s", "1-99999999999999999999999", err, sizeof(err)),
	                 -1);
}

static void test_keys_file(void **state)
{
	(void)state;
	bk_keys_t k;
	char err[128];
	const char *text = "# comment\n"
	                   "88.100.1/plain\r\n"
	                   "\n"
	                   "   88.100.1/spaced  \n"
	                   "{\"values\":[{\"index\":100,\"type\":\"HS_ADMIN\",\"data\":{\"value\":"
	                   "{\"handle\":\"0.NA/88.100.1\",\"index\":200}}}],\"handle\":\"88.100.1/j\\u00e9\"}\n"
	                   "{\"handle\" : \"88.100.1/a\\\"b\\\\c\\/d\", \"values\":[]}\n"
	                   "{\"handle\":\"88.100.1/\\ud83d\\ude00\"}";
	assert_int_equal(bk_keys_load_mem(&k, text, strlen(text), err, sizeof(err)), 0);
	assert_int_equal(k.n, 5);
	key_is(&k, 0, "88.100.1/plain");
	key_is(&k, 1, "88.100.1/spaced");
	key_is(&k, 2, "88.100.1/j\xc3\xa9");       /* the top-level one, not the HS_ADMIN's */
	key_is(&k, 3, "88.100.1/a\"b\\c/d");
	key_is(&k, 4, "88.100.1/\xf0\x9f\x98\x80"); /* surrogate pair */
	bk_keys_free(&k);

	static const char *const bad[] = {
		"{\"values\":[]}\n",                          /* no handle */
		"{\"x\":{\"handle\":\"nested\"}}\n",          /* only a nested one */
		"{\"handle\":\"unterminated\n",
		"{\"handle\":\"bad\\escape\"}\n",
		"{\"handle\":\"\\ud800\"}\n",                 /* lone surrogate */
		"{\"handle\":42}\n",
		"{\"handle\":\"\"}\n",
		"# only comments\n\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(bk_keys_load_mem(&k, bad[i], strlen(bad[i]), err, sizeof(err)), -1);

	/* many keys: growth paths */
	size_t n = 100000, cap = n * 24, len = 0;
	char *big = malloc(cap);
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(big + len, cap - len, "88.100.1/%zu\n", i);
	assert_int_equal(bk_keys_load_mem(&k, big, len, err, sizeof(err)), 0);
	assert_int_equal(k.n, n);
	key_is(&k, 0, "88.100.1/0");
	key_is(&k, 99999, "88.100.1/99999");
	bk_keys_free(&k);
	free(big);

	assert_int_equal(bk_keys_load(&k, "/nonexistent/keys.txt", err, sizeof(err)), -1);
}

/* ---- loopback guard ---- */

static void test_addr_guard(void **state)
{
	(void)state;
	char err[256];
	assert_int_equal(bk_addr_check("127.0.0.1:2641", err, sizeof(err)), 0);
	assert_int_equal(bk_addr_check("127.1.2.3:80", err, sizeof(err)), 0);
	assert_int_equal(bk_addr_check("[::1]:2641", err, sizeof(err)), 0);
	assert_int_equal(bk_addr_check("::1", err, sizeof(err)), 0);
	assert_int_equal(bk_addr_check("localhost:8000", err, sizeof(err)), 0);
	assert_int_equal(bk_addr_check("127.0.0.1", err, sizeof(err)), 0); /* default port */
	assert_int_equal(bk_addr_check("[::ffff:127.0.0.1]:53", err, sizeof(err)), 0);
	assert_int_equal(bk_addr_check("10.0.0.1:2641", err, sizeof(err)), -2);
	assert_int_equal(bk_addr_check("192.168.1.1:2641", err, sizeof(err)), -2);
	assert_int_equal(bk_addr_check("8.8.8.8:53", err, sizeof(err)), -2);
	assert_int_equal(bk_addr_check("0.0.0.0:2641", err, sizeof(err)), -2);
	assert_int_equal(bk_addr_check("[2001:db8::1]:2641", err, sizeof(err)), -2);
	assert_int_equal(bk_addr_check("[::]:2641", err, sizeof(err)), -2);
	assert_int_equal(bk_addr_check("127.0.0.1:0", err, sizeof(err)), -1);
	assert_int_equal(bk_addr_check("127.0.0.1:65536", err, sizeof(err)), -1);
	assert_int_equal(bk_addr_check("127.0.0.1:http", err, sizeof(err)), -1);
	assert_int_equal(bk_addr_check("[::1", err, sizeof(err)), -1);
	assert_int_equal(bk_addr_check("", err, sizeof(err)), -1);
	struct sockaddr_storage ss;
	socklen_t sl;
	assert_int_equal(bk_addr_parse("127.0.0.1:2641", 1, &ss, &sl, err, sizeof(err)), 0);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 2641);
}

/* ---- requests and replies ---- */

static void test_build_udp(void **state)
{
	(void)state;
	bk_tmpl_t t;
	const char *types[] = {"URL", "HS_SITE."};
	assert_int_equal(bk_tmpl_init(&t, BK_UDP, types, 2, NULL), 0);
	uint8_t got[600], want[600];
	size_t gl = bk_build(&t, "88.100.1/abc", 12, 0x01020304u, got, sizeof(got));
	assert_true(gl > 44);
	/* the same request straight from hdl_msg_encode */
	hdl_msg_t m;
	hdl_msg_init(&m);
	m.env.major = 2;
	m.env.minor = 11;
	m.env.sugg_major = 2;
	m.env.sugg_minor = 11;
	m.env.request_id = 0x01020304u;
	m.hdr.opcode = HDL_OC_RESOLUTION;
	m.hdr.opflags = 0x19000000u;
	m.hdr.site_serial = 0xFFFF;
	m.hdr.expiration = (uint32_t)(t.head[36] << 24 | t.head[37] << 16 | t.head[38] << 8 | t.head[39]);
	m.kind = HDL_BODY_RESOLVE;
	m.u.resolve.handle = hdl_slice_str("88.100.1/abc");
	hdl_slice_t tv[2] = {hdl_slice_str("URL"), hdl_slice_str("HS_SITE.")};
	m.u.resolve.n_types = 2;
	m.u.resolve.types = tv;
	size_t wl = 0;
	assert_int_equal(hdl_msg_encode(&m, want, sizeof(want), &wl), HDL_EOK);
	assert_int_equal(gl, wl);
	assert_memory_equal(got, want, wl);
	/* and it decodes back */
	hdl_arena_t a;
	hdl_arena_init(&a, NULL, 0, 0);
	hdl_msg_t d;
	assert_int_equal(hdl_msg_decode(got, gl, &a, &d), HDL_EOK);
	assert_int_equal(d.env.request_id, 0x01020304u);
	assert_int_equal(d.kind, HDL_BODY_RESOLVE);
	assert_int_equal(d.u.resolve.handle.len, 12);
	assert_int_equal(d.u.resolve.n_types, 2);
	hdl_arena_free(&a);
	assert_int_equal(bk_id_offset(&t, 12), 8);
	/* a key that does not fit */
	assert_int_equal(bk_build(&t, "88.100.1/abc", 12, 1, got, 40), 0);
}

static void test_parse_dgram(void **state)
{
	(void)state;
	/* the worked example response of handle-protocol.md §3.3, RequestId 0x01020304 */
	static const uint8_t resp[] = {
		0x02, 0x0a, 0x02, 0x0b, 0, 0, 0, 0, 0x01, 0x02, 0x03, 0x04, 0, 0, 0, 0, 0, 0, 0, 0x65,
		0, 0, 0, 1, 0, 0, 0, 1, 0x19, 0, 0, 0, 0, 1, 0, 0, 0x70, 0, 0, 0, 0, 0, 0, 0x49,
		0, 0, 0, 0x10, '2', '0', '.', '5', '0', '0', '.', '1', '2', '3', '4', '5', '/', 'a', 'b', 'c',
		0, 0, 0, 1,
		0, 0, 0, 1, 0x65, 0, 0, 0, 0, 0, 1, 0x51, 0x80, 0x0e,
		0, 0, 0, 3, 'U', 'R', 'L', 0, 0, 0, 0x14, 'h', 't', 't', 'p', 's', ':', '/', '/', 'e', 'x',
		'a', 'm', 'p', 'l', 'e', '.', 'o', 'r', 'g', '/',
		0, 0, 0, 0,
		0, 0, 0, 0,
	};
	bk_reply_t r;
	assert_int_equal(sizeof(resp), 20 + 0x65);
	assert_int_equal(bk_parse_dgram(BK_UDP, resp, sizeof(resp), &r), 0);
	assert_int_equal(r.id, 0x01020304u);
	assert_int_equal(r.code, 1);
	assert_int_equal(r.npackets, 1);
	assert_false(r.is_request);
	assert_ptr_equal(r.msg, resp);
	/* truncated / lying lengths / bad version */
	assert_int_equal(bk_parse_dgram(BK_UDP, resp, 19, &r), -1);
	assert_int_equal(bk_parse_dgram(BK_UDP, resp, sizeof(resp) - 1, &r), -1);
	uint8_t bad[sizeof(resp)];
	memcpy(bad, resp, sizeof(resp));
	bad[0] = 9;
	assert_int_equal(bk_parse_dgram(BK_UDP, bad, sizeof(bad), &r), -1);
	memcpy(bad, resp, sizeof(resp));
	bad[16] = 0x7f; /* MessageLength over the limit */
	assert_int_equal(bk_parse_dgram(BK_UDP, bad, sizeof(bad), &r), -1);
	/* an echoed request is recognised as one */
	bk_tmpl_t t;
	assert_int_equal(bk_tmpl_init(&t, BK_UDP, NULL, 0, NULL), 0);
	uint8_t req[512];
	size_t rl = bk_build(&t, "88.100.1/x", 10, 77, req, sizeof(req));
	assert_int_equal(bk_parse_dgram(BK_UDP, req, rl, &r), 0);
	assert_true(r.is_request);
	assert_int_equal(r.id, 77);
	/* the first datagram of a two-packet message */
	uint8_t mp[512];
	memset(mp, 0, sizeof(mp));
	memcpy(mp, resp, 44);
	mp[16] = 0;
	mp[17] = 0;
	mp[18] = 0x02;
	mp[19] = 0x00; /* MessageLength 512 -> 2 datagrams: 492 + 20 */
	assert_int_equal(bk_parse_dgram(BK_UDP, mp, 512, &r), 0);
	assert_int_equal(r.npackets, 2);
	assert_int_equal(r.seq, 0);
	assert_null(r.msg);
	mp[15] = 1; /* sequence 1 carries the last 20 bytes */
	assert_int_equal(bk_parse_dgram(BK_UDP, mp, 40, &r), 0);
	assert_int_equal(r.seq, 1);
	assert_int_equal(bk_parse_dgram(BK_UDP, mp, 512, &r), -1);
	mp[15] = 2;
	assert_int_equal(bk_parse_dgram(BK_UDP, mp, 40, &r), -1);
}

static void test_parse_stream(void **state)
{
	(void)state;
	bk_reply_t r;
	const char *rest = "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
	                   "content-length: 27\r\n\r\n{\"responseCode\":100,\"x\":1}\n"
	                   "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
	size_t len = strlen(rest);
	size_t first = strlen(rest) - strlen(strstr(rest, "HTTP/1.1 200"));
	for (size_t cut = 0; cut < first; cut++)
		assert_int_equal(bk_parse_stream(BK_REST, (const uint8_t *)rest, cut, &r), 0);
	assert_int_equal(bk_parse_stream(BK_REST, (const uint8_t *)rest, len, &r), (long)first);
	assert_int_equal(r.code, 404);
	assert_int_equal(bk_parse_stream(BK_REST, (const uint8_t *)rest + first, len - first, &r),
	                 (long)(len - first));
	assert_int_equal(r.code, 200);
	const char *chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n";
	assert_int_equal(bk_parse_stream(BK_REST, (const uint8_t *)chunked, strlen(chunked), &r), -1);
	const char *junk = "SSH-2.0-OpenSSH\r\n\r\n";
	assert_int_equal(bk_parse_stream(BK_REST, (const uint8_t *)junk, strlen(junk), &r), -1);

	/* TCP: a request frame split anywhere, then whole */
	bk_tmpl_t t;
	assert_int_equal(bk_tmpl_init(&t, BK_TCP, NULL, 0, NULL), 0);
	uint8_t buf[600];
	size_t fl = bk_build(&t, "88.100.1/tcp", 12, 5, buf, sizeof(buf));
	for (size_t cut = 0; cut < fl; cut++)
		assert_int_equal(bk_parse_stream(BK_TCP, buf, cut, &r), 0);
	assert_int_equal(bk_parse_stream(BK_TCP, buf, fl, &r), (long)fl);
	assert_int_equal(r.id, 5);
	assert_false(r.bad);

	/* HTTP tunnel: the request a client sends parses as POST headers + Handle body */
	bk_tmpl_t th;
	assert_int_equal(bk_tmpl_init(&th, BK_HTTP, NULL, 0, "127.0.0.1:8000"), 0);
	uint8_t hreq[1200];
	size_t hl = bk_build(&th, "88.100.1/a b", 12, 9, hreq, sizeof(hreq));
	assert_true(hl > 0);
	assert_true(memcmp(hreq, "POST /88.100.1/a%20b HTTP/1.1\r\n", 31) == 0);
	assert_non_null(memmem(hreq, hl, "Content-Type: application/x-hdl-message", 39));
	/* wrap a Handle reply into an HTTP response */
	char hresp[1200];
	int n = snprintf(hresp, sizeof(hresp),
	                 "HTTP/1.1 200 OK\r\nContent-Type: application/x-hdl-message\r\n"
	                 "Content-Length: %zu\r\n\r\n", fl);
	memcpy(hresp + n, buf, fl);
	assert_int_equal(bk_parse_stream(BK_HTTP, (uint8_t *)hresp, (size_t)n + fl, &r),
	                 (long)((size_t)n + fl));
	assert_int_equal(r.id, 5);
	assert_false(r.bad);
	const char *h500 = "HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n";
	assert_int_equal(bk_parse_stream(BK_HTTP, (const uint8_t *)h500, strlen(h500), &r),
	                 (long)strlen(h500));
	assert_true(r.bad);

	/* REST request line */
	bk_tmpl_t tr;
	assert_int_equal(bk_tmpl_init(&tr, BK_REST, NULL, 0, "localhost"), 0);
	hl = bk_build(&tr, "88.100.1/x", 10, 0, hreq, sizeof(hreq));
	assert_int_equal(hl, strlen("GET /api/handles/88.100.1/x HTTP/1.1\r\nHost: localhost\r\n\r\n"));
	assert_memory_equal(hreq, "GET /api/handles/88.100.1/x HTTP/1.1\r\nHost: localhost\r\n\r\n", hl);
	assert_int_equal(bk_id_offset(&tr, 10), -1);
}

static void test_dns(void **state)
{
	(void)state;
	bk_tmpl_t t;
	assert_int_equal(bk_tmpl_init(&t, BK_DNS, NULL, 0, NULL), 0);
	uint8_t q[300];
	size_t ql = bk_build(&t, "k42.bench", 9, 0xBEEF, q, sizeof(q));
	static const uint8_t want[] = {0xBE, 0xEF, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, /* 1 additional */
	                               3, 'k', '4', '2', 5, 'b', 'e', 'n', 'c', 'h', 0,
	                               0, 16, 0, 1,                         /* TXT IN */
	                               0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0}; /* OPT 4096 */
	assert_int_equal(ql, sizeof(want));
	assert_memory_equal(q, want, ql);
	bk_reply_t r;
	assert_int_equal(bk_parse_dgram(BK_DNS, q, ql, &r), 0);
	assert_true(r.is_request);
	q[2] |= 0x80; /* QR */
	q[3] = 3;     /* NXDOMAIN */
	assert_int_equal(bk_parse_dgram(BK_DNS, q, ql, &r), 0);
	assert_false(r.is_request);
	assert_int_equal(r.code, 3);
	assert_int_equal(r.id, 0xBEEF);
	char nb[16];
	assert_string_equal(bk_code_name(BK_DNS, 3, false, nb, sizeof(nb)), "NXDOMAIN");
	assert_int_equal(bk_build(&t, "a..b", 4, 1, q, sizeof(q)), 0); /* empty label */
	bk_tmpl_t tt;
	assert_int_equal(bk_tmpl_init(&tt, BK_DNSTCP, NULL, 0, NULL), 0);
	ql = bk_build(&tt, "k42.bench", 9, 0xBEEF, q, sizeof(q));
	assert_int_equal(ql, sizeof(want) + 2);
	assert_int_equal(q[1], sizeof(want));
	assert_int_equal(bk_parse_stream(BK_DNSTCP, q, ql, &r), (long)ql);
	assert_int_equal(bk_parse_stream(BK_DNSTCP, q, ql - 1, &r), 0);
	bk_proto_t p;
	assert_int_equal(bk_proto_parse("rest", &p), 0);
	assert_int_equal(p, BK_REST);
	assert_int_equal(bk_proto_parse("gopher", &p), -1);
	assert_string_equal(bk_code_name(BK_REST, 200, false, nb, sizeof(nb)), "HTTP_200");
	assert_string_equal(bk_code_name(BK_UDP, 0, true, nb, sizeof(nb)), "ECHO");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hist_buckets),   cmocka_unit_test(test_hist_empty),
		cmocka_unit_test(test_hist_uniform),   cmocka_unit_test(test_hist_exponential),
		cmocka_unit_test(test_hist_merge),     cmocka_unit_test(test_zipf),
		cmocka_unit_test(test_zipf_spread),    cmocka_unit_test(test_rng),
		cmocka_unit_test(test_keys_pattern),   cmocka_unit_test(test_keys_file),
		cmocka_unit_test(test_addr_guard),     cmocka_unit_test(test_build_udp),
		cmocka_unit_test(test_parse_dgram),    cmocka_unit_test(test_parse_stream),
		cmocka_unit_test(test_dns),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
