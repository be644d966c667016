/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief The response cache following the store (rcache_follow_txlog() against a real LMDB
 *        store with its txlog): a write to one handle drops only that handle's entries (both
 *        shapes, any spelling), deletes too; too many changes, homing, a metadata-only write
 *        and the first call drop everything; the serial stays right across those. And the
 *        admission rule (rcache_set_admission()): one-time keys stop displacing warm entries,
 *        a key asked for often gets in, the sketch is charged to the byte limit.
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
#include "node/common/log.h"
#include "node/server/cache.h"
#include "node/store/store.h"

static char dir[64];
static store_t *S;
static store_reader_t *R;

#define NH 10

static void write_handle(store_batch_t *b, const char *h)
{
	static const uint8_t none[4] = {0, 0, 0, 0};
	assert_int_equal(store_batch_put(b, hdl_slice_str(h), (hdl_slice_t){none, 4}, true),
	                 HDL_EOK);
}

static int setup(void **state)
{
	log_set_level(LOG_LVL_ERR);
	strcpy(dir, "/tmp/idnode-test-follow-XXXXXX");
	assert_non_null(mkdtemp(dir));
	store_opts_t so = {.path = dir, .map_size = 16u << 20, .txlog = true};
	assert_int_equal(store_open(&so, &S), HDL_EOK);
	assert_int_equal(store_reader_new(S, &R), HDL_EOK);
	store_batch_t *b;
	assert_int_equal(store_batch_begin(S, &b), HDL_EOK);
	assert_int_equal(store_batch_home(b, hdl_slice_str("88.100.1"), true), HDL_EOK);
	char h[32];
	for (int i = 0; i < NH; i++) {
		snprintf(h, sizeof(h), "88.100.1/h%d", i);
		write_handle(b, h);
	}
	assert_int_equal(store_batch_commit(b), HDL_EOK);
	return 0;
}

