/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HTTP transport on one listener: the native tunnel (POST application/x-hdl-message), the REST
 * API (GET /api/handles/{handle}, GET /api/site; the administration, PUT / DELETE
 * /api/handles/{handle} and /api/sessions, is rest_admin.c's) and the proxy (GET /{handle} ->
 * 302 to the first URL value, ?noredirect -> an HTML page of the values). Over TLS when the
 * connection is (port unification, conn.c): the same requests, and only there credentials.
 *
 * A small HTTP/1.1 server on the worker's own event_base (no evhttp): connections, buffers,
 * back-pressure and timers are conn.c's (one read per readable event, answers of one read
 * written with one write); requests are parsed by http_parse.c and answered in order
 * (pipelining). Keep-alive by default for HTTP/1.1 (for 1.0 with "Connection: keep-alive");
 * "Connection: close" closes once the answer is written; every response has a Content-Length.
 * The REST resolution answer is written by proto/json_write.c straight from the decoded values;
 * error bodies, pretty output and HTML pages take the slower paths.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hdl/error.h"
#include "node/common/log.h"
#include "node/server/admin.h"
#include "node/server/authz.h"
#include "node/server/delegate.h"
#include "node/server/http.h"
#include "node/server/preq.h"
#include "node/server/qlog.h"
#include "node/server/web.h"
#include "node/server/rest.h"
#include "node/server/snms.h"
#include "node/server/srvadmin.h"
#include "node/server/worker.h"
#include "node/store/store.h"
#include "proto/json.h"
#include "proto/json_write.h"

#define MAX_URI 8192u
#define HDL_MIME "application/x-hdl-message"
#define JSON_MIME "application/json;charset=UTF-8"
#define HTML_MIME "text/html;charset=UTF-8"

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

long http_pct_decode(char *s, bool plus)
{
	char *o = s;
	for (char *i = s; *i; i++) {
		if (*i == '%') {
			int h = hexval((unsigned char)i[1]);
			int l = h < 0 ? -1 : hexval((unsigned char)i[2]);
			if (h < 0 || l < 0)
				return -1;
			*o++ = (char)(h * 16 + l);
			i += 2;
		} else if (*i == '+' && plus) {
			*o++ = ' ';
		} else {
			*o++ = *i;
		}
	}
	*o = '\0';
	return (long)(o - s);
}

/* Split and decode \p query in place (the caller's copy of the request target). */
static bool params_parse(http_params_t *ps, char *query)
{
	ps->n = 0;
	if (!query || !*query)
		return true;
	char *save = NULL;
	for (char *tok = strtok_r(query, "&", &save); tok; tok = strtok_r(NULL, "&", &save)) {
		if (ps->n >= HTTP_MAX_PARAMS)
			return false;
		char *eq = strchr(tok, '=');
		if (eq)
			*eq = '\0';
		long kl = http_pct_decode(tok, true);
		long vl = eq ? http_pct_decode(eq + 1, true) : 0;
		if (kl < 0 || vl < 0 || (long)strlen(tok) != kl ||
		    (eq && (long)strlen(eq + 1) != vl))
			return false; /* bad escape or NUL byte */
		ps->p[ps->n].key = tok;
		ps->p[ps->n].value = eq ? eq + 1 : NULL;
		ps->n++;
	}
	return true;
}

const http_param_t *http_param_get(const http_params_t *ps, const char *key)
{
	for (unsigned i = 0; i < ps->n; i++) {
		if (strcmp(ps->p[i].key, key) == 0)
			return &ps->p[i];
	}
	return NULL;
}

bool http_param_bool(const http_params_t *ps, const char *key, bool dflt)
{
	const http_param_t *p = http_param_get(ps, key);
	if (!p)
		return dflt;
	if (!p->value || !*p->value)
		return true;
	return strcasecmp(p->value, "true") == 0 || strcasecmp(p->value, "yes") == 0 ||
	       strcmp(p->value, "1") == 0;
}

typedef struct filters {
	uint32_t idx[HDL_MAX_FILTER];
	uint32_t n_idx;
	hdl_slice_t types[HDL_MAX_FILTER];
	uint32_t n_types;
} filters_t;

static bool filters_parse(const http_params_t *ps, filters_t *f)
{
	f->n_idx = f->n_types = 0;
	for (unsigned i = 0; i < ps->n; i++) {
		const http_param_t *p = &ps->p[i];
		if (!p->value)
			continue;
		if (strcmp(p->key, "type") == 0) {
			if (f->n_types >= HDL_MAX_FILTER || !*p->value)
				return false;
			f->types[f->n_types++] = hdl_slice_str(p->value);
		} else if (strcmp(p->key, "index") == 0) {
			char *end;
			unsigned long v = strtoul(p->value, &end, 10);
			if (f->n_idx >= HDL_MAX_FILTER || !*p->value || *end || v > UINT32_MAX ||
			    p->value[0] == '-')
				return false;
			f->idx[f->n_idx++] = (uint32_t)v;
		}
	}
	return true;
}

