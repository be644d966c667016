/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief cmocka tests of node/server/writer: every operation's success and each refusal code
 *        (docs/registration.md "Semantics"), nothing written on a refusal (store and txlog
 *        unchanged, the refusal in the audit trail), group commit from several threads, the data
 *        visible to another process when done() fires, the queue bound, draining at stop, map
 *        growth in a batch of nested jobs, kill -9 during load, retention and periodic sync.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hdl/error.h"
#include "hdl/msg.h"
#include "hdl/values.h"
#include "node/common/log.h"
#include "node/conf/conf.h"
#include "node/server/writer.h"
#include "node/store/audit.h"
#include "node/store/store.h"
#include "tests/unit/testutil.h"

#define PREFIX_ADMIN "300:0.NA/88.100.1"    /* ALL on the prefix handle */
#define CREATOR      "300:88.100.1/creator" /* ADD_HANDLE only on the prefix handle */
#define NOBODY       "300:88.100.1/nobody"
#define WAIT_S       60 /* generous bound for any wait on a loaded box */

typedef struct fix {
	char dir[64];
	store_t *s;
	writer_t *w;
	uint8_t abuf[65536];
	hdl_arena_t arena; /* the submitter's arena for result_handle */
} fix_t;

static hdl_slice_t S(const char *s)
{
	return hdl_slice_str(s);
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000u, (long)(ms % 1000u) * 1000000L};
	nanosleep(&ts, NULL);
}

/* ---- values ------------------------------------------------------------------------------- */

/** Storage for the data of built values (admin records). */
typedef struct vbuf {
	hdl_value_t v[16];
	uint8_t data[16][256];
	uint32_t n;
} vbuf_t;

static hdl_value_t *add_text(vbuf_t *b, uint32_t index, const char *type, const char *text)
{
	hdl_value_t *v = &b->v[b->n++];
	memset(v, 0, sizeof(*v));
	v->index = index;
	v->ttl = 86400;
	v->perms = HDL_PERM_DEFAULT;
	v->type = S(type);
	v->data = S(text);
	return v;
}

static hdl_value_t *add_admin(vbuf_t *b, uint32_t index, uint16_t perms, const char *who)
{
	hdl_value_t *v = add_text(b, index, "HS_ADMIN", "");
	const char *colon = strchr(who, ':');
	hdl_admin_t a = {.perms = perms, .handle = S(colon + 1), .index = (uint32_t)atoi(who)};
	size_t len = 0;
	assert_int_equal(hdl_admin_encode(&a, b->data[b->n - 1], 256, &len), HDL_EOK);
	v->data.p = b->data[b->n - 1];
	v->data.len = (uint32_t)len;
	return v;
}

/** Put a record straight into the store (fixtures), with \p home homed when not NULL. */
static void seed(store_t *s, const char *handle, const vbuf_t *vb, const char *home)
{
	uint8_t buf[8192];
	size_t len = 0;
	assert_int_equal(hdl_values_encode(vb->v, vb->n, buf, sizeof(buf), &len), HDL_EOK);
	store_batch_t *b = NULL;
	assert_int_equal(store_batch_begin(s, &b), HDL_EOK);
	if (home)
		assert_int_equal(store_batch_home(b, S(home), true), HDL_EOK);
	hdl_slice_t v = {buf, (uint32_t)len};
	assert_int_equal(store_batch_put(b, S(handle), v, true), HDL_EOK);
	assert_int_equal(store_batch_commit(b), HDL_EOK);
}

/** The prefix handle 0.NA/88.100.1: full admin and a create-only admin; prefix homed. */
static void seed_prefix(store_t *s)
{
	vbuf_t vb = {.n = 0};
	add_admin(&vb, 100, HDL_ADM_ALL, PREFIX_ADMIN);
	add_admin(&vb, 101, HDL_ADM_ADD_HANDLE, CREATOR);
	seed(s, "0.NA/88.100.1", &vb, "88.100.1");
}

/** A copy of a handle's record (decoded into \p a), or HDL_ENOENT. */
static int get_rec(store_t *s, const char *handle, hdl_arena_t *a, hdl_value_t **v, uint32_t *n)
{
	store_reader_t *r = NULL;
	hdl_slice_t raw;
	assert_int_equal(store_reader_new(s, &r), HDL_EOK);
	assert_int_equal(store_reader_begin(r), HDL_EOK);
	int ret = store_get(r, S(handle), &raw);
	if (ret == HDL_EOK) {
		hdl_slice_t copy = hdl_arena_dup(a, raw.p, raw.len);
		assert_non_null(copy.p);
		assert_int_equal(hdl_values_decode(copy.p, copy.len, a, v, n), HDL_EOK);
	}
	store_reader_free(r);
	return ret;
}

static bool exists(store_t *s, const char *handle)
{
	uint8_t ab[16384];
	hdl_arena_t a;
	hdl_arena_init(&a, ab, sizeof(ab), 1u << 20);
	hdl_value_t *v;
	uint32_t n;
	int ret = get_rec(s, handle, &a, &v, &n);
	hdl_arena_free(&a);
	return ret == HDL_EOK;
}

static const hdl_value_t *find_index(const hdl_value_t *v, uint32_t n, uint32_t index)
{
	for (uint32_t i = 0; i < n; i++) {
		if (v[i].index == index)
			return &v[i];
	}
	return NULL;
}

/* ---- audit reading ------------------------------------------------------------------------ */

typedef struct last_audit {
	unsigned n;
	audit_rec_t r; /**< the last entry (slices point into the copy) */
	uint8_t copy[16384];
	uint8_t ab[16384];
	hdl_arena_t a;
} last_audit_t;

static int keep_last(void *ctx, uint64_t id, hdl_slice_t rec)
{
	last_audit_t *l = ctx;
	l->n++;
	assert_true(rec.len <= sizeof(l->copy));
	memcpy(l->copy, rec.p, rec.len);
	hdl_arena_init(&l->a, l->ab, sizeof(l->ab), 0);
	assert_int_equal(audit_decode(l->copy, rec.len, &l->a, &l->r), HDL_EOK);
	(void)id;
	return 0;
}

/** The number of audit entries (of \p handle, or all) and the last one. */
static void audit_last(store_t *s, const char *handle, last_audit_t *out)
{
	memset(out, 0, sizeof(*out));
	store_reader_t *r = NULL;
	assert_int_equal(store_reader_new(s, &r), HDL_EOK);
	assert_int_equal(store_reader_begin(r), HDL_EOK);
	assert_int_equal(store_audit_foreach(r, 0, S(handle ? handle : ""), keep_last, out),
	                 HDL_EOK);
	store_reader_free(r);
}

static unsigned audit_count(store_t *s)
{
	last_audit_t *l = malloc(sizeof(*l));
	assert_non_null(l);
	audit_last(s, NULL, l);
	unsigned n = l->n;
	free(l);
	return n;
}

/* ---- jobs --------------------------------------------------------------------------------- */

typedef struct waiter {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done;
} waiter_t;

static void done_signal(wr_job_t *j)
{
	waiter_t *w = j->owner;
	pthread_mutex_lock(&w->mu);
	w->done++;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

/** Wait until \p w->done reaches \p n (bounded). */
static void wait_done(waiter_t *w, int n)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += WAIT_S;
	pthread_mutex_lock(&w->mu);
	while (w->done < n) {
		if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT)
			break;
	}
	int got = w->done;
	pthread_mutex_unlock(&w->mu);
	assert_int_equal(got, n);
}

static wr_job_t mkjob(fix_t *f, wr_op_t op, const char *handle, const char *id)
{
	wr_job_t j;
	memset(&j, 0, sizeof(j));
	j.op = op;
	j.handle = S(handle);
	if (id) {
		j.id_handle = S(strchr(id, ':') + 1);
		j.id_index = (uint32_t)atoi(id);
	}
	j.transport = WR_T_TCP;
	struct sockaddr_in *a4 = (struct sockaddr_in *)&j.peer;
	a4->sin_family = AF_INET;
	a4->sin_port = htons(5555);
	a4->sin_addr.s_addr = htonl(0x7f000001);
	j.peer_len = sizeof(*a4);
	j.arena = &f->arena;
	return j;
}

/** Submit and wait for done(); \return the response code. */
static uint32_t run(fix_t *f, wr_job_t *j)
{
	waiter_t w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
	j->done = done_signal;
	j->owner = &w;
	assert_int_equal(writer_submit(f->w, j), HDL_EOK);
	wait_done(&w, 1);
	return j->rcode;
}

static uint32_t create(fix_t *f, const char *handle, const char *id, vbuf_t *vb, uint32_t flags,
                       uint32_t now)
{
	wr_job_t j = mkjob(f, WR_CREATE, handle, id);
	j.values = vb->v;
	j.n_values = vb->n;
	j.flags = flags;
	j.now = now;
	return run(f, &j);
}

/* ---- fixture ------------------------------------------------------------------------------ */

static writer_opts_t default_opts(void)
{
	writer_opts_t o = {.queue_max = 1000, .batch_max = 64, .batch_wait_us = 0};
	return o;
}

static void start(fix_t *f, const writer_opts_t *o)
{
	assert_int_equal(writer_start(f->s, o, &f->w), HDL_EOK);
}

