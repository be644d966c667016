/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief The resolution path for handles whose prefix this node does not home (docs/delegation.md
 *        "Resolution"): the shared cache first, then upstream, one engine per worker thread.
 *
 * Algorithm (RFC 3651 §3, RFC 3652; the Handle.Net 9 resolver's order):
 *  1. The cache (dcache.h): a fresh entry is the answer; near its expiry one background refresh
 *     starts (prefetch). A stale entry is answered at once while a refresh of that key failed
 *     less than `stale_hold_ms` ago; otherwise the request waits for upstream at most
 *     `stale_budget_ms` and is then answered from the stale entry (RFC 8767).
 *  2. A miss joins the node-wide table of queries in flight (dflight.h): only its leader asks
 *     upstream, whatever worker the identical requests came to.
 *  3. Where to ask: a `forward` rule for the prefix (upconf.h) names the upstreams, asked with
 *     REC set. Without one, the prefix handle `0.NA/<prefix>` is resolved (through this same
 *     path: cache, then the `forward` rule of `0.NA`) for its HS_SITE values, or its HS_SERV
 *     service handle's; in each site the server the handle hashes to (RFC 3651 §3.3,
 *     hdl_site_server_for()) is asked, over the configured upstream of the same address when
 *     there is one (TLS), else over the query interfaces the site lists (when `site_plaintext`).
 *     An AT request goes to primary sites only.
 *  4. A referral (RC 302 service referral, RC 303 prefix referral) is followed to the sites it
 *     carries or names, at most `max_referrals` times; a referral back to sites already asked
 *     is a loop. Both end the resolution with RC 6 (recursion count too high).
 *  5. An answer (RC 1, 100, 200) is cached with its TTLs (values without PUBLIC_READ are never
 *     cached: upstream is always asked with PO set, and dcache_put() filters) and handed to
 *     every request waiting for it. A failure is answered from a stale entry when there is one,
 *     else with RC 3 (server too busy: no upstream could be reached in time or the limits are
 *     full) or RC 2 (a broken upstream answer).
 *
 * Every wait has a deadline (`timeout_ms` per resolution, nested lookups included). A request
 * from a client without REC is answered from the cache only; on a miss it is referred (RC 302,
 * unless DNRF) to the prefix's sites when its prefix handle is cached, else answered RC 301
 * (this is also what a resolver following referrals meets when sites point back at this node:
 * the loop ends at its visited set). A request whose RecursionCount is
 * `max_recursion` or more is refused with RC 6 (a forwarding loop between nodes ends there).
 *
 * Sockets, timers and the clock come through res_ops_t, so the whole state machine runs under a
 * fake clock with scripted upstreams (tests/replay/); idnoded plugs in the worker's event base
 * and its upstream pool (node/server/delegate.c).
 *
 * \note An engine belongs to one thread: every function but the ones marked otherwise runs on
 *       it. res_ops_t.answer is never called from inside res_try() or res_start().
 */
#ifndef HDL_NODE_RESOLVER_RESOLVE_H
#define HDL_NODE_RESOLVER_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hdl/msg.h"
#include "node/resolver/upstream.h"

struct dcache;
struct dflight;
struct ups_set;

#define RES_MAX_DEPTH   4u  /**< nested lookups (prefix handle, service handle) of one request */
#define RES_MAX_VISITED 16u /**< site sets remembered per resolution to tell a referral loop */

/** res_try() / res_start() results. */
#define RES_DONE 0 /**< answered: see the answer / the client's result */
#define RES_MISS 1 /**< res_try(): not answerable now, call res_start() */
#define RES_WAIT 2 /**< res_start(): the client waits; res_ops_t.answer is called later */

typedef struct res_engine res_engine_t;
typedef struct res_client res_client_t;
typedef struct res_job res_job_t;

