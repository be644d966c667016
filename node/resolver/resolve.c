/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief The resolution state machine (resolve.h): resolutions ("jobs") keyed like the cache,
 *        one per key and engine, each either leading a flight (asking upstream, maybe through
 *        nested lookups of prefix and service handles) or following another engine's; clients
 *        and parent resolutions wait on them; one sorted timer list; a queue for what other
 *        threads post.
 */
#include "node/resolver/resolve.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hdl/error.h"
#include "hdl/values.h"
#include "node/common/log.h"
#include "node/resolver/dcache.h"
#include "node/resolver/dflight.h"
#include "node/resolver/rhash.h"
#include "node/resolver/upconf.h"

#define TABLE_BUCKETS 1024u
#define READ_STACK    4096u                /**< cache reads try a stack buffer of this size first */
#define JOB_ARENA     (4u * 1024u * 1024u) /**< decoded upstream answer of one resolution */
#define PLAIN_MASK    ((1u << UPS_TCP) | (1u << UPS_UDP) | (1u << UPS_HTTP))

enum { T_JOB = 1, T_CLIENT = 2 };

/* Job states. */
enum {
	J_NEW = 0,
	J_FOLLOW,  /* waiting for another engine's flight (dflight follower) */
	J_PREFIX,  /* waiting for the prefix handle (child) */
	J_SERVICE, /* waiting for a service handle's sites (child) */
	J_QUERY,   /* waiting for upstream */
	J_DONE,
};

struct res_job {
	res_engine_t *e;
	res_job_t *hnext;         /* table chain (while in_table) */
	res_job_t *next, *prev;   /* every job of the engine */
	res_job_t *parents;       /* jobs waiting for this one (wnext / wprev) */
	res_job_t *wnext, *wprev; /* in the child's parents list */
	res_job_t *child;         /* the job this one waits for */
	res_client_t *clients;    /* clients waiting */
	unsigned pins;            /* on some caller's stack: not freed */
	int state;
	bool in_table;
	bool leading;      /* leads its flight: must finish or abandon it */
	bool following;    /* linked as a follower */
	bool post_pending; /* a notification is on its way (dflight_leave() said so) */
	bool orphan;       /* nobody wants it any more: free when the notification came */
	bool refresh;      /* do not read the cache (prefetch, AT) */
	bool at;           /* primary sites only, AT sent upstream */
	bool forwarded;    /* the targets come from a forward rule: REC sent */
	bool stale_seen;   /* a stale entry existed when it started */
	uint8_t depth;
	uint8_t recursion;
	unsigned hops;
	uint64_t deadline;
	res_tnode_t timer;
	void *qh;
	/* the question (owned, in the same block) */
	hdl_slice_t handle;
	uint32_t *idx;
	uint32_t n_idx;
	hdl_slice_t *types;
	uint32_t n_types;
	uint8_t *key;
	size_t klen;
	uint64_t khash;
	/* where it asks */
	ups_target_t *targets;
	unsigned n_targets;
	uint64_t visited[RES_MAX_VISITED];
	unsigned n_visited;
	/* result */
	int status; /* HDL_EOK: rcode (+ vals); else the failure */
	uint32_t rcode;
	const char *msg;
	uint8_t *vals;
	size_t vlen;
	/* posted by another thread (dflight done()) */
	res_job_t *qnext;
	int p_status;
	uint32_t p_rcode;
	uint8_t *p_vals;
	size_t p_len;
	atomic_int p_ran;
	dflight_waiter_t fw;
	hdl_arena_t arena;
};

struct res_engine {
	res_ops_t ops;
	void *env;
	res_conf_t conf;
	res_shared_t sh;
	uint64_t hkey[2];
	res_job_t *table[TABLE_BUCKETS];
	res_job_t *jobs;
	unsigned n_jobs;
	res_tnode_t *thead, *ttail;
	uint64_t armed_at;
	pthread_mutex_t pmu;
	res_job_t *phead, *ptail;
	bool closing;
	bool in_timers;
	res_stats_t st;
};

static const hdl_slice_t T_SITE = {(const uint8_t *)"HS_SITE", 7};
static const hdl_slice_t T_SITE6 = {(const uint8_t *)"HS_SITE.6", 9};
static const hdl_slice_t T_SITE_PFX = {(const uint8_t *)"HS_SITE.PREFIX", 14};
static const hdl_slice_t T_NA_DELEGATE = {(const uint8_t *)"HS_NA_DELEGATE", 14};
static const hdl_slice_t T_SERV = {(const uint8_t *)"HS_SERV", 7};
static const hdl_slice_t T_SERV_PFX = {(const uint8_t *)"HS_SERV.PREFIX", 14};

/* What a prefix handle is asked for, and a service handle (RFC 3651 §3.2). */
static const hdl_slice_t PREFIX_TYPES[] = {{(const uint8_t *)"HS_SITE", 7},
                                           {(const uint8_t *)"HS_SITE.6", 9},
                                           {(const uint8_t *)"HS_SERV", 7}};
static const hdl_slice_t SERVICE_TYPES[] = {{(const uint8_t *)"HS_SITE", 7},
                                            {(const uint8_t *)"HS_SITE.6", 9}};

static void job_route(res_job_t *j);
static void job_finish(res_job_t *j);
static void child_done(res_job_t *p, res_job_t *c);
static void on_flight_done(dflight_waiter_t *w, const dflight_result_t *r);
static void job_unwaited(res_job_t *j);
static void maybe_free(res_job_t *j);

void res_conf_default(res_conf_t *c)
{
	memset(c, 0, sizeof(*c));
	c->timeout_ms = 5000;
	c->try_timeout_ms = 2000;
	c->stale_budget_ms = 1800;
	c->stale_hold_ms = 30000;
	c->max_referrals = 8;
	c->max_recursion = 10;
	c->max_jobs = 4096;
	c->site_plaintext = true;
}

/* ---- holds ---------------------------------------------------------------------------------- */

/*
 * Buckets of HOLD_WAYS slots (64 bytes): a held key takes any slot of its bucket, so keys whose
 * hashes meet keep their holds until more than HOLD_WAYS of one bucket are held at once; then
 * the hold ending first makes room. (One slot per hash forgot a hold whenever two held keys
 * shared it, and each of the two was then refreshed at every request: B5s, docs/delegation.md.)
 */
#define HOLD_WAYS 8u

struct res_hold {
	uint64_t k[2];
	size_t mask; /* buckets - 1 */
	unsigned ways;
	_Atomic uint64_t slot[];
};

/* A slot holds a 24-bit tag of the key and 40 bits of deciseconds (3000 years of uptime). */
#define HOLD_TAG(h)  ((h) >> 40)
#define HOLD_TIME(v) ((v) & ((1ull << 40) - 1))

int res_hold_new(unsigned slots, res_hold_t **out)
{
	if (slots == 0)
		return HDL_EINVAL;
	size_t n = 1;
	while (n < slots)
		n <<= 1;
	res_hold_t *h = calloc(1, sizeof(*h) + n * sizeof(h->slot[0]));
	if (!h)
		return HDL_ENOMEM;
	rhash_new_key(h->k);
	h->ways = n < HOLD_WAYS ? (unsigned)n : HOLD_WAYS;
	h->mask = n / h->ways - 1;
	*out = h;
	return HDL_EOK;
}

void res_hold_free(res_hold_t *h)
{
	free(h);
}

/* The bucket of the key hashed to \p x. */
static _Atomic uint64_t *hold_bucket(res_hold_t *h, uint64_t x)
{
	return &h->slot[(x & h->mask) * h->ways];
}

