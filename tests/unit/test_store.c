/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief cmocka tests of node/store: the LMDB store and the import fast-path parser.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <lmdb.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hdl/error.h"
#include "hdl/msg.h"
#include "node/store/jsonl.h"
#include "node/store/store.h"
#include "tests/unit/testutil.h"
#include "proto/json.h"

/* ---- fixtures ----------------------------------------------------------------------------- */

typedef struct fix {
	char dir[64];
	store_t *s;
} fix_t;

static store_t *open_store(fix_t *f, uint64_t map, bool txlog, bool case_sensitive)
{
	store_opts_t o = {.path = f->dir, .map_size = map, .txlog = txlog,
	                  .case_sensitive = case_sensitive};
	store_t *s = NULL;
	assert_int_equal(store_open(&o, &s), HDL_EOK);
	assert_non_null(s);
	return s;
}

static int setup(void **state)
{
	fix_t *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_store.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
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

static hdl_slice_t S(const char *s)
{
	return hdl_slice_str(s);
}

/** Encode a handle's values: one URL value with \p url plus a filler of \p pad bytes. */
static size_t enc_values(const char *url, size_t pad, uint8_t *out, size_t cap)
{
	static uint8_t filler[65536];
	memset(filler, 'x', sizeof(filler));
	hdl_value_t v[2];
	memset(v, 0, sizeof(v));
	v[0].index = 1;
	v[0].ttl = 86400;
	v[0].perms = HDL_PERM_DEFAULT;
	v[0].type = S("URL");
	v[0].data = S(url);
	v[1].index = 2;
	v[1].ttl = 86400;
	v[1].perms = HDL_PERM_DEFAULT;
	v[1].type = S("DESC");
	v[1].data.p = filler;
	v[1].data.len = (uint32_t)(pad < sizeof(filler) ? pad : sizeof(filler));
	size_t len = 0;
	assert_int_equal(hdl_values_encode(v, pad ? 2 : 1, out, cap, &len), HDL_EOK);
	return len;
}

static int put1(store_t *s, const char *handle, const char *url, bool overwrite)
{
	uint8_t buf[1024];
	size_t len = enc_values(url, 0, buf, sizeof(buf));
	store_batch_t *b = NULL;
	assert_int_equal(store_batch_begin(s, &b), HDL_EOK);
	hdl_slice_t v = {buf, (uint32_t)len};
	int ret = store_batch_put(b, S(handle), v, overwrite);
	assert_int_equal(store_batch_commit(b), HDL_EOK);
	return ret;
}

/** Look up \p handle and return the data of its index-1 value (static buffer), or NULL. */
static const char *get_url(store_reader_t *r, const char *handle, int *rc)
{
	static char out[512];
	static uint8_t abuf[8192];
	hdl_arena_t a;
	hdl_arena_init(&a, abuf, sizeof(abuf), 0);
	hdl_value_t *v = NULL;
	uint32_t n = 0;
	*rc = store_get_values(r, S(handle), &a, &v, &n);
	if (*rc != HDL_EOK)
		return NULL;
	assert_true(n >= 1);
	assert_int_equal(v[0].index, 1);
	snprintf(out, sizeof(out), "%.*s", (int)v[0].data.len, (const char *)v[0].data.p);
	hdl_arena_free(&a);
	return out;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_put_get_del(void **state)
{
	fix_t *f = *state;
	f->s = open_store(f, 0, false, false);
	store_reader_t *r = NULL;
	int rc;
	assert_int_equal(store_reader_new(f->s, &r), HDL_EOK);

	assert_int_equal(store_count(f->s), 0);
	assert_int_equal(put1(f->s, "88.100.1/PUMP-1", "https://a.example/1", true), HDL_EOK);
	assert_int_equal(put1(f->s, "88.100.1/PUMP-2", "https://a.example/2", true), HDL_EOK);
	assert_int_equal(store_count(f->s), 2);

	assert_int_equal(store_reader_begin(r), HDL_EOK);
	assert_string_equal(get_url(r, "88.100.1/PUMP-1", &rc), "https://a.example/1");
	assert_null(get_url(r, "88.100.1/PUMP-3", &rc));
	assert_int_equal(rc, HDL_ENOENT);
	hdl_slice_t raw;
	assert_int_equal(store_get(r, S("88.100.1/PUMP-2"), &raw), HDL_EOK);
	uint8_t buf[1024];
	size_t len = enc_values("https://a.example/2", 0, buf, sizeof(buf));
	assert_int_equal(raw.len, len);
	assert_memory_equal(raw.p, buf, len);
	/* invalid names are simply not found */
	assert_int_equal(store_get(r, S(""), &raw), HDL_ENOENT);
	store_reader_end(r);
	store_reader_end(r); /* idempotent */

	/* overwrite = false on an existing handle */
	assert_int_equal(put1(f->s, "88.100.1/PUMP-1", "https://b.example/1", false), HDL_EEXIST);
	assert_int_equal(put1(f->s, "88.100.1/PUMP-1", "https://b.example/1", true), HDL_EOK);

	store_batch_t *b = NULL;
	assert_int_equal(store_batch_begin(f->s, &b), HDL_EOK);
	assert_int_equal(store_batch_del(b, S("88.100.1/PUMP-2")), HDL_EOK);
	assert_int_equal(store_batch_del(b, S("88.100.1/PUMP-9")), HDL_ENOENT);
	assert_int_equal(store_batch_commit(b), HDL_EOK);

	assert_int_equal(store_reader_begin(r), HDL_EOK);
	assert_string_equal(get_url(r, "88.100.1/PUMP-1", &rc), "https://b.example/1");
	assert_null(get_url(r, "88.100.1/PUMP-2", &rc));
	assert_int_equal(rc, HDL_ENOENT);
	store_reader_end(r);
	assert_int_equal(store_count(f->s), 1);
	store_reader_free(r);
}

static void test_bad_input(void **state)
{
	fix_t *f = *state;
	f->s = open_store(f, 0, false, false);
	store_batch_t *b = NULL;
	uint8_t buf[1024];
	size_t len = enc_values("https://a.example/1", 0, buf, sizeof(buf));
	hdl_slice_t good = {buf, (uint32_t)len};
	assert_int_equal(store_batch_begin(f->s, &b), HDL_EOK);
	/* malformed value bytes */
	hdl_slice_t bad = {buf, (uint32_t)len - 1};
	assert_int_equal(store_batch_put(b, S("88.100.1/x"), bad, true), HDL_EMALF);
	uint8_t huge_count[4] = {0xff, 0xff, 0xff, 0xff};
	hdl_slice_t hc = {huge_count, 4};
	assert_int_equal(store_batch_put(b, S("88.100.1/x"), hc, true), HDL_EMALF);
	hdl_slice_t none = {NULL, 0};
	assert_int_equal(store_batch_put(b, S("88.100.1/x"), none, true), HDL_EMALF);
	/* names: empty, control character, longer than HDL_MAX_HANDLE_LEN (names longer than an
	 * LMDB key are stored: test_long_names) */
	assert_int_equal(store_batch_put(b, S(""), good, true), HDL_ENAME);
	assert_int_equal(store_batch_put(b, S("88.100.1/a\x01"), good, true), HDL_ENAME);
	char longname[HDL_MAX_HANDLE_LEN + 2];
	memset(longname, 'a', sizeof(longname) - 1);
	memcpy(longname, "88.100.1/", 9);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(store_batch_put(b, S(longname), good, true), HDL_ENAME);
	assert_int_equal(store_batch_home(b, S("88/100"), true), HDL_ENAME);
	/* the batch is still usable after rejected operations */
	assert_int_equal(store_batch_put(b, S("88.100.1/ok"), good, true), HDL_EOK);
	assert_int_equal(store_batch_meta_put(b, "site", S("sitebytes")), HDL_EOK);
	assert_int_equal(store_batch_commit(b), HDL_EOK);
	assert_int_equal(store_count(f->s), 1);
	assert_true(store_max_key(f->s) >= 511);

	store_reader_t *r = NULL;
	hdl_slice_t m;
	assert_int_equal(store_reader_new(f->s, &r), HDL_EOK);
	assert_int_equal(store_reader_begin(r), HDL_EOK);
	assert_int_equal(store_meta_get(r, "site", &m), HDL_EOK);
	assert_int_equal(m.len, 9);
	assert_memory_equal(m.p, "sitebytes", 9);
	assert_int_equal(store_meta_get(r, "nothing", &m), HDL_ENOENT);
	store_reader_free(r); /* ends the active snapshot too */

	/* a read-only store refuses batches; a missing one does not open */
	store_close(f->s);
	store_opts_t ro = {.path = f->dir, .read_only = true};
	assert_int_equal(store_open(&ro, &f->s), HDL_EOK);
	assert_int_equal(store_batch_begin(f->s, &b), HDL_EINVAL);
	assert_int_equal(store_count(f->s), 1);
	store_t *none_s = NULL;
	store_opts_t missing = {.path = "/tmp/definitely/not/here", .read_only = true};
	assert_int_not_equal(store_open(&missing, &none_s), HDL_EOK);
	assert_null(none_s);
}

static void test_case_folding(void **state)
{
	fix_t *f = *state;
	f->s = open_store(f, 0, false, false);
	store_reader_t *r = NULL;
	int rc;
	uint8_t key[600];
	size_t n = store_key(f->s, S("88.100.1/pump-abc"), key, sizeof(key));
	assert_int_equal(n, strlen("88.100.1/PUMP-ABC"));
	assert_memory_equal(key, "88.100.1/PUMP-ABC", n);
	assert_int_equal(store_key(f->s, S(""), key, sizeof(key)), 0);

	assert_int_equal(put1(f->s, "88.100.1/pump-abc", "https://x/1", true), HDL_EOK);
	assert_int_equal(store_reader_new(f->s, &r), HDL_EOK);
	assert_int_equal(store_reader_begin(r), HDL_EOK);
	assert_non_null(get_url(r, "88.100.1/PUMP-ABC", &rc));
	assert_non_null(get_url(r, "88.100.1/Pump-Abc", &rc));
	store_reader_end(r);
	store_reader_free(r);
	store_close(f->s);
	rm_env(f->dir);
	assert_non_null(mkdtemp(strcpy(f->dir, "/tmp/test_store.XXXXXX")));

	/* case-sensitive store: the suffix keeps its case, the prefix still folds */
	f->s = open_store(f, 0, false, true);
	assert_int_equal(put1(f->s, "20.500.abc/Pump", "https://x/2", true), HDL_EOK);
	assert_int_equal(store_reader_new(f->s, &r), HDL_EOK);
	assert_int_equal(store_reader_begin(r), HDL_EOK);
	assert_non_null(get_url(r, "20.500.ABC/Pump", &rc));
	assert_null(get_url(r, "20.500.abc/PUMP", &rc));
	assert_int_equal(rc, HDL_ENOENT);
	store_reader_end(r);
	store_reader_free(r);
}

static void test_homed(void **state)
{
	fix_t *f = *state;
	f->s = open_store(f, 0, false, false);
	store_reader_t *r = NULL;
	store_batch_t *b = NULL;
	assert_int_equal(store_reader_new(f->s, &r), HDL_EOK);
	assert_int_equal(store_reader_begin(r), HDL_EOK);
	assert_false(store_is_homed(r, S("88.100.1")));
	store_reader_end(r);

	assert_int_equal(store_batch_begin(f->s, &b), HDL_EOK);
	assert_int_equal(store_batch_home(b, S("88.100.1"), true), HDL_EOK);
	assert_int_equal(store_batch_home(b, S("20.500.Abc"), true), HDL_EOK);
	assert_int_equal(store_batch_commit(b), HDL_EOK);

	assert_int_equal(store_reader_begin(r), HDL_EOK);
	assert_true(store_is_homed(r, S("88.100.1")));
	assert_true(store_is_homed(r, S("20.500.ABC")));
	assert_true(store_is_homed(r, S("20.500.abc")));
	assert_false(store_is_homed(r, S("88.100")));
	assert_false(store_is_homed(r, S("88.100.10")));
	assert_false(store_is_homed(r, S("")));
	store_reader_end(r);

	assert_int_equal(store_batch_begin(f->s, &b), HDL_EOK);
	assert_int_equal(store_batch_home(b, S("88.100.1"), false), HDL_EOK);
	assert_int_equal(store_batch_home(b, S("88.100.7"), false), HDL_ENOENT);
	assert_int_equal(store_batch_commit(b), HDL_EOK);
	assert_int_equal(store_reader_begin(r), HDL_EOK);
	assert_false(store_is_homed(r, S("88.100.1")));
	assert_true(store_is_homed(r, S("20.500.abc")));
	store_reader_end(r);
	store_reader_free(r);
}

static void test_batch_abort_and_snapshots(void **state)
{
	fix_t *f = *state;
	f->s = open_store(f, 0, false, false);
	store_reader_t *r = NULL;
	store_batch_t *b = NULL;
	int rc;
	uint8_t buf[1024];
	size_t len = enc_values("https://a/1", 0, buf, sizeof(buf));
	hdl_slice_t v = {buf, (uint32_t)len};

	assert_int_equal(store_batch_begin(f->s, &b), HDL_EOK);
	assert_int_equal(store_batch_put(b, S("88.100.1/A"), v, true), HDL_EOK);
	assert_int_equal(store_batch_put(b, S("88.100.1/B"), v, true), HDL_EOK);
	store_batch_abort(b);
	assert_int_equal(store_count(f->s), 0);

	/* a snapshot taken before a commit does not see it; the renewed one does */
	assert_int_equal(store_reader_new(f->s, &r), HDL_EOK);
	assert_int_equal(store_reader_begin(r), HDL_EOK);
	assert_null(get_url(r, "88.100.1/A", &rc));
	assert_int_equal(store_batch_begin(f->s, &b), HDL_EOK);
	assert_int_equal(store_batch_put(b, S("88.100.1/A"), v, true), HDL_EOK);
	assert_int_equal(store_batch_commit(b), HDL_EOK);
	assert_null(get_url(r, "88.100.1/A", &rc));
	assert_int_equal(rc, HDL_ENOENT);
	store_reader_end(r);
	assert_int_equal(store_reader_begin(r), HDL_EOK);
	assert_string_equal(get_url(r, "88.100.1/A", &rc), "https://a/1");
	store_reader_end(r);

	/* many renew/reset cycles across commits */
	for (int i = 0; i < 50; i++) {
		char h[64], u[64];
		snprintf(h, sizeof(h), "88.100.1/N-%d", i);
		snprintf(u, sizeof(u), "https://n/%d", i);
		assert_int_equal(put1(f->s, h, u, true), HDL_EOK);
		assert_int_equal(store_reader_begin(r), HDL_EOK);
		assert_string_equal(get_url(r, h, &rc), u);
		store_reader_end(r);
	}
	/* a read without begin is refused */
	hdl_slice_t raw;
	assert_int_equal(store_get(r, S("88.100.1/A"), &raw), HDL_EINVAL);
	store_reader_free(r);
}

static void test_map_growth(void **state)
{
	fix_t *f = *state;
	f->s = open_store(f, 1u << 20, true, false); /* 1 MiB map, txlog doubles the data */
	uint64_t before = store_map_size(f->s);
	assert_true(before <= (2u << 20));
	store_reader_t *r = NULL;
	int rc;
	assert_int_equal(store_reader_new(f->s, &r), HDL_EOK); /* idle reader must not block growth */
	static uint8_t buf[8192];
	store_batch_t *b = NULL;
	assert_int_equal(store_batch_begin(f->s, &b), HDL_EOK);
	for (int i = 0; i < 3000; i++) {
		char h[64], u[64];
		snprintf(h, sizeof(h), "88.100.1/BIG-%05d", i);
		snprintf(u, sizeof(u), "https://big/%d", i);
		size_t len = enc_values(u, 1500, buf, sizeof(buf));
		hdl_slice_t v = {buf, (uint32_t)len};
		assert_int_equal(store_batch_put(b, S(h), v, true), HDL_EOK);
	}
	assert_int_equal(store_batch_commit(b), HDL_EOK);
	uint64_t after = store_map_size(f->s);
	assert_true(after > before);
	assert_true(after >= 8u << 20); /* 3000 x ~3 KiB with the txlog */
	assert_int_equal(store_count(f->s), 3000);
	assert_int_equal(store_txlog_last(f->s), 3000);
	assert_int_equal(store_reader_begin(r), HDL_EOK);
	assert_string_equal(get_url(r, "88.100.1/BIG-00000", &rc), "https://big/0");
	assert_string_equal(get_url(r, "88.100.1/BIG-02999", &rc), "https://big/2999");
	store_reader_end(r);
	store_reader_free(r);

	/* growth is bounded by map_size_max: then HDL_ESPACE and nothing is written */
	store_close(f->s);
	rm_env(f->dir);
	assert_non_null(mkdtemp(strcpy(f->dir, "/tmp/test_store.XXXXXX")));
	store_opts_t o = {.path = f->dir, .map_size = 1u << 20, .map_size_max = 2u << 20};
	assert_int_equal(store_open(&o, &f->s), HDL_EOK);
	assert_int_equal(store_batch_begin(f->s, &b), HDL_EOK);
	int ret = HDL_EOK;
	for (int i = 0; i < 3000 && ret == HDL_EOK; i++) {
		char h[64];
		snprintf(h, sizeof(h), "88.100.1/BIG-%05d", i);
		size_t len = enc_values("https://big", 1500, buf, sizeof(buf));
		hdl_slice_t v = {buf, (uint32_t)len};
		ret = store_batch_put(b, S(h), v, true);
	}
	assert_int_equal(ret, HDL_ESPACE);
	assert_int_equal(store_batch_commit(b), HDL_ESPACE);
	assert_int_equal(store_count(f->s), 0);
	/* the store still works for small batches */
	assert_int_equal(put1(f->s, "88.100.1/small", "https://s", true), HDL_EOK);
	assert_int_equal(store_count(f->s), 1);
}

typedef struct collect {
	int n;
	char keys[8][64];
} collect_t;

static int collect_cb(void *ctx, hdl_slice_t key, hdl_slice_t vals)
{
	collect_t *c = ctx;
	assert_true(vals.len >= 4);
	if (c->n < 8)
		snprintf(c->keys[c->n], sizeof(c->keys[0]), "%.*s", (int)key.len, (const char *)key.p);
	c->n++;
	return 0;
}

static int stop_cb(void *ctx, hdl_slice_t key, hdl_slice_t vals)
{
	(*(int *)ctx)++;
	return 1;
}

static void test_foreach(void **state)
{
	fix_t *f = *state;
	f->s = open_store(f, 0, false, false);
	const char *hs[] = {"88.100.1/b", "88.100.1/a", "88.100.2/c", "88.100.10/d", "0.NA/88.100.1"};
	for (size_t i = 0; i < 5; i++)
		assert_int_equal(put1(f->s, hs[i], "https://x", true), HDL_EOK);
	store_reader_t *r = NULL;
	assert_int_equal(store_reader_new(f->s, &r), HDL_EOK);
	assert_int_equal(store_reader_begin(r), HDL_EOK);
	collect_t c;
	memset(&c, 0, sizeof(c));
	assert_int_equal(store_foreach(r, S("88.100.1"), collect_cb, &c), HDL_EOK);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.keys[0], "88.100.1/A");
	assert_string_equal(c.keys[1], "88.100.1/B");
	memset(&c, 0, sizeof(c));
	assert_int_equal(store_foreach(r, S("88.100.10"), collect_cb, &c), HDL_EOK);
	assert_int_equal(c.n, 1);
	memset(&c, 0, sizeof(c));
	assert_int_equal(store_foreach(r, S("0.na"), collect_cb, &c), HDL_EOK);
	assert_int_equal(c.n, 1);
	assert_string_equal(c.keys[0], "0.NA/88.100.1");
	memset(&c, 0, sizeof(c));
	assert_int_equal(store_foreach(r, S("77"), collect_cb, &c), HDL_EOK);
	assert_int_equal(c.n, 0);
	memset(&c, 0, sizeof(c));
	assert_int_equal(store_foreach(r, S(""), collect_cb, &c), HDL_EOK);
	assert_int_equal(c.n, 5);
	int stops = 0;
	assert_int_equal(store_foreach(r, S(""), stop_cb, &stops), HDL_EOK);
	assert_int_equal(stops, 1);
	assert_int_equal(store_foreach(r, S("a/b"), collect_cb, &c), HDL_ENAME);
	store_reader_end(r);
	store_reader_free(r);
}

typedef struct txcollect {
	int n;
	store_txrec_t rec[8];
	char handles[8][64];
	uint8_t vals[8][256];
} txcollect_t;

static int tx_cb(void *ctx, const store_txrec_t *rec)
{
	txcollect_t *c = ctx;
	if (c->n < 8) {
		c->rec[c->n] = *rec;
		snprintf(c->handles[c->n], 64, "%.*s", (int)rec->handle.len, (const char *)rec->handle.p);
		if (rec->vals.len && rec->vals.len <= 256)
			memcpy(c->vals[c->n], rec->vals.p, rec->vals.len);
	}
	c->n++;
	return 0;
}

static void test_txlog(void **state)
{
	fix_t *f = *state;
	f->s = open_store(f, 0, true, false);
	uint8_t buf[1024];
	size_t len = enc_values("https://t/1", 0, buf, sizeof(buf));
	hdl_slice_t v = {buf, (uint32_t)len};
	store_batch_t *b = NULL;
	assert_int_equal(store_txlog_last(f->s), 0);
	assert_int_equal(store_batch_begin(f->s, &b), HDL_EOK);
	assert_int_equal(store_batch_put(b, S("88.100.1/Tx"), v, true), HDL_EOK);
	assert_int_equal(store_batch_home(b, S("88.100.1"), true), HDL_EOK);
	assert_int_equal(store_batch_del(b, S("88.100.1/tx")), HDL_EOK);
	assert_int_equal(store_batch_del(b, S("88.100.1/none")), HDL_ENOENT); /* not logged */
	assert_int_equal(store_batch_meta_put(b, "site", v), HDL_EOK);      /* not logged */
	assert_int_equal(store_batch_commit(b), HDL_EOK);
	assert_int_equal(store_txlog_last(f->s), 3);

	/* an aborted batch leaves no records; serials continue after a reopen */
	assert_int_equal(store_batch_begin(f->s, &b), HDL_EOK);
	assert_int_equal(store_batch_put(b, S("88.100.1/gone"), v, true), HDL_EOK);
	store_batch_abort(b);
	store_close(f->s);
	f->s = open_store(f, 0, true, false);
	assert_int_equal(store_batch_begin(f->s, &b), HDL_EOK);
	assert_int_equal(store_batch_home(b, S("88.100.1"), false), HDL_EOK);
	assert_int_equal(store_batch_commit(b), HDL_EOK);

	store_reader_t *r = NULL;
	txcollect_t *c = calloc(1, sizeof(*c));
	assert_non_null(c);
	assert_int_equal(store_reader_new(f->s, &r), HDL_EOK);
	assert_int_equal(store_reader_begin(r), HDL_EOK);
	assert_int_equal(store_txlog_foreach(r, 0, tx_cb, c), HDL_EOK);
	assert_int_equal(c->n, 4);
	assert_int_equal(c->rec[0].serial, 1);
	assert_int_equal(c->rec[0].op, STORE_OP_PUT);
	assert_string_equal(c->handles[0], "88.100.1/Tx");
	assert_int_equal(c->rec[0].vals.len, len);
	assert_memory_equal(c->vals[0], buf, len);
	assert_true(c->rec[0].time > 1600000000u);
	assert_int_equal(c->rec[1].serial, 2);
	assert_int_equal(c->rec[1].op, STORE_OP_HOME);
	assert_string_equal(c->handles[1], "88.100.1");
	assert_int_equal(c->rec[2].op, STORE_OP_DEL);
	assert_string_equal(c->handles[2], "88.100.1/tx");
	assert_int_equal(c->rec[2].vals.len, 0);
	assert_int_equal(c->rec[3].serial, 4);
	assert_int_equal(c->rec[3].op, STORE_OP_UNHOME);
	memset(c, 0, sizeof(*c));
	assert_int_equal(store_txlog_foreach(r, 3, tx_cb, c), HDL_EOK);
	assert_int_equal(c->n, 2);
	assert_int_equal(c->rec[0].serial, 3);
	store_reader_end(r);
	store_reader_free(r);
	free(c);

	/* a store without txlog writes none */
	store_close(f->s);
	f->s = open_store(f, 0, false, false);
	assert_int_equal(put1(f->s, "88.100.1/quiet", "https://q", true), HDL_EOK);
	assert_int_equal(store_txlog_last(f->s), 4);
}

static void raw_put(const char *dir, const char *dbname, const char *key, const void *val,
                    size_t len)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
	assert_int_equal(mdb_env_open(env, dir, MDB_NOTLS, 0640), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, dbname, 0, &dbi), 0);
	MDB_val k = {strlen(key), (void *)key}, d = {len, (void *)val};
	assert_int_equal(mdb_put(txn, dbi, &k, &d, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

static void test_corrupt_records(void **state)
{
	fix_t *f = *state;
	f->s = open_store(f, 0, false, false);
	assert_int_equal(put1(f->s, "88.100.1/GOOD", "https://g", true), HDL_EOK);
	store_close(f->s);
	f->s = NULL;

	uint8_t buf[1024];
	size_t len = enc_values("https://c", 0, buf, sizeof(buf));
	buf[len - 1] ^= 0; /* keep */
	/* truncated record, count over the limit, trailing garbage, a type length overrun */
	raw_put(f->dir, "handles", "88.100.1/TRUNC", buf, len - 3);
	static const uint8_t bigcount[] = {0x7f, 0xff, 0xff, 0xff};
	raw_put(f->dir, "handles", "88.100.1/COUNT", bigcount, sizeof(bigcount));
	uint8_t trail[1100];
	memcpy(trail, buf, len);
	trail[len] = 0xAA;
	raw_put(f->dir, "handles", "88.100.1/TRAIL", trail, len + 1);
	uint8_t overrun[1024];
	memcpy(overrun, buf, len);
	overrun[4 + 14] = 0x7f; /* type length high byte */
	raw_put(f->dir, "handles", "88.100.1/OVERRUN", overrun, len);
	raw_put(f->dir, "handles", "88.100.1/EMPTY", "", 0);

	f->s = open_store(f, 0, false, false);
	store_reader_t *r = NULL;
	int rc;
	hdl_slice_t raw;
	assert_int_equal(store_reader_new(f->s, &r), HDL_EOK);
	assert_int_equal(store_reader_begin(r), HDL_EOK);
	const char *bad[] = {"88.100.1/TRUNC", "88.100.1/COUNT", "88.100.1/TRAIL",
	                     "88.100.1/OVERRUN", "88.100.1/EMPTY"};
	for (size_t i = 0; i < 5; i++) {
		assert_int_equal(store_get(r, S(bad[i]), &raw), HDL_ESTORE);
		assert_null(raw.p);
		assert_null(get_url(r, bad[i], &rc));
		assert_int_equal(rc, HDL_ESTORE);
	}
	assert_string_equal(get_url(r, "88.100.1/GOOD", &rc), "https://g");
	collect_t c;
	memset(&c, 0, sizeof(c));
	assert_int_equal(store_foreach(r, S("88.100.1"), collect_cb, &c), HDL_EOK);
	assert_int_equal(c.n, 1); /* corrupted ones skipped */
	assert_string_equal(c.keys[0], "88.100.1/GOOD");
	store_reader_end(r);
	store_reader_free(r);
}

/* ---- names longer than an LMDB key ---------------------------------------------------------- */

/** A handle "<prefix>/<suffix>" whose suffix is \p len bytes cycling over \p alphabet, then \p tail. */
static char *long_name(const char *prefix, size_t len, const char *alphabet, const char *tail)
{
	size_t pl = strlen(prefix), al = strlen(alphabet), tl = strlen(tail);
	char *h = malloc(pl + 1 + len + tl + 1);
	assert_non_null(h);
	memcpy(h, prefix, pl);
	h[pl] = '/';
	for (size_t i = 0; i < len; i++)
		h[pl + 1 + i] = alphabet[i % al];
	memcpy(h + pl + 1 + len, tail, tl + 1);
	return h;
}

/** ASCII upper case copy (the normalized form of a 88.100.1/... name in a folding store). */
static char *upper_dup(const char *h)
{
	char *u = strdup(h);
	assert_non_null(u);
	for (char *p = u; *p; p++)
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 32);
	return u;
}

/** The LMDB key the store must use for normalized name \p n (see store.h "Long names"). */
static size_t expect_key(store_t *s, const char *n, uint8_t *out)
{
	size_t len = strlen(n), max = store_max_key(s);
	if (len <= max) {
		memcpy(out, n, len);
		return len;
	}
	size_t head = max - 33;
	unsigned int mdlen = 0;
	memcpy(out, n, head);
	out[head] = 0;
	assert_int_equal(EVP_Digest(n, len, out + head + 1, &mdlen, EVP_sha256(), NULL), 1);
	assert_int_equal(mdlen, 32);
	return max;
}

/** Read one raw record with plain LMDB; returns a malloc'd copy (NULL when absent). */
static uint8_t *raw_get(const char *dir, const char *dbname, const void *key, size_t klen,
                        size_t *len)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	uint8_t *out = NULL;
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
	assert_int_equal(mdb_env_open(env, dir, MDB_NOTLS | MDB_RDONLY, 0640), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, dbname, 0, &dbi), 0);
	MDB_val k = {klen, (void *)key}, d;
	int rc = mdb_get(txn, dbi, &k, &d);
	if (rc == 0) {
		out = malloc(d.mv_size + 1);
		assert_non_null(out);
		memcpy(out, d.mv_data, d.mv_size);
		*len = d.mv_size;
	} else {
		assert_int_equal(rc, MDB_NOTFOUND);
	}
	mdb_txn_abort(txn);
	mdb_env_close(env);
	return out;
}

