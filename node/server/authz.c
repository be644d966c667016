/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief HS_ADMIN / HS_VLIST authorization (see authz.h and docs/registration.md).
 */
#include "node/server/authz.h"

#include <stdlib.h>
#include <string.h>

#include "hdl/error.h"
#include "hdl/values.h"
#include "node/store/store.h"
#include "proto/wire.h"

/** One group reference waiting to be looked up, with its nesting level. */
typedef struct pending {
	hdl_ref_t ref;
	unsigned depth;
} pending_t;

/** Breadth-first walk over group references; every reference is visited once. */
typedef struct walk {
	const authz_t *az;
	hdl_arena_t *a;
	hdl_ref_t id;
	pending_t *q; /**< queue, also the visited set (entries [0, n) were queued once) */
	unsigned n;
	unsigned cap;
	unsigned head;
	bool limited; /**< a bound stopped the walk somewhere */
	int err;      /**< first lookup error */
} walk_t;

static uint8_t up(uint8_t c)
{
	return (c >= 'a' && c <= 'z') ? (uint8_t)(c - 32) : c;
}

bool authz_ref_matches(hdl_ref_t entry, hdl_ref_t id)
{
	if (entry.handle.len != id.handle.len || entry.handle.len == 0)
		return false;
	if (entry.index != 0 && entry.index != id.index)
		return false;
	const uint8_t *a = entry.handle.p, *b = id.handle.p;
	bool global = entry.handle.len >= 2 && a[0] == '0' && a[1] == '.';
	bool in_prefix = true;
	for (uint32_t i = 0; i < entry.handle.len; i++) {
		if (a[i] == '/' && !global)
			in_prefix = false;
		if (a[i] == b[i])
			continue;
		if (!in_prefix || up(a[i]) != up(b[i]))
			return false;
	}
	return true;
}

bool authz_type_is(hdl_slice_t type, const char *base)
{
	size_t n = strlen(base);
	if (type.len < n)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (up(type.p[i]) != up((uint8_t)base[i]))
			return false;
	}
	return type.len == n || type.p[n] == '.';
}

/** Same reference (for the visited set): matching names and equal indexes. */
static bool ref_same(hdl_ref_t a, hdl_ref_t b)
{
	return a.index == b.index && authz_ref_matches(a, b);
}

/** Queue a group reference unless seen before or too deep. \return HDL_EOK or HDL_ENOMEM */
static int enqueue(walk_t *w, hdl_ref_t ref, unsigned depth)
{
	for (unsigned i = 0; i < w->n; i++) {
		if (ref_same(w->q[i].ref, ref))
			return HDL_EOK;
	}
	unsigned max_depth = w->az->max_depth ? w->az->max_depth : AUTHZ_DEFAULT_DEPTH;
	unsigned max_groups = w->az->max_groups ? w->az->max_groups : AUTHZ_DEFAULT_GROUPS;
	if (depth > max_depth || w->n >= max_groups) {
		w->limited = true;
		return HDL_EOK;
	}
	if (w->n == w->cap) {
		unsigned nc = w->cap ? w->cap * 2 : 16;
		pending_t *nq = hdl_arena_alloc(w->a, sizeof(*nq) * nc);
		if (nq == NULL)
			return HDL_ENOMEM;
		if (w->n)
			memcpy(nq, w->q, sizeof(*nq) * w->n);
		w->q = nq;
		w->cap = nc;
	}
	/* own copy: the record the name came from may be gone after the next lookup */
	hdl_slice_t name = hdl_arena_dup(w->a, ref.handle.p, ref.handle.len);
	if (name.p == NULL && ref.handle.len > 0)
		return HDL_ENOMEM;
	w->q[w->n].ref.handle = name;
	w->q[w->n].ref.index = ref.index;
	w->q[w->n].depth = depth;
	w->n++;
	return HDL_EOK;
}

/** One value of a stored record, walked without a full decode. */
typedef struct rawval {
	uint32_t index;
	hdl_slice_t type;
	hdl_slice_t data;
} rawval_t;

/** Next value of a record reader; false at the end or on malformed bytes. */
static bool next_value(wire_rd_t *rd, uint32_t *left, rawval_t *v)
{
	if (*left == 0 || rd->err)
		return false;
	(*left)--;
	v->index = wire_rd_u32(rd);
	wire_rd_skip(rd, 4 + 1 + 4 + 1); /* timestamp, TTL type, TTL, permissions */
	v->type = wire_rd_lbytes(rd, HDL_MAX_TYPE_LEN);
	v->data = wire_rd_lbytes(rd, HDL_MAX_ARRAY_LEN);
	uint32_t nrefs = wire_rd_u32(rd);
	if (!rd->err && nrefs > HDL_MAX_REFS)
		wire_rd_fail(rd, HDL_ELIMIT);
	for (uint32_t j = 0; j < nrefs && !rd->err; j++) {
		(void)wire_rd_lbytes(rd, HDL_MAX_HANDLE_LEN);
		wire_rd_skip(rd, 4);
	}
	return rd->err == HDL_EOK;
}

