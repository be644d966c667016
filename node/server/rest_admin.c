/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief The Handle.Net REST administration (handle-protocol.md §13.1, §13.3): PUT and DELETE
 *        /api/handles/{handle} handed to the writer as wr_job_t's (the same write path,
 *        authorization and audit trail as the binary protocol's), the /api/sessions resource,
 *        and the helpers rest.h gives other JSON APIs to submit writes.
 *
 * PUT without ?index= is CREATE_HANDLE (the record as given; overwrite=true, the default,
 * replaces an existing one; mintNewSuffix=true appends a server-made suffix); with
 * ?index=i&index=j (or index=various) it is ADD_VALUE of exactly those values, replacing the
 * ones at the same indexes when overwrite is true. DELETE without ?index= is DELETE_HANDLE,
 * with it REMOVE_VALUE. Success is 200 with {"responseCode":1,"handle":"..."}, 201 for a
 * create or add with overwrite=false; refusals carry the writer's response code and its
 * HTTP status (http_status_for()).
 */
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hdl/error.h"
#include "node/common/log.h"
#include "node/server/admin.h"
#include "node/server/preq.h"
#include "node/server/rest.h"
#include "node/server/worker.h"
#include "proto/json.h"

#define VALUES_ARENA 8192u /**< first arena block beyond the body's size */

/* ---- writes that wait ---------------------------------------------------------------------- */

preq_t *rest_write_new(http_rq_t *r, size_t arena_first)
{
	const char *why = "Writes are not accepted here";
	preq_t *p =
	    r->c->w->node->writer ? admin_write_new(r->c->w, &r->c->peer, arena_first, &why) : NULL;
	if (!p)
		http_send_json_error(r, 503, HDL_RC_SERVER_TOO_BUSY, why, NULL);
	return p;
}

void rest_write_submit(http_rq_t *r, preq_t *p, const rest_ident_t *id, rest_answer_fn answer,
                       void *arg)
{
	conn_t *c = r->c;
	wr_job_t *j = &p->job;
	j->id_handle = hdl_arena_dup(&p->arena, id->handle, id->handle_len);
	j->id_index = id->index;
	j->transport = conn_is_tls(c) ? WR_T_HTTPS : WR_T_HTTP;
	if (c->peer_len <= sizeof(j->peer)) {
		memcpy(&j->peer, &c->peer, c->peer_len);
		j->peer_len = c->peer_len;
	}
	j->now = 0;
	if (j->id_handle.len != id->handle_len || admin_write_submit(p) != HDL_EOK) {
		preq_free(p);
		http_send_json_error(r, 503, HDL_RC_SERVER_TOO_BUSY, "Server busy", NULL);
		return;
	}
	http_wait(r, p, answer, arg);
}

/* ---- PUT / DELETE /api/handles/{handle} ------------------------------------------------------ */

/* The answer of a write: {"responseCode":1,"handle":...} or the refusal. */
static void answer_write(http_rq_t *r, preq_t *p, void *arg)
{
	const wr_job_t *j = &p->job;
	bool created = arg != NULL; /* 201 for create / add without overwrite */
	char handle[HDL_MAX_HANDLE_LEN + 1];
	hdl_slice_t h = j->result_handle.len ? j->result_handle : j->handle;
	snprintf(handle, sizeof(handle), "%.*s", (int)h.len, (const char *)h.p);
	if (j->rcode != HDL_RC_SUCCESS) {
		http_send_json_error(r, http_status_for(j->rcode, false), j->rcode, j->message,
		                     handle);
		return;
	}
	json_t *o = json_object();
	json_t *hs = json_string(handle);
	if (o && hs) {
		json_object_set_new(o, "responseCode", json_integer(HDL_RC_SUCCESS));
		json_object_set_new(o, "handle", hs);
		hs = NULL;
	}
	json_decref(hs);
	http_send_json(r, created ? 201 : 200, o);
}

