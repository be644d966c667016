/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Fuzz target: what the SNMS API reads of a peer's bytes before any JSON
 *        (node/server/snms.c, snms_auth.c): the input is parsed as an HTTP request, then its
 *        bearer token and its query parameters are taken; the input up to the first newline is
 *        also parsed as an `snms_user` line. Checks: a token lies inside the header bytes; a
 *        query parameter is NUL-terminated and shorter than the buffer; an accepted user line has
 *        a name, an iteration count in range and an identity handle.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hdl/error.h"
#include "node/server/http.h"
#include "node/server/snms.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	http_req_t req;
	if (http_parse(data, size, HTTP_MAX_HEADER_BYTES, 1u << 20, &req) == HTTP_PARSE_OK) {
		const char *tok = NULL;
		size_t tl = 0;
		if (snms_bearer(&req, &tok, &tl) &&
		    (tok < (const char *)data || tok + tl > (const char *)data + req.header_len ||
		     tok + tl > (const char *)req.body))
			abort();
		const char *q = memchr(req.target.p, '?', req.target.len);
		if (q) {
			static const char *const keys[] = {"handle", "prefix", "version"};
			for (int i = 0; i < 3; i++) {
				char out[64];
				size_t qn = req.target.len - (size_t)(q + 1 - req.target.p);
				long n = snms_query_param(q + 1, qn, keys[i], out, sizeof(out));
				if (n < -2 || n >= (long)sizeof(out) ||
				    (n >= 0 && strlen(out) != (size_t)n))
					abort();
			}
		}
	}
	char line[1024], err[160];
	size_t n = 0;
	while (n < size && n < sizeof(line) - 1 && data[n] != '\n' && data[n] != '\0')
		n++;
	memcpy(line, data, n);
	line[n] = '\0';
	snms_user_t u;
	int r = snms_user_parse(line, &u, err, sizeof(err));
	if (r == HDL_EOK) {
		if (!u.name[0] || u.iterations < SNMS_ITER_MIN || u.iterations > SNMS_ITER_MAX ||
		    u.id_handle == NULL || !u.id_handle[0])
			abort();
		snms_user_clear(&u);
	} else if (r != HDL_EINVAL && r != HDL_ENOMEM) {
		abort();
	}
	return 0;
}
