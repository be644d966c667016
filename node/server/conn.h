/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Stream connections of one worker (internal to node/server), shared by the Handle TCP
 *        transport (tcp.c) and the HTTP/1.1 server (http.c): everything but the protocol.
 *
 * - Accept: node-wide limits (max_connections over TCP and HTTP together,
 *   max_connections_per_source, the descriptor limit) counted in connlimit.c. Under slot
 *   pressure the worker closes its own oldest idle connection (of the same source, for the
 *   per-source limit) to make room, and refuses only when it has none; out of descriptors it
 *   closes idle connections before pausing accept. Listeners are TCP_DEFER_ACCEPT (the kernel
 *   hands over a connection once its first bytes are in), so a new connection is read at once:
 *   a close-per-request client is served with accept4, read, write and close and never touches
 *   epoll.
 * - Buffers: reads go into a per-worker scratch buffer and answers into a per-worker output
 *   buffer; a connection owns memory only for what is left over (a partial request, whole
 *   requests waiting behind back-pressure, output the peer has not taken yet), allocated exactly
 *   and freed as soon as it is consumed. Owned bytes are charged to the node-wide
 *   conn_buffer_budget: while the node is over it no connection reads new input (they wait and
 *   resume when it is under again), and connections whose output has not moved for
 *   CONN_STALL_MS are closed, largest first, until it is under 7/8 of it.
 * - Back-pressure: output at tcp_buffer_max pauses reading until the peer takes its answers;
 *   output that does not move for tcp_idle_timeout_ms closes the connection.
 * - Timers: the read event's timeout is the idle timeout, or, while a partial request is
 *   buffered, what is left of tcp_frame_timeout_ms since its first byte (a peer that sends half
 *   a request and then nothing is closed on time, not on its next byte). Time the node itself
 *   does not read (back-pressure, the budget, an awaited answer) does not count: the frame
 *   timer starts again when reading resumes.
 * - Closing: when we close first while the peer may still be sending, the write side is shut
 *   and input is discarded until EOF (lingering), so a RST cannot destroy the last answers.
 * - Drain (shutdown): listeners close, idle connections close at once, the others keep being
 *   served (every request they had sent is answered) and close when they become idle.
 *
 * - TLS (tls.h): a listener is plain, TLS, or unified (the http ports with http_tls while a
 *   certificate is loaded: the first byte decides, 0x16 being a TLS handshake record; until it
 *   comes the connection is idle). Until the handshake is done the read event carries the
 *   handshake deadline (tls_handshake_timeout_ms, counted from the accept on a TLS listener,
 *   from the first byte on a unified one) instead of the frame timer; afterwards reads and
 *   writes go through the connection's SSL
 *   and everything above (limits, budget, back-pressure, timers, lingering, drain) is the same
 *   as for a plain connection. Plaintext a read did not fit into stays inside the SSL; the
 *   read event is then made active by hand (no socket event would come for it).
 *
 * \note Requests answered later (a write waiting for its commit, a list streamed as the output
 *       drains: preq.h) are linked on c->waiting and counted in n_waiting: a connection with
 *       waiting requests is not idle, is not closed after an answer nor by the idle timeout or
 *       the drain until they are answered; when it closes anyway (the peer went, an error) they
 *       are cancelled. The protocol answers them with conn_resume().
 */
#ifndef HDL_NODE_SERVER_CONN_H
#define HDL_NODE_SERVER_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

#include "node/server/admin.h"
#include "node/server/connlimit.h"
#include "proto/json_write.h"

struct worker;
struct preq;
struct event;
struct timeval;
struct ssl_st;

#define CONN_RBUF       65536u /**< per-worker read scratch; also the most one read takes */
#define CONN_STALL_MS   250u /**< output not moving this long counts as a peer that does not read */
#define CONN_PASS_MAX   (64u * 1024u) /**< answers one connection gets per turn (fairness) */
#define CONN_TICK_MS    20u   /**< budget timer while connections wait or the node is over it */
#define CONN_LINGER_MS  1000u /**< lingering close: wait this long for the peer's EOF */
#define CONN_LINGER_MAX (1u << 20) /**< lingering close: discard at most this much */
#define CONN_TRIM_MIN   (4u << 20) /**< freed connection buffers that make conn_maintain() trim */
#define CONN_FD_RESERVE 32u /**< descriptors kept out of max_connections (store, signals, logs) */

typedef struct conn conn_t;

