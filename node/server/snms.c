/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief The SNMS-compatible API (snms.h, docs/snms-api.md): routing, the token endpoint, the
 *        SNMS request shapes mapped to writer jobs and back to per-item results, identifier
 *        detail and templates read from a snapshot.
 *
 * HTTP output is written here with a small writer of its own (the rest of http.c's
 * routing is not needed: one hook routes SNMS paths here).
 */
#include "node/server/rest.h"
#include "node/server/snms.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "hdl/error.h"
#include "hdl/values.h"
#include "node/common/log.h"
#include "node/conf/conf.h"
#include "node/server/admin.h"
#include "node/server/conn.h"
#include "node/server/http.h"
#include "node/server/preq.h"
#include "node/server/reload.h"
#include "node/server/worker.h"
#include "node/store/store.h"
#include "node/store/template.h"
#include "proto/json.h"

#define JSON_MIME       "application/json;charset=UTF-8"
#define ARENA_FIRST     16384u
#define SNMS_HANDLE_MAX 255u /**< bytes of a handle in the SNMS API */
#define PARAM_MAX       512u /**< bytes of a decoded query parameter */
#define MSG_EXISTS      "标识已存在"
#define MSG_NOT_FOUND   "标识不存在"
#define MSG_LOGIN       "用户名/密码错误"
#define DEFAULT_TTL     86400u

/** SNMS endpoints. */
enum ep {
	EP_TOKEN = 1,
	EP_TOKEN_V1,
	EP_DATA,
	EP_DETAIL,
	EP_BATCH_CREATE,
	EP_BATCH_UPDATE,
	EP_BATCH_DELETE,
	EP_TEMPLATE,
	EP_UNKNOWN,
};

/** What a response needs of its request. */
typedef struct rqx {
	conn_t *c;
	bool close;
	uint8_t minor;
} rqx_t;

/** Kinds of item of a request that waits for the writer. */
enum item_kind { K_CREATE = 1, K_UPDATE, K_DELETE, K_TPL_POST, K_TPL_PUT, K_TPL_DEL };

/** One item of a request that waits: either refused before the writer, or a job. */
typedef struct item {
	const char *handle; /**< as given (NUL-terminated, in the arena); "" when none */
	int status;         /**< a refusal before the writer (0: see \p job) */
	const char *msg;    /**< its message */
	wr_job_t *job;      /**< the job (NULL: refused before the writer) */
} item_t;

/** A request that waits for its jobs. */
typedef struct op {
	preq_t *p;
	bool batch; /**< per-item results; else one status */
	int kind;   /**< enum item_kind */
	uint32_t n;
	item_t *items;
	_Atomic unsigned left; /**< jobs not finished yet */
	bool close;
	uint8_t minor;
} op_t;

_Static_assert(sizeof(op_t *) <= sizeof(((preq_t *)0)->tpriv), "preq tpriv too small");

/* ---- state --------------------------------------------------------------------------------- */

static void users_free(void *p)
{
	snms_users_t *set = p;
	if (set == NULL)
		return;
	for (uint32_t i = 0; i < set->n; i++)
		snms_user_clear(&set->u[i]);
	free(set->u);
	free(set->uid);
	free(set);
}

/** The users of the `snms_user` lines of \p c (ids not set yet). \retval HDL_EOK, HDL_ECONF,
 *  HDL_ENOMEM (\p err says why) */
static int users_build(const conf_t *c, snms_users_t **out, char *err, size_t errlen)
{
	*out = NULL;
	snms_users_t *set = calloc(1, sizeof(*set));
	int ret = set ? HDL_EOK : HDL_ENOMEM;
	if (ret == HDL_EOK && c->n_snms_user) {
		set->u = calloc(c->n_snms_user, sizeof(*set->u));
		set->uid = calloc(c->n_snms_user, sizeof(*set->uid));
		ret = set->u && set->uid ? HDL_EOK : HDL_ENOMEM;
	}
	for (unsigned i = 0; ret == HDL_EOK && i < c->n_snms_user; i++) {
		char why[128];
		ret = snms_user_parse(c->snms_user[i], &set->u[i], why, sizeof(why));
		if (ret == HDL_EINVAL) {
			snprintf(err, errlen, "snms_user: %s", why);
			ret = HDL_ECONF;
		}
		if (ret == HDL_EOK)
			set->n = i + 1;
		for (uint32_t k = 0; ret == HDL_EOK && k < i; k++) {
			if (strcmp(set->u[k].name, set->u[i].name) == 0) {
				snprintf(err, errlen, "snms_user: %s is given twice",
				         set->u[i].name);
				ret = HDL_ECONF;
			}
		}
	}
	if (ret != HDL_EOK) {
		if (ret == HDL_ENOMEM)
			snprintf(err, errlen, "out of memory");
		users_free(set);
		return ret;
	}
	*out = set;
	return HDL_EOK;
}

const snms_user_t *snms_user_by_uid(const snms_users_t *set, uint32_t uid)
{
	for (uint32_t i = 0; set != NULL && i < set->n; i++) {
		if (set->uid[i] == uid)
			return &set->u[i];
	}
	return NULL;
}

int snms_new(const conf_t *c, snms_t **out, char *err, size_t errlen)
{
	*out = NULL;
	snms_t *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return HDL_ENOMEM;
	s->token_ttl_ms = (uint64_t)(c->snms_token_ttl_s ? c->snms_token_ttl_s : 86400u) * 1000u;
	s->batch_max = c->snms_batch_max ? c->snms_batch_max : 2000u;
	s->max_body = c->snms_max_body ? c->snms_max_body : (4u << 20);
	snms_bucket_init(&s->login, c->snms_login_rate, c->snms_login_burst, worker_now_ms());
	snms_users_t *set = NULL;
	int ret =
	    snms_tokens_new(c->snms_token_max ? c->snms_token_max : 10000u,
	                    c->snms_tokens_per_user ? c->snms_tokens_per_user : 16u, &s->tokens);
	if (ret == HDL_EOK)
		ret = users_build(c, &set, err, errlen);
	else
		snprintf(err, errlen, "out of memory");
	if (ret != HDL_EOK) {
		snms_free(s);
		return ret;
	}
	for (uint32_t i = 0; i < set->n; i++)
		set->uid[i] = ++s->next_uid;
	atomic_store(&s->users, set);
	*out = s;
	return HDL_EOK;
}

