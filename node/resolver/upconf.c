/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief `upstream` / `forward` / `dns_server` configuration lines, their cross-checks, the pool
 *        and resolver settings, and the upstream set (targets + TLS contexts + forward rules).
 */
#include "node/resolver/upconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "hdl/error.h"
#include "node/common/log.h"

#define TOKENS_MAX     16u
#define DNS_MAX_TTL_S  3600u
#define DNS_TIMEOUT_MS 2000u

/* Split \p v at blanks into \p tok (pointers into \p buf). \return tokens, or -1 when too many */
static int split(const char *v, char *buf, size_t cap, char *tok[TOKENS_MAX])
{
	snprintf(buf, cap, "%s", v);
	int n = 0;
	for (char *save = NULL, *t = strtok_r(buf, " \t", &save); t;
	     t = strtok_r(NULL, " \t", &save)) {
		if (n == (int)TOKENS_MAX)
			return -1;
		tok[n++] = t;
	}
	return n;
}

static bool name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > UPS_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return false;
	}
	return true;
}

static bool host_ok(const char *s)
{
	uint8_t b[16];
	return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1 || dns_name_ok(s);
}

/* "sha256:" + standard base64 of 32 bytes (44 characters, one '=') */
static bool pin_parse(const char *v, uint8_t pin[UPS_PIN_LEN])
{
	uint8_t out[UPS_PIN_LEN + 3];
	if (strncasecmp(v, "sha256:", 7) != 0)
		return false;
	v += 7;
	if (strlen(v) != 44 || v[43] != '=' || v[42] == '=')
		return false;
	for (size_t i = 0; i < 43; i++) {
		char c = v[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '+' || c == '/'))
			return false;
	}
	if (EVP_DecodeBlock(out, (const unsigned char *)v, 44) != UPS_PIN_LEN + 1)
		return false;
	memcpy(pin, out, UPS_PIN_LEN);
	return true;
}

static int file_opt(const char *key, const char *v, char *dst, char *err, size_t errlen)
{
	if (strlen(v) > UPS_PATH_MAX) {
		snprintf(err, errlen, "%s: file name too long", key);
		return HDL_ECONF;
	}
	if (access(v, R_OK) != 0) {
		snprintf(err, errlen, "%s: cannot read %s: %s", key, v, strerror(errno));
		return HDL_ECONF;
	}
	strcpy(dst, v);
	return HDL_EOK;
}

