/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Bump allocator for per-request decoding (hdl_arena_t).
 */
#include <stdlib.h>
#include <string.h>

#include "hdl/msg.h"

struct hdl_arena_chunk {
	struct hdl_arena_chunk *next;
	size_t cap;
	size_t used;
	uint8_t data[];
};

#define ARENA_ALIGN     8u
#define ARENA_CHUNK_MIN 16384u

void hdl_arena_init(hdl_arena_t *a, void *buf, size_t cap, size_t heap_limit)
{
	memset(a, 0, sizeof(*a));
	a->buf = buf;
	a->cap = buf ? cap : 0;
	a->limit = heap_limit;
}

static size_t align_up(size_t n)
{
	return (n + (ARENA_ALIGN - 1)) & ~(size_t)(ARENA_ALIGN - 1);
}

void *hdl_arena_alloc(hdl_arena_t *a, size_t n)
{
	if (n == 0)
		n = 1;
	if (n > SIZE_MAX / 2)
		return NULL;
	n = align_up(n);
	if (a->chunks == NULL || a->chunks->used == 0) {
		/* still in the first (caller) block */
		if (a->cap - a->used >= n) {
			void *p = a->buf + a->used;
			a->used += n;
			memset(p, 0, n);
			return p;
		}
	}
	struct hdl_arena_chunk *c = a->chunks;
	if (c && c->cap - c->used >= n) {
		void *p = c->data + c->used;
		c->used += n;
		memset(p, 0, n);
		return p;
	}
	size_t want = n > ARENA_CHUNK_MIN ? n : ARENA_CHUNK_MIN;
	if (a->limit && a->heap + want > a->limit) {
		if (a->heap + n > a->limit)
			return NULL;
		want = n;
	}
	c = malloc(sizeof(*c) + want);
	if (c == NULL)
		return NULL;
	c->cap = want;
	c->used = n;
	c->next = a->chunks;
	a->chunks = c;
	a->heap += want;
	memset(c->data, 0, n);
	return c->data;
}

hdl_slice_t hdl_arena_dup(hdl_arena_t *a, const void *p, size_t n)
{
	hdl_slice_t s = {NULL, 0};
	if (n > UINT32_MAX)
		return s;
	uint8_t *d = hdl_arena_alloc(a, n + 1);
	if (d == NULL)
		return s;
	if (n)
		memcpy(d, p, n);
	d[n] = 0;
	s.p = d;
	s.len = (uint32_t)n;
	return s;
}

void hdl_arena_reset(hdl_arena_t *a)
{
	/* keep the newest chunk for reuse; free the others */
	struct hdl_arena_chunk *keep = a->chunks;
	if (keep) {
		struct hdl_arena_chunk *c = keep->next;
		while (c) {
			struct hdl_arena_chunk *next = c->next;
			free(c);
			c = next;
		}
		keep->next = NULL;
		keep->used = 0;
		a->heap = keep->cap;
	}
	a->used = 0;
}

void hdl_arena_free(hdl_arena_t *a)
{
	struct hdl_arena_chunk *c = a->chunks;
	while (c) {
		struct hdl_arena_chunk *next = c->next;
		free(c);
		c = next;
	}
	a->chunks = NULL;
	a->heap = 0;
	a->used = 0;
}
