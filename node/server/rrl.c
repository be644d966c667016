/* SPDX-License-Identifier: Apache-2.0 */
/*
 * UDP response-rate limiting: a shared, fixed-size, set-associative table of token buckets keyed
 * by source prefix (see rrl.h for the design).
 *
 * Buckets count in thousandths of an answer ("milli-tokens"): a rate of R answers per second
 * refills R milli-tokens per millisecond, an answer costs 1000, and the depth is burst * 1000.
 * In any window of T seconds a prefix is therefore answered at most burst + R * T times, however
 * many workers its requests reach: every worker charges the same bucket under the same lock.
 *
 * Prefixes are hashed with a per-process random key so that an attacker cannot aim many
 * prefixes at one set (the mixer is a keyed 64-bit finalizer: cheap, not cryptographic; the
 * worst an aimed collision achieves is sharing, i.e. being limited together with a victim).
 */
#define _GNU_SOURCE
#include "node/server/rrl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "hdl/error.h"
#include "node/common/log.h"
#include "node/conf/conf.h"

#define RRL_WAYS          4u    /* buckets per set */
#define RRL_MAX_LOCKS     1024u /* mutex stripes */
#define RRL_MIN_ENTRIES   64u
#define RRL_COST          1000u /* milli-tokens per answer */
#define RRL_NEVER         UINT64_MAX
#define RRL_MAX_WHITELIST 4096u

typedef struct rrl_entry {
	uint64_t key;     /* prefix and family tag (prefix_key); 0 = free */
	uint64_t last_ms; /* time of the last refill */
	uint64_t tokens;  /* milli-tokens */
	uint64_t log_ms;  /* time of the last log line about this bucket, RRL_NEVER = none yet */
	uint32_t slip_n;  /* limited requests, for the every-Nth slip */
	uint32_t limited; /* limited requests since the last log line */
} rrl_entry_t;

/* One worker's counters, on a cache line of their own (single writer, relaxed atomics). */
typedef struct rrl_ctr {
	_Atomic uint64_t c[RRL_N_COUNTERS];
	char pad[64 - (RRL_N_COUNTERS * sizeof(uint64_t)) % 64];
} rrl_ctr_t;

/* ::ffff:0:0/96, the IPv4-mapped IPv6 addresses */
static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

typedef struct rrl_net {
	int family;
	unsigned len;
	uint8_t addr[16];
} rrl_net_t;

struct rrl {
	rrl_entry_t *e;
	uint64_t set_mask;
	pthread_mutex_t *locks;
	uint64_t lock_mask;
	uint64_t k0, k1; /* hash key */
	rrl_net_t *wl;
	unsigned n_wl, cap_wl;
	rrl_ctr_t *ctr;
	unsigned n_workers;
};

static uint64_t round_pow2(uint64_t v)
{
	uint64_t p = 1;
	while (p < v)
		p <<= 1;
	return p;
}

static void random_key(uint64_t *k0, uint64_t *k1)
{
	uint64_t k[2] = {0, 0};
	ssize_t n;
	do {
		n = getrandom(k, sizeof(k), GRND_NONBLOCK);
	} while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(k)) {
		/* no entropy yet: the clock is still unknown to a remote sender */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		k[0] ^= (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		k[1] ^= (uint64_t)ts.tv_nsec << 21 ^ (uint64_t)ts.tv_sec;
	}
	*k0 = k[0];
	*k1 = k[1] | 1u;
}

