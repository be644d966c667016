/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Fuzz target: upstream answers through the resolver cache (node/resolver/dcache.c). The
 *        first byte picks the response code and the PO flag, the rest is a values part given
 *        to dcache_put(). Whatever is stored must come back from dcache_get() as a values part
 *        the cache accepts again, and, when the input decodes strictly (hdl_values_decode()),
 *        one that decodes too and holds exactly the PUBLIC_READ values of the input, in order. The
 * input is also parsed as a key (dcache_key_handle, dcache_key_describe), which must never read out
 * of bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hdl/error.h"
#include "hdl/msg.h"
#include "node/resolver/dcache.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t fz_ms(void *arg)
{
	return 1000;
}

static int64_t fz_wall(void *arg)
{
	return 1700000000;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const dcache_clock_t clk = {fz_ms, fz_wall, NULL};
	static uint8_t buf[HDL_MAX_MESSAGE_LEN];
	uint8_t key[128];
	uint8_t stack[4096];
	hdl_arena_t a;
	hdl_value_t *in = NULL, *out = NULL;
	uint32_t n_in = 0, n_out = 0;
	dcache_t *c = NULL;
	hdl_slice_t h;
	char text[256];

	/* the raw input as a key */
	if (dcache_key_handle(data, size, &h) &&
	    (h.len == 0 || h.p < data || h.p + h.len > data + size))
		abort();
	(void)dcache_key_describe(data, size, text, sizeof(text));
	if (size < 1)
		return 0;

	static const uint32_t rcodes[4] = {HDL_RC_SUCCESS, HDL_RC_HANDLE_NOT_FOUND,
	                                   HDL_RC_VALUES_NOT_FOUND, HDL_RC_ERROR};
	uint32_t rcode = rcodes[data[0] & 3];
	dcache_opts_t o = {.max_bytes = 8u << 20,
	                   .shards = 1,
	                   .clock = &clk,
	                   .policy = {.min_ttl = 1, .max_ttl = 3600, .negative_ttl = 60}};
	if (dcache_new(&o, &c) != HDL_EOK)
		return 0;
	hdl_arena_init(&a, stack, sizeof(stack), 64u << 20);
	size_t kl = dcache_key(key, sizeof(key), hdl_slice_str("88.100.9/FUZZ"), NULL, 0, NULL, 0,
	                       (data[0] & 4) != 0);
	int ret = dcache_put(c, key, kl, rcode, data + 1, size - 1);
	if (rcode == HDL_RC_ERROR && ret != HDL_EINVAL)
		abort();
	dcache_hit_t hit;
	int got = dcache_get(c, key, kl, DCACHE_GET_FRESH, buf, sizeof(buf), &hit);
	if ((ret == HDL_EOK) != (got == HDL_EOK))
		abort();
	if (got != HDL_EOK)
		goto done;
	if (hit.rcode != HDL_RC_SUCCESS) {
		if (hit.len != 0 || hit.n_values != 0)
			abort();
		goto done;
	}
	/* what comes out is a values part the cache takes back as it is */
	if (dcache_put(c, key, kl, HDL_RC_SUCCESS, buf, hit.len) != HDL_EOK)
		abort();
	if (hdl_values_decode(data + 1, size - 1, &a, &in, &n_in) != HDL_EOK)
		goto done; /* structurally sound but not strictly valid (UTF-8): checked no further
		            */
	/* a strictly valid input: the output is exactly its PUBLIC_READ values, in order */
	if (hdl_values_decode(buf, hit.len, &a, &out, &n_out) != HDL_EOK || n_out != hit.n_values)
		abort();
	uint32_t j = 0;
	for (uint32_t i = 0; i < n_in; i++) {
		if (!(in[i].perms & HDL_PERM_PUBLIC_READ))
			continue;
		if (j >= n_out || in[i].index != out[j].index || out[j].perms != in[i].perms ||
		    !hdl_slice_eq(in[i].data, out[j].data))
			abort();
		j++;
	}
	if (j != n_out)
		abort();
done:
	hdl_arena_free(&a);
	dcache_free(c);
	return 0;
}
