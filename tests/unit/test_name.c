/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Unit tests for proto/name.c: handle name checks, UTF-8 validity, prefix/suffix split,
 *        storage normalization (case rules, 0.NA, slash-less names), naming authority, and the
 *        slice helpers of msg.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hdl/error.h"
#include "hdl/msg.h"

#define S(lit) ((hdl_slice_t){(const uint8_t *)(lit), (uint32_t)(sizeof(lit) - 1)})

static void assert_slice(hdl_slice_t s, const char *want)
{
	size_t n = strlen(want);
	assert_int_equal(s.len, n);
	if (n)
		assert_memory_equal(s.p, want, n);
}

/* ---- hdl_name_check / hdl_utf8_valid -------------------------------------------------------- */

struct name_case {
	const char *desc;
	const char *bytes;
	size_t len; /* 0: strlen */
	int check;  /* hdl_name_check */
	bool utf8;  /* hdl_utf8_valid */
};

static const struct name_case name_cases[] = {
	{"plain handle", "88.100.1/test", 0, HDL_EOK, true},
	{"prefix handle", "0.NA/88.100", 0, HDL_EOK, true},
	{"slash-less", "88.100", 0, HDL_EOK, true},
	{"site info handle", "/", 0, HDL_EOK, true},
	{"2-byte UTF-8 (é)", "88.100/caf\xc3\xa9", 0, HDL_EOK, true},
	{"3-byte UTF-8 (测试)", "88.100/\xe6\xb5\x8b\xe8\xaf\x95", 0, HDL_EOK, true},
	{"4-byte UTF-8 (U+1F600)", "88.100/\xf0\x9f\x98\x80", 0, HDL_EOK, true},
	{"U+10FFFF", "x/\xf4\x8f\xbf\xbf", 0, HDL_EOK, true},
	{"U+FFFD", "x/\xef\xbf\xbd", 0, HDL_EOK, true},
	{"space and punctuation", "88.100/a b;c?d#e", 0, HDL_EOK, true},
	{"empty", "", 0, HDL_ENAME, true},
	{"NUL inside", "88.100/a\0b", 10, HDL_ENAME, true},
	{"C0 control", "88.100/a\x01", 0, HDL_ENAME, true},
	{"tab", "88.100/a\tb", 0, HDL_ENAME, true},
	{"newline", "88.100/a\n", 0, HDL_ENAME, true},
	{"DEL", "88.100/a\x7f", 0, HDL_ENAME, true},
	{"lone continuation byte", "88.100/\x80", 0, HDL_EUTF8, false},
	{"0xff", "88.100/\xff", 0, HDL_EUTF8, false},
	{"overlong '/' (C0 AF)", "88.100\xc0\xaf" "x", 0, HDL_EUTF8, false},
	{"overlong 3-byte (E0 80 AF)", "x/\xe0\x80\xaf", 0, HDL_EUTF8, false},
	{"overlong 4-byte (F0 80 80 AF)", "x/\xf0\x80\x80\xaf", 0, HDL_EUTF8, false},
	{"surrogate D800", "x/\xed\xa0\x80", 0, HDL_EUTF8, false},
	{"surrogate DFFF", "x/\xed\xbf\xbf", 0, HDL_EUTF8, false},
	{"above U+10FFFF", "x/\xf4\x90\x80\x80", 0, HDL_EUTF8, false},
	{"F5 lead byte", "x/\xf5\x80\x80\x80", 0, HDL_EUTF8, false},
	{"truncated 2-byte at end", "x/\xc3", 0, HDL_EUTF8, false},
	{"truncated 3-byte at end", "x/\xe6\xb5", 0, HDL_EUTF8, false},
	{"truncated 4-byte at end", "x/\xf0\x9f\x98", 0, HDL_EUTF8, false},
	{"bad continuation", "x/\xe6\x41\x8b", 0, HDL_EUTF8, false},
};

static void test_name_check_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(name_cases) / sizeof(name_cases[0]); i++) {
		const struct name_case *c = &name_cases[i];
		size_t len = c->len ? c->len : strlen(c->bytes);
		int rc = hdl_name_check((const uint8_t *)c->bytes, len);
		if (rc != c->check)
			fail_msg("%s: hdl_name_check = %s, want %s", c->desc, hdl_errname(rc),
			         hdl_errname(c->check));
		if (hdl_utf8_valid((const uint8_t *)c->bytes, len) != c->utf8)
			fail_msg("%s: hdl_utf8_valid != %d", c->desc, c->utf8);
	}
}

