/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Credentials from files and arguments: private keys (any format hdl_privkey_decode reads) with a
 *        passphrase from a file or an environment variable (never the command line), and
 *        HS_SECKEY secrets, and the identity "INDEX:HANDLE". Buffers that held secrets are cleansed before they are freed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "hdl/auth.h"
#include "hdl/client.h"
#include "hdl/error.h"

#define KEYFILE_MAX (1u << 20) /**< largest key, secret or passphrase file read */

/**
 * \brief Read all of \p path (at most KEYFILE_MAX bytes) into a new buffer.
 * \retval HDL_EOK, HDL_ENOENT (missing), HDL_EIO (unreadable), HDL_ELIMIT (too big), HDL_ENOMEM
 */
static int slurp(const char *path, uint8_t **out, size_t *outlen)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t n = 0, cap = 4096;
	int ret = HDL_ENOMEM;

	*out = NULL;
	*outlen = 0;
	if (!f)
		return errno == ENOENT ? HDL_ENOENT : HDL_EIO;
	buf = OPENSSL_malloc(cap);
	while (buf) {
		size_t got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (n < cap) {
			ret = ferror(f) ? HDL_EIO : HDL_EOK;
			break;
		}
		if (cap >= KEYFILE_MAX + 1u) {
			ret = HDL_ELIMIT;
			break;
		}
		/* grow by hand so the old copy can be cleansed */
		uint8_t *bigger = OPENSSL_malloc(cap * 2);
		if (bigger)
			memcpy(bigger, buf, n);
		OPENSSL_clear_free(buf, cap);
		buf = bigger;
		cap *= 2;
	}
	fclose(f);
	if (ret != HDL_EOK || !buf) {
		if (buf)
			OPENSSL_clear_free(buf, cap);
		return ret;
	}
	if (n > KEYFILE_MAX) {
		OPENSSL_clear_free(buf, cap);
		return HDL_ELIMIT;
	}
	*out = buf;
	*outlen = n;
	return HDL_EOK;
}

/** \brief Length of \p p without one trailing "\n" or "\r\n". */
static size_t chomp(const uint8_t *p, size_t n)
{
	if (n > 0 && p[n - 1] == '\n')
		n--;
	if (n > 0 && p[n - 1] == '\r')
		n--;
	return n;
}

int hdl_secret_load(const char *path, uint8_t **out, size_t *outlen)
{
	uint8_t *raw = NULL;
	size_t n = 0;
	int ret = slurp(path, &raw, &n);

	*out = NULL;
	*outlen = 0;
	if (ret != HDL_EOK)
		return ret;
	*outlen = chomp(raw, n);
	*out = OPENSSL_malloc(*outlen + 1);
	if (*out)
		memcpy(*out, raw, *outlen);
	else
		ret = HDL_ENOMEM;
	OPENSSL_clear_free(raw, n);
	return ret;
}

void hdl_secret_free(uint8_t *p, size_t len)
{
	if (p)
		OPENSSL_clear_free(p, len);
}

int hdl_privkey_load(const char *path, const char *pass_file, const char *pass_env, EVP_PKEY **out)
{
	uint8_t *key = NULL, *pass = NULL;
	size_t klen = 0, plen = 0;
	hdl_slice_t pw = {NULL, 0};
	int ret;

	*out = NULL;
	if (pass_file) {
		ret = slurp(pass_file, &pass, &plen);
		if (ret != HDL_EOK)
			return ret;
		/* the first line */
		const uint8_t *nl = plen ? memchr(pass, '\n', plen) : NULL;
		pw.p = pass;
		pw.len = (uint32_t)chomp(pass, nl ? (size_t)(nl - pass) + 1 : plen);
	} else if (pass_env && getenv(pass_env)) {
		pw = hdl_slice_str(getenv(pass_env));
	}
	ret = slurp(path, &key, &klen);
	if (ret == HDL_EOK)
		ret = hdl_privkey_decode(key, klen, pw, out);
	if (key)
		OPENSSL_clear_free(key, klen);
	if (pass)
		OPENSSL_clear_free(pass, plen);
	return ret;
}

int hdl_identity_parse(const char *s, uint32_t *index, char **handle)
{
	const char *colon = s ? strchr(s, ':') : NULL;
	unsigned long long idx;
	char *end = NULL;

	*handle = NULL;
	if (!colon || colon == s || s[0] < '0' || s[0] > '9' || !colon[1])
		return HDL_EINVAL;
	errno = 0;
	idx = strtoull(s, &end, 10);
	if (errno || end != colon || idx > UINT32_MAX)
		return HDL_EINVAL;
	if (hdl_name_check((const uint8_t *)colon + 1, strlen(colon + 1)) != HDL_EOK)
		return HDL_ENAME;
	*handle = strdup(colon + 1);
	if (!*handle)
		return HDL_ENOMEM;
	*index = (uint32_t)idx;
	return HDL_EOK;
}
