/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Administrative requests: challenges, answers, the IDIS login, writes handed to the writer
 * thread, list-handles streamed from a snapshot (see admin.h and docs/registration.md).
 */
#include "node/server/admin.h"

#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hdl/auth.h"
#include "hdl/error.h"
#include "hdl/values.h"
#include "node/common/log.h"
#include "node/server/authz.h"
#include "node/server/obs.h"
#include "node/server/preq.h"
#include "node/server/reply.h"
#include "node/server/srvadmin.h"
#include "node/server/worker.h"
#include "node/store/store.h"

#define CHAL_BUCKETS 4096u
#define LIST_PER_MSG 50u            /**< handles per list message (as Handle.Net sends them) */
#define LIST_CHUNK_MSGS 20u         /**< list messages per wake-up at most */
#define PREQ_ARENA_FIRST 4096u
#define PREQ_ARENA_LIMIT (4u * 1024u * 1024u)

static const hdl_slice_t T_SECKEY = {(const uint8_t *)"HS_SECKEY", 9};
static const hdl_slice_t T_PUBKEY = {(const uint8_t *)"HS_PUBKEY", 9};

/* ---- challenges ------------------------------------------------------------------------------ */

typedef struct chal {
	struct chal *hnext;          /* hash chain */
	struct chal *older, *newer;  /* the table's age list */
	uint32_t session_id;
	uint32_t src;                /* preq_source_hash() of the requester */
	uint64_t expires_ms;
	uint8_t nonce[HDL_NONCE_LEN];
	uint8_t digest[HDL_DIGEST_MAX_LEN];
	uint8_t digest_len;
	uint8_t major, minor;        /* version of the challenge */
	size_t msg_len;              /* the original request (envelope + message) */
	uint8_t msg[];
} chal_t;

struct chal_table {
	pthread_mutex_t mu;
	chal_t *buckets[CHAL_BUCKETS];
	chal_t *oldest, *newest;
	unsigned count, max;
	size_t bytes, max_bytes;
	uint16_t src_count[1024]; /* challenges per source-hash slot */
};

int chal_table_new(unsigned max, size_t max_bytes, chal_table_t **out)
{
	chal_table_t *t = calloc(1, sizeof(*t));
	if (!t || pthread_mutex_init(&t->mu, NULL) != 0) {
		free(t);
		return HDL_ENOMEM;
	}
	t->max = max;
	t->max_bytes = max_bytes;
	*out = t;
	return HDL_EOK;
}

static void chal_unlink_locked(chal_table_t *t, chal_t *c)
{
	chal_t **pp = &t->buckets[c->session_id % CHAL_BUCKETS];
	while (*pp && *pp != c)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = c->hnext;
	if (c->older)
		c->older->newer = c->newer;
	else
		t->oldest = c->newer;
	if (c->newer)
		c->newer->older = c->older;
	else
		t->newest = c->older;
	t->count--;
	t->bytes -= c->msg_len;
	if (t->src_count[c->src % 1024])
		t->src_count[c->src % 1024]--;
}

void chal_table_free(chal_table_t *t)
{
	if (!t)
		return;
	while (t->oldest) {
		chal_t *c = t->oldest;
		chal_unlink_locked(t, c);
		free(c);
	}
	pthread_mutex_destroy(&t->mu);
	free(t);
}

void chal_table_expire(chal_table_t *t, uint64_t now_ms)
{
	chal_t *dead = NULL;
	pthread_mutex_lock(&t->mu);
	/* timeouts can change on reload, so the age list is not sorted by expiry: walk it all,
	 * but it holds at most auth_pending_max entries and this runs once a second */
	for (chal_t *c = t->oldest; c;) {
		chal_t *next = c->newer;
		if (c->expires_ms <= now_ms) {
			chal_unlink_locked(t, c);
			c->hnext = dead;
			dead = c;
		}
		c = next;
	}
	pthread_mutex_unlock(&t->mu);
	while (dead) {
		chal_t *c = dead;
		dead = c->hnext;
		free(c);
	}
}

unsigned chal_table_count(chal_table_t *t)
{
	pthread_mutex_lock(&t->mu);
	unsigned n = t->count;
	pthread_mutex_unlock(&t->mu);
	return n;
}

static chal_t *find_locked(chal_table_t *t, uint32_t sid)
{
	for (chal_t *c = t->buckets[sid % CHAL_BUCKETS]; c; c = c->hnext) {
		if (c->session_id == sid)
			return c;
	}
	return NULL;
}

/*
 * Insert \p c under a fresh session id. \return HDL_EOK, HDL_EAGAIN (table or source full),
 * HDL_EIO (no randomness)
 */
