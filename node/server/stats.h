/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Usage statistics of a running node, per prefix and per UTC day (docs/statistics.md):
 *        resolutions by transport and response code, unique identifiers resolved (HyperLogLog)
 *        and the most resolved identifiers (space-saving), counted by each worker into a buffer
 *        of its own; registrations (create, modify, delete) read from the audit trail. The main
 *        thread merges the buffers the workers hand over and the audit entries since the last
 *        flush into the store's "stats" records (node/store/stats.h), every flush interval and
 *        at shutdown.
 *
 * Hand-over: each worker owns two buffers. It counts into the current one; once a flush
 * interval has passed (or the UTC day changed) and the main thread has returned the other one,
 * its tick publishes the current buffer (\p ready) and goes on with the other. The main thread
 * takes published buffers, merges and clears them and gives them back (\p spare). The request
 * path touches only the worker's current buffer: a prefix lookup, a few increments, a hash,
 * one HyperLogLog register and the top list.
 */
#ifndef HDL_NODE_SERVER_STATS_H
#define HDL_NODE_SERVER_STATS_H

#include <stdbool.h>
#include <stdint.h>

#include "hdl/msg.h"

struct store;
struct event_base;
struct conf;

typedef struct stats_node stats_node_t;
typedef struct stats_worker stats_worker_t;

/** Limits and timing (the stats_* configuration keys). */
typedef struct stats_opts {
	uint32_t max_prefixes;     /**< prefixes one worker buffer (and one flush) tracks by name */
	uint32_t top_entries;      /**< identifiers of each top list */
	uint32_t flush_interval_s; /**< seconds between flushes */
	uint32_t retention_days;   /**< records older than this are deleted (0 = kept) */
	uint32_t audit_batch;      /**< audit entries read per flush at most */
} stats_opts_t;

/** \brief Options from the configuration. */
void stats_opts_from_conf(const struct conf *c, stats_opts_t *o);

/** Figures for the metrics and the status page. */
typedef struct stats_info {
	uint64_t flushes;       /**< flushes that committed */
	uint64_t flush_errors;  /**< flushes that failed (their counts are lost) */
	uint64_t records;       /**< (day, prefix) records written */
	uint64_t audit_entries; /**< audit entries counted */
	uint64_t overflow; /**< resolutions counted under STATS_OTHER because a buffer was full */
	uint64_t last_flush_unix; /**< when the last flush committed (0 = never) */
} stats_info_t;

/**
 * \brief Statistics for \p n_workers workers on store \p s.
 * \retval HDL_EOK, HDL_ENOMEM, HDL_EINVAL (a zero limit)
 */
int stats_node_new(struct store *s, const stats_opts_t *o, unsigned n_workers, stats_node_t **out);
/** \brief Free (after the final flush). */
void stats_node_free(stats_node_t *n);
/** \brief The state of worker \p id. */
stats_worker_t *stats_node_worker(stats_node_t *n, unsigned id);

/**
 * \brief Count one resolution on the worker (request path): transport \p t, response code
 *        \p rcode, identifier \p name (normalized as the store files it) of the prefix
 *        \p prefix (empty: outside the homed prefixes, counted under STATS_OTHER). Unique and top
 *        counts take only identifiers that exist (RC 1 and 200).
 */
void stats_note(stats_worker_t *w, unsigned t, hdl_slice_t name, hdl_slice_t prefix,
                uint32_t rcode);

/** \brief Once a second on the worker: hand the buffer over when it is due. */
void stats_worker_tick(stats_worker_t *w, uint64_t now_ms);

/**
 * \brief Merge what the workers handed over and the audit entries since the last flush into the
 *        store (main thread). With \p final (the workers have stopped) the workers' current
 *        buffers are taken too.
 * \retval HDL_EOK, or the store error (logged; the counts of this flush are dropped)
 */
int stats_flush(stats_node_t *n, bool final);

/**
 * \brief Flush every flush interval from a timer on \p base (the main thread's loop).
 * \retval HDL_EOK, HDL_ENOMEM
 */
int stats_start_timer(stats_node_t *n, struct event_base *base);
/** \brief Remove the timer. */
void stats_stop_timer(stats_node_t *n);

/** \brief Counters (any thread). */
void stats_get_info(const stats_node_t *n, stats_info_t *out);

#endif /* HDL_NODE_SERVER_STATS_H */
