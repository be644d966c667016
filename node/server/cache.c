/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Response cache: a chained hash table of heap entries (key and value inline) threaded on a
 * doubly linked recency list; the tail (least recently used) goes first when the byte limit is
 * reached. Lookups are a hash, one bucket walk and a memcmp.
 */
#include "node/server/cache.h"

#include <stdlib.h>
#include <string.h>

#include "hdl/error.h"

#define BUCKETS_FIRST 1024u

typedef struct entry {
	struct entry *hnext;       /* bucket chain */
	struct entry *prev, *next; /* recency list, most recent after the head */
	uint64_t hash;
	uint32_t klen, vlen;
	uint8_t data[];            /* key, then value */
} entry_t;

struct rcache {
	entry_t **buckets;
	size_t nbuckets; /* power of two */
	size_t max_bytes;
	uint64_t gen;
	bool have_gen;
	rcache_stats_t st;
	entry_t lru; /* list head: lru.next = most recent, lru.prev = least recent; last, since
	                entry_t ends in a flexible array */
};

size_t rcache_entry_overhead(void)
{
	return sizeof(entry_t);
}

/* FNV-1a, 64 bits: keys are short (a byte + a handle name). */
static uint64_t hash_key(const uint8_t *p, size_t n)
{
	uint64_t h = 14695981039346656037ull;
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 1099511628211ull;
	}
	return h;
}

static size_t entry_cost(const entry_t *e)
{
	return sizeof(*e) + e->klen + e->vlen;
}

static void lru_unlink(entry_t *e)
{
	e->prev->next = e->next;
	e->next->prev = e->prev;
}

static void lru_push_front(rcache_t *c, entry_t *e)
{
	e->prev = &c->lru;
	e->next = c->lru.next;
	c->lru.next->prev = e;
	c->lru.next = e;
}

rcache_t *rcache_new(size_t max_bytes)
{
	rcache_t *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->buckets = calloc(BUCKETS_FIRST, sizeof(*c->buckets));
	if (c->buckets == NULL) {
		free(c);
		return NULL;
	}
	c->nbuckets = BUCKETS_FIRST;
	c->lru.prev = c->lru.next = &c->lru;
	c->max_bytes = max_bytes;
	return c;
}

/* Unlink \p e from its bucket and the list, free it. */
static void entry_drop(rcache_t *c, entry_t *e)
{
	entry_t **pp = &c->buckets[e->hash & (c->nbuckets - 1)];
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	lru_unlink(e);
	c->st.bytes -= entry_cost(e);
	c->st.entries--;
	free(e);
}

void rcache_clear(rcache_t *c)
{
	entry_t *e = c->lru.next;
	while (e != &c->lru) {
		entry_t *next = e->next;
		free(e);
		e = next;
	}
	memset(c->buckets, 0, c->nbuckets * sizeof(*c->buckets));
	c->lru.prev = c->lru.next = &c->lru;
	if (c->st.entries)
		c->st.flushes++;
	c->st.entries = 0;
	c->st.bytes = 0;
}

void rcache_free(rcache_t *c)
{
	if (c == NULL)
		return;
	rcache_clear(c);
	free(c->buckets);
	free(c);
}

/* Evict least recently used entries until \p need more bytes fit. */
static void make_room(rcache_t *c, size_t need)
{
	while (c->st.entries > 0 && c->st.bytes + need > c->max_bytes) {
		entry_drop(c, c->lru.prev);
		c->st.evictions++;
	}
}

void rcache_set_max(rcache_t *c, size_t max_bytes)
{
	c->max_bytes = max_bytes;
	make_room(c, 0);
}

void rcache_sync(rcache_t *c, uint64_t gen)
{
	if (c->have_gen && c->gen == gen)
		return;
	rcache_clear(c);
	c->gen = gen;
	c->have_gen = true;
}

static entry_t *find(const rcache_t *c, const uint8_t *key, size_t klen, uint64_t h)
{
	for (entry_t *e = c->buckets[h & (c->nbuckets - 1)]; e != NULL; e = e->hnext) {
		if (e->hash == h && e->klen == klen && memcmp(e->data, key, klen) == 0)
			return e;
	}
	return NULL;
}

bool rcache_get(rcache_t *c, const void *key, size_t klen, hdl_slice_t *val)
{
	val->p = NULL;
	val->len = 0;
	if (c->st.entries == 0) {
		c->st.misses++;
		return false;
	}
	uint64_t h = hash_key(key, klen);
	entry_t *e = find(c, key, klen, h);
	if (e == NULL) {
		c->st.misses++;
		return false;
	}
	if (c->lru.next != e) {
		lru_unlink(e);
		lru_push_front(c, e);
	}
	c->st.hits++;
	val->p = e->data + e->klen;
	val->len = e->vlen;
	return true;
}

/* Double the bucket array (entries keep their hashes); on allocation failure keep the old one. */
static void grow(rcache_t *c)
{
	size_t n = c->nbuckets * 2;
	entry_t **b = calloc(n, sizeof(*b));
	if (b == NULL)
		return;
	for (size_t i = 0; i < c->nbuckets; i++) {
		entry_t *e = c->buckets[i];
		while (e != NULL) {
			entry_t *next = e->hnext;
			entry_t **slot = &b[e->hash & (n - 1)];
			e->hnext = *slot;
			*slot = e;
			e = next;
		}
	}
	free(c->buckets);
	c->buckets = b;
	c->nbuckets = n;
}

int rcache_put(rcache_t *c, const void *key, size_t klen, const void *val, size_t vlen)
{
	size_t cost = sizeof(entry_t) + klen + vlen;
	if (c->max_bytes == 0 || klen > UINT32_MAX || vlen > UINT32_MAX || cost > c->max_bytes / 4)
		return HDL_ELIMIT;
	uint64_t h = hash_key(key, klen);
	entry_t *old = find(c, key, klen, h);
	if (old != NULL)
		entry_drop(c, old);
	make_room(c, cost);
	entry_t *e = malloc(cost);
	if (e == NULL)
		return HDL_ENOMEM;
	e->hash = h;
	e->klen = (uint32_t)klen;
	e->vlen = (uint32_t)vlen;
	memcpy(e->data, key, klen);
	if (vlen)
		memcpy(e->data + klen, val, vlen);
	if (c->st.entries >= c->nbuckets)
		grow(c);
	entry_t **slot = &c->buckets[h & (c->nbuckets - 1)];
	e->hnext = *slot;
	*slot = e;
	lru_push_front(c, e);
	c->st.entries++;
	c->st.bytes += cost;
	c->st.inserts++;
	return HDL_EOK;
}

void rcache_get_stats(const rcache_t *c, rcache_stats_t *st)
{
	*st = c->st;
	st->max_bytes = c->max_bytes;
}
