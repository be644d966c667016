/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief LMDB-backed handle store (see store.h for the layout).
 *
 * Concurrency model:
 *  - The environment is opened with MDB_NOTLS, so a read txn belongs to a store_reader_t, not to
 *    a thread slot; each reader keeps one MDB_RDONLY txn for its lifetime and only resets/renews
 *    it (begin/end of a request).
 *  - Each reader has its own mutex, held from store_reader_begin() to store_reader_end(). It is
 *    uncontended on the request path; only map growth takes it, to make sure no thread of this
 *    process points into the map while it is remapped.
 *  - One write batch at a time per process (write_mu, taken in store_batch_begin() and released
 *    at commit/abort); LMDB's own writer lock serialises with other processes.
 *  - Lock order: write_mu -> grow_mu -> readers_mu -> reader mutexes. The remap waits for each
 *    reader with a timeout (a reader thread could itself wait for write_mu or readers_mu), so a
 *    misbehaving caller turns into HDL_ESPACE, never into a deadlock. While a remap is pending,
 *    store_reader_begin() waits on grow_mu, so busy readers cannot starve it.
 *
 * Map growth (MDB_MAP_FULL): the batch keeps an in-memory log of its operations; on MAP_FULL the
 * txn is aborted, the map doubled (bounded by map_size_max) and the log replayed into a new txn.
 * Another process growing the map shows up as MDB_MAP_RESIZED, answered by adopting its size.
 */
#include <errno.h>
#include <lmdb.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "hdl/error.h"
#include "hdl/msg.h"
#include "node/common/log.h"
#include "node/store/homing.h"
#include "node/store/store.h"
#include "proto/wire.h"

#define STORE_DEFAULT_MAP (1ull << 30)
#define STORE_DEFAULT_MAP_MAX (1ull << 40)
#define STORE_DEFAULT_READERS 126u
#define STORE_KEY_MAX 512u /* >= LMDB's 511-byte key limit */
#define STORE_GROW_ATTEMPTS 3u /* sweeps over the readers ... */
#define STORE_GROW_WAIT_S 2    /* ... each waiting at most this long */
#define STORE_META_NAME_MAX 256u
#define STORE_FULL_BELOW (1u << 20) /* free bytes under which a write's EIO means a full disk */
#define STORE_NAME_MAX (HDL_MAX_HANDLE_LEN + 5u) /* normalized: "0.NA/" + a name without '/' */
#define STORE_HASH_LEN 32u                         /* SHA-256 at the end of a long key */
#define STORE_LONG_MARK 0xFFFFFFFFu                /* first U32 of a long-name record */

/* Active reader snapshots held by the calling thread (any store): a thread with one must not
 * remap the environment under itself. */
static _Thread_local int tls_active_readers;

struct store_reader {
	store_t *s;
	MDB_txn *txn;               /**< MDB_RDONLY txn, reset between requests */
	pthread_mutex_t mu;         /**< held while the snapshot is active */
	bool active;                /**< between begin and end (owner thread only) */
	struct store_reader *next;  /**< in store.readers */
	struct store_reader *prev;
	hdl_arena_t arena;          /**< scratch for validating decodes */
	uint8_t scratch[8192];
};

struct store_batch {
	store_t *s;
	MDB_txn *txn;     /**< NULL after a failed regrow while still active */
	bool active;      /**< between begin and commit/abort (write_mu held) */
	int err;          /**< sticky hdl_err_t */
	uint64_t serial;  /**< last txlog serial used in this txn */
	uint32_t now;     /**< timestamp for txlog records */
	uint8_t *log;     /**< replay log of successful operations */
	size_t log_len;
	size_t log_cap;
	uint8_t *rec;     /**< txlog record scratch */
	size_t rec_cap;
	uint8_t *lrec;    /**< long-name record scratch (marker + name + values) */
	size_t lrec_cap;
	hdl_arena_t arena; /**< scratch for validating values */
	/* savepoint: while open, txn is a child of ptxn (see store_batch_savepoint) */
	MDB_txn *ptxn;       /**< the batch's own txn while a savepoint is open */
	bool sp;             /**< a savepoint is open */
	size_t sp_log;       /**< replay log length when it was opened */
	uint64_t sp_serial;  /**< txlog serial when it was opened */
	uint64_t sp_audit;   /**< audit_last when it was opened */
	uint64_t audit_last; /**< last audit key in this txn: time << 32 | sequence */
	unsigned pruned;     /**< entries removed by the last LOG_AUDIT_PRUNE */
	uint8_t *arec;       /**< audit value scratch */
	size_t arec_cap;
};

struct store {
	MDB_env *env;
	MDB_dbi dbi_handles;
	MDB_dbi dbi_prefixes;
	MDB_dbi dbi_meta;
	MDB_dbi dbi_txlog;
	MDB_dbi dbi_audit;     /**< audit trail (see "audit trail" below) */
	MDB_dbi dbi_audit_idx; /**< audit entries by handle */
	bool has_audit;        /**< false: a read-only open of a store without an audit trail */
	MDB_dbi dbi_stats;     /**< usage statistics per day and prefix (node/store/stats.h) */
	bool has_stats;        /**< false: a read-only open of a store without statistics */
	store_opts_t opts;  /**< copy; path points to path_buf */
	char *path_buf;
	uint64_t map_size;  /**< current map size */
	uint64_t map_max;
	size_t max_key;
	pthread_mutex_t write_mu;   /**< one batch at a time */
	pthread_mutex_t readers_mu; /**< protects the readers list */
	pthread_mutex_t grow_mu;    /**< held during a remap; new snapshots wait on it */
	atomic_int growing;         /**< a remap is waiting or running */
	struct store_reader *readers;
	struct store_batch batch;   /**< the (single) batch, reused */
	atomic_bool disk_full;      /**< the last failed write found the file system full */
};

/* Operation codes of the replay log (distinct from the txlog ops). */
enum log_op {
	LOG_PUT = 1,
	LOG_PUT_NEW = 2, /* put without overwrite */
	LOG_DEL = 3,
	LOG_HOME = 4,
	LOG_UNHOME = 5,
	LOG_META = 6,
	LOG_META_DEL = 7,
};

static int write_err(store_t *s, int rc, const char *what);

int store_err_from_mdb(int rc, const char *what)
{
	switch (rc) {
	case MDB_SUCCESS:
		return HDL_EOK;
	case MDB_NOTFOUND:
		return HDL_ENOENT;
	case MDB_KEYEXIST:
		return HDL_EEXIST;
	case MDB_MAP_FULL:
		log_warn("store: %s: %s", what, mdb_strerror(rc));
		return HDL_ESPACE;
	default:
		log_err("store: %s: %s", what, mdb_strerror(rc));
		return HDL_ESTORE;
	}
}

static MDB_val mval(const void *p, size_t n)
{
	MDB_val v = {n, (void *)p};
	return v;
}

static size_t round_page(uint64_t n)
{
	long pg = sysconf(_SC_PAGESIZE);
	uint64_t p = pg > 0 ? (uint64_t)pg : 4096u;
	return (size_t)((n + p - 1) / p * p);
}

size_t store_key(const store_t *s, hdl_slice_t handle, uint8_t *out, size_t cap)
{
	if (handle.p == NULL || hdl_name_check(handle.p, handle.len) != HDL_EOK)
		return 0;
	return hdl_name_normalize(handle, s->opts.case_sensitive, out, cap);
}

/* ---- long names ----------------------------------------------------------------------------
 * A normalized name of up to max_key bytes is its own LMDB key. A longer one is keyed by its
 * first long_head() bytes, a 0x00 byte and the SHA-256 of the whole name (max_key bytes in all);
 * names never contain NUL, so the two forms cannot meet. Such a record starts with a header,
 * U32 STORE_LONG_MARK + STR full normalized name, before the usual U32 count + values (a normal
 * record's count is at most HDL_MAX_VALUES, so the marker cannot begin one). */

/** Bytes of the name at the front of a long key. */
static size_t long_head(const store_t *s)
{
	return s->max_key - 1 - STORE_HASH_LEN;
}

/** Is \p k (an LMDB key of "handles") in the long-name form? */
static bool is_long_key(const store_t *s, const void *k, size_t klen)
{
	return klen == s->max_key && ((const uint8_t *)k)[long_head(s)] == 0;
}

/**
 * LMDB key of a normalized name into \p out (STORE_KEY_MAX bytes).
 * \return key length, 0 on a digest failure (logged)
 */
