/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Unit tests for proto/json.c: the Handle.Net REST value JSON both ways (formats string,
 *        base64, hex, admin, vlist, site, key), permissions / ttl / timestamp / references rules,
 *        the value bodies real REST clients sent (tests/captures/ *-rest.requests.hex), time helpers,
 *        limits and error messages, and JSON -> value -> JSON round trips.
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
#include "proto/json.h"

static json_t *parse(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
	if (j == NULL)
		fail_msg("bad test JSON: %s: %s", e.text, text);
	return j;
}

static void assert_json_eq(const json_t *got, const char *want_text)
{
	json_t *want = parse(want_text);
	if (!json_equal(got, want)) {
		char *g = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS);
		fail_msg("JSON differs\n got: %s\nwant: %s", g ? g : "(null)", want_text);
	}
	json_decref(want);
}

static void assert_slice_mem(hdl_slice_t s, const void *want, size_t n)
{
	assert_int_equal(s.len, n);
	if (n)
		assert_memory_equal(s.p, want, n);
}

/** Parse one value from text. */
static int value_from(const char *text, hdl_arena_t *a, hdl_value_t *v, char *err, size_t n)
{
	json_t *j = parse(text);
	int rc = hdl_json_to_value(j, a, v, err, n);
	json_decref(j);
	return rc;
}

/* ---- time ---------------------------------------------------------------------------------- */

static void test_time(void **state)
{
	(void)state;
	char buf[21];
	uint32_t t;
	hdl_json_time(0, buf);
	assert_string_equal(buf, "1970-01-01T00:00:00Z");
	hdl_json_time(955406506, buf);
	assert_string_equal(buf, "2000-04-10T22:41:46Z");
	hdl_json_time(951782400, buf); /* leap day */
	assert_string_equal(buf, "2000-02-29T00:00:00Z");
	hdl_json_time(UINT32_MAX, buf);
	assert_string_equal(buf, "2106-02-07T06:28:15Z");

	assert_int_equal(hdl_json_parse_time("2000-04-10T22:41:46Z", &t), HDL_EOK);
	assert_int_equal(t, 955406506);
	assert_int_equal(hdl_json_parse_time("2000-04-10T22:41:46.123Z", &t), HDL_EOK);
	assert_int_equal(t, 955406506);
	assert_int_equal(hdl_json_parse_time("2000-04-11T00:41:46+02:00", &t), HDL_EOK);
	assert_int_equal(t, 955406506);
	assert_int_equal(hdl_json_parse_time("2000-04-10T17:41:46-0500", &t), HDL_EOK);
	assert_int_equal(t, 955406506);
	assert_int_equal(hdl_json_parse_time("2000-04-10T22:41:46", &t), HDL_EOK);
	assert_int_equal(t, 955406506);
	assert_int_equal(hdl_json_parse_time("2000-04-10", &t), HDL_EOK);
	assert_int_equal(t, 955324800);
	assert_int_equal(hdl_json_parse_time("2106-02-07T06:28:15Z", &t), HDL_EOK);
	assert_int_equal(t, UINT32_MAX);

	static const char *bad[] = {
		"", "2000", "2000-13-01T00:00:00Z", "2001-02-29T00:00:00Z", "2000-04-31T00:00:00Z",
		"2000-04-10T24:00:00Z", "2000-04-10T22:61:00Z", "2000-04-10T22:41:46Zjunk",
		"2000-04-10T22:41", "1969-12-31T23:59:59Z", "2106-02-07T06:28:16Z",
		"2000-04-10T22:41:46.Z", "2000-04-10T22:41:46+2", "abcd-ef-ghT00:00:00Z",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (hdl_json_parse_time(bad[i], &t) != HDL_EJSON)
			fail_msg("accepted bad time '%s'", bad[i]);
	}
}

/* ---- the doc example and basic fields ------------------------------------------------------- */

/* handle-protocol.md §13.2 example: parses, encodes the admin record, and re-emits identically. */
static void test_doc_example(void **state)
{
	(void)state;
	static const char *ex =
		"{\"index\":100,\"type\":\"HS_ADMIN\",\"data\":{\"format\":\"admin\",\"value\":"
		"{\"handle\":\"0.NA/20.500.12345\",\"index\":200,\"permissions\":\"011111111111\"}},"
		"\"ttl\":86400,\"timestamp\":\"2000-04-10T22:41:46Z\"}";
	static const uint8_t admin[] = {
		0x07, 0xff,                                                      /* perms: all but list */
		0x00, 0x00, 0x00, 0x11, '0', '.', 'N', 'A', '/', '2', '0', '.', '5', '0', '0', '.', '1',
		'2', '3', '4', '5',                                              /* handle */
		0x00, 0x00, 0x00, 0xc8,                                          /* index 200 */
	};
	hdl_arena_t a;
	hdl_value_t v;
	char err[128];
	hdl_arena_init(&a, NULL, 0, 0);
	assert_int_equal(value_from(ex, &a, &v, err, sizeof(err)), HDL_EOK);
	assert_int_equal(v.index, 100);
	assert_int_equal(v.ttl_type, HDL_TTL_RELATIVE);
	assert_int_equal(v.ttl, 86400);
	assert_int_equal(v.timestamp, 955406506);
	assert_int_equal(v.perms, HDL_PERM_DEFAULT);
	assert_int_equal(v.n_refs, 0);
	assert_slice_mem(v.type, "HS_ADMIN", 8);
	assert_slice_mem(v.data, admin, sizeof(admin));
	json_t *out = hdl_json_from_value(&v);
	assert_non_null(out);
	assert_json_eq(out, ex);
	/* field order is Handle.Net's: index, type, data, [permissions], ttl, [timestamp] */
	char *text = json_dumps(out, JSON_COMPACT);
	assert_non_null(strstr(text, "{\"index\":100,\"type\":\"HS_ADMIN\",\"data\":"));
	assert_non_null(strstr(text, "},\"ttl\":86400,\"timestamp\":"));
	free(text);
	json_decref(out);
	hdl_arena_free(&a);
}

