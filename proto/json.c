/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Handle.Net REST JSON form of handle values and HS_SITE records, both ways.
 *
 * Output follows Handle.Net's GsonUtility: value fields in the order index, type, data,
 * permissions, ttl, timestamp, references; integers that Java holds as int are written signed.
 * A structured data format (admin, vlist, site, key) is only emitted when it carries every bit
 * of the binary data; otherwise the data is written as "string" or "base64", so JSON -> value ->
 * JSON never loses information.
 *
 * Input accepts what Handle.Net accepts plus what real clients send: integers as numeric strings
 * (pyhandle, CodeObia), bare strings as data, admin permissions as bit strings, "*", booleans,
 * integers or LSB-first arrays, "legacyByteLength", capitalised legacy site keys.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hdl/error.h"
#include "proto/json.h"

#define DEFAULT_TTL     86400u
#define TMP_ARENA_LIMIT (8u * 1024u * 1024u)

/* ---- small helpers ------------------------------------------------------------------------ */

/** Parse context: the arena for results and the caller's error buffer. */
typedef struct jctx {
	hdl_arena_t *a;
	char *err;
	size_t errlen;
} jctx_t;

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static int
jfail(jctx_t *c, int code, const char *path, const char *fmt, ...)
{
	if (c->err != NULL && c->errlen > 0 && c->err[0] == '\0') {
		char msg[160];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		snprintf(c->err, c->errlen, "%s: %s", path, msg);
	}
	return code;
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void
subpath(char *dst, size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(dst, n, fmt, ap);
	va_end(ap);
}

/** Handle.Net Util.looksLikeBinary: not UTF-8, or C0 controls outside 0x09-0x13, or DEL. */
static bool looks_binary(const uint8_t *p, size_t n)
{
	if (!hdl_utf8_valid(p, n))
		return true;
	for (size_t i = 0; i < n; i++) {
		if (p[i] >= 0x09 && p[i] <= 0x13)
			continue;
		if (p[i] < 0x20 || p[i] == 0x7F)
			return true;
	}
	return false;
}

/** JSON string from bytes; invalid UTF-8 bytes become U+FFFD. */
static json_t *jstr(const uint8_t *p, size_t n)
{
	if (n == 0)
		return json_string("");
	if (hdl_utf8_valid(p, n))
		return json_stringn((const char *)p, n);
	if (n > SIZE_MAX / 3)
		return NULL;
	char *buf = malloc(n * 3);
	if (buf == NULL)
		return NULL;
	size_t o = 0;
	for (size_t i = 0; i < n;) {
		size_t k = hdl_utf8_seq(p + i, n - i);
		if (k == 0) {
			memcpy(buf + o, "\xEF\xBF\xBD", 3);
			o += 3;
			i++;
		} else {
			memcpy(buf + o, p + i, k);
			o += k;
			i += k;
		}
	}
	json_t *j = json_stringn(buf, o);
	free(buf);
	return j;
}

static json_t *jslice(hdl_slice_t s)
{
	return jstr(s.p, s.len);
}

/** json_object_set_new that reports failure (and always consumes \p v). */
static bool jset(json_t *o, const char *k, json_t *v)
{
	return v != NULL && json_object_set_new(o, k, v) == 0;
}

static bool jpush(json_t *arr, json_t *v)
{
	return v != NULL && json_array_append_new(arr, v) == 0;
}

/* Java writes these as int: show the bit pattern as a signed 32-bit number. */
static json_t *jint32(uint32_t v)
{
	return json_integer((json_int_t)(int32_t)v);
}

static bool ascii_ieq(const char *a, const char *b)
{
	for (; *a && *b; a++, b++) {
		char x = (*a >= 'A' && *a <= 'Z') ? (char)(*a - 'A' + 'a') : *a;
		char y = (*b >= 'A' && *b <= 'Z') ? (char)(*b - 'A' + 'a') : *b;
		if (x != y)
			return false;
	}
	return *a == *b;
}

/** Object member by name, or by its capitalised legacy spelling ("ServerList"). */
static json_t *jget(const json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	if (v == NULL && key[0] >= 'a' && key[0] <= 'z') {
		char buf[32];
		size_t n = strlen(key);
		if (n < sizeof(buf)) {
			memcpy(buf, key, n + 1);
			buf[0] = (char)(buf[0] - 'a' + 'A');
			v = json_object_get(o, buf);
		}
	}
	return v;
}

/* ---- base64 / hex ------------------------------------------------------------------------- */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** Base64 text of \p p (standard with padding, or URL-safe without) as a JSON string. */
static json_t *jb64(const uint8_t *p, size_t n, bool url)
{
	const char *tab = url ? B64URL : B64;
	size_t cap = (n + 2) / 3 * 4 + 1;
	char *out = malloc(cap);
	if (out == NULL)
		return NULL;
	size_t o = 0, i = 0;
	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		out[o++] = tab[v >> 18];
		out[o++] = tab[(v >> 12) & 63];
		out[o++] = tab[(v >> 6) & 63];
		out[o++] = tab[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;
		out[o++] = tab[v >> 18];
		out[o++] = tab[(v >> 12) & 63];
		if (!url) {
			out[o++] = '=';
			out[o++] = '=';
		}
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		out[o++] = tab[v >> 18];
		out[o++] = tab[(v >> 12) & 63];
		out[o++] = tab[(v >> 6) & 63];
		if (!url)
			out[o++] = '=';
	}
	json_t *j = json_stringn(out, o);
	free(out);
	return j;
}

static int b64val(char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+' || ch == '-')
		return 62;
	if (ch == '/' || ch == '_')
		return 63;
	return -1;
}

/**
 * Decode base64 (standard or URL-safe alphabet, padding optional, whitespace ignored) into the
 * arena. \retval HDL_EOK, HDL_EJSON (bad character or length), HDL_ELIMIT, HDL_ENOMEM
 */
static int b64_decode(hdl_arena_t *a, const char *s, size_t n, hdl_slice_t *out)
{
	if (n / 4 * 3 > HDL_MAX_ARRAY_LEN + 3)
		return HDL_ELIMIT;
	uint8_t *buf = hdl_arena_alloc(a, n / 4 * 3 + 3);
	if (buf == NULL)
		return HDL_ENOMEM;
	size_t o = 0, pad = 0;
	uint32_t acc = 0;
	unsigned bits = 0;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n')
			continue;
		if (ch == '=') {
			pad++;
			continue;
		}
		int v = b64val(ch);
		if (v < 0 || pad > 0)
			return HDL_EJSON;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[o++] = (uint8_t)(acc >> bits);
		}
	}
	/* 6 leftover bits can't come from whole bytes; more than 2 '=' is never valid */
	if (bits >= 6 || pad > 2)
		return HDL_EJSON;
	if (o > HDL_MAX_ARRAY_LEN)
		return HDL_ELIMIT;
	out->p = buf;
	out->len = (uint32_t)o;
	return HDL_EOK;
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

