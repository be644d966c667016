/* SPDX-License-Identifier: Apache-2.0 */
#include "node/server/dispatch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hdl/error.h"
#include "hdl/values.h"
#include "node/common/log.h"
#include "node/server/admin.h"
#include "node/server/cache.h"
#include "node/server/delegate.h"
#include "node/server/obs.h"
#include "node/server/preq.h"
#include "node/server/qlog.h"
#include "node/server/reply.h"
#include "node/server/stats.h"
#include "node/store/store.h"
#include "proto/wire.h"

#define ARENA_FIRST 65536u
#define ARENA_LIMIT (8u * 1024u * 1024u)


int dispatch_ctx_init(dispatch_ctx_t *ctx, node_shared_t *node)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->node = node;
	void *first = malloc(ARENA_FIRST);
	if (!first)
		return HDL_ENOMEM;
	hdl_arena_init(&ctx->arena, first, ARENA_FIRST, ARENA_LIMIT);
	ctx->cache = rcache_new(NODE_LIMIT(&node->limits, cache_bytes));
	if (ctx->cache)
		(void)rcache_set_admission(ctx->cache, true); /* without it: every put admitted */
	ctx->cache_limits_gen = atomic_load_explicit(&node->limits.gen, memory_order_acquire);
	int ret = ctx->cache ? store_reader_new(node->store, &ctx->reader) : HDL_ENOMEM;
	if (ret != HDL_EOK) {
		rcache_free(ctx->cache);
		ctx->cache = NULL;
		free(first);
		ctx->arena.buf = NULL;
		return ret;
	}
	return HDL_EOK;
}

void dispatch_cache_log(const dispatch_ctx_t *ctx)
{
	rcache_stats_t st;
	if (!ctx->cache)
		return;
	rcache_get_stats(ctx->cache, &st);
	if (st.hits + st.misses == 0)
		return;
	log_info("response cache: %llu hits, %llu misses (%.1f %%), %zu entries, %zu of %zu bytes, "
	         "%llu evicted, %llu flushes, %llu invalidated, %llu not admitted",
	         (unsigned long long)st.hits, (unsigned long long)st.misses,
	         100.0 * (double)st.hits / (double)(st.hits + st.misses), st.entries, st.bytes,
	         st.max_bytes, (unsigned long long)st.evictions, (unsigned long long)st.flushes,
	         (unsigned long long)st.invalidations, (unsigned long long)st.rejected);
}

void dispatch_ctx_free(dispatch_ctx_t *ctx)
{
	dispatch_cache_log(ctx);
	rcache_free(ctx->cache);
	ctx->cache = NULL;
	if (ctx->reader)
		store_reader_free(ctx->reader);
	uint8_t *first = ctx->arena.buf;
	hdl_arena_free(&ctx->arena);
	free(first);
	ctx->reader = NULL;
}

size_t dispatch_error_reply(dispatch_ctx_t *ctx, const uint8_t *req, size_t len, uint32_t rcode,
                            const char *msg, uint8_t *out, size_t cap)
{
	hdl_envelope_t env;
	int ret = hdl_envelope_decode(req, len, &env);
	if (ret != HDL_EOK && ret != HDL_ELIMIT)
		return 0;
	reply_t r;
	reply_from_raw(&r, &env, req, len);
	return reply_error(ctx, &r, rcode, msg, out, cap);
}

/* ---- stored values ------------------------------------------------------------------------ */

typedef struct raw_value {
	uint32_t index;
	uint8_t perms;
	hdl_slice_t type;
	hdl_slice_t raw;
} raw_value_t;

/* Walk one encoded HandleValue without decoding its data (layout in handle-protocol.md §5.1). */
static bool raw_value_next(wire_rd_t *rd, raw_value_t *v)
{
	size_t start = rd->pos;
	v->index = wire_rd_u32(rd);
	wire_rd_skip(rd, 4 + 1 + 4); /* timestamp, TTL type, TTL */
	v->perms = wire_rd_u8(rd);
	v->type = wire_rd_lbytes(rd, HDL_MAX_TYPE_LEN);
	(void)wire_rd_lbytes(rd, HDL_MAX_ARRAY_LEN);
	uint32_t nrefs = wire_rd_u32(rd);
	if (nrefs > HDL_MAX_REFS)
		wire_rd_fail(rd, HDL_ELIMIT);
	for (uint32_t i = 0; i < nrefs && !rd->err; i++) {
		(void)wire_rd_lbytes(rd, HDL_MAX_HANDLE_LEN);
		(void)wire_rd_u32(rd);
	}
	if (rd->err)
		return false;
	v->raw.p = rd->base + start;
	v->raw.len = (uint32_t)(rd->pos - start);
	return true;
}