/* Defaults, omissions, permissions, absolute ttl, references. */
static void test_value_fields(void **state)
{
	(void)state;
	hdl_arena_t a;
	hdl_value_t v;
	char err[128];
	json_t *out;
	hdl_arena_init(&a, NULL, 0, 0);

	/* bare string data, no ttl / permissions / timestamp: defaults, and they are omitted */
	assert_int_equal(value_from("{\"index\":1,\"type\":\"URL\",\"data\":\"http://x/\"}", &a, &v,
	                            err, sizeof(err)),
	                 HDL_EOK);
	assert_int_equal(v.ttl, 86400);
	assert_int_equal(v.perms, 0x0e);
	assert_int_equal(v.timestamp, 0);
	assert_slice_mem(v.data, "http://x/", 9);
	out = hdl_json_from_value(&v);
	assert_json_eq(out, "{\"index\":1,\"type\":\"URL\",\"data\":{\"format\":\"string\","
	                    "\"value\":\"http://x/\"},\"ttl\":86400}");
	json_decref(out);

	/* "1100" (HS_SECKEY style), absolute ttl, references, numeric-string index */
	assert_int_equal(value_from("{\"index\":\"300\",\"type\":\"HS_SECKEY\",\"data\":"
	                            "{\"format\":\"string\",\"value\":\"secret\"},\"permissions\":"
	                            "\"1100\",\"ttl\":\"2030-01-01T00:00:00Z\",\"references\":"
	                            "[{\"handle\":\"0.NA/88\",\"index\":\"7\"}]}",
	                            &a, &v, err, sizeof(err)),
	                 HDL_EOK);
	assert_int_equal(v.index, 300);
	assert_int_equal(v.perms, HDL_PERM_ADMIN_READ | HDL_PERM_ADMIN_WRITE);
	assert_int_equal(v.ttl_type, HDL_TTL_ABSOLUTE);
	assert_int_equal(v.ttl, 1893456000);
	assert_int_equal(v.n_refs, 1);
	assert_slice_mem(v.refs[0].handle, "0.NA/88", 7);
	assert_int_equal(v.refs[0].index, 7);
	out = hdl_json_from_value(&v);
	assert_json_eq(out, "{\"index\":300,\"type\":\"HS_SECKEY\",\"data\":{\"format\":\"string\","
	                    "\"value\":\"secret\"},\"permissions\":\"1100\",\"ttl\":"
	                    "\"2030-01-01T00:00:00Z\",\"references\":[{\"handle\":\"0.NA/88\","
	                    "\"index\":7}]}");
	json_decref(out);

	/* permissions: "*" = all; short strings are right-aligned over the default 1110 */
	static const struct {
		const char *p;
		uint8_t want;
	} perms[] = {{"\"*\"", 0x0f}, {"\"1111\"", 0x0f}, {"\"0000\"", 0x00}, {"\"0\"", 0x0e},
	             {"\"1\"", 0x0f}, {"\"00\"", 0x0c}, {"\"010\"", 0x0a}, {"\"11110\"", 0x0e},
	             {"\"0100\"", 0x04}, {"1100", 0x0c}};
	for (size_t i = 0; i < sizeof(perms) / sizeof(perms[0]); i++) {
		char text[128];
		snprintf(text, sizeof(text),
		         "{\"index\":1,\"type\":\"X\",\"data\":\"\",\"permissions\":%s}", perms[i].p);
		assert_int_equal(value_from(text, &a, &v, err, sizeof(err)), HDL_EOK);
		if (v.perms != perms[i].want)
			fail_msg("permissions %s: got %#x want %#x", perms[i].p, v.perms, perms[i].want);
	}

	/* index and ttl wider than int31 are written as Java's signed int and read back */
	assert_int_equal(value_from("{\"index\":4294967295,\"type\":\"X\",\"data\":\"\",\"ttl\":-1}",
	                            &a, &v, err, sizeof(err)),
	                 HDL_EOK);
	assert_int_equal(v.index, UINT32_MAX);
	assert_int_equal(v.ttl, UINT32_MAX);
	out = hdl_json_from_value(&v);
	assert_json_eq(out, "{\"index\":-1,\"type\":\"X\",\"data\":{\"format\":\"string\","
	                    "\"value\":\"\"},\"ttl\":-1}");
	json_decref(out);
	hdl_arena_free(&a);
}

/* "string" only for UTF-8 without C0 controls other than 0x09-0x13 and without DEL. */
static void test_string_or_base64(void **state)
{
	(void)state;
	static const struct {
		const char *data;
		size_t len;
		const char *json;
	} cases[] = {
		{"abc\t\n\r", 6, "{\"format\":\"string\",\"value\":\"abc\\t\\n\\r\"}"},
		{"\x13", 1, "{\"format\":\"string\",\"value\":\"\\u0013\"}"},
		{"\xe6\xa0\x87\xe8\xaf\x86", 6, "{\"format\":\"string\",\"value\":\"\xe6\xa0\x87\xe8\xaf\x86\"}"},
		{"\x01", 1, "{\"format\":\"base64\",\"value\":\"AQ==\"}"},
		{"\x14", 1, "{\"format\":\"base64\",\"value\":\"FA==\"}"},
		{"a\x7f", 2, "{\"format\":\"base64\",\"value\":\"YX8=\"}"},
		{"\0", 1, "{\"format\":\"base64\",\"value\":\"AA==\"}"},
		{"\xff\xfe\xfd", 3, "{\"format\":\"base64\",\"value\":\"//79\"}"},
		{"\xc0\xaf", 2, "{\"format\":\"base64\",\"value\":\"wK8=\"}"},     /* overlong '/' */
		{"\xed\xa0\x80", 3, "{\"format\":\"base64\",\"value\":\"7aCA\"}"}, /* surrogate */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		hdl_value_t v;
		memset(&v, 0, sizeof(v));
		v.type.p = (const uint8_t *)"X";
		v.type.len = 1;
		v.data.p = (const uint8_t *)cases[i].data;
		v.data.len = (uint32_t)cases[i].len;
		v.perms = HDL_PERM_DEFAULT;
		json_t *j = hdl_json_from_value(&v);
		assert_non_null(j);
		assert_json_eq(json_object_get(j, "data"), cases[i].json);
		/* and it parses back to the same bytes */
		hdl_arena_t a;
		hdl_value_t back;
		char err[128];
		hdl_arena_init(&a, NULL, 0, 0);
		assert_int_equal(hdl_json_to_value(j, &a, &back, err, sizeof(err)), HDL_EOK);
		assert_slice_mem(back.data, cases[i].data, cases[i].len);
		hdl_arena_free(&a);
		json_decref(j);
	}
	/* non-UTF-8 type text is shown with U+FFFD rather than failing */
	hdl_value_t v;
	memset(&v, 0, sizeof(v));
	v.type.p = (const uint8_t *)"A\xff";
	v.type.len = 2;
	v.perms = HDL_PERM_DEFAULT;
	json_t *j = hdl_json_from_value(&v);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "type")), "A\xef\xbf\xbd");
	json_decref(j);
}

