/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief cmocka tests of the audit trail: the record codec (node/store/audit.c), the store's
 *        audit databases (entries, queries by handle and time, key order when the clock goes
 *        back, savepoint rollback, retention pruning, read-only stores without a trail) and the
 *        entries `idnode import` files per batch.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <lmdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hdl/error.h"
#include "hdl/msg.h"
#include "node/store/audit.h"
#include "node/store/store.h"
#include "tests/unit/testutil.h"

typedef struct fix {
	char dir[64];
	store_t *s;
} fix_t;

static int setup(void **state)
{
	fix_t *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_audit.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	store_opts_t o = {.path = f->dir, .map_size = 4u << 20, .txlog = true};
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

static hdl_slice_t S(const char *s)
{
	return hdl_slice_str(s);
}

/** A record with every field set. */
static audit_rec_t full_rec(void)
{
	static const uint32_t idx[] = {1, 100, 4000000000u};
	audit_rec_t r;
	memset(&r, 0, sizeof(r));
	r.time = 1700000000u;
	r.op = AUDIT_OP_MODIFY;
	r.transport = AUDIT_T_TCP;
	r.rcode = HDL_RC_INVALID_ADMIN;
	r.flags = 3;
	r.handle = S("88.100.1/PUMP-1");
	r.id_handle = S("0.NA/88.100.1");
	r.id_index = 300;
	r.peer_family = 6;
	for (int i = 0; i < 16; i++)
		r.peer_addr[i] = (uint8_t)(i * 7);
	r.peer_port = 2641;
	r.n_indexes = 3;
	r.indexes = idx;
	r.has_before = true;
	r.has_after = true;
	memset(r.before, 0xAB, sizeof(r.before));
	memset(r.after, 0xCD, sizeof(r.after));
	r.message = S("Not an admin");
	r.count = 0x100000002ull;
	return r;
}

static void assert_rec_equal(const audit_rec_t *a, const audit_rec_t *b)
{
	assert_int_equal(a->time, b->time);
	assert_int_equal(a->op, b->op);
	assert_int_equal(a->transport, b->transport);
	assert_int_equal(a->rcode, b->rcode);
	assert_int_equal(a->flags, b->flags);
	assert_true(hdl_slice_eq(a->handle, b->handle));
	assert_true(hdl_slice_eq(a->id_handle, b->id_handle));
	assert_int_equal(a->id_index, b->id_index);
	assert_int_equal(a->peer_family, b->peer_family);
	assert_memory_equal(a->peer_addr, b->peer_addr, 16);
	assert_int_equal(a->peer_port, b->peer_port);
	assert_int_equal(a->n_indexes, b->n_indexes);
	for (uint32_t i = 0; i < a->n_indexes; i++)
		assert_int_equal(a->indexes[i], b->indexes[i]);
	assert_int_equal(a->has_before, b->has_before);
	assert_int_equal(a->has_after, b->has_after);
	if (a->has_before)
		assert_memory_equal(a->before, b->before, AUDIT_DIGEST_LEN);
	if (a->has_after)
		assert_memory_equal(a->after, b->after, AUDIT_DIGEST_LEN);
	assert_true(hdl_slice_eq(a->message, b->message));
	assert_int_equal(a->count, b->count);
}

/* ---- codec -------------------------------------------------------------------------------- */

static void test_codec(void **state)
{
	uint8_t buf[1024], arena_buf[4096];
	hdl_arena_t a;
	hdl_arena_init(&a, arena_buf, sizeof(arena_buf), 0);
	audit_rec_t r = full_rec(), d;
	size_t len = 0;
	assert_int_equal(audit_encode(&r, buf, sizeof(buf), &len), HDL_EOK);
	assert_int_equal(len, audit_size(&r));
	assert_int_equal(audit_decode(buf, len, &a, &d), HDL_EOK);
	assert_rec_equal(&r, &d);
	/* too small a buffer */
	assert_int_equal(audit_encode(&r, buf, len - 1, &len), HDL_ESPACE);
	assert_int_equal(audit_encode(&r, buf, sizeof(buf), &len), HDL_EOK);
	/* every cut is refused, and so is a trailing byte */
	for (size_t cut = 0; cut < len; cut++) {
		hdl_arena_reset(&a);
		assert_int_not_equal(audit_decode(buf, cut, &a, &d), HDL_EOK);
	}
	buf[len] = 0;
	assert_int_equal(audit_decode(buf, len + 1, &a, &d), HDL_ETRAILING);
	/* version, peer family, digest mask */
	uint8_t bad[1024];
	memcpy(bad, buf, len);
	bad[0] = 2;
	assert_int_equal(audit_decode(bad, len, &a, &d), HDL_EVERSION);

	audit_rec_t m;
	memset(&m, 0, sizeof(m));
	m.op = AUDIT_OP_HOME;
	m.peer_family = 4;
	m.peer_addr[0] = 127;
	m.peer_addr[3] = 1;
	m.peer_port = 9;
	assert_int_equal(audit_encode(&m, buf, sizeof(buf), &len), HDL_EOK);
	hdl_arena_reset(&a);
	assert_int_equal(audit_decode(buf, len, &a, &d), HDL_EOK);
	assert_rec_equal(&m, &d);
	char peer[64];
	assert_string_equal(audit_peer_str(&d, peer, sizeof(peer)), "127.0.0.1:9");
	memcpy(bad, buf, len);
	size_t fam_off = 1 + 4 + 2 + 1 + 4 + 4 + 4 + 4 + 4; /* before the family byte */
	assert_int_equal(bad[fam_off], 4);
	bad[fam_off] = 5;
	assert_int_equal(audit_decode(bad, len, &a, &d), HDL_EMALF);
	memcpy(bad, buf, len);
	size_t mask_off = fam_off + 1 + 4 + 2 + 4; /* family, IPv4, port, index count */
	assert_int_equal(bad[mask_off], 0);
	bad[mask_off] = 4;
	assert_int_equal(audit_decode(bad, len, &a, &d), HDL_EMALF);

	/* limits */
	static uint8_t longname[HDL_MAX_HANDLE_LEN + 1];
	memset(longname, 'x', sizeof(longname));
	m.handle.p = longname;
	m.handle.len = sizeof(longname);
	assert_int_equal(audit_size(&m), 0);
	assert_int_equal(audit_encode(&m, buf, sizeof(buf), &len), HDL_ELIMIT);
	m.handle.len = 0;
	m.peer_family = 3;
	assert_int_equal(audit_encode(&m, buf, sizeof(buf), &len), HDL_ELIMIT);
	/* an index count over HDL_MAX_VALUES is refused before anything is allocated */
	m.peer_family = 0;
	assert_int_equal(audit_encode(&m, buf, sizeof(buf), &len), HDL_EOK);
	size_t cnt_off = 1 + 4 + 2 + 1 + 4 + 4 + 4 + 4 + 4 + 1;
	buf[cnt_off] = 0x7f;
	assert_int_equal(audit_decode(buf, len, &a, &d), HDL_ELIMIT);

	/* names */
	assert_string_equal(audit_op_name(AUDIT_OP_CREATE), "CREATE_HANDLE");
	assert_string_equal(audit_op_name(AUDIT_OP_IMPORT), "IMPORT");
	assert_string_equal(audit_op_name(7), "UNKNOWN");
	assert_string_equal(audit_transport_name(AUDIT_T_HTTPS), "https");
	assert_string_equal(audit_transport_name(99), "-");
	hdl_arena_free(&a);
	(void)state;
}

static void test_peer(void **state)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
	a6->sin6_family = AF_INET6;
	a6->sin6_port = htons(2641);
	assert_int_equal(inet_pton(AF_INET6, "2001:db8::1", &a6->sin6_addr), 1);
	audit_rec_t r;
	memset(&r, 0, sizeof(r));
	char buf[64];
	audit_set_peer(&r, &ss, sizeof(*a6));
	assert_string_equal(audit_peer_str(&r, buf, sizeof(buf)), "[2001:db8::1]:2641");
	audit_set_peer(&r, &ss, 4); /* too short for its family */
	assert_string_equal(audit_peer_str(&r, buf, sizeof(buf)), "-");
	audit_set_peer(&r, NULL, 0);
	assert_int_equal(r.peer_family, 0);
	uint8_t d1[AUDIT_DIGEST_LEN], d2[AUDIT_DIGEST_LEN];
	audit_digest(S("abc"), d1);
	audit_digest(S("abd"), d2);
	assert_memory_not_equal(d1, d2, AUDIT_DIGEST_LEN);
	/* SHA-256("abc") starts ba7816bf */
	assert_int_equal(d1[0], 0xba);
	assert_int_equal(d1[1], 0x78);
	(void)state;
}

