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
struct store;
struct conf;

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
	_Atomic uint32_t gen; /**< bumped after each reload */
} node_limits_t;

#define NODE_LIMIT(l, f) atomic_load_explicit(&(l)->f, memory_order_relaxed)

/** \brief Copy the reloadable limits of \p c into \p l and bump the generation. */
void node_limits_apply(node_limits_t *l, const struct conf *c);

/** Immutable after start, except the atomics in limits. */
typedef struct node_shared {
	struct store *store;
	struct dcache *dcache;   /**< upstream answers, all workers (resolver/rnode.h) */
	struct dflight *dflight; /**< upstream queries in flight (resolver/rnode.h) */
	node_limits_t limits;
	uint16_t site_serial;
	uint8_t *site;           /**< this node's HS_SITE record (hdl_site_encode) */
	size_t site_len;
	hdl_site_t site_info;    /**< the same, as a struct (REST /api/site); arrays owned here */
	uint8_t *prefix_vals;    /**< U32 1 + one HS_SITE value: answer for 0.NA/<homed prefix> */
	size_t prefix_vals_len;  /**<   when the store holds no record of its own */
} node_shared_t;

/**
 * \brief Build this node's HS_SITE from the configuration: one server (id 1) at the first IPv4
 *        listen address (else the first), interfaces TCP (query+admin) and UDP (query) on its port, HTTP (query+admin)
 *        on the first http port; primary; serial from site_serial; protocol 2.10.
 * \retval HDL_EOK, HDL_ENOMEM, HDL_ECONF (unusable address)
 */
int node_site_build(node_shared_t *n, const struct conf *c, uint32_t now);
/** \brief Free what node_site_build() allocated. */
void node_site_free(node_shared_t *n);

#endif /* HDL_NODE_SERVER_NODE_H */
