/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Requests that wait (internal to node/server): a request that cannot be answered at once
 *        (a write waiting for its group commit, a list of handles streamed as the connection
 *        drains, later an upstream answer) is suspended in a preq_t and resumed on its worker.
 *
 * Only a suspended request pays for this: the fast path answers from the worker's buffers and
 * never allocates one. A preq_t owns a copy of everything its answer needs (its own scratch
 * arena, the reply fields, the job) and a reply handle that the transport fills in when it
 * attaches the request (preq_t.complete, .conn, the UDP return path in .tpriv).
 *
 * Threads: a preq_t belongs to the worker that created it. Whatever it waits for may finish on
 * another thread (the writer) and calls preq_post(), which queues it on its worker and wakes the
 * worker's loop; the worker then calls its complete() callback. Nothing but preq_post() may be
 * called off the worker thread.
 *
 * Cancellation: a connection that closes while requests wait calls preq_cancel() for each; the
 * request is detached (its answer will be dropped) and freed when its wait ends, since the other
 * side (the writer) may still hold it. A wait in flight is never freed under its waiter.
 */
#ifndef HDL_NODE_SERVER_PREQ_H
#define HDL_NODE_SERVER_PREQ_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "hdl/msg.h"
#include "node/server/reply.h"
#include "node/server/writer.h"

struct worker;
struct event;

typedef struct preq preq_t;

/** What a suspended request waits for. */
typedef enum preq_kind {
	PREQ_WRITE = 1, /**< a writer job (create/delete/add/remove/modify/home/unhome) */
	PREQ_LIST,      /**< handles under a prefix, streamed a chunk at a time */
	PREQ_RESOLVE,   /**< a resolution delegated upstream (node/server/delegate.h) */
} preq_kind_t;

struct preq {
	struct worker *w;  /**< owning worker */
	preq_kind_t kind;
	/**
	 * Set by the transport when it attaches the request: called on the worker when the wait
	 * ends (not for cancelled requests). It builds the answer (dispatch_preq_reply() for Handle
	 * messages) and sends it, then calls preq_done() (or, for a PREQ_LIST with more to send,
	 * re-posts it when the connection has room).
	 */
	void (*complete)(preq_t *p);
	void *conn;              /**< the transport's connection; NULL for UDP and once cancelled */
	preq_t *cnext, *cprev;   /**< the connection's waiting requests */
	bool cancelled;          /**< detached: free when the wait ends, answer nothing */
	bool inflight;           /**< held by the writer or the completion queue (worker sets it
	                              before submitting or posting; cleared when dequeued) */
	bool more;               /**< PREQ_LIST: more messages to send after this chunk */
	uint64_t started_ms;     /**< worker_now_ms() at suspension */
	uint32_t source_slot;    /**< per-source pending counter this request holds (admin.c) */

	reply_t reply;           /**< the Handle reply's fields (ids, version, opcode, RD) */
	wr_job_t job;            /**< PREQ_WRITE */

	/* PREQ_LIST */
	uint8_t *list_prefix;    /**< naming authority ("88.100.1") */
	uint32_t list_prefix_len;
	uint8_t *list_after;     /**< last handle sent (the cursor; NULL before the first chunk) */
	uint32_t list_after_len;
	uint32_t list_sent;      /**< handles sent so far */

	/* the UDP return path (udp.c): fd, peer, reply source address */
	int udp_fd;
	struct sockaddr_storage peer;
	socklen_t peer_len;
	uint8_t tpriv[48];       /**< transport-private bytes (udp.c keeps the pktinfo here) */

	/* PREQ_RESOLVE (delegate.c) */
	void *ext;               /**< the waiting resolution's state, in the arena */
	/** Called by preq_free(): detach from what it waits for (same thread; may be NULL). */
	void (*release)(preq_t *p);
	const uint8_t *req;      /**< the request's copy (UDP answer caps), or NULL */
	uint32_t req_len;

	hdl_arena_t arena;       /**< the request's own scratch (copied request, decoded values) */
	preq_t *qnext;           /**< completion queue link */
};

#define PREQ_SRC_SLOTS 1024u /**< per-source counters of a worker (hashed; collisions share) */

/** A worker's completion queue: other threads post finished requests, the worker runs them. */
typedef struct preq_queue {
	pthread_mutex_t mu;
	preq_t *head, *tail;
	int efd;              /**< eventfd the posters write to */
	struct event *ev;
	unsigned n_live;      /**< requests of this worker not yet freed */
	unsigned n_cancelled; /**< of which cancelled, waiting for their wait to end */
	uint16_t src_count[PREQ_SRC_SLOTS]; /**< live requests per source hash slot */
} preq_queue_t;

/**
 * \brief New request on worker \p w (worker thread), with an arena whose first block is
 *        \p arena_first bytes (grows up to \p arena_limit).
 * \return the request, NULL when out of memory
 */
preq_t *preq_new(struct worker *w, preq_kind_t kind, size_t arena_first, size_t arena_limit);

/** \brief Free \p p (worker thread; its wait must be over). */
void preq_free(preq_t *p);

/** \brief The wait of \p p is over: queue it on its worker and wake the worker (any thread). */
void preq_post(preq_t *p);

/**
 * \brief Detach \p p from its connection (worker thread): its answer will be dropped; it is
 *        freed when its wait ends (at once when it is only queued or waits for nothing).
 */
void preq_cancel(preq_t *p);

/** \brief The answer is sent: unlink from the connection and free (worker thread). */
void preq_done(preq_t *p);

/** \brief Hash of a peer's address (IPv4 /32, IPv6 /64) for per-source counters; 0 = none. */
uint32_t preq_source_hash(const struct sockaddr_storage *ss);

/**
 * \brief Count \p p against the worker's pending_max and its source's pending_per_source.
 * \retval true counted (released by preq_free()), false over a limit (nothing counted)
 */
bool preq_source_take(struct worker *w, preq_t *p, uint32_t src);

/** \brief Link \p p to a connection's list \p head and set p->conn. */
void preq_link(preq_t **head, preq_t *p, void *conn);
/** \brief Unlink \p p from the connection's list \p head. */
void preq_unlink(preq_t **head, preq_t *p);

/**
 * \brief Set up \p q on the worker's event base (worker thread at start).
 * \retval HDL_EOK, HDL_ENOMEM, HDL_EIO
 */
int preq_queue_init(struct worker *w, preq_queue_t *q);
/** \brief Run what is queued now (the event callback; tests call it directly). */
void preq_queue_run(struct worker *w);
/**
 * \brief Free what is left (after the worker stopped and the writer finished every job):
 *        queued requests are freed without an answer.
 */
void preq_queue_free(preq_queue_t *q);

#endif /* HDL_NODE_SERVER_PREQ_H */
