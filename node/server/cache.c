/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Response cache: a chained hash table of heap entries (key and value inline) threaded on a
 * doubly linked recency list; the tail (least recently used) goes first when the byte limit is
 * reached. Lookups are a hash, one bucket walk and a memcmp. The admission sketch and the txlog
 * follower are described in cache.h.
 */
#include "node/server/cache.h"

#include <stdlib.h>
#include <string.h>

#include "hdl/error.h"
#include "node/store/store.h"

#define BUCKETS_FIRST 1024u
#define SKETCH_MIN_BYTES 512u
#define SKETCH_WORDS_PER_BLOCK 8u /* 64 bytes: the 4 counters of a key share one cache line */

/* Count-min sketch of 4-bit counters, 16 per 64-bit word. */
typedef struct sketch {
	uint64_t *w;
	size_t nblocks; /* power of two */
	uint64_t adds;  /* increments since the last halving */
	uint64_t sample;
	size_t bytes;
} sketch_t;

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
	bool follow;         /* follow_serial is valid */
	uint64_t follow_txn; /* snapshot txn id the serial was read in */
	uint64_t follow_serial;
	sketch_t *sk;        /* admission sketch; NULL = admit everything */
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
	c->st.bytes = c->sk ? c->sk->bytes : 0;
}

/* ---- admission sketch ------------------------------------------------------------------ */

/* Spread the FNV hash over all 64 bits (the MurmurHash3 finalizer). */
static uint64_t mix64(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return h;
}

static sketch_t *sketch_new(size_t max_bytes)
{
	size_t bytes = SKETCH_MIN_BYTES;
	while (bytes < max_bytes / 64)
		bytes *= 2;
	sketch_t *k = calloc(1, sizeof(*k));
	if (!k || !(k->w = calloc(bytes / 8, sizeof(uint64_t)))) {
		free(k);
		return NULL;
	}
	k->bytes = bytes;
	k->nblocks = bytes / 8 / SKETCH_WORDS_PER_BLOCK;
	k->sample = (uint64_t)bytes * 2; /* one increment per counter, then halve */
	return k;
}

static void sketch_free(sketch_t *k)
{
	if (k)
		free(k->w);
	free(k);
}

/* Word and bit shift of counter \p i (0..3) of a key. */
static void sketch_slot(const sketch_t *k, uint64_t m, unsigned i, size_t *word, unsigned *shift)
{
	size_t base = (size_t)(m & (k->nblocks - 1)) * SKETCH_WORDS_PER_BLOCK;
	*word = base + 2 * i + ((m >> (40 + i)) & 1);
	*shift = (unsigned)((m >> (44 + 4 * i)) & 15) * 4;
}

static void sketch_add(sketch_t *k, uint64_t h)
{
	uint64_t m = mix64(h);
	for (unsigned i = 0; i < 4; i++) {
		size_t w;
		unsigned sh;
		sketch_slot(k, m, i, &w, &sh);
		if (((k->w[w] >> sh) & 15) < 15)
			k->w[w] += 1ull << sh;
	}
	if (++k->adds >= k->sample) {
		for (size_t i = 0; i < k->bytes / 8; i++)
			k->w[i] = (k->w[i] >> 1) & 0x7777777777777777ull;
		k->adds /= 2;
	}
}

static unsigned sketch_est(const sketch_t *k, uint64_t h)
{
	uint64_t m = mix64(h);
	unsigned est = 15;
	for (unsigned i = 0; i < 4; i++) {
		size_t w;
		unsigned sh;
		sketch_slot(k, m, i, &w, &sh);
		unsigned v = (unsigned)((k->w[w] >> sh) & 15);
		est = v < est ? v : est;
	}
	return est;
}

void rcache_free(rcache_t *c)
{
	if (c == NULL)
		return;
	rcache_clear(c);
	sketch_free(c->sk);
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
	bool admit = c->sk != NULL;
	if (admit && max_bytes != c->max_bytes)
		(void)rcache_set_admission(c, false);
	c->max_bytes = max_bytes;
	make_room(c, 0);
	if (admit && !c->sk)
		(void)rcache_set_admission(c, true);
}

