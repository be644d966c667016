/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief The resolver cache (node/resolver/dcache.c) on a fake clock: canonical keys, every TTL
 *        rule (relative, absolute, the smallest wins, cap, floor, negative answers), the stale
 *        window, the prefetch signal given once, eviction by bytes, shapes per handle,
 *        invalidation, flush, PUBLIC_READ filtering, malformed answers, the dump, and several
 *        threads hammering one cache (run under ASan+UBSan by scripts/test.sh --asan).
 */
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
#include "node/resolver/dcache.h"
#include "node/resolver/rhash.h"

typedef struct fake_clock {
	uint64_t ms;
	int64_t wall;
} fake_clock_t;

static uint64_t fake_ms(void *arg)
{
	return ((fake_clock_t *)arg)->ms;
}

static int64_t fake_wall(void *arg)
{
	return ((fake_clock_t *)arg)->wall;
}

static fake_clock_t T;
static const dcache_clock_t CLOCK = {fake_ms, fake_wall, &T};

static const dcache_policy_t POLICY = {
    .min_ttl = 0, .max_ttl = 86400, .negative_ttl = 60, .stale_max = 3600, .prefetch_pct = 10};

static dcache_t *mk(size_t max_bytes, unsigned shards, const dcache_policy_t *p)
{
	T.ms = 1000000;
	T.wall = 1700000000;
	dcache_opts_t o = {
	    .max_bytes = max_bytes, .shards = shards, .policy = p ? *p : POLICY, .clock = &CLOCK};
	dcache_t *c = NULL;
	assert_int_equal(dcache_new(&o, &c), HDL_EOK);
	assert_non_null(c);
	return c;
}

static hdl_value_t val(uint32_t index, const char *type, const char *data, uint8_t ttl_type,
                       uint32_t ttl, uint8_t perms)
{
	hdl_value_t v;
	memset(&v, 0, sizeof(v));
	v.index = index;
	v.timestamp = 1700000000u;
	v.ttl_type = ttl_type;
	v.ttl = ttl;
	v.perms = perms;
	v.type = hdl_slice_str(type);
	v.data = hdl_slice_str(data);
	return v;
}

/* Encode \p n values (U32 count + values) into a static buffer. */
static const uint8_t *enc(const hdl_value_t *v, uint32_t n, size_t *len)
{
	static uint8_t buf[65536];
	assert_int_equal(hdl_values_encode(v, n, buf, sizeof(buf), len), HDL_EOK);
	return buf;
}

/* Key of an unfiltered question for \p handle. */
static size_t key_of(const char *handle, uint8_t *k, size_t cap)
{
	size_t n = dcache_key(k, cap, hdl_slice_str(handle), NULL, 0, NULL, 0, true);
	assert_true(n > 0);
	return n;
}

/* Put \p n values for \p handle with RC success. */
static int put_vals(dcache_t *c, const char *handle, const hdl_value_t *v, uint32_t n)
{
	uint8_t k[256];
	size_t kl = key_of(handle, k, sizeof(k)), vl = 0;
	const uint8_t *vals = enc(v, n, &vl);
	return dcache_put(c, k, kl, HDL_RC_SUCCESS, vals, vl);
}

static int get(dcache_t *c, const char *handle, unsigned how, dcache_hit_t *hit)
{
	static uint8_t buf[65536];
	uint8_t k[256];
	size_t kl = key_of(handle, k, sizeof(k));
	return dcache_get(c, k, kl, how, buf, sizeof(buf), hit);
}

static dcache_stats_t stats(dcache_t *c)
{
	dcache_stats_t st;
	dcache_get_stats(c, &st);
	return st;
}

/* ---- keys ------------------------------------------------------------------------------------ */

