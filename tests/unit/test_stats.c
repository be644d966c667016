/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief cmocka tests of the usage statistics: the sketches and the record codec
 *        (node/store/stats.c: HyperLogLog accuracy and merge, the space-saving top list and its
 *        index, strict decoding, keys and days) and the node side (node/server/stats.c: worker
 *        buffers handed over and flushed into a real store, registrations counted exactly once
 *        from the audit trail, the prefix limit, retention).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hdl/error.h"
#include "hdl/msg.h"
#include "node/server/obs.h"
#include "node/server/stats.h"
#include "node/store/audit.h"
#include "node/store/stats.h"
#include "node/store/store.h"
#include "tests/unit/testutil.h"

static hdl_slice_t S(const char *s)
{
	return hdl_slice_str(s);
}

static uint64_t hash_of(const char *s)
{
	return stats_hash(s, strlen(s));
}

/* ---- sketches -------------------------------------------------------------------------------- */

static void test_hash(void **state)
{
	(void)state;
	assert_true(hash_of("88.100.1/A") == hash_of("88.100.1/A"));
	assert_true(hash_of("88.100.1/A") != hash_of("88.100.1/B"));
	assert_true(stats_hash("", 0) != stats_hash("a", 1));
	/* every bit flips about half the time over similar names */
	unsigned ones[64] = {0};
	for (unsigned i = 0; i < 4096; i++) {
		char n[32];
		snprintf(n, sizeof(n), "88.100.1/%u", i);
		uint64_t h = hash_of(n);
		for (unsigned b = 0; b < 64; b++)
			ones[b] += (h >> b) & 1;
	}
	for (unsigned b = 0; b < 64; b++) {
		assert_true(ones[b] > 1800);
		assert_true(ones[b] < 2300);
	}
}

/* Estimate of n distinct names "<tag>-<i>" (each added \p repeat times). */
static double hll_of(const char *tag, unsigned from, unsigned n, unsigned repeat, uint8_t *reg)
{
	memset(reg, 0, STATS_HLL_M);
	for (unsigned r = 0; r < repeat; r++) {
		for (unsigned i = from; i < from + n; i++) {
			char name[48];
			int l = snprintf(name, sizeof(name), "88.100.1/%s-%u", tag, i);
			stats_hll_add(reg, stats_hash(name, (size_t)l));
		}
	}
	return stats_hll_estimate(reg);
}

static void test_hll_accuracy(void **state)
{
	(void)state;
	uint8_t *reg = malloc(STATS_HLL_M);
	assert_non_null(reg);
	memset(reg, 0, STATS_HLL_M);
	assert_true(stats_hll_estimate(reg) < 0.5);
	/* small counts are (nearly) exact: linear counting territory */
	assert_int_equal((int)lround(hll_of("s", 0, 1, 3, reg)), 1);
	assert_int_equal((int)lround(hll_of("s", 0, 10, 2, reg)), 10);
	assert_true(fabs(hll_of("s", 0, 100, 1, reg) - 100) <= 1.0);
	/* over the whole range, well inside 3 standard errors (0.81 %) */
	static const unsigned ns[] = {1000, 5000, 20000, 50000, 200000, 1000000};
	for (size_t k = 0; k < sizeof(ns) / sizeof(ns[0]); k++) {
		double e = hll_of("r", 7, ns[k], 1, reg);
		double rel = fabs(e - ns[k]) / ns[k];
		print_message("hll: %u distinct -> %.0f (%.2f %%)\n", ns[k], e, 100 * rel);
		assert_true(rel < 0.025);
	}
	/* repeats do not count */
	double once = hll_of("d", 0, 30000, 1, reg);
	double thrice = hll_of("d", 0, 30000, 3, reg);
	assert_true(once == thrice);
	free(reg);
}

static void test_hll_merge(void **state)
{
	(void)state;
	uint8_t *a = malloc(STATS_HLL_M), *b = malloc(STATS_HLL_M), *u = malloc(STATS_HLL_M);
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(u);
	hll_of("m", 0, 30000, 1, a);     /* 0 .. 29999 */
	hll_of("m", 20000, 30000, 1, b); /* 20000 .. 49999 */
	hll_of("m", 0, 50000, 1, u);     /* the union */
	stats_hll_merge(a, b);
	assert_memory_equal(a, u, STATS_HLL_M); /* register-wise max is exactly the union */
	double e = stats_hll_estimate(a);
	assert_true(fabs(e - 50000) / 50000 < 0.025);
	free(a);
	free(b);
	free(u);
}