/* The identity of a write, or the refusal (answered). */
static bool write_identity(worker_t *w, http_rq_t *r, const char *handle, rest_ident_t *id)
{
	rest_auth_rc_t ar = rest_authenticate(w, r, id);
	if (ar == REST_AUTH_REFUSED)
		return false;
	if (ar == REST_AUTH_NONE) {
		char s[64];
		conn_src_format(&r->c->src, s, sizeof(s));
		log_peer(LOG_LVL_INFO, "rest: unauthenticated %s of %.200s from %s refused",
		         r->req->method == HTTP_M_PUT ? "PUT" : "DELETE", handle, s);
		rest_send_auth_needed(r, handle);
		return false;
	}
	return true;
}

/* The handle of the request as the job's, in the request's arena. */
static bool job_handle(preq_t *p, const char *handle)
{
	size_t n = strlen(handle);
	if (n == 0 || n > HDL_MAX_HANDLE_LEN)
		return false;
	p->job.handle = hdl_arena_dup(&p->arena, handle, n);
	return p->job.handle.len == n;
}

/*
 * The ?index= parameters: numbers, or "various" (any). \return the count (0 = none given),
 * -1 when malformed; with "various" *various is set.
 */
static int index_params(const http_params_t *ps, uint32_t *idx, unsigned cap, bool *various)
{
	int n = 0;
	*various = false;
	for (unsigned i = 0; i < ps->n; i++) {
		const http_param_t *pp = &ps->p[i];
		if (strcmp(pp->key, "index") != 0)
			continue;
		if (!pp->value || !*pp->value)
			return -1;
		if (strcasecmp(pp->value, "various") == 0) {
			*various = true;
			continue;
		}
		char *end;
		unsigned long v = strtoul(pp->value, &end, 10);
		if (*end || pp->value[0] == '-' || v > UINT32_MAX || (unsigned)n >= cap)
			return -1;
		idx[n++] = (uint32_t)v;
	}
	return n;
}

static bool listed(const uint32_t *idx, int n, uint32_t v)
{
	for (int i = 0; i < n; i++) {
		if (idx[i] == v)
			return true;
	}
	return false;
}

void rest_put_handle(worker_t *w, http_rq_t *r, const char *handle, const http_params_t *ps)
{
	rest_ident_t id;
	uint32_t idx[HDL_MAX_FILTER];
	bool various = false;
	int n_idx = index_params(ps, idx, HDL_MAX_FILTER, &various);
	if (n_idx < 0) {
		http_send_json_error(r, 400, HDL_RC_PROTOCOL_ERROR, "Invalid index parameter",
		                     handle);
		return;
	}
	if (!write_identity(w, r, handle, &id))
		return;
	bool overwrite = http_param_bool(ps, "overwrite", true);
	bool mint = http_param_bool(ps, "mintNewSuffix", false);
	bool add = n_idx > 0 || various;

	json_error_t jerr;
	json_t *j = json_loadb((const char *)r->req->body, (size_t)r->req->content_length,
	                       JSON_REJECT_DUPLICATES, &jerr);
	if (!j) {
		http_send_json_error(r, 400, HDL_RC_INVALID_VALUE, "Request entity is not JSON",
		                     handle);
		return;
	}
	/* {"handle":...,"values":[...]}: the handle must be the one of the URL */
	json_t *jh = json_is_object(j) ? json_object_get(j, "handle") : NULL;
	if (jh && (!json_is_string(jh) || strcmp(json_string_value(jh), handle) != 0)) {
		json_decref(j);
		http_send_json_error(r, 400, HDL_RC_INVALID_HANDLE,
		                     "The handle of the entity is not the handle of the URL",
		                     handle);
		return;
	}
	preq_t *p = rest_write_new(r, (size_t)r->req->content_length + VALUES_ARENA);
	if (!p) {
		json_decref(j);
		return;
	}
	char err[160];
	wr_job_t *job = &p->job;
	int ret = hdl_json_to_values(j, &p->arena, &job->values, &job->n_values, err, sizeof(err));
	json_decref(j);
	if (ret != HDL_EOK || !job_handle(p, handle)) {
		preq_free(p);
		if (ret == HDL_EOK)
			snprintf(err, sizeof(err), "Invalid handle");
		http_send_json_error(r, 400, HDL_RC_INVALID_VALUE, err, handle);
		return;
	}
	if (add && !various) {
		/* the indexes of the URL are exactly those of the entity */
		bool same = (uint32_t)n_idx == job->n_values;
		for (uint32_t i = 0; same && i < job->n_values; i++)
			same = listed(idx, n_idx, job->values[i].index);
		if (!same) {
			preq_free(p);
			http_send_json_error(r, 400, HDL_RC_INVALID_VALUE,
			                     "The index parameters are not the entity's indexes",
			                     handle);
			return;
		}
	}
	job->op = add ? WR_ADD_VALUES : WR_CREATE;
	job->flags = (overwrite ? WR_F_OVERWRITE : 0u) | (mint && !add ? WR_F_MINT : 0u);
	rest_write_submit(r, p, &id, answer_write, overwrite ? NULL : (void *)1);
}