static void test_key_canonical(void **state)
{
	(void)state;
	uint8_t a[512], b[512];
	hdl_slice_t h = hdl_slice_str("88.100.1/X");
	uint32_t i1[] = {3, 1, 2, 3}, i2[] = {1, 2, 3};
	hdl_slice_t t1[] = {hdl_slice_str("url"), hdl_slice_str("EMAIL"), hdl_slice_str("URL")};
	hdl_slice_t t2[] = {hdl_slice_str("Email"), hdl_slice_str("url")};
	size_t na = dcache_key(a, sizeof(a), h, i1, 4, t1, 3, true);
	size_t nb = dcache_key(b, sizeof(b), h, i2, 3, t2, 2, true);
	assert_true(na > 0);
	assert_int_equal(na, nb);
	assert_memory_equal(a, b, na);
	/* exact layout: U16 len, handle, flags, U16 n, U32s, U16 n, (U16 len, bytes)... */
	static const uint8_t want[] = {0,   10,  '8', '8', '.', '1', '0', '0', '.', '1', '/',
	                               'X', 1,   0,   3,   0,   0,   0,   1,   0,   0,   0,
	                               2,   0,   0,   0,   3,   0,   2,   0,   5,   'E', 'M',
	                               'A', 'I', 'L', 0,   3,   'U', 'R', 'L'};
	assert_int_equal(na, sizeof(want));
	assert_memory_equal(a, want, sizeof(want));

	/* PO, "URL." vs "URL", another handle: other keys */
	nb = dcache_key(b, sizeof(b), h, i2, 3, t2, 2, false);
	assert_true(nb == na && memcmp(a, b, na) != 0);
	hdl_slice_t t3[] = {hdl_slice_str("URL.")}, t4[] = {hdl_slice_str("URL")};
	na = dcache_key(a, sizeof(a), h, NULL, 0, t3, 1, true);
	nb = dcache_key(b, sizeof(b), h, NULL, 0, t4, 1, true);
	assert_true(na > 0 && nb > 0 && (na != nb || memcmp(a, b, na) != 0));

	/* the handle part, and the text form */
	na = dcache_key(a, sizeof(a), h, i1, 4, t1, 3, true);
	hdl_slice_t back;
	assert_true(dcache_key_handle(a, na, &back));
	assert_true(hdl_slice_eq(back, h));
	char text[128];
	assert_true(dcache_key_describe(a, na, text, sizeof(text)) > 0);
	assert_string_equal(text, "88.100.1/X po index=1,2,3 type=EMAIL,URL");
	uint32_t big[] = {4294967295u};
	size_t nbig = dcache_key(b, sizeof(b), h, big, 1, NULL, 0, false);
	assert_true(dcache_key_describe(b, nbig, text, sizeof(text)) > 0);
	assert_string_equal(text, "88.100.1/X index=4294967295");
	/* cut short, but still terminated */
	assert_int_equal(dcache_key_describe(a, na, text, 8), 7);
	assert_string_equal(text, "88.100.");

	/* refusals: no room, an empty handle, too many filters, malformed keys */
	assert_int_equal(dcache_key(a, 12, h, NULL, 0, NULL, 0, false), 0);
	assert_int_equal(dcache_key(a, sizeof(a), hdl_slice_str(""), NULL, 0, NULL, 0, false), 0);
	static uint32_t many[HDL_MAX_FILTER + 1];
	assert_int_equal(dcache_key(a, sizeof(a), h, many, HDL_MAX_FILTER + 1, NULL, 0, false), 0);
	assert_false(dcache_key_handle(a, na - 1, &back));
	assert_false(dcache_key_handle(a, 3, &back));
	assert_int_equal(dcache_key_describe(a, na + 1, text, sizeof(text)), 0);
}

/* ---- TTL rules --------------------------------------------------------------------------------
 */

static void test_ttl_relative(void **state)
{
	(void)state;
	dcache_t *c = mk(1u << 20, 1, NULL);
	dcache_hit_t hit;
	hdl_value_t v[] = {val(1, "URL", "http://a/", HDL_TTL_RELATIVE, 300, HDL_PERM_DEFAULT)};
	assert_int_equal(put_vals(c, "88.1/a", v, 1), HDL_EOK);
	assert_int_equal(get(c, "88.1/a", DCACHE_GET_FRESH, &hit), HDL_EOK);
	assert_int_equal(hit.rcode, HDL_RC_SUCCESS);
	assert_int_equal(hit.ttl_left, 300);
	assert_int_equal(hit.n_values, 1);
	assert_int_equal(hit.flags, 0);
	T.ms += 299999;
	assert_int_equal(get(c, "88.1/a", DCACHE_GET_FRESH, &hit), HDL_EOK);
	assert_int_equal(hit.ttl_left, 0);
	T.ms += 1;
	/* expired: a plain lookup misses but says a stale copy exists */
	assert_int_equal(get(c, "88.1/a", DCACHE_GET_FRESH, &hit), HDL_ENOENT);
	assert_int_equal(hit.flags, DCACHE_STALE);
	assert_int_equal(get(c, "88.1/a", DCACHE_GET_STALE_OK, &hit), HDL_EOK);
	assert_int_equal(hit.flags, DCACHE_STALE);
	assert_int_equal(hit.n_values, 1);
	dcache_stats_t st = stats(c);
	assert_int_equal(st.hits, 2);
	assert_int_equal(st.misses, 1);
	assert_int_equal(st.stale_served, 1);
	assert_int_equal(st.inserts, 1);
	dcache_free(c);
}

static void test_ttl_absolute(void **state)
{
	(void)state;
	dcache_t *c = mk(1u << 20, 1, NULL);
	dcache_hit_t hit;
	/* absolute: until wall + 100 s, whatever the monotonic clock says now */
	hdl_value_t v[] = {
	    val(1, "URL", "x", HDL_TTL_ABSOLUTE, (uint32_t)(T.wall + 100), HDL_PERM_DEFAULT)};
	assert_int_equal(put_vals(c, "88.1/abs", v, 1), HDL_EOK);
	assert_int_equal(get(c, "88.1/abs", DCACHE_GET_FRESH, &hit), HDL_EOK);
	assert_int_equal(hit.ttl_left, 100);
	T.ms += 100000;
	assert_int_equal(get(c, "88.1/abs", DCACHE_GET_FRESH, &hit), HDL_ENOENT);

	/* an absolute TTL already past is 0: not cached, unless min_ttl floors it */
	hdl_value_t past[] = {
	    val(1, "URL", "x", HDL_TTL_ABSOLUTE, (uint32_t)(T.wall - 5), HDL_PERM_DEFAULT)};
	assert_int_equal(put_vals(c, "88.1/past", past, 1), HDL_ELIMIT);
	assert_int_equal(stats(c).refused, 1);
	dcache_policy_t p = POLICY;
	p.min_ttl = 7;
	dcache_set_policy(c, &p);
	assert_int_equal(put_vals(c, "88.1/past", past, 1), HDL_EOK);
	assert_int_equal(get(c, "88.1/past", DCACHE_GET_FRESH, &hit), HDL_EOK);
	assert_int_equal(hit.ttl_left, 7);
	/* an unknown TTL type counts as 0 too */
	hdl_value_t odd[] = {val(1, "URL", "x", 7, 500, HDL_PERM_DEFAULT)};
	assert_int_equal(put_vals(c, "88.1/odd", odd, 1), HDL_EOK);
	assert_int_equal(get(c, "88.1/odd", DCACHE_GET_FRESH, &hit), HDL_EOK);
	assert_int_equal(hit.ttl_left, 7);
	dcache_free(c);
}

