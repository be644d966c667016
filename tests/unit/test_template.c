/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief cmocka tests of metadata templates (node/store/template): parsing and its refusals,
 *        the pattern guard (back-references, exploding counted repetitions, lengths), every
 *        rule of the record check with its exact message, merging updates (items disabled,
 *        never removed), records in the store (create, update, delete, bounds, default), the
 *        compiled-template cache following record changes, and the writer's template hook:
 *        template jobs audited, a registration that breaks its template refused with RC 202 and
 *        nothing written on every write operation, an identical create retried writes nothing
 *        (no audit entry), writer_submit_many() all or none.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hdl/error.h"
#include "hdl/msg.h"
#include "hdl/values.h"
#include "node/server/writer.h"
#include "node/store/audit.h"
#include "node/store/store.h"
#include "node/store/template.h"
#include "tests/unit/testutil.h"

#define WAIT_S 60
#define ADMIN  "300:0.NA/88.100.1"

static hdl_slice_t S(const char *s)
{
	return hdl_slice_str(s);
}

/* A template of every kind of rule. */
static const char *TPL_JSON =
    "{\"prefix\":\"88.100.1\",\"version\":\"1.0\",\"industryCategory\":\"C\",\"type\":1,"
    "\"description\":\"test\",\"items\":["
    "{\"name\":\"名称\",\"idType\":\"NAME\",\"idIndex\":\"2000\",\"required\":true,"
    "\"metadata\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":8}},"
    "{\"name\":\"型号\",\"idType\":\"MODEL\",\"idIndex\":2001,"
    "\"metadata\":{\"pattern\":\"^[A-Z]{2}[0-9]+$\"}},"
    "{\"name\":\"重量\",\"idType\":\"WEIGHT\",\"idIndex\":2002,"
    "\"metadata\":{\"type\":\"number\",\"minimum\":0,\"maximum\":100}},"
    "{\"name\":\"日期\",\"idType\":\"DATE\",\"idIndex\":2003,\"required\":true,"
    "\"metadata\":{\"type\":\"date\"}},"
    "{\"name\":\"旧\",\"idType\":\"OLD\",\"idIndex\":2004,\"state\":0}]}";

static tpl_t *parse_ok(const char *text, int mode)
{
	json_error_t je;
	json_t *j = json_loads(text, 0, &je);
	assert_non_null(j);
	tpl_t *t = NULL;
	char err[200] = "";
	int ret = tpl_parse(j, NULL, mode, &t, err, sizeof(err));
	json_decref(j);
	if (ret != HDL_EOK)
		fail_msg("parse: %s", err);
	return t;
}

/** Parse \p text expecting a refusal whose reason holds \p want. */
static void parse_bad(const char *text, const char *want)
{
	json_t *j = json_loads(text, 0, NULL);
	assert_non_null(j);
	tpl_t *t = NULL;
	char err[200] = "";
	int ret = tpl_parse(j, NULL, TPL_PARSE_CREATE, &t, err, sizeof(err));
	json_decref(j);
	assert_int_equal(ret, HDL_EJSON);
	assert_null(t);
	if (strstr(err, want) == NULL)
		fail_msg("'%s' lacks '%s'", err, want);
}

/* ---- parsing ------------------------------------------------------------------------------- */