static int chal_put(chal_table_t *t, chal_t *c, unsigned per_source)
{
	int ret = HDL_EOK;
	pthread_mutex_lock(&t->mu);
	if (t->count >= t->max || t->bytes + c->msg_len > t->max_bytes ||
	    (c->src && t->src_count[c->src % 1024] >= per_source)) {
		ret = HDL_EAGAIN;
		goto out;
	}
	for (int tries = 0;; tries++) {
		uint32_t sid;
		if (tries == 16 || RAND_bytes((unsigned char *)&sid, sizeof(sid)) != 1) {
			ret = HDL_EIO;
			goto out;
		}
		sid &= 0x7fffffffu; /* Java clients read it as a positive int */
		if (sid != 0 && !find_locked(t, sid)) {
			c->session_id = sid;
			break;
		}
	}
	c->hnext = t->buckets[c->session_id % CHAL_BUCKETS];
	t->buckets[c->session_id % CHAL_BUCKETS] = c;
	c->newer = NULL;
	c->older = t->newest;
	if (t->newest)
		t->newest->newer = c;
	else
		t->oldest = c;
	t->newest = c;
	t->count++;
	t->bytes += c->msg_len;
	if (c->src)
		t->src_count[c->src % 1024]++;
out:
	pthread_mutex_unlock(&t->mu);
	return ret;
}

/* Would a challenge of \p len bytes from \p src fit now? (checked again by chal_put()) */
static bool chal_room(chal_table_t *t, uint32_t src, size_t len, unsigned per_source)
{
	pthread_mutex_lock(&t->mu);
	bool ok = t->count < t->max && t->bytes + len <= t->max_bytes &&
	          (!src || t->src_count[src % 1024] < per_source);
	pthread_mutex_unlock(&t->mu);
	return ok;
}

/* Take the challenge of \p sid out of the table (single use). NULL when there is none. */
static chal_t *chal_take(chal_table_t *t, uint32_t sid)
{
	pthread_mutex_lock(&t->mu);
	chal_t *c = find_locked(t, sid);
	if (c)
		chal_unlink_locked(t, c);
	pthread_mutex_unlock(&t->mu);
	return c;
}

void conn_auth_clear(conn_auth_t *a)
{
	free(a->id_handle);
	free(a->pending);
	memset(a, 0, sizeof(*a));
}

/* ---- helpers ------------------------------------------------------------------------------- */

bool admin_is_opcode(uint32_t op)
{
	switch (op) {
	case HDL_OC_CREATE_HANDLE:
	case HDL_OC_DELETE_HANDLE:
	case HDL_OC_ADD_VALUE:
	case HDL_OC_REMOVE_VALUE:
	case HDL_OC_MODIFY_VALUE:
	case HDL_OC_LIST_HANDLES:
	case HDL_OC_CHALLENGE_RESPONSE:
	case HDL_OC_HOME_NA:
	case HDL_OC_UNHOME_NA:
	case HDL_OC_LOGIN_ID_SYSTEM:
		return true;
	default:
		return false;
	}
}

/* The handle an admin request is about (body kinds of hdl_msg_decode). */
static hdl_slice_t target_of(const hdl_msg_t *m)
{
	switch (m->kind) {
	case HDL_BODY_VALUES: return m->u.values.handle;
	case HDL_BODY_HANDLE: return m->u.handle;
	case HDL_BODY_INDEXES: return m->u.indexes.handle;
	default: return (hdl_slice_t){NULL, 0};
	}
}

/* The reply fields of \p m (negotiated version, ids, opcode, flags, digest when asked). */
static void reply_of(reply_t *r, const hdl_msg_t *m)
{
	memset(r, 0, sizeof(*r));
	hdl_version_negotiate(&m->env, &r->major, &r->minor);
	r->session_id = m->env.session_id;
	r->request_id = m->env.request_id;
	r->opcode = m->hdr.opcode;
	r->opflags = m->hdr.opflags;
	reply_digest(r, m->signed_part.p, m->signed_part.len);
}

/* Is the prefix that \p handle belongs to homed here? (within a snapshot) */
static bool homed(dispatch_ctx_t *ctx, hdl_slice_t handle)
{
	uint8_t key[HDL_MAX_HANDLE_LEN + 8];
	size_t kl = store_key(ctx->node->store, handle, key, sizeof(key));
	if (kl == 0)
		return false;
	hdl_slice_t auth = hdl_name_authority((hdl_slice_t){key, (uint32_t)kl});
	return auth.len > 0 && store_is_homed(ctx->reader, auth);
}

/* ---- challenges -------------------------------------------------------------------------- */

/*
 * Answer \p m (whose reply fields are \p r) with RC 402: a nonce, and the digest of the request
 * (RD forced: the client signs nonce || digest). The request is kept until its answer comes.
 */