/** Stop the fixture's writer and start one with \p o. */
static void restart(fix_t *f, const writer_opts_t *o)
{
	writer_stop(f->w);
	f->w = NULL;
	start(f, o);
}

/** Stop the writer and close the store (\p wipe: remove it too). */
static void shut(fix_t *f, bool wipe)
{
	writer_stop(f->w);
	f->w = NULL;
	store_close(f->s);
	f->s = NULL;
	if (wipe)
		rm_env(f->dir);
}

/** A fresh store with a 256 KiB map (grown on demand). */
static void small_store(fix_t *f)
{
	shut(f, true);
	store_opts_t so = {.path = f->dir, .map_size = 256u << 10, .txlog = true};
	assert_int_equal(store_open(&so, &f->s), HDL_EOK);
}

static int setup_store(void **state, uint64_t map)
{
	fix_t *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_writer.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	store_opts_t o = {.path = f->dir, .map_size = map, .txlog = true};
	assert_int_equal(store_open(&o, &f->s), HDL_EOK);
	hdl_arena_init(&f->arena, f->abuf, sizeof(f->abuf), 1u << 20);
	seed_prefix(f->s);
	*state = f;
	return 0;
}

static int setup(void **state)
{
	int ret = setup_store(state, 8u << 20);
	fix_t *f = *state;
	writer_opts_t o = default_opts();
	start(f, &o);
	return ret;
}

static int teardown(void **state)
{
	fix_t *f = *state;
	writer_stop(f->w);
	store_close(f->s);
	hdl_arena_free(&f->arena);
	rm_env(f->dir);
	free(f);
	return 0;
}

/** State of the store that a refusal must leave alone. */
typedef struct snap {
	uint64_t txlog;
	uint64_t count;
	unsigned audits;
} snap_t;

static snap_t snap(fix_t *f)
{
	snap_t s = {store_txlog_last(f->s), store_count(f->s), audit_count(f->s)};
	return s;
}

/** Nothing written since \p before, and \p n more audit entries whose last has code \p rc. */
static void assert_refused(fix_t *f, snap_t before, unsigned n, uint32_t rc)
{
	snap_t now = snap(f);
	assert_int_equal(now.txlog, before.txlog);
	assert_int_equal(now.count, before.count);
	assert_int_equal(now.audits, before.audits + n);
	last_audit_t *l = malloc(sizeof(*l));
	assert_non_null(l);
	audit_last(f->s, NULL, l);
	assert_int_equal(l->r.rcode, rc);
	assert_false(l->r.has_after);
	free(l);
}

/* ---- operations --------------------------------------------------------------------------- */

static void test_create(void **state)
{
	fix_t *f = *state;
	vbuf_t vb = {.n = 0};
	add_text(&vb, 1, "URL", "http://example.org/a");
	add_text(&vb, 2, "DESC", "pump");
	snap_t s0 = snap(f);
	assert_int_equal(create(f, "88.100.1/A", PREFIX_ADMIN, &vb, 0, 1000), HDL_RC_SUCCESS);
	hdl_value_t *v;
	uint32_t n;
	assert_int_equal(get_rec(f->s, "88.100.1/A", &f->arena, &v, &n), HDL_EOK);
	assert_int_equal(n, 2);
	assert_int_equal(v[0].timestamp, 1000); /* timestamps are the server's */
	assert_true(hdl_slice_eq(v[0].data, S("http://example.org/a")));
	assert_int_equal(store_txlog_last(f->s), s0.txlog + 1);
	last_audit_t *l = malloc(sizeof(*l));
	assert_non_null(l);
	audit_last(f->s, "88.100.1/A", l);
	assert_int_equal(l->n, 1);
	assert_int_equal(l->r.op, AUDIT_OP_CREATE);
	assert_int_equal(l->r.rcode, HDL_RC_SUCCESS);
	assert_int_equal(l->r.time, 1000);
	assert_true(hdl_slice_eq(l->r.id_handle, S("0.NA/88.100.1")));
	assert_int_equal(l->r.id_index, 300);
	assert_int_equal(l->r.transport, AUDIT_T_TCP);
	char peer[64];
	assert_string_equal(audit_peer_str(&l->r, peer, sizeof(peer)), "127.0.0.1:5555");
	assert_int_equal(l->r.n_indexes, 2);
	assert_false(l->r.has_before);
	assert_true(l->r.has_after);
	free(l);

	/* refusals: nothing written, each audited */
	snap_t s1 = snap(f);
	assert_int_equal(create(f, "88.100.1/a", PREFIX_ADMIN, &vb, 0, 0),
	                 HDL_RC_HANDLE_ALREADY_EXISTS);
	assert_refused(f, s1, 1, HDL_RC_HANDLE_ALREADY_EXISTS);
	assert_int_equal(create(f, "88.100.2/A", PREFIX_ADMIN, &vb, 0, 0), HDL_RC_SERVER_NOT_RESP);
	assert_int_equal(create(f, "88.100.1/\x01", PREFIX_ADMIN, &vb, 0, 0),
	                 HDL_RC_INVALID_HANDLE);
	assert_int_equal(create(f, "88.100.1/\xff", PREFIX_ADMIN, &vb, 0, 0),
	                 HDL_RC_INVALID_HANDLE);
	assert_int_equal(create(f, "88.100.1/B", NULL, &vb, 0, 0), HDL_RC_INVALID_ADMIN);
	assert_int_equal(create(f, "88.100.1/B", NOBODY, &vb, 0, 0), HDL_RC_INVALID_ADMIN);
	assert_refused(f, s1, 6, HDL_RC_INVALID_ADMIN);
	vbuf_t zero = {.n = 0};
	add_text(&zero, 0, "URL", "x");
	assert_int_equal(create(f, "88.100.1/B", PREFIX_ADMIN, &zero, 0, 0), HDL_RC_INVALID_VALUE);
	vbuf_t dup = {.n = 0};
	add_text(&dup, 3, "URL", "x");
	add_text(&dup, 3, "URL", "y");
	assert_int_equal(create(f, "88.100.1/B", PREFIX_ADMIN, &dup, 0, 0),
	                 HDL_RC_VALUE_ALREADY_EXISTS);
	vbuf_t badtype = {.n = 0};
	add_text(&badtype, 1, "\xc3\x28", "x"); /* not UTF-8 */
	assert_int_equal(create(f, "88.100.1/B", PREFIX_ADMIN, &badtype, 0, 0),
	                 HDL_RC_INVALID_VALUE);
	assert_refused(f, s1, 9, HDL_RC_INVALID_VALUE);

	/* the create-only admin of the prefix may create; an empty record is fine */
	assert_int_equal(create(f, "88.100.1/B", CREATOR, &zero, 0, 0), HDL_RC_INVALID_VALUE);
	vbuf_t none = {.n = 0};
	assert_int_equal(create(f, "88.100.1/B", CREATOR, &none, 0, 0), HDL_RC_SUCCESS);
	assert_true(exists(f->s, "88.100.1/B"));
	/* a slash-less name is a prefix handle: 0.NA/<name>, created under 0.NA (not homed) */
	assert_int_equal(create(f, "88", PREFIX_ADMIN, &none, 0, 0), HDL_RC_SERVER_NOT_RESP);
}

static void test_create_limits(void **state)
{
	fix_t *f = *state;
	writer_opts_t o = default_opts();
	o.max_record_len = 2048;
	restart(f, &o);
	static char big[3000];
	memset(big, 'x', sizeof(big) - 1);
	vbuf_t vb = {.n = 0};
	add_text(&vb, 1, "URL", big);
	snap_t s0 = snap(f);
	assert_int_equal(create(f, "88.100.1/big", PREFIX_ADMIN, &vb, 0, 0), HDL_RC_INVALID_VALUE);
	assert_refused(f, s0, 1, HDL_RC_INVALID_VALUE);
	big[1000] = '\0';
	assert_int_equal(create(f, "88.100.1/big", PREFIX_ADMIN, &vb, 0, 0), HDL_RC_INVALID_VALUE);
	vbuf_t small = {.n = 0};
	add_text(&small, 1, "URL", big);
	assert_int_equal(create(f, "88.100.1/big", PREFIX_ADMIN, &small, 0, 0), HDL_RC_SUCCESS);
	/* a name too long to mint a suffix to */
	static char longname[HDL_MAX_HANDLE_LEN];
	memcpy(longname, "88.100.1/", 9);
	memset(longname + 9, 'n', sizeof(longname) - 10);
	vbuf_t none = {.n = 0};
	assert_int_equal(create(f, longname, PREFIX_ADMIN, &none, WR_F_MINT, 0),
	                 HDL_RC_INVALID_HANDLE);
	/* more values or indexes than a message can hold */
	wr_job_t many = mkjob(f, WR_REMOVE_VALUES, "88.100.1/big", PREFIX_ADMIN);
	static uint32_t idx[HDL_MAX_VALUES + 1];
	many.indexes = idx;
	many.n_indexes = HDL_MAX_VALUES + 1;
	assert_int_equal(run(f, &many), HDL_RC_INVALID_VALUE);
	/* an unknown operation */
	wr_job_t j = mkjob(f, (wr_op_t)99, "88.100.1/big", PREFIX_ADMIN);
	assert_int_equal(run(f, &j), HDL_RC_OPERATION_NOT_SUPPORTED);
}