/** Look a group reference up; true when \p w->id is a member. Members not matching are queued. */
static int visit_group(walk_t *w, const pending_t *g, bool *found)
{
	hdl_slice_t vals;
	*found = false;
	int ret = w->az->lookup(w->az->ctx, g->ref.handle, &vals);
	if (ret == HDL_ENOENT)
		return HDL_EOK;
	if (ret != HDL_EOK) {
		if (w->err == HDL_EOK)
			w->err = ret;
		return HDL_EOK;
	}
	wire_rd_t rd = wire_rd_init(vals.p, vals.len);
	uint32_t left = wire_rd_u32(&rd);
	rawval_t v;
	while (next_value(&rd, &left, &v)) {
		if (v.index != g->ref.index || !authz_type_is(v.type, "HS_VLIST"))
			continue;
		hdl_ref_t *refs = NULL;
		uint32_t n = 0;
		int dr = hdl_vlist_decode(v.data.p, v.data.len, w->a, &refs, &n);
		if (dr == HDL_ENOMEM)
			return dr;
		if (dr != HDL_EOK)
			continue;
		for (uint32_t i = 0; i < n; i++) {
			if (authz_ref_matches(refs[i], w->id)) {
				*found = true;
				return HDL_EOK;
			}
		}
		for (uint32_t i = 0; i < n; i++) {
			if ((ret = enqueue(w, refs[i], g->depth + 1)) != HDL_EOK)
				return ret;
		}
	}
	return HDL_EOK;
}

/** Walk the queued groups. \return AUTHZ_GRANTED / AUTHZ_DENIED / error */
static int walk_groups(walk_t *w)
{
	while (w->head < w->n) {
		pending_t g = w->q[w->head++];
		if (g.ref.index == 0)
			continue; /* a whole-handle reference names no group value */
		bool found = false;
		int ret = visit_group(w, &g, &found);
		if (ret != HDL_EOK)
			return ret;
		if (found)
			return AUTHZ_GRANTED;
	}
	if (w->err != HDL_EOK)
		return HDL_ESTORE;
	if (w->limited)
		return HDL_ELIMIT;
	return AUTHZ_DENIED;
}

/**
 * Start a walk for \p id: server admins first, a direct match grants, the others are queued as
 * groups. \return AUTHZ_GRANTED, AUTHZ_DENIED (go on), or an error
 */
static int walk_start(walk_t *w, const authz_t *az, hdl_ref_t id, hdl_arena_t *scratch)
{
	memset(w, 0, sizeof(*w));
	w->az = az;
	w->a = scratch;
	w->id = id;
	if (id.handle.len == 0)
		return AUTHZ_DENIED;
	for (uint32_t i = 0; i < az->n_server_admins; i++) {
		if (authz_ref_matches(az->server_admins[i], id))
			return AUTHZ_GRANTED;
	}
	for (uint32_t i = 0; i < az->n_server_admins; i++) {
		int ret = enqueue(w, az->server_admins[i], 1);
		if (ret != HDL_EOK)
			return ret;
	}
	return AUTHZ_DENIED;
}

int authz_check(const authz_t *az, hdl_ref_t id, hdl_slice_t admin_vals, uint16_t need,
                hdl_arena_t *scratch)
{
	walk_t w;
	int ret = walk_start(&w, az, id, scratch);
	if (ret != AUTHZ_DENIED || id.handle.len == 0)
		return ret;
	if (admin_vals.len >= 4) {
		wire_rd_t rd = wire_rd_init(admin_vals.p, admin_vals.len);
		uint32_t left = wire_rd_u32(&rd);
		rawval_t v;
		while (next_value(&rd, &left, &v)) {
			hdl_admin_t adm;
			if (!authz_type_is(v.type, "HS_ADMIN") ||
			    hdl_admin_decode(v.data.p, v.data.len, &adm) != HDL_EOK)
				continue;
			if ((adm.perms & need) != need)
				continue;
			hdl_ref_t ref = {adm.handle, adm.index};
			if (authz_ref_matches(ref, id))
				return AUTHZ_GRANTED;
			if ((ret = enqueue(&w, ref, 1)) != HDL_EOK)
				return ret;
		}
	}
	return walk_groups(&w);
}

int authz_server_admin(const authz_t *az, hdl_ref_t id, hdl_arena_t *scratch)
{
	walk_t w;
	int ret = walk_start(&w, az, id, scratch);
	if (ret != AUTHZ_DENIED || id.handle.len == 0)
		return ret;
	return walk_groups(&w);
}

int authz_parse_admin(const char *s, hdl_ref_t *out)
{
	const char *colon = s ? strchr(s, ':') : NULL;
	if (colon == NULL || colon == s || colon - s > 10)
		return HDL_EINVAL;
	uint64_t idx = 0;
	for (const char *p = s; p < colon; p++) {
		if (*p < '0' || *p > '9')
			return HDL_EINVAL;
		idx = idx * 10 + (uint64_t)(*p - '0');
	}
	if (idx > UINT32_MAX)
		return HDL_EINVAL;
	hdl_slice_t h = hdl_slice_str(colon + 1);
	if (hdl_name_check(h.p, h.len) != HDL_EOK)
		return HDL_EINVAL;
	out->handle = h;
	out->index = (uint32_t)idx;
	return HDL_EOK;
}

int authz_lookup_reader(void *ctx, hdl_slice_t handle, hdl_slice_t *vals)
{
	return store_get(ctx, handle, vals);
}
