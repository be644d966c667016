/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Fast-path parser of one import record (see jsonl.h). Any shape it does not know ends in
 *        HDL_EAGAIN ("ask the general parser"); it never reports an error itself.
 */
#include <string.h>

#include "hdl/error.h"
#include "hdl/msg.h"
#include "hdl/values.h"
#include "node/store/jsonl.h"
#include "proto/json.h"

#define FAST_DEFAULT_TTL 86400u

typedef struct jp {
	const uint8_t *p;
	const uint8_t *end;
} jp_t;

static void ws(jp_t *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\r' || *j->p == '\n'))
		j->p++;
}

/** Skip whitespace and consume \p c. */
static bool eat(jp_t *j, uint8_t c)
{
	ws(j);
	if (j->p < j->end && *j->p == c) {
		j->p++;
		return true;
	}
	return false;
}

static bool peek(jp_t *j, uint8_t c)
{
	ws(j);
	return j->p < j->end && *j->p == c;
}

/** A string without escapes or control characters, valid UTF-8; borrows from the line. */
static bool str(jp_t *j, hdl_slice_t *out)
{
	if (!eat(j, '"'))
		return false;
	const uint8_t *s = j->p;
	const uint8_t *e = j->end;
	const uint8_t *p = s;
	uint8_t high = 0;
	while (p < e) {
		uint8_t c = *p;
		if (c == '"')
			break;
		if (c == '\\' || c < 0x20)
			return false;
		high |= c;
		p++;
	}
	if (p == e)
		return false;
	size_t n = (size_t)(p - s);
	j->p = p + 1;
	if (n > HDL_MAX_ARRAY_LEN)
		return false;
	if ((high & 0x80) && !hdl_utf8_valid(s, n))
		return false; /* only non-ASCII strings need the UTF-8 check */
	out->p = s;
	out->len = (uint32_t)n;
	return true;
}

/** A non-negative integer <= UINT32_MAX in plain form (no sign, fraction, exponent). */
static bool u32(jp_t *j, uint32_t *out)
{
	ws(j);
	const uint8_t *s = j->p;
	uint64_t v = 0;
	while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
		v = v * 10 + (uint64_t)(*j->p - '0');
		if (v > UINT32_MAX)
			return false;
		j->p++;
	}
	size_t n = (size_t)(j->p - s);
	if (n == 0 || (n > 1 && s[0] == '0'))
		return false;
	if (j->p < j->end && (*j->p == '.' || *j->p == 'e' || *j->p == 'E'))
		return false;
	*out = (uint32_t)v;
	return true;
}

static bool key_is(hdl_slice_t k, const char *lit)
{
	size_t n = strlen(lit);
	return k.len == n && memcmp(k.p, lit, n) == 0;
}

/** {"handle":"...","index":N,"permissions":"0101..."} -> HS_ADMIN bytes in the arena. */
static int admin(jp_t *j, hdl_arena_t *a, hdl_slice_t *data)
{
	hdl_admin_t ad;
	hdl_slice_t k, perms = {NULL, 0};
	unsigned seen = 0;
	memset(&ad, 0, sizeof(ad));
	if (!eat(j, '{'))
		return HDL_EAGAIN;
	do {
		unsigned bit;
		if (!str(j, &k) || !eat(j, ':'))
			return HDL_EAGAIN;
		if (key_is(k, "handle")) {
			bit = 1;
			if (!str(j, &ad.handle) || ad.handle.len > HDL_MAX_HANDLE_LEN)
				return HDL_EAGAIN;
		} else if (key_is(k, "index")) {
			bit = 2;
			if (!u32(j, &ad.index))
				return HDL_EAGAIN;
		} else if (key_is(k, "permissions")) {
			bit = 4;
			if (!str(j, &perms))
				return HDL_EAGAIN;
		} else {
			return HDL_EAGAIN;
		}
		if (seen & bit)
			return HDL_EAGAIN;
		seen |= bit;
	} while (eat(j, ','));
	if (!eat(j, '}') || (seen & 3) != 3)
		return HDL_EAGAIN;
	if (perms.len == 1 && perms.p[0] == '*') {
		ad.perms = HDL_ADM_ALL;
	} else {
		/* MSB first, right-aligned: character len-1-i is bit i; only the last 12 count */
		for (uint32_t i = 0; i < 12 && i < perms.len; i++)
			if (perms.p[perms.len - 1 - i] == '1')
				ad.perms |= (uint16_t)(1u << i);
	}
	size_t cap = 12u + ad.handle.len, len = 0;
	uint8_t *buf = hdl_arena_alloc(a, cap);
	if (buf == NULL)
		return HDL_ENOMEM;
	if (hdl_admin_encode(&ad, buf, cap, &len) != HDL_EOK)
		return HDL_EAGAIN;
	data->p = buf;
	data->len = (uint32_t)len;
	return HDL_EOK;
}

