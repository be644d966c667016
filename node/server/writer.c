/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief The writer thread: a bounded job queue, group commits, and the registration operations
 *        (create/delete handle, add/remove/modify values, home/unhome) with Handle.Net 9's checks,
 *        authorization and response codes (docs/registration.md, "Semantics"), each job in its own
 *        savepoint (LMDB nested txn) and each outcome in the audit trail of the same transaction.
 *
 * Thread model: submitters (workers) only take the queue mutex to append a job. The writer
 * thread owns everything else: the store batch, its scratch arena and record buffer. done() is
 * called on the writer thread after the batch's commit returned (and was fsync'ed unless
 * sync = periodic).
 */
#include "node/server/writer.h"

#include <errno.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hdl/error.h"
#include "hdl/values.h"
#include "node/common/log.h"
#include "node/conf/conf.h"
#include "node/server/authz.h"
#include "node/server/srvadmin.h"
#include "node/store/audit.h"
#include "node/store/store.h"
#include "node/store/template.h"

_Static_assert((int)WR_T_UDP == AUDIT_T_UDP && (int)WR_T_TCP == AUDIT_T_TCP &&
                   (int)WR_T_HTTP == AUDIT_T_HTTP && (int)WR_T_HTTPS == AUDIT_T_HTTPS &&
                   (int)WR_T_TLS == AUDIT_T_TLS && (int)WR_T_LOCAL == AUDIT_T_LOCAL,
               "audit transports follow wr_transport_t");

#define WR_DEFAULT_MAX_RECORD (HDL_MAX_MESSAGE_LEN - 4096u)
#define WR_DEFAULT_PRUNE_STEP 1000u
#define WR_DEFAULT_PRUNE_MS   1000u
#define WR_MINT_ATTEMPTS      16u
#define WR_ARENA_LIMIT        (64u << 20) /* scratch per job: decoded records, group lists */
#define WR_UUID_LEN           36u

struct writer {
	store_t *s;
	writer_opts_t o;
	hdl_ref_t *admins; /**< parsed server admins (names point into admin_text) */
	char **admin_text;
	uint32_t n_admins;
	struct srvadmin_set *next_admins; /**< under mu: taken at the next batch (reload) */

	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv; /**< a job arrived, or stop */
	wr_job_t *head;    /**< waiting jobs, oldest first */
	wr_job_t *tail;
	unsigned queued;   /**< waiting jobs */
	unsigned in_batch; /**< jobs of the batch being processed */
	bool stopping;
	writer_stats_t st; /**< under mu */

	/* writer thread only */
	wr_job_t **batch;
	hdl_arena_t arena;
	uint8_t *rec; /**< the new record of the current job */
	size_t rec_cap;
	tpl_cache_t *tpl;       /**< compiled metadata templates (template checks) */
	tpl_limits_t tpl_lim;
	uint64_t next_prune_ms; /**< monotonic time of the next retention step */
	uint64_t next_sync_ms;  /**< periodic sync: when the next fsync is due */
	bool dirty;             /**< periodic sync: commits since the last fsync */
};

/** Everything one job's operation needs. */
typedef struct jctx {
	writer_t *w;
	store_batch_t *b;
	wr_job_t *j;
	audit_rec_t *ar;
	uint32_t now;
	hdl_ref_t id;
	authz_t az;
	bool noop; /**< answered success without a change: no write, no audit entry */
	char note[160]; /**< the audit entry's message of a success (template changes) */
} jctx_t;

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- small helpers ------------------------------------------------------------------------ */

static void refuse(jctx_t *c, uint32_t rc, const char *fmt, ...) HDL_LOG_PRINTF(3, 4);

/** Answer the job with \p rc and a message (nothing is written). */
static void refuse(jctx_t *c, uint32_t rc, const char *fmt, ...)
{
	va_list ap;
	c->j->rcode = rc;
	va_start(ap, fmt);
	vsnprintf(c->j->message, sizeof(c->j->message), fmt, ap);
	va_end(ap);
}

static int lookup_in_batch(void *ctx, hdl_slice_t handle, hdl_slice_t *vals)
{
	return store_batch_get(ctx, handle, vals);
}

static bool is_zero_na(hdl_slice_t prefix)
{
	return hdl_slice_eq_nocase(prefix, hdl_slice_str("0.NA"));
}

/** Length of \p name when printed (log lines). */
static int plen(hdl_slice_t name)
{
	return name.len > 120 ? 120 : (int)name.len;
}

/**
 * May this node write \p name? Its naming authority must be homed here (for "0.NA/A.B.C" also a
 * homed ancestor A.B or A will do: derived prefix handles live with their parent prefix).
 * \retval HDL_EOK (homed), HDL_ENOENT (not homed), or a store error
 */
static int check_homed(store_batch_t *b, hdl_slice_t name)
{
	hdl_slice_t auth = hdl_name_authority(name);
	int ret = store_batch_is_homed(b, auth);
	if (ret != HDL_ENOENT)
		return ret;
	hdl_slice_t prefix, suffix;
	hdl_name_split(name, &prefix, &suffix);
	if (!is_zero_na(prefix) && memchr(name.p, '/', name.len) != NULL)
		return HDL_ENOENT;
	while (auth.len > 0) {
		const uint8_t *dot = NULL;
		for (uint32_t i = auth.len; i > 0; i--) {
			if (auth.p[i - 1] == '.') {
				dot = auth.p + i - 1;
				break;
			}
		}
		if (dot == NULL || dot == auth.p)
			return HDL_ENOENT;
		auth.len = (uint32_t)(dot - auth.p);
		ret = store_batch_is_homed(b, auth);
		if (ret != HDL_ENOENT)
			return ret;
	}
	return HDL_ENOENT;
}

/**
 * May the job's identity do \p need on the record \p admin_vals? Server admins (flagged by the
 * front half or configured) may do anything; an anonymous request nothing.
 * \return AUTHZ_GRANTED, AUTHZ_DENIED, or an authz_check() error
 */
static int may(jctx_t *c, hdl_slice_t admin_vals, uint16_t need)
{
	if (c->j->server_admin)
		return AUTHZ_GRANTED;
	if (c->id.handle.len == 0)
		return AUTHZ_DENIED;
	return authz_check(&c->az, c->id, admin_vals, need, &c->w->arena);
}

/**
 * Answer a refusal for the result \p r of may() (not AUTHZ_GRANTED).
 * \return 0 (answered), or HDL_ENOMEM (fatal)
 */
static int deny(jctx_t *c, int r, const char *what)
{
	switch (r) {
	case HDL_ENOMEM: return HDL_ENOMEM;
	case HDL_ELIMIT:
		log_peer(LOG_LVL_WARN, "writer: %u:%.*s: admin group walk stopped at its bound",
		         (unsigned)c->id.index, plen(c->id.handle), (const char *)c->id.handle.p);
		refuse(c, HDL_RC_INVALID_ADMIN, "Admin groups nested too deep or too many");
		return 0;
	case HDL_ESTORE: refuse(c, HDL_RC_AUTHEN_ERROR, "Error looking up admin groups"); return 0;
	default:
		if (c->id.handle.len == 0)
			refuse(c, HDL_RC_INVALID_ADMIN, "Authentication needed");
		else
			refuse(c, HDL_RC_INVALID_ADMIN,
			       "Not an admin with the permissions needed on %s", what);
		return 0;
	}
}

/**
 * Authorize the job's identity for \p need on the record \p admin_vals.
 * \return 1 granted, 0 refused (the job is answered), negative: fatal
 */
static int authorize(jctx_t *c, hdl_slice_t admin_vals, uint16_t need, const char *what)
{
	int r = may(c, admin_vals, need);
	return r == AUTHZ_GRANTED ? 1 : deny(c, r, what);
}

