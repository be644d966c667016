/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Unit tests for proto/json_write.c: the direct REST JSON writer must give exactly the
 *        text of json_dumps(hdl_json_from_values(...), JSON_COMPACT) (and of the resolution
 *        object http.c built with jansson) for the demo seeds and for hand-made edge cases
 *        (escapes, control characters, non-ASCII and invalid UTF-8, TTL types, permissions,
 *        timestamps, references, admin variants, binary data, structured fallbacks); buffer
 *        limits and failure propagation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hdl/error.h"
#include "hdl/values.h"
#include "proto/json.h"
#include "proto/json_write.h"

static char *jansson_values(const hdl_value_t *v, uint32_t n)
{
	json_t *j = hdl_json_from_values(v, n);
	assert_non_null(j);
	char *s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	assert_non_null(s);
	return s;
}

/* The object http.c's jansson path builds for a resolution answer. */
static char *jansson_resolution(uint32_t rc, const char *handle, const hdl_value_t *v,
                                uint32_t n)
{
	json_t *j = json_object();
	json_object_set_new(j, "responseCode", json_integer(rc));
	json_object_set_new(j, "handle", json_string(handle));
	json_object_set_new(j, "values", n ? hdl_json_from_values(v, n) : json_array());
	char *s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	assert_non_null(s);
	return s;
}

static void expect_same(const hdl_value_t *v, uint32_t n)
{
	char *want = jansson_values(v, n);
	hdl_buf_t b;
	hdl_buf_init(&b, 0);
	assert_true(hdl_jw_values(&b, v, n));
	assert_false(b.fail);
	if (b.len != strlen(want) || memcmp(b.p, want, b.len) != 0) {
		size_t d = 0;
		while (d < b.len && want[d] && b.p[d] == (uint8_t)want[d])
			d++;
		size_t from = d > 60 ? d - 60 : 0;
		fail_msg("writer differs at byte %zu\n got: %.120s\nwant: %.120s", d,
		         (const char *)b.p + from, want + from);
	}
	/* each value alone too */
	for (uint32_t i = 0; i < n; i++) {
		char *w1 = jansson_values(&v[i], 1);
		b.len = 0;
		assert_true(hdl_jw_value(&b, &v[i]));
		assert_int_equal(b.len + 2, strlen(w1));
		assert_memory_equal(b.p, w1 + 1, b.len);
		free(w1);
	}
	hdl_buf_free(&b);
	free(want);
}

static hdl_value_t val(uint32_t index, const char *type, const void *data, size_t len)
{
	hdl_value_t v;
	memset(&v, 0, sizeof(v));
	v.index = index;
	v.type = (hdl_slice_t){(const uint8_t *)type, (uint32_t)strlen(type)};
	v.data = (hdl_slice_t){(const uint8_t *)data, (uint32_t)len};
	v.ttl_type = HDL_TTL_RELATIVE;
	v.ttl = 86400;
	v.perms = HDL_PERM_DEFAULT;
	return v;
}

static hdl_value_t sval(uint32_t index, const char *type, const char *data)
{
	return val(index, type, data, strlen(data));
}

/* Every line of seeds/demo.jsonl: values parsed by hdl_json_to_values, rendered both ways. */
static void test_demo_seeds(void **state)
{
	(void)state;
	char path[1024];
	snprintf(path, sizeof(path), "%s/seeds/demo.jsonl", HDL_SOURCE_DIR);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	unsigned records = 0, values = 0;
	while ((len = getline(&line, &cap, f)) > 0) {
		if (line[0] != '{')
			continue;
		json_error_t e;
		json_t *root = json_loadb(line, (size_t)len, 0, &e);
		assert_non_null(root);
		hdl_arena_t a;
		uint8_t abuf[16384];
		hdl_arena_init(&a, abuf, sizeof(abuf), 8u << 20);
		hdl_value_t *v = NULL;
		uint32_t n = 0;
		char err[128];
		assert_int_equal(hdl_json_to_values(json_object_get(root, "values"), &a, &v, &n, err,
		                                    sizeof(err)),
		                 HDL_EOK);
		expect_same(v, n);
		/* the whole resolution object */
		const char *h = json_string_value(json_object_get(root, "handle"));
		assert_non_null(h);
		char *want = jansson_resolution(HDL_RC_SUCCESS, h, v, n);
		hdl_buf_t b;
		hdl_buf_init(&b, 0);
		assert_true(hdl_jw_resolution(&b, HDL_RC_SUCCESS, (const uint8_t *)h, strlen(h), v, n));
		assert_int_equal(b.len, strlen(want));
		assert_memory_equal(b.p, want, b.len);
		hdl_buf_free(&b);
		free(want);
		records++;
		values += n;
		hdl_arena_free(&a);
		json_decref(root);
	}
	free(line);
	fclose(f);
	assert_true(records >= 100);
	assert_true(values >= 500);
}