static void test_ttl_min_wins_cap_floor(void **state)
{
	(void)state;
	dcache_policy_t p = POLICY;
	p.max_ttl = 1000;
	p.min_ttl = 30;
	dcache_t *c = mk(1u << 20, 1, &p);
	dcache_hit_t hit;
	/* relative 500, absolute +200, relative 900: 200 wins */
	hdl_value_t v[] = {
	    val(1, "URL", "a", HDL_TTL_RELATIVE, 500, HDL_PERM_DEFAULT),
	    val(2, "URL", "b", HDL_TTL_ABSOLUTE, (uint32_t)(T.wall + 200), HDL_PERM_DEFAULT),
	    val(3, "URL", "c", HDL_TTL_RELATIVE, 900, HDL_PERM_DEFAULT),
	};
	assert_int_equal(put_vals(c, "88.1/min", v, 3), HDL_EOK);
	assert_int_equal(get(c, "88.1/min", DCACHE_GET_FRESH, &hit), HDL_EOK);
	assert_int_equal(hit.ttl_left, 200);
	assert_int_equal(hit.n_values, 3);
	/* cap: 86400 -> 1000 */
	hdl_value_t big[] = {val(1, "URL", "a", HDL_TTL_RELATIVE, 86400, HDL_PERM_DEFAULT)};
	assert_int_equal(put_vals(c, "88.1/cap", big, 1), HDL_EOK);
	assert_int_equal(get(c, "88.1/cap", DCACHE_GET_FRESH, &hit), HDL_EOK);
	assert_int_equal(hit.ttl_left, 1000);
	/* floor: 5 -> 30, and TTL 0 -> 30 */
	hdl_value_t small[] = {val(1, "URL", "a", HDL_TTL_RELATIVE, 5, HDL_PERM_DEFAULT),
	                       val(2, "URL", "b", HDL_TTL_RELATIVE, 0, HDL_PERM_DEFAULT)};
	assert_int_equal(put_vals(c, "88.1/floor", small, 2), HDL_EOK);
	assert_int_equal(get(c, "88.1/floor", DCACHE_GET_FRESH, &hit), HDL_EOK);
	assert_int_equal(hit.ttl_left, 30);
	T.ms += 30000;
	assert_int_equal(get(c, "88.1/floor", DCACHE_GET_FRESH, &hit), HDL_ENOENT);
	/* a non-public value's short TTL does not count: it is not stored */
	hdl_value_t mixed[] = {val(1, "URL", "a", HDL_TTL_RELATIVE, 400, HDL_PERM_DEFAULT),
	                       val(2, "HS_SECKEY", "s", HDL_TTL_RELATIVE, 40, HDL_PERM_ADMIN_READ)};
	assert_int_equal(put_vals(c, "88.1/mixed", mixed, 2), HDL_EOK);
	assert_int_equal(get(c, "88.1/mixed", DCACHE_GET_FRESH, &hit), HDL_EOK);
	assert_int_equal(hit.ttl_left, 400);
	dcache_free(c);
}

static void test_negative(void **state)
{
	(void)state;
	dcache_t *c = mk(1u << 20, 1, NULL);
	dcache_hit_t hit;
	uint8_t k[256];
	size_t kl = key_of("88.1/none", k, sizeof(k));
	assert_int_equal(dcache_put(c, k, kl, HDL_RC_HANDLE_NOT_FOUND, NULL, 0), HDL_EOK);
	assert_int_equal(get(c, "88.1/none", DCACHE_GET_FRESH, &hit), HDL_EOK);
	assert_int_equal(hit.rcode, HDL_RC_HANDLE_NOT_FOUND);
	assert_int_equal(hit.len, 0);
	assert_int_equal(hit.ttl_left, 60);
	T.ms += 60000;
	assert_int_equal(get(c, "88.1/none", DCACHE_GET_FRESH, &hit), HDL_ENOENT);

	kl = key_of("88.1/novals", k, sizeof(k));
	assert_int_equal(dcache_put(c, k, kl, HDL_RC_VALUES_NOT_FOUND, NULL, 0), HDL_EOK);
	assert_int_equal(get(c, "88.1/novals", DCACHE_GET_FRESH, &hit), HDL_EOK);
	assert_int_equal(hit.rcode, HDL_RC_VALUES_NOT_FOUND);

	/* only readable-less answers become VALUES_NOT_FOUND; a success without values stays one */
	hdl_value_t secret[] = {
	    val(1, "HS_SECKEY", "s", HDL_TTL_RELATIVE, 900, HDL_PERM_ADMIN_READ)};
	assert_int_equal(put_vals(c, "88.1/secret", secret, 1), HDL_EOK);
	assert_int_equal(get(c, "88.1/secret", DCACHE_GET_FRESH, &hit), HDL_EOK);
	assert_int_equal(hit.rcode, HDL_RC_VALUES_NOT_FOUND);
	assert_int_equal(hit.ttl_left, 60);
	assert_int_equal(hit.len, 0);
	assert_int_equal(put_vals(c, "88.1/empty", NULL, 0), HDL_EOK);
	assert_int_equal(get(c, "88.1/empty", DCACHE_GET_FRESH, &hit), HDL_EOK);
	assert_int_equal(hit.rcode, HDL_RC_SUCCESS);
	assert_int_equal(hit.ttl_left, 60);
	assert_int_equal(hit.len, 4); /* U32 count 0 */
	assert_int_equal(hit.n_values, 0);

	/* other codes are not cached; negative_ttl 0 turns negative caching off */
	assert_int_equal(dcache_put(c, k, kl, HDL_RC_SERVER_TOO_BUSY, NULL, 0), HDL_EINVAL);
	assert_int_equal(dcache_put(c, k, kl, HDL_RC_SERVER_NOT_RESP, NULL, 0), HDL_EINVAL);
	dcache_policy_t p = POLICY;
	p.negative_ttl = 0;
	dcache_set_policy(c, &p);
	kl = key_of("88.1/none2", k, sizeof(k));
	assert_int_equal(dcache_put(c, k, kl, HDL_RC_HANDLE_NOT_FOUND, NULL, 0), HDL_ELIMIT);
	dcache_free(c);
}