/** A store error of a single write: protocol refusals for bad input, else fatal for the batch. */
static int write_result(jctx_t *c, int ret)
{
	switch (ret) {
	case HDL_EOK: return HDL_EOK;
	case HDL_EMALF: refuse(c, HDL_RC_INVALID_VALUE, "Invalid value"); return HDL_EOK;
	case HDL_ENAME: refuse(c, HDL_RC_INVALID_HANDLE, "Invalid handle"); return HDL_EOK;
	default: return ret;
	}
}

/** Values of a handle value except the timestamp equal? (Handle.Net equalsIgnoreTimestamp) */
static bool value_same(const hdl_value_t *a, const hdl_value_t *b)
{
	if (a->index != b->index || a->ttl_type != b->ttl_type || a->ttl != b->ttl ||
	    a->perms != b->perms || !hdl_slice_eq(a->type, b->type) ||
	    !hdl_slice_eq(a->data, b->data) || a->n_refs != b->n_refs)
		return false;
	for (uint32_t i = 0; i < a->n_refs; i++) {
		if (a->refs[i].index != b->refs[i].index ||
		    !hdl_slice_eq(a->refs[i].handle, b->refs[i].handle))
			return false;
	}
	return true;
}

static bool is_admin_value(const hdl_value_t *v)
{
	return authz_type_is(v->type, "HS_ADMIN");
}

/** Permission bits for replacing \p old by \p new (Handle.Net's transitions). */
static uint16_t change_perms(const hdl_value_t *old, const hdl_value_t *new)
{
	bool oa = is_admin_value(old), na = is_admin_value(new);
	if (oa && na)
		return HDL_ADM_MODIFY_ADMIN;
	if (oa)
		return HDL_ADM_REMOVE_ADMIN | HDL_ADM_MODIFY_VALUE;
	if (na)
		return HDL_ADM_MODIFY_VALUE | HDL_ADM_ADD_ADMIN;
	return (old->perms & HDL_PERM_PUBLIC_WRITE) ? 0 : HDL_ADM_MODIFY_VALUE;
}

static int cmp_value_index(const void *a, const void *b)
{
	const hdl_value_t *x = a, *y = b;
	return x->index < y->index ? -1 : x->index > y->index;
}

/** Copy of the request's values in the arena (the writer must not touch the submitter's). */
static hdl_value_t *copy_values(jctx_t *c, const hdl_value_t *v, uint32_t n)
{
	if (n == 0)
		return NULL;
	hdl_value_t *out = hdl_arena_alloc(&c->w->arena, sizeof(*out) * n);
	if (out)
		memcpy(out, v, sizeof(*out) * n);
	return out;
}

/**
 * Encode \p n values as the new record of \p name into w->rec, within the limits and after the
 * check against the handle's metadata template (node/store/template.h).
 * \return HDL_EOK (*rec set), 1 when refused (answered), or a fatal error
 */
static int encode_record(jctx_t *c, hdl_slice_t name, const hdl_value_t *v, uint32_t n,
                         hdl_slice_t *rec)
{
	writer_t *w = c->w;
	if (n > HDL_MAX_VALUES) {
		refuse(c, HDL_RC_INVALID_VALUE, "Too many values (%u, at most %u)", (unsigned)n,
		       HDL_MAX_VALUES);
		return 1;
	}
	int tr = tpl_check(w->tpl, tpl_fetch_batch, c->b, name, v, n, c->j->message,
	                   sizeof(c->j->message));
	if (tr == TPL_REFUSED) {
		c->j->rcode = HDL_RC_INVALID_VALUE;
		return 1;
	}
	if (tr != HDL_EOK) {
		c->j->message[0] = '\0';
		return tr;
	}
	size_t size = 4;
	for (uint32_t i = 0; i < n; i++)
		size += hdl_value_size(&v[i]);
	if (size > w->o.max_record_len) {
		refuse(c, HDL_RC_INVALID_VALUE, "Handle record too large (%zu bytes, at most %u)",
		       size, (unsigned)w->o.max_record_len);
		return 1;
	}
	if (size > w->rec_cap) {
		uint8_t *p = realloc(w->rec, size);
		if (p == NULL)
			return HDL_ENOMEM;
		w->rec = p;
		w->rec_cap = size;
	}
	size_t len = 0;
	int ret = hdl_values_encode(v, n, w->rec, w->rec_cap, &len);
	if (ret == HDL_ELIMIT || ret == HDL_EMALF || ret == HDL_EINVAL) {
		refuse(c, HDL_RC_INVALID_VALUE, "Invalid value: %s", hdl_strerror(ret));
		return 1;
	}
	if (ret != HDL_EOK)
		return ret;
	rec->p = w->rec;
	rec->len = (uint32_t)len;
	return HDL_EOK;
}

/** Note the request's value indexes in the audit record. */
static int audit_indexes(jctx_t *c, const hdl_value_t *v, const uint32_t *idx, uint32_t n)
{
	if (n == 0)
		return HDL_EOK;
	if (n > HDL_MAX_VALUES)
		n = HDL_MAX_VALUES;
	uint32_t *out = hdl_arena_alloc(&c->w->arena, sizeof(uint32_t) * n);
	if (out == NULL)
		return HDL_ENOMEM;
	for (uint32_t i = 0; i < n; i++)
		out[i] = v ? v[i].index : idx[i];
	c->ar->indexes = out;
	c->ar->n_indexes = n;
	return HDL_EOK;
}

/** Read a handle's record and decode it into the arena. \retval HDL_EOK, HDL_ENOENT, errors */
static int read_record(jctx_t *c, hdl_slice_t name, hdl_slice_t *raw, hdl_value_t **v, uint32_t *n)
{
	*v = NULL;
	*n = 0;
	int ret = store_batch_get(c->b, name, raw);
	if (ret != HDL_EOK)
		return ret;
	ret = hdl_values_decode(raw->p, raw->len, &c->w->arena, v, n);
	if (ret == HDL_ENOMEM)
		return ret;
	if (ret != HDL_EOK) {
		log_err("writer: stored record of %.*s does not decode: %s", plen(name),
		        (const char *)name.p, hdl_strerror(ret));
		return HDL_ESTORE;
	}
	audit_digest(*raw, c->ar->before);
	c->ar->has_before = true;
	return HDL_EOK;
}

/** Admin operations need an identity (Handle.Net challenges first). \return true if refused */
static bool anonymous(jctx_t *c)
{
	if (c->id.handle.len > 0 || c->j->server_admin)
		return false;
	refuse(c, HDL_RC_INVALID_ADMIN, "Authentication needed");
	return true;
}

/**
 * The identity check (unless \p anon_ok) and read_record() of the job's handle, answering RC 100
 * when it does not exist. \return 1 go on, 0 answered, negative fatal
 */
static int existing(jctx_t *c, bool anon_ok, hdl_slice_t *raw, hdl_value_t **v, uint32_t *n)
{
	if (!anon_ok && anonymous(c))
		return 0;
	int ret = read_record(c, c->j->handle, raw, v, n);
	if (ret == HDL_EOK)
		return 1;
	if (ret == HDL_ENOENT) {
		refuse(c, HDL_RC_HANDLE_NOT_FOUND, "Handle not found");
		return 0;
	}
	return ret;
}

/** Write the new record of \p name and note its digest. */
static int put_record(jctx_t *c, hdl_slice_t name, hdl_slice_t rec)
{
	uint8_t after[AUDIT_DIGEST_LEN];
	audit_digest(rec, after);
	int ret = write_result(c, store_batch_put(c->b, name, rec, true));
	if (ret == HDL_EOK && c->j->rcode == 0) {
		memcpy(c->ar->after, after, sizeof(after));
		c->ar->has_after = true;
		c->j->rcode = HDL_RC_SUCCESS;
	}
	return ret;
}