static void add_name(stats_toplist_t *t, const char *n, uint64_t by)
{
	stats_top_add(t, hash_of(n), (const uint8_t *)n, strlen(n), by);
}

static const stats_top_t *top_find(const stats_toplist_t *t, const char *n)
{
	for (uint32_t i = 0; i < t->n; i++) {
		if (t->e[i].len == strlen(n) && memcmp(t->e[i].name, n, t->e[i].len) == 0)
			return &t->e[i];
	}
	return NULL;
}

static void test_top_heavy_hitters(void **state)
{
	(void)state;
	stats_toplist_t t;
	assert_int_equal(stats_top_init(&t, 0), HDL_EINVAL);
	assert_int_equal(stats_top_init(&t, STATS_TOP_MAX + 1), HDL_EINVAL);
	assert_int_equal(stats_top_init(&t, 16), HDL_EOK);
	/* 5 heavy identifiers among 20000 one-off ones, interleaved */
	static const char *const heavy[] = {"88.100.1/H0", "88.100.1/H1", "88.100.1/H2",
	                                    "88.100.1/H3", "88.100.1/H4"};
	uint64_t want[5] = {0}, total = 0;
	for (unsigned i = 0; i < 20000; i++) {
		char n[32];
		snprintf(n, sizeof(n), "88.100.1/noise-%u", i);
		add_name(&t, n, 1);
		total++;
		for (unsigned h = 0; h < 5; h++) {
			if (i % 20 < 6 - h) { /* H0 6000 times, ..., H4 2000 times */
				add_name(&t, heavy[h], 1);
				want[h]++;
				total++;
			}
		}
	}
	/* too long to be listed: counted nowhere, no crash */
	char longname[STATS_NAME_MAX + 10];
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	add_name(&t, longname, 1);
	assert_int_equal(t.n, 16);
	for (unsigned h = 0; h < 5; h++) {
		const stats_top_t *e = top_find(&t, heavy[h]);
		assert_non_null(e);
		/* an overestimate by at most its error, and the error is within N / cap */
		assert_true(e->count >= want[h]);
		assert_true(e->count - e->error <= want[h]);
		assert_true(e->error <= total / 16);
	}
	stats_top_sort(&t);
	assert_true(t.e[0].len == strlen(heavy[0]) &&
	            memcmp(t.e[0].name, heavy[0], t.e[0].len) == 0);
	for (uint32_t i = 1; i < t.n; i++)
		assert_true(t.e[i - 1].count >= t.e[i].count);
	/* after all the replacements every entry is still found by its hash (index intact) */
	for (uint32_t i = 0; i < t.n; i++) {
		uint64_t before = t.e[i].count;
		char n[STATS_NAME_MAX + 1];
		memcpy(n, t.e[i].name, t.e[i].len);
		n[t.e[i].len] = '\0';
		add_name(&t, n, 1);
		assert_int_equal(t.n, 16);
		const stats_top_t *e = top_find(&t, n);
		assert_non_null(e);
		assert_true(e->count == before + 1);
	}
	stats_top_clear(&t);
	assert_int_equal(t.n, 0);
	add_name(&t, "88.100.1/again", 2);
	assert_int_equal(top_find(&t, "88.100.1/again")->count, 2);
	stats_top_free(&t);
}