static void test_create_overwrite(void **state)
{
	fix_t *f = *state;
	vbuf_t vb = {.n = 0};
	add_text(&vb, 1, "URL", "u1");
	add_text(&vb, 2, "DESC", "d1");
	assert_int_equal(create(f, "88.100.1/O", PREFIX_ADMIN, &vb, 0, 1000), HDL_RC_SUCCESS);
	/* without OVRW: 101 */
	assert_int_equal(create(f, "88.100.1/O", CREATOR, &vb, 0, 0), HDL_RC_HANDLE_ALREADY_EXISTS);
	/* an overwrite that changes nothing needs no permission (Handle.Net does the same); the
	 * unchanged values keep their timestamps */
	assert_int_equal(create(f, "88.100.1/O", NOBODY, &vb, WR_F_OVERWRITE, 5000),
	                 HDL_RC_SUCCESS);
	hdl_value_t *v;
	uint32_t n;
	assert_int_equal(get_rec(f->s, "88.100.1/O", &f->arena, &v, &n), HDL_EOK);
	assert_int_equal(v[0].timestamp, 1000);
	/* a change: the creator is no admin of the existing handle (no HS_ADMIN there): 400 */
	vbuf_t changed = {.n = 0};
	add_text(&changed, 1, "URL", "u1");
	add_text(&changed, 2, "DESC", "changed");
	snap_t s0 = snap(f);
	assert_int_equal(create(f, "88.100.1/O", CREATOR, &changed, WR_F_OVERWRITE, 0),
	                 HDL_RC_INVALID_ADMIN);
	assert_refused(f, s0, 1, HDL_RC_INVALID_ADMIN);
	/* the prefix's full admin is not the handle's admin either (only server admins are) */
	assert_int_equal(create(f, "88.100.1/O", PREFIX_ADMIN, &changed, WR_F_OVERWRITE, 0),
	                 HDL_RC_INVALID_ADMIN);

	/* a record whose HS_ADMIN gives the creator DELETE_HANDLE: delete + create is allowed */
	vbuf_t own = {.n = 0};
	add_text(&own, 1, "URL", "u1");
	add_text(&own, 2, "DESC", "d1");
	add_admin(&own, 100, HDL_ADM_DELETE_HANDLE, CREATOR);
	add_admin(&own, 101, HDL_ADM_MODIFY_VALUE, NOBODY);
	assert_int_equal(create(f, "88.100.1/P", PREFIX_ADMIN, &own, 0, 1000), HDL_RC_SUCCESS);
	vbuf_t next = {.n = 0};
	add_text(&next, 1, "URL", "u1");  /* unchanged: keeps its timestamp */
	add_text(&next, 2, "DESC", "d2"); /* changed */
	add_admin(&next, 100, HDL_ADM_DELETE_HANDLE, CREATOR);
	add_admin(&next, 101, HDL_ADM_MODIFY_VALUE, NOBODY);
	assert_int_equal(create(f, "88.100.1/P", CREATOR, &next, WR_F_OVERWRITE, 2000),
	                 HDL_RC_SUCCESS);
	assert_int_equal(get_rec(f->s, "88.100.1/P", &f->arena, &v, &n), HDL_EOK);
	assert_int_equal(n, 4);
	assert_int_equal(find_index(v, n, 1)->timestamp, 1000);
	assert_int_equal(find_index(v, n, 2)->timestamp, 2000);
	assert_true(hdl_slice_eq(find_index(v, n, 2)->data, S("d2")));
	/* NOBODY has MODIFY_VALUE on P: an overwrite changing only a value needs nothing else */
	next.v[1].data = S("d3");
	assert_int_equal(create(f, "88.100.1/P", NOBODY, &next, WR_F_OVERWRITE, 3000),
	                 HDL_RC_SUCCESS);
	/* ... but dropping a value needs REMOVE_VALUE, which NOBODY lacks (and no DELETE_HANDLE) */
	next.n = 3;
	next.v[2] = next.v[3];
	assert_int_equal(create(f, "88.100.1/P", NOBODY, &next, WR_F_OVERWRITE, 3000),
	                 HDL_RC_INVALID_ADMIN);
	last_audit_t *l = malloc(sizeof(*l));
	assert_non_null(l);
	audit_last(f->s, "88.100.1/P", l);
	assert_int_equal(l->n, 4);
	assert_true(l->r.has_before); /* the refused overwrite saw the record */
	free(l);
}

static void test_mint(void **state)
{
	fix_t *f = *state;
	vbuf_t vb = {.n = 0};
	add_text(&vb, 1, "URL", "http://m/");
	wr_job_t j = mkjob(f, WR_CREATE, "88.100.1/m-", PREFIX_ADMIN);
	j.values = vb.v;
	j.n_values = vb.n;
	j.flags = WR_F_MINT;
	assert_int_equal(run(f, &j), HDL_RC_SUCCESS);
	char first[128];
	assert_int_equal(j.result_handle.len, strlen("88.100.1/m-") + 36);
	snprintf(first, sizeof(first), "%.*s", (int)j.result_handle.len,
	         (const char *)j.result_handle.p);
	assert_memory_equal(first, "88.100.1/m-", 11);
	const char *u = first + 11;
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23)
			assert_int_equal(u[i], '-');
		else
			assert_non_null(strchr("0123456789abcdef", u[i]));
	}
	assert_int_equal(u[14], '4');           /* version 4 */
	assert_non_null(strchr("89ab", u[19])); /* RFC 4122 variant */
	assert_true(exists(f->s, first));
	last_audit_t *l = malloc(sizeof(*l));
	assert_non_null(l);
	audit_last(f->s, first, l); /* the entry names the minted handle */
	assert_int_equal(l->n, 1);
	free(l);
	wr_job_t k = mkjob(f, WR_CREATE, "88.100.1/m-", PREFIX_ADMIN);
	k.flags = WR_F_MINT;
	assert_int_equal(run(f, &k), HDL_RC_SUCCESS);
	assert_false(hdl_slice_eq(j.result_handle, k.result_handle));
	/* minting under a prefix not homed here */
	wr_job_t m = mkjob(f, WR_CREATE, "88.100.2/", PREFIX_ADMIN);
	m.flags = WR_F_MINT;
	assert_int_equal(run(f, &m), HDL_RC_SERVER_NOT_RESP);
	assert_int_equal(m.result_handle.len, 0);
}

static void test_derived_prefix(void **state)
{
	fix_t *f = *state;
	vbuf_t none = {.n = 0};
	/* 0.NA/88.100.1.5 lives with 88.100.1 and needs ADD_NA on 0.NA/88.100.1 */
	assert_int_equal(create(f, "0.NA/88.100.1.5", CREATOR, &none, 0, 0), HDL_RC_INVALID_ADMIN);
	assert_int_equal(create(f, "0.NA/88.100.1.5", PREFIX_ADMIN, &none, 0, 0), HDL_RC_SUCCESS);
	assert_true(exists(f->s, "0.NA/88.100.1.5"));
	assert_int_equal(create(f, "0.NA/88.100.2.5", PREFIX_ADMIN, &none, 0, 0),
	                 HDL_RC_SERVER_NOT_RESP);
}

/** A handle with an HS_ADMIN giving \p perms to PREFIX_ADMIN, plus URL 1 and DESC 2. */
static void make_owned(fix_t *f, const char *handle, uint16_t perms)
{
	vbuf_t vb = {.n = 0};
	add_text(&vb, 1, "URL", "u1");
	add_text(&vb, 2, "DESC", "d1");
	add_admin(&vb, 100, perms, PREFIX_ADMIN);
	assert_int_equal(create(f, handle, PREFIX_ADMIN, &vb, 0, 1000), HDL_RC_SUCCESS);
}

static void test_delete(void **state)
{
	fix_t *f = *state;
	make_owned(f, "88.100.1/D", HDL_ADM_ALL & ~HDL_ADM_DELETE_HANDLE);
	make_owned(f, "88.100.1/E", HDL_ADM_DELETE_HANDLE);
	wr_job_t j = mkjob(f, WR_DELETE, "88.100.1/D", PREFIX_ADMIN);
	snap_t s0 = snap(f);
	assert_int_equal(run(f, &j), HDL_RC_INVALID_ADMIN);
	assert_refused(f, s0, 1, HDL_RC_INVALID_ADMIN);
	j = mkjob(f, WR_DELETE, "88.100.1/E", NULL);
	assert_int_equal(run(f, &j), HDL_RC_INVALID_ADMIN);
	j = mkjob(f, WR_DELETE, "88.100.1/E", PREFIX_ADMIN);
	uint64_t tx = store_txlog_last(f->s);
	assert_int_equal(run(f, &j), HDL_RC_SUCCESS);
	assert_false(exists(f->s, "88.100.1/E"));
	assert_int_equal(store_txlog_last(f->s), tx + 1);
	last_audit_t *l = malloc(sizeof(*l));
	assert_non_null(l);
	audit_last(f->s, "88.100.1/E", l);
	assert_int_equal(l->r.op, AUDIT_OP_DELETE);
	assert_true(l->r.has_before);
	assert_false(l->r.has_after);
	free(l);
	j = mkjob(f, WR_DELETE, "88.100.1/E", PREFIX_ADMIN);
	assert_int_equal(run(f, &j), HDL_RC_HANDLE_NOT_FOUND);
	/* a record under a prefix not homed here can be deleted; a missing one: 301 */
	vbuf_t vb = {.n = 0};
	add_admin(&vb, 100, HDL_ADM_DELETE_HANDLE, PREFIX_ADMIN);
	seed(f->s, "88.100.9/stray", &vb, NULL);
	j = mkjob(f, WR_DELETE, "88.100.9/stray", PREFIX_ADMIN);
	assert_int_equal(run(f, &j), HDL_RC_SUCCESS);
	j = mkjob(f, WR_DELETE, "88.100.9/stray", PREFIX_ADMIN);
	assert_int_equal(run(f, &j), HDL_RC_SERVER_NOT_RESP);
	j = mkjob(f, WR_DELETE, "", PREFIX_ADMIN);
	assert_int_equal(run(f, &j), HDL_RC_INVALID_HANDLE);
}

