/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Internals of the upstream pool (node/resolver/upstream.h) shared by its source files:
 *        upstream.c (pool, targets, queries, selection, health), ups_conn.c (stream and HTTP
 *        connections), ups_tls.c (OpenSSL contexts, verification, pins, sessions), ups_udp.c
 *        (datagram exchanges) and ups_http.c (HTTP response heads).
 */
#ifndef HDL_NODE_RESOLVER_UPS_INT_H
#define HDL_NODE_RESOLVER_UPS_INT_H

#include <openssl/ssl.h>
#include <sys/socket.h>

#include "hdl/msg.h"
#include "node/resolver/dns.h"
#include "node/resolver/upstream.h"

struct bufferevent;
struct event;

typedef struct ups_server ups_server_t;
typedef struct ups_conn ups_conn_t;

#define UPS_SRTT_MAX_MS   60000u /**< SRTT ceiling (timeouts double it up to this) */
#define UPS_HTTP_HEAD_MAX 8192u  /**< longest HTTP response head accepted */
#define UPS_UDP_BURST     16u    /**< datagrams read per readiness event */

/** Where a query is. */
typedef enum ups_qstate {
	Q_IDLE,    /**< held by nothing (just taken out of a queue) */
	Q_PENDING, /**< in its server's queue, waiting for an address or a connection slot */
	Q_SENT,    /**< written on a connection (conn, slot) */
	Q_UDP,     /**< datagram exchange running (fd) */
	Q_SOON,    /**< failing at the next loop turn (soon_status) */
	Q_MULTI,   /**< an ups_query_any() parent: a child query runs for it */
	Q_DONE,    /**< callback running */
} ups_qstate_t;

/** State of an ups_query_any(). */
typedef struct ups_multi {
	ups_target_t *cands; /**< copies; each holds a TLS reference */
	unsigned n;
	bool tried[UPS_MAX_CANDIDATES];
	ups_query_t *child;
	uint32_t try_timeout_ms;
	int last_err;
} ups_multi_t;

struct ups_query {
	ups_pool_t *pool;
	ups_server_t *srv; /**< NULL for a multi parent */
	ups_qstate_t state;
	ups_query_t *prev, *next;   /**< server queue (Q_PENDING) */
	ups_query_t *aprev, *anext; /**< the pool's list of every query */
	uint64_t seq;               /**< queue order (failures of "everything queued so far") */
	ups_conn_t *conn;           /**< Q_SENT */
	unsigned slot;              /**< Q_SENT: slot on conn */
	uint8_t *req;               /**< our copy of the request (RequestId rewritten when sent) */
	size_t len;
	uint32_t caller_id; /**< RequestId the caller gave (restored in the reply) */
	uint64_t deadline_ms;
	uint64_t sent_ms;    /**< when the request went out (RTT samples) */
	struct event *timer; /**< deadline, UDP retransmission, Q_SOON */
	int soon_status;
	bool top;     /**< counted in the pool's queries (not a failover child) */
	bool retried; /**< already re-sent once after a stale connection */
	bool probe;   /**< the probe of a down server */
	ups_cb_t cb;
	void *arg;
	ups_query_t *parent; /**< failover child: its ups_query_any() */
	ups_multi_t *multi;  /**< Q_MULTI */
	/* UDP */
	int fd;
	struct event *uev;
	uint8_t *rbuf;
	hdl_udp_reasm_t reasm;
	unsigned tries;
	uint64_t next_try_ms;
};

/** One slot of a connection's pipeline. */
typedef struct ups_slot {
	ups_query_t *q; /**< NULL: orphaned (cancelled or timed out; its answer is dropped) */
	uint32_t id;    /**< RequestId on the wire */
	bool used;
} ups_slot_t;

typedef enum ups_cstate {
	C_CONNECTING, /**< TCP connect and TLS handshake */
	C_READY,
	C_CLOSED, /**< unlinked; freed when no callback of it runs */
} ups_cstate_t;

