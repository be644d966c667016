/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief The resolver cache: answers to resolutions that were asked upstream (handles under
 *        prefixes this node does not home), shared by every worker thread, bounded in bytes,
 *        with TTLs, negative entries, serve-stale (RFC 8767) and one prefetch signal per entry.
 *
 * Keys. A key is the canonical encoding of a question (dcache_key()): the normalized handle and
 * the query shape, so that two requests that must get the same answer meet on one entry:
 *
 *     U16 handle length, handle bytes (normalized: hdl_name_normalize() with the node's case rule)
 *     U8  flags (bit 0: PO, public only)
 *     U16 index count, count x U32 index     (ascending, duplicates removed)
 *     U16 type count, count x (U16 length, type bytes)
 *                                            (ASCII upper-cased, sorted bytewise, duplicates
 *                                             removed; "URL." stays distinct from "URL")
 *
 * Order and repetition in a request's lists do not change its answer (a value is selected when
 * its index is listed or its type matches, handle-protocol.md §5.1, in stored order), hence the
 * sorting; type matching is ASCII case-insensitive, hence the folding. All shapes of one handle
 * share a shard and a bucket, which makes dcache_invalidate() one bucket walk; a handle keeps at
 * most DCACHE_SHAPES_MAX shapes (the least recently used shape of that handle makes room).
 *
 * Entries. The answer as the Handle wire values part (U32 count + HandleValue encodings, the form
 * node/store and dispatch use) plus the response code. Values without PUBLIC_READ are never
 * stored: dcache_put() filters them out before anything is copied. Lookups copy the entry into a
 * caller buffer under the shard lock; no pointer into the cache is ever handed out.
 *
 * TTL (handle-protocol.md §5.1: TTL type 0 = seconds relative to when the value was received,
 * 1 = absolute Unix time). The entry lives for the smallest TTL among its stored values, capped
 * by max_ttl and then floored by min_ttl; an absolute TTL already past counts as 0. Answers
 * without values (RC 100 HANDLE_NOT_FOUND, RC 200 VALUES_NOT_FOUND, a success with no values)
 * live negative_ttl seconds (0 = not cached). A TTL that works out to 0 is not cached.
 *
 * Serve-stale (RFC 8767). An expired entry is kept up to stale_max seconds past its expiry. A
 * plain lookup does not return it (a miss, flagged DCACHE_STALE to say a stale copy exists); a
 * lookup with DCACHE_GET_STALE_OK returns it flagged DCACHE_STALE: the caller asks for it when
 * upstream failed or its client-timeout budget ran out, answers with it and refreshes in the
 * background. Past the stale window the entry is dropped.
 *
 * Prefetch. A fresh hit within prefetch_pct % of the entry's TTL from its expiry is flagged
 * DCACHE_PREFETCH, once per stored entry, so that one refresh starts rather than one per hit.
 *
 * Memory. max_bytes bounds the entries (their bookkeeping, key and values) and the shards' hash
 * tables; it is split evenly among the shards, each with its own mutex, hash table and
 * least-recently-used list, and each evicts from its LRU tail. One entry may take at most a
 * quarter of a shard. Time comes from a clock callback pair (monotonic ms, wall seconds) so tests
 * run on a fake clock. The hash is SipHash-1-3 keyed per cache from getrandom(), since handles
 * (the keys) come from clients.
 *
 * \note Thread-safe: every function may be called from any thread. The choice of per-shard
 *       mutexes over a lock-free (RCU) read path is measured in bench/dcache_bench.c and
 *       explained in docs/resolver-cache.md.
 */
#ifndef HDL_NODE_RESOLVER_DCACHE_H
#define HDL_NODE_RESOLVER_DCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hdl/msg.h"

typedef struct dcache dcache_t;

#define DCACHE_KEY_MAX    8192u /**< longest key (dcache_key() refuses longer shapes) */
#define DCACHE_SHAPES_MAX 16u   /**< shapes (keys) kept per handle */
#define DCACHE_SHARDS_MAX 256u  /**< most shards */

/** Time source: monotonic milliseconds (expiry) and wall-clock Unix seconds (absolute TTLs). */
typedef struct dcache_clock {
	uint64_t (*mono_ms)(void *arg);
	int64_t (*wall_s)(void *arg);
	void *arg;
} dcache_clock_t;

