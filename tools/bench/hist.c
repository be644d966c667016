/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Log-bucket latency histogram with HdrHistogram-like precision (no main()).
 *
 * Layout: values below 2^BH_SUB_BITS have one bucket each (exact). A value v >= 2^BH_SUB_BITS
 * with its top bit at position m goes to exponent e = m - (BH_SUB_BITS - 1) >= 1 and sub-bucket
 * v >> e, which lies in [BH_HALF, 2 * BH_HALF); index = e * BH_HALF + (v >> e). Bucket width is
 * 2^e for values >= BH_HALF * 2^e, so the relative error is at most 1 / BH_HALF.
 */
#include <math.h>
#include <string.h>

#include "tools/bench/bench.h"

void bh_init(bh_hist_t *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

uint32_t bh_index(uint64_t v)
{
	if (v < (1u << BH_SUB_BITS))
		return (uint32_t)v;
	unsigned msb = 63u - (unsigned)__builtin_clzll(v);
	unsigned e = msb - (BH_SUB_BITS - 1u);
	return (uint32_t)(e * BH_HALF + (v >> e));
}

uint64_t bh_lowest(uint32_t idx)
{
	if (idx < (1u << BH_SUB_BITS))
		return idx;
	unsigned e = idx / BH_HALF - 1u;
	uint64_t m = idx % BH_HALF + BH_HALF;
	return m << e;
}

uint64_t bh_highest(uint32_t idx)
{
	if (idx < (1u << BH_SUB_BITS))
		return idx;
	unsigned e = idx / BH_HALF - 1u;
	uint64_t m = idx % BH_HALF + BH_HALF;
	if (e >= 56u && m == 2u * BH_HALF - 1u)
		return UINT64_MAX;
	return ((m + 1u) << e) - 1u;
}

void bh_record(bh_hist_t *h, uint64_t v)
{
	h->b[bh_index(v)]++;
	h->count++;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
	double d = (double)v;
	h->sum += d;
	h->sumsq += d * d;
}

void bh_merge(bh_hist_t *dst, const bh_hist_t *src)
{
	if (src->count == 0)
		return;
	for (uint32_t i = 0; i < BH_NBUCKETS; i++)
		dst->b[i] += src->b[i];
	dst->count += src->count;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
	dst->sum += src->sum;
	dst->sumsq += src->sumsq;
}

uint64_t bh_percentile(const bh_hist_t *h, double p)
{
	if (h->count == 0)
		return 0;
	if (p <= 0.0)
		return h->min;
	if (p >= 100.0)
		return h->max;
	uint64_t want = (uint64_t)ceil(p / 100.0 * (double)h->count);
	if (want < 1)
		want = 1;
	uint64_t seen = 0;
	for (uint32_t i = 0; i < BH_NBUCKETS; i++) {
		seen += h->b[i];
		if (seen >= want) {
			uint64_t v = bh_highest(i);
			if (v > h->max)
				v = h->max;
			if (v < h->min)
				v = h->min;
			return v;
		}
	}
	return h->max;
}

double bh_mean(const bh_hist_t *h)
{
	return h->count ? h->sum / (double)h->count : 0.0;
}

double bh_stddev(const bh_hist_t *h)
{
	if (h->count < 2)
		return 0.0;
	double m = bh_mean(h);
	double var = h->sumsq / (double)h->count - m * m;
	return var > 0.0 ? sqrt(var) : 0.0;
}
