/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Challenge-response crypto (include/hdl/auth.h): the hdllib captures verify (HS_SECKEY
 *        with "secret", HS_PUBKEY with tests/data/admpub.bin, and signing the same challenge
 *        with admpriv.bin reproduces hdllib's signature byte for byte), known-answer vectors for
 *        every HS_SECKEY algorithm (computed independently with Python hashlib/hmac), round trips
 *        and tampering for every variant, the caps, and the key formats (HS_PUBKEY binary / PEM,
 *        PEM private keys plain and encrypted, the CNRI key file plain and encrypted: the
 *        encrypted vectors in tests/data were made with Python hashlib + the openssl CLI, see
 *        tests/data/README.md).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "hdl/auth.h"
#include "hdl/error.h"
#include "hdl/msg.h"
#include "hdl/values.h"
#include "tests/lib/testfiles.h"

#define MAXFRAME 8192

static hdl_slice_t sl(const void *p, size_t n)
{
	hdl_slice_t s = {(const uint8_t *)p, (uint32_t)n};
	return s;
}

static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = 0;
	for (; hex[0] && hex[1] && n < cap; hex += 2)
		out[n++] = (uint8_t)strtoul((char[3]){hex[0], hex[1], 0}, NULL, 16);
	return n;
}

static EVP_PKEY *load_key(const char *rel, const char *pass)
{
	EVP_PKEY *k = key_load(rel, pass);
	if (!k)
		fail_msg("cannot load %s", rel);
	return k;
}

static EVP_PKEY *load_pub(const char *rel)
{
	size_t len = 0;
	uint8_t *buf = file_load(rel, &len);
	EVP_PKEY *k = NULL;
	assert_non_null(buf);
	assert_int_equal(hdl_pkey_from_value(buf, len, &k), HDL_EOK);
	free(buf);
	return k;
}

/** One hdllib challenge exchange from tests/captures: request, challenge, answer, decoded. */
typedef struct exchange {
	uint8_t raw[3][MAXFRAME];
	hdl_arena_t arena;
	hdl_msg_t m[3];
} exchange_t;

static exchange_t *exchange_load(const char *op, const char *kind)
{
	static const char *const parts[3] = {"1-request", "2-challenge", "3-answer"};
	exchange_t *x = calloc(1, sizeof(*x));
	assert_non_null(x);
	hdl_arena_init(&x->arena, NULL, 0, 1u << 20);
	for (int i = 0; i < 3; i++) {
		char name[128];
		size_t n;
		snprintf(name, sizeof(name), "java-hdllib-%s-%s-tcp-%s.hex", op, kind, parts[i]);
		n = capture_load(name, x->raw[i], MAXFRAME);
		if (n == 0)
			fail_msg("cannot read %s", name);
		assert_int_equal(hdl_msg_decode(x->raw[i], n, &x->arena, &x->m[i]), HDL_EOK);
	}
	return x;
}

static void exchange_free(exchange_t *x)
{
	hdl_arena_free(&x->arena);
	free(x);
}

/* ---- captures ------------------------------------------------------------------------------- */

static void test_seckey_captures(void **state)
{
	static const char *const ops[] = {"create",      "delete",      "addvalue",  "modifyvalue",
	                                  "removevalue", "listhandles", "homeprefix"};
	(void)state;
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		exchange_t *x = exchange_load(ops[i], "seckey");
		const hdl_msg_t *req = &x->m[0], *ch = &x->m[1], *ans = &x->m[2];
		uint8_t dig[HDL_DIGEST_MAX_LEN], bad[HDL_SECKEY_RESP_MAX];
		hdl_seckey_resp_t r;
		size_t dl = 0;
		hdl_slice_t sr;

		/* the challenge binds our request: its digest covers the request's header + body */
		assert_int_equal(ch->kind, HDL_BODY_CHALLENGE);
		assert_int_equal(
		    hdl_digest(ch->rd_alg, req->signed_part.p, req->signed_part.len, dig, &dl),
		    HDL_EOK);
		assert_int_equal(dl, ch->rd.len);
		assert_memory_equal(dig, ch->rd.p, dl);

		assert_int_equal(ans->kind, HDL_BODY_CHAL_ANSWER);
		assert_int_equal(ans->env.session_id, ch->env.session_id);
		assert_true(hdl_slice_eq(ans->u.answer.auth_type, hdl_slice_str("HS_SECKEY")));
		assert_true(hdl_slice_eq(ans->u.answer.id_handle, hdl_slice_str("0.NA/88.100")));
		assert_int_equal(ans->u.answer.id_index, 300);
		sr = ans->u.answer.signed_response;
		assert_int_equal(hdl_seckey_resp_decode(sr.p, sr.len, false, &r), HDL_EOK);
		assert_int_equal(r.alg, HDL_MAC_PBKDF2_SHA1);
		assert_int_equal(r.iterations, 10000);
		assert_int_equal(r.key_bits, 160);
		assert_int_equal(r.salt.len, 16);
		assert_int_equal(r.mac.len, 20);

		assert_int_equal(hdl_seckey_verify(hdl_slice_str("secret"), ch->u.challenge.nonce,
		                                   ch->rd, sr, false),
		                 HDL_EOK);
		assert_int_equal(hdl_seckey_verify(hdl_slice_str("secreT"), ch->u.challenge.nonce,
		                                   ch->rd, sr, false),
		                 HDL_EAUTH);
		/* another request's digest, or a flipped MAC bit, fails */
		dig[0] ^= 1;
		assert_int_equal(hdl_seckey_verify(hdl_slice_str("secret"), ch->u.challenge.nonce,
		                                   sl(dig, dl), sr, false),
		                 HDL_EAUTH);
		memcpy(bad, sr.p, sr.len);
		bad[sr.len - 1] ^= 0x80;
		assert_int_equal(hdl_seckey_verify(hdl_slice_str("secret"), ch->u.challenge.nonce,
		                                   ch->rd, sl(bad, sr.len), false),
		                 HDL_EAUTH);
		exchange_free(x);
	}
}

