/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Unit tests for node/server/rrl.c: the token bucket (burst, then the rate), slip,
 *        prefix grouping (/24, /56, IPv4-mapped IPv6), the whitelist, a table far smaller than
 *        the prefixes flooding it (bounded, and a limited prefix is never reset), live parameter
 *        changes, the counters, and several threads charging one prefix at once (the total
 *        stays within burst + rate x time).
 *
 * Time is passed in explicitly, so every figure here is exact, whatever the machine's load.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "hdl/error.h"
#include "node/conf/conf.h"
#include "node/server/rrl.h"

static struct sockaddr_storage addr(const char *text)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, text, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons(40000);
	} else {
		assert_int_equal(inet_pton(AF_INET6, text, &a6->sin6_addr), 1);
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(40000);
	}
	return ss;
}

static rrl_verdict_t check1(rrl_t *r, const char *a, const rrl_params_t *p, uint64_t now)
{
	struct sockaddr_storage ss = addr(a);
	return rrl_check(r, 0, (const struct sockaddr *)&ss, p, now);
}

/* Passes of \p n requests from \p a at time \p now. */
static unsigned passes(rrl_t *r, const char *a, const rrl_params_t *p, uint64_t now, unsigned n)
{
	unsigned ok = 0;
	for (unsigned i = 0; i < n; i++)
		ok += check1(r, a, p, now) == RRL_PASS;
	return ok;
}

static void test_bucket(void **state)
{
	rrl_t *r;
	assert_int_equal(rrl_new(1024, 1, &r), HDL_EOK);
	rrl_params_t p = {.rate = 10, .burst = 20, .slip = 0};
	/* a full bucket: the burst, then nothing */
	assert_int_equal(passes(r, "192.0.2.1", &p, 1000, 100), 20);
	/* 100 ms refill one answer at 10/s */
	assert_int_equal(passes(r, "192.0.2.1", &p, 1100, 100), 1);
	assert_int_equal(passes(r, "192.0.2.1", &p, 1150, 100), 0);
	/* a second later: 10 more (the half-token of 1150..1200 is kept) */
	assert_int_equal(passes(r, "192.0.2.1", &p, 2100, 100), 10);
	/* long idle: the bucket fills to the burst, not beyond */
	assert_int_equal(passes(r, "192.0.2.1", &p, 1000000, 100), 20);
	/* burst 0 = the rate */
	p.burst = 0;
	assert_int_equal(passes(r, "192.0.2.1", &p, 9000000, 100), 10);
	/* rate 0: no limiting at all */
	p.rate = 0;
	assert_int_equal(passes(r, "192.0.2.1", &p, 9000000, 1000), 1000);
	rrl_free(r);
}

/* A clock reading older than the bucket's (another worker's) neither refills nor breaks it. */
static void test_stale_clock(void **state)
{
	rrl_t *r;
	assert_int_equal(rrl_new(1024, 2, &r), HDL_EOK);
	rrl_params_t p = {.rate = 100, .burst = 5, .slip = 0};
	assert_int_equal(passes(r, "192.0.2.1", &p, 5000, 5), 5);
	assert_int_equal(passes(r, "192.0.2.1", &p, 4000, 50), 0);
	assert_int_equal(passes(r, "192.0.2.1", &p, 5010, 50), 1);
	rrl_free(r);
}

static void test_slip(void **state)
{
	rrl_t *r;
	assert_int_equal(rrl_new(1024, 1, &r), HDL_EOK);
	for (uint32_t slip = 0; slip <= 3; slip++) {
		rrl_params_t p = {.rate = 1, .burst = 1, .slip = slip};
		char a[32];
		snprintf(a, sizeof(a), "10.0.%u.1", slip);
		assert_int_equal(check1(r, a, &p, 100), RRL_PASS);
		unsigned slipped = 0, dropped = 0;
		for (unsigned i = 0; i < 60; i++) {
			rrl_verdict_t v = check1(r, a, &p, 100);
			slipped += v == RRL_SLIP;
			dropped += v == RRL_DROP;
		}
		assert_int_equal(slipped + dropped, 60);
		assert_int_equal(slipped, slip ? 60 / slip : 0);
	}
	rrl_stats_t st;
	rrl_get_stats(r, &st);
	assert_int_equal(st.c[RRL_CTR_LIMITED], 4 * 60);
	assert_int_equal(st.c[RRL_CTR_SLIPPED], 60 + 30 + 20);
	assert_int_equal(st.c[RRL_CTR_DROPPED], 60 + 0 + 30 + 40);
	assert_int_equal(st.c[RRL_CTR_SLIPPED] + st.c[RRL_CTR_DROPPED], st.c[RRL_CTR_LIMITED]);
	rrl_count(r, 0, RRL_CTR_REDIRECTED);
	rrl_count(r, 7, RRL_CTR_REDIRECTED); /* a worker id past the slots still counts */
	rrl_count(NULL, 0, RRL_CTR_REDIRECTED);
	rrl_get_stats(r, &st);
	assert_int_equal(st.c[RRL_CTR_REDIRECTED], 2);
	rrl_log_stats(r, "test");
	rrl_free(r);
}

