/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Fuzz target: the decoders of include/hdl/auth.h.
 *
 * Input: byte 0 picks the decoder, the rest is its input.
 *   0  HS_SECKEY signedResponse (protocol >= 2.1); what decodes must encode to the same bytes
 *      and must verify (or fail with HDL_EAUTH) against a fixed secret
 *   1  the same, protocol 2.0 (bare MD5)
 *   2  HS_PUBKEY signedResponse; round trip, then verified with a fixed RSA key
 *   3  HS_PUBKEY value data -> EVP_PKEY; a key that builds gives back value data that builds the
 *      same key
 *   4  a private key file (PEM, DER, CNRI) without a passphrase
 *   5  a private key file with the passphrase "fuzz" (encrypted CNRI files with few iterations)
 * PBKDF2 work is bounded: verification only runs for iteration counts up to 1000 (the decoder's
 * own cap, 100000, is tested by test_auth), and key files over 1000 iterations are skipped.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "hdl/auth.h"
#include "hdl/error.h"
#include "hdl/values.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_ITER 1000u

/* 512-bit RSA test key (public part) for mode 2: n, e as HS_PUBKEY RSA_PUB_KEY data */
static EVP_PKEY *fuzz_key(void)
{
	static EVP_PKEY *k;
	if (!k)
		k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)512);
	return k;
}

static void check_seckey(const uint8_t *p, size_t n, bool old)
{
	static const uint8_t nonce[16] = {1, 2, 3};
	static const uint8_t digest[32] = {4, 5, 6};
	uint8_t out[HDL_SECKEY_RESP_MAX];
	hdl_seckey_resp_t r;
	size_t ol = 0;
	int ret;

	if (hdl_seckey_resp_decode(p, n, old, &r) != HDL_EOK)
		return;
	if (hdl_seckey_resp_encode(&r, out, sizeof(out), &ol) != HDL_EOK || ol != n ||
	    memcmp(out, p, n) != 0)
		abort();
	if (r.alg == HDL_MAC_PBKDF2_SHA1 && r.iterations > FUZZ_MAX_ITER)
		return;
	ret = hdl_seckey_verify(hdl_slice_str("secret"), (hdl_slice_t){nonce, 16},
	                        (hdl_slice_t){digest, 32}, (hdl_slice_t){p, (uint32_t)n}, old);
	if (ret != HDL_EOK && ret != HDL_EAUTH)
		abort();
}

static void check_pubkey_resp(const uint8_t *p, size_t n)
{
	static const uint8_t nonce[16] = {1, 2, 3};
	uint8_t out[HDL_PUBKEY_RESP_MAX];
	hdl_pubkey_resp_t r;
	size_t ol = 0;
	int ret;

	if (hdl_pubkey_resp_decode(p, n, &r) != HDL_EOK)
		return;
	if (hdl_pubkey_resp_encode(&r, out, sizeof(out), &ol) != HDL_EOK || ol != n ||
	    memcmp(out, p, n) != 0)
		abort();
	ret = hdl_pubkey_verify(fuzz_key(), (hdl_slice_t){nonce, 16}, (hdl_slice_t){nonce, 16},
	                        (hdl_slice_t){p, (uint32_t)n});
	/* a random signature never verifies */
	if (ret == HDL_EOK || (ret != HDL_EAUTH && ret != HDL_EINVAL))
		abort();
}

static void check_value(const uint8_t *p, size_t n)
{
	uint8_t *out = NULL;
	EVP_PKEY *k = NULL, *k2 = NULL;
	size_t ol = 0;

	if (hdl_pkey_from_value(p, n, &k) != HDL_EOK)
		return;
	if (!k)
		abort();
	out = malloc(2 * HDL_KEY_MAX_BITS);
	if (out && hdl_pubkey_value_from_pkey(k, out, 2 * HDL_KEY_MAX_BITS, &ol) == HDL_EOK) {
		if (hdl_pkey_from_value(out, ol, &k2) != HDL_EOK || EVP_PKEY_eq(k, k2) != 1)
			abort();
	}
	EVP_PKEY_free(k2);
	EVP_PKEY_free(k);
	free(out);
}

/** True when \p p is a CNRI PBKDF2 key file asking for more than FUZZ_MAX_ITER iterations. */
static bool costly_keyfile(const uint8_t *p, size_t n)
{
	uint32_t salt_len, iter;
	if (n < 8 || p[0] || p[1] || p[2] || (p[3] != 3 && p[3] != 4))
		return false;
	salt_len = (uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 | (uint32_t)p[6] << 8 | p[7];
	if (salt_len > n - 8 || n - 8 - salt_len < 4)
		return false;
	p += 8 + salt_len;
	iter = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	return iter > FUZZ_MAX_ITER;
}

static void check_privkey(const uint8_t *p, size_t n, const char *pass)
{
	EVP_PKEY *k = NULL;
	int ret;

	if (pass[0] && costly_keyfile(p, n))
		return;
	ret = hdl_privkey_decode(p, n, hdl_slice_str(pass), &k);
	if ((ret == HDL_EOK) != (k != NULL))
		abort();
	EVP_PKEY_free(k);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	switch (data[0] % 6) {
	case 0: check_seckey(data + 1, size - 1, false); break;
	case 1: check_seckey(data + 1, size - 1, true); break;
	case 2: check_pubkey_resp(data + 1, size - 1); break;
	case 3: check_value(data + 1, size - 1); break;
	case 4: check_privkey(data + 1, size - 1, ""); break;
	default: check_privkey(data + 1, size - 1, "fuzz"); break;
	}
	return 0;
}