static void test_stale_window(void **state)
{
	(void)state;
	dcache_policy_t p = POLICY;
	p.stale_max = 100;
	dcache_t *c = mk(1u << 20, 1, &p);
	dcache_hit_t hit;
	hdl_value_t v[] = {val(1, "URL", "x", HDL_TTL_RELATIVE, 10, HDL_PERM_DEFAULT)};
	assert_int_equal(put_vals(c, "88.1/s", v, 1), HDL_EOK);
	T.ms += 10000 + 99999; /* the last millisecond of the stale window */
	assert_int_equal(get(c, "88.1/s", DCACHE_GET_STALE_OK, &hit), HDL_EOK);
	assert_int_equal(hit.flags, DCACHE_STALE);
	assert_int_equal(hit.ttl_left, 0);
	T.ms += 1;
	assert_int_equal(get(c, "88.1/s", DCACHE_GET_STALE_OK, &hit), HDL_ENOENT);
	assert_int_equal(hit.flags, 0);
	dcache_stats_t st = stats(c);
	assert_int_equal(st.expired, 1);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.stale_served, 1);
	/* stale_max 0: nothing is served past its TTL */
	p.stale_max = 0;
	dcache_set_policy(c, &p);
	assert_int_equal(put_vals(c, "88.1/s", v, 1), HDL_EOK);
	T.ms += 10000;
	assert_int_equal(get(c, "88.1/s", DCACHE_GET_STALE_OK, &hit), HDL_ENOENT);
	dcache_free(c);
}

static void test_prefetch_once(void **state)
{
	(void)state;
	dcache_t *c = mk(1u << 20, 1, NULL); /* prefetch_pct 10 */
	dcache_hit_t hit;
	hdl_value_t v[] = {val(1, "URL", "x", HDL_TTL_RELATIVE, 100, HDL_PERM_DEFAULT)};
	assert_int_equal(put_vals(c, "88.1/p", v, 1), HDL_EOK);
	T.ms += 89999; /* 10.001 s left: not yet */
	assert_int_equal(get(c, "88.1/p", DCACHE_GET_FRESH, &hit), HDL_EOK);
	assert_int_equal(hit.flags, 0);
	T.ms += 1; /* 10 s left: the signal, once */
	assert_int_equal(get(c, "88.1/p", DCACHE_GET_FRESH, &hit), HDL_EOK);
	assert_int_equal(hit.flags, DCACHE_PREFETCH);
	for (int i = 0; i < 5; i++) {
		T.ms += 1000;
		assert_int_equal(get(c, "88.1/p", DCACHE_GET_FRESH, &hit), HDL_EOK);
		assert_int_equal(hit.flags, 0);
	}
	assert_int_equal(stats(c).prefetches, 1);
	/* the refreshed entry signals again near its own end */
	assert_int_equal(put_vals(c, "88.1/p", v, 1), HDL_EOK);
	T.ms += 95000;
	assert_int_equal(get(c, "88.1/p", DCACHE_GET_FRESH, &hit), HDL_EOK);
	assert_int_equal(hit.flags, DCACHE_PREFETCH);
	assert_int_equal(stats(c).prefetches, 2);
	/* prefetch_pct 0: never */
	dcache_policy_t p = POLICY;
	p.prefetch_pct = 0;
	dcache_set_policy(c, &p);
	assert_int_equal(put_vals(c, "88.1/p", v, 1), HDL_EOK);
	T.ms += 99999;
	assert_int_equal(get(c, "88.1/p", DCACHE_GET_FRESH, &hit), HDL_EOK);
	assert_int_equal(hit.flags, 0);
	dcache_free(c);
}

/* ---- memory -----------------------------------------------------------------------------------
 */