void res_hold_set(res_hold_t *h, const uint8_t *key, size_t klen, uint64_t until_ms)
{
	if (!h)
		return;
	uint64_t x = rhash_sip13(key, klen, h->k);
	_Atomic uint64_t *b = hold_bucket(h, x);
	if (until_ms == 0) {
		/* clear only our own hold, not another key's in the bucket */
		for (unsigned i = 0; i < h->ways; i++) {
			uint64_t old = atomic_load_explicit(&b[i], memory_order_relaxed);
			if (old && HOLD_TAG(old) == HOLD_TAG(x))
				atomic_compare_exchange_strong(&b[i], &old, 0);
		}
		return;
	}
	uint64_t ds = (until_ms + 99) / 100;
	uint64_t v = HOLD_TAG(x) << 40 | (ds & ((1ull << 40) - 1));
	/* our slot when the key has one, else the empty one or the one ending first; a lost race
	 * (another thread took that slot meanwhile) looks again, a few times */
	for (unsigned tries = 0; tries < 4; tries++) {
		unsigned pick = 0;
		uint64_t pick_v = UINT64_MAX;
		for (unsigned i = 0; i < h->ways; i++) {
			uint64_t o = atomic_load_explicit(&b[i], memory_order_relaxed);
			if (o && HOLD_TAG(o) == HOLD_TAG(x)) {
				pick = i;
				pick_v = o;
				break;
			}
			if (pick_v == UINT64_MAX || HOLD_TIME(o) < HOLD_TIME(pick_v)) {
				pick = i;
				pick_v = o;
			}
		}
		if (atomic_compare_exchange_strong(&b[pick], &pick_v, v))
			return;
	}
}

bool res_hold_active(res_hold_t *h, const uint8_t *key, size_t klen, uint64_t now_ms)
{
	if (!h)
		return false;
	uint64_t x = rhash_sip13(key, klen, h->k);
	_Atomic uint64_t *b = hold_bucket(h, x);
	for (unsigned i = 0; i < h->ways; i++) {
		uint64_t v = atomic_load_explicit(&b[i], memory_order_relaxed);
		if (v && HOLD_TAG(v) == HOLD_TAG(x) && HOLD_TIME(v) * 100 > now_ms)
			return true;
	}
	return false;
}

/* ---- timers -----------------------------------------------------------------------------------
 */

static void rearm(res_engine_t *e)
{
	if (e->in_timers)
		return; /* res_timers() arms once at its end */
	uint64_t at = e->thead ? e->thead->at : UINT64_MAX;
	if (at != e->armed_at) {
		e->armed_at = at;
		e->ops.arm(e->env, at);
	}
}

static void timer_del(res_engine_t *e, res_tnode_t *t)
{
	if (!t->on)
		return;
	if (t->prev)
		t->prev->next = t->next;
	else
		e->thead = t->next;
	if (t->next)
		t->next->prev = t->prev;
	else
		e->ttail = t->prev;
	t->next = t->prev = NULL;
	t->on = false;
	rearm(e);
}

/* Insert in order, from the tail: deadlines mostly come in the order they are set. */
static void timer_add(res_engine_t *e, res_tnode_t *t, uint64_t at, uint8_t kind)
{
	timer_del(e, t);
	t->at = at;
	t->kind = kind;
	res_tnode_t *p = e->ttail;
	while (p && p->at > at)
		p = p->prev;
	t->prev = p;
	t->next = p ? p->next : e->thead;
	if (t->next)
		t->next->prev = t;
	else
		e->ttail = t;
	if (p)
		p->next = t;
	else
		e->thead = t;
	t->on = true;
	rearm(e);
}

/* ---- small helpers ----------------------------------------------------------------------------
 */

static uint64_t now_ms(res_engine_t *e)
{
	return e->ops.now_ms(e->env);
}

static uint64_t key_hash(const res_engine_t *e, const uint8_t *key, size_t klen)
{
	return rhash_sip13(key, klen, e->hkey);
}

/* The key of a question; 0 when the handle is not valid or the shape too large. */
static size_t make_key(const res_engine_t *e, hdl_slice_t handle, const uint32_t *idx,
                       uint32_t n_idx, const hdl_slice_t *types, uint32_t n_types, uint8_t *out,
                       size_t cap)
{
	uint8_t norm[HDL_MAX_HANDLE_LEN + 8];
	if (hdl_name_check(handle.p, handle.len) != HDL_EOK)
		return 0;
	size_t nl = hdl_name_normalize(handle, e->conf.case_sensitive, norm, sizeof(norm));
	if (nl == 0)
		return 0;
	/* always PO: upstream is asked with PO set, so the answer is the same either way */
	return dcache_key(out, cap, (hdl_slice_t){norm, (uint32_t)nl}, idx, n_idx, types, n_types,
	                  true);
}

/*
 * Read \p key from the cache into a heap copy (*vals, freed by the caller).
 * \return HDL_EOK (ans set, vals may be NULL for a negative entry), HDL_ENOENT (hit->flags
 *         tells whether a stale copy exists), HDL_ENOMEM
 */
static int cache_read(res_engine_t *e, const uint8_t *key, size_t klen, unsigned how,
                      res_answer_t *ans, uint8_t **vals, dcache_hit_t *hit)
{
	uint8_t stack[READ_STACK];
	*vals = NULL;
	int r = dcache_get(e->sh.dcache, key, klen, how, stack, sizeof(stack), hit);
	uint8_t *heap = NULL;
	if (r == HDL_ESPACE) {
		heap = malloc(hit->len);
		if (!heap)
			return HDL_ENOMEM;
		r = dcache_get(e->sh.dcache, key, klen, how, heap, hit->len, hit);
	}
	if (r != HDL_EOK) {
		free(heap);
		return r == HDL_ESPACE ? HDL_ENOMEM : r;
	}
	if (!heap && hit->len) {
		heap = malloc(hit->len);
		if (!heap)
			return HDL_ENOMEM;
		memcpy(heap, stack, hit->len);
	}
	*vals = heap;
	memset(ans, 0, sizeof(*ans));
	ans->rcode = hit->rcode;
	ans->vals = heap;
	ans->vlen = hit->len;
	ans->stale = (hit->flags & DCACHE_STALE) != 0;
	return HDL_EOK;
}

static const char *status_text(int status)
{
	switch (status) {
	case HDL_ETIMEDOUT: return "Upstream did not answer in time";
	case HDL_ETLS: return "Upstream refused: TLS verification failed";
	case HDL_EPROTO:
	case HDL_EMALF: return "Upstream answer malformed";
	case HDL_EDNS: return "Upstream host name did not resolve";
	case HDL_ECONNREFUSED: return "Upstream refused the connection";
	case HDL_EIO: return "Upstream connection lost";
	case HDL_EAGAIN: return "No upstream available";
	case HDL_ELIMIT: return "Too many upstream queries";
	default: return "Upstream failed";
	}
}

/* The text of a cached answer's code (what dispatch says for the same codes). */
static const char *rcode_text(uint32_t rcode)
{
	switch (rcode) {
	case HDL_RC_HANDLE_NOT_FOUND: return "Handle not found";
	case HDL_RC_VALUES_NOT_FOUND: return "No matching values";
	default: return NULL;
	}
}

/* The response code a failure is answered with (docs/delegation.md "Wiring"). */
static uint32_t status_rcode(int status)
{
	switch (status) {
	case HDL_ETLS:
	case HDL_EPROTO:
	case HDL_EMALF:
	case HDL_EDNS: return HDL_RC_ERROR;
	default: return HDL_RC_SERVER_TOO_BUSY;
	}
}

/* ---- table ------------------------------------------------------------------------------------
 */

static res_job_t *table_find(res_engine_t *e, const uint8_t *key, size_t klen, uint64_t h)
{
	for (res_job_t *j = e->table[h & (TABLE_BUCKETS - 1)]; j; j = j->hnext) {
		if (j->khash == h && j->klen == klen && memcmp(j->key, key, klen) == 0)
			return j;
	}
	return NULL;
}

static void table_remove(res_job_t *j)
{
	if (!j->in_table)
		return;
	res_job_t **pp = &j->e->table[j->khash & (TABLE_BUCKETS - 1)];
	while (*pp && *pp != j)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = j->hnext;
	j->hnext = NULL;
	j->in_table = false;
}