static void test_top_merge(void **state)
{
	(void)state;
	stats_toplist_t a, b;
	assert_int_equal(stats_top_init(&a, 4), HDL_EOK);
	assert_int_equal(stats_top_init(&b, 4), HDL_EOK);
	add_name(&a, "88.100.1/X", 10);
	add_name(&a, "88.100.1/Y", 5);
	add_name(&b, "88.100.1/X", 7);
	add_name(&b, "88.100.1/Z", 20);
	assert_int_equal(stats_top_merge(&a, &b), HDL_EOK);
	assert_int_equal(a.n, 3);
	assert_int_equal(top_find(&a, "88.100.1/X")->count, 17);
	assert_int_equal(top_find(&a, "88.100.1/Z")->count, 20);
	assert_int_equal(top_find(&a, "88.100.1/Y")->count, 5);
	assert_int_equal(top_find(&a, "88.100.1/X")->error, 0); /* neither list was full */
	assert_true(a.e[0].count == 20);                        /* sorted */
	/* full lists: a missing identifier may have had up to the other list's smallest count */
	stats_top_clear(&a);
	stats_top_clear(&b);
	uint64_t truth[8];
	for (int i = 0; i < 4; i++) {
		char n[16];
		snprintf(n, sizeof(n), "88.100.1/a%d", i);
		add_name(&a, n, truth[i] = 10 + (uint64_t)i);
		snprintf(n, sizeof(n), "88.100.1/b%d", i);
		add_name(&b, n, truth[4 + i] = 100 * (uint64_t)(i + 1));
	}
	assert_int_equal(stats_top_merge(&a, &b), HDL_EOK);
	assert_int_equal(a.n, 4);
	for (int i = 1; i < 4; i++) {
		char n[16];
		snprintf(n, sizeof(n), "88.100.1/b%d", i);
		const stats_top_t *e = top_find(&a, n);
		assert_non_null(e);
		assert_int_equal(e->count, truth[4 + i] + 10); /* + a's smallest */
		assert_int_equal(e->error, 10);
	}
	for (uint32_t i = 0; i < a.n; i++) {
		uint64_t tr = truth[(a.e[i].name[9] == 'b' ? 4 : 0) + (a.e[i].name[10] - '0')];
		assert_true(a.e[i].count >= tr && a.e[i].count - a.e[i].error <= tr);
	}
	stats_top_free(&a);
	stats_top_free(&b);
}

/* ---- records --------------------------------------------------------------------------------- */

static void fill(stats_day_t *d, unsigned distinct)
{
	d->created = 3;
	d->modified = 0x100000001ull; /* both halves of a U64 */
	d->deleted = 1;
	assert_int_equal(stats_day_add_res(d, STATS_T_UDP, HDL_RC_SUCCESS, 1000), HDL_EOK);
	assert_int_equal(stats_day_add_res(d, STATS_T_REST, HDL_RC_HANDLE_NOT_FOUND, 7), HDL_EOK);
	assert_int_equal(stats_day_add_res(d, STATS_T_TCP, HDL_RC_SUCCESS, 5), HDL_EOK);
	assert_int_equal(stats_day_add_res(d, STATS_T_UDP, HDL_RC_SUCCESS, 1), HDL_EOK); /* adds */
	for (unsigned i = 0; i < distinct; i++) {
		char n[32];
		int l = snprintf(n, sizeof(n), "88.100.1/%u", i);
		uint64_t h = stats_hash(n, (size_t)l);
		stats_hll_add(d->hll, h);
		stats_top_add(&d->top, h, (const uint8_t *)n, (size_t)l, 1 + i % 3);
	}
	d->hll_used = distinct > 0;
	stats_top_sort(&d->top);
}

static void roundtrip(unsigned distinct)
{
	stats_day_t d, e;
	assert_int_equal(stats_day_init(&d, 20000, S("88.100.1"), 8), HDL_EOK);
	assert_int_equal(stats_day_init(&e, 0, S("x"), 8), HDL_EOK);
	fill(&d, distinct);
	size_t cap = stats_day_size(&d), len = 0;
	uint8_t *buf = malloc(cap);
	assert_non_null(buf);
	assert_int_equal(stats_day_encode(&d, buf, cap, &len), HDL_EOK);
	assert_true(len <= cap);
	if (distinct > 0 && distinct < 1000)
		assert_true(len < STATS_HLL_M); /* sparse */
	assert_int_equal(stats_day_encode(&d, buf, len - 1, &len), HDL_ESPACE);
	assert_int_equal(stats_day_encode(&d, buf, cap, &len), HDL_EOK);
	assert_int_equal(stats_day_decode(buf, len, &e), HDL_EOK);
	assert_int_equal(e.created, 3);
	assert_true(e.modified == 0x100000001ull);
	assert_int_equal(e.deleted, 1);
	assert_int_equal(e.n_res, 3);
	assert_int_equal(stats_day_resolutions(&e), 1013);
	assert_int_equal(e.res[0].transport, STATS_T_UDP);
	assert_int_equal(e.res[0].count, 1001);
	assert_int_equal(e.hll_used, distinct > 0);
	assert_memory_equal(e.hll, d.hll, STATS_HLL_M);
	assert_int_equal(e.top.n, d.top.n);
	for (uint32_t i = 0; i < e.top.n; i++) {
		assert_int_equal(e.top.e[i].count, d.top.e[i].count);
		assert_int_equal(e.top.e[i].hash, d.top.e[i].hash);
	}
	/* every truncation fails cleanly */
	for (size_t cut = 0; cut<len; cut += len> 4000 ? 97 : 1)
		assert_int_not_equal(stats_day_decode(buf, cut, &e), HDL_EOK);
	free(buf);
	stats_day_free(&d);
	stats_day_free(&e);
}