static void test_parse(void **state)
{
	(void)state;
	tpl_t *t = parse_ok(TPL_JSON, TPL_PARSE_CREATE);
	assert_int_equal(t->n_items, 5);
	assert_int_equal(t->items[0].index, 2000);
	assert_int_equal(t->items[0].max_len, 8);
	assert_int_equal(t->items[2].kind, TPL_K_NUMBER);
	assert_int_equal(t->items[4].state, 0);
	/* the canonical JSON reads back to the same canonical JSON */
	json_t *j = tpl_to_json(t);
	char *a = json_dumps(j, JSON_COMPACT);
	tpl_t *u = NULL;
	char err[200];
	assert_int_equal(tpl_parse_raw(S(a), NULL, &u, err, sizeof(err)), HDL_EOK);
	json_t *j2 = tpl_to_json(u);
	char *b = json_dumps(j2, JSON_COMPACT);
	assert_string_equal(a, b);
	assert_non_null(strstr(a, "\"pattern\":\"^[A-Z]{2}[0-9]+$\""));
	free(a);
	free(b);
	json_decref(j);
	json_decref(j2);
	tpl_free(t);
	tpl_free(u);

	parse_bad("{\"version\":\"1\",\"items\":[{\"name\":\"a\",\"idType\":\"A\"}]}", "prefix");
	parse_bad(
	    "{\"prefix\":\"0.NA\",\"version\":\"1\",\"items\":[{\"name\":\"a\",\"idType\":\"A\"}]}",
	    "prefix");
	parse_bad("{\"prefix\":\"88.1/"
	          "x\",\"version\":\"1\",\"items\":[{\"name\":\"a\",\"idType\":\"A\"}]}",
	          "prefix");
	parse_bad("{\"prefix\":\"88.1\",\"items\":[{\"name\":\"a\",\"idType\":\"A\"}]}", "version");
	parse_bad("{\"prefix\":\"88.1\",\"version\":\"1\",\"items\":[]}", "items");
	parse_bad("{\"prefix\":\"88.1\",\"version\":\"1\",\"items\":[{\"name\":\"a\","
	          "\"idType\":\"A\",\"idIndex\":1500}]}",
	          "items[0].idIndex");
	parse_bad("{\"prefix\":\"88.1\",\"version\":\"1\",\"items\":[{\"name\":\"a\","
	          "\"idType\":\"A\"},{\"name\":\"b\",\"idType\":\"a\"}]}",
	          "items[1].idType: 'a' given twice");
	parse_bad("{\"prefix\":\"88.1\",\"version\":\"1\",\"items\":[{\"name\":\"a\","
	          "\"idType\":\"A\",\"idIndex\":2000},{\"name\":\"b\",\"idType\":\"B\","
	          "\"idIndex\":\"2000\"}]}",
	          "items[1].idIndex: 2000 given twice");
	parse_bad("{\"prefix\":\"88.1\",\"version\":\"1\",\"items\":[{\"name\":\"a\","
	          "\"idType\":\"A\",\"metadata\":{\"type\":\"String\"}}]}",
	          "metadata.type");
	parse_bad("{\"prefix\":\"88.1\",\"version\":\"1\",\"items\":[{\"name\":\"a\","
	          "\"idType\":\"A\",\"metadata\":{\"minLength\":5,\"maxLength\":2}}]}",
	          "minLength over maxLength");
	parse_bad("{\"prefix\":\"88.1\",\"version\":\"1\",\"items\":[{\"name\":\"a\","
	          "\"idType\":\"A\",\"metadata\":{\"maxLength\":999999}}]}",
	          "maxLength");
	parse_bad("{\"prefix\":\"88.1\",\"version\":\"1\",\"items\":[{\"name\":\"a\","
	          "\"idType\":\"A\",\"metadata\":{\"minimum\":1}}]}",
	          "only for type \"number\"");
	parse_bad("{\"prefix\":\"88.1\",\"version\":\"1\",\"items\":[{\"name\":\"a\","
	          "\"idType\":\"A\",\"metadata\":{\"pattern\":\"^(a)\\\\1$\"}}]}",
	          "back-references are not allowed");
	parse_bad("{\"prefix\":\"88.1\",\"version\":\"1\",\"items\":[{\"name\":\"a\","
	          "\"idType\":\"A\",\"metadata\":{\"pattern\":\"(((a{0,255}){0,255}){0,255})\"}}]}",
	          "may not nest");
	parse_bad("{\"prefix\":\"88.1\",\"version\":\"1\",\"items\":[{\"name\":\"a\","
	          "\"idType\":\"A\",\"metadata\":{\"pattern\":\"(.?){100}\"}}]}",
	          "too complex");
	parse_bad("{\"prefix\":\"88.1\",\"version\":\"1\",\"items\":[{\"name\":\"a\","
	          "\"idType\":\"A\",\"metadata\":{\"pattern\":\"a{1,300}\"}}]}",
	          "over 255");
	parse_bad("{\"prefix\":\"88.1\",\"version\":\"1\",\"items\":[{\"name\":\"a\","
	          "\"idType\":\"A\",\"metadata\":{\"pattern\":\"[a-z\"}}]}",
	          "unterminated bracket");
	parse_bad("{\"prefix\":\"88.1\",\"version\":\"1\",\"items\":[{\"name\":\"a\","
	          "\"idType\":\"A\",\"metadata\":{\"pattern\":\"(ab\"}}]}",
	          "unbalanced");
	parse_bad("{\"prefix\":\"88.1\",\"version\":\"1\",\"default\":3,\"items\":[{\"name\":\"a\","
	          "\"idType\":\"A\"}]}",
	          "default");
}

static void test_pattern_guard(void **state)
{
	(void)state;
	char err[128];
	assert_int_equal(tpl_pattern_check("^[A-Z]{2,8}-[0-9]{4}-[0-9]{6}$", 256, err, sizeof(err)),
	                 HDL_EOK);
	assert_int_equal(tpl_pattern_check("^[]a[:alpha:]]+$", 256, err, sizeof(err)), HDL_EOK);
	assert_int_equal(tpl_pattern_check("(a{1,100}){1,100}", 256, err, sizeof(err)), HDL_EJSON);
	assert_string_equal(err, "counted repetitions may not nest");
	assert_int_equal(tpl_pattern_check("((){130}){7,}", 256, err, sizeof(err)), HDL_EJSON);
	assert_int_equal(tpl_pattern_check("a{2}{3}", 256, err, sizeof(err)), HDL_EJSON);
	assert_int_equal(tpl_pattern_check("((a?){30})*", 256, err, sizeof(err)), HDL_EOK);
	assert_int_equal(tpl_pattern_check("(.?){85}x", 256, err, sizeof(err)), HDL_EOK);
	assert_int_equal(tpl_pattern_check("(.?){86}x", 256, err, sizeof(err)), HDL_EJSON);
	assert_string_equal(err, "too complex (counted repetitions multiply; at most 256)");
	assert_int_equal(tpl_pattern_check("((a{1,30}){1,30}){1,30}", 256, err, sizeof(err)),
	                 HDL_EJSON);
	assert_int_equal(tpl_pattern_check("a{3}b{1,}c{2,4}", 256, err, sizeof(err)), HDL_EOK);
	assert_int_equal(tpl_pattern_check("a{4,2}", 256, err, sizeof(err)), HDL_EJSON);
	assert_int_equal(tpl_pattern_check("a{,2}", 256, err, sizeof(err)), HDL_EJSON);
	assert_int_equal(tpl_pattern_check("abc\\", 256, err, sizeof(err)), HDL_EJSON);
	assert_int_equal(tpl_pattern_check("abcdefghij", 5, err, sizeof(err)), HDL_EJSON);
	assert_non_null(strstr(err, "longer than 5"));
	char deep[80] = "";
	for (int i = 0; i < 33; i++)
		strcat(deep, "(");
	assert_int_equal(tpl_pattern_check(deep, 256, err, sizeof(err)), HDL_EJSON);
	/* classic ReDoS shapes pass the guard: glibc matches them without backtracking; the
	 * check below must come back (ctest's timeout is the bound) with the right answer */
	tpl_t *t = parse_ok("{\"prefix\":\"88.1\",\"version\":\"1\",\"items\":[{\"name\":\"a\","
	                    "\"idType\":\"A\",\"idIndex\":2000,\"metadata\":{\"maxLength\":4096,"
	                    "\"pattern\":\"^(a+)+$\"}}]}",
	                    TPL_PARSE_STORED);
	static char data[4097];
	memset(data, 'a', 4095);
	data[4095] = '!';
	hdl_value_t v = {.index = 2000, .type = S("A"), .data = {(const uint8_t *)data, 4096}};
	char msg[TPL_MSG_MAX];
	assert_int_equal(tpl_validate(t, NULL, &v, 1, msg, sizeof(msg)), TPL_REFUSED);
	assert_string_equal(msg, "Template 88.1:1: index 2000 (A) does not match the pattern");
	data[4095] = 'a';
	assert_int_equal(tpl_validate(t, NULL, &v, 1, msg, sizeof(msg)), HDL_EOK);
	tpl_free(t);
}