struct ups_conn {
	ups_server_t *srv;
	ups_conn_t *prev, *next;   /**< the server's connections */
	ups_conn_t *iprev, *inext; /**< the pool's idle list (READY, nothing in flight) */
	bool in_idle;
	struct bufferevent *bev;
	SSL *ssl; /**< owned by bev */
	ups_cstate_t state;
	struct event *timer; /**< connect deadline, then idle timeout */
	struct sockaddr_storage peer;
	socklen_t peer_len;
	ups_slot_t *slots;
	unsigned cap;      /**< pipeline depth */
	unsigned used;     /**< slots in use (orphans included) */
	unsigned live;     /**< slots with a query */
	uint32_t gen;      /**< RequestId = gen << 8 | slot */
	uint64_t answered; /**< replies read (a reused connection may be stale) */
	bool retire;       /**< address no longer current: no new requests */
	bool http;         /**< HTTP native tunnel framing */
	bool head_done;    /**< HTTP: response head read, body_len known */
	bool http_close;   /**< HTTP: the server will close after this response */
	size_t body_len;
	int busy; /**< callbacks of this connection running */
};

struct ups_server {
	ups_pool_t *pool;
	ups_server_t *hnext;         /**< hash chain */
	ups_server_t *lprev, *lnext; /**< the pool's LRU list of servers */
	ups_server_t *wprev, *wnext; /**< the pool's list of servers waiting for a connection */
	bool waiting;
	ups_target_t t;                /**< key; t.tls is a reference */
	char label[UPS_HOST_MAX + 16]; /**< "host:port/transport" for log lines */
	unsigned cap;                  /**< pipeline depth of its connections */
	bool numeric;
	struct sockaddr_storage addr[DNS_MAX_ADDRS];
	socklen_t alen[DNS_MAX_ADDRS];
	unsigned naddr, addr_i;
	uint64_t addr_expires_ms; /**< UINT64_MAX for numeric hosts */
	dns_wait_t *dnsw;         /**< resolution running */
	ups_conn_t *conns;
	unsigned nconns;
	ups_query_t *pend_head, *pend_tail;
	unsigned npend;
	unsigned nrefs; /**< queries pointing at the server */
	/* selection */
	uint32_t srtt_ms;
	bool measured;
	unsigned fails; /**< consecutive */
	unsigned downs; /**< back-offs in a row */
	uint64_t down_until_ms;
	bool probing;
	SSL_SESSION *sess; /**< last TLS session, offered on reconnection */
};

struct ups_pool {
	struct event_base *base;
	dns_t *dns;
	ups_limits_t lim;
	ups_server_t **buckets;
	unsigned nbuckets;
	unsigned nservers;
	ups_server_t *lru_head, *lru_tail;
	ups_server_t *wait_head;
	ups_conn_t *idle_head, *idle_tail; /**< most recently used first */
	unsigned nconns;
	unsigned nqueries; /**< top-level queries */
	ups_query_t *allq; /**< every query */
	uint64_t qseq;
	uint64_t rng;
	bool closing;
	ups_stats_t st;
};

/* upstream.c */
/** \brief Detach \p q from everything, call its callback (or its parent's logic), free it. */
void ups_complete(ups_query_t *q, int status, uint8_t *reply, size_t len);
/** \brief Complete \p q with \p status at the next turn of the loop. */
void ups_fail_soon(ups_query_t *q, int status);
/** \brief A reply came after \p rtt_ms (UINT32_MAX: no sample). */
void ups_server_ok(ups_server_t *s, uint32_t rtt_ms);
/** \brief A failure talking to \p s (connect, TLS, timeout, lost connection, bad reply). */
void ups_server_fail(ups_server_t *s, int err);
/** \brief Move queued queries of \p s onto connections, opening some within the limits. */
void ups_server_kick(ups_server_t *s);
/** \brief Fail the queries queued on \p s so far with \p err (callbacks run now). */
void ups_server_fail_queued(ups_server_t *s, int err);
/** \brief Put \p q back at the head of its server's queue. */
void ups_requeue(ups_query_t *q);
/** \brief Kick the servers waiting for room under max_conns. */
void ups_pool_kick(ups_pool_t *p);
/** \brief Arm \p ev to fire \p ms milliseconds from now. */
void ups_timer_in(struct event *ev, uint64_t ms);
/** \brief Arm \p ev to fire at \p at_ms (ups_now_ms() clock; now if already past). */
void ups_timer_at(struct event *ev, uint64_t at_ms);
/** \brief Random 64 bits from the pool's generator. */
uint64_t ups_rand(ups_pool_t *p);