/* ---- jobs -------------------------------------------------------------------------------------
 */

/* A new job for a question (everything copied into one block), in the table. */
static res_job_t *job_new(res_engine_t *e, hdl_slice_t handle, const uint32_t *idx, uint32_t n_idx,
                          const hdl_slice_t *types, uint32_t n_types, const uint8_t *key,
                          size_t klen, uint64_t h, uint8_t depth, uint64_t deadline)
{
	size_t tbytes = 0;
	for (uint32_t i = 0; i < n_types; i++)
		tbytes += types[i].len;
	size_t sz = sizeof(res_job_t) + (size_t)n_idx * sizeof(uint32_t) +
	            (size_t)n_types * sizeof(hdl_slice_t) + tbytes + handle.len + klen + 16;
	res_job_t *j = calloc(1, sz);
	if (!j)
		return NULL;
	uint8_t *p = (uint8_t *)(j + 1);
	j->types = (hdl_slice_t *)p;
	p += (size_t)n_types * sizeof(hdl_slice_t);
	j->idx = (uint32_t *)p;
	p += (size_t)n_idx * sizeof(uint32_t);
	if (n_idx)
		memcpy(j->idx, idx, (size_t)n_idx * sizeof(uint32_t));
	j->n_idx = n_idx;
	for (uint32_t i = 0; i < n_types; i++) {
		memcpy(p, types[i].p, types[i].len);
		j->types[i] = (hdl_slice_t){p, types[i].len};
		p += types[i].len;
	}
	j->n_types = n_types;
	memcpy(p, handle.p, handle.len);
	j->handle = (hdl_slice_t){p, handle.len};
	p += handle.len;
	memcpy(p, key, klen);
	j->key = p;
	j->klen = klen;
	j->khash = h;
	j->e = e;
	j->depth = depth;
	j->deadline = deadline;
	j->status = HDL_EOK;
	hdl_arena_init(&j->arena, NULL, 0, JOB_ARENA);
	j->hnext = e->table[h & (TABLE_BUCKETS - 1)];
	e->table[h & (TABLE_BUCKETS - 1)] = j;
	j->in_table = true;
	j->next = e->jobs;
	if (e->jobs)
		e->jobs->prev = j;
	e->jobs = j;
	e->n_jobs++;
	e->st.jobs++;
	e->st.running = e->n_jobs;
	timer_add(e, &j->timer, deadline, T_JOB);
	return j;
}

static void job_free(res_job_t *j)
{
	res_engine_t *e = j->e;
	table_remove(j);
	timer_del(e, &j->timer);
	if (j->qh)
		e->ops.cancel(e->env, j->qh);
	if (j->prev)
		j->prev->next = j->next;
	else
		e->jobs = j->next;
	if (j->next)
		j->next->prev = j->prev;
	e->n_jobs--;
	e->st.running = e->n_jobs;
	free(j->targets);
	free(j->vals);
	free(j->p_vals);
	hdl_arena_free(&j->arena);
	free(j);
}

static void maybe_free(res_job_t *j)
{
	if (j->pins || j->clients || j->parents || j->post_pending || j->following || j->leading)
		return;
	if (j->state != J_DONE && !j->orphan)
		return;
	job_free(j);
}

static void unpin(res_job_t *j)
{
	j->pins--;
	maybe_free(j);
}

static void link_parent(res_job_t *child, res_job_t *parent, int state)
{
	parent->wprev = NULL;
	parent->wnext = child->parents;
	if (child->parents)
		child->parents->wprev = parent;
	child->parents = parent;
	parent->child = child;
	parent->state = state;
}

static void unlink_parent(res_job_t *child, res_job_t *parent)
{
	if (parent->wprev)
		parent->wprev->wnext = parent->wnext;
	else if (child->parents == parent)
		child->parents = parent->wnext;
	if (parent->wnext)
		parent->wnext->wprev = parent->wprev;
	parent->wnext = parent->wprev = NULL;
	parent->child = NULL;
}

static void link_client(res_job_t *j, res_client_t *c)
{
	c->job_ = j;
	c->prev_ = NULL;
	c->next_ = j->clients;
	if (j->clients)
		j->clients->prev_ = c;
	j->clients = c;
}

static void unlink_client(res_job_t *j, res_client_t *c)
{
	if (c->prev_)
		c->prev_->next_ = c->next_;
	else if (j->clients == c)
		j->clients = c->next_;
	if (c->next_)
		c->next_->prev_ = c->prev_;
	c->next_ = c->prev_ = NULL;
	c->job_ = NULL;
}

/* A failure: no answer (timeouts, unreachable, malformed). Clients may get a stale entry. */
static void job_fail(res_job_t *j, int status)
{
	res_engine_t *e = j->e;
	j->status = status == HDL_EOK ? HDL_EIO : status;
	j->msg = status_text(j->status);
	e->st.failures++;
	/* RFC 8767: a failed refresh is not tried again at once; the stale entry is answered */
	if (j->leading && j->stale_seen && e->conf.stale_hold_ms)
		res_hold_set(e->sh.hold, j->key, j->klen, now_ms(e) + e->conf.stale_hold_ms);
	job_finish(j);
}

/* An answer that is not cached: an error code from upstream or from this resolver (RC 6). */
static void job_fail_rc(res_job_t *j, uint32_t rcode, const char *msg)
{
	j->status = HDL_EOK;
	j->rcode = rcode;
	j->msg = msg;
	free(j->vals);
	j->vals = NULL;
	j->vlen = 0;
	if (rcode == HDL_RC_RECURSION_COUNT_TOO_HIGH)
		j->e->st.loops++;
	job_finish(j);
}

/* An answer from upstream (RC 1 with the values part, 100 or 200): cached and handed out. */
static void job_answer(res_job_t *j, uint32_t rcode, const hdl_value_t *v, uint32_t n)
{
	res_engine_t *e = j->e;
	uint8_t *buf = NULL;
	size_t len = 0;
	if (rcode == HDL_RC_SUCCESS) {
		/* values without PUBLIC_READ are never handed out nor cached (asked with PO) */
		hdl_value_t *keep = hdl_arena_alloc(&j->arena, sizeof(*keep) * (n ? n : 1));
		uint32_t k = 0;
		size_t need = 4;
		if (!keep) {
			job_fail(j, HDL_ENOMEM);
			return;
		}
		for (uint32_t i = 0; i < n; i++) {
			if (v[i].perms & HDL_PERM_PUBLIC_READ) {
				keep[k++] = v[i];
				need += hdl_value_size(&v[i]);
			}
		}
		buf = malloc(need);
		if (!buf || hdl_values_encode(keep, k, buf, need, &len) != HDL_EOK) {
			free(buf);
			job_fail(j, HDL_ENOMEM);
			return;
		}
		if (k == 0 && n > 0)
			rcode = HDL_RC_VALUES_NOT_FOUND;
	}
	free(j->vals);
	j->vals = rcode == HDL_RC_SUCCESS ? buf : NULL;
	j->vlen = rcode == HDL_RC_SUCCESS ? len : 0;
	if (rcode != HDL_RC_SUCCESS)
		free(buf);
	j->status = HDL_EOK;
	j->rcode = rcode;
	j->msg = rcode_text(rcode);
	(void)dcache_put(e->sh.dcache, j->key, j->klen, rcode, j->vals, j->vlen);
	res_hold_set(e->sh.hold, j->key, j->klen, 0);
	job_finish(j);
}