static void test_name_length_limit(void **state)
{
	(void)state;
	uint8_t *buf = malloc(HDL_MAX_HANDLE_LEN + 1);
	assert_non_null(buf);
	memset(buf, 'a', HDL_MAX_HANDLE_LEN + 1);
	memcpy(buf, "88.100/", 7);
	assert_int_equal(hdl_name_check(buf, HDL_MAX_HANDLE_LEN), HDL_EOK);
	assert_int_equal(hdl_name_check(buf, HDL_MAX_HANDLE_LEN + 1), HDL_ENAME);
	/* a multi-byte character straddling the limit: bytes count, not characters */
	memcpy(buf + HDL_MAX_HANDLE_LEN - 2, "\xe6\xb5\x8b", 3);
	assert_int_equal(hdl_name_check(buf, HDL_MAX_HANDLE_LEN + 1), HDL_ENAME);
	assert_int_equal(hdl_name_check(buf, HDL_MAX_HANDLE_LEN), HDL_EUTF8); /* cut in half */
	free(buf);
	assert_true(hdl_utf8_valid(NULL, 0));
}

/* ---- split ----------------------------------------------------------------------------------- */

static void test_name_split(void **state)
{
	(void)state;
	static const struct {
		const char *name, *prefix, *suffix;
	} cases[] = {
		{"88.100.1/test", "88.100.1", "test"},
		{"0.NA/88.100", "0.NA", "88.100"},
		{"88.100.1/a/b", "88.100.1", "a/b"}, /* first slash only */
		{"88.100", "0.NA", "88.100"},        /* slash-less: 0.NA/<name> */
		{"/", "", ""},
		{"/x", "", "x"},
		{"x/", "x", ""},
		{"", "0.NA", ""},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		hdl_slice_t name = hdl_slice_str(cases[i].name), p, s;
		hdl_name_split(name, &p, &s);
		assert_slice(p, cases[i].prefix);
		assert_slice(s, cases[i].suffix);
		if (strchr(cases[i].name, '/')) {
			/* both pieces borrow from the name */
			assert_ptr_equal(p.p, name.p);
			assert_ptr_equal(s.p, name.p + p.len + 1);
		} else {
			assert_ptr_equal(s.p, name.p);
		}
	}
}

/* ---- normalize --------------------------------------------------------------------------------- */

static void test_name_normalize_table(void **state)
{
	(void)state;
	static const struct {
		const char *name;
		bool cs; /* case-sensitive suffixes */
		const char *key;
	} cases[] = {
		/* prefix always folded; suffix folded unless case-sensitive */
		{"88.100.1/Test", false, "88.100.1/TEST"},
		{"88.100.1/Test", true, "88.100.1/Test"},
		{"abc.Def/MiXed", true, "ABC.DEF/MiXed"},
		{"abc.Def/MiXed", false, "ABC.DEF/MIXED"},
		/* 0.* (global) handles fold entirely even when case-sensitive */
		{"0.na/88.100.abc", true, "0.NA/88.100.ABC"},
		{"0.NA/88.100.AbC", false, "0.NA/88.100.ABC"},
		{"0/abc", true, "0/ABC"},
		{"0.x/abc", true, "0.X/ABC"},
		{"00/abc", true, "00/abc"}, /* "00" is not a 0.* prefix */
		{"0a/abc", true, "0A/abc"},
		/* slash-less X means 0.NA/X, folded like any 0.NA handle */
		{"88.100", false, "0.NA/88.100"},
		{"abc", true, "0.NA/ABC"},
		/* only ASCII a-z fold; other bytes are kept */
		{"88.100/\xe6\xb5\x8b\xe8\xaf\x95" "ab", false, "88.100/\xe6\xb5\x8b\xe8\xaf\x95" "AB"},
		{"88.100/caf\xc3\xa9", false, "88.100/CAF\xc3\xa9"},
		{"x/a-z{|}~`@[", false, "X/A-Z{|}~`@["},
		/* further slashes belong to the suffix */
		{"p/a/b", false, "P/A/B"},
		{"/", false, "/"},
	};
	uint8_t out[64];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = hdl_name_normalize(hdl_slice_str(cases[i].name), cases[i].cs, out,
		                              sizeof(out));
		size_t want = strlen(cases[i].key);
		if (n != want || memcmp(out, cases[i].key, want) != 0)
			fail_msg("normalize(%s, cs=%d) = '%.*s', want '%s'", cases[i].name,
			         cases[i].cs, (int)n, out, cases[i].key);
		/* idempotent */
		uint8_t again[64];
		size_t n2 = hdl_name_normalize((hdl_slice_t){out, (uint32_t)n}, cases[i].cs, again,
		                               sizeof(again));
		assert_int_equal(n2, n);
		assert_memory_equal(again, out, n);
	}
}

