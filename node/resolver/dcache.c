/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief The resolver cache (dcache.h): shards of a chained hash table plus an LRU list each,
 *        under one mutex per shard. Entries are one allocation (bookkeeping, key, values part),
 *        built and checked before the lock is taken and freed after it is released.
 */
#define _GNU_SOURCE
#include "node/resolver/dcache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hdl/error.h"
#include "node/resolver/rhash.h"
#include "proto/wire.h"

#define SHARD_BYTES_AUTO (256u * 1024u) /* automatic shard count: one per this many bytes */
#define SHARDS_AUTO_MAX  64u
#define BUCKETS_FIRST    16u

typedef struct dlink {
	struct dlink *prev, *next;
} dlink_t;

typedef struct dentry {
	dlink_t lru;          /* first member: a dlink_t * on the list is its entry */
	struct dentry *hnext; /* bucket chain */
	uint64_t ghash;       /* hash of the handle part of the key */
	uint64_t expire_ms;   /* fresh until (monotonic) */
	uint64_t ttl_ms;      /* lifetime given when stored (the prefetch window is a part of it) */
	uint64_t tick;        /* shard tick of the last use (oldest shape of a handle) */
	uint32_t rcode;
	uint32_t nvals;
	uint32_t klen;
	uint32_t vlen;
	bool prefetched;
	uint8_t data[]; /* key, then the values part */
} dentry_t;

typedef struct dshard {
	_Alignas(64) pthread_mutex_t mu;
	dentry_t **b; /* buckets by ghash */
	size_t nb;    /* power of two */
	size_t max_bytes;
	size_t bytes; /* entries + bucket array */
	size_t entries;
	uint64_t tick;
	uint64_t hits, misses, stale_served, prefetches, evictions, expired, inserts, refused,
	    invalidations;
	dlink_t lru; /* lru.next = most recent, lru.prev = least recent */
} dshard_t;

struct dcache {
	dshard_t *shards;
	unsigned nshards;
	unsigned shard_shift; /* 64 - log2(nshards): shard = ghash >> shift */
	uint64_t sipkey[2];
	dcache_clock_t clock;
	_Atomic uint32_t min_ttl, max_ttl, negative_ttl, stale_max, prefetch_pct;
	_Atomic uint64_t max_bytes;
	_Atomic uint64_t flushes;
	_Atomic uint64_t refused; /* refusals decided before a shard is chosen */
};

/* ---- clock ------------------------------------------------------------------------------------
 */