/* Fill a client's answer from a finished job (or a stale entry when it failed). */
static void client_fill(res_engine_t *e, res_client_t *c, const res_job_t *j)
{
	memset(&c->ans, 0, sizeof(c->ans));
	if (j->status == HDL_EOK) {
		c->ans.rcode = j->rcode;
		c->ans.message = j->msg;
		if (j->vlen) {
			c->owned_ = malloc(j->vlen);
			if (!c->owned_) {
				c->ans.rcode = HDL_RC_SERVER_TOO_BUSY;
				c->ans.message = "out of memory";
				return;
			}
			memcpy(c->owned_, j->vals, j->vlen);
			c->ans.vals = c->owned_;
			c->ans.vlen = j->vlen;
		}
		return;
	}
	dcache_hit_t hit;
	uint8_t *vals;
	if (!j->at &&
	    cache_read(e, j->key, j->klen, DCACHE_GET_STALE_OK, &c->ans, &vals, &hit) == HDL_EOK) {
		c->owned_ = vals;
		c->ans.message = rcode_text(c->ans.rcode);
		e->st.stale++;
		return;
	}
	c->ans.rcode = status_rcode(j->status);
	c->ans.message = j->msg ? j->msg : status_text(j->status);
}

/* The job is over (result set): tell the flight, the parents and the clients. */
static void job_finish(res_job_t *j)
{
	res_engine_t *e = j->e;
	j->pins++;
	timer_del(e, &j->timer);
	if (j->qh) {
		e->ops.cancel(e->env, j->qh);
		j->qh = NULL;
	}
	if (j->child) {
		res_job_t *c = j->child;
		unlink_parent(c, j);
		if (!c->parents && !c->clients)
			job_unwaited(c);
	}
	if (j->leading) {
		dflight_result_t r = {
		    .status = j->status, .rcode = j->rcode, .vals = j->vals, .len = j->vlen};
		(void)dflight_finish(e->sh.dflight, &j->fw, &r);
		j->leading = false;
	}
	table_remove(j);
	j->state = J_DONE;
	while (j->parents) {
		res_job_t *p = j->parents;
		unlink_parent(j, p);
		p->pins++;
		child_done(p, j);
		unpin(p);
	}
	while (j->clients) {
		res_client_t *c = j->clients;
		unlink_client(j, c);
		timer_del(e, &c->budget_);
		client_fill(e, c, j);
		e->ops.answer(e->env, c);
	}
	unpin(j);
}

/* Nobody waits for \p j any more (it is not done). */
static void job_unwaited(res_job_t *j)
{
	res_engine_t *e = j->e;
	if (j->state == J_FOLLOW && j->following) {
		j->following = false;
		if (!dflight_leave(e->sh.dflight, &j->fw))
			j->post_pending = true; /* freed when the notification comes */
		table_remove(j);
		timer_del(e, &j->timer);
		j->orphan = true;
		maybe_free(j);
		return;
	}
	if (j->state == J_NEW) {
		j->orphan = true;
		table_remove(j);
		maybe_free(j);
	}
	/* a leader goes on: its answer fills the cache and its followers elsewhere wait for it */
}

/* Join the flight of the job's key, or answer from the cache. */
static void job_start(res_job_t *j)
{
	res_engine_t *e = j->e;
	if (!j->refresh) {
		res_answer_t a;
		uint8_t *vals;
		dcache_hit_t hit;
		int r = cache_read(e, j->key, j->klen, DCACHE_GET_FRESH, &a, &vals, &hit);
		if (r == HDL_EOK) {
			j->status = HDL_EOK;
			j->rcode = a.rcode;
			j->vals = vals;
			j->vlen = a.vlen;
			j->msg = rcode_text(a.rcode);
			job_finish(j);
			return;
		}
		j->stale_seen = (hit.flags & DCACHE_STALE) != 0;
		if (j->stale_seen && res_hold_active(e->sh.hold, j->key, j->klen, now_ms(e))) {
			j->status = HDL_EAGAIN; /* the clients take the stale entry */
			job_finish(j);
			return;
		}
	}
	atomic_store(&j->p_ran, 0);
	j->fw.done = on_flight_done;
	j->fw.arg = j;
	int r = dflight_join(e->sh.dflight, j->key, j->klen, &j->fw);
	if (r == DFLIGHT_LEADER) {
		j->leading = true;
		job_route(j);
	} else if (r == DFLIGHT_FOLLOWER) {
		j->following = true;
		j->state = J_FOLLOW;
		e->st.followed++;
	} else {
		job_fail(j, r == HDL_ELIMIT ? HDL_ELIMIT : HDL_ENOMEM);
	}
}

/* ---- where to ask ------------------------------------------------------------------------------
 */

static uint64_t target_hash(const ups_target_t *t)
{
	uint64_t h = 1469598103934665603ull;
	for (const char *p = t->host; *p; p++)
		h = (h ^ (uint8_t)*p) * 1099511628211ull;
	h = (h ^ t->port) * 1099511628211ull;
	h = (h ^ (uint64_t)t->transport) * 1099511628211ull;
	return h;
}

/* Targets being collected (on the stack: a job keeps only as many as it found). */
typedef struct tset {
	ups_target_t t[UPS_MAX_CANDIDATES];
	unsigned n;
} tset_t;

/* Add \p t unless already there. */
static void add_target(tset_t *ts, const ups_target_t *t)
{
	for (unsigned i = 0; i < ts->n; i++) {
		if (ts->t[i].port == t->port && ts->t[i].transport == t->transport &&
		    strcmp(ts->t[i].host, t->host) == 0)
			return;
	}
	if (ts->n < UPS_MAX_CANDIDATES)
		ts->t[ts->n++] = *t;
}

/* The job asks \p ts from now on. \retval false out of memory */
static bool set_targets(res_job_t *j, const tset_t *ts)
{
	free(j->targets);
	j->targets = NULL;
	j->n_targets = 0;
	if (ts->n == 0)
		return true;
	j->targets = malloc(sizeof(ups_target_t) * ts->n);
	if (!j->targets)
		return false;
	memcpy(j->targets, ts->t, sizeof(ups_target_t) * ts->n);
	j->n_targets = ts->n;
	return true;
}

/*
 * The targets of one site for the job's handle: the server the handle hashes to (RFC 3651
 * §3.3), through the configured upstreams of its address when there are, else (site_plaintext)
 * over the query interfaces the site lists.
 */
static void add_site(res_job_t *j, const hdl_site_t *site, tset_t *ts)
{
	res_engine_t *e = j->e;
	ups_target_t tmp[UPS_MAX_CANDIDATES];
	static const uint8_t zero[16];
	if (!site->n_servers)
		return;
	const hdl_server_t *sv = &site->servers[hdl_site_server_for(site, j->handle)];
	if (memcmp(sv->addr, zero, 16) == 0)
		return;
	char host[64];
	if (hdl_server_is_ipv4(sv))
		snprintf(host, sizeof(host), "%u.%u.%u.%u", sv->addr[12], sv->addr[13],
		         sv->addr[14], sv->addr[15]);
	else
		snprintf(host, sizeof(host), "%x:%x:%x:%x:%x:%x:%x:%x",
		         sv->addr[0] << 8 | sv->addr[1], sv->addr[2] << 8 | sv->addr[3],
		         sv->addr[4] << 8 | sv->addr[5], sv->addr[6] << 8 | sv->addr[7],
		         sv->addr[8] << 8 | sv->addr[9], sv->addr[10] << 8 | sv->addr[11],
		         sv->addr[12] << 8 | sv->addr[13], sv->addr[14] << 8 | sv->addr[15]);
	unsigned n = ups_set_by_host(e->sh.set, host, tmp, UPS_MAX_CANDIDATES);
	if (n == 0 && e->conf.site_plaintext)
		n = ups_site_targets(site, j->handle, PLAIN_MASK, NULL, tmp, UPS_MAX_CANDIDATES);
	for (unsigned i = 0; i < n; i++)
		add_target(ts, &tmp[i]);
}

static bool type_is(hdl_slice_t t, hdl_slice_t want)
{
	return hdl_slice_eq_nocase(t, want);
}