static uint32_t values_op(fix_t *f, wr_op_t op, const char *handle, const char *id, vbuf_t *vb,
                          uint32_t flags, uint32_t now)
{
	wr_job_t j = mkjob(f, op, handle, id);
	j.values = vb->v;
	j.n_values = vb->n;
	j.flags = flags;
	j.now = now;
	return run(f, &j);
}

static uint32_t remove_op(fix_t *f, const char *handle, const char *id, uint32_t *idx, uint32_t n)
{
	wr_job_t j = mkjob(f, WR_REMOVE_VALUES, handle, id);
	j.indexes = idx;
	j.n_indexes = n;
	return run(f, &j);
}

static void test_add(void **state)
{
	fix_t *f = *state;
	make_owned(f, "88.100.1/V", HDL_ADM_ADD_VALUE | HDL_ADM_MODIFY_VALUE);
	vbuf_t vb = {.n = 0};
	add_text(&vb, 5, "EMAIL", "a@example.org");
	add_text(&vb, 3, "URL", "u3");
	assert_int_equal(values_op(f, WR_ADD_VALUES, "88.100.1/V", PREFIX_ADMIN, &vb, 0, 2000),
	                 HDL_RC_SUCCESS);
	hdl_value_t *v;
	uint32_t n;
	assert_int_equal(get_rec(f->s, "88.100.1/V", &f->arena, &v, &n), HDL_EOK);
	assert_int_equal(n, 5);
	for (uint32_t i = 1; i < n; i++)
		assert_true(v[i - 1].index < v[i].index); /* merged in index order */
	assert_int_equal(find_index(v, n, 3)->timestamp, 2000);
	assert_int_equal(find_index(v, n, 1)->timestamp, 1000);

	snap_t s0 = snap(f);
	assert_int_equal(values_op(f, WR_ADD_VALUES, "88.100.1/V", PREFIX_ADMIN, &vb, 0, 0),
	                 HDL_RC_VALUE_ALREADY_EXISTS);
	assert_refused(f, s0, 1, HDL_RC_VALUE_ALREADY_EXISTS);
	vbuf_t empty = {.n = 0};
	assert_int_equal(values_op(f, WR_ADD_VALUES, "88.100.1/V", PREFIX_ADMIN, &empty, 0, 0),
	                 HDL_RC_INVALID_VALUE);
	vbuf_t zero = {.n = 0};
	add_text(&zero, 0, "URL", "x");
	assert_int_equal(values_op(f, WR_ADD_VALUES, "88.100.1/V", PREFIX_ADMIN, &zero, 0, 0),
	                 HDL_RC_INVALID_VALUE);
	vbuf_t dup = {.n = 0};
	add_text(&dup, 7, "URL", "x");
	add_text(&dup, 7, "URL", "y");
	assert_int_equal(values_op(f, WR_ADD_VALUES, "88.100.1/V", PREFIX_ADMIN, &dup, 0, 0),
	                 HDL_RC_VALUE_ALREADY_EXISTS);
	vbuf_t adm = {.n = 0};
	add_admin(&adm, 101, HDL_ADM_ALL, NOBODY);
	assert_int_equal(values_op(f, WR_ADD_VALUES, "88.100.1/V", PREFIX_ADMIN, &adm, 0, 0),
	                 HDL_RC_INVALID_ADMIN); /* HS_ADMIN values need ADD_ADMIN */
	assert_int_equal(values_op(f, WR_ADD_VALUES, "88.100.1/none", PREFIX_ADMIN, &vb, 0, 0),
	                 HDL_RC_HANDLE_NOT_FOUND);
	assert_int_equal(values_op(f, WR_ADD_VALUES, "88.100.1/V", NULL, &vb, 0, 0),
	                 HDL_RC_INVALID_ADMIN);
	assert_int_equal(values_op(f, WR_ADD_VALUES, "88.100.7/V", PREFIX_ADMIN, &vb, 0, 0),
	                 HDL_RC_SERVER_NOT_RESP);
	assert_refused(f, s0, 8, HDL_RC_SERVER_NOT_RESP);
	/* OVRW replaces by index (a changed value needs MODIFY_VALUE, which the admin has) */
	vbuf_t rep = {.n = 0};
	add_text(&rep, 3, "URL", "u3-new");
	assert_int_equal(
	    values_op(f, WR_ADD_VALUES, "88.100.1/V", PREFIX_ADMIN, &rep, WR_F_OVERWRITE, 3000),
	    HDL_RC_SUCCESS);
	assert_int_equal(get_rec(f->s, "88.100.1/V", &f->arena, &v, &n), HDL_EOK);
	assert_int_equal(n, 5);
	assert_true(hdl_slice_eq(find_index(v, n, 3)->data, S("u3-new")));
	assert_int_equal(find_index(v, n, 3)->timestamp, 3000);
}

static void test_remove(void **state)
{
	fix_t *f = *state;
	make_owned(f, "88.100.1/R", HDL_ADM_REMOVE_VALUE);
	uint32_t missing[] = {2, 99};
	snap_t s0 = snap(f);
	assert_int_equal(remove_op(f, "88.100.1/R", PREFIX_ADMIN, missing, 2),
	                 HDL_RC_VALUES_NOT_FOUND);
	assert_refused(f, s0, 1, HDL_RC_VALUES_NOT_FOUND);
	uint32_t admin_idx[] = {100};
	assert_int_equal(remove_op(f, "88.100.1/R", PREFIX_ADMIN, admin_idx, 1),
	                 HDL_RC_INVALID_ADMIN); /* needs REMOVE_ADMIN */
	assert_int_equal(remove_op(f, "88.100.1/R", NULL, missing, 1), HDL_RC_INVALID_ADMIN);
	assert_int_equal(remove_op(f, "88.100.1/none", PREFIX_ADMIN, missing, 1),
	                 HDL_RC_HANDLE_NOT_FOUND);
	uint32_t two[] = {2, 2};
	assert_int_equal(remove_op(f, "88.100.1/R", PREFIX_ADMIN, two, 2), HDL_RC_SUCCESS);
	hdl_value_t *v;
	uint32_t n;
	assert_int_equal(get_rec(f->s, "88.100.1/R", &f->arena, &v, &n), HDL_EOK);
	assert_int_equal(n, 2);
	assert_null(find_index(v, n, 2));
	assert_non_null(find_index(v, n, 1));
}