int http_status_for(uint32_t rc, bool resolution)
{
	switch (rc) {
	case HDL_RC_SUCCESS: return 200;
	case HDL_RC_VALUES_NOT_FOUND: return resolution ? 200 : 400;
	case HDL_RC_HANDLE_NOT_FOUND: return 404;
	case HDL_RC_HANDLE_ALREADY_EXISTS:
	case HDL_RC_VALUE_ALREADY_EXISTS: return 409;
	case HDL_RC_PROTOCOL_ERROR:
	case HDL_RC_INVALID_HANDLE:
	case HDL_RC_INVALID_VALUE:
	case HDL_RC_SERVER_NOT_RESP: return 400;
	case HDL_RC_SERVICE_REFERRAL:
	case HDL_RC_PREFIX_REFERRAL: return 300;
	case HDL_RC_OPERATION_NOT_SUPPORTED: return 501;
	case HDL_RC_SERVER_TOO_BUSY:
	case HDL_RC_SERVER_BACKUP: return 503;
	case HDL_RC_AUTHENTICATION_NEEDED: return 401;
	case HDL_RC_INVALID_ADMIN:
	case HDL_RC_INSUFFICIENT_PERMISSIONS:
	case HDL_RC_AUTHENTICATION_FAILED:
	case HDL_RC_INVALID_CREDENTIAL: return 403;
	default: return 500;
	}
}

static const char *reason_for(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 300: return "Multiple Choices";
	case 302: return "Found";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	default: return "Internal Server Error";
	}
}

/* ---- resolution into decoded values ------------------------------------------------------ */

/*
 * May \p id read the values of \p handle that are not public? (an HS_ADMIN value of the
 * handle with READ_VALUE names it, or it is a server admin; handle-protocol.md §9.3).
 * Between dispatch_begin() and dispatch_end().
 */
static bool may_read_all(worker_t *w, const char *handle, const rest_ident_t *id)
{
	if (!id || !id->ok)
		return false;
	node_shared_t *n = w->node;
	hdl_slice_t vals = {NULL, 0};
	int ret = store_get(w->dctx.reader, hdl_slice_str(handle), &vals);
	if (ret != HDL_EOK && ret != HDL_ENOENT)
		return false;
	const srvadmin_set_t *sa = atomic_load_explicit(&n->admins, memory_order_acquire);
	authz_t az = {
	    .lookup = authz_lookup_reader,
	    .ctx = w->dctx.reader,
	    .server_admins = sa ? sa->refs : NULL,
	    .n_server_admins = sa ? sa->n : 0,
	};
	hdl_ref_t who = {{id->handle, id->handle_len}, id->index};
	return authz_check(&az, who, vals, HDL_ADM_READ_VALUE, &w->dctx.arena) == AUTHZ_GRANTED;
}

/*
 * Resolve and decode the selected values into the worker arena (only public ones unless \p id
 * may read them all). On success *vals and *n are valid until the next request on this worker.
 */
static int resolve_values(worker_t *w, const char *handle, const filters_t *f,
                          const rest_ident_t *id, uint32_t *rcode, const char **msg,
                          hdl_value_t **vals, uint32_t *n, bool *not_homed)
{
	dispatch_sel_t sel;
	*vals = NULL;
	*n = 0;
	*not_homed = false;
	int ret = dispatch_begin(&w->dctx);
	if (ret != HDL_EOK) {
		*rcode = HDL_RC_SERVER_TOO_BUSY;
		*msg = "store unavailable";
		return HDL_EOK;
	}
	if (may_read_all(w, handle, id))
		ret = dispatch_resolve_admin(&w->dctx, hdl_slice_str(handle), f->idx, f->n_idx,
		                             f->types, f->n_types, &sel);
	else
		ret = dispatch_resolve(&w->dctx, hdl_slice_str(handle), f->idx, f->n_idx, f->types,
		                       f->n_types, true, &sel);
	if (ret != HDL_EOK)
		goto out;
	*rcode = sel.rcode;
	*msg = sel.message;
	*not_homed = sel.not_homed;
	if (sel.rcode != HDL_RC_SUCCESS)
		goto out;
	size_t total = 4;
	for (uint32_t i = 0; i < sel.n; i++)
		total += sel.vals[i].len;
	uint8_t *buf = hdl_arena_alloc(&w->dctx.arena, total);
	if (!buf) {
		ret = HDL_ENOMEM;
		goto out;
	}
	buf[0] = (uint8_t)(sel.n >> 24);
	buf[1] = (uint8_t)(sel.n >> 16);
	buf[2] = (uint8_t)(sel.n >> 8);
	buf[3] = (uint8_t)sel.n;
	size_t pos = 4;
	for (uint32_t i = 0; i < sel.n; i++) {
		memcpy(buf + pos, sel.vals[i].p, sel.vals[i].len);
		pos += sel.vals[i].len;
	}
	ret = hdl_values_decode(buf, total, &w->dctx.arena, vals, n);
	if (ret != HDL_EOK) {
		log_err("http: stored values do not decode: %s", hdl_strerror(ret));
		*rcode = HDL_RC_ERROR;
		*msg = "stored record is damaged";
		ret = HDL_EOK;
	}
out:
	dispatch_end(&w->dctx);
	return ret;
}