/** What a protocol supplies. */
typedef struct conn_proto {
	const char *name; /**< "tcp", "http": log prefix */
	/**
	 * Answer the whole requests at the start of \p p, appending each answer to conn_out(c), and
	 * return the bytes consumed. Stop (leaving whole requests unconsumed) when
	 * conn_out_full(c). Set c->partial when the unconsumed rest begins a request that is not
	 * complete yet; set c->closing to read no more (the rest of the input is dropped; the
	 * connection closes once its output is written).
	 */
	size_t (*process)(conn_t *c, const uint8_t *p, size_t len);
	/** Most bytes one request may take (a partial request never grows past it). */
	size_t (*in_max)(const struct worker *w);
} conn_proto_t;

/** One connection. Protocols read and set the flags marked so. */
struct conn {
	struct worker *w;
	const conn_proto_t *proto;
	int fd;
	struct event *rev;     /**< EV_READ | EV_PERSIST; added while reading */
	struct event *wev;     /**< EV_WRITE | EV_PERSIST; added only while output is pending */
	conn_t *prev, *next;   /**< every connection of the worker */
	conn_t *lprev, *lnext; /**< the idle list or the budget wait list (see \p list) */
	uint8_t *in;           /**< owned input: leftover after processing */
	size_t in_len, in_cap;
	uint8_t *out; /**< owned output: answers the peer has not taken yet */
	size_t out_off, out_len, out_cap;
	uint64_t since_ms;  /**< idle: when it became idle; waiting: when it started waiting */
	uint64_t frame_ms;  /**< when the partial request in the input began (0 = none) */
	uint64_t stall_ms;  /**< when output last stopped moving (0 = moving or none) */
	size_t discarded;   /**< lingering: bytes thrown away */
	conn_src_t src;     /**< counted in the node's connlimit */
	uint32_t n_waiting; /**< requests answered later, outside the buffers (see \\note) */
	uint8_t list;       /**< 0 none, 1 idle, 2 waiting for the budget, 3 more (see cw) */
	bool reading;       /**< rev is added */
	bool rev_frame;     /**< rev carries the frame deadline rather than the idle timeout */
	bool writing;       /**< wev is added */
	bool linger;        /**< close by lingering: the peer may still be sending */
	bool lingering;     /**< write side shut, discarding input until EOF */
	bool drained;       /**< [proto] the last read emptied the socket */
	bool peer_eof;      /**< [proto] the peer half-closed: answer what is whole, then close */
	bool partial;       /**< [proto] the input ends in an incomplete request */
	bool closing;       /**< [proto] read no more; close once the output is written */
	bool blocked;       /**< [proto] offer no more input until an answer comes back (HTTP:
	                         answers in request order; TCP: too many requests waiting) */
	struct sockaddr_storage peer; /**< the client's address */
	socklen_t peer_len;
	conn_auth_t auth;      /**< login state and challenges of this connection (admin.h) */
	struct preq *waiting;  /**< requests answered later (preq.h); cancelled when it closes */
	struct preq *on_drain; /**< a streamed answer (list) to go on once the output drained */
	struct ssl_st *ssl;    /**< TLS (tls.h); NULL = plain */
	uint8_t tls;           /**< CONN_TLS_* */
	bool tls_rd_wants_write; /**< the handshake or a TLS read waits for the socket to drain */
	bool tls_dead;           /**< a fatal TLS error: no close_notify */
	conn_t *dnext;         /**< the worker's deferred resumes (conn_defer_begin()) */
	bool deferred;         /**< on that list */
};

/** Where a connection stands with TLS (conn_t.tls). */
enum {
	CONN_TLS_NONE = 0,  /**< plain */
	CONN_TLS_SNIFF,     /**< unified port: the first byte has not come yet (idle) */
	CONN_TLS_HANDSHAKE, /**< handshake in progress */
	CONN_TLS_UP,        /**< handshake done: application data */
};