static void test_name_normalize_capacity(void **state)
{
	(void)state;
	uint8_t out[32];
	/* exact fit works; one byte less returns 0 and writes nothing */
	memset(out, 0xee, sizeof(out));
	assert_int_equal(hdl_name_normalize(S("88.100/ab"), false, out, 9), 9);
	assert_memory_equal(out, "88.100/AB", 9);
	memset(out, 0xee, sizeof(out));
	assert_int_equal(hdl_name_normalize(S("88.100/ab"), false, out, 8), 0);
	assert_int_equal(out[0], 0xee);
	/* slash-less needs 5 more bytes for "0.NA/" */
	assert_int_equal(hdl_name_normalize(S("abc"), false, out, 8), 8);
	assert_memory_equal(out, "0.NA/ABC", 8);
	memset(out, 0xee, sizeof(out));
	assert_int_equal(hdl_name_normalize(S("abc"), false, out, 7), 0);
	assert_int_equal(out[0], 0xee);
	assert_int_equal(hdl_name_normalize(S("abc"), false, NULL, 0), 0);
}

/* The same handle in any ASCII case has one key (case-insensitive node). */
static void test_name_normalize_same_key(void **state)
{
	(void)state;
	static const char *const spellings[] = {"88.100.1/abc", "88.100.1/ABC", "88.100.1/aBc"};
	uint8_t k0[32], k[32];
	size_t n0 = hdl_name_normalize(hdl_slice_str(spellings[0]), false, k0, sizeof(k0));
	for (size_t i = 1; i < 3; i++) {
		size_t n = hdl_name_normalize(hdl_slice_str(spellings[i]), false, k, sizeof(k));
		assert_int_equal(n, n0);
		assert_memory_equal(k, k0, n);
	}
	/* slash-less and explicit 0.NA/ spellings share a key */
	size_t a = hdl_name_normalize(S("88.100"), true, k0, sizeof(k0));
	size_t b = hdl_name_normalize(S("0.na/88.100"), true, k, sizeof(k));
	assert_int_equal(a, b);
	assert_memory_equal(k0, k, a);
}

/* ---- authority ----------------------------------------------------------------------------- */

static void test_name_authority(void **state)
{
	(void)state;
	static const struct {
		const char *name, *auth;
	} cases[] = {
		{"0.NA/88.100.1", "88.100.1"}, /* prefix handle: the prefix it stands for */
		{"0.na/88.100.1", "88.100.1"}, /* 0.NA matched without case */
		{"88.100.1/x", "88.100.1"},
		{"88.100.1/x/y", "88.100.1"},
		{"88.100.1", "88.100.1"}, /* slash-less = 0.NA/88.100.1 */
		{"0.NA/0.NA", "0.NA"},
		{"0.NAX/y", "0.NAX"},
		{"/", ""},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		hdl_slice_t name = hdl_slice_str(cases[i].name);
		hdl_slice_t a = hdl_name_authority(name);
		assert_slice(a, cases[i].auth);
		/* borrows from the name */
		if (a.len)
			assert_true(a.p >= name.p && a.p + a.len <= name.p + name.len);
	}
}

/* ---- slices -------------------------------------------------------------------------------- */

static void test_slices(void **state)
{
	(void)state;
	hdl_slice_t a = hdl_slice_str("HS_Admin");
	assert_int_equal(a.len, 8);
	assert_true(hdl_slice_eq(a, S("HS_Admin")));
	assert_false(hdl_slice_eq(a, S("HS_ADMIN")));
	assert_false(hdl_slice_eq(a, S("HS_Admi")));
	assert_true(hdl_slice_eq_nocase(a, S("hs_admin")));
	assert_true(hdl_slice_eq_nocase(a, S("HS_ADMIN")));
	assert_false(hdl_slice_eq_nocase(a, S("HS_ADMIN.")));
	assert_false(hdl_slice_eq_nocase(S("a@"), S("A`"))); /* only letters fold */
	assert_true(hdl_slice_eq_nocase(S("\xc3\xa9"), S("\xc3\xa9")));
	assert_false(hdl_slice_eq_nocase(S("\xc3\xa9"), S("\xc3\x89"))); /* no Unicode folding */
	hdl_slice_t e = hdl_slice_str("");
	assert_int_equal(e.len, 0);
	assert_true(hdl_slice_eq(e, (hdl_slice_t){NULL, 0}));
	assert_true(hdl_slice_eq_nocase(e, (hdl_slice_t){NULL, 0}));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_check_table),
		cmocka_unit_test(test_name_length_limit),
		cmocka_unit_test(test_name_split),
		cmocka_unit_test(test_name_normalize_table),
		cmocka_unit_test(test_name_normalize_capacity),
		cmocka_unit_test(test_name_normalize_same_key),
		cmocka_unit_test(test_name_authority),
		cmocka_unit_test(test_slices),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