static size_t db_key(const store_t *s, const uint8_t *name, size_t len, uint8_t *out)
{
	if (len <= s->max_key) {
		memcpy(out, name, len);
		return len;
	}
	size_t h = long_head(s);
	unsigned int mdlen = 0;
	memcpy(out, name, h);
	out[h] = 0;
	if (EVP_Digest(name, len, out + h + 1, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen != STORE_HASH_LEN) {
		log_err("store: SHA-256 of a long handle name failed");
		return 0;
	}
	return h + 1 + STORE_HASH_LEN;
}

/** A stored full name: no C0 controls or DEL, valid UTF-8. */
static bool stored_name_ok(hdl_slice_t n)
{
	for (uint32_t i = 0; i < n.len; i++) {
		if (n.p[i] < 0x20 || n.p[i] == 0x7f)
			return false;
	}
	return hdl_utf8_valid(n.p, n.len);
}

/**
 * Find the full name and the values part of a "handles" record (the values are not checked here).
 * Short keys: the key is the name and the whole record the values. Long keys: the header must be
 * well formed and its name must hash to this very key.
 * \param want the normalized name looked up, or {NULL, 0} to accept any (iteration)
 * \retval HDL_EOK; HDL_ENOENT (the record belongs to another name with the same key: a SHA-256
 *         collision); HDL_EMALF (corrupted header)
 */
static int record_split(const store_t *s, const MDB_val *k, const MDB_val *d, hdl_slice_t want,
                        hdl_slice_t *name, hdl_slice_t *vals)
{
	name->p = NULL;
	name->len = 0;
	vals->p = NULL;
	vals->len = 0;
	if (d->mv_size > UINT32_MAX || k->mv_size > STORE_KEY_MAX)
		return HDL_EMALF;
	if (!is_long_key(s, k->mv_data, k->mv_size)) {
		name->p = k->mv_data;
		name->len = (uint32_t)k->mv_size;
		vals->p = d->mv_data;
		vals->len = (uint32_t)d->mv_size;
		return HDL_EOK;
	}
	wire_rd_t rd = wire_rd_init(d->mv_data, d->mv_size);
	uint32_t mark = wire_rd_u32(&rd);
	hdl_slice_t n = wire_rd_lbytes(&rd, STORE_NAME_MAX);
	hdl_slice_t v = wire_rd_bytes(&rd, wire_rd_left(&rd));
	if (rd.err || mark != STORE_LONG_MARK || n.len <= s->max_key || !stored_name_ok(n))
		return HDL_EMALF;
	bool wanted = want.p != NULL && want.len == n.len && memcmp(want.p, n.p, n.len) == 0;
	if (!wanted) {
		/* Not the name asked for (or none asked for): it must own this key. */
		uint8_t kb[STORE_KEY_MAX];
		size_t kl = db_key(s, n.p, n.len, kb);
		if (kl == 0 || kl != k->mv_size || memcmp(kb, k->mv_data, kl) != 0)
			return HDL_EMALF;
		if (want.p != NULL)
			return HDL_ENOENT;
	}
	*name = n;
	*vals = v;
	return HDL_EOK;
}

/** Fold a prefix ("88.100.1") to its key: ASCII upper case, no slash, 1..max_key bytes. */
static size_t prefix_key(const store_t *s, hdl_slice_t prefix, uint8_t *out, size_t cap)
{
	if (prefix.p == NULL || prefix.len == 0 || prefix.len > s->max_key || prefix.len > cap)
		return 0;
	if (!hdl_utf8_valid(prefix.p, prefix.len))
		return 0;
	for (uint32_t i = 0; i < prefix.len; i++) {
		uint8_t c = prefix.p[i];
		if (c < 0x20 || c == 0x7f || c == '/')
			return 0;
		out[i] = (c >= 'a' && c <= 'z') ? (uint8_t)(c - 32) : c;
	}
	return prefix.len;
}

size_t store_max_key(const store_t *s)
{
	return s->max_key;
}

/* ---- environment -------------------------------------------------------------------------- */

static int open_dbis(store_t *s)
{
	MDB_txn *txn = NULL;
	unsigned tflags = s->opts.read_only ? MDB_RDONLY : 0;
	unsigned dflags = s->opts.read_only ? 0 : MDB_CREATE;
	int rc = mdb_txn_begin(s->env, NULL, tflags, &txn);
	if (rc != MDB_SUCCESS)
		return store_err_from_mdb(rc, "mdb_txn_begin (open)");
	if ((rc = mdb_dbi_open(txn, "handles", dflags, &s->dbi_handles)) != MDB_SUCCESS ||
	    (rc = mdb_dbi_open(txn, "prefixes", dflags, &s->dbi_prefixes)) != MDB_SUCCESS ||
	    (rc = mdb_dbi_open(txn, "meta", dflags, &s->dbi_meta)) != MDB_SUCCESS ||
	    (rc = mdb_dbi_open(txn, "txlog", dflags, &s->dbi_txlog)) != MDB_SUCCESS) {
		mdb_txn_abort(txn);
		return store_err_from_mdb(rc == MDB_NOTFOUND ? MDB_INVALID : rc, "mdb_dbi_open");
	}
	/* The audit trail came later: a read-only open of an older store goes on without it. */
	rc = mdb_dbi_open(txn, "audit", dflags, &s->dbi_audit);
	if (rc == MDB_SUCCESS)
		rc = mdb_dbi_open(txn, "audit_idx", dflags | MDB_DUPSORT | MDB_DUPFIXED,
		                  &s->dbi_audit_idx);
	if (rc != MDB_SUCCESS && !(rc == MDB_NOTFOUND && s->opts.read_only)) {
		mdb_txn_abort(txn);
		return store_err_from_mdb(rc, "mdb_dbi_open audit");
	}
	s->has_audit = rc == MDB_SUCCESS;
	/* so did the statistics */
	rc = mdb_dbi_open(txn, "stats", dflags, &s->dbi_stats);
	if (rc != MDB_SUCCESS && !(rc == MDB_NOTFOUND && s->opts.read_only)) {
		mdb_txn_abort(txn);
		return store_err_from_mdb(rc, "mdb_dbi_open stats");
	}
	s->has_stats = rc == MDB_SUCCESS;
	rc = mdb_txn_commit(txn);
	return rc == MDB_SUCCESS ? HDL_EOK : write_err(s, rc, "mdb_txn_commit (open)");
}

static void refresh_map_size(store_t *s)
{
	MDB_envinfo info;
	if (mdb_env_info(s->env, &info) == MDB_SUCCESS)
		s->map_size = info.me_mapsize;
}

int store_open(const store_opts_t *opts, store_t **out)
{
	int ret = HDL_EOK;
	int rc;
	*out = NULL;
	if (opts == NULL || opts->path == NULL || opts->path[0] == '\0')
		return HDL_EINVAL;
	store_t *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return HDL_ENOMEM;
	s->opts = *opts;
	s->path_buf = strdup(opts->path);
	if (s->path_buf == NULL) {
		free(s);
		return HDL_ENOMEM;
	}
	s->opts.path = s->path_buf;
	pthread_mutex_init(&s->write_mu, NULL);
	pthread_mutex_init(&s->readers_mu, NULL);
	pthread_mutex_init(&s->grow_mu, NULL);
	atomic_init(&s->growing, 0);
	hdl_arena_init(&s->batch.arena, NULL, 0, 0);
	s->batch.s = s;

	uint64_t map = opts->map_size ? opts->map_size : STORE_DEFAULT_MAP;
	s->map_max = opts->map_size_max ? opts->map_size_max : STORE_DEFAULT_MAP_MAX;
	if (s->map_max < map)
		s->map_max = map;

	if ((rc = mdb_env_create(&s->env)) != MDB_SUCCESS) {
		s->env = NULL;
		ret = store_err_from_mdb(rc, "mdb_env_create");
		goto fail;
	}
	if ((rc = mdb_env_set_mapsize(s->env, round_page(map))) != MDB_SUCCESS) {
		ret = store_err_from_mdb(rc, "mdb_env_set_mapsize");
		goto fail;
	}
	if ((rc = mdb_env_set_maxdbs(s->env, 16)) != MDB_SUCCESS) {
		ret = store_err_from_mdb(rc, "mdb_env_set_maxdbs");
		goto fail;
	}
	unsigned readers = opts->max_readers ? opts->max_readers : STORE_DEFAULT_READERS;
	if ((rc = mdb_env_set_maxreaders(s->env, readers)) != MDB_SUCCESS) {
		ret = store_err_from_mdb(rc, "mdb_env_set_maxreaders");
		goto fail;
	}
	if (!opts->read_only && mkdir(opts->path, 0750) != 0 && errno != EEXIST) {
		log_err("store: mkdir %s: %s", opts->path, strerror(errno));
		ret = HDL_ESTORE;
		goto fail;
	}
	unsigned flags = MDB_NOTLS | MDB_NORDAHEAD;
	if (opts->read_only)
		flags |= MDB_RDONLY;
	if (opts->no_sync)
		flags |= MDB_NOSYNC;
	if ((rc = mdb_env_open(s->env, opts->path, flags, 0640)) != MDB_SUCCESS) {
		if (rc == ENOENT) {
			log_err("store: open %s: %s", opts->path, mdb_strerror(rc));
			ret = HDL_ENOENT;
		} else {
			(void)write_err(s, rc, "open");
			ret = store_disk_full(s) ? HDL_ESPACE : HDL_ESTORE;
		}
		goto fail;
	}
	int mk = mdb_env_get_maxkeysize(s->env);
	s->max_key = mk > 0 && (size_t)mk < STORE_KEY_MAX ? (size_t)mk : STORE_KEY_MAX - 1;
	if (s->max_key < 4 * STORE_HASH_LEN) {
		log_err("store: LMDB key limit %zu is too small for long handle keys", s->max_key);
		ret = HDL_ESTORE;
		goto fail;
	}
	refresh_map_size(s);
	if (s->map_max < s->map_size)
		s->map_max = s->map_size;
	if ((ret = open_dbis(s)) != HDL_EOK) {
		if (store_disk_full(s))
			ret = HDL_ESPACE;
		goto fail;
	}
	*out = s;
	return HDL_EOK;
fail:
	if (s->env)
		mdb_env_close(s->env);
	pthread_mutex_destroy(&s->write_mu);
	pthread_mutex_destroy(&s->readers_mu);
	pthread_mutex_destroy(&s->grow_mu);
	free(s->path_buf);
	free(s);
	return ret;
}

void store_close(store_t *s)
{
	if (s == NULL)
		return;
	/* Readers left open by the caller: free their txns before the env goes. */
	while (s->readers)
		store_reader_free(s->readers);
	if (s->batch.active)
		store_batch_abort(&s->batch);
	if (s->opts.no_sync && !s->opts.read_only) {
		int rc = mdb_env_sync(s->env, 1);
		if (rc != MDB_SUCCESS)
			(void)write_err(s, rc, "mdb_env_sync");
	}
	mdb_env_close(s->env);
	free(s->batch.log);
	free(s->batch.rec);
	free(s->batch.lrec);
	free(s->batch.arec);
	hdl_arena_free(&s->batch.arena);
	pthread_mutex_destroy(&s->write_mu);
	pthread_mutex_destroy(&s->readers_mu);
	pthread_mutex_destroy(&s->grow_mu);
	free(s->path_buf);
	free(s);
}

int store_sync(store_t *s)
{
	if (s->opts.read_only)
		return HDL_EOK;
	int rc = mdb_env_sync(s->env, 1);
	if (rc == MDB_SUCCESS)
		return HDL_EOK;
	int ret = write_err(s, rc, "mdb_env_sync");
	return store_disk_full(s) ? HDL_ESPACE : ret;
}

uint64_t store_map_size(store_t *s)
{
	pthread_mutex_lock(&s->readers_mu);
	uint64_t n = s->map_size;
	pthread_mutex_unlock(&s->readers_mu);
	return n;
}

/**
 * Remap the environment to \p size bytes (0 = adopt the size another process set).
 * The caller holds write_mu and has no write txn open. Every reader of this process must be
 * between requests: their mutexes are taken in list order, each wait bounded; a sweep that times
 * out releases everything and is retried a few times before giving up with HDL_ESPACE.
 */
static int map_resize(store_t *s, uint64_t size)
{
	if (tls_active_readers > 0) {
		log_warn("store: map resize refused: this thread holds a read snapshot");
		return HDL_ESPACE;
	}
	int ret = HDL_ESPACE;
	atomic_store(&s->growing, 1);
	pthread_mutex_lock(&s->grow_mu);
	for (unsigned attempt = 0; attempt < STORE_GROW_ATTEMPTS; attempt++) {
		struct timespec deadline;
		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_sec += STORE_GROW_WAIT_S;
		pthread_mutex_lock(&s->readers_mu);
		struct store_reader *busy = NULL;
		for (struct store_reader *r = s->readers; r; r = r->next) {
			if (pthread_mutex_timedlock(&r->mu, &deadline) != 0) {
				busy = r;
				break;
			}
		}
		if (busy == NULL) {
			int rc = mdb_env_set_mapsize(s->env, size ? round_page(size) : 0);
			ret = store_err_from_mdb(rc, "mdb_env_set_mapsize");
			if (ret == HDL_EOK)
				refresh_map_size(s);
			else
				ret = HDL_ESTORE;
		}
		for (struct store_reader *u = s->readers; u != busy; u = u->next)
			pthread_mutex_unlock(&u->mu);
		pthread_mutex_unlock(&s->readers_mu);
		if (busy == NULL)
			break;
		log_warn("store: map resize: a reader stayed busy for %d s", STORE_GROW_WAIT_S);
	}
	pthread_mutex_unlock(&s->grow_mu);
	atomic_store(&s->growing, 0);
	return ret;
}

/* ---- reading ------------------------------------------------------------------------------ */

/** Another process grew the map (MDB_MAP_RESIZED): adopt its size. Holds no lock on entry. */
static void adopt_map(store_t *s)
{
	if (pthread_mutex_trylock(&s->write_mu) == 0) {
		(void)map_resize(s, 0);
		pthread_mutex_unlock(&s->write_mu);
	}
	/* else a batch of this process is open: its begin adopted the new size already */
}

/** Begin a read txn; the caller holds readers_mu (released around a map adoption). */
static int reader_txn_begin(store_t *s, MDB_txn **txn)
{
	int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn);
	if (rc == MDB_MAP_RESIZED) {
		pthread_mutex_unlock(&s->readers_mu);
		adopt_map(s);
		pthread_mutex_lock(&s->readers_mu);
		rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn);
	}
	if (rc == MDB_READERS_FULL) {
		int dead = 0;
		mdb_reader_check(s->env, &dead);
		rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn);
	}
	return rc;
}

