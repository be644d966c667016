/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Request digests (RD block, challenges): MD5, SHA-1, SHA-256 chosen by protocol version.
 *
 * Input is the request's header + body exactly as received (hdl_msg_t.signed_part), never the
 * envelope or the credential - what hdllib digests.
 */
#include <openssl/evp.h>

#include "hdl/error.h"
#include "hdl/msg.h"

uint8_t hdl_digest_alg_for(uint8_t major, uint8_t minor)
{
	if (major == 5 || (major == 2 && minor == 0))
		return HDL_DIGEST_OLD_MD5;
	if (major == 2 && minor < 7)
		return HDL_DIGEST_SHA1;
	return HDL_DIGEST_SHA256;
}

size_t hdl_digest_len(uint8_t alg)
{
	switch (alg) {
	case HDL_DIGEST_OLD_MD5:
	case HDL_DIGEST_MD5: return 16;
	case HDL_DIGEST_SHA1: return 20;
	case HDL_DIGEST_SHA256: return 32;
	default: return 0;
	}
}

int hdl_digest(uint8_t alg, const uint8_t *in, size_t len, uint8_t out[HDL_DIGEST_MAX_LEN],
               size_t *outlen)
{
	const EVP_MD *md;
	switch (alg) {
	case HDL_DIGEST_OLD_MD5:
	case HDL_DIGEST_MD5: md = EVP_md5(); break;
	case HDL_DIGEST_SHA1: md = EVP_sha1(); break;
	case HDL_DIGEST_SHA256: md = EVP_sha256(); break;
	default: *outlen = 0; return HDL_EINVAL;
	}
	unsigned int n = 0;
	if (EVP_Digest(in, len, out, &n, md, NULL) != 1) {
		*outlen = 0;
		return HDL_ENOMEM;
	}
	*outlen = n;
	return HDL_EOK;
}
