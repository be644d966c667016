/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Fuzz target: bytes parsed as JSON (jansson), then read as REST handle values and as an
 *        HS_SITE object. Whatever parses is re-emitted and parsed again: the second JSON must equal
 *        the first and the values must match field by field; a parsed site must encode, decode and
 *        re-encode to the same bytes, and survive its own JSON form unchanged.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hdl/error.h"
#include "proto/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same(hdl_slice_t x, hdl_slice_t y)
{
	return x.len == y.len && (x.len == 0 || memcmp(x.p, y.p, x.len) == 0);
}

/** Encode a site into a fresh buffer; NULL when it doesn't encode. */
static uint8_t *site_bytes(const hdl_site_t *s, size_t *len)
{
	for (size_t cap = 4096; cap <= (64u << 20); cap *= 4) {
		uint8_t *buf = malloc(cap);
		if (buf == NULL)
			return NULL;
		int rc = hdl_site_encode(s, buf, cap, len);
		if (rc == HDL_EOK)
			return buf;
		free(buf);
		if (rc != HDL_ESPACE)
			return NULL;
	}
	return NULL;
}

static void check_values(const json_t *in, hdl_arena_t *a)
{
	hdl_value_t *v1, *v2;
	uint32_t n1, n2;
	if (hdl_json_to_values(in, a, &v1, &n1, NULL, 0) != HDL_EOK)
		return;
	json_t *j1 = hdl_json_from_values(v1, n1);
	if (j1 == NULL)
		abort();
	if (hdl_json_to_values(j1, a, &v2, &n2, NULL, 0) != HDL_EOK || n1 != n2)
		abort();
	json_t *j2 = hdl_json_from_values(v2, n2);
	if (j2 == NULL || !json_equal(j1, j2))
		abort();
	for (uint32_t i = 0; i < n1; i++) {
		if (v1[i].index != v2[i].index || v1[i].ttl != v2[i].ttl ||
		    v1[i].ttl_type != v2[i].ttl_type || v1[i].timestamp != v2[i].timestamp ||
		    v1[i].perms != v2[i].perms || !same(v1[i].type, v2[i].type) ||
		    !same(v1[i].data, v2[i].data) || v1[i].n_refs != v2[i].n_refs)
			abort();
		for (uint32_t k = 0; k < v1[i].n_refs; k++) {
			if (!same(v1[i].refs[k].handle, v2[i].refs[k].handle) ||
			    v1[i].refs[k].index != v2[i].refs[k].index)
				abort();
		}
	}
	json_decref(j1);
	json_decref(j2);
}

static void check_site(const json_t *in, hdl_arena_t *a)
{
	hdl_site_t s, s2, s3;
	size_t len = 0, len2 = 0, len3 = 0;
	uint8_t *b1 = NULL, *b2 = NULL, *b3 = NULL;
	json_t *j = NULL;
	if (hdl_json_to_site(in, a, &s, NULL, 0) != HDL_EOK)
		return;
	if ((b1 = site_bytes(&s, &len)) == NULL)
		goto done; /* too big for the wire form: nothing more to compare */
	if (hdl_site_decode(b1, len, a, &s2) != HDL_EOK || (b2 = site_bytes(&s2, &len2)) == NULL ||
	    len2 != len || memcmp(b1, b2, len) != 0)
		abort();
	if ((j = hdl_json_from_site(&s2)) == NULL || hdl_json_to_site(j, a, &s3, NULL, 0) != HDL_EOK ||
	    (b3 = site_bytes(&s3, &len3)) == NULL || len3 != len || memcmp(b1, b3, len) != 0)
		abort();
done:
	json_decref(j);
	free(b1);
	free(b2);
	free(b3);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t stack[8192];
	hdl_arena_t a;
	json_error_t e;
	json_t *in = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
	if (in == NULL)
		return 0;
	hdl_arena_init(&a, stack, sizeof(stack), 64u << 20);
	check_values(in, &a);
	hdl_arena_reset(&a);
	check_site(in, &a);
	hdl_arena_free(&a);
	json_decref(in);
	return 0;
}
