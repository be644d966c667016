/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Fuzz target: HS_SITE records through hdl_site_decode. The decoder must consume the input
 *        exactly, so re-encoding must give the input back byte for byte. The record is also put
 *        through the server hash and the REST JSON form, which must parse back and, as a value,
 *        give the same bytes (the "site" format is only used when it is lossless).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hdl/error.h"
#include "hdl/values.h"
#include "proto/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t stack[4096];
	hdl_arena_t a;
	hdl_site_t s, s2;
	uint8_t *out = NULL;
	size_t len = 0;
	json_t *j = NULL;
	hdl_arena_init(&a, stack, sizeof(stack), 16u << 20);
	if (hdl_site_decode(data, size, &a, &s) != HDL_EOK)
		goto done;
	if ((out = malloc(size)) == NULL)
		goto done;
	if (hdl_site_encode(&s, out, size, &len) != HDL_EOK || len != size || memcmp(out, data, size))
		abort();
	hdl_slice_t h = {data, (uint32_t)(size < 64 ? size : 64)};
	if (s.n_servers > 0 && hdl_site_server_for(&s, h) >= s.n_servers)
		abort();
	if ((j = hdl_json_from_site(&s)) != NULL && hdl_json_to_site(j, &a, &s2, NULL, 0) != HDL_EOK)
		abort();
	json_decref(j);
	/* as an HS_SITE value: JSON -> value must give back the exact data */
	hdl_value_t v = {.type = {(const uint8_t *)"HS_SITE", 7}, .data = {data, (uint32_t)size}};
	hdl_value_t back;
	if ((j = hdl_json_from_value(&v)) != NULL) {
		if (hdl_json_to_value(j, &a, &back, NULL, 0) != HDL_EOK || back.data.len != size ||
		    memcmp(back.data.p, data, size) != 0)
			abort();
		json_decref(j);
	}
done:
	free(out);
	hdl_arena_free(&a);
	return 0;
}
