/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Statistics records and their sketches (see stats.h): HyperLogLog registers with Ertl's
 * estimator, a space-saving top list with an open-addressing index, and the record codec.
 */
#define _GNU_SOURCE
#include "node/store/stats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hdl/error.h"
#include "proto/wire.h"

static const char *const transport_names[STATS_T_N] = {
    "udp", "tcp", "http", "https", "tls", "rest", "other",
};

const char *stats_transport_name(unsigned t)
{
	return t < STATS_T_N ? transport_names[t] : "other";
}

int stats_transport_parse(const char *s)
{
	for (unsigned i = 0; i < STATS_T_N; i++) {
		if (strcmp(s, transport_names[i]) == 0)
			return (int)i;
	}
	return -1;
}

/*
 * A multiply-xorshift hash over 8-byte words (the structure of MurmurHash64A) with a fixed seed:
 * fast on short names, well mixed in every bit, and the same in every process, so that sketches
 * written by several runs of the node merge.
 */
uint64_t stats_hash(const void *p, size_t n)
{
	const uint64_t mul = 0xc6a4a7935bd1e995ull;
	const uint8_t *b = p;
	uint64_t h = 0x9e3779b97f4a7c15ull ^ ((uint64_t)n * mul);
	while (n >= 8) {
		uint64_t k;
		memcpy(&k, b, 8);
		k *= mul;
		k ^= k >> 47;
		k *= mul;
		h ^= k;
		h *= mul;
		b += 8;
		n -= 8;
	}
	if (n) {
		uint64_t k = 0;
		for (size_t i = 0; i < n; i++)
			k |= (uint64_t)b[i] << (8 * i);
		h ^= k;
		h *= mul;
	}
	h ^= h >> 47;
	h *= mul;
	h ^= h >> 47;
	return h;
}

/* ---- HyperLogLog ----------------------------------------------------------------------------- */

void stats_hll_merge(uint8_t *dst, const uint8_t *src)
{
	for (uint32_t i = 0; i < STATS_HLL_M; i++)
		dst[i] = src[i] > dst[i] ? src[i] : dst[i];
}

/* Ertl (2017), algorithm 6: sigma(x) = x + sum_k x^(2^k) 2^(k-1) */
static double hll_sigma(double x)
{
	if (x == 1.0)
		return INFINITY;
	double y = 1.0, z = x, prev;
	do {
		x *= x;
		prev = z;
		z += x * y;
		y += y;
	} while (z != prev);
	return z;
}

/* Ertl (2017), algorithm 6: tau(x) = (1 - x - sum_k (1 - x^(2^-k))^2 2^-k) / 3 */
static double hll_tau(double x)
{
	if (x == 0.0 || x == 1.0)
		return 0.0;
	double y = 1.0, z = 1.0 - x, prev;
	do {
		x = sqrt(x);
		prev = z;
		y *= 0.5;
		z -= (1.0 - x) * (1.0 - x) * y;
	} while (z != prev);
	return z / 3.0;
}

double stats_hll_estimate(const uint8_t *reg)
{
	const unsigned q = 64u - STATS_HLL_P;
	uint32_t c[64] = {0};
	for (uint32_t i = 0; i < STATS_HLL_M; i++)
		c[reg[i] <= q + 1 ? reg[i] : q + 1]++;
	double m = (double)STATS_HLL_M;
	double z = m * hll_tau(1.0 - (double)c[q + 1] / m);
	for (unsigned k = q; k >= 1; k--)
		z = 0.5 * (z + (double)c[k]);
	z += m * hll_sigma((double)c[0] / m);
	const double alpha_inf = 0.5 / log(2.0);
	return alpha_inf * m * m / z;
}

/* ---- top list -------------------------------------------------------------------------------- */

static uint32_t pow2_at_least(uint32_t n)
{
	uint32_t p = 1;
	while (p < n)
		p <<= 1;
	return p;
}

int stats_top_init(stats_toplist_t *t, uint32_t cap)
{
	memset(t, 0, sizeof(*t));
	if (cap == 0 || cap > STATS_TOP_MAX)
		return HDL_EINVAL;
	uint32_t slots = pow2_at_least(2 * cap);
	t->e = calloc(cap, sizeof(*t->e));
	t->index = calloc(slots, sizeof(*t->index));
	if (!t->e || !t->index) {
		stats_top_free(t);
		return HDL_ENOMEM;
	}
	t->cap = cap;
	t->index_mask = slots - 1;
	return HDL_EOK;
}