/*
 * Targets from the HS_SITE values among \p v (with \p prefix_sites also HS_SITE.PREFIX and
 * HS_NA_DELEGATE: a prefix referral's). AT: primary sites only when there are any.
 * \return targets found; *serv gets the first HS_SERV / HS_SERV.PREFIX data (or stays empty)
 */
static unsigned targets_from_values(res_job_t *j, const hdl_value_t *v, uint32_t n,
                                    bool prefix_sites, hdl_slice_t *serv)
{
	hdl_site_t sites[UPS_MAX_CANDIDATES];
	tset_t ts;
	unsigned ns = 0;
	bool any_primary = false;
	serv->p = NULL;
	serv->len = 0;
	ts.n = 0;
	for (uint32_t i = 0; i < n; i++) {
		bool site = type_is(v[i].type, T_SITE) || type_is(v[i].type, T_SITE6) ||
		            (prefix_sites &&
		             (type_is(v[i].type, T_SITE_PFX) || type_is(v[i].type, T_NA_DELEGATE)));
		bool sv =
		    type_is(v[i].type, T_SERV) || (prefix_sites && type_is(v[i].type, T_SERV_PFX));
		if (sv && serv->len == 0 &&
		    hdl_handle_data_check(v[i].data.p, v[i].data.len) == HDL_EOK)
			*serv = v[i].data;
		if (!site || ns == UPS_MAX_CANDIDATES)
			continue;
		if (hdl_site_decode(v[i].data.p, v[i].data.len, &j->arena, &sites[ns]) != HDL_EOK) {
			log_peer(LOG_LVL_INFO, "resolve: an HS_SITE value of %.*s does not decode",
			         (int)j->handle.len, (const char *)j->handle.p);
			continue;
		}
		any_primary |= (sites[ns].primary_mask & HDL_SITE_PRIMARY) != 0;
		ns++;
	}
	for (unsigned i = 0; i < ns; i++) {
		if (j->at && any_primary && !(sites[i].primary_mask & HDL_SITE_PRIMARY))
			continue;
		add_site(j, &sites[i], &ts);
	}
	if (!set_targets(j, &ts))
		return 0;
	return j->n_targets;
}

/* ---- upstream queries --------------------------------------------------------------------------
 */

static void on_reply(void *arg, int status, const uint8_t *reply, size_t len);

/* Encode the job's question as a resolution request for the current targets. */
static uint8_t *encode_request(res_job_t *j, size_t *len)
{
	hdl_msg_t m;
	hdl_msg_init(&m);
	m.env.request_id = 1; /* the pool gives it one of its own */
	m.hdr.opcode = HDL_OC_RESOLUTION;
	/* PO: this node is anonymous upstream; REC only where a forward rule names a resolver */
	m.hdr.opflags =
	    HDL_OF_PO | HDL_OF_CA | (j->forwarded ? HDL_OF_REC : 0) | (j->at ? HDL_OF_AT : 0);
	m.hdr.recursion = j->recursion;
	m.kind = HDL_BODY_RESOLVE;
	m.u.resolve.handle = j->handle;
	m.u.resolve.indexes = j->idx;
	m.u.resolve.n_indexes = j->n_idx;
	m.u.resolve.types = j->types;
	m.u.resolve.n_types = j->n_types;
	size_t cap = HDL_ENVELOPE_LEN + HDL_HEADER_LEN + 64 + j->handle.len + 4u * j->n_idx;
	for (uint32_t i = 0; i < j->n_types; i++)
		cap += 4 + j->types[i].len;
	uint8_t *buf = malloc(cap);
	if (buf && hdl_msg_encode(&m, buf, cap, len) != HDL_EOK) {
		free(buf);
		buf = NULL;
	}
	return buf;
}

/* Ask the current targets (a referral loop when this set was asked before). */
static void job_query(res_job_t *j)
{
	res_engine_t *e = j->e;
	if (j->n_targets == 0) {
		job_fail_rc(j, HDL_RC_SERVER_NOT_RESP, "No reachable server for that prefix");
		return;
	}
	uint64_t sig = 0;
	for (unsigned i = 0; i < j->n_targets; i++)
		sig += target_hash(&j->targets[i]) * 0x9e3779b97f4a7c15ull; /* order-independent */
	for (unsigned i = 0; i < j->n_visited; i++) {
		if (j->visited[i] == sig) {
			log_peer(LOG_LVL_NOTICE, "resolve: referral loop for %.*s, answering RC 6",
			         (int)j->handle.len, (const char *)j->handle.p);
			job_fail_rc(j, HDL_RC_RECURSION_COUNT_TOO_HIGH, "Referral loop");
			return;
		}
	}
	if (j->n_visited < RES_MAX_VISITED)
		j->visited[j->n_visited++] = sig;
	uint64_t now = now_ms(e);
	if (now >= j->deadline) {
		job_fail(j, HDL_ETIMEDOUT);
		return;
	}
	size_t len = 0;
	uint8_t *req = encode_request(j, &len);
	if (!req) {
		job_fail(j, HDL_ENOMEM);
		return;
	}
	void *qh = NULL;
	int r = e->ops.query(e->env, j->targets, j->n_targets, req, len, j->deadline,
	                     e->conf.try_timeout_ms, on_reply, j, &qh);
	free(req);
	if (r != HDL_EOK) {
		job_fail(j, r);
		return;
	}
	j->qh = qh;
	j->state = J_QUERY;
	e->st.queries++;
}

/* Wait for the lookup of \p handle (a prefix or service handle) asked for \p types. */
static void job_spawn(res_job_t *j, hdl_slice_t handle, const hdl_slice_t *types, uint32_t n_types,
                      int state)
{
	res_engine_t *e = j->e;
	uint8_t key[DCACHE_KEY_MAX];
	if (j->depth + 1u >= RES_MAX_DEPTH) {
		log_peer(LOG_LVL_NOTICE,
		         "resolve: lookups nested too deep for %.*s, answering RC 6",
		         (int)j->handle.len, (const char *)j->handle.p);
		job_fail_rc(j, HDL_RC_RECURSION_COUNT_TOO_HIGH, "Too many nested lookups");
		return;
	}
	size_t kl = make_key(e, handle, NULL, 0, types, n_types, key, sizeof(key));
	if (kl == 0) {
		job_fail_rc(j, HDL_RC_ERROR, "Invalid service handle");
		return;
	}
	uint64_t h = key_hash(e, key, kl);
	res_job_t *c = table_find(e, key, kl, h);
	if (c) {
		/* a lookup already running here; waiting on one that waits on us is a loop */
		for (res_job_t *x = c; x; x = x->child) {
			if (x == j) {
				job_fail_rc(j, HDL_RC_RECURSION_COUNT_TOO_HIGH,
				            "Service handle loop");
				return;
			}
		}
		link_parent(c, j, state);
		e->st.coalesced++;
		return;
	}
	if (e->n_jobs >= e->conf.max_jobs) {
		job_fail(j, HDL_ELIMIT);
		return;
	}
	c = job_new(e, handle, NULL, 0, types, n_types, key, kl, h, (uint8_t)(j->depth + 1),
	            j->deadline);
	if (!c) {
		job_fail(j, HDL_ENOMEM);
		return;
	}
	c->recursion = j->recursion;
	link_parent(c, j, state);
	c->pins++;
	job_start(c);
	unpin(c);
}

