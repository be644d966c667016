/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Replay harness for the resolution path (node/resolver/resolve.h), in the manner of
 *        Unbound's testbound: a scenario file scripts fake upstream servers and a sequence of
 *        steps (queries, expectations, time passing, servers going down), run on a fake clock
 *        with no sockets. Several engines (one per "worker") share one cache, one flight table
 *        and one hold table, as in idnoded.
 *
 * Usage: replay SCENARIO.rpl   (exit 0 = every expectation met; see tests/replay/README.md for
 * the scenario language)
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>

#include "hdl/error.h"
#include "hdl/msg.h"
#include "hdl/values.h"
#include "node/common/log.h"
#include "node/conf/conf.h"
#include "node/resolver/dcache.h"
#include "node/resolver/dflight.h"
#include "node/resolver/resolve.h"
#include "node/resolver/upconf.h"

#define MAX_ENGINES 8
#define MAX_SERVERS 32
#define MAX_LINES   64
#define WALL_BASE   1700000000ll

static const char *g_file;
static int g_line;
static uint64_t g_now;

#if defined(__GNUC__)
__attribute__((format(printf, 1, 2), noreturn))
#endif
static void
fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "%s:%d: ", g_file, g_line);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

static void *xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n ? n : 1, sz ? sz : 1);
	if (!p)
		fail("out of memory");
	return p;
}

static char *xstrdup(const char *s)
{
	char *p = strdup(s);
	if (!p)
		fail("out of memory");
	return p;
}

/* ---- fake servers ------------------------------------------------------------------------------
 */

typedef struct fvalue {
	char *handle;
	hdl_value_t v;
	uint8_t *data; /* owned */
} fvalue_t;

typedef struct frule {
	char *prefix;
	uint32_t rcode;
	char *ref_handle; /* referral handle ("" = none) */
	fvalue_t *vals;   /* referral values */
	unsigned n_vals;
} frule_t;

enum { S_UP, S_DOWN, S_REFUSE };

typedef struct fserver {
	char host[64];
	uint16_t port;
	int mode;
	uint32_t delay_ms;
	fvalue_t *vals;
	unsigned n_vals;
	frule_t *rules;
	unsigned n_rules;
	unsigned count; /* queries received */
} fserver_t;

static fserver_t g_servers[MAX_SERVERS];
static unsigned g_n_servers;

static fserver_t *server_find(const char *host, uint16_t port)
{
	for (unsigned i = 0; i < g_n_servers; i++) {
		if (g_servers[i].port == port && strcmp(g_servers[i].host, host) == 0)
			return &g_servers[i];
	}
	return NULL;
}

static void parse_hostport(const char *s, char *host, size_t hcap, uint16_t *port)
{
	const char *c = strrchr(s, ':');
	if (!c || (size_t)(c - s) >= hcap)
		fail("not HOST:PORT: %s", s);
	memcpy(host, s, (size_t)(c - s));
	host[c - s] = '\0';
	*port = (uint16_t)atoi(c + 1);
}

static fserver_t *server_arg(const char *s)
{
	char host[64];
	uint16_t port;
	parse_hostport(s, host, sizeof(host), &port);
	fserver_t *sv = server_find(host, port);
	if (!sv)
		fail("no server %s", s);
	return sv;
}

/*
 * A site: "site:H:P/PROTO[+PROTO]...[,H:P/PROTO...][;mirror]" — one server per comma, in order
 * (the hash picks among them); primary unless ";mirror".
 */
static uint8_t *encode_site(const char *spec, size_t *len)
{
	hdl_site_t s;
	hdl_server_t sv[8];
	hdl_interface_t ifs[8][4];
	char buf[512];
	memset(&s, 0, sizeof(s));
	memset(sv, 0, sizeof(sv));
	snprintf(buf, sizeof(buf), "%s", spec);
	s.data_version = 1;
	s.proto_major = 2;
	s.proto_minor = 10;
	s.serial = 1;
	s.primary_mask = HDL_SITE_PRIMARY;
	s.hash_option = HDL_HASH_BY_HANDLE;
	char *semi = strchr(buf, ';');
	if (semi) {
		*semi = '\0';
		if (strcmp(semi + 1, "mirror") == 0)
			s.primary_mask = 0;
	}
	char *save = NULL;
	for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (s.n_servers == 8)
			fail("too many servers in a site");
		hdl_server_t *x = &sv[s.n_servers];
		char *slash = strchr(tok, '/');
		if (!slash)
			fail("site server without /PROTO: %s", tok);
		*slash = '\0';
		char host[64];
		uint16_t port;
		parse_hostport(tok, host, sizeof(host), &port);
		if (inet_pton(AF_INET, host, x->addr + 12) != 1)
			fail("site address not IPv4: %s", host);
		x->id = s.n_servers + 1;
		x->ifaces = ifs[s.n_servers];
		char *psave = NULL;
		for (char *p = strtok_r(slash + 1, "+", &psave); p;
		     p = strtok_r(NULL, "+", &psave)) {
			hdl_interface_t *f = &x->ifaces[x->n_ifaces++];
			f->type = HDL_IF_QUERY | HDL_IF_ADMIN;
			f->port = port;
			f->proto = strcmp(p, "udp") == 0    ? HDL_IF_UDP
			           : strcmp(p, "tcp") == 0  ? HDL_IF_TCP
			           : strcmp(p, "http") == 0 ? HDL_IF_HTTP
			                                    : HDL_IF_HTTPS;
		}
		s.n_servers++;
	}
	s.servers = sv;
	uint8_t *out = xcalloc(1, 4096);
	if (hdl_site_encode(&s, out, 4096, len) != HDL_EOK)
		fail("cannot encode site %s", spec);
	return out;
}