void snms_free(snms_t *s)
{
	if (s == NULL)
		return;
	if (s->n_requests)
		log_info("snms: %llu requests, %llu items, %llu logins, %llu failed",
		         (unsigned long long)s->n_requests, (unsigned long long)s->n_items,
		         (unsigned long long)s->n_logins, (unsigned long long)s->n_login_failed);
	users_free(atomic_exchange(&s->users, NULL));
	snms_tokens_free(s->tokens);
	snms_bucket_destroy(&s->login);
	free(s);
}

/* ---- reload of the users ------------------------------------------------------------------- */

static int users_prepare(void *arg, const conf_t *old, const conf_t *nc, void **staged, char *err,
                         size_t errlen)
{
	(void)arg;
	(void)old;
	snms_users_t *set = NULL;
	int ret = users_build(nc, &set, err, errlen);
	if (ret == HDL_EOK)
		*staged = set;
	return ret;
}

/** The same user: name, password hash (iterations, salt, key) and identity. */
static bool user_same(const snms_user_t *a, const snms_user_t *b)
{
	return strcmp(a->name, b->name) == 0 && a->iterations == b->iterations &&
	       memcmp(a->salt, b->salt, sizeof(a->salt)) == 0 &&
	       memcmp(a->key, b->key, sizeof(a->key)) == 0 && a->id_index == b->id_index &&
	       strcmp(a->id_handle, b->id_handle) == 0;
}

static bool uid_kept(void *arg, uint32_t uid)
{
	return snms_user_by_uid(arg, uid) != NULL;
}

static void users_commit(void *arg, const conf_t *nc, void *staged)
{
	snms_t *s = arg;
	snms_users_t *set = staged;
	(void)nc;
	if (set == NULL)
		return;
	/* the main thread is the only writer: reading the current set here is safe */
	snms_users_t *cur = atomic_load(&s->users);
	unsigned kept = 0;
	for (uint32_t i = 0; i < set->n; i++) {
		set->uid[i] = 0;
		for (uint32_t k = 0; cur != NULL && k < cur->n && set->uid[i] == 0; k++) {
			if (user_same(&set->u[i], &cur->u[k]))
				set->uid[i] = cur->uid[k];
		}
		if (set->uid[i] == 0)
			set->uid[i] = ++s->next_uid;
		else
			kept++;
	}
	/* first the new set (a token whose user is gone finds no user), then the tokens */
	snms_users_t *old = atomic_exchange(&s->users, set);
	unsigned revoked = snms_tokens_revoke(s->tokens, uid_kept, set);
	log_info("snms: %u user(s), %u unchanged; %u token(s) of removed or changed users revoked",
	         set->n, kept, revoked);
	reload_retire(s->reload, old, users_free);
}

static void users_discard(void *arg, void *staged)
{
	(void)arg;
	users_free(staged);
}

int snms_register_reload(snms_t *s, reload_t *r)
{
	static const char *const keys[] = {"snms_user", NULL};
	if (s == NULL)
		return HDL_EOK;
	s->reload = r;
	reload_hook_t h = {.name = "snms users",
	                   .order = RELOAD_ORDER_DEFAULT,
	                   .keys = keys,
	                   .prepare = users_prepare,
	                   .commit = users_commit,
	                   .discard = users_discard,
	                   .arg = s};
	return reload_register(r, &h);
}

int snms_status_of(uint32_t rcode)
{
	switch (rcode) {
	case HDL_RC_SUCCESS: return SNMS_OK;
	case HDL_RC_ERROR:
	case HDL_RC_SERVER_TOO_BUSY:
	case HDL_RC_SERVER_BACKUP: return SNMS_INTERNAL;
	case HDL_RC_INVALID_ADMIN:
	case HDL_RC_INSUFFICIENT_PERMISSIONS:
	case HDL_RC_AUTHENTICATION_NEEDED:
	case HDL_RC_AUTHENTICATION_FAILED:
	case HDL_RC_INVALID_CREDENTIAL:
	case HDL_RC_AUTHEN_TIMEOUT:
	case HDL_RC_AUTHEN_ERROR: return SNMS_NO_PERM;
	default: return SNMS_REFUSED;
	}
}

/* ---- output -------------------------------------------------------------------------------- */

/** A JSON string of the longest valid UTF-8 prefix of \p s (messages cut at a byte limit). */
static json_t *jtext(const char *s)
{
	size_t n = strlen(s);
	while (n > 0 && !hdl_utf8_valid((const uint8_t *)s, n))
		n--;
	return json_stringn(s, n);
}

static const char *reason(int http)
{
	switch (http) {
	case 200: return "OK";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 413: return "Payload Too Large";
	case 429: return "Too Many Requests";
	case 503: return "Service Unavailable";
	default: return "Internal Server Error";
	}
}

/** Write the HTTP answer with the JSON \p j (stolen). */
static void send_json(rqx_t *r, int http, json_t *j)
{
	char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	static const char fallback[] =
	    "{\"message\":\"out of memory\",\"status\":-4,\"data\":null}";
	const char *b = body ? body : fallback;
	hdl_buf_t *o = conn_out(r->c);
	char head[128];
	int n = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\n", body ? http : 500,
	                 reason(body ? http : 500));
	hdl_buf_put(o, head, (size_t)n);
	hdl_buf_puts(o, "Access-Control-Allow-Origin: *\r\nContent-Type: " JSON_MIME
	                "\r\nContent-Length: ");
	hdl_buf_putu(o, strlen(b));
	hdl_buf_puts(o, "\r\n");
	if (r->close || r->c->w->stopping) {
		hdl_buf_puts(o, "Connection: close\r\n");
		r->close = true;
		if (!r->c->blocked)
			r->c->closing = true;
	} else if (r->minor == 0) {
		hdl_buf_puts(o, "Connection: keep-alive\r\n");
	}
	hdl_buf_puts(o, "\r\n");
	hdl_buf_puts(o, b);
	free(body);
}

