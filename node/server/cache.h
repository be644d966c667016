/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Response cache: a bounded map from an opaque key (the dispatcher uses a filter-shape
 *        byte + the normalized handle) to an encoded answer part (the values of a resolution),
 *        with least-recently-used eviction under a byte limit and a generation (the store
 *        snapshot's txn id) that drops everything when the data changes.
 *
 * Following the store (rcache_follow_txlog()): instead of dropping everything when the snapshot
 * changes, the cache remembers the txlog serial it has seen and drops only the keys of the
 * handles changed since (store.h "txlog"), up to a bound past which it drops everything.
 *
 * Admission (rcache_set_admission()): when the cache is full, a new entry only gets in if its
 * key has been asked for more often, recently, than the entry it would evict (the least recently
 * used); a key seen only once so far is never admitted into a full cache. Frequencies are
 * estimated by a count-min sketch of 4-bit counters (4 per key, in one 64-byte block) that
 * every lookup bumps and that is halved periodically (TinyLFU, Einziger et al.). Keys asked
 * once (uniformly random traffic) stop displacing warm entries.
 *
 * \note One cache per worker thread; not thread-safe.
 */
#ifndef HDL_NODE_SERVER_CACHE_H
#define HDL_NODE_SERVER_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hdl/msg.h"

struct store;
struct store_reader;

typedef struct rcache rcache_t;

/** Shape byte of the dispatcher's keys: bit 0 = PO. A key is this byte + the normalized handle. */
#define RCACHE_KEY_PO 1u

/** Changed handles walked at most per new snapshot before the cache is dropped whole instead. */
#define RCACHE_TXLOG_MAX 1024u

/** Counters of one cache. */
typedef struct rcache_stats {
	uint64_t hits;      /**< rcache_get() found the key */
	uint64_t misses;    /**< rcache_get() did not */
	uint64_t inserts;   /**< entries stored by rcache_put() */
	uint64_t evictions; /**< entries dropped to make room */
	uint64_t flushes;   /**< whole-cache drops (generation change, rcache_clear()) */
	uint64_t invalidations; /**< entries dropped because the txlog names their handle */
	uint64_t txlog_records; /**< txlog records walked by rcache_follow_txlog() */
	uint64_t rejected;  /**< rcache_put() refusals by the admission rule */
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
 * \retval HDL_EAGAIN not admitted: the cache is full and the key is not asked for more often
 *         than the entry it would evict (admission on)
 * \retval HDL_ENOMEM
 */
int rcache_put(rcache_t *c, const void *key, size_t klen, const void *val, size_t vlen);

/**
 * \brief Drop the entries of one normalized handle (every shape byte: PO set and clear).
 * \return entries dropped
 */
size_t rcache_drop_handle(rcache_t *c, hdl_slice_t norm_handle);

/**
 * \brief Bring the cache up to date with the snapshot of \p r (active): when its txn id changed
 *        since the last call, walk the txlog records since the serial seen last and drop the
 *        entries of every handle they name (store_key() of \p s). Everything is dropped instead
 *        when more than \p max records are new, a prefix was homed or unhomed, serials are
 *        missing, the txlog cannot be read, or the txn id changed without new records (a
 *        store without a txlog, or a metadata write). The first call only records the serial.
 */
void rcache_follow_txlog(rcache_t *c, struct store *s, struct store_reader *r, uint32_t max);

/**
 * \brief Turn the admission rule on or off. Its sketch (about max_bytes / 64 bytes, at least 512)
 *        is charged to the byte limit; with it on, rcache_put() may answer HDL_EAGAIN.
 * \retval HDL_EOK, HDL_ENOMEM (the rule stays off)
 */
int rcache_set_admission(rcache_t *c, bool on);

/** \brief Counters and sizes. */
void rcache_get_stats(const rcache_t *c, rcache_stats_t *st);

#endif /* HDL_NODE_SERVER_CACHE_H */
