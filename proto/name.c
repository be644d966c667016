/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Handle names: UTF-8 validation, prefix/suffix split, storage normalization.
 *
 * Rules (Handle.Net 9 Util): everything before the first '/' is the prefix; a slash-less name X
 * means "0.NA/X"; prefixes are ASCII case-insensitive (a-z only; bytes >= 0x80 untouched);
 * suffixes too unless the node is case-sensitive; global "0.*" handles are folded entirely.
 */
#include <string.h>

#include "hdl/error.h"
#include "hdl/msg.h"

static const uint8_t ZERO_NA[] = "0.NA";

size_t hdl_utf8_seq(const uint8_t *p, size_t n)
{
	if (n == 0)
		return 0;
	uint8_t c = p[0];
	if (c < 0x80)
		return 1;
	size_t len;
	uint32_t cp;
	if (c >= 0xC2 && c <= 0xDF) {
		len = 2;
		cp = c & 0x1Fu;
	} else if (c >= 0xE0 && c <= 0xEF) {
		len = 3;
		cp = c & 0x0Fu;
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4;
		cp = c & 0x07u;
	} else {
		return 0; /* continuation byte, overlong lead C0/C1, or > U+10FFFF */
	}
	if (n < len)
		return 0;
	for (size_t k = 1; k < len; k++) {
		if ((p[k] & 0xC0) != 0x80)
			return 0;
		cp = cp << 6 | (p[k] & 0x3Fu);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
	    (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return len;
}

bool hdl_utf8_valid(const uint8_t *p, size_t len)
{
	size_t i = 0;
	while (i < len) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		size_t k = hdl_utf8_seq(p + i, len - i);
		if (k == 0)
			return false;
		i += k;
	}
	return true;
}

int hdl_name_check(const uint8_t *p, size_t len)
{
	if (len == 0 || len > HDL_MAX_HANDLE_LEN)
		return HDL_ENAME;
	for (size_t i = 0; i < len; i++) {
		if (p[i] < 0x20 || p[i] == 0x7F)
			return HDL_ENAME;
	}
	if (!hdl_utf8_valid(p, len))
		return HDL_EUTF8;
	return HDL_EOK;
}

void hdl_name_split(hdl_slice_t name, hdl_slice_t *prefix, hdl_slice_t *suffix)
{
	const uint8_t *slash = name.len ? memchr(name.p, '/', name.len) : NULL;
	if (slash == NULL) {
		prefix->p = ZERO_NA;
		prefix->len = 4;
		*suffix = name;
		return;
	}
	prefix->p = name.p;
	prefix->len = (uint32_t)(slash - name.p);
	suffix->p = slash + 1;
	suffix->len = name.len - prefix->len - 1;
}

static uint8_t upper(uint8_t c)
{
	return (c >= 'a' && c <= 'z') ? (uint8_t)(c - 32) : c;
}

static bool is_global_prefix(hdl_slice_t prefix)
{
	/* "0" or "0.<anything>" */
	return prefix.len >= 1 && prefix.p[0] == '0' && (prefix.len == 1 || prefix.p[1] == '.');
}

size_t hdl_name_normalize(hdl_slice_t name, bool case_sensitive, uint8_t *out, size_t cap)
{
	const uint8_t *slash = name.len ? memchr(name.p, '/', name.len) : NULL;
	size_t pos = 0;
	hdl_slice_t prefix, suffix;

	if (slash == NULL) {
		if (cap < 5 + (size_t)name.len)
			return 0;
		memcpy(out, "0.NA/", 5);
		pos = 5;
		for (uint32_t i = 0; i < name.len; i++)
			out[pos++] = upper(name.p[i]);
		return pos;
	}
	if (cap < name.len)
		return 0;
	hdl_name_split(name, &prefix, &suffix);
	bool fold_suffix = !case_sensitive || is_global_prefix(prefix);
	for (uint32_t i = 0; i < prefix.len; i++)
		out[pos++] = upper(prefix.p[i]);
	out[pos++] = '/';
	for (uint32_t i = 0; i < suffix.len; i++)
		out[pos++] = fold_suffix ? upper(suffix.p[i]) : suffix.p[i];
	return pos;
}

hdl_slice_t hdl_name_authority(hdl_slice_t name)
{
	hdl_slice_t prefix, suffix;
	hdl_name_split(name, &prefix, &suffix);
	hdl_slice_t zna = {ZERO_NA, 4};
	if (hdl_slice_eq_nocase(prefix, zna))
		return suffix;
	return prefix;
}