static size_t challenge(dispatch_ctx_t *ctx, const dispatch_origin_t *o, const hdl_msg_t *m,
                        const uint8_t *req, size_t len, const reply_t *r, uint8_t *out,
                        size_t cap)
{
	node_shared_t *n = ctx->node;
	bool conn_bound = m->env.session_id != 0 && o && o->auth;
	uint32_t src = preq_source_hash(o ? o->peer : NULL);
	if (!conn_bound && n->chal &&
	    !chal_room(n->chal, src, len, NODE_LIMIT(&n->limits, auth_pending_per_source))) {
		/* refused before anything is copied: a flood costs no allocation */
		log_peer(LOG_LVL_NOTICE, "admin: cannot keep another pending authentication");
		return reply_error(ctx, r, HDL_RC_SERVER_TOO_BUSY, "Too many pending authentications",
		                   out, cap);
	}
	chal_t *c = malloc(sizeof(*c) + len);
	if (!c)
		return reply_error(ctx, r, HDL_RC_SERVER_TOO_BUSY, "out of memory", out, cap);
	memset(c, 0, sizeof(*c));
	memcpy(c->msg, req, len);
	c->msg_len = len;
	c->major = r->major;
	c->minor = r->minor;
	c->src = src;
	c->expires_ms = worker_now_ms() + NODE_LIMIT(&n->limits, auth_timeout_ms);
	bool old = r->major == 2 && r->minor == 0;
	uint8_t alg = old ? HDL_DIGEST_MD5 : hdl_digest_alg_for(r->major, r->minor);
	size_t dl = 0;
	if (RAND_bytes(c->nonce, sizeof(c->nonce)) != 1 ||
	    hdl_digest(alg, m->signed_part.p, m->signed_part.len, c->digest, &dl) != HDL_EOK) {
		free(c);
		return reply_error(ctx, r, HDL_RC_SERVER_TOO_BUSY, "cannot make a challenge", out,
		                   cap);
	}
	c->digest_len = (uint8_t)dl;

	reply_t cr = *r;
	if (conn_bound) {
		/* a session the client chose (IDIS): the challenge lives on this connection */
		c->session_id = m->env.session_id;
		free(o->auth->pending);
		o->auth->pending = c;
	} else if (!n->chal) {
		free(c);
		return reply_error(ctx, r, HDL_RC_OPERATION_NOT_SUPPORTED,
		                   "Administration is not enabled here", out, cap);
	} else {
		int ret = chal_put(n->chal, c, NODE_LIMIT(&n->limits, auth_pending_per_source));
		if (ret != HDL_EOK) {
			free(c);
			log_peer(LOG_LVL_NOTICE, "admin: cannot keep another pending authentication (%s)",
			         ret == HDL_EAGAIN ? "table or source limit" : "no randomness");
			return reply_error(ctx, r, HDL_RC_SERVER_TOO_BUSY,
			                   "Too many pending authentications", out, cap);
		}
	}
	cr.session_id = c->session_id;
	wire_wr_t w = wire_wr_init(out, cap);
	if (old) {
		/* 2.0: no RD block; the body is BYTES nonce + BYTES MD5 digest */
		cr.rd_len = 0;
		reply_begin(ctx, &w, &cr, HDL_RC_AUTHENTICATION_NEEDED);
		wire_wr_lbytes(&w, c->nonce, sizeof(c->nonce));
		wire_wr_lbytes(&w, c->digest, c->digest_len);
	} else {
		cr.rd_alg = alg;
		memcpy(cr.rd, c->digest, c->digest_len);
		cr.rd_len = c->digest_len;
		cr.extra_flags |= HDL_OF_RD;
		reply_begin(ctx, &w, &cr, HDL_RC_AUTHENTICATION_NEEDED);
		wire_wr_lbytes(&w, c->nonce, sizeof(c->nonce));
	}
	return reply_end(&w);
}

/* ---- authentication ----------------------------------------------------------------------- */

