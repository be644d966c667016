/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief The REST API's credentials (see rest.h): the Authorization header (Basic, and the
 *        Handle scheme of handle-protocol.md §13.4), the node-wide session table, and the
 *        check of a request's credentials against the identity's keys in the store.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hdl/auth.h"
#include "hdl/error.h"
#include "node/common/log.h"
#include "node/server/admin.h"
#include "node/server/rest.h"
#include "node/server/worker.h"
#include "node/store/store.h"
#include "proto/wire.h"

#define SESS_BUCKETS 4096u
#define SRC_SLOTS    1024u
#define BASIC_MAX    1024u /**< decoded Basic credentials at most */
#define SIG_MAX      (HDL_SIG_MAX_LEN + 64u)

/* ---- the Authorization header ------------------------------------------------------------ */

static bool ieq(const char *p, size_t n, const char *s)
{
	return strlen(s) == n && strncasecmp(p, s, n) == 0;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t';
}

/* Set *slot to \p v; a parameter given twice is malformed. */
static int put_param(http_str_t *slot, http_str_t v)
{
	if (slot->p)
		return HDL_EMALF;
	*slot = v;
	return HDL_EOK;
}

int rest_authz_parse(http_str_t v, rest_authz_t *out)
{
	memset(out, 0, sizeof(*out));
	if (v.len > REST_AUTH_MAX)
		return HDL_ELIMIT;
	size_t i = 0;
	while (i < v.len && is_space(v.p[i]))
		i++;
	size_t s0 = i;
	while (i < v.len && !is_space(v.p[i]))
		i++;
	http_str_t scheme = {v.p + s0, i - s0};
	while (i < v.len && is_space(v.p[i]))
		i++;
	if (scheme.len == 0)
		return HDL_EMALF;
	if (ieq(scheme.p, scheme.len, "Basic")) {
		size_t e = v.len;
		while (e > i && is_space(v.p[e - 1]))
			e--;
		if (e == i)
			return HDL_EMALF;
		for (size_t k = i; k < e; k++) {
			if (is_space(v.p[k]))
				return HDL_EMALF; /* one token */
		}
		out->scheme = REST_SCHEME_BASIC;
		out->basic = (http_str_t){v.p + i, e - i};
		return HDL_EOK;
	}
	if (!ieq(scheme.p, scheme.len, "Handle")) {
		out->scheme = REST_SCHEME_OTHER;
		return HDL_EOK;
	}
	out->scheme = REST_SCHEME_HANDLE;
	while (i < v.len) {
		/* name */
		size_t ns = i;
		while (i < v.len && v.p[i] != '=' && v.p[i] != ',' && !is_space(v.p[i]))
			i++;
		http_str_t name = {v.p + ns, i - ns};
		while (i < v.len && is_space(v.p[i]))
			i++;
		if (name.len == 0 || i >= v.len || v.p[i] != '=')
			return HDL_EMALF;
		i++;
		while (i < v.len && is_space(v.p[i]))
			i++;
		/* value: quoted (no escapes) or a token */
		http_str_t val;
		if (i < v.len && v.p[i] == '"') {
			size_t vs = ++i;
			while (i < v.len && v.p[i] != '"') {
				if (v.p[i] == '\\')
					return HDL_EMALF;
				i++;
			}
			if (i >= v.len)
				return HDL_EMALF;
			val = (http_str_t){v.p + vs, i - vs};
			i++;
		} else {
			/* a token (RFC 9110 tchar) or token68 (base64 with '/' and '=') */
			size_t vs = i;
			while (i < v.len && v.p[i] != ',' && !is_space(v.p[i])) {
				unsigned char ch = (unsigned char)v.p[i];
				if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
				      (ch >= 'A' && ch <= 'Z') ||
				      strchr("!#$%&'*+-.^_`|~/=", ch)) ||
				    ch == 0)
					return HDL_EMALF;
				i++;
			}
			val = (http_str_t){v.p + vs, i - vs};
		}
		static const struct {
			const char *name;
			size_t off;
		} known[] = {
		    {"sessionId", offsetof(rest_authz_t, session_id)},
		    {"version", offsetof(rest_authz_t, version)},
		    {"id", offsetof(rest_authz_t, id)},
		    {"type", offsetof(rest_authz_t, type)},
		    {"alg", offsetof(rest_authz_t, alg)},
		    {"cnonce", offsetof(rest_authz_t, cnonce)},
		    {"signature", offsetof(rest_authz_t, signature)},
		    {"salt", offsetof(rest_authz_t, salt)},
		    {"iterations", offsetof(rest_authz_t, iterations)},
		    {"length", offsetof(rest_authz_t, length)},
		};
		for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++) {
			if (ieq(name.p, name.len, known[k].name) &&
			    put_param((http_str_t *)((char *)out + known[k].off), val) != HDL_EOK)
				return HDL_EMALF;
		}
		/* separator */
		while (i < v.len && is_space(v.p[i]))
			i++;
		if (i < v.len) {
			if (v.p[i] != ',')
				return HDL_EMALF;
			i++;
			while (i < v.len && is_space(v.p[i]))
				i++;
		}
	}
	return HDL_EOK;
}

