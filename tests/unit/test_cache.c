/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief The response cache (node/server/cache.c): hits and misses, replacement, the byte limit
 *        with least-recently-used eviction, shrinking, generations, refusals, table growth.
 *        The cache inside dispatch_message() (filters bypass, invalidation on a store write) is
 *        tested in test_dispatch.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "hdl/error.h"
#include "node/server/cache.h"

static int put_str(rcache_t *c, const char *k, const char *v)
{
	return rcache_put(c, k, strlen(k), v, strlen(v));
}

/* The value under \p k as a string in \p buf, NULL on a miss. */
static const char *get_str(rcache_t *c, const char *k, char *buf, size_t cap)
{
	hdl_slice_t v;
	if (!rcache_get(c, k, strlen(k), &v))
		return NULL;
	assert_true(v.len < cap);
	memcpy(buf, v.p, v.len);
	buf[v.len] = 0;
	return buf;
}

static size_t cost(const char *k, const char *v)
{
	return rcache_entry_overhead() + strlen(k) + strlen(v);
}

static void test_hit_miss(void **state)
{
	(void)state;
	char buf[256];
	rcache_stats_t st;
	rcache_t *c = rcache_new(1u << 20);
	assert_non_null(c);
	assert_null(get_str(c, "a", buf, sizeof(buf)));
	assert_int_equal(put_str(c, "a", "alpha"), HDL_EOK);
	assert_int_equal(put_str(c, "b", "beta"), HDL_EOK);
	assert_string_equal(get_str(c, "a", buf, sizeof(buf)), "alpha");
	assert_string_equal(get_str(c, "b", buf, sizeof(buf)), "beta");
	assert_null(get_str(c, "c", buf, sizeof(buf)));
	/* keys are bytes: a prefix or an extension of a key is another key */
	assert_null(get_str(c, "aa", buf, sizeof(buf)));
	assert_null(rcache_get(c, "a", 0, &(hdl_slice_t){0}) ? "hit" : NULL);
	/* binary keys with NUL bytes */
	static const uint8_t k1[] = {0, 'x', 0}, k2[] = {1, 'x', 0};
	assert_int_equal(rcache_put(c, k1, sizeof(k1), "one", 3), HDL_EOK);
	assert_int_equal(rcache_put(c, k2, sizeof(k2), "two", 3), HDL_EOK);
	hdl_slice_t v;
	assert_true(rcache_get(c, k2, sizeof(k2), &v));
	assert_int_equal(v.len, 3);
	assert_memory_equal(v.p, "two", 3);
	/* an empty value is a value */
	assert_int_equal(put_str(c, "empty", ""), HDL_EOK);
	assert_string_equal(get_str(c, "empty", buf, sizeof(buf)), "");

	rcache_get_stats(c, &st);
	assert_int_equal(st.hits, 4);
	assert_int_equal(st.misses, 4);
	assert_int_equal(st.inserts, 5);
	assert_int_equal(st.entries, 5);
	assert_int_equal(st.evictions, 0);
	assert_int_equal(st.max_bytes, 1u << 20);
	assert_int_equal(st.bytes, cost("a", "alpha") + cost("b", "beta") + 2 * (cost("", "one") + 3) +
	                               cost("empty", ""));
	rcache_free(c);
	rcache_free(NULL);
}

static void test_replace(void **state)
{
	(void)state;
	char buf[256];
	rcache_stats_t st;
	rcache_t *c = rcache_new(1u << 20);
	assert_non_null(c);
	assert_int_equal(put_str(c, "k", "old value"), HDL_EOK);
	assert_int_equal(put_str(c, "k", "new"), HDL_EOK);
	assert_string_equal(get_str(c, "k", buf, sizeof(buf)), "new");
	rcache_get_stats(c, &st);
	assert_int_equal(st.entries, 1);
	assert_int_equal(st.bytes, cost("k", "new"));
	rcache_free(c);
}