static bool value_wanted(const raw_value_t *v, const uint32_t *idx, uint32_t n_idx,
                         const hdl_slice_t *types, uint32_t n_types)
{
	if (n_idx == 0 && n_types == 0)
		return true;
	for (uint32_t i = 0; i < n_idx; i++) {
		if (idx[i] == v->index)
			return true;
	}
	for (uint32_t i = 0; i < n_types; i++) {
		if (hdl_type_matches(v->type, types[i]))
			return true;
	}
	return false;
}

int dispatch_begin(dispatch_ctx_t *ctx)
{
	if (ctx->timing)
		ctx->t_rest_ns = obs_now_ns();
	hdl_arena_reset(&ctx->arena);
	return store_reader_begin(ctx->reader);
}

void dispatch_end(dispatch_ctx_t *ctx)
{
	store_reader_end(ctx->reader);
}

static bool is_prefix_handle(hdl_slice_t key)
{
	return key.len > 5 && hdl_slice_eq_nocase((hdl_slice_t){key.p, 5}, hdl_slice_str("0.NA/"));
}

/*
 * Count a resolution in the usage statistics: \p key is the normalized name (empty when the
 * handle was invalid), \p homed whether its prefix is homed here.
 */
static void note_resolution(dispatch_ctx_t *ctx, unsigned t, hdl_slice_t key, bool homed,
                            uint32_t rcode)
{
	if (!ctx->stats)
		return;
	hdl_slice_t prefix = {NULL, 0};
	if (homed)
		prefix = hdl_name_authority(key);
	stats_note(ctx->stats, t, key, prefix, rcode);
}

/*
 * dispatch_resolve(), also saying which name it looked up: the normalized name goes into
 * \p keybuf (HDL_MAX_HANDLE_LEN + 8 bytes) and \p *key (empty when the name is invalid), and
 * \p *homed says whether its prefix is homed here. \p admin_read also keeps the values with
 * ADMIN_READ (an authorized reader: dispatch_resolve_admin()).
 */