long rest_b64_decode(http_str_t in, uint8_t *out, size_t cap)
{
	if (in.len == 0)
		return 0;
	if (in.len % 4 || in.len / 4 * 3 > cap || in.len > INT32_MAX)
		return -1;
	for (size_t i = 0; i < in.len; i++) {
		unsigned char ch = (unsigned char)in.p[i];
		bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		          (ch >= '0' && ch <= '9') || ch == '+' || ch == '/' ||
		          (ch == '=' && i + 2 >= in.len);
		if (!ok || (ch != '=' && i && in.p[i - 1] == '='))
			return -1;
	}
	int n = EVP_DecodeBlock(out, (const unsigned char *)in.p, (int)in.len);
	if (n < 0)
		return -1;
	/* EVP_DecodeBlock counts the padding as zero bytes */
	if (in.p[in.len - 1] == '=')
		n--;
	if (in.p[in.len - 2] == '=')
		n--;
	return n;
}

/* "INDEX:HANDLE" (or a bare HANDLE: index 0) in \p s. */
static int parse_id(hdl_slice_t s, hdl_slice_t *handle, uint32_t *index)
{
	uint32_t i = 0;
	uint64_t idx = 0;
	while (i < s.len && s.p[i] >= '0' && s.p[i] <= '9' && idx <= UINT32_MAX)
		idx = idx * 10u + (uint64_t)(s.p[i++] - '0');
	if (i > 0 && i < s.len && s.p[i] == ':' && idx <= UINT32_MAX) {
		*index = (uint32_t)idx;
		*handle = (hdl_slice_t){s.p + i + 1, s.len - i - 1};
	} else {
		*index = 0;
		*handle = s;
	}
	if (handle->len == 0 || handle->len > HDL_MAX_HANDLE_LEN ||
	    hdl_name_check(handle->p, handle->len) != HDL_EOK)
		return HDL_EMALF;
	return HDL_EOK;
}

int rest_basic_decode(http_str_t token, uint8_t *buf, size_t cap, hdl_slice_t *handle,
                      uint32_t *index, hdl_slice_t *secret)
{
	long n = rest_b64_decode(token, buf, cap);
	if (n < 0)
		return token.len / 4 * 3 > cap ? HDL_ELIMIT : HDL_EMALF;
	uint8_t *colon = memchr(buf, ':', (size_t)n);
	if (!colon)
		return HDL_EMALF;
	*secret = (hdl_slice_t){colon + 1, (uint32_t)(buf + n - colon - 1)};
	/* the user part, percent-decoded in place ('+' stays: decodeURLIgnorePlus) */
	*colon = '\0';
	long ul = http_pct_decode((char *)buf, false);
	if (ul < 0 || memchr(buf, '\0', (size_t)ul))
		return HDL_EMALF;
	return parse_id((hdl_slice_t){buf, (uint32_t)ul}, handle, index);
}

/* ---- sessions ------------------------------------------------------------------------------ */