/* ---- HTML helpers ---------------------------------------------------------------------------- */

static bool printable_text(const hdl_slice_t d)
{
	if (!hdl_utf8_valid(d.p, d.len))
		return false;
	for (uint32_t i = 0; i < d.len; i++) {
		if (d.p[i] < 0x20 && d.p[i] != '\t' && d.p[i] != '\n' && d.p[i] != '\r')
			return false;
	}
	return true;
}

static bool url_ok(hdl_slice_t d)
{
	if (d.len == 0 || d.len > 4096)
		return false;
	for (uint32_t i = 0; i < d.len; i++) {
		if (d.p[i] <= 0x20 || d.p[i] == 0x7f)
			return false;
	}
	return true;
}

/* First value of type exactly URL, else the first URL.* subtype (HNET9 proxy). */
static const hdl_value_t *pick_url(const hdl_value_t *v, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		if (hdl_slice_eq_nocase(v[i].type, hdl_slice_str("URL")) && url_ok(v[i].data))
			return &v[i];
	}
	for (uint32_t i = 0; i < n; i++) {
		if (v[i].type.len > 4 &&
		    hdl_slice_eq_nocase((hdl_slice_t){v[i].type.p, 4}, hdl_slice_str("URL.")) &&
		    url_ok(v[i].data))
			return &v[i];
	}
	return NULL;
}

/* ---- responses ------------------------------------------------------------------------------ */

/** Per-worker HTTP state. */
typedef struct http_state {
	hdl_buf_t body; /**< scratch: the body of the response being built */
} http_state_t;

void http_add_header(http_rq_t *r, const char *name, const char *value)
{
	int n = snprintf(r->extra + r->extra_len, sizeof(r->extra) - r->extra_len, "%s: %s\r\n",
	                 name, value);
	if (n > 0 && (size_t)n < sizeof(r->extra) - r->extra_len)
		r->extra_len += (size_t)n;
}

static const char *reason_long(int status)
{
	switch (status) {
	case 401: return "Unauthorized";
	case 411: return "Length Required";
	case 413: return "Payload Too Large";
	case 431: return "Request Header Fields Too Large";
	case 505: return "HTTP Version Not Supported";
	default: return reason_for(status);
	}
}

static void put_status_line(hdl_buf_t *o, int status)
{
	switch (status) {
	case 200: hdl_buf_puts(o, "HTTP/1.1 200 OK\r\n"); return;
	case 302: hdl_buf_puts(o, "HTTP/1.1 302 Found\r\n"); return;
	case 404: hdl_buf_puts(o, "HTTP/1.1 404 Not Found\r\n"); return;
	default: break;
	}
	char line[96];
	int n = snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n", status, reason_long(status));
	hdl_buf_put(o, line, (size_t)n);
}

void http_send_body(http_rq_t *r, int status, const char *ctype, const void *body, size_t len)
{
	hdl_buf_t *o = conn_out(r->c);
	r->status = status;
	put_status_line(o, status);
	hdl_buf_puts(o, "Access-Control-Allow-Origin: *\r\n");
	if (status != 204) {
		hdl_buf_puts(o, "Content-Type: ");
		hdl_buf_puts(o, ctype ? ctype : "text/plain");
		hdl_buf_puts(o, "\r\nContent-Length: ");
		hdl_buf_putu(o, len);
		hdl_buf_puts(o, "\r\n");
	}
	if (r->close || r->c->w->stopping) {
		hdl_buf_puts(o, "Connection: close\r\n");
		r->close = true;
	} else if (r->minor == 0) {
		hdl_buf_puts(o, "Connection: keep-alive\r\n");
	}
	hdl_buf_put(o, r->extra, r->extra_len);
	hdl_buf_puts(o, "\r\n");
	if (len && !r->head)
		hdl_buf_put(o, body, len);
}

static void send_text(http_rq_t *r, int status, const char *text)
{
	http_send_body(r, status, "text/plain", text, strlen(text));
}

void http_send_json(http_rq_t *r, int status, json_t *j)
{
	char *s = j ? json_dumps(j, r->pretty ? JSON_INDENT(2) : JSON_COMPACT) : NULL;
	if (!s)
		http_send_body(r, 500, JSON_MIME, "{\"responseCode\":2}", 18);
	else
		http_send_body(r, status, JSON_MIME, s, strlen(s));
	free(s);
	json_decref(j);
}

void http_send_json_error(http_rq_t *r, int status, uint32_t rc, const char *message,
                          const char *handle)
{
	json_t *j = json_object();
	if (j) {
		json_object_set_new(j, "responseCode", json_integer(rc));
		if (message && *message)
			json_object_set_new(j, "message", json_string(message));
		if (handle) {
			json_t *hs = json_string(handle); /* NULL on invalid UTF-8: left out */
			if (hs)
				json_object_set_new(j, "handle", hs);
		}
	}
	http_send_json(r, status, j);
}

