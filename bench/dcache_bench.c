/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Read paths of the shared resolver cache under threads: the real dcache_get() (a mutex
 *        per shard, LRU move and copy-out under it) against prototypes of the alternatives on
 *        the same sharded chained table, hash and copy-out:
 *          rwlock  a reader-writer lock per shard, CLOCK reference bit instead of the LRU move;
 *          ebr     lock-free readers that announce an epoch (store + full fence) per lookup,
 *                  what an RCU with epoch-based reclamation costs a reader;
 *          qsbr    lock-free readers that only report a quiescent state now and then (what
 *                  liburcu-qsbr costs a reader: the bare walk).
 *        The prototypes are read-only (nothing here frees under readers); they price the read
 *        side only, which is the question (docs/resolver-cache.md has the figures and choice).
 *        Also dcache_get() with 1 % dcache_put() mixed in (writers on the same locks).
 *
 * Usage: dcache_bench [-t MAX_THREADS] [-k KEYS] [-v VALUE_BYTES] [-d MS_PER_CELL] [-r REPS]
 * Prints one line per cell: path, pattern (uniform / hot: 90 % of lookups on 16 keys),
 * threads, lookups per wall second, and CPU nanoseconds per lookup (the threads' own CPU
 * time, CLOCK_THREAD_CPUTIME_ID: steadier than wall time on a shared machine), each the
 * median of REPS runs of the cell.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "node/resolver/dcache.c"
#include "node/resolver/rhash.c"

#define MAX_THREADS 64

static unsigned n_keys = 100000, val_bytes = 300, cell_ms = 500, max_threads = 8;
static uint8_t **keys;
static size_t *klens;

/* ---- prototype table ---------------------------------------------------------------------- */

typedef struct pent {
	struct pent *_Atomic next;
	uint64_t h;
	uint32_t klen, vlen;
	_Atomic uint8_t ref;
	uint8_t data[];
} pent_t;

typedef struct pshard {
	_Alignas(64) pthread_rwlock_t rw;
	pent_t *_Atomic *b;
	size_t nb;
} pshard_t;

#define PSHARDS 64u
static pshard_t pt[PSHARDS];
static uint64_t pkey[2];

/* one epoch slot per thread, on its own cache line */
typedef struct eslot {
	_Alignas(64) _Atomic uint64_t epoch;
} eslot_t;
static eslot_t eslots[MAX_THREADS];
static _Atomic uint64_t global_epoch = 2;

static void proto_build(void)
{
	rhash_new_key(pkey);
	for (unsigned i = 0; i < PSHARDS; i++) {
		pthread_rwlock_init(&pt[i].rw, NULL);
		pt[i].nb = 1;
		while (pt[i].nb < n_keys / PSHARDS)
			pt[i].nb *= 2;
		pt[i].b = calloc(pt[i].nb, sizeof(*pt[i].b));
	}
	for (unsigned i = 0; i < n_keys; i++) {
		hdl_slice_t h;
		dcache_key_handle(keys[i], klens[i], &h);
		uint64_t gh = rhash_sip13(h.p, h.len, pkey);
		pshard_t *s = &pt[gh >> 58];
		pent_t *e = calloc(1, sizeof(*e) + klens[i] + val_bytes);
		e->h = gh;
		e->klen = (uint32_t)klens[i];
		e->vlen = val_bytes;
		memcpy(e->data, keys[i], klens[i]);
		size_t slot = gh & (s->nb - 1);
		atomic_store(&e->next, atomic_load(&s->b[slot]));
		atomic_store(&s->b[slot], e);
	}
}

static const pent_t *proto_find(pshard_t *s, const uint8_t *k, size_t kl, uint64_t gh)
{
	for (pent_t *e = atomic_load_explicit(&s->b[gh & (s->nb - 1)], memory_order_acquire); e;
	     e = atomic_load_explicit(&e->next, memory_order_acquire)) {
		if (e->h == gh && e->klen == kl && memcmp(e->data, k, kl) == 0)
			return e;
	}
	return NULL;
}

static bool proto_copy(const pent_t *e, uint8_t *buf)
{
	if (!e)
		return false;
	memcpy(buf, e->data + e->klen, e->vlen);
	if (!atomic_load_explicit(&e->ref, memory_order_relaxed))
		atomic_store_explicit((_Atomic uint8_t *)&e->ref, 1, memory_order_relaxed);
	return true;
}

static uint64_t proto_hash(const uint8_t *k, size_t kl)
{
	hdl_slice_t h;
	dcache_key_handle(k, kl, &h);
	return rhash_sip13(h.p, h.len, pkey);
}

/* ---- cells -------------------------------------------------------------------------------- */

