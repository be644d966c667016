/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Challenge-response crypto (include/hdl/auth.h): HS_SECKEY MACs, HS_PUBKEY signatures,
 *        the signedResponse encodings, and key conversions (HS_PUBKEY value data, PEM, the CNRI
 *        private key file). OpenSSL 3 EVP / OSSL_DECODER / OSSL_PARAM only; no I/O.
 *
 * Every decoder checks lengths and caps before it computes anything, so hostile input is
 * rejected at the cost of reading it. Buffers that held secrets or key material are cleansed.
 */
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/provider.h>
#include <openssl/rand.h>

#include "hdl/auth.h"
#include "hdl/error.h"
#include "proto/wire.h"

/** Most PBKDF2 iterations we run to open a CNRI private key file (a local file, not a peer). */
#define PRIVKEY_MAX_ITERATIONS 1000000u
/** Largest key file we parse. */
#define PRIVKEY_MAX_LEN (1u << 20)

/* ---- small helpers ------------------------------------------------------------------------- */

/** \brief Version \p major.\p minor is at least 2.\p min (5.0 is a buggy 2.0; 3.x counts as new).
 */
static bool ver_ge(uint8_t major, uint8_t minor, uint8_t min)
{
	if (major == 5 || major < 2)
		return min == 0;
	if (major > 2)
		return true;
	return minor >= min;
}

/** \brief A non-NULL pointer for OpenSSL calls that reject NULL even with length 0. */
static const uint8_t *nz(hdl_slice_t s)
{
	static const uint8_t empty[1] = {0};
	return s.p ? s.p : empty;
}

/**
 * \brief The password bytes Java's PBKDF2WithHmacSHA1 sees for \p pw: hdllib widens each byte to
 *        a char (0..255) and the provider encodes the chars as UTF-8.
 * \return a buffer (OPENSSL_clear_free it with *outlen) or NULL on allocation failure
 */
static uint8_t *java_pbkdf2_password(hdl_slice_t pw, size_t *outlen)
{
	uint8_t *b = OPENSSL_malloc((size_t)pw.len * 2u + 1u);
	size_t o = 0;

	if (!b)
		return NULL;
	for (uint32_t i = 0; i < pw.len; i++) {
		uint8_t c = pw.p[i];
		if (c < 0x80) {
			b[o++] = c;
		} else {
			b[o++] = (uint8_t)(0xC0u | (c >> 6));
			b[o++] = (uint8_t)(0x80u | (c & 0x3Fu));
		}
	}
	*outlen = o;
	return b;
}

/** \brief PBKDF2-HMAC-SHA1 with Java's password encoding. \retval HDL_EOK, HDL_ENOMEM */
static int pbkdf2_sha1(hdl_slice_t pw, hdl_slice_t salt, uint32_t iterations, uint8_t *out,
                       size_t outlen)
{
	size_t jl = 0;
	uint8_t *jp = java_pbkdf2_password(pw, &jl);
	int ok;

	if (!jp)
		return HDL_ENOMEM;
	ok = PKCS5_PBKDF2_HMAC((const char *)jp, (int)jl, nz(salt), (int)salt.len, (int)iterations,
	                       EVP_sha1(), (int)outlen, out);
	OPENSSL_clear_free(jp, pw.len * 2u + 1u);
	return ok == 1 ? HDL_EOK : HDL_ENOMEM;
}

/** \brief HMAC of \p d1 || \p d2 with \p key (not NULL). \retval HDL_EOK, HDL_ENOMEM */
static int hmac2(const char *md, const uint8_t *key, size_t klen, hdl_slice_t d1, hdl_slice_t d2,
                 uint8_t out[HDL_MAC_MAX_LEN], size_t *outlen)
{
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = NULL;
	OSSL_PARAM params[2];
	int ret = HDL_ENOMEM;

	if (!mac)
		goto out;
	ctx = EVP_MAC_CTX_new(mac);
	if (!ctx)
		goto out;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)md, 0);
	params[1] = OSSL_PARAM_construct_end();
	if (EVP_MAC_init(ctx, key, klen, params) != 1 || EVP_MAC_update(ctx, nz(d1), d1.len) != 1 ||
	    EVP_MAC_update(ctx, nz(d2), d2.len) != 1 ||
	    EVP_MAC_final(ctx, out, outlen, HDL_MAC_MAX_LEN) != 1)
		goto out;
	ret = HDL_EOK;
out:
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	return ret;
}

/** \brief H(K || nonce || digest || K). \retval HDL_EOK, HDL_ENOMEM */
static int keyed_hash(const EVP_MD *md, hdl_slice_t k, hdl_slice_t nonce, hdl_slice_t digest,
                      uint8_t out[HDL_MAC_MAX_LEN], size_t *outlen)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned n = 0;
	int ret = HDL_ENOMEM;

	if (!ctx)
		return ret;
	if (EVP_DigestInit_ex(ctx, md, NULL) == 1 && EVP_DigestUpdate(ctx, nz(k), k.len) == 1 &&
	    EVP_DigestUpdate(ctx, nz(nonce), nonce.len) == 1 &&
	    EVP_DigestUpdate(ctx, nz(digest), digest.len) == 1 &&
	    EVP_DigestUpdate(ctx, nz(k), k.len) == 1 && EVP_DigestFinal_ex(ctx, out, &n) == 1) {
		*outlen = n;
		ret = HDL_EOK;
	}
	EVP_MD_CTX_free(ctx);
	return ret;
}

/* ---- HS_SECKEY ------------------------------------------------------------------------------ */

/** \brief MAC length of a fixed-size algorithm, 0 for PBKDF2 and unknown ones. */
static size_t mac_len(uint8_t alg)
{
	switch (alg) {
	case HDL_MAC_OLD_MD5:
	case HDL_MAC_MD5: return 16;
	case HDL_MAC_SHA1:
	case HDL_MAC_HMAC_SHA1: return 20;
	case HDL_MAC_SHA256:
	case HDL_MAC_HMAC_SHA256: return 32;
	default: return 0;
	}
}