int store_reader_new(store_t *s, store_reader_t **out)
{
	*out = NULL;
	store_reader_t *r = calloc(1, sizeof(*r));
	if (r == NULL)
		return HDL_ENOMEM;
	r->s = s;
	hdl_arena_init(&r->arena, r->scratch, sizeof(r->scratch), 0);
	pthread_mutex_init(&r->mu, NULL);
	pthread_mutex_lock(&s->readers_mu);
	int rc = reader_txn_begin(s, &r->txn);
	if (rc == MDB_SUCCESS) {
		mdb_txn_reset(r->txn);
		r->next = s->readers;
		if (s->readers)
			s->readers->prev = r;
		s->readers = r;
	}
	pthread_mutex_unlock(&s->readers_mu);
	if (rc != MDB_SUCCESS) {
		pthread_mutex_destroy(&r->mu);
		free(r);
		return store_err_from_mdb(rc == MDB_NOTFOUND ? MDB_INVALID : rc, "mdb_txn_begin (reader)");
	}
	*out = r;
	return HDL_EOK;
}

void store_reader_free(store_reader_t *r)
{
	if (r == NULL)
		return;
	store_t *s = r->s;
	store_reader_end(r);
	pthread_mutex_lock(&s->readers_mu);
	if (r->prev)
		r->prev->next = r->next;
	else
		s->readers = r->next;
	if (r->next)
		r->next->prev = r->prev;
	pthread_mutex_unlock(&s->readers_mu);
	mdb_txn_abort(r->txn);
	hdl_arena_free(&r->arena);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

int store_reader_begin(store_reader_t *r)
{
	store_t *s = r->s;
	if (r->active)
		return HDL_EOK;
	if (atomic_load_explicit(&s->growing, memory_order_acquire)) {
		/* let a pending remap go first */
		pthread_mutex_lock(&s->grow_mu);
		pthread_mutex_unlock(&s->grow_mu);
	}
	pthread_mutex_lock(&r->mu);
	int rc = mdb_txn_renew(r->txn);
	if (rc == MDB_MAP_RESIZED) {
		/* Another process grew the map: adopt its size, then retry. */
		pthread_mutex_unlock(&r->mu);
		adopt_map(s);
		pthread_mutex_lock(&r->mu);
		rc = mdb_txn_renew(r->txn);
	}
	if (rc != MDB_SUCCESS) {
		pthread_mutex_unlock(&r->mu);
		return store_err_from_mdb(rc, "mdb_txn_renew");
	}
	r->active = true;
	tls_active_readers++;
	return HDL_EOK;
}

void store_reader_end(store_reader_t *r)
{
	if (r == NULL || !r->active)
		return;
	mdb_txn_reset(r->txn);
	r->active = false;
	tls_active_readers--;
	hdl_arena_reset(&r->arena);
	pthread_mutex_unlock(&r->mu);
}

/** Validate a stored record: U32 count + values, consumed exactly. */
static int check_values(hdl_arena_t *a, const uint8_t *p, size_t len)
{
	hdl_value_t *v = NULL;
	uint32_t n = 0;
	int ret = hdl_values_decode(p, len, a, &v, &n);
	hdl_arena_reset(a);
	return ret;
}

uint64_t store_reader_txn_id(const store_reader_t *r)
{
	if (r == NULL || !r->active)
		return 0;
	return (uint64_t)mdb_txn_id(r->txn);
}

/**
 * Check a stored record's structure: U32 count + values, every length within its limit and the
 * record bounds, consumed exactly. The field contents (UTF-8 of types, value data) were checked
 * when the record was written; this is the cheap walk on every read.
 */
static int check_shape(const uint8_t *p, size_t len)
{
	wire_rd_t rd = wire_rd_init(p, len);
	uint32_t n = wire_rd_u32(&rd);
	if (!rd.err && n > HDL_MAX_VALUES)
		wire_rd_fail(&rd, HDL_ELIMIT);
	for (uint32_t i = 0; i < n && !rd.err; i++) {
		wire_rd_skip(&rd, 4 + 4 + 1 + 4 + 1); /* index, timestamp, TTL type, TTL, perms */
		(void)wire_rd_lbytes(&rd, HDL_MAX_TYPE_LEN);
		(void)wire_rd_lbytes(&rd, HDL_MAX_ARRAY_LEN);
		uint32_t nrefs = wire_rd_u32(&rd);
		if (!rd.err && nrefs > HDL_MAX_REFS)
			wire_rd_fail(&rd, HDL_ELIMIT);
		for (uint32_t j = 0; j < nrefs && !rd.err; j++) {
			(void)wire_rd_lbytes(&rd, HDL_MAX_HANDLE_LEN);
			wire_rd_skip(&rd, 4);
		}
	}
	if (!rd.err && wire_rd_left(&rd) != 0)
		return HDL_ETRAILING;
	return rd.err;
}

/** Length of a name as printed in log lines (long names are cut). */
static int log_len(size_t n)
{
	return n > 120 ? 120 : (int)n;
}

/**
 * Find a handle's record in \p txn (a reader's snapshot or a write batch's txn).
 * \retval HDL_EOK (*vals = the values part, not checked yet), HDL_ENOENT, HDL_ESTORE (LMDB error
 *         or a corrupted long-name header, logged)
 */
static int lookup_txn(store_t *s, MDB_txn *txn, hdl_slice_t handle, hdl_slice_t *vals)
{
	uint8_t norm[STORE_NAME_MAX];
	uint8_t key[STORE_KEY_MAX];
	vals->p = NULL;
	vals->len = 0;
	size_t nlen = store_key(s, handle, norm, sizeof(norm));
	if (nlen == 0)
		return HDL_ENOENT;
	size_t klen = db_key(s, norm, nlen, key);
	if (klen == 0)
		return HDL_ESTORE;
	MDB_val k = mval(key, klen), d;
	int rc = mdb_get(txn, s->dbi_handles, &k, &d);
	if (rc != MDB_SUCCESS)
		return store_err_from_mdb(rc, "mdb_get handles");
	hdl_slice_t want = {norm, (uint32_t)nlen}, name;
	int ret = record_split(s, &k, &d, want, &name, vals);
	if (ret == HDL_EMALF) {
		log_peer(LOG_LVL_ERR, "store: corrupted record for %.*s (%zu bytes): bad long-name header",
		         log_len(nlen), (const char *)norm, d.mv_size);
		return HDL_ESTORE;
	}
	if (ret == HDL_ENOENT)
		log_peer(LOG_LVL_WARN, "store: %.*s: its key holds another name (SHA-256 collision?)",
		         log_len(nlen), (const char *)norm);
	return ret;
}

static int lookup(store_reader_t *r, hdl_slice_t handle, hdl_slice_t *vals)
{
	return lookup_txn(r->s, r->txn, handle, vals);
}

/** Give \p v as \p *vals once its structure checks out (else log, HDL_ESTORE). */
static int shape_checked(hdl_slice_t handle, hdl_slice_t v, hdl_slice_t *vals)
{
	if (check_shape(v.p, v.len) != HDL_EOK) {
		log_peer(LOG_LVL_ERR, "store: corrupted record for %.*s (%u bytes)",
		         log_len(handle.len), (const char *)handle.p, (unsigned)v.len);
		return HDL_ESTORE;
	}
	*vals = v;
	return HDL_EOK;
}

int store_get(store_reader_t *r, hdl_slice_t handle, hdl_slice_t *vals)
{
	hdl_slice_t v;
	vals->p = NULL;
	vals->len = 0;
	if (!r->active)
		return HDL_EINVAL;
	int ret = lookup(r, handle, &v);
	if (ret != HDL_EOK)
		return ret;
	return shape_checked(handle, v, vals);
}

int store_get_values(store_reader_t *r, hdl_slice_t handle, hdl_arena_t *a, hdl_value_t **vals,
                     uint32_t *n)
{
	hdl_slice_t v;
	*vals = NULL;
	*n = 0;
	if (!r->active)
		return HDL_EINVAL;
	int ret = lookup(r, handle, &v);
	if (ret != HDL_EOK)
		return ret;
	ret = hdl_values_decode(v.p, v.len, a, vals, n);
	if (ret == HDL_ENOMEM)
		return ret;
	if (ret != HDL_EOK) {
		log_peer(LOG_LVL_ERR, "store: corrupted record for %.*s: %s", log_len(handle.len),
		         (const char *)handle.p, hdl_strerror(ret));
		*vals = NULL;
		*n = 0;
		return HDL_ESTORE;
	}
	return HDL_EOK;
}

bool store_is_homed(store_reader_t *r, hdl_slice_t prefix)
{
	uint8_t key[STORE_KEY_MAX];
	if (!r->active)
		return false;
	size_t klen = prefix_key(r->s, prefix, key, sizeof(key));
	if (klen == 0)
		return false;
	MDB_val k = mval(key, klen), d;
	int rc = mdb_get(r->txn, r->s->dbi_prefixes, &k, &d);
	if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
		(void)store_err_from_mdb(rc, "mdb_get prefixes");
	return rc == MDB_SUCCESS;
}

int store_prefixes_foreach(store_reader_t *r,
                           int (*cb)(void *ctx, hdl_slice_t prefix, const store_home_rec_t *rec),
                           void *ctx)
{
	MDB_cursor *cur = NULL;
	MDB_val k, d;
	int ret = HDL_EOK;
	if (!r->active)
		return HDL_EINVAL;
	int rc = mdb_cursor_open(r->txn, r->s->dbi_prefixes, &cur);
	if (rc != MDB_SUCCESS)
		return store_err_from_mdb(rc, "mdb_cursor_open prefixes");
	for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); rc == MDB_SUCCESS;
	     rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
		store_home_rec_t hr;
		if (k.mv_size == 0 || k.mv_size > STORE_KEY_MAX ||
		    store_home_rec_decode(d.mv_data, d.mv_size, &hr) != HDL_EOK) {
			log_err(
			    "store: skipping an unreadable homed-prefix record %.*s (%zu bytes)",
			    log_len(k.mv_size), (const char *)k.mv_data, d.mv_size);
			continue;
		}
		if (cb(ctx, (hdl_slice_t){k.mv_data, (uint32_t)k.mv_size}, &hr) != 0)
			goto out;
	}
	if (rc != MDB_NOTFOUND)
		ret = store_err_from_mdb(rc, "mdb_cursor_get prefixes");