/* /24 and /56 share a bucket; the next network does not; IPv4-mapped IPv6 counts as IPv4. */
static void test_prefixes(void **state)
{
	rrl_t *r;
	assert_int_equal(rrl_new(1024, 1, &r), HDL_EOK);
	rrl_params_t p = {.rate = 1, .burst = 4, .slip = 0};
	assert_int_equal(passes(r, "192.0.2.1", &p, 10, 2), 2);
	assert_int_equal(passes(r, "192.0.2.254", &p, 10, 1), 1);
	assert_int_equal(passes(r, "::ffff:192.0.2.9", &p, 10, 5), 1);
	assert_int_equal(passes(r, "192.0.3.1", &p, 10, 10), 4);
	assert_int_equal(passes(r, "2001:db8:0:100::1", &p, 10, 3), 3);
	assert_int_equal(passes(r, "2001:db8:0:1ff:ffff::2", &p, 10, 3), 1);
	assert_int_equal(passes(r, "2001:db8:0:200::1", &p, 10, 10), 4);

	char buf[64];
	struct sockaddr_storage ss = addr("192.0.2.77");
	assert_string_equal(rrl_prefix_str((struct sockaddr *)&ss, buf, sizeof(buf)),
	                    "192.0.2.0/24");
	ss = addr("2001:db8:aa:bbcc:1::1");
	assert_string_equal(rrl_prefix_str((struct sockaddr *)&ss, buf, sizeof(buf)),
	                    "2001:db8:aa:bb00::/56");
	ss = addr("::ffff:10.1.2.3");
	assert_string_equal(rrl_prefix_str((struct sockaddr *)&ss, buf, sizeof(buf)), "10.1.2.0/24");
	struct sockaddr un = {.sa_family = AF_UNIX};
	assert_string_equal(rrl_prefix_str(&un, buf, sizeof(buf)), "");
	assert_int_equal(rrl_check(r, 0, &un, &p, 10), RRL_PASS);
	rrl_free(r);
}