/* ---- store -------------------------------------------------------------------------------- */

/** File one entry for \p handle at \p t in its own batch. */
static void file_entry(store_t *s, const char *handle, uint32_t t, uint16_t op)
{
	audit_rec_t r;
	memset(&r, 0, sizeof(r));
	r.time = t;
	r.op = op;
	r.rcode = HDL_RC_SUCCESS;
	r.handle = S(handle);
	r.count = 1;
	store_batch_t *b = NULL;
	assert_int_equal(store_batch_begin(s, &b), HDL_EOK);
	assert_int_equal(audit_write(b, &r), HDL_EOK);
	assert_int_equal(store_batch_commit(b), HDL_EOK);
}

typedef struct seen {
	unsigned n;
	uint64_t ids[64];
	uint32_t times[64];
	char handles[64][64];
	uint16_t ops[64];
	uint8_t transports[64];
	bool after[64];
	uint64_t counts[64];
	char msgs[64][256];
} seen_t;

static int collect(void *ctx, uint64_t id, hdl_slice_t rec)
{
	seen_t *s = ctx;
	uint8_t ab[4096];
	hdl_arena_t a;
	hdl_arena_init(&a, ab, sizeof(ab), 0);
	audit_rec_t r;
	assert_int_equal(audit_decode(rec.p, rec.len, &a, &r), HDL_EOK);
	assert_true(s->n < 64);
	s->ids[s->n] = id;
	s->times[s->n] = r.time;
	snprintf(s->handles[s->n], sizeof(s->handles[0]), "%.*s", (int)r.handle.len,
	         (const char *)r.handle.p);
	s->ops[s->n] = r.op;
	s->transports[s->n] = r.transport;
	s->after[s->n] = r.has_after;
	s->counts[s->n] = r.count;
	snprintf(s->msgs[s->n], sizeof(s->msgs[0]), "%.*s", (int)r.message.len,
	         (const char *)r.message.p);
	s->n++;
	return 0;
}

