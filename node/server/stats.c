/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Usage statistics of a running node (see stats.h): per-worker buffers, their hand-over to the
 * main thread, the audit trail reader and the flush into the store.
 */
#define _GNU_SOURCE
#include "node/server/stats.h"

#include <event2/event.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hdl/error.h"
#include "node/common/log.h"
#include "node/conf/conf.h"
#include "node/server/obs.h"
#include "node/store/audit.h"
#include "node/store/stats.h"
#include "node/store/store.h"

#define META_CURSOR "stats_audit" /* U64: id of the last audit entry counted */
#define PRUNE_STEP  1000u         /* old records deleted per flush at most */

/* One prefix in a worker buffer. */
typedef struct wpfx {
	uint8_t name[STATS_PREFIX_MAX];
	uint32_t len;
	uint64_t hash;
	bool used; /* counted since the last clear */
	bool hll_used;
	uint64_t res[OBS_T_N][OBS_RC_N]; /* resolutions by transport and response code slot */
	uint8_t *hll;
	stats_toplist_t top;
} wpfx_t;

/* A worker buffer: slot 0 is STATS_OTHER, the others prefixes by name. */
typedef struct wbuf {
	uint32_t day;
	bool dirty;
	uint32_t n, cap; /* slots in use (slot 0 included), slots at most */
	wpfx_t **p;
	uint16_t *index; /* by prefix hash: slot + 1, 0 = empty */
	uint32_t index_mask;
	wpfx_t *last;      /* the slot found last (most requests name the same prefix) */
	uint64_t overflow; /* resolutions counted under STATS_OTHER for want of a slot */
} wbuf_t;

struct stats_worker {
	stats_node_t *node;
	wbuf_t *cur;
	_Atomic(wbuf_t *) spare; /* the other buffer, given back by the main thread */
	_Atomic(wbuf_t *) ready; /* published by the tick, taken by the main thread */
	uint64_t last_pub_ms;
	wbuf_t bufs[2];
};

struct stats_node {
	store_t *store;
	stats_opts_t o;
	unsigned n_workers;
	stats_worker_t *w;
	/* the main thread's aggregate of one flush */
	stats_day_t *agg;
	uint32_t n_agg, cap_agg;
	struct event *timer;
	_Atomic uint64_t flushes, flush_errors, records, audit_entries, overflow, last_flush;
};

static uint32_t today(void)
{
	return (uint32_t)(time(NULL) / 86400);
}

void stats_opts_from_conf(const conf_t *c, stats_opts_t *o)
{
	o->max_prefixes = c->stats_max_prefixes;
	o->top_entries = c->stats_top_entries;
	o->flush_interval_s = c->stats_flush_interval_s;
	o->retention_days = c->stats_retention_days;
	o->audit_batch = c->stats_audit_batch;
}

/* ---- worker buffers -------------------------------------------------------------------------- */

static void wpfx_free(wpfx_t *p)
{
	if (!p)
		return;
	free(p->hll);
	stats_top_free(&p->top);
	free(p);
}

static wpfx_t *wpfx_new(hdl_slice_t name, uint64_t hash, uint32_t top_cap)
{
	wpfx_t *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->hll = calloc(STATS_HLL_M, 1);
	if (!p->hll || stats_top_init(&p->top, top_cap) != HDL_EOK) {
		wpfx_free(p);
		return NULL;
	}
	memcpy(p->name, name.p, name.len);
	p->len = name.len;
	p->hash = hash;
	return p;
}

static void wbuf_free(wbuf_t *b)
{
	for (uint32_t i = 0; b->p && i < b->n; i++)
		wpfx_free(b->p[i]);
	free(b->p);
	free(b->index);
	memset(b, 0, sizeof(*b));
}

static int wbuf_init(wbuf_t *b, const stats_opts_t *o)
{
	memset(b, 0, sizeof(*b));
	b->cap = o->max_prefixes + 1;
	uint32_t slots = 1;
	while (slots < 2 * b->cap)
		slots <<= 1;
	b->p = calloc(b->cap, sizeof(*b->p));
	b->index = calloc(slots, sizeof(*b->index));
	b->index_mask = slots - 1;
	hdl_slice_t other = hdl_slice_str(STATS_OTHER);
	if (b->p)
		b->p[0] = wpfx_new(other, stats_hash(other.p, other.len), 1);
	if (!b->p || !b->index || !b->p[0]) {
		wbuf_free(b);
		return HDL_ENOMEM;
	}
	b->n = 1;
	b->day = today();
	return HDL_EOK;
}