/* ---- requests that wait ------------------------------------------------------------------ */

/* What the answer of a waiting request needs of its HTTP request (in preq.tpriv). */
typedef struct wait_rq {
	bool close;
	bool head;
	bool pretty;
	uint8_t minor;
	rest_answer_fn answer;
	void *arg;
} wait_rq_t;

_Static_assert(sizeof(wait_rq_t) <= sizeof(((preq_t *)0)->tpriv), "preq tpriv too small");

/*
 * A request that waited is answered. HTTP/1.1 answers go out in request order, so the
 * connection was blocked (nothing behind it parsed) until now.
 */
static void on_complete(preq_t *p)
{
	conn_t *c = p->conn;
	wait_rq_t wr;
	memcpy(&wr, p->tpriv, sizeof(wr));
	http_rq_t r = {
	    .c = c, .head = wr.head, .close = wr.close, .pretty = wr.pretty, .minor = wr.minor};
	wr.answer(&r, p, wr.arg);
	preq_unlink(&c->waiting, p);
	preq_done(p);
	c->n_waiting--;
	c->blocked = false;
	if (r.close)
		c->closing = true;
	conn_resume(c);
}

void http_wait(http_rq_t *r, preq_t *p, rest_answer_fn answer, void *arg)
{
	conn_t *c = r->c;
	wait_rq_t wr = {.close = r->close,
	                .head = r->head,
	                .pretty = r->pretty,
	                .minor = r->minor,
	                .answer = answer,
	                .arg = arg};
	memcpy(p->tpriv, &wr, sizeof(wr));
	preq_link(&c->waiting, p, c);
	p->complete = on_complete;
	c->n_waiting++;
	c->blocked = true;
}

/* ---- native tunnel ---------------------------------------------------------------------- */

static void native_answer(http_rq_t *r, preq_t *p, void *arg)
{
	worker_t *w = r->c->w;
	(void)arg;
	size_t n = dispatch_preq_reply(&w->dctx, p, w->out, DISPATCH_OUT_CAP);
	if (n)
		http_send_body(r, 200, HDL_MIME, w->out, n);
	else
		send_text(r, 500, "no answer\n");
}

static void attach(void *tctx, preq_t *p)
{
	http_wait(tctx, p, native_answer, NULL);
}

static void do_native(worker_t *w, http_rq_t *r)
{
	const uint8_t *p = r->req->body;
	size_t len = (size_t)r->req->content_length;
	if (len && (p[0] == '\r' || p[0] == '\n')) {
		size_t skip = (len >= 2 && p[0] == '\r' && p[1] == '\n') ? 2 : 1;
		p += skip;
		len -= skip;
	}
	size_t n = 0;
	conn_t *c = r->c;
	dispatch_origin_t o = {
	    .transport = conn_is_tls(c) ? WR_T_HTTPS : WR_T_HTTP,
	    .peer = &c->peer,
	    .peer_len = c->peer_len,
	    .auth = &c->auth,
	    .attach = attach,
	    .tctx = r,
	};
	if (len >= HDL_ENVELOPE_LEN &&
	    dispatch_message_from(&w->dctx, &o, p, len, w->out, DISPATCH_OUT_CAP, &n) ==
	        DISPATCH_WAIT)
		return; /* answered by on_complete() */
	if (n == 0) {
		log_peer(LOG_LVL_INFO, "http: native request of %zu bytes not answerable", len);
		send_text(r, 400, "not a Handle request\n");
		return;
	}
	http_send_body(r, 200, HDL_MIME, w->out, n);
}

/* ---- REST API -------------------------------------------------------------------------------- */

static void rest_render(worker_t *w, http_rq_t *r, const char *handle, uint32_t rc,
                        const char *msg, hdl_value_t *vals, uint32_t n);
static void proxy_render(worker_t *w, http_rq_t *r, const char *handle, bool show, uint32_t rc,
                         const char *msg, hdl_value_t *vals, uint32_t n);

/* A REST or proxy request that waited for upstream is answered (through http_wait()). */
static void delegated_answer(http_rq_t *r, preq_t *p, bool rest, bool show)
{
	worker_t *w = r->c->w;
	const char *handle = "", *msg = NULL;
	uint32_t rc = HDL_RC_ERROR, n = 0;
	hdl_value_t *vals = NULL;
	hdl_arena_reset(&w->dctx.arena);
	if (delegate_http_result(w, p, &handle, &rc, &msg, &vals, &n) != HDL_EOK) {
		rc = HDL_RC_SERVER_TOO_BUSY;
		msg = "out of memory";
	}
	if (rest)
		rest_render(w, r, handle, rc, msg, vals, n);
	else
		proxy_render(w, r, handle, show, rc, msg, vals, n);
}

static void rest_delegated(http_rq_t *r, preq_t *p, void *arg)
{
	(void)arg;
	delegated_answer(r, p, true, false);
}