/** {"message", "status", "data"} with \p data stolen (NULL: null). */
static void answer(rqx_t *r, int http, int status, const char *message, json_t *data)
{
	json_t *j = json_object();
	if (j) {
		json_object_set_new(j, "message", jtext(message ? message : ""));
		json_object_set_new(j, "status", json_integer(status));
		json_object_set_new(j, "data", data ? data : json_null());
	} else {
		json_decref(data);
	}
	send_json(r, http, j);
}

/* ---- request pieces ------------------------------------------------------------------------- */

static enum ep endpoint(const char *path, size_t n)
{
	static const struct {
		const char *p;
		enum ep e;
	} map[] = {
	    {"/identity/token", EP_TOKEN},
	    {"/identity/token/v1", EP_TOKEN_V1},
	    {"/identityv2/data", EP_DATA},
	    {"/identityv2/data/detail", EP_DETAIL},
	    {"/identityv2/data/batchCreate", EP_BATCH_CREATE},
	    {"/identityv2/data/batchUpdate", EP_BATCH_UPDATE},
	    {"/identityv2/data/batchDelete", EP_BATCH_DELETE},
	    {"/snms/api/v5/template", EP_TEMPLATE},
	};
	if (n > 0 && path[n - 1] == '/')
		n--;
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		if (strlen(map[i].p) == n && memcmp(map[i].p, path, n) == 0)
			return map[i].e;
	}
	/* the rest of these trees is ours too: unknown SNMS paths are answered here */
	static const char *const ours[] = {"/identity/", "/identityv2/", "/snms/"};
	for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++) {
		size_t k = strlen(ours[i]);
		if (n >= k - 1 && memcmp(path, ours[i], k - 1) == 0 &&
		    (n == k - 1 || path[k - 1] == '/'))
			return EP_UNKNOWN;
	}
	return 0;
}

static int hexdigit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

long snms_query_param(const char *q, size_t qn, const char *key, char *out, size_t cap)
{
	size_t kl = strlen(key), i = 0;
	while (i < qn) {
		size_t e = i;
		while (e < qn && q[e] != '&')
			e++;
		if (e - i > kl && memcmp(q + i, key, kl) == 0 && q[i + kl] == '=') {
			size_t o = 0;
			for (size_t k = i + kl + 1; k < e; k++) {
				int ch = (unsigned char)q[k];
				if (ch == '%') {
					int h = k + 2 < e ? hexdigit(q[k + 1]) : -1;
					int l = h >= 0 ? hexdigit(q[k + 2]) : -1;
					if (l < 0)
						return -2;
					ch = h * 16 + l;
					k += 2;
				} else if (ch == '+') {
					ch = ' ';
				}
				if (ch == 0 || o + 1 >= cap)
					return -2;
				out[o++] = (char)ch;
			}
			out[o] = '\0';
			return (long)o;
		}
		i = e + 1;
	}
	return -1;
}

bool snms_bearer(const http_req_t *req, const char **tok, size_t *len)
{
	/* the header lines end where the body starts (leading empty lines are skipped by the
	 * parser, so header_len counts from before method_s) */
	const char *p = req->method_s.p, *end = (const char *)req->body;
	if (end == NULL || end < p)
		return false;
	static const char name[] = "authorization:";
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		if ((size_t)(le - p) > sizeof(name) - 1 &&
		    strncasecmp(p, name, sizeof(name) - 1) == 0) {
			const char *v = p + sizeof(name) - 1;
			while (v < le && (*v == ' ' || *v == '\t'))
				v++;
			const char *ve = le;
			while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			if (ve - v > 7 && strncasecmp(v, "Bearer ", 7) == 0) {
				v += 7;
				while (v < ve && *v == ' ')
					v++;
				*tok = v;
				*len = (size_t)(ve - v);
				return true;
			}
			return false;
		}
		p = le + 1;
	}
	return false;
}

static json_t *body_json(const http_req_t *req)
{
	if (req->content_length == 0)
		return NULL;
	return json_loadb((const char *)req->body, (size_t)req->content_length,
	                  JSON_REJECT_DUPLICATES, NULL);
}

/** A string member of \p o, or NULL. */
static const char *member(const json_t *o, const char *key, size_t *len)
{
	const json_t *v = json_object_get(o, key);
	if (!json_is_string(v))
		return NULL;
	*len = json_string_length(v);
	return json_string_value(v);
}

/** A handle the SNMS API may write: PREFIX/SUFFIX, at most 255 bytes, a valid name. */
static bool handle_ok(const char *h, size_t n)
{
	if (n == 0 || n > SNMS_HANDLE_MAX || strlen(h) != n ||
	    hdl_name_check((const uint8_t *)h, n) != HDL_EOK)
		return false;
	const char *slash = memchr(h, '/', n);
	return slash != NULL && slash != h && (size_t)(slash - h) + 1 < n &&
	       !hdl_slice_eq_nocase((hdl_slice_t){(const uint8_t *)h, (uint32_t)(slash - h)},
	                            hdl_slice_str("0.NA"));
}

/* ---- login --------------------------------------------------------------------------------- */