typedef struct sess {
	struct sess *hnext;         /* hash chain */
	struct sess *older, *newer; /* creation order (the expiry walk) */
	uint64_t expires_ms;
	uint32_t src; /* source slot + 1 */
	rest_session_t s;
} sess_t;

struct rest_sessions {
	pthread_mutex_t mu;
	sess_t *buckets[SESS_BUCKETS];
	sess_t *oldest, *newest;
	unsigned count, max;
	uint64_t k0, k1; /* random hash key (ids and sources are chosen by peers) */
	uint16_t src_count[SRC_SLOTS];
};

int rest_sessions_new(unsigned max, rest_sessions_t **out)
{
	rest_sessions_t *t = calloc(1, sizeof(*t));
	if (!t || pthread_mutex_init(&t->mu, NULL) != 0) {
		free(t);
		return HDL_ENOMEM;
	}
	if (RAND_bytes((unsigned char *)&t->k0, sizeof(t->k0)) != 1 ||
	    RAND_bytes((unsigned char *)&t->k1, sizeof(t->k1)) != 1) {
		pthread_mutex_destroy(&t->mu);
		free(t);
		return HDL_EIO;
	}
	t->max = max;
	*out = t;
	return HDL_EOK;
}

static uint32_t bucket_of(const rest_sessions_t *t, const char *id, size_t len)
{
	return (uint32_t)(conn_siphash24(t->k0, t->k1, id, len) % SESS_BUCKETS);
}

static void unlink_locked(rest_sessions_t *t, sess_t *e)
{
	sess_t **pp = &t->buckets[bucket_of(t, e->s.id, REST_SID_LEN)];
	while (*pp && *pp != e)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = e->hnext;
	if (e->older)
		e->older->newer = e->newer;
	else
		t->oldest = e->newer;
	if (e->newer)
		e->newer->older = e->older;
	else
		t->newest = e->older;
	t->count--;
	if (e->src && t->src_count[e->src - 1])
		t->src_count[e->src - 1]--;
}

void rest_sessions_free(rest_sessions_t *t)
{
	if (!t)
		return;
	while (t->oldest) {
		sess_t *e = t->oldest;
		unlink_locked(t, e);
		free(e);
	}
	pthread_mutex_destroy(&t->mu);
	free(t);
}

void rest_sessions_expire(rest_sessions_t *t, uint64_t now_ms)
{
	sess_t *dead = NULL;
	pthread_mutex_lock(&t->mu);
	/* expiries move with use, so the list is not sorted by them: walk it all (at most
	 * rest_sessions_max entries, once a second) */
	for (sess_t *e = t->oldest; e;) {
		sess_t *next = e->newer;
		if (e->expires_ms <= now_ms) {
			unlink_locked(t, e);
			e->hnext = dead;
			dead = e;
		}
		e = next;
	}
	pthread_mutex_unlock(&t->mu);
	while (dead) {
		sess_t *e = dead;
		dead = e->hnext;
		free(e);
	}
}

unsigned rest_sessions_count(rest_sessions_t *t)
{
	pthread_mutex_lock(&t->mu);
	unsigned n = t->count;
	pthread_mutex_unlock(&t->mu);
	return n;
}

static sess_t *find_locked(rest_sessions_t *t, http_str_t id)
{
	if (id.len != REST_SID_LEN)
		return NULL;
	for (sess_t *e = t->buckets[bucket_of(t, id.p, id.len)]; e; e = e->hnext) {
		if (memcmp(e->s.id, id.p, REST_SID_LEN) == 0)
			return e;
	}
	return NULL;
}