static seen_t query(store_t *s, uint32_t since, const char *handle)
{
	seen_t out;
	memset(&out, 0, sizeof(out));
	store_reader_t *r = NULL;
	assert_int_equal(store_reader_new(s, &r), HDL_EOK);
	assert_int_equal(store_reader_begin(r), HDL_EOK);
	assert_int_equal(store_audit_foreach(r, since, handle ? S(handle) : S(""), collect, &out),
	                 HDL_EOK);
	store_reader_free(r);
	return out;
}

static void test_entries_and_queries(void **state)
{
	fix_t *f = *state;
	file_entry(f->s, "88.100.1/A", 1000, AUDIT_OP_CREATE);
	file_entry(f->s, "88.100.1/B", 1000, AUDIT_OP_CREATE);
	file_entry(f->s, "88.100.1/a", 1010, AUDIT_OP_ADD); /* same handle as A (case folds) */
	file_entry(f->s, "88.100.1/B", 1020, AUDIT_OP_DELETE);
	seen_t all = query(f->s, 0, NULL);
	assert_int_equal(all.n, 4);
	assert_int_equal(all.ids[0], (1000ull << 32) | 0);
	assert_int_equal(all.ids[1], (1000ull << 32) | 1);
	assert_int_equal(all.ids[2], 1010ull << 32);
	assert_int_equal(all.ids[3], 1020ull << 32);
	seen_t since = query(f->s, 1010, NULL);
	assert_int_equal(since.n, 2);
	assert_string_equal(since.handles[0], "88.100.1/a");
	seen_t a = query(f->s, 0, "88.100.1/A");
	assert_int_equal(a.n, 2);
	assert_string_equal(a.handles[0], "88.100.1/A");
	assert_string_equal(a.handles[1], "88.100.1/a");
	seen_t b = query(f->s, 1001, "88.100.1/b");
	assert_int_equal(b.n, 1);
	assert_int_equal(b.times[0], 1020);
	assert_int_equal(query(f->s, 0, "88.100.1/none").n, 0);
	assert_int_equal(query(f->s, 2000, NULL).n, 0);
	/* an invalid handle to look for */
	store_reader_t *r = NULL;
	seen_t out;
	memset(&out, 0, sizeof(out));
	assert_int_equal(store_reader_new(f->s, &r), HDL_EOK);
	assert_int_equal(store_reader_begin(r), HDL_EOK);
	hdl_slice_t bad = {(const uint8_t *)"a\001b", 3};
	assert_int_equal(store_audit_foreach(r, 0, bad, collect, &out), HDL_ENAME);
	store_reader_end(r);
	assert_int_equal(store_audit_foreach(r, 0, S(""), collect, &out), HDL_EINVAL);
	store_reader_free(r);
	(void)state;
}

