/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Fuzz target (differential): handle values decoded by hdl_values_decode, rendered by the
 *        direct writer (proto/json_write.c) and by jansson (hdl_json_from_values + json_dumps
 *        JSON_COMPACT); the two texts must be identical, and so must the resolution objects
 *        when the first value's type is used as the handle.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hdl/error.h"
#include "hdl/msg.h"
#include "proto/json.h"
#include "proto/json_write.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t stack[4096];
	hdl_arena_t a;
	hdl_value_t *v = NULL;
	uint32_t n = 0;
	hdl_buf_t b;

	hdl_arena_init(&a, stack, sizeof(stack), 8u << 20);
	hdl_buf_init(&b, 0);
	if (hdl_values_decode(data, size, &a, &v, &n) != HDL_EOK)
		goto out;
	json_t *j = hdl_json_from_values(v, n);
	char *want = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (want == NULL)
		goto out; /* allocation failure only */
	bool ok = hdl_jw_values(&b, v, n);
	if (!ok || b.len != strlen(want) || memcmp(b.p, want, b.len) != 0)
		abort();
	free(want);

	if (n > 0 && hdl_utf8_valid(v[0].type.p, v[0].type.len) &&
	    memchr(v[0].type.p, 0, v[0].type.len) == NULL) {
		char *h = malloc(v[0].type.len + 1u);
		if (h == NULL)
			goto out;
		memcpy(h, v[0].type.p, v[0].type.len);
		h[v[0].type.len] = '\0';
		json_t *o = json_object();
		json_object_set_new(o, "responseCode", json_integer(HDL_RC_SUCCESS));
		json_object_set_new(o, "handle", json_string(h));
		json_object_set_new(o, "values", hdl_json_from_values(v, n));
		want = json_dumps(o, JSON_COMPACT);
		json_decref(o);
		if (want) {
			b.len = 0;
			if (!hdl_jw_resolution(&b, HDL_RC_SUCCESS, (const uint8_t *)h, strlen(h), v, n) ||
			    b.len != strlen(want) || memcmp(b.p, want, b.len) != 0)
				abort();
			free(want);
		}
		free(h);
	}
out:
	hdl_buf_free(&b);
	hdl_arena_free(&a);
	return 0;
}