/* A value from "TYPE DATA [ttl=S] [perms=HEX] [index=N] [abs]". */
static void parse_value(char **tok, unsigned n, unsigned next_index, fvalue_t *fv)
{
	if (n < 2)
		fail("value needs TYPE DATA");
	memset(fv, 0, sizeof(*fv));
	size_t dlen;
	if (strncmp(tok[1], "site:", 5) == 0) {
		fv->data = encode_site(tok[1] + 5, &dlen);
	} else {
		fv->data = (uint8_t *)xstrdup(tok[1]);
		dlen = strlen(tok[1]);
	}
	char *type = xstrdup(tok[0]);
	fv->v.type = (hdl_slice_t){(const uint8_t *)type, (uint32_t)strlen(type)};
	fv->v.data = (hdl_slice_t){fv->data, (uint32_t)dlen};
	fv->v.index = next_index;
	fv->v.ttl = 86400;
	fv->v.ttl_type = HDL_TTL_RELATIVE;
	fv->v.perms = HDL_PERM_DEFAULT;
	fv->v.timestamp = (uint32_t)WALL_BASE;
	for (unsigned i = 2; i < n; i++) {
		if (strncmp(tok[i], "ttl=", 4) == 0)
			fv->v.ttl = (uint32_t)strtoul(tok[i] + 4, NULL, 10);
		else if (strncmp(tok[i], "perms=", 6) == 0)
			fv->v.perms = (uint8_t)strtoul(tok[i] + 6, NULL, 16);
		else if (strncmp(tok[i], "index=", 6) == 0)
			fv->v.index = (uint32_t)strtoul(tok[i] + 6, NULL, 10);
		else
			fail("unknown value option %s", tok[i]);
	}
}

static void fvalue_free(fvalue_t *v)
{
	free(v->handle);
	free((void *)v->v.type.p);
	free(v->data);
}

static bool prefix_matches(const char *rule, hdl_slice_t h)
{
	hdl_slice_t pfx, sfx;
	hdl_name_split(h, &pfx, &sfx);
	size_t rl = strlen(rule);
	if (pfx.len == 4 && strncasecmp((const char *)pfx.p, "0.NA", 4) == 0) {
		pfx = sfx; /* a prefix handle: match on the prefix it names */
	}
	if (pfx.len < rl || strncasecmp((const char *)pfx.p, rule, rl) != 0)
		return false;
	return pfx.len == rl || pfx.p[rl] == '.';
}

/* Decode a request the engine sent (into \p a, initialized here; the caller frees it). */
static void decode_request(const uint8_t *req, size_t len, hdl_arena_t *a, hdl_msg_t *q)
{
	hdl_arena_init(a, NULL, 0, 1u << 24);
	memset(q, 0, sizeof(*q));
	if (hdl_msg_decode(req, len, a, q) != HDL_EOK || q->kind != HDL_BODY_RESOLVE)
		fail("the engine sent a request that does not decode");
}

/* FNV-1a of \p n bytes: the buckets of the harness's own tables. */
static unsigned fnv(const void *p, size_t n)
{
	unsigned h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ ((const uint8_t *)p)[i]) * 16777619u;
	return h;
}

/* The fake server's answer to one request: an encoded message in \p out. */
static size_t server_answer(fserver_t *sv, const uint8_t *req, size_t len, uint8_t *out, size_t cap)
{
	hdl_arena_t a;
	hdl_msg_t q;
	decode_request(req, len, &a, &q);
	hdl_msg_t m;
	hdl_msg_init(&m);
	m.env.request_id = q.env.request_id;
	m.hdr.opcode = q.hdr.opcode;
	m.hdr.opflags = q.hdr.opflags & HDL_OF_PO;
	hdl_slice_t h = q.u.resolve.handle;
	const frule_t *best = NULL;
	for (unsigned i = 0; i < sv->n_rules; i++) {
		if (prefix_matches(sv->rules[i].prefix, h) &&
		    (!best || strlen(sv->rules[i].prefix) > strlen(best->prefix)))
			best = &sv->rules[i];
	}
	hdl_value_t *vals = hdl_arena_alloc(&a, sizeof(hdl_value_t) * (sv->n_vals + 8));
	uint32_t n = 0, total = 0;
	if (best &&
	    (best->rcode == HDL_RC_SERVICE_REFERRAL || best->rcode == HDL_RC_PREFIX_REFERRAL)) {
		m.hdr.rcode = best->rcode;
		m.kind = HDL_BODY_REFERRAL;
		m.u.referral.handle = hdl_slice_str(best->ref_handle);
		for (unsigned i = 0; i < best->n_vals; i++)
			vals[n++] = best->vals[i].v;
		m.u.referral.values = vals;
		m.u.referral.n_values = n;
	} else if (best) {
		m.hdr.rcode = best->rcode;
		m.kind = HDL_BODY_ERROR;
		m.u.error.message = hdl_slice_str("scripted");
	} else {
		for (unsigned i = 0; i < sv->n_vals; i++) {
			const fvalue_t *fv = &sv->vals[i];
			if (!hdl_slice_eq_nocase(hdl_slice_str(fv->handle), h))
				continue;
			total++;
			bool want = q.u.resolve.n_indexes == 0 && q.u.resolve.n_types == 0;
			for (uint32_t k = 0; k < q.u.resolve.n_indexes; k++)
				want |= q.u.resolve.indexes[k] == fv->v.index;
			for (uint32_t k = 0; k < q.u.resolve.n_types; k++)
				want |= hdl_type_matches(fv->v.type, q.u.resolve.types[k]);
			if (want)
				vals[n++] = fv->v;
		}
		if (total == 0) {
			m.hdr.rcode = HDL_RC_HANDLE_NOT_FOUND;
			m.kind = HDL_BODY_ERROR;
		} else if (n == 0) {
			m.hdr.rcode = HDL_RC_VALUES_NOT_FOUND;
			m.kind = HDL_BODY_ERROR;
		} else {
			m.hdr.rcode = HDL_RC_SUCCESS;
			m.kind = HDL_BODY_VALUES;
			m.u.values.handle = h;
			m.u.values.values = vals;
			m.u.values.n_values = n;
		}
	}
	size_t olen = 0;
	if (hdl_msg_encode(&m, out, cap, &olen) != HDL_EOK)
		fail("cannot encode a fake answer");
	hdl_arena_free(&a);
	return olen;
}

/* ---- upstream queries per handle --------------------------------------------------------------
 */

/* Queries the engines started per handle (what idnoded's upstream_queries counts), since the
 * last per-key-reset. */
typedef struct kcount {
	struct kcount *next;
	unsigned n;
	char handle[];
} kcount_t;

#define KCOUNT_BUCKETS 4096u
static kcount_t *g_kcounts[KCOUNT_BUCKETS];

