/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Test helpers: read a capture (`xxd -g1` dump under tests/captures/), a raw file under
 *        tests/, or a test key into memory. Header-only (HDL_SOURCE_DIR from CMake).
 */
#ifndef HDL_TESTS_LIB_TESTFILES_H
#define HDL_TESTS_LIB_TESTFILES_H

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hdl/auth.h"
#include "hdl/error.h"

#ifndef HDL_SOURCE_DIR
#define HDL_SOURCE_DIR "."
#endif

/**
 * \brief Bytes of tests/captures/\p name (the hex columns of an `xxd -g1` dump).
 * \return length, or 0 when the file is missing or holds more than \p cap bytes
 */
static inline size_t capture_load(const char *name, uint8_t *out, size_t cap)
{
	char path[512], line[512];
	size_t n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/tests/captures/%s", HDL_SOURCE_DIR, name);
	f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		const char *p = strstr(line, ": ");
		if (!p)
			continue;
		/* " xx" groups until the two spaces before the ASCII column */
		for (p += 1;
		     p[0] == ' ' && isxdigit((unsigned char)p[1]) && isxdigit((unsigned char)p[2]);
		     p += 3) {
			if (n == cap) {
				fclose(f);
				return 0;
			}
			out[n++] = (uint8_t)strtoul((char[3]){p[1], p[2], 0}, NULL, 16);
		}
	}
	fclose(f);
	return n;
}

/**
 * \brief The whole of HDL_SOURCE_DIR/\p rel (e.g. "tests/data/admpub.bin"), malloc'd with a NUL
 *        after the bytes.
 * \return the buffer (free it), or NULL
 */
static inline uint8_t *file_load(const char *rel, size_t *len)
{
	char path[512];
	uint8_t *buf = NULL;
	long sz;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", HDL_SOURCE_DIR, rel);
	f = fopen(path, "rb");
	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (sz = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc((size_t)sz + 1);
		if (buf && fread(buf, 1, (size_t)sz, f) != (size_t)sz) {
			free(buf);
			buf = NULL;
		}
		if (buf) {
			buf[sz] = 0;
			*len = (size_t)sz;
		}
	}
	fclose(f);
	return buf;
}

/**
 * \brief The private key in HDL_SOURCE_DIR/\p rel (any format hdl_privkey_decode reads).
 * \return the key (EVP_PKEY_free it), or NULL
 */
static inline EVP_PKEY *key_load(const char *rel, const char *pass)
{
	size_t len = 0;
	uint8_t *buf = file_load(rel, &len);
	EVP_PKEY *k = NULL;

	if (buf && hdl_privkey_decode(buf, len, hdl_slice_str(pass ? pass : ""), &k) != HDL_EOK)
		k = NULL;
	free(buf);
	return k;
}

#endif /* HDL_TESTS_LIB_TESTFILES_H */