int rest_session_create(rest_sessions_t *t, const conn_src_t *src, unsigned per_source,
                        uint64_t now_ms, uint32_t unauth_ms, rest_session_t *out)
{
	uint8_t raw[REST_SID_LEN / 2];
	sess_t *e = calloc(1, sizeof(*e));
	if (!e)
		return HDL_ENOMEM;
	uint32_t slot = (uint32_t)(conn_siphash24(t->k0, t->k1, src, sizeof(*src)) % SRC_SLOTS);
	e->src = slot + 1;
	e->expires_ms = now_ms + unauth_ms;
	if (RAND_bytes(e->s.nonce, sizeof(e->s.nonce)) != 1) {
		free(e);
		return HDL_EIO;
	}
	int ret = HDL_EOK;
	pthread_mutex_lock(&t->mu);
	if (t->count >= t->max || t->src_count[slot] >= per_source) {
		ret = HDL_EAGAIN;
		goto out;
	}
	for (int tries = 0;; tries++) {
		if (tries == 16 || RAND_bytes(raw, sizeof(raw)) != 1) {
			ret = HDL_EIO;
			goto out;
		}
		for (size_t i = 0; i < sizeof(raw); i++)
			snprintf(e->s.id + 2 * i, 3, "%02x", raw[i]);
		if (!find_locked(t, (http_str_t){e->s.id, REST_SID_LEN}))
			break;
	}
	uint32_t b = bucket_of(t, e->s.id, REST_SID_LEN);
	e->hnext = t->buckets[b];
	t->buckets[b] = e;
	e->older = t->newest;
	if (t->newest)
		t->newest->newer = e;
	else
		t->oldest = e;
	t->newest = e;
	t->count++;
	t->src_count[slot]++;
	*out = e->s;
out:
	pthread_mutex_unlock(&t->mu);
	if (ret != HDL_EOK)
		free(e);
	return ret;
}

int rest_session_get(rest_sessions_t *t, http_str_t id, uint64_t now_ms, uint32_t idle_ms,
                     rest_session_t *out)
{
	int ret = HDL_ENOENT;
	pthread_mutex_lock(&t->mu);
	sess_t *e = find_locked(t, id);
	if (e && e->expires_ms > now_ms) {
		if (e->s.authenticated)
			e->expires_ms = now_ms + idle_ms;
		*out = e->s;
		ret = HDL_EOK;
	}
	pthread_mutex_unlock(&t->mu);
	return ret;
}

int rest_session_auth(rest_sessions_t *t, http_str_t id, hdl_slice_t handle, uint32_t index,
                      uint64_t now_ms, uint32_t idle_ms)
{
	int ret = HDL_ENOENT;
	if (handle.len > HDL_MAX_HANDLE_LEN)
		return HDL_EINVAL;
	pthread_mutex_lock(&t->mu);
	sess_t *e = find_locked(t, id);
	if (e && e->expires_ms > now_ms) {
		e->s.authenticated = true;
		e->s.index = index;
		e->s.handle_len = handle.len;
		memcpy(e->s.handle, handle.p, handle.len);
		e->expires_ms = now_ms + idle_ms;
		ret = HDL_EOK;
	}
	pthread_mutex_unlock(&t->mu);
	return ret;
}

int rest_session_delete(rest_sessions_t *t, http_str_t id)
{
	pthread_mutex_lock(&t->mu);
	sess_t *e = find_locked(t, id);
	if (e)
		unlink_locked(t, e);
	pthread_mutex_unlock(&t->mu);
	free(e);
	return e ? HDL_EOK : HDL_ENOENT;
}

/* ---- checking credentials ------------------------------------------------------------------ */

static bool peer_loopback(const conn_t *c)
{
	if (c->peer.ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)&c->peer;
		return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
	}
	if (c->peer.ss_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)&c->peer)->sin6_addr;
		return IN6_IS_ADDR_LOOPBACK(a) ||
		       (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
	return false;
}

bool rest_secure(const conn_t *c)
{
	if (conn_is_tls(c))
		return true;
	return NODE_LIMIT(&c->w->node->limits, http_auth_plain_loopback) && peer_loopback(c);
}

void rest_send_auth_needed(http_rq_t *r, const char *handle)
{
	if (rest_secure(r->c)) {
		http_add_header(r, "WWW-Authenticate", "Basic realm=\"handle\"");
		http_send_json_error(r, 401, HDL_RC_AUTHENTICATION_NEEDED, "Authentication needed",
		                     handle);
	} else {
		/* a 401 would ask for credentials that may not travel here (handle-protocol.md
		 * §13.4: over plain HTTP it becomes 403) */
		http_send_json_error(r, 403, HDL_RC_AUTHENTICATION_NEEDED,
		                     "Authentication needs HTTPS", handle);
	}
}

