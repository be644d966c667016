/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief In-flight coalescing (node/resolver/dflight.c): one leader per key, followers handed
 *        the leader's result exactly once, followers leaving, a leader abandoning (promotion or
 *        failure), the two limits, 1000 concurrent identical misses from several threads giving
 *        exactly one leader, and leave racing finish across threads.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hdl/error.h"
#include "node/resolver/dflight.h"

/* A waiter and what it was told. */
typedef struct tw {
	dflight_waiter_t w;
	_Atomic int calls;
	int status;
	uint32_t rcode;
	uint8_t copy[64];
	size_t len;
} tw_t;

static void on_done(dflight_waiter_t *w, const dflight_result_t *r)
{
	tw_t *t = (tw_t *)w;
	t->status = r->status;
	t->rcode = r->rcode;
	t->len = r->len < sizeof(t->copy) ? r->len : sizeof(t->copy);
	if (t->len)
		memcpy(t->copy, r->vals, t->len);
	atomic_fetch_add(&t->calls, 1);
}

static void tw_init(tw_t *t)
{
	memset(t, 0, sizeof(*t));
	t->w.done = on_done;
}

static int join(dflight_t *f, const char *key, tw_t *t)
{
	return dflight_join(f, (const uint8_t *)key, strlen(key), &t->w);
}

static dflight_stats_t stats(dflight_t *f)
{
	dflight_stats_t st;
	dflight_get_stats(f, &st);
	return st;
}

/* A fresh flight of \p key: \p lead leads, then each of the \p n waiters of \p fol follows. */
static void flight(dflight_t *f, const char *key, tw_t *lead, tw_t *const *fol, int n)
{
	tw_init(lead);
	assert_int_equal(join(f, key, lead), DFLIGHT_LEADER);
	for (int i = 0; i < n; i++) {
		tw_init(fol[i]);
		assert_int_equal(join(f, key, fol[i]), DFLIGHT_FOLLOWER);
	}
}

static const dflight_result_t ANSWER = {
    .status = HDL_EOK, .rcode = 1, .vals = (const uint8_t *)"\0\0\0\0", .len = 4};

static void test_leader_followers(void **state)
{
	(void)state;
	dflight_t *f = NULL;
	assert_int_equal(dflight_new(16, 16, &f), HDL_EOK);
	tw_t l, a, b, c, other;
	flight(f, "k1", &l, (tw_t *const[]){&a, &b, &c}, 3);
	flight(f, "k2", &other, NULL, 0);
	/* a waiter already linked, an empty key */
	assert_int_equal(join(f, "k3", &a), HDL_EINVAL);
	assert_int_equal(dflight_join(f, (const uint8_t *)"", 0, &l.w), HDL_EINVAL);
	dflight_stats_t st = stats(f);
	assert_int_equal(st.keys, 2);
	assert_int_equal(st.waiters, 3);
	assert_int_equal(st.leaders, 2);
	assert_int_equal(st.followers, 3);
	/* a follower cannot finish; the leader finishes once */
	assert_int_equal(dflight_finish(f, &a.w, &ANSWER), HDL_EINVAL);
	assert_int_equal(dflight_finish(f, &l.w, &ANSWER), 3);
	assert_int_equal(dflight_finish(f, &l.w, &ANSWER), HDL_EINVAL);
	tw_t *fol[] = {&a, &b, &c};
	for (int i = 0; i < 3; i++) {
		assert_int_equal(fol[i]->calls, 1);
		assert_int_equal(fol[i]->status, HDL_EOK);
		assert_int_equal(fol[i]->rcode, 1);
		assert_int_equal(fol[i]->len, 4);
	}
	assert_int_equal(l.calls, 0);
	assert_int_equal(other.calls, 0);
	/* after the end: leaving says a notification came; the key starts a new flight */
	assert_false(dflight_leave(f, &a.w));
	assert_true(dflight_leave(f, &l.w));
	assert_int_equal(join(f, "k1", &a), DFLIGHT_LEADER);
	st = stats(f);
	assert_int_equal(st.keys, 2);
	assert_int_equal(st.answered, 3);
	assert_int_equal(dflight_finish(f, &a.w, &ANSWER), 0);
	assert_int_equal(dflight_finish(f, &other.w, &ANSWER), 0);
	assert_int_equal(stats(f).keys, 0);
	dflight_free(f);
}

