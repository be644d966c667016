/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Fuzz target: handle names (proto/name.c).
 *
 * Input: byte 0 bit 0 = case-sensitive suffixes, the rest is the name. Invariants checked:
 * hdl_name_check returns only EOK / ENAME / EUTF8 and agrees with hdl_utf8_valid; split gives
 * pieces of the name (or "0.NA" + the name when slash-less); normalize is bounded by len + 5,
 * never writes past cap, refuses a short buffer, is idempotent, keeps the split structure, and
 * folds exactly ASCII a-z; the authority is a piece of the name.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hdl/error.h"
#include "hdl/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_IN 8192

static bool inside(hdl_slice_t part, hdl_slice_t whole)
{
	if (part.len == 0)
		return true;
	return part.p >= whole.p && part.len <= whole.len &&
	       (size_t)(part.p - whole.p) <= whole.len - part.len;
}

static uint8_t up(uint8_t c)
{
	return (c >= 'a' && c <= 'z') ? (uint8_t)(c - 32) : c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t n1[MAX_IN + 16], n2[MAX_IN + 16], upper_in[MAX_IN];
	if (size < 1 || size - 1 > MAX_IN)
		return 0;
	bool cs = data[0] & 1;
	hdl_slice_t name = {data + 1, (uint32_t)(size - 1)};

	/* check */
	int rc = hdl_name_check(name.p, name.len);
	bool utf8 = hdl_utf8_valid(name.p, name.len);
	if (rc != HDL_EOK && rc != HDL_ENAME && rc != HDL_EUTF8)
		abort();
	if (rc == HDL_EOK && (!utf8 || name.len == 0 || name.len > HDL_MAX_HANDLE_LEN))
		abort();
	if (rc == HDL_EUTF8 && utf8)
		abort();
	if (!utf8 && rc == HDL_EOK)
		abort();

	/* split */
	hdl_slice_t prefix, suffix;
	hdl_name_split(name, &prefix, &suffix);
	const uint8_t *slash = name.len ? memchr(name.p, '/', name.len) : NULL;
	if (slash) {
		if (prefix.p != name.p || prefix.len != (uint32_t)(slash - name.p) ||
		    suffix.p != slash + 1 || prefix.len + 1 + suffix.len != name.len)
			abort();
		if (memchr(prefix.p, '/', prefix.len) != NULL)
			abort();
	} else {
		if (prefix.len != 4 || memcmp(prefix.p, "0.NA", 4) != 0 || suffix.p != name.p ||
		    suffix.len != name.len)
			abort();
	}

	/* normalize: bounded, exact-fit, idempotent, case folding of ASCII letters only */
	/* canary bytes after the room given: nothing may be written there */
	size_t want = slash ? name.len : (size_t)name.len + 5;
	memset(n1, 0xA5, want + 16);
	size_t l1 = hdl_name_normalize(name, cs, n1, want + 8);
	if (l1 != want)
		abort();
	for (size_t i = l1; i < want + 16; i++)
		if (n1[i] != 0xA5)
			abort();
	if (want > 0) {
		memset(n2, 0xA5, want + 16);
		if (hdl_name_normalize(name, cs, n2, want - 1) != 0)
			abort();
		for (size_t i = 0; i < want + 16; i++)
			if (n2[i] != 0xA5)
				abort(); /* a refused normalization writes nothing */
	}
	for (size_t i = 0; i < l1; i++) {
		uint8_t c = slash ? name.p[i] : (i < 5 ? (uint8_t)"0.NA/"[i] : name.p[i - 5]);
		if (n1[i] != c && n1[i] != up(c))
			abort();
	}
	hdl_slice_t norm = {n1, (uint32_t)l1};
	size_t l2 = hdl_name_normalize(norm, cs, n2, sizeof(n2));
	if (l2 != l1 || memcmp(n1, n2, l1) != 0)
		abort();
	hdl_slice_t np, ns;
	hdl_name_split(norm, &np, &ns);
	for (uint32_t i = 0; i < np.len; i++)
		if (np.p[i] >= 'a' && np.p[i] <= 'z')
			abort(); /* the prefix is always folded */
	if (!cs && name.len <= MAX_IN) {
		/* case-insensitive keys: the ASCII upper-cased name has the same key */
		for (uint32_t i = 0; i < name.len; i++)
			upper_in[i] = up(name.p[i]);
		hdl_slice_t un = {upper_in, name.len};
		size_t l3 = hdl_name_normalize(un, cs, n2, sizeof(n2));
		if (l3 != l1 || memcmp(n1, n2, l1) != 0)
			abort();
	}
	if (rc == HDL_EOK && hdl_name_check(n1, l1) != (l1 > HDL_MAX_HANDLE_LEN ? HDL_ENAME : HDL_EOK))
		abort(); /* folding ASCII keeps a valid name valid */

	/* authority: the suffix of a 0.NA/ handle, else the prefix; always a piece of the name */
	hdl_slice_t auth = hdl_name_authority(name);
	if (slash) {
		if (!inside(auth, name))
			abort();
	} else if (auth.p != name.p || auth.len != name.len) {
		abort();
	}
	return 0;
}