static void kcount_add(const uint8_t *req, size_t len)
{
	hdl_arena_t a;
	hdl_msg_t q;
	decode_request(req, len, &a, &q);
	hdl_slice_t h = q.u.resolve.handle;
	unsigned b = fnv(h.p, h.len) & (KCOUNT_BUCKETS - 1);
	kcount_t *k = g_kcounts[b];
	while (k && !(strlen(k->handle) == h.len && memcmp(k->handle, h.p, h.len) == 0))
		k = k->next;
	if (!k) {
		k = xcalloc(1, sizeof(*k) + h.len + 1);
		memcpy(k->handle, h.p, h.len);
		k->next = g_kcounts[b];
		g_kcounts[b] = k;
	}
	k->n++;
	hdl_arena_free(&a);
}

static void kcount_reset(void)
{
	for (unsigned b = 0; b < KCOUNT_BUCKETS; b++) {
		while (g_kcounts[b]) {
			kcount_t *k = g_kcounts[b];
			g_kcounts[b] = k->next;
			free(k);
		}
	}
}

/* The handle asked most often (NULL when none was). */
static const kcount_t *kcount_max(void)
{
	const kcount_t *m = NULL;
	for (unsigned b = 0; b < KCOUNT_BUCKETS; b++) {
		for (const kcount_t *k = g_kcounts[b]; k; k = k->next) {
			if (!m || k->n > m->n)
				m = k;
		}
	}
	return m;
}

/* ---- fake upstream pool ------------------------------------------------------------------------
 */

typedef struct fquery {
	struct fquery *next;
	ups_target_t *cands;
	unsigned n, cur;
	uint8_t *req;
	size_t len;
	uint64_t deadline, try_ms;
	uint64_t due;   /* next event */
	bool answering; /* due = the current candidate's answer */
	ups_cb_t cb;
	void *arg;
	bool cancelled;
} fquery_t;

static fquery_t *g_queries;

/* Move to candidate \p i (or fail), setting when the next event is. */
static void fq_try(fquery_t *q, unsigned i)
{
	for (; i < q->n; i++) {
		fserver_t *sv = server_find(q->cands[i].host, q->cands[i].port);
		q->cur = i;
		if (!sv || sv->mode == S_DOWN) {
			if (sv)
				sv->count++;
			q->answering = false;
			/* the last candidate keeps the rest of the time (ups_query_any) */
			q->due = i + 1 == q->n ? q->deadline : g_now + q->try_ms;
			if (q->due > q->deadline)
				q->due = q->deadline;
			return;
		}
		if (sv->mode == S_REFUSE)
			continue;
		sv->count++;
		q->answering = true;
		q->due = g_now + sv->delay_ms;
		if (q->due > q->deadline) {
			q->answering = false;
			q->due = q->deadline;
		}
		return;
	}
	q->cur = q->n;
	q->answering = false;
	q->due = g_now; /* fails now: every candidate refused */
}

static int fake_query(void *env, const ups_target_t *cands, unsigned n, const uint8_t *req,
                      size_t len, uint64_t deadline_ms, uint32_t try_ms, ups_cb_t cb, void *arg,
                      void **qh)
{
	(void)env;
	kcount_add(req, len);
	fquery_t *q = xcalloc(1, sizeof(*q));
	q->cands = xcalloc(n, sizeof(*cands));
	memcpy(q->cands, cands, n * sizeof(*cands));
	q->n = n;
	q->req = xcalloc(1, len);
	memcpy(q->req, req, len);
	q->len = len;
	q->deadline = deadline_ms;
	q->try_ms = try_ms;
	q->cb = cb;
	q->arg = arg;
	fq_try(q, 0);
	q->next = g_queries;
	g_queries = q;
	*qh = q;
	return HDL_EOK;
}

static void fake_cancel(void *env, void *qh)
{
	(void)env;
	((fquery_t *)qh)->cancelled = true;
}

static void fq_free(fquery_t *q)
{
	free(q->cands);
	free(q->req);
	free(q);
}

/* Run the event of \p q (due now). \return true when the query ended. */
static bool fq_event(fquery_t *q)
{
	static uint8_t out[HDL_ENVELOPE_LEN + HDL_MAX_MESSAGE_LEN];
	if (q->answering) {
		fserver_t *sv = server_find(q->cands[q->cur].host, q->cands[q->cur].port);
		size_t n = server_answer(sv, q->req, q->len, out, sizeof(out));
		q->cb(q->arg, HDL_EOK, out, n);
		return true;
	}
	if (g_now >= q->deadline) {
		q->cb(q->arg, HDL_ETIMEDOUT, NULL, 0);
		return true;
	}
	if (q->cur >= q->n) {
		q->cb(q->arg, HDL_ECONNREFUSED, NULL, 0);
		return true;
	}
	fq_try(q, q->cur + 1);
	if (q->cur >= q->n && !q->answering && q->due == g_now) {
		q->cb(q->arg, HDL_ETIMEDOUT, NULL, 0);
		return true;
	}
	return false;
}

/* ---- engines ------------------------------------------------------------------------------------
 */

typedef struct qrec qrec_t;

typedef struct fenv {
	res_engine_t *e;
	uint64_t armed;
	bool woken;
} fenv_t;

static fenv_t g_env[MAX_ENGINES];
static unsigned g_n_engines = 1;

struct qrec {
	qrec_t *next, *prev; /* every query (g_qrecs) */
	qrec_t *hnext;       /* the name's chain (g_qnames) */
	char name[64];
	res_client_t c;
	res_question_t q;
	char *handle;
	uint32_t idx[16];
	hdl_slice_t types[16];
	char *typebuf;
	bool waiting;
	bool answered;
	res_answer_t ans;
	uint8_t *vals;
	uint64_t at;       /* when answered */
	uint64_t asked_at; /* when asked */
	unsigned engine;
};

static qrec_t *g_qrecs;

#define QNAME_BUCKETS 4096u
static qrec_t *g_qnames[QNAME_BUCKETS];

static unsigned name_hash(const char *s)
{
	return fnv(s, strlen(s)) & (QNAME_BUCKETS - 1);
}

static uint64_t fake_now(void *env)
{
	(void)env;
	return g_now;
}

