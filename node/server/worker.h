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
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "node/server/dispatch.h"

struct event;
struct event_base;
struct evconnlistener;
struct http_state;
struct tcp_conn;

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

typedef struct udp_sock {
	int fd;
	struct event *ev;
	worker_t *w;
} udp_sock_t;

/** Sockets one worker serves (created by the main thread, owned by the worker once started). */
typedef struct worker_fds {
	int *udp;
	unsigned n_udp;
	int *tcp;
	unsigned n_tcp;
	int *http;
	unsigned n_http;
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
	udp_sock_t *udp;
	struct evconnlistener **tcp;
	struct evconnlistener **http_lis; /**< HTTP listeners (http.c) */
	struct http_state *http;          /**< HTTP connections and buffers (http.c) */
	unsigned n_http_conns;            /**< open HTTP connections */

	struct event *accept_resume_ev; /**< re-enables listeners paused by EMFILE/ENFILE */
	struct tcp_conn *conns; /**< open TCP connections (doubly linked) */
	unsigned n_conns;

	reasm_slot_t *reasm; /**< udp_reasm_slots multi-packet UDP requests being reassembled */
	unsigned n_reasm;

	int notify[2];            /**< main -> worker: 'q' = drain and stop */
	struct event *notify_ev;
	struct event *tick_ev;    /**< 1 s: reassembly expiry, limits reload */
	struct event *drain_ev;
	uint64_t drain_deadline_ms;
	uint32_t limits_gen;
	bool stopping;

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

/** \brief Thread entry: sets up everything, reports through start_*, runs the loop. */
void *worker_main(void *arg);

/* transports (udp.c, tcp.c, http.c); each *_start runs on the worker thread */
int udp_start(worker_t *w);
void udp_stop(worker_t *w);
void udp_reasm_expire(worker_t *w, uint64_t now_ms);
void udp_free(worker_t *w);

int tcp_start(worker_t *w);
/** \brief Stop accepting; idle connections close now, busy ones after their answers flush. */
void tcp_stop(worker_t *w);
void tcp_free_all(worker_t *w);
/**
 * \brief Accept-error callback for all listeners (TCP and HTTP): when out of file descriptors,
 *        pause accepting for a moment instead of spinning on a readable listening socket.
 *        Uses worker_self.
 */
void tcp_accept_error(struct evconnlistener *l, void *arg);

int http_start(worker_t *w);
void http_stop(worker_t *w);
void http_free(worker_t *w);
/** \brief Apply reloaded HTTP limits (runs on the worker thread). */
void http_apply_limits(worker_t *w);
/** \brief Pause (false) or resume (true) accepting on the HTTP listeners. */
void http_listeners_enable(worker_t *w, bool on);

#endif /* HDL_NODE_SERVER_WORKER_H */
