/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief The resolution path in idnoded (internal to node/server): requests for handles whose
 *        prefix is not homed here go to the worker's resolution engine (node/resolver/resolve.h),
 *        which answers from the shared cache at once or suspends the request in a preq_t
 *        (PREQ_RESOLVE) until upstream answers. This file plugs the engine into the worker: its
 *        event base (one timer, an eventfd for what other workers post), its upstream pool
 *        (node/resolver/upstream.h) and c-ares channel, and the transports' reply handles.
 *        docs/delegation.md "Resolution" describes the whole path.
 */
#ifndef HDL_NODE_SERVER_DELEGATE_H
#define HDL_NODE_SERVER_DELEGATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hdl/msg.h"
#include "node/server/dispatch.h"
#include "node/server/reply.h"

struct conf;
struct worker;
struct preq;
struct conn;

/**
 * \brief Build the node-wide part from the configuration (main thread, at start): the upstream
 *        set (`upstream` / `forward` lines, TLS contexts) and the stale-refresh holds. Without
 *        `upstream` or `forward` lines no upstream configuration is built (a reload may add
 *        one) and every handle not homed here is answered RC 301 as before; n->deleg stays
 *        NULL only without a resolver cache.
 * \param err reason on failure
 * \retval HDL_EOK, HDL_ECONF, HDL_ETLS, HDL_ENOMEM
 */
int delegate_node_setup(node_shared_t *n, const struct conf *c, char *err, size_t errlen);
/** \brief Free what delegate_node_setup() built (after the workers stopped). */
void delegate_node_free(node_shared_t *n);

/**
 * \brief Reload, prepare (main thread): build the upstream configuration of \p nc (every
 *        `upstream` and `forward` line parsed, each TLS context made from its CA, certificate
 *        and key files, the pool, engine and host-name settings; nothing is resolved) without
 *        changing what the workers run with.
 * \param[out] staged for delegate_commit() or delegate_staged_free() (NULL: the node has no
 *        resolution path at all, nothing to do)
 * \retval HDL_EOK, HDL_ECONF, HDL_ETLS (a file that does not load: \p err says which),
 *         HDL_ENOMEM
 */
int delegate_stage(node_shared_t *n, const struct conf *nc, void **staged, char *err,
                   size_t errlen);
/**
 * \brief Reload, commit (main thread): make \p staged the node's upstream configuration (the
 *        previous one is retired through reload_retire()). The workers move to it when told
 *        (delegate_worker_update()): new requests use the new upstreams, requests already
 *        waiting finish on the old ones. The resolver cache stays.
 * \return true when the workers must be told (the configuration changed from or to one)
 */
bool delegate_commit(node_shared_t *n, void *staged);
/** \brief Reload, discard: free what delegate_stage() built (NULL is fine). */
void delegate_staged_free(void *staged);

/**
 * \brief Per-worker part (worker thread, at start): c-ares channel, upstream pool, engine.
 * \retval HDL_EOK (also when the node has no resolution path), HDL_ENOMEM, HDL_EIO
 */
int delegate_worker_start(struct worker *w);
/**
 * \brief Worker thread (the notify pipe's 'u', the 1 s tick, and before a request for a handle
 *        not homed here): when a reload committed a new upstream configuration since the
 *        worker last looked, make a new engine and pool for it; the old ones drain (their
 *        waiting requests are answered there) and are freed by delegate_worker_tick() once
 *        nothing waits on them, or after their resolution timeout.
 * \note Out of memory: the worker stays on the old configuration and tries again at its tick.
 */
void delegate_worker_update(struct worker *w);
/**
 * \brief Worker thread, 1 s tick: free the draining engines nothing waits on any more (or
 *        whose timeout passed: what still waits is answered RC 3).
 * \return engines still draining
 */
unsigned delegate_worker_tick(struct worker *w);
/**
 * \brief Stop the worker's engine (worker thread, after its connections were closed): waiting
 *        UDP requests are answered RC 3 (not sent while stopping), flights handed on.
 */
void delegate_worker_stop(struct worker *w);

/**
 * \brief Resolve a decoded request \p m (bytes \p req, \p len) for a handle not homed here.
 * \param r the reply's fields
 * \param[out] wait set when the request was suspended (o->attach was called; no reply now)
 * \return reply length in \p out (0 with *wait set)
 */
size_t delegate_resolution(dispatch_ctx_t *ctx, const dispatch_origin_t *o, const hdl_msg_t *m,
                           const uint8_t *req, size_t len, const reply_t *r, uint8_t *out,
                           size_t cap, bool *wait);

/** \brief The Handle reply of a suspended resolution (transport complete()). \return length */
size_t delegate_preq_reply(dispatch_ctx_t *ctx, struct preq *p, uint8_t *out, size_t cap);

/** How an HTTP request waits for a delegated resolution (http.c fills it in). */
typedef struct delegate_http {
	struct conn *c; /**< the HTTP connection (its peer is the request's source) */
	/** Suspend the request in \p p: link it to the connection, set its complete(), block. */
	void (*wait)(void *ctx, struct preq *p);
	void *ctx;
} delegate_http_t;

/**
 * \brief REST / proxy resolution of \p handle (not homed here) with filters: the decoded values
 *        in the worker arena at once (DONE), or the request waits (DISPATCH_WAIT: h->wait() was
 *        called; the answer comes through the complete() it set).
 * \retval HDL_EOK *rcode, *msg, *vals, *n set; DISPATCH_WAIT
 */
int delegate_http_resolve(struct worker *w, const delegate_http_t *h, const char *handle,
                          const uint32_t *idx, uint32_t n_idx, const hdl_slice_t *types,
                          uint32_t n_types, uint32_t *rcode, const char **msg, hdl_value_t **vals,
                          uint32_t *n);

/**
 * \brief The result of a waiting REST / proxy request (in its complete()): decoded into the
 *        worker arena; the handle as asked in \p handle.
 * \retval HDL_EOK, HDL_ENOMEM
 */
int delegate_http_result(struct worker *w, struct preq *p, const char **handle, uint32_t *rcode,
                         const char **msg, hdl_value_t **vals, uint32_t *n);

#endif /* HDL_NODE_SERVER_DELEGATE_H */