static void test_follower_leaves(void **state)
{
	(void)state;
	dflight_t *f = NULL;
	assert_int_equal(dflight_new(16, 16, &f), HDL_EOK);
	tw_t l, a, b, c;
	flight(f, "k", &l, (tw_t *const[]){&a, &b, &c}, 3);
	/* the middle one and the last one leave; the others do not notice */
	assert_true(dflight_leave(f, &b.w));
	assert_true(dflight_leave(f, &c.w));
	assert_true(dflight_leave(f, &c.w)); /* twice: nothing on its way either */
	assert_int_equal(stats(f).waiters, 1);
	assert_int_equal(stats(f).left, 2);
	assert_int_equal(dflight_finish(f, &l.w, &ANSWER), 1);
	assert_int_equal(a.calls, 1);
	assert_int_equal(b.calls, 0);
	assert_int_equal(c.calls, 0);
	/* the one that left can join again: a new flight */
	assert_int_equal(join(f, "k", &b), DFLIGHT_LEADER);
	assert_int_equal(dflight_finish(f, &b.w, &ANSWER), 0);
	dflight_free(f);
}

static void test_leader_abandons(void **state)
{
	(void)state;
	dflight_t *f = NULL;
	assert_int_equal(dflight_new(16, 16, &f), HDL_EOK);
	tw_t l, a, b;

	/* a leader that leaves hands the flight to the oldest follower */
	flight(f, "k", &l, (tw_t *const[]){&a, &b}, 2);
	assert_true(dflight_leave(f, &l.w));
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.status, DFLIGHT_PROMOTED);
	assert_int_equal(b.calls, 0);
	assert_int_equal(stats(f).promoted, 1);
	/* the new leader's result reaches the rest; the old one no longer leads */
	assert_int_equal(dflight_finish(f, &l.w, &ANSWER), HDL_EINVAL);
	assert_int_equal(dflight_finish(f, &a.w, &ANSWER), 1);
	assert_int_equal(b.calls, 1);
	assert_int_equal(b.status, HDL_EOK);

	/* abandoning with a failure tells every follower */
	flight(f, "k", &l, (tw_t *const[]){&a, &b}, 2);
	assert_int_equal(dflight_abandon(f, &l.w, HDL_EOK), HDL_EINVAL);
	assert_int_equal(dflight_abandon(f, &l.w, HDL_ETIMEDOUT), HDL_EOK);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.status, HDL_ETIMEDOUT);
	assert_int_equal(b.calls, 1);
	assert_int_equal(b.status, HDL_ETIMEDOUT);
	assert_int_equal(stats(f).failed, 2);
	assert_int_equal(stats(f).keys, 0);
	assert_int_equal(dflight_abandon(f, &l.w, HDL_EIO), HDL_EINVAL);

	/* a promoted leader that leaves in turn: its PROMOTED notice is on its way (false), the
	 * flight moves on; with nobody left the flight ends */
	flight(f, "k", &l, (tw_t *const[]){&a, &b}, 2);
	assert_int_equal(dflight_abandon(f, &l.w, DFLIGHT_PROMOTED), HDL_EOK);
	assert_false(dflight_leave(f, &a.w));
	assert_int_equal(b.status, DFLIGHT_PROMOTED);
	assert_true(dflight_leave(f, &l.w));
	assert_false(dflight_leave(f, &b.w));
	assert_int_equal(stats(f).keys, 0);
	assert_int_equal(stats(f).waiters, 0);
	/* a leader alone that leaves: the flight ends quietly */
	tw_init(&l);
	assert_int_equal(join(f, "solo", &l), DFLIGHT_LEADER);
	assert_true(dflight_leave(f, &l.w));
	assert_int_equal(stats(f).keys, 0);
	assert_int_equal(l.calls, 0);
	dflight_free(f);
}