static void test_pubkey_capture(void **state)
{
	exchange_t *x = exchange_load("create", "pubkey");
	const hdl_msg_t *ch = &x->m[1], *ans = &x->m[2];
	hdl_slice_t sr = ans->u.answer.signed_response;
	EVP_PKEY *pub = load_pub("tests/data/admpub.bin");
	EVP_PKEY *pem = load_pub("tests/data/admpub.bin.pem"); /* the same key as IDIS PEM data */
	EVP_PKEY *other = load_pub("tests/data/admpub.pem");
	EVP_PKEY *priv = load_key("tests/data/admpriv.bin", NULL);
	uint8_t mine[HDL_PUBKEY_RESP_MAX];
	hdl_pubkey_resp_t r;
	size_t ml = 0;

	(void)state;
	assert_true(hdl_slice_eq(ans->u.answer.auth_type, hdl_slice_str("HS_PUBKEY")));
	assert_int_equal(hdl_pubkey_resp_decode(sr.p, sr.len, &r), HDL_EOK);
	assert_true(hdl_slice_eq(r.hash_name, hdl_slice_str("SHA-256")));
	assert_int_equal(r.signature.len, 256);
	assert_int_equal(hdl_pubkey_verify(pub, ch->u.challenge.nonce, ch->rd, sr), HDL_EOK);
	assert_int_equal(hdl_pubkey_verify(pem, ch->u.challenge.nonce, ch->rd, sr), HDL_EOK);
	assert_int_equal(hdl_pubkey_verify(other, ch->u.challenge.nonce, ch->rd, sr), HDL_EAUTH);
	assert_int_equal(hdl_pubkey_verify(pub, ch->rd, ch->u.challenge.nonce, sr), HDL_EAUTH);

	/* PKCS#1 v1.5 is deterministic: our answer with hdllib's key is hdllib's answer */
	assert_int_equal(hdl_pubkey_hash_for(priv, ch->env.major, ch->env.minor),
	                 HDL_DIGEST_SHA256);
	assert_int_equal(hdl_pubkey_answer(priv, HDL_DIGEST_SHA256, ch->u.challenge.nonce, ch->rd,
	                                   mine, sizeof(mine), &ml),
	                 HDL_EOK);
	assert_int_equal(ml, sr.len);
	assert_memory_equal(mine, sr.p, ml);

	EVP_PKEY_free(pub);
	EVP_PKEY_free(pem);
	EVP_PKEY_free(other);
	EVP_PKEY_free(priv);
	exchange_free(x);
}

/* ---- HS_SECKEY ------------------------------------------------------------------------------ */