static int resolve_sel(dispatch_ctx_t *ctx, hdl_slice_t handle, const uint32_t *idx, uint32_t n_idx,
                       const hdl_slice_t *types, uint32_t n_types, bool public_only,
                       bool admin_read, dispatch_sel_t *sel, uint8_t *keybuf, hdl_slice_t *keyout, bool *homed)
{
	hdl_slice_t vals = {NULL, 0};
	memset(sel, 0, sizeof(*sel));
	keyout->p = keybuf;
	keyout->len = 0;
	*homed = false;

	if (hdl_name_check(handle.p, handle.len) != HDL_EOK) {
		sel->rcode = HDL_RC_INVALID_HANDLE;
		sel->message = "Invalid handle";
		return HDL_EOK;
	}
	size_t kl = store_key(ctx->node->store, handle, keybuf, HDL_MAX_HANDLE_LEN + 8);
	if (kl == 0) {
		sel->rcode = HDL_RC_INVALID_HANDLE;
		sel->message = "Invalid handle";
		return HDL_EOK;
	}
	hdl_slice_t key = {keybuf, (uint32_t)kl};
	keyout->len = (uint32_t)kl;
	hdl_slice_t auth = hdl_name_authority(key);
	bool derived = false;
	if (auth.len == 0 || !store_is_homed(ctx->reader, auth)) {
		/*
		 * The prefix handle of a derived prefix (0.NA/88.100.2) lives with its parent
		 * prefix (88.100): a node homing the parent answers it from its store (Handle.Net's
		 * parent NA of a prefix handle; docs/delegation.md "Resolution").
		 */
		hdl_slice_t parent = auth;
		while (parent.len && parent.p[parent.len - 1] != '.')
			parent.len--;
		if (parent.len > 1)
			parent.len--;
		derived = is_prefix_handle(key) && parent.len > 0 && parent.len < auth.len &&
		          parent.p[parent.len] == '.' && store_is_homed(ctx->reader, parent);
		if (!derived) {
			sel->rcode = HDL_RC_SERVER_NOT_RESP;
			sel->message = "That prefix doesn't live here";
			sel->not_homed = true;
			return HDL_EOK;
		}
	}
	*homed = true;
	static const uint8_t no_values[4] = {0, 0, 0, 0};
	bool prefix = is_prefix_handle(key) && ctx->node->prefix_vals && !derived;
	int ret = store_get(ctx->reader, key, &vals);
	if (ret == HDL_ENOENT && prefix) {
		/* a homed prefix without a record of its own: our HS_SITE is added below */
		vals.p = no_values;
		vals.len = sizeof(no_values);
		ret = HDL_EOK;
	}
	if (ret == HDL_ENOENT) {
		sel->rcode = HDL_RC_HANDLE_NOT_FOUND;
		sel->message = "Handle not found";
		return HDL_EOK;
	}
	if (ret != HDL_EOK) {
		log_err("store lookup failed: %s", hdl_strerror(ret));
		sel->rcode = HDL_RC_SERVER_TOO_BUSY;
		sel->message = "store unavailable";
		return HDL_EOK;
	}

	wire_rd_t rd = wire_rd_init(vals.p, vals.len);
	uint32_t count = wire_rd_u32(&rd);
	uint32_t max_values = NODE_LIMIT(&ctx->node->limits, max_values);
	if (rd.err || count > HDL_MAX_VALUES) {
		log_err("stored record damaged (value count)");
		sel->rcode = HDL_RC_ERROR;
		sel->message = "stored record is damaged";
		return HDL_EOK;
	}
	if (count > max_values) {
		log_peer(LOG_LVL_WARN, "handle has %u values, over max_values %u", count,
		         max_values);
		sel->rcode = HDL_RC_ERROR;
		sel->message = "too many values";
		return HDL_EOK;
	}
	uint32_t slots = count + (prefix ? 1 : 0);
	sel->vals = slots ? hdl_arena_alloc(&ctx->arena, sizeof(hdl_slice_t) * slots) : NULL;
	if (slots && !sel->vals)
		return HDL_ENOMEM;

	uint32_t max_index = 0;
	bool has_service = false, index1_used = false;
	for (uint32_t i = 0; i < count; i++) {
		raw_value_t v;
		if (!raw_value_next(&rd, &v)) {
			log_err("stored record damaged (value %u)", i);
			sel->rcode = HDL_RC_ERROR;
			sel->message = "stored record is damaged";
			sel->n = 0;
			return HDL_EOK;
		}
		hdl_vtype_t vt = hdl_vtype_of(v.type);
		has_service |= vt == HDL_VT_SITE || vt == HDL_VT_SERV;
		index1_used |= v.index == 1;
		max_index = v.index > max_index ? v.index : max_index;
		if (!value_wanted(&v, idx, n_idx, types, n_types))
			continue;
		if (!(v.perms & HDL_PERM_PUBLIC_READ) &&
		    !(admin_read && (v.perms & HDL_PERM_ADMIN_READ))) {
			/*
			 * AUTH: values without PUBLIC_READ. With PO set they are silently left out
			 * (Handle.Net does the same). With PO clear an authenticated reader with
			 * READ_VALUE could get them after a challenge (RC 402); authentication is a
			 * later issue, so for now they are left out in both cases.
			 */
			(void)public_only;
			continue;
		}
		sel->vals[sel->n++] = v.raw;
	}
	if (prefix && !has_service && (!index1_used || max_index < UINT32_MAX)) {
		/*
		 * The prefix handle of a homed prefix says where the prefix is served: when the
		 * stored record (if any) has no HS_SITE / HS_SERV, this node's HS_SITE is added,
		 * at index 1 or after the highest index used.
		 */
		raw_value_t sv;
		wire_rd_t srd = wire_rd_init(ctx->node->prefix_vals + 4,
		                             ctx->node->prefix_vals_len - 4);
		if (raw_value_next(&srd, &sv)) {
			sv.index = index1_used ? max_index + 1 : 1;
			count++;
			if (value_wanted(&sv, idx, n_idx, types, n_types)) {
				uint8_t *copy = hdl_arena_alloc(&ctx->arena, sv.raw.len);
				if (!copy)
					return HDL_ENOMEM;
				memcpy(copy, sv.raw.p, sv.raw.len);
				copy[0] = (uint8_t)(sv.index >> 24);
				copy[1] = (uint8_t)(sv.index >> 16);
				copy[2] = (uint8_t)(sv.index >> 8);
				copy[3] = (uint8_t)sv.index;
				sel->vals[sel->n++] = (hdl_slice_t){copy, sv.raw.len};
			}
		}
	}
	if (sel->n == 0 && count > 0) {
		sel->rcode = HDL_RC_VALUES_NOT_FOUND;
		/*
		 * One message whether nothing matched or only non-public values did: a different
		 * text would tell an anonymous client that withheld values exist.
		 */
		sel->message = "No matching values";
		return HDL_EOK;
	}
	sel->rcode = HDL_RC_SUCCESS;
	return HDL_EOK;
}

