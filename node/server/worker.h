/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Worker threads (internal to node/server): each owns an event_base (no locking), its own
 *        SO_REUSEPORT UDP, TCP and HTTP sockets, a dispatch context (store reader + arena), and
 *        its connections. The main thread talks to a worker only through its notify pipe.
 */
#ifndef HDL_NODE_SERVER_WORKER_H
#define HDL_NODE_SERVER_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "node/server/conn.h"
#include "node/server/dispatch.h"
#include "node/server/preq.h"

struct event;
struct event_base;
struct http_state;

#define WORKER_REASM_TIMEOUT_MS 5000u
#define WORKER_UDP_BATCH 16u       /**< datagrams per recvmmsg */
#define WORKER_UDP_TX 64u          /**< reply datagrams (fragments included) per sendmmsg */
#define WORKER_UDP_RXBUF 4096u     /**< largest datagram accepted */

/** One multi-packet UDP request being reassembled. */
typedef struct reasm_slot {
	bool used;
	int fd;
	struct sockaddr_storage peer;
	socklen_t peer_len;
	uint64_t started_ms;
	uint8_t *buf;    /**< grown to the largest message reassembled in this slot */
	size_t buf_cap;
	hdl_udp_reasm_t r;
} reasm_slot_t;

typedef struct worker worker_t;

/** One UDP socket a worker reads (udp.c keeps them in a list: a reload adds and removes some). */
typedef struct udp_sock {
	int fd;
	struct event *ev;
	worker_t *w;
	struct udp_sock *next;
	uint32_t serial; /**< per worker, never reused: a waiting request's reply path names it */
} udp_sock_t;

/** Sockets one worker serves (created by the main thread, owned by the worker once started). */
typedef struct worker_fds {
	int *udp;
	unsigned n_udp;
	int *tcp;
	unsigned n_tcp;
	int *http;
	unsigned n_http;
	int *tls; /**< TLS stream (tls_listen) */
	unsigned n_tls;
} worker_fds_t;

struct worker {
	int id;
	pthread_t thread;
	node_shared_t *node;
	struct event_base *base;
	dispatch_ctx_t dctx;
	uint8_t *out;     /**< reply buffer, DISPATCH_OUT_CAP */
	uint8_t *frags;   /**< UDP fragments of one reply, HDL_UDP_MAX_PACKETS x 512 */
	uint8_t *udp_rx;  /**< WORKER_UDP_BATCH x WORKER_UDP_RXBUF */
	uint8_t *udp_tx;  /**< WORKER_UDP_TX x 512: one batch of reply datagrams */

	worker_fds_t fds;
	udp_sock_t *udp;          /**< the UDP sockets read (a list; udp.c) */
	conn_worker_t cw;         /**< TCP and HTTP connections (conn.c) */
	struct http_state *http;  /**< HTTP scratch (http.c) */

	reasm_slot_t *reasm; /**< udp_reasm_slots multi-packet UDP requests being reassembled */
	unsigned n_reasm;

	preq_queue_t pq;          /**< suspended requests whose wait ended (preq.h) */
	struct delegate_worker *deleg; /**< the resolution engine and upstream pool (delegate.h) */
	struct delegate_worker *deleg_old; /**< engines a reload replaced, draining (delegate.h) */
	uint32_t deleg_seq;                /**< the upstream configuration this worker runs on */

	int notify[2]; /**< main -> worker: 'q' = drain and stop, 'u' = new upstreams, 'r' = rebind.h */
	struct rebind *rebind; /**< listeners a reload hands over (rebind.h); NULL: none */
	struct event *notify_ev;
	struct event *tick_ev;    /**< 1 s: reassembly expiry, limits reload */
	struct event *drain_ev;
	uint64_t drain_deadline_ms;
	uint32_t limits_gen;
	bool stopping;
	_Atomic uint64_t alive_ms; /**< worker_now_ms() of the last tick (the systemd watchdog) */

	/* start-up handshake with the main thread */
	int start_ret;
	bool started;
	pthread_mutex_t *start_mu;
	pthread_cond_t *start_cv;
};

/** The worker running on this thread (NULL on the main thread). */
extern _Thread_local worker_t *worker_self;

/** \brief Monotonic milliseconds. */
uint64_t worker_now_ms(void);

#define WORKER_STALL_MIN_MS 2000u /**< worker_stalled() never says so sooner */

/**
 * \brief The first of \p n workers whose event loop has not turned (alive_ms, stamped once a
 *        second) for more than \p limit_ms (at least WORKER_STALL_MIN_MS) at \p now_ms.
 * \return its index, or -1 when every loop turns (the systemd watchdog may be told so)
 */
int worker_stalled(const worker_t *w, unsigned n, uint64_t now_ms, uint64_t limit_ms);

/** \brief Thread entry: sets up everything, reports through start_*, runs the loop. */
void *worker_main(void *arg);

/**
 * \brief A bound socket for \p addr (ADDR:PORT), \p type SOCK_DGRAM or SOCK_STREAM (then
 *        listening), non-blocking, SO_REUSEPORT: one per worker (server.c; start-up and reload).
 * \param err on failure: "ADDR/udp: bind: REASON" and the like
 * \return the descriptor, or -1
 */
int listen_open(const char *addr, int type, char *err, size_t errlen);

/* transports (udp.c, tcp.c, http.c); each *_start runs on the worker thread */
int udp_start(worker_t *w);
void udp_stop(worker_t *w);
/**
 * \brief Read UDP socket \p fd from now on (worker thread; a reload's new address). Takes
 *        \p fd: it is closed on failure.
 * \retval HDL_EOK, HDL_ENOMEM
 */
int udp_sock_add(worker_t *w, int fd);
/**
 * \brief Close the worker's UDP socket(s) bound to \p addr (worker thread; a reload removed the
 *        address): requests being reassembled from them are dropped, and the answers of requests
 *        that wait (a write's commit, a delegated resolution) are not sent (nothing to send
 *        them from; the client retries).
 * \return sockets closed
 */
unsigned udp_sock_close(worker_t *w, const struct sockaddr_storage *addr);
void udp_reasm_expire(worker_t *w, uint64_t now_ms);
void udp_free(worker_t *w);

/** The stream protocols conn.c serves: Handle frames (tcp.c) and HTTP/1.1 (http.c). */
extern const conn_proto_t tcp_proto;
extern const conn_proto_t http_proto;

/** \brief Allocate the HTTP scratch state (before conn_start). \retval HDL_EOK, HDL_ENOMEM */
int http_start(worker_t *w);
/** \brief Free what http_start() allocated. */
void http_free(worker_t *w);

#endif /* HDL_NODE_SERVER_WORKER_H */