void stats_top_free(stats_toplist_t *t)
{
	free(t->e);
	free(t->index);
	memset(t, 0, sizeof(*t));
}

void stats_top_clear(stats_toplist_t *t)
{
	if (t->n)
		memset(t->index, 0, sizeof(*t->index) * (t->index_mask + 1));
	t->n = 0;
	t->min = 0;
	t->cursor = 0;
}

/* Slot of the entry with hash \p h, or of the empty slot where it would go. */
static uint32_t idx_find(const stats_toplist_t *t, uint64_t h)
{
	uint32_t i = (uint32_t)h & t->index_mask;
	while (t->index[i] && t->e[t->index[i] - 1].hash != h)
		i = (i + 1) & t->index_mask;
	return i;
}

/* Remove the index slot \p i (linear probing: later entries of the run shift back). */
static void idx_remove(stats_toplist_t *t, uint32_t i)
{
	uint32_t m = t->index_mask, j = i;
	for (;;) {
		j = (j + 1) & m;
		if (!t->index[j])
			break;
		uint32_t home = (uint32_t)t->e[t->index[j] - 1].hash & m;
		/* the entry at j stays when its home lies cyclically in (i, j] */
		bool stay = i <= j ? (i < home && home <= j) : (i < home || home <= j);
		if (stay)
			continue;
		t->index[i] = t->index[j];
		i = j;
	}
	t->index[i] = 0;
}

/* An entry with the smallest count (the bound t->min is raised when no entry is at it). */
static uint32_t top_victim(stats_toplist_t *t)
{
	for (;;) {
		for (uint32_t s = 0; s < t->n; s++) {
			uint32_t i = t->cursor;
			t->cursor = t->cursor + 1 < t->n ? t->cursor + 1 : 0;
			if (t->e[i].count <= t->min)
				return i;
		}
		uint64_t mn = UINT64_MAX;
		for (uint32_t i = 0; i < t->n; i++)
			mn = t->e[i].count < mn ? t->e[i].count : mn;
		t->min = mn;
	}
}

static void top_set(stats_top_t *e, uint64_t h, const uint8_t *name, size_t n, uint64_t count,
                    uint64_t error)
{
	e->hash = h;
	e->count = count;
	e->error = error;
	e->len = (uint16_t)n;
	memcpy(e->name, name, n);
}

void stats_top_add(stats_toplist_t *t, uint64_t h, const uint8_t *name, size_t n, uint64_t by)
{
	if (n == 0 || n > STATS_NAME_MAX || t->cap == 0)
		return;
	uint32_t slot = idx_find(t, h);
	if (t->index[slot]) {
		t->e[t->index[slot] - 1].count += by;
		return;
	}
	if (t->n < t->cap) {
		top_set(&t->e[t->n], h, name, n, by, 0);
		t->index[slot] = (uint16_t)(t->n + 1);
		t->n++;
		return;
	}
	uint32_t v = top_victim(t);
	stats_top_t *e = &t->e[v];
	idx_remove(t, idx_find(t, e->hash));
	top_set(e, h, name, n, e->count + by, e->count);
	t->index[idx_find(t, h)] = (uint16_t)(v + 1);
}

static int top_cmp(const void *a, const void *b)
{
	const stats_top_t *x = a, *y = b;
	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->name, y->name, n);
	return c ? c : (int)x->len - (int)y->len;
}

static void top_reindex(stats_toplist_t *t)
{
	memset(t->index, 0, sizeof(*t->index) * (t->index_mask + 1));
	for (uint32_t i = 0; i < t->n; i++)
		t->index[idx_find(t, t->e[i].hash)] = (uint16_t)(i + 1);
	t->min = 0;
	t->cursor = 0;
}

void stats_top_sort(stats_toplist_t *t)
{
	if (t->n > 1)
		qsort(t->e, t->n, sizeof(*t->e), top_cmp);
	top_reindex(t);
}

static uint64_t top_min(const stats_toplist_t *t)
{
	if (t->n < t->cap)
		return 0; /* not full: an identifier not in it was never counted */
	uint64_t mn = UINT64_MAX;
	for (uint32_t i = 0; i < t->n; i++)
		mn = t->e[i].count < mn ? t->e[i].count : mn;
	return mn;
}