/** Settings of an engine (from the configuration: deploy/idnode.conf.sample). */
typedef struct res_conf {
	uint32_t timeout_ms;      /**< one resolution, failovers and nested lookups included */
	uint32_t try_timeout_ms;  /**< one upstream target before the next is tried */
	uint32_t stale_budget_ms; /**< a request with a stale entry waits this long for upstream */
	uint32_t stale_hold_ms;   /**< after a failed refresh: stale answered without asking */
	uint32_t max_referrals;   /**< referrals followed per resolution; more: RC 6 */
	uint32_t max_recursion;   /**< RecursionCount refused with RC 6 */
	unsigned max_jobs;        /**< resolutions running on the engine (prefetches included) */
	bool site_plaintext;      /**< ask HS_SITE servers matching no upstream over TCP/UDP/HTTP */
	bool case_sensitive;      /**< the node's case rule for suffixes (store_key()) */
} res_conf_t;

/** \brief Defaults (as deploy/idnode.conf.sample). */
void res_conf_default(res_conf_t *c);

/** Node-wide stale-refresh holds: keys whose refresh failed lately (lossy, bounded, lock-free). */
typedef struct res_hold res_hold_t;

/**
 * \brief A table of \p slots holds (rounded up to a power of two), in buckets of 8: a hold is
 *        forgotten only when more than 8 keys of one bucket are held at once (the one ending
 *        first goes).
 * \retval HDL_EOK, HDL_ENOMEM, HDL_EINVAL (slots 0)
 * \note Thread-safe: every function may be called from any thread.
 */
int res_hold_new(unsigned slots, res_hold_t **out);
void res_hold_free(res_hold_t *h);
/** \brief Hold \p key until \p until_ms (monotonic); 0 clears it. */
void res_hold_set(res_hold_t *h, const uint8_t *key, size_t klen, uint64_t until_ms);
/** \brief True while \p key is held at \p now_ms. An overfull bucket may forget a hold, never
 *         invent one for a key never held (a 24-bit tag must match too). */
bool res_hold_active(res_hold_t *h, const uint8_t *key, size_t klen, uint64_t now_ms);

/** What the engines of one node share (borrowed; all must outlive the engines). */
typedef struct res_shared {
	const struct ups_set *set; /**< upstreams and forward rules */
	struct dcache *dcache;     /**< the cache of upstream answers */
	struct dflight *dflight;   /**< queries in flight */
	res_hold_t *hold;          /**< stale-refresh holds */
} res_shared_t;

/** What the host provides: clock, upstream queries, one timer, a cross-thread wake-up. */
typedef struct res_ops {
	/** Monotonic milliseconds (the clock of every deadline; the dcache has its own). */
	uint64_t (*now_ms)(void *env);
	/**
	 * Ask \p n candidates (ups_query_any() semantics: the best first, the next after an error
	 * or \p try_ms, until \p deadline_ms); \p cb is called once later, never from inside.
	 * \retval HDL_EOK (*qh set), or an HDL_E* code (no callback)
	 */
	int (*query)(void *env, const ups_target_t *cands, unsigned n, const uint8_t *req,
	             size_t len, uint64_t deadline_ms, uint32_t try_ms, ups_cb_t cb, void *arg,
	             void **qh);
	/** Forget a query: its callback will not be called. */
	void (*cancel)(void *env, void *qh);
	/** Call res_timers() once the clock reaches \p at_ms (UINT64_MAX: no timer needed). */
	void (*arm)(void *env, uint64_t at_ms);
	/** Any thread: call res_run_posted() on the engine's thread soon. */
	void (*wake)(void *env);
	/** The result of a waiting client is ready (res_client_t fields); it is detached. */
	void (*answer)(void *env, res_client_t *c);
} res_ops_t;

/** One question: a resolution request of a client. */
typedef struct res_question {
	hdl_slice_t handle;  /**< as the client sent it */
	const uint32_t *idx; /**< index filter */
	uint32_t n_idx;
	const hdl_slice_t *types; /**< type filter */
	uint32_t n_types;
	uint32_t opflags;  /**< the client's: HDL_OF_REC, HDL_OF_AT, HDL_OF_DNRF matter */
	uint8_t recursion; /**< the client's RecursionCount */
} res_question_t;

/**
 * An answer: the response code and, for RC 1, the values part (U32 count + values); for RC 302
 * (a client without REC referred to the prefix's cached sites) the referral body after the RD
 * block: STR referral handle, U32 count + values.
 */
