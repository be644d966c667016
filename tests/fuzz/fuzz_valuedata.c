/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Fuzz target: HS_ADMIN / HS_VLIST / HS_PUBKEY value data, chosen by the first input byte
 *        (mod 3). ADMIN and VLIST have one encoding, so re-encoding must reproduce the input; an
 *        HS_PUBKEY re-encodes to a canonical form that must decode to the same key. Every input is
 *        also put through the REST JSON form as a value of that type, which must parse back to the
 *        exact data bytes (structured formats are only used when lossless).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hdl/error.h"
#include "hdl/values.h"
#include "proto/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same(hdl_slice_t x, hdl_slice_t y)
{
	return x.len == y.len && (x.len == 0 || memcmp(x.p, y.p, x.len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *types[] = {"HS_ADMIN", "HS_VLIST", "HS_PUBKEY"};
	uint8_t stack[4096];
	hdl_arena_t a;
	if (size < 1)
		return 0;
	unsigned which = data[0] % 3;
	const uint8_t *p = data + 1;
	size_t n = size - 1;
	size_t cap = n + 64, len = 0, len2 = 0;
	uint8_t *out = malloc(cap), *out2 = malloc(cap);
	hdl_arena_init(&a, stack, sizeof(stack), 16u << 20);
	if (out == NULL || out2 == NULL)
		goto done;
	if (which == 0) {
		hdl_admin_t ad;
		if (hdl_admin_decode(p, n, &ad) == HDL_EOK &&
		    (hdl_admin_encode(&ad, out, cap, &len) != HDL_EOK || len != n || memcmp(out, p, n)))
			abort();
	} else if (which == 1) {
		hdl_ref_t *r;
		uint32_t cnt;
		if (hdl_vlist_decode(p, n, &a, &r, &cnt) == HDL_EOK &&
		    (hdl_vlist_encode(r, cnt, out, cap, &len) != HDL_EOK || len != n || memcmp(out, p, n)))
			abort();
	} else {
		hdl_pubkey_t k, k2;
		if (hdl_pubkey_decode(p, n, &k) == HDL_EOK) {
			if (hdl_pubkey_encode(&k, out, cap, &len) != HDL_EOK ||
			    hdl_pubkey_decode(out, len, &k2) != HDL_EOK || k.kind != k2.kind ||
			    k.flags != k2.flags || !same(k.key_type, k2.key_type) || !same(k.e, k2.e) ||
			    !same(k.n, k2.n) || !same(k.q, k2.q) || !same(k.p, k2.p) || !same(k.g, k2.g) ||
			    !same(k.y, k2.y) || !same(k.pem, k2.pem) ||
			    hdl_pubkey_encode(&k2, out2, cap, &len2) != HDL_EOK || len2 != len ||
			    memcmp(out, out2, len))
				abort();
		}
	}
	hdl_value_t v = {.type = {(const uint8_t *)types[which], (uint32_t)strlen(types[which])},
	                 .data = {p, (uint32_t)n}};
	hdl_value_t back;
	json_t *j = hdl_json_from_value(&v);
	if (j != NULL) {
		if (hdl_json_to_value(j, &a, &back, NULL, 0) != HDL_EOK || back.data.len != n ||
		    (n && memcmp(back.data.p, p, n) != 0))
			abort();
		json_decref(j);
	}
done:
	free(out);
	free(out2);
	hdl_arena_free(&a);
	return 0;
}