static void test_record_roundtrip(void **state)
{
	(void)state;
	roundtrip(0);
	roundtrip(50);    /* sparse registers */
	roundtrip(20000); /* dense registers */
}

static void test_record_strict(void **state)
{
	(void)state;
	stats_day_t d, e;
	assert_int_equal(stats_day_init(&d, 1, S("88.100.1"), 4), HDL_EOK);
	assert_int_equal(stats_day_init(&e, 1, S("88.100.1"), 4), HDL_EOK);
	fill(&d, 3);
	uint8_t buf[4096];
	size_t len;
	assert_int_equal(stats_day_encode(&d, buf, sizeof(buf), &len), HDL_EOK);
	uint8_t bad[4096];
	/* layout: 2 + 24 header, U16 n_res = 3 at 26, first pair at 28 */
	memcpy(bad, buf, len);
	bad[0] = 2;
	assert_int_equal(stats_day_decode(bad, len, &e), HDL_EVERSION);
	memcpy(bad, buf, len);
	bad[1] = 12;
	assert_int_equal(stats_day_decode(bad, len, &e), HDL_EMALF);
	memcpy(bad, buf, len);
	bad[28] = STATS_T_N; /* unknown transport */
	assert_int_equal(stats_day_decode(bad, len, &e), HDL_EMALF);
	memcpy(bad, buf, len);
	memcpy(bad + 28, buf + 41, 13); /* the pairs out of order */
	memcpy(bad + 41, buf + 28, 13);
	assert_int_equal(stats_day_decode(bad, len, &e), HDL_EMALF);
	memcpy(bad, buf, len);
	memset(bad + 33, 0, 8); /* a zero count */
	assert_int_equal(stats_day_decode(bad, len, &e), HDL_EMALF);
	memcpy(bad, buf, len);
	bad[26] = 0xff; /* n_res over STATS_RES_MAX */
	assert_int_equal(stats_day_decode(bad, len, &e), HDL_ELIMIT);
	/* HLL form byte at 28 + 3 x 13 = 67 (sparse, 3 registers) */
	assert_int_equal(buf[67], 1);
	memcpy(bad, buf, len);
	bad[67] = 9;
	assert_int_equal(stats_day_decode(bad, len, &e), HDL_EMALF);
	memcpy(bad, buf, len);
	bad[72] = STATS_HLL_MAXR + 1; /* the first register's value */
	assert_int_equal(stats_day_decode(bad, len, &e), HDL_EMALF);
	memcpy(bad, buf, len);
	bad[70] = bad[73];
	bad[71] = bad[74]; /* the first register's index equal to the second's: not increasing */
	assert_int_equal(stats_day_decode(bad, len, &e), HDL_EMALF);
	memcpy(bad, buf, len);
	bad[len] = 0;
	assert_int_equal(stats_day_decode(bad, len + 1, &e), HDL_ETRAILING);
	assert_int_equal(stats_day_decode(buf, len, &e), HDL_EOK);
	stats_day_free(&d);
	stats_day_free(&e);
}