/** Check the handle name of a request. \return true when valid (else answered) */
static bool name_ok(jctx_t *c, hdl_slice_t name)
{
	int ret = hdl_name_check(name.p, name.len);
	if (ret == HDL_EOK)
		return true;
	refuse(c, HDL_RC_INVALID_HANDLE,
	       ret == HDL_EUTF8 ? "Invalid UTF8 encoding" : "Invalid handle");
	return false;
}

/**
 * Name check and the homed rule for \p name, and the request's value indexes noted for the
 * audit entry. \return 1 go on, 0 answered, negative fatal
 */
static int writable(jctx_t *c, hdl_slice_t name)
{
	wr_job_t *j = c->j;
	int ret = j->op == WR_REMOVE_VALUES ? audit_indexes(c, NULL, j->indexes, j->n_indexes)
	                                    : audit_indexes(c, j->values, NULL, j->n_values);
	if (ret != HDL_EOK)
		return ret;
	if (j->n_values > HDL_MAX_VALUES || j->n_indexes > HDL_MAX_VALUES) {
		/* the message decoder never gives more; the checks below are quadratic in them */
		refuse(c, HDL_RC_INVALID_VALUE, "Too many values (at most %u)", HDL_MAX_VALUES);
		return 0;
	}
	if (!name_ok(c, name))
		return 0;
	ret = check_homed(c->b, name);
	if (ret == HDL_EOK)
		return 1;
	if (ret == HDL_ENOENT) {
		refuse(c, HDL_RC_SERVER_NOT_RESP, "That prefix doesn't live here");
		return 0;
	}
	return ret;
}

/* ---- operations --------------------------------------------------------------------------- */

/** Random RFC 4122 version 4 UUID, lower-case hex with dashes (Handle.Net's minted suffix). */
static int uuid4(char out[WR_UUID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t r[16];
	if (RAND_bytes(r, sizeof(r)) != 1)
		return HDL_EIO;
	r[6] = (uint8_t)((r[6] & 0x0F) | 0x40);
	r[8] = (uint8_t)((r[8] & 0x3F) | 0x80);
	size_t k = 0;
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[k++] = '-';
		out[k++] = hex[r[i] >> 4];
		out[k++] = hex[r[i] & 0x0F];
	}
	out[k] = '\0';
	return HDL_EOK;
}

/**
 * MINT: the request's handle followed by a fresh UUID, not yet in the store.
 * \return 1 go on (*name set, in the arena), 0 answered, negative fatal
 */
static int mint_name(jctx_t *c, hdl_slice_t *name)
{
	hdl_slice_t base = c->j->handle;
	if (base.len + WR_UUID_LEN > HDL_MAX_HANDLE_LEN) {
		refuse(c, HDL_RC_INVALID_HANDLE, "Handle too long to mint a suffix");
		return 0;
	}
	uint8_t *buf = hdl_arena_alloc(&c->w->arena, base.len + WR_UUID_LEN + 1);
	if (buf == NULL)
		return HDL_ENOMEM;
	if (base.len)
		memcpy(buf, base.p, base.len);
	for (unsigned attempt = 0; attempt < WR_MINT_ATTEMPTS; attempt++) {
		char u[WR_UUID_LEN + 1];
		if (uuid4(u) != HDL_EOK) {
			refuse(c, HDL_RC_ERROR, "Internal Error");
			return 0;
		}
		memcpy(buf + base.len, u, WR_UUID_LEN);
		hdl_slice_t cand = {buf, base.len + WR_UUID_LEN};
		hdl_slice_t raw;
		int ret = store_batch_get(c->b, cand, &raw);
		if (ret == HDL_ENOENT) {
			*name = cand;
			return 1;
		}
		if (ret != HDL_EOK)
			return ret;
	}
	refuse(c, HDL_RC_ERROR, "Could not mint a unique handle");
	return 0;
}

/** The prefix handle whose HS_ADMINs govern creating \p norm, and the bit needed. */
static void creation_authority(const uint8_t *norm, size_t nlen, uint8_t *out, size_t *olen,
                               uint16_t *need)
{
	hdl_slice_t n = {norm, (uint32_t)nlen}, prefix, suffix;
	hdl_name_split(n, &prefix, &suffix);
	memcpy(out, "0.NA/", 5);
	*olen = 5;
	const uint8_t *dot = NULL;
	if (is_zero_na(prefix)) {
		for (uint32_t i = suffix.len; i > 0; i--) {
			if (suffix.p[i - 1] == '.') {
				dot = suffix.p + i - 1;
				break;
			}
		}
	}
	if (dot != NULL && dot > suffix.p) {
		/* a derived prefix handle 0.NA/A.B: its parent 0.NA/A decides, with ADD_NA */
		size_t pl = (size_t)(dot - suffix.p);
		memcpy(out + 5, suffix.p, pl);
		*olen += pl;
		*need = HDL_ADM_ADD_NA;
	} else {
		memcpy(out + 5, prefix.p, prefix.len);
		*olen += prefix.len;
		*need = HDL_ADM_ADD_HANDLE;
	}
}

/**
 * The permission to create \p name: the creation authority's HS_ADMIN values (the prefix
 * handle's, or for a derived prefix handle its parent's). \return 1 granted, 0 answered, < 0 fatal
 */
static int authorize_create(jctx_t *c, hdl_slice_t name)
{
	uint8_t norm[HDL_MAX_HANDLE_LEN + 8], na[HDL_MAX_HANDLE_LEN + 16];
	size_t nlen = hdl_name_normalize(name, false, norm, sizeof(norm)), nalen = 0;
	uint16_t need = 0;
	creation_authority(norm, nlen, na, &nalen, &need);
	hdl_slice_t na_name = {na, (uint32_t)nalen}, na_vals = {NULL, 0};
	int ret = store_batch_get(c->b, na_name, &na_vals);
	if (ret != HDL_EOK && ret != HDL_ENOENT)
		return ret;
	char what[160];
	snprintf(what, sizeof(what), "%.*s", plen(na_name), (const char *)na);
	return authorize(c, na_vals, need, what);
}

/** The request's values \p nv and the stored \p ov the same set (timestamps aside)? */
static bool same_record(const hdl_value_t *nv, uint32_t nn, const hdl_value_t *ov, uint32_t on)
{
	if (nn != on)
		return false;
	for (uint32_t k = 0; k < nn; k++) {
		bool found = false;
		for (uint32_t i = 0; i < on && !found; i++)
			found = ov[i].index == nv[k].index && value_same(&ov[i], &nv[k]);
		if (!found)
			return false;
	}
	return true;
}