static const uint8_t K_NONCE[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
static uint8_t K_DIGEST[32];
static uint8_t K_SALT[16];

static int kat_setup(void **state)
{
	(void)state;
	for (int i = 0; i < 32; i++)
		K_DIGEST[i] = (uint8_t)(0x20 + i);
	for (int i = 0; i < 16; i++)
		K_SALT[i] = (uint8_t)(0x40 + i);
	return 0;
}

/* Python: hashlib.md5(K+N+D+K), hmac.new(K, N+D, 'sha1'), pbkdf2_hmac('sha1', K, salt, 1000, 20)
 * with K = b"secret", N = bytes(range(16)), D = bytes(range(0x20, 0x40)), salt 0x40..0x4f. */
static void test_seckey_kat(void **state)
{
	static const struct {
		uint8_t alg;
		const char *secret;
		const char *mac;
	} kat[] = {
	    {HDL_MAC_MD5, "secret", "5f5d88702783f5913569e292b093fb76"},
	    {HDL_MAC_OLD_MD5, "secret", "5f5d88702783f5913569e292b093fb76"},
	    {HDL_MAC_SHA1, "secret", "8e996eebcb4acd5500b1251fb1493d6d53bbd60b"},
	    {HDL_MAC_SHA256, "secret",
	     "46e987c6b99d5ae1640f7507f5e92c75fbe4878f97b298932f269facce28c882"},
	    {HDL_MAC_HMAC_SHA1, "secret", "320494d9e0666a4e79afdfa699fcfc0e09b68998"},
	    {HDL_MAC_HMAC_SHA256, "secret",
	     "536c2959f2801c768e08b5f2439e74088e6f50300e033ce9d4f18e8eae0df9e6"},
	    {HDL_MAC_PBKDF2_SHA1, "secret", "92bebba5dba5128ff2587248b2c07a35e7931db4"},
	    /* "sécret": Java feeds PBKDF2 the UTF-8 of each byte widened to a char */
	    {HDL_MAC_PBKDF2_SHA1,
	     "s\xc3\xa9"
	     "cret",
	     "6926408f4ef03345aff0af889598f99f4342c000"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(kat) / sizeof(kat[0]); i++) {
		uint8_t want[HDL_MAC_MAX_LEN], got[HDL_MAC_MAX_LEN], enc[HDL_SECKEY_RESP_MAX];
		size_t wl = unhex(kat[i].mac, want, sizeof(want)), gl = 0, el = 0;
		hdl_seckey_resp_t p = {
		    .alg = kat[i].alg, .salt = sl(K_SALT, 16), .iterations = 1000, .key_bits = 160};

		assert_int_equal(hdl_seckey_mac(kat[i].alg, hdl_slice_str(kat[i].secret),
		                                sl(K_NONCE, 16), sl(K_DIGEST, 32), &p, got, &gl),
		                 HDL_EOK);
		assert_int_equal(gl, wl);
		assert_memory_equal(got, want, wl);
		/* the same as a signedResponse verifies */
		p.mac = sl(want, wl);
		assert_int_equal(hdl_seckey_resp_encode(&p, enc, sizeof(enc), &el), HDL_EOK);
		assert_int_equal(hdl_seckey_verify(hdl_slice_str(kat[i].secret), sl(K_NONCE, 16),
		                                   sl(K_DIGEST, 32), sl(enc, el),
		                                   kat[i].alg == HDL_MAC_OLD_MD5),
		                 HDL_EOK);
	}
}

static void test_seckey_roundtrip(void **state)
{
	static const uint8_t algs[] = {HDL_MAC_MD5,       HDL_MAC_SHA1,        HDL_MAC_SHA256,
	                               HDL_MAC_HMAC_SHA1, HDL_MAC_HMAC_SHA256, HDL_MAC_PBKDF2_SHA1,
	                               HDL_MAC_OLD_MD5};
	static const uint8_t bin_secret[] = {0x00, 0xff, 0x80, 0x7f, 0x01};
	(void)state;
	for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
		for (int s = 0; s < 3; s++) {
			hdl_slice_t secret = s == 0   ? hdl_slice_str("secret")
			                     : s == 1 ? sl(bin_secret, sizeof(bin_secret))
			                              : sl(NULL, 0);
			bool old = algs[i] == HDL_MAC_OLD_MD5;
			uint8_t a[HDL_SECKEY_RESP_MAX], b[HDL_SECKEY_RESP_MAX];
			size_t al = 0, bl = 0;
			hdl_seckey_resp_t r;

			assert_int_equal(hdl_seckey_answer(algs[i], secret, sl(K_NONCE, 16),
			                                   sl(K_DIGEST, 32), a, sizeof(a), &al),
			                 HDL_EOK);
			assert_int_equal(al, old ? 16u
			                         : (size_t)(1 + (algs[i] == HDL_MAC_PBKDF2_SHA1
			                                             ? 4 + 16 + 4 + 4 + 4 + 20
			                                         : (algs[i] & 0x0F) == 1 ? 16
			                                         : (algs[i] & 0x0F) == 2 ? 20
			                                                                 : 32)));
			assert_int_equal(hdl_seckey_verify(secret, sl(K_NONCE, 16),
			                                   sl(K_DIGEST, 32), sl(a, al), old),
			                 HDL_EOK);
			assert_int_equal(hdl_seckey_verify(hdl_slice_str("other"), sl(K_NONCE, 16),
			                                   sl(K_DIGEST, 32), sl(a, al), old),
			                 HDL_EAUTH);
			assert_int_equal(hdl_seckey_verify(secret, sl(K_DIGEST, 16),
			                                   sl(K_DIGEST, 32), sl(a, al), old),
			                 HDL_EAUTH);
			assert_int_equal(hdl_seckey_resp_decode(a, al, old, &r), HDL_EOK);
			assert_int_equal(r.alg, algs[i]);
			assert_int_equal(hdl_seckey_resp_encode(&r, b, sizeof(b), &bl), HDL_EOK);
			assert_int_equal(bl, al);
			assert_memory_equal(a, b, al);
		}
	}
	/* two PBKDF2 answers differ (fresh salt) and both verify */
	{
		uint8_t a[HDL_SECKEY_RESP_MAX], b[HDL_SECKEY_RESP_MAX];
		size_t al = 0, bl = 0;
		assert_int_equal(hdl_seckey_answer(HDL_MAC_PBKDF2_SHA1, hdl_slice_str("k"),
		                                   sl(K_NONCE, 16), sl(K_DIGEST, 32), a, sizeof(a),
		                                   &al),
		                 HDL_EOK);
		assert_int_equal(hdl_seckey_answer(HDL_MAC_PBKDF2_SHA1, hdl_slice_str("k"),
		                                   sl(K_NONCE, 16), sl(K_DIGEST, 32), b, sizeof(b),
		                                   &bl),
		                 HDL_EOK);
		assert_int_equal(al, bl);
		assert_true(memcmp(a, b, al) != 0);
	}
	/* unknown algorithm, too small a buffer */
	{
		uint8_t a[8];
		size_t al = 0;
		assert_int_equal(hdl_seckey_answer(0x05, hdl_slice_str("k"), sl(K_NONCE, 16),
		                                   sl(K_DIGEST, 32), a, sizeof(a), &al),
		                 HDL_EINVAL);
		assert_int_equal(hdl_seckey_answer(HDL_MAC_SHA256, hdl_slice_str("k"),
		                                   sl(K_NONCE, 16), sl(K_DIGEST, 32), a, sizeof(a),
		                                   &al),
		                 HDL_ESPACE);
	}
}

/** PBKDF2 answer bytes with the given parameters (MAC all zero). */
static size_t pbkdf2_resp(uint8_t *out, uint32_t salt_len, uint32_t iter, uint32_t bits,
                          uint32_t mac_len, size_t extra)
{
	size_t o = 0;
	out[o++] = HDL_MAC_PBKDF2_SHA1;
	out[o++] = (uint8_t)(salt_len >> 24);
	out[o++] = (uint8_t)(salt_len >> 16);
	out[o++] = (uint8_t)(salt_len >> 8);
	out[o++] = (uint8_t)salt_len;
	memset(out + o, 0x5A, salt_len);
	o += salt_len;
	for (int s = 24; s >= 0; s -= 8)
		out[o++] = (uint8_t)(iter >> s);
	for (int s = 24; s >= 0; s -= 8)
		out[o++] = (uint8_t)(bits >> s);
	for (int s = 24; s >= 0; s -= 8)
		out[o++] = (uint8_t)(mac_len >> s);
	memset(out + o, 0, mac_len + extra);
	return o + mac_len + extra;
}

static void test_seckey_malformed(void **state)
{
	uint8_t b[2048];
	hdl_seckey_resp_t r;
	size_t n;
	(void)state;

	/* caps are checked before any work: a million iterations is refused at once */
	n = pbkdf2_resp(b, 16, HDL_PBKDF2_MAX_ITERATIONS + 1, 160, 20, 0);
	assert_int_equal(hdl_seckey_resp_decode(b, n, false, &r), HDL_ELIMIT);
	assert_int_equal(hdl_seckey_verify(hdl_slice_str("s"), sl(K_NONCE, 16), sl(K_DIGEST, 32),
	                                   sl(b, n), false),
	                 HDL_ELIMIT);
	n = pbkdf2_resp(b, 16, 0xFFFFFFFFu, 160, 20, 0);
	assert_int_equal(hdl_seckey_resp_decode(b, n, false, &r), HDL_ELIMIT);
	n = pbkdf2_resp(b, 16, 0, 160, 20, 0);
	assert_int_equal(hdl_seckey_resp_decode(b, n, false, &r), HDL_ELIMIT);
	n = pbkdf2_resp(b, 16, HDL_PBKDF2_MAX_ITERATIONS, 160, 20, 0);
	assert_int_equal(hdl_seckey_resp_decode(b, n, false, &r), HDL_EOK);
	n = pbkdf2_resp(b, HDL_PBKDF2_MAX_SALT + 1, 10, 160, 20, 0);
	assert_int_equal(hdl_seckey_resp_decode(b, n, false, &r), HDL_ELIMIT);
	n = pbkdf2_resp(b, 16, 10, HDL_PBKDF2_MAX_KEY_BITS + 8, 20, 0);
	assert_int_equal(hdl_seckey_resp_decode(b, n, false, &r), HDL_ELIMIT);
	n = pbkdf2_resp(b, 16, 10, 161, 20, 0);
	assert_int_equal(hdl_seckey_resp_decode(b, n, false, &r), HDL_EMALF);
	n = pbkdf2_resp(b, 16, 10, 0, 20, 0);
	assert_int_equal(hdl_seckey_resp_decode(b, n, false, &r), HDL_EMALF);
	n = pbkdf2_resp(b, 16, 10, 160, 19, 0);
	assert_int_equal(hdl_seckey_resp_decode(b, n, false, &r), HDL_EMALF);
	n = pbkdf2_resp(b, 16, 10, 160, 64, 0);
	assert_int_equal(hdl_seckey_resp_decode(b, n, false, &r), HDL_EMALF);
	n = pbkdf2_resp(b, 16, 10, 160, 20, 1);
	assert_int_equal(hdl_seckey_resp_decode(b, n, false, &r), HDL_EMALF);
	n = pbkdf2_resp(b, 16, 10, 160, 20, 0);
	for (size_t cut = 0; cut < n; cut++)
		assert_int_not_equal(hdl_seckey_resp_decode(b, cut, false, &r), HDL_EOK);
	/* fixed-size algorithms: exact lengths only */
	memset(b, 0, sizeof(b));
	b[0] = HDL_MAC_SHA1;
	assert_int_equal(hdl_seckey_resp_decode(b, 21, false, &r), HDL_EOK);
	assert_int_equal(hdl_seckey_resp_decode(b, 20, false, &r), HDL_ETRUNC);
	assert_int_equal(hdl_seckey_resp_decode(b, 22, false, &r), HDL_EMALF);
	b[0] = 0x05;
	assert_int_equal(hdl_seckey_resp_decode(b, 21, false, &r), HDL_EMALF);
	b[0] = HDL_MAC_OLD_MD5; /* the 2.0 form has no algorithm byte */
	assert_int_equal(hdl_seckey_resp_decode(b, 17, false, &r), HDL_EMALF);
	assert_int_equal(hdl_seckey_resp_decode(b, 0, false, &r), HDL_ETRUNC);
	/* protocol 2.0: the bare MD5 */
	assert_int_equal(hdl_seckey_resp_decode(b, 16, true, &r), HDL_EOK);
	assert_int_equal(r.alg, HDL_MAC_OLD_MD5);
	assert_int_equal(hdl_seckey_resp_decode(b, 15, true, &r), HDL_ETRUNC);
	assert_int_equal(hdl_seckey_resp_decode(b, 17, true, &r), HDL_EMALF);
	/* hdl_seckey_mac refuses PBKDF2 without or with bad parameters */
	{
		uint8_t mac[HDL_MAC_MAX_LEN];
		size_t ml;
		hdl_seckey_resp_t p = {
		    .salt = sl(K_SALT, 16), .iterations = 200000, .key_bits = 160};
		assert_int_equal(hdl_seckey_mac(HDL_MAC_PBKDF2_SHA1, hdl_slice_str("s"),
		                                sl(K_NONCE, 16), sl(K_DIGEST, 32), NULL, mac, &ml),
		                 HDL_EINVAL);
		assert_int_equal(hdl_seckey_mac(HDL_MAC_PBKDF2_SHA1, hdl_slice_str("s"),
		                                sl(K_NONCE, 16), sl(K_DIGEST, 32), &p, mac, &ml),
		                 HDL_ELIMIT);
		assert_int_equal(hdl_seckey_mac(0x07, hdl_slice_str("s"), sl(K_NONCE, 16),
		                                sl(K_DIGEST, 32), &p, mac, &ml),
		                 HDL_EINVAL);
	}
}

static void test_alg_for_version(void **state)
{
	(void)state;
	assert_int_equal(hdl_seckey_alg_for(2, 0), HDL_MAC_OLD_MD5);
	assert_int_equal(hdl_seckey_alg_for(5, 0), HDL_MAC_OLD_MD5);
	assert_int_equal(hdl_seckey_alg_for(2, 1), HDL_MAC_SHA1);
	assert_int_equal(hdl_seckey_alg_for(2, 6), HDL_MAC_SHA1);
	assert_int_equal(hdl_seckey_alg_for(2, 7), HDL_MAC_PBKDF2_SHA1);
	assert_int_equal(hdl_seckey_alg_for(2, 11), HDL_MAC_PBKDF2_SHA1);
	assert_int_equal(hdl_seckey_alg_for(3, 0), HDL_MAC_PBKDF2_SHA1);
	assert_int_equal(hdl_pubkey_hash_for(NULL, 2, 6), HDL_DIGEST_SHA1);
	assert_int_equal(hdl_pubkey_hash_for(NULL, 2, 7), HDL_DIGEST_SHA256);
	{
		EVP_PKEY *dsa = load_key("tests/data/dsapriv.pem", NULL);
		assert_int_equal(hdl_pubkey_hash_for(dsa, 2, 10), HDL_DIGEST_SHA1);
		assert_int_equal(hdl_pubkey_hash_for(dsa, 2, 11), HDL_DIGEST_SHA256);
		EVP_PKEY_free(dsa);
	}
}

/** \brief Answer with \p a to a challenge with envelope \p env; \return the answer's length. */
static size_t answer(const hdl_auth_t *a, const hdl_envelope_t *env, size_t dlen, uint8_t *out)
{
	size_t n = 0;
	assert_int_equal(hdl_auth_answer(a, env, sl(K_NONCE, 16), sl(K_DIGEST, dlen), out,
	                                 HDL_PUBKEY_RESP_MAX, &n),
	                 HDL_EOK);
	return n;
}

/* hdl_auth_answer picks by the challenge's version (seckey: the lower of it and the suggested) */
static void test_auth_answer(void **state)
{
	hdl_auth_t a = {.id_handle = hdl_slice_str("0.NA/88.100"),
	                .id_index = 300,
	                .secret = hdl_slice_str("secret"),
	                .seckey_alg = HDL_MAC_AUTO};
	hdl_envelope_t env = {.major = 2, .minor = 11, .sugg_major = 0, .sugg_minor = 0};
	uint8_t out[HDL_PUBKEY_RESP_MAX];
	hdl_pubkey_resp_t pr;
	size_t n;
	(void)state;

	assert_true(hdl_slice_eq(hdl_auth_type(&a), hdl_slice_str("HS_SECKEY")));
	answer(&a, &env, 32, out);
	assert_int_equal(out[0], HDL_MAC_PBKDF2_SHA1);
	env.sugg_major = 2; /* 2.11 suggesting 2.5: hdllib answers for 2.5 */
	env.sugg_minor = 5;
	answer(&a, &env, 32, out);
	assert_int_equal(out[0], HDL_MAC_SHA1);
	env.minor = 0; /* 2.0: the bare MD5 over the old-format digest */
	env.sugg_minor = 0;
	n = answer(&a, &env, 16, out);
	assert_int_equal(n, 16);
	assert_int_equal(
	    hdl_seckey_verify(a.secret, sl(K_NONCE, 16), sl(K_DIGEST, 16), sl(out, n), true),
	    HDL_EOK);
	/* a forced algorithm */
	env.minor = 10;
	env.sugg_major = 0;
	a.seckey_alg = HDL_MAC_HMAC_SHA256;
	answer(&a, &env, 32, out);
	assert_int_equal(out[0], HDL_MAC_HMAC_SHA256);
	/* with a key: HS_PUBKEY, SHA-256 at 2.10 for RSA */
	a.key = load_key("tests/data/admpriv.pem", NULL);
	assert_true(hdl_slice_eq(hdl_auth_type(&a), hdl_slice_str("HS_PUBKEY")));
	n = answer(&a, &env, 32, out);
	assert_int_equal(hdl_pubkey_resp_decode(out, n, &pr), HDL_EOK);
	assert_true(hdl_slice_eq(pr.hash_name, hdl_slice_str("SHA-256")));
	assert_int_equal(hdl_pubkey_verify(a.key, sl(K_NONCE, 16), sl(K_DIGEST, 32), sl(out, n)),
	                 HDL_EOK);
	EVP_PKEY_free(a.key);
}

/* ---- HS_PUBKEY ------------------------------------------------------------------------------ */

static void test_pubkey_roundtrip(void **state)
{
	static const char *const privs[] = {"tests/data/admpriv.pem", "tests/data/dsapriv.pem"};
	static const char *const pubs[] = {"tests/data/admpub.pem", "tests/data/dsapub.pem"};
	static const uint8_t hashes[] = {HDL_DIGEST_SHA1, HDL_DIGEST_SHA256};
	(void)state;
	for (int k = 0; k < 2; k++) {
		EVP_PKEY *priv = load_key(privs[k], NULL);
		EVP_PKEY *pub = load_pub(pubs[k]); /* PEM public key as IDIS HS_PUBKEY data */
		EVP_PKEY *wrong = load_key(privs[1 - k], NULL);
		uint8_t val[4096];
		size_t vl = 0;
		EVP_PKEY *frombin = NULL;

		/* binary HS_PUBKEY value of the key: RSA_PUB_KEY / DSA_PUB_KEY */
		assert_int_equal(hdl_pubkey_value_from_pkey(priv, val, sizeof(val), &vl), HDL_EOK);
		assert_int_equal(hdl_pkey_from_value(val, vl, &frombin), HDL_EOK);
		assert_int_equal(EVP_PKEY_eq(frombin, pub), 1);
		for (int h = 0; h < 2; h++) {
			uint8_t a[HDL_PUBKEY_RESP_MAX], b[HDL_PUBKEY_RESP_MAX];
			size_t al = 0, bl = 0;
			hdl_pubkey_resp_t r;

			assert_int_equal(hdl_pubkey_answer(priv, hashes[h], sl(K_NONCE, 16),
			                                   sl(K_DIGEST, 32), a, sizeof(a), &al),
			                 HDL_EOK);
			assert_int_equal(hdl_pubkey_resp_decode(a, al, &r), HDL_EOK);
			assert_true(hdl_slice_eq(
			    r.hash_name,
			    hdl_slice_str(hashes[h] == HDL_DIGEST_SHA1 ? "SHA1" : "SHA-256")));
			assert_int_equal(hdl_pubkey_resp_encode(&r, b, sizeof(b), &bl), HDL_EOK);
			assert_int_equal(bl, al);
			assert_memory_equal(a, b, al);
			assert_int_equal(
			    hdl_pubkey_verify(pub, sl(K_NONCE, 16), sl(K_DIGEST, 32), sl(a, al)),
			    HDL_EOK);
			assert_int_equal(hdl_pubkey_verify(frombin, sl(K_NONCE, 16),
			                                   sl(K_DIGEST, 32), sl(a, al)),
			                 HDL_EOK);
			assert_int_equal(
			    hdl_pubkey_verify(wrong, sl(K_NONCE, 16), sl(K_DIGEST, 32), sl(a, al)),
			    HDL_EAUTH);
			assert_int_equal(
			    hdl_pubkey_verify(pub, sl(K_NONCE, 15), sl(K_DIGEST, 32), sl(a, al)),
			    HDL_EAUTH);
			a[al - 3] ^= 0x01;
			assert_int_equal(
			    hdl_pubkey_verify(pub, sl(K_NONCE, 16), sl(K_DIGEST, 32), sl(a, al)),
			    HDL_EAUTH);
		}
		/* a public-only key cannot sign */
		{
			uint8_t a[HDL_PUBKEY_RESP_MAX];
			size_t al = 0;
			assert_int_equal(hdl_pubkey_answer(pub, HDL_DIGEST_SHA256, sl(K_NONCE, 16),
			                                   sl(K_DIGEST, 32), a, sizeof(a), &al),
			                 HDL_EINVAL);
			assert_int_equal(hdl_pubkey_answer(priv, HDL_DIGEST_MD5, sl(K_NONCE, 16),
			                                   sl(K_DIGEST, 32), a, sizeof(a), &al),
			                 HDL_EINVAL);
		}
		EVP_PKEY_free(frombin);
		EVP_PKEY_free(priv);
		EVP_PKEY_free(pub);
		EVP_PKEY_free(wrong);
	}
}

static void test_pubkey_resp_malformed(void **state)
{
	EVP_PKEY *priv = load_key("tests/data/admpriv.pem", NULL);
	uint8_t a[HDL_PUBKEY_RESP_MAX + 16], b[HDL_PUBKEY_RESP_MAX + 16];
	hdl_pubkey_resp_t r;
	size_t al = 0, bl = 0;
	(void)state;

	assert_int_equal(hdl_sig_hash_from_name(hdl_slice_str("sha-256")), HDL_DIGEST_SHA256);
	assert_int_equal(hdl_sig_hash_from_name(hdl_slice_str("SHA256")), HDL_DIGEST_SHA256);
	assert_int_equal(hdl_sig_hash_from_name(hdl_slice_str("SHA-1")), HDL_DIGEST_SHA1);
	assert_int_equal(hdl_sig_hash_from_name(hdl_slice_str("MD5")), -1);
	assert_int_equal(hdl_sig_hash_from_name(hdl_slice_str("SM3")), -1);
	assert_int_equal(hdl_sig_hash_from_name(hdl_slice_str("SHA-2566")), -1);

	assert_int_equal(hdl_pubkey_answer(priv, HDL_DIGEST_SHA256, sl(K_NONCE, 16),
	                                   sl(K_DIGEST, 32), a, sizeof(a), &al),
	                 HDL_EOK);
	for (size_t cut = 0; cut < al; cut++)
		assert_int_not_equal(hdl_pubkey_resp_decode(a, cut, &r), HDL_EOK);
	a[al] = 0;
	assert_int_equal(hdl_pubkey_resp_decode(a, al + 1, &r), HDL_EMALF);
	/* an unsupported hash name is refused before any work */
	r.hash_name = hdl_slice_str("MD5");
	assert_int_equal(hdl_pubkey_resp_decode(a, al, &r), HDL_EOK);
	r.hash_name = hdl_slice_str("MD5");
	assert_int_equal(hdl_pubkey_resp_encode(&r, b, sizeof(b), &bl), HDL_EOK);
	assert_int_equal(hdl_pubkey_verify(priv, sl(K_NONCE, 16), sl(K_DIGEST, 32), sl(b, bl)),
	                 HDL_EINVAL);
	/* over-long name and signature */
	memset(b, 0, sizeof(b));
	b[3] = HDL_SIG_HASH_NAME_MAX + 1;
	assert_int_equal(hdl_pubkey_resp_decode(b, sizeof(b), &r), HDL_ELIMIT);
	b[3] = 0;
	b[5] = (uint8_t)((HDL_SIG_MAX_LEN + 1) >> 16);
	b[6] = (uint8_t)((HDL_SIG_MAX_LEN + 1) >> 8);
	b[7] = (uint8_t)(HDL_SIG_MAX_LEN + 1);
	assert_int_equal(hdl_pubkey_resp_decode(b, sizeof(b), &r), HDL_ELIMIT);
	EVP_PKEY_free(priv);
}

/* ---- keys ----------------------------------------------------------------------------------- */

static void test_pubkey_values(void **state)
{
	size_t len = 0, ol = 0;
	uint8_t *bin = file_load("tests/data/admpub.bin", &len);
	uint8_t out[1024], bad[64];
	EVP_PKEY *k = NULL;
	hdl_pubkey_t pk;
	(void)state;

	assert_non_null(bin);
	/* Handle binary form: back to the same bytes (Java two's-complement numbers, 4 zero bytes)
	 */
	assert_int_equal(hdl_pkey_from_value(bin, len, &k), HDL_EOK);
	assert_int_equal(EVP_PKEY_get_bits(k), 2048);
	assert_int_equal(hdl_pubkey_value_from_pkey(k, out, sizeof(out), &ol), HDL_EOK);
	assert_int_equal(ol, len);
	assert_memory_equal(out, bin, len);
	assert_int_equal(hdl_pubkey_value_from_pkey(k, out, 100, &ol), HDL_ESPACE);
	EVP_PKEY_free(k);
	free(bin);

	/* kinds we do not verify with */
	memset(&pk, 0, sizeof(pk));
	pk.kind = HDL_KEY_DH;
	assert_int_equal(hdl_pkey_from_pubkey(&pk, &k), HDL_EINVAL);
	pk.kind = HDL_KEY_UNKNOWN;
	assert_int_equal(hdl_pkey_from_pubkey(&pk, &k), HDL_EINVAL);
	/* empty numbers, an over-long modulus */
	pk.kind = HDL_KEY_RSA;
	pk.e = hdl_slice_str("\x01\x00\x01");
	assert_int_equal(hdl_pkey_from_pubkey(&pk, &k), HDL_EMALF);
	{
		static uint8_t huge[HDL_KEY_MAX_BITS / 8 + 1];
		huge[0] = 0x80;
		pk.n = sl(huge, sizeof(huge));
		assert_int_equal(hdl_pkey_from_pubkey(&pk, &k), HDL_ELIMIT);
		/* leading zero bytes do not count */
		huge[0] = 0;
		huge[1] = 0xC1;
		huge[sizeof(huge) - 1] = 0x01;
		assert_int_equal(hdl_pkey_from_pubkey(&pk, &k), HDL_EOK);
		assert_int_equal(EVP_PKEY_get_bits(k), (int)HDL_KEY_MAX_BITS);
		EVP_PKEY_free(k);
	}
	/* PEM that is not a key, a truncated binary value */
	pk.kind = HDL_KEY_PEM;
	pk.pem = hdl_slice_str("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n");
	assert_int_equal(hdl_pkey_from_pubkey(&pk, &k), HDL_EMALF);
	memcpy(bad, "\0\0\0\x0bRSA_PUB_KEY\0\0\0\0\0\x03\x01\x00", 24);
	assert_int_not_equal(hdl_pkey_from_value(bad, 24, &k), HDL_EOK);
	assert_null(k);
	/* an EC key has no Handle binary form here */
	{
		EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
		assert_non_null(ec);
		assert_int_equal(hdl_pubkey_value_from_pkey(ec, out, sizeof(out), &ol), HDL_EINVAL);
		assert_int_equal(hdl_privkey_encode_cnri(ec, hdl_slice_str(""), NULL, 0, &ol),
		                 HDL_EINVAL);
		EVP_PKEY_free(ec);
	}
}

static void test_privkey_files(void **state)
{
	static const struct {
		const char *file;
		const char *pass;
	} ok[] = {
	    {"tests/data/admpriv.bin", NULL},
	    {"tests/data/admpriv-aes.bin", "p\xc3\xa4sswort"}, /* hdllib's default encryption */
	    {"tests/data/admpriv-3des.bin", "test passphrase"},
	    {"tests/data/admpriv-des.bin", "test passphrase"},
	    {"tests/data/admpriv-desecb.bin", "test passphrase"},
	};
	EVP_PKEY *pub = load_pub("tests/data/admpub.bin");
	EVP_PKEY *pub2 = load_pub("tests/data/admpub.pem");
	(void)state;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		size_t len = 0;
		uint8_t *buf = file_load(ok[i].file, &len);
		EVP_PKEY *k = NULL;

		assert_non_null(buf);
		assert_int_equal(
		    hdl_privkey_decode(buf, len, hdl_slice_str(ok[i].pass ? ok[i].pass : ""), &k),
		    HDL_EOK);
		assert_int_equal(EVP_PKEY_eq(k, pub), 1);
		EVP_PKEY_free(k);
		if (ok[i].pass) {
			k = NULL;
			assert_int_equal(hdl_privkey_decode(buf, len, hdl_slice_str("wrong"), &k),
			                 HDL_EAUTH);
			assert_null(k);
			assert_int_equal(hdl_privkey_decode(buf, len, hdl_slice_str(""), &k),
			                 HDL_EAUTH);
			/* cut short */
			assert_int_not_equal(
			    hdl_privkey_decode(buf, len - 8, hdl_slice_str(ok[i].pass), &k),
			    HDL_EOK);
		}
		free(buf);
	}
	/* PEM: plain PKCS#8, encrypted PKCS#8, traditional encrypted */
	{
		EVP_PKEY *k = load_key("tests/data/admpriv.pem", NULL);
		assert_int_equal(EVP_PKEY_eq(k, pub2), 1);
		EVP_PKEY_free(k);
		k = load_key("tests/data/admpriv-pkcs8-enc.pem", "test passphrase");
		assert_int_equal(EVP_PKEY_eq(k, pub2), 1);
		EVP_PKEY_free(k);
		k = load_key("tests/data/admpriv-trad-enc.pem", "test passphrase");
		assert_int_equal(EVP_PKEY_eq(k, pub2), 1);
		EVP_PKEY_free(k);
		for (int f = 0; f < 2; f++) {
			size_t len = 0;
			uint8_t *buf = file_load(f ? "tests/data/admpriv-trad-enc.pem"
			                           : "tests/data/admpriv-pkcs8-enc.pem",
			                         &len);
			k = NULL;
			assert_int_equal(hdl_privkey_decode(buf, len, hdl_slice_str("nope"), &k),
			                 HDL_EAUTH);
			assert_int_equal(hdl_privkey_decode(buf, len, hdl_slice_str(""), &k),
			                 HDL_EAUTH);
			assert_null(k);
			free(buf);
		}
	}
	/* garbage, unknown encryption type, a public key where a private one is wanted */
	{
		static const uint8_t junk[] = {0, 0, 0, 9, 1, 2, 3};
		static const uint8_t rsapriv[] =
		    "\0\0\0\x01\0\0\0\x0cRSA_PRIV_KEY\0\0\0\x01\x05\0\0\0\x01\x03";
		size_t len = 0;
		uint8_t *buf = file_load("tests/data/admpub.pem", &len);
		EVP_PKEY *k = NULL;
		assert_int_equal(hdl_privkey_decode(junk, sizeof(junk), hdl_slice_str(""), &k),
		                 HDL_EMALF);
		assert_int_equal(hdl_privkey_decode(junk, 3, hdl_slice_str(""), &k), HDL_EMALF);
		assert_int_equal(
		    hdl_privkey_decode(rsapriv, sizeof(rsapriv) - 1, hdl_slice_str(""), &k),
		    HDL_EINVAL);
		assert_int_equal(hdl_privkey_decode(buf, len, hdl_slice_str(""), &k), HDL_EMALF);
		assert_null(k);
		free(buf);
	}
	EVP_PKEY_free(pub);
	EVP_PKEY_free(pub2);
}