uint32_t admin_verify_identity(dispatch_ctx_t *ctx, hdl_slice_t auth_type, hdl_slice_t id_handle,
                               uint32_t id_index, hdl_slice_t nonce, hdl_slice_t digest,
                               hdl_slice_t signed_response, bool old_format, uint32_t *index,
                               const char **msg)
{
	bool seckey = hdl_slice_eq_nocase(auth_type, T_SECKEY);
	bool pubkey = hdl_slice_eq_nocase(auth_type, T_PUBKEY);
	if (!seckey && !pubkey) {
		*msg = "Unknown authentication type";
		return HDL_RC_AUTHEN_ERROR;
	}
	/*
	 * The identity's record must be in this node's store (homed or not: an admin of a prefix
	 * being homed lives here before it is). Identities kept only elsewhere would need OC 201 to
	 * their server, which is not supported.
	 */
	hdl_value_t *vals = NULL;
	uint32_t nv = 0;
	int ret = store_get_values(ctx->reader, id_handle, &ctx->arena, &vals, &nv);
	if (ret == HDL_ENOENT) {
		*msg = "Identity handle not found";
		return HDL_RC_AUTHENTICATION_FAILED;
	}
	if (ret != HDL_EOK) {
		*msg = "Identity cannot be read";
		return HDL_RC_AUTHEN_ERROR;
	}
	bool tried = false;
	for (uint32_t i = 0; i < nv; i++) {
		const hdl_value_t *v = &vals[i];
		if (id_index != 0 && v->index != id_index)
			continue;
		if (!hdl_slice_eq_nocase(v->type, seckey ? T_SECKEY : T_PUBKEY))
			continue;
		tried = true;
		int vr;
		if (seckey) {
			vr = hdl_seckey_verify(v->data, nonce, digest, signed_response, old_format);
		} else {
			EVP_PKEY *key = NULL;
			vr = hdl_pkey_from_value(v->data.p, v->data.len, &key);
			if (vr == HDL_EOK)
				vr = hdl_pubkey_verify(key, nonce, digest, signed_response);
			EVP_PKEY_free(key);
		}
		if (vr == HDL_EOK) {
			*index = v->index;
			return HDL_RC_SUCCESS;
		}
	}
	*msg = tried ? "Authentication failed" : "No key of that type at that index";
	return HDL_RC_AUTHENTICATION_FAILED;
}

/* Verify the answer \p a to challenge \p c (admin_verify_identity() with its nonce, digest). */
static uint32_t verify_answer(dispatch_ctx_t *ctx, const hdl_body_answer_t *a, const chal_t *c,
                              uint32_t *index, const char **msg)
{
	return admin_verify_identity(ctx, a->auth_type, a->id_handle, a->id_index,
	                             (hdl_slice_t){c->nonce, sizeof(c->nonce)},
	                             (hdl_slice_t){c->digest, c->digest_len}, a->signed_response,
	                             c->major == 2 && c->minor == 0, index, msg);
}

/* ---- writes -------------------------------------------------------------------------------- */

static void on_job_done(wr_job_t *j)
{
	preq_post(j->owner);
}

static bool op_of(uint32_t opcode, wr_op_t *op)
{
	switch (opcode) {
	case HDL_OC_CREATE_HANDLE: *op = WR_CREATE; return true;
	case HDL_OC_DELETE_HANDLE: *op = WR_DELETE; return true;
	case HDL_OC_ADD_VALUE: *op = WR_ADD_VALUES; return true;
	case HDL_OC_REMOVE_VALUE: *op = WR_REMOVE_VALUES; return true;
	case HDL_OC_MODIFY_VALUE: *op = WR_MODIFY_VALUES; return true;
	case HDL_OC_HOME_NA: *op = WR_HOME; return true;
	case HDL_OC_UNHOME_NA: *op = WR_UNHOME; return true;
	default: return false;
	}
}

preq_t *admin_write_new(worker_t *w, const struct sockaddr_storage *peer, size_t extra,
                        const char **why)
{
	preq_t *p = preq_new(w, PREQ_WRITE, PREQ_ARENA_FIRST + extra, PREQ_ARENA_LIMIT);
	if (!p) {
		*why = "out of memory";
		return NULL;
	}
	if (!preq_source_take(w, p, preq_source_hash(peer))) {
		preq_free(p);
		log_peer(LOG_LVL_NOTICE, "admin: too many waiting requests, refusing a write");
		*why = "Too many requests waiting";
		return NULL;
	}
	return p;
}

int admin_write_submit(preq_t *p)
{
	writer_t *wr = p->w->node->writer;
	p->job.done = on_job_done;
	p->inflight = true;
	int ret = wr ? writer_submit(wr, &p->job) : HDL_EINVAL;
	if (ret != HDL_EOK) {
		p->inflight = false;
		log_peer(LOG_LVL_NOTICE, "admin: write queue full, answering server busy");
	}
	return ret;
}

bool admin_preq_take(worker_t *w, preq_t *p, const struct sockaddr_storage *peer)
{
	return preq_source_take(w, p, preq_source_hash(peer));
}

/*
 * Run a decoded admin request \p m (bytes \p req, \p len) for an authenticated identity.
 * Writes are copied into a preq_t and handed to the writer; *wait is set.
 */