/* resolve_sel() for the REST API and the proxy, counted in the statistics and the metrics */
static int resolve_counted(dispatch_ctx_t *ctx, hdl_slice_t handle, const uint32_t *idx,
                           uint32_t n_idx, const hdl_slice_t *types, uint32_t n_types,
                           bool public_only, bool admin_read, dispatch_sel_t *sel)
{
	uint8_t keybuf[HDL_MAX_HANDLE_LEN + 8];
	hdl_slice_t key;
	bool homed;
	int ret = resolve_sel(ctx, handle, idx, n_idx, types, n_types, public_only, admin_read, sel,
	                      keybuf, &key, &homed);
	/* the REST API and the proxy are the callers (Handle messages go through do_resolution) */
	uint32_t rc = ret == HDL_EOK ? sel->rcode : HDL_RC_SERVER_TOO_BUSY;
	note_resolution(ctx, STATS_T_REST, key, homed, rc);
	if (ret == HDL_EOK && sel->not_homed && ctx->node->deleg)
		return ret; /* counted when the resolution path answers (delegate.c) */
	if (ctx->obs)
		obs_count(ctx->obs, STATS_T_REST, HDL_OC_RESOLUTION, rc, true,
		          ctx->timing ? ctx->t_rest_ns : 0);
	return ret;
}

int dispatch_resolve(dispatch_ctx_t *ctx, hdl_slice_t handle, const uint32_t *idx, uint32_t n_idx,
                     const hdl_slice_t *types, uint32_t n_types, bool public_only,
                     dispatch_sel_t *sel)
{
	return resolve_counted(ctx, handle, idx, n_idx, types, n_types, public_only, false, sel);
}

int dispatch_resolve_admin(dispatch_ctx_t *ctx, hdl_slice_t handle, const uint32_t *idx,
                           uint32_t n_idx, const hdl_slice_t *types, uint32_t n_types,
                           dispatch_sel_t *sel)
{
	return resolve_counted(ctx, handle, idx, n_idx, types, n_types, false, true, sel);
}

/* ---- opcodes --------------------------------------------------------------------------------- */

/*
 * Response cache key of a resolution into \p key (1 + HDL_MAX_HANDLE_LEN + 8 bytes): a shape byte
 * (bit 0: PO) and the normalized handle. Only requests without index or type filters, and not
 * prefix handles (their answer can carry this node's HS_SITE from the configuration).
 * Also brings the cache up to date: the limits (size; a reload may change max_values) and the
 * store snapshot's generation. \return key length, 0 = not cacheable
 */
