/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Queries to upstream Handle servers (national top-level nodes, other secondary nodes):
 *        a per-worker pool of connections on the worker's event_base, never blocking.
 *
 * Transports (docs/delegation.md; RFC 3652 for the framing):
 *  - UPS_TLS:   Handle TCP framing (20-byte envelope + MessageLength) over TLS 1.2+, persistent
 *               and pipelined: several requests in flight on one connection, matched by RequestId
 *               (rewritten so it is unique per connection, the caller's restored in the reply);
 *  - UPS_HTTPS: the HTTP native tunnel over TLS (POST, application/x-hdl-message), keep-alive,
 *               one request at a time per connection;
 *  - UPS_HTTP:  the same without TLS;
 *  - UPS_TCP:   Handle TCP framing in the clear (pipeline depth 1 by default: Handle.Net servers
 *               answer one request per connection);
 *  - UPS_UDP:   512-byte datagrams, multi-packet answers reassembled, retransmitted at
 *               retry, 2 x retry, 3 x retry ... ms until the deadline.
 *
 * Certificates are always verified (CA file or the system store, server name or IP address in the
 * subjectAltName) unless an upstream is configured with verify=no, which is logged as a warning.
 * An optional SPKI pin (SHA-256 of the server's public key) is checked after every handshake.
 * TLS sessions are kept per server and offered again on reconnection (resumption).
 *
 * Server selection: every target keeps a smoothed round-trip time (SRTT) and a health state; a
 * target failing `fail_threshold` times in a row is down for a back-off that doubles up to
 * `backoff_max_ms`, then gets one probe query. ups_query_any() picks the best of several targets
 * (lowest SRTT, sometimes another one to keep estimates fresh) and fails over to the next on an
 * error or after its per-try timeout.
 *
 * Host names are resolved through a dns_t (node/resolver/dns.h) and re-resolved when their TTL
 * runs out; numeric addresses need none.
 *
 * \note Everything here runs on the thread of the pool's event_base. Callbacks are never called
 *       from inside ups_query_start() / ups_query_any(); they may start and cancel queries, but
 *       must not free the pool. The process must ignore SIGPIPE (OpenSSL writes with write(2)),
 *       as idnoded does.
 */
#ifndef HDL_NODE_RESOLVER_UPSTREAM_H
#define HDL_NODE_RESOLVER_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hdl/values.h"

struct event_base;
struct dns;

#define UPS_HOST_MAX       253u /**< longest host name or numeric address */
#define UPS_PIN_LEN        32u  /**< SHA-256 SPKI pin */
#define UPS_MAX_CANDIDATES 32u  /**< targets one ups_query_any() chooses among */
#define UPS_MAX_PIPELINE   256u /**< most requests in flight on one connection */

/** Transport of an upstream target. */
typedef enum ups_transport {
	UPS_TLS = 0, /**< Handle TCP framing over TLS, pipelined */
	UPS_HTTPS,   /**< HTTP native tunnel over TLS */
	UPS_HTTP,    /**< HTTP native tunnel in the clear */
	UPS_TCP,     /**< Handle TCP framing in the clear */
	UPS_UDP,     /**< Handle UDP datagrams */
	UPS_TRANSPORT_COUNT,
} ups_transport_t;

/** \brief Name of \p t ("tls", "https", "http", "tcp", "udp"). */
const char *ups_transport_name(ups_transport_t t);
/** \brief Parse a transport name. \retval HDL_EOK, HDL_EINVAL */
int ups_transport_parse(const char *s, ups_transport_t *out);
/** \brief True for the transports that run over TLS (UPS_TLS, UPS_HTTPS). */
bool ups_transport_is_tls(ups_transport_t t);

/** TLS parameters of one upstream (strings are copied by ups_tls_new()). */
typedef struct ups_tls_conf {
	const char *label;        /**< name used in log lines (the upstream's name) */
	const char *ca_file;      /**< PEM CA bundle; NULL or "" = the system trust store */
	const char *cert_file;    /**< client certificate chain (PEM), or NULL */
	const char *key_file;     /**< its private key (PEM), or NULL */
	bool verify;              /**< false: no certificate verification at all (logged loudly) */
	bool has_pin;             /**< check pin[] against the server's public key */
	uint8_t pin[UPS_PIN_LEN]; /**< SHA-256 of the DER SubjectPublicKeyInfo */
} ups_tls_conf_t;

/** A TLS client context (OpenSSL SSL_CTX, TLS 1.2 minimum) and its verification policy. */
typedef struct ups_tls ups_tls_t;

/**
 * \brief Build a TLS client context.
 * \param err reason on failure ("ca.pem: cannot load CA file: ...")
 * \retval HDL_EOK, HDL_ETLS (files that do not load, key not matching the certificate),
 *         HDL_EINVAL (cert without key or the reverse), HDL_ENOMEM
 * \note Reference counted (atomically): contexts may be shared by the pools of several workers.
 */
int ups_tls_new(const ups_tls_conf_t *conf, ups_tls_t **out, char *err, size_t errlen);
/** \brief Take a reference. \return \p t */
ups_tls_t *ups_tls_ref(ups_tls_t *t);
/** \brief Drop a reference (NULL is ignored); the last one frees the context. */
void ups_tls_unref(ups_tls_t *t);

/** One upstream server as a query is addressed to it. */
typedef struct ups_target {
	char host[UPS_HOST_MAX + 1]; /**< numeric IPv4/IPv6 address or a DNS name */
	char name[UPS_HOST_MAX + 1]; /**< name checked in the certificate, SNI and HTTP Host;
	                                  "" = host */
	uint16_t port;
	ups_transport_t transport;
	ups_tls_t *tls;    /**< UPS_TLS / UPS_HTTPS: required (borrowed; servers keep a ref) */
	uint16_t pipeline; /**< requests in flight per connection (UPS_TLS / UPS_TCP); 0 = the pool
	                        default (UPS_TLS) or 1 (UPS_TCP) */
} ups_target_t;

/**
 * \brief Fill \p t from "HOST:PORT" / "[IPv6]:PORT" and a transport (tls borrowed, may be NULL).
 * \retval HDL_EOK, HDL_EINVAL (no port, port 0, host too long or empty)
 */
int ups_target_set(ups_target_t *t, const char *hostport, ups_transport_t tr, ups_tls_t *tls);

/** Limits and timers of a pool; see deploy/idnode.conf.sample for each. */
typedef struct ups_limits {
	unsigned max_conns_per_server; /**< open connections to one target */
	unsigned max_conns;            /**< open connections in all (UDP sockets not counted) */
	unsigned max_queries;          /**< queries started and not yet completed */
	unsigned max_servers;          /**< targets remembered (SRTT, health, sessions) */
	unsigned pipeline;             /**< default requests in flight per TLS connection */
	uint32_t max_reply;            /**< largest reply accepted (bytes after the envelope) */
	uint32_t connect_timeout_ms;   /**< TCP connect + TLS handshake */
	uint32_t idle_timeout_ms;      /**< close a connection unused this long */
	uint32_t udp_retry_ms;         /**< first UDP retransmission; then 2x, 3x ... */
	unsigned fail_threshold;       /**< consecutive failures that mark a target down */
	uint32_t backoff_ms;           /**< first down period; doubles each time */
	uint32_t backoff_max_ms;       /**< longest down period */
} ups_limits_t;

/** \brief The defaults (the same as the configuration's). */
void ups_limits_default(ups_limits_t *l);

/** Counters of one pool. */
typedef struct ups_stats {
	uint64_t queries;        /**< queries started */
	uint64_t answers;        /**< completed with a reply */
	uint64_t failures;       /**< completed with an error (timeouts included) */
	uint64_t timeouts;       /**< completed with HDL_ETIMEDOUT */
	uint64_t refused;        /**< not started: over max_queries */
	uint64_t retried;        /**< re-sent after a reused connection closed under them */
	uint64_t failovers;      /**< ups_query_any() moving on to another target */
	uint64_t conns_opened;   /**< TCP connections attempted */
	uint64_t tls_handshakes; /**< TLS handshakes completed */
	uint64_t tls_resumed;    /**< of which resumed a session */
	uint64_t tls_failures;   /**< handshakes or verifications that failed */
	uint64_t udp_sent;       /**< UDP datagrams sent (retransmissions included) */
	unsigned conns_open;     /**< connections open now */
	unsigned queries_active; /**< queries running now */
	unsigned servers;        /**< targets remembered now */
} ups_stats_t;

/** A per-worker pool of upstream connections. */
typedef struct ups_pool ups_pool_t;
/** A running query (handle for ups_query_cancel()). */
typedef struct ups_query ups_query_t;

/**
 * \brief Completion of a query.
 * \param status HDL_EOK (\p reply holds the whole reply message: envelope with the caller's
 *        RequestId + MessageLength bytes), HDL_ETIMEDOUT (deadline), HDL_ETLS (handshake,
 *        certificate or pin refused), HDL_ECONNREFUSED, HDL_EIO (connection lost or reset, also
 *        in the middle of a reply), HDL_EPROTO (a malformed reply, an HTTP error status),
 *        HDL_ELIMIT (reply over max_reply), HDL_EDNS (the host name did not resolve),
 *        HDL_EAGAIN (ups_query_any(): every target is down)
 * \note \p reply is valid only during the call.
 */
typedef void (*ups_cb_t)(void *arg, int status, const uint8_t *reply, size_t len);

/**
 * \brief Make a pool on \p base.
 * \param dns resolver for targets given by name (may be NULL: numeric hosts only); borrowed,
 *        must outlive the pool
 * \retval HDL_EOK, HDL_EINVAL (a zero limit), HDL_ENOMEM
 */
int ups_pool_new(struct event_base *base, const ups_limits_t *lim, struct dns *dns,
                 ups_pool_t **out);
/**
 * \brief Close every connection and free the pool. Queries still running complete first with
 *        HDL_EIO (their callbacks may not start new queries: those fail with HDL_EAGAIN).
 */
void ups_pool_free(ups_pool_t *p);
/** \brief Apply new limits (reload); connections over the new bounds close as they go idle. */
void ups_pool_set_limits(ups_pool_t *p, const ups_limits_t *lim);
/** \brief Seed the pool's random choices (exploration, UDP request ids); tests use it. */
void ups_pool_seed(ups_pool_t *p, uint64_t seed);
/** \brief Copy the counters. */
void ups_pool_stats(const ups_pool_t *p, ups_stats_t *st);

/** \brief Monotonic milliseconds: the clock of every deadline here. */
uint64_t ups_now_ms(void);

/**
 * \brief Send the request \p req (a whole encoded message, envelope included; copied) to \p t
 *        and call \p cb once with the reply or an error, unless cancelled first.
 * \param deadline_ms ups_now_ms() value by which the reply must be complete
 * \param[out] out handle for ups_query_cancel() (may be NULL)
 * \retval HDL_EOK started
 * \retval HDL_EINVAL not a whole message, or a TLS transport without \p t->tls
 * \retval HDL_ELIMIT max_queries reached
 * \retval HDL_EAGAIN the pool is being freed
 * \retval HDL_ENOMEM
 */
int ups_query_start(ups_pool_t *p, const ups_target_t *t, const uint8_t *req, size_t len,
                    uint64_t deadline_ms, ups_cb_t cb, void *arg, ups_query_t **out);

/**
 * \brief Like ups_query_start(), choosing among \p n candidates (ups_choose()) and failing over
 *        to the next best one after an error or \p try_timeout_ms, until \p deadline_ms or until
 *        every candidate has been tried. Any reply, whatever its response code, completes it.
 * \retval HDL_EOK, HDL_EINVAL (n is 0 or over UPS_MAX_CANDIDATES), HDL_EAGAIN (every candidate
 *         is down), HDL_ELIMIT, HDL_ENOMEM
 */
int ups_query_any(ups_pool_t *p, const ups_target_t *cands, unsigned n, const uint8_t *req,
                  size_t len, uint64_t deadline_ms, uint32_t try_timeout_ms, ups_cb_t cb, void *arg,
                  ups_query_t **out);

/**
 * \brief Forget a running query: its callback will not be called. A request already on the wire
 *        is left to its connection (a late answer is dropped).
 */
void ups_query_cancel(ups_query_t *q);

/**
 * \brief Choose one of \p n targets: among those up, the lowest SRTT (unknown ones count as
 *        UPS_SRTT_INIT_MS, ties go to the first), but, once the best has been measured, one time
 *        in UPS_EXPLORE_ONE_IN another up target at random; with none up, one whose back-off has
 *        run out (a probe). \p skip (may be NULL) marks targets not to choose.
 * \return the index, or HDL_EAGAIN when every target is down or skipped
 */
int ups_choose(ups_pool_t *p, const ups_target_t *cands, unsigned n, const bool *skip);

#define UPS_SRTT_INIT_MS   300u /**< SRTT assumed for a target never measured */
#define UPS_EXPLORE_ONE_IN 16u  /**< one choice in this many explores */

/** Health and timing of one target, for logs and tests. */
typedef struct ups_server_info {
	bool known;       /**< the pool remembers the target */
	bool measured;    /**< srtt_ms is a measurement */
	uint32_t srtt_ms; /**< smoothed round-trip time */
	unsigned fails;   /**< consecutive failures */
	bool down;        /**< in back-off now */
	uint64_t down_ms; /**< back-off left (0 when up) */
	unsigned conns;   /**< open connections */
} ups_server_info_t;

/** \brief Health and timing of \p t. */
void ups_server_info(ups_pool_t *p, const ups_target_t *t, ups_server_info_t *info);

/**
 * \brief Targets for \p handle in one HS_SITE (RFC 3651): the server the handle hashes to
 *        (hdl_site_server_for()), each of its query interfaces whose transport is in \p mask
 *        (bits 1u << ups_transport_t), ordered HTTPS, TCP, UDP, HTTP. HTTPS interfaces need
 *        \p tls (borrowed) and are skipped without it; servers with an all-zero address are
 *        skipped.
 * \return targets written to \p out (at most \p max)
 */
unsigned ups_site_targets(const hdl_site_t *site, hdl_slice_t handle, unsigned mask, ups_tls_t *tls,
                          ups_target_t *out, unsigned max);

#endif /* HDL_NODE_RESOLVER_UPSTREAM_H */
