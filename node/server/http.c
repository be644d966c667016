/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HTTP transport on one listener: the native tunnel (POST application/x-hdl-message), the REST
 * resolution API (GET /api/handles/{handle}, GET /api/site) and the proxy (GET /{handle} -> 302
 * to the first URL value, ?noredirect -> an HTML page of the values).
 */
#define _GNU_SOURCE
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "hdl/error.h"
#include "node/common/log.h"
#include "node/server/worker.h"
#include "proto/json.h"

#define MAX_PARAMS 64u
#define MAX_URI 8192u
#define HDL_MIME "application/x-hdl-message"
#define JSON_MIME "application/json;charset=UTF-8"
#define HTML_MIME "text/html;charset=UTF-8"

typedef struct param {
	char *key;
	char *value; /**< NULL when the parameter had no '=' */
} param_t;

typedef struct params {
	param_t p[MAX_PARAMS];
	unsigned n;
	char *buf;
} params_t;

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

/* Percent-decode \p s in place ('+' = space when \p plus). \return length, -1 on a bad escape. */
static long pct_decode(char *s, bool plus)
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

static bool params_parse(params_t *ps, const char *query)
{
	memset(ps, 0, sizeof(*ps));
	if (!query || !*query)
		return true;
	ps->buf = strdup(query);
	if (!ps->buf)
		return false;
	char *save = NULL;
	for (char *tok = strtok_r(ps->buf, "&", &save); tok; tok = strtok_r(NULL, "&", &save)) {
		if (ps->n >= MAX_PARAMS)
			return false;
		char *eq = strchr(tok, '=');
		if (eq)
			*eq = '\0';
		long kl = pct_decode(tok, true);
		long vl = eq ? pct_decode(eq + 1, true) : 0;
		if (kl < 0 || vl < 0 || (long)strlen(tok) != kl ||
		    (eq && (long)strlen(eq + 1) != vl))
			return false; /* bad escape or NUL byte */
		ps->p[ps->n].key = tok;
		ps->p[ps->n].value = eq ? eq + 1 : NULL;
		ps->n++;
	}
	return true;
}

static void params_free(params_t *ps)
{
	free(ps->buf);
	ps->buf = NULL;
}

static const param_t *param_get(const params_t *ps, const char *key)
{
	for (unsigned i = 0; i < ps->n; i++) {
		if (strcmp(ps->p[i].key, key) == 0)
			return &ps->p[i];
	}
	return NULL;
}

/* Handle.Net booleans: present without a value, "true" or "yes". */
static bool param_bool(const params_t *ps, const char *key, bool dflt)
{
	const param_t *p = param_get(ps, key);
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

static bool filters_parse(const params_t *ps, filters_t *f)
{
	f->n_idx = f->n_types = 0;
	for (unsigned i = 0; i < ps->n; i++) {
		const param_t *p = &ps->p[i];
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

/* HTTP status for a response code (handle-protocol.md §13.3). */
static int status_for(uint32_t rc, bool resolution)
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
	case 204: return "No Content";
	case 300: return "Multiple Choices";
	case 302: return "Found";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	default: return "Internal Server Error";
	}
}

static void send_body(struct evhttp_request *req, int status, const char *ctype, const void *body,
                      size_t len)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct evbuffer *b = evbuffer_new();
	if (!b) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	if (ctype)
		evhttp_add_header(h, "Content-Type", ctype);
	if (len && evhttp_request_get_command(req) != EVHTTP_REQ_HEAD)
		evbuffer_add(b, body, len);
	evhttp_send_reply(req, status, reason_for(status), b);
	evbuffer_free(b);
}

static void send_json(struct evhttp_request *req, int status, json_t *j, bool pretty)
{
	char *s = j ? json_dumps(j, pretty ? JSON_INDENT(2) : JSON_COMPACT) : NULL;
	if (!s) {
		send_body(req, 500, JSON_MIME, "{\"responseCode\":2}", 18);
	} else {
		size_t n = strlen(s);
		send_body(req, status, JSON_MIME, s, n);
	}
	free(s);
	json_decref(j);
}