/* Zero the counts (prefix slots stay, so the worker does not allocate them again). */
static void wbuf_clear(wbuf_t *b)
{
	for (uint32_t i = 0; i < b->n; i++) {
		wpfx_t *p = b->p[i];
		if (!p->used)
			continue;
		memset(p->res, 0, sizeof(p->res));
		if (p->hll_used)
			memset(p->hll, 0, STATS_HLL_M);
		stats_top_clear(&p->top);
		p->used = p->hll_used = false;
	}
	b->dirty = false;
	b->overflow = 0;
}

/* The slot of \p prefix, made when missing; slot 0 (STATS_OTHER) when the buffer is full. */
static wpfx_t *wbuf_prefix(wbuf_t *b, hdl_slice_t prefix, uint32_t top_cap)
{
	if (prefix.len == 0 || prefix.len > STATS_PREFIX_MAX)
		return b->p[0];
	wpfx_t *last = b->last;
	if (last && last->len == prefix.len && memcmp(last->name, prefix.p, prefix.len) == 0)
		return last;
	uint64_t h = stats_hash(prefix.p, prefix.len);
	uint32_t i = (uint32_t)h & b->index_mask;
	while (b->index[i]) {
		wpfx_t *p = b->p[b->index[i] - 1];
		if (p->hash == h && p->len == prefix.len &&
		    memcmp(p->name, prefix.p, prefix.len) == 0)
			return b->last = p;
		i = (i + 1) & b->index_mask;
	}
	wpfx_t *p = b->n < b->cap ? wpfx_new(prefix, h, top_cap) : NULL;
	if (!p) {
		b->overflow++;
		return b->p[0];
	}
	b->p[b->n] = p;
	b->index[i] = (uint16_t)(b->n + 1);
	b->n++;
	return b->last = p;
}

void stats_note(stats_worker_t *w, unsigned t, hdl_slice_t name, hdl_slice_t prefix, uint32_t rcode)
{
	wbuf_t *b = w->cur;
	wpfx_t *p = wbuf_prefix(b, prefix, w->node->o.top_entries);
	p->res[t < OBS_T_N ? t : STATS_T_OTHER][obs_rc_slot(rcode)]++;
	p->used = true;
	b->dirty = true;
	if (p == b->p[0] || name.len == 0 ||
	    (rcode != HDL_RC_SUCCESS && rcode != HDL_RC_VALUES_NOT_FOUND))
		return;
	uint64_t h = stats_hash(name.p, name.len);
	stats_hll_add(p->hll, h);
	p->hll_used = true;
	stats_top_add(&p->top, h, name.p, name.len, 1);
}

void stats_worker_tick(stats_worker_t *w, uint64_t now_ms)
{
	wbuf_t *b = w->cur;
	uint32_t day = today();
	if (!b->dirty) {
		b->day = day;
		w->last_pub_ms = now_ms;
		return;
	}
	if (b->day == day &&
	    now_ms - w->last_pub_ms < (uint64_t)w->node->o.flush_interval_s * 1000u)
		return;
	if (atomic_load_explicit(&w->ready, memory_order_acquire) != NULL)
		return; /* the main thread has not taken the last one yet */
	wbuf_t *next = atomic_exchange_explicit(&w->spare, NULL, memory_order_acq_rel);
	if (!next)
		return;
	atomic_store_explicit(&w->ready, b, memory_order_release);
	next->day = day;
	w->cur = next;
	w->last_pub_ms = now_ms;
}

/* ---- node ------------------------------------------------------------------------------------ */

int stats_node_new(store_t *s, const stats_opts_t *o, unsigned n_workers, stats_node_t **out)
{
	*out = NULL;
	if (o->max_prefixes == 0 || o->top_entries == 0 || o->top_entries > STATS_TOP_MAX ||
	    o->flush_interval_s == 0 || o->audit_batch == 0 || n_workers == 0 ||
	    o->max_prefixes > 30000)
		return HDL_EINVAL;
	stats_node_t *n = calloc(1, sizeof(*n));
	if (!n)
		return HDL_ENOMEM;
	n->store = s;
	n->o = *o;
	n->n_workers = n_workers;
	n->w = calloc(n_workers, sizeof(*n->w));
	if (!n->w)
		goto fail;
	for (unsigned i = 0; i < n_workers; i++) {
		stats_worker_t *w = &n->w[i];
		w->node = n;
		if (wbuf_init(&w->bufs[0], o) != HDL_EOK || wbuf_init(&w->bufs[1], o) != HDL_EOK)
			goto fail;
		w->cur = &w->bufs[0];
		atomic_init(&w->spare, &w->bufs[1]);
		atomic_init(&w->ready, NULL);
	}
	*out = n;
	return HDL_EOK;
fail:
	stats_node_free(n);
	return HDL_ENOMEM;
}