out:
	mdb_cursor_close(cur);
	return ret;
}

/** Entries of \p dbi in a short read txn (0 on error, logged). */
static uint64_t dbi_entries(store_t *s, MDB_dbi dbi, const char *what)
{
	MDB_stat st;
	MDB_txn *txn = NULL;
	uint64_t n = 0;
	/* readers_mu keeps map_resize away while this short txn is open */
	pthread_mutex_lock(&s->readers_mu);
	int rc = reader_txn_begin(s, &txn);
	if (rc == MDB_SUCCESS) {
		rc = mdb_stat(txn, dbi, &st);
		if (rc == MDB_SUCCESS)
			n = st.ms_entries;
		mdb_txn_abort(txn);
	}
	pthread_mutex_unlock(&s->readers_mu);
	if (rc != MDB_SUCCESS)
		(void)store_err_from_mdb(rc, what);
	return n;
}

uint64_t store_homed_count(store_t *s)
{
	return dbi_entries(s, s->dbi_prefixes, "mdb_stat prefixes");
}

/** A metadata record in \p txn (a reader's or a batch's). */
static int meta_get_txn(store_t *s, MDB_txn *txn, const char *name, hdl_slice_t *val)
{
	val->p = NULL;
	val->len = 0;
	size_t nlen = name ? strlen(name) : 0;
	if (txn == NULL || nlen == 0 || nlen > STORE_META_NAME_MAX)
		return HDL_EINVAL;
	MDB_val k = mval(name, nlen), d;
	int rc = mdb_get(txn, s->dbi_meta, &k, &d);
	if (rc != MDB_SUCCESS)
		return store_err_from_mdb(rc, "mdb_get meta");
	if (d.mv_size > UINT32_MAX)
		return HDL_ESTORE;
	val->p = d.mv_data;
	val->len = (uint32_t)d.mv_size;
	return HDL_EOK;
}

int store_meta_get(store_reader_t *r, const char *name, hdl_slice_t *val)
{
	val->p = NULL;
	val->len = 0;
	if (!r->active)
		return HDL_EINVAL;
	return meta_get_txn(r->s, r->txn, name, val);
}

/*
 * Handles under \p prefix in key order, starting after the LMDB key \p after (none: from the
 * first); \p cb gets the LMDB key too (the cursor to resume from).
 */
static int foreach_core(store_reader_t *r, hdl_slice_t prefix, hdl_slice_t after,
                        int (*cb)(void *ctx, hdl_slice_t raw, hdl_slice_t key, hdl_slice_t vals),
                        void *ctx)
{
	uint8_t pk[STORE_KEY_MAX + 1];
	size_t plen = 0;
	MDB_cursor *cur = NULL;
	int ret = HDL_EOK;
	if (!r->active)
		return HDL_EINVAL;
	if (prefix.len > 0) {
		plen = prefix_key(r->s, prefix, pk, sizeof(pk) - 1);
		if (plen == 0)
			return HDL_ENAME;
		pk[plen++] = '/';
	}
	/* Every key under the prefix starts with its first slen bytes: long keys keep only the first
	 * long_head() bytes of the name, so a longer prefix is matched on the full names. */
	size_t slen = plen < long_head(r->s) ? plen : long_head(r->s);
	int rc = mdb_cursor_open(r->txn, r->s->dbi_handles, &cur);
	if (rc != MDB_SUCCESS)
		return store_err_from_mdb(rc, "mdb_cursor_open");
	MDB_val k = mval(pk, slen), d;
	if (after.len > 0) {
		k = mval(after.p, after.len);
		rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE);
		if (rc == MDB_SUCCESS && k.mv_size == after.len &&
		    memcmp(k.mv_data, after.p, after.len) == 0)
			rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
	} else {
		rc = slen ? mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE)
		          : mdb_cursor_get(cur, &k, &d, MDB_FIRST);
	}
	while (rc == MDB_SUCCESS) {
		if (k.mv_size < slen || memcmp(k.mv_data, pk, slen) != 0)
			break;
		hdl_slice_t none = {NULL, 0}, ks, vs;
		if (record_split(r->s, &k, &d, none, &ks, &vs) != HDL_EOK ||
		    check_values(&r->arena, vs.p, vs.len) != HDL_EOK) {
			log_peer(LOG_LVL_ERR, "store: skipping corrupted record %.*s",
			         log_len(k.mv_size), (const char *)k.mv_data);
		} else if (ks.len >= plen && memcmp(ks.p, pk, plen) == 0) {
			if (cb(ctx, (hdl_slice_t){k.mv_data, (uint32_t)k.mv_size}, ks, vs) != 0)
				goto out;
		}
		rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
	}
	if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
		ret = store_err_from_mdb(rc, "mdb_cursor_get handles");
out:
	mdb_cursor_close(cur);
	return ret;
}

typedef struct foreach_plain {
	int (*cb)(void *ctx, hdl_slice_t key, hdl_slice_t vals);
	void *ctx;
} foreach_plain_t;

static int foreach_plain_cb(void *ctx, hdl_slice_t raw, hdl_slice_t key, hdl_slice_t vals)
{
	foreach_plain_t *f = ctx;
	(void)raw;
	return f->cb(f->ctx, key, vals);
}

int store_foreach(store_reader_t *r, hdl_slice_t prefix,
                  int (*cb)(void *ctx, hdl_slice_t key, hdl_slice_t vals), void *ctx)
{
	foreach_plain_t f = {cb, ctx};
	return foreach_core(r, prefix, (hdl_slice_t){NULL, 0}, foreach_plain_cb, &f);
}

int store_foreach_from(store_reader_t *r, hdl_slice_t prefix, hdl_slice_t after,
                       int (*cb)(void *ctx, hdl_slice_t raw, hdl_slice_t key, hdl_slice_t vals),
                       void *ctx)
{
	return foreach_core(r, prefix, after, cb, ctx);
}

static uint64_t be64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

/** Decode one txlog record value (U8 op, U32 time, STR handle, [values]). */
static int txrec_decode(const MDB_val *k, const MDB_val *d, store_txrec_t *rec)
{
	if (k->mv_size != 8)
		return HDL_EMALF;
	rec->serial = be64(k->mv_data);
	wire_rd_t rd = wire_rd_init(d->mv_data, d->mv_size);
	rec->op = wire_rd_u8(&rd);
	rec->time = wire_rd_u32(&rd);
	rec->handle = wire_rd_lbytes(&rd, HDL_MAX_HANDLE_LEN);
	size_t left = wire_rd_left(&rd);
	rec->vals = wire_rd_bytes(&rd, left);
	if (rd.err)
		return rd.err;
	if (rec->op < STORE_OP_PUT || rec->op > STORE_OP_UNHOME)
		return HDL_EMALF;
	if ((rec->op == STORE_OP_PUT) != (rec->vals.len > 0))
		return HDL_EMALF;
	return HDL_EOK;
}

int store_txlog_foreach(store_reader_t *r, uint64_t from,
                        int (*cb)(void *ctx, const store_txrec_t *rec), void *ctx)
{
	MDB_cursor *cur = NULL;
	uint8_t kb[8];
	int ret = HDL_EOK;
	if (!r->active)
		return HDL_EINVAL;
	int rc = mdb_cursor_open(r->txn, r->s->dbi_txlog, &cur);
	if (rc != MDB_SUCCESS)
		return store_err_from_mdb(rc, "mdb_cursor_open txlog");
	put_be64(kb, from);
	MDB_val k = mval(kb, 8), d;
	rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE);
	while (rc == MDB_SUCCESS) {
		store_txrec_t rec;
		if (txrec_decode(&k, &d, &rec) != HDL_EOK) {
			log_err("store: malformed txlog record");
			ret = HDL_ESTORE;
			goto out;
		}
		if (cb(ctx, &rec) != 0)
			goto out;
		rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
	}
	if (rc != MDB_NOTFOUND)
		ret = store_err_from_mdb(rc, "mdb_cursor_get txlog");
out:
	mdb_cursor_close(cur);
	return ret;
}

/** Last key of \p dbi in \p txn, a U64 big-endian (0 when empty): txlog and audit. */
static int last_key(MDB_txn *txn, MDB_dbi dbi, uint64_t *last)
{
	MDB_cursor *cur = NULL;
	*last = 0;
	int rc = mdb_cursor_open(txn, dbi, &cur);
	if (rc != MDB_SUCCESS)
		return store_err_from_mdb(rc, "mdb_cursor_open (last key)");
	MDB_val k, d;
	rc = mdb_cursor_get(cur, &k, &d, MDB_LAST);
	mdb_cursor_close(cur);
	if (rc == MDB_NOTFOUND)
		return HDL_EOK;
	if (rc != MDB_SUCCESS)
		return store_err_from_mdb(rc, "mdb_cursor_get (last key)");
	if (k.mv_size != 8)
		return HDL_ESTORE;
	*last = be64(k.mv_data);
	return HDL_EOK;
}

/** Last txlog serial visible in \p txn (0 when empty). */
static int txlog_last(store_t *s, MDB_txn *txn, uint64_t *serial)
{
	return last_key(txn, s->dbi_txlog, serial);
}

uint64_t store_reader_txlog_last(store_reader_t *r)
{
	uint64_t serial = 0;
	if (r != NULL && r->active)
		(void)txlog_last(r->s, r->txn, &serial);
	return serial;
}

uint64_t store_txlog_last(store_t *s)
{
	uint64_t serial = 0;
	MDB_txn *txn = NULL;
	pthread_mutex_lock(&s->readers_mu);
	if (reader_txn_begin(s, &txn) == MDB_SUCCESS) {
		(void)txlog_last(s, txn, &serial);
		mdb_txn_abort(txn);
	}
	pthread_mutex_unlock(&s->readers_mu);
	return serial;
}