static void test_whitelist(void **state)
{
	conf_t c;
	char err[256];
	assert_int_equal(conf_init(&c), HDL_EOK);
	assert_int_equal(conf_set(&c, "udp_rrl_whitelist", "198.51.100.0/24, 2001:db8::/32", err,
	                          sizeof(err)),
	                 HDL_EOK);
	assert_int_equal(conf_set(&c, "udp_rrl_whitelist", "203.0.113.5", err, sizeof(err)),
	                 HDL_EOK);
	/* an IPv4-mapped IPv6 network is an IPv4 one (sources are matched as IPv4) */
	assert_int_equal(conf_set(&c, "udp_rrl_whitelist", "::ffff:100.64.1.0/120", err,
	                          sizeof(err)),
	                 HDL_EOK);
	rrl_t *r;
	assert_int_equal(rrl_new_from_conf(&c, 2, &r), HDL_EOK);
	conf_free(&c);
	rrl_params_t p = {.rate = 1, .burst = 1, .slip = 0};
	assert_int_equal(passes(r, "198.51.100.1", &p, 0, 500), 500);
	assert_int_equal(passes(r, "::ffff:198.51.100.2", &p, 0, 50), 50);
	assert_int_equal(passes(r, "2001:db8:ffff::1", &p, 0, 500), 500);
	assert_int_equal(passes(r, "203.0.113.5", &p, 0, 500), 500);
	assert_int_equal(passes(r, "100.64.1.99", &p, 0, 50), 50);
	assert_int_equal(passes(r, "::ffff:100.64.1.98", &p, 0, 50), 50);
	assert_int_equal(passes(r, "100.64.2.1", &p, 0, 50), 1);
	/* the same /24 outside the /32, and the neighbours, are limited */
	assert_int_equal(passes(r, "203.0.113.6", &p, 0, 50), 1);
	assert_int_equal(passes(r, "198.51.101.1", &p, 0, 50), 1);
	assert_int_equal(passes(r, "2001:db9::1", &p, 0, 50), 1);
	struct sockaddr_storage ss = addr("198.51.100.200");
	assert_true(rrl_whitelisted(r, (struct sockaddr *)&ss));
	ss = addr("127.0.0.1"); /* the default whitelist was replaced */
	assert_false(rrl_whitelisted(r, (struct sockaddr *)&ss));
	rrl_free(r);

	/* the default: loopback */
	assert_int_equal(conf_init(&c), HDL_EOK);
	assert_int_equal(rrl_new_from_conf(&c, 1, &r), HDL_EOK);
	conf_free(&c);
	assert_int_equal(passes(r, "127.0.0.1", &p, 0, 100), 100);
	assert_int_equal(passes(r, "127.5.5.5", &p, 0, 100), 100);
	assert_int_equal(passes(r, "::1", &p, 0, 100), 100);
	assert_int_equal(passes(r, "128.0.0.1", &p, 0, 100), 1);
	rrl_free(r);

	uint8_t a[16] = {0};
	assert_int_equal(rrl_new(64, 1, &r), HDL_EOK);
	assert_int_equal(rrl_whitelist_add(r, AF_INET, a, 33), HDL_EINVAL);
	assert_int_equal(rrl_whitelist_add(r, AF_INET6, a, 129), HDL_EINVAL);
	assert_int_equal(rrl_whitelist_add(r, AF_UNIX, a, 1), HDL_EINVAL);
	assert_int_equal(rrl_whitelist_add(r, AF_INET6, a, 0), HDL_EOK); /* ::/0: every IPv6 */
	assert_int_equal(passes(r, "2001:db8::1", &p, 0, 10), 10);
	assert_int_equal(passes(r, "192.0.2.1", &p, 0, 10), 1);
	rrl_free(r);
	assert_int_equal(rrl_new(64, 0, &r), HDL_EINVAL);
	assert_null(r);
}

/*
 * A 64-bucket table against 20000 busy prefixes: memory stays what it is, and a limited prefix
 * is never reset by the churn (a prefix without a bucket shares a busy one instead of evicting
 * it); over a window of T ms no single prefix gets more than burst + rate * T answers.
 */
static void test_table_flood(void **state)
{
	rrl_t *r;
	assert_int_equal(rrl_new(64, 1, &r), HDL_EOK);
	rrl_params_t p = {.rate = 100, .burst = 10, .slip = 0};
	assert_int_equal(passes(r, "192.0.2.1", &p, 0, 50), 10);
	unsigned flood_ok = 0;
	for (unsigned i = 0; i < 20000; i++) {
		char a[32];
		snprintf(a, sizeof(a), "10.%u.%u.1", (i >> 8) & 0xFF, i & 0xFF);
		flood_ok += check1(r, a, &p, (uint64_t)i / 1000) == RRL_PASS;
	}
	/* the victim's bucket was not reset: still empty at t = 0 + what 19 ms refilled */
	assert_true(passes(r, "192.0.2.1", &p, 19, 50) <= 2);
	/* the flood itself shared buckets: far fewer answers than requests */
	assert_true(flood_ok < 20000);
	rrl_stats_t st;
	rrl_get_stats(r, &st);
	assert_true(st.c[RRL_CTR_SHARED] > 0);
	/* one prefix over 1 s of mixed traffic: <= burst + rate * 1 s */
	unsigned ok = 0;
	for (unsigned t = 0; t <= 1000; t++) {
		ok += passes(r, "192.0.2.1", &p, 10000 + t, 3);
		char a[32];
		snprintf(a, sizeof(a), "10.99.%u.1", t & 0xFF);
		(void)check1(r, a, &p, 10000 + t);
	}
	assert_true(ok <= 10 + 100 + 1);
	assert_true(ok >= 50); /* and the limit is not a blackout */
	rrl_free(r);
}