static void refuse(http_rq_t *r, int status, uint32_t rc, const char *msg)
{
	char s[64];
	conn_src_format(&r->c->src, s, sizeof(s));
	log_peer(LOG_LVL_NOTICE, "rest: credentials from %s refused (%d): %s", s, status, msg);
	if (status == 401)
		http_add_header(r, "WWW-Authenticate", "Basic realm=\"handle\"");
	http_send_json_error(r, status, rc, msg, NULL);
}

/* Verify under a snapshot: admin_verify_identity() of nonce || digest. */
static uint32_t verify(worker_t *w, hdl_slice_t type, hdl_slice_t handle, uint32_t index,
                       hdl_slice_t nonce, hdl_slice_t digest, hdl_slice_t resp, uint32_t *got,
                       const char **msg)
{
	if (store_reader_begin(w->dctx.reader) != HDL_EOK) {
		*msg = "store unavailable";
		return HDL_RC_AUTHEN_ERROR;
	}
	hdl_arena_reset(&w->dctx.arena);
	uint32_t rc = admin_verify_identity(&w->dctx, type, handle, index, nonce, digest, resp,
	                                    false, got, msg);
	store_reader_end(w->dctx.reader);
	return rc;
}

/*
 * Basic: the secret is checked as an HS_SECKEY answer to a fresh nonce (HMAC-SHA256 of the
 * nonce with the secret given), through the same verification as every challenge answer.
 */
static rest_auth_rc_t auth_basic(worker_t *w, http_rq_t *r, http_str_t token, rest_ident_t *id)
{
	uint8_t buf[BASIC_MAX];
	hdl_slice_t handle, secret;
	uint32_t index;
	if (rest_basic_decode(token, buf, sizeof(buf), &handle, &index, &secret) != HDL_EOK) {
		refuse(r, 401, HDL_RC_AUTHENTICATION_FAILED, "Malformed Basic credentials");
		return REST_AUTH_REFUSED;
	}
	uint8_t nonce[16], resp[HDL_SECKEY_RESP_MAX];
	size_t rl = 0;
	if (RAND_bytes(nonce, sizeof(nonce)) != 1 ||
	    hdl_seckey_answer(HDL_MAC_HMAC_SHA256, secret, (hdl_slice_t){nonce, 8},
	                      (hdl_slice_t){nonce + 8, 8}, resp, sizeof(resp), &rl) != HDL_EOK) {
		http_send_json_error(r, 503, HDL_RC_SERVER_TOO_BUSY, "cannot check credentials",
		                     NULL);
		return REST_AUTH_REFUSED;
	}
	const char *msg = NULL;
	uint32_t got = 0;
	uint32_t rc =
	    verify(w, hdl_slice_str("HS_SECKEY"), handle, index, (hdl_slice_t){nonce, 8},
	           (hdl_slice_t){nonce + 8, 8}, (hdl_slice_t){resp, (uint32_t)rl}, &got, &msg);
	if (rc == HDL_RC_SUCCESS) {
		id->ok = true;
		id->index = got;
		id->handle_len = handle.len;
		memcpy(id->handle, handle.p, handle.len);
		id->session[0] = '\0';
	}
	OPENSSL_cleanse(buf, sizeof(buf)); /* the secret */
	if (rc != HDL_RC_SUCCESS) {
		refuse(r, 401, rc, msg);
		return REST_AUTH_REFUSED;
	}
	return REST_AUTH_OK;
}

static uint8_t mac_alg(http_str_t alg)
{
	static const struct {
		const char *name;
		uint8_t code;
	} tab[] = {
	    {"MD5", HDL_MAC_MD5},
	    {"SHA", HDL_MAC_SHA1},
	    {"SHA1", HDL_MAC_SHA1},
	    {"SHA-1", HDL_MAC_SHA1},
	    {"SHA256", HDL_MAC_SHA256},
	    {"SHA-256", HDL_MAC_SHA256},
	    {"SHA2", HDL_MAC_SHA256},
	    {"SHA-2", HDL_MAC_SHA256},
	    {"HMAC-SHA1", HDL_MAC_HMAC_SHA1},
	    {"HMACSHA1", HDL_MAC_HMAC_SHA1},
	    {"HMAC-SHA256", HDL_MAC_HMAC_SHA256},
	    {"HMACSHA256", HDL_MAC_HMAC_SHA256},
	    {"PBKDF2-HMAC-SHA1", HDL_MAC_PBKDF2_SHA1},
	    {"PBKDF2WithHmacSHA1", HDL_MAC_PBKDF2_SHA1},
	};
	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		if (ieq(alg.p, alg.len, tab[i].name))
			return tab[i].code;
	}
	return 0;
}