static void agg_clear(stats_node_t *n)
{
	for (uint32_t i = 0; i < n->n_agg; i++)
		stats_day_free(&n->agg[i]);
	n->n_agg = 0;
}

void stats_node_free(stats_node_t *n)
{
	if (!n)
		return;
	stats_stop_timer(n);
	for (unsigned i = 0; n->w && i < n->n_workers; i++) {
		wbuf_free(&n->w[i].bufs[0]);
		wbuf_free(&n->w[i].bufs[1]);
	}
	free(n->w);
	agg_clear(n);
	free(n->agg);
	free(n);
}

stats_worker_t *stats_node_worker(stats_node_t *n, unsigned id)
{
	return n && id < n->n_workers ? &n->w[id] : NULL;
}

void stats_get_info(const stats_node_t *n, stats_info_t *out)
{
	memset(out, 0, sizeof(*out));
	if (!n)
		return;
	out->flushes = obs_get(&n->flushes);
	out->flush_errors = obs_get(&n->flush_errors);
	out->records = obs_get(&n->records);
	out->audit_entries = obs_get(&n->audit_entries);
	out->overflow = obs_get(&n->overflow);
	out->last_flush_unix = obs_get(&n->last_flush);
}

/* ---- the flush (main thread) ----------------------------------------------------------------- */

/*
 * The aggregate of (day, prefix), made when missing. Bounded: past four times max_prefixes
 * records in one flush, the rest is counted under (day, STATS_OTHER).
 */
static stats_day_t *agg_get(stats_node_t *n, uint32_t day, hdl_slice_t prefix)
{
	hdl_slice_t other = hdl_slice_str(STATS_OTHER);
	if (prefix.len == 0 || prefix.len > STATS_PREFIX_MAX)
		prefix = other;
	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t i = 0; i < n->n_agg; i++) {
			stats_day_t *d = &n->agg[i];
			if (d->day == day &&
			    hdl_slice_eq((hdl_slice_t){d->prefix, d->prefix_len}, prefix))
				return d;
		}
		bool is_other = hdl_slice_eq(prefix, other);
		if (n->n_agg < 4u * n->o.max_prefixes + 8u || is_other) {
			if (n->n_agg == n->cap_agg) {
				uint32_t nc = n->cap_agg ? 2 * n->cap_agg : 8;
				stats_day_t *na = realloc(n->agg, sizeof(*na) * nc);
				if (!na)
					return NULL;
				n->agg = na;
				n->cap_agg = nc;
			}
			stats_day_t *d = &n->agg[n->n_agg];
			if (stats_day_init(d, day, prefix, n->o.top_entries) != HDL_EOK)
				return NULL;
			n->n_agg++;
			return d;
		}
		prefix = other;
	}
	return NULL;
}

/* Merge a buffer a worker handed over. */
static int agg_wbuf(stats_node_t *n, wbuf_t *b)
{
	atomic_fetch_add_explicit(&n->overflow, b->overflow, memory_order_relaxed);
	for (uint32_t i = 0; i < b->n; i++) {
		wpfx_t *p = b->p[i];
		if (!p->used)
			continue;
		stats_day_t *d = agg_get(n, b->day, (hdl_slice_t){p->name, p->len});
		if (!d)
			return HDL_ENOMEM;
		for (unsigned t = 0; t < OBS_T_N; t++) {
			for (unsigned s = 0; s < OBS_RC_N; s++) {
				int ret = stats_day_add_res(d, t, obs_rc_of_slot(s), p->res[t][s]);
				if (ret != HDL_EOK)
					return ret;
			}
		}
		if (p->hll_used) {
			stats_hll_merge(d->hll, p->hll);
			d->hll_used = true;
		}
		int ret = stats_top_merge(&d->top, &p->top);
		if (ret != HDL_EOK)
			return ret;
	}
	return HDL_EOK;
}

typedef struct audit_walk {
	stats_node_t *n;
	uint64_t cursor; /* last id counted */
	uint32_t left;   /* entries still to read in this flush */
	uint64_t counted;
	hdl_arena_t arena;
	int err;
} audit_walk_t;