static const int SHOW_VALUES; /* the proxy's arg: show the values, do not redirect */

static void proxy_delegated(http_rq_t *r, preq_t *p, void *arg)
{
	delegated_answer(r, p, false, arg == &SHOW_VALUES);
}

typedef struct delegated {
	http_rq_t *r;
	rest_answer_fn answer;
	void *arg;
} delegated_t;

/* A REST or proxy request waits for upstream, like a native one. */
static void delegated_wait(void *ctx, preq_t *p)
{
	delegated_t *d = ctx;
	http_wait(d->r, p, d->answer, d->arg);
}

/*
 * Resolve for REST or the proxy; a handle not homed here goes to the resolution path, and when
 * it has to wait for upstream the request waits in order (http_wait(); \p answer renders it).
 * \retval HDL_EOK (answer in the out parameters), HDL_ENOMEM, DISPATCH_WAIT
 */
static int http_resolve(worker_t *w, http_rq_t *r, const char *handle, const filters_t *f,
                        const rest_ident_t *id, rest_answer_fn answer, void *arg, uint32_t *rc,
                        const char **msg, hdl_value_t **vals, uint32_t *n)
{
	bool not_homed = false;
	int ret = resolve_values(w, handle, f, id, rc, msg, vals, n, &not_homed);
	if (ret != HDL_EOK || !not_homed)
		return ret;
	delegated_t dw = {r, answer, arg};
	delegate_http_t dh = {r->c, delegated_wait, &dw};
	return delegate_http_resolve(w, &dh, handle, f->idx, f->n_idx, f->types, f->n_types, rc,
	                             msg, vals, n);
}

static void do_rest_handle(worker_t *w, http_rq_t *r, const char *handle, const http_params_t *ps)
{
	filters_t f;
	if (!filters_parse(ps, &f)) {
		http_send_json_error(r, 400, HDL_RC_PROTOCOL_ERROR,
		                     "Invalid type or index parameter", handle);
		return;
	}
	/*
	 * Credentials are optional here: with them (and publicOnly=false, the default once
	 * authenticated) an identity with READ_VALUE also gets the values that are not public.
	 * "auth" (authoritative) needs nothing more: this node answers from its own store.
	 */
	rest_ident_t id = {0};
	if (r->req->authorization.len) {
		rest_auth_rc_t ar = rest_authenticate(w, r, &id);
		if (ar == REST_AUTH_REFUSED)
			return;
		if (ar == REST_AUTH_OK && http_param_bool(ps, "publicOnly", false))
			id.ok = false;
	}
	uint32_t rc = HDL_RC_ERROR, n = 0;
	const char *msg = NULL;
	hdl_value_t *vals = NULL;
	int ret = http_resolve(w, r, handle, &f, &id, rest_delegated, NULL, &rc, &msg, &vals, &n);
	if (ret == DISPATCH_WAIT)
		return;
	if (ret != HDL_EOK) {
		http_send_json_error(r, 503, HDL_RC_SERVER_TOO_BUSY, "out of memory", handle);
		return;
	}
	rest_render(w, r, handle, rc, msg, vals, n);
}

static void rest_render(worker_t *w, http_rq_t *r, const char *handle, uint32_t rc,
                        const char *msg, hdl_value_t *vals, uint32_t n)
{
	if (rc != HDL_RC_SUCCESS && rc != HDL_RC_VALUES_NOT_FOUND) {
		http_send_json_error(r, http_status_for(rc, true), rc, msg, handle);
		return;
	}
	bool pretty = r->pretty;
	if (rc != HDL_RC_SUCCESS)
		n = 0;
	size_t hlen = strlen(handle);
	if (!pretty && hdl_utf8_valid((const uint8_t *)handle, hlen)) {
		/* fast path: the JSON text written directly, no tree */
		hdl_buf_t *b = &w->http->body;
		b->len = 0;
		b->fail = false;
		if (hdl_jw_resolution(b, rc, (const uint8_t *)handle, hlen, vals, n)) {
			http_send_body(r, 200, JSON_MIME, b->p, b->len);
			return;
		}
	}
	json_t *j = json_object();
	json_t *hs = json_string(handle);
	json_t *jv = rc == HDL_RC_SUCCESS ? hdl_json_from_values(vals, n) : json_array();
	if (!j || !hs || !jv) {
		json_decref(j);
		json_decref(hs);
		json_decref(jv);
		http_send_json_error(r, 500, HDL_RC_ERROR, "cannot format values", NULL);
		return;
	}
	json_object_set_new(j, "responseCode", json_integer(rc));
	json_object_set_new(j, "handle", hs);
	json_object_set_new(j, "values", jv);
	http_send_json(r, 200, j);
}

static void do_rest_site(worker_t *w, http_rq_t *r)
{
	json_t *j = json_object();
	json_t *site = hdl_json_from_site(&w->node->site_info);
	if (!j || !site) {
		json_decref(j);
		json_decref(site);
		http_send_json_error(r, 500, HDL_RC_ERROR, "cannot format site", NULL);
		return;
	}
	json_object_set_new(j, "responseCode", json_integer(HDL_RC_SUCCESS));
	json_object_set_new(j, "site", site);
	http_send_json(r, 200, j);
}