static int hex_decode(hdl_arena_t *a, const char *s, size_t n, hdl_slice_t *out)
{
	if (n % 2 != 0)
		return HDL_EJSON;
	if (n / 2 > HDL_MAX_ARRAY_LEN)
		return HDL_ELIMIT;
	uint8_t *buf = hdl_arena_alloc(a, n / 2 + 1);
	if (buf == NULL)
		return HDL_ENOMEM;
	for (size_t i = 0; i < n; i += 2) {
		int hi = hexval(s[i]), lo = hexval(s[i + 1]);
		if (hi < 0 || lo < 0)
			return HDL_EJSON;
		buf[i / 2] = (uint8_t)(hi << 4 | lo);
	}
	out->p = buf;
	out->len = (uint32_t)(n / 2);
	return HDL_EOK;
}

/* ---- time --------------------------------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date, and back. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

void hdl_json_time(uint32_t t, char out[21])
{
	int64_t y;
	unsigned mo, d;
	civil_from_days(t / 86400u, &y, &mo, &d);
	uint32_t s = t % 86400u;
	char tmp[64];
	subpath(tmp, sizeof(tmp), "%04d-%02u-%02uT%02u:%02u:%02uZ", (int)y, mo, d,
	        (unsigned)(s / 3600), (unsigned)(s / 60 % 60), (unsigned)(s % 60));
	memcpy(out, tmp, 20);
	out[20] = '\0';
}

static bool digits(const char *s, size_t n, unsigned *out)
{
	unsigned v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	*out = v;
	return true;
}

int hdl_json_parse_time(const char *s, uint32_t *out)
{
	static const unsigned mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	unsigned y, mo, d, h = 0, mi = 0, sec = 0;
	size_t n = strlen(s);
	if (n < 10 || s[4] != '-' || s[7] != '-' || !digits(s, 4, &y) || !digits(s + 5, 2, &mo) ||
	    !digits(s + 8, 2, &d))
		return HDL_EJSON;
	const char *p = s + 10;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		if (strlen(p) < 9 || p[3] != ':' || p[6] != ':' || !digits(p + 1, 2, &h) ||
		    !digits(p + 4, 2, &mi) || !digits(p + 7, 2, &sec))
			return HDL_EJSON;
		p += 9;
		if (*p == '.' || *p == ',') {
			p++;
			if (*p < '0' || *p > '9')
				return HDL_EJSON;
			while (*p >= '0' && *p <= '9')
				p++;
		}
	}
	int64_t off = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p == '-' ? -1 : 1;
		unsigned oh, om = 0;
		p++;
		if (!digits(p, 2, &oh))
			return HDL_EJSON;
		p += 2;
		if (*p == ':')
			p++;
		if (*p != '\0') {
			if (!digits(p, 2, &om))
				return HDL_EJSON;
			p += 2;
		}
		if (oh > 23 || om > 59)
			return HDL_EJSON;
		off = sign * (int64_t)(oh * 3600 + om * 60);
	}
	if (*p != '\0')
		return HDL_EJSON;
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || sec > 60)
		return HDL_EJSON;
	if (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
		return HDL_EJSON;
	int64_t t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off;
	if (t < 0 || t > (int64_t)UINT32_MAX)
		return HDL_EJSON;
	*out = (uint32_t)t;
	return HDL_EOK;
}

/* ---- input scalars ------------------------------------------------------------------------ */

/**
 * An int as Gson's getAsInt takes it: a JSON integer or a numeric string. Accepts
 * INT32_MIN..UINT32_MAX (Java ints are bit patterns of the U32 on the wire).
 */
static bool get_int(const json_t *v, int64_t lo, int64_t hi, int64_t *out)
{
	int64_t x;
	if (json_is_integer(v)) {
		x = (int64_t)json_integer_value(v);
	} else if (json_is_string(v)) {
		const char *s = json_string_value(v);
		size_t n = json_string_length(v);
		size_t i = 0;
		bool neg = false;
		if (n > 0 && (s[0] == '-' || s[0] == '+')) {
			neg = s[0] == '-';
			i = 1;
		}
		if (i >= n || n - i > 12)
			return false;
		x = 0;
		for (; i < n; i++) {
			if (s[i] < '0' || s[i] > '9')
				return false;
			x = x * 10 + (s[i] - '0');
		}
		if (neg)
			x = -x;
	} else {
		return false;
	}
	if (x < lo || x > hi)
		return false;
	*out = x;
	return true;
}

static bool get_u32(const json_t *v, uint32_t *out)
{
	int64_t x;
	if (!get_int(v, INT32_MIN, UINT32_MAX, &x))
		return false;
	*out = (uint32_t)x;
	return true;
}

static bool get_bool(const json_t *v, bool *out)
{
	if (json_is_boolean(v)) {
		*out = json_is_true(v);
		return true;
	}
	if (json_is_string(v)) {
		*out = ascii_ieq(json_string_value(v), "true");
		return true;
	}
	return false;
}

/** Copy a JSON string into the arena, at most \p max bytes. */
static int get_str(jctx_t *c, const json_t *v, uint32_t max, const char *path, hdl_slice_t *out)
{
	if (!json_is_string(v))
		return jfail(c, HDL_EJSON, path, "expected a string");
	size_t n = json_string_length(v);
	if (n > max)
		return jfail(c, HDL_ELIMIT, path, "longer than %u bytes", max);
	*out = hdl_arena_dup(c->a, json_string_value(v), n);
	if (out->p == NULL)
		return jfail(c, HDL_ENOMEM, path, "out of memory");
	return HDL_EOK;
}

/* ---- HS_ADMIN ------------------------------------------------------------------------------ */

