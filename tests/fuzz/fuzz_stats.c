/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Fuzz target: usage statistics records (node/store/stats.h) through stats_day_decode.
 *        What decodes must re-encode to a record that decodes to the same content, and whose own
 *        re-encoding is identical (the encoder picks one HLL form: the canonical one); the
 *        estimate must be a finite number, a merge with itself must double every count.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hdl/error.h"
#include "node/store/stats.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same(const stats_day_t *a, const stats_day_t *b)
{
	if (a->created != b->created || a->modified != b->modified || a->deleted != b->deleted ||
	    a->n_res != b->n_res || a->top.n != b->top.n ||
	    memcmp(a->hll, b->hll, STATS_HLL_M) != 0)
		abort();
	for (uint32_t i = 0; i < a->n_res; i++) {
		if (a->res[i].transport != b->res[i].transport ||
		    a->res[i].rcode != b->res[i].rcode || a->res[i].count != b->res[i].count)
			abort();
	}
	for (uint32_t i = 0; i < a->top.n; i++) {
		if (a->top.e[i].count != b->top.e[i].count || a->top.e[i].len != b->top.e[i].len ||
		    memcmp(a->top.e[i].name, b->top.e[i].name, a->top.e[i].len) != 0)
			abort();
	}
}

static uint8_t *encode(const stats_day_t *d, size_t *len)
{
	size_t cap = stats_day_size(d);
	uint8_t *p = malloc(cap);
	if (p && stats_day_encode(d, p, cap, len) != HDL_EOK)
		abort();
	return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	stats_day_t a, b, c;
	hdl_slice_t prefix = hdl_slice_str("88.100.1");
	uint8_t *e1 = NULL, *e2 = NULL;
	size_t l1 = 0, l2 = 0;
	if (stats_day_init(&a, 1, prefix, STATS_TOP_MAX) != HDL_EOK)
		return 0;
	if (stats_day_init(&b, 1, prefix, STATS_TOP_MAX) != HDL_EOK ||
	    stats_day_init(&c, 1, prefix, STATS_TOP_MAX) != HDL_EOK)
		abort();
	if (stats_day_decode(data, size, &a) != HDL_EOK)
		goto out;
	double est = stats_hll_estimate(a.hll);
	if (!isfinite(est) || est < 0)
		abort();
	e1 = encode(&a, &l1);
	if (!e1 || stats_day_decode(e1, l1, &b) != HDL_EOK)
		abort();
	same(&a, &b);
	e2 = encode(&b, &l2);
	if (!e2 || l1 != l2 || memcmp(e1, e2, l1) != 0)
		abort();
	/* merging a record with itself doubles its counts and keeps its registers */
	if (stats_day_decode(e1, l1, &c) != HDL_EOK || stats_day_merge(&c, &b) != HDL_EOK)
		abort();
	if (c.created != 2 * a.created ||
	    stats_day_resolutions(&c) != 2 * stats_day_resolutions(&a) ||
	    memcmp(c.hll, a.hll, STATS_HLL_M) != 0)
		abort();
out:
	free(e1);
	free(e2);
	stats_day_free(&a);
	stats_day_free(&b);
	stats_day_free(&c);
	return 0;
}