/* ---- the record check ---------------------------------------------------------------------- */

typedef struct rec {
	hdl_value_t v[16];
	uint32_t n;
} rec_t;

static void add(rec_t *r, uint32_t index, const char *type, const char *data)
{
	hdl_value_t *v = &r->v[r->n++];
	memset(v, 0, sizeof(*v));
	v->index = index;
	v->type = S(type);
	v->data = S(data);
	v->ttl = 86400;
	v->perms = HDL_PERM_DEFAULT;
}

/** A record that satisfies TPL_JSON. */
static rec_t good(void)
{
	rec_t r = {.n = 0};
	add(&r, 1, "URL", "https://example.com/x");
	add(&r, 100, "HS_ADMIN", "whatever");
	add(&r, 1001, "TEMPLATE", "1.0");
	add(&r, 2000, "NAME", "泵");
	add(&r, 2001, "MODEL", "AB12");
	add(&r, 2002, "WEIGHT", "99.5");
	add(&r, 2003, "DATE", "2024-02-29");
	return r;
}

static void expect(const tpl_t *t, rec_t *r, const char *want)
{
	char msg[TPL_MSG_MAX] = "";
	int ret = tpl_validate(t, NULL, r->v, r->n, msg, sizeof(msg));
	if (want == NULL) {
		if (ret != HDL_EOK)
			fail_msg("refused: %s", msg);
		return;
	}
	assert_int_equal(ret, TPL_REFUSED);
	assert_string_equal(msg, want);
}

static rec_t with(uint32_t index, const char *type, const char *data)
{
	rec_t r = good();
	for (uint32_t i = 0; i < r.n; i++) {
		if (r.v[i].index == index) {
			if (type == NULL) { /* drop it */
				r.v[i] = r.v[--r.n];
				return r;
			}
			r.v[i].type = S(type);
			r.v[i].data = S(data);
			return r;
		}
	}
	add(&r, index, type, data);
	return r;
}