uint64_t store_count(store_t *s)
{
	return dbi_entries(s, s->dbi_handles, "mdb_stat");
}

/* ---- writing ------------------------------------------------------------------------------ */

static int batch_txn_begin(store_batch_t *b)
{
	store_t *s = b->s;
	int rc = mdb_txn_begin(s->env, NULL, 0, &b->txn);
	if (rc == MDB_MAP_RESIZED) {
		int ret = map_resize(s, 0);
		if (ret != HDL_EOK)
			return ret;
		rc = mdb_txn_begin(s->env, NULL, 0, &b->txn);
	}
	if (rc != MDB_SUCCESS) {
		b->txn = NULL;
		return store_err_from_mdb(rc, "mdb_txn_begin (write)");
	}
	if (s->opts.txlog) {
		int ret = txlog_last(s, b->txn, &b->serial);
		if (ret != HDL_EOK) {
			mdb_txn_abort(b->txn);
			b->txn = NULL;
			return ret;
		}
	}
	int ret = last_key(b->txn, s->dbi_audit, &b->audit_last);
	if (ret != HDL_EOK) {
		mdb_txn_abort(b->txn);
		b->txn = NULL;
		return ret;
	}
	return HDL_EOK;
}

int store_batch_begin(store_t *s, store_batch_t **out)
{
	*out = NULL;
	if (s->opts.read_only)
		return HDL_EINVAL;
	pthread_mutex_lock(&s->write_mu);
	store_batch_t *b = &s->batch;
	b->active = true;
	b->err = HDL_EOK;
	b->log_len = 0;
	b->serial = 0;
	b->sp = false;
	b->ptxn = NULL;
	b->now = (uint32_t)time(NULL);
	int ret = batch_txn_begin(b);
	if (ret != HDL_EOK) {
		b->active = false;
		pthread_mutex_unlock(&s->write_mu);
		return ret;
	}
	*out = b;
	return HDL_EOK;
}

static int grow_buf(uint8_t **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return HDL_EOK;
	size_t n = *cap ? *cap : 4096;
	while (n < need) {
		if (n > SIZE_MAX / 2)
			return HDL_ENOMEM;
		n *= 2;
	}
	uint8_t *p = realloc(*buf, n);
	if (p == NULL)
		return HDL_ENOMEM;
	*buf = p;
	*cap = n;
	return HDL_EOK;
}

/** Append a txlog record for the current change. \return mdb rc or -1 on ENOMEM */
static int txlog_append(store_batch_t *b, uint8_t op, hdl_slice_t name, hdl_slice_t vals)
{
	store_t *s = b->s;
	size_t need = 1 + 4 + 4 + (size_t)name.len + vals.len;
	if (grow_buf(&b->rec, &b->rec_cap, need) != HDL_EOK)
		return -1;
	wire_wr_t wr = wire_wr_init(b->rec, b->rec_cap);
	wire_wr_u8(&wr, op);
	wire_wr_u32(&wr, b->now);
	wire_wr_lbytes(&wr, name.p, name.len);
	wire_wr_bytes(&wr, vals.p, vals.len);
	uint8_t kb[8];
	put_be64(kb, b->serial + 1);
	MDB_val k = mval(kb, 8), d = mval(b->rec, wr.pos);
	int rc = mdb_put(b->txn, s->dbi_txlog, &k, &d, MDB_APPEND);
	if (rc == MDB_SUCCESS)
		b->serial++;
	return rc;
}

/* ---- disk full ---------------------------------------------------------------------------- */

/** Is the file system holding the store (nearly) out of space? false when it cannot be told. */
static bool fs_full(const store_t *s)
{
	struct statvfs st;
	if (statvfs(s->opts.path, &st) != 0)
		return false;
	/* root may write into the reserved blocks, others only into the available ones */
	uint64_t blocks = geteuid() == 0 ? (uint64_t)st.f_bfree : (uint64_t)st.f_bavail;
	return blocks * (uint64_t)st.f_frsize < STORE_FULL_BELOW;
}

/**
 * hdl_err_t of a failed LMDB write, naming a full disk: ENOSPC, EDQUOT, or the EIO LMDB gives
 * for a short write when the file system has no room left (it does not pass ENOSPC through).
 * \return HDL_ESTORE (store.disk_full set and "disk full" logged), else store_err_from_mdb()
 */
static int write_err(store_t *s, int rc, const char *what)
{
	if (rc == ENOSPC || rc == EDQUOT || (rc == EIO && fs_full(s))) {
		atomic_store(&s->disk_full, true);
		log_err("store: %s: disk full (no space left on the file system holding %s)", what,
		        s->opts.path);
		return HDL_ESTORE;
	}
	return store_err_from_mdb(rc, what);
}

bool store_disk_full(store_t *s)
{
	return s != NULL && atomic_load(&s->disk_full);
}

const char *store_strerror(store_t *s, int err)
{
	if ((err == HDL_ESPACE && s == NULL) ||
	    ((err == HDL_ESTORE || err == HDL_ESPACE) && store_disk_full(s)))
		return "disk full (no space left on the device)";
	return hdl_strerror(err);
}

/* ---- homed prefixes ------------------------------------------------------------------------ */

/**
 * Home (\p home: add the \p src bits) or unhome (clear them; the record goes when no source is
 * left, or at once for STORE_HOME_ALL) the folded prefix \p key in the batch's txn. The txlog
 * gets STORE_OP_HOME / STORE_OP_UNHOME when the prefix's homed state changes, nothing otherwise.
 * \return an mdb rc (MDB_NOTFOUND: an unhome with nothing to clear), -1 when out of memory
 */
static int exec_home(store_batch_t *b, bool home, const uint8_t *key, size_t klen, uint32_t src)
{
	store_t *s = b->s;
	MDB_val k = mval(key, klen), d;
	store_home_rec_t cur = {0, 0};
	uint8_t enc[STORE_HOME_REC_LEN];
	int rc = mdb_get(b->txn, s->dbi_prefixes, &k, &d);
	if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
		return rc;
	bool was = rc == MDB_SUCCESS, now;
	if (was && store_home_rec_decode(d.mv_data, d.mv_size, &cur) != HDL_EOK) {
		log_warn("store: homed prefix %.*s: unreadable record (%zu bytes), rewritten",
		         (int)klen, (const char *)key, d.mv_size);
		cur.sources = 0;
		cur.since = 0;
	}
	store_home_rec_t next = cur;
	if (home) {
		next.sources |= src;
		if (!was)
			next.since = b->now;
		if (was && next.sources == cur.sources && d.mv_size == STORE_HOME_REC_LEN)
			return MDB_SUCCESS; /* nothing changes */
		d = mval(enc, store_home_rec_encode(&next, enc));
		rc = mdb_put(b->txn, s->dbi_prefixes, &k, &d, 0);
		now = true;
	} else {
		if (!was || (src != STORE_HOME_ALL && !(cur.sources & src)))
			return MDB_NOTFOUND;
		next.sources &= ~src;
		now = src != STORE_HOME_ALL && next.sources != 0;
		if (now) {
			d = mval(enc, store_home_rec_encode(&next, enc));
			rc = mdb_put(b->txn, s->dbi_prefixes, &k, &d, 0);
		} else {
			rc = mdb_del(b->txn, s->dbi_prefixes, &k, NULL);
		}
	}
	if (rc == MDB_SUCCESS && was != now && s->opts.txlog) {
		hdl_slice_t none = {NULL, 0}, name = {key, (uint32_t)klen};
		rc = txlog_append(b, now ? STORE_OP_HOME : STORE_OP_UNHOME, name, none);
	}
	return rc;
}

/** Map the mdb rc of one batch operation to its hdl_err_t (see exec_op()). */
static int op_result(store_batch_t *b, int rc)
{
	switch (rc) {
	case MDB_SUCCESS: return HDL_EOK;
	case -1: return HDL_ENOMEM;
	case MDB_KEYEXIST: return HDL_EEXIST;
	case MDB_NOTFOUND: return HDL_ENOENT;
	case MDB_MAP_FULL: return HDL_ESPACE;
	default: return write_err(b->s, rc, "mdb_put/mdb_del");
	}
}

/* ---- audit trail (the write path's record of every change) ---------------------------------
 * "audit": key = U64 big-endian (time << 32 | sequence within that second), value = U32 length
 * + the "audit_idx" key of the handle (empty when the entry names no valid handle) + the record
 * (node/store/audit.h encodes it; the store does not look inside). Keys are handed out in
 * increasing order: an entry whose time is before the last key's (the clock went back) takes the
 * last key's second, so the trail stays in time order and appends at the end.
 * "audit_idx" (MDB_DUPSORT | MDB_DUPFIXED): key = the handle's LMDB key in "handles" (db_key of
 * the normalized name), data = the 8-byte audit keys of its entries, oldest first. */

/* Replay-log codes of the audit trail's operations (after enum log_op's). */
#define LOG_AUDIT 20       /* name = handle to index under, val = U32 time + record */
#define LOG_AUDIT_PRUNE 21 /* val = U32 before + U32 max */

/** Append one audit entry (LOG_AUDIT). \return mdb rc, or -1 on ENOMEM */
static int audit_put(store_batch_t *b, hdl_slice_t handle, hdl_slice_t val)
{
	store_t *s = b->s;
	uint8_t norm[STORE_NAME_MAX];
	uint8_t ik[STORE_KEY_MAX];
	size_t iklen = 0;
	if (val.len < 4)
		return MDB_BAD_VALSIZE;
	uint32_t t = be32(val.p);
	hdl_slice_t rec = {val.p + 4, val.len - 4};
	size_t nlen = handle.len ? store_key(s, handle, norm, sizeof(norm)) : 0;
	if (nlen > 0 && (iklen = db_key(s, norm, nlen, ik)) == 0)
		return MDB_INCOMPATIBLE; /* the key digest failed (logged) */
	uint32_t lt = (uint32_t)(b->audit_last >> 32), lseq = (uint32_t)b->audit_last;
	uint64_t id;
	if (b->audit_last == 0 || t > lt)
		id = (uint64_t)t << 32;
	else if (lseq < UINT32_MAX)
		id = (uint64_t)lt << 32 | (lseq + 1u);
	else
		id = ((uint64_t)lt + 1u) << 32;
	if (grow_buf(&b->arec, &b->arec_cap, 4 + iklen + rec.len) != HDL_EOK)
		return -1;
	wire_wr_t wr = wire_wr_init(b->arec, b->arec_cap);
	wire_wr_lbytes(&wr, ik, (uint32_t)iklen);
	wire_wr_bytes(&wr, rec.p, rec.len);
	uint8_t kb[8];
	put_be64(kb, id);
	MDB_val k = mval(kb, 8), d = mval(b->arec, wr.pos);
	int rc = mdb_put(b->txn, s->dbi_audit, &k, &d, MDB_APPEND);
	if (rc == MDB_SUCCESS && iklen > 0) {
		MDB_val xk = mval(ik, iklen), xd = mval(kb, 8);
		rc = mdb_put(b->txn, s->dbi_audit_idx, &xk, &xd, 0);
	}
	if (rc == MDB_SUCCESS)
		b->audit_last = id;
	return rc;
}