static void do_token(worker_t *w, rqx_t *r, const http_req_t *req, bool v1)
{
	snms_t *s = w->node->snms;
	if (v1) {
		answer(r, 200, SNMS_REFUSED,
		       "/identity/token/v1 is not supported (passwords are kept salted): use "
		       "/identity/token over HTTPS",
		       NULL);
		return;
	}
	json_t *j = body_json(req);
	size_t ul = 0, pl = 0;
	const char *user = json_is_object(j) ? member(j, "username", &ul) : NULL;
	const char *pw = json_is_object(j) ? member(j, "password", &pl) : NULL;
	if (user == NULL || pw == NULL || ul == 0 || pl == 0) {
		json_decref(j);
		answer(r, 200, SNMS_REFUSED, "username and password are required", NULL);
		return;
	}
	if (!snms_bucket_take(&s->login, worker_now_ms())) {
		json_decref(j);
		log_peer(LOG_LVL_NOTICE, "snms: login rate limit reached, refusing a login");
		answer(r, 429, SNMS_REFUSED, "too many logins, try again later", NULL);
		return;
	}
	/* the set of this callback (a reload retires the old one only after it: reload.h) */
	const snms_users_t *set = atomic_load_explicit(&s->users, memory_order_acquire);
	const snms_user_t *u = NULL;
	uint32_t ui = 0;
	for (uint32_t i = 0; set != NULL && i < set->n && u == NULL; i++) {
		if (strlen(set->u[i].name) == ul && memcmp(set->u[i].name, user, ul) == 0) {
			u = &set->u[i];
			ui = set->uid[i];
		}
	}
	bool ok = false;
	if (u != NULL) {
		ok = snms_password_ok(u, pw, pl);
	} else if (set != NULL && set->n > 0) {
		(void)snms_password_ok(&set->u[0], pw, pl); /* the same time as a wrong password */
	}
	json_decref(j);
	if (!ok) {
		s->n_login_failed++;
		log_peer(LOG_LVL_NOTICE, "snms: failed login of %s",
		         u ? u->name : "an unknown user");
		answer(r, 200, SNMS_REFUSED, MSG_LOGIN, NULL);
		return;
	}
	char tok[SNMS_TOKEN_LEN + 1];
	int ret = snms_token_issue(s->tokens, ui, worker_now_ms(), s->token_ttl_ms, tok);
	if (ret != HDL_EOK) {
		log_peer(LOG_LVL_WARN, "snms: cannot issue a token: %s", hdl_strerror(ret));
		answer(r, 200, SNMS_INTERNAL,
		       ret == HDL_ELIMIT ? "too many sessions" : "cannot issue a token", NULL);
		return;
	}
	s->n_logins++;
	json_t *data = json_object();
	if (data)
		json_object_set_new(data, "token", json_string(tok));
	answer(r, 200, SNMS_OK, "success", data);
}

/* ---- reads ---------------------------------------------------------------------------------- */

static void do_detail(worker_t *w, rqx_t *r, const char *q, size_t qn)
{
	char h[PARAM_MAX];
	long hl = snms_query_param(q, qn, "handle", h, sizeof(h));
	if (hl < 0 || !handle_ok(h, (size_t)hl)) {
		answer(r, 200, SNMS_REFUSED,
		       hl == -1 ? "missing request parameter: handle" : "invalid handle", NULL);
		return;
	}
	if (dispatch_begin(&w->dctx) != HDL_EOK) {
		answer(r, 200, SNMS_INTERNAL, "store unavailable", NULL);
		return;
	}
	hdl_value_t *v = NULL;
	uint32_t n = 0;
	int ret = store_get_values(w->dctx.reader, hdl_slice_str(h), &w->dctx.arena, &v, &n);
	if (ret != HDL_EOK) {
		dispatch_end(&w->dctx);
		answer(r, 200, ret == HDL_ENOENT ? SNMS_REFUSED : SNMS_INTERNAL,
		       ret == HDL_ENOENT ? MSG_NOT_FOUND : "store error", NULL);
		return;
	}
	json_t *data = json_object(), *vals = json_array();
	const char *slash = strchr(h, '/');
	json_t *version = json_string("");
	bool bad = data == NULL || vals == NULL;
	for (uint32_t i = 0; i < n && !bad; i++) {
		if (!(v[i].perms & HDL_PERM_PUBLIC_READ))
			continue; /* the SNMS API reads what anybody may read */
		if (v[i].index == TPL_INDEX_REF &&
		    hdl_slice_eq_nocase(v[i].type, hdl_slice_str("TEMPLATE")) &&
		    hdl_utf8_valid(v[i].data.p, v[i].data.len)) {
			json_decref(version);
			version = json_stringn((const char *)v[i].data.p, v[i].data.len);
		}
		json_t *jv = hdl_json_from_value(&v[i]);
		bad = jv == NULL || json_object_set_new(jv, "auth", json_string("1")) != 0 ||
		      json_array_append_new(vals, jv) != 0;
	}
	dispatch_end(&w->dctx);
	if (bad || version == NULL) {
		json_decref(data);
		json_decref(vals);
		json_decref(version);
		answer(r, 200, SNMS_INTERNAL, "out of memory", NULL);
		return;
	}
	json_object_set_new(data, "prefix", json_stringn(h, (size_t)(slash - h)));
	json_object_set_new(data, "handle", json_string(h));
	json_object_set_new(data, "templateVersion", version);
	json_object_set_new(data, "value", vals);
	answer(r, 200, SNMS_OK, "success", data);
}