static void fake_arm(void *env, uint64_t at)
{
	((fenv_t *)env)->armed = at;
}

static void fake_wake(void *env)
{
	((fenv_t *)env)->woken = true;
}

static void record_answer(qrec_t *r, const res_answer_t *a)
{
	r->answered = true;
	r->waiting = false;
	r->ans = *a;
	r->at = g_now;
	if (a->vlen) {
		r->vals = xcalloc(1, a->vlen);
		memcpy(r->vals, a->vals, a->vlen);
		r->ans.vals = r->vals;
	}
}

static void fake_answer(void *env, res_client_t *c)
{
	(void)env;
	qrec_t *r = c->arg;
	record_answer(r, &c->ans);
	res_client_release(c);
}

static uint64_t dc_mono(void *arg)
{
	(void)arg;
	return g_now;
}

static int64_t dc_wall(void *arg)
{
	(void)arg;
	return WALL_BASE + (int64_t)(g_now / 1000);
}

/* Run everything due up to \p until, in time order. */
static void run_until(uint64_t until)
{
	for (;;) {
		for (unsigned i = 0; i < g_n_engines; i++) {
			if (g_env[i].woken) {
				g_env[i].woken = false;
				res_run_posted(g_env[i].e);
			}
		}
		/* drop cancelled queries */
		for (fquery_t **pp = &g_queries; *pp;) {
			if ((*pp)->cancelled) {
				fquery_t *q = *pp;
				*pp = q->next;
				fq_free(q);
			} else {
				pp = &(*pp)->next;
			}
		}
		uint64_t t = UINT64_MAX;
		fquery_t *fq = NULL;
		int ei = -1;
		for (fquery_t *q = g_queries; q; q = q->next) {
			if (q->due < t) {
				t = q->due;
				fq = q;
			}
		}
		for (unsigned i = 0; i < g_n_engines; i++) {
			if (g_env[i].armed < t) {
				t = g_env[i].armed;
				ei = (int)i;
				fq = NULL;
			}
		}
		bool woken = false;
		for (unsigned i = 0; i < g_n_engines; i++)
			woken |= g_env[i].woken;
		if (woken)
			continue;
		if (t > until || t == UINT64_MAX)
			break;
		if (t > g_now)
			g_now = t;
		if (ei >= 0) {
			g_env[ei].armed = UINT64_MAX;
			res_timers(g_env[ei].e);
		} else if (fq) {
			bool ended = fq_event(fq);
			if (ended) {
				for (fquery_t **pp = &g_queries; *pp; pp = &(*pp)->next) {
					if (*pp == fq) {
						*pp = fq->next;
						break;
					}
				}
				fq_free(fq);
			}
		}
	}
	if (until > g_now)
		g_now = until;
}

/* ---- scenario ---------------------------------------------------------------------------------
 */

static conf_t g_conf;
static char *g_up_lines[MAX_LINES];
static char *g_fw_lines[MAX_LINES];
static res_conf_t g_rconf;
static dcache_opts_t g_dopts;
static unsigned g_inflight_max = 4096, g_inflight_waiters = 4096, g_hold_slots = 1024;
static dcache_t *g_dc;
static dflight_t *g_fl;
static res_hold_t *g_hold;
static ups_set_t *g_set;
static bool g_started;
static dcache_clock_t g_clock = {dc_mono, dc_wall, NULL};

static unsigned split(char *line, char **tok, unsigned max)
{
	unsigned n = 0;
	char *p = line;
	while (*p && n < max) {
		while (isspace((unsigned char)*p))
			p++;
		if (!*p || *p == '#')
			break;
		if (*p == '"') {
			char *end = strchr(p + 1, '"');
			if (!end)
				fail("unterminated quote");
			*end = '\0';
			tok[n++] = p + 1;
			p = end + 1;
			continue;
		}
		tok[n++] = p;
		while (*p && !isspace((unsigned char)*p))
			p++;
		if (*p)
			*p++ = '\0';
	}
	return n;
}

static void rconf_set(const char *k, const char *v)
{
	uint32_t x = (uint32_t)strtoul(v, NULL, 10);
	if (!strcmp(k, "timeout_ms"))
		g_rconf.timeout_ms = x;
	else if (!strcmp(k, "try_timeout_ms"))
		g_rconf.try_timeout_ms = x;
	else if (!strcmp(k, "stale_budget_ms"))
		g_rconf.stale_budget_ms = x;
	else if (!strcmp(k, "stale_hold_ms"))
		g_rconf.stale_hold_ms = x;
	else if (!strcmp(k, "max_referrals"))
		g_rconf.max_referrals = x;
	else if (!strcmp(k, "max_recursion"))
		g_rconf.max_recursion = x;
	else if (!strcmp(k, "max_jobs"))
		g_rconf.max_jobs = x;
	else if (!strcmp(k, "site_plaintext"))
		g_rconf.site_plaintext = x != 0;
	else if (!strcmp(k, "engines"))
		g_n_engines = x < 1 ? 1 : x > MAX_ENGINES ? MAX_ENGINES : x;
	else if (!strcmp(k, "negative_ttl"))
		g_dopts.policy.negative_ttl = x;
	else if (!strcmp(k, "min_ttl"))
		g_dopts.policy.min_ttl = x;
	else if (!strcmp(k, "max_ttl"))
		g_dopts.policy.max_ttl = x;
	else if (!strcmp(k, "stale_max"))
		g_dopts.policy.stale_max = x;
	else if (!strcmp(k, "prefetch_pct"))
		g_dopts.policy.prefetch_pct = x;
	else if (!strcmp(k, "cache_size"))
		g_dopts.max_bytes = x;
	else if (!strcmp(k, "inflight_max"))
		g_inflight_max = x;
	else if (!strcmp(k, "inflight_waiters"))
		g_inflight_waiters = x;
	else if (!strcmp(k, "hold_slots"))
		g_hold_slots = x;
	else
		fail("unknown conf key %s", k);
}