/* hex and base64 input forms (URL-safe alphabet, missing padding, whitespace accepted). */
static void test_binary_input(void **state)
{
	(void)state;
	hdl_arena_t a;
	hdl_value_t v;
	char err[128];
	hdl_arena_init(&a, NULL, 0, 0);
	static const struct {
		const char *data;
		const void *want;
		size_t len;
	} ok[] = {
		{"{\"format\":\"hex\",\"value\":\"00fFa5\"}", "\x00\xff\xa5", 3},
		{"{\"format\":\"HEX\",\"value\":\"\"}", "", 0},
		{"{\"format\":\"base64\",\"value\":\"AP+l\"}", "\x00\xff\xa5", 3},
		{"{\"format\":\"base64\",\"value\":\"AP-l\"}", "\x00\xff\xa5", 3},
		{"{\"format\":\"base64\",\"value\":\"AQ\"}", "\x01", 1},
		{"{\"format\":\"base64\",\"value\":\"AQI=\"}", "\x01\x02", 2},
		{"{\"format\":\"base64\",\"value\":\"AP+l\\nAQ==\"}", "\x00\xff\xa5\x01", 4},
		{"{\"format\":\"string\",\"value\":\"a\\u0000b\"}", "a\0b", 3},
		{"42", "42", 2},
		{"true", "true", 4},
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		char text[256];
		snprintf(text, sizeof(text), "{\"index\":1,\"type\":\"X\",\"data\":%s}", ok[i].data);
		int rc = value_from(text, &a, &v, err, sizeof(err));
		if (rc != HDL_EOK)
			fail_msg("%s: %s (%s)", ok[i].data, hdl_errname(rc), err);
		assert_slice_mem(v.data, ok[i].want, ok[i].len);
	}
	static const struct {
		const char *data;
		const char *msg;
	} bad[] = {
		{"{\"format\":\"hex\",\"value\":\"abc\"}", "invalid hex"},
		{"{\"format\":\"hex\",\"value\":\"zz\"}", "invalid hex"},
		{"{\"format\":\"base64\",\"value\":\"A\"}", "invalid base64"},
		{"{\"format\":\"base64\",\"value\":\"A*==\"}", "invalid base64"},
		{"{\"format\":\"base64\",\"value\":\"AQ==AQ\"}", "invalid base64"},
		{"{\"format\":\"xyz\",\"value\":\"\"}", "unknown format 'xyz'"},
		{"{\"format\":\"string\"}", "missing"},
		{"{\"format\":\"string\",\"value\":5}", "expected a string"},
		{"{\"value\":\"x\"}", "format: expected a string"},
		{"[1]", "expected {format, value} or a string"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[256];
		snprintf(text, sizeof(text), "{\"index\":1,\"type\":\"X\",\"data\":%s}", bad[i].data);
		assert_int_equal(value_from(text, &a, &v, err, sizeof(err)), HDL_EJSON);
		if (strstr(err, bad[i].msg) == NULL || strncmp(err, "value.data", 10) != 0)
			fail_msg("%s: message '%s' lacks '%s'", bad[i].data, err, bad[i].msg);
	}
	hdl_arena_free(&a);
}

/* Malformed values: each a named error with a reason. */
static void test_value_errors(void **state)
{
	(void)state;
	hdl_arena_t a;
	hdl_value_t v;
	char err[128];
	hdl_arena_init(&a, NULL, 0, 0);
	static const struct {
		const char *text;
		int rc;
		const char *msg;
	} bad[] = {
		{"[]", HDL_EJSON, "expected a value object"},
		{"{\"type\":\"X\",\"data\":\"\"}", HDL_EJSON, "index"},
		{"{\"index\":\"12a\",\"type\":\"X\",\"data\":\"\"}", HDL_EJSON, "index"},
		{"{\"index\":4294967296,\"type\":\"X\",\"data\":\"\"}", HDL_EJSON, "index"},
		{"{\"index\":-2147483649,\"type\":\"X\",\"data\":\"\"}", HDL_EJSON, "index"},
		{"{\"index\":1.5,\"type\":\"X\",\"data\":\"\"}", HDL_EJSON, "index"},
		{"{\"index\":1,\"data\":\"\"}", HDL_EJSON, "type"},
		{"{\"index\":1,\"type\":\"X\"}", HDL_EJSON, "data: missing"},
		{"{\"index\":1,\"type\":\"X\",\"data\":\"\",\"ttl\":\"soon\"}", HDL_EJSON, "ttl"},
		{"{\"index\":1,\"type\":\"X\",\"data\":\"\",\"ttl\":true}", HDL_EJSON, "ttl"},
		{"{\"index\":1,\"type\":\"X\",\"data\":\"\",\"timestamp\":\"x\"}", HDL_EJSON, "timestamp"},
		{"{\"index\":1,\"type\":\"X\",\"data\":\"\",\"permissions\":[]}", HDL_EJSON, "permissions"},
		{"{\"index\":1,\"type\":\"X\",\"data\":\"\",\"references\":{}}", HDL_EJSON, "references"},
		{"{\"index\":1,\"type\":\"X\",\"data\":\"\",\"references\":[{\"handle\":\"a\"}]}",
		 HDL_EJSON, "references[0]: index"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = value_from(bad[i].text, &a, &v, err, sizeof(err));
		if (rc != bad[i].rc || strstr(err, bad[i].msg) == NULL)
			fail_msg("%s: got %s '%s', want %s '%s'", bad[i].text, hdl_errname(rc), err,
			         hdl_errname(bad[i].rc), bad[i].msg);
	}
	hdl_arena_free(&a);
}

/* Type, reference count, data size and value count limits are HDL_ELIMIT. */
static void test_limits(void **state)
{
	(void)state;
	hdl_arena_t a;
	hdl_value_t v, *vs;
	uint32_t n;
	char err[128];
	hdl_arena_init(&a, NULL, 0, 0);

	json_t *j = parse("{\"index\":1,\"type\":\"X\",\"data\":\"\"}");
	char *longtype = malloc(HDL_MAX_TYPE_LEN + 2);
	memset(longtype, 'T', HDL_MAX_TYPE_LEN + 1);
	longtype[HDL_MAX_TYPE_LEN + 1] = '\0';
	json_object_set_new(j, "type", json_string(longtype));
	assert_int_equal(hdl_json_to_value(j, &a, &v, err, sizeof(err)), HDL_ELIMIT);
	longtype[HDL_MAX_TYPE_LEN] = '\0';
	json_object_set_new(j, "type", json_string(longtype));
	assert_int_equal(hdl_json_to_value(j, &a, &v, err, sizeof(err)), HDL_EOK);
	free(longtype);

	json_t *refs = json_array();
	for (unsigned i = 0; i <= HDL_MAX_REFS; i++)
		json_array_append_new(refs, json_pack("{s:s,s:i}", "handle", "a/b", "index", 1));
	json_object_set_new(j, "references", refs);
	assert_int_equal(hdl_json_to_value(j, &a, &v, err, sizeof(err)), HDL_ELIMIT);
	json_array_remove(refs, 0);
	assert_int_equal(hdl_json_to_value(j, &a, &v, err, sizeof(err)), HDL_EOK);
	assert_int_equal(v.n_refs, HDL_MAX_REFS);
	json_object_del(j, "references");

	char *big = malloc(HDL_MAX_ARRAY_LEN + 2);
	memset(big, 'x', HDL_MAX_ARRAY_LEN + 1);
	big[HDL_MAX_ARRAY_LEN + 1] = '\0';
	json_object_set_new(j, "data", json_string(big));
	assert_int_equal(hdl_json_to_value(j, &a, &v, err, sizeof(err)), HDL_ELIMIT);
	free(big);
	json_object_set_new(j, "data", json_string(""));

	json_t *arr = json_array();
	for (unsigned i = 0; i <= HDL_MAX_VALUES; i++)
		json_array_append(arr, j);
	assert_int_equal(hdl_json_to_values(arr, &a, &vs, &n, err, sizeof(err)), HDL_ELIMIT);
	assert_non_null(strstr(err, "more than 2048 values"));
	json_array_remove(arr, 0);
	assert_int_equal(hdl_json_to_values(arr, &a, &vs, &n, err, sizeof(err)), HDL_EOK);
	assert_int_equal(n, HDL_MAX_VALUES);
	json_decref(arr);
	json_decref(j);
	hdl_arena_free(&a);
}

/* ---- admin -------------------------------------------------------------------------------- */

static void test_admin_forms(void **state)
{
	(void)state;
	hdl_arena_t a;
	hdl_value_t v;
	char err[128];
	hdl_admin_t ad;
	hdl_arena_init(&a, NULL, 0, 0);
	static const struct {
		const char *perms;
		uint16_t want;
	} cases[] = {
		{"\"*\"", 0x0fff},         {"true", 0x0fff},         {"false", 0},
		{"\"111111111111\"", 0x0fff}, {"\"011111110011\"", 0x07f3}, {"\"100000000000\"", 0x0800},
		{"\"1\"", 0x0001},         {"\"10\"", 0x0002},       {"\"1000000000001\"", 0x0001},
		{"4095", 0x0fff},          {"65535", 0x0fff},        {"2", 0x0002},
		{"[true,false,1,0,\"x\",\"\",null,{}]", 0x0095}, {"null", 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[256];
		snprintf(text, sizeof(text),
		         "{\"index\":100,\"type\":\"HS_ADMIN\",\"data\":{\"format\":\"admin\",\"value\":"
		         "{\"handle\":\"0.NA/1\",\"index\":1,\"permissions\":%s}}}",
		         cases[i].perms);
		int rc = value_from(text, &a, &v, err, sizeof(err));
		if (rc != HDL_EOK)
			fail_msg("%s: %s %s", cases[i].perms, hdl_errname(rc), err);
		assert_int_equal(hdl_admin_decode(v.data.p, v.data.len, &ad), HDL_EOK);
		if (ad.perms != cases[i].want)
			fail_msg("%s: perms %#x want %#x", cases[i].perms, ad.perms, cases[i].want);
	}
	/* bad admin objects */
	static const char *bad[] = {
		"\"x\"", "{\"index\":1}", "{\"handle\":\"a\"}", "{\"handle\":\"a\",\"index\":\"x\"}",
		"{\"handle\":1,\"index\":1}", "{\"handle\":\"a\",\"index\":1,\"permissions\":{}}",
		"{\"handle\":\"a\",\"index\":1,\"legacyByteLength\":5}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[256];
		snprintf(text, sizeof(text),
		         "{\"index\":100,\"type\":\"HS_ADMIN\",\"data\":{\"format\":\"admin\","
		         "\"value\":%s}}",
		         bad[i]);
		assert_int_equal(value_from(text, &a, &v, err, sizeof(err)), HDL_EJSON);
		assert_non_null(strstr(err, "value.data.value"));
	}
	hdl_arena_free(&a);
}

/* An HS_ADMIN whose bits don't fit the 12-char form, or that doesn't decode, falls back to base64
 * instead of losing data. */
static void test_admin_lossless(void **state)
{
	(void)state;
	static const uint8_t wide[] = {0x1f, 0xff, 0, 0, 0, 1, 'a', 0, 0, 0, 1};
	static const uint8_t broken[] = {0x0f, 0xff, 0, 0, 0, 9, 'a'};
	hdl_value_t v;
	memset(&v, 0, sizeof(v));
	v.type.p = (const uint8_t *)"HS_ADMIN";
	v.type.len = 8;
	v.perms = HDL_PERM_DEFAULT;
	v.data.p = wide;
	v.data.len = sizeof(wide);
	json_t *j = hdl_json_from_value(&v);
	assert_json_eq(json_object_get(j, "data"), "{\"format\":\"base64\",\"value\":\"H/8AAAABYQAAAAE=\"}");
	json_decref(j);
	v.data.p = broken;
	v.data.len = sizeof(broken);
	j = hdl_json_from_value(&v);
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "data"), "format")),
	                    "base64");
	json_decref(j);
}

