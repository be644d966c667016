/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Fuzz target: the REST API's credential decoders (node/server/rest_auth.c) over
 *        arbitrary bytes: the Authorization header parser (every slice it returns lies inside
 *        the input; a repeat parse agrees), Basic decoding (the handle and secret lie inside
 *        the output buffer and the handle is a valid name) and base64 (never writes past the
 *        buffer it is given, never returns more than it).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hdl/error.h"
#include "node/server/rest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void in_input(const char *p, size_t len, http_str_t s)
{
	if (s.len == 0)
		return;
	if (s.p < p || s.p + s.len > p + len)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	rest_authz_t a, b;
	int ret = rest_authz_parse((http_str_t){p, size}, &a);
	if (ret != HDL_EOK && ret != HDL_EMALF && ret != HDL_ELIMIT)
		abort();
	if (rest_authz_parse((http_str_t){p, size}, &b) != ret)
		abort();
	if (ret == HDL_EOK) {
		if (a.scheme < REST_SCHEME_BASIC || a.scheme > REST_SCHEME_OTHER)
			abort();
		const http_str_t *f[] = {&a.basic, &a.session_id, &a.version, &a.id,
		                         &a.type,  &a.alg,        &a.cnonce,  &a.signature,
		                         &a.salt,  &a.iterations, &a.length};
		for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
			in_input(p, size, *f[i]);
		if (a.scheme == REST_SCHEME_BASIC) {
			uint8_t buf[64];
			hdl_slice_t h, sec;
			uint32_t idx;
			if (rest_basic_decode(a.basic, buf, sizeof(buf), &h, &idx, &sec) ==
			    HDL_EOK) {
				if (h.len == 0 || h.p < buf || h.p + h.len > buf + sizeof(buf) ||
				    (sec.len &&
				     (sec.p < buf || sec.p + sec.len > buf + sizeof(buf))))
					abort();
			}
		}
	}
	/* base64 straight, into a buffer sized from the first byte */
	uint8_t out[256];
	size_t cap = size ? data[0] : 0;
	long n = rest_b64_decode((http_str_t){p, size}, out, cap);
	if (n > (long)cap || n < -1)
		abort();
	return 0;
}