static void test_long_handle_and_unindexed(void **state)
{
	fix_t *f = *state;
	char name[1200];
	snprintf(name, sizeof(name), "88.100.1/");
	memset(name + 9, 'L', sizeof(name) - 10);
	name[sizeof(name) - 1] = '\0';
	file_entry(f->s, name, 5, AUDIT_OP_CREATE);
	file_entry(f->s, "", 6, AUDIT_OP_IMPORT); /* no handle: not indexed, still listed */
	seen_t all = query(f->s, 0, NULL);
	assert_int_equal(all.n, 2);
	seen_t l = query(f->s, 0, name);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.times[0], 5);
	(void)state;
}

static void test_clock_back(void **state)
{
	fix_t *f = *state;
	file_entry(f->s, "88.100.1/A", 100, AUDIT_OP_CREATE);
	file_entry(f->s, "88.100.1/A", 50, AUDIT_OP_ADD); /* the clock went back */
	file_entry(f->s, "88.100.1/A", 101, AUDIT_OP_ADD);
	seen_t all = query(f->s, 0, NULL);
	assert_int_equal(all.n, 3);
	assert_int_equal(all.ids[0], 100ull << 32);
	assert_int_equal(all.ids[1], (100ull << 32) | 1); /* filed under the last second */
	assert_int_equal(all.times[1], 50);               /* the record keeps its own time */
	assert_int_equal(all.ids[2], 101ull << 32);
	(void)state;
}

static void test_savepoints(void **state)
{
	fix_t *f = *state;
	uint8_t vals[256];
	hdl_value_t v = {.index = 1,
	                 .ttl = 86400,
	                 .perms = HDL_PERM_DEFAULT,
	                 .type = S("URL"),
	                 .data = S("http://x/")};
	size_t vl = 0;
	assert_int_equal(hdl_values_encode(&v, 1, vals, sizeof(vals), &vl), HDL_EOK);
	hdl_slice_t rec = {vals, (uint32_t)vl};
	audit_rec_t ar;
	memset(&ar, 0, sizeof(ar));
	ar.time = 10;
	ar.handle = S("88.100.1/sp");

	store_batch_t *b = NULL;
	assert_int_equal(store_batch_begin(f->s, &b), HDL_EOK);
	assert_int_equal(store_batch_put(b, S("88.100.1/kept"), rec, true), HDL_EOK);
	assert_int_equal(store_batch_savepoint(b), HDL_EOK);
	assert_int_equal(store_batch_savepoint(b), HDL_EINVAL); /* one level */
	assert_int_equal(store_batch_put(b, S("88.100.1/sp"), rec, true), HDL_EOK);
	assert_int_equal(audit_write(b, &ar), HDL_EOK);
	hdl_slice_t got;
	assert_int_equal(store_batch_get(b, S("88.100.1/sp"), &got), HDL_EOK);
	assert_int_equal(store_batch_get(b, S("88.100.1/kept"), &got), HDL_EOK);
	store_batch_rollback(b);
	assert_int_equal(store_batch_get(b, S("88.100.1/sp"), &got), HDL_ENOENT);
	assert_int_equal(store_batch_get(b, S("88.100.1/kept"), &got), HDL_EOK);
	assert_int_equal(store_batch_release(b), HDL_EINVAL); /* none open */
	assert_int_equal(store_batch_savepoint(b), HDL_EOK);
	ar.handle = S("88.100.1/kept");
	assert_int_equal(audit_write(b, &ar), HDL_EOK);
	assert_int_equal(store_batch_release(b), HDL_EOK);
	assert_int_equal(store_batch_commit(b), HDL_EOK);
	/* one put and one entry survive; the txlog has exactly the kept put */
	assert_int_equal(store_txlog_last(f->s), 1);
	seen_t all = query(f->s, 0, NULL);
	assert_int_equal(all.n, 1);
	assert_string_equal(all.handles[0], "88.100.1/kept");
	assert_int_equal(store_count(f->s), 1);
	/* committing with a savepoint open is refused and writes nothing */
	assert_int_equal(store_batch_begin(f->s, &b), HDL_EOK);
	assert_int_equal(store_batch_savepoint(b), HDL_EOK);
	assert_int_equal(store_batch_put(b, S("88.100.1/open"), rec, true), HDL_EOK);
	assert_int_equal(store_batch_commit(b), HDL_EINVAL);
	assert_int_equal(store_count(f->s), 1);
	(void)state;
}