static void test_eviction_by_bytes(void **state)
{
	(void)state;
	/* measure one entry's cost on a roomy cache, then make a cache for about 8 of them */
	dcache_t *c = mk(1u << 20, 1, NULL);
	char data[200], name[32];
	memset(data, 'd', sizeof(data) - 1);
	data[sizeof(data) - 1] = 0;
	hdl_value_t v[] = {val(1, "DESC", data, HDL_TTL_RELATIVE, 3600, HDL_PERM_DEFAULT)};
	size_t base = stats(c).bytes;
	assert_int_equal(put_vals(c, "88.1/k00", v, 1), HDL_EOK);
	size_t one = stats(c).bytes - base;
	assert_true(one > 200 && one < 600);
	dcache_free(c);

	size_t max = base + 8 * one + one / 2;
	c = mk(max, 1, NULL);
	dcache_hit_t hit;
	for (int i = 0; i < 8; i++) {
		snprintf(name, sizeof(name), "88.1/k%02d", i);
		assert_int_equal(put_vals(c, name, v, 1), HDL_EOK);
	}
	dcache_stats_t st = stats(c);
	assert_int_equal(st.entries, 8);
	assert_int_equal(st.evictions, 0);
	/* k00 used again: k01 is the least recently used and goes first */
	assert_int_equal(get(c, "88.1/k00", DCACHE_GET_FRESH, &hit), HDL_EOK);
	assert_int_equal(put_vals(c, "88.1/k08", v, 1), HDL_EOK);
	assert_int_equal(get(c, "88.1/k01", DCACHE_GET_FRESH, &hit), HDL_ENOENT);
	assert_int_equal(get(c, "88.1/k00", DCACHE_GET_FRESH, &hit), HDL_EOK);
	st = stats(c);
	assert_int_equal(st.evictions, 1);
	assert_true(st.bytes <= max);
	/* many more: the bound holds throughout and the table grows inside it */
	for (int i = 9; i < 200; i++) {
		snprintf(name, sizeof(name), "88.1/k%02d", i);
		assert_int_equal(put_vals(c, name, v, 1), HDL_EOK);
		assert_true(stats(c).bytes <= max);
	}
	st = stats(c);
	assert_true(st.entries >= 6 && st.entries <= 8);
	assert_int_equal(st.inserts, 200);
	assert_int_equal(st.evictions, 200 - st.entries);
	/* one entry over a quarter of the cache is refused */
	static char huge[4096];
	memset(huge, 'h', sizeof(huge) - 1);
	hdl_value_t hv[] = {val(1, "DESC", huge, HDL_TTL_RELATIVE, 3600, HDL_PERM_DEFAULT)};
	assert_int_equal(put_vals(c, "88.1/huge", hv, 1), HDL_ELIMIT);
	/* shrinking evicts at once */
	dcache_set_max_bytes(c, base + 2 * one);
	st = stats(c);
	assert_true(st.entries <= 2);
	assert_true(st.bytes <= base + 2 * one);
	/* 0 disables */
	dcache_set_max_bytes(c, 0);
	assert_int_equal(stats(c).entries, 0);
	assert_int_equal(put_vals(c, "88.1/k00", v, 1), HDL_ELIMIT);
	assert_int_equal(get(c, "88.1/k00", DCACHE_GET_FRESH, &hit), HDL_ENOENT);
	dcache_free(c);
}

static void test_shapes_per_handle(void **state)
{
	(void)state;
	dcache_t *c = mk(1u << 20, 1, NULL);
	uint8_t k[256], buf[1024];
	size_t vl;
	dcache_hit_t hit;
	hdl_value_t v[] = {val(1, "URL", "x", HDL_TTL_RELATIVE, 3600, HDL_PERM_DEFAULT)};
	const uint8_t *vals = enc(v, 1, &vl);
	hdl_slice_t h = hdl_slice_str("88.1/shapes");
	/* index=0 is used last of all but is touched before the others are stored */
	for (uint32_t i = 0; i < DCACHE_SHAPES_MAX; i++) {
		size_t kl = dcache_key(k, sizeof(k), h, &i, 1, NULL, 0, false);
		assert_int_equal(dcache_put(c, k, kl, HDL_RC_SUCCESS, vals, vl), HDL_EOK);
	}
	uint32_t zero = 0, one = 1, extra = 1000;
	size_t kl = dcache_key(k, sizeof(k), h, &zero, 1, NULL, 0, false);
	assert_int_equal(dcache_get(c, k, kl, 0, buf, sizeof(buf), &hit), HDL_EOK);
	kl = dcache_key(k, sizeof(k), h, &extra, 1, NULL, 0, false);
	assert_int_equal(dcache_put(c, k, kl, HDL_RC_SUCCESS, vals, vl), HDL_EOK);
	dcache_stats_t st = stats(c);
	assert_int_equal(st.entries, DCACHE_SHAPES_MAX);
	assert_int_equal(st.evictions, 1);
	/* the shape used longest ago (index=1) went, index=0 stayed */
	kl = dcache_key(k, sizeof(k), h, &one, 1, NULL, 0, false);
	assert_int_equal(dcache_get(c, k, kl, 0, buf, sizeof(buf), &hit), HDL_ENOENT);
	kl = dcache_key(k, sizeof(k), h, &zero, 1, NULL, 0, false);
	assert_int_equal(dcache_get(c, k, kl, 0, buf, sizeof(buf), &hit), HDL_EOK);
	/* another handle is not limited by this one */
	assert_int_equal(put_vals(c, "88.1/other", v, 1), HDL_EOK);
	assert_int_equal(stats(c).entries, DCACHE_SHAPES_MAX + 1);
	dcache_free(c);
}