static int teardown(void **state)
{
	store_reader_free(R);
	store_close(S);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

/* Key as the dispatcher makes it: shape byte + store_key(). */
static size_t key_of(const char *h, bool po, uint8_t *k)
{
	size_t n = store_key(S, hdl_slice_str(h), k + 1, HDL_MAX_HANDLE_LEN + 8);
	assert_true(n > 0);
	k[0] = po ? RCACHE_KEY_PO : 0;
	return n + 1;
}

static void fill(rcache_t *c)
{
	uint8_t k[HDL_MAX_HANDLE_LEN + 16];
	char h[32];
	for (int i = 0; i < NH; i++) {
		snprintf(h, sizeof(h), "88.100.1/h%d", i);
		for (int po = 0; po < 2; po++)
			assert_int_equal(rcache_put(c, k, key_of(h, po, k), "vals", 4), HDL_EOK);
	}
}

static bool cached(rcache_t *c, const char *h, bool po)
{
	uint8_t k[HDL_MAX_HANDLE_LEN + 16];
	hdl_slice_t v;
	return rcache_get(c, k, key_of(h, po, k), &v);
}

/* One request's view: a fresh snapshot, then the cache brought up to date. */
static void follow(rcache_t *c, uint32_t max)
{
	assert_int_equal(store_reader_begin(R), HDL_EOK);
	rcache_follow_txlog(c, S, R, max);
	store_reader_end(R);
}

static void commit_puts(const char *const *names, int n)
{
	store_batch_t *b;
	assert_int_equal(store_batch_begin(S, &b), HDL_EOK);
	for (int i = 0; i < n; i++)
		write_handle(b, names[i]);
	assert_int_equal(store_batch_commit(b), HDL_EOK);
}

static rcache_stats_t stats(rcache_t *c)
{
	rcache_stats_t st;
	rcache_get_stats(c, &st);
	return st;
}

static void test_write_drops_only_its_handle(void **state)
{
	(void)state;
	rcache_t *c = rcache_new(1u << 20);
	assert_non_null(c);
	follow(c, RCACHE_TXLOG_MAX); /* the first call learns the serial */
	fill(c);
	assert_int_equal(stats(c).entries, 2 * NH);

	/* one write, spelled in another case: both shapes of that handle go, the rest stay */
	static const char *const one[] = {"88.100.1/H3"};
	commit_puts(one, 1);
	rcache_stats_t before = stats(c);
	follow(c, RCACHE_TXLOG_MAX);
	rcache_stats_t after = stats(c);
	assert_int_equal(after.entries, 2 * NH - 2);
	assert_int_equal(after.invalidations, before.invalidations + 2);
	assert_int_equal(after.flushes, before.flushes);
	assert_int_equal(after.txlog_records, before.txlog_records + 1);
	assert_false(cached(c, "88.100.1/h3", false));
	assert_false(cached(c, "88.100.1/h3", true));
	for (int i = 0; i < NH; i++) {
		char h[32];
		snprintf(h, sizeof(h), "88.100.1/h%d", i);
		if (i != 3)
			assert_true(cached(c, h, i & 1));
	}
	assert_int_equal(stats(c).hits, after.hits + NH - 1);
	/* the same snapshot again: nothing to do */
	follow(c, RCACHE_TXLOG_MAX);
	assert_int_equal(stats(c).txlog_records, after.txlog_records);

	/* a delete, and a write to a handle that was not cached */
	store_batch_t *b;
	assert_int_equal(store_batch_begin(S, &b), HDL_EOK);
	assert_int_equal(store_batch_del(b, hdl_slice_str("88.100.1/h4")), HDL_EOK);
	write_handle(b, "88.100.1/new");
	assert_int_equal(store_batch_commit(b), HDL_EOK);
	follow(c, RCACHE_TXLOG_MAX);
	assert_false(cached(c, "88.100.1/h4", false));
	assert_true(cached(c, "88.100.1/h5", true));
	assert_int_equal(stats(c).entries, 2 * NH - 4);
	assert_int_equal(stats(c).flushes, after.flushes);
	rcache_free(c);
}

static void test_drop_everything(void **state)
{
	(void)state;
	rcache_t *c = rcache_new(1u << 20);
	assert_non_null(c);
	/* entries stored before the first call cannot be checked: dropped */
	fill(c);
	follow(c, 4);
	assert_int_equal(stats(c).entries, 0);

	/* more changes than the bound: everything goes, the serial jumps past them */
	fill(c);
	static const char *const five[] = {"88.100.1/x1", "88.100.1/x2", "88.100.1/x3",
	                                   "88.100.1/x4", "88.100.1/x5"};
	commit_puts(five, 5);
	uint64_t fl = stats(c).flushes;
	follow(c, 4);
	assert_int_equal(stats(c).entries, 0);
	assert_int_equal(stats(c).flushes, fl + 1);
	/* ... and the next write is followed one by one again (so the serial was right) */
	fill(c);
	static const char *const h1[] = {"88.100.1/h1"};
	commit_puts(h1, 1);
	follow(c, 4);
	assert_int_equal(stats(c).entries, 2 * NH - 2);
	assert_int_equal(stats(c).flushes, fl + 1);

	/* homing a prefix changes who answers what: everything goes */
	store_batch_t *b;
	assert_int_equal(store_batch_begin(S, &b), HDL_EOK);
	assert_int_equal(store_batch_home(b, hdl_slice_str("88.100.9"), true), HDL_EOK);
	assert_int_equal(store_batch_commit(b), HDL_EOK);
	follow(c, 4);
	assert_int_equal(stats(c).entries, 0);

	/* a write without a txlog record (metadata): the txn id moved, nothing says why */
	fill(c);
	assert_int_equal(store_batch_begin(S, &b), HDL_EOK);
	assert_int_equal(store_batch_meta_put(b, "note", hdl_slice_str("x")), HDL_EOK);
	assert_int_equal(store_batch_commit(b), HDL_EOK);
	follow(c, 4);
	assert_int_equal(stats(c).entries, 0);
	/* and following continues after it */
	fill(c);
	static const char *const h2[] = {"88.100.1/h2"};
	commit_puts(h2, 1);
	follow(c, 4);
	assert_int_equal(stats(c).entries, 2 * NH - 2);
	rcache_free(c);
}

/* ---- admission --------------------------------------------------------------------------------
 */

#define VAL_LEN 500 /* about an answer's values part */

static int put_key(rcache_t *c, unsigned i)
{
	static const char val[VAL_LEN];
	char k[32];
	snprintf(k, sizeof(k), "key-%06u", i);
	return rcache_put(c, k, strlen(k), val, VAL_LEN);
}

static bool get_key(rcache_t *c, unsigned i)
{
	char k[32];
	hdl_slice_t v;
	snprintf(k, sizeof(k), "key-%06u", i);
	return rcache_get(c, k, strlen(k), &v);
}

static void test_admission(void **state)
{
	(void)state;
	size_t one = rcache_entry_overhead() + 10 + VAL_LEN;
	rcache_t *c = rcache_new(64 * 1024);
	assert_non_null(c);
	assert_int_equal(rcache_set_admission(c, true), HDL_EOK);
	rcache_stats_t st = stats(c);
	size_t sk = st.bytes; /* the sketch, charged */
	assert_true(sk >= 512 && sk <= 64 * 1024 / 32);
	/* fill with warm keys: asked three times each, stored on the first miss (room left) */
	unsigned warm = 0;
	while (stats(c).bytes + one <= 64 * 1024) {
		for (int r = 0; r < 3; r++)
			(void)get_key(c, warm);
		assert_int_equal(put_key(c, warm), HDL_EOK);
		warm++;
	}
	st = stats(c);
	assert_int_equal(st.entries, warm);
	assert_true(st.bytes <= 64 * 1024);
	/*
	 * A flood of keys asked once: nearly all are refused and the warm entries stay. (The
	 * sketch is approximate and ages: a one-time key whose counters collide with others, or a
	 * warm victim whose counts were halved, lets a few in.)
	 */
	unsigned admitted = 0;
	for (unsigned i = 0; i < 2000; i++) {
		assert_false(get_key(c, 100000 + i));
		int ret = put_key(c, 100000 + i);
		assert_true(ret == HDL_EOK || ret == HDL_EAGAIN);
		admitted += ret == HDL_EOK;
	}
	st = stats(c);
	assert_int_equal(st.rejected, 2000 - admitted);
	assert_true(admitted < 2000 / 20);
	unsigned still = 0;
	for (unsigned i = 0; i < warm; i++)
		still += get_key(c, i);
	assert_true(still >= warm * 9 / 10);
	assert_true(st.evictions == admitted);
	/* a key asked for more often than the least recently used entry gets in */
	for (int r = 0; r < 8; r++)
		(void)get_key(c, 999999);
	assert_int_equal(put_key(c, 999999), HDL_EOK);
	assert_true(get_key(c, 999999));
	assert_int_equal(stats(c).evictions, admitted + 1);
	/* replacing an existing key is always allowed */
	assert_int_equal(put_key(c, 5), HDL_EOK);

	/* the sketch stays charged across a clear and a resize; off gives its bytes back */
	rcache_clear(c);
	assert_int_equal(stats(c).bytes, sk);
	rcache_set_max(c, 256 * 1024);
	st = stats(c);
	assert_true(st.bytes >= 512 && st.bytes <= 256 * 1024 / 32);
	assert_int_equal(rcache_set_admission(c, false), HDL_EOK);
	assert_int_equal(stats(c).bytes, 0);
	/* off: everything is admitted again (the first put evicts nobody: room) */
	uint64_t rejected = stats(c).rejected;
	for (unsigned i = 0; i < 20000; i++)
		assert_int_equal(put_key(c, i), HDL_EOK);
	assert_int_equal(stats(c).rejected, rejected);
	rcache_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_write_drops_only_its_handle, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_drop_everything, setup, teardown),
	    cmocka_unit_test(test_admission),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