typedef struct res_answer {
	uint32_t rcode;
	const char *message; /**< text for other codes (static) */
	const uint8_t *vals; /**< RC 1: values part; RC 302: referral body */
	size_t vlen;
	bool stale; /**< answered from an expired entry (RFC 8767) */
} res_answer_t;

/** A timer of the engine (internal; embedded in clients and resolutions). */
typedef struct res_tnode {
	uint64_t at;
	struct res_tnode *next, *prev;
	uint8_t kind; /**< what it is embedded in */
	bool on;      /**< linked */
} res_tnode_t;

/** A waiting client: embedded by the caller (zeroed before res_start()). */
struct res_client {
	res_answer_t ans; /**< the result once answered (vals owned: see res_client_release()) */
	void *arg;        /**< for the host */
	/* the engine's */
	res_job_t *job_;             /**< the resolution it waits for */
	res_client_t *next_, *prev_; /**< that resolution's clients */
	res_tnode_t budget_;         /**< when a stale answer is due */
	uint8_t *owned_;             /**< the copied values of ans */
};

/** Counters of an engine. */
typedef struct res_stats {
	uint64_t cache_hits; /**< answered from a fresh entry */
	uint64_t stale;      /**< answered from a stale entry */
	uint64_t jobs;       /**< resolutions started (nested and prefetches included) */
	uint64_t coalesced;  /**< requests joining a resolution already running here */
	uint64_t followed;   /**< resolutions that waited for another worker's (dflight) */
	uint64_t queries;    /**< upstream queries sent */
	uint64_t referrals;  /**< referrals followed */
	uint64_t loops;      /**< resolutions ended by a referral loop or the depth limit */
	uint64_t failures;   /**< resolutions that failed (timeouts, errors) */
	uint64_t prefetches; /**< background refreshes started */
	uint64_t refused;    /**< requests refused: too many resolutions running */
	uint64_t referred;   /**< clients without REC referred to cached sites (RC 302) */
	unsigned running;    /**< resolutions running now */
} res_stats_t;

/**
 * \brief New engine.
 * \retval HDL_EOK, HDL_ENOMEM, HDL_EINVAL (a NULL op, no cache or no flight table)
 */
int res_new(const res_ops_t *ops, void *env, const res_conf_t *conf, const res_shared_t *sh,
            res_engine_t **out);
/**
 * \brief Free the engine: resolutions stop (leaders hand their flights to a follower elsewhere),
 *        waiting clients are answered RC 3 through res_ops_t.answer.
 */
void res_free(res_engine_t *e);

/**
 * \brief Answer \p q now if it can be: a fresh (or held stale) cache entry, a client without
 *        REC, a recursion count too high. The values of a hit are copied into \p buf.
 * \retval RES_DONE *ans set (ans->vals in \p buf; a hit larger than \p cap is a miss)
 * \retval RES_MISS call res_start() (with a copy of \p q that lives as long as the client)
 */
int res_try(res_engine_t *e, const res_question_t *q, uint8_t *buf, size_t cap, res_answer_t *ans);

/**
 * \brief Resolve \p q for client \p c (zeroed; q's bytes must live as long as c waits).
 * \retval RES_WAIT c waits: res_ops_t.answer(c) comes later, unless res_client_cancel()
 * \retval RES_DONE c->ans is set now
 * Release c with res_client_release() once its answer is used.
 */
int res_start(res_engine_t *e, const res_question_t *q, res_client_t *c);

/** \brief \p c no longer waits (its request went away): no answer will come. */
void res_client_cancel(res_engine_t *e, res_client_t *c);
/** \brief Free what the answer of \p c holds. */
void res_client_release(res_client_t *c);

/** \brief Run the timers due (res_ops_t.arm). */
void res_timers(res_engine_t *e);
/** \brief Run what other threads posted (res_ops_t.wake). */
void res_run_posted(res_engine_t *e);

/** \brief Copy the counters. */
void res_get_stats(const res_engine_t *e, res_stats_t *st);

#endif /* HDL_NODE_RESOLVER_RESOLVE_H */
