/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Direct writer of REST JSON values (see json_write.h): the text jansson's compact dump of
 *        proto/json.c's tree gives, without building the tree.
 */
#include "proto/json_write.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "hdl/error.h"
#include "hdl/values.h"
#include "proto/json.h"

#define BUF_MIN 256u

/* ---- buffer -------------------------------------------------------------------------------- */

void hdl_buf_init(hdl_buf_t *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max;
}

void hdl_buf_free(hdl_buf_t *b)
{
	free(b->p);
	size_t max = b->max;
	hdl_buf_init(b, max);
}

bool hdl_buf_reserve(hdl_buf_t *b, size_t n)
{
	if (b->fail)
		return false;
	if (b->cap - b->len >= n)
		return true;
	if (n > SIZE_MAX / 2 - b->len || (b->max && b->len + n > b->max)) {
		b->fail = true;
		return false;
	}
	size_t cap = b->cap ? b->cap : BUF_MIN;
	while (cap < b->len + n)
		cap *= 2;
	if (b->max && cap > b->max)
		cap = b->max;
	uint8_t *p = realloc(b->p, cap);
	if (p == NULL) {
		b->fail = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

static const char DIGITS2[] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

bool hdl_buf_putu(hdl_buf_t *b, uint64_t v)
{
	char tmp[20];
	size_t i = sizeof(tmp);
	while (v >= 100) {
		unsigned d = (unsigned)(v % 100) * 2;
		v /= 100;
		tmp[--i] = DIGITS2[d + 1];
		tmp[--i] = DIGITS2[d];
	}
	if (v >= 10) {
		unsigned d = (unsigned)v * 2;
		tmp[--i] = DIGITS2[d + 1];
		tmp[--i] = DIGITS2[d];
	} else {
		tmp[--i] = (char)('0' + v);
	}
	return hdl_buf_put(b, tmp + i, sizeof(tmp) - i);
}

/* Days since 1970-01-01 -> civil date (H. Hinnant's algorithm, as proto/json.c). */
static void civil(int64_t z, int64_t *y, unsigned *m, unsigned *d)
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

static void two(uint8_t *o, unsigned v)
{
	o[0] = (uint8_t)('0' + v / 10);
	o[1] = (uint8_t)('0' + v % 10);
}

bool hdl_buf_put_time(hdl_buf_t *b, uint32_t t)
{
	int64_t y;
	unsigned mo, d;
	civil((int64_t)(t / 86400u), &y, &mo, &d);
	uint32_t s = t % 86400u;
	uint8_t o[20];
	unsigned yy = (unsigned)y; /* 1970..2106 */
	o[0] = (uint8_t)('0' + yy / 1000);
	o[1] = (uint8_t)('0' + yy / 100 % 10);
	two(o + 2, yy % 100);
	o[4] = '-';
	two(o + 5, mo);
	o[7] = '-';
	two(o + 8, d);
	o[10] = 'T';
	two(o + 11, s / 3600);
	o[13] = ':';
	two(o + 14, s / 60 % 60);
	o[16] = ':';
	two(o + 17, s % 60);
	o[19] = 'Z';
	return hdl_buf_put(b, o, sizeof(o));
}

/* Java int: the bit pattern as a signed 32-bit number (proto/json.c jint32). */
static bool put_i32(hdl_buf_t *b, uint32_t v)
{
	int32_t s = (int32_t)v;
	if (s < 0) {
		if (!hdl_buf_put(b, "-", 1))
			return false;
		return hdl_buf_putu(b, (uint64_t)(-(int64_t)s));
	}
	return hdl_buf_putu(b, (uint64_t)s);
}

/* ---- strings --------------------------------------------------------------------------------- */

/* Handle.Net Util.looksLikeBinary (as proto/json.c). */
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

static const char HEX[] = "0123456789ABCDEF";

bool hdl_jw_string(hdl_buf_t *b, const uint8_t *p, size_t n)
{
	/* worst case: 6 bytes per input byte (\u00XX), or 3 per byte (U+FFFD) */
	if (n > (SIZE_MAX - 2) / 6 || !hdl_buf_reserve(b, n * 6 + 2))
		return false;
	uint8_t *o = b->p + b->len;
	*o++ = '"';
	for (size_t i = 0; i < n;) {
		/* a run of plain ASCII goes in one copy */
		size_t run = i;
		while (run < n && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' &&
		       p[run] != '\\')
			run++;
		if (run > i) {
			memcpy(o, p + i, run - i);
			o += run - i;
			i = run;
			if (i == n)
				break;
		}
		uint8_t c = p[i];
		if (c >= 0x80) {
			size_t k = hdl_utf8_seq(p + i, n - i);
			if (k == 0) {
				memcpy(o, "\xEF\xBF\xBD", 3);
				o += 3;
				i++;
			} else {
				memcpy(o, p + i, k);
				o += k;
				i += k;
			}
			continue;
		}
		i++;
		if (c >= 0x20 && c != '"' && c != '\\') {
			*o++ = c;
			continue;
		}
		*o++ = '\\';
		switch (c) {
		case '"': *o++ = '"'; break;
		case '\\': *o++ = '\\'; break;
		case '\b': *o++ = 'b'; break;
		case '\f': *o++ = 'f'; break;
		case '\n': *o++ = 'n'; break;
		case '\r': *o++ = 'r'; break;
		case '\t': *o++ = 't'; break;
		default:
			*o++ = 'u';
			*o++ = '0';
			*o++ = '0';
			*o++ = (uint8_t)HEX[c >> 4];
			*o++ = (uint8_t)HEX[c & 15];
		}
	}
	*o++ = '"';
	b->len = (size_t)(o - b->p);
	return true;
}

static bool put_slice(hdl_buf_t *b, hdl_slice_t s)
{
	return hdl_jw_string(b, s.p, s.len);
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static bool put_b64(hdl_buf_t *b, const uint8_t *p, size_t n)
{
	if (n > SIZE_MAX / 2 || !hdl_buf_reserve(b, (n + 2) / 3 * 4 + 2))
		return false;
	uint8_t *o = b->p + b->len;
	*o++ = '"';
	size_t i = 0;
	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		*o++ = (uint8_t)B64[v >> 18];
		*o++ = (uint8_t)B64[(v >> 12) & 63];
		*o++ = (uint8_t)B64[(v >> 6) & 63];
		*o++ = (uint8_t)B64[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;
		*o++ = (uint8_t)B64[v >> 18];
		*o++ = (uint8_t)B64[(v >> 12) & 63];
		*o++ = '=';
		*o++ = '=';
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		*o++ = (uint8_t)B64[v >> 18];
		*o++ = (uint8_t)B64[(v >> 12) & 63];
		*o++ = (uint8_t)B64[(v >> 6) & 63];
		*o++ = '=';
	}
	*o++ = '"';
	b->len = (size_t)(o - b->p);
	return true;
}

#define PUTS(b, s) hdl_buf_put((b), (s), sizeof(s) - 1)

/* ---- values -------------------------------------------------------------------------------- */

/* A value rendered through proto/json.c (the structured forms other than admin). */
static bool put_via_jansson(hdl_buf_t *b, const hdl_value_t *v)
{
	json_t *j = hdl_json_from_value(v);
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	bool ok = s != NULL && hdl_buf_puts(b, s);
	if (s == NULL)
		b->fail = true;
	free(s);
	return ok;
}

static bool put_data(hdl_buf_t *b, const hdl_value_t *v, hdl_vtype_t vt)
{
	if (vt == HDL_VT_ADMIN) {
		hdl_admin_t ad;
		if (hdl_admin_decode(v->data.p, v->data.len, &ad) == HDL_EOK &&
		    ad.perms <= HDL_ADM_ALL && hdl_utf8_valid(ad.handle.p, ad.handle.len)) {
			char bits[12];
			for (int i = 0; i < 12; i++)
				bits[i] = (ad.perms >> (11 - i)) & 1 ? '1' : '0';
			PUTS(b, "{\"format\":\"admin\",\"value\":{\"handle\":");
			put_slice(b, ad.handle);
			PUTS(b, ",\"index\":");
			put_i32(b, ad.index);
			PUTS(b, ",\"permissions\":\"");
			hdl_buf_put(b, bits, sizeof(bits));
			if (ad.legacy)
				PUTS(b, "\",\"legacyByteLength\":true}}");
			else
				PUTS(b, "\"}}");
			return !b->fail;
		}
	}
	if (!looks_binary(v->data.p, v->data.len)) {
		PUTS(b, "{\"format\":\"string\",\"value\":");
		put_slice(b, v->data);
	} else {
		PUTS(b, "{\"format\":\"base64\",\"value\":");
		put_b64(b, v->data.p, v->data.len);
	}
	return PUTS(b, "}");
}

/* The values of one record usually share one timestamp: remember the last one formatted. */
static _Thread_local struct {
	bool valid;
	uint32_t t;
	uint8_t text[22];
} last_time;

static bool put_time(hdl_buf_t *b, uint32_t t)
{
	if (!last_time.valid || last_time.t != t) {
		hdl_buf_t tmp = {last_time.text + 1, 0, 20, 20, false};
		hdl_buf_put_time(&tmp, t);
		last_time.text[0] = '"';
		last_time.text[21] = '"';
		last_time.t = t;
		last_time.valid = true;
	}
	return hdl_buf_put(b, last_time.text, sizeof(last_time.text));
}

/* hdl_vtype_of, skipping the table for the common types that do not start with "HS_". */
static hdl_vtype_t vtype(hdl_slice_t t)
{
	if (t.len < 3 || (t.p[0] | 0x20) != 'h' || (t.p[1] | 0x20) != 's' || t.p[2] != '_')
		return HDL_VT_OTHER;
	return hdl_vtype_of(t);
}

bool hdl_jw_value(hdl_buf_t *b, const hdl_value_t *v)
{
	hdl_vtype_t vt = vtype(v->type);
	switch (vt) {
	case HDL_VT_VLIST:
	case HDL_VT_SITE:
	case HDL_VT_PUBKEY: return put_via_jansson(b, v);
	default: break;
	}
	PUTS(b, "{\"index\":");
	put_i32(b, v->index);
	PUTS(b, ",\"type\":");
	put_slice(b, v->type);
	PUTS(b, ",\"data\":");
	put_data(b, v, vt);
	if ((v->perms & 0x0F) != HDL_PERM_DEFAULT) {
		char p[4] = {(v->perms & HDL_PERM_ADMIN_READ) ? '1' : '0',
		             (v->perms & HDL_PERM_ADMIN_WRITE) ? '1' : '0',
		             (v->perms & HDL_PERM_PUBLIC_READ) ? '1' : '0',
		             (v->perms & HDL_PERM_PUBLIC_WRITE) ? '1' : '0'};
		PUTS(b, ",\"permissions\":\"");
		hdl_buf_put(b, p, sizeof(p));
		PUTS(b, "\"");
	}
	PUTS(b, ",\"ttl\":");
	if (v->ttl_type == HDL_TTL_RELATIVE)
		put_i32(b, v->ttl);
	else
		put_time(b, v->ttl);
	if (v->timestamp != 0) {
		PUTS(b, ",\"timestamp\":");
		put_time(b, v->timestamp);
	}
	if (v->n_refs > 0) {
		PUTS(b, ",\"references\":[");
		for (uint32_t i = 0; i < v->n_refs; i++) {
			if (i)
				PUTS(b, ",");
			PUTS(b, "{\"handle\":");
			put_slice(b, v->refs[i].handle);
			PUTS(b, ",\"index\":");
			put_i32(b, v->refs[i].index);
			PUTS(b, "}");
		}
		PUTS(b, "]");
	}
	return PUTS(b, "}");
}

bool hdl_jw_values(hdl_buf_t *b, const hdl_value_t *v, uint32_t n)
{
	PUTS(b, "[");
	for (uint32_t i = 0; i < n; i++) {
		if (i)
			PUTS(b, ",");
		hdl_jw_value(b, &v[i]);
	}
	return PUTS(b, "]");
}

bool hdl_jw_resolution(hdl_buf_t *b, uint32_t rc, const uint8_t *handle, size_t hlen,
                       const hdl_value_t *v, uint32_t n)
{
	PUTS(b, "{\"responseCode\":");
	hdl_buf_putu(b, rc);
	PUTS(b, ",\"handle\":");
	hdl_jw_string(b, handle, hlen);
	PUTS(b, ",\"values\":");
	hdl_jw_values(b, v, n);
	return PUTS(b, "}");
}