/** \brief Check PBKDF2 parameters against the caps. \retval HDL_EOK, HDL_ELIMIT, HDL_EMALF */
static int pbkdf2_params_check(const hdl_seckey_resp_t *r)
{
	if (r->salt.len > HDL_PBKDF2_MAX_SALT || r->iterations == 0 ||
	    r->iterations > HDL_PBKDF2_MAX_ITERATIONS || r->key_bits > HDL_PBKDF2_MAX_KEY_BITS)
		return HDL_ELIMIT;
	if (r->key_bits == 0 || r->key_bits % 8u != 0)
		return HDL_EMALF;
	return HDL_EOK;
}

int hdl_seckey_resp_decode(const uint8_t *p, size_t len, bool old_format, hdl_seckey_resp_t *out)
{
	wire_rd_t rd = wire_rd_init(p, len);
	int err;

	memset(out, 0, sizeof(*out));
	if (old_format) {
		/* protocol 2.0: the bare MD5, nothing else */
		if (len != 16)
			return len < 16 ? HDL_ETRUNC : HDL_EMALF;
		out->alg = HDL_MAC_OLD_MD5;
		out->mac = wire_rd_bytes(&rd, 16);
		return HDL_EOK;
	}
	out->alg = wire_rd_u8(&rd);
	if (rd.err)
		return rd.err;
	if (out->alg == HDL_MAC_PBKDF2_SHA1) {
		out->salt = wire_rd_lbytes(&rd, HDL_PBKDF2_MAX_SALT);
		out->iterations = wire_rd_u32(&rd);
		out->key_bits = wire_rd_u32(&rd);
		if (rd.err)
			return rd.err;
		if ((err = pbkdf2_params_check(out)) != HDL_EOK)
			return err;
		out->mac = wire_rd_lbytes(&rd, HDL_MAC_MAX_LEN);
		if (rd.err)
			return rd.err == HDL_ELIMIT ? HDL_EMALF : rd.err;
		if (out->mac.len != 20) /* HMAC-SHA1 */
			return HDL_EMALF;
	} else {
		size_t ml = mac_len(out->alg);
		/* 0x00 is the 2.0 form, which has no algorithm byte: not valid here */
		if (ml == 0 || out->alg == HDL_MAC_OLD_MD5)
			return HDL_EMALF;
		if (wire_rd_left(&rd) < ml)
			return HDL_ETRUNC;
		out->mac = wire_rd_bytes(&rd, ml);
	}
	if (wire_rd_left(&rd) != 0)
		return HDL_EMALF;
	return HDL_EOK;
}

int hdl_seckey_resp_encode(const hdl_seckey_resp_t *r, uint8_t *out, size_t cap, size_t *outlen)
{
	wire_wr_t wr = wire_wr_init(out, cap);

	if (r->alg == HDL_MAC_OLD_MD5) {
		wire_wr_bytes(&wr, r->mac.p, r->mac.len);
	} else if (r->alg == HDL_MAC_PBKDF2_SHA1) {
		wire_wr_u8(&wr, r->alg);
		wire_wr_slice(&wr, r->salt);
		wire_wr_u32(&wr, r->iterations);
		wire_wr_u32(&wr, r->key_bits);
		wire_wr_slice(&wr, r->mac);
	} else if (mac_len(r->alg) != 0) {
		wire_wr_u8(&wr, r->alg);
		wire_wr_bytes(&wr, r->mac.p, r->mac.len);
	} else {
		return HDL_EINVAL;
	}
	if (wr.err)
		return wr.err;
	*outlen = wr.pos;
	return HDL_EOK;
}

int hdl_seckey_mac(uint8_t alg, hdl_slice_t secret, hdl_slice_t nonce, hdl_slice_t digest,
                   const hdl_seckey_resp_t *pbkdf2, uint8_t out[HDL_MAC_MAX_LEN], size_t *outlen)
{
	uint8_t dk[HDL_PBKDF2_MAX_KEY_BITS / 8u];
	int ret;

	*outlen = 0;
	switch (alg) {
	case HDL_MAC_OLD_MD5:
	case HDL_MAC_MD5: return keyed_hash(EVP_md5(), secret, nonce, digest, out, outlen);
	case HDL_MAC_SHA1: return keyed_hash(EVP_sha1(), secret, nonce, digest, out, outlen);
	case HDL_MAC_SHA256: return keyed_hash(EVP_sha256(), secret, nonce, digest, out, outlen);
	case HDL_MAC_HMAC_SHA1:
		return hmac2("SHA1", nz(secret), secret.len, nonce, digest, out, outlen);
	case HDL_MAC_HMAC_SHA256:
		return hmac2("SHA256", nz(secret), secret.len, nonce, digest, out, outlen);
	case HDL_MAC_PBKDF2_SHA1:
		if (!pbkdf2)
			return HDL_EINVAL;
		if ((ret = pbkdf2_params_check(pbkdf2)) != HDL_EOK)
			return ret;
		ret = pbkdf2_sha1(secret, pbkdf2->salt, pbkdf2->iterations, dk,
		                  pbkdf2->key_bits / 8u);
		if (ret == HDL_EOK)
			ret = hmac2("SHA1", dk, pbkdf2->key_bits / 8u, nonce, digest, out, outlen);
		OPENSSL_cleanse(dk, sizeof(dk));
		return ret;
	default: return HDL_EINVAL;
	}
}

int hdl_seckey_answer(uint8_t alg, hdl_slice_t secret, hdl_slice_t nonce, hdl_slice_t digest,
                      uint8_t *out, size_t cap, size_t *outlen)
{
	uint8_t salt[HDL_PBKDF2_SALT_LEN];
	uint8_t mac[HDL_MAC_MAX_LEN];
	hdl_seckey_resp_t r;
	size_t ml = 0;
	int ret;

	memset(&r, 0, sizeof(r));
	r.alg = alg;
	if (alg == HDL_MAC_PBKDF2_SHA1) {
		if (RAND_bytes(salt, sizeof(salt)) != 1)
			return HDL_ENOMEM;
		r.salt.p = salt;
		r.salt.len = sizeof(salt);
		r.iterations = HDL_PBKDF2_ITERATIONS;
		r.key_bits = HDL_PBKDF2_KEY_BITS;
	}
	ret = hdl_seckey_mac(alg, secret, nonce, digest, &r, mac, &ml);
	if (ret != HDL_EOK)
		return ret;
	r.mac.p = mac;
	r.mac.len = (uint32_t)ml;
	ret = hdl_seckey_resp_encode(&r, out, cap, outlen);
	OPENSSL_cleanse(mac, sizeof(mac));
	return ret;
}