/** Remove up to max of the oldest entries older than before (LOG_AUDIT_PRUNE). \return mdb rc */
static int audit_prune(store_batch_t *b, hdl_slice_t val)
{
	store_t *s = b->s;
	MDB_cursor *cur = NULL;
	b->pruned = 0;
	if (val.len != 8)
		return MDB_BAD_VALSIZE;
	uint32_t before = be32(val.p), max = be32(val.p + 4);
	int rc = mdb_cursor_open(b->txn, s->dbi_audit, &cur);
	if (rc != MDB_SUCCESS)
		return rc;
	MDB_val k, d;
	rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST);
	while (rc == MDB_SUCCESS && b->pruned < max) {
		if (k.mv_size != 8) {
			rc = MDB_CORRUPTED;
			break;
		}
		if ((uint32_t)(be64(k.mv_data) >> 32) >= before)
			break;
		wire_rd_t rd = wire_rd_init(d.mv_data, d.mv_size);
		hdl_slice_t ik = wire_rd_lbytes(&rd, STORE_KEY_MAX);
		if (!rd.err && ik.len > 0) {
			uint8_t kb[8];
			memcpy(kb, k.mv_data, 8);
			MDB_val xk = mval(ik.p, ik.len), xd = mval(kb, 8);
			rc = mdb_del(b->txn, s->dbi_audit_idx, &xk, &xd);
			if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
				break;
		}
		rc = mdb_cursor_del(cur, 0);
		if (rc != MDB_SUCCESS)
			break;
		b->pruned++;
		rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT); /* after a delete: the one that followed */
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

/**
 * Execute one operation in the current txn.
 * \retval HDL_EOK; HDL_ESPACE = the map is full (txn must be aborted and the batch replayed);
 *         HDL_EEXIST, HDL_ENOENT (txn still usable); HDL_ESTORE, HDL_ENOMEM (fatal for the batch)
 */
static int exec_op(store_batch_t *b, uint8_t op, hdl_slice_t name, hdl_slice_t val)
{
	store_t *s = b->s;
	uint8_t key[STORE_KEY_MAX];
	uint8_t norm[STORE_NAME_MAX];
	size_t klen, nlen = 0;
	int rc;
	uint8_t txop = 0;
	MDB_dbi dbi;
	unsigned flags = 0;
	MDB_val k, d;

	switch (op) {
	case LOG_PUT:
	case LOG_PUT_NEW:
	case LOG_DEL:
		nlen = store_key(s, name, norm, sizeof(norm));
		if (nlen == 0)
			return HDL_ENAME;
		klen = db_key(s, norm, nlen, key);
		if (klen == 0)
			return HDL_ESTORE;
		dbi = s->dbi_handles;
		txop = op == LOG_DEL ? STORE_OP_DEL : STORE_OP_PUT;
		flags = op == LOG_PUT_NEW ? MDB_NOOVERWRITE : 0;
		break;
	case LOG_HOME:
	case LOG_UNHOME:
		klen = prefix_key(s, name, key, sizeof(key));
		if (klen == 0)
			return HDL_ENAME;
		if (val.len != 4)
			return HDL_EINVAL;
		return op_result(b, exec_home(b, op == LOG_HOME, key, klen,
		                              (uint32_t)val.p[0] << 24 | (uint32_t)val.p[1] << 16 |
		                                  (uint32_t)val.p[2] << 8 | val.p[3]));
	case LOG_META:
	case LOG_META_DEL:
		klen = name.len;
		if (klen == 0 || klen > STORE_META_NAME_MAX)
			return HDL_EINVAL;
		memcpy(key, name.p, klen);
		dbi = s->dbi_meta;
		break;
	default:
		return HDL_EINVAL;
	}
	if (klen == 0)
		return HDL_ENAME;
	k = mval(key, klen);
	if (op == LOG_DEL || op == LOG_META_DEL) {
		rc = mdb_del(b->txn, dbi, &k, NULL);
	} else if (nlen > s->max_key) {
		/* long name: U32 marker, STR full normalized name, then the values */
		size_t need = 4 + 4 + nlen + (size_t)val.len;
		if (grow_buf(&b->lrec, &b->lrec_cap, need) != HDL_EOK)
			return HDL_ENOMEM;
		wire_wr_t wr = wire_wr_init(b->lrec, b->lrec_cap);
		wire_wr_u32(&wr, STORE_LONG_MARK);
		wire_wr_lbytes(&wr, norm, nlen);
		wire_wr_bytes(&wr, val.p, val.len);
		d = mval(b->lrec, wr.pos);
		rc = mdb_put(b->txn, dbi, &k, &d, flags);
	} else {
		d = mval(val.p, val.len);
		rc = mdb_put(b->txn, dbi, &k, &d, flags);
	}
	if (rc == MDB_SUCCESS && txop && s->opts.txlog) {
		hdl_slice_t none = {NULL, 0};
		rc = txlog_append(b, txop, name, txop == STORE_OP_PUT ? val : none);
	}
	return op_result(b, rc);
}

/* ---- statistics (node/store/stats.h: the records; node/server/stats.c writes them) -------- */

#define LOG_STATS     30 /* name = stats key, val = record */
#define LOG_STATS_DEL 31 /* name = stats key */

static int stats_exec(store_batch_t *b, uint8_t op, hdl_slice_t key, hdl_slice_t val)
{
	store_t *s = b->s;
	if (!s->has_stats || key.len == 0 || key.len > s->max_key)
		return HDL_EINVAL;
	MDB_val k = mval(key.p, key.len), d = mval(val.p, val.len);
	int rc = op == LOG_STATS_DEL ? mdb_del(b->txn, s->dbi_stats, &k, NULL)
	                             : mdb_put(b->txn, s->dbi_stats, &k, &d, 0);
	return op_result(b, rc);
}

/**
 * Execute one logged operation: the audit trail's own (handled here, so exec_op stays about
 * handles, prefixes and meta) or exec_op's. Same results as exec_op.
 */
static int exec_any(store_batch_t *b, uint8_t op, hdl_slice_t name, hdl_slice_t val)
{
	int rc;
	if (op == LOG_STATS || op == LOG_STATS_DEL)
		return stats_exec(b, op, name, val);
	if (op == LOG_AUDIT)
		rc = audit_put(b, name, val);
	else if (op == LOG_AUDIT_PRUNE)
		rc = audit_prune(b, val);
	else
		return exec_op(b, op, name, val);
	if (rc == -1)
		return HDL_ENOMEM;
	return rc == MDB_MAP_FULL ? HDL_ESPACE : store_err_from_mdb(rc, "audit trail");
}

/** Abort the batch's txn, and with it the child of an open savepoint. */
static void batch_txn_abort(store_batch_t *b)
{
	MDB_txn *root = b->sp ? b->ptxn : b->txn;
	if (root)
		mdb_txn_abort(root);
	b->txn = NULL;
	b->ptxn = NULL;
}

/** Execute the replay log's entries in [from, to) in the current txn. */
static int replay(store_batch_t *b, size_t from, size_t to)
{
	size_t pos = from;
	while (pos < to) {
		const uint8_t *p = b->log + pos;
		uint8_t op = p[0];
		uint32_t nl, vl;
		memcpy(&nl, p + 1, 4);
		memcpy(&vl, p + 5, 4);
		hdl_slice_t name = {p + 9, nl};
		hdl_slice_t val = {p + 9 + nl, vl};
		pos += 9 + (size_t)nl + vl;
		int ret = exec_any(b, op, name, val);
		if (ret != HDL_EOK)
			return ret;
	}
	return HDL_EOK;
}

/**
 * Abort the txn, grow the map, begin again and replay the log. With a savepoint open, the log up
 * to the savepoint goes into the new txn and the rest into a new child, so a later rollback still
 * undoes exactly the savepoint's operations. Sets b->err on failure.
 */
static int batch_regrow(store_batch_t *b)
{
	store_t *s = b->s;
	for (;;) {
		batch_txn_abort(b);
		uint64_t cur = s->map_size;
		if (cur >= s->map_max) {
			log_err("store: map full at map_size_max (%llu bytes)",
			        (unsigned long long)s->map_max);
			return b->err = HDL_ESPACE;
		}
		uint64_t next = cur > s->map_max / 2 ? s->map_max : cur * 2;
		int ret = map_resize(s, next);
		if (ret != HDL_EOK)
			return b->err = ret;
		log_notice("store: map grown to %llu bytes", (unsigned long long)s->map_size);
		bool sp = b->sp;
		b->sp = false; /* the txn being rebuilt is the batch's own */
		if ((ret = batch_txn_begin(b)) != HDL_EOK) {
			b->sp = sp;
			return b->err = ret;
		}
		size_t mid = sp ? b->sp_log : b->log_len;
		ret = replay(b, 0, mid);
		if (ret == HDL_EOK && sp) {
			MDB_txn *child = NULL;
			int rc = mdb_txn_begin(s->env, b->txn, 0, &child);
			if (rc != MDB_SUCCESS) {
				ret = store_err_from_mdb(rc, "mdb_txn_begin (savepoint)");
			} else {
				b->ptxn = b->txn;
				b->txn = child;
				b->sp_serial = b->serial;
				b->sp_audit = b->audit_last;
				ret = replay(b, mid, b->log_len);
			}
		}
		b->sp = sp && b->ptxn != NULL;
		if (ret == HDL_ESPACE)
			continue; /* still too small: grow again */
		if (ret != HDL_EOK) {
			log_err("store: batch replay failed: %s", hdl_strerror(ret));
			batch_txn_abort(b);
			b->sp = sp;
			return b->err = HDL_ESTORE;
		}
		return HDL_EOK;
	}
}

static int log_append(store_batch_t *b, uint8_t op, hdl_slice_t name, hdl_slice_t val)
{
	size_t need = b->log_len + 9 + (size_t)name.len + val.len;
	if (grow_buf(&b->log, &b->log_cap, need) != HDL_EOK)
		return HDL_ENOMEM;
	uint8_t *p = b->log + b->log_len;
	p[0] = op;
	memcpy(p + 1, &name.len, 4);
	memcpy(p + 5, &val.len, 4);
	if (name.len)
		memcpy(p + 9, name.p, name.len);
	if (val.len)
		memcpy(p + 9 + name.len, val.p, val.len);
	b->log_len = need;
	return HDL_EOK;
}

