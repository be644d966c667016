/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief State shared by all workers of one node: the store, this node's HS_SITE record, and the
 *        live limits that SIGHUP may change (read once per request with relaxed atomics).
 */
#ifndef HDL_NODE_SERVER_NODE_H
#define HDL_NODE_SERVER_NODE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hdl/values.h"

struct dcache;
struct dflight;
struct delegate_node;
struct store;
struct connlimit;
struct conf;
struct rrl;
struct node_obs;
struct tls_server;
struct rest_sessions;
struct snms;
struct srvadmin_set;
struct reload;

/** Limits a reload can change; every worker reads them per request. */
typedef struct node_limits {
	_Atomic uint32_t max_message_len;
	_Atomic uint32_t max_values;
	_Atomic uint32_t max_connections;
	_Atomic uint32_t tcp_idle_timeout_ms;
	_Atomic uint32_t tcp_frame_timeout_ms;
	_Atomic uint32_t tcp_buffer_max;
	_Atomic uint32_t http_max_body;
	_Atomic uint32_t cache_bytes; /**< response cache per worker (cache_size / workers) */
	/* administration (admin.c) */
	_Atomic uint32_t auth_timeout_ms;         /**< a challenge waits this long for its answer */
	_Atomic uint32_t auth_pending_per_source; /**< challenges waiting per source address */
	_Atomic uint32_t pending_max;             /**< suspended requests per worker */
	_Atomic uint32_t pending_per_source;      /**< suspended requests per source per worker */
	_Atomic uint32_t allow_list_handles;      /**< 0: LIST_HANDLES answers RC 5 */
	/* TLS and the REST admin API (tls.c, rest_admin.c) */
	_Atomic uint32_t tls_handshake_timeout_ms; /**< a TLS handshake's deadline */
	_Atomic uint32_t http_auth_plain_loopback; /**< 1: plain HTTP credentials from loopback */
	_Atomic uint32_t rest_sessions_per_source; /**< REST sessions per source address */
	_Atomic uint32_t rest_session_idle_ms;     /**< an authenticated session expires unused */
	_Atomic uint32_t rest_session_unauth_ms;   /**< a session not authenticated expires */
	/* UDP (udp.c, rrl.c); 0 in udp_answer_max_datagrams means no datagram cap */
	_Atomic uint32_t udp_gso;                  /**< 1 = segmentation offload allowed */
	_Atomic uint32_t udp_answer_max_datagrams; /**< most datagrams of one UDP answer */
	_Atomic uint32_t udp_answer_max_ratio;     /**< answer bytes / request bytes; 0 = off */
	_Atomic uint32_t udp_reasm_slots;          /**< per worker; read once at start */
	_Atomic uint32_t udp_rrl_rate;             /**< answers/s per source prefix; 0 = off */
	_Atomic uint32_t udp_rrl_burst;            /**< token bucket depth; 0 = the rate */
	_Atomic uint32_t udp_rrl_slip;             /**< every Nth limited request: TCP redirect */
	/* stream connections (conn.c) */
	_Atomic uint32_t max_conn_per_source;
	_Atomic uint32_t src_v4_bits;
	_Atomic uint32_t src_v6_bits;
	_Atomic uint32_t conn_buffer_budget;
	_Atomic uint32_t tcp_close;  /**< NODE_TCP_CLOSE_* */
	_Atomic uint32_t gen; /**< bumped after each reload */
} node_limits_t;

#define NODE_LIMIT(l, f) atomic_load_explicit(&(l)->f, memory_order_relaxed)

/** tcp_close_after_answer: when a TCP connection closes after an answer (tcp.c). */
#define NODE_TCP_CLOSE_AUTO 0u /**< 2.11+ requests without KC (HNET9 clients); see tcp.c */
#define NODE_TCP_CLOSE_YES 1u  /**< after every answer (HNET9 server behaviour) */
#define NODE_TCP_CLOSE_NO 2u   /**< never: the idle timeout closes */

/** \brief Copy the reloadable limits of \p c into \p l and bump the generation. */
void node_limits_apply(node_limits_t *l, const struct conf *c);

/** Immutable after start, except the atomics in limits. */
typedef struct node_shared {
	struct store *store;
	struct dcache *dcache;   /**< upstream answers, all workers (resolver/rnode.h) */
	struct dflight *dflight; /**< upstream queries in flight (resolver/rnode.h) */
	struct delegate_node *deleg; /**< resolution path (delegate.h); NULL: no resolver cache */
	node_limits_t limits;
	uint16_t site_serial;
	uint8_t *site;           /**< this node's HS_SITE record (hdl_site_encode) */
	size_t site_len;
	hdl_site_t site_info;    /**< the same, as a struct (REST /api/site); arrays owned here */
	uint8_t *prefix_vals;    /**< U32 1 + one HS_SITE value: answer for 0.NA/<homed prefix> */
	size_t prefix_vals_len;  /**<   when the store holds no record of its own */
	struct rrl *rrl;         /**< UDP response-rate limiting, shared by the workers (or NULL) */
	struct connlimit *conns; /**< node-wide connection and buffer accounting (connlimit.h) */
	uint32_t fd_conn_cap;    /**< connections the descriptor limit leaves room for */
	struct writer *writer;      /**< the write path (NULL: writes are refused) */
	struct chal_table *chal;    /**< challenges waiting for their answers (admin.c) */
	/** configured server admins; a reload swaps the set (srvadmin.h, reload.h) */
	struct srvadmin_set *_Atomic admins;
	struct reload *reload; /**< the reload hook list modules register with (reload.h) */
	struct node_obs *obs;       /**< counters, statistics, start time (obs.h); NULL in tests */
	struct tls_server *tls;     /**< TLS contexts, swapped on reload (tls.h; NULL: no TLS) */
	bool http_tls;              /**< the http listeners also take TLS (port unification) */
	struct rest_sessions *rest_sessions; /**< REST API sessions, node-wide (rest.h) */
	struct snms *snms;          /**< the SNMS API's users and tokens (snms.h) */
} node_shared_t;

/**
 * \brief Build this node's HS_SITE from the configuration: one server (id 1) at the first IPv4
 *        listen address (else the first), interfaces TCP (query+admin) and UDP (query) on its port, HTTP (query+admin)
 *        on the first http port; primary; serial from site_serial; protocol 2.10. With a
 *        tls_listen address, the attribute "idnode.tls_port" names its port (the TLS stream,
 *        docs/delegation.md).
 * \retval HDL_EOK, HDL_ENOMEM, HDL_ECONF (unusable address)
 */
int node_site_build(node_shared_t *n, const struct conf *c, uint32_t now);
/**
 * \brief The listen address HS_SITE names for \p c: the first IPv4 one, else the first.
 * \return a string of \p c->listen, or NULL (no listen address)
 */
const char *node_site_listen(const struct conf *c);
/** \brief Free what node_site_build() allocated. */
void node_site_free(node_shared_t *n);

#endif /* HDL_NODE_SERVER_NODE_H */