int hdl_seckey_verify(hdl_slice_t secret, hdl_slice_t nonce, hdl_slice_t digest,
                      hdl_slice_t signed_response, bool old_format)
{
	hdl_seckey_resp_t r;
	uint8_t mac[HDL_MAC_MAX_LEN];
	size_t ml = 0;
	int ret;

	ret = hdl_seckey_resp_decode(signed_response.p, signed_response.len, old_format, &r);
	if (ret != HDL_EOK)
		return ret;
	ret = hdl_seckey_mac(r.alg, secret, nonce, digest, &r, mac, &ml);
	if (ret != HDL_EOK)
		return ret;
	if (ml != r.mac.len || CRYPTO_memcmp(mac, r.mac.p, ml) != 0)
		ret = HDL_EAUTH;
	OPENSSL_cleanse(mac, sizeof(mac));
	return ret;
}

uint8_t hdl_seckey_alg_for(uint8_t major, uint8_t minor)
{
	if (!ver_ge(major, minor, 1))
		return HDL_MAC_OLD_MD5;
	if (!ver_ge(major, minor, 7))
		return HDL_MAC_SHA1;
	return HDL_MAC_PBKDF2_SHA1;
}

/* ---- HS_PUBKEY ------------------------------------------------------------------------------ */

int hdl_pubkey_resp_decode(const uint8_t *p, size_t len, hdl_pubkey_resp_t *out)
{
	wire_rd_t rd = wire_rd_init(p, len);

	memset(out, 0, sizeof(*out));
	out->hash_name = wire_rd_lbytes(&rd, HDL_SIG_HASH_NAME_MAX);
	out->signature = wire_rd_lbytes(&rd, HDL_SIG_MAX_LEN);
	if (rd.err)
		return rd.err;
	if (wire_rd_left(&rd) != 0)
		return HDL_EMALF;
	return HDL_EOK;
}

int hdl_pubkey_resp_encode(const hdl_pubkey_resp_t *r, uint8_t *out, size_t cap, size_t *outlen)
{
	wire_wr_t wr = wire_wr_init(out, cap);

	wire_wr_slice(&wr, r->hash_name);
	wire_wr_slice(&wr, r->signature);
	if (wr.err)
		return wr.err;
	*outlen = wr.pos;
	return HDL_EOK;
}