static void test_invalidate_flush(void **state)
{
	(void)state;
	dcache_t *c = mk(1u << 20, 4, NULL);
	uint8_t k[256];
	size_t vl;
	dcache_hit_t hit;
	hdl_value_t v[] = {val(1, "URL", "x", HDL_TTL_RELATIVE, 3600, HDL_PERM_DEFAULT)};
	const uint8_t *vals = enc(v, 1, &vl);
	hdl_slice_t a = hdl_slice_str("88.1/A"), b = hdl_slice_str("88.1/AB");
	hdl_slice_t url = hdl_slice_str("URL");
	uint32_t two = 2;
	size_t kl;
	kl = dcache_key(k, sizeof(k), a, NULL, 0, NULL, 0, true);
	assert_int_equal(dcache_put(c, k, kl, HDL_RC_SUCCESS, vals, vl), HDL_EOK);
	kl = dcache_key(k, sizeof(k), a, NULL, 0, NULL, 0, false);
	assert_int_equal(dcache_put(c, k, kl, HDL_RC_SUCCESS, vals, vl), HDL_EOK);
	kl = dcache_key(k, sizeof(k), a, &two, 1, &url, 1, false);
	assert_int_equal(dcache_put(c, k, kl, HDL_RC_SUCCESS, vals, vl), HDL_EOK);
	kl = dcache_key(k, sizeof(k), b, NULL, 0, NULL, 0, true);
	assert_int_equal(dcache_put(c, k, kl, HDL_RC_SUCCESS, vals, vl), HDL_EOK);
	assert_int_equal(stats(c).entries, 4);

	/* every shape of 88.1/A goes; 88.1/AB (same start) stays */
	assert_int_equal(dcache_invalidate(c, a), 3);
	assert_int_equal(dcache_invalidate(c, a), 0);
	assert_int_equal(dcache_invalidate(c, hdl_slice_str("")), 0);
	dcache_stats_t st = stats(c);
	assert_int_equal(st.entries, 1);
	assert_int_equal(st.invalidations, 3);
	assert_int_equal(get(c, "88.1/A", DCACHE_GET_STALE_OK, &hit), HDL_ENOENT);
	assert_int_equal(get(c, "88.1/AB", DCACHE_GET_FRESH, &hit), HDL_EOK);

	for (int i = 0; i < 50; i++) {
		char name[32];
		snprintf(name, sizeof(name), "88.1/f%d", i);
		assert_int_equal(put_vals(c, name, v, 1), HDL_EOK);
	}
	size_t empty_bytes = stats(c).bytes;
	dcache_flush(c);
	st = stats(c);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.flushes, 1);
	assert_true(st.bytes < empty_bytes);
	assert_int_equal(get(c, "88.1/AB", DCACHE_GET_STALE_OK, &hit), HDL_ENOENT);
	assert_int_equal(get(c, "88.1/f7", DCACHE_GET_FRESH, &hit), HDL_ENOENT);
	/* usable after a flush */
	assert_int_equal(put_vals(c, "88.1/f7", v, 1), HDL_EOK);
	assert_int_equal(get(c, "88.1/f7", DCACHE_GET_FRESH, &hit), HDL_EOK);
	dcache_free(c);
}

/* ---- contents ---------------------------------------------------------------------------------
 */

static void test_public_read_filtered(void **state)
{
	(void)state;
	dcache_t *c = mk(1u << 20, 1, NULL);
	static uint8_t buf[65536];
	uint8_t k[256];
	dcache_hit_t hit;
	hdl_value_t v[] = {
	    val(1, "URL", "http://a/", HDL_TTL_RELATIVE, 3600, HDL_PERM_DEFAULT),
	    val(100, "HS_ADMIN", "adm", HDL_TTL_RELATIVE, 3600,
	        HDL_PERM_ADMIN_READ | HDL_PERM_ADMIN_WRITE),
	    val(2, "EMAIL", "e@x", HDL_TTL_RELATIVE, 3600, HDL_PERM_PUBLIC_READ),
	    val(300, "HS_SECKEY", "pw", HDL_TTL_RELATIVE, 3600, HDL_PERM_ADMIN_READ),
	};
	assert_int_equal(put_vals(c, "88.1/mix", v, 4), HDL_EOK);
	size_t kl = key_of("88.1/mix", k, sizeof(k));
	assert_int_equal(dcache_get(c, k, kl, 0, buf, sizeof(buf), &hit), HDL_EOK);
	assert_int_equal(hit.n_values, 2);
	/* what comes back is exactly the two public values, encoded as a values part */
	hdl_value_t pub[] = {v[0], v[2]};
	size_t want_len;
	const uint8_t *want = enc(pub, 2, &want_len);
	assert_int_equal(hit.len, want_len);
	assert_memory_equal(buf, want, want_len);
	uint8_t abuf[4096];
	hdl_arena_t a;
	hdl_arena_init(&a, abuf, sizeof(abuf), 0);
	hdl_value_t *out;
	uint32_t n;
	assert_int_equal(hdl_values_decode(buf, hit.len, &a, &out, &n), HDL_EOK);
	assert_int_equal(n, 2);
	for (uint32_t i = 0; i < n; i++)
		assert_true(out[i].perms & HDL_PERM_PUBLIC_READ);
	hdl_arena_free(&a);
	/* a buffer too small: HDL_ESPACE with the size needed, nothing counted */
	dcache_stats_t before = stats(c);
	assert_int_equal(dcache_get(c, k, kl, 0, buf, want_len - 1, &hit), HDL_ESPACE);
	assert_int_equal(hit.len, want_len);
	assert_int_equal(stats(c).hits, before.hits);
	dcache_free(c);
}