static void test_prune(void **state)
{
	fix_t *f = *state;
	char name[32];
	for (uint32_t i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "88.100.1/old%u", i % 2);
		file_entry(f->s, name, 1000 + i, AUDIT_OP_CREATE);
	}
	file_entry(f->s, "88.100.1/old0", 5000, AUDIT_OP_ADD);
	file_entry(f->s, "88.100.1/new", 5001, AUDIT_OP_CREATE);
	unsigned n = 99;
	store_batch_t *b = NULL;
	assert_int_equal(store_batch_begin(f->s, &b), HDL_EOK);
	assert_int_equal(store_batch_audit_prune(b, 1005, 3, &n), HDL_EOK);
	assert_int_equal(n, 3);
	assert_int_equal(store_batch_audit_prune(b, 1005, 100, &n), HDL_EOK);
	assert_int_equal(n, 2); /* 1003 and 1004: nothing older than 1005 is left */
	assert_int_equal(store_batch_audit_prune(b, 1005, 100, &n), HDL_EOK);
	assert_int_equal(n, 0);
	assert_int_equal(store_batch_commit(b), HDL_EOK);
	seen_t all = query(f->s, 0, NULL);
	assert_int_equal(all.n, 7);
	assert_int_equal(all.times[0], 1005);
	/* the index lost the pruned entries too */
	seen_t o0 = query(f->s, 0, "88.100.1/old0");
	assert_int_equal(o0.n, 3); /* 1006, 1008, 5000 */
	assert_int_equal(o0.times[0], 1006);
	assert_int_equal(o0.times[2], 5000);
	/* everything older than now */
	assert_int_equal(store_batch_begin(f->s, &b), HDL_EOK);
	assert_int_equal(store_batch_audit_prune(b, 6000, 1000, &n), HDL_EOK);
	assert_int_equal(n, 7);
	assert_int_equal(store_batch_commit(b), HDL_EOK);
	assert_int_equal(query(f->s, 0, NULL).n, 0);
	assert_int_equal(query(f->s, 0, "88.100.1/new").n, 0);
	/* and the trail goes on after being emptied */
	file_entry(f->s, "88.100.1/new", 7000, AUDIT_OP_DELETE);
	assert_int_equal(query(f->s, 0, "88.100.1/new").n, 1);
	(void)state;
}

