/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Host name resolution for upstream targets: one c-ares channel per worker, driven by the
 *        worker's event_base (ARES_OPT_SOCK_STATE_CB + ares_process_fd + an ares_timeout()
 *        timer), with a bounded cache that keeps each answer for its DNS TTL (capped) and a
 *        failure for DNS_NEG_TTL_MS. Lookups of a name already being resolved wait for the
 *        same c-ares query.
 *
 * \note Not thread-safe: everything runs on the thread of the event_base.
 */
#ifndef HDL_NODE_RESOLVER_DNS_H
#define HDL_NODE_RESOLVER_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;

#define DNS_MAX_ADDRS   8u    /**< addresses kept per name */
#define DNS_NAME_MAX    253u  /**< longest name */
#define DNS_NEG_TTL_MS  5000u /**< how long a failed lookup is remembered */
#define DNS_MAX_WAITERS 1024u /**< lookups waiting on one name */

/** Configuration of a resolver. */
typedef struct dns_conf {
	const char *const *servers; /**< "ADDR:PORT" / "[IPv6]:PORT"; none = /etc/resolv.conf */
	unsigned n_servers;
	unsigned cache_size; /**< names cached (and being resolved) at once, >= 1 */
	uint32_t max_ttl_s;  /**< longest time an answer is kept, whatever its TTL */
	uint32_t timeout_ms; /**< per try of a DNS query (c-ares retries 2 more times) */
} dns_conf_t;

/** An answer: up to DNS_MAX_ADDRS addresses (IPv4 first as c-ares returns them). */
typedef struct dns_addrs {
	unsigned n;
	struct {
		int family;    /**< AF_INET or AF_INET6 */
		uint8_t a[16]; /**< 4 or 16 bytes */
	} addr[DNS_MAX_ADDRS];
	uint64_t expires_ms; /**< ups_now_ms() clock: when the answer is stale */
	uint32_t ttl_s;      /**< the TTL as used (after the cap) */
} dns_addrs_t;

typedef struct dns dns_t;
typedef struct dns_wait dns_wait_t;

/**
 * \brief Result of a lookup that had to wait.
 * \param status HDL_EOK (\p a holds at least one address), HDL_EDNS (no such name, no address,
 *        server failure, timeout)
 */
typedef void (*dns_cb_t)(void *arg, int status, const dns_addrs_t *a);

/**
 * \brief Make a resolver on \p base.
 * \param err reason on failure
 * \retval HDL_EOK, HDL_EDNS (c-ares refused the options or the servers), HDL_EINVAL, HDL_ENOMEM
 */
int dns_new(struct event_base *base, const dns_conf_t *conf, dns_t **out, char *err, size_t errlen);
/** \brief Free the resolver; lookups still waiting are dropped without their callbacks. */
void dns_free(dns_t *d);

/**
 * \brief Look \p name up (A and AAAA).
 * \retval 1 answered from the cache (or at once): \p now filled, no callback
 * \retval 0 \p cb will be called (never from inside this call); \p *w can cancel it
 * \retval HDL_EDNS a failure remembered for DNS_NEG_TTL_MS (no callback)
 * \retval HDL_EINVAL not a host name
 * \retval HDL_ELIMIT the cache is full of names being resolved, or too many waiters
 * \retval HDL_ENOMEM
 */
int dns_lookup(dns_t *d, const char *name, dns_cb_t cb, void *arg, dns_addrs_t *now,
               dns_wait_t **w);
/** \brief Cancel a waiting lookup (its callback is not called; the query itself goes on). */
void dns_cancel(dns_wait_t *w);

/** Counters. */
typedef struct dns_stats {
	uint64_t lookups;  /**< dns_lookup() calls */
	uint64_t hits;     /**< answered from the cache */
	uint64_t queries;  /**< c-ares lookups started */
	uint64_t failures; /**< c-ares lookups that failed */
	unsigned cached;   /**< names in the cache now */
} dns_stats_t;

/** \brief Copy the counters. */
void dns_get_stats(const dns_t *d, dns_stats_t *st);

/** \brief True when \p s is a syntactically valid host name (letters, digits, '-', '.'). */
bool dns_name_ok(const char *s);

#endif /* HDL_NODE_RESOLVER_DNS_H */