static int op_create(jctx_t *c)
{
	wr_job_t *j = c->j;
	hdl_slice_t name = j->handle;
	int ret;
	if (j->flags & WR_F_MINT) {
		if ((ret = mint_name(c, &name)) <= 0)
			return ret;
		c->ar->handle = name;
	}
	if ((ret = writable(c, name)) <= 0)
		return ret;
	for (uint32_t i = 0; i < j->n_values; i++) {
		if (j->values[i].index == 0 || j->values[i].index > INT32_MAX) {
			refuse(c, HDL_RC_INVALID_VALUE, "Value indexes must be positive");
			return HDL_EOK;
		}
		for (uint32_t k = i + 1; k < j->n_values; k++) {
			if (j->values[i].index == j->values[k].index) {
				refuse(c, HDL_RC_VALUE_ALREADY_EXISTS, "Index conflict for %u",
				       (unsigned)j->values[k].index);
				return HDL_EOK;
			}
		}
	}
	hdl_value_t *nv = copy_values(c, j->values, j->n_values);
	if (j->n_values && nv == NULL)
		return HDL_ENOMEM;
	for (uint32_t i = 0; i < j->n_values; i++)
		nv[i].timestamp = c->now;

	hdl_slice_t old_raw = {NULL, 0};
	hdl_value_t *ov = NULL;
	uint32_t on = 0;
	ret = read_record(c, name, &old_raw, &ov, &on);
	bool exists = ret == HDL_EOK;
	if (ret != HDL_EOK && ret != HDL_ENOENT)
		return ret;
	bool again = exists && !(j->flags & (WR_F_OVERWRITE | WR_F_MINT)) &&
	             (j->flags & WR_F_IDEMPOTENT) && same_record(nv, j->n_values, ov, on);
	if (exists && !(j->flags & WR_F_OVERWRITE) && !again) {
		refuse(c, HDL_RC_HANDLE_ALREADY_EXISTS, "Handle already exists");
		return HDL_EOK;
	}
	if (anonymous(c))
		return HDL_EOK;
	if (again) {
		/* a retried create: what a create needs, then nothing to write */
		int r = authorize_create(c, name);
		if (r <= 0)
			return r;
		c->noop = true;
		j->rcode = HDL_RC_SUCCESS;
		if (j->arena) {
			j->result_handle = hdl_arena_dup(j->arena, name.p, name.len);
			if (j->result_handle.p == NULL)
				return HDL_ENOMEM;
		}
		return HDL_EOK;
	}

	bool authorized = false;
	if (exists) {
		/* overwrite: the permissions of the differences on the existing record, or
		 * ADD_ADMIN there, or DELETE_HANDLE there plus the prefix's ADD_HANDLE (below);
		 * unchanged values keep their timestamps */
		uint16_t need = 0;
		for (uint32_t i = 0; i < on; i++) {
			bool kept = false;
			for (uint32_t k = 0; k < j->n_values && !kept; k++)
				kept = nv[k].index == ov[i].index;
			if (!kept)
				need |= is_admin_value(&ov[i]) ? HDL_ADM_REMOVE_ADMIN
				                               : HDL_ADM_REMOVE_VALUE;
		}
		for (uint32_t k = 0; k < j->n_values; k++) {
			const hdl_value_t *old = NULL;
			for (uint32_t i = 0; i < on && old == NULL; i++) {
				if (ov[i].index == nv[k].index)
					old = &ov[i];
			}
			if (old == NULL)
				need |=
				    is_admin_value(&nv[k]) ? HDL_ADM_ADD_ADMIN : HDL_ADM_ADD_VALUE;
			else if (value_same(old, &nv[k]))
				nv[k].timestamp = old->timestamp;
			else
				need |= change_perms(old, &nv[k]);
		}
		int r = need == 0 ? AUTHZ_GRANTED : may(c, old_raw, need);
		if (r != AUTHZ_GRANTED && r != HDL_ENOMEM)
			r = may(c, old_raw, HDL_ADM_ADD_ADMIN);
		if (r == HDL_ENOMEM)
			return r;
		authorized = r == AUTHZ_GRANTED;
		if (!authorized) {
			r = may(c, old_raw, HDL_ADM_DELETE_HANDLE);
			if (r != AUTHZ_GRANTED)
				return deny(c, r, "the handle");
		}
	}
	if (!authorized) {
		int r = authorize_create(c, name);
		if (r <= 0)
			return r;
	}
	hdl_slice_t rec;
	if ((ret = encode_record(c, name, nv, j->n_values, &rec)) != HDL_EOK)
		return ret == 1 ? HDL_EOK : ret;
	if ((ret = put_record(c, name, rec)) != HDL_EOK || j->rcode != HDL_RC_SUCCESS)
		return ret;
	if (j->arena) {
		j->result_handle = hdl_arena_dup(j->arena, name.p, name.len);
		if (j->result_handle.p == NULL)
			return HDL_ENOMEM;
	}
	return HDL_EOK;
}

static int op_delete(jctx_t *c)
{
	hdl_slice_t name = c->j->handle;
	if (!name_ok(c, name))
		return HDL_EOK;
	int homed = check_homed(c->b, name);
	if (homed != HDL_EOK && homed != HDL_ENOENT)
		return homed;
	hdl_slice_t raw;
	int ret = store_batch_get(c->b, name, &raw);
	if (ret == HDL_ENOENT) {
		if (homed == HDL_ENOENT)
			refuse(c, HDL_RC_SERVER_NOT_RESP, "That prefix doesn't live here");
		else
			refuse(c, HDL_RC_HANDLE_NOT_FOUND, "Handle not found");
		return HDL_EOK;
	}
	if (ret != HDL_EOK)
		return ret;
	/* a record under a prefix not homed here can still be deleted (Handle.Net: "handles that
	 * are in the database by mistake") */
	audit_digest(raw, c->ar->before);
	c->ar->has_before = true;
	int r = authorize(c, raw, HDL_ADM_DELETE_HANDLE, "the handle");
	if (r <= 0)
		return r;
	ret = store_batch_del(c->b, name);
	if (ret == HDL_ENOENT) {
		refuse(c, HDL_RC_HANDLE_NOT_FOUND, "Handle not found");
		return HDL_EOK;
	}
	if (ret == HDL_EOK)
		c->j->rcode = HDL_RC_SUCCESS;
	return write_result(c, ret);
}

static int op_add(jctx_t *c)
{
	wr_job_t *j = c->j;
	hdl_slice_t name = j->handle;
	int ret;
	if ((ret = writable(c, name)) <= 0)
		return ret;
	if (j->n_values == 0) {
		refuse(c, HDL_RC_INVALID_VALUE, "Value list was empty");
		return HDL_EOK;
	}
	hdl_value_t *nv = copy_values(c, j->values, j->n_values);
	if (nv == NULL)
		return HDL_ENOMEM;
	qsort(nv, j->n_values, sizeof(*nv), cmp_value_index);
	for (uint32_t i = 0; i < j->n_values; i++) {
		if (nv[i].index == 0 || nv[i].index > INT32_MAX) {
			refuse(c, HDL_RC_INVALID_VALUE, "Value indexes must be positive");
			return HDL_EOK;
		}
		if (i > 0 && nv[i].index == nv[i - 1].index) {
			refuse(c, HDL_RC_VALUE_ALREADY_EXISTS, "Index conflict for %u",
			       (unsigned)nv[i].index);
			return HDL_EOK;
		}
	}
	hdl_slice_t raw;
	hdl_value_t *ov = NULL;
	uint32_t on = 0;
	if ((ret = existing(c, false, &raw, &ov, &on)) <= 0)
		return ret;
	qsort(ov, on, sizeof(*ov), cmp_value_index);
	if (!(j->flags & WR_F_OVERWRITE)) {
		for (uint32_t i = 0, k = 0; i < on && k < j->n_values;) {
			if (ov[i].index < nv[k].index) {
				i++;
			} else if (ov[i].index > nv[k].index) {
				k++;
			} else {
				refuse(c, HDL_RC_VALUE_ALREADY_EXISTS, "Index conflict for %u",
				       (unsigned)ov[i].index);
				return HDL_EOK;
			}
		}
	}
	/* merge by index; new and changed values get the time of the change */
	uint32_t cap = on + j->n_values, m = 0;
	hdl_value_t *res = hdl_arena_alloc(&c->w->arena, sizeof(*res) * cap);
	if (res == NULL)
		return HDL_ENOMEM;
	uint16_t need = 0;
	uint32_t i = 0, k = 0;
	while (i < on || k < j->n_values) {
		if (k == j->n_values || (i < on && ov[i].index < nv[k].index)) {
			res[m++] = ov[i++];
		} else if (i == on || ov[i].index > nv[k].index) {
			nv[k].timestamp = c->now;
			need |= is_admin_value(&nv[k]) ? HDL_ADM_ADD_ADMIN : HDL_ADM_ADD_VALUE;
			res[m++] = nv[k++];
		} else {
			nv[k].timestamp = c->now;
			if (value_same(&ov[i], &nv[k])) {
				res[m++] = ov[i];
			} else {
				need |= change_perms(&ov[i], &nv[k]);
				res[m++] = nv[k];
			}
			i++;
			k++;
		}
	}
	if (need != 0) {
		int r = authorize(c, raw, need, "the handle");
		if (r <= 0)
			return r;
	}
	hdl_slice_t rec;
	if ((ret = encode_record(c, name, res, m, &rec)) != HDL_EOK)
		return ret == 1 ? HDL_EOK : ret;
	return put_record(c, name, rec);
}