static void test_modify(void **state)
{
	fix_t *f = *state;
	make_owned(f, "88.100.1/M", HDL_ADM_MODIFY_VALUE);
	vbuf_t vb = {.n = 0};
	add_text(&vb, 1, "URL", "u1-new");
	assert_int_equal(values_op(f, WR_MODIFY_VALUES, "88.100.1/M", PREFIX_ADMIN, &vb, 0, 4000),
	                 HDL_RC_SUCCESS);
	hdl_value_t *v;
	uint32_t n;
	assert_int_equal(get_rec(f->s, "88.100.1/M", &f->arena, &v, &n), HDL_EOK);
	assert_int_equal(n, 3);
	assert_true(hdl_slice_eq(find_index(v, n, 1)->data, S("u1-new")));
	assert_int_equal(find_index(v, n, 1)->timestamp, 4000);
	assert_int_equal(find_index(v, n, 2)->timestamp, 1000);

	snap_t s0 = snap(f);
	vbuf_t miss = {.n = 0};
	add_text(&miss, 9, "URL", "x");
	assert_int_equal(values_op(f, WR_MODIFY_VALUES, "88.100.1/M", PREFIX_ADMIN, &miss, 0, 0),
	                 HDL_RC_VALUES_NOT_FOUND);
	assert_refused(f, s0, 1, HDL_RC_VALUES_NOT_FOUND);
	/* turning a value into an HS_ADMIN needs MODIFY_VALUE + ADD_ADMIN */
	vbuf_t toadm = {.n = 0};
	add_admin(&toadm, 2, HDL_ADM_ALL, NOBODY);
	assert_int_equal(values_op(f, WR_MODIFY_VALUES, "88.100.1/M", PREFIX_ADMIN, &toadm, 0, 0),
	                 HDL_RC_INVALID_ADMIN);
	/* an HS_ADMIN into a plain value needs REMOVE_ADMIN + MODIFY_VALUE */
	vbuf_t fromadm = {.n = 0};
	add_text(&fromadm, 100, "URL", "x");
	assert_int_equal(values_op(f, WR_MODIFY_VALUES, "88.100.1/M", PREFIX_ADMIN, &fromadm, 0, 0),
	                 HDL_RC_INVALID_ADMIN);

	/* a read-only value (no ADMIN_WRITE) is refused with 401; a PUBLIC_WRITE one anyone may
	 * change, even without authenticating */
	vbuf_t own = {.n = 0};
	add_text(&own, 1, "URL", "ro")->perms = HDL_PERM_ADMIN_READ | HDL_PERM_PUBLIC_READ;
	add_text(&own, 2, "DESC", "pw")->perms = HDL_PERM_DEFAULT | HDL_PERM_PUBLIC_WRITE;
	add_admin(&own, 100, HDL_ADM_ALL, PREFIX_ADMIN);
	assert_int_equal(create(f, "88.100.1/W", PREFIX_ADMIN, &own, 0, 0), HDL_RC_SUCCESS);
	vbuf_t m1 = {.n = 0};
	add_text(&m1, 1, "URL", "changed");
	assert_int_equal(values_op(f, WR_MODIFY_VALUES, "88.100.1/W", PREFIX_ADMIN, &m1, 0, 0),
	                 HDL_RC_INSUFFICIENT_PERMISSIONS);
	vbuf_t m2 = {.n = 0};
	add_text(&m2, 2, "DESC", "by anyone")->perms = HDL_PERM_DEFAULT | HDL_PERM_PUBLIC_WRITE;
	assert_int_equal(values_op(f, WR_MODIFY_VALUES, "88.100.1/W", NULL, &m2, 0, 0),
	                 HDL_RC_SUCCESS);
	assert_int_equal(values_op(f, WR_MODIFY_VALUES, "88.100.1/M", NULL, &vb, 0, 0),
	                 HDL_RC_INVALID_ADMIN);
	/* the same index twice in one request: the later value wins */
	vbuf_t twice = {.n = 0};
	add_text(&twice, 1, "URL", "first");
	add_text(&twice, 1, "URL", "second");
	assert_int_equal(values_op(f, WR_MODIFY_VALUES, "88.100.1/M", PREFIX_ADMIN, &twice, 0, 0),
	                 HDL_RC_SUCCESS);
	assert_int_equal(get_rec(f->s, "88.100.1/M", &f->arena, &v, &n), HDL_EOK);
	assert_int_equal(n, 3);
	assert_true(hdl_slice_eq(find_index(v, n, 1)->data, S("second")));
}

static void test_home(void **state)
{
	fix_t *f = *state;
	const char *admins[] = {"300:0.NA/88"};
	writer_opts_t o = default_opts();
	o.server_admins = admins;
	o.n_server_admins = 1;
	restart(f, &o);
	wr_job_t j = mkjob(f, WR_HOME, "0.NA/88.100.7", PREFIX_ADMIN);
	snap_t s0 = snap(f);
	assert_int_equal(run(f, &j), HDL_RC_INVALID_ADMIN); /* a prefix admin is no server admin */
	assert_refused(f, s0, 1, HDL_RC_INVALID_ADMIN);
	j = mkjob(f, WR_HOME, "88.100.1/x", "300:0.NA/88");
	assert_int_equal(run(f, &j), HDL_RC_INVALID_HANDLE);
	j = mkjob(f, WR_HOME, "0.NA/", "300:0.NA/88");
	assert_int_equal(run(f, &j), HDL_RC_INVALID_HANDLE);
	j = mkjob(f, WR_HOME, "0.NA/88.100.7", "300:0.NA/88");
	assert_int_equal(run(f, &j), HDL_RC_SUCCESS);
	vbuf_t none = {.n = 0};
	/* no prefix handle 0.NA/88.100.7: only server admins may create under it */
	assert_int_equal(create(f, "88.100.7/x", PREFIX_ADMIN, &none, 0, 0), HDL_RC_INVALID_ADMIN);
	assert_int_equal(create(f, "88.100.7/x", "300:0.NA/88", &none, 0, 0), HDL_RC_SUCCESS);
	j = mkjob(f, WR_UNHOME, "88.100.7", "300:0.NA/88"); /* slash-less: 0.NA/88.100.7 */
	assert_int_equal(run(f, &j), HDL_RC_SUCCESS);
	assert_int_equal(create(f, "88.100.7/y", "300:0.NA/88", &none, 0, 0),
	                 HDL_RC_SERVER_NOT_RESP);
	j = mkjob(f, WR_UNHOME, "0.NA/88.100.7", "300:0.NA/88");
	assert_int_equal(run(f, &j), HDL_RC_SUCCESS); /* not homed: nothing to do */
	/* the front half may vouch for a server admin */
	j = mkjob(f, WR_HOME, "0.NA/88.100.8", NOBODY);
	j.server_admin = true;
	assert_int_equal(run(f, &j), HDL_RC_SUCCESS);
	assert_int_equal(create(f, "88.100.8/z", NOBODY, &none, 0, 0), HDL_RC_INVALID_ADMIN);
}

static void test_bad_opts(void **state)
{
	fix_t *f = *state;
	writer_t *w = NULL;
	writer_opts_t o = default_opts();
	o.queue_max = 0;
	assert_int_equal(writer_start(f->s, &o, &w), HDL_EINVAL);
	o = default_opts();
	o.batch_max = 0;
	assert_int_equal(writer_start(f->s, &o, &w), HDL_EINVAL);
	const char *bad[] = {"300:0.NA/88", "0.NA/88"};
	o = default_opts();
	o.server_admins = bad;
	o.n_server_admins = 2;
	assert_int_equal(writer_start(f->s, &o, &w), HDL_EINVAL);
	assert_null(w);
	wr_job_t j = mkjob(f, WR_DELETE, "88.100.1/x", PREFIX_ADMIN);
	assert_int_equal(writer_submit(f->w, &j), HDL_EINVAL); /* no done() */
}

/* ---- group commit, queue, stop ------------------------------------------------------------ */

typedef struct burst {
	fix_t *f;
	int thread;
	int n;
	wr_job_t *jobs;
	vbuf_t vb;
	char (*names)[48];
	atomic_int *calls; /**< done() calls per job */
	waiter_t *w;
} burst_t;

static void done_count(wr_job_t *j)
{
	burst_t *b = j->owner;
	atomic_fetch_add(&b->calls[j - b->jobs], 1);
	done_signal(&(wr_job_t){.owner = b->w});
}

static void *burst_main(void *arg)
{
	burst_t *b = arg;
	for (int i = 0; i < b->n; i++) {
		wr_job_t *j = &b->jobs[i];
		snprintf(b->names[i], sizeof(b->names[i]), "88.100.1/T%d-%d", b->thread, i);
		*j = mkjob(b->f, WR_CREATE, b->names[i], PREFIX_ADMIN);
		j->arena = NULL;
		j->values = b->vb.v;
		j->n_values = b->vb.n;
		j->done = done_count;
		j->owner = b;
		int ret;
		while ((ret = writer_submit(b->f->w, j)) == HDL_EAGAIN)
			sleep_ms(1);
		assert_int_equal(ret, HDL_EOK);
	}
	return NULL;
}

/** \p threads x \p per creates submitted at once; returns after all done() calls. */
static void bursts(fix_t *f, int threads, int per, burst_t *b, waiter_t *w)
{
	pthread_t t[8];
	for (int k = 0; k < threads; k++) {
		b[k].f = f;
		b[k].thread = k;
		b[k].n = per;
		b[k].jobs = calloc((size_t)per, sizeof(wr_job_t));
		b[k].names = calloc((size_t)per, sizeof(*b[k].names));
		b[k].calls = calloc((size_t)per, sizeof(atomic_int));
		b[k].w = w;
		assert_non_null(b[k].jobs);
		assert_non_null(b[k].names);
		assert_non_null(b[k].calls);
		b[k].vb.n = 0;
		add_text(&b[k].vb, 1, "URL", "http://example.org/burst");
		assert_int_equal(pthread_create(&t[k], NULL, burst_main, &b[k]), 0);
	}
	for (int k = 0; k < threads; k++)
		pthread_join(t[k], NULL);
}

static void bursts_free(burst_t *b, int threads)
{
	for (int k = 0; k < threads; k++) {
		free(b[k].jobs);
		free(b[k].names);
		free(b[k].calls);
	}
}