int stats_top_merge(stats_toplist_t *dst, const stats_toplist_t *src)
{
	if (src->n == 0)
		return HDL_EOK;
	uint64_t min_d = top_min(dst), min_s = top_min(src);
	stats_top_t *all = malloc(sizeof(*all) * (dst->n + src->n));
	if (!all)
		return HDL_ENOMEM;
	uint32_t n = 0;
	/*
	 * An identifier missing from a full summary may have been counted there up to its smallest
	 * count: that much is added to its count and to its error (mergeable summaries).
	 */
	for (uint32_t i = 0; i < dst->n; i++) {
		all[n] = dst->e[i];
		uint32_t s = idx_find(src, dst->e[i].hash);
		if (src->index[s]) {
			all[n].count += src->e[src->index[s] - 1].count;
			all[n].error += src->e[src->index[s] - 1].error;
		} else {
			all[n].count += min_s;
			all[n].error += min_s;
		}
		n++;
	}
	for (uint32_t i = 0; i < src->n; i++) {
		if (dst->index[idx_find(dst, src->e[i].hash)])
			continue;
		all[n] = src->e[i];
		all[n].count += min_d;
		all[n].error += min_d;
		n++;
	}
	qsort(all, n, sizeof(*all), top_cmp);
	dst->n = n < dst->cap ? n : dst->cap;
	memcpy(dst->e, all, sizeof(*all) * dst->n);
	free(all);
	top_reindex(dst);
	return HDL_EOK;
}

/* ---- day records ----------------------------------------------------------------------------- */

int stats_day_init(stats_day_t *d, uint32_t day, hdl_slice_t prefix, uint32_t top_cap)
{
	memset(d, 0, sizeof(*d));
	if (prefix.len == 0 || prefix.len > STATS_PREFIX_MAX)
		return HDL_EINVAL;
	d->day = day;
	memcpy(d->prefix, prefix.p, prefix.len);
	d->prefix_len = prefix.len;
	d->hll = calloc(STATS_HLL_M, 1);
	int ret = d->hll ? stats_top_init(&d->top, top_cap) : HDL_ENOMEM;
	if (ret != HDL_EOK)
		stats_day_free(d);
	return ret;
}

void stats_day_free(stats_day_t *d)
{
	free(d->res);
	free(d->hll);
	stats_top_free(&d->top);
	memset(d, 0, sizeof(*d));
}

static int res_cmp(unsigned t1, uint32_t r1, unsigned t2, uint32_t r2)
{
	if (t1 != t2)
		return t1 < t2 ? -1 : 1;
	return r1 == r2 ? 0 : (r1 < r2 ? -1 : 1);
}

int stats_day_add_res(stats_day_t *d, unsigned transport, uint32_t rcode, uint64_t count)
{
	if (count == 0)
		return HDL_EOK;
	uint32_t lo = 0, hi = d->n_res;
	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;
		int c = res_cmp(d->res[mid].transport, d->res[mid].rcode, transport, rcode);
		if (c == 0) {
			d->res[mid].count += count;
			return HDL_EOK;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (d->n_res >= STATS_RES_MAX)
		return HDL_ELIMIT;
	if (d->n_res == d->cap_res) {
		uint32_t nc = d->cap_res ? d->cap_res * 2 : 16;
		stats_res_t *nr = realloc(d->res, sizeof(*nr) * nc);
		if (!nr)
			return HDL_ENOMEM;
		d->res = nr;
		d->cap_res = nc;
	}
	memmove(&d->res[lo + 1], &d->res[lo], sizeof(*d->res) * (d->n_res - lo));
	d->res[lo] = (stats_res_t){(uint8_t)transport, rcode, count};
	d->n_res++;
	return HDL_EOK;
}

uint64_t stats_day_resolutions(const stats_day_t *d)
{
	uint64_t n = 0;
	for (uint32_t i = 0; i < d->n_res; i++)
		n += d->res[i].count;
	return n;
}

int stats_day_merge(stats_day_t *dst, const stats_day_t *src)
{
	dst->created += src->created;
	dst->modified += src->modified;
	dst->deleted += src->deleted;
	for (uint32_t i = 0; i < src->n_res; i++) {
		int ret = stats_day_add_res(dst, src->res[i].transport, src->res[i].rcode,
		                            src->res[i].count);
		if (ret != HDL_EOK)
			return ret;
	}
	if (src->hll_used) {
		stats_hll_merge(dst->hll, src->hll);
		dst->hll_used = true;
	}
	return stats_top_merge(&dst->top, &src->top);
}

size_t stats_key(uint32_t day, hdl_slice_t prefix, uint8_t *out)
{
	if (prefix.len == 0 || prefix.len > STATS_PREFIX_MAX)
		return 0;
	out[0] = (uint8_t)(day >> 24);
	out[1] = (uint8_t)(day >> 16);
	out[2] = (uint8_t)(day >> 8);
	out[3] = (uint8_t)day;
	memcpy(out + 4, prefix.p, prefix.len);
	return 4 + (size_t)prefix.len;
}

int stats_key_parse(hdl_slice_t key, uint32_t *day, hdl_slice_t *prefix)
{
	if (key.len <= 4 || key.len > STATS_KEY_MAX)
		return HDL_EMALF;
	*day = (uint32_t)key.p[0] << 24 | (uint32_t)key.p[1] << 16 | (uint32_t)key.p[2] << 8 |
	       key.p[3];
	prefix->p = key.p + 4;
	prefix->len = key.len - 4;
	return HDL_EOK;
}

static uint32_t hll_nonzero(const uint8_t *reg)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < STATS_HLL_M; i++)
		n += reg[i] != 0;
	return n;
}