static void start(void)
{
	char err[512];
	if (ups_set_build(&g_conf, &g_set, err, sizeof(err)) != HDL_EOK)
		fail("upstream set: %s", err);
	g_dopts.clock = &g_clock;
	if (dcache_new(&g_dopts, &g_dc) != HDL_EOK ||
	    dflight_new(g_inflight_max, g_inflight_waiters, &g_fl) != HDL_EOK ||
	    res_hold_new(g_hold_slots, &g_hold) != HDL_EOK)
		fail("cannot set up the shared state");
	res_shared_t sh = {g_set, g_dc, g_fl, g_hold};
	static const res_ops_t ops = {fake_now, fake_query, fake_cancel,
	                              fake_arm, fake_wake,  fake_answer};
	for (unsigned i = 0; i < g_n_engines; i++) {
		g_env[i].armed = UINT64_MAX;
		if (res_new(&ops, &g_env[i], &g_rconf, &sh, &g_env[i].e) != HDL_EOK)
			fail("res_new");
	}
	g_started = true;
}

static qrec_t *qrec_lookup(const char *name)
{
	for (qrec_t *r = g_qnames[name_hash(name)]; r; r = r->hnext) {
		if (strcmp(r->name, name) == 0)
			return r;
	}
	return NULL;
}

static qrec_t *qrec_find(const char *name)
{
	qrec_t *r = qrec_lookup(name);
	if (!r)
		fail("no query named %s", name);
	return r;
}

static void qrec_free(qrec_t *r)
{
	free(r->handle);
	free(r->typebuf);
	free(r->vals);
	free(r);
}

/* A name asked again (in a loop): the answered query of that name goes. */
static void qrec_forget(const char *name)
{
	qrec_t *r = qrec_lookup(name);
	if (!r)
		return;
	if (r->waiting)
		fail("%s asked again while it waits", name);
	qrec_t **pp = &g_qnames[name_hash(name)];
	while (*pp != r)
		pp = &(*pp)->hnext;
	*pp = r->hnext;
	if (r->prev)
		r->prev->next = r->next;
	else
		g_qrecs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	qrec_free(r);
}

/* "query NAME HANDLE [engine=K] [types=A,B] [idx=1,2] [flags=REC,AT,DNRF] [rec=N]" */
static void do_query(const char *name, char **tok, unsigned n, unsigned seq)
{
	if (!g_started)
		fail("query before start");
	qrec_forget(name);
	qrec_t *r = xcalloc(1, sizeof(*r));
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->handle = xstrdup(tok[0]);
	r->q.handle = hdl_slice_str(r->handle);
	r->q.opflags = HDL_OF_REC;
	r->c.arg = r;
	r->asked_at = g_now;
	for (unsigned i = 1; i < n; i++) {
		char *v = strchr(tok[i], '=');
		if (!v)
			fail("option without =: %s", tok[i]);
		*v++ = '\0';
		if (!strcmp(tok[i], "engine")) {
			r->engine = !strcmp(v, "*") ? seq % g_n_engines : (unsigned)atoi(v);
			if (r->engine >= g_n_engines)
				fail("no engine %u", r->engine);
		} else if (!strcmp(tok[i], "types")) {
			r->typebuf = xstrdup(v);
			char *save = NULL;
			for (char *t = strtok_r(r->typebuf, ",", &save); t && r->q.n_types < 16;
			     t = strtok_r(NULL, ",", &save))
				r->types[r->q.n_types++] = hdl_slice_str(t);
			r->q.types = r->types;
		} else if (!strcmp(tok[i], "idx")) {
			char *save = NULL;
			for (char *t = strtok_r(v, ",", &save); t && r->q.n_idx < 16;
			     t = strtok_r(NULL, ",", &save))
				r->idx[r->q.n_idx++] = (uint32_t)atoi(t);
			r->q.idx = r->idx;
		} else if (!strcmp(tok[i], "flags")) {
			r->q.opflags = 0;
			if (strstr(v, "REC"))
				r->q.opflags |= HDL_OF_REC;
			if (strstr(v, "AT"))
				r->q.opflags |= HDL_OF_AT;
			if (strstr(v, "DNRF"))
				r->q.opflags |= HDL_OF_DNRF;
		} else if (!strcmp(tok[i], "rec")) {
			r->q.recursion = (uint8_t)atoi(v);
		} else {
			fail("unknown query option %s", tok[i]);
		}
	}
	r->next = g_qrecs;
	if (g_qrecs)
		g_qrecs->prev = r;
	g_qrecs = r;
	r->hnext = g_qnames[name_hash(r->name)];
	g_qnames[name_hash(r->name)] = r;
	res_engine_t *e = g_env[r->engine].e;
	uint8_t buf[65536];
	res_answer_t a;
	if (res_try(e, &r->q, buf, sizeof(buf), &a) == RES_DONE) {
		record_answer(r, &a);
		return;
	}
	int rc = res_start(e, &r->q, &r->c);
	if (rc == RES_DONE) {
		record_answer(r, &r->c.ans);
		res_client_release(&r->c);
	} else {
		r->waiting = true;
	}
}

/* Does the values part hold a value TYPE with data DATA? */
static bool has_value(const qrec_t *r, const char *spec)
{
	const char *colon = strchr(spec, ':');
	if (!colon)
		fail("has= wants TYPE:DATA");
	hdl_arena_t a;
	hdl_arena_init(&a, NULL, 0, 1u << 24);
	hdl_value_t *v = NULL;
	uint32_t n = 0;
	bool found = false;
	if (r->ans.vlen && hdl_values_decode(r->ans.vals, r->ans.vlen, &a, &v, &n) != HDL_EOK)
		fail("%s: answer values do not decode", r->name);
	for (uint32_t i = 0; i < n; i++) {
		if (v[i].type.len == (size_t)(colon - spec) &&
		    memcmp(v[i].type.p, spec, v[i].type.len) == 0 &&
		    v[i].data.len == strlen(colon + 1) &&
		    memcmp(v[i].data.p, colon + 1, v[i].data.len) == 0)
			found = true;
	}
	hdl_arena_free(&a);
	return found;
}

