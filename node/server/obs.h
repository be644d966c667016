/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Observability of a running node: the per-worker counter blocks the request paths
 *        increment (requests by transport, opcode and response code, latency histograms), the
 *        figures each worker publishes once a second (response cache, connections), and the
 *        node-wide view (node_obs_t) that the metrics listener (metrics.h), the status page
 *        (web.h) and the statistics (stats.h) read.
 *
 * Counters have a single writer (their worker) and are read by other threads: the writer adds
 * with a relaxed load and a relaxed store (plain moves on x86-64 and arm64, no locked
 * instruction), readers load them relaxed and sum the workers on demand.
 */
#ifndef HDL_NODE_SERVER_OBS_H
#define HDL_NODE_SERVER_OBS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "node/store/stats.h"

struct node_shared;
struct worker;
struct conf;
struct stats_node;
struct metrics_srv;
struct event_base;

#define OBS_T_N   STATS_T_N /**< transports (stats_transport_t) */
#define OBS_OP_N  21u       /**< opcode slots: the known opcodes, then "other" */
#define OBS_RC_N  32u       /**< response code slots: the known codes, then "other" */
#define OBS_LAT_N 18u       /**< latency buckets (OBS_LAT_BOUNDS_NS), the last one +Inf */

/** Upper bounds of the latency buckets in nanoseconds (the last, +Inf, not listed). */
extern const uint64_t obs_lat_bounds_ns[OBS_LAT_N - 1];

/** \brief Slot of opcode \p op (OBS_OP_N - 1: other). */
unsigned obs_op_slot(uint32_t op);
/** \brief Slot of response code \p rc (OBS_RC_N - 1: other). */
unsigned obs_rc_slot(uint32_t rc);
/** \brief Label of an opcode slot ("resolution", "create_handle", ..., "other"). */
const char *obs_op_label(unsigned slot);
/** \brief Response code of a slot (0 for "other"). */
uint32_t obs_rc_of_slot(unsigned slot);
/** \brief Label of a response code slot ("success", "handle_not_found", ..., "other"). */
const char *obs_rc_label(unsigned slot);
/** \brief Bucket of a latency of \p ns nanoseconds. */
unsigned obs_lat_bucket(uint64_t ns);

/** \brief The stats_transport_t of a wr_transport_t (node/server/writer.h; others: other). */
static inline unsigned obs_transport(int wr_transport)
{
	/* WR_T_UDP 1, WR_T_TCP 2, WR_T_HTTP 3, WR_T_HTTPS 4, WR_T_TLS 5 */
	return wr_transport >= 1 && wr_transport <= 5 ? (unsigned)wr_transport - 1 : STATS_T_OTHER;
}

/** Counters of one worker (single writer: the worker; see the file comment). */
typedef struct obs_ctr {
	_Atomic uint64_t req[OBS_T_N][OBS_OP_N][OBS_RC_N]; /**< answered requests */
	_Atomic uint64_t dropped[OBS_T_N];                 /**< requests left without an answer */
	_Atomic uint64_t lat[OBS_T_N][OBS_LAT_N];          /**< latency histogram (per bucket) */
	_Atomic uint64_t lat_sum_ns[OBS_T_N];
	/* published by the worker once a second (obs_worker_tick) */
	_Atomic uint64_t cache_hits, cache_misses, cache_inserts, cache_evictions, cache_flushes;
	_Atomic uint64_t cache_invalidations, cache_rejected;
	_Atomic uint64_t cache_entries, cache_bytes, cache_max_bytes;
	_Atomic uint64_t conn_open, conn_accepted, conn_refused, conn_evicted, conn_reclaimed,
	    conn_frame_timeouts;
	_Atomic uint64_t pending; /**< requests waiting for the writer or a list */
	_Atomic uint64_t upstream_queries; /**< queries the resolution path sent (or tried) upstream */
} obs_ctr_t;

/** \brief Add \p n to a single-writer counter (the owning thread only). */
static inline void obs_add(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
	                      memory_order_relaxed);
}