static int audit_cb(void *ctx, uint64_t id, hdl_slice_t rec)
{
	audit_walk_t *aw = ctx;
	if (id <= aw->cursor)
		return 0;
	if (aw->left == 0)
		return 1;
	aw->left--;
	aw->cursor = id;
	audit_rec_t r;
	hdl_arena_reset(&aw->arena);
	if (audit_decode(rec.p, rec.len, &aw->arena, &r) != HDL_EOK || r.rcode != HDL_RC_SUCCESS)
		return 0;
	int which;
	switch (r.op) {
	case AUDIT_OP_CREATE: which = 0; break;
	case AUDIT_OP_DELETE: which = 2; break;
	case AUDIT_OP_ADD:
	case AUDIT_OP_REMOVE:
	case AUDIT_OP_MODIFY: which = 1; break;
	default: return 0; /* homing, imports */
	}
	uint8_t key[HDL_MAX_HANDLE_LEN + 8];
	size_t kl = store_key(aw->n->store, r.handle, key, sizeof(key));
	hdl_slice_t prefix =
	    kl ? hdl_name_authority((hdl_slice_t){key, (uint32_t)kl}) : (hdl_slice_t){NULL, 0};
	stats_day_t *d = agg_get(aw->n, r.time / 86400u, prefix);
	if (!d) {
		aw->err = HDL_ENOMEM;
		return 1;
	}
	uint64_t *field = which == 0 ? &d->created : which == 1 ? &d->modified : &d->deleted;
	(*field)++;
	aw->counted++;
	return 0;
}