static size_t cache_key(dispatch_ctx_t *ctx, const hdl_msg_t *m, uint8_t *key, size_t cap)
{
	const hdl_body_resolve_t *q = &m->u.resolve;
	rcache_t *c = ctx->cache;
	uint32_t lgen = atomic_load_explicit(&ctx->node->limits.gen, memory_order_acquire);
	if (lgen != ctx->cache_limits_gen) {
		dispatch_cache_log(ctx);
		ctx->cache_limits_gen = lgen;
		rcache_clear(c);
		rcache_set_max(c, NODE_LIMIT(&ctx->node->limits, cache_bytes));
	}
	rcache_stats_t st;
	rcache_get_stats(c, &st);
	if (st.max_bytes == 0 || q->n_indexes != 0 || q->n_types != 0)
		return 0;
	if (hdl_name_check(q->handle.p, q->handle.len) != HDL_EOK)
		return 0;
	size_t kl = store_key(ctx->node->store, q->handle, key + 1, cap - 1);
	if (kl == 0 || is_prefix_handle((hdl_slice_t){key + 1, (uint32_t)kl}))
		return 0;
	key[0] = (m->hdr.opflags & HDL_OF_PO) ? RCACHE_KEY_PO : 0;
	rcache_follow_txlog(c, ctx->node->store, ctx->reader, RCACHE_TXLOG_MAX);
	return kl + 1;
}

static size_t do_resolution(dispatch_ctx_t *ctx, const dispatch_origin_t *o, const hdl_msg_t *m,
                            const uint8_t *req, size_t len_req, reply_t *r, uint8_t *out,
                            size_t cap, bool *wait)
{
	const hdl_body_resolve_t *q = &m->u.resolve;
	dispatch_sel_t sel;
	size_t len = 0;
	uint8_t ckey[1 + HDL_MAX_HANDLE_LEN + 8];
	size_t cklen = 0;
	hdl_slice_t hit;

	/* not dispatch_begin(): the arena holds the decoded request */
	int ret = store_reader_begin(ctx->reader);
	if (ret != HDL_EOK) {
		log_err("store snapshot failed: %s", hdl_strerror(ret));
		return reply_error(ctx, r, HDL_RC_SERVER_TOO_BUSY, "store unavailable", out, cap);
	}
	cklen = cache_key(ctx, m, ckey, sizeof(ckey));
	/* a hit holds U32 count + values; max_values is checked as on the store path */
	if (cklen && rcache_get(ctx->cache, ckey, cklen, &hit) && hit.len >= 4 &&
	    ((uint32_t)hit.p[0] << 24 | (uint32_t)hit.p[1] << 16 | (uint32_t)hit.p[2] << 8 |
	     hit.p[3]) <= NODE_LIMIT(&ctx->node->limits, max_values)) {
		/* only answers of homed prefixes are cached */
		note_resolution(ctx, obs_transport(ctx->transport),
		                (hdl_slice_t){ckey + 1, (uint32_t)(cklen - 1)}, true,
		                HDL_RC_SUCCESS);
		wire_wr_t w = wire_wr_init(out, cap);
		reply_begin(ctx, &w, r, HDL_RC_SUCCESS);
		wire_wr_slice(&w, q->handle);
		wire_wr_bytes(&w, hit.p, hit.len);
		len = reply_end(&w);
		if (len == 0 || len - HDL_ENVELOPE_LEN > HDL_MAX_MESSAGE_LEN)
			len = reply_error(ctx, r, HDL_RC_ERROR, "answer too large", out, cap);
		goto out;
	}
	hdl_slice_t key;
	bool homed;
	/* ckey + 1 holds the same normalized name when the request is cacheable */
	ret = resolve_sel(ctx, q->handle, q->indexes, q->n_indexes, q->types, q->n_types,
	                  (m->hdr.opflags & HDL_OF_PO) != 0, false, &sel, ckey + 1, &key, &homed);
	note_resolution(ctx, obs_transport(ctx->transport), key, homed,
	                ret == HDL_EOK ? sel.rcode : HDL_RC_SERVER_TOO_BUSY);
	if (ret != HDL_EOK) {
		len = reply_error(ctx, r, HDL_RC_SERVER_TOO_BUSY, "out of memory", out, cap);
		goto out;
	}
	if (sel.not_homed) {
		/* not homed here: the resolution path (cache, then upstream) */
		dispatch_end(ctx);
		return delegate_resolution(ctx, o, m, req, len_req, r, out, cap, wait);
	}
	if (sel.rcode != HDL_RC_SUCCESS) {
		len = reply_error(ctx, r, sel.rcode, sel.message, out, cap);
		goto out;
	}
	wire_wr_t w = wire_wr_init(out, cap);
	reply_begin(ctx, &w, r, HDL_RC_SUCCESS);
	wire_wr_slice(&w, q->handle);
	size_t body = w.pos;
	wire_wr_u32(&w, sel.n);
	for (uint32_t i = 0; i < sel.n; i++)
		wire_wr_bytes(&w, sel.vals[i].p, sel.vals[i].len);
	size_t body_end = w.pos;
	len = reply_end(&w);
	if (len == 0 || len - HDL_ENVELOPE_LEN > HDL_MAX_MESSAGE_LEN)
		len = reply_error(ctx, r, HDL_RC_ERROR, "answer too large", out, cap);
	else if (cklen)
		(void)rcache_put(ctx->cache, ckey, cklen, out + body, body_end - body);
out:
	dispatch_end(ctx);
	return len;
}

