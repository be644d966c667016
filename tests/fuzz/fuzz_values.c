/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Fuzz target: U32 count + handle values through hdl_values_decode. The value encoding has
 *        one form only and the decoder must consume the input exactly, so re-encoding what decoded
 *        must give back the input byte for byte, and hdl_value_size must add up to it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hdl/error.h"
#include "hdl/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t stack[4096];
	hdl_arena_t a;
	hdl_value_t *v = NULL;
	uint32_t n = 0;
	uint8_t *out = NULL;
	size_t outlen = 0;

	hdl_arena_init(&a, stack, sizeof(stack), 8u << 20);
	if (hdl_values_decode(data, size, &a, &v, &n) != HDL_EOK)
		goto out;
	if (n > HDL_MAX_VALUES || (n && v == NULL))
		abort();
	size_t total = 4;
	for (uint32_t i = 0; i < n; i++)
		total += hdl_value_size(&v[i]);
	if (total != size)
		abort();
	out = malloc(size);
	if (out == NULL)
		goto out;
	if (hdl_values_encode(v, n, out, size, &outlen) != HDL_EOK || outlen != size ||
	    memcmp(out, data, size) != 0)
		abort();
	/* one byte less must not fit */
	if (hdl_values_encode(v, n, out, size - 1, &outlen) != HDL_ESPACE)
		abort();
out:
	free(out);
	hdl_arena_free(&a);
	return 0;
}
