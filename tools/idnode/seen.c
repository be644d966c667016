/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief A bounded set of 64-bit key fingerprints: `idnode import` remembers the handles of its
 *        input with it to count and report a handle given twice (the last line wins).
 *
 * Open addressing with linear probing, at most 3/4 full, doubled as it fills; at most \p max
 * keys (8 bytes a slot, so 16 * max bytes at the very most), after which it stops remembering.
 * A fingerprint is FNV-1a over the key with a final mix; two different keys share one with a
 * chance of about n^2 / 2^65 (10 million keys: ~3 in a million), which only adds a warning.
 */
#include <stdlib.h>
#include <string.h>

#include "tools/idnode/cmds.h"

#define SEEN_MIN_SLOTS 1024u

static uint64_t fingerprint(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	/* final avalanche (splitmix64) so that the low bits used as the slot number mix well */
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebull;
	h ^= h >> 31;
	return h ? h : 1; /* 0 marks an empty slot */
}

void idnode_seen_init(idnode_seen_t *s, size_t max)
{
	memset(s, 0, sizeof(*s));
	s->max = max;
}

void idnode_seen_free(idnode_seen_t *s)
{
	free(s->slots);
	memset(s, 0, sizeof(*s));
}

/** Put \p fp into \p slots (\p cap a power of two). \return true when it was there already */
static bool slot_put(uint64_t *slots, size_t cap, uint64_t fp)
{
	for (size_t i = (size_t)fp & (cap - 1);; i = (i + 1) & (cap - 1)) {
		if (slots[i] == fp)
			return true;
		if (slots[i] == 0) {
			slots[i] = fp;
			return false;
		}
	}
}

static bool seen_grow(idnode_seen_t *s)
{
	size_t cap = s->cap ? s->cap * 2 : SEEN_MIN_SLOTS;
	if (cap > SIZE_MAX / sizeof(uint64_t))
		return false;
	uint64_t *slots = calloc(cap, sizeof(uint64_t));
	if (slots == NULL)
		return false;
	for (size_t i = 0; i < s->cap; i++) {
		if (s->slots[i])
			(void)slot_put(slots, cap, s->slots[i]);
	}
	free(s->slots);
	s->slots = slots;
	s->cap = cap;
	return true;
}

int idnode_seen_add(idnode_seen_t *s, const uint8_t *key, size_t len)
{
	uint64_t fp = fingerprint(key, len);
	if (s->full) {
		/* no longer remembering: still recognize what was remembered */
		if (s->cap == 0)
			return -1;
		for (size_t i = (size_t)fp & (s->cap - 1); s->slots[i];
		     i = (i + 1) & (s->cap - 1)) {
			if (s->slots[i] == fp)
				return 1;
		}
		return -1;
	}
	if (s->n >= s->max || ((s->n + 1) * 4 > s->cap * 3 && !seen_grow(s))) {
		s->full = true;
		return idnode_seen_add(s, key, len);
	}
	if (slot_put(s->slots, s->cap, fp))
		return 1;
	s->n++;
	return 0;
}