static void do_template_get(worker_t *w, rqx_t *r, const char *q, size_t qn)
{
	char prefix[PARAM_MAX], version[PARAM_MAX];
	long pl = snms_query_param(q, qn, "prefix", prefix, sizeof(prefix));
	long vl = snms_query_param(q, qn, "version", version, sizeof(version));
	if (pl < 0 || vl == -2 || !tpl_prefix_ok(hdl_slice_str(prefix)) ||
	    (vl >= 0 && !tpl_version_ok(hdl_slice_str(version)))) {
		answer(r, 200, SNMS_REFUSED,
		       pl == -1 ? "missing request parameter: prefix" : "invalid prefix or version",
		       NULL);
		return;
	}
	if (dispatch_begin(&w->dctx) != HDL_EOK) {
		answer(r, 200, SNMS_INTERNAL, "store unavailable", NULL);
		return;
	}
	json_t *data = NULL;
	int ret;
	if (vl < 0) {
		/* no version: the prefix's versions and its default */
		json_t *vs = NULL;
		char *dflt = NULL;
		ret = tpl_list(tpl_fetch_reader, w->dctx.reader, hdl_slice_str(prefix), &vs, &dflt);
		if (ret == HDL_EOK && (data = json_object()) != NULL) {
			json_object_set_new(data, "prefix", json_string(prefix));
			json_object_set_new(data, "versions", vs);
			json_object_set_new(data, "default", dflt ? jtext(dflt) : json_null());
		} else {
			json_decref(vs);
		}
		free(dflt);
	} else {
		tpl_t *t = NULL;
		bool is_default = false;
		ret = tpl_get(tpl_fetch_reader, w->dctx.reader, hdl_slice_str(prefix),
		              hdl_slice_str(version), NULL, &t, &is_default);
		if (ret == HDL_EOK && (data = tpl_to_json(t)) != NULL)
			json_object_set_new(data, "default", json_boolean(is_default));
		tpl_free(t);
	}
	dispatch_end(&w->dctx);
	if (ret == HDL_ENOENT) {
		char msg[TPL_MSG_MAX];
		snprintf(msg, sizeof(msg), "Template %.64s:%.64s not found", prefix, version);
		answer(r, 200, SNMS_REFUSED, msg, NULL);
	} else if (ret != HDL_EOK || data == NULL) {
		json_decref(data);
		answer(r, 200, SNMS_INTERNAL, "cannot read the template", NULL);
	} else {
		answer(r, 200, SNMS_OK, "success", data);
	}
}

/* ---- writes: requests that wait ------------------------------------------------------------- */

static void job_done(wr_job_t *j)
{
	op_t *op = j->owner;
	if (atomic_fetch_sub(&op->left, 1) == 1)
		preq_post(op->p);
}

/** The message of a finished job as the SNMS API words it. */
static const char *job_msg(const op_t *op, const wr_job_t *j)
{
	if (j->rcode == HDL_RC_SUCCESS)
		return "success";
	bool tpl = op->kind >= K_TPL_POST;
	if (!tpl && j->rcode == HDL_RC_HANDLE_ALREADY_EXISTS)
		return MSG_EXISTS;
	if (!tpl && j->rcode == HDL_RC_HANDLE_NOT_FOUND)
		return MSG_NOT_FOUND;
	if (j->rcode == HDL_RC_SERVER_TOO_BUSY)
		return "server busy";
	return j->message[0] ? j->message : "refused";
}

static void respond_op(rqx_t *r, op_t *op)
{
	if (!op->batch) {
		const item_t *it = &op->items[0];
		int st = it->job ? snms_status_of(it->job->rcode) : it->status;
		const char *msg = it->job ? job_msg(op, it->job) : it->msg;
		answer(r, 200, st, msg, st == SNMS_OK ? json_true() : NULL);
		return;
	}
	json_t *arr = json_array();
	bool bad = arr == NULL;
	for (uint32_t i = 0; i < op->n && !bad; i++) {
		const item_t *it = &op->items[i];
		int st = it->job ? snms_status_of(it->job->rcode) : it->status;
		json_t *o = json_object();
		bad = o == NULL || json_array_append_new(arr, o) != 0;
		if (!bad) {
			json_object_set_new(o, "handle", jtext(it->handle));
			json_object_set_new(o, "msg",
			                    jtext(it->job ? job_msg(op, it->job) : it->msg));
			json_object_set_new(o, "code", json_integer(st));
		}
	}
	if (bad) {
		json_decref(arr);
		answer(r, 200, SNMS_INTERNAL, "out of memory", NULL);
		return;
	}
	answer(r, 200, SNMS_OK, "success", arr);
}

/* The jobs of a request are durable (or refused): answer it (worker thread). */
static void op_complete(preq_t *p)
{
	op_t *op;
	memcpy(&op, p->tpriv, sizeof(op));
	conn_t *c = p->conn;
	rqx_t r = {.c = c, .close = op->close, .minor = op->minor};
	c->blocked = false; /* before the answer: a Connection: close marks it closing */
	respond_op(&r, op);
	preq_unlink(&c->waiting, p);
	preq_done(p);
	c->n_waiting--;
	if (r.close)
		c->closing = true;
	conn_resume(c);
}

/** A fresh request that will wait, counted against the pending limits. NULL: answered busy. */
static op_t *op_new(worker_t *w, rqx_t *r, uint32_t n, size_t body_len, bool batch, int kind)
{
	size_t limit = 8u * body_len + (size_t)n * 2048u + (1u << 20);
	preq_t *p = preq_new(w, PREQ_WRITE, ARENA_FIRST, limit);
	if (p == NULL) {
		answer(r, 200, SNMS_INTERNAL, "out of memory", NULL);
		return NULL;
	}
	if (!admin_preq_take(w, p, &r->c->peer)) {
		preq_free(p);
		log_peer(LOG_LVL_NOTICE, "snms: too many waiting requests, refusing one");
		answer(r, 200, SNMS_INTERNAL, "server busy, too many requests waiting", NULL);
		return NULL;
	}
	op_t *op = hdl_arena_alloc(&p->arena, sizeof(*op));
	item_t *items = op ? hdl_arena_alloc(&p->arena, sizeof(*items) * (n ? n : 1)) : NULL;
	if (items == NULL) {
		preq_free(p);
		answer(r, 200, SNMS_INTERNAL, "out of memory", NULL);
		return NULL;
	}
	op->p = p;
	op->batch = batch;
	op->kind = kind;
	op->n = n;
	op->items = items;
	op->close = r->close;
	op->minor = r->minor;
	return op;
}