static uint64_t real_mono_ms(void *arg)
{
	(void)arg;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int64_t real_wall_s(void *arg)
{
	(void)arg;
	return (int64_t)time(NULL);
}

/* ---- keys -------------------------------------------------------------------------------------
 */

static uint8_t upper(uint8_t ch)
{
	return ch >= 'a' && ch <= 'z' ? (uint8_t)(ch - 32) : ch;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* Types compared as their upper-cased bytes, shorter first on a common start. */
static int cmp_type(const void *a, const void *b)
{
	const hdl_slice_t *x = a, *y = b;
	uint32_t n = x->len < y->len ? x->len : y->len;
	for (uint32_t i = 0; i < n; i++) {
		uint8_t cx = upper(x->p[i]), cy = upper(y->p[i]);
		if (cx != cy)
			return cx < cy ? -1 : 1;
	}
	return x->len < y->len ? -1 : x->len > y->len;
}

size_t dcache_key(uint8_t *out, size_t cap, hdl_slice_t handle, const uint32_t *idx, uint32_t n_idx,
                  const hdl_slice_t *types, uint32_t n_types, bool po)
{
	uint32_t si[HDL_MAX_FILTER];
	hdl_slice_t st[HDL_MAX_FILTER];
	if (handle.len == 0 || handle.len > UINT16_MAX || n_idx > HDL_MAX_FILTER ||
	    n_types > HDL_MAX_FILTER)
		return 0;
	if (cap > DCACHE_KEY_MAX)
		cap = DCACHE_KEY_MAX;
	if (n_idx)
		memcpy(si, idx, n_idx * sizeof(*si));
	qsort(si, n_idx, sizeof(*si), cmp_u32);
	for (uint32_t i = 0; i < n_types; i++) {
		if (types[i].len > UINT16_MAX)
			return 0;
		st[i] = types[i];
	}
	qsort(st, n_types, sizeof(*st), cmp_type);

	wire_wr_t w = wire_wr_init(out, cap);
	wire_wr_u16(&w, (uint16_t)handle.len);
	wire_wr_bytes(&w, handle.p, handle.len);
	wire_wr_u8(&w, po ? 1 : 0);
	uint32_t ni = 0;
	for (uint32_t i = 0; i < n_idx; i++)
		ni += i == 0 || si[i] != si[i - 1];
	wire_wr_u16(&w, (uint16_t)ni);
	for (uint32_t i = 0; i < n_idx; i++) {
		if (i == 0 || si[i] != si[i - 1])
			wire_wr_u32(&w, si[i]);
	}
	uint32_t nt = 0;
	for (uint32_t i = 0; i < n_types; i++)
		nt += i == 0 || cmp_type(&st[i], &st[i - 1]) != 0;
	wire_wr_u16(&w, (uint16_t)nt);
	for (uint32_t i = 0; i < n_types; i++) {
		if (i > 0 && cmp_type(&st[i], &st[i - 1]) == 0)
			continue;
		wire_wr_u16(&w, (uint16_t)st[i].len);
		if (!wire_wr_need(&w, st[i].len))
			break;
		for (uint32_t j = 0; j < st[i].len; j++)
			w.base[w.pos + j] = upper(st[i].p[j]);
		w.pos += st[i].len;
	}
	return w.err ? 0 : w.pos;
}

/* Walk a key; the shape's slices are left to the caller through the reader. */
static bool key_parse(const uint8_t *key, size_t klen, hdl_slice_t *handle, wire_rd_t *shape)
{
	wire_rd_t rd = wire_rd_init(key, klen);
	uint16_t hl = wire_rd_u16(&rd);
	*handle = wire_rd_bytes(&rd, hl);
	*shape = wire_rd_init(wire_rd_ptr(&rd), wire_rd_left(&rd));
	(void)wire_rd_u8(&rd);
	uint16_t ni = wire_rd_u16(&rd);
	wire_rd_skip(&rd, (size_t)ni * 4);
	uint16_t nt = wire_rd_u16(&rd);
	for (uint16_t i = 0; i < nt && !rd.err; i++)
		wire_rd_skip(&rd, wire_rd_u16(&rd));
	return !rd.err && hl > 0 && wire_rd_left(&rd) == 0;
}

bool dcache_key_handle(const uint8_t *key, size_t klen, hdl_slice_t *handle)
{
	wire_rd_t shape;
	return key_parse(key, klen, handle, &shape);
}

size_t dcache_key_describe(const uint8_t *key, size_t klen, char *out, size_t cap)
{
	hdl_slice_t h;
	wire_rd_t rd;
	if (cap == 0 || !key_parse(key, klen, &h, &rd))
		return 0;
	size_t n = 0;
#define PUT_CH(ch)                             \
	do {                                   \
		if (n + 1 < cap)               \
			out[n++] = (char)(ch); \
	} while (0)
	/* bytes outside printable ASCII (and the space, which separates fields) as \xHH */
	for (uint32_t i = 0; i < h.len; i++) {
		uint8_t ch = h.p[i];
		if (ch > 0x20 && ch < 0x7f && ch != '\\') {
			PUT_CH(ch);
		} else {
			static const char hex[] = "0123456789abcdef";
			PUT_CH('\\');
			PUT_CH('x');
			PUT_CH(hex[ch >> 4]);
			PUT_CH(hex[ch & 15]);
		}
	}
	uint8_t flags = wire_rd_u8(&rd);
	if (flags & 1) {
		PUT_CH(' ');
		PUT_CH('p');
		PUT_CH('o');
	}
	uint16_t ni = wire_rd_u16(&rd);
	for (uint16_t i = 0; i < ni; i++) {
		char num[24]; /* " index=" and up to 10 digits */
		int l = snprintf(num, sizeof(num), "%s%u", i ? "," : " index=", wire_rd_u32(&rd));
		for (int j = 0; j < l && j < (int)sizeof(num) - 1; j++)
			PUT_CH(num[j]);
	}
	uint16_t nt = wire_rd_u16(&rd);
	for (uint16_t i = 0; i < nt; i++) {
		const char *sep = i ? "," : " type=";
		for (const char *s = sep; *s; s++)
			PUT_CH(*s);
		hdl_slice_t t = wire_rd_bytes(&rd, wire_rd_u16(&rd));
		for (uint32_t j = 0; j < t.len; j++)
			PUT_CH(t.p[j] > 0x20 && t.p[j] < 0x7f ? t.p[j] : '?');
	}
#undef PUT_CH
	out[n] = '\0';
	return n;
}

/* ---- values -----------------------------------------------------------------------------------
 */

typedef struct vscan {
	uint32_t n_all; /* values in the answer */
	uint32_t n_pub; /* of which PUBLIC_READ */
	size_t pub_len; /* bytes of the public values */
	uint64_t ttl_s; /* smallest TTL among the public values, in seconds from now */
} vscan_t;

/*
 * Walk a values part (handle-protocol.md §5.1 layout), which must be consumed exactly; with
 * \p copy, append every PUBLIC_READ value to it. \return HDL_EOK or HDL_EMALF.
 */
static int scan_values(const uint8_t *vals, size_t vlen, int64_t wall, vscan_t *s, uint8_t *copy)
{
	wire_rd_t rd = wire_rd_init(vals, vlen);
	memset(s, 0, sizeof(*s));
	s->ttl_s = UINT64_MAX;
	s->n_all = wire_rd_u32(&rd);
	if (rd.err || s->n_all > HDL_MAX_VALUES)
		return HDL_EMALF;
	for (uint32_t i = 0; i < s->n_all; i++) {
		size_t start = rd.pos;
		wire_rd_skip(&rd, 4 + 4); /* index, timestamp */
		uint8_t ttl_type = wire_rd_u8(&rd);
		uint32_t ttl = wire_rd_u32(&rd);
		uint8_t perms = wire_rd_u8(&rd);
		(void)wire_rd_lbytes(&rd, HDL_MAX_TYPE_LEN);
		(void)wire_rd_lbytes(&rd, HDL_MAX_ARRAY_LEN);
		uint32_t nrefs = wire_rd_u32(&rd);
		if (nrefs > HDL_MAX_REFS)
			wire_rd_fail(&rd, HDL_ELIMIT);
		for (uint32_t r = 0; r < nrefs && !rd.err; r++) {
			(void)wire_rd_lbytes(&rd, HDL_MAX_HANDLE_LEN);
			(void)wire_rd_u32(&rd);
		}
		if (rd.err)
			return HDL_EMALF;
		if (!(perms & HDL_PERM_PUBLIC_READ))
			continue;
		uint64_t t = 0; /* an unknown TTL type: not cacheable */
		if (ttl_type == HDL_TTL_RELATIVE)
			t = ttl;
		else if (ttl_type == HDL_TTL_ABSOLUTE)
			t = (int64_t)ttl > wall ? (uint64_t)((int64_t)ttl - wall) : 0;
		if (t < s->ttl_s)
			s->ttl_s = t;
		if (copy)
			memcpy(copy + s->pub_len, vals + start, rd.pos - start);
		s->pub_len += rd.pos - start;
		s->n_pub++;
	}
	return wire_rd_left(&rd) == 0 ? HDL_EOK : HDL_EMALF;
}

/* ---- shards -----------------------------------------------------------------------------------
 */

static size_t entry_cost(const dentry_t *e)
{
	return sizeof(*e) + e->klen + e->vlen;
}

static void lru_unlink(dentry_t *e)
{
	e->lru.prev->next = e->lru.next;
	e->lru.next->prev = e->lru.prev;
}

static void lru_push_front(dshard_t *s, dentry_t *e)
{
	e->lru.prev = &s->lru;
	e->lru.next = s->lru.next;
	s->lru.next->prev = &e->lru;
	s->lru.next = &e->lru;
}

/* Unlink \p e from its bucket and the list, uncharge it, and put it on \p dead (freed later). */
static void entry_drop(dshard_t *s, dentry_t *e, dentry_t **dead)
{
	dentry_t **pp = &s->b[e->ghash & (s->nb - 1)];
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	lru_unlink(e);
	s->bytes -= entry_cost(e);
	s->entries--;
	e->hnext = *dead;
	*dead = e;
}

static void free_list(dentry_t *e)
{
	while (e) {
		dentry_t *next = e->hnext;
		free(e);
		e = next;
	}
}

/* Evict from the LRU tail until \p need more bytes fit. */
static void make_room(dshard_t *s, size_t need, dentry_t **dead)
{
	while (s->entries > 0 && s->bytes + need > s->max_bytes) {
		entry_drop(s, (dentry_t *)s->lru.prev, dead);
		s->evictions++;
	}
}

/* Double the bucket array when the table is full (on allocation failure keep the old one). */
static void maybe_grow(dshard_t *s, dentry_t **dead)
{
	if (s->entries <= s->nb)
		return;
	size_t n = s->nb * 2;
	dentry_t **b = calloc(n, sizeof(*b));
	if (!b)
		return;
	for (size_t i = 0; i < s->nb; i++) {
		dentry_t *e = s->b[i];
		while (e) {
			dentry_t *next = e->hnext;
			dentry_t **slot = &b[e->ghash & (n - 1)];
			e->hnext = *slot;
			*slot = e;
			e = next;
		}
	}
	free(s->b);
	s->b = b;
	s->bytes += (n - s->nb) * sizeof(*b);
	s->nb = n;
	make_room(s, 0, dead);
}

static dentry_t *find(const dshard_t *s, const uint8_t *key, size_t klen, uint64_t gh)
{
	for (dentry_t *e = s->b[gh & (s->nb - 1)]; e; e = e->hnext) {
		if (e->ghash == gh && e->klen == klen && memcmp(e->data, key, klen) == 0)
			return e;
	}
	return NULL;
}

static bool same_handle(const dentry_t *e, hdl_slice_t h)
{
	return e->klen >= 2u + h.len && ((size_t)e->data[0] << 8 | e->data[1]) == h.len &&
	       memcmp(e->data + 2, h.p, h.len) == 0;
}

static dshard_t *shard_of(dcache_t *c, uint64_t gh)
{
	return &c->shards[c->nshards > 1 ? gh >> c->shard_shift : 0];
}

/* ---- public -----------------------------------------------------------------------------------
 */

static unsigned auto_shards(size_t max_bytes)
{
	unsigned n = 1;
	while (n < SHARDS_AUTO_MAX && (size_t)n * 2 * SHARD_BYTES_AUTO <= max_bytes)
		n *= 2;
	return n;
}

void dcache_set_policy(dcache_t *c, const dcache_policy_t *p)
{
	atomic_store(&c->min_ttl, p->min_ttl);
	atomic_store(&c->max_ttl, p->max_ttl);
	atomic_store(&c->negative_ttl, p->negative_ttl);
	atomic_store(&c->stale_max, p->stale_max);
	atomic_store(&c->prefetch_pct, p->prefetch_pct > 100 ? 100 : p->prefetch_pct);
}

int dcache_new(const dcache_opts_t *o, dcache_t **out)
{
	*out = NULL;
	unsigned n = o->shards ? o->shards : auto_shards(o->max_bytes);
	if (n == 0 || n > DCACHE_SHARDS_MAX || (n & (n - 1)) != 0)
		return HDL_EINVAL;
	dcache_t *c = calloc(1, sizeof(*c));
	if (!c)
		return HDL_ENOMEM;
	c->shards = aligned_alloc(64, sizeof(dshard_t) * n);
	if (!c->shards) {
		free(c);
		return HDL_ENOMEM;
	}
	memset(c->shards, 0, sizeof(dshard_t) * n);
	c->nshards = n;
	unsigned bits = 0;
	while ((1u << bits) < n)
		bits++;
	c->shard_shift = 64 - bits;
	rhash_new_key(c->sipkey);
	if (o->clock) {
		c->clock = *o->clock;
	} else {
		c->clock.mono_ms = real_mono_ms;
		c->clock.wall_s = real_wall_s;
	}
	dcache_set_policy(c, &o->policy);
	unsigned i;
	for (i = 0; i < n; i++) {
		dshard_t *s = &c->shards[i];
		s->b = calloc(BUCKETS_FIRST, sizeof(*s->b));
		if (!s->b || pthread_mutex_init(&s->mu, NULL) != 0) {
			free(s->b);
			break;
		}
		s->nb = BUCKETS_FIRST;
		s->bytes = BUCKETS_FIRST * sizeof(*s->b);
		s->lru.prev = s->lru.next = &s->lru;
	}
	if (i < n) {
		c->nshards = i;
		dcache_free(c);
		return HDL_ENOMEM;
	}
	dcache_set_max_bytes(c, o->max_bytes);
	*out = c;
	return HDL_EOK;
}

void dcache_free(dcache_t *c)
{
	if (!c)
		return;
	for (unsigned i = 0; i < c->nshards; i++) {
		dshard_t *s = &c->shards[i];
		dlink_t *l = s->lru.next;
		while (l != &s->lru) {
			dlink_t *next = l->next;
			free(l);
			l = next;
		}
		free(s->b);
		pthread_mutex_destroy(&s->mu);
	}
	free(c->shards);
	free(c);
}

void dcache_set_max_bytes(dcache_t *c, size_t max_bytes)
{
	atomic_store(&c->max_bytes, max_bytes);
	for (unsigned i = 0; i < c->nshards; i++) {
		dshard_t *s = &c->shards[i];
		dentry_t *dead = NULL;
		pthread_mutex_lock(&s->mu);
		s->max_bytes = max_bytes / c->nshards;
		make_room(s, 0, &dead);
		pthread_mutex_unlock(&s->mu);
		free_list(dead);
	}
}

int dcache_put(dcache_t *c, const uint8_t *key, size_t klen, uint32_t rcode, const uint8_t *vals,
               size_t vlen)
{
	hdl_slice_t h;
	wire_rd_t shape;
	vscan_t vs;
	if (klen > DCACHE_KEY_MAX || !key_parse(key, klen, &h, &shape))
		return HDL_EINVAL;
	if (rcode != HDL_RC_SUCCESS && rcode != HDL_RC_HANDLE_NOT_FOUND &&
	    rcode != HDL_RC_VALUES_NOT_FOUND)
		return HDL_EINVAL;
	int64_t wall = c->clock.wall_s(c->clock.arg);
	uint64_t ttl_s;
	memset(&vs, 0, sizeof(vs));
	if (rcode == HDL_RC_SUCCESS) {
		if (scan_values(vals, vlen, wall, &vs, NULL) != HDL_EOK) {
			atomic_fetch_add(&c->refused, 1);
			return HDL_EMALF;
		}
		if (vs.n_pub == 0 && vs.n_all > 0)
			rcode = HDL_RC_VALUES_NOT_FOUND;
	}
	if (vs.n_pub == 0) {
		ttl_s = atomic_load(&c->negative_ttl);
	} else {
		ttl_s = vs.ttl_s;
		uint32_t cap = atomic_load(&c->max_ttl), floor = atomic_load(&c->min_ttl);
		if (ttl_s > cap)
			ttl_s = cap;
		if (ttl_s < floor)
			ttl_s = floor;
	}
	size_t stored = rcode == HDL_RC_SUCCESS ? 4 + vs.pub_len : 0; /* negative: no values part */
	size_t cost = sizeof(dentry_t) + klen + stored;
	size_t shard_max = atomic_load(&c->max_bytes) / c->nshards;
	if (ttl_s == 0 || cost > shard_max / 4) {
		atomic_fetch_add(&c->refused, 1);
		return HDL_ELIMIT;
	}

	dentry_t *e = malloc(cost);
	if (!e)
		return HDL_ENOMEM;
	memset(e, 0, sizeof(*e));
	e->rcode = rcode;
	e->nvals = vs.n_pub;
	e->klen = (uint32_t)klen;
	e->vlen = (uint32_t)stored;
	e->ttl_ms = ttl_s * 1000u;
	e->ghash = rhash_sip13(h.p, h.len, c->sipkey);
	memcpy(e->data, key, klen);
	if (stored) {
		uint8_t *v = e->data + klen;
		v[0] = (uint8_t)(vs.n_pub >> 24);
		v[1] = (uint8_t)(vs.n_pub >> 16);
		v[2] = (uint8_t)(vs.n_pub >> 8);
		v[3] = (uint8_t)vs.n_pub;
		vscan_t again;
		(void)scan_values(vals, vlen, wall, &again, v + 4);
	}

	dshard_t *s = shard_of(c, e->ghash);
	dentry_t *dead = NULL;
	pthread_mutex_lock(&s->mu);
	if (cost > s->max_bytes / 4) { /* the limit shrank meanwhile */
		s->refused++;
		pthread_mutex_unlock(&s->mu);
		free(e);
		return HDL_ELIMIT;
	}
	e->expire_ms = c->clock.mono_ms(c->clock.arg) + e->ttl_ms;
	dentry_t *old = find(s, key, klen, e->ghash);
	if (old) {
		entry_drop(s, old, &dead);
	} else {
		/* one more shape of this handle: past the bound, its least recently used goes */
		unsigned shapes = 0;
		dentry_t *oldest = NULL;
		for (dentry_t *x = s->b[e->ghash & (s->nb - 1)]; x; x = x->hnext) {
			if (x->ghash != e->ghash || !same_handle(x, h))
				continue;
			shapes++;
			if (!oldest || x->tick < oldest->tick)
				oldest = x;
		}
		if (shapes >= DCACHE_SHAPES_MAX) {
			entry_drop(s, oldest, &dead);
			s->evictions++;
		}
	}
	make_room(s, cost, &dead);
	dentry_t **slot = &s->b[e->ghash & (s->nb - 1)];
	e->hnext = *slot;
	*slot = e;
	lru_push_front(s, e);
	e->tick = ++s->tick;
	s->entries++;
	s->bytes += cost;
	s->inserts++;
	maybe_grow(s, &dead);
	pthread_mutex_unlock(&s->mu);
	free_list(dead);
	return HDL_EOK;
}

int dcache_get(dcache_t *c, const uint8_t *key, size_t klen, unsigned how, uint8_t *buf, size_t cap,
               dcache_hit_t *hit)
{
	hdl_slice_t h;
	wire_rd_t shape;
	memset(hit, 0, sizeof(*hit));
	if (klen > DCACHE_KEY_MAX || !key_parse(key, klen, &h, &shape))
		return HDL_ENOENT;
	uint64_t gh = rhash_sip13(h.p, h.len, c->sipkey);
	dshard_t *s = shard_of(c, gh);
	uint64_t now = c->clock.mono_ms(c->clock.arg);
	uint64_t stale_ms = (uint64_t)atomic_load(&c->stale_max) * 1000u;
	uint32_t pct = atomic_load(&c->prefetch_pct);
	dentry_t *dead = NULL;
	int ret = HDL_ENOENT;

	pthread_mutex_lock(&s->mu);
	dentry_t *e = find(s, key, klen, gh);
	if (!e) {
		s->misses++;
		goto out;
	}
	bool fresh = now < e->expire_ms;
	if (!fresh && now - e->expire_ms >= stale_ms) {
		entry_drop(s, e, &dead);
		s->expired++;
		s->misses++;
		goto out;
	}
	if (!fresh && how != DCACHE_GET_STALE_OK) {
		hit->flags = DCACHE_STALE;
		s->misses++;
		goto out;
	}
	hit->len = e->vlen;
	if (cap < e->vlen) {
		ret = HDL_ESPACE;
		goto out;
	}
	if (e->vlen)
		memcpy(buf, e->data + e->klen, e->vlen);
	hit->rcode = e->rcode;
	hit->n_values = e->nvals;
	if (fresh) {
		uint64_t left = e->expire_ms - now;
		hit->ttl_left = (uint32_t)(left / 1000u);
		s->hits++;
		if (pct && !e->prefetched && left * 100u <= e->ttl_ms * pct) {
			e->prefetched = true;
			hit->flags |= DCACHE_PREFETCH;
			s->prefetches++;
		}
	} else {
		hit->flags = DCACHE_STALE;
		s->stale_served++;
	}
	if (s->lru.next != &e->lru) {
		lru_unlink(e);
		lru_push_front(s, e);
	}
	e->tick = ++s->tick;
	ret = HDL_EOK;
out:
	pthread_mutex_unlock(&s->mu);
	free_list(dead);
	return ret;
}

size_t dcache_invalidate(dcache_t *c, hdl_slice_t handle)
{
	if (handle.len == 0)
		return 0;
	uint64_t gh = rhash_sip13(handle.p, handle.len, c->sipkey);
	dshard_t *s = shard_of(c, gh);
	dentry_t *dead = NULL;
	size_t n = 0;
	pthread_mutex_lock(&s->mu);
	dentry_t *e = s->b[gh & (s->nb - 1)];
	while (e) {
		dentry_t *next = e->hnext;
		if (e->ghash == gh && same_handle(e, handle)) {
			entry_drop(s, e, &dead);
			n++;
		}
		e = next;
	}
	s->invalidations += n;
	pthread_mutex_unlock(&s->mu);
	free_list(dead);
	return n;
}

void dcache_flush(dcache_t *c)
{
	atomic_fetch_add(&c->flushes, 1);
	for (unsigned i = 0; i < c->nshards; i++) {
		dshard_t *s = &c->shards[i];
		pthread_mutex_lock(&s->mu);
		dlink_t *l = s->lru.next;
		s->lru.prev->next = NULL; /* the detached list ends here */
		memset(s->b, 0, s->nb * sizeof(*s->b));
		s->lru.prev = s->lru.next = &s->lru;
		s->bytes = s->nb * sizeof(*s->b);
		s->entries = 0;
		pthread_mutex_unlock(&s->mu);
		while (l && l != &s->lru) {
			dlink_t *next = l->next;
			free(l);
			l = next;
		}
	}
}

void dcache_get_stats(dcache_t *c, dcache_stats_t *st)
{
	memset(st, 0, sizeof(*st));
	for (unsigned i = 0; i < c->nshards; i++) {
		dshard_t *s = &c->shards[i];
		pthread_mutex_lock(&s->mu);
		st->hits += s->hits;
		st->misses += s->misses;
		st->stale_served += s->stale_served;
		st->prefetches += s->prefetches;
		st->evictions += s->evictions;
		st->expired += s->expired;
		st->inserts += s->inserts;
		st->refused += s->refused;
		st->invalidations += s->invalidations;
		st->bytes += s->bytes;
		st->entries += s->entries;
		pthread_mutex_unlock(&s->mu);
	}
	st->refused += atomic_load(&c->refused);
	st->flushes = atomic_load(&c->flushes);
	st->max_bytes = atomic_load(&c->max_bytes);
	st->shards = c->nshards;
}

static bool under_prefix(const dentry_t *e, hdl_slice_t prefix)
{
	if (prefix.len == 0)
		return true;
	uint32_t hl = (uint32_t)e->data[0] << 8 | e->data[1];
	const uint8_t *h = e->data + 2;
	if (hl < prefix.len)
		return false;
	for (uint32_t i = 0; i < prefix.len; i++) {
		if (upper(h[i]) != upper(prefix.p[i]))
			return false;
	}
	return hl == prefix.len || h[prefix.len] == '/' || prefix.p[prefix.len - 1] == '/';
}

/* One entry copied out of a shard for dcache_foreach(). */
typedef struct dcopy {
	dcache_info_t info;
	struct dcopy *next;
	uint8_t key[];
} dcopy_t;

long dcache_foreach(dcache_t *c, hdl_slice_t prefix, size_t max,
                    int (*cb)(void *ctx, const dcache_info_t *info), void *ctx)
{
	long reported = 0;
	bool stop = false;
	for (unsigned i = 0; i < c->nshards && !stop && (size_t)reported < max; i++) {
		dshard_t *s = &c->shards[i];
		dcopy_t *head = NULL, **tail = &head;
		size_t taken = 0;
		bool nomem = false;
		uint64_t now = c->clock.mono_ms(c->clock.arg);
		pthread_mutex_lock(&s->mu);
		for (dlink_t *l = s->lru.next; l != &s->lru && (size_t)reported + taken < max;
		     l = l->next) {
			const dentry_t *e = (const dentry_t *)l;
			if (!under_prefix(e, prefix))
				continue;
			dcopy_t *d = malloc(sizeof(*d) + e->klen);
			if (!d) {
				nomem = true;
				break;
			}
			memcpy(d->key, e->data, e->klen);
			d->info.key = d->key;
			d->info.klen = e->klen;
			d->info.rcode = e->rcode;
			d->info.n_values = e->nvals;
			d->info.vlen = e->vlen;
			d->info.ttl_left_ms = (int64_t)e->expire_ms - (int64_t)now;
			d->info.prefetched = e->prefetched;
			d->next = NULL;
			*tail = d;
			tail = &d->next;
			taken++;
		}
		pthread_mutex_unlock(&s->mu);
		while (head) {
			dcopy_t *next = head->next;
			if (!stop) {
				reported++;
				stop = cb(ctx, &head->info) != 0;
			}
			free(head);
			head = next;
		}
		if (nomem)
			return HDL_ENOMEM;
	}
	return reported;
}