static size_t run_write(dispatch_ctx_t *ctx, const dispatch_origin_t *o, const uint8_t *req,
                        size_t len, hdl_slice_t id_handle, uint32_t id_index, const reply_t *r,
                        uint8_t *out, size_t cap, bool *wait)
{
	node_shared_t *n = ctx->node;
	worker_t *w = worker_self;
	if (!o || !o->attach || !w || !n->writer)
		return reply_error(ctx, r, HDL_RC_SERVER_TOO_BUSY, "Writes are not accepted here",
		                   out, cap);
	const char *why = NULL;
	preq_t *p = admin_write_new(w, o->peer, len, &why);
	if (!p)
		return reply_error(ctx, r, HDL_RC_SERVER_TOO_BUSY, why, out, cap);
	/* the request's own copy: the decoded values point into it */
	hdl_slice_t copy = hdl_arena_dup(&p->arena, req, len);
	hdl_slice_t idh = hdl_arena_dup(&p->arena, id_handle.p, id_handle.len);
	hdl_msg_t pm;
	memset(&pm, 0, sizeof(pm));
	if (copy.len != len || idh.len != id_handle.len ||
	    hdl_msg_decode(copy.p, copy.len, &p->arena, &pm) != HDL_EOK) {
		preq_free(p);
		return reply_error(ctx, r, HDL_RC_SERVER_TOO_BUSY, "out of memory", out, cap);
	}
	p->reply = *r;
	wr_job_t *j = &p->job;
	(void)op_of(pm.hdr.opcode, &j->op);
	if (pm.hdr.opflags & HDL_OF_OVRW)
		j->flags |= WR_F_OVERWRITE;
	if (pm.hdr.opflags & HDL_OF_MINT)
		j->flags |= WR_F_MINT;
	j->handle = target_of(&pm);
	if (pm.kind == HDL_BODY_VALUES) {
		j->values = pm.u.values.values;
		j->n_values = pm.u.values.n_values;
	} else if (pm.kind == HDL_BODY_INDEXES) {
		j->indexes = pm.u.indexes.indexes;
		j->n_indexes = pm.u.indexes.n_indexes;
	}
	j->id_handle = idh;
	j->id_index = id_index;
	/* server admins: the writer knows them (writer_opts_t) and checks in its transaction */
	j->transport = o->transport;
	if (o->peer && o->peer_len <= sizeof(j->peer)) {
		memcpy(&j->peer, o->peer, o->peer_len);
		j->peer_len = o->peer_len;
	}
	j->now = now_of(ctx);
	if (admin_write_submit(p) != HDL_EOK) {
		preq_free(p);
		return reply_error(ctx, r, HDL_RC_SERVER_TOO_BUSY, "Server busy", out, cap);
	}
	o->attach(o->tctx, p);
	*wait = true;
	return 0;
}

/* ---- list handles ----------------------------------------------------------------------------- */

/* LIST_HANDLES for an authenticated identity: authorize, then stream from a snapshot. */
static size_t run_list(dispatch_ctx_t *ctx, const dispatch_origin_t *o, const hdl_msg_t *m,
                       hdl_slice_t id_handle, uint32_t id_index, const reply_t *r, uint8_t *out,
                       size_t cap, bool *wait)
{
	node_shared_t *n = ctx->node;
	worker_t *w = worker_self;
	if (!NODE_LIMIT(&n->limits, allow_list_handles))
		return reply_error(ctx, r, HDL_RC_OPERATION_NOT_SUPPORTED,
		                   "Server does not allow listing handles", out, cap);
	if (!o || !o->attach || !o->can_stream || !w)
		return reply_error(ctx, r, HDL_RC_OPERATION_NOT_SUPPORTED,
		                   "List handles is served over TCP", out, cap);
	uint8_t key[HDL_MAX_HANDLE_LEN + 8];
	size_t kl = store_key(n->store, m->u.handle, key, sizeof(key));
	hdl_slice_t prefix = hdl_name_authority((hdl_slice_t){key, (uint32_t)kl});
	if (kl == 0 || prefix.len == 0)
		return reply_error(ctx, r, HDL_RC_INVALID_HANDLE, "Invalid prefix handle", out, cap);
	/* the LIST_HANDLES permission in the prefix handle's HS_ADMIN values (or a server admin) */
	uint8_t ph[HDL_MAX_HANDLE_LEN + 8];
	int pl = snprintf((char *)ph, sizeof(ph), "0.NA/%.*s", (int)prefix.len,
	                  (const char *)prefix.p);
	hdl_slice_t pvals = {NULL, 0};
	int ret = store_get(ctx->reader, (hdl_slice_t){ph, (uint32_t)pl}, &pvals);
	if (ret != HDL_EOK && ret != HDL_ENOENT)
		return reply_error(ctx, r, HDL_RC_AUTHEN_ERROR, "Cannot read the prefix handle", out,
		                   cap);
	const srvadmin_set_t *sa = atomic_load_explicit(&n->admins, memory_order_acquire);
	authz_t az = {
	    .lookup = authz_lookup_reader,
	    .ctx = ctx->reader,
	    .server_admins = sa ? sa->refs : NULL,
	    .n_server_admins = sa ? sa->n : 0,
	};
	int granted = authz_check(&az, (hdl_ref_t){id_handle, id_index}, pvals,
	                          HDL_ADM_LIST_HANDLES, &ctx->arena);
	if (granted != AUTHZ_GRANTED)
		return reply_error(ctx, r, granted == AUTHZ_DENIED ? HDL_RC_INVALID_ADMIN
		                                                   : HDL_RC_AUTHEN_ERROR,
		                   "Not authorized to list handles", out, cap);
	preq_t *p = preq_new(w, PREQ_LIST, PREQ_ARENA_FIRST, PREQ_ARENA_LIMIT);
	if (!p)
		return reply_error(ctx, r, HDL_RC_SERVER_TOO_BUSY, "out of memory", out, cap);
	if (!preq_source_take(w, p, preq_source_hash(o->peer))) {
		preq_free(p);
		return reply_error(ctx, r, HDL_RC_SERVER_TOO_BUSY, "Too many requests waiting", out,
		                   cap);
	}
	hdl_slice_t pfx = hdl_arena_dup(&p->arena, prefix.p, prefix.len);
	p->list_after = hdl_arena_alloc(&p->arena, STORE_RAW_KEY_MAX);
	if (pfx.len != prefix.len || !p->list_after) {
		preq_free(p);
		return reply_error(ctx, r, HDL_RC_SERVER_TOO_BUSY, "out of memory", out, cap);
	}
	p->list_prefix = (uint8_t *)pfx.p;
	p->list_prefix_len = pfx.len;
	p->reply = *r;
	p->job.transport = o->transport; /* for the metrics */
	o->attach(o->tctx, p);
	/* the first chunk goes out from the completion queue, like every later one */
	p->inflight = true;
	preq_post(p);
	*wait = true;
	return 0;
}

