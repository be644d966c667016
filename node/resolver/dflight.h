/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief In-flight upstream queries, node-wide: identical cache misses (same dcache_key()) are
 *        coalesced so that one upstream query answers them all.
 *
 * The first dflight_join() of a key makes its waiter the LEADER: it sends the one upstream query
 * and ends the flight with dflight_finish(), which hands the result to every FOLLOWER that joined
 * meanwhile. A follower can leave at any time (its client went away, its deadline passed) without
 * disturbing the others. A leader that cannot finish (its worker stops, its query is cancelled)
 * calls dflight_abandon(): the oldest follower is promoted to leader (and sends the query itself)
 * or every follower gets a failure. Nobody waits forever as long as every waiter's owner enforces
 * a deadline on it (dflight keeps no clock): on expiry the owner calls dflight_leave() and answers
 * its client itself.
 *
 * Callbacks. A waiter's done() runs on whichever thread ends its wait (the leader's, usually),
 * outside dflight's locks, exactly once per notification. Like preq_post() it must only hand the
 * result to the waiter's own thread: copy what it needs from the result (valid during the call
 * only) and post. A waiter gets at most one notification per join, except a promoted leader that
 * is notified PROMOTED and later, if it abandons again, nothing more.
 *
 * Lifetime. A waiter's memory belongs to its owner and must stay valid while it is linked and
 * until a notification that is on its way has run: when dflight_leave() returns false the
 * notification is on its way (or has run), so the owner waits for it before freeing the waiter.
 *
 * Bounds: keys in flight and waiters per key (followers, the leader not counted); a join over
 * either is refused with HDL_ELIMIT, and the caller answers RC 3 (server too busy).
 *
 * \note Thread-safe: a fixed number of shards, each a mutex and a hash table of flights.
 */
#ifndef HDL_NODE_RESOLVER_DFLIGHT_H
#define HDL_NODE_RESOLVER_DFLIGHT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct dflight dflight_t;
typedef struct dflight_waiter dflight_waiter_t;
struct dflight_slot;

/** dflight_join() results (positive, apart from the HDL_E* errors). */
#define DFLIGHT_LEADER   1 /**< send the upstream query; end with dflight_finish() */
#define DFLIGHT_FOLLOWER 2 /**< queued: done() will be called */

/** dflight_result_t.status of a follower promoted to leader. */
#define DFLIGHT_PROMOTED 3

#define DFLIGHT_KEY_MAX 8192u /**< longest key */

/** What a waiter is told. */
typedef struct dflight_result {
	/**
	 * HDL_EOK: the upstream answer below; DFLIGHT_PROMOTED: this waiter is the leader now and
	 * sends the query; any other value (an HDL_E* code such as HDL_ETIMEDOUT or HDL_EIO): the
	 * query failed, answer from a stale cache entry or with RC 3.
	 */
	int status;
	uint32_t rcode; /**< response code of the answer (status HDL_EOK) */
	const uint8_t
	    *vals; /**< values part of the answer (U32 count + values); valid during done() */
	size_t len;
} dflight_result_t;

/** A waiter: owned by the caller (usually inside its suspended request); zero it, set done. */
struct dflight_waiter {
	/** Called once per notification; must only post to the waiter's own thread. */
	void (*done)(dflight_waiter_t *w, const dflight_result_t *r);
	void *arg; /**< for the owner */
	/* dflight's own, under the shard lock */
	struct dflight_slot
	    *slot_; /**< the flight while linked (leading or following), else NULL */
	dflight_waiter_t *next_, *prev_;
	unsigned shard_;
	bool notified_; /**< a notification was given since the last join */
};

/** Counters (totals) and sizes (now). */
typedef struct dflight_stats {
	uint64_t leaders;   /**< joins that started a flight */
	uint64_t followers; /**< joins coalesced onto a flight */
	uint64_t refused;   /**< joins over a limit */
	uint64_t left;      /**< followers that left before the end */
	uint64_t promoted;  /**< followers made leader by dflight_abandon() */
	uint64_t failed;    /**< followers told a failure */
	uint64_t answered;  /**< followers handed an answer */
	size_t keys;        /**< flights now */
	size_t waiters;     /**< followers waiting now */
} dflight_stats_t;

/**
 * \brief New table.
 * \param max_keys flights at once (>= 1)
 * \param max_waiters followers per flight
 * \retval HDL_EOK, HDL_ENOMEM, HDL_EINVAL (max_keys 0)
 */
int dflight_new(unsigned max_keys, unsigned max_waiters, dflight_t **out);
/**
 * \brief Free the table. Flights still open are dropped without notifying anyone: call it only
 *        once no thread can join, finish, leave or be notified any more (workers stopped).
 */
void dflight_free(dflight_t *f);
/** \brief Change the limits; flights already over them keep their waiters. */
void dflight_set_limits(dflight_t *f, unsigned max_keys, unsigned max_waiters);

/**
 * \brief Join the flight of \p key with \p w (not linked elsewhere; done() set).
 * \retval DFLIGHT_LEADER \p w leads a new flight
 * \retval DFLIGHT_FOLLOWER \p w waits for the leader's result
 * \retval HDL_ELIMIT too many flights, or too many followers on this one
 * \retval HDL_EINVAL an empty key or one over DFLIGHT_KEY_MAX; \p w already linked
 * \retval HDL_ENOMEM
 */
int dflight_join(dflight_t *f, const uint8_t *key, size_t klen, dflight_waiter_t *w);

/**
 * \brief End the flight that \p leader leads: every follower is notified with \p r (which must
 *        not be DFLIGHT_PROMOTED) and the key can start a new flight.
 * \return followers notified, or HDL_EINVAL when \p leader leads no flight (it left, or already
 *         finished)
 */
int dflight_finish(dflight_t *f, dflight_waiter_t *leader, const dflight_result_t *r);

/**
 * \brief The leader gives up. \p status DFLIGHT_PROMOTED: the oldest follower becomes leader and
 *        is notified PROMOTED (the flight goes on); any other status: every follower is told
 *        that failure and the flight ends. A flight without followers just ends.
 * \retval HDL_EOK, HDL_EINVAL (\p leader leads no flight)
 */
int dflight_abandon(dflight_t *f, dflight_waiter_t *leader, int status);

/**
 * \brief \p w stops waiting. A follower is unlinked; a leader abandons with promotion.
 * \retval true no notification is on its way (\p w was unlinked now, or was not linked)
 * \retval false a notification given since \p w joined is on its way or has run: keep \p w
 *         alive until done() has run
 */
bool dflight_leave(dflight_t *f, dflight_waiter_t *w);

/** \brief Counters and sizes. */
void dflight_get_stats(dflight_t *f, dflight_stats_t *st);

#endif /* HDL_NODE_RESOLVER_DFLIGHT_H */