static void test_malformed(void **state)
{
	(void)state;
	dcache_t *c = mk(1u << 20, 1, NULL);
	uint8_t k[256], vals[1024];
	size_t kl = key_of("88.1/m", k, sizeof(k)), vl;
	hdl_value_t v[] = {val(1, "URL", "x", HDL_TTL_RELATIVE, 3600, HDL_PERM_DEFAULT)};
	const uint8_t *e = enc(v, 1, &vl);
	memcpy(vals, e, vl);
	/* truncations at every length, a trailing byte, a count over the limit, a short count */
	for (size_t i = 0; i < vl; i++)
		assert_int_equal(dcache_put(c, k, kl, HDL_RC_SUCCESS, vals, i), HDL_EMALF);
	vals[vl] = 0;
	assert_int_equal(dcache_put(c, k, kl, HDL_RC_SUCCESS, vals, vl + 1), HDL_EMALF);
	uint8_t many[4] = {0, 0, 0x08, 0x01}; /* 2049 */
	assert_int_equal(dcache_put(c, k, kl, HDL_RC_SUCCESS, many, 4), HDL_EMALF);
	uint8_t two[1024];
	memcpy(two, vals, vl);
	two[3] = 2;
	assert_int_equal(dcache_put(c, k, kl, HDL_RC_SUCCESS, two, vl), HDL_EMALF);
	/* a key that is not a dcache_key() key */
	assert_int_equal(dcache_put(c, k, kl - 1, HDL_RC_SUCCESS, vals, vl), HDL_EINVAL);
	assert_int_equal(dcache_put(c, (const uint8_t *)"\0", 1, HDL_RC_SUCCESS, vals, vl),
	                 HDL_EINVAL);
	dcache_stats_t st = stats(c);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.inserts, 0);
	assert_int_equal(dcache_put(c, k, kl, HDL_RC_SUCCESS, vals, vl), HDL_EOK);
	dcache_free(c);
}

typedef struct dump {
	int n;
	char lines[16][256];
} dump_t;

static int dump_cb(void *ctx, const dcache_info_t *in)
{
	dump_t *d = ctx;
	char key[128];
	assert_true(dcache_key_describe(in->key, in->klen, key, sizeof(key)) > 0);
	if (d->n < 16)
		snprintf(d->lines[d->n], sizeof(d->lines[0]), "%s rc=%u n=%u ttl=%lld%s", key,
		         in->rcode, in->n_values, (long long)(in->ttl_left_ms / 1000),
		         in->prefetched ? " prefetched" : "");
	d->n++;
	return 0;
}

static int stop_cb(void *ctx, const dcache_info_t *in)
{
	(void)in;
	return ++*(int *)ctx >= 2;
}

static void test_foreach(void **state)
{
	(void)state;
	dcache_t *c = mk(1u << 20, 8, NULL);
	uint8_t k[256];
	hdl_value_t v[] = {val(1, "URL", "x", HDL_TTL_RELATIVE, 100, HDL_PERM_DEFAULT)};
	assert_int_equal(put_vals(c, "88.100.1/A", v, 1), HDL_EOK);
	assert_int_equal(put_vals(c, "88.100.1/B", v, 1), HDL_EOK);
	assert_int_equal(put_vals(c, "88.100.10/C", v, 1), HDL_EOK);
	size_t kl = key_of("88.200/gone", k, sizeof(k));
	assert_int_equal(dcache_put(c, k, kl, HDL_RC_HANDLE_NOT_FOUND, NULL, 0), HDL_EOK);

	dump_t d = {0};
	assert_int_equal(dcache_foreach(c, hdl_slice_str(""), 100, dump_cb, &d), 4);
	assert_int_equal(d.n, 4);
	memset(&d, 0, sizeof(d));
	/* "88.100.1" is a naming authority: not 88.100.10/...; case-insensitive */
	assert_int_equal(dcache_foreach(c, hdl_slice_str("88.100.1"), 100, dump_cb, &d), 2);
	for (int i = 0; i < 2; i++)
		assert_true(strcmp(d.lines[i], "88.100.1/A po rc=1 n=1 ttl=100") == 0 ||
		            strcmp(d.lines[i], "88.100.1/B po rc=1 n=1 ttl=100") == 0);
	memset(&d, 0, sizeof(d));
	assert_int_equal(dcache_foreach(c, hdl_slice_str("88.200/GONE"), 100, dump_cb, &d), 1);
	assert_string_equal(d.lines[0], "88.200/gone po rc=100 n=0 ttl=60");
	/* max and an early stop */
	memset(&d, 0, sizeof(d));
	assert_int_equal(dcache_foreach(c, hdl_slice_str(""), 3, dump_cb, &d), 3);
	int seen = 0;
	assert_int_equal(dcache_foreach(c, hdl_slice_str(""), 100, stop_cb, &seen), 2);
	/* stale entries show a negative TTL */
	T.ms += 150000;
	memset(&d, 0, sizeof(d));
	assert_int_equal(dcache_foreach(c, hdl_slice_str("88.100.10"), 100, dump_cb, &d), 1);
	assert_string_equal(d.lines[0], "88.100.10/C po rc=1 n=1 ttl=-50");
	dcache_free(c);
}

/* ---- threads ----------------------------------------------------------------------------------
 */

typedef struct worker_arg {
	dcache_t *c;
	unsigned seed;
	uint64_t gets, puts;
} worker_arg_t;

#define MT_KEYS 512
#define MT_OPS  20000