/** TTL rules, in seconds (percent for prefetch_pct). Changeable while running. */
typedef struct dcache_policy {
	uint32_t min_ttl;      /**< floor of a positive entry's lifetime */
	uint32_t max_ttl;      /**< cap of a positive entry's lifetime */
	uint32_t negative_ttl; /**< lifetime of answers without values; 0 = not cached */
	uint32_t stale_max;    /**< how long past expiry an entry may still be served stale */
	uint32_t prefetch_pct; /**< 0..100: prefetch signal in this last part of the TTL; 0 = off */
} dcache_policy_t;

/** Creation options. */
typedef struct dcache_opts {
	size_t max_bytes; /**< 0 = disabled (every lookup misses, every put refused) */
	unsigned shards;  /**< power of two up to DCACHE_SHARDS_MAX; 0 = from max_bytes */
	dcache_policy_t policy;
	const dcache_clock_t *clock; /**< copied; NULL = CLOCK_MONOTONIC and time() */
} dcache_opts_t;

/** Lookup modes of dcache_get(). */
enum dcache_get_how {
	DCACHE_GET_FRESH = 0,    /**< only an entry within its TTL */
	DCACHE_GET_STALE_OK = 1, /**< also an expired entry within the stale window */
};

/** Flags of a lookup result (dcache_hit_t.flags). */
enum dcache_hit_flags {
	DCACHE_STALE = 1u, /**< the entry is past its TTL (served stale, or a stale copy exists) */
	DCACHE_PREFETCH = 2u, /**< refresh this entry now (reported once per stored entry) */
};

/** What a lookup found. */
typedef struct dcache_hit {
	uint32_t rcode; /**< HDL_RC_SUCCESS, HDL_RC_HANDLE_NOT_FOUND or HDL_RC_VALUES_NOT_FOUND */
	uint32_t flags; /**< DCACHE_STALE, DCACHE_PREFETCH */
	uint32_t ttl_left; /**< whole seconds of TTL left; 0 when stale */
	uint32_t n_values; /**< values in the copied part */
	size_t len;        /**< bytes of the values part (copied, or needed on HDL_ESPACE); a
	                        success has at least its U32 count, a negative entry none */
} dcache_hit_t;

/** Counters (totals since creation) and sizes (now). */
typedef struct dcache_stats {
	uint64_t hits;          /**< fresh entries returned */
	uint64_t misses;        /**< lookups that returned nothing */
	uint64_t stale_served;  /**< stale entries returned (DCACHE_GET_STALE_OK) */
	uint64_t prefetches;    /**< DCACHE_PREFETCH signals given */
	uint64_t evictions;     /**< entries dropped to make room (bytes or shapes per handle) */
	uint64_t expired;       /**< entries dropped past their stale window */
	uint64_t inserts;       /**< entries stored */
	uint64_t refused;       /**< puts not stored: too large, TTL 0, malformed, disabled */
	uint64_t invalidations; /**< entries dropped by dcache_invalidate() */
	uint64_t flushes;       /**< dcache_flush() calls */
	size_t bytes;           /**< bytes charged now (entries and hash tables) */
	size_t entries;         /**< entries now */
	size_t max_bytes;       /**< the limit */
	unsigned shards;        /**< shard count */
} dcache_stats_t;

/** One entry as dcache_foreach() reports it (copied out; valid during the callback). */
typedef struct dcache_info {
	const uint8_t *key; /**< the entry's key (dcache_key() form) */
	size_t klen;
	uint32_t rcode;
	uint32_t n_values;
	size_t vlen;         /**< bytes of the values part */
	int64_t ttl_left_ms; /**< time to expiry; negative = stale for that long */
	bool prefetched;     /**< the prefetch signal was given */
} dcache_info_t;

/**
 * \brief New cache.
 * \retval HDL_EOK, HDL_ENOMEM, HDL_EINVAL (shards not a power of two or over the maximum)
 */
int dcache_new(const dcache_opts_t *o, dcache_t **out);
/** \brief Free the cache and every entry (no other thread may use it any more). */
void dcache_free(dcache_t *c);

/** \brief Replace the TTL rules; entries already stored keep their expiry. */
void dcache_set_policy(dcache_t *c, const dcache_policy_t *p);
/** \brief Change the byte limit (the shard count stays); shards over it evict at once. */
void dcache_set_max_bytes(dcache_t *c, size_t max_bytes);