void rest_delete_handle(worker_t *w, http_rq_t *r, const char *handle, const http_params_t *ps)
{
	rest_ident_t id;
	uint32_t idx[HDL_MAX_FILTER];
	bool various = false;
	int n_idx = index_params(ps, idx, HDL_MAX_FILTER, &various);
	if (n_idx < 0 || various) {
		http_send_json_error(r, 400, HDL_RC_PROTOCOL_ERROR, "Invalid index parameter",
		                     handle);
		return;
	}
	if (!write_identity(w, r, handle, &id))
		return;
	preq_t *p = rest_write_new(r, VALUES_ARENA);
	if (!p)
		return;
	wr_job_t *job = &p->job;
	if (!job_handle(p, handle)) {
		preq_free(p);
		http_send_json_error(r, 400, HDL_RC_INVALID_HANDLE, "Invalid handle", handle);
		return;
	}
	if (n_idx > 0) {
		job->op = WR_REMOVE_VALUES;
		job->indexes = hdl_arena_alloc(&p->arena, sizeof(uint32_t) * (size_t)n_idx);
		if (!job->indexes) {
			preq_free(p);
			http_send_json_error(r, 503, HDL_RC_SERVER_TOO_BUSY, "out of memory",
			                     handle);
			return;
		}
		memcpy(job->indexes, idx, sizeof(uint32_t) * (size_t)n_idx);
		job->n_indexes = (uint32_t)n_idx;
	} else {
		job->op = WR_DELETE;
	}
	rest_write_submit(r, p, &id, answer_write, NULL);
}

/* ---- /api/sessions ------------------------------------------------------------------------ */

/* {"sessionId","nonce",["authenticated":true,"id":"INDEX:HANDLE"]} */
static json_t *session_json(const rest_session_t *s, const rest_ident_t *id)
{
	char nonce[(REST_NONCE_LEN + 2) / 3 * 4 + 1];
	EVP_EncodeBlock((unsigned char *)nonce, s->nonce, (int)sizeof(s->nonce));
	json_t *o = json_object();
	if (!o)
		return NULL;
	json_object_set_new(o, "sessionId", json_string(s->id));
	json_object_set_new(o, "nonce", json_string(nonce));
	bool ok = id ? id->ok : s->authenticated;
	if (ok) {
		char who[HDL_MAX_HANDLE_LEN + 16];
		uint32_t len = id ? id->handle_len : s->handle_len;
		const uint8_t *h = id ? id->handle : s->handle;
		snprintf(who, sizeof(who), "%u:%.*s", id ? id->index : s->index, (int)len,
		         (const char *)h);
		json_t *js = json_string(who); /* NULL when not UTF-8: left out */
		json_object_set_new(o, "authenticated", json_true());
		if (js)
			json_object_set_new(o, "id", js);
	} else {
		json_object_set_new(o, "authenticated", json_false());
	}
	return o;
}