static bool parse_u32(http_str_t s, uint32_t *out)
{
	uint64_t v = 0;
	if (s.len == 0 || s.len > 10)
		return false;
	for (size_t i = 0; i < s.len; i++) {
		if (s.p[i] < '0' || s.p[i] > '9')
			return false;
		v = v * 10u + (uint64_t)(s.p[i] - '0');
	}
	if (v > UINT32_MAX)
		return false;
	*out = (uint32_t)v;
	return true;
}

/*
 * The signedResponse a challenge answer would carry, from the header's fields (the encoding
 * of §9.1 / §9.2): HS_PUBKEY = BYTES hash name | BYTES signature; HS_SECKEY = alg byte | MAC,
 * PBKDF2 with its salt, iterations and key length first. \return length, 0 when malformed.
 */
static size_t signed_response(const rest_authz_t *a, bool pubkey, uint8_t *out, size_t cap)
{
	uint8_t sig[SIG_MAX];
	long sl = rest_b64_decode(a->signature, sig, sizeof(sig));
	if (sl <= 0)
		return 0;
	size_t n = 0;
	if (pubkey) {
		hdl_pubkey_resp_t pr = {
		    .hash_name = {(const uint8_t *)a->alg.p, (uint32_t)a->alg.len},
		    .signature = {sig, (uint32_t)sl},
		};
		if (a->alg.len == 0 || a->alg.len > HDL_SIG_HASH_NAME_MAX ||
		    hdl_pubkey_resp_encode(&pr, out, cap, &n) != HDL_EOK)
			return 0;
		return n;
	}
	hdl_seckey_resp_t sr = {.alg = mac_alg(a->alg), .mac = {sig, (uint32_t)sl}};
	uint8_t salt[HDL_PBKDF2_MAX_SALT];
	if (sr.alg == 0)
		return 0;
	if (sr.alg == HDL_MAC_PBKDF2_SHA1) {
		long saltl = rest_b64_decode(a->salt, salt, sizeof(salt));
		if (saltl <= 0 || !parse_u32(a->iterations, &sr.iterations) ||
		    !parse_u32(a->length, &sr.key_bits))
			return 0;
		sr.salt = (hdl_slice_t){salt, (uint32_t)saltl};
	}
	if (hdl_seckey_resp_encode(&sr, out, cap, &n) != HDL_EOK)
		return 0;
	return n;
}

/*
 * Handle scheme: a session, authenticated now (signature fields) or before. A session that
 * is unknown or expired is refused (401); one not authenticated yet gives no identity.
 */