/** "data": a bare string, or {"format":"string"|"admin","value":...} with format first. */
static int data(jp_t *j, hdl_arena_t *a, hdl_slice_t *out)
{
	hdl_slice_t k, fmt;
	if (peek(j, '"'))
		return str(j, out) ? HDL_EOK : HDL_EAGAIN;
	if (!eat(j, '{') || !str(j, &k) || !key_is(k, "format") || !eat(j, ':') || !str(j, &fmt) ||
	    !eat(j, ',') || !str(j, &k) || !key_is(k, "value") || !eat(j, ':'))
		return HDL_EAGAIN;
	int ret;
	if (key_is(fmt, "string"))
		ret = str(j, out) ? HDL_EOK : HDL_EAGAIN;
	else if (key_is(fmt, "admin"))
		ret = admin(j, a, out);
	else
		ret = HDL_EAGAIN;
	if (ret != HDL_EOK)
		return ret;
	return eat(j, '}') ? HDL_EOK : HDL_EAGAIN;
}

static int value(jp_t *j, hdl_arena_t *a, hdl_value_t *v)
{
	hdl_slice_t k, s;
	unsigned seen = 0;
	memset(v, 0, sizeof(*v));
	v->ttl = FAST_DEFAULT_TTL;
	v->perms = HDL_PERM_DEFAULT;
	if (!eat(j, '{'))
		return HDL_EAGAIN;
	do {
		unsigned bit;
		int ret;
		if (!str(j, &k) || !eat(j, ':'))
			return HDL_EAGAIN;
		if (key_is(k, "index")) {
			bit = 1;
			if (!u32(j, &v->index))
				return HDL_EAGAIN;
		} else if (key_is(k, "type")) {
			bit = 2;
			if (!str(j, &v->type) || v->type.len > HDL_MAX_TYPE_LEN)
				return HDL_EAGAIN;
		} else if (key_is(k, "data")) {
			bit = 4;
			if ((ret = data(j, a, &v->data)) != HDL_EOK)
				return ret;
		} else if (key_is(k, "ttl")) {
			bit = 8;
			if (!u32(j, &v->ttl))
				return HDL_EAGAIN;
		} else if (key_is(k, "timestamp")) {
			bit = 16;
			if (peek(j, '"')) {
				char t[40];
				if (!str(j, &s) || s.len >= sizeof(t))
					return HDL_EAGAIN;
				memcpy(t, s.p, s.len);
				t[s.len] = '\0';
				if (hdl_json_parse_time(t, &v->timestamp) != HDL_EOK)
					return HDL_EAGAIN;
			} else if (!u32(j, &v->timestamp)) {
				return HDL_EAGAIN;
			}
		} else if (key_is(k, "permissions")) {
			bit = 32;
			if (!str(j, &s))
				return HDL_EAGAIN;
			if (s.len == 1 && s.p[0] == '*') {
				v->perms = 0x0F;
			} else {
				for (uint32_t i = 0; i < 4 && i < s.len; i++) {
					uint8_t b = (uint8_t)(1u << i);
					if (s.p[s.len - 1 - i] == '1')
						v->perms |= b;
					else
						v->perms &= (uint8_t)~b;
				}
			}
		} else {
			return HDL_EAGAIN;
		}
		if (seen & bit)
			return HDL_EAGAIN;
		seen |= bit;
	} while (eat(j, ','));
	if (!eat(j, '}') || (seen & 7) != 7)
		return HDL_EAGAIN;
	return HDL_EOK;
}

int store_jsonl_fast(const uint8_t *line, size_t len, hdl_arena_t *a, hdl_slice_t *handle,
                     hdl_value_t **vals, uint32_t *n)
{
	jp_t j = {line, line + len};
	hdl_slice_t k;
	unsigned seen = 0;
	hdl_value_t *arr = NULL;
	uint32_t cnt = 0, cap = 0;
	*vals = NULL;
	*n = 0;
	handle->p = NULL;
	handle->len = 0;
	if (!eat(&j, '{'))
		return HDL_EAGAIN;
	do {
		if (!str(&j, &k) || !eat(&j, ':'))
			return HDL_EAGAIN;
		if (key_is(k, "handle")) {
			if ((seen & 1) || !str(&j, handle))
				return HDL_EAGAIN;
			seen |= 1;
		} else if (key_is(k, "values")) {
			if ((seen & 2) || !eat(&j, '['))
				return HDL_EAGAIN;
			seen |= 2;
			if (!eat(&j, ']')) {
				do {
					if (cnt == cap) {
						uint32_t ncap = cap ? cap * 2 : 16;
						if (ncap > HDL_MAX_VALUES)
							ncap = HDL_MAX_VALUES;
						if (cnt == ncap)
							return HDL_EAGAIN; /* over the limit: let the slow path say so */
						hdl_value_t *na = hdl_arena_alloc(a, ncap * sizeof(*na));
						if (na == NULL)
							return HDL_ENOMEM;
						if (cnt)
							memcpy(na, arr, cnt * sizeof(*na));
						arr = na;
						cap = ncap;
					}
					int ret = value(&j, a, &arr[cnt]);
					if (ret != HDL_EOK)
						return ret;
					cnt++;
				} while (eat(&j, ','));
				if (!eat(&j, ']'))
					return HDL_EAGAIN;
			}
		} else {
			return HDL_EAGAIN;
		}
	} while (eat(&j, ','));
	if (!eat(&j, '}') || seen != 3)
		return HDL_EAGAIN;
	ws(&j);
	if (j.p != j.end)
		return HDL_EAGAIN;
	*vals = arr;
	*n = cnt;
	return HDL_EOK;
}