int hdl_sig_hash_from_name(hdl_slice_t name)
{
	static const struct {
		const char *name;
		int code;
	} names[] = {
	    {"SHA1", HDL_DIGEST_SHA1},
	    {"SHA-1", HDL_DIGEST_SHA1},
	    {"SHA256", HDL_DIGEST_SHA256},
	    {"SHA-256", HDL_DIGEST_SHA256},
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (hdl_slice_eq_nocase(name, hdl_slice_str(names[i].name)))
			return names[i].code;
	return -1;
}

uint8_t hdl_pubkey_hash_for(const EVP_PKEY *key, uint8_t major, uint8_t minor)
{
	if (!ver_ge(major, minor, 7))
		return HDL_DIGEST_SHA1;
	if (key && EVP_PKEY_is_a(key, "DSA") && !ver_ge(major, minor, 11))
		return HDL_DIGEST_SHA1;
	return HDL_DIGEST_SHA256;
}

static const EVP_MD *sig_md(int hash)
{
	if (hash == HDL_DIGEST_SHA1)
		return EVP_sha1();
	if (hash == HDL_DIGEST_SHA256)
		return EVP_sha256();
	return NULL;
}

static bool key_supported(const EVP_PKEY *key)
{
	return key && (EVP_PKEY_is_a(key, "RSA") || EVP_PKEY_is_a(key, "DSA"));
}

/** \brief True when \p key holds its private part (RSA d / DSA x). */
static bool key_has_private(const EVP_PKEY *key)
{
	BIGNUM *bn = NULL;
	bool ok = EVP_PKEY_get_bn_param(key,
	                                EVP_PKEY_is_a(key, "RSA") ? OSSL_PKEY_PARAM_RSA_D
	                                                          : OSSL_PKEY_PARAM_PRIV_KEY,
	                                &bn) == 1 &&
	          bn != NULL;
	BN_clear_free(bn);
	if (!ok)
		ERR_clear_error();
	return ok;
}

/** \brief D = nonce || digest in one buffer (EVP one-shot sign/verify). NULL on OOM. */
static uint8_t *concat_nd(hdl_slice_t nonce, hdl_slice_t digest, size_t *len)
{
	uint8_t *d = OPENSSL_malloc((size_t)nonce.len + digest.len + 1u);
	if (!d)
		return NULL;
	if (nonce.len)
		memcpy(d, nonce.p, nonce.len);
	if (digest.len)
		memcpy(d + nonce.len, digest.p, digest.len);
	*len = (size_t)nonce.len + digest.len;
	return d;
}

int hdl_pubkey_answer(EVP_PKEY *key, uint8_t hash, hdl_slice_t nonce, hdl_slice_t digest,
                      uint8_t *out, size_t cap, size_t *outlen)
{
	const EVP_MD *md = sig_md(hash);
	EVP_MD_CTX *ctx = NULL;
	uint8_t *d = NULL, *sig = NULL;
	size_t dlen = 0, slen = 0;
	hdl_pubkey_resp_t r;
	int ret = HDL_EINVAL;

	if (!md || !key_supported(key) || !key_has_private(key))
		goto out;
	ret = HDL_ENOMEM;
	d = concat_nd(nonce, digest, &dlen);
	ctx = EVP_MD_CTX_new();
	if (!d || !ctx)
		goto out;
	if (EVP_DigestSignInit(ctx, NULL, md, NULL, key) != 1 ||
	    EVP_DigestSign(ctx, NULL, &slen, d, dlen) != 1)
		goto out;
	ret = HDL_ENOMEM;
	sig = OPENSSL_malloc(slen ? slen : 1);
	if (!sig || EVP_DigestSign(ctx, sig, &slen, d, dlen) != 1)
		goto out;
	r.hash_name = hdl_slice_str(hash == HDL_DIGEST_SHA256 ? "SHA-256" : "SHA1");
	r.signature.p = sig;
	r.signature.len = (uint32_t)slen;
	ret = hdl_pubkey_resp_encode(&r, out, cap, outlen);
out:
	OPENSSL_free(sig);
	OPENSSL_free(d);
	EVP_MD_CTX_free(ctx);
	return ret;
}

int hdl_pubkey_verify(EVP_PKEY *key, hdl_slice_t nonce, hdl_slice_t digest,
                      hdl_slice_t signed_response)
{
	hdl_pubkey_resp_t r;
	EVP_MD_CTX *ctx = NULL;
	uint8_t *d = NULL;
	size_t dlen = 0;
	int ret, hash;

	ret = hdl_pubkey_resp_decode(signed_response.p, signed_response.len, &r);
	if (ret != HDL_EOK)
		return ret;
	hash = hdl_sig_hash_from_name(r.hash_name);
	if (hash < 0 || !key_supported(key))
		return HDL_EINVAL;
	ret = HDL_ENOMEM;
	d = concat_nd(nonce, digest, &dlen);
	ctx = EVP_MD_CTX_new();
	if (!d || !ctx)
		goto out;
	ret = HDL_EAUTH;
	if (EVP_DigestVerifyInit(ctx, NULL, sig_md(hash), NULL, key) == 1 &&
	    EVP_DigestVerify(ctx, nz(r.signature), r.signature.len, d, dlen) == 1)
		ret = HDL_EOK;
	else
		ERR_clear_error();
out:
	OPENSSL_free(d);
	EVP_MD_CTX_free(ctx);
	return ret;
}

/* ---- keys ----------------------------------------------------------------------------------- */

/**
 * \brief A BIGNUM from a Java BigInteger byte array, read unsigned as hdllib does
 *        (new BigInteger(1, bytes)); empty is refused.
 * \retval HDL_EOK, HDL_EMALF (empty), HDL_ELIMIT (over HDL_KEY_MAX_BITS), HDL_ENOMEM
 */
static int bn_from(hdl_slice_t s, BIGNUM **out)
{
	*out = NULL;
	if (s.len == 0)
		return HDL_EMALF;
	while (s.len > 1 && s.p[0] == 0) {
		s.p++;
		s.len--;
	}
	if (s.len > HDL_KEY_MAX_BITS / 8u)
		return HDL_ELIMIT;
	*out = BN_bin2bn(s.p, (int)s.len, NULL);
	return *out ? HDL_EOK : HDL_ENOMEM;
}

/** Up to 8 named BIGNUM parameters for EVP_PKEY_fromdata. */
typedef struct key_params {
	const char *names[8];
	BIGNUM *bn[8];
	size_t n;
} key_params_t;

static void key_params_free(key_params_t *kp)
{
	for (size_t i = 0; i < kp->n; i++)
		BN_clear_free(kp->bn[i]);
	kp->n = 0;
}

static int key_params_add(key_params_t *kp, const char *name, hdl_slice_t s)
{
	int ret;
	if (kp->n == 8)
		return HDL_EINVAL;
	ret = bn_from(s, &kp->bn[kp->n]);
	if (ret != HDL_EOK)
		return ret;
	kp->names[kp->n++] = name;
	return HDL_EOK;
}

/** \brief Build an RSA or DSA key from \p kp. \retval HDL_EOK, HDL_EMALF, HDL_ENOMEM */
static int key_build(const char *alg, const key_params_t *kp, bool priv, EVP_PKEY **out)
{
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	int ret = HDL_ENOMEM;

	*out = NULL;
	if (!bld)
		goto out;
	for (size_t i = 0; i < kp->n; i++)
		if (OSSL_PARAM_BLD_push_BN(bld, kp->names[i], kp->bn[i]) != 1)
			goto out;
	params = OSSL_PARAM_BLD_to_param(bld);
	ctx = EVP_PKEY_CTX_new_from_name(NULL, alg, NULL);
	if (!params || !ctx)
		goto out;
	ret = HDL_EMALF;
	if (EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, out, priv ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, params) != 1)
		goto out;
	ret = HDL_EOK;
out:
	if (ret != HDL_EOK)
		ERR_clear_error();
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	return ret;
}

/**
 * \brief Decode PEM or DER with OSSL_DECODER into an RSA / DSA key.
 * \param selection EVP_PKEY_PUBLIC_KEY or EVP_PKEY_KEYPAIR
 * \retval HDL_EOK, HDL_EMALF, HDL_ENOMEM
 */
static int key_decode(const char *input, const uint8_t *p, size_t len, int selection,
                      hdl_slice_t passphrase, EVP_PKEY **out)
{
	OSSL_DECODER_CTX *dctx;
	const unsigned char *data = p;
	size_t left = len;
	EVP_PKEY *pk = NULL;
	int ret = HDL_EMALF;

	*out = NULL;
	dctx = OSSL_DECODER_CTX_new_for_pkey(&pk, input, NULL, NULL, selection, NULL, NULL);
	if (!dctx)
		return HDL_ENOMEM;
	if (passphrase.len &&
	    OSSL_DECODER_CTX_set_passphrase(dctx, passphrase.p, passphrase.len) != 1) {
		ret = HDL_ENOMEM;
		goto out;
	}
	if (OSSL_DECODER_from_data(dctx, &data, &left) != 1 || !pk)
		goto out;
	if (!key_supported(pk) || EVP_PKEY_get_bits(pk) > (int)HDL_KEY_MAX_BITS) {
		ret = key_supported(pk) ? HDL_ELIMIT : HDL_EMALF;
		EVP_PKEY_free(pk);
		pk = NULL;
		goto out;
	}
	*out = pk;
	ret = HDL_EOK;
out:
	if (ret != HDL_EOK)
		ERR_clear_error(); /* leave no decoder errors on the thread's queue */
	OSSL_DECODER_CTX_free(dctx);
	return ret;
}