size_t dispatch_preq_reply(dispatch_ctx_t *ctx, preq_t *p, uint8_t *out, size_t cap)
{
	if (p->kind == PREQ_RESOLVE)
		return delegate_preq_reply(ctx, p, out, cap);
	return admin_preq_reply(ctx, p, out, cap);
}

static size_t do_siteinfo(dispatch_ctx_t *ctx, reply_t *r, uint8_t *out, size_t cap)
{
	wire_wr_t w = wire_wr_init(out, cap);
	reply_begin(ctx, &w, r, HDL_RC_SUCCESS);
	wire_wr_bytes(&w, ctx->node->site, ctx->node->site_len);
	return reply_end(&w);
}

int dispatch_message(dispatch_ctx_t *ctx, const uint8_t *req, size_t len, uint8_t *out,
                     size_t cap, size_t *outlen)
{
	return dispatch_message_from(ctx, NULL, req, len, out, cap, outlen);
}

int dispatch_message_from(dispatch_ctx_t *ctx, const dispatch_origin_t *o, const uint8_t *req,
                          size_t len, uint8_t *out, size_t cap, size_t *outlen)
{
	bool wait = false;
	hdl_envelope_t env;
	hdl_msg_t m;
	reply_t r;
	size_t n = 0;
	uint32_t max_len = NODE_LIMIT(&ctx->node->limits, max_message_len);
	uint64_t t0 = ctx->timing ? (ctx->t_in_ns ? ctx->t_in_ns : obs_now_ns()) : 0;

	ctx->t_in_ns = 0;
	ctx->transport = o ? o->transport : 0;
	*outlen = 0;
	hdl_arena_reset(&ctx->arena);
	int ret = hdl_envelope_decode(req, len, &env);
	if ((ret == HDL_EOK || ret == HDL_ELIMIT) && len >= HDL_ENVELOPE_LEN + HDL_HEADER_LEN) {
		/* a response (non-zero ResponseCode) is never answered: no reply loops */
		wire_rd_t hr = wire_rd_init(req + HDL_ENVELOPE_LEN + 4, 4);
		if (wire_rd_u32(&hr) != 0) {
			log_peer(LOG_LVL_INFO, "dropped a response message (request id %u)",
			         env.request_id);
			goto done;
		}
	}
	if (ret == HDL_ELIMIT || (ret == HDL_EOK && env.msg_len > max_len)) {
		log_peer(LOG_LVL_NOTICE, "request of %u bytes over max_message_len %u", env.msg_len,
		         max_len);
		reply_from_raw(&r, &env, req, len);
		n = reply_error(ctx, &r, HDL_RC_PROTOCOL_ERROR, "Invalid message length", out, cap);
		goto done;
	}
	if (ret != HDL_EOK) {
		/* shorter than an envelope, or not a version we speak: no reply can be formed */
		log_peer(LOG_LVL_INFO, "dropped %zu-byte message: %s", len, hdl_strerror(ret));
		goto done;
	}
	if (len - HDL_ENVELOPE_LEN < env.msg_len) {
		log_peer(LOG_LVL_INFO, "truncated request: %zu of %u bytes", len - HDL_ENVELOPE_LEN,
		         env.msg_len);
		reply_from_raw(&r, &env, req, len);
		n = reply_error(ctx, &r, HDL_RC_PROTOCOL_ERROR, "Truncated message", out, cap);
		goto done;
	}
	len = HDL_ENVELOPE_LEN + (size_t)env.msg_len;

	memset(&m, 0, sizeof(m));
	ret = hdl_msg_decode(req, len, &ctx->arena, &m);
	if (ret != HDL_EOK) {
		reply_from_raw(&r, &env, req, len);
		if (ret == HDL_EOPCODE && r.opcode != HDL_OC_RESERVED) {
			n = reply_error(ctx, &r, HDL_RC_OPERATION_NOT_SUPPORTED, "Unknown opcode", out,
			                cap);
		} else if (ret == HDL_ENOMEM) {
			n = reply_error(ctx, &r, HDL_RC_SERVER_TOO_BUSY, "out of memory", out, cap);
		} else {
			char msg[96];
			snprintf(msg, sizeof(msg), "Malformed request: %s", hdl_strerror(ret));
			log_peer(LOG_LVL_INFO, "malformed request (opcode %u, id %u): %s", r.opcode,
			         env.request_id, hdl_strerror(ret));
			n = reply_error(ctx, &r, HDL_RC_PROTOCOL_ERROR, msg, out, cap);
		}
		goto done;
	}

	memset(&r, 0, sizeof(r));
	hdl_version_negotiate(&m.env, &r.major, &r.minor);
	r.session_id = m.env.session_id;
	r.request_id = m.env.request_id;
	r.opcode = m.hdr.opcode;
	r.opflags = m.hdr.opflags;
	reply_digest(&r, m.signed_part.p, m.signed_part.len);

	if ((m.env.flags & HDL_ENV_ENCRYPTED) || m.kind == HDL_BODY_NONE) {
		n = reply_error(ctx, &r, HDL_RC_OPERATION_NOT_SUPPORTED,
		                "encrypted messages not supported yet", out, cap);
		goto done;
	}
	switch (m.hdr.opcode) {
	case HDL_OC_RESOLUTION:
		if (m.kind != HDL_BODY_RESOLVE) {
			n = reply_error(ctx, &r, HDL_RC_PROTOCOL_ERROR, "Bad resolution body", out,
			                cap);
			break;
		}
		n = do_resolution(ctx, o, &m, req, len, &r, out, cap, &wait);
		break;
	case HDL_OC_GET_SITEINFO:
		n = do_siteinfo(ctx, &r, out, cap);
		break;
	case HDL_OC_RESERVED:
		n = reply_error(ctx, &r, HDL_RC_PROTOCOL_ERROR, "Invalid opcode 0", out, cap);
		break;
	case HDL_OC_SESSION_SETUP:
	case HDL_OC_SESSION_TERMINATE:
	case HDL_OC_SESSION_EXCHANGEKEY:
		n = reply_error(ctx, &r, HDL_RC_OPERATION_NOT_SUPPORTED, "Sessions are not supported",
		                out, cap);
		break;
	default:
		if (admin_is_opcode(m.hdr.opcode))
			n = admin_dispatch(ctx, o, &m, req, len, out, cap, &wait);
		else
			n = reply_error(ctx, &r, HDL_RC_OPERATION_NOT_SUPPORTED, "Unknown opcode",
			                out, cap);
		break;
	}
done:
	*outlen = n;
	if (qlog_on())
		qlog_message(o, req, len, out, n, wait);
	if (wait)
		return DISPATCH_WAIT; /* counted when it is answered (admin_preq_reply) */
	if (n)
		ctx->n_requests++;
	else
		ctx->n_dropped++;
	if (ctx->obs) {
		/* what the answer says: its opcode and response code (header after the envelope) */
		uint32_t op = 0, rc = 0;
		if (n >= HDL_ENVELOPE_LEN + 8) {
			wire_rd_t hr = wire_rd_init(out + HDL_ENVELOPE_LEN, 8);
			op = wire_rd_u32(&hr);
			rc = wire_rd_u32(&hr);
		}
		obs_count(ctx->obs, obs_transport(ctx->transport), op, rc, n != 0, t0);
	}
	return HDL_EOK;
}