/** Run one new operation: execute, grow+replay on map full, then remember it for replays. */
static int batch_op(store_batch_t *b, uint8_t op, hdl_slice_t name, hdl_slice_t val)
{
	if (b == NULL || !b->active)
		return HDL_EINVAL;
	if (b->err)
		return b->err;
	if (b->txn == NULL)
		return HDL_ESTORE;
	int ret;
	for (;;) {
		ret = exec_any(b, op, name, val);
		if (ret != HDL_ESPACE)
			break;
		if (batch_regrow(b) != HDL_EOK)
			return b->err;
	}
	if (ret == HDL_EOK) {
		ret = log_append(b, op, name, val);
		if (ret != HDL_EOK)
			b->err = ret;
	} else if (ret == HDL_ESTORE || ret == HDL_ENOMEM) {
		b->err = ret; /* the txn may be unusable: make the batch fail */
	}
	return ret;
}

int store_batch_put(store_batch_t *b, hdl_slice_t handle, hdl_slice_t vals, bool overwrite)
{
	if (b == NULL)
		return HDL_EINVAL;
	if (vals.p == NULL || check_values(&b->arena, vals.p, vals.len) != HDL_EOK)
		return HDL_EMALF;
	return batch_op(b, overwrite ? LOG_PUT : LOG_PUT_NEW, handle, vals);
}

int store_batch_del(store_batch_t *b, hdl_slice_t handle)
{
	hdl_slice_t none = {NULL, 0};
	return batch_op(b, LOG_DEL, handle, none);
}

int store_batch_home(store_batch_t *b, hdl_slice_t prefix, bool home)
{
	return store_batch_home_src(b, prefix, home, home ? STORE_HOME_ADMIN : STORE_HOME_ALL);
}

int store_batch_home_src(store_batch_t *b, hdl_slice_t prefix, bool home, uint32_t sources)
{
	uint8_t src[4] = {(uint8_t)(sources >> 24), (uint8_t)(sources >> 16),
	                  (uint8_t)(sources >> 8), (uint8_t)sources};
	if (sources == 0 || (sources & ~STORE_HOME_ALL) != 0)
		return HDL_EINVAL;
	return batch_op(b, home ? LOG_HOME : LOG_UNHOME, prefix, (hdl_slice_t){src, sizeof(src)});
}

/** Is the folded prefix \p key among the \p n folded keys of \p keys (STORE_KEY_MAX apart)? */
static bool key_listed(const uint8_t *key, size_t klen, const uint8_t *keys, const size_t *lens,
                       size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (lens[i] == klen && memcmp(keys + i * STORE_KEY_MAX, key, klen) == 0)
			return true;
	}
	return false;
}

/**
 * The prefixes of the batch's txn that carry \p src and are not among the \p n folded \p keys:
 * their keys (STORE_KEY_MAX apart) and sources into a new \p *out / \p *outsrc.
 */
static int home_stale(store_batch_t *b, uint32_t src, const uint8_t *keys, const size_t *lens,
                      size_t n, uint8_t **out, uint32_t **outsrc, size_t **outlen, size_t *nout)
{
	MDB_cursor *cur = NULL;
	MDB_val k, d;
	size_t cap = 0;
	*nout = 0;
	int rc = mdb_cursor_open(b->txn, b->s->dbi_prefixes, &cur);
	if (rc != MDB_SUCCESS)
		return store_err_from_mdb(rc, "mdb_cursor_open prefixes");
	for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); rc == MDB_SUCCESS;
	     rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
		store_home_rec_t hr;
		if (store_home_rec_decode(d.mv_data, d.mv_size, &hr) != HDL_EOK ||
		    !(hr.sources & src) || k.mv_size > STORE_KEY_MAX ||
		    key_listed(k.mv_data, k.mv_size, keys, lens, n))
			continue;
		if (*nout == cap) {
			size_t nc = cap ? cap * 2 : 8;
			uint8_t *o = realloc(*out, nc * STORE_KEY_MAX);
			if (o)
				*out = o;
			uint32_t *os = realloc(*outsrc, nc * sizeof(uint32_t));
			if (os)
				*outsrc = os;
			size_t *ol = realloc(*outlen, nc * sizeof(size_t));
			if (ol)
				*outlen = ol;
			if (!o || !os || !ol) {
				mdb_cursor_close(cur);
				return HDL_ENOMEM;
			}
			cap = nc;
		}
		memcpy(*out + *nout * STORE_KEY_MAX, k.mv_data, k.mv_size);
		(*outlen)[*nout] = k.mv_size;
		(*outsrc)[*nout] = hr.sources;
		(*nout)++;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? HDL_EOK : store_err_from_mdb(rc, "mdb_cursor_get prefixes");
}

int store_batch_home_sync(store_batch_t *b, uint32_t src, const char *const *prefixes, size_t n,
                          void (*cb)(void *ctx, hdl_slice_t prefix, bool added, uint32_t sources),
                          void *ctx)
{
	uint8_t *keys = NULL, *stale = NULL;
	size_t *lens = NULL, *stale_len = NULL, nstale = 0;
	uint32_t *stale_src = NULL;
	int ret = HDL_EINVAL;
	if (b == NULL || !b->active || src == 0 || (src & (src - 1)) != 0 ||
	    (src & ~STORE_HOME_ALL) != 0)
		return HDL_EINVAL;
	if (b->err)
		return b->err;
	if (b->txn == NULL)
		return HDL_ESTORE;
	ret = HDL_ENOMEM;
	keys = malloc((n ? n : 1) * STORE_KEY_MAX);
	lens = malloc((n ? n : 1) * sizeof(size_t));
	if (!keys || !lens)
		goto out;
	for (size_t i = 0; i < n; i++) {
		lens[i] = prefix_key(b->s, hdl_slice_str(prefixes[i]), keys + i * STORE_KEY_MAX,
		                     STORE_KEY_MAX);
		if (lens[i] == 0) {
			ret = HDL_ENAME;
			goto out;
		}
	}
	ret = home_stale(b, src, keys, lens, n, &stale, &stale_src, &stale_len, &nstale);
	for (size_t i = 0; ret == HDL_EOK && i < nstale; i++) {
		hdl_slice_t p = {stale + i * STORE_KEY_MAX, (uint32_t)stale_len[i]};
		ret = store_batch_home_src(b, p, false, src);
		if (ret == HDL_EOK && cb)
			cb(ctx, p, false, stale_src[i] & ~src);
	}
	for (size_t i = 0; ret == HDL_EOK && i < n; i++) {
		hdl_slice_t p = {keys + i * STORE_KEY_MAX, (uint32_t)lens[i]};
		MDB_val k = mval(p.p, p.len), d;
		store_home_rec_t hr = {0, 0};
		int rc = b->txn ? mdb_get(b->txn, b->s->dbi_prefixes, &k, &d) : MDB_BAD_TXN;
		if (rc == MDB_SUCCESS &&
		    store_home_rec_decode(d.mv_data, d.mv_size, &hr) == HDL_EOK &&
		    (hr.sources & src))
			continue; /* already there (or listed twice) */
		if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) {
			ret = store_err_from_mdb(rc, "mdb_get prefixes");
			break;
		}
		ret = store_batch_home_src(b, p, true, src);
		if (ret == HDL_EOK && cb)
			cb(ctx, p, true, hr.sources | src);
	}
out:
	free(keys);
	free(lens);
	free(stale);
	free(stale_src);
	free(stale_len);
	return ret;
}

int store_batch_meta_put(store_batch_t *b, const char *name, hdl_slice_t val)
{
	if (name == NULL)
		return HDL_EINVAL;
	return batch_op(b, LOG_META, hdl_slice_str(name), val);
}

int store_batch_meta_del(store_batch_t *b, const char *name)
{
	hdl_slice_t none = {NULL, 0};
	if (name == NULL)
		return HDL_EINVAL;
	return batch_op(b, LOG_META_DEL, hdl_slice_str(name), none);
}

int store_batch_meta_get(store_batch_t *b, const char *name, hdl_slice_t *val)
{
	val->p = NULL;
	val->len = 0;
	if (b == NULL)
		return HDL_EINVAL;
	int usable = store_batch_failed(b);
	if (usable != HDL_EOK)
		return usable;
	return meta_get_txn(b->s, b->txn, name, val);
}

static void batch_release(store_batch_t *b)
{
	b->txn = NULL;
	b->ptxn = NULL;
	b->sp = false;
	b->active = false;
	b->log_len = 0;
	/* don't keep a huge replay log around after a bulk batch */
	if (b->log_cap > (64u << 20)) {
		free(b->log);
		b->log = NULL;
		b->log_cap = 0;
	}
	pthread_mutex_unlock(&b->s->write_mu);
}

int store_batch_commit(store_batch_t *b)
{
	if (b == NULL || !b->active)
		return HDL_EINVAL;
	int ret = b->err;
	if (ret == HDL_EOK && b->txn == NULL)
		ret = HDL_ESTORE;
	if (b->sp) {
		log_err("store: batch committed with a savepoint open");
		store_batch_abort(b);
		return HDL_EINVAL;
	}
	if (ret != HDL_EOK) {
		if (b->txn)
			mdb_txn_abort(b->txn);
		batch_release(b);
		if (store_disk_full(b->s))
			return HDL_ESPACE;
		return ret == HDL_ENOMEM || ret == HDL_ESPACE ? ret : HDL_ESTORE;
	}
	for (;;) {
		int rc = mdb_txn_commit(b->txn);
		b->txn = NULL;
		if (rc == MDB_SUCCESS) {
			atomic_store(&b->s->disk_full, false);
			break;
		}
		if (rc != MDB_MAP_FULL) {
			ret = write_err(b->s, rc, "mdb_txn_commit");
			ret = ret == HDL_EOK ? HDL_ESTORE : ret;
			if (store_disk_full(b->s))
				ret = HDL_ESPACE;
			break;
		}
		if ((ret = batch_regrow(b)) != HDL_EOK)
			break;
	}
	if (b->txn) {
		mdb_txn_abort(b->txn);
		b->txn = NULL;
	}
	batch_release(b);
	return ret;
}

void store_batch_abort(store_batch_t *b)
{
	if (b == NULL || !b->active)
		return;
	batch_txn_abort(b);
	batch_release(b);
}

/* ---- write-path additions: reads in the write txn, savepoints, audit trail ------------------ */

int store_batch_failed(const store_batch_t *b)
{
	if (b == NULL || !b->active)
		return HDL_EINVAL;
	if (b->err)
		return b->err;
	return b->txn == NULL ? HDL_ESTORE : HDL_EOK;
}