static int op_remove(jctx_t *c)
{
	wr_job_t *j = c->j;
	hdl_slice_t name = j->handle;
	int ret;
	if ((ret = writable(c, name)) <= 0)
		return ret;
	hdl_slice_t raw;
	hdl_value_t *ov = NULL;
	uint32_t on = 0;
	if ((ret = existing(c, false, &raw, &ov, &on)) <= 0)
		return ret;
	bool *gone = hdl_arena_alloc(&c->w->arena, on ? on : 1);
	if (gone == NULL)
		return HDL_ENOMEM;
	bool rem_admin = false, rem_value = false;
	for (uint32_t x = 0; x < j->n_indexes; x++) {
		uint32_t found = on;
		for (uint32_t i = 0; i < on; i++) {
			if (ov[i].index == j->indexes[x]) {
				found = i;
				break;
			}
		}
		if (found == on) {
			refuse(c, HDL_RC_VALUES_NOT_FOUND, "No value with index %u",
			       (unsigned)j->indexes[x]);
			return HDL_EOK;
		}
		gone[found] = true;
		if (is_admin_value(&ov[found]))
			rem_admin = true;
		else
			rem_value = true;
	}
	uint16_t need = (uint16_t)((rem_admin ? HDL_ADM_REMOVE_ADMIN : 0) |
	                           (rem_value || !rem_admin ? HDL_ADM_REMOVE_VALUE : 0));
	int r = authorize(c, raw, need, "the handle");
	if (r <= 0)
		return r;
	uint32_t m = 0;
	for (uint32_t i = 0; i < on; i++) {
		if (!gone[i])
			ov[m++] = ov[i];
	}
	hdl_slice_t rec;
	if ((ret = encode_record(c, name, ov, m, &rec)) != HDL_EOK)
		return ret == 1 ? HDL_EOK : ret;
	return put_record(c, name, rec);
}

static int op_modify(jctx_t *c)
{
	wr_job_t *j = c->j;
	hdl_slice_t name = j->handle;
	int ret;
	if ((ret = writable(c, name)) <= 0)
		return ret;
	bool anon = c->id.handle.len == 0 && !j->server_admin;
	hdl_slice_t raw;
	hdl_value_t *ov = NULL;
	uint32_t on = 0;
	if ((ret = existing(c, true, &raw, &ov, &on)) <= 0)
		return ret;
	uint32_t *slot = hdl_arena_alloc(&c->w->arena, sizeof(uint32_t) * (j->n_values + 1u));
	if (slot == NULL)
		return HDL_ENOMEM;
	uint16_t need = 0;
	for (uint32_t k = 0; k < j->n_values; k++) {
		uint32_t found = on;
		for (uint32_t i = 0; i < on; i++) {
			if (ov[i].index == j->values[k].index) {
				found = i;
				break;
			}
		}
		if (found == on) {
			refuse(c, HDL_RC_VALUES_NOT_FOUND, "No value with index %u",
			       (unsigned)j->values[k].index);
			return HDL_EOK;
		}
		const hdl_value_t *old = &ov[found];
		if (!(old->perms & HDL_PERM_ADMIN_WRITE)) {
			refuse(c, HDL_RC_INSUFFICIENT_PERMISSIONS, "Value is read-only");
			return HDL_EOK;
		}
		if (anon && (!(old->perms & HDL_PERM_PUBLIC_WRITE) || is_admin_value(old) ||
		             is_admin_value(&j->values[k]))) {
			refuse(c, HDL_RC_INVALID_ADMIN, "Authentication needed");
			return HDL_EOK;
		}
		need |= change_perms(old, &j->values[k]);
		slot[k] = found;
	}
	if (need != 0) {
		int r = authorize(c, raw, need, "the handle");
		if (r <= 0)
			return r;
	}
	/* replace in place (a later value for the same index wins, as in Handle.Net) */
	for (uint32_t k = 0; k < j->n_values; k++) {
		ov[slot[k]] = j->values[k];
		ov[slot[k]].timestamp = c->now;
	}
	for (uint32_t i = 0; i < on; i++) {
		for (uint32_t k = i + 1; k < on; k++) {
			if (ov[i].index == ov[k].index) {
				refuse(c, HDL_RC_INVALID_VALUE, "Index conflict for %u",
				       (unsigned)ov[k].index);
				return HDL_EOK;
			}
		}
	}
	hdl_slice_t rec;
	if ((ret = encode_record(c, name, ov, on, &rec)) != HDL_EOK)
		return ret == 1 ? HDL_EOK : ret;
	return put_record(c, name, rec);
}

static int op_home(jctx_t *c, bool home)
{
	hdl_slice_t name = c->j->handle, prefix, suffix;
	if (!name_ok(c, name))
		return HDL_EOK;
	hdl_name_split(name, &prefix, &suffix);
	if (!is_zero_na(prefix) || suffix.len == 0) {
		refuse(c, HDL_RC_INVALID_HANDLE, "Handle is not a prefix handle");
		return HDL_EOK;
	}
	if (anonymous(c))
		return HDL_EOK;
	if (!c->j->server_admin) {
		int r = authz_server_admin(&c->az, c->id, &c->w->arena);
		if (r == HDL_ENOMEM)
			return r;
		if (r != AUTHZ_GRANTED) {
			refuse(c, HDL_RC_INVALID_ADMIN, "Only server admins may %s prefixes",
			       home ? "home" : "unhome");
			return HDL_EOK;
		}
	}
	int ret = store_batch_home(c->b, suffix, home);
	if (ret == HDL_ENOENT && !home)
		ret = HDL_EOK; /* not homed: nothing to do */
	if (ret == HDL_EOK)
		c->j->rcode = HDL_RC_SUCCESS;
	return write_result(c, ret);
}

/**
 * Template changes (node/store/template.h): the handle is the prefix handle 0.NA/<prefix> of the
 * template's prefix, which must be homed here; the identity needs MODIFY_VALUE there (the
 * template is the prefix's own data) or to be a server admin.
 */