/* ---- the REST client bodies from the captures ------------------------------------------------ */

static int hexdig(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/** Read tests/captures/<name> (xxd -g1 dump) back into bytes; returns malloc'd NUL-terminated. */
static char *read_hex_capture(const char *name)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/tests/captures/%s", HDL_SOURCE_DIR, name);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		fail_msg("cannot open %s", path);
	size_t cap = 1 << 16, n = 0;
	char *out = malloc(cap);
	char line[512];
	while (fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');
		if (colon == NULL)
			continue;
		/* "%08x: " then up to 16 "xx " groups; padding spaces end a short last line */
		const char *p = colon + 2;
		for (int i = 0; i < 16; i++, p += 3) {
			unsigned b;
			if (hexdig(p[0]) < 0 || hexdig(p[1]) < 0 || p[2] != ' ')
				break;
			b = (unsigned)(hexdig(p[0]) << 4 | hexdig(p[1]));
			if (n + 2 >= cap)
				out = realloc(out, cap *= 2);
			out[n++] = (char)b;
		}
	}
	fclose(f);
	out[n] = '\0';
	return out;
}

/** JSON bodies (text after the blank line, starting with '{' or '[') of an HTTP transcript. */
static size_t bodies(char *text, char **out, size_t max)
{
	size_t n = 0;
	for (char *p = strstr(text, "\r\n\r\n"); p != NULL && n < max; p = strstr(p, "\r\n\r\n")) {
		p += 4;
		if (*p == '{' || *p == '[') {
			char *end = strstr(p, "POST ");
			char *e2 = strstr(p, "PUT ");
			char *e3 = strstr(p, "GET ");
			char *e4 = strstr(p, "DELETE ");
			char *ends[] = {end, e2, e3, e4};
			char *stop = NULL;
			for (int i = 0; i < 4; i++)
				if (ends[i] && (stop == NULL || ends[i] < stop))
					stop = ends[i];
			size_t len = stop ? (size_t)(stop - p) : strlen(p);
			out[n] = strndup(p, len);
			n++;
		}
	}
	return n;
}