/**
 * \brief Build the canonical key of a question (format in the file comment).
 * \param handle the normalized handle (hdl_name_normalize() / store_key() form), 1..65535 bytes
 * \param idx, n_idx index list of the request (any order, duplicates allowed)
 * \param types, n_types type list of the request (any order and case, duplicates allowed)
 * \param po the request's PO (public only) flag
 * \return key length, or 0 when the key would not fit \p cap or DCACHE_KEY_MAX, a list is over
 *         HDL_MAX_FILTER entries, or the handle is empty
 */
size_t dcache_key(uint8_t *out, size_t cap, hdl_slice_t handle, const uint32_t *idx, uint32_t n_idx,
                  const hdl_slice_t *types, uint32_t n_types, bool po);

/**
 * \brief The handle part of a key.
 * \retval true and \p handle set, false when \p key is not a well-formed dcache_key() key
 */
bool dcache_key_handle(const uint8_t *key, size_t klen, hdl_slice_t *handle);

/**
 * \brief One-line text form of a key for people: `HANDLE [po] [index=1,2] [type=URL,EMAIL]`.
 * \return length written (NUL-terminated, cut to \p cap - 1), 0 for a malformed key
 */
size_t dcache_key_describe(const uint8_t *key, size_t klen, char *out, size_t cap);

/**
 * \brief Store an upstream answer under \p key (replacing the entry with that key), after
 *        dropping every value without PUBLIC_READ. Lifetime by the TTL rules above.
 * \param rcode HDL_RC_SUCCESS (with \p vals), HDL_RC_HANDLE_NOT_FOUND or HDL_RC_VALUES_NOT_FOUND
 *        (\p vals ignored); a success whose values are all filtered out is stored as
 *        HDL_RC_VALUES_NOT_FOUND, the answer this node gives when nothing readable is left
 * \param vals, vlen the values part of the answer: U32 count + count HandleValue encodings,
 *        exactly (count at most HDL_MAX_VALUES)
 * \retval HDL_EOK stored
 * \retval HDL_EINVAL another response code, or a malformed key
 * \retval HDL_EMALF \p vals is not exactly a values part (nothing stored)
 * \retval HDL_ELIMIT not stored: over a quarter of a shard, its TTL works out to 0, or the cache
 *         is disabled
 * \retval HDL_ENOMEM
 */
int dcache_put(dcache_t *c, const uint8_t *key, size_t klen, uint32_t rcode, const uint8_t *vals,
               size_t vlen);

/**
 * \brief Look \p key up and copy the entry's values part into \p buf; a hit makes the entry the
 *        most recently used of its shard.
 * \param how DCACHE_GET_FRESH or DCACHE_GET_STALE_OK
 * \param[out] hit what was found; on HDL_ENOENT only flags (DCACHE_STALE: a stale copy exists)
 * \retval HDL_EOK found (hit->flags tells stale / prefetch)
 * \retval HDL_ENOENT a miss (counted)
 * \retval HDL_ESPACE \p cap is under hit->len bytes: nothing copied, nothing counted
 */
int dcache_get(dcache_t *c, const uint8_t *key, size_t klen, unsigned how, uint8_t *buf, size_t cap,
               dcache_hit_t *hit);

/**
 * \brief Drop every entry (every shape) of one normalized handle.
 * \return the number of entries dropped
 */
size_t dcache_invalidate(dcache_t *c, hdl_slice_t handle);

/** \brief Drop every entry. */
void dcache_flush(dcache_t *c);

/** \brief Counters and sizes (summed over the shards, each read under its lock). */
void dcache_get_stats(dcache_t *c, dcache_stats_t *st);

/**
 * \brief Report entries whose handle is \p prefix (ASCII case-insensitive) or lies under it
 *        (`PREFIX/...`); an empty prefix reports every entry. Shard by shard, most recently used
 *        first; the entries are copied out under the shard's lock and \p cb runs without it.
 * \param max report at most this many
 * \param cb returns non-zero to stop
 * \return entries reported, or HDL_ENOMEM
 */
long dcache_foreach(dcache_t *c, hdl_slice_t prefix, size_t max,
                    int (*cb)(void *ctx, const dcache_info_t *info), void *ctx);

#endif /* HDL_NODE_RESOLVER_DCACHE_H */
