/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief LMDB-backed handle store.
 *
 * Databases in one environment:
 *  - "handles": key = normalized handle (hdl_name_normalize), value = the handle's values in wire
 *    encoding: U32 count + count x HandleValue (hdl_values_encode), so an answer is mostly a copy.
 *  - "prefixes": key = normalized homed prefix ("88.100.1"), value = flags (reserved, U32 0).
 *  - "meta": node metadata (site info record, serial, keys) by name.
 *  - "txlog": key = U64 big-endian change serial (1, 2, ...), value = one change record
 *    (U8 op, U32 time, STR handle, then for STORE_OP_PUT the U32 count + values) for audit and
 *    replication. Written only when store_opts_t.txlog is set.
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
 * \retval HDL_EOK, HDL_ESTORE (LMDB error, logged), HDL_ENOENT (read_only and missing), HDL_ENOMEM
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

/* ---- writing ---- */
/** \brief Begin a write batch (one LMDB write txn). */
int store_batch_begin(store_t *s, store_batch_t **out);
/**
 * \brief Put a handle with its encoded values (U32 count + values). \p overwrite false and the
 *        handle exists -> HDL_EEXIST.
 */
int store_batch_put(store_batch_t *b, hdl_slice_t handle, hdl_slice_t vals, bool overwrite);
int store_batch_del(store_batch_t *b, hdl_slice_t handle);
int store_batch_home(store_batch_t *b, hdl_slice_t prefix, bool home);
int store_batch_meta_put(store_batch_t *b, const char *name, hdl_slice_t val);
/** \brief Commit (grows the map and retries on MDB_MAP_FULL). \retval HDL_EOK, HDL_ESTORE, HDL_ESPACE */
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

#endif /* HDL_NODE_STORE_STORE_H */