typedef struct list_acc {
	hdl_slice_t *names; /* up to want + 1 */
	hdl_slice_t *raws;  /* their LMDB keys (the cursor) */
	uint32_t n, want;
	size_t bytes, budget;
	bool stopped;       /* the last one collected is one too many: more follow */
	hdl_arena_t *a;
} list_acc_t;

static int list_cb(void *arg, hdl_slice_t raw, hdl_slice_t key, hdl_slice_t vals)
{
	list_acc_t *acc = arg;
	(void)vals;
	acc->names[acc->n] = hdl_arena_dup(acc->a, key.p, key.len);
	acc->raws[acc->n] = hdl_arena_dup(acc->a, raw.p, raw.len);
	if (acc->names[acc->n].len != key.len || acc->raws[acc->n].len != raw.len)
		return -1;
	acc->n++;
	acc->bytes += 4u + key.len;
	if (acc->n > acc->want || acc->bytes > acc->budget) {
		acc->stopped = true;
		return 1;
	}
	return 0;
}

/*
 * The next messages of a list: up to LIST_CHUNK_MSGS messages of LIST_PER_MSG handles, and no
 * more than half of \p cap of names, from a fresh snapshot, resuming after p->list_after.
 */
static size_t list_chunk(dispatch_ctx_t *ctx, preq_t *p, uint8_t *out, size_t cap)
{
	uint32_t want = LIST_PER_MSG * LIST_CHUNK_MSGS;
	size_t used = 0;
	reply_t r = p->reply;
	hdl_arena_reset(&ctx->arena);
	list_acc_t acc = {.want = want, .budget = cap / 2, .a = &ctx->arena};
	acc.names = hdl_arena_alloc(&ctx->arena, sizeof(*acc.names) * (want + 1));
	acc.raws = hdl_arena_alloc(&ctx->arena, sizeof(*acc.raws) * (want + 1));
	p->more = false;
	if (!acc.names || !acc.raws)
		return reply_error(ctx, &r, HDL_RC_SERVER_TOO_BUSY, "out of memory", out, cap);
	int ret = store_reader_begin(ctx->reader);
	if (ret == HDL_EOK) {
		ret = store_foreach_from(ctx->reader, (hdl_slice_t){p->list_prefix, p->list_prefix_len},
		                         (hdl_slice_t){p->list_after, p->list_after_len}, list_cb,
		                         &acc);
		store_reader_end(ctx->reader); /* the names were copied */
	}
	if (ret != HDL_EOK) {
		log_err("list handles: %s", hdl_strerror(ret));
		return reply_error(ctx, &r, HDL_RC_ERROR, "Cannot list handles", out, cap);
	}
	bool more = acc.stopped;
	uint32_t n = more ? acc.n - 1 : acc.n;
	/* one message when the list is empty; otherwise LIST_PER_MSG handles per message */
	uint32_t first = 0;
	do {
		uint32_t k = n - first < LIST_PER_MSG ? n - first : LIST_PER_MSG;
		bool last = first + k >= n && !more;
		wire_wr_t w = wire_wr_init(out + used, cap - used);
		r.extra_flags = last ? 0 : HDL_OF_CN;
		reply_begin(ctx, &w, &r, HDL_RC_SUCCESS);
		wire_wr_u32(&w, k);
		for (uint32_t i = 0; i < k; i++)
			wire_wr_slice(&w, acc.names[first + i]);
		size_t ml = reply_end(&w);
		if (ml == 0) /* the byte budget keeps every chunk within cap */
			return reply_error(ctx, &r, HDL_RC_ERROR, "list chunk too large", out, cap);
		used += ml;
		first += k;
	} while (first < n);
	if (n > 0) {
		memcpy(p->list_after, acc.raws[n - 1].p, acc.raws[n - 1].len);
		p->list_after_len = acc.raws[n - 1].len;
	}
	p->list_sent += n;
	p->more = more;
	return used;
}

