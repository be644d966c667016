/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Node-wide connection and buffer accounting (see connlimit.h).
 */
#define _GNU_SOURCE
#include "node/server/connlimit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "hdl/error.h"

#define CL_BUCKETS 16384u /**< chains; a power of two */
#define CL_STRIPES 64u    /**< locks; bucket i is guarded by lock i % CL_STRIPES */

typedef struct cl_entry {
	struct cl_entry *next;
	conn_src_t src;
	uint32_t count;
} cl_entry_t;

struct connlimit {
	_Atomic uint32_t open;
	_Atomic uint32_t sources;
	_Atomic size_t mem;
	uint64_t k0, k1;
	pthread_mutex_t locks[CL_STRIPES];
	cl_entry_t *buckets[CL_BUCKETS];
};

/* ---- SipHash-2-4 (Aumasson & Bernstein, 2012) --------------------------------------------- */

static inline uint64_t rotl64(uint64_t x, unsigned b)
{
	return (x << b) | (x >> (64u - b));
}

static inline uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8u * i);
	return v;
}

#define SIP_ROUND(v0, v1, v2, v3)         \
	do {                              \
		v0 += v1;                 \
		v1 = rotl64(v1, 13) ^ v0; \
		v0 = rotl64(v0, 32);      \
		v2 += v3;                 \
		v3 = rotl64(v3, 16) ^ v2; \
		v0 += v3;                 \
		v3 = rotl64(v3, 21) ^ v0; \
		v2 += v1;                 \
		v1 = rotl64(v1, 17) ^ v2; \
		v2 = rotl64(v2, 32);      \
	} while (0)

