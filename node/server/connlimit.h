/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Node-wide accounting of stream connections, shared by every worker thread: the open
 *        TCP and HTTP connections in total and per source (an IPv4 address or IPv6 prefix, the
 *        prefix lengths configurable), and the bytes held in connection buffers. The workers
 *        share the listening ports through SO_REUSEPORT, so one source's connections land on
 *        several workers; the counts here are what max_connections,
 *        max_connections_per_source and conn_buffer_budget are checked against.
 *
 * The per-source table is a chained hash keyed with SipHash-2-4 under a random per-process key
 * (sources are chosen by peers), locked in stripes; an entry exists only while its source has a
 * connection open, so the table never holds more entries than there are open connections.
 *
 * \note All functions are thread-safe.
 */
#ifndef HDL_NODE_SERVER_CONNLIMIT_H
#define HDL_NODE_SERVER_CONNLIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/** A connection's source: an IPv6 address (IPv4 as ::ffff:a.b.c.d) masked to its prefix. */
typedef struct conn_src {
	uint8_t b[16];
	uint8_t bits; /**< prefix length applied, counted over the 128-bit form */
} conn_src_t;

/**
 * \brief The source of a peer address: IPv4 masked to \p v4_bits (1..32), IPv6 (and an
 *        IPv4-mapped IPv6 address, as IPv4) masked to \p v6_bits (1..128). Other families map
 *        to one shared source.
 */
void conn_src_make(const struct sockaddr *sa, unsigned v4_bits, unsigned v6_bits, conn_src_t *out);

/** \brief Print \p s for logs: "192.0.2.7", "192.0.2.0/24", "2001:db8:1:2::/64". */
void conn_src_format(const conn_src_t *s, char *buf, size_t cap);

/** \brief True when \p a and \p b are the same source. */
bool conn_src_eq(const conn_src_t *a, const conn_src_t *b);

/** \brief SipHash-2-4 of \p len bytes under the key (k0, k1) (exposed for the unit test). */
uint64_t conn_siphash24(uint64_t k0, uint64_t k1, const void *p, size_t len);

typedef struct connlimit connlimit_t;

/** Outcome of connlimit_take(). */
typedef enum cl_verdict {
	CL_OK = 0,      /**< counted: release with connlimit_put() */
	CL_NODE_FULL,   /**< the node has \p max_total connections open */
	CL_SOURCE_FULL, /**< the source has \p max_per_source connections open */
	CL_NOMEM,       /**< no memory for a new source entry */
} cl_verdict_t;

/**
 * \brief A new table with a random hash key.
 * \retval HDL_EOK, HDL_ENOMEM
 */
int connlimit_new(connlimit_t **out);
/** \brief Free the table (every connection must have been put back). */
void connlimit_free(connlimit_t *cl);

/**
 * \brief Count one more connection from \p src, unless the node has \p max_total open or the
 *        source has \p max_per_source open.
 * \return a cl_verdict_t; only CL_OK counts the connection
 */
cl_verdict_t connlimit_take(connlimit_t *cl, const conn_src_t *src, uint32_t max_total,
                            uint32_t max_per_source);
/** \brief Release a connection counted by connlimit_take(). */
void connlimit_put(connlimit_t *cl, const conn_src_t *src);

/** \brief Connections open on the node. */
uint32_t connlimit_open(const connlimit_t *cl);
/** \brief Connections open from \p src. */
uint32_t connlimit_source(connlimit_t *cl, const conn_src_t *src);
/** \brief Sources with at least one connection open. */
uint32_t connlimit_sources(const connlimit_t *cl);

/** \brief Charge \p n bytes of connection buffers to the node. */
void connlimit_mem_add(connlimit_t *cl, size_t n);
/** \brief Return \p n bytes charged with connlimit_mem_add(). */
void connlimit_mem_sub(connlimit_t *cl, size_t n);
/** \brief Bytes of connection buffers held on the node now. */
size_t connlimit_mem(const connlimit_t *cl);

#endif /* HDL_NODE_SERVER_CONNLIMIT_H */