int hdl_pkey_from_pubkey(const hdl_pubkey_t *k, EVP_PKEY **out)
{
	key_params_t kp = {.n = 0};
	int ret;

	*out = NULL;
	switch (k->kind) {
	case HDL_KEY_RSA:
		if ((ret = key_params_add(&kp, OSSL_PKEY_PARAM_RSA_N, k->n)) != HDL_EOK ||
		    (ret = key_params_add(&kp, OSSL_PKEY_PARAM_RSA_E, k->e)) != HDL_EOK)
			break;
		ret = key_build("RSA", &kp, false, out);
		break;
	case HDL_KEY_DSA:
		if ((ret = key_params_add(&kp, OSSL_PKEY_PARAM_FFC_P, k->p)) != HDL_EOK ||
		    (ret = key_params_add(&kp, OSSL_PKEY_PARAM_FFC_Q, k->q)) != HDL_EOK ||
		    (ret = key_params_add(&kp, OSSL_PKEY_PARAM_FFC_G, k->g)) != HDL_EOK ||
		    (ret = key_params_add(&kp, OSSL_PKEY_PARAM_PUB_KEY, k->y)) != HDL_EOK)
			break;
		ret = key_build("DSA", &kp, false, out);
		break;
	case HDL_KEY_PEM:
		if (k->pem.len > HDL_MAX_ARRAY_LEN)
			return HDL_ELIMIT;
		ret = key_decode("PEM", k->pem.p, k->pem.len, EVP_PKEY_PUBLIC_KEY,
		                 (hdl_slice_t){NULL, 0}, out);
		break;
	default: ret = HDL_EINVAL; break;
	}
	key_params_free(&kp);
	return ret;
}

int hdl_pkey_from_value(const uint8_t *data, size_t len, EVP_PKEY **out)
{
	hdl_pubkey_t k;
	int ret = hdl_pubkey_decode(data, len, &k);

	*out = NULL;
	if (ret != HDL_EOK)
		return ret;
	return hdl_pkey_from_pubkey(&k, out);
}

/** A number in Java BigInteger.toByteArray() form (two's complement, minimal). */
typedef struct jnum {
	uint8_t *p;
	size_t len;
} jnum_t;

static void jnum_free(jnum_t *j)
{
	if (j->p)
		OPENSSL_clear_free(j->p, j->len);
	j->p = NULL;
	j->len = 0;
}

/**
 * \brief Parameter \p name of \p key as a Java byte array.
 * \retval HDL_EOK, HDL_EINVAL, HDL_ENOMEM
 */
static int jnum_get(const EVP_PKEY *key, const char *name, jnum_t *j)
{
	BIGNUM *bn = NULL;
	int nb;

	j->p = NULL;
	j->len = 0;
	if (EVP_PKEY_get_bn_param(key, name, &bn) != 1 || !bn)
		return HDL_EINVAL;
	nb = BN_num_bytes(bn);
	/* a leading 0x00 when the top bit is set (or for zero), as Java writes it */
	j->len = (size_t)nb + ((BN_num_bits(bn) % 8 == 0) ? 1u : 0u);
	j->p = OPENSSL_zalloc(j->len);
	if (!j->p) {
		BN_clear_free(bn);
		j->len = 0;
		return HDL_ENOMEM;
	}
	BN_bn2bin(bn, j->p + (j->len - (size_t)nb));
	BN_clear_free(bn);
	return HDL_EOK;
}

static hdl_slice_t jslice(const jnum_t *j)
{
	hdl_slice_t s = {j->p, (uint32_t)j->len};
	return s;
}

int hdl_pubkey_value_from_pkey(const EVP_PKEY *key, uint8_t *out, size_t cap, size_t *outlen)
{
	jnum_t a = {0}, b = {0}, c = {0}, d = {0};
	hdl_pubkey_t k;
	int ret = HDL_EINVAL;

	memset(&k, 0, sizeof(k));
	if (key && EVP_PKEY_is_a(key, "RSA")) {
		if ((ret = jnum_get(key, OSSL_PKEY_PARAM_RSA_E, &a)) != HDL_EOK ||
		    (ret = jnum_get(key, OSSL_PKEY_PARAM_RSA_N, &b)) != HDL_EOK)
			goto out;
		k.kind = HDL_KEY_RSA;
		k.e = jslice(&a);
		k.n = jslice(&b);
	} else if (key && EVP_PKEY_is_a(key, "DSA")) {
		if ((ret = jnum_get(key, OSSL_PKEY_PARAM_FFC_Q, &a)) != HDL_EOK ||
		    (ret = jnum_get(key, OSSL_PKEY_PARAM_FFC_P, &b)) != HDL_EOK ||
		    (ret = jnum_get(key, OSSL_PKEY_PARAM_FFC_G, &c)) != HDL_EOK ||
		    (ret = jnum_get(key, OSSL_PKEY_PARAM_PUB_KEY, &d)) != HDL_EOK)
			goto out;
		k.kind = HDL_KEY_DSA;
		k.q = jslice(&a);
		k.p = jslice(&b);
		k.g = jslice(&c);
		k.y = jslice(&d);
	} else {
		goto out;
	}
	ret = hdl_pubkey_encode(&k, out, cap, outlen);
out:
	jnum_free(&a);
	jnum_free(&b);
	jnum_free(&c);
	jnum_free(&d);
	return ret;
}

/* ---- CNRI private key file -------------------------------------------------------------------
 *
 *   U32 encryption type, then
 *     1 NONE:          the key bytes
 *     4 PBKDF2_AES:    BYTES salt | U32 iterations | U32 keyLenBits | BYTES iv | BYTES ciphertext
 *                      AES-128-CBC/PKCS#5, key = first 16 bytes of PBKDF2-HMAC-SHA1(passphrase)
 *     3 PBKDF2_3DES:   the same layout, DESede-CBC, 24-byte key (keyLenBits 192)
 *     2 DES_CBC:       8-byte iv | ciphertext; DES key = MD5(passphrase)[0..8)
 *     0 DES_ECB:       ciphertext; DES key = MD5(passphrase)[0..8)
 *
 *   key bytes: BYTES key type, then BYTES numbers (Java two's complement, read unsigned):
 *     RSA_PRIVCRT_KEY  n | e | d | p | q | dP | dQ | qInv
 *     RSA_PRIV_KEY     n | d           (no public exponent: not usable with OpenSSL)
 *     DSA_PRIV_KEY     x | p | q | g
 */