uint64_t conn_siphash24(uint64_t k0, uint64_t k1, const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t v0 = k0 ^ 0x736f6d6570736575ull;
	uint64_t v1 = k1 ^ 0x646f72616e646f6dull;
	uint64_t v2 = k0 ^ 0x6c7967656e657261ull;
	uint64_t v3 = k1 ^ 0x7465646279746573ull;
	size_t whole = len & ~(size_t)7;
	for (size_t i = 0; i < whole; i += 8) {
		uint64_t m = le64(p + i);
		v3 ^= m;
		SIP_ROUND(v0, v1, v2, v3);
		SIP_ROUND(v0, v1, v2, v3);
		v0 ^= m;
	}
	/* the last block: the remaining bytes, the length in the top byte */
	uint64_t b = (uint64_t)(len & 0xff) << 56;
	for (size_t i = 0; i < (len & 7); i++)
		b |= (uint64_t)p[whole + i] << (8u * i);
	v3 ^= b;
	SIP_ROUND(v0, v1, v2, v3);
	SIP_ROUND(v0, v1, v2, v3);
	v0 ^= b;
	v2 ^= 0xff;
	for (int i = 0; i < 4; i++)
		SIP_ROUND(v0, v1, v2, v3);
	return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- sources -------------------------------------------------------------------------------- */

static void mask_bits(uint8_t b[16], unsigned bits)
{
	for (unsigned i = 0; i < 16; i++) {
		unsigned lo = i * 8u;
		if (bits >= lo + 8u)
			continue;
		b[i] = bits <= lo ? 0 : (uint8_t)(b[i] & (0xffu << (8u - (bits - lo))));
	}
}

void conn_src_make(const struct sockaddr *sa, unsigned v4_bits, unsigned v6_bits, conn_src_t *out)
{
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	memset(out, 0, sizeof(*out));
	if (v4_bits < 1 || v4_bits > 32)
		v4_bits = 32;
	if (v6_bits < 1 || v6_bits > 128)
		v6_bits = 128;
	if (sa && sa->sa_family == AF_INET) {
		memcpy(out->b, mapped, 12);
		memcpy(out->b + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		out->bits = (uint8_t)(96u + v4_bits);
	} else if (sa && sa->sa_family == AF_INET6) {
		memcpy(out->b, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
		out->bits =
		    memcmp(out->b, mapped, 12) == 0 ? (uint8_t)(96u + v4_bits) : (uint8_t)v6_bits;
	} else {
		out->bits = 0; /* AF_UNIX and the like: one source */
	}
	mask_bits(out->b, out->bits);
}

bool conn_src_eq(const conn_src_t *a, const conn_src_t *b)
{
	return a->bits == b->bits && memcmp(a->b, b->b, 16) == 0;
}

void conn_src_format(const conn_src_t *s, char *buf, size_t cap)
{
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	char a[INET6_ADDRSTRLEN];
	bool v4 = s->bits >= 96 && memcmp(s->b, mapped, 12) == 0;
	if (s->bits == 0) {
		snprintf(buf, cap, "local");
		return;
	}
	if (!inet_ntop(v4 ? AF_INET : AF_INET6, v4 ? s->b + 12 : s->b, a, sizeof(a)))
		snprintf(a, sizeof(a), "?");
	unsigned bits = v4 ? s->bits - 96u : s->bits;
	if (bits == (v4 ? 32u : 128u))
		snprintf(buf, cap, "%s", a);
	else
		snprintf(buf, cap, "%s/%u", a, bits);
}

/* ---- table ---------------------------------------------------------------------------------- */

int connlimit_new(connlimit_t **out)
{
	connlimit_t *cl = calloc(1, sizeof(*cl));
	if (!cl)
		return HDL_ENOMEM;
	uint64_t key[2] = {0, 0};
	if (getrandom(key, sizeof(key), GRND_NONBLOCK) != (ssize_t)sizeof(key)) {
		/* no entropy yet (early boot): a clock-derived key still differs per process */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		key[0] = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)ts.tv_sec;
		key[1] = (uint64_t)(uintptr_t)cl * 0xbf58476d1ce4e5b9ull ^ (uint64_t)getpid();
	}
	cl->k0 = key[0];
	cl->k1 = key[1];
	for (unsigned i = 0; i < CL_STRIPES; i++)
		pthread_mutex_init(&cl->locks[i], NULL);
	*out = cl;
	return HDL_EOK;
}

void connlimit_free(connlimit_t *cl)
{
	if (!cl)
		return;
	for (unsigned i = 0; i < CL_BUCKETS; i++) {
		cl_entry_t *e = cl->buckets[i];
		while (e) {
			cl_entry_t *next = e->next;
			free(e);
			e = next;
		}
	}
	for (unsigned i = 0; i < CL_STRIPES; i++)
		pthread_mutex_destroy(&cl->locks[i]);
	free(cl);
}

static unsigned bucket_of(const connlimit_t *cl, const conn_src_t *src)
{
	uint8_t k[17];
	memcpy(k, src->b, 16);
	k[16] = src->bits;
	return (unsigned)(conn_siphash24(cl->k0, cl->k1, k, sizeof(k)) & (CL_BUCKETS - 1u));
}

/* The entry of src in bucket bi (lock held), or NULL; *prevp is the link that points to it. */
static cl_entry_t *find(connlimit_t *cl, unsigned bi, const conn_src_t *src, cl_entry_t ***prevp)
{
	cl_entry_t **pp = &cl->buckets[bi];
	for (cl_entry_t *e = *pp; e; pp = &e->next, e = e->next) {
		if (conn_src_eq(&e->src, src)) {
			if (prevp)
				*prevp = pp;
			return e;
		}
	}
	return NULL;
}

cl_verdict_t connlimit_take(connlimit_t *cl, const conn_src_t *src, uint32_t max_total,
                            uint32_t max_per_source)
{
	uint32_t n = atomic_fetch_add_explicit(&cl->open, 1, memory_order_relaxed);
	if (n >= max_total) {
		atomic_fetch_sub_explicit(&cl->open, 1, memory_order_relaxed);
		return CL_NODE_FULL;
	}
	unsigned bi = bucket_of(cl, src);
	pthread_mutex_t *mu = &cl->locks[bi % CL_STRIPES];
	cl_verdict_t v = CL_OK;
	pthread_mutex_lock(mu);
	cl_entry_t *e = find(cl, bi, src, NULL);
	if (e && e->count >= max_per_source) {
		v = CL_SOURCE_FULL;
	} else if (e) {
		e->count++;
	} else if (max_per_source == 0) {
		v = CL_SOURCE_FULL;
	} else if ((e = malloc(sizeof(*e))) == NULL) {
		v = CL_NOMEM;
	} else {
		e->src = *src;
		e->count = 1;
		e->next = cl->buckets[bi];
		cl->buckets[bi] = e;
		atomic_fetch_add_explicit(&cl->sources, 1, memory_order_relaxed);
	}
	pthread_mutex_unlock(mu);
	if (v != CL_OK)
		atomic_fetch_sub_explicit(&cl->open, 1, memory_order_relaxed);
	return v;
}

void connlimit_put(connlimit_t *cl, const conn_src_t *src)
{
	unsigned bi = bucket_of(cl, src);
	pthread_mutex_t *mu = &cl->locks[bi % CL_STRIPES];
	cl_entry_t **pp = NULL;
	pthread_mutex_lock(mu);
	cl_entry_t *e = find(cl, bi, src, &pp);
	if (e && --e->count == 0) {
		*pp = e->next;
		free(e);
		atomic_fetch_sub_explicit(&cl->sources, 1, memory_order_relaxed);
	}
	pthread_mutex_unlock(mu);
	if (e)
		atomic_fetch_sub_explicit(&cl->open, 1, memory_order_relaxed);
}

uint32_t connlimit_open(const connlimit_t *cl)
{
	return atomic_load_explicit(&cl->open, memory_order_relaxed);
}

uint32_t connlimit_sources(const connlimit_t *cl)
{
	return atomic_load_explicit(&cl->sources, memory_order_relaxed);
}

uint32_t connlimit_source(connlimit_t *cl, const conn_src_t *src)
{
	unsigned bi = bucket_of(cl, src);
	pthread_mutex_t *mu = &cl->locks[bi % CL_STRIPES];
	pthread_mutex_lock(mu);
	cl_entry_t *e = find(cl, bi, src, NULL);
	uint32_t n = e ? e->count : 0;
	pthread_mutex_unlock(mu);
	return n;
}

void connlimit_mem_add(connlimit_t *cl, size_t n)
{
	atomic_fetch_add_explicit(&cl->mem, n, memory_order_relaxed);
}

void connlimit_mem_sub(connlimit_t *cl, size_t n)
{
	atomic_fetch_sub_explicit(&cl->mem, n, memory_order_relaxed);
}

size_t connlimit_mem(const connlimit_t *cl)
{
	return atomic_load_explicit(&cl->mem, memory_order_relaxed);
}
