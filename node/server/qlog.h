/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief The query log, for troubleshooting: one line per Handle-protocol request (UDP, TCP,
 *        the HTTP native tunnel) with the transport, the client's address, the opcode, the
 *        response code, the handle and the sizes, and one per REST, proxy or status-page request
 *        over HTTP(S); off by default.
 *
 * Configuration (deploy/idnode.conf.sample; every key applies on reload):
 *  - `query_log = off | log | /ABSOLUTE/FILE`: `log` writes through the node log (a journal
 *    record with IDNODE_QUERY_* fields under systemd, info level: nothing when log_level is
 *    below info), a path appends lines to
 *    that file, which is re-opened on every reload (log rotation by rename + reload works).
 *  - `query_log_sample = N`: one request in N is logged (counted per worker).
 *  - `query_log_rate = N`: lines per second per worker at most; the rest are counted and the
 *    count is logged once a second while it grows (a flood cannot turn into a log flood).
 *  - `query_log_max_size = SIZE`: at this size FILE is renamed FILE.1 (one old file kept) and a
 *    new FILE started: the disk the query log takes is bounded by twice this size.
 *
 * File line format (one line, fields separated by single spaces; the handle quoted with `"`,
 * `\` and bytes outside printable ASCII escaped as \xHH):
 *
 *     2025-05-20T10:00:00.123Z udp 127.0.0.1:53211 op=1 rc=1 "88.100.1/X" in=60 out=214
 *
 * rc is the answer's response code, `drop` when no answer was formed, `wait` when the request
 * was suspended (a write waiting for its commit, a request waiting upstream). HTTP requests
 * other than native-tunnel messages (REST, the proxy, the status page; qlog_http()) are logged
 * with the method as op, the HTTP status as rc and the request target quoted:
 *     2025-05-20T10:00:00.123Z https 127.0.0.1:53212 op=GET rc=200 "/api/handles/88.100.1/X" in=0 out=912
 *
 * \note The request path pays one relaxed atomic load when the query log is off (qlog_on()).
 */
#ifndef HDL_NODE_SERVER_QLOG_H
#define HDL_NODE_SERVER_QLOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conf;
struct sockaddr_storage;
struct dispatch_origin;
struct reload;

#define QLOG_OFF  0
#define QLOG_LOG  1 /**< through log_fields() */
#define QLOG_FILE 2 /**< lines appended to a file */

/** The mode now (QLOG_*); read by qlog_on(). */
extern _Atomic int qlog_mode_;

/** \brief True when requests are logged (one relaxed load). */
static inline bool qlog_on(void)
{
	return atomic_load_explicit(&qlog_mode_, memory_order_relaxed) != QLOG_OFF;
}

/**
 * \brief Check a `query_log` value (conf_key_t check): off, log, or an absolute path.
 * \retval HDL_EOK, HDL_ECONF
 */
int qlog_check(const char *value, char *err, size_t errlen);

/**
 * \brief Start with the settings of \p c (opens the file of `query_log = FILE`).
 * \param err why the file cannot be opened
 * \retval HDL_EOK, HDL_EIO
 */
int qlog_start(const struct conf *c, char *err, size_t errlen);

/**
 * \brief Register the reload hook (re-opens the file, swaps the settings; an unwritable file
 *        refuses the reload with the reason). \retval HDL_EOK, reload_register()'s errors
 */
int qlog_register_reload(struct reload *r);

/** \brief Close the file (after the workers stopped). */
void qlog_stop(void);

/**
 * \brief Log one request if the sampling and the rate allow it. \p req / \p reqlen: the request
 *        as received (envelope first), \p out / \p outlen its answer (0: none), \p waiting: the
 *        request was suspended. \p o: where it came from (NULL: unknown).
 */
void qlog_message(const struct dispatch_origin *o, const uint8_t *req, size_t reqlen,
                  const uint8_t *out, size_t outlen, bool waiting);

/**
 * \brief Log one HTTP request that is not a native-tunnel message (REST, the proxy, the status
 *        page): op is the method (\p mlen bytes of \p method), rc the HTTP status sent (\p status; 0: the
 *        request waits, logged as `wait`), the quoted field the request target (path and query,
 *        \p tlen bytes), in / out the request body and the answer's bytes. \p tls: https.
 */
void qlog_http(const struct sockaddr_storage *peer, bool tls, const char *method, size_t mlen,
               const char *target, size_t tlen, int status, size_t in, size_t out);

/** Counters (all threads together). */
typedef struct qlog_stats {
	uint64_t lines;     /**< lines written */
	uint64_t dropped;   /**< lines over query_log_rate */
	uint64_t rotations; /**< FILE -> FILE.1 renames */
	uint64_t errors;    /**< lines the file did not take (disk full, ...) */
} qlog_stats_t;

/** \brief A snapshot of the counters. */
void qlog_get_stats(qlog_stats_t *st);

#endif /* HDL_NODE_SERVER_QLOG_H */