/* ups_conn.c */
/** \brief Open one connection to \p s (address s->addr[s->addr_i]). \retval HDL_EOK, HDL_E* */
int ups_conn_open(ups_server_t *s);
/** \brief A READY connection of \p s with a free slot, or NULL. */
ups_conn_t *ups_conn_find(ups_server_t *s);
/** \brief Put \p q (popped from its queue) on \p c. */
void ups_conn_send(ups_conn_t *c, ups_query_t *q);
/** \brief \p q leaves its slot (cancel, timeout): a late answer will be dropped. */
void ups_conn_orphan(ups_query_t *q);
/**
 * \brief Close \p c: queries on it fail with \p err, or go back to the queue once when the
 *        connection had been reused and nothing of their answer had come. HDL_EOK = a clean
 *        close (idle, eviction).
 */
void ups_conn_close(ups_conn_t *c, int err);
/** \brief Close the least recently used idle connection not of \p keep. \return false if none */
bool ups_conn_evict_idle(ups_pool_t *p, const ups_server_t *keep);
/** \brief Connections of \p s whose address is not among the current ones stop taking work. */
void ups_conn_retire_stale(ups_server_t *s);

/* ups_tls.c */
/** \brief A client SSL for \p c (SNI, expected name or IP, stored session). NULL on failure. */
SSL *ups_tls_ssl_new(ups_conn_t *c);
/**
 * \brief After the handshake: verification result and pin. \param why reason when refused
 * \retval HDL_EOK, HDL_ETLS
 */
int ups_tls_check_peer(ups_conn_t *c, char *why, size_t cap);
/**
 * \brief Text of the OpenSSL errors of \p c and its verification result (consumed).
 * \return true when there was any (\p buf "unknown" otherwise)
 */
bool ups_tls_error_text(ups_conn_t *c, char *buf, size_t cap);
/** \brief Let the session of \p c be resumed later (a clean close). */
void ups_tls_keep_session(ups_conn_t *c);

/* ups_udp.c */
/** \brief Start the datagram exchange of \p q (server address resolved). \retval HDL_EOK, HDL_E* */
int ups_udp_start(ups_query_t *q);
/** \brief Retransmission due (timer). */
void ups_udp_retry(ups_query_t *q);
/** \brief Close the socket and free the buffers of \p q. */
void ups_udp_stop(ups_query_t *q);

/* ups_http.c */
/** A parsed HTTP response head. */
typedef struct ups_http_head {
	unsigned status; /**< 100..999 */
	unsigned minor;  /**< HTTP/1.minor */
	bool has_length;
	uint64_t content_length;
	bool chunked;         /**< Transfer-Encoding other than identity */
	bool close;           /**< the connection ends after this response */
	bool content_type_ok; /**< Content-Type application/x-hdl-message (or absent) */
} ups_http_head_t;

/**
 * \brief Parse an HTTP/1.x response head: status line, header lines, the empty line; \p n bytes
 *        ending just after the empty line (CRLF or bare LF line ends).
 * \retval HDL_EOK, HDL_EPROTO (not HTTP/1.x, bad status, a malformed or repeated Content-Length,
 *         control bytes, obsolete line folding)
 */
int ups_http_head_parse(const char *p, size_t n, ups_http_head_t *h);

#endif /* HDL_NODE_RESOLVER_UPS_INT_H */