int rrl_new(uint32_t entries, unsigned n_workers, rrl_t **out)
{
	*out = NULL;
	if (n_workers == 0)
		return HDL_EINVAL;
	rrl_t *r = calloc(1, sizeof(*r));
	if (!r)
		return HDL_ENOMEM;
	uint64_t n = round_pow2(entries < RRL_MIN_ENTRIES ? RRL_MIN_ENTRIES : entries);
	uint64_t sets = n / RRL_WAYS;
	uint64_t locks = sets < RRL_MAX_LOCKS ? sets : RRL_MAX_LOCKS;
	r->set_mask = sets - 1;
	r->lock_mask = locks - 1;
	r->n_workers = n_workers;
	r->e = calloc(n, sizeof(*r->e));
	r->locks = calloc(locks, sizeof(*r->locks));
	r->ctr = aligned_alloc(64, sizeof(*r->ctr) * n_workers);
	if (!r->e || !r->locks || !r->ctr) {
		free(r->e);
		free(r->locks);
		free(r->ctr);
		free(r);
		return HDL_ENOMEM;
	}
	for (uint64_t i = 0; i < locks; i++)
		pthread_mutex_init(&r->locks[i], NULL);
	for (unsigned i = 0; i < n_workers; i++) {
		for (unsigned k = 0; k < RRL_N_COUNTERS; k++)
			atomic_init(&r->ctr[i].c[k], 0);
	}
	random_key(&r->k0, &r->k1);
	*out = r;
	return HDL_EOK;
}

typedef struct wl_add {
	rrl_t *r;
	int ret;
} wl_add_t;

static void wl_add_cb(void *arg, int family, const uint8_t addr[16], unsigned len)
{
	wl_add_t *a = arg;
	if (a->ret == HDL_EOK)
		a->ret = rrl_whitelist_add(a->r, family, addr, len);
}

int rrl_new_from_conf(const conf_t *c, unsigned n_workers, rrl_t **out)
{
	int ret = rrl_new(c->udp_rrl_table_size, n_workers, out);
	if (ret != HDL_EOK)
		return ret;
	wl_add_t a = {*out, HDL_EOK};
	for (unsigned i = 0; i < c->n_udp_rrl_whitelist && a.ret == HDL_EOK; i++) {
		if (conf_each_net(c->udp_rrl_whitelist[i], wl_add_cb, &a) < 0)
			a.ret = HDL_ECONF;
	}
	if (a.ret != HDL_EOK) {
		rrl_free(*out);
		*out = NULL;
	}
	return a.ret;
}

void rrl_free(rrl_t *r)
{
	if (!r)
		return;
	for (uint64_t i = 0; i <= r->lock_mask; i++)
		pthread_mutex_destroy(&r->locks[i]);
	free(r->locks);
	free(r->e);
	free(r->ctr);
	free(r->wl);
	free(r);
}

int rrl_whitelist_add(rrl_t *r, int family, const uint8_t addr[16], unsigned len)
{
	if ((family != AF_INET || len > 32) && (family != AF_INET6 || len > 128))
		return HDL_EINVAL;
	if (r->n_wl == r->cap_wl) {
		if (r->cap_wl >= RRL_MAX_WHITELIST)
			return HDL_ELIMIT;
		unsigned nc = r->cap_wl ? r->cap_wl * 2 : 8;
		rrl_net_t *n = realloc(r->wl, sizeof(*n) * nc);
		if (!n)
			return HDL_ENOMEM;
		r->wl = n;
		r->cap_wl = nc;
	}
	rrl_net_t *n = &r->wl[r->n_wl++];
	memset(n, 0, sizeof(*n));
	n->family = family;
	n->len = len;
	memcpy(n->addr, addr, family == AF_INET ? 4 : 16);
	if (family == AF_INET6 && len >= 96 && memcmp(addr, v4_mapped, sizeof(v4_mapped)) == 0) {
		/* ::ffff:a.b.c.d/96+n: sources are matched as IPv4 (sa_bytes), so is this */
		n->family = AF_INET;
		n->len = len - 96;
		memmove(n->addr, n->addr + 12, 4);
		memset(n->addr + 4, 0, 12);
	}
	return HDL_EOK;
}