/* Route a leading job: a forward rule, else the prefix handle. */
static void job_route(res_job_t *j)
{
	res_engine_t *e = j->e;
	hdl_slice_t prefix, suffix;
	hdl_name_split(j->handle, &prefix, &suffix);
	tset_t ts;
	ts.n = ups_set_route(e->sh.set, prefix, ts.t, UPS_MAX_CANDIDATES);
	if (ts.n > 0) {
		if (!set_targets(j, &ts)) {
			job_fail(j, HDL_ENOMEM);
			return;
		}
		j->forwarded = true;
		job_query(j);
		return;
	}
	if (hdl_slice_eq_nocase(prefix, hdl_slice_str("0.NA"))) {
		job_fail_rc(j, HDL_RC_SERVER_NOT_RESP,
		            "No upstream for prefix handles (forward rule for 0.NA)");
		return;
	}
	uint8_t ph[HDL_MAX_HANDLE_LEN + 8];
	if (prefix.len + 5u > sizeof(ph)) {
		job_fail_rc(j, HDL_RC_INVALID_HANDLE, "Invalid handle");
		return;
	}
	memcpy(ph, "0.NA/", 5);
	memcpy(ph + 5, prefix.p, prefix.len);
	job_spawn(j, (hdl_slice_t){ph, prefix.len + 5u}, PREFIX_TYPES, 3, J_PREFIX);
}

/* Decode the values part a child or a flight handed over. */
static int decode_vals(res_job_t *j, const uint8_t *vals, size_t len, hdl_value_t **v, uint32_t *n)
{
	*v = NULL;
	*n = 0;
	if (!vals || len == 0)
		return HDL_EOK;
	hdl_arena_reset(&j->arena);
	return hdl_values_decode(vals, len, &j->arena, v, n);
}

/* A child lookup (prefix or service handle) ended. */
static void child_done(res_job_t *p, res_job_t *c)
{
	res_engine_t *e = p->e;
	if (p->state == J_DONE)
		return;
	int st = p->state;
	if (c->status != HDL_EOK) {
		/* a stale copy of the child's answer still tells where to ask */
		res_answer_t a;
		uint8_t *vals = NULL;
		dcache_hit_t hit;
		if (cache_read(e, c->key, c->klen, DCACHE_GET_STALE_OK, &a, &vals, &hit) !=
		        HDL_EOK ||
		    a.rcode != HDL_RC_SUCCESS) {
			free(vals);
			job_fail(p, c->status);
			return;
		}
		hdl_value_t *v;
		uint32_t n;
		hdl_slice_t serv;
		int r = decode_vals(p, vals, a.vlen, &v, &n);
		unsigned nt = r == HDL_EOK ? targets_from_values(p, v, n, false, &serv) : 0;
		free(vals);
		if (nt == 0) {
			job_fail(p, c->status);
			return;
		}
		job_query(p);
		return;
	}
	if (c->rcode != HDL_RC_SUCCESS) {
		if (c->rcode == HDL_RC_HANDLE_NOT_FOUND && st == J_PREFIX)
			job_answer(p, HDL_RC_HANDLE_NOT_FOUND, NULL, 0);
		else if (c->rcode == HDL_RC_RECURSION_COUNT_TOO_HIGH)
			job_fail_rc(p, c->rcode, c->msg);
		else
			job_fail_rc(p, HDL_RC_SERVER_NOT_RESP,
			            st == J_PREFIX ? "The prefix has no site"
			                           : "The service has no site");
		return;
	}
	hdl_value_t *v;
	uint32_t n;
	if (decode_vals(p, c->vals, c->vlen, &v, &n) != HDL_EOK) {
		job_fail(p, HDL_EPROTO);
		return;
	}
	hdl_slice_t serv;
	unsigned nt = targets_from_values(p, v, n, false, &serv);
	if (nt > 0) {
		p->forwarded = false;
		job_query(p);
		return;
	}
	if (serv.len && st == J_PREFIX) {
		if (++p->hops > e->conf.max_referrals) {
			job_fail_rc(p, HDL_RC_RECURSION_COUNT_TOO_HIGH, "Too many referrals");
			return;
		}
		job_spawn(p, serv, SERVICE_TYPES, 2, J_SERVICE);
		return;
	}
	job_fail_rc(p, HDL_RC_SERVER_NOT_RESP, "No reachable server for that prefix");
}

/* Follow a referral (RC 302 / 303): its sites, or its service handle's. */
static void job_referral(res_job_t *j, const hdl_msg_t *m)
{
	res_engine_t *e = j->e;
	e->st.referrals++;
	if (++j->hops > e->conf.max_referrals) {
		log_peer(LOG_LVL_NOTICE, "resolve: more than %u referrals for %.*s, answering RC 6",
		         e->conf.max_referrals, (int)j->handle.len, (const char *)j->handle.p);
		job_fail_rc(j, HDL_RC_RECURSION_COUNT_TOO_HIGH, "Too many referrals");
		return;
	}
	hdl_slice_t serv = {NULL, 0};
	const hdl_body_referral_t *rf = &m->u.referral;
	unsigned nt = m->kind == HDL_BODY_REFERRAL
	                  ? targets_from_values(j, rf->values, rf->n_values, true, &serv)
	                  : 0;
	if (nt > 0) {
		j->forwarded = false;
		job_query(j);
		return;
	}
	if (serv.len == 0 && m->kind == HDL_BODY_REFERRAL)
		serv = rf->handle;
	if (serv.len == 0 || hdl_name_check(serv.p, serv.len) != HDL_EOK) {
		job_fail(j, HDL_EPROTO);
		return;
	}
	/* the child copies the handle: the arena may be reset before it is read again */
	job_spawn(j, serv, SERVICE_TYPES, 2, J_SERVICE);
}

/* An upstream reply (or failure) for the job's query. */
static void on_reply(void *arg, int status, const uint8_t *reply, size_t len)
{
	res_job_t *j = arg;
	j->qh = NULL;
	if (j->state != J_QUERY)
		return;
	j->pins++;
	hdl_msg_t m;
	memset(&m, 0, sizeof(m));
	if (status != HDL_EOK) {
		job_fail(j, status);
		goto out;
	}
	hdl_arena_reset(&j->arena);
	int r = hdl_msg_decode(reply, len, &j->arena, &m);
	if (r != HDL_EOK || m.hdr.opcode != HDL_OC_RESOLUTION) {
		log_peer(LOG_LVL_NOTICE, "resolve: upstream answer for %.*s malformed: %s",
		         (int)j->handle.len, (const char *)j->handle.p,
		         r != HDL_EOK ? hdl_strerror(r) : "not a resolution answer");
		job_fail(j, HDL_EPROTO);
		goto out;
	}
	switch (m.hdr.rcode) {
	case HDL_RC_SUCCESS:
		if (m.kind != HDL_BODY_VALUES ||
		    !hdl_slice_eq_nocase(m.u.values.handle, j->handle)) {
			log_peer(LOG_LVL_NOTICE,
			         "resolve: upstream answered for another handle than %.*s",
			         (int)j->handle.len, (const char *)j->handle.p);
			job_fail(j, HDL_EPROTO);
			break;
		}
		job_answer(j, HDL_RC_SUCCESS, m.u.values.values, m.u.values.n_values);
		break;
	case HDL_RC_HANDLE_NOT_FOUND:
	case HDL_RC_VALUES_NOT_FOUND: job_answer(j, m.hdr.rcode, NULL, 0); break;
	case HDL_RC_SERVICE_REFERRAL:
	case HDL_RC_PREFIX_REFERRAL: job_referral(j, &m); break;
	case HDL_RC_SERVER_TOO_BUSY:
	case HDL_RC_SERVER_BACKUP: job_fail(j, HDL_EAGAIN); break;
	case HDL_RC_RECURSION_COUNT_TOO_HIGH:
		job_fail_rc(j, m.hdr.rcode, "Recursion count too high upstream");
		break;
	case HDL_RC_SERVER_NOT_RESP:
		job_fail_rc(j, m.hdr.rcode, "That prefix doesn't live there");
		break;
	case HDL_RC_INVALID_HANDLE: job_fail_rc(j, m.hdr.rcode, "Invalid handle"); break;
	default:
		log_peer(LOG_LVL_INFO, "resolve: upstream answered RC %u for %.*s", m.hdr.rcode,
		         (int)j->handle.len, (const char *)j->handle.p);
		job_fail_rc(j, HDL_RC_ERROR, "Upstream error");
		break;
	}
out:
	unpin(j);
}

/* ---- flights ----------------------------------------------------------------------------------
 */