static void test_validate(void **state)
{
	(void)state;
	tpl_t *t = parse_ok(TPL_JSON, TPL_PARSE_STORED);
	rec_t r = good();
	expect(t, &r, NULL);
	r = with(2000, NULL, NULL);
	expect(t, &r, "Template 88.100.1:1.0: index 2000 (NAME) is required");
	r = with(2000, "NAME", "");
	expect(t, &r, "Template 88.100.1:1.0: index 2000 (NAME) is shorter than 1 characters");
	r = with(2000, "NAME", "泵泵泵泵泵泵泵泵");
	expect(t, &r, NULL); /* 8 characters, 24 bytes */
	r = with(2000, "NAME", "泵泵泵泵泵泵泵泵泵");
	expect(t, &r, "Template 88.100.1:1.0: index 2000 (NAME) is longer than 8 characters");
	r = with(2000, "name", "x"); /* types compare ASCII case-insensitively */
	expect(t, &r, NULL);
	r = with(2000, "TITLE", "x");
	expect(t, &r, "Template 88.100.1:1.0: index 2000 must have type NAME");
	r = with(2001, "MODEL", "ab12");
	expect(t, &r, "Template 88.100.1:1.0: index 2001 (MODEL) does not match the pattern");
	r = with(2002, "WEIGHT", "12kg");
	expect(t, &r, "Template 88.100.1:1.0: index 2002 (WEIGHT) is not a number");
	r = with(2002, "WEIGHT", "100.5");
	expect(t, &r, "Template 88.100.1:1.0: index 2002 (WEIGHT) is above the maximum 100");
	r = with(2002, "WEIGHT", "-1e0");
	expect(t, &r, "Template 88.100.1:1.0: index 2002 (WEIGHT) is below the minimum 0");
	r = with(2003, "DATE", "2023-02-29");
	expect(t, &r, "Template 88.100.1:1.0: index 2003 (DATE) is not a date (YYYY-MM-DD)");
	r = with(2003, "DATE", "2024-13-01");
	expect(t, &r, "Template 88.100.1:1.0: index 2003 (DATE) is not a date (YYYY-MM-DD)");
	r = with(2004, "OLD", "x");
	expect(t, &r, "Template 88.100.1:1.0: index 2004 (OLD) is disabled");
	r = with(2005, "NEW", "x");
	expect(t, &r, "Template 88.100.1:1.0: index 2005 is not in the template");
	r = with(1000, "X", "x");
	expect(t, &r, "Template 88.100.1:1.0: index 1000 is not in the template");
	r = with(999, "X", "x"); /* below 1000: not governed */
	expect(t, &r, NULL);
	r = with(2000, "NAME", "a\xff");
	expect(t, &r, "Template 88.100.1:1.0: index 2000 (NAME) is not UTF-8 text");
	/* the first refusal by index, whatever the order of the values */
	r = with(2002, "WEIGHT", "x");
	rec_t r2 = r;
	r2.v[0] = r.v[r.n - 1];
	r2.v[r.n - 1] = r.v[0];
	r = with(2002, "WEIGHT", "x");
	for (uint32_t i = 0; i < r.n; i++) {
		if (r.v[i].index == 2003)
			r.v[i].data = S("bad");
	}
	r2 = r;
	for (uint32_t i = 0; i < r.n; i++)
		r2.v[i] = r.v[r.n - 1 - i];
	expect(t, &r, "Template 88.100.1:1.0: index 2002 (WEIGHT) is not a number");
	expect(t, &r2, "Template 88.100.1:1.0: index 2002 (WEIGHT) is not a number");
	/* a value over template_value_max is refused before any matching */
	tpl_limits_t lim = {.max_value = 16};
	r = with(2001, "MODEL", "AB12345678901234567890");
	char msg[TPL_MSG_MAX];
	assert_int_equal(tpl_validate(t, &lim, r.v, r.n, msg, sizeof(msg)), TPL_REFUSED);
	assert_string_equal(msg, "Template 88.100.1:1.0: index 2001 (MODEL) is longer than 16 "
	                         "characters");
	tpl_free(t);
}

static void test_merge(void **state)
{
	(void)state;
	tpl_t *old = parse_ok(TPL_JSON, TPL_PARSE_STORED);
	/* an update: a new item without idIndex, an item disabled, one re-enabled */
	tpl_t *upd = parse_ok("{\"prefix\":\"88.100.1\",\"version\":\"1.0\",\"items\":["
	                      "{\"name\":\"颜色\",\"idType\":\"COLOR\"},"
	                      "{\"name\":\"型号\",\"idType\":\"model\",\"idIndex\":2001,"
	                      "\"state\":0},"
	                      "{\"name\":\"旧\",\"idType\":\"OLD\",\"idIndex\":2004,\"state\":1}]}",
	                      TPL_PARSE_UPDATE);
	tpl_t *m = NULL;
	char err[160] = "";
	assert_int_equal(tpl_merge(old, upd, NULL, &m, err, sizeof(err)), HDL_EOK);
	assert_int_equal(m->n_items, 6);
	assert_int_equal(m->items[5].index, 2005);
	assert_string_equal(m->items[5].id_type, "COLOR");
	assert_int_equal(m->items[1].state, 0);
	assert_null(m->items[1].pattern); /* the update gave no pattern */
	assert_int_equal(m->items[4].state, 1);
	assert_int_equal(m->items[0].required, 1); /* not given: kept */
	assert_string_equal(m->description, "test");
	tpl_free(m);
	tpl_free(upd);
	/* idIndex and idType must match; a known idType needs its idIndex */
	upd = parse_ok("{\"prefix\":\"88.100.1\",\"version\":\"1.0\",\"items\":["
	               "{\"name\":\"x\",\"idType\":\"COLOR\",\"idIndex\":2001}]}",
	               TPL_PARSE_UPDATE);
	assert_int_equal(tpl_merge(old, upd, NULL, &m, err, sizeof(err)), HDL_EJSON);
	assert_string_equal(err, "items[0]: idIndex 2001 is 'MODEL' in the template");
	tpl_free(upd);
	upd = parse_ok("{\"prefix\":\"88.100.1\",\"version\":\"1.0\",\"items\":["
	               "{\"name\":\"x\",\"idType\":\"Weight\"}]}",
	               TPL_PARSE_UPDATE);
	assert_int_equal(tpl_merge(old, upd, NULL, &m, err, sizeof(err)), HDL_EJSON);
	assert_string_equal(err, "items[0]: idType 'Weight' is index 2002 in the template");
	/* the item bound counts the merged template */
	tpl_limits_t lim = {.max_items = 5};
	tpl_free(upd);
	upd = parse_ok("{\"prefix\":\"88.100.1\",\"version\":\"1.0\",\"items\":["
	               "{\"name\":\"x\",\"idType\":\"EXTRA\"}]}",
	               TPL_PARSE_UPDATE);
	assert_int_equal(tpl_merge(old, upd, &lim, &m, err, sizeof(err)), HDL_EJSON);
	assert_string_equal(err, "items: at most 5");
	tpl_free(upd);
	tpl_free(old);
}

/* ---- records in the store ------------------------------------------------------------------ */