/* POST /api/sessions: a new session, authenticated at once when Basic credentials come. */
static void session_new(worker_t *w, http_rq_t *r, const rest_authz_t *a)
{
	node_shared_t *n = w->node;
	if (a->scheme == REST_SCHEME_HANDLE && a->session_id.len) {
		http_send_json_error(r, 400, HDL_RC_PROTOCOL_ERROR,
		                     "A new session cannot name a session", NULL);
		return;
	}
	rest_ident_t id = {0};
	if (a->scheme == REST_SCHEME_BASIC && rest_authenticate(w, r, &id) == REST_AUTH_REFUSED)
		return;
	rest_session_t s;
	uint64_t now = worker_now_ms();
	int ret = n->rest_sessions
	              ? rest_session_create(n->rest_sessions, &r->c->src,
	                                    NODE_LIMIT(&n->limits, rest_sessions_per_source), now,
	                                    NODE_LIMIT(&n->limits, rest_session_unauth_ms), &s)
	              : HDL_EINVAL;
	if (ret != HDL_EOK) {
		char src[64];
		conn_src_format(&r->c->src, src, sizeof(src));
		log_peer(LOG_LVL_NOTICE, "rest: no new session for %s: %s", src,
		         ret == HDL_EAGAIN ? "rest_sessions_max or rest_sessions_per_source reached"
		                           : hdl_strerror(ret));
		http_send_json_error(r, 503, HDL_RC_SERVER_TOO_BUSY, "Too many sessions", NULL);
		return;
	}
	if (id.ok)
		(void)rest_session_auth(n->rest_sessions, (http_str_t){s.id, REST_SID_LEN},
		                        (hdl_slice_t){id.handle, id.handle_len}, id.index, now,
		                        NODE_LIMIT(&n->limits, rest_session_idle_ms));
	http_add_header(r, "Location", "/api/sessions/this");
	http_send_json(r, 201, session_json(&s, id.ok ? &id : NULL));
}

/* GET, PUT (POST) and DELETE /api/sessions/this */
static void session_this(worker_t *w, http_rq_t *r, const rest_authz_t *a)
{
	node_shared_t *n = w->node;
	rest_session_t s;
	uint64_t now = worker_now_ms();
	if (a->scheme != REST_SCHEME_HANDLE || a->session_id.len == 0 || !n->rest_sessions ||
	    rest_session_get(n->rest_sessions, a->session_id, now,
	                     NODE_LIMIT(&n->limits, rest_session_idle_ms), &s) != HDL_EOK) {
		char src[64];
		conn_src_format(&r->c->src, src, sizeof(src));
		log_peer(LOG_LVL_INFO, "rest: /api/sessions/this from %s without a live session",
		         src);
		http_send_json_error(r, 403, HDL_RC_AUTHENTICATION_NEEDED, "No such session", NULL);
		return;
	}
	if (r->req->method == HTTP_M_DELETE) {
		(void)rest_session_delete(n->rest_sessions, a->session_id);
		http_send_body(r, 204, NULL, NULL, 0);
		return;
	}
	rest_ident_t id;
	rest_auth_rc_t ar = rest_authenticate(w, r, &id);
	if (ar == REST_AUTH_REFUSED)
		return;
	http_send_json(r, 200, session_json(&s, ar == REST_AUTH_OK ? &id : NULL));
}

void rest_sessions_api(worker_t *w, http_rq_t *r, const char *rest)
{
	http_method_t m = r->req->method;
	size_t rl = strlen(rest);
	if (rl && rest[rl - 1] == '/')
		rl--;
	if (!rest_secure(r->c)) {
		http_send_json_error(r, 403, HDL_RC_AUTHENTICATION_NEEDED, "Sessions need HTTPS",
		                     NULL);
		return;
	}
	rest_authz_t a = {.scheme = REST_SCHEME_NONE};
	if (r->req->authorization.len && rest_authz_parse(r->req->authorization, &a) != HDL_EOK) {
		http_send_json_error(r, 400, HDL_RC_PROTOCOL_ERROR,
		                     "Malformed Authorization header", NULL);
		return;
	}
	if (rl == 0) {
		if (m != HTTP_M_POST) {
			http_add_header(r, "Allow", "POST, OPTIONS");
			http_send_json_error(r, 405, HDL_RC_ERROR, "Method not allowed", NULL);
			return;
		}
		session_new(w, r, &a);
		return;
	}
	if (rl != 4 || strncmp(rest, "this", 4) != 0) {
		http_send_json_error(r, 403, HDL_RC_ERROR, "Only /api/sessions/this", NULL);
		return;
	}
	if (m != HTTP_M_GET && m != HTTP_M_HEAD && m != HTTP_M_PUT && m != HTTP_M_POST &&
	    m != HTTP_M_DELETE) {
		http_add_header(r, "Allow", "GET, HEAD, POST, PUT, DELETE, OPTIONS");
		http_send_json_error(r, 405, HDL_RC_ERROR, "Method not allowed", NULL);
		return;
	}
	session_this(w, r, &a);
}