static void test_group_commit(void **state)
{
	fix_t *f = *state;
	writer_opts_t o = default_opts();
	o.batch_max = 16;
	o.batch_wait_us = 5000;
	restart(f, &o);
	enum { THREADS = 4, PER = 50 };
	burst_t b[THREADS];
	waiter_t w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
	bursts(f, THREADS, PER, b, &w);
	wait_done(&w, THREADS * PER);
	for (int k = 0; k < THREADS; k++) {
		for (int i = 0; i < PER; i++) {
			assert_int_equal(atomic_load(&b[k].calls[i]), 1);
			assert_int_equal(b[k].jobs[i].rcode, HDL_RC_SUCCESS);
			assert_true(exists(f->s, b[k].names[i]));
		}
	}
	writer_stats_t st;
	writer_stats(f->w, &st);
	assert_int_equal(st.jobs, THREADS * PER + 0u);
	assert_int_equal(st.applied, THREADS * PER + 0u);
	assert_true(st.max_batch <= 16);
	assert_true(st.max_batch > 1);
	assert_true(st.batches < THREADS * PER);
	uint64_t hist = 0;
	for (int i = 0; i < 8; i++)
		hist += st.batch_hist[i];
	assert_int_equal(hist, st.batches);
	print_message("group commit: %d jobs in %llu batches, largest %u\n", THREADS * PER,
	              (unsigned long long)st.batches, st.max_batch);
	bursts_free(b, THREADS);
}

typedef struct gate {
	waiter_t w; /**< done() calls */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool entered; /**< the blocking done() runs */
	bool open;
} gate_t;

static void done_blocking(wr_job_t *j)
{
	gate_t *g = j->owner;
	pthread_mutex_lock(&g->mu);
	g->entered = true;
	pthread_cond_broadcast(&g->cv);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += WAIT_S;
	while (!g->open) {
		if (pthread_cond_timedwait(&g->cv, &g->mu, &ts) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&g->mu);
	done_signal(&(wr_job_t){.owner = &g->w});
}

static void done_gate(wr_job_t *j)
{
	gate_t *g = j->owner;
	done_signal(&(wr_job_t){.owner = &g->w});
}

static void test_queue_bound(void **state)
{
	fix_t *f = *state;
	writer_opts_t o = default_opts();
	o.queue_max = 4;
	restart(f, &o);
	gate_t g = {.w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0},
	            .mu = PTHREAD_MUTEX_INITIALIZER,
	            .cv = PTHREAD_COND_INITIALIZER};
	wr_job_t first = mkjob(f, WR_DELETE, "88.100.1/none", PREFIX_ADMIN);
	first.done = done_blocking;
	first.owner = &g;
	assert_int_equal(writer_submit(f->w, &first), HDL_EOK);
	/* wait until the writer sits in the first done(): it takes nothing more from the queue */
	pthread_mutex_lock(&g.mu);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += WAIT_S;
	while (!g.entered && pthread_cond_timedwait(&g.cv, &g.mu, &ts) != ETIMEDOUT)
		;
	assert_true(g.entered);
	pthread_mutex_unlock(&g.mu);
	wr_job_t more[5];
	for (int i = 0; i < 5; i++) {
		more[i] = mkjob(f, WR_DELETE, "88.100.1/none", PREFIX_ADMIN);
		more[i].done = done_gate;
		more[i].owner = &g;
	}
	for (int i = 0; i < 4; i++)
		assert_int_equal(writer_submit(f->w, &more[i]), HDL_EOK);
	assert_int_equal(writer_submit(f->w, &more[4]), HDL_EAGAIN);
	assert_int_equal(writer_depth(f->w), 5); /* 4 waiting + the one in its batch */
	writer_stats_t st;
	writer_stats(f->w, &st);
	assert_int_equal(st.rejected, 1);
	pthread_mutex_lock(&g.mu);
	g.open = true;
	pthread_cond_broadcast(&g.cv);
	pthread_mutex_unlock(&g.mu);
	wait_done(&g.w, 5);
	for (int i = 0; i < 4; i++)
		assert_int_equal(more[i].rcode, HDL_RC_HANDLE_NOT_FOUND);
	/* the batch counts until its last done() has returned */
	uint64_t deadline = now_ms() + WAIT_S * 1000u;
	while (writer_depth(f->w) != 0 && now_ms() < deadline)
		sleep_ms(1);
	assert_int_equal(writer_depth(f->w), 0);
}

static void test_stop_drains(void **state)
{
	fix_t *f = *state;
	writer_opts_t o = default_opts();
	o.batch_max = 8;
	restart(f, &o);
	enum { THREADS = 2, PER = 100 };
	burst_t b[THREADS];
	waiter_t w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
	bursts(f, THREADS, PER, b, &w);
	writer_stop(f->w); /* right after the last submit: every job is still answered */
	f->w = NULL;
	assert_int_equal(w.done, THREADS * PER);
	for (int k = 0; k < THREADS; k++) {
		for (int i = 0; i < PER; i++) {
			assert_int_equal(atomic_load(&b[k].calls[i]), 1);
			assert_true(exists(f->s, b[k].names[i]));
		}
	}
	bursts_free(b, THREADS);
	start(f, &o); /* for the teardown */
}

/* ---- durability --------------------------------------------------------------------------- */

/** A process that opens the store on its own and says whether it sees a handle. */
typedef struct checker {
	pid_t pid;
	int to;   /**< names, one per line */
	int from; /**< '1' seen, '0' not */
} checker_t;

static void checker_main(const char *dir, int in, int out)
{
	store_t *s = NULL;
	store_reader_t *r = NULL;
	char line[256];
	size_t len = 0;
	for (;;) {
		char c;
		ssize_t got = read(in, &c, 1);
		if (got <= 0)
			break;
		if (c != '\n') {
			if (len < sizeof(line) - 1)
				line[len++] = c;
			continue;
		}
		line[len] = '\0';
		len = 0;
		if (s == NULL) {
			store_opts_t o = {.path = dir};
			if (store_open(&o, &s) != HDL_EOK || store_reader_new(s, &r) != HDL_EOK)
				_exit(3);
		}
		hdl_slice_t v;
		char ans = '0';
		if (store_reader_begin(r) == HDL_EOK) {
			ans = store_get(r, S(line), &v) == HDL_EOK ? '1' : '0';
			store_reader_end(r);
		}
		if (write(out, &ans, 1) != 1)
			break;
	}
	store_reader_free(r);
	store_close(s);
	_exit(0);
}

static checker_t checker_start(const char *dir)
{
	int a[2], b[2];
	assert_int_equal(pipe(a), 0);
	assert_int_equal(pipe(b), 0);
	checker_t c;
	c.pid = fork();
	assert_true(c.pid >= 0);
	if (c.pid == 0) {
		close(a[1]);
		close(b[0]);
		checker_main(dir, a[0], b[1]);
	}
	close(a[0]);
	close(b[1]);
	c.to = a[1];
	c.from = b[0];
	return c;
}

