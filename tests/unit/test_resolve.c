/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Parts of the resolution engine (node/resolver/resolve.c) that the replay scenarios
 *        (tests/replay/) do not reach directly: the stale-refresh hold table (bounded, lossy
 *        only when a bucket overflows, never inventing a hold), the ops a new engine
 *        requires, and a client answered RC 3 when its engine is freed while it waits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hdl/error.h"
#include "node/resolver/dcache.h"
#include "node/resolver/dflight.h"
#include "node/resolver/resolve.h"
#include "node/resolver/upconf.h"

static const uint8_t KA[] = "key-a", KB[] = "key-b";

static void test_hold_basic(void **state)
{
	(void)state;
	res_hold_t *h;
	assert_int_equal(res_hold_new(0, &h), HDL_EINVAL);
	assert_int_equal(res_hold_new(1000, &h), HDL_EOK);
	assert_false(res_hold_active(h, KA, sizeof(KA), 1000));
	res_hold_set(h, KA, sizeof(KA), 5000);
	assert_true(res_hold_active(h, KA, sizeof(KA), 1000));
	assert_true(res_hold_active(h, KA, sizeof(KA), 4800));
	assert_false(res_hold_active(h, KA, sizeof(KA), 5100)); /* expired */
	res_hold_set(h, KA, sizeof(KA), 9000);
	res_hold_set(h, KA, sizeof(KA), 0); /* cleared */
	assert_false(res_hold_active(h, KA, sizeof(KA), 1000));
	res_hold_free(h);
	/* NULL is no table: nothing held */
	assert_false(res_hold_active(NULL, KA, sizeof(KA), 0));
	res_hold_set(NULL, KA, sizeof(KA), 100);
}

/* One slot: every key collides. A hold may be forgotten, never given to another key. */
static void test_hold_collisions(void **state)
{
	(void)state;
	res_hold_t *h;
	assert_int_equal(res_hold_new(1, &h), HDL_EOK);
	res_hold_set(h, KA, sizeof(KA), 5000);
	assert_false(res_hold_active(h, KB, sizeof(KB), 1000));
	res_hold_set(h, KB, sizeof(KB), 5000);
	assert_true(res_hold_active(h, KB, sizeof(KB), 1000));
	assert_false(res_hold_active(h, KA, sizeof(KA), 1000)); /* forgotten, the bound held */
	res_hold_set(h, KA, sizeof(KA), 0);                     /* A's clear leaves B's hold */
	assert_true(res_hold_active(h, KB, sizeof(KB), 1000));
	res_hold_free(h);
}

/*
 * Eight slots are one bucket: eight keys held at once all keep their holds, whatever their
 * hashes (one slot per hash forgot one of every two keys meeting there, and each was then asked
 * upstream at every request: B5s). A ninth pushes out the hold ending first, and only that one.
 */
static void test_hold_bucket(void **state)
{
	(void)state;
	res_hold_t *h;
	uint8_t key[9][8];
	assert_int_equal(res_hold_new(8, &h), HDL_EOK);
	for (unsigned i = 0; i < 9; i++)
		memcpy(key[i],
		       (const uint8_t[8]){'k', 'e', 'y', '-', (uint8_t)('0' + i), 'x', 'y', 'z'},
		       8);
	for (unsigned i = 0; i < 8; i++)
		res_hold_set(h, key[i], 8, 10000 + 1000 * i);
	for (unsigned i = 0; i < 8; i++)
		assert_true(res_hold_active(h, key[i], 8, 9000));
	assert_false(res_hold_active(h, key[8], 8, 9000));
	/* setting a held key again takes its own slot, not another's */
	res_hold_set(h, key[3], 8, 30000);
	for (unsigned i = 0; i < 8; i++)
		assert_true(res_hold_active(h, key[i], 8, 9000));
	assert_true(res_hold_active(h, key[3], 8, 20000));
	/* full: the ninth takes the slot of key 0 (ending first) */
	res_hold_set(h, key[8], 8, 50000);
	assert_true(res_hold_active(h, key[8], 8, 9000));
	assert_false(res_hold_active(h, key[0], 8, 9000));
	for (unsigned i = 1; i < 8; i++)
		assert_true(res_hold_active(h, key[i], 8, 9000));
	/* a cleared hold frees its slot for the next key; the others stay */
	res_hold_set(h, key[5], 8, 0);
	assert_false(res_hold_active(h, key[5], 8, 9000));
	res_hold_set(h, key[0], 8, 12000);
	assert_true(res_hold_active(h, key[0], 8, 9000));
	for (unsigned i = 1; i < 9; i++)
		assert_true(i == 5 || res_hold_active(h, key[i], 8, 9000));
	res_hold_free(h);
}