static rest_auth_rc_t auth_handle(worker_t *w, http_rq_t *r, const rest_authz_t *a,
                                  rest_ident_t *id)
{
	node_shared_t *n = w->node;
	const node_limits_t *l = &n->limits;
	uint64_t now = worker_now_ms();
	uint32_t idle = NODE_LIMIT(l, rest_session_idle_ms);
	rest_session_t s;
	if (a->session_id.len == 0) {
		refuse(r, 401, HDL_RC_AUTHENTICATION_NEEDED,
		       "Authorization: Handle needs a sessionId (POST /api/sessions)");
		return REST_AUTH_REFUSED;
	}
	if (!n->rest_sessions ||
	    rest_session_get(n->rest_sessions, a->session_id, now, idle, &s) != HDL_EOK) {
		refuse(r, 401, HDL_RC_AUTHENTICATION_NEEDED, "Session unknown or expired");
		return REST_AUTH_REFUSED;
	}
	bool authenticating = a->id.len || a->signature.len || a->cnonce.len || a->type.len;
	if (!authenticating) {
		if (!s.authenticated)
			return REST_AUTH_NONE;
		id->ok = true;
		id->index = s.index;
		id->handle_len = s.handle_len;
		memcpy(id->handle, s.handle, s.handle_len);
		memcpy(id->session, s.id, sizeof(id->session));
		return REST_AUTH_OK;
	}
	if (a->version.len && !ieq(a->version.p, a->version.len, "0")) {
		refuse(r, 401, HDL_RC_AUTHENTICATION_FAILED,
		       "Unknown version in Authorization: Handle");
		return REST_AUTH_REFUSED;
	}
	bool pubkey = ieq(a->type.p, a->type.len, "HS_PUBKEY");
	bool seckey = ieq(a->type.p, a->type.len, "HS_SECKEY");
	uint8_t cnonce[256], resp[HDL_PUBKEY_RESP_MAX + HDL_SECKEY_RESP_MAX];
	long cl = rest_b64_decode(a->cnonce, cnonce, sizeof(cnonce));
	hdl_slice_t handle;
	uint32_t index = 0;
	size_t rl = (pubkey || seckey) ? signed_response(a, pubkey, resp, sizeof(resp)) : 0;
	if ((!pubkey && !seckey) || cl <= 0 || rl == 0 ||
	    parse_id((hdl_slice_t){(const uint8_t *)a->id.p, (uint32_t)a->id.len}, &handle,
	             &index) != HDL_EOK) {
		refuse(r, 401, HDL_RC_AUTHENTICATION_FAILED,
		       "Missing or malformed authentication data");
		return REST_AUTH_REFUSED;
	}
	const char *msg = NULL;
	uint32_t got = 0;
	uint32_t rc = verify(w, pubkey ? hdl_slice_str("HS_PUBKEY") : hdl_slice_str("HS_SECKEY"),
	                     handle, index, (hdl_slice_t){s.nonce, sizeof(s.nonce)},
	                     (hdl_slice_t){cnonce, (uint32_t)cl}, (hdl_slice_t){resp, (uint32_t)rl},
	                     &got, &msg);
	if (rc != HDL_RC_SUCCESS) {
		refuse(r, 401, rc, msg);
		return REST_AUTH_REFUSED;
	}
	if (rest_session_auth(n->rest_sessions, a->session_id, handle, got, now, idle) != HDL_EOK) {
		refuse(r, 401, HDL_RC_AUTHENTICATION_NEEDED, "Session unknown or expired");
		return REST_AUTH_REFUSED;
	}
	log_info("rest: %u:%.*s authenticated session %.8s...", got,
	         (int)(handle.len > 200 ? 200 : handle.len), (const char *)handle.p, s.id);
	id->ok = true;
	id->index = got;
	id->handle_len = handle.len;
	memcpy(id->handle, handle.p, handle.len);
	memcpy(id->session, s.id, sizeof(id->session));
	return REST_AUTH_OK;
}

rest_auth_rc_t rest_authenticate(worker_t *w, http_rq_t *r, rest_ident_t *id)
{
	memset(id, 0, sizeof(*id));
	http_str_t v = r->req ? r->req->authorization : (http_str_t){NULL, 0};
	if (v.len == 0)
		return REST_AUTH_NONE;
	if (!rest_secure(r->c)) {
		refuse(r, 403, HDL_RC_AUTHENTICATION_FAILED,
		       "Credentials are accepted over HTTPS only");
		return REST_AUTH_REFUSED;
	}
	rest_authz_t a;
	int ret = rest_authz_parse(v, &a);
	if (ret != HDL_EOK) {
		refuse(r, 400, HDL_RC_PROTOCOL_ERROR, "Malformed Authorization header");
		return REST_AUTH_REFUSED;
	}
	if (a.scheme == REST_SCHEME_BASIC)
		return auth_basic(w, r, a.basic, id);
	if (a.scheme == REST_SCHEME_HANDLE)
		return auth_handle(w, r, &a, id);
	refuse(r, 401, HDL_RC_AUTHENTICATION_FAILED, "Unknown authorization scheme");
	return REST_AUTH_REFUSED;
}