/* dflight notification, on the leader's thread: copy and post to our engine. */
static void on_flight_done(dflight_waiter_t *w, const dflight_result_t *r)
{
	res_job_t *j = w->arg;
	res_engine_t *e = j->e;
	j->p_status = r->status;
	j->p_rcode = r->rcode;
	j->p_vals = NULL;
	j->p_len = 0;
	if (r->status == HDL_EOK && r->vals && r->len) {
		j->p_vals = malloc(r->len);
		if (j->p_vals) {
			memcpy(j->p_vals, r->vals, r->len);
			j->p_len = r->len;
		} else {
			j->p_status = HDL_ENOMEM;
		}
	}
	/*
	 * Once the lock is released the owning engine may take j from its list and free it, and
	 * res_free() may free the engine once p_ran is set: so the wake-up and p_ran come before
	 * the unlock, and nothing of j or e is touched after it (the wake-up never takes pmu).
	 */
	pthread_mutex_lock(&e->pmu);
	j->qnext = NULL;
	if (e->ptail)
		e->ptail->qnext = j;
	else
		e->phead = j;
	e->ptail = j;
	e->ops.wake(e->env);
	atomic_store(&j->p_ran, 1);
	pthread_mutex_unlock(&e->pmu);
}

/* A notification posted to this engine. */
static void job_posted(res_job_t *j)
{
	res_engine_t *e = j->e;
	j->post_pending = false;
	j->following = false;
	if (j->orphan) {
		if (j->p_status == DFLIGHT_PROMOTED)
			(void)dflight_abandon(e->sh.dflight, &j->fw, DFLIGHT_PROMOTED);
		return;
	}
	if (j->p_status == DFLIGHT_PROMOTED) {
		j->leading = true;
		job_route(j);
		return;
	}
	j->status = j->p_status;
	if (j->status == HDL_EOK) {
		j->rcode = j->p_rcode;
		j->msg = rcode_text(j->rcode);
		if (!j->msg && j->rcode != HDL_RC_SUCCESS)
			j->msg = j->rcode == HDL_RC_RECURSION_COUNT_TOO_HIGH
			             ? "Recursion count too high"
			             : "Upstream error";
		free(j->vals);
		j->vals = j->p_vals;
		j->vlen = j->p_len;
		j->p_vals = NULL;
	} else {
		j->msg = status_text(j->status);
	}
	job_finish(j);
}

void res_run_posted(res_engine_t *e)
{
	pthread_mutex_lock(&e->pmu);
	res_job_t *list = e->phead;
	e->phead = e->ptail = NULL;
	pthread_mutex_unlock(&e->pmu);
	while (list) {
		res_job_t *j = list;
		list = j->qnext;
		j->qnext = NULL;
		j->pins++;
		job_posted(j);
		unpin(j);
	}
}

/* ---- timers ------------------------------------------------------------------------------------
 */

static void job_deadline(res_job_t *j)
{
	res_engine_t *e = j->e;
	switch (j->state) {
	case J_FOLLOW:
		j->following = false;
		if (!dflight_leave(e->sh.dflight, &j->fw)) {
			/* the answer is on its way: take it when it comes */
			j->following = true;
			j->post_pending = true;
			return;
		}
		job_fail(j, HDL_ETIMEDOUT);
		return;
	case J_QUERY:
		if (j->qh) {
			e->ops.cancel(e->env, j->qh);
			j->qh = NULL;
		}
		job_fail(j, HDL_ETIMEDOUT);
		return;
	case J_PREFIX:
	case J_SERVICE: job_fail(j, HDL_ETIMEDOUT); return;
	default: return;
	}
}

/* The stale budget of a client ran out: a stale entry is its answer now (RFC 8767). */
static void client_budget(res_engine_t *e, res_client_t *c)
{
	res_job_t *j = c->job_;
	dcache_hit_t hit;
	uint8_t *vals;
	res_answer_t a;
	if (!j || cache_read(e, j->key, j->klen, DCACHE_GET_STALE_OK, &a, &vals, &hit) != HDL_EOK)
		return; /* no stale entry (any more): wait for the resolution */
	unlink_client(j, c);
	c->ans = a;
	c->ans.message = rcode_text(a.rcode);
	c->owned_ = vals;
	e->st.stale++;
	if (!j->clients && !j->parents)
		job_unwaited(j);
	e->ops.answer(e->env, c);
}

#define TNODE_OWNER(t, type, member) ((type *)(void *)((char *)(t)-offsetof(type, member)))

void res_timers(res_engine_t *e)
{
	uint64_t now = now_ms(e);
	e->in_timers = true;
	while (e->thead && e->thead->at <= now) {
		res_tnode_t *t = e->thead;
		timer_del(e, t);
		if (t->kind == T_JOB) {
			res_job_t *j = TNODE_OWNER(t, res_job_t, timer);
			j->pins++;
			job_deadline(j);
			unpin(j);
		} else {
			client_budget(e, TNODE_OWNER(t, res_client_t, budget_));
		}
	}
	e->in_timers = false;
	e->armed_at = 0; /* the host's timer fired: arm it again whatever the head is */
	rearm(e);
}

/* ---- clients ----------------------------------------------------------------------------------
 */

/* Start a background refresh of \p key (a prefetch), unless one runs or the engine is full. */
static void prefetch(res_engine_t *e, const res_question_t *q, const uint8_t *key, size_t klen)
{
	uint64_t h = key_hash(e, key, klen);
	if (table_find(e, key, klen, h) || e->n_jobs >= e->conf.max_jobs)
		return;
	res_job_t *j = job_new(e, q->handle, q->idx, q->n_idx, q->types, q->n_types, key, klen, h,
	                       0, now_ms(e) + e->conf.timeout_ms);
	if (!j)
		return;
	e->st.prefetches++;
	j->refresh = true;
	j->recursion = (uint8_t)(q->recursion + 1u);
	j->pins++;
	job_start(j);
	if (j->state == J_FOLLOW)
		job_unwaited(j); /* another engine refreshes it already */
	unpin(j);
}

/*
 * A client without REC is not resolved for: when the prefix's sites are cached (its prefix
 * handle, fresh or stale), it is referred to them (RC 302: STR 0.NA/<prefix> + those values).
 */
static bool referral(res_engine_t *e, hdl_slice_t handle, uint8_t *buf, size_t cap,
                     res_answer_t *ans)
{
	hdl_slice_t prefix, suffix;
	uint8_t ph[HDL_MAX_HANDLE_LEN + 8], key[DCACHE_KEY_MAX];
	hdl_name_split(handle, &prefix, &suffix);
	if (hdl_slice_eq_nocase(prefix, hdl_slice_str("0.NA")) || prefix.len + 5u > sizeof(ph) ||
	    cap < 4u + 5u + prefix.len)
		return false;
	memcpy(ph, "0.NA/", 5);
	memcpy(ph + 5, prefix.p, prefix.len);
	hdl_slice_t pfx = {ph, prefix.len + 5u};
	size_t kl = make_key(e, pfx, NULL, 0, PREFIX_TYPES, 3, key, sizeof(key));
	size_t head = 4u + pfx.len;
	dcache_hit_t hit;
	if (kl == 0 ||
	    dcache_get(e->sh.dcache, key, kl, DCACHE_GET_STALE_OK, buf + head, cap - head, &hit) !=
	        HDL_EOK ||
	    hit.rcode != HDL_RC_SUCCESS || hit.n_values == 0)
		return false;
	buf[0] = (uint8_t)(pfx.len >> 24);
	buf[1] = (uint8_t)(pfx.len >> 16);
	buf[2] = (uint8_t)(pfx.len >> 8);
	buf[3] = (uint8_t)pfx.len;
	memcpy(buf + 4, pfx.p, pfx.len);
	ans->rcode = HDL_RC_SERVICE_REFERRAL;
	ans->message = NULL;
	ans->vals = buf;
	ans->vlen = head + hit.len;
	e->st.referred++;
	return true;
}

