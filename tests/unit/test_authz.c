/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief cmocka tests of node/server/authz: HS_ADMIN permission bits, index 0, name case,
 *        HS_VLIST groups (nesting, depth and lookup bounds, cycles), server admins, missing
 *        records and lookup errors; over an in-memory table of records.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hdl/error.h"
#include "hdl/msg.h"
#include "hdl/values.h"
#include "node/server/authz.h"
#include "node/store/store.h"
#include "tests/unit/testutil.h"

/* ---- an in-memory record table ------------------------------------------------------------ */

#define MAX_RECS 64
#define MAX_VALS 8

typedef struct rec {
	char name[64];
	uint8_t buf[4096];
	size_t len;
	bool broken; /**< lookup fails with HDL_ESTORE */
} rec_t;

typedef struct table {
	rec_t r[MAX_RECS];
	unsigned n;
	unsigned lookups; /**< calls of the lookup callback */
} table_t;

static table_t T;

static int lookup(void *ctx, hdl_slice_t handle, hdl_slice_t *vals)
{
	table_t *t = ctx;
	t->lookups++;
	for (unsigned i = 0; i < t->n; i++) {
		if (strlen(t->r[i].name) == handle.len &&
		    memcmp(t->r[i].name, handle.p, handle.len) == 0) {
			if (t->r[i].broken)
				return HDL_ESTORE;
			vals->p = t->r[i].buf;
			vals->len = (uint32_t)t->r[i].len;
			return HDL_EOK;
		}
	}
	return HDL_ENOENT;
}

/** A value under construction: type + data bytes. */
typedef struct vspec {
	uint32_t index;
	const char *type;
	uint8_t data[1024];
	size_t len;
} vspec_t;

static vspec_t admin_v(uint32_t index, uint16_t perms, const char *handle, uint32_t aidx)
{
	vspec_t v = {.index = index, .type = "HS_ADMIN"};
	hdl_admin_t a = {.perms = perms, .handle = hdl_slice_str(handle), .index = aidx};
	assert_int_equal(hdl_admin_encode(&a, v.data, sizeof(v.data), &v.len), HDL_EOK);
	return v;
}

/** HS_VLIST of "INDEX:HANDLE" strings, NULL-terminated. */
static vspec_t vlist_v(uint32_t index, const char *const *members)
{
	vspec_t v = {.index = index, .type = "HS_VLIST"};
	hdl_ref_t refs[16];
	uint32_t n = 0;
	for (; members[n]; n++)
		assert_int_equal(authz_parse_admin(members[n], &refs[n]), HDL_EOK);
	assert_int_equal(hdl_vlist_encode(refs, n, v.data, sizeof(v.data), &v.len), HDL_EOK);
	return v;
}

static vspec_t text_v(uint32_t index, const char *type, const char *text)
{
	vspec_t v = {.index = index, .type = type};
	v.len = strlen(text);
	memcpy(v.data, text, v.len);
	return v;
}

/** Encode the values into \p out (U32 count + values). */
static size_t encode(const vspec_t *vs, unsigned n, uint8_t *out, size_t cap)
{
	hdl_value_t v[MAX_VALS];
	memset(v, 0, sizeof(v));
	for (unsigned i = 0; i < n; i++) {
		v[i].index = vs[i].index;
		v[i].ttl = 86400;
		v[i].perms = HDL_PERM_DEFAULT;
		v[i].type = hdl_slice_str(vs[i].type);
		v[i].data.p = vs[i].data;
		v[i].data.len = (uint32_t)vs[i].len;
	}
	size_t len = 0;
	assert_int_equal(hdl_values_encode(v, n, out, cap, &len), HDL_EOK);
	return len;
}

static void put(const char *name, const vspec_t *vs, unsigned n)
{
	assert_true(T.n < MAX_RECS);
	rec_t *r = &T.r[T.n++];
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->len = encode(vs, n, r->buf, sizeof(r->buf));
	r->broken = false;
}

/** The record of \p name as a slice (must exist). */
static hdl_slice_t rec_of(const char *name)
{
	hdl_slice_t v;
	assert_int_equal(lookup(&T, hdl_slice_str(name), &v), HDL_EOK);
	T.lookups--; /* count only the lookups authz makes */
	return v;
}