int ups_conf_parse_upstream(const char *v, ups_conf_upstream_t *u, char *err, size_t errlen)
{
	char buf[4 * UPS_PATH_MAX + 512], *tok[TOKENS_MAX];
	memset(u, 0, sizeof(*u));
	u->verify = true;
	if (strlen(v) >= sizeof(buf)) {
		snprintf(err, errlen, "line too long");
		return HDL_ECONF;
	}
	int n = split(v, buf, sizeof(buf), tok);
	if (n < 2) {
		snprintf(err, errlen, "expected NAME HOST:PORT [transport=...] [options]%s",
		         n < 0 ? " (too many options)" : "");
		return HDL_ECONF;
	}
	if (!name_ok(tok[0])) {
		snprintf(err, errlen, "'%s' is not a name (letters, digits, '-', '_', '.'; 1..%u)",
		         tok[0], UPS_NAME_MAX);
		return HDL_ECONF;
	}
	strcpy(u->name, tok[0]);
	if (ups_target_set(&u->target, tok[1], UPS_TLS, NULL) != HDL_EOK ||
	    !host_ok(u->target.host)) {
		snprintf(err, errlen, "'%s' is not HOST:PORT ([IPv6]:PORT for IPv6)", tok[1]);
		return HDL_ECONF;
	}
	unsigned seen = 0;
	static const char *const keys[] = {"transport", "sni", "ca",     "cert",
	                                   "key",       "pin", "verify", "pipeline"};
	for (int i = 2; i < n; i++) {
		char *eq = strchr(tok[i], '=');
		unsigned k = 0;
		if (eq) {
			*eq = '\0';
			while (k < sizeof(keys) / sizeof(keys[0]) && strcmp(keys[k], tok[i]) != 0)
				k++;
		}
		if (!eq || !eq[1] || k == sizeof(keys) / sizeof(keys[0])) {
			snprintf(err, errlen, "'%s' is not an option (%s)", tok[i],
			         "transport= sni= ca= cert= key= pin= verify= pipeline=");
			return HDL_ECONF;
		}
		const char *val = eq + 1;
		if (seen & (1u << k)) {
			snprintf(err, errlen, "%s given twice", keys[k]);
			return HDL_ECONF;
		}
		seen |= 1u << k;
		int r = HDL_EOK;
		switch (k) {
		case 0:
			if (ups_transport_parse(val, &u->target.transport) != HDL_EOK) {
				snprintf(err, errlen,
				         "transport: '%s' is not tls, https, http, tcp or udp",
				         val);
				r = HDL_ECONF;
			}
			break;
		case 1:
			if (strlen(val) > UPS_HOST_MAX || !host_ok(val)) {
				snprintf(err, errlen, "sni: '%s' is not a host name or address",
				         val);
				r = HDL_ECONF;
			} else {
				strcpy(u->target.name, val);
			}
			break;
		case 2: r = file_opt("ca", val, u->ca, err, errlen); break;
		case 3: r = file_opt("cert", val, u->cert, err, errlen); break;
		case 4: r = file_opt("key", val, u->key, err, errlen); break;
		case 5:
			if (!pin_parse(val, u->pin)) {
				snprintf(err, errlen, "pin: '%s' is not sha256:BASE64 of 32 bytes",
				         val);
				r = HDL_ECONF;
			}
			u->has_pin = true;
			break;
		case 6:
			if (strcasecmp(val, "yes") == 0) {
				u->verify = true;
			} else if (strcasecmp(val, "no") == 0) {
				u->verify = false;
			} else {
				snprintf(err, errlen, "verify: '%s' is not yes or no", val);
				r = HDL_ECONF;
			}
			break;
		default: {
			char *end;
			unsigned long p = strtoul(val, &end, 10);
			if (*end || val[0] < '0' || val[0] > '9' || p < 1 || p > UPS_MAX_PIPELINE) {
				snprintf(err, errlen, "pipeline: '%s' is not 1..%u", val,
				         UPS_MAX_PIPELINE);
				r = HDL_ECONF;
			}
			u->target.pipeline = (uint16_t)p;
			break;
		}
		}
		if (r != HDL_EOK)
			return r;
	}
	bool tls = ups_transport_is_tls(u->target.transport);
	if (!tls && (seen & 0x7eu)) {
		snprintf(err, errlen,
		         "sni=, ca=, cert=, key=, pin= and verify= need transport=tls "
		         "or https");
		return HDL_ECONF;
	}
	if ((seen & (1u << 7)) && u->target.transport != UPS_TLS &&
	    u->target.transport != UPS_TCP) {
		snprintf(err, errlen, "pipeline= needs transport=tls or tcp");
		return HDL_ECONF;
	}
	if (!u->cert[0] != !u->key[0]) {
		snprintf(err, errlen, "a client certificate needs both cert= and key=");
		return HDL_ECONF;
	}
	return HDL_EOK;
}

static bool prefix_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > UPS_PREFIX_MAX)
		return false;
	if (strcmp(s, "*") == 0)
		return true;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= 0x20 || c == 0x7f || c == '/' || c == '*')
			return false;
	}
	return true;
}

int ups_conf_parse_forward(const char *v, ups_conf_forward_t *f, char *err, size_t errlen)
{
	char buf[UPS_PREFIX_MAX + UPS_FORWARD_NAMES * (UPS_NAME_MAX + 2) + 64], *tok[TOKENS_MAX];
	memset(f, 0, sizeof(*f));
	if (strlen(v) >= sizeof(buf)) {
		snprintf(err, errlen, "line too long");
		return HDL_ECONF;
	}
	int n = split(v, buf, sizeof(buf), tok);
	if (n < 2 || n > (int)UPS_FORWARD_NAMES + 1) {
		snprintf(err, errlen, "expected PREFIX (or *) and 1..%u upstream names",
		         UPS_FORWARD_NAMES);
		return HDL_ECONF;
	}
	if (!prefix_ok(tok[0])) {
		snprintf(err, errlen, "'%s' is not a prefix (no blanks, '/' or '*') or *", tok[0]);
		return HDL_ECONF;
	}
	strcpy(f->prefix, tok[0]);
	for (int i = 1; i < n; i++) {
		if (!name_ok(tok[i])) {
			snprintf(err, errlen, "'%s' is not an upstream name", tok[i]);
			return HDL_ECONF;
		}
		strcpy(f->names[f->n++], tok[i]);
	}
	return HDL_EOK;
}

int ups_conf_check_upstream(const char *v, char *err, size_t errlen)
{
	ups_conf_upstream_t *u = malloc(sizeof(*u));
	if (!u) {
		snprintf(err, errlen, "out of memory");
		return HDL_ECONF;
	}
	int r = ups_conf_parse_upstream(v, u, err, errlen);
	free(u);
	return r;
}

int ups_conf_check_forward(const char *v, char *err, size_t errlen)
{
	ups_conf_forward_t f;
	return ups_conf_parse_forward(v, &f, err, errlen);
}