/* ---- proxy ----------------------------------------------------------------------------------- */

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void buf_printf(hdl_buf_t *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !hdl_buf_reserve(b, (size_t)n + 1))
		return;
	va_start(ap, fmt);
	vsnprintf((char *)b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

static void html_escape(hdl_buf_t *b, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		switch (p[i]) {
		case '&': hdl_buf_puts(b, "&amp;"); break;
		case '<': hdl_buf_puts(b, "&lt;"); break;
		case '>': hdl_buf_puts(b, "&gt;"); break;
		case '"': hdl_buf_puts(b, "&quot;"); break;
		case '\'': hdl_buf_puts(b, "&#39;"); break;
		default:
			if (p[i] < 0x20 && p[i] != '\t' && p[i] != '\n')
				buf_printf(b, "&#%u;", 0x2400u + p[i]); /* control picture */
			else
				hdl_buf_put(b, p + i, 1);
		}
	}
}

static void html_escape_str(hdl_buf_t *b, const char *s)
{
	html_escape(b, (const uint8_t *)s, strlen(s));
}

static hdl_buf_t *page_begin(worker_t *w, const char *title)
{
	hdl_buf_t *b = &w->http->body;
	b->len = 0;
	b->fail = false;
	hdl_buf_puts(b, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>");
	html_escape_str(b, title);
	hdl_buf_puts(b, "</title></head>\n<body>\n");
	return b;
}

static void send_html(http_rq_t *r, int status, hdl_buf_t *b)
{
	if (b->fail)
		send_text(r, 500, "out of memory\n");
	else
		http_send_body(r, status, HTML_MIME, b->p, b->len);
}

static void values_page(worker_t *w, http_rq_t *r, const char *handle, const hdl_value_t *v,
                        uint32_t n)
{
	hdl_buf_t *b = page_begin(w, handle);
	hdl_buf_puts(b, "<h1>Handle Values for: ");
	html_escape_str(b, handle);
	hdl_buf_puts(b, "</h1>\n<table border=\"1\">\n"
	                "<tr><th>Index</th><th>Type</th><th>Timestamp</th><th>Data</th></tr>\n");
	for (uint32_t i = 0; i < n; i++) {
		char ts[21];
		hdl_json_time(v[i].timestamp, ts);
		buf_printf(b, "<tr><td>%u</td><td>", v[i].index);
		html_escape(b, v[i].type.p, v[i].type.len);
		buf_printf(b, "</td><td>%s</td><td>", v[i].timestamp ? ts : "");
		if (printable_text(v[i].data)) {
			html_escape(b, v[i].data.p, v[i].data.len);
		} else {
			hdl_buf_puts(b, "<code>");
			for (uint32_t k = 0; k < v[i].data.len && k < 1024; k++)
				buf_printf(b, "%02x", v[i].data.p[k]);
			buf_printf(b, "%s</code>", v[i].data.len > 1024 ? "&hellip;" : "");
		}
		hdl_buf_puts(b, "</td></tr>\n");
	}
	hdl_buf_puts(b, "</table>\n</body></html>\n");
	send_html(r, 200, b);
}

static void error_page(worker_t *w, http_rq_t *r, int status, const char *handle, const char *msg)
{
	hdl_buf_t *b = page_begin(w, reason_for(status));
	buf_printf(b, "<h1>%d %s</h1>\n<p>", status, reason_for(status));
	html_escape_str(b, handle);
	hdl_buf_puts(b, ": ");
	html_escape_str(b, msg ? msg : "");
	hdl_buf_puts(b, "</p>\n</body></html>\n");
	send_html(r, status, b);
}

static void do_proxy(worker_t *w, http_rq_t *r, const char *handle, const http_params_t *ps)
{
	if (!*handle) {
		hdl_buf_t *b = page_begin(w, "idnode");
		hdl_buf_puts(b, "<h1>idnode</h1>\n<p>Resolve a handle: "
		                "<code>/&lt;prefix&gt;/&lt;suffix&gt;</code>, "
		                "REST API at <code>/api/handles/&lt;handle&gt;</code>.</p>\n"
		                "</body></html>\n");
		send_html(r, 200, b);
		return;
	}
	filters_t f;
	if (!filters_parse(ps, &f)) {
		error_page(w, r, 400, handle, "Invalid type or index parameter");
		return;
	}
	bool show = http_param_bool(ps, "noredirect", false);
	const http_param_t *action = http_param_get(ps, "action");
	if (action && action->value && strcmp(action->value, "showvalues") == 0)
		show = true;
	uint32_t rc = HDL_RC_ERROR, n = 0;
	const char *msg = NULL;
	hdl_value_t *vals = NULL;
	int ret = http_resolve(w, r, handle, &f, NULL, proxy_delegated,
	                       show ? (void *)&SHOW_VALUES : NULL, &rc, &msg, &vals, &n);
	if (ret == DISPATCH_WAIT)
		return;
	if (ret != HDL_EOK) {
		error_page(w, r, 503, handle, "out of memory");
		return;
	}
	proxy_render(w, r, handle, show, rc, msg, vals, n);
}

static void proxy_render(worker_t *w, http_rq_t *r, const char *handle, bool show, uint32_t rc,
                         const char *msg, hdl_value_t *vals, uint32_t n)
{
	if (rc == HDL_RC_VALUES_NOT_FOUND) {
		values_page(w, r, handle, NULL, 0);
		return;
	}
	if (rc != HDL_RC_SUCCESS) {
		int st = rc == HDL_RC_SERVER_NOT_RESP ? 404 : http_status_for(rc, true);
		error_page(w, r, st, handle, msg);
		return;
	}
	const hdl_value_t *url = show ? NULL : pick_url(vals, n);
	if (!url) {
		values_page(w, r, handle, vals, n);
		return;
	}
	/* url_ok: 1..4096 bytes, no controls or spaces, so it fits a header line */
	char loc[4097];
	memcpy(loc, url->data.p, url->data.len);
	loc[url->data.len] = '\0';
	int k = snprintf(r->extra + r->extra_len, sizeof(r->extra) - r->extra_len,
	                 "Location: %s\r\n", loc);
	if (k < 0 || (size_t)k >= sizeof(r->extra) - r->extra_len) {
		error_page(w, r, 500, handle, "redirect URL too long");
		return;
	}
	r->extra_len += (size_t)k;
	hdl_buf_t *b = page_begin(w, "Handle Redirect");
	hdl_buf_puts(b, "<a href=\"");
	html_escape_str(b, loc);
	hdl_buf_puts(b, "\">");
	html_escape_str(b, loc);
	hdl_buf_puts(b, "</a>\n</body></html>\n");
	send_html(r, 302, b);
}

/* ---- routing ------------------------------------------------------------------------------- */

static bool has_token_ci(http_str_t v, const char *needle)
{
	size_t n = strlen(needle);
	for (size_t i = 0; i + n <= v.len; i++) {
		if (strncasecmp(v.p + i, needle, n) == 0)
			return true;
	}
	return false;
}

static void on_request(conn_t *c, const http_req_t *req)
{
	worker_t *w = c->w;
	http_rq_t r = {.c = c,
	               .req = req,
	               .head = req->method == HTTP_M_HEAD,
	               .close = !req->keep_alive,
	               .minor = (uint8_t)req->minor};
	http_params_t ps;
	web_resp_t wr;
	char tbuf[MAX_URI + 1];
	size_t out0 = conn_out(c)->len;
	bool logged = false; /* native messages are logged by dispatch, SNMS by its audit */

	if (req->method == HTTP_M_POST && has_token_ci(req->content_type, HDL_MIME)) {
		do_native(w, &r);
		logged = true;
		goto out;
	}
	if (req->method == HTTP_M_OPTIONS) {
		http_add_header(&r, "Access-Control-Allow-Methods",
		                "GET, HEAD, POST, PUT, DELETE, OPTIONS");
		http_add_header(&r, "Access-Control-Allow-Headers", "Authorization, Content-Type");
		http_send_body(&r, 204, NULL, NULL, 0);
		goto out;
	}
	if (snms_request(c, req)) { /* the SNMS-compatible API (snms.h) */
		logged = true;
		goto out;
	}
	if (req->target.len == 0 || req->target.p[0] != '/' || req->target.len > MAX_URI) {
		send_text(&r, 400, "bad request\n");
		goto out;
	}
	memcpy(tbuf, req->target.p, req->target.len);
	tbuf[req->target.len] = '\0';
	bool api = strncmp(tbuf, "/api/", 5) == 0;
	char *q = strchr(tbuf, '?');
	if (q)
		*q++ = '\0';
	char *path = tbuf;
	char *hash = strchr(path, '#'); /* drop a fragment */
	if (hash)
		*hash = '\0';
	long dl = http_pct_decode(path, false);
	if (dl < 0 || (size_t)dl != strlen(path) || !params_parse(&ps, q)) {
		if (api)
			http_send_json_error(&r, 400, HDL_RC_PROTOCOL_ERROR, "Invalid request URI",
			                     NULL);
		else
			send_text(&r, 400, "bad request\n");
		goto out;
	}
	bool get = req->method == HTTP_M_GET || req->method == HTTP_M_HEAD;
	r.pretty = http_param_bool(&ps, "pretty", false);

	if (strncmp(path, "/api/handles/", 13) == 0 && path[13]) {
		const char *handle = path + 13;
		if (get) {
			do_rest_handle(w, &r, handle, &ps);
		} else if (req->method == HTTP_M_PUT) {
			rest_put_handle(w, &r, handle, &ps);
		} else if (req->method == HTTP_M_DELETE) {
			rest_delete_handle(w, &r, handle, &ps);
		} else {
			http_add_header(&r, "Allow", "GET, HEAD, PUT, DELETE, OPTIONS");
			http_send_json_error(&r, 405, HDL_RC_ERROR, "Method not allowed", handle);
		}
	} else if (strcmp(path, "/api/handles") == 0 || strcmp(path, "/api/handles/") == 0) {
		http_send_json_error(&r, 501, HDL_RC_OPERATION_NOT_SUPPORTED, "not supported yet",
		                     NULL);
	} else if (strcmp(path, "/api/site") == 0 && get) {
		do_rest_site(w, &r);
	} else if (strcmp(path, "/api/sessions") == 0 || strncmp(path, "/api/sessions/", 14) == 0) {
		rest_sessions_api(w, &r, path[13] ? path + 14 : "");
	} else if (strcmp(path, "/api") == 0 || strncmp(path, "/api/", 5) == 0) {
		http_add_header(&r, "Allow", "GET, HEAD");
		http_send_json_error(&r, 405, HDL_RC_ERROR, "Method not allowed", NULL);
	} else if (get && web_route(w, path, &wr)) { /* the status page: /, /app.js, /status.json */
		for (unsigned i = 0; i < 4 && wr.hdr[i].name; i++)
			http_add_header(&r, wr.hdr[i].name, wr.hdr[i].value);
		http_send_body(&r, wr.status, wr.ctype, wr.body, wr.len);
		web_resp_free(&wr);
	} else if (get) {
		do_proxy(w, &r, path + 1, &ps);
	} else {
		http_add_header(&r, "Allow", "GET, HEAD, POST");
		send_text(&r, 405, "method not allowed\n");
	}
out:
	if (!logged && qlog_on()) {
		size_t out1 = conn_out(c)->len;
		qlog_http(&c->peer, conn_is_tls(c), req->method_s.p, req->method_s.len, req->target.p,
		          req->target.len, r.status, (size_t)req->content_length,
		          out1 >= out0 ? out1 - out0 : 0);
	}
	if (r.close && !c->blocked)
		c->closing = true; /* a waiting request closes after its answer (on_complete) */
}

/* ---- connection input ------------------------------------------------------------------------- */

/* Answer a request the parser refused, then close. */
static void refuse(conn_t *c, http_parse_rc_t rc, uint8_t minor)
{
	http_rq_t r = {.c = c, .close = true, .minor = minor};
	switch (rc) {
	case HTTP_PARSE_HDR_LARGE: send_text(&r, 431, "request header too large\n"); break;
	case HTTP_PARSE_BODY_LARGE: send_text(&r, 413, "request body too large\n"); break;
	case HTTP_PARSE_LEN_REQUIRED:
		send_text(&r, 411, "chunked request bodies are not supported\n");
		break;
	case HTTP_PARSE_VERSION: send_text(&r, 505, "HTTP/1.x only\n"); break;
	default: send_text(&r, 400, "bad request\n"); break;
	}
	log_peer(LOG_LVL_INFO, "http: refused a request (parse result %d), closing", (int)rc);
	c->closing = true;
}

/* Parse and answer the whole requests at the start of p (conn_proto_t.process). */
static size_t http_process(conn_t *c, const uint8_t *p, size_t len)
{
	uint64_t max_body = NODE_LIMIT(&c->w->node->limits, http_max_body);
	size_t off = 0;
	if (len && p[0] == 0x16 && !conn_is_tls(c)) {
		/* a TLS ClientHello where only plain HTTP is spoken (http_tls = no, or no
		 * certificate): no HTTP answer would mean anything to it */
		char s[64];
		conn_src_format(&c->src, s, sizeof(s));
		log_peer(LOG_LVL_INFO, "http: TLS handshake from %s on a plain HTTP port, closing",
		         s);
		c->closing = true;
		return len;
	}
	while (!c->closing && !c->blocked && off < len) {
		if (conn_out_full(c))
			break; /* the rest waits for the peer to read (or for the budget) */
		http_req_t req;
		http_parse_rc_t rc =
		    http_parse(p + off, len - off, HTTP_MAX_HEADER_BYTES, max_body, &req);
		if (rc == HTTP_PARSE_MORE) {
			c->partial = true;
			break;
		}
		if (rc != HTTP_PARSE_OK) {
			refuse(c, rc, (uint8_t)req.minor);
			break;
		}
		on_request(c, &req);
		off += req.total_len;
	}
	return off;
}

static size_t http_in_max(const worker_t *w)
{
	return HTTP_MAX_HEADER_BYTES + 1 + (size_t)NODE_LIMIT(&w->node->limits, http_max_body);
}

const conn_proto_t http_proto = {"http", http_process, http_in_max};

/* ---- start / stop -------------------------------------------------------------------------- */

int http_start(worker_t *w)
{
	w->http = calloc(1, sizeof(*w->http));
	if (!w->http)
		return HDL_ENOMEM;
	hdl_buf_init(&w->http->body, 0);
	return HDL_EOK;
}

void http_free(worker_t *w)
{
	if (w->http) {
		hdl_buf_free(&w->http->body);
		free(w->http);
		w->http = NULL;
	}
}