/** Refuse item \p it before the writer. */
static void item_refuse(item_t *it, int status, const char *msg)
{
	it->status = status;
	it->msg = msg;
	it->job = NULL;
}

/** A copy of \p s in the op's arena (NUL-terminated); NULL when out of memory. */
static char *op_str(op_t *op, const char *s, size_t n)
{
	char *d = hdl_arena_alloc(&op->p->arena, n + 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

/** A job of the op for \p user, on \p handle. */
static wr_job_t *job_new(op_t *op, const snms_user_t *u, const conn_t *c, wr_op_t wop,
                         const char *handle, size_t hlen)
{
	wr_job_t *j = hdl_arena_alloc(&op->p->arena, sizeof(*j));
	if (j == NULL)
		return NULL;
	j->op = wop;
	j->handle = (hdl_slice_t){(const uint8_t *)handle, (uint32_t)hlen};
	/* a copy: the writer thread reads it after this callback, when a reload may have
	 * retired the user set */
	j->id_handle = hdl_arena_dup(&op->p->arena, u->id_handle, strlen(u->id_handle));
	if (j->id_handle.len != strlen(u->id_handle))
		return NULL;
	j->id_index = u->id_index;
	j->transport = conn_is_tls(c) ? WR_T_HTTPS : WR_T_HTTP;
	if (c->peer_len <= sizeof(j->peer)) {
		memcpy(&j->peer, &c->peer, c->peer_len);
		j->peer_len = c->peer_len;
	}
	j->now = (uint32_t)time(NULL);
	j->arena = &op->p->arena;
	j->done = job_done;
	j->owner = op;
	return j;
}

/** Append one value (in the arena) to \p v. */
static void value_set(hdl_value_t *v, uint32_t index, const char *type, const uint8_t *data,
                      size_t len)
{
	memset(v, 0, sizeof(*v));
	v->index = index;
	v->type = hdl_slice_str(type);
	v->data = (hdl_slice_t){data, (uint32_t)len};
	v->ttl = DEFAULT_TTL;
	v->perms = HDL_PERM_DEFAULT;
}

/**
 * The values of a create or update item: the SNMS values, the TEMPLATE value (index 1001) and,
 * for a create, the HS_ADMIN value (index 100) naming the user's identity.
 * \return NULL on success (*v, *n set), else the refusal's text
 */
static const char *item_values(op_t *op, const json_t *item, const snms_user_t *u, bool create,
                               hdl_value_t **vout, uint32_t *nout, char *err, size_t errlen)
{
	size_t vl = 0;
	const char *version = member(item, "templateVersion", &vl);
	if (version == NULL ||
	    !tpl_version_ok((hdl_slice_t){(const uint8_t *)version, (uint32_t)vl}))
		return "templateVersion: required, 1..128 bytes of text";
	const json_t *jv = json_object_get(item, "value");
	if (!json_is_array(jv))
		return "value: required, an array";
	if (json_array_size(jv) + 2 > HDL_MAX_VALUES)
		return "value: too many values";
	hdl_value_t *sv = NULL;
	uint32_t sn = 0;
	hdl_arena_t *a = &op->p->arena;
	int ret = hdl_json_to_values(jv, a, &sv, &sn, err, errlen);
	if (ret == HDL_ENOMEM)
		return "out of memory";
	if (ret != HDL_EOK)
		return err[0] ? err : "value: invalid";
	for (uint32_t i = 0; i < sn; i++) {
		if (sv[i].index == TPL_INDEX_REF)
			return "index 1001 is reserved (the template version)";
		if (sv[i].index == 100)
			return "index 100 is reserved (the HS_ADMIN of the user)";
	}
	hdl_value_t *v = hdl_arena_alloc(a, sizeof(*v) * (sn + 2));
	const char *vcopy = op_str(op, version, vl);
	if (v == NULL || vcopy == NULL)
		return "out of memory";
	if (sn)
		memcpy(v, sv, sizeof(*v) * sn);
	uint32_t n = sn;
	value_set(&v[n++], TPL_INDEX_REF, "TEMPLATE", (const uint8_t *)vcopy, vl);
	if (create) {
		size_t cap = 16 + strlen(u->id_handle), len = 0;
		uint8_t *buf = hdl_arena_alloc(a, cap);
		hdl_admin_t adm = {.perms = HDL_ADM_ALL,
		                   .handle = hdl_slice_str(u->id_handle),
		                   .index = u->id_index};
		if (buf == NULL || hdl_admin_encode(&adm, buf, cap, &len) != HDL_EOK)
			return "out of memory";
		value_set(&v[n++], 100, "HS_ADMIN", buf, len);
	}
	*vout = v;
	*nout = n;
	return NULL;
}

/**
 * Turn item \p it (a JSON object, or a handle string for deletes) into a job or a refusal.
 * \retval HDL_EOK, HDL_ENOMEM
 */
static int item_build(op_t *op, item_t *it, const json_t *item, const snms_user_t *u,
                      const conn_t *c)
{
	size_t hl = 0;
	const char *h = json_is_string(item) ? json_string_value(item) : NULL;
	if (h)
		hl = json_string_length(item);
	else if (json_is_object(item))
		h = member(item, "handle", &hl);
	it->handle = op_str(op, h ? h : "", h ? hl : 0);
	if (it->handle == NULL)
		return HDL_ENOMEM;
	if (h == NULL || (op->kind != K_DELETE && !json_is_object(item))) {
		item_refuse(it, SNMS_REFUSED,
		            op->kind == K_DELETE && op->batch
		                ? "expected a handle string"
		                : "expected {\"handle\", \"templateVersion\", "
		                  "\"value\"}");
		return HDL_EOK;
	}
	if (!handle_ok(it->handle, hl)) {
		item_refuse(it, SNMS_REFUSED, "invalid handle (PREFIX/SUFFIX, at most 255 bytes)");
		return HDL_EOK;
	}
	wr_op_t wop = op->kind == K_CREATE   ? WR_CREATE
	              : op->kind == K_UPDATE ? WR_ADD_VALUES
	                                     : WR_DELETE;
	wr_job_t *j = job_new(op, u, c, wop, it->handle, hl);
	if (j == NULL)
		return HDL_ENOMEM;
	if (op->kind == K_CREATE)
		j->flags = WR_F_IDEMPOTENT;
	else if (op->kind == K_UPDATE)
		j->flags = WR_F_OVERWRITE;
	if (op->kind != K_DELETE) {
		char err[160] = "";
		const char *why = item_values(op, item, u, op->kind == K_CREATE, &j->values,
		                              &j->n_values, err, sizeof(err));
		if (why != NULL) {
			if (strcmp(why, "out of memory") == 0)
				return HDL_ENOMEM;
			const char *m = op_str(op, why, strlen(why));
			if (m == NULL)
				return HDL_ENOMEM;
			item_refuse(it, SNMS_REFUSED, m);
			return HDL_EOK;
		}
	}
	it->job = j;
	return HDL_EOK;
}

/**
 * Submit the op's jobs as one group and attach the request to its connection, or answer now
 * when there is nothing to submit or the writer has no room.
 */
static void op_run(worker_t *w, rqx_t *r, op_t *op)
{
	preq_t *p = op->p;
	unsigned nj = 0;
	for (uint32_t i = 0; i < op->n; i++)
		nj += op->items[i].job != NULL;
	wr_job_t **ptrs = nj ? hdl_arena_alloc(&p->arena, sizeof(*ptrs) * nj) : NULL;
	if (nj && ptrs == NULL) {
		preq_free(p);
		answer(r, 200, SNMS_INTERNAL, "out of memory", NULL);
		return;
	}
	for (uint32_t i = 0, k = 0; i < op->n; i++) {
		if (op->items[i].job)
			ptrs[k++] = op->items[i].job;
	}
	w->node->snms->n_items += op->n;
	if (nj == 0) {
		respond_op(r, op);
		preq_free(p);
		return;
	}
	if (w->node->writer == NULL) {
		preq_free(p);
		answer(r, 200, SNMS_INTERNAL, "writes are not accepted here", NULL);
		return;
	}
	atomic_store(&op->left, nj);
	memcpy(p->tpriv, &op, sizeof(op));
	p->complete = op_complete;
	p->inflight = true;
	int ret = writer_submit_many(w->node->writer, ptrs, nj);
	if (ret != HDL_EOK) {
		p->inflight = false;
		preq_free(p);
		log_peer(LOG_LVL_NOTICE, "snms: write queue has no room for %u job(s)", nj);
		answer(r, 200, SNMS_INTERNAL, "server busy", NULL);
		return;
	}
	conn_t *c = r->c;
	preq_link(&c->waiting, p, c);
	c->n_waiting++;
	c->blocked = true; /* answers go out in request order */
}

/** POST/PUT/DELETE /identityv2/data and the batches. */
static void do_data(worker_t *w, rqx_t *r, const http_req_t *req, const snms_user_t *u, int kind,
                    bool batch)
{
	snms_t *s = w->node->snms;
	json_t *j = body_json(req);
	uint32_t n = 1;
	if (batch) {
		if (!json_is_array(j)) {
			json_decref(j);
			answer(r, 200, SNMS_REFUSED, "expected a JSON array of items", NULL);
			return;
		}
		if (json_array_size(j) == 0 || json_array_size(j) > s->batch_max) {
			char msg[96];
			snprintf(msg, sizeof(msg), "a batch holds 1 to %u items", s->batch_max);
			json_decref(j);
			answer(r, 200, SNMS_REFUSED, msg, NULL);
			return;
		}
		n = (uint32_t)json_array_size(j);
	} else if (!json_is_object(j)) {
		json_decref(j);
		answer(r, 200, SNMS_REFUSED, "expected a JSON object", NULL);
		return;
	}
	op_t *op = op_new(w, r, n, (size_t)req->content_length, batch, kind);
	if (op == NULL) {
		json_decref(j);
		return;
	}
	int ret = HDL_EOK;
	for (uint32_t i = 0; i < n && ret == HDL_EOK; i++)
		ret = item_build(op, &op->items[i], batch ? json_array_get(j, i) : j, u, r->c);
	json_decref(j);
	if (ret != HDL_EOK) {
		preq_free(op->p);
		answer(r, 200, SNMS_INTERNAL, "out of memory", NULL);
		return;
	}
	op_run(w, r, op);
}

/** POST/PUT/DELETE /snms/api/v5/template. */
static void do_template_write(worker_t *w, rqx_t *r, const http_req_t *req, const snms_user_t *u,
                              int kind)
{
	json_t *j = body_json(req);
	size_t pl = 0, vl = 0;
	const char *prefix = json_is_object(j) ? member(j, "prefix", &pl) : NULL;
	const char *version = json_is_object(j) ? member(j, "version", &vl) : NULL;
	if (prefix == NULL ||
	    !tpl_prefix_ok((hdl_slice_t){(const uint8_t *)prefix, (uint32_t)pl}) ||
	    (kind == K_TPL_DEL &&
	     (version == NULL ||
	      !tpl_version_ok((hdl_slice_t){(const uint8_t *)version, (uint32_t)vl})))) {
		json_decref(j);
		answer(r, 200, SNMS_REFUSED,
		       kind == K_TPL_DEL ? "expected {\"prefix\", \"version\"}"
		                         : "expected a template object with a valid prefix",
		       NULL);
		return;
	}
	op_t *op = op_new(w, r, 1, (size_t)req->content_length, false, kind);
	if (op == NULL) {
		json_decref(j);
		return;
	}
	char na[8 + TPL_PREFIX_MAX];
	int nl = snprintf(na, sizeof(na), "0.NA/%s", prefix);
	item_t *it = &op->items[0];
	it->handle = op_str(op, na, (size_t)nl);
	const char *data = kind == K_TPL_DEL
	                       ? op_str(op, version, vl)
	                       : op_str(op, (const char *)req->body, (size_t)req->content_length);
	wr_job_t *job =
	    it->handle && data
	        ? job_new(op, u, r->c, kind == K_TPL_DEL ? WR_TEMPLATE_DEL : WR_TEMPLATE_PUT,
	                  it->handle, (size_t)nl)
	        : NULL;
	json_decref(j);
	if (job == NULL) {
		preq_free(op->p);
		answer(r, 200, SNMS_INTERNAL, "out of memory", NULL);
		return;
	}
	job->data = hdl_slice_str(data);
	if (kind == K_TPL_PUT)
		job->flags = WR_F_OVERWRITE;
	it->job = job;
	op_run(w, r, op);
}

/* ---- routing ------------------------------------------------------------------------------- */

static bool method_is(const http_req_t *req, http_method_t m)
{
	return req->method == m;
}

bool snms_request(conn_t *c, const http_req_t *req)
{
	const char *t = req->target.p;
	size_t tn = req->target.len;
	const char *qm = memchr(t, '?', tn);
	size_t pn = qm ? (size_t)(qm - t) : tn;
	enum ep e = endpoint(t, pn);
	if (e == 0)
		return false;
	worker_t *w = c->w;
	snms_t *s = w->node->snms;
	rqx_t r = {.c = c, .close = !req->keep_alive, .minor = (uint8_t)req->minor};
	const char *q = qm ? qm + 1 : "";
	size_t qn = qm ? tn - pn - 1 : 0;
	if (s == NULL) {
		answer(&r, 503, SNMS_INTERNAL, "the SNMS API is not set up", NULL);
		return true;
	}
	s->n_requests++;
	if (e == EP_UNKNOWN) {
		answer(&r, 404, SNMS_REFUSED, "no such API", NULL);
		return true;
	}
	/* passwords and tokens only over TLS, or plain from loopback when allowed (rest.h) */
	if (!rest_secure(c)) {
		log_peer(LOG_LVL_NOTICE, "snms: request over plain HTTP refused (use HTTPS)");
		answer(&r, 403, SNMS_REFUSED, "credentials are accepted over HTTPS only", NULL);
		return true;
	}
	if (e == EP_TOKEN || e == EP_TOKEN_V1) {
		if (!method_is(req, HTTP_M_POST))
			answer(&r, 405, SNMS_REFUSED, "use POST", NULL);
		else
			do_token(w, &r, req, e == EP_TOKEN_V1);
		return true;
	}
	/* everything else needs a live token */
	const char *tok = NULL;
	size_t tl = 0;
	uint32_t ui = 0;
	const snms_user_t *u = NULL;
	/* a token of a user a reload removed or changed finds no user in the current set */
	if (snms_bearer(req, &tok, &tl) &&
	    snms_token_check(s->tokens, tok, tl, worker_now_ms(), &ui) == HDL_EOK)
		u = snms_user_by_uid(atomic_load_explicit(&s->users, memory_order_acquire), ui);
	if (u == NULL) {
		log_peer(LOG_LVL_INFO, "snms: request without a live token refused");
		answer(&r, 200, SNMS_NO_LOGIN, "not logged in, or the token expired", NULL);
		return true;
	}
	http_method_t m = req->method;
	if (req->content_length > s->max_body) {
		/* its JSON tree would take about 12 times the body: refused before the parse */
		log_peer(LOG_LVL_INFO, "snms: body of %llu bytes over snms_max_body refused",
		         (unsigned long long)req->content_length);
		answer(&r, 413, SNMS_REFUSED, "request body over snms_max_body", NULL);
		return true;
	}
	switch (e) {
	case EP_DETAIL:
		if (m == HTTP_M_GET)
			do_detail(w, &r, q, qn);
		else
			answer(&r, 405, SNMS_REFUSED, "use GET", NULL);
		break;
	case EP_DATA:
		if (m == HTTP_M_POST || m == HTTP_M_PUT || m == HTTP_M_DELETE)
			do_data(w, &r, req, u,
			        m == HTTP_M_POST  ? K_CREATE
			        : m == HTTP_M_PUT ? K_UPDATE
			                          : K_DELETE,
			        false);
		else
			answer(&r, 405, SNMS_REFUSED, "use POST, PUT or DELETE", NULL);
		break;
	case EP_BATCH_CREATE:
	case EP_BATCH_UPDATE:
	case EP_BATCH_DELETE: {
		http_method_t want = e == EP_BATCH_CREATE   ? HTTP_M_POST
		                     : e == EP_BATCH_UPDATE ? HTTP_M_PUT
		                                            : HTTP_M_DELETE;
		if (m != want)
			answer(&r, 405, SNMS_REFUSED, "wrong method for this batch", NULL);
		else
			do_data(w, &r, req, u,
			        e == EP_BATCH_CREATE   ? K_CREATE
			        : e == EP_BATCH_UPDATE ? K_UPDATE
			                               : K_DELETE,
			        true);
		break;
	}
	case EP_TEMPLATE:
		if (m == HTTP_M_GET)
			do_template_get(w, &r, q, qn);
		else if (m == HTTP_M_POST || m == HTTP_M_PUT || m == HTTP_M_DELETE)
			do_template_write(w, &r, req, u,
			                  m == HTTP_M_POST  ? K_TPL_POST
			                  : m == HTTP_M_PUT ? K_TPL_PUT
			                                    : K_TPL_DEL);
		else
			answer(&r, 405, SNMS_REFUSED, "use GET, POST, PUT or DELETE", NULL);
		break;
	default: answer(&r, 404, SNMS_REFUSED, "no such API", NULL); break;
	}
	return true;
}