static json_t *capture_body(const char *file, size_t which)
{
	char *text = read_hex_capture(file);
	char *b[8];
	size_t n = bodies(text, b, 8);
	free(text);
	if (which >= n)
		fail_msg("%s: only %zu JSON bodies", file, n);
	json_error_t e;
	json_t *j = json_loads(b[which], JSON_DISABLE_EOF_CHECK, &e);
	if (j == NULL)
		fail_msg("%s body %zu: %s", file, which, e.text);
	for (size_t i = 0; i < n; i++)
		free(b[i]);
	return j;
}

static void test_capture_pyhandle(void **state)
{
	(void)state;
	hdl_arena_t a;
	hdl_value_t *v;
	uint32_t n;
	char err[128];
	hdl_admin_t ad;
	hdl_arena_init(&a, NULL, 0, 0);
	/* create: {"values":[HS_ADMIN index "200" perms 011111110011, URL as a bare string]} */
	json_t *j = capture_body("pyhandle-rest.requests.hex", 0);
	assert_int_equal(hdl_json_to_values(j, &a, &v, &n, err, sizeof(err)), HDL_EOK);
	assert_int_equal(n, 2);
	assert_int_equal(v[0].index, 100);
	assert_slice_mem(v[0].type, "HS_ADMIN", 8);
	assert_int_equal(hdl_admin_decode(v[0].data.p, v[0].data.len, &ad), HDL_EOK);
	assert_slice_mem(ad.handle, "0.NA/88.100.1", 13);
	assert_int_equal(ad.index, 200);
	assert_int_equal(ad.perms, 0x07f3);
	assert_false(ad.legacy);
	assert_int_equal(v[1].index, 1);
	assert_slice_mem(v[1].type, "URL", 3);
	assert_slice_mem(v[1].data, "http://example.org/new", 22);
	json_decref(j);
	/* modify: EMAIL as a bare string */
	j = capture_body("pyhandle-rest.requests.hex", 1);
	assert_int_equal(hdl_json_to_values(j, &a, &v, &n, err, sizeof(err)), HDL_EOK);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].index, 2);
	assert_slice_mem(v[0].type, "EMAIL", 5);
	assert_slice_mem(v[0].data, "a@example.org", 13);
	json_decref(j);
	hdl_arena_free(&a);
}

static void test_capture_codeobia(void **state)
{
	(void)state;
	hdl_arena_t a;
	hdl_value_t *v;
	uint32_t n;
	char err[128];
	hdl_admin_t ad;
	hdl_arena_init(&a, NULL, 0, 0);
	/* a bare array; HS_ADMIN index "300" with legacyByteLength: encoded with 2 extra zero bytes */
	json_t *j = capture_body("codeobia-rest.requests.hex", 0);
	assert_true(json_is_array(j));
	assert_int_equal(hdl_json_to_values(j, &a, &v, &n, err, sizeof(err)), HDL_EOK);
	assert_int_equal(n, 2);
	assert_int_equal(hdl_admin_decode(v[0].data.p, v[0].data.len, &ad), HDL_EOK);
	assert_true(ad.legacy);
	assert_int_equal(v[0].data.len, 2 + 4 + 11 + 4 + 2);
	assert_int_equal(ad.index, 300);
	assert_int_equal(ad.perms, HDL_ADM_ALL);
	assert_slice_mem(v[1].data, "http://example.org/x", 20);
	/* re-emitted, legacyByteLength survives */
	json_t *out = hdl_json_from_value(&v[0]);
	assert_json_eq(json_object_get(out, "data"),
	               "{\"format\":\"admin\",\"value\":{\"handle\":\"0.NA/88.100\",\"index\":300,"
	               "\"permissions\":\"111111111111\",\"legacyByteLength\":true}}");
	json_decref(out);
	json_decref(j);
	hdl_arena_free(&a);
}

static void test_capture_handlenetnode(void **state)
{
	(void)state;
	hdl_arena_t a;
	hdl_value_t *v;
	uint32_t n;
	char err[128];
	hdl_arena_init(&a, NULL, 0, 0);
	json_t *j = capture_body("handlenetnode-rest.requests.hex", 0);
	assert_int_equal(hdl_json_to_values(j, &a, &v, &n, err, sizeof(err)), HDL_EOK);
	assert_int_equal(n, 1);
	assert_slice_mem(v[0].data, "http://example.org/new", 22);
	json_decref(j);
	/* a single value object is accepted too */
	j = parse("{\"index\":1,\"type\":\"URL\",\"data\":\"x\"}");
	assert_int_equal(hdl_json_to_values(j, &a, &v, &n, err, sizeof(err)), HDL_EOK);
	assert_int_equal(n, 1);
	json_decref(j);
	j = parse("{\"values\":{}}");
	assert_int_equal(hdl_json_to_values(j, &a, &v, &n, err, sizeof(err)), HDL_EJSON);
	json_decref(j);
	j = parse("[]");
	assert_int_equal(hdl_json_to_values(j, &a, &v, &n, err, sizeof(err)), HDL_EOK);
	assert_int_equal(n, 0);
	json_decref(j);
	j = parse("[{\"index\":1,\"type\":\"URL\",\"data\":\"x\"},{\"index\":2}]");
	assert_int_equal(hdl_json_to_values(j, &a, &v, &n, err, sizeof(err)), HDL_EJSON);
	assert_non_null(strstr(err, "values[1]"));
	json_decref(j);
	hdl_arena_free(&a);
}

/* ---- key ---------------------------------------------------------------------------------- */

static uint8_t *read_data(const char *name, size_t *len)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/tests/data/%s", HDL_SOURCE_DIR, name);
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	uint8_t *buf = malloc(65536);
	*len = fread(buf, 1, 65536, f);
	fclose(f);
	return buf;
}