static void test_limits(void **state)
{
	(void)state;
	dflight_t *f = NULL;
	assert_int_equal(dflight_new(0, 3, &f), HDL_EINVAL);
	assert_int_equal(dflight_new(2, 3, &f), HDL_EOK);
	tw_t t[8];
	for (int i = 0; i < 8; i++)
		tw_init(&t[i]);
	assert_int_equal(join(f, "a", &t[0]), DFLIGHT_LEADER);
	for (int i = 1; i <= 3; i++)
		assert_int_equal(join(f, "a", &t[i]), DFLIGHT_FOLLOWER);
	assert_int_equal(join(f, "a", &t[4]), HDL_ELIMIT); /* 3 followers per key */
	assert_int_equal(join(f, "b", &t[4]), DFLIGHT_LEADER);
	assert_int_equal(join(f, "c", &t[5]), HDL_ELIMIT); /* 2 keys */
	assert_int_equal(stats(f).refused, 2);
	/* room again once a flight ends, and after a follower leaves */
	assert_int_equal(dflight_finish(f, &t[4].w, &ANSWER), 0);
	assert_int_equal(join(f, "c", &t[5]), DFLIGHT_LEADER);
	assert_true(dflight_leave(f, &t[2].w));
	assert_int_equal(join(f, "a", &t[6]), DFLIGHT_FOLLOWER);
	/* a reload raises the limits */
	dflight_set_limits(f, 3, 4);
	assert_int_equal(join(f, "a", &t[7]), DFLIGHT_FOLLOWER);
	assert_int_equal(join(f, "d", &t[4]), DFLIGHT_LEADER);
	assert_int_equal(dflight_finish(f, &t[0].w, &ANSWER), 4);
	assert_int_equal(dflight_finish(f, &t[5].w, &ANSWER), 0);
	assert_int_equal(dflight_finish(f, &t[4].w, &ANSWER), 0);
	/* a key over the maximum */
	static uint8_t big[DFLIGHT_KEY_MAX + 1];
	assert_int_equal(dflight_join(f, big, sizeof(big), &t[0].w), HDL_EINVAL);
	dflight_free(f);
}

/* ---- threads ----------------------------------------------------------------------------------
 */

#define MISSES   1000
#define NTHREADS 8

typedef struct crowd {
	dflight_t *f;
	tw_t *tw;
	int from, to;
	pthread_barrier_t *start;
	_Atomic int *leaders;
	_Atomic int *joined;
	tw_t *_Atomic *leader;
} crowd_t;

static void *crowd_main(void *p)
{
	crowd_t *c = p;
	pthread_barrier_wait(c->start);
	for (int i = c->from; i < c->to; i++) {
		int r = join(c->f, "88.100.2/hot", &c->tw[i]);
		if (r == DFLIGHT_LEADER) {
			atomic_fetch_add(c->leaders, 1);
			atomic_store(c->leader, &c->tw[i]);
		} else if (r != DFLIGHT_FOLLOWER)
			abort();
		atomic_fetch_add(c->joined, 1);
	}
	return NULL;
}