static void test_eviction_lru(void **state)
{
	(void)state;
	char buf[256], key[16];
	rcache_stats_t st;
	const char *val = "0123456789012345678901234567890123456789"; /* 40 bytes */
	size_t one = cost("k000", val);
	rcache_t *c = rcache_new(8 * one); /* room for exactly 8 */
	assert_non_null(c);
	for (int i = 0; i < 8; i++) {
		snprintf(key, sizeof(key), "k%03d", i);
		assert_int_equal(put_str(c, key, val), HDL_EOK);
	}
	rcache_get_stats(c, &st);
	assert_int_equal(st.entries, 8);
	assert_int_equal(st.bytes, 8 * one);
	assert_int_equal(st.evictions, 0);

	/* k00 used again: k01 is now the least recently used and goes first */
	assert_non_null(get_str(c, "k000", buf, sizeof(buf)));
	assert_int_equal(put_str(c, "k008", val), HDL_EOK);
	assert_null(get_str(c, "k001", buf, sizeof(buf)));
	assert_non_null(get_str(c, "k000", buf, sizeof(buf)));
	assert_non_null(get_str(c, "k008", buf, sizeof(buf)));
	rcache_get_stats(c, &st);
	assert_int_equal(st.entries, 8);
	assert_int_equal(st.evictions, 1);
	assert_true(st.bytes <= st.max_bytes);

	/* a stream of new keys never exceeds the limit */
	for (int i = 9; i < 200; i++) {
		snprintf(key, sizeof(key), "k%03d", i);
		assert_int_equal(put_str(c, key, val), HDL_EOK);
		rcache_get_stats(c, &st);
		assert_true(st.bytes <= 8 * one);
		assert_int_equal(st.entries, 8);
	}
	/* the last 8 are there, the earlier ones are not */
	for (int i = 192; i < 200; i++) {
		snprintf(key, sizeof(key), "k%03d", i);
		assert_non_null(get_str(c, key, buf, sizeof(buf)));
	}
	assert_null(get_str(c, "k191", buf, sizeof(buf)));
	assert_null(get_str(c, "k000", buf, sizeof(buf)));

	/* an entry of a different size makes room for itself by evicting several */
	char big[101];
	memset(big, 'b', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	assert_int_equal(put_str(c, "big", big), HDL_EOK);
	rcache_get_stats(c, &st);
	assert_true(st.bytes <= 8 * one);
	assert_string_equal(get_str(c, "big", buf, sizeof(buf)), big);
	rcache_free(c);
}

static void test_shrink(void **state)
{
	(void)state;
	char buf[64], key[16];
	rcache_stats_t st;
	size_t one = cost("k00", "v");
	rcache_t *c = rcache_new(100 * one);
	assert_non_null(c);
	for (int i = 0; i < 10; i++) {
		snprintf(key, sizeof(key), "k%02d", i);
		assert_int_equal(put_str(c, key, "v"), HDL_EOK);
	}
	rcache_set_max(c, 4 * one);
	rcache_get_stats(c, &st);
	assert_int_equal(st.entries, 4);
	assert_int_equal(st.evictions, 6);
	assert_non_null(get_str(c, "k09", buf, sizeof(buf)));
	assert_non_null(get_str(c, "k06", buf, sizeof(buf)));
	assert_null(get_str(c, "k05", buf, sizeof(buf)));
	/* 0 disables: everything goes, puts are refused, gets miss */
	rcache_set_max(c, 0);
	rcache_get_stats(c, &st);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.bytes, 0);
	assert_int_equal(put_str(c, "k", "v"), HDL_ELIMIT);
	assert_null(get_str(c, "k", buf, sizeof(buf)));
	/* and on again */
	rcache_set_max(c, 4 * one);
	assert_int_equal(put_str(c, "k", "v"), HDL_EOK);
	assert_string_equal(get_str(c, "k", buf, sizeof(buf)), "v");
	rcache_free(c);
}

static void test_generation(void **state)
{
	(void)state;
	char buf[64];
	rcache_stats_t st;
	rcache_t *c = rcache_new(1u << 16);
	assert_non_null(c);
	rcache_sync(c, 41);
	assert_int_equal(put_str(c, "h", "v41"), HDL_EOK);
	rcache_sync(c, 41); /* same snapshot generation: kept */
	assert_string_equal(get_str(c, "h", buf, sizeof(buf)), "v41");
	rcache_sync(c, 42); /* the data changed: all dropped */
	assert_null(get_str(c, "h", buf, sizeof(buf)));
	rcache_get_stats(c, &st);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.bytes, 0);
	assert_int_equal(st.flushes, 1);
	assert_int_equal(put_str(c, "h", "v42"), HDL_EOK);
	assert_string_equal(get_str(c, "h", buf, sizeof(buf)), "v42");
	/* an older id (another snapshot) is a change too */
	rcache_sync(c, 41);
	assert_null(get_str(c, "h", buf, sizeof(buf)));
	/* clear */
	assert_int_equal(put_str(c, "x", "y"), HDL_EOK);
	rcache_clear(c);
	assert_null(get_str(c, "x", buf, sizeof(buf)));
	rcache_get_stats(c, &st);
	assert_int_equal(st.flushes, 3);
	rcache_free(c);
}

static void test_refused(void **state)
{
	(void)state;
	static uint8_t big[4096];
	rcache_t *c = rcache_new(4 * 1024);
	assert_non_null(c);
	/* over a quarter of the limit: refused, nothing evicted */
	assert_int_equal(put_str(c, "small", "v"), HDL_EOK);
	assert_int_equal(rcache_put(c, "big", 3, big, 1024), HDL_ELIMIT);
	hdl_slice_t v;
	assert_true(rcache_get(c, "small", 5, &v));
	assert_false(rcache_get(c, "big", 3, &v));
	assert_null(v.p);
	assert_int_equal(v.len, 0);
	rcache_free(c);

	c = rcache_new(0);
	assert_non_null(c);
	assert_int_equal(put_str(c, "a", "b"), HDL_ELIMIT);
	assert_false(rcache_get(c, "a", 1, &v));
	rcache_free(c);
}

static void test_many(void **state)
{
	(void)state;
	char key[32], val[32], buf[64];
	rcache_stats_t st;
	rcache_t *c = rcache_new(64u << 20);
	assert_non_null(c);
	/* well past the first bucket array: the table grows and every entry stays reachable */
	for (int i = 0; i < 20000; i++) {
		snprintf(key, sizeof(key), "88.100.1/K-%06d", i);
		snprintf(val, sizeof(val), "value %d", i);
		assert_int_equal(put_str(c, key, val), HDL_EOK);
	}
	for (int i = 0; i < 20000; i += 7) {
		snprintf(key, sizeof(key), "88.100.1/K-%06d", i);
		snprintf(val, sizeof(val), "value %d", i);
		assert_string_equal(get_str(c, key, buf, sizeof(buf)), val);
	}
	rcache_get_stats(c, &st);
	assert_int_equal(st.entries, 20000);
	assert_int_equal(st.evictions, 0);
	rcache_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hit_miss),      cmocka_unit_test(test_replace),
		cmocka_unit_test(test_eviction_lru),  cmocka_unit_test(test_shrink),
		cmocka_unit_test(test_generation),    cmocka_unit_test(test_refused),
		cmocka_unit_test(test_many),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