static int op_template(jctx_t *c, bool put)
{
	wr_job_t *j = c->j;
	hdl_slice_t name = j->handle, prefix, suffix;
	if (!name_ok(c, name))
		return HDL_EOK;
	hdl_name_split(name, &prefix, &suffix);
	if (!is_zero_na(prefix) || !tpl_prefix_ok(suffix)) {
		refuse(c, HDL_RC_INVALID_HANDLE, "Not the prefix handle of a template's prefix");
		return HDL_EOK;
	}
	tpl_t *upd = NULL;
	hdl_slice_t version = j->data;
	if (put) {
		char err[TPL_MSG_MAX];
		json_error_t je;
		json_t *root = json_loadb((const char *)j->data.p, j->data.len,
		                          JSON_REJECT_DUPLICATES, &je);
		int ret = root ? tpl_parse(root, &c->w->tpl_lim,
		                           j->flags & WR_F_OVERWRITE ? TPL_PARSE_UPDATE
		                                                     : TPL_PARSE_CREATE,
		                           &upd, err, sizeof(err))
		               : HDL_EJSON;
		if (root == NULL)
			snprintf(err, sizeof(err), "Template: not JSON: %.100s", je.text);
		json_decref(root);
		if (ret == HDL_ENOMEM)
			return ret;
		if (ret != HDL_EOK) {
			refuse(c, HDL_RC_INVALID_VALUE, "%s", err);
			return HDL_EOK;
		}
		if (!hdl_slice_eq_nocase(hdl_slice_str(upd->prefix), suffix)) {
			tpl_free(upd);
			refuse(c, HDL_RC_INVALID_VALUE, "The template's prefix is not %.*s", plen(suffix),
			       (const char *)suffix.p);
			return HDL_EOK;
		}
		version = hdl_slice_str(upd->version);
	} else if (!tpl_version_ok(version)) {
		refuse(c, HDL_RC_INVALID_VALUE, "Invalid template version");
		return HDL_EOK;
	}
	int ret = check_homed(c->b, name);
	if (ret == HDL_ENOENT) {
		refuse(c, HDL_RC_SERVER_NOT_RESP, "That prefix doesn't live here");
		ret = HDL_EOK;
		goto out;
	}
	if (ret != HDL_EOK || anonymous(c))
		goto out;
	hdl_slice_t pvals = {NULL, 0};
	ret = store_batch_get(c->b, name, &pvals);
	if (ret != HDL_EOK && ret != HDL_ENOENT)
		goto out;
	ret = authorize(c, pvals, HDL_ADM_MODIFY_VALUE, "the prefix handle");
	if (ret <= 0)
		goto out;
	tpl_change_t chg;
	ret = put ? tpl_store_put(c->b, upd, j->flags & WR_F_OVERWRITE ? TPL_PUT_UPDATE
	                                                                : TPL_PUT_CREATE,
	                          &c->w->tpl_lim, &chg, j->message, sizeof(j->message))
	          : tpl_store_del(c->b, suffix, version, &chg, j->message, sizeof(j->message));
	if (ret == TPL_REFUSED) {
		j->rcode = chg.rcode;
		ret = HDL_EOK;
	} else if (ret == HDL_EOK) {
		if (chg.had_before) {
			audit_digest(chg.before, c->ar->before);
			c->ar->has_before = true;
		}
		if (chg.after) {
			audit_digest((hdl_slice_t){chg.after, (uint32_t)chg.after_len}, c->ar->after);
			c->ar->has_after = true;
		}
		/* the entry names the version (its message, empty for other successes) */
		snprintf(c->note, sizeof(c->note), "template %.*s",
		         version.len > 120 ? 120 : (int)version.len, (const char *)version.p);
		c->ar->message = hdl_slice_str(c->note);
		j->rcode = HDL_RC_SUCCESS;
	}
	tpl_change_clear(&chg);
out:
	tpl_free(upd);
	return ret < 0 ? ret : HDL_EOK;
}

static uint16_t audit_op_of(wr_op_t op)
{
	switch (op) {
	case WR_CREATE: return AUDIT_OP_CREATE;
	case WR_DELETE: return AUDIT_OP_DELETE;
	case WR_ADD_VALUES: return AUDIT_OP_ADD;
	case WR_REMOVE_VALUES: return AUDIT_OP_REMOVE;
	case WR_MODIFY_VALUES: return AUDIT_OP_MODIFY;
	case WR_HOME: return AUDIT_OP_HOME;
	case WR_UNHOME: return AUDIT_OP_UNHOME;
	case WR_TEMPLATE_PUT: return AUDIT_OP_TEMPLATE_PUT;
	case WR_TEMPLATE_DEL: return AUDIT_OP_TEMPLATE_DEL;
	}
	return 0;
}

/**
 * Run one job in its own savepoint and file its audit entry.
 * \return HDL_EOK, or a fatal error: the batch cannot commit (the job is answered RC_ERROR)
 */
static int run_job(writer_t *w, store_batch_t *b, wr_job_t *j)
{
	audit_rec_t ar;
	memset(&ar, 0, sizeof(ar));
	hdl_arena_reset(&w->arena);
	j->rcode = 0;
	j->message[0] = '\0';
	j->result_handle.p = NULL;
	j->result_handle.len = 0;
	jctx_t c = {.w = w,
	            .b = b,
	            .j = j,
	            .ar = &ar,
	            .now = j->now ? j->now : (uint32_t)time(NULL),
	            .id = {j->id_handle, j->id_index}};
	c.az.lookup = lookup_in_batch;
	c.az.ctx = b;
	c.az.server_admins = w->admins;
	c.az.n_server_admins = w->n_admins;
	c.az.max_depth = w->o.authz_max_depth;
	c.az.max_groups = w->o.authz_max_groups;
	ar.time = c.now;
	ar.op = audit_op_of(j->op);
	ar.transport = (uint8_t)j->transport;
	ar.flags = j->flags;
	ar.handle = j->handle.len > HDL_MAX_HANDLE_LEN ? (hdl_slice_t){j->handle.p, 0} : j->handle;
	ar.id_handle =
	    j->id_handle.len > HDL_MAX_HANDLE_LEN ? (hdl_slice_t){NULL, 0} : j->id_handle;
	ar.id_index = j->id_index;
	ar.count = 1;
	audit_set_peer(&ar, &j->peer, j->peer_len);

	int ret = store_batch_savepoint(b);
	if (ret != HDL_EOK)
		goto fatal;
	switch (j->op) {
	case WR_CREATE: ret = op_create(&c); break;
	case WR_DELETE: ret = op_delete(&c); break;
	case WR_ADD_VALUES: ret = op_add(&c); break;
	case WR_REMOVE_VALUES: ret = op_remove(&c); break;
	case WR_MODIFY_VALUES: ret = op_modify(&c); break;
	case WR_HOME: ret = op_home(&c, true); break;
	case WR_UNHOME: ret = op_home(&c, false); break;
	case WR_TEMPLATE_PUT: ret = op_template(&c, true); break;
	case WR_TEMPLATE_DEL: ret = op_template(&c, false); break;
	default: refuse(&c, HDL_RC_OPERATION_NOT_SUPPORTED, "Unknown operation"); break;
	}
	if (ret == HDL_EOK && j->rcode == HDL_RC_SUCCESS && c.noop) {
		/* nothing changed: nothing to keep, nothing to file */
		store_batch_rollback(b);
		return HDL_EOK;
	}
	if (ret == HDL_EOK && j->rcode == HDL_RC_SUCCESS) {
		/* the entry goes into the savepoint: the change and its entry commit together */
		ar.rcode = HDL_RC_SUCCESS;
		ret = audit_write(b, &ar);
		if (ret == HDL_EOK)
			return store_batch_release(b) == HDL_EOK ? HDL_EOK : store_batch_failed(b);
	}
	store_batch_rollback(b);
	ar.has_after = false;
	if (ret != HDL_EOK || j->rcode == 0 || j->rcode == HDL_RC_SUCCESS) {
		/* this job failed; the batch goes on unless the store says it cannot */
		log_err("writer: %s %.*s: %s", audit_op_name(ar.op), plen(j->handle),
		        (const char *)j->handle.p, hdl_strerror(ret));
		j->rcode = HDL_RC_ERROR;
		snprintf(j->message, sizeof(j->message), "Internal Error");
		if (store_batch_failed(b) != HDL_EOK)
			goto fatal;
	} else {
		log_peer(LOG_LVL_INFO, "writer: %s %.*s by %u:%.*s refused: %u %s",
		         audit_op_name(ar.op), plen(j->handle), (const char *)j->handle.p,
		         (unsigned)j->id_index, plen(j->id_handle), (const char *)j->id_handle.p,
		         (unsigned)j->rcode, j->message);
	}
	ar.rcode = j->rcode;
	ar.message = hdl_slice_str(j->message);
	ret = audit_write(b, &ar);
	if (ret == HDL_EOK)
		return HDL_EOK;
	log_err("writer: audit entry for %.*s: %s", plen(j->handle), (const char *)j->handle.p,
	        hdl_strerror(ret));
	if (store_batch_failed(b) == HDL_EOK)
		return HDL_EOK; /* the refusal stands; only its entry is missing (logged) */
fatal:
	ret = store_batch_failed(b) != HDL_EOK ? store_batch_failed(b) : ret;
	j->rcode = HDL_RC_ERROR;
	snprintf(j->message, sizeof(j->message), "Internal Error");
	return ret != HDL_EOK ? ret : HDL_ESTORE;
}