typedef struct fix {
	char dir[64];
	store_t *s;
	writer_t *w;
} fix_t;

static int setup(void **state)
{
	fix_t *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_template.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	store_opts_t o = {.path = f->dir, .map_size = 16u << 20, .txlog = true};
	assert_int_equal(store_open(&o, &f->s), HDL_EOK);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fix_t *f = *state;
	writer_stop(f->w);
	store_close(f->s);
	rm_env(f->dir);
	free(f);
	return 0;
}

/** tpl_store_put() of \p text in its own transaction: the result, \p msg the refusal. */
static int put(fix_t *f, const char *text, int mode, unsigned flags, uint32_t *rc, char *msg)
{
	tpl_t *t = parse_ok(text, mode);
	store_batch_t *b = NULL;
	assert_int_equal(store_batch_begin(f->s, &b), HDL_EOK);
	tpl_change_t chg;
	int ret = tpl_store_put(b, t, flags, NULL, &chg, msg, TPL_MSG_MAX);
	*rc = chg.rcode;
	tpl_change_clear(&chg);
	tpl_free(t);
	if (ret == HDL_EOK)
		assert_int_equal(store_batch_commit(b), HDL_EOK);
	else
		store_batch_abort(b);
	return ret;
}

static int check_rec(fix_t *f, tpl_cache_t *c, const char *handle, rec_t *r, char *msg)
{
	store_reader_t *rd = NULL;
	assert_int_equal(store_reader_new(f->s, &rd), HDL_EOK);
	assert_int_equal(store_reader_begin(rd), HDL_EOK);
	int ret = tpl_check(c, tpl_fetch_reader, rd, S(handle), r->v, r->n, msg, TPL_MSG_MAX);
	store_reader_free(rd);
	return ret;
}

static void test_store(void **state)
{
	fix_t *f = *state;
	uint32_t rc = 0;
	char msg[TPL_MSG_MAX];
	assert_int_equal(put(f, TPL_JSON, TPL_PARSE_CREATE, TPL_PUT_CREATE, &rc, msg), HDL_EOK);
	assert_int_equal(put(f, TPL_JSON, TPL_PARSE_CREATE, TPL_PUT_CREATE, &rc, msg), TPL_REFUSED);
	assert_int_equal(rc, HDL_RC_HANDLE_ALREADY_EXISTS);
	assert_string_equal(msg, "Template 88.100.1:1.0 already exists");
	const char *v2 = "{\"prefix\":\"88.100.1\",\"version\":\"2.0\",\"default\":true,\"items\":["
	                 "{\"name\":\"n\",\"idType\":\"NAME\",\"required\":true}]}";
	assert_int_equal(put(f, v2, TPL_PARSE_UPDATE, TPL_PUT_UPDATE, &rc, msg), TPL_REFUSED);
	assert_int_equal(rc, HDL_RC_HANDLE_NOT_FOUND);
	assert_int_equal(put(f, v2, TPL_PARSE_CREATE, TPL_PUT_CREATE, &rc, msg), HDL_EOK);

	tpl_cache_t *c = NULL;
	assert_int_equal(tpl_cache_new(NULL, 1, &c), HDL_EOK); /* one slot: every switch reparses */
	rec_t r = good();
	assert_int_equal(check_rec(f, c, "88.100.1/a", &r, msg), HDL_EOK);
	/* without a reference the default (2.0) applies */
	rec_t d = {.n = 0};
	add(&d, 1, "URL", "x");
	assert_int_equal(check_rec(f, c, "88.100.1/a", &d, msg), TPL_REFUSED);
	assert_string_equal(msg, "Template 88.100.1:2.0: index 2000 (NAME) is required");
	add(&d, 2000, "NAME", "n");
	assert_int_equal(check_rec(f, c, "88.100.1/a", &d, msg), HDL_EOK);
	/* the prefix folds; other prefixes and prefix handles are not governed */
	assert_int_equal(check_rec(f, c, "88.100.1/b", &r, msg), HDL_EOK);
	rec_t none = {.n = 0};
	add(&none, 1, "URL", "x");
	assert_int_equal(check_rec(f, c, "88.200.1/a", &none, msg), HDL_EOK);
	assert_int_equal(check_rec(f, c, "0.NA/88.100.1", &none, msg), HDL_EOK);
	/* a reference to a missing version; index 1001 of another type */
	r = with(1001, "TEMPLATE", "9.9");
	assert_int_equal(check_rec(f, c, "88.100.1/a", &r, msg), TPL_REFUSED);
	assert_string_equal(msg, "Template 88.100.1:9.9 not found");
	/* a value at 1001 of another type names nothing: the default applies and refuses it;
	 * under a prefix without templates it is just a value */
	r = with(1001, "URL", "1.0");
	assert_int_equal(check_rec(f, c, "88.100.1/a", &r, msg), TPL_REFUSED);
	assert_string_equal(msg, "Template 88.100.1:2.0: index 1001 is not in the template");
	assert_int_equal(check_rec(f, c, "88.200.1/a", &r, msg), HDL_EOK);
	r = with(1001, "TEMPLATE", "bad\nversion");
	assert_int_equal(check_rec(f, c, "88.200.1/a", &r, msg), TPL_REFUSED);
	assert_string_equal(msg, "The TEMPLATE value (index 1001) is not a template version");

	/* an update changes the rule at once: the cache follows the record */
	const char *upd = "{\"prefix\":\"88.100.1\",\"version\":\"1.0\",\"items\":["
	                  "{\"name\":\"名称\",\"idType\":\"NAME\",\"idIndex\":2000,"
	                  "\"metadata\":{\"maxLength\":2}}]}";
	r = good();
	assert_int_equal(check_rec(f, c, "88.100.1/a", &r, msg), HDL_EOK);
	assert_int_equal(put(f, upd, TPL_PARSE_UPDATE, TPL_PUT_UPDATE, &rc, msg), HDL_EOK);
	r = with(2000, "NAME", "泵泵泵");
	assert_int_equal(check_rec(f, c, "88.100.1/a", &r, msg), TPL_REFUSED);
	assert_string_equal(msg, "Template 88.100.1:1.0: index 2000 (NAME) is longer than 2 "
	                         "characters");

	/* list, default, delete */
	store_reader_t *rd = NULL;
	assert_int_equal(store_reader_new(f->s, &rd), HDL_EOK);
	assert_int_equal(store_reader_begin(rd), HDL_EOK);
	json_t *vs = NULL;
	char *dflt = NULL;
	assert_int_equal(tpl_list(tpl_fetch_reader, rd, S("88.100.1"), &vs, &dflt), HDL_EOK);
	char *vtext = json_dumps(vs, JSON_COMPACT);
	assert_string_equal(vtext, "[\"1.0\",\"2.0\"]");
	assert_string_equal(dflt, "2.0");
	free(vtext);
	free(dflt);
	json_decref(vs);
	tpl_t *got = NULL;
	bool is_def = true;
	assert_int_equal(
	    tpl_get(tpl_fetch_reader, rd, S("88.100.1"), S("1.0"), NULL, &got, &is_def), HDL_EOK);
	assert_false(is_def);
	assert_int_equal(got->n_items, 5);
	assert_int_equal(got->items[0].max_len, 2);
	tpl_free(got);
	store_reader_free(rd);

	store_batch_t *b = NULL;
	tpl_change_t chg;
	assert_int_equal(store_batch_begin(f->s, &b), HDL_EOK);
	assert_int_equal(tpl_store_del(b, S("88.100.1"), S("2.0"), &chg, msg, sizeof(msg)),
	                 HDL_EOK);
	assert_true(chg.had_before);
	tpl_change_clear(&chg);
	assert_int_equal(tpl_store_del(b, S("88.100.1"), S("2.0"), &chg, msg, sizeof(msg)),
	                 TPL_REFUSED);
	assert_int_equal(chg.rcode, HDL_RC_HANDLE_NOT_FOUND);
	tpl_change_clear(&chg);
	assert_int_equal(store_batch_commit(b), HDL_EOK);
	/* no default any more: a record without a reference is not checked */
	rec_t plain = {.n = 0};
	add(&plain, 1, "URL", "x");
	assert_int_equal(check_rec(f, c, "88.100.1/a", &plain, msg), HDL_EOK);
	tpl_cache_free(c);
}