int res_try(res_engine_t *e, const res_question_t *q, uint8_t *buf, size_t cap, res_answer_t *ans)
{
	uint8_t key[DCACHE_KEY_MAX];
	memset(ans, 0, sizeof(*ans));
	if (q->recursion >= e->conf.max_recursion) {
		ans->rcode = HDL_RC_RECURSION_COUNT_TOO_HIGH;
		ans->message = "Recursion count too high";
		return RES_DONE;
	}
	size_t kl =
	    make_key(e, q->handle, q->idx, q->n_idx, q->types, q->n_types, key, sizeof(key));
	if (kl == 0) {
		ans->rcode = HDL_RC_INVALID_HANDLE;
		ans->message = "Invalid handle";
		return RES_DONE;
	}
	bool rec = (q->opflags & HDL_OF_REC) != 0;
	if (!(q->opflags & HDL_OF_AT)) {
		dcache_hit_t hit;
		int r = dcache_get(e->sh.dcache, key, kl, DCACHE_GET_FRESH, buf, cap, &hit);
		if (r == HDL_EOK) {
			ans->rcode = hit.rcode;
			ans->message = rcode_text(hit.rcode);
			ans->vals = buf;
			ans->vlen = hit.len;
			e->st.cache_hits++;
			if ((hit.flags & DCACHE_PREFETCH) && rec)
				prefetch(e, q, key, kl);
			return RES_DONE;
		}
		if (r == HDL_ENOENT && (hit.flags & DCACHE_STALE) &&
		    (!rec || res_hold_active(e->sh.hold, key, kl, now_ms(e))) &&
		    dcache_get(e->sh.dcache, key, kl, DCACHE_GET_STALE_OK, buf, cap, &hit) ==
		        HDL_EOK) {
			ans->rcode = hit.rcode;
			ans->message = rcode_text(hit.rcode);
			ans->vals = buf;
			ans->vlen = hit.len;
			ans->stale = true;
			e->st.stale++;
			return RES_DONE;
		}
	}
	if (!rec) {
		if (!(q->opflags & HDL_OF_DNRF) && referral(e, q->handle, buf, cap, ans))
			return RES_DONE;
		ans->rcode = HDL_RC_SERVER_NOT_RESP;
		ans->message = "That prefix doesn't live here";
		return RES_DONE;
	}
	return RES_MISS;
}

int res_start(res_engine_t *e, const res_question_t *q, res_client_t *c)
{
	uint8_t key[DCACHE_KEY_MAX];
	memset(&c->ans, 0, sizeof(c->ans));
	c->owned_ = NULL;
	c->job_ = NULL;
	size_t kl =
	    make_key(e, q->handle, q->idx, q->n_idx, q->types, q->n_types, key, sizeof(key));
	if (kl == 0) {
		c->ans.rcode = HDL_RC_INVALID_HANDLE;
		c->ans.message = "Invalid handle";
		return RES_DONE;
	}
	bool at = (q->opflags & HDL_OF_AT) != 0;
	uint64_t h = key_hash(e, key, kl);
	res_job_t *j = table_find(e, key, kl, h);
	if (j) {
		e->st.coalesced++;
	} else {
		if (e->n_jobs >= e->conf.max_jobs) {
			e->st.refused++;
			log_peer(LOG_LVL_NOTICE, "resolve: %u resolutions running, refusing one",
			         e->n_jobs);
			res_job_t tmp;
			memset(&tmp, 0, sizeof(tmp));
			tmp.key = key;
			tmp.klen = kl;
			tmp.at = at;
			tmp.status = HDL_ELIMIT;
			client_fill(e, c, &tmp);
			return RES_DONE;
		}
		j = job_new(e, q->handle, q->idx, q->n_idx, q->types, q->n_types, key, kl, h, 0,
		            now_ms(e) + e->conf.timeout_ms);
		if (!j) {
			c->ans.rcode = HDL_RC_SERVER_TOO_BUSY;
			c->ans.message = "out of memory";
			return RES_DONE;
		}
		j->refresh = at;
		j->at = at;
		j->recursion = (uint8_t)(q->recursion + 1u);
		j->pins++;
		job_start(j);
		if (j->state == J_DONE) {
			client_fill(e, c, j);
			unpin(j);
			return RES_DONE;
		}
		j->pins--; /* the client holds it now */
	}
	link_client(j, c);
	if (j->stale_seen && !at && e->conf.stale_budget_ms)
		timer_add(e, &c->budget_, now_ms(e) + e->conf.stale_budget_ms, T_CLIENT);
	return RES_WAIT;
}

void res_client_cancel(res_engine_t *e, res_client_t *c)
{
	timer_del(e, &c->budget_);
	res_job_t *j = c->job_;
	if (!j)
		return;
	unlink_client(j, c);
	if (!j->clients && !j->parents && j->state != J_DONE)
		job_unwaited(j);
}

void res_client_release(res_client_t *c)
{
	free(c->owned_);
	c->owned_ = NULL;
	c->ans.vals = NULL;
	c->ans.vlen = 0;
}

/* ---- engine -----------------------------------------------------------------------------------
 */

int res_new(const res_ops_t *ops, void *env, const res_conf_t *conf, const res_shared_t *sh,
            res_engine_t **out)
{
	if (!ops || !ops->now_ms || !ops->query || !ops->cancel || !ops->arm || !ops->wake ||
	    !ops->answer || !sh || !sh->dcache || !sh->dflight)
		return HDL_EINVAL;
	res_engine_t *e = calloc(1, sizeof(*e));
	if (!e)
		return HDL_ENOMEM;
	if (pthread_mutex_init(&e->pmu, NULL) != 0) {
		free(e);
		return HDL_ENOMEM;
	}
	e->ops = *ops;
	e->env = env;
	e->conf = *conf;
	if (e->conf.max_jobs == 0)
		e->conf.max_jobs = 1;
	e->sh = *sh;
	e->armed_at = UINT64_MAX;
	rhash_new_key(e->hkey);
	*out = e;
	return HDL_EOK;
}

void res_free(res_engine_t *e)
{
	if (!e)
		return;
	e->closing = true;
	/* first: nothing may reach these jobs from other threads any more */
	for (res_job_t *j = e->jobs; j; j = j->next) {
		if (j->qh) {
			e->ops.cancel(e->env, j->qh);
			j->qh = NULL;
		}
		if (j->following) {
			j->following = false;
			if (!dflight_leave(e->sh.dflight, &j->fw)) {
				while (!atomic_load(&j->p_ran))
					sched_yield();
			}
		}
		if (j->leading) {
			j->leading = false;
			(void)dflight_abandon(e->sh.dflight, &j->fw, DFLIGHT_PROMOTED);
		}
	}
	pthread_mutex_lock(&e->pmu);
	res_job_t *list = e->phead;
	e->phead = e->ptail = NULL;
	pthread_mutex_unlock(&e->pmu);
	for (; list; list = list->qnext) {
		free(list->p_vals);
		list->p_vals = NULL;
		list->post_pending = false;
	}
	/* then: every waiting client gets an answer, every job goes */
	for (res_job_t *j = e->jobs; j; j = j->next) {
		while (j->clients) {
			res_client_t *c = j->clients;
			unlink_client(j, c);
			timer_del(e, &c->budget_);
			memset(&c->ans, 0, sizeof(c->ans));
			c->ans.rcode = HDL_RC_SERVER_TOO_BUSY;
			c->ans.message = "Server shutting down";
			e->ops.answer(e->env, c);
		}
		while (j->parents)
			unlink_parent(j, j->parents);
		j->child = NULL;
	}
	while (e->jobs)
		job_free(e->jobs);
	pthread_mutex_destroy(&e->pmu);
	free(e);
}

void res_get_stats(const res_engine_t *e, res_stats_t *st)
{
	*st = e->st;
}