size_t stats_day_size(const stats_day_t *d)
{
	size_t n = 2 + 24 + 2 + (size_t)d->n_res * 13 + 1 + 2 + STATS_HLL_M * 3u + 2;
	for (uint32_t i = 0; i < d->top.n; i++)
		n += 2 + d->top.e[i].len + 16;
	return n;
}

static void wr_u64(wire_wr_t *w, uint64_t v)
{
	wire_wr_u32(w, (uint32_t)(v >> 32));
	wire_wr_u32(w, (uint32_t)v);
}

static uint64_t rd_u64(wire_rd_t *r)
{
	uint64_t hi = wire_rd_u32(r);
	return hi << 32 | wire_rd_u32(r);
}

#define HLL_EMPTY  0u
#define HLL_SPARSE 1u
#define HLL_DENSE  2u

int stats_day_encode(const stats_day_t *d, uint8_t *out, size_t cap, size_t *outlen)
{
	wire_wr_t w = wire_wr_init(out, cap);
	wire_wr_u8(&w, STATS_VERSION);
	wire_wr_u8(&w, STATS_HLL_P);
	wr_u64(&w, d->created);
	wr_u64(&w, d->modified);
	wr_u64(&w, d->deleted);
	uint16_t n_res = 0;
	for (uint32_t i = 0; i < d->n_res; i++)
		n_res += d->res[i].count != 0;
	wire_wr_u16(&w, n_res);
	for (uint32_t i = 0; i < d->n_res; i++) {
		if (d->res[i].count == 0)
			continue;
		wire_wr_u8(&w, d->res[i].transport);
		wire_wr_u32(&w, d->res[i].rcode);
		wr_u64(&w, d->res[i].count);
	}
	uint32_t nz = d->hll_used ? hll_nonzero(d->hll) : 0;
	if (nz == 0) {
		wire_wr_u8(&w, HLL_EMPTY);
	} else if (nz * 3u + 2u < STATS_HLL_M) {
		wire_wr_u8(&w, HLL_SPARSE);
		wire_wr_u16(&w, (uint16_t)nz);
		for (uint32_t i = 0; i < STATS_HLL_M; i++) {
			if (d->hll[i]) {
				wire_wr_u16(&w, (uint16_t)i);
				wire_wr_u8(&w, d->hll[i]);
			}
		}
	} else {
		wire_wr_u8(&w, HLL_DENSE);
		wire_wr_bytes(&w, d->hll, STATS_HLL_M);
	}
	wire_wr_u16(&w, (uint16_t)d->top.n);
	for (uint32_t i = 0; i < d->top.n; i++) {
		const stats_top_t *e = &d->top.e[i];
		wire_wr_u16(&w, e->len);
		wire_wr_bytes(&w, e->name, e->len);
		wr_u64(&w, e->count);
		wr_u64(&w, e->error);
	}
	if (w.err)
		return HDL_ESPACE;
	*outlen = w.pos;
	return HDL_EOK;
}