static void test_store_bounds(void **state)
{
	fix_t *f = *state;
	uint32_t rc = 0;
	char msg[TPL_MSG_MAX], text[512];
	tpl_limits_t lim = {.max_per_prefix = 3};
	for (int i = 0; i < 4; i++) {
		snprintf(text, sizeof(text),
		         "{\"prefix\":\"88.9\",\"version\":\"v%d\",\"items\":[{\"name\":\"n\","
		         "\"idType\":\"N\"}]}",
		         i);
		tpl_t *t = parse_ok(text, TPL_PARSE_CREATE);
		store_batch_t *b = NULL;
		assert_int_equal(store_batch_begin(f->s, &b), HDL_EOK);
		tpl_change_t chg;
		int ret = tpl_store_put(b, t, TPL_PUT_CREATE, &lim, &chg, msg, sizeof(msg));
		rc = chg.rcode;
		tpl_change_clear(&chg);
		tpl_free(t);
		if (i < 3) {
			assert_int_equal(ret, HDL_EOK);
			assert_int_equal(store_batch_commit(b), HDL_EOK);
		} else {
			assert_int_equal(ret, TPL_REFUSED);
			assert_int_equal(rc, HDL_RC_INVALID_VALUE);
			assert_string_equal(msg, "Prefix 88.9 has 3 templates, the most allowed");
			store_batch_abort(b);
		}
	}
}

/* ---- the writer's hook ---------------------------------------------------------------------- */

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

static void wait_for(waiter_t *w, int n)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += WAIT_S;
	pthread_mutex_lock(&w->mu);
	while (w->done < n && pthread_cond_timedwait(&w->cv, &w->mu, &ts) != ETIMEDOUT)
		;
	int got = w->done;
	pthread_mutex_unlock(&w->mu);
	assert_int_equal(got, n);
}

static wr_job_t job(wr_op_t op, const char *handle, const char *id)
{
	wr_job_t j;
	memset(&j, 0, sizeof(j));
	j.op = op;
	j.handle = S(handle);
	if (id) {
		j.id_handle = S(strchr(id, ':') + 1);
		j.id_index = (uint32_t)atoi(id);
	}
	j.transport = WR_T_HTTP;
	return j;
}

static uint32_t run(fix_t *f, wr_job_t *j)
{
	waiter_t w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
	j->done = done_signal;
	j->owner = &w;
	assert_int_equal(writer_submit(f->w, j), HDL_EOK);
	wait_for(&w, 1);
	return j->rcode;
}