/* The capture's RSA key: JWK out (unsigned base64url), and the JWK back to identical bytes. */
static void test_key_rsa(void **state)
{
	(void)state;
	size_t len;
	uint8_t *key = read_data("admpub.bin", &len);
	hdl_value_t v;
	memset(&v, 0, sizeof(v));
	v.index = 300;
	v.type.p = (const uint8_t *)"HS_PUBKEY";
	v.type.len = 9;
	v.perms = HDL_PERM_DEFAULT;
	v.data.p = key;
	v.data.len = (uint32_t)len;
	json_t *j = hdl_json_from_value(&v);
	json_t *d = json_object_get(j, "data");
	assert_string_equal(json_string_value(json_object_get(d, "format")), "key");
	json_t *jwk = json_object_get(d, "value");
	assert_string_equal(json_string_value(json_object_get(jwk, "kty")), "RSA");
	assert_string_equal(json_string_value(json_object_get(jwk, "e")), "AQAB");
	const char *nstr = json_string_value(json_object_get(jwk, "n"));
	assert_int_equal(strlen(nstr), 342); /* 256 bytes, unpadded base64url */
	assert_null(strpbrk(nstr, "+/="));
	hdl_arena_t a;
	hdl_value_t back;
	char err[128];
	hdl_arena_init(&a, NULL, 0, 0);
	assert_int_equal(hdl_json_to_value(j, &a, &back, err, sizeof(err)), HDL_EOK);
	assert_slice_mem(back.data, key, len);
	json_decref(j);

	/* a non-canonical key (extra leading zero in e) keeps its bytes: base64 */
	static const uint8_t odd[] = {0, 0, 0, 11, 'R', 'S', 'A', '_', 'P', 'U', 'B', '_', 'K', 'E', 'Y',
	                              0, 0, 0, 0, 0, 2, 0, 3, 0, 0, 0, 1, 5, 0, 0, 0, 0};
	v.data.p = odd;
	v.data.len = sizeof(odd);
	j = hdl_json_from_value(&v);
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(j, "data"), "format")), "base64");
	json_decref(j);
	hdl_arena_free(&a);
	free(key);
}

static void test_key_dsa_and_errors(void **state)
{
	(void)state;
	hdl_arena_t a;
	hdl_value_t v;
	char err[128];
	hdl_pubkey_t k;
	hdl_arena_init(&a, NULL, 0, 0);
	/* y = 0x80 needs Java's sign byte; q = 0 becomes [00]; p, g plain */
	assert_int_equal(value_from("{\"index\":300,\"type\":\"HS_PUBKEY\",\"data\":{\"format\":"
	                            "\"key\",\"value\":{\"kty\":\"DSA\",\"y\":\"gA\",\"p\":\"AQI\","
	                            "\"q\":\"\",\"g\":\"Aw\"}}}",
	                            &a, &v, err, sizeof(err)),
	                 HDL_EOK);
	assert_int_equal(hdl_pubkey_decode(v.data.p, v.data.len, &k), HDL_EOK);
	assert_int_equal(k.kind, HDL_KEY_DSA);
	assert_slice_mem(k.y, "\x00\x80", 2);
	assert_slice_mem(k.p, "\x01\x02", 2);
	assert_slice_mem(k.q, "\x00", 1);
	assert_slice_mem(k.g, "\x03", 1);
	json_t *j = hdl_json_from_value(&v);
	assert_json_eq(json_object_get(j, "data"),
	               "{\"format\":\"key\",\"value\":{\"kty\":\"DSA\",\"y\":\"gA\",\"p\":\"AQI\","
	               "\"q\":\"\",\"g\":\"Aw\"}}");
	json_decref(j);
	static const char *bad[] = {
		"{\"kty\":\"EC\"}", "{\"n\":\"AQ\"}", "{\"kty\":\"RSA\",\"n\":\"AQ\"}",
		"{\"kty\":\"RSA\",\"n\":\"A\",\"e\":\"AQ\"}", "\"AQAB\"",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[256];
		snprintf(text, sizeof(text),
		         "{\"index\":1,\"type\":\"HS_PUBKEY\",\"data\":{\"format\":\"key\",\"value\":%s}}",
		         bad[i]);
		assert_int_equal(value_from(text, &a, &v, err, sizeof(err)), HDL_EJSON);
	}
	hdl_arena_free(&a);
}

/* ---- vlist and site ------------------------------------------------------------------------ */

static void test_vlist_json(void **state)
{
	(void)state;
	static const char *text =
		"{\"index\":200,\"type\":\"HS_VLIST\",\"data\":{\"format\":\"vlist\",\"value\":"
		"[{\"handle\":\"0.NA/88\",\"index\":300},{\"handle\":\"88/u\",\"index\":\"301\"}]},"
		"\"ttl\":86400}";
	static const uint8_t want[] = {
		0, 0, 0, 2,                                        /* 2 refs */
		0, 0, 0, 7, '0', '.', 'N', 'A', '/', '8', '8', 0, 0, 1, 0x2c, /* 0.NA/88:300 */
		0, 0, 0, 4, '8', '8', '/', 'u', 0, 0, 1, 0x2d,     /* 88/u:301 */
	};
	hdl_arena_t a;
	hdl_value_t v;
	char err[128];
	hdl_arena_init(&a, NULL, 0, 0);
	assert_int_equal(value_from(text, &a, &v, err, sizeof(err)), HDL_EOK);
	assert_slice_mem(v.data, want, sizeof(want));
	json_t *j = hdl_json_from_value(&v);
	assert_json_eq(j, "{\"index\":200,\"type\":\"HS_VLIST\",\"data\":{\"format\":\"vlist\","
	                  "\"value\":[{\"handle\":\"0.NA/88\",\"index\":300},{\"handle\":\"88/u\","
	                  "\"index\":301}]},\"ttl\":86400}");
	json_decref(j);
	assert_int_equal(value_from("{\"index\":1,\"type\":\"HS_VLIST\",\"data\":{\"format\":"
	                            "\"vlist\",\"value\":{}}}",
	                            &a, &v, err, sizeof(err)),
	                 HDL_EJSON);
	hdl_arena_free(&a);
}

static const char *SITE_JSON =
	"{\"version\":1,\"protocolVersion\":\"2.10\",\"serialNumber\":7,\"primarySite\":true,"
	"\"multiPrimary\":false,\"attributes\":[{\"name\":\"desc\",\"value\":\"test\"}],"
	"\"servers\":[{\"serverId\":1,\"address\":\"127.0.0.1\",\"publicKey\":{\"format\":"
	"\"base64\",\"value\":\"\"},\"interfaces\":[{\"query\":true,\"admin\":true,\"protocol\":"
	"\"TCP\",\"port\":2641},{\"query\":true,\"admin\":false,\"protocol\":\"UDP\",\"port\":2641}]},"
	"{\"serverId\":2,\"address\":\"2001:db8::1\",\"publicKey\":{\"format\":\"base64\","
	"\"value\":\"qrvM\"},\"interfaces\":[{\"query\":true,\"admin\":true,\"protocol\":\"HTTP\","
	"\"port\":8000}]}]}";

/* The same record as test_values.c SITE, field by field. */
static const uint8_t SITE_BIN[] = {
	0x00, 0x01, 0x02, 0x0a, 0x00, 0x07, 0x80, 0x02, 0, 0, 0, 0, /* ver, 2.10, serial, mask, hash, filter */
	0, 0, 0, 1, 0, 0, 0, 4, 'd', 'e', 's', 'c', 0, 0, 0, 4, 't', 'e', 's', 't', /* attrs */
	0, 0, 0, 2,                                                  /* 2 servers */
	0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 127, 0, 0, 1, /* id 1, 127.0.0.1 */
	0, 0, 0, 0, 0, 0, 0, 2, 3, 1, 0, 0, 0x0a, 0x51, 2, 0, 0, 0, 0x0a, 0x51, /* key, ifaces */
	0, 0, 0, 2, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, /* id 2, v6 */
	0, 0, 0, 3, 0xaa, 0xbb, 0xcc, 0, 0, 0, 1, 3, 2, 0, 0, 0x1f, 0x40, /* key, HTTP 8000 */
};