static void *mt_worker(void *p)
{
	worker_arg_t *w = p;
	static _Thread_local uint8_t buf[8192];
	uint8_t k[128];
	char name[48], data[64];
	for (int i = 0; i < MT_OPS; i++) {
		unsigned r = (unsigned)rand_r(&w->seed);
		snprintf(name, sizeof(name), "88.%u/k%u", r % 3, (r >> 4) % MT_KEYS);
		uint32_t idx = (r >> 16) & 1;
		size_t kl = dcache_key(k, sizeof(k), hdl_slice_str(name), &idx, idx, NULL, 0, true);
		if (kl == 0)
			abort();
		switch ((r >> 20) % 16) {
		case 0:
		case 1:
		case 2:
		case 3: {
			/* the data names the handle: a hit must give back this handle's answer */
			snprintf(data, sizeof(data), "v:%s", name);
			hdl_value_t v = val(1, "URL", data, HDL_TTL_RELATIVE, 1 + (r >> 24) % 5,
			                    HDL_PERM_DEFAULT);
			size_t vl = 0;
			uint8_t vals[256];
			if (hdl_values_encode(&v, 1, vals, sizeof(vals), &vl) != HDL_EOK)
				abort();
			int ret = dcache_put(w->c, k, kl, HDL_RC_SUCCESS, vals, vl);
			if (ret != HDL_EOK && ret != HDL_ELIMIT)
				abort();
			w->puts++;
			break;
		}
		case 4: dcache_invalidate(w->c, hdl_slice_str(name)); break;
		case 5:
			if ((r >> 26) == 0)
				dcache_flush(w->c);
			break;
		default: {
			dcache_hit_t hit;
			int ret = dcache_get(w->c, k, kl, (r >> 25) & 1, buf, sizeof(buf), &hit);
			w->gets++;
			if (ret == HDL_EOK) {
				/* U32 count + value: data starts at offset 4 + 14 + 4 + 3 (URL) + 4
				 */
				size_t off = 4 + 14 + 4 + 3 + 4;
				size_t dl = strlen(name) + 2;
				if (hit.len < off + dl || memcmp(buf + off, "v:", 2) != 0 ||
				    memcmp(buf + off + 2, name, strlen(name)) != 0)
					abort();
			} else if (ret != HDL_ENOENT) {
				abort();
			}
		}
		}
	}
	return NULL;
}

static void test_threads(void **state)
{
	(void)state;
	/* the real clock: entries expire within seconds while the threads run */
	dcache_opts_t o = {.max_bytes = 64u << 10, .shards = 4, .policy = POLICY};
	dcache_t *c = NULL;
	assert_int_equal(dcache_new(&o, &c), HDL_EOK);
	enum { NT = 4 };
	pthread_t th[NT];
	worker_arg_t wa[NT];
	for (int i = 0; i < NT; i++) {
		wa[i] = (worker_arg_t){.c = c, .seed = 1234u + (unsigned)i};
		assert_int_equal(pthread_create(&th[i], NULL, mt_worker, &wa[i]), 0);
	}
	uint64_t gets = 0;
	for (int i = 0; i < NT; i++) {
		pthread_join(th[i], NULL);
		gets += wa[i].gets;
	}
	dcache_stats_t st = stats(c);
	assert_int_equal(st.hits + st.misses + st.stale_served, gets);
	assert_true(st.bytes <= st.max_bytes);
	assert_true(st.inserts > 0 && st.hits > 0);
	/* entries == inserts minus everything that removed one; flushes dropped the rest */
	assert_true(st.entries <= st.inserts - st.evictions - st.expired - st.invalidations);
	dcache_free(c);
}

static void test_new_refusals(void **state)
{
	(void)state;
	dcache_t *c = NULL;
	dcache_opts_t o = {.max_bytes = 1u << 20, .shards = 3};
	assert_int_equal(dcache_new(&o, &c), HDL_EINVAL);
	o.shards = DCACHE_SHARDS_MAX * 2;
	assert_int_equal(dcache_new(&o, &c), HDL_EINVAL);
	assert_null(c);
	/* automatic shard count: one per 256 KiB up to 64 */
	o.shards = 0;
	o.max_bytes = 64u << 20;
	assert_int_equal(dcache_new(&o, &c), HDL_EOK);
	assert_int_equal(stats(c).shards, 64);
	dcache_free(c);
	o.max_bytes = 300u << 10;
	assert_int_equal(dcache_new(&o, &c), HDL_EOK);
	assert_int_equal(stats(c).shards, 1);
	dcache_free(c);
	dcache_free(NULL);
}

/* SipHash-1-3 under the zero key; the values are CPython 3.11's hash() of these bytes with
 * PYTHONHASHSEED=0 (its bytes hash is SipHash-1-3 of a zero key). */
static void test_siphash_vectors(void **state)
{
	(void)state;
	static const uint64_t zero[2] = {0, 0};
	static const struct {
		const char *in;
		uint64_t out;
	} v[] = {
	    {"a", 4644417185603328019ull},
	    {"abcdefgh", 4574395652268504554ull},
	    {"88.100.1/PUMP-2024-000123", 16305190387108691732ull},
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		assert_true(rhash_sip13((const uint8_t *)v[i].in, strlen(v[i].in), zero) ==
		            v[i].out);
	uint64_t k1[2], k2[2];
	rhash_new_key(k1);
	rhash_new_key(k2);
	assert_true(rhash_sip13((const uint8_t *)"a", 1, k1) !=
	            rhash_sip13((const uint8_t *)"a", 1, k2));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_siphash_vectors),
	    cmocka_unit_test(test_key_canonical),
	    cmocka_unit_test(test_ttl_relative),
	    cmocka_unit_test(test_ttl_absolute),
	    cmocka_unit_test(test_ttl_min_wins_cap_floor),
	    cmocka_unit_test(test_negative),
	    cmocka_unit_test(test_stale_window),
	    cmocka_unit_test(test_prefetch_once),
	    cmocka_unit_test(test_eviction_by_bytes),
	    cmocka_unit_test(test_shapes_per_handle),
	    cmocka_unit_test(test_invalidate_flush),
	    cmocka_unit_test(test_public_read_filtered),
	    cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_foreach),
	    cmocka_unit_test(test_threads),
	    cmocka_unit_test(test_new_refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