static void test_strings(void **state)
{
	(void)state;
	static const char *const texts[] = {
		"",
		"plain",
		"quote \" backslash \\ slash /",
		"tab\tnl\ncr\rff\fbs\b",
		"\x01\x02\x1f ctrl",
		"del \x7f",
		"utf8 \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80 \xc3\xa9",
		"bad \xff utf8",
		"truncated \xe4\xb8",
		"overlong \xc0\xaf",
		"surrogate \xed\xa0\x80",
		"too big \xf4\x90\x80\x80",
		"lone cont \x80\x80",
		"<script>&amp;</script>",
	};
	hdl_value_t v[64];
	uint32_t n = 0;
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		v[n++] = sval((uint32_t)i + 1, "DESC", texts[i]);
		/* the same text as a type name */
		v[n] = sval((uint32_t)i + 100, "X", "x");
		v[n].type = (hdl_slice_t){(const uint8_t *)texts[i], (uint32_t)strlen(texts[i])};
		n++;
	}
	static const uint8_t nul[] = {'a', 0, 'b'};
	v[n++] = val(500, "NUL", nul, sizeof(nul));
	expect_same(v, n);

	/* escapes, directly */
	hdl_buf_t b;
	hdl_buf_init(&b, 0);
	assert_true(hdl_jw_string(&b, (const uint8_t *)"a\"\\\x01\x7f\xff", 6));
	const char want[] = "\"a\\\"\\\\\\u0001\x7f\xef\xbf\xbd\"";
	assert_int_equal(b.len, sizeof(want) - 1);
	assert_memory_equal(b.p, want, b.len);
	hdl_buf_free(&b);
}

static void test_binary_and_ttl(void **state)
{
	(void)state;
	static const uint8_t bin1[] = {0xff};
	static const uint8_t bin2[] = {0x00, 0x01};
	static const uint8_t bin3[] = {0xde, 0xad, 0xbe};
	static const uint8_t bin4[] = {0xde, 0xad, 0xbe, 0xef, 0x00, 0x10, 0x83};
	hdl_value_t v[16];
	uint32_t n = 0;
	v[n++] = val(1, "BIN", bin1, sizeof(bin1));
	v[n++] = val(2, "BIN", bin2, sizeof(bin2));
	v[n++] = val(3, "BIN", bin3, sizeof(bin3));
	v[n++] = val(4, "BIN", bin4, sizeof(bin4));
	v[n++] = val(5, "EMPTY", "", 0);
	v[n] = sval(6, "URL", "https://example.org/a");
	v[n].ttl_type = HDL_TTL_ABSOLUTE;
	v[n++].ttl = 1700000000u;
	v[n] = sval(7, "URL", "https://example.org/b");
	v[n].ttl = 0xFFFFFFFFu; /* Java int -1 */
	v[n++].timestamp = 1;
	v[n] = sval(8, "URL", "https://example.org/c");
	v[n].ttl = 0x80000000u;
	v[n++].timestamp = 0xFFFFFFFFu;
	v[n] = sval(0x80000001u, "NEGIDX", "x");
	v[n].ttl_type = 7; /* any non-relative TTL type is a time */
	v[n++].ttl = 0;
	v[n] = sval(0xFFFFFFFFu, "TS", "y");
	v[n++].timestamp = 1732900000u;
	expect_same(v, n);
}

static void test_permissions_and_refs(void **state)
{
	(void)state;
	hdl_value_t v[20];
	uint32_t n = 0;
	for (uint8_t p = 0; p < 16; p++) {
		v[n] = sval(p + 1u, "P", "perm");
		v[n++].perms = p;
	}
	v[n] = sval(30, "HIGH", "bits over 0x0F are ignored");
	v[n++].perms = 0xFE;
	hdl_ref_t refs[3] = {
		{{(const uint8_t *)"88.100.1/a", 10}, 1},
		{{(const uint8_t *)"bad \xff ref", 9}, 0x80000000u},
		{{(const uint8_t *)"", 0}, 0},
	};
	v[n] = sval(31, "REFS", "with references");
	v[n].refs = refs;
	v[n++].n_refs = 3;
	expect_same(v, n);
}