static int count(void *ctx, uint64_t id, hdl_slice_t rec)
{
	(void)id;
	(void)rec;
	(*(unsigned *)ctx)++;
	return 0;
}

static unsigned audits(fix_t *f)
{
	store_reader_t *r = NULL;
	assert_int_equal(store_reader_new(f->s, &r), HDL_EOK);
	assert_int_equal(store_reader_begin(r), HDL_EOK);
	unsigned n = 0;
	assert_int_equal(store_audit_foreach(r, 0, S(""), count, &n), HDL_EOK);
	store_reader_free(r);
	return n;
}

/** The prefix handle with ADMIN holding every permission; prefix homed. */
static void seed_prefix(fix_t *f)
{
	uint8_t adm[256], rec[512];
	size_t alen = 0, rlen = 0;
	hdl_admin_t a = {.perms = HDL_ADM_ALL, .handle = S("0.NA/88.100.1"), .index = 300};
	assert_int_equal(hdl_admin_encode(&a, adm, sizeof(adm), &alen), HDL_EOK);
	hdl_value_t v = {.index = 100,
	                 .type = S("HS_ADMIN"),
	                 .data = {adm, (uint32_t)alen},
	                 .perms = HDL_PERM_DEFAULT,
	                 .ttl = 86400};
	assert_int_equal(hdl_values_encode(&v, 1, rec, sizeof(rec), &rlen), HDL_EOK);
	store_batch_t *b = NULL;
	assert_int_equal(store_batch_begin(f->s, &b), HDL_EOK);
	assert_int_equal(store_batch_home(b, S("88.100.1"), true), HDL_EOK);
	assert_int_equal(store_batch_home(b, S("88.200.1"), true), HDL_EOK);
	assert_int_equal(
	    store_batch_put(b, S("0.NA/88.100.1"), (hdl_slice_t){rec, (uint32_t)rlen}, true),
	    HDL_EOK);
	assert_int_equal(store_batch_commit(b), HDL_EOK);
	writer_opts_t o = {.queue_max = 100, .batch_max = 8};
	assert_int_equal(writer_start(f->s, &o, &f->w), HDL_EOK);
}