static void test_site_json(void **state)
{
	(void)state;
	hdl_arena_t a;
	hdl_site_t s;
	char err[128];
	uint8_t out[256];
	size_t len;
	hdl_arena_init(&a, NULL, 0, 0);

	/* binary -> JSON */
	assert_int_equal(hdl_site_decode(SITE_BIN, sizeof(SITE_BIN), &a, &s), HDL_EOK);
	json_t *j = hdl_json_from_site(&s);
	assert_json_eq(j, SITE_JSON);
	assert_null(json_object_get(j, "hashOption")); /* omitted when 2 */
	json_decref(j);

	/* JSON -> binary */
	j = parse(SITE_JSON);
	assert_int_equal(hdl_json_to_site(j, &a, &s, err, sizeof(err)), HDL_EOK);
	assert_int_equal(hdl_site_encode(&s, out, sizeof(out), &len), HDL_EOK);
	assert_int_equal(len, sizeof(SITE_BIN));
	assert_memory_equal(out, SITE_BIN, len);
	json_decref(j);

	/* as a value of type HS_SITE: format "site" both ways */
	char text[2048];
	snprintf(text, sizeof(text),
	         "{\"index\":1,\"type\":\"HS_SITE\",\"data\":{\"format\":\"site\",\"value\":%s},"
	         "\"ttl\":86400}",
	         SITE_JSON);
	hdl_value_t v;
	assert_int_equal(value_from(text, &a, &v, err, sizeof(err)), HDL_EOK);
	assert_slice_mem(v.data, SITE_BIN, sizeof(SITE_BIN));
	j = hdl_json_from_value(&v);
	assert_json_eq(j, text);
	json_decref(j);

	/* hashOption, multiPrimary, hashFilter, legacy capitalised keys, attribute object form,
	 * numeric protocol, RSA key as "key" */
	size_t klen;
	uint8_t *key = read_data("admpub.bin", &klen);
	hdl_site_t s2;
	memset(&s2, 0, sizeof(s2));
	hdl_server_t sv;
	memset(&sv, 0, sizeof(sv));
	hdl_interface_t ifc = {HDL_IF_QUERY, 9, 1};
	sv.pubkey.p = key;
	sv.pubkey.len = (uint32_t)klen;
	sv.n_ifaces = 1;
	sv.ifaces = &ifc;
	s2.hash_option = HDL_HASH_BY_NA;
	s2.primary_mask = HDL_SITE_MULTI_PRIMARY;
	s2.hash_filter.p = (const uint8_t *)"f";
	s2.hash_filter.len = 1;
	s2.n_servers = 1;
	s2.servers = &sv;
	j = hdl_json_from_site(&s2);
	assert_int_equal(json_integer_value(json_object_get(j, "hashOption")), 0);
	assert_true(json_is_true(json_object_get(j, "multiPrimary")));
	assert_string_equal(json_string_value(json_object_get(j, "hashFilter")), "f");
	json_t *srv = json_array_get(json_object_get(j, "servers"), 0);
	assert_string_equal(json_string_value(json_object_get(srv, "address")), "0.0.0.0");
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(srv, "publicKey"), "format")), "key");
	json_t *ifj = json_array_get(json_object_get(srv, "interfaces"), 0);
	assert_int_equal(json_integer_value(json_object_get(ifj, "protocol")), 9);
	assert_true(json_is_false(json_object_get(ifj, "admin")));
	assert_int_equal(hdl_json_to_site(j, &a, &s, err, sizeof(err)), HDL_EOK);
	assert_int_equal(s.hash_option, 0);
	assert_int_equal(s.primary_mask, HDL_SITE_MULTI_PRIMARY);
	assert_slice_mem(s.servers[0].pubkey, key, klen);
	assert_int_equal(s.servers[0].ifaces[0].proto, 9);
	json_decref(j);
	free(key);

	j = parse("{\"ServerList\":[{\"Address\":\"10.0.0.1\",\"PublicKey\":\"0aff\","
	          "\"InterfaceList\":[{\"Protocol\":\"HTTPS\",\"Port\":443,\"Query\":true}]}],"
	          "\"attributes\":{\"desc\":\"d\",\"alt_addr\":[\"a\",\"b\"]}}");
	assert_int_equal(hdl_json_to_site(j, &a, &s, err, sizeof(err)), HDL_EOK);
	assert_int_equal(s.data_version, 1);
	assert_int_equal(s.proto_major, 2);
	assert_int_equal(s.proto_minor, 10);
	assert_int_equal(s.hash_option, HDL_HASH_BY_HANDLE);
	assert_int_equal(s.n_attrs, 3);
	assert_slice_mem(s.attrs[2].name, "alt_addr", 8);
	assert_slice_mem(s.attrs[2].value, "b", 1);
	assert_int_equal(s.n_servers, 1);
	assert_int_equal(s.servers[0].addr[12], 10);
	assert_slice_mem(s.servers[0].pubkey, "\x0a\xff", 2);
	assert_int_equal(s.servers[0].ifaces[0].proto, HDL_IF_HTTPS);
	assert_int_equal(s.servers[0].ifaces[0].port, 443);
	assert_int_equal(s.servers[0].ifaces[0].type, HDL_IF_QUERY);
	json_decref(j);

	/* errors */
	static const struct {
		const char *text;
		int rc;
	} bad[] = {
		{"[]", HDL_EJSON},
		{"{\"protocolVersion\":\"2\"}", HDL_EJSON},
		{"{\"protocolVersion\":\"2.10x\"}", HDL_EJSON},
		{"{\"version\":70000}", HDL_EJSON},
		{"{\"servers\":[{\"address\":\"example.org\"}]}", HDL_EJSON},
		{"{\"servers\":[{\"address\":\"1.2.3.4\",\"interfaces\":[{\"protocol\":\"FTP\","
		 "\"port\":1}]}]}",
		 HDL_EJSON},
		{"{\"servers\":[{\"address\":\"1.2.3.4\",\"interfaces\":[{\"protocol\":\"TCP\"}]}]}",
		 HDL_EJSON},
		{"{\"servers\":[{\"address\":\"1.2.3.4\",\"publicKey\":{\"format\":\"hex\","
		 "\"value\":\"x\"}}]}",
		 HDL_EJSON},
		{"{\"attributes\":[{\"name\":\"a\"}]}", HDL_EJSON},
		{"{\"servers\":{}}", HDL_EJSON},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		j = parse(bad[i].text);
		int rc = hdl_json_to_site(j, &a, &s, err, sizeof(err));
		if (rc != bad[i].rc || err[0] == '\0')
			fail_msg("%s: %s '%s'", bad[i].text, hdl_errname(rc), err);
		json_decref(j);
	}
	/* limits */
	json_t *servers = json_array();
	for (unsigned i = 0; i <= HDL_MAX_SERVERS; i++)
		json_array_append_new(servers, json_pack("{s:s}", "address", "1.1.1.1"));
	j = json_pack("{s:o}", "servers", servers);
	assert_int_equal(hdl_json_to_site(j, &a, &s, err, sizeof(err)), HDL_ELIMIT);
	json_decref(j);
	json_t *ifs = json_array();
	for (unsigned i = 0; i <= HDL_MAX_IFACES; i++)
		json_array_append_new(ifs, json_pack("{s:s,s:i}", "protocol", "TCP", "port", 1));
	j = json_pack("{s:[{s:s,s:o}]}", "servers", "address", "1.1.1.1", "interfaces", ifs);
	assert_int_equal(hdl_json_to_site(j, &a, &s, err, sizeof(err)), HDL_ELIMIT);
	json_decref(j);
	json_t *attrs = json_array();
	for (unsigned i = 0; i <= HDL_MAX_ATTRS; i++)
		json_array_append_new(attrs, json_pack("{s:s,s:s}", "name", "n", "value", "v"));
	j = json_pack("{s:o}", "attributes", attrs);
	assert_int_equal(hdl_json_to_site(j, &a, &s, err, sizeof(err)), HDL_ELIMIT);
	json_decref(j);
	hdl_arena_free(&a);
}

