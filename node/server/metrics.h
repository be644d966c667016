/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Prometheus metrics: the text exposition format (version 0.0.4) written on demand from
 *        the workers' counters and the node's modules, served by a small HTTP listener of its
 *        own (metrics_listen; off by default, loopback only unless metrics_allow_remote) on a
 *        thread of its own, so a scrape never waits behind requests and never slows them.
 *
 * Modules that keep figures of their own (the resolver's cache, the upstream pools, ...)
 * register a collector with metrics_register(): it is called on the scraping thread, under the
 * registry's lock, and writes its families with mx_family() / mx_sample(); a status callback may
 * add an object of the module's state to /status.json (web.h). A collector reads only what is
 * safe from another thread (atomics, snapshots its module publishes, locked state) and must be
 * unregistered before what it reads is freed. Names follow the Prometheus conventions: snake
 * case, an idnode_ prefix, base units (_seconds, _bytes), counters ending in _total.
 */
#ifndef HDL_NODE_SERVER_METRICS_H
#define HDL_NODE_SERVER_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/json_write.h"

struct json_t;
struct node_obs;
struct conf;

/** An exposition being written. */
typedef struct mx {
	hdl_buf_t *b;
} mx_t;

/** \brief Start a family: its HELP (escaped here) and TYPE ("counter", "gauge", "histogram"). */
void mx_family(mx_t *m, const char *name, const char *type, const char *help);
/**
 * \brief One sample of the current family: \p name (the family's, or for histograms with the
 *        _bucket / _sum / _count suffix), \p labels as written by mx_labels() (NULL or "" for
 *        none) and the value.
 */
void mx_sample(mx_t *m, const char *name, const char *labels, double v);
/** \brief mx_sample() for an integer value (exact up to 2^64 - 1). */
void mx_sample_u64(mx_t *m, const char *name, const char *labels, uint64_t v);
/**
 * \brief Format \p n label pairs (names[i] = values[i], values escaped) into \p out as
 *        `a="x",b="y"`.
 * \return \p out (truncated labels are cut at a pair boundary)
 */
const char *mx_labels(char *out, size_t cap, unsigned n, const char *const *names,
                      const char *const *values);

/** Writes a module's families (scraping thread, registry lock held). */
typedef void (*metrics_collect_fn)(mx_t *m, void *arg);
/** Adds a module's state to /status.json (any worker thread, registry lock held). */
typedef void (*metrics_status_fn)(struct json_t *obj, void *arg);

#define METRICS_MAX_SOURCES 64u /**< registered modules at most */

/**
 * \brief Register a module under \p name (letters, digits, '_'; also its key in /status.json).
 *        Either callback may be NULL.
 * \retval HDL_EOK, HDL_EEXIST (\p name and \p arg registered already), HDL_ELIMIT (full),
 *         HDL_EINVAL
 */
int metrics_register(const char *name, metrics_collect_fn collect, metrics_status_fn status,
                     void *arg);
/** \brief Remove the registration of \p name with \p arg; after it returns no callback runs. */
void metrics_unregister(const char *name, void *arg);

/**
 * \brief Write the whole exposition: the node's families (\p o may be NULL: process and
 *        registered ones only), then every registered module's.
 * \retval HDL_EOK, HDL_ENOMEM
 */
int metrics_collect(const struct node_obs *o, hdl_buf_t *out);

/** \brief Add every registered module's status object to \p obj under its name. */
void metrics_status(struct json_t *obj);

typedef struct metrics_srv metrics_srv_t;

/**
 * \brief Bind metrics_listen of \p c (nothing when it is empty: *out stays NULL).
 * \retval HDL_EOK, HDL_EIO (bind; \p err says why), HDL_ENOMEM
 */
int metrics_open(const struct conf *c, metrics_srv_t **out, char *err, size_t errlen);
/** \brief Serve GET /metrics from \p o on a thread of its own. \retval HDL_EOK, HDL_ENOMEM */
int metrics_start(metrics_srv_t *s, const struct node_obs *o);
/** \brief Stop the thread (if started), close the listener, free. NULL is ignored. */
void metrics_close(metrics_srv_t *s);

/** Counters of the listener. */
typedef struct metrics_srv_stats {
	uint64_t scrapes; /**< expositions served */
	uint64_t refused; /**< connections closed at once: metrics_max_connections open */
	uint64_t errors;  /**< requests answered 400/404/405/413 or timed out */
} metrics_srv_stats_t;

/** \brief The listener's counters (any thread; zeros for NULL). */
void metrics_srv_get_stats(const metrics_srv_t *s, metrics_srv_stats_t *out);

#endif /* HDL_NODE_SERVER_METRICS_H */