static void test_writer_hook(void **state)
{
	fix_t *f = *state;
	seed_prefix(f);
	/* template jobs: authorized on the prefix handle, homed prefix, audited */
	wr_job_t j = job(WR_TEMPLATE_PUT, "0.NA/88.100.1", NULL);
	j.data = S(TPL_JSON);
	assert_int_equal(run(f, &j), HDL_RC_INVALID_ADMIN); /* anonymous */
	j = job(WR_TEMPLATE_PUT, "0.NA/88.100.1", "300:88.100.1/nobody");
	j.data = S(TPL_JSON);
	assert_int_equal(run(f, &j), HDL_RC_INVALID_ADMIN);
	j = job(WR_TEMPLATE_PUT, "0.NA/88.200.1", ADMIN);
	j.data = S(TPL_JSON);
	assert_int_equal(run(f, &j), HDL_RC_INVALID_VALUE);
	assert_string_equal(j.message, "The template's prefix is not 88.200.1");
	j = job(WR_TEMPLATE_PUT, "0.NA/88.100.1", ADMIN);
	j.data = S("{\"prefix\":\"88.100.1\"");
	assert_int_equal(run(f, &j), HDL_RC_INVALID_VALUE);
	unsigned a0 = audits(f);
	j = job(WR_TEMPLATE_PUT, "0.NA/88.100.1", ADMIN);
	j.data = S(TPL_JSON);
	assert_int_equal(run(f, &j), HDL_RC_SUCCESS);
	assert_int_equal(audits(f), a0 + 1);
	j = job(WR_TEMPLATE_PUT, "0.NA/88.100.1", ADMIN);
	j.data = S(TPL_JSON);
	assert_int_equal(run(f, &j), HDL_RC_HANDLE_ALREADY_EXISTS);

	/* a create that breaks the template: RC 202 with the template's message, nothing
	 * written (one audit entry for the refusal) */
	rec_t r = with(2000, NULL, NULL);
	a0 = audits(f);
	uint64_t tx0 = store_txlog_last(f->s);
	j = job(WR_CREATE, "88.100.1/P1", ADMIN);
	j.values = r.v;
	j.n_values = r.n;
	assert_int_equal(run(f, &j), HDL_RC_INVALID_VALUE);
	assert_string_equal(j.message, "Template 88.100.1:1.0: index 2000 (NAME) is required");
	assert_int_equal(store_txlog_last(f->s), tx0);
	assert_int_equal(audits(f), a0 + 1);
	/* the good record goes in */
	r = good();
	/* a real HS_ADMIN (the template does not look at it, the writer's authorization does) */
	uint8_t adm[128];
	size_t alen = 0;
	hdl_admin_t a = {.perms = HDL_ADM_ALL, .handle = S("0.NA/88.100.1"), .index = 300};
	assert_int_equal(hdl_admin_encode(&a, adm, sizeof(adm), &alen), HDL_EOK);
	r.v[1].data = (hdl_slice_t){adm, (uint32_t)alen};
	j = job(WR_CREATE, "88.100.1/P1", ADMIN);
	j.values = r.v;
	j.n_values = r.n;
	assert_int_equal(run(f, &j), HDL_RC_SUCCESS);
	/* the same create again, idempotent: success, nothing written, no audit entry */
	a0 = audits(f);
	tx0 = store_txlog_last(f->s);
	j = job(WR_CREATE, "88.100.1/P1", ADMIN);
	j.values = r.v;
	j.n_values = r.n;
	j.flags = WR_F_IDEMPOTENT;
	assert_int_equal(run(f, &j), HDL_RC_SUCCESS);
	assert_int_equal(store_txlog_last(f->s), tx0);
	assert_int_equal(audits(f), a0);
	/* ... but only for the permission a create needs, and only for the same values */
	j = job(WR_CREATE, "88.100.1/P1", "300:88.100.1/nobody");
	j.values = r.v;
	j.n_values = r.n;
	j.flags = WR_F_IDEMPOTENT;
	assert_int_equal(run(f, &j), HDL_RC_INVALID_ADMIN);
	r.v[0].data = S("https://example.com/other");
	j = job(WR_CREATE, "88.100.1/P1", ADMIN);
	j.values = r.v;
	j.n_values = r.n;
	j.flags = WR_F_IDEMPOTENT;
	assert_int_equal(run(f, &j), HDL_RC_HANDLE_ALREADY_EXISTS);
	/* add, modify and remove are checked on the record they would leave */
	rec_t bad = {.n = 0};
	add(&bad, 2002, "WEIGHT", "heavy");
	j = job(WR_ADD_VALUES, "88.100.1/P1", ADMIN);
	j.values = bad.v;
	j.n_values = bad.n;
	j.flags = WR_F_OVERWRITE;
	assert_int_equal(run(f, &j), HDL_RC_INVALID_VALUE);
	assert_string_equal(j.message,
	                    "Template 88.100.1:1.0: index 2002 (WEIGHT) is not a number");
	j = job(WR_MODIFY_VALUES, "88.100.1/P1", ADMIN);
	j.values = bad.v;
	j.n_values = bad.n;
	assert_int_equal(run(f, &j), HDL_RC_INVALID_VALUE);
	uint32_t idx = 2003;
	j = job(WR_REMOVE_VALUES, "88.100.1/P1", ADMIN);
	j.indexes = &idx;
	j.n_indexes = 1;
	assert_int_equal(run(f, &j), HDL_RC_INVALID_VALUE);
	assert_string_equal(j.message, "Template 88.100.1:1.0: index 2003 (DATE) is required");
	idx = 2001; /* MODEL is optional */
	assert_int_equal(run(f, &j), HDL_RC_SUCCESS);
	/* deleting the template leaves its handles unable to change until they name another */
	j = job(WR_TEMPLATE_DEL, "0.NA/88.100.1", ADMIN);
	j.data = S("1.0");
	assert_int_equal(run(f, &j), HDL_RC_SUCCESS);
	assert_int_equal(run(f, &j), HDL_RC_HANDLE_NOT_FOUND);
	rec_t ok = {.n = 0};
	add(&ok, 2, "DESC", "x");
	j = job(WR_ADD_VALUES, "88.100.1/P1", ADMIN);
	j.values = ok.v;
	j.n_values = ok.n;
	assert_int_equal(run(f, &j), HDL_RC_INVALID_VALUE);
	assert_string_equal(j.message, "Template 88.100.1:1.0 not found");
	j = job(WR_DELETE, "88.100.1/P1", ADMIN);
	assert_int_equal(run(f, &j), HDL_RC_SUCCESS);
}

static void test_submit_many(void **state)
{
	fix_t *f = *state;
	seed_prefix(f); /* queue_max 100, batch_max 8 */
	enum { N = 40 };
	static wr_job_t jobs[N];
	static wr_job_t *ptrs[N];
	static char names[N][32];
	static rec_t recs[N];
	waiter_t w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
	for (int i = 0; i < N; i++) {
		snprintf(names[i], sizeof(names[i]), "88.100.1/M%d", i);
		recs[i].n = 0;
		add(&recs[i], 1, "URL", "x");
		jobs[i] = job(WR_CREATE, names[i], ADMIN);
		jobs[i].values = recs[i].v;
		jobs[i].n_values = recs[i].n;
		jobs[i].done = done_signal;
		jobs[i].owner = &w;
		ptrs[i] = &jobs[i];
	}
	jobs[7].handle = S("88.999/x"); /* not homed: refused alone */
	assert_int_equal(writer_submit_many(f->w, ptrs, N), HDL_EOK);
	wait_for(&w, N);
	for (int i = 0; i < N; i++)
		assert_int_equal(jobs[i].rcode, i == 7 ? HDL_RC_SERVER_NOT_RESP : HDL_RC_SUCCESS);
	writer_stats_t st;
	writer_stats(f->w, &st);
	assert_true(st.max_batch <= 8);
	/* more than the queue holds: none is queued */
	static wr_job_t big[101];
	static wr_job_t *bp[101];
	for (int i = 0; i < 101; i++) {
		big[i] = jobs[0];
		bp[i] = &big[i];
	}
	assert_int_equal(writer_submit_many(f->w, bp, 101), HDL_EAGAIN);
	assert_int_equal(writer_submit_many(f->w, bp, 0), HDL_EINVAL);
	assert_int_equal(w.done, N);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse),
	    cmocka_unit_test(test_pattern_guard),
	    cmocka_unit_test(test_validate),
	    cmocka_unit_test(test_merge),
	    cmocka_unit_test_setup_teardown(test_store, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_store_bounds, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_writer_hook, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_submit_many, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