int ups_conf_check_dns_server(const char *v, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	if (conf_parse_addr(v, &ss, &sl) != HDL_EOK) {
		snprintf(err, errlen, "'%s' is not ADDR:PORT (numeric IPv4, or [IPv6]:PORT)", v);
		return HDL_ECONF;
	}
	return HDL_EOK;
}

/* The name of the upstream line \p v (first token) into \p out. */
static void first_token(const char *v, char *out, size_t cap)
{
	size_t n = strcspn(v, " \t");
	if (n >= cap)
		n = cap - 1;
	memcpy(out, v, n);
	out[n] = '\0';
}

int ups_conf_validate(const conf_t *c, char *err, size_t errlen)
{
	char a[UPS_NAME_MAX + 2], b[UPS_NAME_MAX + 2];
	for (unsigned i = 0; i < c->n_upstream; i++) {
		first_token(c->upstream[i], a, sizeof(a));
		for (unsigned j = 0; j < i; j++) {
			first_token(c->upstream[j], b, sizeof(b));
			if (strcmp(a, b) == 0) {
				snprintf(err, errlen, "upstream: the name %s is used twice", a);
				return HDL_ECONF;
			}
		}
	}
	for (unsigned i = 0; i < c->n_forward; i++) {
		ups_conf_forward_t f, g;
		if (ups_conf_parse_forward(c->forward[i], &f, err, errlen) != HDL_EOK)
			return HDL_ECONF;
		for (unsigned k = 0; k < f.n; k++) {
			bool found = false;
			for (unsigned j = 0; j < c->n_upstream && !found; j++) {
				first_token(c->upstream[j], a, sizeof(a));
				found = strcmp(a, f.names[k]) == 0;
			}
			if (!found) {
				snprintf(err, errlen, "forward: %s: no upstream named %s", f.prefix,
				         f.names[k]);
				return HDL_ECONF;
			}
		}
		for (unsigned j = 0; j < i; j++) {
			if (ups_conf_parse_forward(c->forward[j], &g, err, errlen) == HDL_EOK &&
			    strcasecmp(f.prefix, g.prefix) == 0) {
				snprintf(err, errlen, "forward: two rules for %s", f.prefix);
				return HDL_ECONF;
			}
		}
	}
	return HDL_EOK;
}

void ups_conf_limits(const conf_t *c, ups_limits_t *l)
{
	ups_limits_default(l);
	l->max_conns_per_server = c->upstream_max_conns_per_server;
	l->max_conns = c->upstream_max_conns;
	l->max_queries = c->upstream_max_queries;
	l->max_servers = c->upstream_max_servers;
	l->max_reply = c->upstream_max_reply;
	l->connect_timeout_ms = c->upstream_connect_timeout_ms;
	l->idle_timeout_ms = c->upstream_idle_timeout_ms;
	l->udp_retry_ms = c->upstream_udp_retry_ms;
	l->fail_threshold = c->upstream_fail_threshold;
	l->backoff_max_ms = c->upstream_backoff_max_ms;
	if (l->backoff_max_ms < l->backoff_ms)
		l->backoff_ms = l->backoff_max_ms;
}

void ups_conf_dns(const conf_t *c, dns_conf_t *d)
{
	memset(d, 0, sizeof(*d));
	d->servers = (const char *const *)c->dns_server;
	d->n_servers = c->n_dns_server;
	d->cache_size = c->dns_cache_size;
	d->max_ttl_s = DNS_MAX_TTL_S;
	d->timeout_ms = DNS_TIMEOUT_MS;
}

/* ---- the set ---------------------------------------------------------------------------- */

typedef struct set_upstream {
	char name[UPS_NAME_MAX + 1];
	ups_target_t target; /**< target.tls owned (one reference) */
} set_upstream_t;

typedef struct set_rule {
	char prefix[UPS_PREFIX_MAX + 1];
	unsigned n;
	unsigned idx[UPS_FORWARD_NAMES]; /**< into ups_set.ups */
} set_rule_t;

struct ups_set {
	set_upstream_t *ups;
	unsigned n_ups;
	set_rule_t *rules;
	unsigned n_rules;
};

void ups_set_free(ups_set_t *s)
{
	if (!s)
		return;
	for (unsigned i = 0; i < s->n_ups; i++)
		ups_tls_unref(s->ups[i].target.tls);
	free(s->ups);
	free(s->rules);
	free(s);
}