/* ---- an engine with a query that never ends ---------------------------------------------------
 */

static uint64_t now_v = 1000;
static int answers;
static uint32_t last_rc;

static uint64_t f_now(void *env)
{
	(void)env;
	return now_v;
}
static int f_query(void *env, const ups_target_t *c, unsigned n, const uint8_t *req, size_t len,
                   uint64_t deadline, uint32_t try_ms, ups_cb_t cb, void *arg, void **qh)
{
	(void)env, (void)c, (void)n, (void)req, (void)len, (void)deadline, (void)try_ms, (void)cb,
	    (void)arg;
	static int token;
	*qh = &token;
	return HDL_EOK;
}
static void f_cancel(void *env, void *qh)
{
	(void)env, (void)qh;
}
static void f_arm(void *env, uint64_t at)
{
	(void)env, (void)at;
}
static void f_wake(void *env)
{
	(void)env;
}
static void f_answer(void *env, res_client_t *c)
{
	(void)env;
	answers++;
	last_rc = c->ans.rcode;
	res_client_release(c);
}

static void test_engine_free_answers(void **state)
{
	(void)state;
	static char up[] = "root 10.0.0.1:2641 transport=tcp", fw[] = "88.100 root";
	static char *ups[] = {up}, *fws[] = {fw};
	conf_t c;
	char err[256];
	memset(&c, 0, sizeof(c));
	c.upstream = ups;
	c.n_upstream = 1;
	c.forward = fws;
	c.n_forward = 1;
	ups_set_t *set;
	dcache_t *dc;
	dflight_t *fl;
	dcache_opts_t o = {.max_bytes = 1u << 20, .policy = {.max_ttl = 60}};
	assert_int_equal(ups_set_build(&c, &set, err, sizeof(err)), HDL_EOK);
	assert_int_equal(dcache_new(&o, &dc), HDL_EOK);
	assert_int_equal(dflight_new(16, 16, &fl), HDL_EOK);
	res_ops_t ops = {f_now, f_query, f_cancel, f_arm, f_wake, f_answer};
	res_shared_t sh = {set, dc, fl, NULL};
	res_conf_t rc;
	res_conf_default(&rc);
	res_engine_t *e;
	res_ops_t bad = ops;
	bad.answer = NULL;
	assert_int_equal(res_new(&bad, NULL, &rc, &sh, &e), HDL_EINVAL);
	res_shared_t nosh = {set, NULL, fl, NULL};
	assert_int_equal(res_new(&ops, NULL, &rc, &nosh, &e), HDL_EINVAL);
	assert_int_equal(res_new(&ops, NULL, &rc, &sh, &e), HDL_EOK);
	res_question_t q = {.handle = hdl_slice_str("88.100.1/X"), .opflags = HDL_OF_REC};
	res_client_t a, b;
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	assert_int_equal(res_start(e, &q, &a), RES_WAIT);
	assert_int_equal(res_start(e, &q, &b), RES_WAIT); /* joins the same resolution */
	res_stats_t st;
	res_get_stats(e, &st);
	assert_int_equal(st.running, 1);
	assert_int_equal(st.coalesced, 1);
	res_client_cancel(e, &b); /* goes away: no answer for it */
	res_free(e);              /* the one still waiting hears RC 3 */
	assert_int_equal(answers, 1);
	assert_int_equal(last_rc, HDL_RC_SERVER_TOO_BUSY);
	dflight_stats_t fs;
	dflight_get_stats(fl, &fs);
	assert_int_equal(fs.keys, 0); /* the flight was handed on (nobody to take it): gone */
	dflight_free(fl);
	dcache_free(dc);
	ups_set_free(set);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hold_basic),
	    cmocka_unit_test(test_hold_collisions),
	    cmocka_unit_test(test_hold_bucket),
	    cmocka_unit_test(test_engine_free_answers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