/* ---- the thread ------------------------------------------------------------------------------ */

static unsigned hist_slot(unsigned n)
{
	unsigned slot = 0;
	while (n > 1 && slot < 7) {
		n >>= 1;
		slot++;
	}
	return slot;
}

/** One retention step in \p b. */
static void prune_step(writer_t *w, store_batch_t *b)
{
	unsigned step = w->o.audit_prune_step, n = 0;
	uint32_t now = (uint32_t)time(NULL);
	uint32_t before = now > w->o.audit_retention_s ? now - w->o.audit_retention_s : 0;
	int ret = store_batch_audit_prune(b, before, step, &n);
	if (ret != HDL_EOK) {
		log_err("writer: audit retention step: %s", hdl_strerror(ret));
		n = 0;
	}
	/* a full step leaves more behind: take the next one right away */
	w->next_prune_ms = mono_ms() + (n >= step ? 0 : w->o.audit_prune_interval_ms);
	pthread_mutex_lock(&w->mu);
	w->st.pruned += n;
	pthread_mutex_unlock(&w->mu);
}

static bool prune_due(const writer_t *w)
{
	return w->o.audit_retention_s > 0 && mono_ms() >= w->next_prune_ms;
}

/** Periodic sync mode: fsync when due (or \p force) after commits. */
static void maybe_sync(writer_t *w, bool force)
{
	if (w->o.sync != WR_SYNC_PERIODIC || !w->dirty)
		return;
	uint64_t now = mono_ms();
	if (!force && now < w->next_sync_ms)
		return;
	if (store_sync(w->s) != HDL_EOK)
		log_err("writer: periodic fsync failed");
	w->dirty = false;
	w->next_sync_ms = now + w->o.sync_interval_ms;
	pthread_mutex_lock(&w->mu);
	w->st.syncs++;
	pthread_mutex_unlock(&w->mu);
}

/** Apply and commit one batch, then answer its jobs. */
static void run_batch(writer_t *w, wr_job_t **jobs, unsigned n)
{
	store_batch_t *b = NULL;
	bool failed = false;
	int ret = store_batch_begin(w->s, &b);
	if (ret != HDL_EOK) {
		log_err("writer: cannot begin a write transaction: %s", hdl_strerror(ret));
		failed = true;
	}
	for (unsigned i = 0; i < n; i++)
		jobs[i]->rcode = 0;
	for (unsigned i = 0; i < n && !failed; i++) {
		if (run_job(w, b, jobs[i]) != HDL_EOK)
			failed = true;
	}
	if (!failed) {
		ret = store_batch_commit(b);
		if (ret != HDL_EOK) {
			log_err("writer: commit of %u requests failed: %s", n, hdl_strerror(ret));
			failed = true;
		}
		w->dirty = true;
	} else if (b != NULL) {
		store_batch_abort(b);
	}
	uint64_t applied = 0, refused = 0, lost = 0;
	for (unsigned i = 0; i < n; i++) {
		wr_job_t *j = jobs[i];
		if (failed && (j->rcode == HDL_RC_SUCCESS || j->rcode == 0)) {
			j->rcode = HDL_RC_ERROR;
			snprintf(j->message, sizeof(j->message), "Internal Error");
			j->result_handle.p = NULL;
			j->result_handle.len = 0;
		}
		if (j->rcode == HDL_RC_SUCCESS)
			applied++;
		else if (failed && j->rcode == HDL_RC_ERROR)
			lost++;
		else
			refused++;
	}
	pthread_mutex_lock(&w->mu);
	w->st.batches++;
	w->st.applied += applied;
	w->st.refused += refused;
	w->st.failed += lost;
	w->st.jobs += n;
	if (n > w->st.max_batch)
		w->st.max_batch = n;
	w->st.batch_hist[hist_slot(n)]++;
	pthread_mutex_unlock(&w->mu);
	maybe_sync(w, false);
	for (unsigned i = 0; i < n; i++) {
		wr_job_t *j = jobs[i];
		j->next_ = NULL;
		j->done(j);
	}
}

/** Housekeeping: a retention step in its own small transaction; a periodic fsync. */
static void idle_work(writer_t *w)
{
	if (prune_due(w)) {
		store_batch_t *b = NULL;
		if (store_batch_begin(w->s, &b) == HDL_EOK) {
			prune_step(w, b);
			if (store_batch_commit(b) != HDL_EOK)
				log_err("writer: audit retention commit failed");
			w->dirty = true;
		} else {
			w->next_prune_ms = mono_ms() + w->o.audit_prune_interval_ms;
		}
	}
	maybe_sync(w, false);
}

static void deadline_in(struct timespec *ts, uint64_t us)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	uint64_t ns = (uint64_t)ts->tv_nsec + (us % 1000000u) * 1000u;
	ts->tv_sec += (time_t)(us / 1000000u + ns / 1000000000u);
	ts->tv_nsec = (long)(ns % 1000000000u);
}

/* Writer thread, under mu: the admin list of a reload replaces the one in use. */
static void take_admins(writer_t *w)
{
	srvadmin_set_t *a = w->next_admins;
	w->next_admins = NULL;
	for (uint32_t i = 0; i < w->n_admins; i++)
		free(w->admin_text[i]);
	free(w->admin_text);
	free(w->admins);
	w->admins = a->refs;
	w->admin_text = a->text;
	w->n_admins = a->n;
	a->refs = NULL;
	a->text = NULL;
	a->n = 0;
	srvadmin_set_free(a);
}

static void *writer_main(void *arg)
{
	writer_t *w = arg;
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (w->head == NULL && !w->stopping) {
			/* sleep until a job arrives or housekeeping is due */
			uint64_t now = mono_ms(), wake = UINT64_MAX;
			if (w->o.audit_retention_s > 0)
				wake = w->next_prune_ms;
			if (w->o.sync == WR_SYNC_PERIODIC && w->dirty && w->next_sync_ms < wake)
				wake = w->next_sync_ms;
			if (wake <= now) {
				pthread_mutex_unlock(&w->mu);
				idle_work(w);
				pthread_mutex_lock(&w->mu);
				continue;
			}
			if (wake == UINT64_MAX) {
				pthread_cond_wait(&w->cv, &w->mu);
			} else {
				struct timespec ts;
				deadline_in(&ts, (wake - now) * 1000u);
				pthread_cond_timedwait(&w->cv, &w->mu, &ts);
			}
		}
		if (w->head == NULL)
			break; /* stopping, nothing left */
		if (w->o.batch_wait_us > 0 && w->queued < w->o.batch_max && !w->stopping) {
			struct timespec ts;
			deadline_in(&ts, w->o.batch_wait_us);
			while (w->queued < w->o.batch_max && !w->stopping) {
				if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT)
					break;
			}
		}
		if (w->next_admins)
			take_admins(w);
		unsigned n = 0;
		while (w->head != NULL && n < w->o.batch_max) {
			wr_job_t *j = w->head;
			w->head = j->next_;
			w->batch[n++] = j;
		}
		if (w->head == NULL)
			w->tail = NULL;
		w->queued -= n;
		w->in_batch = n;
		pthread_mutex_unlock(&w->mu);
		run_batch(w, w->batch, n);
		if (prune_due(w))
			idle_work(w); /* a retention step between batches, in its own transaction */
		pthread_mutex_lock(&w->mu);
		w->in_batch = 0;
	}
	pthread_mutex_unlock(&w->mu);
	maybe_sync(w, true);
	return NULL;
}