static int set_add_upstream(ups_set_t *s, const char *line, char *err, size_t errlen)
{
	char why[512];
	ups_conf_upstream_t *u = malloc(sizeof(*u));
	if (!u)
		return HDL_ENOMEM;
	int r = ups_conf_parse_upstream(line, u, why, sizeof(why));
	if (r != HDL_EOK) {
		snprintf(err, errlen, "upstream: %s", why);
		free(u);
		return r;
	}
	set_upstream_t *e = &s->ups[s->n_ups];
	strcpy(e->name, u->name);
	e->target = u->target;
	if (ups_transport_is_tls(u->target.transport)) {
		ups_tls_conf_t tc = {
		    .label = u->name,
		    .ca_file = u->ca,
		    .cert_file = u->cert,
		    .key_file = u->key,
		    .verify = u->verify,
		    .has_pin = u->has_pin,
		};
		memcpy(tc.pin, u->pin, UPS_PIN_LEN);
		r = ups_tls_new(&tc, &e->target.tls, err, errlen);
		if (r != HDL_EOK) {
			free(u);
			return r == HDL_EINVAL ? HDL_ECONF : r;
		}
	}
	s->n_ups++;
	free(u);
	return HDL_EOK;
}

int ups_set_build(const conf_t *c, ups_set_t **out, char *err, size_t errlen)
{
	*out = NULL;
	int r = ups_conf_validate(c, err, errlen);
	if (r != HDL_EOK)
		return r;
	ups_set_t *s = calloc(1, sizeof(*s));
	if (!s)
		return HDL_ENOMEM;
	s->ups = calloc(c->n_upstream ? c->n_upstream : 1, sizeof(*s->ups));
	s->rules = calloc(c->n_forward ? c->n_forward : 1, sizeof(*s->rules));
	if (!s->ups || !s->rules) {
		ups_set_free(s);
		return HDL_ENOMEM;
	}
	for (unsigned i = 0; i < c->n_upstream; i++) {
		if ((r = set_add_upstream(s, c->upstream[i], err, errlen)) != HDL_EOK) {
			ups_set_free(s);
			return r;
		}
	}
	for (unsigned i = 0; i < c->n_forward; i++) {
		ups_conf_forward_t f;
		set_rule_t *rule = &s->rules[s->n_rules++];
		ups_conf_parse_forward(c->forward[i], &f, err, errlen); /* validated above */
		strcpy(rule->prefix, f.prefix);
		for (unsigned k = 0; k < f.n; k++) {
			unsigned j = 0;
			while (j < s->n_ups && strcmp(s->ups[j].name, f.names[k]) != 0)
				j++;
			rule->idx[rule->n++] = j; /* found: ups_conf_validate() checked */
		}
	}
	*out = s;
	return HDL_EOK;
}

const ups_target_t *ups_set_find(const ups_set_t *s, const char *name)
{
	for (unsigned i = 0; i < s->n_ups; i++) {
		if (strcmp(s->ups[i].name, name) == 0)
			return &s->ups[i].target;
	}
	return NULL;
}

/* Does rule prefix \p r cover \p p (equal, or a dot-separated parent of it)? */
static bool rule_covers(const char *r, hdl_slice_t p)
{
	size_t rl = strlen(r);
	if (rl > p.len || strncasecmp(r, (const char *)p.p, rl) != 0)
		return false;
	return rl == p.len || p.p[rl] == '.';
}

unsigned ups_set_route(const ups_set_t *s, hdl_slice_t prefix, ups_target_t *out, unsigned max)
{
	const set_rule_t *best = NULL, *star = NULL;
	size_t best_len = 0;
	for (unsigned i = 0; i < s->n_rules; i++) {
		const set_rule_t *r = &s->rules[i];
		if (strcmp(r->prefix, "*") == 0) {
			star = r;
			continue;
		}
		size_t rl = strlen(r->prefix);
		if (rule_covers(r->prefix, prefix) && rl > best_len) {
			best = r;
			best_len = rl;
		}
	}
	if (!best)
		best = star;
	if (!best)
		return 0;
	unsigned n = 0;
	for (unsigned k = 0; k < best->n && n < max; k++)
		out[n++] = s->ups[best->idx[k]].target;
	return n;
}

/* The same host: equal addresses when both are numeric (IPv6 spellings differ), else the name. */
static bool same_host(const char *a, const char *b)
{
	uint8_t x[16], y[16];
	if (inet_pton(AF_INET, a, x) == 1)
		return inet_pton(AF_INET, b, y) == 1 && memcmp(x, y, 4) == 0;
	if (inet_pton(AF_INET6, a, x) == 1)
		return inet_pton(AF_INET6, b, y) == 1 && memcmp(x, y, 16) == 0;
	return strcasecmp(a, b) == 0;
}

unsigned ups_set_by_host(const ups_set_t *s, const char *host, ups_target_t *out, unsigned max)
{
	unsigned n = 0;
	for (unsigned i = 0; s && i < s->n_ups && n < max; i++) {
		if (same_host(s->ups[i].target.host, host))
			out[n++] = s->ups[i].target;
	}
	return n;
}