int rcache_set_admission(rcache_t *c, bool on)
{
	if (!on || c->max_bytes == 0) {
		if (c->sk) {
			c->st.bytes -= c->sk->bytes;
			sketch_free(c->sk);
			c->sk = NULL;
		}
		return HDL_EOK;
	}
	if (c->sk)
		return HDL_EOK;
	sketch_t *k = sketch_new(c->max_bytes);
	if (!k)
		return HDL_ENOMEM;
	make_room(c, k->bytes);
	c->sk = k;
	c->st.bytes += k->bytes;
	return HDL_EOK;
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
	if (c->sk)
		sketch_add(c->sk, h);
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
	if (old != NULL) {
		entry_drop(c, old);
	} else if (c->sk && c->st.entries > 0 && c->st.bytes + cost > c->max_bytes) {
		/*
		 * Full: the key must be asked for more often than the entry it would evict. A key
		 * seen only now (this miss) is refused without looking at that entry, which on
		 * uniform traffic saves the two cold cache lines of the victim and its counters.
		 */
		unsigned est = sketch_est(c->sk, h);
		if (est <= 1 || est <= sketch_est(c->sk, c->lru.prev->hash)) {
			c->st.rejected++;
			return HDL_EAGAIN;
		}
	}
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

size_t rcache_drop_handle(rcache_t *c, hdl_slice_t norm_handle)
{
	uint8_t key[1 + HDL_MAX_HANDLE_LEN + 8];
	size_t n = 0;
	if (norm_handle.len + 1 > sizeof(key) || c->st.entries == 0)
		return 0;
	memcpy(key + 1, norm_handle.p, norm_handle.len);
	for (uint8_t shape = 0; shape <= RCACHE_KEY_PO; shape++) {
		key[0] = shape;
		uint64_t h = hash_key(key, norm_handle.len + 1u);
		entry_t *e = find(c, key, norm_handle.len + 1u, h);
		if (e) {
			entry_drop(c, e);
			n++;
		}
	}
	c->st.invalidations += n;
	return n;
}

/* ---- following the store's txlog ------------------------------------------------------------ */

typedef struct follow_walk {
	rcache_t *c;
	store_t *s;
	uint32_t max;
	uint32_t n;       /* records seen */
	uint64_t expect;  /* next serial */
	bool drop_all;
} follow_walk_t;

static int follow_rec(void *ctx, const store_txrec_t *rec)
{
	follow_walk_t *fw = ctx;
	if (rec->serial != fw->expect || ++fw->n > fw->max || rec->op == STORE_OP_HOME ||
	    rec->op == STORE_OP_UNHOME) {
		fw->drop_all = true; /* a gap, too many, or every answer under a prefix changed */
		return 1;
	}
	fw->expect = rec->serial + 1;
	uint8_t norm[HDL_MAX_HANDLE_LEN + 8];
	size_t nl = store_key(fw->s, rec->handle, norm, sizeof(norm));
	if (nl == 0) {
		fw->drop_all = true;
		return 1;
	}
	rcache_drop_handle(fw->c, (hdl_slice_t){norm, (uint32_t)nl});
	return 0;
}

void rcache_follow_txlog(rcache_t *c, store_t *s, store_reader_t *r, uint32_t max)
{
	uint64_t txn = store_reader_txn_id(r);
	if (c->follow && c->follow_txn == txn)
		return;
	if (!c->follow) {
		/* entries from before any serial was known cannot be checked */
		rcache_clear(c);
		c->follow_serial = store_reader_txlog_last(r);
		c->follow_txn = txn;
		c->follow = true;
		return;
	}
	follow_walk_t fw = {c, s, max, 0, c->follow_serial + 1, false};
	int ret = store_txlog_foreach(r, fw.expect, follow_rec, &fw);
	c->st.txlog_records += fw.n;
	if (ret != HDL_EOK || fw.drop_all || fw.n == 0) {
		rcache_clear(c);
		c->follow_serial = store_reader_txlog_last(r);
	} else {
		c->follow_serial = fw.expect - 1;
	}
	c->follow_txn = txn;
}

void rcache_get_stats(const rcache_t *c, rcache_stats_t *st)
{
	*st = c->st;
	st->max_bytes = c->max_bytes;
}