static void raw_put_bin(const char *dir, const void *key, size_t klen, const void *val, size_t len)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
	assert_int_equal(mdb_env_open(env, dir, MDB_NOTLS, 0640), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "handles", 0, &dbi), 0);
	MDB_val k = {klen, (void *)key}, d = {len, (void *)val};
	assert_int_equal(mdb_put(txn, dbi, &k, &d, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

/** A long-name record as the store writes it: U32 0xFFFFFFFF, STR name, values. */
static size_t long_record(const char *name, const uint8_t *vals, size_t vlen, uint8_t *out)
{
	size_t nl = strlen(name);
	out[0] = out[1] = out[2] = out[3] = 0xff;
	out[4] = (uint8_t)(nl >> 24);
	out[5] = (uint8_t)(nl >> 16);
	out[6] = (uint8_t)(nl >> 8);
	out[7] = (uint8_t)nl;
	memcpy(out + 8, name, nl);
	memcpy(out + 8 + nl, vals, vlen);
	return 8 + nl + vlen;
}

typedef struct lcollect {
	int n;
	char *keys[16];
	uint8_t *vals[16];
	uint32_t vlen[16];
} lcollect_t;

static int lcollect_cb(void *ctx, hdl_slice_t key, hdl_slice_t vals)
{
	lcollect_t *c = ctx;
	assert_true(c->n < 16);
	c->keys[c->n] = strndup((const char *)key.p, key.len);
	assert_non_null(c->keys[c->n]);
	assert_int_equal(strlen(c->keys[c->n]), key.len); /* no NUL in a reported name */
	c->vals[c->n] = malloc(vals.len);
	assert_non_null(c->vals[c->n]);
	memcpy(c->vals[c->n], vals.p, vals.len);
	c->vlen[c->n] = vals.len;
	c->n++;
	return 0;
}

static void lcollect_free(lcollect_t *c)
{
	for (int i = 0; i < c->n; i++) {
		free(c->keys[i]);
		free(c->vals[i]);
	}
	memset(c, 0, sizeof(*c));
}

static int lcollect_has(const lcollect_t *c, const char *key)
{
	for (int i = 0; i < c->n; i++)
		if (strcmp(c->keys[i], key) == 0)
			return i;
	return -1;
}

static void test_long_names(void **state)
{
	fix_t *f = *state;
	f->s = open_store(f, 0, true, false);
	store_t *s = f->s;
	size_t head = store_max_key(s) - 33;
	int rc;
	/* 2000 and 600 bytes in all, mixed case (the suffix folds in this store) */
	char *h2000 = long_name("88.100.1", 2000 - 9, "pump-Abc-0123456789-", "");
	char *h600 = long_name("88.100.1", 600 - 9, "valve-xyz-", "");
	assert_int_equal(strlen(h2000), 2000);
	assert_int_equal(strlen(h600), 600);
	char *u2000 = upper_dup(h2000), *u600 = upper_dup(h600);
	/* two long names equal in their first `head` bytes (and far beyond), different after */
	char *ha = long_name("88.100.1", head + 300, "shared-", "-A");
	char *hb = long_name("88.100.1", head + 300, "shared-", "-B");
	/* a short name that is exactly the common head of the long keys */
	char *hshort = strndup(hb, head);
	assert_non_null(hshort);

	/* the normalized full name comes back from store_key */
	static uint8_t nk[HDL_MAX_HANDLE_LEN + 5];
	assert_int_equal(store_key(s, S(h2000), nk, sizeof(nk)), 2000);
	assert_memory_equal(nk, u2000, 2000);
	assert_int_equal(store_key(s, S(h2000), nk, 1999), 0); /* does not fit cap */

	assert_int_equal(put1(s, h2000, "https://long/2000", false), HDL_EOK);
	assert_int_equal(put1(s, h600, "https://long/600", false), HDL_EOK);
	assert_int_equal(put1(s, ha, "https://long/a", false), HDL_EOK);
	assert_int_equal(put1(s, hb, "https://long/b", false), HDL_EOK);
	assert_int_equal(put1(s, hshort, "https://short", false), HDL_EOK);
	assert_int_equal(store_count(s), 5);
	/* without overwrite: exists; with: replaced */
	assert_int_equal(put1(s, u600, "https://long/600-again", false), HDL_EEXIST);
	assert_int_equal(put1(s, h2000, "https://long/2000-v2", true), HDL_EOK);
	assert_int_equal(store_count(s), 5);

	store_reader_t *r = NULL;
	assert_int_equal(store_reader_new(s, &r), HDL_EOK);
	assert_int_equal(store_reader_begin(r), HDL_EOK);
	assert_string_equal(get_url(r, h2000, &rc), "https://long/2000-v2");
	assert_string_equal(get_url(r, u2000, &rc), "https://long/2000-v2"); /* case-folded */
	assert_string_equal(get_url(r, h600, &rc), "https://long/600");
	assert_string_equal(get_url(r, ha, &rc), "https://long/a");
	assert_string_equal(get_url(r, hb, &rc), "https://long/b");
	assert_string_equal(get_url(r, hshort, &rc), "https://short");
	/* store_get gives exactly the values part */
	uint8_t buf[1024];
	size_t len = enc_values("https://long/600", 0, buf, sizeof(buf));
	hdl_slice_t raw;
	assert_int_equal(store_get(r, S(h600), &raw), HDL_EOK);
	assert_int_equal(raw.len, len);
	assert_memory_equal(raw.p, buf, len);
	/* same head, another tail; one byte shorter / longer */
	char *hc = long_name("88.100.1", head + 300, "shared-", "-C");
	char *hcut = strndup(ha, strlen(ha) - 1);
	assert_null(get_url(r, hc, &rc));
	assert_int_equal(rc, HDL_ENOENT);
	assert_null(get_url(r, hcut, &rc));
	assert_int_equal(rc, HDL_ENOENT);
	assert_int_equal(store_get(r, S(hc), &raw), HDL_ENOENT);
	assert_null(raw.p);

	/* foreach reports the full names and the values part */
	lcollect_t c;
	memset(&c, 0, sizeof(c));
	assert_int_equal(store_foreach(r, S("88.100.1"), lcollect_cb, &c), HDL_EOK);
	assert_int_equal(c.n, 5);
	char *ua = upper_dup(ha), *ub = upper_dup(hb), *ushort = upper_dup(hshort);
	int i2000 = lcollect_has(&c, u2000), i600 = lcollect_has(&c, u600);
	assert_true(i2000 >= 0 && i600 >= 0);
	assert_true(lcollect_has(&c, ua) >= 0 && lcollect_has(&c, ub) >= 0);
	assert_true(lcollect_has(&c, ushort) >= 0);
	assert_int_equal(c.vlen[i600], len);
	assert_memory_equal(c.vals[i600], buf, len);
	len = enc_values("https://long/2000-v2", 0, buf, sizeof(buf));
	assert_int_equal(c.vlen[i2000], len);
	assert_memory_equal(c.vals[i2000], buf, len);
	lcollect_free(&c);
	assert_int_equal(store_foreach(r, S("88.100.10"), lcollect_cb, &c), HDL_EOK);
	assert_int_equal(c.n, 0);
	store_reader_end(r);

	/* delete: only the named one goes */
	store_batch_t *b = NULL;
	assert_int_equal(store_batch_begin(s, &b), HDL_EOK);
	assert_int_equal(store_batch_del(b, S(h600)), HDL_EOK);
	assert_int_equal(store_batch_del(b, S(h600)), HDL_ENOENT);
	assert_int_equal(store_batch_del(b, S(ha)), HDL_EOK);
	assert_int_equal(store_batch_commit(b), HDL_EOK);
	assert_int_equal(store_count(s), 3);
	assert_int_equal(store_reader_begin(r), HDL_EOK);
	assert_null(get_url(r, h600, &rc));
	assert_int_equal(rc, HDL_ENOENT);
	assert_null(get_url(r, ha, &rc));
	assert_int_equal(rc, HDL_ENOENT);
	assert_string_equal(get_url(r, hb, &rc), "https://long/b");
	assert_string_equal(get_url(r, hshort, &rc), "https://short");

	/* the txlog carries the full names (as given) and the values part */
	txcollect_t *tc = calloc(1, sizeof(*tc));
	assert_non_null(tc);
	assert_int_equal(store_txlog_foreach(r, 6, tx_cb, tc), HDL_EOK);
	assert_int_equal(tc->n, 3);
	assert_int_equal(tc->rec[0].op, STORE_OP_PUT);
	assert_int_equal(tc->rec[0].handle.len, 2000);
	assert_memory_equal(tc->rec[0].handle.p, h2000, 2000);
	assert_int_equal(tc->rec[0].vals.len, len);
	assert_memory_equal(tc->rec[0].vals.p, buf, len);
	assert_int_equal(tc->rec[1].op, STORE_OP_DEL);
	assert_int_equal(tc->rec[1].handle.len, 600);
	assert_memory_equal(tc->rec[1].handle.p, h600, 600);
	free(tc);
	store_reader_end(r);
	store_reader_free(r);

	/* the bytes on disk: short keys unchanged, long keys = head + 0x00 + SHA-256(name) */
	uint8_t key[600], lk[600], rec[4096];
	size_t klen = expect_key(s, ushort, key);
	size_t lklen = expect_key(s, u2000, lk);
	size_t maxkey = store_max_key(s);
	store_close(s);
	f->s = NULL;
	assert_int_equal(klen, head);
	size_t got = 0;
	uint8_t *v = raw_get(f->dir, "handles", key, klen, &got);
	assert_non_null(v);
	len = enc_values("https://short", 0, buf, sizeof(buf));
	assert_int_equal(got, len); /* a short-key record is exactly the values */
	assert_memory_equal(v, buf, len);
	free(v);
	assert_int_equal(lklen, maxkey);
	assert_int_equal(lk[head], 0);
	assert_memory_equal(lk, u2000, head);
	v = raw_get(f->dir, "handles", lk, lklen, &got);
	assert_non_null(v);
	len = enc_values("https://long/2000-v2", 0, buf, sizeof(buf));
	size_t rl = long_record(u2000, buf, len, rec);
	assert_int_equal(got, rl);
	assert_memory_equal(v, rec, rl);
	free(v);
	/* nothing is filed under the truncated name itself */
	assert_null(raw_get(f->dir, "handles", u2000, maxkey, &got));

	/* reopened, read-only: still there */
	store_opts_t ro = {.path = f->dir, .read_only = true};
	assert_int_equal(store_open(&ro, &f->s), HDL_EOK);
	assert_int_equal(store_reader_new(f->s, &r), HDL_EOK);
	assert_int_equal(store_reader_begin(r), HDL_EOK);
	assert_string_equal(get_url(r, h2000, &rc), "https://long/2000-v2");
	assert_string_equal(get_url(r, hb, &rc), "https://long/b");
	store_reader_end(r);
	store_reader_free(r);

	free(h2000);
	free(h600);
	free(u2000);
	free(u600);
	free(ha);
	free(hb);
	free(hc);
	free(hcut);
	free(hshort);
	free(ua);
	free(ub);
	free(ushort);
}

/** A prefix longer than the name part of a long key: foreach matches on the full names. */
static void test_long_prefix_foreach(void **state)
{
	fix_t *f = *state;
	f->s = open_store(f, 0, false, false);
	size_t head = store_max_key(f->s) - 33;
	/* a 490-byte naming authority (prefix_key allows up to max_key bytes) */
	char pfx[512], pfx2[512];
	memset(pfx, 0, sizeof(pfx));
	memcpy(pfx, "88.", 3);
	for (size_t i = 3; i < 490; i++)
		pfx[i] = (i % 4 == 0) ? '.' : (char)('0' + i % 10);
	assert_true(strlen(pfx) > head);
	memcpy(pfx2, pfx, sizeof(pfx));
	pfx2[489] = '9' == pfx2[489] ? '8' : '9'; /* differs after the head */
	char *h1 = long_name(pfx, 100, "x", "1");
	char *h2 = long_name(pfx, 100, "x", "2");
	char *h3 = long_name(pfx2, 100, "x", "3");
	assert_int_equal(put1(f->s, h1, "https://p/1", true), HDL_EOK);
	assert_int_equal(put1(f->s, h2, "https://p/2", true), HDL_EOK);
	assert_int_equal(put1(f->s, h3, "https://p/3", true), HDL_EOK);
	assert_int_equal(put1(f->s, "88.100.1/other", "https://o", true), HDL_EOK);
	store_reader_t *r = NULL;
	assert_int_equal(store_reader_new(f->s, &r), HDL_EOK);
	assert_int_equal(store_reader_begin(r), HDL_EOK);
	lcollect_t c;
	memset(&c, 0, sizeof(c));
	assert_int_equal(store_foreach(r, S(pfx), lcollect_cb, &c), HDL_EOK);
	assert_int_equal(c.n, 2);
	char *u1 = upper_dup(h1), *u2 = upper_dup(h2), *u3 = upper_dup(h3);
	assert_true(lcollect_has(&c, u1) >= 0 && lcollect_has(&c, u2) >= 0);
	lcollect_free(&c);
	assert_int_equal(store_foreach(r, S(pfx2), lcollect_cb, &c), HDL_EOK);
	assert_int_equal(c.n, 1);
	assert_string_equal(c.keys[0], u3);
	lcollect_free(&c);
	pfx[300] = '\0'; /* a shorter prefix: no handle has it as naming authority */
	assert_int_equal(store_foreach(r, S(pfx), lcollect_cb, &c), HDL_EOK);
	assert_int_equal(c.n, 0);
	assert_int_equal(store_foreach(r, S(""), lcollect_cb, &c), HDL_EOK);
	assert_int_equal(c.n, 4);
	lcollect_free(&c);
	store_reader_end(r);
	store_reader_free(r);
	free(h1);
	free(h2);
	free(h3);
	free(u1);
	free(u2);
	free(u3);
}

/** Map growth replays batches with long names. */
static void test_long_names_growth(void **state)
{
	fix_t *f = *state;
	f->s = open_store(f, 1u << 20, true, false);
	uint64_t before = store_map_size(f->s);
	static uint8_t buf[8192];
	store_batch_t *b = NULL;
	assert_int_equal(store_batch_begin(f->s, &b), HDL_EOK);
	for (int i = 0; i < 600; i++) {
		char tail[32], u[64];
		snprintf(tail, sizeof(tail), "-%04d", i);
		snprintf(u, sizeof(u), "https://grow/%d", i);
		char *h = long_name("88.100.1", 1200, "g", tail);
		size_t len = enc_values(u, 500, buf, sizeof(buf));
		hdl_slice_t v = {buf, (uint32_t)len};
		assert_int_equal(store_batch_put(b, S(h), v, true), HDL_EOK);
		free(h);
	}
	assert_int_equal(store_batch_commit(b), HDL_EOK);
	assert_true(store_map_size(f->s) > before);
	assert_int_equal(store_count(f->s), 600);
	store_reader_t *r = NULL;
	int rc;
	assert_int_equal(store_reader_new(f->s, &r), HDL_EOK);
	assert_int_equal(store_reader_begin(r), HDL_EOK);
	for (int i = 0; i < 600; i += 97) {
		char tail[32], u[64];
		snprintf(tail, sizeof(tail), "-%04d", i);
		snprintf(u, sizeof(u), "https://grow/%d", i);
		char *h = long_name("88.100.1", 1200, "g", tail);
		assert_string_equal(get_url(r, h, &rc), u);
		free(h);
	}
	store_reader_end(r);
	store_reader_free(r);
}

/** Long-name records with a bad header are corrupted: HDL_ESTORE, skipped by foreach. */
static void test_long_corrupt(void **state)
{
	fix_t *f = *state;
	f->s = open_store(f, 0, false, false);
	size_t head = store_max_key(f->s) - 33;
	char *good = long_name("88.100.1", 700, "GOOD-", "");
	assert_int_equal(put1(f->s, good, "https://good", true), HDL_EOK);
	const char *tails[] = {"NOMARK", "OVERRUN", "OTHERNAME", "BADVALS", "SHORTNAME", "CTRL",
	                       "EMPTY"};
	enum { NT = sizeof(tails) / sizeof(tails[0]) };
	char *names[NT];
	uint8_t keys[NT][600];
	size_t klens[NT];
	for (size_t i = 0; i < NT; i++) {
		names[i] = long_name("88.100.1", 700, "BAD-", tails[i]);
		klens[i] = expect_key(f->s, names[i], keys[i]); /* already upper case */
		assert_int_equal(klens[i], store_max_key(f->s));
	}
	store_close(f->s);
	f->s = NULL;

	uint8_t vals[1024], rec[4096];
	size_t vl = enc_values("https://bad", 0, vals, sizeof(vals));
	/* a plain record under a long key (no marker) */
	raw_put_bin(f->dir, keys[0], klens[0], vals, vl);
	/* the name length runs past the record */
	size_t rl = long_record(names[1], vals, vl, rec);
	rec[4] = 0x7f;
	raw_put_bin(f->dir, keys[1], klens[1], rec, rl);
	/* a well-formed header naming another handle (that does not hash to this key) */
	rl = long_record(good, vals, vl, rec);
	raw_put_bin(f->dir, keys[2], klens[2], rec, rl);
	/* a good header, truncated values */
	rl = long_record(names[3], vals, vl, rec);
	raw_put_bin(f->dir, keys[3], klens[3], rec, rl - 2);
	/* a name that would fit a short key */
	rl = long_record("88.100.1/SHORT", vals, vl, rec);
	raw_put_bin(f->dir, keys[4], klens[4], rec, rl);
	/* a control character in the stored name */
	rl = long_record(names[5], vals, vl, rec);
	rec[8 + 20] = 0x01;
	raw_put_bin(f->dir, keys[5], klens[5], rec, rl);
	/* an empty record */
	raw_put_bin(f->dir, keys[6], klens[6], "", 0);
	/* a long-name header under a short key: not a valid plain record */
	rl = long_record(good, vals, vl, rec);
	raw_put_bin(f->dir, "88.100.1/MARKED", 15, rec, rl);

	f->s = open_store(f, 0, false, false);
	store_reader_t *r = NULL;
	int rc;
	hdl_slice_t raw;
	assert_int_equal(store_reader_new(f->s, &r), HDL_EOK);
	assert_int_equal(store_reader_begin(r), HDL_EOK);
	for (size_t i = 0; i < NT; i++) {
		assert_int_equal(store_get(r, S(names[i]), &raw), HDL_ESTORE);
		assert_null(raw.p);
		assert_null(get_url(r, names[i], &rc));
		assert_int_equal(rc, HDL_ESTORE);
	}
	assert_int_equal(store_get(r, S("88.100.1/MARKED"), &raw), HDL_ESTORE);
	assert_string_equal(get_url(r, good, &rc), "https://good");
	lcollect_t c;
	memset(&c, 0, sizeof(c));
	assert_int_equal(store_foreach(r, S("88.100.1"), lcollect_cb, &c), HDL_EOK);
	assert_int_equal(c.n, 1); /* every corrupted one skipped */
	char *ugood = upper_dup(good);
	assert_string_equal(c.keys[0], ugood);
	lcollect_free(&c);
	store_reader_end(r);
	store_reader_free(r);

	/* a put repairs a corrupted slot; a delete removes one */
	assert_int_equal(put1(f->s, names[0], "https://fixed", true), HDL_EOK);
	store_batch_t *b = NULL;
	assert_int_equal(store_batch_begin(f->s, &b), HDL_EOK);
	assert_int_equal(store_batch_del(b, S(names[1])), HDL_EOK);
	assert_int_equal(store_batch_commit(b), HDL_EOK);
	assert_int_equal(store_reader_new(f->s, &r), HDL_EOK);
	assert_int_equal(store_reader_begin(r), HDL_EOK);
	assert_string_equal(get_url(r, names[0], &rc), "https://fixed");
	assert_null(get_url(r, names[1], &rc));
	assert_int_equal(rc, HDL_ENOENT);
	store_reader_end(r);
	store_reader_free(r);
	(void)head;
	for (size_t i = 0; i < NT; i++)
		free(names[i]);
	free(good);
	free(ugood);
}

/* ---- concurrency: readers in threads while the writer grows the map ---------------------- */

typedef struct rthread {
	store_t *s;
	atomic_int *stop;
	long reads;
	int errors;
} rthread_t;

static void *reader_main(void *arg)
{
	rthread_t *t = arg;
	store_reader_t *r = NULL;
	if (store_reader_new(t->s, &r) != HDL_EOK) {
		t->errors++;
		return NULL;
	}
	while (!atomic_load(t->stop)) {
		if (store_reader_begin(r) != HDL_EOK) {
			t->errors++;
			break;
		}
		hdl_slice_t raw;
		int rc = store_get(r, hdl_slice_str("88.100.1/ANCHOR"), &raw);
		/* touch every byte while the snapshot is active */
		unsigned sum = 0;
		if (rc == HDL_EOK)
			for (uint32_t i = 0; i < raw.len; i++)
				sum += raw.p[i];
		else
			t->errors++;
		(void)sum;
		store_reader_end(r);
		t->reads++;
	}
	store_reader_free(r);
	return NULL;
}

static void test_concurrent_growth(void **state)
{
	fix_t *f = *state;
	f->s = open_store(f, 1u << 20, false, false);
	assert_int_equal(put1(f->s, "88.100.1/ANCHOR", "https://anchor", true), HDL_EOK);
	atomic_int stop;
	atomic_init(&stop, 0);
	rthread_t t[2];
	pthread_t th[2];
	for (int i = 0; i < 2; i++) {
		t[i] = (rthread_t){.s = f->s, .stop = &stop};
		assert_int_equal(pthread_create(&th[i], NULL, reader_main, &t[i]), 0);
	}
	static uint8_t buf[8192];
	uint64_t before = store_map_size(f->s);
	for (int batch = 0; batch < 8; batch++) {
		store_batch_t *b = NULL;
		assert_int_equal(store_batch_begin(f->s, &b), HDL_EOK);
		for (int i = 0; i < 400; i++) {
			char h[64];
			snprintf(h, sizeof(h), "88.100.1/C-%d-%d", batch, i);
			size_t len = enc_values("https://c", 2000, buf, sizeof(buf));
			hdl_slice_t v = {buf, (uint32_t)len};
			assert_int_equal(store_batch_put(b, S(h), v, true), HDL_EOK);
		}
		assert_int_equal(store_batch_commit(b), HDL_EOK);
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(t[i].errors, 0);
		assert_true(t[i].reads > 0);
	}
	assert_true(store_map_size(f->s) > before);
	assert_int_equal(store_count(f->s), 1 + 8 * 400);
}

/** A thread holding a snapshot cannot let the map grow under itself: ESPACE, no deadlock. */
static void test_growth_refused_with_own_snapshot(void **state)
{
	fix_t *f = *state;
	f->s = open_store(f, 1u << 20, false, false);
	store_reader_t *r = NULL;
	assert_int_equal(store_reader_new(f->s, &r), HDL_EOK);
	assert_int_equal(store_reader_begin(r), HDL_EOK);
	static uint8_t buf[8192];
	store_batch_t *b = NULL;
	assert_int_equal(store_batch_begin(f->s, &b), HDL_EOK);
	int ret = HDL_EOK;
	for (int i = 0; i < 2000 && ret == HDL_EOK; i++) {
		char h[64];
		snprintf(h, sizeof(h), "88.100.1/S-%d", i);
		size_t len = enc_values("https://s", 2000, buf, sizeof(buf));
		hdl_slice_t v = {buf, (uint32_t)len};
		ret = store_batch_put(b, S(h), v, true);
	}
	assert_int_equal(ret, HDL_ESPACE);
	assert_int_equal(store_batch_commit(b), HDL_ESPACE);
	store_reader_end(r);
	store_reader_free(r);
}

/** Fork a process that opens its own environment on \p dir and writes \p n ~2 KiB records. */
static void child_grow(const char *dir, const char *tag, int n)
{
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* child: its own environment handle, never the parent's */
		static uint8_t buf[8192];
		store_t *cs = NULL;
		store_opts_t o = {.path = dir, .map_size = 1u << 20};
		if (store_open(&o, &cs) != HDL_EOK)
			_exit(1);
		store_batch_t *b = NULL;
		if (store_batch_begin(cs, &b) != HDL_EOK)
			_exit(2);
		for (int i = 0; i < n; i++) {
			char h[64];
			snprintf(h, sizeof(h), "88.100.1/%s-%d", tag, i);
			size_t len = enc_values("https://child", 2000, buf, sizeof(buf));
			hdl_slice_t v = {buf, (uint32_t)len};
			if (store_batch_put(b, hdl_slice_str(h), v, true) != HDL_EOK)
				_exit(3);
		}
		if (store_batch_commit(b) != HDL_EOK)
			_exit(4);
		store_close(cs);
		_exit(0);
	}
	int st = 0;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

/** Another process grows the map (e.g. `idnode import` next to the node): this one adopts it. */
static void test_other_process_growth(void **state)
{
	fix_t *f = *state;
	f->s = open_store(f, 1u << 20, false, false);
	assert_int_equal(put1(f->s, "88.100.1/ANCHOR", "https://anchor", true), HDL_EOK);
	store_reader_t *r = NULL;
	int rc;
	assert_int_equal(store_reader_new(f->s, &r), HDL_EOK);
	assert_int_equal(store_reader_begin(r), HDL_EOK);
	assert_string_equal(get_url(r, "88.100.1/ANCHOR", &rc), "https://anchor");
	store_reader_end(r);
	uint64_t m0 = store_map_size(f->s);

	/* 1: the short txn of store_count meets MDB_MAP_RESIZED */
	child_grow(f->dir, "ONE", 3000);
	assert_int_equal(store_count(f->s), 3001);
	uint64_t m1 = store_map_size(f->s);
	assert_true(m1 > m0);

	/* 2: a worker's reader renew meets it */
	child_grow(f->dir, "TWO", 6000);
	assert_int_equal(store_reader_begin(r), HDL_EOK);
	assert_string_equal(get_url(r, "88.100.1/TWO-5999", &rc), "https://child");
	assert_string_equal(get_url(r, "88.100.1/ONE-0", &rc), "https://child");
	assert_string_equal(get_url(r, "88.100.1/ANCHOR", &rc), "https://anchor");
	store_reader_end(r);
	assert_true(store_map_size(f->s) > m1);

	/* 3: a batch meets it */
	child_grow(f->dir, "THREE", 12000);
	assert_int_equal(put1(f->s, "88.100.1/AFTER", "https://after", true), HDL_EOK);
	assert_int_equal(store_count(f->s), 1 + 3000 + 6000 + 12000 + 1);
	store_reader_free(r);
}

/* ---- import fast path vs jansson + hdl_json_to_values ------------------------------------- */

/** Encode the values of one line both ways; the fast path may decline (then nothing to compare). */
static int compare_paths(const char *line, bool expect_fast)
{
	static uint8_t abuf[65536], bbuf[65536];
	static uint8_t e1[262144], e2[262144];
	hdl_arena_t a, b;
	hdl_arena_init(&a, abuf, sizeof(abuf), 16u << 20);
	hdl_arena_init(&b, bbuf, sizeof(bbuf), 16u << 20);
	hdl_slice_t h1;
	hdl_value_t *v1 = NULL, *v2 = NULL;
	uint32_t n1 = 0, n2 = 0;
	int frc = store_jsonl_fast((const uint8_t *)line, strlen(line), &a, &h1, &v1, &n1);
	if (expect_fast)
		assert_int_equal(frc, HDL_EOK);
	json_error_t jerr;
	json_t *root = json_loads(line, 0, &jerr);
	int src = root ? HDL_EOK : HDL_EJSON;
	char err[256];
	if (root) {
		json_t *jh = json_object_get(root, "handle");
		json_t *jv = json_object_get(root, "values");
		if (!json_is_string(jh) || !json_is_array(jv))
			src = HDL_EJSON;
		else
			src = hdl_json_to_values(jv, &b, &v2, &n2, err, sizeof(err));
		if (frc == HDL_EOK && src == HDL_EOK) {
			assert_int_equal(h1.len, json_string_length(jh));
			assert_memory_equal(h1.p, json_string_value(jh), h1.len);
		}
	}
	if (frc == HDL_EOK) {
		/* whatever the fast path accepts the general parser accepts, with the same bytes */
		assert_int_equal(src, HDL_EOK);
		size_t l1 = 0, l2 = 0;
		assert_int_equal(hdl_values_encode(v1, n1, e1, sizeof(e1), &l1), HDL_EOK);
		assert_int_equal(hdl_values_encode(v2, n2, e2, sizeof(e2), &l2), HDL_EOK);
		assert_int_equal(l1, l2);
		assert_memory_equal(e1, e2, l1);
	} else {
		assert_int_equal(frc, HDL_EAGAIN);
	}
	json_decref(root);
	hdl_arena_free(&a);
	hdl_arena_free(&b);
	return frc;
}

static void test_jsonl_fast_path(void **state)
{
	(void)state;
	/* the shapes gen and export write */
	compare_paths("{\"handle\":\"88.100.1/PUMP-2024-000123\",\"values\":["
	              "{\"index\":1,\"type\":\"URL\",\"data\":{\"format\":\"string\",\"value\":"
	              "\"https://id.zjfluid.cn/p/PUMP-2024-000123\"},\"ttl\":86400},"
	              "{\"index\":6,\"type\":\"MANUFACTURER\",\"data\":{\"format\":\"string\","
	              "\"value\":\"广州珠江流体设备有限公司\"},\"ttl\":3600,"
	              "\"timestamp\":\"2024-03-12T08:00:00Z\",\"permissions\":\"1100\"},"
	              "{\"index\":100,\"type\":\"HS_ADMIN\",\"data\":{\"format\":\"admin\",\"value\":"
	              "{\"handle\":\"0.NA/88.100.1\",\"index\":300,\"permissions\":\"011111111111\"}},"
	              "\"ttl\":86400}]}",
	              true);
	compare_paths(" { \"values\" : [ { \"type\" : \"EMAIL\" , \"index\" : 7 , \"data\" : "
	              "\"a@b.cn\" , \"permissions\" : \"*\" , \"timestamp\" : 1700000000 } ] ,"
	              " \"handle\" : \"88.100.1/X\" } \r",
	              true);
	compare_paths("{\"handle\":\"88.100.1/E\",\"values\":[]}", true);
	compare_paths("{\"handle\":\"88.100.1/A\",\"values\":[{\"index\":100,\"type\":\"HS_ADMIN\","
	              "\"data\":{\"format\":\"admin\",\"value\":{\"handle\":\"0.NA/88\",\"index\":300,"
	              "\"permissions\":\"*\"}}},{\"index\":2,\"type\":\"X\",\"data\":\"y\","
	              "\"permissions\":\"10\"}]}",
	              true);
	/* shapes it leaves to the general parser (which may accept or reject them) */
	const char *decline[] = {
		"{\"handle\":\"88.100.1/\\u0041\",\"values\":[]}",
		"{\"handle\":\"88.100.1/A\",\"values\":[{\"index\":1,\"type\":\"URL\",\"data\":\"a\\\"b\"}]}",
		"{\"handle\":\"88.100.1/A\",\"values\":[{\"index\":-1,\"type\":\"URL\",\"data\":\"x\"}]}",
		"{\"handle\":\"88.100.1/A\",\"values\":[{\"index\":1.5,\"type\":\"URL\",\"data\":\"x\"}]}",
		"{\"handle\":\"88.100.1/A\",\"values\":[{\"index\":01,\"type\":\"URL\",\"data\":\"x\"}]}",
		"{\"handle\":\"88.100.1/A\",\"values\":[{\"index\":4294967296,\"type\":\"U\",\"data\":\"x\"}]}",
		"{\"handle\":\"88.100.1/A\",\"values\":[{\"index\":1,\"type\":\"URL\",\"data\":{\"format\":"
		"\"base64\",\"value\":\"AAEC\"}}]}",
		"{\"handle\":\"88.100.1/A\",\"values\":[{\"index\":1,\"type\":\"URL\",\"data\":{\"value\":\"x\","
		"\"format\":\"string\"}}]}",
		"{\"handle\":\"88.100.1/A\",\"values\":[{\"index\":1,\"type\":\"URL\",\"data\":\"x\","
		"\"references\":[{\"handle\":\"a/b\",\"index\":1}]}]}",
		"{\"handle\":\"88.100.1/A\",\"values\":[{\"index\":1,\"type\":\"URL\",\"data\":\"x\","
		"\"ttl\":\"2030-01-01T00:00:00Z\"}]}",
		"{\"handle\":\"88.100.1/A\",\"values\":[{\"index\":1,\"type\":\"URL\"}]}",
		"{\"handle\":\"88.100.1/A\",\"values\":[{\"index\":1,\"index\":2,\"type\":\"U\",\"data\":\"x\"}]}",
		"{\"handle\":\"88.100.1/A\",\"values\":[{\"index\":1,\"type\":\"U\",\"data\":\"x\",\"extra\":1}]}",
		"{\"handle\":\"88.100.1/A\",\"values\":[{\"index\":1,\"type\":\"U\",\"data\":\"x\"}],\"more\":1}",
		"{\"handle\":\"88.100.1/A\",\"values\":[{\"index\":1,\"type\":\"U\",\"data\":\"x\"},]}",
		"{\"handle\":\"88.100.1/A\",\"values\":[{\"index\":1,\"type\":\"U\",\"data\":\"x\"}]} x",
		"{\"handle\":\"88.100.1/A\",\"values\":[{\"index\":1,\"type\":\"U\",\"data\":\"\xff\"}]}",
		"{\"handle\":\"88.100.1/A\",\"values\":[{\"index\":1,\"type\":\"U\",\"data\":\"x\t\"}]}",
		"{\"handle\":\"88.100.1/A\",\"values\":[{\"index\":1,\"type\":\"U\",\"data\":\"x\"}",
		"{\"handle\":\"88.100.1/A\"}",
		"[1,2,3]",
		"",
		"{\"handle\":\"88.100.1/A\",\"values\":[{\"index\":1,\"type\":\"U\",\"data\":\"x\","
		"\"timestamp\":\"not a time\"}]}",
		"{\"handle\":\"88.100.1/A\",\"values\":[{\"index\":1,\"type\":\"U\",\"data\":\"x\","
		"\"permissions\":null}]}",
	};
	for (size_t i = 0; i < sizeof(decline) / sizeof(decline[0]); i++) {
		int frc = compare_paths(decline[i], false);
		if (frc != HDL_EAGAIN)
			fail_msg("fast path accepted case %zu: %s", i, decline[i]);
	}

	/* every line of the demo data set */
	char path[512];
	snprintf(path, sizeof(path), "%s/seeds/demo.jsonl", HDL_SOURCE_DIR);
	FILE *fp = fopen(path, "r");
	assert_non_null(fp);
	char *line = NULL;
	size_t cap = 0;
	ssize_t got;
	int lines = 0, fast = 0;
	while ((got = getline(&line, &cap, fp)) > 0) {
		if (line[got - 1] == '\n')
			line[got - 1] = '\0';
		if (line[0] == '\0')
			continue;
		lines++;
		if (compare_paths(line, false) == HDL_EOK)
			fast++;
	}
	free(line);
	fclose(fp);
	assert_true(lines >= 200);
	assert_true(fast >= lines * 9 / 10); /* nearly all lines take the fast path */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_put_get_del, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
		cmocka_unit_test_setup_teardown(test_case_folding, setup, teardown),
		cmocka_unit_test_setup_teardown(test_homed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_abort_and_snapshots, setup, teardown),
		cmocka_unit_test_setup_teardown(test_map_growth, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreach, setup, teardown),
		cmocka_unit_test_setup_teardown(test_txlog, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_prefix_foreach, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_names_growth, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_corrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_growth, setup, teardown),
		cmocka_unit_test_setup_teardown(test_growth_refused_with_own_snapshot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_process_growth, setup, teardown),
		cmocka_unit_test(test_jsonl_fast_path),
	};
	return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