static uint64_t be64_get(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

typedef struct prune_walk {
	uint32_t before;
	uint8_t (*keys)[STATS_KEY_MAX];
	uint32_t *lens;
	uint32_t n;
} prune_walk_t;

static int prune_cb(void *ctx, hdl_slice_t key, hdl_slice_t val)
{
	prune_walk_t *pw = ctx;
	uint32_t day;
	hdl_slice_t prefix;
	if (stats_key_parse(key, &day, &prefix) != HDL_EOK || day >= pw->before ||
	    pw->n >= PRUNE_STEP)
		return 1; /* keys sort by day: the rest is newer */
	memcpy(pw->keys[pw->n], key.p, key.len);
	pw->lens[pw->n++] = key.len;
	return 0;
}

/* Read the audit trail since the cursor and find expired records (one read snapshot). */
static int read_store(stats_node_t *n, audit_walk_t *aw, prune_walk_t *pw)
{
	store_reader_t *r = NULL;
	int ret = store_reader_new(n->store, &r);
	if (ret != HDL_EOK)
		return ret;
	ret = store_reader_begin(r);
	if (ret == HDL_EOK) {
		hdl_slice_t cur;
		if (store_meta_get(r, META_CURSOR, &cur) == HDL_EOK && cur.len == 8)
			aw->cursor = be64_get(cur.p);
		ret = store_audit_foreach(r, (uint32_t)(aw->cursor >> 32), (hdl_slice_t){NULL, 0},
		                          audit_cb, aw);
		if (ret == HDL_EOK)
			ret = aw->err;
		if (ret == HDL_EOK && pw->before)
			ret = store_stats_foreach(r, (hdl_slice_t){NULL, 0}, prune_cb, pw);
		store_reader_end(r);
	}
	store_reader_free(r);
	return ret;
}

/* Merge each aggregate into its stored record and write it back, with the audit cursor. */
static int write_store(stats_node_t *n, const audit_walk_t *aw, const prune_walk_t *pw)
{
	store_batch_t *b = NULL;
	stats_day_t old;
	uint8_t *buf = NULL;
	size_t cap = 0;
	uint64_t written = 0;
	int ret = store_batch_begin(n->store, &b);
	if (ret != HDL_EOK)
		return ret;
	memset(&old, 0, sizeof(old));
	for (uint32_t i = 0; i < n->n_agg && ret == HDL_EOK; i++) {
		stats_day_t *d = &n->agg[i];
		uint8_t key[STATS_KEY_MAX];
		hdl_slice_t k = {
		    key, (uint32_t)stats_key(d->day, (hdl_slice_t){d->prefix, d->prefix_len}, key)};
		hdl_slice_t v;
		stats_day_t *out = d;
		ret = store_batch_stats_get(b, k, &v);
		if (ret == HDL_EOK) {
			ret = stats_day_init(&old, d->day, (hdl_slice_t){d->prefix, d->prefix_len},
			                     n->o.top_entries);
			if (ret == HDL_EOK && stats_day_decode(v.p, v.len, &old) != HDL_EOK) {
				char ds[11];
				log_warn("stats: record %s %.*s does not decode: replaced",
				         stats_day_str(d->day, ds), (int)d->prefix_len, d->prefix);
				stats_day_free(&old);
				ret = stats_day_init(&old, d->day,
				                     (hdl_slice_t){d->prefix, d->prefix_len},
				                     n->o.top_entries);
			}
			if (ret == HDL_EOK)
				ret = stats_day_merge(&old, d);
			out = &old;
		} else if (ret == HDL_ENOENT) {
			ret = HDL_EOK;
		}
		size_t need = stats_day_size(out), len = 0;
		if (ret == HDL_EOK && need > cap) {
			uint8_t *nb = realloc(buf, need);
			ret = nb ? HDL_EOK : HDL_ENOMEM;
			if (nb) {
				buf = nb;
				cap = need;
			}
		}
		if (ret == HDL_EOK)
			ret = stats_day_encode(out, buf, cap, &len);
		if (ret == HDL_EOK)
			ret = store_batch_stats_put(b, k, (hdl_slice_t){buf, (uint32_t)len});
		written += ret == HDL_EOK;
		if (out == &old)
			stats_day_free(&old);
	}
	for (uint32_t i = 0; i < pw->n && ret == HDL_EOK; i++) {
		ret = store_batch_stats_del(b, (hdl_slice_t){pw->keys[i], pw->lens[i]});
		if (ret == HDL_ENOENT)
			ret = HDL_EOK;
	}
	if (ret == HDL_EOK) {
		uint8_t c[8];
		for (int i = 0; i < 8; i++)
			c[i] = (uint8_t)(aw->cursor >> (56 - 8 * i));
		ret = store_batch_meta_put(b, META_CURSOR, (hdl_slice_t){c, 8});
	}
	free(buf);
	if (ret != HDL_EOK) {
		store_batch_abort(b);
		return ret;
	}
	ret = store_batch_commit(b);
	if (ret == HDL_EOK)
		atomic_fetch_add_explicit(&n->records, written, memory_order_relaxed);
	return ret;
}

int stats_flush(stats_node_t *n, bool final)
{
	int ret = HDL_EOK;
	for (unsigned i = 0; i < n->n_workers && ret == HDL_EOK; i++) {
		stats_worker_t *w = &n->w[i];
		wbuf_t *b = atomic_exchange_explicit(&w->ready, NULL, memory_order_acq_rel);
		if (b) {
			ret = agg_wbuf(n, b);
			wbuf_clear(b);
			atomic_store_explicit(&w->spare, b, memory_order_release);
		}
		if (final && ret == HDL_EOK && w->cur->dirty) {
			ret = agg_wbuf(n, w->cur);
			wbuf_clear(w->cur);
		}
	}
	audit_walk_t aw = {.n = n, .left = n->o.audit_batch};
	prune_walk_t pw = {0};
	uint8_t first[4096];
	hdl_arena_init(&aw.arena, first, sizeof(first), 1u << 20);
	uint32_t now_day = today();
	if (n->o.retention_days && now_day > n->o.retention_days) {
		pw.before = now_day - n->o.retention_days;
		pw.keys = malloc(sizeof(*pw.keys) * PRUNE_STEP);
		pw.lens = malloc(sizeof(*pw.lens) * PRUNE_STEP);
		if (!pw.keys || !pw.lens)
			pw.before = 0;
	}
	if (ret == HDL_EOK)
		ret = read_store(n, &aw, &pw);
	if (ret == HDL_EOK && (n->n_agg || pw.n || aw.counted || aw.left < n->o.audit_batch))
		ret = write_store(n, &aw, &pw);
	hdl_arena_free(&aw.arena);
	free(pw.keys);
	free(pw.lens);
	agg_clear(n);
	if (ret != HDL_EOK) {
		atomic_fetch_add_explicit(&n->flush_errors, 1, memory_order_relaxed);
		log_err("stats: flush failed, its counts are lost: %s",
		        store_strerror(n->store, ret));
		return ret;
	}
	atomic_fetch_add_explicit(&n->flushes, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&n->audit_entries, aw.counted, memory_order_relaxed);
	atomic_store_explicit(&n->last_flush, (uint64_t)time(NULL), memory_order_relaxed);
	if (aw.left == 0)
		log_info("stats: %u audit entries counted, more to come at the next flush",
		         n->o.audit_batch);
	return HDL_EOK;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)stats_flush(arg, false);
}

int stats_start_timer(stats_node_t *n, struct event_base *base)
{
	struct timeval tv = {(time_t)n->o.flush_interval_s, 0};
	n->timer = event_new(base, -1, EV_PERSIST, on_timer, n);
	if (!n->timer || event_add(n->timer, &tv) != 0) {
		stats_stop_timer(n);
		return HDL_ENOMEM;
	}
	return HDL_EOK;
}

void stats_stop_timer(stats_node_t *n)
{
	if (n && n->timer) {
		event_free(n->timer);
		n->timer = NULL;
	}
}
