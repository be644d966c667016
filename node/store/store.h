/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief LMDB-backed handle store.
 *
 * Databases in one environment:
 *  - "handles": key = normalized handle (hdl_name_normalize), value = the handle's values in wire
 *    encoding: U32 count + count x HandleValue (hdl_values_encode), so an answer is mostly a copy.
 *  - "prefixes": key = normalized homed prefix ("88.100.1"), value = who homed it and since when
 *    (U32 STORE_HOME_* sources + U32 time; node/store/homing.h). A prefix is homed while at least
 *    one source holds it.
 *  - "meta": node metadata (site info record, serial, keys) by name.
 *  - "txlog": key = U64 big-endian change serial (1, 2, ...), value = one change record
 *    (U8 op, U32 time, STR handle, then for STORE_OP_PUT the U32 count + values) for audit and
 *    replication. Written only when store_opts_t.txlog is set.
 *  - "audit", "audit_idx": the audit trail of the write path and its index by handle (see
 *    store_batch_audit() and the layout notes in store.c).
 *
 * Long names: a normalized name of up to store_max_key() bytes (LMDB's key limit, 511 on Debian)
 * is its own key and its record is exactly the values, as above. A longer one (handle names go
 * up to HDL_MAX_HANDLE_LEN bytes) is keyed by its first store_max_key() - 33 bytes, a 0x00 byte
 * and the SHA-256 of the whole normalized name (store_max_key() bytes in all; names never
 * contain NUL, so the two key forms never meet, and the key still starts with the real name, so
 * store_foreach() by prefix finds it). Its record starts with a header, U32 0xFFFFFFFF (a normal
 * record's count is at most HDL_MAX_VALUES) + STR full normalized name, then U32 count + values.
 * Readers check the header: the name must hash to the key, else the record is corrupted; a
 * well-formed record for another name (a SHA-256 collision) reads as not found. store_get(),
 * store_get_values() and store_foreach() give the values part only and foreach the full name;
 * txlog records carry the full name as for short names. Puts and deletes address the key (a put
 * replaces whatever record holds it).
 *
 * Map growth: a batch keeps a log of its operations in memory; when LMDB reports MDB_MAP_FULL
 * (on a put or at commit) the write txn is aborted, the map doubled (up to map_size_max) once every
 * reader of this process is between requests, and the batch replayed into a fresh txn. Callers
 * never see MDB_MAP_FULL unless map_size_max is reached (HDL_ESPACE). A thread that holds an active
 * reader snapshot cannot let the map grow (its pointers would dangle): such a batch fails with
 * HDL_ESPACE instead of deadlocking, so end the snapshot before committing.
 *
 * Readers: one store_reader_t per worker thread, wrapping one MDB_RDONLY txn that is renewed at
 * request start and reset at request end (never held across an event-loop wait).
 * Writers: all writes go through store_batch_t; callers in several threads serialise on the
 * single LMDB writer lock, and a batch commits many changes in one transaction (group commit).
 */
#ifndef HDL_NODE_STORE_STORE_H
#define HDL_NODE_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hdl/msg.h"
#include "node/store/homing.h"

/** Bytes an LMDB key of the store can have (the cursor of store_foreach_from()). */
#define STORE_RAW_KEY_MAX 512u

typedef struct store store_t;
typedef struct store_reader store_reader_t;
typedef struct store_batch store_batch_t;

typedef struct store_opts {
	const char *path;       /**< directory of the LMDB environment (created if missing) */
	uint64_t map_size;      /**< initial map size in bytes (0 = 1 GiB); grown on MDB_MAP_FULL */
	uint64_t map_size_max;  /**< growth limit (0 = 1 TiB) */
	unsigned max_readers;   /**< 0 = 126 */
	bool case_sensitive;    /**< fold only the prefix, not the suffix */
	bool read_only;
	bool no_sync;           /**< MDB_NOSYNC for bulk import (fsync at close) */
	bool txlog;             /**< record changes in "txlog" (default on for the node) */
} store_opts_t;

/**
 * \brief Open (creating the directory and databases unless read_only) an environment.
 * \retval HDL_EOK, HDL_ESTORE (LMDB error, logged), HDL_ENOENT (read_only and missing), HDL_ENOMEM,
 *         HDL_ESPACE (the disk is full: store_strerror(NULL, HDL_ESPACE))
 */
int store_open(const store_opts_t *opts, store_t **out);
/** \brief Close; end and free every reader first (readers still listed are freed here). */
void store_close(store_t *s);

/**
 * \brief Normalize a handle (per the store's case rule): the full name the store files it under.
 * \note Names longer than store_max_key() are accepted (see "Long names" above); the LMDB key
 *       derived from them is internal. Give \p cap >= HDL_MAX_HANDLE_LEN + 5 for any valid name.
 * \return normalized length, 0 if the name is invalid or does not fit \p cap
 */
size_t store_key(const store_t *s, hdl_slice_t handle, uint8_t *out, size_t cap);

/* ---- reading ---- */
/**
 * \brief One reader per thread (it holds one LMDB reader slot for its lifetime).
 * \note begin/end/get/free of one reader must happen on the thread that uses it.
 * \retval HDL_EOK, HDL_ESTORE, HDL_ENOMEM
 */
int store_reader_new(store_t *s, store_reader_t **out);
void store_reader_free(store_reader_t *r);
/** \brief Renew the read snapshot (start of a request). */
int store_reader_begin(store_reader_t *r);
/** \brief Release the snapshot (end of a request, also on error paths). */
void store_reader_end(store_reader_t *r);
/**
 * \brief Id of the snapshot's transaction (LMDB's txn id): the same value means the same data,
 *        every committed write changes it. For response-cache generations.
 * \return the id, 0 when no snapshot is active
 */
uint64_t store_reader_txn_id(const store_reader_t *r);
/**
 * \brief Look up a handle (by name; normalized inside). \p *vals points into the LMDB map and is
 *        valid until store_reader_end(). The record's structure is checked (counts, lengths
 *        and limits against the record bounds, no trailing bytes; field contents such as UTF-8
 *        were checked at write time) before it is returned; a corrupted one gives HDL_ESTORE
 *        and a log line.
 * \retval HDL_EOK, HDL_ENOENT, HDL_ESTORE
 */
int store_get(store_reader_t *r, hdl_slice_t handle, hdl_slice_t *vals);
/** \brief Is \p prefix (e.g. "88.100.1") homed here? */
bool store_is_homed(store_reader_t *r, hdl_slice_t prefix);
/** \brief Read a metadata blob ("site" = this node's HS_SITE record). */
int store_meta_get(store_reader_t *r, const char *name, hdl_slice_t *val);
/**
 * \brief Iterate handles under a prefix (for list handles / export); \p cb returns non-zero to stop.
 *        An empty prefix iterates everything.
 * \note \p prefix is a naming authority ("88.100.1", ASCII case-insensitive): the handles whose
 *       key starts with "88.100.1/", in key order (not "88.100.10/..."). \p key is the full
 *       normalized name (also for long names) and \p vals the U32 count + values. Corrupted
 *       records are logged and skipped. O(matches), never for hot paths.
 * \retval HDL_EOK, HDL_ENAME (prefix with '/' or control characters), HDL_EINVAL (no snapshot),
 *         HDL_ESTORE
 */
int store_foreach(store_reader_t *r, hdl_slice_t prefix,
                  int (*cb)(void *ctx, hdl_slice_t key, hdl_slice_t vals), void *ctx);

/**
 * \brief store_foreach() that resumes: handles under \p prefix whose LMDB key sorts after
 *        \p after (empty: from the first); \p cb also gets \p raw, the LMDB key of the record,
 *        which is the cursor to pass as \p after to continue in a later snapshot.
 * \retval as store_foreach()
 */
int store_foreach_from(store_reader_t *r, hdl_slice_t prefix, hdl_slice_t after,
                       int (*cb)(void *ctx, hdl_slice_t raw, hdl_slice_t key, hdl_slice_t vals),
                       void *ctx);

/* ---- writing ---- */
/** \brief Begin a write batch (one LMDB write txn). */
int store_batch_begin(store_t *s, store_batch_t **out);
/**
 * \brief Put a handle with its encoded values (U32 count + values). \p overwrite false and the
 *        handle exists -> HDL_EEXIST.
 */
int store_batch_put(store_batch_t *b, hdl_slice_t handle, hdl_slice_t vals, bool overwrite);
int store_batch_del(store_batch_t *b, hdl_slice_t handle);
/**
 * \brief Home or unhome a prefix as an administrator's request does (opcodes 300/301): home adds
 *        the STORE_HOME_ADMIN source, unhome removes the prefix whatever homed it. Same as
 *        store_batch_home_src(b, prefix, home, home ? STORE_HOME_ADMIN : STORE_HOME_ALL).
 * \retval as store_batch_home_src()
 */
int store_batch_home(store_batch_t *b, hdl_slice_t prefix, bool home);
int store_batch_meta_put(store_batch_t *b, const char *name, hdl_slice_t val);
/**
 * \brief Commit (grows the map and retries on MDB_MAP_FULL).
 * \retval HDL_EOK, HDL_ESTORE, HDL_ESPACE (map_size_max reached, or the disk is full:
 *         store_disk_full())
 */
int store_batch_commit(store_batch_t *b);
void store_batch_abort(store_batch_t *b);

/** \brief Number of handles (O(1) from LMDB stats). */
uint64_t store_count(store_t *s);

/* ---- additions (store helper) ---- */

/** Change record operations in "txlog". */
enum store_op {
	STORE_OP_PUT = 1,    /**< handle created or replaced; record carries the values */
	STORE_OP_DEL = 2,    /**< handle deleted */
	STORE_OP_HOME = 3,   /**< prefix homed (handle field = normalized prefix) */
	STORE_OP_UNHOME = 4, /**< prefix unhomed */
};

/** One decoded txlog record; slices borrow from the LMDB map (valid until store_reader_end). */
typedef struct store_txrec {
	uint64_t serial;    /**< change serial, strictly increasing */
	uint8_t op;         /**< enum store_op */
	uint32_t time;      /**< Unix seconds when the change was written */
	hdl_slice_t handle; /**< handle name as given to the batch (prefix for HOME/UNHOME) */
	hdl_slice_t vals;   /**< PUT: U32 count + values; empty otherwise */
} store_txrec_t;

/**
 * \brief Map an LMDB return code to hdl_err_t and log anything unexpected to stderr.
 * \param what short context for the log line ("mdb_put handles")
 * \retval HDL_EOK (0), HDL_ENOENT (MDB_NOTFOUND), HDL_EEXIST (MDB_KEYEXIST),
 *         HDL_ESPACE (MDB_MAP_FULL), HDL_ESTORE (anything else)
 */
int store_err_from_mdb(int mdb_rc, const char *what);

/**
 * \brief store_get() plus a full decode of the stored values into \p a.
 * \note The values' slices point into the LMDB map: valid until store_reader_end().
 * \retval HDL_EOK, HDL_ENOENT, HDL_ESTORE (LMDB error or corrupted record, logged), HDL_ENOMEM
 */
int store_get_values(store_reader_t *r, hdl_slice_t handle, hdl_arena_t *a, hdl_value_t **vals,
                     uint32_t *n);

/**
 * \brief Iterate txlog records with serial >= \p from; \p cb returns non-zero to stop.
 * \retval HDL_EOK, HDL_ESTORE (LMDB error or a malformed record)
 */
int store_txlog_foreach(store_reader_t *r, uint64_t from,
                        int (*cb)(void *ctx, const store_txrec_t *rec), void *ctx);

/** \brief Highest txlog serial written so far (0 = none). */
uint64_t store_txlog_last(store_t *s);

/**
 * \brief Highest txlog serial in the reader's snapshot (0 = none, or no snapshot): where a
 *        store_txlog_foreach() from the next serial continues in a later snapshot.
 */
uint64_t store_reader_txlog_last(store_reader_t *r);

/** \brief Current LMDB map size in bytes. */
uint64_t store_map_size(store_t *s);

/** \brief Flush to disk (after a no_sync bulk load). \retval HDL_EOK, HDL_ESTORE */
int store_sync(store_t *s);

/** \brief LMDB key limit of this store: longer normalized names take the long-key form. */
size_t store_max_key(const store_t *s);

/* ---- homed prefixes, import marker, disk full (ops11) ---- */

/**
 * \brief Home a prefix for \p sources (STORE_HOME_* bits added to the record) or unhome it
 *        (those bits cleared; the prefix stops being homed when no source is left, at once for
 *        STORE_HOME_ALL). A txlog record (STORE_OP_HOME / STORE_OP_UNHOME) is written only when
 *        the prefix's homed state changes.
 * \retval HDL_EOK, HDL_ENOENT (unhome: the prefix is not homed, or not by \p sources),
 *         HDL_ENAME (not a prefix), HDL_EINVAL (\p sources 0 or unknown bits), HDL_ESTORE,
 *         HDL_ENOMEM
 */
int store_batch_home_src(store_batch_t *b, hdl_slice_t prefix, bool home, uint32_t sources);

/**
 * \brief Make the prefixes homed by the single source \p src exactly \p prefixes (n of them):
 *        \p src is added to each listed prefix and removed from every other prefix that has it
 *        (a prefix another source still holds stays homed). The node calls it with
 *        STORE_HOME_CONFIG at start and on reload.
 * \param cb called for each change after it is made: \p added = \p src was added (false: removed),
 *        \p sources = the prefix's sources now (0 = no longer homed); may be NULL
 * \retval HDL_EOK, HDL_ENAME (a listed prefix is invalid; nothing changed), HDL_EINVAL,
 *         HDL_ESTORE, HDL_ENOMEM
 */
int store_batch_home_sync(store_batch_t *b, uint32_t src, const char *const *prefixes, size_t n,
                          void (*cb)(void *ctx, hdl_slice_t prefix, bool added, uint32_t sources),
                          void *ctx);

/**
 * \brief Iterate the homed prefixes in key order (folded, e.g. "88.100.1"); \p cb returns
 *        non-zero to stop. Unreadable records are logged and skipped.
 * \retval HDL_EOK, HDL_EINVAL (no snapshot), HDL_ESTORE
 */
int store_prefixes_foreach(store_reader_t *r,
                           int (*cb)(void *ctx, hdl_slice_t prefix, const store_home_rec_t *rec),
                           void *ctx);

/** \brief Number of homed prefixes (O(1) from LMDB stats; 0 on error, logged). */
uint64_t store_homed_count(store_t *s);

/** \brief Delete a metadata record. \retval HDL_EOK, HDL_ENOENT, HDL_EINVAL, HDL_ESTORE */
int store_batch_meta_del(store_batch_t *b, const char *name);

/**
 * \brief Read a metadata record inside the batch's write txn (sees the batch's own puts).
 * \note \p *val points into LMDB memory that the next write of this batch may move: copy it
 *       before the next store_batch_* call.
 * \retval HDL_EOK, HDL_ENOENT, HDL_EINVAL (no batch, bad name), HDL_ESTORE, or the batch's
 *         sticky error
 */
int store_batch_meta_get(store_batch_t *b, const char *name, hdl_slice_t *val);

/**
 * \brief Did the last failed write find the file system full? (ENOSPC, EDQUOT, or the EIO LMDB
 *        reports for a short write on a full disk.) Cleared by the next successful commit.
 * \note store_batch_commit(), store_sync() and store_open() answer HDL_ESPACE in that case.
 */
bool store_disk_full(store_t *s);

/**
 * \brief Text for an error of a store call: "disk full (no space left on the device)" when
 *        \p err comes from a full disk (\p s NULL: a store_open() that returned HDL_ESPACE),
 *        else hdl_strerror(\p err).
 */
const char *store_strerror(store_t *s, int err);

/* ---- write-path additions: reads inside the write txn, savepoints, audit trail ------------- */

/**
 * \brief Look up a handle inside the batch's write txn: sees the batch's own changes (and those
 *        of an open savepoint). The record's structure is checked as in store_get().
 * \note \p *vals points into LMDB memory that the next write of this batch may move or free
 *       (and a map growth always does): copy what you need before the next store_batch_* call.
 * \retval HDL_EOK, HDL_ENOENT, HDL_ESTORE, HDL_EINVAL (no active batch), or the batch's sticky
 *         error
 */
int store_batch_get(store_batch_t *b, hdl_slice_t handle, hdl_slice_t *vals);

/**
 * \brief Is \p prefix homed, as the write txn sees it?
 * \retval HDL_EOK (homed), HDL_ENOENT (not homed or not a valid prefix), HDL_ESTORE, HDL_EINVAL
 */
int store_batch_is_homed(store_batch_t *b, hdl_slice_t prefix);

/**
 * \brief Open a savepoint: an LMDB nested txn; the batch's operations go into it until
 *        store_batch_release() keeps them or store_batch_rollback() undoes them (txlog and audit
 *        serials included). One level only.
 * \note Map growth (MDB_MAP_FULL) inside a savepoint replays the batch's kept operations into a
 *       fresh txn and the savepoint's own into a fresh child, so a rollback after a growth still
 *       undoes exactly the savepoint's operations, and a replay reproduces exactly what was kept:
 *       operations rolled back are gone from the replay log too.
 * \retval HDL_EOK, HDL_EINVAL (no batch, or a savepoint is already open), HDL_ESTORE, HDL_ENOMEM
 */
int store_batch_savepoint(store_batch_t *b);
/**
 * \brief Keep the savepoint's operations in the batch (merge the child txn into its parent).
 * \retval HDL_EOK; on failure (HDL_ESTORE, HDL_ENOMEM, HDL_ESPACE) the batch has failed (its
 *         commit will report it)
 */
int store_batch_release(store_batch_t *b);
/** \brief Undo every operation since store_batch_savepoint() (no-op without a savepoint). */
void store_batch_rollback(store_batch_t *b);

/**
 * \brief The batch's sticky error: HDL_EOK while it can still commit; otherwise the error its
 *        commit will return (a failed map growth, an LMDB error, out of memory). An operation
 *        refused with HDL_EEXIST, HDL_ENOENT, HDL_EMALF or a corrupted record read leaves the
 *        batch usable.
 */
int store_batch_failed(const store_batch_t *b);

/** Largest audit record store_batch_audit() takes. */
#define STORE_AUDIT_REC_MAX (64u * 1024u)

/**
 * \brief Append an audit entry in the batch's txn (so it commits or rolls back with the change it
 *        describes). The record is opaque to the store (node/store/audit.h encodes it).
 * \param time Unix seconds; the entry's key is (time, sequence), kept increasing: an entry older
 *        than the last one (the clock went back) is filed under the last one's second
 * \param handle indexes the entry for store_audit_foreach() by handle (empty or not a valid name:
 *        unindexed)
 * \retval HDL_EOK, HDL_EINVAL (no batch, record over STORE_AUDIT_REC_MAX), HDL_ENOMEM,
 *         HDL_ESTORE, HDL_ESPACE
 */
int store_batch_audit(store_batch_t *b, uint32_t time, hdl_slice_t handle, hdl_slice_t rec);

/**
 * \brief Delete at most \p max of the oldest audit entries filed before \p before (Unix
 *        seconds), and their index entries: one bounded retention step.
 * \param[out] pruned entries deleted (fewer than \p max: nothing older is left)
 * \retval HDL_EOK, HDL_ESTORE, HDL_ESPACE, HDL_ENOMEM, HDL_EINVAL
 */
int store_batch_audit_prune(store_batch_t *b, uint32_t before, unsigned max, unsigned *pruned);

/**
 * \brief Iterate audit entries filed at or after \p since (Unix seconds), oldest first; with a
 *        non-empty \p handle only that handle's entries (by its normalized name; for names
 *        longer than store_max_key() a SHA-256 collision could add another name's entries, so
 *        callers compare the record's handle). \p cb gets the entry's id (time << 32 | sequence)
 *        and the record; it returns non-zero to stop. A store opened read-only that has no audit
 *        trail yet iterates nothing.
 * \retval HDL_EOK, HDL_EINVAL (no snapshot), HDL_ENAME (\p handle invalid), HDL_ESTORE
 */
int store_audit_foreach(store_reader_t *r, uint32_t since, hdl_slice_t handle,
                        int (*cb)(void *ctx, uint64_t id, hdl_slice_t rec), void *ctx);

/**
 * \brief Switch fsync at commit off (\p on) or back on (MDB_NOSYNC at run time): the writer's
 *        `sync = periodic` mode, which calls store_sync() on its own schedule.
 * \note Only between batches. \retval HDL_EOK, HDL_EINVAL (read-only store), HDL_ESTORE
 */
int store_set_no_sync(store_t *s, bool on);

/* ---- usage statistics (node/store/stats.h: keys and records) -------------------------------- */

/**
 * \brief Write the statistics record \p val under \p key ("stats" database; the store does not
 *        look inside).
 * \retval HDL_EOK, HDL_EINVAL (empty or over-long key, a read-only store without statistics),
 *         HDL_ENOMEM, HDL_ESTORE, HDL_ESPACE
 */
int store_batch_stats_put(store_batch_t *b, hdl_slice_t key, hdl_slice_t val);
/** \brief Delete the statistics record \p key. \retval HDL_EOK, HDL_ENOENT, as above */
int store_batch_stats_del(store_batch_t *b, hdl_slice_t key);
/**
 * \brief Read the statistics record \p key inside the batch's write txn (sees the batch's own
 *        writes). \p *val is valid until the next write of the batch.
 * \retval HDL_EOK, HDL_ENOENT, HDL_EINVAL, HDL_ESTORE, or the batch's sticky error
 */
int store_batch_stats_get(store_batch_t *b, hdl_slice_t key, hdl_slice_t *val);
/**
 * \brief Iterate the statistics records in key order from the first key >= \p from (empty: the
 *        first); \p cb returns non-zero to stop. A read-only store without statistics iterates
 *        nothing.
 * \retval HDL_EOK, HDL_EINVAL (no snapshot), HDL_ESTORE
 */
int store_stats_foreach(store_reader_t *r, hdl_slice_t from,
                        int (*cb)(void *ctx, hdl_slice_t key, hdl_slice_t val), void *ctx);

/** \brief Bytes of the map in use (pages up to the last one written; 0 when unknown). */
uint64_t store_map_used(store_t *s);

#endif /* HDL_NODE_STORE_STORE_H */