int store_batch_get(store_batch_t *b, hdl_slice_t handle, hdl_slice_t *vals)
{
	hdl_slice_t v;
	vals->p = NULL;
	vals->len = 0;
	int usable = store_batch_failed(b);
	if (usable != HDL_EOK)
		return usable;
	int ret = lookup_txn(b->s, b->txn, handle, &v);
	if (ret != HDL_EOK)
		return ret;
	return shape_checked(handle, v, vals);
}

int store_batch_is_homed(store_batch_t *b, hdl_slice_t prefix)
{
	uint8_t key[STORE_KEY_MAX];
	int usable = store_batch_failed(b);
	if (usable != HDL_EOK)
		return usable;
	size_t klen = prefix_key(b->s, prefix, key, sizeof(key));
	if (klen == 0)
		return HDL_ENOENT;
	MDB_val k = mval(key, klen), d;
	return store_err_from_mdb(mdb_get(b->txn, b->s->dbi_prefixes, &k, &d), "mdb_get prefixes");
}

int store_batch_savepoint(store_batch_t *b)
{
	if (b != NULL && b->sp)
		return HDL_EINVAL;
	int usable = store_batch_failed(b);
	if (usable != HDL_EOK)
		return usable;
	MDB_txn *child = NULL;
	int rc = mdb_txn_begin(b->s->env, b->txn, 0, &child);
	if (rc != MDB_SUCCESS) {
		int ret = store_err_from_mdb(rc, "mdb_txn_begin (savepoint)");
		return b->err = ret == HDL_ENOMEM ? ret : HDL_ESTORE;
	}
	b->ptxn = b->txn;
	b->txn = child;
	b->sp = true;
	b->sp_log = b->log_len;
	b->sp_serial = b->serial;
	b->sp_audit = b->audit_last;
	return HDL_EOK;
}

int store_batch_release(store_batch_t *b)
{
	if (b == NULL || !b->active || !b->sp)
		return HDL_EINVAL;
	if (b->err || b->txn == NULL) {
		store_batch_rollback(b);
		return b->err ? b->err : HDL_ESTORE;
	}
	int rc = mdb_txn_commit(b->txn); /* frees the child, also on failure */
	b->txn = b->ptxn;
	b->ptxn = NULL;
	b->sp = false;
	if (rc == MDB_SUCCESS)
		return HDL_EOK;
	if (rc == MDB_MAP_FULL) /* its operations are in the log: rebuild with them */
		return batch_regrow(b) == HDL_EOK ? HDL_EOK : b->err;
	int ret = store_err_from_mdb(rc, "mdb_txn_commit (savepoint)");
	return b->err = ret == HDL_ENOMEM ? ret : HDL_ESTORE;
}

void store_batch_rollback(store_batch_t *b)
{
	if (b == NULL || !b->active || !b->sp)
		return;
	if (b->txn)
		mdb_txn_abort(b->txn);
	b->txn = b->ptxn;
	b->ptxn = NULL;
	b->sp = false;
	b->log_len = b->sp_log;
	b->serial = b->sp_serial;
	b->audit_last = b->sp_audit;
}

int store_batch_audit(store_batch_t *b, uint32_t time, hdl_slice_t handle, hdl_slice_t rec)
{
	uint8_t stack[1024];
	uint8_t *buf = stack;
	if (b == NULL || rec.len > STORE_AUDIT_REC_MAX)
		return HDL_EINVAL;
	size_t need = 4 + (size_t)rec.len;
	if (need > sizeof(stack) && (buf = malloc(need)) == NULL)
		return HDL_ENOMEM;
	wire_wr_t wr = wire_wr_init(buf, need);
	wire_wr_u32(&wr, time);
	wire_wr_bytes(&wr, rec.p, rec.len);
	hdl_slice_t val = {buf, (uint32_t)wr.pos};
	int ret = batch_op(b, LOG_AUDIT, handle, val);
	if (buf != stack)
		free(buf);
	return ret;
}

int store_batch_audit_prune(store_batch_t *b, uint32_t before, unsigned max, unsigned *pruned)
{
	uint8_t v[8];
	*pruned = 0;
	wire_wr_t wr = wire_wr_init(v, sizeof(v));
	wire_wr_u32(&wr, before);
	wire_wr_u32(&wr, max);
	hdl_slice_t none = {NULL, 0}, val = {v, 8};
	int ret = batch_op(b, LOG_AUDIT_PRUNE, none, val);
	if (ret == HDL_EOK)
		*pruned = b->pruned;
	return ret;
}

/** Split an "audit" value into its record (the index key in front is the store's). */
static int audit_value(const MDB_val *d, hdl_slice_t *rec)
{
	wire_rd_t rd = wire_rd_init(d->mv_data, d->mv_size);
	(void)wire_rd_lbytes(&rd, STORE_KEY_MAX);
	*rec = wire_rd_bytes(&rd, wire_rd_left(&rd));
	return rd.err ? HDL_ESTORE : HDL_EOK;
}

int store_audit_foreach(store_reader_t *r, uint32_t since, hdl_slice_t handle,
                        int (*cb)(void *ctx, uint64_t id, hdl_slice_t rec), void *ctx)
{
	store_t *s = r->s;
	MDB_cursor *cur = NULL;
	uint8_t kb[8];
	int ret = HDL_EOK;
	if (!r->active)
		return HDL_EINVAL;
	if (!s->has_audit)
		return HDL_EOK;
	put_be64(kb, (uint64_t)since << 32);
	bool by_handle = handle.len > 0;
	uint8_t norm[STORE_NAME_MAX], ik[STORE_KEY_MAX];
	size_t iklen = 0;
	if (by_handle) {
		size_t nlen = store_key(s, handle, norm, sizeof(norm));
		if (nlen == 0)
			return HDL_ENAME;
		if ((iklen = db_key(s, norm, nlen, ik)) == 0)
			return HDL_ESTORE;
	}
	int rc = mdb_cursor_open(r->txn, by_handle ? s->dbi_audit_idx : s->dbi_audit, &cur);
	if (rc != MDB_SUCCESS)
		return store_err_from_mdb(rc, "mdb_cursor_open audit");
	MDB_val k, d;
	if (by_handle) {
		k = mval(ik, iklen);
		d = mval(kb, 8);
		rc = mdb_cursor_get(cur, &k, &d, MDB_GET_BOTH_RANGE);
	} else {
		k = mval(kb, 8);
		rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE);
	}
	while (rc == MDB_SUCCESS) {
		MDB_val ak = by_handle ? d : k, av = d;
		if (ak.mv_size != 8) {
			ret = HDL_ESTORE;
			break;
		}
		if (by_handle) {
			rc = mdb_get(r->txn, s->dbi_audit, &ak, &av);
			if (rc != MDB_SUCCESS) {
				ret = store_err_from_mdb(rc == MDB_NOTFOUND ? MDB_CORRUPTED : rc,
				                         "mdb_get audit");
				break;
			}
		}
		hdl_slice_t rec;
		if (audit_value(&av, &rec) != HDL_EOK) {
			ret = HDL_ESTORE;
			break;
		}
		if (cb(ctx, be64(ak.mv_data), rec) != 0)
			goto out;
		rc = mdb_cursor_get(cur, &k, &d, by_handle ? MDB_NEXT_DUP : MDB_NEXT);
	}
	if (ret == HDL_EOK && rc != MDB_NOTFOUND)
		ret = store_err_from_mdb(rc, "mdb_cursor_get audit");
	if (ret != HDL_EOK)
		log_err("store: audit trail unreadable: %s", hdl_strerror(ret));
out:
	mdb_cursor_close(cur);
	return ret;
}

int store_set_no_sync(store_t *s, bool on)
{
	if (s->opts.read_only)
		return HDL_EINVAL;
	int rc = mdb_env_set_flags(s->env, MDB_NOSYNC, on ? 1 : 0);
	if (rc == MDB_SUCCESS)
		s->opts.no_sync = on;
	return store_err_from_mdb(rc, "mdb_env_set_flags");
}

/* ---- statistics records (continued) ---- */

int store_batch_stats_put(store_batch_t *b, hdl_slice_t key, hdl_slice_t val)
{
	if (b == NULL || val.p == NULL)
		return HDL_EINVAL;
	return batch_op(b, LOG_STATS, key, val);
}

int store_batch_stats_del(store_batch_t *b, hdl_slice_t key)
{
	hdl_slice_t none = {NULL, 0};
	if (b == NULL)
		return HDL_EINVAL;
	return batch_op(b, LOG_STATS_DEL, key, none);
}

int store_batch_stats_get(store_batch_t *b, hdl_slice_t key, hdl_slice_t *val)
{
	val->p = NULL;
	val->len = 0;
	int usable = store_batch_failed(b);
	if (usable != HDL_EOK)
		return usable;
	if (!b->s->has_stats || key.len == 0 || key.len > b->s->max_key)
		return HDL_EINVAL;
	MDB_val k = mval(key.p, key.len), d;
	int rc = mdb_get(b->txn, b->s->dbi_stats, &k, &d);
	if (rc != MDB_SUCCESS)
		return store_err_from_mdb(rc, "mdb_get stats");
	if (d.mv_size > UINT32_MAX)
		return HDL_ESTORE;
	val->p = d.mv_data;
	val->len = (uint32_t)d.mv_size;
	return HDL_EOK;
}

int store_stats_foreach(store_reader_t *r, hdl_slice_t from,
                        int (*cb)(void *ctx, hdl_slice_t key, hdl_slice_t val), void *ctx)
{
	if (!r->active)
		return HDL_EINVAL;
	if (!r->s->has_stats)
		return HDL_EOK;
	MDB_cursor *cur;
	int rc = mdb_cursor_open(r->txn, r->s->dbi_stats, &cur);
	if (rc != MDB_SUCCESS)
		return store_err_from_mdb(rc, "mdb_cursor_open stats");
	MDB_val k = mval(from.p, from.len), d;
	rc = from.len ? mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE)
	              : mdb_cursor_get(cur, &k, &d, MDB_FIRST);
	while (rc == MDB_SUCCESS) {
		if (k.mv_size > UINT32_MAX || d.mv_size > UINT32_MAX) {
			rc = MDB_CORRUPTED;
			break;
		}
		if (cb(ctx, (hdl_slice_t){k.mv_data, (uint32_t)k.mv_size},
		       (hdl_slice_t){d.mv_data, (uint32_t)d.mv_size}))
			break;
		rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	return rc == MDB_SUCCESS || rc == MDB_NOTFOUND ? HDL_EOK
	                                               : store_err_from_mdb(rc, "mdb_cursor stats");
}

uint64_t store_map_used(store_t *s)
{
	MDB_envinfo info;
	MDB_stat st;
	if (mdb_env_info(s->env, &info) != MDB_SUCCESS || mdb_env_stat(s->env, &st) != MDB_SUCCESS)
		return 0;
	return ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
}