/* A reload that lowers the burst or the rate takes effect on full buckets at once. */
static void test_live_params(void **state)
{
	rrl_t *r;
	assert_int_equal(rrl_new(1024, 1, &r), HDL_EOK);
	rrl_params_t p = {.rate = 1000, .burst = 1000, .slip = 0};
	assert_int_equal(passes(r, "192.0.2.1", &p, 0, 10), 10);
	p.burst = 5;
	assert_int_equal(passes(r, "192.0.2.1", &p, 1, 100), 5);
	p.rate = 1;
	p.burst = 1;
	assert_int_equal(passes(r, "192.0.2.1", &p, 1000, 100), 0); /* 999 ms at 1/s */
	assert_int_equal(passes(r, "192.0.2.1", &p, 1001, 100), 1);
	rrl_free(r);
}

/* ---- several workers, one prefix ---------------------------------------------------------- */

#define THREADS 4
#define PER_THREAD 20000

typedef struct shared {
	rrl_t *r;
	rrl_params_t p;
	_Atomic uint64_t clock; /* advanced by the threads themselves */
	_Atomic unsigned passed;
	pthread_barrier_t go;
} shared_t;

typedef struct targ {
	shared_t *s;
	unsigned id;
} targ_t;

static void *worker(void *arg)
{
	targ_t *t = arg;
	shared_t *s = t->s;
	char a[32];
	pthread_barrier_wait(&s->go);
	unsigned ok = 0;
	for (unsigned i = 0; i < PER_THREAD; i++) {
		/* every thread a different host and port of the same /24, as SO_REUSEPORT spreads them */
		snprintf(a, sizeof(a), "192.0.2.%u", 1 + t->id * 50 + i % 50);
		struct sockaddr_storage ss = addr(a);
		uint64_t now = (i % 8 == 0) ? atomic_fetch_add(&s->clock, 1) : atomic_load(&s->clock);
		ok += rrl_check(s->r, t->id, (struct sockaddr *)&ss, &s->p, now) == RRL_PASS;
	}
	atomic_fetch_add(&s->passed, ok);
	return NULL;
}

static void test_threads(void **state)
{
	static shared_t s;
	targ_t args[THREADS];
	pthread_t th[THREADS];
	assert_int_equal(rrl_new(4096, THREADS, &s.r), HDL_EOK);
	s.p = (rrl_params_t){.rate = 50, .burst = 100, .slip = 2};
	atomic_store(&s.clock, 1000);
	atomic_store(&s.passed, 0);
	assert_int_equal(pthread_barrier_init(&s.go, NULL, THREADS), 0);
	for (unsigned i = 0; i < THREADS; i++) {
		args[i] = (targ_t){&s, i};
		assert_int_equal(pthread_create(&th[i], NULL, worker, &args[i]), 0);
	}
	for (unsigned i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&s.go);
	uint64_t elapsed = atomic_load(&s.clock) - 1000; /* ms of synthetic time */
	unsigned passed = atomic_load(&s.passed);
	/* at most burst + rate x time in total, over all threads together */
	uint64_t most = 100 + 50 * elapsed / 1000 + 1;
	if (passed > most)
		fail_msg("%u answers passed in %llu ms, more than %llu", passed,
		         (unsigned long long)elapsed, (unsigned long long)most);
	assert_true(passed >= 100); /* the burst at least */
	rrl_stats_t st;
	rrl_get_stats(s.r, &st);
	assert_int_equal(st.c[RRL_CTR_LIMITED], (uint64_t)THREADS * PER_THREAD - passed);
	assert_int_equal(st.c[RRL_CTR_SLIPPED] + st.c[RRL_CTR_DROPPED], st.c[RRL_CTR_LIMITED]);
	/* slip 2: every second limited request slips (one bucket: its count is exact) */
	assert_int_equal(st.c[RRL_CTR_SLIPPED], st.c[RRL_CTR_LIMITED] / 2);
	printf("threads: %u of %u answers passed in %llu ms at 50/s burst 100 (limit %llu)\n",
	       passed, THREADS * PER_THREAD, (unsigned long long)elapsed, (unsigned long long)most);
	rrl_free(s.r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bucket),      cmocka_unit_test(test_stale_clock),
		cmocka_unit_test(test_slip),        cmocka_unit_test(test_prefixes),
		cmocka_unit_test(test_whitelist),   cmocka_unit_test(test_table_flood),
		cmocka_unit_test(test_live_params), cmocka_unit_test(test_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