static json_t *admin_to_json(const hdl_admin_t *ad)
{
	char bits[13];
	for (int i = 0; i < 12; i++)
		bits[i] = (ad->perms >> (11 - i)) & 1 ? '1' : '0';
	bits[12] = '\0';
	json_t *o = json_object();
	if (o == NULL || !jset(o, "handle", jslice(ad->handle)) ||
	    !jset(o, "index", jint32(ad->index)) || !jset(o, "permissions", json_string(bits)) ||
	    (ad->legacy && !jset(o, "legacyByteLength", json_true()))) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static int admin_perms_from_json(const json_t *v, uint16_t *out)
{
	uint32_t mask = 0;
	if (v == NULL || json_is_null(v)) {
		mask = 0;
	} else if (json_is_boolean(v)) {
		mask = json_is_true(v) ? HDL_ADM_ALL : 0;
	} else if (json_is_string(v)) {
		const char *s = json_string_value(v);
		size_t n = json_string_length(v);
		if (n == 1 && s[0] == '*') {
			mask = HDL_ADM_ALL;
		} else {
			/* char n-1-i is bit i: MSB first, right-aligned, only the last 12 count */
			for (size_t i = 0; i < 12 && i < n; i++) {
				if (s[n - 1 - i] == '1')
					mask |= 1u << i;
			}
		}
	} else if (json_is_integer(v)) {
		mask = (uint32_t)json_integer_value(v);
	} else if (json_is_array(v)) {
		/* LSB first: element i is bit i; truthy as Handle.Net isTruthy */
		for (size_t i = 0; i < 12 && i < json_array_size(v); i++) {
			const json_t *e = json_array_get(v, i);
			bool t;
			if (json_is_null(e))
				t = false;
			else if (json_is_boolean(e))
				t = json_is_true(e);
			else if (json_is_string(e))
				t = json_string_length(e) > 0;
			else if (json_is_number(e))
				t = json_number_value(e) != 0.0;
			else
				t = true;
			if (t)
				mask |= 1u << i;
		}
	} else {
		return HDL_EJSON;
	}
	*out = (uint16_t)(mask & HDL_ADM_ALL);
	return HDL_EOK;
}

static int admin_from_json(jctx_t *c, const json_t *v, const char *path, hdl_slice_t *data)
{
	char sub[96];
	hdl_admin_t ad;
	int err;
	memset(&ad, 0, sizeof(ad));
	if (!json_is_object(v))
		return jfail(c, HDL_EJSON, path, "admin value must be an object");
	subpath(sub, sizeof(sub), "%s.handle", path);
	if ((err = get_str(c, jget(v, "handle"), HDL_MAX_HANDLE_LEN, sub, &ad.handle)) != HDL_EOK)
		return err;
	if (!get_u32(jget(v, "index"), &ad.index))
		return jfail(c, HDL_EJSON, path, "index: expected an integer");
	if (admin_perms_from_json(jget(v, "permissions"), &ad.perms) != HDL_EOK)
		return jfail(c, HDL_EJSON, path,
		             "permissions: expected a bit string, '*', "
		             "boolean, integer or array");
	const json_t *lg = jget(v, "legacyByteLength");
	if (lg != NULL && !json_is_null(lg) && !get_bool(lg, &ad.legacy))
		return jfail(c, HDL_EJSON, path, "legacyByteLength: expected a boolean");
	size_t cap = 12u + ad.handle.len;
	uint8_t *buf = hdl_arena_alloc(c->a, cap);
	size_t len = 0;
	if (buf == NULL)
		return jfail(c, HDL_ENOMEM, path, "out of memory");
	if ((err = hdl_admin_encode(&ad, buf, cap, &len)) != HDL_EOK)
		return jfail(c, err, path, "cannot encode admin record");
	data->p = buf;
	data->len = (uint32_t)len;
	return HDL_EOK;
}

/* ---- references / HS_VLIST ----------------------------------------------------------------- */

static json_t *refs_to_json(const hdl_ref_t *r, uint32_t n)
{
	json_t *arr = json_array();
	if (arr == NULL)
		return NULL;
	for (uint32_t i = 0; i < n; i++) {
		json_t *o = json_object();
		if (o == NULL || !jset(o, "handle", jslice(r[i].handle)) ||
		    !jset(o, "index", jint32(r[i].index)) || !jpush(arr, o)) {
			json_decref(o);
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

static int refs_from_json(jctx_t *c, const json_t *v, const char *path, hdl_ref_t **out,
                          uint32_t *n)
{
	char sub[96];
	int err;
	*out = NULL;
	*n = 0;
	if (v == NULL || json_is_null(v))
		return HDL_EOK;
	if (!json_is_array(v))
		return jfail(c, HDL_EJSON, path, "expected an array");
	size_t cnt = json_array_size(v);
	if (cnt > HDL_MAX_REFS)
		return jfail(c, HDL_ELIMIT, path, "more than %u references", HDL_MAX_REFS);
	if (cnt == 0)
		return HDL_EOK;
	hdl_ref_t *r = hdl_arena_alloc(c->a, cnt * sizeof(*r));
	if (r == NULL)
		return jfail(c, HDL_ENOMEM, path, "out of memory");
	for (size_t i = 0; i < cnt; i++) {
		const json_t *e = json_array_get(v, i);
		subpath(sub, sizeof(sub), "%s[%zu]", path, i);
		if (!json_is_object(e))
			return jfail(c, HDL_EJSON, sub, "expected an object {handle, index}");
		char hp[112];
		subpath(hp, sizeof(hp), "%s.handle", sub);
		if ((err = get_str(c, jget(e, "handle"), HDL_MAX_HANDLE_LEN, hp, &r[i].handle)) !=
		    HDL_EOK)
			return err;
		if (!get_u32(jget(e, "index"), &r[i].index))
			return jfail(c, HDL_EJSON, sub, "index: expected an integer");
	}
	*out = r;
	*n = (uint32_t)cnt;
	return HDL_EOK;
}

static int vlist_from_json(jctx_t *c, const json_t *v, const char *path, hdl_slice_t *data)
{
	hdl_ref_t *refs;
	uint32_t n;
	int err;
	if (!json_is_array(v))
		return jfail(c, HDL_EJSON, path, "vlist value must be an array");
	if ((err = refs_from_json(c, v, path, &refs, &n)) != HDL_EOK)
		return err;
	size_t cap = 4;
	for (uint32_t i = 0; i < n; i++)
		cap += 8u + refs[i].handle.len;
	uint8_t *buf = hdl_arena_alloc(c->a, cap);
	size_t len = 0;
	if (buf == NULL)
		return jfail(c, HDL_ENOMEM, path, "out of memory");
	if ((err = hdl_vlist_encode(refs, n, buf, cap, &len)) != HDL_EOK)
		return jfail(c, err, path, "cannot encode vlist");
	data->p = buf;
	data->len = (uint32_t)len;
	return HDL_EOK;
}

/* ---- HS_PUBKEY as JWK ---------------------------------------------------------------------- */

/** Big integer as unsigned base64url (leading zero bytes stripped). */
static json_t *jbig(hdl_slice_t s)
{
	size_t i = 0;
	while (i < s.len && s.p[i] == 0)
		i++;
	return jb64(s.p + i, s.len - i, true);
}

/** True when encoding \p k gives back exactly \p p / \p len (no bits lost by the JWK form). */
static bool pubkey_canonical(const hdl_pubkey_t *k, const uint8_t *p, size_t len)
{
	const hdl_slice_t *ints[4];
	size_t nints = 0;
	if (k->kind == HDL_KEY_RSA) {
		ints[nints++] = &k->e;
		ints[nints++] = &k->n;
	} else if (k->kind == HDL_KEY_DSA) {
		ints[nints++] = &k->q;
		ints[nints++] = &k->p;
		ints[nints++] = &k->g;
		ints[nints++] = &k->y;
	} else {
		return false;
	}
	if (k->flags != 0)
		return false;
	/* each integer must be minimal two's complement of a non-negative number */
	for (size_t i = 0; i < nints; i++) {
		const hdl_slice_t *s = ints[i];
		if (s->len == 0)
			return false;
		if (s->p[0] & 0x80)
			return false;
		if (s->len > 1 && s->p[0] == 0 && !(s->p[1] & 0x80))
			return false;
	}
	size_t want = 4 + k->key_type.len + 2 + (k->kind == HDL_KEY_RSA ? 4 : 0);
	for (size_t i = 0; i < nints; i++)
		want += 4 + ints[i]->len;
	if (want != len)
		return false;
	/* trailing RSA field must be the 4 zero bytes Handle.Net writes */
	if (k->kind == HDL_KEY_RSA && memcmp(p + len - 4, "\0\0\0\0", 4) != 0)
		return false;
	return true;
}

static json_t *pubkey_to_jwk(const hdl_pubkey_t *k)
{
	json_t *o = json_object();
	if (o == NULL)
		return NULL;
	bool ok;
	if (k->kind == HDL_KEY_RSA) {
		ok = jset(o, "kty", json_string("RSA")) && jset(o, "n", jbig(k->n)) &&
		     jset(o, "e", jbig(k->e));
	} else {
		ok = jset(o, "kty", json_string("DSA")) && jset(o, "y", jbig(k->y)) &&
		     jset(o, "p", jbig(k->p)) && jset(o, "q", jbig(k->q)) &&
		     jset(o, "g", jbig(k->g));
	}
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/** {"format":"key","value":JWK} when \p p is a canonical RSA/DSA key, else NULL (no error). */
static json_t *key_data_json(const uint8_t *p, size_t len, bool *oom)
{
	hdl_pubkey_t k;
	*oom = false;
	if (hdl_pubkey_decode(p, len, &k) != HDL_EOK || !pubkey_canonical(&k, p, len))
		return NULL;
	json_t *o = json_object();
	if (o == NULL || !jset(o, "format", json_string("key")) ||
	    !jset(o, "value", pubkey_to_jwk(&k))) {
		json_decref(o);
		*oom = true;
		return NULL;
	}
	return o;
}

/** Unsigned big-endian bytes (base64url) -> Java BigInteger.toByteArray form, in the arena. */
static int big_from_json(jctx_t *c, const json_t *v, const char *path, hdl_slice_t *out)
{
	hdl_slice_t raw;
	int err;
	if (!json_is_string(v))
		return jfail(c, HDL_EJSON, path, "expected a base64url string");
	err = b64_decode(c->a, json_string_value(v), json_string_length(v), &raw);
	if (err != HDL_EOK)
		return jfail(c, err, path, "invalid base64");
	size_t i = 0;
	while (i < raw.len && raw.p[i] == 0)
		i++;
	size_t n = raw.len - i;
	bool lead = n == 0 || (raw.p[i] & 0x80);
	uint8_t *buf = hdl_arena_alloc(c->a, n + 1);
	if (buf == NULL)
		return jfail(c, HDL_ENOMEM, path, "out of memory");
	if (lead)
		buf[0] = 0;
	if (n)
		memcpy(buf + (lead ? 1 : 0), raw.p + i, n);
	out->p = buf;
	out->len = (uint32_t)(n + (lead ? 1 : 0));
	return HDL_EOK;
}

static int key_from_json(jctx_t *c, const json_t *v, const char *path, hdl_slice_t *data)
{
	char sub[96];
	hdl_pubkey_t k;
	int err;
	memset(&k, 0, sizeof(k));
	if (!json_is_object(v))
		return jfail(c, HDL_EJSON, path, "key value must be a JWK object");
	const json_t *kty = json_object_get(v, "kty");
	if (!json_is_string(kty))
		return jfail(c, HDL_EJSON, path, "kty: expected a string");
	static const char *rsa[] = {"e", "n"};
	static const char *dsa[] = {"q", "p", "g", "y"};
	hdl_slice_t *rsa_out[] = {&k.e, &k.n};
	hdl_slice_t *dsa_out[] = {&k.q, &k.p, &k.g, &k.y};
	const char **names;
	hdl_slice_t **outs;
	size_t cnt;
	if (ascii_ieq(json_string_value(kty), "RSA")) {
		k.kind = HDL_KEY_RSA;
		names = rsa;
		outs = rsa_out;
		cnt = 2;
	} else if (ascii_ieq(json_string_value(kty), "DSA")) {
		k.kind = HDL_KEY_DSA;
		names = dsa;
		outs = dsa_out;
		cnt = 4;
	} else {
		return jfail(c, HDL_EJSON, path, "kty: unsupported key type");
	}
	size_t cap = 64;
	for (size_t i = 0; i < cnt; i++) {
		subpath(sub, sizeof(sub), "%s.%s", path, names[i]);
		if ((err = big_from_json(c, json_object_get(v, names[i]), sub, outs[i])) != HDL_EOK)
			return err;
		cap += 4u + outs[i]->len;
	}
	if (cap > HDL_MAX_ARRAY_LEN)
		return jfail(c, HDL_ELIMIT, path, "key too large");
	uint8_t *buf = hdl_arena_alloc(c->a, cap);
	size_t len = 0;
	if (buf == NULL)
		return jfail(c, HDL_ENOMEM, path, "out of memory");
	if ((err = hdl_pubkey_encode(&k, buf, cap, &len)) != HDL_EOK)
		return jfail(c, err, path, "cannot encode key");
	data->p = buf;
	data->len = (uint32_t)len;
	return HDL_EOK;
}

/* ---- HS_SITE ------------------------------------------------------------------------------- */

static const char *const PROTO_NAMES[] = {"UDP", "TCP", "HTTP", "HTTPS"};

static json_t *binary_json(const uint8_t *p, size_t n)
{
	json_t *o = json_object();
	if (o == NULL || !jset(o, "format", json_string("base64")) ||
	    !jset(o, "value", jb64(p, n, false))) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *server_to_json(const hdl_server_t *sv)
{
	char addr[INET6_ADDRSTRLEN];
	bool ok;
	if (hdl_server_is_ipv4(sv))
		ok = inet_ntop(AF_INET, sv->addr + 12, addr, sizeof(addr)) != NULL;
	else
		ok = inet_ntop(AF_INET6, sv->addr, addr, sizeof(addr)) != NULL;
	if (!ok)
		return NULL;
	json_t *o = json_object();
	if (o == NULL)
		return NULL;
	bool oom;
	json_t *pk = key_data_json(sv->pubkey.p, sv->pubkey.len, &oom);
	if (pk == NULL && !oom)
		pk = binary_json(sv->pubkey.p, sv->pubkey.len);
	json_t *ifs = json_array();
	if (!jset(o, "serverId", jint32(sv->id)) || !jset(o, "address", json_string(addr)) ||
	    !jset(o, "publicKey", pk) || !jset(o, "interfaces", ifs))
		goto fail;
	for (uint32_t i = 0; i < sv->n_ifaces; i++) {
		const hdl_interface_t *f = &sv->ifaces[i];
		json_t *jf = json_object();
		json_t *proto =
		    f->proto < 4 ? json_string(PROTO_NAMES[f->proto]) : json_integer(f->proto);
		if (!jpush(ifs, jf) || !jset(jf, "query", json_boolean(f->type & HDL_IF_QUERY)) ||
		    !jset(jf, "admin", json_boolean(f->type & HDL_IF_ADMIN)) ||
		    !jset(jf, "protocol", proto) || !jset(jf, "port", jint32(f->port)))
			goto fail;
	}
	return o;
fail:
	json_decref(o);
	return NULL;
}

json_t *hdl_json_from_site(const hdl_site_t *s)
{
	char pv[8];
	json_t *o = json_object();
	if (o == NULL)
		return NULL;
	snprintf(pv, sizeof(pv), "%u.%u", s->proto_major, s->proto_minor);
	json_t *attrs = json_array();
	json_t *servers = json_array();
	if (!jset(o, "version", json_integer(s->data_version)) ||
	    !jset(o, "protocolVersion", json_string(pv)) ||
	    !jset(o, "serialNumber", json_integer(s->serial)) ||
	    !jset(o, "primarySite", json_boolean(s->primary_mask & HDL_SITE_PRIMARY)) ||
	    !jset(o, "multiPrimary", json_boolean(s->primary_mask & HDL_SITE_MULTI_PRIMARY)) ||
	    (s->hash_option != HDL_HASH_BY_HANDLE &&
	     !jset(o, "hashOption", json_integer(s->hash_option))) ||
	    (s->hash_filter.len > 0 && !jset(o, "hashFilter", jslice(s->hash_filter)))) {
		json_decref(attrs);
		json_decref(servers);
		goto fail;
	}
	if (!jset(o, "attributes", attrs)) {
		json_decref(servers);
		goto fail;
	}
	if (!jset(o, "servers", servers))
		goto fail;
	for (uint32_t i = 0; i < s->n_attrs; i++) {
		json_t *a = json_object();
		if (!jpush(attrs, a) || !jset(a, "name", jslice(s->attrs[i].name)) ||
		    !jset(a, "value", jslice(s->attrs[i].value)))
			goto fail;
	}
	for (uint32_t i = 0; i < s->n_servers; i++) {
		if (!jpush(servers, server_to_json(&s->servers[i])))
			goto fail;
	}
	return o;
fail:
	json_decref(o);
	return NULL;
}

/** True when hdl_json_from_site() of \p s parses back to the same bytes. */
static bool site_lossless(const hdl_site_t *s)
{
	if (s->primary_mask & ~(HDL_SITE_PRIMARY | HDL_SITE_MULTI_PRIMARY))
		return false;
	if (!hdl_utf8_valid(s->hash_filter.p, s->hash_filter.len))
		return false;
	for (uint32_t i = 0; i < s->n_attrs; i++) {
		if (!hdl_utf8_valid(s->attrs[i].name.p, s->attrs[i].name.len) ||
		    !hdl_utf8_valid(s->attrs[i].value.p, s->attrs[i].value.len))
			return false;
	}
	for (uint32_t i = 0; i < s->n_servers; i++) {
		for (uint32_t k = 0; k < s->servers[i].n_ifaces; k++) {
			if (s->servers[i].ifaces[k].type & ~(HDL_IF_ADMIN | HDL_IF_QUERY))
				return false;
		}
	}
	return true;
}

static int data_from_json(jctx_t *c, const json_t *d, const char *path, hdl_slice_t *out);

static int iface_from_json(jctx_t *c, const json_t *v, const char *path, hdl_interface_t *f)
{
	bool q = false, ad = false;
	int64_t x;
	if (!json_is_object(v))
		return jfail(c, HDL_EJSON, path, "expected an object");
	const json_t *jq = jget(v, "query"), *ja = jget(v, "admin"), *jp = jget(v, "protocol");
	if ((jq != NULL && !get_bool(jq, &q)) || (ja != NULL && !get_bool(ja, &ad)))
		return jfail(c, HDL_EJSON, path, "query/admin: expected booleans");
	f->type = (uint8_t)((q ? HDL_IF_QUERY : 0) | (ad ? HDL_IF_ADMIN : 0));
	f->proto = 0xFF;
	if (json_is_string(jp)) {
		for (uint8_t i = 0; i < 4; i++) {
			if (strcmp(json_string_value(jp), PROTO_NAMES[i]) == 0)
				f->proto = i;
		}
	}
	if (f->proto == 0xFF) {
		if (!get_int(jp, -128, 255, &x))
			return jfail(c, HDL_EJSON, path,
			             "protocol: expected UDP, TCP, HTTP, HTTPS or a number");
		f->proto = (uint8_t)x;
	}
	if (!get_u32(jget(v, "port"), &f->port))
		return jfail(c, HDL_EJSON, path, "port: expected an integer");
	return HDL_EOK;
}

static int server_from_json(jctx_t *c, const json_t *v, const char *path, hdl_server_t *sv)
{
	char sub[128];
	int err;
	if (!json_is_object(v))
		return jfail(c, HDL_EJSON, path, "expected an object");
	/* Handle.Net's legacy site files spell the keys with a capital first letter */
	bool legacy = json_object_get(v, "Address") != NULL || json_object_get(v, "Port") != NULL ||
	              json_object_get(v, "ServerList") != NULL;
	const json_t *id = jget(v, "serverId");
	if (id != NULL && !get_u32(id, &sv->id))
		return jfail(c, HDL_EJSON, path, "serverId: expected an integer");
	const json_t *addr = jget(v, "address");
	if (!json_is_string(addr))
		return jfail(c, HDL_EJSON, path, "address: expected an IP address string");
	uint8_t a4[4];
	memset(sv->addr, 0, sizeof(sv->addr));
	if (inet_pton(AF_INET, json_string_value(addr), a4) == 1)
		memcpy(sv->addr + 12, a4, 4);
	else if (inet_pton(AF_INET6, json_string_value(addr), sv->addr) != 1)
		return jfail(c, HDL_EJSON, path, "address: not an IPv4 or IPv6 address");
	const json_t *pk = jget(v, "publicKey");
	subpath(sub, sizeof(sub), "%s.publicKey", path);
	if (pk != NULL && !json_is_null(pk)) {
		if (legacy && json_is_string(pk))
			err = hex_decode(c->a, json_string_value(pk), json_string_length(pk),
			                 &sv->pubkey);
		else
			err = data_from_json(c, pk, sub, &sv->pubkey);
		if (err != HDL_EOK)
			return jfail(c, err, sub, "invalid public key");
	}
	const json_t *ifs = jget(v, "interfaces");
	if (ifs == NULL)
		ifs = jget(v, "interfaceList");
	if (ifs == NULL || json_is_null(ifs))
		return HDL_EOK;
	if (!json_is_array(ifs))
		return jfail(c, HDL_EJSON, path, "interfaces: expected an array");
	size_t n = json_array_size(ifs);
	if (n > HDL_MAX_IFACES)
		return jfail(c, HDL_ELIMIT, path, "more than %u interfaces", HDL_MAX_IFACES);
	if (n == 0)
		return HDL_EOK;
	sv->ifaces = hdl_arena_alloc(c->a, n * sizeof(*sv->ifaces));
	if (sv->ifaces == NULL)
		return jfail(c, HDL_ENOMEM, path, "out of memory");
	sv->n_ifaces = (uint32_t)n;
	for (size_t i = 0; i < n; i++) {
		subpath(sub, sizeof(sub), "%s.interfaces[%zu]", path, i);
		if ((err = iface_from_json(c, json_array_get(ifs, i), sub, &sv->ifaces[i])) !=
		    HDL_EOK)
			return err;
	}
	return HDL_EOK;
}

static int attrs_from_json(jctx_t *c, const json_t *v, const char *path, hdl_site_t *s)
{
	char sub[96];
	int err;
	size_t n = 0;
	if (json_is_array(v)) {
		n = json_array_size(v);
	} else if (json_is_object(v)) {
		const char *k;
		const json_t *e;
		json_object_foreach((json_t *)v, k, e)
		{
			n += json_is_array(e) ? json_array_size(e) : 1;
			if (n > HDL_MAX_ATTRS)
				break;
		}
	} else if (!json_is_null(v)) {
		return jfail(c, HDL_EJSON, path, "expected an array or object");
	}
	if (n > HDL_MAX_ATTRS)
		return jfail(c, HDL_ELIMIT, path, "more than %u attributes", HDL_MAX_ATTRS);
	if (n == 0)
		return HDL_EOK;
	s->attrs = hdl_arena_alloc(c->a, n * sizeof(*s->attrs));
	if (s->attrs == NULL)
		return jfail(c, HDL_ENOMEM, path, "out of memory");
	s->n_attrs = (uint32_t)n;
	if (json_is_array(v)) {
		for (size_t i = 0; i < n; i++) {
			const json_t *e = json_array_get(v, i);
			subpath(sub, sizeof(sub), "%s[%zu]", path, i);
			if (!json_is_object(e))
				return jfail(c, HDL_EJSON, sub, "expected {name, value}");
			if ((err = get_str(c, jget(e, "name"), HDL_MAX_ARRAY_LEN, sub,
			                   &s->attrs[i].name)) != HDL_EOK ||
			    (err = get_str(c, jget(e, "value"), HDL_MAX_ARRAY_LEN, sub,
			                   &s->attrs[i].value)) != HDL_EOK)
				return err;
		}
		return HDL_EOK;
	}
	const char *k;
	const json_t *e;
	size_t i = 0;
	json_object_foreach((json_t *)v, k, e)
	{
		subpath(sub, sizeof(sub), "%s.%.40s", path, k);
		hdl_slice_t name = hdl_arena_dup(c->a, k, strlen(k));
		if (name.p == NULL)
			return jfail(c, HDL_ENOMEM, sub, "out of memory");
		size_t m = json_is_array(e) ? json_array_size(e) : 1;
		for (size_t j = 0; j < m; j++, i++) {
			s->attrs[i].name = name;
			const json_t *ev = json_is_array(e) ? json_array_get(e, j) : e;
			if ((err = get_str(c, ev, HDL_MAX_ARRAY_LEN, sub, &s->attrs[i].value)) !=
			    HDL_EOK)
				return err;
		}
	}
	return HDL_EOK;
}

int hdl_json_to_site(const json_t *j, hdl_arena_t *a, hdl_site_t *out, char *err, size_t errlen)
{
	jctx_t cx = {a, err, errlen};
	jctx_t *c = &cx;
	char sub[64];
	int64_t x;
	int rc;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	memset(out, 0, sizeof(*out));
	out->data_version = 1;
	out->proto_major = 2;
	out->proto_minor = 10;
	out->serial = 1;
	out->hash_option = HDL_HASH_BY_HANDLE;
	if (!json_is_object(j))
		return jfail(c, HDL_EJSON, "site", "expected an object");
	const json_t *v;
	if ((v = jget(j, "version")) != NULL) {
		if (!get_int(v, 0, 65535, &x))
			return jfail(c, HDL_EJSON, "site.version", "expected 0..65535");
		out->data_version = (uint16_t)x;
	}
	if ((v = jget(j, "protocolVersion")) != NULL) {
		unsigned ma, mi;
		char tail;
		if (!json_is_string(v) ||
		    sscanf(json_string_value(v), "%3u.%3u%c", &ma, &mi, &tail) != 2 || ma > 255 ||
		    mi > 255)
			return jfail(c, HDL_EJSON, "site.protocolVersion",
			             "expected \"major.minor\"");
		out->proto_major = (uint8_t)ma;
		out->proto_minor = (uint8_t)mi;
	}
	if ((v = jget(j, "serialNumber")) != NULL) {
		if (!get_int(v, -32768, 65535, &x))
			return jfail(c, HDL_EJSON, "site.serialNumber", "expected 0..65535");
		out->serial = (uint16_t)x;
	}
	bool b;
	if ((v = jget(j, "primarySite")) != NULL) {
		if (!get_bool(v, &b))
			return jfail(c, HDL_EJSON, "site.primarySite", "expected a boolean");
		out->primary_mask |= b ? HDL_SITE_PRIMARY : 0;
	}
	if ((v = jget(j, "multiPrimary")) != NULL) {
		if (!get_bool(v, &b))
			return jfail(c, HDL_EJSON, "site.multiPrimary", "expected a boolean");
		out->primary_mask |= b ? HDL_SITE_MULTI_PRIMARY : 0;
	}
	if ((v = jget(j, "hashOption")) != NULL) {
		if (!get_int(v, -128, 255, &x))
			return jfail(c, HDL_EJSON, "site.hashOption", "expected 0..255");
		out->hash_option = (uint8_t)x;
	}
	if ((v = jget(j, "hashFilter")) != NULL && !json_is_null(v)) {
		if ((rc = get_str(c, v, HDL_MAX_ARRAY_LEN, "site.hashFilter", &out->hash_filter)) !=
		    HDL_EOK)
			return rc;
	}
	if ((v = jget(j, "attributes")) != NULL) {
		if ((rc = attrs_from_json(c, v, "site.attributes", out)) != HDL_EOK)
			return rc;
	}
	v = jget(j, "servers");
	if (v == NULL)
		v = jget(j, "serverList");
	if (v == NULL || json_is_null(v))
		return HDL_EOK;
	if (!json_is_array(v))
		return jfail(c, HDL_EJSON, "site.servers", "expected an array");
	size_t n = json_array_size(v);
	if (n > HDL_MAX_SERVERS)
		return jfail(c, HDL_ELIMIT, "site.servers", "more than %u servers",
		             HDL_MAX_SERVERS);
	if (n == 0)
		return HDL_EOK;
	out->servers = hdl_arena_alloc(a, n * sizeof(*out->servers));
	if (out->servers == NULL)
		return jfail(c, HDL_ENOMEM, "site.servers", "out of memory");
	out->n_servers = (uint32_t)n;
	for (size_t i = 0; i < n; i++) {
		subpath(sub, sizeof(sub), "site.servers[%zu]", i);
		if ((rc = server_from_json(c, json_array_get(v, i), sub, &out->servers[i])) !=
		    HDL_EOK)
			return rc;
	}
	return HDL_EOK;
}

static size_t site_size(const hdl_site_t *s)
{
	size_t n = 8 + 4 + (size_t)s->hash_filter.len + 4 + 4;
	for (uint32_t i = 0; i < s->n_attrs; i++)
		n += 8 + (size_t)s->attrs[i].name.len + s->attrs[i].value.len;
	for (uint32_t i = 0; i < s->n_servers; i++)
		n += 28 + (size_t)s->servers[i].pubkey.len + 6 * (size_t)s->servers[i].n_ifaces;
	return n;
}

static int site_from_json(jctx_t *c, const json_t *v, const char *path, hdl_slice_t *data)
{
	hdl_site_t s;
	int err = hdl_json_to_site(v, c->a, &s, c->err, c->errlen);
	if (err != HDL_EOK)
		return err;
	size_t cap = site_size(&s);
	if (cap > HDL_MAX_ARRAY_LEN)
		return jfail(c, HDL_ELIMIT, path, "site record too large");
	uint8_t *buf = hdl_arena_alloc(c->a, cap);
	size_t len = 0;
	if (buf == NULL)
		return jfail(c, HDL_ENOMEM, path, "out of memory");
	if ((err = hdl_site_encode(&s, buf, cap, &len)) != HDL_EOK)
		return jfail(c, err, path, "cannot encode site");
	data->p = buf;
	data->len = (uint32_t)len;
	return HDL_EOK;
}

/* ---- value data ---------------------------------------------------------------------------- */

static json_t *data_of(const char *format, json_t *value)
{
	json_t *o = json_object();
	if (o == NULL || !jset(o, "format", json_string(format)) || !jset(o, "value", value)) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* Structured form of value data, or NULL when the type has none or it would lose bits. */
static json_t *structured_data(const hdl_value_t *v, bool *oom)
{
	hdl_arena_t a;
	uint8_t stack[2048];
	json_t *res = NULL;
	*oom = false;
	hdl_arena_init(&a, stack, sizeof(stack), TMP_ARENA_LIMIT);
	switch (hdl_vtype_of(v->type)) {
	case HDL_VT_ADMIN: {
		hdl_admin_t ad;
		if (hdl_admin_decode(v->data.p, v->data.len, &ad) == HDL_EOK &&
		    ad.perms <= HDL_ADM_ALL && hdl_utf8_valid(ad.handle.p, ad.handle.len)) {
			res = data_of("admin", admin_to_json(&ad));
			*oom = res == NULL;
		}
		break;
	}
	case HDL_VT_VLIST: {
		hdl_ref_t *refs;
		uint32_t n;
		if (hdl_vlist_decode(v->data.p, v->data.len, &a, &refs, &n) == HDL_EOK) {
			bool ok = true;
			for (uint32_t i = 0; i < n && ok; i++)
				ok = hdl_utf8_valid(refs[i].handle.p, refs[i].handle.len);
			if (ok) {
				res = data_of("vlist", refs_to_json(refs, n));
				*oom = res == NULL;
			}
		}
		break;
	}
	case HDL_VT_SITE: {
		hdl_site_t s;
		if (hdl_site_decode(v->data.p, v->data.len, &a, &s) == HDL_EOK &&
		    site_lossless(&s)) {
			res = data_of("site", hdl_json_from_site(&s));
			*oom = res == NULL;
		}
		break;
	}
	case HDL_VT_PUBKEY: res = key_data_json(v->data.p, v->data.len, oom); break;
	default: break;
	}
	hdl_arena_free(&a);
	return res;
}

static json_t *data_json(const hdl_value_t *v)
{
	bool oom;
	json_t *d = structured_data(v, &oom);
	if (d != NULL || oom)
		return d;
	if (!looks_binary(v->data.p, v->data.len))
		return data_of("string", jslice(v->data));
	return binary_json(v->data.p, v->data.len);
}

static int data_from_json(jctx_t *c, const json_t *d, const char *path, hdl_slice_t *out)
{
	char sub[112];
	int err;
	if (d == NULL)
		return jfail(c, HDL_EJSON, path, "missing");
	if (json_is_string(d)) {
		if (json_string_length(d) > HDL_MAX_ARRAY_LEN)
			return jfail(c, HDL_ELIMIT, path, "data over %u bytes", HDL_MAX_ARRAY_LEN);
		*out = hdl_arena_dup(c->a, json_string_value(d), json_string_length(d));
		return out->p ? HDL_EOK : jfail(c, HDL_ENOMEM, path, "out of memory");
	}
	if (json_is_integer(d) || json_is_boolean(d)) {
		char buf[32];
		if (json_is_integer(d))
			snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(d));
		else
			snprintf(buf, sizeof(buf), "%s", json_is_true(d) ? "true" : "false");
		*out = hdl_arena_dup(c->a, buf, strlen(buf));
		return out->p ? HDL_EOK : jfail(c, HDL_ENOMEM, path, "out of memory");
	}
	if (!json_is_object(d))
		return jfail(c, HDL_EJSON, path, "expected {format, value} or a string");
	const json_t *f = json_object_get(d, "format");
	const json_t *v = json_object_get(d, "value");
	if (!json_is_string(f))
		return jfail(c, HDL_EJSON, path, "format: expected a string");
	const char *fmt = json_string_value(f);
	subpath(sub, sizeof(sub), "%s.value", path);
	if (v == NULL)
		return jfail(c, HDL_EJSON, sub, "missing");
	if (ascii_ieq(fmt, "string")) {
		if (!json_is_string(v))
			return jfail(c, HDL_EJSON, sub, "expected a string");
		return data_from_json(c, v, sub, out);
	}
	if (ascii_ieq(fmt, "base64") || ascii_ieq(fmt, "hex")) {
		if (!json_is_string(v))
			return jfail(c, HDL_EJSON, sub, "expected a string");
		bool b64 = ascii_ieq(fmt, "base64");
		err = b64 ? b64_decode(c->a, json_string_value(v), json_string_length(v), out)
		          : hex_decode(c->a, json_string_value(v), json_string_length(v), out);
		if (err != HDL_EOK)
			return jfail(c, err, sub, "invalid %s", b64 ? "base64" : "hex");
		return HDL_EOK;
	}
	if (ascii_ieq(fmt, "admin"))
		return admin_from_json(c, v, sub, out);
	if (ascii_ieq(fmt, "vlist"))
		return vlist_from_json(c, v, sub, out);
	if (ascii_ieq(fmt, "site"))
		return site_from_json(c, v, sub, out);
	if (ascii_ieq(fmt, "key"))
		return key_from_json(c, v, sub, out);
	return jfail(c, HDL_EJSON, path, "format: unknown format '%.32s'", fmt);
}

/* ---- values -------------------------------------------------------------------------------- */

json_t *hdl_json_from_value(const hdl_value_t *v)
{
	json_t *o = json_object();
	if (o == NULL)
		return NULL;
	if (!jset(o, "index", jint32(v->index)) || !jset(o, "type", jslice(v->type)) ||
	    !jset(o, "data", data_json(v)))
		goto fail;
	if ((v->perms & 0x0F) != HDL_PERM_DEFAULT) {
		char p[5] = {(v->perms & HDL_PERM_ADMIN_READ) ? '1' : '0',
		             (v->perms & HDL_PERM_ADMIN_WRITE) ? '1' : '0',
		             (v->perms & HDL_PERM_PUBLIC_READ) ? '1' : '0',
		             (v->perms & HDL_PERM_PUBLIC_WRITE) ? '1' : '0', '\0'};
		if (!jset(o, "permissions", json_string(p)))
			goto fail;
	}
	if (v->ttl_type == HDL_TTL_RELATIVE) {
		if (!jset(o, "ttl", jint32(v->ttl)))
			goto fail;
	} else {
		char t[21];
		hdl_json_time(v->ttl, t);
		if (!jset(o, "ttl", json_string(t)))
			goto fail;
	}
	if (v->timestamp != 0) {
		char t[21];
		hdl_json_time(v->timestamp, t);
		if (!jset(o, "timestamp", json_string(t)))
			goto fail;
	}
	if (v->n_refs > 0 && !jset(o, "references", refs_to_json(v->refs, v->n_refs)))
		goto fail;
	return o;
fail:
	json_decref(o);
	return NULL;
}

json_t *hdl_json_from_values(const hdl_value_t *v, uint32_t n)
{
	json_t *arr = json_array();
	if (arr == NULL)
		return NULL;
	for (uint32_t i = 0; i < n; i++) {
		if (!jpush(arr, hdl_json_from_value(&v[i]))) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

/** Value permissions: "*" = all; else a bit string right-aligned on "<aR><aW><pR><pW>". */
static bool perms_from_json(const json_t *v, uint8_t *out)
{
	char buf[32];
	const char *s;
	size_t n;
	if (json_is_string(v)) {
		s = json_string_value(v);
		n = json_string_length(v);
	} else if (json_is_integer(v)) {
		snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		s = buf;
		n = strlen(buf);
	} else {
		return false;
	}
	if (n == 1 && s[0] == '*') {
		*out = 0x0F;
		return true;
	}
	uint8_t p = HDL_PERM_DEFAULT;
	for (size_t i = 0; i < 4 && i < n; i++) {
		uint8_t bit = (uint8_t)(1u << i);
		if (s[n - 1 - i] == '1')
			p |= bit;
		else
			p &= (uint8_t)~bit;
	}
	*out = p;
	return true;
}

static int value_from_json(jctx_t *c, const json_t *j, const char *path, hdl_value_t *out)
{
	char sub[96];
	int err;
	memset(out, 0, sizeof(*out));
	out->ttl = DEFAULT_TTL;
	out->perms = HDL_PERM_DEFAULT;
	if (!json_is_object(j))
		return jfail(c, HDL_EJSON, path, "expected a value object");
	if (!get_u32(json_object_get(j, "index"), &out->index))
		return jfail(c, HDL_EJSON, path, "index: expected an integer");
	subpath(sub, sizeof(sub), "%s.type", path);
	if ((err = get_str(c, json_object_get(j, "type"), HDL_MAX_TYPE_LEN, sub, &out->type)) !=
	    HDL_EOK)
		return err;
	subpath(sub, sizeof(sub), "%s.data", path);
	if ((err = data_from_json(c, json_object_get(j, "data"), sub, &out->data)) != HDL_EOK)
		return err;
	const json_t *v;
	if ((v = json_object_get(j, "permissions")) != NULL && !json_is_null(v)) {
		if (!perms_from_json(v, &out->perms))
			return jfail(c, HDL_EJSON, path,
			             "permissions: expected a string like \"1110\"");
	}
	if ((v = json_object_get(j, "ttl")) != NULL && !json_is_null(v)) {
		if (json_is_string(v)) {
			out->ttl_type = HDL_TTL_ABSOLUTE;
			if (hdl_json_parse_time(json_string_value(v), &out->ttl) != HDL_EOK)
				return jfail(c, HDL_EJSON, path,
				             "ttl: expected seconds or an ISO-8601 time");
		} else if (!get_u32(v, &out->ttl)) {
			return jfail(c, HDL_EJSON, path,
			             "ttl: expected seconds or an ISO-8601 time");
		}
	}
	if ((v = json_object_get(j, "timestamp")) != NULL && !json_is_null(v)) {
		if (json_is_string(v)) {
			if (hdl_json_parse_time(json_string_value(v), &out->timestamp) != HDL_EOK)
				return jfail(c, HDL_EJSON, path,
				             "timestamp: expected an ISO-8601 time");
		} else if (!get_u32(v, &out->timestamp)) {
			return jfail(c, HDL_EJSON, path, "timestamp: expected an ISO-8601 time");
		}
	}
	subpath(sub, sizeof(sub), "%s.references", path);
	return refs_from_json(c, json_object_get(j, "references"), sub, &out->refs, &out->n_refs);
}

int hdl_json_to_value(const json_t *j, hdl_arena_t *a, hdl_value_t *out, char *err, size_t errlen)
{
	jctx_t c = {a, err, errlen};
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	return value_from_json(&c, j, "value", out);
}

int hdl_json_to_values(const json_t *j, hdl_arena_t *a, hdl_value_t **out, uint32_t *n, char *err,
                       size_t errlen)
{
	jctx_t c = {a, err, errlen};
	char sub[32];
	int rc;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	*out = NULL;
	*n = 0;
	const json_t *arr = j;
	if (json_is_object(j)) {
		const json_t *vals = json_object_get(j, "values");
		if (vals == NULL) {
			hdl_value_t *one = hdl_arena_alloc(a, sizeof(*one));
			if (one == NULL)
				return jfail(&c, HDL_ENOMEM, "value", "out of memory");
			if ((rc = value_from_json(&c, j, "value", one)) != HDL_EOK)
				return rc;
			*out = one;
			*n = 1;
			return HDL_EOK;
		}
		arr = vals;
	}
	if (!json_is_array(arr))
		return jfail(&c, HDL_EJSON, "values", "expected an array of values");
	size_t cnt = json_array_size(arr);
	if (cnt > HDL_MAX_VALUES)
		return jfail(&c, HDL_ELIMIT, "values", "more than %u values", HDL_MAX_VALUES);
	if (cnt == 0)
		return HDL_EOK;
	hdl_value_t *vals = hdl_arena_alloc(a, cnt * sizeof(*vals));
	if (vals == NULL)
		return jfail(&c, HDL_ENOMEM, "values", "out of memory");
	for (size_t i = 0; i < cnt; i++) {
		subpath(sub, sizeof(sub), "values[%zu]", i);
		if ((rc = value_from_json(&c, json_array_get(arr, i), sub, &vals[i])) != HDL_EOK)
			return rc;
	}
	*out = vals;
	*n = (uint32_t)cnt;
	return HDL_EOK;
}
