/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Response cache: a bounded map from an opaque key (the dispatcher uses a filter-shape
 *        byte + the normalized handle) to an encoded answer part (the values of a resolution),
 *        with least-recently-used eviction under a byte limit and a generation (the store
 *        snapshot's txn id) that drops everything when the data changes.
 *
 * \note One cache per worker thread; not thread-safe.
 */
#ifndef HDL_NODE_SERVER_CACHE_H
#define HDL_NODE_SERVER_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hdl/msg.h"

typedef struct rcache rcache_t;

/** Counters of one cache. */
typedef struct rcache_stats {
	uint64_t hits;      /**< rcache_get() found the key */
	uint64_t misses;    /**< rcache_get() did not */
	uint64_t inserts;   /**< entries stored by rcache_put() */
	uint64_t evictions; /**< entries dropped to make room */
	uint64_t flushes;   /**< whole-cache drops (generation change, rcache_clear()) */
	size_t entries;     /**< entries now */
	size_t bytes;       /**< bytes charged now (entries with their bookkeeping) */
	size_t max_bytes;   /**< the limit; 0 = disabled */
} rcache_stats_t;

/** Bookkeeping bytes charged per entry on top of its key and value. */
size_t rcache_entry_overhead(void);

/**
 * \brief New, empty cache.
 * \param max_bytes limit for entries with their bookkeeping; 0 = disabled (every get misses,
 *        every put is refused)
 * \return the cache, NULL when out of memory
 */
rcache_t *rcache_new(size_t max_bytes);
void rcache_free(rcache_t *c);

/** \brief Change the limit; entries are evicted (least recently used first) until it is met. */
void rcache_set_max(rcache_t *c, size_t max_bytes);

/**
 * \brief Declare the data generation the next lookups are made against (the store snapshot's txn
 *        id). When it differs from the one the entries were stored under, all are dropped.
 */
void rcache_sync(rcache_t *c, uint64_t gen);

/** \brief Drop every entry. */
void rcache_clear(rcache_t *c);

/**
 * \brief Look \p key up; on a hit the entry becomes the most recently used.
 * \param[out] val the stored bytes, valid until the next rcache_put(), rcache_sync(),
 *             rcache_set_max() or rcache_clear()
 * \return true on a hit
 */
bool rcache_get(rcache_t *c, const void *key, size_t klen, hdl_slice_t *val);

/**
 * \brief Store a copy of \p val under \p key (replacing an entry with the same key), evicting the
 *        least recently used entries as needed.
 * \retval HDL_EOK
 * \retval HDL_ELIMIT the entry alone is over a quarter of the limit, or the cache is disabled
 * \retval HDL_ENOMEM
 */
int rcache_put(rcache_t *c, const void *key, size_t klen, const void *val, size_t vlen);

/** \brief Counters and sizes. */
void rcache_get_stats(const rcache_t *c, rcache_stats_t *st);

#endif /* HDL_NODE_SERVER_CACHE_H */