/** A store as it was before the audit trail: only the four original databases. */
static void make_old_store(const char *dir)
{
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	MDB_dbi dbi;
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
	assert_int_equal(mdb_env_open(env, dir, MDB_NOTLS, 0640), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	const char *names[] = {"handles", "prefixes", "meta", "txlog"};
	for (int i = 0; i < 4; i++)
		assert_int_equal(mdb_dbi_open(txn, names[i], MDB_CREATE, &dbi), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

static void test_old_store(void **state)
{
	fix_t *f = *state;
	store_close(f->s);
	rm_env(f->dir);
	assert_int_equal(mkdir(f->dir, 0750), 0);
	make_old_store(f->dir);
	store_opts_t ro = {.path = f->dir, .read_only = true};
	assert_int_equal(store_open(&ro, &f->s), HDL_EOK);
	assert_int_equal(query(f->s, 0, NULL).n, 0);
	store_close(f->s);
	/* opened for writing, the trail is created */
	store_opts_t rw = {.path = f->dir};
	assert_int_equal(store_open(&rw, &f->s), HDL_EOK);
	file_entry(f->s, "88.100.1/x", 1, AUDIT_OP_CREATE);
	assert_int_equal(query(f->s, 0, "88.100.1/x").n, 1);
	(void)state;
}

/* ---- idnode import ------------------------------------------------------------------------ */

/** Run a shell command built from \p fmt; \return its exit status */
static int runf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int runf(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	assert_true(n > 0 && (size_t)n < sizeof(cmd));
	int st = system(cmd);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static void test_import_entries(void **state)
{
	fix_t *f = *state;
	store_close(f->s);
	f->s = NULL;
	char file[128];
	snprintf(file, sizeof(file), "%s/in.jsonl", f->dir);
	FILE *fp = fopen(file, "w");
	assert_non_null(fp);
	for (int i = 0; i < 5; i++)
		fprintf(fp,
		        "{\"handle\":\"88.100.1/IMP-%d\",\"values\":[{\"index\":1,\"type\":\"URL\","
		        "\"data\":\"http://example.org/%d\"}]}\n",
		        i, i);
	fprintf(fp, "not json\n");
	fclose(fp);
	assert_int_equal(
	    runf("%s/idnode import --db %s --batch 2 %s 2>/dev/null", HDL_BUILD_DIR, f->dir, file),
	    4); /* 4: a line was rejected; the others are imported */
	store_opts_t o = {.path = f->dir};
	assert_int_equal(store_open(&o, &f->s), HDL_EOK);
	/* one entry per written batch: 2 + 2 + 1 records */
	seen_t imp = query(f->s, 0, NULL);
	assert_int_equal(imp.n, 3);
	char source[200];
	snprintf(source, sizeof(source), "idnode import %s", file);
	uint64_t total = 0;
	for (unsigned i = 0; i < imp.n; i++) {
		assert_int_equal(imp.ops[i], AUDIT_OP_IMPORT);
		assert_int_equal(imp.transports[i], AUDIT_T_LOCAL);
		assert_true(imp.after[i]);
		assert_memory_equal(imp.msgs[i], source, strlen(source));
		total += imp.counts[i];
	}
	assert_int_equal(total, 5);
	/* the CLI reads them back: 3 lines; none for a handle (import entries are not per handle)
	 */
	store_close(f->s);
	f->s = NULL;
	assert_int_equal(runf("%s/idnode audit --db %s | grep -c ' IMPORT ' | grep -qx 3",
	                      HDL_BUILD_DIR, f->dir),
	                 0);
	assert_int_equal(runf("%s/idnode audit --db %s --json | grep -c '\"op\":\"IMPORT\"' "
	                      "| grep -qx 3",
	                      HDL_BUILD_DIR, f->dir),
	                 0);
	assert_int_equal(runf("%s/idnode audit --db %s --handle 88.100.1/IMP-1 >/dev/null",
	                      HDL_BUILD_DIR, f->dir),
	                 1);
	assert_int_equal(runf("%s/idnode audit --db %s --since 1d --limit 2 | wc -l | grep -qx 2",
	                      HDL_BUILD_DIR, f->dir),
	                 0);
	assert_int_equal(
	    runf("%s/idnode audit --db %s --since 2100-01-01 >/dev/null", HDL_BUILD_DIR, f->dir),
	    1);
	assert_int_equal(
	    runf("%s/idnode audit --db %s --since yesterday 2>/dev/null", HDL_BUILD_DIR, f->dir),
	    2);
	store_opts_t o2 = {.path = f->dir};
	assert_int_equal(store_open(&o2, &f->s), HDL_EOK);
	(void)state;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_codec),
	    cmocka_unit_test(test_peer),
	    cmocka_unit_test_setup_teardown(test_entries_and_queries, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_long_handle_and_unindexed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_clock_back, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_savepoints, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_old_store, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_import_entries, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