static const char RSA_CRT_NAME[] = "RSA_PRIVCRT_KEY";
static const char RSA_PRIV_NAME[] = "RSA_PRIV_KEY";
static const char DSA_PRIV_NAME[] = "DSA_PRIV_KEY";

/** OpenSSL names of the numbers of RSA_PRIVCRT_KEY and DSA_PRIV_KEY, in file order. */
static const char *const rsa_names[8] = {
    OSSL_PKEY_PARAM_RSA_N,         OSSL_PKEY_PARAM_RSA_E,
    OSSL_PKEY_PARAM_RSA_D,         OSSL_PKEY_PARAM_RSA_FACTOR1,
    OSSL_PKEY_PARAM_RSA_FACTOR2,   OSSL_PKEY_PARAM_RSA_EXPONENT1,
    OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
};
static const char *const dsa_names[4] = {
    OSSL_PKEY_PARAM_PRIV_KEY,
    OSSL_PKEY_PARAM_FFC_P,
    OSSL_PKEY_PARAM_FFC_Q,
    OSSL_PKEY_PARAM_FFC_G,
};

/**
 * \brief Parse the clear key bytes.
 * \retval HDL_EOK, HDL_EMALF, HDL_EINVAL, HDL_ELIMIT, HDL_ENOMEM
 */
static int cnri_key_parse(const uint8_t *p, size_t len, EVP_PKEY **out)
{
	wire_rd_t rd = wire_rd_init(p, len);
	key_params_t kp = {.n = 0};
	hdl_slice_t type = wire_rd_lbytes(&rd, HDL_MAX_TYPE_LEN);
	BN_CTX *bctx = NULL;
	BIGNUM *y = NULL;
	int ret = HDL_EMALF;

	*out = NULL;
	if (rd.err)
		goto out;
	if (hdl_slice_eq(type, hdl_slice_str(RSA_CRT_NAME))) {
		for (size_t i = 0; i < 8; i++) {
			hdl_slice_t s = wire_rd_lbytes(&rd, HDL_MAX_ARRAY_LEN);
			if (rd.err) {
				ret = HDL_EMALF;
				goto out;
			}
			if ((ret = key_params_add(&kp, rsa_names[i], s)) != HDL_EOK)
				goto out;
		}
		ret = key_build("RSA", &kp, true, out);
	} else if (hdl_slice_eq(type, hdl_slice_str(DSA_PRIV_NAME))) {
		for (size_t i = 0; i < 4; i++) {
			hdl_slice_t s = wire_rd_lbytes(&rd, HDL_MAX_ARRAY_LEN);
			if (rd.err) {
				ret = HDL_EMALF;
				goto out;
			}
			if ((ret = key_params_add(&kp, dsa_names[i], s)) != HDL_EOK)
				goto out;
		}
		/* OpenSSL wants the public value too: y = g^x mod p */
		ret = HDL_ENOMEM;
		bctx = BN_CTX_new();
		y = BN_new();
		if (!bctx || !y)
			goto out;
		ret = HDL_EMALF;
		if (BN_is_zero(kp.bn[1]) || BN_mod_exp(y, kp.bn[3], kp.bn[0], kp.bn[1], bctx) != 1)
			goto out;
		kp.names[kp.n] = OSSL_PKEY_PARAM_PUB_KEY;
		kp.bn[kp.n++] = y;
		y = NULL;
		ret = key_build("DSA", &kp, true, out);
	} else if (hdl_slice_eq(type, hdl_slice_str(RSA_PRIV_NAME))) {
		ret = HDL_EINVAL;
	}
out:
	BN_free(y);
	BN_CTX_free(bctx);
	key_params_free(&kp);
	return ret;
}

/**
 * \brief Decrypt \p ct with \p cipher (fetched) into a new buffer.
 * \retval HDL_EOK, HDL_EAUTH (bad padding: wrong passphrase), HDL_EMALF (key / iv sizes),
 *         HDL_ENOMEM
 */
static int cnri_decrypt(EVP_CIPHER *cipher, const uint8_t *key, size_t klen, hdl_slice_t iv,
                        hdl_slice_t ct, uint8_t **out, size_t *outlen)
{
	EVP_CIPHER_CTX *ctx = NULL;
	uint8_t *pt = NULL;
	int n1 = 0, n2 = 0;
	int ret = HDL_EMALF;

	*out = NULL;
	if ((int)klen < EVP_CIPHER_get_key_length(cipher) ||
	    (int)iv.len != EVP_CIPHER_get_iv_length(cipher) || ct.len == 0 ||
	    ct.len % (uint32_t)EVP_CIPHER_get_block_size(cipher) != 0)
		goto out;
	ret = HDL_ENOMEM;
	ctx = EVP_CIPHER_CTX_new();
	pt = OPENSSL_malloc((size_t)ct.len + 64u);
	if (!ctx || !pt)
		goto out;
	if (EVP_DecryptInit_ex2(ctx, cipher, key, iv.len ? iv.p : NULL, NULL) != 1 ||
	    EVP_DecryptUpdate(ctx, pt, &n1, ct.p, (int)ct.len) != 1)
		goto out;
	ret = HDL_EAUTH;
	if (EVP_DecryptFinal_ex(ctx, pt + n1, &n2) != 1)
		goto out;
	*out = pt;
	*outlen = (size_t)n1 + (size_t)n2;
	pt = NULL;
	ret = HDL_EOK;
out:
	if (pt)
		OPENSSL_clear_free(pt, (size_t)ct.len + 64u);
	EVP_CIPHER_CTX_free(ctx);
	return ret;
}