/* The address bytes of \p sa; IPv4-mapped IPv6 addresses count as IPv4. \return family or 0 */
static int sa_bytes(const struct sockaddr *sa, const uint8_t **a)
{
	if (sa->sa_family == AF_INET) {
		*a = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
		return AF_INET;
	}
	if (sa->sa_family == AF_INET6) {
		const uint8_t *b = (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (memcmp(b, v4_mapped, sizeof(v4_mapped)) == 0) {
			*a = b + 12;
			return AF_INET;
		}
		*a = b;
		return AF_INET6;
	}
	return 0;
}

static bool net_match(const rrl_net_t *n, int family, const uint8_t *a)
{
	if (n->family != family)
		return false;
	unsigned whole = n->len / 8, rest = n->len % 8;
	if (memcmp(n->addr, a, whole) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xFFu << (8 - rest));
	return (n->addr[whole] & mask) == (a[whole] & mask);
}

bool rrl_whitelisted(const rrl_t *r, const struct sockaddr *sa)
{
	const uint8_t *a = NULL;
	int family = sa_bytes(sa, &a);
	if (!family)
		return false;
	for (unsigned i = 0; i < r->n_wl; i++) {
		if (net_match(&r->wl[i], family, a))
			return true;
	}
	return false;
}

/* /24 of IPv4 or /56 of IPv6 in the high bits, the family in the low byte; 0 = other family. */
static uint64_t prefix_key(int family, const uint8_t *a)
{
	uint64_t k = 0;
	if (family == AF_INET)
		return (uint64_t)a[0] << 32 | (uint64_t)a[1] << 24 | (uint64_t)a[2] << 16 | 4u;
	if (family != AF_INET6)
		return 0;
	for (unsigned i = 0; i < 7; i++)
		k = k << 8 | a[i];
	return k << 8 | 6u;
}

static uint64_t key_hash(const rrl_t *r, uint64_t k)
{
	k ^= r->k0;
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdull;
	k ^= k >> 33;
	k ^= r->k1;
	k *= 0xc4ceb9fe1a85ec53ull;
	k ^= k >> 33;
	return k;
}

/* Refill \p e up to \p depth at \p rate milli-tokens per millisecond. */
static void refill(rrl_entry_t *e, uint64_t now, uint64_t rate, uint64_t depth)
{
	if (e->tokens > depth)
		e->tokens = depth; /* a reload made the bucket shallower */
	if (now <= e->last_ms)
		return; /* a worker with a slightly older clock reading: no refill */
	uint64_t need = depth - e->tokens;
	uint64_t el = now - e->last_ms;
	if (el >= (need + rate - 1) / rate)
		e->tokens = depth;
	else
		e->tokens += el * rate;
	e->last_ms = now;
}

/* True when \p e holds no prefix, or its bucket would be full by now (forgetting it is free). */
static bool idle(const rrl_entry_t *e, uint64_t now, uint64_t rate, uint64_t depth)
{
	if (e->key == 0)
		return true;
	if (e->tokens >= depth)
		return true;
	if (now <= e->last_ms)
		return false;
	return now - e->last_ms >= (depth - e->tokens + rate - 1) / rate;
}

const char *rrl_prefix_str(const struct sockaddr *sa, char *buf, size_t cap)
{
	const uint8_t *a = NULL;
	uint8_t p[16];
	char txt[INET6_ADDRSTRLEN];
	int family = sa_bytes(sa, &a);
	if (cap)
		buf[0] = '\0';
	if (!family)
		return buf;
	memset(p, 0, sizeof(p));
	memcpy(p, a, family == AF_INET ? 3 : 7);
	if (inet_ntop(family, p, txt, sizeof(txt)))
		snprintf(buf, cap, "%s/%u", txt, family == AF_INET ? 24u : 56u);
	return buf;
}

static void ctr_add(rrl_t *r, unsigned worker, rrl_counter_t which)
{
	if (worker >= r->n_workers)
		worker = 0; /* the counters are atomics: a shared slot stays correct */
	atomic_fetch_add_explicit(&r->ctr[worker].c[which], 1, memory_order_relaxed);
}

void rrl_count(rrl_t *r, unsigned worker, rrl_counter_t which)
{
	if (r && which < RRL_N_COUNTERS)
		ctr_add(r, worker, which);
}

rrl_verdict_t rrl_check(rrl_t *r, unsigned worker, const struct sockaddr *sa, const rrl_params_t *p,
                        uint64_t now_ms)
{
	const uint8_t *a;
	if (!r || p->rate == 0)
		return RRL_PASS;
	int family = sa_bytes(sa, &a);
	uint64_t key = prefix_key(family, a);
	if (key == 0)
		return RRL_PASS;
	if (r->n_wl && rrl_whitelisted(r, sa))
		return RRL_PASS;
	uint64_t rate = p->rate; /* milli-tokens per millisecond */
	uint64_t depth = (uint64_t)(p->burst ? p->burst : p->rate) * RRL_COST;
	uint64_t h = key_hash(r, key);
	uint64_t set = h & r->set_mask;
	rrl_entry_t *ways = &r->e[set * RRL_WAYS];
	pthread_mutex_t *mu = &r->locks[set & r->lock_mask];
	rrl_entry_t *e = NULL;
	bool shared = false, do_log = false;
	uint32_t nlim = 0;
	rrl_verdict_t v = RRL_PASS;

	pthread_mutex_lock(mu);
	for (unsigned i = 0; i < RRL_WAYS && !e; i++) {
		if (ways[i].key == key)
			e = &ways[i];
	}
	for (unsigned i = 0; i < RRL_WAYS && !e; i++) {
		if (idle(&ways[i], now_ms, rate, depth)) {
			e = &ways[i];
			e->key = key;
			e->tokens = depth;
			e->last_ms = now_ms;
			e->log_ms = RRL_NEVER;
			e->slip_n = 0;
			e->limited = 0;
		}
	}
	if (!e) {
		/* every bucket of the set is busy: share one (its owner is not reset) */
		e = &ways[(h >> 62) & (RRL_WAYS - 1)];
		shared = true;
	}
	refill(e, now_ms, rate, depth);
	if (e->tokens >= RRL_COST) {
		e->tokens -= RRL_COST;
	} else {
		e->slip_n++;
		e->limited++;
		v = p->slip && e->slip_n % p->slip == 0 ? RRL_SLIP : RRL_DROP;
		if (e->log_ms == RRL_NEVER || now_ms >= e->log_ms + RRL_LOG_INTERVAL_MS) {
			do_log = true;
			nlim = e->limited;
			e->limited = 0;
			e->log_ms = now_ms;
		}
	}
	pthread_mutex_unlock(mu);

	if (shared)
		ctr_add(r, worker, RRL_CTR_SHARED);
	if (v == RRL_PASS)
		return v;
	ctr_add(r, worker, RRL_CTR_LIMITED);
	ctr_add(r, worker, v == RRL_SLIP ? RRL_CTR_SLIPPED : RRL_CTR_DROPPED);
	if (do_log) {
		char pfx[INET6_ADDRSTRLEN + 8];
		log_peer(LOG_LVL_NOTICE,
		         "udp rrl: limiting answers to %s (%u/s, burst %u): %u request(s) over the "
		         "rate since its last line",
		         rrl_prefix_str(sa, pfx, sizeof(pfx)), p->rate,
		         p->burst ? p->burst : p->rate, nlim);
	}
	return v;
}

void rrl_get_stats(const rrl_t *r, rrl_stats_t *st)
{
	memset(st, 0, sizeof(*st));
	if (!r)
		return;
	for (unsigned i = 0; i < r->n_workers; i++) {
		for (unsigned k = 0; k < RRL_N_COUNTERS; k++)
			st->c[k] += atomic_load_explicit(&r->ctr[i].c[k], memory_order_relaxed);
	}
}

void rrl_log_stats(const rrl_t *r, const char *when)
{
	rrl_stats_t st;
	if (!r)
		return;
	rrl_get_stats(r, &st);
	log_info(
	    "udp (%s): rrl limited %llu request(s) (%llu slipped, %llu dropped), %llu charged "
	    "to a shared bucket; %llu answer(s) over the UDP answer cap redirected to TCP",
	    when, (unsigned long long)st.c[RRL_CTR_LIMITED],
	    (unsigned long long)st.c[RRL_CTR_SLIPPED], (unsigned long long)st.c[RRL_CTR_DROPPED],
	    (unsigned long long)st.c[RRL_CTR_SHARED], (unsigned long long)st.c[RRL_CTR_REDIRECTED]);
}