static void checker_stop(checker_t *c)
{
	close(c->to);
	close(c->from);
	int st = 0;
	assert_int_equal(waitpid(c->pid, &st, 0), c->pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

typedef struct visible {
	checker_t *c;
	char name[64];
	char seen; /**< the checker's answer when done() fired */
	waiter_t *w;
} visible_t;

static void done_ask_checker(wr_job_t *j)
{
	visible_t *v = j->owner;
	char line[80];
	int n = snprintf(line, sizeof(line), "%s\n", v->name);
	v->seen = '?';
	if (write(v->c->to, line, (size_t)n) == n) {
		struct pollfd p = {.fd = v->c->from, .events = POLLIN};
		if (poll(&p, 1, WAIT_S * 1000) == 1 && read(v->c->from, &v->seen, 1) != 1)
			v->seen = '?';
	}
	done_signal(&(wr_job_t){.owner = v->w});
}

static void test_visible_at_done(void **state)
{
	fix_t *f = *state;
	shut(f, false);
	/* the checker forks before this process opens the store again or starts threads */
	checker_t c = checker_start(f->dir);
	store_opts_t so = {.path = f->dir, .map_size = 8u << 20, .txlog = true};
	assert_int_equal(store_open(&so, &f->s), HDL_EOK);
	writer_opts_t o = default_opts();
	o.batch_wait_us = 2000;
	start(f, &o);
	enum { N = 20 };
	visible_t v[N];
	wr_job_t jobs[N];
	waiter_t w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
	vbuf_t vb = {.n = 0};
	add_text(&vb, 1, "URL", "http://example.org/visible");
	for (int i = 0; i < N; i++) {
		v[i].c = &c;
		v[i].w = &w;
		snprintf(v[i].name, sizeof(v[i].name), "88.100.1/VIS-%d", i);
		jobs[i] = mkjob(f, WR_CREATE, v[i].name, i == 7 ? NOBODY : PREFIX_ADMIN);
		jobs[i].values = vb.v;
		jobs[i].n_values = vb.n;
		jobs[i].done = done_ask_checker;
		jobs[i].owner = &v[i];
		assert_int_equal(writer_submit(f->w, &jobs[i]), HDL_EOK);
	}
	wait_done(&w, N);
	for (int i = 0; i < N; i++) {
		/* when done() fired, another process already saw the change (or its absence) */
		assert_int_equal(v[i].seen, jobs[i].rcode == HDL_RC_SUCCESS ? '1' : '0');
		assert_int_equal(jobs[i].rcode, i == 7 ? HDL_RC_INVALID_ADMIN : HDL_RC_SUCCESS);
	}
	writer_stop(f->w);
	f->w = NULL;
	checker_stop(&c);
	start(f, &o);
}

/* kill -9: a child process submits creates from several threads and writes every acknowledged
 * name to a pipe; the parent kills it mid-load and checks the store. */

#define KILL_THREADS 4
#define KILL_ROUNDS  5

typedef struct kctx {
	writer_t *w;
	int out; /**< pipe to the parent */
	int round;
	int thread;
} kctx_t;

typedef struct kjob {
	wr_job_t j;
	waiter_t w;
	kctx_t *k;
	char name[64];
} kjob_t;

/** The value set of a kill-test handle: URL naming it and a 2 KiB DESC (records span pages). */
static void kill_values(const char *name, vbuf_t *vb, char *url, size_t ucap, char *pad,
                        size_t pcap)
{
	snprintf(url, ucap, "http://k.example/%s", name);
	memset(pad, 'p', pcap - 1);
	pad[pcap - 1] = '\0';
	vb->n = 0;
	add_text(vb, 1, "URL", url);
	add_text(vb, 2, "DESC", pad);
}

static void done_kill(wr_job_t *j)
{
	kjob_t *kj = j->owner;
	if (j->rcode == HDL_RC_SUCCESS) {
		char line[80];
		int n = snprintf(line, sizeof(line), "%s\n", kj->name);
		if (write(kj->k->out, line, (size_t)n) != n)
			_exit(5);
	}
	done_signal(&(wr_job_t){.owner = &kj->w});
}

static void *kill_submitter(void *arg)
{
	kctx_t *k = arg;
	kjob_t kj;
	char url[128], pad[2048];
	vbuf_t vb;
	for (int i = 0; i < 1000000; i++) {
		memset(&kj, 0, sizeof(kj));
		pthread_mutex_init(&kj.w.mu, NULL);
		pthread_cond_init(&kj.w.cv, NULL);
		kj.k = k;
		snprintf(kj.name, sizeof(kj.name), "88.100.1/K%d-%d-%d", k->round, k->thread, i);
		kill_values(kj.name, &vb, url, sizeof(url), pad, sizeof(pad));
		kj.j.op = WR_CREATE;
		kj.j.handle = S(kj.name);
		kj.j.id_handle = S("0.NA/88.100.1");
		kj.j.id_index = 300;
		kj.j.values = vb.v;
		kj.j.n_values = vb.n;
		kj.j.done = done_kill;
		kj.j.owner = &kj;
		while (writer_submit(k->w, &kj.j) == HDL_EAGAIN)
			sleep_ms(1);
		pthread_mutex_lock(&kj.w.mu);
		while (kj.w.done == 0)
			pthread_cond_wait(&kj.w.cv, &kj.w.mu);
		pthread_mutex_unlock(&kj.w.mu);
	}
	return NULL;
}

static void kill_child(const char *dir, int round, int out)
{
	alarm(2 * WAIT_S); /* never outlive a parent that failed before its kill */
	store_t *s = NULL;
	store_opts_t so = {.path = dir, .map_size = 1u << 20, .txlog = true};
	if (store_open(&so, &s) != HDL_EOK)
		_exit(3);
	writer_t *w = NULL;
	writer_opts_t o = {.queue_max = 1000, .batch_max = 32, .batch_wait_us = 500};
	if (writer_start(s, &o, &w) != HDL_EOK)
		_exit(4);
	kctx_t k[KILL_THREADS];
	pthread_t t[KILL_THREADS];
	for (int i = 0; i < KILL_THREADS; i++) {
		k[i] = (kctx_t){.w = w, .out = out, .round = round, .thread = i};
		pthread_create(&t[i], NULL, kill_submitter, &k[i]);
	}
	for (int i = 0; i < KILL_THREADS; i++)
		pthread_join(t[i], NULL);
	_exit(0);
}

typedef struct acked {
	char (*names)[64];
	unsigned n;
	unsigned cap;
} acked_t;

/** Read acknowledged names from \p fd until \p want are in or the deadline. */
static void read_acks(int fd, acked_t *a, unsigned want, uint64_t deadline_ms, char *part,
                      size_t *plen)
{
	while (a->n < want && now_ms() < deadline_ms) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 100) <= 0)
			continue;
		char buf[4096];
		ssize_t got = read(fd, buf, sizeof(buf));
		if (got <= 0)
			break;
		for (ssize_t i = 0; i < got; i++) {
			if (buf[i] != '\n') {
				if (*plen < 63)
					part[(*plen)++] = buf[i];
				continue;
			}
			part[*plen] = '\0';
			if (a->n == a->cap) {
				a->cap = a->cap ? a->cap * 2 : 256;
				a->names = realloc(a->names, sizeof(*a->names) * a->cap);
				assert_non_null(a->names);
			}
			memcpy(a->names[a->n++], part, *plen + 1);
			*plen = 0;
		}
	}
}

static int count_cb(void *ctx, hdl_slice_t key, hdl_slice_t vals)
{
	(*(uint64_t *)ctx)++;
	(void)key;
	(void)vals;
	return 0;
}

static void test_kill9(void **state)
{
	fix_t *f = *state;
	shut(f, false);
	acked_t all = {0};
	unsigned seed = (unsigned)time(NULL);
	for (int round = 0; round < KILL_ROUNDS; round++) {
		int p[2];
		assert_int_equal(pipe(p), 0);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(p[0]);
			kill_child(f->dir, round, p[1]);
		}
		close(p[1]);
		/* kill after a varying number of acknowledgements */
		unsigned want = 20 + (unsigned)(rand_r(&seed) % 150);
		acked_t a = {0};
		char part[64];
		size_t plen = 0;
		read_acks(p[0], &a, want, now_ms() + WAIT_S * 1000u, part, &plen);
		assert_true(a.n >= want);
		kill(pid, SIGKILL);
		int st = 0;
		assert_int_equal(waitpid(pid, &st, 0), pid);
		assert_true(WIFSIGNALED(st));
		/* what the child had acknowledged before it died is still in the pipe */
		read_acks(p[0], &a, UINT32_MAX, now_ms() + WAIT_S * 1000u, part, &plen);
		close(p[0]);
		for (unsigned i = 0; i < a.n; i++) {
			if (all.n == all.cap) {
				all.cap = all.cap ? all.cap * 2 : 256;
				all.names = realloc(all.names, sizeof(*all.names) * all.cap);
				assert_non_null(all.names);
			}
			memcpy(all.names[all.n++], a.names[i], 64);
		}
		free(a.names);

		/* every acknowledged name is there with its full record; every record decodes */
		store_opts_t so = {.path = f->dir, .txlog = true};
		assert_int_equal(store_open(&so, &f->s), HDL_EOK);
		for (unsigned i = 0; i < all.n; i++) {
			hdl_value_t *v;
			uint32_t n;
			hdl_arena_reset(&f->arena);
			assert_int_equal(get_rec(f->s, all.names[i], &f->arena, &v, &n), HDL_EOK);
			char url[128], pad[2048];
			vbuf_t vb;
			kill_values(all.names[i], &vb, url, sizeof(url), pad, sizeof(pad));
			assert_int_equal(n, 2);
			assert_true(hdl_slice_eq(v[0].data, vb.v[0].data));
			assert_true(hdl_slice_eq(v[1].data, vb.v[1].data));
		}
		store_reader_t *r = NULL;
		uint64_t seen = 0;
		assert_int_equal(store_reader_new(f->s, &r), HDL_EOK);
		assert_int_equal(store_reader_begin(r), HDL_EOK);
		assert_int_equal(store_foreach(r, S(""), count_cb, &seen), HDL_EOK);
		store_reader_free(r);
		assert_int_equal(seen, store_count(f->s)); /* none skipped as corrupted */
		assert_true(seen >= all.n + 1);
		print_message("kill -9 round %d: %u acknowledged so far, %llu records\n", round + 1,
		              all.n, (unsigned long long)seen);
		store_close(f->s);
		f->s = NULL;
	}
	free(all.names);
	store_opts_t so = {.path = f->dir, .txlog = true};
	assert_int_equal(store_open(&so, &f->s), HDL_EOK);
	writer_opts_t o = default_opts();
	start(f, &o);
}

/* ---- map growth, retention, periodic sync ------------------------------------------------- */

static void test_growth_savepoint_store(void **state)
{
	fix_t *f = *state;
	small_store(f);
	uint64_t map0 = store_map_size(f->s);
	static char pad[16384];
	memset(pad, 'g', sizeof(pad) - 1);
	vbuf_t vb = {.n = 0};
	add_text(&vb, 1, "DESC", pad);
	uint8_t buf[20000];
	size_t len = 0;
	assert_int_equal(hdl_values_encode(vb.v, vb.n, buf, sizeof(buf), &len), HDL_EOK);
	hdl_slice_t rec = {buf, (uint32_t)len};
	char name[64];
	store_batch_t *b = NULL;
	assert_int_equal(store_batch_begin(f->s, &b), HDL_EOK);
	assert_int_equal(store_batch_put(b, S("88.100.1/kept"), rec, true), HDL_EOK);
	/* a savepoint that grows the map, then rolls back */
	assert_int_equal(store_batch_savepoint(b), HDL_EOK);
	for (int i = 0; i < 40; i++) {
		snprintf(name, sizeof(name), "88.100.1/gone-%d", i);
		assert_int_equal(store_batch_put(b, S(name), rec, true), HDL_EOK);
	}
	assert_true(store_map_size(f->s) > map0);
	store_batch_rollback(b);
	hdl_slice_t got;
	assert_int_equal(store_batch_get(b, S("88.100.1/gone-0"), &got), HDL_ENOENT);
	/* a savepoint that grows it further and is kept */
	uint64_t map1 = store_map_size(f->s);
	assert_int_equal(store_batch_savepoint(b), HDL_EOK);
	for (int i = 0; i < 80; i++) {
		snprintf(name, sizeof(name), "88.100.1/in-%d", i);
		assert_int_equal(store_batch_put(b, S(name), rec, true), HDL_EOK);
	}
	assert_true(store_map_size(f->s) > map1);
	assert_int_equal(store_batch_release(b), HDL_EOK);
	assert_int_equal(store_batch_commit(b), HDL_EOK);
	assert_int_equal(store_count(f->s), 81);
	assert_int_equal(store_txlog_last(f->s), 81);
	assert_false(exists(f->s, "88.100.1/gone-3"));
	assert_true(exists(f->s, "88.100.1/in-79"));
	assert_true(exists(f->s, "88.100.1/kept"));
	seed_prefix(f->s);
	writer_opts_t o = default_opts();
	start(f, &o);
}