/** \brief Open the encrypted body of a CNRI key file. \retval as cnri_decrypt, HDL_EINVAL */
static int cnri_open(uint32_t type, wire_rd_t *rd, hdl_slice_t pass, uint8_t **out, size_t *outlen)
{
	uint8_t dk[HDL_PBKDF2_MAX_KEY_BITS / 8u];
	OSSL_LIB_CTX *lctx = NULL;
	OSSL_PROVIDER *legacy = NULL;
	EVP_CIPHER *cipher = NULL;
	hdl_slice_t salt, iv, ct;
	uint32_t iter, bits;
	unsigned dlen = 0;
	int ret = HDL_EMALF;

	if (type == HDL_PRIVKEY_ENC_PBKDF2_AES || type == HDL_PRIVKEY_ENC_PBKDF2_3DES) {
		salt = wire_rd_lbytes(rd, HDL_PBKDF2_MAX_SALT);
		iter = wire_rd_u32(rd);
		bits = wire_rd_u32(rd);
		iv = wire_rd_lbytes(rd, 64);
		ct = wire_rd_lbytes(rd, PRIVKEY_MAX_LEN);
		if (rd->err)
			goto out;
		if (iter == 0 || iter > PRIVKEY_MAX_ITERATIONS || bits > HDL_PBKDF2_MAX_KEY_BITS) {
			ret = HDL_ELIMIT;
			goto out;
		}
		if (bits == 0 || bits % 8u != 0)
			goto out;
		ret = pbkdf2_sha1(pass, salt, iter, dk, bits / 8u);
		if (ret != HDL_EOK)
			goto out;
		cipher = EVP_CIPHER_fetch(
		    NULL, type == HDL_PRIVKEY_ENC_PBKDF2_AES ? "AES-128-CBC" : "DES-EDE3-CBC",
		    NULL);
		if (!cipher) {
			ret = HDL_EINVAL;
			goto out;
		}
		ret = cnri_decrypt(cipher, dk, bits / 8u, iv, ct, out, outlen);
	} else if (type == HDL_PRIVKEY_ENC_DES_CBC || type == HDL_PRIVKEY_ENC_DES_ECB) {
		/* single DES lives in OpenSSL's legacy provider: load it into a private context */
		if (type == HDL_PRIVKEY_ENC_DES_CBC) {
			iv = wire_rd_bytes(rd, 8);
		} else {
			iv.p = NULL;
			iv.len = 0;
		}
		ct = wire_rd_bytes(rd, wire_rd_left(rd));
		if (rd->err)
			goto out;
		if (EVP_Digest(nz(pass), pass.len, dk, &dlen, EVP_md5(), NULL) != 1) {
			ret = HDL_ENOMEM;
			goto out;
		}
		ret = HDL_EINVAL;
		lctx = OSSL_LIB_CTX_new();
		if (!lctx || !(legacy = OSSL_PROVIDER_load(lctx, "legacy")))
			goto out;
		cipher = EVP_CIPHER_fetch(
		    lctx, type == HDL_PRIVKEY_ENC_DES_CBC ? "DES-CBC" : "DES-ECB", NULL);
		if (!cipher)
			goto out;
		ret = cnri_decrypt(cipher, dk, 8, iv, ct, out, outlen);
	} else {
		ret = HDL_EMALF;
	}
out:
	OPENSSL_cleanse(dk, sizeof(dk));
	EVP_CIPHER_free(cipher);
	OSSL_PROVIDER_unload(legacy);
	OSSL_LIB_CTX_free(lctx);
	return ret;
}

/** \brief True when \p p starts (after white space) with "-----BEGIN". */
static bool looks_pem(const uint8_t *p, size_t len)
{
	static const char magic[] = "-----BEGIN";
	size_t i = 0;
	while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
		i++;
	return len - i >= sizeof(magic) - 1 && memcmp(p + i, magic, sizeof(magic) - 1) == 0;
}

/** \brief True when the PEM text \p p is encrypted (PKCS#8 or a traditional Proc-Type header). */
static bool pem_encrypted(const uint8_t *p, size_t len)
{
	static const char *const marks[] = {"ENCRYPTED PRIVATE KEY", "Proc-Type: 4,ENCRYPTED"};
	for (size_t m = 0; m < sizeof(marks) / sizeof(marks[0]); m++) {
		size_t ml = strlen(marks[m]);
		for (size_t i = 0; i + ml <= len; i++)
			if (memcmp(p + i, marks[m], ml) == 0)
				return true;
	}
	return false;
}

int hdl_privkey_decode(const uint8_t *p, size_t len, hdl_slice_t passphrase, EVP_PKEY **out)
{
	wire_rd_t rd;
	uint8_t *clear = NULL;
	size_t clen = 0;
	uint32_t type;
	int ret;

	*out = NULL;
	if (len > PRIVKEY_MAX_LEN)
		return HDL_ELIMIT;
	if (looks_pem(p, len)) {
		bool enc = pem_encrypted(p, len);
		if (enc && passphrase.len == 0)
			return HDL_EAUTH;
		ret = key_decode("PEM", p, len, EVP_PKEY_KEYPAIR, passphrase, out);
		return ret == HDL_EMALF && enc ? HDL_EAUTH : ret;
	}
	if (len > 0 && p[0] == 0x30) /* DER: PKCS#8 or traditional */
		return key_decode("DER", p, len, EVP_PKEY_KEYPAIR, passphrase, out);
	rd = wire_rd_init(p, len);
	type = wire_rd_u32(&rd);
	if (rd.err)
		return HDL_EMALF;
	if (type == HDL_PRIVKEY_ENC_NONE)
		return cnri_key_parse(wire_rd_ptr(&rd), wire_rd_left(&rd), out);
	if (type > HDL_PRIVKEY_ENC_PBKDF2_AES)
		return HDL_EMALF;
	if (passphrase.len == 0)
		return HDL_EAUTH;
	ret = cnri_open(type, &rd, passphrase, &clear, &clen);
	if (ret != HDL_EOK)
		return ret;
	ret = cnri_key_parse(clear, clen, out);
	/* a wrong passphrase can still leave valid padding (1 in 256): garbage is a wrong
	 * passphrase */
	if (ret == HDL_EMALF)
		ret = HDL_EAUTH;
	OPENSSL_clear_free(clear, clen);
	return ret;
}

