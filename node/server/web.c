/* SPDX-License-Identifier: Apache-2.0 */
/* The status page and /status.json (see web.h). */
#define _GNU_SOURCE
#include "node/server/web.h"

#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hdl/error.h"
#include "node/conf/conf.h"
#include "node/resolver/dcache.h"
#include "node/server/connlimit.h"
#include "node/server/metrics.h"
#include "node/server/obs.h"
#include "node/server/rrl.h"
#include "node/server/stats.h"
#include "node/server/worker.h"
#include "node/server/writer.h"
#include "node/store/store.h"

#define CSP                                                                                     \
	"default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src " \
	"'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors "   \
	"'none'"

static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static char *cache_text;
static size_t cache_len;
static uint64_t cache_ms;

static void set_u64(json_t *o, const char *k, uint64_t v)
{
	json_object_set_new(o, k, json_integer(v > INT64_MAX ? INT64_MAX : (json_int_t)v));
}

static json_t *time_str(uint64_t unix_s)
{
	char buf[32];
	time_t t = (time_t)unix_s;
	struct tm tm;
	if (!gmtime_r(&t, &tm) || strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		return json_null();
	return json_string(buf);
}

static json_t *str_list(char **v, unsigned n)
{
	json_t *a = json_array();
	for (unsigned i = 0; a && i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

static void status_requests(json_t *root, const obs_sum_t *s)
{
	json_t *rq = json_object(), *bt = json_object(), *brc = json_object(), *bop = json_object();
	uint64_t total = 0, dropped = 0;
	uint64_t by_op[OBS_OP_N] = {0}, by_rc[OBS_RC_N] = {0};
	for (unsigned t = 0; t < OBS_T_N; t++) {
		uint64_t tt = 0;
		for (unsigned op = 0; op < OBS_OP_N; op++) {
			for (unsigned rc = 0; rc < OBS_RC_N; rc++) {
				tt += s->req[t][op][rc];
				by_op[op] += s->req[t][op][rc];
				by_rc[rc] += s->req[t][op][rc];
			}
		}
		total += tt;
		dropped += s->dropped[t];
		set_u64(bt, stats_transport_name(t), tt);
	}
	for (unsigned op = 0; op < OBS_OP_N; op++) {
		if (by_op[op])
			set_u64(bop, obs_op_label(op), by_op[op]);
	}
	for (unsigned rc = 0; rc < OBS_RC_N; rc++) {
		if (by_rc[rc])
			set_u64(brc, obs_rc_label(rc), by_rc[rc]);
	}
	set_u64(rq, "total", total);
	set_u64(rq, "dropped", dropped);
	json_object_set_new(rq, "by_transport", bt);
	json_object_set_new(rq, "by_opcode", bop);
	json_object_set_new(rq, "by_rcode", brc);
	json_object_set_new(root, "requests", rq);
}

static int prefix_cb(void *ctx, hdl_slice_t prefix, const store_home_rec_t *rec)
{
	json_t *a = ctx;
	if (json_array_size(a) >= WEB_PREFIXES_MAX)
		return 1;
	json_array_append_new(a, json_stringn((const char *)prefix.p, prefix.len));
	return 0;
}

static json_t *status_build(const node_obs_t *o, store_reader_t *r)
{
	const node_shared_t *n = o->node;
	json_t *root = json_object();
	obs_sum_t *s = malloc(sizeof(*s));
	if (!root || !s) {
		free(s);
		json_decref(root);
		return NULL;
	}
	obs_sum(o, s);
	json_t *node = json_object();
	json_object_set_new(node, "version", json_string(HDL_VERSION));
	json_object_set_new(node, "start_time", time_str(o->start_unix));
	json_object_set_new(node, "uptime_seconds", json_real(obs_uptime(o)));
	set_u64(node, "workers", o->n_workers);
	json_object_set_new(node, "listen", str_list(o->conf->listen, o->conf->n_listen));
	json_object_set_new(node, "http", str_list(o->conf->http, o->conf->n_http));
	json_object_set_new(root, "node", node);
	json_object_set_new(root, "time", time_str((uint64_t)time(NULL)));
	status_requests(root, s);

	json_t *c = json_object();
	set_u64(c, "hits", s->cache_hits);
	set_u64(c, "misses", s->cache_misses);
	set_u64(c, "entries", s->cache_entries);
	set_u64(c, "bytes", s->cache_bytes);
	set_u64(c, "limit_bytes", s->cache_max_bytes);
	set_u64(c, "evictions", s->cache_evictions);
	set_u64(c, "flushes", s->cache_flushes);
	json_object_set_new(root, "response_cache", c);
	if (n->dcache) {
		dcache_stats_t d;
		dcache_get_stats(n->dcache, &d);
		json_t *rc = json_object();
		set_u64(rc, "hits", d.hits);
		set_u64(rc, "misses", d.misses);
		set_u64(rc, "stale_served", d.stale_served);
		set_u64(rc, "entries", d.entries);
		set_u64(rc, "bytes", d.bytes);
		set_u64(rc, "limit_bytes", d.max_bytes);
		set_u64(rc, "evictions", d.evictions);
		json_object_set_new(root, "resolver_cache", rc);
	}

	json_t *cn = json_object();
	set_u64(cn, "open", n->conns ? connlimit_open(n->conns) : s->conn_open);
	set_u64(cn, "accepted", s->conn_accepted);
	set_u64(cn, "refused", s->conn_refused);
	set_u64(cn, "evicted", s->conn_evicted);
	json_object_set_new(root, "connections", cn);
	if (n->rrl) {
		rrl_stats_t rs;
		rrl_get_stats(n->rrl, &rs);
		json_t *u = json_object();
		set_u64(u, "limited", rs.c[RRL_CTR_LIMITED]);
		set_u64(u, "slipped", rs.c[RRL_CTR_SLIPPED]);
		set_u64(u, "dropped", rs.c[RRL_CTR_DROPPED]);
		set_u64(u, "redirected", rs.c[RRL_CTR_REDIRECTED]);
		json_object_set_new(root, "udp_rate_limit", u);
	}
	free(s);
	if (n->writer) {
		writer_stats_t ws;
		writer_stats(n->writer, &ws);
		json_t *w = json_object();
		set_u64(w, "queue_depth", writer_depth(n->writer));
		set_u64(w, "batches", ws.batches);
		set_u64(w, "applied", ws.applied);
		set_u64(w, "refused", ws.refused);
		set_u64(w, "failed", ws.failed);
		json_object_set_new(root, "writer", w);
	}
	json_t *st = json_object();
	set_u64(st, "handles", store_count(n->store));
	set_u64(st, "homed_prefixes", store_homed_count(n->store));
	set_u64(st, "map_size_bytes", store_map_size(n->store));
	set_u64(st, "map_used_bytes", store_map_used(n->store));
	json_object_set_new(root, "store", st);
	json_t *pfx = json_array();
	if (pfx && r && store_reader_begin(r) == HDL_EOK) {
		(void)store_prefixes_foreach(r, prefix_cb, pfx);
		store_reader_end(r);
	}
	json_object_set_new(root, "prefixes", pfx);
	if (o->stats) {
		stats_info_t si;
		stats_get_info(o->stats, &si);
		json_t *sj = json_object();
		set_u64(sj, "flushes", si.flushes);
		set_u64(sj, "flush_errors", si.flush_errors);
		json_object_set_new(sj, "last_flush",
		                    si.last_flush_unix ? time_str(si.last_flush_unix)
		                                       : json_null());
		json_object_set_new(root, "statistics", sj);
	}
	json_t *mods = json_object();
	metrics_status(mods);
	json_object_set_new(root, "modules", mods);
	return root;
}

/* The JSON text of /status.json, built at most every WEB_STATUS_MIN_MS; a copy for the caller. */
static char *status_text(worker_t *w, size_t *len)
{
	uint64_t now = worker_now_ms();
	char *out = NULL;
	pthread_mutex_lock(&cache_mu);
	if (!cache_text || now - cache_ms >= WEB_STATUS_MIN_MS) {
		json_t *j = status_build(w->node->obs, w->dctx.reader);
		char *t = j ? json_dumps(j, JSON_COMPACT) : NULL;
		json_decref(j);
		if (t) {
			free(cache_text);
			cache_text = t;
			cache_len = strlen(t);
			cache_ms = now;
		}
	}
	if (cache_text && (out = malloc(cache_len + 1)) != NULL) {
		memcpy(out, cache_text, cache_len + 1);
		*len = cache_len;
	}
	pthread_mutex_unlock(&cache_mu);
	return out;
}

bool web_route(worker_t *w, const char *path, web_resp_t *r)
{
	const node_obs_t *o = w->node->obs;
	memset(r, 0, sizeof(*r));
	if (!o || !o->conf->web_status)
		return false;
	r->status = 200;
	r->hdr[0].name = "X-Content-Type-Options";
	r->hdr[0].value = "nosniff";
	if (strcmp(path, "/") == 0) {
		r->ctype = "text/html;charset=UTF-8";
		r->body = web_index_html;
		r->len = web_index_html_len;
		r->hdr[1].name = "Content-Security-Policy";
		r->hdr[1].value = CSP;
		r->hdr[2].name = "Cache-Control";
		r->hdr[2].value = "no-cache";
		return true;
	}
	if (strcmp(path, "/app.js") == 0) {
		r->ctype = "text/javascript;charset=UTF-8";
		r->body = web_app_js;
		r->len = web_app_js_len;
		r->hdr[1].name = "Cache-Control";
		r->hdr[1].value = "no-cache";
		return true;
	}
	if (strcmp(path, "/status.json") == 0) {
		size_t len = 0;
		char *t = status_text(w, &len);
		r->hdr[1].name = "Cache-Control";
		r->hdr[1].value = "no-store";
		if (!t) {
			static const char oom[] = "{\"error\":\"out of memory\"}";
			r->status = 503;
			r->ctype = "application/json";
			r->body = oom;
			r->len = sizeof(oom) - 1;
			return true;
		}
		r->ctype = "application/json";
		r->body = t;
		r->len = len;
		r->owned = t;
		return true;
	}
	return false;
}

void web_resp_free(web_resp_t *r)
{
	free(r->owned);
	r->owned = NULL;
}

void web_cleanup(void)
{
	pthread_mutex_lock(&cache_mu);
	free(cache_text);
	cache_text = NULL;
	cache_len = 0;
	pthread_mutex_unlock(&cache_mu);
}
