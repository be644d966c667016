/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Fuzz target: the import fast path (store_jsonl_fast) against the general parser
 *        (jansson + hdl_json_to_values). Whatever the fast path accepts, the general parser must
 *        accept too, with the same handle and byte-identical encoded values; anything else the
 *        fast path must decline with HDL_EAGAIN (or HDL_ENOMEM), never crash.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hdl/error.h"
#include "node/store/jsonl.h"
#include "proto/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t enc1[HDL_MAX_MESSAGE_LEN], enc2[HDL_MAX_MESSAGE_LEN];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t abuf[8192], bbuf[8192];
	hdl_arena_t a, b;
	hdl_arena_init(&a, abuf, sizeof(abuf), 4u << 20);
	hdl_arena_init(&b, bbuf, sizeof(bbuf), 4u << 20);
	hdl_slice_t h = {NULL, 0};
	hdl_value_t *v1 = NULL, *v2 = NULL;
	uint32_t n1 = 0, n2 = 0;

	int frc = store_jsonl_fast(data, size, &a, &h, &v1, &n1);
	if (frc != HDL_EOK && frc != HDL_EAGAIN && frc != HDL_ENOMEM)
		abort();
	if (frc == HDL_EOK) {
		json_t *root = json_loadb((const char *)data, size, 0, NULL);
		if (root == NULL)
			abort(); /* fast path accepted what is not JSON */
		json_t *jh = json_object_get(root, "handle");
		json_t *jv = json_object_get(root, "values");
		if (!json_is_string(jh) || !json_is_array(jv))
			abort();
		if (json_string_length(jh) != h.len || memcmp(json_string_value(jh), h.p, h.len) != 0)
			abort();
		if (hdl_json_to_values(jv, &b, &v2, &n2, NULL, 0) != HDL_EOK)
			abort();
		size_t l1 = 0, l2 = 0;
		int e1 = hdl_values_encode(v1, n1, enc1, sizeof(enc1), &l1);
		int e2 = hdl_values_encode(v2, n2, enc2, sizeof(enc2), &l2);
		if (e1 != e2 || l1 != l2 || (l1 && memcmp(enc1, enc2, l1) != 0))
			abort();
		json_decref(root);
	}
	hdl_arena_free(&a);
	hdl_arena_free(&b);
	return 0;
}