enum path { P_MUTEX, P_MUTEX_MIXED, P_RWLOCK, P_EBR, P_QSBR, P_N };
static const char *const path_name[P_N] = {"mutex(dcache)", "mutex+1%put", "rwlock", "ebr", "qsbr"};

typedef struct targ {
	dcache_t *c;
	enum path path;
	bool hot;
	unsigned id;
	_Atomic bool *stop;
	uint64_t ops;
	double cpu_s;
	pthread_barrier_t *go;
} targ_t;

static double thread_cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *cell_thread(void *p)
{
	targ_t *a = p;
	uint8_t *buf = malloc(val_bytes + 64);
	uint64_t x = 0x9E3779B97F4A7C15ull * (a->id + 1);
	uint8_t vals[1024];
	size_t vl = 0;
	if (a->path == P_MUTEX_MIXED) {
		hdl_value_t v = {.index = 1,
		                 .ttl = 3600,
		                 .perms = HDL_PERM_DEFAULT,
		                 .type = {(const uint8_t *)"URL", 3}};
		static uint8_t data[1024];
		v.data = (hdl_slice_t){data, val_bytes > 64 ? val_bytes - 60 : 4};
		/* encoded by hand: the bench links no proto library */
		wire_wr_t w = wire_wr_init(vals, sizeof(vals));
		wire_wr_u32(&w, 1);
		wire_wr_u32(&w, v.index);
		wire_wr_u32(&w, 0);
		wire_wr_u8(&w, 0);
		wire_wr_u32(&w, v.ttl);
		wire_wr_u8(&w, v.perms);
		wire_wr_lbytes(&w, v.type.p, v.type.len);
		wire_wr_lbytes(&w, v.data.p, v.data.len);
		wire_wr_u32(&w, 0);
		vl = w.pos;
	}
	pthread_barrier_wait(a->go);
	double cpu0 = thread_cpu_s();
	uint64_t n = 0;
	while (!atomic_load_explicit(a->stop, memory_order_relaxed)) {
		for (int i = 0; i < 64; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			unsigned k = a->hot && (x % 10) != 0 ? (unsigned)(x >> 32) % 16
			                                     : (unsigned)((x >> 20) % n_keys);
			dcache_hit_t hit;
			switch (a->path) {
			case P_MUTEX:
				(void)dcache_get(a->c, keys[k], klens[k], 0, buf, val_bytes + 64,
				                 &hit);
				break;
			case P_MUTEX_MIXED:
				if (x % 100 == 0)
					(void)dcache_put(a->c, keys[k], klens[k], HDL_RC_SUCCESS,
					                 vals, vl);
				else
					(void)dcache_get(a->c, keys[k], klens[k], 0, buf,
					                 val_bytes + 64, &hit);
				break;
			case P_RWLOCK: {
				uint64_t gh = proto_hash(keys[k], klens[k]);
				pshard_t *s = &pt[gh >> 58];
				pthread_rwlock_rdlock(&s->rw);
				(void)proto_copy(proto_find(s, keys[k], klens[k], gh), buf);
				pthread_rwlock_unlock(&s->rw);
				break;
			}
			case P_EBR: {
				uint64_t gh = proto_hash(keys[k], klens[k]);
				atomic_store_explicit(&eslots[a->id].epoch,
				                      atomic_load(&global_epoch) | 1,
				                      memory_order_relaxed);
				atomic_thread_fence(memory_order_seq_cst);
				(void)proto_copy(proto_find(&pt[gh >> 58], keys[k], klens[k], gh),
				                 buf);
				atomic_store_explicit(&eslots[a->id].epoch, 0,
				                      memory_order_release);
				break;
			}
			case P_QSBR: {
				uint64_t gh = proto_hash(keys[k], klens[k]);
				(void)proto_copy(proto_find(&pt[gh >> 58], keys[k], klens[k], gh),
				                 buf);
				break;
			}
			default: break;
			}
		}
		n += 64;
		if (a->path == P_QSBR) /* a quiescent state per batch, as a worker loop would */
			atomic_store_explicit(
			    &eslots[a->id].epoch,
			    atomic_load_explicit(&global_epoch, memory_order_relaxed),
			    memory_order_release);
	}
	a->ops = n;
	a->cpu_s = thread_cpu_s() - cpu0;
	free(buf);
	return NULL;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned reps = 3;

static int cmp_double(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;
	return a < b ? -1 : a > b;
}

/* One run of a cell: lookups per wall second and CPU ns per lookup. */
static void cell_once(dcache_t *c, enum path path, bool hot, unsigned nt, double *rate,
                      double *cpu_ns)
{
	pthread_t th[MAX_THREADS];
	targ_t a[MAX_THREADS];
	_Atomic bool stop = false;
	pthread_barrier_t go;
	pthread_barrier_init(&go, NULL, nt + 1);
	for (unsigned i = 0; i < nt; i++) {
		a[i] = (targ_t){c, path, hot, i, &stop, 0, 0, &go};
		pthread_create(&th[i], NULL, cell_thread, &a[i]);
	}
	pthread_barrier_wait(&go);
	double t0 = now_s();
	struct timespec d = {cell_ms / 1000, (long)(cell_ms % 1000) * 1000000L};
	nanosleep(&d, NULL);
	atomic_store(&stop, true);
	uint64_t ops = 0;
	double cpu = 0;
	for (unsigned i = 0; i < nt; i++) {
		pthread_join(th[i], NULL);
		ops += a[i].ops;
		cpu += a[i].cpu_s;
	}
	double secs = now_s() - t0;
	pthread_barrier_destroy(&go);
	*rate = (double)ops / secs;
	*cpu_ns = cpu * 1e9 / (double)ops;
}

static void cell(dcache_t *c, enum path path, bool hot, unsigned nt)
{
	double rate[16], cpu[16];
	for (unsigned r = 0; r < reps; r++)
		cell_once(c, path, hot, nt, &rate[r], &cpu[r]);
	qsort(rate, reps, sizeof(double), cmp_double);
	qsort(cpu, reps, sizeof(double), cmp_double);
	printf("%-14s %-7s threads %2u  %8.2f M lookups/s  %7.1f CPU ns/lookup\n", path_name[path],
	       hot ? "hot" : "uniform", nt, rate[reps / 2] / 1e6, cpu[reps / 2]);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	for (int i = 1; i + 1 < argc; i += 2) {
		unsigned v = (unsigned)strtoul(argv[i + 1], NULL, 10);
		if (strcmp(argv[i], "-t") == 0 && v >= 1 && v <= MAX_THREADS)
			max_threads = v;
		else if (strcmp(argv[i], "-k") == 0 && v >= 16)
			n_keys = v;
		else if (strcmp(argv[i], "-v") == 0 && v >= 16 && v <= 900)
			val_bytes = v;
		else if (strcmp(argv[i], "-d") == 0 && v >= 10 && v <= 60000)
			cell_ms = v;
		else if (strcmp(argv[i], "-r") == 0 && v >= 1 && v <= 15)
			reps = v;
		else {
			fprintf(stderr, "usage: dcache_bench [-t MAX_THREADS] [-k KEYS] "
			                "[-v VALUE_BYTES] [-d MS_PER_CELL] [-r REPS]\n");
			return 2;
		}
	}
	keys = calloc(n_keys, sizeof(*keys));
	klens = calloc(n_keys, sizeof(*klens));
	dcache_opts_t o = {.max_bytes = (size_t)n_keys * (val_bytes + 256) * 2,
	                   .policy = {.max_ttl = 86400, .negative_ttl = 60, .stale_max = 3600}};
	dcache_t *c = NULL;
	if (dcache_new(&o, &c) != HDL_EOK)
		return 3;
	/* one value of val_bytes in all: U32 count + 14 fixed + type + data + refs */
	static uint8_t vals[1024];
	wire_wr_t w = wire_wr_init(vals, sizeof(vals));
	size_t data_len = val_bytes - 4 - 14 - 4 - 3 - 4 - 4;
	static uint8_t data[1024];
	wire_wr_u32(&w, 1);
	wire_wr_u32(&w, 1);
	wire_wr_u32(&w, 0);
	wire_wr_u8(&w, 0);
	wire_wr_u32(&w, 3600);
	wire_wr_u8(&w, HDL_PERM_DEFAULT);
	wire_wr_lbytes(&w, "URL", 3);
	wire_wr_lbytes(&w, data, data_len);
	wire_wr_u32(&w, 0);
	for (unsigned i = 0; i < n_keys; i++) {
		char name[64];
		snprintf(name, sizeof(name), "88.100.2/DEVICE-%08u", i);
		keys[i] = malloc(128);
		klens[i] = dcache_key(keys[i], 128,
		                      (hdl_slice_t){(const uint8_t *)name, (uint32_t)strlen(name)},
		                      NULL, 0, NULL, 0, true);
		if (dcache_put(c, keys[i], klens[i], HDL_RC_SUCCESS, vals, w.pos) != HDL_EOK)
			return 3;
	}
	proto_build();
	printf("# %u keys, %u-byte values, median of %u x %u ms per cell; dcache %u shards\n",
	       n_keys, val_bytes, reps, cell_ms, c->nshards);
	for (int hot = 0; hot <= 1; hot++) {
		for (int p = 0; p < P_N; p++) {
			for (unsigned nt = 1; nt <= max_threads; nt *= 2)
				cell(c, (enum path)p, hot, nt);
		}
	}
	dcache_free(c);
	return 0;
}