/**
 * \brief Encode the clear key bytes of \p key into \p wr.
 * \retval HDL_EOK, HDL_EINVAL, HDL_ENOMEM
 */
static int cnri_key_write(EVP_PKEY *key, wire_wr_t *wr)
{
	const char *const *names;
	size_t n;
	const char *type;
	int ret = HDL_EOK;

	if (key && EVP_PKEY_is_a(key, "RSA")) {
		names = rsa_names;
		n = 8;
		type = RSA_CRT_NAME;
	} else if (key && EVP_PKEY_is_a(key, "DSA")) {
		names = dsa_names;
		n = 4;
		type = DSA_PRIV_NAME;
	} else {
		return HDL_EINVAL;
	}
	wire_wr_lbytes(wr, type, strlen(type));
	for (size_t i = 0; i < n && ret == HDL_EOK; i++) {
		jnum_t j;
		ret = jnum_get(key, names[i], &j);
		if (ret == HDL_EOK)
			wire_wr_lbytes(wr, j.p, j.len);
		jnum_free(&j);
	}
	return ret;
}

int hdl_privkey_encode_cnri(EVP_PKEY *key, hdl_slice_t passphrase, uint8_t *out, size_t cap,
                            size_t *outlen)
{
	uint8_t salt[HDL_PBKDF2_SALT_LEN], iv[16], dk[16];
	uint8_t *clear = NULL, *ct = NULL;
	EVP_CIPHER_CTX *ctx = NULL;
	EVP_CIPHER *cipher = NULL;
	size_t clen = 0, ccap = 8192;
	int n1 = 0, n2 = 0;
	wire_wr_t wr;
	int ret;

	/* the clear key bytes, in a buffer grown until they fit */
	for (;;) {
		clear = OPENSSL_malloc(ccap);
		if (!clear)
			return HDL_ENOMEM;
		wr = wire_wr_init(clear, ccap);
		ret = cnri_key_write(key, &wr);
		if (ret == HDL_EOK && wr.err == HDL_ESPACE && ccap < PRIVKEY_MAX_LEN) {
			OPENSSL_clear_free(clear, ccap);
			ccap *= 4;
			continue;
		}
		if (ret == HDL_EOK)
			ret = wr.err;
		break;
	}
	clen = wr.pos;
	if (ret != HDL_EOK)
		goto out;
	wr = wire_wr_init(out, out ? cap : 0);
	if (passphrase.len == 0) {
		wire_wr_u32(&wr, HDL_PRIVKEY_ENC_NONE);
		if (!out) {
			*outlen = 4 + clen;
			goto out;
		}
		wire_wr_bytes(&wr, clear, clen);
	} else {
		ret = HDL_ENOMEM;
		if (RAND_bytes(salt, sizeof(salt)) != 1 || RAND_bytes(iv, sizeof(iv)) != 1)
			goto out;
		if ((ret = pbkdf2_sha1(passphrase, (hdl_slice_t){salt, sizeof(salt)},
		                       HDL_PBKDF2_ITERATIONS, dk, sizeof(dk))) != HDL_EOK)
			goto out;
		ret = HDL_ENOMEM;
		cipher = EVP_CIPHER_fetch(NULL, "AES-128-CBC", NULL);
		ctx = EVP_CIPHER_CTX_new();
		ct = OPENSSL_malloc(clen + 32u);
		if (!cipher || !ctx || !ct || EVP_EncryptInit_ex2(ctx, cipher, dk, iv, NULL) != 1 ||
		    EVP_EncryptUpdate(ctx, ct, &n1, clear, (int)clen) != 1 ||
		    EVP_EncryptFinal_ex(ctx, ct + n1, &n2) != 1)
			goto out;
		if (!out) {
			*outlen =
			    4 + 4 + sizeof(salt) + 4 + 4 + 4 + sizeof(iv) + 4 + (size_t)(n1 + n2);
			ret = HDL_EOK;
			goto out;
		}
		wire_wr_u32(&wr, HDL_PRIVKEY_ENC_PBKDF2_AES);
		wire_wr_lbytes(&wr, salt, sizeof(salt));
		wire_wr_u32(&wr, HDL_PBKDF2_ITERATIONS);
		wire_wr_u32(&wr, 128);
		wire_wr_lbytes(&wr, iv, sizeof(iv));
		wire_wr_lbytes(&wr, ct, (size_t)(n1 + n2));
	}
	ret = wr.err;
	if (ret == HDL_EOK)
		*outlen = wr.pos;
out:
	OPENSSL_cleanse(dk, sizeof(dk));
	if (ct)
		OPENSSL_clear_free(ct, clen + 32u);
	if (clear)
		OPENSSL_clear_free(clear, ccap);
	EVP_CIPHER_CTX_free(ctx);
	EVP_CIPHER_free(cipher);
	return ret;
}

/* ---- credentials ---------------------------------------------------------------------------- */

hdl_slice_t hdl_auth_type(const hdl_auth_t *a)
{
	return hdl_slice_str(a && a->key ? HDL_AUTH_TYPE_PUBKEY : HDL_AUTH_TYPE_SECKEY);
}

int hdl_auth_answer(const hdl_auth_t *a, const hdl_envelope_t *env, hdl_slice_t nonce,
                    hdl_slice_t digest, uint8_t *out, size_t cap, size_t *outlen)
{
	uint8_t major = env->major, minor = env->minor;
	uint8_t alg;

	if (!a)
		return HDL_EINVAL;
	if (a->key)
		return hdl_pubkey_answer(a->key, hdl_pubkey_hash_for(a->key, major, minor), nonce,
		                         digest, out, cap, outlen);
	/* hdllib: the lower of the message version and the suggested one (0 = none given) */
	if (env->sugg_major != 0 &&
	    (env->sugg_major < major || (env->sugg_major == major && env->sugg_minor < minor))) {
		major = env->sugg_major;
		minor = env->sugg_minor;
	}
	alg = hdl_seckey_alg_for(major, minor);
	if (alg != HDL_MAC_OLD_MD5 && a->seckey_alg != HDL_MAC_AUTO)
		alg = a->seckey_alg;
	return hdl_seckey_answer(alg, a->secret, nonce, digest, out, cap, outlen);
}