/* ---- API ---------------------------------------------------------------------------------- */

static void writer_free(writer_t *w)
{
	srvadmin_set_free(w->next_admins);
	for (uint32_t i = 0; i < w->n_admins; i++)
		free(w->admin_text[i]);
	free(w->admin_text);
	free(w->admins);
	free(w->batch);
	free(w->rec);
	tpl_cache_free(w->tpl);
	hdl_arena_free(&w->arena);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w);
}

int writer_start(struct store *s, const writer_opts_t *o, writer_t **out)
{
	*out = NULL;
	if (s == NULL || o == NULL || o->queue_max == 0 || o->batch_max == 0)
		return HDL_EINVAL;
	writer_t *w = calloc(1, sizeof(*w));
	if (w == NULL)
		return HDL_ENOMEM;
	w->s = s;
	w->o = *o;
	w->o.server_admins = NULL;
	if (w->o.max_record_len == 0 || w->o.max_record_len > HDL_MAX_MESSAGE_LEN)
		w->o.max_record_len = WR_DEFAULT_MAX_RECORD;
	if (w->o.audit_prune_step == 0)
		w->o.audit_prune_step = WR_DEFAULT_PRUNE_STEP;
	if (w->o.audit_prune_interval_ms == 0)
		w->o.audit_prune_interval_ms = WR_DEFAULT_PRUNE_MS;
	if (w->o.sync_interval_ms == 0)
		w->o.sync_interval_ms = 1000;
	hdl_arena_init(&w->arena, NULL, 0, WR_ARENA_LIMIT);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&w->mu, NULL);
	int ret = HDL_ENOMEM;
	w->batch = calloc(o->batch_max, sizeof(*w->batch));
	if (w->batch == NULL)
		goto fail;
	w->tpl_lim = (tpl_limits_t){.max_items = o->tpl_max_items,
	                            .max_pattern = o->tpl_max_pattern,
	                            .max_value = o->tpl_max_value,
	                            .max_per_prefix = o->tpl_max_per_prefix};
	w->tpl_lim = tpl_limits_or_default(&w->tpl_lim);
	if (tpl_cache_new(&w->tpl_lim, o->tpl_cache_max ? o->tpl_cache_max : 64, &w->tpl) !=
	    HDL_EOK)
		goto fail;
	if (o->n_server_admins > 0) {
		w->admins = calloc(o->n_server_admins, sizeof(*w->admins));
		w->admin_text = calloc(o->n_server_admins, sizeof(*w->admin_text));
		if (w->admins == NULL || w->admin_text == NULL)
			goto fail;
		for (unsigned i = 0; i < o->n_server_admins; i++) {
			if ((w->admin_text[i] = strdup(o->server_admins[i])) == NULL)
				goto fail;
			w->n_admins = i + 1;
			if (authz_parse_admin(w->admin_text[i], &w->admins[i]) != HDL_EOK) {
				log_err("writer: server admin '%s' is not INDEX:HANDLE",
				        o->server_admins[i]);
				ret = HDL_EINVAL;
				goto fail;
			}
		}
	}
	if (w->o.sync == WR_SYNC_PERIODIC && (ret = store_set_no_sync(s, true)) != HDL_EOK)
		goto fail;
	w->next_prune_ms = mono_ms();
	w->next_sync_ms = mono_ms() + w->o.sync_interval_ms;
	if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
		log_err("writer: cannot start the thread");
		if (w->o.sync == WR_SYNC_PERIODIC)
			(void)store_set_no_sync(s, false);
		ret = HDL_ENOMEM;
		goto fail;
	}
	*out = w;
	return HDL_EOK;
fail:
	writer_free(w);
	return ret;
}

int writer_submit_many(writer_t *w, wr_job_t *const *jobs, unsigned n)
{
	if (w == NULL || jobs == NULL || n == 0)
		return HDL_EINVAL;
	for (unsigned i = 0; i < n; i++) {
		if (jobs[i] == NULL || jobs[i]->done == NULL)
			return HDL_EINVAL;
	}
	pthread_mutex_lock(&w->mu);
	if (w->stopping) {
		pthread_mutex_unlock(&w->mu);
		return HDL_EINVAL;
	}
	if (w->queued > w->o.queue_max || n > w->o.queue_max - w->queued) {
		w->st.rejected += n;
		pthread_mutex_unlock(&w->mu);
		return HDL_EAGAIN;
	}
	for (unsigned i = 0; i < n; i++) {
		wr_job_t *j = jobs[i];
		j->next_ = NULL;
		if (w->tail)
			w->tail->next_ = j;
		else
			w->head = j;
		w->tail = j;
	}
	w->queued += n;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	return HDL_EOK;
}

int writer_submit(writer_t *w, wr_job_t *j)
{
	return writer_submit_many(w, &j, 1);
}

unsigned writer_depth(const writer_t *w)
{
	writer_t *m = (writer_t *)w; /* the mutex, not the data, changes */
	pthread_mutex_lock(&m->mu);
	unsigned n = m->queued + m->in_batch;
	pthread_mutex_unlock(&m->mu);
	return n;
}

void writer_stats(writer_t *w, writer_stats_t *out)
{
	pthread_mutex_lock(&w->mu);
	*out = w->st;
	pthread_mutex_unlock(&w->mu);
}

void writer_set_admins(writer_t *w, srvadmin_set_t *set)
{
	if (w == NULL || set == NULL) {
		srvadmin_set_free(set);
		return;
	}
	pthread_mutex_lock(&w->mu);
	srvadmin_set_t *old = w->next_admins;
	w->next_admins = set;
	pthread_mutex_unlock(&w->mu);
	srvadmin_set_free(old); /* a reload the writer never took */
}

void writer_stop(writer_t *w)
{
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->mu);
	w->stopping = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	if (w->o.sync == WR_SYNC_PERIODIC)
		(void)store_set_no_sync(w->s, false);
	writer_free(w);
}

void writer_opts_from_conf(const struct conf *c, writer_opts_t *o)
{
	memset(o, 0, sizeof(*o));
	o->queue_max = c->write_queue_max;
	o->batch_max = c->write_batch_max;
	o->batch_wait_us = c->write_batch_wait_us;
	o->sync = c->write_sync && strcmp(c->write_sync, "periodic") == 0 ? WR_SYNC_PERIODIC
	                                                                  : WR_SYNC_FULL;
	o->sync_interval_ms = c->write_sync_interval_ms;
	o->server_admins = (const char *const *)c->server_admin;
	o->n_server_admins = c->n_server_admin;
	o->max_record_len = c->write_max_record;
	o->audit_retention_s = c->audit_retention_days > UINT32_MAX / 86400u
	                           ? UINT32_MAX
	                           : c->audit_retention_days * 86400u;
	o->audit_prune_step = c->audit_prune_step;
	o->authz_max_depth = c->authz_max_depth;
	o->authz_max_groups = c->authz_max_groups;
	o->tpl_max_items = c->template_max_items;
	o->tpl_max_pattern = c->template_pattern_max;
	o->tpl_max_value = c->template_value_max;
	o->tpl_max_per_prefix = c->template_max_per_prefix;
	o->tpl_cache_max = c->template_cache_max;
}