/* ---- dispatch ------------------------------------------------------------------------------- */

/* Run \p m for the authenticated identity (its reply fields \p r). */
static size_t run_authenticated(dispatch_ctx_t *ctx, const dispatch_origin_t *o,
                                const hdl_msg_t *m, const uint8_t *req, size_t len,
                                hdl_slice_t id_handle, uint32_t id_index, const reply_t *r,
                                uint8_t *out, size_t cap, bool *wait)
{
	if (m->hdr.opcode == HDL_OC_LIST_HANDLES)
		return run_list(ctx, o, m, id_handle, id_index, r, out, cap, wait);
	return run_write(ctx, o, req, len, id_handle, id_index, r, out, cap, wait);
}

/* The answer (OC 200) to a challenge: verify, then run the remembered request. */
static size_t on_answer(dispatch_ctx_t *ctx, const dispatch_origin_t *o, const hdl_msg_t *m,
                        const reply_t *r, uint8_t *out, size_t cap, bool *wait)
{
	node_shared_t *n = ctx->node;
	chal_t *c = NULL;
	uint32_t sid = m->env.session_id;
	if (o && o->auth && o->auth->pending && o->auth->pending->session_id == sid) {
		c = o->auth->pending;
		o->auth->pending = NULL;
	} else if (sid != 0 && n->chal) {
		c = chal_take(n->chal, sid);
	}
	if (!c || c->expires_ms <= worker_now_ms()) {
		free(c);
		log_peer(LOG_LVL_INFO, "admin: answer for unknown or expired session %u", sid);
		return reply_error(ctx, r, HDL_RC_AUTHEN_TIMEOUT, "Challenge unknown or expired", out,
		                   cap);
	}
	const hdl_body_answer_t *a = &m->u.answer;
	const char *msg = NULL;
	uint32_t index = 0;
	uint32_t rc = verify_answer(ctx, a, c, &index, &msg);
	if (rc != HDL_RC_SUCCESS) {
		log_peer(LOG_LVL_NOTICE, "admin: authentication of %u:%.*s failed: %s", a->id_index,
		         (int)(a->id_handle.len > 200 ? 200 : a->id_handle.len),
		         (const char *)a->id_handle.p, msg);
		free(c);
		return reply_error(ctx, r, rc, msg, out, cap);
	}
	/* the remembered request, answered with the OC 200's request id (as Handle.Net does) */
	hdl_msg_t om;
	memset(&om, 0, sizeof(om));
	int ret = hdl_msg_decode(c->msg, c->msg_len, &ctx->arena, &om);
	if (ret != HDL_EOK) {
		free(c);
		return reply_error(ctx, r, HDL_RC_SERVER_TOO_BUSY, "out of memory", out, cap);
	}
	reply_t fr;
	reply_of(&fr, &om);
	fr.request_id = m->env.request_id;
	size_t len;
	if (om.hdr.opcode == HDL_OC_LOGIN_ID_SYSTEM) {
		conn_auth_t *ca = o ? o->auth : NULL;
		if (!ca) {
			free(c);
			return reply_error(ctx, &fr, HDL_RC_OPERATION_NOT_SUPPORTED,
			                   "Login needs a persistent connection", out, cap);
		}
		uint8_t *idh = malloc(a->id_handle.len ? a->id_handle.len : 1);
		if (!idh) {
			free(c);
			return reply_error(ctx, &fr, HDL_RC_SERVER_TOO_BUSY, "out of memory", out, cap);
		}
		memcpy(idh, a->id_handle.p, a->id_handle.len);
		free(ca->id_handle);
		ca->id_handle = idh;
		ca->id_handle_len = a->id_handle.len;
		ca->id_index = index;
		ca->session_id = om.env.session_id;
		log_info("admin: %u:%.*s logged in on a connection (session %u)", index,
		         (int)(a->id_handle.len > 200 ? 200 : a->id_handle.len),
		         (const char *)a->id_handle.p, ca->session_id);
		wire_wr_t w = wire_wr_init(out, cap);
		reply_begin(ctx, &w, &fr, HDL_RC_SUCCESS);
		len = reply_end(&w);
	} else {
		len = run_authenticated(ctx, o, &om, c->msg, c->msg_len, a->id_handle, index, &fr, out,
		                        cap, wait);
	}
	free(c);
	return len;
}