static void send_json_error(struct evhttp_request *req, int status, uint32_t rc,
                            const char *message, const char *handle, bool pretty)
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
	send_json(req, status, j, pretty);
}

/* ---- native tunnel ---------------------------------------------------------------------- */

static void do_native(worker_t *w, struct evhttp_request *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	const uint8_t *p = len ? evbuffer_pullup(in, -1) : NULL;
	if (p && len && (p[0] == '\r' || p[0] == '\n')) {
		size_t skip = (len >= 2 && p[0] == '\r' && p[1] == '\n') ? 2 : 1;
		p += skip;
		len -= skip;
	}
	size_t n = 0;
	if (p && len >= HDL_ENVELOPE_LEN)
		dispatch_message(&w->dctx, p, len, w->out, DISPATCH_OUT_CAP, &n);
	if (n == 0) {
		log_peer(LOG_LVL_INFO, "http: native request of %zu bytes not answerable", len);
		send_body(req, 400, "text/plain", "not a Handle request\n", 21);
		return;
	}
	send_body(req, 200, HDL_MIME, w->out, n);
}

/* ---- resolution into decoded values ------------------------------------------------------ */

/*
 * Resolve and decode the selected values into the worker arena. On success *vals and *n are valid
 * until the next request on this worker.
 */
static int resolve_values(worker_t *w, const char *handle, const filters_t *f, uint32_t *rcode,
                          const char **msg, hdl_value_t **vals, uint32_t *n)
{
	dispatch_sel_t sel;
	*vals = NULL;
	*n = 0;
	int ret = dispatch_begin(&w->dctx);
	if (ret != HDL_EOK) {
		*rcode = HDL_RC_SERVER_TOO_BUSY;
		*msg = "store unavailable";
		return HDL_EOK;
	}
	ret = dispatch_resolve(&w->dctx, hdl_slice_str(handle), f->idx, f->n_idx, f->types,
	                       f->n_types, true, &sel);
	if (ret != HDL_EOK)
		goto out;
	*rcode = sel.rcode;
	*msg = sel.message;
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

/* ---- REST API -------------------------------------------------------------------------------- */

static void do_rest_handle(worker_t *w, struct evhttp_request *req, const char *handle,
                           const params_t *ps)
{
	bool pretty = param_bool(ps, "pretty", false);
	filters_t f;
	if (!filters_parse(ps, &f)) {
		send_json_error(req, 400, HDL_RC_PROTOCOL_ERROR, "Invalid type or index parameter",
		                handle, pretty);
		return;
	}
	/* publicOnly: without authentication only public values are ever returned */
	(void)param_bool(ps, "publicOnly", true);
	uint32_t rc = HDL_RC_ERROR, n = 0;
	const char *msg = NULL;
	hdl_value_t *vals = NULL;
	if (resolve_values(w, handle, &f, &rc, &msg, &vals, &n) != HDL_EOK) {
		send_json_error(req, 503, HDL_RC_SERVER_TOO_BUSY, "out of memory", handle, pretty);
		return;
	}
	if (rc != HDL_RC_SUCCESS && rc != HDL_RC_VALUES_NOT_FOUND) {
		send_json_error(req, status_for(rc, true), rc, msg, handle, pretty);
		return;
	}
	json_t *j = json_object();
	json_t *hs = json_string(handle);
	json_t *jv = rc == HDL_RC_SUCCESS ? hdl_json_from_values(vals, n) : json_array();
	if (!j || !hs || !jv) {
		json_decref(j);
		json_decref(hs);
		json_decref(jv);
		send_json_error(req, 500, HDL_RC_ERROR, "cannot format values", NULL, pretty);
		return;
	}
	json_object_set_new(j, "responseCode", json_integer(rc));
	json_object_set_new(j, "handle", hs);
	json_object_set_new(j, "values", jv);
	send_json(req, 200, j, pretty);
}

static void do_rest_site(worker_t *w, struct evhttp_request *req, const params_t *ps)
{
	bool pretty = param_bool(ps, "pretty", false);
	json_t *j = json_object();
	json_t *site = hdl_json_from_site(&w->node->site_info);
	if (!j || !site) {
		json_decref(j);
		json_decref(site);
		send_json_error(req, 500, HDL_RC_ERROR, "cannot format site", NULL, pretty);
		return;
	}
	json_object_set_new(j, "responseCode", json_integer(HDL_RC_SUCCESS));
	json_object_set_new(j, "site", site);
	send_json(req, 200, j, pretty);
}

/* ---- proxy ----------------------------------------------------------------------------------- */

static void html_escape(struct evbuffer *b, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		switch (p[i]) {
		case '&': evbuffer_add(b, "&amp;", 5); break;
		case '<': evbuffer_add(b, "&lt;", 4); break;
		case '>': evbuffer_add(b, "&gt;", 4); break;
		case '"': evbuffer_add(b, "&quot;", 6); break;
		case '\'': evbuffer_add(b, "&#39;", 5); break;
		default:
			if (p[i] < 0x20 && p[i] != '\t' && p[i] != '\n')
				evbuffer_add_printf(b, "&#%u;", 0x2400u + p[i]); /* control picture */
			else
				evbuffer_add(b, p + i, 1);
		}
	}
}