static uint32_t n_values(const qrec_t *r)
{
	if (r->ans.vlen < 4)
		return 0;
	const uint8_t *p = r->ans.vals;
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* "expect NAME pending" | "expect NAME rc=N [values=N] [has=T:D] [lacks=T:D] [stale|fresh] [msg=S]
 * [within=MS]" */
static void check(qrec_t *r, char **tok, unsigned n)
{
	if (n == 1 && !strcmp(tok[0], "pending")) {
		if (r->answered)
			fail("%s: answered (RC %u) but expected pending", r->name, r->ans.rcode);
		return;
	}
	if (!r->answered)
		fail("%s: still pending", r->name);
	for (unsigned i = 0; i < n; i++) {
		if (!strncmp(tok[i], "rc=", 3)) {
			uint32_t want = (uint32_t)atoi(tok[i] + 3);
			if (r->ans.rcode != want)
				fail("%s: RC %u (%s), expected %u", r->name, r->ans.rcode,
				     r->ans.message ? r->ans.message : "", want);
		} else if (!strncmp(tok[i], "values=", 7)) {
			uint32_t want = (uint32_t)atoi(tok[i] + 7);
			if (n_values(r) != want)
				fail("%s: %u values, expected %u", r->name, n_values(r), want);
		} else if (!strncmp(tok[i], "has=", 4)) {
			if (!has_value(r, tok[i] + 4))
				fail("%s: no value %s", r->name, tok[i] + 4);
		} else if (!strncmp(tok[i], "lacks=", 6)) {
			if (has_value(r, tok[i] + 6))
				fail("%s: has value %s", r->name, tok[i] + 6);
		} else if (!strcmp(tok[i], "stale")) {
			if (!r->ans.stale)
				fail("%s: not stale", r->name);
		} else if (!strcmp(tok[i], "fresh")) {
			if (r->ans.stale)
				fail("%s: stale", r->name);
		} else if (!strncmp(tok[i], "msg=", 4)) {
			if (!r->ans.message || !strstr(r->ans.message, tok[i] + 4))
				fail("%s: message '%s', expected '%s'", r->name,
				     r->ans.message ? r->ans.message : "", tok[i] + 4);
		} else if (!strncmp(tok[i], "within=", 7)) {
			uint64_t want = strtoull(tok[i] + 7, NULL, 10);
			if (r->at - r->asked_at > want)
				fail("%s: answered after %llu ms, expected within %llu", r->name,
				     (unsigned long long)(r->at - r->asked_at),
				     (unsigned long long)want);
		} else {
			fail("unknown expectation %s", tok[i]);
		}
	}
}

static uint64_t stat_value(const char *name)
{
	uint64_t sum = 0;
	if (!strncmp(name, "dc.", 3)) {
		dcache_stats_t st;
		dcache_get_stats(g_dc, &st);
		name += 3;
		if (!strcmp(name, "hits"))
			return st.hits;
		if (!strcmp(name, "stale_served"))
			return st.stale_served;
		if (!strcmp(name, "inserts"))
			return st.inserts;
		if (!strcmp(name, "entries"))
			return st.entries;
		if (!strcmp(name, "prefetches"))
			return st.prefetches;
		fail("unknown cache counter %s", name);
	}
	if (!strncmp(name, "fl.", 3)) {
		dflight_stats_t st;
		dflight_get_stats(g_fl, &st);
		name += 3;
		if (!strcmp(name, "leaders"))
			return st.leaders;
		if (!strcmp(name, "followers"))
			return st.followers;
		if (!strcmp(name, "keys"))
			return st.keys;
		if (!strcmp(name, "waiters"))
			return st.waiters;
		fail("unknown flight counter %s", name);
	}
	for (unsigned i = 0; i < g_n_engines; i++) {
		res_stats_t st;
		res_get_stats(g_env[i].e, &st);
		uint64_t v;
		if (!strcmp(name, "cache_hits"))
			v = st.cache_hits;
		else if (!strcmp(name, "stale"))
			v = st.stale;
		else if (!strcmp(name, "jobs"))
			v = st.jobs;
		else if (!strcmp(name, "coalesced"))
			v = st.coalesced;
		else if (!strcmp(name, "followed"))
			v = st.followed;
		else if (!strcmp(name, "queries"))
			v = st.queries;
		else if (!strcmp(name, "referrals"))
			v = st.referrals;
		else if (!strcmp(name, "loops"))
			v = st.loops;
		else if (!strcmp(name, "failures"))
			v = st.failures;
		else if (!strcmp(name, "prefetches"))
			v = st.prefetches;
		else if (!strcmp(name, "refused"))
			v = st.refused;
		else if (!strcmp(name, "referred"))
			v = st.referred;
		else if (!strcmp(name, "running"))
			v = st.running;
		else
			fail("unknown engine counter %s", name);
		sum += v;
	}
	return sum;
}

static void value_into(fserver_t *sv, const char *handle, char **tok, unsigned n)
{
	unsigned idx = 1;
	for (unsigned i = 0; i < sv->n_vals; i++) {
		if (strcasecmp(sv->vals[i].handle, handle) == 0 && sv->vals[i].v.index >= idx)
			idx = sv->vals[i].v.index + 1;
	}
	fvalue_t fv;
	parse_value(tok, n, idx, &fv);
	fv.handle = xstrdup(handle);
	sv->vals = realloc(sv->vals, sizeof(fvalue_t) * (sv->n_vals + 1));
	if (!sv->vals)
		fail("out of memory");
	sv->vals[sv->n_vals++] = fv;
}

/* "refer PREFIX RC [handle=H] [TYPE DATA ...]..." (values separated by "|") */
static void rule_into(fserver_t *sv, char **tok, unsigned n)
{
	if (n < 2)
		fail("rule needs PREFIX RC");
	frule_t r;
	memset(&r, 0, sizeof(r));
	r.prefix = xstrdup(tok[0]);
	r.rcode = (uint32_t)atoi(tok[1]);
	r.ref_handle = xstrdup("");
	unsigned i = 2;
	if (i < n && !strncmp(tok[i], "handle=", 7)) {
		free(r.ref_handle);
		r.ref_handle = xstrdup(tok[i] + 7);
		i++;
	}
	while (i < n) {
		unsigned k = i;
		while (k < n && strcmp(tok[k], "|") != 0)
			k++;
		r.vals = realloc(r.vals, sizeof(fvalue_t) * (r.n_vals + 1));
		if (!r.vals)
			fail("out of memory");
		parse_value(tok + i, k - i, r.n_vals + 1, &r.vals[r.n_vals]);
		r.vals[r.n_vals].handle = xstrdup("");
		r.n_vals++;
		i = k + 1;
	}
	sv->rules = realloc(sv->rules, sizeof(frule_t) * (sv->n_rules + 1));
	if (!sv->rules)
		fail("out of memory");
	sv->rules[sv->n_rules++] = r;
}

/* \p in with every "{i}" replaced by \p i, into \p out. */
static void subst(char *out, size_t cap, const char *in, unsigned i)
{
	size_t o = 0;
	while (*in) {
		if (!strncmp(in, "{i}", 3)) {
			int w = snprintf(out + o, cap - o, "%u", i);
			if (w < 0 || (size_t)w >= cap - o)
				fail("token too long: %s", in);
			o += (size_t)w;
			in += 3;
			continue;
		}
		if (o + 1 >= cap)
			fail("token too long: %s", in);
		out[o++] = *in++;
	}
	out[o] = '\0';
}

#define MAX_LOOP 64

/* The lines of a "loop K ... done" block being run again. */
static struct {
	char *line[MAX_LOOP];
	int at[MAX_LOOP]; /* their line numbers */
	unsigned n, next, left;
	int done_line;
} g_loop;

static bool is_cmd(const char *line, const char *cmd)
{
	while (isspace((unsigned char)*line))
		line++;
	size_t n = strlen(cmd);
	return !strncmp(line, cmd, n) && (!line[n] || isspace((unsigned char)line[n]));
}

/* The next line of the scenario into \p line: from the file, or a loop's lines again. */
static bool next_line(FILE *f, char *line, size_t cap)
{
	for (;;) {
		if (g_loop.left) {
			if (g_loop.next < g_loop.n) {
				g_line = g_loop.at[g_loop.next];
				snprintf(line, cap, "%s", g_loop.line[g_loop.next++]);
				return true;
			}
			g_loop.next = 0;
			if (--g_loop.left)
				continue;
			for (unsigned i = 0; i < g_loop.n; i++)
				free(g_loop.line[i]);
			g_loop.n = 0;
			g_line = g_loop.done_line;
		}
		if (!fgets(line, cap, f))
			return false;
		g_line++;
		if (!is_cmd(line, "loop"))
			return true;
		int loop_line = g_line;
		unsigned k = (unsigned)strtoul(strstr(line, "loop") + 4, NULL, 10);
		while (fgets(line, cap, f)) {
			g_line++;
			if (is_cmd(line, "done"))
				break;
			if (is_cmd(line, "loop") || g_loop.n == MAX_LOOP)
				fail("a loop in a loop, or more than %u lines in one", MAX_LOOP);
			g_loop.at[g_loop.n] = g_line;
			g_loop.line[g_loop.n++] = xstrdup(line);
		}
		if (!is_cmd(line, "done")) {
			g_line = loop_line;
			fail("loop without done");
		}
		g_loop.done_line = g_line;
		g_loop.next = 0;
		g_loop.left = k;
		if (k == 0) {
			g_loop.left = 1;
			g_loop.next = g_loop.n; /* nothing to run */
		}
	}
}

/* "records N HANDLE TYPE DATA [opts]" in a server block: N values, "{i}" = 0..N-1. */
static void records_into(fserver_t *sv, char **tok, unsigned n)
{
	unsigned k = (unsigned)atoi(tok[0]);
	for (unsigned i = 0; i < k; i++) {
		char copies[64][256];
		char *t2[64];
		for (unsigned x = 1; x < n && x <= 64; x++) {
			subst(copies[x - 1], sizeof(copies[0]), tok[x], i);
			t2[x - 1] = copies[x - 1];
		}
		value_into(sv, t2[0], t2 + 1, n - 2);
	}
}

static void run_file(FILE *f)
{
	char line[4096];
	char *tok[64];
	fserver_t *cur = NULL;
	while (next_line(f, line, sizeof(line))) {
		unsigned n = split(line, tok, 64);
		if (n == 0)
			continue;
		const char *cmd = tok[0];
		if (cur) {
			if (!strcmp(cmd, "end"))
				cur = NULL;
			else if (!strcmp(cmd, "record") && n >= 4)
				value_into(cur, tok[1], tok + 2, n - 2);
			else if (!strcmp(cmd, "records") && n >= 5)
				records_into(cur, tok + 1, n - 1);
			else if (!strcmp(cmd, "rule"))
				rule_into(cur, tok + 1, n - 1);
			else
				fail("unknown server line %s", cmd);
			continue;
		}
		if (!strcmp(cmd, "conf") && n == 3) {
			rconf_set(tok[1], tok[2]);
		} else if (!strcmp(cmd, "upstream") || !strcmp(cmd, "forward")) {
			char buf[1024] = "";
			for (unsigned i = 1; i < n; i++) {
				strncat(buf, tok[i], sizeof(buf) - strlen(buf) - 2);
				strcat(buf, " ");
			}
			char **lines = cmd[0] == 'u' ? g_up_lines : g_fw_lines;
			unsigned *cnt = cmd[0] == 'u' ? &g_conf.n_upstream : &g_conf.n_forward;
			if (*cnt == MAX_LINES)
				fail("too many lines");
			lines[(*cnt)++] = xstrdup(buf);
		} else if (!strcmp(cmd, "server") && n >= 2) {
			if (g_n_servers == MAX_SERVERS)
				fail("too many servers");
			cur = &g_servers[g_n_servers++];
			parse_hostport(tok[1], cur->host, sizeof(cur->host), &cur->port);
			cur->delay_ms = 10;
			for (unsigned i = 2; i < n; i++) {
				if (!strncmp(tok[i], "delay=", 6))
					cur->delay_ms = (uint32_t)atoi(tok[i] + 6);
			}
		} else if (!strcmp(cmd, "start")) {
			start();
		} else if (!strcmp(cmd, "query") && n >= 3) {
			do_query(tok[1], tok + 2, n - 2, 0);
		} else if (!strcmp(cmd, "repeat") && n >= 5 && !strcmp(tok[2], "query")) {
			unsigned k = (unsigned)atoi(tok[1]);
			for (unsigned i = 0; i < k; i++) {
				char name[64];
				char *t2[64];
				char copies[64][256];
				unsigned m = n - 4;
				for (unsigned x = 0; x < m; x++) {
					subst(copies[x], sizeof(copies[x]), tok[4 + x], i);
					t2[x] = copies[x];
				}
				snprintf(name, sizeof(name), "%s%u", tok[3], i);
				do_query(name, t2, m, i);
			}
		} else if (!strcmp(cmd, "expect") && n >= 3) {
			check(qrec_find(tok[1]), tok + 2, n - 2);
		} else if (!strcmp(cmd, "expect-all") && n >= 4) {
			unsigned k = (unsigned)atoi(tok[2]);
			for (unsigned i = 0; i < k; i++) {
				char name[64];
				snprintf(name, sizeof(name), "%s%u", tok[1], i);
				char *t2[64];
				char copies[64][256];
				for (unsigned x = 0; x + 3 < n; x++) {
					subst(copies[x], sizeof(copies[x]), tok[3 + x], i);
					t2[x] = copies[x];
				}
				check(qrec_find(name), t2, n - 3);
			}
		} else if (!strcmp(cmd, "time") && n == 2) {
			run_until(g_now + strtoull(tok[1], NULL, 10));
		} else if (!strcmp(cmd, "server-mode") && n >= 3) {
			fserver_t *sv = server_arg(tok[1]);
			for (unsigned i = 2; i < n; i++) {
				if (!strcmp(tok[i], "up"))
					sv->mode = S_UP;
				else if (!strcmp(tok[i], "down"))
					sv->mode = S_DOWN;
				else if (!strcmp(tok[i], "refuse"))
					sv->mode = S_REFUSE;
				else if (!strncmp(tok[i], "delay=", 6))
					sv->delay_ms = (uint32_t)atoi(tok[i] + 6);
				else
					fail("unknown server mode %s", tok[i]);
			}
		} else if (!strcmp(cmd, "record") && n >= 5) {
			value_into(server_arg(tok[1]), tok[2], tok + 3, n - 3);
		} else if (!strcmp(cmd, "clear") && n == 3) {
			fserver_t *sv = server_arg(tok[1]);
			for (unsigned i = 0; i < sv->n_vals;) {
				if (strcasecmp(sv->vals[i].handle, tok[2]) == 0) {
					fvalue_free(&sv->vals[i]);
					sv->vals[i] = sv->vals[--sv->n_vals];
				} else {
					i++;
				}
			}
		} else if (!strcmp(cmd, "count") && n == 3) {
			unsigned want = (unsigned)atoi(tok[2]);
			fserver_t *sv = server_arg(tok[1]);
			if (sv->count != want)
				fail("server %s got %u queries, expected %u", tok[1], sv->count,
				     want);
		} else if (!strcmp(cmd, "stat") && n == 3) {
			uint64_t want = strtoull(tok[2], NULL, 10);
			uint64_t got = stat_value(tok[1]);
			if (got != want)
				fail("%s is %llu, expected %llu", tok[1], (unsigned long long)got,
				     (unsigned long long)want);
		} else if (!strcmp(cmd, "stat<=") && n == 3) {
			uint64_t want = strtoull(tok[2], NULL, 10);
			uint64_t got = stat_value(tok[1]);
			if (got > want)
				fail("%s is %llu, expected at most %llu", tok[1],
				     (unsigned long long)got, (unsigned long long)want);
		} else if (!strcmp(cmd, "cancel") && n == 2) {
			qrec_t *r = qrec_find(tok[1]);
			if (!r->waiting)
				fail("%s is not waiting", tok[1]);
			res_client_cancel(g_env[r->engine].e, &r->c);
			r->waiting = false;
		} else if (!strcmp(cmd, "per-key-reset") && n == 1) {
			kcount_reset();
		} else if (!strcmp(cmd, "per-key<=") && n == 2) {
			unsigned want = (unsigned)atoi(tok[1]);
			const kcount_t *k = kcount_max();
			if (k && k->n > want)
				fail("%s was asked upstream %u times, expected at most %u",
				     k->handle, k->n, want);
		} else {
			fail("unknown step %s", cmd);
		}
	}
	if (cur)
		fail("server block without end");
}

static void teardown(void)
{
	for (unsigned i = 0; i < g_n_engines; i++)
		res_free(g_env[i].e);
	while (g_queries) {
		fquery_t *q = g_queries;
		g_queries = q->next;
		fq_free(q);
	}
	while (g_qrecs) {
		qrec_t *r = g_qrecs;
		g_qrecs = r->next;
		qrec_free(r);
	}
	kcount_reset();
	for (unsigned i = 0; i < g_n_servers; i++) {
		fserver_t *sv = &g_servers[i];
		for (unsigned k = 0; k < sv->n_vals; k++)
			fvalue_free(&sv->vals[k]);
		free(sv->vals);
		for (unsigned k = 0; k < sv->n_rules; k++) {
			for (unsigned x = 0; x < sv->rules[k].n_vals; x++)
				fvalue_free(&sv->rules[k].vals[x]);
			free(sv->rules[k].vals);
			free(sv->rules[k].prefix);
			free(sv->rules[k].ref_handle);
		}
		free(sv->rules);
	}
	for (unsigned i = 0; i < g_conf.n_upstream; i++)
		free(g_up_lines[i]);
	for (unsigned i = 0; i < g_conf.n_forward; i++)
		free(g_fw_lines[i]);
	ups_set_free(g_set);
	dcache_free(g_dc);
	dflight_free(g_fl);
	res_hold_free(g_hold);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: replay SCENARIO.rpl\n");
		return 2;
	}
	g_file = argv[1];
	FILE *f = fopen(argv[1], "r");
	if (!f) {
		perror(argv[1]);
		return 2;
	}
	log_set_level(LOG_LVL_WARN);
	res_conf_default(&g_rconf);
	g_dopts.max_bytes = 1u << 20;
	g_dopts.policy.max_ttl = 86400;
	g_dopts.policy.negative_ttl = 60;
	g_dopts.policy.stale_max = 86400;
	g_dopts.policy.prefetch_pct = 10;
	g_conf.upstream = g_up_lines;
	g_conf.forward = g_fw_lines;
	g_now = 1000;
	run_file(f);
	fclose(f);
	g_line = 0;
	teardown();
	printf("%s: ok\n", argv[1]);
	return 0;
}