static void test_admin(void **state)
{
	(void)state;
	uint8_t enc[5][64];
	size_t len[5];
	hdl_admin_t ad[5] = {
		{HDL_ADM_ALL, {(const uint8_t *)"0.NA/88.100.1", 13}, 200, false},
		{0x0001, {(const uint8_t *)"88.100.1/ADMIN", 14}, 0xFFFFFFFFu, false},
		{0x0F0F, {(const uint8_t *)"x", 1}, 300, true},
		{0x0000, {(const uint8_t *)"\xe4\xb8\xad\"q", 5}, 1, false},
		{0xF000, {(const uint8_t *)"over ADM_ALL", 12}, 1, false},
	};
	hdl_value_t v[8];
	uint32_t n = 0;
	for (int i = 0; i < 5; i++) {
		assert_int_equal(hdl_admin_encode(&ad[i], enc[i], sizeof(enc[i]), &len[i]), HDL_EOK);
		v[n++] = val(100u + (uint32_t)i, "HS_ADMIN", enc[i], len[i]);
	}
	/* invalid UTF-8 admin handle: not the admin form */
	uint8_t bad[32];
	size_t bl;
	hdl_admin_t badad = {HDL_ADM_ALL, {(const uint8_t *)"a\xff", 2}, 1, false};
	assert_int_equal(hdl_admin_encode(&badad, bad, sizeof(bad), &bl), HDL_EOK);
	v[n++] = val(110, "HS_ADMIN", bad, bl);
	/* truncated admin data; case-insensitive type */
	v[n++] = val(111, "HS_ADMIN", enc[0], 3);
	v[n++] = val(112, "hs_admin", enc[0], len[0]);
	expect_same(v, n);
}

static void test_structured_fallback(void **state)
{
	(void)state;
	/* HS_VLIST, HS_SITE and HS_PUBKEY go through proto/json.c for that value */
	hdl_ref_t refs[2] = {{{(const uint8_t *)"88.100.1/a", 10}, 300},
	                     {{(const uint8_t *)"88.100.1/b", 10}, 301}};
	uint8_t vl[128];
	size_t vll;
	assert_int_equal(hdl_vlist_encode(refs, 2, vl, sizeof(vl), &vll), HDL_EOK);
	hdl_value_t v[6];
	uint32_t n = 0;
	v[n++] = val(1, "HS_VLIST", vl, vll);
	v[n++] = val(2, "HS_VLIST", "junk", 4);
	v[n++] = val(3, "HS_SITE", "junk", 4);
	v[n++] = val(4, "HS_PUBKEY", "\x00\x00\x00\x07", 4);
	v[n++] = sval(5, "URL", "https://example.org/");
	expect_same(v, n);
}

static void test_resolution_object(void **state)
{
	(void)state;
	hdl_value_t v = sval(1, "URL", "https://example.org/test");
	static const char *const handles[] = {"88.100.1/test", "88.100.1/\xe4\xb8\xad \"q\" \\",
	                                      "0.NA/88.100.1"};
	for (size_t i = 0; i < 3; i++) {
		for (uint32_t k = 0; k < 2; k++) {
			uint32_t rc = k ? HDL_RC_SUCCESS : HDL_RC_VALUES_NOT_FOUND;
			char *want = jansson_resolution(rc, handles[i], &v, k);
			hdl_buf_t b;
			hdl_buf_init(&b, 0);
			assert_true(hdl_jw_resolution(&b, rc, (const uint8_t *)handles[i],
			                              strlen(handles[i]), k ? &v : NULL, k));
			assert_int_equal(b.len, strlen(want));
			assert_memory_equal(b.p, want, b.len);
			hdl_buf_free(&b);
			free(want);
		}
	}
}

static void test_buffer_limits(void **state)
{
	(void)state;
	hdl_buf_t b;
	hdl_buf_init(&b, 64);
	assert_true(hdl_buf_puts(&b, "0123456789"));
	assert_true(hdl_buf_putu(&b, 0));
	assert_true(hdl_buf_putu(&b, UINT64_MAX));
	assert_int_equal(b.len, 31);
	assert_memory_equal(b.p, "0123456789018446744073709551615", 31);
	hdl_value_t v = sval(1, "URL", "https://example.org/a-value-that-does-not-fit");
	assert_false(hdl_jw_value(&b, &v));
	assert_true(b.fail);
	/* once failed, every append fails */
	assert_false(hdl_buf_put(&b, "x", 1));
	hdl_buf_free(&b);
	assert_null(b.p);
	assert_int_equal(b.len, 0);
	assert_false(b.fail);
	assert_int_equal(b.max, 64);
	/* growth without a limit */
	hdl_buf_init(&b, 0);
	for (int i = 0; i < 10000; i++)
		assert_true(hdl_buf_put(&b, "abcdefgh", 8));
	assert_int_equal(b.len, 80000);
	assert_true(b.cap >= b.len);
	hdl_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_demo_seeds),
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_binary_and_ttl),
		cmocka_unit_test(test_permissions_and_refs),
		cmocka_unit_test(test_admin),
		cmocka_unit_test(test_structured_fallback),
		cmocka_unit_test(test_resolution_object),
		cmocka_unit_test(test_buffer_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