static void html_escape_str(struct evbuffer *b, const char *s)
{
	html_escape(b, (const uint8_t *)s, strlen(s));
}

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

static void send_html(struct evhttp_request *req, int status, struct evbuffer *b)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Content-Type", HTML_MIME);
	if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD)
		evbuffer_drain(b, evbuffer_get_length(b));
	evhttp_send_reply(req, status, reason_for(status), b);
}

static void html_head(struct evbuffer *b, const char *title)
{
	evbuffer_add_printf(b, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>");
	html_escape_str(b, title);
	evbuffer_add_printf(b, "</title></head>\n<body>\n");
}

static void values_page(struct evhttp_request *req, const char *handle, const hdl_value_t *v,
                        uint32_t n)
{
	struct evbuffer *b = evbuffer_new();
	if (!b) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	html_head(b, handle);
	evbuffer_add_printf(b, "<h1>Handle Values for: ");
	html_escape_str(b, handle);
	evbuffer_add_printf(b, "</h1>\n<table border=\"1\">\n"
	                       "<tr><th>Index</th><th>Type</th><th>Timestamp</th><th>Data</th></tr>\n");
	for (uint32_t i = 0; i < n; i++) {
		char ts[21];
		hdl_json_time(v[i].timestamp, ts);
		evbuffer_add_printf(b, "<tr><td>%u</td><td>", v[i].index);
		html_escape(b, v[i].type.p, v[i].type.len);
		evbuffer_add_printf(b, "</td><td>%s</td><td>", v[i].timestamp ? ts : "");
		if (printable_text(v[i].data)) {
			html_escape(b, v[i].data.p, v[i].data.len);
		} else {
			evbuffer_add_printf(b, "<code>");
			for (uint32_t k = 0; k < v[i].data.len && k < 1024; k++)
				evbuffer_add_printf(b, "%02x", v[i].data.p[k]);
			evbuffer_add_printf(b, "%s</code>", v[i].data.len > 1024 ? "&hellip;" : "");
		}
		evbuffer_add_printf(b, "</td></tr>\n");
	}
	evbuffer_add_printf(b, "</table>\n</body></html>\n");
	send_html(req, 200, b);
	evbuffer_free(b);
}

static void error_page(struct evhttp_request *req, int status, const char *handle,
                       const char *msg)
{
	struct evbuffer *b = evbuffer_new();
	if (!b) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	html_head(b, reason_for(status));
	evbuffer_add_printf(b, "<h1>%d %s</h1>\n<p>", status, reason_for(status));
	html_escape_str(b, handle);
	evbuffer_add_printf(b, ": ");
	html_escape_str(b, msg ? msg : "");
	evbuffer_add_printf(b, "</p>\n</body></html>\n");
	send_html(req, status, b);
	evbuffer_free(b);
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

static void do_proxy(worker_t *w, struct evhttp_request *req, const char *handle,
                     const params_t *ps)
{
	if (!*handle) {
		struct evbuffer *b = evbuffer_new();
		if (!b) {
			evhttp_send_error(req, 500, NULL);
			return;
		}
		html_head(b, "idnode");
		evbuffer_add_printf(b, "<h1>idnode</h1>\n<p>Resolve a handle: "
		                       "<code>/&lt;prefix&gt;/&lt;suffix&gt;</code>, "
		                       "REST API at <code>/api/handles/&lt;handle&gt;</code>.</p>\n"
		                       "</body></html>\n");
		send_html(req, 200, b);
		evbuffer_free(b);
		return;
	}
	filters_t f;
	if (!filters_parse(ps, &f)) {
		error_page(req, 400, handle, "Invalid type or index parameter");
		return;
	}
	bool show = param_bool(ps, "noredirect", false);
	const param_t *action = param_get(ps, "action");
	if (action && action->value && strcmp(action->value, "showvalues") == 0)
		show = true;
	uint32_t rc = HDL_RC_ERROR, n = 0;
	const char *msg = NULL;
	hdl_value_t *vals = NULL;
	if (resolve_values(w, handle, &f, &rc, &msg, &vals, &n) != HDL_EOK) {
		error_page(req, 503, handle, "out of memory");
		return;
	}
	if (rc == HDL_RC_VALUES_NOT_FOUND) {
		values_page(req, handle, NULL, 0);
		return;
	}
	if (rc != HDL_RC_SUCCESS) {
		int st = rc == HDL_RC_SERVER_NOT_RESP ? 404 : status_for(rc, true);
		error_page(req, st, handle, msg);
		return;
	}
	const hdl_value_t *url = show ? NULL : pick_url(vals, n);
	if (!url) {
		values_page(req, handle, vals, n);
		return;
	}
	char *loc = malloc(url->data.len + 1);
	struct evbuffer *b = evbuffer_new();
	if (!loc || !b) {
		free(loc);
		if (b)
			evbuffer_free(b);
		evhttp_send_error(req, 500, NULL);
		return;
	}
	memcpy(loc, url->data.p, url->data.len);
	loc[url->data.len] = '\0';
	evhttp_add_header(evhttp_request_get_output_headers(req), "Location", loc);
	html_head(b, "Handle Redirect");
	evbuffer_add_printf(b, "<a href=\"");
	html_escape_str(b, loc);
	evbuffer_add_printf(b, "\">");
	html_escape_str(b, loc);
	evbuffer_add_printf(b, "</a>\n</body></html>\n");
	send_html(req, 302, b);
	evbuffer_free(b);
	free(loc);
}

/* ---- routing ------------------------------------------------------------------------------- */

static bool header_has(struct evkeyvalq *h, const char *name, const char *needle)
{
	const char *v = evhttp_find_header(h, name);
	return v && strcasestr(v, needle) != NULL;
}

static void on_request(struct evhttp_request *req, void *arg)
{
	worker_t *w = arg;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	struct evkeyvalq *hin = evhttp_request_get_input_headers(req);
	struct evkeyvalq *hout = evhttp_request_get_output_headers(req);
	const char *uri = evhttp_request_get_uri(req);
	params_t ps = {0};
	char *path = NULL;

	evhttp_add_header(hout, "Access-Control-Allow-Origin", "*");
	if (w->stopping)
		evhttp_add_header(hout, "Connection", "close");

	if (cmd == EVHTTP_REQ_POST && header_has(hin, "Content-Type", HDL_MIME)) {
		do_native(w, req);
		return;
	}
	if (cmd == EVHTTP_REQ_OPTIONS) {
		evhttp_add_header(hout, "Access-Control-Allow-Methods",
		                  "GET, HEAD, POST, PUT, DELETE, OPTIONS");
		evhttp_add_header(hout, "Access-Control-Allow-Headers",
		                  "Authorization, Content-Type");
		send_body(req, 204, NULL, NULL, 0);
		return;
	}
	if (!uri || uri[0] != '/' || strlen(uri) > MAX_URI) {
		send_body(req, 400, "text/plain", "bad request\n", 12);
		return;
	}
	const char *q = strchr(uri, '?');
	size_t plen = q ? (size_t)(q - uri) : strlen(uri);
	path = malloc(plen + 1);
	if (!path) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	memcpy(path, uri, plen);
	path[plen] = '\0';
	/* drop a fragment */
	char *hash = strchr(path, '#');
	if (hash)
		*hash = '\0';
	long dl = pct_decode(path, false);
	if (dl < 0 || (size_t)dl != strlen(path) || !params_parse(&ps, q ? q + 1 : NULL)) {
		bool api = strncmp(uri, "/api/", 5) == 0;
		if (api)
			send_json_error(req, 400, HDL_RC_PROTOCOL_ERROR, "Invalid request URI", NULL,
			                false);
		else
			send_body(req, 400, "text/plain", "bad request\n", 12);
		goto out;
	}
	bool get = cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD;
	bool pretty = param_bool(&ps, "pretty", false);

	if (strncmp(path, "/api/handles/", 13) == 0 && path[13]) {
		if (get)
			do_rest_handle(w, req, path + 13, &ps);
		else
			send_json_error(req, 501, HDL_RC_OPERATION_NOT_SUPPORTED, "not supported yet",
			                path + 13, pretty);
	} else if (strcmp(path, "/api/handles") == 0 || strcmp(path, "/api/handles/") == 0) {
		send_json_error(req, 501, HDL_RC_OPERATION_NOT_SUPPORTED, "not supported yet", NULL,
		                pretty);
	} else if (strcmp(path, "/api/site") == 0 && get) {
		do_rest_site(w, req, &ps);
	} else if (strcmp(path, "/api") == 0 || strncmp(path, "/api/", 5) == 0) {
		evhttp_add_header(hout, "Allow", "GET, HEAD");
		send_json_error(req, 405, HDL_RC_ERROR, "Method not allowed", NULL, pretty);
	} else if (get) {
		do_proxy(w, req, path + 1, &ps);
	} else {
		evhttp_add_header(hout, "Allow", "GET, HEAD, POST");
		send_body(req, 405, "text/plain", "method not allowed\n", 19);
	}
out:
	params_free(&ps);
	free(path);
}

void http_apply_limits(worker_t *w)
{
	if (!w->http)
		return;
	uint32_t ms = NODE_LIMIT(&w->node->limits, tcp_idle_timeout_ms);
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
	evhttp_set_timeout_tv(w->http, &tv);
	evhttp_set_max_body_size(w->http, (ev_ssize_t)NODE_LIMIT(&w->node->limits, http_max_body));
}

int http_start(worker_t *w)
{
	if (w->fds.n_http == 0)
		return HDL_EOK;
	w->http = evhttp_new(w->base);
	w->http_bound = calloc(w->fds.n_http, sizeof(*w->http_bound));
	if (!w->http || !w->http_bound)
		return HDL_ENOMEM;
	evhttp_set_gencb(w->http, on_request, w);
	evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
	                                        EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
	                                        EVHTTP_REQ_OPTIONS);
	evhttp_set_max_headers_size(w->http, 16384);
	evhttp_set_default_content_type(w->http, "text/plain");
	http_apply_limits(w);
	for (unsigned i = 0; i < w->fds.n_http; i++) {
		w->http_bound[i] = evhttp_accept_socket_with_handle(w->http, w->fds.http[i]);
		if (!w->http_bound[i])
			return HDL_ENOMEM;
		w->fds.http[i] = -1; /* owned by evhttp now */
		struct evconnlistener *l = evhttp_bound_socket_get_listener(w->http_bound[i]);
		if (l)
			evconnlistener_set_error_cb(l, tcp_accept_error);
	}
	return HDL_EOK;
}

void http_stop(worker_t *w)
{
	if (!w->http || !w->http_bound)
		return;
	for (unsigned i = 0; i < w->fds.n_http; i++) {
		if (w->http_bound[i]) {
			evhttp_del_accept_socket(w->http, w->http_bound[i]);
			w->http_bound[i] = NULL;
		}
	}
}

void http_free(worker_t *w)
{
	http_stop(w);
	if (w->http)
		evhttp_free(w->http);
	w->http = NULL;
	free(w->http_bound);
	w->http_bound = NULL;
}
