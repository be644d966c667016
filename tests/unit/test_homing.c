/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief cmocka tests of the homed-prefix sources and the partial-import marker: the record
 *        codecs (node/store/homing.c), store_batch_home_src / _sync, store_prefixes_foreach,
 *        records written by earlier versions, meta deletion and replay after map growth. (A
 *        full disk: tests/integration/test_startup.py with tests/integration/diskfull_shim.c.)
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hdl/error.h"
#include "hdl/msg.h"
#include "node/store/homing.h"
#include "node/store/store.h"

typedef struct hfix {
	char dir[64];
	store_t *s;
	store_reader_t *r;
} hfix_t;

static int hsetup(void **state)
{
	hfix_t *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_homing.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	*state = f;
	return 0;
}

static int hteardown(void **state)
{
	hfix_t *f = *state;
	char cmd[128];
	store_reader_free(f->r);
	store_close(f->s);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void hopen(hfix_t *f, uint64_t map, bool txlog)
{
	store_opts_t o = {.path = f->dir, .map_size = map, .txlog = txlog};
	assert_int_equal(store_open(&o, &f->s), HDL_EOK);
	assert_int_equal(store_reader_new(f->s, &f->r), HDL_EOK);
}

static hdl_slice_t P(const char *s)
{
	return hdl_slice_str(s);
}

/** Sources of \p prefix (-1: not homed), read through store_prefixes_foreach(). */
typedef struct lookup {
	const char *want;
	long sources;
	uint32_t since;
	unsigned n;
} lookup_t;

static int lookup_cb(void *ctx, hdl_slice_t prefix, const store_home_rec_t *rec)
{
	lookup_t *l = ctx;
	l->n++;
	if (prefix.len == strlen(l->want) && memcmp(prefix.p, l->want, prefix.len) == 0) {
		l->sources = rec->sources;
		l->since = rec->since;
	}
	return 0;
}

static long sources_of(hfix_t *f, const char *folded, unsigned *total)
{
	lookup_t l = {folded, -1, 0, 0};
	assert_int_equal(store_reader_begin(f->r), HDL_EOK);
	assert_int_equal(store_prefixes_foreach(f->r, lookup_cb, &l), HDL_EOK);
	bool homed = store_is_homed(f->r, P(folded));
	store_reader_end(f->r);
	assert_int_equal(homed, l.sources >= 0);
	if (total)
		*total = l.n;
	return l.sources;
}

/* ---- codecs ---- */

static void test_codecs(void **state)
{
	uint8_t buf[64];
	store_home_rec_t hr = {STORE_HOME_CONFIG | STORE_HOME_IMPORT, 1700000000u}, back;
	assert_int_equal(store_home_rec_encode(&hr, buf), STORE_HOME_REC_LEN);
	assert_int_equal(store_home_rec_decode(buf, STORE_HOME_REC_LEN, &back), HDL_EOK);
	assert_int_equal(back.sources, hr.sources);
	assert_int_equal(back.since, hr.since);
	/* earlier versions: U32 0 = homed, source unknown */
	static const uint8_t legacy[4] = {0, 0, 0, 0};
	assert_int_equal(store_home_rec_decode(legacy, 4, &back), HDL_EOK);
	assert_int_equal(back.sources, 0);
	static const uint8_t legacy_bits[4] = {0, 0, 0, 1};
	assert_int_equal(store_home_rec_decode(legacy_bits, 4, &back), HDL_EMALF);
	assert_int_equal(store_home_rec_decode(buf, 7, &back), HDL_EMALF);
	assert_int_equal(store_home_rec_decode(buf, 9, &back), HDL_EMALF);
	assert_int_equal(store_home_rec_decode(NULL, 8, &back), HDL_EMALF);
	buf[0] = 0x80; /* unknown source bit */
	assert_int_equal(store_home_rec_decode(buf, STORE_HOME_REC_LEN, &back), HDL_EMALF);
	hr.sources = 0;
	store_home_rec_encode(&hr, buf);
	assert_int_equal(store_home_rec_decode(buf, STORE_HOME_REC_LEN, &back), HDL_EMALF);

	char s[64];
	assert_string_equal(store_home_sources_str(STORE_HOME_ALL, s, sizeof(s)),
	                    "config,cli,admin,import");
	assert_string_equal(store_home_sources_str(0, s, sizeof(s)), "unknown");
	assert_string_equal(store_home_sources_str(STORE_HOME_IMPORT, s, sizeof(s)), "import");
	assert_string_equal(store_home_sources_str(STORE_HOME_ALL, s, 10), "config");

	store_import_mark_t m = {1700000000u, 4242, 5000000000ull, P("/data/ids.jsonl")}, mb;
	size_t len = 0;
	assert_int_equal(store_import_mark_encode(&m, buf, sizeof(buf), &len), HDL_EOK);
	assert_int_equal(store_import_mark_decode(buf, len, &mb), HDL_EOK);
	assert_int_equal(mb.started, m.started);
	assert_int_equal(mb.pid, m.pid);
	assert_true(mb.records == m.records);
	assert_int_equal(mb.source.len, m.source.len);
	assert_memory_equal(mb.source.p, m.source.p, m.source.len);
	for (size_t cut = 0; cut < len; cut++)
		assert_int_not_equal(store_import_mark_decode(buf, cut, &mb), HDL_EOK);
	buf[len] = 0;
	assert_int_equal(store_import_mark_decode(buf, len + 1, &mb), HDL_EMALF); /* trailing */
	/* another version */
	buf[3] = 2;
	assert_int_equal(store_import_mark_decode(buf, len, &mb), HDL_EMALF);
	assert_int_equal(store_import_mark_encode(&m, buf, 10, &len), HDL_ESPACE);
	m.source = P("");
	assert_int_equal(store_import_mark_encode(&m, buf, sizeof(buf), &len), HDL_EINVAL);
	m.source = P("a\nb"); /* control characters are refused when read back */
	assert_int_equal(store_import_mark_encode(&m, buf, sizeof(buf), &len), HDL_EOK);
	assert_int_equal(store_import_mark_decode(buf, len, &mb), HDL_EMALF);
}

/* ---- sources ---- */

static void test_sources(void **state)
{
	hfix_t *f = *state;
	store_batch_t *b = NULL;
	hopen(f, 0, true);
	assert_int_equal(store_homed_count(f->s), 0);

	assert_int_equal(store_batch_begin(f->s, &b), HDL_EOK);
	assert_int_equal(store_batch_home_src(b, P("88.100.1"), true, STORE_HOME_CONFIG), HDL_EOK);
	assert_int_equal(store_batch_home_src(b, P("88.100.1"), true, STORE_HOME_CLI), HDL_EOK);
	assert_int_equal(store_batch_home_src(b, P("20.500.x"), true, STORE_HOME_IMPORT), HDL_EOK);
	assert_int_equal(store_batch_home_src(b, P("20.500.x"), true, 0), HDL_EINVAL);
	assert_int_equal(store_batch_home_src(b, P("20.500.x"), true, 0x100), HDL_EINVAL);
	assert_int_equal(store_batch_home_src(b, P("a/b"), true, STORE_HOME_CLI), HDL_ENAME);
	assert_int_equal(store_batch_commit(b), HDL_EOK);
	assert_int_equal(store_homed_count(f->s), 2);
	unsigned total = 0;
	assert_int_equal(sources_of(f, "88.100.1", &total), STORE_HOME_CONFIG | STORE_HOME_CLI);
	assert_int_equal(total, 2);
	assert_int_equal(sources_of(f, "20.500.X", NULL), STORE_HOME_IMPORT);

	/* dropping one source keeps the prefix while another holds it */
	assert_int_equal(store_batch_begin(f->s, &b), HDL_EOK);
	assert_int_equal(store_batch_home_src(b, P("88.100.1"), false, STORE_HOME_CONFIG), HDL_EOK);
	assert_int_equal(store_batch_home_src(b, P("88.100.1"), false, STORE_HOME_CONFIG),
	                 HDL_ENOENT);
	assert_int_equal(store_batch_home_src(b, P("20.500.X"), false, STORE_HOME_CLI), HDL_ENOENT);
	assert_int_equal(store_batch_commit(b), HDL_EOK);
	assert_int_equal(sources_of(f, "88.100.1", NULL), STORE_HOME_CLI);
	assert_int_equal(sources_of(f, "20.500.X", NULL), STORE_HOME_IMPORT);

	/* the last source goes: not homed; STORE_HOME_ALL (the admin unhome) removes any */
	assert_int_equal(store_batch_begin(f->s, &b), HDL_EOK);
	assert_int_equal(store_batch_home_src(b, P("88.100.1"), false, STORE_HOME_CLI), HDL_EOK);
	assert_int_equal(store_batch_home(b, P("20.500.x"), false), HDL_EOK);
	assert_int_equal(store_batch_home(b, P("20.500.x"), false), HDL_ENOENT);
	assert_int_equal(store_batch_home(b, P("88.100.9"), true), HDL_EOK);
	assert_int_equal(store_batch_commit(b), HDL_EOK);
	assert_int_equal(sources_of(f, "88.100.1", NULL), -1);
	assert_int_equal(sources_of(f, "20.500.X", NULL), -1);
	assert_int_equal(sources_of(f, "88.100.9", NULL), STORE_HOME_ADMIN);
	assert_int_equal(store_homed_count(f->s), 1);
}

/* txlog: HOME / UNHOME only when the homed state changes */
typedef struct ops {
	uint8_t op[16];
	unsigned n;
} ops_t;

static int ops_cb(void *ctx, const store_txrec_t *rec)
{
	ops_t *o = ctx;
	if (o->n < 16)
		o->op[o->n] = rec->op;
	o->n++;
	return 0;
}

static void test_txlog_state_changes(void **state)
{
	hfix_t *f = *state;
	store_batch_t *b = NULL;
	hopen(f, 0, true);
	assert_int_equal(store_batch_begin(f->s, &b), HDL_EOK);
	assert_int_equal(store_batch_home_src(b, P("88.100.1"), true, STORE_HOME_CONFIG), HDL_EOK);
	assert_int_equal(store_batch_home_src(b, P("88.100.1"), true, STORE_HOME_CLI), HDL_EOK);
	assert_int_equal(store_batch_home_src(b, P("88.100.1"), true, STORE_HOME_CLI), HDL_EOK);
	assert_int_equal(store_batch_home_src(b, P("88.100.1"), false, STORE_HOME_CONFIG), HDL_EOK);
	assert_int_equal(store_batch_home_src(b, P("88.100.1"), false, STORE_HOME_CLI), HDL_EOK);
	assert_int_equal(store_batch_commit(b), HDL_EOK);
	ops_t o = {{0}, 0};
	assert_int_equal(store_reader_begin(f->r), HDL_EOK);
	assert_int_equal(store_txlog_foreach(f->r, 0, ops_cb, &o), HDL_EOK);
	store_reader_end(f->r);
	assert_int_equal(o.n, 2);
	assert_int_equal(o.op[0], STORE_OP_HOME);
	assert_int_equal(o.op[1], STORE_OP_UNHOME);
}

/* ---- sync (the node's config reconciliation) ---- */

typedef struct changes {
	char text[512];
} changes_t;

static void change_cb(void *ctx, hdl_slice_t prefix, bool added, uint32_t sources)
{
	changes_t *c = ctx;
	size_t used = strlen(c->text);
	snprintf(c->text + used, sizeof(c->text) - used, "%c%.*s:%u ", added ? '+' : '-',
	         (int)prefix.len, (const char *)prefix.p, (unsigned)sources);
}

static void test_sync(void **state)
{
	hfix_t *f = *state;
	store_batch_t *b = NULL;
	changes_t c;
	hopen(f, 0, false);
	static const char *const first[] = {"88.100.1", "88.100.2", "88.100.1"};
	memset(&c, 0, sizeof(c));
	assert_int_equal(store_batch_begin(f->s, &b), HDL_EOK);
	assert_int_equal(store_batch_home_src(b, P("88.100.2"), true, STORE_HOME_IMPORT), HDL_EOK);
	assert_int_equal(store_batch_home_sync(b, STORE_HOME_CONFIG, first, 3, change_cb, &c),
	                 HDL_EOK);
	assert_int_equal(store_batch_commit(b), HDL_EOK);
	assert_string_equal(c.text, "+88.100.1:1 +88.100.2:9 ");
	assert_int_equal(sources_of(f, "88.100.1", NULL), STORE_HOME_CONFIG);
	assert_int_equal(sources_of(f, "88.100.2", NULL), STORE_HOME_CONFIG | STORE_HOME_IMPORT);

	/* the same list again: nothing to do */
	memset(&c, 0, sizeof(c));
	assert_int_equal(store_batch_begin(f->s, &b), HDL_EOK);
	assert_int_equal(store_batch_home_sync(b, STORE_HOME_CONFIG, first, 2, change_cb, &c),
	                 HDL_EOK);
	assert_int_equal(store_batch_commit(b), HDL_EOK);
	assert_string_equal(c.text, "");

	/* the config drops both and lists another: 88.100.1 goes, 88.100.2 stays (import) */
	static const char *const second[] = {"20.500.abc"};
	memset(&c, 0, sizeof(c));
	assert_int_equal(store_batch_begin(f->s, &b), HDL_EOK);
	assert_int_equal(store_batch_home_sync(b, STORE_HOME_CONFIG, second, 1, change_cb, &c),
	                 HDL_EOK);
	assert_int_equal(store_batch_commit(b), HDL_EOK);
	assert_string_equal(c.text, "-88.100.1:0 -88.100.2:8 +20.500.ABC:1 ");
	assert_int_equal(sources_of(f, "88.100.1", NULL), -1);
	assert_int_equal(sources_of(f, "88.100.2", NULL), STORE_HOME_IMPORT);
	assert_int_equal(sources_of(f, "20.500.ABC", NULL), STORE_HOME_CONFIG);

	/* an empty config list unhomes everything the config homed, nothing else */
	assert_int_equal(store_batch_begin(f->s, &b), HDL_EOK);
	assert_int_equal(store_batch_home_sync(b, STORE_HOME_CONFIG, NULL, 0, NULL, NULL), HDL_EOK);
	assert_int_equal(store_batch_commit(b), HDL_EOK);
	assert_int_equal(store_homed_count(f->s), 1);

	/* bad input changes nothing */
	static const char *const bad[] = {"88.100.1", "x/y"};
	assert_int_equal(store_batch_begin(f->s, &b), HDL_EOK);
	assert_int_equal(store_batch_home_sync(b, STORE_HOME_CONFIG, bad, 2, NULL, NULL),
	                 HDL_ENAME);
	assert_int_equal(
	    store_batch_home_sync(b, STORE_HOME_CONFIG | STORE_HOME_CLI, bad, 1, NULL, NULL),
	    HDL_EINVAL);
	assert_int_equal(store_batch_commit(b), HDL_EOK);
	assert_int_equal(sources_of(f, "88.100.1", NULL), -1);
}

/* a record written by an earlier version (U32 0): homed, source unknown, kept by the sync */
static void test_legacy_record(void **state)
{
	hfix_t *f = *state;
	store_batch_t *b = NULL;
	hopen(f, 0, false);
	store_reader_free(f->r);
	f->r = NULL;
	store_close(f->s);
	f->s = NULL;
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
	assert_int_equal(mdb_env_open(env, f->dir, MDB_NOTLS, 0640), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "prefixes", 0, &dbi), 0);
	static const uint8_t zero[4] = {0, 0, 0, 0};
	MDB_val k = {8, (void *)"88.100.1"}, d = {4, (void *)zero};
	assert_int_equal(mdb_put(txn, dbi, &k, &d, 0), 0);
	MDB_val k2 = {8, (void *)"88.100.5"}, d2 = {3, (void *)zero}; /* unreadable */
	assert_int_equal(mdb_put(txn, dbi, &k2, &d2, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);

	hopen(f, 0, false);
	unsigned total = 0;
	assert_int_equal(sources_of(f, "88.100.1", &total), 0);
	assert_int_equal(total, 1); /* the unreadable one is skipped */
	assert_int_equal(store_batch_begin(f->s, &b), HDL_EOK);
	assert_int_equal(store_batch_home_sync(b, STORE_HOME_CONFIG, NULL, 0, NULL, NULL), HDL_EOK);
	assert_int_equal(store_batch_home_src(b, P("88.100.1"), false, STORE_HOME_CONFIG),
	                 HDL_ENOENT);
	assert_int_equal(store_batch_home_src(b, P("88.100.5"), true, STORE_HOME_CLI), HDL_EOK);
	assert_int_equal(store_batch_commit(b), HDL_EOK);
	assert_int_equal(sources_of(f, "88.100.1", NULL), 0);
	assert_int_equal(sources_of(f, "88.100.5", NULL), STORE_HOME_CLI); /* rewritten */
	assert_int_equal(store_batch_begin(f->s, &b), HDL_EOK);
	assert_int_equal(store_batch_home_src(b, P("88.100.1"), true, STORE_HOME_CLI), HDL_EOK);
	assert_int_equal(store_batch_commit(b), HDL_EOK);
	assert_int_equal(sources_of(f, "88.100.1", NULL), STORE_HOME_CLI);
}

/* ---- meta deletion and the marker ---- */

static void test_meta_del(void **state)
{
	hfix_t *f = *state;
	store_batch_t *b = NULL;
	uint8_t buf[128];
	size_t len = 0;
	hdl_slice_t v;
	store_import_mark_t m = {1700000000u, 7, 12, P("-")}, back;
	hopen(f, 0, false);
	assert_int_equal(store_import_mark_encode(&m, buf, sizeof(buf), &len), HDL_EOK);
	assert_int_equal(store_batch_begin(f->s, &b), HDL_EOK);
	assert_int_equal(
	    store_batch_meta_put(b, STORE_META_IMPORT, (hdl_slice_t){buf, (uint32_t)len}), HDL_EOK);
	assert_int_equal(store_batch_commit(b), HDL_EOK);
	assert_int_equal(store_reader_begin(f->r), HDL_EOK);
	assert_int_equal(store_meta_get(f->r, STORE_META_IMPORT, &v), HDL_EOK);
	assert_int_equal(store_import_mark_decode(v.p, v.len, &back), HDL_EOK);
	assert_int_equal(back.records, 12);
	store_reader_end(f->r);
	assert_int_equal(store_batch_begin(f->s, &b), HDL_EOK);
	assert_int_equal(store_batch_meta_del(b, STORE_META_IMPORT), HDL_EOK);
	assert_int_equal(store_batch_meta_del(b, STORE_META_IMPORT), HDL_ENOENT);
	assert_int_equal(store_batch_meta_del(b, NULL), HDL_EINVAL);
	assert_int_equal(store_batch_meta_del(b, ""), HDL_EINVAL);
	assert_int_equal(store_batch_commit(b), HDL_EOK);
	assert_int_equal(store_reader_begin(f->r), HDL_EOK);
	assert_int_equal(store_meta_get(f->r, STORE_META_IMPORT, &v), HDL_ENOENT);
	store_reader_end(f->r);
}

/* homing and meta operations are replayed correctly when the map grows inside the batch */
static void test_replay_after_growth(void **state)
{
	hfix_t *f = *state;
	store_batch_t *b = NULL;
	static uint8_t big[60000];
	hdl_value_t v;
	uint8_t enc[61000];
	size_t len = 0;
	hopen(f, 1u << 20, true);
	memset(&v, 0, sizeof(v));
	memset(big, 'x', sizeof(big));
	v.index = 1;
	v.type = P("DESC");
	v.data = (hdl_slice_t){big, sizeof(big)};
	v.perms = HDL_PERM_DEFAULT;
	assert_int_equal(hdl_values_encode(&v, 1, enc, sizeof(enc), &len), HDL_EOK);
	uint64_t map0 = store_map_size(f->s);
	assert_int_equal(store_batch_begin(f->s, &b), HDL_EOK);
	assert_int_equal(store_batch_home_src(b, P("88.100.1"), true, STORE_HOME_CONFIG), HDL_EOK);
	assert_int_equal(store_batch_home_src(b, P("88.100.1"), true, STORE_HOME_IMPORT), HDL_EOK);
	assert_int_equal(store_batch_meta_put(b, "x", P("1")), HDL_EOK);
	assert_int_equal(store_batch_meta_del(b, "x"), HDL_EOK);
	for (int i = 0; i < 40; i++) {
		char h[32];
		snprintf(h, sizeof(h), "88.100.1/BIG-%d", i);
		assert_int_equal(store_batch_put(b, P(h), (hdl_slice_t){enc, (uint32_t)len}, true),
		                 HDL_EOK);
	}
	assert_int_equal(store_batch_home_src(b, P("88.100.1"), false, STORE_HOME_CONFIG), HDL_EOK);
	assert_int_equal(store_batch_commit(b), HDL_EOK);
	assert_true(store_map_size(f->s) > map0);
	assert_int_equal(sources_of(f, "88.100.1", NULL), STORE_HOME_IMPORT);
	ops_t o = {{0}, 0};
	hdl_slice_t mv;
	assert_int_equal(store_reader_begin(f->r), HDL_EOK);
	assert_int_equal(store_meta_get(f->r, "x", &mv), HDL_ENOENT);
	assert_int_equal(store_txlog_foreach(f->r, 0, ops_cb, &o), HDL_EOK);
	store_reader_end(f->r);
	assert_int_equal(o.n, 41); /* one HOME, 40 PUTs */
	assert_int_equal(o.op[0], STORE_OP_HOME);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_codecs),
	    cmocka_unit_test_setup_teardown(test_sources, hsetup, hteardown),
	    cmocka_unit_test_setup_teardown(test_txlog_state_changes, hsetup, hteardown),
	    cmocka_unit_test_setup_teardown(test_sync, hsetup, hteardown),
	    cmocka_unit_test_setup_teardown(test_legacy_record, hsetup, hteardown),
	    cmocka_unit_test_setup_teardown(test_meta_del, hsetup, hteardown),
	    cmocka_unit_test_setup_teardown(test_replay_after_growth, hsetup, hteardown),
	};
	return cmocka_run_group_tests_name("homing", tests, NULL, NULL);
}