int stats_day_decode(const uint8_t *p, size_t len, stats_day_t *d)
{
	wire_rd_t r = wire_rd_init(p, len);
	d->created = d->modified = d->deleted = 0;
	d->n_res = 0;
	memset(d->hll, 0, STATS_HLL_M);
	d->hll_used = false;
	stats_top_clear(&d->top);

	uint8_t ver = wire_rd_u8(&r);
	uint8_t prec = wire_rd_u8(&r);
	if (!r.err && ver != STATS_VERSION)
		return HDL_EVERSION;
	if (!r.err && prec != STATS_HLL_P)
		return HDL_EMALF;
	d->created = rd_u64(&r);
	d->modified = rd_u64(&r);
	d->deleted = rd_u64(&r);
	uint16_t n_res = wire_rd_u16(&r);
	if (r.err)
		return r.err;
	if (n_res > STATS_RES_MAX)
		return HDL_ELIMIT;
	for (uint16_t i = 0; i < n_res; i++) {
		uint8_t t = wire_rd_u8(&r);
		uint32_t rc = wire_rd_u32(&r);
		uint64_t c = rd_u64(&r);
		if (r.err)
			return r.err;
		if (t >= STATS_T_N || c == 0 ||
		    (i > 0 && res_cmp(d->res[i - 1].transport, d->res[i - 1].rcode, t, rc) >= 0))
			return HDL_EMALF;
		int ret = stats_day_add_res(d, t, rc, c);
		if (ret != HDL_EOK)
			return ret;
	}
	uint8_t form = wire_rd_u8(&r);
	if (r.err)
		return r.err;
	if (form == HLL_SPARSE) {
		uint16_t n = wire_rd_u16(&r);
		int last = -1;
		if (!r.err && (n == 0 || n > STATS_HLL_M))
			return HDL_EMALF;
		for (uint16_t i = 0; i < n && !r.err; i++) {
			uint16_t idx = wire_rd_u16(&r);
			uint8_t v = wire_rd_u8(&r);
			if (r.err)
				break;
			if ((int)idx <= last || idx >= STATS_HLL_M || v == 0 || v > STATS_HLL_MAXR)
				return HDL_EMALF;
			d->hll[idx] = v;
			last = idx;
		}
		d->hll_used = true;
	} else if (form == HLL_DENSE) {
		hdl_slice_t s = wire_rd_bytes(&r, STATS_HLL_M);
		if (r.err)
			return r.err;
		for (uint32_t i = 0; i < STATS_HLL_M; i++) {
			if (s.p[i] > STATS_HLL_MAXR)
				return HDL_EMALF;
		}
		memcpy(d->hll, s.p, STATS_HLL_M);
		d->hll_used = true;
	} else if (form != HLL_EMPTY) {
		return HDL_EMALF;
	}
	uint16_t n_top = wire_rd_u16(&r);
	if (!r.err && n_top > STATS_TOP_MAX)
		return HDL_ELIMIT;
	uint64_t prev = UINT64_MAX;
	for (uint16_t i = 0; i < n_top && !r.err; i++) {
		uint16_t nl = wire_rd_u16(&r);
		if (!r.err && (nl == 0 || nl > STATS_NAME_MAX))
			return HDL_ELIMIT;
		hdl_slice_t name = wire_rd_bytes(&r, nl);
		uint64_t c = rd_u64(&r);
		uint64_t e = rd_u64(&r);
		if (r.err)
			break;
		if (c == 0 || e > c || c > prev)
			return HDL_EMALF;
		prev = c;
		if (d->top.n < d->top.cap) {
			uint64_t h = stats_hash(name.p, name.len);
			uint32_t slot = idx_find(&d->top, h);
			if (d->top.index[slot])
				return HDL_EMALF; /* the same identifier twice */
			top_set(&d->top.e[d->top.n], h, name.p, name.len, c, e);
			d->top.index[slot] = (uint16_t)(d->top.n + 1);
			d->top.n++;
		}
	}
	if (r.err)
		return r.err;
	if (wire_rd_left(&r))
		return HDL_ETRAILING;
	return HDL_EOK;
}

char *stats_day_str(uint32_t day, char out[11])
{
	time_t t = (time_t)day * 86400;
	struct tm tm;
	if (!gmtime_r(&t, &tm) ||
	    snprintf(out, 11, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday) != 10)
		snprintf(out, 11, "?");
	return out;
}

int stats_day_parse(const char *s, uint32_t *day)
{
	unsigned y, m, dd;
	char tail;
	if (strlen(s) != 10 || sscanf(s, "%4u-%2u-%2u%c", &y, &m, &dd, &tail) != 3 || y < 1970 ||
	    m < 1 || m > 12 || dd < 1 || dd > 31)
		return HDL_EINVAL;
	struct tm tm = {.tm_year = (int)y - 1900, .tm_mon = (int)m - 1, .tm_mday = (int)dd};
	time_t t = timegm(&tm);
	if (t < 0 || tm.tm_mday != (int)dd || tm.tm_mon != (int)m - 1)
		return HDL_EINVAL; /* e.g. 2026-02-30 */
	*day = (uint32_t)(t / 86400);
	return HDL_EOK;
}
