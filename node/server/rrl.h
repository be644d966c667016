/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief UDP response-rate limiting (RRL), in the manner of Knot DNS and BIND: a token bucket per
 *        source prefix (/24 for IPv4, /56 for IPv6) caps the answers one network gets per
 *        second, so that the node cannot be used to flood a spoofed victim. A limited request
 *        is dropped, except every Nth ("slip"), which gets a short redirect to TCP so that a
 *        legitimate client behind a limited prefix still gets its answer.
 *
 * One table serves all workers: the workers share the UDP port through SO_REUSEPORT, so one
 * source's requests land on several of them, and only a shared bucket keeps the source at the
 * configured rate in total. The table is fixed in size (set-associative, 4 buckets a set, one
 * mutex per stripe of sets); a source that finds no bucket of its own and no idle one shares a
 * busy bucket (limited together with its owner) rather than evicting it, so a flood of new
 * prefixes can never reset a limited prefix's bucket.
 *
 * \note rrl_check() and rrl_count() are thread-safe; rrl_whitelist_add() is for set-up only.
 */
#ifndef HDL_NODE_SERVER_RRL_H
#define HDL_NODE_SERVER_RRL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct conf;

typedef struct rrl rrl_t;

/** What to do with one request. */
typedef enum rrl_verdict {
	RRL_PASS = 0, /**< answer it */
	RRL_SLIP,     /**< limited: send the short TCP redirect instead of the answer */
	RRL_DROP,     /**< limited: no answer */
} rrl_verdict_t;

/** Live parameters (reloadable; read from the node limits per request). */
typedef struct rrl_params {
	uint32_t rate;  /**< answers per second per prefix; 0 = no limiting */
	uint32_t burst; /**< bucket depth in answers; 0 = the rate */
	uint32_t slip;  /**< every Nth limited request slips; 0 = none, 1 = all */
} rrl_params_t;

/** Counters kept beside the table (summed over the workers). */
typedef enum rrl_counter {
	RRL_CTR_LIMITED = 0, /**< requests over the rate (slipped + dropped) */
	RRL_CTR_SLIPPED,     /**< limited requests answered with the TCP redirect */
	RRL_CTR_DROPPED,     /**< limited requests not answered */
	RRL_CTR_REDIRECTED,  /**< answers over the UDP answer cap replaced by the TCP redirect */
	RRL_CTR_SHARED,      /**< requests charged to another prefix's bucket (table full) */
	RRL_N_COUNTERS
} rrl_counter_t;

/** Snapshot of the counters. */
typedef struct rrl_stats {
	uint64_t c[RRL_N_COUNTERS]; /**< indexed by rrl_counter_t */
} rrl_stats_t;

/** Milliseconds between two log lines about the same limited prefix. */
#define RRL_LOG_INTERVAL_MS 10000u

/**
 * \brief New table of at least \p entries buckets (rounded up to a power of two, >= 64), with
 *        counter slots for \p n_workers workers and an empty whitelist.
 * \retval HDL_EOK, HDL_ENOMEM, HDL_EINVAL (no workers)
 */
int rrl_new(uint32_t entries, unsigned n_workers, rrl_t **out);

/**
 * \brief New table sized by \p c (udp_rrl_table_size) with its whitelist (udp_rrl_whitelist).
 * \retval as rrl_new(); HDL_ECONF for a whitelist entry that does not parse
 */
int rrl_new_from_conf(const struct conf *c, unsigned n_workers, rrl_t **out);

void rrl_free(rrl_t *r);

/**
 * \brief Never limit the network \p addr / \p len (\p family AF_INET: 4 bytes, AF_INET6: 16).
 * \retval HDL_EOK, HDL_ENOMEM, HDL_EINVAL (bad family or length)
 */
int rrl_whitelist_add(rrl_t *r, int family, const uint8_t addr[16], unsigned len);

/** \brief True when \p sa (AF_INET or AF_INET6) is in a whitelisted network. */
bool rrl_whitelisted(const rrl_t *r, const struct sockaddr *sa);

/**
 * \brief Charge one answer to \p sa's prefix at time \p now_ms (monotonic milliseconds; callers
 *        may pass slightly stale times) and say whether it may be sent. Counts limited, slipped
 *        and dropped requests in worker \p worker's slot and logs (through log_peer) at most one
 *        line per limited prefix per RRL_LOG_INTERVAL_MS.
 * \return RRL_PASS for whitelisted sources, other families, or \p p->rate 0
 */
rrl_verdict_t rrl_check(rrl_t *r, unsigned worker, const struct sockaddr *sa, const rrl_params_t *p,
                        uint64_t now_ms);

/** \brief Add one to counter \p which in worker \p worker's slot. */
void rrl_count(rrl_t *r, unsigned worker, rrl_counter_t which);

/** \brief Sum of every worker's counters. */
void rrl_get_stats(const rrl_t *r, rrl_stats_t *st);

/** \brief Log the counters at info level, saying \p when ("reload", "shutdown"). */
void rrl_log_stats(const rrl_t *r, const char *when);

/**
 * \brief The prefix of \p sa as text ("192.0.2.0/24", "2001:db8:1:200::/56").
 * \return \p buf (empty for other families)
 */
const char *rrl_prefix_str(const struct sockaddr *sa, char *buf, size_t cap);

#endif /* HDL_NODE_SERVER_RRL_H */
