/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief The write path: one writer thread owns the LMDB write transaction and applies
 *        administrative changes (create/delete handle, add/remove/modify values, home/unhome a
 *        prefix) in group commits. Workers never block on it: they submit a job and go on
 *        answering; the job's done() callback fires on the writer thread once the batch holding
 *        the job is durable (or the job was refused), and hands the job back to its owner.
 *
 * Each job runs in its own nested transaction inside the batch, so a refused job (handle exists,
 * not authorized, ...) leaves no trace while the others of the batch commit. Read-modify-write
 * operations and the authorization check read inside the write transaction. Every applied or
 * refused change writes an audit entry in the same transaction (node/store/audit).
 *
 * A batch closes after writer_opts_t.batch_max jobs or batch_wait_us microseconds after its first
 * job, whichever comes first; it is then committed and (sync = full) fsync'ed before any done()
 * of the batch is called. Jobs that arrive while a batch commits form the next one, so under load
 * batches grow by themselves even with batch_wait_us = 0.
 *
 * What each operation checks, in which order, and the response code of each refusal follow
 * Handle.Net 9's HandleServer: docs/registration.md, "Semantics". Between batches the writer
 * removes audit entries older than the retention time in small bounded steps.
 */
#ifndef HDL_NODE_SERVER_WRITER_H
#define HDL_NODE_SERVER_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "hdl/msg.h"

struct store;
struct conf;

typedef struct writer writer_t;

/** Operations. */
typedef enum wr_op {
	WR_CREATE = 1,    /**< create a handle with values (WR_F_OVERWRITE, WR_F_MINT) */
	WR_DELETE,        /**< delete a handle */
	WR_ADD_VALUES,    /**< add values (WR_F_OVERWRITE: replace values at the same index) */
	WR_REMOVE_VALUES, /**< remove values by index */
	WR_MODIFY_VALUES, /**< replace values by index (each index must exist) */
	WR_HOME,          /**< home a prefix (handle = "0.NA/<prefix>") */
	WR_UNHOME,        /**< unhome a prefix (handle = "0.NA/<prefix>") */
	WR_TEMPLATE_PUT,  /**< store a metadata template (handle = "0.NA/<prefix>", data = its
	                       JSON; WR_F_OVERWRITE: update (merge) an existing one, else create) */
	WR_TEMPLATE_DEL,  /**< delete a template (handle = "0.NA/<prefix>", data = the version) */
} wr_op_t;

#define WR_F_OVERWRITE 0x1u /**< OpFlag OVRW: create may replace, add may replace by index */
#define WR_F_MINT 0x2u      /**< OpFlag MINT: create appends a fresh unique suffix */
/**
 * Create: when the handle exists with the same values (timestamps aside), answer success and
 * write nothing, not even an audit entry (a retried SNMS create). The identity still needs the
 * permission a create needs.
 */
#define WR_F_IDEMPOTENT 0x4u

/** Transports, as audit records name them. */
typedef enum wr_transport {
	WR_T_UDP = 1,
	WR_T_TCP,
	WR_T_HTTP,
	WR_T_HTTPS,
	WR_T_TLS, /**< Handle TCP framing over TLS (node-to-node) */
	WR_T_LOCAL, /**< a local tool (idnode import, idnode home --db) */
} wr_transport_t;

/**
 * One change request. The submitter owns every byte the job points to until done() has been
 * called; the writer reads the request fields and writes only the result fields and \p arena.
 */
typedef struct wr_job {
	/* ---- request ---- */
	wr_op_t op;
	uint32_t flags;        /**< WR_F_* */
	hdl_slice_t handle;    /**< target handle as the client sent it */
	hdl_value_t *values;   /**< CREATE / ADD / MODIFY */
	uint32_t n_values;
	uint32_t *indexes;     /**< REMOVE */
	uint32_t n_indexes;
	hdl_slice_t data;      /**< WR_TEMPLATE_PUT: the template's JSON; WR_TEMPLATE_DEL: version */
	hdl_slice_t id_handle; /**< authenticated identity (empty = none: refused with RC 400) */
	uint32_t id_index;
	bool server_admin;     /**< identity is a configured server admin (full access) */
	wr_transport_t transport;
	struct sockaddr_storage peer; /**< for the audit trail (ss_family 0 = none) */
	socklen_t peer_len;
	uint32_t now;          /**< Unix time for value timestamps and the audit entry (0 = time()) */

	/* ---- result (set by the writer before done()) ---- */
	uint32_t rcode;        /**< HDL_RC_SUCCESS or the failure code to answer */
	char message[160];     /**< text for a failure (empty on success) */
	hdl_slice_t result_handle; /**< CREATE: the handle created (minted name with WR_F_MINT);
	                                allocated from \p arena */
	hdl_arena_t *arena;    /**< owner's scratch the writer may allocate results from */

	/* ---- completion ---- */
	/**
	 * Called on the writer thread, once per job, after the batch holding it is durable or the
	 * job was refused. It must be short and thread-safe: hand the job back to its owner (post
	 * it to a worker's queue) and return. The writer does not touch the job afterwards.
	 */
	void (*done)(struct wr_job *j);
	void *owner;           /**< for done() */
	struct wr_job *next_;  /**< writer-private queue link */
} wr_job_t;