static void test_thousand_identical_misses(void **state)
{
	(void)state;
	dflight_t *f = NULL;
	assert_int_equal(dflight_new(64, MISSES, &f), HDL_EOK);
	tw_t *tw = calloc(MISSES, sizeof(*tw));
	assert_non_null(tw);
	for (int i = 0; i < MISSES; i++)
		tw_init(&tw[i]);
	pthread_barrier_t start;
	pthread_barrier_init(&start, NULL, NTHREADS);
	_Atomic int leaders = 0, joined = 0;
	tw_t *_Atomic leader = NULL;
	pthread_t th[NTHREADS];
	crowd_t cr[NTHREADS];
	for (int i = 0; i < NTHREADS; i++) {
		cr[i] = (crowd_t){f,
		                  tw,
		                  i * MISSES / NTHREADS,
		                  (i + 1) * MISSES / NTHREADS,
		                  &start,
		                  &leaders,
		                  &joined,
		                  &leader};
		assert_int_equal(pthread_create(&th[i], NULL, crowd_main, &cr[i]), 0);
	}
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&start);
	assert_int_equal(joined, MISSES);
	assert_int_equal(leaders, 1);
	dflight_stats_t st = stats(f);
	assert_int_equal(st.leaders, 1);
	assert_int_equal(st.followers, MISSES - 1);
	assert_int_equal(st.keys, 1);
	/* the one leader finishes: everyone else hears exactly once */
	assert_non_null(leader);
	assert_int_equal(dflight_finish(f, &leader->w, &ANSWER), MISSES - 1);
	int told = 0;
	for (int i = 0; i < MISSES; i++) {
		if (&tw[i] == leader)
			continue;
		assert_int_equal(tw[i].calls, 1);
		assert_int_equal(tw[i].status, HDL_EOK);
		told++;
	}
	assert_int_equal(told, MISSES - 1);
	assert_int_equal(stats(f).keys, 0);
	free(tw);
	dflight_free(f);
}

/* Followers leave from their threads while the main thread finishes the flight. */
typedef struct racer {
	dflight_t *f;
	tw_t *tw;
	int n;
	int left;
	pthread_barrier_t *go;
} racer_t;

static void *racer_main(void *p)
{
	racer_t *r = p;
	pthread_barrier_wait(r->go);
	for (int i = 0; i < r->n; i += 2) {
		if (dflight_leave(r->f, &r->tw[i].w))
			r->left++;
	}
	return NULL;
}

static void test_leave_races_finish(void **state)
{
	(void)state;
	enum { ROUNDS = 50, PER = 40, NR = 3 };
	dflight_t *f = NULL;
	assert_int_equal(dflight_new(16, NR * PER, &f), HDL_EOK);
	for (int round = 0; round < ROUNDS; round++) {
		tw_t lead;
		static tw_t tw[NR][PER];
		tw_init(&lead);
		assert_int_equal(join(f, "race", &lead), DFLIGHT_LEADER);
		for (int t = 0; t < NR; t++) {
			for (int i = 0; i < PER; i++) {
				tw_init(&tw[t][i]);
				assert_int_equal(join(f, "race", &tw[t][i]), DFLIGHT_FOLLOWER);
			}
		}
		pthread_barrier_t go;
		pthread_barrier_init(&go, NULL, NR + 1);
		pthread_t th[NR];
		racer_t rc[NR];
		for (int t = 0; t < NR; t++) {
			rc[t] = (racer_t){f, tw[t], PER, 0, &go};
			assert_int_equal(pthread_create(&th[t], NULL, racer_main, &rc[t]), 0);
		}
		pthread_barrier_wait(&go);
		int told = dflight_finish(f, &lead.w, &ANSWER);
		int left = 0;
		for (int t = 0; t < NR; t++) {
			pthread_join(th[t], NULL);
			left += rc[t].left;
		}
		pthread_barrier_destroy(&go);
		/* every follower either left (never told) or was told exactly once */
		assert_int_equal(told + left, NR * PER);
		for (int t = 0; t < NR; t++) {
			for (int i = 0; i < PER; i++)
				assert_true(tw[t][i].calls <= 1);
		}
		assert_int_equal(stats(f).keys, 0);
		assert_int_equal(stats(f).waiters, 0);
	}
	dflight_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_leader_followers),
	    cmocka_unit_test(test_follower_leaves),
	    cmocka_unit_test(test_leader_abandons),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_thousand_identical_misses),
	    cmocka_unit_test(test_leave_races_finish),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
