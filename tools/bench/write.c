/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief The write modes of idnode-bench (no main()): admin request builders (create, modify,
 *        delete), the IDIS login of a connection, the OC 200 answer to a challenge, the write
 *        options (credentials from files) and the write lines of the report.
 *
 * Requests are encoded by hand, one memcpy per field, byte for byte what hdl_msg_encode() writes
 * (version 2.11, flags REC | CA | PO as hdllib's admin requests plus KC, expiration now + 12 h).
 * The challenge answer goes out under the challenged request's RequestId, so the engine matches the
 * final reply to the same slot; the RC 402 digest is not checked here (the client library does
 * that: this is a load generator against a server under test).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "hdl/auth.h"
#include "hdl/client.h"
#include "hdl/error.h"
#include "hdl/msg.h"
#include "tools/bench/bench.h"

#define WRITE_TTL 86400u
#define WRITE_URL "https://example.org/"

int bk_write_op_parse(const char *s, uint32_t *opcode)
{
	if (strcmp(s, "create") == 0)
		*opcode = HDL_OC_CREATE_HANDLE;
	else if (strcmp(s, "modify") == 0)
		*opcode = HDL_OC_MODIFY_VALUE;
	else if (strcmp(s, "delete") == 0)
		*opcode = HDL_OC_DELETE_HANDLE;
	else
		return -1;
	return 0;
}

const char *bk_write_op_name(uint32_t opcode)
{
	switch (opcode) {
	case HDL_OC_CREATE_HANDLE: return "create";
	case HDL_OC_MODIFY_VALUE: return "modify";
	case HDL_OC_DELETE_HANDLE: return "delete";
	default: return "resolve";
	}
}

/** A bounded writer of big-endian fields (0 length after an overflow). */
typedef struct wbuf {
	uint8_t *p;
	size_t len, cap;
	bool over;
} wbuf_t;

static void put(wbuf_t *b, const void *src, size_t n)
{
	if (b->over || b->cap - b->len < n) {
		b->over = true;
		return;
	}
	if (n)
		memcpy(b->p + b->len, src, n);
	b->len += n;
}

static void put32(wbuf_t *b, uint32_t v)
{
	uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
	put(b, x, 4);
}

static void put_at32(wbuf_t *b, size_t off, uint32_t v)
{
	if (!b->over) {
		b->p[off] = (uint8_t)(v >> 24);
		b->p[off + 1] = (uint8_t)(v >> 16);
		b->p[off + 2] = (uint8_t)(v >> 8);
		b->p[off + 3] = (uint8_t)v;
	}
}

/** \brief Envelope + header with the lengths left 0 (patched by finish()). */
static void head(wbuf_t *b, uint8_t minor, uint32_t session, uint32_t id, uint32_t opcode,
                 uint32_t opflags)
{
	uint8_t env[4] = {HDL_PROTO_MAJOR, minor, HDL_PROTO_MAJOR, HDL_PROTO_MINOR};
	put(b, env, 4);
	put32(b, session);
	put32(b, id);
	put32(b, 0); /* sequence */
	put32(b, 0); /* MessageLength */
	put32(b, opcode);
	put32(b, 0); /* rcode */
	put32(b, opflags);
	put(b, "\xff\xff\x00\x00", 4); /* SiteInfoSerial 0xFFFF, recursion 0, reserved */
	put32(b, (uint32_t)time(NULL) + 43200u);
	put32(b, 0); /* BodyLength */
}

/** \brief Patch BodyLength and MessageLength; add the credential length unless \p no_cred. */
static size_t finish(wbuf_t *b, bool no_cred)
{
	size_t body = b->len - HDL_ENVELOPE_LEN - HDL_HEADER_LEN;
	if (!no_cred)
		put32(b, 0);
	if (b->over)
		return 0;
	put_at32(b, HDL_ENVELOPE_LEN + 20, (uint32_t)body);
	put_at32(b, 16, (uint32_t)(b->len - HDL_ENVELOPE_LEN));
	return b->len;
}

size_t bk_write_build(const bk_write_t *w, const char *key, size_t klen, uint32_t id,
                      uint32_t session, uint8_t *out, size_t cap)
{
	wbuf_t b = {out, 0, cap, false};
	/* KC: the connection is persistent (a 2.11 request without it is answered and closed) */
	uint32_t flags = HDL_OF_REC | HDL_OF_CA | HDL_OF_PO | HDL_OF_KC;

	if (w->opcode == HDL_OC_CREATE_HANDLE && w->overwrite)
		flags |= HDL_OF_OVRW;
	head(&b, HDL_PROTO_MINOR, session, id, w->opcode, flags);
	put32(&b, (uint32_t)klen);
	put(&b, key, klen);
	if (w->opcode != HDL_OC_DELETE_HANDLE) {
		size_t dlen = sizeof(WRITE_URL) - 1 + klen;
		size_t pad = w->value_size > dlen ? w->value_size - dlen : 0;
		put32(&b, 1); /* one value */
		put32(&b, 1); /* index */
		put32(&b, 0); /* timestamp: the server sets it */
		put(&b, "\x00", 1);
		put32(&b, WRITE_TTL);
		put(&b, "\x0e", 1); /* admin read/write, public read */
		put32(&b, 3);
		put(&b, "URL", 3);
		put32(&b, (uint32_t)(dlen + pad));
		put(&b, WRITE_URL, sizeof(WRITE_URL) - 1);
		put(&b, key, klen);
		if (pad && !b.over && b.cap - b.len >= pad) {
			memset(b.p + b.len, 'x',
			       pad); /* "#xxx...": a fragment, still a valid URL */
			b.p[b.len] = '#';
			b.len += pad;
		} else if (pad) {
			b.over = true;
		}
		put32(&b, 0); /* no references */
	}
	return finish(&b, false);
}

size_t bk_login_build(const bk_write_t *w, uint32_t session, uint32_t id, uint8_t *out, size_t cap)
{
	wbuf_t b = {out, 0, cap, false};

	if (!w->auth)
		return 0;
	head(&b, 10, session, id, HDL_OC_LOGIN_ID_SYSTEM, HDL_OF_REC | HDL_OF_RD | HDL_OF_KC);
	put32(&b, w->auth->id_handle.len);
	put(&b, w->auth->id_handle.p, w->auth->id_handle.len);
	put32(&b, w->auth->id_index);
	return finish(&b, true); /* id-pointer sends OC 2001 without a credential section */
}

size_t bk_write_answer(const bk_write_t *w, hdl_arena_t *a, const uint8_t *msg, size_t len,
                       uint8_t *out, size_t cap)
{
	uint8_t sr[HDL_PUBKEY_RESP_MAX > HDL_SECKEY_RESP_MAX ? HDL_PUBKEY_RESP_MAX
	                                                     : HDL_SECKEY_RESP_MAX];
	hdl_slice_t digest;
	size_t srl = 0, n = 0;
	hdl_msg_t ch, m;

	if (!w->auth || !msg)
		return 0;
	hdl_arena_reset(a);
	if (hdl_msg_decode(msg, len, a, &ch) != HDL_EOK || ch.kind != HDL_BODY_CHALLENGE ||
	    ch.u.challenge.nonce.len == 0)
		return 0;
	digest = ch.rd.len ? ch.rd : ch.u.challenge.old_digest;
	if (digest.len == 0 || hdl_auth_answer(w->auth, &ch.env, ch.u.challenge.nonce, digest, sr,
	                                       sizeof(sr), &srl) != HDL_EOK)
		return 0;
	hdl_msg_init(&m);
	m.env.session_id = ch.env.session_id;
	m.env.request_id = ch.env.request_id;
	m.hdr.opcode = HDL_OC_CHALLENGE_RESPONSE;
	m.hdr.opflags = HDL_OF_REC | HDL_OF_CA | HDL_OF_PO | HDL_OF_KC; /* on the same connection */
	m.hdr.expiration = (uint32_t)time(NULL) + 43200u;
	m.kind = HDL_BODY_CHAL_ANSWER;
	m.u.answer.auth_type = hdl_auth_type(w->auth);
	m.u.answer.id_handle = w->auth->id_handle;
	m.u.answer.id_index = w->auth->id_index;
	m.u.answer.signed_response.p = sr;
	m.u.answer.signed_response.len = (uint32_t)srl;
	if (hdl_msg_encode(&m, out, cap, &n) != HDL_EOK)
		return 0;
	return n;
}

/* ---- options and report ------------------------------------------------------------------- */

#define WRITE_PASS_ENV "IDNODE_PASSPHRASE"

struct bk_write_ctx {
	bk_write_t w;
	hdl_auth_t cred;
	char *id_handle;
	uint8_t *secret;
	size_t secret_len;
	uint64_t next_key;
};

static const struct {
	const char *name;
	uint8_t alg;
} seckey_algs[] = {
    {"pbkdf2", HDL_MAC_AUTO}, /* hdllib: PBKDF2 from 2.7, SHA1 below */
    {"hmac-sha256", HDL_MAC_HMAC_SHA256},
    {"hmac-sha1", HDL_MAC_HMAC_SHA1},
    {"sha256", HDL_MAC_SHA256},
    {"sha1", HDL_MAC_SHA1},
    {"md5", HDL_MAC_MD5},
};

void bk_write_free(bk_write_ctx_t *x)
{
	if (!x)
		return;
	hdl_secret_free(x->secret, x->secret_len);
	EVP_PKEY_free(x->cred.key);
	free(x->id_handle);
	free(x);
}

int bk_write_setup(const bk_write_args_t *a, bk_conf_t *c, bk_write_ctx_t **out, char *err,
                   size_t errlen)
{
	bk_write_ctx_t *x = NULL;
	int ret = -1, e;

	*out = NULL;
	if (!a->op) {
		if (a->auth || a->seckey_file || a->privkey_file || a->per_request ||
		    a->overwrite || a->value_size || a->seckey_alg) {
			snprintf(err, errlen, "the write options need --op create|modify|delete");
			return -1;
		}
		return 0;
	}
	x = calloc(1, sizeof(*x));
	if (!x) {
		snprintf(err, errlen, "out of memory");
		return -2;
	}
	x->cred.seckey_alg = HDL_MAC_AUTO;
	if (bk_write_op_parse(a->op, &x->w.opcode) != 0) {
		snprintf(err, errlen, "--op takes create, modify or delete");
		goto fail;
	}
	if (c->proto != BK_TCP || c->new_conn) {
		snprintf(err, errlen, "write modes run over --proto tcp, without --new-conn");
		goto fail;
	}
	if (a->overwrite && x->w.opcode != HDL_OC_CREATE_HANDLE) {
		snprintf(err, errlen, "--overwrite goes with --op create");
		goto fail;
	}
	if (a->auth) {
		if (hdl_identity_parse(a->auth, &x->cred.id_index, &x->id_handle) != HDL_EOK) {
			snprintf(err, errlen,
			         "bad --auth '%s' (INDEX:HANDLE, e.g. 300:0.NA/88.100)", a->auth);
			goto fail;
		}
		x->cred.id_handle = hdl_slice_str(x->id_handle);
		if (!a->seckey_file == !a->privkey_file) {
			snprintf(err, errlen, "--auth needs one of --seckey-file or --privkey");
			goto fail;
		}
	} else if (a->seckey_file || a->privkey_file || a->per_request || a->seckey_alg) {
		snprintf(err, errlen, "credentials and --auth-per-request need --auth");
		goto fail;
	}
	if (a->pass_file && !a->privkey_file) {
		snprintf(err, errlen, "--passphrase-file goes with --privkey");
		goto fail;
	}
	if (a->seckey_alg) {
		size_t i = 0;
		while (i < sizeof(seckey_algs) / sizeof(seckey_algs[0]) &&
		       strcmp(seckey_algs[i].name, a->seckey_alg) != 0)
			i++;
		if (i == sizeof(seckey_algs) / sizeof(seckey_algs[0]) || !a->seckey_file) {
			snprintf(err, errlen,
			         "--seckey-alg takes pbkdf2, hmac-sha256, hmac-sha1, sha256, "
			         "sha1 or md5, with --seckey-file");
			goto fail;
		}
		x->cred.seckey_alg = seckey_algs[i].alg;
	}
	/* from here on, failures are about files, not usage */
	ret = -2;
	if (a->seckey_file) {
		e = hdl_secret_load(a->seckey_file, &x->secret, &x->secret_len);
		if (e != HDL_EOK) {
			snprintf(err, errlen, "%s: %s", a->seckey_file, hdl_strerror(e));
			goto fail;
		}
		x->cred.secret.p = x->secret;
		x->cred.secret.len = (uint32_t)x->secret_len;
	} else if (a->privkey_file) {
		e = hdl_privkey_load(a->privkey_file, a->pass_file, WRITE_PASS_ENV, &x->cred.key);
		if (e != HDL_EOK) {
			snprintf(err, errlen, "%s: %s", a->privkey_file, hdl_strerror(e));
			goto fail;
		}
	}
	x->w.overwrite = a->overwrite;
	x->w.auth = a->auth ? &x->cred : NULL;
	x->w.login = a->auth && !a->per_request;
	x->w.per_request = a->auth && a->per_request;
	x->w.value_size = (size_t)a->value_size;
	if (x->w.opcode != HDL_OC_MODIFY_VALUE)
		x->w.next_key = &x->next_key;
	c->write = &x->w;
	*out = x;
	return 0;
fail:
	bk_write_free(x);
	return ret;
}

static const char *auth_mode(const bk_write_t *w)
{
	return w->login ? "login" : w->per_request ? "per-request" : "none";
}

void bk_write_print_text(FILE *f, const bk_write_t *w, const bk_result_t *r)
{
	uint64_t acks = r->codes[HDL_RC_SUCCESS];
	fprintf(
	    f,
	    "Writes      op=%s auth=%s  acks %" PRIu64 " = %.1f durable acks/s  ack latency p50 "
	    "%.1f us p99 %.1f us  logins %" PRIu64 "  challenges %" PRIu64
	    "  auth_failures %" PRIu64 "\n",
	    bk_write_op_name(w->opcode), auth_mode(w), acks, (double)acks / r->elapsed,
	    (double)bh_percentile(r->hist, 50.0) / 1e3, (double)bh_percentile(r->hist, 99.0) / 1e3,
	    r->logins, r->challenges, r->auth_failures);
}

void bk_write_print_json(FILE *f, const bk_write_t *w, const bk_result_t *r)
{
	uint64_t acks = r->codes[HDL_RC_SUCCESS];
	fprintf(f,
	        ",\"write\":{\"op\":\"%s\",\"auth\":\"%s\",\"acks\":%" PRIu64
	        ",\"acks_per_s\":%.3f,\"ack_p50_us\":%.3f,\"ack_p99_us\":%.3f,\"logins\":%" PRIu64
	        ",\"challenges\":%" PRIu64 ",\"auth_failures\":%" PRIu64 "}",
	        bk_write_op_name(w->opcode), auth_mode(w), acks, (double)acks / r->elapsed,
	        (double)bh_percentile(r->hist, 50.0) / 1e3,
	        (double)bh_percentile(r->hist, 99.0) / 1e3, r->logins, r->challenges,
	        r->auth_failures);
}