static void test_growth_in_batch(void **state)
{
	fix_t *f = *state;
	small_store(f);
	seed_prefix(f->s);
	uint64_t map0 = store_map_size(f->s), tx0 = store_txlog_last(f->s);
	unsigned au0 = audit_count(f->s);
	/* one batch of 64 jobs: every 4th is refused (not homed), the others bring 16 KiB each */
	writer_opts_t o = default_opts();
	o.batch_max = 64;
	o.batch_wait_us = 30000000; /* the batch closes when all 64 are in */
	start(f, &o);
	static char pad[16384];
	memset(pad, 'b', sizeof(pad) - 1);
	vbuf_t vb = {.n = 0};
	add_text(&vb, 1, "DESC", pad);
	enum { N = 64 };
	wr_job_t jobs[N];
	char names[N][48];
	waiter_t w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
	for (int i = 0; i < N; i++) {
		snprintf(names[i], sizeof(names[i]), "88.100.%d/G%d", i % 4 == 3 ? 2 : 1, i);
		jobs[i] = mkjob(f, WR_CREATE, names[i], PREFIX_ADMIN);
		jobs[i].values = vb.v;
		jobs[i].n_values = vb.n;
		jobs[i].done = done_signal;
		jobs[i].owner = &w;
		jobs[i].arena = NULL;
		assert_int_equal(writer_submit(f->w, &jobs[i]), HDL_EOK);
	}
	wait_done(&w, N);
	writer_stats_t st;
	writer_stats(f->w, &st);
	assert_int_equal(st.max_batch, N);
	assert_int_equal(st.batches, 1);
	assert_true(store_map_size(f->s) > map0);
	unsigned ok = 0;
	for (int i = 0; i < N; i++) {
		bool refused = i % 4 == 3;
		assert_int_equal(jobs[i].rcode, refused ? HDL_RC_SERVER_NOT_RESP : HDL_RC_SUCCESS);
		assert_int_equal(exists(f->s, names[i]), !refused);
		ok += !refused;
	}
	assert_int_equal(store_txlog_last(f->s), tx0 + ok);
	assert_int_equal(audit_count(f->s), au0 + N);
	print_message("map grown from %llu to %llu bytes in one batch of %d jobs\n",
	              (unsigned long long)map0, (unsigned long long)store_map_size(f->s), N);
}

static void test_retention(void **state)
{
	fix_t *f = *state;
	writer_opts_t o = default_opts();
	o.audit_retention_s = 3600;
	o.audit_prune_step = 2;
	o.audit_prune_interval_ms = 10;
	restart(f, &o);
	uint32_t now = (uint32_t)time(NULL);
	vbuf_t none = {.n = 0};
	char name[32];
	for (int i = 0; i < 5; i++) {
		snprintf(name, sizeof(name), "88.100.1/old%d", i);
		assert_int_equal(create(f, name, PREFIX_ADMIN, &none, 0, now - 7200 + (uint32_t)i),
		                 HDL_RC_SUCCESS);
	}
	assert_int_equal(create(f, "88.100.1/new", PREFIX_ADMIN, &none, 0, now), HDL_RC_SUCCESS);
	/* the old entries go in steps of 2 between batches or while idle; the new one stays */
	uint64_t deadline = now_ms() + WAIT_S * 1000u;
	while (audit_count(f->s) > 1 && now_ms() < deadline)
		sleep_ms(20);
	assert_int_equal(audit_count(f->s), 1);
	writer_stats_t st;
	writer_stats(f->w, &st);
	assert_int_equal(st.pruned, 5);
	last_audit_t *l = malloc(sizeof(*l));
	assert_non_null(l);
	audit_last(f->s, NULL, l);
	assert_true(hdl_slice_eq(l->r.handle, S("88.100.1/new")));
	free(l);
	assert_true(exists(f->s, "88.100.1/old0")); /* retention prunes the trail, not handles */
}

static void test_periodic_sync(void **state)
{
	fix_t *f = *state;
	writer_opts_t o = default_opts();
	o.sync = WR_SYNC_PERIODIC;
	o.sync_interval_ms = 20;
	restart(f, &o);
	vbuf_t none = {.n = 0};
	assert_int_equal(create(f, "88.100.1/ps1", PREFIX_ADMIN, &none, 0, 0), HDL_RC_SUCCESS);
	uint64_t deadline = now_ms() + WAIT_S * 1000u;
	writer_stats_t st;
	do {
		sleep_ms(10);
		writer_stats(f->w, &st);
	} while (st.syncs == 0 && now_ms() < deadline);
	assert_true(st.syncs >= 1);
	assert_int_equal(create(f, "88.100.1/ps2", PREFIX_ADMIN, &none, 0, 0), HDL_RC_SUCCESS);
	assert_true(exists(f->s, "88.100.1/ps2"));
}

static void test_opts_from_conf(void **state)
{
	conf_t c;
	char err[256];
	assert_int_equal(conf_init(&c), HDL_EOK);
	writer_opts_t o;
	writer_opts_from_conf(&c, &o);
	assert_int_equal(o.queue_max, 10000);
	assert_int_equal(o.batch_max, 512);
	assert_int_equal(o.batch_wait_us, 0);
	assert_int_equal(o.sync, WR_SYNC_FULL);
	assert_int_equal(o.audit_retention_s, 183u * 86400u); /* >= 6 months by default */
	assert_int_equal(o.n_server_admins, 0);
	const char *text = "write_queue_max = 7\nwrite_batch_max = 3\nwrite_batch_wait_us = 250\n"
	                   "write_sync = periodic\nwrite_sync_interval_ms = 50\n"
	                   "server_admin = 300:0.NA/88\nserver_admin = 0:0.NA/88.100.1\n"
	                   "audit_retention_days = 0\nwrite_max_record = 64k\n"
	                   "authz_max_depth = 3\nauthz_max_groups = 9\naudit_prune_step = 5\n";
	assert_int_equal(conf_load_buf(&c, "t", text, strlen(text), err, sizeof(err)), HDL_EOK);
	writer_opts_from_conf(&c, &o);
	assert_int_equal(o.queue_max, 7);
	assert_int_equal(o.batch_max, 3);
	assert_int_equal(o.batch_wait_us, 250);
	assert_int_equal(o.sync, WR_SYNC_PERIODIC);
	assert_int_equal(o.sync_interval_ms, 50);
	assert_int_equal(o.n_server_admins, 2);
	assert_string_equal(o.server_admins[1], "0:0.NA/88.100.1");
	assert_int_equal(o.audit_retention_s, 0);
	assert_int_equal(o.max_record_len, 65536);
	assert_int_equal(o.authz_max_depth, 3);
	assert_int_equal(o.authz_max_groups, 9);
	assert_int_equal(o.audit_prune_step, 5);
	/* bad values are configuration errors */
	assert_int_equal(conf_set(&c, "server_admin", "0.NA/88", err, sizeof(err)), HDL_ECONF);
	assert_int_equal(conf_set(&c, "server_admin", "x:0.NA/88", err, sizeof(err)), HDL_ECONF);
	assert_int_equal(conf_set(&c, "server_admin", "1:", err, sizeof(err)), HDL_ECONF);
	assert_int_equal(conf_set(&c, "write_queue_max", "0", err, sizeof(err)), HDL_ECONF);
	assert_int_equal(conf_set(&c, "write_max_record", "300k", err, sizeof(err)), HDL_ECONF);
	assert_int_equal(conf_set(&c, "write_sync", "sometimes", err, sizeof(err)), HDL_EOK);
	assert_int_equal(conf_validate(&c, err, sizeof(err)), HDL_ECONF);
	assert_non_null(strstr(err, "write_sync"));
	conf_free(&c);
	(void)state;
}

int main(void)
{
	log_set_level(LOG_LVL_WARN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_create, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_create_limits, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_create_overwrite, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_mint, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_derived_prefix, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_add, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_remove, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_modify, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_home, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_opts, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_queue_bound, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stop_drains, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_visible_at_done, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_kill9, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_growth_savepoint_store, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_growth_in_batch, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_retention, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_periodic_sync, setup, teardown),
	    cmocka_unit_test(test_opts_from_conf),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