/** Durability of an acknowledged change. */
typedef enum wr_sync {
	WR_SYNC_FULL = 0, /**< fsync before done(): an acknowledged change survives a crash */
	WR_SYNC_PERIODIC, /**< commit without fsync; fsync every sync_interval_ms (bounded loss) */
} wr_sync_t;

typedef struct writer_opts {
	unsigned queue_max;      /**< jobs waiting at most; beyond it writer_submit() refuses */
	unsigned batch_max;      /**< jobs per group commit at most */
	unsigned batch_wait_us;  /**< wait this long after a batch's first job for more */
	wr_sync_t sync;
	unsigned sync_interval_ms; /**< WR_SYNC_PERIODIC */
	const char *const *server_admins; /**< "INDEX:HANDLE" identities with full access */
	unsigned n_server_admins;
	uint32_t max_record_len;   /**< encoded values of one handle at most (0 = 258048) */
	uint32_t audit_retention_s; /**< prune audit entries older than this (0 = keep forever) */
	unsigned audit_prune_step; /**< audit entries removed per step at most (0 = 1000) */
	unsigned audit_prune_interval_ms; /**< between two steps (0 = 1000; a full step: at once) */
	unsigned authz_max_depth;  /**< HS_VLIST nesting followed (0 = AUTHZ_DEFAULT_DEPTH) */
	unsigned authz_max_groups; /**< group values looked up per check (0 = AUTHZ_DEFAULT_GROUPS) */
	/* metadata templates (node/store/template.h; 0 = its defaults) */
	uint32_t tpl_max_items;      /**< items of one template */
	uint32_t tpl_max_pattern;    /**< bytes of one pattern */
	uint32_t tpl_max_value;      /**< bytes of a value checked against an item */
	uint32_t tpl_max_per_prefix; /**< templates of one prefix */
	unsigned tpl_cache_max;      /**< compiled templates the writer keeps (0 = 64) */
} writer_opts_t;

/** Counters since writer_start() (writer_stats()). */
typedef struct writer_stats {
	uint64_t batches;      /**< transactions committed or failed */
	uint64_t jobs;         /**< jobs finished (done() called) */
	uint64_t applied;      /**< jobs answered RC_SUCCESS */
	uint64_t refused;      /**< jobs answered with a refusal code (nothing written) */
	uint64_t failed;       /**< jobs answered RC_ERROR because their batch failed */
	uint64_t rejected;     /**< writer_submit() answers HDL_EAGAIN (queue full) */
	unsigned max_batch;    /**< most jobs in one batch */
	uint64_t batch_hist[8]; /**< batches of 1, 2-3, 4-7, ..., 64-127, >= 128 jobs */
	uint64_t pruned;       /**< audit entries removed by retention */
	uint64_t syncs;        /**< fsyncs of sync = periodic */
} writer_stats_t;

/**
 * \brief Start the writer thread on \p s. The options are copied.
 * \retval HDL_EOK, HDL_ENOMEM, HDL_ESTORE, HDL_EINVAL (a bad server admin, queue_max or
 *         batch_max 0)
 */
int writer_start(struct store *s, const writer_opts_t *o, writer_t **out);

/**
 * \brief Queue a job (any thread). Never blocks.
 * \retval HDL_EOK (done() will be called), HDL_EAGAIN (queue full: answer RC 3 server busy;
 *         done() is not called), HDL_EINVAL (writer stopping; done() is not called)
 */
int writer_submit(writer_t *w, wr_job_t *j);

/**
 * \brief Queue \p n jobs as one group, all or none (any thread). Never blocks. They are run in
 *        order, in as few batches as batch_max allows.
 * \retval HDL_EOK (every done() will be called), HDL_EAGAIN (the queue has no room for all of
 *         them: none was queued), HDL_EINVAL (writer stopping, a job without done(), n = 0)
 */
int writer_submit_many(writer_t *w, wr_job_t *const *jobs, unsigned n);

/** \brief Jobs queued or in the current batch (for metrics and tests). */
unsigned writer_depth(const writer_t *w);

/** \brief Finish every queued job (their done() is called), then stop and free the writer. */
void writer_stop(writer_t *w);

/** \brief A snapshot of the counters (any thread). */
void writer_stats(writer_t *w, writer_stats_t *out);

struct srvadmin_set;

/**
 * \brief Replace the server admins (configuration reload): the writer thread uses \p set from
 *        its next batch on and frees the old list. Takes ownership of \p set (srvadmin.h; NULL
 *        frees nothing and changes nothing). Any thread; never blocks on a batch.
 */
void writer_set_admins(writer_t *w, struct srvadmin_set *set);

/**
 * \brief Writer options from the node configuration (the write_*, server_admin, audit_*,
 *        authz_* and template_* keys). \p o borrows the server admin strings from \p c.
 */
void writer_opts_from_conf(const struct conf *c, writer_opts_t *o);

#endif /* HDL_NODE_SERVER_WRITER_H */