size_t admin_dispatch(dispatch_ctx_t *ctx, const dispatch_origin_t *o, const hdl_msg_t *m,
                      const uint8_t *req, size_t len, uint8_t *out, size_t cap, bool *wait)
{
	reply_t r;
	size_t n = 0;
	*wait = false;
	reply_of(&r, m);
	if (o && o->transport == WR_T_UDP) {
		/*
		 * Our HS_SITE says the UDP interface is query-only (as Handle.Net's is): a challenge
		 * over UDP would go to an address nobody verified, and be larger than the request.
		 */
		return reply_error(ctx, &r, HDL_RC_OPERATION_NOT_SUPPORTED,
		                   "Administration is served over TCP and HTTP", out, cap);
	}
	int ret = store_reader_begin(ctx->reader);
	if (ret != HDL_EOK) {
		log_err("store snapshot failed: %s", hdl_strerror(ret));
		return reply_error(ctx, &r, HDL_RC_SERVER_TOO_BUSY, "store unavailable", out, cap);
	}
	uint32_t op = m->hdr.opcode;
	if (op == HDL_OC_CHALLENGE_RESPONSE) {
		if (m->kind != HDL_BODY_CHAL_ANSWER)
			n = reply_error(ctx, &r, HDL_RC_PROTOCOL_ERROR, "Bad challenge answer", out, cap);
		else
			n = on_answer(ctx, o, m, &r, out, cap, wait);
		goto out;
	}
	if (op == HDL_OC_LOGIN_ID_SYSTEM) {
		if (!o || !o->auth || m->env.session_id == 0)
			n = reply_error(ctx, &r, HDL_RC_OPERATION_NOT_SUPPORTED,
			                "Login needs a persistent connection and a session id", out,
			                cap);
		else
			n = challenge(ctx, o, m, req, len, &r, out, cap);
		goto out;
	}
	hdl_slice_t target = target_of(m);
	if (target.len == 0 || hdl_name_check(target.p, target.len) != HDL_EOK) {
		n = reply_error(ctx, &r, HDL_RC_INVALID_HANDLE, "Invalid handle", out, cap);
		goto out;
	}
	if (op != HDL_OC_HOME_NA && !homed(ctx, target)) {
		n = reply_error(ctx, &r, HDL_RC_SERVER_NOT_RESP, "That prefix doesn't live here", out,
		                cap);
		goto out;
	}
	conn_auth_t *ca = o ? o->auth : NULL;
	if (ca && ca->id_handle && ca->session_id != 0 && m->env.session_id == ca->session_id)
		n = run_authenticated(ctx, o, m, req, len,
		                      (hdl_slice_t){ca->id_handle, ca->id_handle_len}, ca->id_index,
		                      &r, out, cap, wait);
	else
		n = challenge(ctx, o, m, req, len, &r, out, cap);
out:
	store_reader_end(ctx->reader);
	return n;
}

/* Count a request that waited, once its (last) answer is built (obs.h). */
static void count_waited(dispatch_ctx_t *ctx, const preq_t *p, uint32_t rcode)
{
	if (ctx->obs)
		obs_count(ctx->obs, obs_transport(p->job.transport), p->reply.opcode, rcode, true,
		          ctx->timing ? p->started_ms * 1000000u : 0);
}

size_t admin_preq_reply(dispatch_ctx_t *ctx, preq_t *p, uint8_t *out, size_t cap)
{
	if (p->kind == PREQ_LIST) {
		size_t n = list_chunk(ctx, p, out, cap);
		if (!p->more) {
			wire_rd_t hr =
			    wire_rd_init(out + HDL_ENVELOPE_LEN, n >= HDL_ENVELOPE_LEN + 8 ? 8 : 0);
			wire_rd_skip(&hr, 4);
			uint32_t rc = wire_rd_u32(&hr);
			count_waited(ctx, p, hr.err ? HDL_RC_ERROR : rc);
		}
		return n;
	}
	const wr_job_t *j = &p->job;
	count_waited(ctx, p, j->rcode);
	if (j->rcode != HDL_RC_SUCCESS)
		return reply_error(ctx, &p->reply, j->rcode, j->message, out, cap);
	wire_wr_t w = wire_wr_init(out, cap);
	reply_begin(ctx, &w, &p->reply, HDL_RC_SUCCESS);
	if (j->op == WR_CREATE)
		wire_wr_slice(&w, j->result_handle.len ? j->result_handle : j->handle);
	return reply_end(&w);
}