/** Per-worker connection state (inside worker_t). */
typedef struct conn_worker {
	conn_t *all;                   /**< open connections */
	unsigned n;                    /**< how many */
	conn_t *idle_head, *idle_tail; /**< idle connections, longest idle first */
	conn_t *wait_head, *wait_tail; /**< waiting for the node to get under its buffer budget */
	conn_t *more_head, *more_tail; /**< stopped at CONN_PASS_MAX, to go on after the others */
	struct conn_listener *lis;     /**< listeners (TCP, HTTP, TLS stream): a list */
	unsigned n_lis;
	uint8_t *rbuf;                 /**< CONN_RBUF read scratch */
	hdl_buf_t obuf;                /**< answers of the connection being processed */
	const struct timeval *idle_tv; /**< common timeout: tcp_idle_timeout_ms */
	uint32_t idle_ms;
	struct event *tick_ev;   /**< budget timer, pending only while needed */
	struct event *resume_ev; /**< re-enables the listeners after EMFILE */
	struct event *more_ev;   /**< zero timer: the more list's turn after the next poll */
	size_t mem_peak;         /**< highest connlimit_mem() seen since the last trim */
	conn_t *defer_head;      /**< connections whose resume waits for conn_defer_end() */
	bool deferring;          /**< between conn_defer_begin() and conn_defer_end() */
	uint64_t n_accepted, n_refused, n_evicted, n_reclaimed, n_frame_timeouts;
	uint64_t n_tls_handshakes, n_tls_resumed, n_tls_failed, n_tls_timeouts;
} conn_worker_t;

/**
 * \brief Create the worker's listeners on its TCP (Handle), HTTP and TLS stream sockets and the
 *        scratch buffers. Runs on the worker thread.
 * \retval HDL_EOK, HDL_ENOMEM
 */
int conn_start(struct worker *w);
/** What a listening socket serves (conn_listener_add()). */
typedef enum conn_lis_kind {
	CONN_LIS_HANDLE = 0, /**< Handle TCP (listen) */
	CONN_LIS_HTTP,       /**< HTTP, HTTPS too with http_tls (http) */
	CONN_LIS_TLS,        /**< the TLS stream (tls_listen) */
} conn_lis_kind_t;

/**
 * \brief Accept connections on listening socket \p fd from now on (worker thread; a reload's
 *        new address). Takes \p fd: it is closed on failure.
 * \retval HDL_EOK, HDL_ENOMEM
 */
int conn_listener_add(struct worker *w, int fd, conn_lis_kind_t kind);
/**
 * \brief Close the worker's \p kind listener(s) bound to \p addr (worker thread; a reload
 *        removed the address). Connections accepted from them are not touched: they are served
 *        and closed by the usual rules (idle timeout, close after answer, the peer).
 * \return listeners closed
 */
unsigned conn_listener_close(struct worker *w, conn_lis_kind_t kind,
                             const struct sockaddr_storage *addr);

/**
 * \brief Shutdown: close the listeners; idle connections close now, the others once every
 *        request they sent is answered and written (the caller bounds this with a deadline).
 */
void conn_drain(struct worker *w);
/** \brief Close every connection and free the listeners and buffers (logs the counters). */
void conn_free_all(struct worker *w);
/**
 * \brief Once a second: when the node's connection buffers shrank by CONN_TRIM_MIN since their
 *        peak, hand the freed memory back to the system (malloc_trim).
 */
void conn_maintain(struct worker *w);
/** \brief Apply reloaded limits (the idle timeout of new events). */
void conn_apply_limits(struct worker *w);
/** \brief Open connections of the worker. */
unsigned conn_count(const struct worker *w);

/**
 * \brief [proto] A request of \p c that waited is answered (worker thread, outside any
 *        processing pass): the caller appended its answer to conn_out(c) and updated
 *        c->n_waiting and c->blocked; this writes it and goes on where the connection stopped
 *        (reading, answering requests that queued up behind, closing). \p c may be freed.
 */
void conn_resume(conn_t *c);

/** \brief True when \p c is TLS (HTTPS, the TLS stream). */
bool conn_is_tls(const conn_t *c);
/**
 * \brief From now until conn_defer_end(), conn_resume() keeps each answer with its connection
 *        instead of writing it: the answers of many waiting requests that finish together (a
 *        group commit) go out in one write per connection.
 */
void conn_defer_begin(struct worker *w);
/** \brief Resume (write, go on) every connection conn_resume() deferred, once each. */
void conn_defer_end(struct worker *w);

/** \brief [proto] The buffer answers are appended to (one processing pass). */
hdl_buf_t *conn_out(conn_t *c);
/**
 * \brief [proto] True when answering must stop for now: the connection's pending output is at
 *        tcp_buffer_max, or the node is over its buffer budget.
 */
bool conn_out_full(const conn_t *c);

#endif /* HDL_NODE_SERVER_CONN_H */