static hdl_ref_t ID(const char *s)
{
	hdl_ref_t r;
	assert_int_equal(authz_parse_admin(s, &r), HDL_EOK);
	return r;
}

static uint8_t abuf[16384];

static int check(const authz_t *az, const char *id, const char *record, uint16_t need)
{
	hdl_arena_t a;
	hdl_arena_init(&a, abuf, sizeof(abuf), 1u << 20);
	hdl_slice_t vals = record ? rec_of(record) : (hdl_slice_t){NULL, 0};
	int r = authz_check(az, ID(id), vals, need, &a);
	hdl_arena_free(&a);
	return r;
}

static int setup(void **state)
{
	memset(&T, 0, sizeof(T));
	*state = &T;
	return 0;
}

static authz_t AZ(void)
{
	authz_t az = {.lookup = lookup, .ctx = &T};
	return az;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_bits(void **state)
{
	/* the handle's own admin: ADD_VALUE and REMOVE_VALUE only; a second HS_ADMIN with ADD_ADMIN
	 */
	vspec_t vs[] = {
	    admin_v(100, HDL_ADM_ADD_VALUE | HDL_ADM_REMOVE_VALUE, "0.NA/88.100.1", 300),
	    admin_v(101, HDL_ADM_ADD_ADMIN, "0.NA/88.100.1", 300),
	    text_v(1, "URL", "http://example.org/"),
	};
	put("88.100.1/x", vs, 3);
	authz_t az = AZ();
	assert_int_equal(check(&az, "300:0.NA/88.100.1", "88.100.1/x", HDL_ADM_ADD_VALUE),
	                 AUTHZ_GRANTED);
	assert_int_equal(
	    check(&az, "300:0.NA/88.100.1", "88.100.1/x", HDL_ADM_ADD_VALUE | HDL_ADM_REMOVE_VALUE),
	    AUTHZ_GRANTED);
	assert_int_equal(check(&az, "300:0.NA/88.100.1", "88.100.1/x", HDL_ADM_ADD_ADMIN),
	                 AUTHZ_GRANTED);
	/* every needed bit must be in one HS_ADMIN value: 100 and 101 together do not count */
	assert_int_equal(
	    check(&az, "300:0.NA/88.100.1", "88.100.1/x", HDL_ADM_ADD_VALUE | HDL_ADM_ADD_ADMIN),
	    AUTHZ_DENIED);
	assert_int_equal(check(&az, "300:0.NA/88.100.1", "88.100.1/x", HDL_ADM_DELETE_HANDLE),
	                 AUTHZ_DENIED);
	/* another identity, or another index of the same handle */
	assert_int_equal(check(&az, "300:0.NA/88.100.2", "88.100.1/x", HDL_ADM_ADD_VALUE),
	                 AUTHZ_DENIED);
	assert_int_equal(check(&az, "301:0.NA/88.100.1", "88.100.1/x", HDL_ADM_ADD_VALUE),
	                 AUTHZ_DENIED);
	/* no identity at all */
	hdl_arena_t a;
	hdl_arena_init(&a, abuf, sizeof(abuf), 0);
	hdl_ref_t none = {{NULL, 0}, 0};
	assert_int_equal(authz_check(&az, none, rec_of("88.100.1/x"), HDL_ADM_ADD_VALUE, &a),
	                 AUTHZ_DENIED);
	hdl_arena_free(&a);
	/* no record: nobody but server admins */
	assert_int_equal(check(&az, "300:0.NA/88.100.1", NULL, HDL_ADM_ADD_VALUE), AUTHZ_DENIED);
	(void)state;
}

static void test_index_zero_and_case(void **state)
{
	vspec_t vs[] = {
	    admin_v(100, HDL_ADM_ALL, "88.100.1/Admin", 0),
	    admin_v(101, HDL_ADM_ALL, "0.na/88.100.2", 300),
	};
	put("88.100.1/y", vs, 2);
	authz_t az = AZ();
	/* index 0 in the HS_ADMIN: any index of that handle */
	assert_int_equal(check(&az, "300:88.100.1/Admin", "88.100.1/y", HDL_ADM_ADD_VALUE),
	                 AUTHZ_GRANTED);
	assert_int_equal(check(&az, "7:88.100.1/Admin", "88.100.1/y", HDL_ADM_ADD_VALUE),
	                 AUTHZ_GRANTED);
	/* the prefix compares case-insensitively, the suffix does not */
	assert_int_equal(check(&az, "300:88.100.1/Admin", "88.100.1/y", HDL_ADM_ADD_VALUE),
	                 AUTHZ_GRANTED);
	assert_int_equal(check(&az, "300:88.100.1/ADMIN", "88.100.1/y", HDL_ADM_ADD_VALUE),
	                 AUTHZ_DENIED);
	/* "0." handles compare case-insensitively as a whole */
	assert_int_equal(check(&az, "300:0.NA/88.100.2", "88.100.1/y", HDL_ADM_ADD_VALUE),
	                 AUTHZ_GRANTED);
	/* an identity with index 0 does not match a specific index */
	assert_int_equal(check(&az, "0:0.NA/88.100.2", "88.100.1/y", HDL_ADM_ADD_VALUE),
	                 AUTHZ_DENIED);

	hdl_ref_t e = ID("0:88.100.A/x"), i1 = ID("5:88.100.a/x"), i2 = ID("5:88.100.a/X");
	assert_true(authz_ref_matches(e, i1));
	assert_false(authz_ref_matches(e, i2));
	(void)state;
}

static void test_groups(void **state)
{
	/* HS_ADMIN -> group G1 (200) -> group G2 (200) -> user */
	const char *g1[] = {"300:88.100.1/other", "200:88.100.1/G2", NULL};
	const char *g2[] = {"300:88.100.1/user", NULL};
	vspec_t r[] = {admin_v(100, HDL_ADM_ADD_VALUE, "88.100.1/G1", 200)};
	vspec_t v1[] = {text_v(1, "URL", "x"), vlist_v(200, g1)};
	vspec_t v2[] = {vlist_v(200, g2),
	                vlist_v(201, (const char *[]){"1:88.100.1/nobody", NULL})};
	put("88.100.1/rec", r, 1);
	put("88.100.1/G1", v1, 2);
	put("88.100.1/G2", v2, 2);
	authz_t az = AZ();
	assert_int_equal(check(&az, "300:88.100.1/other", "88.100.1/rec", HDL_ADM_ADD_VALUE),
	                 AUTHZ_GRANTED);
	assert_int_equal(check(&az, "300:88.100.1/user", "88.100.1/rec", HDL_ADM_ADD_VALUE),
	                 AUTHZ_GRANTED);
	/* a member of a group at another index of G2 is not in G2:200 */
	assert_int_equal(check(&az, "1:88.100.1/nobody", "88.100.1/rec", HDL_ADM_ADD_VALUE),
	                 AUTHZ_DENIED);
	/* the group membership does not give bits the HS_ADMIN lacks */
	assert_int_equal(check(&az, "300:88.100.1/user", "88.100.1/rec", HDL_ADM_DELETE_HANDLE),
	                 AUTHZ_DENIED);
	/* depth: user is two groups deep */
	az.max_depth = 1;
	assert_int_equal(check(&az, "300:88.100.1/user", "88.100.1/rec", HDL_ADM_ADD_VALUE),
	                 HDL_ELIMIT);
	assert_int_equal(check(&az, "300:88.100.1/other", "88.100.1/rec", HDL_ADM_ADD_VALUE),
	                 AUTHZ_GRANTED);
	az.max_depth = 2;
	assert_int_equal(check(&az, "300:88.100.1/user", "88.100.1/rec", HDL_ADM_ADD_VALUE),
	                 AUTHZ_GRANTED);
	(void)state;
}

static void test_group_index_zero_not_followed(void **state)
{
	const char *g[] = {"300:88.100.1/user", NULL};
	vspec_t r[] = {admin_v(100, HDL_ADM_ALL, "88.100.1/G", 0)};
	vspec_t gv[] = {vlist_v(200, g)};
	put("88.100.1/rec", r, 1);
	put("88.100.1/G", gv, 1);
	authz_t az = AZ();
	T.lookups = 0;
	assert_int_equal(check(&az, "300:88.100.1/user", "88.100.1/rec", HDL_ADM_ADD_VALUE),
	                 AUTHZ_DENIED);
	assert_int_equal(T.lookups, 0); /* nothing looked up for an index-0 reference */
	(void)state;
}

static void test_cycles_and_bounds(void **state)
{
	/* A -> B -> C -> A, nobody is the user; each group is looked up once */
	const char *a[] = {"200:88.100.1/B", NULL};
	const char *b[] = {"200:88.100.1/C", NULL};
	const char *c[] = {"200:88.100.1/A", "200:88.100.1/B", NULL};
	vspec_t r[] = {admin_v(100, HDL_ADM_ALL, "88.100.1/A", 200)};
	vspec_t va[] = {vlist_v(200, a)}, vb[] = {vlist_v(200, b)}, vc[] = {vlist_v(200, c)};
	put("88.100.1/rec", r, 1);
	put("88.100.1/A", va, 1);
	put("88.100.1/B", vb, 1);
	put("88.100.1/C", vc, 1);
	authz_t az = AZ();
	T.lookups = 0;
	assert_int_equal(check(&az, "300:88.100.1/user", "88.100.1/rec", HDL_ADM_ADD_VALUE),
	                 AUTHZ_DENIED);
	assert_int_equal(T.lookups, 3);

	/* a long chain: G0 -> G1 -> ... -> G11 -> user */
	char name[32], next[40];
	for (int i = 0; i < 12; i++) {
		snprintf(name, sizeof(name), "88.100.1/G%d", i);
		if (i < 11)
			snprintf(next, sizeof(next), "200:88.100.1/G%d", i + 1);
		else
			snprintf(next, sizeof(next), "300:88.100.1/user");
		const char *m[] = {next, NULL};
		vspec_t gv[] = {vlist_v(200, m)};
		put(name, gv, 1);
	}
	vspec_t r2[] = {admin_v(100, HDL_ADM_ALL, "88.100.1/G0", 200)};
	put("88.100.1/rec2", r2, 1);
	az.max_depth = 0; /* default: 8 */
	assert_int_equal(check(&az, "300:88.100.1/user", "88.100.1/rec2", HDL_ADM_ADD_VALUE),
	                 HDL_ELIMIT);
	az.max_depth = 12;
	assert_int_equal(check(&az, "300:88.100.1/user", "88.100.1/rec2", HDL_ADM_ADD_VALUE),
	                 AUTHZ_GRANTED);
	/* the lookup bound */
	az.max_groups = 5;
	T.lookups = 0;
	assert_int_equal(check(&az, "300:88.100.1/user", "88.100.1/rec2", HDL_ADM_ADD_VALUE),
	                 HDL_ELIMIT);
	assert_true(T.lookups <= 5);
	(void)state;
}

static void test_server_admins(void **state)
{
	const char *g[] = {"300:88.100.9/ops", NULL};
	vspec_t gv[] = {vlist_v(200, g)};
	put("0.NA/88.100.9", gv, 1);
	vspec_t r[] = {admin_v(100, HDL_ADM_ADD_VALUE, "88.100.1/someone", 300)};
	put("88.100.1/rec", r, 1);
	hdl_ref_t admins[] = {ID("300:0.NA/88"), ID("200:0.NA/88.100.9")};
	authz_t az = AZ();
	az.server_admins = admins;
	az.n_server_admins = 2;
	/* direct: any bits on any record, also without a record */
	assert_int_equal(check(&az, "300:0.NA/88", "88.100.1/rec", HDL_ADM_DELETE_HANDLE),
	                 AUTHZ_GRANTED);
	assert_int_equal(check(&az, "300:0.NA/88", NULL, HDL_ADM_ADD_HANDLE), AUTHZ_GRANTED);
	/* through the group a server admin entry names */
	assert_int_equal(check(&az, "300:88.100.9/ops", NULL, HDL_ADM_ADD_HANDLE), AUTHZ_GRANTED);
	assert_int_equal(check(&az, "301:88.100.9/ops", NULL, HDL_ADM_ADD_HANDLE), AUTHZ_DENIED);

	hdl_arena_t a;
	hdl_arena_init(&a, abuf, sizeof(abuf), 0);
	assert_int_equal(authz_server_admin(&az, ID("300:0.NA/88"), &a), AUTHZ_GRANTED);
	assert_int_equal(authz_server_admin(&az, ID("300:88.100.9/ops"), &a), AUTHZ_GRANTED);
	/* an admin of a record is not a server admin */
	assert_int_equal(authz_server_admin(&az, ID("300:88.100.1/someone"), &a), AUTHZ_DENIED);
	az.n_server_admins = 0;
	assert_int_equal(authz_server_admin(&az, ID("300:0.NA/88"), &a), AUTHZ_DENIED);
	hdl_arena_free(&a);
	(void)state;
}

static void test_missing_and_broken(void **state)
{
	/* the group record is missing: denied; a failing lookup: HDL_ESTORE */
	vspec_t r[] = {admin_v(100, HDL_ADM_ALL, "88.100.1/gone", 200),
	               admin_v(101, HDL_ADM_ALL, "88.100.1/broken", 200)};
	put("88.100.1/rec", r, 1);
	put("88.100.1/rec2", r, 2);
	vspec_t bv[] = {text_v(1, "URL", "x")};
	put("88.100.1/broken", bv, 1);
	T.r[T.n - 1].broken = true;
	authz_t az = AZ();
	assert_int_equal(check(&az, "300:88.100.1/user", "88.100.1/rec", HDL_ADM_ADD_VALUE),
	                 AUTHZ_DENIED);
	assert_int_equal(check(&az, "300:88.100.1/user", "88.100.1/rec2", HDL_ADM_ADD_VALUE),
	                 HDL_ESTORE);
	/* a direct match still grants, whatever the groups do */
	assert_int_equal(check(&az, "200:88.100.1/broken", "88.100.1/rec2", HDL_ADM_ADD_VALUE),
	                 AUTHZ_GRANTED);
	(void)state;
}

static void test_malformed_values_skipped(void **state)
{
	vspec_t bad = {.index = 100, .type = "HS_ADMIN", .len = 3}; /* too short for an admin */
	vspec_t badlist = {.index = 200, .type = "HS_VLIST", .len = 7};
	memcpy(badlist.data, "\0\0\0\5abc", 7);
	vspec_t r[] = {bad, admin_v(101, HDL_ADM_ALL, "88.100.1/G", 200),
	               admin_v(102, HDL_ADM_ADD_VALUE, "88.100.1/u", 1)};
	vspec_t gv[] = {badlist};
	put("88.100.1/rec", r, 3);
	put("88.100.1/G", gv, 1);
	authz_t az = AZ();
	assert_int_equal(check(&az, "1:88.100.1/u", "88.100.1/rec", HDL_ADM_ADD_VALUE),
	                 AUTHZ_GRANTED);
	assert_int_equal(check(&az, "2:88.100.1/u", "88.100.1/rec", HDL_ADM_ADD_VALUE),
	                 AUTHZ_DENIED);
	/* subtypes of HS_ADMIN count; other types do not */
	vspec_t sub[] = {admin_v(100, HDL_ADM_ALL, "88.100.1/u", 1)};
	sub[0].type = "HS_ADMIN.extra";
	put("88.100.1/sub", sub, 1);
	vspec_t notadm[] = {admin_v(100, HDL_ADM_ALL, "88.100.1/u", 1)};
	notadm[0].type = "HS_ADMINX";
	put("88.100.1/notadm", notadm, 1);
	assert_int_equal(check(&az, "1:88.100.1/u", "88.100.1/sub", HDL_ADM_ADD_VALUE),
	                 AUTHZ_GRANTED);
	assert_int_equal(check(&az, "1:88.100.1/u", "88.100.1/notadm", HDL_ADM_ADD_VALUE),
	                 AUTHZ_DENIED);
	(void)state;
}

static void test_parse_and_types(void **state)
{
	hdl_ref_t r;
	assert_int_equal(authz_parse_admin("300:0.NA/88.100.1", &r), HDL_EOK);
	assert_int_equal(r.index, 300);
	assert_int_equal(r.handle.len, strlen("0.NA/88.100.1"));
	assert_int_equal(authz_parse_admin("0:x", &r), HDL_EOK);
	assert_int_equal(authz_parse_admin("4294967295:x", &r), HDL_EOK);
	assert_int_equal(r.index, 4294967295u);
	assert_int_equal(authz_parse_admin("4294967296:x", &r), HDL_EINVAL);
	assert_int_equal(authz_parse_admin(":x", &r), HDL_EINVAL);
	assert_int_equal(authz_parse_admin("300:", &r), HDL_EINVAL);
	assert_int_equal(authz_parse_admin("3a0:x", &r), HDL_EINVAL);
	assert_int_equal(authz_parse_admin("300", &r), HDL_EINVAL);
	assert_int_equal(authz_parse_admin("300:a\tb", &r), HDL_EINVAL);
	assert_int_equal(authz_parse_admin(NULL, &r), HDL_EINVAL);
	assert_true(authz_type_is(hdl_slice_str("hs_admin"), "HS_ADMIN"));
	assert_true(authz_type_is(hdl_slice_str("HS_ADMIN.x"), "HS_ADMIN"));
	assert_false(authz_type_is(hdl_slice_str("HS_ADMINS"), "HS_ADMIN"));
	assert_false(authz_type_is(hdl_slice_str("HS_ADMI"), "HS_ADMIN"));
	(void)state;
}

/** The lookup over a store reader, as workers use it. */
static void test_over_store_reader(void **state)
{
	char dir[] = "/tmp/test_authz.XXXXXX";
	assert_non_null(mkdtemp(dir));
	store_t *st = NULL;
	store_opts_t o = {.path = dir};
	assert_int_equal(store_open(&o, &st), HDL_EOK);
	const char *g[] = {"300:88.100.1/user", NULL};
	vspec_t gv[] = {vlist_v(200, g)};
	vspec_t rv[] = {admin_v(100, HDL_ADM_LIST_HANDLES, "88.100.1/G", 200)};
	uint8_t gb[1024], rb[1024];
	hdl_slice_t gs = {gb, (uint32_t)encode(gv, 1, gb, sizeof(gb))};
	hdl_slice_t rs = {rb, (uint32_t)encode(rv, 1, rb, sizeof(rb))};
	store_batch_t *b = NULL;
	assert_int_equal(store_batch_begin(st, &b), HDL_EOK);
	assert_int_equal(store_batch_put(b, hdl_slice_str("88.100.1/g"), gs, true), HDL_EOK);
	assert_int_equal(store_batch_put(b, hdl_slice_str("0.NA/88.100.1"), rs, true), HDL_EOK);
	assert_int_equal(store_batch_commit(b), HDL_EOK);
	store_reader_t *r = NULL;
	assert_int_equal(store_reader_new(st, &r), HDL_EOK);
	assert_int_equal(store_reader_begin(r), HDL_EOK);
	authz_t az = {.lookup = authz_lookup_reader, .ctx = r};
	hdl_slice_t prefix_vals;
	assert_int_equal(store_get(r, hdl_slice_str("0.NA/88.100.1"), &prefix_vals), HDL_EOK);
	hdl_arena_t a;
	hdl_arena_init(&a, abuf, sizeof(abuf), 0);
	/* the store folds the suffix case: "88.100.1/G" finds the record put as "88.100.1/g" */
	assert_int_equal(
	    authz_check(&az, ID("300:88.100.1/user"), prefix_vals, HDL_ADM_LIST_HANDLES, &a),
	    AUTHZ_GRANTED);
	assert_int_equal(
	    authz_check(&az, ID("300:88.100.1/user"), prefix_vals, HDL_ADM_READ_VALUE, &a),
	    AUTHZ_DENIED);
	hdl_arena_free(&a);
	store_reader_free(r);
	store_close(st);
	rm_env(dir);
	(void)state;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_bits, setup),
	    cmocka_unit_test_setup(test_index_zero_and_case, setup),
	    cmocka_unit_test_setup(test_groups, setup),
	    cmocka_unit_test_setup(test_group_index_zero_not_followed, setup),
	    cmocka_unit_test_setup(test_cycles_and_bounds, setup),
	    cmocka_unit_test_setup(test_server_admins, setup),
	    cmocka_unit_test_setup(test_missing_and_broken, setup),
	    cmocka_unit_test_setup(test_malformed_values_skipped, setup),
	    cmocka_unit_test(test_parse_and_types),
	    cmocka_unit_test(test_over_store_reader),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