/** \brief Set a single-writer gauge (the owning thread only). */
static inline void obs_set(_Atomic uint64_t *c, uint64_t v)
{
	atomic_store_explicit(c, v, memory_order_relaxed);
}

/** \brief Read a counter (any thread). */
static inline uint64_t obs_get(const _Atomic uint64_t *c)
{
	return atomic_load_explicit((_Atomic uint64_t *)c, memory_order_relaxed);
}

/** \brief Monotonic nanoseconds. */
static inline uint64_t obs_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/**
 * \brief Count one request of transport \p t: answered with opcode \p op and response code \p rc,
 *        or dropped (\p answered false); when \p t0_ns is not 0 its latency up to now goes into
 *        the transport's histogram. Worker thread.
 */
void obs_count(obs_ctr_t *c, unsigned t, uint32_t op, uint32_t rc, bool answered, uint64_t t0_ns);

/** The node as observers see it; set up by server.c before the workers start. */
typedef struct node_obs {
	struct node_shared *node;
	struct worker *workers;
	unsigned n_workers;
	obs_ctr_t *ctr;      /**< n_workers blocks (outlive the worker threads) */
	bool timing;         /**< latency histograms on (metrics_listen is set) */
	uint64_t start_unix; /**< when the node started (Unix seconds) */
	uint64_t start_mono_ns;
	const struct conf *conf;     /**< the configuration at start */
	struct stats_node *stats;    /**< usage statistics (stats.h); NULL when off */
	struct metrics_srv *metrics; /**< the Prometheus listener (metrics.h); NULL when off */
} node_obs_t;

/** Sums over the workers. */
typedef struct obs_sum {
	uint64_t req[OBS_T_N][OBS_OP_N][OBS_RC_N];
	uint64_t dropped[OBS_T_N];
	uint64_t lat[OBS_T_N][OBS_LAT_N];
	uint64_t lat_sum_ns[OBS_T_N];
	uint64_t cache_hits, cache_misses, cache_inserts, cache_evictions, cache_flushes;
	uint64_t cache_invalidations, cache_rejected;
	uint64_t cache_entries, cache_bytes, cache_max_bytes;
	uint64_t conn_open, conn_accepted, conn_refused, conn_evicted, conn_reclaimed,
	    conn_frame_timeouts;
	uint64_t pending;
	uint64_t upstream_queries;
} obs_sum_t;

/**
 * \brief Allocate the counter blocks of \p n_workers workers and fill \p o.
 * \retval HDL_EOK, HDL_ENOMEM
 */
int obs_init(node_obs_t *o, struct node_shared *node, struct worker *workers, unsigned n_workers,
             const struct conf *c);
/** \brief Free what obs_init() allocated (after the workers stopped). */
void obs_free(node_obs_t *o);

/** \brief Attach worker \p w to its counter block and statistics (worker thread, at start). */
void obs_worker_attach(struct worker *w);
/** \brief Once a second on the worker: publish the cache and connection figures, statistics. */
void obs_worker_tick(struct worker *w);

/** \brief Sum every worker's counters into \p s (any thread). */
void obs_sum(const node_obs_t *o, obs_sum_t *s);

/* ---- the server's hooks (server.c), in this order -------------------------------------------- */

/**
 * \brief obs_init(), and bind metrics_listen: before the workers start (\p node->obs is set).
 * \retval HDL_EOK, HDL_ENOMEM, HDL_EIO (the metrics address: \p err says why)
 */
int obs_server_setup(node_obs_t *o, struct node_shared *node, struct worker *workers,
                     unsigned n_workers, const struct conf *c, char *err, size_t errlen);
/** \brief Once the workers run: the statistics timer on \p base, the metrics thread. */
int obs_server_start(node_obs_t *o, struct event_base *base);
/** \brief Before the workers stop: stop the metrics listener and the statistics timer. */
void obs_server_stop(node_obs_t *o);
/**
 * \brief After the workers and the writer stopped, before the store closes: the final
 *        statistics flush, then free everything.
 */
void obs_server_finish(node_obs_t *o);

/** \brief Seconds since the node started. */
double obs_uptime(const node_obs_t *o);

#endif /* HDL_NODE_SERVER_OBS_H */