static void test_privkey_cnri_roundtrip(void **state)
{
	size_t len = 0, ol = 0, need = 0;
	uint8_t *bin = file_load("tests/data/admpriv.bin", &len);
	EVP_PKEY *k = load_key("tests/data/admpriv.bin", NULL);
	EVP_PKEY *dsa = load_key("tests/data/dsapriv.pem", NULL);
	uint8_t out[8192];
	(void)state;

	/* unencrypted: the very bytes hdllib wrote */
	assert_int_equal(hdl_privkey_encode_cnri(k, hdl_slice_str(""), NULL, 0, &need), HDL_EOK);
	assert_int_equal(need, len);
	assert_int_equal(hdl_privkey_encode_cnri(k, hdl_slice_str(""), out, sizeof(out), &ol),
	                 HDL_EOK);
	assert_int_equal(ol, len);
	assert_memory_equal(out, bin, len);
	assert_int_equal(hdl_privkey_encode_cnri(k, hdl_slice_str(""), out, 100, &ol), HDL_ESPACE);
	/* encrypted (PBKDF2 + AES, as hdllib), RSA and DSA */
	for (int i = 0; i < 2; i++) {
		EVP_PKEY *key = i ? dsa : k, *back = NULL;
		assert_int_equal(hdl_privkey_encode_cnri(key, hdl_slice_str("pw"), NULL, 0, &need),
		                 HDL_EOK);
		assert_int_equal(
		    hdl_privkey_encode_cnri(key, hdl_slice_str("pw"), out, sizeof(out), &ol),
		    HDL_EOK);
		assert_int_equal(ol, need);
		assert_int_equal(out[3], HDL_PRIVKEY_ENC_PBKDF2_AES);
		assert_int_equal(hdl_privkey_decode(out, ol, hdl_slice_str("pw"), &back), HDL_EOK);
		assert_int_equal(EVP_PKEY_eq(back, key), 1);
		EVP_PKEY_free(back);
		back = NULL;
		assert_int_equal(hdl_privkey_decode(out, ol, hdl_slice_str("pW"), &back),
		                 HDL_EAUTH);
		/* and plain, for DSA too: the key signs after the trip */
		assert_int_equal(
		    hdl_privkey_encode_cnri(key, hdl_slice_str(""), out, sizeof(out), &ol),
		    HDL_EOK);
		assert_int_equal(hdl_privkey_decode(out, ol, hdl_slice_str(""), &back), HDL_EOK);
		{
			uint8_t sig[HDL_PUBKEY_RESP_MAX];
			size_t sl_ = 0;
			assert_int_equal(hdl_pubkey_answer(back, HDL_DIGEST_SHA256, sl(K_NONCE, 16),
			                                   sl(K_DIGEST, 32), sig, sizeof(sig),
			                                   &sl_),
			                 HDL_EOK);
			assert_int_equal(
			    hdl_pubkey_verify(key, sl(K_NONCE, 16), sl(K_DIGEST, 32), sl(sig, sl_)),
			    HDL_EOK);
		}
		EVP_PKEY_free(back);
	}
	EVP_PKEY_free(k);
	EVP_PKEY_free(dsa);
	free(bin);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_seckey_captures),
	    cmocka_unit_test(test_pubkey_capture),
	    cmocka_unit_test_setup(test_seckey_kat, kat_setup),
	    cmocka_unit_test_setup(test_seckey_roundtrip, kat_setup),
	    cmocka_unit_test_setup(test_seckey_malformed, kat_setup),
	    cmocka_unit_test(test_alg_for_version),
	    cmocka_unit_test_setup(test_auth_answer, kat_setup),
	    cmocka_unit_test_setup(test_pubkey_roundtrip, kat_setup),
	    cmocka_unit_test_setup(test_pubkey_resp_malformed, kat_setup),
	    cmocka_unit_test(test_pubkey_values),
	    cmocka_unit_test(test_privkey_files),
	    cmocka_unit_test_setup(test_privkey_cnri_roundtrip, kat_setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