static void test_record_limits(void **state)
{
	(void)state;
	stats_day_t d;
	assert_int_equal(stats_day_init(&d, 1, S(""), 4), HDL_EINVAL);
	char big[STATS_PREFIX_MAX + 2];
	memset(big, '1', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(stats_day_init(&d, 1, S(big), 4), HDL_EINVAL);
	assert_int_equal(stats_day_init(&d, 1, S("88.100.1"), 4), HDL_EOK);
	/* a peer cannot grow a record without bound: (transport, rcode) pairs are capped */
	uint32_t rc = 1;
	for (unsigned i = 0; i < STATS_RES_MAX; i++, rc++)
		assert_int_equal(stats_day_add_res(&d, STATS_T_UDP, rc, 1), HDL_EOK);
	assert_int_equal(stats_day_add_res(&d, STATS_T_UDP, rc, 1), HDL_ELIMIT);
	assert_int_equal(stats_day_add_res(&d, STATS_T_UDP, 1, 1), HDL_EOK);  /* existing pair */
	assert_int_equal(stats_day_add_res(&d, STATS_T_UDP, rc, 0), HDL_EOK); /* nothing to add */
	stats_day_free(&d);
}

static void test_keys_days(void **state)
{
	(void)state;
	uint8_t k[STATS_KEY_MAX];
	size_t n = stats_key(20426, S("88.100.1"), k);
	assert_int_equal(n, 12);
	uint32_t day;
	hdl_slice_t p;
	assert_int_equal(stats_key_parse((hdl_slice_t){k, (uint32_t)n}, &day, &p), HDL_EOK);
	assert_int_equal(day, 20426);
	assert_true(hdl_slice_eq(p, S("88.100.1")));
	assert_int_equal(stats_key_parse((hdl_slice_t){k, 4}, &day, &p), HDL_EMALF);
	assert_int_equal(stats_key(1, S(""), k), 0);
	/* keys of a later day sort after every key of an earlier one */
	uint8_t k2[STATS_KEY_MAX];
	size_t n2 = stats_key(20427, S("0"), k2);
	assert_true(memcmp(k, k2, n < n2 ? n : n2) < 0);

	char s[11];
	assert_string_equal(stats_day_str(0, s), "1970-01-01");
	assert_int_equal(stats_day_parse("2024-02-29", &day), HDL_EOK);
	assert_string_equal(stats_day_str(day, s), "2024-02-29");
	assert_int_equal(stats_day_parse("2023-02-29", &day), HDL_EINVAL);
	assert_int_equal(stats_day_parse("2026-13-01", &day), HDL_EINVAL);
	assert_int_equal(stats_day_parse("2026-1-01", &day), HDL_EINVAL);
	assert_int_equal(stats_day_parse("2026-01-01x", &day), HDL_EINVAL);
	assert_string_equal(stats_transport_name(STATS_T_REST), "rest");
	assert_int_equal(stats_transport_parse("tls"), STATS_T_TLS);
	assert_int_equal(stats_transport_parse("smtp"), -1);
}

/* ---- the node side: worker buffers, audit trail, flush --------------------------------------- */

typedef struct fix {
	char dir[64];
	store_t *s;
} fix_t;

static int setup(void **state)
{
	fix_t *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_stats.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	store_opts_t o = {.path = f->dir, .map_size = 8u << 20, .txlog = true};
	assert_int_equal(store_open(&o, &f->s), HDL_EOK);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fix_t *f = *state;
	store_close(f->s);
	rm_env(f->dir);
	free(f);
	return 0;
}

typedef struct found {
	stats_day_t recs[8];
	unsigned n;
} found_t;

static int found_cb(void *ctx, hdl_slice_t key, hdl_slice_t val)
{
	found_t *f = ctx;
	uint32_t day;
	hdl_slice_t prefix;
	assert_int_equal(stats_key_parse(key, &day, &prefix), HDL_EOK);
	assert_true(f->n < 8);
	stats_day_t *d = &f->recs[f->n++];
	assert_int_equal(stats_day_init(d, day, prefix, 64), HDL_EOK);
	assert_int_equal(stats_day_decode(val.p, val.len, d), HDL_EOK);
	return 0;
}

static void read_all(store_t *s, found_t *f)
{
	memset(f, 0, sizeof(*f));
	store_reader_t *r;
	assert_int_equal(store_reader_new(s, &r), HDL_EOK);
	assert_int_equal(store_reader_begin(r), HDL_EOK);
	assert_int_equal(store_stats_foreach(r, (hdl_slice_t){NULL, 0}, found_cb, f), HDL_EOK);
	store_reader_end(r);
	store_reader_free(r);
}

static void found_free(found_t *f)
{
	for (unsigned i = 0; i < f->n; i++)
		stats_day_free(&f->recs[i]);
}

static const stats_day_t *rec_of(const found_t *f, const char *prefix)
{
	for (unsigned i = 0; i < f->n; i++) {
		if (hdl_slice_eq((hdl_slice_t){f->recs[i].prefix, f->recs[i].prefix_len},
		                 S(prefix)))
			return &f->recs[i];
	}
	return NULL;
}

static uint64_t res_of(const stats_day_t *d, unsigned t, uint32_t rc)
{
	for (uint32_t i = 0; i < d->n_res; i++) {
		if (d->res[i].transport == t && d->res[i].rcode == rc)
			return d->res[i].count;
	}
	return 0;
}

static void note(stats_worker_t *w, unsigned t, const char *name, const char *prefix, uint32_t rc)
{
	stats_note(w, t, S(name), S(prefix), rc);
}

static stats_opts_t opts(void)
{
	stats_opts_t o = {.max_prefixes = 4,
	                  .top_entries = 8,
	                  .flush_interval_s = 1,
	                  .retention_days = 400,
	                  .audit_batch = 1000};
	return o;
}

static void test_node_resolutions(void **state)
{
	fix_t *f = *state;
	stats_opts_t o = opts();
	stats_node_t *n;
	o.flush_interval_s = 0;
	assert_int_equal(stats_node_new(f->s, &o, 2, &n), HDL_EINVAL);
	o = opts();
	assert_int_equal(stats_node_new(f->s, &o, 2, &n), HDL_EOK);
	stats_worker_t *w0 = stats_node_worker(n, 0), *w1 = stats_node_worker(n, 1);
	assert_null(stats_node_worker(n, 2));
	note(w0, STATS_T_UDP, "88.100.1/A", "88.100.1", HDL_RC_SUCCESS);
	note(w0, STATS_T_UDP, "88.100.1/A", "88.100.1", HDL_RC_SUCCESS);
	note(w1, STATS_T_TCP, "88.100.1/B", "88.100.1", HDL_RC_SUCCESS);
	note(w1, STATS_T_REST, "88.100.1/nope", "88.100.1", HDL_RC_HANDLE_NOT_FOUND);
	note(w0, STATS_T_UDP, "99.9/x", "", HDL_RC_SERVER_NOT_RESP); /* not homed: "-" */
	/* worker 0 hands its buffer over (a second later), worker 1 has not yet */
	stats_worker_tick(w0, 0);
	stats_worker_tick(w0, 5000);
	assert_int_equal(stats_flush(n, false), HDL_EOK);
	found_t fd;
	read_all(f->s, &fd);
	const stats_day_t *d = rec_of(&fd, "88.100.1");
	assert_non_null(d);
	assert_int_equal(res_of(d, STATS_T_UDP, HDL_RC_SUCCESS), 2);
	assert_int_equal(stats_day_resolutions(d), 2);
	assert_int_equal((int)lround(stats_hll_estimate(d->hll)), 1);
	assert_non_null(rec_of(&fd, STATS_OTHER));
	assert_int_equal(res_of(rec_of(&fd, STATS_OTHER), STATS_T_UDP, HDL_RC_SERVER_NOT_RESP), 1);
	found_free(&fd);
	/* the final flush takes what the workers hold; counts add to the stored records */
	note(w0, STATS_T_UDP, "88.100.1/C", "88.100.1", HDL_RC_VALUES_NOT_FOUND);
	assert_int_equal(stats_flush(n, true), HDL_EOK);
	read_all(f->s, &fd);
	d = rec_of(&fd, "88.100.1");
	assert_int_equal(stats_day_resolutions(d), 5);
	assert_int_equal(res_of(d, STATS_T_TCP, HDL_RC_SUCCESS), 1);
	assert_int_equal(res_of(d, STATS_T_REST, HDL_RC_HANDLE_NOT_FOUND), 1);
	/* unique: A, B and C exist (RC 1 or 200); "nope" does not count */
	assert_int_equal((int)lround(stats_hll_estimate(d->hll)), 3);
	assert_int_equal(d->top.n, 3);
	assert_true(d->top.e[0].count == 2 && memcmp(d->top.e[0].name, "88.100.1/A", 10) == 0);
	found_free(&fd);
	stats_info_t si;
	stats_get_info(n, &si);
	assert_int_equal(si.flushes, 2);
	assert_int_equal(si.flush_errors, 0);
	assert_true(si.records >= 3);
	stats_node_free(n);
}

static void test_node_prefix_limit(void **state)
{
	fix_t *f = *state;
	stats_opts_t o = opts();
	o.max_prefixes = 2;
	stats_node_t *n;
	assert_int_equal(stats_node_new(f->s, &o, 1, &n), HDL_EOK);
	stats_worker_t *w = stats_node_worker(n, 0);
	/* many homed prefixes: two by name, the rest under "-", counted as overflow */
	for (int i = 0; i < 50; i++) {
		char p[16], h[32];
		snprintf(p, sizeof(p), "88.%d", i);
		snprintf(h, sizeof(h), "88.%d/x", i);
		note(w, STATS_T_UDP, h, p, HDL_RC_SUCCESS);
	}
	assert_int_equal(stats_flush(n, true), HDL_EOK);
	found_t fd;
	read_all(f->s, &fd);
	assert_int_equal(fd.n, 3);
	assert_int_equal(stats_day_resolutions(rec_of(&fd, "88.0")), 1);
	assert_int_equal(stats_day_resolutions(rec_of(&fd, "88.1")), 1);
	assert_int_equal(stats_day_resolutions(rec_of(&fd, STATS_OTHER)), 48);
	found_free(&fd);
	stats_info_t si;
	stats_get_info(n, &si);
	assert_int_equal(si.overflow, 48);
	stats_node_free(n);
}

static void audit_entry(store_t *s, uint16_t op, const char *handle, uint32_t rc, uint32_t when)
{
	audit_rec_t r;
	memset(&r, 0, sizeof(r));
	r.time = when;
	r.op = op;
	r.transport = AUDIT_T_TCP;
	r.rcode = rc;
	r.handle = S(handle);
	r.count = 1;
	store_batch_t *b;
	assert_int_equal(store_batch_begin(s, &b), HDL_EOK);
	assert_int_equal(audit_write(b, &r), HDL_EOK);
	assert_int_equal(store_batch_commit(b), HDL_EOK);
}

static void test_node_registrations(void **state)
{
	fix_t *f = *state;
	stats_opts_t o = opts();
	o.audit_batch = 3; /* the backlog takes several flushes */
	stats_node_t *n;
	assert_int_equal(stats_node_new(f->s, &o, 1, &n), HDL_EOK);
	uint32_t now = (uint32_t)time(NULL);
	uint32_t yday = now - 86400;
	audit_entry(f->s, AUDIT_OP_CREATE, "88.100.1/a", HDL_RC_SUCCESS, yday);
	audit_entry(f->s, AUDIT_OP_CREATE, "88.100.1/b", HDL_RC_SUCCESS, now);
	audit_entry(f->s, AUDIT_OP_CREATE, "88.100.1/c", HDL_RC_HANDLE_ALREADY_EXISTS, now);
	audit_entry(f->s, AUDIT_OP_MODIFY, "88.100.1/b", HDL_RC_SUCCESS, now);
	audit_entry(f->s, AUDIT_OP_ADD, "88.100.1/b", HDL_RC_SUCCESS, now);
	audit_entry(f->s, AUDIT_OP_REMOVE, "88.100.1/b", HDL_RC_SUCCESS, now);
	audit_entry(f->s, AUDIT_OP_DELETE, "88.100.1/a", HDL_RC_SUCCESS, now);
	audit_entry(f->s, AUDIT_OP_HOME, "0.NA/88.200", HDL_RC_SUCCESS, now);
	audit_entry(f->s, AUDIT_OP_CREATE, "88.200/z", HDL_RC_SUCCESS, now);
	for (int i = 0; i < 4; i++)
		assert_int_equal(stats_flush(n, false), HDL_EOK);
	/* an entry committed later is counted by a later flush, once */
	audit_entry(f->s, AUDIT_OP_CREATE, "88.100.1/d", HDL_RC_SUCCESS, now);
	assert_int_equal(stats_flush(n, false), HDL_EOK);
	assert_int_equal(stats_flush(n, true), HDL_EOK);
	found_t fd;
	read_all(f->s, &fd);
	const stats_day_t *today = NULL, *before = NULL, *other = NULL;
	for (unsigned i = 0; i < fd.n; i++) {
		const stats_day_t *d = &fd.recs[i];
		if (hdl_slice_eq((hdl_slice_t){d->prefix, d->prefix_len}, S("88.200")))
			other = d;
		else if (d->day == now / 86400)
			today = d;
		else if (d->day == yday / 86400)
			before = d;
	}
	assert_non_null(today);
	assert_non_null(before);
	assert_non_null(other);
	assert_int_equal(before->created, 1);
	assert_int_equal(today->created, 2); /* b and d; c was refused */
	assert_int_equal(today->modified, 3);
	assert_int_equal(today->deleted, 1);
	assert_int_equal(other->created, 1);
	found_free(&fd);
	stats_info_t si;
	stats_get_info(n, &si);
	assert_int_equal(si.audit_entries, 8);
	stats_node_free(n);

	/* a new node on the same store goes on from the stored cursor: nothing counted twice */
	assert_int_equal(stats_node_new(f->s, &o, 1, &n), HDL_EOK);
	assert_int_equal(stats_flush(n, true), HDL_EOK);
	stats_get_info(n, &si);
	assert_int_equal(si.audit_entries, 0);
	read_all(f->s, &fd);
	for (unsigned i = 0; i < fd.n; i++) {
		if (fd.recs[i].day == now / 86400 && fd.recs[i].prefix_len == 8)
			assert_int_equal(fd.recs[i].created, 2);
	}
	found_free(&fd);
	stats_node_free(n);
}

static void test_node_retention(void **state)
{
	fix_t *f = *state;
	stats_opts_t o = opts();
	o.retention_days = 30;
	uint32_t today = (uint32_t)(time(NULL) / 86400);
	/* old and recent records written directly */
	store_batch_t *b;
	assert_int_equal(store_batch_begin(f->s, &b), HDL_EOK);
	static const uint32_t ages[] = {400, 31, 30, 1};
	for (unsigned i = 0; i < 4; i++) {
		stats_day_t d;
		uint8_t key[STATS_KEY_MAX], buf[256];
		size_t len;
		assert_int_equal(stats_day_init(&d, today - ages[i], S("88.100.1"), 4), HDL_EOK);
		d.created = ages[i];
		assert_int_equal(stats_day_encode(&d, buf, sizeof(buf), &len), HDL_EOK);
		size_t kl = stats_key(d.day, S("88.100.1"), key);
		assert_int_equal(store_batch_stats_put(b, (hdl_slice_t){key, (uint32_t)kl},
		                                       (hdl_slice_t){buf, (uint32_t)len}),
		                 HDL_EOK);
		stats_day_free(&d);
	}
	assert_int_equal(store_batch_commit(b), HDL_EOK);
	stats_node_t *n;
	assert_int_equal(stats_node_new(f->s, &o, 1, &n), HDL_EOK);
	assert_int_equal(stats_flush(n, true), HDL_EOK);
	found_t fd;
	read_all(f->s, &fd);
	assert_int_equal(fd.n, 2); /* 30 days old and younger are kept */
	for (unsigned i = 0; i < fd.n; i++)
		assert_true(fd.recs[i].created <= 30);
	found_free(&fd);
	stats_node_free(n);
}

static void test_node_corrupt_record(void **state)
{
	fix_t *f = *state;
	uint32_t today = (uint32_t)(time(NULL) / 86400);
	uint8_t key[STATS_KEY_MAX];
	size_t kl = stats_key(today, S("88.100.1"), key);
	store_batch_t *b;
	assert_int_equal(store_batch_begin(f->s, &b), HDL_EOK);
	assert_int_equal(store_batch_stats_put(b, (hdl_slice_t){key, (uint32_t)kl}, S("garbage")),
	                 HDL_EOK);
	assert_int_equal(store_batch_commit(b), HDL_EOK);
	stats_opts_t o = opts();
	stats_node_t *n;
	assert_int_equal(stats_node_new(f->s, &o, 1, &n), HDL_EOK);
	note(stats_node_worker(n, 0), STATS_T_UDP, "88.100.1/A", "88.100.1", HDL_RC_SUCCESS);
	/* the damaged record is replaced (and logged), the flush goes on */
	assert_int_equal(stats_flush(n, true), HDL_EOK);
	found_t fd;
	read_all(f->s, &fd);
	assert_int_equal(fd.n, 1);
	assert_int_equal(stats_day_resolutions(&fd.recs[0]), 1);
	found_free(&fd);
	stats_node_free(n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hash),
	    cmocka_unit_test(test_hll_accuracy),
	    cmocka_unit_test(test_hll_merge),
	    cmocka_unit_test(test_top_heavy_hitters),
	    cmocka_unit_test(test_top_merge),
	    cmocka_unit_test(test_record_roundtrip),
	    cmocka_unit_test(test_record_strict),
	    cmocka_unit_test(test_record_limits),
	    cmocka_unit_test(test_keys_days),
	    cmocka_unit_test_setup_teardown(test_node_resolutions, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_node_prefix_limit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_node_registrations, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_node_retention, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_node_corrupt_record, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