/* A site with bits the JSON form can't carry stays binary (base64) as a value. */
static void test_site_lossless(void **state)
{
	(void)state;
	uint8_t bin[sizeof(SITE_BIN)];
	memcpy(bin, SITE_BIN, sizeof(bin));
	bin[6] = 0x81; /* unknown primary-mask bit */
	hdl_value_t v;
	memset(&v, 0, sizeof(v));
	v.type.p = (const uint8_t *)"HS_SITE";
	v.type.len = 7;
	v.perms = HDL_PERM_DEFAULT;
	v.data.p = bin;
	v.data.len = sizeof(bin);
	json_t *j = hdl_json_from_value(&v);
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(j, "data"), "format")), "base64");
	json_decref(j);
	bin[6] = 0x80;
	j = hdl_json_from_value(&v);
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(j, "data"), "format")), "site");
	json_decref(j);
}

/* ---- round trips --------------------------------------------------------------------------- */

/* JSON -> values -> JSON -> values -> JSON: the two JSON texts and both value sets agree. */
static void test_roundtrips(void **state)
{
	(void)state;
	static const char *inputs[] = {
		"[{\"index\":1,\"type\":\"URL\",\"data\":\"http://a/\",\"ttl\":\"2020-02-02T02:02:02.5+01:00\","
		"\"timestamp\":\"2001-01-01T00:00:00Z\",\"permissions\":\"*\"}]",
		"{\"values\":[{\"index\":100,\"type\":\"HS_ADMIN\",\"data\":{\"format\":\"admin\","
		"\"value\":{\"handle\":\"0.NA/1\",\"index\":\"300\",\"permissions\":[1,1],"
		"\"legacyByteLength\":\"true\"}}}]}",
		"[{\"index\":2,\"type\":\"HS_VLIST\",\"data\":{\"format\":\"vlist\",\"value\":[]}},"
		"{\"index\":3,\"type\":\"HS_PUBKEY\",\"data\":{\"format\":\"key\",\"value\":{\"kty\":"
		"\"rsa\",\"n\":\"AAD_\",\"e\":\"AQAB\"}}},{\"index\":4,\"type\":\"bin\",\"data\":"
		"{\"format\":\"hex\",\"value\":\"00017f80\"},\"references\":[{\"handle\":\"x\",\"index\":1}]}]",
		"{\"index\":5,\"type\":\"HS_SITE.PREFIX\",\"data\":{\"format\":\"site\",\"value\":{\"servers\":"
		"[{\"address\":\"::ffff:1.2.3.4\",\"publicKey\":\"raw text key\",\"interfaces\":[]}]}}}",
		"[{\"index\":6,\"type\":\"URL\",\"data\":{\"format\":\"site\",\"value\":{}}}]",
	};
	for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		hdl_arena_t a;
		hdl_value_t *v1, *v2;
		uint32_t n1, n2;
		char err[128];
		hdl_arena_init(&a, NULL, 0, 0);
		json_t *in = parse(inputs[i]);
		int rc = hdl_json_to_values(in, &a, &v1, &n1, err, sizeof(err));
		if (rc != HDL_EOK)
			fail_msg("input %zu: %s %s", i, hdl_errname(rc), err);
		json_t *j1 = hdl_json_from_values(v1, n1);
		assert_non_null(j1);
		assert_int_equal(hdl_json_to_values(j1, &a, &v2, &n2, err, sizeof(err)), HDL_EOK);
		json_t *j2 = hdl_json_from_values(v2, n2);
		assert_true(json_equal(j1, j2));
		assert_int_equal(n1, n2);
		for (uint32_t k = 0; k < n1; k++) {
			assert_int_equal(v1[k].index, v2[k].index);
			assert_int_equal(v1[k].ttl, v2[k].ttl);
			assert_int_equal(v1[k].ttl_type, v2[k].ttl_type);
			assert_int_equal(v1[k].timestamp, v2[k].timestamp);
			assert_int_equal(v1[k].perms, v2[k].perms);
			assert_slice_mem(v2[k].type, v1[k].type.p, v1[k].type.len);
			assert_slice_mem(v2[k].data, v1[k].data.p, v1[k].data.len);
			assert_int_equal(v1[k].n_refs, v2[k].n_refs);
		}
		json_decref(in);
		json_decref(j1);
		json_decref(j2);
		hdl_arena_free(&a);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_time),
		cmocka_unit_test(test_doc_example),
		cmocka_unit_test(test_value_fields),
		cmocka_unit_test(test_string_or_base64),
		cmocka_unit_test(test_binary_input),
		cmocka_unit_test(test_value_errors),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_admin_forms),
		cmocka_unit_test(test_admin_lossless),
		cmocka_unit_test(test_capture_pyhandle),
		cmocka_unit_test(test_capture_codeobia),
		cmocka_unit_test(test_capture_handlenetnode),
		cmocka_unit_test(test_key_rsa),
		cmocka_unit_test(test_key_dsa_and_errors),
		cmocka_unit_test(test_vlist_json),
		cmocka_unit_test(test_site_json),
		cmocka_unit_test(test_site_lossless),
		cmocka_unit_test(test_roundtrips),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
